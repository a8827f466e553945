#!/bin/bash
# Stage 1 benchmark: stackback's backup of N stacks vs a plain shell loop of
# `docker-compose stop; restic backup; docker-compose start` on the same
# data, each into a fresh repository, repeated R times (medians).
#
#   SB_BUILD=build bench/stage1.sh [STACKS] [MB_PER_STACK] [ROUNDS]
#
# Prints the wall-time ratio (target <= 1.05) and, per stack, the downtime
# ratio against bare stop + backup + start (target <= 1.05).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export SB_SRC=${SB_SRC:-$(dirname "$here")}
export SB_BUILD=${SB_BUILD:-$SB_SRC/build}
SB_BUILD=$(cd "$SB_BUILD" && pwd)
# shellcheck source=../tests/integration/lib.sh
. "$SB_SRC/tests/integration/lib.sh"

stacks=${1:-4}
mb=${2:-256}
rounds=${3:-3}
need restic docker-compose python3
sb_busybox_image
sb_write_config
# Equal work: the bare loop neither verifies nor prunes.
printf 'ENABLE_VERIFICATION=false\nAUTO_PRUNE=false\n' >>"$CFG.tmp"
sed -i '/^\[local_backup\]/r '"$CFG.tmp" "$CFG"
rm -f "$CFG.tmp"
export RESTIC_PASSWORD_FILE="$T/password"

names=()
for i in $(seq 1 "$stacks"); do
	n="${P}b$i"
	names+=("$n")
	sb_make_stack "$n"
	# Incompressible data, so restic does real work.
	head -c $((mb * 1024 * 1024)) /dev/urandom >"$T/stacks/$n/data/blob"
	sb_stack_up "$n"
	"$SB" -c "$CFG" enable "$n" >/dev/null
done

now() { date +%s.%N; }

bare_round() {
	local repo=$1 out=$2
	restic init -r "$repo" >/dev/null
	local t0 n s0 s1
	t0=$(now)
	for n in "${names[@]}"; do
		s0=$(now)
		docker-compose -f "$T/stacks/$n/docker-compose.yml" stop -t 20 >/dev/null 2>&1
		(cd "$T/stacks/$n" && restic -r "$repo" backup --tag stackback --tag "$n" --host sbtest . >/dev/null)
		docker-compose -f "$T/stacks/$n/docker-compose.yml" start >/dev/null 2>&1
		s1=$(now)
		echo "$n $(echo "$s1 - $s0" | bc -l)" >>"$out.down"
	done
	echo "$(echo "$(now) - $t0" | bc -l)" >>"$out.wall"
}

sb_round() {
	local repo=$1 out=$2
	sed -i "s|^RESTIC_REPOSITORY=.*|RESTIC_REPOSITORY=$repo|" "$CFG"
	"$SB" -c "$CFG" init >/dev/null
	local t0
	t0=$(now)
	"$SB" -c "$CFG" backup --json >"$out.json.$RANDOM"
	echo "$(echo "$(now) - $t0" | bc -l)" >>"$out.wall"
}

need bc
for r in $(seq 1 "$rounds"); do
	# Alternate the order so page-cache warmth favours neither.
	if [ $((r % 2)) = 1 ]; then
		bare_round "$T/repo-bare-$r" "$T/bare"
		sb_round "$T/repo-sb-$r" "$T/sb"
	else
		sb_round "$T/repo-sb-$r" "$T/sb"
		bare_round "$T/repo-bare-$r" "$T/bare"
	fi
done

python3 - "$T" "${names[@]}" <<'PY'
import glob, json, statistics, sys
t, names = sys.argv[1], sys.argv[2:]
med = statistics.median
bare_wall = med(float(x) for x in open(f"{t}/bare.wall"))
sb_wall = med(float(x) for x in open(f"{t}/sb.wall"))
bare_down = {}
for line in open(f"{t}/bare.down"):
    n, v = line.split()
    bare_down.setdefault(n, []).append(float(v))
sb_down = {}
for path in glob.glob(f"{t}/sb.json.*"):
    report = json.load(open(path))
    for s in report["stacks"]:
        sb_down.setdefault(s["stack"], []).append(s["downtime_s"])
print(f"stage 1, {len(names)} stacks: stackback {sb_wall:.2f}s, bare loop {bare_wall:.2f}s, "
      f"ratio {sb_wall / bare_wall:.3f} (target <= 1.05)")
worst = 0
for n in names:
    b, s = med(bare_down[n]), med(sb_down[n])
    worst = max(worst, s / b)
    print(f"  {n}: downtime stackback {s:.2f}s, bare stop+backup+start {b:.2f}s, ratio {s / b:.3f}")
print(f"worst downtime ratio {worst:.3f} (target <= 1.05)")
PY
