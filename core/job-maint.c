/* Repository maintenance jobs: `restic check` and per-stack retention. */
#include <stdlib.h>
#include <string.h>

#include "job-internal.h"
#include "stackback/restic.h"
#include "stackback/stacks.h"

static int open_repo(const struct sb_config *cfg, struct sb_job *job, struct sb_restic *r)
{
	cleanup_free char *err = NULL;
	if (sb_restic_open(r, cfg, cfg->restic_repository, &err) < 0) {
		sb_job_fail(job, "%s: cannot open the restic repository: %s", sb_job_kind_name(job->req.kind), err);
		return -1;
	}
	r->cancel = &job->cancel;
	return 0;
}

int sb_job_run_check(const struct sb_config *cfg, struct sb_job *job)
{
	struct sb_restic r = {0};
	if (open_repo(cfg, job, &r) < 0)
		return -1;
	sb_job_set_phase(job, NULL, job->req.read_data ? "check --read-data" : "check", 0, 0);
	cleanup_free char *err = NULL;
	int rc = sb_restic_check(&r, job->req.read_data, &err);
	if (rc < 0)
		sb_job_fail(job, "check of repository '%s' failed: %s", cfg->restic_repository, err);
	else
		sb_job_set_summary(job, "repository '%s' has no errors%s", cfg->restic_repository,
				   job->req.read_data ? " (all data read)" : "");
	sb_restic_close(&r);
	return rc;
}

/*
 * Retention for the named stacks, or for every stack in the dirlist (a
 * disabled stack's old snapshots still age out).
 */
int sb_job_run_forget(const struct sb_config *cfg, struct sb_job *job)
{
	struct sb_strv names = {0};
	if (job->req.stacks.n) {
		for (size_t i = 0; i < job->req.stacks.n; i++)
			sb_strv_push(&names, job->req.stacks.v[i]);
	} else {
		struct sb_selection sel = {0};
		struct sb_diags diags = {0};
		int lrc = sb_selection_load(cfg, &sel, &diags);
		for (size_t i = 0; lrc == 0 && i < sel.n; i++)
			if (sel.stacks[i].origin != SB_STACK_NEW && !sel.stacks[i].conflict)
				sb_strv_push(&names, sel.stacks[i].name);
		sb_selection_free(&sel);
		sb_diags_free(&diags);
		if (lrc < 0) {
			sb_job_fail(job, "forget: the dirlist has errors (run 'stackback list')");
			return -1;
		}
	}
	struct sb_restic r = {0};
	if (open_repo(cfg, job, &r) < 0) {
		sb_strv_free(&names);
		return -1;
	}
	int failures = 0;
	for (size_t i = 0; i < names.n && !atomic_load(&job->cancel); i++) {
		size_t idx = sb_job_add_report(job, names.v[i]);
		sb_job_set_phase(job, names.v[i], "forget", (int)i + 1, (int)names.n);
		cleanup_free char *err = NULL;
		int rc = sb_restic_forget(&r, cfg, names.v[i], job->req.dry_run, &err);
		pthread_mutex_lock(&job->mu);
		struct sb_stack_report *rep = &job->reports[idx];
		rep->result = rc < 0 ? SB_STACK_FAILED : job->req.dry_run ? SB_STACK_DRY_RUN : SB_STACK_OK;
		rep->duration_s = sb_now_wall() - rep->started_at;
		pthread_mutex_unlock(&job->mu);
		if (rc < 0) {
			failures++;
			sb_job_fail(job, "retention of stack '%s' failed: %s", names.v[i], err);
		}
	}
	sb_job_set_summary(job, "retention applied to %zu of %zu stacks%s", names.n - (size_t)failures,
			   names.n, job->req.dry_run ? " (dry run)" : "");
	sb_restic_close(&r);
	sb_strv_free(&names);
	return failures ? -1 : 0;
}
