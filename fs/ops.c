/*
 * The FUSE operations: each resolves its path through the node table
 * (nodes.c) and calls the node's handler. Errors become -errno here and
 * nowhere else.
 *
 * Control files render their content once per open (into fi->fh) and
 * use direct_io, so `cat` always reads a whole, consistent rendering
 * whatever size stat reported; a read from offset 0 after an earlier
 * read renders afresh (poll, lseek 0, read). Writes act in write(), so
 * the errno reaches the writer; O_TRUNC and truncate are no-ops.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "sbfs.h"
#include "stackback/log.h"

static struct sbfs *this_fs(void)
{
	return fuse_get_context()->private_data;
}

static struct sbfs_handle *handle_of(struct fuse_file_info *fi)
{
	return fi ? (struct sbfs_handle *)(uintptr_t)fi->fh : NULL;
}

/* Renders a file node's content for c (0 or -errno). */
static int render(struct sbfs_ctx *c, struct sb_buf *out)
{
	if (!c->node->read)
		return 0;
	return c->node->read(c, out);
}

static void fill_stat(struct sbfs_ctx *c, struct stat *st, const struct sbfs_handle *h)
{
	const struct sbfs_node *n = c->node;
	memset(st, 0, sizeof(*st));
	st->st_uid = c->fs->uid;
	st->st_gid = c->fs->gid;
	st->st_atim = st->st_mtim = st->st_ctim = c->fs->started;
	switch (n->type) {
	case SBFS_DIR:
		st->st_mode = S_IFDIR | n->mode;
		st->st_nlink = 2;
		break;
	case SBFS_LINK: {
		st->st_mode = S_IFLNK | 0777;
		st->st_nlink = 1;
		struct sb_buf target = {0};
		if (n->link(c, &target) == 0)
			st->st_size = (off_t)target.len;
		sb_buf_free(&target);
		break;
	}
	case SBFS_FILE:
		st->st_mode = S_IFREG | n->mode;
		st->st_nlink = 1;
		if (!(n->flags & SBFS_STATIC))
			clock_gettime(CLOCK_REALTIME, &st->st_mtim);
		st->st_ctim = st->st_mtim;
		if (h && !(n->flags & SBFS_APPEND)) {
			st->st_size = (off_t)h->content.len;
		} else {
			/* A best guess for tools that trust st_size; direct_io makes reads exact. */
			struct sb_buf content = {0};
			c->for_size = true;
			if (render(c, &content) == 0)
				st->st_size = (off_t)content.len;
			c->for_size = false;
			sb_buf_free(&content);
		}
		break;
	}
	st->st_blksize = 4096;
	st->st_blocks = (st->st_size + 511) / 512;
}

static int sbfs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	struct sbfs_ctx c;
	int rc = sbfs_resolve(this_fs(), path, &c);
	if (rc == 0)
		fill_stat(&c, st, handle_of(fi));
	sbfs_ctx_done(&c);
	return rc;
}

static int sbfs_readlink(const char *path, char *buf, size_t size)
{
	struct sbfs_ctx c;
	int rc = sbfs_resolve(this_fs(), path, &c);
	if (rc == 0 && c.node->type != SBFS_LINK)
		rc = -EINVAL;
	if (rc == 0) {
		struct sb_buf target = {0};
		rc = c.node->link(&c, &target);
		if (rc == 0 && size > 0)
			snprintf(buf, size, "%s", target.data ? target.data : "");
		sb_buf_free(&target);
	}
	sbfs_ctx_done(&c);
	return rc;
}

/* ---- directories: listed once at opendir, served with stable offsets ---- */

struct dir_entry {
	char *name;
	mode_t mode;   /* S_IF* | permission bits */
};

struct dir_listing {
	struct dir_entry *v;
	size_t n, cap;
};

static void listing_add(struct dir_listing *l, const char *name, mode_t mode)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	l->v[l->n++] = (struct dir_entry){xstrdup(name), mode};
}

static void add_child(void *userdata, const char *name, const struct sbfs_node *node)
{
	static const mode_t type_bits[] = {[SBFS_DIR] = S_IFDIR, [SBFS_FILE] = S_IFREG, [SBFS_LINK] = S_IFLNK};
	listing_add(userdata, name, type_bits[node->type] | node->mode);
}

static int sbfs_opendir(const char *path, struct fuse_file_info *fi)
{
	struct sbfs_ctx c;
	int rc = sbfs_resolve(this_fs(), path, &c);
	if (rc == 0 && c.node->type != SBFS_DIR)
		rc = -ENOTDIR;
	if (rc == 0) {
		struct dir_listing *l = xcalloc(1, sizeof(*l));
		listing_add(l, ".", S_IFDIR | c.node->mode);
		listing_add(l, "..", S_IFDIR | 0755);
		sbfs_children(&c, add_child, l);
		fi->fh = (uintptr_t)l;
	}
	sbfs_ctx_done(&c);
	return rc;
}

static int sbfs_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t offset,
			struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	struct sbfs *fs = this_fs();
	struct dir_listing *l = (struct dir_listing *)(uintptr_t)fi->fh;
	for (size_t i = (size_t)offset; i < l->n; i++) {
		struct stat st = {
			.st_mode = l->v[i].mode,
			.st_nlink = S_ISDIR(l->v[i].mode) ? 2 : 1,
			.st_uid = fs->uid,
			.st_gid = fs->gid,
			.st_atim = fs->started,
			.st_mtim = fs->started,
			.st_ctim = fs->started,
		};
		/*
		 * Directories carry their whole attributes (readdirplus spares a
		 * lookup per stack); files and links only their type, since their
		 * size needs a rendering. Offsets are real and non-zero, which
		 * libfuse needs to keep the attributes.
		 */
		enum fuse_fill_dir_flags plus = S_ISDIR(l->v[i].mode) && i >= 2 ? FUSE_FILL_DIR_PLUS : 0;
		if (filler(buf, l->v[i].name, &st, (off_t)(i + 1), plus))
			break;
	}
	return 0;
}

static int sbfs_releasedir(const char *path, struct fuse_file_info *fi)
{
	struct dir_listing *l = (struct dir_listing *)(uintptr_t)fi->fh;
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].name);
	free(l->v);
	free(l);
	return 0;
}

/* ---- files ---- */

static int sbfs_open(const char *path, struct fuse_file_info *fi)
{
	struct sbfs *fs = this_fs();
	struct sbfs_ctx c;
	int rc = sbfs_resolve(fs, path, &c);
	if (rc == 0 && c.node->type == SBFS_DIR)
		rc = -EISDIR;
	int acc = fi->flags & O_ACCMODE;
	if (rc == 0 && ((acc != O_RDONLY && !c.node->write) || (acc != O_WRONLY && !c.node->read)))
		rc = -EACCES;
	struct sbfs_handle *h = NULL;
	if (rc == 0) {
		h = xcalloc(1, sizeof(*h));
		h->node = c.node;
		h->path = xstrdup(path);
		if (acc != O_WRONLY)
			rc = render(&c, &h->content);
	}
	sbfs_ctx_done(&c);
	if (rc < 0) {
		if (h) {
			sb_buf_free(&h->content);
			free(h->path);
			free(h);
		}
		return rc;
	}
	fi->fh = (uintptr_t)h;
	fi->direct_io = !(h->node->flags & SBFS_STATIC);
	fi->keep_cache = (h->node->flags & SBFS_STATIC) != 0;
	return 0;
}

static int rerender(struct sbfs_handle *h, struct sb_buf *out)
{
	struct sbfs_ctx c;
	int rc = sbfs_resolve(this_fs(), h->path, &c);
	if (rc == 0)
		rc = render(&c, out);
	sbfs_ctx_done(&c);
	return rc;
}

/* An append-only file grew if the new rendering starts with what the descriptor holds. */
static bool extends(const struct sb_buf *fresh, const struct sb_buf *old)
{
	return fresh->len > old->len && (old->len == 0 || memcmp(fresh->data, old->data, old->len) == 0);
}

static int sbfs_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct sbfs_handle *h = handle_of(fi);
	bool again = off == 0 && h->read_once;
	bool more = (h->node->flags & SBFS_APPEND) && off >= 0 && (size_t)off >= h->content.len;
	if ((again || more) && !h->replied && !(h->node->flags & SBFS_STATIC)) {
		struct sb_buf fresh = {0};
		int rc = rerender(h, &fresh);
		if (rc < 0) {
			sb_buf_free(&fresh);
			return rc;
		}
		if (again || extends(&fresh, &h->content)) {
			sb_buf_free(&h->content);
			h->content = fresh;
		} else {
			sb_buf_free(&fresh);
		}
	}
	h->read_once = true;
	/*
	 * A reply is read either from offset 0 (pread, or a seek back) or on
	 * from where the write left the descriptor's offset, as a shell does:
	 *   exec 3<>trigger/backup; echo 1 >&3; read -r reply <&3
	 * The first read after the write tells which; later ones follow it.
	 */
	if (h->replied && h->reply_base < 0)
		h->reply_base = off >= h->reply_end ? h->reply_end : 0;
	if (h->replied && off >= h->reply_base)
		off -= h->reply_base;
	if (off < 0 || (size_t)off >= h->content.len)
		return 0;
	size_t n = h->content.len - (size_t)off;
	if (n > size)
		n = size;
	memcpy(buf, h->content.data + off, n);
	return (int)n;
}

static bool blank(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
			return false;
	return true;
}

static void set_reply(struct sbfs_handle *h, struct sb_buf *reply)
{
	sb_buf_free(&h->content);
	h->content = *reply;
	*reply = (struct sb_buf){0};
	h->replied = true;
}

static int sbfs_write(const char *path, const char *data, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct sbfs_handle *h = handle_of(fi);
	struct sb_buf reply = {0};
	int rc;
	/* Each write(2) is one whole command; what follows one on the same fd may be its newline. */
	if (off > 0 && blank(data, size)) {
		if (h->replied && h->reply_base < 0)
			h->reply_end = off + (off_t)size;
		return (int)size;
	}
	if (size > SB_TRIGGER_MAX) {
		sb_warn("write to %s refused: %zu bytes is more than a control file takes (%d)", path,
			size, SB_TRIGGER_MAX);
		sb_buf_printf(&reply, "error: %zu bytes is more than a control file takes (%d)\n", size,
			      SB_TRIGGER_MAX);
		rc = -EINVAL;
	} else if (memchr(data, '\0', size)) {
		sb_warn("write to %s refused: it contains a NUL byte", path);
		sb_buf_puts(&reply, "error: the payload contains a NUL byte\n");
		rc = -EINVAL;
	} else {
		struct sbfs_ctx c;
		rc = sbfs_resolve(this_fs(), path, &c);
		if (rc == 0)
			rc = c.node->write(&c, data, size, &reply);
		sbfs_ctx_done(&c);
	}
	set_reply(h, &reply);
	h->reply_end = off + (off_t)size;
	h->reply_base = -1;
	return rc < 0 ? rc : (int)size;
}

static int sbfs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	struct sbfs_ctx c;
	int rc = sbfs_resolve(this_fs(), path, &c);
	if (rc == 0 && c.node->type == SBFS_DIR)
		rc = -EISDIR;
	else if (rc == 0 && !c.node->write)
		rc = -EACCES;
	sbfs_ctx_done(&c);
	/* `echo 1 > trigger/backup` truncates first: nothing to do, the write carries the command. */
	return rc;
}

static int sbfs_release(const char *path, struct fuse_file_info *fi)
{
	struct sbfs *fs = this_fs();
	struct sbfs_handle *h = handle_of(fi);
	pthread_mutex_lock(&fs->open_mu);
	for (struct sbfs_handle **p = &fs->polled; *p; p = &(*p)->next_poll) {
		if (*p == h) {
			*p = h->next_poll;
			break;
		}
	}
	if (h->ph)
		fuse_pollhandle_destroy(h->ph);
	pthread_mutex_unlock(&fs->open_mu);
	sb_buf_free(&h->content);
	free(h->path);
	free(h);
	return 0;
}

/*
 * poll(2) on status, status.json, jobs/ID/state, jobs/ID/progress and the
 * triggers reports POLLIN|POLLPRI once the content differs from what
 * this descriptor holds; lseek to 0 and read to see the new content.
 * Other files are always ready.
 */
static int sbfs_poll(const char *path, struct fuse_file_info *fi, struct fuse_pollhandle *ph,
		     unsigned *reventsp)
{
	struct sbfs *fs = this_fs();
	struct sbfs_handle *h = handle_of(fi);
	if (!(h->node->flags & SBFS_POLL)) {
		*reventsp = POLLIN | POLLRDNORM;
		if (ph)
			fuse_pollhandle_destroy(ph);
		return 0;
	}
	uint64_t version = sb_queue_version(fs->queue);
	struct sb_buf now = {0};
	int rc = rerender(h, &now);
	bool differs = rc < 0 || now.len != h->content.len ||
		       (now.len && memcmp(now.data, h->content.data, now.len) != 0);
	sb_buf_free(&now);
	if (differs) {
		*reventsp = POLLIN | POLLRDNORM | POLLPRI;
		if (ph)
			fuse_pollhandle_destroy(ph);
		return 0;
	}
	*reventsp = 0;
	if (!ph)
		return 0;
	pthread_mutex_lock(&fs->open_mu);
	if (h->ph) {
		fuse_pollhandle_destroy(h->ph);
	} else {
		h->next_poll = fs->polled;
		fs->polled = h;
	}
	h->ph = ph;
	pthread_mutex_unlock(&fs->open_mu);
	/* A change between the rendering and the arming would otherwise be missed. */
	if (sb_queue_version(fs->queue) != version)
		sbfs_notify_polls(fs);
	return 0;
}

/* ---- directories of the selection: mkdir, rmdir, rename ---- */

/* Splits "/a/b/c" into its parent "/a/b" (caller frees) and "c". */
static char *split_parent(const char *path, const char **base)
{
	const char *slash = strrchr(path, '/');
	*base = slash + 1;
	return slash == path ? xstrdup("/") : xstrndup(path, (size_t)(slash - path));
}

static int sbfs_mkdir(const char *path, mode_t mode)
{
	const char *base;
	cleanup_free char *parent = split_parent(path, &base);
	struct sbfs_ctx c;
	int rc = sbfs_resolve(this_fs(), parent, &c);
	if (rc == 0) {
		const struct sbfs_node *wild = sbfs_wild_child(c.node);
		if (wild && wild->mkdir) {
			rc = wild->mkdir(&c, base);
		} else {
			sb_warn("mkdir %s refused: only enabled/NAME and disabled/NAME can be created", path);
			rc = -EPERM;
		}
	}
	sbfs_ctx_done(&c);
	return rc;
}

static int sbfs_rmdir(const char *path)
{
	struct sbfs_ctx c;
	int rc = sbfs_resolve(this_fs(), path, &c);
	if (rc == 0 && c.node->type != SBFS_DIR)
		rc = -ENOTDIR;
	if (rc == 0) {
		if (c.node->rmdir) {
			rc = c.node->rmdir(&c);
		} else {
			sb_warn("rmdir %s refused: only enabled/NAME can be removed", path);
			rc = -EPERM;
		}
	}
	sbfs_ctx_done(&c);
	return rc;
}

/* mv disabled/NAME enabled/ enables, the reverse disables: a file manager's drag. */
static int sbfs_rename(const char *from, const char *to, unsigned int flags)
{
	struct sbfs *fs = this_fs();
	if (flags & RENAME_EXCHANGE) {
		sb_warn("rename %s %s refused: exchanging entries is not supported", from, to);
		return -EINVAL;
	}
	const char *base;
	cleanup_free char *parent = split_parent(to, &base);
	struct sbfs_ctx cf, ct;
	int rc = sbfs_resolve(fs, from, &cf);
	int rt = sbfs_resolve(fs, parent, &ct);
	const struct sbfs_node *wild = rt == 0 ? sbfs_wild_child(ct.node) : NULL;
	if (rc == 0 && rt < 0)
		rc = rt;
	else if (rc == 0 && (!(cf.node->flags & SBFS_TOGGLE) || !wild || !(wild->flags & SBFS_TOGGLE))) {
		sb_warn("rename %s %s refused: only enabled/NAME and disabled/NAME move, between those two", from, to);
		rc = -EPERM;
	} else if (rc == 0 && strcmp(base, cf.name) != 0) {
		sb_warn("rename %s %s refused: a stack keeps its name", from, to);
		rc = -EPERM;
	} else if (rc == 0) {
		rc = wild->mkdir(&ct, base);
	}
	sbfs_ctx_done(&cf);
	sbfs_ctx_done(&ct);
	return rc;
}

/* ---- everything else is refused, with a log line where a user may wonder why ---- */

static int refuse(const char *what, const char *path)
{
	sb_warn("%s %s refused: the control filesystem has a fixed set of entries", what, path);
	return -EPERM;
}

static int sbfs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	return refuse("creating", path);
}

static int sbfs_mknod(const char *path, mode_t mode, dev_t rdev)
{
	return refuse("creating", path);
}

static int sbfs_unlink(const char *path)
{
	return refuse("removing", path);
}

static int sbfs_symlink(const char *target, const char *path)
{
	return refuse("creating a link at", path);
}

static int sbfs_link(const char *from, const char *to)
{
	return refuse("creating a link at", to);
}

static int sbfs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	return -EPERM;
}

static int sbfs_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	return -EPERM;
}

static int sbfs_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	/* `touch trigger/backup` must not fail; the times are the daemon's own. */
	struct sbfs_ctx c;
	int rc = sbfs_resolve(this_fs(), path, &c);
	sbfs_ctx_done(&c);
	return rc;
}

static int sbfs_statfs(const char *path, struct statvfs *st)
{
	memset(st, 0, sizeof(*st));
	st->f_bsize = 4096;
	st->f_frsize = 4096;
	st->f_namemax = 255;
	return 0;
}

static void *sbfs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	/*
	 * Names and attributes for a second (see SBFS_CACHE_S), absent names
	 * not at all: a stack, job or snapshot that appears is seen at once.
	 */
	cfg->entry_timeout = SBFS_CACHE_S;
	cfg->attr_timeout = SBFS_CACHE_S;
	cfg->negative_timeout = 0;
	cfg->use_ino = 0;
	return fuse_get_context()->private_data;
}

const struct fuse_operations sbfs_ops = {
	.init = sbfs_init,
	.getattr = sbfs_getattr,
	.readlink = sbfs_readlink,
	.opendir = sbfs_opendir,
	.readdir = sbfs_readdir,
	.releasedir = sbfs_releasedir,
	.open = sbfs_open,
	.read = sbfs_read,
	.write = sbfs_write,
	.truncate = sbfs_truncate,
	.release = sbfs_release,
	.poll = sbfs_poll,
	.mkdir = sbfs_mkdir,
	.rmdir = sbfs_rmdir,
	.rename = sbfs_rename,
	.create = sbfs_create,
	.mknod = sbfs_mknod,
	.unlink = sbfs_unlink,
	.symlink = sbfs_symlink,
	.link = sbfs_link,
	.chmod = sbfs_chmod,
	.chown = sbfs_chown,
	.utimens = sbfs_utimens,
	.statfs = sbfs_statfs,
};
