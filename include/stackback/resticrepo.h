/**
 * @file resticrepo.h
 * A native, read-only reader of restic repositories on a local path
 * (format versions 1 and 2), so that browsing never runs restic: the
 * snapshot list, trees with every node field restic stores (symlink
 * targets, inodes, link counts, which restic 0.14's `ls --json` lacks)
 * and random-access file contents.
 *
 * Formats follow restic's repository design document (doc/design.rst);
 * docs/restic-reader.md says what is supported and how it verifies.
 * Everything read is verified before it is used: every encrypted piece
 * carries a Poly1305-AES MAC that is checked before a byte is decrypted
 * or parsed, files named by their hash (index, snapshots) and blobs
 * (by their plaintext id) are hashed again, and every length and offset
 * is bounds-checked, so a damaged repository gives an error naming the
 * file, never wrong bytes. Crypto is OpenSSL's libcrypto (AES-256-CTR,
 * AES-128, Poly1305, scrypt, SHA-256), decompression libzstd.
 *
 * Errors: functions return 0 or a negative errno with *err (caller
 * frees): -ENOENT (no such repository, snapshot or path), -EACCES (no
 * key opens with the password), -ENOTSUP (a format this reader does not
 * know: the caller may fall back to restic), -EIO (damaged, truncated or
 * inconsistent data; *err names the file).
 *
 * Threads: a repository and its trees and files may be used from any
 * number of threads. Internal caches (trees, decrypted blobs) have their
 * own locks, which are leaves.
 */
#ifndef STACKBACK_RESTICREPO_H
#define STACKBACK_RESTICREPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "stackback/snaptree.h"

/** Bytes of a restic id (SHA-256). */
#define SB_RESTIC_ID_LEN 32

enum sb_restic_blob_type {
	SB_RESTIC_BLOB_DATA = 0,
	SB_RESTIC_BLOB_TREE = 1,
};

/* ---- ids ---- */

/** Parses 64 lowercase hex digits (exactly len == 64). Returns 0 or -1. */
int sb_restic_id_parse(const char *hex, size_t len, uint8_t id[SB_RESTIC_ID_LEN]);
/** Writes the 64 hex digits and a NUL into out. */
void sb_restic_id_format(const uint8_t id[SB_RESTIC_ID_LEN], char out[2 * SB_RESTIC_ID_LEN + 1]);

/* ---- the index ---- */

/** Where one blob is stored. */
struct sb_restic_blob {
	uint32_t pack;           /**< index into the pack table (sb_resticindex_pack_id()) */
	uint32_t offset;         /**< of the encrypted blob in the pack */
	uint32_t length;         /**< encrypted length: IV + ciphertext + MAC */
	uint32_t raw_length;     /**< plaintext length (decompressed) */
	enum sb_restic_blob_type type;
	bool compressed;
};

/**
 * The blob index: every blob of every index file, one compact sorted
 * table (SB_RESTICINDEX_ENTRY_BYTES per blob, plus 32 bytes per pack),
 * searched by binary search. Built with add/finish, then immutable.
 */
struct sb_resticindex;

/** Bytes of memory one blob costs in a finished index. */
#define SB_RESTICINDEX_ENTRY_BYTES 48

struct sb_resticindex *sb_resticindex_new(void);
void sb_resticindex_free(struct sb_resticindex *idx);
/**
 * Adds the blobs of one decrypted, decompressed index file (its JSON:
 * `{"packs":[...]}` or the old top-level array). version is the
 * repository's format version: compressed blobs are refused in version 1.
 * Returns 0, or -EIO with *err saying what is wrong (the index is left
 * as it was before the call).
 */
int sb_resticindex_add_json(struct sb_resticindex *idx, const void *json, size_t len, int version,
			    char **err);
/** Sorts, and keeps one copy of a blob stored twice. Call once, after the last add. */
void sb_resticindex_finish(struct sb_resticindex *idx);
/** Finds a blob of the given type. Returns its position (< count) or -1. */
ssize_t sb_resticindex_find(const struct sb_resticindex *idx, const uint8_t id[SB_RESTIC_ID_LEN],
			    enum sb_restic_blob_type type);
/** The blob at position pos (< sb_resticindex_count()). */
void sb_resticindex_get(const struct sb_resticindex *idx, size_t pos, struct sb_restic_blob *out);
/** The id of the blob at position pos. Borrowed. */
const uint8_t *sb_resticindex_id(const struct sb_resticindex *idx, size_t pos);
size_t sb_resticindex_count(const struct sb_resticindex *idx);
size_t sb_resticindex_packs(const struct sb_resticindex *idx);
/** The id of pack number i. Borrowed. */
const uint8_t *sb_resticindex_pack_id(const struct sb_resticindex *idx, uint32_t i);
/** Bytes the index occupies in memory. */
size_t sb_resticindex_memory(const struct sb_resticindex *idx);

/* ---- pack headers ---- */

/** One blob as a pack's own header lists it. */
struct sb_resticpack_entry {
	uint8_t id[SB_RESTIC_ID_LEN];
	enum sb_restic_blob_type type;
	bool compressed;
	uint32_t offset;         /**< computed: the blobs lie back to back from 0 */
	uint32_t length;         /**< encrypted length */
	uint32_t raw_length;     /**< plaintext length (compressed entries only; else length - 32) */
};

/**
 * Parses a decrypted pack header of a pack whose blobs end at data_end
 * (the pack's size minus the encrypted header and its 4-byte length).
 * Every entry must lie within data_end and together they must fill it.
 * Returns 0 with *out (caller frees) and *n, or -EIO with *err.
 */
int sb_resticpack_parse_header(const void *hdr, size_t len, int version, uint64_t data_end,
			       struct sb_resticpack_entry **out, size_t *n, char **err);

/* ---- trees ---- */

enum sb_restic_node_type {
	SB_RESTIC_NODE_FILE,
	SB_RESTIC_NODE_DIR,
	SB_RESTIC_NODE_SYMLINK,
	SB_RESTIC_NODE_DEV,
	SB_RESTIC_NODE_CHARDEV,
	SB_RESTIC_NODE_FIFO,
	SB_RESTIC_NODE_SOCKET,
	/** A type this reader does not know (restic's "irregular", or newer). */
	SB_RESTIC_NODE_OTHER,
};

/** One entry of a tree. Strings and content are borrowed from the tree. */
struct sb_restic_node {
	const char *name;        /**< never empty, ".", ".." or containing '/' or NUL */
	size_t name_len;
	enum sb_restic_node_type type;
	mode_t mode;             /**< st_mode: file type and permission, setuid, setgid, sticky bits */
	uint32_t uid, gid;
	uint64_t size;           /**< files: as restic recorded it */
	uint64_t inode;
	uint64_t links;          /**< link count; 0 when restic recorded none */
	uint64_t device;         /**< device nodes: st_rdev */
	struct timespec mtime, atime, ctime;
	const char *linktarget;  /**< symlinks: the target (NUL-terminated), else NULL */
	size_t linktarget_len;
	/** Files: the data blobs of the content, in order (n_content ids). */
	const uint8_t (*content)[SB_RESTIC_ID_LEN];
	uint32_t n_content;
	bool has_subtree;        /**< directories: subtree is the tree blob of the children */
	uint8_t subtree[SB_RESTIC_ID_LEN];
};

/** A parsed tree blob: its nodes sorted by name. Reference-counted, immutable. */
struct sb_restictree;

/**
 * Parses a tree blob's JSON (`{"nodes":[...]}`). Nodes must have valid,
 * distinct names; they are sorted by name (byte order) if restic did not.
 * Returns 0 with *out (one reference), or -EIO with *err.
 */
int sb_restictree_parse(const void *json, size_t len, struct sb_restictree **out, char **err);
struct sb_restictree *sb_restictree_ref(struct sb_restictree *t);
/** Drops a reference; NULL is ignored. */
void sb_restictree_unref(struct sb_restictree *t);
size_t sb_restictree_count(const struct sb_restictree *t);
/** Node i (< count). Borrowed from the tree. */
const struct sb_restic_node *sb_restictree_node(const struct sb_restictree *t, size_t i);
/** The node called name (len bytes), by binary search; NULL if none. */
const struct sb_restic_node *sb_restictree_find(const struct sb_restictree *t, const char *name,
						size_t len);
/** Bytes the tree occupies in memory. */
size_t sb_restictree_memory(const struct sb_restictree *t);

/* ---- the repository ---- */

struct sb_resticrepo;

/**
 * Opens the repository in directory dir: derives the key of each key
 * file in keys/ from password until one opens, reads config. The index
 * is loaded on first need (or by sb_resticrepo_load_index()). Returns 0
 * with *out, or -ENOENT (no config), -EACCES (wrong password), -ENOTSUP
 * (unknown version or key derivation) or -EIO, with *err.
 */
int sb_resticrepo_open(const char *dir, const char *password, struct sb_resticrepo **out, char **err);
/**
 * Releases the repository; it is freed once the files opened on it are
 * closed too (trees outlive it on their own). NULL is ignored.
 */
void sb_resticrepo_free(struct sb_resticrepo *r);

/** The repository's format version (1 or 2). */
int sb_resticrepo_version(const struct sb_resticrepo *r);
/** Its directory. Borrowed. */
const char *sb_resticrepo_dir(const struct sb_resticrepo *r);

/**
 * The snapshots as `restic snapshots --json` prints them: a JSON array
 * of the snapshot documents, each with its "id" and "short_id" added
 * (caller frees *json). Decrypted documents are remembered by file, so a
 * repeated call reads only new snapshot files.
 */
int sb_resticrepo_snapshots_json(struct sb_resticrepo *r, char **json, char **err);
/**
 * The decrypted JSON document of snapshot id (64 hex digits; caller
 * frees *json).
 */
int sb_resticrepo_snapshot(struct sb_resticrepo *r, const char *id, char **json, size_t *len, char **err);

/**
 * Loads the index if it was never loaded, or again if the files in
 * index/ changed since (a backup or prune ran). Readers of the previous
 * index keep it until they finish. Returns 0, or an error as above.
 */
int sb_resticrepo_load_index(struct sb_resticrepo *r, char **err);

/** What the repository holds in memory, for status lines and the benchmark. */
struct sb_resticrepo_stats {
	int version;
	size_t index_files;
	size_t blobs;
	size_t packs;
	size_t index_bytes;       /**< memory of the blob index */
	size_t tree_cache_bytes;  /**< parsed trees kept */
	size_t blob_cache_bytes;  /**< decrypted blobs kept */
	uint64_t blobs_read;      /**< blobs read from packs since open */
	uint64_t bytes_read;      /**< their encrypted bytes */
};
void sb_resticrepo_stats(struct sb_resticrepo *r, struct sb_resticrepo_stats *st);

/**
 * Reads, verifies and decrypts one blob (decompressed). Returns 0 with
 * *out (caller frees) and *len, -ENOENT if the index has no such blob, or
 * -EIO.
 */
int sb_resticrepo_read_blob(struct sb_resticrepo *r, enum sb_restic_blob_type type,
			    const uint8_t id[SB_RESTIC_ID_LEN], void **out, size_t *len, char **err);

/**
 * Where blob id is stored: *pack gets the pack file's path (caller
 * frees), *offset the blob's offset in it. For messages and for tests
 * that damage a pack on purpose. Returns 0, -ENOENT or an error.
 */
int sb_resticrepo_blob_location(struct sb_resticrepo *r, enum sb_restic_blob_type type,
				const uint8_t id[SB_RESTIC_ID_LEN], char **pack, uint32_t *offset, char **err);

/** The tree blob id, parsed and cached. Returns 0 with *out (one reference), or an error. */
int sb_resticrepo_tree(struct sb_resticrepo *r, const uint8_t id[SB_RESTIC_ID_LEN],
		       struct sb_restictree **out, char **err);

/**
 * Resolves path ("a/b/c", slashes collapsed; "" is refused) below tree
 * root: *tree gets the tree holding the last component (one reference)
 * and *node that node, borrowed from *tree. Returns 0, -ENOENT, -ENOTDIR
 * or -EIO, with *err.
 */
int sb_resticrepo_lookup(struct sb_resticrepo *r, const uint8_t root[SB_RESTIC_ID_LEN], const char *path,
			 struct sb_restictree **tree, const struct sb_restic_node **node, char **err);

/**
 * The browsable tree (snaptree.h) of the snapshot whose tree blob is
 * tree, rooted at root_path (an absolute path of the snapshot; "/" for
 * the whole snapshot, whose root then gets snap_time as its mtime): every
 * node below it with its link target and link count. Nodes of a type
 * the reader does not know are left out (*skipped counts them). Returns
 * 0 with *out (one reference), or an error as above.
 */
int sb_resticrepo_snaptree(struct sb_resticrepo *r, const uint8_t tree[SB_RESTIC_ID_LEN], const char *root_path,
			   int64_t snap_time, struct sb_snaptree **out, size_t *skipped, char **err);
/**
 * The directory a snapshot of these paths is browsed from, as the
 * restic path does it: the one path itself, or the deepest directory
 * common to several. NULL if none is absolute. Caller frees.
 */
char *sb_resticrepo_snapshot_root(const char *const *paths, size_t n);

/* ---- file contents ---- */

struct sb_resticfile;

/**
 * Opens a regular file node for reading (the node may be released after
 * this returns). Maps its content to the index; nothing is read yet.
 * name names the file in messages. Returns 0 with *out, -EINVAL (not a
 * file), or -EIO (a content blob is missing from the index).
 */
int sb_resticfile_open(struct sb_resticrepo *r, const struct sb_restic_node *node, const char *name,
		       struct sb_resticfile **out, char **err);
/** The content's size: the sum of its blobs. */
uint64_t sb_resticfile_size(const struct sb_resticfile *f);
/**
 * Reads up to len bytes at off: only the blobs covering the range are
 * read and decrypted (recently used ones come from a small cache).
 * Returns the byte count (short only at the end), or -EIO after logging
 * what failed.
 */
ssize_t sb_resticfile_read(struct sb_resticfile *f, void *buf, size_t len, uint64_t off);
void sb_resticfile_close(struct sb_resticfile *f);

#endif
