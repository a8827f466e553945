/* stackback cancel: stop a queued or running job; its stacks run again. */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
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

/* The id of the job the daemon runs, from status.json; 0 when it runs none. */
static int running_job(const char *mountpoint, char **err)
{
	cleanup_free char *path = xasprintf("%s/status.json", mountpoint);
	cleanup_free char *text = NULL;
	int rc = sb_read_file(path, 1u << 20, &text, NULL);
	if (rc < 0) {
		*err = xasprintf("reading %s failed: %s", path, strerror(-rc));
		return -1;
	}
	struct json_object *root = json_tokener_parse(text), *job, *id;
	int out = 0;
	if (root && json_object_object_get_ex(root, "job", &job) && json_object_is_type(job, json_type_object) &&
	    json_object_object_get_ex(job, "id", &id) && json_object_is_type(id, json_type_int))
		out = (int)json_object_get_int64(id);
	json_object_put(root);
	return out;
}

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
		int running = running_job(ctx->cfg.mountpoint, &err);
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
