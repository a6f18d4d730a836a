#!/usr/bin/env bash
# Coverage-guided fuzzing of fusellm's parsers with libFuzzer, ASan and UBSan (docs/testing.md).
#   scripts/fuzz.sh [TARGET|all] [SECONDS]
# Builds build-asan (clang, -DFUSELLM_FUZZ=ON -DFUSELLM_SANITIZE=address,undefined; shared with
# scripts/sanitize.sh), writes the seed corpora from ../shared (fuzz/seeds.sh), then runs each target until
# it has executed FUZZ_RUNS inputs (default 1,000,000) or SECONDS have passed (default 600), whichever comes
# first, and prints one table row per target: executions, seconds, edges covered, crashes.
# Crashes, leaks, timeouts and out-of-memory inputs land in build-asan/fuzz/artifacts/<target>/; minimize one
# with `build-asan/fuzz/fuzz_<target> -minimize_crash=1 FILE` and commit it under fuzz/regressions/<target>/.
#   FUZZ_BUILD_DIR=build-asan  FUZZ_RUNS=1000000  FUZZ_PARALLEL=1 (targets at once)  JOBS=$(nproc)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${FUZZ_BUILD_DIR:-$root/build-asan}
which=${1:-all}
seconds=${2:-600}
runs=${FUZZ_RUNS:-1000000}
parallel=${FUZZ_PARALLEL:-1}
jobs=${JOBS:-$(nproc)}

targets=$(sed -n '/^set(FUSELLM_FUZZ_TARGETS /,/)/p' "$root/fuzz/CMakeLists.txt" | head -2 |
  sed 's/set(FUSELLM_FUZZ_TARGETS//; s/)//' | tr -s ' \n' ' ')
if [ "$which" != all ]; then
  case " $targets " in *" $which "*) targets=$which ;; *) echo "fuzz: unknown target '$which' (known:$targets)" >&2; exit 2 ;; esac
fi

command -v clang++ > /dev/null || { echo "fuzz: clang++ not found (apt-get install clang)" >&2; exit 1; }
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
    -DFUSELLM_FUZZ=ON -DFUSELLM_SANITIZE=address,undefined -DFUSELLM_BUILD_BENCH=OFF
fi
build_targets="fusellm_cli fuzz_make_seeds"
for t in $targets; do build_targets="$build_targets fuzz_$t"; done
# shellcheck disable=SC2086
cmake --build "$build" -j "$jobs" --target $build_targets

export ASAN_OPTIONS=${ASAN_OPTIONS:-"abort_on_error=1:detect_leaks=1:allocator_may_return_null=1"}
export LSAN_OPTIONS=${LSAN_OPTIONS:-"suppressions=$root/fuzz/sanitizers/lsan.supp:print_suppressions=0"}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-"print_stacktrace=1:halt_on_error=1:suppressions=$root/fuzz/sanitizers/ubsan.supp"}
export OMP_NUM_THREADS=1  # LibTorch ops inside a target stay on one thread: one core per fuzzer

seeds=$build/fuzz/seeds
[ -d "$seeds" ] || "$root/fuzz/seeds.sh" "$build" "$seeds"

dict_of() {
  case $1 in
    torch_bin) echo "$root/fuzz/dicts/pickle.dict" ;;
    safetensors) echo "$root/fuzz/dicts/safetensors.dict" ;;
    sentencepiece) echo "$root/fuzz/dicts/sentencepiece.dict" ;;
    *) echo "$root/fuzz/dicts/json.dict" ;;
  esac
}

run_target() {
  local t=$1 corpus=$build/fuzz/corpus/$1 art=$build/fuzz/artifacts/$1 log=$build/fuzz/logs/$1.log start
  mkdir -p "$corpus" "$art" "$(dirname "$log")"
  start=$(date +%s)
  # Seeds and regressions are read-only inputs; new coverage goes to the first directory.
  set +e
  local dirs=("$corpus")
  for d in "$seeds/$t" "$root/fuzz/regressions/$t"; do [ -d "$d" ] && dirs+=("$d"); done
  "$build/fuzz/fuzz_$t" -runs="$runs" -max_total_time="$seconds" -dict="$(dict_of "$t")" -max_len=1048576 \
    -rss_limit_mb=4096 -timeout=30 -print_final_stats=1 -artifact_prefix="$art/" "${dirs[@]}" > "$log" 2>&1
  local rc=$?
  set -e
  local execs cov crashes
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | sed 's/cov: //')
  crashes=$(find "$art" -type f | wc -l)
  printf '| %-17s | %10s | %6s | %6s | %7s | %s\n' "$t" "${execs:-?}" "$(( $(date +%s) - start ))" "${cov:-?}" \
    "$crashes" "$([ $rc -eq 0 ] || echo "exit $rc: see $log")"
}
export -f run_target dict_of
export build root seeds runs seconds

printf '| %-17s | %10s | %6s | %6s | %7s |\n' target executions secs edges crashes
printf '|%s|\n' "-------------------|------------|--------|--------|---------"
# shellcheck disable=SC2086
printf '%s\n' $targets | xargs -P "$parallel" -I{} bash -c 'run_target {}'
