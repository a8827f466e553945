/*
 * Read-only restic commands for snapshot browsing (snaptree, snapview,
 * snapcache's fetchers). Internal to core/.
 *
 * They run with --no-lock: browsing must never make a concurrent
 * `forget --prune` fail on our lock, and a restored copy may sit on a
 * read-only medium. The password travels in the environment only.
 */
#ifndef STACKBACK_SNAP_RESTIC_H
#define STACKBACK_SNAP_RESTIC_H

#include "stackback/restic.h"
#include "stackback/runner.h"
#include "stackback/util.h"

struct snap_restic_cmd {
	struct sb_strv argv;
	struct sb_strv env;   /* RESTIC_REPOSITORY, RESTIC_PASSWORD: secret, wiped on free */
};

/* argv = restic --no-lock SUBCOMMAND; the caller appends the rest. */
void snap_restic_cmd_init(struct snap_restic_cmd *c, const struct sb_restic *r,
			  const char *subcommand);
void snap_restic_cmd_free(struct snap_restic_cmd *c);
/* Fills argv, env_add, env_del, cancel and the SIGINT kill signal of o. */
void snap_restic_run_opts(const struct snap_restic_cmd *c, const struct sb_restic *r,
			  struct sb_run_opts *o);
/* "restic exited 1: wrong password" style explanation of a failed run (caller frees). */
char *snap_restic_describe(const struct sb_run_result *res, double timeout_s);

/* The directory of a repository on a local path ("/x", "local:/x"), or NULL. */
const char *snap_repo_local_path(const char *repo);

#endif
