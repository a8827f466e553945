#!/bin/bash
# docs-sandbox.sh MODE BLOCK WORKDIR SRC: runs one ```sh block of the docs
# (the file BLOCK) the way a reader would, on a machine that looks like one
# where stackback is installed, without touching this one. test-docs.sh
# starts it in a private mount namespace (unshare -m), where /etc, /opt,
# /mnt, /srv, /var/lib, /var/backups and /usr/local are overlays whose
# changes live in WORKDIR (a tmpfs) and vanish with the namespace.
#
# The machine the block sees (docs/CONTRIBUTING-docs.md describes it):
#   /opt/docker-stacks/{web,db,nextcloud,scratch}  compose stacks, not running,
#                                                  on test-docs.sh's own engine
#                                                  ($DOCKER_HOST)
#   the working directory                          a copy of the source tree
#   PATH                                           the tested build's programs first
#   EDITOR                                         "edits" the file into the config below
#   an rclone remote "cloud" (local backend), its path /srv/stackback
# and, by MODE:
#   unconfigured  nothing else
#   unmounted     /etc/stackback/config.ini and restic.password (0600), the
#                 repository initialized, web, db and scratch enabled and
#                 backed up once, nextcloud disabled
#   mounted       the same, and stackbackfs mounted at /mnt/stackback
# (those two unpack $DOCS_CONFIGURED, which "docs-sandbox.sh prepare
# ARCHIVE WORKDIR SRC" writes once per test run).
#
# The block runs in bash with errexit and pipefail, so every command must
# succeed. `tail -f` (which never ends by design) is stopped after 2 s.
# Prints the block's output; exits with its status, or 125 when the
# sandbox itself could not be set up or torn down.
set -euo pipefail
mode=$1 block=$2 W=$3 src=$4
: "${SB_BUILD:?SB_BUILD must point at the build directory}"

die() {
	echo "docs sandbox: $*" >&2
	exit 125
}

mkdir -p "$W"
mount -t tmpfs -o mode=0700 docs-sandbox "$W" || die "cannot mount a tmpfs on $W"
for d in /etc /opt /mnt /srv /var/lib /var/backups /usr/local; do
	mkdir -p "$d"
	key=${d//\//_}
	mkdir -p "$W/upper$key" "$W/work$key"
	mount -t overlay overlay -o "lowerdir=$d,upperdir=$W/upper$key,workdir=$W/work$key" "$d" ||
		die "cannot lay an overlay over $d"
done

# The stacks: never started here (the engine lives outside this namespace
# and would create their bind mounts on the host).
for s in web db nextcloud scratch; do
	mkdir -p "/opt/docker-stacks/$s/data"
	cat >"/opt/docker-stacks/$s/compose.yaml" <<YAML
services:
  app:
    image: local/busybox:latest
    network_mode: none
    volumes:
      - ./data:/data
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1 & wait \$\$!; done"]
YAML
	echo "the $s stack's data" >"/opt/docker-stacks/$s/data/file.txt"
done

# The reader's rclone remote, as `rclone config` would have written it.
export HOME=$W/home
mkdir -p "$HOME/.config/rclone" /srv/stackback
printf '[cloud]\ntype = local\n' >"$HOME/.config/rclone/rclone.conf"
chmod 600 "$HOME/.config/rclone/rclone.conf"

# What the reader puts in the configuration.
cat >"$W/config.ini" <<'INI'
[docker]
DOCKER_STACKS_DIR=/opt/docker-stacks

[local_backup]
RESTIC_REPOSITORY=/var/backups/stackback/restic
PASSWORD_FILE=/etc/stackback/restic.password

[cloud_sync]
RCLONE_REMOTE=cloud
RCLONE_PATH=/srv/stackback
INI

mkdir -p "$W/bin"
cat >"$W/bin/sandbox-editor" <<EOF
#!/bin/sh
# The docs sandbox's \$EDITOR: the reader's edits, written at once.
[ \$# = 1 ] || { echo "sandbox-editor: one file expected, got: \$*" >&2; exit 1; }
cat '$W/config.ini' >"\$1"
EOF
cat >"$W/bin/tail" <<'EOF'
#!/bin/sh
# The docs sandbox's tail: `tail -f` follows for 2 s, then ends well.
for a; do
	case $a in
	-f | -F | --follow*)
		timeout 2 /usr/bin/tail "$@"
		rc=$?
		[ "$rc" = 124 ] && exit 0
		exit "$rc"
		;;
	esac
done
exec /usr/bin/tail "$@"
EOF
chmod 755 "$W/bin/sandbox-editor" "$W/bin/tail"
export PATH="$W/bin:$SB_BUILD/cli:$SB_BUILD/fs:$SB_BUILD/tui:$PATH"
export EDITOR=sandbox-editor VISUAL=sandbox-editor PAGER=cat MANPAGER=cat SYSTEMD_PAGER=cat
unset STACKBACK_CONFIG

# The daemons of this namespace: stackbackfs processes sharing our mounts.
our_daemons() {
	local pid ns
	ns=$(readlink /proc/self/ns/mnt)
	for pid in $(pgrep -x stackbackfs || true); do
		[ "$(readlink "/proc/$pid/ns/mnt" 2>/dev/null)" = "$ns" ] && echo "$pid"
	done
	return 0
}

teardown() {
	local rc=$? i
	if grep -q ' /mnt/stackback [^ ]* [^-]*- fuse.stackbackfs ' /proc/self/mountinfo; then
		fusermount3 -u /mnt/stackback 2>/dev/null || fusermount3 -u -z /mnt/stackback
	fi
	for ((i = 0; i < 600; i++)); do
		[ -z "$(our_daemons)" ] && break
		sleep 0.1
	done
	if [ -n "$(our_daemons)" ]; then
		echo "docs sandbox: stackbackfs did not exit within 60 s of the unmount" >&2
		# shellcheck disable=SC2046 # one PID per word
		kill $(our_daemons) 2>/dev/null || true
		rc=125
	fi
	exit "$rc"
}
trap teardown EXIT

# The configured machine is made once (mode "prepare", BLOCK naming the
# archive to write) and unpacked for each block: restic and the backup
# cost seconds, and every block gets the same state.
configured=(etc/stackback var/lib/stackback var/backups/stackback)
case $mode in
unconfigured) ;;
prepare)
	mkdir -m 0700 /etc/stackback
	install -m 0600 "$W/config.ini" /etc/stackback/config.ini
	(umask 077 && echo "docs-sandbox-password" >/etc/stackback/restic.password)
	{
		stackback init && stackback discover && stackback enable web db scratch &&
			stackback backup
	} >"$W/setup.log" 2>&1 || die "setting up the configured machine failed: $(cat "$W/setup.log")"
	tar -C / -cf "$block" "${configured[@]}" || die "cannot archive the configured machine"
	exit 0
	;;
unmounted | mounted)
	[ -f "${DOCS_CONFIGURED:-}" ] || die "DOCS_CONFIGURED must name the archive mode 'prepare' wrote"
	tar -C / -xpf "$DOCS_CONFIGURED" || die "cannot unpack $DOCS_CONFIGURED"
	if [ "$mode" = mounted ]; then
		stackback mount >"$W/setup.log" 2>&1 || die "stackback mount failed: $(cat "$W/setup.log")"
	fi
	;;
*) die "unknown mode '$mode'" ;;
esac

cd "$src"
set +e
timeout 900 bash -eo pipefail "$block"
rc=$?
set -e
[ "$rc" = 124 ] && echo "docs sandbox: the block was still running after 900 s" >&2
exit "$rc"
