#!/bin/bash
# Writes to the control filesystem (SPEC §2 rules, §7): every bad write
# fails with the documented errno, says why in `log` and in the trigger's
# read-back, and changes nothing; selection changes through mkdir, rmdir,
# mv and stacks/NAME/enabled reach the dirlist before the syscall
# returns; the CLI's dirlist edits and new stack directories show up in
# the mount without a remount. No Docker needed: nothing here runs a job.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-fs.sh"

sb_write_config
WEB="${P}web"
DB="${P}db"
for s in "$WEB" "$DB"; do
	mkdir -p "$T/stacks/$s"
	printf 'services:\n  app:\n    image: local/busybox:latest\n' >"$T/stacks/$s/compose.yaml"
done
DIRLIST="$T/state/dirlist"
printf '# kept verbatim\n%s=false\n\n%s=false # db\n' "$WEB" "$DB" >"$DIRLIST"
sbfs_mount
sum() { sha256sum "$DIRLIST" | cut -d' ' -f1; }
before=$(sum)

note "bad trigger payloads: EINVAL, the reason in the read-back and in log, no job"
set +e
out=$(echo banana 2>&1 >"$MNT/trigger/backup")
rc=$?
set -e
assert_eq "$rc" 1 "echo banana > trigger/backup"
assert_contains "$out" "Invalid argument"
assert_eq "$(cat "$MNT/trigger/backup")" "error: no stack named 'banana' (see stacks/)"
assert_contains "$(tail -3 "$MNT/log")" "trigger/backup refused: no stack named 'banana'"
declare -A bad=(
	[backup]="now|1 web|all banana|1 all-the-things|$WEB force"
	[sync]="all|$WEB|read-data|force|2"
	[restore]="all|read-data|yes"
	[check]="all|dry-run|$WEB"
	[forget]="force|read-data"
)
for kind in "${!bad[@]}"; do
	IFS='|' read -ra payloads <<<"${bad[$kind]}"
	for payload in "${payloads[@]}" " " $'\n' $'\t\n'; do
		assert_eq "$(probe write "$MNT/trigger/$kind" "$payload")" "err EINVAL" "trigger/$kind '$payload'"
		assert_contains "$(cat "$MNT/trigger/$kind")" "error: " "read-back of trigger/$kind after '$payload'"
	done
done
out=$(probe handshake "$MNT/trigger/sync" "sideways")
assert_eq "$(head -1 <<<"$out")" "err EINVAL"
assert_contains "$(tail -1 <<<"$out")" "error: " "the refusal is readable on the same descriptor"

note "payload shapes: 1 MB, just over the limit, NUL bytes, partial writes"
assert_eq "$(probe fill "$MNT/trigger/backup" 1048576)" "err EINVAL" "1 MB write"
assert_contains "$(tail -2 "$MNT/log")" "more than a control file takes"
assert_eq "$(probe fill "$MNT/trigger/backup" 4097)" "err EINVAL" "4097 bytes"
assert_eq "$(probe fill "$MNT/stacks/$WEB/enabled" 1048576)" "err EINVAL" "1 MB to enabled"
assert_eq "$(probe nul "$MNT/trigger/backup")" "err EINVAL" "NUL byte"
assert_contains "$(tail -1 "$MNT/log")" "NUL byte"
assert_eq "$(probe nul "$MNT/stacks/$WEB/enabled")" "err EINVAL" "NUL byte to enabled"
# Each write(2) is a whole command: halves are not glued together.
assert_eq "$(probe partial "$MNT/trigger/backup" al l | tr '\n' ' ')" "err EINVAL err EINVAL " "al + l"
assert_eq "$(probe partial "$MNT/stacks/$WEB/enabled" tr ue | tr '\n' ' ')" "err EINVAL err EINVAL " "tr + ue"
assert_eq "$(ls "$MNT/jobs")" "" "no job was queued by any bad write"

note "read-only files and directories: EACCES on open for writing, truncate or write"
for f in status status.json log metrics README "stacks/$WEB/state" "stacks/$WEB/path" "stacks/$WEB/last_backup"; do
	assert_eq "$(probe open "$MNT/$f" w)" "err EACCES" "open $f for writing"
	assert_eq "$(probe open "$MNT/$f" rw)" "err EACCES" "open $f read-write"
	assert_eq "$(probe truncate "$MNT/$f")" "err EACCES" "truncate $f"
done
set +e
out=$(echo 1 2>&1 >"$MNT/status")
set -e
assert_contains "$out" "Permission denied"
assert_eq "$(probe open "$MNT/trigger/backup" wt)" "ok 0" "O_TRUNC on a trigger is a no-op"
assert_eq "$(probe truncate "$MNT/trigger/backup")" "ok 0" "truncate of a trigger is a no-op"

note "bad selection changes: mkdir of unknown or invalid names, files, renames, deletions"
assert_eq "$(probe mkdir "$MNT/enabled/unknown")" "err ENOENT"
assert_contains "$(tail -1 "$MNT/log")" "mkdir enabled/unknown: no stack of that name"
assert_eq "$(probe mkdir "$MNT/disabled/unknown")" "err ENOENT"
assert_eq "$(probe mkdir "$MNT/enabled/../x")" "err EPERM" "mkdir enabled/../x"
assert_eq "$(probe mkdir "$MNT/enabled/bad name")" "err EINVAL"
assert_eq "$(probe mkdir "$MNT/enabled/.hidden")" "err EINVAL"
assert_eq "$(probe mkdir "$MNT/enabled/stackback")" "err EINVAL" "the reserved tag"
assert_eq "$(probe mkdir "$MNT/enabled/$(printf 'x%.0s' {1..129})")" "err EINVAL" "129-byte name"
assert_eq "$(probe mkdir "$MNT/stacks/new")" "err EPERM"
assert_eq "$(probe mkdir "$MNT/trigger/x")" "err EPERM"
assert_eq "$(probe mkdir "$MNT/disabled/$WEB")" "err EEXIST"
assert_eq "$(probe creat "$MNT/enabled/file")" "err EPERM"
assert_eq "$(probe creat "$MNT/trigger/new")" "err EPERM"
assert_eq "$(probe creat "$MNT/disabled/$WEB/file")" "err EPERM"
assert_eq "$(probe symlink /etc "$MNT/enabled/link")" "err EPERM"
assert_eq "$(probe unlink "$MNT/status")" "err EPERM"
assert_eq "$(probe unlink "$MNT/stacks/$WEB/enabled")" "err EPERM"
assert_eq "$(probe rmdir "$MNT/disabled/$WEB")" "err EPERM" "rmdir disabled/NAME never enables"
assert_contains "$(tail -1 "$MNT/log")" "rmdir disabled/$WEB: refused"
assert_eq "$(probe rmdir "$MNT/stacks/$WEB")" "err EPERM"
assert_eq "$(probe rmdir "$MNT/enabled/$WEB")" "err ENOENT"
assert_eq "$(probe rename "$MNT/disabled/$WEB" "$MNT/enabled/other")" "err EPERM" "rename to another name"
assert_contains "$(tail -1 "$MNT/log")" "a stack keeps its name"
assert_eq "$(probe rename "$MNT/disabled/$WEB" "$MNT/disabled/other")" "err EPERM"
assert_eq "$(probe rename "$MNT/disabled/$WEB" "$MNT/stacks/$WEB")" "err EPERM"
assert_eq "$(probe rename "$MNT/status" "$MNT/status2")" "err EPERM"
assert_eq "$(probe rename "$MNT/disabled/nope" "$MNT/enabled/nope")" "err ENOENT"
assert_eq "$(probe rename "$MNT/disabled/$WEB" "$T/outside")" "err EXDEV"
for v in maybe 2 ' ' $'\n' 'yes please' 10 -1; do
	assert_eq "$(probe write "$MNT/stacks/$WEB/enabled" "$v")" "err EINVAL" "enabled '$v'"
done
assert_contains "$(tail -1 "$MNT/log")" "is not 1, 0, true, false, yes or no"
assert_eq "$(probe write "$MNT/stacks/nope/enabled" 1 2>&1)" "err ENOENT"
assert_eq "$(sum)" "$before" "no bad write changed the dirlist"
assert_eq "$(ls "$MNT/enabled")" ""

note "mv disabled/NAME enabled/ enables, before mv returns"
mv "$MNT/disabled/$WEB" "$MNT/enabled/"
assert_eq "$(grep "^$WEB=" "$DIRLIST")" "$WEB=true"
assert_eq "$(ls "$MNT/enabled")" "$WEB"
assert_eq "$(ls "$MNT/disabled")" "$DB"
assert_eq "$(cat "$MNT/stacks/$WEB/enabled")" 1
assert_contains "$(tail -1 "$MNT/log")" "stack '$WEB' enabled"
head -1 "$DIRLIST" | grep -qx '# kept verbatim' || fail "the dirlist lost its comment: $(cat "$DIRLIST")"
grep -qx "$DB=false # db" "$DIRLIST" || fail "the dirlist lost the untouched line: $(cat "$DIRLIST")"
mv "$MNT/enabled/$WEB" "$MNT/disabled/"
assert_eq "$(grep "^$WEB=" "$DIRLIST")" "$WEB=false"
assert_eq "$(ls "$MNT/enabled")" ""

note "mkdir enabled/NAME, rmdir enabled/NAME, mkdir disabled/NAME"
mkdir "$MNT/enabled/$DB"
assert_eq "$(grep "^$DB=" "$DIRLIST")" "$DB=true # db"
assert_eq "$(probe mkdir "$MNT/enabled/$DB")" "err EEXIST"
rmdir "$MNT/enabled/$DB"
assert_eq "$(grep "^$DB=" "$DIRLIST")" "$DB=false # db"
mkdir "$MNT/enabled/$DB"
mkdir "$MNT/disabled/$DB"
assert_eq "$(grep "^$DB=" "$DIRLIST")" "$DB=false # db"

note "names the kernel keeps (a second) follow every toggle at once"
# Each name is looked up first, so the kernel holds it when the toggle comes.
[ -d "$MNT/disabled/$DB" ] || fail "disabled/$DB is missing"
mkdir "$MNT/enabled/$DB"
[ ! -e "$MNT/disabled/$DB" ] || fail "disabled/$DB still there after mkdir enabled/$DB"
[ -d "$MNT/enabled/$DB" ] || fail "enabled/$DB is missing after mkdir"
echo 0 >"$MNT/stacks/$DB/enabled"
[ ! -e "$MNT/enabled/$DB" ] || fail "enabled/$DB still there after writing 0 to stacks/$DB/enabled"
[ -d "$MNT/disabled/$DB" ] || fail "disabled/$DB is missing after writing 0 to stacks/$DB/enabled"

note "stacks/NAME/enabled takes 1/0/true/false/yes/no (any case, trailing newline)"
for v in 1 0 true false yes no TRUE No on off; do
	case "$v" in 1 | true | yes | TRUE | on) want=true ;; *) want=false ;; esac
	echo "$v" >"$MNT/stacks/$WEB/enabled"
	assert_eq "$(grep "^$WEB=" "$DIRLIST")" "$WEB=$want" "enabled '$v'"
	assert_eq "$(cat "$MNT/stacks/$WEB/enabled")" "$([ $want = true ] && echo 1 || echo 0)"
done
out=$(probe handshake "$MNT/stacks/$WEB/enabled" yes)
assert_eq "$out" "$(printf 'ok 3\n1')" "read-back on the same descriptor"

note "the CLI's edits show up in the mount at once, without a remount"
[ -d "$MNT/disabled/$DB" ] || fail "disabled/$DB is missing"
"$SB" -c "$CFG" enable "$DB" >/dev/null
assert_eq "$(cat "$MNT/stacks/$DB/enabled")" 1
# That read reloaded the selection, which makes the kernel forget what it kept.
[ ! -e "$MNT/disabled/$DB" ] || fail "disabled/$DB still there after the CLI enabled it"
assert_eq "$(ls "$MNT/enabled" | sort | tr '\n' ' ')" "$(printf '%s\n' "$DB" "$WEB" | sort | tr '\n' ' ')"
"$SB" -c "$CFG" disable "$DB" "$WEB" >/dev/null
assert_eq "$(ls "$MNT/enabled")" ""
assert_eq "$(ls "$MNT/disabled" | wc -l)" 2
# An edit in place (same inode, same size) is caught by the mtime; one by rename by the inode.
inplace() { python3 -c 'import sys; p, a, b = sys.argv[1:]; s = open(p).read(); open(p, "r+").write(s.replace(a, b))' "$DIRLIST" "$1" "$2"; }
ino=$(stat -c %i "$DIRLIST")
inplace "$WEB=false" "$WEB=true "
assert_eq "$(stat -c %i "$DIRLIST")" "$ino"
assert_eq "$(cat "$MNT/stacks/$WEB/enabled")" 1
inplace "$WEB=true " "$WEB=false"
assert_eq "$(cat "$MNT/stacks/$WEB/enabled")" 0
sed -i "s/^$WEB=false/$WEB=true/" "$DIRLIST"
assert_eq "$(cat "$MNT/stacks/$WEB/enabled")" 1
sed -i "s/^$WEB=true/$WEB=false/" "$DIRLIST"
assert_eq "$(cat "$MNT/stacks/$WEB/enabled")" 0

note "a new stack directory appears, disabled, and the daemon records it in the dirlist"
NEW="${P}new"
mkdir -p "$T/stacks/$NEW"
printf 'services:\n  app:\n    image: local/busybox:latest\n' >"$T/stacks/$NEW/docker-compose.yml"
assert_contains "$(ls "$MNT/stacks")" "$NEW"
assert_contains "$(ls "$MNT/disabled")" "$NEW"
assert_eq "$(grep "^$NEW=" "$DIRLIST")" "$NEW=false"
assert_eq "$(probe write "$MNT/trigger/backup" "$NEW dry-run")" "ok $((${#NEW} + 8))" "a trigger may name it"
rm -rf "${T:?}/stacks/$NEW"
sbfs_wait_idle 60
assert_eq "$(cat "$MNT/stacks/$NEW/state")" missing "a vanished stack stays listed as missing"

note "a garbage dirlist is refused with a log line; the last good selection stays"
cp "$DIRLIST" "$T/dirlist.good"
printf 'this is = not a dirlist line\n' >>"$DIRLIST"
assert_eq "$(cat "$MNT/stacks/$DB/enabled")" 0
assert_contains "$(cat "$MNT/log")" "stack selection not reloaded"
cp "$T/dirlist.good" "$DIRLIST"

sbfs_umount
note "ok"
