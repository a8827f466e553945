#!/bin/bash
# Snapshot mode (SNAPSHOT_MODE, docs/snapshot-mode.md) on real filesystems:
# loop-mounted btrfs, XFS and ext4 images carrying real compose stacks.
#
# restic is wrapped on PATH (instrumentation, as in fault injection): when
# `restic backup` starts, the wrapper records whether docker runs the
# stack and copies the file restic is about to read, waits two seconds so
# the running stack writes on, then execs the real restic. Each stack's
# container appends a tick five times a second and "stopped" on SIGTERM,
# so what restic read can be placed exactly in the file's history.
#
# Shown: the stack runs again before restic starts; the snapshot holds the
# data as it was at the stop (ending with "stopped") while the live file
# grows past it; snapshots are recorded under the stack's own path, like
# plain ones; reflink copies are backed up with --parent, --ignore-inode
# and --ignore-ctime, so unchanged files are not read again; auto on ext4
# falls back and says so; an explicit mode that cannot work leaves the
# stack alone; SIGKILL mid-backup leaves a copy that `recover` removes.
source "$(dirname "$0")/lib.sh"
need restic docker-compose python3 mkfs.btrfs mkfs.xfs mkfs.ext4 btrfs losetup mount umount pgrep
[ "$(id -u)" = 0 ] || fail "snapshot mode needs root (loop mounts, snapshots, private mounts)"

sb_write_config
sb_busybox_image

sb() { PATH="$T/bin:$PATH" "$SB" -c "$CFG" "$@"; }
run() {
	set +e
	sb "$@" >"$T/out" 2>"$T/err"
	RC=$?
	set -e
	OUT=$(cat "$T/out")
	ERR=$(cat "$T/err")
}
rs() { RESTIC_PASSWORD_FILE="$T/password" restic -r "$T/repo" --no-cache "$@"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
# The report of stack $1 in the JSON report in $OUT, evaluated as `s`.
report() { python3 -c "import json,sys; s=[x for x in json.load(sys.stdin)['stacks'] if x['stack']==sys.argv[1]][0]; print($2)" "$1" <<<"$OUT"; }

# A fresh filesystem on a loop device at $2; unmounted and detached at exit
# (registered before the stacks, so their containers are gone first).
loop_fs() {
	local type=$1 dir=$2 size=$3
	shift 3
	truncate -s "$size" "$T/$type.img"
	"$@" "$T/$type.img" >/dev/null 2>&1 || fail "$* failed"
	local dev
	dev=$(losetup -f --show "$T/$type.img") || fail "no loop device for the $type image"
	on_exit "losetup -d $dev"
	mkdir -p "$dir"
	mount "$dev" "$dir" || fail "cannot mount the $type image"
	on_exit "umount '$dir' || umount -l '$dir'"
}
# The stacks directory is a btrfs filesystem of its own: its default
# staging area is then at the top of that filesystem, beside the stacks.
loop_fs btrfs "$T/stacks" 1G mkfs.btrfs -q -f
loop_fs xfs "$T/xfs" 1G mkfs.xfs -q -f
loop_fs ext4 "$T/ext4" 256M mkfs.ext4 -q -F

# make_stack DIR: a compose stack ticking into data/ticks, with some data.
make_stack() {
	local dir=$1
	mkdir -p "$dir/data"
	cat >"$dir/docker-compose.yml" <<'YAML'
version: "3"
services:
  app:
    image: local/busybox:latest
    network_mode: none
    working_dir: /data
    volumes:
      - ./data:/data
    command: ["sh", "-c", "trap 'echo stopped >> /data/ticks; exit 0' TERM; i=0; while true; do i=$$((i+1)); echo tick $$i >> /data/ticks; sleep 0.2 & wait $$!; done"]
YAML
	seq 1 5000 | sed 's/^/row /' >"$dir/data/table.csv"
	head -c 30M /dev/urandom >"$dir/data/blob.bin"
	mkdir -p "$dir/data/conf"
	echo "key=value" >"$dir/data/conf/app.conf"
	ln -s conf/app.conf "$dir/data/current.conf"
	on_exit "docker-compose -f '$dir/docker-compose.yml' down -t 1"
}
up() { docker-compose -f "$1/docker-compose.yml" up -d >/dev/null 2>&1 || fail "compose up $1"; }
running() { docker ps -q --filter "label=com.docker.compose.project=$(basename "$1")" --filter status=running | wc -l; }

REAL_RESTIC=$(command -v restic)
mkdir -p "$T/bin"
cat >"$T/bin/restic" <<SH
#!/bin/sh
if [ "\$1" = backup ]; then
	for a; do path=\$a; done
	name=\${path##*/}
	n=\$(docker ps -q --filter "label=com.docker.compose.project=\$name" --filter status=running | wc -l)
	echo "\$name running=\$n args=\$*" >>"$T/wrapper.log"
	cp "\$path/data/ticks" "$T/seen-\$name"
	sleep 2
	while [ -e "$T/hang-\$name" ]; do sleep 0.2; done
fi
exec "$REAL_RESTIC" "\$@"
SH
chmod +x "$T/bin/restic"

WEB="${P}web"
XS="${P}xs"
EX="${P}ex"
btrfs -q subvolume create "$T/stacks/$WEB"
make_stack "$T/stacks/$WEB"
make_stack "$T/xfs/$XS"
make_stack "$T/ext4/$EX"
mkdir -p "$T/xfs/$XS/.stackback" "$T/ext4/$EX/.stackback"
printf '# XFS: reflinks\nSNAPSHOT_MODE=reflink\n' >"$T/xfs/$XS/.stackback/config"
printf 'SNAPSHOT_MODE=auto\n' >"$T/ext4/$EX/.stackback/config"
printf 'SNAPSHOT_MODE=btrfs\n' >>"$CFG"
up "$T/stacks/$WEB"
up "$T/xfs/$XS"
up "$T/ext4/$EX"
run init
assert_eq "$RC" 0 "init: $ERR"
run enable "$WEB" "$T/xfs/$XS" "$T/ext4/$EX"
assert_eq "$RC" 0 "enable: $ERR"
sleep 1

# check_snapshot NAME DIR: restic read the copy, taken at the stop, while
# the restarted stack wrote on.
check_snapshot() {
	local name=$1 dir=$2
	local seen="$T/seen-$name"
	[ -s "$seen" ] || fail "$name: the wrapper saw no data file"
	assert_eq "$(tail -n1 "$seen")" "stopped" "$name: the copy does not end at the stop"
	rs dump --tag "$name" latest "$dir/data/ticks" >"$T/dumped" || fail "$name: restic dump"
	cmp -s "$T/dumped" "$seen" || fail "$name: the snapshot is not what the copy held"
	local n
	n=$(wc -c <"$seen")
	cmp -s -n "$n" "$seen" "$dir/data/ticks" || fail "$name: the copy is not the live file's past"
	[ "$(wc -c <"$dir/data/ticks")" -gt "$n" ] || fail "$name: the stack wrote nothing during the backup"
	tail -c +$((n + 1)) "$dir/data/ticks" | grep -q '^tick' ||
		fail "$name: no tick after the stop: the stack did not run during the backup"
}

note "a dry run says what snapshot mode would do, and does nothing"
run backup --dry-run "$WEB"
assert_eq "$RC" 0 "dry run: $ERR"
assert_contains "$ERR" "dry run: stack '$WEB' is running; would stop it, snapshot it (SNAPSHOT_MODE), start it, then back up the snapshot"
[ ! -e "$T/stacks/.stackback-staging" ] || fail "a dry run made a staging area"
[ ! -e "$T/wrapper.log" ] || fail "a dry run ran restic backup"

note "btrfs: a read-only subvolume snapshot; the stack runs while restic reads it"
run backup --json "$WEB"
assert_eq "$RC" 0 "btrfs backup: $ERR"
assert_eq "$(report "$WEB" 's["mode"], s["result"], s["restarted"]')" "btrfs ok True"
# The downtime and restic's time no longer overlap (in a plain backup, one holds the other).
report "$WEB" 's["downtime_s"] + s["backup_s"] <= s["duration_s"] and s["backup_s"] >= 2' | grep -qx True ||
	fail "btrfs: the stack was down while restic read: $OUT"
assert_contains "$(grep "^$WEB " "$T/wrapper.log")" "$WEB running=1 " "btrfs: the stack was not running when restic started"
assert_not_contains "$(grep "^$WEB " "$T/wrapper.log")" "--ignore-inode" "btrfs: a snapshot keeps inodes"
assert_contains "$ERR" "btrfs snapshot '$T/stacks/.stackback-staging/$WEB' taken in"
check_snapshot "$WEB" "$T/stacks/$WEB"
[ ! -e "$T/stacks/.stackback-staging" ] || fail "btrfs: the staging area was left: $(ls -la "$T/stacks/.stackback-staging")"
assert_eq "$(cat "$T/state/staging")" "" "btrfs: the staging journal still lists a copy"
assert_eq "$(btrfs subvolume list "$T/stacks" | grep -c .)" 1 "btrfs: a snapshot subvolume is left"
assert_eq "$(rs snapshots --json --tag "$WEB" | json 'd[-1]["paths"]')" "['$T/stacks/$WEB']"
assert_eq "$(running "$T/stacks/$WEB")" 1

note "a snapshot looks like a plain backup: the same paths, modes and owners"
SNAP_ID=$(report "$WEB" 's["snapshot_id"]')
SNAPSHOT_MODE=off run backup --json "$WEB"
assert_eq "$RC" 0 "plain backup: $ERR"
assert_eq "$(report "$WEB" 's["mode"]')" "stop"
PLAIN_ID=$(report "$WEB" 's["snapshot_id"]')
listing() { rs ls --json "$1" | python3 -c '
import json, sys
for line in sys.stdin:
    n = json.loads(line)
    if n.get("struct_type") == "node":
        print(n["path"], n["type"], n.get("mode"), n.get("uid"), n.get("gid"))'; }
diff <(listing "$SNAP_ID") <(listing "$PLAIN_ID") || fail "the snapshot-mode snapshot differs from a plain one"

note "XFS, per-stack .stackback/config: a reflink copy, read with --parent, --ignore-inode, --ignore-ctime"
run backup --json "$XS"
assert_eq "$RC" 0 "xfs backup: $ERR"
assert_eq "$(report "$XS" 's["mode"], s["result"]')" "reflink ok"
assert_contains "$(grep "^$XS " "$T/wrapper.log" | tail -n1)" "$XS running=1 "
check_snapshot "$XS" "$T/xfs/$XS"
FIRST=$(rs snapshots --json --tag "$XS" | json 'd[-1]["id"]')
run backup --json "$XS"
assert_eq "$RC" 0 "second xfs backup: $ERR"
line=$(grep "^$XS " "$T/wrapper.log" | tail -n1)
assert_contains "$line" "--parent $FIRST "
assert_contains "$line" "--ignore-inode --ignore-ctime"
# New inodes and ctimes in the copy, yet only the ticking file is read again.
assert_eq "$(report "$XS" 's["files_new"], s["files_changed"]')" "0 1" "xfs: unchanged files were read again"
check_snapshot "$XS" "$T/xfs/$XS"
[ ! -e "$T/xfs/.stackback-staging" ] || fail "xfs: the staging area was left"

note "ext4 with auto: no snapshot possible, so the stack stays stopped for its backup, and says so"
run backup --json "$EX"
assert_eq "$RC" 0 "ext4 backup: $ERR"
assert_eq "$(report "$EX" 's["mode"], s["result"], s["restarted"]')" "stop ok True"
assert_contains "$ERR" "stack '$EX': SNAPSHOT_MODE=auto finds no way to snapshot it ('$T/ext4/$EX' is on ext4, which cannot share file data"
assert_contains "$(grep "^$EX " "$T/wrapper.log")" "$EX running=0 " "ext4: the stack ran while restic read it"
[ ! -e "$T/ext4/.stackback-staging" ] || fail "ext4: auto left a staging directory"

note "an explicit mode that cannot work leaves the stack alone"
printf 'SNAPSHOT_MODE=btrfs\n' >"$T/ext4/$EX/.stackback/config"
run backup "$EX"
assert_eq "$RC" 1
assert_contains "$OUT$ERR" "stack '$EX' skipped (left running): SNAPSHOT_MODE=btrfs: '$T/ext4/$EX' is on ext4, not btrfs"
assert_eq "$(running "$T/ext4/$EX")" 1
printf 'SNAPSHOT_MODE=bogus\n' >"$T/ext4/$EX/.stackback/config"
run backup "$EX"
assert_eq "$RC" 1
assert_contains "$OUT$ERR" "stack '$EX' skipped (left running): $T/ext4/$EX/.stackback/config:1: SNAPSHOT_MODE: unknown value 'bogus'"
assert_eq "$(running "$T/ext4/$EX")" 1

note "metrics and last backup show the mode and restic's time apart from the downtime"
run metrics
assert_contains "$OUT" "stackback_stack_last_backup_mode{stack=\"$XS\",mode=\"reflink\"} 1"
assert_contains "$OUT" "stackback_stack_last_backup_restic_seconds{stack=\"$XS\"} "
assert_contains "$OUT" "stackback_stack_last_backup_mode{stack=\"$WEB\",mode=\"stop\"} 1"

# kill_mid_backup NAME DIR COPY: SIGKILL of the CLI (and, as a reboot
# would, of restic) while restic reads the copy; `recover` removes it.
kill_mid_backup() {
	local name=$1 dir=$2 copy=$3
	touch "$T/hang-$name"
	local before i
	before=$(grep -c "^$name " "$T/wrapper.log" || true)
	PATH="$T/bin:$PATH" "$SB" -c "$CFG" backup "$name" >/dev/null 2>&1 &
	local pid=$!
	# Until restic backup itself starts (restic snapshots, for the parent, comes first).
	for ((i = 0; i < 600; i++)); do
		[ "$(grep -c "^$name " "$T/wrapper.log" || true)" -gt "$before" ] && break
		sleep 0.1
	done
	local child
	child=$(pgrep -P "$pid" -x restic) || fail "$name: no restic backup child appeared"
	[ -d "$copy" ] || fail "$name: no copy at '$copy' while restic runs"
	grep -qF "$name	$copy" "$T/state/staging" || fail "$name: the staging journal does not list the copy"
	assert_eq "$(running "$dir")" 1 "$name: not running while restic reads the copy"
	kill -KILL "$pid"
	wait "$pid" 2>/dev/null || true
	kill -KILL -- "-$child" 2>/dev/null || true
	rm -f "$T/hang-$name"
	[ -d "$copy" ] || fail "$name: the copy vanished before recover"
	run recover
	assert_eq "$RC" 0 "recover: $OUT $ERR"
	assert_contains "$OUT" "removed snapshot copy '$copy' of stack '$name'"
	[ ! -e "$copy" ] || fail "$name: recover left the copy"
	[ ! -e "$(dirname "$copy")" ] || fail "$name: recover left the staging area"
	assert_eq "$(cat "$T/state/staging")" "" "$name: the staging journal still lists a copy"
	assert_eq "$(running "$dir")" 1 "$name: not running after recover"
	run recover
	assert_contains "$OUT" "nothing to recover"
}

note "SIGKILL during the backup of a btrfs snapshot, then recover"
kill_mid_backup "$WEB" "$T/stacks/$WEB" "$T/stacks/.stackback-staging/$WEB"
assert_eq "$(btrfs subvolume list "$T/stacks" | grep -c .)" 1 "a snapshot subvolume survived recover"

note "SIGKILL during the backup of a reflink copy, then recover"
kill_mid_backup "$XS" "$T/xfs/$XS" "$T/xfs/.stackback-staging/$XS"

echo "ok"
