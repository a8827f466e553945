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
	static const struct option opts[] = {
		{"dry-run", no_argument, NULL, 'n'},
		{"json", no_argument, NULL, 'j'},
		{"wait-lock", no_argument, NULL, 'w'},
		{0},
	};
	struct sb_job_request req = {.kind = SB_JOB_BACKUP};
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
			return cli_usage(&cmd_backup);
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
