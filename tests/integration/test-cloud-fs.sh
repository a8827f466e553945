#!/bin/bash
# Stage 2 and 3 through the mount (SPEC §2 cloud/, trigger/sync,
# trigger/restore) against a real WebDAV server on loopback: the cloud/
# files before, during and after a sync, a sync cancelled mid-upload,
# in_sync falling back to "not verified" when a backup changes the
# repository, a restore and its snapshots, refused restores, and
# `stackback status` saying the same.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-fs.sh"
source "$(dirname "$0")/lib-cloud.sh"

sb_write_config
sb_dav_start
sb_cloud_config
REMOTE="sbremote:backup/repo"

mkdir -p "$T/src/web" "$T/src/db"
head -c $((32 << 20)) /dev/urandom >"$T/src/web/blob"
echo "db" >"$T/src/db/dump.sql"
sb_restic "$T/repo" init >/dev/null
for s in web web db; do
	sb_restic "$T/repo" backup --tag stackback --tag "$s" --host sbtest "$T/src/$s" >/dev/null
done
sbfs_mount

note "before any sync"
assert_eq "$(cat "$MNT/cloud/status")" "idle"
assert_eq "$(cat "$MNT/cloud/remote")" "$REMOTE"
assert_eq "$(cat "$MNT/cloud/last_sync")" "never"
assert_eq "$(cat "$MNT/cloud/in_sync")" "not verified: never synced"
assert_eq "$(cat "$MNT/cloud/progress")" "phase: idle"
assert_eq "$(cat "$MNT/cloud/last_restore")" "never"
ls "$MNT/cloud" >"$T/cloud.ls"
assert_eq "$(tr '\n' ' ' <"$T/cloud.ls")" "in_sync last_restore last_sync progress remote snapshots status "

note "echo 1 > trigger/sync: progress while it uploads (bandwidth-limited), then cancel"
# 1 MiB/s over 32 MiB: ~30 s of upload, so every read below sees it under
# way however loaded the machine; the sync is then cancelled rather than
# waited for.
sed -i 's|^\[cloud_sync\]$|[cloud_sync]\nBANDWIDTH=1M|' "$CFG"
fusermount3 -u "$MNT"
sbfs_wait_exit 0
sbfs_mount
id=$(sbfs_trigger sync 1)
seen_progress=
for ((i = 0; i < 600; i++)); do
	p=$(cat "$MNT/cloud/progress")
	if grep -q '^phase: upload$' <<<"$p" && ! grep -q '^bytes_done: 0$' <<<"$p"; then
		seen_progress=$p
		break
	fi
	sleep 0.1
done
[ -n "$seen_progress" ] || fail "cloud/progress never showed the upload: $p"
assert_contains "$(cat "$MNT/cloud/status")" "syncing: uploading, "
assert_eq "$(cat "$MNT/cloud/in_sync")" "not verified: a sync is running"
grep -q '^percent: [0-9.]*$' <<<"$seen_progress" || fail "no percent in: $seen_progress"
grep -q "^bytes_total: [1-9]" <<<"$seen_progress" || fail "no total in: $seen_progress"
progress=$(cat "$MNT/jobs/$id/progress")
assert_contains "$progress" "phase: upload"
echo 1 >"$MNT/jobs/$id/cancel"
assert_eq "$(sbfs_wait_job "$id" 60)" cancelled "$(cat "$MNT/jobs/$id/log")"
assert_contains "$(cat "$MNT/cloud/status")" "sync to '$REMOTE' cancelled"
assert_eq "$(cat "$MNT/cloud/progress")" "phase: idle"
sed -i '/^BANDWIDTH=/d' "$CFG"
fusermount3 -u "$MNT"
sbfs_wait_exit 0
sbfs_mount

note "the sync again, unthrottled: it completes and verifies the copy"
id=$(sbfs_trigger sync 1)
assert_eq "$(sbfs_wait_job "$id" 120)" ok "$(cat "$MNT/jobs/$id/log")"
assert_eq "$(cat "$MNT/cloud/status")" "ok"
assert_eq "$(cat "$MNT/cloud/progress")" "phase: idle"
assert_contains "$(cat "$MNT/cloud/in_sync")" "verified: "
assert_contains "$(cat "$MNT/cloud/in_sync")" "files match by size, checked "
last=$(cat "$MNT/cloud/last_sync")
assert_contains "$last" "result: ok"
assert_contains "$last" "remote: $REMOTE"
grep -q '^bytes: [1-9][0-9]\{6,\}$' <<<"$last" || fail "last_sync bytes: $last"
assert_contains "$(cat "$MNT/trigger/sync")" "job $id ok"
assert_contains "$(cat "$MNT/jobs/$id/log")" "restic check of '$T/repo' passed"
assert_eq "$(json 'd["cloud"]["status"], d["cloud"]["last_sync"]["result"]' <"$MNT/status.json")" "ok ok"

note "a backup after the sync: in_sync is no longer verified"
sb_restic "$T/repo" backup --tag stackback --tag db --host sbtest "$T/src/db" >/dev/null
assert_contains "$(cat "$MNT/cloud/in_sync")" "not verified: the local repository changed after the check of "

note "a dry-run sync changes neither the remote nor cloud/"
before_remote=$(sb_tree_sum "$DAV_DIR/backup/repo")
before_last=$(cat "$MNT/cloud/last_sync")
id=$(sbfs_trigger sync "1 dry-run")
assert_eq "$(sbfs_wait_job "$id" 120)" ok "$(cat "$MNT/jobs/$id/log")"
assert_eq "$(sb_tree_sum "$DAV_DIR/backup/repo")" "$before_remote" "the remote after a dry run"
assert_eq "$(cat "$MNT/cloud/last_sync")" "$before_last" "last_sync after a dry run"

note "trigger/restore into RESTORE_DIR: the snapshots per stack, cloud/snapshots/ appears"
id=$(sbfs_trigger sync 1)
assert_eq "$(sbfs_wait_job "$id" 120)" ok "$(cat "$MNT/jobs/$id/log")"
id=$(sbfs_trigger restore 1)
assert_eq "$(sbfs_wait_job "$id" 120)" ok "$(cat "$MNT/jobs/$id/log")"
restore=$(cat "$MNT/cloud/last_restore")
assert_contains "$restore" "result: ok"
assert_contains "$restore" "target: $T/restored"
assert_contains "$restore" "snapshots: 4 (db 2, web 2)"
assert_contains "$(cat "$MNT/jobs/$id/report")" "db 2, web 2"
assert_eq "$(cat "$MNT/cloud/status")" "ok"
assert_eq "$(ls "$MNT/cloud/snapshots" | tr '\n' ' ')" "db web "
assert_eq "$(cat "$MNT/cloud/snapshots/db/latest/dump.sql")" "db"
sb_restic "$T/restored" check >/dev/null 2>&1 || fail "restic check of the restored copy"

note "a second restore without force is refused; with force it refreshes the copy"
before=$(sb_tree_sum "$T/restored")
id=$(sbfs_trigger restore 1)
assert_eq "$(sbfs_wait_job "$id" 60)" failed
assert_contains "$(cat "$MNT/jobs/$id/log")" "is not empty (use --force"
assert_eq "$(sb_tree_sum "$T/restored")" "$before" "the copy after a refused restore"
# A refusal touches nothing: cloud/ still shows the last real result.
assert_eq "$(cat "$MNT/cloud/status")" "ok"
id=$(sbfs_trigger restore "1 force")
assert_eq "$(sbfs_wait_job "$id" 120)" ok "$(cat "$MNT/jobs/$id/log")"

note "a failed sync shows in cloud/status with its reason"
sb_dav_kill
id=$(sbfs_trigger sync 1)
assert_eq "$(sbfs_wait_job "$id" 60)" failed
status=$(cat "$MNT/cloud/status")
assert_contains "$status" "failed: sync to '$REMOTE' failed: remote 'sbremote:' is not reachable"
assert_contains "$(cat "$MNT/cloud/last_sync")" "result: failed"
assert_eq "$(cat "$MNT/cloud/in_sync")" "not verified: the last sync failed"

note "stackback status reads the same (through the mount and without it)"
for mounted in yes no; do
	st=$("$SB" -c "$CFG" status 2>&1) || true
	assert_contains "$st" "cloud.status: failed"
	assert_contains "$st" "cloud.reason: sync to '$REMOTE' failed: remote 'sbremote:' is not reachable"
	assert_contains "$st" "cloud.remote: $REMOTE"
	assert_contains "$st" "cloud.last_sync.result: failed"
	assert_contains "$st" "cloud.in_sync: not verified: the last sync failed"
	[ "$mounted" = no ] || sbfs_umount
done
echo "PASS"
