/* stackback status: the daemon's state, the running job and the last one. */
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "jobrun.h"
#include "stackback/status.h"

static int cmd_status_exec(struct cli_ctx *ctx, int argc, char **argv);

const struct cli_cmd cmd_status = {
	.name = "status",
	.usage = "[--json]",
	.summary = "show whether a job runs, the queue, the last job and the cloud copy",
	.help = "From the daemon when the control filesystem is mounted (its status and\n"
		"status.json files), from STATE_DIR otherwise.\n\n"
		"  --json        print the status object (SPEC: state, job, queue, last, cloud)\n\n"
		"Exit status: 0 ok, 1 failure (e.g. a stale mount), 2 usage.\n",
	.needs_config = true,
	.exec = cmd_status_exec,
};

static int print_from_daemon(const char *mountpoint, bool json)
{
	cleanup_free char *path = xasprintf("%s/%s", mountpoint, json ? "status.json" : "status");
	cleanup_free char *text = NULL;
	int rc = sb_read_file(path, 1u << 20, &text, NULL);
	if (rc < 0) {
		cli_error("reading %s failed: %s", path, strerror(-rc));
		return CLI_EXIT_FAILURE;
	}
	fputs(text, stdout);
	return CLI_EXIT_OK;
}

static int cmd_status_exec(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{0},
	};
	bool json = false;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'j')
			return cli_usage(&cmd_status);
		json = true;
	}
	if (optind < argc) {
		cli_error("status takes no arguments");
		return cli_usage(&cmd_status);
	}
	bool mounted;
	if (cli_check_mount(ctx, &mounted) < 0)
		return CLI_EXIT_FAILURE;
	if (mounted)
		return print_from_daemon(ctx->cfg.mountpoint, json);

	struct sb_status_snapshot snap;
	sb_status_snapshot_load(&ctx->cfg, &snap);
	struct json_object *status = sb_status_json(&ctx->cfg, &snap);
	if (json) {
		printf("%s\n", json_object_to_json_string_ext(status, JSON_C_TO_STRING_PRETTY |
									  JSON_C_TO_STRING_NOSLASHESCAPE));
	} else {
		cleanup_free char *text = sb_status_text(status);
		fputs(text, stdout);
	}
	json_object_put(status);
	return CLI_EXIT_OK;
}
