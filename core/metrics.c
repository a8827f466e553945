/*
 * The Prometheus text exposition (format 0.0.4) behind the mount's
 * `metrics` file and `stackback metrics`, and the bookkeeping that lets
 * it answer from STATE_DIR alone (metrics.h).
 *
 * Every sample is a gauge; samples of one metric follow its # HELP and
 * # TYPE lines; a value that is unknown (a stack never backed up) is
 * left out rather than reported as 0.
 */
#include "stackback/metrics.h"

#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb-build-config.h"
#include "stackback/cloud.h"
#include "stackback/log.h"
#include "stackback/restic.h"
#include "stackback/state.h"
#include "stackback/status.h"
#include "stackback/util.h"

#define METRICS_STATE "metrics.json"
/* Counting snapshots opens the repository (~0.7 s); a listing of a big one takes a few seconds. */
#define COUNT_TIMEOUT_S 120
/* Snapshot counts kept up from job reports are checked against restic this often, seconds. */
#define RECOUNT_S (6 * 3600)

/* ---- reading state files: wrong types read as absent ---- */

static struct json_object *member(struct json_object *o, const char *key, enum json_type type)
{
	struct json_object *v;
	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, type))
		return NULL;
	return v;
}

static const char *member_str(struct json_object *o, const char *key)
{
	struct json_object *v = member(o, key, json_type_string);
	return v ? json_object_get_string(v) : NULL;
}

static bool member_num(struct json_object *o, const char *key, double *out)
{
	struct json_object *v;
	if (!o || !json_object_object_get_ex(o, key, &v) ||
	    !(json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int)))
		return false;
	*out = json_object_get_double(v);
	return true;
}

/* A state file that must hold an object: anything else reads as absent (NULL). */
static struct json_object *read_object(const struct sb_config *cfg, const char *rel)
{
	struct json_object *o = sb_state_read_json(cfg, rel);
	if (o && !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static struct json_object *read_last_backup(const struct sb_config *cfg, const char *name)
{
	/* The name becomes a path: only names the stack rule allows. */
	if (!sb_stack_name_valid(name))
		return NULL;
	cleanup_free char *rel = xasprintf("stacks/%s.json", name);
	return read_object(cfg, rel);
}

/* ---- recording ---- */

/* The object at o[key], created (or replaced if it is not an object). Borrowed. */
static struct json_object *child_object(struct json_object *o, const char *key)
{
	struct json_object *v = member(o, key, json_type_object);
	if (!v) {
		v = json_object_new_object();
		json_object_object_add(o, key, v);
	}
	return v;
}

static void record_successes(struct json_object *m, struct sb_job *job)
{
	pthread_mutex_lock(&job->mu);
	if (job->req.kind == SB_JOB_BACKUP) {
		struct json_object *stacks = child_object(m, "stacks");
		for (size_t i = 0; i < job->n_reports; i++) {
			const struct sb_stack_report *r = &job->reports[i];
			if (r->result != SB_STACK_OK)
				continue;
			struct json_object *s = child_object(stacks, r->name);
			json_object_object_add(s, "last_success", json_object_new_double(r->started_at + r->duration_s));
		}
	}
	if (job->req.kind == SB_JOB_SYNC && job->state == SB_JOB_OK) {
		struct json_object *sync = child_object(m, "sync");
		json_object_object_add(sync, "last_success", json_object_new_double(job->finished_at));
	}
	pthread_mutex_unlock(&job->mu);
}

/* One `restic snapshots` of the configured repository. Returns 0 or -1 with *err. */
static int list_snapshots(const struct sb_config *cfg, struct sb_job *job, struct sb_snapshot_list *l, char **err)
{
	struct sb_restic r;
	if (sb_restic_open(&r, cfg, cfg->restic_repository, err) < 0)
		return -1;
	if (r.timeout_s <= 0 || r.timeout_s > COUNT_TIMEOUT_S)
		r.timeout_s = COUNT_TIMEOUT_S;
	r.cancel = &job->cancel;
	int rc = sb_restic_snapshots(&r, NULL, l, err);
	sb_restic_close(&r);
	return rc;
}

/* id may be the short form restic's backup summary gives: a prefix of the full one. */
static bool listed(const struct sb_snapshot_list *l, const char *id)
{
	size_t len = strlen(id);
	for (size_t i = 0; i < l->n; i++)
		if (len > 0 && strncmp(l->v[i].id, id, len) == 0)
			return true;
	return false;
}

static void add_snapshot(struct json_object *stacks, const char *stack)
{
	struct json_object *s = child_object(stacks, stack);
	double n = 0;
	member_num(s, "snapshots", &n);
	json_object_object_add(s, "snapshots", json_object_new_int64((int64_t)n + 1));
}

/* Adds the snapshots the job made, but those l holds (l may be NULL). Returns how many. */
static int64_t add_job_snapshots(struct json_object *stacks, struct sb_job *job, const struct sb_snapshot_list *l)
{
	int64_t added = 0;
	pthread_mutex_lock(&job->mu);
	for (size_t i = 0; i < job->n_reports; i++) {
		const struct sb_stack_report *r = &job->reports[i];
		if (!r->snapshot_id || (l && listed(l, r->snapshot_id)))
			continue;
		add_snapshot(stacks, r->name);
		added++;
	}
	pthread_mutex_unlock(&job->mu);
	return added;
}

/*
 * Sets the counts from a full listing l, plus the snapshots the job made
 * that l does not hold (l was taken while the job ran, or before it).
 */
static void set_counts(struct json_object *m, const struct sb_snapshot_list *l, struct sb_job *job)
{
	/* Stacks whose last snapshot was forgotten count 0: every stack starts from there. */
	struct json_object *stacks = child_object(m, "stacks");
	json_object_object_foreach(stacks, name, entry) {
		(void)name;
		if (json_object_is_type(entry, json_type_object))
			json_object_object_add(entry, "snapshots", json_object_new_int64(0));
	}
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].stack && sb_stack_name_valid(l->v[i].stack))
			add_snapshot(stacks, l->v[i].stack);
	int64_t total = (int64_t)l->n + add_job_snapshots(stacks, job, l);
	json_object_object_add(m, "snapshots_total", json_object_new_int64(total));
	json_object_object_add(m, "snapshots_counted_at", json_object_new_double(sb_now_wall()));
}

/*
 * A backup that forgets nothing can be counted from its own reports,
 * without the `restic snapshots` that adds a second or more to a job,
 * unless restic must count: never counted, or the last full count is
 * older than RECOUNT_S, so that snapshots made or forgotten by hand are
 * seen too.
 */
static bool reports_suffice(const struct sb_config *cfg, struct sb_job *job, struct json_object *m)
{
	double counted_at = 0;
	return job->req.kind == SB_JOB_BACKUP && !cfg->auto_prune && member_num(m, "snapshots_counted_at", &counted_at) &&
	       sb_now_wall() - counted_at <= RECOUNT_S;
}

static void count_from_reports(struct json_object *m, struct sb_job *job)
{
	double total = 0;
	member_num(m, "snapshots_total", &total);
	total += (double)add_job_snapshots(child_object(m, "stacks"), job, NULL);
	json_object_object_add(m, "snapshots_total", json_object_new_int64((int64_t)total));
}

struct sb_metrics_count {
	const struct sb_config *cfg;
	struct sb_job *job;
	pthread_t thread;
	int rc;
	struct sb_snapshot_list list;
	char *err;
};

static void *count_thread(void *arg)
{
	struct sb_metrics_count *c = arg;
	c->rc = list_snapshots(c->cfg, c->job, &c->list, &c->err);
	return NULL;
}

struct sb_metrics_count *sb_metrics_count_start(const struct sb_config *cfg, struct sb_job *job)
{
	/* A backup with retention forgets snapshots as it goes: only a count after it is right. */
	if (job->id <= 0 || job->req.dry_run || job->req.kind != SB_JOB_BACKUP || cfg->auto_prune)
		return NULL;
	struct json_object *m = read_object(cfg, METRICS_STATE);
	bool due = !m || !reports_suffice(cfg, job, m);
	json_object_put(m);
	if (!due)
		return NULL;
	struct sb_metrics_count *c = xcalloc(1, sizeof(*c));
	c->cfg = cfg;
	c->job = job;
	if (pthread_create(&c->thread, NULL, count_thread, c) != 0) {
		free(c);
		return NULL;
	}
	return c;
}

/* Waits for an early count. Returns it if it listed the repository, else frees it and returns NULL. */
static struct sb_metrics_count *finish_early(struct sb_metrics_count *c)
{
	if (!c)
		return NULL;
	pthread_join(c->thread, NULL);
	if (c->rc == 0)
		return c;
	sb_debug("early snapshot count failed, counting after the job: %s", c->err);
	free(c->err);
	free(c);
	return NULL;
}

void sb_metrics_record_job(const struct sb_config *cfg, struct sb_job *job, struct sb_metrics_count *early)
{
	early = finish_early(early);
	if (job->id <= 0 || job->req.dry_run)
		goto out;
	struct json_object *m = read_object(cfg, METRICS_STATE);
	if (!m)
		m = json_object_new_object();
	record_successes(m, job);

	enum sb_job_kind kind = job->req.kind;
	if ((kind == SB_JOB_BACKUP || kind == SB_JOB_FORGET || kind == SB_JOB_RESTORE_STACK) &&
	    !atomic_load(&job->cancel)) {
		if (early) {
			set_counts(m, &early->list, job);
		} else if (reports_suffice(cfg, job, m)) {
			count_from_reports(m, job);
		} else {
			struct sb_snapshot_list l;
			cleanup_free char *err = NULL;
			if (list_snapshots(cfg, job, &l, &err) < 0) {
				sb_debug("snapshot counts for metrics not updated: %s", err);
			} else {
				set_counts(m, &l, job);
				sb_snapshot_list_free(&l);
			}
		}
	}
	int rc = sb_state_write_json(cfg, METRICS_STATE, m);
	if (rc < 0)
		sb_warn("cannot record metrics in '%s/%s': %s", cfg->state_dir, METRICS_STATE, strerror(-rc));
	json_object_put(m);
out:
	if (early) {
		sb_snapshot_list_free(&early->list);
		free(early);
	}
}

int sb_metrics_write_textfile(const char *path, const char *text, char **err)
{
	int rc = sb_write_file_atomic(path, text, strlen(text), 0644);
	if (rc < 0) {
		*err = xasprintf("cannot write metrics to '%s': %s", path, strerror(-rc));
		return -1;
	}
	return 0;
}

/* ---- rendering ---- */

/* Label values: backslash, double quote and newline are escaped (the format's only escapes). */
static void put_label(struct sb_buf *b, const char *value)
{
	for (const char *p = value; *p; p++) {
		if (*p == '\\' || *p == '"')
			sb_buf_printf(b, "\\%c", *p);
		else if (*p == '\n')
			sb_buf_puts(b, "\\n");
		else
			sb_buf_append(b, p, 1);
	}
}

static void head(struct sb_buf *b, const char *name, const char *help)
{
	sb_buf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
}

static void sample(struct sb_buf *b, const char *name, double value)
{
	sb_buf_printf(b, "%s %.17g\n", name, value);
}

static void labelled(struct sb_buf *b, const char *name, const char *label, const char *value, double v)
{
	sb_buf_printf(b, "%s{%s=\"", name, label);
	put_label(b, value);
	sb_buf_printf(b, "\"} %.17g\n", v);
}

/* What one stack's samples come from. */
struct stack_src {
	const char *name;
	bool enabled;
	struct json_object *last;   /* stacks/NAME.json, owned */
	struct json_object *kept;   /* metrics.json stacks.NAME, borrowed */
};

enum stack_value {
	V_ENABLED,
	V_LAST_TIME,
	V_LAST_SUCCESS,
	V_SUCCESS_TIME,
	V_DURATION,
	V_DOWNTIME,
	V_BACKUP,
	V_BYTES,
	V_SNAPSHOTS,
};

static const struct {
	const char *name;
	const char *help;
} stack_metrics[] = {
	[V_ENABLED] = {"stackback_stack_enabled", "Whether the stack is selected for backup (1) or not (0)."},
	[V_LAST_TIME] = {"stackback_stack_last_backup_timestamp_seconds", "When the stack's last backup ended, whatever its result (Unix time)."},
	[V_LAST_SUCCESS] = {"stackback_stack_last_backup_success", "Whether the stack's last backup succeeded (1) or not (0)."},
	[V_SUCCESS_TIME] = {"stackback_stack_last_success_timestamp_seconds", "When the stack's last successful backup ended (Unix time)."},
	[V_DURATION] = {"stackback_stack_last_backup_duration_seconds", "How long the stack's last backup took."},
	[V_DOWNTIME] = {"stackback_stack_last_backup_downtime_seconds", "How long the stack was stopped by its last backup."},
	[V_BACKUP] = {"stackback_stack_last_backup_restic_seconds", "How long restic read the stack's data in its last backup (in snapshot mode, while the stack ran)."},
	[V_BYTES] = {"stackback_stack_last_backup_bytes_added", "Bytes the stack's last backup added to the repository."},
	[V_SNAPSHOTS] = {"stackback_stack_snapshots", "Snapshots of the stack in the repository, as counted after the last job that changed them."},
};

/* Returns whether the stack has a value for v (then *out). */
static bool stack_value(const struct stack_src *s, enum stack_value v, bool counted, double *out)
{
	double start = 0, dur = 0;
	switch (v) {
	case V_ENABLED:
		*out = s->enabled;
		return true;
	case V_LAST_TIME:
		if (!member_num(s->last, "started_at", &start))
			return false;
		member_num(s->last, "duration_s", &dur);
		*out = start + dur;
		return true;
	case V_LAST_SUCCESS: {
		const char *r = member_str(s->last, "result");
		if (!r)
			return false;
		*out = strcmp(r, "ok") == 0;
		return true;
	}
	case V_SUCCESS_TIME:
		return member_num(s->kept, "last_success", out);
	case V_DURATION:
		return member_num(s->last, "duration_s", out);
	case V_DOWNTIME:
		return member_num(s->last, "downtime_s", out);
	case V_BACKUP:
		return member_num(s->last, "backup_s", out);
	case V_BYTES:
		return member_num(s->last, "bytes_added", out);
	case V_SNAPSHOTS:
		if (member_num(s->kept, "snapshots", out))
			return true;
		/* Counted, and none of them is this stack's. */
		*out = 0;
		return counted;
	}
	return false;
}

static void render_stacks(struct sb_buf *b, const struct sb_config *cfg, const struct sb_selection *sel,
			  struct json_object *kept)
{
	struct json_object *kept_stacks = member(kept, "stacks", json_type_object);
	double counted_at;
	bool counted = member_num(kept, "snapshots_counted_at", &counted_at);
	struct stack_src *src = xcalloc(sel->n ? sel->n : 1, sizeof(*src));
	for (size_t i = 0; i < sel->n; i++) {
		src[i].name = sel->stacks[i].name;
		src[i].enabled = sel->stacks[i].enabled;
		src[i].last = read_last_backup(cfg, src[i].name);
		src[i].kept = member(kept_stacks, src[i].name, json_type_object);
	}
	/* The format wants each metric's samples together: one pass per metric. */
	for (size_t m = 0; m < SB_ARRAY_SIZE(stack_metrics); m++) {
		head(b, stack_metrics[m].name, stack_metrics[m].help);
		for (size_t i = 0; i < sel->n; i++) {
			double v;
			if (stack_value(&src[i], (enum stack_value)m, counted, &v))
				labelled(b, stack_metrics[m].name, "stack", src[i].name, v);
		}
	}
	static const char mode_metric[] = "stackback_stack_last_backup_mode";
	head(b, mode_metric, "How the stack's last backup ran (always 1): stop or down (stopped for the whole backup), "
			     "btrfs or reflink (stopped only while a snapshot was taken).");
	for (size_t i = 0; i < sel->n; i++) {
		const char *mode = member_str(src[i].last, "mode");
		if (!mode)
			continue;
		sb_buf_printf(b, "%s{stack=\"", mode_metric);
		put_label(b, src[i].name);
		sb_buf_puts(b, "\",mode=\"");
		put_label(b, mode);
		sb_buf_puts(b, "\"} 1\n");
	}
	for (size_t i = 0; i < sel->n; i++)
		json_object_put(src[i].last);
	free(src);

	double v;
	if (member_num(kept, "snapshots_total", &v)) {
		head(b, "stackback_repository_snapshots", "Snapshots in the repository, stacks and others, as last counted.");
		sample(b, "stackback_repository_snapshots", v);
	}
	if (counted) {
		head(b, "stackback_snapshots_counted_timestamp_seconds", "When the snapshots were last counted (Unix time).");
		sample(b, "stackback_snapshots_counted_timestamp_seconds", counted_at);
	}
}

static void render_jobs(struct sb_buf *b, const struct sb_status_snapshot *snap)
{
	head(b, "stackback_job_running", "Whether a job is running (1) or not (0).");
	sample(b, "stackback_job_running", snap->running);
	head(b, "stackback_jobs_queued", "Jobs waiting behind the running one.");
	sample(b, "stackback_jobs_queued", snap->queued);
	if (!snap->has_last)
		return;
	head(b, "stackback_last_job_id", "The id of the newest finished job.");
	sample(b, "stackback_last_job_id", snap->last.id);
	head(b, "stackback_last_job_success", "Whether the newest finished job succeeded (1) or not (0), by its kind.");
	labelled(b, "stackback_last_job_success", "kind", sb_job_kind_name(snap->last.kind), snap->last.state == SB_JOB_OK);
	if (snap->last.finished_at > 0) {
		head(b, "stackback_last_job_timestamp_seconds", "When the newest finished job ended (Unix time).");
		sample(b, "stackback_last_job_timestamp_seconds", snap->last.finished_at);
	}
}

static void render_cloud(struct sb_buf *b, const struct sb_config *cfg, struct json_object *kept)
{
	struct sb_cloud_state st;
	sb_cloud_state_read(cfg, &st);
	if (st.has_sync) {
		head(b, "stackback_cloud_last_sync_timestamp_seconds", "When the last cloud sync ended, whatever its result (Unix time).");
		sample(b, "stackback_cloud_last_sync_timestamp_seconds", st.last_sync.time + st.last_sync.duration_s);
		head(b, "stackback_cloud_last_sync_success", "Whether the last cloud sync succeeded (1) or not (0).");
		sample(b, "stackback_cloud_last_sync_success", st.last_sync.ok);
		head(b, "stackback_cloud_last_sync_duration_seconds", "How long the last cloud sync took.");
		sample(b, "stackback_cloud_last_sync_duration_seconds", st.last_sync.duration_s);
		head(b, "stackback_cloud_last_sync_bytes", "Bytes the last cloud sync transferred.");
		sample(b, "stackback_cloud_last_sync_bytes", (double)st.last_sync.bytes);
		head(b, "stackback_cloud_last_sync_files", "Files the last cloud sync transferred.");
		sample(b, "stackback_cloud_last_sync_files", (double)st.last_sync.files);
	}
	double v;
	if (member_num(member(kept, "sync", json_type_object), "last_success", &v)) {
		head(b, "stackback_cloud_last_success_timestamp_seconds", "When the last successful cloud sync ended (Unix time).");
		sample(b, "stackback_cloud_last_success_timestamp_seconds", v);
	}
	head(b, "stackback_cloud_verified", "Whether rclone check found the cloud copy equal to the repository as it is now (1) or not (0).");
	sample(b, "stackback_cloud_verified", st.in_sync.state == SB_IN_SYNC_VERIFIED && !st.in_sync.repo_changed);
	sb_cloud_state_free(&st);
}

char *sb_metrics_text(const struct sb_config *cfg, const struct sb_selection *sel,
		      const struct sb_status_snapshot *snap)
{
	struct sb_status_snapshot local;
	if (!snap) {
		sb_status_snapshot_load(cfg, &local);
		snap = &local;
	}
	struct sb_buf b = {0};
	head(&b, "stackback_info", "The stackback version that renders these metrics.");
	labelled(&b, "stackback_info", "version", SB_VERSION, 1);
	struct json_object *kept = read_object(cfg, METRICS_STATE);
	render_stacks(&b, cfg, sel, kept);
	render_jobs(&b, snap);
	render_cloud(&b, cfg, kept);
	json_object_put(kept);
	return sb_buf_steal(&b);
}
