#!/bin/bash
# Hostile input (docs/reliability.md, SPEC §4, §5): stack directories whose
# names hold spaces, quotes, $(...), backquotes, newlines, a leading '-',
# 255 bytes or bytes that are not UTF-8; a stack that is a symlink out of
# DOCKER_STACKS_DIR; a compose file that is a FIFO; a password file others
# can read; a RESTIC_REPOSITORY that is no repository; snapshot references
# crafted to walk out of a directory. Each is refused or skipped with a
# clear message, nothing hangs, and nothing outside the one real stack is
# touched. Then a real backup through the mount, with /proc/*/cmdline,
# the logs, status, the journal and every file in STATE_DIR searched for
# the password while restic runs.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-fs.sh"
source "$(dirname "$0")/lib-cloud.sh"
need docker-compose restic mkfifo timeout

sb_write_config
sb_busybox_image
WEB="${P}web"
sb_make_stack "$WEB"
sb_stack_up "$WEB"
"$SB" -c "$CFG" init >/dev/null || fail "init"
PW=$(cat "$T/password")
# Every command runs from here: a name expanded by some shell would leave PWNED files.
mkdir -p "$T/cwd"
cd "$T/cwd"

# The hostile stack directories, each with a real compose file.
long=$(printf 'x%.0s' $(seq 255))
hostile=(
	"$P with space"
	"${P}q'uote"
	"${P}dq\"uote"
	"\$(touch PWNED)"
	"\`touch PWNED\`"
	"$(printf '%snew\nline' "$P")"
	"-${P}dash"
	"$long"
	"$(printf '%s\377\376' "$P")"
)
for name in "${hostile[@]}"; do
	mkdir -p "$T/stacks/$name/data"
	cp "$T/stacks/$WEB/docker-compose.yml" "$T/stacks/$name/docker-compose.yml"
	echo "not to be touched" >"$T/stacks/$name/data/keep"
done
# A symlink out of DOCKER_STACKS_DIR to a real stack directory elsewhere.
mkdir -p "$T/outside/data"
cp "$T/stacks/$WEB/docker-compose.yml" "$T/outside/docker-compose.yml"
echo "outside secret" >"$T/outside/data/secret.txt"
ln -s "$T/outside" "$T/stacks/${P}evil"
# A compose file that is a FIFO: opening it for reading would block for ever.
mkdir -p "$T/stacks/${P}fifo"
mkfifo "$T/stacks/${P}fifo/docker-compose.yml"
others_sum() {
	(cd "$T" && find outside stacks -path "stacks/$WEB" -prune -o -print0 | LC_ALL=C sort -z |
		xargs -0 stat -c '%n %s %Y %f' | sha256sum)
}
before_others=$(others_sum)

note "list and discover: only the real stack; every hostile directory reported with its reason"
out=$(timeout 60 "$SB" -c "$CFG" list 2>&1) || fail "list: $out"
assert_contains "$out" "$WEB"
assert_contains "$out" "symlink to '$T/outside', outside DOCKER_STACKS_DIR"
assert_contains "$out" "${P}fifo: no compose file"
assert_contains "$out" "longer than 128"
assert_contains "$out" "starts with '.' or '-'"
assert_contains "$out" "${P}new\\x0aline: stack name may only hold"
# One line each: the 9 hostile names, the symlink, the FIFO.
assert_eq "$(grep -c "skipped $T/stacks/" <<<"$out")" 11 "skipped directories"
names=$(timeout 60 "$SB" -c "$CFG" list --json | python3 -c 'import json,sys; print(" ".join(s["name"] for s in json.load(sys.stdin)))')
assert_eq "$names" "$WEB" "list --json"
timeout 60 "$SB" -c "$CFG" discover >/dev/null 2>&1 || fail "discover"
assert_eq "$(grep -v '^#' "$T/state/dirlist" | grep -c .)" 1 "dirlist lines after discover"
grep -qx "$WEB=false" "$T/state/dirlist" || fail "discover: $(cat "$T/state/dirlist")"
"$SB" -c "$CFG" enable "$WEB" >/dev/null
dirlist_sum=$(sha256sum <"$T/state/dirlist")

note "hostile names on the command line: refused, nothing written, nothing stopped"
for name in "${hostile[@]}" "${P}evil" "${P}fifo" "../outside" "$T/stacks/${P}evil" "$T/stacks/../outside"; do
	set +e
	out=$(timeout 60 "$SB" -c "$CFG" backup -- "$name" 2>&1)
	rc=$?
	set -e
	[ "$rc" = 1 ] || [ "$rc" = 2 ] || fail "backup '${name:0:40}' exited $rc: $out"
	[ -n "$out" ] || fail "backup '${name:0:40}' failed without a message"
	set +e
	timeout 60 "$SB" -c "$CFG" enable -- "$name" >/dev/null 2>&1
	rc=$?
	set -e
	assert_eq "$rc" 1 "enable '${name:0:40}'"
done
assert_eq "$(sha256sum <"$T/state/dirlist")" "$dirlist_sum" "dirlist after the refused names"
assert_eq "$(sb_stack_state "$WEB")" running "the real stack after the refusals"
assert_eq "$(sb_restic "$T/repo" snapshots --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" 0 \
	"snapshots after the refusals"

note "a backup of every enabled stack touches the real one only, and does not hang on the FIFO"
out=$(timeout 300 "$SB" -c "$CFG" backup 2>&1) || fail "backup: $out"
tags=$(sb_restic "$T/repo" snapshots --json | python3 -c 'import json,sys; print(sorted({t for s in json.load(sys.stdin) for t in s["tags"]}))')
assert_eq "$tags" "['stackback', '$WEB']" "tags in the repository"
sb_restic "$T/repo" ls latest | grep -q secret.txt && fail "the outside directory was backed up"
assert_eq "$(others_sum)" "$before_others" "hostile and outside directories"

note "a password file others can read: refused, the stack not stopped"
chmod 644 "$T/password"
set +e
out=$(timeout 60 "$SB" -c "$CFG" backup 2>&1)
rc=$?
set -e
assert_eq "$rc" 1 "backup with a 0644 password file ($out)"
assert_contains "$out" "$T/password"
assert_contains "$out" "readable"
assert_eq "$(sb_stack_state "$WEB")" running "stack after the refused password file"
[ -z "$(cat "$T/state/journal" 2>/dev/null)" ] || fail "journal: $(cat "$T/state/journal")"
chmod 600 "$T/password"

note "RESTIC_REPOSITORY that is no repository: a clear failure, the directory untouched"
mkdir -p "$T/notrepo/sub"
echo "precious" >"$T/notrepo/file"
echo "more" >"$T/notrepo/sub/file"
notrepo_sum=$(sb_tree_sum "$T/notrepo")
sed -e "s|^RESTIC_REPOSITORY=.*|RESTIC_REPOSITORY=$T/notrepo|" "$CFG" >"$T/notrepo.ini"
chmod 600 "$T/notrepo.ini"
for cmd in backup check snapshots; do
	set +e
	out=$(timeout 120 "$SB" -c "$T/notrepo.ini" $cmd 2>&1)
	rc=$?
	set -e
	assert_eq "$rc" 1 "$cmd on a non-repository ($out)"
	assert_contains "$out" "$T/notrepo"
done
set +e
out=$(timeout 120 "$SB" -c "$T/notrepo.ini" sync 2>&1)
rc=$?
set -e
assert_eq "$rc" 1 "sync of a non-repository ($out)"
[ ! -e "$T/cloud" ] || [ -z "$(ls -A "$T/cloud")" ] || fail "a sync of a non-repository wrote to the remote"
assert_eq "$(sb_tree_sum "$T/notrepo")" "$notrepo_sum" "the non-repository directory"
assert_eq "$(sb_stack_state "$WEB")" running "stack after the non-repository"

note "snapshot references crafted to walk out: refused by the CLI"
for ref in "../../x" "/etc/passwd" "cloud:../../x" "latest/../.." ".." "." "latest/x" "$(printf 'a\nb')" ""; do
	set +e
	out=$(timeout 60 "$SB" -c "$CFG" restore-stack "$WEB" "$ref" 2>&1)
	rc=$?
	set -e
	[ "$rc" = 1 ] || [ "$rc" = 2 ] || fail "restore-stack '$ref' exited $rc: $out"
done
for path in "../../../../etc/passwd" "data/../../../etc" "/../../etc/passwd"; do
	set +e
	out=$(timeout 60 "$SB" -c "$CFG" get --to "$T/got" "$WEB" "$path" 2>&1)
	rc=$?
	set -e
	[ "$rc" != 0 ] || [ -z "$(find "$T/got" -name passwd 2>/dev/null)" ] || fail "get '$path' copied /etc/passwd"
done
assert_eq "$(sb_stack_state "$WEB")" running

note "through the mount: hostile writes are EINVAL, the tree holds the real stack only"
sbfs_mount
assert_eq "$(ls "$MNT/stacks")" "$WEB" "stacks/"
for payload in "\$(touch PWNED)" "../../x" "$WEB ../x" "$(printf '%s\377' "$WEB")" "-rf" "$long"; do
	assert_eq "$(probe write "$MNT/trigger/backup" "$payload")" "err EINVAL" "trigger/backup '${payload:0:30}'"
done
for ref in "../../x" "/etc/passwd" "cloud:../../x" "latest/../.." ".." "$(printf 'latest\nlatest')"; do
	assert_eq "$(probe write "$MNT/stacks/$WEB/restore" "$ref")" "err EINVAL" "stacks/$WEB/restore '$ref'"
done
for name in "\$(touch PWNED)" "${P}evil" "${P}fifo" "-rf"; do
	r=$(probe mkdir "$MNT/enabled/$name")
	case "$r" in "err EINVAL" | "err ENOENT" | "err EPERM") ;; *) fail "mkdir enabled/$name: $r" ;; esac
done
# The kernel resolves '..' itself: the walk ends outside the mount, never inside the daemon.
assert_eq "$(ls -a "$MNT/snapshots/$WEB/../../.." | sort)" "$(ls -a "$T" | sort)" "snapshots/$WEB/../../.."
assert_eq "$(probe open "$MNT/snapshots/$WEB/..%2f..%2fstatus" r)" "err ENOENT" "an escaped name"
assert_eq "$(sha256sum <"$T/state/dirlist")" "$dirlist_sum" "dirlist after the hostile writes"

note "secrets: never in any /proc/*/cmdline, the logs, status or STATE_DIR while a backup runs"
head -c $((300 << 20)) /dev/urandom >"$T/stacks/$WEB/data/big.bin"
# The loop below forks for every pid and may step over a short restic run:
# a tight watcher of its own proves restic ran while we looked, and keeps
# the command line it saw, which is searched too.
(
	until pgrep -af "^restic backup .*$WEB" >"$T/restic-argv.tmp"; do sleep 0.05; done
	mv "$T/restic-argv.tmp" "$T/restic-argv"
) &
watcher=$!
on_exit "kill $watcher"
id=$(sbfs_trigger backup "$WEB")
cmdline_hits=0
for _ in $(seq 400); do
	for f in /proc/[0-9]*/cmdline; do
		if { tr '\0' ' ' <"$f"; } 2>/dev/null | grep -qF -- "$PW"; then
			cmdline_hits=$((cmdline_hits + 1))
			echo "password in $f: $(tr '\0' ' ' <"$f")" >&2
		fi
	done
	for f in status status.json log "jobs/$id/log" "jobs/$id/progress" "jobs/$id/report"; do
		grep -qF -- "$PW" "$MNT/$f" 2>/dev/null && fail "password in $MNT/$f"
	done
	grep -rqF -- "$PW" "$T/state" && fail "password in STATE_DIR: $(grep -rlF -- "$PW" "$T/state")"
	state=$(cat "$MNT/jobs/$id/state")
	case "$state" in ok | failed | cancelled) break ;; esac
done
assert_eq "$state" ok "the backup under watch"
sb_wait_file "$T/restic-argv" 10
grep -qF -- "$PW" "$T/restic-argv" && fail "password in restic's command line: $(cat "$T/restic-argv")"
assert_eq "$cmdline_hits" 0 "command lines holding the password"
st=$("$SB" -c "$CFG" status 2>&1)
assert_not_contains "$st" "$PW"
assert_not_contains "$(cat "$T/sbfs.out")" "$PW"
grep -rqF -- "$PW" "$T/state" && fail "password in STATE_DIR after the backup"
sbfs_umount

note "nothing was run through a shell"
[ -z "$(find "$T" /tmp -maxdepth 4 -name 'PWNED*' 2>/dev/null)" ] || fail "a hostile name ran: $(find "$T" /tmp -maxdepth 4 -name 'PWNED*')"
assert_eq "$(others_sum)" "$before_others" "hostile and outside directories at the end"
note ok
