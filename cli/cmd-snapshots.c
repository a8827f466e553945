/* stackback snapshots: list the restic snapshots, all or one stack's. */
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "stackback/restic.h"
#include "stackback/stacks.h"

static int cmd_snapshots_exec(struct cli_ctx *ctx, int argc, char **argv);

const struct cli_cmd cmd_snapshots = {
	.name = "snapshots",
	.usage = "[--json] [NAME]",
	.summary = "list the snapshots in the restic repository, oldest first",
	.help = "With NAME, only the snapshots tagged with that stack's name.\n\n"
		"  --json        print an array of objects: id, short_id, stack, time, hostname,\n"
		"                paths, tags\n\n"
		"Exit status: 0 ok, 1 failure, 2 usage.\n",
	.needs_config = true,
	.exec = cmd_snapshots_exec,
};

static struct json_object *strv_json(const struct sb_strv *sv)
{
	struct json_object *a = json_object_new_array();
	for (size_t i = 0; i < sv->n; i++)
		json_object_array_add(a, json_object_new_string(sv->v[i]));
	return a;
}

static struct json_object *nullable(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

static void print_json(const struct sb_snapshot_list *l)
{
	struct json_object *a = json_object_new_array();
	for (size_t i = 0; i < l->n; i++) {
		const struct sb_snapshot *s = &l->v[i];
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "id", nullable(s->id));
		json_object_object_add(o, "short_id", nullable(s->short_id));
		json_object_object_add(o, "stack", nullable(s->stack));
		json_object_object_add(o, "time", nullable(s->time));
		json_object_object_add(o, "hostname", nullable(s->hostname));
		json_object_object_add(o, "paths", strv_json(&s->paths));
		json_object_object_add(o, "tags", strv_json(&s->tags));
		json_object_array_add(a, o);
	}
	printf("%s\n", json_object_to_json_string_ext(a, JSON_C_TO_STRING_PRETTY |
							      JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(a);
}

static void print_table(const struct sb_snapshot_list *l)
{
	if (l->n == 0) {
		printf("no snapshots\n");
		return;
	}
	printf("%-20s  %-24s  %-8s  %s\n", "TIME (UTC)", "STACK", "ID", "HOST");
	for (size_t i = 0; i < l->n; i++) {
		const struct sb_snapshot *s = &l->v[i];
		char when[32];
		sb_format_time_utc(s->time_utc, when, sizeof(when));
		printf("%-20s  %-24s  %-8s  %s\n", when, s->stack ? s->stack : "-",
		       s->short_id ? s->short_id : "-", s->hostname ? s->hostname : "-");
	}
}

static int cmd_snapshots_exec(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{0},
	};
	bool json = false;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'j')
			return cli_usage(&cmd_snapshots);
		json = true;
	}
	if (argc - optind > 1) {
		cli_error("snapshots takes at most one stack name");
		return cli_usage(&cmd_snapshots);
	}
	const char *name = optind < argc ? argv[optind] : NULL;
	if (name && !sb_stack_name_valid(name)) {
		cli_error("'%s' is not a valid stack name", name);
		return CLI_EXIT_USAGE;
	}

	cleanup_free char *err = NULL;
	struct sb_restic r = {0};
	if (sb_restic_open(&r, &ctx->cfg, ctx->cfg.restic_repository, &err) < 0) {
		cli_error("cannot open the restic repository '%s': %s", ctx->cfg.restic_repository,
			  err);
		return CLI_EXIT_FAILURE;
	}
	struct sb_snapshot_list list = {0};
	int rc = sb_restic_snapshots(&r, name, &list, &err);
	sb_restic_close(&r);
	if (rc < 0) {
		cli_error("listing the snapshots of '%s' failed: %s", ctx->cfg.restic_repository, err);
		return CLI_EXIT_FAILURE;
	}
	if (json)
		print_json(&list);
	else
		print_table(&list);
	sb_snapshot_list_free(&list);
	return CLI_EXIT_OK;
}
