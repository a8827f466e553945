/*
 * The Snapshots screen: the stacks on the left, the chosen stack's
 * snapshots (newest first) on the right, from one `restic snapshots`
 * of the whole repository run on a background task. The list is asked
 * again after every job and on `r`.
 */
#include <stdlib.h>
#include <string.h>

#include "stackback/restic.h"
#include "tui.h"

/* Width of the stack column. */
#define STACKS_W 22

struct snap_load {
	const struct sb_config *cfg;
	struct sb_snapshot_list list;
	bool no_repo;
	char *err;
};

struct snapshots {
	struct sb_selection sel;
	struct sb_strv stacks;        /* the left column */
	size_t stack_cur, stack_top;
	size_t *snaps;                /* indexes into the list of the current stack's snapshots */
	size_t n_snaps;
	size_t snap_cur, snap_top;
	bool focus_right;

	struct sb_snapshot_list list; /* the last complete listing */
	bool have_list;
	char *note;                   /* why there is no list */
	struct snap_load load;
	struct tui_task task;
	uint64_t jobs_seen;
	bool started;
	int height;
	char *want_stack;             /* select this stack once the list is built */
};

static void load_work(struct tui_task *task)
{
	struct snap_load *ld = task->data;
	struct sb_restic r;
	if (sb_restic_open(&r, ld->cfg, ld->cfg->restic_repository, &ld->err) < 0)
		return;
	if (!sb_restic_repo_exists(&r))
		ld->no_repo = true;
	else
		sb_restic_snapshots(&r, NULL, &ld->list, &ld->err);
	sb_restic_close(&r);
}

static void start_load(struct snapshots *s, struct tui *t)
{
	if (tui_task_running(&s->task) || !t->cfg.restic_repository)
		return;
	sb_snapshot_list_free(&s->load.list);
	free(s->load.err);
	s->load = (struct snap_load){.cfg = &t->cfg};
	s->started = true;
	tui_task_start(&s->task, t, load_work, &s->load);
}

static void pick_stack_snaps(struct snapshots *s)
{
	free(s->snaps);
	s->snaps = NULL;
	s->n_snaps = 0;
	if (s->stack_cur < s->stacks.n)
		s->n_snaps = tui_snapshots_for(&s->list, s->stacks.v[s->stack_cur], &s->snaps);
	if (s->snap_cur >= s->n_snaps)
		s->snap_cur = s->n_snaps ? s->n_snaps - 1 : 0;
	if (s->snap_top > s->snap_cur)
		s->snap_top = s->snap_cur;
}

static void rebuild(struct snapshots *s, struct tui *t)
{
	cleanup_free char *keep = s->want_stack ? xstrdup(s->want_stack)
				  : s->stack_cur < s->stacks.n ? xstrdup(s->stacks.v[s->stack_cur])
							      : NULL;
	sb_selection_free(&s->sel);
	struct sb_diags d = {0};
	sb_selection_load(&t->cfg, &s->sel, &d);
	sb_diags_free(&d);
	sb_strv_free(&s->stacks);
	tui_snapshot_stacks(&s->sel, s->have_list ? &s->list : NULL, &s->stacks);
	s->stack_cur = 0;
	for (size_t i = 0; keep && i < s->stacks.n; i++)
		if (strcmp(s->stacks.v[i], keep) == 0)
			s->stack_cur = i;
	if (s->want_stack && s->stack_cur < s->stacks.n &&
	    strcmp(s->stacks.v[s->stack_cur], s->want_stack) == 0) {
		free(s->want_stack);
		s->want_stack = NULL;
	}
	pick_stack_snaps(s);
}

static void take_load(struct snapshots *s, struct tui *t)
{
	if (!tui_task_finished(&s->task))
		return;
	free(s->note);
	s->note = NULL;
	if (s->load.err) {
		s->note = xasprintf("cannot list snapshots: %s", s->load.err);
		return;
	}
	if (s->load.no_repo)
		s->note = xasprintf("no repository at %s yet: the first backup creates it",
				    t->cfg.restic_repository);
	sb_snapshot_list_free(&s->list);
	s->list = s->load.list;
	s->load.list = (struct sb_snapshot_list){0};
	s->have_list = true;
	rebuild(s, t);
}

void tui_snapshots_open(struct tui *t, const char *stack)
{
	struct snapshots *s = t->screen_data[TUI_SCREEN_SNAPSHOTS];
	free(s->want_stack);
	s->want_stack = xstrdup(stack);
	rebuild(s, t);
	s->focus_right = true;
	s->snap_cur = s->snap_top = 0;
	tui_show(t, TUI_SCREEN_SNAPSHOTS);
}

static void *snapshots_init(struct tui *t)
{
	struct snapshots *s = xcalloc(1, sizeof(*s));
	s->jobs_seen = tui_jobs_finished(&t->jobs);
	rebuild(s, t);
	return s;
}

static void snapshots_free(void *data)
{
	struct snapshots *s = data;
	tui_task_join(&s->task);
	sb_snapshot_list_free(&s->load.list);
	free(s->load.err);
	sb_snapshot_list_free(&s->list);
	sb_selection_free(&s->sel);
	sb_strv_free(&s->stacks);
	free(s->snaps);
	free(s->note);
	free(s->want_stack);
	free(s);
}

static void snapshots_resize(void *data, struct tui *t)
{
	(void)data;
	(void)t;
}

static void snapshots_update(void *data, struct tui *t)
{
	struct snapshots *s = data;
	uint64_t jobs = tui_jobs_finished(&t->jobs);
	/* Listing costs a restic run: only when the screen is shown, and again after jobs. */
	if (!s->started || jobs != s->jobs_seen) {
		s->jobs_seen = jobs;
		start_load(s, t);
	}
	take_load(s, t);
}

static void move_in(size_t *cur, size_t *top, size_t n, long delta, int h)
{
	if (n == 0) {
		*cur = *top = 0;
		return;
	}
	long c = (long)*cur + delta;
	if (c < 0)
		c = 0;
	if (c >= (long)n)
		c = (long)n - 1;
	*cur = (size_t)c;
	if (*cur < *top)
		*top = *cur;
	if (h > 0 && *cur >= *top + (size_t)h)
		*top = *cur - (size_t)h + 1;
}

static bool snapshots_key(void *data, struct tui *t, const struct tui_key *k)
{
	struct snapshots *s = data;
	int h = s->height > 0 ? s->height : 1;
	long delta = 0;
	if (k->fn) {
		switch (k->code) {
		case KEY_UP:
			delta = -1;
			break;
		case KEY_DOWN:
			delta = 1;
			break;
		case KEY_PPAGE:
			delta = -h;
			break;
		case KEY_NPAGE:
			delta = h;
			break;
		case KEY_LEFT:
			s->focus_right = false;
			return true;
		case KEY_RIGHT:
			s->focus_right = true;
			return true;
		default:
			return false;
		}
	} else {
		switch (k->code) {
		case 'k':
			delta = -1;
			break;
		case 'j':
			delta = 1;
			break;
		case 'h':
			s->focus_right = false;
			return true;
		case 'l':
			s->focus_right = true;
			return true;
		case 'r':
			start_load(s, t);
			tui_message(t, TUI_TONE_DIM, "listing the snapshots again");
			return true;
		default:
			return false;
		}
	}
	if (s->focus_right) {
		move_in(&s->snap_cur, &s->snap_top, s->n_snaps, delta, h);
	} else {
		move_in(&s->stack_cur, &s->stack_top, s->stacks.n, delta, h);
		s->snap_cur = s->snap_top = 0;
		pick_stack_snaps(s);
	}
	return true;
}

static void snapshots_draw(void *data, struct tui *t, const struct tui_rect *r)
{
	struct snapshots *s = data;
	int sw = r->w >= 60 ? STACKS_W : 14;
	s->height = r->h - 2;
	if (s->height < 1)
		s->height = 1;
	move_in(&s->stack_cur, &s->stack_top, s->stacks.n, 0, s->height);
	move_in(&s->snap_cur, &s->snap_top, s->n_snaps, 0, s->height);

	const char *cur = s->stack_cur < s->stacks.n ? s->stacks.v[s->stack_cur] : NULL;
	cleanup_free char *head =
		tui_task_running(&s->task) ? xstrdup("listing snapshots...")
		: s->note		   ? xstrdup(s->note)
		: cur ? xasprintf("%zu snapshot(s) of %s, %zu in the repository", s->n_snaps, cur, s->list.n)
		      : xstrdup("no stacks");
	tui_put(t, r->y, 1, r->w - 1, head,
		s->load.err && !tui_task_running(&s->task) ? TUI_TONE_BAD : TUI_TONE_NORMAL);
	tui_put_attr(t, r->y + 1, 1, sw - 1, "STACK", tui_heading_attr(t));
	tui_put_attr(t, r->y + 1, sw + 1, r->w - sw - 1, "TIME (UTC)           ID        HOST  PATH",
		     tui_heading_attr(t));

	for (int i = 0; i < s->height; i++) {
		size_t idx = s->stack_top + (size_t)i;
		if (idx >= s->stacks.n)
			break;
		attr_t a = idx == s->stack_cur ? (s->focus_right ? A_BOLD : A_REVERSE) : A_NORMAL;
		tui_put_attr(t, r->y + 2 + i, 1, sw - 1, s->stacks.v[idx], a);
	}
	for (int i = 0; i < s->height; i++) {
		size_t idx = s->snap_top + (size_t)i;
		if (idx >= s->n_snaps)
			break;
		cleanup_free char *line = tui_snapshot_line(&s->list.v[s->snaps[idx]]);
		attr_t a = idx == s->snap_cur && s->focus_right ? A_REVERSE : A_NORMAL;
		tui_put_attr(t, r->y + 2 + i, sw + 1, r->w - sw - 1, line, a);
	}
	if (s->n_snaps == 0 && cur && s->have_list)
		tui_put(t, r->y + 2, sw + 1, r->w - sw - 1, "no snapshots of this stack yet", TUI_TONE_DIM);
}

static const char *snapshots_footer(void *data, struct tui *t)
{
	(void)data;
	(void)t;
	return "left/right:stacks/snapshots up/down:move r:list again";
}

const struct tui_screen tui_screen_snapshots = {
	.name = "Snapshots",
	.init = snapshots_init,
	.free = snapshots_free,
	.resize = snapshots_resize,
	.key = snapshots_key,
	.update = snapshots_update,
	.draw = snapshots_draw,
	.footer = snapshots_footer,
};
