#!/usr/bin/env bash
# Install bcoder and everything its tests need, on a fresh machine.
#   - bubblewrap (the sandbox for generated programs), from the system's package manager when we can;
#   - PyTorch: on a machine without an NVIDIA GPU, the CPU build (torch==2.13.0), never CUDA wheels;
#   - bcoder itself, editable, with the dev extra;
#   - llama-cpp-python (the llama.cpp backend), compiled once for this CPU and cached by pip.
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

# llama.cpp (the fast CPU backend for GGUF models). llama-cpp-python ships only a source package:
# pip compiles it once (the library only: no servers, tools or multimodal part) and caches the
# wheel, so later installs take seconds. BCODER_LLAMA=0 skips it (auto then uses transformers).
LLAMA_SPEC=$(sed -n 's/.*"\(llama-cpp-python==[0-9.]*\)".*/\1/p' pyproject.toml | head -n1)
if [ "${BCODER_LLAMA:-1}" != 0 ] && ! "$PYTHON" -c "
import importlib.metadata as m, sys
sys.exit(m.version('llama_cpp_python') != '${LLAMA_SPEC#*==}')" 2>/dev/null; then
  echo "compiling llama.cpp ($LLAMA_SPEC): about 7 minutes on 2 idle cores, once (pip caches the wheel)" >&2
  CMAKE_ARGS="-DLLAVA_BUILD=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DGGML_NATIVE=ON ${CMAKE_ARGS:-}" \
  CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 2)} \
    "$PYTHON" -m pip install -q "$LLAMA_SPEC"
fi
echo "bcoder installed: $("$PYTHON" -m bcoder --version)"
