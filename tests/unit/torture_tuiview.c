/*
 * The TUI's view model (tui/view.c), without a terminal: formatting,
 * filtering, the stack rows and bulk toggles, the run screen's rows and
 * the scrollable text, plus garbage input for the last-backup parser.
 */
#include <json-c/json.h>
#include <locale.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "stackback/config.h"
#include "stackback/state.h"
#include "stackback/status.h"
#include "stackback/snaptree.h"
#include "stackback/util.h"
#include "view.h"

static int set_utf8_locale(void **state)
{
	(void)state;
	/* Widths come from wcwidth(), which needs a UTF-8 locale. */
	return setlocale(LC_ALL, "C.UTF-8") ? 0 : -1;
}

/* ---- text ---- */

static void test_text_width(void **state)
{
	(void)state;
	assert_int_equal(tui_text_width(""), 0);
	assert_int_equal(tui_text_width("web"), 3);
	assert_int_equal(tui_text_width("caf\xc3\xa9"), 4);             /* é: one column */
	assert_int_equal(tui_text_width("\xe6\x97\xa5\xe6\x9c\xac"), 4); /* two wide characters */
	assert_int_equal(tui_text_width("a\xff" "b"), 3);               /* an invalid byte counts one */
	assert_int_equal(tui_text_width("\xe2\x80"), 2);                /* a cut sequence too */
}

static void test_fit(void **state)
{
	(void)state;
	char *s = tui_fit("web", 6, true);
	assert_string_equal(s, "web   ");
	free(s);
	s = tui_fit("nextcloud", 6, false);
	assert_string_equal(s, "nextc~");
	free(s);
	s = tui_fit("nextcloud", 6, true);
	assert_string_equal(s, "nextc\xe2\x80\xa6");
	assert_int_equal(tui_text_width(s), 6);
	free(s);
	/* A wide character that would straddle the edge is left out, the rest padded. */
	s = tui_fit("a\xe6\x97\xa5\xe6\x9c\xac\xe6\x97\xa5", 5, false);
	assert_int_equal(tui_text_width(s), 5);
	assert_string_equal(s, "a\xe6\x97\xa5~ ");
	free(s);
	s = tui_fit("anything", 0, true);
	assert_string_equal(s, "");
	free(s);
	s = tui_fit("abc", 3, true);
	assert_string_equal(s, "abc");
	free(s);
}

static void test_wrap(void **state)
{
	(void)state;
	struct sb_strv out = {0};
	tui_wrap("stack 'db' skipped (left running): pre-backup hook exited 1: database dump failed", 30, &out);
	assert_int_equal(out.n, 3);
	assert_string_equal(out.v[0], "stack 'db' skipped (left");
	assert_string_equal(out.v[1], "running): pre-backup hook");
	assert_string_equal(out.v[2], "exited 1: database dump failed");
	for (size_t i = 0; i < out.n; i++)
		assert_true(tui_text_width(out.v[i]) <= 30);
	sb_strv_free(&out);
	/* A word longer than the line is split; wide characters never straddle. */
	tui_wrap("/a/very/long/path/without/any/space", 10, &out);
	assert_int_equal(out.n, 4);
	assert_string_equal(out.v[0], "/a/very/lo");
	assert_string_equal(out.v[3], "space");
	sb_strv_free(&out);
	tui_wrap("\xe6\x97\xa5\xe6\x9c\xac\xe6\x97\xa5", 3, &out);
	assert_int_equal(out.n, 3);
	sb_strv_free(&out);
	tui_wrap("ab", 0, &out); /* a width below 1 still terminates */
	assert_int_equal(out.n, 2);
	sb_strv_free(&out);
	tui_wrap("", 10, &out);
	assert_int_equal(out.n, 0);
	tui_wrap("   ", 10, &out);
	assert_int_equal(out.n, 1);
	assert_string_equal(out.v[0], "");
	sb_strv_free(&out);
}

static void test_wrap_text(void **state)
{
	(void)state;
	char *s = tui_wrap_text("short\n\nerror: backup of stack 'web' failed: restic exited 1\n", 20);
	/* Continuations are indented, so they get two columns less. */
	assert_string_equal(s, "short\n\nerror: backup of\n  stack 'web'\n  failed: restic\n  exited 1\n");
	free(s);
	s = tui_wrap_text("tab\there", 20);
	assert_string_equal(s, "tab here\n");
	free(s);
	s = tui_wrap_text("", 20);
	assert_string_equal(s, "");
	free(s);
	s = tui_wrap_text(NULL, 20);
	assert_string_equal(s, "");
	free(s);
	/* Every produced line fits, whatever the width. */
	for (int w = 1; w < 30; w++) {
		s = tui_wrap_text("a fairly long line with /some/paths/in/it and words", w);
		for (char *l = strtok(s, "\n"); l; l = strtok(NULL, "\n"))
			assert_true(tui_text_width(l) <= w);
		free(s);
	}
}

static void test_sanitize(void **state)
{
	(void)state;
	char *s = tui_sanitize("a\033[2Jb\tc\r\x7f");
	assert_string_equal(s, "a [2Jb c  ");
	free(s);
}

static void test_line_edit(void **state)
{
	(void)state;
	struct tui_line l;
	tui_line_set(&l, "we");
	assert_true(tui_line_insert(&l, L'b'));
	assert_string_equal(l.text, "web");
	assert_true(tui_line_insert(&l, L'\u00e9'));   /* é: two bytes in UTF-8 */
	assert_int_equal(l.len, 5);
	assert_false(tui_line_insert(&l, L'\n'));      /* control characters are not typed text */
	assert_false(tui_line_insert(&l, 0x1b));
	assert_false(tui_line_insert(&l, 0x9b));       /* C1 CSI */
	assert_true(tui_line_backspace(&l));           /* removes the whole é */
	assert_string_equal(l.text, "web");
	while (tui_line_backspace(&l))
		;
	assert_string_equal(l.text, "");
	assert_int_equal(l.len, 0);
	/* Full: refused, never overflows; a long set is cut at a character boundary. */
	for (int i = 0; i < 2 * TUI_LINE_MAX; i++)
		tui_line_insert(&l, L'\u65e5');
	assert_true(l.len < TUI_LINE_MAX);
	assert_int_equal(l.len % 3, 0);
	char big[3 * TUI_LINE_MAX];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	tui_line_set(&l, big);
	assert_int_equal(l.len, TUI_LINE_MAX - 1);
	assert_int_equal(strlen(l.text), TUI_LINE_MAX - 1);
}

/* ---- numbers ---- */

static void test_format_age(void **state)
{
	(void)state;
	char buf[32];
	double now = 1714564800; /* 2024-05-01T12:00:00Z */
	tui_format_age(now, 0, buf, sizeof(buf));
	assert_string_equal(buf, "never");
	tui_format_age(now, now - 3, buf, sizeof(buf));
	assert_string_equal(buf, "just now");
	tui_format_age(now, now + 100, buf, sizeof(buf)); /* a clock that went back */
	assert_string_equal(buf, "just now");
	tui_format_age(now, now - 42, buf, sizeof(buf));
	assert_string_equal(buf, "42s ago");
	tui_format_age(now, now - 5 * 60 - 59, buf, sizeof(buf));
	assert_string_equal(buf, "5m ago");
	tui_format_age(now, now - 3 * 3600, buf, sizeof(buf));
	assert_string_equal(buf, "3h ago");
	tui_format_age(now, now - 2 * 86400 - 5, buf, sizeof(buf));
	assert_string_equal(buf, "2d ago");
	tui_format_age(now, now - 90 * 86400.0, buf, sizeof(buf));
	assert_string_equal(buf, "2024-02-01");
}

static void test_format_eta(void **state)
{
	(void)state;
	char buf[32];
	tui_format_eta(-1, buf, sizeof(buf));
	assert_string_equal(buf, "-");
	tui_format_eta(NAN, buf, sizeof(buf));
	assert_string_equal(buf, "-");
	tui_format_eta(0, buf, sizeof(buf));
	assert_string_equal(buf, "0s");
	tui_format_eta(59.4, buf, sizeof(buf));
	assert_string_equal(buf, "59s");
	tui_format_eta(184, buf, sizeof(buf));
	assert_string_equal(buf, "3m04s");
	tui_format_eta(3720, buf, sizeof(buf));
	assert_string_equal(buf, "1h02m");
}

static void test_progress_bar(void **state)
{
	(void)state;
	char *s = tui_progress_bar(50, 10, false);
	assert_string_equal(s, "#####-----");
	free(s);
	s = tui_progress_bar(0, 4, false);
	assert_string_equal(s, "----");
	free(s);
	s = tui_progress_bar(250, 4, false);
	assert_string_equal(s, "####");
	free(s);
	s = tui_progress_bar(NAN, 4, false);
	assert_string_equal(s, "----");
	free(s);
	s = tui_progress_bar(-5, 4, false);
	assert_string_equal(s, "----");
	free(s);
	/* 3/8 of a column shows as a partial block, and the bar keeps its width. */
	s = tui_progress_bar(100.0 * 19 / 80, 10, true);
	assert_string_equal(s, "\xe2\x96\x88\xe2\x96\x88\xe2\x96\x8d       ");
	assert_int_equal(tui_text_width(s), 10);
	free(s);
	for (int p = 0; p <= 100; p += 7) {
		s = tui_progress_bar(p, 13, true);
		assert_int_equal(tui_text_width(s), 13);
		free(s);
	}
	s = tui_progress_bar(50, 0, true);
	assert_string_equal(s, "");
	free(s);
}

static void test_progress_text(void **state)
{
	(void)state;
	struct sb_job_progress p = {.stack = "web", .phase = "backup", .stack_index = 2,
				    .stack_count = 3, .percent = 42.7, .bytes_done = 1288490189,
				    .bytes_total = 3113851290ULL, .eta_s = 70};
	char *s = tui_progress_text(&p);
	assert_string_equal(s, "[2/3] web  backup  42%  1.2 GiB / 2.9 GiB  eta 1m10s");
	free(s);
	struct sb_job_progress none = {.eta_s = -1};
	s = tui_progress_text(&none);
	assert_string_equal(s, "");
	free(s);
	struct sb_job_progress files = {.phase = "check", .files_done = 3, .files_total = 9, .eta_s = -1};
	s = tui_progress_text(&files);
	assert_string_equal(s, "check  3/9 files");
	free(s);
}

static void test_filter(void **state)
{
	(void)state;
	assert_true(tui_filter_match("", "web"));
	assert_true(tui_filter_match(NULL, "web"));
	assert_true(tui_filter_match("EB", "web"));        /* substring, any case */
	assert_false(tui_filter_match("db", "web"));
	assert_true(tui_filter_match("web*", "web-2"));
	assert_false(tui_filter_match("web*", "myweb"));   /* a glob is anchored */
	assert_true(tui_filter_match("*web*", "myweb"));
	assert_true(tui_filter_match("?b", "db"));
	assert_true(tui_filter_match("[dw]*", "db"));
	assert_false(tui_filter_match("[dw]*", "app"));
	assert_true(tui_filter_match("WEB*", "web"));
	assert_false(tui_filter_match("[", "web"));        /* a broken glob matches nothing */
}

/* ---- the last backup, through the core's own writer and renderer ---- */

struct state_fixture {
	char dir[64];
	struct sb_config cfg;
};

static int state_setup(void **state)
{
	struct state_fixture *f = xcalloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/sbtuiviewXXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	sb_config_defaults(&f->cfg);
	free(f->cfg.state_dir);
	f->cfg.state_dir = xstrdup(f->dir);
	char *err = NULL;
	if (sb_state_prepare(&f->cfg, &err) < 0) {
		free(err);
		return -1;
	}
	*state = f;
	return 0;
}

static int state_teardown(void **state)
{
	struct state_fixture *f = *state;
	sb_rm_rf(f->dir);
	sb_config_free(&f->cfg);
	free(f);
	return 0;
}

static void write_stack_state(struct state_fixture *f, const char *name, const char *result,
			      const char *error, double started, double downtime)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "stack", json_object_new_string(name));
	json_object_object_add(o, "result", json_object_new_string(result));
	json_object_object_add(o, "error", error ? json_object_new_string(error) : NULL);
	json_object_object_add(o, "snapshot_id",
			       strcmp(result, "ok") == 0 ? json_object_new_string("1a2b3c4d5e6f7a8b") : NULL);
	json_object_object_add(o, "started_at", json_object_new_double(started));
	json_object_object_add(o, "duration_s", json_object_new_double(4.0));
	json_object_object_add(o, "downtime_s", json_object_new_double(downtime));
	json_object_object_add(o, "bytes_added", json_object_new_int64(1572864));
	json_object_object_add(o, "job", json_object_new_int(7));
	char *rel = xasprintf("stacks/%s.json", name);
	assert_int_equal(sb_state_write_json(&f->cfg, rel, o), 0);
	free(rel);
	json_object_put(o);
}

static void test_last_backup_roundtrip(void **state)
{
	struct state_fixture *f = *state;
	struct tui_last_backup lb;

	char *text = sb_status_last_backup_text(&f->cfg, "web");
	assert_int_equal(tui_last_backup_parse(text, strlen(text), &lb), 0);
	assert_false(lb.known);
	tui_last_backup_free(&lb);
	free(text);

	write_stack_state(f, "web", "ok", NULL, 1714564800, 3.25);
	text = sb_status_last_backup_text(&f->cfg, "web");
	assert_int_equal(tui_last_backup_parse(text, strlen(text), &lb), 0);
	assert_true(lb.known);
	assert_string_equal(lb.result, "ok");
	assert_true(fabs(lb.time - 1714564804) < 1.01); /* it ended 4 s after it started */
	assert_true(lb.has_downtime);
	assert_true(fabs(lb.downtime_s - 3.2) < 0.11);
	assert_string_equal(lb.snapshot, "1a2b3c4d5e6f7a8b");
	assert_int_equal(lb.bytes_added, 1572864);
	assert_null(lb.error);
	tui_last_backup_free(&lb);
	free(text);

	write_stack_state(f, "db", "skipped", "pre-backup hook of stack 'db' exited 1: boom", 1714564800, 0);
	text = sb_status_last_backup_text(&f->cfg, "db");
	assert_int_equal(tui_last_backup_parse(text, strlen(text), &lb), 0);
	assert_string_equal(lb.result, "skipped");
	assert_string_equal(lb.error, "pre-backup hook of stack 'db' exited 1: boom");
	assert_string_equal(lb.snapshot, "");
	tui_last_backup_free(&lb);
	free(text);
}

static void test_last_backup_garbage(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"result ok\n",                            /* no separator */
		"time: yesterday\n",
		"time: 2024-13-45T99:00:00Z\n",
		"duration_s: -4\n",
		"duration_s: 1e400\n",
		"downtime_s: nan\n",
		"bytes_added: lots\n",
		"result: \n",
		"result: a-result-name-much-too-long\n",
	};
	struct tui_last_backup lb;
	for (size_t i = 0; i < SB_ARRAY_SIZE(bad); i++) {
		assert_int_equal(tui_last_backup_parse(bad[i], strlen(bad[i]), &lb), -1);
		tui_last_backup_free(&lb);
	}
	/* A NUL inside is not text. */
	assert_int_equal(tui_last_backup_parse("result: ok\0x", 12, &lb), -1);
	tui_last_backup_free(&lb);
	/* Unknown keys are for later versions of the engine. */
	const char *extra = "result: ok\nflavour: vanilla\n";
	assert_int_equal(tui_last_backup_parse(extra, strlen(extra), &lb), 0);
	assert_string_equal(lb.result, "ok");
	tui_last_backup_free(&lb);
	/* Whatever bytes come, the parser returns and leaves nothing allocated it should not. */
	srand(42);
	char buf[256];
	for (int round = 0; round < 2000; round++) {
		size_t len = (size_t)(rand() % (int)sizeof(buf));
		for (size_t i = 0; i < len; i++)
			buf[i] = (char)(rand() % 4 == 0 ? "\n: e"[rand() % 4] : rand());
		int rc = tui_last_backup_parse(buf, len, &lb);
		assert_true(rc == 0 || rc == -1);
		tui_last_backup_free(&lb);
	}
}

/* ---- the stacks screen ---- */

static void add_stack(struct sb_selection *sel, const char *name, bool enabled,
		      enum sb_stack_origin origin)
{
	sel->stacks = xrealloc(sel->stacks, (sel->n + 1) * sizeof(*sel->stacks));
	struct sb_stack *s = &sel->stacks[sel->n++];
	*s = (struct sb_stack){
		.name = xstrdup(name),
		.path = xasprintf("/opt/docker-stacks/%s", name),
		.dirlist_key = xstrdup(name),
		.enabled = enabled,
		.origin = origin,
	};
}

static void make_selection(struct sb_selection *sel)
{
	*sel = (struct sb_selection){0};
	add_stack(sel, "web", true, SB_STACK_LISTED);
	add_stack(sel, "db", false, SB_STACK_LISTED);
	add_stack(sel, "web-2", false, SB_STACK_NEW);
	add_stack(sel, "old", true, SB_STACK_MISSING);
	add_stack(sel, "mail", false, SB_STACK_LISTED);
}

static void test_stack_list_filter_and_cursor(void **state)
{
	(void)state;
	struct sb_selection sel;
	make_selection(&sel);
	struct tui_stack_list l = {0};
	tui_stack_list_load(&l, &sel);
	assert_int_equal(l.n, 5);
	assert_int_equal(l.n_shown, 5);
	assert_string_equal(tui_stack_list_current(&l)->name, "web");

	tui_stack_list_move(&l, 2, 3);
	assert_string_equal(tui_stack_list_current(&l)->name, "web-2");
	tui_stack_list_set_filter(&l, "web*");
	assert_int_equal(l.n_shown, 2);
	/* The cursor stays on the same stack when it is still shown. */
	assert_string_equal(tui_stack_list_current(&l)->name, "web-2");
	tui_stack_list_set_filter(&l, "nothing-matches");
	assert_int_equal(l.n_shown, 0);
	assert_null(tui_stack_list_current(&l));
	tui_stack_list_move(&l, 1, 3);
	assert_null(tui_stack_list_current(&l));
	tui_stack_list_set_filter(&l, NULL);
	assert_int_equal(l.n_shown, 5);
	assert_non_null(tui_stack_list_current(&l));

	/* Moving clamps and scrolls a 2-row view. */
	tui_stack_list_move(&l, -100, 2);
	assert_int_equal(l.cursor, 0);
	tui_stack_list_move(&l, 100, 2);
	assert_int_equal(l.cursor, 4);
	assert_int_equal(l.top, 3);
	tui_stack_list_move(&l, -2, 2);
	assert_int_equal(l.cursor, 2);
	assert_int_equal(l.top, 2);
	/* A tiny window scrolled the list; when it grows, every row is shown again. */
	tui_stack_list_move(&l, 0, 1);
	assert_int_equal(l.top, 2);
	tui_stack_list_move(&l, 0, 20);
	assert_int_equal(l.top, 0);
	assert_int_equal(l.cursor, 2);
	tui_stack_list_move(&l, 0, 4);
	assert_int_equal(l.top, 0);

	char *sum = tui_stack_summary(&l);
	assert_string_equal(sum, "2 of 5 stacks enabled");
	free(sum);
	tui_stack_list_set_filter(&l, "w");
	sum = tui_stack_summary(&l);
	assert_string_equal(sum, "2 of 5 stacks enabled, 2 shown (filter 'w')");
	free(sum);

	tui_stack_list_free(&l);
	sb_selection_free(&sel);
}

static void test_stack_list_bulk_changes(void **state)
{
	(void)state;
	struct sb_selection sel;
	make_selection(&sel);
	struct tui_stack_list l = {0};
	tui_stack_list_load(&l, &sel);
	struct sb_selection_change *ch;

	/* space: the cursor's row flips. */
	assert_int_equal(tui_stack_list_changes(&l, TUI_BULK_TOGGLE_CURSOR, &ch), 1);
	assert_string_equal(ch[0].key, "web");
	assert_false(ch[0].enabled);
	free(ch);

	/* a: only rows that change are written. */
	assert_int_equal(tui_stack_list_changes(&l, TUI_BULK_ENABLE_SHOWN, &ch), 3);
	assert_string_equal(ch[0].key, "db");
	assert_string_equal(ch[1].key, "web-2");
	assert_string_equal(ch[2].key, "mail");
	for (int i = 0; i < 3; i++)
		assert_true(ch[i].enabled);
	free(ch);

	/* With a filter, bulk actions touch only the shown rows. */
	tui_stack_list_set_filter(&l, "web*");
	assert_int_equal(tui_stack_list_changes(&l, TUI_BULK_DISABLE_SHOWN, &ch), 1);
	assert_string_equal(ch[0].key, "web");
	assert_false(ch[0].enabled);
	free(ch);
	assert_int_equal(tui_stack_list_changes(&l, TUI_BULK_INVERT_SHOWN, &ch), 2);
	assert_false(ch[0].enabled);
	assert_true(ch[1].enabled);
	free(ch);

	/* Nothing to change: no allocation. */
	tui_stack_list_set_filter(&l, "mail");
	assert_int_equal(tui_stack_list_changes(&l, TUI_BULK_DISABLE_SHOWN, &ch), 0);
	assert_null(ch);
	tui_stack_list_set_filter(&l, "zzz");
	assert_int_equal(tui_stack_list_changes(&l, TUI_BULK_TOGGLE_CURSOR, &ch), 0);
	assert_null(ch);

	tui_stack_list_free(&l);
	sb_selection_free(&sel);
}

static void test_stack_list_reload_keeps_what_was_learned(void **state)
{
	(void)state;
	struct sb_selection sel;
	make_selection(&sel);
	struct tui_stack_list l = {0};
	tui_stack_list_load(&l, &sel);
	struct tui_stack_row *db = tui_stack_list_find(&l, "db");
	db->docker = SB_STATE_RUNNING;
	db->docker_known = true;
	db->snapshots = 4;
	db->last.known = true;
	db->last.error = xstrdup("kept");
	tui_stack_list_move(&l, 1, 10);

	/* Another front end enabled db: the reload shows it, and keeps docker's answer. */
	sel.stacks[1].enabled = true;
	tui_stack_list_load(&l, &sel);
	db = tui_stack_list_find(&l, "db");
	assert_true(db->enabled);
	assert_true(db->docker_known);
	assert_int_equal(db->docker, SB_STATE_RUNNING);
	assert_int_equal(db->snapshots, 4);
	assert_string_equal(db->last.error, "kept");
	assert_string_equal(tui_stack_list_current(&l)->name, "db");
	assert_null(tui_stack_list_find(&l, "nope"));

	/* A vanished stack disappears and the cursor stays in range. */
	tui_stack_list_move(&l, 10, 10);
	sb_selection_free(&sel);
	sel = (struct sb_selection){0};
	add_stack(&sel, "web", true, SB_STACK_LISTED);
	tui_stack_list_load(&l, &sel);
	assert_int_equal(l.n, 1);
	assert_string_equal(tui_stack_list_current(&l)->name, "web");
	assert_int_equal(tui_stack_list_current(&l)->snapshots, -1);

	tui_stack_list_free(&l);
	sb_selection_free(&sel);
}

static void test_stack_snapshot_counts(void **state)
{
	(void)state;
	struct sb_selection sel;
	make_selection(&sel);
	struct tui_stack_list l = {0};
	tui_stack_list_load(&l, &sel);
	const char *json =
		"[{\"id\":\"aa\",\"short_id\":\"aa\",\"time\":\"2024-05-01T12:00:00Z\",\"tags\":[\"stackback\",\"web\"],\"paths\":[\"/x\"]},"
		"{\"id\":\"bb\",\"short_id\":\"bb\",\"time\":\"2024-05-02T12:00:00Z\",\"tags\":[\"stackback\",\"web\"],\"paths\":[\"/x\"]},"
		"{\"id\":\"cc\",\"short_id\":\"cc\",\"time\":\"2024-05-02T12:00:00Z\",\"tags\":[\"stackback\",\"db\"],\"paths\":[\"/y\"]},"
		"{\"id\":\"dd\",\"short_id\":\"dd\",\"time\":\"2024-05-02T12:00:00Z\",\"tags\":[\"stackback\",\"gone\"],\"paths\":[\"/z\"]}]";
	struct sb_snapshot_list snaps;
	assert_int_equal(sb_restic_parse_snapshots(json, strlen(json), &snaps), 0);
	tui_stack_list_count_snapshots(&l, &snaps);
	assert_int_equal(tui_stack_list_find(&l, "web")->snapshots, 2);
	assert_int_equal(tui_stack_list_find(&l, "db")->snapshots, 1);
	assert_int_equal(tui_stack_list_find(&l, "mail")->snapshots, 0);
	struct sb_strv with = {0}, names = {0};
	sb_strv_push(&with, "web");
	sb_strv_push(&with, "zz-gone");
	sb_strv_push(&with, "gone");
	tui_snapshot_stacks(&sel, &with, &names);
	assert_int_equal(names.n, 7);
	assert_string_equal(names.v[0], "web");
	assert_string_equal(names.v[4], "mail");
	assert_string_equal(names.v[5], "gone"); /* only in the repository: listed after, by name */
	assert_string_equal(names.v[6], "zz-gone");
	sb_strv_free(&names);
	tui_snapshot_stacks(&sel, NULL, &names);
	assert_int_equal(names.n, 5);
	sb_strv_free(&names);
	sb_strv_free(&with);
	sb_snapshot_list_free(&snaps);
	tui_stack_list_free(&l);
	sb_selection_free(&sel);
}

static void test_stack_cells_and_layout(void **state)
{
	(void)state;
	int w[TUI_STACK_NCOLS];
	for (int width = 40; width <= 200; width += 40) {
		tui_stack_layout(width, w);
		int total = TUI_STACK_NCOLS;
		for (int c = 0; c < TUI_STACK_NCOLS; c++)
			total += w[c];
		if (width >= 80)
			assert_int_equal(total, width);
		assert_true(w[TUI_COL_NAME] >= 8);
	}
	tui_stack_layout(80, w);
	assert_true(w[TUI_COL_NAME] >= 30); /* room for real names at 80 columns */

	double now = 1714564800;
	char name[] = "web", path[] = "/opt/docker-stacks/web";
	char failure[] = "backup of stack 'web' failed: restic exited 1";
	char clash[] = "stacks 'web' and '/srv/web' have the same name";
	struct tui_stack_row r = {.name = name, .path = path, .enabled = true,
				  .origin = SB_STACK_LISTED, .snapshots = -1};
	struct tui_cell c[TUI_STACK_NCOLS];
	tui_stack_cells(&r, now, false, c);
	assert_string_equal(c[TUI_COL_ON].text, "[x]");
	assert_string_equal(c[TUI_COL_NAME].text, "web");
	assert_string_equal(c[TUI_COL_DOCKER].text, "...");
	assert_string_equal(c[TUI_COL_LAST].text, "never");
	assert_string_equal(c[TUI_COL_SNAPS].text, "  ...");

	r.docker = SB_STATE_RUNNING;
	r.docker_known = true;
	r.snapshots = 12;
	r.last = (struct tui_last_backup){.known = true, .time = now - 7200, .result = "failed",
					  .error = failure};
	tui_stack_cells(&r, now, true, c);
	assert_string_equal(c[TUI_COL_ON].text, "[\xe2\x9c\x93]");
	assert_string_equal(c[TUI_COL_DOCKER].text, "running");
	assert_int_equal(c[TUI_COL_DOCKER].tone, TUI_TONE_GOOD);
	assert_string_equal(c[TUI_COL_LAST].text, "2h ago");
	assert_string_equal(c[TUI_COL_RESULT].text, "failed");
	assert_int_equal(c[TUI_COL_RESULT].tone, TUI_TONE_BAD);
	assert_string_equal(c[TUI_COL_SNAPS].text, "   12");

	char *lines[8];
	enum tui_tone tones[8];
	size_t n = tui_stack_details(&r, now, lines, tones, 8);
	assert_int_equal(n, 3);
	assert_string_equal(lines[0], "web  /opt/docker-stacks/web");
	assert_int_equal(tones[1], TUI_TONE_BAD);
	assert_string_equal(lines[2], "error: backup of stack 'web' failed: restic exited 1");
	assert_int_equal(tones[2], TUI_TONE_BAD);
	for (size_t i = 0; i < n; i++)
		free(lines[i]);
	/* The detail array bound holds. */
	n = tui_stack_details(&r, now, lines, tones, 1);
	assert_int_equal(n, 1);
	free(lines[0]);

	r.last = (struct tui_last_backup){.known = true, .time = now - 30, .result = "ok",
					  .snapshot = "1a2b3c4d5e6f", .duration_s = 4.2,
					  .downtime_s = 3.1, .has_downtime = true, .bytes_added = 2048};
	n = tui_stack_details(&r, now, lines, tones, 8);
	assert_int_equal(n, 2);
	assert_int_equal(tones[1], TUI_TONE_GOOD);
	assert_non_null(strstr(lines[1], "ok, took 4.2s, downtime 3.1s, snapshot 1a2b3c4d, added 2.0 KiB"));
	for (size_t i = 0; i < n; i++)
		free(lines[i]);

	r.origin = SB_STACK_MISSING;
	tui_stack_cells(&r, now, false, c);
	assert_string_equal(c[TUI_COL_NAME].text, "web (missing)");
	assert_string_equal(c[TUI_COL_DOCKER].text, "missing");
	r.origin = SB_STACK_NEW;
	r.enabled = false;
	tui_stack_cells(&r, now, false, c);
	assert_string_equal(c[TUI_COL_NAME].text, "web (new)");
	assert_string_equal(c[TUI_COL_ON].text, "[ ]");
	r.conflict = clash;
	tui_stack_cells(&r, now, false, c);
	assert_int_equal(c[TUI_COL_NAME].tone, TUI_TONE_BAD);
	assert_string_equal(c[TUI_COL_ON].text, "[ ]");
	assert_string_equal(tui_stack_heading(TUI_COL_SNAPS), "SNAPS");
}

static void test_snapshot_lines_and_tree(void **state)
{
	(void)state;
	struct sb_snapview_snap snap = {.id = "1a2b3c4d5e6f", .short_id = "1a2b3c4d", .time = 1714564803};
	char *s = tui_snapshot_line(&snap);
	assert_string_equal(s, "2024-05-01 12:00:03  1a2b3c4d");
	free(s);

	/* A real `restic ls --json` shape, through the core's own tree builder. */
	static const char *const ls[] = {
		"{\"time\":\"2024-05-01T12:00:03Z\",\"tree\":\"ab\",\"paths\":[\"/srv/web\"],\"hostname\":\"h\","
		"\"id\":\"1a2b3c4d5e6f\",\"short_id\":\"1a2b3c4d\",\"struct_type\":\"snapshot\"}",
		"{\"name\":\"data\",\"type\":\"dir\",\"path\":\"/srv/web/data\",\"uid\":0,\"gid\":0,\"size\":0,"
		"\"mode\":2147484141,\"mtime\":\"2024-05-01T11:00:00Z\",\"struct_type\":\"node\"}",
		"{\"name\":\"db.sql\",\"type\":\"file\",\"path\":\"/srv/web/data/db.sql\",\"uid\":0,\"gid\":0,"
		"\"size\":1572864,\"mode\":416,\"mtime\":\"2024-05-01T11:30:00Z\",\"struct_type\":\"node\"}",
		"{\"name\":\"cur\",\"type\":\"symlink\",\"path\":\"/srv/web/cur\",\"uid\":0,\"gid\":0,"
		"\"size\":4,\"mode\":134218239,\"mtime\":\"2024-05-01T11:00:00Z\",\"struct_type\":\"node\"}",
	};
	struct sb_snaptree_builder *b = sb_snaptree_builder_new(NULL);
	char *err = NULL;
	for (size_t i = 0; i < SB_ARRAY_SIZE(ls); i++)
		assert_int_equal(sb_snaptree_builder_feed_json(b, ls[i], strlen(ls[i]), &err), 0);
	const char *longl = "Lrwxrwxrwx     0     0      4 2024-05-01 11:00:00 /srv/web/cur -> data";
	sb_snaptree_builder_feed_long(b, longl, strlen(longl));
	struct sb_snaptree *t = sb_snaptree_builder_finish(b, &err);
	assert_non_null(t);
	sb_snaptree_builder_free(b);
	sb_snode_id id;
	assert_int_equal(sb_snaptree_lookup(t, "data", &id), 0);
	s = tui_tree_entry_line(t, id);
	assert_string_equal(s, "drwxr-xr-x             2024-05-01 11:00  data/");
	free(s);
	assert_int_equal(sb_snaptree_lookup(t, "data/db.sql", &id), 0);
	s = tui_tree_entry_line(t, id);
	assert_string_equal(s, "-rw-r-----    1.5 MiB  2024-05-01 11:30  db.sql");
	free(s);
	assert_int_equal(sb_snaptree_lookup(t, "cur", &id), 0);
	s = tui_tree_entry_line(t, id);
	assert_non_null(strstr(s, "cur -> data"));
	assert_int_equal(s[0], 'l');
	free(s);
	sb_snaptree_unref(t);
}

static void test_copy_destination(void **state)
{
	(void)state;
	char *s = tui_copy_destination("/tmp/out/", "db.sql", "/root");
	assert_string_equal(s, "/tmp/out/db.sql");
	free(s);
	s = tui_copy_destination("~/restored", "data", "/home/me");
	assert_string_equal(s, "/home/me/restored/data");
	free(s);
	s = tui_copy_destination("~", "data", "/home/me");
	assert_string_equal(s, "/home/me/data");
	free(s);
	s = tui_copy_destination("/", "x", NULL);
	assert_string_equal(s, "/x");
	free(s);
	s = tui_copy_destination("~/a", "x", NULL); /* no home: taken as written */
	assert_string_equal(s, "~/a/x");
	free(s);
	s = tui_copy_destination("/tmp/whole", "", "/root");
	assert_string_equal(s, "/tmp/whole");
	free(s);
}

/* ---- a run ---- */

static void add_report(struct sb_job *job, const char *name, enum sb_stack_result res,
		       const char *error, double downtime)
{
	pthread_mutex_lock(&job->mu);
	job->reports = xrealloc(job->reports, (job->n_reports + 1) * sizeof(*job->reports));
	job->reports[job->n_reports++] = (struct sb_stack_report){
		.name = xstrdup(name),
		.result = res,
		.error = xstrdup(error),
		.snapshot_id = res == SB_STACK_OK ? xstrdup("0123456789abcdef") : NULL,
		.duration_s = 4.0,
		.downtime_s = downtime,
		.bytes_added = 1024,
	};
	pthread_mutex_unlock(&job->mu);
}

static void test_run_view(void **state)
{
	(void)state;
	struct tui_run_view v = {0};
	tui_run_begin(&v, SB_JOB_BACKUP, false);
	enum tui_tone tone;
	char *h = tui_run_headline(&v, &tone);
	assert_string_equal(h, "backup: starting");
	free(h);

	tui_run_started(&v, 12, false);
	struct sb_job_progress p = {.stack = "web", .phase = "backup", .stack_index = 1,
				    .stack_count = 2, .percent = 10, .eta_s = -1};
	tui_run_progress(&v, SB_JOB_RUNNING, &p);
	h = tui_run_headline(&v, &tone);
	assert_string_equal(h, "backup job 12 in this process: running");
	assert_int_equal(tone, TUI_TONE_NORMAL);
	free(h);
	assert_int_equal(v.n_stacks, 1);
	char *line = tui_run_stack_line(&v, &v.stacks[0], &tone);
	assert_non_null(strstr(line, "backup"));
	assert_int_equal(tone, TUI_TONE_WARN);
	free(line);

	/* The next stack closes web's turn. */
	struct sb_job_progress p2 = {.stack = "db", .phase = "stop", .stack_index = 2,
				     .stack_count = 2, .eta_s = -1};
	tui_run_progress(&v, SB_JOB_RUNNING, &p2);
	assert_int_equal(v.n_stacks, 2);
	assert_true(v.stacks[0].finished);
	line = tui_run_stack_line(&v, &v.stacks[0], &tone);
	assert_non_null(strstr(line, "done"));
	free(line);

	/* A stack whose turn runs is listed by the engine as failed without a cause: not a result yet. */
	struct sb_job_request req0 = {.kind = SB_JOB_BACKUP};
	struct sb_job *running = sb_job_new(12, &req0);
	pthread_mutex_lock(&running->mu);
	running->state = SB_JOB_RUNNING;
	pthread_mutex_unlock(&running->mu);
	add_report(running, "db", SB_STACK_FAILED, NULL, 0);
	tui_run_reports(&v, running);
	assert_false(v.stacks[1].has_result);
	line = tui_run_stack_line(&v, &v.stacks[1], &tone);
	assert_non_null(strstr(line, "stop"));
	assert_int_equal(tone, TUI_TONE_WARN);
	free(line);
	sb_job_free(running);

	/* The engine's real result, failure and downtime included. */
	struct sb_job_request req = {.kind = SB_JOB_BACKUP};
	struct sb_job *job = sb_job_new(12, &req);
	add_report(job, "web", SB_STACK_OK, NULL, 3.5);
	add_report(job, "db", SB_STACK_SKIPPED, "pre-backup hook of stack 'db' exited 1", 0);
	pthread_mutex_lock(&job->mu);
	job->state = SB_JOB_FAILED;
	job->summary = xstrdup("1 of 2 stacks backed up, 1 failed");
	pthread_mutex_unlock(&job->mu);
	tui_run_finished(&v, job);
	sb_job_free(job);

	h = tui_run_headline(&v, &tone);
	assert_string_equal(h, "backup job 12 in this process: failed");
	assert_int_equal(tone, TUI_TONE_BAD);
	free(h);
	line = tui_run_stack_line(&v, &v.stacks[0], &tone);
	assert_int_equal(tone, TUI_TONE_GOOD);
	assert_non_null(strstr(line, "ok       snapshot 01234567, 4.0s, downtime 3.5s, added 1.0 KiB"));
	free(line);
	line = tui_run_stack_line(&v, &v.stacks[1], &tone);
	assert_int_equal(tone, TUI_TONE_BAD);
	assert_non_null(strstr(line, "skipped"));
	assert_null(strstr(line, "pre-backup"));
	assert_string_equal(v.stacks[1].error, "pre-backup hook of stack 'db' exited 1");
	free(line);
	assert_string_equal(v.summary, "1 of 2 stacks backed up, 1 failed");

	/* An ok job reads ok; a stack the report never mentioned is not shown as a success. */
	tui_run_begin(&v, SB_JOB_BACKUP, true);
	tui_run_started(&v, 0, true);
	tui_run_progress(&v, SB_JOB_RUNNING, &p);
	struct sb_job_request req2 = {.kind = SB_JOB_BACKUP, .dry_run = true};
	job = sb_job_new(0, &req2);
	pthread_mutex_lock(&job->mu);
	job->state = SB_JOB_OK;
	pthread_mutex_unlock(&job->mu);
	tui_run_finished(&v, job);
	sb_job_free(job);
	h = tui_run_headline(&v, &tone);
	assert_string_equal(h, "backup (dry run) through the daemon: finished ok");
	assert_int_equal(tone, TUI_TONE_GOOD);
	free(h);
	line = tui_run_stack_line(&v, &v.stacks[0], &tone);
	assert_int_equal(tone, TUI_TONE_BAD);
	assert_non_null(strstr(line, "no result reported"));
	free(line);

	tui_run_begin(&v, SB_JOB_SYNC, false);
	tui_run_failed(&v, "job lock held by pid 42");
	h = tui_run_headline(&v, &tone);
	assert_string_equal(h, "sync: could not run");
	assert_int_equal(tone, TUI_TONE_BAD);
	free(h);
	assert_string_equal(v.error, "job lock held by pid 42");
	assert_string_equal(tui_run_kind_title(SB_JOB_RESTORE),
			    "Stage 3: copy the repository back from the cloud");
	tui_run_free(&v);
}

static void test_run_log_ring(void **state)
{
	(void)state;
	struct tui_run_view v = {0};
	tui_run_begin(&v, SB_JOB_CHECK, false);
	for (int i = 0; i < TUI_RUN_LOG_KEEP + 10; i++) {
		char *l = xasprintf("line %d\033[31m", i);
		tui_run_log(&v, l);
		free(l);
	}
	assert_int_equal(v.log.n, TUI_RUN_LOG_KEEP);
	assert_string_equal(v.log.v[0], "line 10 [31m");
	char *l = tui_log_line_short("2024-05-01T12:00:03Z info: job 3: backup ok");
	assert_string_equal(l, "12:00:03 info: job 3: backup ok");
	free(l);
	l = tui_log_line_short("2024-05-01T12:00:03Z");
	assert_string_equal(l, "2024-05-01T12:00:03Z");
	free(l);
	l = tui_log_line_short("not a \033stamp");
	assert_string_equal(l, "not a  stamp");
	free(l);
	assert_null(v.log.v[v.log.n]);
	tui_run_free(&v);
}

static void test_run_overall(void **state)
{
	(void)state;
	struct tui_run_view v = {0};
	tui_run_begin(&v, SB_JOB_BACKUP, false);
	assert_true(tui_run_overall_percent(&v) < 0);
	struct sb_job_progress p = {.stack = "a", .stack_index = 2, .stack_count = 4, .percent = 50, .eta_s = -1};
	tui_run_progress(&v, SB_JOB_RUNNING, &p);
	assert_true(fabs(tui_run_overall_percent(&v) - 37.5) < 1e-9);
	p.percent = 1000; /* garbage from a daemon: never past the stack's share */
	tui_run_progress(&v, SB_JOB_RUNNING, &p);
	assert_true(fabs(tui_run_overall_percent(&v) - 25) < 1e-9);
	p.stack_index = 9;
	p.percent = 0;
	tui_run_progress(&v, SB_JOB_RUNNING, &p);
	assert_true(tui_run_overall_percent(&v) <= 100);
	tui_run_free(&v);
}

/* ---- health ---- */

static void test_health_lines(void **state)
{
	(void)state;
	char d0[] = "Docker 20.10 answers", d1[] = "wrong password\033[2J", f1[] = "check PASSWORD_FILE";
	char d2[] = "not configured";
	struct sb_doctor_check c[3] = {
		{.name = "docker", .title = "Docker engine", .result = SB_DOCTOR_OK, .detail = d0},
		{.name = "repository", .title = "Restic repository", .result = SB_DOCTOR_FAILED,
		 .detail = d1, .fix = f1},
		{.name = "remote", .title = "Cloud remote", .result = SB_DOCTOR_SKIPPED, .detail = d2},
	};
	bool done[3] = {true, false, false};
	enum tui_tone tone;
	char *s = tui_health_line(&c[0], NULL, 14, &tone);
	assert_string_equal(s, "ok       Docker engine   Docker 20.10 answers");
	assert_int_equal(tone, TUI_TONE_GOOD);
	free(s);
	s = tui_health_line(&c[1], NULL, 10, &tone);
	assert_string_equal(s, "failed   Restic re~  wrong password [2J");
	assert_int_equal(tone, TUI_TONE_BAD);
	free(s);
	s = tui_health_line(NULL, "Cloud remote", 14, &tone);
	assert_string_equal(s, "...      Cloud remote    checking");
	assert_int_equal(tone, TUI_TONE_DIM);
	free(s);
	s = tui_health_line(&c[2], NULL, 14, &tone);
	assert_int_equal(tone, TUI_TONE_DIM);
	free(s);

	s = tui_health_summary(c, done, 3, true, &tone);
	assert_string_equal(s, "checking: 1 of 3 done");
	free(s);
	done[1] = done[2] = true;
	s = tui_health_summary(c, done, 3, false, &tone);
	assert_string_equal(s, "1 of 3 checks failed");
	assert_int_equal(tone, TUI_TONE_BAD);
	free(s);
	c[1].result = SB_DOCTOR_WARNING;
	s = tui_health_summary(c, done, 3, false, &tone);
	assert_string_equal(s, "all 3 checks pass, 1 with a warning");
	assert_int_equal(tone, TUI_TONE_WARN);
	free(s);
	c[1].result = SB_DOCTOR_OK;
	s = tui_health_summary(c, done, 3, false, &tone);
	assert_string_equal(s, "all 3 checks pass");
	assert_int_equal(tone, TUI_TONE_GOOD);
	free(s);
}

/* ---- scrollable text ---- */

static void test_text_view(void **state)
{
	(void)state;
	struct tui_text t = {0};
	struct sb_buf b = {0};
	for (int i = 0; i < 100; i++)
		sb_buf_printf(&b, "%s line %d\n", i % 10 == 3 ? "ERROR" : "info", i);
	tui_text_set(&t, b.data, false, true, 20);
	assert_int_equal(t.lines.n, 100);
	assert_int_equal(t.top, 80); /* tail: the end is shown */
	tui_text_scroll(&t, 5, 20);
	assert_int_equal(t.top, 80);
	tui_text_scroll(&t, -200, 20);
	assert_int_equal(t.top, 0);
	tui_text_jump(&t, true, 20);
	assert_int_equal(t.top, 80);
	tui_text_jump(&t, false, 20);

	assert_true(tui_text_search(&t, "error", false, 20));
	assert_int_equal(t.match, 3);
	assert_int_equal(t.top, 0);
	assert_true(tui_text_search(&t, NULL, false, 20));
	assert_int_equal(t.match, 13);
	assert_true(tui_text_search(&t, NULL, true, 20));
	assert_int_equal(t.match, 3);
	/* Backward from the first hit wraps to the last, and scrolls to it. */
	assert_true(tui_text_search(&t, NULL, true, 20));
	assert_int_equal(t.match, 93);
	assert_true(t.top <= 93 && 93 < t.top + 20);
	assert_false(tui_text_search(&t, "absent", false, 20));
	assert_false(t.has_match);

	/* New text keeps the position when asked, clamped to the new length. */
	t.top = 50;
	tui_text_set(&t, "a\nb\nc\n", true, false, 20);
	assert_int_equal(t.lines.n, 3);
	assert_int_equal(t.top, 0);
	tui_text_set(&t, "no newline at the end", false, false, 20);
	assert_int_equal(t.lines.n, 1);
	assert_string_equal(t.lines.v[0], "no newline at the end");
	tui_text_set(&t, "", false, false, 20);
	assert_int_equal(t.lines.n, 0);
	assert_false(tui_text_search(&t, "x", false, 20));
	tui_text_set(&t, NULL, false, false, 20);
	tui_text_set(&t, "\033[2J\n", false, false, 20);
	assert_string_equal(t.lines.v[0], " [2J");
	tui_text_free(&t);
	sb_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_text_width),
		cmocka_unit_test(test_fit),
		cmocka_unit_test(test_sanitize),
		cmocka_unit_test(test_wrap),
		cmocka_unit_test(test_wrap_text),
		cmocka_unit_test(test_line_edit),
		cmocka_unit_test(test_format_age),
		cmocka_unit_test(test_format_eta),
		cmocka_unit_test(test_progress_bar),
		cmocka_unit_test(test_progress_text),
		cmocka_unit_test(test_filter),
		cmocka_unit_test_setup_teardown(test_last_backup_roundtrip, state_setup, state_teardown),
		cmocka_unit_test(test_last_backup_garbage),
		cmocka_unit_test(test_stack_list_filter_and_cursor),
		cmocka_unit_test(test_stack_list_bulk_changes),
		cmocka_unit_test(test_stack_list_reload_keeps_what_was_learned),
		cmocka_unit_test(test_stack_snapshot_counts),
		cmocka_unit_test(test_stack_cells_and_layout),
		cmocka_unit_test(test_snapshot_lines_and_tree),
		cmocka_unit_test(test_copy_destination),
		cmocka_unit_test(test_run_view),
		cmocka_unit_test(test_run_log_ring),
		cmocka_unit_test(test_run_overall),
		cmocka_unit_test(test_health_lines),
		cmocka_unit_test(test_text_view),
	};
	return cmocka_run_group_tests(tests, set_utf8_locale, NULL);
}
