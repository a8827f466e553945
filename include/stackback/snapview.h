/**
 * @file snapview.h
 * A browsable view of one restic repository's snapshots, per stack: the
 * local repository (`snapshots/`), or the copy Stage 3 restored from the
 * cloud (`cloud/snapshots/`). The control filesystem, `stackback ls`/`get`
 * and the TUI all browse through it. Knows nothing of FUSE.
 *
 * - A repository on a local path is read by the native reader
 *   (resticrepo.h): the list, trees and contents below come from it
 *   without restic; a format it refuses falls back to restic.
 * - The snapshot list comes from `restic snapshots --json`, run in the
 *   background; it is re-read after sb_snapview_invalidate() (the daemon
 *   calls it after every job) and, for a repository on a local path, when
 *   the mtime of its snapshots/ directory changes, so `latest` is never
 *   stale. For such a repository the list is also kept on disk and reused
 *   while the set of files in snapshots/ is unchanged.
 * - A snapshot's tree (snaptree.h) is loaded on first use by a background
 *   thread, cached in memory (least recently used out past
 *   SNAPSHOT_CACHE_MB) and on disk (STATE_DIR/cache/trees/LABEL/ID), and
 *   built ahead of time for each stack's newest snapshot.
 * - File contents go through the content cache (snapcache.h).
 *
 * Callers never run restic themselves: they wait (bounded by wait_s) for
 * the background threads, and get -EIO with a message on failure or
 * timeout, which the view also logs once.
 *
 * Threads: every function may be called from any thread. Lock order: the
 * view's mutex, then nothing (the content cache is called without it).
 */
#ifndef STACKBACK_SNAPVIEW_H
#define STACKBACK_SNAPVIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "stackback/config.h"
#include "stackback/snapcache.h"
#include "stackback/snaptree.h"
#include "stackback/stacks.h"

/** A file smaller than this is fetched with its neighbours in one `restic dump DIR` (tar). */
#define SB_SNAPVIEW_SMALL_FILE (1u << 20)
/** At most this many bytes (plus 1 KiB per file) are fetched by one such batch. */
#define SB_SNAPVIEW_BATCH_BYTES (64u << 20)

/** A snapshot as the view shows it (a copy; no pointers into the view). */
struct sb_snapview_snap {
	char id[65];          /**< full id */
	char short_id[17];
	char name[48];        /**< YYYY-MM-DDTHH:MM:SS_SHORTID, UTC */
	char stack[SB_STACK_NAME_MAX + 1];
	time_t time;
};

struct sb_snapview_opts {
	const struct sb_config *cfg;   /**< borrowed: must outlive the view */
	/** The repository; NULL = cfg->restic_repository. */
	const char *repository;
	/** Names the on-disk caches and log lines: "local" or "cloud". */
	const char *label;
	/** Shared content cache (borrowed); NULL: sb_snapview_open() fails with -ENOTSUP. */
	struct sb_snapcache *content;
	/** Build each stack's newest tree in the background when the list changes (the daemon). */
	bool prefetch;
};

struct sb_snapview;

/**
 * Creates a view and starts its threads; nothing runs restic until the
 * first request (or, with prefetch, at once). Returns NULL with *err
 * (caller frees) if the repository password cannot be resolved.
 */
struct sb_snapview *sb_snapview_new(const struct sb_snapview_opts *o, char **err);
/** Stops the threads (killing running restic children) and frees. NULL is ignored. */
void sb_snapview_free(struct sb_snapview *v);

/** Stack names with at least one snapshot, sorted. Returns 0, or -EIO with *err. */
int sb_snapview_stacks(struct sb_snapview *v, double wait_s, struct sb_strv *out, char **err);

/**
 * The snapshots of stack, oldest first (*out allocated, caller frees;
 * *n may be 0). Returns 0, or -EIO with *err.
 */
int sb_snapview_list(struct sb_snapview *v, const char *stack, double wait_s,
		     struct sb_snapview_snap **out, size_t *n, char **err);

/**
 * Resolves a reference to one of stack's snapshots: "latest", a full or
 * short id (a unique prefix of at least 4 characters), or a directory
 * name. Returns 0 with *out, -ENOENT with *err if there is no such
 * snapshot, or -EIO with *err.
 */
int sb_snapview_resolve(struct sb_snapview *v, const char *stack, const char *ref, double wait_s,
			struct sb_snapview_snap *out, char **err);

/**
 * The tree of snap, loading it if needed. Returns 0 with *tree (one
 * reference: sb_snaptree_unref() it), or -EIO with *err (the load failed
 * or did not finish within wait_s).
 */
int sb_snapview_tree(struct sb_snapview *v, const struct sb_snapview_snap *snap, double wait_s,
		     struct sb_snaptree **tree, char **err);

/**
 * Opens regular file node of snap's tree for reading: with the native
 * reader straight from the repository, else through the content cache,
 * starting its fetch if nobody has it. Returns 0 with *out (NULL for an
 * empty file), or -EISDIR/-EINVAL (not a regular file), -ENOTSUP (no
 * content cache on the restic path), -EIO (logged).
 */
int sb_snapview_open(struct sb_snapview *v, const struct sb_snapview_snap *snap,
		     struct sb_snaptree *tree, sb_snode_id node, struct sb_snapfile **out);

/** The repository changed (a job ran): re-list before the next answer. */
void sb_snapview_invalidate(struct sb_snapview *v);

/** Changes whenever a re-read list differs from the previous one. */
uint64_t sb_snapview_generation(struct sb_snapview *v);

/** The repository this view reads. Borrowed. */
const char *sb_snapview_repository(const struct sb_snapview *v);

/**
 * Who reads the repository, for status and logs, into buf: "native
 * (format version N)" (resticrepo.h, a local repository), "restic", or
 * "native, not opened yet".
 */
void sb_snapview_backend(struct sb_snapview *v, char *buf, size_t size);

/**
 * Copies path (a file, directory or symlink of snap's tree; "" or "/"
 * for the whole snapshot) to DEST, which must not exist: the snapshot's
 * modes, times and, as root, owners are kept (one `restic restore`
 * into a staging directory next to DEST, then a rename). Runs restic in
 * the calling thread: for the CLI, never for FUSE. Returns 0, or -1 with
 * *err (caller frees).
 */
int sb_snapview_get(struct sb_snapview *v, const struct sb_snapview_snap *snap,
		    struct sb_snaptree *tree, const char *path, const char *dest, char **err);

#endif
