/**
 * @file snaptree.h
 * The compact, immutable tree of one restic snapshot, as browsed under
 * `snapshots/NAME/SNAPSHOT/` and by `stackback ls`/`get`.
 *
 * A tree is built once from `restic ls --json SNAP` (structure and
 * metadata), plus one `restic ls -l SNAP` pass for symlink targets when
 * the snapshot holds symlinks (restic 0.14's JSON has none), and is then
 * never modified, so any number of threads may read it without locks.
 *
 * Layout: one array of fixed-size nodes (56 bytes) and one string pool.
 * Names are interned (each distinct name is stored once), the children
 * of a directory are contiguous and sorted by name (binary search for
 * lookups, cheap readdir offsets), and node 0 is the root: the directory
 * the snapshot was taken of (the stack directory). Node ids are stable
 * for a given snapshot (the same input builds the same tree), so they
 * may name cached content.
 *
 * The same bytes are the on-disk cache format (sb_snaptree_save/load),
 * so a daemon restart reloads a parsed tree without running restic.
 *
 * Ownership: trees are reference-counted; sb_snaptree_unref() frees the
 * tree when the last reference goes. Strings returned by accessors are
 * borrowed from the tree and live as long as the caller's reference.
 */
#ifndef STACKBACK_SNAPTREE_H
#define STACKBACK_SNAPTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "stackback/restic.h"

/** A node's index in its tree; 0 is the root. */
typedef uint32_t sb_snode_id;

#define SB_SNODE_ROOT ((sb_snode_id)0)
#define SB_SNODE_NONE ((sb_snode_id)UINT32_MAX)

struct sb_snaptree;

/** Takes a reference. Returns t. */
struct sb_snaptree *sb_snaptree_ref(struct sb_snaptree *t);
/** Drops a reference; the last one frees the tree. NULL is ignored. */
void sb_snaptree_unref(struct sb_snaptree *t);

/** Number of nodes, root included. */
uint32_t sb_snaptree_count(const struct sb_snaptree *t);
/** Bytes the tree occupies in memory (for the cache budget). */
size_t sb_snaptree_memory(const struct sb_snaptree *t);
/**
 * The absolute path, inside the snapshot, of the root directory (e.g.
 * "/opt/docker-stacks/web"); "/" for a snapshot of the whole system.
 */
const char *sb_snaptree_root_path(const struct sb_snaptree *t);

/**
 * Resolves a path relative to the root ("", "/", "a/b", "/a//b/" all
 * work; "." and ".." components are refused). Symlinks are not
 * followed. Returns 0 with *out, -ENOENT, -ENOTDIR (a component is not a
 * directory) or -EINVAL (a "." or ".." component).
 */
int sb_snaptree_lookup(const struct sb_snaptree *t, const char *path, sb_snode_id *out);
/** Looks up one name (len bytes, no '/') in directory dir. Returns 0, -ENOENT or -ENOTDIR. */
int sb_snaptree_child(const struct sb_snaptree *t, sb_snode_id dir, const char *name, size_t len,
		      sb_snode_id *out);

/** Number of children of dir (0 for non-directories). */
uint32_t sb_snaptree_nchildren(const struct sb_snaptree *t, sb_snode_id dir);
/** The i-th child of dir in name order (i < sb_snaptree_nchildren()). */
sb_snode_id sb_snaptree_child_at(const struct sb_snaptree *t, sb_snode_id dir, uint32_t i);
/** Parent of id; the root is its own parent. */
sb_snode_id sb_snaptree_parent(const struct sb_snaptree *t, sb_snode_id id);

/** The node's name (NUL-terminated; "" for the root). */
const char *sb_snaptree_name(const struct sb_snaptree *t, sb_snode_id id);
/** st_mode: file type and permission bits (setuid, setgid, sticky included). */
mode_t sb_snaptree_mode(const struct sb_snaptree *t, sb_snode_id id);
/** Size in bytes: file content, symlink target length, 0 for others. */
uint64_t sb_snaptree_size(const struct sb_snaptree *t, sb_snode_id id);
/** A symlink's target, or NULL (not a symlink, or no target was found for it). */
const char *sb_snaptree_link(const struct sb_snaptree *t, sb_snode_id id);

/**
 * Fills st: mode, uid, gid, size, blocks, mtime (also atime and ctime),
 * nlink (2 + subdirectories for directories; others the link count the
 * native reader found, else 1), st_ino = id + 1.
 */
void sb_snaptree_stat(const struct sb_snaptree *t, sb_snode_id id, struct stat *st);

/** The node's path relative to the root, without a leading '/' ("" for the root). Caller frees. */
char *sb_snaptree_path(const struct sb_snaptree *t, sb_snode_id id);
/** The node's absolute path inside the snapshot (what restic dump wants). Caller frees. */
char *sb_snaptree_source_path(const struct sb_snaptree *t, sb_snode_id id);

/*
 * Building: feed the output of `restic ls --json SNAP` line by line, then,
 * if sb_snaptree_builder_wants_links(), the lines of `restic ls -l SNAP`,
 * then finish. This is the parser the fuzzer drives.
 */
struct sb_snaptree_builder;

/**
 * A builder for a snapshot whose root is root_path (absolute). NULL
 * takes the root from the snapshot line (the first line restic prints):
 * its path, or the deepest directory common to its paths.
 */
struct sb_snaptree_builder *sb_snaptree_builder_new(const char *root_path);
void sb_snaptree_builder_free(struct sb_snaptree_builder *b);

/**
 * Feeds one line of `restic ls --json` (len bytes, no newline needed).
 * Entries outside the root (its ancestors, other paths of the snapshot)
 * are skipped. Returns 0, or -1 with *err (caller frees) on a malformed
 * line or an entry that arrives before its directory; the builder is
 * then unusable.
 */
int sb_snaptree_builder_feed_json(struct sb_snaptree_builder *b, const char *line, size_t len,
				  char **err);
/** True once the JSON pass has seen at least one symlink under the root. */
bool sb_snaptree_builder_wants_links(const struct sb_snaptree_builder *b);
/**
 * Feeds one line of `restic ls -l`: a symlink line whose path is exactly
 * one the JSON pass gave sets that symlink's target (the text after
 * " -> "). Other lines are ignored. Never fails.
 */
void sb_snaptree_builder_feed_long(struct sb_snaptree_builder *b, const char *line, size_t len);
/**
 * Lays the tree out. The snapshot id seen on the snapshot line (or NULL)
 * is available until the builder is freed through
 * sb_snaptree_builder_snapshot_id(). Returns a tree (one reference, the
 * caller's) or NULL with *err (caller frees).
 */
struct sb_snaptree *sb_snaptree_builder_finish(struct sb_snaptree_builder *b, char **err);
/** The full id of the snapshot line, or NULL if none was seen. Borrowed. */
const char *sb_snaptree_builder_snapshot_id(const struct sb_snaptree_builder *b);

/** One node for sb_snaptree_builder_add(); strings need no NUL and are copied. */
struct sb_snaptree_entry {
	const char *name;      /**< ignored for the root */
	size_t name_len;
	mode_t mode;           /**< st_mode */
	uint32_t uid, gid;
	uint64_t size;         /**< regular files */
	int64_t mtime_s;
	uint32_t mtime_ns;
	const char *link;      /**< symlinks: the target, or NULL */
	size_t link_len;
	uint32_t nlink;        /**< non-directories: the link count, 0 if unknown */
};

/**
 * The other way to build a tree, for a reader that walks the
 * repository itself (resticrepo.h): nodes added one by one instead of
 * `restic ls` lines, into a builder made with a root path. The root comes first (parent SB_SNODE_NONE, a
 * directory), then each node after its directory, parent being the id
 * this function returned for it. Ids here are the builder's own; the
 * finished tree lays nodes out anew. Returns the id, or SB_SNODE_NONE
 * with *err (caller frees), after which the builder is unusable.
 */
sb_snode_id sb_snaptree_builder_add(struct sb_snaptree_builder *b, sb_snode_id parent,
				    const struct sb_snaptree_entry *e, char **err);

/**
 * Runs `restic ls --json` (and `restic ls -l` when needed) on snapshot
 * (an id) of r's repository and builds its tree. root_path as for
 * sb_snaptree_builder_new(). Returns the tree or NULL with *err naming
 * the snapshot and restic's complaint (caller frees).
 */
struct sb_snaptree *sb_snaptree_load_restic(const struct sb_restic *r, const char *snapshot,
					     const char *root_path, char **err);

/**
 * The same for the newest snapshot tagged tag (`restic ls latest --tag
 * TAG`), without knowing its id first; the root comes from the snapshot.
 * *id gets the full id of the snapshot listed (caller frees).
 */
struct sb_snaptree *sb_snaptree_load_restic_latest(const struct sb_restic *r, const char *tag, char **id,
						    char **err);

/** Writes the tree to path atomically (0600). Returns 0 or -errno. */
int sb_snaptree_save(const struct sb_snaptree *t, const char *path);
/**
 * Reads a tree written by sb_snaptree_save(), checking every index and
 * offset, so a damaged file is refused (-EINVAL) rather than trusted.
 * Returns 0 with *out (one reference), -ENOENT, -EINVAL or another -errno.
 */
int sb_snaptree_load_file(const char *path, struct sb_snaptree **out);
/** The same check on bytes in memory (the fuzzer's second entry point). */
int sb_snaptree_load_bytes(const void *data, size_t len, struct sb_snaptree **out);

#endif
