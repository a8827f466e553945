/*
 * stackback-tui: the application, its screens and the threads that feed
 * them. Each screen is one file exporting one `struct tui_screen` (the
 * idea of tmux's window modes); main.c owns the terminal, the loop and
 * the switching between screens.
 *
 * Threads: only the main thread calls ncurses. The job worker
 * (jobs.c) and background tasks (task.c: docker states, restic
 * listings, mount checks) change data under their own locks and wake
 * the main thread through t->wake_fd; the main thread then asks the
 * current screen to update and redraws.
 *
 * Lock order: tui_jobs.mu, then a job's mu (the engine's). Task and
 * state-cache locks are leaves.
 */
#ifndef STACKBACK_TUI_H
#define STACKBACK_TUI_H

#include <curses.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "stackback/config.h"
#include "stackback/client.h"
#include "stackback/jobrun.h"
#include "view.h"

struct tui;

/* A key: a character (fn false) or an ncurses KEY_* code (fn true). */
struct tui_key {
	wint_t code;
	bool fn;
};

static inline bool tui_key_is(const struct tui_key *k, wint_t ch)
{
	return !k->fn && k->code == ch;
}

/* Where a screen draws: rows y .. y+h-1 of the terminal, full width. */
struct tui_rect {
	int y, x, h, w;
};

/*
 * One screen. Every function runs on the main thread. key returns true
 * if the screen used the key (else the global keys apply); while a
 * screen edits a line of text it uses every key.
 */
struct tui_screen {
	const char *name;
	void *(*init)(struct tui *t);
	void (*free)(void *data);
	/* The terminal changed size (t->rows, t->cols are new). */
	void (*resize)(void *data, struct tui *t);
	bool (*key)(void *data, struct tui *t, const struct tui_key *k);
	/* Called before each draw while the screen is shown: pick up what the threads learned. */
	void (*update)(void *data, struct tui *t);
	void (*draw)(void *data, struct tui *t, const struct tui_rect *r);
	/* The keys the footer lists now, global ones included ("spc:toggle a:all ... q:quit"). */
	const char *(*footer)(void *data, struct tui *t);
};

extern const struct tui_screen tui_screen_stacks;
extern const struct tui_screen tui_screen_run;
extern const struct tui_screen tui_screen_snapshots;
extern const struct tui_screen tui_screen_health;
extern const struct tui_screen tui_screen_config;
extern const struct tui_screen tui_screen_log;

enum tui_screen_id {
	TUI_SCREEN_STACKS,
	TUI_SCREEN_RUN,
	TUI_SCREEN_SNAPSHOTS,
	TUI_SCREEN_HEALTH,
	TUI_SCREEN_CONFIG,
	TUI_SCREEN_LOG,
	TUI_NSCREENS,
};

/* ---- the job worker (jobs.c) ---- */

struct tui_jobs {
	pthread_mutex_t mu;          /* protects every field below except th */
	struct tui_run_view view;    /* mu: what the run screen shows */
	bool busy;                   /* mu: the worker thread runs a job */
	struct sb_job *job;          /* mu: the in-process job while it runs, for cancel */
	uint64_t finished;           /* mu: jobs ended so far; screens reload state when it moves */
	atomic_bool stop;            /* stop following a daemon job (quit) */
	pthread_t th;                /* main thread only */
	bool joinable;               /* main thread only */
	struct sb_job_request req;   /* handed to the worker */
	struct tui *t;
};

void tui_jobs_init(struct tui_jobs *j, struct tui *t);
/*
 * Starts *req (consumed) on the worker thread, which runs it through
 * sb_jobrun(): the daemon if mounted, else this process. Returns 0, or
 * -1 with *err when a job of this TUI still runs.
 */
int tui_jobs_start(struct tui_jobs *j, struct sb_job_request *req, char **err);
/* True while a job runs. */
bool tui_jobs_busy(struct tui_jobs *j);
/* True if the running job runs in this process (it can be cancelled; quitting must). */
bool tui_jobs_in_process(struct tui_jobs *j);
/* Cancels an in-process job (its stacks are started again) and stops following a daemon's. */
void tui_jobs_cancel(struct tui_jobs *j);
/* The id of the daemon's job being followed, 0 when none (the daemon cancels it through jobs/ID/cancel). */
int tui_jobs_daemon_job(struct tui_jobs *j);
/* Joins a finished worker; returns false while it runs. */
bool tui_jobs_reap(struct tui_jobs *j);
/* Cancels, then waits for the worker to end. */
void tui_jobs_shutdown(struct tui_jobs *j);
uint64_t tui_jobs_finished(struct tui_jobs *j);

/* ---- background tasks (task.c) ---- */

/*
 * One slow piece of work (restic, docker) on its own thread, so the UI
 * never waits. The screen that owns the task starts it, checks
 * tui_task_done() in its update, and reads the result then; the work
 * function writes only into the task's own data.
 */
struct tui_task {
	void (*work)(struct tui_task *task);
	void *data;                  /* the work's input and output, owned by the screen */
	atomic_bool done;
	bool running;                /* main thread only */
	pthread_t th;
	struct tui *t;
};
/* Starts work on a new thread; does nothing if the task runs. Returns false if it was running. */
bool tui_task_start(struct tui_task *task, struct tui *t, void (*work)(struct tui_task *), void *data);
/* True once, when the work has finished (the thread is then joined). */
bool tui_task_finished(struct tui_task *task);
bool tui_task_running(const struct tui_task *task);
/* Waits for the task (at exit). */
void tui_task_join(struct tui_task *task);

/* ---- the application (main.c) ---- */

struct tui {
	struct sb_config cfg;
	bool cfg_loaded;             /* loaded without errors: jobs may run */
	struct sb_diags diags;       /* what loading the configuration found */
	struct sb_strv config_paths;
	bool utf8;
	bool colors;
	int rows, cols;
	int wake_fd[2];              /* any thread writes a byte to wake the main loop */
	enum sb_mount_state mount;   /* as last checked: the daemon runs jobs when MOUNTED */
	char *mount_error;           /* why the mount is STALE */
	struct tui_task mount_task;  /* checks MOUNTPOINT, which may hang when the daemon does */
	double mount_checked;        /* monotonic */
	struct tui_jobs jobs;
	void *screen_data[TUI_NSCREENS];
	enum tui_screen_id current;
	bool quitting;               /* waiting for a cancelled job before leaving */
	bool quit_armed;             /* q was pressed once while a job ran */
	char *confirm;               /* a question waiting for y/n, NULL when none */
	struct sb_job_request confirm_req;  /* what y starts */
	char *message;               /* the status line, NULL when empty */
	enum tui_tone message_tone;
	double message_until;        /* monotonic */
};

/* Wakes the main loop (any thread, async-signal-safe). */
void tui_wake(struct tui *t);
/* Shows a line above the footer for a few seconds. */
void tui_message(struct tui *t, enum tui_tone tone, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Makes another screen the current one. */
void tui_show(struct tui *t, enum tui_screen_id id);
/* Starts a job (*req consumed) and shows the run screen; a refusal goes to the status line. */
void tui_run_job(struct tui *t, struct sb_job_request *req);
/* The same after the user answers y to question (for jobs that stop stacks or write much). */
void tui_run_job_confirm(struct tui *t, struct sb_job_request *req, const char *question);
/* Shows the snapshots screen on stack's snapshots (screen-snapshots.c). */
void tui_snapshots_open(struct tui *t, const char *stack);

/* What restores the terminal (sgr0, cnorm, rmcup) into buf; returns its length (term.c). */
size_t tui_terminal_reset_sequence(char *buf, size_t size);

/* ---- drawing helpers (draw.c) ---- */

void tui_colors_init(struct tui *t);
attr_t tui_tone_attr(const struct tui *t, enum tui_tone tone);
/* The title and footer bars. */
attr_t tui_bar_attr(const struct tui *t);
/* Column headings. */
attr_t tui_heading_attr(const struct tui *t);
/* Writes text at (y, x) fitted to exactly width columns, in tone. */
void tui_put(struct tui *t, int y, int x, int width, const char *text, enum tui_tone tone);
/* Writes text at (y, x) fitted to width columns with attributes. */
void tui_put_attr(struct tui *t, int y, int x, int width, const char *text, attr_t attr);
/*
 * A horizontal rule across row y, width columns, with an optional
 * title near its left end. Box-drawing characters are written as text
 * (not the terminal's alternate charset) so captures show them too.
 */
void tui_put_rule(struct tui *t, int y, int width, const char *title);
/* A progress bar of width columns at (y, x). */
void tui_put_bar(struct tui *t, int y, int x, int width, double percent);
/* Scrollable text: the lines of tt from its top, the search hit highlighted. */
void tui_put_text(struct tui *t, const struct tui_rect *r, const struct tui_text *tt);

/* Scroll keys for text (arrows, j/k, pages, home/end, g/G); true if k was one. */
bool tui_text_key(struct tui_text *tt, const struct tui_key *k, int height);

/* A one-line text editor for filters and searches. */
struct tui_input {
	bool active;
	const char *prompt;
	struct tui_line line;
};
enum tui_input_result {
	TUI_INPUT_EDITED,    /* the text changed */
	TUI_INPUT_MOVED,     /* nothing changed */
	TUI_INPUT_DONE,      /* Enter */
	TUI_INPUT_CANCELLED, /* Escape */
};
void tui_input_begin(struct tui_input *in, const char *prompt, const char *initial);
enum tui_input_result tui_input_key(struct tui_input *in, const struct tui_key *k);
/* Draws the prompt and text on row y with the cursor at its end. */
void tui_input_draw(struct tui *t, const struct tui_input *in, int y);

/* Scrollable, searchable text: the Log, Config and Health screens. */
struct tui_pager {
	struct tui_text text;        /* the lines as shown: wrapped to the window */
	struct tui_input search;
	int height;                  /* rows of text on screen, from the last draw */
	char *raw;                   /* the text as given */
	int wrap_w;                  /* the width text was wrapped for; 0 = wrap at the next draw */
	bool follow;                 /* show the end after the next wrap */
};
/* Replaces the text (copied); with follow the end is shown, else the position is kept. */
void tui_pager_set(struct tui_pager *pg, const char *text, bool follow);
/* True if the view shows the last line. */
bool tui_pager_at_end(const struct tui_pager *pg);
/* Scrolling keys, / to search, n and N for the next and previous hit. True if k was used. */
bool tui_pager_key(struct tui *t, struct tui_pager *pg, const struct tui_key *k);
/* Draws the text into r; while a search is typed, its line takes r's last row. */
void tui_pager_draw(struct tui *t, struct tui_pager *pg, const struct tui_rect *r);
void tui_pager_free(struct tui_pager *pg);

#endif
