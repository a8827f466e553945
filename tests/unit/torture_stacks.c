/*
 * Stack discovery and the dirlist (SPEC §4): the name rule, the parser
 * against garbage, round trips that keep the user's lines, discovery on
 * real temp trees (hidden dirs, symlinks out, FIFO compose files, hostile
 * names), clashes, updates, and concurrent writers.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "stackback/stacks.h"

/* ---- helpers ---- */

struct fixture {
	char *dir;     /* temp root */
	char *stacks;  /* DOCKER_STACKS_DIR */
	char *outside; /* a directory outside it */
	struct sb_config cfg;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	char tmpl[] = "/tmp/sbstacksXXXXXX";
	assert_non_null(mkdtemp(tmpl));
	f->dir = xstrdup(tmpl);
	f->stacks = xasprintf("%s/stacks", f->dir);
	f->outside = xasprintf("%s/outside", f->dir);
	assert_int_equal(mkdir(f->stacks, 0755), 0);
	assert_int_equal(mkdir(f->outside, 0755), 0);
	f->cfg.stacks_dir = xstrdup(f->stacks);
	f->cfg.dirlist = xasprintf("%s/state/dirlist", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	sb_rm_rf(f->dir);
	free(f->dir);
	free(f->stacks);
	free(f->outside);
	free(f->cfg.stacks_dir);
	free(f->cfg.dirlist);
	free(f);
	return 0;
}

/* Creates dir/name holding a compose file called compose (NULL: none). */
static void make_stack_in(const char *dir, const char *name, const char *compose)
{
	char *path = xasprintf("%s/%s", dir, name);
	assert_int_equal(mkdir(path, 0755), 0);
	if (compose) {
		char *file = xasprintf("%s/%s", path, compose);
		assert_int_equal(sb_write_file_atomic(file, "services: {}\n", 13, 0644), 0);
		free(file);
	}
	free(path);
}

static void write_dirlist(struct fixture *f, const char *text)
{
	char *dir = xasprintf("%s/state", f->dir);
	assert_int_equal(sb_mkdir_p(dir, 0700), 0);
	free(dir);
	assert_int_equal(sb_write_file_atomic(f->cfg.dirlist, text, strlen(text), 0600), 0);
}

static char *read_dirlist(struct fixture *f)
{
	char *text;
	assert_int_equal(sb_read_file(f->cfg.dirlist, 1 << 20, &text, NULL), 0);
	return text;
}

static bool diags_have(const struct sb_diags *d, int line, const char *needle)
{
	for (size_t i = 0; i < d->n; i++)
		if (d->v[i].severity == SB_DIAG_ERROR && d->v[i].line == line &&
		    strstr(d->v[i].message, needle))
			return true;
	return false;
}

static bool skipped_has(const struct sb_selection *sel, const char *needle)
{
	for (size_t i = 0; i < sel->skipped.n; i++)
		if (strstr(sel->skipped.v[i], needle))
			return true;
	return false;
}

static void load_ok(struct fixture *f, struct sb_selection *sel)
{
	struct sb_diags diags = {0};
	int rc = sb_selection_load(&f->cfg, sel, &diags);
	if (rc != 0)
		sb_diags_print(&diags, stderr);
	assert_int_equal(rc, 0);
	sb_diags_free(&diags);
}

static int update(struct fixture *f, const char *key, bool enabled, char **err)
{
	struct sb_selection_change ch = {.key = key, .enabled = enabled};
	return sb_selection_update(&f->cfg, &ch, 1, false, false, false, err);
}

/* ---- the name rule ---- */

static void test_name_rule(void **state)
{
	(void)state;
	static const char *const good[] = {"web", "a", "0", "_x", "A.b_c-1", "Stackback", "x..y", "a-"};
	for (size_t i = 0; i < SB_ARRAY_SIZE(good); i++)
		assert_true(sb_stack_name_valid(good[i]));
	static const char *const bad[] = {
		"", ".", "..", ".hidden", "-x", "a/b", "../etc", "/abs", "a\nb", "a b", "a,b",
		"a\tb", "caf\xc3\xa9", "a=b", "a#b", "a\\b", "stackback", "a\rb", "$x", "a*",
	};
	for (size_t i = 0; i < SB_ARRAY_SIZE(bad); i++)
		assert_false(sb_stack_name_valid(bad[i]));
	assert_false(sb_stack_name_valid(NULL));

	char name[4097];
	memset(name, 'a', sizeof(name) - 1);
	name[128] = '\0';
	assert_true(sb_stack_name_valid(name));
	name[128] = 'a';
	name[129] = '\0';
	assert_false(sb_stack_name_valid(name));
	name[129] = 'a';
	name[4096] = '\0';
	assert_false(sb_stack_name_valid(name));
}

static void test_project_name(void **state)
{
	(void)state;
	static const char *const cases[][2] = {
		{"Web", "web"}, {"my.app", "myapp"}, {"A_b-C.9", "a_b-c9"}, {"web", "web"},
	};
	for (size_t i = 0; i < SB_ARRAY_SIZE(cases); i++) {
		char *p = sb_compose_project_name(cases[i][0]);
		assert_string_equal(p, cases[i][1]);
		free(p);
	}
}

/* ---- the parser ---- */

static void test_parse_round_trip(void **state)
{
	(void)state;
	static const char text[] = "# my stacks\n"
				   "\n"
				   "web=true\n"
				   "  db = FALSE   # keep off for now\n"
				   "\t# indented comment\n"
				   "/srv/ext/app=True\n"
				   "cloud=false\r\n"
				   "\n";
	struct sb_dirlist dl;
	struct sb_diags diags = {0};
	assert_int_equal(sb_dirlist_parse(text, strlen(text), "dirlist", &dl, &diags), 0);
	assert_int_equal(diags.n, 0);
	assert_int_equal(dl.n, 4);
	assert_string_equal(dl.entries[0].key, "web");
	assert_true(dl.entries[0].enabled);
	assert_int_equal(dl.entries[0].line, 3);
	assert_string_equal(dl.entries[1].key, "db");
	assert_false(dl.entries[1].enabled);
	assert_string_equal(dl.entries[2].key, "/srv/ext/app");
	assert_true(dl.entries[2].enabled);
	assert_string_equal(dl.entries[3].key, "cloud");
	assert_false(dl.entries[3].enabled);
	assert_int_equal(dl.lines.n, 8);
	char *out = sb_dirlist_format(&dl);
	assert_string_equal(out, text);
	free(out);
	sb_dirlist_free(&dl);

	/* No final newline: the lines are kept, a newline is added. */
	assert_int_equal(sb_dirlist_parse("a=true", 6, "dirlist", &dl, &diags), 0);
	out = sb_dirlist_format(&dl);
	assert_string_equal(out, "a=true\n");
	free(out);
	sb_dirlist_free(&dl);

	assert_int_equal(sb_dirlist_parse("", 0, "dirlist", &dl, &diags), 0);
	assert_int_equal(dl.n, 0);
	out = sb_dirlist_format(&dl);
	assert_string_equal(out, "");
	free(out);
	sb_dirlist_free(&dl);
	sb_diags_free(&diags);
}

static void test_parse_garbage(void **state)
{
	(void)state;
	char *long_name = xmalloc(4097 + 6);
	memset(long_name, 'a', 4096);
	strcpy(long_name + 4096, "=true");
	const struct {
		const char *text;
		size_t len; /* 0: strlen */
		int line;
		const char *needle;
	} cases[] = {
		{"web\n", 0, 1, "expected NAME=true|false"},
		{"# ok\n=true\n", 0, 2, "missing stack name"},
		{"web=maybe\n", 0, 1, "invalid value 'maybe'"},
		{"web=yes\n", 0, 1, "invalid value 'yes'"},
		{"web=\n", 0, 1, "invalid value ''"},
		{"web=true false\n", 0, 1, "unexpected text"},
		{"web=true# no space\n", 0, 1, "unexpected text"},
		{"../etc=true\n", 0, 1, "starts with '.'"},
		{"..=true\n", 0, 1, "starts with '.'"},
		{"a/b=true\n", 0, 1, "may only hold"},
		{"-rf=true\n", 0, 1, "starts with '.' or '-'"},
		{"a b=true\n", 0, 1, "may only hold"},
		{"stackback=false\n", 0, 1, "reserved"},
		{"/srv/../etc=true\n", 0, 1, "not canonical"},
		{"/srv//x=true\n", 0, 1, "not canonical"},
		{"/srv/x/=true\n", 0, 1, "not canonical"},
		{"/srv/.x=true\n", 0, 1, "starts with '.'"},
		{"/srv/a\x1b[31m=true\n", 0, 1, "control character"},
		{"/=true\n", 0, 1, "not canonical"},
		{"web=true\nweb=false\n", 0, 2, "duplicate entry for stack 'web' (first on line 1)"},
		{"ok=true\nx\0y=true\n", 16, 2, "NUL byte"},
		{long_name, 0, 1, "longer than 128"},
	};
	for (size_t i = 0; i < SB_ARRAY_SIZE(cases); i++) {
		struct sb_dirlist dl;
		struct sb_diags diags = {0};
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
		assert_int_equal(sb_dirlist_parse(cases[i].text, len, "/etc/dl", &dl, &diags), -1);
		if (!diags_have(&diags, cases[i].line, cases[i].needle)) {
			sb_diags_print(&diags, stderr);
			fail_msg("case %zu: no error '%s' on line %d", i, cases[i].needle, cases[i].line);
		}
		assert_string_equal(diags.v[0].file, "/etc/dl");
		sb_dirlist_free(&dl);
		sb_diags_free(&diags);
	}
	free(long_name);

	/* Every problem is reported, not only the first. */
	struct sb_dirlist dl;
	struct sb_diags diags = {0};
	static const char many[] = "a=1\nb=true\nc\n../d=true\n";
	assert_int_equal(sb_dirlist_parse(many, strlen(many), "dl", &dl, &diags), -1);
	assert_int_equal(sb_diags_count(&diags, SB_DIAG_ERROR), 3);
	assert_true(diags_have(&diags, 1, "invalid value '1'"));
	assert_true(diags_have(&diags, 3, "expected"));
	assert_true(diags_have(&diags, 4, "starts with"));
	sb_dirlist_free(&dl);
	sb_diags_free(&diags);
}

/* The test data directory, found from the test binary (build/tests/). */
static char *data_path(const char *rel)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	assert_true(n > 0);
	exe[n] = '\0';
	/* __FILE__ is relative to the build root, e.g. ../tests/unit/x.c */
	char *src = xstrdup(__FILE__);
	char *unit_dir = dirname(src);
	char *path = __FILE__[0] == '/' ? xasprintf("%s/../data/%s", unit_dir, rel)
					: xasprintf("%s/../%s/../data/%s", dirname(exe), unit_dir, rel);
	free(src);
	return path;
}

static void test_fixture_dirlist(void **state)
{
	struct fixture *f = *state;
	char *path = data_path("docker-compose-backup/dirlist");
	char *text;
	size_t len;
	assert_int_equal(sb_read_file(path, 1 << 20, &text, &len), 0);
	struct sb_dirlist dl;
	struct sb_diags diags = {0};
	assert_int_equal(sb_dirlist_parse(text, len, path, &dl, &diags), 0);
	assert_int_equal(dl.n, 1);
	assert_string_equal(dl.entries[0].key, "test-stack");
	assert_false(dl.entries[0].enabled);
	char *out = sb_dirlist_format(&dl);
	assert_string_equal(out, text);
	free(out);
	sb_dirlist_free(&dl);

	/* Loaded as the selection of a stacks dir holding that stack. */
	write_dirlist(f, text);
	make_stack_in(f->stacks, "test-stack", "docker-compose.yml");
	struct sb_selection sel;
	load_ok(f, &sel);
	assert_int_equal(sel.n, 1);
	assert_string_equal(sel.stacks[0].name, "test-stack");
	assert_int_equal(sel.stacks[0].origin, SB_STACK_LISTED);
	assert_false(sel.stacks[0].enabled);
	sb_selection_free(&sel);

	/* Enabling rewrites only the value; the comments stay. */
	char *err = NULL;
	assert_int_equal(update(f, "test-stack", true, &err), 0);
	char *after = read_dirlist(f);
	char *expect = xstrdup(text);
	char *v = strstr(expect, "test-stack=false");
	strcpy(v, "test-stack=true\n");
	assert_string_equal(after, expect);
	free(expect);
	free(after);
	free(text);
	free(path);
}

/* ---- discovery ---- */

static void test_discovery(void **state)
{
	struct fixture *f = *state;
	make_stack_in(f->stacks, "web", "compose.yaml");
	make_stack_in(f->stacks, "db", "docker-compose.yml");
	make_stack_in(f->stacks, "a.b_c-1", "compose.yml");
	make_stack_in(f->stacks, "x", "docker-compose.yaml");
	make_stack_in(f->stacks, ".hidden", "compose.yaml");
	make_stack_in(f->stacks, "plain", NULL);
	make_stack_in(f->stacks, "bad name", "compose.yaml");
	make_stack_in(f->stacks, "-dash", "compose.yaml");
	make_stack_in(f->stacks, "new\nline", "compose.yaml");
	make_stack_in(f->stacks, "stackback", "compose.yaml");
	char long_name[130];
	memset(long_name, 'l', 129);
	long_name[129] = '\0';
	make_stack_in(f->stacks, long_name, "compose.yaml");
	long_name[128] = '\0';
	make_stack_in(f->stacks, long_name, "compose.yaml");

	/* A compose "file" that is a FIFO does not count (and must not block). */
	make_stack_in(f->stacks, "fifo", NULL);
	char *fifo = xasprintf("%s/fifo/compose.yaml", f->stacks);
	assert_int_equal(mkfifo(fifo, 0644), 0);
	free(fifo);
	/* A directory named like a compose file does not count either. */
	make_stack_in(f->stacks, "dirfile", NULL);
	char *dirfile = xasprintf("%s/dirfile/compose.yaml", f->stacks);
	assert_int_equal(mkdir(dirfile, 0755), 0);
	free(dirfile);

	/* Symlinks: out of the stacks dir skipped, inside accepted. */
	make_stack_in(f->outside, "evil", "compose.yaml");
	char *link = xasprintf("%s/escape", f->stacks);
	char *target = xasprintf("%s/evil", f->outside);
	assert_int_equal(symlink(target, link), 0);
	free(link);
	free(target);
	link = xasprintf("%s/alias", f->stacks);
	assert_int_equal(symlink("web", link), 0);
	free(link);
	link = xasprintf("%s/dangling", f->stacks);
	assert_int_equal(symlink("nowhere", link), 0);
	free(link);
	/* A plain file is not a stack and not worth a report. */
	char *readme = xasprintf("%s/README", f->stacks);
	assert_int_equal(sb_write_file_atomic(readme, "hi\n", 3, 0644), 0);
	free(readme);

	write_dirlist(f, "# mine\nx=true\nweb=false\ngone=true\nescape=true\n");
	struct sb_selection sel;
	load_ok(f, &sel);

	static const struct {
		const char *name;
		enum sb_stack_origin origin;
		bool enabled;
		const char *compose;
	} want[] = {
		{"x", SB_STACK_LISTED, true, "docker-compose.yaml"},
		{"web", SB_STACK_LISTED, false, "compose.yaml"},
		{"gone", SB_STACK_MISSING, true, NULL},
		{"escape", SB_STACK_MISSING, true, NULL},
		{"a.b_c-1", SB_STACK_NEW, false, "compose.yml"},
		{"alias", SB_STACK_NEW, false, "compose.yaml"},
		{"db", SB_STACK_NEW, false, "docker-compose.yml"},
	};
	assert_int_equal(sel.n, SB_ARRAY_SIZE(want) + 1);
	for (size_t i = 0; i < SB_ARRAY_SIZE(want); i++) {
		const struct sb_stack *st = &sel.stacks[i];
		assert_string_equal(st->name, want[i].name);
		assert_int_equal(st->origin, want[i].origin);
		assert_int_equal(st->enabled, want[i].enabled);
		assert_false(st->external);
		assert_null(st->conflict);
		char *path = xasprintf("%s/%s", f->stacks, want[i].name);
		assert_string_equal(st->path, path);
		if (want[i].compose) {
			char *cf = xasprintf("%s/%s", path, want[i].compose);
			assert_string_equal(st->compose_file, cf);
			free(cf);
		} else {
			assert_null(st->compose_file);
		}
		free(path);
	}
	/* The 128-character name is a stack (sorted last: 'l' > 'd'). */
	assert_string_equal(sel.stacks[7].name, long_name);
	assert_int_equal(sel.stacks[7].origin, SB_STACK_NEW);

	assert_true(skipped_has(&sel, "/plain: no compose file"));
	assert_true(skipped_has(&sel, "/fifo: no compose file"));
	assert_true(skipped_has(&sel, "/dirfile: no compose file"));
	assert_true(skipped_has(&sel, "/bad name: stack name may only hold"));
	assert_true(skipped_has(&sel, "/-dash: stack name starts with"));
	assert_true(skipped_has(&sel, "/new\\x0aline: stack name may only hold"));
	assert_true(skipped_has(&sel, "/stackback: stack name 'stackback' is reserved"));
	assert_true(skipped_has(&sel, "longer than 128"));
	assert_true(skipped_has(&sel, "/escape: symlink to"));
	assert_true(skipped_has(&sel, "outside DOCKER_STACKS_DIR"));
	assert_true(skipped_has(&sel, "/dangling: broken symlink"));
	assert_false(skipped_has(&sel, "hidden"));
	assert_false(skipped_has(&sel, "README"));
	assert_int_equal(sel.skipped.n, 10);

	assert_ptr_equal(sb_selection_find(&sel, "db"), &sel.stacks[6]);
	assert_null(sb_selection_find(&sel, "nope"));
	assert_null(sb_selection_find(&sel, "evil"));
	sb_selection_free(&sel);

	/* A missing dirlist is an empty one; a missing stacks dir is an error. */
	assert_int_equal(unlink(f->cfg.dirlist), 0);
	load_ok(f, &sel);
	assert_int_equal(sel.n, 6);
	assert_int_equal(sel.stacks[0].origin, SB_STACK_NEW);
	sb_selection_free(&sel);
	free(f->cfg.stacks_dir);
	f->cfg.stacks_dir = xasprintf("%s/nonexistent", f->dir);
	struct sb_diags diags = {0};
	assert_int_equal(sb_selection_load(&f->cfg, &sel, &diags), -1);
	assert_true(diags_have(&diags, 0, "cannot open the stacks directory"));
	sb_diags_free(&diags);
}

static void test_external(void **state)
{
	struct fixture *f = *state;
	make_stack_in(f->stacks, "web", "compose.yaml");
	make_stack_in(f->outside, "app", "docker-compose.yml");
	make_stack_in(f->outside, "empty", NULL);
	char *text = xasprintf("web=true\n%s/app=true\n%s/empty=false\n%s/gone=true\n%s/web=false\n",
			       f->outside, f->outside, f->outside, f->stacks);
	write_dirlist(f, text);
	free(text);
	/* The same stack by name and by its path inside the stacks dir: one name twice. */
	struct sb_selection sel;
	load_ok(f, &sel);
	assert_int_equal(sel.n, 5);
	assert_true(sel.stacks[1].external);
	assert_string_equal(sel.stacks[1].name, "app");
	assert_int_equal(sel.stacks[1].origin, SB_STACK_LISTED);
	assert_non_null(strstr(sel.stacks[1].compose_file, "/outside/app/docker-compose.yml"));
	assert_true(sel.stacks[2].external);
	assert_int_equal(sel.stacks[2].origin, SB_STACK_MISSING);
	assert_int_equal(sel.stacks[3].origin, SB_STACK_MISSING);
	assert_false(sel.stacks[4].external);
	assert_string_equal(sel.stacks[4].name, "web");
	assert_non_null(sel.stacks[0].conflict);
	assert_non_null(sel.stacks[4].conflict);
	assert_null(sel.stacks[1].conflict);
	char *key = xasprintf("%s/app", f->outside);
	assert_ptr_equal(sb_selection_find(&sel, key), &sel.stacks[1]);
	assert_ptr_equal(sb_selection_find(&sel, "app"), &sel.stacks[1]);
	free(key);
	sb_selection_free(&sel);
}

static void test_conflicts(void **state)
{
	struct fixture *f = *state;
	make_stack_in(f->stacks, "Web", "compose.yaml");
	make_stack_in(f->stacks, "web", "compose.yaml");
	make_stack_in(f->stacks, "my.app", "compose.yaml");
	make_stack_in(f->stacks, "myapp", "compose.yaml");
	make_stack_in(f->stacks, "solo", "compose.yaml");
	make_stack_in(f->outside, "solo", "compose.yaml");
	char *text = xasprintf("%s/solo=true\n", f->outside);
	write_dirlist(f, text);
	free(text);
	struct sb_selection sel;
	load_ok(f, &sel);
	assert_int_equal(sel.n, 6);
	for (size_t i = 0; i < sel.n; i++)
		assert_non_null(sel.stacks[i].conflict);
	const struct sb_stack *a = sb_selection_find(&sel, "Web");
	const struct sb_stack *b = sb_selection_find(&sel, "web");
	assert_non_null(strstr(a->conflict, "'Web'"));
	assert_non_null(strstr(a->conflict, "'web'"));
	assert_non_null(strstr(a->conflict, "compose project name 'web'"));
	assert_string_equal(a->conflict, b->conflict);
	const struct sb_stack *c = sb_selection_find(&sel, "my.app");
	assert_non_null(strstr(c->conflict, "'myapp'"));
	assert_non_null(strstr(sel.stacks[0].conflict, "same name"));
	sb_selection_free(&sel);

	/* A clashing name cannot be changed by name: it is ambiguous. */
	char *err = NULL;
	assert_int_equal(update(f, "solo", true, &err), -1);
	assert_non_null(strstr(err, "ambiguous"));
	free(err);
	/* Adding an external stack that would clash is refused. */
	make_stack_in(f->outside, "WEB", "compose.yaml");
	char *ext = xasprintf("%s/WEB", f->outside);
	assert_int_equal(update(f, ext, true, &err), -1);
	assert_non_null(strstr(err, "clashes with stack"));
	free(err);
	free(ext);
}

/* Among many stacks only the clashing ones are marked, each message once, in selection order. */
static void test_conflicts_among_many(void **state)
{
	struct fixture *f = *state;
	for (int i = 0; i < 1500; i++) {
		char name[16];
		snprintf(name, sizeof(name), "s%04d", i);
		make_stack_in(f->stacks, name, "compose.yaml");
	}
	make_stack_in(f->stacks, "S0007", "compose.yaml");
	make_stack_in(f->outside, "s0007", "compose.yaml");
	char *text = xasprintf("%s/s0007=true\n", f->outside);
	write_dirlist(f, text);
	free(text);
	struct sb_selection sel;
	load_ok(f, &sel);
	assert_int_equal(sel.n, 1502);
	size_t marked = 0;
	for (size_t i = 0; i < sel.n; i++)
		marked += sel.stacks[i].conflict != NULL;
	assert_int_equal(marked, 3);
	/* The internal s0007 clashes with the external one by name, with S0007 by project. */
	const struct sb_stack *internal = NULL;
	for (size_t i = 0; i < sel.n; i++)
		if (!sel.stacks[i].external && strcmp(sel.stacks[i].name, "s0007") == 0)
			internal = &sel.stacks[i];
	assert_non_null(internal);
	char *want = xasprintf("stacks 's0007' (%s/s0007) and 's0007' (%s/s0007) have the same name; "
			       "stacks 'S0007' (%s/S0007) and 's0007' (%s/s0007) have the same compose project name 's0007'",
			       f->outside, f->stacks, f->stacks, f->stacks);
	assert_string_equal(internal->conflict, want);
	free(want);
	sb_selection_free(&sel);
}

/* ---- updates ---- */

static void test_update(void **state)
{
	struct fixture *f = *state;
	make_stack_in(f->stacks, "web", "compose.yaml");
	make_stack_in(f->stacks, "db", "compose.yaml");
	make_stack_in(f->stacks, "cache", "compose.yaml");
	make_stack_in(f->stacks, "newer", "compose.yaml");
	make_stack_in(f->outside, "ext", "compose.yaml");
	make_stack_in(f->outside, "nocompose", NULL);
	static const char orig[] = "# header comment\n"
				   "\n"
				   "web = true   # the site\n"
				   "db=False\n"
				   "gone=true\n"
				   "# trailing\n";
	write_dirlist(f, orig);
	assert_int_equal(chmod(f->cfg.dirlist, 0640), 0);
	struct stat before;
	assert_int_equal(stat(f->cfg.dirlist, &before), 0);
	char *err = NULL;

	/* Unknown and hostile keys: -1 naming them all, nothing written. */
	const struct sb_selection_change bad[] = {
		{"web", false}, {"nope", true}, {"../etc", true}, {"a/b", true}, {"a\nb", true},
		{"/no/such/dir", true},
	};
	assert_int_equal(sb_selection_update(&f->cfg, bad, SB_ARRAY_SIZE(bad), true, true, false, &err),
			 -1);
	assert_non_null(strstr(err, "no such stack 'nope'"));
	assert_non_null(strstr(err, "'../etc'"));
	assert_non_null(strstr(err, "'a/b'"));
	assert_non_null(strstr(err, "'a\\x0ab'"));
	assert_non_null(strstr(err, "'/no/such/dir' holds no compose file"));
	free(err);
	char *text = read_dirlist(f);
	assert_string_equal(text, orig);
	free(text);
	struct stat st;
	assert_int_equal(stat(f->cfg.dirlist, &st), 0);
	assert_int_equal(st.st_ino, before.st_ino);

	/* Dry run: success, nothing written. */
	const struct sb_selection_change some[] = {{"web", false}, {"cache", true}};
	assert_int_equal(sb_selection_update(&f->cfg, some, 2, true, true, true, &err), 0);
	assert_null(err);
	text = read_dirlist(f);
	assert_string_equal(text, orig);
	free(text);

	/* Only the requested values change; spacing and comments stay. */
	assert_int_equal(sb_selection_update(&f->cfg, some, 2, false, false, false, &err), 0);
	text = read_dirlist(f);
	assert_string_equal(text, "# header comment\n"
				  "\n"
				  "web = false   # the site\n"
				  "db=False\n"
				  "gone=true\n"
				  "# trailing\n"
				  "cache=true\n");
	free(text);
	assert_int_equal(stat(f->cfg.dirlist, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);

	/* Setting a value it already has leaves the line (and its spelling) alone. */
	assert_int_equal(update(f, "db", false, &err), 0);
	struct stat st2;
	assert_int_equal(stat(f->cfg.dirlist, &st2), 0);
	assert_int_equal(st2.st_ino, st.st_ino);

	/* discover: new stacks appended disabled, sorted; prune drops only missing lines. */
	assert_int_equal(sb_selection_update(&f->cfg, NULL, 0, true, true, false, &err), 0);
	text = read_dirlist(f);
	assert_string_equal(text, "# header comment\n"
				  "\n"
				  "web = false   # the site\n"
				  "db=False\n"
				  "# trailing\n"
				  "cache=true\n"
				  "newer=false\n");
	free(text);

	/* External stacks by path; a path inside the stacks dir means the name. */
	char *ext = xasprintf("%s/ext/", f->outside);
	assert_int_equal(update(f, ext, true, &err), 0);
	char *inside = xasprintf("%s/newer", f->stacks);
	assert_int_equal(update(f, inside, true, &err), 0);
	char *nocompose = xasprintf("%s/nocompose", f->outside);
	assert_int_equal(update(f, nocompose, true, &err), -1);
	assert_non_null(strstr(err, "holds no compose file"));
	free(err);
	text = read_dirlist(f);
	char *want = xasprintf("# header comment\n"
			       "\n"
			       "web = false   # the site\n"
			       "db=False\n"
			       "# trailing\n"
			       "cache=true\n"
			       "newer=true\n"
			       "%s/ext=true\n",
			       f->outside);
	assert_string_equal(text, want);
	free(want);
	free(text);
	free(ext);
	free(inside);
	free(nocompose);

	/* Enabling a new stack and discovering in one call writes one line for it. */
	make_stack_in(f->stacks, "fresh", "compose.yaml");
	make_stack_in(f->stacks, "zeta", "compose.yaml");
	const struct sb_selection_change fresh = {"fresh", true};
	assert_int_equal(sb_selection_update(&f->cfg, &fresh, 1, true, false, false, &err), 0);
	text = read_dirlist(f);
	assert_non_null(strstr(text, "/ext=true\nfresh=true\nzeta=false\n"));
	free(text);
}

static void test_update_creates_and_refuses_garbage(void **state)
{
	struct fixture *f = *state;
	make_stack_in(f->stacks, "web", "compose.yaml");
	/* No state dir yet: it is created, the new file is 0600. */
	char *err = NULL;
	assert_int_equal(update(f, "web", true, &err), 0);
	struct stat st;
	assert_int_equal(stat(f->cfg.dirlist, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	char *text = read_dirlist(f);
	assert_string_equal(text, "web=true\n");
	free(text);
	char *lock = xasprintf("%s.lock", f->cfg.dirlist);
	assert_int_equal(access(lock, F_OK), 0);
	free(lock);

	/* A garbage dirlist: the error names FILE:LINE and the file stays as it is. */
	static const char garbage[] = "web=true\n# fine\nrm -rf /\n";
	write_dirlist(f, garbage);
	assert_int_equal(update(f, "web", false, &err), -1);
	char *where = xasprintf("%s:3: ", f->cfg.dirlist);
	assert_true(sb_str_has_prefix(err, where));
	free(where);
	free(err);
	text = read_dirlist(f);
	assert_string_equal(text, garbage);
	free(text);
	struct sb_selection sel;
	struct sb_diags diags = {0};
	assert_int_equal(sb_selection_load(&f->cfg, &sel, &diags), -1);
	assert_true(diags_have(&diags, 3, "expected NAME=true|false"));
	sb_diags_free(&diags);

	/* A symlinked dirlist stays a symlink; its target is rewritten. */
	char *real = xasprintf("%s/real-dirlist", f->outside);
	assert_int_equal(sb_write_file_atomic(real, "web=false\n", 10, 0600), 0);
	assert_int_equal(unlink(f->cfg.dirlist), 0);
	assert_int_equal(symlink(real, f->cfg.dirlist), 0);
	assert_int_equal(update(f, "web", true, &err), 0);
	assert_int_equal(lstat(f->cfg.dirlist, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	assert_int_equal(sb_read_file(real, 100, &text, NULL), 0);
	assert_string_equal(text, "web=true\n");
	free(text);
	free(real);
}

/*
 * Concurrent writers: each process toggles its own stacks many times;
 * the file must stay well-formed with every line present and the last
 * value each writer set.
 */
#define WRITERS 6
#define STACKS_PER_WRITER 4
#define ROUNDS 30

static void test_concurrent_writers(void **state)
{
	struct fixture *f = *state;
	struct sb_buf b = {0};
	sb_buf_puts(&b, "# shared by every front end\n");
	for (int w = 0; w < WRITERS; w++) {
		sb_buf_printf(&b, "# writer %d\n", w);
		for (int s = 0; s < STACKS_PER_WRITER; s++) {
			char *name = xasprintf("w%d-s%d", w, s);
			make_stack_in(f->stacks, name, "compose.yaml");
			sb_buf_printf(&b, "%s = false  # stack %d\n", name, s);
			free(name);
		}
	}
	char *orig = sb_buf_steal(&b);
	write_dirlist(f, orig);

	pid_t pids[WRITERS];
	for (int w = 0; w < WRITERS; w++) {
		pids[w] = fork();
		assert_true(pids[w] >= 0);
		if (pids[w] != 0)
			continue;
		free(orig);
		int bad = 0;
		for (int r = 0; r < ROUNDS; r++) {
			char *name = xasprintf("w%d-s%d", w, r % STACKS_PER_WRITER);
			/* The last round of each stack sets it true when its index is odd. */
			bool v = (r / STACKS_PER_WRITER) % 2 == 0;
			if (r + STACKS_PER_WRITER >= ROUNDS)
				v = (r % STACKS_PER_WRITER) % 2 == 1;
			char *err = NULL;
			if (update(f, name, v, &err) != 0) {
				fprintf(stderr, "writer %d: %s\n", w, err);
				bad = 1;
			}
			free(err);
			free(name);
		}
		_exit(bad);
	}
	for (int w = 0; w < WRITERS; w++) {
		int status;
		assert_int_equal(waitpid(pids[w], &status, 0), pids[w]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}

	char *text = read_dirlist(f);
	struct sb_dirlist dl;
	struct sb_diags diags = {0};
	assert_int_equal(sb_dirlist_parse(text, strlen(text), "dirlist", &dl, &diags), 0);
	assert_int_equal(dl.n, WRITERS * STACKS_PER_WRITER);
	assert_int_equal(dl.lines.n, 1 + WRITERS * (1 + STACKS_PER_WRITER));
	for (int w = 0; w < WRITERS; w++) {
		char *comment = xasprintf("# writer %d\n", w);
		assert_non_null(strstr(text, comment));
		free(comment);
		for (int s = 0; s < STACKS_PER_WRITER; s++) {
			char *line = xasprintf("w%d-s%d = %s  # stack %d\n", w, s,
					       s % 2 == 1 ? "true" : "false", s);
			if (!strstr(text, line))
				fail_msg("line '%s' not in:\n%s", line, text);
			free(line);
		}
	}
	sb_dirlist_free(&dl);
	free(text);
	free(orig);

	/* No temp file is left behind. */
	char *dir = xasprintf("%s/state", f->dir);
	struct sb_strv names = {0};
	DIR *d = opendir(dir);
	assert_non_null(d);
	struct dirent *de;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			sb_strv_push(&names, de->d_name);
	closedir(d);
	assert_int_equal(names.n, 2); /* dirlist and dirlist.lock */
	sb_strv_free(&names);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_rule),
		cmocka_unit_test(test_project_name),
		cmocka_unit_test(test_parse_round_trip),
		cmocka_unit_test(test_parse_garbage),
		cmocka_unit_test_setup_teardown(test_fixture_dirlist, setup, teardown),
		cmocka_unit_test_setup_teardown(test_discovery, setup, teardown),
		cmocka_unit_test_setup_teardown(test_external, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conflicts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conflicts_among_many, setup, teardown),
		cmocka_unit_test_setup_teardown(test_update, setup, teardown),
		cmocka_unit_test_setup_teardown(test_update_creates_and_refuses_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_writers, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
