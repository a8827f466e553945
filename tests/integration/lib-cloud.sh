# Helpers for the cloud tests (sourced after lib.sh): a real WebDAV server
# on loopback (`rclone serve webdav`) used as RCLONE_REMOTE, and tree
# checksums to prove what a job did not touch.

need rclone restic python3

DAV_DIR="$T/dav"
DAV_PORT=
DAV_PID=

# sb_dav_start: serves $DAV_DIR on 127.0.0.1. The first start takes a free
# port (rclone binds port 0 and logs the real one); later starts reuse it,
# so the remote in rclone.conf stays valid across a restart.
sb_dav_start() {
	mkdir -p "$DAV_DIR"
	: >"$T/dav-server.conf"
	local log="$T/dav.log.$RANDOM"
	rclone serve webdav --config "$T/dav-server.conf" --addr "127.0.0.1:${DAV_PORT:-0}" \
		"$DAV_DIR" >"$log" 2>&1 &
	DAV_PID=$!
	disown "$DAV_PID" # no "Killed" job notice when the test kills it
	on_exit "kill -9 $DAV_PID"
	local i
	for i in $(seq 100); do
		if grep -q 'WebDav Server started on' "$log"; then
			DAV_PORT=$(sed -n 's|.*started on http://127\.0\.0\.1:\([0-9]*\)/.*|\1|p' "$log" | head -1)
			[ -n "$DAV_PORT" ] || fail "cannot read the WebDAV port from $log: $(cat "$log")"
			return 0
		fi
		kill -0 "$DAV_PID" 2>/dev/null || fail "rclone serve webdav died: $(cat "$log")"
		sleep 0.1
	done
	fail "rclone serve webdav did not start in 10 s: $(cat "$log")"
}

# sb_dav_kill: the server dies at once (SIGKILL), as a crashed or
# disconnected remote would.
sb_dav_kill() {
	kill -9 "$DAV_PID" 2>/dev/null || true
	local i
	for i in $(seq 100); do
		kill -0 "$DAV_PID" 2>/dev/null || return 0
		sleep 0.05
	done
	fail "the WebDAV server (pid $DAV_PID) outlived SIGKILL"
}

# sb_cloud_config [URL]: points RCLONE_REMOTE at the WebDAV server (or at
# URL), RCLONE_PATH at backup/repo, and sets short timeouts and retries.
# vendor = other: rclone 1.60's webdav then compares sizes (restic's
# files are immutable and named by their hash), or every sync re-uploads.
sb_cloud_config() {
	local url=${1:-http://127.0.0.1:$DAV_PORT}
	printf '[sbremote]\ntype = webdav\nurl = %s\nvendor = other\n' "$url" >"$T/rclone.conf"
	chmod 600 "$T/rclone.conf"
	sed -i -e 's|^RCLONE_PATH=.*|RCLONE_PATH=backup/repo|' "$CFG"
	grep -q '^RETRIES=' "$CFG" ||
		sed -i -e 's|^\[cloud_sync\]$|[cloud_sync]\nTRANSFERS=4\nRETRIES=1|' "$CFG"
	grep -q '^REMOTE_TIMEOUT=' "$CFG" || echo 'REMOTE_TIMEOUT=5' >>"$CFG"
}

# sb_tree_sum DIR: one checksum over every file's path and content
# (restic's transient locks/ left out).
sb_tree_sum() {
	(cd "$1" && find . -type f ! -path './locks/*' -print0 | LC_ALL=C sort -z |
		xargs -0 -r sha256sum | sha256sum | cut -d' ' -f1)
}

# sb_restic DIR ARGS...: restic on repository DIR with the test password.
sb_restic() {
	local repo=$1
	shift
	RESTIC_PASSWORD_FILE="$T/password" restic -r "$repo" --no-cache "$@"
}

# sb_json_get FILE EXPR: a value from a JSON file, e.g. '["in_sync"]["state"]'.
sb_json_get() {
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval("d"+sys.argv[2]))' "$1" "$2"
}
