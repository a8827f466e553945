/* stackback restore: Stage 3, bring the repository back from the cloud. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "jobrun.h"

static int cmd_restore_exec(struct cli_ctx *ctx, int argc, char **argv);

const struct cli_cmd cmd_restore = {
	.name = "restore",
	.usage = "[--to DIR] [--force] [--dry-run] [--json] [--wait-lock]",
	.summary = "copy the repository back from the cloud and verify it",
	.help = "Copies RCLONE_REMOTE:RCLONE_PATH into RESTORE_DIR (or DIR), runs restic check\n"
		"on the copy and makes its snapshots browsable. The local repository is never\n"
		"touched.\n\n"
		"  --to DIR      restore into DIR instead of RESTORE_DIR\n"
		"  --force       restore into a directory that is not empty\n"
		"  --dry-run     show what would be copied; nothing is written\n"
		"  --json        print the report as JSON, no progress display\n"
		"  --wait-lock   wait for a running job instead of refusing (without the daemon)\n\n"
		"Exit status: 0 ok, 1 failure, 2 usage.\n",
	.needs_config = true,
	.exec = cmd_restore_exec,
};

/* The daemon has its own working directory: a relative --to means the caller's. */
static char *absolute_path(const char *path)
{
	char cwd[PATH_MAX];
	if (path[0] == '/' || !getcwd(cwd, sizeof(cwd)))
		return xstrdup(path);
	return xasprintf("%s/%s", cwd, path);
}

static int take_restore_option(int opt, const char *arg, struct sb_job_request *req)
{
	if (opt == 'f') {
		req->force = true;
		return 0;
	}
	if (opt != 't')
		return -1;
	if (!*arg) {
		cli_error("--to needs a directory");
		return -1;
	}
	free(req->target);
	req->target = absolute_path(arg);
	return 0;
}

static int cmd_restore_exec(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option own[] = {
		{"to", required_argument, NULL, 't'},
		{"force", no_argument, NULL, 'f'},
		{0},
	};
	static const struct cli_job_flags flags = {.dry_run = true, .extra = own, .on_extra = take_restore_option};
	struct sb_job_request req = {.kind = SB_JOB_RESTORE};
	struct cli_jobrun_opts o = {0};
	int rc = cli_job_options(&cmd_restore, argc, argv, &flags, &req, &o);
	if (rc)
		return rc;
	if (optind < argc) {
		cli_error("restore takes no arguments (restore-stack puts one stack back)");
		sb_job_request_free(&req);
		return cli_usage(&cmd_restore);
	}
	return cli_run_job(ctx, &req, &o);
}
