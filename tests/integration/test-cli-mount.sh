#!/bin/bash
# The CLI driving a real stackbackfs (SPEC §6, §7): `mount` starts the
# daemon found next to the CLI, job commands trigger and follow jobs
# through the mount and print the daemon's report, a second request is
# queued, `wait` and `status` read the daemon, Ctrl-C stops following
# but not the job, and a dead daemon's stale mount is an error naming
# `fusermount3 -u` that `umount` clears.
source "$(dirname "$0")/lib.sh"
need restic docker-compose fusermount3 python3 pgrep

sb_write_config
sb_busybox_image

sb() { "$SB" -c "$CFG" "$@"; }
run() {
	set +e
	sb "$@" >"$T/out" 2>"$T/err"
	RC=$?
	set -e
	OUT=$(cat "$T/out")
	ERR=$(cat "$T/err")
}
rs() { RESTIC_PASSWORD_FILE="$T/password" restic -r "$T/repo" --no-cache "$@"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
MNT="$T/mnt"
on_exit "fusermount3 -u -z '$MNT'"

WEB="${P}web"
BIG="${P}big"
sb_make_stack "$WEB"
sb_make_stack "$BIG"
head -c 20M /dev/urandom >"$T/stacks/$BIG/data/big.bin"
# The daemon inherits the gate: BIG's backups can be held while under way.
sb_gate_restic
sb_stack_up "$WEB"
sb_stack_up "$BIG"
printf '%s=true\n%s=false\n' "$WEB" "$BIG" >"$T/state/dirlist"
run init
assert_eq "$RC" 0 "init: $ERR"

note "mount starts the daemon next to the CLI and returns once it answers"
run mount
assert_eq "$RC" 0 "mount: $ERR"
assert_contains "$OUT" "mounted stackbackfs at $MNT"
grep -q " $MNT [^-]* - fuse.stackbackfs " /proc/self/mountinfo || fail "no stackbackfs at $MNT in mountinfo"
[ -f "$MNT/status.json" ] || fail "the mount has no status.json"
run mount
assert_eq "$RC" 0 "second mount"
assert_contains "$OUT" "already mounted"

note "status comes from the daemon"
run status --json
assert_eq "$RC" 0 "status: $ERR"
assert_eq "$(json 'd["state"]' <<<"$OUT")" idle
# Who reads the snapshots changes on its own after the mount (the repository is opened in the background).
stable='{k: v for k, v in d.items() if k != "snapshots"}'
assert_eq "$(json "$stable" <<<"$OUT")" "$(json "$stable" <"$MNT/status.json")"

note "backup goes through the daemon and prints its report"
run backup
assert_eq "$RC" 0 "backup through the daemon: $ERR"
assert_contains "$ERR" "queued in the daemon at $MNT"
id=$(sed -n 's/.*job \([0-9]*\) (backup) queued.*/\1/p' <<<"$ERR")
[ -n "$id" ] || fail "no job id in: $ERR"
assert_contains "$OUT" "job $id backup: ok"
assert_contains "$OUT" "$WEB"
assert_eq "$(tr -d '\n' <"$MNT/jobs/$id/state")" ok
assert_eq "$(rs snapshots --json | json 'len(d)')" 1
assert_eq "$(sb_stack_state "$WEB")" running
# The daemon's log lines reach the CLI's stderr.
assert_contains "$ERR" "job $id"

run backup --json --dry-run
assert_eq "$RC" 0 "dry run through the daemon: $ERR"
assert_eq "$(json 'd["dry_run"], d["state"], d["stacks"][0]["result"]' <<<"$OUT")" "True ok dry-run"
assert_eq "$(rs snapshots --json | json 'len(d)')" 1
run wait --timeout 30
assert_eq "$RC" 0 "wait after a dry run"
assert_contains "$OUT" "backup: ok"

note "a second request is queued behind the first; wait sees the queue"
sb_close_restic_gate
"$SB" -c "$CFG" backup "$BIG" >"$T/a.out" 2>"$T/a.err" &
a=$!
sb_wait_restic_held >/dev/null
"$SB" -c "$CFG" backup "$WEB" >"$T/b.out" 2>"$T/b.err" &
b=$!
for ((i = 0; i < 600; i++)); do
	grep -qs queued "$T/b.err" && break
	sleep 0.1
done
assert_contains "$(cat "$T/b.err")" queued
run wait --timeout 0.2
assert_eq "$RC" 124 "wait while the daemon is busy"
sb_open_restic_gate
set +e
wait "$a"
ra=$?
wait "$b"
rb=$?
set -e
assert_eq "$ra" 0 "first queued backup: $(cat "$T/a.err")"
assert_eq "$rb" 0 "second queued backup: $(cat "$T/b.err")"
assert_eq "$(rs snapshots --json | json 'len(d)')" 3

note "Ctrl-C stops following, not the job"
sb_close_restic_gate
"$SB" -c "$CFG" backup "$BIG" >"$T/c.out" 2>"$T/c.err" &
c=$!
sb_wait_restic_held >/dev/null
kill -INT "$c"
set +e
wait "$c"
rc=$?
set -e
sb_open_restic_gate
assert_eq "$rc" 1 "follower after SIGINT"
assert_contains "$(cat "$T/c.err")" "goes on in the daemon"
run wait --timeout 300
assert_eq "$RC" 0 "the job went on and ended ok: $OUT $ERR"
assert_eq "$(rs snapshots --json | json 'len(d)')" 4
assert_eq "$(sb_stack_state "$BIG")" running

daemon=$(pgrep -f "stackbackfs .*$MNT\$" || true)
[ -n "$daemon" ] || fail "cannot find the stackbackfs process for $MNT"

note "a hung daemon costs a timeout, not a hang"
kill -STOP $daemon
start=$SECONDS
run status
kill -CONT $daemon
assert_eq "$RC" 1 "status with the daemon stopped"
assert_contains "$ERR" "does not answer"
[ $((SECONDS - start)) -lt 30 ] || fail "status took $((SECONDS - start))s against a hung daemon"
run status --json
assert_eq "$RC" 0 "status once the daemon runs again: $ERR"

note "a dead daemon leaves a stale mount: an error naming the fix, never an in-process run"
kill -KILL $daemon
sleep 0.5
run backup
assert_eq "$RC" 1 "backup on a stale mount"
assert_contains "$ERR" "fusermount3 -u $MNT"
assert_eq "$(rs snapshots --json | json 'len(d)')" 4
run status
assert_eq "$RC" 1 "status on a stale mount"
assert_contains "$ERR" "fusermount3 -u $MNT"
run umount
assert_eq "$RC" 0 "umount of a stale mount: $ERR"
run backup --dry-run
assert_eq "$RC" 0 "in-process dry run once unmounted: $ERR"
assert_not_contains "$ERR" "queued in the daemon"

note "mount again, umount, umount once more"
run mount
assert_eq "$RC" 0 "remount: $ERR"
run umount
assert_eq "$RC" 0 "umount: $ERR"
assert_contains "$OUT" "unmounted $MNT"
run umount
assert_eq "$RC" 1 "umount with nothing mounted"
assert_contains "$ERR" "not mounted"

note "ok"
