#!/usr/bin/env bash
# Installs every system dependency of fusellm from Debian's archive. Idempotent and non-interactive:
# packages already present are left alone, and apt runs only when something is missing.
set -euo pipefail
if [ "${1:-}" = "--cuda" ]; then exec "$(dirname "$0")/setup-cuda.sh"; fi
# --code-eval: also the ten MultiPL-E toolchains (`fusellm eval --tasks me`), all from Debian. The harness's
# image adds javatuples for Java: Debian packages it (libjavatuples-java, /usr/share/java/javatuples.jar).
CODE_EVAL=0
if [ "${1:-}" = "--code-eval" ]; then CODE_EVAL=1; fi

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libtorch-dev          # LibTorch 1.13.1 (CPU), c10d with Gloo
  libgloo-dev           # headers that LibTorch's c10d headers include
  libopenblas0-pthread  # fast BLAS for LibTorch's fp32 matmul (Debian's default reference BLAS is ~10x slower)
  nlohmann-json3-dev libcli11-dev libspdlog-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libzstd-dev zlib1g-dev libpcre2-dev libxxhash-dev
  libsnappy-dev         # Parquet pages (MiniPile and the HF hub's datasets ship as Parquet)
  libsentencepiece-dev  # only as the tokenizer tests' independent reference
  bubblewrap            # the sandbox that runs MultiPL-E's generated programs
)
if [ "$CODE_EVAL" = 1 ]; then
  PACKAGES+=(g++ golang-go default-jdk-headless libjavatuples-java nodejs php-cli python3 r-base-core ruby rustc
             node-typescript)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all packages present"
fi

# Make sure the BLAS LibTorch loads is OpenBLAS, not the reference implementation.
arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
openblas=/usr/lib/$arch/openblas-pthread/libblas.so.3
if [ -e "$openblas" ] && command -v update-alternatives >/dev/null; then
  current=$(update-alternatives --query "libblas.so.3-$arch" 2>/dev/null | awk '/^Value:/{print $2}')
  if [ "$current" != "$openblas" ]; then
    echo "setup: selecting OpenBLAS for libblas.so.3"
    $SUDO update-alternatives --set "libblas.so.3-$arch" "$openblas"
  fi
fi
