#!/usr/bin/env bash
# The CUDA build: PyPI's torch wheel (LibTorch 2.x with CUDA and NCCL) in a local virtual environment,
# and build-cuda/ configured against it with the system's CUDA toolkit. The Debian packages of
# scripts/setup.sh are still needed (spdlog, json, GoogleTest, …). CI keeps the Debian build.
#   scripts/setup-cuda.sh            # venv + configure + build
#   TORCH_VERSION=2.11.0 VENV=.venv-cuda BUILD_DIR=build-cuda scripts/setup-cuda.sh
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_VERSION=${TORCH_VERSION:-2.11.0}
VENV=${VENV:-.venv-cuda}
BUILD_DIR=${BUILD_DIR:-build-cuda}
start=$(date +%s)

scripts/setup.sh
command -v nvcc >/dev/null || { echo "setup-cuda: nvcc not on PATH (install the CUDA toolkit)"; exit 1; }
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
if ! "$VENV/bin/python" -c "import torch,sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
  "$VENV/bin/pip" install --quiet "torch==$TORCH_VERSION"
fi
prefix=$("$VENV/bin/python" -c 'import torch;print(torch.utils.cmake_prefix_path)')
cuda_root=$(dirname "$(dirname "$(command -v nvcc)")")
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
  -DCUDAToolkit_ROOT="$cuda_root" -DCMAKE_CUDA_COMPILER="$(command -v nvcc)" | tee "$BUILD_DIR.configure.log"
cmake --build "$BUILD_DIR" -j2
echo "setup-cuda: $(g++ --version | head -1); torch $("$VENV/bin/python" -c 'import torch;print(torch.__version__, "CUDA", torch.version.cuda)'); $(nvcc --version | tail -1)"
grep "fusellm:" "$BUILD_DIR.configure.log" || true
echo "setup-cuda: done in $(( $(date +%s) - start )) s; test with: (cd $BUILD_DIR && ctest)"
