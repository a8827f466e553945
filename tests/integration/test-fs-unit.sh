#!/bin/bash
# What ships with stackbackfs besides the program: the systemd unit passes
# `systemd-analyze verify` (with ExecStart pointed at the built binary and
# the man page it names on MANPATH), the man page renders without groff
# warnings, and the control filesystem reference names every path the
# README of a real mount lists.
source "$(dirname "$0")/lib.sh"
need systemd-analyze groff fusermount3

unit="$SB_BUILD/systemd/stackbackfs.service"
[ -f "$unit" ] || fail "the unit was not configured at $unit"
mkdir -p "$T/man/man8"
cp "$SB_SRC/docs/stackbackfs.8" "$T/man/man8/"
sed "s#^ExecStart=[^ ]*#ExecStart=$SBFS#" "$unit" >"$T/stackbackfs.service"
grep -q "^ExecStart=$SBFS -f$" "$T/stackbackfs.service" || fail "no ExecStart in the unit"
grep -q '^ExecStop=.*fusermount3 -u ${MOUNTPOINT}$' "$unit" || fail "the unit does not unmount on stop"
grep -q '^KillMode=mixed$' "$unit" || fail "the unit would SIGTERM the job's children"
out=$(MANPATH="$T/man" systemd-analyze verify "$T/stackbackfs.service" 2>&1) ||
	fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify warns: $out"

warnings=$(groff -man -Tutf8 -ww -z "$SB_SRC/docs/stackbackfs.8" 2>&1)
[ -z "$warnings" ] || fail "groff warns about stackbackfs.8: $warnings"

note "the reference documents every path of a real mount's README"
sb_write_config
MNT="$T/mnt"
mkdir -p "$MNT"
"$SBFS" -c "$CFG" "$MNT" >"$T/sbfs.out" 2>&1 || fail "mount: $(cat "$T/sbfs.out")"
on_exit "fusermount3 -u -z '$MNT'"
paths=$(awk 'NR > 11 && NF { print $1 }' "$MNT/README")
fusermount3 -u "$MNT"
[ -n "$paths" ] || fail "the README lists no paths"
doc=$(cat "$SB_SRC/docs/control-filesystem.md")
for p in $paths; do
	assert_contains "$doc" "\`$p\`" "docs/control-filesystem.md"
done
note "ok"
