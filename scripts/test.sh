#!/bin/sh
# The one test command (README, .ci/run): installs what is missing, starts
# a Docker engine if none answers, builds with warnings as errors, runs
# every suite, then reruns the suites under ASan+UBSan, the unit suite
# under valgrind, and every fuzzer.
#
# Budgets on a 2-core machine (CI allows 60 min in all): the main build and
# every suite, the fault matrix included, ~25 min (the matrix alone <= 15,
# running beside the others); the sanitizer rerun ~15 min; memcheck on the
# unit suite ~5 min; fuzzing <= 7 min with the clang build
# (docs/reliability.md). The sanitizer rerun leaves out suite 'faults' (it
# asserts behaviour, not memory, and has no time for a second run) and
# suite 'e2e' (the demo and the documented commands, driving the same
# binaries the other suites already cover).
#
# SB_TEST_SUITES limits the suites (e.g. "unit"); SB_FUZZ_SECONDS sets the
# fuzzing total (0 skips it); SB_VALGRIND=0 skips memcheck.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)

scripts/install-deps.sh
scripts/dockerd.sh start
trap 'scripts/dockerd.sh stop' EXIT INT TERM

suites=${SB_TEST_SUITES:-}
suite_args=""
for s in $suites; do suite_args="$suite_args --suite $s"; done

status=0
run_build() {
	dir=$1
	shift
	if [ -d "$dir" ]; then
		meson setup --reconfigure "$dir" "$@" >/dev/null
	else
		meson setup "$dir" "$@" >/dev/null
	fi
	meson compile -C "$dir"
}

run_build build-test -Dwerror=true
# shellcheck disable=SC2086
meson test -C build-test --print-errorlogs --num-processes 2 $suite_args || status=1
logs="build-test/meson-logs/testlog.json"

# ASan+UBSan, with leak checking and aborting on any report.
run_build build-asan -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
# shellcheck disable=SC2086
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	meson test -C build-asan --print-errorlogs --num-processes 2 --no-suite faults --no-suite e2e $suite_args || status=1
logs="$logs build-asan/meson-logs/testlog.json"

# memcheck on the unit suite: any error or definite leak fails a test.
if [ "${SB_VALGRIND:-1}" != 0 ]; then
	meson test -C build-test --setup=valgrind --suite unit --print-errorlogs --num-processes 2 || status=1
	logs="$logs build-test/meson-logs/testlog-valgrind.json"
fi

# Every libFuzzer harness for an equal share of 4 minutes (the clang build
# takes most of the rest of the 7).
fuzz_total=${SB_FUZZ_SECONDS:-240}
if [ "$fuzz_total" != 0 ]; then
	harnesses=$(grep -c "^  \['" tests/fuzz/meson.build)
	per=$((fuzz_total / harnesses))
	[ "$per" -ge 10 ] || per=10
	scripts/fuzz.sh "$per" || status=1
fi

# shellcheck disable=SC2086
python3 "$top/scripts/test-summary.py" $logs || status=1
exit $status
