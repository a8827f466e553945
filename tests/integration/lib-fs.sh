# Helpers for the control filesystem tests (suite 'fs'), sourced after
# lib.sh. Like libfuse's own tests: the daemon runs with -f in the
# background, the test waits until /proc/self/mountinfo lists it, asserts
# on syscall results and errno (fsprobe prints them exactly), and
# `fusermount3 -u -z` cleans up whatever happens.

need fusermount3 python3
FSPROBE="$SB_BUILD/tests/integration/fsprobe"
[ -x "$FSPROBE" ] || fail "fsprobe is not built at $FSPROBE"
MNT="$T/mnt"
SBFS_PID=

probe() { "$FSPROBE" "$@"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

sbfs_mounted() {
	grep -q " $MNT [^ ]* [^-]*- fuse.stackbackfs " /proc/self/mountinfo
}

# sbfs_mount [ARGS...]: starts stackbackfs -f on $MNT and waits for the mount.
sbfs_mount() {
	mkdir -p "$MNT"
	"$SBFS" -c "$CFG" "$MNT" -f "$@" >>"$T/sbfs.out" 2>&1 &
	SBFS_PID=$!
	on_exit "fusermount3 -u -z '$MNT'; kill $SBFS_PID"
	local i
	for ((i = 0; i < 200; i++)); do
		sbfs_mounted && return 0
		kill -0 "$SBFS_PID" 2>/dev/null || fail "stackbackfs exited before mounting: $(cat "$T/sbfs.out")"
		sleep 0.05
	done
	fail "stackbackfs did not mount $MNT within 10 s: $(cat "$T/sbfs.out")"
}

# sbfs_umount: fusermount3 -u, then the daemon must exit 0 within 60 s.
sbfs_umount() {
	fusermount3 -u "$MNT" || fail "fusermount3 -u $MNT failed"
	sbfs_wait_exit 0
}

# sbfs_wait_exit STATUS: waits for the daemon started by sbfs_mount.
sbfs_wait_exit() {
	local i
	for ((i = 0; i < 600; i++)); do
		kill -0 "$SBFS_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$SBFS_PID" 2>/dev/null && fail "stackbackfs did not exit: $(tail -5 "$T/sbfs.out")"
	set +e
	wait "$SBFS_PID"
	local rc=$?
	set -e
	assert_eq "$rc" "$1" "stackbackfs exit status ($(tail -3 "$T/sbfs.out"))"
	sbfs_mounted && fail "$MNT is still mounted after the daemon exited"
	return 0
}

# sbfs_trigger KIND PAYLOAD: the handshake; prints the job id.
sbfs_trigger() {
	local out
	out=$(probe handshake "$MNT/trigger/$1" "$2")
	[ "$(head -1 <<<"$out")" = "ok ${#2}" ] || fail "trigger/$1 '$2' refused: $out"
	sed -n 's/^job \([0-9]*\) queued$/\1/p' <<<"$out"
}

# sbfs_wait_job ID [SECONDS]: waits for a final state; prints it.
sbfs_wait_job() {
	local i state limit=$((${2:-120} * 10))
	for ((i = 0; i < limit; i++)); do
		state=$(cat "$MNT/jobs/$1/state")
		case "$state" in
		ok | failed | cancelled)
			echo "$state"
			return 0
			;;
		esac
		sleep 0.1
	done
	fail "job $1 still $state after ${2:-120} s"
}

# sbfs_wait_idle [SECONDS]: until nothing runs or waits.
sbfs_wait_idle() {
	local i limit=$((${1:-120} * 10))
	for ((i = 0; i < limit; i++)); do
		[ "$(json 'd["state"], d["queue"]' <"$MNT/status.json")" = "idle 0" ] && return 0
		sleep 0.1
	done
	fail "the daemon is still busy after ${1:-120} s: $(cat "$MNT/status")"
}
