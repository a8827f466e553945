/* Loading the stack selection for list, enable, disable and discover. */
#include "selection.h"

#include <stdio.h>

#include "stackback/log.h"

int cli_selection_load(struct cli_ctx *ctx, struct sb_selection *sel, bool warn)
{
	struct sb_diags diags = {0};
	int rc = sb_selection_load(&ctx->cfg, sel, &diags);
	sb_diags_print(&diags, stderr);
	sb_diags_free(&diags);
	if (rc < 0) {
		cli_error("cannot load the stack selection");
		return -1;
	}
	if (!warn)
		return 0;
	for (size_t i = 0; i < sel->skipped.n; i++)
		sb_warn("skipped %s", sel->skipped.v[i]);
	/* Both stacks of a clash carry the same message: print it once. */
	struct sb_strv seen = {0};
	for (size_t i = 0; i < sel->n; i++) {
		const char *c = sel->stacks[i].conflict;
		if (!c || sb_strv_contains(&seen, c))
			continue;
		sb_strv_push(&seen, c);
		sb_warn("%s: neither is touched until one is renamed or removed", c);
	}
	sb_strv_free(&seen);
	return 0;
}
