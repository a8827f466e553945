/*
 * Running a job for a front end (see jobrun.h). Through the daemon this
 * only writes the trigger and follows jobs/ID/ like any reader of the
 * mount; in process it takes the job lock, restarts what a crashed run
 * left stopped, and calls the same engine the daemon's worker calls.
 */
#include "stackback/jobrun.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "stackback/client.h"
#include "stackback/log.h"
#include "stackback/notify.h"
#include "stackback/state.h"
#include "stackback/util.h"

/* The log file an in-process run writes, as the daemon does. */
#define JOBRUN_LOG_MAX (8u << 20)

/* ---- through the daemon ---- */

static void follow_progress(void *userdata, int job_id, enum sb_job_state state,
			    const struct sb_job_progress *p)
{
	const struct sb_jobrun_hooks *h = userdata;
	(void)job_id;
	if (h->on_progress)
		h->on_progress(h->userdata, state, p);
}

static void follow_log(void *userdata, const char *line)
{
	const struct sb_jobrun_hooks *h = userdata;
	if (h->on_log)
		h->on_log(h->userdata, line);
}

static struct sb_job *run_through_daemon(const struct sb_config *cfg, struct sb_job_request *req,
					 const char *payload, const struct sb_jobrun_opts *o,
					 enum sb_jobrun_failure *why, char **err)
{
	const char *mp = cfg->mountpoint;
	int id;
	if (sb_client_trigger(mp, req->kind, payload, &id, err) < 0) {
		*why = SB_JOBRUN_NOT_RUN;
		return NULL;
	}
	if (o->hooks.on_start)
		o->hooks.on_start(o->hooks.userdata, id, true, NULL);

	struct sb_client_follow_opts fo = {
		.stop = o->stop,
		.on_progress = follow_progress,
		.on_log = follow_log,
		.userdata = (void *)&o->hooks,
	};
	enum sb_job_state final;
	cleanup_free char *ferr = NULL;
	int rc = sb_client_follow(mp, id, &fo, &final, &ferr);
	if (rc < 0) {
		*why = SB_JOBRUN_LOST;
		*err = xasprintf("lost job %d in the daemon at %s: %s", id, mp, ferr);
		return NULL;
	}
	if (rc > 0) {
		*why = SB_JOBRUN_DETACHED;
		*err = xasprintf("stopped following job %d; it goes on in the daemon at %s", id, mp);
		return NULL;
	}
	cleanup_free char *rerr = NULL;
	cleanup_free char *report = sb_client_report(mp, id, &rerr);
	struct sb_job *job = report ? sb_client_job_from_report(report, strlen(report), &rerr) : NULL;
	if (!job) {
		*why = SB_JOBRUN_LOST;
		*err = xasprintf("job %d ended %s in the daemon, but its report is unreadable: %s", id,
				 sb_job_state_name(final), rerr);
		return NULL;
	}
	return job;
}

/* ---- in process ---- */

struct inproc {
	const struct sb_jobrun_hooks *hooks;
	size_t log_seen;   /* bytes of job->log already handed to on_log */
};

/*
 * The engine calls this on the job's thread whenever state or progress
 * change; complete log lines written since the last call go out first,
 * so a front end sees a stack's log before its next phase.
 */
static void inproc_notify(void *userdata, struct sb_job *job)
{
	struct inproc *ip = userdata;
	cleanup_free char *fresh = NULL;
	pthread_mutex_lock(&job->mu);
	enum sb_job_state st = job->state;
	struct sb_job_progress p = job->progress;
	if (ip->hooks->on_log && job->log.len > ip->log_seen) {
		const char *start = job->log.data + ip->log_seen;
		const char *end = memrchr(start, '\n', job->log.len - ip->log_seen);
		if (end) {
			fresh = xstrndup(start, (size_t)(end - start));
			ip->log_seen += (size_t)(end - start) + 1;
		}
	}
	pthread_mutex_unlock(&job->mu);
	if (fresh) {
		char *save = NULL;
		for (char *l = strtok_r(fresh, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
			ip->hooks->on_log(ip->hooks->userdata, l);
	}
	if (ip->hooks->on_progress)
		ip->hooks->on_progress(ip->hooks->userdata, st, &p);
}

/* Restarts the stacks a previous run that died left stopped (SPEC §5). Caller holds the lock. */
static void recover_first(const struct sb_config *cfg)
{
	int restarted, failed;
	if (sb_recover(cfg, &restarted, &failed) < 0 && failed > 0)
		sb_warn("%d stack(s) an interrupted run stopped could not be started again "
			"('stackback recover' retries)",
			failed);
	if (restarted > 0)
		sb_info("started %d stack(s) that an interrupted run had left stopped", restarted);
}

static struct sb_job *run_in_process(const struct sb_config *cfg, struct sb_job_request *req,
				     const struct sb_jobrun_opts *o, enum sb_jobrun_failure *why,
				     char **err)
{
	struct sb_lock lock = {.fd = -1};
	int id = 0;
	bool logging = false;
	/*
	 * A dry run changes nothing, STATE_DIR included: no lock, no job
	 * id (0), no recovery, and the engine persists nothing for it.
	 */
	if (!req->dry_run) {
		if (sb_state_prepare(cfg, err) < 0 || sb_lock_acquire(cfg, o->wait_lock, &lock, err) < 0) {
			*why = SB_JOBRUN_NOT_RUN;
			return NULL;
		}
		cleanup_free char *logpath = xasprintf("%s/log", cfg->state_dir);
		int lrc = sb_log_open_file(logpath, JOBRUN_LOG_MAX);
		if (lrc < 0)
			sb_warn("cannot write the log file '%s': %s", logpath, strerror(-lrc));
		logging = lrc == 0;
		recover_first(cfg);
		id = sb_state_next_job_id(cfg, err);
		if (id < 0) {
			*why = SB_JOBRUN_NOT_RUN;
			if (logging)
				sb_log_open_file(NULL, 0);
			sb_lock_release(&lock);
			return NULL;
		}
	}

	struct sb_job *job = sb_job_new(id, req);
	struct inproc ip = {.hooks = &o->hooks};
	job->notify = inproc_notify;
	job->notify_userdata = &ip;
	if (o->hooks.on_start)
		o->hooks.on_start(o->hooks.userdata, id, false, job);
	sb_job_execute(cfg, job);
	/* The last lines were logged after the final notify. */
	inproc_notify(&ip, job);
	job->notify = NULL;
	job->notify_userdata = NULL;

	if (logging)
		sb_log_open_file(NULL, 0);
	sb_lock_release(&lock);
	return job;
}

struct sb_job *sb_jobrun(const struct sb_config *cfg, struct sb_job_request *req,
			 const struct sb_jobrun_opts *o, enum sb_jobrun_failure *why, char **err)
{
	enum sb_jobrun_failure dummy;
	if (!why)
		why = &dummy;
	*err = NULL;
	struct sb_job *job = NULL;
	cleanup_free char *merr = NULL;
	cleanup_free char *payload = NULL;
	enum sb_job_kind kind = req->kind;
	bool dry_run = req->dry_run, daemon = false;
	enum sb_mount_state ms = sb_mount_state(cfg->mountpoint, &merr);
	if (ms == SB_MOUNT_STALE) {
		*why = SB_JOBRUN_NOT_RUN;
		*err = merr;
		merr = NULL;
	} else if (ms == SB_MOUNT_MOUNTED && sb_client_has_trigger(cfg->mountpoint, req->kind) &&
		   (payload = sb_client_trigger_payload(req))) {
		daemon = true;
		job = run_through_daemon(cfg, req, payload, o, why, err);
	} else {
		/* No trigger carries it (e.g. restore --to): the job lock keeps it apart from the daemon's jobs. */
		job = run_in_process(cfg, req, o, why, err);
	}
	/* The daemon notifies about what it refuses; this process about what it could not start. */
	if (!job && !daemon && !dry_run)
		sb_notify_refused(cfg, kind, *err);
	sb_job_request_free(req);
	return job;
}
