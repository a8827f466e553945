/* stackback init: create STATE_DIR and the restic repository if missing. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "jobrun.h"
#include "stackback/restic.h"

static int cmd_init_exec(struct cli_ctx *ctx, int argc, char **argv);

const struct cli_cmd cmd_init = {
	.name = "init",
	.usage = "[--dry-run]",
	.summary = "create the state directory and the restic repository if they are missing",
	.help = "Existing ones are left as they are, so init is safe to run again.\n\n"
		"  --dry-run     only say what would be created\n\n"
		"Exit status: 0 ok, 1 failure, 2 usage.\n",
	.needs_config = true,
	.exec = cmd_init_exec,
};

static int cmd_init_exec(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{"dry-run", no_argument, NULL, 'n'},
		{0},
	};
	bool dry_run = false;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'n')
			return cli_usage(&cmd_init);
		dry_run = true;
	}
	if (optind < argc) {
		cli_error("init takes no arguments");
		return cli_usage(&cmd_init);
	}
	const struct sb_config *cfg = &ctx->cfg;
	cleanup_free char *err = NULL;

	struct stat st;
	bool state_existed = stat(cfg->state_dir, &st) == 0;
	if (dry_run)
		printf("state directory %s: %s\n", cfg->state_dir,
		       state_existed ? "exists" : "would be created");
	else if (sb_state_prepare(cfg, &err) < 0) {
		cli_error("%s", err);
		return CLI_EXIT_FAILURE;
	} else {
		printf("state directory %s: %s\n", cfg->state_dir, state_existed ? "exists" : "created");
	}

	struct sb_restic r = {0};
	if (sb_restic_open(&r, cfg, cfg->restic_repository, &err) < 0) {
		cli_error("cannot open the restic repository '%s': %s", cfg->restic_repository, err);
		return CLI_EXIT_FAILURE;
	}
	int rc = CLI_EXIT_OK;
	if (dry_run) {
		printf("restic repository %s: %s\n", cfg->restic_repository,
		       sb_restic_repo_exists(&r) ? "exists" : "would be created");
	} else {
		bool created = false;
		if (sb_restic_init(&r, &created, &err) < 0) {
			cli_error("initialising the restic repository '%s' failed: %s",
				  cfg->restic_repository, err);
			rc = CLI_EXIT_FAILURE;
		} else {
			printf("restic repository %s: %s\n", cfg->restic_repository,
			       created ? "created" : "exists");
		}
	}
	sb_restic_close(&r);
	return rc;
}
