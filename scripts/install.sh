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

# The instruction sets to compile llama.cpp for. On x86-64 Linux: each one /proc/cpuinfo lists,
# except AMX: ggml's AMX kernels die with "Illegal instruction" (tilezero) on a 2-core AMX VM where
# AMX itself works, and -march=native would turn them on. Elsewhere: -march=native.
llama_isa_args() {
  local flags
  flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
  if [ "$(uname -m)" != x86_64 ] || [ "$flags" = "  " ]; then echo "-DGGML_NATIVE=ON"; return; fi
  local args="-DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
  local pair
  for pair in sse4_2:SSE42 f16c:F16C fma:FMA bmi2:BMI2 avx:AVX avx2:AVX2 avx_vnni:AVX_VNNI \
              avx512f:AVX512 avx512vbmi:AVX512_VBMI avx512_vnni:AVX512_VNNI avx512_bf16:AVX512_BF16; do
    case "$flags" in
      *" ${pair%%:*} "*) args="$args -DGGML_${pair#*:}=ON" ;;
      *) args="$args -DGGML_${pair#*:}=OFF" ;;
    esac
  done
  echo "$args"
}

# llama.cpp (the fast CPU backend for GGUF models). llama-cpp-python ships only a source package:
# we compile it (the library only: no servers, tools or multimodal part) for this CPU's instruction
# set and keep the wheel in a directory named by the CPU's flags and the build's, so later installs
# on a like CPU take seconds. Never pip's own cache, which is shared by unlike machines: a wheel
# compiled for another CPU can die on this one with "Illegal instruction".
# BCODER_LLAMA=0 skips it (auto then uses transformers).
LLAMA_SPEC=$(sed -n 's/.*"\(llama-cpp-python==[0-9.]*\)".*/\1/p' pyproject.toml | head -n1)
CPU_KEY=$( ( (grep -m1 -E '^(flags|Features)' /proc/cpuinfo 2>/dev/null || uname -m); llama_isa_args) \
  | sha256sum | cut -c1-12)
WHEELS=${XDG_CACHE_HOME:-$HOME/.cache}/bcoder/wheels/$(uname -m)-$CPU_KEY
if [ "${BCODER_LLAMA:-1}" != 0 ] && ! "$PYTHON" -c "
import importlib.metadata as m, sys
sys.exit(m.version('llama_cpp_python') != '${LLAMA_SPEC#*==}')" 2>/dev/null; then
  if ! ls "$WHEELS"/llama_cpp_python-"${LLAMA_SPEC#*==}"-*.whl >/dev/null 2>&1; then
    echo "compiling llama.cpp ($LLAMA_SPEC) for this CPU: about 4-7 minutes on 2 idle cores, once" >&2
    CMAKE_ARGS="-DLLAVA_BUILD=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF $(llama_isa_args) ${CMAKE_ARGS:-}" \
    CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 2)} \
      "$PYTHON" -m pip wheel -q --no-cache-dir --no-deps -w "$WHEELS" "$LLAMA_SPEC"
  fi
  "$PYTHON" -m pip install -q --force-reinstall --no-deps --no-index --find-links "$WHEELS" "$LLAMA_SPEC"
  "$PYTHON" -m pip install -q "$LLAMA_SPEC"  # its dependencies (numpy, jinja2, diskcache)
fi
echo "bcoder installed: $("$PYTHON" -m bcoder --version)"
