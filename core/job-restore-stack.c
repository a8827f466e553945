/*
 * Putting one stack back from a snapshot, in place (SPEC §7
 * "stacks/NAME/restore"). The snapshot is restored into a hidden staging
 * directory beside the stack first, while the stack keeps running; only
 * then is the stack stopped, its current directory moved aside (kept,
 * never deleted: ".NAME.before-restore-STAMP"), the restored tree renamed
 * into place, and the stack started again if it was running. A failure
 * before the swap changes nothing; a failed swap is rolled back.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "job-internal.h"
#include "stackback/cloud.h"
#include "stackback/docker.h"
#include "stackback/restic.h"
#include "stackback/stacks.h"
#include "stackback/state.h"

static char *parent_dir(const char *path)
{
	char *dir = xstrdup(path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir)
		*slash = '\0';
	else
		strcpy(dir, "/");
	return dir;
}

struct restore_stack {
	const struct sb_config *cfg;
	struct sb_job *job;
	const struct sb_stack *stack;
	struct sb_restic restic;
	struct sb_snapshot_list snaps;
	const struct sb_snapshot *snap;
	char *staging;
	struct sb_stack_report r;
};

static void fail(struct restore_stack *rs, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct restore_stack *rs, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	sb_job_fail(rs->job, "restore of stack '%s' failed: %s", rs->job->req.stacks.v[0], msg);
	if (!rs->r.error)
		rs->r.error = sb_log_mask(msg);
	rs->r.result = SB_STACK_FAILED;
	free(msg);
}

/* Opens the local or the cloud-restored repository and resolves the snapshot. */
static int resolve(struct restore_stack *rs, const char *ref)
{
	bool cloud = sb_str_has_prefix(ref, "cloud:");
	/* The copy the last restore made (it may have gone --to elsewhere), else RESTORE_DIR. */
	cleanup_free char *restored = cloud ? sb_cloud_restored_repository(rs->cfg) : NULL;
	const char *repo = !cloud ? rs->cfg->restic_repository : restored ? restored : rs->cfg->restore_dir;
	cleanup_free char *err = NULL;
	if (sb_restic_open(&rs->restic, rs->cfg, repo, &err) < 0) {
		fail(rs, "cannot open repository '%s': %s", repo, err);
		return -1;
	}
	rs->restic.cancel = &rs->job->cancel;
	if (!sb_restic_repo_exists(&rs->restic)) {
		fail(rs, "no restic repository at '%s'%s", repo,
		     cloud ? " (run 'stackback restore' to copy it from the cloud)" : "");
		return -1;
	}
	if (sb_restic_snapshots(&rs->restic, rs->stack->name, &rs->snaps, &err) < 0) {
		fail(rs, "cannot list snapshots in '%s': %s", repo, err);
		return -1;
	}
	rs->snap = sb_snapshot_resolve(&rs->snaps, rs->stack->name, cloud ? ref + 6 : ref, &err);
	if (!rs->snap) {
		fail(rs, "%s", err);
		return -1;
	}
	if (rs->snap->paths.n != 1) {
		fail(rs, "snapshot %s holds %zu paths, expected the stack directory alone", rs->snap->short_id,
		     rs->snap->paths.n);
		return -1;
	}
	rs->r.snapshot_id = xstrdup(rs->snap->id);
	return 0;
}

/* Restores into STACKS_PARENT/.stackback-restore-NAME; returns the restored tree's path. */
static char *restore_to_staging(struct restore_stack *rs)
{
	cleanup_free char *parent = parent_dir(rs->stack->path);
	rs->staging = xasprintf("%s/.stackback-restore-%s", parent, rs->stack->name);
	int rc = sb_rm_rf(rs->staging);
	if (rc == 0)
		rc = sb_mkdir_p(rs->staging, 0700);
	if (rc < 0) {
		fail(rs, "cannot prepare staging directory '%s': %s", rs->staging, strerror(-rc));
		return NULL;
	}
	sb_job_set_phase(rs->job, rs->stack->name, "restore", 1, 1);
	cleanup_free char *err = NULL;
	if (sb_restic_restore(&rs->restic, rs->snap->id, rs->staging, &err) < 0) {
		fail(rs, "%s", err);
		return NULL;
	}
	char *tree = xasprintf("%s%s", rs->staging, rs->snap->paths.v[0]);
	struct stat st;
	if (lstat(tree, &st) < 0 || !S_ISDIR(st.st_mode)) {
		fail(rs, "snapshot %s did not restore a directory at '%s'", rs->snap->short_id, tree);
		free(tree);
		return NULL;
	}
	return tree;
}

/* Stops, swaps the directories, starts. The stack is running again on every path if it was. */
static void swap_in(struct restore_stack *rs, const char *tree)
{
	const struct sb_config *cfg = rs->cfg;
	const struct sb_stack *stack = rs->stack;
	struct sb_compose compose = {0};
	cleanup_free char *err = NULL;
	cleanup_free char *parent = parent_dir(stack->path);
	cleanup_free char *aside = NULL;
	bool running = false;
	double stopped_at = 0;

	if (stack->compose_file) {
		if (sb_compose_detect(cfg, &compose, &err) < 0) {
			fail(rs, "%s", err);
			return;
		}
		enum sb_stack_state before = sb_docker_state_for_job(cfg, &compose, stack, &err);
		rs->r.state_before = xstrdup(sb_stack_state_name(before));
		if (before == SB_STATE_UNKNOWN) {
			fail(rs, "cannot ask docker for its state: %s", err);
			goto out;
		}
		running = before == SB_STATE_RUNNING || before == SB_STATE_PARTIAL;
		rs->r.was_running = running;
	}
	if (running) {
		sb_job_set_phase(rs->job, stack->name, "stop", 1, 1);
		if (sb_journal_add(cfg, stack->name, stack->path, cfg->stop_mode == SB_STOP_MODE_DOWN) < 0) {
			fail(rs, "cannot write the journal in '%s'", cfg->state_dir);
			goto out;
		}
		stopped_at = sb_now_monotonic();
		free(err);
		err = NULL;
		if (sb_docker_stop(cfg, &compose, stack, NULL, &err) < 0) {
			fail(rs, "stop failed: %s", err);
			goto start;
		}
	}

	sb_job_set_phase(rs->job, stack->name, "swap", 1, 1);
	char stamp[32];
	time_t now = time(NULL);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", gmtime(&now));
	const char *base = strrchr(stack->path, '/') ? strrchr(stack->path, '/') + 1 : stack->path;
	aside = xasprintf("%s/.%s.before-restore-%s", parent, base, stamp);
	bool moved_aside = false;
	if (access(stack->path, F_OK) == 0) {
		if (rename(stack->path, aside) < 0) {
			fail(rs, "cannot move '%s' aside: %s", stack->path, strerror(errno));
			goto start;
		}
		moved_aside = true;
	}
	if (rename(tree, stack->path) < 0) {
		fail(rs, "cannot move the restored tree into '%s': %s", stack->path, strerror(errno));
		if (moved_aside && rename(aside, stack->path) < 0)
			sb_error("stack '%s': its previous directory is at '%s'", stack->name, aside);
		goto start;
	}
	if (moved_aside)
		sb_info("stack '%s': the directory it had before is kept at '%s'", stack->name, aside);

start:
	if (running) {
		sb_job_set_phase(rs->job, stack->name, "start", 1, 1);
		free(err);
		err = NULL;
		if (sb_docker_start(cfg, &compose, stack, &err) < 0) {
			fail(rs, "start failed (run 'stackback recover'): %s", err);
		} else {
			rs->r.restarted = true;
			rs->r.downtime_s = sb_now_monotonic() - stopped_at;
			sb_journal_remove(cfg, stack->name);
		}
	}
out:
	sb_compose_free(&compose);
}

static void commit_fn(struct sb_stack_report *dst, void *userdata)
{
	struct sb_stack_report *src = userdata;
	char *name = dst->name;
	*dst = *src;
	dst->name = name;
	*src = (struct sb_stack_report){0}; /* ownership moved */
}

int sb_job_run_restore_stack(const struct sb_config *cfg, struct sb_job *job)
{
	struct restore_stack rs = {.cfg = cfg, .job = job};
	struct sb_stack new_stack;
	cleanup_free char *new_path = NULL;
	struct sb_selection sel = {0};
	struct sb_diags diags = {0};
	const char *name = job->req.stacks.v[0];
	size_t idx = sb_job_add_report(job, name);
	double t0 = sb_now_monotonic();
	cleanup_free char *tree = NULL;
	rs.r.result = SB_STACK_FAILED;
	rs.r.mode = xstrdup("restore");

	if (sb_selection_load(cfg, &sel, &diags) < 0) {
		fail(&rs, "the dirlist has errors (run 'stackback list')");
		goto out;
	}
	rs.stack = sb_selection_find(&sel, name);
	/*
	 * Unknown here (a new machine after a disaster): the snapshot brings
	 * the stack back as DOCKER_STACKS_DIR/NAME. The name passed the name
	 * rule in the request parser, so the path stays inside the stacks.
	 */
	if (!rs.stack) {
		new_path = xasprintf("%s/%s", cfg->stacks_dir, name);
		new_stack = (struct sb_stack){.name = (char *)name, .path = new_path, .origin = SB_STACK_MISSING};
		rs.stack = &new_stack;
		sb_info("stack '%s' is not known here: it will be restored as '%s'", name, new_path);
	}
	if (rs.stack->conflict) {
		fail(&rs, "%s", rs.stack->conflict);
		goto out;
	}
	sb_job_set_phase(job, name, "resolve", 1, 1);
	if (resolve(&rs, job->req.snapshot) < 0)
		goto out;
	char snapname[96];
	sb_snapshot_dirname(rs.snap, snapname, sizeof(snapname));
	if (job->req.dry_run) {
		sb_info("dry run: would restore stack '%s' from snapshot %s into '%s', keeping the current directory aside",
			name, snapname, rs.stack->path);
		rs.r.result = SB_STACK_DRY_RUN;
		goto out;
	}
	tree = restore_to_staging(&rs);
	if (tree && !atomic_load(&job->cancel))
		swap_in(&rs, tree);
	else if (tree)
		fail(&rs, "cancelled before the stack was touched");
	if (!rs.r.error) {
		rs.r.result = SB_STACK_OK;
		sb_job_set_summary(job, "stack '%s' restored from snapshot %s", name, snapname);
	}
out:
	if (rs.staging)
		sb_rm_rf(rs.staging);
	free(rs.staging);
	rs.r.duration_s = sb_now_monotonic() - t0;
	enum sb_stack_result result = rs.r.result;
	sb_job_report_update(job, idx, commit_fn, &rs.r);
	free(rs.r.error);
	free(rs.r.snapshot_id);
	free(rs.r.state_before);
	free(rs.r.mode);
	sb_snapshot_list_free(&rs.snaps);
	sb_restic_close(&rs.restic);
	sb_selection_free(&sel);
	sb_diags_free(&diags);
	return result == SB_STACK_OK || result == SB_STACK_DRY_RUN ? 0 : -1;
}
