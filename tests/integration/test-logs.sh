#!/bin/bash
# Logs (logsetup.h, SPEC §6): a real backup of a real compose stack with
# the password in RESTIC_PASSWORD and --log-level debug writes STATE_DIR/
# log and sends syslog datagrams to SYSLOG_SOCKET, and the password is in
# none of them, nor in the job's files, the CLI's output, status,
# metrics or `config show`. Then the service rule on a machine with
# /dev/log (a private mount namespace gets one, bound by this test):
# INVOCATION_ID with stdin not a terminal logs to /dev/log and no longer
# to stderr; --syslog logs there from a terminal session too, stderr kept.
source "$(dirname "$0")/lib.sh"
need restic docker-compose python3 unshare mount

sb_write_config
sb_busybox_image
SECRET="pw-$P-$RANDOM$RANDOM-secret"
# The password only in the environment: no PASSWORD_FILE.
grep -v '^PASSWORD_FILE=' "$CFG" >"$T/c" && mv "$T/c" "$CFG" && chmod 600 "$CFG"
echo "SYSLOG_SOCKET=$T/syslog.sock" >>"$CFG"
export RESTIC_PASSWORD=$SECRET

# listen SOCKET LOG: a syslog datagram listener; waits for its socket.
listen() {
	python3 "$SB_SRC/tests/integration/syslog-listener.py" "$1" "$2" &
	on_exit "kill $!"
	for ((i = 0; i < 100; i++)); do
		[ -S "$1" ] && return 0
		sleep 0.1
	done
	fail "the syslog listener did not bind $1"
}
listen "$T/syslog.sock" "$T/syslog"

WEB="${P}web"
sb_make_stack "$WEB"
sb_stack_up "$WEB"
sb() { "$SB" -c "$CFG" "$@"; }
sb init >"$T/out" 2>"$T/err"
sb enable "$WEB" >>"$T/out" 2>>"$T/err"

note "a real backup at debug level"
sb --log-level debug backup >>"$T/out" 2>>"$T/err" || fail "backup failed: $(cat "$T/err")"
assert_eq "$(sb_stack_state "$WEB")" running
log=$(cat "$T/state/log")
assert_contains "$log" " info: job 1: backup all started"
assert_contains "$log" " info: job 1: backup ok"
assert_contains "$log" " debug: "
# The listener writes each datagram when it gets to it, in order: the job's last line marks the rest.
for ((i = 0; i < 200; i++)); do
	grep -qF "]: job 1: backup ok" "$T/syslog" && break
	sleep 0.1
done
sys=$(cat "$T/syslog")
assert_contains "$sys" "]: job 1: backup ok"
assert_contains "$sys" "<30>stackback["
assert_contains "$sys" "]: job 1: backup all started"
assert_contains "$sys" "<31>stackback["
# Not a service: stderr keeps the lines too.
assert_contains "$(cat "$T/err")" "job 1: backup ok"

note "the password is nowhere"
sb status >>"$T/out" 2>>"$T/err"
sb status --json >>"$T/out" 2>>"$T/err"
sb metrics >>"$T/out" 2>>"$T/err"
sb config show >>"$T/out" 2>>"$T/err"
sb --log-level debug snapshots >>"$T/out" 2>>"$T/err"
sb --log-level debug doctor >>"$T/out" 2>>"$T/err" || true
assert_contains "$(cat "$T/out")" "stackback_stack_last_backup_success{stack=\"$WEB\"} 1"
for f in "$T/out" "$T/err" "$T/syslog" "$T/state/log"; do
	grep -qF "$SECRET" "$f" && fail "the password is in $f"
done
grep -rlF "$SECRET" "$T/state" && fail "the password is in STATE_DIR"
[ -s "$T/state/jobs/1/log" ] || fail "job 1 has no log"

note "as a service on a machine with /dev/log (a private mount namespace)"
# /dev gets a tmpfs with the few devices the programs need, and a
# listener at /dev/log; nothing outside the namespace changes.
had_devlog=$([ -e /dev/log ] && echo yes || echo no)
mkdir "$T/realdev"
grep -v '^SYSLOG_SOCKET=' "$CFG" >"$T/service.ini"
chmod 600 "$T/service.ini"
cat >"$T/ns.sh" <<'SH'
set -eu
mount --make-rprivate /
mount --bind /dev "$T/realdev"
mount -t tmpfs -o mode=755 tmpfs /dev
for n in null zero full random urandom tty; do
	touch "/dev/$n"
	mount --bind "$T/realdev/$n" "/dev/$n"
done
ln -s /proc/self/fd /dev/fd
python3 "$SB_SRC/tests/integration/syslog-listener.py" /dev/log "$T/devlog" &
# On SIGTERM it writes what is queued first: wait for that, or the last lines may be missing.
trap "kill $!; wait $!" EXIT
for i in $(seq 100); do
	[ -S /dev/log ] && break
	sleep 0.1
done
# The service rule needs no SYSLOG_SOCKET: /dev/log is found.
INVOCATION_ID=0123abcd "$SB" -c "$T/service.ini" check </dev/null >"$T/svc.out" 2>"$T/svc.err"
# --syslog from a run that is not a service: /dev/log too, and stderr kept.
"$SB" -c "$T/service.ini" --syslog check </dev/null >"$T/flag.out" 2>"$T/flag.err"
SH
T=$T SB=$SB SB_SRC=$SB_SRC unshare --mount bash "$T/ns.sh" ||
	fail "the service runs failed: $(cat "$T/svc.err" "$T/flag.err" 2>/dev/null)"
assert_eq "$([ -e /dev/log ] && echo yes || echo no)" "$had_devlog" "/dev/log outside the namespace"
devlog=$(cat "$T/devlog")
assert_contains "$devlog" "<30>stackback["
assert_contains "$devlog" "]: job 2: check ok"
assert_contains "$devlog" "]: job 3: check ok"
assert_not_contains "$(cat "$T/svc.err")" "job 2: check"
assert_contains "$(cat "$T/flag.err")" "job 3: check"
grep -qF "$SECRET" "$T/devlog" "$T/svc.err" "$T/flag.err" && fail "the password reached a service log"

echo "ok"
