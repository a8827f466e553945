/*
 * stackback list: the stacks in dirlist order, then new ones, with their
 * selection and docker state. Never writes the dirlist.
 */
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "selection.h"
#include "stackback/docker.h"
#include "stackback/log.h"

static int cmd_list_exec(struct cli_ctx *ctx, int argc, char **argv);

const struct cli_cmd cmd_list = {
	.name = "list",
	.usage = "[--json]",
	.summary = "show the stacks, whether they are enabled, and their docker state",
	.help = "Stacks appear in dirlist order, then stacks found on disk but not yet in\n"
		"the dirlist (marked new; 'stackback discover' adds them, disabled).\n"
		"A stack whose directory vanished is marked missing until\n"
		"'stackback discover --prune'. Skipped directories and name clashes are\n"
		"reported on stderr. STATE comes from docker: running, stopped, partial,\n"
		"missing, or unknown when docker cannot be asked.\n\n"
		"  --json   print an array of objects: name, enabled, state, path,\n"
		"           external, origin (listed|new|missing), conflict (or null),\n"
		"           compose_file (or null), dirlist_key\n\n"
		"Exit status: 0 ok, 1 failure (e.g. a malformed dirlist), 2 usage.\n",
	.needs_config = true,
	.exec = cmd_list_exec,
};

static const char *origin_name(enum sb_stack_origin o)
{
	switch (o) {
	case SB_STACK_NEW:
		return "new";
	case SB_STACK_MISSING:
		return "missing";
	case SB_STACK_LISTED:
		break;
	}
	return "listed";
}

/*
 * Asks docker once per stack. The first failure is reported and the
 * remaining stacks stay unknown, so a dead engine costs one timeout, not
 * one per stack. Clashing stacks are not asked: their compose project is
 * shared, so any answer would be about both.
 */
static void fill_states(struct cli_ctx *ctx, const struct sb_selection *sel, enum sb_stack_state *states)
{
	for (size_t i = 0; i < sel->n; i++)
		states[i] = sel->stacks[i].origin == SB_STACK_MISSING ? SB_STATE_MISSING : SB_STATE_UNKNOWN;
	struct sb_compose compose;
	char *err = NULL;
	if (sb_compose_detect(&ctx->cfg, &compose, &err) < 0) {
		sb_warn("stack states unknown: %s", err);
		free(err);
		return;
	}
	for (size_t i = 0; i < sel->n; i++) {
		const struct sb_stack *st = &sel->stacks[i];
		if (st->origin == SB_STACK_MISSING || st->conflict)
			continue;
		states[i] = sb_docker_state(&ctx->cfg, &compose, st, &err);
		if (states[i] == SB_STATE_UNKNOWN) {
			sb_warn("stack states unknown: docker failed for stack '%s': %s", st->name,
				err ? err : "no reason given");
			free(err);
			break;
		}
	}
	sb_compose_free(&compose);
}

static void print_json(const struct sb_selection *sel, const enum sb_stack_state *states)
{
	json_object *arr = json_object_new_array();
	for (size_t i = 0; i < sel->n; i++) {
		const struct sb_stack *st = &sel->stacks[i];
		json_object *o = json_object_new_object();
		json_object_object_add(o, "name", json_object_new_string(st->name));
		json_object_object_add(o, "enabled", json_object_new_boolean(st->enabled));
		json_object_object_add(o, "state", json_object_new_string(sb_stack_state_name(states[i])));
		json_object_object_add(o, "path", json_object_new_string(st->path));
		json_object_object_add(o, "external", json_object_new_boolean(st->external));
		json_object_object_add(o, "origin", json_object_new_string(origin_name(st->origin)));
		json_object_object_add(o, "conflict", st->conflict ? json_object_new_string(st->conflict) : NULL);
		json_object_object_add(o, "compose_file",
				       st->compose_file ? json_object_new_string(st->compose_file) : NULL);
		json_object_object_add(o, "dirlist_key", json_object_new_string(st->dirlist_key));
		json_object_array_add(arr, o);
	}
	puts(json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(arr);
}

static void print_table(const struct sb_selection *sel, const enum sb_stack_state *states)
{
	int w = (int)strlen("NAME");
	for (size_t i = 0; i < sel->n; i++)
		if ((int)strlen(sel->stacks[i].name) > w)
			w = (int)strlen(sel->stacks[i].name);
	printf("%-*s  %-7s  %-7s  %s\n", w, "NAME", "ENABLED", "STATE", "PATH");
	for (size_t i = 0; i < sel->n; i++) {
		const struct sb_stack *st = &sel->stacks[i];
		struct sb_buf marks = {0};
		if (st->origin != SB_STACK_LISTED)
			sb_buf_printf(&marks, " %s", st->origin == SB_STACK_NEW ? "NEW" : "MISSING");
		if (st->external)
			sb_buf_puts(&marks, " EXTERNAL");
		if (st->conflict)
			sb_buf_puts(&marks, " CONFLICT");
		printf("%-*s  %-7s  %-7s  %s%s\n", w, st->name, st->enabled ? "yes" : "no",
		       sb_stack_state_name(states[i]), st->path, marks.data ? marks.data : "");
		sb_buf_free(&marks);
	}
}

static int cmd_list_exec(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{0},
	};
	bool json = false;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		default:
			return cli_usage(&cmd_list);
		}
	}
	if (optind < argc) {
		cli_error("list takes no arguments ('%s')", argv[optind]);
		return cli_usage(&cmd_list);
	}
	struct sb_selection sel;
	if (cli_selection_load(ctx, &sel, true) < 0)
		return CLI_EXIT_FAILURE;
	enum sb_stack_state *states = xcalloc(sel.n, sizeof(*states));
	fill_states(ctx, &sel, states);
	if (json)
		print_json(&sel, states);
	else
		print_table(&sel, states);
	free(states);
	sb_selection_free(&sel);
	return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
}
