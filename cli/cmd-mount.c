/*
 * stackback mount: start the control filesystem's daemon. The daemon
 * found next to this executable wins over PATH, so a build tree or an
 * unpacked release runs its own pair.
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "jobrun.h"
#include "stackback/runner.h"

/* How long stackbackfs may take to answer at MOUNTPOINT once started. */
#define MOUNT_WAIT_S 15.0

static int cmd_mount_exec(struct cli_ctx *ctx, int argc, char **argv);

const struct cli_cmd cmd_mount = {
	.name = "mount",
	.usage = "",
	.summary = "start stackbackfs, the control filesystem, at MOUNTPOINT",
	.help = "Runs the stackbackfs next to this program (or from PATH) with the same -c\n"
		"files, and returns once the mount answers. Jobs then run in the daemon.\n\n"
		"Exit status: 0 mounted (or already mounted), 1 failure, 2 usage.\n",
	.needs_config = true,
	.exec = cmd_mount_exec,
};

/* The stackbackfs to run (caller frees): beside us, in the build tree, else from PATH. */
static char *find_daemon(void)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		const char *dir = dirname(self);
		/* bin/ and sbin/ when installed; cli/ and fs/ in the build tree. */
		static const char *const rel[] = {"stackbackfs", "../sbin/stackbackfs",
						  "../fs/stackbackfs"};
		for (size_t i = 0; i < SB_ARRAY_SIZE(rel); i++) {
			char *cand = xasprintf("%s/%s", dir, rel[i]);
			if (access(cand, X_OK) == 0)
				return cand;
			free(cand);
		}
	}
	return sb_program_exists("stackbackfs") ? xstrdup("stackbackfs") : NULL;
}

static int run_daemon(const char *const *argv)
{
	struct sb_run_opts o = {
		.argv = argv,
		.timeout_s = 60,
		.capture_stderr = true,
	};
	struct sb_run_result res = {0};
	int rc = sb_run(&o, &res);
	if (rc != 0) {
		cleanup_free char *why = sb_run_describe(&res, o.timeout_s);
		cli_error("starting the control filesystem failed: %s %s", argv[0], why);
	}
	sb_run_result_free(&res);
	return rc == 0 ? 0 : -1;
}

static int cmd_mount_exec(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {{0}};
	if (getopt_long(argc, argv, "", opts, NULL) != -1)
		return cli_usage(&cmd_mount);
	if (optind < argc) {
		cli_error("mount takes no arguments (MOUNTPOINT comes from the configuration)");
		return cli_usage(&cmd_mount);
	}
	const char *mp = ctx->cfg.mountpoint;
	bool mounted;
	if (cli_check_mount(ctx, &mounted) < 0)
		return CLI_EXIT_FAILURE;
	if (mounted) {
		printf("stackbackfs is already mounted at %s\n", mp);
		return CLI_EXIT_OK;
	}
	cleanup_free char *daemon = find_daemon();
	if (!daemon) {
		cli_error("stackbackfs was found neither next to this program nor in PATH");
		return CLI_EXIT_FAILURE;
	}
	int mrc = sb_mkdir_p(mp, 0700);
	if (mrc < 0) {
		cli_error("cannot create mountpoint '%s': %s", mp, strerror(-mrc));
		return CLI_EXIT_FAILURE;
	}

	struct sb_strv args = {0};
	sb_strv_push(&args, daemon);
	for (size_t i = 0; i < ctx->config_paths.n; i++) {
		sb_strv_push(&args, "-c");
		sb_strv_push(&args, ctx->config_paths.v[i]);
	}
	sb_strv_push(&args, mp);
	/* stackbackfs daemonizes once mounted: its first process returns then. */
	int rc = run_daemon((const char *const *)args.v);
	sb_strv_free(&args);
	if (rc < 0)
		return CLI_EXIT_FAILURE;

	double start = sb_now_monotonic();
	for (;;) {
		cleanup_free char *err = NULL;
		enum sb_mount_state ms = sb_mount_state(mp, &err);
		if (ms == SB_MOUNT_MOUNTED)
			break;
		if (ms == SB_MOUNT_STALE) {
			cli_error("%s", err);
			return CLI_EXIT_FAILURE;
		}
		if (sb_now_monotonic() - start > MOUNT_WAIT_S) {
			cli_error("%s started but nothing was mounted at %s after %.0fs "
				  "(see its log in %s/log)",
				  daemon, mp, MOUNT_WAIT_S, ctx->cfg.state_dir);
			return CLI_EXIT_FAILURE;
		}
		struct timespec ts = {.tv_nsec = 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	printf("mounted stackbackfs at %s\n", mp);
	return CLI_EXIT_OK;
}
