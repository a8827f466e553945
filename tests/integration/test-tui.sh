#!/bin/bash
# stackback-tui in a real terminal: a private tmux server runs it in an
# 80x24 pane, keys go in with send-keys, the screen comes back with
# capture-pane. Against real Docker compose stacks and a real restic
# repository it checks that toggles land in the same dirlist the CLI
# writes (and that the CLI's writes show up), that a dry run changes
# nothing, that a real backup shows each stack's real result (a stack
# whose pre-backup hook exits 1 shows as failed, the job as failed, never
# "ok"), that downtime is shown, that Stage 2, Stage 3 (a refused one
# too) and a check run from the run screen, that a run goes through the daemon when
# the mount is up, that the layout follows a resize, and that the
# terminal is restored after q, SIGTERM and a crash signal.
source "$(dirname "$0")/lib.sh"
need tmux restic docker-compose fusermount3 python3

sb_write_config
sb_busybox_image

sb() { "$SB" -c "$CFG" "$@"; }
rs() { RESTIC_PASSWORD_FILE="$T/password" restic -r "$T/repo" --no-cache "$@"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

WEB="${P}web"
DB="${P}db"
BAD="${P}bad"
sb_make_stack "$WEB"
sb_make_stack "$DB"
sb_make_stack "$BAD"
# The original tool's failure: a hook fails, the screen said "Backup Complete".
mkdir -p "$T/stacks/$BAD/.stackback"
printf '#!/bin/sh\necho "database dump failed" >&2\nexit 1\n' >"$T/stacks/$BAD/.stackback/pre-backup"
chmod +x "$T/stacks/$BAD/.stackback/pre-backup"
sb_stack_up "$WEB"
sb_stack_up "$BAD"
sb init >/dev/null 2>&1 || fail "stackback init"
DIRLIST="$T/state/dirlist"

# A private tmux server per start: nothing of the user's tmux is touched,
# and a new client never meets the previous server while it still exits
# (tmux then says "server exited unexpectedly").
tui_starts=0
TS="sbtui-$P-0"
on_exit 'for ((n = 0; n <= tui_starts; n++)); do tmux -L "sbtui-$P-$n" kill-server; done'
# Starts the TUI in a fresh 80x24 window; after it exits the pane says how, and how the terminal was left.
start_tui() {
	local cfg=${1:-$CFG}
	tmux -L "$TS" kill-server >/dev/null 2>&1 || true
	tui_starts=$((tui_starts + 1))
	TS="sbtui-$P-$tui_starts"
	tmux -L "$TS" -f /dev/null new-session -d -x 80 -y 24 -s tui \
		"env TERM=xterm-256color LANG=C.UTF-8 LC_ALL=C.UTF-8 '$SBTUI' -c '$cfg'; echo \"TUI-EXITED rc=\$?\"; stty -a | tr ' ' '\n' | grep -x -- '-\{0,1\}echo' | sed 's/^/STTY /'; sleep 900"
	wait_screen "1 Stacks"
}
screen() { tmux -L "$TS" capture-pane -p -t tui; }
keys() { tmux -L "$TS" send-keys -t tui "$@"; }
tui_pid() { tmux -L "$TS" display-message -p -t tui '#{pane_pid}' | xargs -I{} pgrep -P {} -x stackback-tui; }
# Waits (default 30 s) until the screen shows text; fails with the screen.
wait_screen() {
	local text=$1 limit=${2:-30} i
	for ((i = 0; i < limit * 10; i++)); do
		if screen | grep -qF -- "$text"; then
			return 0
		fi
		sleep 0.1
	done
	screen >&2
	fail "the screen never showed '$text'"
}
# Waits (default 30 s) until the screen no longer shows text.
wait_gone() {
	local text=$1 limit=${2:-30} i
	for ((i = 0; i < limit * 10; i++)); do
		if ! screen | grep -qF -- "$text"; then
			return 0
		fi
		sleep 0.1
	done
	screen >&2
	fail "the screen still shows '$text'"
}
# Waits until the header's right end says who runs jobs (local or daemon).
wait_runner() {
	local i
	for ((i = 0; i < 300; i++)); do
		screen | head -n1 | grep -q " $1\$" && return 0
		sleep 0.1
	done
	screen >&2
	fail "the header never said '$1'"
}
# The screen's line that holds text (the first one).
line_of() { screen | grep -F -- "$1" | head -n1; }
# Filters the stack list to exactly one stack (by its full name) and waits for it.
only() {
	keys /
	keys C-u "$1" Enter
	wait_screen "shown (filter '$1')"
}

note "start: every stack is listed, new ones as new, docker states fill in"
start_tui
wait_screen "$WEB (new)"
wait_screen "$DB (new)"
wait_screen "$BAD (new)"
wait_screen "0 of 3 stacks enabled"
# Docker is asked in the background; the answers arrive without a key press.
wait_screen "stopped" 60
for name in "$WEB" "$BAD"; do
	for ((i = 0; i < 300; i++)); do
		line_of "$name (new)" | grep -q running && break
		sleep 0.1
	done
	line_of "$name (new)" | grep -q running || { screen >&2; fail "$name not shown running"; }
done
line_of "$DB (new)" | grep -q stopped || fail "$DB not shown stopped: $(line_of "$DB")"
[ ! -e "$DIRLIST" ] || fail "the TUI wrote the dirlist before anything was toggled"

note "space toggles the stack under the cursor into the dirlist at once"
only "$WEB"
keys Space
wait_screen "$WEB enabled in $DIRLIST"
grep -qx "$WEB=true" "$DIRLIST" || fail "dirlist after space: $(cat "$DIRLIST")"
assert_eq "$(sb list --json | json "[s['enabled'] for s in d if s['name']=='$WEB'][0]")" True

note "a and n act on the filtered set only"
only "$P*"
keys a
wait_screen "3 of 3 stacks enabled"
for name in "$WEB" "$DB" "$BAD"; do
	grep -qx "$name=true" "$DIRLIST" || fail "$name not enabled by a: $(cat "$DIRLIST")"
done
only "*db"
keys n
wait_screen "2 of 3 stacks enabled"
grep -qx "$DB=false" "$DIRLIST" || fail "$DB not disabled by n: $(cat "$DIRLIST")"
grep -qx "$WEB=true" "$DIRLIST" || fail "n touched a stack outside the filter: $(cat "$DIRLIST")"
keys Escape
wait_gone "shown (filter"
wait_screen "2 of 3 stacks enabled"

note "a change made by the CLI shows up without a key press (same file, same lock)"
sb enable "$DB" >/dev/null
wait_screen "3 of 3 stacks enabled" 15
sb disable "$DB" >/dev/null
wait_screen "2 of 3 stacks enabled" 15

note "dry run: the per-stack plan, nothing written"
keys d
wait_screen "backup (dry run)"
wait_screen "finished ok" 120
line_of "$WEB " | grep -q "dry-run" || fail "dry run line of $WEB: $(line_of "$WEB ")"
# Stack lines are indented by two; the status line may still name $DB from the toggle.
screen | grep -F "  $DB " && { screen >&2; fail "the dry run touched the disabled $DB"; }
assert_eq "$(rs snapshots --json | json 'len(d)')" 0
[ -z "$(ls "$T/state/stacks" 2>/dev/null)" ] || fail "a dry run wrote stack state: $(ls "$T/state/stacks")"

note "a real backup asks first, then shows each stack's real result"
keys 1
wait_screen "spc:toggle"
keys b
wait_screen "back up the 2 enabled stack(s) now?"
keys n
wait_screen "not started"
keys b
wait_screen "[y/N]"
keys y
wait_screen "backup job" 30
wait_screen "1 of 2 stacks backed up" 300
screen >"$T/screen-backup.txt"
# The job failed: the headline says so, never "ok".
grep -qE "backup job [0-9]+ in this process: failed" "$T/screen-backup.txt" || {
	cat "$T/screen-backup.txt" >&2
	fail "the headline does not say failed"
}
grep -qF "finished ok" "$T/screen-backup.txt" && fail "a failed backup shown as ok"
web_line=$(grep -F "$WEB " "$T/screen-backup.txt" | head -n1)
bad_line=$(grep -F "$BAD " "$T/screen-backup.txt" | head -n1)
assert_contains "$web_line" " ok "
assert_contains "$web_line" "snapshot "
# web was running: it was stopped, so there was downtime, and it is shown.
assert_not_contains "$web_line" "downtime none"
assert_contains "$web_line" "downtime "
assert_not_contains "$bad_line" " ok "
assert_contains "$bad_line" "skipped"
# Its cause is shown whole, in the lines under it.
grep -A3 -F "  $BAD " "$T/screen-backup.txt" | grep -q "pre-backup" || {
	cat "$T/screen-backup.txt" >&2
	fail "the cause of $BAD's failure is not shown"
}
# What the screen says is what happened.
assert_eq "$(rs snapshots --json | json "sorted(set(t for s in d for t in s['tags'] if t!='stackback'))")" "['$WEB']"
assert_eq "$(json 'd["result"]' <"$T/state/stacks/$WEB.json")" ok
assert_eq "$(json 'd["result"]' <"$T/state/stacks/$BAD.json")" skipped
assert_eq "$(sb_stack_state "$WEB")" running
assert_eq "$(sb_stack_state "$BAD")" running

note "the stacks screen shows the last result of each stack, the failure's cause in the details"
keys 1
wait_screen "spc:toggle"
for ((i = 0; i < 100; i++)); do
	line_of "$BAD " | grep -q skipped && break
	sleep 0.1
done
line_of "$WEB " | grep -qE "just now|s ago" || fail "no age for $WEB: $(line_of "$WEB ")"
line_of "$WEB " | grep -q " ok " || fail "no ok for $WEB: $(line_of "$WEB ")"
line_of "$BAD " | grep -q skipped || fail "no failure for $BAD: $(line_of "$BAD ")"
only "$BAD"
wait_screen "error: "
assert_contains "$(line_of "error: ")" "pre-backup"
# The snapshot count comes from restic in the background.
keys Escape
for ((i = 0; i < 300; i++)); do
	line_of "$WEB " | grep -qE " 1$" && break
	sleep 0.1
done
line_of "$WEB " | grep -qE " 1$" || fail "snapshot count of $WEB: $(line_of "$WEB ")"

note "the snapshots screen lists and browses the new snapshot"
keys 3
wait_screen "1 snapshot(s) of" 60
keys Right Enter
wait_screen "$WEB @ " 60
wait_screen "docker-compose.yml"
mkdir "$T/copied"
# The first entry is data/ (entries are sorted by name): copy it out.
keys g
wait_screen "into directory:"
keys C-u "$T/copied" Enter
wait_screen "copied 'data' to $T/copied/data" 120
assert_eq "$(cat "$T/copied/data/hello.txt")" "hello from $WEB"

note "Stage 2, Stage 3 and check from the run screen, each with its real result"
keys 2 s
wait_screen "sync job"
wait_screen "finished ok" 300
[ -f "$T/cloud/config" ] || fail "the sync left no repository at $T/cloud"
keys r
wait_screen "[y/N]"
keys y
wait_screen "restore job"
wait_screen "finished ok" 300
[ -f "$T/restored/config" ] || fail "the restore left no repository at $T/restored"
# A second restore into the now non-empty directory is refused, and shown so.
keys r
wait_screen "[y/N]"
keys y
wait_screen "restore job"
wait_screen ": failed" 120
screen | grep -qF "finished ok" && fail "a refused restore shown as ok"
keys c
wait_screen "check job"
wait_screen "finished ok" 300

note "the layout follows the window size"
tmux -L "$TS" resize-window -t tui -x 120 -y 30
for ((i = 0; i < 50; i++)); do
	[ "$(screen | wc -l)" = 30 ] && screen | tail -n1 | grep -qF "q:quit" && break
	sleep 0.1
done
assert_eq "$(screen | wc -l)" 30
screen | tail -n1 | grep -qF "q:quit" || { screen >&2; fail "no footer on the last row after growing"; }
keys 1
wait_screen "SNAPS"
# The heading spans the wider window: SNAPS ends at the right edge.
heading=$(line_of "SNAPS")
assert_eq "${#heading}" 120
tmux -L "$TS" resize-window -t tui -x 30 -y 8
wait_screen "terminal too small"
tmux -L "$TS" resize-window -t tui -x 80 -y 24
wait_screen "spc:toggle"
heading=$(line_of "SNAPS")
assert_eq "${#heading}" 80
assert_eq "$(screen | wc -l)" 24
# Back at full height every stack is listed again, none scrolled away.
for name in "$WEB" "$DB" "$BAD"; do
	line_of "$name " | grep -q "\[" || { screen >&2; fail "$name not listed after the resize"; }
done

note "with the mount up, a run goes through the daemon"
sb mount >/dev/null || fail "stackback mount"
on_exit "fusermount3 -u -z '$T/mnt'"
wait_runner daemon
keys 2
wait_screen "jobs run in the daemon mounted at $T/mnt"
keys d b
wait_screen "backup (dry run) job" 60
wait_screen "through the daemon" 60
wait_screen "finished ok" 120
keys d

note "x cancels the daemon's job (jobs/ID/cancel), and the screen follows it to its end"
mkdir -p "$T/stacks/$WEB/.stackback"
printf '#!/bin/sh\nsleep 120\n' >"$T/stacks/$WEB/.stackback/pre-backup"
chmod +x "$T/stacks/$WEB/.stackback/pre-backup"
keys b
wait_screen "[y/N]"
keys y
wait_screen "through the daemon: running" 60
keys x
wait_screen "asking the daemon to cancel job"
wait_screen "through the daemon: cancelled" 60
assert_eq "$(sb status --json | json 'd["last"]["state"]')" cancelled
assert_eq "$(sb_stack_state "$WEB")" running
rm "$T/stacks/$WEB/.stackback/pre-backup"
sb umount >/dev/null || fail "stackback umount"
wait_runner local

note "q leaves the terminal as it was"
keys q
wait_screen "TUI-EXITED rc=0"
wait_screen "STTY echo"
assert_eq "$(tmux -L "$TS" display-message -p -t tui '#{alternate_on}')" 0
assert_eq "$(tmux -L "$TS" display-message -p -t tui '#{cursor_flag}')" 1

note "q during an in-process backup cancels it: its stacks run again"
BIG="${P}big"
sb_make_stack "$BIG"
head -c 20M /dev/urandom >"$T/stacks/$BIG/data/big.bin"
sb_stack_up "$BIG"
sb enable "$BIG" >/dev/null
sb disable "$WEB" "$BAD" >/dev/null
# restic is held at the gate while the TUI is told to cancel: the backup is certainly under way.
sb_gate_restic
sb_close_restic_gate
start_tui
keys 2 b
wait_screen "[y/N]"
keys y
sb_wait_restic_held >/dev/null
wait_screen "[1/1] $BIG  backup" 120
assert_eq "$(sb_stack_state "$BIG")" stopped
keys q
wait_screen "q again cancels it"
keys q
wait_screen "TUI-EXITED rc=0" 120
sb_open_restic_gate
assert_eq "$(sb_stack_state "$BIG")" running
assert_eq "$(sb status --json | json 'd["last"]["state"]')" cancelled
[ ! -s "$T/state/journal" ] || fail "the journal still lists stopped stacks: $(cat "$T/state/journal")"

note "SIGTERM: the terminal is restored and the exit says so"
start_tui
kill -TERM "$(tui_pid)"
wait_screen "TUI-EXITED rc=143"
wait_screen "STTY echo"
assert_eq "$(tmux -L "$TS" display-message -p -t tui '#{alternate_on}')" 0

note "a crash signal still gives the terminal back"
start_tui
kill -SEGV "$(tui_pid)"
wait_screen "TUI-EXITED rc=139"
wait_screen "STTY echo"
assert_eq "$(tmux -L "$TS" display-message -p -t tui '#{alternate_on}')" 0
assert_eq "$(tmux -L "$TS" display-message -p -t tui '#{cursor_flag}')" 1

note "a broken configuration opens on the Config screen with FILE:LINE, and no job starts"
cp "$CFG" "$T/bad.ini"
printf 'DOCKER_TIMEOUT=soon\n' >>"$T/bad.ini"
chmod 600 "$T/bad.ini"
bad_line=$(wc -l <"$T/bad.ini")
start_tui "$T/bad.ini"
wait_screen "Validation: 1 error(s)"
wait_screen "$T/bad.ini:$bad_line: error:"
keys 2 c
wait_screen "the configuration has errors"
keys q
wait_screen "TUI-EXITED rc=0"

note "ok"
