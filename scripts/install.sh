#!/usr/bin/env bash
# Install bcoder and everything its tests need, on a fresh machine.
#   - bubblewrap (the sandbox for generated programs), from the system's package manager when we can;
#   - PyTorch: on a machine without an NVIDIA GPU, the CPU build (torch==2.13.0), never CUDA wheels;
#   - bcoder itself, editable, with the dev extra.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v bwrap >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && apt-get install -y -qq bubblewrap) >/dev/null \
      || echo "warning: could not install bubblewrap; the sandbox falls back to unshare" >&2
  else
    echo "warning: bubblewrap missing (apt-get install bubblewrap); the sandbox falls back to unshare" >&2
  fi
fi

PYTHON=${PYTHON:-python3}
TORCH_SPEC=${BCODER_TORCH:-}
if [ -z "$TORCH_SPEC" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    TORCH_SPEC="torch"          # a GPU machine: let pip choose the CUDA build
  else
    TORCH_SPEC="torch==2.13.0"  # CPU: the CPU wheel (a bare "torch" would pull several GB of CUDA)
  fi
fi
"$PYTHON" -m pip install -q "$TORCH_SPEC" -e ".[dev]"
echo "bcoder installed: $("$PYTHON" -m bcoder --version)"
