/*
 * Snapshot mode's copies (cowsnap.c) on real filesystems: btrfs, XFS
 * and ext4 loop images made for the run and mounted in a private mount
 * namespace, so that whatever happens to this process the mounts (and,
 * through autoclear, the loop devices) go with it. Needs root, like
 * snapshot mode itself, and mkfs.btrfs, mkfs.xfs, mkfs.ext4, btrfs,
 * mount.
 *
 * Every copy is compared entry by entry with its source: type, mode,
 * owner, size, device numbers, times to the nanosecond, symlink targets,
 * content, xattrs, hard-link groups, and that the data extents of the
 * copy are shared (FIEMAP).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cmocka.h>

#include "stackback/cowsnap.h"
#include "stackback/runner.h"
#include "stackback/util.h"

/* mount(2) without <sys/mount.h>, which clashes with <linux/fs.h> in glibc 2.36. */
extern int mount(const char *source, const char *target, const char *fstype, unsigned long flags,
		 const void *data);
extern int umount2(const char *target, int flags);
#define T_MS_REC 16384UL
#define T_MS_PRIVATE (1UL << 18)
#define T_MNT_DETACH 2

static char root[64];
static char *fs_btrfs, *fs_xfs, *fs_ext4;
static int serial;

static void run_ok(const char *const *argv)
{
	struct sb_run_opts o = {.argv = argv, .capture_stderr = true, .timeout_s = 120};
	struct sb_run_result res;
	int rc = sb_run(&o, &res);
	if (rc != 0) {
		char *why = sb_run_describe(&res, o.timeout_s);
		fail_msg("%s failed: %s", argv[0], why);
	}
	sb_run_result_free(&res);
}

static char *make_fs(const char *type, const char *mkfs, const char *quiet, const char *mb)
{
	char *img = xasprintf("%s/%s.img", root, type);
	char *dir = xasprintf("%s/%s", root, type);
	int fd = open(img, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, atol(mb) << 20), 0);
	close(fd);
	run_ok((const char *[]){mkfs, quiet, img, NULL});
	assert_int_equal(mkdir(dir, 0755), 0);
	/* noatime: comparing the trees reads them, and atimes are compared too. */
	run_ok((const char *[]){"mount", "-o", "loop,noatime", img, dir, NULL});
	free(img);
	return dir;
}

static int group_setup(void **state)
{
	if (geteuid() != 0) {
		fprintf(stderr, "torture_cowsnap: needs root (snapshots, loop mounts)\n");
		return -1;
	}
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, T_MS_REC | T_MS_PRIVATE, NULL) < 0) {
		fprintf(stderr, "torture_cowsnap: no private mount namespace: %s\n", strerror(errno));
		return -1;
	}
	strcpy(root, "/tmp/sbcowXXXXXX");
	assert_non_null(mkdtemp(root));
	fs_btrfs = make_fs("btrfs", "mkfs.btrfs", "-q", "256");
	fs_xfs = make_fs("xfs", "mkfs.xfs", "-q", "512");
	fs_ext4 = make_fs("ext4", "mkfs.ext4", "-q", "64");
	return 0;
}

static int group_teardown(void **state)
{
	char *dirs[] = {fs_btrfs, fs_xfs, fs_ext4};
	for (size_t i = 0; i < SB_ARRAY_SIZE(dirs); i++) {
		if (dirs[i])
			umount2(dirs[i], T_MNT_DETACH);
		free(dirs[i]);
	}
	sb_rm_rf(root);
	return 0;
}

/* A fresh path under dir. */
static char *fresh(const char *dir, const char *what)
{
	return xasprintf("%s/%s-%d", dir, what, ++serial);
}

/* ---- building a tree with every kind of entry ---- */

static void put(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static void put_at(const char *dir, const char *name, const char *text)
{
	char *p = xasprintf("%s/%s", dir, name);
	put(p, text, strlen(text));
	free(p);
}

static void set_times(const char *path, time_t a, long an, time_t m, long mn)
{
	struct timespec ts[2] = {{a, an}, {m, mn}};
	assert_int_equal(utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW), 0);
}

static char *at(const char *dir, const char *name)
{
	return xasprintf("%s/%s", dir, name);
}

static void build_tree(const char *src, bool btrfs)
{
	assert_int_equal(mkdir(src, 0750), 0);
	char *p;

	p = at(src, "a");
	put(p, "alpha\n", 6);
	assert_int_equal(chown(p, 1234, 5678), 0);
	assert_int_equal(chmod(p, 0640), 0);
	assert_int_equal(setxattr(p, "user.color", "blue", 4, 0), 0);
	assert_int_equal(setxattr(p, "trusted.binary", "\0\1\2", 3, 0), 0);
	set_times(p, 1000000000, 123456789, 1200000000, 987654321);
	free(p);

	put_at(src, "empty", "");
	p = at(src, "big");
	size_t big = 3 << 20;
	char *data = xmalloc(big);
	for (size_t i = 0; i < big; i++)
		data[i] = (char)(i * 7 + i / 4096);
	put(p, data, big);
	free(data);
	free(p);

	p = at(src, "sparse");
	int fd = open(p, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "middle", 6, 32 << 20), 6);
	assert_int_equal(ftruncate(fd, 64 << 20), 0);
	close(fd);
	free(p);

	p = at(src, "setuid");
	put(p, "#!/bin/sh\n", 10);
	assert_int_equal(chmod(p, 04755), 0);
	free(p);

	put_at(src, "name with\nnewline and  spaces", "odd\n");

	assert_int_equal(mkdirat(AT_FDCWD, (p = at(src, "dir")), 0755), 0);
	free(p);
	assert_int_equal(mkdir((p = at(src, "dir/deep")), 0700), 0);
	free(p);
	assert_int_equal(mkdir((p = at(src, "dir/deep/er")), 0711), 0);
	free(p);
	put_at(src, "dir/deep/er/leaf", "leaf\n");

	/* Three names of one file, and a pair of linked symlinks. */
	char *a = at(src, "a"), *l1 = at(src, "dir/a-link"), *l2 = at(src, "dir/deep/a-link2");
	assert_int_equal(link(a, l1), 0);
	assert_int_equal(link(a, l2), 0);
	free(a);
	free(l1);
	free(l2);

	p = at(src, "link");
	assert_int_equal(symlink("dir/../a", p), 0);
	assert_int_equal(lchown(p, 42, 43), 0);
	set_times(p, 1100000000, 5, 1100000001, 6);
	char *p2 = at(src, "dir/link-twin");
	assert_int_equal(link(p, p2), 0);
	free(p2);
	free(p);
	p = at(src, "dangling");
	assert_int_equal(symlink("/nonexistent/target with space", p), 0);
	free(p);

	p = at(src, "fifo");
	assert_int_equal(mknod(p, S_IFIFO | 0620, 0), 0);
	free(p);
	p = at(src, "null");
	assert_int_equal(mknod(p, S_IFCHR | 0666, makedev(1, 3)), 0);
	assert_int_equal(chown(p, 7, 8), 0);
	free(p);
	p = at(src, "sock");
	assert_int_equal(mknod(p, S_IFSOCK | 0755, 0), 0);
	free(p);

	if (btrfs) {
		/* A no-copy-on-write file, as databases on btrfs often are. */
		p = at(src, "nocow");
		fd = open(p, O_WRONLY | O_CREAT, 0600);
		assert_true(fd >= 0);
		int flags = FS_NOCOW_FL;
		assert_int_equal(ioctl(fd, FS_IOC_SETFLAGS, &flags), 0);
		assert_int_equal(write(fd, "nocow data\n", 11), 11);
		close(fd);
		free(p);
	}

	/* Read-only directories are filled first, then closed. */
	p = at(src, "ro");
	assert_int_equal(mkdir(p, 0755), 0);
	put_at(p, "inside", "inside\n");
	assert_int_equal(setxattr(p, "user.dir", "x", 1, 0), 0);
	assert_int_equal(chmod(p, 0555), 0);
	set_times(p, 1300000000, 1, 1300000002, 2);
	free(p);

	p = at(src, "dir/deep");
	set_times(p, 1400000000, 0, 1400000000, 999999999);
	free(p);
	set_times(src, 1500000000, 0, 1500000000, 1);
}

/* ---- comparing trees ---- */

struct ino_pair {
	ino_t src, dst;
};

struct compare {
	struct ino_pair *links;
	size_t n_links;
	bool check_shared;   /* a reflink copy: data extents must be shared */
	int files_shared;
};

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *xattrs_of(const char *path, size_t *len)
{
	ssize_t n = llistxattr(path, NULL, 0);
	assert_true(n >= 0);
	char *names = xmalloc((size_t)n + 1);
	n = llistxattr(path, names, (size_t)n);
	assert_true(n >= 0);
	/* "name=value" lines, in list order (the same order on the copy is not promised: sort). */
	struct sb_strv items = {0};
	for (char *x = names; x < names + n; x += strlen(x) + 1) {
		char value[256];
		ssize_t v = lgetxattr(path, x, value, sizeof(value));
		assert_true(v >= 0);
		char *item = xmalloc(strlen(x) + 2 + (size_t)v * 2 + 1);
		char *w = item + sprintf(item, "%s=", x);
		for (ssize_t i = 0; i < v; i++)
			w += sprintf(w, "%02x", (unsigned char)value[i]);
		sb_strv_push_owned(&items, item);
	}
	free(names);
	if (items.n)
		qsort(items.v, items.n, sizeof(char *), name_cmp);
	struct sb_buf b = {0};
	sb_buf_puts(&b, "");
	for (size_t i = 0; i < items.n; i++)
		sb_buf_printf(&b, "%s\n", items.v[i]);
	sb_strv_free(&items);
	*len = b.len;
	return sb_buf_steal(&b);
}

static char *content_of(const char *path, size_t *len)
{
	char *data = NULL;
	assert_int_equal(sb_read_file(path, 128 << 20, &data, len), 0);
	return data;
}

/*
 * Whether every data extent of the file is shared with another file;
 * btrfs keeps small files inline in its metadata, where nothing is
 * shared: those count as shared when *inline_only is set.
 */
static bool extents_shared(const char *path, bool *inline_only)
{
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	size_t size = sizeof(struct fiemap) + 64 * sizeof(struct fiemap_extent);
	struct fiemap *fm = xcalloc(1, size);
	fm->fm_length = FIEMAP_MAX_OFFSET;
	fm->fm_flags = FIEMAP_FLAG_SYNC;
	fm->fm_extent_count = 64;
	assert_int_equal(ioctl(fd, FS_IOC_FIEMAP, fm), 0);
	close(fd);
	bool shared = fm->fm_mapped_extents > 0;
	*inline_only = true;
	for (unsigned i = 0; i < fm->fm_mapped_extents; i++) {
		if (fm->fm_extents[i].fe_flags & FIEMAP_EXTENT_DATA_INLINE)
			continue;
		*inline_only = false;
		shared &= (fm->fm_extents[i].fe_flags & FIEMAP_EXTENT_SHARED) != 0;
	}
	free(fm);
	return shared;
}

static void list_dir(const char *dir, struct sb_strv *names)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			sb_strv_push(names, de->d_name);
	closedir(d);
	qsort(names->v, names->n, sizeof(char *), name_cmp);
}

static void compare_entry(struct compare *c, const char *src, const char *dst)
{
	struct stat a, b;
	assert_int_equal(lstat(src, &a), 0);
	if (lstat(dst, &b) < 0)
		fail_msg("'%s' is missing in the copy", dst);
	if (a.st_mode != b.st_mode || a.st_uid != b.st_uid || a.st_gid != b.st_gid)
		fail_msg("'%s': mode/owner %o %d:%d, copy %o %d:%d", src, a.st_mode, a.st_uid, a.st_gid, b.st_mode,
			 b.st_uid, b.st_gid);
	if (!S_ISDIR(a.st_mode) && (a.st_size != b.st_size || a.st_rdev != b.st_rdev || a.st_nlink != b.st_nlink))
		fail_msg("'%s': size/rdev/nlink differ", src);
	if (a.st_mtim.tv_sec != b.st_mtim.tv_sec || a.st_mtim.tv_nsec != b.st_mtim.tv_nsec ||
	    a.st_atim.tv_sec != b.st_atim.tv_sec || a.st_atim.tv_nsec != b.st_atim.tv_nsec)
		fail_msg("'%s': times %ld.%09ld/%ld.%09ld, copy %ld.%09ld/%ld.%09ld", src, (long)a.st_atim.tv_sec,
			 a.st_atim.tv_nsec, (long)a.st_mtim.tv_sec, a.st_mtim.tv_nsec, (long)b.st_atim.tv_sec,
			 b.st_atim.tv_nsec, (long)b.st_mtim.tv_sec, b.st_mtim.tv_nsec);
	size_t la, lb;
	char *xa = xattrs_of(src, &la), *xb = xattrs_of(dst, &lb);
	if (strcmp(xa, xb) != 0)
		fail_msg("'%s': xattrs [%s], copy [%s]", src, xa, xb);
	free(xa);
	free(xb);
	if (!S_ISDIR(a.st_mode) && a.st_nlink > 1) {
		bool seen = false;
		for (size_t i = 0; i < c->n_links; i++) {
			if (c->links[i].src == a.st_ino) {
				seen = true;
				if (c->links[i].dst != b.st_ino)
					fail_msg("'%s': a hard link of the source is a separate file in the copy", src);
			} else if (c->links[i].dst == b.st_ino) {
				fail_msg("'%s': linked in the copy to a file it is not linked to", src);
			}
		}
		if (!seen) {
			c->links = xrealloc(c->links, (c->n_links + 1) * sizeof(*c->links));
			c->links[c->n_links++] = (struct ino_pair){a.st_ino, b.st_ino};
		}
	}
	if (S_ISLNK(a.st_mode)) {
		char ta[4096] = {0}, tb[4096] = {0};
		assert_true(readlink(src, ta, sizeof(ta) - 1) > 0);
		assert_true(readlink(dst, tb, sizeof(tb) - 1) > 0);
		assert_string_equal(ta, tb);
	} else if (S_ISREG(a.st_mode)) {
		size_t na, nb;
		char *da = content_of(src, &na), *db = content_of(dst, &nb);
		assert_int_equal(na, nb);
		assert_memory_equal(da, db, na);
		free(da);
		free(db);
		int fa = open(src, O_RDONLY), fb = open(dst, O_RDONLY);
		int ga = 0, gb = 0;
		if (ioctl(fa, FS_IOC_GETFLAGS, &ga) == 0 && ioctl(fb, FS_IOC_GETFLAGS, &gb) == 0)
			assert_int_equal(ga & FS_NOCOW_FL, gb & FS_NOCOW_FL);
		close(fa);
		close(fb);
		bool inline_only = false;
		if (c->check_shared && a.st_size > 0) {
			if (!extents_shared(dst, &inline_only) && !inline_only)
				fail_msg("'%s': the copy's data is not shared with the source", dst);
			c->files_shared += !inline_only;
		}
	} else if (S_ISDIR(a.st_mode)) {
		struct sb_strv na = {0}, nb = {0};
		list_dir(src, &na);
		list_dir(dst, &nb);
		assert_int_equal(na.n, nb.n);
		for (size_t i = 0; i < na.n; i++) {
			assert_string_equal(na.v[i], nb.v[i]);
			char *sa = at(src, na.v[i]), *sb = at(dst, nb.v[i]);
			compare_entry(c, sa, sb);
			free(sa);
			free(sb);
		}
		sb_strv_free(&na);
		sb_strv_free(&nb);
	}
}

/*
 * Compares two trees; returns how many hard-link groups there were. A
 * reflink copy shares the data of at least one file (the others may be
 * inline).
 */
static size_t compare_trees(const char *src, const char *dst, bool check_shared)
{
	struct compare c = {.check_shared = check_shared};
	compare_entry(&c, src, dst);
	if (check_shared)
		assert_true(c.files_shared >= 1);
	free(c.links);
	return c.n_links;
}

/* ---- the reflink copy ---- */

static void reflink_tree_on(const char *fs, bool btrfs)
{
	char *src = fresh(fs, "src"), *dst = fresh(fs, "copy");
	build_tree(src, btrfs);
	char *err = NULL;
	if (sb_cow_reflink_tree(src, dst, NULL, &err) < 0)
		fail_msg("reflink copy failed: %s", err);
	/* "a" with its two other names, and the linked symlinks. */
	assert_int_equal(compare_trees(src, dst, true), 2);
	/* The copy is independent: changing it leaves the source alone. */
	put_at(dst, "a", "changed\n");
	char *a = at(src, "a");
	size_t n;
	char *text = content_of(a, &n);
	assert_string_equal(text, "alpha\n");
	free(text);
	free(a);
	assert_int_equal(sb_cow_remove(dst, &err), 0);
	assert_int_equal(access(dst, F_OK), -1);
	free(src);
	free(dst);
}

static void test_reflink_tree_btrfs(void **state)
{
	reflink_tree_on(fs_btrfs, true);
}

static void test_reflink_tree_xfs(void **state)
{
	reflink_tree_on(fs_xfs, false);
}

static void test_reflink_tree_existing_destination(void **state)
{
	char *src = fresh(fs_xfs, "src"), *dst = fresh(fs_xfs, "copy");
	assert_int_equal(mkdir(src, 0755), 0);
	assert_int_equal(mkdir(dst, 0755), 0);
	put_at(dst, "mine", "keep\n");
	char *err = NULL;
	assert_int_equal(sb_cow_reflink_tree(src, dst, NULL, &err), -1);
	assert_non_null(strstr(err, "File exists"));
	free(err);
	char *mine = at(dst, "mine");
	assert_int_equal(access(mine, F_OK), 0);
	free(mine);
	free(src);
	free(dst);
}

static void test_reflink_tree_across_filesystems(void **state)
{
	char *src = fresh(fs_ext4, "src"), *dst = fresh(fs_btrfs, "copy");
	assert_int_equal(mkdir(src, 0755), 0);
	put_at(src, "data", "x");
	char *err = NULL;
	assert_int_equal(sb_cow_reflink_tree(src, dst, NULL, &err), -1);
	char *want = xasprintf("cannot clone (FICLONE) '%s/data': %s", src, strerror(EXDEV));
	assert_string_equal(err, want);
	free(want);
	free(err);
	assert_int_equal(sb_cow_remove(dst, &err), 0);
	free(src);
	free(dst);
}

static void test_reflink_tree_cancel(void **state)
{
	char *src = fresh(fs_btrfs, "src"), *dst = fresh(fs_btrfs, "copy");
	build_tree(src, true);
	atomic_bool cancel = true;
	char *err = NULL;
	assert_int_equal(sb_cow_reflink_tree(src, dst, &cancel, &err), -1);
	assert_string_equal(err, "cancelled");
	free(err);
	err = NULL;
	assert_int_equal(sb_cow_remove(dst, &err), 0);
	free(src);
	free(dst);
}

/* ---- plans ---- */

static char *make_stack(const char *parent, bool subvolume)
{
	char *dir = fresh(parent, "stack");
	if (subvolume)
		run_ok((const char *[]){"btrfs", "-q", "subvolume", "create", dir, NULL});
	else
		assert_int_equal(mkdir(dir, 0755), 0);
	put_at(dir, "docker-compose.yml", "services: {}\n");
	char *data = at(dir, "data");
	assert_int_equal(mkdir(data, 0700), 0);
	put_at(data, "db", "rows\n");
	char *blob = at(data, "blob");
	char *bytes = xmalloc(1 << 20);
	memset(bytes, 'b', 1 << 20);
	put(blob, bytes, 1 << 20);
	free(bytes);
	free(blob);
	free(data);
	return dir;
}

static const char *base(const char *path)
{
	return strrchr(path, '/') + 1;
}

static void test_plan_off(void **state)
{
	struct sb_cow_plan plan;
	char *err = NULL;
	assert_int_equal(sb_cow_plan(SB_SNAPSHOT_MODE_OFF, fs_btrfs, "web", NULL, &plan, &err), 0);
	assert_int_equal(plan.kind, SB_COW_NONE);
	assert_null(plan.why);
	assert_null(plan.staging);
	sb_cow_plan_free(&plan);
}

static void test_plan_btrfs_subvolume(void **state)
{
	char *stack = make_stack(fs_btrfs, true);
	struct sb_cow_plan plan;
	char *err = NULL;
	assert_int_equal(sb_cow_plan(SB_SNAPSHOT_MODE_BTRFS, stack, base(stack), NULL, &plan, &err), 0);
	assert_int_equal(plan.kind, SB_COW_SUBVOLUME);
	assert_string_equal(plan.fs, "btrfs");
	assert_null(plan.why);
	char *staging = xasprintf("%s/%s", fs_btrfs, SB_COW_STAGING_NAME);
	assert_string_equal(plan.staging, staging);
	struct stat st;
	assert_int_equal(stat(staging, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);

	assert_int_equal(sb_cow_take(&plan, stack, NULL, &err), 0);
	compare_trees(stack, plan.copy, false);
	/* Read-only: nothing can change the snapshot that restic reads. */
	char *inside = at(plan.copy, "data/new");
	assert_int_equal(open(inside, O_WRONLY | O_CREAT, 0600), -1);
	assert_int_equal(errno, EROFS);
	free(inside);
	/* The stack goes on after the snapshot, which keeps the old state. */
	put_at(stack, "data/db", "rows and more\n");
	char *db = at(plan.copy, "data/db");
	size_t n;
	char *text = content_of(db, &n);
	assert_string_equal(text, "rows\n");
	free(text);
	free(db);

	assert_int_equal(sb_cow_remove(plan.copy, &err), 0);
	assert_int_equal(lstat(plan.copy, &st), -1);
	/* The default staging directory goes with its last copy. */
	assert_int_equal(lstat(staging, &st), -1);
	sb_cow_plan_free(&plan);

	/* SNAPSHOT_MODE=reflink asks for a reflink copy, subvolume or not. */
	assert_int_equal(sb_cow_plan(SB_SNAPSHOT_MODE_REFLINK, stack, base(stack), NULL, &plan, &err), 0);
	assert_int_equal(plan.kind, SB_COW_REFLINK);
	assert_null(plan.why);
	assert_int_equal(sb_cow_take(&plan, stack, NULL, &err), 0);
	compare_trees(stack, plan.copy, true);
	assert_int_equal(sb_cow_remove(plan.copy, &err), 0);
	assert_int_equal(lstat(staging, &st), -1);
	free(staging);
	sb_cow_plan_free(&plan);
	free(stack);
}

static void test_plan_btrfs_plain_directory(void **state)
{
	char *stack = make_stack(fs_btrfs, false);
	struct sb_cow_plan plan;
	char *err = NULL;
	assert_int_equal(sb_cow_plan(SB_SNAPSHOT_MODE_BTRFS, stack, base(stack), NULL, &plan, &err), 0);
	assert_int_equal(plan.kind, SB_COW_REFLINK);
	assert_non_null(strstr(plan.why, "not a subvolume"));
	assert_int_equal(sb_cow_take(&plan, stack, NULL, &err), 0);
	compare_trees(stack, plan.copy, true);
	assert_int_equal(sb_cow_remove(plan.copy, &err), 0);
	sb_cow_plan_free(&plan);
	free(stack);
}

static void test_plan_btrfs_nested_subvolume(void **state)
{
	char *stack = make_stack(fs_btrfs, true);
	char *nested = at(stack, "volume");
	run_ok((const char *[]){"btrfs", "-q", "subvolume", "create", nested, NULL});
	put_at(nested, "file", "in a nested subvolume\n");
	struct sb_cow_plan plan;
	char *err = NULL;
	assert_int_equal(sb_cow_plan(SB_SNAPSHOT_MODE_AUTO, stack, base(stack), NULL, &plan, &err), 0);
	assert_int_equal(plan.kind, SB_COW_REFLINK);
	assert_non_null(strstr(plan.why, "nested subvolumes"));
	assert_int_equal(sb_cow_take(&plan, stack, NULL, &err), 0);
	/* The nested subvolume's file is in the copy, as restic would read it in place. */
	char *copied = at(plan.copy, "volume/file");
	assert_int_equal(access(copied, F_OK), 0);
	free(copied);
	assert_int_equal(sb_cow_remove(plan.copy, &err), 0);
	sb_cow_plan_free(&plan);
	free(nested);
	free(stack);
}

static void test_plan_btrfs_elsewhere(void **state)
{
	char *stack = make_stack(fs_xfs, false);
	struct sb_cow_plan plan;
	char *err = NULL;
	assert_int_equal(sb_cow_plan(SB_SNAPSHOT_MODE_BTRFS, stack, base(stack), NULL, &plan, &err), -1);
	char *want = xasprintf("'%s' is on xfs, not btrfs", stack);
	assert_string_equal(err, want);
	free(want);
	free(err);
	sb_cow_plan_free(&plan);
	free(stack);
}

static void test_plan_auto_xfs(void **state)
{
	char *stack = make_stack(fs_xfs, false);
	struct sb_cow_plan plan;
	char *err = NULL;
	assert_int_equal(sb_cow_plan(SB_SNAPSHOT_MODE_AUTO, stack, base(stack), NULL, &plan, &err), 0);
	assert_int_equal(plan.kind, SB_COW_REFLINK);
	assert_string_equal(plan.fs, "xfs");
	assert_null(plan.why);
	assert_int_equal(sb_cow_take(&plan, stack, NULL, &err), 0);
	compare_trees(stack, plan.copy, true);
	assert_int_equal(sb_cow_remove(plan.copy, &err), 0);
	sb_cow_plan_free(&plan);
	free(stack);
}

static void test_plan_never_taken(void **state)
{
	char *stack = make_stack(fs_xfs, false);
	char *staging = xasprintf("%s/%s", fs_xfs, SB_COW_STAGING_NAME);
	struct sb_cow_plan plan;
	char *err = NULL;
	assert_int_equal(sb_cow_plan(SB_SNAPSHOT_MODE_REFLINK, stack, base(stack), NULL, &plan, &err), 0);
	assert_int_equal(access(staging, F_OK), 0);
	/* The stop failed: nothing was copied, and the staging directory goes. */
	sb_cow_tidy(&plan);
	assert_int_equal(access(staging, F_OK), -1);
	sb_cow_plan_free(&plan);
	/* A configured staging area is the user's: it stays. */
	char *mine = fresh(fs_xfs, "mine");
	assert_int_equal(sb_cow_plan(SB_SNAPSHOT_MODE_REFLINK, stack, base(stack), mine, &plan, &err), 0);
	sb_cow_tidy(&plan);
	assert_int_equal(access(mine, F_OK), 0);
	sb_cow_plan_free(&plan);
	free(mine);
	free(staging);
	free(stack);
}

static void test_plan_ext4(void **state)
{
	char *stack = make_stack(fs_ext4, false);
	char *staging = xasprintf("%s/%s", fs_ext4, SB_COW_STAGING_NAME);
	struct sb_cow_plan plan;
	char *err = NULL;
	assert_int_equal(sb_cow_plan(SB_SNAPSHOT_MODE_REFLINK, stack, base(stack), NULL, &plan, &err), -1);
	assert_non_null(strstr(err, "is on ext4, which cannot share file data (FICLONE: "));
	free(err);
	err = NULL;
	sb_cow_plan_free(&plan);
	/* auto falls back, says why, and leaves no staging directory behind. */
	assert_int_equal(sb_cow_plan(SB_SNAPSHOT_MODE_AUTO, stack, base(stack), NULL, &plan, &err), 0);
	assert_int_equal(plan.kind, SB_COW_NONE);
	assert_non_null(strstr(plan.why, "is on ext4"));
	assert_null(plan.copy);
	assert_int_equal(access(staging, F_OK), -1);
	sb_cow_plan_free(&plan);
	free(staging);
	free(stack);
}

static void test_plan_staging_checked(void **state)
{
	char *stack = make_stack(fs_btrfs, true);
	struct sb_cow_plan plan;
	char *err = NULL;

	char *inside = at(stack, "staging");
	assert_int_equal(sb_cow_plan(SB_SNAPSHOT_MODE_BTRFS, stack, base(stack), inside, &plan, &err), -1);
	assert_non_null(strstr(err, "is inside the stack directory"));
	free(err);
	err = NULL;
	sb_cow_plan_free(&plan);
	free(inside);

	char *other = fresh(fs_xfs, "staging");
	assert_int_equal(sb_cow_plan(SB_SNAPSHOT_MODE_BTRFS, stack, base(stack), other, &plan, &err), -1);
	assert_non_null(strstr(err, "is not on the filesystem of"));
	free(err);
	err = NULL;
	sb_cow_plan_free(&plan);
	/* auto removes the staging directory it created for nothing. */
	assert_int_equal(sb_cow_plan(SB_SNAPSHOT_MODE_AUTO, stack, base(stack), other, &plan, &err), 0);
	assert_int_equal(plan.kind, SB_COW_NONE);
	assert_int_equal(access(other, F_OK), -1);
	sb_cow_plan_free(&plan);
	free(other);

	/* A configured staging area on the same filesystem, created 0700, kept afterwards. */
	char *mine = fresh(fs_btrfs, "my-staging");
	assert_int_equal(sb_cow_plan(SB_SNAPSHOT_MODE_BTRFS, stack, base(stack), mine, &plan, &err), 0);
	assert_int_equal(plan.kind, SB_COW_SUBVOLUME);
	char *copy = xasprintf("%s/%s", mine, base(stack));
	assert_string_equal(plan.copy, copy);
	free(copy);
	assert_int_equal(sb_cow_take(&plan, stack, NULL, &err), 0);

	/* The next plan finds the copy in the way and never overwrites it. */
	struct sb_cow_plan again;
	assert_int_equal(sb_cow_plan(SB_SNAPSHOT_MODE_BTRFS, stack, base(stack), mine, &again, &err), -1);
	assert_non_null(strstr(err, "is in the way"));
	free(err);
	err = NULL;
	sb_cow_plan_free(&again);

	assert_int_equal(sb_cow_remove(plan.copy, &err), 0);
	assert_int_equal(access(mine, F_OK), 0);
	sb_cow_plan_free(&plan);
	free(mine);
	free(stack);
}

static void test_plan_mount_inside(void **state)
{
	char *stack = make_stack(fs_xfs, false);
	char *cache = at(stack, "cache");
	assert_int_equal(mkdir(cache, 0755), 0);
	run_ok((const char *[]){"mount", "-t", "tmpfs", "tmpfs", cache, NULL});
	struct sb_cow_plan plan;
	char *err = NULL;
	assert_int_equal(sb_cow_plan(SB_SNAPSHOT_MODE_REFLINK, stack, base(stack), NULL, &plan, &err), -1);
	char *want = xasprintf("'%s' is a mount point inside the stack directory: a snapshot would miss it", cache);
	assert_string_equal(err, want);
	free(want);
	free(err);
	sb_cow_plan_free(&plan);
	assert_int_equal(umount2(cache, 0), 0);
	free(cache);
	free(stack);
}

static void test_plan_top_of_filesystem(void **state)
{
	/* The filesystem's root as the stack: no room beside it on the same filesystem. */
	struct sb_cow_plan plan;
	char *err = NULL;
	assert_int_equal(sb_cow_plan(SB_SNAPSHOT_MODE_REFLINK, fs_xfs, "whole", NULL, &plan, &err), -1);
	assert_non_null(strstr(err, "is the top of its filesystem"));
	assert_non_null(strstr(err, "SNAPSHOT_STAGING"));
	free(err);
	sb_cow_plan_free(&plan);
}

static void test_plan_bad_name(void **state)
{
	char *stack = make_stack(fs_btrfs, true);
	static const char *const names[] = {"", "..", ".hidden", "a/b", "-x", "stackback"};
	for (size_t i = 0; i < SB_ARRAY_SIZE(names); i++) {
		struct sb_cow_plan plan;
		char *err = NULL;
		assert_int_equal(sb_cow_plan(SB_SNAPSHOT_MODE_BTRFS, stack, names[i], NULL, &plan, &err), -1);
		assert_non_null(strstr(err, "is not a stack name"));
		free(err);
		sb_cow_plan_free(&plan);
	}
	free(stack);
}

static void test_plan_missing_directory(void **state)
{
	char *gone = fresh(fs_btrfs, "gone");
	struct sb_cow_plan plan;
	char *err = NULL;
	assert_int_equal(sb_cow_plan(SB_SNAPSHOT_MODE_AUTO, gone, "gone", NULL, &plan, &err), 0);
	assert_int_equal(plan.kind, SB_COW_NONE);
	assert_non_null(strstr(plan.why, "cannot resolve"));
	sb_cow_plan_free(&plan);
	free(gone);
}

/* ---- removal ---- */

static void test_remove(void **state)
{
	char *err = NULL;
	char *absent = fresh(fs_xfs, "absent");
	assert_int_equal(sb_cow_remove(absent, &err), 0);
	free(absent);

	/* A partial copy with read-only directories, and a symlink that must not be followed. */
	char *victim = fresh(fs_xfs, "victim");
	assert_int_equal(mkdir(victim, 0755), 0);
	put_at(victim, "keep", "keep\n");
	char *tree = fresh(fs_xfs, "tree");
	assert_int_equal(mkdir(tree, 0755), 0);
	char *ro = at(tree, "ro");
	assert_int_equal(mkdir(ro, 0755), 0);
	put_at(ro, "f", "x");
	char *out = at(ro, "out");
	assert_int_equal(symlink(victim, out), 0);
	assert_int_equal(chmod(ro, 0500), 0);
	assert_int_equal(sb_cow_remove(tree, &err), 0);
	assert_int_equal(access(tree, F_OK), -1);
	char *keep = at(victim, "keep");
	assert_int_equal(access(keep, F_OK), 0);
	free(keep);
	free(out);
	free(ro);
	free(tree);
	free(victim);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reflink_tree_btrfs),
		cmocka_unit_test(test_reflink_tree_xfs),
		cmocka_unit_test(test_reflink_tree_existing_destination),
		cmocka_unit_test(test_reflink_tree_across_filesystems),
		cmocka_unit_test(test_reflink_tree_cancel),
		cmocka_unit_test(test_plan_off),
		cmocka_unit_test(test_plan_btrfs_subvolume),
		cmocka_unit_test(test_plan_btrfs_plain_directory),
		cmocka_unit_test(test_plan_btrfs_nested_subvolume),
		cmocka_unit_test(test_plan_btrfs_elsewhere),
		cmocka_unit_test(test_plan_auto_xfs),
		cmocka_unit_test(test_plan_never_taken),
		cmocka_unit_test(test_plan_ext4),
		cmocka_unit_test(test_plan_staging_checked),
		cmocka_unit_test(test_plan_mount_inside),
		cmocka_unit_test(test_plan_top_of_filesystem),
		cmocka_unit_test(test_plan_bad_name),
		cmocka_unit_test(test_plan_missing_directory),
		cmocka_unit_test(test_remove),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
