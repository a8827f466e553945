#!/bin/sh
# start | stop a Docker engine for the tests (these machines run no init
# system). "start" is a no-op when an engine already answers; "stop" only
# stops the engine this script started.
set -eu
pidfile=/run/stackback-test-dockerd.pid
case "${1:-start}" in
start)
	if docker info >/dev/null 2>&1; then
		exit 0
	fi
	dockerd >/tmp/stackback-dockerd.log 2>&1 &
	echo $! >"$pidfile"
	i=0
	until docker info >/dev/null 2>&1; do
		i=$((i + 1))
		if [ "$i" -gt 60 ]; then
			echo "dockerd did not come up; see /tmp/stackback-dockerd.log" >&2
			exit 1
		fi
		sleep 1
	done
	;;
stop)
	if [ -f "$pidfile" ]; then
		kill "$(cat "$pidfile")" 2>/dev/null || true
		rm -f "$pidfile"
	fi
	;;
*)
	echo "usage: $0 start|stop" >&2
	exit 2
	;;
esac
