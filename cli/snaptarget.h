/*
 * What `stackback ls` and `stackback get` point at: [cloud:]NAME[@SNAP],
 * opened as a snapshot view, resolved to a snapshot and its tree.
 */
#ifndef STACKBACK_CLI_SNAPTARGET_H
#define STACKBACK_CLI_SNAPTARGET_H

#include "cli.h"
#include "stackback/snapview.h"

struct snap_target {
	bool cloud;                  /* the repository restored from the cloud */
	char stack[SB_STACK_NAME_MAX + 1];
	struct sb_snapview *view;
	struct sb_snapview_snap snap;
	struct sb_snaptree *tree;
};

/*
 * Parses spec and loads the snapshot's tree (from the disk caches the
 * daemon shares, else through restic). Prints the error itself. Returns
 * CLI_EXIT_OK, CLI_EXIT_USAGE (bad spec) or CLI_EXIT_FAILURE.
 */
int snap_target_open(struct cli_ctx *ctx, const char *spec, struct snap_target *t);
void snap_target_close(struct snap_target *t);

/* "web@2024-05-01T10:00:00_1a2b3c4d" or "cloud:web@...", for messages (caller frees). */
char *snap_target_label(const struct snap_target *t);

#endif
