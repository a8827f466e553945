#!/bin/sh
# Runs every libFuzzer harness of tests/fuzz/meson.build for SECONDS each
# (default 60), with ASan and UBSan, starting from its seed corpus
# tests/fuzz/corpus/NAME/. Builds build-fuzz with clang (-Dfuzz=true) first.
#
# New interesting inputs go to build-fuzz/fuzz-corpus/NAME/, never into the
# repository; copy the ones worth keeping into tests/fuzz/corpus/NAME/ (the
# 'unit' test fuzz_NAME then replays them in every build). A crash, leak,
# sanitizer report or timeout leaves build-fuzz/fuzz-artifacts/NAME-* and
# makes this script exit 1; reproduce with build-fuzz/tests/fuzz/fuzz_NAME FILE.
set -eu
secs=${1:-60}
case $secs in
'' | *[!0-9]*)
	echo "usage: scripts/fuzz.sh [SECONDS_PER_HARNESS]" >&2
	exit 2
	;;
esac
cd "$(dirname "$0")/.."
build="build-fuzz"

command -v clang >/dev/null 2>&1 || {
	echo "fuzz.sh: clang is required (scripts/install-deps.sh installs it)" >&2
	exit 1
}
if [ -d "$build" ]; then
	meson setup --reconfigure "$build" -Dfuzz=true >/dev/null
else
	CC=clang meson setup "$build" -Dfuzz=true >/dev/null
fi
meson compile -C "$build"

status=0
found=0
for bin in "$build"/tests/fuzz/fuzz_*; do
	if [ ! -f "$bin" ] || [ ! -x "$bin" ]; then
		continue # the .p object directories
	fi
	name=${bin##*/fuzz_}
	found=$((found + 1))
	work="$build/fuzz-corpus/$name"
	artifacts="$build/fuzz-artifacts"
	mkdir -p "$work" "$artifacts"
	echo "fuzz.sh: $name for ${secs}s"
	if ! "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$artifacts/$name-" \
		"$work" "tests/fuzz/corpus/$name"; then
		echo "fuzz.sh: $name failed: see $artifacts/$name-*" >&2
		status=1
	fi
done
if [ "$found" = 0 ]; then
	echo "fuzz.sh: no fuzz_* binary in $build/tests/fuzz" >&2
	exit 1
fi
exit $status
