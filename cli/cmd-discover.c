/*
 * stackback discover: writes the stacks found on disk into the dirlist,
 * disabled (opt-in), and with --prune drops the lines of stacks whose
 * directory is gone.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "selection.h"

static int cmd_discover_exec(struct cli_ctx *ctx, int argc, char **argv);

const struct cli_cmd cmd_discover = {
	.name = "discover",
	.usage = "[--prune] [--dry-run]",
	.summary = "add new stacks to the dirlist (disabled); drop missing ones with --prune",
	.help = "New stacks are appended as NAME=false: nothing is backed up until it is\n"
		"enabled. Comments and the order of existing lines are kept.\n\n"
		"  --prune     remove the lines of stacks whose directory or compose file is gone\n"
		"  --dry-run   print what would change; write nothing\n\n"
		"Exit status: 0 ok, 1 failure, 2 usage.\n",
	.needs_config = true,
	.exec = cmd_discover_exec,
};

static int cmd_discover_exec(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{"prune", no_argument, NULL, 'p'},
		{"dry-run", no_argument, NULL, 'n'},
		{0},
	};
	bool prune = false, dry_run = false;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			prune = true;
			break;
		case 'n':
			dry_run = true;
			break;
		default:
			return cli_usage(&cmd_discover);
		}
	}
	if (optind < argc) {
		cli_error("discover takes no arguments ('%s')", argv[optind]);
		return cli_usage(&cmd_discover);
	}

	struct sb_selection sel;
	if (cli_selection_load(ctx, &sel, true) < 0)
		return CLI_EXIT_FAILURE;
	char *err = NULL;
	if (sb_selection_update(&ctx->cfg, NULL, 0, true, prune, dry_run, &err) < 0) {
		cli_error("cannot update the dirlist: %s", err);
		free(err);
		sb_selection_free(&sel);
		return CLI_EXIT_FAILURE;
	}
	size_t changes = 0;
	for (size_t i = 0; i < sel.n; i++) {
		const struct sb_stack *st = &sel.stacks[i];
		if (st->origin == SB_STACK_NEW) {
			printf("%s %s (disabled)\n", dry_run ? "would add" : "added", st->name);
			changes++;
		} else if (st->origin == SB_STACK_MISSING && prune) {
			printf("%s %s (%s)\n", dry_run ? "would prune" : "pruned", st->name, st->path);
			changes++;
		} else if (st->origin == SB_STACK_MISSING) {
			printf("missing %s (%s): kept until 'stackback discover --prune'\n", st->name, st->path);
		}
	}
	if (changes == 0)
		printf("the dirlist is up to date\n");
	sb_selection_free(&sel);
	return CLI_EXIT_OK;
}
