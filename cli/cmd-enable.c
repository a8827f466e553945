/*
 * stackback enable / disable: change the selection in the dirlist. Both
 * commands share this file; they differ only in the value they write.
 */
#include <fnmatch.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "selection.h"
#include "stackback/log.h"

static int cmd_enable_exec(struct cli_ctx *ctx, int argc, char **argv);
static int cmd_disable_exec(struct cli_ctx *ctx, int argc, char **argv);

#define TOGGLE_HELP(verb)                                                                        \
	"NAME is a stack under DOCKER_STACKS_DIR, or an absolute path to a stack\n"              \
	"directory elsewhere (an external stack, named by its basename).\n\n"                    \
	"  --all            " verb " every stack present on disk\n"                              \
	"  --glob PATTERN   " verb " the stacks whose name matches PATTERN (fnmatch;\n"          \
	"                   may be repeated)\n"                                                  \
	"  --dry-run        print what would change; write nothing\n\n"                          \
	"Stacks that clash with another are left out of --all and --glob.\n"                     \
	"An unknown or invalid name fails the whole command: nothing is written.\n\n"           \
	"Exit status: 0 ok, 1 failure, 2 usage.\n"

const struct cli_cmd cmd_enable = {
	.name = "enable",
	.usage = "[--dry-run] NAME...|--all|--glob PATTERN",
	.summary = "select stacks for backup (writes the dirlist)",
	.help = TOGGLE_HELP("enable"),
	.needs_config = true,
	.exec = cmd_enable_exec,
};

const struct cli_cmd cmd_disable = {
	.name = "disable",
	.usage = "[--dry-run] NAME...|--all|--glob PATTERN",
	.summary = "leave stacks out of backups (writes the dirlist)",
	.help = TOGGLE_HELP("disable"),
	.needs_config = true,
	.exec = cmd_disable_exec,
};

/* The keys to change, without duplicates (owned). */
static void add_key(struct sb_strv *keys, const char *key)
{
	if (!sb_strv_contains(keys, key))
		sb_strv_push(keys, key);
}

/* The stacks --all and --glob pick: present on disk, clash-free. */
static bool pickable(const struct sb_stack *st, const char *how)
{
	if (st->origin == SB_STACK_MISSING)
		return false;
	if (st->conflict) {
		sb_warn("leaving stack '%s' out of %s: it clashes with another stack", st->name, how);
		return false;
	}
	return true;
}

static const char *done_word(bool enable, bool dry_run)
{
	if (dry_run)
		return enable ? "would enable" : "would disable";
	return enable ? "enabled" : "disabled";
}

/* One line per requested stack, as done or as "would". */
static void report(const struct sb_selection *sel, const struct sb_strv *keys, bool enable, bool dry_run)
{
	for (size_t i = 0; i < keys->n; i++) {
		const char *key = keys->v[i];
		const struct sb_stack *st = sb_selection_find(sel, key);
		if (!st) {
			/* Unknown before the update, which accepted it: a new external stack. */
			printf("%s %s (external stack '%s', added to the dirlist)\n", done_word(enable, dry_run),
			       key, strrchr(key, '/') + 1);
			continue;
		}
		if (st->origin != SB_STACK_NEW && st->enabled == enable) {
			printf("%s: already %s\n", st->name, enable ? "enabled" : "disabled");
			continue;
		}
		const char *note = "";
		if (st->origin == SB_STACK_NEW)
			note = " (new, added to the dirlist)";
		else if (st->origin == SB_STACK_MISSING)
			note = " (its directory is missing)";
		printf("%s %s%s\n", done_word(enable, dry_run), st->name, note);
		if (st->conflict && enable)
			sb_warn("stack '%s' is not backed up while it clashes with another stack", st->name);
	}
	if (keys->n == 0)
		printf("no stack to %s\n", enable ? "enable" : "disable");
}

/* An absolute path as the dirlist spells it: without trailing slashes (owned). */
static char *key_of_arg(const char *arg)
{
	char *key = xstrdup(arg);
	size_t len = strlen(key);
	while (len > 1 && key[0] == '/' && key[len - 1] == '/')
		key[--len] = '\0';
	return key;
}

static int toggle(struct cli_ctx *ctx, const struct cli_cmd *self, bool enable, int argc, char **argv)
{
	static const struct option opts[] = {
		{"all", no_argument, NULL, 'a'},
		{"glob", required_argument, NULL, 'g'},
		{"dry-run", no_argument, NULL, 'n'},
		{0},
	};
	bool all = false, dry_run = false;
	struct sb_strv globs = {0};
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'a':
			all = true;
			break;
		case 'g':
			sb_strv_push(&globs, optarg);
			break;
		case 'n':
			dry_run = true;
			break;
		default:
			sb_strv_free(&globs);
			return cli_usage(self);
		}
	}
	if (!all && globs.n == 0 && optind == argc) {
		cli_error("%s needs stack names, --all or --glob PATTERN", self->name);
		return cli_usage(self);
	}

	struct sb_selection sel;
	if (cli_selection_load(ctx, &sel, false) < 0) {
		sb_strv_free(&globs);
		return CLI_EXIT_FAILURE;
	}
	int rc = CLI_EXIT_OK;
	struct sb_strv keys = {0};
	for (int i = optind; i < argc; i++) {
		cleanup_free char *key = key_of_arg(argv[i]);
		add_key(&keys, key);
	}
	for (size_t i = 0; all && i < sel.n; i++)
		if (pickable(&sel.stacks[i], "--all"))
			add_key(&keys, sel.stacks[i].dirlist_key);
	for (size_t g = 0; g < globs.n; g++) {
		bool matched = false;
		for (size_t i = 0; i < sel.n; i++) {
			if (fnmatch(globs.v[g], sel.stacks[i].name, 0) != 0)
				continue;
			matched = true;
			if (pickable(&sel.stacks[i], "--glob"))
				add_key(&keys, sel.stacks[i].dirlist_key);
		}
		if (!matched) {
			cli_error("no stack matches '%s'", globs.v[g]);
			rc = CLI_EXIT_FAILURE;
		}
	}

	if (rc == CLI_EXIT_OK) {
		struct sb_selection_change *changes = xcalloc(keys.n, sizeof(*changes));
		for (size_t i = 0; i < keys.n; i++)
			changes[i] = (struct sb_selection_change){.key = keys.v[i], .enabled = enable};
		char *err = NULL;
		if (sb_selection_update(&ctx->cfg, changes, keys.n, false, false, dry_run, &err) < 0) {
			cli_error("cannot %s: %s", self->name, err);
			free(err);
			rc = CLI_EXIT_FAILURE;
		} else {
			report(&sel, &keys, enable, dry_run);
		}
		free(changes);
	}
	sb_strv_free(&keys);
	sb_strv_free(&globs);
	sb_selection_free(&sel);
	return rc;
}

static int cmd_enable_exec(struct cli_ctx *ctx, int argc, char **argv)
{
	return toggle(ctx, &cmd_enable, true, argc, argv);
}

static int cmd_disable_exec(struct cli_ctx *ctx, int argc, char **argv)
{
	return toggle(ctx, &cmd_disable, false, argc, argv);
}
