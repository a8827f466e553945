/*
 * Running a job from the CLI. Through the daemon, the CLI only writes
 * the trigger and follows jobs/ID/ like any reader of the mount; in
 * process, it takes the job lock, restarts what a crashed run left
 * stopped, and calls the same engine the daemon's worker calls.
 */
#include "jobrun.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "progress.h"
#include "stackback/log.h"
#include "stackback/util.h"

/* Written by the signal handler, read by the job and the followers. */
static atomic_bool stop_requested;
static _Atomic(struct sb_job *) signal_job;
static struct sigaction saved_actions[3];
static const int caught_signals[3] = {SIGINT, SIGTERM, SIGHUP};

static void on_signal(int sig)
{
	(void)sig;
	atomic_store(&stop_requested, true);
	struct sb_job *job = atomic_load(&signal_job);
	if (job)
		atomic_store(&job->cancel, true);
}

void cli_signals_catch(struct sb_job *job)
{
	atomic_store(&stop_requested, false);
	atomic_store(&signal_job, job);
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	/*
	 * SA_RESTART: blocking reads and writes in the engine go on; the
	 * runner polls the cancel flag and poll() itself is never restarted.
	 */
	sa.sa_flags = SA_RESTART;
	for (size_t i = 0; i < SB_ARRAY_SIZE(caught_signals); i++)
		sigaction(caught_signals[i], &sa, &saved_actions[i]);
}

void cli_signals_restore(void)
{
	for (size_t i = 0; i < SB_ARRAY_SIZE(caught_signals); i++)
		sigaction(caught_signals[i], &saved_actions[i], NULL);
	atomic_store(&signal_job, NULL);
}

const atomic_bool *cli_stop_flag(void)
{
	return &stop_requested;
}

int cli_check_mount(struct cli_ctx *ctx, bool *mounted)
{
	cleanup_free char *err = NULL;
	enum sb_mount_state ms = sb_mount_state(ctx->cfg.mountpoint, &err);
	if (ms == SB_MOUNT_STALE) {
		cli_error("%s", err);
		return -1;
	}
	*mounted = ms == SB_MOUNT_MOUNTED;
	return 0;
}

int cli_take_lock(struct cli_ctx *ctx, bool wait, struct sb_lock *lock)
{
	cleanup_free char *err = NULL;
	if (sb_state_prepare(&ctx->cfg, &err) < 0) {
		cli_error("%s", err);
		return -1;
	}
	if (wait) {
		pid_t holder = sb_lock_holder(&ctx->cfg);
		if (holder > 0)
			fprintf(stderr, "stackback: waiting for the job lock held by pid %ld\n",
				(long)holder);
	}
	if (sb_lock_acquire(&ctx->cfg, wait, lock, &err) < 0) {
		cli_error("%s%s", err, wait ? "" : " (--wait-lock waits for it)");
		return -1;
	}
	return 0;
}

static int exit_code_for(enum sb_job_state st)
{
	return st == SB_JOB_OK ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
}

/* ---- through the daemon ---- */

struct follow_ctx {
	struct cli_progress *pg;
};

static void follow_progress(void *userdata, int job_id, enum sb_job_state state,
			    const struct sb_job_progress *p)
{
	struct follow_ctx *fc = userdata;
	(void)job_id;
	cli_progress_update(fc->pg, state, p);
}

static void follow_log(void *userdata, const char *line)
{
	struct follow_ctx *fc = userdata;
	cli_progress_log(fc->pg, line);
}

static int print_daemon_report(const char *mp, int id, bool json)
{
	cleanup_free char *err = NULL;
	cleanup_free char *report = sb_client_report(mp, id, &err);
	if (!report) {
		cli_error("%s", err);
		return -1;
	}
	if (json) {
		fputs(report, stdout);
		return 0;
	}
	struct sb_job *job = sb_client_job_from_report(report, strlen(report), &err);
	if (!job) {
		cli_error("job %d: %s", id, err);
		return -1;
	}
	cleanup_free char *text = sb_job_report_text(job);
	fputs(text, stdout);
	sb_job_free(job);
	return 0;
}

static int run_through_daemon(struct cli_ctx *ctx, const struct sb_job_request *req,
			      const char *payload, const struct cli_jobrun_opts *o)
{
	const char *mp = ctx->cfg.mountpoint;
	cleanup_free char *err = NULL;
	int id;
	if (sb_client_trigger(mp, req->kind, payload, &id, &err) < 0) {
		cli_error("%s", err);
		return CLI_EXIT_FAILURE;
	}
	if (!o->json)
		fprintf(stderr, "stackback: job %d (%s %s) queued in the daemon at %s\n", id,
			sb_job_kind_name(req->kind), payload, mp);

	struct cli_progress pg;
	cli_progress_init(&pg, o->json);
	struct follow_ctx fc = {.pg = &pg};
	struct sb_client_follow_opts fo = {
		.stop = cli_stop_flag(),
		.on_progress = follow_progress,
		.on_log = follow_log,
		.userdata = &fc,
	};
	enum sb_job_state final;
	cli_signals_catch(NULL);
	int rc = sb_client_follow(mp, id, &fo, &final, &err);
	cli_signals_restore();
	cli_progress_done(&pg);
	if (rc < 0) {
		cli_error("%s", err);
		return CLI_EXIT_FAILURE;
	}
	if (rc > 0) {
		fprintf(stderr, "stackback: stopped following job %d; it goes on in the daemon "
				"('stackback wait' waits for it)\n",
			id);
		return CLI_EXIT_FAILURE;
	}
	if (print_daemon_report(mp, id, o->json) < 0)
		return CLI_EXIT_FAILURE;
	return exit_code_for(final);
}

/* ---- in process ---- */

struct inproc_ctx {
	struct cli_progress pg;
	/* The bar owns stderr: the job's log lines are printed above it from job->log. */
	bool route_log;
	size_t log_seen;
};

static void inproc_notify(void *userdata, struct sb_job *job)
{
	struct inproc_ctx *ic = userdata;
	cleanup_free char *fresh = NULL;
	pthread_mutex_lock(&job->mu);
	enum sb_job_state st = job->state;
	struct sb_job_progress p = job->progress;
	if (ic->route_log && job->log.len > ic->log_seen) {
		const char *start = job->log.data + ic->log_seen;
		const char *end = memrchr(start, '\n', job->log.len - ic->log_seen);
		if (end) {
			fresh = xstrndup(start, (size_t)(end - start));
			ic->log_seen += (size_t)(end - start) + 1;
		}
	}
	pthread_mutex_unlock(&job->mu);
	if (fresh) {
		char *save = NULL;
		for (char *l = strtok_r(fresh, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
			cli_progress_log(&ic->pg, l);
	}
	cli_progress_update(&ic->pg, st, &p);
}

/* Restarts the stacks a previous run that died left stopped (SPEC §5). */
static void recover_first(struct cli_ctx *ctx)
{
	int restarted, failed;
	if (sb_recover(&ctx->cfg, &restarted, &failed) < 0 && failed > 0)
		sb_warn("%d stack(s) an interrupted run stopped could not be started again "
			"('stackback recover' retries)",
			failed);
	if (restarted > 0)
		sb_info("started %d stack(s) that an interrupted run had left stopped", restarted);
}

static int run_in_process(struct cli_ctx *ctx, struct sb_job_request *req,
			  const struct cli_jobrun_opts *o)
{
	struct sb_lock lock = {.fd = -1};
	int id = 0;
	/*
	 * A dry run changes nothing, STATE_DIR included: no lock, no job
	 * id (0), no recovery, and the engine persists nothing for it.
	 */
	if (!req->dry_run) {
		if (cli_take_lock(ctx, o->wait_lock, &lock) < 0)
			return CLI_EXIT_FAILURE;
		cleanup_free char *logpath = xasprintf("%s/log", ctx->cfg.state_dir);
		int lrc = sb_log_open_file(logpath, 8u << 20);
		if (lrc < 0)
			sb_warn("cannot write the log file '%s': %s", logpath, strerror(-lrc));
		recover_first(ctx);
		cleanup_free char *err = NULL;
		id = sb_state_next_job_id(&ctx->cfg, &err);
		if (id < 0) {
			cli_error("%s", err);
			sb_lock_release(&lock);
			return CLI_EXIT_FAILURE;
		}
	}

	struct sb_job *job = sb_job_new(id, req);
	struct inproc_ctx ic = {0};
	cli_progress_init(&ic.pg, o->json);
	ic.route_log = ic.pg.mode == CLI_PROGRESS_BAR;
	job->notify = inproc_notify;
	job->notify_userdata = &ic;

	if (ic.route_log)
		sb_log_set_stderr(false);
	cli_signals_catch(job);
	enum sb_job_state final = sb_job_execute(&ctx->cfg, job);
	cli_signals_restore();
	if (ic.route_log) {
		inproc_notify(&ic, job);
		sb_log_set_stderr(true);
	}
	cli_progress_done(&ic.pg);

	cleanup_free char *report = o->json ? sb_job_report_json(job) : sb_job_report_text(job);
	fputs(report, stdout);
	fflush(stdout);
	sb_job_free(job);
	sb_lock_release(&lock);
	sb_log_open_file(NULL, 0);
	return exit_code_for(final);
}

int cli_run_job(struct cli_ctx *ctx, struct sb_job_request *req, const struct cli_jobrun_opts *o)
{
	bool mounted;
	int rc;
	cleanup_free char *payload = sb_client_trigger_payload(req);
	if (cli_check_mount(ctx, &mounted) < 0)
		rc = CLI_EXIT_FAILURE;
	else if (mounted && payload && sb_client_has_trigger(ctx->cfg.mountpoint, req->kind))
		rc = run_through_daemon(ctx, req, payload, o);
	else
		/* No trigger carries this request: the job lock still keeps it apart from the daemon's. */
		rc = run_in_process(ctx, req, o);
	sb_job_request_free(req);
	return rc;
}
