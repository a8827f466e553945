/*
 * The native restic reader against repositories made by the real restic,
 * in both format versions, with restic as the oracle: the snapshot list
 * against `restic snapshots --json`, every node against `restic ls
 * --json` (and symlink targets, inodes and link counts against the
 * source tree restic read), every file's bytes against `restic restore`,
 * random access that reads only the blobs it needs, a second key, the
 * wrong password, and damaged repositories (a flipped byte in a pack, an
 * index file, a snapshot file, a key file; a truncated pack).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "stackback/config.h"
#include "stackback/log.h"
#include "stackback/restic.h"
#include "stackback/resticrepo.h"
#include "stackback/runner.h"
#include "stackback/snapcache.h"
#include "stackback/snaptree.h"
#include "stackback/snapview.h"
#include "stackback/util.h"

#define PASSWORD "rr-secret-17"
#define BIG_SIZE ((24u << 20) + 4097)

struct repo {
	int version;
	char *path;
	char snap[65];
	uint8_t tree[SB_RESTIC_ID_LEN];
};

struct world {
	char *dir;
	char *src;
	struct repo repos[2];
};

static struct world W;

/* Runs restic on repo; returns its stdout (caller frees). Fails the test on error. */
static char *restic(const char *repo, const char *const *args)
{
	const char *argv[32] = {"restic", "-r", repo};
	size_t n = 3;
	for (size_t i = 0; args[i]; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	const char *env[] = {"RESTIC_PASSWORD=" PASSWORD, NULL};
	struct sb_run_opts o = {.argv = argv, .env_add = env, .capture_stdout = true, .capture_stderr = true,
				.timeout_s = 300};
	struct sb_run_result res;
	if (sb_run(&o, &res) != 0) {
		cleanup_free char *why = sb_run_describe(&res, 300);
		fail_msg("restic %s failed: %s", args[0], why);
	}
	char *out = res.out;
	res.out = NULL;
	sb_run_result_free(&res);
	return out ? out : xstrdup("");
}

static void sh(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cleanup_free char *cmd = xvasprintf(fmt, ap);
	va_end(ap);
	if (system(cmd) != 0)
		fail_msg("'%s' failed", cmd);
}

static void put(const char *rel, const void *data, size_t len)
{
	cleanup_free char *p = xasprintf("%s/%s", W.src, rel);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static char *src_path(const char *rel)
{
	return xasprintf("%s/%s", W.src, rel);
}

static void make_source(void)
{
	assert_int_equal(sb_mkdir_p(W.src, 0755), 0);
	put("plain.txt", "hello\n", 6);
	put("empty", "", 0);
	cleanup_free char *p1 = src_path("link"), *p2 = src_path("dangling"), *p3 = src_path("abs");
	assert_int_equal(symlink("plain.txt", p1), 0);
	assert_int_equal(symlink("../nowhere/x y", p2), 0);
	assert_int_equal(symlink("/etc/hostname", p3), 0);
	put("hard1", "shared by three names\n", 22);
	cleanup_free char *h1 = src_path("hard1"), *h2 = src_path("hard2"), *dd = src_path("a/b/c/d/e/f");
	assert_int_equal(link(h1, h2), 0);
	assert_int_equal(sb_mkdir_p(dd, 0755), 0);
	cleanup_free char *h3 = src_path("a/hard3");
	assert_int_equal(link(h1, h3), 0);
	put("a/b/c/d/e/f/deep.txt", "deep\n", 5);
	cleanup_free char *ed = src_path("emptydir"), *sticky = src_path("sticky");
	assert_int_equal(mkdir(ed, 0700), 0);
	assert_int_equal(mkdir(sticky, 0755), 0);
	assert_int_equal(chmod(sticky, 01777), 0);
	put("setuid", "#!/bin/sh\n", 10);
	cleanup_free char *su = src_path("setuid"), *fifo = src_path("fifo");
	assert_int_equal(chmod(su, 04755), 0);
	assert_int_equal(mkfifo(fifo, 0640), 0);
	cleanup_free char *null = src_path("null");
	assert_int_equal(mknod(null, S_IFCHR | 0600, makedev(1, 3)), 0);
	/* Odd names: restic keeps the bytes of valid UTF-8 names, whatever they are. */
	static const char *const odd[] = {
		"with space", "new\nline", "tab\there", "\xc3\xbc" "n\xc3\xaf" "c\xc3\xb6" "d\xc3\xa9", "-dash",
		"back\\slash", "quote\"d", "%s%n", "*?[x]", ".hidden",
	};
	for (size_t i = 0; i < SB_ARRAY_SIZE(odd); i++)
		put(odd[i], odd[i], strlen(odd[i]));
	char longname[256];
	memset(longname, 'L', 255);
	longname[255] = '\0';
	put(longname, "long\n", 5);
	/* A sparse file: holes around two islands of data. */
	cleanup_free char *sp = src_path("sparse.bin");
	int fd = open(sp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "island", 6, 1 << 20), 6);
	assert_int_equal(pwrite(fd, "end", 3, (3 << 20) - 3), 3);
	close(fd);
	/* A big file of many blobs, compressible in parts (zstd shrinks those in version 2). */
	unsigned char *big = xmalloc(BIG_SIZE);
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	for (size_t i = 0; i < BIG_SIZE; i++) {
		if ((i >> 20) % 3 == 1) {
			big[i] = (unsigned char)(i % 251);
			continue;
		}
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		big[i] = (unsigned char)x;
	}
	put("big.bin", big, BIG_SIZE);
	free(big);
	/* Times to the nanosecond. */
	cleanup_free char *pt = src_path("plain.txt");
	struct timespec ts[2] = {{981173106, 123456789}, {981173106, 123456789}};
	assert_int_equal(utimensat(AT_FDCWD, pt, ts, AT_SYMLINK_NOFOLLOW), 0);
}

static int group_setup(void **state)
{
	(void)state;
	char tmpl[] = "/tmp/sbrrXXXXXX";
	assert_non_null(mkdtemp(tmpl));
	W.dir = xstrdup(tmpl);
	W.src = xasprintf("%s/src", W.dir);
	make_source();
	for (int i = 0; i < 2; i++) {
		struct repo *r = &W.repos[i];
		r->version = i + 1;
		r->path = xasprintf("%s/repo%d", W.dir, r->version);
		cleanup_free char *v = xasprintf("%d", r->version);
		free(restic(r->path, (const char *const[]){"init", "--repository-version", v, NULL}));
		free(restic(r->path, (const char *const[]){"backup", "-q", "--tag", "stackback", "--tag", "web", W.src,
							  NULL}));
		cleanup_free char *js = restic(r->path, (const char *const[]){"snapshots", "--json", NULL});
		struct sb_snapshot_list l;
		assert_int_equal(sb_restic_parse_snapshots(js, strlen(js), &l), 0);
		assert_int_equal(l.n, 1);
		snprintf(r->snap, sizeof(r->snap), "%s", l.v[0].id);
		assert_int_equal(sb_restic_id_parse(l.v[0].tree, strlen(l.v[0].tree), r->tree), 0);
		sb_snapshot_list_free(&l);
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	sb_rm_rf(W.dir);
	free(W.src);
	for (int i = 0; i < 2; i++)
		free(W.repos[i].path);
	free(W.dir);
	return 0;
}

static struct sb_resticrepo *open_ok(const char *path)
{
	struct sb_resticrepo *r = NULL;
	char *err = NULL;
	int rc = sb_resticrepo_open(path, PASSWORD, &r, &err);
	if (rc < 0)
		fail_msg("opening '%s' failed: %s", path, err);
	return r;
}

static void test_open(void **state)
{
	(void)state;
	for (int i = 0; i < 2; i++) {
		struct sb_resticrepo *r = open_ok(W.repos[i].path);
		assert_int_equal(sb_resticrepo_version(r), W.repos[i].version);
		assert_string_equal(sb_resticrepo_dir(r), W.repos[i].path);
		sb_resticrepo_free(r);
	}
}

static void test_wrong_password_and_missing(void **state)
{
	(void)state;
	struct sb_resticrepo *r = NULL;
	char *err = NULL;
	assert_int_equal(sb_resticrepo_open(W.repos[1].path, "not the password", &r, &err), -EACCES);
	assert_null(r);
	assert_non_null(strstr(err, "wrong password"));
	free(err);
	err = NULL;
	cleanup_free char *none = xasprintf("%s/nothing-here", W.dir);
	assert_int_equal(sb_resticrepo_open(none, PASSWORD, &r, &err), -ENOENT);
	assert_non_null(strstr(err, "no restic repository"));
	free(err);
}

static void test_second_key(void **state)
{
	(void)state;
	/* A copy with a second key: the reader tries every key file. */
	cleanup_free char *copy = xasprintf("%s/twokeys", W.dir);
	sh("cp -a '%s' '%s'", W.repos[0].path, copy);
	cleanup_free char *pwfile = xasprintf("%s/pw2", W.dir);
	assert_int_equal(sb_write_file_atomic(pwfile, "other-pass\n", 11, 0600), 0);
	free(restic(copy, (const char *const[]){"key", "add", "--new-password-file", pwfile, NULL}));
	struct sb_resticrepo *r = NULL;
	char *err = NULL;
	assert_int_equal(sb_resticrepo_open(copy, "other-pass", &r, &err), 0);
	sb_resticrepo_free(r);
	r = open_ok(copy);
	sb_resticrepo_free(r);
	sb_rm_rf(copy);
}

static void test_snapshots_json(void **state)
{
	(void)state;
	for (int i = 0; i < 2; i++) {
		struct sb_resticrepo *r = open_ok(W.repos[i].path);
		char *json = NULL, *err = NULL;
		assert_int_equal(sb_resticrepo_snapshots_json(r, &json, &err), 0);
		struct sb_snapshot_list mine, theirs;
		assert_int_equal(sb_restic_parse_snapshots(json, strlen(json), &mine), 0);
		cleanup_free char *js = restic(W.repos[i].path, (const char *const[]){"snapshots", "--json", NULL});
		assert_int_equal(sb_restic_parse_snapshots(js, strlen(js), &theirs), 0);
		assert_int_equal(mine.n, theirs.n);
		for (size_t k = 0; k < mine.n; k++) {
			assert_string_equal(mine.v[k].id, theirs.v[k].id);
			assert_string_equal(mine.v[k].short_id, theirs.v[k].short_id);
			assert_string_equal(mine.v[k].tree, theirs.v[k].tree);
			assert_int_equal(mine.v[k].time_utc, theirs.v[k].time_utc);
			assert_string_equal(mine.v[k].paths.v[0], theirs.v[k].paths.v[0]);
			assert_string_equal(mine.v[k].stack ? mine.v[k].stack : "", theirs.v[k].stack ? theirs.v[k].stack : "");
		}
		/* The single document too, and a second listing served from memory. */
		char *doc = NULL;
		size_t len;
		assert_int_equal(sb_resticrepo_snapshot(r, W.repos[i].snap, &doc, &len, &err), 0);
		assert_non_null(strstr(doc, "\"tree\""));
		free(doc);
		free(json);
		assert_int_equal(sb_resticrepo_snapshots_json(r, &json, &err), 0);
		free(json);
		sb_snapshot_list_free(&mine);
		sb_snapshot_list_free(&theirs);
		sb_resticrepo_free(r);
	}
}

/* ---- walking ---- */

struct entry {
	char *path;                 /* absolute, as restic ls prints it */
	struct sb_restic_node node; /* pointers borrowed from tree */
	struct sb_restictree *tree;
};

struct walk {
	struct entry *v;
	size_t n, cap;
};

static void walk(struct sb_resticrepo *r, const uint8_t *id, const char *prefix, struct walk *w)
{
	struct sb_restictree *t;
	char *err = NULL;
	if (sb_resticrepo_tree(r, id, &t, &err) < 0)
		fail_msg("reading a tree failed: %s", err);
	for (size_t i = 0; i < sb_restictree_count(t); i++) {
		const struct sb_restic_node *nd = sb_restictree_node(t, i);
		if (w->n == w->cap) {
			w->cap = w->cap ? w->cap * 2 : 64;
			w->v = xrealloc(w->v, w->cap * sizeof(*w->v));
		}
		struct entry *e = &w->v[w->n++];
		e->path = xasprintf("%s/%s", prefix, nd->name);
		e->node = *nd;
		e->tree = sb_restictree_ref(t);
		if (nd->type == SB_RESTIC_NODE_DIR)
			walk(r, nd->subtree, e->path, w);
	}
	sb_restictree_unref(t);
}

static void walk_free(struct walk *w)
{
	for (size_t i = 0; i < w->n; i++) {
		free(w->v[i].path);
		sb_restictree_unref(w->v[i].tree);
	}
	free(w->v);
}

static struct entry *walk_find(struct walk *w, const char *path)
{
	for (size_t i = 0; i < w->n; i++)
		if (strcmp(w->v[i].path, path) == 0)
			return &w->v[i];
	return NULL;
}

static mode_t from_go(const char *type, uint64_t go)
{
	mode_t fmt = strcmp(type, "dir") == 0 ? S_IFDIR : strcmp(type, "symlink") == 0 ? S_IFLNK
		   : strcmp(type, "fifo") == 0 ? S_IFIFO : strcmp(type, "chardev") == 0 ? S_IFCHR : S_IFREG;
	mode_t m = fmt | (mode_t)(go & 0777);
	if (go & (1u << 23))
		m |= S_ISUID;
	if (go & (1u << 22))
		m |= S_ISGID;
	if (go & (1u << 20))
		m |= S_ISVTX;
	return m;
}

static time_t parse_utc(const char *s, long *ns)
{
	struct tm tm = {0};
	int consumed = 0;
	assert_int_equal(sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
				&tm.tm_min, &tm.tm_sec, &consumed), 6);
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	*ns = 0;
	const char *p = s + consumed;
	if (*p == '.') {
		int d = 0;
		for (p++; *p >= '0' && *p <= '9'; p++, d++)
			*ns = *ns * 10 + (*p - '0');
		while (d++ < 9)
			*ns *= 10;
	}
	assert_string_equal(p, "Z");  /* this machine runs in UTC, as restic printed it */
	return timegm(&tm);
}

static void test_listing_matches_restic(void **state)
{
	(void)state;
	for (int i = 0; i < 2; i++) {
		struct sb_resticrepo *r = open_ok(W.repos[i].path);
		struct walk w = {0};
		walk(r, W.repos[i].tree, "", &w);
		cleanup_free char *out = restic(W.repos[i].path, (const char *const[]){"ls", "--json", W.repos[i].snap, NULL});
		size_t seen = 0;
		for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
			struct json_object *o = json_tokener_parse(line), *v;
			assert_non_null(o);
			assert_true(json_object_object_get_ex(o, "struct_type", &v));
			if (strcmp(json_object_get_string(v), "node") != 0) {
				json_object_put(o);
				continue;
			}
			seen++;
			assert_true(json_object_object_get_ex(o, "path", &v));
			const char *path = json_object_get_string(v);
			struct entry *e = walk_find(&w, path);
			if (!e)
				fail_msg("restic lists '%s', the reader does not", path);
			assert_true(json_object_object_get_ex(o, "name", &v));
			assert_string_equal(e->node.name, json_object_get_string(v));
			assert_true(json_object_object_get_ex(o, "type", &v));
			const char *type = json_object_get_string(v);
			assert_true(json_object_object_get_ex(o, "mode", &v));
			assert_int_equal(e->node.mode, from_go(type, (uint64_t)json_object_get_int64(v)));
			assert_true(json_object_object_get_ex(o, "uid", &v));
			assert_int_equal(e->node.uid, json_object_get_int64(v));
			assert_true(json_object_object_get_ex(o, "gid", &v));
			assert_int_equal(e->node.gid, json_object_get_int64(v));
			if (strcmp(type, "file") == 0) {
				int64_t size = json_object_object_get_ex(o, "size", &v) ? json_object_get_int64(v) : 0;
				assert_int_equal(e->node.size, size);
			}
			assert_true(json_object_object_get_ex(o, "mtime", &v));
			long ns;
			time_t sec = parse_utc(json_object_get_string(v), &ns);
			assert_int_equal(e->node.mtime.tv_sec, sec);
			assert_int_equal(e->node.mtime.tv_nsec, ns);
			json_object_put(o);
		}
		assert_int_equal(seen, w.n);

		/* What `ls --json` lacks, against the source restic read: targets, inodes, link counts. */
		size_t links = 0, hard = 0, chardevs = 0;
		for (size_t k = 0; k < w.n; k++) {
			struct entry *e = &w.v[k];
			if (!sb_str_has_prefix(e->path, W.src) || !e->path[strlen(W.src)])
				continue;
			struct stat st;
			if (lstat(e->path, &st) < 0)
				continue;  /* names restic stored differently are compared with restic above */
			assert_int_equal(e->node.inode, st.st_ino);
			/* restic 0.14 records no link count for directories and fifos. */
			if (S_ISREG(st.st_mode) || S_ISLNK(st.st_mode))
				assert_int_equal(e->node.links, st.st_nlink);
			if (S_ISCHR(st.st_mode)) {
				assert_int_equal(e->node.type, SB_RESTIC_NODE_CHARDEV);
				assert_int_equal(e->node.device, st.st_rdev);
				assert_int_equal(e->node.mode, S_IFCHR | 0600);
				chardevs++;
			}
			if (S_ISLNK(st.st_mode)) {
				char target[4096];
				ssize_t n = readlink(e->path, target, sizeof(target) - 1);
				assert_true(n > 0);
				target[n] = '\0';
				assert_non_null(e->node.linktarget);
				assert_string_equal(e->node.linktarget, target);
				assert_int_equal(e->node.linktarget_len, n);
				links++;
			}
			if (e->node.links == 3)
				hard++;
		}
		assert_int_equal(links, 3);
		assert_int_equal(hard, 3);
		assert_int_equal(chardevs, 1);
		cleanup_free char *fifo = xasprintf("%s/fifo", W.src);
		struct entry *fe = walk_find(&w, fifo);
		assert_non_null(fe);
		assert_int_equal(fe->node.type, SB_RESTIC_NODE_FIFO);
		assert_int_equal(fe->node.mode, S_IFIFO | 0640);
		walk_free(&w);
		sb_resticrepo_free(r);
	}
}

/* Compares every byte of file e with path, in reads of awkward sizes. */
static void compare_file(struct sb_resticrepo *r, const struct entry *e, const char *path)
{
	char *err = NULL;
	struct sb_resticfile *f;
	if (sb_resticfile_open(r, &e->node, e->path, &f, &err) < 0)
		fail_msg("opening '%s' failed: %s", e->path, err);
	char *want;
	size_t want_len;
	assert_int_equal(sb_read_file(path, 64u << 20, &want, &want_len), 0);
	assert_int_equal(sb_resticfile_size(f), want_len);
	char *got = xmalloc(want_len + 1);
	size_t step = 70001;
	for (uint64_t off = 0; off < want_len; off += step) {
		ssize_t n = sb_resticfile_read(f, got + off, step, off);
		size_t expect = want_len - off < step ? want_len - off : step;
		assert_int_equal(n, (ssize_t)expect);
	}
	assert_int_equal(sb_resticfile_read(f, got, 10, want_len), 0);
	assert_memory_equal(got, want, want_len);
	free(got);
	free(want);
	sb_resticfile_close(f);
}

static void test_contents_match_restore(void **state)
{
	(void)state;
	for (int i = 0; i < 2; i++) {
		struct sb_resticrepo *r = open_ok(W.repos[i].path);
		cleanup_free char *target = xasprintf("%s/restored%d", W.dir, W.repos[i].version);
		free(restic(W.repos[i].path, (const char *const[]){"restore", W.repos[i].snap, "--target", target, NULL}));
		struct walk w = {0};
		walk(r, W.repos[i].tree, "", &w);
		size_t files = 0;
		for (size_t k = 0; k < w.n; k++) {
			if (w.v[k].node.type != SB_RESTIC_NODE_FILE)
				continue;
			cleanup_free char *restored = xasprintf("%s%s", target, w.v[k].path);
			compare_file(r, &w.v[k], restored);
			files++;
		}
		assert_true(files >= 18);
		/* Not a file: refused. */
		struct sb_resticfile *f;
		char *err = NULL;
		assert_int_equal(sb_resticfile_open(r, &w.v[0].node, "dir", &f, &err), -EINVAL);
		free(err);
		walk_free(&w);
		sb_rm_rf(target);
		sb_resticrepo_free(r);
	}
}

static void test_lookup(void **state)
{
	(void)state;
	struct sb_resticrepo *r = open_ok(W.repos[1].path);
	struct sb_restictree *t;
	const struct sb_restic_node *nd;
	char *err = NULL;
	cleanup_free char *deep = xasprintf("%s//a/b/c/d/e/f/deep.txt", W.src);
	assert_int_equal(sb_resticrepo_lookup(r, W.repos[1].tree, deep, &t, &nd, &err), 0);
	assert_string_equal(nd->name, "deep.txt");
	assert_int_equal(nd->size, 5);
	sb_restictree_unref(t);
	cleanup_free char *missing = xasprintf("%s/a/nope", W.src);
	assert_int_equal(sb_resticrepo_lookup(r, W.repos[1].tree, missing, &t, &nd, &err), -ENOENT);
	assert_non_null(strstr(err, "nope"));
	free(err);
	err = NULL;
	cleanup_free char *through = xasprintf("%s/plain.txt/x", W.src);
	assert_int_equal(sb_resticrepo_lookup(r, W.repos[1].tree, through, &t, &nd, &err), -ENOTDIR);
	free(err);
	sb_resticrepo_free(r);
}

/* big.bin of repository i: its node (looked up) and the reader. */
static struct sb_resticfile *open_big(struct sb_resticrepo *r, int i, struct sb_restictree **t,
				      const struct sb_restic_node **nd)
{
	char *err = NULL;
	cleanup_free char *path = xasprintf("%s/big.bin", W.src);
	if (sb_resticrepo_lookup(r, W.repos[i].tree, path, t, nd, &err) < 0)
		fail_msg("%s", err);
	struct sb_resticfile *f;
	if (sb_resticfile_open(r, *nd, "big.bin", &f, &err) < 0)
		fail_msg("%s", err);
	return f;
}

static void test_random_access_reads_only_what_it_needs(void **state)
{
	(void)state;
	for (int i = 0; i < 2; i++) {
		struct sb_resticrepo *r = open_ok(W.repos[i].path);
		struct sb_restictree *t;
		const struct sb_restic_node *nd;
		struct sb_resticfile *f = open_big(r, i, &t, &nd);
		/* restic cuts 512 KiB to 8 MiB chunks, ~1 MiB on average. */
		assert_true(nd->n_content >= 4);
		struct sb_resticrepo_stats before, after;
		sb_resticrepo_stats(r, &before);
		char buf[4096];
		uint64_t off = 20u << 20;
		assert_int_equal(sb_resticfile_read(f, buf, sizeof(buf), off), sizeof(buf));
		sb_resticrepo_stats(r, &after);
		/* One blob, two if the range straddles a boundary; nothing else of the file. */
		assert_true(after.blobs_read - before.blobs_read >= 1);
		assert_true(after.blobs_read - before.blobs_read <= 2);
		assert_true(after.bytes_read - before.bytes_read <= 2 * (8u << 20) + 64);
		cleanup_free char *src = xasprintf("%s/big.bin", W.src);
		int fd = open(src, O_RDONLY);
		char want[4096];
		assert_int_equal(pread(fd, want, sizeof(want), (off_t)off), sizeof(want));
		close(fd);
		assert_memory_equal(buf, want, sizeof(buf));
		/* The same range again comes from the decrypted-blob cache. */
		assert_int_equal(sb_resticfile_read(f, buf, sizeof(buf), off), sizeof(buf));
		struct sb_resticrepo_stats again;
		sb_resticrepo_stats(r, &again);
		assert_int_equal(again.blobs_read, after.blobs_read);
		assert_true(again.index_bytes <= again.blobs * SB_RESTICINDEX_ENTRY_BYTES + again.packs * 33 + 4096);
		sb_resticfile_close(f);
		sb_restictree_unref(t);
		sb_resticrepo_free(r);
	}
}

/* ---- damage ---- */

static char *damaged_copy(int i, const char *name)
{
	char *copy = xasprintf("%s/%s", W.dir, name);
	sh("rm -rf '%s' && cp -a '%s' '%s'", copy, W.repos[i].path, copy);
	return copy;
}

static void flip_byte(const char *path, off_t off)
{
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	unsigned char c;
	assert_int_equal(pread(fd, &c, 1, off), 1);
	c ^= 0x40;
	assert_int_equal(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

static char *first_file(const char *dir)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	struct dirent *de;
	char *out = NULL;
	while ((de = readdir(d)) && !out)
		if (de->d_name[0] != '.')
			out = xasprintf("%s/%s", dir, de->d_name);
	closedir(d);
	assert_non_null(out);
	return out;
}

static void test_flipped_byte_in_pack(void **state)
{
	(void)state;
	for (int i = 0; i < 2; i++) {
		cleanup_free char *copy = damaged_copy(i, "badpack");
		struct sb_resticrepo *r = open_ok(copy);
		struct sb_restictree *t;
		const struct sb_restic_node *nd;
		struct sb_resticfile *f = open_big(r, i, &t, &nd);
		uint8_t id[SB_RESTIC_ID_LEN];
		memcpy(id, nd->content[nd->n_content - 1], SB_RESTIC_ID_LEN);
		cleanup_free char *pack = NULL;
		uint32_t offset = 0;
		char *err = NULL;
		assert_int_equal(sb_resticrepo_blob_location(r, SB_RESTIC_BLOB_DATA, id, &pack, &offset, &err), 0);
		/* The first blob reads (and its pack header is checked) before the damage. */
		char buf[4096];
		assert_int_equal(sb_resticfile_read(f, buf, sizeof(buf), 0), sizeof(buf));
		flip_byte(pack, (off_t)offset + 100);
		void *data;
		size_t len;
		assert_int_equal(sb_resticrepo_read_blob(r, SB_RESTIC_BLOB_DATA, id, &data, &len, &err), -EIO);
		assert_non_null(strstr(err, pack));
		assert_non_null(strstr(err, "damaged"));
		free(err);
		/* Through the file: EIO from the damaged blob on, never other bytes. */
		uint64_t size = sb_resticfile_size(f);
		assert_int_equal(sb_resticfile_read(f, buf, sizeof(buf), size - sizeof(buf)), -EIO);
		sb_resticfile_close(f);
		sb_restictree_unref(t);
		sb_resticrepo_free(r);
		sb_rm_rf(copy);
	}
}

static void test_truncated_pack(void **state)
{
	(void)state;
	for (int i = 0; i < 2; i++) {
		cleanup_free char *copy = damaged_copy(i, "shortpack");
		struct sb_resticrepo *r = open_ok(copy);
		struct sb_restictree *t;
		const struct sb_restic_node *nd;
		struct sb_resticfile *f = open_big(r, i, &t, &nd);
		uint8_t id[SB_RESTIC_ID_LEN];
		memcpy(id, nd->content[nd->n_content / 2], SB_RESTIC_ID_LEN);
		cleanup_free char *pack = NULL;
		uint32_t offset = 0;
		char *err = NULL;
		assert_int_equal(sb_resticrepo_blob_location(r, SB_RESTIC_BLOB_DATA, id, &pack, &offset, &err), 0);
		struct stat st;
		assert_int_equal(stat(pack, &st), 0);
		assert_int_equal(truncate(pack, st.st_size - 1000), 0);
		void *data;
		size_t len;
		assert_int_equal(sb_resticrepo_read_blob(r, SB_RESTIC_BLOB_DATA, id, &data, &len, &err), -EIO);
		assert_non_null(strstr(err, pack));
		assert_non_null(strstr(err, "truncated"));
		free(err);
		sb_resticfile_close(f);
		sb_restictree_unref(t);
		sb_resticrepo_free(r);
		sb_rm_rf(copy);
	}
}

static void test_flipped_byte_in_index(void **state)
{
	(void)state;
	for (int i = 0; i < 2; i++) {
		cleanup_free char *copy = damaged_copy(i, "badindex");
		cleanup_free char *dir = xasprintf("%s/index", copy);
		cleanup_free char *file = first_file(dir);
		flip_byte(file, 40);
		struct sb_resticrepo *r = open_ok(copy);
		char *err = NULL;
		assert_int_equal(sb_resticrepo_load_index(r, &err), -EIO);
		assert_non_null(strstr(err, file));
		free(err);
		err = NULL;
		/* Reading a tree needs the index: the same clear error. */
		struct sb_restictree *t;
		assert_int_equal(sb_resticrepo_tree(r, W.repos[i].tree, &t, &err), -EIO);
		assert_non_null(strstr(err, file));
		free(err);
		sb_resticrepo_free(r);
		sb_rm_rf(copy);
	}
}

static void test_flipped_byte_in_snapshot(void **state)
{
	(void)state;
	cleanup_free char *copy = damaged_copy(1, "badsnap");
	cleanup_free char *file = xasprintf("%s/snapshots/%s", copy, W.repos[1].snap);
	flip_byte(file, 20);
	struct sb_resticrepo *r = open_ok(copy);
	char *json = NULL, *err = NULL;
	assert_int_equal(sb_resticrepo_snapshots_json(r, &json, &err), -EIO);
	assert_null(json);
	assert_non_null(strstr(err, file));
	free(err);
	sb_resticrepo_free(r);
	sb_rm_rf(copy);
}

static void test_damaged_key_and_config(void **state)
{
	(void)state;
	cleanup_free char *copy = damaged_copy(1, "badkey");
	cleanup_free char *kdir = xasprintf("%s/keys", copy);
	cleanup_free char *key = first_file(kdir);
	flip_byte(key, 60);
	struct sb_resticrepo *r = NULL;
	char *err = NULL;
	assert_int_equal(sb_resticrepo_open(copy, PASSWORD, &r, &err), -EIO);
	assert_non_null(strstr(err, key));
	free(err);
	sb_rm_rf(copy);

	free(copy);
	copy = damaged_copy(1, "badconfig");
	cleanup_free char *config = xasprintf("%s/config", copy);
	flip_byte(config, 30);
	err = NULL;
	assert_int_equal(sb_resticrepo_open(copy, PASSWORD, &r, &err), -EIO);
	assert_non_null(strstr(err, config));
	free(err);
	sb_rm_rf(copy);
}

/* ---- through the snapshot view ---- */

static struct sb_snapview *view_of(struct sb_config *cfg, int i, const char *state, bool restic_only)
{
	sb_config_defaults(cfg);
	free(cfg->state_dir);
	cfg->state_dir = xasprintf("%s/%s", W.dir, state);
	free(cfg->restic_repository);
	cfg->restic_repository = xstrdup(W.repos[i].path);
	cfg->restic_password = xstrdup(PASSWORD);
	cfg->backup_timeout = 300;
	assert_int_equal(sb_mkdir_p(cfg->state_dir, 0700), 0);
	cfg->snapshot_reader = restic_only ? SB_SNAPSHOT_READER_RESTIC : SB_SNAPSHOT_READER_AUTO;
	struct sb_snapview_opts o = {.cfg = cfg, .label = "local"};
	char *err = NULL;
	struct sb_snapview *v = sb_snapview_new(&o, &err);
	if (!v)
		fail_msg("%s", err);
	return v;
}

static struct sb_snaptree *view_tree(struct sb_snapview *v, struct sb_snapview_snap *s)
{
	char *err = NULL;
	if (sb_snapview_resolve(v, "web", "latest", 300, s, &err) < 0)
		fail_msg("%s", err);
	struct sb_snaptree *t;
	if (sb_snapview_tree(v, s, 300, &t, &err) < 0)
		fail_msg("%s", err);
	return t;
}

static void test_view_native_against_restic(void **state)
{
	(void)state;
	for (int i = 0; i < 2; i++) {
		struct sb_config cfg, rcfg;
		struct sb_snapview *v = view_of(&cfg, i, "state-native", false);
		struct sb_snapview *rv = view_of(&rcfg, i, "state-restic", true);
		struct sb_snapview_snap s, rs;
		struct sb_snaptree *t = view_tree(v, &s), *rt = view_tree(rv, &rs);
		assert_string_equal(s.id, W.repos[i].snap);
		assert_string_equal(s.name, rs.name);
		char backend[64];
		sb_snapview_backend(v, backend, sizeof(backend));
		cleanup_free char *want = xasprintf("native (format version %d)", W.repos[i].version);
		assert_string_equal(backend, want);
		sb_snapview_backend(rv, backend, sizeof(backend));
		assert_string_equal(backend, "restic");

		/* The same tree node for node, plus what restic ls cannot tell. */
		assert_int_equal(sb_snaptree_count(t), sb_snaptree_count(rt));
		assert_string_equal(sb_snaptree_root_path(t), W.src);
		for (sb_snode_id id = 0; id < sb_snaptree_count(rt); id++) {
			cleanup_free char *path = sb_snaptree_path(rt, id);
			sb_snode_id n;
			if (sb_snaptree_lookup(t, path, &n) < 0)
				fail_msg("'%s' is missing from the native tree", path);
			struct stat a, b;
			sb_snaptree_stat(t, n, &a);
			sb_snaptree_stat(rt, id, &b);
			assert_int_equal(a.st_mode, b.st_mode);
			assert_int_equal(a.st_uid, b.st_uid);
			assert_int_equal(a.st_gid, b.st_gid);
			assert_int_equal(a.st_mtim.tv_sec, b.st_mtim.tv_sec);
			assert_int_equal(a.st_mtim.tv_nsec, b.st_mtim.tv_nsec);
			assert_int_equal(a.st_size, b.st_size);
			if (S_ISLNK(a.st_mode))
				assert_string_equal(sb_snaptree_link(t, n), sb_snaptree_link(rt, id));
			cleanup_free char *src = xasprintf("%s/%s", W.src, path);
			struct stat st;
			if (!S_ISDIR(a.st_mode) && !S_ISFIFO(a.st_mode) && lstat(src, &st) == 0)
				assert_int_equal(a.st_nlink, st.st_nlink);
		}
		sb_snode_id h;
		assert_int_equal(sb_snaptree_lookup(t, "a/hard3", &h), 0);
		struct stat st;
		sb_snaptree_stat(t, h, &st);
		assert_int_equal(st.st_nlink, 3);

		/* Contents straight from the repository, no content cache needed. */
		sb_snode_id big, empty, dir;
		assert_int_equal(sb_snaptree_lookup(t, "big.bin", &big), 0);
		assert_int_equal(sb_snaptree_lookup(t, "empty", &empty), 0);
		assert_int_equal(sb_snaptree_lookup(t, "a", &dir), 0);
		struct sb_snapfile *f;
		assert_int_equal(sb_snapview_open(v, &s, t, big, &f), 0);
		assert_int_equal(sb_snapfile_size(f), BIG_SIZE);
		char buf[8192], ref[8192];
		cleanup_free char *bigsrc = xasprintf("%s/big.bin", W.src);
		int fd = open(bigsrc, O_RDONLY);
		for (uint64_t off = 0; off < BIG_SIZE; off += 3u << 20) {
			ssize_t n = sb_snapfile_read(f, buf, sizeof(buf), off);
			assert_true(n > 0);
			assert_int_equal(pread(fd, ref, (size_t)n, (off_t)off), n);
			assert_memory_equal(buf, ref, (size_t)n);
		}
		close(fd);
		assert_int_equal(sb_snapfile_read(f, buf, sizeof(buf), BIG_SIZE), 0);
		int wfd;
		assert_int_equal(sb_snapfile_wait(f, 0, 10, &wfd), -ENOTSUP);
		sb_snapfile_close(f);
		assert_int_equal(sb_snapview_open(v, &s, t, empty, &f), 0);
		assert_null(f);
		assert_int_equal(sb_snapview_open(v, &s, t, dir, &f), -EISDIR);

		sb_snaptree_unref(t);
		sb_snaptree_unref(rt);
		sb_snapview_free(v);
		sb_snapview_free(rv);
		sb_config_free(&cfg);
		sb_config_free(&rcfg);
	}
}

static void test_view_falls_back(void **state)
{
	(void)state;
	/* A key derivation the reader does not take: it refuses the format (-ENOTSUP). */
	cleanup_free char *copy = damaged_copy(1, "foreignkdf");
	cleanup_free char *kdir = xasprintf("%s/keys", copy);
	cleanup_free char *key = first_file(kdir);
	char *text;
	size_t len;
	assert_int_equal(sb_read_file(key, 1 << 20, &text, &len), 0);
	char *kdf = strstr(text, "\"scrypt\"");
	assert_non_null(kdf);
	memcpy(kdf, "\"argon\"", 7);
	memmove(kdf + 7, kdf + 8, len - (size_t)(kdf + 8 - text));
	len--;
	/* Key files are named by their hash: the edited one gets its new name, as a foreign tool would write it. */
	assert_int_equal(unlink(key), 0);
	cleanup_free char *tmp = xasprintf("%s/new", kdir);
	assert_int_equal(sb_write_file_atomic(tmp, text, len, 0600), 0);
	free(text);
	sh("cd '%s' && mv new $(sha256sum new | cut -c1-64)", kdir);
	struct sb_resticrepo *r = NULL;
	char *err = NULL;
	assert_int_equal(sb_resticrepo_open(copy, PASSWORD, &r, &err), -ENOTSUP);
	assert_non_null(strstr(err, "argon"));
	free(err);

	/* The view then reads through restic (which refuses it too, with its own words). */
	struct sb_config cfg;
	struct sb_snapview *v = view_of(&cfg, 1, "state-fallback", false);
	sb_snapview_free(v);
	free(cfg.restic_repository);
	cfg.restic_repository = xstrdup(copy);
	struct sb_snapview_opts o = {.cfg = &cfg, .label = "local"};
	v = sb_snapview_new(&o, &err);
	assert_non_null(v);
	char backend[64];
	sb_snapview_backend(v, backend, sizeof(backend));
	assert_string_equal(backend, "native, not opened yet");
	struct sb_strv stacks = {0};
	err = NULL;
	assert_int_equal(sb_snapview_stacks(v, 300, &stacks, &err), -EIO);
	assert_non_null(strstr(err, "restic"));
	free(err);
	sb_snapview_backend(v, backend, sizeof(backend));
	assert_string_equal(backend, "restic");
	sb_snapview_free(v);

	/* A repository that is not a local path is read through restic from the start. */
	free(cfg.restic_repository);
	cfg.restic_repository = xstrdup("sftp:nobody@127.0.0.1:/nowhere");
	v = sb_snapview_new(&o, &err);
	assert_non_null(v);
	sb_snapview_backend(v, backend, sizeof(backend));
	assert_string_equal(backend, "restic");
	sb_snapview_free(v);
	sb_config_free(&cfg);
	sb_rm_rf(copy);
}

int main(void)
{
	sb_log_set_level(SB_LOG_ERROR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open),
		cmocka_unit_test(test_wrong_password_and_missing),
		cmocka_unit_test(test_second_key),
		cmocka_unit_test(test_snapshots_json),
		cmocka_unit_test(test_listing_matches_restic),
		cmocka_unit_test(test_contents_match_restore),
		cmocka_unit_test(test_lookup),
		cmocka_unit_test(test_random_access_reads_only_what_it_needs),
		cmocka_unit_test(test_flipped_byte_in_pack),
		cmocka_unit_test(test_truncated_pack),
		cmocka_unit_test(test_flipped_byte_in_index),
		cmocka_unit_test(test_flipped_byte_in_snapshot),
		cmocka_unit_test(test_damaged_key_and_config),
		cmocka_unit_test(test_view_native_against_restic),
		cmocka_unit_test(test_view_falls_back),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
