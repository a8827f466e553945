#!/bin/bash
# The daemon's life cycle (SPEC §2, §5, §7): it daemonizes by default and
# goes away with `fusermount3 -u`; SIGTERM or an unmount during a backup
# cancel the job and start the stopped stack again before the daemon
# exits; a daemon killed mid-backup leaves a stale mount that the next
# start explains (naming `fusermount3 -u`), and once remounted the daemon
# restarts the stack the dead one left stopped. Access is owner-only
# unless ALLOW_OTHER says otherwise.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-fs.sh"
need docker-compose restic setpriv pgrep

sb_write_config
sb_busybox_image
BIG="${P}big"
sb_make_stack "$BIG"
# Big enough that the backup phase lasts a few seconds.
head -c 400M /dev/urandom >"$T/stacks/$BIG/data/big.bin"
sb_stack_up "$BIG"
printf '%s=true\n' "$BIG" >"$T/state/dirlist"
RESTIC_PASSWORD_FILE="$T/password" restic -r "$T/repo" init >/dev/null
on_exit "pkill -KILL -f '^restic .*$T/repo' || true"

# Waits until the job reports phase $2 (the stack is stopped during "backup").
wait_phase() {
	local i
	for ((i = 0; i < 600; i++)); do
		grep -qx "phase: $2" "$MNT/jobs/$1/progress" 2>/dev/null && return 0
		sleep 0.05
	done
	fail "job $1 never reached phase $2: $(cat "$MNT/jobs/$1/progress")"
}
journal() { cat "$T/state/journal" 2>/dev/null || true; }
# Other users may walk to the mountpoint (the secrets in $T stay 0600): only the mount decides.
chmod 711 "$T"

note "daemonized by default; fusermount3 -u ends it"
"$SBFS" -c "$CFG" "$MNT" >"$T/bg.out" 2>&1 || fail "stackbackfs in the background: $(cat "$T/bg.out")"
on_exit "fusermount3 -u -z '$MNT'"
sbfs_mounted || fail "not mounted after stackbackfs returned"
pid=$(pgrep -f "^$SBFS -c $CFG $MNT\$") || fail "no daemon process"
assert_eq "$(cat "$MNT/stacks/$BIG/enabled")" 1
grep " $MNT " /proc/self/mountinfo | grep -q default_permissions || fail "mounted without default_permissions"
grep " $MNT " /proc/self/mountinfo | grep -q allow_other && fail "mounted with allow_other by default"
assert_eq "$(setpriv --reuid=65534 --regid=65534 --clear-groups cat "$MNT/status" 2>&1 | grep -c 'Permission denied')" 1 \
	"another user is refused"
note "a second daemon on the same mountpoint is refused"
set +e
"$SBFS" -c "$CFG" "$MNT" -f >"$T/second.out" 2>&1
rc=$?
set -e
assert_eq "$rc" 1 "second daemon"
assert_contains "$(cat "$T/second.out")" "already mounted at $MNT"
fusermount3 -u "$MNT"
for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && fail "the daemon outlived its unmount"
assert_contains "$(cat "$T/state/log")" "stackbackfs stopped"

note "SIGTERM during a backup: the job is cancelled, the stack runs again, then the daemon exits"
sbfs_mount
id=$(sbfs_trigger backup 1)
wait_phase "$id" backup
assert_eq "$(sb_stack_state "$BIG")" stopped "stopped for its backup"
assert_contains "$(journal)" "$BIG"
kill -TERM "$SBFS_PID"
sbfs_wait_exit 0
assert_eq "$(sb_stack_state "$BIG")" running "restarted after SIGTERM"
assert_eq "$(cat "$T/state/jobs/$id/state")" cancelled
assert_not_contains "$(journal)" "$BIG"
assert_contains "$(cat "$T/sbfs.out")" "job $id: cancelling"

note "fusermount3 -u during a backup: the same"
sbfs_mount
id=$(sbfs_trigger backup "$BIG")
id2=$(sbfs_trigger backup "$BIG dry-run")
wait_phase "$id" backup
fusermount3 -u "$MNT"
sbfs_wait_exit 0
assert_eq "$(sb_stack_state "$BIG")" running "restarted after the unmount"
assert_eq "$(cat "$T/state/jobs/$id/state")" cancelled
assert_contains "$(cat "$T/sbfs.out")" "job $id2: cancelled before it started"

note "owner-only unless ALLOW_OTHER=true: then the modes decide"
printf 'ALLOW_OTHER=true\n' >>"$CFG"
sbfs_mount
grep " $MNT " /proc/self/mountinfo | grep -q allow_other || fail "ALLOW_OTHER=true did not mount with allow_other"
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
assert_contains "$(as_nobody cat "$MNT/status")" "state: idle"
assert_eq "$(as_nobody cat "$MNT/log" 2>&1 | grep -c 'Permission denied')" 1 "log is the owner's"
assert_eq "$(as_nobody "$FSPROBE" write "$MNT/trigger/backup" 1)" "err EACCES" "another user cannot trigger"
assert_eq "$(as_nobody "$FSPROBE" mkdir "$MNT/disabled/$BIG")" "err EACCES" "another user cannot toggle"
sbfs_umount
sed -i '/^ALLOW_OTHER=true$/d' "$CFG"

note "SIGKILL during a backup leaves a stale mount; the next start names the fix"
sbfs_mount
id=$(sbfs_trigger backup 1)
wait_phase "$id" backup
kill -KILL "$SBFS_PID"
{ wait "$SBFS_PID"; } 2>/dev/null || true
assert_eq "$(probe open "$MNT/status" r)" "err ENOTCONN"
set +e
"$SBFS" -c "$CFG" "$MNT" -f >"$T/stale.out" 2>&1
rc=$?
set -e
assert_eq "$rc" 1 "mount over a stale mount"
assert_contains "$(cat "$T/stale.out")" "fusermount3 -u $MNT"
assert_eq "$(sb_stack_state "$BIG")" stopped "the dead daemon left the stack stopped"
assert_contains "$(journal)" "$BIG"

note "after fusermount3 -u the daemon mounts again and starts the stack the dead one left stopped"
fusermount3 -u "$MNT"
sbfs_mount
for ((i = 0; i < 600; i++)); do
	[ "$(sb_stack_state "$BIG")" = running ] && break
	sleep 0.1
done
assert_eq "$(sb_stack_state "$BIG")" running "recovered at start"
assert_not_contains "$(journal)" "$BIG"
assert_contains "$(cat "$MNT/log")" "recover"
sbfs_umount
note "ok"
