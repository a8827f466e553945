/*
 * Running a job from the CLI: sb_jobrun() decides where it runs; this
 * file only shows it (progress bar, log lines, report) and turns
 * SIGINT/SIGTERM/SIGHUP into a clean cancel (in process) or into
 * leaving the job to the daemon (mounted).
 */
#include "jobrun.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "progress.h"
#include "stackback/jobrun.h"
#include "stackback/log.h"
#include "stackback/logsetup.h"
#include "stackback/stacks.h"
#include "stackback/util.h"

int cli_job_options(const struct cli_cmd *cmd, int argc, char **argv, const struct cli_job_flags *flags,
		    struct sb_job_request *req, struct cli_jobrun_opts *o)
{
	/* Short codes of the shared options: none of them is a character. */
	enum { OPT_DRY_RUN = 0x100, OPT_JSON, OPT_WAIT_LOCK };
	struct option opts[16];
	size_t n = 0;
	for (size_t i = 0; flags->extra && flags->extra[i].name && n < SB_ARRAY_SIZE(opts) - 4; i++)
		opts[n++] = flags->extra[i];
	if (flags->dry_run)
		opts[n++] = (struct option){"dry-run", no_argument, NULL, OPT_DRY_RUN};
	opts[n++] = (struct option){"json", no_argument, NULL, OPT_JSON};
	opts[n++] = (struct option){"wait-lock", no_argument, NULL, OPT_WAIT_LOCK};
	opts[n] = (struct option){0};
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == OPT_DRY_RUN)
			req->dry_run = true;
		else if (c == OPT_JSON)
			o->json = true;
		else if (c == OPT_WAIT_LOCK)
			o->wait_lock = true;
		else if (c == '?' || c == ':' || !flags->on_extra || flags->on_extra(c, optarg, req) < 0) {
			sb_job_request_free(req);
			return cli_usage(cmd);
		}
	}
	return 0;
}

int cli_job_stacks(int argc, char **argv, struct sb_job_request *req)
{
	for (int i = optind; i < argc; i++) {
		if (!sb_stack_name_valid(argv[i])) {
			cli_error("'%s' is not a valid stack name", argv[i]);
			sb_job_request_free(req);
			return CLI_EXIT_USAGE;
		}
		if (!sb_strv_contains(&req->stacks, argv[i]))
			sb_strv_push(&req->stacks, argv[i]);
	}
	return 0;
}

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
	/* What this process now does to the stacks belongs in the log file, as a job's does. */
	sb_log_setup_file(&ctx->cfg);
	return 0;
}

/* ---- the front end of sb_jobrun() ---- */

struct show_ctx {
	struct cli_progress pg;
	const char *mountpoint;
	enum sb_job_kind kind;
	bool daemon;
	/* In process with a bar, the bar owns stderr: log lines come through on_log. */
	bool route_log;
};

static void show_start(void *userdata, int job_id, bool daemon, struct sb_job *job)
{
	struct show_ctx *sc = userdata;
	sc->daemon = daemon;
	if (daemon) {
		if (sc->pg.mode != CLI_PROGRESS_NONE)
			fprintf(stderr, "stackback: job %d (%s) queued in the daemon at %s\n", job_id,
				sb_job_kind_name(sc->kind), sc->mountpoint);
		return;
	}
	atomic_store(&signal_job, job);
	/* A signal that came before the job existed still cancels it. */
	if (atomic_load(&stop_requested))
		atomic_store(&job->cancel, true);
	sc->route_log = sc->pg.mode == CLI_PROGRESS_BAR;
	if (sc->route_log)
		sb_log_set_stderr(false);
}

static void show_progress(void *userdata, enum sb_job_state state, const struct sb_job_progress *p)
{
	struct show_ctx *sc = userdata;
	cli_progress_update(&sc->pg, state, p);
}

static void show_log(void *userdata, const char *line)
{
	struct show_ctx *sc = userdata;
	/* In process without a bar, the log's own stderr sink already printed it. */
	if (sc->daemon || sc->route_log)
		cli_progress_log(&sc->pg, line);
}

int cli_run_job(struct cli_ctx *ctx, struct sb_job_request *req, const struct cli_jobrun_opts *o)
{
	if (o->wait_lock) {
		pid_t holder = sb_lock_holder(&ctx->cfg);
		cleanup_free char *merr = NULL;
		if (holder > 0 && sb_mount_state(ctx->cfg.mountpoint, &merr) == SB_MOUNT_ABSENT)
			fprintf(stderr, "stackback: waiting for the job lock held by pid %ld\n",
				(long)holder);
	}
	struct show_ctx sc = {.mountpoint = ctx->cfg.mountpoint, .kind = req->kind};
	cli_progress_init(&sc.pg, o->json);
	struct sb_jobrun_opts ro = {
		.wait_lock = o->wait_lock,
		.stop = cli_stop_flag(),
		.hooks = {
			.on_start = show_start,
			.on_progress = show_progress,
			.on_log = show_log,
			.userdata = &sc,
		},
	};
	enum sb_jobrun_failure why = SB_JOBRUN_NOT_RUN;
	cleanup_free char *err = NULL;
	cli_signals_catch(NULL);
	struct sb_job *job = sb_jobrun(&ctx->cfg, req, &ro, &why, &err);
	cli_signals_restore();
	if (sc.route_log)
		sb_log_set_stderr(true);
	cli_progress_done(&sc.pg);

	if (!job) {
		if (why == SB_JOBRUN_DETACHED)
			fprintf(stderr, "stackback: %s ('stackback wait' waits for it)\n", err);
		else
			cli_error("%s", err);
		return CLI_EXIT_FAILURE;
	}
	cleanup_free char *report = o->json ? sb_job_report_json(job) : sb_job_report_text(job);
	fputs(report, stdout);
	fflush(stdout);
	pthread_mutex_lock(&job->mu);
	enum sb_job_state final = job->state;
	pthread_mutex_unlock(&job->mu);
	sb_job_free(job);
	return final == SB_JOB_OK ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
}
