#!/bin/bash
# snapshots/ and the daemon's jobs (SPEC §2, §1 Stage 3): a backup queued
# through trigger/backup moves snapshots/NAME/latest without a remount
# and its tree is built in the background; after trigger/sync and
# trigger/restore, cloud/snapshots/ browses the copy restored from the
# cloud, read-only, with the same contents.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-fs.sh"
need docker-compose restic rclone cmp

sb_write_config
sb_busybox_image
WEB="${P}web"
sb_make_stack "$WEB"
sb_stack_up "$WEB"
printf '%s=true\n' "$WEB" >"$T/state/dirlist"
mkdir -p "$T/cloud"
rs() { RESTIC_PASSWORD_FILE="$T/password" restic -r "$T/repo" "$@"; }
rs init >/dev/null
sbfs_mount
SNAPS="$MNT/snapshots/$WEB"

note "before any backup: the stack's directory exists, empty"
assert_eq "$(ls -A "$SNAPS")" ""
assert_eq "$(probe open "$SNAPS/latest" r)" "err ENOENT"

# backup_and_check: one backup through the mount; latest must name it at once (-> $LATEST).
backup_and_check() {
	local id state new name
	id=$(sbfs_trigger backup "$WEB")
	state=$(sbfs_wait_job "$id" 300)
	assert_eq "$state" ok "$(cat "$MNT/jobs/$id/log")"
	new=$(rs snapshots --json | json 'd[-1]["short_id"]')
	# state reads ok before the job's end invalidates the list: the report is
	# persisted (with fsyncs) and the notifications sent in between.
	for ((i = 0; i < 600; i++)); do
		name=$(readlink "$SNAPS/latest" || true)
		[[ "$name" == *"_$new" ]] && break
		sleep 0.05
	done
	[[ "$name" == *"_$new" ]] || fail "latest is '$name' after the backup of snapshot $new"
	LATEST=$name
}

note "a backup through trigger/backup: latest names it, no remount"
backup_and_check
first=$LATEST
assert_eq "$(cat "$SNAPS/latest/data/hello.txt")" "hello from $WEB"

note "the next backup: latest moves, the first snapshot stays browsable"
echo "second state" >"$T/stacks/$WEB/data/hello.txt"
backup_and_check
second=$LATEST
[ "$first" != "$second" ] || fail "latest did not move"
assert_eq "$(cat "$SNAPS/latest/data/hello.txt")" "second state"
assert_eq "$(cat "$SNAPS/$first/data/hello.txt")" "hello from $WEB"
assert_eq "$(ls "$SNAPS" | sort | tr '\n' ' ')" "$(printf '%s\n' "$first" "$second" latest | sort | tr '\n' ' ')"

note "the newest tree is built in the background after a backup"
echo third >"$T/stacks/$WEB/data/third.txt"
backup_and_check
third=$LATEST
third_id=$(rs snapshots --json | json 'd[-1]["id"]')
for ((i = 0; i < 200; i++)); do
	[ -s "$T/state/cache/trees/local/$third_id" ] && break
	sleep 0.1
done
[ -s "$T/state/cache/trees/local/$third_id" ] ||
	fail "no tree built for $third; the daemon said: $(grep -E 'snapshot|repository|tree' "$MNT/log" | tail -20)"

note "sync, restore: cloud/snapshots/ browses the restored copy"
assert_eq "$(ls -A "$MNT/cloud/snapshots")" ""
id=$(sbfs_trigger sync 1)
assert_eq "$(sbfs_wait_job "$id" 300)" ok "$(cat "$MNT/jobs/$id/log")"
id=$(sbfs_trigger restore 1)
assert_eq "$(sbfs_wait_job "$id" 300)" ok "$(cat "$MNT/jobs/$id/log")"
CLOUD="$MNT/cloud/snapshots/$WEB"
for ((i = 0; i < 600; i++)); do
	[ -L "$CLOUD/latest" ] && break
	sleep 0.1
done
assert_eq "$(readlink "$CLOUD/latest")" "$third"
assert_eq "$(ls "$MNT/cloud/snapshots")" "$WEB"
diff <(cd "$SNAPS/$third/" && find . | sort) <(cd "$CLOUD/$third/" && find . | sort) ||
	fail "the cloud copy lists other entries"
cmp "$SNAPS/$first/data/hello.txt" "$CLOUD/$first/data/hello.txt"
cmp "$T/stacks/$WEB/data/third.txt" "$CLOUD/latest/data/third.txt"
assert_eq "$(probe creat "$CLOUD/latest/data/x")" "err EROFS"
assert_eq "$(probe unlink "$CLOUD/latest/data/third.txt")" "err EROFS"
[ -d "$T/state/cache/trees/cloud" ] || fail "the cloud view keeps its trees apart"

note "stackback ls and get see the same snapshots"
out=$("$SB" -c "$CFG" ls "$WEB" data)
assert_contains "$out" "hello.txt"
assert_contains "$out" "third.txt"
out=$("$SB" -c "$CFG" ls --json "cloud:$WEB@$first" data/hello.txt)
assert_eq "$(json 'd["snapshot"]["name"], d["cloud"], d["entries"][0]["size"]' <<<"$out")" \
	"$first True $(stat -c %s "$SNAPS/$first/data/hello.txt")"
mkdir "$T/out"
"$SB" -c "$CFG" get --to "$T/out" "$WEB@${first##*_}" data >/dev/null
cmp "$T/out/data/hello.txt" "$SNAPS/$first/data/hello.txt"
sbfs_umount
