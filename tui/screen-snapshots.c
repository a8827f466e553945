/*
 * The Snapshots screen, on the core's snapshot view (snapview.h), the
 * same one behind the mount's snapshots/ and `stackback ls`/`get`:
 *
 *   list   the stacks on the left, the chosen stack's snapshots (newest
 *          first) on the right; S puts the whole stack back from the
 *          chosen snapshot (a restore-stack job, confirmed first)
 *   tree   a snapshot's directory tree, browsed without restoring
 *          anything; g copies the entry under the cursor (file, folder
 *          or the whole snapshot) into a directory the user types
 *
 * Everything that may run restic (listing, loading a tree, copying)
 * runs on one background task; the tree itself is immutable and read
 * on the main thread.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stackback/log.h"
#include "tui.h"

/* Width of the stack column. */
#define STACKS_W 22
/* The longest a background call waits for the view's own threads, seconds. */
#define VIEW_WAIT_S 600.0

enum op {
	OP_NONE,
	OP_LIST,     /* every stack's snapshots */
	OP_TREE,     /* one snapshot's tree */
	OP_COPY,     /* one entry out of it */
};

/* One background call: inputs set by the main thread before it starts, outputs read after it ends. */
struct call {
	enum op op;
	const struct sb_config *cfg;
	struct sb_snapview **view;    /* created by the first call, kept by the screen */
	bool invalidate;              /* a job ran: re-list */
	/* OP_LIST */
	struct sb_strv stacks;        /* in: the selection's names; out: with the view's */
	struct sb_snapview_snap **snaps;  /* out: per stack, oldest first */
	size_t *n_snaps;
	/* OP_TREE, OP_COPY */
	struct sb_snapview_snap snap;
	struct sb_snaptree *tree;     /* out (OP_TREE); in (OP_COPY, borrowed) */
	char *path;
	char *dest;
	char *err;
	bool ok;
};

enum mode {
	MODE_LIST,
	MODE_TREE,
};

struct snapshots {
	enum mode mode;
	struct sb_snapview *view;
	struct tui_task task;
	struct call call;

	/* list mode */
	struct sb_strv stacks;
	struct sb_snapview_snap **snaps;  /* per stack */
	size_t *n_snaps;
	size_t stack_cur, stack_top;
	size_t snap_cur, snap_top;        /* in newest-first order */
	bool focus_right;
	bool listed;
	char *note;                       /* why there is no list */
	char *want_stack;
	uint64_t jobs_seen;
	bool list_wanted;                 /* a job ended while the task was busy */

	/* tree mode */
	struct sb_snapview_snap snap;
	struct sb_snaptree *tree;
	sb_snode_id dir;
	size_t entry_cur, entry_top;
	struct tui_input dest;            /* g: where to copy */
	char dest_prompt[256];
	char *copy_path;                  /* what g copies, relative to the snapshot's root */

	int height;
};

/* ---- the background call ---- */

static void call_clear(struct call *c)
{
	for (size_t i = 0; c->snaps && i < c->stacks.n; i++)
		free(c->snaps[i]);
	free(c->snaps);
	free(c->n_snaps);
	sb_strv_free(&c->stacks);
	free(c->path);
	free(c->dest);
	free(c->err);
	if (c->op == OP_TREE && c->tree)
		sb_snaptree_unref(c->tree);
	*c = (struct call){0};
}

static int ensure_view(struct call *c)
{
	if (*c->view)
		return 0;
	struct sb_snapview_opts o = {.cfg = c->cfg, .label = "local"};
	*c->view = sb_snapview_new(&o, &c->err);
	return *c->view ? 0 : -1;
}

static void call_work(struct tui_task *task)
{
	struct call *c = task->data;
	if (ensure_view(c) < 0)
		return;
	struct sb_snapview *v = *c->view;
	switch (c->op) {
	case OP_LIST: {
		if (c->invalidate)
			sb_snapview_invalidate(v);
		struct sb_strv have = {0};
		if (sb_snapview_stacks(v, VIEW_WAIT_S, &have, &c->err) < 0) {
			sb_strv_free(&have);
			return;
		}
		/* The selection's stacks first, then those that only have snapshots. */
		tui_snapshot_stacks(NULL, &have, &c->stacks);
		sb_strv_free(&have);
		c->snaps = xcalloc(c->stacks.n + 1, sizeof(*c->snaps));
		c->n_snaps = xcalloc(c->stacks.n + 1, sizeof(*c->n_snaps));
		for (size_t i = 0; i < c->stacks.n; i++)
			if (sb_snapview_list(v, c->stacks.v[i], VIEW_WAIT_S, &c->snaps[i], &c->n_snaps[i],
					     &c->err) < 0)
				return;
		c->ok = true;
		break;
	}
	case OP_TREE:
		c->ok = sb_snapview_tree(v, &c->snap, VIEW_WAIT_S, &c->tree, &c->err) == 0;
		break;
	case OP_COPY:
		c->ok = sb_snapview_get(v, &c->snap, c->tree, c->path, c->dest, &c->err) == 0;
		break;
	case OP_NONE:
		break;
	}
}

static bool call_start(struct snapshots *s, struct tui *t)
{
	if (tui_task_running(&s->task))
		return false;
	s->call.cfg = &t->cfg;
	s->call.view = &s->view;
	tui_task_start(&s->task, t, call_work, &s->call);
	return true;
}

/* ---- list mode ---- */

static void free_lists(struct snapshots *s)
{
	for (size_t i = 0; s->snaps && i < s->stacks.n; i++)
		free(s->snaps[i]);
	free(s->snaps);
	free(s->n_snaps);
	s->snaps = NULL;
	s->n_snaps = NULL;
	sb_strv_free(&s->stacks);
}

static void start_list(struct snapshots *s, struct tui *t, bool invalidate)
{
	if (tui_task_running(&s->task)) {
		s->list_wanted = true;
		return;
	}
	call_clear(&s->call);
	s->call.op = OP_LIST;
	s->call.invalidate = invalidate;
	struct sb_selection sel = {0};
	struct sb_diags d = {0};
	sb_selection_load(&t->cfg, &sel, &d);
	tui_snapshot_stacks(&sel, NULL, &s->call.stacks);
	sb_selection_free(&sel);
	sb_diags_free(&d);
	s->list_wanted = false;
	call_start(s, t);
}

static size_t cur_count(const struct snapshots *s)
{
	return s->n_snaps && s->stack_cur < s->stacks.n ? s->n_snaps[s->stack_cur] : 0;
}

/* The snapshot under the cursor (the list is oldest first, the screen newest first). */
static const struct sb_snapview_snap *cur_snap(const struct snapshots *s)
{
	size_t n = cur_count(s);
	if (s->snap_cur >= n)
		return NULL;
	return &s->snaps[s->stack_cur][n - 1 - s->snap_cur];
}

static void select_stack(struct snapshots *s, const char *name)
{
	for (size_t i = 0; i < s->stacks.n; i++) {
		if (strcmp(s->stacks.v[i], name) == 0) {
			s->stack_cur = i;
			s->snap_cur = s->snap_top = 0;
			return;
		}
	}
}

static void take_list(struct snapshots *s, struct tui *t)
{
	free(s->note);
	s->note = NULL;
	if (!s->call.ok) {
		s->note = xasprintf("cannot list snapshots: %s", s->call.err ? s->call.err : "unknown error");
		return;
	}
	cleanup_free char *keep = s->stack_cur < s->stacks.n ? xstrdup(s->stacks.v[s->stack_cur]) : NULL;
	free_lists(s);
	s->stacks = s->call.stacks;
	s->snaps = s->call.snaps;
	s->n_snaps = s->call.n_snaps;
	s->call.stacks = (struct sb_strv){0};
	s->call.snaps = NULL;
	s->call.n_snaps = NULL;
	s->listed = true;
	s->stack_cur = 0;
	if (s->want_stack) {
		select_stack(s, s->want_stack);
		free(s->want_stack);
		s->want_stack = NULL;
	} else if (keep) {
		select_stack(s, keep);
	}
	if (s->snap_cur >= cur_count(s))
		s->snap_cur = s->snap_top = 0;
	size_t total = 0;
	for (size_t i = 0; i < s->stacks.n; i++)
		total += s->n_snaps[i];
	if (total == 0)
		s->note = xasprintf("no snapshots in %s yet", t->cfg.restic_repository);
}

/* ---- tree mode ---- */

static void start_tree(struct snapshots *s, struct tui *t)
{
	const struct sb_snapview_snap *snap = cur_snap(s);
	if (!snap)
		return;
	if (tui_task_running(&s->task)) {
		tui_message(t, TUI_TONE_DIM, "busy: wait a moment");
		return;
	}
	call_clear(&s->call);
	s->call.op = OP_TREE;
	s->call.snap = *snap;
	call_start(s, t);
	tui_message(t, TUI_TONE_DIM, "reading snapshot %s...", snap->name);
}

static void take_tree(struct snapshots *s, struct tui *t)
{
	if (!s->call.ok) {
		tui_message(t, TUI_TONE_BAD, "%s", s->call.err ? s->call.err : "cannot read the snapshot");
		return;
	}
	if (s->tree)
		sb_snaptree_unref(s->tree);
	s->tree = s->call.tree;
	s->call.tree = NULL;
	s->snap = s->call.snap;
	s->dir = SB_SNODE_ROOT;
	s->entry_cur = s->entry_top = 0;
	s->mode = MODE_TREE;
	tui_message(t, TUI_TONE_DIM, "browsing %s of %s", s->snap.name, s->snap.stack);
}

/* The entry under the cursor; the first row of a subdirectory is its parent (".."). */
static bool entry_is_parent(const struct snapshots *s)
{
	return s->dir != SB_SNODE_ROOT && s->entry_cur == 0;
}

static size_t entry_count(const struct snapshots *s)
{
	return sb_snaptree_nchildren(s->tree, s->dir) + (s->dir != SB_SNODE_ROOT ? 1 : 0);
}

static sb_snode_id entry_node(const struct snapshots *s, size_t row)
{
	size_t off = s->dir != SB_SNODE_ROOT ? 1 : 0;
	if (row < off)
		return sb_snaptree_parent(s->tree, s->dir);
	return sb_snaptree_child_at(s->tree, s->dir, (uint32_t)(row - off));
}

static void go_up(struct snapshots *s)
{
	if (s->dir == SB_SNODE_ROOT) {
		s->mode = MODE_LIST;
		return;
	}
	sb_snode_id was = s->dir;
	s->dir = sb_snaptree_parent(s->tree, s->dir);
	/* Back on the directory we came from. */
	s->entry_cur = s->entry_top = 0;
	size_t off = s->dir != SB_SNODE_ROOT ? 1 : 0;
	for (uint32_t i = 0; i < sb_snaptree_nchildren(s->tree, s->dir); i++)
		if (sb_snaptree_child_at(s->tree, s->dir, i) == was)
			s->entry_cur = i + off;
}

static void enter(struct snapshots *s)
{
	if (entry_is_parent(s)) {
		go_up(s);
		return;
	}
	sb_snode_id id = entry_node(s, s->entry_cur);
	if (!S_ISDIR(sb_snaptree_mode(s->tree, id)))
		return;
	s->dir = id;
	s->entry_cur = s->entry_top = 0;
}

static void begin_copy(struct snapshots *s, struct tui *t, bool whole)
{
	if (tui_task_running(&s->task)) {
		tui_message(t, TUI_TONE_DIM, "busy: wait a moment");
		return;
	}
	cleanup_free char *cwd = getcwd(NULL, 0);
	cleanup_free char *what = whole ? xstrdup("the whole snapshot")
				  : tui_sanitize(sb_snaptree_name(s->tree, entry_node(s, s->entry_cur)));
	snprintf(s->dest_prompt, sizeof(s->dest_prompt), "copy %s into directory: ", what);
	tui_input_begin(&s->dest, s->dest_prompt, cwd ? cwd : "/");
	free(s->copy_path);
	s->copy_path = whole ? xstrdup("") : sb_snaptree_path(s->tree, entry_node(s, s->entry_cur));
}

static void start_copy(struct snapshots *s, struct tui *t)
{
	cleanup_free char *path = s->copy_path;
	s->copy_path = NULL;
	if (!path || tui_task_running(&s->task)) {
		tui_message(t, TUI_TONE_DIM, "busy: wait a moment, then copy again");
		return;
	}
	call_clear(&s->call);
	const char *home = getenv("HOME");
	cleanup_free char *dir = tui_copy_destination(s->dest.line.text, "", home);
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	/* The whole snapshot gets a directory named after it. */
	cleanup_free char *dest = tui_copy_destination(dir, *path ? base : s->snap.name, home);
	if (!*dir || access(dir, W_OK) < 0) {
		tui_message(t, TUI_TONE_BAD, "cannot copy into '%s': %s", dir,
			    *dir ? strerror(errno) : "no directory given");
		return;
	}
	s->call.op = OP_COPY;
	s->call.snap = s->snap;
	s->call.tree = s->tree; /* borrowed: the screen keeps its reference until the copy ends */
	s->call.path = xstrdup(path);
	s->call.dest = xstrdup(dest);
	call_start(s, t);
	tui_message(t, TUI_TONE_DIM, "copying '%s' to %s...", *path ? path : "/", dest);
}

static void take_copy(struct snapshots *s, struct tui *t)
{
	s->call.tree = NULL;
	if (s->call.ok) {
		sb_info("tui: copied '%s' of snapshot %s of stack '%s' to %s", *s->call.path ? s->call.path : "/",
			s->call.snap.name, s->call.snap.stack, s->call.dest);
		tui_message(t, TUI_TONE_GOOD, "copied '%s' to %s", *s->call.path ? s->call.path : "/", s->call.dest);
	} else {
		tui_message(t, TUI_TONE_BAD, "%s", s->call.err ? s->call.err : "the copy failed");
	}
}

/* ---- the screen ---- */

void tui_snapshots_open(struct tui *t, const char *stack)
{
	struct snapshots *s = t->screen_data[TUI_SCREEN_SNAPSHOTS];
	s->mode = MODE_LIST;
	s->focus_right = true;
	if (s->listed) {
		select_stack(s, stack);
	} else {
		free(s->want_stack);
		s->want_stack = xstrdup(stack);
	}
	tui_show(t, TUI_SCREEN_SNAPSHOTS);
}

static void *snapshots_init(struct tui *t)
{
	struct snapshots *s = xcalloc(1, sizeof(*s));
	s->jobs_seen = tui_jobs_finished(&t->jobs);
	return s;
}

static void snapshots_free(void *data)
{
	struct snapshots *s = data;
	/* A copy that runs is let finish: a half-restored directory would be worse. */
	tui_task_join(&s->task);
	call_clear(&s->call);
	free_lists(s);
	if (s->tree)
		sb_snaptree_unref(s->tree);
	sb_snapview_free(s->view);
	free(s->note);
	free(s->want_stack);
	free(s->copy_path);
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
	if (tui_task_finished(&s->task)) {
		switch (s->call.op) {
		case OP_LIST:
			take_list(s, t);
			break;
		case OP_TREE:
			take_tree(s, t);
			break;
		case OP_COPY:
			take_copy(s, t);
			break;
		case OP_NONE:
			break;
		}
		if (s->call.op != OP_NONE)
			call_clear(&s->call);
	}
	/* Listing runs restic: only once the screen is shown, and again after each job. */
	uint64_t jobs = tui_jobs_finished(&t->jobs);
	if (!s->listed && !tui_task_running(&s->task) && !s->note)
		start_list(s, t, false);
	else if (jobs != s->jobs_seen || (s->list_wanted && !tui_task_running(&s->task)))
		start_list(s, t, true);
	s->jobs_seen = jobs;
}

static void clamp(size_t *cur, size_t *top, size_t n, long delta, int h)
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

static long nav_delta(const struct tui_key *k, int h)
{
	if (k->fn) {
		switch (k->code) {
		case KEY_UP:
			return -1;
		case KEY_DOWN:
			return 1;
		case KEY_PPAGE:
			return -h;
		case KEY_NPAGE:
			return h;
		case KEY_HOME:
			return -1000000;
		case KEY_END:
			return 1000000;
		default:
			return 0;
		}
	}
	return k->code == 'k' ? -1 : k->code == 'j' ? 1 : 0;
}

static void restore_stack(struct snapshots *s, struct tui *t)
{
	const struct sb_snapview_snap *snap = cur_snap(s);
	if (!snap)
		return;
	struct sb_job_request req = {.kind = SB_JOB_RESTORE_STACK, .snapshot = xstrdup(snap->id)};
	sb_strv_push(&req.stacks, snap->stack);
	cleanup_free char *q = xasprintf("put stack '%s' back as in %s? (its directory is set aside)",
					 snap->stack, snap->name);
	tui_run_job_confirm(t, &req, q);
}

static bool tree_key(struct snapshots *s, struct tui *t, const struct tui_key *k)
{
	int h = s->height > 0 ? s->height : 1;
	if (s->dest.active) {
		enum tui_input_result r = tui_input_key(&s->dest, k);
		if (r == TUI_INPUT_DONE)
			start_copy(s, t);
		else if (r == TUI_INPUT_CANCELLED)
			tui_message(t, TUI_TONE_DIM, "not copied");
		return true;
	}
	long d = nav_delta(k, h);
	if (d) {
		clamp(&s->entry_cur, &s->entry_top, entry_count(s), d, h);
		return true;
	}
	if (k->fn) {
		switch (k->code) {
		case KEY_RIGHT:
		case KEY_ENTER:
			enter(s);
			return true;
		case KEY_LEFT:
		case KEY_BACKSPACE:
			go_up(s);
			return true;
		default:
			return false;
		}
	}
	switch (k->code) {
	case '\r':
	case '\n':
	case 'l':
		enter(s);
		return true;
	case 'h':
	case 127:
	case 8:
		go_up(s);
		return true;
	case 27:
		s->mode = MODE_LIST;
		return true;
	case 'g':
		if (!entry_is_parent(s) && entry_count(s) > 0)
			begin_copy(s, t, false);
		return true;
	case 'G':
		begin_copy(s, t, true);
		return true;
	default:
		return false;
	}
}

static bool list_key(struct snapshots *s, struct tui *t, const struct tui_key *k)
{
	int h = s->height > 0 ? s->height : 1;
	long d = nav_delta(k, h);
	if (d) {
		if (s->focus_right) {
			clamp(&s->snap_cur, &s->snap_top, cur_count(s), d, h);
		} else {
			clamp(&s->stack_cur, &s->stack_top, s->stacks.n, d, h);
			s->snap_cur = s->snap_top = 0;
		}
		return true;
	}
	if (k->fn) {
		switch (k->code) {
		case KEY_LEFT:
			s->focus_right = false;
			return true;
		case KEY_RIGHT:
			s->focus_right = true;
			return true;
		case KEY_ENTER:
			if (s->focus_right)
				start_tree(s, t);
			else
				s->focus_right = true;
			return true;
		default:
			return false;
		}
	}
	switch (k->code) {
	case 'h':
		s->focus_right = false;
		return true;
	case 'l':
		s->focus_right = true;
		return true;
	case '\r':
	case '\n':
		if (s->focus_right)
			start_tree(s, t);
		else
			s->focus_right = true;
		return true;
	case 'S':
		restore_stack(s, t);
		return true;
	case 'r':
		start_list(s, t, true);
		tui_message(t, TUI_TONE_DIM, "listing the snapshots again");
		return true;
	default:
		return false;
	}
}

static bool snapshots_key(void *data, struct tui *t, const struct tui_key *k)
{
	struct snapshots *s = data;
	return s->mode == MODE_TREE ? tree_key(s, t, k) : list_key(s, t, k);
}

static void draw_list(struct snapshots *s, struct tui *t, const struct tui_rect *r)
{
	int sw = r->w >= 60 ? STACKS_W : 14;
	s->height = r->h - 2 > 1 ? r->h - 2 : 1;
	clamp(&s->stack_cur, &s->stack_top, s->stacks.n, 0, s->height);
	clamp(&s->snap_cur, &s->snap_top, cur_count(s), 0, s->height);

	const char *cur = s->stack_cur < s->stacks.n ? s->stacks.v[s->stack_cur] : NULL;
	bool busy = tui_task_running(&s->task) && s->call.op == OP_LIST;
	cleanup_free char *head = busy ? xstrdup("listing snapshots...")
				  : s->note ? xstrdup(s->note)
				  : cur	    ? xasprintf("%zu snapshot(s) of %s", cur_count(s), cur)
					    : xstrdup("no stacks");
	tui_put(t, r->y, 1, r->w - 1, head,
		s->note && strncmp(s->note, "cannot", 6) == 0 ? TUI_TONE_BAD : TUI_TONE_NORMAL);
	tui_put_attr(t, r->y + 1, 1, sw - 1, "STACK", tui_heading_attr(t));
	tui_put_attr(t, r->y + 1, sw + 1, r->w - sw - 1, "SNAPSHOT (UTC)       ID", tui_heading_attr(t));
	for (int i = 0; i < s->height; i++) {
		size_t idx = s->stack_top + (size_t)i;
		if (idx >= s->stacks.n)
			break;
		attr_t a = idx == s->stack_cur ? (s->focus_right ? A_BOLD : A_REVERSE) : A_NORMAL;
		cleanup_free char *label = xasprintf("%s (%zu)", s->stacks.v[idx], s->n_snaps ? s->n_snaps[idx] : 0);
		tui_put_attr(t, r->y + 2 + i, 1, sw - 1, label, a);
	}
	size_t n = cur_count(s);
	for (int i = 0; i < s->height; i++) {
		size_t idx = s->snap_top + (size_t)i;
		if (idx >= n)
			break;
		cleanup_free char *line = tui_snapshot_line(&s->snaps[s->stack_cur][n - 1 - idx]);
		attr_t a = idx == s->snap_cur && s->focus_right ? A_REVERSE : A_NORMAL;
		tui_put_attr(t, r->y + 2 + i, sw + 1, r->w - sw - 1, line, a);
	}
	if (n == 0 && cur && s->listed)
		tui_put(t, r->y + 2, sw + 1, r->w - sw - 1, "no snapshots of this stack yet", TUI_TONE_DIM);
}

static void draw_tree(struct snapshots *s, struct tui *t, const struct tui_rect *r)
{
	s->height = r->h - 2 - (s->dest.active ? 1 : 0);
	if (s->height < 1)
		s->height = 1;
	size_t n = entry_count(s);
	clamp(&s->entry_cur, &s->entry_top, n, 0, s->height);
	cleanup_free char *path = sb_snaptree_path(s->tree, s->dir);
	cleanup_free char *head = xasprintf("%s @ %s : /%s", s->snap.stack, s->snap.name, path);
	tui_put_attr(t, r->y, 1, r->w - 1, head, A_BOLD);
	bool busy = tui_task_running(&s->task) && s->call.op == OP_COPY;
	cleanup_free char *sub = xasprintf("%u entries, read-only%s", sb_snaptree_nchildren(s->tree, s->dir),
					   busy ? "  - copying..." : "");
	tui_put(t, r->y + 1, 1, r->w - 1, sub, TUI_TONE_DIM);
	for (int i = 0; i < s->height; i++) {
		size_t row = s->entry_top + (size_t)i;
		if (row >= n)
			break;
		cleanup_free char *line = NULL;
		if (s->dir != SB_SNODE_ROOT && row == 0)
			line = xstrdup("d                               ../");
		else
			line = tui_tree_entry_line(s->tree, entry_node(s, row));
		attr_t a = row == s->entry_cur ? A_REVERSE : A_NORMAL;
		if (line[0] == 'd' && row != s->entry_cur)
			a = A_BOLD;
		tui_put_attr(t, r->y + 2 + i, 1, r->w - 1, line, a);
	}
	if (s->dest.active)
		tui_input_draw(t, &s->dest, r->y + r->h - 1);
}

static void snapshots_draw(void *data, struct tui *t, const struct tui_rect *r)
{
	struct snapshots *s = data;
	if (s->mode == MODE_TREE && s->tree)
		draw_tree(s, t, r);
	else
		draw_list(s, t, r);
}

static const char *snapshots_footer(void *data, struct tui *t)
{
	struct snapshots *s = data;
	(void)t;
	if (s->mode == MODE_TREE) {
		if (s->dest.active)
			return "type a directory  enter:copy esc:cancel ^U:clear";
		return "enter:open left:up g:copy this G:copy all esc:back q:quit";
	}
	return "left/right:pane enter:browse S:restore stack r:list again q:quit";
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
