/* Loading the stack selection for the CLI commands that show or change it. */
#ifndef STACKBACK_CLI_SELECTION_H
#define STACKBACK_CLI_SELECTION_H

#include "cli.h"
#include "stackback/stacks.h"

/*
 * Loads the selection; dirlist errors are printed as FILE:LINE lines.
 * With warn, skipped directories and clashes are printed as warnings on
 * stderr. Returns 0, or -1 (sel is then empty).
 */
int cli_selection_load(struct cli_ctx *ctx, struct sb_selection *sel, bool warn);

#endif
