#!/bin/bash
# The control filesystem's tree (SPEC §2, §7): every path exists with its
# type and mode, reads give what they promise, sizes let `cat` read whole
# files, unknown names are ENOENT, the trigger handshake returns the job
# id on the same descriptor and the last result on a fresh one, jobs/ID/
# shows each job, and poll(2) on status wakes when a job changes it.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-fs.sh"
need docker-compose python3 flock

sb_write_config
sb_busybox_image
UP="${P}up"
DOWN="${P}down"
GONE="${P}gone"
sb_make_stack "$UP"
sb_make_stack "$DOWN"
sb_make_stack "$GONE"
sb_stack_up "$UP"
printf '# my stacks\n%s=true\n%s=false\n%s=true\n' "$UP" "$DOWN" "$GONE" >"$T/state/dirlist"
rm -rf "${T:?}/stacks/$GONE"
sbfs_mount

note "the root holds the fixed entries and a README that explains each"
assert_eq "$(ls "$MNT" | tr '\n' ' ')" "README cloud disabled enabled jobs log metrics snapshots stacks status status.json trigger "
readme=$(cat "$MNT/README")
for p in status status.json log metrics stacks/NAME/enabled stacks/NAME/state stacks/NAME/last_backup \
	stacks/NAME/path stacks/NAME/snapshots enabled/NAME/ disabled/NAME/ trigger/backup trigger/sync \
	trigger/restore trigger/check jobs/ID/state jobs/ID/progress jobs/ID/log jobs/ID/report jobs/last \
	cloud/ snapshots/; do
	grep -q "^$p " <<<"$readme" || fail "README does not explain $p"
done

note "types and modes; the daemon's user owns everything"
mode() { stat -c '%A %U' "$1"; }
assert_eq "$(mode "$MNT/README")" "-r--r--r-- root"
assert_eq "$(mode "$MNT/status")" "-r--r--r-- root"
assert_eq "$(mode "$MNT/status.json")" "-r--r--r-- root"
assert_eq "$(mode "$MNT/metrics")" "-r--r--r-- root"
assert_eq "$(mode "$MNT/log")" "-rw------- root"
for d in stacks enabled disabled trigger jobs cloud "stacks/$UP" "enabled/$UP" "disabled/$DOWN"; do
	assert_eq "$(mode "$MNT/$d")" "drwxr-xr-x root" "$d"
done
assert_eq "$(mode "$MNT/snapshots")" "dr-xr-xr-x root" "snapshots/ is read-only"
assert_eq "$(mode "$MNT/stacks/$UP/enabled")" "-rw-r--r-- root"
assert_eq "$(mode "$MNT/stacks/$UP/state")" "-r--r--r-- root"
assert_eq "$(mode "$MNT/stacks/$UP/path")" "-r--r--r-- root"
assert_eq "$(mode "$MNT/stacks/$UP/last_backup")" "-r--r--r-- root"
assert_eq "$(mode "$MNT/stacks/$UP/snapshots")" "lrwxrwxrwx root"
for k in backup sync restore check forget; do
	assert_eq "$(mode "$MNT/trigger/$k")" "-rw-r--r-- root" "trigger/$k"
done
assert_eq "$(stat -f -c %l "$MNT")" 255 "statfs name length"

note "stacks: every stack of the dirlist and the disk, with its files"
assert_eq "$(ls "$MNT/stacks" | sort | tr '\n' ' ')" "$(printf '%s\n' "$UP" "$DOWN" "$GONE" | sort | tr '\n' ' ')"
assert_eq "$(ls "$MNT/stacks/$UP" | tr '\n' ' ')" "enabled last_backup path restore snapshots state "
assert_eq "$(cat "$MNT/stacks/$UP/enabled")" 1
assert_eq "$(cat "$MNT/stacks/$DOWN/enabled")" 0
assert_eq "$(cat "$MNT/stacks/$UP/path")" "$T/stacks/$UP"
assert_eq "$(cat "$MNT/stacks/$UP/state")" running
assert_eq "$(cat "$MNT/stacks/$DOWN/state")" stopped
assert_eq "$(cat "$MNT/stacks/$GONE/state")" missing
assert_eq "$(cat "$MNT/stacks/$UP/last_backup")" never
assert_eq "$(readlink "$MNT/stacks/$UP/snapshots")" "../../snapshots/$UP"
assert_eq "$(ls "$MNT/enabled" | sort | tr '\n' ' ')" "$(printf '%s\n' "$UP" "$GONE" | sort | tr '\n' ' ')"
assert_eq "$(ls "$MNT/disabled" | tr '\n' ' ')" "$DOWN "
assert_eq "$(ls -A "$MNT/enabled/$UP")" "" "enabled/NAME is an empty directory"
assert_eq "$(ls -A "$MNT/cloud" | tr '\n' ' ')" "in_sync last_restore last_sync progress remote snapshots status "
assert_eq "$(cat "$MNT/cloud/status")" idle
[ -d "$MNT/stacks/$UP/snapshots/" ] || fail "stacks/NAME/snapshots does not lead to a directory"

note "sizes: stat reports what a read returns, so cat and cp read whole files"
for f in README status status.json metrics "stacks/$UP/enabled" "stacks/$UP/path" "stacks/$UP/last_backup" \
	"stacks/$DOWN/state" trigger/backup; do
	out=$(probe size "$MNT/$f")
	read -r _ size _ got <<<"$out"
	assert_eq "$size" "$got" "st_size of $f ($out)"
done
cp "$MNT/README" "$T/README.copy"
cmp -s "$T/README.copy" <(cat "$MNT/README") || fail "cp of README differs from cat"

note "unknown names are ENOENT"
for p in nope stacks/nope "stacks/$UP/nope" enabled/nope "enabled/$DOWN" "disabled/$UP" trigger/nope jobs/1 \
	jobs/01 jobs/last jobs/-1 jobs/abc cloud/x; do
	assert_eq "$(probe open "$MNT/$p" r)" "err ENOENT" "$p"
done
assert_eq "$(probe open "$MNT/stacks/$UP/enabled/x" r)" "err ENOTDIR"

note "status and status.json: the SPEC §7 object, idle at first"
# SPEC §7's keys, and the daemon's own addition: who reads each repository's snapshots.
assert_eq "$(json 'sorted(d.keys())' <"$MNT/status.json")" "['cloud', 'job', 'last', 'queue', 'snapshots', 'state']"
assert_eq "$(json 'sorted(d["snapshots"].keys())' <"$MNT/status.json")" "['local']"
assert_eq "$(json 'd["state"], d["job"], d["queue"], d["last"], d["cloud"]["status"]' <"$MNT/status.json")" \
	"idle None 0 None idle"
status=$(cat "$MNT/status")
assert_contains "$status" "state: idle"
assert_contains "$status" "job: none"
assert_contains "$status" "queue: 0"
assert_contains "$status" "last: none"
assert_contains "$status" "cloud.status: idle"

note "metrics: Prometheus text with one sample per stack"
metrics=$(cat "$MNT/metrics")
assert_contains "$metrics" "# TYPE stackback_stack_enabled gauge"
assert_contains "$metrics" "stackback_stack_enabled{stack=\"$UP\"} 1"
assert_contains "$metrics" "stackback_stack_enabled{stack=\"$DOWN\"} 0"
assert_contains "$metrics" "stackback_job_running 0"
assert_contains "$metrics" "stackback_jobs_queued 0"
grep -vE '^(# (HELP|TYPE) [a-z_]+ .+|[a-z_]+(\{[a-z]+="[^"]*"\})? [0-9.e+-]+)$' <<<"$metrics" &&
	fail "metrics has lines outside the exposition format"

note "the trigger handshake: job ID queued on the same descriptor, job ID STATE on a fresh one"
assert_eq "$(cat "$MNT/trigger/backup")" "" "no trigger yet"
out=$(probe handshake "$MNT/trigger/backup" "$UP dry-run")
assert_eq "$(head -1 <<<"$out")" "ok $((${#UP} + 8))"
id=$(sed -n 's/^job \([0-9]*\) queued$/\1/p' <<<"$out")
[ -n "$id" ] || fail "no job id in the read-back: $out"
assert_contains "$(cat "$MNT/trigger/backup")" "job $id "
assert_eq "$(sbfs_wait_job "$id")" ok
assert_eq "$(cat "$MNT/trigger/backup")" "job $id ok"
assert_eq "$(readlink "$MNT/jobs/last")" "$id"
assert_eq "$(ls "$MNT/jobs" | tr '\n' ' ')" "$id last "
assert_eq "$(ls "$MNT/jobs/$id" | tr '\n' ' ')" "cancel log progress report state "
assert_eq "$(cat "$MNT/jobs/last/state")" ok
progress=$(cat "$MNT/jobs/$id/progress")
for k in stack phase percent bytes_done bytes_total files_done files_total eta_s; do
	grep -q "^$k: " <<<"$progress" || fail "jobs/$id/progress lacks $k: $progress"
done
assert_contains "$(cat "$MNT/jobs/$id/log")" "job $id"
assert_eq "$(json 'd["id"], d["kind"], d["dry_run"], d["state"], d["stacks"][0]["stack"], d["stacks"][0]["result"]' \
	<"$MNT/jobs/$id/report")" "$id backup True ok $UP dry-run"
assert_eq "$(json 'd["last"]["id"], d["last"]["kind"], d["last"]["state"]' <"$MNT/status.json")" "$id backup ok"
[ "$(json 'd["last"]["finished"]' <"$MNT/status.json")" != None ] || fail "status.json last.finished is null"
assert_eq "$(sb_stack_state "$UP")" running "a dry run leaves the stack running"

note "poll(2) on status wakes when a job changes it, and sleeps while nothing does"
assert_eq "$(probe poll "$MNT/status" 300)" timeout
# The job lock is held so that the next job stays queued until the second poller is armed.
sb_hold_job_lock
probe poll "$MNT/status.json" 20000 "$T/poll.ready" >"$T/poll.out" &
poller=$!
sb_wait_file "$T/poll.ready"
id2=$(sbfs_trigger backup "$UP dry-run")
wait "$poller"
assert_eq "$(head -1 "$T/poll.out" | cut -d' ' -f1)" changed "poll on status.json: $(cat "$T/poll.out")"
grep -q '"queue":1' "$T/poll.out" || fail "poll woke, but status.json shows no queued job: $(cat "$T/poll.out")"
probe poll "$MNT/jobs/$id2/state" 20000 "$T/poll2.ready" >"$T/poll2.out" &
poller=$!
sb_wait_file "$T/poll2.ready"
assert_eq "$(cat "$MNT/jobs/$id2/state")" queued
sb_release_job_lock
assert_eq "$(sbfs_wait_job "$id2")" ok
wait "$poller"
assert_eq "$(head -1 "$T/poll2.out" | cut -d' ' -f1)" changed "poll on jobs/ID/state: $(cat "$T/poll2.out")"

note "the dry runs left no report in STATE_DIR, and the daemon log has the jobs"
[ -e "$T/state/jobs/$id" ] && fail "a dry run was persisted"
assert_contains "$(cat "$MNT/log")" "job $id queued"
assert_contains "$(cat "$T/state/log")" "job $id queued"

sbfs_umount
note "ok"
