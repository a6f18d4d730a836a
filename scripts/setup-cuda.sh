#!/usr/bin/env bash
# The CUDA build: PyPI's torch wheel (LibTorch 2.x with CUDA and NCCL) in a local virtual environment,
# and build-cuda/ configured against it with the system's CUDA toolkit. The Debian packages of
# scripts/setup.sh are still needed (spdlog, json, GoogleTest, …). CI keeps the Debian build.
# Idempotent: the venv and the pip install are skipped when torch $TORCH_VERSION is already there.
#   scripts/setup-cuda.sh            # (or scripts/setup.sh --cuda) venv + configure + build
#   TORCH_VERSION=2.11.0 VENV=.venv-cuda BUILD_DIR=build-cuda JOBS=2 scripts/setup-cuda.sh
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_VERSION=${TORCH_VERSION:-2.11.0}
VENV=${VENV:-.venv-cuda}
BUILD_DIR=${BUILD_DIR:-build-cuda}
JOBS=${JOBS:-2}
start=$(date +%s)

scripts/setup.sh
nvcc=$(command -v nvcc) || { echo "setup-cuda: nvcc not on PATH (install the CUDA toolkit)"; exit 1; }
cuda_root=$(dirname "$(dirname "$(readlink -f "$nvcc")")")

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
# -W ignore: torch warns on import when NumPy is absent, which LibTorch does not need.
py() { "$VENV/bin/python" -W ignore "$@"; }
if py -c "import torch,sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
  echo "setup-cuda: torch $TORCH_VERSION already in $VENV"
else
  "$VENV/bin/pip" install --quiet "torch==$TORCH_VERSION"   # PyPI's default wheel (CUDA 13.0 for 2.11)
fi
read -r torch_version torch_cuda torch_abi prefix < <(py -c \
  'import torch;print(torch.__version__, torch.version.cuda, int(torch._C._GLIBCXX_USE_CXX11_ABI), torch.utils.cmake_prefix_path)')
nvcc_version=$("$nvcc" --version | sed -n 's/.*release \([0-9.]*\),.*/\1/p')
if [ "$torch_cuda" = "None" ]; then
  echo "setup-cuda: torch $torch_version is a CPU-only wheel; the build would have no CUDA"; exit 1
fi
if [ "${torch_cuda%%.*}" != "${nvcc_version%%.*}" ]; then
  echo "setup-cuda: warning: torch $torch_version is built for CUDA $torch_cuda, the toolkit at $cuda_root is $nvcc_version"
fi
# Debian's spdlog, fmt and GoogleTest use the C++11 ABI; a pre-C++11-ABI LibTorch could not link with them.
[ "$torch_abi" = 1 ] || { echo "setup-cuda: torch $torch_version uses the old C++ ABI, unlike the Debian libraries"; exit 1; }

mkdir -p "$BUILD_DIR"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
  -DCUDAToolkit_ROOT="$cuda_root" -DCMAKE_CUDA_COMPILER="$nvcc" | tee "$BUILD_DIR/configure.log"
cmake --build "$BUILD_DIR" -j"$JOBS"

echo "setup-cuda: compiler $(c++ --version | head -1)"
echo "setup-cuda: LibTorch $torch_version (CUDA $torch_cuda, C++11 ABI $torch_abi) from $VENV"
echo "setup-cuda: CUDA toolkit $nvcc_version at $cuda_root"
grep "fusellm: LibTorch" "$BUILD_DIR/configure.log" | sed 's/^-- /setup-cuda: /' || true
echo "setup-cuda: done in $(( $(date +%s) - start )) s; test with: (cd $BUILD_DIR && ctest)"
