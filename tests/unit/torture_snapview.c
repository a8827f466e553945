/*
 * The snapshot view against a real restic repository: stacks and
 * snapshot names, references, trees loaded once and then read from the
 * disk cache without restic, `latest` following a new backup, file
 * contents through `restic dump` (single files and directory tars), the
 * copy-out used by `stackback get`, and the failures a user meets.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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

#include "stackback/config.h"
#include "stackback/log.h"
#include "stackback/runner.h"
#include "stackback/snapcache.h"
#include "stackback/snapview.h"
#include "stackback/util.h"

#define WAIT 120.0

struct world {
	char *dir;
	char *repo;
	char *src;         /* stacks live in src/NAME */
	struct sb_config cfg;
};

static struct world W;

static void run_ok(const char *const *argv)
{
	cleanup_free char *repo_env = xasprintf("RESTIC_REPOSITORY=%s", W.repo);
	const char *env[] = {repo_env, "RESTIC_PASSWORD=sv-secret-81", NULL};
	struct sb_run_opts o = {.argv = argv, .env_add = env, .capture_stderr = true, .timeout_s = 120};
	struct sb_run_result res;
	if (sb_run(&o, &res) != 0) {
		cleanup_free char *why = sb_run_describe(&res, 120);
		fail_msg("%s %s failed: %s", argv[0], argv[1], why);
	}
	sb_run_result_free(&res);
}

static void write_file(const char *rel, const void *data, size_t len)
{
	cleanup_free char *p = xasprintf("%s/%s", W.src, rel);
	char *slash = strrchr(p, '/');
	*slash = '\0';
	assert_int_equal(sb_mkdir_p(p, 0755), 0);
	*slash = '/';
	assert_int_equal(sb_write_file_atomic(p, data, len, 0644), 0);
}

static void backup(const char *stack)
{
	cleanup_free char *path = xasprintf("%s/%s", W.src, stack);
	run_ok((const char *const[]){"restic", "backup", "-q", "--tag", "stackback", "--tag", stack, path, NULL});
}

static unsigned char big_byte(size_t i)
{
	return (unsigned char)((i * 7 + i / 1000) & 0xff);
}

#define BIG_SIZE ((3u << 20) + 17)

static int group_setup(void **state)
{
	(void)state;
	W.dir = xstrdup("/tmp/torture_snapview.XXXXXX");
	assert_non_null(mkdtemp(W.dir));
	W.repo = xasprintf("%s/repo", W.dir);
	W.src = xasprintf("%s/stacks", W.dir);
	write_file("web/compose.yaml", "services: {}\n", 13);
	write_file("web/data/a.txt", "alpha\n", 6);
	write_file("web/data/sub/b.txt", "beta\n", 5);
	write_file("web/data/star*[x]?.txt", "glob\n", 5);
	write_file("web/empty", "", 0);
	unsigned char *big = xmalloc(BIG_SIZE);
	for (size_t i = 0; i < BIG_SIZE; i++)
		big[i] = big_byte(i);
	write_file("web/big.bin", big, BIG_SIZE);
	free(big);
	cleanup_free char *link = xasprintf("%s/web/link", W.src);
	assert_int_equal(symlink("data/a.txt", link), 0);
	write_file("db/compose.yaml", "services: {}\n", 13);
	write_file("db/dump.sql", "select 1;\n", 10);
	run_ok((const char *const[]){"restic", "init", "-q", NULL});
	backup("web");
	backup("db");

	sb_config_defaults(&W.cfg);
	free(W.cfg.state_dir);
	W.cfg.state_dir = xasprintf("%s/state", W.dir);
	free(W.cfg.restic_repository);
	W.cfg.restic_repository = xstrdup(W.repo);
	W.cfg.restic_password = xstrdup("sv-secret-81");
	W.cfg.backup_timeout = 120;
	/* The restic path: a local repository is otherwise read natively (torture_resticrepo_real). */
	W.cfg.snapshot_reader = SB_SNAPSHOT_READER_RESTIC;
	assert_int_equal(sb_mkdir_p(W.cfg.state_dir, 0700), 0);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	sb_config_free(&W.cfg);
	sb_rm_rf(W.dir);
	free(W.dir);
	free(W.repo);
	free(W.src);
	return 0;
}

static struct sb_snapview *view(struct sb_snapcache *content)
{
	struct sb_snapview_opts o = {.cfg = &W.cfg, .label = "local", .content = content};
	char *err = NULL;
	struct sb_snapview *v = sb_snapview_new(&o, &err);
	if (!v)
		fail_msg("%s", err);
	return v;
}

static void test_list_and_resolve(void **state)
{
	(void)state;
	struct sb_snapview *v = view(NULL);
	struct sb_strv stacks = {0};
	char *err = NULL;
	assert_int_equal(sb_snapview_stacks(v, WAIT, &stacks, &err), 0);
	assert_int_equal(stacks.n, 2);
	assert_string_equal(stacks.v[0], "db");
	assert_string_equal(stacks.v[1], "web");
	sb_strv_free(&stacks);

	struct sb_snapview_snap *snaps;
	size_t n;
	assert_int_equal(sb_snapview_list(v, "web", WAIT, &snaps, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(strlen(snaps[0].id), 64);
	assert_int_equal(strlen(snaps[0].short_id), 8);
	assert_string_equal(snaps[0].stack, "web");
	/* YYYY-MM-DDTHH:MM:SS_shortid, in UTC. */
	char want[48];
	struct tm tm;
	gmtime_r(&snaps[0].time, &tm);
	strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%S_", &tm);
	strcat(want, snaps[0].short_id);
	assert_string_equal(snaps[0].name, want);
	free(snaps);
	assert_int_equal(sb_snapview_list(v, "nosuch", WAIT, &snaps, &n, &err), 0);
	assert_int_equal(n, 0);
	free(snaps);

	struct sb_snapview_snap latest, s;
	assert_int_equal(sb_snapview_resolve(v, "web", "latest", WAIT, &latest, &err), 0);
	assert_int_equal(sb_snapview_resolve(v, "web", latest.short_id, WAIT, &s, &err), 0);
	assert_string_equal(s.id, latest.id);
	assert_int_equal(sb_snapview_resolve(v, "web", latest.name, WAIT, &s, &err), 0);
	assert_string_equal(s.id, latest.id);
	assert_int_equal(sb_snapview_resolve(v, "web", latest.id, WAIT, &s, &err), 0);
	/* db's snapshot is not web's. */
	struct sb_snapview_snap db;
	assert_int_equal(sb_snapview_resolve(v, "db", "latest", WAIT, &db, &err), 0);
	assert_int_equal(sb_snapview_resolve(v, "web", db.short_id, WAIT, &s, &err), -ENOENT);
	free(err);
	err = NULL;
	assert_int_equal(sb_snapview_resolve(v, "web", "not-a-ref", WAIT, &s, &err), -ENOENT);
	assert_non_null(err);
	free(err);
	err = NULL;
	assert_int_equal(sb_snapview_resolve(v, "nosuch", "latest", WAIT, &s, &err), -ENOENT);
	free(err);
	sb_snapview_free(v);
}

/* Counts the entries under dir on disk (not following links). */
static size_t count_entries(const char *dir)
{
	size_t n = 0;
	DIR *d = opendir(dir);
	assert_non_null(d);
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		n++;
		if (de->d_type == DT_DIR) {
			cleanup_free char *sub = xasprintf("%s/%s", dir, de->d_name);
			n += count_entries(sub);
		}
	}
	closedir(d);
	return n;
}

static void test_trees_and_disk_cache(void **state)
{
	(void)state;
	cleanup_free char *web = xasprintf("%s/web", W.src);
	struct sb_snapview *v = view(NULL);
	struct sb_snapview_snap s;
	char *err = NULL;
	assert_int_equal(sb_snapview_resolve(v, "web", "latest", WAIT, &s, &err), 0);
	struct sb_snaptree *t = NULL;
	assert_int_equal(sb_snapview_tree(v, &s, WAIT, &t, &err), 0);
	assert_int_equal(sb_snaptree_count(t), count_entries(web) + 1);
	assert_string_equal(sb_snaptree_root_path(t), web);
	sb_snode_id id;
	assert_int_equal(sb_snaptree_lookup(t, "link", &id), 0);
	assert_string_equal(sb_snaptree_link(t, id), "data/a.txt");
	sb_snaptree_unref(t);
	sb_snapview_free(v);

	cleanup_free char *tree_file = xasprintf("%s/cache/trees/local/%s", W.cfg.state_dir, s.id);
	assert_int_equal(access(tree_file, R_OK), 0);

	/*
	 * Beside it: a tree another process is writing right now, one a crash
	 * left two hours ago, and the tree of a snapshot that is gone.
	 */
	cleanup_free char *writing = xasprintf("%s.tmp.999999", tree_file);
	cleanup_free char *left = xasprintf("%s.tmp.999998", tree_file);
	cleanup_free char *gone = xasprintf("%s/cache/trees/local/%064d", W.cfg.state_dir, 0);
	assert_int_equal(sb_write_file_atomic(writing, "x", 1, 0600), 0);
	assert_int_equal(sb_write_file_atomic(left, "x", 1, 0600), 0);
	assert_int_equal(sb_write_file_atomic(gone, "x", 1, 0600), 0);
	struct timespec old[2] = {{.tv_sec = time(NULL) - 7200}, {.tv_sec = time(NULL) - 7200}};
	assert_int_equal(utimensat(AT_FDCWD, left, old, 0), 0);

	/* A new view (a daemon restart) with restic out of reach: list and tree come from disk. */
	cleanup_free char *path = xstrdup(getenv("PATH"));
	setenv("PATH", "/nonexistent", 1);
	v = view(NULL);
	struct sb_snapview_snap s2;
	int rc = sb_snapview_resolve(v, "web", "latest", WAIT, &s2, &err);
	if (rc == 0)
		rc = sb_snapview_tree(v, &s2, WAIT, &t, &err);
	setenv("PATH", path, 1);
	if (rc != 0)
		fail_msg("restic was needed after all: %s", err);
	assert_string_equal(s2.id, s.id);
	assert_int_equal(sb_snaptree_count(t), count_entries(web) + 1);
	sb_snaptree_unref(t);
	sb_snapview_free(v);
	/* The list load pruned the cache: only the write in flight survives with the live tree. */
	assert_int_equal(access(writing, F_OK), 0);
	assert_int_equal(access(left, F_OK), -1);
	assert_int_equal(access(gone, F_OK), -1);
	assert_int_equal(access(tree_file, F_OK), 0);
	unlink(writing);

	/* A damaged tree file is ignored and rebuilt through restic. */
	assert_int_equal(sb_write_file_atomic(tree_file, "junk", 4, 0600), 0);
	v = view(NULL);
	assert_int_equal(sb_snapview_tree(v, &s, WAIT, &t, &err), 0);
	assert_int_equal(sb_snaptree_count(t), count_entries(web) + 1);
	sb_snaptree_unref(t);
	sb_snapview_free(v);
}

static void test_latest_follows_backups(void **state)
{
	(void)state;
	struct sb_snapview *v = view(NULL);
	struct sb_snapview_snap before, after;
	char *err = NULL;
	assert_int_equal(sb_snapview_resolve(v, "db", "latest", WAIT, &before, &err), 0);
	uint64_t gen = sb_snapview_generation(v);
	write_file("db/dump.sql", "select 2;\n", 10);
	backup("db");
	/* No invalidation: the repository's snapshots/ mtime tells (checked at most once a second). */
	sleep(1);
	assert_int_equal(sb_snapview_resolve(v, "db", "latest", WAIT, &after, &err), 0);
	assert_string_not_equal(after.id, before.id);
	assert_true(sb_snapview_generation(v) != gen);
	struct sb_snapview_snap *snaps;
	size_t n;
	assert_int_equal(sb_snapview_list(v, "db", WAIT, &snaps, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(snaps[1].id, after.id);
	free(snaps);

	/* The job queue's hook: an explicit invalidation re-lists at once. */
	write_file("db/dump.sql", "select 3;\n", 10);
	backup("db");
	sb_snapview_invalidate(v);
	struct sb_snapview_snap third;
	assert_int_equal(sb_snapview_resolve(v, "db", "latest", WAIT, &third, &err), 0);
	assert_string_not_equal(third.id, after.id);
	sb_snapview_free(v);
}

static void read_all(struct sb_snapfile *h, struct sb_buf *out)
{
	char buf[100000];
	for (uint64_t off = 0;;) {
		ssize_t n = sb_snapfile_read(h, buf, sizeof(buf), off);
		assert_true(n >= 0);
		if (n == 0)
			break;
		sb_buf_append(out, buf, (size_t)n);
		off += (uint64_t)n;
	}
}

static void test_contents(void **state)
{
	(void)state;
	cleanup_free char *cache_dir = xasprintf("%s/content", W.dir);
	char *err = NULL;
	struct sb_snapcache *cache = sb_snapcache_new(cache_dir, 64 << 20, &err);
	assert_non_null(cache);
	struct sb_snapview *v = view(cache);
	struct sb_snapview_snap s;
	assert_int_equal(sb_snapview_resolve(v, "web", "latest", WAIT, &s, &err), 0);
	struct sb_snaptree *t;
	assert_int_equal(sb_snapview_tree(v, &s, WAIT, &t, &err), 0);

	/* A small file: its whole directory comes in one tar, so its neighbours are then cached. */
	sb_snode_id a, b, big, empty, link, dir;
	assert_int_equal(sb_snaptree_lookup(t, "data/a.txt", &a), 0);
	assert_int_equal(sb_snaptree_lookup(t, "data/sub/b.txt", &b), 0);
	assert_int_equal(sb_snaptree_lookup(t, "big.bin", &big), 0);
	assert_int_equal(sb_snaptree_lookup(t, "empty", &empty), 0);
	assert_int_equal(sb_snaptree_lookup(t, "link", &link), 0);
	assert_int_equal(sb_snaptree_lookup(t, "data", &dir), 0);
	struct sb_snapfile *h;
	assert_int_equal(sb_snapview_open(v, &s, t, a, &h), 0);
	struct sb_buf got = {0};
	read_all(h, &got);
	assert_int_equal(got.len, 6);
	assert_memory_equal(got.data, "alpha\n", 6);
	sb_buf_free(&got);
	sb_snapfile_close(h);
	struct sb_snapcache_stats st;
	do {
		sb_snapcache_stats(cache, &st);
	} while (st.fetching > 0 && usleep(10000) == 0);
	uint64_t fetched = st.fetched;
	assert_int_equal(sb_snapview_open(v, &s, t, b, &h), 0);
	read_all(h, &got);
	assert_memory_equal(got.data, "beta\n", 5);
	sb_buf_free(&got);
	sb_snapfile_close(h);
	sb_snapcache_stats(cache, &st);
	assert_int_equal(st.fetched, fetched); /* no new fetch */

	/* A big file streams through its own `restic dump`. */
	assert_int_equal(sb_snapview_open(v, &s, t, big, &h), 0);
	read_all(h, &got);
	assert_int_equal(got.len, BIG_SIZE);
	for (size_t i = 0; i < BIG_SIZE; i++)
		if ((unsigned char)got.data[i] != big_byte(i))
			fail_msg("big.bin differs at %zu", i);
	sb_buf_free(&got);
	sb_snapfile_close(h);

	/* An empty file needs nothing; a directory or a link is not opened. */
	assert_int_equal(sb_snapview_open(v, &s, t, empty, &h), 0);
	assert_null(h);
	assert_int_equal(sb_snapview_open(v, &s, t, dir, &h), -EISDIR);
	assert_int_equal(sb_snapview_open(v, &s, t, link, &h), -EINVAL);
	sb_snaptree_unref(t);
	sb_snapview_free(v);
	sb_snapcache_free(cache);

	/* Without a content cache there are no contents. */
	v = view(NULL);
	assert_int_equal(sb_snapview_resolve(v, "web", "latest", WAIT, &s, &err), 0);
	assert_int_equal(sb_snapview_tree(v, &s, WAIT, &t, &err), 0);
	assert_int_equal(sb_snapview_open(v, &s, t, a, &h), -ENOTSUP);
	sb_snaptree_unref(t);
	sb_snapview_free(v);
}

static void assert_same_file(const char *a, const char *b)
{
	char *x, *y;
	size_t xl, yl;
	assert_int_equal(sb_read_file(a, 16 << 20, &x, &xl), 0);
	assert_int_equal(sb_read_file(b, 16 << 20, &y, &yl), 0);
	assert_int_equal(xl, yl);
	assert_memory_equal(x, y, xl);
	free(x);
	free(y);
}

static void test_get(void **state)
{
	(void)state;
	struct sb_snapview *v = view(NULL);
	struct sb_snapview_snap s;
	char *err = NULL;
	assert_int_equal(sb_snapview_resolve(v, "web", "latest", WAIT, &s, &err), 0);
	struct sb_snaptree *t;
	assert_int_equal(sb_snapview_tree(v, &s, WAIT, &t, &err), 0);
	cleanup_free char *out = xasprintf("%s/out", W.dir);
	assert_int_equal(sb_mkdir_p(out, 0755), 0);

	/* A file whose name is full of glob characters: restored exactly, nothing else with it. */
	cleanup_free char *f = xasprintf("%s/star", out);
	if (sb_snapview_get(v, &s, t, "data/star*[x]?.txt", f, &err) != 0)
		fail_msg("%s", err);
	cleanup_free char *orig = xasprintf("%s/web/data/star*[x]?.txt", W.src);
	assert_same_file(f, orig);

	/* A directory, and the whole snapshot. */
	cleanup_free char *d = xasprintf("%s/data", out);
	assert_int_equal(sb_snapview_get(v, &s, t, "data", d, &err), 0);
	cleanup_free char *b = xasprintf("%s/sub/b.txt", d);
	cleanup_free char *ob = xasprintf("%s/web/data/sub/b.txt", W.src);
	assert_same_file(b, ob);
	cleanup_free char *all = xasprintf("%s/all", out);
	assert_int_equal(sb_snapview_get(v, &s, t, "/", all, &err), 0);
	cleanup_free char *web = xasprintf("%s/web", W.src);
	assert_int_equal(count_entries(all), count_entries(web));
	char target[PATH_MAX];
	cleanup_free char *link = xasprintf("%s/link", all);
	ssize_t tl = readlink(link, target, sizeof(target) - 1);
	assert_true(tl > 0);
	target[tl] = '\0';
	assert_string_equal(target, "data/a.txt");
	/* No staging directory is left behind. */
	DIR *dd = opendir(out);
	struct dirent *de;
	while ((de = readdir(dd)))
		assert_null(strstr(de->d_name, "stackback-get"));
	closedir(dd);

	/* Refusals: an existing destination, a path not in the snapshot. */
	assert_int_equal(sb_snapview_get(v, &s, t, "data", d, &err), -1);
	assert_non_null(strstr(err, "already exists"));
	free(err);
	err = NULL;
	cleanup_free char *none = xasprintf("%s/none", out);
	assert_int_equal(sb_snapview_get(v, &s, t, "nope", none, &err), -1);
	assert_non_null(strstr(err, "not in snapshot"));
	free(err);
	sb_snaptree_unref(t);
	sb_snapview_free(v);
}

static void test_failures(void **state)
{
	(void)state;
	/* A wrong password: every request gets the same clear message, without running restic again. */
	struct sb_config cfg = W.cfg;
	cfg.restic_password = (char *)"sv-bad-33";
	cfg.state_dir = xasprintf("%s/state-wrong", W.dir);
	struct sb_snapview_opts o = {.cfg = &cfg, .label = "local"};
	char *err = NULL;
	struct sb_snapview *v = sb_snapview_new(&o, &err);
	assert_non_null(v);
	struct sb_strv stacks = {0};
	assert_int_equal(sb_snapview_stacks(v, WAIT, &stacks, &err), -EIO);
	assert_non_null(strstr(err, "wrong password"));
	free(err);
	err = NULL;
	/* With the repository moved away, a retry would say it does not exist: the answer is the stored one. */
	cleanup_free char *away = xasprintf("%s.away", W.repo);
	assert_int_equal(rename(W.repo, away), 0);
	int rc = sb_snapview_stacks(v, WAIT, &stacks, &err);
	assert_int_equal(rename(away, W.repo), 0);
	assert_int_equal(rc, -EIO);
	assert_non_null(strstr(err, "wrong password"));
	free(err);
	sb_snapview_free(v);
	free(cfg.state_dir);

	/* No repository there. */
	cfg = W.cfg;
	cfg.restic_repository = xasprintf("%s/missing", W.dir);
	o.cfg = &cfg;
	v = sb_snapview_new(&o, &err);
	assert_non_null(v);
	err = NULL;
	assert_int_equal(sb_snapview_stacks(v, WAIT, &stacks, &err), -EIO);
	assert_non_null(strstr(err, "does not exist"));
	free(err);
	sb_snapview_free(v);
	free(cfg.restic_repository);

	/* A wait that is too short for restic: -EIO with a message, no hang. */
	cleanup_free char *other = xasprintf("%s/state-short", W.dir);
	cfg = W.cfg;
	cfg.state_dir = other;
	o.cfg = &cfg;
	v = sb_snapview_new(&o, &err);
	err = NULL;
	assert_int_equal(sb_snapview_stacks(v, 0.01, &stacks, &err), -EIO);
	assert_non_null(strstr(err, "did not finish"));
	free(err);
	sb_snapview_free(v);
}

/* A fresh view (no disk caches) asked for latest lists the tree while it lists the snapshots. */
static void test_latest_guessed_early(void **state)
{
	(void)state;
	sb_log_ring_enable(200);
	struct sb_config cfg = W.cfg;
	cfg.state_dir = xasprintf("%s/state-guess", W.dir);
	struct sb_snapview_opts o = {.cfg = &cfg, .label = "local"};
	char *err = NULL;
	struct sb_snapview *v = sb_snapview_new(&o, &err);
	struct sb_snapview_snap s;
	struct sb_snaptree *t;
	assert_int_equal(sb_snapview_resolve(v, "web", "latest", WAIT, &s, &err), 0);
	assert_int_equal(sb_snapview_tree(v, &s, WAIT, &t, &err), 0);
	cleanup_free char *web = xasprintf("%s/web", W.src);
	assert_string_equal(sb_snaptree_root_path(t), web);
	sb_snaptree_unref(t);
	sb_snapview_free(v);
	cleanup_free char *log = sb_log_ring_dump();
	assert_non_null(strstr(log, "web@latest: listed"));
	cleanup_free char *file = xasprintf("%s/cache/trees/local/%s", cfg.state_dir, s.id);
	assert_int_equal(access(file, R_OK), 0);
	free(cfg.state_dir);

	/*
	 * A wrong guess: restic's latest tagged web is a snapshot of another
	 * stack that also carries the tag; the view's latest of web is not it,
	 * so the guess is dropped and the real tree loaded (or, when the list
	 * comes before the guess started, the guess becomes the real load).
	 */
	cleanup_free char *db = xasprintf("%s/db", W.src);
	run_ok((const char *const[]){"restic", "backup", "-q", "--tag", "stackback", "--tag", "db2", "--tag",
				     "web", db, NULL});
	cfg.state_dir = xasprintf("%s/state-guess2", W.dir);
	v = sb_snapview_new(&o, &err);
	struct sb_snapview_snap s2;
	assert_int_equal(sb_snapview_resolve(v, "web", "latest", WAIT, &s2, &err), 0);
	assert_string_equal(s2.id, s.id);
	assert_int_equal(sb_snapview_tree(v, &s2, WAIT, &t, &err), 0);
	assert_string_equal(sb_snaptree_root_path(t), web);
	sb_snaptree_unref(t);
	sb_snapview_free(v);
	free(cfg.state_dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_list_and_resolve),
		cmocka_unit_test(test_trees_and_disk_cache),
		cmocka_unit_test(test_latest_follows_backups),
		cmocka_unit_test(test_contents),
		cmocka_unit_test(test_get),
		cmocka_unit_test(test_failures),
		cmocka_unit_test(test_latest_guessed_early),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
