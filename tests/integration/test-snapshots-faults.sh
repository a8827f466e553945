#!/bin/bash
# snapshots/ when restic fails (SPEC §5 "never a hang"): a `restic dump`
# killed in the middle of a read gives EIO to the reader and one log
# line, and the next open fetches the file afresh; a repository that
# cannot be listed gives EIO at once (not a hang, not a restic run per
# request) and browsing works again once it is back.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-fs.sh"
need restic cmp mkfifo

# restic's failures: the native reader's are in test-snapshots-native.sh.
export SNAPSHOT_READER=restic
sb_write_config
WEB="${P}web"
SRC="$T/stacks/$WEB"
mkdir -p "$SRC"
printf 'services: {}\n' >"$SRC/compose.yaml"
head -c $((64 << 20)) /dev/urandom >"$SRC/big.bin"
printf '%s=false\n' "$WEB" >"$T/state/dirlist"
rs() { RESTIC_PASSWORD_FILE="$T/password" restic -r "$T/repo" "$@"; }
# A restic first in PATH: while $T/dump-gate exists, a `restic dump` passes
# on its first MiB and then stalls, as the same pid (the one the daemon
# waits for) with the rest unsent, so a test can kill it mid-read however
# fast restic is. It names its pid in $T/dump-held.
real_restic=$(command -v restic)
mkdir "$T/bin"
cat >"$T/bin/restic" <<SH
#!/bin/bash
if [ "\$2" = dump ] && [ -e "$T/dump-gate" ]; then
	mkfifo "$T/dump.fifo"
	"$real_restic" "\$@" >"$T/dump.fifo" &
	exec 3<"$T/dump.fifo"
	rm "$T/dump.fifo"
	head -c \$((1 << 20)) <&3
	echo \$\$ >"$T/dump-held.tmp" && mv "$T/dump-held.tmp" "$T/dump-held"
	exec sleep 600
fi
exec "$real_restic" "\$@"
SH
chmod +x "$T/bin/restic"
export PATH="$T/bin:$PATH"
rs init >/dev/null
rs backup -q --tag stackback --tag "$WEB" "$SRC"

note "a repository that cannot be listed: EIO at once, and a log line"
mv "$T/repo" "$T/repo.away"
sbfs_mount
start=$(date +%s)
assert_eq "$(probe open "$MNT/snapshots/$WEB/latest" r)" "err EIO"
assert_eq "$(probe open "$MNT/snapshots/$WEB/latest" r)" "err EIO"
(($(date +%s) - start < 30)) || fail "the failing listing took $(($(date +%s) - start)) s"
grep -q "listing the snapshots of local repository '$T/repo' failed: restic exited 1: repository does not exist" \
	"$T/state/log" || fail "no log line: $(tail -5 "$T/state/log")"
assert_eq "$(grep -c 'listing the snapshots of local repository' "$T/state/log")" 1
mv "$T/repo.away" "$T/repo"
# A failed listing is asked again after 10 s, not for every request.
for ((i = 0; i < 600; i++)); do
	[ -L "$MNT/snapshots/$WEB/latest" ] && break
	sleep 0.1
done
[ -L "$MNT/snapshots/$WEB/latest" ] || fail "the repository is back but latest did not appear"

note "a restic dump killed in the middle of a read: EIO, one log line"
touch "$T/dump-gate"
F="$MNT/snapshots/$WEB/latest/big.bin"
python3 - "$F" "$T" >"$T/reader.out" 2>&1 <<'PY' &
import errno, os, sys, time
path, t = sys.argv[1], sys.argv[2]
fd = os.open(path, os.O_RDONLY)
got = len(os.pread(fd, 4096, 0))
open(os.path.join(t, "first"), "w").write(str(got))
while not os.path.exists(os.path.join(t, "go")):
    time.sleep(0.05)
off = got
try:
    while True:
        b = os.pread(fd, 1 << 20, off)
        if not b:
            break
        off += len(b)
    print("read", off, "bytes without an error")
except OSError as e:
    print(errno.errorcode[e.errno], off)
PY
reader=$!
sb_wait_file "$T/dump-held" 60
rm "$T/dump-gate"
sb_wait_file "$T/first" 60
assert_eq "$(cat "$T/first")" 4096
kill -KILL "$(cat "$T/dump-held")"
touch "$T/go"
wait "$reader"
out=$(cat "$T/reader.out")
[[ "$out" =~ ^EIO\ ([0-9]+)$ ]] || fail "the reader did not get EIO: $out"
((BASH_REMATCH[1] > 0 && BASH_REMATCH[1] < (64 << 20))) || fail "EIO not mid-read: $out"
grep -q "reading $WEB@.*:/big.bin failed: restic killed by signal 9" "$T/state/log" ||
	fail "no log line for the killed dump: $(tail -5 "$T/state/log")"
[ -z "$(ls "$T/state/cache/content/"*.part 2>/dev/null)" ] || fail "a partial cache file was left"

note "the next open fetches it again"
cmp "$SRC/big.bin" "$F"
sbfs_umount
