#!/usr/bin/env bash
# The test suite under sanitizers (docs/testing.md).
#   scripts/sanitize.sh address [ctest args]   ASan + UBSan, clang, the whole suite (build-asan, shared with
#                                              scripts/fuzz.sh)
#   scripts/sanitize.sh thread  [ctest args]   ThreadSanitizer, clang, over the threaded code that does not run
#                                              through LibTorch's OpenMP: tokenizer encode_batch, the infer writer
#                                              thread and queue, align's workers, eval's execution pool (build-tsan)
# LibTorch itself is not instrumented; the suppression files in fuzz/sanitizers/ name the only reports that
# are LibTorch's own. OMP_NUM_THREADS=1 keeps LibTorch's kernels on the calling thread.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
kind=${1:-address}
shift || true
jobs=${JOBS:-$(nproc)}
sup=$root/fuzz/sanitizers
export OMP_NUM_THREADS=1

case $kind in
  address)
    build=${SAN_BUILD_DIR:-$root/build-asan}
    [ -f "$build/CMakeCache.txt" ] ||
      cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
        -DFUSELLM_FUZZ=ON -DFUSELLM_SANITIZE=address,undefined -DFUSELLM_BUILD_BENCH=OFF
    cmake --build "$build" -j "$jobs"
    export ASAN_OPTIONS=${ASAN_OPTIONS:-"detect_leaks=1:abort_on_error=1:allocator_may_return_null=1"}
    export LSAN_OPTIONS=${LSAN_OPTIONS:-"suppressions=$sup/lsan.supp:print_suppressions=0"}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-"print_stacktrace=1:halt_on_error=1:suppressions=$sup/ubsan.supp"}
    cd "$build"
    ctest --output-on-failure -j "$jobs" --timeout 1800 "$@"
    ;;
  thread)
    build=${SAN_BUILD_DIR:-$root/build-tsan}
    [ -f "$build/CMakeCache.txt" ] ||
      cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
        -DFUSELLM_SANITIZE=thread -DFUSELLM_BUILD_BENCH=OFF
    cmake --build "$build" -j "$jobs" --target test_tokenizer test_teacher test_align test_eval
    export TSAN_OPTIONS=${TSAN_OPTIONS:-"halt_on_error=1:second_deadlock_stack=1:suppressions=$sup/tsan.supp"}
    cd "$build"
    status=0
    # The tests that run those threads (each binary's filter names them).
    ./tests/test_tokenizer --gtest_filter='*Batch*' "$@" || status=1
    ./tests/test_teacher --gtest_filter='Infer.*' "$@" || status=1
    ./tests/test_align --gtest_filter='AlignRunTest.*' "$@" || status=1
    ./tests/test_eval --gtest_filter='ExecutionPool*' "$@" || status=1
    exit $status
    ;;
  *)
    echo "sanitize: unknown kind '$kind' (address | thread)" >&2
    exit 2
    ;;
esac
