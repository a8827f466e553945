/* stackback forget: retention (restic forget --prune) per stack tag. */
#include <getopt.h>
#include <stdio.h>

#include "jobrun.h"
#include "stackback/stacks.h"

static int cmd_forget_exec(struct cli_ctx *ctx, int argc, char **argv);

const struct cli_cmd cmd_forget = {
	.name = "forget",
	.usage = "[--dry-run] [--json] [--wait-lock] [NAME...]",
	.summary = "apply the KEEP_* retention policy to every stack's snapshots (or the named ones)",
	.help = "Runs restic forget --prune with KEEP_DAILY, KEEP_WEEKLY, KEEP_MONTHLY and\n"
		"KEEP_YEARLY for each stack's tag, disabled stacks included.\n\n"
		"  --dry-run     list what would be removed; nothing is deleted\n"
		"  --json        print the report as JSON, no progress display\n"
		"  --wait-lock   wait for a running job instead of refusing\n\n"
		"Exit status: 0 ok, 1 failure, 2 usage.\n",
	.needs_config = true,
	.exec = cmd_forget_exec,
};

static int cmd_forget_exec(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{"dry-run", no_argument, NULL, 'n'},
		{"json", no_argument, NULL, 'j'},
		{"wait-lock", no_argument, NULL, 'w'},
		{0},
	};
	struct sb_job_request req = {.kind = SB_JOB_FORGET};
	struct cli_jobrun_opts o = {0};
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			req.dry_run = true;
			break;
		case 'j':
			o.json = true;
			break;
		case 'w':
			o.wait_lock = true;
			break;
		default:
			return cli_usage(&cmd_forget);
		}
	}
	for (int i = optind; i < argc; i++) {
		if (!sb_stack_name_valid(argv[i])) {
			cli_error("'%s' is not a valid stack name", argv[i]);
			sb_job_request_free(&req);
			return CLI_EXIT_USAGE;
		}
		if (!sb_strv_contains(&req.stacks, argv[i]))
			sb_strv_push(&req.stacks, argv[i]);
	}
	return cli_run_job(ctx, &req, &o);
}
