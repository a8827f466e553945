#!/bin/bash
# snapshots/ through a real mount and a real restic repository (SPEC §2):
# a stack of 20,000 files in nested directories, symlinks to files and
# directories, odd names (spaces, tabs, quotes, " -> ", UTF-8), empty
# files, a sparse file and a big one; `find`, `stat`, `readlink`, `cat`
# and `cmp` against the source tree for every entry; `latest` follows a
# backup made behind the daemon's back; every change is EROFS.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-fs.sh"
need restic cmp find

# The restic path (content cache, restic dump); test-snapshots-native.sh
# runs the same kind of checks through the native reader.
export SNAPSHOT_READER=restic
sb_write_config
WEB="${P}web"
SRC="$T/stacks/$WEB"
mkdir -p "$SRC"
printf 'services: {}\n' >"$SRC/compose.yaml"
printf '%s=false\n' "$WEB" >"$T/state/dirlist"

note "a stack of 20,000 files"
python3 - "$SRC" <<'PY'
import os, sys
root = sys.argv[1]
n = 0
for a in range(20):
    for b in range(10):
        d = os.path.join(root, "tree", "d%02d" % a, "sub %d" % b)
        os.makedirs(d, exist_ok=True)
        for c in range(100):
            with open(os.path.join(d, "file-%03d.txt" % c), "w") as f:
                f.write("file %d/%d/%d\n" % (a, b, c) * (c % 7))
            n += 1
odd = os.path.join(root, "odd")
os.makedirs(odd)
for name in ["with space", "tab\there", "quote'single", 'quote"double', "arrow -> x",
             "\u00e9t\u00e9 \u2603", "-dash", "#hash", "back\\slash", "star*[x]?"]:
    with open(os.path.join(odd, name), "w") as f:
        f.write("odd file %r\n" % name)
for name in ["empty", "odd/empty too"]:
    open(os.path.join(root, name), "w").close()
os.symlink("tree/d03/sub 4/file-042.txt", os.path.join(root, "link-to-file"))
os.symlink("tree/d07", os.path.join(root, "link-to-dir"))
os.symlink("../odd/arrow -> x", os.path.join(root, "tree", "link -> arrow"))
os.symlink("nowhere", os.path.join(root, "dangling"))
os.chmod(os.path.join(odd, "-dash"), 0o600)
os.chmod(os.path.join(root, "tree", "d01"), 0o700)
# sparse: 256 MiB with a few bytes in the middle and at the end
with open(os.path.join(root, "sparse.img"), "wb") as f:
    f.truncate(256 << 20)
    f.seek(100 << 20); f.write(b"middle")
    f.seek((256 << 20) - 4); f.write(b"end\n")
PY
head -c $((24 << 20)) /dev/urandom >"$SRC/big.bin"
rs() { RESTIC_PASSWORD_FILE="$T/password" restic -r "$T/repo" "$@"; }
rs init >/dev/null
rs backup -q --tag stackback --tag "$WEB" "$SRC"

sbfs_mount
SNAPS="$MNT/snapshots/$WEB"

note "snapshots/NAME/ lists the snapshot and latest"
first=$(rs snapshots --json | json 'd[0]["short_id"]')
names=$(ls "$SNAPS")
assert_eq "$(wc -l <<<"$names")" 2
assert_contains "$names" "_$first"
assert_contains "$names" latest
snapdir=$(grep -v latest <<<"$names")
[[ "$snapdir" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}_[0-9a-f]{8}$ ]] ||
	fail "snapshot directory name '$snapdir' is not YYYY-MM-DDTHH:MM:SS_ID"
assert_eq "$(readlink "$SNAPS/latest")" "$snapdir"
expect_rc 2 ls "$SNAPS/$first" "$SNAPS/nonsense_1234" 2>/dev/null
assert_eq "$(probe open "$SNAPS/2000-01-01T00:00:00_${first}" r)" "err ENOENT"
assert_eq "$(ls "$MNT/stacks/$WEB/snapshots/")" "$names"

note "find: the same entries as the source"
diff <(cd "$SRC" && find . | sort) <(cd "$SNAPS/latest/" && find . | sort) >"$T/find.diff" ||
	fail "find differs: $(head -20 "$T/find.diff")"
count=$(cd "$SNAPS/latest/" && find . | wc -l)
[ "$count" -gt 20000 ] || fail "only $count entries"

note "stat, readlink and contents of every entry equal the source's"
python3 - "$SRC" "$SNAPS/latest" <<'PY'
import os, stat, sys
src, snap = sys.argv[1], sys.argv[2]
checked = files = 0
for dirpath, dirnames, filenames in os.walk(src):
    for name in dirnames + filenames:
        a = os.path.join(dirpath, name)
        b = os.path.join(snap, os.path.relpath(a, src))
        sa, sb = os.lstat(a), os.lstat(b)
        for field in ("st_mode", "st_uid", "st_gid", "st_mtime_ns"):
            if getattr(sa, field) != getattr(sb, field):
                sys.exit("%s: %s %r != %r" % (b, field, getattr(sb, field), getattr(sa, field)))
        if not stat.S_ISDIR(sa.st_mode) and sa.st_size != sb.st_size:
            sys.exit("%s: size %d != %d" % (b, sb.st_size, sa.st_size))
        if stat.S_ISLNK(sa.st_mode):
            if os.readlink(a) != os.readlink(b):
                sys.exit("%s: link %r != %r" % (b, os.readlink(b), os.readlink(a)))
        elif stat.S_ISREG(sa.st_mode):
            with open(a, "rb") as fa, open(b, "rb") as fb:
                while True:
                    x, y = fa.read(1 << 20), fb.read(1 << 20)
                    if x != y:
                        sys.exit("%s: content differs" % b)
                    if not x:
                        break
            files += 1
        checked += 1
print(checked, files)
PY
note "cat and cmp on the awkward ones"
for f in "odd/tab	here" "odd/quote\"double" "odd/été ☃" "odd/star*[x]?" "empty" "sparse.img" "big.bin" \
	"link-to-file" "link-to-dir/sub 3/file-099.txt" "tree/link -> arrow"; do
	[ -e "$SRC/$f" ] || continue
	cmp "$SRC/$f" "$SNAPS/latest/$f" || fail "cmp $f"
done
assert_eq "$(cat "$SNAPS/latest/odd/with space")" "odd file 'with space'"
assert_eq "$(cat "$SNAPS/latest/tree/d00/sub 0/file-000.txt")" ""
assert_eq "$(stat -c %s "$SNAPS/latest/sparse.img")" $((256 << 20))
assert_eq "$(tail -c 4 "$SNAPS/latest/sparse.img")" "end"
assert_eq "$(readlink "$SNAPS/latest/dangling")" nowhere
assert_eq "$(probe open "$SNAPS/latest/dangling" r)" "err ENOENT"
# A second read comes from the cache (and the page cache): no new restic run.
cmp "$SRC/big.bin" "$SNAPS/latest/big.bin"
[ -n "$(ls -A "$T/state/cache/content")" ] || fail "nothing in STATE_DIR/cache/content"

note "every change is EROFS"
L="$SNAPS/latest"
assert_eq "$(probe open "$L/big.bin" w)" "err EROFS"
assert_eq "$(probe open "$L/big.bin" rw)" "err EROFS"
assert_eq "$(probe open "$L/empty" wt)" "err EROFS"
assert_eq "$(probe creat "$L/new")" "err EROFS"
assert_eq "$(probe creat "$L/tree/new")" "err EROFS"
assert_eq "$(probe mkdir "$L/newdir")" "err EROFS"
assert_eq "$(probe rmdir "$L/tree/d00")" "err EROFS"
assert_eq "$(probe unlink "$L/big.bin")" "err EROFS"
assert_eq "$(probe truncate "$L/big.bin")" "err EROFS"
assert_eq "$(probe rename "$L/big.bin" "$L/big2.bin")" "err EROFS"
assert_eq "$(probe rename "$MNT/README" "$L/README")" "err EROFS"
assert_eq "$(probe symlink x "$L/newlink")" "err EROFS"
assert_eq "$(probe mkdir "$SNAPS/newsnap")" "err EROFS"
assert_eq "$(probe unlink "$SNAPS/latest")" "err EROFS"
expect_rc 1 chmod 777 "$L/big.bin" 2>/dev/null
expect_rc 1 touch "$L/empty" 2>/dev/null
assert_contains "$(touch "$L/empty" 2>&1 || true)" "Read-only file system"
cmp "$SRC/big.bin" "$L/big.bin"

note "latest follows a backup made behind the daemon's back (the repository's snapshots/ changed)"
echo changed >"$SRC/new-file"
rs backup -q --tag stackback --tag "$WEB" "$SRC"
second=$(rs snapshots --json | json 'd[-1]["short_id"]')
for ((i = 0; i < 600; i++)); do
	[[ "$(readlink "$SNAPS/latest")" == *"_$second" ]] && break
	sleep 0.1
done
[[ "$(readlink "$SNAPS/latest")" == *"_$second" ]] || fail "latest still points at $(readlink "$SNAPS/latest")"
assert_eq "$(cat "$SNAPS/latest/new-file")" changed
assert_eq "$(probe open "$SNAPS/$snapdir/new-file" r)" "err ENOENT"
assert_eq "$(ls "$SNAPS" | wc -l)" 3

note "the tree was kept on disk for the next start"
[ -s "$T/state/cache/trees/local/$(rs snapshots --json | json 'd[0]["id"]')" ] || fail "no tree cache"
sbfs_umount
sbfs_mount
assert_eq "$(cd "$SNAPS/$snapdir/" && find . | wc -l)" "$count"
sbfs_umount
