#!/bin/bash
# `stackback doctor` against the real tools (doctor.h): a healthy set-up
# passes every check (exit 0), then each fault is produced for real and
# must fail its own check, with the command that fixes it, and exit 1:
# wrong password, missing repository, loose config and password files,
# a missing config file, an unknown remote, too little disk space, an
# unreachable Docker engine, a bad compose command, restic missing from
# PATH, stacks an interrupted run left stopped, a stale mount (the
# daemon killed with SIGKILL), a notification program that is missing.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-fs.sh"
need restic rclone docker docker-compose python3

sb_write_config
"$SB" -c "$CFG" init >/dev/null

# doctor [ENV=VALUE...] -- ARGS: runs doctor --json, keeps the JSON in $J and the exit code in $RC.
doctor() {
	local envs=()
	while [ "$1" != "--" ]; do
		envs+=("$1")
		shift
	done
	shift
	set +e
	env "${envs[@]}" "$SB" "$@" doctor --json >"$T/doctor.json" 2>"$T/doctor.err"
	RC=$?
	set -e
	J=$(cat "$T/doctor.json")
	python3 -c 'import json,sys; json.load(sys.stdin)' <<<"$J" || fail "doctor --json printed no JSON: $J"
}
# field NAME KEY: a check's field from $J.
field() {
	python3 -c "import json,sys; d=json.load(sys.stdin); print(next(c for c in d['checks'] if c['name']=='$1')['$2'])" <<<"$J"
}
# expect_check NAME RESULT [FIX-TEXT [DETAIL-TEXT]]
expect_check() {
	assert_eq "$(field "$1" result)" "$2" "check $1 ($(field "$1" detail))"
	if [ -n "${3:-}" ]; then
		assert_contains "$(field "$1" fix)" "$3" "fix of check $1"
	fi
	if [ -n "${4:-}" ]; then
		assert_contains "$(field "$1" detail)" "$4" "detail of check $1"
	fi
}

note "a healthy set-up passes"
doctor -- -c "$CFG"
assert_eq "$RC" 0 "doctor exit status: $J"
for c in config permissions state docker compose restic repository disk rclone remote mount; do
	expect_check "$c" ok
done
expect_check notify skipped
assert_contains "$(field repository detail)" "opens with the password: no snapshots yet"
assert_contains "$(field compose detail)" "docker-compose"
assert_contains "$(field remote detail)" "remote 'sbremote:' answers"
assert_eq "$(field docker fix)" "None"
text=$("$SB" -c "$CFG" doctor)
assert_contains "$text" "all checks passed"

note "a wrong password fails the repository check"
cp "$T/password" "$T/password.good"
echo "not-the-password" >"$T/password"
doctor -- -c "$CFG"
assert_eq "$RC" 1
expect_check repository failed "PASSWORD" "wrong password"
cp "$T/password.good" "$T/password"

note "a missing repository: the fix is init"
doctor RESTIC_REPOSITORY="$T/elsewhere" -- -c "$CFG"
assert_eq "$RC" 1
expect_check repository failed "stackback -c $CFG init" "does not exist"

note "loose config and password files: chmod 600"
chmod 644 "$CFG" "$T/password"
doctor -- -c "$CFG"
assert_eq "$RC" 1
expect_check config failed "config check" "readable or writable by group or others"
expect_check permissions failed "chmod 600 $CFG $T/password"
chmod 600 "$CFG" "$T/password"

note "a missing config file: config init"
doctor -- -c "$T/none.ini"
assert_eq "$RC" 1
expect_check config failed "stackback config init $T/none.ini"

note "an unknown remote fails the remote check"
doctor RCLONE_REMOTE=nosuchremote -- -c "$CFG"
assert_eq "$RC" 1
expect_check remote failed "rclone config --config $T/rclone.conf" "remote 'nosuchremote:' does not answer"
assert_contains "$(field remote fix)" "create the remote 'nosuchremote'"

note "too little disk space where the repository lives"
doctor MIN_DISK_SPACE_MB=999999999 -- -c "$CFG"
assert_eq "$RC" 1
expect_check disk failed "forget" "MIN_DISK_SPACE_MB is 999999999"

note "an unreachable Docker engine and a bad compose command"
doctor DOCKER_HOST=unix://$T/no-docker.sock COMPOSE_CMD=no-such-compose -- -c "$CFG"
assert_eq "$RC" 1
expect_check docker failed "systemctl start docker" "does not answer"
expect_check compose failed "COMPOSE_CMD" "no-such-compose"

note "restic missing from PATH: restic fails, the repository is skipped"
mkdir "$T/bin"
for p in docker docker-compose rclone; do
	ln -s "$(command -v "$p")" "$T/bin/$p"
done
doctor PATH="$T/bin" -- -c "$CFG"
assert_eq "$RC" 1
expect_check restic failed "apt-get install restic"
expect_check repository skipped

note "stacks an interrupted run left stopped: recover"
printf 'stop\t%s\t%s\n' "${P}web" "$T/stacks/${P}web" >"$T/state/journal"
doctor -- -c "$CFG"
assert_eq "$RC" 1
expect_check state failed "stackback -c $CFG recover" "${P}web"
rm "$T/state/journal"

note "a missing notification program"
doctor NOTIFY_COMMAND="no-such-notifier --flag" -- -c "$CFG"
assert_eq "$RC" 1
expect_check notify failed "NOTIFY_COMMAND" "no-such-notifier"

note "a stale mount (daemon killed): fusermount3 -u"
sbfs_mount
doctor -- -c "$CFG"
assert_eq "$RC" 0 "doctor with the daemon mounted: $J"
expect_check mount ok "" "stackbackfs is mounted at $MNT"
kill -9 "$SBFS_PID"
wait "$SBFS_PID" 2>/dev/null || true
doctor -- -c "$CFG"
assert_eq "$RC" 1
expect_check mount failed "fusermount3 -u $MNT"
fusermount3 -u -z "$MNT"

note "the text form says FAILED and the fix"
chmod 644 "$T/password"
set +e
text=$("$SB" -c "$CFG" doctor)
rc=$?
set -e
assert_eq "$rc" 1
assert_contains "$text" "FAILED   permissions"
assert_contains "$text" "fix: chmod 600 $T/password"
assert_contains "$text" "3 check(s) failed"
chmod 600 "$T/password"

echo "ok"
