/* stackback wait: block until no job is queued or running (SPEC §7). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "jobrun.h"
#include "stackback/status.h"

/* Like timeout(1), so scripts can tell a timeout from a failed job. */
#define EXIT_TIMED_OUT 124

static int cmd_wait_exec(struct cli_ctx *ctx, int argc, char **argv);

const struct cli_cmd cmd_wait = {
	.name = "wait",
	.usage = "[--timeout S]",
	.summary = "wait until no job is queued or running; exit with the last job's result",
	.help = "Through the daemon when the control filesystem is mounted; otherwise waits\n"
		"until no process holds the job lock, then reads the newest job in STATE_DIR.\n\n"
		"  --timeout S   give up after S seconds\n\n"
		"Exit status: 0 the newest job ended ok (or no job ever ran), 1 it failed or was\n"
		"cancelled, 124 the timeout passed first, 2 usage.\n",
	.needs_config = true,
	.exec = cmd_wait_exec,
};

static int parse_seconds(const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || v < 0 || v != v || v > 1e9)
		return -1;
	*out = v;
	return 0;
}

static int report_last(const struct sb_client_last *last)
{
	if (!last->any) {
		printf("no job has run\n");
		return CLI_EXIT_OK;
	}
	printf("job %d %s: %s\n", last->id, sb_job_kind_name(last->kind),
	       sb_job_state_name(last->state));
	return last->state == SB_JOB_OK ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
}

/* Without a daemon: the job lock is held exactly while a job runs. */
static int wait_in_state_dir(struct cli_ctx *ctx, double timeout_s, struct sb_client_last *last)
{
	double start = sb_now_monotonic();
	for (;;) {
		struct sb_status_snapshot snap;
		sb_status_snapshot_load(&ctx->cfg, &snap);
		if (!snap.running) {
			*last = (struct sb_client_last){
				.any = snap.has_last,
				.id = snap.last.id,
				.kind = snap.last.kind,
				.state = snap.last.state,
			};
			return 0;
		}
		if (atomic_load(cli_stop_flag()))
			return 1;
		if (timeout_s >= 0 && sb_now_monotonic() - start >= timeout_s)
			return 1;
		struct timespec ts = {.tv_nsec = 200 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

static int cmd_wait_exec(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{"timeout", required_argument, NULL, 't'},
		{0},
	};
	double timeout_s = -1;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 't')
			return cli_usage(&cmd_wait);
		if (parse_seconds(optarg, &timeout_s) < 0) {
			cli_error("--timeout needs a number of seconds, not '%s'", optarg);
			return CLI_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		cli_error("wait takes no arguments");
		return cli_usage(&cmd_wait);
	}
	bool mounted;
	if (cli_check_mount(ctx, &mounted) < 0)
		return CLI_EXIT_FAILURE;

	struct sb_client_last last = {0};
	cleanup_free char *err = NULL;
	cli_signals_catch(NULL);
	int rc;
	if (mounted) {
		/* The client reads a limit <= 0 as none; --timeout 0 means "look once". */
		double limit = timeout_s < 0 ? 0 : timeout_s > 0 ? timeout_s : 1e-9;
		rc = sb_client_wait(ctx->cfg.mountpoint, limit, cli_stop_flag(), &last, &err);
	} else {
		rc = wait_in_state_dir(ctx, timeout_s, &last);
	}
	bool interrupted = atomic_load(cli_stop_flag());
	cli_signals_restore();
	if (rc < 0) {
		cli_error("%s", err);
		return CLI_EXIT_FAILURE;
	}
	if (rc > 0) {
		if (interrupted)
			return CLI_EXIT_FAILURE;
		fprintf(stderr, "stackback: still busy after %gs\n", timeout_s);
		return EXIT_TIMED_OUT;
	}
	return report_last(&last);
}
