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

static int take_check_option(int opt, const char *arg, struct sb_job_request *req)
{
	(void)arg;
	if (opt != 'r')
		return -1;
	req->read_data = true;
	return 0;
}

static int cmd_check_exec(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option own[] = {
		{"read-data", no_argument, NULL, 'r'},
		{0},
	};
	static const struct cli_job_flags flags = {.extra = own, .on_extra = take_check_option};
	struct sb_job_request req = {.kind = SB_JOB_CHECK};
	struct cli_jobrun_opts o = {0};
	int rc = cli_job_options(&cmd_check, argc, argv, &flags, &req, &o);
	if (rc)
		return rc;
	if (optind < argc) {
		cli_error("check takes no arguments");
		return cli_usage(&cmd_check);
	}
	return cli_run_job(ctx, &req, &o);
}
