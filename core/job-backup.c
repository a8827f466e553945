/*
 * Stage 1: for each stack, in dirlist order: pre-hook → stop if running →
 * restic backup → start if it was running → post-hook; then retention
 * and verification. One stack's failure never stops the others, and a
 * stack that was running is started again on every path, including
 * cancellation (the start itself is never cancelled). The journal
 * records "stopped by us" before each stop so a crash can be undone by
 * sb_recover().
 *
 * In snapshot mode (cowsnap.h) a running stack is stopped only while a
 * copy-on-write copy of its directory is taken: stop → copy → start →
 * restic backup of the copy → post-hook → verify → copy removed. The
 * staging journal lists the copy until it is gone.
 */
#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "job-internal.h"
#include "stackback/cowsnap.h"
#include "stackback/docker.h"
#include "stackback/restic.h"
#include "stackback/runner.h"
#include "stackback/stacks.h"
#include "stackback/state.h"

struct backup_run {
	const struct sb_config *cfg;
	struct sb_job *job;
	struct sb_compose compose;
	struct sb_restic restic;
	int index, count;
};

static void commit_report_fn(struct sb_stack_report *dst, void *userdata)
{
	struct sb_stack_report *src = userdata;
	free(dst->error);
	free(dst->snapshot_id);
	free(dst->state_before);
	free(dst->mode);
	char *name = dst->name;
	*dst = *src;
	dst->name = name;
	dst->error = xstrdup(src->error);
	dst->snapshot_id = xstrdup(src->snapshot_id);
	dst->state_before = xstrdup(src->state_before);
	dst->mode = xstrdup(src->mode);
}

static void commit_report(struct sb_job *job, size_t idx, struct sb_stack_report *r)
{
	sb_job_report_update(job, idx, commit_report_fn, r);
}

/* Records a stack's failure: the report's error line, logged once. */
static void stack_error(struct sb_stack_report *r, enum sb_stack_result result, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void stack_error(struct sb_stack_report *r, enum sb_stack_result result, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	sb_error("%s", msg);
	if (!r->error) {
		r->error = sb_log_mask(msg);
		r->result = result;
	}
	free(msg);
}

static void on_backup_progress(void *userdata, const struct sb_backup_progress *p)
{
	struct sb_job *job = userdata;
	sb_job_set_progress(job, p->percent, p->bytes_done, p->bytes_total, p->files_done, p->files_total,
			    p->eta_s);
}

static void hook_line(void *userdata, enum sb_stream stream, const char *line, size_t len)
{
	const char *hook = userdata;
	sb_info("%s: %.*s", hook, (int)len, line);
}

/*
 * Runs STACK/.stackback/PHASE if it exists. Returns 0 when absent or
 * successful, -1 with *err otherwise.
 */
static int run_hook(const struct backup_run *br, const struct sb_stack *stack, const char *phase,
		    const char *result, char **err)
{
	cleanup_free char *path = xasprintf("%s/.stackback/%s", stack->path, phase);
	struct stat st;
	if (stat(path, &st) < 0)
		return 0;
	if (!S_ISREG(st.st_mode) || access(path, X_OK) < 0) {
		*err = xasprintf("%s hook '%s' is not an executable file", phase, path);
		return -1;
	}
	cleanup_free char *env_stack = xasprintf("STACKBACK_STACK=%s", stack->name);
	cleanup_free char *env_phase = xasprintf("STACKBACK_PHASE=%s", phase);
	cleanup_free char *env_result = xasprintf("STACKBACK_RESULT=%s", result ? result : "");
	const char *env[] = {env_stack, env_phase, env_result, NULL};
	const char *argv[] = {path, NULL};
	cleanup_free char *label = xasprintf("stack '%s' %s hook", stack->name, phase);
	struct sb_run_opts o = {
		.argv = argv,
		.env_add = env,
		.cwd = stack->path,
		.timeout_s = (double)br->cfg->hook_timeout,
		.on_line = hook_line,
		.userdata = label,
		.capture_stderr = true,
		.cancel = &br->job->cancel,
	};
	struct sb_run_result res = {0};
	int rc = sb_run(&o, &res);
	if (rc != 0) {
		cleanup_free char *why = sb_run_describe(&res, o.timeout_s);
		*err = xasprintf("%s hook failed: %s", phase, why);
	}
	sb_run_result_free(&res);
	return rc == 0 ? 0 : -1;
}

static bool excluded(const struct sb_config *cfg, const char *relpath, const char *name)
{
	for (size_t i = 0; i < cfg->excludes.n; i++) {
		const char *pat = cfg->excludes.v[i];
		if (fnmatch(pat, name, 0) == 0 || fnmatch(pat, relpath, FNM_PATHNAME) == 0)
			return true;
	}
	return false;
}

/* Counts regular files under dir as restic would back them up (excludes applied). */
static int count_files(const struct sb_config *cfg, const char *dir, const char *rel, uint64_t *count)
{
	DIR *d = opendir(dir);
	if (!d)
		return -errno;
	struct dirent *de;
	int rc = 0;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		cleanup_free char *path = xasprintf("%s/%s", dir, de->d_name);
		cleanup_free char *relpath = xasprintf("%s/%s", rel, de->d_name);
		if (excluded(cfg, relpath, de->d_name))
			continue;
		struct stat st;
		if (lstat(path, &st) < 0)
			continue;
		if (S_ISREG(st.st_mode))
			(*count)++;
		else if (S_ISDIR(st.st_mode) && (rc = count_files(cfg, path, relpath, count)) < 0)
			break;
	}
	closedir(d);
	return rc;
}

/*
 * VERIFICATION_DEPTH metadata or files for one new snapshot. Files are
 * counted in source: the stack directory, or the copy restic read.
 */
static int verify_snapshot(const struct backup_run *br, const struct sb_stack *stack, const char *source,
			   const char *snapshot_id, uint64_t *files_in_snapshot, char **err)
{
	uint64_t files = 0, nodes = 0;
	if (sb_restic_ls_count(&br->restic, snapshot_id, &files, &nodes, err) < 0)
		return -1;
	*files_in_snapshot = files;
	if (nodes == 0) {
		*err = xasprintf("verification failed: snapshot %.8s lists no entries", snapshot_id);
		return -1;
	}
	if (br->cfg->verification_depth != SB_VERIFY_FILES)
		return 0;
	uint64_t count = 0;
	int rc = count_files(br->cfg, source, stack->path, &count);
	if (rc < 0) {
		*err = xasprintf("verification failed: cannot count files in '%s': %s", source,
				 strerror(-rc));
		return -1;
	}
	if (count != files) {
		*err = xasprintf("verification failed: snapshot %.8s has %llu files, the stack directory %llu",
				 snapshot_id, (unsigned long long)files, (unsigned long long)count);
		return -1;
	}
	return 0;
}

/* The stack's own settings (.stackback/config); -1 with *err on an error in them. */
static int stack_settings(const struct sb_stack *stack, const struct sb_config *cfg, struct sb_stack_settings *set,
			  char **err)
{
	struct sb_diags diags = {0};
	int rc = sb_config_load_stack(cfg, stack->path, set, &diags);
	for (size_t i = 0; i < diags.n; i++) {
		const struct sb_diag *d = &diags.v[i];
		if (d->severity == SB_DIAG_WARNING)
			sb_warn("stack '%s': %s:%d: %s", stack->name, d->file, d->line, d->message);
		else if (!*err)
			*err = xasprintf("%s:%d: %s", d->file, d->line, d->message);
	}
	sb_diags_free(&diags);
	return rc;
}

static const char *cow_what(enum sb_cow_kind kind)
{
	return kind == SB_COW_SUBVOLUME ? "btrfs snapshot" : "reflink copy";
}

/*
 * Snapshot mode for a running stack, decided before it is stopped.
 * Returns 0 (cow->kind NONE: the stack stays stopped for its whole
 * backup), or -1 with *err when the stack must be left alone: its
 * settings are wrong, or the explicit mode cannot work.
 */
static int plan_snapshot(const struct backup_run *br, const struct sb_stack *stack, struct sb_cow_plan *cow,
			 char **err)
{
	struct sb_stack_settings set;
	int rc = stack_settings(stack, br->cfg, &set, err);
	if (rc == 0) {
		const char *mode = sb_snapshot_mode_name(set.snapshot_mode);
		cleanup_free char *why = NULL;
		rc = sb_cow_plan(set.snapshot_mode, stack->path, stack->name, set.snapshot_staging, cow, &why);
		if (rc < 0)
			*err = xasprintf("SNAPSHOT_MODE=%s: %s", mode, why);
		else if (cow->kind == SB_COW_NONE && cow->why)
			sb_info("stack '%s': SNAPSHOT_MODE=%s finds no way to snapshot it (%s): it stays stopped "
				"for its whole backup",
				stack->name, mode, cow->why);
		else if (cow->kind != SB_COW_NONE)
			sb_info("stack '%s': SNAPSHOT_MODE=%s on %s: %s in '%s'%s%s%s", stack->name, mode,
				cow->fs, cow_what(cow->kind), cow->staging, cow->why ? " (" : "",
				cow->why ? cow->why : "", cow->why ? ")" : "");
	}
	sb_stack_settings_free(&set);
	return rc;
}

/*
 * Copies the stopped stack. True when the copy exists: restic reads it
 * once the stack runs again. Otherwise what was made is removed and,
 * under SNAPSHOT_MODE=auto, the stopped directory is backed up instead
 * (logged); an explicit mode records the failure in r, and the stack is
 * not backed up.
 */
static bool take_snapshot(struct backup_run *br, const struct sb_stack *stack, const struct sb_cow_plan *cow,
			  struct sb_stack_report *r)
{
	const struct sb_config *cfg = br->cfg;
	sb_job_set_phase(br->job, stack->name, "snapshot", br->index, br->count);
	cleanup_free char *err = NULL;
	int jr = sb_staging_add(cfg, stack->name, cow->copy);
	if (jr < 0) {
		err = xasprintf("cannot write the staging journal in '%s': %s", cfg->state_dir, strerror(-jr));
	} else {
		double t0 = sb_now_monotonic();
		if (sb_cow_take(cow, stack->path, &br->job->cancel, &err) == 0) {
			char took[32];
			sb_format_duration(sb_now_monotonic() - t0, took, sizeof(took));
			sb_info("stack '%s': %s '%s' taken in %s", stack->name, cow_what(cow->kind), cow->copy,
				took);
			free(r->mode);
			r->mode = xstrdup(sb_cow_kind_name(cow->kind));
			return true;
		}
		cleanup_free char *rm_err = NULL;
		if (sb_cow_remove(cow->copy, &rm_err) < 0)
			sb_error("stack '%s': the partial copy stays until 'stackback recover': %s", stack->name, rm_err);
		else
			sb_staging_remove(cfg, cow->copy);
	}
	if (cow->mode == SB_SNAPSHOT_MODE_AUTO)
		sb_warn("stack '%s': no %s (%s): backing it up stopped instead", stack->name, cow_what(cow->kind),
			err);
	else
		stack_error(r, SB_STACK_FAILED, "snapshot of stack '%s' failed: %s", stack->name, err);
	return false;
}

/* Removes the copy once restic, the post-hook and verification are done with it. */
static void drop_snapshot(struct backup_run *br, const struct sb_stack *stack, const struct sb_cow_plan *cow,
			  struct sb_stack_report *r)
{
	sb_job_set_phase(br->job, stack->name, "cleanup", br->index, br->count);
	cleanup_free char *err = NULL;
	if (sb_cow_remove(cow->copy, &err) < 0) {
		stack_error(r, SB_STACK_FAILED,
			    "stack '%s': its snapshot copy stays until 'stackback recover' removes it: %s",
			    stack->name, err);
		return;
	}
	sb_staging_remove(br->cfg, cow->copy);
}

/* The stack's newest snapshot: restic's parent for a copy it has never seen. NULL if none. */
static char *previous_snapshot(const struct backup_run *br, const struct sb_stack *stack)
{
	struct sb_snapshot_list l;
	cleanup_free char *err = NULL;
	if (sb_restic_snapshots(&br->restic, stack->name, &l, &err) < 0) {
		sb_warn("stack '%s': no parent snapshot, restic reads every file: %s", stack->name, err);
		return NULL;
	}
	char *id = l.n ? xstrdup(l.v[l.n - 1].id) : NULL;
	sb_snapshot_list_free(&l);
	return id;
}

/* Starts a stack we stopped. If that fails it stays in the journal for `recover`. */
static void restart(struct backup_run *br, const struct sb_stack *stack, struct sb_stack_report *r,
		    double stopped_at)
{
	sb_job_set_phase(br->job, stack->name, "start", br->index, br->count);
	cleanup_free char *err = NULL;
	if (sb_docker_start(br->cfg, &br->compose, stack, &err) < 0) {
		/* Left in the journal: `stackback recover` or the next run retries. */
		stack_error(r, SB_STACK_FAILED, "start of stack '%s' failed (run 'stackback recover'): %s",
			    stack->name, err);
		return;
	}
	r->restarted = true;
	r->downtime_s = sb_now_monotonic() - stopped_at;
	sb_journal_remove(br->cfg, stack->name);
	char down[32];
	sb_format_duration(r->downtime_s, down, sizeof(down));
	sb_info("stack '%s' started again after %s of downtime", stack->name, down);
}

/*
 * Backs up one stack. Fills r. Never returns with the stack stopped if
 * it was running before, unless the start itself failed (then the
 * journal keeps it for `recover`).
 */
static void backup_stack(struct backup_run *br, const struct sb_stack *stack, struct sb_stack_report *r)
{
	const struct sb_config *cfg = br->cfg;
	struct sb_job *job = br->job;
	double t0 = sb_now_monotonic();
	cleanup_free char *err = NULL;
	r->mode = xstrdup(sb_stop_mode_name(cfg->stop_mode));

	sb_job_set_phase(job, stack->name, "inspect", br->index, br->count);
	if (stack->conflict) {
		stack_error(r, SB_STACK_SKIPPED, "stack '%s' skipped: %s", stack->name, stack->conflict);
		return;
	}
	if (stack->origin == SB_STACK_MISSING || !stack->compose_file) {
		stack_error(r, SB_STACK_SKIPPED, "stack '%s' skipped: no compose file in '%s'", stack->name,
			    stack->path);
		return;
	}
	enum sb_stack_state before = sb_docker_state_for_job(cfg, &br->compose, stack, &err);
	r->state_before = xstrdup(sb_stack_state_name(before));
	if (before == SB_STATE_UNKNOWN) {
		stack_error(r, SB_STACK_FAILED, "stack '%s' not backed up: cannot ask docker for its state: %s",
			    stack->name, err);
		return;
	}
	bool running = before == SB_STATE_RUNNING || before == SB_STATE_PARTIAL;
	r->was_running = running;

	if (job->req.dry_run) {
		bool snap = false;
		if (running) {
			struct sb_stack_settings set;
			snap = stack_settings(stack, cfg, &set, &err) == 0 && set.snapshot_mode != SB_SNAPSHOT_MODE_OFF;
			sb_stack_settings_free(&set);
		}
		sb_info("dry run: stack '%s' is %s; would %s", stack->name, sb_stack_state_name(before),
			!running ? "run restic backup"
			: snap	 ? "stop it, snapshot it (SNAPSHOT_MODE), start it, then back up the snapshot"
				 : "stop it, run restic backup, then start it");
		r->result = SB_STACK_DRY_RUN;
		return;
	}

	sb_job_set_phase(job, stack->name, "pre-hook", br->index, br->count);
	if (run_hook(br, stack, "pre-backup", NULL, &err) < 0) {
		stack_error(r, SB_STACK_SKIPPED, "stack '%s' skipped (left %s): %s", stack->name,
			    sb_stack_state_name(before), err);
		return;
	}
	if (atomic_load(&job->cancel)) {
		stack_error(r, SB_STACK_SKIPPED, "stack '%s' skipped: the job was cancelled", stack->name);
		return;
	}
	/* A stack that is not running has no downtime to save: it is backed up as it is. */
	struct sb_cow_plan cow = {0};
	if (running && plan_snapshot(br, stack, &cow, &err) < 0) {
		stack_error(r, SB_STACK_SKIPPED, "stack '%s' skipped (left %s): %s", stack->name,
			    sb_stack_state_name(before), err);
		sb_cow_plan_free(&cow);
		return;
	}

	double stopped_at = 0;
	bool snapped = false;
	if (running) {
		sb_job_set_phase(job, stack->name, "stop", br->index, br->count);
		int jr = sb_journal_add(cfg, stack->name, stack->path, cfg->stop_mode == SB_STOP_MODE_DOWN);
		if (jr < 0) {
			stack_error(r, SB_STACK_FAILED,
				    "stack '%s' not stopped: cannot write the journal in '%s': %s",
				    stack->name, cfg->state_dir, strerror(-jr));
			sb_cow_plan_free(&cow);
			return;
		}
		stopped_at = sb_now_monotonic();
		if (sb_docker_stop(cfg, &br->compose, stack, &job->cancel, &err) < 0) {
			stack_error(r, SB_STACK_FAILED, "stop of stack '%s' failed: %s", stack->name, err);
			free(err);
			err = NULL;
			/* Whatever part of it did stop must come back. */
			goto start;
		}
		sb_info("stack '%s' stopped", stack->name);
		if (cow.kind != SB_COW_NONE && !atomic_load(&job->cancel)) {
			snapped = take_snapshot(br, stack, &cow, r);
			if (!snapped && r->error)
				goto start;
			if (snapped)
				restart(br, stack, r, stopped_at);
		}
	}

	if (!atomic_load(&job->cancel)) {
		sb_job_set_phase(job, stack->name, "backup", br->index, br->count);
		const char *tags[] = {"stackback", stack->name, NULL};
		cleanup_free char *parent = snapped ? previous_snapshot(br, stack) : NULL;
		struct sb_restic_backup_opts bo = {
			.path = stack->path,
			.tags = tags,
			.hostname = cfg->hostname,
			.excludes = (const char *const *)cfg->excludes.v,
			.on_progress = on_backup_progress,
			.userdata = job,
			.source_dir = snapped ? cow.copy : NULL,
			.parent = parent,
			/* A reflink copy has new inodes and ctimes; a btrfs snapshot keeps both. */
			.ignore_inode = snapped && cow.kind == SB_COW_REFLINK,
		};
		struct sb_backup_summary sum = {0};
		double backup_t0 = sb_now_monotonic();
		int brc = sb_restic_backup(&br->restic, &bo, &sum, &err);
		r->backup_s = sb_now_monotonic() - backup_t0;
		if (brc < 0) {
			stack_error(r, SB_STACK_FAILED, "backup of stack '%s' failed: %s", stack->name, err);
			free(err);
			err = NULL;
		} else {
			r->snapshot_id = xstrdup(sum.snapshot_id);
			r->bytes_added = sum.data_added;
			r->files_new = sum.files_new;
			r->files_changed = sum.files_changed;
			r->files_total = sum.total_files_processed;
			sb_info("stack '%s' backed up: snapshot %.8s, %llu new and %llu changed files",
				stack->name, sum.snapshot_id, (unsigned long long)sum.files_new,
				(unsigned long long)sum.files_changed);
		}
		sb_backup_summary_free(&sum);
	} else {
		stack_error(r, SB_STACK_FAILED, "backup of stack '%s' cancelled", stack->name);
	}

start:
	if (running && !snapped)
		restart(br, stack, r, stopped_at);

	if (r->snapshot_id) {
		sb_job_set_phase(job, stack->name, "post-hook", br->index, br->count);
		if (run_hook(br, stack, "post-backup", r->error ? "failed" : "ok", &err) < 0)
			stack_error(r, SB_STACK_FAILED, "stack '%s': %s", stack->name, err);
	}
	if (r->snapshot_id && !r->error && cfg->enable_verification &&
	    cfg->verification_depth != SB_VERIFY_DATA) {
		sb_job_set_phase(job, stack->name, "verify", br->index, br->count);
		free(err);
		err = NULL;
		if (verify_snapshot(br, stack, snapped ? cow.copy : stack->path, r->snapshot_id, &r->files_total,
				    &err) < 0)
			stack_error(r, SB_STACK_FAILED, "stack '%s': %s", stack->name, err);
	}
	if (snapped)
		drop_snapshot(br, stack, &cow, r);
	else
		sb_cow_tidy(&cow);
	sb_cow_plan_free(&cow);
	if (!r->error)
		r->result = SB_STACK_OK;
	r->duration_s = sb_now_monotonic() - t0;
}

/* The free space where the repository lives, at its nearest existing ancestor. */
static int check_disk_space(const struct sb_config *cfg, char **err)
{
	const char *repo = cfg->restic_repository;
	if (repo[0] != '/')
		return 0; /* a remote repository: its space is not ours to measure */
	cleanup_free char *dir = xstrdup(repo);
	struct statvfs vfs;
	while (statvfs(dir, &vfs) < 0) {
		char *slash = strrchr(dir, '/');
		if (!slash || slash == dir) {
			strcpy(dir, "/");
			if (statvfs(dir, &vfs) < 0)
				return 0;
			break;
		}
		*slash = '\0';
	}
	uint64_t free_mb = (uint64_t)vfs.f_bavail * vfs.f_frsize / (1024 * 1024);
	if (free_mb < (uint64_t)cfg->min_disk_space_mb) {
		*err = xasprintf("only %llu MiB free where the repository lives ('%s'), MIN_DISK_SPACE_MB is %ld",
				 (unsigned long long)free_mb, dir, cfg->min_disk_space_mb);
		return -1;
	}
	return 0;
}

/* Resolves which stacks run: every enabled one, or the named ones (even if disabled). */
static int select_stacks(struct backup_run *br, const struct sb_selection *sel, const struct sb_stack ***out,
			 size_t *n_out)
{
	const struct sb_job_request *req = &br->job->req;
	const struct sb_stack **v = xcalloc(sel->n + req->stacks.n + 1, sizeof(*v));
	size_t n = 0;
	int rc = 0;
	if (req->stacks.n == 0) {
		for (size_t i = 0; i < sel->n; i++)
			if (sel->stacks[i].enabled && sel->stacks[i].origin != SB_STACK_NEW)
				v[n++] = &sel->stacks[i];
	} else {
		for (size_t i = 0; i < req->stacks.n; i++) {
			const struct sb_stack *s = sb_selection_find(sel, req->stacks.v[i]);
			if (!s) {
				sb_job_fail(br->job, "backup: no stack named '%s' in '%s' or the dirlist",
					    req->stacks.v[i], br->cfg->stacks_dir);
				rc = -1;
				continue;
			}
			v[n++] = s;
		}
	}
	*out = v;
	*n_out = n;
	return rc;
}

static int open_repository(struct backup_run *br)
{
	cleanup_free char *err = NULL;
	if (sb_restic_open(&br->restic, br->cfg, br->cfg->restic_repository, &err) < 0) {
		sb_job_fail(br->job, "backup: cannot open the restic repository: %s", err);
		return -1;
	}
	br->restic.cancel = &br->job->cancel;
	if (!sb_restic_repo_exists(&br->restic)) {
		sb_job_fail(br->job, "backup: no restic repository at '%s' (run 'stackback init')",
			    br->cfg->restic_repository);
		return -1;
	}
	return 0;
}

static void prune_stacks(struct backup_run *br, const struct sb_job *job)
{
	for (size_t i = 0; i < job->n_reports; i++) {
		const struct sb_stack_report *r = &job->reports[i];
		if (r->result != SB_STACK_OK)
			continue;
		sb_job_set_phase(br->job, r->name, "forget", (int)i + 1, (int)job->n_reports);
		cleanup_free char *err = NULL;
		if (sb_restic_forget(&br->restic, br->cfg, r->name, false, &err) < 0)
			sb_job_fail(br->job, "retention of stack '%s' failed: %s", r->name, err);
	}
}

int sb_job_run_backup(const struct sb_config *cfg, struct sb_job *job)
{
	struct backup_run br = {.cfg = cfg, .job = job};
	struct sb_selection sel = {0};
	struct sb_diags diags = {0};
	const struct sb_stack **stacks = NULL;
	size_t n = 0;
	int rc = -1;
	cleanup_free char *err = NULL;

	if (sb_selection_load(cfg, &sel, &diags) < 0) {
		for (size_t i = 0; i < diags.n; i++)
			if (diags.v[i].severity == SB_DIAG_ERROR)
				sb_job_fail(job, "backup: %s:%d: %s", diags.v[i].file, diags.v[i].line,
					    diags.v[i].message);
		goto out;
	}
	int selected = select_stacks(&br, &sel, &stacks, &n);
	if (n == 0) {
		if (selected == 0)
			sb_job_fail(job, "backup: no stack is enabled (enable one with 'stackback enable NAME')");
		goto out;
	}
	if (sb_compose_detect(cfg, &br.compose, &err) < 0) {
		sb_job_fail(job, "backup: %s", err);
		goto out;
	}
	if (!job->req.dry_run) {
		if (check_disk_space(cfg, &err) < 0) {
			sb_job_fail(job, "backup: %s", err);
			goto out;
		}
		if (open_repository(&br) < 0)
			goto out;
	}

	br.count = (int)n;
	int failures = 0;
	for (size_t i = 0; i < n; i++) {
		size_t idx = sb_job_add_report(job, stacks[i]->name);
		struct sb_stack_report r = {.result = SB_STACK_FAILED, .started_at = sb_now_wall()};
		br.index = (int)i + 1;
		if (atomic_load(&job->cancel))
			stack_error(&r, SB_STACK_SKIPPED, "stack '%s' skipped: the job was cancelled", stacks[i]->name);
		else
			backup_stack(&br, stacks[i], &r);
		if (r.result != SB_STACK_OK && r.result != SB_STACK_DRY_RUN)
			failures++;
		commit_report(job, idx, &r);
		free(r.error);
		free(r.snapshot_id);
		free(r.state_before);
		free(r.mode);
	}

	if (!job->req.dry_run && !atomic_load(&job->cancel)) {
		if (cfg->auto_prune)
			prune_stacks(&br, job);
		if (cfg->enable_verification && cfg->verification_depth == SB_VERIFY_DATA) {
			sb_job_set_phase(job, NULL, "verify", 0, 0);
			if (sb_restic_check(&br.restic, true, &err) < 0)
				sb_job_fail(job, "verification (restic check --read-data) failed: %s", err);
		}
	}
	sb_job_set_summary(job, "%zu of %zu stacks backed up%s", n - (size_t)failures, n,
			   job->req.dry_run ? " (dry run)" : "");
	pthread_mutex_lock(&job->mu);
	bool job_error = job->error != NULL;
	pthread_mutex_unlock(&job->mu);
	rc = failures == 0 && !job_error && selected == 0 ? 0 : -1;
	if (failures && !job_error)
		sb_job_fail(job, "backup: %d of %zu stacks failed", failures, n);
out:
	free(stacks);
	sb_restic_close(&br.restic);
	sb_compose_free(&br.compose);
	sb_selection_free(&sel);
	sb_diags_free(&diags);
	return rc;
}
