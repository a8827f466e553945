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
	static const struct cli_job_flags flags = {.dry_run = true};
	struct sb_job_request req = {.kind = SB_JOB_FORGET};
	struct cli_jobrun_opts o = {0};
	int rc = cli_job_options(&cmd_forget, argc, argv, &flags, &req, &o);
	if (rc == 0)
		rc = cli_job_stacks(argc, argv, &req);
	return rc ? rc : cli_run_job(ctx, &req, &o);
}
