#!/bin/sh
# start | stop a Docker engine for the tests (these machines run no init
# system). "start" is a no-op when an engine already answers; "stop" only
# stops the engine this script started. STACKBACK_DOCKERD_PIDFILE names
# the file recording that (scripts/demo.sh keeps its own, so the tests
# never stop the demo's engine nor the demo the tests').
set -eu
pidfile=${STACKBACK_DOCKERD_PIDFILE:-/run/stackback-test-dockerd.pid}
logfile=${pidfile%.pid}.log

# alive PID: the process exists and is not a zombie.
alive() {
	state=$(sed -n 's/^State:[[:space:]]*//p' "/proc/$1/status" 2>/dev/null)
	[ -n "$state" ] && [ "${state#Z}" = "$state" ]
}
case "${1:-start}" in
start)
	if docker info >/dev/null 2>&1; then
		exit 0
	fi
	dockerd >"$logfile" 2>&1 &
	echo $! >"$pidfile"
	i=0
	until docker info >/dev/null 2>&1; do
		i=$((i + 1))
		if [ "$i" -gt 60 ]; then
			echo "dockerd did not come up; see $logfile" >&2
			exit 1
		fi
		sleep 1
	done
	;;
stop)
	if [ -f "$pidfile" ]; then
		pid=$(cat "$pidfile")
		# Only the engine we started: the PID may have been reused since.
		if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ]; then
			kill "$pid"
			# Returns once it is gone (or a zombie nobody reaped yet), so
			# "stopped" means stopped.
			i=0
			while alive "$pid" && [ "$i" -lt 60 ]; do
				i=$((i + 1))
				sleep 0.5
			done
		fi
		rm -f "$pidfile"
	fi
	;;
*)
	echo "usage: $0 start|stop" >&2
	exit 2
	;;
esac
