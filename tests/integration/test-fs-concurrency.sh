#!/bin/bash
# 100 triggers written at the same instant (SPEC §2 "never run
# concurrently", §7 "Queue vs refuse"): each gets a distinct job id or
# EBUSY once 16 wait, and the accepted dry-run backups run one at a time,
# in id order: no two jobs' running intervals overlap, no job's log holds
# another's lines, the job lock is held while they run.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-fs.sh"
need docker-compose flock

sb_write_config
sb_busybox_image
A="${P}a"
B="${P}b"
for s in "$A" "$B"; do sb_make_stack "$s"; done
sb_stack_up "$A"
printf '%s=true\n%s=true\n' "$A" "$B" >"$T/state/dirlist"
sbfs_mount

note "100 concurrent trigger writes: job ids or EBUSY, nothing else"
probe triggers "$MNT/trigger/backup" 100 "1 dry-run" >"$T/triggers.out" &
prober=$!
# Meanwhile: the queue never exceeds 16 and the daemon holds the job lock while a job runs.
max_queue=0
saw_lock=no
while kill -0 "$prober" 2>/dev/null || grep -q '^state: running$' "$MNT/status"; do
	q=$(sed -n 's/^queue: //p' "$MNT/status")
	((q > max_queue)) && max_queue=$q
	if grep -q '^job.state: running$' "$MNT/status" && ! flock -n "$T/state/lock" true; then saw_lock=yes; fi
	sleep 0.05
done
wait "$prober"
assert_eq "$(wc -l <"$T/triggers.out")" 100
bad=$(grep -v -e '^ok job [0-9]* queued$' -e '^err EBUSY error: job queue is full (16 jobs waiting); backup not queued$' \
	"$T/triggers.out" || true)
[ -z "$bad" ] || fail "unexpected trigger results: $bad"
ok=$(grep -c '^ok' "$T/triggers.out")
busy=$(grep -c '^err EBUSY' "$T/triggers.out" || true)
note "$ok accepted, $busy refused with EBUSY"
((ok >= 16)) || fail "only $ok triggers accepted"
((busy >= 1)) || fail "no trigger was refused: the queue is unbounded"
((max_queue <= 16)) || fail "the queue held $max_queue jobs"
assert_eq "$saw_lock" yes "the daemon held STATE_DIR/lock while a job ran"
assert_contains "$(cat "$MNT/trigger/backup")" "job "

note "ids are distinct and consecutive"
mapfile -t ids < <(sed -n 's/^ok job \([0-9]*\) queued$/\1/p' "$T/triggers.out" | sort -n)
assert_eq "$(printf '%s\n' "${ids[@]}" | sort -u | wc -l)" "$ok" "distinct ids"
assert_eq "$((ids[ok - 1] - ids[0] + 1))" "$ok" "consecutive ids ${ids[0]}..${ids[ok - 1]}"

note "the jobs ran one after another, in id order, each ok, each log its own"
sbfs_wait_idle 600
prev_end=0
for id in "${ids[@]}"; do
	assert_eq "$(cat "$MNT/jobs/$id/state")" ok "job $id"
	read -r start end < <(json 'repr(d["started_at"]), repr(d["finished_at"])' <"$MNT/jobs/$id/report")
	python3 -c "import sys; a, s, e = map(float, sys.argv[1:]); sys.exit(0 if a <= s <= e else 1)" \
		"$prev_end" "$start" "$end" || fail "job $id ran $start..$end, overlapping the previous job (ended $prev_end)"
	prev_end=$end
	others=$(grep -o 'job [0-9]*:' "$MNT/jobs/$id/log" | grep -v "^job $id:" || true)
	[ -z "$others" ] || fail "job $id's log holds other jobs' lines: $others"
	assert_contains "$(cat "$MNT/jobs/$id/log")" "job $id: backup all dry-run started"
done
assert_eq "$(json 'd["last"]["id"], d["last"]["state"]' <"$MNT/status.json")" "${ids[ok - 1]} ok"
assert_eq "$(readlink "$MNT/jobs/last")" "${ids[ok - 1]}"
assert_eq "$(sb_stack_state "$A") $(sb_stack_state "$B")" "running stopped" \
	"dry runs leave every stack as it was"

sbfs_umount
note "ok"
