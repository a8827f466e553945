#!/bin/bash
# Stage 1 → 2 → 3 round trip with real compose stacks and a real WebDAV
# server on loopback: back up two stacks, sync, lose the local repository,
# restore it from the cloud, check it, and get the stacks' files back
# byte for byte.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-cloud.sh"
need docker-compose

sb_busybox_image
sb_write_config
sb_dav_start
sb_cloud_config
REMOTE="sbremote:backup/repo"
WEB="${P}web"
DB="${P}db"

note "two stacks, one running, with data that does not compress"
sb_make_stack "$WEB"
sb_make_stack "$DB"
head -c $((3 << 20)) /dev/urandom >"$T/stacks/$WEB/data/blob"
head -c $((1 << 20)) /dev/urandom >"$T/stacks/$DB/data/blob"
mkdir -p "$T/stacks/$DB/data/nested/deeper"
echo "nested" >"$T/stacks/$DB/data/nested/deeper/file.txt"
sb_stack_up "$WEB"
"$SB" -c "$CFG" enable "$WEB" "$DB" >/dev/null
"$SB" -c "$CFG" init >/dev/null

note "backup twice (web changes in between)"
"$SB" -c "$CFG" backup >/dev/null 2>&1 || fail "first backup failed"
echo "second version" >"$T/stacks/$WEB/data/hello.txt"
"$SB" -c "$CFG" backup >/dev/null 2>&1 || fail "second backup failed"
assert_eq "$(sb_stack_state "$WEB")" "running" "web after the backups"
# The running stack keeps appending to data/ticks: compare the rest.
cp -a "$T/stacks/$WEB" "$T/orig-web"
cp -a "$T/stacks/$DB" "$T/orig-db"
rm -f "$T/orig-web/data/ticks"

note "sync: restic check, upload, rclone check"
out=$("$SB" -c "$CFG" sync 2>&1) || fail "sync failed: $out"
assert_contains "$out" "restic check of '$T/repo' passed"
assert_contains "$out" "verified by size"
assert_eq "$(sb_tree_sum "$DAV_DIR/backup/repo")" "$(sb_tree_sum "$T/repo")" "the remote copy"
assert_eq "$(sb_json_get "$T/state/cloud.json" '["status"]')" "ok" "cloud status"
assert_eq "$(sb_json_get "$T/state/cloud.json" '["remote"]')" "$REMOTE" "cloud remote"
assert_eq "$(sb_json_get "$T/state/cloud.json" '["in_sync"]["state"]')" "verified" "in_sync"
bytes=$(sb_json_get "$T/state/cloud.json" '["last_sync"]["bytes"]')
[ "$bytes" -gt $((4 << 20)) ] || fail "last_sync bytes $bytes: less than the data backed up"
st=$("$SB" -c "$CFG" status 2>&1) || fail "status failed: $st"
assert_contains "$st" "cloud.status: ok"
assert_contains "$st" "cloud.in_sync: verified: "

note "a backup after the sync: the copy is no longer verified"
echo "third" >"$T/stacks/$DB/data/third.txt"
cp -a "$T/stacks/$DB/data/third.txt" "$T/orig-db/data/"
"$SB" -c "$CFG" backup "$DB" >/dev/null 2>&1 || fail "third backup failed"
st=$("$SB" -c "$CFG" status 2>&1) || fail "status failed: $st"
assert_contains "$st" "cloud.in_sync: not verified: the local repository changed after the check of "
out=$("$SB" -c "$CFG" sync --json 2>/dev/null) || fail "second sync failed"
echo "$out" >"$T/sync2.json"
[ "$(sb_json_get "$T/sync2.json" '["transfer_files"]')" -ge 1 ] || fail "the second sync transferred nothing"
assert_eq "$(sb_json_get "$T/state/cloud.json" '["in_sync"]["state"]')" "verified" "in_sync after the second sync"

note "the server is lost: delete the local repository, restore it from the cloud"
rm -rf "$T/repo"
out=$("$SB" -c "$CFG" restore 2>&1) || fail "restore failed: $out"
assert_contains "$out" "restic check passed"
assert_contains "$out" "$WEB 2"
assert_contains "$out" "$DB 3"
[ ! -e "$T/repo" ] || fail "the restore created the local repository"
sb_restic "$T/restored" check >/dev/null 2>&1 || fail "restic check of the restored copy failed"
assert_eq "$(sb_json_get "$T/state/cloud.json" '["last_restore"]["result"]')" "ok" "last_restore"
assert_eq "$(sb_json_get "$T/state/cloud.json" "[\"last_restore\"][\"snapshots\"][\"$WEB\"]")" "2" \
	"snapshots of web in cloud.json"
assert_eq "$(sb_json_get "$T/state/cloud.json" '["last_restore"]["target"]')" "$T/restored" "restore target"

note "the latest snapshots give back the original files"
for s in "$WEB" "$DB"; do
	sb_restic "$T/restored" restore latest --tag "$s" --target "$T/out-$s" >/dev/null
	root=$(dirname "$(find "$T/out-$s" -name docker-compose.yml | head -1)")
	[ -n "$root" ] && [ -d "$root" ] || fail "no stack directory in the restored snapshot of $s"
	rm -f "$root/data/ticks"
done
diff -r "$T/orig-web" "$(dirname "$(find "$T/out-$WEB" -name docker-compose.yml)")" ||
	fail "web differs after the round trip"
diff -r "$T/orig-db" "$(dirname "$(find "$T/out-$DB" -name docker-compose.yml)")" ||
	fail "db differs after the round trip"

note "restoring again needs --force, which refreshes the copy"
before=$(sb_tree_sum "$T/restored")
set +e
out=$("$SB" -c "$CFG" restore 2>&1)
rc=$?
set -e
assert_eq "$rc" "1" "second restore without --force ($out)"
assert_contains "$out" "is not empty"
assert_eq "$(sb_tree_sum "$T/restored")" "$before" "the restored copy after a refusal"
out=$("$SB" -c "$CFG" restore --force 2>&1) || fail "forced restore failed: $out"
assert_eq "$(sb_tree_sum "$T/restored")" "$before" "the refreshed copy"
echo "PASS"
