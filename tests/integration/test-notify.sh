#!/bin/bash
# Notifications against a real HTTP server on 127.0.0.1 and a real
# command (notify.h): NOTIFY_COMMAND gets STACKBACK_EVENT/STAGE/STACK/
# SUMMARY/JOB for every job, HEALTHCHECK_URL gets /start, success and
# /fail pings (POST, the summary as body) for backup and sync; a job
# that cannot start (job lock held) notifies a failure; dry runs notify
# nothing; an unreachable or failing health check and a failing command
# leave the job's result alone; RESTIC_PASSWORD reaches neither.
source "$(dirname "$0")/lib.sh"
need python3 curl restic rclone flock

sb_write_config
sb() { "$SB" -c "$CFG" "$@"; }

python3 "$SB_SRC/tests/integration/http-recorder.py" "$T/requests" "$T/port" &
on_exit "kill $!"
for ((i = 0; i < 100; i++)); do
	[ -s "$T/port" ] && break
	sleep 0.1
done
[ -s "$T/port" ] || fail "the HTTP recorder did not start"
PORT=$(cat "$T/port")

# The command records its environment, one file per call, in call order.
mkdir "$T/notes"
cat >"$T/notify.sh" <<'SH'
#!/bin/sh
n=$(ls "$1" | wc -l)
env | grep -E '^(STACKBACK_|RESTIC_PASSWORD=)' | LC_ALL=C sort >"$1/$(printf %03d "$n").env"
exit "${2:-0}"
SH
chmod 755 "$T/notify.sh"
cat >>"$CFG" <<INI
NOTIFY_COMMAND=$T/notify.sh $T/notes
HEALTHCHECK_URL=http://127.0.0.1:$PORT/ping/abc?rid=7
INI

notes() { ls "$T/notes" | wc -l; }
note_file() { printf '%s/notes/%03d.env' "$T" "$1"; }
requests() { cat "$T/requests" 2>/dev/null || true; }

sb init >/dev/null

note "a backup that fails: start, then failure, pings /start and /fail"
expect_rc 1 sb backup >/dev/null 2>&1
assert_eq "$(notes)" 2
start=$(cat "$(note_file 0)")
end=$(cat "$(note_file 1)")
assert_contains "$start" "STACKBACK_EVENT=start"
assert_contains "$start" "STACKBACK_STAGE=backup"
assert_contains "$start" "STACKBACK_STACK="
assert_contains "$start" "STACKBACK_SUMMARY=job 1 backup all started"
assert_contains "$end" "STACKBACK_EVENT=failure"
assert_contains "$end" "STACKBACK_JOB=1"
assert_contains "$end" "STACKBACK_SUMMARY=job 1 backup failed: backup: no stack is enabled"
assert_eq "$(requests | sed -n 1p)" "POST /ping/abc/start?rid=7 job 1 backup all started"
assert_contains "$(requests | sed -n 2p)" "POST /ping/abc/fail?rid=7 job 1 backup failed: backup: no stack is enabled"

note "a sync that succeeds: start, then success, pings /start and the bare URL"
sb sync >/dev/null 2>&1 || fail "sync failed: $(tail -5 "$T/state/log")"
assert_eq "$(notes)" 4
end=$(cat "$(note_file 3)")
assert_contains "$end" "STACKBACK_EVENT=success"
assert_contains "$end" "STACKBACK_STAGE=sync"
assert_contains "$end" "STACKBACK_JOB=2"
assert_contains "$end" "STACKBACK_SUMMARY=job 2 sync ok: synced"
assert_eq "$(requests | sed -n 3p)" "POST /ping/abc/start?rid=7 job 2 sync started"
assert_contains "$(requests | sed -n 4p)" "POST /ping/abc?rid=7 job 2 sync ok: synced"

note "a check runs the command but pings nothing: health checks watch backup and sync"
sb check >/dev/null 2>&1 || fail "check failed"
assert_eq "$(notes)" 6
assert_contains "$(cat "$(note_file 5)")" "STACKBACK_STAGE=check"
assert_eq "$(requests | wc -l)" 4

note "dry runs notify nothing"
sb sync --dry-run >/dev/null 2>&1 || fail "dry-run sync failed"
assert_eq "$(notes)" 6
assert_eq "$(requests | wc -l)" 4

note "a job that cannot start (job lock held) notifies a failure without a job id"
sb_hold_job_lock
expect_rc 1 sb backup >/dev/null 2>&1
sb_release_job_lock
assert_eq "$(notes)" 7
refused=$(cat "$(note_file 6)")
assert_contains "$refused" "STACKBACK_EVENT=failure"
assert_contains "$refused" "STACKBACK_STAGE=backup"
assert_contains "$refused" "STACKBACK_JOB=
"
assert_contains "$refused" "STACKBACK_SUMMARY=backup could not start: "
assert_contains "$(requests | sed -n 5p)" "POST /ping/abc/fail?rid=7 backup could not start: "
assert_eq "$(requests | wc -l)" 5

note "an unreachable health check, a failing one and a failing command never fail the job"
HEALTHCHECK_URL=http://127.0.0.1:1/nobody sb sync >/dev/null 2>&1 || fail "sync failed with the health check down"
assert_contains "$(cat "$T/state/log")" "healthcheck ping (start of sync) failed: curl exited 7"
HEALTHCHECK_URL=http://127.0.0.1:$PORT/err sb sync >/dev/null 2>&1 || fail "sync failed with a failing health check"
assert_contains "$(cat "$T/state/log")" "healthcheck ping (success of sync) failed: curl exited 22"
assert_contains "$(requests | tail -1)" "POST /err "
NOTIFY_COMMAND="$T/notify.sh $T/notes 3" sb sync >/dev/null 2>&1 || fail "sync failed with a failing command"
assert_contains "$(cat "$T/state/log")" "notification command '$T/notify.sh' (success of sync) failed: exited 3"

note "the restic password reaches neither the command nor the health check"
pw=$(cat "$T/password")
grep -v '^PASSWORD_FILE=' "$CFG" >"$T/env-config.ini"
chmod 600 "$T/env-config.ini"
before=$(notes)
RESTIC_PASSWORD=$pw "$SB" -c "$T/env-config.ini" sync >/dev/null 2>&1 || fail "sync with RESTIC_PASSWORD failed"
assert_eq "$(notes)" $((before + 2))
if grep -rqF "$pw" "$T/notes" "$T/requests"; then
	fail "the password reached a notification"
fi
grep -rq '^RESTIC_PASSWORD=' "$T/notes" && fail "RESTIC_PASSWORD is in the command's environment"

echo "ok"
