#!/bin/bash
# Mounts stackbackfs over 1,000 stacks (compose files only: no Docker
# needed) and runs bench/fs-latency against it; prints the medians and
# exits 1 if one misses its target.
#
#   bench/fs-latency.sh [BUILD_DIR] [ROUNDS] [STACKS]   (default: build 1000 1000)
set -euo pipefail
build=$(realpath "${1:-build}")
rounds=${2:-1000}
count=${3:-1000}
sbfs="$build/fs/stackbackfs"
bench="$build/bench/fs-latency"
[ -x "$sbfs" ] && [ -x "$bench" ] || { echo "build first: meson compile -C $build" >&2; exit 2; }

T=$(mktemp -d /tmp/sbbench.XXXXXX)
mnt="$T/mnt"
cleanup() {
	fusermount3 -u -z "$mnt" 2>/dev/null || true
	rm -rf "$T"
}
trap cleanup EXIT
mkdir -p "$T/stacks" "$T/state" "$mnt"
for i in $(seq -w 0 $((count - 1))); do
	mkdir "$T/stacks/s$i"
	printf 'services:\n  app:\n    image: local/busybox:latest\n' >"$T/stacks/s$i/compose.yaml"
done
printf 'bench\n' >"$T/password"
chmod 600 "$T/password"
cat >"$T/config.ini" <<INI
[docker]
DOCKER_STACKS_DIR=$T/stacks
[local_backup]
RESTIC_REPOSITORY=$T/repo
PASSWORD_FILE=$T/password
[stackback]
STATE_DIR=$T/state
MOUNTPOINT=$mnt
INI
chmod 600 "$T/config.ini"

"$sbfs" -c "$T/config.ini" "$mnt"
echo "stackbackfs over $count stacks, $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
"$bench" "$mnt" "$(ls "$T/stacks" | sed -n "$((count / 2 + 1))p")" "$rounds" "$T/state"
