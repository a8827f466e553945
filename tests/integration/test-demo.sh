#!/bin/bash
# The README's quick start, run as printed (its ```sh demo block, from the
# source tree) into a temporary folder: everything it says to look at
# exists and shows a backup and a sync that worked; a second run works on
# top of the first; a failing step stops it with a non-zero exit and a
# message naming the step; `down` leaves nothing mounted or running and
# is safe to repeat. The demo builds with the tested build directory, and
# its stacks carry this run's prefix (compose project names are global).
source "$(dirname "$0")/lib.sh"
need docker docker-compose restic rclone fusermount3 meson python3 busybox
docker info >/dev/null 2>&1 || fail "no Docker engine answers (run scripts/dockerd.sh start)"

D="$T/demo"
export STACKBACK_DEMO_DIR="$D" STACKBACK_BUILD_DIR="$SB_BUILD" STACKBACK_DEMO_PREFIX="$P-"
web="$P-web" notes="$P-notes" cache="$P-cache"
M="$D/mnt"
on_exit "fusermount3 -u -z '$M'"
for s in "$web" "$notes" "$cache"; do
	on_exit "docker-compose -f '$D/stacks/$s/compose.yaml' down -t 1"
done
on_exit "'$SB_SRC/scripts/demo.sh' down"

# running|stopped, as compose (v1 here) says for a demo stack.
demo_stack_state() {
	local n
	n=$(cd "$D/stacks/$1" && docker-compose ps --services --filter status=running 2>/dev/null | grep -c . || true)
	if [ "$n" -gt 0 ]; then echo running; else echo stopped; fi
}

demo_mounted() {
	grep -q " $M [^ ]* [^-]*- fuse.stackbackfs " /proc/self/mountinfo
}

note "the quick start's demo block"
blocks() { python3 "$SB_SRC/tests/integration/docblocks.py" "$@"; }
line=$(blocks list "$SB_SRC/README.md" | awk -F'\t' '$4 == "Quick start" && $3 == "sh demo" { print $2; exit }')
[ -n "$line" ] || fail "README.md has no \`\`\`sh demo block under '## Quick start'"
blocks body "$SB_SRC/README.md" "$line" >"$T/demo-block.sh"
cat "$T/demo-block.sh"

# run_demo LOG: the block, from the source tree, as a reader pastes it.
run_demo() {
	(cd "$SB_SRC" && bash -e "$T/demo-block.sh") >"$1" 2>&1
}

# Everything the demo prints to look at: every absolute path exists.
check_printed_paths() {
	local out=$1 p n=0
	assert_contains "$(cat "$out")" "The demo is up"
	for p in $(sed -n '/^The demo is up/,$p' "$out" | grep -oE '(^| )/[^ ]+' | sed 's/[.,;:)]*$//'); do
		[ -e "$p" ] || fail "the demo prints $p, which does not exist"
		n=$((n + 1))
	done
	[ "$n" -ge 10 ] || fail "the demo printed only $n paths to look at: $(cat "$out")"
}

# The state the demo leaves: what it says it did.
check_demo_state() {
	local status
	demo_mounted || fail "the demo left nothing mounted at $M"
	status=$(cat "$M/status")
	assert_contains "$status" "state: idle"
	assert_contains "$status" "last.kind: sync"
	assert_contains "$status" "last.state: ok"
	assert_contains "$(cat "$M/cloud/status")" "ok" "cloud/status"
	assert_eq "$(ls "$M/enabled" | tr '\n' ' ')" "$notes $web " "enabled/"
	assert_eq "$(ls "$M/disabled" | tr '\n' ' ')" "$cache " "disabled/"
	# The newest snapshot is the stack's own directory at its root.
	assert_eq "$(ls "$M/snapshots/$web/latest/" | tr '\n' ' ')" "compose.yaml data " "snapshots/$web/latest/"
	assert_contains "$(cat "$M/snapshots/$web/latest/data/index.html")" "hello from the stackback demo"
	assert_contains "$(cat "$M/snapshots/$notes/latest/data/todo.txt")" "back up the stacks"
	[ -e "$M/snapshots/$cache" ] && [ -n "$(ls "$M/snapshots/$cache")" ] &&
		fail "the disabled stack $cache was backed up"
	# The repository reached the "cloud" folder.
	[ -f "$D/cloud/config" ] || fail "no restic repository in the cloud folder $D/cloud"
	# Backed up stacks run again, and so does the one never touched.
	for s in "$web" "$notes" "$cache"; do
		assert_eq "$(cat "$M/stacks/$s/state")" running "state of $s after the demo"
	done
	# The password was generated, and it and the configuration are private.
	assert_eq "$(stat -c %a "$D/restic-password")" 600
	assert_eq "$(stat -c %a "$D/config.ini")" 600
	[ -n "$(cat "$D/restic-password")" ] || fail "the generated password is empty"
	# The demo did not start a Docker engine: one was running.
	[ ! -e "$D/dockerd.pid" ] || fail "the demo started a Docker engine although one was running"
}

# snapshot_count NAME: the snapshot directories under snapshots/NAME (not latest).
snapshot_count() {
	local n=0 e
	for e in "$M/snapshots/$1"/*_*; do
		[ -d "$e" ] && n=$((n + 1))
	done
	echo "$n"
}

note "first run"
run_demo "$T/run1.log" || fail "the demo failed: $(tail -30 "$T/run1.log")"
check_printed_paths "$T/run1.log"
check_demo_state
assert_eq "$(snapshot_count "$web")" 1 "snapshots of $web after one run"
password=$(cat "$D/restic-password")

note "second run, on top of the first"
run_demo "$T/run2.log" || fail "the demo failed when run again: $(tail -30 "$T/run2.log")"
check_printed_paths "$T/run2.log"
check_demo_state
assert_eq "$(cat "$D/restic-password")" "$password" "the password after a second run"
assert_eq "$(snapshot_count "$web")" 2 "snapshots of $web after two runs"
assert_contains "$("$SB_SRC/scripts/demo.sh" status)" "last.state: ok"

note "a failing step stops the demo, naming it"
echo "not-the-password" >"$D/restic-password"
set +e
run_demo "$T/run3.log"
rc=$?
set -e
assert_eq "$rc" 1 "exit status of a failing demo ($(tail -5 "$T/run3.log"))"
assert_contains "$(cat "$T/run3.log")" "demo: error: "
assert_contains "$(grep 'demo: error' "$T/run3.log")" "failed (see the lines above)"
assert_not_contains "$(cat "$T/run3.log")" "The demo is up"
for s in "$web" "$notes" "$cache"; do
	assert_eq "$(demo_stack_state "$s")" running "state of $s after a failed demo"
done
echo "$password" >"$D/restic-password"

note "a folder that is not the demo's is refused"
mkdir "$T/other"
echo precious >"$T/other/file"
set +e
out=$(STACKBACK_DEMO_DIR="$T/other" "$SB_SRC/scripts/demo.sh" 2>&1)
rc=$?
set -e
assert_eq "$rc" 1 "exit status for a foreign folder ($out)"
assert_contains "$out" "is not a stackback demo folder"
assert_eq "$(ls -A "$T/other")" "file" "the foreign folder after the refusal"

note "down: nothing mounted, no container, no daemon; Docker still runs"
"$SB_SRC/scripts/demo.sh" down >"$T/down.log" 2>&1 || fail "demo down failed: $(cat "$T/down.log")"
demo_mounted && fail "$M is still mounted after down"
left=$(docker ps -a --filter "name=^$P-" --format '{{.Names}}')
[ -z "$left" ] || fail "containers left after down: $left"
for pid in $(pgrep -x stackbackfs || true); do
	case " $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) " in
	*" $M "*) fail "stackbackfs $pid still serves $M after down" ;;
	esac
done
docker info >/dev/null 2>&1 || fail "down stopped a Docker engine the demo did not start"
assert_contains "$(cat "$T/down.log")" "rm -rf $D"

note "down again, and status, when the demo is down"
"$SB_SRC/scripts/demo.sh" down >"$T/down2.log" 2>&1 || fail "a second down failed: $(cat "$T/down2.log")"
assert_contains "$("$SB_SRC/scripts/demo.sh" status)" "is not mounted"

echo "ok"
