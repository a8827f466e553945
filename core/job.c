/*
 * The job engine's common part: names, trigger payloads, lifecycle,
 * progress, reports and their persistence. Each kind of job lives in its
 * own file (job-backup.c, job-cloud.c, ...) behind job-internal.h.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job-internal.h"
#include "stackback/metrics.h"
#include "stackback/notify.h"
#include "stackback/restic.h"
#include "stackback/stacks.h"
#include "stackback/state.h"
#include "stackback/util.h"

static const char *const kind_names[] = {
	[SB_JOB_BACKUP] = "backup",
	[SB_JOB_SYNC] = "sync",
	[SB_JOB_RESTORE] = "restore",
	[SB_JOB_CHECK] = "check",
	[SB_JOB_FORGET] = "forget",
	[SB_JOB_RESTORE_STACK] = "restore-stack",
};

static const char *const state_names[] = {
	[SB_JOB_QUEUED] = "queued",
	[SB_JOB_RUNNING] = "running",
	[SB_JOB_OK] = "ok",
	[SB_JOB_FAILED] = "failed",
	[SB_JOB_CANCELLED] = "cancelled",
};

static const char *const result_names[] = {
	[SB_STACK_OK] = "ok",
	[SB_STACK_FAILED] = "failed",
	[SB_STACK_SKIPPED] = "skipped",
	[SB_STACK_DRY_RUN] = "dry-run",
};

const char *sb_job_kind_name(enum sb_job_kind k)
{
	return kind_names[k];
}

int sb_job_kind_parse(const char *s, enum sb_job_kind *out)
{
	for (size_t i = 0; i < SB_ARRAY_SIZE(kind_names); i++) {
		if (strcmp(s, kind_names[i]) == 0) {
			*out = (enum sb_job_kind)i;
			return 0;
		}
	}
	return -1;
}

const char *sb_job_state_name(enum sb_job_state s)
{
	return state_names[s];
}

int sb_job_state_parse(const char *s, enum sb_job_state *out)
{
	for (size_t i = 0; i < SB_ARRAY_SIZE(state_names); i++) {
		if (strcmp(s, state_names[i]) == 0) {
			*out = (enum sb_job_state)i;
			return 0;
		}
	}
	return -1;
}

const char *sb_stack_result_name(enum sb_stack_result r)
{
	return result_names[r];
}

void sb_job_request_free(struct sb_job_request *r)
{
	sb_strv_free(&r->stacks);
	free(r->snapshot);
	free(r->target);
	*r = (struct sb_job_request){0};
}

char *sb_job_request_describe(const struct sb_job_request *r)
{
	struct sb_buf b = {0};
	for (size_t i = 0; i < r->stacks.n; i++)
		sb_buf_printf(&b, "%s%s", b.len ? " " : "", r->stacks.v[i]);
	if (r->snapshot)
		sb_buf_printf(&b, "%s%s", b.len ? " " : "", r->snapshot);
	if (r->kind == SB_JOB_BACKUP && r->stacks.n == 0)
		sb_buf_printf(&b, "%sall", b.len ? " " : "");
	if (r->target)
		sb_buf_printf(&b, "%sto=%s", b.len ? " " : "", r->target);
	if (r->force)
		sb_buf_printf(&b, "%sforce", b.len ? " " : "");
	if (r->read_data)
		sb_buf_printf(&b, "%sread-data", b.len ? " " : "");
	if (r->dry_run)
		sb_buf_printf(&b, "%sdry-run", b.len ? " " : "");
	return sb_buf_steal(&b);
}

/* The largest payload a trigger takes: 128 names of 128 bytes and change. */
#define TRIGGER_PAYLOAD_MAX 20000

static int parse_word(struct sb_job_request *req, const char *w, bool *saw_all, char **err)
{
	enum sb_job_kind k = req->kind;
	if (strcmp(w, "dry-run") == 0 && k != SB_JOB_CHECK) {
		req->dry_run = true;
		return 0;
	}
	if (strcmp(w, "1") == 0 || (strcmp(w, "all") == 0 && (k == SB_JOB_BACKUP || k == SB_JOB_FORGET))) {
		*saw_all = true;
		return 0;
	}
	if (strcmp(w, "force") == 0 && k == SB_JOB_RESTORE) {
		req->force = true;
		return 0;
	}
	if (strcmp(w, "read-data") == 0 && k == SB_JOB_CHECK) {
		req->read_data = true;
		return 0;
	}
	if (k == SB_JOB_BACKUP || k == SB_JOB_FORGET || (k == SB_JOB_RESTORE_STACK && req->stacks.n == 0)) {
		if (!sb_stack_name_valid(w)) {
			*err = xasprintf("'%.64s' is not a valid stack name or %s option", w, kind_names[k]);
			return -1;
		}
		if (!sb_strv_contains(&req->stacks, w))
			sb_strv_push(&req->stacks, w);
		return 0;
	}
	if (k == SB_JOB_RESTORE_STACK && !req->snapshot) {
		if (!sb_snapshot_ref_valid(w)) {
			*err = xasprintf("'%.64s' is not a snapshot reference (latest, an id, or a snapshots/ "
					 "name, optionally cloud:)", w);
			return -1;
		}
		req->snapshot = xstrdup(w);
		return 0;
	}
	*err = xasprintf("'%.64s' is not understood by the %s trigger", w, kind_names[k]);
	return -1;
}

static const char *const trigger_help[] = {
	[SB_JOB_BACKUP] = "1, all, stack names, dry-run",
	[SB_JOB_SYNC] = "1, dry-run",
	[SB_JOB_RESTORE] = "1, force, dry-run",
	[SB_JOB_CHECK] = "1, read-data",
	[SB_JOB_FORGET] = "1, all, stack names, dry-run",
	[SB_JOB_RESTORE_STACK] = "NAME SNAPSHOT, dry-run",
};

int sb_job_request_parse(enum sb_job_kind kind, const char *payload, size_t len,
			 struct sb_job_request *req, char **err)
{
	if (len > TRIGGER_PAYLOAD_MAX) {
		*err = xasprintf("%s trigger payload too long (%zu bytes)", kind_names[kind], len);
		return -1;
	}
	if (memchr(payload, '\0', len)) {
		*err = xasprintf("%s trigger payload contains a NUL byte", kind_names[kind]);
		return -1;
	}
	cleanup_free char *text = xstrndup(payload, len);
	struct sb_job_request r = {.kind = kind};
	bool saw_all = false;
	size_t words = 0;
	char *save = NULL;
	for (char *w = strtok_r(text, " \t\r\n", &save); w; w = strtok_r(NULL, " \t\r\n", &save)) {
		words++;
		if (parse_word(&r, w, &saw_all, err) < 0)
			goto fail;
	}
	if (words == 0) {
		*err = xasprintf("empty %s trigger (expected: %s)", kind_names[kind], trigger_help[kind]);
		goto fail;
	}
	if (saw_all && r.stacks.n > 0) {
		*err = xasprintf("%s trigger: give either '1'/'all' or stack names, not both", kind_names[kind]);
		goto fail;
	}
	if (kind == SB_JOB_RESTORE_STACK && (r.stacks.n != 1 || !r.snapshot)) {
		*err = xstrdup("restore-stack needs a stack name and a snapshot");
		goto fail;
	}
	/* SPEC §7: "dry-run" alone is a go word too (a dry run of everything). */
	if (r.dry_run && kind != SB_JOB_RESTORE_STACK)
		saw_all = saw_all || r.stacks.n == 0;
	if (!saw_all && r.stacks.n == 0 && kind != SB_JOB_RESTORE_STACK) {
		/* "force" alone: the job still needs its go word. */
		*err = xasprintf("%s trigger needs '1' (expected: %s)", kind_names[kind], trigger_help[kind]);
		goto fail;
	}
	*req = r;
	return 0;
fail:
	sb_job_request_free(&r);
	return -1;
}

struct sb_job *sb_job_new(int id, struct sb_job_request *req)
{
	struct sb_job *job = xcalloc(1, sizeof(*job));
	job->id = id;
	job->req = *req;
	*req = (struct sb_job_request){0};
	atomic_init(&job->cancel, false);
	pthread_mutex_init(&job->mu, NULL);
	job->state = SB_JOB_QUEUED;
	job->queued_at = sb_now_wall();
	job->progress.eta_s = -1;
	return job;
}

static void report_free(struct sb_stack_report *r)
{
	free(r->name);
	free(r->error);
	free(r->snapshot_id);
	free(r->state_before);
	free(r->mode);
}

void sb_job_free(struct sb_job *job)
{
	if (!job)
		return;
	sb_job_request_free(&job->req);
	for (size_t i = 0; i < job->n_reports; i++)
		report_free(&job->reports[i]);
	free(job->reports);
	sb_buf_free(&job->log);
	free(job->error);
	free(job->summary);
	pthread_mutex_destroy(&job->mu);
	free(job);
}

static void notify(struct sb_job *job)
{
	if (job->notify)
		job->notify(job->notify_userdata, job);
}

void sb_job_set_phase(struct sb_job *job, const char *stack, const char *phase, int index, int count)
{
	pthread_mutex_lock(&job->mu);
	struct sb_job_progress *p = &job->progress;
	*p = (struct sb_job_progress){.stack_index = index, .stack_count = count, .eta_s = -1};
	snprintf(p->stack, sizeof(p->stack), "%s", stack ? stack : "");
	snprintf(p->phase, sizeof(p->phase), "%s", phase);
	pthread_mutex_unlock(&job->mu);
	notify(job);
}

void sb_job_set_progress(struct sb_job *job, double percent, uint64_t bytes_done, uint64_t bytes_total,
			 uint64_t files_done, uint64_t files_total, double eta_s)
{
	pthread_mutex_lock(&job->mu);
	struct sb_job_progress *p = &job->progress;
	p->percent = percent < 0 ? 0 : percent > 100 ? 100 : percent;
	p->bytes_done = bytes_done;
	p->bytes_total = bytes_total;
	p->files_done = files_done;
	p->files_total = files_total;
	p->eta_s = eta_s;
	pthread_mutex_unlock(&job->mu);
	notify(job);
}

void sb_job_fail(struct sb_job *job, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	sb_error("%s", msg);
	char *masked = sb_log_mask(msg);
	free(msg);
	pthread_mutex_lock(&job->mu);
	if (!job->error) {
		job->error = masked;
		masked = NULL;
	}
	pthread_mutex_unlock(&job->mu);
	free(masked);
}

void sb_job_set_summary(struct sb_job *job, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&job->mu);
	free(job->summary);
	job->summary = msg;
	pthread_mutex_unlock(&job->mu);
}

size_t sb_job_add_report(struct sb_job *job, const char *name)
{
	pthread_mutex_lock(&job->mu);
	job->reports = xrealloc(job->reports, (job->n_reports + 1) * sizeof(*job->reports));
	size_t i = job->n_reports++;
	job->reports[i] = (struct sb_stack_report){
		.name = xstrdup(name),
		.result = SB_STACK_FAILED,
		.started_at = sb_now_wall(),
	};
	pthread_mutex_unlock(&job->mu);
	return i;
}

void sb_job_report_update(struct sb_job *job, size_t index,
			  void (*fn)(struct sb_stack_report *r, void *userdata), void *userdata)
{
	pthread_mutex_lock(&job->mu);
	fn(&job->reports[index], userdata);
	pthread_mutex_unlock(&job->mu);
	notify(job);
}

void sb_job_set_transfer(struct sb_job *job, uint64_t bytes, uint64_t files, double seconds)
{
	pthread_mutex_lock(&job->mu);
	job->transfer_bytes = bytes;
	job->transfer_files = files;
	job->transfer_s = seconds;
	pthread_mutex_unlock(&job->mu);
}

static void job_log_observer(void *userdata, enum sb_log_level level, const char *line)
{
	struct sb_job *job = userdata;
	char stamp[32];
	sb_format_time_utc(time(NULL), stamp, sizeof(stamp));
	pthread_mutex_lock(&job->mu);
	sb_buf_printf(&job->log, "%s %s: %s\n", stamp, sb_log_level_name(level), line);
	pthread_mutex_unlock(&job->mu);
}

/* Caller holds mu. */
static struct json_object *report_to_json_locked(const struct sb_stack_report *r)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "stack", json_object_new_string(r->name));
	json_object_object_add(o, "result", json_object_new_string(result_names[r->result]));
	json_object_object_add(o, "error", r->error ? json_object_new_string(r->error) : NULL);
	json_object_object_add(o, "snapshot_id", r->snapshot_id ? json_object_new_string(r->snapshot_id) : NULL);
	json_object_object_add(o, "state_before", r->state_before ? json_object_new_string(r->state_before) : NULL);
	json_object_object_add(o, "was_running", json_object_new_boolean(r->was_running));
	json_object_object_add(o, "restarted", json_object_new_boolean(r->restarted));
	json_object_object_add(o, "started_at", json_object_new_double(r->started_at));
	json_object_object_add(o, "duration_s", json_object_new_double(r->duration_s));
	json_object_object_add(o, "downtime_s", json_object_new_double(r->downtime_s));
	json_object_object_add(o, "backup_s", json_object_new_double(r->backup_s));
	json_object_object_add(o, "bytes_added", json_object_new_uint64(r->bytes_added));
	json_object_object_add(o, "files_new", json_object_new_uint64(r->files_new));
	json_object_object_add(o, "files_changed", json_object_new_uint64(r->files_changed));
	json_object_object_add(o, "files_total", json_object_new_uint64(r->files_total));
	json_object_object_add(o, "mode", r->mode ? json_object_new_string(r->mode) : NULL);
	return o;
}

static struct json_object *job_to_json(struct sb_job *job)
{
	struct json_object *o = json_object_new_object();
	cleanup_free char *words = sb_job_request_describe(&job->req);
	pthread_mutex_lock(&job->mu);
	json_object_object_add(o, "id", json_object_new_int(job->id));
	json_object_object_add(o, "kind", json_object_new_string(kind_names[job->req.kind]));
	json_object_object_add(o, "request", json_object_new_string(words));
	json_object_object_add(o, "dry_run", json_object_new_boolean(job->req.dry_run));
	json_object_object_add(o, "state", json_object_new_string(state_names[job->state]));
	json_object_object_add(o, "queued_at", json_object_new_double(job->queued_at));
	json_object_object_add(o, "started_at", json_object_new_double(job->started_at));
	json_object_object_add(o, "finished_at", json_object_new_double(job->finished_at));
	json_object_object_add(o, "error", job->error ? json_object_new_string(job->error) : NULL);
	json_object_object_add(o, "summary", job->summary ? json_object_new_string(job->summary) : NULL);
	if (job->req.kind == SB_JOB_SYNC || job->req.kind == SB_JOB_RESTORE) {
		json_object_object_add(o, "transfer_bytes", json_object_new_uint64(job->transfer_bytes));
		json_object_object_add(o, "transfer_files", json_object_new_uint64(job->transfer_files));
		json_object_object_add(o, "transfer_s", json_object_new_double(job->transfer_s));
	}
	struct json_object *stacks = json_object_new_array();
	for (size_t i = 0; i < job->n_reports; i++)
		json_object_array_add(stacks, report_to_json_locked(&job->reports[i]));
	pthread_mutex_unlock(&job->mu);
	json_object_object_add(o, "stacks", stacks);
	return o;
}

char *sb_job_report_json(struct sb_job *job)
{
	struct json_object *o = job_to_json(job);
	char *s = xasprintf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return s;
}

char *sb_job_report_text(struct sb_job *job)
{
	struct sb_buf b = {0};
	pthread_mutex_lock(&job->mu);
	sb_buf_printf(&b, "job %d %s%s: %s\n", job->id, kind_names[job->req.kind],
		      job->req.dry_run ? " (dry run)" : "", state_names[job->state]);
	for (size_t i = 0; i < job->n_reports; i++) {
		const struct sb_stack_report *r = &job->reports[i];
		char dur[32], down[32], read[32], added[32];
		sb_format_duration(r->duration_s, dur, sizeof(dur));
		sb_format_duration(r->downtime_s, down, sizeof(down));
		sb_format_duration(r->backup_s, read, sizeof(read));
		sb_format_bytes(r->bytes_added, added, sizeof(added));
		sb_buf_printf(&b, "  %-24s %-8s", r->name, result_names[r->result]);
		if (r->result == SB_STACK_OK && r->snapshot_id)
			sb_buf_printf(&b, " snapshot %.8s, %s, mode %s, downtime %s, backup %s, added %s",
				      r->snapshot_id, dur, r->mode ? r->mode : "stop", down, read, added);
		if (r->error)
			sb_buf_printf(&b, " %s", r->error);
		sb_buf_puts(&b, "\n");
	}
	if (job->summary)
		sb_buf_printf(&b, "%s\n", job->summary);
	if (job->error && job->n_reports == 0)
		sb_buf_printf(&b, "error: %s\n", job->error);
	pthread_mutex_unlock(&job->mu);
	return sb_buf_steal(&b);
}

char *sb_job_progress_text(struct sb_job *job)
{
	pthread_mutex_lock(&job->mu);
	const struct sb_job_progress *p = &job->progress;
	char *s = xasprintf("stack: %s\nphase: %s\nstack_index: %d\nstack_count: %d\npercent: %.1f\n"
			    "bytes_done: %llu\nbytes_total: %llu\nfiles_done: %llu\nfiles_total: %llu\n"
			    "eta_s: %.0f\n",
			    p->stack, p->phase, p->stack_index, p->stack_count, p->percent,
			    (unsigned long long)p->bytes_done, (unsigned long long)p->bytes_total,
			    (unsigned long long)p->files_done, (unsigned long long)p->files_total,
			    p->eta_s);
	pthread_mutex_unlock(&job->mu);
	return s;
}

/* Per-stack last backup, read by list, status, metrics and the TUI. */
static void persist_stack_states(const struct sb_config *cfg, struct sb_job *job)
{
	pthread_mutex_lock(&job->mu);
	for (size_t i = 0; i < job->n_reports; i++) {
		struct json_object *o = report_to_json_locked(&job->reports[i]);
		json_object_object_add(o, "job", json_object_new_int(job->id));
		cleanup_free char *rel = xasprintf("stacks/%s.json", job->reports[i].name);
		if (sb_state_write_json(cfg, rel, o) < 0)
			sb_warn("cannot record the last backup of stack '%s'", job->reports[i].name);
		json_object_put(o);
	}
	pthread_mutex_unlock(&job->mu);
}

static void persist(const struct sb_config *cfg, struct sb_job *job)
{
	cleanup_free char *dir = xasprintf("%s/jobs/%d", cfg->state_dir, job->id);
	int rc = sb_mkdir_p(dir, 0700);
	if (rc < 0) {
		sb_warn("cannot keep the report of job %d in '%s': %s", job->id, dir, strerror(-rc));
		return;
	}
	cleanup_free char *report = sb_job_report_json(job);
	cleanup_free char *report_path = xasprintf("%s/report.json", dir);
	cleanup_free char *log_path = xasprintf("%s/log", dir);
	cleanup_free char *state_path = xasprintf("%s/state", dir);
	pthread_mutex_lock(&job->mu);
	cleanup_free char *log = xstrdup(job->log.data ? job->log.data : "");
	cleanup_free char *state = xasprintf("%s\n", state_names[job->state]);
	pthread_mutex_unlock(&job->mu);
	if (sb_write_file_atomic(report_path, report, strlen(report), 0600) < 0 ||
	    sb_write_file_atomic(log_path, log, strlen(log), 0600) < 0 ||
	    sb_write_file_atomic(state_path, state, strlen(state), 0600) < 0)
		sb_warn("cannot write the report of job %d in '%s'", job->id, dir);
	if (job->req.kind == SB_JOB_BACKUP)
		persist_stack_states(cfg, job);
}

typedef int (*kind_runner)(const struct sb_config *cfg, struct sb_job *job);

static const kind_runner runners[] = {
	[SB_JOB_BACKUP] = sb_job_run_backup,
	[SB_JOB_SYNC] = sb_job_run_sync,
	[SB_JOB_RESTORE] = sb_job_run_restore,
	[SB_JOB_CHECK] = sb_job_run_check,
	[SB_JOB_FORGET] = sb_job_run_forget,
	[SB_JOB_RESTORE_STACK] = sb_job_run_restore_stack,
};

enum sb_job_state sb_job_execute(const struct sb_config *cfg, struct sb_job *job)
{
	sb_log_set_thread_observer(job_log_observer, job);
	pthread_mutex_lock(&job->mu);
	job->state = SB_JOB_RUNNING;
	job->started_at = sb_now_wall();
	pthread_mutex_unlock(&job->mu);
	notify(job);

	cleanup_free char *words = sb_job_request_describe(&job->req);
	sb_info("job %d: %s%s%s started", job->id, kind_names[job->req.kind], *words ? " " : "", words);
	sb_notify_job_start(cfg, job);
	struct sb_metrics_count *count = sb_metrics_count_start(cfg, job);
	int rc = runners[job->req.kind](cfg, job);

	bool cancelled = atomic_load(&job->cancel);
	pthread_mutex_lock(&job->mu);
	job->state = cancelled ? SB_JOB_CANCELLED : rc == 0 ? SB_JOB_OK : SB_JOB_FAILED;
	job->finished_at = sb_now_wall();
	enum sb_job_state final = job->state;
	pthread_mutex_unlock(&job->mu);
	sb_info("job %d: %s %s", job->id, kind_names[job->req.kind], state_names[final]);

	/* A dry run leaves no trace in STATE_DIR; id 0 is a job nobody can look up. */
	if (job->id > 0 && !job->req.dry_run)
		persist(cfg, job);
	sb_log_set_thread_observer(NULL, NULL);
	/* After the report is persisted: neither may change what it says. */
	sb_metrics_record_job(cfg, job, count);
	sb_notify_job_end(cfg, job);
	notify(job);
	return final;
}
