/* stackback sync: Stage 2, check the repository and copy it to the cloud. */
#include <getopt.h>
#include <stdio.h>

#include "jobrun.h"

static int cmd_sync_exec(struct cli_ctx *ctx, int argc, char **argv);

const struct cli_cmd cmd_sync = {
	.name = "sync",
	.usage = "[--dry-run] [--json] [--wait-lock]",
	.summary = "check the restic repository and sync it to the cloud remote",
	.help = "Runs restic check, rclone sync of the repository to RCLONE_REMOTE:RCLONE_PATH,\n"
		"then rclone check of the copy.\n\n"
		"  --dry-run     show what would be transferred; the remote is not changed\n"
		"  --json        print the report as JSON, no progress display\n"
		"  --wait-lock   wait for a running job instead of refusing (without the daemon)\n\n"
		"Exit status: 0 ok, 1 failure, 2 usage.\n",
	.needs_config = true,
	.exec = cmd_sync_exec,
};

static int cmd_sync_exec(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct cli_job_flags flags = {.dry_run = true};
	struct sb_job_request req = {.kind = SB_JOB_SYNC};
	struct cli_jobrun_opts o = {0};
	int rc = cli_job_options(&cmd_sync, argc, argv, &flags, &req, &o);
	if (rc)
		return rc;
	if (optind < argc) {
		cli_error("sync takes no arguments");
		return cli_usage(&cmd_sync);
	}
	return cli_run_job(ctx, &req, &o);
}
