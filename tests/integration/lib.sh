# Shared helpers for the integration tests (sourced by bash scripts).
# Each test gets a private temp tree ($T), a config file ($CFG) and stack
# names unique to the run ($P prefix), because compose project names are
# global to the Docker engine and suites run in parallel.
#
# Environment from meson: SB_BUILD (build dir), SB_SRC (source dir).

set -euo pipefail

: "${SB_BUILD:?SB_BUILD must point at the build directory}"
: "${SB_SRC:?SB_SRC must point at the source directory}"
SB="$SB_BUILD/cli/stackback"
SBFS="$SB_BUILD/fs/stackbackfs"
SBTUI="$SB_BUILD/tui/stackback-tui"
T=$(mktemp -d /tmp/sbtest.XXXXXX)
chmod 700 "$T"
P="t$(printf '%04x' $((RANDOM)))$$"
CFG="$T/config.ini"
_sb_cleanups=()

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

note() {
	echo "--- $*"
}

assert_eq() {
	[ "$1" = "$2" ] || fail "${3:-values differ}: expected '$2', got '$1'"
}

assert_contains() {
	case "$1" in
	*"$2"*) ;;
	*) fail "${3:-missing text}: '$2' not in: $1" ;;
	esac
}

assert_not_contains() {
	case "$1" in
	*"$2"*) fail "${3:-unexpected text}: '$2' in: $1" ;;
	*) ;;
	esac
}

# Runs "$@", expects exit code $1: expect_rc 1 cmd args...
expect_rc() {
	local want=$1
	shift
	set +e
	"$@"
	local got=$?
	set -e
	[ "$got" = "$want" ] || fail "expected exit $want, got $got: $*"
}

on_exit() {
	_sb_cleanups+=("$1")
}

_sb_cleanup() {
	local rc=$?
	local i
	for ((i = ${#_sb_cleanups[@]} - 1; i >= 0; i--)); do
		eval "${_sb_cleanups[$i]}" >/dev/null 2>&1 || true
	done
	if [ "$rc" = 0 ] || [ -z "${SB_KEEP_FAILED:-}" ]; then
		rm -rf "$T"
	else
		echo "kept $T" >&2
	fi
}
trap _sb_cleanup EXIT

need() {
	for prog in "$@"; do
		command -v "$prog" >/dev/null 2>&1 || fail "$prog is required (run scripts/install-deps.sh)"
	done
}

# A local busybox image, built from Debian's static busybox (no registry).
sb_busybox_image() {
	need docker busybox
	docker info >/dev/null 2>&1 || fail "no Docker engine answers (run scripts/dockerd.sh start)"
	if docker image inspect local/busybox:latest >/dev/null 2>&1; then
		return 0
	fi
	local root="$T/busybox-root"
	mkdir -p "$root/bin" "$root/tmp"
	cp "$(command -v busybox)" "$root/bin/busybox"
	local app
	for app in sh sleep cat echo ls date mkdir rm touch true false wc head tail seq trap; do
		ln -sf busybox "$root/bin/$app"
	done
	# Two tests may race to import: the loser's import is harmless.
	tar -C "$root" -c . | docker import - local/busybox:latest >/dev/null
}

# sb_make_stack NAME [DIR]: a compose stack that writes to ./data, stops fast.
sb_make_stack() {
	local name=$1 dir=${2:-$T/stacks}
	mkdir -p "$dir/$name/data"
	cat >"$dir/$name/docker-compose.yml" <<YAML
version: "3"
services:
  app:
    image: local/busybox:latest
    network_mode: none
    working_dir: /data
    volumes:
      - ./data:/data
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do date >> /data/ticks; sleep 1 & wait \$\$!; done"]
YAML
	echo "hello from $name" >"$dir/$name/data/hello.txt"
	on_exit "docker-compose -f '$dir/$name/docker-compose.yml' down -t 1"
}

sb_stack_up() {
	docker-compose -f "$T/stacks/$1/docker-compose.yml" up -d >/dev/null 2>&1 || fail "compose up $1"
}

# Prints running|stopped per docker for a stack under $T/stacks.
sb_stack_state() {
	local n
	n=$(docker-compose -f "$T/stacks/$1/docker-compose.yml" ps --services --filter status=running 2>/dev/null | grep -c . || true)
	if [ "$n" -gt 0 ]; then echo running; else echo stopped; fi
}

# Writes $CFG with a stacks dir, a state dir and a restic repository.
sb_write_config() {
	mkdir -p "$T/stacks" "$T/state"
	printf 'test-password-%s\n' "$P" >"$T/password"
	chmod 600 "$T/password"
	cat >"$CFG" <<INI
[docker]
DOCKER_STACKS_DIR=$T/stacks
DOCKER_TIMEOUT=20

[local_backup]
RESTIC_REPOSITORY=$T/repo
PASSWORD_FILE=$T/password
BACKUP_TIMEOUT=600
HOSTNAME=sbtest

[cloud_sync]
RCLONE_REMOTE=sbremote
RCLONE_PATH=$T/cloud

[stackback]
STATE_DIR=$T/state
MOUNTPOINT=$T/mnt
RESTORE_DIR=$T/restored
RCLONE_CONFIG=$T/rclone.conf
INI
	chmod 600 "$CFG"
	printf '[sbremote]\ntype = local\n' >"$T/rclone.conf"
	chmod 600 "$T/rclone.conf"
}

# sb_hold_job_lock: takes STATE_DIR's job lock as an in-process run would,
# so the daemon's jobs stay queued until sb_release_job_lock.
sb_hold_job_lock() {
	python3 -c 'import fcntl, sys, time
f = open(sys.argv[1], "a")
fcntl.flock(f, fcntl.LOCK_EX)
time.sleep(300)' "$T/state/lock" &
	SB_LOCK_HOLDER=$!
	on_exit "kill $SB_LOCK_HOLDER"
	local i
	for ((i = 0; i < 100; i++)); do
		flock -n "$T/state/lock" true || return 0
		sleep 0.1
	done
	fail "could not take the job lock $T/state/lock"
}

sb_release_job_lock() {
	kill "$SB_LOCK_HOLDER"
	wait "$SB_LOCK_HOLDER" 2>/dev/null || true
}

# sb_wait_file PATH [SECONDS]: until PATH exists (default 60 s).
sb_wait_file() {
	local i
	for ((i = 0; i < ${2:-60} * 20; i++)); do
		[ -e "$1" ] && return 0
		sleep 0.05
	done
	fail "$1 did not appear within ${2:-60} s"
}

# sb_gate_restic: puts a restic first in PATH that, while the gate is
# closed (sb_close_restic_gate), holds every `restic backup` before it
# starts, so a test can act while a backup is certainly under way
# however fast or slow the machine is. The held process is the one that
# becomes restic (same pid, same name), so signals reach what they would.
sb_gate_restic() {
	local real
	real=$(command -v restic)
	mkdir -p "$T/gate-bin"
	cat >"$T/gate-bin/restic" <<SH
#!/bin/sh
if [ "\$1" = backup ] && [ -e "$T/restic-gate" ]; then
	echo \$\$ >"$T/restic-held.tmp" && mv "$T/restic-held.tmp" "$T/restic-held"
	while [ -e "$T/restic-gate" ]; do sleep 0.05; done
fi
exec "$real" "\$@"
SH
	chmod +x "$T/gate-bin/restic"
	export PATH="$T/gate-bin:$PATH"
}
sb_close_restic_gate() {
	rm -f "$T/restic-held"
	touch "$T/restic-gate"
}
# sb_wait_restic_held: until a backup waits at the gate; prints its pid.
sb_wait_restic_held() {
	sb_wait_file "$T/restic-held" 120
	cat "$T/restic-held"
}
sb_open_restic_gate() {
	rm -f "$T/restic-gate"
}
