/*
 * The metrics module: the exposition is parsed back line by line
 * against the Prometheus text format (0.0.4) grammar by a checker that
 * is itself tested on good and bad input first; then the samples are
 * checked against the STATE_DIR files they come from, garbage state
 * files included, and the bookkeeping after jobs is run against a real
 * restic repository.
 */
#include <ctype.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "stackback/config.h"
#include "stackback/metrics.h"
#include "stackback/restic.h"
#include "stackback/state.h"
#include "stackback/status.h"
#include "stackback/util.h"

/* ---- the checker: the text format's grammar, strictly ---- */

struct series_seen {
	struct sb_strv typed;     /* names with a # TYPE line */
	struct sb_strv closed;    /* names whose sample group has ended */
	struct sb_strv series;    /* "name{labels}" already seen */
	char *current;            /* the name of the group being read */
};

static bool name_start(int c)
{
	return isalpha(c) || c == '_' || c == ':';
}

static bool name_char(int c)
{
	return isalnum(c) || c == '_' || c == ':';
}

/* Reads a metric name at *p; returns it (caller frees) or NULL. */
static char *read_name(const char **p)
{
	const char *s = *p;
	if (!name_start((unsigned char)*s))
		return NULL;
	while (name_char((unsigned char)*s))
		s++;
	char *n = xstrndup(*p, (size_t)(s - *p));
	*p = s;
	return n;
}

static bool valid_value(const char *s, const char *end)
{
	size_t len = (size_t)(end - s);
	if (len == 0)
		return false;
	if ((len == 3 && strncmp(s, "NaN", 3) == 0) || (len == 4 && strncmp(s, "+Inf", 4) == 0) ||
	    (len == 4 && strncmp(s, "-Inf", 4) == 0))
		return true;
	char *copy = xstrndup(s, len);
	/* strtod also takes "inf", "nan" and hex: the format's floats are decimal only. */
	bool ok = strspn(copy, "0123456789.eE+-") == len;
	char *stop;
	errno = 0;
	strtod(copy, &stop);
	ok = ok && *stop == '\0' && errno == 0;
	free(copy);
	return ok;
}

/* Label set "{a="x",b="y"}" at *p (on '{'); appends its canonical text to b. */
static bool read_labels(const char **p, struct sb_buf *b, char **why)
{
	const char *s = *p + 1;
	sb_buf_puts(b, "{");
	struct sb_strv names = {0};
	bool ok = false;
	for (;;) {
		if (*s == '}') {
			s++;
			break;
		}
		const char *ls = s;
		if (!(isalpha((unsigned char)*s) || *s == '_')) {
			*why = xasprintf("bad label name at '%.20s'", s);
			goto out;
		}
		while (isalnum((unsigned char)*s) || *s == '_')
			s++;
		char *lname = xstrndup(ls, (size_t)(s - ls));
		if (sb_strv_contains(&names, lname)) {
			*why = xasprintf("label '%s' twice", lname);
			free(lname);
			goto out;
		}
		sb_strv_push_owned(&names, lname);
		if (s[0] != '=' || s[1] != '"') {
			*why = xasprintf("label without =\"value\" at '%.20s'", s);
			goto out;
		}
		s += 2;
		sb_buf_printf(b, "%s=\"", names.v[names.n - 1]);
		for (;;) {
			if (*s == '\0' || *s == '\n') {
				*why = xstrdup("unterminated label value");
				goto out;
			}
			if (*s == '"')
				break;
			if (*s == '\\') {
				if (s[1] != '\\' && s[1] != '"' && s[1] != 'n') {
					*why = xasprintf("bad escape '\\%c' in a label value", s[1] ? s[1] : '0');
					goto out;
				}
				sb_buf_append(b, s, 2);
				s += 2;
				continue;
			}
			sb_buf_append(b, s, 1);
			s++;
		}
		s++;
		sb_buf_puts(b, "\",");
		if (*s == ',') {
			s++;
			continue;
		}
		if (*s != '}') {
			*why = xasprintf("expected ',' or '}' at '%.20s'", s);
			goto out;
		}
	}
	sb_buf_puts(b, "}");
	*p = s;
	ok = true;
out:
	sb_strv_free(&names);
	return ok;
}

static bool check_sample(struct series_seen *st, const char *line, char **why)
{
	const char *p = line;
	char *name = read_name(&p);
	if (!name) {
		*why = xasprintf("bad metric name in '%s'", line);
		return false;
	}
	struct sb_buf key = {0};
	sb_buf_puts(&key, name);
	bool ok = false;
	if (*p == '{' && !read_labels(&p, &key, why))
		goto out;
	if (*p != ' ') {
		*why = xasprintf("expected a space before the value in '%s'", line);
		goto out;
	}
	p++;
	const char *vend = strchrnul(p, ' ');
	if (!valid_value(p, vend)) {
		*why = xasprintf("bad value in '%s'", line);
		goto out;
	}
	if (*vend == ' ') {
		const char *ts = vend + 1;
		long v;
		if (sb_parse_long(ts, -(1L << 62), 1L << 62, &v) < 0) {
			*why = xasprintf("bad timestamp in '%s'", line);
			goto out;
		}
	}
	if (!sb_strv_contains(&st->typed, name)) {
		*why = xasprintf("sample of '%s' without a # TYPE line before it", name);
		goto out;
	}
	if (!st->current || strcmp(st->current, name) != 0) {
		if (sb_strv_contains(&st->closed, name)) {
			*why = xasprintf("samples of '%s' are not together", name);
			goto out;
		}
		if (st->current)
			sb_strv_push(&st->closed, st->current);
		free(st->current);
		st->current = xstrdup(name);
	}
	if (sb_strv_contains(&st->series, key.data)) {
		*why = xasprintf("series '%s' twice", key.data);
		goto out;
	}
	sb_strv_push(&st->series, key.data);
	ok = true;
out:
	sb_buf_free(&key);
	free(name);
	return ok;
}

static bool check_comment(struct series_seen *st, const char *line, char **why)
{
	bool help = sb_str_has_prefix(line, "# HELP ");
	bool type = sb_str_has_prefix(line, "# TYPE ");
	if (!help && !type)
		return true; /* any other comment is allowed */
	const char *p = line + 7;
	char *name = read_name(&p);
	if (!name || *p != ' ') {
		*why = xasprintf("bad name in '%s'", line);
		free(name);
		return false;
	}
	p++;
	bool ok = true;
	if (help) {
		for (const char *s = p; *s && ok; s++)
			if (*s == '\\')
				ok = s[1] == '\\' || s[1] == 'n', s++;
		if (!ok)
			*why = xasprintf("bad escape in '%s'", line);
	} else {
		static const char *const types[] = {"counter", "gauge", "histogram", "summary", "untyped"};
		ok = false;
		for (size_t i = 0; i < SB_ARRAY_SIZE(types); i++)
			ok |= strcmp(p, types[i]) == 0;
		if (!ok)
			*why = xasprintf("unknown type in '%s'", line);
		else if (sb_strv_contains(&st->typed, name) || sb_strv_contains(&st->closed, name) ||
			 (st->current && strcmp(st->current, name) == 0)) {
			*why = xasprintf("# TYPE of '%s' after its samples or twice", name);
			ok = false;
		} else {
			sb_strv_push(&st->typed, name);
		}
	}
	free(name);
	return ok;
}

/* Returns NULL if text is a valid exposition, else the first problem (caller frees). */
static char *exposition_problem(const char *text)
{
	size_t len = strlen(text);
	if (len == 0 || text[len - 1] != '\n')
		return xstrdup("the text does not end with a newline");
	struct series_seen st = {0};
	char *why = NULL;
	char *copy = xstrdup(text);
	char *save = NULL;
	for (char *line = strtok_r(copy, "\n", &save); line && !why; line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '#')
			check_comment(&st, line, &why);
		else
			check_sample(&st, line, &why);
	}
	free(copy);
	sb_strv_free(&st.typed);
	sb_strv_free(&st.closed);
	sb_strv_free(&st.series);
	free(st.current);
	return why;
}

static void test_checker_accepts(void **state)
{
	(void)state;
	static const char *const good[] = {
		"# HELP a_b Some help.\n# TYPE a_b gauge\na_b 1\n",
		"# TYPE x:y counter\nx:y{a=\"1\",b=\"q\\\"u\\\\o\\nte\"} -1.5e+10\n",
		"# TYPE m gauge\nm{a=\"x\",} 3 1700000000000\nm{a=\"y\"} NaN\nm{a=\"z\"} +Inf\n",
		"# some comment\n# TYPE _m untyped\n_m 0\n",
		"# HELP h Back\\\\slash and\\nnewline.\n# TYPE h gauge\n",
	};
	for (size_t i = 0; i < SB_ARRAY_SIZE(good); i++) {
		char *why = exposition_problem(good[i]);
		if (why)
			fail_msg("rejected good text %zu: %s", i, why);
	}
}

static void test_checker_rejects(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"# TYPE a gauge\na 1",                               /* no final newline */
		"# TYPE 1a gauge\n1a 1\n",                           /* name starts with a digit */
		"b 1\n",                                             /* no TYPE */
		"# TYPE a gauge\na{b=\"c} 1\n",                      /* unterminated label */
		"# TYPE a gauge\na{b=\"\\q\"} 1\n",                  /* bad escape */
		"# TYPE a gauge\na{1b=\"x\"} 1\n",                   /* bad label name */
		"# TYPE a gauge\na{b=\"x\",b=\"y\"} 1\n",            /* duplicate label */
		"# TYPE a gauge\na 1x\n",                            /* bad float */
		"# TYPE a gauge\na inf\n",                           /* not the format's Inf */
		"# TYPE a gauge\na 0x10\n",                          /* hex */
		"# TYPE a gauge\na\n",                               /* no value */
		"# TYPE a gauge\na  1\n",                            /* two spaces */
		"# TYPE a gauge\na 1 12.5\n",                        /* float timestamp */
		"# TYPE a gauge\n# TYPE a gauge\na 1\n",             /* TYPE twice */
		"# TYPE a gauge\na 1\n# TYPE a gauge\n",             /* TYPE after samples */
		"# TYPE a gauge\n# TYPE b gauge\na 1\nb 1\na{x=\"1\"} 1\n", /* groups interleaved */
		"# TYPE a gauge\na 1\na 2\n",                        /* series twice */
		"# TYPE a histo\na 1\n",                             /* unknown type */
		"# HELP a bad \\t escape\n",                         /* bad HELP escape */
		"# TYPE a gauge\na{b=\"x\"}1\n",                     /* no space */
	};
	for (size_t i = 0; i < SB_ARRAY_SIZE(bad); i++) {
		char *why = exposition_problem(bad[i]);
		if (!why)
			fail_msg("accepted bad text %zu: %s", i, bad[i]);
		free(why);
	}
}

/* ---- the exposition from STATE_DIR ---- */

struct fixture {
	char dir[64];
	struct sb_config cfg;
	struct sb_selection sel;
};

static void add_stack(struct sb_selection *sel, const char *name, bool enabled)
{
	sel->stacks = xrealloc(sel->stacks, (sel->n + 1) * sizeof(*sel->stacks));
	sel->stacks[sel->n++] = (struct sb_stack){
		.name = xstrdup(name),
		.path = xasprintf("/srv/%s", name),
		.dirlist_key = xstrdup(name),
		.enabled = enabled,
	};
}

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	strcpy(f->dir, "/tmp/sbmetricsXXXXXX");
	assert_non_null(mkdtemp(f->dir));
	sb_config_defaults(&f->cfg);
	free(f->cfg.state_dir);
	f->cfg.state_dir = xasprintf("%s/state", f->dir);
	free(f->cfg.restic_repository);
	f->cfg.restic_repository = xasprintf("%s/repo", f->dir);
	free(f->cfg.restic_password);
	f->cfg.restic_password = xstrdup("metrics-test-password");
	char *err = NULL;
	assert_int_equal(sb_state_prepare(&f->cfg, &err), 0);
	add_stack(&f->sel, "web", true);
	add_stack(&f->sel, "db", true);
	add_stack(&f->sel, "idle", false);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	sb_rm_rf(f->dir);
	sb_config_free(&f->cfg);
	sb_selection_free(&f->sel);
	free(f);
	return 0;
}

static void put_state(struct fixture *f, const char *rel, const char *text)
{
	char *path = xasprintf("%s/%s", f->cfg.state_dir, rel);
	assert_int_equal(sb_write_file_atomic(path, text, strlen(text), 0600), 0);
	free(path);
}

static char *render_valid(struct fixture *f)
{
	char *text = sb_metrics_text(&f->cfg, &f->sel, NULL);
	char *why = exposition_problem(text);
	if (why)
		fail_msg("invalid exposition: %s\n%s", why, text);
	return text;
}

static void assert_line(const char *text, const char *line)
{
	char *needle = xasprintf("\n%s\n", line);
	char *hay = xasprintf("\n%s", text);
	if (!strstr(hay, needle))
		fail_msg("line '%s' not in:\n%s", line, text);
	free(needle);
	free(hay);
}

static void assert_no_sample(const char *text, const char *prefix)
{
	char *needle = xasprintf("\n%s", prefix);
	char *hay = xasprintf("\n%s", text);
	if (strstr(hay, needle))
		fail_msg("unexpected '%s' in:\n%s", prefix, text);
	free(needle);
	free(hay);
}

static void test_samples_from_state(void **state)
{
	struct fixture *f = *state;
	put_state(f, "stacks/web.json",
		  "{\"stack\":\"web\",\"result\":\"ok\",\"started_at\":1700000000.5,\"duration_s\":12.5,"
		  "\"downtime_s\":3.25,\"bytes_added\":4096,\"snapshot_id\":\"abc\",\"backup_s\":9.5,"
		  "\"mode\":\"btrfs\"}");
	put_state(f, "stacks/db.json",
		  "{\"stack\":\"db\",\"result\":\"failed\",\"started_at\":1700000100,\"duration_s\":1,"
		  "\"downtime_s\":0,\"bytes_added\":0,\"error\":\"boom\"}");
	put_state(f, "metrics.json",
		  "{\"stacks\":{\"web\":{\"last_success\":1700000013,\"snapshots\":3},"
		  "\"db\":{\"last_success\":1690000000,\"snapshots\":1},\"gone\":{\"snapshots\":9}},"
		  "\"snapshots_counted_at\":1700000200,\"snapshots_total\":13,"
		  "\"sync\":{\"last_success\":1699990000}}");
	put_state(f, "cloud.json",
		  "{\"status\":\"ok\",\"remote\":\"r:p\",\"last_sync\":{\"time\":1700000300,\"result\":\"ok\","
		  "\"bytes\":1048576,\"files\":7,\"duration\":30.5,\"remote\":\"r:p\"}}");
	char *text = render_valid(f);
	assert_line(text, "stackback_stack_enabled{stack=\"web\"} 1");
	assert_line(text, "stackback_stack_enabled{stack=\"idle\"} 0");
	assert_line(text, "stackback_stack_last_backup_timestamp_seconds{stack=\"web\"} 1700000013");
	assert_line(text, "stackback_stack_last_backup_success{stack=\"web\"} 1");
	assert_line(text, "stackback_stack_last_backup_success{stack=\"db\"} 0");
	assert_line(text, "stackback_stack_last_success_timestamp_seconds{stack=\"db\"} 1690000000");
	assert_line(text, "stackback_stack_last_backup_duration_seconds{stack=\"web\"} 12.5");
	assert_line(text, "stackback_stack_last_backup_downtime_seconds{stack=\"web\"} 3.25");
	assert_line(text, "stackback_stack_last_backup_bytes_added{stack=\"web\"} 4096");
	/* Snapshot mode: the stack was down 3.25 s of the 12.5, restic read for 9.5 of them. */
	assert_line(text, "stackback_stack_last_backup_restic_seconds{stack=\"web\"} 9.5");
	assert_line(text, "stackback_stack_last_backup_mode{stack=\"web\",mode=\"btrfs\"} 1");
	assert_no_sample(text, "stackback_stack_last_backup_mode{stack=\"db\"");
	assert_no_sample(text, "stackback_stack_last_backup_restic_seconds{stack=\"db\"}");
	assert_line(text, "stackback_stack_snapshots{stack=\"web\"} 3");
	/* Counted, none of them idle's; a stack no longer selected is not shown. */
	assert_line(text, "stackback_stack_snapshots{stack=\"idle\"} 0");
	assert_no_sample(text, "stackback_stack_snapshots{stack=\"gone\"}");
	assert_no_sample(text, "stackback_stack_last_backup_success{stack=\"idle\"}");
	assert_line(text, "stackback_repository_snapshots 13");
	assert_line(text, "stackback_job_running 0");
	assert_line(text, "stackback_cloud_last_sync_success 1");
	assert_line(text, "stackback_cloud_last_sync_bytes 1048576");
	assert_line(text, "stackback_cloud_last_sync_duration_seconds 30.5");
	assert_line(text, "stackback_cloud_last_sync_timestamp_seconds 1700000330.5");
	assert_line(text, "stackback_cloud_last_success_timestamp_seconds 1699990000");
	free(text);
}

static void test_nothing_known(void **state)
{
	struct fixture *f = *state;
	char *text = render_valid(f);
	/* Never backed up and never counted: unknown, not 0. */
	assert_no_sample(text, "stackback_stack_snapshots{");
	assert_no_sample(text, "stackback_stack_last_backup_success{");
	assert_no_sample(text, "stackback_cloud_last_sync_success");
	assert_line(text, "stackback_stack_enabled{stack=\"db\"} 1");
	free(text);
}

static void test_label_escaping(void **state)
{
	struct fixture *f = *state;
	/* Real stack names cannot hold these (the name rule); the renderer must still cope. */
	add_stack(&f->sel, "we\"b\\x\ny", true);
	char *text = render_valid(f);
	assert_line(text, "stackback_stack_enabled{stack=\"we\\\"b\\\\x\\ny\"} 1");
	free(text);
}

static void test_garbage_state(void **state)
{
	struct fixture *f = *state;
	static const char *const garbage[] = {
		"", "garbage", "null", "[]", "42", "{\"stacks\":5}", "{\"stacks\":{\"web\":[]}}",
		"{\"stacks\":{\"web\":{\"snapshots\":\"many\",\"last_success\":true}}}",
		"{\"sync\":\"x\",\"snapshots_total\":\"x\",\"snapshots_counted_at\":[]}",
		"{\"result\":5,\"started_at\":\"x\",\"duration_s\":null}",
		"{\"last_sync\":{\"time\":\"x\",\"result\":7,\"bytes\":-1}}", "\xff\xfe{",
	};
	for (size_t i = 0; i < SB_ARRAY_SIZE(garbage); i++) {
		put_state(f, "metrics.json", garbage[i]);
		put_state(f, "stacks/web.json", garbage[i]);
		put_state(f, "cloud.json", garbage[i]);
		char *text = render_valid(f);
		free(text);
	}
}

/* ---- bookkeeping after jobs ---- */

static struct sb_job *finished_job(int id, enum sb_job_kind kind, bool dry_run)
{
	struct sb_job_request req = {.kind = kind, .dry_run = dry_run};
	struct sb_job *job = sb_job_new(id, &req);
	job->state = SB_JOB_OK;
	job->started_at = 1700000000;
	job->finished_at = 1700000060;
	return job;
}

/* A report as the engine leaves it: the job owns the strings. */
static void add_report(struct sb_job *job, const char *name, enum sb_stack_result result)
{
	job->reports = xrealloc(job->reports, (job->n_reports + 1) * sizeof(*job->reports));
	job->reports[job->n_reports++] = (struct sb_stack_report){
		.name = xstrdup(name),
		.result = result,
		.started_at = 1700000000,
		.duration_s = 20,
	};
}

static double kept_number(struct fixture *f, const char *stack, const char *key)
{
	struct json_object *m = sb_state_read_json(&f->cfg, "metrics.json");
	assert_non_null(m);
	struct json_object *o = m, *v = NULL;
	if (stack) {
		assert_true(json_object_object_get_ex(o, "stacks", &o));
		assert_true(json_object_object_get_ex(o, stack, &o));
	}
	double d = -1;
	if (json_object_object_get_ex(o, key, &v))
		d = json_object_get_double(v);
	json_object_put(m);
	return d;
}

/* Returns the new snapshot's id as restic's summary gives it (caller frees). */
static char *backup_dir(struct sb_restic *r, const char *dir, const char *stack)
{
	const char *tags[] = {"stackback", stack, NULL};
	struct sb_restic_backup_opts o = {.path = dir, .tags = tags};
	struct sb_backup_summary s = {0};
	char *err = NULL;
	if (sb_restic_backup(r, &o, &s, &err) < 0)
		fail_msg("restic backup of %s: %s", dir, err);
	char *id = xstrdup(s.snapshot_id);
	sb_backup_summary_free(&s);
	return id;
}

static void test_record_jobs(void **state)
{
	struct fixture *f = *state;
	/* A dry run and a job without an id leave no trace. */
	struct sb_job *job = finished_job(0, SB_JOB_BACKUP, false);
	sb_metrics_record_job(&f->cfg, job, NULL);
	sb_job_free(job);
	job = finished_job(3, SB_JOB_BACKUP, true);
	sb_metrics_record_job(&f->cfg, job, NULL);
	sb_job_free(job);
	assert_null(sb_state_read_json(&f->cfg, "metrics.json"));

	/* No repository yet: successes are kept, snapshots stay uncounted. */
	job = finished_job(4, SB_JOB_BACKUP, false);
	add_report(job, "web", SB_STACK_OK);
	add_report(job, "db", SB_STACK_FAILED);
	sb_metrics_record_job(&f->cfg, job, NULL);
	sb_job_free(job);
	assert_true(kept_number(f, "web", "last_success") == 1700000020);
	assert_true(kept_number(f, NULL, "snapshots_counted_at") < 0);

	/* A real repository: two snapshots of web, one of db, one untagged. */
	struct sb_restic r;
	char *err = NULL;
	assert_int_equal(sb_restic_open(&r, &f->cfg, f->cfg.restic_repository, &err), 0);
	bool created;
	if (sb_restic_init(&r, &created, &err) < 0)
		fail_msg("restic init: %s", err);
	char *src = xasprintf("%s/src", f->dir);
	assert_int_equal(sb_mkdir_p(src, 0700), 0);
	char *file = xasprintf("%s/data", src);
	assert_int_equal(sb_write_file_atomic(file, "x", 1, 0600), 0);
	for (int i = 0; i < 3; i++)
		free(backup_dir(&r, src, i < 2 ? "web" : "db"));
	sb_restic_close(&r);

	job = finished_job(6, SB_JOB_FORGET, false);
	sb_metrics_record_job(&f->cfg, job, NULL);
	sb_job_free(job);
	assert_true(kept_number(f, "web", "snapshots") == 2);
	assert_true(kept_number(f, "db", "snapshots") == 1);
	assert_true(kept_number(f, "web", "last_success") == 1700000020);
	assert_true(kept_number(f, NULL, "snapshots_total") == 3);
	char *text = render_valid(f);
	assert_line(text, "stackback_stack_snapshots{stack=\"web\"} 2");
	assert_line(text, "stackback_stack_snapshots{stack=\"db\"} 1");
	assert_line(text, "stackback_stack_snapshots{stack=\"idle\"} 0");
	assert_line(text, "stackback_stack_last_success_timestamp_seconds{stack=\"web\"} 1700000020");
	free(text);

	/*
	 * A backup that forgot nothing counts from its reports: restic is
	 * not asked (with the repository out of reach, a recount could not
	 * have moved web to 3).
	 */
	char *repo = f->cfg.restic_repository;
	f->cfg.restic_repository = (char *)"/nonexistent/repo";
	job = finished_job(10, SB_JOB_BACKUP, false);
	add_report(job, "web", SB_STACK_OK);
	job->reports[0].snapshot_id = xstrdup("0123456789abcdef");
	add_report(job, "db", SB_STACK_FAILED);
	sb_metrics_record_job(&f->cfg, job, NULL);
	sb_job_free(job);
	assert_true(kept_number(f, "web", "snapshots") == 3);
	assert_true(kept_number(f, "db", "snapshots") == 1);
	assert_true(kept_number(f, NULL, "snapshots_total") == 4);
	f->cfg.restic_repository = repo;
	/* With retention on, or a full count older than 6 hours, restic counts again. */
	f->cfg.auto_prune = true;
	job = finished_job(11, SB_JOB_BACKUP, false);
	sb_metrics_record_job(&f->cfg, job, NULL);
	sb_job_free(job);
	assert_true(kept_number(f, "web", "snapshots") == 2);
	f->cfg.auto_prune = false;
	put_state(f, "metrics.json", "{\"stacks\":{\"web\":{\"snapshots\":40}},\"snapshots_counted_at\":1000}");
	job = finished_job(12, SB_JOB_BACKUP, false);
	sb_metrics_record_job(&f->cfg, job, NULL);
	sb_job_free(job);
	assert_true(kept_number(f, "web", "snapshots") == 2);

	/*
	 * A count due when a backup starts runs beside it: whether restic
	 * lists the repository before the job's snapshot (the count starts
	 * first, as in a job) or after it (the snapshot is made first), that
	 * snapshot is counted once.
	 */
	for (int round = 0; round < 2; round++) {
		put_state(f, "metrics.json", "{\"stacks\":{\"web\":{\"snapshots\":40}},\"snapshots_counted_at\":1000}");
		job = finished_job(13 + round, SB_JOB_BACKUP, false);
		struct sb_metrics_count *early = round == 0 ? sb_metrics_count_start(&f->cfg, job) : NULL;
		assert_int_equal(sb_restic_open(&r, &f->cfg, f->cfg.restic_repository, &err), 0);
		char *id = backup_dir(&r, src, "web");
		sb_restic_close(&r);
		if (round == 1)
			early = sb_metrics_count_start(&f->cfg, job);
		assert_non_null(early);
		add_report(job, "web", SB_STACK_OK);
		job->reports[0].snapshot_id = id;
		sb_metrics_record_job(&f->cfg, job, early);
		sb_job_free(job);
		assert_true(kept_number(f, "web", "snapshots") == 3 + round);
		assert_true(kept_number(f, NULL, "snapshots_total") == 4 + round);
	}
	/* A fresh count, or retention on: nothing to start early. */
	job = finished_job(15, SB_JOB_BACKUP, false);
	assert_null(sb_metrics_count_start(&f->cfg, job));
	f->cfg.auto_prune = true;
	put_state(f, "metrics.json", "{}");
	assert_null(sb_metrics_count_start(&f->cfg, job));
	f->cfg.auto_prune = false;
	sb_job_free(job);

	/* A cancelled job does not recount: the counts stay as they were. */
	job = finished_job(7, SB_JOB_BACKUP, false);
	atomic_store(&job->cancel, true);
	put_state(f, "metrics.json", "{\"stacks\":{\"web\":{\"snapshots\":40}}}");
	sb_metrics_record_job(&f->cfg, job, NULL);
	sb_job_free(job);
	assert_true(kept_number(f, "web", "snapshots") == 40);
	free(file);
	free(src);
}

static void test_sync_success_kept(void **state)
{
	struct fixture *f = *state;
	struct sb_job *job = finished_job(8, SB_JOB_SYNC, false);
	sb_metrics_record_job(&f->cfg, job, NULL);
	sb_job_free(job);
	job = finished_job(9, SB_JOB_SYNC, false);
	job->state = SB_JOB_FAILED;
	job->finished_at = 1800000000;
	sb_metrics_record_job(&f->cfg, job, NULL);
	sb_job_free(job);
	char *text = render_valid(f);
	assert_line(text, "stackback_cloud_last_success_timestamp_seconds 1700000060");
	free(text);
}

static void test_textfile(void **state)
{
	struct fixture *f = *state;
	char *path = xasprintf("%s/node.prom", f->dir);
	char *err = NULL;
	assert_int_equal(sb_metrics_write_textfile(path, "# TYPE a gauge\na 1\n", &err), 0);
	char *back = NULL;
	assert_int_equal(sb_read_file(path, 1024, &back, NULL), 0);
	assert_string_equal(back, "# TYPE a gauge\na 1\n");
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	/* Nothing left next to it for the collector to trip over. */
	char *cmd = xasprintf("ls -A '%s' | grep -q tmp", f->dir);
	assert_int_not_equal(system(cmd), 0);
	free(cmd);
	free(back);
	free(path);
	path = xasprintf("%s/no/such/dir/node.prom", f->dir);
	assert_int_equal(sb_metrics_write_textfile(path, "x", &err), -1);
	assert_non_null(strstr(err, path));
	free(err);
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_checker_accepts),
		cmocka_unit_test(test_checker_rejects),
		cmocka_unit_test_setup_teardown(test_samples_from_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nothing_known, setup, teardown),
		cmocka_unit_test_setup_teardown(test_label_escaping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_record_jobs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_success_kept, setup, teardown),
		cmocka_unit_test_setup_teardown(test_textfile, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
