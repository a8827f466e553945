/*
 * stackback recover: start the stacks an interrupted run left stopped,
 * and remove the snapshot copies (SNAPSHOT_MODE) it left behind.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "jobrun.h"

static int cmd_recover_exec(struct cli_ctx *ctx, int argc, char **argv);

const struct cli_cmd cmd_recover = {
	.name = "recover",
	.usage = "[--wait-lock]",
	.summary = "start again the stacks that a crashed or killed run left stopped",
	.help = "Reads the journal in STATE_DIR (stacks stopped by stackback and not yet\n"
		"started again), starts each of them and clears it from the journal; then\n"
		"removes the snapshot copies (SNAPSHOT_MODE) the staging journal lists. Every\n"
		"job does this first anyway; run it after a crash to get the stacks back now.\n\n"
		"  --wait-lock   wait for a running job instead of refusing\n\n"
		"Exit status: 0 nothing left stopped or staged, 1 a stack could not be started\n"
		"or a copy removed, 2 usage.\n",
	.needs_config = true,
	.exec = cmd_recover_exec,
};

static bool still_listed(const struct sb_journal_entry *e, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(e[i].name, name) == 0)
			return true;
	return false;
}

static bool copy_listed(const struct sb_staging_entry *e, size_t n, const char *path)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(e[i].path, path) == 0)
			return true;
	return false;
}

static int cmd_recover_exec(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{"wait-lock", no_argument, NULL, 'w'},
		{0},
	};
	bool wait = false;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'w')
			return cli_usage(&cmd_recover);
		wait = true;
	}
	if (optind < argc) {
		cli_error("recover takes no arguments");
		return cli_usage(&cmd_recover);
	}

	struct sb_lock lock;
	if (cli_take_lock(ctx, wait, &lock) < 0)
		return CLI_EXIT_FAILURE;
	struct sb_journal_entry *before = NULL, *after = NULL;
	size_t n_before = 0, n_after = 0;
	if (sb_journal_read(&ctx->cfg, &before, &n_before) < 0) {
		cli_error("cannot read the journal in '%s'", ctx->cfg.state_dir);
		sb_lock_release(&lock);
		return CLI_EXIT_FAILURE;
	}
	struct sb_staging_entry *copies = NULL, *left = NULL;
	size_t n_copies = 0, n_left = 0;
	if (sb_staging_read(&ctx->cfg, &copies, &n_copies) < 0)
		n_copies = 0;
	int restarted = 0, failed = 0;
	int rc = sb_recover(&ctx->cfg, &restarted, &failed);
	if (sb_journal_read(&ctx->cfg, &after, &n_after) < 0)
		n_after = 0;
	if (sb_staging_read(&ctx->cfg, &left, &n_left) < 0)
		n_left = 0;
	sb_lock_release(&lock);

	if (n_before == 0 && n_copies == 0)
		printf("nothing to recover: no stack was left stopped\n");
	for (size_t i = 0; i < n_before; i++)
		printf("%s stack '%s' (%s)\n",
		       still_listed(after, n_after, before[i].name) ? "could not start" : "started",
		       before[i].name, before[i].path);
	bool copy_left = false;
	for (size_t i = 0; i < n_copies; i++) {
		bool stays = copy_listed(left, n_left, copies[i].path);
		copy_left |= stays;
		printf("%s snapshot copy '%s' of stack '%s'\n", stays ? "could not remove" : "removed",
		       copies[i].path, copies[i].name);
	}
	sb_journal_entries_free(before, n_before);
	sb_journal_entries_free(after, n_after);
	sb_staging_entries_free(copies, n_copies);
	sb_staging_entries_free(left, n_left);
	return rc == 0 && failed == 0 && !copy_left ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
}
