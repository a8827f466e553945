#!/bin/sh
# Installs everything stackback needs to build, run and test on Debian 12.
# Safe to run again: apt-get only installs what is missing.
# systemd is only for `systemd-analyze verify` of the units: installing the
# package does not make it PID 1 (that is systemd-sysv plus a reboot), and
# in a container its postinst skips the daemon re-exec.
set -eu
pkgs="meson ninja-build pkg-config gcc libfuse3-dev fuse3 libjson-c-dev libncurses-dev
libcmocka-dev libssl-dev libzstd-dev restic rclone docker.io docker-compose busybox-static
tmux clang libclang-rt-14-dev python3 btrfs-progs xfsprogs curl systemd man-db groff-base"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing
fi
