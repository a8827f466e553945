/**
 * @file cowsnap.h
 * Snapshot mode (SNAPSHOT_MODE): a copy-on-write copy of a stopped
 * stack's directory, made in milliseconds, so that the stack runs again
 * while restic reads the copy.
 *
 *   btrfs    a read-only subvolume snapshot when the stack directory is
 *            a subvolume without nested ones; else a reflink copy
 *   reflink  a copy of the tree whose file data is shared (FICLONE) and
 *            whose metadata is copied: modes, owners, times, xattrs,
 *            symlinks, hard links, device nodes, fifos and sockets
 *   auto     btrfs on btrfs, reflink where FICLONE works, else none
 *
 * The copy lives at STAGING/NAME, in a staging area on the stack's own
 * filesystem (SNAPSHOT_STAGING, by default `.stackback-staging` beside
 * the stack or at the top of its filesystem: hidden, so discovery skips
 * it). STATE_DIR/staging lists every copy until it is removed, so a
 * crash never leaves one behind for good (sb_recover()).
 *
 * Everything here needs root: snapshots and FICLONE of others' files,
 * and the private bind mount through which restic reads the copy.
 */
#ifndef STACKBACK_COWSNAP_H
#define STACKBACK_COWSNAP_H

#include <stdatomic.h>

#include "stackback/config.h"

/** The name of the default staging directory. */
#define SB_COW_STAGING_NAME ".stackback-staging"

enum sb_cow_kind {
	SB_COW_NONE,       /**< no copy: back up the stopped stack directly */
	SB_COW_SUBVOLUME,  /**< read-only btrfs subvolume snapshot */
	SB_COW_REFLINK,    /**< FICLONE copy of the tree */
};

/** The report's mode for a kind: "btrfs", "reflink" (NULL for NONE). */
const char *sb_cow_kind_name(enum sb_cow_kind kind);

/** What snapshot mode does for one stack, decided before it is stopped. */
struct sb_cow_plan {
	enum sb_snapshot_mode mode;  /**< the mode it was made for */
	enum sb_cow_kind kind;
	char *fs;        /**< the stack directory's filesystem type, e.g. "btrfs", "ext4" (owned) */
	char *staging;   /**< the staging area, NULL when kind is NONE (owned) */
	char *copy;      /**< where the copy goes, STAGING/NAME, NULL when NONE (owned) */
	/**
	 * Why auto chose no copy, or why btrfs falls back to a reflink copy:
	 * one phrase for the log, NULL otherwise (owned).
	 */
	char *why;
};

/**
 * Decides how mode applies to the stack `name` in dir, whose staging
 * area is `staging` (SNAPSHOT_STAGING; NULL = the default). Checks
 * everything that can be checked without stopping the stack: the
 * filesystem, mounts inside dir (a copy would miss them), the staging
 * area (created 0700 if missing; same filesystem; not inside dir), no
 * earlier copy in the way, FICLONE support (probed in the staging area).
 * Returns 0 with plan filled (kind NONE and plan->why when auto finds no
 * way, or mode is off), or -1 with *err (caller frees) when an explicit
 * btrfs or reflink mode cannot be honoured. Free plan either way.
 */
int sb_cow_plan(enum sb_snapshot_mode mode, const char *dir, const char *name, const char *staging,
		struct sb_cow_plan *plan, char **err);
void sb_cow_plan_free(struct sb_cow_plan *plan);

/**
 * Makes the planned copy of dir at plan->copy. The reflink copy stops
 * when *cancel becomes true (may be NULL). On failure, returns -1 with
 * *err; whatever part of the copy was made is left for sb_cow_remove().
 */
int sb_cow_take(const struct sb_cow_plan *plan, const char *dir, const atomic_bool *cancel, char **err);

/**
 * Removes a copy made by sb_cow_take(), whole or partial, or left by a
 * crash: a subvolume is deleted, a tree removed without following
 * symlinks. An absent path is not an error. The default staging
 * directory goes too once it is empty. Returns 0, or -1 with *err.
 */
int sb_cow_remove(const char *path, char **err);

/**
 * Tidies after a plan that was never carried out (the stop failed, the
 * job was cancelled): the default staging directory goes if empty.
 */
void sb_cow_tidy(const struct sb_cow_plan *plan);

/**
 * The reflink copy of the tree src into dst, which must not exist (its
 * parent must, on the same filesystem). Exposed for tests.
 * Returns 0, or -1 with *err naming the file that could not be copied.
 */
int sb_cow_reflink_tree(const char *src, const char *dst, const atomic_bool *cancel, char **err);

#endif
