/*
 * The snapshot tree: the `restic ls --json` / `restic ls -l` parser on
 * real restic 0.14.0 output (odd names, symlinks whose names and
 * targets hold " -> "), lookups, the on-disk form and its checks, then
 * garbage. The last test lists a real repository through restic and
 * compares the tree with the directory it was taken of.
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
#include <unistd.h>

#include <cmocka.h>

#include "stackback/runner.h"
#include "stackback/snaptree.h"
#include "stackback/util.h"

/* restic 0.14.0 `ls --json latest` of /tmp/rx/src/web (ancestors first, then the stack's tree). */
static const char ls_json[] =
	"{\"time\":\"2026-11-28T04:31:54.192635467Z\",\"tree\":\"6b6c3f93b9d52082a1572ddc2f1f65d3da38d045f7a194a7cf2551077c0bf8b8\",\"paths\":[\"/tmp/rx/src/web\"],\"hostname\":\"vm\",\"username\":\"root\",\"tags\":[\"stackback\",\"web\"],\"id\":\"35347d91a0b66822a6e3e45b9ba06f1892d8a3bd6e1a6d58b892d8a097f2cfdb\",\"short_id\":\"35347d91\",\"struct_type\":\"snapshot\"}\n"
	"{\"name\":\"tmp\",\"type\":\"dir\",\"path\":\"/tmp\",\"uid\":0,\"gid\":0,\"mode\":2148532735,\"permissions\":\"dtrwxrwxrwx\",\"mtime\":\"2026-11-28T04:31:54.78254057Z\",\"atime\":\"2026-11-28T04:31:54.78254057Z\",\"ctime\":\"2026-11-28T04:31:54.78254057Z\",\"struct_type\":\"node\"}\n"
	"{\"name\":\"rx\",\"type\":\"dir\",\"path\":\"/tmp/rx\",\"uid\":0,\"gid\":0,\"mode\":2147484141,\"permissions\":\"drwxr-xr-x\",\"mtime\":\"2026-11-28T04:27:44.214531609Z\",\"struct_type\":\"node\"}\n"
	"{\"name\":\"src\",\"type\":\"dir\",\"path\":\"/tmp/rx/src\",\"uid\":0,\"gid\":0,\"mode\":2147484141,\"permissions\":\"drwxr-xr-x\",\"mtime\":\"2026-11-28T04:24:27.309471291Z\",\"struct_type\":\"node\"}\n"
	"{\"name\":\"web\",\"type\":\"dir\",\"path\":\"/tmp/rx/src/web\",\"uid\":0,\"gid\":0,\"mode\":2147484141,\"permissions\":\"drwxr-xr-x\",\"mtime\":\"2026-11-28T04:31:54.178540548Z\",\"struct_type\":\"node\"}\n"
	"{\"name\":\"d2\",\"type\":\"dir\",\"path\":\"/tmp/rx/src/web/d2\",\"uid\":1000,\"gid\":100,\"mode\":2147484141,\"permissions\":\"drwxr-xr-x\",\"mtime\":\"2026-11-28T04:24:27.310524567Z\",\"struct_type\":\"node\"}\n"
	"{\"name\":\"link\",\"type\":\"symlink\",\"path\":\"/tmp/rx/src/web/d2/link\",\"uid\":0,\"gid\":0,\"mode\":134218239,\"permissions\":\"Lrwxrwxrwx\",\"mtime\":\"2026-11-28T04:24:27.310524567Z\",\"struct_type\":\"node\"}\n"
	"{\"name\":\"dlink\",\"type\":\"symlink\",\"path\":\"/tmp/rx/src/web/dlink\",\"uid\":0,\"gid\":0,\"mode\":134218239,\"permissions\":\"Lrwxrwxrwx\",\"mtime\":\"2026-11-28T04:24:27.310524567Z\",\"struct_type\":\"node\"}\n"
	"{\"name\":\"empty\",\"type\":\"file\",\"path\":\"/tmp/rx/src/web/empty\",\"uid\":0,\"gid\":0,\"size\":0,\"mode\":420,\"permissions\":\"-rw-r--r--\",\"mtime\":\"2026-11-28T04:24:27.314524567Z\",\"struct_type\":\"node\"}\n"
	"{\"name\":\"l -\\u003e y\",\"type\":\"symlink\",\"path\":\"/tmp/rx/src/web/l -\\u003e y\",\"uid\":0,\"gid\":0,\"mode\":134218239,\"permissions\":\"Lrwxrwxrwx\",\"mtime\":\"2026-11-28T04:24:27.314524567Z\",\"struct_type\":\"node\"}\n"
	"{\"name\":\"sparse\",\"type\":\"file\",\"path\":\"/tmp/rx/src/web/sparse\",\"uid\":0,\"gid\":0,\"size\":10485760,\"mode\":8390125,\"permissions\":\"-rwsr-xr-x\",\"mtime\":\"2026-11-28T04:24:27.314524567+02:00\",\"struct_type\":\"node\"}\n"
	"{\"name\":\"sub dir\",\"type\":\"dir\",\"path\":\"/tmp/rx/src/web/sub dir\",\"uid\":0,\"gid\":0,\"mode\":2147484141,\"permissions\":\"drwxr-xr-x\",\"mtime\":\"2026-11-28T04:24:27.310524567Z\",\"struct_type\":\"node\"}\n"
	"{\"name\":\"a b.txt\",\"type\":\"file\",\"path\":\"/tmp/rx/src/web/sub dir/a b.txt\",\"uid\":0,\"gid\":0,\"size\":3,\"mode\":420,\"permissions\":\"-rw-r--r--\",\"mtime\":\"2026-11-28T04:24:27.310524567Z\",\"struct_type\":\"node\"}\n"
	"{\"name\":\"fifo\",\"type\":\"fifo\",\"path\":\"/tmp/rx/src/web/sub dir/fifo\",\"uid\":0,\"gid\":0,\"mode\":33554848,\"mtime\":\"2026-11-28T04:24:27Z\",\"struct_type\":\"node\"}\n"
	"{\"name\":\"tab\\there\",\"type\":\"file\",\"path\":\"/tmp/rx/src/web/tab\\there\",\"uid\":0,\"gid\":0,\"size\":1,\"mode\":420,\"permissions\":\"-rw-r--r--\",\"mtime\":\"2026-11-28T04:24:27.310524567Z\",\"struct_type\":\"node\"}\n"
	"{\"name\":\"\\u00e9t\\u00e9 \\\"q\\\"\",\"type\":\"file\",\"path\":\"/tmp/rx/src/web/\\u00e9t\\u00e9 \\\"q\\\"\",\"uid\":0,\"gid\":0,\"size\":2,\"mode\":384,\"mtime\":\"2026-11-28T04:31:54.178201054Z\",\"struct_type\":\"node\"}\n";

/* restic 0.14.0 `ls -l latest` of the same snapshot. */
static const char ls_long[] =
	"snapshot 35347d91 of [/tmp/rx/src/web] filtered by [] at 2026-11-28 04:31:54.192635467 +0000 UTC):\n"
	"dtrwxrwxrwx     0     0      0 2026-11-28 04:31:54 /tmp\n"
	"drwxr-xr-x     0     0      0 2026-11-28 04:24:27 /tmp/rx/src/web/d2\n"
	"Lrwxrwxrwx     0     0      0 2026-11-28 04:24:27 /tmp/rx/src/web/d2/link -> ../sub dir/a b.txt\n"
	"Lrwxrwxrwx     0     0      0 2026-11-28 04:24:27 /tmp/rx/src/web/dlink -> sub dir\n"
	"-rw-r--r--     0     0      0 2026-11-28 04:24:27 /tmp/rx/src/web/empty\n"
	"Lrwxrwxrwx     0     0      0 2026-11-28 04:24:27 /tmp/rx/src/web/l -> y -> weird -> x\n"
	"-rw-r--r--     0     0 10485760 2026-11-28 04:24:27 /tmp/rx/src/web/sparse\n";

static void feed_lines(struct sb_snaptree_builder *b, const char *text, bool json)
{
	const char *p = text;
	while (*p) {
		const char *nl = strchrnul(p, '\n');
		if (json) {
			char *err = NULL;
			int rc = sb_snaptree_builder_feed_json(b, p, (size_t)(nl - p), &err);
			if (rc < 0)
				fail_msg("unexpected parse error: %s", err);
		} else {
			sb_snaptree_builder_feed_long(b, p, (size_t)(nl - p));
		}
		p = *nl ? nl + 1 : nl;
	}
}

static struct sb_snaptree *build_sample(const char *root)
{
	struct sb_snaptree_builder *b = sb_snaptree_builder_new(root);
	feed_lines(b, ls_json, true);
	assert_true(sb_snaptree_builder_wants_links(b));
	feed_lines(b, ls_long, false);
	char *err = NULL;
	struct sb_snaptree *t = sb_snaptree_builder_finish(b, &err);
	assert_non_null(t);
	assert_string_equal(sb_snaptree_builder_snapshot_id(b),
			    "35347d91a0b66822a6e3e45b9ba06f1892d8a3bd6e1a6d58b892d8a097f2cfdb");
	sb_snaptree_builder_free(b);
	return t;
}

static sb_snode_id must_lookup(const struct sb_snaptree *t, const char *path)
{
	sb_snode_id id = SB_SNODE_NONE;
	int rc = sb_snaptree_lookup(t, path, &id);
	if (rc != 0)
		fail_msg("lookup of '%s' failed: %d", path, rc);
	return id;
}

static void check_sample(const struct sb_snaptree *t)
{
	assert_string_equal(sb_snaptree_root_path(t), "/tmp/rx/src/web");
	/* web itself plus 11 entries below it; the ancestors are not part of the tree. */
	assert_int_equal(sb_snaptree_count(t), 12);
	struct stat st;
	sb_snaptree_stat(t, SB_SNODE_ROOT, &st);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0755);
	assert_int_equal(st.st_nlink, 4); /* d2 and "sub dir" */
	assert_int_equal(st.st_mtim.tv_sec, 1795840314);
	assert_int_equal(st.st_mtim.tv_nsec, 178540548);

	/* Children in byte order, like restic. */
	const char *want[] = {"d2", "dlink", "empty", "l -> y", "sparse", "sub dir", "tab\there",
			      "\xc3\xa9t\xc3\xa9 \"q\""};
	assert_int_equal(sb_snaptree_nchildren(t, SB_SNODE_ROOT), SB_ARRAY_SIZE(want));
	for (uint32_t i = 0; i < SB_ARRAY_SIZE(want); i++) {
		sb_snode_id c = sb_snaptree_child_at(t, SB_SNODE_ROOT, i);
		assert_string_equal(sb_snaptree_name(t, c), want[i]);
		assert_int_equal(sb_snaptree_parent(t, c), SB_SNODE_ROOT);
	}

	sb_snode_id id = must_lookup(t, "sub dir/a b.txt");
	sb_snaptree_stat(t, id, &st);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_size, 3);
	assert_int_equal(st.st_mode & 07777, 0644);
	cleanup_free char *rel = sb_snaptree_path(t, id);
	assert_string_equal(rel, "sub dir/a b.txt");
	cleanup_free char *abs = sb_snaptree_source_path(t, id);
	assert_string_equal(abs, "/tmp/rx/src/web/sub dir/a b.txt");

	/* Setuid comes through; a "+02:00" mtime is converted to UTC. */
	id = must_lookup(t, "/sparse");
	sb_snaptree_stat(t, id, &st);
	assert_int_equal(st.st_mode, S_IFREG | S_ISUID | 0755);
	assert_int_equal(st.st_size, 10485760);
	assert_int_equal(st.st_blocks, 20480);
	assert_int_equal(st.st_mtim.tv_sec, 1795839867 - 7200);

	id = must_lookup(t, "d2");
	sb_snaptree_stat(t, id, &st);
	assert_int_equal(st.st_uid, 1000);
	assert_int_equal(st.st_gid, 100);

	/* Symlink targets from the -l pass, " -> " in names and targets included. */
	id = must_lookup(t, "d2/link");
	assert_true(S_ISLNK(sb_snaptree_mode(t, id)));
	assert_string_equal(sb_snaptree_link(t, id), "../sub dir/a b.txt");
	assert_int_equal(sb_snaptree_size(t, id), strlen("../sub dir/a b.txt"));
	assert_string_equal(sb_snaptree_link(t, must_lookup(t, "dlink")), "sub dir");
	assert_string_equal(sb_snaptree_link(t, must_lookup(t, "l -> y")), "weird -> x");
	assert_null(sb_snaptree_link(t, must_lookup(t, "empty")));

	assert_true(S_ISFIFO(sb_snaptree_mode(t, must_lookup(t, "sub dir/fifo"))));
	assert_int_equal(sb_snaptree_mode(t, must_lookup(t, "\xc3\xa9t\xc3\xa9 \"q\"")), S_IFREG | 0600);
	assert_int_equal(sb_snaptree_size(t, must_lookup(t, "tab\there")), 1);
	assert_int_equal(must_lookup(t, ""), SB_SNODE_ROOT);
	assert_int_equal(must_lookup(t, "//"), SB_SNODE_ROOT);
	assert_int_equal(must_lookup(t, "sub dir//a b.txt/"), must_lookup(t, "sub dir/a b.txt"));

	sb_snode_id none;
	assert_int_equal(sb_snaptree_lookup(t, "nope", &none), -ENOENT);
	assert_int_equal(sb_snaptree_lookup(t, "sub dir/a b.txt/x", &none), -ENOTDIR);
	assert_int_equal(sb_snaptree_lookup(t, "sub dir/../sparse", &none), -EINVAL);
	assert_int_equal(sb_snaptree_lookup(t, "./sparse", &none), -EINVAL);
	assert_int_equal(sb_snaptree_child(t, SB_SNODE_ROOT, "sub", 3, &none), -ENOENT);
	assert_int_equal(sb_snaptree_nchildren(t, must_lookup(t, "sparse")), 0);
}

static void test_sample(void **state)
{
	(void)state;
	struct sb_snaptree *t = build_sample(NULL);
	check_sample(t);
	/* Well under the 100 bytes per entry the design promises. */
	assert_true(sb_snaptree_memory(t) < 100 * sb_snaptree_count(t) + 512);
	struct sb_snaptree *r = sb_snaptree_ref(t);
	sb_snaptree_unref(t);
	check_sample(r);
	sb_snaptree_unref(r);
	/* The same root given explicitly (with a trailing slash) builds the same tree. */
	t = build_sample("/tmp/rx/src/web/");
	check_sample(t);
	sb_snaptree_unref(t);
}

static void test_subtree_root(void **state)
{
	(void)state;
	/* A root deeper than the snapshot's path: only that directory's subtree. */
	struct sb_snaptree_builder *b = sb_snaptree_builder_new("/tmp/rx/src/web/sub dir");
	feed_lines(b, ls_json, true);
	assert_false(sb_snaptree_builder_wants_links(b));
	char *err = NULL;
	struct sb_snaptree *t = sb_snaptree_builder_finish(b, &err);
	sb_snaptree_builder_free(b);
	assert_non_null(t);
	assert_int_equal(sb_snaptree_count(t), 3);
	cleanup_free char *abs = sb_snaptree_source_path(t, must_lookup(t, "a b.txt"));
	assert_string_equal(abs, "/tmp/rx/src/web/sub dir/a b.txt");
	sb_snaptree_unref(t);
}

static void test_several_paths(void **state)
{
	(void)state;
	/* A migrated snapshot of two directories: the root is their common parent. */
	static const char two[] =
		"{\"time\":\"2024-01-02T03:04:05Z\",\"paths\":[\"/srv/a\",\"/srv/b\"],\"id\":\"aa\",\"struct_type\":\"snapshot\"}\n"
		"{\"name\":\"srv\",\"type\":\"dir\",\"path\":\"/srv\",\"mode\":2147484141,\"mtime\":\"2024-01-02T03:04:05Z\",\"struct_type\":\"node\"}\n"
		"{\"name\":\"a\",\"type\":\"dir\",\"path\":\"/srv/a\",\"mode\":2147484141,\"struct_type\":\"node\"}\n"
		"{\"name\":\"f\",\"type\":\"file\",\"path\":\"/srv/a/f\",\"size\":5,\"mode\":420,\"struct_type\":\"node\"}\n"
		"{\"name\":\"b\",\"type\":\"dir\",\"path\":\"/srv/b\",\"mode\":2147484141,\"struct_type\":\"node\"}\n";
	struct sb_snaptree_builder *b = sb_snaptree_builder_new(NULL);
	feed_lines(b, two, true);
	char *err = NULL;
	struct sb_snaptree *t = sb_snaptree_builder_finish(b, &err);
	sb_snaptree_builder_free(b);
	assert_non_null(t);
	assert_string_equal(sb_snaptree_root_path(t), "/srv");
	assert_int_equal(sb_snaptree_size(t, must_lookup(t, "a/f")), 5);
	assert_true(S_ISDIR(sb_snaptree_mode(t, must_lookup(t, "b"))));
	sb_snaptree_unref(t);

	/* A snapshot of "/": restic lists no node for it, the root is made up with the snapshot's time. */
	static const char slash[] =
		"{\"time\":\"2024-01-02T03:04:05Z\",\"paths\":[\"/\"],\"id\":\"bb\",\"struct_type\":\"snapshot\"}\n"
		"{\"name\":\"etc\",\"type\":\"dir\",\"path\":\"/etc\",\"mode\":2147484141,\"struct_type\":\"node\"}\n"
		"{\"name\":\"hosts\",\"type\":\"file\",\"path\":\"/etc/hosts\",\"size\":9,\"mode\":420,\"struct_type\":\"node\"}\n";
	b = sb_snaptree_builder_new(NULL);
	feed_lines(b, slash, true);
	t = sb_snaptree_builder_finish(b, &err);
	sb_snaptree_builder_free(b);
	assert_non_null(t);
	assert_string_equal(sb_snaptree_root_path(t), "/");
	cleanup_free char *abs = sb_snaptree_source_path(t, must_lookup(t, "etc/hosts"));
	assert_string_equal(abs, "/etc/hosts");
	struct stat st;
	sb_snaptree_stat(t, SB_SNODE_ROOT, &st);
	assert_int_equal(st.st_mtim.tv_sec, 1704164645);
	sb_snaptree_unref(t);
}

/* Feeds lines until one is refused; returns whether one was. */
static bool refused(const char *root, const char *text)
{
	struct sb_snaptree_builder *b = sb_snaptree_builder_new(root);
	bool bad = false;
	const char *p = text;
	while (*p && !bad) {
		const char *nl = strchrnul(p, '\n');
		char *err = NULL;
		if (sb_snaptree_builder_feed_json(b, p, (size_t)(nl - p), &err) < 0) {
			assert_non_null(err);
			free(err);
			bad = true;
		}
		p = *nl ? nl + 1 : nl;
	}
	if (!bad) {
		char *err = NULL;
		struct sb_snaptree *t = sb_snaptree_builder_finish(b, &err);
		if (!t) {
			assert_non_null(err);
			free(err);
			bad = true;
		}
		sb_snaptree_unref(t);
	}
	sb_snaptree_builder_free(b);
	return bad;
}

#define SNAP "{\"time\":\"2024-01-02T03:04:05Z\",\"paths\":[\"/s\"],\"id\":\"cc\",\"struct_type\":\"snapshot\"}\n"
#define ROOT "{\"name\":\"s\",\"type\":\"dir\",\"path\":\"/s\",\"mode\":2147484141,\"struct_type\":\"node\"}\n"
#define NODE(name, path, type) \
	"{\"name\":\"" name "\",\"type\":\"" type "\",\"path\":\"" path "\",\"mode\":420,\"struct_type\":\"node\"}\n"

static void test_garbage(void **state)
{
	(void)state;
	assert_false(refused(NULL, SNAP ROOT NODE("f", "/s/f", "file")));
	/* Blank lines and unknown struct types are skipped; so is an unknown node type. */
	assert_false(refused(NULL, SNAP "\n  \n{\"struct_type\":\"later\"}\n" ROOT NODE("x", "/s/x", "irregular")));

	assert_true(refused(NULL, ""));                              /* nothing at all */
	assert_true(refused(NULL, SNAP));                            /* no root entry */
	assert_true(refused(NULL, "not json\n"));
	assert_true(refused(NULL, "[1,2]\n"));
	assert_true(refused(NULL, "{\"struct_type\":\"node\"\n"));  /* truncated */
	assert_true(refused(NULL, SNAP ROOT "{} {}\n"));             /* two objects on a line */
	assert_true(refused(NULL, ROOT));                            /* entry before the snapshot line */
	assert_true(refused(NULL, SNAP SNAP ROOT));                  /* two snapshot lines */
	assert_true(refused(NULL, "{\"paths\":[\"rel\"],\"struct_type\":\"snapshot\"}\n" ROOT));
	assert_true(refused(NULL, "{\"paths\":7,\"struct_type\":\"snapshot\"}\n"));
	assert_true(refused(NULL, SNAP ROOT NODE("f", "/s/d/f", "file")));   /* parent never listed */
	assert_true(refused(NULL, SNAP ROOT NODE("d", "/s/d", "file") NODE("f", "/s/d/f", "file")));
	assert_true(refused(NULL, SNAP ROOT NODE("f", "/s/f", "file") NODE("f", "/s/f", "file")));
	assert_true(refused(NULL, SNAP ROOT NODE("g", "/s/f", "file")));     /* name is not the basename */
	assert_true(refused(NULL, SNAP ROOT NODE("..", "/s/..", "file")));
	assert_true(refused(NULL, SNAP ROOT NODE("", "/s/", "file")));
	assert_true(refused(NULL, SNAP ROOT NODE("f", "s/f", "file")));      /* relative path */
	assert_true(refused(NULL, SNAP ROOT ROOT));                            /* the root twice */
	assert_true(refused(NULL, SNAP NODE("s", "/s", "file")));             /* root not a directory */
	assert_true(refused(NULL, SNAP ROOT NODE("a\\u0000b", "/s/a\\u0000b", "file")));
	assert_true(refused(NULL, SNAP ROOT "{\"name\":\"f\",\"type\":\"file\",\"path\":\"/s/f\",\"size\":-1,\"struct_type\":\"node\"}\n"));
	assert_true(refused(NULL, SNAP ROOT "{\"name\":\"f\",\"type\":\"file\",\"path\":\"/s/f\",\"uid\":4294967296,\"struct_type\":\"node\"}\n"));
	assert_true(refused(NULL, SNAP ROOT "{\"name\":\"f\",\"type\":\"file\",\"path\":\"/s/f\",\"size\":\"3\",\"struct_type\":\"node\"}\n"));
	assert_true(refused(NULL, SNAP ROOT "{\"name\":7,\"type\":\"file\",\"path\":\"/s/f\",\"struct_type\":\"node\"}\n"));
	static const char *const bad_times[] = {"2024-13-01T00:00:00Z", "2024-01-01T00:00:00", "2024-01-01T00:00:00.Z",
						"2024-01-01 00:00:00Z", "2024-01-01T00:00:00+2:00", "x", ""};
	for (size_t i = 0; i < SB_ARRAY_SIZE(bad_times); i++) {
		cleanup_free char *line = xasprintf(
			SNAP ROOT "{\"name\":\"f\",\"type\":\"file\",\"path\":\"/s/f\",\"mtime\":\"%s\",\"struct_type\":\"node\"}\n",
			bad_times[i]);
		assert_true(refused(NULL, line));
	}
	/* A refused builder stays refused. */
	struct sb_snaptree_builder *b = sb_snaptree_builder_new(NULL);
	char *err = NULL;
	assert_int_equal(sb_snaptree_builder_feed_json(b, "x", 1, &err), -1);
	free(err);
	err = NULL;
	assert_int_equal(sb_snaptree_builder_feed_json(b, SNAP, strlen(SNAP) - 1, &err), -1);
	free(err);
	err = NULL;
	assert_null(sb_snaptree_builder_finish(b, &err));
	free(err);
	sb_snaptree_builder_free(b);
}

static void test_long_garbage(void **state)
{
	(void)state;
	struct sb_snaptree_builder *b = sb_snaptree_builder_new(NULL);
	feed_lines(b, ls_json, true);
	/* Lines that are not a known symlink's are ignored, whatever they hold. */
	static const char *const junk[] = {
		"", "L", "Lrwxrwxrwx", "Lrwxrwxrwx 0 0 0 2026-11-28 04:24:27", "Lrwxrwxrwx 0 0 0 2026-11-28 04:24:27 ",
		"Lrwxrwxrwx 0 0 0 2026-11-28 04:24:27 /tmp/rx/src/web/nope -> t",
		"Lrwxrwxrwx 0 0 0 2026-11-28 04:24:27 /tmp/rx/src/web/dlink",
		"Lrwxrwxrwx 0 0 0 2026-11-28 04:24:27 /tmp/rx/src/web/dlink-> x",
		"-rw-r--r-- 0 0 0 2026-11-28 04:24:27 /tmp/rx/src/web/dlink -> file-line",
	};
	for (size_t i = 0; i < SB_ARRAY_SIZE(junk); i++)
		sb_snaptree_builder_feed_long(b, junk[i], strlen(junk[i]));
	/* A NUL inside a target is refused; the real line then sets it. */
	static const char nul[] = "Lrwxrwxrwx 0 0 0 2026-11-28 04:24:27 /tmp/rx/src/web/dlink -> a\0b";
	sb_snaptree_builder_feed_long(b, nul, sizeof(nul) - 1);
	feed_lines(b, ls_long, false);
	/* A second line for a symlink already set does not change it. */
	static const char again[] = "Lrwxrwxrwx 0 0 0 2026-11-28 04:24:27 /tmp/rx/src/web/dlink -> other";
	sb_snaptree_builder_feed_long(b, again, strlen(again));
	char *err = NULL;
	struct sb_snaptree *t = sb_snaptree_builder_finish(b, &err);
	sb_snaptree_builder_free(b);
	assert_non_null(t);
	assert_string_equal(sb_snaptree_link(t, must_lookup(t, "dlink")), "sub dir");
	sb_snaptree_unref(t);

	/* Without the -l pass the symlinks have no target (and size 0). */
	b = sb_snaptree_builder_new(NULL);
	feed_lines(b, ls_json, true);
	t = sb_snaptree_builder_finish(b, &err);
	sb_snaptree_builder_free(b);
	assert_null(sb_snaptree_link(t, must_lookup(t, "dlink")));
	assert_int_equal(sb_snaptree_size(t, must_lookup(t, "dlink")), 0);
	sb_snaptree_unref(t);
}

static char *tmpdir(void)
{
	char *d = xstrdup("/tmp/torture_snaptree.XXXXXX");
	assert_non_null(mkdtemp(d));
	return d;
}

static void test_save_load(void **state)
{
	(void)state;
	cleanup_free char *dir = tmpdir();
	cleanup_free char *path = xasprintf("%s/tree", dir);
	struct sb_snaptree *t = build_sample(NULL);
	assert_int_equal(sb_snaptree_save(t, path), 0);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	struct sb_snaptree *u = NULL;
	assert_int_equal(sb_snaptree_load_file(path, &u), 0);
	check_sample(u);
	sb_snaptree_unref(u);

	char *data;
	size_t len;
	assert_int_equal(sb_read_file(path, 1 << 20, &data, &len), 0);
	/* Every single-byte change and every truncation is caught. */
	for (size_t i = 0; i < len; i++) {
		data[i] ^= 0x5a;
		u = NULL;
		int rc = sb_snaptree_load_bytes(data, len, &u);
		if (rc == 0)
			fail_msg("a damaged byte at offset %zu was accepted", i);
		data[i] ^= 0x5a;
	}
	for (size_t cut = 0; cut < len; cut += 7)
		assert_int_equal(sb_snaptree_load_bytes(data, cut, &u), -EINVAL);
	assert_int_equal(sb_snaptree_load_bytes(data, len, &u), 0);
	sb_snaptree_unref(u);
	free(data);
	assert_int_equal(sb_snaptree_load_file("/nonexistent/tree", &u), -ENOENT);
	assert_int_equal(sb_write_file_atomic(path, "garbage", 7, 0600), 0);
	assert_int_equal(sb_snaptree_load_file(path, &u), -EINVAL);
	sb_snaptree_unref(t);
	sb_rm_rf(dir);
}

/* ---- against a real repository ---- */

static void run_ok(const char *const *argv, const char *const *env)
{
	struct sb_run_opts o = {.argv = argv, .env_add = env, .capture_stderr = true, .timeout_s = 120};
	struct sb_run_result res;
	if (sb_run(&o, &res) != 0) {
		cleanup_free char *why = sb_run_describe(&res, 120);
		fail_msg("%s failed: %s", argv[0], why);
	}
	sb_run_result_free(&res);
}

/* Compares the tree below node with the directory dir, entry by entry. */
static size_t compare_dir(const struct sb_snaptree *t, sb_snode_id node, const char *dir)
{
	size_t seen = 0;
	DIR *d = opendir(dir);
	assert_non_null(d);
	struct dirent *de;
	uint32_t n = 0;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		n++;
		cleanup_free char *path = xasprintf("%s/%s", dir, de->d_name);
		struct stat want, got;
		assert_int_equal(lstat(path, &want), 0);
		sb_snode_id c;
		if (sb_snaptree_child(t, node, de->d_name, strlen(de->d_name), &c) != 0)
			fail_msg("'%s' is missing from the tree", path);
		sb_snaptree_stat(t, c, &got);
		assert_int_equal(got.st_mode, want.st_mode);
		assert_int_equal(got.st_uid, want.st_uid);
		assert_int_equal(got.st_gid, want.st_gid);
		assert_int_equal(got.st_mtim.tv_sec, want.st_mtim.tv_sec);
		assert_int_equal(got.st_mtim.tv_nsec, want.st_mtim.tv_nsec);
		if (!S_ISDIR(want.st_mode))
			assert_int_equal(got.st_size, want.st_size);
		if (S_ISLNK(want.st_mode)) {
			char target[PATH_MAX];
			ssize_t tl = readlink(path, target, sizeof(target) - 1);
			assert_true(tl >= 0);
			target[tl] = '\0';
			assert_string_equal(sb_snaptree_link(t, c), target);
		}
		if (S_ISDIR(want.st_mode))
			seen += compare_dir(t, c, path);
		seen++;
	}
	closedir(d);
	assert_int_equal(sb_snaptree_nchildren(t, node), n);
	return seen;
}

static void test_load_restic(void **state)
{
	(void)state;
	cleanup_free char *dir = tmpdir();
	cleanup_free char *src = xasprintf("%s/src/web", dir);
	cleanup_free char *repo = xasprintf("%s/repo", dir);
	assert_int_equal(sb_mkdir_p(src, 0755), 0);
	static const char *const files[] = {"a b", "tab\there", "q\"uote'", "\xc3\xa9t\xc3\xa9", "arrow -> x",
					    "d1/d2/deep", "d1/x", "empty"};
	for (size_t i = 0; i < SB_ARRAY_SIZE(files); i++) {
		cleanup_free char *p = xasprintf("%s/%s", src, files[i]);
		char *slash = strrchr(p, '/');
		*slash = '\0';
		assert_int_equal(sb_mkdir_p(p, 0755), 0);
		*slash = '/';
		assert_int_equal(sb_write_file_atomic(p, files[i], strcmp(files[i], "empty") ? strlen(files[i]) : 0,
						      0640),
				 0);
	}
	cleanup_free char *l1 = xasprintf("%s/link to file", src);
	cleanup_free char *l2 = xasprintf("%s/d1/up", src);
	cleanup_free char *l3 = xasprintf("%s/l -> arrow", src);
	assert_int_equal(symlink("a b", l1), 0);
	assert_int_equal(symlink("../d1", l2), 0);
	assert_int_equal(symlink("x -> y", l3), 0);

	cleanup_free char *repo_env = xasprintf("RESTIC_REPOSITORY=%s", repo);
	const char *env[] = {repo_env, "RESTIC_PASSWORD=torture", NULL};
	run_ok((const char *const[]){"restic", "init", "-q", NULL}, env);
	run_ok((const char *const[]){"restic", "backup", "-q", "--tag", "stackback", "--tag", "web", src, NULL}, env);

	struct sb_restic r = {.repository = repo, .password = (char *)"torture", .timeout_s = 120};
	char *err = NULL;
	struct sb_snaptree *t = sb_snaptree_load_restic(&r, "latest", src, &err);
	if (!t)
		fail_msg("%s", err);
	assert_string_equal(sb_snaptree_root_path(t), src);
	size_t n = compare_dir(t, SB_SNODE_ROOT, src);
	assert_int_equal(n + 1, sb_snaptree_count(t));

	/* A wrong password: one clear line, no tree. */
	struct sb_restic bad = {.repository = repo, .password = (char *)"wrong", .timeout_s = 120};
	assert_null(sb_snaptree_load_restic(&bad, "latest", src, &err));
	assert_non_null(strstr(err, "wrong password"));
	free(err);
	err = NULL;
	assert_null(sb_snaptree_load_restic(&r, "deadbeef", src, &err));
	assert_non_null(strstr(err, "deadbeef"));
	free(err);
	sb_snaptree_unref(t);
	sb_rm_rf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sample),
		cmocka_unit_test(test_subtree_root),
		cmocka_unit_test(test_several_paths),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_long_garbage),
		cmocka_unit_test(test_save_load),
		cmocka_unit_test(test_load_restic),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
