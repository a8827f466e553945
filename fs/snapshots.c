/*
 * snapshots/ and cloud/snapshots/: the read-only snapshot trees, served
 * from the core's snapshot views (core/snapview.c) by a wrapper around
 * the control filesystem's operations (sbfs_ops): paths below those two
 * directories are answered here, every other path is passed on.
 *
 *   snapshots/NAME/                       one per stack (selection or snapshots)
 *   snapshots/NAME/latest                 symlink to the newest snapshot
 *   snapshots/NAME/YYYY-MM-DDTHH:MM:SS_ID/  the stack directory as it was
 *   cloud/snapshots/NAME/...              the same for the copy Stage 3 restored
 *
 * Nothing here runs restic: trees and lists come from the views' threads
 * (a request waits for them, SBFS_SNAP_WAIT at most, then EIO), contents
 * from the content cache (a read waits for its range; a failed or stalled
 * fetch is EIO). Every change is EROFS.
 *
 * Try it:
 *   $ ls /mnt/stackback/snapshots/web/
 *   2024-05-01T02:00:07_1a2b3c4d  2024-05-02T02:00:05_5e6f7a8b  latest
 *   $ cat /mnt/stackback/snapshots/web/latest/compose.yaml
 *   $ touch /mnt/stackback/snapshots/web/latest/x
 *   touch: cannot touch '...': Read-only file system
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sbfs.h"
#include "stackback/cloud.h"
#include "stackback/log.h"
#include "stackback/snapcache.h"
#include "stackback/snapview.h"

/* How long a request waits for a snapshot list or tree before EIO, seconds. */
#define SBFS_SNAP_WAIT 120.0
/* How often the location of the cloud copy (cloud.json) is read again, seconds. */
#define SBFS_CLOUD_RECHECK 1.0

struct sbfs_snap {
	struct sb_snapcache *content;
	struct sb_snapview *local;

	pthread_mutex_t cloud_mu;        /* protects the fields below */
	struct sb_snapview *cloud;       /* NULL while nothing was restored */
	char *cloud_repo;
	double cloud_checked;
	struct sb_snapview **retired;    /* views of earlier restores: freed at stop */
	size_t n_retired;
};

static struct sbfs *this_fs(void)
{
	return fuse_get_context()->private_data;
}

/* ---- paths ---- */

enum snap_level {
	LEVEL_TOP,      /* snapshots/ itself */
	LEVEL_STACK,    /* snapshots/NAME */
	LEVEL_SNAP,     /* snapshots/NAME/SNAPSHOT or .../latest */
	LEVEL_TREE,     /* below a snapshot */
};

/* A path below snapshots/, resolved as far as its level needs. */
struct snap_path {
	bool cloud;
	struct sb_snapview *view;    /* NULL: cloud/snapshots/ with nothing restored */
	enum snap_level level;
	char stack[SB_STACK_NAME_MAX + 1];
	bool latest;
	struct sb_snapview_snap snap;
	struct sb_snaptree *tree;    /* LEVEL_TREE and (after snap_open_tree) LEVEL_SNAP */
	sb_snode_id node;
};

/* "/snapshots..." or "/cloud/snapshots...": the rest after the prefix, else NULL. */
static const char *snap_rest(const char *path, bool *cloud)
{
	static const char local_prefix[] = "/snapshots", cloud_prefix[] = "/cloud/snapshots";
	const char *rest = NULL;
	if (sb_str_has_prefix(path, local_prefix)) {
		rest = path + strlen(local_prefix);
		*cloud = false;
	} else if (sb_str_has_prefix(path, cloud_prefix)) {
		rest = path + strlen(cloud_prefix);
		*cloud = true;
	}
	if (rest && *rest && *rest != '/')
		return NULL;
	return rest;
}

static bool is_snap_path(const char *path)
{
	bool cloud;
	return path && snap_rest(path, &cloud) != NULL;
}

static struct sb_snapview *cloud_view(struct sbfs *fs)
{
	struct sbfs_snap *s = fs->snap;
	pthread_mutex_lock(&s->cloud_mu);
	double now = sb_now_monotonic();
	if (now - s->cloud_checked >= SBFS_CLOUD_RECHECK) {
		s->cloud_checked = now;
		cleanup_free char *repo = sb_cloud_restored_repository(&fs->cfg);
		bool same = (!repo && !s->cloud_repo) || (repo && s->cloud_repo && strcmp(repo, s->cloud_repo) == 0);
		if (!same) {
			/* Requests may still use the old view: it lives until the daemon stops. */
			if (s->cloud) {
				s->retired = xrealloc(s->retired, (s->n_retired + 1) * sizeof(*s->retired));
				s->retired[s->n_retired++] = s->cloud;
			}
			s->cloud = NULL;
			free(s->cloud_repo);
			s->cloud_repo = NULL;
			if (repo) {
				struct sb_snapview_opts o = {.cfg = &fs->cfg, .repository = repo, .label = "cloud",
							     .content = s->content};
				cleanup_free char *err = NULL;
				s->cloud = sb_snapview_new(&o, &err);
				if (s->cloud)
					s->cloud_repo = xstrdup(repo);
				else
					sb_error("cannot browse the repository restored from the cloud: %s", err);
			}
		}
	}
	struct sb_snapview *v = s->cloud;
	pthread_mutex_unlock(&s->cloud_mu);
	return v;
}

static bool selection_has(struct sbfs *fs, const char *name)
{
	struct sbfs_sel *sel = sbfs_sel_get(fs);
	bool found = sb_selection_find(&sel->sel, name) != NULL && name[0] != '/';
	sbfs_sel_put(fs, sel);
	return found;
}

static bool view_has_stack(struct sb_snapview *v, const char *name)
{
	struct sb_strv stacks = {0};
	cleanup_free char *err = NULL;
	bool found = v && sb_snapview_stacks(v, SBFS_SNAP_WAIT, &stacks, &err) == 0 &&
		     sb_strv_contains(&stacks, name);
	sb_strv_free(&stacks);
	return found;
}

static void snap_path_done(struct snap_path *p)
{
	sb_snaptree_unref(p->tree);
	p->tree = NULL;
}

/* Loads the tree of p's snapshot (LEVEL_SNAP). Returns 0 or -EIO (logged by the view). */
static int snap_open_tree(struct snap_path *p)
{
	if (p->tree)
		return 0;
	cleanup_free char *err = NULL;
	int rc = sb_snapview_tree(p->view, &p->snap, SBFS_SNAP_WAIT, &p->tree, &err);
	if (rc < 0)
		return rc == -ENOENT ? -ENOENT : -EIO;
	p->node = SB_SNODE_ROOT;
	return 0;
}

/*
 * Resolves a snapshot path. Directories above the trees never load a
 * tree, so listing snapshots/NAME/ costs no restic run per snapshot.
 * Returns 0, -ENOENT, -ENOTDIR or -EIO; snap_path_done() after 0.
 */
static int snap_resolve(struct sbfs *fs, const char *path, struct snap_path *p)
{
	*p = (struct snap_path){0};
	const char *rest = snap_rest(path, &p->cloud);
	/* Without a repository to browse (sbfs_snap_start failed) the directories stay empty. */
	if (fs->snap)
		p->view = p->cloud ? cloud_view(fs) : fs->snap->local;
	while (*rest == '/')
		rest++;
	if (!*rest) {
		p->level = LEVEL_TOP;
		return 0;
	}
	const char *end = strchrnul(rest, '/');
	size_t len = (size_t)(end - rest);
	if (len > SB_STACK_NAME_MAX)
		return -ENOENT;
	memcpy(p->stack, rest, len);
	p->stack[len] = '\0';
	if (!sb_stack_name_valid(p->stack))
		return -ENOENT;
	rest = end;
	while (*rest == '/')
		rest++;
	if (!*rest) {
		/* Every stack of the selection has a directory (stacks/NAME/snapshots points here). */
		if (!((!p->cloud && selection_has(fs, p->stack)) || view_has_stack(p->view, p->stack)))
			return -ENOENT;
		p->level = LEVEL_STACK;
		return 0;
	}
	/* Deeper, the snapshot's resolution below says whether the stack has it. */
	if (!p->view)
		return -ENOENT;
	end = strchrnul(rest, '/');
	len = (size_t)(end - rest);
	char name[64];
	if (len >= sizeof(name))
		return -ENOENT;
	memcpy(name, rest, len);
	name[len] = '\0';
	p->latest = strcmp(name, "latest") == 0;
	/* Only the names the directory lists: "latest" and the snapshot directory names. */
	if (!p->latest && !strchr(name, '_'))
		return -ENOENT;
	cleanup_free char *err = NULL;
	int rc = sb_snapview_resolve(p->view, p->stack, name, SBFS_SNAP_WAIT, &p->snap, &err);
	if (rc < 0)
		return rc == -ENOENT ? -ENOENT : -EIO;
	if (!p->latest && strcmp(p->snap.name, name) != 0)
		return -ENOENT;
	rest = end;
	while (*rest == '/')
		rest++;
	if (!*rest) {
		p->level = LEVEL_SNAP;
		return 0;
	}
	if (p->latest)
		return -ENOTDIR;  /* latest is a symlink: the kernel follows it itself */
	rc = snap_open_tree(p);
	if (rc < 0)
		return rc;
	p->level = LEVEL_TREE;
	rc = sb_snaptree_lookup(p->tree, rest, &p->node);
	if (rc < 0) {
		snap_path_done(p);
		return rc == -EINVAL ? -ENOENT : rc;
	}
	return 0;
}

/* ---- attributes ---- */

static void dir_stat(struct sbfs *fs, struct stat *st, time_t mtime)
{
	memset(st, 0, sizeof(*st));
	st->st_mode = S_IFDIR | 0555;
	st->st_nlink = 2;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_mtim.tv_sec = mtime;
	st->st_atim = st->st_ctim = st->st_mtim;
	st->st_blksize = 4096;
}

/*
 * A tree node's attributes. Run as root, they are the snapshot's own
 * (root reads everything; with allow_other, others get the real
 * permissions). Run as a user, the owner is that user and can read
 * everything, so nothing in a snapshot answers EACCES to its owner.
 */
static void tree_stat(struct sbfs *fs, const struct snap_path *p, sb_snode_id id, struct stat *st)
{
	sb_snaptree_stat(p->tree, id, st);
	if (fs->uid != 0) {
		st->st_uid = fs->uid;
		st->st_gid = fs->gid;
		st->st_mode |= S_ISDIR(st->st_mode) ? 0500 : 0400;
	}
}

static void latest_stat(struct sbfs *fs, const struct snap_path *p, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_mode = S_IFLNK | 0777;
	st->st_nlink = 1;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_size = (off_t)strlen(p->snap.name);
	st->st_mtim.tv_sec = p->snap.time;
	st->st_atim = st->st_ctim = st->st_mtim;
}

static int snap_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	struct sbfs *fs = this_fs();
	struct snap_path p;
	int rc = snap_resolve(fs, path, &p);
	if (rc < 0)
		return rc;
	switch (p.level) {
	case LEVEL_TOP:
	case LEVEL_STACK:
		dir_stat(fs, st, fs->started.tv_sec);
		break;
	case LEVEL_SNAP:
		if (p.latest)
			latest_stat(fs, &p, st);
		else
			dir_stat(fs, st, p.snap.time);
		break;
	case LEVEL_TREE:
		tree_stat(fs, &p, p.node, st);
		break;
	}
	snap_path_done(&p);
	return 0;
}

static int snap_readlink(const char *path, char *buf, size_t size)
{
	struct sbfs *fs = this_fs();
	struct snap_path p;
	int rc = snap_resolve(fs, path, &p);
	if (rc < 0)
		return rc;
	const char *target = NULL;
	if (p.level == LEVEL_SNAP && p.latest) {
		target = p.snap.name;
	} else if (p.level == LEVEL_TREE && S_ISLNK(sb_snaptree_mode(p.tree, p.node))) {
		target = sb_snaptree_link(p.tree, p.node);
		if (!target) {
			sb_error("%s: restic gave no target for this symlink", path);
			rc = -EIO;
		}
	} else {
		rc = -EINVAL;
	}
	if (target && size > 0)
		snprintf(buf, size, "%s", target);
	snap_path_done(&p);
	return rc;
}

/* ---- directories ---- */

/* An open directory: a tree directory served by offset, or a small listing made at opendir. */
struct snap_dir {
	struct snap_path p;           /* LEVEL_TREE (or LEVEL_SNAP with its tree): served from it */
	struct sb_strv names;         /* the levels above: names made at opendir */
	bool names_are_dirs;          /* snapshots/ lists stacks, NAME/ lists snapshots and latest */
	struct sb_snapview_snap *snaps;
	size_t n_snaps;
	bool has_latest;
	struct sb_snapview_snap latest;
};

static void add_stack_names(struct sbfs *fs, struct snap_path *p, struct sb_strv *names)
{
	if (!p->cloud) {
		struct sbfs_sel *sel = sbfs_sel_get(fs);
		for (size_t i = 0; i < sel->sel.n; i++) {
			const char *n = sel->sel.stacks[i].name;
			if (sb_stack_name_valid(n) && !sb_strv_contains(names, n))
				sb_strv_push(names, n);
		}
		sbfs_sel_put(fs, sel);
	}
	struct sb_strv stacks = {0};
	cleanup_free char *err = NULL;
	if (p->view && sb_snapview_stacks(p->view, SBFS_SNAP_WAIT, &stacks, &err) == 0) {
		for (size_t i = 0; i < stacks.n; i++)
			if (!sb_strv_contains(names, stacks.v[i]))
				sb_strv_push(names, stacks.v[i]);
	}
	sb_strv_free(&stacks);
}

static int snap_opendir(const char *path, struct fuse_file_info *fi)
{
	struct sbfs *fs = this_fs();
	struct snap_dir *d = xcalloc(1, sizeof(*d));
	int rc = snap_resolve(fs, path, &d->p);
	if (rc == 0) {
		cleanup_free char *err = NULL;
		switch (d->p.level) {
		case LEVEL_TOP:
			add_stack_names(fs, &d->p, &d->names);
			break;
		case LEVEL_STACK:
			if (d->p.view &&
			    sb_snapview_list(d->p.view, d->p.stack, SBFS_SNAP_WAIT, &d->snaps, &d->n_snaps, &err) < 0)
				rc = -EIO;
			if (rc == 0 && d->n_snaps) {
				d->has_latest = true;
				d->latest = d->snaps[d->n_snaps - 1];
			}
			break;
		case LEVEL_SNAP:
			rc = d->p.latest ? -ENOTDIR : snap_open_tree(&d->p);
			break;
		case LEVEL_TREE:
			if (!S_ISDIR(sb_snaptree_mode(d->p.tree, d->p.node)))
				rc = -ENOTDIR;
			break;
		}
	}
	if (rc < 0) {
		snap_path_done(&d->p);
		sb_strv_free(&d->names);
		free(d->snaps);
		free(d);
		return rc;
	}
	fi->fh = (uintptr_t)d;
	/* A snapshot's directories never change: the kernel may keep their listings. */
	fi->cache_readdir = d->p.tree != NULL;
	fi->keep_cache = d->p.tree != NULL;
	return 0;
}

/*
 * Offsets are real and non-zero ("." is 1, ".." 2, entry i is i + 3):
 * with FUSE_FILL_DIR_PLUS that is what makes libfuse keep the
 * attributes, so `du` needs no lookup per file.
 */
static int snap_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t offset,
			struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	struct sbfs *fs = this_fs();
	struct snap_dir *d = (struct snap_dir *)(uintptr_t)fi->fh;
	struct stat st;
	if (offset < 1) {
		dir_stat(fs, &st, 0);
		if (filler(buf, ".", &st, 1, 0))
			return 0;
	}
	if (offset < 2) {
		dir_stat(fs, &st, 0);
		if (filler(buf, "..", &st, 2, 0))
			return 0;
	}
	uint64_t first = offset > 2 ? (uint64_t)offset - 2 : 0;
	if (d->p.tree) {
		uint32_t n = sb_snaptree_nchildren(d->p.tree, d->p.node);
		for (uint64_t i = first; i < n; i++) {
			sb_snode_id c = sb_snaptree_child_at(d->p.tree, d->p.node, (uint32_t)i);
			tree_stat(fs, &d->p, c, &st);
			if (filler(buf, sb_snaptree_name(d->p.tree, c), &st, (off_t)(i + 3), FUSE_FILL_DIR_PLUS))
				break;
		}
	} else if (d->p.level == LEVEL_TOP) {
		for (uint64_t i = first; i < d->names.n; i++) {
			dir_stat(fs, &st, fs->started.tv_sec);
			if (filler(buf, d->names.v[i], &st, (off_t)(i + 3), FUSE_FILL_DIR_PLUS))
				break;
		}
	} else {
		/* The snapshots oldest first, then latest. */
		uint64_t n = d->n_snaps + (d->has_latest ? 1 : 0);
		for (uint64_t i = first; i < n; i++) {
			const char *name;
			if (i < d->n_snaps) {
				dir_stat(fs, &st, d->snaps[i].time);
				name = d->snaps[i].name;
			} else {
				struct snap_path lp = {.snap = d->latest};
				latest_stat(fs, &lp, &st);
				name = "latest";
			}
			if (filler(buf, name, &st, (off_t)(i + 3), FUSE_FILL_DIR_PLUS))
				break;
		}
	}
	return 0;
}

static int snap_releasedir(const char *path, struct fuse_file_info *fi)
{
	struct snap_dir *d = (struct snap_dir *)(uintptr_t)fi->fh;
	snap_path_done(&d->p);
	sb_strv_free(&d->names);
	free(d->snaps);
	free(d);
	return 0;
}

/* ---- files ---- */

static int snap_open(const char *path, struct fuse_file_info *fi)
{
	struct sbfs *fs = this_fs();
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC))
		return -EROFS;
	struct snap_path p;
	int rc = snap_resolve(fs, path, &p);
	if (rc < 0)
		return rc;
	struct sb_snapfile *f = NULL;
	if (p.level != LEVEL_TREE)
		rc = -EISDIR;
	else
		rc = sb_snapview_open(p.view, &p.snap, p.tree, p.node, &f);
	snap_path_done(&p);
	if (rc < 0)
		return rc == -EINVAL ? -EACCES : rc;
	/* f is NULL for an empty file: every read is then at its end. */
	fi->fh = (uintptr_t)f;
	/* Snapshot files never change: the page cache may keep them across opens. */
	fi->keep_cache = 1;
	return 0;
}

static int snap_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct sb_snapfile *f = (struct sb_snapfile *)(uintptr_t)fi->fh;
	if (!f || off < 0)
		return 0;
	return (int)sb_snapfile_read(f, buf, size, (uint64_t)off);
}

static int snap_release(const char *path, struct fuse_file_info *fi)
{
	sb_snapfile_close((struct sb_snapfile *)(uintptr_t)fi->fh);
	return 0;
}

/* ---- the wrapper: snapshot paths here, the rest to the base operations ---- */

/* The control filesystem's operations (sbfs_ops); set once by sbfs_snap_wrap() before mounting. */
static const struct fuse_operations *base;

static int refuse(const char *what, const char *path)
{
	sb_debug("%s %s refused: snapshots are read-only", what, path);
	return -EROFS;
}

static int w_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	return is_snap_path(path) ? snap_getattr(path, st, fi) : base->getattr(path, st, fi);
}

static int w_readlink(const char *path, char *buf, size_t size)
{
	return is_snap_path(path) ? snap_readlink(path, buf, size) : base->readlink(path, buf, size);
}

static int w_opendir(const char *path, struct fuse_file_info *fi)
{
	return is_snap_path(path) ? snap_opendir(path, fi) : base->opendir(path, fi);
}

static int w_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t offset,
		     struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	return is_snap_path(path) ? snap_readdir(path, buf, filler, offset, fi, flags)
				  : base->readdir(path, buf, filler, offset, fi, flags);
}

static int w_releasedir(const char *path, struct fuse_file_info *fi)
{
	return is_snap_path(path) ? snap_releasedir(path, fi) : base->releasedir(path, fi);
}

static int w_open(const char *path, struct fuse_file_info *fi)
{
	return is_snap_path(path) ? snap_open(path, fi) : base->open(path, fi);
}

static int w_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	return is_snap_path(path) ? snap_read(path, buf, size, off, fi) : base->read(path, buf, size, off, fi);
}

static int w_release(const char *path, struct fuse_file_info *fi)
{
	return is_snap_path(path) ? snap_release(path, fi) : base->release(path, fi);
}

/*
 * Each modifying operation: EROFS below snapshots/, else the base's (or
 * ENOSYS, what libfuse answers when an operation is missing).
 */
#define BASE_OR_ENOSYS(op, ...) (base->op ? base->op(__VA_ARGS__) : -ENOSYS)

static int w_write(const char *path, const char *data, size_t size, off_t off, struct fuse_file_info *fi)
{
	return is_snap_path(path) ? refuse("writing", path) : BASE_OR_ENOSYS(write, path, data, size, off, fi);
}

static int w_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	return is_snap_path(path) ? refuse("truncating", path) : BASE_OR_ENOSYS(truncate, path, size, fi);
}

static int w_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	return is_snap_path(path) ? refuse("creating", path) : BASE_OR_ENOSYS(create, path, mode, fi);
}

static int w_mknod(const char *path, mode_t mode, dev_t rdev)
{
	return is_snap_path(path) ? refuse("creating", path) : BASE_OR_ENOSYS(mknod, path, mode, rdev);
}

static int w_mkdir(const char *path, mode_t mode)
{
	return is_snap_path(path) ? refuse("mkdir", path) : BASE_OR_ENOSYS(mkdir, path, mode);
}

static int w_rmdir(const char *path)
{
	return is_snap_path(path) ? refuse("rmdir", path) : BASE_OR_ENOSYS(rmdir, path);
}

static int w_unlink(const char *path)
{
	return is_snap_path(path) ? refuse("removing", path) : BASE_OR_ENOSYS(unlink, path);
}

static int w_rename(const char *from, const char *to, unsigned int flags)
{
	if (is_snap_path(from) || is_snap_path(to))
		return refuse("renaming", is_snap_path(from) ? from : to);
	return BASE_OR_ENOSYS(rename, from, to, flags);
}

static int w_symlink(const char *target, const char *path)
{
	return is_snap_path(path) ? refuse("creating a link at", path) : BASE_OR_ENOSYS(symlink, target, path);
}

static int w_link(const char *from, const char *to)
{
	if (is_snap_path(from) || is_snap_path(to))
		return refuse("creating a link at", to);
	return BASE_OR_ENOSYS(link, from, to);
}

static int w_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	return is_snap_path(path) ? refuse("chmod", path) : BASE_OR_ENOSYS(chmod, path, mode, fi);
}

static int w_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	return is_snap_path(path) ? refuse("chown", path) : BASE_OR_ENOSYS(chown, path, uid, gid, fi);
}

static int w_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	return is_snap_path(path) ? refuse("touching", path) : BASE_OR_ENOSYS(utimens, path, tv, fi);
}

static int w_setxattr(const char *path, const char *name, const char *value, size_t size, int flags)
{
	return is_snap_path(path) ? refuse("setting an attribute of", path)
				  : BASE_OR_ENOSYS(setxattr, path, name, value, size, flags);
}

static int w_removexattr(const char *path, const char *name)
{
	return is_snap_path(path) ? refuse("removing an attribute of", path)
				  : BASE_OR_ENOSYS(removexattr, path, name);
}

static int w_fallocate(const char *path, int mode, off_t off, off_t len, struct fuse_file_info *fi)
{
	return is_snap_path(path) ? refuse("allocating in", path) : BASE_OR_ENOSYS(fallocate, path, mode, off, len, fi);
}

static int w_poll(const char *path, struct fuse_file_info *fi, struct fuse_pollhandle *ph,
		  unsigned *reventsp)
{
	if (is_snap_path(path)) {
		/* Snapshot files are always readable; a read waits for its bytes. */
		*reventsp = POLLIN | POLLRDNORM;
		if (ph)
			fuse_pollhandle_destroy(ph);
		return 0;
	}
	return base->poll(path, fi, ph, reventsp);
}

static int w_flush(const char *path, struct fuse_file_info *fi)
{
	return is_snap_path(path) ? 0 : base->flush(path, fi);
}

static int w_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	return is_snap_path(path) ? 0 : base->fsync(path, datasync, fi);
}

static int w_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi)
{
	return is_snap_path(path) ? 0 : base->fsyncdir(path, datasync, fi);
}

static int w_lock(const char *path, struct fuse_file_info *fi, int cmd, struct flock *l)
{
	return is_snap_path(path) ? -ENOSYS : base->lock(path, fi, cmd, l);
}

static int w_flock(const char *path, struct fuse_file_info *fi, int op)
{
	return is_snap_path(path) ? -ENOSYS : base->flock(path, fi, op);
}

static int w_ioctl(const char *path, int cmd, void *arg, struct fuse_file_info *fi,
		   unsigned int flags, void *data)
{
	return is_snap_path(path) ? -ENOTTY : base->ioctl(path, cmd, arg, fi, flags, data);
}

static off_t w_lseek(const char *path, off_t off, int whence, struct fuse_file_info *fi)
{
	return is_snap_path(path) ? -ENOSYS : base->lseek(path, off, whence, fi);
}

static int w_read_buf(const char *path, struct fuse_bufvec **bufp, size_t size, off_t off,
		      struct fuse_file_info *fi)
{
	if (!is_snap_path(path))
		return base->read_buf(path, bufp, size, off, fi);
	struct fuse_bufvec *bv = xmalloc(sizeof(*bv));
	*bv = FUSE_BUFVEC_INIT(size);
	bv->buf[0].mem = xmalloc(size ? size : 1);
	int n = snap_read(path, bv->buf[0].mem, size, off, fi);
	if (n < 0) {
		free(bv->buf[0].mem);
		free(bv);
		return n;
	}
	bv->buf[0].size = (size_t)n;
	*bufp = bv;
	return 0;
}

static int w_write_buf(const char *path, struct fuse_bufvec *buf, off_t off, struct fuse_file_info *fi)
{
	return is_snap_path(path) ? refuse("writing", path) : base->write_buf(path, buf, off, fi);
}

static ssize_t w_copy_file_range(const char *in, struct fuse_file_info *fi_in, off_t off_in,
				 const char *out, struct fuse_file_info *fi_out, off_t off_out,
				 size_t len, int flags)
{
	if (is_snap_path(out))
		return refuse("copying into", out);
	/* The base would take a snapshot file's handle for its own: let the kernel copy by reads. */
	if (is_snap_path(in))
		return -EOPNOTSUPP;
	return base->copy_file_range(in, fi_in, off_in, out, fi_out, off_out, len, flags);
}

static void *w_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	void *data = base->init ? base->init(conn, cfg) : fuse_get_context()->private_data;
	/* Snapshot files are read in big pieces: let the kernel read ahead. */
	if (conn->max_readahead < (1u << 20))
		conn->max_readahead = 1u << 20;
	/*
	 * With attribute timeouts of 0, "auto_inval_data" makes the kernel ask
	 * for the attributes before every read, even of cached pages. Nothing
	 * needs it: snapshot files never change (keep_cache), control files
	 * bypass the page cache (direct_io) or never change (README).
	 */
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	return data;
}

void sbfs_snap_wrap(const struct fuse_operations *ops, struct fuse_operations *out)
{
	base = ops;
	*out = *ops;
	out->init = w_init;
	out->getattr = w_getattr;
	out->readlink = w_readlink;
	out->opendir = w_opendir;
	out->readdir = w_readdir;
	out->releasedir = w_releasedir;
	out->open = w_open;
	out->read = w_read;
	out->release = w_release;
	out->write = w_write;
	out->truncate = w_truncate;
	out->create = w_create;
	out->mknod = w_mknod;
	out->mkdir = w_mkdir;
	out->rmdir = w_rmdir;
	out->unlink = w_unlink;
	out->rename = w_rename;
	out->symlink = w_symlink;
	out->link = w_link;
	out->chmod = w_chmod;
	out->chown = w_chown;
	out->utimens = w_utimens;
	out->setxattr = w_setxattr;
	out->removexattr = w_removexattr;
	out->fallocate = w_fallocate;
	if (ops->poll)
		out->poll = w_poll;
	/* What the base may add later must never see a snapshot file's handle. */
	if (ops->flush)
		out->flush = w_flush;
	if (ops->fsync)
		out->fsync = w_fsync;
	if (ops->fsyncdir)
		out->fsyncdir = w_fsyncdir;
	if (ops->lock)
		out->lock = w_lock;
	if (ops->flock)
		out->flock = w_flock;
	if (ops->ioctl)
		out->ioctl = w_ioctl;
	if (ops->lseek)
		out->lseek = w_lseek;
	if (ops->read_buf)
		out->read_buf = w_read_buf;
	if (ops->write_buf)
		out->write_buf = w_write_buf;
	if (ops->copy_file_range)
		out->copy_file_range = w_copy_file_range;
}

/* ---- life cycle ---- */

int sbfs_snap_start(struct sbfs *fs, char **err)
{
	struct sbfs_snap *s = xcalloc(1, sizeof(*s));
	pthread_mutex_init(&s->cloud_mu, NULL);
	s->cloud_checked = -SBFS_CLOUD_RECHECK;
	cleanup_free char *dir = xasprintf("%s/cache/content", fs->cfg.state_dir);
	long mb = fs->cfg.content_cache_mb > 0 ? fs->cfg.content_cache_mb : 1;
	s->content = sb_snapcache_new(dir, (uint64_t)mb << 20, err);
	if (!s->content) {
		free(s);
		return -1;
	}
	struct sb_snapview_opts o = {.cfg = &fs->cfg, .label = "local", .content = s->content, .prefetch = true};
	s->local = sb_snapview_new(&o, err);
	if (!s->local) {
		sb_snapcache_free(s->content);
		free(s);
		return -1;
	}
	fs->snap = s;
	return 0;
}

void sbfs_snap_invalidate(struct sbfs *fs)
{
	struct sbfs_snap *s = fs->snap;
	if (!s)
		return;
	sb_snapview_invalidate(s->local);
	pthread_mutex_lock(&s->cloud_mu);
	/* A restore job may have replaced the cloud copy: look again at the next request. */
	s->cloud_checked = -SBFS_CLOUD_RECHECK;
	if (s->cloud)
		sb_snapview_invalidate(s->cloud);
	pthread_mutex_unlock(&s->cloud_mu);
}

void sbfs_snap_status(struct sbfs *fs, struct json_object *o)
{
	struct sbfs_snap *s = fs->snap;
	if (!s)
		return;
	char buf[64];
	struct json_object *snap = json_object_new_object();
	sb_snapview_backend(s->local, buf, sizeof(buf));
	json_object_object_add(snap, "local", json_object_new_string(buf));
	pthread_mutex_lock(&s->cloud_mu);
	if (s->cloud) {
		sb_snapview_backend(s->cloud, buf, sizeof(buf));
		json_object_object_add(snap, "cloud", json_object_new_string(buf));
	}
	pthread_mutex_unlock(&s->cloud_mu);
	json_object_object_add(o, "snapshots", snap);
}

void sbfs_snap_stop(struct sbfs *fs)
{
	struct sbfs_snap *s = fs->snap;
	if (!s)
		return;
	fs->snap = NULL;
	sb_snapview_free(s->local);
	sb_snapview_free(s->cloud);
	for (size_t i = 0; i < s->n_retired; i++)
		sb_snapview_free(s->retired[i]);
	free(s->retired);
	free(s->cloud_repo);
	sb_snapcache_free(s->content);
	pthread_mutex_destroy(&s->cloud_mu);
	free(s);
}
