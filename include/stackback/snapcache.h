/**
 * @file snapcache.h
 * The content cache behind snapshot files: file contents fetched from
 * restic on demand into STATE_DIR/cache/content/, served to readers as
 * soon as the bytes they ask for have arrived, kept afterwards under a
 * byte budget (CONTENT_CACHE_MB, least recently used first out).
 *
 * Content is named by a key the caller chooses (file-name safe, unique
 * for the bytes: snapview uses SNAPSHOT-ID.NODE-ID, and a snapshot's
 * files never change). A fetch ("batch") produces one or more items in
 * one child process: one `restic dump SNAP FILE` for a big file, one
 * `restic dump SNAP DIR` tar for a directory of small ones. Readers of
 * an item wait on a condition variable until their range is in; a
 * fetch that fails, or that delivers nothing for SB_SNAPCACHE_STALL_S,
 * fails its pending items: their readers get -EIO and one log line, and
 * the next open starts afresh. Concurrent readers of one item share its
 * fetch. At most SB_SNAPCACHE_FETCHERS fetches run at once; the others
 * wait in order.
 *
 * Files whose content is all zero blocks stay sparse in the cache.
 * Completed items survive a restart (the files are renamed from
 * KEY.part to KEY when complete); partial ones are deleted at start.
 *
 * Threads: every function may be called from any thread. Lock order:
 * the cache's mutex is a leaf (fetch callbacks run without it).
 */
#ifndef STACKBACK_SNAPCACHE_H
#define STACKBACK_SNAPCACHE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/** Concurrent fetches (child processes) at most. */
#define SB_SNAPCACHE_FETCHERS 3
/** A running fetch that delivers no byte for this long is killed, seconds. */
#define SB_SNAPCACHE_STALL_S 120.0

struct sb_snapcache;
struct sb_snapfile;
struct sb_snapcache_batch;

/**
 * Opens (creating it 0700) the cache directory dir with a budget in
 * bytes. Leftover partial files are removed; complete ones are indexed
 * and the oldest dropped if they exceed the budget. Starts the fetch
 * workers. Returns the cache, or NULL with *err (caller frees).
 */
struct sb_snapcache *sb_snapcache_new(const char *dir, uint64_t budget, char **err);
/** Cancels running fetches, joins the workers, frees. Open files must be closed first. NULL ok. */
void sb_snapcache_free(struct sb_snapcache *c);

/** True if key is a valid key: 1..128 bytes of [A-Za-z0-9._-], not starting with '.'. */
bool sb_snapcache_key_valid(const char *key);

/**
 * Opens item key (size bytes) if it is cached or being fetched.
 * Returns 0 with *out, -ENOENT if nobody has it (start a fetch with
 * sb_snapcache_fetch() and open again), -EINVAL for a bad key.
 */
int sb_snapcache_open(struct sb_snapcache *c, const char *key, uint64_t size,
		      struct sb_snapfile **out);

/** One item a fetch will produce. */
struct sb_snapcache_item {
	const char *key;
	uint64_t size;
};

/**
 * Produces the items of a batch, in any order, each item's bytes in
 * order, by calling sb_snapcache_batch_write() and
 * sb_snapcache_batch_done(). Returns 0, or -1 with *err (caller of the
 * hook frees) — every item not done by then fails. Runs on a worker
 * thread; cancel becomes true when the cache gives up on the batch (the
 * hook may set it too, to stop its own child).
 */
typedef int (*sb_snapcache_fetch_fn)(void *data, struct sb_snapcache_batch *batch,
				      atomic_bool *cancel, char **err);

struct sb_snapcache_source {
	sb_snapcache_fetch_fn fetch;
	void *data;
	/** Frees data once the fetch has run (or was dropped); may be NULL. */
	void (*free)(void *data);
	/** What the fetch reads, for log lines ("web@2024-05-01T10:00:00_1a2b3c4d"). */
	const char *what;
};

/**
 * Queues a fetch of those items (keys copied) nobody has yet; the rest
 * are skipped (their data, if the fetch writes it, is dropped). Takes
 * ownership of src->data in every case. Returns how many items were
 * claimed (0: nothing to do, the source was freed at once).
 */
size_t sb_snapcache_fetch(struct sb_snapcache *c, const struct sb_snapcache_item *items, size_t n,
			  const struct sb_snapcache_source *src);

/** The number of items in the batch and item i's key and size (for the fetch hook). */
size_t sb_snapcache_batch_count(const struct sb_snapcache_batch *b);
const char *sb_snapcache_batch_key(const struct sb_snapcache_batch *b, size_t i);
uint64_t sb_snapcache_batch_size(const struct sb_snapcache_batch *b, size_t i);
/**
 * Appends len bytes to item i. Data for items the batch did not claim
 * is dropped. Returns 0, or -EIO (the cache file cannot be written, or
 * the item would outgrow its size) after which the item has failed.
 */
int sb_snapcache_batch_write(struct sb_snapcache_batch *b, size_t i, const void *data, size_t len);
/** Marks item i complete: it must hold exactly its size. Returns 0 or -EIO (then failed). */
int sb_snapcache_batch_done(struct sb_snapcache_batch *b, size_t i);

/**
 * Waits until [off, off + len) (clamped to the size) has arrived, then
 * reads it into buf. Returns the byte count (0 at or past the end), or
 * -EIO if the fetch failed or stalled.
 */
ssize_t sb_snapfile_read(struct sb_snapfile *f, void *buf, size_t len, uint64_t off);
/**
 * The same wait without the copy: returns the byte count available at
 * off and *fd, a descriptor to pread() them from (borrowed, valid until
 * close), or -EIO. For zero-copy replies (FUSE read_buf).
 */
ssize_t sb_snapfile_wait(struct sb_snapfile *f, uint64_t off, size_t len, int *fd);
/** The item's size. */
uint64_t sb_snapfile_size(const struct sb_snapfile *f);

/** How a file served without the cache is read (snapview's native reader). */
struct sb_snapfile_source {
	/** pread-like: the byte count (short only at the end), or -errno. */
	ssize_t (*read)(void *data, void *buf, size_t len, uint64_t off);
	/** Frees data. */
	void (*close)(void *data);
};

/**
 * A handle that reads straight from src instead of a cache file: the
 * bytes need no fetch first (a native read decrypts only the blobs a
 * range needs). Takes ownership of data. sb_snapfile_wait() does not
 * apply to it (-ENOTSUP); sb_snapfile_read(), _size() and _close() do.
 */
struct sb_snapfile *sb_snapfile_direct(uint64_t size, const struct sb_snapfile_source *src, void *data);
/** Closes a handle. The item stays cached (or keeps being fetched) if it fits the budget. */
void sb_snapfile_close(struct sb_snapfile *f);

struct sb_snapcache_stats {
	uint64_t budget;
	uint64_t used;       /**< bytes charged: cached items' disk use, reservations of fetching ones */
	size_t items;        /**< items known (cached, fetching or failed but still open) */
	size_t fetching;     /**< batches queued or running */
	uint64_t fetched;    /**< bytes written by fetches since start */
};
void sb_snapcache_stats(struct sb_snapcache *c, struct sb_snapcache_stats *st);

#endif
