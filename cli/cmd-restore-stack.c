/* stackback restore-stack: put one stack back from a snapshot, in place. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "jobrun.h"
#include "stackback/stacks.h"

static int cmd_restore_stack_exec(struct cli_ctx *ctx, int argc, char **argv);

const struct cli_cmd cmd_restore_stack = {
	.name = "restore-stack",
	.usage = "[--dry-run] [--json] [--wait-lock] NAME [SNAPSHOT]",
	.summary = "put a stack's directory back from a snapshot, keeping the current one aside",
	.help = "SNAPSHOT is latest (the default), a short or full snapshot id, or a\n"
		"snapshots/NAME/ directory name; prefixed with cloud: it is taken from the\n"
		"repository that 'stackback restore' copied back from the cloud.\n"
		"The snapshot is restored beside the stack first; then the stack is stopped\n"
		"if it runs, its directory moved aside to .NAME.before-restore-TIME (never\n"
		"deleted), the restored one moved into place, and the stack started again.\n\n"
		"  --dry-run     resolve the snapshot and say what would happen\n"
		"  --json        print the report as JSON, no progress display\n"
		"  --wait-lock   wait for a running job instead of refusing (without the daemon)\n\n"
		"Exit status: 0 restored, 1 failed, 2 usage.\n",
	.needs_config = true,
	.exec = cmd_restore_stack_exec,
};

static int cmd_restore_stack_exec(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct cli_job_flags flags = {.dry_run = true};
	struct sb_job_request req = {.kind = SB_JOB_RESTORE_STACK};
	struct cli_jobrun_opts o = {0};
	int rc = cli_job_options(&cmd_restore_stack, argc, argv, &flags, &req, &o);
	if (rc)
		return rc;
	int left = argc - optind;
	if (left < 1 || left > 2)
		return cli_usage(&cmd_restore_stack);
	const char *name = argv[optind];
	if (!sb_stack_name_valid(name)) {
		cli_error("'%s' is not a valid stack name", name);
		return CLI_EXIT_USAGE;
	}
	const char *snapshot = left == 2 ? argv[optind + 1] : "latest";
	if (!*snapshot || strpbrk(snapshot, " \t\r\n")) {
		cli_error("'%s' is not a snapshot reference", snapshot);
		return CLI_EXIT_USAGE;
	}
	sb_strv_push(&req.stacks, name);
	req.snapshot = xstrdup(snapshot);
	return cli_run_job(ctx, &req, &o);
}
