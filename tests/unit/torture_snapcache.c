/*
 * The content cache: readers served as soon as their range arrives,
 * one fetch shared by concurrent readers, failures as EIO (never a
 * hang), the byte budget, sparse files, what survives a restart.
 *
 * The fetch hooks here produce their bytes in-process: the cache's
 * contract is the same whatever the producer (restic dump is exercised
 * by torture_snapview and the mount tests).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "stackback/snapcache.h"
#include "stackback/util.h"

struct gen {
	uint64_t size;          /* bytes to produce for item 0 (others: their size) */
	size_t chunk;
	unsigned delay_ms;      /* between chunks */
	uint64_t fail_at;       /* stop with an error after this many bytes (0: never) */
	int64_t size_error;     /* produce this many bytes more (or fewer) than the size */
	bool zeros;
	bool wait_cancel;       /* block until cancelled */
	/*
	 * With hold set, the producer stops before the byte at hold_at (0:
	 * before its first) until gen_release(): what a test asserts about
	 * "meanwhile" then holds however the threads are scheduled.
	 */
	bool hold;
	uint64_t hold_at;
	atomic_bool released;
	atomic_int *calls;
	atomic_bool finished;
};

static unsigned char pattern(uint64_t off, size_t item)
{
	return (unsigned char)((off * 31 + off / 4096 + item * 7) & 0xff);
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* False if the cache cancelled the fetch before the test released it (a failed test's teardown). */
static bool wait_released(struct gen *g, atomic_bool *cancel)
{
	while (!atomic_load(&g->released)) {
		if (atomic_load(cancel))
			return false;
		sleep_ms(1);
	}
	return true;
}

static int gen_fetch(void *data, struct sb_snapcache_batch *b, atomic_bool *cancel, char **err)
{
	struct gen *g = data;
	if (g->calls)
		atomic_fetch_add(g->calls, 1);
	if (g->wait_cancel) {
		while (!atomic_load(cancel))
			sleep_ms(10);
		*err = xstrdup("cancelled");
		return -1;
	}
	/* Items in reverse order: a batch may deliver them in any order. */
	for (size_t i = sb_snapcache_batch_count(b); i-- > 0;) {
		uint64_t size = sb_snapcache_batch_size(b, i);
		uint64_t total = (uint64_t)((int64_t)size + g->size_error);
		unsigned char *buf = xmalloc(g->chunk);
		for (uint64_t off = 0; off < total;) {
			if (g->hold && off == g->hold_at && !wait_released(g, cancel)) {
				free(buf);
				*err = xstrdup("cancelled");
				return -1;
			}
			size_t n = total - off < g->chunk ? (size_t)(total - off) : g->chunk;
			if (g->fail_at && off + n > g->fail_at) {
				free(buf);
				*err = xstrdup("the producer broke down");
				return -1;
			}
			for (size_t k = 0; k < n; k++)
				buf[k] = g->zeros ? 0 : pattern(off + k, i);
			if (sb_snapcache_batch_write(b, i, buf, n) < 0)
				break;
			off += n;
			if (g->delay_ms)
				sleep_ms(g->delay_ms);
		}
		free(buf);
		sb_snapcache_batch_done(b, i);
	}
	atomic_store(&g->finished, true);
	return 0;
}

static struct gen *gen_new(size_t chunk, unsigned delay_ms)
{
	struct gen *g = xcalloc(1, sizeof(*g));
	g->chunk = chunk;
	g->delay_ms = delay_ms;
	return g;
}

static struct gen *gen_held(size_t chunk, unsigned delay_ms, uint64_t hold_at)
{
	struct gen *g = gen_new(chunk, delay_ms);
	g->hold = true;
	g->hold_at = hold_at;
	return g;
}

static void gen_release(struct gen *g)
{
	atomic_store(&g->released, true);
}

/* The hook's data is freed by the cache; tests keep watching it through a copy of the flags. */
static void gen_free(void *data)
{
	(void)data;
}

struct fixture {
	char *dir;
	struct sb_snapcache *c;
	struct gen *gens[8];
	size_t n_gens;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	f->dir = xstrdup("/tmp/torture_snapcache.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	char *err = NULL;
	f->c = sb_snapcache_new(f->dir, 64 << 20, &err);
	assert_non_null(f->c);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	sb_snapcache_free(f->c);
	for (size_t i = 0; i < f->n_gens; i++)
		free(f->gens[i]);
	sb_rm_rf(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static struct gen *start(struct fixture *f, const char *key, uint64_t size, struct gen *g)
{
	f->gens[f->n_gens++] = g;
	struct sb_snapcache_item item = {key, size};
	struct sb_snapcache_source src = {.fetch = gen_fetch, .data = g, .free = gen_free, .what = key};
	assert_int_equal(sb_snapcache_fetch(f->c, &item, 1, &src), 1);
	return g;
}

/* Waits until no fetch runs: readers may be served before their fetch has finished. */
static void settle(struct fixture *f)
{
	struct sb_snapcache_stats st;
	for (sb_snapcache_stats(f->c, &st); st.fetching > 0; sb_snapcache_stats(f->c, &st))
		sleep_ms(5);
}

static void check_range(struct sb_snapfile *h, uint64_t off, size_t len, size_t item)
{
	unsigned char *buf = xmalloc(len ? len : 1);
	ssize_t n = sb_snapfile_read(h, buf, len, off);
	assert_true(n >= 0);
	uint64_t size = sb_snapfile_size(h);
	size_t want = off >= size ? 0 : (size - off < len ? (size_t)(size - off) : len);
	assert_int_equal((size_t)n, want);
	for (size_t k = 0; k < want; k++)
		if (buf[k] != pattern(off + k, item))
			fail_msg("byte %llu differs", (unsigned long long)(off + k));
	free(buf);
}

static void test_keys(void **state)
{
	(void)state;
	assert_true(sb_snapcache_key_valid("abc.12"));
	assert_true(sb_snapcache_key_valid("A-b_c"));
	assert_false(sb_snapcache_key_valid(""));
	assert_false(sb_snapcache_key_valid(".hidden"));
	assert_false(sb_snapcache_key_valid("a/b"));
	assert_false(sb_snapcache_key_valid("x.part"));
	assert_false(sb_snapcache_key_valid("sp ace"));
	char longkey[200];
	memset(longkey, 'k', sizeof(longkey) - 1);
	longkey[sizeof(longkey) - 1] = '\0';
	assert_false(sb_snapcache_key_valid(longkey));
	struct fixture *f = *state;
	struct sb_snapfile *h;
	assert_int_equal(sb_snapcache_open(f->c, "../x", 1, &h), -EINVAL);
	assert_int_equal(sb_snapcache_open(f->c, "unknown", 1, &h), -ENOENT);
}

static void test_first_bytes_early(void **state)
{
	struct fixture *f = *state;
	/* 4 MiB in 64 KiB pieces, 20 ms apart; the producer stops after the first piece. */
	struct gen *g = start(f, "slow", 4 << 20, gen_held(64 << 10, 20, 64 << 10));
	struct sb_snapfile *h;
	assert_int_equal(sb_snapcache_open(f->c, "slow", 4 << 20, &h), 0);
	/* The first page is served while the rest cannot have been produced. */
	check_range(h, 0, 4096, 0);
	assert_false(atomic_load(&g->finished));
	gen_release(g);
	check_range(h, (4 << 20) - 100, 4096, 0);   /* the tail: waits, then a short read at the end */
	check_range(h, 4 << 20, 10, 0);             /* past the end */
	check_range(h, 12345, 300000, 0);
	sb_snapfile_close(h);

	/* Complete now: served from the file, no new fetch. */
	assert_int_equal(sb_snapcache_open(f->c, "slow", 4 << 20, &h), 0);
	check_range(h, 1 << 20, 1 << 20, 0);
	int fd;
	assert_int_equal(sb_snapfile_wait(h, 100, 50, &fd), 50);
	assert_true(fd >= 0);
	sb_snapfile_close(h);
	/* The same key with another size is not the same content. */
	assert_int_equal(sb_snapcache_open(f->c, "slow", 5, &h), -ENOENT);
}

struct reader_arg {
	struct sb_snapcache *c;
	const char *key;
	uint64_t size;
	int rc;
};

static void *reader_main(void *arg)
{
	struct reader_arg *a = arg;
	struct sb_snapfile *h;
	a->rc = sb_snapcache_open(a->c, a->key, a->size, &h);
	if (a->rc == 0) {
		unsigned char buf[8192];
		for (uint64_t off = 0; off < a->size && a->rc == 0; off += sizeof(buf)) {
			ssize_t n = sb_snapfile_read(h, buf, sizeof(buf), off);
			if (n <= 0) {
				a->rc = n < 0 ? (int)n : -1;
				break;
			}
			for (ssize_t k = 0; k < n; k++)
				if (buf[k] != pattern(off + (uint64_t)k, 0))
					a->rc = -EBADMSG;
		}
		sb_snapfile_close(h);
	}
	return NULL;
}

static void test_shared_fetch(void **state)
{
	struct fixture *f = *state;
	atomic_int calls = 0;
	struct gen *g = gen_new(32 << 10, 2);
	g->calls = &calls;
	start(f, "shared", 1 << 20, g);
	/* A second fetch of the same key claims nothing. */
	struct gen *g2 = gen_new(32 << 10, 0);
	g2->calls = &calls;
	f->gens[f->n_gens++] = g2;
	struct sb_snapcache_item item = {"shared", 1 << 20};
	struct sb_snapcache_source src = {.fetch = gen_fetch, .data = g2, .free = gen_free, .what = "again"};
	assert_int_equal(sb_snapcache_fetch(f->c, &item, 1, &src), 0);

	pthread_t th[4];
	struct reader_arg args[4];
	for (int i = 0; i < 4; i++) {
		args[i] = (struct reader_arg){f->c, "shared", 1 << 20, 0};
		pthread_create(&th[i], NULL, reader_main, &args[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(args[i].rc, 0);
	}
	assert_int_equal(atomic_load(&calls), 1);
}

static void test_failure_is_eio(void **state)
{
	struct fixture *f = *state;
	struct gen *g = gen_held(64 << 10, 5, 0);
	g->fail_at = 300 << 10;
	start(f, "broken", 1 << 20, g);
	struct sb_snapfile *h;
	assert_int_equal(sb_snapcache_open(f->c, "broken", 1 << 20, &h), 0);
	/* Only now may it fail: an open after the failure would start afresh (-ENOENT). */
	gen_release(g);
	unsigned char buf[4096];
	assert_int_equal(sb_snapfile_read(h, buf, sizeof(buf), 900 << 10), -EIO);
	/* Once failed, nothing of it is served; a new open starts afresh. */
	assert_int_equal(sb_snapfile_read(h, buf, sizeof(buf), 0), -EIO);
	struct sb_snapfile *h2;
	assert_int_equal(sb_snapcache_open(f->c, "broken", 1 << 20, &h2), -ENOENT);
	sb_snapfile_close(h);
	start(f, "broken", 1 << 20, gen_new(64 << 10, 0));
	assert_int_equal(sb_snapcache_open(f->c, "broken", 1 << 20, &h2), 0);
	check_range(h2, 0, 1 << 20, 0);
	sb_snapfile_close(h2);
	settle(f);
	/* No leftover partial file. */
	cleanup_free char *part = xasprintf("%s/broken.part", f->dir);
	assert_int_equal(access(part, F_OK), -1);

	/* Too many bytes, or too few, is an error too (held until the open came). */
	g = gen_held(64 << 10, 0, 0);
	g->size_error = 1;
	start(f, "long", 100000, g);
	assert_int_equal(sb_snapcache_open(f->c, "long", 100000, &h), 0);
	gen_release(g);
	assert_int_equal(sb_snapfile_read(h, buf, sizeof(buf), 99000), -EIO);
	sb_snapfile_close(h);
	g = gen_held(64 << 10, 0, 0);
	g->size_error = -1;
	start(f, "short", 100000, g);
	assert_int_equal(sb_snapcache_open(f->c, "short", 100000, &h), 0);
	gen_release(g);
	assert_int_equal(sb_snapfile_read(h, buf, sizeof(buf), 99000), -EIO);
	sb_snapfile_close(h);
}

static bool cached(struct fixture *f, const char *key, uint64_t size)
{
	struct sb_snapfile *h;
	if (sb_snapcache_open(f->c, key, size, &h) != 0)
		return false;
	sb_snapfile_close(h);
	return true;
}

static void wait_done(struct fixture *f, const char *key, uint64_t size)
{
	struct sb_snapfile *h;
	assert_int_equal(sb_snapcache_open(f->c, key, size, &h), 0);
	check_range(h, size - 1, 1, 0);
	sb_snapfile_close(h);
	settle(f);
}

static void test_budget(void **state)
{
	struct fixture *f = *state;
	sb_snapcache_free(f->c);
	char *err = NULL;
	f->c = sb_snapcache_new(f->dir, 1 << 20, &err);
	assert_non_null(f->c);
	start(f, "one", 400 << 10, gen_new(64 << 10, 0));
	wait_done(f, "one", 400 << 10);
	start(f, "two", 400 << 10, gen_new(64 << 10, 0));
	wait_done(f, "two", 400 << 10);
	assert_true(cached(f, "one", 400 << 10)); /* now the most recent */
	start(f, "three", 400 << 10, gen_new(64 << 10, 0));
	wait_done(f, "three", 400 << 10);
	/* "two" was the least recently used. */
	assert_false(cached(f, "two", 400 << 10));
	assert_true(cached(f, "one", 400 << 10));
	cleanup_free char *two = xasprintf("%s/two", f->dir);
	assert_int_equal(access(two, F_OK), -1);
	struct sb_snapcache_stats st;
	sb_snapcache_stats(f->c, &st);
	assert_true(st.used <= st.budget);

	/*
	 * Bigger than the whole budget: served while open, not kept. The
	 * producer is held until the open came (a finished entry this big
	 * is dropped at once, and the open would miss it).
	 */
	struct gen *g = start(f, "huge", 3 << 20, gen_held(256 << 10, 0, 0));
	struct sb_snapfile *h;
	assert_int_equal(sb_snapcache_open(f->c, "huge", 3 << 20, &h), 0);
	gen_release(g);
	check_range(h, 0, 3 << 20, 0);
	sb_snapfile_close(h);
	settle(f);
	assert_false(cached(f, "huge", 3 << 20));
	/* ... and it did not push out what fits. */
	assert_true(cached(f, "one", 400 << 10));
	cleanup_free char *huge = xasprintf("%s/huge", f->dir);
	assert_int_equal(access(huge, F_OK), -1);
}

static void test_sparse_and_restart(void **state)
{
	struct fixture *f = *state;
	struct gen *g = gen_new(1 << 20, 0);
	g->zeros = true;
	start(f, "zeros", 16 << 20, g);
	struct sb_snapfile *h;
	assert_int_equal(sb_snapcache_open(f->c, "zeros", 16 << 20, &h), 0);
	unsigned char buf[4096];
	assert_int_equal(sb_snapfile_read(h, buf, sizeof(buf), (16 << 20) - 4096), 4096);
	for (size_t k = 0; k < sizeof(buf); k++)
		assert_int_equal(buf[k], 0);
	sb_snapfile_close(h);
	settle(f);
	cleanup_free char *path = xasprintf("%s/zeros", f->dir);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 16 << 20);
	assert_true(st.st_blocks * 512 < (1 << 20));

	start(f, "kept", 100000, gen_new(64 << 10, 0));
	wait_done(f, "kept", 100000);
	/* A partial file of an earlier run, and a stray file: one removed, one ignored. */
	cleanup_free char *part = xasprintf("%s/stale.part", f->dir);
	assert_int_equal(sb_write_file_atomic(part, "x", 1, 0600), 0);
	sb_snapcache_free(f->c);
	char *err = NULL;
	f->c = sb_snapcache_new(f->dir, 64 << 20, &err);
	assert_non_null(f->c);
	assert_int_equal(access(part, F_OK), -1);
	assert_int_equal(sb_snapcache_open(f->c, "kept", 100000, &h), 0);
	check_range(h, 0, 100000, 0);
	sb_snapfile_close(h);
	assert_true(cached(f, "zeros", 16 << 20));
	/* A file changed behind the cache's back is fetched again, not served. */
	cleanup_free char *kept = xasprintf("%s/kept", f->dir);
	assert_int_equal(truncate(kept, 10), 0);
	assert_int_equal(sb_snapcache_open(f->c, "kept", 100000, &h), -ENOENT);
}

static void test_batch(void **state)
{
	struct fixture *f = *state;
	start(f, "b1", 5000, gen_new(1000, 0));
	wait_done(f, "b1", 5000);
	struct sb_snapcache_item items[] = {{"b1", 5000}, {"b2", 7000}, {"b3", 1}, {"bad/key", 3}};
	struct gen *g = gen_new(999, 0);
	f->gens[f->n_gens++] = g;
	struct sb_snapcache_source src = {.fetch = gen_fetch, .data = g, .free = gen_free, .what = "batch"};
	/* b1 is cached already and the bad key is refused: two claimed. */
	assert_int_equal(sb_snapcache_fetch(f->c, items, 4, &src), 2);
	struct sb_snapfile *h;
	assert_int_equal(sb_snapcache_open(f->c, "b2", 7000, &h), 0);
	unsigned char buf[7000];
	assert_int_equal(sb_snapfile_read(h, buf, sizeof(buf), 0), 7000);
	for (size_t k = 0; k < sizeof(buf); k++)
		assert_int_equal(buf[k], pattern(k, 1));
	sb_snapfile_close(h);
	assert_true(cached(f, "b3", 1));
}

static void test_free_cancels(void **state)
{
	struct fixture *f = *state;
	struct gen *g = gen_new(1, 0);
	g->wait_cancel = true;
	start(f, "forever", 10, g);
	struct sb_snapcache_stats st;
	sb_snapcache_stats(f->c, &st);
	assert_int_equal(st.fetching, 1);
	/* Promptly: far sooner than the stall timeout (SB_SNAPCACHE_STALL_S) would end it. */
	double t0 = sb_now_monotonic();
	sb_snapcache_free(f->c);
	f->c = NULL;
	assert_true(sb_now_monotonic() - t0 < 30.0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_first_bytes_early, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shared_fetch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failure_is_eio, setup, teardown),
		cmocka_unit_test_setup_teardown(test_budget, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sparse_and_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_cancels, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
