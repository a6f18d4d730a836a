#!/usr/bin/env bash
# The demo command: installs what is missing, builds the fusellm binary (Release, Ninja) and runs
# `fusellm demo` — FuseLLM end to end on generated data on this machine's CPU, then prints the table and
# the path of the report (docs/demo.md). Nothing is downloaded; ../shared is not needed.
# Run it again after an interruption: finished steps are kept.
#   BUILD_DIR=build  JOBS=$(nproc)  scripts/demo.sh [--out DIR] [--seed N] [--seeds 1,2,3]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
jobs=${JOBS:-$(nproc)}

"$root/scripts/ensure-deps.sh"
start=$(date +%s)
# shellcheck disable=SC2086
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-} >/dev/null
cmake --build "$build" -j "$jobs" --target fusellm_cli
echo "demo: built in $(( $(date +%s) - start )) s"
cd "$root"
start=$(date +%s)
"$build/bin/fusellm" demo "$@"
echo "demo: ran in $(( $(date +%s) - start )) s"
