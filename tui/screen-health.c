/*
 * The Health screen: the checks of `stackback doctor` (core/doctor.c),
 * each with its result and, when it failed or warns, the command that
 * fixes it. The checks run on a background task (a dead remote costs
 * REMOTE_TIMEOUT) and fill in one by one; `r` runs them again.
 */
#include <stdlib.h>
#include <string.h>

#include "tui.h"

/* The checks as the task fills them in. */
struct health_run {
	const struct sb_config *cfg;
	const struct sb_diags *diags;
	atomic_bool cancel;
	pthread_mutex_t mu;                /* protects checks, done */
	struct sb_doctor_check *checks;    /* mu: copies, owned */
	bool *done;                        /* mu */
	size_t n;
	struct tui *t;
};

struct health {
	struct health_run *run;
	struct tui_task task;
	bool started;
	size_t top;                        /* first line shown */
	int height;
};

static void run_free(struct health_run *hr)
{
	if (!hr)
		return;
	for (size_t i = 0; i < hr->n; i++) {
		free(hr->checks[i].detail);
		free(hr->checks[i].fix);
	}
	free(hr->checks);
	free(hr->done);
	pthread_mutex_destroy(&hr->mu);
	free(hr);
}

static void on_check(void *userdata, size_t index, const struct sb_doctor_check *c)
{
	struct health_run *hr = userdata;
	if (index >= hr->n)
		return;
	pthread_mutex_lock(&hr->mu);
	struct sb_doctor_check *dst = &hr->checks[index];
	free(dst->detail);
	free(dst->fix);
	*dst = *c;
	dst->detail = xstrdup(c->detail);
	dst->fix = xstrdup(c->fix);
	hr->done[index] = true;
	pthread_mutex_unlock(&hr->mu);
	tui_wake(hr->t);
}

static void health_work(struct tui_task *task)
{
	struct health_run *hr = task->data;
	struct sb_doctor_opts o = {
		.diags = hr->diags,
		.cancel = &hr->cancel,
		.on_check = on_check,
		.userdata = hr,
	};
	struct sb_doctor_report rep = {0};
	sb_doctor_run(hr->cfg, &o, &rep);
	/* The report is the authority: it also holds checks the callback may have missed. */
	for (size_t i = 0; i < rep.n && i < hr->n; i++)
		on_check(hr, i, &rep.v[i]);
	sb_doctor_report_free(&rep);
}

static void start(struct health *h, struct tui *t)
{
	if (tui_task_running(&h->task))
		return;
	tui_task_finished(&h->task);
	run_free(h->run);
	struct health_run *hr = xcalloc(1, sizeof(*hr));
	hr->cfg = &t->cfg;
	hr->diags = &t->diags;
	hr->t = t;
	atomic_init(&hr->cancel, false);
	pthread_mutex_init(&hr->mu, NULL);
	hr->n = sb_doctor_check_count();
	hr->checks = xcalloc(hr->n ? hr->n : 1, sizeof(*hr->checks));
	hr->done = xcalloc(hr->n ? hr->n : 1, sizeof(*hr->done));
	h->run = hr;
	h->started = true;
	tui_task_start(&h->task, t, health_work, hr);
}

static void *health_init(struct tui *t)
{
	(void)t;
	/* Checks start when the screen is first shown: they run docker, restic and rclone. */
	return xcalloc(1, sizeof(struct health));
}

static void health_free(void *data)
{
	struct health *h = data;
	if (h->run)
		atomic_store(&h->run->cancel, true);
	tui_task_join(&h->task);
	run_free(h->run);
	free(h);
}

static void health_resize(void *data, struct tui *t)
{
	(void)data;
	(void)t;
}

static void health_update(void *data, struct tui *t)
{
	struct health *h = data;
	if (!h->started)
		start(h, t);
	tui_task_finished(&h->task);
}

static bool health_key(void *data, struct tui *t, const struct tui_key *k)
{
	struct health *h = data;
	if (k->fn) {
		if (k->code == KEY_UP && h->top > 0)
			h->top--;
		else if (k->code == KEY_DOWN)
			h->top++;
		else if (k->code == KEY_PPAGE)
			h->top = h->top > (size_t)h->height ? h->top - (size_t)h->height : 0;
		else if (k->code == KEY_NPAGE)
			h->top += (size_t)h->height;
		else
			return false;
		return true;
	}
	if (k->code == 'r') {
		if (tui_task_running(&h->task)) {
			tui_message(t, TUI_TONE_DIM, "the checks are still running");
		} else {
			start(h, t);
			tui_message(t, TUI_TONE_DIM, "running the checks again");
		}
		return true;
	}
	return false;
}

static void health_draw(void *data, struct tui *t, const struct tui_rect *r)
{
	struct health *h = data;
	struct health_run *hr = h->run;
	if (!hr)
		return;
	pthread_mutex_lock(&hr->mu);
	enum tui_tone tone;
	cleanup_free char *sum = tui_health_summary(hr->checks, hr->done, hr->n,
						    tui_task_running(&h->task), &tone);
	tui_put_attr(t, r->y, 1, r->w - 1, sum, tui_tone_attr(t, tone) | A_BOLD);

	/* Lines: each check, wrapped, then its fix indented under it. */
	struct sb_strv lines = {0};
	enum tui_tone *tones = NULL;
	int title_w = r->w >= 80 ? 22 : 14;
	int indent = 8 + 1 + title_w + 2;
	int width = r->w - 2;
	for (size_t i = 0; i < hr->n; i++) {
		const struct sb_doctor_check *c = hr->done[i] ? &hr->checks[i] : NULL;
		size_t from = lines.n;
		cleanup_free char *line = tui_health_line(c, sb_doctor_check_title(i), title_w, &tone);
		struct sb_strv w = {0};
		tui_wrap(line, width, &w);
		for (size_t k = 0; k < w.n; k++) {
			/* Continuations line up under the detail. */
			if (k == 0) {
				sb_strv_push(&lines, w.v[0]);
				continue;
			}
			struct sb_strv w2 = {0};
			tui_wrap(w.v[k], width - indent, &w2);
			for (size_t m = 0; m < w2.n; m++)
				sb_strv_push_owned(&lines, xasprintf("%*s%s", indent, "", w2.v[m]));
			sb_strv_free(&w2);
		}
		sb_strv_free(&w);
		if (c && c->fix) {
			cleanup_free char *fix = tui_sanitize(c->fix);
			cleanup_free char *fl = xasprintf("fix: %s", fix);
			tui_wrap(fl, width - indent, &w);
			for (size_t k = 0; k < w.n; k++)
				sb_strv_push_owned(&lines, xasprintf("%*s%s%s", indent, "", k ? "     " : "", w.v[k]));
			sb_strv_free(&w);
		}
		tones = xrealloc(tones, (lines.n + 1) * sizeof(*tones));
		for (size_t k = from; k < lines.n; k++)
			tones[k] = k == from || !c || !c->fix ? tone
				   : c->result == SB_DOCTOR_FAILED ? TUI_TONE_BAD
								  : TUI_TONE_WARN;
	}
	pthread_mutex_unlock(&hr->mu);

	h->height = r->h - 2 > 1 ? r->h - 2 : 1;
	if (lines.n <= (size_t)h->height)
		h->top = 0;
	else if (h->top > lines.n - (size_t)h->height)
		h->top = lines.n - (size_t)h->height;
	for (int i = 0; i < h->height && h->top + (size_t)i < lines.n; i++)
		tui_put(t, r->y + 2 + i, 1, r->w - 1, lines.v[h->top + (size_t)i], tones[h->top + (size_t)i]);
	sb_strv_free(&lines);
	free(tones);
}

static const char *health_footer(void *data, struct tui *t)
{
	(void)data;
	(void)t;
	return "r:run the checks again arrows/pgup/pgdn:scroll q:quit";
}

const struct tui_screen tui_screen_health = {
	.name = "Health",
	.init = health_init,
	.free = health_free,
	.resize = health_resize,
	.key = health_key,
	.update = health_update,
	.draw = health_draw,
	.footer = health_footer,
};
