/* stackback umount: fusermount3 -u MOUNTPOINT, through the runner. */
#include <getopt.h>
#include <stdio.h>

#include "jobrun.h"
#include "stackback/runner.h"

static int cmd_umount_exec(struct cli_ctx *ctx, int argc, char **argv);

const struct cli_cmd cmd_umount = {
	.name = "umount",
	.usage = "[--lazy]",
	.summary = "unmount the control filesystem (a running job is cancelled cleanly)",
	.help = "Runs fusermount3 -u MOUNTPOINT; also clears a stale mount left by a dead daemon.\n\n"
		"  --lazy        detach now even if the mount is busy (fusermount3 -z)\n\n"
		"Exit status: 0 unmounted, 1 failure or nothing mounted, 2 usage.\n",
	.needs_config = true,
	.exec = cmd_umount_exec,
};

static int cmd_umount_exec(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{"lazy", no_argument, NULL, 'z'},
		{0},
	};
	bool lazy = false;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'z')
			return cli_usage(&cmd_umount);
		lazy = true;
	}
	if (optind < argc) {
		cli_error("umount takes no arguments (MOUNTPOINT comes from the configuration)");
		return cli_usage(&cmd_umount);
	}
	const char *mp = ctx->cfg.mountpoint;
	cleanup_free char *err = NULL;
	/* A stale mount is exactly what umount is for: no refusal here. */
	if (sb_mount_state(mp, &err) == SB_MOUNT_ABSENT) {
		cli_error("stackbackfs is not mounted at %s", mp);
		return CLI_EXIT_FAILURE;
	}
	const char *fm_argv[] = {"fusermount3", lazy ? "-uz" : "-u", mp, NULL};
	struct sb_run_opts o = {
		.argv = fm_argv,
		.timeout_s = 60,
		.capture_stderr = true,
	};
	struct sb_run_result res = {0};
	int rc = sb_run(&o, &res);
	if (rc != 0) {
		cleanup_free char *why = sb_run_describe(&res, o.timeout_s);
		cli_error("unmounting %s failed: fusermount3 %s", mp, why);
	}
	sb_run_result_free(&res);
	if (rc != 0)
		return CLI_EXIT_FAILURE;
	printf("unmounted %s\n", mp);
	return CLI_EXIT_OK;
}
