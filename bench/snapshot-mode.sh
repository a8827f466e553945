#!/bin/bash
# Snapshot mode benchmark: the downtime of a stack with 100 MB and one with
# 2 GB of data on a loop-mounted btrfs, backed up stop-based
# (SNAPSHOT_MODE=off) and in snapshot mode (btrfs subvolume snapshot, and
# reflink copy), each run into a fresh restic repository, ROUNDS times
# (medians). Needs root, Docker, restic, btrfs-progs.
#
#   SB_BUILD=build bench/snapshot-mode.sh [ROUNDS] [SMALL_FILES]
#
# Each stack holds its big files plus SMALL_FILES (default 1000) small
# ones, the same number in both, so that only the amount of data differs.
# A round measures, one after the other, bare `docker-compose stop` +
# `start` (no backup between them) and a backup in each mode, so that the
# load of a shared machine weighs on all of them alike. Prints, per stack
# and mode, the median downtime (stop → started again, as the report
# measures it), the copy's own time (from the log) and restic's. Targets: in
# snapshot mode the downtime is at most stop + start + 0.5 s, and the same
# (within 20%) for 100 MB and 2 GB; the stop-based downtime of 2 GB is the
# anchor. Exits 1 if a target is missed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export SB_SRC=${SB_SRC:-$(dirname "$here")}
export SB_BUILD=${SB_BUILD:-$SB_SRC/build}
SB_BUILD=$(cd "$SB_BUILD" && pwd)
# shellcheck source=../tests/integration/lib.sh
. "$SB_SRC/tests/integration/lib.sh"

rounds=${1:-5}
small_files=${2:-1000}
need restic docker-compose python3 mkfs.btrfs btrfs losetup bc
[ "$(id -u)" = 0 ] || fail "snapshot mode needs root"
sb_busybox_image
sb_write_config

# The stacks live on a btrfs of their own; the repository stays on the
# machine's disk, as it would in real life.
truncate -s 6G "$T/btrfs.img"
mkfs.btrfs -q -f "$T/btrfs.img" >/dev/null
dev=$(losetup -f --show "$T/btrfs.img")
on_exit "losetup -d $dev"
mount "$dev" "$T/stacks"
on_exit "umount '$T/stacks' || umount -l '$T/stacks'"

SMALL="${P}small"
BIG="${P}big"
# make_stack NAME FILES MB_EACH: a subvolume holding FILES incompressible files of MB_EACH.
make_stack() {
	local name=$1 files=$2 mb=$3 dir="$T/stacks/$1" i
	btrfs -q subvolume create "$dir"
	sb_make_stack "$name"
	for ((i = 0; i < files; i++)); do
		head -c $((mb << 20)) /dev/urandom >"$dir/data/big-$i.bin"
	done
	mkdir -p "$dir/data/small"
	for ((i = 0; i < small_files; i++)); do
		echo "small file $i of $name" >"$dir/data/small/f$i.txt"
	done
	sb_stack_up "$name"
	"$SB" -c "$CFG" enable "$name" >/dev/null
}
echo "creating the stacks (100 MB and 2 GB, $small_files small files each)..." >&2
make_stack "$SMALL" 4 25
make_stack "$BIG" 8 256
sync

now() { date +%s.%N; }
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

# Bare stop + start of the stack, no backup: the floor of any downtime.
bare() {
	local f="$T/stacks/$1/docker-compose.yml" t0
	t0=$(now)
	docker-compose -f "$f" stop >/dev/null 2>&1
	docker-compose -f "$f" start >/dev/null 2>&1
	echo "$(now) - $t0" | bc -l
}

# One backup of stack $1 with SNAPSHOT_MODE=$2 into a fresh repository:
# "downtime restic_s mode copy_s" (copy_s from the log line "... taken in Xs", else 0).
measure() {
	local name=$1 mode=$2
	rm -rf "$T/repo"
	"$SB" -c "$CFG" init >/dev/null 2>&1
	local out copy
	out=$(SNAPSHOT_MODE=$mode "$SB" -c "$CFG" backup --json "$name" 2>"$T/err") ||
		fail "backup of $name with SNAPSHOT_MODE=$mode failed: $(tail -n3 "$T/err")"
	copy=$(sed -n "s/.* taken in \([0-9.]*\)s\$/\1/p" "$T/err")
	python3 -c 'import json,sys; s=json.load(sys.stdin)["stacks"][0]; print(s["downtime_s"], s["backup_s"], s["mode"], sys.argv[1])' \
		"${copy:-0}" <<<"$out"
}

declare -A down restic_s copy_s
for ((r = 0; r < rounds; r++)); do
	for name in "$SMALL" "$BIG"; do
		b=$(bare "$name")
		echo "$b" >>"$T/bare-$name"
		echo "  round $((r + 1)) ${name#"$P"}: stop + start ${b}s" >&2
		for mode in off btrfs reflink; do
			read -r d b m c < <(measure "$name" "$mode")
			want=$mode
			[ "$mode" = off ] && want=stop
			[ "$m" = "$want" ] || fail "$name: SNAPSHOT_MODE=$mode ran as '$m'"
			echo "$d" >>"$T/down-$name-$mode"
			echo "$b" >>"$T/restic-$name-$mode"
			echo "$c" >>"$T/copy-$name-$mode"
			echo "  round $((r + 1)) ${name#"$P"} $mode: downtime ${d}s (copy ${c}s), restic ${b}s" >&2
		done
	done
done
for name in "$SMALL" "$BIG"; do
	for mode in off btrfs reflink; do
		down[$name-$mode]=$(median <"$T/down-$name-$mode")
		restic_s[$name-$mode]=$(median <"$T/restic-$name-$mode")
		copy_s[$name-$mode]=$(median <"$T/copy-$name-$mode")
	done
done

# Both stacks run the same single container, so their stop + start is
# one quantity: pooling its samples halves the noise of the floor.
floor() { cat "$T/bare-$SMALL" "$T/bare-$BIG" | median; }
printf '\n%-6s %-7s %-24s %13s %9s %11s\n' stack data mode "downtime (s)" "copy (s)" "restic (s)"
for name in "$SMALL" "$BIG"; do
	size=$([ "$name" = "$SMALL" ] && echo "100 MB" || echo "2 GB")
	printf '%-6s %-7s %-24s %13.2f %9s %11s\n' "${name#"$P"}" "$size" "stop + start, no backup" \
		"$(median <"$T/bare-$name")" - -
	for mode in off btrfs reflink; do
		label=$mode
		[ "$mode" = off ] && label="stop-based"
		[ "$mode" = off ] && [ "$name" = "$BIG" ] && label="stop-based (anchor)"
		copy=${copy_s[$name-$mode]}
		[ "$mode" = off ] && copy=-
		printf '%-6s %-7s %-24s %13.2f %9s %11.2f\n' "${name#"$P"}" "$size" "$label" "${down[$name-$mode]}" "$copy" \
			"${restic_s[$name-$mode]}"
	done
done

missed=0
echo
for mode in btrfs reflink; do
	for name in "$SMALL" "$BIG"; do
		limit=$(echo "$(floor) + 0.5" | bc -l)
		ok=$(echo "${down[$name-$mode]} <= $limit" | bc -l)
		printf 'target %-7s %-6s downtime %.2f s <= stop + start + 0.5 s = %.2f s: %s\n' "$mode" \
			"${name#"$P"}" "${down[$name-$mode]}" "$limit" "$([ "$ok" = 1 ] && echo met || echo MISSED)"
		[ "$ok" = 1 ] || missed=1
	done
	ratio=$(echo "${down[$BIG-$mode]} / ${down[$SMALL-$mode]}" | bc -l)
	ok=$(echo "$ratio >= 0.8 && $ratio <= 1.2" | bc -l)
	printf 'target %-7s 2 GB / 100 MB downtime ratio %.2f within 0.8..1.2: %s\n' "$mode" "$ratio" \
		"$([ "$ok" = 1 ] && echo met || echo MISSED)"
	[ "$ok" = 1 ] || missed=1
done
printf 'floor: stop + start without a backup, both stacks pooled: %.2f s\n' "$(floor)"
printf 'anchor: stop-based downtime for 2 GB %.2f s, snapshot mode (btrfs) %.2f s\n' "${down[$BIG-off]}" "${down[$BIG-btrfs]}"
exit "$missed"
