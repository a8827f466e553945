#!/bin/sh
# The one test command (README, .ci/run): installs what is missing, starts
# a Docker engine if none answers, builds with warnings as errors, runs
# every suite, then reruns the suites under ASan+UBSan.
#
# Budgets on a 2-core machine: the main build and every suite ~20 min,
# the sanitizer rerun ~20 min. The sanitizer rerun leaves out suite 'e2e'
# (the demo and the documented commands: ~8 min driving the same binaries
# the other suites already cover). SB_TEST_SUITES limits the suites (e.g.
# "unit").
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

# ASan+UBSan: the same suites but 'e2e', with leak checking and aborting on any report.
run_build build-asan -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
# shellcheck disable=SC2086
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	meson test -C build-asan --print-errorlogs --num-processes 2 --no-suite e2e $suite_args || status=1

python3 "$top/scripts/test-summary.py" build-test/meson-logs/testlog.json build-asan/meson-logs/testlog.json
exit $status
