/* stackback check: restic check of the local repository. */
#include <getopt.h>
#include <stdio.h>

#include "jobrun.h"

static int cmd_check_exec(struct cli_ctx *ctx, int argc, char **argv);

const struct cli_cmd cmd_check = {
	.name = "check",
	.usage = "[--read-data] [--json] [--wait-lock]",
	.summary = "check the integrity of the restic repository",
	.help = "  --read-data   also read and verify every pack file (slow)\n"
		"  --json        print the report as JSON, no progress display\n"
		"  --wait-lock   wait for a running job instead of refusing (without the daemon)\n\n"
		"Exit status: 0 no errors, 1 errors found or the check failed, 2 usage.\n",
	.needs_config = true,
	.exec = cmd_check_exec,
};

static int cmd_check_exec(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{"read-data", no_argument, NULL, 'r'},
		{"json", no_argument, NULL, 'j'},
		{"wait-lock", no_argument, NULL, 'w'},
		{0},
	};
	struct sb_job_request req = {.kind = SB_JOB_CHECK};
	struct cli_jobrun_opts o = {0};
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			req.read_data = true;
			break;
		case 'j':
			o.json = true;
			break;
		case 'w':
			o.wait_lock = true;
			break;
		default:
			return cli_usage(&cmd_check);
		}
	}
	if (optind < argc) {
		cli_error("check takes no arguments");
		return cli_usage(&cmd_check);
	}
	return cli_run_job(ctx, &req, &o);
}
