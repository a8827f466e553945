/*
 * The content cache of snapshot files (see snapcache.h).
 *
 * Every item is a file in the cache directory: KEY.part while its fetch
 * runs (created at its full size, so never-written zero blocks stay
 * holes), KEY once complete. An item is in exactly one of these places:
 * the hash table only (fetching, or complete and open), the hash table
 * and the LRU list (complete and unused: evictable), or nowhere
 * (failed, kept only until its last reader closes it).
 */
#include "stackback/snapcache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stackback/log.h"
#include "stackback/util.h"

enum item_state {
	ITEM_FETCHING,
	ITEM_COMPLETE,
	ITEM_FAILED,
};

struct item {
	char *key;
	uint64_t size;
	enum item_state state;
	int fd;               /* open while fetching or while users > 0 */
	uint64_t arrived;     /* bytes written so far (FETCHING) */
	uint64_t charge;      /* bytes counted in cache->used */
	unsigned users;       /* open handles */
	bool hashed;
	bool transient;       /* does not fit the budget: deleted when unused */
	struct batch *batch;  /* the batch fetching it */
	pthread_cond_t cond;  /* arrived/state changed */
	struct item *hnext;
	struct item *lru_prev, *lru_next;
	bool in_lru;
};

struct batch_item {
	char *key;
	uint64_t size;
	struct item *item;    /* NULL: somebody else had it */
	uint64_t written;     /* worker-private copy of item->arrived */
	bool done;
};

struct batch {
	struct sb_snapcache *cache;
	struct batch_item *v;
	size_t n;
	struct sb_snapcache_source src;
	char *what;
	atomic_bool cancel;
	double last_progress; /* cache mu */
	bool running;         /* cache mu */
	struct batch *next;   /* queue link, cache mu */
};

struct sb_snapcache {
	char *dir;
	uint64_t budget;

	/* mu protects everything below and every item's and batch's fields marked so. */
	pthread_mutex_t mu;
	pthread_cond_t work;          /* queue grew, or stopping */
	pthread_cond_t tick;          /* wakes the watchdog early when stopping */
	struct item **table;
	size_t table_cap, n_items;
	struct item *lru_head, *lru_tail;   /* least recently used first */
	uint64_t used;
	uint64_t fetched;
	struct batch *queue_head, *queue_tail;
	struct batch *running[SB_SNAPCACHE_FETCHERS];
	size_t n_batches;             /* queued or running */
	bool stopping;

	pthread_t workers[SB_SNAPCACHE_FETCHERS];
	size_t n_workers;
	pthread_t watchdog;
	bool has_watchdog;
};

struct sb_snapfile {
	struct sb_snapcache *cache;
	struct item *item;
	/* A direct handle (sb_snapfile_direct): no cache, no item. */
	const struct sb_snapfile_source *direct;
	void *direct_data;
	uint64_t direct_size;
};

bool sb_snapcache_key_valid(const char *key)
{
	size_t len = strlen(key);
	if (len == 0 || len > 128 || key[0] == '.')
		return false;
	if (strspn(key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != len)
		return false;
	return !(len >= 5 && strcmp(key + len - 5, ".part") == 0);
}

static uint64_t key_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

static char *item_path(const struct sb_snapcache *c, const char *key, bool partial)
{
	return xasprintf("%s/%s%s", c->dir, key, partial ? ".part" : "");
}

/* ---- table and LRU (cache mu held) ---- */

static struct item *table_find(struct sb_snapcache *c, const char *key)
{
	if (!c->table_cap)
		return NULL;
	for (struct item *it = c->table[key_hash(key) & (c->table_cap - 1)]; it; it = it->hnext)
		if (strcmp(it->key, key) == 0)
			return it;
	return NULL;
}

static void table_insert(struct sb_snapcache *c, struct item *it)
{
	if ((c->n_items + 1) * 4 > c->table_cap * 3) {
		size_t cap = c->table_cap ? c->table_cap * 2 : 256;
		struct item **t = xcalloc(cap, sizeof(*t));
		for (size_t i = 0; i < c->table_cap; i++) {
			for (struct item *x = c->table[i], *next; x; x = next) {
				next = x->hnext;
				size_t j = key_hash(x->key) & (cap - 1);
				x->hnext = t[j];
				t[j] = x;
			}
		}
		free(c->table);
		c->table = t;
		c->table_cap = cap;
	}
	size_t j = key_hash(it->key) & (c->table_cap - 1);
	it->hnext = c->table[j];
	c->table[j] = it;
	it->hashed = true;
	c->n_items++;
}

static void table_remove(struct sb_snapcache *c, struct item *it)
{
	if (!it->hashed)
		return;
	struct item **pp = &c->table[key_hash(it->key) & (c->table_cap - 1)];
	while (*pp != it)
		pp = &(*pp)->hnext;
	*pp = it->hnext;
	it->hashed = false;
	c->n_items--;
}

static void lru_remove(struct sb_snapcache *c, struct item *it)
{
	if (!it->in_lru)
		return;
	if (it->lru_prev)
		it->lru_prev->lru_next = it->lru_next;
	else
		c->lru_head = it->lru_next;
	if (it->lru_next)
		it->lru_next->lru_prev = it->lru_prev;
	else
		c->lru_tail = it->lru_prev;
	it->lru_prev = it->lru_next = NULL;
	it->in_lru = false;
}

static void lru_append(struct sb_snapcache *c, struct item *it)
{
	it->lru_prev = c->lru_tail;
	it->lru_next = NULL;
	if (c->lru_tail)
		c->lru_tail->lru_next = it;
	else
		c->lru_head = it;
	c->lru_tail = it;
	it->in_lru = true;
}

static struct item *item_new(const char *key, uint64_t size, enum item_state state)
{
	struct item *it = xcalloc(1, sizeof(*it));
	it->key = xstrdup(key);
	it->size = size;
	it->state = state;
	it->fd = -1;
	pthread_cond_init(&it->cond, NULL);
	return it;
}

static void item_free(struct item *it)
{
	if (it->fd >= 0)
		close(it->fd);
	pthread_cond_destroy(&it->cond);
	free(it->key);
	free(it);
}

static void uncharge(struct sb_snapcache *c, struct item *it)
{
	c->used -= it->charge;
	it->charge = 0;
}

/* Forgets a complete, unused item and deletes its file. */
static void drop_item(struct sb_snapcache *c, struct item *it)
{
	lru_remove(c, it);
	table_remove(c, it);
	uncharge(c, it);
	cleanup_free char *path = item_path(c, it->key, false);
	unlink(path);
	item_free(it);
}

/* Evicts unused items, oldest first, until need more bytes fit. Returns true if they do. */
static bool make_room(struct sb_snapcache *c, uint64_t need)
{
	while (c->used + need > c->budget && c->lru_head)
		drop_item(c, c->lru_head);
	return c->used + need <= c->budget;
}

/* A fetching item failed: readers get EIO, the next open starts afresh. */
static void fail_item(struct sb_snapcache *c, struct item *it)
{
	if (it->state != ITEM_FETCHING)
		return;
	it->state = ITEM_FAILED;
	it->batch = NULL;
	table_remove(c, it);
	uncharge(c, it);
	cleanup_free char *path = item_path(c, it->key, true);
	unlink(path);
	pthread_cond_broadcast(&it->cond);
	if (it->users == 0)
		item_free(it);
}

/* ---- start-up ---- */

struct found {
	char *key;
	uint64_t size, charge;
	double mtime;
};

static int cmp_found(const void *a, const void *b)
{
	const struct found *x = a, *y = b;
	return (x->mtime > y->mtime) - (x->mtime < y->mtime);
}

/* Indexes what a previous run completed (oldest first into the LRU) and removes partial files. */
static void scan_dir(struct sb_snapcache *c)
{
	DIR *d = opendir(c->dir);
	if (!d)
		return;
	struct found *v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		const char *name = de->d_name;
		if (name[0] == '.')
			continue;
		size_t len = strlen(name);
		if (len > 5 && strcmp(name + len - 5, ".part") == 0) {
			unlinkat(dirfd(d), name, 0);
			continue;
		}
		struct stat st;
		if (!sb_snapcache_key_valid(name) || fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			v = xrealloc(v, cap * sizeof(*v));
		}
		v[n++] = (struct found){
			.key = xstrdup(name),
			.size = (uint64_t)st.st_size,
			.charge = (uint64_t)st.st_blocks * 512,
			.mtime = (double)st.st_mtim.tv_sec + st.st_mtim.tv_nsec / 1e9,
		};
	}
	closedir(d);
	if (n)
		qsort(v, n, sizeof(*v), cmp_found);
	for (size_t i = 0; i < n; i++) {
		struct item *it = item_new(v[i].key, v[i].size, ITEM_COMPLETE);
		it->charge = v[i].charge;
		c->used += it->charge;
		table_insert(c, it);
		lru_append(c, it);
		free(v[i].key);
	}
	free(v);
	make_room(c, 0);
}

/* ---- fetching ---- */

static bool all_zero(const void *p, size_t len)
{
	const unsigned char *b = p;
	return len == 0 || (b[0] == 0 && memcmp(b, b + 1, len - 1) == 0);
}

size_t sb_snapcache_batch_count(const struct sb_snapcache_batch *b)
{
	return ((const struct batch *)b)->n;
}

const char *sb_snapcache_batch_key(const struct sb_snapcache_batch *b, size_t i)
{
	return ((const struct batch *)b)->v[i].key;
}

uint64_t sb_snapcache_batch_size(const struct sb_snapcache_batch *b, size_t i)
{
	return ((const struct batch *)b)->v[i].size;
}

static void batch_fail_item(struct batch *b, size_t i)
{
	struct sb_snapcache *c = b->cache;
	struct batch_item *bi = &b->v[i];
	pthread_mutex_lock(&c->mu);
	if (bi->item)
		fail_item(c, bi->item);
	bi->item = NULL;
	pthread_mutex_unlock(&c->mu);
}

int sb_snapcache_batch_write(struct sb_snapcache_batch *batch, size_t i, const void *data, size_t len)
{
	struct batch *b = (struct batch *)batch;
	struct batch_item *bi = &b->v[i];
	/* item and its fd are set before the fetch starts and only this thread clears them. */
	if (!bi->item || bi->done || len == 0)
		return 0;
	struct item *it = bi->item;
	if (bi->written + len > bi->size) {
		sb_error("reading %s failed: restic returned more than the %" PRIu64 " bytes of '%s'",
			 b->what, bi->size, bi->key);
		batch_fail_item(b, i);
		return -EIO;
	}
	/* The file was created at its full size: zero blocks need no write and stay holes. */
	if (!all_zero(data, len)) {
		const char *p = data;
		size_t left = len;
		uint64_t off = bi->written;
		while (left > 0) {
			ssize_t w = pwrite(it->fd, p, left, (off_t)off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				sb_error("writing the cache file of %s failed: %s", b->what,
					 w < 0 ? strerror(errno) : "no space written");
				batch_fail_item(b, i);
				return -EIO;
			}
			p += w;
			left -= (size_t)w;
			off += (uint64_t)w;
		}
	}
	bi->written += len;
	struct sb_snapcache *c = b->cache;
	pthread_mutex_lock(&c->mu);
	it->arrived = bi->written;
	c->fetched += len;
	b->last_progress = sb_now_monotonic();
	pthread_cond_broadcast(&it->cond);
	pthread_mutex_unlock(&c->mu);
	return 0;
}

int sb_snapcache_batch_done(struct sb_snapcache_batch *batch, size_t i)
{
	struct batch *b = (struct batch *)batch;
	struct batch_item *bi = &b->v[i];
	if (!bi->item || bi->done)
		return 0;
	struct sb_snapcache *c = b->cache;
	struct item *it = bi->item;
	if (bi->written != bi->size) {
		sb_error("reading %s failed: restic returned %" PRIu64 " of the %" PRIu64 " bytes of '%s'",
			 b->what, bi->written, bi->size, bi->key);
		batch_fail_item(b, i);
		return -EIO;
	}
	cleanup_free char *part = item_path(c, bi->key, true);
	cleanup_free char *final = item_path(c, bi->key, false);
	struct stat st;
	if (rename(part, final) < 0 || fstat(it->fd, &st) < 0) {
		sb_error("completing the cache file of %s failed: %s", b->what, strerror(errno));
		batch_fail_item(b, i);
		return -EIO;
	}
	bi->done = true;
	pthread_mutex_lock(&c->mu);
	it->state = ITEM_COMPLETE;
	it->arrived = it->size;
	it->batch = NULL;
	/* Charge what the disk holds now (holes are free) instead of the reservation. */
	uncharge(c, it);
	it->charge = (uint64_t)st.st_blocks * 512;
	c->used += it->charge;
	b->last_progress = sb_now_monotonic();
	pthread_cond_broadcast(&it->cond);
	if (it->users == 0) {
		if (it->transient) {
			drop_item(c, it);
		} else {
			close(it->fd);
			it->fd = -1;
			lru_append(c, it);
			make_room(c, 0);
		}
	}
	pthread_mutex_unlock(&c->mu);
	return 0;
}

static void batch_free(struct batch *b)
{
	if (b->src.free)
		b->src.free(b->src.data);
	for (size_t i = 0; i < b->n; i++)
		free(b->v[i].key);
	free(b->v);
	free(b->what);
	free(b);
}

/* Creates the claimed items' files; an item whose file cannot be made fails now. */
static void batch_prepare(struct batch *b)
{
	struct sb_snapcache *c = b->cache;
	for (size_t i = 0; i < b->n; i++) {
		struct batch_item *bi = &b->v[i];
		if (!bi->item)
			continue;
		cleanup_free char *path = item_path(c, bi->key, true);
		int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0 || ftruncate(fd, (off_t)bi->size) < 0) {
			sb_error("creating cache file '%s' failed: %s", path, strerror(errno));
			if (fd >= 0)
				close(fd);
			batch_fail_item(b, i);
			continue;
		}
		pthread_mutex_lock(&c->mu);
		bi->item->fd = fd;
		pthread_mutex_unlock(&c->mu);
	}
}

static void batch_run(struct batch *b)
{
	struct sb_snapcache *c = b->cache;
	batch_prepare(b);
	char *err = NULL;
	int rc = b->src.fetch(b->src.data, (struct sb_snapcache_batch *)b, &b->cancel, &err);
	size_t missing = 0;
	for (size_t i = 0; i < b->n; i++)
		if (b->v[i].item && !b->v[i].done)
			missing++;
	if (rc < 0)
		sb_error("reading %s failed: %s", b->what, err ? err : "unknown error");
	else if (missing)
		sb_error("reading %s failed: %zu file%s missing from restic's output", b->what, missing,
			 missing == 1 ? "" : "s");
	free(err);
	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; i < b->n; i++) {
		if (b->v[i].item && !b->v[i].done)
			fail_item(c, b->v[i].item);
		b->v[i].item = NULL;
	}
	pthread_mutex_unlock(&c->mu);
}

static void *worker_main(void *arg)
{
	struct sb_snapcache *c = arg;
	pthread_mutex_lock(&c->mu);
	for (;;) {
		while (!c->stopping && !c->queue_head)
			pthread_cond_wait(&c->work, &c->mu);
		if (c->stopping)
			break;
		struct batch *b = c->queue_head;
		c->queue_head = b->next;
		if (!c->queue_head)
			c->queue_tail = NULL;
		size_t slot = 0;
		while (c->running[slot])
			slot++;
		c->running[slot] = b;
		b->running = true;
		b->last_progress = sb_now_monotonic();
		pthread_mutex_unlock(&c->mu);

		batch_run(b);

		pthread_mutex_lock(&c->mu);
		c->running[slot] = NULL;
		c->n_batches--;
		pthread_mutex_unlock(&c->mu);
		batch_free(b);
		pthread_mutex_lock(&c->mu);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

/* Kills fetches that stopped delivering: no reader ever waits forever. */
static void *watchdog_main(void *arg)
{
	struct sb_snapcache *c = arg;
	pthread_mutex_lock(&c->mu);
	while (!c->stopping) {
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += 1;
		pthread_cond_timedwait(&c->tick, &c->mu, &until);
		double now = sb_now_monotonic();
		for (size_t i = 0; i < SB_SNAPCACHE_FETCHERS; i++) {
			struct batch *b = c->running[i];
			if (!b || atomic_load(&b->cancel) || now - b->last_progress < SB_SNAPCACHE_STALL_S)
				continue;
			sb_error("reading %s failed: restic delivered nothing for %.0f s, stopping it", b->what,
				 SB_SNAPCACHE_STALL_S);
			atomic_store(&b->cancel, true);
		}
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

size_t sb_snapcache_fetch(struct sb_snapcache *c, const struct sb_snapcache_item *items, size_t n,
			  const struct sb_snapcache_source *src)
{
	struct batch *b = xcalloc(1, sizeof(*b));
	b->cache = c;
	b->src = *src;
	b->what = xstrdup(src->what ? src->what : "a snapshot");
	b->src.what = b->what;
	atomic_init(&b->cancel, false);
	b->v = xcalloc(n ? n : 1, sizeof(*b->v));
	b->n = n;
	size_t claimed = 0;
	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; i < n; i++) {
		struct batch_item *bi = &b->v[i];
		bi->key = xstrdup(items[i].key);
		bi->size = items[i].size;
		if (c->stopping || !sb_snapcache_key_valid(bi->key) || table_find(c, bi->key))
			continue;
		struct item *it = item_new(bi->key, bi->size, ITEM_FETCHING);
		it->batch = b;
		/* Reserve the full size now; what does not fit is served once and not kept. */
		it->transient = bi->size > c->budget || !make_room(c, bi->size);
		it->charge = bi->size;
		c->used += it->charge;
		table_insert(c, it);
		bi->item = it;
		claimed++;
	}
	if (claimed) {
		if (c->queue_tail)
			c->queue_tail->next = b;
		else
			c->queue_head = b;
		c->queue_tail = b;
		c->n_batches++;
		pthread_cond_signal(&c->work);
	}
	pthread_mutex_unlock(&c->mu);
	if (!claimed)
		batch_free(b);
	return claimed;
}

/* ---- readers ---- */

int sb_snapcache_open(struct sb_snapcache *c, const char *key, uint64_t size,
		      struct sb_snapfile **out)
{
	if (!sb_snapcache_key_valid(key))
		return -EINVAL;
	pthread_mutex_lock(&c->mu);
	struct item *it = table_find(c, key);
	if (it && it->size != size && it->users == 0 && it->state == ITEM_COMPLETE) {
		/* Not the content we were asked for: a stale file under a reused key. */
		drop_item(c, it);
		it = NULL;
	}
	if (!it || it->size != size) {
		pthread_mutex_unlock(&c->mu);
		return -ENOENT;
	}
	if (it->state == ITEM_COMPLETE && it->fd < 0) {
		cleanup_free char *path = item_path(c, key, false);
		it->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		struct stat st;
		if (it->fd < 0 || fstat(it->fd, &st) < 0 || (uint64_t)st.st_size != size) {
			/* Removed or damaged behind our back: fetch it again. */
			drop_item(c, it);
			pthread_mutex_unlock(&c->mu);
			return -ENOENT;
		}
		/* The mtime orders the LRU across restarts. */
		futimens(it->fd, NULL);
	}
	lru_remove(c, it);
	it->users++;
	pthread_mutex_unlock(&c->mu);
	struct sb_snapfile *f = xcalloc(1, sizeof(*f));
	f->cache = c;
	f->item = it;
	*out = f;
	return 0;
}

struct sb_snapfile *sb_snapfile_direct(uint64_t size, const struct sb_snapfile_source *src, void *data)
{
	struct sb_snapfile *f = xcalloc(1, sizeof(*f));
	f->direct = src;
	f->direct_data = data;
	f->direct_size = size;
	return f;
}

uint64_t sb_snapfile_size(const struct sb_snapfile *f)
{
	if (f->direct)
		return f->direct_size;
	return f->item->size;
}

ssize_t sb_snapfile_wait(struct sb_snapfile *f, uint64_t off, size_t len, int *fd)
{
	if (f->direct)
		return -ENOTSUP;
	struct sb_snapcache *c = f->cache;
	struct item *it = f->item;
	if (off >= it->size)
		return 0;
	uint64_t end = it->size - off < len ? it->size : off + len;
	pthread_mutex_lock(&c->mu);
	while (it->state == ITEM_FETCHING && it->arrived < end)
		pthread_cond_wait(&it->cond, &c->mu);
	bool ok = it->state != ITEM_FAILED;
	*fd = it->fd;
	pthread_mutex_unlock(&c->mu);
	if (!ok)
		return -EIO;
	return (ssize_t)(end - off);
}

ssize_t sb_snapfile_read(struct sb_snapfile *f, void *buf, size_t len, uint64_t off)
{
	if (f->direct)
		return f->direct->read(f->direct_data, buf, len, off);
	int fd;
	ssize_t avail = sb_snapfile_wait(f, off, len, &fd);
	if (avail <= 0)
		return avail;
	size_t done = 0;
	while (done < (size_t)avail) {
		ssize_t r = pread(fd, (char *)buf + done, (size_t)avail - done, (off_t)(off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			sb_error("reading cache file of '%s' failed: %s", f->item->key,
				 r < 0 ? strerror(errno) : "unexpected end of file");
			return -EIO;
		}
		done += (size_t)r;
	}
	return (ssize_t)done;
}

void sb_snapfile_close(struct sb_snapfile *f)
{
	if (!f)
		return;
	if (f->direct) {
		f->direct->close(f->direct_data);
		free(f);
		return;
	}
	struct sb_snapcache *c = f->cache;
	struct item *it = f->item;
	free(f);
	pthread_mutex_lock(&c->mu);
	if (--it->users == 0) {
		switch (it->state) {
		case ITEM_FAILED:
			item_free(it);
			break;
		case ITEM_COMPLETE:
			if (it->transient) {
				drop_item(c, it);
			} else {
				close(it->fd);
				it->fd = -1;
				lru_append(c, it);
				make_room(c, 0);
			}
			break;
		case ITEM_FETCHING:
			/* Nobody will read a file too big to keep: stop fetching it alone. */
			if (it->transient && it->batch && it->batch->n == 1)
				atomic_store(&it->batch->cancel, true);
			break;
		}
	}
	pthread_mutex_unlock(&c->mu);
}

void sb_snapcache_stats(struct sb_snapcache *c, struct sb_snapcache_stats *st)
{
	pthread_mutex_lock(&c->mu);
	st->budget = c->budget;
	st->used = c->used;
	st->items = c->n_items;
	st->fetching = c->n_batches;
	st->fetched = c->fetched;
	pthread_mutex_unlock(&c->mu);
}

/* ---- life cycle ---- */

struct sb_snapcache *sb_snapcache_new(const char *dir, uint64_t budget, char **err)
{
	int rc = sb_mkdir_p(dir, 0700);
	if (rc < 0) {
		*err = xasprintf("cannot create cache directory '%s': %s", dir, strerror(-rc));
		return NULL;
	}
	struct sb_snapcache *c = xcalloc(1, sizeof(*c));
	c->dir = xstrdup(dir);
	c->budget = budget;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->work, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->tick, &ca);
	pthread_condattr_destroy(&ca);
	scan_dir(c);
	while (c->n_workers < SB_SNAPCACHE_FETCHERS &&
	       pthread_create(&c->workers[c->n_workers], NULL, worker_main, c) == 0)
		c->n_workers++;
	if (c->n_workers == SB_SNAPCACHE_FETCHERS &&
	    pthread_create(&c->watchdog, NULL, watchdog_main, c) == 0) {
		c->has_watchdog = true;
		return c;
	}
	*err = xstrdup("cannot start the content cache's threads");
	sb_snapcache_free(c);
	return NULL;
}

void sb_snapcache_free(struct sb_snapcache *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	c->stopping = true;
	for (size_t i = 0; i < SB_SNAPCACHE_FETCHERS; i++)
		if (c->running[i])
			atomic_store(&c->running[i]->cancel, true);
	pthread_cond_broadcast(&c->work);
	pthread_cond_broadcast(&c->tick);
	pthread_mutex_unlock(&c->mu);
	for (size_t i = 0; i < c->n_workers; i++)
		pthread_join(c->workers[i], NULL);
	if (c->has_watchdog)
		pthread_join(c->watchdog, NULL);
	/* Batches that never ran: their items fail (nobody reads them: handles are closed). */
	for (struct batch *b = c->queue_head, *next; b; b = next) {
		next = b->next;
		for (size_t i = 0; i < b->n; i++)
			if (b->v[i].item)
				fail_item(c, b->v[i].item);
		batch_free(b);
	}
	for (size_t i = 0; i < c->table_cap; i++) {
		for (struct item *it = c->table[i], *next; it; it = next) {
			next = it->hnext;
			item_free(it);
		}
	}
	free(c->table);
	pthread_cond_destroy(&c->work);
	pthread_cond_destroy(&c->tick);
	pthread_mutex_destroy(&c->mu);
	free(c->dir);
	free(c);
}
