#!/bin/sh
# scripts/demo.sh [up|down|status]: the README's quick start. "up" (the
# default) installs what is missing, builds with the README's commands, and
# runs stackback on three small compose stacks under one folder
# ($STACKBACK_DEMO_DIR, default /var/tmp/stackback-demo): a local restic
# repository, a local folder standing in for the cloud (rclone's "local"
# backend), the control filesystem mounted in the folder, two stacks enabled
# through enabled/, a backup and a sync triggered through trigger/. "down"
# takes it all down again: the stacks, the mount, and the Docker engine if
# "up" started it. The folder stays (repository, cloud copy, logs) until
# you delete it. Both are safe to run again. Run as root, from anywhere.
#
# STACKBACK_BUILD_DIR (default "build") is the build directory, relative to
# the source tree; STACKBACK_DEMO_PREFIX (default "demo-") starts the
# stacks' names, which are compose project names and so global to the
# Docker engine.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
D=${STACKBACK_DEMO_DIR:-/var/tmp/stackback-demo}
build=${STACKBACK_BUILD_DIR:-build}
prefix=${STACKBACK_DEMO_PREFIX:-demo-}
web=${prefix}web
notes=${prefix}notes
cache=${prefix}cache
cfg=$D/config.ini
mnt=$D/mnt
case $build in /*) bindir=$build ;; *) bindir=$top/$build ;; esac
sb=$bindir/cli/stackback

say() {
	printf '==> %s\n' "$*"
}

die() {
	printf 'demo: error: %s\n' "$*" >&2
	exit 1
}

# step WHAT CMD...: runs CMD, or stops the demo naming the step that failed.
step() {
	what=$1
	shift
	say "$what"
	"$@" || die "$what failed (see the lines above)"
}

usage() {
	echo "usage: scripts/demo.sh [up|down|status]" >&2
	exit 2
}

# compose_in DIR ARGS...: compose (v2 if present, else v1) in a stack's directory.
compose_in() {
	(
		cd "$1" && shift
		if docker compose version >/dev/null 2>&1; then
			docker compose "$@"
		else
			docker-compose "$@"
		fi
	)
}

# The PIDs of the demo's daemon: stackbackfs processes serving $mnt.
daemon_pids() {
	for pid in $(pgrep -x stackbackfs || true); do
		case " $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) " in
		*" $mnt "*) echo "$pid" ;;
		esac
	done
}

# After the unmount the daemon cancels its job and starts again the stacks
# it had stopped; only then may the stacks go down.
wait_daemon_exit() {
	i=0
	while [ -n "$(daemon_pids)" ]; do
		i=$((i + 1))
		[ "$i" -le 120 ] || return 1
		sleep 0.5
	done
}

# True when the demo's control filesystem is mounted (even if its daemon died).
mounted() {
	awk -v mp="$mnt" '$5 == mp { found = 1 } END { exit !found }' /proc/self/mountinfo
}

# The demo refuses to write into a folder it did not make.
claim_folder() {
	if [ -d "$D" ] && [ ! -e "$D/.stackback-demo" ] && [ -n "$(ls -A "$D")" ]; then
		die "$D exists and is not a stackback demo folder; set STACKBACK_DEMO_DIR to another path"
	fi
	mkdir -p "$D"
	chmod 700 "$D"
	touch "$D/.stackback-demo"
}

# A local image from Debian's static busybox: no registry is needed.
busybox_image() {
	docker image inspect local/busybox:latest >/dev/null 2>&1 && return 0
	root=$D/busybox-root
	rm -rf "$root"
	mkdir -p "$root/bin" "$root/tmp"
	cp "$(command -v busybox)" "$root/bin/busybox"
	for app in sh sleep cat echo ls date mkdir rm touch true wc head tail; do
		ln -s busybox "$root/bin/$app"
	done
	tar -C "$root" -c . | docker import - local/busybox:latest >/dev/null
	rm -rf "$root"
}

# make_stack NAME WHAT: a stack that appends a line to ./data/ticks every
# second and stops at once on SIGTERM; kept off the network.
make_stack() {
	dir=$D/stacks/$1
	mkdir -p "$dir/data"
	cat >"$dir/compose.yaml" <<YAML
# stackback demo stack: $2
services:
  app:
    image: local/busybox:latest
    network_mode: none
    working_dir: /data
    volumes:
      - ./data:/data
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do date >> ticks; sleep 1 & wait \$\$!; done"]
YAML
	[ -f "$dir/data/README" ] || echo "$2" >"$dir/data/README"
}

write_files() {
	mkdir -p "$D/stacks" "$D/cloud" "$mnt"
	# The repository's password: generated once, never replaced (the
	# repository would be lost with it).
	if [ ! -s "$D/restic-password" ]; then
		(umask 077 && head -c 24 /dev/urandom | base64 >"$D/restic-password")
	fi
	chmod 600 "$D/restic-password"
	make_stack "$web" "a web site's files"
	make_stack "$notes" "someone's notes"
	make_stack "$cache" "a cache nobody needs backed up"
	echo '<h1>hello from the stackback demo</h1>' >"$D/stacks/$web/data/index.html"
	printf 'buy milk\nback up the stacks\n' >"$D/stacks/$notes/data/todo.txt"
	(
		umask 077
		cat >"$D/rclone.conf" <<INI
# The demo's "cloud": rclone's local backend, a plain folder.
[demo-cloud]
type = local
INI
		cat >"$cfg" <<INI
# The stackback demo's configuration (scripts/demo.sh writes it).
[docker]
DOCKER_STACKS_DIR=$D/stacks
DOCKER_TIMEOUT=20

[local_backup]
RESTIC_REPOSITORY=$D/restic-repo
PASSWORD_FILE=$D/restic-password
HOSTNAME=stackback-demo
KEEP_DAILY=7

[cloud_sync]
RCLONE_REMOTE=demo-cloud
RCLONE_PATH=$D/cloud

[stackback]
STATE_DIR=$D/state
MOUNTPOINT=$mnt
RESTORE_DIR=$D/restored
RCLONE_CONFIG=$D/rclone.conf
# A demo is small: do not insist on the default 1 GiB free.
MIN_DISK_SPACE_MB=64
INI
	)
}

build() {
	# The README's build commands; "meson setup" only once.
	if [ ! -f "$bindir/build.ninja" ]; then
		(cd "$top" && meson setup "$build") || return 1
	fi
	(cd "$top" && meson compile -C "$build")
}

# run_job TRIGGER: queues a job through the mount and waits for its end.
run_job() {
	echo 1 >"$mnt/trigger/$1" || return 1
	if ! "$sb" -c "$cfg" wait --timeout 900; then
		echo "the $1 job did not end ok; its log:" >&2
		cat "$mnt/jobs/last/log" >&2 || true
		return 1
	fi
}

up() {
	[ "$(id -u)" = 0 ] || die "run the demo as root (it installs packages, starts Docker and mounts FUSE)"
	claim_folder
	step "installing what is missing (scripts/install-deps.sh)" "$top/scripts/install-deps.sh"
	step "building (meson setup $build && meson compile -C $build)" build
	step "starting a Docker engine unless one runs (scripts/dockerd.sh)" \
		env STACKBACK_DOCKERD_PIDFILE="$D/dockerd.pid" "$top/scripts/dockerd.sh" start
	step "importing the local busybox image" busybox_image
	say "writing the stacks, the configuration and the password in $D"
	write_files
	for s in "$web" "$notes" "$cache"; do
		step "starting stack '$s'" compose_in "$D/stacks/$s" up -d
	done
	step "checking the configuration" "$sb" -c "$cfg" config check
	step "creating the restic repository (stackback init)" "$sb" -c "$cfg" init
	if mounted && ! ls "$mnt" >/dev/null 2>&1; then
		step "clearing a stale mount left by a dead daemon" "$sb" -c "$cfg" umount
	fi
	step "mounting the control filesystem at $mnt" "$sb" -c "$cfg" mount
	for s in "$web" "$notes"; do
		if [ ! -d "$mnt/enabled/$s" ]; then
			step "enabling '$s' (mkdir $mnt/enabled/$s)" mkdir "$mnt/enabled/$s"
		fi
	done
	step "backing up the enabled stacks (echo 1 > $mnt/trigger/backup)" run_job backup
	step "syncing the repository to the cloud folder (echo 1 > $mnt/trigger/sync)" run_job sync
	[ -d "$mnt/snapshots/$web/latest" ] || die "the backup left no $mnt/snapshots/$web/latest"
	show
}

# The demo's own command line, with the overrides it was started with.
demo_cmd() {
	env=""
	[ -z "${STACKBACK_DEMO_DIR:-}" ] || env="${env}STACKBACK_DEMO_DIR=$D "
	[ -z "${STACKBACK_BUILD_DIR:-}" ] || env="${env}STACKBACK_BUILD_DIR=$build "
	[ -z "${STACKBACK_DEMO_PREFIX:-}" ] || env="${env}STACKBACK_DEMO_PREFIX=$prefix "
	echo "$env$top/scripts/demo.sh $1"
}

show() {
	echo
	echo "The demo is up. Everything lives in $D; look at:"
	line() { printf '  %-32s %s\n' "$1" "$2"; }
	line "the control filesystem" "ls $mnt"
	line "the daemon and the last job" "cat $mnt/status"
	line "the selection (mkdir, rmdir, mv)" "ls $mnt/enabled $mnt/disabled"
	line "the newest backup of '$web'" "ls $mnt/snapshots/$web/latest/"
	line "the cloud copy" "cat $mnt/cloud/status"
	line "the \"cloud\" (a local folder)" "ls $D/cloud"
	line "another backup" "echo 1 > $mnt/trigger/backup"
	line "the CLI" "$sb -c $cfg list"
	line "the TUI" "$bindir/tui/stackback-tui -c $cfg"
	line "tear it all down" "$(demo_cmd down)"
}

down() {
	[ "$(id -u)" = 0 ] || die "run the demo as root"
	[ -e "$D/.stackback-demo" ] || die "no stackback demo in $D"
	if mounted; then
		step "unmounting $mnt" "$sb" -c "$cfg" umount
	fi
	step "waiting for the daemon to exit" wait_daemon_exit
	if docker info >/dev/null 2>&1; then
		for stack in "$D"/stacks/*/; do
			[ -f "$stack/compose.yaml" ] || continue
			step "taking stack '$(basename "$stack")' down" compose_in "$stack" down -t 5
		done
	fi
	step "stopping the Docker engine if the demo started it" \
		env STACKBACK_DOCKERD_PIDFILE="$D/dockerd.pid" "$top/scripts/dockerd.sh" stop
	say "the demo is down; its files stay in $D (rm -rf $D to delete them)"
}

status() {
	[ -e "$D/.stackback-demo" ] || die "no stackback demo in $D (run scripts/demo.sh)"
	if mounted; then
		"$sb" -c "$cfg" status
		show
	else
		echo "the demo in $D is not mounted (scripts/demo.sh starts it)"
	fi
}

case "${1:-up}" in
up) up ;;
down) down ;;
status) status ;;
*) usage ;;
esac
