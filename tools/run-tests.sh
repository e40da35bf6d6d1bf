#!/usr/bin/env bash
# run-tests.sh BUILD ASAN_BUILD - runs every meson test of BUILD and the unit
# suite of ASAN_BUILD, then prints one line "N passed, N failed" counting
# individual test cases (cmocka and unittest), and exits non-zero on any
# failure.
set -uo pipefail
build=$1 asan=$2
here=$(cd "$(dirname "$0")" && pwd)
export RINGKV_TEST_SEED=${RINGKV_TEST_SEED:-$(date +%s)}
echo "test seed: RINGKV_TEST_SEED=$RINGKV_TEST_SEED"

rc=0
echo "== unit and integration tests ($build)"
meson test -C "$build" --print-errorlogs --num-processes 2 || rc=1
echo "== unit tests under AddressSanitizer + UndefinedBehaviorSanitizer ($asan)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  LSAN_OPTIONS=suppressions=$here/../tests/unit/lsan.supp:print_suppressions=0 \
  meson test -C "$asan" --suite unit --print-errorlogs --num-processes 2 || rc=1

python3 "$here/test-summary.py" "$build/meson-logs/testlog.json" "$asan/meson-logs/testlog.json" || rc=1
exit $rc
