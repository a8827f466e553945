#include "stackback/status.h"

#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stackback/client.h"
#include "stackback/cloud.h"
#include "stackback/log.h"
#include "stackback/state.h"
#include "stackback/util.h"

/* Job reports and logs are bounded by what the engine writes; this only stops garbage. */
#define JOB_FILE_MAX (64u << 20)

void sb_status_job_from(struct sb_job *job, struct sb_status_job *out)
{
	pthread_mutex_lock(&job->mu);
	*out = (struct sb_status_job){
		.id = job->id,
		.kind = job->req.kind,
		.state = job->state,
		.progress = job->progress,
		.started_at = job->started_at,
		.finished_at = job->finished_at,
	};
	pthread_mutex_unlock(&job->mu);
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

void sb_status_persisted_jobs(const struct sb_config *cfg, int **ids, size_t *n)
{
	*ids = NULL;
	*n = 0;
	cleanup_free char *dir = xasprintf("%s/jobs", cfg->state_dir);
	DIR *d = opendir(dir);
	if (!d)
		return;
	size_t cap = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		long v;
		if (de->d_name[0] == '0' || sb_parse_long(de->d_name, 1, INT_MAX, &v) < 0)
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 64;
			*ids = xrealloc(*ids, cap * sizeof(**ids));
		}
		(*ids)[(*n)++] = (int)v;
	}
	closedir(d);
	if (*n)
		qsort(*ids, *n, sizeof(**ids), cmp_int);
}

struct sb_job *sb_status_load_job(const struct sb_config *cfg, int id)
{
	if (id <= 0)
		return NULL;
	cleanup_free char *report_path = xasprintf("%s/jobs/%d/report.json", cfg->state_dir, id);
	cleanup_free char *text = NULL;
	size_t len = 0;
	if (sb_read_file(report_path, JOB_FILE_MAX, &text, &len) < 0)
		return NULL;
	cleanup_free char *err = NULL;
	struct sb_job *job = sb_client_job_from_report(text, len, &err);
	if (!job) {
		sb_debug("job %d: ignoring '%s': %s", id, report_path, err);
		return NULL;
	}
	if (job->id != id) {
		sb_debug("job %d: ignoring '%s': it describes job %d", id, report_path, job->id);
		sb_job_free(job);
		return NULL;
	}
	cleanup_free char *log_path = xasprintf("%s/jobs/%d/log", cfg->state_dir, id);
	cleanup_free char *log = NULL;
	size_t log_len = 0;
	if (sb_read_file(log_path, JOB_FILE_MAX, &log, &log_len) == 0)
		sb_buf_append(&job->log, log, log_len);
	return job;
}

void sb_status_snapshot_load(const struct sb_config *cfg, struct sb_status_snapshot *snap)
{
	*snap = (struct sb_status_snapshot){0};
	snap->running = sb_lock_holder(cfg) != 0;
	cleanup_free int *ids = NULL;
	size_t n = 0;
	sb_status_persisted_jobs(cfg, &ids, &n);
	/* The newest readable one: a half-written directory is skipped. */
	for (size_t i = n; i-- > 0;) {
		struct sb_job *job = sb_status_load_job(cfg, ids[i]);
		if (!job)
			continue;
		sb_status_job_from(job, &snap->last);
		snap->has_last = true;
		sb_job_free(job);
		break;
	}
}

static struct json_object *time_json(double t)
{
	if (t <= 0)
		return NULL;
	char buf[32];
	sb_format_time_utc((time_t)t, buf, sizeof(buf));
	return json_object_new_string(buf);
}

static struct json_object *progress_json(const struct sb_job_progress *p)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "stack", json_object_new_string(p->stack));
	json_object_object_add(o, "phase", json_object_new_string(p->phase));
	json_object_object_add(o, "stack_index", json_object_new_int(p->stack_index));
	json_object_object_add(o, "stack_count", json_object_new_int(p->stack_count));
	/* One decimal is all a progress bar shows; it keeps the text stable. */
	json_object_object_add(o, "percent", json_object_new_double((double)(int64_t)(p->percent * 10 + 0.5) / 10));
	json_object_object_add(o, "bytes_done", json_object_new_uint64(p->bytes_done));
	json_object_object_add(o, "bytes_total", json_object_new_uint64(p->bytes_total));
	json_object_object_add(o, "files_done", json_object_new_uint64(p->files_done));
	json_object_object_add(o, "files_total", json_object_new_uint64(p->files_total));
	json_object_object_add(o, "eta_s", p->eta_s < 0 ? NULL : json_object_new_int64((int64_t)p->eta_s));
	return o;
}

/*
 * cloud.json is written by the sync and restore jobs; cloud.h reads it
 * (a job that died mid-way reads as failed) and words in_sync the way
 * cloud/in_sync does. Absent = never synced.
 */
static struct json_object *cloud_json(const struct sb_config *cfg)
{
	struct json_object *o = json_object_new_object();
	struct sb_cloud_state st;
	sb_cloud_state_read(cfg, &st);
	struct json_object *file = sb_state_read_json(cfg, "cloud.json");
	struct json_object *last_sync = NULL;
	if (file && json_object_is_type(file, json_type_object) &&
	    json_object_object_get_ex(file, "last_sync", &last_sync) &&
	    !json_object_is_type(last_sync, json_type_object))
		last_sync = NULL;
	json_object_object_add(o, "status", json_object_new_string(sb_cloud_status_name(st.status)));
	json_object_object_add(o, "last_sync", last_sync ? json_object_get(last_sync) : NULL);
	json_object_object_add(o, "reason", st.reason ? json_object_new_string(st.reason) : NULL);
	json_object_object_add(o, "remote", st.remote ? json_object_new_string(st.remote) : NULL);
	char *in_sync = sb_cloud_render_in_sync(&st);
	in_sync[strcspn(in_sync, "\n")] = '\0';
	json_object_object_add(o, "in_sync", json_object_new_string(in_sync));
	free(in_sync);
	json_object_put(file);
	sb_cloud_state_free(&st);
	return o;
}

struct json_object *sb_status_json(const struct sb_config *cfg, const struct sb_status_snapshot *snap)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "state", json_object_new_string(snap->running ? "running" : "idle"));
	struct json_object *job = NULL;
	if (snap->has_job) {
		job = json_object_new_object();
		json_object_object_add(job, "id", json_object_new_int(snap->job.id));
		json_object_object_add(job, "kind", json_object_new_string(sb_job_kind_name(snap->job.kind)));
		json_object_object_add(job, "state", json_object_new_string(sb_job_state_name(snap->job.state)));
		json_object_object_add(job, "progress", progress_json(&snap->job.progress));
	}
	json_object_object_add(o, "job", job);
	json_object_object_add(o, "queue", json_object_new_int(snap->queued));
	struct json_object *last = NULL;
	if (snap->has_last) {
		last = json_object_new_object();
		json_object_object_add(last, "id", json_object_new_int(snap->last.id));
		json_object_object_add(last, "kind", json_object_new_string(sb_job_kind_name(snap->last.kind)));
		json_object_object_add(last, "state", json_object_new_string(sb_job_state_name(snap->last.state)));
		json_object_object_add(last, "finished", time_json(snap->last.finished_at));
	}
	json_object_object_add(o, "last", last);
	json_object_object_add(o, "cloud", cloud_json(cfg));
	return o;
}

static void flatten(struct sb_buf *b, const char *prefix, struct json_object *v)
{
	if (json_object_is_type(v, json_type_object)) {
		json_object_object_foreach(v, key, child) {
			cleanup_free char *name = *prefix ? xasprintf("%s.%s", prefix, key) : xstrdup(key);
			flatten(b, name, child);
		}
		return;
	}
	if (!v)
		sb_buf_printf(b, "%s: none\n", prefix);
	else if (json_object_is_type(v, json_type_double))
		sb_buf_printf(b, "%s: %.1f\n", prefix, json_object_get_double(v));
	else
		sb_buf_printf(b, "%s: %s\n", prefix, json_object_get_string(v));
}

char *sb_status_text(struct json_object *status)
{
	struct sb_buf b = {0};
	flatten(&b, "", status);
	return sb_buf_steal(&b);
}

/* Borrowed members of a state file; wrong types read as absent. */
static const char *member_str(struct json_object *o, const char *key)
{
	struct json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static bool member_num(struct json_object *o, const char *key, double *out)
{
	struct json_object *v;
	if (!json_object_object_get_ex(o, key, &v) ||
	    !(json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int)))
		return false;
	*out = json_object_get_double(v);
	return true;
}

static struct json_object *read_last_backup(const struct sb_config *cfg, const char *name)
{
	/* The name becomes a path: only names the stack rule allows. */
	if (!sb_stack_name_valid(name))
		return NULL;
	cleanup_free char *rel = xasprintf("stacks/%s.json", name);
	struct json_object *o = sb_state_read_json(cfg, rel);
	if (o && !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

char *sb_status_last_backup_text(const struct sb_config *cfg, const char *name)
{
	struct json_object *o = read_last_backup(cfg, name);
	if (!o)
		return xstrdup("never\n");
	struct sb_buf b = {0};
	double started = 0, duration = 0, v;
	member_num(o, "started_at", &started);
	member_num(o, "duration_s", &duration);
	char when[32] = "unknown";
	if (started > 0)
		sb_format_time_utc((time_t)(started + duration), when, sizeof(when));
	const char *result = member_str(o, "result");
	const char *snap = member_str(o, "snapshot_id");
	sb_buf_printf(&b, "time: %s\nresult: %s\nsnapshot_id: %s\n", when, result ? result : "unknown",
		      snap ? snap : "none");
	const char *mode = member_str(o, "mode");
	if (mode)
		sb_buf_printf(&b, "mode: %s\n", mode);
	static const char *const seconds[] = {"duration_s", "downtime_s", "backup_s"};
	for (size_t i = 0; i < SB_ARRAY_SIZE(seconds); i++)
		if (member_num(o, seconds[i], &v))
			sb_buf_printf(&b, "%s: %.1f\n", seconds[i], v);
	static const char *const counts[] = {"bytes_added", "files_new", "files_changed", "files_total", "job"};
	for (size_t i = 0; i < SB_ARRAY_SIZE(counts); i++)
		if (member_num(o, counts[i], &v))
			sb_buf_printf(&b, "%s: %.0f\n", counts[i], v);
	const char *error = member_str(o, "error");
	if (error)
		sb_buf_printf(&b, "error: %s\n", error);
	json_object_put(o);
	return sb_buf_steal(&b);
}
