/*
 * The job worker: one thread per run, calling sb_jobrun() exactly as the
 * CLI does (the daemon when mounted, this process otherwise). Its hooks
 * only copy what they hear into the run view under the lock and wake
 * the main loop; the run screen draws from that copy.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "stackback/log.h"
#include "tui.h"

void tui_jobs_init(struct tui_jobs *j, struct tui *t)
{
	*j = (struct tui_jobs){.t = t};
	pthread_mutex_init(&j->mu, NULL);
	atomic_init(&j->stop, false);
}

static void on_start(void *userdata, int job_id, bool daemon, struct sb_job *job)
{
	struct tui_jobs *j = userdata;
	pthread_mutex_lock(&j->mu);
	j->job = job;
	tui_run_started(&j->view, job_id, daemon);
	pthread_mutex_unlock(&j->mu);
	tui_wake(j->t);
}

static void on_progress(void *userdata, enum sb_job_state state, const struct sb_job_progress *p)
{
	struct tui_jobs *j = userdata;
	pthread_mutex_lock(&j->mu);
	tui_run_progress(&j->view, state, p);
	/* In process, each stack's result shows as soon as the engine has it. */
	if (j->job)
		tui_run_reports(&j->view, j->job);
	pthread_mutex_unlock(&j->mu);
	tui_wake(j->t);
}

static void on_log(void *userdata, const char *line)
{
	struct tui_jobs *j = userdata;
	pthread_mutex_lock(&j->mu);
	tui_run_log(&j->view, line);
	pthread_mutex_unlock(&j->mu);
	tui_wake(j->t);
}

static void *worker(void *arg)
{
	struct tui_jobs *j = arg;
	struct sb_jobrun_opts o = {
		.stop = &j->stop,
		.hooks = {.on_start = on_start, .on_progress = on_progress, .on_log = on_log, .userdata = j},
	};
	enum sb_jobrun_failure why = SB_JOBRUN_NOT_RUN;
	char *err = NULL;
	struct sb_job *job = sb_jobrun(&j->t->cfg, &j->req, &o, &why, &err);

	pthread_mutex_lock(&j->mu);
	j->job = NULL;
	if (job)
		tui_run_finished(&j->view, job);
	else
		tui_run_failed(&j->view, err);
	j->busy = false;
	j->finished++;
	pthread_mutex_unlock(&j->mu);

	sb_job_free(job);
	free(err);
	tui_wake(j->t);
	return NULL;
}

int tui_jobs_start(struct tui_jobs *j, struct sb_job_request *req, char **err)
{
	tui_jobs_reap(j);
	pthread_mutex_lock(&j->mu);
	if (j->busy) {
		pthread_mutex_unlock(&j->mu);
		*err = xstrdup("a job started here still runs; wait for it or cancel it first");
		sb_job_request_free(req);
		return -1;
	}
	tui_run_begin(&j->view, req->kind, req->dry_run);
	j->req = *req;
	*req = (struct sb_job_request){0};
	j->busy = true;
	atomic_store(&j->stop, false);
	pthread_mutex_unlock(&j->mu);

	int rc = pthread_create(&j->th, NULL, worker, j);
	if (rc != 0) {
		pthread_mutex_lock(&j->mu);
		j->busy = false;
		sb_job_request_free(&j->req);
		tui_run_failed(&j->view, strerror(rc));
		pthread_mutex_unlock(&j->mu);
		*err = xasprintf("cannot start the job's thread: %s", strerror(rc));
		return -1;
	}
	j->joinable = true;
	return 0;
}

bool tui_jobs_busy(struct tui_jobs *j)
{
	pthread_mutex_lock(&j->mu);
	bool busy = j->busy;
	pthread_mutex_unlock(&j->mu);
	return busy;
}

bool tui_jobs_in_process(struct tui_jobs *j)
{
	pthread_mutex_lock(&j->mu);
	/* Until the daemon accepts it, a starting job may still become an in-process one. */
	bool in = j->busy && !(j->view.phase == TUI_RUN_RUNNING && j->view.daemon);
	pthread_mutex_unlock(&j->mu);
	return in;
}

int tui_jobs_daemon_job(struct tui_jobs *j)
{
	pthread_mutex_lock(&j->mu);
	int id = j->busy && j->view.phase == TUI_RUN_RUNNING && j->view.daemon ? j->view.job_id : 0;
	pthread_mutex_unlock(&j->mu);
	return id;
}

void tui_jobs_cancel(struct tui_jobs *j)
{
	pthread_mutex_lock(&j->mu);
	if (j->job)
		atomic_store(&j->job->cancel, true);
	pthread_mutex_unlock(&j->mu);
	atomic_store(&j->stop, true);
}

bool tui_jobs_reap(struct tui_jobs *j)
{
	if (!j->joinable)
		return true;
	if (tui_jobs_busy(j))
		return false;
	pthread_join(j->th, NULL);
	j->joinable = false;
	return true;
}

void tui_jobs_shutdown(struct tui_jobs *j)
{
	tui_jobs_cancel(j);
	if (j->joinable) {
		pthread_join(j->th, NULL);
		j->joinable = false;
	}
	pthread_mutex_lock(&j->mu);
	tui_run_free(&j->view);
	pthread_mutex_unlock(&j->mu);
}

uint64_t tui_jobs_finished(struct tui_jobs *j)
{
	pthread_mutex_lock(&j->mu);
	uint64_t n = j->finished;
	pthread_mutex_unlock(&j->mu);
	return n;
}
