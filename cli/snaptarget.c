/* [cloud:]NAME[@SNAP] for ls and get (see snaptarget.h). */
#include <stdio.h>
#include <string.h>

#include "snaptarget.h"
#include "stackback/cloud.h"
#include "stackback/stacks.h"

int snap_target_open(struct cli_ctx *ctx, const char *spec, struct snap_target *t)
{
	*t = (struct snap_target){0};
	const char *p = spec;
	if (sb_str_has_prefix(p, "cloud:")) {
		t->cloud = true;
		p += strlen("cloud:");
	}
	const char *at = strchr(p, '@');
	size_t name_len = at ? (size_t)(at - p) : strlen(p);
	const char *ref = at ? at + 1 : "latest";
	if (name_len == 0 || name_len > SB_STACK_NAME_MAX || !*ref) {
		cli_error("'%s' is not [cloud:]NAME[@SNAPSHOT]", spec);
		return CLI_EXIT_USAGE;
	}
	memcpy(t->stack, p, name_len);
	t->stack[name_len] = '\0';
	if (!sb_stack_name_valid(t->stack)) {
		cli_error("'%s' is not a valid stack name", t->stack);
		return CLI_EXIT_USAGE;
	}

	cleanup_free char *repo = NULL;
	if (t->cloud) {
		repo = sb_cloud_restored_repository(&ctx->cfg);
		if (!repo) {
			cli_error("there is no repository restored from the cloud (run 'stackback restore' first)");
			return CLI_EXIT_FAILURE;
		}
	}
	struct sb_snapview_opts o = {
		.cfg = &ctx->cfg,
		.repository = repo,
		.label = t->cloud ? "cloud" : "local",
	};
	cleanup_free char *err = NULL;
	t->view = sb_snapview_new(&o, &err);
	if (!t->view) {
		cli_error("cannot open the restic repository: %s", err);
		return CLI_EXIT_FAILURE;
	}
	/* restic's own timeout (BACKUP_TIMEOUT) ends a stuck run first. */
	double wait = ctx->cfg.backup_timeout > 0 ? (double)ctx->cfg.backup_timeout + 30 : 24 * 3600;
	int rc = sb_snapview_resolve(t->view, t->stack, ref, wait, &t->snap, &err);
	if (rc == 0)
		rc = sb_snapview_tree(t->view, &t->snap, wait, &t->tree, &err);
	if (rc < 0) {
		cli_error("%s", err);
		snap_target_close(t);
		return CLI_EXIT_FAILURE;
	}
	return CLI_EXIT_OK;
}

void snap_target_close(struct snap_target *t)
{
	sb_snaptree_unref(t->tree);
	sb_snapview_free(t->view);
	t->tree = NULL;
	t->view = NULL;
}

char *snap_target_label(const struct snap_target *t)
{
	return xasprintf("%s%s@%s", t->cloud ? "cloud:" : "", t->stack, t->snap.name);
}
