/* stackback cancel: stop a queued or running job; its stacks run again. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "jobrun.h"

static int cmd_cancel_exec(struct cli_ctx *ctx, int argc, char **argv);

const struct cli_cmd cmd_cancel = {
	.name = "cancel",
	.usage = "[ID]",
	.summary = "cancel the running job (or job ID): every stack it stopped starts again",
	.help = "With the control filesystem mounted, writes 1 to jobs/ID/cancel: a queued job\n"
		"never runs, a running one stops at its next step and starts again every stack\n"
		"it stopped. ID defaults to the running job.\n"
		"Without the daemon, sends SIGTERM to the process that holds the job lock (a\n"
		"stackback or stackback-tui running a job), which cancels it as Ctrl-C does;\n"
		"no ID is taken then.\n\n"
		"Exit status: 0 the cancel was sent, 1 no such job or it has ended, 2 usage.\n",
	.needs_config = true,
	.exec = cmd_cancel_exec,
};

static int cancel_in_process(struct cli_ctx *ctx)
{
	pid_t holder = sb_lock_holder(&ctx->cfg);
	if (holder <= 0) {
		cli_error("no job is running");
		return CLI_EXIT_FAILURE;
	}
	if (kill(holder, SIGTERM) < 0) {
		cli_error("cannot signal process %ld, which runs the job: %s", (long)holder, strerror(errno));
		return CLI_EXIT_FAILURE;
	}
	printf("asked process %ld to cancel its job\n", (long)holder);
	return CLI_EXIT_OK;
}

static int cmd_cancel_exec(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {{0}};
	if (getopt_long(argc, argv, "", opts, NULL) != -1)
		return cli_usage(&cmd_cancel);
	long id = 0;
	if (argc - optind > 1 || (optind < argc && sb_parse_long(argv[optind], 1, INT_MAX, &id) < 0)) {
		if (optind < argc)
			cli_error("'%s' is not a job id", argv[optind]);
		return cli_usage(&cmd_cancel);
	}
	bool mounted;
	if (cli_check_mount(ctx, &mounted) < 0)
		return CLI_EXIT_FAILURE;
	if (!mounted) {
		if (id) {
			cli_error("without the daemon only the running job can be cancelled: run 'stackback cancel'");
			return CLI_EXIT_USAGE;
		}
		return cancel_in_process(ctx);
	}
	cleanup_free char *err = NULL;
	if (!id) {
		int running = sb_client_running_job(ctx->cfg.mountpoint, &err);
		if (running < 0) {
			cli_error("%s", err);
			return CLI_EXIT_FAILURE;
		}
		if (running == 0) {
			cli_error("no job is running");
			return CLI_EXIT_FAILURE;
		}
		id = running;
	}
	if (sb_client_cancel(ctx->cfg.mountpoint, (int)id, &err) < 0) {
		cli_error("%s", err);
		return CLI_EXIT_FAILURE;
	}
	printf("cancelling job %ld\n", id);
	return CLI_EXIT_OK;
}
