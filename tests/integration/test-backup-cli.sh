#!/bin/bash
# Stage 1 from the CLI, in process (no daemon mounted), against real
# Docker compose stacks and a real restic repository (SPEC §1, §5, §7):
# snapshots carry the stackback and stack-name tags and restore to the
# source; running stacks run again, stopped ones stay stopped; a dry run
# writes nothing; a second run is refused naming the holder's PID or
# waits with --wait-lock; SIGTERM to the CLI, SIGKILL of the CLI then
# `recover`, and SIGKILL of restic all leave the stack running.
source "$(dirname "$0")/lib.sh"
need restic docker-compose python3 sha256sum pgrep script

sb_write_config
sb_busybox_image

sb() { "$SB" -c "$CFG" "$@"; }
# Runs sb, keeping stdout in $OUT, stderr in $ERR, the exit code in $RC.
run() {
	set +e
	sb "$@" >"$T/out" 2>"$T/err"
	RC=$?
	set -e
	OUT=$(cat "$T/out")
	ERR=$(cat "$T/err")
}
rs() { RESTIC_PASSWORD_FILE="$T/password" restic -r "$T/repo" --no-cache "$@"; }
# Evaluates a python expression over JSON on stdin bound to `d`.
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
# Everything in STATE_DIR (names, sizes, contents) and the dirlist, as one sum.
state_sum() {
	(cd "$T/state" && find . -printf '%p %s %y\n' | LC_ALL=C sort && find . -type f -print0 |
		LC_ALL=C sort -z | xargs -0r sha256sum) | sha256sum | cut -d' ' -f1
}
snapshot_count() { rs snapshots --json | json 'len(d)'; }
# Waits for the background process $1, which must exit non-zero ($2 names it).
wait_failed() {
	local rc
	set +e
	wait "$1"
	rc=$?
	set -e
	[ "$rc" != 0 ] || fail "$2 exited 0"
}

WEB="${P}web"
IDLE="${P}idle"
BIG="${P}big"
sb_make_stack "$WEB"
sb_make_stack "$IDLE"
sb_make_stack "$BIG"
mkdir -p "$T/stacks/$WEB/data/sub dir"
echo "nested" >"$T/stacks/$WEB/data/sub dir/file with spaces.txt"
head -c 20M /dev/urandom >"$T/stacks/$BIG/data/big.bin"
# Each interruption below meets BIG's backup held at the gate, certainly under way.
sb_gate_restic
sb_stack_up "$WEB"
sb_stack_up "$IDLE"
docker-compose -f "$T/stacks/$IDLE/docker-compose.yml" stop -t 1 >/dev/null 2>&1
sb_stack_up "$BIG"
# The big stack stays disabled: it is only backed up by name.
printf '%s=true\n%s=true\n%s=false\n' "$WEB" "$IDLE" "$BIG" >"$T/dirlist.initial"
assert_eq "$(sb_stack_state "$WEB")" running
assert_eq "$(sb_stack_state "$IDLE")" stopped

note "status and wait before anything ran"
rm -rf "$T/state"
run status --json
assert_eq "$RC" 0 "status without STATE_DIR"
assert_eq "$(json 'd["state"], d["last"], d["queue"]' <<<"$OUT")" "idle None 0"
run wait --timeout 5
assert_eq "$RC" 0 "wait with no job ever"
assert_contains "$OUT" "no job has run"
[ ! -e "$T/state" ] || fail "status or wait created STATE_DIR"

note "init creates STATE_DIR and the repository once"
run init
assert_eq "$RC" 0 "init: $ERR"
assert_contains "$OUT" "state directory $T/state: created"
assert_contains "$OUT" "restic repository $T/repo: created"
run init
assert_eq "$RC" 0 "second init: $ERR"
assert_contains "$OUT" "restic repository $T/repo: exists"
cp "$T/dirlist.initial" "$T/state/dirlist"

note "a dry run writes nothing and stops nothing"
before=$(state_sum)
run backup --dry-run
assert_eq "$RC" 0 "dry run: $ERR"
assert_contains "$OUT" "dry run"
assert_contains "$OUT" "$WEB"
assert_contains "$OUT" "$IDLE"
assert_not_contains "$OUT" "$BIG"
assert_eq "$(state_sum)" "$before" "STATE_DIR changed by a dry run"
assert_eq "$(snapshot_count)" 0 "snapshots after a dry run"
[ ! -e "$T/state/lock" ] || fail "a dry run created the job lock"
run backup --dry-run --json
assert_eq "$RC" 0 "dry run --json: $ERR"
assert_eq "$(json 'd["dry_run"], d["state"], sorted(s["result"] for s in d["stacks"])' <<<"$OUT")" \
	"True ok ['dry-run', 'dry-run']"
assert_eq "$(state_sum)" "$before" "STATE_DIR changed by a JSON dry run"
assert_eq "$(sb_stack_state "$WEB")" running

note "backup: every enabled stack, tagged, restorable, states kept"
run backup
assert_eq "$RC" 0 "backup: $ERR"
assert_contains "$OUT" "2 of 2 stacks backed up"
assert_eq "$(sb_stack_state "$WEB")" running "web after backup"
assert_eq "$(sb_stack_state "$IDLE")" stopped "idle after backup"
rs snapshots --json >"$T/snaps.json"
assert_eq "$(json 'len(d)' <"$T/snaps.json")" 2
for name in "$WEB" "$IDLE"; do
	id=$(json "[s['id'] for s in d if sorted(s.get('tags', [])) == sorted(['stackback', '$name'])][0]" <"$T/snaps.json")
	rs restore "$id" --target "$T/restore-$name" >/dev/null
	src="$T/stacks/$name"
	got="$T/restore-$name$src"
	[ -d "$got" ] || got="$T/restore-$name"
	[ -f "$got/data/hello.txt" ] || fail "restored snapshot of $name has no data/hello.txt"
	# The stack appends to data/ticks while it runs: the copy must be a prefix.
	diff -r --exclude=ticks "$src" "$got" || fail "restored $name differs from its source"
	if [ -f "$got/data/ticks" ]; then
		cmp -n "$(stat -c %s "$got/data/ticks")" "$got/data/ticks" "$src/data/ticks" ||
			fail "restored ticks of $name is not a prefix of the live file"
	fi
done
[ -f "$T/restore-$WEB$T/stacks/$WEB/data/sub dir/file with spaces.txt" ] ||
	[ -f "$T/restore-$WEB/data/sub dir/file with spaces.txt" ] || fail "nested file not restored"

note "progress: plain lines without a terminal, a bar redrawn in place on one, none with --json"
assert_contains "$ERR" "stackback: [1/2] $WEB: stop"
assert_contains "$ERR" "stackback: [1/2] $WEB: backup"
assert_contains "$ERR" "stackback: [2/2] $IDLE: backup"
assert_not_contains "$ERR" $'\r'
# script(1) gives the CLI a terminal and records every byte it writes.
SHELL=/bin/sh script -qec "'$SB' -c '$CFG' backup '$WEB'" /dev/null >"$T/tty.out" 2>&1 ||
	fail "backup on a terminal failed: $(cat "$T/tty.out")"
grep -aq $'\r\033\[K\[1/1\] '"$WEB"'  stop' "$T/tty.out" || fail "no progress bar on the terminal: $(cat -v "$T/tty.out")"
grep -aq $'\r\033\[K\[1/1\] '"$WEB"'  start' "$T/tty.out" || fail "the bar did not follow the phases"
assert_not_contains "$(cat "$T/tty.out")" "[1/1] $WEB: stop" "log-style progress on a terminal"
# The bar is cleared before the report, which starts on a clean line.
grep -aq $'\r\033\\[Kjob [0-9]* backup: ok' "$T/tty.out" || fail "no report after a cleared bar"
run backup --json "$WEB"
assert_eq "$RC" 0
assert_not_contains "$ERR" "[1/1]" "progress with --json"

note "snapshots lists them, as a table and as JSON"
run snapshots --json
assert_eq "$RC" 0 "snapshots --json: $ERR"
assert_eq "$(json 'sorted(set(s["stack"] for s in d))' <<<"$OUT")" "$(python3 -c "print(sorted(['$WEB', '$IDLE']))")"
assert_eq "$(json 'all(len(s["short_id"]) == 8 and s["id"].startswith(s["short_id"]) and s["time"] and s["hostname"] == "sbtest" and "stackback" in s["tags"] and s["paths"] for s in d)' <<<"$OUT")" True
run snapshots "$WEB"
assert_eq "$RC" 0
assert_contains "$OUT" "$WEB"
assert_not_contains "$OUT" "$IDLE"
run snapshots "bad/name"
assert_eq "$RC" 2 "snapshots with a bad name"

note "backup --json of one named stack"
run backup --json "$WEB"
assert_eq "$RC" 0 "backup --json: $ERR"
assert_eq "$(json 'd["state"], d["kind"], [s["stack"] for s in d["stacks"]], d["stacks"][0]["restarted"]' <<<"$OUT")" \
	"ok backup ['$WEB'] True"
assert_eq "$(snapshot_count)" 5

note "usage errors exit 2"
run backup --no-such-option
assert_eq "$RC" 2
run backup "../escape"
assert_eq "$RC" 2
run sync extra-arg
assert_eq "$RC" 2
run wait --timeout soon
assert_eq "$RC" 2
run backup --help
assert_eq "$RC" 0
assert_contains "$OUT" "--wait-lock"

note "a second run is refused naming the PID; --wait-lock waits; wait and status see it"
sb_close_restic_gate
"$SB" -c "$CFG" backup "$BIG" >"$T/big.out" 2>"$T/big.err" &
big_pid=$!
sb_wait_restic_held >/dev/null
run backup "$WEB"
assert_eq "$RC" 1 "concurrent backup"
assert_contains "$ERR" "pid $big_pid"
run status --json
assert_eq "$(json 'd["state"]' <<<"$OUT")" running
run wait --timeout 0.5
assert_eq "$RC" 124 "wait while a job runs"
"$SB" -c "$CFG" backup --wait-lock "$WEB" >"$T/waiter.out" 2>"$T/waiter.err" &
waiter_pid=$!
for ((i = 0; i < 600; i++)); do
	grep -qs "waiting for the job lock" "$T/waiter.err" && break
	kill -0 "$waiter_pid" 2>/dev/null || fail "--wait-lock did not wait: $(cat "$T/waiter.err")"
	sleep 0.1
done
sb_open_restic_gate
set +e
wait "$big_pid"
big_rc=$?
wait "$waiter_pid"
waiter_rc=$?
set -e
assert_eq "$big_rc" 0 "big backup: $(cat "$T/big.err")"
assert_eq "$waiter_rc" 0 "backup after --wait-lock: $(cat "$T/waiter.err")"
assert_contains "$(cat "$T/waiter.err")" "waiting for the job lock held by pid $big_pid"
assert_eq "$(sb_stack_state "$BIG")" running
run wait
assert_eq "$RC" 0 "wait after two good jobs"
assert_contains "$OUT" "backup: ok"

note "SIGTERM to the CLI mid-backup: the stack runs again, the job is cancelled"
sb_close_restic_gate
"$SB" -c "$CFG" backup "$BIG" >"$T/term.out" 2>"$T/term.err" &
pid=$!
sb_wait_restic_held >/dev/null
kill -TERM "$pid"
wait_failed "$pid" "a cancelled backup"
assert_contains "$(cat "$T/term.out")" "cancelled"
assert_eq "$(sb_stack_state "$BIG")" running "big after SIGTERM"
grep -qs "$BIG" "$T/state/journal" && fail "journal still lists $BIG after a clean cancel"
run wait
assert_eq "$RC" 1 "wait after a cancelled job"
assert_contains "$OUT" "cancelled"

note "stackback cancel without the daemon: the process that runs the job cancels it"
run cancel
assert_eq "$RC" 1 "cancel with nothing running"
assert_contains "$ERR" "no job is running"
sb_close_restic_gate
"$SB" -c "$CFG" backup "$BIG" >"$T/cancel.out" 2>"$T/cancel.err" &
pid=$!
sb_wait_restic_held >/dev/null
run cancel 7
assert_eq "$RC" 2 "cancel ID without the daemon"
run cancel
assert_eq "$RC" 0 "cancel: $ERR"
assert_eq "$OUT" "asked process $pid to cancel its job"
wait_failed "$pid" "a cancelled backup"
assert_contains "$(cat "$T/cancel.out")" "cancelled"
assert_eq "$(sb_stack_state "$BIG")" running "big after stackback cancel"

note "SIGKILL of the CLI mid-backup, then recover"
sb_close_restic_gate
"$SB" -c "$CFG" backup "$BIG" >/dev/null 2>&1 &
pid=$!
restic_pid=$(sb_wait_restic_held)
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
# restic lives on in its own process group: end it, as a reboot would.
kill -KILL "$restic_pid" 2>/dev/null || true
assert_eq "$(sb_stack_state "$BIG")" stopped "big right after the CLI was killed"
run recover
assert_eq "$RC" 0 "recover: $ERR"
assert_contains "$OUT" "started stack '$BIG'"
assert_eq "$(sb_stack_state "$BIG")" running "big after recover"
run recover
assert_eq "$RC" 0
assert_contains "$OUT" "nothing to recover"

note "SIGKILL of restic mid-backup: that stack fails clearly and runs again"
sb_close_restic_gate
"$SB" -c "$CFG" backup "$BIG" "$WEB" >"$T/rk.out" 2>"$T/rk.err" &
pid=$!
restic_pid=$(sb_wait_restic_held)
kill -KILL "$restic_pid"
sb_open_restic_gate
set +e
wait "$pid"
rc=$?
set -e
assert_eq "$rc" 1 "backup with restic killed"
grep -E "^  $BIG +failed .*(signal 9|killed)" "$T/rk.out" >/dev/null ||
	fail "the report does not say restic was killed: $(cat "$T/rk.out")"
grep -E "^  $WEB +ok " "$T/rk.out" >/dev/null || fail "the other stack was not backed up: $(cat "$T/rk.out")"
assert_eq "$(sb_stack_state "$BIG")" running "big after restic was killed"
assert_eq "$(sb_stack_state "$WEB")" running "web after the job"
run wait
assert_eq "$RC" 1 "wait after a failed job"
run status --json
assert_eq "$(json 'd["state"], d["last"]["state"]' <<<"$OUT")" "idle failed"

note "check and forget run as jobs too"
run check
assert_eq "$RC" 0 "check: $OUT $ERR"
assert_contains "$OUT" "check: ok"
run check --json
assert_eq "$(json 'd["kind"], d["state"]' <<<"$OUT")" "check ok"
count=$(snapshot_count)
printf '\n[local_backup]\nKEEP_DAILY=1\n' >>"$CFG"
run forget --dry-run "$WEB"
assert_eq "$RC" 0 "forget --dry-run: $OUT $ERR"
assert_eq "$(snapshot_count)" "$count" "a dry-run forget removed snapshots"
run forget "$WEB"
assert_eq "$RC" 0 "forget: $OUT $ERR"
assert_eq "$(rs snapshots --json --tag "$WEB" | json 'len(d)')" 1 "snapshots of $WEB kept by KEEP_DAILY=1"
run wait
assert_eq "$RC" 0 "wait after a good forget"
assert_contains "$OUT" "forget: ok"

note "ok"
