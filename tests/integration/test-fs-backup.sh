#!/bin/bash
# End to end through the mount with real Docker and restic (SPEC §1
# Stage 1, §2): `echo 1 > trigger/backup` backs up every enabled stack
# into snapshots tagged with its name, leaves running stacks running and
# stopped ones stopped, and the results show in jobs/ID/, status,
# stacks/NAME/last_backup and metrics, also after a remount (read back
# from STATE_DIR). trigger/check runs restic check; tail -f follows a
# job's log.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-fs.sh"
need docker-compose restic

sb_write_config
sb_busybox_image
WEB="${P}web"
DB="${P}db"
OFF="${P}off"
SKIP="${P}skip"
for s in "$WEB" "$DB" "$OFF" "$SKIP"; do sb_make_stack "$s"; done
sb_stack_up "$WEB"
sb_stack_up "$DB"
sb_stack_up "$SKIP"
printf '%s=true\n%s=true\n%s=true\n%s=false\n' "$WEB" "$DB" "$OFF" "$SKIP" >"$T/state/dirlist"
rs() { RESTIC_PASSWORD_FILE="$T/password" restic -r "$T/repo" --no-cache "$@"; }
rs init >/dev/null
sbfs_mount

note "echo 1 > trigger/backup queues a backup of every enabled stack"
echo 1 >"$MNT/trigger/backup"
id=$(readlink "$MNT/jobs/last")
assert_contains "$(cat "$MNT/trigger/backup")" "job $id "
assert_eq "$(sbfs_wait_job "$id" 300)" ok "$(cat "$MNT/jobs/$id/log")"
assert_eq "$(cat "$MNT/trigger/backup")" "job $id ok"

note "one snapshot per enabled stack, tagged stackback and its name"
snaps=$(rs snapshots --json)
assert_eq "$(json 'len(d)' <<<"$snaps")" 3
for s in "$WEB" "$DB" "$OFF"; do
	assert_eq "$(json "sum(1 for x in d if sorted(x['tags']) == sorted(['stackback', '$s']))" <<<"$snaps")" 1 "snapshot of $s"
done

note "running stacks run again, stopped ones stay stopped, the disabled one was not touched"
assert_eq "$(sb_stack_state "$WEB") $(sb_stack_state "$DB") $(sb_stack_state "$OFF") $(sb_stack_state "$SKIP")" \
	"running running stopped running"
assert_eq "$(cat "$MNT/stacks/$WEB/state")" running
assert_eq "$(cat "$MNT/stacks/$OFF/state")" stopped

note "the results: report, last_backup, status, metrics"
report=$(cat "$MNT/jobs/$id/report")
assert_eq "$(json '[(s["stack"], s["result"], s["was_running"], s["restarted"]) for s in d["stacks"]]' <<<"$report")" \
	"[('$WEB', 'ok', True, True), ('$DB', 'ok', True, True), ('$OFF', 'ok', False, False)]"
web_snap=$(json "[x['id'] for x in d if '$WEB' in x['tags']][0]" <<<"$snaps")
last=$(cat "$MNT/stacks/$WEB/last_backup")
assert_contains "$last" "result: ok"
sid=$(sed -n 's/^snapshot_id: //p' <<<"$last")
[ ${#sid} -ge 8 ] && [[ "$web_snap" == "$sid"* ]] || fail "last_backup names snapshot '$sid', restic has $web_snap"
assert_contains "$last" "job: $id"
grep -q '^downtime_s: [0-9.]*$' <<<"$last" || fail "no downtime in last_backup: $last"
assert_eq "$(cat "$MNT/stacks/$SKIP/last_backup")" never
assert_eq "$(json 'd["state"], d["job"], d["last"]["id"], d["last"]["kind"], d["last"]["state"]' <"$MNT/status.json")" \
	"idle None $id backup ok"
metrics=$(cat "$MNT/metrics")
assert_contains "$metrics" "stackback_stack_last_backup_success{stack=\"$WEB\"} 1"
assert_contains "$metrics" "stackback_last_job_success{kind=\"backup\"} 1"
grep -q "^stackback_stack_last_backup_timestamp_seconds{stack=\"$OFF\"} [0-9.]*$" <<<"$metrics" ||
	fail "no last backup time for $OFF in metrics"
grep -q "^stackback_stack_last_backup_bytes_added{stack=\"$DB\"} [0-9]*$" <<<"$metrics" ||
	fail "no bytes added for $DB in metrics"
assert_not_contains "$metrics" "last_backup_success{stack=\"$SKIP\"}" "a stack never backed up has no result"
# The first count is restic's, listed beside the job: each new snapshot counts once whenever it was listed.
for s in "$WEB" "$DB" "$OFF"; do
	assert_contains "$metrics" "stackback_stack_snapshots{stack=\"$s\"} 1"
done

note "a backup named on the trigger runs even for a disabled stack; tail -f follows its log"
id2=$(sbfs_trigger backup "$SKIP")
tail -n +1 -f "$MNT/jobs/$id2/log" >"$T/tail.out" 2>&1 &
tailer=$!
assert_eq "$(sbfs_wait_job "$id2" 300)" ok
for ((i = 0; i < 300; i++)); do
	grep -q "job $id2: backup ok" "$T/tail.out" && break
	sleep 0.1
done
kill "$tailer"
wait "$tailer" || true
assert_contains "$(cat "$T/tail.out")" "job $id2: backup $SKIP started"
assert_contains "$(cat "$T/tail.out")" "job $id2: backup ok"
assert_eq "$(rs snapshots --json --tag "$SKIP" | json 'len(d)')" 1
assert_eq "$(sb_stack_state "$SKIP")" running

note "trigger/check runs restic check"
id3=$(sbfs_trigger check 1)
assert_eq "$(sbfs_wait_job "$id3" 300)" ok

note "after a remount, the jobs are read back from STATE_DIR"
sbfs_umount
sbfs_mount
assert_eq "$(ls "$MNT/jobs" | tr '\n' ' ')" "$id $id2 $id3 last "
assert_eq "$(cat "$MNT/jobs/$id/state")" ok
assert_eq "$(json 'd["id"], d["state"], len(d["stacks"])' <"$MNT/jobs/$id/report")" "$id ok 3"
assert_contains "$(cat "$MNT/jobs/$id/log")" "job $id"
assert_eq "$(json 'd["last"]["id"], d["last"]["state"]' <"$MNT/status.json")" "$id3 ok"
assert_eq "$(cat "$MNT/trigger/backup")" "" "a new daemon has no trigger result yet"

note "stacks/NAME/state follows the job's steps: stopped while restic reads it, running after"
head -c 300M /dev/urandom >"$T/stacks/$DB/data/big.bin"
# Read now, so the daemon holds a fresh "running" when the job starts.
assert_eq "$(cat "$MNT/stacks/$DB/state")" running
id4=$(sbfs_trigger backup "$DB")
for ((i = 0; i < 600; i++)); do
	grep -qx "phase: backup" "$MNT/jobs/$id4/progress" && break
	sleep 0.05
done
grep -qx "phase: backup" "$MNT/jobs/$id4/progress" || fail "no backup phase seen: $(cat "$MNT/jobs/$id4/progress")"
assert_eq "$(cat "$MNT/stacks/$DB/state")" stopped "state while restic reads the stopped stack"
assert_eq "$(sbfs_wait_job "$id4" 300)" ok
assert_eq "$(cat "$MNT/stacks/$DB/state")" running

note "jobs/ID/cancel: a queued job never runs; a running one stops and starts its stack again"
head -c 400M /dev/urandom >"$T/stacks/$DB/data/big.bin"
id5=$(sbfs_trigger backup "$DB")
id6=$(sbfs_trigger backup "$WEB")
assert_eq "$(cat "$MNT/jobs/$id6/cancel")" queued
assert_eq "$(probe handshake "$MNT/jobs/$id6/cancel" 1)" "$(printf 'ok 1\ncancelling job %s' "$id6")"
assert_eq "$(cat "$MNT/jobs/$id6/state")" cancelled
for ((i = 0; i < 600; i++)); do
	grep -qx "phase: backup" "$MNT/jobs/$id5/progress" && break
	sleep 0.05
done
assert_eq "$(sb_stack_state "$DB")" stopped
assert_eq "$(probe write "$MNT/jobs/$id5/cancel" soon)" "err EINVAL" "a cancel that is not one"
echo 1 >"$MNT/jobs/$id5/cancel"
assert_eq "$(sbfs_wait_job "$id5" 120)" cancelled
assert_eq "$(sb_stack_state "$DB")" running
assert_contains "$(cat "$MNT/log")" "job $id5: cancelling (asked through jobs/$id5/cancel)"
# An ended job: refused, and the read-back on the same descriptor says why.
assert_eq "$(probe handshake "$MNT/jobs/$id5/cancel" 1)" "$(printf 'err EINVAL\nerror: job %s has already ended: cancelled' "$id5")"
assert_eq "$(rs snapshots --json --tag "$WEB" | json 'len(d)')" 1 "the cancelled queued job backed nothing up"

note "stackback cancel goes through the daemon: the running job, or job ID"
sb() { "$SB" -c "$CFG" "$@"; }
expect_rc 1 sb cancel
expect_rc 1 sb cancel "$id5"
head -c 400M /dev/urandom >"$T/stacks/$DB/data/big.bin"
id7=$(sbfs_trigger backup "$DB")
for ((i = 0; i < 600; i++)); do
	grep -qx "phase: backup" "$MNT/jobs/$id7/progress" && break
	sleep 0.05
done
assert_eq "$(sb cancel)" "cancelling job $id7"
assert_eq "$(sbfs_wait_job "$id7" 120)" cancelled
assert_eq "$(sb_stack_state "$DB")" running
sbfs_umount
note "ok"
