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

static int cmd_restore_exec(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{"to", required_argument, NULL, 't'},
		{"force", no_argument, NULL, 'f'},
		{"dry-run", no_argument, NULL, 'n'},
		{"json", no_argument, NULL, 'j'},
		{"wait-lock", no_argument, NULL, 'w'},
		{0},
	};
	struct sb_job_request req = {.kind = SB_JOB_RESTORE};
	struct cli_jobrun_opts o = {0};
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			if (!*optarg) {
				cli_error("--to needs a directory");
				sb_job_request_free(&req);
				return cli_usage(&cmd_restore);
			}
			free(req.target);
			req.target = absolute_path(optarg);
			break;
		case 'f':
			req.force = true;
			break;
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
			sb_job_request_free(&req);
			return cli_usage(&cmd_restore);
		}
	}
	if (optind < argc) {
		cli_error("restore takes no arguments (restore-stack puts one stack back)");
		sb_job_request_free(&req);
		return cli_usage(&cmd_restore);
	}
	return cli_run_job(ctx, &req, &o);
}
