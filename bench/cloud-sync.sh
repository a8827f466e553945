#!/bin/bash
# Stage 2/3 benchmark: stackback's sync and restore of a ~1 GB restic
# repository to/from a loopback WebDAV server (`rclone serve webdav`)
# against the bare `rclone sync` command on the same data, same remote,
# same TRANSFERS. Not part of the test suite.
#
#   SB_BUILD=build bench/cloud-sync.sh [MB] [ROUNDS]
#
# Compares the transfer phases only (stackback's come from the job report,
# transfer_s); restic check and rclone check, which the bare command does
# not do, are reported apart (from the job log). Targets:
#   upload and download transfer overhead <= 3 %
#   no-change re-sync transfer <= bare no-op sync + 0.2 s
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export SB_SRC=${SB_SRC:-$(dirname "$here")}
export SB_BUILD=${SB_BUILD:-$SB_SRC/build}
SB_BUILD=$(cd "$SB_BUILD" && pwd)
# shellcheck source=../tests/integration/lib.sh
. "$SB_SRC/tests/integration/lib.sh"
# shellcheck source=../tests/integration/lib-cloud.sh
. "$SB_SRC/tests/integration/lib-cloud.sh"

mb=${1:-1024}
rounds=${2:-3}
transfers=4

sb_write_config
sb_dav_start
sb_cloud_config
sed -i "s|^TRANSFERS=.*|TRANSFERS=$transfers|; s|^RETRIES=.*|RETRIES=1|" "$CFG"
sed -i 's|^REMOTE_TIMEOUT=.*|REMOTE_TIMEOUT=60|' "$CFG"
RCLONE=(rclone --config "$T/rclone.conf" --transfers "$transfers" --retries 1)

now() { date +%s.%N; }

note "making a ${mb} MiB repository (random data, restic backup)"
mkdir -p "$T/data"
files=$(((mb + 63) / 64))
for i in $(seq 1 "$files"); do
	head -c $((64 << 20)) /dev/urandom >"$T/data/f$i"
done
sb_restic "$T/repo" init >/dev/null
sb_restic "$T/repo" backup --tag stackback --tag bench --host sbtest "$T/data" >/dev/null
rm -rf "$T/data"
echo "repository: $(du -sh "$T/repo" | cut -f1), $(find "$T/repo" -type f | wc -l) files"

# bare NAME ARGS...: times one bare rclone run into $T/NAME.times.
bare() {
	local name=$1 t0
	shift
	t0=$(now)
	"${RCLONE[@]}" "$@" >/dev/null 2>&1
	echo "$(now) $t0" | awk '{printf "%.3f\n", $1 - $2}' >>"$T/$name.times"
}

# sb NAME ARGS...: one stackback job; its transfer_s into $T/NAME.times and
# the restic check / rclone check phases (from the log) into NAME.check.
sb() {
	local name=$1
	local json="$T/$name.$RANDOM.json"
	local log="$json.log"
	shift
	"$SB" -c "$CFG" "$@" --json >"$json" 2>"$log" || fail "stackback $* failed: $(tail -3 "$log")"
	sb_json_get "$json" '["transfer_s"]' | awk '{printf "%.3f\n", $1}' >>"$T/$name.times"
	sed -n 's/.*restic check of .* passed in \([0-9.]*\)s.*/\1/p' "$log" >>"$T/$name.restic-check"
	sed -n 's/.*rclone check by .* passed in \([0-9.]*\)s.*/\1/p' "$log" >>"$T/$name.rclone-check"
}

# One phase of one side; dirty pages are flushed first, so neither run pays
# for the other's writeback.
run() {
	sync
	case "$1 $2" in
	"bare upload") bare upload sync "$T/repo" sbremote:bare/repo ;;
	"bare noop") bare noop sync "$T/repo" sbremote:bare/repo ;;
	"bare download") bare download sync sbremote:bare/repo "$T/restore-bare-$3" ;;
	"sb upload") sb sb-upload sync ;;
	"sb noop") sb sb-noop sync ;;
	"sb download") sb sb-download restore --to "$T/restore-sb-$3" ;;
	esac
}

for r in $(seq 1 "$rounds"); do
	note "round $r of $rounds"
	# Through the server: its directory cache would not see an rm behind its back.
	for d in bare backup; do "${RCLONE[@]}" purge "sbremote:$d" >/dev/null 2>&1 || true; done
	rm -rf "$T"/restore-*
	# Alternate who goes first, so neither always meets a warmer server.
	if [ $((r % 2)) = 1 ]; then order="bare sb"; else order="sb bare"; fi
	for phase in upload noop download; do
		for who in $order; do run "$who" "$phase" "$r"; done
	done
done

echo "every run (s):"
for f in upload sb-upload noop sb-noop download sb-download; do echo "  $f: $(tr "\n" " " <"$T/$f.times")"; done
python3 - "$T" <<'PY'
import statistics, sys
t = sys.argv[1]
def med(name):
    try:
        v = [float(x) for x in open(f"{t}/{name}") if x.strip()]
    except FileNotFoundError:
        return None
    return statistics.median(v) if v else None
rows = [("upload (first sync)", "upload", "sb-upload"),
        ("no-change re-sync", "noop", "sb-noop"),
        ("download (restore)", "download", "sb-download")]
print(f"{'transfer phase':<22}{'bare rclone':>13}{'stackback':>12}{'ratio':>9}{'delta':>9}")
res = {}
for label, b, s in rows:
    bv, sv = med(b + ".times"), med(s + ".times")
    res[b] = (bv, sv)
    print(f"{label:<22}{bv:>12.3f}s{sv:>11.3f}s{sv / bv:>9.3f}{sv - bv:>8.3f}s")
print()
print("phases the bare command does not have (medians):")
print(f"  restic check before the sync   {med('sb-upload.restic-check'):.3f}s")
print(f"  rclone check after the sync    {med('sb-upload.rclone-check'):.3f}s")
print(f"  rclone check of a re-sync      {med('sb-noop.rclone-check'):.3f}s")
print(f"  restic check of the restored   {med('sb-download.restic-check'):.3f}s")
print()
up, noop, down = res["upload"], res["noop"], res["download"]
def verdict(ok): return "ok" if ok else "MISSED"
print(f"upload overhead   {100 * (up[1] / up[0] - 1):+.1f}% (target <= 3%): {verdict(up[1] <= up[0] * 1.03)}")
print(f"download overhead {100 * (down[1] / down[0] - 1):+.1f}% (target <= 3%): {verdict(down[1] <= down[0] * 1.03)}")
print(f"no-op re-sync     {noop[1] - noop[0]:+.3f}s vs bare (target <= +0.2s): {verdict(noop[1] <= noop[0] + 0.2)}")
PY
