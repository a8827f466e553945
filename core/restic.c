#include "stackback/restic.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "adapter-json.h"
#include "stackback/log.h"
#include "stackback/runner.h"
#include "stackback/util.h"

/*
 * Variables of the user's shell that restic would otherwise honour and
 * that could contradict what we pass (a different password source, a
 * repository file that conflicts with RESTIC_REPOSITORY).
 */
static const char *const restic_env_del[] = {
	"RESTIC_PASSWORD_FILE",
	"RESTIC_PASSWORD_COMMAND",
	"RESTIC_REPOSITORY_FILE",
	NULL,
};

/* ---- backup output ---- */

void sb_backup_summary_free(struct sb_backup_summary *s)
{
	free(s->snapshot_id);
	*s = (struct sb_backup_summary){0};
}

static int parse_status(struct json_object *o, struct sb_backup_progress *p)
{
	struct sb_backup_progress np = {.eta_s = -1};
	double frac = 0;
	double eta = -1;
	if (sb_json_get_double(o, "percent_done", &frac) < 0 || sb_json_get_u64(o, "bytes_done", &np.bytes_done) < 0 ||
	    sb_json_get_u64(o, "total_bytes", &np.bytes_total) < 0 || sb_json_get_u64(o, "files_done", &np.files_done) < 0 ||
	    sb_json_get_u64(o, "total_files", &np.files_total) < 0 || sb_json_get_double(o, "seconds_remaining", &eta) < 0)
		return -1;
	if (frac < 0)
		frac = 0;
	if (frac > 1)
		frac = 1;
	np.percent = frac * 100.0;
	np.eta_s = eta >= 0 ? eta : -1;
	*p = np;
	return 1;
}

static int parse_summary(struct json_object *o, struct sb_backup_summary *s)
{
	struct sb_backup_summary ns = {0};
	const char *id = sb_json_get_str(o, "snapshot_id");
	if (!id || !*id)
		return -1;
	if (sb_json_get_u64(o, "files_new", &ns.files_new) < 0 || sb_json_get_u64(o, "files_changed", &ns.files_changed) < 0 ||
	    sb_json_get_u64(o, "files_unmodified", &ns.files_unmodified) < 0 ||
	    sb_json_get_u64(o, "dirs_new", &ns.dirs_new) < 0 || sb_json_get_u64(o, "dirs_changed", &ns.dirs_changed) < 0 ||
	    sb_json_get_u64(o, "data_added", &ns.data_added) < 0 ||
	    sb_json_get_u64(o, "total_files_processed", &ns.total_files_processed) < 0 ||
	    sb_json_get_u64(o, "total_bytes_processed", &ns.total_bytes_processed) < 0 ||
	    sb_json_get_double(o, "total_duration", &ns.total_duration) < 0)
		return -1;
	ns.snapshot_id = xstrdup(id);
	sb_backup_summary_free(s);
	*s = ns;
	return 2;
}

int sb_restic_parse_backup_line(const char *line, size_t len, struct sb_backup_progress *p,
				struct sb_backup_summary *s)
{
	struct json_object *o = sb_json_parse(line, len);
	if (!o)
		return -1;
	int rc = -1;
	const char *type = json_object_is_type(o, json_type_object) ? sb_json_get_str(o, "message_type") : NULL;
	if (!type)
		rc = -1;
	else if (strcmp(type, "status") == 0)
		rc = parse_status(o, p);
	else if (strcmp(type, "summary") == 0)
		rc = parse_summary(o, s);
	else
		rc = 0;
	json_object_put(o);
	return rc;
}

/* ---- snapshots ---- */

static int parse_digits(const char **p, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		char c = (*p)[i];
		if (c < '0' || c > '9')
			return -1;
		v = v * 10 + (c - '0');
	}
	*p += n;
	*out = v;
	return 0;
}

/*
 * Parses RFC 3339 ("2024-05-01T10:20:30.123456789+02:00", "...Z") into
 * UTC seconds and nanoseconds. Returns 0 or -1.
 */
static int parse_rfc3339(const char *s, time_t *out, long *nsec)
{
	int year, mon, day, hour, min, sec;
	const char *p = s;
	if (parse_digits(&p, 4, &year) < 0 || *p++ != '-' || parse_digits(&p, 2, &mon) < 0 || *p++ != '-' ||
	    parse_digits(&p, 2, &day) < 0 || (*p != 'T' && *p != 't' && *p != ' '))
		return -1;
	p++;
	if (parse_digits(&p, 2, &hour) < 0 || *p++ != ':' || parse_digits(&p, 2, &min) < 0 || *p++ != ':' ||
	    parse_digits(&p, 2, &sec) < 0)
		return -1;
	if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60)
		return -1;
	long ns = 0;
	if (*p == '.') {
		p++;
		int digits = 0;
		while (*p >= '0' && *p <= '9') {
			if (digits < 9) {
				ns = ns * 10 + (*p - '0');
				digits++;
			}
			p++;
		}
		if (digits == 0)
			return -1;
		while (digits++ < 9)
			ns *= 10;
	}
	long offset = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p++ == '-' ? -1 : 1;
		int oh, om;
		if (parse_digits(&p, 2, &oh) < 0 || *p++ != ':' || parse_digits(&p, 2, &om) < 0 || oh > 23 ||
		    om > 59)
			return -1;
		offset = sign * (oh * 3600L + om * 60L);
	} else {
		return -1;
	}
	if (*p)
		return -1;
	struct tm tm = {
		.tm_year = year - 1900,
		.tm_mon = mon - 1,
		.tm_mday = day,
		.tm_hour = hour,
		.tm_min = min,
		.tm_sec = sec,
	};
	time_t t = timegm(&tm);
	if (t == (time_t)-1 && !(year == 1969 && mon == 12 && day == 31))
		return -1;
	*out = t - offset;
	*nsec = ns;
	return 0;
}

static void snapshot_free(struct sb_snapshot *s)
{
	free(s->id);
	free(s->short_id);
	free(s->time);
	free(s->hostname);
	free(s->tree);
	sb_strv_free(&s->paths);
	sb_strv_free(&s->tags);
	free(s->stack);
}

void sb_snapshot_list_free(struct sb_snapshot_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		snapshot_free(&l->v[i]);
	free(l->v);
	*l = (struct sb_snapshot_list){0};
}

/* Fills sv from an array of strings; absent is empty. Returns 0 or -1. */
static int get_strv(struct json_object *o, const char *key, struct sb_strv *sv)
{
	struct json_object *a;
	if (!json_object_object_get_ex(o, key, &a) || json_object_is_type(a, json_type_null))
		return 0;
	if (!json_object_is_type(a, json_type_array))
		return -1;
	size_t n = json_object_array_length(a);
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(a, i);
		if (!json_object_is_type(e, json_type_string))
			return -1;
		sb_strv_push(sv, json_object_get_string(e));
	}
	return 0;
}

/* An optional string member: absent is NULL, another type is an error. */
static int get_opt_str(struct json_object *o, const char *key, char **out)
{
	struct json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return -1;
	*out = xstrdup(json_object_get_string(v));
	return 0;
}

struct snap_sort {
	struct sb_snapshot s;
	long nsec;
};

static int snap_cmp(const void *a, const void *b)
{
	const struct snap_sort *x = a, *y = b;
	if (x->s.time_utc != y->s.time_utc)
		return x->s.time_utc < y->s.time_utc ? -1 : 1;
	if (x->nsec != y->nsec)
		return x->nsec < y->nsec ? -1 : 1;
	return strcmp(x->s.id, y->s.id);
}

static int parse_snapshot(struct json_object *o, struct snap_sort *out)
{
	struct sb_snapshot *s = &out->s;
	const char *id = sb_json_get_str(o, "id");
	const char *time_s = sb_json_get_str(o, "time");
	if (!id || !*id || !time_s || parse_rfc3339(time_s, &s->time_utc, &out->nsec) < 0)
		return -1;
	s->id = xstrdup(id);
	s->time = xstrdup(time_s);
	if (get_opt_str(o, "short_id", &s->short_id) < 0 || get_opt_str(o, "hostname", &s->hostname) < 0 ||
	    get_opt_str(o, "tree", &s->tree) < 0 || get_strv(o, "paths", &s->paths) < 0 ||
	    get_strv(o, "tags", &s->tags) < 0)
		return -1;
	if (!s->short_id)
		s->short_id = xstrndup(s->id, 8);
	for (size_t i = 0; i < s->tags.n; i++) {
		if (strcmp(s->tags.v[i], "stackback") != 0) {
			s->stack = xstrdup(s->tags.v[i]);
			break;
		}
	}
	return 0;
}

int sb_restic_parse_snapshots(const char *json, size_t len, struct sb_snapshot_list *out)
{
	*out = (struct sb_snapshot_list){0};
	struct json_object *a = sb_json_parse(json, len);
	if (!a)
		return -1;
	if (!json_object_is_type(a, json_type_array)) {
		json_object_put(a);
		return -1;
	}
	size_t n = json_object_array_length(a);
	struct snap_sort *v = xcalloc(n ? n : 1, sizeof(*v));
	int rc = 0;
	size_t got = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct json_object *e = json_object_array_get_idx(a, i);
		if (!json_object_is_type(e, json_type_object) || parse_snapshot(e, &v[got]) < 0)
			rc = -1;
		got++;
	}
	json_object_put(a);
	if (rc < 0) {
		for (size_t i = 0; i < got; i++)
			snapshot_free(&v[i].s);
		free(v);
		return -1;
	}
	qsort(v, n, sizeof(*v), snap_cmp);
	out->v = xcalloc(n ? n : 1, sizeof(*out->v));
	for (size_t i = 0; i < n; i++)
		out->v[i] = v[i].s;
	out->n = n;
	free(v);
	return 0;
}

/* ---- errors ---- */

/* The line after `marker` in text, trimmed (caller frees), or NULL. */
static char *line_after(const char *text, const char *marker)
{
	const char *m = strstr(text, marker);
	if (!m)
		return NULL;
	const char *nl = strchr(m, '\n');
	if (!nl)
		return NULL;
	const char *end = strchrnul(nl + 1, '\n');
	char *s = sb_run_printable(nl + 1, (size_t)(end - nl - 1));
	if (!*s) {
		free(s);
		return NULL;
	}
	return s;
}

/* The most telling line of restic's stderr: its last "Fatal: " message, else the last line. */
static char *telling_line(const char *text)
{
	char *fatal = NULL, *last = NULL;
	for (const char *p = text; *p;) {
		const char *end = strchrnul(p, '\n');
		char *line = sb_run_printable(p, (size_t)(end - p));
		if (sb_str_has_prefix(line, "Fatal: ")) {
			free(fatal);
			fatal = xstrdup(line + strlen("Fatal: "));
		}
		if (*line) {
			free(last);
			last = line;
		} else {
			free(line);
		}
		p = *end ? end + 1 : end;
	}
	if (fatal) {
		free(last);
		return fatal;
	}
	return last;
}

/*
 * The operating system's reason from restic's failed write of its lock
 * file ("write REPO/locks/ID-tmp-N: permission denied"), or NULL.
 */
static char *lock_write_error(const char *text)
{
	const char *at = strstr(text, "/locks/");
	if (!at)
		return NULL;
	const char *end = strchrnul(at, '\n');
	const char *why = NULL;
	for (const char *p = at; p + 1 < end; p++)
		if (p[0] == ':' && p[1] == ' ')
			why = p + 2;
	return why && why < end ? sb_run_printable(why, (size_t)(end - why)) : NULL;
}

char *sb_restic_explain(int exit_code, const char *stderr_tail)
{
	const char *t = stderr_tail ? stderr_tail : "";
	char *phrase;
	if (strstr(t, "wrong password or no key found")) {
		phrase = xstrdup("wrong password or no key found");
	} else if (strstr(t, "Is there a repository at the following location?") ||
		   strstr(t, "unable to open config file")) {
		cleanup_free char *where = line_after(t, "Is there a repository at the following location?");
		phrase = where ? xasprintf("repository does not exist at %s (run 'stackback init')", where)
			       : xstrdup("repository does not exist (run 'stackback init')");
	} else if (strstr(t, "no space left on device")) {
		/* Before the lock: with the disk full, restic's first failure is writing its lock file. */
		phrase = xstrdup("disk full (no space left on device)");
	} else if (strstr(t, "repository is already locked")) {
		phrase = xstrdup("repository is locked by another process (run 'restic unlock' if no backup is running)");
	} else if (strstr(t, "unable to create lock")) {
		cleanup_free char *why = lock_write_error(t);
		phrase = xasprintf("cannot write a lock file in the repository%s%s", why ? ": " : "", why ? why : "");
	} else if (strstr(t, "config file already exists")) {
		phrase = xstrdup("a repository already exists there");
	} else if (exit_code == 3) {
		/* restic 0.14: the snapshot was saved without some files; its stderr only says so. */
		phrase = xstrdup("some files could not be read");
	} else {
		cleanup_free char *line = telling_line(t);
		phrase = xstrdup(line ? line : "no error message");
	}
	char *s = xasprintf("restic exited %d: %s", exit_code, phrase);
	free(phrase);
	return s;
}

/* ---- running restic ---- */

int sb_restic_open(struct sb_restic *r, const struct sb_config *cfg, const char *repository, char **err)
{
	*r = (struct sb_restic){0};
	if (!repository || !*repository) {
		*err = xstrdup("no restic repository configured (RESTIC_REPOSITORY)");
		return -1;
	}
	char *pw = NULL;
	if (sb_config_password(cfg, &pw, err) < 0)
		return -1;
	if (!*pw) {
		free(pw);
		*err = xstrdup("the restic password is empty");
		return -1;
	}
	sb_log_add_secret(pw);
	r->repository = xstrdup(repository);
	r->password = pw;
	r->timeout_s = cfg->backup_timeout;
	return 0;
}

void sb_restic_close(struct sb_restic *r)
{
	if (r->password) {
		explicit_bzero(r->password, strlen(r->password));
		free(r->password);
	}
	free(r->repository);
	*r = (struct sb_restic){0};
}

struct restic_call {
	const char *const *args;    /* after "restic" */
	const char *cwd;
	double timeout_s;
	const atomic_bool *cancel;
	sb_line_fn on_line;
	void *userdata;
	bool capture_stdout;
	const char *bind_src, *bind_dst;
};

/*
 * Runs restic once with the repository and password in its environment
 * only. Returns 0, or -1 with *err explaining the failure; res is always
 * filled (caller frees).
 */
static int restic_run_once(const struct sb_restic *r, const struct restic_call *c, struct sb_run_result *res,
			   char **err)
{
	struct sb_strv argv = {0};
	sb_strv_push(&argv, "restic");
	for (size_t i = 0; c->args[i]; i++)
		sb_strv_push(&argv, c->args[i]);
	char *repo_env = xasprintf("RESTIC_REPOSITORY=%s", r->repository);
	char *pw_env = xasprintf("RESTIC_PASSWORD=%s", r->password ? r->password : "");
	const char *env_add[] = {repo_env, pw_env, NULL};
	struct sb_run_opts o = {
		.argv = (const char *const *)argv.v,
		.env_add = env_add,
		.env_del = restic_env_del,
		.cwd = c->cwd,
		.timeout_s = c->timeout_s,
		.on_line = c->on_line,
		.userdata = c->userdata,
		.capture_stdout = c->capture_stdout,
		.capture_stderr = true,
		.cancel = c->cancel,
		/* On SIGINT restic removes its lock; on SIGTERM it would leave it behind. */
		.term_signal = SIGINT,
		.bind_src = c->bind_src,
		.bind_dst = c->bind_dst,
	};
	sb_debug("running restic %s on '%s'", c->args[0], r->repository);
	int rc = sb_run(&o, res);
	explicit_bzero(pw_env, strlen(pw_env));
	free(pw_env);
	free(repo_env);
	sb_strv_free(&argv);
	if (rc == 0)
		return 0;
	switch (res->outcome) {
	case SB_RUN_EXITED:
		*err = sb_restic_explain(res->status, res->err);
		break;
	case SB_RUN_SPAWN_FAILED:
		if (res->status == ENOENT && !res->err) {
			*err = xstrdup("restic is not installed (not found in PATH)");
			break;
		}
		/* fall through */
	case SB_RUN_CANCELLED:
		/* restic's stderr then only says it was interrupted. */
		*err = xasprintf("restic %s cancelled", c->args[0]);
		break;
	case SB_RUN_TIMED_OUT:
		*err = xasprintf("restic %s timed out after %gs", c->args[0], c->timeout_s);
		break;
	default: {
		cleanup_free char *why = sb_run_describe(res, c->timeout_s);
		*err = xasprintf("restic %s %s", c->args[0], why);
		break;
	}
	}
	return -1;
}

static double long_timeout(const struct sb_restic *r)
{
	return r->timeout_s > 0 ? (double)r->timeout_s : 0;
}

static bool lock_refused(const struct sb_run_result *res)
{
	return res->outcome == SB_RUN_EXITED && res->err && strstr(res->err, "repository is already locked");
}

/*
 * restic_run_once, but a refusal because of a lock is answered once with
 * `restic unlock` and a retry. A restic killed with SIGKILL (by a timeout,
 * the OOM killer, or with stackback itself) leaves its lock file behind,
 * and restic 0.14 lets no exclusive command (check, forget --prune) past
 * even a dead process's lock. `unlock` without --remove-all removes only
 * stale locks (a dead PID on this host, or older than 30 minutes), and the
 * caller holds the job lock, so no other stackback job is using the
 * repository: a live restic started by hand keeps its lock and the retry
 * fails as before. Observe: `kill -9` a `restic backup`, then
 * `stackback check` succeeds and logs the removal.
 */
static int restic_run(const struct sb_restic *r, const struct restic_call *c, struct sb_run_result *res,
		      char **err)
{
	int rc = restic_run_once(r, c, res, err);
	if (rc == 0 || !lock_refused(res) || (c->cancel && atomic_load(c->cancel)))
		return rc;
	static const char *const unlock_args[] = {"unlock", NULL};
	struct restic_call u = {.args = unlock_args, .timeout_s = long_timeout(r), .cancel = c->cancel};
	struct sb_run_result ures;
	cleanup_free char *uerr = NULL;
	int urc = restic_run_once(r, &u, &ures, &uerr);
	sb_run_result_free(&ures);
	if (urc < 0) {
		sb_warn("restic unlock on '%s' failed: %s", r->repository, uerr);
		return rc;
	}
	sb_warn("restic %s found '%s' locked: removed the stale locks of dead restic processes (restic unlock), "
		"retrying once",
		c->args[0], r->repository);
	sb_run_result_free(res);
	free(*err);
	*err = NULL;
	return restic_run_once(r, c, res, err);
}

/* A repository string restic treats as a local path ("/x", "local:/x", "rel/dir"). */
static const char *local_path(const char *repo)
{
	if (sb_str_has_prefix(repo, "local:"))
		return repo + strlen("local:");
	if (repo[0] == '/' || !strchr(repo, ':'))
		return repo;
	return NULL;
}

bool sb_restic_repo_exists(const struct sb_restic *r)
{
	const char *path = local_path(r->repository);
	if (path) {
		cleanup_free char *config = xasprintf("%s/config", path);
		struct stat st;
		return stat(config, &st) == 0 && S_ISREG(st.st_mode);
	}
	static const char *const args[] = {"cat", "config", NULL};
	struct restic_call c = {.args = args, .timeout_s = long_timeout(r), .cancel = r->cancel};
	struct sb_run_result res;
	cleanup_free char *err = NULL;
	int rc = restic_run(r, &c, &res, &err);
	sb_run_result_free(&res);
	return rc == 0;
}

int sb_restic_init(const struct sb_restic *r, bool *created, char **err)
{
	*created = false;
	if (sb_restic_repo_exists(r))
		return 0;
	static const char *const args[] = {"init", NULL};
	struct restic_call c = {.args = args, .timeout_s = long_timeout(r), .cancel = r->cancel};
	struct sb_run_result res;
	int rc = restic_run(r, &c, &res, err);
	sb_run_result_free(&res);
	if (rc < 0)
		return -1;
	*created = true;
	sb_info("created restic repository at '%s'", r->repository);
	return 0;
}

/*
 * restic's per-file errors in --json mode, e.g.
 * {"message_type":"error","error":{"Op":"read","Path":"/x","Err":5},"during":"archival","item":"/x"}
 * Returns "ITEM: WHAT" (caller frees), or NULL for any other line.
 */
static char *backup_error_text(const char *line, size_t len)
{
	struct json_object *o = sb_json_parse(line, len);
	if (!o)
		return NULL;
	char *text = NULL;
	const char *type = json_object_is_type(o, json_type_object) ? sb_json_get_str(o, "message_type") : NULL;
	if (type && strcmp(type, "error") == 0) {
		const char *item = sb_json_get_str(o, "item");
		struct json_object *e = NULL;
		json_object_object_get_ex(o, "error", &e);
		const char *op = e && json_object_is_type(e, json_type_object) ? sb_json_get_str(e, "Op") : NULL;
		uint64_t code = 0;
		if (op && sb_json_get_u64(e, "Err", &code) == 0 && code > 0 && code < 4096)
			text = xasprintf("%s: %s: %s", item ? item : "?", op, strerror((int)code));
		else
			text = xasprintf("%s: %s", item ? item : "?", e ? json_object_to_json_string(e) : "error");
	}
	json_object_put(o);
	return text;
}

struct backup_ctx {
	const struct sb_restic_backup_opts *o;
	struct sb_backup_summary summary;
	int summaries;
	char *first_error;  /* the first file restic could not read, for the error message */
};

static void backup_line(void *userdata, enum sb_stream stream, const char *line, size_t len)
{
	struct backup_ctx *ctx = userdata;
	if (stream != SB_STREAM_STDOUT)
		return;
	struct sb_backup_progress p;
	int kind = sb_restic_parse_backup_line(line, len, &p, &ctx->summary);
	if (kind == 1 && ctx->o->on_progress) {
		ctx->o->on_progress(ctx->o->userdata, &p);
	} else if (kind == 2) {
		ctx->summaries++;
	} else if (kind == 0) {
		char *text = backup_error_text(line, len);
		if (text) {
			sb_warn("restic backup of '%s': cannot read %s", ctx->o->path, text);
			if (!ctx->first_error)
				ctx->first_error = text;
			else
				free(text);
		}
	}
}

int sb_restic_backup(const struct sb_restic *r, const struct sb_restic_backup_opts *o,
		     struct sb_backup_summary *summary, char **err)
{
	*summary = (struct sb_backup_summary){0};
	struct sb_strv args = {0};
	sb_strv_push(&args, "backup");
	sb_strv_push(&args, "--json");
	for (size_t i = 0; o->tags && o->tags[i]; i++) {
		sb_strv_push(&args, "--tag");
		sb_strv_push(&args, o->tags[i]);
	}
	if (o->hostname && *o->hostname) {
		sb_strv_push(&args, "--host");
		sb_strv_push(&args, o->hostname);
	}
	for (size_t i = 0; o->excludes && o->excludes[i]; i++) {
		sb_strv_push(&args, "--exclude");
		sb_strv_push(&args, o->excludes[i]);
	}
	if (o->parent) {
		sb_strv_push(&args, "--parent");
		sb_strv_push(&args, o->parent);
	}
	if (o->ignore_inode) {
		sb_strv_push(&args, "--ignore-inode");
		sb_strv_push(&args, "--ignore-ctime");
	}
	/*
	 * The absolute path, so the snapshot records where the stack lives
	 * (restore puts it back there) and restic finds the previous
	 * snapshot of the same path as parent.
	 */
	sb_strv_push(&args, "--");
	sb_strv_push(&args, o->path);

	struct backup_ctx ctx = {.o = o};
	struct restic_call c = {
		.args = (const char *const *)args.v,
		.cwd = o->path,
		.timeout_s = long_timeout(r),
		.cancel = r->cancel,
		.on_line = backup_line,
		.userdata = &ctx,
		.bind_src = o->source_dir,
		.bind_dst = o->source_dir ? o->path : NULL,
	};
	struct sb_run_result res;
	int rc = restic_run(r, &c, &res, err);
	sb_run_result_free(&res);
	sb_strv_free(&args);
	if (rc == 0 && ctx.summaries == 0) {
		*err = xstrdup("restic backup printed no summary");
		rc = -1;
	}
	if (rc < 0) {
		/* Exit 3: a snapshot exists but lacks what could not be read. Say what and which. */
		if (ctx.first_error || ctx.summary.snapshot_id) {
			struct sb_buf b = {0};
			sb_buf_puts(&b, *err);
			if (ctx.first_error)
				sb_buf_printf(&b, " (first: %s)", ctx.first_error);
			if (ctx.summary.snapshot_id)
				sb_buf_printf(&b, "; snapshot %s is incomplete", ctx.summary.snapshot_id);
			free(*err);
			*err = sb_buf_steal(&b);
		}
		free(ctx.first_error);
		sb_backup_summary_free(&ctx.summary);
		return -1;
	}
	free(ctx.first_error);
	*summary = ctx.summary;
	return 0;
}

int sb_restic_snapshots(const struct sb_restic *r, const char *tag, struct sb_snapshot_list *out, char **err)
{
	*out = (struct sb_snapshot_list){0};
	/* Reading the list needs no lock: it runs beside a backup, or while a prune by hand holds the repository. */
	const char *args[] = {"snapshots", "--no-lock", "--json", tag ? "--tag" : NULL, tag, NULL};
	struct restic_call c = {.args = args, .timeout_s = long_timeout(r), .cancel = r->cancel, .capture_stdout = true};
	struct sb_run_result res;
	int rc = restic_run(r, &c, &res, err);
	if (rc == 0 && sb_restic_parse_snapshots(res.out, strlen(res.out), out) < 0) {
		*err = xstrdup("restic snapshots printed output that is not a snapshot list");
		rc = -1;
	}
	sb_run_result_free(&res);
	return rc;
}

int sb_restic_forget(const struct sb_restic *r, const struct sb_config *cfg, const char *tag, bool dry_run,
		     char **err)
{
	if (!tag || !*tag) {
		*err = xstrdup("forget needs a stack tag");
		return -1;
	}
	struct {
		const char *flag;
		long value;
	} keep[] = {
		{"--keep-daily", cfg->keep_daily},
		{"--keep-weekly", cfg->keep_weekly},
		{"--keep-monthly", cfg->keep_monthly},
		{"--keep-yearly", cfg->keep_yearly},
	};
	/*
	 * No grouping: every snapshot tagged with the stack is one series,
	 * including a migrated user's older ones tagged only with the name,
	 * or taken under another hostname or path.
	 */
	struct sb_strv args = {0};
	sb_strv_push(&args, "forget");
	sb_strv_push(&args, "--tag");
	sb_strv_push(&args, tag);
	sb_strv_push(&args, "--group-by");
	sb_strv_push(&args, "");
	size_t policies = 0;
	for (size_t i = 0; i < SB_ARRAY_SIZE(keep); i++) {
		if (keep[i].value <= 0)
			continue;
		sb_strv_push(&args, keep[i].flag);
		sb_strv_push_owned(&args, xasprintf("%ld", keep[i].value));
		policies++;
	}
	if (policies == 0) {
		sb_strv_free(&args);
		*err = xasprintf("no retention policy for '%s' (KEEP_DAILY, KEEP_WEEKLY, KEEP_MONTHLY and "
				 "KEEP_YEARLY are all 0): refusing to forget every snapshot",
				 tag);
		return -1;
	}
	sb_strv_push(&args, "--prune");
	if (dry_run)
		sb_strv_push(&args, "--dry-run");
	struct restic_call c = {.args = (const char *const *)args.v, .timeout_s = long_timeout(r), .cancel = r->cancel};
	struct sb_run_result res;
	int rc = restic_run(r, &c, &res, err);
	sb_run_result_free(&res);
	sb_strv_free(&args);
	return rc;
}

int sb_restic_check(const struct sb_restic *r, bool read_data, char **err)
{
	const char *args[] = {"check", read_data ? "--read-data" : NULL, NULL};
	struct restic_call c = {.args = args, .timeout_s = long_timeout(r), .cancel = r->cancel};
	struct sb_run_result res;
	int rc = restic_run(r, &c, &res, err);
	sb_run_result_free(&res);
	return rc;
}

int sb_restic_restore(const struct sb_restic *r, const char *snapshot, const char *target, char **err)
{
	const char *args[] = {"restore", snapshot, "--target", target, NULL};
	struct restic_call c = {.args = args, .timeout_s = long_timeout(r), .cancel = r->cancel};
	struct sb_run_result res;
	int rc = restic_run(r, &c, &res, err);
	sb_run_result_free(&res);
	return rc;
}

struct ls_ctx {
	uint64_t files, nodes, bad;
};

static void ls_line(void *userdata, enum sb_stream stream, const char *line, size_t len)
{
	struct ls_ctx *ctx = userdata;
	if (stream != SB_STREAM_STDOUT)
		return;
	struct json_object *o = sb_json_parse(line, len);
	if (!o || !json_object_is_type(o, json_type_object)) {
		ctx->bad++;
		json_object_put(o);
		return;
	}
	const char *st = sb_json_get_str(o, "struct_type");
	if (st && strcmp(st, "node") == 0) {
		ctx->nodes++;
		const char *type = sb_json_get_str(o, "type");
		if (type && strcmp(type, "file") == 0)
			ctx->files++;
	}
	json_object_put(o);
}

int sb_restic_ls_count(const struct sb_restic *r, const char *snapshot, uint64_t *files, uint64_t *nodes,
		       char **err)
{
	const char *args[] = {"ls", "--json", snapshot, NULL};
	struct ls_ctx ctx = {0};
	/* Streamed, never captured: 100,000 files print ~32 MB. */
	struct restic_call c = {
		.args = args,
		.timeout_s = long_timeout(r),
		.cancel = r->cancel,
		.on_line = ls_line,
		.userdata = &ctx,
	};
	struct sb_run_result res;
	int rc = restic_run(r, &c, &res, err);
	sb_run_result_free(&res);
	if (rc < 0)
		return -1;
	if (ctx.bad) {
		*err = xasprintf("restic ls printed %llu unreadable lines", (unsigned long long)ctx.bad);
		return -1;
	}
	*files = ctx.files;
	*nodes = ctx.nodes;
	return 0;
}
