/*
 * The Stacks screen (home): every stack of the selection with its
 * enabled flag, docker state, last backup and snapshot count. Toggles
 * go straight to the dirlist through sb_selection_update(), the same
 * locked, atomic write the CLI and the daemon make, and the list is
 * read back from the file afterwards, so what is shown is what the
 * engine will see.
 *
 * Docker (~0.3 s per stack) and restic (~0.7 s per call) are asked on
 * background tasks; the list shows "..." until they answer.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "stackback/docker.h"
#include "stackback/log.h"
#include "stackback/restic.h"
#include "stackback/status.h"
#include "tui.h"

/* Docker states are asked again this often while the screen is shown, seconds. */
#define DOCKER_REFRESH_S 30.0
/* New stack directories are looked for this often, seconds. */
#define RESCAN_S 10.0
/* Rows under the list for the current stack's details. */
#define DETAIL_ROWS 4

/* One round of docker questions, owned by the screen, filled by the task. */
struct docker_round {
	const struct sb_config *cfg;
	/* Input, fixed before the task starts. */
	struct sb_strv names, paths, composes;
	pthread_mutex_t mu;               /* protects the answers below */
	enum sb_stack_state *states;      /* mu */
	bool *have;                       /* mu */
	char **errors;                    /* mu */
	bool changed;                     /* mu: answers the screen has not taken yet */
};

struct snap_count {
	const struct sb_config *cfg;
	struct sb_snapshot_list list;
	bool no_repo;
	char *err;
};

struct stacks {
	struct sb_selection sel;
	struct tui_stack_list list;
	struct tui_input filter;
	char *filter_before;              /* restored when the filter edit is cancelled */
	char *load_error;                 /* the selection could not be read */

	struct docker_round *round;
	struct tui_task docker_task;
	double docker_at;                 /* monotonic, 0 = ask now */

	struct snap_count snaps;
	struct tui_task snap_task;
	bool snaps_wanted;
	char *snap_note;                  /* shown on the summary line */

	uint64_t jobs_seen;
	struct stat dirlist_st;
	bool have_dirlist_st;
	double scanned_at;
	int list_h;
};

/* ---- docker ---- */

static void round_free(struct docker_round *dr)
{
	if (!dr)
		return;
	for (size_t i = 0; i < dr->names.n; i++)
		free(dr->errors[i]);
	free(dr->errors);
	free(dr->states);
	free(dr->have);
	sb_strv_free(&dr->names);
	sb_strv_free(&dr->paths);
	sb_strv_free(&dr->composes);
	pthread_mutex_destroy(&dr->mu);
	free(dr);
}

static void docker_work(struct tui_task *task)
{
	struct docker_round *dr = task->data;
	struct sb_compose compose = {0};
	cleanup_free char *cerr = NULL;
	bool have_compose = sb_compose_detect(dr->cfg, &compose, &cerr) == 0;
	for (size_t i = 0; i < dr->names.n; i++) {
		enum sb_stack_state st = SB_STATE_UNKNOWN;
		char *err = NULL;
		if (have_compose) {
			struct sb_stack stack = {
				.name = dr->names.v[i],
				.path = dr->paths.v[i],
				.compose_file = dr->composes.v[i],
				.dirlist_key = dr->names.v[i],
			};
			st = sb_docker_state(dr->cfg, &compose, &stack, &err);
		} else {
			err = xstrdup(cerr);
		}
		pthread_mutex_lock(&dr->mu);
		dr->states[i] = st;
		dr->have[i] = true;
		dr->errors[i] = err;
		dr->changed = true;
		pthread_mutex_unlock(&dr->mu);
		/* Each answer shows as it comes: a long list fills in row by row. */
		tui_wake(task->t);
	}
	if (have_compose)
		sb_compose_free(&compose);
}

static void docker_start(struct stacks *s, struct tui *t)
{
	if (tui_task_running(&s->docker_task))
		return;
	round_free(s->round);
	struct docker_round *dr = xcalloc(1, sizeof(*dr));
	dr->cfg = &t->cfg;
	pthread_mutex_init(&dr->mu, NULL);
	for (size_t i = 0; i < s->sel.n; i++) {
		const struct sb_stack *st = &s->sel.stacks[i];
		if (st->origin == SB_STACK_MISSING || !st->compose_file)
			continue;
		sb_strv_push(&dr->names, st->name);
		sb_strv_push(&dr->paths, st->path);
		sb_strv_push(&dr->composes, st->compose_file);
	}
	size_t n = dr->names.n ? dr->names.n : 1;
	dr->states = xcalloc(n, sizeof(*dr->states));
	dr->have = xcalloc(n, sizeof(*dr->have));
	dr->errors = xcalloc(n, sizeof(*dr->errors));
	s->round = dr;
	s->docker_at = sb_now_monotonic();
	tui_task_start(&s->docker_task, t, docker_work, dr);
}

static void docker_take(struct stacks *s)
{
	struct docker_round *dr = s->round;
	if (!dr)
		return;
	pthread_mutex_lock(&dr->mu);
	if (dr->changed) {
		for (size_t i = 0; i < dr->names.n; i++) {
			struct tui_stack_row *r = tui_stack_list_find(&s->list, dr->names.v[i]);
			if (!r || !dr->have[i])
				continue;
			r->docker = dr->states[i];
			r->docker_known = true;
		}
		dr->changed = false;
	}
	pthread_mutex_unlock(&dr->mu);
}

/* The error docker gave for a stack in the last round, NULL if none. Caller frees. */
static char *docker_error(struct stacks *s, const char *name)
{
	struct docker_round *dr = s->round;
	char *err = NULL;
	if (!dr)
		return NULL;
	pthread_mutex_lock(&dr->mu);
	for (size_t i = 0; i < dr->names.n; i++)
		if (strcmp(dr->names.v[i], name) == 0 && dr->errors[i])
			err = xstrdup(dr->errors[i]);
	pthread_mutex_unlock(&dr->mu);
	return err;
}

/* ---- snapshots ---- */

static void snap_work(struct tui_task *task)
{
	struct snap_count *sc = task->data;
	struct sb_restic r;
	if (sb_restic_open(&r, sc->cfg, sc->cfg->restic_repository, &sc->err) < 0)
		return;
	if (!sb_restic_repo_exists(&r))
		sc->no_repo = true;
	else
		sb_restic_snapshots(&r, NULL, &sc->list, &sc->err);
	sb_restic_close(&r);
}

static void snaps_start(struct stacks *s, struct tui *t)
{
	if (tui_task_running(&s->snap_task) || !t->cfg.restic_repository) {
		s->snaps_wanted = tui_task_running(&s->snap_task);
		return;
	}
	s->snaps_wanted = false;
	sb_snapshot_list_free(&s->snaps.list);
	free(s->snaps.err);
	s->snaps = (struct snap_count){.cfg = &t->cfg};
	tui_task_start(&s->snap_task, t, snap_work, &s->snaps);
}

static void snaps_take(struct stacks *s, struct tui *t)
{
	if (!tui_task_finished(&s->snap_task))
		return;
	free(s->snap_note);
	s->snap_note = NULL;
	if (s->snaps.err) {
		s->snap_note = xasprintf("snapshots unknown: %s", s->snaps.err);
	} else {
		tui_stack_list_count_snapshots(&s->list, &s->snaps.list);
		if (s->snaps.no_repo)
			s->snap_note = xstrdup("no repository yet (the first backup creates it)");
	}
	if (s->snaps_wanted)
		snaps_start(s, t);
}

/* ---- the selection ---- */

static void read_last_backups(struct stacks *s, struct tui *t)
{
	for (size_t i = 0; i < s->list.n; i++) {
		struct tui_stack_row *r = &s->list.rows[i];
		cleanup_free char *text = sb_status_last_backup_text(&t->cfg, r->name);
		tui_last_backup_free(&r->last);
		if (tui_last_backup_parse(text, strlen(text), &r->last) < 0) {
			tui_last_backup_free(&r->last);
			r->last = (struct tui_last_backup){.known = true, .result = "unknown"};
			r->last.error = xasprintf("the state file of stack '%s' is unreadable", r->name);
		}
	}
}

static void remember_dirlist(struct stacks *s, struct tui *t)
{
	s->have_dirlist_st = t->cfg.dirlist && stat(t->cfg.dirlist, &s->dirlist_st) == 0;
}

static bool dirlist_changed(struct stacks *s, struct tui *t)
{
	struct stat st;
	bool have = t->cfg.dirlist && stat(t->cfg.dirlist, &st) == 0;
	if (have != s->have_dirlist_st)
		return true;
	if (!have)
		return false;
	/* Every writer renames a new file into place: the inode changes even within one mtime tick. */
	return st.st_ino != s->dirlist_st.st_ino || st.st_size != s->dirlist_st.st_size ||
	       st.st_mtim.tv_sec != s->dirlist_st.st_mtim.tv_sec ||
	       st.st_mtim.tv_nsec != s->dirlist_st.st_mtim.tv_nsec;
}

static void reload(struct stacks *s, struct tui *t)
{
	struct sb_diags diags = {0};
	struct sb_selection sel = {0};
	remember_dirlist(s, t);
	s->scanned_at = sb_now_monotonic();
	int rc = sb_selection_load(&t->cfg, &sel, &diags);
	free(s->load_error);
	s->load_error = NULL;
	for (size_t i = 0; i < diags.n; i++) {
		if (diags.v[i].severity != SB_DIAG_ERROR)
			continue;
		s->load_error = diags.v[i].line > 0
					? xasprintf("%s:%d: %s", diags.v[i].file, diags.v[i].line, diags.v[i].message)
					: xasprintf("%s: %s", diags.v[i].file, diags.v[i].message);
		break;
	}
	sb_diags_free(&diags);
	if (rc < 0 && !s->load_error)
		s->load_error = xstrdup("the selection could not be read");
	/* On failure the old rows stay: better than an empty list that looks like "no stacks". */
	if (rc < 0 && sel.n == 0) {
		sb_selection_free(&sel);
		return;
	}
	bool new_names = sel.n != s->sel.n;
	for (size_t i = 0; !new_names && i < sel.n; i++)
		new_names = strcmp(sel.stacks[i].name, s->sel.stacks[i].name) != 0;
	sb_selection_free(&s->sel);
	s->sel = sel;
	tui_stack_list_load(&s->list, &s->sel);
	read_last_backups(s, t);
	if (new_names) {
		docker_start(s, t);
		snaps_start(s, t);
	}
	docker_take(s);
	if (s->snaps.list.n)
		tui_stack_list_count_snapshots(&s->list, &s->snaps.list);
}

static void apply(struct stacks *s, struct tui *t, enum tui_bulk what)
{
	struct sb_selection_change *ch;
	size_t n = tui_stack_list_changes(&s->list, what, &ch);
	if (n == 0) {
		tui_message(t, TUI_TONE_DIM, "nothing to change");
		return;
	}
	cleanup_free char *err = NULL;
	size_t on = 0;
	for (size_t i = 0; i < n; i++)
		on += ch[i].enabled;
	cleanup_free char *first = xstrdup(ch[0].key);
	int rc = sb_selection_update(&t->cfg, ch, n, false, false, false, &err);
	free(ch);
	if (rc < 0) {
		tui_message(t, TUI_TONE_BAD, "dirlist not changed: %s", err);
	} else {
		sb_info("tui: %zu stack(s) enabled, %zu disabled in %s", on, n - on, t->cfg.dirlist);
		if (n == 1)
			tui_message(t, TUI_TONE_GOOD, "%s %s in %s", first, on ? "enabled" : "disabled",
				    t->cfg.dirlist);
		else
			tui_message(t, TUI_TONE_GOOD, "%zu enabled, %zu disabled in %s", on, n - on,
				    t->cfg.dirlist);
	}
	/* Read back what the file says now, whoever wrote it last. */
	reload(s, t);
}

/* ---- the screen ---- */

static void *stacks_init(struct tui *t)
{
	struct stacks *s = xcalloc(1, sizeof(*s));
	s->list.filter = xstrdup("");
	s->jobs_seen = tui_jobs_finished(&t->jobs);
	reload(s, t);
	docker_start(s, t);
	snaps_start(s, t);
	return s;
}

static void stacks_free(void *data)
{
	struct stacks *s = data;
	tui_task_join(&s->docker_task);
	tui_task_join(&s->snap_task);
	round_free(s->round);
	sb_snapshot_list_free(&s->snaps.list);
	free(s->snaps.err);
	free(s->snap_note);
	tui_stack_list_free(&s->list);
	sb_selection_free(&s->sel);
	free(s->filter_before);
	free(s->load_error);
	free(s);
}

static void stacks_resize(void *data, struct tui *t)
{
	struct stacks *s = data;
	s->list_h = t->rows - 3 - 3 - DETAIL_ROWS;
	tui_stack_list_move(&s->list, 0, s->list_h > 0 ? s->list_h : 1);
}

static void stacks_update(void *data, struct tui *t)
{
	struct stacks *s = data;
	double now = sb_now_monotonic();
	uint64_t jobs = tui_jobs_finished(&t->jobs);
	if (jobs != s->jobs_seen) {
		/* A job ran: last backups, docker states and snapshots all moved. */
		s->jobs_seen = jobs;
		reload(s, t);
		s->docker_at = 0;
		snaps_start(s, t);
	} else if (dirlist_changed(s, t) || now - s->scanned_at >= RESCAN_S) {
		reload(s, t);
	}
	tui_task_finished(&s->docker_task);
	docker_take(s);
	if (now - s->docker_at >= DOCKER_REFRESH_S)
		docker_start(s, t);
	snaps_take(s, t);
}

static void run_backup(struct stacks *s, struct tui *t, const char *stack, bool dry_run)
{
	struct sb_job_request req = {.kind = SB_JOB_BACKUP, .dry_run = dry_run};
	/* A named stack runs even when disabled: an explicit request (SPEC §7). */
	if (stack)
		sb_strv_push(&req.stacks, stack);
	if (dry_run) {
		tui_run_job(t, &req);
		return;
	}
	size_t enabled = 0;
	for (size_t i = 0; i < s->list.n; i++)
		enabled += s->list.rows[i].enabled;
	/* A backup stops running stacks for a while: never on a stray key. */
	cleanup_free char *q =
		stack ? xasprintf("back up stack '%s' now? it is stopped while it is backed up", stack)
		      : xasprintf("back up the %zu enabled stack(s) now? each is stopped while it is backed up",
				  enabled);
	tui_run_job_confirm(t, &req, q);
}

static bool stacks_key(void *data, struct tui *t, const struct tui_key *k)
{
	struct stacks *s = data;
	int h = s->list_h > 0 ? s->list_h : 1;
	if (s->filter.active) {
		enum tui_input_result r = tui_input_key(&s->filter, k);
		if (r == TUI_INPUT_EDITED || r == TUI_INPUT_DONE)
			tui_stack_list_set_filter(&s->list, s->filter.line.text);
		else if (r == TUI_INPUT_CANCELLED)
			tui_stack_list_set_filter(&s->list, s->filter_before);
		tui_stack_list_move(&s->list, 0, h);
		return true;
	}
	if (k->fn) {
		switch (k->code) {
		case KEY_UP:
			tui_stack_list_move(&s->list, -1, h);
			return true;
		case KEY_DOWN:
			tui_stack_list_move(&s->list, 1, h);
			return true;
		case KEY_PPAGE:
			tui_stack_list_move(&s->list, -h, h);
			return true;
		case KEY_NPAGE:
			tui_stack_list_move(&s->list, h, h);
			return true;
		case KEY_HOME:
			tui_stack_list_move(&s->list, -(long)s->list.n, h);
			return true;
		case KEY_END:
			tui_stack_list_move(&s->list, (long)s->list.n, h);
			return true;
		case KEY_ENTER:
			if (tui_stack_list_current(&s->list))
				tui_snapshots_open(t, tui_stack_list_current(&s->list)->name);
			return true;
		default:
			return false;
		}
	}
	struct tui_stack_row *cur = tui_stack_list_current(&s->list);
	switch (k->code) {
	case 'k':
		tui_stack_list_move(&s->list, -1, h);
		return true;
	case 'j':
		tui_stack_list_move(&s->list, 1, h);
		return true;
	case ' ':
		apply(s, t, TUI_BULK_TOGGLE_CURSOR);
		return true;
	case 'a':
		apply(s, t, TUI_BULK_ENABLE_SHOWN);
		return true;
	case 'n':
		apply(s, t, TUI_BULK_DISABLE_SHOWN);
		return true;
	case 'i':
		apply(s, t, TUI_BULK_INVERT_SHOWN);
		return true;
	case '/':
		free(s->filter_before);
		s->filter_before = xstrdup(s->list.filter);
		tui_input_begin(&s->filter, "filter (glob or text): ", s->list.filter);
		return true;
	case 27: /* Escape: drop the filter */
		tui_stack_list_set_filter(&s->list, "");
		return true;
	case 'r':
		reload(s, t);
		docker_start(s, t);
		snaps_start(s, t);
		tui_message(t, TUI_TONE_DIM, "asking docker and restic again");
		return true;
	case 'b':
		run_backup(s, t, NULL, false);
		return true;
	case 'd':
		run_backup(s, t, NULL, true);
		return true;
	case 'B':
		if (cur)
			run_backup(s, t, cur->name, false);
		return true;
	case '\r':
	case '\n':
		if (cur)
			tui_snapshots_open(t, cur->name);
		return true;
	default:
		return false;
	}
}

static void stacks_draw(void *data, struct tui *t, const struct tui_rect *r)
{
	struct stacks *s = data;
	double now = sb_now_wall();
	s->list_h = r->h - 2 - 1 - DETAIL_ROWS;
	if (s->list_h < 1)
		s->list_h = 1;
	tui_stack_list_move(&s->list, 0, s->list_h);

	/* Summary line, or the filter being typed. */
	if (s->filter.active) {
		tui_input_draw(t, &s->filter, r->y);
	} else {
		cleanup_free char *sum = tui_stack_summary(&s->list);
		tui_put(t, r->y, 1, r->w - 1, sum, TUI_TONE_NORMAL);
		const char *note = s->load_error ? s->load_error
				   : tui_task_running(&s->snap_task) ? "counting snapshots..."
								      : s->snap_note;
		if (note) {
			int sw = tui_text_width(sum) + 3;
			tui_put(t, r->y, sw, r->w - sw, note, s->load_error ? TUI_TONE_BAD : TUI_TONE_DIM);
		}
	}

	int w[TUI_STACK_NCOLS];
	tui_stack_layout(r->w, w);
	int x = 1;
	for (int c = 0; c < TUI_STACK_NCOLS; c++) {
		tui_put_attr(t, r->y + 1, x, w[c], tui_stack_heading((enum tui_stack_col)c),
			     tui_heading_attr(t));
		x += w[c] + 1;
	}

	if (s->list.n == 0) {
		cleanup_free char *msg =
			xasprintf("no stacks: no directory with a compose file in %s",
				  t->cfg.stacks_dir ? t->cfg.stacks_dir : "DOCKER_STACKS_DIR (not set)");
		tui_put(t, r->y + 2, 1, r->w - 1, msg, TUI_TONE_WARN);
	}
	for (int i = 0; i < s->list_h; i++) {
		size_t idx = s->list.top + (size_t)i;
		if (idx >= s->list.n_shown)
			break;
		const struct tui_stack_row *row = &s->list.rows[s->list.shown[idx]];
		struct tui_cell cells[TUI_STACK_NCOLS];
		tui_stack_cells(row, now, t->utf8, cells);
		bool cur = idx == s->list.cursor;
		int y = r->y + 2 + i;
		x = 1;
		if (cur) {
			attron(A_REVERSE);
			mvhline(y, 0, ' ', r->w);
			attroff(A_REVERSE);
			tui_put_attr(t, y, 0, 1, ">", A_REVERSE | A_BOLD);
		}
		for (int c = 0; c < TUI_STACK_NCOLS; c++) {
			attr_t a = tui_tone_attr(t, cells[c].tone);
			if (cur)
				a |= A_REVERSE;
			tui_put_attr(t, y, x, w[c], cells[c].text, a);
			x += w[c] + 1;
		}
	}

	/* Details of the stack under the cursor, failures in red. */
	int dy = r->y + r->h - DETAIL_ROWS;
	tui_put_rule(t, dy - 1, r->w, NULL);
	struct tui_stack_row *cur = tui_stack_list_current(&s->list);
	if (!cur)
		return;
	char *lines[DETAIL_ROWS];
	enum tui_tone tones[DETAIL_ROWS];
	size_t n = tui_stack_details(cur, now, lines, tones, DETAIL_ROWS);
	cleanup_free char *derr = cur->docker_known && cur->docker == SB_STATE_UNKNOWN
					  ? docker_error(s, cur->name)
					  : NULL;
	/* Errors wrap into the rows left: their cause is at the end of the line. */
	int row = 0;
	for (size_t i = 0; i < n; i++) {
		struct sb_strv wl = {0};
		if (tones[i] == TUI_TONE_BAD)
			tui_wrap(lines[i], r->w - 2, &wl);
		else
			sb_strv_push(&wl, lines[i]);
		for (size_t k = 0; k < wl.n && row < DETAIL_ROWS; k++)
			tui_put(t, dy + row++, 1, r->w - 1, wl.v[k], tones[i]);
		sb_strv_free(&wl);
		free(lines[i]);
	}
	if (derr && row < DETAIL_ROWS) {
		cleanup_free char *msg = xasprintf("docker: %s", derr);
		tui_put(t, dy + row, 1, r->w - 1, msg, TUI_TONE_BAD);
	}
}

static const char *stacks_footer(void *data, struct tui *t)
{
	struct stacks *s = data;
	(void)t;
	if (s->filter.active)
		return "type a glob (web*) or text  enter:keep esc:cancel ^U:clear";
	return "spc:toggle a:all n:none /:filter b:backup d:dry-run B:one enter:snaps q:quit";
}

const struct tui_screen tui_screen_stacks = {
	.name = "Stacks",
	.init = stacks_init,
	.free = stacks_free,
	.resize = stacks_resize,
	.key = stacks_key,
	.update = stacks_update,
	.draw = stacks_draw,
	.footer = stacks_footer,
};
