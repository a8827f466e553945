/*
 * The TUI's view model: what rows each screen shows and how sizes, ages,
 * progress and results read. Nothing here calls ncurses, so all of it
 * is unit-tested without a terminal (tests/unit/torture_tuiview.c); the
 * screens only place these strings and pick colours by their tone.
 *
 * Widths are terminal columns: strings are UTF-8 and measured with
 * wcwidth(), so the locale must be set (main() does it).
 */
#ifndef STACKBACK_TUI_VIEW_H
#define STACKBACK_TUI_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <wchar.h>

#include "stackback/docker.h"
#include "stackback/doctor.h"
#include "stackback/job.h"
#include "stackback/restic.h"
#include "stackback/snaptree.h"
#include "stackback/snapview.h"
#include "stackback/stacks.h"
#include "stackback/util.h"

/* How a piece of text should look; the screens map tones to colours. */
enum tui_tone {
	TUI_TONE_NORMAL,
	TUI_TONE_GOOD,
	TUI_TONE_BAD,
	TUI_TONE_WARN,
	TUI_TONE_DIM,
};

/* ---- text ---- */

/* Display columns of a UTF-8 string; invalid bytes count one each. */
int tui_text_width(const char *s);

/*
 * s cut or padded with spaces to exactly width columns (0 gives "").
 * A cut string ends in "…" with utf8, "~" without. Caller frees.
 */
char *tui_fit(const char *s, int width, bool utf8);

/*
 * Appends s to out as lines of at most width columns, broken at spaces
 * where possible (a word longer than a line is split). Nothing for "".
 */
void tui_wrap(const char *s, int width, struct sb_strv *out);

/*
 * text (lines separated by newlines) with every line sanitized and
 * wrapped to width columns, continuation lines indented by two spaces.
 * Caller frees.
 */
char *tui_wrap_text(const char *text, int width);

/* s with control characters (escapes, tabs, CR) replaced by spaces, so a log line cannot move the cursor. Caller frees. */
char *tui_sanitize(const char *s);

/* A line of text being typed (a filter, a search), UTF-8 in the locale's encoding. */
#define TUI_LINE_MAX 256
struct tui_line {
	char text[TUI_LINE_MAX];
	size_t len;
};
/* Sets the line to s, cut at a character boundary if too long. */
void tui_line_set(struct tui_line *l, const char *s);
/* Appends a typed character; false for control characters or when it does not fit. */
bool tui_line_insert(struct tui_line *l, wchar_t wc);
/* Removes the last character; false when empty. */
bool tui_line_backspace(struct tui_line *l);

/* ---- numbers ---- */

/*
 * How long ago then was, seen at now (both wall clock): "never" when
 * then <= 0, "just now", "42s ago", "5m ago", "3h ago", "2d ago",
 * past 60 days the UTC date "2024-01-31".
 */
void tui_format_age(double now, double then, char *buf, size_t size);

/* An estimated time left: "-" when unknown (negative), else "42s", "3m04s", "1h02m". */
void tui_format_eta(double eta_s, char *buf, size_t size);

/*
 * A bar of exactly width columns filled to percent (clamped to 0..100):
 * with utf8, full blocks and an eighths block at the edge, the rest
 * spaces for the colour to show; without, '#' and '-'. Caller frees.
 */
char *tui_progress_bar(double percent, int width, bool utf8);

/*
 * What a job's progress says in words, without the bar:
 * "[2/3] web  backup  42%  1.2 GiB / 2.9 GiB  eta 1m10s"; parts without
 * data are left out. Caller frees.
 */
char *tui_progress_text(const struct sb_job_progress *p);

/* ---- filtering ---- */

/*
 * Whether name passes the filter: an empty pattern passes everything; a
 * pattern with *, ? or [ is a glob (fnmatch, case-insensitive) on the
 * whole name; any other pattern matches as a case-insensitive substring.
 */
bool tui_filter_match(const char *pattern, const char *name);

/* ---- the last backup of a stack ---- */

struct tui_last_backup {
	bool known;            /* it was backed up (or tried) at least once */
	double time;           /* wall clock when it ended, 0 unknown */
	char result[16];       /* "ok", "failed", "skipped", "unknown" */
	char snapshot[72];
	double duration_s;
	double downtime_s;
	bool has_downtime;
	uint64_t bytes_added;
	char *error;           /* owned, NULL when none */
};

/*
 * Parses sb_status_last_backup_text()'s "key: value" lines ("never" =
 * not known). Unknown keys are ignored; a malformed value of a known key
 * returns -1 with lb holding what was read before. lb is cleared first
 * and must be freed with tui_last_backup_free() either way.
 */
int tui_last_backup_parse(const char *text, size_t len, struct tui_last_backup *lb);
void tui_last_backup_free(struct tui_last_backup *lb);

/* ---- the stacks screen ---- */

struct tui_stack_row {
	char *name;            /* owned */
	char *key;             /* owned: the dirlist key */
	char *path;            /* owned */
	bool enabled;
	enum sb_stack_origin origin;
	char *conflict;        /* owned, NULL when none */
	enum sb_stack_state docker;
	bool docker_known;     /* docker was asked (UNKNOWN may be an answer) */
	struct tui_last_backup last;
	long snapshots;        /* -1 not known yet */
};

struct tui_stack_list {
	struct tui_stack_row *rows;
	size_t n;
	char *filter;          /* owned, "" = none */
	size_t *shown;         /* indexes into rows that pass the filter */
	size_t n_shown;
	size_t cursor;         /* index into shown */
	size_t top;            /* first shown row on screen */
};

/* Replaces the rows with sel's stacks, keeping the cursor on the same stack name if it is still shown. */
void tui_stack_list_load(struct tui_stack_list *l, const struct sb_selection *sel);
void tui_stack_list_free(struct tui_stack_list *l);
/* Sets the filter (NULL = none) and recomputes the shown rows. */
void tui_stack_list_set_filter(struct tui_stack_list *l, const char *pattern);
/* The row under the cursor, NULL when nothing is shown. */
struct tui_stack_row *tui_stack_list_current(const struct tui_stack_list *l);
/* Moves the cursor by delta (clamped) and scrolls so it stays in a view of height rows. */
void tui_stack_list_move(struct tui_stack_list *l, long delta, int height);
/* Finds a row by name, NULL if none. */
struct tui_stack_row *tui_stack_list_find(const struct tui_stack_list *l, const char *name);

enum tui_bulk {
	TUI_BULK_TOGGLE_CURSOR,  /* space: the row under the cursor */
	TUI_BULK_ENABLE_SHOWN,   /* a: every shown row on */
	TUI_BULK_DISABLE_SHOWN,  /* n: every shown row off */
	TUI_BULK_INVERT_SHOWN,   /* i: every shown row flipped */
};
/*
 * The dirlist changes for a bulk action, only for rows whose value
 * changes (keys borrowed from l: use them before the list changes).
 * Returns their count; *out is allocated (caller frees), NULL when 0.
 */
size_t tui_stack_list_changes(const struct tui_stack_list *l, enum tui_bulk what,
			      struct sb_selection_change **out);

/* Counts per stack from a snapshot list into the rows (rows without any get 0). */
void tui_stack_list_count_snapshots(struct tui_stack_list *l, const struct sb_snapshot_list *snaps);

/* The columns of a stack row. */
enum tui_stack_col {
	TUI_COL_ON,
	TUI_COL_NAME,
	TUI_COL_DOCKER,
	TUI_COL_LAST,
	TUI_COL_RESULT,
	TUI_COL_SNAPS,
	TUI_STACK_NCOLS,
};

struct tui_cell {
	char text[96];
	enum tui_tone tone;
};

/* Column widths for a screen width; the name column takes what is left (at least 8). Separators of one space are not included. */
void tui_stack_layout(int width, int widths[TUI_STACK_NCOLS]);
/* The column headings. */
const char *tui_stack_heading(enum tui_stack_col col);
/* The cells of a row seen at now (wall clock). */
void tui_stack_cells(const struct tui_stack_row *r, double now, bool utf8,
		     struct tui_cell cells[TUI_STACK_NCOLS]);
/*
 * The detail lines under the list for the row: path, origin or
 * conflict, and the last backup (when, duration, downtime, snapshot,
 * added) with its error. Returns the count; lines and tones go to the
 * arrays (at most max; texts owned by the caller).
 */
size_t tui_stack_details(const struct tui_stack_row *r, double now, char **lines,
			 enum tui_tone *tones, size_t max);
/* "3 of 12 stacks enabled, 5 shown (filter 'web*')". Caller frees. */
char *tui_stack_summary(const struct tui_stack_list *l);

/* ---- a run (one job) ---- */

enum tui_run_phase {
	TUI_RUN_IDLE,      /* nothing started yet */
	TUI_RUN_STARTING,  /* asked, not yet accepted */
	TUI_RUN_RUNNING,
	TUI_RUN_DONE,      /* the job ended (ok or not), report known */
	TUI_RUN_ERROR,     /* it could not run at all: error says why */
};

/* One stack as the run screen lists it. */
struct tui_run_stack {
	char *name;
	bool finished;         /* its turn is over */
	bool has_result;       /* result below is the engine's */
	enum sb_stack_result result;
	char *error;
	char *snapshot;
	double duration_s, downtime_s;
	uint64_t bytes_added;
};

struct tui_run_view {
	enum sb_job_kind kind;
	bool dry_run;
	enum tui_run_phase phase;
	bool daemon;           /* through the mount */
	int job_id;
	enum sb_job_state state;
	struct sb_job_progress progress;
	struct tui_run_stack *stacks;
	size_t n_stacks;
	struct sb_strv log;    /* the last TUI_RUN_LOG_KEEP lines */
	char *error;           /* TUI_RUN_ERROR, or the job's failure line */
	char *summary;         /* the engine's one-line summary */
	double started_mono, finished_mono;
};

#define TUI_RUN_LOG_KEEP 500

/* Resets v for a new run of kind. */
void tui_run_begin(struct tui_run_view *v, enum sb_job_kind kind, bool dry_run);
void tui_run_free(struct tui_run_view *v);
/* The job was accepted. */
void tui_run_started(struct tui_run_view *v, int job_id, bool daemon);
/* A progress report: a change of stack closes the previous stack's turn. */
void tui_run_progress(struct tui_run_view *v, enum sb_job_state st, const struct sb_job_progress *p);
/*
 * A job log line for the screen: the engine's "2024-05-01T12:00:03Z
 * info: text" loses its date ("12:00:03 info: text"), the rest is
 * sanitized. Caller frees.
 */
char *tui_log_line_short(const char *line);
/* One log line (shortened and sanitized; the oldest go beyond TUI_RUN_LOG_KEEP). */
void tui_run_log(struct tui_run_view *v, const char *line);
/*
 * Per-stack results known so far (the job's reports; takes job->mu).
 * A stack whose turn runs is listed, without a result, until the
 * engine commits it.
 */
void tui_run_reports(struct tui_run_view *v, struct sb_job *job);
/* The job ended: its final state, reports, summary and error. */
void tui_run_finished(struct tui_run_view *v, struct sb_job *job);
/* It could not run: err (copied) says why. */
void tui_run_failed(struct tui_run_view *v, const char *err);

/*
 * The headline: "backup (dry run) job 12 through the daemon: running",
 * and its tone (bad when failed or cancelled, good when ok). Caller frees.
 */
char *tui_run_headline(const struct tui_run_view *v, enum tui_tone *tone);
/*
 * The line of one stack in the run list: "web  ok  snapshot 1a2b3c4d,
 * 4.1s, downtime 3.2s, added 1.2 MiB", "db  skipped", "app  waiting",
 * "web  backup" (the current stack's phase). A failure's cause is in
 * s->error, for the screen to show whole under the line. Caller frees;
 * *tone says how it looks.
 */
char *tui_run_stack_line(const struct tui_run_view *v, const struct tui_run_stack *s,
			 enum tui_tone *tone);
/*
 * How far the whole job is, 0..100, for per-stack jobs: stacks done plus
 * the current one's share; -1 when the job does not count stacks.
 */
double tui_run_overall_percent(const struct tui_run_view *v);
/* The width of the name column in the run's stack lines (the longest name, 8 to 24). */
int tui_run_name_width(const struct tui_run_view *v);
/* What the run of kind does, for the run menu: "Stage 1: back up the enabled stacks". */
const char *tui_run_kind_title(enum sb_job_kind kind);

/* ---- scrollable text (log, config, health) ---- */

struct tui_text {
	struct sb_strv lines;
	size_t top;            /* first line on screen */
	bool has_match;
	size_t match;          /* line of the last search hit, when has_match */
	char *search;          /* owned, NULL none */
};

/* Replaces the lines with text split at newlines (sanitized), keeping top when keep_pos, else showing the end when tail, else the start. */
void tui_text_set(struct tui_text *t, const char *text, bool keep_pos, bool tail, int height);
void tui_text_free(struct tui_text *t);
/* Scrolls by delta lines within a view of height rows. */
void tui_text_scroll(struct tui_text *t, long delta, int height);
/* Jumps to the start (end false) or the end (true). */
void tui_text_jump(struct tui_text *t, bool end, int height);
/*
 * Searches for pattern (case-insensitive substring; NULL = the last
 * one) from the line after the last hit (before it when backward),
 * wrapping around. On a hit the line is brought into view and true
 * returned.
 */
bool tui_text_search(struct tui_text *t, const char *pattern, bool backward, int height);

/* ---- health (the doctor's checks) ---- */

/*
 * A check's line: "ok       Docker engine         Docker 20.10 answers",
 * the title cut or padded to title_w columns; a check not run yet
 * (c NULL) reads "...      TITLE  checking" with the title given.
 * Caller frees; *tone follows the result.
 */
char *tui_health_line(const struct sb_doctor_check *c, const char *title, int title_w,
		      enum tui_tone *tone);
/* "all 12 checks pass", "2 of 12 checks failed", "checking: 5 of 12 done". Caller frees. */
char *tui_health_summary(const struct sb_doctor_check *checks, const bool *done, size_t n,
			 bool running, enum tui_tone *tone);

/* ---- snapshots ---- */

/*
 * The stacks the snapshots screen lists: the selection's, in its order,
 * then those that only have snapshots (a stack since removed), by name.
 * with_snapshots may be NULL.
 */
void tui_snapshot_stacks(const struct sb_selection *sel, const struct sb_strv *with_snapshots,
			 struct sb_strv *out);

/* A snapshot in a list: "2024-05-01 12:00:03  1a2b3c4d" (UTC). Caller frees. */
char *tui_snapshot_line(const struct sb_snapview_snap *s);

/*
 * An entry of a snapshot directory: "d rwxr-xr-x   4.0 KiB  2024-05-01
 * 12:00  name/", symlinks with " -> target". Caller frees.
 */
char *tui_tree_entry_line(const struct sb_snaptree *t, sb_snode_id id);

/*
 * Where `g` copies an entry: dir/name, or dir itself when name is empty
 * (the snapshot's root). dir "~" or "~/..." is taken from home. Caller frees.
 */
char *tui_copy_destination(const char *dir, const char *name, const char *home);

#endif
