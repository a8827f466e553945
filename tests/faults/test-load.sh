#!/bin/bash
# Load on the daemon (docs/reliability.md): 200 small stacks; while a real
# backup runs, 1,000 trigger writes from 8 parallel shells and 10,000
# reads of status. Asserts: no write or read hangs (each has a timeout);
# each write either queues a job or is refused with EBUSY (the queue
# holds 16); every queued job runs exactly once and ends; ids are unique;
# every status read is whole; the daemon's RSS at the end stays close to
# what it was before the load (both printed, for docs/reliability.md).
source "$SB_SRC/tests/integration/lib.sh"
source "$SB_SRC/tests/integration/lib-fs.sh"
need docker-compose restic timeout

N_STACKS=200
N_TRIGGERS=1000
N_READS=10000
SHELLS=8

sb_write_config
sb_busybox_image
# Two running stacks with data, backed up for real while the load runs.
for s in 000 001; do
	sb_make_stack "${P}s$s"
	head -c $((100 << 20)) /dev/urandom >"$T/stacks/${P}s$s/data/big.bin"
	sb_stack_up "${P}s$s"
done
# The rest: small, never started (dry runs ask Docker for their state).
for i in $(seq 2 $((N_STACKS - 1))); do
	name=$(printf '%ss%03d' "$P" "$i")
	mkdir -p "$T/stacks/$name"
	printf 'services:\n  app:\n    image: local/busybox:latest\n    network_mode: none\n' \
		>"$T/stacks/$name/docker-compose.yml"
done
"$SB" -c "$CFG" init >/dev/null
"$SB" -c "$CFG" discover >/dev/null
assert_eq "$(grep -c '=false$' "$T/state/dirlist")" "$N_STACKS" "stacks discovered"

rss_kb() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$SBFS_PID/status"; }

sbfs_mount
# Warm up what every later read touches, then take the baseline.
cat "$MNT/status" "$MNT/status.json" >/dev/null
ls "$MNT/stacks" >/dev/null
[ "$(ls "$MNT/stacks" | wc -l)" = "$N_STACKS" ] || fail "stacks/ lists $(ls "$MNT/stacks" | wc -l)"
rss_start=$(rss_kb)

note "a real backup of two stacks, then $N_TRIGGERS triggers from $SHELLS shells and $N_READS status reads"
backup_id=$(sbfs_trigger backup "${P}s000 ${P}s001")
for _ in $(seq 200); do
	grep -qx "phase: backup" "$MNT/jobs/$backup_id/progress" 2>/dev/null && break
	sleep 0.05
done
t0=$(date +%s)
per_shell=$((N_TRIGGERS / SHELLS))
reads_per_shell=$((N_READS / SHELLS))
pids=()
for sh_i in $(seq "$SHELLS"); do
	(
		out="$T/load.$sh_i"
		: >"$out"
		for j in $(seq "$per_shell"); do
			stack=$(printf '%ss%03d' "$P" $(((sh_i * 37 + j * 11) % N_STACKS)))
			r=$(timeout 30 "$FSPROBE" handshake "$MNT/trigger/backup" "$stack dry-run" 2>&1) || r="hang or error: $r"
			echo "$r" | tr '\n' ' ' >>"$out"
			echo >>"$out"
			# Paced, so the writes span the backup and the queue draining after it.
			sleep 0.25
		done
	) &
	pids+=($!)
	(
		bad=0
		for _ in $(seq "$reads_per_shell"); do
			s=$(timeout 30 cat "$MNT/status") || {
				bad=$((bad + 1))
				continue
			}
			case "$s" in *"state: "*) ;; *) bad=$((bad + 1)) ;; esac
		done
		echo "$bad" >"$T/reads.$sh_i"
	) &
	pids+=($!)
done
# Not a bare wait: the daemon is a background job of this shell too.
wait "${pids[@]}"
elapsed=$(($(date +%s) - t0))

note "every write was answered: queued with an id, or EBUSY"
cat "$T"/load.* >"$T/load.all"
assert_eq "$(wc -l <"$T/load.all")" "$N_TRIGGERS" "answers"
queued=$(grep -c 'job [0-9]* queued' "$T/load.all" || true)
busy=$(grep -c 'err EBUSY' "$T/load.all" || true)
other=$(grep -v -e 'job [0-9]* queued' -e 'err EBUSY' "$T/load.all" | head -3 || true)
[ -z "$other" ] || fail "unexpected trigger answers: $other"
assert_eq "$((queued + busy))" "$N_TRIGGERS" "queued + EBUSY"
[ "$queued" -gt 0 ] || fail "no trigger was queued"
ids=$(sed -n 's/.*job \([0-9]*\) queued.*/\1/p' "$T/load.all" | sort -n)
assert_eq "$(uniq -d <<<"$ids")" "" "job ids handed out twice"
bad_reads=$(cat "$T"/reads.* | awk '{n += $1} END {print n + 0}')
assert_eq "$bad_reads" 0 "status reads that hung or were not whole"

note "every queued job runs exactly once and ends"
sbfs_wait_idle 600
assert_eq "$(sbfs_wait_job "$backup_id" 10)" ok "the real backup"
for id in $ids; do
	state=$(cat "$MNT/jobs/$id/state")
	case "$state" in ok | failed | cancelled) ;; *) fail "job $id is '$state' after the queue emptied" ;; esac
	assert_eq "$state" ok "dry run job $id"
done
runs=$(grep -o 'job [0-9]*: backup .*started' "$T/state/log" | sed 's/: .*//' | sort | uniq -d)
assert_eq "$runs" "" "jobs started more than once"
started=$(grep -c "job [0-9]*: backup .*started" "$T/state/log" || true)
assert_eq "$started" "$((queued + 1))" "jobs started (the $queued queued dry runs and the backup)"
for s in 000 001; do
	assert_eq "$(sb_stack_state "${P}s$s")" running "stack s$s after the load"
done

note "RSS before and after"
# The same reads again, so caches filled during the load are not mistaken for growth.
cat "$MNT/status" "$MNT/status.json" >/dev/null
rss_end=$(rss_kb)
echo "load: $N_STACKS stacks, $N_TRIGGERS triggers ($queued queued, $busy EBUSY), $N_READS status reads in ${elapsed}s; daemon RSS ${rss_start} kB before, ${rss_end} kB after"
[ "$rss_end" -le $((rss_start * 3 / 2 + 8192)) ] || fail "the daemon's RSS grew from $rss_start kB to $rss_end kB"
sbfs_umount
note ok
