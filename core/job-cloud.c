/*
 * Stage 2 (sync) and Stage 3 (restore).
 *
 * sync:    remote reachable? → restic check of the local repository (a
 *          failure stops here) → rclone sync REPO REMOTE:PATH → rclone
 *          check (by hash where the remote has one, else by size).
 * restore: target allowed? (never the local repository, see
 *          sb_cloud_restore_target) → remote reachable? → rclone sync
 *          REMOTE:PATH TARGET → restic check of the copy → its snapshots
 *          counted per stack.
 *
 * Neither writes to the local repository: a sync only reads it, a
 * restore only writes under its target. Both record what happened in
 * STATE_DIR/cloud.json (cloud.h), which the front ends render; dry runs
 * leave it alone. The caller holds the job lock, so no backup or prune
 * changes the repository while it is uploaded.
 *
 * Phase timings go to the log ("sync: ... in 1.23s") and the transfer's
 * to the job report (transfer_s), where bench/cloud-sync.sh reads them.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "job-internal.h"
#include "stackback/cloud.h"
#include "stackback/rclone.h"
#include "stackback/restic.h"
#include "stackback/state.h"

/* cloud.json is rewritten (temp + fsync + rename) at most this often for progress. */
#define PROGRESS_WRITE_INTERVAL_S 1.0

struct cloud_run {
	const struct sb_config *cfg;
	struct sb_job *job;
	const char *remote;          /* REMOTE:PATH */
	struct json_object *doc;     /* cloud.json as it will be written (owned) */
	bool persist;                /* false for dry runs: doc is never written */
	const char *phase;           /* "upload" or "download" while transferring */
	double last_progress_write;  /* monotonic */
	double transfer_s;           /* the transfer phase's duration */
	char *error;                 /* the first failure line (masked), for cloud.json */
};

static void cloud_save(struct cloud_run *run)
{
	if (!run->persist)
		return;
	int rc = sb_state_write_json(run->cfg, "cloud.json", run->doc);
	if (rc < 0)
		sb_warn("cannot record the cloud state in '%s/cloud.json': %s", run->cfg->state_dir,
			strerror(-rc));
}

static void doc_set_str(struct json_object *o, const char *key, const char *value)
{
	if (value)
		json_object_object_add(o, key, json_object_new_string(value));
	else
		json_object_object_del(o, key);
}

static void cloud_open(struct cloud_run *run, enum sb_cloud_status status, const char *step)
{
	run->doc = sb_state_read_json(run->cfg, "cloud.json");
	if (run->doc && !json_object_is_type(run->doc, json_type_object)) {
		json_object_put(run->doc);
		run->doc = NULL;
	}
	if (!run->doc)
		run->doc = json_object_new_object();
	doc_set_str(run->doc, "status", sb_cloud_status_name(status));
	doc_set_str(run->doc, "step", step);
	doc_set_str(run->doc, "remote", run->remote);
	doc_set_str(run->doc, "reason", NULL);
	json_object_object_del(run->doc, "progress");
	json_object_object_add(run->doc, "pid", json_object_new_int64(getpid()));
	if (status == SB_CLOUD_SYNCING) {
		/* From the first byte uploaded on, the copy is neither the old one nor the new one. */
		struct json_object *in_sync = json_object_new_object();
		doc_set_str(in_sync, "state", sb_cloud_in_sync_name(SB_IN_SYNC_NOT_VERIFIED));
		json_object_object_add(run->doc, "in_sync", in_sync);
	}
	cloud_save(run);
}

static void cloud_step(struct cloud_run *run, const char *step)
{
	doc_set_str(run->doc, "step", step);
	cloud_save(run);
}

/* Ends the job's entry: ok or failed with the reason; no pid, step or progress. */
static void cloud_close(struct cloud_run *run, int rc)
{
	doc_set_str(run->doc, "status", sb_cloud_status_name(rc == 0 ? SB_CLOUD_OK : SB_CLOUD_FAILED));
	doc_set_str(run->doc, "reason", rc == 0 ? NULL : run->error ? run->error : "failed");
	json_object_object_del(run->doc, "step");
	json_object_object_del(run->doc, "pid");
	json_object_object_del(run->doc, "progress");
	cloud_save(run);
	json_object_put(run->doc);
	free(run->error);
}

static void run_fail(struct cloud_run *run, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void run_fail(struct cloud_run *run, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cleanup_free char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	sb_job_fail(run->job, "%s", msg);
	if (!run->error)
		run->error = sb_log_mask(msg);
}

static void on_transfer(void *userdata, const struct sb_rclone_progress *p)
{
	struct cloud_run *run = userdata;
	sb_job_set_progress(run->job, p->percent, p->bytes_done, p->bytes_total, p->files_done,
			    p->files_total, p->eta_s);
	if (!run->persist)
		return;
	double now = sb_now_monotonic();
	if (now - run->last_progress_write < PROGRESS_WRITE_INTERVAL_S)
		return;
	run->last_progress_write = now;
	struct json_object *o = json_object_new_object();
	doc_set_str(o, "phase", run->phase);
	json_object_object_add(o, "percent", json_object_new_double(p->percent));
	json_object_object_add(o, "bytes_done", json_object_new_uint64(p->bytes_done));
	json_object_object_add(o, "bytes_total", json_object_new_uint64(p->bytes_total));
	json_object_object_add(o, "files_done", json_object_new_uint64(p->files_done));
	json_object_object_add(o, "files_total", json_object_new_uint64(p->files_total));
	json_object_object_add(o, "eta_s", json_object_new_double(p->eta_s));
	json_object_object_add(o, "speed", json_object_new_double(p->speed));
	json_object_object_add(run->doc, "progress", o);
	cloud_save(run);
}

/* rclone sync src → dst as the transfer phase; timings into the job and the log. */
static int transfer(struct cloud_run *run, const char *phase, const char *src, const char *dst,
		    struct sb_rclone_result *res, char **err)
{
	struct sb_job *job = run->job;
	run->phase = phase;
	sb_job_set_phase(job, NULL, phase, 0, 0);
	double t0 = sb_now_monotonic();
	int rc = sb_rclone_sync(run->cfg, src, dst, job->req.dry_run, &job->cancel, on_transfer, run,
				res, err);
	double dt = sb_now_monotonic() - t0;
	run->transfer_s = dt;
	json_object_object_del(run->doc, "progress");
	sb_job_set_transfer(job, res->bytes, res->files, dt);
	if (rc == 0) {
		char bytes[32];
		sb_format_bytes(res->bytes, bytes, sizeof(bytes));
		sb_info("%s: transfer %s'%s' → '%s' finished in %.2fs: %s in %llu files",
			sb_job_kind_name(job->req.kind), job->req.dry_run ? "(dry run) " : "", src,
			dst, dt, bytes, (unsigned long long)res->files);
	}
	return rc;
}

static void record_in_sync(struct cloud_run *run, int rc, const struct sb_rclone_check *chk)
{
	enum sb_cloud_in_sync state = rc == 0 ? SB_IN_SYNC_VERIFIED
				     : rc == 1 ? SB_IN_SYNC_DIFFERS
						 : SB_IN_SYNC_NOT_VERIFIED;
	struct json_object *o = json_object_new_object();
	doc_set_str(o, "state", sb_cloud_in_sync_name(state));
	if (rc >= 0) {
		cleanup_free char *stamp = sb_cloud_repo_stamp(run->cfg->restic_repository);
		json_object_object_add(o, "by_hash", json_object_new_boolean(chk->by_hash));
		json_object_object_add(o, "differences", json_object_new_uint64(chk->differences));
		json_object_object_add(o, "missing_remote", json_object_new_uint64(chk->missing_on_dst));
		json_object_object_add(o, "missing_local", json_object_new_uint64(chk->missing_on_src));
		json_object_object_add(o, "matched", json_object_new_uint64(chk->matched));
		json_object_object_add(o, "time", json_object_new_double(sb_now_wall()));
		doc_set_str(o, "repo_stamp", stamp);
	}
	json_object_object_add(run->doc, "in_sync", o);
}

static int open_repository(struct cloud_run *run, struct sb_restic *r, const char *repository,
			   const char *what)
{
	cleanup_free char *err = NULL;
	if (sb_restic_open(r, run->cfg, repository, &err) < 0) {
		run_fail(run, "%s '%s' failed: cannot open %s '%s': %s",
			 run->job->req.kind == SB_JOB_SYNC ? "sync to" : "restore from", run->remote,
			 what, repository, err);
		return -1;
	}
	r->cancel = &run->job->cancel;
	return 0;
}

/*
 * Reads the remote's restic config file (at most 64 KiB) through a temporary
 * directory in STATE_DIR. Returns 1 with *out (caller frees), 0 if the
 * remote has none, -1 after run_fail().
 */
static int fetch_remote_config(struct cloud_run *run, const char *verb, char **out, size_t *len)
{
	const struct sb_config *cfg = run->cfg;
	cleanup_free char *tmp = xasprintf("%s/remote-config.XXXXXX", cfg->state_dir);
	if (!mkdtemp(tmp)) {
		run_fail(run, "%s '%s' failed: cannot create a temporary directory in '%s': %s", verb,
			 run->remote, cfg->state_dir, strerror(errno));
		return -1;
	}
	cleanup_free char *fetched = xasprintf("%s/config", tmp);
	cleanup_free char *remote_config = xasprintf("%s/config", run->remote);
	cleanup_free char *err = NULL;
	int rc = sb_rclone_fetch(cfg, remote_config, fetched, &err);
	if (rc < 0) {
		run_fail(run, "%s '%s' failed: cannot read the remote's repository config: %s", verb,
			 run->remote, err);
	} else if (rc == 1) {
		int rrc = sb_read_file(fetched, 1 << 16, out, len);
		if (rrc < 0) {
			run_fail(run, "%s '%s' failed: cannot read the remote's repository config: %s", verb,
				 run->remote, strerror(-rrc));
			rc = -1;
		}
	}
	sb_rm_rf(tmp);
	return rc;
}

/*
 * rclone sync makes the remote equal to the local repository, deleting
 * what the local one lacks. If the remote holds another repository (a
 * fresh `init` on a rebuilt server, a wrong RESTIC_REPOSITORY), that
 * would wipe the only copy of its snapshots. A restic repository never
 * rewrites its config file and two never share one (random id, nonce),
 * so equal bytes mean the same repository. Returns 0 if the remote is
 * empty or the same repository, -1 after run_fail().
 */
static int same_repository(struct cloud_run *run, const char *repo)
{
	cleanup_free char *theirs = NULL, *ours = NULL;
	size_t theirs_len = 0, ours_len = 0;
	int rc = fetch_remote_config(run, "sync to", &theirs, &theirs_len);
	if (rc <= 0)
		return rc;
	cleanup_free char *local_config = xasprintf("%s/config", repo);
	int rrc = sb_read_file(local_config, 1 << 16, &ours, &ours_len);
	if (rrc < 0) {
		run_fail(run, "sync to '%s' failed: cannot read '%s': %s", run->remote, local_config,
			 strerror(-rrc));
		return -1;
	}
	if (theirs_len != ours_len || memcmp(theirs, ours, ours_len) != 0) {
		run_fail(run, "sync to '%s' refused: it holds a different restic repository than '%s' "
			      "(their config files differ) and a sync would delete its snapshots; "
			      "restore it first ('stackback restore'), point RCLONE_PATH elsewhere, "
			      "or delete it ('rclone purge %s') if it is not wanted",
			 run->remote, repo, run->remote);
		return -1;
	}
	return 0;
}

static int sync_steps(struct cloud_run *run, struct sb_rclone_result *res)
{
	const struct sb_config *cfg = run->cfg;
	struct sb_job *job = run->job;
	const char *repo = cfg->restic_repository;
	cleanup_free char *err = NULL;

	struct sb_restic r = {0};
	if (open_repository(run, &r, repo, "the restic repository") < 0)
		return -1;
	int rc = -1;
	if (!sb_restic_repo_exists(&r)) {
		run_fail(run, "sync to '%s' failed: no restic repository at '%s' (run 'stackback init' or a backup first)",
			 run->remote, repo);
		goto out;
	}

	sb_job_set_phase(job, NULL, "connect", 0, 0);
	if (sb_rclone_reachable(cfg, &err) < 0) {
		run_fail(run, "sync to '%s' failed: %s", run->remote, err);
		goto out;
	}

	if (same_repository(run, repo) < 0)
		goto out;

	sb_job_set_phase(job, NULL, "check", 0, 0);
	double t0 = sb_now_monotonic();
	if (sb_restic_check(&r, false, &err) < 0) {
		run_fail(run, "sync to '%s' stopped: restic check of repository '%s' failed: %s",
			 run->remote, repo, err);
		goto out;
	}
	sb_info("sync: restic check of '%s' passed in %.2fs", repo, sb_now_monotonic() - t0);

	cloud_step(run, job->req.dry_run ? "comparing" : "uploading");
	free(err);
	err = NULL;
	if (transfer(run, "upload", repo, run->remote, res, &err) < 0) {
		if (atomic_load(&job->cancel))
			run_fail(run, "sync to '%s' cancelled; the local repository is untouched",
				 run->remote);
		else
			run_fail(run, "sync to '%s' failed: %s; the local repository is untouched",
				 run->remote, err);
		goto out;
	}
	char bytes[32];
	sb_format_bytes(res->bytes, bytes, sizeof(bytes));
	if (job->req.dry_run) {
		sb_job_set_summary(job, "dry run: a sync to '%s' would transfer %s in %llu files",
				   run->remote, bytes, (unsigned long long)res->files);
		rc = 0;
		goto out;
	}

	cloud_step(run, "verifying the copy");
	sb_job_set_phase(job, NULL, "verify", 0, 0);
	struct sb_rclone_check chk = {0};
	t0 = sb_now_monotonic();
	free(err);
	err = NULL;
	int crc = sb_rclone_check(cfg, repo, run->remote, &job->cancel, &chk, &err);
	record_in_sync(run, crc, &chk);
	const char *by = chk.by_hash ? "hash" : "size (the remote has no common hash)";
	if (crc < 0) {
		run_fail(run, "sync to '%s' failed: rclone check could not compare the copy: %s",
			 run->remote, err);
		goto out;
	}
	if (crc == 1) {
		run_fail(run, "sync to '%s' failed: the copy differs from the local repository: "
			      "%llu differ, %llu missing on the remote, %llu missing locally (by %s)",
			 run->remote, (unsigned long long)chk.differences,
			 (unsigned long long)chk.missing_on_dst, (unsigned long long)chk.missing_on_src,
			 by);
		goto out;
	}
	sb_info("sync: rclone check by %s passed in %.2fs: %llu files match", by,
		sb_now_monotonic() - t0, (unsigned long long)chk.matched);
	char dur[32];
	sb_format_duration(run->transfer_s, dur, sizeof(dur));
	sb_job_set_summary(job, "synced '%s' to '%s': %s in %llu files transferred in %s, %llu files verified by %s",
			   repo, run->remote, bytes, (unsigned long long)res->files, dur,
			   (unsigned long long)chk.matched, chk.by_hash ? "hash" : "size");
	rc = 0;
out:
	sb_restic_close(&r);
	return rc;
}

int sb_job_run_sync(const struct sb_config *cfg, struct sb_job *job)
{
	if (!cfg->rclone_remote || !*cfg->rclone_remote) {
		sb_job_fail(job, "sync failed: RCLONE_REMOTE is not set in the configuration ([cloud_sync])");
		return -1;
	}
	cleanup_free char *remote = sb_rclone_remote_spec(cfg);
	struct cloud_run run = {
		.cfg = cfg,
		.job = job,
		.remote = remote,
		.persist = !job->req.dry_run,
	};
	double started = sb_now_wall();
	cloud_open(&run, SB_CLOUD_SYNCING, "checking the local repository");
	struct sb_rclone_result res = {0};
	int rc = sync_steps(&run, &res);

	struct json_object *last = json_object_new_object();
	json_object_object_add(last, "time", json_object_new_double(started));
	doc_set_str(last, "result", rc == 0 ? "ok" : "failed");
	json_object_object_add(last, "bytes", json_object_new_uint64(res.bytes));
	json_object_object_add(last, "files", json_object_new_uint64(res.files));
	json_object_object_add(last, "duration", json_object_new_double(sb_now_wall() - started));
	doc_set_str(last, "remote", remote);
	doc_set_str(last, "error", rc == 0 ? NULL : run.error);
	json_object_object_add(run.doc, "last_sync", last);
	cloud_close(&run, rc);
	return rc;
}

static int compare_counts(const void *a, const void *b)
{
	const struct sb_cloud_stack_count *x = a, *y = b;
	return strcmp(x->stack, y->stack);
}

/* Snapshots per stack tag of list, sorted by stack name; *n set. Caller frees names and array. */
static struct sb_cloud_stack_count *count_stacks(const struct sb_snapshot_list *list, size_t *n)
{
	struct sb_cloud_stack_count *v = xcalloc(list->n, sizeof(*v));
	*n = 0;
	for (size_t i = 0; i < list->n; i++) {
		const char *stack = list->v[i].stack ? list->v[i].stack : "(untagged)";
		size_t j = 0;
		while (j < *n && strcmp(v[j].stack, stack) != 0)
			j++;
		if (j == *n)
			v[(*n)++].stack = xstrdup(stack);
		v[j].snapshots++;
	}
	qsort(v, *n, sizeof(*v), compare_counts);
	return v;
}

static int restore_steps(struct cloud_run *run, const char *target, struct sb_rclone_result *res,
			 struct json_object *counts)
{
	const struct sb_config *cfg = run->cfg;
	struct sb_job *job = run->job;
	cleanup_free char *err = NULL;

	sb_job_set_phase(job, NULL, "connect", 0, 0);
	if (sb_rclone_reachable(cfg, &err) < 0) {
		run_fail(run, "restore from '%s' failed: %s", run->remote, err);
		return -1;
	}
	/* Before anything is written: a wrong RCLONE_PATH is said as such, not as a failed check. */
	cleanup_free char *config = NULL;
	size_t config_len = 0;
	int frc = fetch_remote_config(run, "restore from", &config, &config_len);
	if (frc < 0)
		return -1;
	if (frc == 0) {
		run_fail(run, "restore from '%s' failed: the remote holds no restic repository there "
			      "(no 'config' file; check RCLONE_REMOTE and RCLONE_PATH)",
			 run->remote);
		return -1;
	}
	if (!job->req.dry_run) {
		int mrc = sb_mkdir_p(target, 0700);
		if (mrc < 0) {
			run_fail(run, "restore from '%s' failed: cannot create '%s': %s", run->remote,
				 target, strerror(-mrc));
			return -1;
		}
	}

	cloud_step(run, job->req.dry_run ? "comparing" : "downloading");
	free(err);
	err = NULL;
	if (transfer(run, "download", run->remote, target, res, &err) < 0) {
		if (atomic_load(&job->cancel))
			run_fail(run, "restore from '%s' cancelled; '%s' holds a partial copy",
				 run->remote, target);
		else
			run_fail(run, "restore from '%s' failed: %s", run->remote, err);
		return -1;
	}
	char bytes[32];
	sb_format_bytes(res->bytes, bytes, sizeof(bytes));
	if (job->req.dry_run) {
		sb_job_set_summary(job, "dry run: a restore from '%s' to '%s' would download %s in %llu files",
				   run->remote, target, bytes, (unsigned long long)res->files);
		return 0;
	}

	cloud_step(run, "checking the restored copy");
	sb_job_set_phase(job, NULL, "check", 0, 0);
	struct sb_restic r = {0};
	if (open_repository(run, &r, target, "the restored copy") < 0)
		return -1;
	int rc = -1;
	double t0 = sb_now_monotonic();
	free(err);
	err = NULL;
	if (sb_restic_check(&r, false, &err) < 0) {
		run_fail(run, "restore from '%s' failed: restic check of the restored copy '%s' failed: %s",
			 run->remote, target, err);
		goto out;
	}
	sb_info("restore: restic check of '%s' passed in %.2fs", target, sb_now_monotonic() - t0);

	sb_job_set_phase(job, NULL, "snapshots", 0, 0);
	struct sb_snapshot_list list = {0};
	free(err);
	err = NULL;
	if (sb_restic_snapshots(&r, NULL, &list, &err) < 0) {
		run_fail(run, "restore from '%s' failed: cannot list the snapshots of the restored copy '%s': %s",
			 run->remote, target, err);
		goto out;
	}
	size_t n = 0;
	struct sb_cloud_stack_count *stacks = count_stacks(&list, &n);
	struct sb_buf words = {0};
	for (size_t i = 0; i < n; i++) {
		json_object_object_add(counts, stacks[i].stack, json_object_new_uint64(stacks[i].snapshots));
		sb_buf_printf(&words, "%s%s %llu", i ? ", " : "", stacks[i].stack,
			      (unsigned long long)stacks[i].snapshots);
		/* list is sorted by time: the last one of a stack is its newest. */
		const struct sb_snapshot *newest = NULL;
		for (size_t j = 0; j < list.n; j++)
			if (strcmp(list.v[j].stack ? list.v[j].stack : "(untagged)", stacks[i].stack) == 0)
				newest = &list.v[j];
		sb_info("restore: stack '%s': %llu snapshot%s, the newest %s from %s", stacks[i].stack,
			(unsigned long long)stacks[i].snapshots, stacks[i].snapshots == 1 ? "" : "s",
			newest->short_id, newest->time);
		free(stacks[i].stack);
	}
	free(stacks);
	sb_job_set_summary(job, "restored '%s' to '%s' (%s), restic check passed: %zu snapshot%s of %zu stack%s%s%s%s",
			   run->remote, target, bytes, list.n, list.n == 1 ? "" : "s", n, n == 1 ? "" : "s",
			   n ? " (" : "", words.data ? words.data : "", n ? ")" : "");
	sb_buf_free(&words);
	sb_snapshot_list_free(&list);
	rc = 0;
out:
	sb_restic_close(&r);
	return rc;
}

int sb_job_run_restore(const struct sb_config *cfg, struct sb_job *job)
{
	if (!cfg->rclone_remote || !*cfg->rclone_remote) {
		sb_job_fail(job, "restore failed: RCLONE_REMOTE is not set in the configuration ([cloud_sync])");
		return -1;
	}
	cleanup_free char *remote = sb_rclone_remote_spec(cfg);
	cleanup_free char *target = NULL;
	cleanup_free char *err = NULL;
	/* A refusal happens before anything is touched, cloud.json included. */
	if (sb_cloud_restore_target(cfg, job->req.target, job->req.force, &target, &err) < 0) {
		sb_job_fail(job, "restore from '%s' refused: %s", remote, err);
		return -1;
	}
	struct cloud_run run = {
		.cfg = cfg,
		.job = job,
		.remote = remote,
		.persist = !job->req.dry_run,
	};
	double started = sb_now_wall();
	cloud_open(&run, SB_CLOUD_RESTORING, "connecting");
	struct sb_rclone_result res = {0};
	struct json_object *counts = json_object_new_object();
	int rc = restore_steps(&run, target, &res, counts);

	struct json_object *last = json_object_new_object();
	json_object_object_add(last, "time", json_object_new_double(started));
	doc_set_str(last, "result", rc == 0 ? "ok" : "failed");
	doc_set_str(last, "target", target);
	json_object_object_add(last, "duration", json_object_new_double(sb_now_wall() - started));
	json_object_object_add(last, "bytes", json_object_new_uint64(res.bytes));
	doc_set_str(last, "error", rc == 0 ? NULL : run.error);
	json_object_object_add(last, "snapshots", counts);
	json_object_object_add(run.doc, "last_restore", last);
	cloud_close(&run, rc);
	return rc;
}
