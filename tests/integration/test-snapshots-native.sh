#!/bin/bash
# snapshots/ through the native reader (docs/restic-reader.md), on a real
# mount of repositories the real restic made, format versions 1 and 2:
# find, stat (link counts included), readlink and the contents of every
# entry equal the source; browsing runs no restic at all; status names the
# reader; a 4 KiB read deep in a big file is quick; a damaged pack is EIO
# with one log line naming the pack while the rest still reads.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-fs.sh"
need restic cmp find python3

RESTIC=$(command -v restic)
sb_write_config
WEB="${P}web"
SRC="$T/stacks/$WEB"
mkdir -p "$SRC"
printf 'services: {}\n' >"$SRC/compose.yaml"
printf '%s=false\n' "$WEB" >"$T/state/dirlist"

python3 - "$SRC" <<'PY'
import os, sys
root = sys.argv[1]
for a in range(10):
    for b in range(4):
        d = os.path.join(root, "tree", "d%02d" % a, "sub %d" % b)
        os.makedirs(d, exist_ok=True)
        for c in range(50):
            with open(os.path.join(d, "file-%03d.txt" % c), "w") as f:
                f.write("file %d/%d/%d\n" % (a, b, c) * (c % 5))
odd = os.path.join(root, "odd")
os.makedirs(odd)
for name in ["with space", "tab\there", 'quote"double', "arrow -> x", "\u00e9t\u00e9 \u2603",
             "-dash", "back\\slash", "star*[x]?", "new\nline"]:
    with open(os.path.join(odd, name), "w") as f:
        f.write("odd file %r\n" % name)
open(os.path.join(root, "empty"), "w").close()
with open(os.path.join(root, "hard-a"), "w") as f:
    f.write("one file, three names\n")
os.link(os.path.join(root, "hard-a"), os.path.join(root, "hard-b"))
os.link(os.path.join(root, "hard-a"), os.path.join(root, "tree", "hard-c"))
os.symlink("tree/d03/sub 2/file-042.txt", os.path.join(root, "link-to-file"))
os.symlink("tree/d07", os.path.join(root, "link-to-dir"))
os.symlink("../odd/arrow -> x", os.path.join(root, "tree", "link -> arrow"))
os.symlink("nowhere", os.path.join(root, "dangling"))
os.mkfifo(os.path.join(root, "fifo"))
os.chmod(os.path.join(odd, "-dash"), 0o600)
with open(os.path.join(root, "sparse.img"), "wb") as f:
    f.truncate(64 << 20)
    f.seek(30 << 20); f.write(b"middle")
    f.seek((64 << 20) - 4); f.write(b"end\n")
PY
head -c $((48 << 20)) /dev/urandom >"$SRC/big.bin"

# Every restic the daemon might start goes through this shim, which logs it.
mkdir -p "$T/bin"
cat >"$T/bin/restic" <<SH
#!/bin/sh
echo "\$*" >>"$T/restic-calls"
exec "$RESTIC" "\$@"
SH
chmod +x "$T/bin/restic"
export PATH="$T/bin:$PATH"
rs() { RESTIC_PASSWORD_FILE="$T/password" "$RESTIC" -r "$T/repo" "$@"; }

compare_tree() {
	python3 - "$SRC" "$1" <<'PY'
import os, stat, sys
src, snap = sys.argv[1], sys.argv[2]
checked = 0
for dirpath, dirs, files in os.walk(src):
    for name in dirs + files:
        a = os.path.join(dirpath, name)
        b = os.path.join(snap, os.path.relpath(a, src))
        sa, sb = os.lstat(a), os.lstat(b)
        for field in ("st_mode", "st_uid", "st_gid", "st_mtime_ns"):
            if getattr(sa, field) != getattr(sb, field):
                sys.exit("%s: %s %r != %r" % (b, field, getattr(sb, field), getattr(sa, field)))
        if not stat.S_ISDIR(sa.st_mode) and sa.st_size != sb.st_size:
            sys.exit("%s: size %d != %d" % (b, sb.st_size, sa.st_size))
        if (stat.S_ISREG(sa.st_mode) or stat.S_ISLNK(sa.st_mode)) and sa.st_nlink != sb.st_nlink:
            sys.exit("%s: %d links, the source has %d" % (b, sb.st_nlink, sa.st_nlink))
        if stat.S_ISLNK(sa.st_mode) and os.readlink(a) != os.readlink(b):
            sys.exit("%s: link %r != %r" % (b, os.readlink(b), os.readlink(a)))
        if stat.S_ISREG(sa.st_mode):
            with open(a, "rb") as fa, open(b, "rb") as fb:
                while True:
                    x, y = fa.read(1 << 20), fb.read(1 << 20)
                    if x != y:
                        sys.exit("%s: content differs" % b)
                    if not x:
                        break
        checked += 1
print(checked)
PY
}

for version in 1 2; do
	note "format version $version: a backup, then a mount"
	rm -rf "$T/repo" "$T/state/cache" "$T/restic-calls"
	rs init --repository-version "$version" >/dev/null
	rs backup -q --tag stackback --tag "$WEB" "$SRC"
	sbfs_mount
	SNAPS="$MNT/snapshots/$WEB"

	note "find, stat, link counts, readlink and contents of every entry equal the source"
	diff <(cd "$SRC" && find . | sort) <(cd "$SNAPS/latest/" && find . | sort) >"$T/find.diff" ||
		fail "find differs: $(head -20 "$T/find.diff")"
	n=$(compare_tree "$SNAPS/latest")
	((n > 2000)) || fail "only $n entries compared"
	assert_eq "$(stat -c %h "$SNAPS/latest/tree/hard-c")" 3
	assert_eq "$(readlink "$SNAPS/latest/tree/link -> arrow")" "../odd/arrow -> x"
	assert_eq "$(tail -c 4 "$SNAPS/latest/sparse.img")" "end"
	assert_eq "$(probe open "$SNAPS/latest/dangling" r)" "err ENOENT"

	note "a 4 KiB read 40 MiB into a 48 MiB file reads only what it needs"
	cmp <(tail -c +$(((40 << 20) + 1)) "$SRC/big.bin" | head -c 4096) \
		<(python3 -c "import os,sys; fd = os.open(sys.argv[1], os.O_RDONLY); sys.stdout.buffer.write(os.pread(fd, 4096, 40 << 20))" \
			"$SNAPS/latest/big.bin") || fail "the read at 40 MiB differs"
	cmp "$SRC/big.bin" "$SNAPS/latest/big.bin"

	note "status names the reader; browsing ran no restic"
	assert_contains "$(cat "$MNT/status")" "snapshots.local: native (format version $version)"
	assert_eq "$(json 'd["snapshots"]["local"]' <"$MNT/status.json")" "native (format version $version)"
	[ ! -s "$T/restic-calls" ] || fail "the daemon ran restic: $(cat "$T/restic-calls")"
	grep -q "browsed with the native reader (format version $version" "$T/state/log" ||
		fail "no log line names the reader: $(tail -5 "$T/state/log")"
	sbfs_umount
done

note "a damaged pack: EIO and one log line naming it; the rest still reads"
pack=$(find "$T/repo/data" -type f -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2)
size=$(stat -c %s "$pack")
printf 'X' | dd of="$pack" bs=1 seek=$((size / 2)) conv=notrunc status=none
rm -rf "$T/state/cache"
sbfs_mount
SNAPS="$MNT/snapshots/$WEB"
expect_rc 1 cat "$SNAPS/latest/big.bin" >/dev/null 2>"$T/cat.err"
assert_contains "$(cat "$T/cat.err")" "Input/output error"
grep -q "reading '$WEB@.*:/big.bin' failed: .*$(basename "$pack")' is damaged" "$T/state/log" ||
	fail "no log line names the damaged pack: $(tail -5 "$T/state/log")"
assert_eq "$(cat "$SNAPS/latest/hard-b")" "one file, three names"
assert_eq "$(cd "$SNAPS/latest/" && find . | wc -l)" "$(cd "$SRC" && find . | wc -l)"
sbfs_umount
