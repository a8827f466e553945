#!/bin/bash
# Notifications from the daemon (notify.h): a job the daemon runs
# notifies its start and its end like an in-process one, and a trigger
# the full queue refuses (EBUSY) notifies a failure without delaying the
# writer, against a real HTTP server and a command recording its
# environment.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-fs.sh"
need python3 curl restic rclone

sb_write_config
"$SB" -c "$CFG" init >/dev/null

python3 "$SB_SRC/tests/integration/http-recorder.py" "$T/requests" "$T/port" &
on_exit "kill $!"
for ((i = 0; i < 100; i++)); do
	[ -s "$T/port" ] && break
	sleep 0.1
done
[ -s "$T/port" ] || fail "the HTTP recorder did not start"
mkdir "$T/notes"
cat >"$T/notify.sh" <<'SH'
#!/bin/sh
# Each call its own file: refusals may notify from several threads at once.
env | grep -E '^STACKBACK_' | LC_ALL=C sort >"$1/$(date +%s%N).$$.env"
SH
chmod 755 "$T/notify.sh"
cat >>"$CFG" <<INI
NOTIFY_COMMAND=$T/notify.sh $T/notes
HEALTHCHECK_URL=http://127.0.0.1:$(cat "$T/port")/hc
INI
notes_with() { grep -l -- "$1" "$T"/notes/*.env 2>/dev/null | wc -l; }
# wait_notes TEXT N: until N notifications hold TEXT.
wait_notes() {
	for ((i = 0; i < 200; i++)); do
		[ "$(notes_with "$1")" -ge "$2" ] && return 0
		sleep 0.1
	done
	fail "$(notes_with "$1") notifications with '$1', expected $2: $(cat "$T"/notes/*.env 2>/dev/null)"
}

sbfs_mount

note "a sync in the daemon notifies its start and its success"
id=$(sbfs_trigger sync 1)
assert_eq "$(sbfs_wait_job "$id")" ok
wait_notes "STACKBACK_EVENT=success" 1
assert_eq "$(notes_with "STACKBACK_JOB=$id")" 2
assert_eq "$(notes_with "STACKBACK_EVENT=start")" 1
assert_contains "$(cat "$T/requests")" "POST /hc/start job $id sync started"
# The end's ping follows its command: the note can be there before the request.
for ((i = 0; i < 300; i++)); do
	grep -qF "POST /hc job $id sync ok: synced" "$T/requests" && break
	sleep 0.1
done
assert_contains "$(cat "$T/requests")" "POST /hc job $id sync ok: synced"

note "triggers the full queue refuses notify a failure each"
# An in-process run holds the job lock, so the daemon's jobs stay queued.
sb_hold_job_lock
start=$(date +%s%N)
probe triggers "$MNT/trigger/sync" 20 1 >"$T/triggers.out"
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
assert_eq "$(grep -c '^ok job' "$T/triggers.out")" 16
assert_eq "$(grep -c '^err EBUSY' "$T/triggers.out")" 4
# The writers got their answer at once, not after the notifications.
((elapsed_ms < 5000)) || fail "20 trigger writes took ${elapsed_ms} ms"
wait_notes "STACKBACK_SUMMARY=sync could not start: job queue is full" 4
refused=$(grep -l "job queue is full" "$T"/notes/*.env | head -1)
assert_contains "$(cat "$refused")" "STACKBACK_EVENT=failure"
assert_contains "$(cat "$refused")" "STACKBACK_JOB=
"
for ((i = 0; i < 300; i++)); do
	[ "$(grep -c '^POST /hc/fail sync could not start: job queue is full' "$T/requests")" = 4 ] && break
	sleep 0.1
done
assert_eq "$(grep -c '^POST /hc/fail sync could not start: job queue is full' "$T/requests")" 4

note "jobs cancelled before they started notify nothing"
before=$(ls "$T/notes" | wc -l)
sbfs_umount
sb_release_job_lock
assert_eq "$(ls "$T/notes" | wc -l)" "$before"

echo "ok"
