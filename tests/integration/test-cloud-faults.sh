#!/bin/bash
# Stage 2 and 3 under faults, against a real WebDAV server on loopback:
# the server killed mid-sync, a remote that does not answer, a failing
# restic check, a wrong password on the restored copy, refused restore
# targets, dry runs. Every failure must be one clear line, never a hang,
# and the local repository must be byte for byte what it was.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-cloud.sh"

sb_write_config
sb_dav_start
sb_cloud_config
REMOTE="sbremote:backup/repo"

# A repository made with restic directly: two "stacks", ~24 MiB that does
# not compress, so a bandwidth-limited upload lasts long enough to break.
note "make a repository with two tagged snapshots"
mkdir -p "$T/src/web" "$T/src/db"
head -c $((16 << 20)) /dev/urandom >"$T/src/web/blob"
head -c $((8 << 20)) /dev/urandom >"$T/src/db/blob"
echo "hello" >"$T/src/web/hello.txt"
sb_restic "$T/repo" init >/dev/null
(cd "$T/src/web" && sb_restic "$T/repo" backup --tag stackback --tag web --host sbtest . >/dev/null)
(cd "$T/src/db" && sb_restic "$T/repo" backup --tag stackback --tag db --host sbtest . >/dev/null)
repo_sum=$(sb_tree_sum "$T/repo")

note "dry-run sync: nothing on the remote, no cloud state"
out=$("$SB" -c "$CFG" sync --dry-run 2>&1) || fail "dry-run sync failed: $out"
assert_contains "$out" "would transfer"
[ -z "$(find "$DAV_DIR" -type f)" ] || fail "a dry run wrote to the remote: $(find "$DAV_DIR" -type f | head)"
[ ! -e "$T/state/cloud.json" ] || fail "a dry run wrote cloud.json"

note "the server dies mid-sync: a clear failure, the local repository intact"
sed -i 's|^\[cloud_sync\]$|[cloud_sync]\nBANDWIDTH=3M|' "$CFG"
"$SB" -c "$CFG" sync >"$T/sync1.out" 2>&1 &
sync_pid=$!
for _ in $(seq 1200); do
	n=$(find "$DAV_DIR" -type f -path '*/data/*' | wc -l)
	[ "$n" -ge 1 ] && break
	sleep 0.05
done
[ "$n" -ge 1 ] || fail "the upload never started: $(cat "$T/sync1.out")"
sleep 0.5
cloud_status=$(sb_json_get "$T/state/cloud.json" '["status"]')
assert_eq "$cloud_status" "syncing" "cloud.json while uploading"
sb_dav_kill
t0=$(date +%s)
set +e
wait "$sync_pid"
rc=$?
set -e
elapsed=$(($(date +%s) - t0))
out=$(cat "$T/sync1.out")
assert_eq "$rc" "1" "exit code of the broken sync ($out)"
assert_contains "$out" "sync to '$REMOTE' failed"
assert_contains "$out" "the local repository is untouched"
[ "$elapsed" -le 60 ] || fail "the broken sync took ${elapsed}s to give up"
assert_eq "$(sb_tree_sum "$T/repo")" "$repo_sum" "local repository after the broken sync"
sb_restic "$T/repo" check >/dev/null 2>&1 || fail "restic check of the local repository failed after the broken sync"
assert_eq "$(sb_json_get "$T/state/cloud.json" '["status"]')" "failed" "cloud status"
assert_eq "$(sb_json_get "$T/state/cloud.json" '["last_sync"]["result"]')" "failed" "last_sync result"
assert_eq "$(sb_json_get "$T/state/cloud.json" '["in_sync"]["state"]')" "not verified" "in_sync"
st=$("$SB" -c "$CFG" status 2>&1) || true
assert_contains "$st" "failed"

note "the next sync completes and verifies"
sed -i '/^BANDWIDTH=/d' "$CFG"
sb_dav_start
out=$("$SB" -c "$CFG" sync 2>&1) || fail "sync after the restart failed: $out"
assert_contains "$out" "verified by size"
assert_eq "$(sb_json_get "$T/state/cloud.json" '["status"]')" "ok" "cloud status"
assert_eq "$(sb_json_get "$T/state/cloud.json" '["in_sync"]["state"]')" "verified" "in_sync"
assert_eq "$(sb_json_get "$T/state/cloud.json" '["in_sync"]["by_hash"]')" "False" "by_hash on webdav"
assert_eq "$(sb_tree_sum "$T/repo")" "$repo_sum" "local repository after the sync"
assert_eq "$(sb_tree_sum "$DAV_DIR/backup/repo")" "$repo_sum" "the remote copy"

note "a no-change re-sync transfers nothing"
"$SB" -c "$CFG" sync --json >"$T/resync.json" 2>"$T/resync.err" || fail "re-sync failed: $(cat "$T/resync.err")"
assert_eq "$(sb_json_get "$T/resync.json" '["transfer_bytes"]')" "0" "bytes of a no-change re-sync"

note "a different local repository never overwrites the cloud copy"
remote_sum=$(sb_tree_sum "$DAV_DIR/backup/repo")
sb_restic "$T/other" init >/dev/null
set +e
out=$(RESTIC_REPOSITORY="$T/other" "$SB" -c "$CFG" sync 2>&1)
rc=$?
set -e
assert_eq "$rc" "1" "sync of another repository ($out)"
assert_contains "$out" "sync to '$REMOTE' refused: it holds a different restic repository than '$T/other'"
assert_eq "$(sb_tree_sum "$DAV_DIR/backup/repo")" "$remote_sum" "the remote after the refused sync"

note "wrong password on the restored copy: a clear error"
printf 'not-the-password\n' >"$T/wrong-password"
chmod 600 "$T/wrong-password"
printf '[local_backup]\nPASSWORD_FILE=%s\n' "$T/wrong-password" >"$T/wrong.ini"
chmod 600 "$T/wrong.ini"
set +e
out=$("$SB" -c "$CFG" -c "$T/wrong.ini" restore --to "$T/wrongpw" 2>&1)
rc=$?
set -e
assert_eq "$rc" "1" "restore with a wrong password ($out)"
assert_contains "$out" "restic check of the restored copy '$T/wrongpw' failed"
assert_contains "$out" "wrong password"
assert_not_contains "$out" "not-the-password"
assert_eq "$(sb_tree_sum "$T/repo")" "$repo_sum" "local repository after the failed restore"

note "restore into a non-empty directory without --force: refused, nothing written"
mkdir -p "$T/busy"
echo "mine" >"$T/busy/notes.txt"
before=$(sb_tree_sum "$T/busy")
set +e
out=$("$SB" -c "$CFG" restore --to "$T/busy" 2>&1)
rc=$?
set -e
assert_eq "$rc" "1" "restore into a non-empty dir ($out)"
assert_contains "$out" "is not empty (use --force"
assert_eq "$(sb_tree_sum "$T/busy")" "$before" "the non-empty target"
set +e
out=$("$SB" -c "$CFG" restore --to "$T/busy" --force 2>&1)
rc=$?
set -e
assert_eq "$rc" "1" "forced restore over foreign files ($out)"
assert_contains "$out" "holds 'notes.txt', which is not part of a restic repository"
assert_eq "$(sb_tree_sum "$T/busy")" "$before" "the non-empty target after --force"

note "restore into, inside or around the local repository: refused"
for target in "$T/repo" "$T/repo/data/x" "$T"; do
	set +e
	out=$("$SB" -c "$CFG" restore --to "$target" --force 2>&1)
	rc=$?
	set -e
	assert_eq "$rc" "1" "restore to $target ($out)"
	assert_contains "$out" "the local repository '$T/repo'"
done
ln -s "$T/repo" "$T/repo-link"
set +e
out=$("$SB" -c "$CFG" restore --to "$T/repo-link" --force 2>&1)
set -e
assert_contains "$out" "is the local repository"
assert_eq "$(sb_tree_sum "$T/repo")" "$repo_sum" "local repository after the refusals"

note "a remote path without a repository: said so, nothing written"
set +e
out=$(RCLONE_PATH=backup/elsewhere "$SB" -c "$CFG" restore --to "$T/elsewhere" 2>&1)
rc=$?
set -e
assert_eq "$rc" "1" "restore from an empty remote path ($out)"
assert_contains "$out" "restore from 'sbremote:backup/elsewhere' failed: the remote holds no restic repository there"
[ ! -e "$T/elsewhere" ] || fail "a restore from nowhere created its target"

note "dry-run restore writes nothing"
out=$("$SB" -c "$CFG" restore --to "$T/dry" --dry-run 2>&1) || fail "dry-run restore failed: $out"
assert_contains "$out" "would download"
[ ! -e "$T/dry" ] || fail "a dry-run restore created its target"

note "a failing restic check stops the sync before anything is uploaded"
remote_sum=$(sb_tree_sum "$DAV_DIR/backup/repo")
echo "more" >"$T/src/db/more.txt"
(cd "$T/src/db" && sb_restic "$T/repo" backup --tag stackback --tag db --host sbtest . >/dev/null)
# The largest pack holds file data: check finds it missing at once (a
# missing tree pack makes restic retry its reads for ~45 s first).
victim=$(find "$T/repo/data" -type f -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2)
mv "$victim" "$T/victim"
set +e
out=$("$SB" -c "$CFG" sync 2>&1)
rc=$?
set -e
mv "$T/victim" "$victim"
repo_sum=$(sb_tree_sum "$T/repo")
assert_eq "$rc" "1" "sync of a damaged repository ($out)"
assert_contains "$out" "sync to '$REMOTE' stopped: restic check of repository '$T/repo' failed"
assert_eq "$(sb_tree_sum "$DAV_DIR/backup/repo")" "$remote_sum" "the remote after a stopped sync"
assert_eq "$(sb_json_get "$T/state/cloud.json" '["status"]')" "failed" "cloud status after a stopped sync"

note "a remote that accepts connections but never answers: an error within REMOTE_TIMEOUT"
silent_port_file="$T/silent.port"
python3 - "$silent_port_file" <<'PY' &
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(64)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
conns = []
while True:
    c, _ = s.accept()   # accept, then never answer
    conns.append(c)
PY
silent_pid=$!
disown "$silent_pid"
on_exit "kill -9 $silent_pid"
for _ in $(seq 50); do [ -s "$silent_port_file" ] && break; sleep 0.1; done
sb_cloud_config "http://127.0.0.1:$(cat "$silent_port_file")"
t0=$(date +%s)
set +e
out=$(timeout 120 "$SB" -c "$CFG" sync 2>&1 | tee "$T/silent.out")
rc=$?
set -e
elapsed=$(($(date +%s) - t0))
assert_eq "$rc" "1" "sync to a silent remote ($out)"
assert_contains "$out" "sync to '$REMOTE' failed"
# The reachability probe gives up after REMOTE_TIMEOUT; the rest is set-up,
# slow only on a loaded machine or under a sanitizer. A hang would take 120 s.
remote_timeout=$(sed -n 's/^REMOTE_TIMEOUT=//p' "$CFG")
((elapsed <= remote_timeout + 20)) ||
	fail "the sync to a silent remote took ${elapsed}s (REMOTE_TIMEOUT=$remote_timeout)"

note "a remote nobody listens on: a clear error at once"
sb_cloud_config "http://127.0.0.1:$DAV_PORT"
sb_dav_kill
t0=$(date +%s)
set +e
out=$(timeout 120 "$SB" -c "$CFG" restore --to "$T/unreachable" 2>&1 | tee "$T/dead.out")
rc=$?
set -e
elapsed=$(($(date +%s) - t0))
assert_eq "$rc" "1" "restore from a dead remote ($out)"
assert_contains "$out" "restore from '$REMOTE' failed"
[ "$elapsed" -le 15 ] || fail "the restore from a dead remote took ${elapsed}s"
[ -z "$(find "$T/unreachable" -type f 2>/dev/null)" ] || fail "a failed restore left files"
assert_eq "$(sb_tree_sum "$T/repo")" "$repo_sum" "local repository at the end"
echo "PASS"
