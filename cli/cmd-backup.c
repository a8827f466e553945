/* stackback backup: Stage 1 for every enabled stack, or the named ones. */
#include <getopt.h>
#include <stdio.h>

#include "jobrun.h"
#include "stackback/stacks.h"

static int cmd_backup_exec(struct cli_ctx *ctx, int argc, char **argv);

const struct cli_cmd cmd_backup = {
	.name = "backup",
	.usage = "[--dry-run] [--json] [--wait-lock] [NAME...]",
	.summary = "back up the enabled stacks (or the named ones) into the restic repository",
	.help = "Each stack is stopped if it runs, backed up, and started again if it ran.\n"
		"Named stacks are backed up even when disabled.\n\n"
		"  --dry-run     show what would be backed up; nothing is stopped or written\n"
		"  --json        print the report as JSON, no progress display\n"
		"  --wait-lock   wait for a running job instead of refusing (without the daemon)\n\n"
		"When the control filesystem is mounted, the job runs in the daemon.\n"
		"Exit status: 0 every stack ok, 1 a stack or the job failed, 2 usage.\n",
	.needs_config = true,
	.exec = cmd_backup_exec,
};

static int cmd_backup_exec(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct cli_job_flags flags = {.dry_run = true};
	struct sb_job_request req = {.kind = SB_JOB_BACKUP};
	struct cli_jobrun_opts o = {0};
	int rc = cli_job_options(&cmd_backup, argc, argv, &flags, &req, &o);
	if (rc == 0)
		rc = cli_job_stacks(argc, argv, &req);
	return rc ? rc : cli_run_job(ctx, &req, &o);
}
