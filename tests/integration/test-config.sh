#!/bin/bash
# stackback config through the built CLI: the original tool's own files load
# unchanged and give the values they say; garbage gives FILE:LINE errors and
# exit 1, never a crash; -c layering, environment overrides, config init.
source "$(dirname "$0")/lib.sh"

FIX="$SB_SRC/tests/data/docker-compose-backup"
# The copies in the repository are the third-party files, byte for byte.
SHARED="$SB_SRC/../shared/fixtures/docker-compose-backup"
if [ -d "$SHARED" ]; then
	for f in config.ini.template backup.conf.template rclone.conf.template; do
		cmp -s "$SHARED/$f" "$FIX/$f" || fail "tests/data copy of $f differs from $SHARED/$f"
	done
fi

# run CMD...: sets $out (stdout and stderr) and $rc.
run() {
	set +e
	out=$("$@" 2>&1)
	rc=$?
	set -e
}

# expect_run RC CMD...: run, and insist on the exit code (a crash is 128+).
expect_run() {
	local want=$1
	shift
	run "$@"
	[ "$rc" = "$want" ] || fail "expected exit $want, got $rc: $*
$out"
}

# show_has FILE... -- KEY=VALUE...: each line is in 'config show' exactly.
show_has() {
	local args=()
	while [ "$1" != "--" ]; do
		args+=(-c "$1")
		shift
	done
	shift
	expect_run 0 "$SB" "${args[@]}" config show
	local line
	for line in "$@"; do
		grep -qxF -- "$line" <<<"$out" || fail "config show lacks '$line':
$out"
	done
}

note "config.ini.template (Go era, INI sections) alone"
install -m 600 "$FIX/config.ini.template" "$T/config.ini"
expect_run 0 "$SB" -c "$T/config.ini" config check
assert_contains "$out" "$T/config.ini: ok, 0 errors"
show_has "$T/config.ini" -- \
	DOCKER_STACKS_DIR=/opt/docker-stacks DOCKER_TIMEOUT=300 \
	RESTIC_REPOSITORY=/mnt/backup/restic-repo 'RESTIC_PASSWORD=***' PASSWORD_FILE= \
	BACKUP_TIMEOUT=3600 HOSTNAME= KEEP_DAILY=7 KEEP_WEEKLY=4 KEEP_MONTHLY=6 KEEP_YEARLY=2 \
	AUTO_PRUNE=true ENABLE_VERIFICATION=true VERIFICATION_DEPTH=metadata \
	RCLONE_REMOTE=backblaze RCLONE_PATH=/backup/restic TRANSFERS=4 RETRIES=3 BANDWIDTH= \
	STATE_DIR=/var/lib/stackback DIRLIST=/var/lib/stackback/dirlist \
	RESTORE_DIR=/var/lib/stackback/restored MOUNTPOINT=/mnt/stackback STOP_MODE=stop
assert_not_contains "$out" "your-secure-password" "config show printed the password"
expect_run 0 "$SB" -c "$T/config.ini" config show --json
assert_not_contains "$out" "your-secure-password" "config show --json printed the password"
python3 - "$out" <<'PY' || fail "config show --json has wrong values"
import json, sys
v = json.loads(sys.argv[1])
assert v["DOCKER_STACKS_DIR"] == "/opt/docker-stacks", v
assert v["DOCKER_TIMEOUT"] == 300 and v["TRANSFERS"] == 4, v
assert v["AUTO_PRUNE"] is True and v["HOSTNAME"] is None, v
assert v["RESTIC_PASSWORD"] == "***" and v["EXCLUDES"] == [], v
PY

note "backup.conf.template + rclone.conf.template (bash era, flat, -c twice)"
install -m 600 "$FIX/backup.conf.template" "$T/backup.conf"
install -m 600 "$FIX/rclone.conf.template" "$T/rclone.conf"
expect_run 0 "$SB" -c "$T/backup.conf" -c "$T/rclone.conf" config check
assert_contains "$out" "$T/backup.conf, $T/rclone.conf: ok, 0 errors"
show_has "$T/backup.conf" "$T/rclone.conf" -- \
	DOCKER_STACKS_DIR=/opt/docker-stacks RESTIC_REPOSITORY=/path/to/restic/repository \
	'RESTIC_PASSWORD=***' ENABLE_VERIFICATION=true VERIFICATION_DEPTH=files \
	MIN_DISK_SPACE_MB=1024 BACKUP_TIMEOUT=3600 DOCKER_TIMEOUT=30 \
	KEEP_DAILY=7 KEEP_WEEKLY=4 KEEP_MONTHLY=12 KEEP_YEARLY=3 AUTO_PRUNE=false \
	RCLONE_REMOTE=your-remote-name RCLONE_PATH=/backup/restic TRANSFERS=4 RETRIES=3 BANDWIDTH=
assert_not_contains "$out" "your-secure-password" "config show printed the password"

note "RCLONE_SOURCE_DIR must be the repository"
sed 's|^RESTIC_REPOSITORY=.*|RESTIC_REPOSITORY=/srv/other-repo|' "$FIX/backup.conf.template" >"$T/backup2.conf"
chmod 600 "$T/backup2.conf"
expect_run 1 "$SB" -c "$T/backup2.conf" -c "$T/rclone.conf" config check
assert_contains "$out" "$T/rclone.conf:15: error: RCLONE_SOURCE_DIR /path/to/restic/repository differs from RESTIC_REPOSITORY /srv/other-repo"

note "files readable by others are refused, naming the fix"
install -m 644 "$FIX/config.ini.template" "$T/loose.ini"
expect_run 1 "$SB" -c "$T/loose.ini" config check
assert_contains "$out" "$T/loose.ini: error: config file is readable or writable by group or others (mode 0644): run 'chmod 600 $T/loose.ini'"
# Every command that reads the config refuses it as well.
expect_run 1 "$SB" -c "$T/loose.ini" config show
assert_contains "$out" "chmod 600 $T/loose.ini"
expect_run 0 env ALLOW_LOOSE_PERMISSIONS=true "$SB" -c "$T/loose.ini" config check
assert_contains "$out" "$T/loose.ini: warning: readable or writable by group or others (mode 0644), allowed by ALLOW_LOOSE_PERMISSIONS"
printf 'secret\n' >"$T/pw"
chmod 640 "$T/pw"
printf 'DOCKER_STACKS_DIR=/s\nRESTIC_REPOSITORY=/r\nPASSWORD_FILE=%s\n' "$T/pw" >"$T/pwfile.ini"
chmod 600 "$T/pwfile.ini"
expect_run 1 "$SB" -c "$T/pwfile.ini" config check
assert_contains "$out" "$T/pwfile.ini:3: error: PASSWORD_FILE: $T/pw is readable or writable by group or others (mode 0640): run 'chmod 600 $T/pw'"
chmod 600 "$T/pw"
expect_run 0 "$SB" -c "$T/pwfile.ini" config check

note "garbage: FILE:LINE errors, exit 1, never a crash"
valid='DOCKER_STACKS_DIR=/s
RESTIC_REPOSITORY=/r
RESTIC_PASSWORD=pw'
garbage() { # NAME: writes $T/NAME from stdin, mode 0600
	cat >"$T/$1"
	chmod 600 "$T/$1"
}
printf '%s\nthis line has no equals sign\n' "$valid" | garbage noeq.ini
expect_run 1 "$SB" -c "$T/noeq.ini" config check
assert_contains "$out" "$T/noeq.ini:4: error: malformed line"
assert_contains "$out" "$T/noeq.ini: invalid, 1 error, 0 warnings"

printf '%s\nHOSTNAME="no closing quote\n' "$valid" | garbage quote.ini
expect_run 1 "$SB" -c "$T/quote.ini" config check
assert_contains "$out" "$T/quote.ini:4: error: HOSTNAME: unterminated quote"

printf '%s\nDOCKER_TIMEOUT=ten\nVERIFICATION_DEPTH=everything\n' "$valid" | garbage values.ini
expect_run 1 "$SB" -c "$T/values.ini" config check
assert_contains "$out" "$T/values.ini:4: error: DOCKER_TIMEOUT: 'ten' is not a number"
assert_contains "$out" "$T/values.ini:5: error: VERIFICATION_DEPTH: unknown value 'everything' (expected metadata, files or data)"

{ printf '%s\nHOSTNAME=' "$valid"; head -c 1048576 /dev/zero | tr '\0' x; printf '\n'; } | garbage long.ini
expect_run 1 "$SB" -c "$T/long.ini" config check
assert_contains "$out" "$T/long.ini:4: error: line is too long (1048585 bytes"

printf '%s\nHOSTNAME=a\0b\n' "$valid" | garbage nul.ini
expect_run 1 "$SB" -c "$T/nul.ini" config check
assert_contains "$out" "$T/nul.ini:4: error: line contains a NUL byte"

# Real binary garbage: the first MiB of the stackback executable (a
# sanitizer build is larger than the 4 MiB a config file may have).
head -c 1048576 "$SB" >"$T/binary.ini"
chmod 600 "$T/binary.ini"
expect_run 1 "$SB" -c "$T/binary.ini" config check
grep -qE "^$T/binary.ini:[0-9]+: error: " <<<"$out" || fail "no FILE:LINE error for a binary file: $out"
assert_contains "$out" "too many errors: the rest of the file is not checked"
expect_run 1 "$SB" -c "$T/binary.ini" config show

expect_run 1 "$SB" -c "$T/does-not-exist.ini" config check
assert_contains "$out" "$T/does-not-exist.ini: error: cannot open config file: No such file or directory"

# Warnings alone pass.
printf '%s\n[mystery]\nX=1\n[docker]\nDOCKER_TIMEOUT=5\nDOCKER_TIMEOUT=6\nNOT_A_KEY=1\n' "$valid" | garbage warn.ini
expect_run 0 "$SB" -c "$T/warn.ini" config check
assert_contains "$out" "$T/warn.ini:4: warning: unknown section [mystery]"
assert_contains "$out" "$T/warn.ini:8: warning: duplicate key DOCKER_TIMEOUT"
assert_contains "$out" "$T/warn.ini:9: warning: unknown key NOT_A_KEY (ignored)"
assert_contains "$out" "$T/warn.ini: ok, 0 errors, 3 warnings"

note "-c given twice: the later file wins"
printf '%s\nDOCKER_TIMEOUT=11\n' "$valid" | garbage first.ini
printf '[docker]\nDOCKER_TIMEOUT=22\n' | garbage second.ini
show_has "$T/first.ini" "$T/second.ini" -- DOCKER_TIMEOUT=22 DOCKER_STACKS_DIR=/s
printf 'DOCKER_TIMEOUT=33\n' | garbage third.ini
show_has "$T/third.ini" "$T/first.ini" -- DOCKER_TIMEOUT=11

note "environment overrides"
expect_run 0 env DOCKER_TIMEOUT=77 BACKUP_DIR=/from/env RCLONE_TRANSFERS=9 \
	"$SB" -c "$T/first.ini" config show
for line in DOCKER_TIMEOUT=77 DOCKER_STACKS_DIR=/from/env TRANSFERS=9; do
	grep -qxF "$line" <<<"$out" || fail "environment override $line not shown: $out"
done
expect_run 1 env DOCKER_TIMEOUT=soon "$SB" -c "$T/first.ini" config check
assert_contains "$out" "environment: error: DOCKER_TIMEOUT: 'soon' is not a number"
# $STACKBACK_CONFIG stands in for -c.
expect_run 0 env STACKBACK_CONFIG="$T/first.ini" "$SB" config check
assert_contains "$out" "$T/first.ini: ok"

note "config init"
target="$T/etc/stackback/config.ini"
expect_run 0 "$SB" config init "$target"
assert_contains "$out" "wrote $target"
assert_eq "$(stat -c %a "$target")" 600 "mode of the written config"
assert_eq "$(stat -c %a "$T/etc/stackback")" 700 "mode of the created directory"
cmp -s "$target" "$SB_SRC/config/config.ini.example" || fail "config init wrote something else than config/config.ini.example"
echo "# my edit" >>"$target"
expect_run 1 "$SB" config init "$target"
assert_contains "$out" "$target already exists: not overwritten (use --force to replace it)"
tail -n 1 "$target" | grep -qx "# my edit" || fail "config init overwrote an existing file"
expect_run 0 "$SB" config init --force "$target"
cmp -s "$target" "$SB_SRC/config/config.ini.example" || fail "config init --force did not replace the file"
assert_eq "$(stat -c %a "$target")" 600 "mode after --force"
for f in "$T"/etc/stackback/*; do
	[ "$f" = "$target" ] || fail "config init left $f behind"
done
# The -c file is the default target.
expect_run 0 "$SB" -c "$T/other.ini" config init
cmp -s "$T/other.ini" "$SB_SRC/config/config.ini.example" || fail "config init did not write the -c file"
# As written, the template only lacks its password file: check says so.
expect_run 1 env PASSWORD_FILE="$T/no-such-password" "$SB" -c "$target" config check
assert_contains "$out" "PASSWORD_FILE: cannot access $T/no-such-password: No such file or directory"
assert_contains "$out" "invalid, 1 error, 0 warnings"
expect_run 0 env PASSWORD_FILE="$T/pw" "$SB" -c "$target" config check

note "usage errors"
expect_run 2 "$SB" config
expect_run 2 "$SB" config frobnicate
expect_run 2 "$SB" config show --bogus
expect_run 2 "$SB" -c "$T/a" -c "$T/b" config init
expect_run 0 "$SB" config --help
assert_contains "$out" "usage: stackback [-c CONFIG] config"

note "the reference in docs/configuration.md is the table's"
"$SB" config keys >"$T/keys.md"
python3 - "$T/keys.md" "$SB_SRC/docs/configuration.md" <<'PY' || fail "docs/configuration.md does not hold the output of 'stackback config keys' (regenerate it)"
import sys
keys = open(sys.argv[1]).read()
doc = open(sys.argv[2]).read()
sys.exit(0 if keys in doc else 1)
PY

echo "ok"
