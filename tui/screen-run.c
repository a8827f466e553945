/*
 * The Run screen: starts Stage 1 (backup), Stage 2 (sync), Stage 3
 * (restore) and check, each optionally as a dry run, and follows the
 * job: the whole job's bar, the current stack's or transfer's bar with
 * bytes and ETA, every stack's line, and the log tail. When the job
 * ends the lines carry the engine's own per-stack result, failures in
 * red, with downtime; the headline says ok only when the job's final
 * state is ok.
 *
 * The job runs on the worker (jobs.c) through sb_jobrun(): the daemon
 * when the mount is up, this process otherwise.
 */
#include <stdlib.h>
#include <string.h>

#include "tui.h"

/* The enabled count in the menu is read again this often, seconds. */
#define COUNT_REFRESH_S 3.0

/* A cancel of the daemon's job, on its own thread: a hung daemon must not freeze the screen. */
struct cancel_call {
	const char *mountpoint;
	int id;
	char *err;           /* NULL when the daemon took it */
};

struct run {
	struct tui_task cancel_task;
	struct cancel_call cancel;
	bool dry_run;
	bool force;          /* restore into a non-empty target */
	bool read_data;      /* check --read-data */
	long log_back;       /* lines scrolled back from the end of the log */
	size_t enabled, stacks;
	double counted_at;
};

static void *run_init(struct tui *t)
{
	(void)t;
	return xcalloc(1, sizeof(struct run));
}

static void run_free(void *data)
{
	struct run *r = data;
	tui_task_join(&r->cancel_task);
	free(r->cancel.err);
	free(r);
}

static void cancel_work(struct tui_task *task)
{
	struct cancel_call *c = task->data;
	free(c->err);
	c->err = NULL;
	sb_client_cancel(c->mountpoint, c->id, &c->err);
}

/* x: an in-process job is cancelled here; the daemon's through jobs/ID/cancel, still followed. */
static void cancel_job(struct run *r, struct tui *t)
{
	int id = tui_jobs_daemon_job(&t->jobs);
	if (id > 0) {
		if (tui_task_running(&r->cancel_task))
			return;
		r->cancel = (struct cancel_call){.mountpoint = t->cfg.mountpoint, .id = id, .err = r->cancel.err};
		tui_task_start(&r->cancel_task, t, cancel_work, &r->cancel);
		tui_message(t, TUI_TONE_WARN, "asking the daemon to cancel job %d: the stacks it stopped are started again", id);
		return;
	}
	tui_message(t, TUI_TONE_WARN,
		    tui_jobs_in_process(&t->jobs) ? "cancelling: the stacks it stopped are started again"
						  : "stopped following; the job goes on in the daemon");
	tui_jobs_cancel(&t->jobs);
}

static void run_resize(void *data, struct tui *t)
{
	(void)data;
	(void)t;
}

static void run_update(void *data, struct tui *t)
{
	struct run *r = data;
	if (tui_task_finished(&r->cancel_task) && r->cancel.err)
		tui_message(t, TUI_TONE_BAD, "job %d not cancelled: %s", r->cancel.id, r->cancel.err);
	double now = sb_now_monotonic();
	if (now - r->counted_at < COUNT_REFRESH_S)
		return;
	r->counted_at = now;
	struct sb_selection sel = {0};
	struct sb_diags diags = {0};
	sb_selection_load(&t->cfg, &sel, &diags);
	r->stacks = sel.n;
	r->enabled = 0;
	for (size_t i = 0; i < sel.n; i++)
		r->enabled += sel.stacks[i].enabled;
	sb_selection_free(&sel);
	sb_diags_free(&diags);
}

static void start(struct run *r, struct tui *t, enum sb_job_kind kind)
{
	struct sb_job_request req = {.kind = kind, .dry_run = r->dry_run};
	if (kind == SB_JOB_RESTORE)
		req.force = r->force;
	if (kind == SB_JOB_CHECK)
		req.read_data = r->read_data;
	r->log_back = 0;
	if (r->dry_run || kind == SB_JOB_CHECK || kind == SB_JOB_SYNC) {
		tui_run_job(t, &req);
		return;
	}
	cleanup_free char *q =
		kind == SB_JOB_BACKUP
			? xasprintf("back up the %zu enabled stack(s) now? each is stopped while it is backed up",
				    r->enabled)
			: xasprintf("copy the repository back from the cloud into %s%s now?",
				    t->cfg.restore_dir ? t->cfg.restore_dir : "RESTORE_DIR",
				    r->force ? " (forced into a non-empty directory)" : "");
	tui_run_job_confirm(t, &req, q);
}

static bool run_key(void *data, struct tui *t, const struct tui_key *k)
{
	struct run *r = data;
	bool busy = tui_jobs_busy(&t->jobs);
	if (k->fn) {
		switch (k->code) {
		case KEY_PPAGE:
		case KEY_UP:
			r->log_back += k->code == KEY_UP ? 1 : 10;
			return true;
		case KEY_NPAGE:
		case KEY_DOWN:
			r->log_back -= k->code == KEY_DOWN ? 1 : 10;
			if (r->log_back < 0)
				r->log_back = 0;
			return true;
		case KEY_END:
			r->log_back = 0;
			return true;
		default:
			return false;
		}
	}
	switch (k->code) {
	case 'b':
	case 's':
	case 'r':
	case 'c':
		if (busy) {
			tui_message(t, TUI_TONE_WARN, "a job runs: wait for it (x cancels it)");
			return true;
		}
		start(r, t,
		      k->code == 'b'   ? SB_JOB_BACKUP
		      : k->code == 's' ? SB_JOB_SYNC
		      : k->code == 'r' ? SB_JOB_RESTORE
				       : SB_JOB_CHECK);
		return true;
	case 'd':
		r->dry_run = !r->dry_run;
		tui_message(t, TUI_TONE_NORMAL, "dry run %s", r->dry_run ? "on: nothing is changed" : "off");
		return true;
	case 'f':
		r->force = !r->force;
		tui_message(t, TUI_TONE_NORMAL, "restore into a non-empty directory: %s", r->force ? "allowed" : "refused");
		return true;
	case 'R':
		r->read_data = !r->read_data;
		tui_message(t, TUI_TONE_NORMAL, "check reads all data: %s", r->read_data ? "yes (slow)" : "no");
		return true;
	case 'x':
		if (busy)
			cancel_job(r, t);
		return true;
	default:
		return false;
	}
}

static const char *onoff(bool b)
{
	return b ? "on" : "off";
}

static int draw_menu(struct run *r, struct tui *t, const struct tui_rect *rc, int y)
{
	cleanup_free char *head = xasprintf("Start a job   (d dry run: %s)", onoff(r->dry_run));
	tui_put_attr(t, y++, 1, rc->w - 1, head, A_BOLD);
	cleanup_free char *remote = t->cfg.rclone_remote
					    ? xasprintf("%s:%s", t->cfg.rclone_remote,
							t->cfg.rclone_path ? t->cfg.rclone_path : "")
					    : xstrdup("no RCLONE_REMOTE configured");
	cleanup_free char *b = xasprintf(" b  %s (%zu of %zu enabled)", tui_run_kind_title(SB_JOB_BACKUP),
					 r->enabled, r->stacks);
	cleanup_free char *s = xasprintf(" s  %s (%s)", tui_run_kind_title(SB_JOB_SYNC), remote);
	cleanup_free char *re = xasprintf(" r  %s (f force: %s)", tui_run_kind_title(SB_JOB_RESTORE),
					  onoff(r->force));
	cleanup_free char *c = xasprintf(" c  %s (R read all data: %s)", tui_run_kind_title(SB_JOB_CHECK),
					 onoff(r->read_data));
	const char *items[] = {b, s, re, c};
	for (size_t i = 0; i < SB_ARRAY_SIZE(items); i++)
		tui_put(t, y++, 1, rc->w - 1, items[i], TUI_TONE_NORMAL);
	cleanup_free char *who =
		t->mount == SB_MOUNT_MOUNTED
			? xasprintf("jobs run in the daemon mounted at %s", t->cfg.mountpoint)
		: t->mount == SB_MOUNT_STALE
			? xasprintf("jobs cannot run: %s", t->mount_error ? t->mount_error : "stale mount")
			: xasprintf("jobs run in this process (no daemon at %s)",
				    t->cfg.mountpoint ? t->cfg.mountpoint : "MOUNTPOINT");
	tui_put(t, y++, 1, rc->w - 1, who, t->mount == SB_MOUNT_STALE ? TUI_TONE_BAD : TUI_TONE_DIM);
	return y;
}

/* Draws the job from the view; caller holds t->jobs.mu. */
static void draw_job(struct run *r, struct tui *t, const struct tui_run_view *v,
		     const struct tui_rect *rc, int y)
{
	int bottom = rc->y + rc->h;
	enum tui_tone tone;
	cleanup_free char *head = tui_run_headline(v, &tone);
	tui_put_attr(t, y++, 1, rc->w - 1, head, tui_tone_attr(t, tone) | A_BOLD);

	/* The bars: the whole job (per-stack kinds), then the current step. */
	int label = 9, barw = rc->w - label - 2 - 6;
	double overall = tui_run_overall_percent(v);
	if (overall >= 0 && barw > 4) {
		tui_put(t, y, 1, label, "job", TUI_TONE_DIM);
		tui_put_bar(t, y, 1 + label, barw, overall);
		cleanup_free char *pct = xasprintf("%5.1f%%", overall);
		tui_put(t, y, 1 + label + barw + 1, 6, pct, TUI_TONE_NORMAL);
		y++;
	}
	if (v->phase == TUI_RUN_RUNNING) {
		const struct sb_job_progress *p = &v->progress;
		if (barw > 4) {
			tui_put(t, y, 1, label, p->phase[0] ? p->phase : "step", TUI_TONE_DIM);
			tui_put_bar(t, y, 1 + label, barw, p->percent);
			cleanup_free char *pct = xasprintf("%5.1f%%", p->percent);
			tui_put(t, y, 1 + label + barw + 1, 6, pct, TUI_TONE_NORMAL);
			y++;
		}
		cleanup_free char *text = tui_progress_text(p);
		tui_put(t, y++, 1, rc->w - 1, text, TUI_TONE_NORMAL);
	}
	if (v->phase == TUI_RUN_ERROR || (v->phase == TUI_RUN_DONE && v->error && v->n_stacks == 0)) {
		/* Why it could not run, whole: it usually names the fix. */
		struct sb_strv err = {0};
		tui_wrap(v->error, rc->w - 2, &err);
		for (size_t i = 0; i < err.n && y < bottom - 1; i++)
			tui_put(t, y++, 1, rc->w - 1, err.v[i], TUI_TONE_BAD);
		sb_strv_free(&err);
	}
	if (v->phase == TUI_RUN_DONE && v->summary) {
		struct sb_strv sum = {0};
		tui_wrap(v->summary, rc->w - 2, &sum);
		for (size_t i = 0; i < sum.n && i < 3 && y < bottom - 1; i++)
			tui_put(t, y++, 1, rc->w - 1, sum.v[i], v->state == SB_JOB_OK ? TUI_TONE_GOOD : TUI_TONE_BAD);
		sb_strv_free(&sum);
	}

	/* One line per stack, each failure's cause whole under it. */
	struct sb_strv lines = {0};
	enum tui_tone *tones = NULL;
	int indent = 4 + tui_run_name_width(v);
	for (size_t i = 0; i < v->n_stacks; i++) {
		size_t from = lines.n;
		sb_strv_push_owned(&lines, tui_run_stack_line(v, &v->stacks[i], &tone));
		if (v->stacks[i].error && v->stacks[i].has_result) {
			struct sb_strv w = {0};
			tui_wrap(v->stacks[i].error, rc->w - indent - 1, &w);
			for (size_t k = 0; k < w.n; k++)
				sb_strv_push_owned(&lines, xasprintf("%*s%s", indent - 2, "", w.v[k]));
			sb_strv_free(&w);
		}
		tones = xrealloc(tones, lines.n * sizeof(*tones));
		for (size_t k = from; k < lines.n; k++)
			tones[k] = k == from ? tone : TUI_TONE_BAD;
	}
	/* Keep at least 3 rows for the log; the newest stacks win the room. */
	int log_min = 3;
	size_t room = bottom - y - log_min - 1 > 0 ? (size_t)(bottom - y - log_min - 1) : 0;
	size_t first = lines.n > room ? lines.n - room : 0;
	for (size_t i = first; i < lines.n; i++)
		tui_put(t, y++, 2, rc->w - 2, lines.v[i], tones[i]);
	sb_strv_free(&lines);
	free(tones);

	/* The log tail fills what is left. */
	if (y >= bottom)
		return;
	tui_put_rule(t, y, rc->w, "log");
	y++;
	int rows = bottom - y;
	if (rows <= 0)
		return;
	long n = (long)v->log.n;
	if (r->log_back > n - rows)
		r->log_back = n - rows > 0 ? n - rows : 0;
	long from = n - rows - r->log_back;
	if (from < 0)
		from = 0;
	for (long i = from; i < n && y < bottom; i++) {
		const char *l = v->log.v[i];
		enum tui_tone lt = strstr(l, " error: ")     ? TUI_TONE_BAD
				   : strstr(l, " warning: ") ? TUI_TONE_WARN
							     : TUI_TONE_NORMAL;
		tui_put(t, y++, 1, rc->w - 1, l, lt);
	}
}

static void run_draw(void *data, struct tui *t, const struct tui_rect *rc)
{
	struct run *r = data;
	int y = rc->y;
	pthread_mutex_lock(&t->jobs.mu);
	const struct tui_run_view *v = &t->jobs.view;
	bool have_job = v->phase != TUI_RUN_IDLE;
	bool busy = t->jobs.busy;
	/* The menu stays on top while nothing runs; a finished job's result stays below it. */
	if (!busy)
		y = draw_menu(r, t, rc, y) + 1;
	if (have_job)
		draw_job(r, t, v, rc, y);
	pthread_mutex_unlock(&t->jobs.mu);
}

static const char *run_footer(void *data, struct tui *t)
{
	(void)data;
	if (tui_jobs_busy(&t->jobs))
		return "x:cancel arrows/pgup/pgdn:scroll the log end:follow q:quit";
	return "b:backup s:sync r:restore c:check d:dry-run f:force R:read-data q:quit";
}

const struct tui_screen tui_screen_run = {
	.name = "Run",
	.init = run_init,
	.free = run_free,
	.resize = run_resize,
	.key = run_key,
	.update = run_update,
	.draw = run_draw,
	.footer = run_footer,
};
