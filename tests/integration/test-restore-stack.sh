#!/bin/bash
# restore-stack end to end with a real compose stack, restic and the mount:
# data changed after a backup comes back to the snapshot's state, the
# directory it had is kept aside, a running stack runs again, a stopped one
# stays stopped, and bad references change nothing.
. "$SB_SRC/tests/integration/lib.sh"
need restic docker-compose fusermount3
sb_busybox_image
sb_write_config
web="${P}web"
sb_make_stack "$web"
sb_stack_up "$web"
"$SB" -c "$CFG" init >/dev/null
"$SB" -c "$CFG" enable "$web" >/dev/null
"$SB" -c "$CFG" backup >/dev/null 2>&1 || fail "first backup failed"

note "in process: changed data comes back, the old directory is kept aside"
echo "changed after the backup" >"$T/stacks/$web/data/hello.txt"
touch "$T/stacks/$web/data/new-file"
out=$("$SB" -c "$CFG" restore-stack --json "$web" latest 2>/dev/null) || fail "restore-stack failed"
python3 - "$out" <<'PY' || fail "restore-stack report: $out"
import json, sys
r = json.loads(sys.argv[1])
s = r["stacks"][0]
assert r["state"] == "ok", r
assert s["was_running"] and s["restarted"], s
assert s["downtime_s"] > 0, s
PY
assert_eq "$(cat "$T/stacks/$web/data/hello.txt")" "hello from $web" "restored content"
[ ! -e "$T/stacks/$web/data/new-file" ] || fail "a file created after the snapshot survived the restore"
aside=$(ls -d "$T/stacks/.$web.before-restore-"* | head -1)
assert_eq "$(cat "$aside/data/hello.txt")" "changed after the backup" "the directory kept aside"
assert_eq "$(sb_stack_state "$web")" running "state after restore-stack"
# The hidden directory kept aside is not a new stack.
"$SB" -c "$CFG" list --json | python3 -c "import json,sys; assert len(json.load(sys.stdin)) == 1" ||
	fail "the directory kept aside shows up as a stack"

note "a stopped stack stays stopped; a dry run changes nothing"
docker-compose -f "$T/stacks/$web/docker-compose.yml" stop -t 1 >/dev/null 2>&1
echo "second change" >"$T/stacks/$web/data/hello.txt"
"$SB" -c "$CFG" restore-stack --dry-run "$web" >/dev/null 2>&1 || fail "dry run failed"
assert_eq "$(cat "$T/stacks/$web/data/hello.txt")" "second change" "dry run touched the stack"
"$SB" -c "$CFG" restore-stack "$web" >/dev/null 2>&1 || fail "restore of a stopped stack failed"
assert_eq "$(sb_stack_state "$web")" stopped "a stopped stack was started"
assert_eq "$(cat "$T/stacks/$web/data/hello.txt")" "hello from $web" "restored content (stopped stack)"

note "bad references: clear errors, nothing changed"
before=$(find "$T/stacks" | sort | sha256sum)
expect_rc 1 "$SB" -c "$CFG" restore-stack "$web" deadbeef
expect_rc 1 "$SB" -c "$CFG" restore-stack "$web" ../../etc
expect_rc 1 "$SB" -c "$CFG" restore-stack nosuchstack latest
expect_rc 2 "$SB" -c "$CFG" restore-stack "../$web"
assert_eq "$(find "$T/stacks" | sort | sha256sum)" "$before" "a failed restore changed the stacks"
err=$("$SB" -c "$CFG" restore-stack "$web" deadbeef 2>&1 || true)
assert_contains "$err" "no snapshot 'deadbeef'"

note "a new machine: a stack neither on disk nor in the dirlist comes back from its snapshot"
docker-compose -f "$T/stacks/$web/docker-compose.yml" down -t 1 >/dev/null 2>&1
mv "$T/stacks/$web" "$T/gone-$web"
rm -rf "$T/stacks/.$web.before-restore-"*
sed -i "/^$web=/d" "$T/state/dirlist"
"$SB" -c "$CFG" restore-stack "$web" >/dev/null 2>&1 || fail "restore of an unknown stack failed"
assert_eq "$(cat "$T/stacks/$web/data/hello.txt")" "hello from $web" "a stack brought back on a new machine"
[ -f "$T/stacks/$web/docker-compose.yml" ] || fail "the compose file did not come back"
"$SB" -c "$CFG" enable "$web" >/dev/null

note "through the mount: echo latest > stacks/NAME/restore, and the CLI rides it"
sb_stack_up "$web"
mkdir -p "$T/mnt"
"$SBFS" -c "$CFG" "$T/mnt"
on_exit "fusermount3 -u -z '$T/mnt'"
echo "third change" >"$T/stacks/$web/data/hello.txt"
echo latest >"$T/mnt/stacks/$web/restore" || fail "write to stacks/NAME/restore refused"
"$SB" -c "$CFG" wait --timeout 120 || fail "the restore job through the mount failed"
assert_eq "$(cat "$T/stacks/$web/data/hello.txt")" "hello from $web" "restored through the mount"
assert_eq "$(sb_stack_state "$web")" running "state after a restore through the mount"
if echo '../../x' >"$T/mnt/stacks/$web/restore" 2>/dev/null; then
	fail "a traversal reference was accepted"
fi
echo "fourth change" >"$T/stacks/$web/data/hello.txt"
out=$("$SB" -c "$CFG" restore-stack "$web" 2>&1) || fail "restore-stack through the daemon failed: $out"
assert_eq "$(cat "$T/stacks/$web/data/hello.txt")" "hello from $web" "restored by the CLI through the mount"
echo "restore-stack: all checks passed"
