#!/usr/bin/env bash
# The test command: installs what is missing, configures (Release, Ninja, precompiled LibTorch header),
# builds everything (library, CLI, tests, benchmarks) and runs the GoogleTest suite through ctest.
# Prints the wall time of each phase at the end (also when a phase fails).
#   BUILD_DIR=build  JOBS=$(nproc)  CMAKE_ARGS="..."  scripts/test.sh [ctest args]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
jobs=${JOBS:-$(nproc)}

phases=()
phase_start=$(date +%s)
current=setup
end_phase() {  # records the running phase's wall time and starts the next one
  local now
  now=$(date +%s)
  phases+=("$current $((now - phase_start)) s")
  phase_start=$now
  current=$1
}
report() {
  local rc=$?
  [ "$current" = done ] || end_phase done
  echo "test: phase times: $(IFS=,; echo "${phases[*]}" | sed 's/,/, /g')$([ $rc -eq 0 ] || echo " (failed in ${phases[-1]%% *})")"
}
trap report EXIT

"$root/scripts/ensure-deps.sh"

if [ -d "$root/../shared/data" ]; then
  echo "test: using test material in $(cd "$root/../shared" && pwd)"
else
  echo "test: ../shared not found: tests that need it will be skipped"
fi

end_phase configure
# shellcheck disable=SC2086
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-}
end_phase build
cmake --build "$build" -j "$jobs"
end_phase ctest
cd "$build"
ctest --output-on-failure -j "$jobs" --timeout 600 "$@"
end_phase done
