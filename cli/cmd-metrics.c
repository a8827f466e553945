/* stackback metrics: the Prometheus exposition, on stdout or as a node_exporter textfile. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "jobrun.h"
#include "selection.h"
#include "stackback/metrics.h"
#include "stackback/status.h"

static int cmd_metrics_exec(struct cli_ctx *ctx, int argc, char **argv);

const struct cli_cmd cmd_metrics = {
	.name = "metrics",
	.usage = "[--textfile PATH]",
	.summary = "print the Prometheus metrics (last backup per stack, durations, downtime, bytes, sync)",
	.help = "The same text as the mount's metrics file: from the daemon when the control\n"
		"filesystem is mounted, from STATE_DIR otherwise. It never runs restic.\n\n"
		"  --textfile PATH  write it to PATH atomically instead of stdout, for\n"
		"                   node_exporter's textfile collector (PATH should end in .prom)\n\n"
		"Exit status: 0 ok, 1 failure, 2 usage.\n",
	.needs_config = true,
	.exec = cmd_metrics_exec,
};

static char *render(struct cli_ctx *ctx)
{
	bool mounted;
	if (cli_check_mount(ctx, &mounted) < 0)
		return NULL;
	if (mounted) {
		/* The daemon's own view: it knows the running job and the queue. */
		cleanup_free char *path = xasprintf("%s/metrics", ctx->cfg.mountpoint);
		char *text = NULL;
		int rc = sb_read_file(path, 16u << 20, &text, NULL);
		if (rc < 0) {
			cli_error("reading %s failed: %s", path, strerror(-rc));
			return NULL;
		}
		return text;
	}
	struct sb_selection sel;
	if (cli_selection_load(ctx, &sel, false) < 0)
		return NULL;
	char *text = sb_metrics_text(&ctx->cfg, &sel, NULL);
	sb_selection_free(&sel);
	return text;
}

static int cmd_metrics_exec(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{"textfile", required_argument, NULL, 't'},
		{0},
	};
	const char *textfile = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 't')
			return cli_usage(&cmd_metrics);
		textfile = optarg;
	}
	if (optind < argc) {
		cli_error("metrics takes no arguments");
		return cli_usage(&cmd_metrics);
	}
	cleanup_free char *text = render(ctx);
	if (!text)
		return CLI_EXIT_FAILURE;
	if (!textfile) {
		fputs(text, stdout);
		return CLI_EXIT_OK;
	}
	cleanup_free char *err = NULL;
	if (sb_metrics_write_textfile(textfile, text, &err) < 0) {
		cli_error("%s", err);
		return CLI_EXIT_FAILURE;
	}
	return CLI_EXIT_OK;
}
