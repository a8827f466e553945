#!/bin/bash
# `meson install --destdir` puts every file where it belongs (SPEC §6):
# the three programs, the man pages (lint-free, stackback(1) covering
# every command and option of the command table), the generated
# stackback.conf(5) and bash completion (which completes commands,
# options and stack names), and the systemd units, which
# `systemd-analyze verify` accepts; the nightly unit's command runs Stage
# 2 after a failed Stage 1, skips it without a remote, and fails the unit
# when a stage failed. Nothing lands outside the prefix.
source "$(dirname "$0")/lib.sh"
need meson python3 groff man systemd-analyze restic rclone

D="$T/dest"
meson install -C "$SB_BUILD" --destdir "$D" --no-rebuild >"$T/install.log" 2>&1 ||
	fail "meson install failed: $(tail -20 "$T/install.log")"

# The directories meson was configured with.
opt() {
	meson introspect "$SB_BUILD" --buildoptions |
		python3 -c "import json,sys; print(next(o['value'] for o in json.load(sys.stdin) if o['name']=='$1'))"
}
prefix=$(opt prefix)
under() { case $1 in /*) echo "$1" ;; *) echo "$prefix/$1" ;; esac; }
bindir=$(under "$(opt bindir)")
sbindir=$(under "$(opt sbindir)")
mandir=$(under "$(opt mandir)")
datadir=$(under "$(opt datadir)")
unitdir="$prefix/lib/systemd/system"

note "every file where it belongs"
want=(
	"$bindir/stackback" "$bindir/stackback-tui" "$sbindir/stackbackfs"
	"$mandir/man1/stackback.1" "$mandir/man5/stackback.conf.5" "$mandir/man8/stackbackfs.8"
	"$datadir/bash-completion/completions/stackback"
	"$unitdir/stackbackfs.service" "$unitdir/stackback-backup.service" "$unitdir/stackback-backup.timer"
)
# Every man page the source tree holds is installed in its section.
for page in "$SB_SRC"/docs/*.[1-8]; do
	want+=("$mandir/man${page##*.}/$(basename "$page")")
done
for f in "${want[@]}"; do
	[ -f "$D$f" ] || fail "$f is not installed (installed: $(cd "$D" && find . -type f | sort | tr '\n' ' '))"
done
for f in "$bindir/stackback" "$bindir/stackback-tui" "$sbindir/stackbackfs"; do
	[ -x "$D$f" ] || fail "$f is not executable"
done
outside=$(cd "$D" && find . -type f ! -path ".$prefix/*")
[ -z "$outside" ] || fail "installed outside $prefix: $outside"
assert_contains "$("$D$bindir/stackback" --version)" "stackback "

note "man pages render without a warning"
for page in "$D$mandir"/man*/*; do
	out=$(LC_ALL=C.UTF-8 groff -man -t -ww -z "$page" 2>&1)
	[ -z "$out" ] || fail "groff warns about $page: $out"
	MANWIDTH=80 man -l "$page" >/dev/null 2>"$T/man.err" || fail "man cannot show $page: $(cat "$T/man.err")"
done
conf5=$(MANWIDTH=200 man -l "$D$mandir/man5/stackback.conf.5" 2>/dev/null)
for key in DOCKER_STACKS_DIR RESTIC_REPOSITORY NOTIFY_COMMAND HEALTHCHECK_URL SYSLOG_SOCKET MIN_DISK_SPACE_MB; do
	assert_contains "$conf5" "$key" "stackback.conf(5)"
done

note "stackback(1) covers every command and option of the command table"
page1=$(MANWIDTH=200 man -l "$D$mandir/man1/stackback.1" 2>/dev/null)
commands=$("$SB" --help | sed -n '/^commands:/,/^$/p' | awk 'NR > 1 && NF { print $1 }')
[ -n "$commands" ] || fail "no commands in stackback --help"
for c in $commands; do
	# roff writes a hyphen in a name as \-
	re=${c//-/\\\\?-}
	grep -qE "^\.BR? $re( |$)" "$SB_SRC/docs/stackback.1" || fail "stackback(1) has no entry for '$c'"
	usage=$("$SB" "$c" --help | sed -n 1p)
	for o in $(grep -oE -- '(^|[ [|])--?[a-zA-Z][a-z-]*' <<<"$usage" | tr -d ' [|'); do
		assert_contains "$page1" "$o" "stackback(1) on '$c'"
	done
done

note "the bash completion completes commands, options, values and stack names"
sb_write_config
mkdir -p "$T/stacks/alpha" "$T/stacks/beta"
touch "$T/stacks/alpha/compose.yaml" "$T/stacks/beta/docker-compose.yml"
bash -n "$D$datadir/bash-completion/completions/stackback" || fail "the completion script has a syntax error"
complete_line() {
	PATH="$D$bindir:$PATH" bash -c '
		source "$1"; shift
		COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
		_stackback
		echo "${COMPREPLY[*]}"' _ "$D$datadir/bash-completion/completions/stackback" "$@"
}
assert_contains "$(complete_line stackback '')" "backup"
assert_contains "$(complete_line stackback '')" "doctor"
assert_eq "$(complete_line stackback ba)" "backup"
assert_eq "$(complete_line stackback backup --)" "--dry-run --json --wait-lock"
assert_eq "$(complete_line stackback -c "$CFG" backup '')" "alpha beta"
assert_eq "$(complete_line stackback config '')" "check show init keys"
assert_eq "$(complete_line stackback config show --)" "--json"
assert_eq "$(complete_line stackback --log-level d)" "debug"
assert_eq "$(complete_line stackback restore --to "$T/stac")" "$T/stacks"
assert_eq "$(complete_line stackback metrics --te)" "--textfile"
assert_eq "$(complete_line stackback nosuchcommand '')" ""

note "systemd-analyze verify accepts the units"
# The units name binaries under the prefix; here they live under DESTDIR.
mkdir "$T/units"
for u in stackbackfs.service stackback-backup.service stackback-backup.timer; do
	sed "s|$prefix/|$D$prefix/|g" "$D$unitdir/$u" >"$T/units/$u"
done
out=$(cd "$T/units" && MANPATH="$D$mandir" systemd-analyze verify "$T"/units/* 2>&1) ||
	fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify warns: $out"
timer=$(cat "$D$unitdir/stackback-backup.timer")
assert_contains "$timer" "Persistent=true"
assert_contains "$timer" "OnCalendar="
assert_contains "$timer" "WantedBy=timers.target"

note "the nightly unit's command, as systemd runs it"
# systemd joins the continued lines, takes the quoted word whole and turns $$ into $.
script=$(sed -n '/^ExecStart=/,/[^\\]$/p' "$T/units/stackback-backup.service" |
	sed 's/\\$//' | tr -d '\n' | sed "s/^ExecStart=\/bin\/sh -c '//; s/'\$//; s/\\\$\\\$/\$/g")
[ -n "$script" ] || fail "no ExecStart in stackback-backup.service"
"$SB" -c "$CFG" init >/dev/null
# No stack is enabled: Stage 1 fails; Stage 2 still runs, and the unit fails.
set +e
STACKBACK_CONFIG=$CFG sh -c "$script" >"$T/unit.out" 2>&1
rc=$?
set -e
assert_eq "$rc" 1 "the unit's command with a failing Stage 1 ($(cat "$T/unit.out"))"
assert_eq "$(cat "$T/state/jobs/1/state")" "failed"
assert_eq "$(cat "$T/state/jobs/2/state")" "ok"
assert_contains "$(cat "$T/state/jobs/2/report.json")" '"kind":"sync"'
# Without a remote, Stage 2 is not attempted.
set +e
RCLONE_REMOTE= STACKBACK_CONFIG=$CFG sh -c "$script" >"$T/unit.out" 2>&1
rc=$?
set -e
assert_eq "$rc" 1
assert_eq "$(cat "$T/state/jobs/3/state")" "failed"
[ -e "$T/state/jobs/4" ] && fail "Stage 2 ran without a remote"

echo "ok"
