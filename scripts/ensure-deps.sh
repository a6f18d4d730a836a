#!/usr/bin/env bash
# Runs scripts/setup.sh when a tool or Debian package the build needs is missing (shared by test.sh and
# demo.sh); does nothing when everything is installed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
need_setup=0
for tool in cmake ninja pkg-config; do command -v "$tool" >/dev/null || need_setup=1; done
for pkg in libtorch-dev libgloo-dev libopenblas0-pthread libspdlog-dev libcli11-dev nlohmann-json3-dev \
           libgtest-dev libbenchmark-dev libpcre2-dev libzstd-dev libxxhash-dev libsentencepiece-dev libsnappy-dev \
           bubblewrap; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_setup=1
done
if [ "$need_setup" = 1 ]; then "$root/scripts/setup.sh"; fi
