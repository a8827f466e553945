/*
 * stackback-tui: the terminal, the main loop and the screens' table.
 *
 * The main loop sleeps in poll() on the terminal and on a wake pipe
 * that the job worker and background tasks write to; every wake-up
 * lets the current screen pick up news and redraws (ncurses sends only
 * what changed). The terminal is restored on every way out: a normal
 * quit, SIGINT/SIGTERM/SIGHUP (which cancel an in-process job first, so
 * its stacks are started again), and crash signals (the terminal is
 * reset from the handler with the sequences saved at start).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <langinfo.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "sb-build-config.h"
#include "stackback/log.h"
#include "tui.h"

/* The screens, in the order of their number keys (1-6, F1-F6). */
static const struct tui_screen *const screens[TUI_NSCREENS] = {
	[TUI_SCREEN_STACKS] = &tui_screen_stacks,
	[TUI_SCREEN_RUN] = &tui_screen_run,
	[TUI_SCREEN_SNAPSHOTS] = &tui_screen_snapshots,
	[TUI_SCREEN_HEALTH] = &tui_screen_health,
	[TUI_SCREEN_CONFIG] = &tui_screen_config,
	[TUI_SCREEN_LOG] = &tui_screen_log,
};

/* How often the mount point is looked at again, seconds. */
#define MOUNT_RECHECK_S 5.0
/* The smallest terminal the layout is made for is 80x24; below this it gives up drawing. */
#define MIN_COLS 40
#define MIN_ROWS 10

/* ---- signals ---- */

/* Written by signal handlers. */
static volatile sig_atomic_t quit_signal;
static int signal_wake_fd = -1;

/* Saved at start for the crash handler, which may not call ncurses. */
static struct termios saved_termios;
static bool have_termios;
static char reset_seq[256];
static size_t reset_len;

static void on_quit_signal(int sig)
{
	quit_signal = sig;
	if (signal_wake_fd >= 0) {
		int saved = errno;
		ssize_t w = write(signal_wake_fd, "s", 1);
		(void)w;
		errno = saved;
	}
}

static void on_crash_signal(int sig)
{
	/* Only async-signal-safe calls: the terminal must come back even from a SIGSEGV. */
	if (reset_len > 0) {
		ssize_t w = write(STDOUT_FILENO, reset_seq, reset_len);
		(void)w;
	}
	if (have_termios)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved_termios);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void install_signals(void)
{
	struct sigaction sa = {.sa_handler = on_quit_signal};
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);

	struct sigaction crash = {.sa_handler = on_crash_signal};
	sigemptyset(&crash.sa_mask);
	crash.sa_flags = SA_RESETHAND;
	static const int fatal[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGQUIT};
	for (size_t i = 0; i < SB_ARRAY_SIZE(fatal); i++)
		sigaction(fatal[i], &crash, NULL);
}

/* ---- the application ---- */

void tui_wake(struct tui *t)
{
	int saved = errno;
	ssize_t w = write(t->wake_fd[1], "w", 1);
	(void)w; /* a full pipe already holds a wake-up */
	errno = saved;
}

void tui_message(struct tui *t, enum tui_tone tone, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	free(t->message);
	t->message = tui_sanitize(msg);
	free(msg);
	t->message_tone = tone;
	/* Failures stay longer: they are what the user must not miss. */
	t->message_until = sb_now_monotonic() + (tone == TUI_TONE_BAD ? 15 : 5);
}

void tui_show(struct tui *t, enum tui_screen_id id)
{
	t->current = id;
	curs_set(0);
}

void tui_run_job(struct tui *t, struct sb_job_request *req)
{
	if (!t->cfg_loaded) {
		sb_job_request_free(req);
		tui_message(t, TUI_TONE_BAD, "the configuration has errors: fix them first (screen 5)");
		return;
	}
	cleanup_free char *err = NULL;
	if (tui_jobs_start(&t->jobs, req, &err) < 0) {
		tui_message(t, TUI_TONE_BAD, "%s", err);
		return;
	}
	tui_show(t, TUI_SCREEN_RUN);
}

void tui_run_job_confirm(struct tui *t, struct sb_job_request *req, const char *question)
{
	sb_job_request_free(&t->confirm_req);
	free(t->confirm);
	t->confirm_req = *req;
	*req = (struct sb_job_request){0};
	t->confirm = tui_sanitize(question);
}

/* The answer to a pending question: y starts the job, anything else drops it. */
static void answer_confirm(struct tui *t, const struct tui_key *k)
{
	free(t->confirm);
	t->confirm = NULL;
	if (tui_key_is(k, 'y') || tui_key_is(k, 'Y')) {
		struct sb_job_request req = t->confirm_req;
		t->confirm_req = (struct sb_job_request){0};
		tui_run_job(t, &req);
	} else {
		sb_job_request_free(&t->confirm_req);
		tui_message(t, TUI_TONE_DIM, "not started");
	}
}

struct mount_check {
	const struct sb_config *cfg;
	enum sb_mount_state state;
	char *err;
};

static void mount_work(struct tui_task *task)
{
	struct mount_check *mc = task->data;
	free(mc->err);
	mc->err = NULL;
	mc->state = sb_mount_state(mc->cfg->mountpoint, &mc->err);
}

static struct mount_check mount_check;

static void check_mount(struct tui *t)
{
	if (tui_task_finished(&t->mount_task)) {
		t->mount = mount_check.state;
		free(t->mount_error);
		t->mount_error = xstrdup(mount_check.err);
	}
	double now = sb_now_monotonic();
	if (!tui_task_running(&t->mount_task) && now - t->mount_checked >= MOUNT_RECHECK_S &&
	    t->cfg.mountpoint) {
		t->mount_checked = now;
		mount_check.cfg = &t->cfg;
		tui_task_start(&t->mount_task, t, mount_work, &mount_check);
	}
}

/* ---- drawing the frame ---- */

static void draw_header(struct tui *t)
{
	attr_t bar = tui_bar_attr(t);
	attron(bar);
	mvhline(0, 0, ' ', t->cols);
	attroff(bar);
	int x = 0;
	tui_put_attr(t, 0, x, 11, " stackback ", bar | A_BOLD);
	x += 11;
	bool busy = tui_jobs_busy(&t->jobs);
	for (int i = 0; i < TUI_NSCREENS && x < t->cols; i++) {
		/* A star on the Run tab while a job runs, whichever screen is shown. */
		cleanup_free char *tab = xasprintf(" %d %s%s", i + 1, screens[i]->name,
						   busy && i == TUI_SCREEN_RUN ? "* " : " ");
		int w = tui_text_width(tab);
		attr_t a = (enum tui_screen_id)i == t->current ? (A_REVERSE | A_BOLD) : bar;
		if (t->colors && (enum tui_screen_id)i == t->current)
			a = A_BOLD | A_REVERSE;
		tui_put_attr(t, 0, x, w, tab, a);
		x += w;
	}
	/* Who runs the jobs: the user must know whether the daemon is in play. */
	const char *who = t->mount == SB_MOUNT_MOUNTED ? "daemon"
			  : t->mount == SB_MOUNT_STALE ? "STALE MOUNT"
						       : "local";
	cleanup_free char *right = xasprintf("%s ", who);
	int rw = tui_text_width(right);
	if (x + rw < t->cols)
		tui_put_attr(t, 0, t->cols - rw, rw, right,
			     t->mount == SB_MOUNT_STALE ? (tui_tone_attr(t, TUI_TONE_BAD) | A_REVERSE) : bar);
}

static void draw_footer(struct tui *t, const char *keys)
{
	/*
	 * The tabs in the header show the number keys; the footer lists the
	 * screen's keys as the screen words them (q is text while typing).
	 */
	cleanup_free char *s = xasprintf(" %s", keys);
	attr_t a = tui_bar_attr(t);
	tui_put_attr(t, t->rows - 1, 0, t->cols, s, a);
}

static void draw(struct tui *t)
{
	erase();
	curs_set(0);
	if (t->cols < MIN_COLS || t->rows < MIN_ROWS) {
		cleanup_free char *s = xasprintf("terminal too small: %dx%d, needs %dx%d", t->cols, t->rows,
						 MIN_COLS, MIN_ROWS);
		mvaddnstr(0, 0, s, t->cols);
		refresh();
		return;
	}
	const struct tui_screen *sc = screens[t->current];
	void *data = t->screen_data[t->current];
	draw_header(t);
	if (t->message && sb_now_monotonic() > t->message_until) {
		free(t->message);
		t->message = NULL;
	}
	if (t->confirm) {
		/* However long the question, the answer keys stay visible. */
		attr_t a = tui_tone_attr(t, TUI_TONE_WARN) | A_BOLD | A_REVERSE;
		tui_put_attr(t, t->rows - 2, 0, t->cols - 6, t->confirm, a);
		tui_put_attr(t, t->rows - 2, t->cols - 6, 6, " [y/N]", a);
	}
	else if (t->message)
		tui_put(t, t->rows - 2, 0, t->cols, t->message, t->message_tone);
	else if (t->mount == SB_MOUNT_STALE && t->mount_error)
		tui_put(t, t->rows - 2, 0, t->cols, t->mount_error, TUI_TONE_BAD);
	draw_footer(t, sc->footer(data, t));
	struct tui_rect r = {.y = 1, .x = 0, .h = t->rows - 3, .w = t->cols};
	/* Last, so a screen's text cursor (an input line) stays where it put it. */
	sc->draw(data, t, &r);
	refresh();
}

/* ---- keys ---- */

static void begin_quit(struct tui *t)
{
	t->quitting = true;
	if (tui_jobs_busy(&t->jobs)) {
		tui_jobs_cancel(&t->jobs);
		tui_message(t, TUI_TONE_WARN,
			    tui_jobs_in_process(&t->jobs)
				    ? "cancelling the job: its stacks are started again, then the TUI quits"
				    : "leaving; the job goes on in the daemon");
	}
}

static void global_key(struct tui *t, const struct tui_key *k)
{
	if (k->fn && k->code >= (wint_t)KEY_F(1) && k->code <= (wint_t)KEY_F(TUI_NSCREENS)) {
		tui_show(t, (enum tui_screen_id)(k->code - KEY_F(1)));
		return;
	}
	if (k->fn)
		return;
	if (k->code >= '1' && k->code < '1' + TUI_NSCREENS) {
		tui_show(t, (enum tui_screen_id)(k->code - '1'));
		return;
	}
	switch (k->code) {
	case '\t':
		tui_show(t, (enum tui_screen_id)((t->current + 1) % TUI_NSCREENS));
		break;
	case 12: /* ^L */
		clearok(curscr, TRUE);
		break;
	case 'q':
	case 'Q':
		if (!tui_jobs_busy(&t->jobs) || t->quit_armed) {
			begin_quit(t);
		} else {
			t->quit_armed = true;
			tui_message(t, TUI_TONE_WARN,
				    tui_jobs_in_process(&t->jobs)
					    ? "a job runs in this process: q again cancels it (stacks are started again) and quits"
					    : "a job runs in the daemon: q again leaves it running there and quits");
		}
		break;
	default:
		break;
	}
}

static void handle_key(struct tui *t, const struct tui_key *k)
{
	if (k->fn && k->code == KEY_RESIZE) {
		getmaxyx(stdscr, t->rows, t->cols);
		for (int i = 0; i < TUI_NSCREENS; i++)
			screens[i]->resize(t->screen_data[i], t);
		clearok(curscr, TRUE);
		return;
	}
	if (t->confirm) {
		answer_confirm(t, k);
		return;
	}
	if (!tui_key_is(k, 'q') && !tui_key_is(k, 'Q'))
		t->quit_armed = false;
	const struct tui_screen *sc = screens[t->current];
	if (!sc->key(t->screen_data[t->current], t, k))
		global_key(t, k);
}

/* ---- start and end ---- */

static void usage(FILE *out)
{
	fprintf(out, "usage: stackback-tui [-c CONFIG]...\n\n"
		     "The interactive front end of stackback: select stacks, run backups,\n"
		     "syncs, restores and checks with live progress, browse snapshots.\n\n"
		     "  -c, --config FILE   configuration (repeatable; later files override);\n"
		     "                      default $STACKBACK_CONFIG, else %s\n"
		     "  -h, --help          this help\n"
		     "  -V, --version       the version\n",
		SB_DEFAULT_CONFIG);
}

static int load_config(struct tui *t)
{
	extern char **environ;
	int rc = sb_config_load(&t->cfg, (const char *const *)t->config_paths.v, t->config_paths.n,
				environ, &t->diags);
	t->cfg_loaded = rc == 0;
	enum sb_log_level level;
	if (t->cfg.log_level && sb_log_level_parse(t->cfg.log_level, &level) == 0)
		sb_log_set_level(level);
	return rc;
}

static int open_wake_pipe(struct tui *t)
{
	if (pipe2(t->wake_fd, O_NONBLOCK | O_CLOEXEC) < 0) {
		fprintf(stderr, "stackback-tui: error: cannot create a pipe: %s\n", strerror(errno));
		return -1;
	}
	signal_wake_fd = t->wake_fd[1];
	return 0;
}

static void start_terminal(struct tui *t)
{
	if (tcgetattr(STDIN_FILENO, &saved_termios) == 0)
		have_termios = true;
	initscr();
	cbreak();
	noecho();
	nonl();
	keypad(stdscr, TRUE);
	nodelay(stdscr, TRUE);
	set_escdelay(50);
	curs_set(0);
	tui_colors_init(t);
	getmaxyx(stdscr, t->rows, t->cols);
	reset_len = tui_terminal_reset_sequence(reset_seq, sizeof(reset_seq));
	install_signals();
}

static void drain_wake(struct tui *t)
{
	char buf[256];
	while (read(t->wake_fd[0], buf, sizeof(buf)) > 0)
		;
}

static void loop(struct tui *t)
{
	for (;;) {
		check_mount(t);
		if (t->quitting && tui_jobs_reap(&t->jobs))
			return;
		screens[t->current]->update(t->screen_data[t->current], t);
		draw(t);

		struct pollfd p[2] = {
			{.fd = STDIN_FILENO, .events = POLLIN},
			{.fd = t->wake_fd[0], .events = POLLIN},
		};
		/* Once a second anyway: ages and the mount state move on their own. */
		int rc = poll(p, 2, 1000);
		if (rc < 0 && errno != EINTR)
			return;
		drain_wake(t);
		if (quit_signal && !t->quitting)
			begin_quit(t);
		if ((p[0].revents & (POLLHUP | POLLERR | POLLNVAL)) && !(p[0].revents & POLLIN)) {
			/* The terminal is gone: nobody to ask, cancel and leave. */
			if (!t->quitting)
				begin_quit(t);
			continue;
		}
		/* After EINTR too: a SIGWINCH leaves a KEY_RESIZE to read. */
		wint_t wc;
		int r;
		int budget = 256;
		while (budget-- > 0 && (r = get_wch(&wc)) != ERR) {
			struct tui_key k = {.code = wc, .fn = r == KEY_CODE_YES};
			handle_key(t, &k);
		}
		if (t->quitting && !tui_jobs_busy(&t->jobs))
			return;
	}
}

int main(int argc, char **argv)
{
	struct tui t = {.wake_fd = {-1, -1}};
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{0},
	};
	int c;
	while ((c = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			sb_strv_push(&t.config_paths, optarg);
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("stackback-tui %s\n", SB_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
		fprintf(stderr, "stackback-tui: error: needs a terminal (use 'stackback' in scripts)\n");
		return 2;
	}
	if (t.config_paths.n == 0) {
		const char *env = getenv("STACKBACK_CONFIG");
		sb_strv_push(&t.config_paths, env && *env ? env : SB_DEFAULT_CONFIG);
	}
	setlocale(LC_ALL, "");
	t.utf8 = strcmp(nl_langinfo(CODESET), "UTF-8") == 0;

	load_config(&t);
	if (open_wake_pipe(&t) < 0)
		return 1;
	/* Log lines would scribble over the screen: they go to the log file and the Log screen. */
	sb_log_set_stderr(false);
	sb_log_ring_enable(2000);
	tui_jobs_init(&t.jobs, &t);
	t.mount = SB_MOUNT_ABSENT;

	start_terminal(&t);
	for (int i = 0; i < TUI_NSCREENS; i++)
		t.screen_data[i] = screens[i]->init(&t);
	/* Broken configuration: show what is wrong first. */
	t.current = t.cfg_loaded ? TUI_SCREEN_STACKS : TUI_SCREEN_CONFIG;

	loop(&t);

	tui_jobs_shutdown(&t.jobs);
	tui_task_join(&t.mount_task);
	for (int i = 0; i < TUI_NSCREENS; i++)
		screens[i]->free(t.screen_data[i]);
	endwin();
	sb_log_set_stderr(true);

	int rc = 0;
	if (quit_signal) {
		fprintf(stderr, "stackback-tui: stopped by signal %d\n", (int)quit_signal);
		rc = 128 + (int)quit_signal;
	}
	free(mount_check.err);
	free(t.mount_error);
	free(t.message);
	free(t.confirm);
	sb_job_request_free(&t.confirm_req);
	sb_diags_free(&t.diags);
	sb_config_free(&t.cfg);
	sb_strv_free(&t.config_paths);
	close(t.wake_fd[0]);
	close(t.wake_fd[1]);
	return rc;
}
