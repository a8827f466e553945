#!/bin/bash
# Stack discovery and selection through the CLI (SPEC §4): list, enable,
# disable, discover on a real temp tree; the dirlist keeps the user's
# lines; hostile names and garbage are refused with nothing written;
# concurrent CLI writers do not lose each other's changes.
source "$(dirname "$0")/lib.sh"
need python3 sha256sum

sb_write_config
DL="$T/state/dirlist"

sb() { "$SB" -c "$CFG" "$@"; }
# Runs sb, keeping stdout in $OUT, stderr in $ERR, the exit code in $RC.
run() {
	set +e
	sb "$@" >"$T/out" 2>"$T/err"
	RC=$?
	set -e
	OUT=$(cat "$T/out")
	ERR=$(cat "$T/err")
}
sum() { sha256sum "$DL" | cut -d' ' -f1; }
# json_get EXPR: evaluates a python expression over the list --json array `d`.
json_get() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)" <<<"$OUT"; }

mk() { # mk DIR COMPOSE-FILE-NAME
	mkdir -p "$1"
	printf 'services:\n  app:\n    image: local/busybox:latest\n    network_mode: none\n' >"$1/$2"
}

WEB="${P}web"
DB="${P}db"
mk "$T/stacks/$WEB" compose.yaml
mk "$T/stacks/$DB" docker-compose.yml
mk "$T/stacks/.hidden" compose.yaml
mk "$T/stacks/bad name" compose.yaml
mkdir -p "$T/stacks/not-a-stack"
mk "$T/outside/${P}evil" compose.yaml
ln -s "$T/outside/${P}evil" "$T/stacks/${P}escape"

note "list without a dirlist: new stacks, skipped dirs reported, nothing written"
run list
assert_eq "$RC" 0 "list exit"
assert_contains "$OUT" "NAME"
assert_contains "$(grep "^$DB " <<<"$OUT")" "NEW"
assert_contains "$ERR" "skipped $T/stacks/bad name: stack name may only hold"
assert_contains "$ERR" "skipped $T/stacks/not-a-stack: no compose file"
assert_contains "$ERR" "skipped $T/stacks/${P}escape: symlink to '$T/outside/${P}evil', outside DOCKER_STACKS_DIR"
assert_not_contains "$ERR" ".hidden"
[ ! -e "$DL" ] || fail "list wrote the dirlist"

note "list --json against the real engine"
run list --json
assert_eq "$RC" 0 "list --json exit"
assert_eq "$(json_get 'len(d)')" 2
assert_eq "$(json_get '[s["name"] for s in d]')" "['$DB', '$WEB']"
assert_eq "$(json_get 'set(s["origin"] for s in d)')" "{'new'}"
assert_eq "$(json_get 'any(s["enabled"] for s in d)')" False
# With an engine (this machine, CI) docker answers; without one the state is unknown.
if docker info >/dev/null 2>&1; then want=stopped; else want=unknown; fi
assert_eq "$(json_get 'set(s["state"] for s in d)')" "{'$want'}"
assert_eq "$(json_get 'd[1]["path"]')" "$T/stacks/$WEB"
assert_eq "$(json_get 'd[1]["external"], d[1]["conflict"]')" "False None"

note "discover: dry run writes nothing, then new stacks appended disabled after the user's lines"
run discover --dry-run
assert_eq "$RC" 0
assert_contains "$OUT" "would add $DB (disabled)"
[ ! -e "$DL" ] || fail "discover --dry-run wrote the dirlist"
printf '# my stacks, my comments\n%s = true   # the site\n\n# end of my part\n' "$WEB" >"$DL"
chmod 640 "$DL"
run discover
assert_eq "$RC" 0
assert_contains "$OUT" "added $DB (disabled)"
assert_eq "$(cat "$DL")" "# my stacks, my comments
$WEB = true   # the site

# end of my part
$DB=false"
assert_eq "$(stat -c %a "$DL")" 640 "dirlist mode kept"
run discover
assert_contains "$OUT" "the dirlist is up to date"

note "enable / disable change only their line's value"
run enable "$DB"
assert_eq "$RC" 0
assert_eq "$OUT" "enabled $DB"
run disable "$WEB" --dry-run
assert_eq "$OUT" "would disable $WEB"
assert_contains "$(cat "$DL")" "$WEB = true   # the site"
run disable "$WEB"
assert_eq "$(cat "$DL")" "# my stacks, my comments
$WEB = false   # the site

# end of my part
$DB=true"
run disable "$WEB"
assert_eq "$OUT" "$WEB: already disabled"
run list --json
assert_eq "$(json_get '[(s["name"], s["enabled"], s["origin"]) for s in d]')" \
	"[('$WEB', False, 'listed'), ('$DB', True, 'listed')]"

note "unknown and hostile names: exit 1 naming them, nothing written"
before=$(sum)
long=$(printf 'a%.0s' $(seq 4096))
for bad in nope "../etc" "a/b" "$(printf 'a\nb')" "$long" ".." "-rf" "stackback" ""; do
	run enable -- "$DB" "$bad"
	assert_eq "$RC" 1 "enable '${bad:0:20}'"
	assert_eq "$(sum)" "$before" "dirlist changed by enable '${bad:0:20}'"
done
run enable nope "../etc"
assert_contains "$ERR" "no such stack 'nope'"
assert_contains "$ERR" "'../etc': stack name starts with '.' or '-'"
run disable "$long"
assert_contains "$ERR" "longer than 128"
run enable "$(printf 'a\nb')"
assert_contains "$ERR" "'a\\x0ab'"
run enable "$T/outside/${P}evil/../${P}evil"
assert_eq "$RC" 1
assert_contains "$ERR" "not canonical"
assert_eq "$(sum)" "$before"

note "usage errors exit 2; --help exits 0"
for args in "enable" "disable" "list extra" "list --bogus" "discover --bogus" "discover extra" "enable --glob"; do
	# shellcheck disable=SC2086
	run $args
	assert_eq "$RC" 2 "'$args'"
done
for cmd in list enable disable discover; do
	run "$cmd" --help
	assert_eq "$RC" 0 "$cmd --help"
	assert_contains "$OUT" "usage: stackback [-c CONFIG] $cmd"
done
assert_eq "$(sum)" "$before"

note "--glob and --all"
run enable --glob "${P}nomatch*"
assert_eq "$RC" 1
assert_contains "$ERR" "no stack matches '${P}nomatch*'"
run enable --glob "${P}w*"
assert_eq "$RC" 0
assert_eq "$OUT" "enabled $WEB"
run disable --all --dry-run
assert_eq "$RC" 0
assert_eq "$OUT" "would disable $WEB
would disable $DB"
run disable --all
assert_contains "$(cat "$DL")" "$DB=false"

note "external stacks by absolute path"
EXT="$T/ext/${P}app"
mk "$EXT" docker-compose.yml
mkdir -p "$T/ext/${P}empty"
run enable "$EXT/"
assert_eq "$RC" 0
assert_contains "$OUT" "external stack '${P}app'"
assert_eq "$(tail -n1 "$DL")" "$EXT=true"
run enable "$T/ext/${P}empty"
assert_eq "$RC" 1
assert_contains "$ERR" "holds no compose file"
run enable relative/path
assert_eq "$RC" 1
run list --json
assert_eq "$(json_get '[(s["name"], s["external"], s["origin"], s["path"]) for s in d if s["external"]]')" \
	"[('${P}app', True, 'listed', '$EXT')]"
run disable "${P}app"
assert_eq "$OUT" "disabled ${P}app"
assert_eq "$(tail -n1 "$DL")" "$EXT=false"

note "vanished stacks stay listed as missing until discover --prune"
rm -rf "$T/stacks/$DB"
run list --json
assert_eq "$(json_get '[(s["origin"], s["state"]) for s in d if s["name"] == "'"$DB"'"]')" "[('missing', 'missing')]"
run list
assert_contains "$(grep "^$DB " <<<"$OUT")" "MISSING"
run discover
assert_contains "$OUT" "missing $DB ($T/stacks/$DB): kept until 'stackback discover --prune'"
assert_contains "$(cat "$DL")" "$DB=false"
run discover --prune --dry-run
assert_contains "$OUT" "would prune $DB"
assert_contains "$(cat "$DL")" "$DB=false"
run discover --prune
assert_contains "$OUT" "pruned $DB"
assert_eq "$(cat "$DL")" "# my stacks, my comments
$WEB = false   # the site

# end of my part
$EXT=false"

note "compose project-name clashes are reported and left alone"
mk "$T/stacks/${P}WEB" compose.yaml
mk "$T/stacks/${P}w.eb" compose.yml
run list
assert_eq "$RC" 0
assert_contains "$(grep "^${P}WEB " <<<"$OUT")" "CONFLICT"
assert_contains "$(grep "^$WEB " <<<"$OUT")" "CONFLICT"
assert_contains "$ERR" "have the same compose project name '$WEB'"
run list --json
assert_eq "$(json_get 'sorted(s["name"] for s in d if s["conflict"])')" "['${P}WEB', '${P}w.eb', '$WEB']"
assert_eq "$(json_get 'set(s["state"] for s in d if s["conflict"])')" "{'unknown'}"
run enable --all
assert_eq "$RC" 0
assert_contains "$ERR" "leaving stack '${P}WEB' out of --all"
assert_not_contains "$(cat "$DL")" "${P}WEB"
rm -rf "$T/stacks/${P}WEB" "$T/stacks/${P}w.eb"

note "docker failing leaves the state unknown, list still works"
set +e
OUT=$(COMPOSE_CMD=false "$SB" -c "$CFG" list --json 2>"$T/err")
RC=$?
set -e
assert_eq "$RC" 0
assert_eq "$(json_get 'set(s["state"] for s in d)')" "{'unknown'}"
assert_contains "$(cat "$T/err")" "stack states unknown"

note "a garbage dirlist: exit 1 with FILE:LINE, the file unchanged"
printf 'what is this\n' >>"$DL"
before=$(sum)
lines=$(wc -l <"$DL")
for args in "list" "list --json" "enable $WEB" "disable $WEB" "discover" "discover --prune"; do
	# shellcheck disable=SC2086
	run $args
	assert_eq "$RC" 1 "'$args' on a garbage dirlist"
	assert_contains "$ERR" "$DL:$lines: error: expected NAME=true|false"
	assert_eq "$(sum)" "$before" "'$args' changed a garbage dirlist"
done
printf '%s=maybe\n' "$WEB" >"$DL"
run list
assert_eq "$RC" 1
assert_contains "$ERR" "$DL:1: error: invalid value 'maybe' for stack '$WEB' (expected true or false)"

note "the original tool's dirlist loads unchanged"
cp "$SB_SRC/tests/data/docker-compose-backup/dirlist" "$DL"
mk "$T/stacks/test-stack" docker-compose.yml
run list --json
assert_eq "$RC" 0
assert_eq "$(json_get '[(s["name"], s["enabled"], s["origin"]) for s in d if s["name"] == "test-stack"]')" \
	"[('test-stack', False, 'listed')]"
run enable test-stack
assert_eq "$(cat "$DL")" "$(sed 's/^test-stack=false$/test-stack=true/' "$SB_SRC/tests/data/docker-compose-backup/dirlist")"

note "concurrent CLI writers keep every line and every last value"
rm -rf "$T/stacks"/*
names=()
printf '# concurrent\n' >"$DL"
for i in $(seq 1 8); do
	mk "$T/stacks/${P}c$i" compose.yaml
	printf '%s=false # c%s\n' "${P}c$i" "$i" >>"$DL"
	names+=("${P}c$i")
done
pids=()
for n in "${names[@]}"; do
	(
		for _ in $(seq 1 10); do
			"$SB" -c "$CFG" enable "$n" >/dev/null
			"$SB" -c "$CFG" disable "$n" >/dev/null
		done
		"$SB" -c "$CFG" enable "$n" >/dev/null
	) &
	pids+=($!)
done
for p in "${pids[@]}"; do
	wait "$p" || fail "a concurrent writer failed"
done
run list --json
assert_eq "$RC" 0
assert_eq "$(json_get 'all(s["enabled"] and s["origin"] == "listed" for s in d), len(d)')" "True 8"
assert_eq "$(head -n1 "$DL")" "# concurrent"
for i in $(seq 1 8); do
	grep -qx "${P}c$i=true # c$i" "$DL" || fail "line of ${P}c$i lost: $(cat "$DL")"
done
assert_eq "$(wc -l <"$DL")" 9
[ -z "$(find "$T/state" -name 'dirlist.tmp.*')" ] || fail "temp files left behind"

echo "OK"
