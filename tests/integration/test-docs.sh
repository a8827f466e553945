#!/bin/bash
# Every command shown in README.md and docs/*.md works (the convention is
# docs/CONTRIBUTING-docs.md): each fenced block is classified by its info
# string, and
#   ```sh [mounted|unmounted|unconfigured]  runs in docs-sandbox.sh, a private
#                        mount namespace that looks like a machine with
#                        stackback installed (mounted: the default);
#   ```sh demo           is the quick start: test-demo.sh runs it; here it
#                        must be scripts/demo.sh and nothing else;
#   ```sh ci             is the test command: it must be exactly what .ci/run
#                        executes (running it here would run this test again);
#   ```sh-systemd        needs a real systemd (these machines have none): each
#                        unit it names must exist, and `systemd-analyze verify`
#                        must accept it as `meson install` installs it;
#   ```text, ```ini, ```json, ```python, ```c, ```yaml  are not commands.
# A block without an info string, or another one, fails: a command must
# never escape the test by a missing or misspelt marker.
#
# The blocks of one file run in order, in one copy of the source tree, so
# the README's build block leaves the build its install block installs.
# Every sandbox starts fresh otherwise. All failures are listed at the end.
source "$(dirname "$0")/lib.sh"
need unshare python3 systemd-analyze fusermount3 docker dockerd restic rclone meson

blocks() { python3 "$SB_SRC/tests/integration/docblocks.py" "$@"; }
docs=("$SB_SRC/README.md" "$SB_SRC"/docs/*.md)
# SB_DOCS_ONLY="README.md docs/tui.md" checks just those (while writing them).
if [ -n "${SB_DOCS_ONLY:-}" ]; then
	docs=()
	for d in $SB_DOCS_ONLY; do docs+=("$SB_SRC/$d"); done
fi

# The sandbox's stacks carry the names a reader expects (web, db), and
# compose project names are global to an engine: the blocks get a Docker
# engine of their own, so they can never touch someone else's "web". The
# stacks never run, so it needs no network, no image and no overlay.
note "a private Docker engine for the blocks"
mkdir "$T/engine"
dockerd --data-root "$T/engine/data" --exec-root "$T/engine/exec" --pidfile "$T/engine/pid" \
	-H "unix://$T/engine/sock" --bridge none --iptables=false --ip6tables=false \
	--storage-driver vfs >"$T/engine/log" 2>&1 &
engine_pid=$!
# (In a subshell: the clean-up loop of lib.sh has its own i.)
on_exit "kill $engine_pid; (for n in \$(seq 100); do kill -0 $engine_pid || break; sleep 0.1; done)"
export DOCKER_HOST="unix://$T/engine/sock"
for ((i = 0; i < 100; i++)); do
	docker info >/dev/null 2>&1 && break
	kill -0 "$engine_pid" 2>/dev/null || fail "the private dockerd exited: $(tail -5 "$T/engine/log")"
	sleep 0.2
done
docker info >/dev/null 2>&1 || fail "the private dockerd did not answer within 20 s: $(tail -5 "$T/engine/log")"

note "a copy of the source tree, without build directories"
src="$T/src"
mkdir "$src"
(
	cd "$SB_SRC"
	for e in * .ci; do
		[ -e "$e" ] || continue
		[ -d "$e/meson-private" ] && continue
		cp -a "$e" "$src/"
	done
)

note "the configured machine the blocks start from"
export DOCS_CONFIGURED="$T/configured.tar"
unshare -m --propagation private bash "$SB_SRC/tests/integration/docs-sandbox.sh" \
	prepare "$DOCS_CONFIGURED" "$T/sandbox" "$src" >"$T/out" 2>&1 ||
	fail "the docs sandbox could not be prepared: $(cat "$T/out")"

failures=()
failed() {
	failures+=("$1")
	echo "FAILED: $1" >&2
}

n_run=0
# run_block FILE LINE MODE: one block in its own sandbox.
run_block() {
	local file=$1 line=$2 mode=$3 rel=${1#"$SB_SRC"/}
	local body="$T/block-$n_run.sh"
	n_run=$((n_run + 1))
	blocks body "$file" "$line" >"$body"
	note "$rel:$line (sh $mode)"
	sed 's/^/    /' "$body"
	local t0=$SECONDS
	set +e
	unshare -m --propagation private bash "$SB_SRC/tests/integration/docs-sandbox.sh" \
		"$mode" "$body" "$T/sandbox" "$src" >"$T/out" 2>&1
	local rc=$?
	set -e
	echo "    ($((SECONDS - t0)) s)"
	if [ "$rc" != 0 ]; then
		failed "$rel:$line: the block failed (exit $rc); its output ends with:
$(tail -25 "$T/out")"
	fi
}

# check_ci FILE LINE: the block is the command .ci/run executes.
check_ci() {
	local want got rel=${1#"$SB_SRC"/}
	want=$(sed -n 's/^exec //p' "$SB_SRC/.ci/run")
	got=$(blocks body "$1" "$2" | sed 's/#.*//; s/[[:space:]]*$//' | grep .)
	[ -n "$want" ] || fail ".ci/run has no 'exec' line"
	[ "$got" = "$want" ] || failed "$rel:$2: a 'sh ci' block must be exactly .ci/run's command '$want', not: $got"
}

# check_demo FILE LINE: the quick start, run by test-demo.sh.
check_demo() {
	local rel=${1#"$SB_SRC"/} l
	while read -r l; do
		case $l in
		"scripts/demo.sh" | "scripts/demo.sh "*) ;;
		*) failed "$rel:$2: a 'sh demo' block holds only scripts/demo.sh commands (test-demo.sh runs them), not: $l" ;;
		esac
	done < <(blocks body "$1" "$2" | sed 's/[[:space:]]*#.*//' | grep .)
}

# check_text FILE LINE: output shows no command (a command belongs in a
# block that runs): no "$ " prompt, no line starting with a program of ours.
check_text() {
	local rel=${1#"$SB_SRC"/} cmd
	cmd=$(blocks body "$1" "$2" | grep -m1 -E '^(\$ |stackback(fs|-tui)? )' || true)
	[ -z "$cmd" ] || failed "$rel:$2: a \`\`\`text block shows a command ('$cmd'): put commands in an \`\`\`sh block, so they run, and their output in \`\`\`text"
}

# The units as `meson install` puts them, in a namespace of their own.
verify_units() {
	local rel=${1#"$SB_SRC"/} units=() u
	while read -r u; do
		units+=("$u")
	done < <(blocks body "$1" "$2" | grep -oE '[A-Za-z0-9@_.-]+\.(service|timer|socket|path|mount)\b' | sort -u)
	if [ "${#units[@]}" = 0 ]; then
		failed "$rel:$2: an 'sh-systemd' block names no unit"
		return
	fi
	note "$rel:$2 (sh-systemd): systemd-analyze verify ${units[*]}"
	set +e
	unshare -m --propagation private bash -euo pipefail -c '
		W=$1 build=$2
		shift 2
		mkdir -p "$W" && mount -t tmpfs -o mode=0700 units "$W"
		mkdir "$W/u" "$W/w"
		mount -t overlay overlay -o "lowerdir=/usr/local,upperdir=$W/u,workdir=$W/w" /usr/local
		prefix=$(meson introspect "$build" --buildoptions |
			python3 -c "import json,sys; print(next(o[\"value\"] for o in json.load(sys.stdin) if o[\"name\"] == \"prefix\"))")
		[ "$prefix" = /usr/local ] || { echo "the build installs into $prefix, not /usr/local"; exit 1; }
		meson install -C "$build" --no-rebuild --quiet >"$W/install.log" 2>&1 ||
			{ cat "$W/install.log"; exit 1; }
		paths=()
		for u; do
			f=/usr/local/lib/systemd/system/$u
			[ -f "$f" ] || { echo "unit $u is not installed (installed: $(ls /usr/local/lib/systemd/system))"; exit 1; }
			paths+=("$f")
		done
		out=$(systemd-analyze verify "${paths[@]}" 2>&1) || { echo "$out"; exit 1; }
		[ -z "$out" ] || { echo "systemd-analyze verify warns: $out"; exit 1; }
	' _ "$T/units" "$SB_BUILD" "${units[@]}" >"$T/out" 2>&1
	local rc=$?
	set -e
	[ "$rc" = 0 ] || failed "$rel:$2: the units of an 'sh-systemd' block: $(cat "$T/out")"
}

quick_start=()
for doc in "${docs[@]}"; do
	rel=${doc#"$SB_SRC"/}
	list=$(blocks list "$doc") || fail "cannot read the code blocks of $rel: $list"
	while IFS=$'\t' read -r file line info section; do
		[ -n "$file" ] || continue
		read -r lang mode extra <<<"$info" || true
		if [ "$rel" = README.md ] && [ "$section" = "Quick start" ]; then
			quick_start+=("$info")
		fi
		if [ -n "${extra:-}" ]; then
			failed "$rel:$line: one marker at most after the language, not '$info'"
			continue
		fi
		case "$lang:${mode:-}" in
		sh: | sh:mounted) run_block "$file" "$line" mounted ;;
		sh:unmounted | sh:unconfigured) run_block "$file" "$line" "$mode" ;;
		sh:demo) check_demo "$file" "$line" ;;
		sh:ci) check_ci "$file" "$line" ;;
		sh-systemd:) verify_units "$file" "$line" ;;
		text:) check_text "$file" "$line" ;;
		ini: | json: | python: | c: | yaml:) ;;
		:*) failed "$rel:$line: a code block without an info string: mark it \`\`\`sh (a command this test runs) or \`\`\`text (output); see docs/CONTRIBUTING-docs.md" ;;
		*) failed "$rel:$line: unknown info string '$info' (see docs/CONTRIBUTING-docs.md)" ;;
		esac
	done <<<"$list"
done

note "README's quick start: exactly two blocks, the demo, then the tests"
[ -n "${SB_DOCS_ONLY:-}" ] || [ "${quick_start[*]}" = "sh demo sh ci" ] ||
	failed "README.md: '## Quick start' must hold exactly two blocks, \`\`\`sh demo then \`\`\`sh ci; it holds: ${quick_start[*]:-none}"

note "no block left a container behind"
left=$(docker ps -a --format '{{.Names}}')
[ -z "$left" ] || failed "blocks created containers: $left"

if [ "${#failures[@]}" != 0 ]; then
	printf '\n%s\n' "${failures[@]}" >&2
	fail "${#failures[@]} documented command block(s) failed"
fi
[ "$n_run" -gt 0 ] || fail "no sh block ran at all"
echo "ok: $n_run sh blocks ran"
