/*
 * Snapshot mode: copy-on-write copies of stopped stacks (cowsnap.h).
 *
 * Two mechanisms, both instant in the amount of file data:
 *  - a read-only btrfs subvolume snapshot (BTRFS_IOC_SNAP_CREATE_V2):
 *    one ioctl, whatever the size or number of files;
 *  - a reflink copy: the tree is walked, directories, symlinks and
 *    special files are recreated, regular files are cloned (FICLONE, the
 *    data extents are shared) and every entry gets its owner, xattrs,
 *    mode and times back, in that order (a chown clears set-id bits and
 *    capabilities; an entry added to a directory changes its mtime).
 *    Its cost is per entry, not per byte.
 *
 * Observe it: `SNAPSHOT_MODE=btrfs stackback backup web` logs the copy
 * and its duration; `btrfs subvolume list -s /` shows the snapshot
 * while restic runs; `cat STATE_DIR/staging` lists it until it is gone.
 */
#include "stackback/cowsnap.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/btrfs.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "stackback/stacks.h"
#include "stackback/util.h"

/* The inode number of every btrfs subvolume's root directory. */
#define BTRFS_SUBVOL_ROOT_INO 256

const char *sb_cow_kind_name(enum sb_cow_kind kind)
{
	switch (kind) {
	case SB_COW_SUBVOLUME:
		return "btrfs";
	case SB_COW_REFLINK:
		return "reflink";
	case SB_COW_NONE:
		break;
	}
	return NULL;
}

void sb_cow_plan_free(struct sb_cow_plan *plan)
{
	free(plan->fs);
	free(plan->staging);
	free(plan->copy);
	free(plan->why);
	*plan = (struct sb_cow_plan){0};
}

/* ---- filesystems ---- */

static char *fs_name(unsigned long type)
{
	static const struct {
		unsigned long magic;
		const char *name;
	} known[] = {
		{BTRFS_SUPER_MAGIC, "btrfs"},
		{XFS_SUPER_MAGIC, "xfs"},
		{EXT4_SUPER_MAGIC, "ext4"},
		{TMPFS_MAGIC, "tmpfs"},
		{OVERLAYFS_SUPER_MAGIC, "overlayfs"},
		{F2FS_SUPER_MAGIC, "f2fs"},
		{NFS_SUPER_MAGIC, "nfs"},
		{FUSE_SUPER_MAGIC, "fuse"},
		{0x2fc12fc1UL, "zfs"},
		{0xca451a4eUL, "bcachefs"},
	};
	for (size_t i = 0; i < SB_ARRAY_SIZE(known); i++)
		if (known[i].magic == type)
			return xstrdup(known[i].name);
	return xasprintf("a filesystem of type 0x%lx", type);
}

static bool is_btrfs_fd(int fd)
{
	struct statfs sf;
	return fstatfs(fd, &sf) == 0 && (unsigned long)sf.f_type == BTRFS_SUPER_MAGIC;
}

/*
 * Whether two directories are on the same filesystem, the condition for
 * snapshots and clones. st_dev cannot tell on btrfs, where every
 * subvolume has its own; the filesystem's UUID can.
 */
static bool same_fs(int a, int b)
{
	struct statfs fa, fb;
	if (fstatfs(a, &fa) < 0 || fstatfs(b, &fb) < 0 || fa.f_type != fb.f_type)
		return false;
	if ((unsigned long)fa.f_type == BTRFS_SUPER_MAGIC) {
		struct btrfs_ioctl_fs_info_args ia = {0}, ib = {0};
		return ioctl(a, BTRFS_IOC_FS_INFO, &ia) == 0 && ioctl(b, BTRFS_IOC_FS_INFO, &ib) == 0 &&
		       memcmp(ia.fsid, ib.fsid, sizeof(ia.fsid)) == 0;
	}
	struct stat sa, sb;
	return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev;
}

/* True if path is dir itself or below it (both canonical). */
static bool path_within(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	if (strcmp(dir, "/") == 0)
		return true;
	return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* Undoes mountinfo's octal escapes (\040 for a space) in place. */
static void unescape_mountinfo(char *s)
{
	char *out = s;
	for (char *p = s; *p; p++) {
		if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' && p[3] >= '0' &&
		    p[3] <= '7') {
			*out++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
			p += 3;
		} else {
			*out++ = *p;
		}
	}
	*out = '\0';
}

/* The mount points of this mount namespace. Returns 0 or -errno. */
static int read_mount_points(struct sb_strv *out)
{
	cleanup_free char *text = NULL;
	int rc = sb_read_file("/proc/self/mountinfo", 64 << 20, &text, NULL);
	if (rc < 0)
		return rc;
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		/* "ID PARENT MAJ:MIN ROOT MOUNTPOINT ...": the fifth field. */
		char *field = line;
		for (int i = 0; i < 4 && field; i++) {
			field = strchr(field, ' ');
			if (field)
				field++;
		}
		if (!field)
			continue;
		char *end = strchr(field, ' ');
		if (end)
			*end = '\0';
		unescape_mountinfo(field);
		sb_strv_push(out, field);
	}
	return 0;
}

/* ---- the plan ---- */

struct planner {
	enum sb_snapshot_mode mode;
	const char *dir;       /* canonical */
	struct sb_cow_plan *plan;
	bool made_staging;     /* plan->staging did not exist before */
	char **err;
};

/*
 * The plan cannot be carried out: an error for an explicit mode, the
 * reason for falling back under auto. Returns the sb_cow_plan() result.
 */
static int cannot(struct planner *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int cannot(struct planner *p, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	/* Nothing of a plan that cannot be carried out stays behind. */
	if (p->made_staging)
		rmdir(p->plan->staging);
	free(p->plan->staging);
	free(p->plan->copy);
	p->plan->staging = p->plan->copy = NULL;
	p->plan->kind = SB_COW_NONE;
	if (p->mode == SB_SNAPSHOT_MODE_AUTO) {
		free(p->plan->why);
		p->plan->why = msg;
		return 0;
	}
	*p->err = msg;
	return -1;
}

/*
 * The default staging area: beside the stack when its parent is on the
 * same filesystem (for stacks under DOCKER_STACKS_DIR: beside the
 * stacks), else at the top of the stack's filesystem. NULL when neither
 * works (the stack directory is itself a mount point).
 */
static char *default_staging(const char *dir, int dir_fd)
{
	cleanup_free char *parent = xstrdup(dir);
	char *slash = strrchr(parent, '/');
	if (slash && slash != parent) {
		*slash = '\0';
		cleanup_close int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0 && same_fs(fd, dir_fd))
			return xasprintf("%s/%s", parent, SB_COW_STAGING_NAME);
	}
	struct sb_strv mounts = {0};
	if (read_mount_points(&mounts) < 0)
		return NULL;
	const char *top = NULL;
	for (size_t i = 0; i < mounts.n; i++)
		if (path_within(dir, mounts.v[i]) && (!top || strlen(mounts.v[i]) > strlen(top)))
			top = mounts.v[i];
	char *staging = NULL;
	if (top && !path_within(top, dir))
		staging = strcmp(top, "/") == 0 ? xasprintf("/%s", SB_COW_STAGING_NAME)
						: xasprintf("%s/%s", top, SB_COW_STAGING_NAME);
	sb_strv_free(&mounts);
	return staging;
}

/* Whether FICLONE works in the directory dir_fd (two unnamed temporary files). */
static int probe_reflink(int dir_fd)
{
	cleanup_close int src = openat(dir_fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	cleanup_close int dst = openat(dir_fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (src < 0 || dst < 0)
		return -errno;
	char block[4096];
	memset(block, 's', sizeof(block));
	if (write(src, block, sizeof(block)) != (ssize_t)sizeof(block))
		return errno ? -errno : -EIO;
	if (ioctl(dst, FICLONE, src) < 0)
		return -errno;
	return 0;
}

/* Nested subvolumes would be empty directories in a snapshot of their parent. */
static bool has_nested_subvolumes(int dir_fd)
{
	struct btrfs_ioctl_get_subvol_rootref_args refs = {0};
	/* Without the ioctl (kernels before 4.18): assume the worst, a reflink copy is always right. */
	if (ioctl(dir_fd, BTRFS_IOC_GET_SUBVOL_ROOTREF, &refs) < 0 && errno != EOVERFLOW)
		return true;
	return refs.num_items > 0;
}

static int plan_staging(struct planner *p, const char *name, const char *staging, int dir_fd,
			int *staging_fd)
{
	struct sb_cow_plan *plan = p->plan;
	plan->staging = staging ? xstrdup(staging) : default_staging(p->dir, dir_fd);
	if (!plan->staging)
		return cannot(p, "'%s' is the top of its filesystem: there is no room for a staging area "
				 "beside it (set SNAPSHOT_STAGING to a directory on the same filesystem)",
			      p->dir);
	struct stat st;
	p->made_staging = lstat(plan->staging, &st) < 0 && errno == ENOENT;
	int rc = sb_mkdir_p(plan->staging, 0700);
	if (rc < 0)
		return cannot(p, "cannot create the staging area '%s': %s", plan->staging, strerror(-rc));
	cleanup_free char *real = realpath(plan->staging, NULL);
	if (!real)
		return cannot(p, "cannot resolve the staging area '%s': %s", plan->staging, strerror(errno));
	if (path_within(real, p->dir))
		return cannot(p, "the staging area '%s' is inside the stack directory '%s'", plan->staging, p->dir);
	*staging_fd = open(real, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*staging_fd < 0)
		return cannot(p, "cannot open the staging area '%s': %s", plan->staging, strerror(errno));
	if (!same_fs(*staging_fd, dir_fd))
		return cannot(p, "the staging area '%s' is not on the filesystem of '%s'", plan->staging, p->dir);
	plan->copy = xasprintf("%s/%s", plan->staging, name);
	if (fstatat(*staging_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return cannot(p, "'%s' is in the way: a copy that could not be removed? ('stackback recover' "
				 "removes those it made; remove anything else by hand)",
			      plan->copy);
	return 0;
}

int sb_cow_plan(enum sb_snapshot_mode mode, const char *dir, const char *name, const char *staging,
		struct sb_cow_plan *plan, char **err)
{
	*plan = (struct sb_cow_plan){.mode = mode};
	if (mode == SB_SNAPSHOT_MODE_OFF)
		return 0;
	cleanup_free char *real = realpath(dir, NULL);
	struct planner p = {.mode = mode, .dir = real ? real : dir, .plan = plan, .err = err};
	if (!real)
		return cannot(&p, "cannot resolve '%s': %s", dir, strerror(errno));
	if (!sb_stack_name_valid(name))
		return cannot(&p, "'%s' is not a stack name", name);
	if (geteuid() != 0)
		return cannot(&p, "snapshot mode needs root (snapshots, clones of every owner's files, "
				  "and the private mount through which restic reads the copy)");
	cleanup_close int dir_fd = open(real, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct statfs sf;
	if (dir_fd < 0 || fstatfs(dir_fd, &sf) < 0)
		return cannot(&p, "cannot open '%s': %s", real, strerror(errno));
	plan->fs = fs_name((unsigned long)sf.f_type);
	bool btrfs = (unsigned long)sf.f_type == BTRFS_SUPER_MAGIC;
	if (mode == SB_SNAPSHOT_MODE_BTRFS && !btrfs)
		return cannot(&p, "'%s' is on %s, not btrfs", real, plan->fs);

	struct sb_strv mounts = {0};
	int rc = read_mount_points(&mounts);
	if (rc < 0)
		return cannot(&p, "cannot read the mount table: %s", strerror(-rc));
	const char *inside = NULL;
	for (size_t i = 0; i < mounts.n && !inside; i++)
		if (path_within(mounts.v[i], real) && strcmp(mounts.v[i], real) != 0)
			inside = mounts.v[i];
	if (inside) {
		rc = cannot(&p, "'%s' is a mount point inside the stack directory: a snapshot would miss it",
			    inside);
		sb_strv_free(&mounts);
		return rc;
	}
	sb_strv_free(&mounts);

	cleanup_close int staging_fd = -1;
	rc = plan_staging(&p, name, staging, dir_fd, &staging_fd);
	if (rc < 0 || !plan->copy)
		return rc;

	if (btrfs && mode != SB_SNAPSHOT_MODE_REFLINK) {
		struct stat st;
		if (fstat(dir_fd, &st) < 0)
			return cannot(&p, "cannot stat '%s': %s", real, strerror(errno));
		if (st.st_ino == BTRFS_SUBVOL_ROOT_INO && !has_nested_subvolumes(dir_fd)) {
			plan->kind = SB_COW_SUBVOLUME;
			return 0;
		}
		plan->why = xstrdup(st.st_ino == BTRFS_SUBVOL_ROOT_INO
					    ? "it holds nested subvolumes, which a snapshot would leave empty: "
					      "a reflink copy instead"
					    : "it is not a subvolume: a reflink copy instead");
	}
	rc = probe_reflink(staging_fd);
	if (rc < 0)
		return cannot(&p, "'%s' is on %s, which cannot share file data (FICLONE: %s)", real, plan->fs,
			      strerror(-rc));
	plan->kind = SB_COW_REFLINK;
	return 0;
}

/* ---- the reflink copy ---- */

/* Hard links met so far: (device, inode) → the first copy's path below the root. */
struct link_entry {
	dev_t dev;
	ino_t ino;
	char *rel;
};

struct link_map {
	struct link_entry *v;
	size_t cap, n;
};

static size_t link_hash(dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15ULL ^ (uint64_t)dev;
	return (size_t)(h ^ (h >> 31));
}

static struct link_entry *link_slot(struct link_map *m, dev_t dev, ino_t ino)
{
	size_t i = link_hash(dev, ino) & (m->cap - 1);
	while (m->v[i].rel && !(m->v[i].dev == dev && m->v[i].ino == ino))
		i = (i + 1) & (m->cap - 1);
	return &m->v[i];
}

static const char *link_find(struct link_map *m, dev_t dev, ino_t ino)
{
	return m->cap ? link_slot(m, dev, ino)->rel : NULL;
}

static void link_add(struct link_map *m, dev_t dev, ino_t ino, const char *rel)
{
	if (2 * (m->n + 1) > m->cap) {
		struct link_map bigger = {.cap = m->cap ? 2 * m->cap : 64};
		bigger.v = xcalloc(bigger.cap, sizeof(*bigger.v));
		for (size_t i = 0; i < m->cap; i++)
			if (m->v[i].rel)
				*link_slot(&bigger, m->v[i].dev, m->v[i].ino) = m->v[i];
		bigger.n = m->n;
		free(m->v);
		*m = bigger;
	}
	*link_slot(m, dev, ino) = (struct link_entry){dev, ino, xstrdup(rel)};
	m->n++;
}

static void link_map_free(struct link_map *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->v[i].rel);
	free(m->v);
	*m = (struct link_map){0};
}

struct tree_copy {
	const char *src;        /* the source root, for messages */
	int dst_root;           /* the copy's root directory */
	const atomic_bool *cancel;
	struct link_map links;
	struct sb_buf rel;      /* the current entry's path below the root */
	char *err;
};

/* Records the first failure, naming the source entry. Returns -1. */
static int copy_fail(struct tree_copy *tc, const char *what, int e)
{
	if (!tc->err)
		tc->err = tc->rel.len ? xasprintf("cannot %s '%s/%s': %s", what, tc->src, tc->rel.data, strerror(e))
				      : xasprintf("cannot %s '%s': %s", what, tc->src, strerror(e));
	return -1;
}

/*
 * One end of an xattr copy: an open file, or (symlinks, device nodes,
 * fifos, which cannot be opened for this) a path not followed.
 */
struct xattr_end {
	int fd;
	const char *path;
};

static ssize_t x_list(const struct xattr_end *e, char *buf, size_t size)
{
	return e->fd >= 0 ? flistxattr(e->fd, buf, size) : llistxattr(e->path, buf, size);
}

static ssize_t x_get(const struct xattr_end *e, const char *name, void *buf, size_t size)
{
	return e->fd >= 0 ? fgetxattr(e->fd, name, buf, size) : lgetxattr(e->path, name, buf, size);
}

static int x_set(const struct xattr_end *e, const char *name, const void *value, size_t size)
{
	return e->fd >= 0 ? fsetxattr(e->fd, name, value, size, 0) : lsetxattr(e->path, name, value, size, 0);
}

static int copy_xattrs(struct tree_copy *tc, const struct xattr_end *from, const struct xattr_end *to)
{
	ssize_t len = x_list(from, NULL, 0);
	if (len < 0)
		return errno == ENOTSUP ? 0 : copy_fail(tc, "list the extended attributes of", errno);
	if (len == 0)
		return 0;
	cleanup_free char *names = xmalloc((size_t)len);
	len = x_list(from, names, (size_t)len);
	if (len < 0)
		return copy_fail(tc, "list the extended attributes of", errno);
	for (char *n = names; n < names + len; n += strlen(n) + 1) {
		ssize_t vlen = x_get(from, n, NULL, 0);
		if (vlen < 0)
			return copy_fail(tc, "read an extended attribute of", errno);
		cleanup_free char *value = xmalloc(vlen ? (size_t)vlen : 1);
		vlen = x_get(from, n, value, (size_t)vlen);
		if (vlen < 0)
			return copy_fail(tc, "read an extended attribute of", errno);
		if (x_set(to, n, value, (size_t)vlen) < 0) {
			cleanup_free char *what = xasprintf("copy the extended attribute %s of", n);
			return copy_fail(tc, what, errno);
		}
	}
	return 0;
}

/* Owner, xattrs, mode, times of an open copy (a file, or a directory after its entries). */
static int copy_meta_fd(struct tree_copy *tc, int src, int dst, const struct stat *st)
{
	if (fchown(dst, st->st_uid, st->st_gid) < 0)
		return copy_fail(tc, "set the owner of the copy of", errno);
	struct xattr_end from = {.fd = src}, to = {.fd = dst};
	if (copy_xattrs(tc, &from, &to) < 0)
		return -1;
	if (fchmod(dst, st->st_mode & 07777) < 0)
		return copy_fail(tc, "set the mode of the copy of", errno);
	const struct timespec times[2] = {st->st_atim, st->st_mtim};
	if (futimens(dst, times) < 0)
		return copy_fail(tc, "set the times of the copy of", errno);
	return 0;
}

/* The same for an entry that is not opened (symlink, device, fifo, socket). */
static int copy_meta_at(struct tree_copy *tc, int sfd, int dfd, const char *name, const struct stat *st)
{
	if (fchownat(dfd, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0)
		return copy_fail(tc, "set the owner of the copy of", errno);
	char src_path[64 + NAME_MAX], dst_path[64 + NAME_MAX];
	snprintf(src_path, sizeof(src_path), "/proc/self/fd/%d/%s", sfd, name);
	snprintf(dst_path, sizeof(dst_path), "/proc/self/fd/%d/%s", dfd, name);
	struct xattr_end from = {.fd = -1, .path = src_path}, to = {.fd = -1, .path = dst_path};
	if (copy_xattrs(tc, &from, &to) < 0)
		return -1;
	if (!S_ISLNK(st->st_mode) && fchmodat(dfd, name, st->st_mode & 07777, 0) < 0)
		return copy_fail(tc, "set the mode of the copy of", errno);
	const struct timespec times[2] = {st->st_atim, st->st_mtim};
	if (utimensat(dfd, name, times, AT_SYMLINK_NOFOLLOW) < 0)
		return copy_fail(tc, "set the times of the copy of", errno);
	return 0;
}

static int copy_file(struct tree_copy *tc, int sfd, int dfd, const char *name, const struct stat *st)
{
	cleanup_close int src = openat(sfd, name, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
	if (src < 0)
		return copy_fail(tc, "open", errno);
	cleanup_close int dst = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (dst < 0)
		return copy_fail(tc, "create the copy of", errno);
	/*
	 * A no-copy-on-write file (chattr +C, usual for databases on btrfs)
	 * clones only into another one, and only while the copy is empty.
	 */
	int flags = 0;
	if (ioctl(src, FS_IOC_GETFLAGS, &flags) == 0 && (flags & FS_NOCOW_FL)) {
		int nocow = FS_NOCOW_FL;
		if (ioctl(dst, FS_IOC_SETFLAGS, &nocow) < 0)
			return copy_fail(tc, "mark as no-copy-on-write the copy of", errno);
	}
	if (st->st_size > 0 && ioctl(dst, FICLONE, src) < 0)
		return copy_fail(tc, "clone (FICLONE)", errno);
	return copy_meta_fd(tc, src, dst, st);
}

static int copy_symlink(struct tree_copy *tc, int sfd, int dfd, const char *name, const struct stat *st)
{
	size_t size = st->st_size > 0 ? (size_t)st->st_size + 1 : PATH_MAX;
	for (;;) {
		cleanup_free char *target = xmalloc(size);
		ssize_t n = readlinkat(sfd, name, target, size);
		if (n < 0)
			return copy_fail(tc, "read the symlink", errno);
		if ((size_t)n >= size) {
			size *= 2;
			continue;
		}
		target[n] = '\0';
		if (symlinkat(target, dfd, name) < 0)
			return copy_fail(tc, "create the copy of", errno);
		return copy_meta_at(tc, sfd, dfd, name, st);
	}
}

static int copy_special(struct tree_copy *tc, int sfd, int dfd, const char *name, const struct stat *st)
{
	if (mknodat(dfd, name, (st->st_mode & S_IFMT) | 0600, st->st_rdev) < 0)
		return copy_fail(tc, "create the copy of", errno);
	return copy_meta_at(tc, sfd, dfd, name, st);
}

static int copy_entries(struct tree_copy *tc, int sfd, int dfd);

static int copy_dir(struct tree_copy *tc, int sfd, int dfd, const char *name, const struct stat *st)
{
	cleanup_close int src = openat(sfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (src < 0)
		return copy_fail(tc, "open the directory", errno);
	if (mkdirat(dfd, name, 0700) < 0)
		return copy_fail(tc, "create the copy of", errno);
	cleanup_close int dst = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dst < 0)
		return copy_fail(tc, "open the copy of", errno);
	if (copy_entries(tc, src, dst) < 0)
		return -1;
	return copy_meta_fd(tc, src, dst, st);
}

static int copy_entry(struct tree_copy *tc, int sfd, int dfd, const char *name)
{
	struct stat st;
	if (fstatat(sfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return copy_fail(tc, "stat", errno);
	bool linked = !S_ISDIR(st.st_mode) && st.st_nlink > 1;
	if (linked) {
		const char *first = link_find(&tc->links, st.st_dev, st.st_ino);
		if (first) {
			if (linkat(tc->dst_root, first, dfd, name, 0) < 0)
				return copy_fail(tc, "hard-link the copy of", errno);
			return 0;
		}
	}
	int rc;
	switch (st.st_mode & S_IFMT) {
	case S_IFDIR:
		rc = copy_dir(tc, sfd, dfd, name, &st);
		break;
	case S_IFREG:
		rc = copy_file(tc, sfd, dfd, name, &st);
		break;
	case S_IFLNK:
		rc = copy_symlink(tc, sfd, dfd, name, &st);
		break;
	default:
		rc = copy_special(tc, sfd, dfd, name, &st);
		break;
	}
	if (rc == 0 && linked)
		link_add(&tc->links, st.st_dev, st.st_ino, tc->rel.data);
	return rc;
}

static int copy_entries(struct tree_copy *tc, int sfd, int dfd)
{
	int fd = dup(sfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return copy_fail(tc, "read the directory", e);
	}
	int rc = 0;
	size_t base = tc->rel.len;
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (!de) {
			if (errno)
				rc = copy_fail(tc, "read the directory", errno);
			break;
		}
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (tc->cancel && atomic_load(tc->cancel)) {
			if (!tc->err)
				tc->err = xstrdup("cancelled");
			rc = -1;
			break;
		}
		if (base)
			sb_buf_puts(&tc->rel, "/");
		sb_buf_puts(&tc->rel, de->d_name);
		rc = copy_entry(tc, sfd, dfd, de->d_name);
		tc->rel.len = base;
		tc->rel.data[base] = '\0';
		if (rc < 0)
			break;
	}
	closedir(d);
	return rc;
}

int sb_cow_reflink_tree(const char *src, const char *dst, const atomic_bool *cancel, char **err)
{
	struct tree_copy tc = {.src = src, .dst_root = -1, .cancel = cancel};
	sb_buf_puts(&tc.rel, "");
	cleanup_close int sfd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct stat st;
	int rc = -1;
	if (sfd < 0 || fstat(sfd, &st) < 0)
		copy_fail(&tc, "open", errno);
	else if (mkdir(dst, 0700) < 0)
		*err = xasprintf("cannot create '%s': %s", dst, strerror(errno));
	else if ((tc.dst_root = open(dst, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		*err = xasprintf("cannot open '%s': %s", dst, strerror(errno));
	else if (copy_entries(&tc, sfd, tc.dst_root) == 0 && copy_meta_fd(&tc, sfd, tc.dst_root, &st) == 0)
		rc = 0;
	if (tc.err)
		*err = tc.err;
	if (tc.dst_root >= 0)
		close(tc.dst_root);
	link_map_free(&tc.links);
	sb_buf_free(&tc.rel);
	return rc;
}

/* ---- taking and removing copies ---- */

/* Splits path into its parent directory (opened) and last component. */
static int open_parent(const char *path, char **base)
{
	cleanup_free char *dir = xstrdup(path);
	char *slash = strrchr(dir, '/');
	if (!slash || !slash[1]) {
		errno = EINVAL;
		return -1;
	}
	*base = xstrdup(slash + 1);
	if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		free(*base);
		*base = NULL;
		errno = e;
	}
	return fd;
}

static int take_subvolume(const struct sb_cow_plan *plan, const char *dir, char **err)
{
	cleanup_close int src = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (src < 0) {
		*err = xasprintf("cannot open '%s': %s", dir, strerror(errno));
		return -1;
	}
	cleanup_free char *name = NULL;
	cleanup_close int parent = open_parent(plan->copy, &name);
	if (parent < 0) {
		*err = xasprintf("cannot open the staging area of '%s': %s", plan->copy, strerror(errno));
		return -1;
	}
	struct btrfs_ioctl_vol_args_v2 args = {.fd = src, .flags = BTRFS_SUBVOL_RDONLY};
	if (strlen(name) >= sizeof(args.name)) {
		*err = xasprintf("cannot snapshot '%s': the name '%s' is too long", dir, name);
		return -1;
	}
	strcpy(args.name, name);
	if (ioctl(parent, BTRFS_IOC_SNAP_CREATE_V2, &args) < 0) {
		*err = xasprintf("cannot snapshot the subvolume '%s' to '%s': %s", dir, plan->copy, strerror(errno));
		return -1;
	}
	return 0;
}

int sb_cow_take(const struct sb_cow_plan *plan, const char *dir, const atomic_bool *cancel, char **err)
{
	switch (plan->kind) {
	case SB_COW_SUBVOLUME:
		return take_subvolume(plan, dir, err);
	case SB_COW_REFLINK:
		return sb_cow_reflink_tree(dir, plan->copy, cancel, err);
	case SB_COW_NONE:
		break;
	}
	*err = xstrdup("no copy was planned");
	return -1;
}

/* The default staging directory is ours: it goes once its last copy has. */
static void remove_empty_staging(const char *copy)
{
	cleanup_free char *dir = xstrdup(copy);
	char *slash = strrchr(dir, '/');
	if (!slash)
		return;
	*slash = '\0';
	const char *base = strrchr(dir, '/');
	if (base && strcmp(base + 1, SB_COW_STAGING_NAME) == 0)
		rmdir(dir);
}

void sb_cow_tidy(const struct sb_cow_plan *plan)
{
	if (plan->copy)
		remove_empty_staging(plan->copy);
}

int sb_cow_remove(const char *path, char **err)
{
	struct stat st;
	if (lstat(path, &st) < 0) {
		if (errno == ENOENT) {
			remove_empty_staging(path);
			return 0;
		}
		*err = xasprintf("cannot remove '%s': %s", path, strerror(errno));
		return -1;
	}
	if (S_ISDIR(st.st_mode) && st.st_ino == BTRFS_SUBVOL_ROOT_INO) {
		cleanup_close int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0 && is_btrfs_fd(fd)) {
			cleanup_free char *name = NULL;
			cleanup_close int parent = open_parent(path, &name);
			struct btrfs_ioctl_vol_args args = {0};
			if (parent < 0 || strlen(name) >= sizeof(args.name)) {
				*err = xasprintf("cannot delete the subvolume '%s': %s", path,
						 parent < 0 ? strerror(errno) : "name too long");
				return -1;
			}
			strcpy(args.name, name);
			if (ioctl(parent, BTRFS_IOC_SNAP_DESTROY, &args) < 0) {
				*err = xasprintf("cannot delete the subvolume '%s': %s", path, strerror(errno));
				return -1;
			}
			remove_empty_staging(path);
			return 0;
		}
	}
	int rc = sb_rm_rf(path);
	if (rc < 0) {
		*err = xasprintf("cannot remove '%s': %s", path, strerror(-rc));
		return -1;
	}
	remove_empty_staging(path);
	return 0;
}
