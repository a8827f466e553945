/*
 * The compact snapshot tree (see snaptree.h): its builder, fed by
 * `restic ls --json` and `restic ls -l`, its accessors and its on-disk
 * form.
 *
 * Memory: 56 bytes per node plus the interned names. A 100,000-entry
 * stack whose files share a few hundred distinct names costs ~6 MB.
 */
#include "stackback/snaptree.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "snap-restic.h"
#include "stackback/log.h"
#include "stackback/util.h"

#define NONE UINT32_MAX

/*
 * One node, as laid out in memory and on disk. Directories use first and
 * count for their children (contiguous, sorted by name); symlinks keep
 * their target's pool offset in first (NONE when unknown).
 */
struct snode {
	uint32_t name;     /* pool offset */
	uint32_t parent;
	uint32_t first;
	uint32_t count;
	uint32_t mode;     /* st_mode */
	uint32_t uid;
	uint32_t gid;
	uint32_t mtime_ns;
	int64_t mtime_s;
	uint64_t size;
	uint32_t nsub;     /* directories: how many children are directories */
	uint32_t nlink;    /* others: the link count restic recorded, 0 if unknown (restic ls has none) */
};
_Static_assert(sizeof(struct snode) == 56, "struct snode is part of the cache format");

struct sb_snaptree {
	atomic_uint refs;
	uint32_t n;
	const struct snode *nodes;
	const char *pool;       /* NUL-terminated strings; offset 0 is "" */
	size_t pool_len;
	char *root_path;
	/* What to free: the builder's two arrays, or the one blob a file was read into. */
	void *owned_nodes;
	void *owned_pool;
};

struct sb_snaptree *sb_snaptree_ref(struct sb_snaptree *t)
{
	atomic_fetch_add(&t->refs, 1);
	return t;
}

void sb_snaptree_unref(struct sb_snaptree *t)
{
	if (!t || atomic_fetch_sub(&t->refs, 1) != 1)
		return;
	free(t->owned_nodes);
	free(t->owned_pool);
	free(t->root_path);
	free(t);
}

uint32_t sb_snaptree_count(const struct sb_snaptree *t)
{
	return t->n;
}

size_t sb_snaptree_memory(const struct sb_snaptree *t)
{
	return sizeof(*t) + (size_t)t->n * sizeof(struct snode) + t->pool_len + strlen(t->root_path) + 1;
}

const char *sb_snaptree_root_path(const struct sb_snaptree *t)
{
	return t->root_path;
}

/* ---- accessors ---- */

static bool is_dir(const struct snode *n)
{
	return S_ISDIR(n->mode);
}

const char *sb_snaptree_name(const struct sb_snaptree *t, sb_snode_id id)
{
	return t->pool + t->nodes[id].name;
}

mode_t sb_snaptree_mode(const struct sb_snaptree *t, sb_snode_id id)
{
	return (mode_t)t->nodes[id].mode;
}

uint64_t sb_snaptree_size(const struct sb_snaptree *t, sb_snode_id id)
{
	return t->nodes[id].size;
}

const char *sb_snaptree_link(const struct sb_snaptree *t, sb_snode_id id)
{
	const struct snode *n = &t->nodes[id];
	if (!S_ISLNK(n->mode) || n->first == NONE)
		return NULL;
	return t->pool + n->first;
}

uint32_t sb_snaptree_nchildren(const struct sb_snaptree *t, sb_snode_id dir)
{
	return is_dir(&t->nodes[dir]) ? t->nodes[dir].count : 0;
}

sb_snode_id sb_snaptree_child_at(const struct sb_snaptree *t, sb_snode_id dir, uint32_t i)
{
	return t->nodes[dir].first + i;
}

sb_snode_id sb_snaptree_parent(const struct sb_snaptree *t, sb_snode_id id)
{
	return t->nodes[id].parent;
}

/* Byte order, like restic's own sorting of tree entries. */
static int name_cmp(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);
	int c = memcmp(a, b, alen < blen ? alen : blen);
	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

int sb_snaptree_child(const struct sb_snaptree *t, sb_snode_id dir, const char *name, size_t len,
		      sb_snode_id *out)
{
	const struct snode *d = &t->nodes[dir];
	if (!is_dir(d))
		return -ENOTDIR;
	uint32_t lo = 0, hi = d->count;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		int c = name_cmp(name, len, t->pool + t->nodes[d->first + mid].name);
		if (c == 0) {
			*out = d->first + mid;
			return 0;
		}
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return -ENOENT;
}

int sb_snaptree_lookup(const struct sb_snaptree *t, const char *path, sb_snode_id *out)
{
	sb_snode_id cur = SB_SNODE_ROOT;
	const char *p = path;
	for (;;) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		const char *end = strchrnul(p, '/');
		size_t len = (size_t)(end - p);
		if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
			return -EINVAL;
		int rc = sb_snaptree_child(t, cur, p, len, &cur);
		if (rc < 0)
			return rc;
		p = end;
	}
	*out = cur;
	return 0;
}

void sb_snaptree_stat(const struct sb_snaptree *t, sb_snode_id id, struct stat *st)
{
	const struct snode *n = &t->nodes[id];
	memset(st, 0, sizeof(*st));
	st->st_ino = (ino_t)id + 1;
	st->st_mode = (mode_t)n->mode;
	st->st_nlink = is_dir(n) ? 2 + n->nsub : n->nlink ? n->nlink : 1;
	st->st_uid = n->uid;
	st->st_gid = n->gid;
	st->st_size = (off_t)n->size;
	st->st_blksize = 4096;
	st->st_blocks = (blkcnt_t)((n->size + 511) / 512);
	st->st_mtim.tv_sec = (time_t)n->mtime_s;
	st->st_mtim.tv_nsec = n->mtime_ns;
	st->st_atim = st->st_mtim;
	st->st_ctim = st->st_mtim;
}

char *sb_snaptree_path(const struct sb_snaptree *t, sb_snode_id id)
{
	/* Measure on the way up, then write the names from the end backwards. */
	size_t len = 0;
	for (sb_snode_id i = id; i != SB_SNODE_ROOT; i = t->nodes[i].parent)
		len += strlen(sb_snaptree_name(t, i)) + 1;
	if (len == 0)
		return xstrdup("");
	char *out = xmalloc(len);
	size_t pos = len - 1;
	out[pos] = '\0';
	for (sb_snode_id i = id; i != SB_SNODE_ROOT; i = t->nodes[i].parent) {
		const char *name = sb_snaptree_name(t, i);
		size_t nl = strlen(name);
		pos -= nl;
		memcpy(out + pos, name, nl);
		if (pos > 0)
			out[--pos] = '/';
	}
	return out;
}

char *sb_snaptree_source_path(const struct sb_snaptree *t, sb_snode_id id)
{
	cleanup_free char *rel = sb_snaptree_path(t, id);
	if (!*rel)
		return xstrdup(t->root_path);
	if (strcmp(t->root_path, "/") == 0)
		return xasprintf("/%s", rel);
	return xasprintf("%s/%s", t->root_path, rel);
}

/* ---- the builder ---- */

/* A node in stream order, before the layout. */
struct tnode {
	uint32_t name;
	uint32_t parent;
	uint32_t link;     /* symlinks: target pool offset, NONE until the -l pass */
	uint32_t mode;
	uint32_t uid;
	uint32_t gid;
	uint32_t mtime_ns;
	int64_t mtime_s;
	uint64_t size;
	uint32_t nlink;
};

/* A directory still open in the depth-first stream, and its path length. */
struct open_dir {
	uint32_t index;
	size_t rel_len;
};

struct link_slot {
	char *path;        /* absolute path as the JSON pass gave it; NULL = empty slot */
	uint32_t index;
};

struct sb_snaptree_builder {
	char *root;        /* NULL until known */
	char *snapshot_id;
	bool seen_snapshot;
	bool failed;
	size_t skipped;      /* entries of a type we do not know */
	int64_t snap_time;   /* the snapshot's time: the mtime of a root restic does not list */
	json_tokener *tok;

	struct tnode *nodes;
	size_t n, cap;

	char *pool;
	size_t pool_len, pool_cap;
	uint32_t *intern;  /* open addressing over pool offsets; NONE = empty */
	size_t intern_cap, intern_n;

	struct open_dir *stack;
	size_t depth, stack_cap;
	struct sb_buf cur;     /* relative path of the deepest open directory */

	struct link_slot *links;   /* open addressing, by path */
	size_t links_cap, links_n;
};

static uint64_t hash_bytes(const char *s, size_t len)
{
	/* FNV-1a: names are short, and this is only a hash table's hash. */
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint32_t pool_append(struct sb_snaptree_builder *b, const char *s, size_t len)
{
	if (b->pool_len + len + 1 > b->pool_cap) {
		size_t cap = b->pool_cap ? b->pool_cap : 4096;
		while (cap < b->pool_len + len + 1)
			cap *= 2;
		b->pool = xrealloc(b->pool, cap);
		b->pool_cap = cap;
	}
	uint32_t off = (uint32_t)b->pool_len;
	memcpy(b->pool + off, s, len);
	b->pool[off + len] = '\0';
	b->pool_len += len + 1;
	return off;
}

static void intern_grow(struct sb_snaptree_builder *b)
{
	size_t cap = b->intern_cap ? b->intern_cap * 2 : 1024;
	uint32_t *t = xmalloc(cap * sizeof(*t));
	memset(t, 0xff, cap * sizeof(*t));
	for (size_t i = 0; i < b->intern_cap; i++) {
		uint32_t off = b->intern[i];
		if (off == NONE)
			continue;
		const char *s = b->pool + off;
		size_t j = hash_bytes(s, strlen(s)) & (cap - 1);
		while (t[j] != NONE)
			j = (j + 1) & (cap - 1);
		t[j] = off;
	}
	free(b->intern);
	b->intern = t;
	b->intern_cap = cap;
}

/* Returns the pool offset of s, adding it once. Strings never hold NUL (JSON \u0000 is refused). */
static uint32_t intern(struct sb_snaptree_builder *b, const char *s, size_t len)
{
	if ((b->intern_n + 1) * 2 > b->intern_cap)
		intern_grow(b);
	size_t j = hash_bytes(s, len) & (b->intern_cap - 1);
	while (b->intern[j] != NONE) {
		const char *have = b->pool + b->intern[j];
		if (strncmp(have, s, len) == 0 && have[len] == '\0')
			return b->intern[j];
		j = (j + 1) & (b->intern_cap - 1);
	}
	uint32_t off = pool_append(b, s, len);
	b->intern[j] = off;
	b->intern_n++;
	return off;
}

struct sb_snaptree_builder *sb_snaptree_builder_new(const char *root_path)
{
	struct sb_snaptree_builder *b = xcalloc(1, sizeof(*b));
	b->tok = json_tokener_new();
	if (!b->tok)
		abort();
	intern(b, "", 0);  /* offset 0: the root's name */
	if (root_path) {
		size_t len = strlen(root_path);
		while (len > 1 && root_path[len - 1] == '/')
			len--;
		b->root = xstrndup(root_path, len);
	}
	return b;
}

void sb_snaptree_builder_free(struct sb_snaptree_builder *b)
{
	if (!b)
		return;
	json_tokener_free(b->tok);
	free(b->root);
	free(b->snapshot_id);
	free(b->nodes);
	free(b->pool);
	free(b->intern);
	free(b->stack);
	sb_buf_free(&b->cur);
	for (size_t i = 0; i < b->links_cap; i++)
		free(b->links[i].path);
	free(b->links);
	free(b);
}

const char *sb_snaptree_builder_snapshot_id(const struct sb_snaptree_builder *b)
{
	return b->snapshot_id;
}

bool sb_snaptree_builder_wants_links(const struct sb_snaptree_builder *b)
{
	return b->links_n > 0;
}

static int fail(struct sb_snaptree_builder *b, char **err, char *msg)
{
	b->failed = true;
	*err = msg;
	return -1;
}

/*
 * Parses RFC 3339 ("2024-05-01T10:00:00.123456789Z", "...+02:00") into
 * UTC seconds and nanoseconds. Returns 0 or -1.
 */
static int parse_rfc3339(const char *s, int64_t *sec, uint32_t *nsec)
{
	struct tm tm = {0};
	int consumed = 0;
	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
		   &tm.tm_min, &tm.tm_sec, &consumed) != 6 || consumed != 19)
		return -1;
	if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
	    tm.tm_min > 59 || tm.tm_sec > 60 || tm.tm_year < 0)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	const char *p = s + 19;
	uint32_t ns = 0;
	if (*p == '.') {
		p++;
		int digits = 0;
		while (*p >= '0' && *p <= '9') {
			if (digits < 9) {
				ns = ns * 10 + (uint32_t)(*p - '0');
				digits++;
			}
			p++;
		}
		if (digits == 0)
			return -1;
		while (digits++ < 9)
			ns *= 10;
	}
	int64_t offset = 0;
	if (*p == 'Z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int oh, om, n = 0;
		if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &n) != 2 || n != 5 || oh > 23 || om > 59)
			return -1;
		offset = (int64_t)(oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
		p += 6;
	} else {
		return -1;
	}
	if (*p)
		return -1;
	*sec = (int64_t)timegm(&tm) - offset;
	*nsec = ns;
	return 0;
}

/* Go's os.FileMode bits, as restic prints them in "mode". */
#define GO_MODE_SETUID (1U << 23)
#define GO_MODE_SETGID (1U << 22)
#define GO_MODE_STICKY (1U << 20)

static int mode_from(const char *type, uint32_t gomode, uint32_t *out)
{
	static const struct {
		const char *name;
		mode_t fmt;
	} types[] = {
		{"file", S_IFREG}, {"dir", S_IFDIR},  {"symlink", S_IFLNK}, {"dev", S_IFBLK},
		{"chardev", S_IFCHR}, {"fifo", S_IFIFO}, {"socket", S_IFSOCK},
	};
	for (size_t i = 0; i < SB_ARRAY_SIZE(types); i++) {
		if (strcmp(type, types[i].name) != 0)
			continue;
		uint32_t m = (uint32_t)types[i].fmt | (gomode & 0777);
		if (gomode & GO_MODE_SETUID)
			m |= S_ISUID;
		if (gomode & GO_MODE_SETGID)
			m |= S_ISGID;
		if (gomode & GO_MODE_STICKY)
			m |= S_ISVTX;
		*out = m;
		return 0;
	}
	return -1;
}

static const char *get_string(struct json_object *o, const char *key, size_t *len)
{
	struct json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	const char *s = json_object_get_string(v);
	*len = (size_t)json_object_get_string_len(v);
	/* A NUL inside (\u0000) cannot be a path byte. */
	if (strlen(s) != *len)
		return NULL;
	return s;
}

/* Reads an integer field in [0, max]; absent counts as 0. Returns 0 or -1. */
static int get_uint(struct json_object *o, const char *key, uint64_t max, uint64_t *out)
{
	struct json_object *v;
	*out = 0;
	if (!json_object_object_get_ex(o, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_int))
		return -1;
	int64_t x = json_object_get_int64(v);
	if (x < 0 || (uint64_t)x > max)
		return -1;
	*out = (uint64_t)x;
	return 0;
}

/* The deepest directory holding every path of the snapshot line. */
static char *common_root(struct json_object *paths)
{
	size_t n = json_object_array_length(paths);
	char *root = NULL;
	for (size_t i = 0; i < n; i++) {
		struct json_object *p = json_object_array_get_idx(paths, i);
		if (!json_object_is_type(p, json_type_string))
			continue;
		const char *s = json_object_get_string(p);
		if (s[0] != '/')
			continue;
		size_t len = strlen(s);
		while (len > 1 && s[len - 1] == '/')
			len--;
		if (!root) {
			/* One path is its own root; several share their parent at least. */
			root = xstrndup(s, len);
			if (n > 1) {
				char *slash = strrchr(root, '/');
				slash[slash == root ? 1 : 0] = '\0';
			}
			continue;
		}
		/* Shorten root to a whole-component prefix of s. */
		size_t k = 0;
		while (root[k] && k < len && root[k] == s[k])
			k++;
		if (!(root[k] == '\0' && (k == len || s[k] == '/'))) {
			while (k > 0 && root[k] != '/')
				k--;
			root[k == 0 ? 1 : k] = '\0';
		}
	}
	return root;
}

static int handle_snapshot(struct sb_snaptree_builder *b, struct json_object *o, char **err)
{
	if (b->seen_snapshot)
		return fail(b, err, xstrdup("restic ls printed a second snapshot line"));
	b->seen_snapshot = true;
	size_t len;
	const char *id = get_string(o, "id", &len);
	if (id)
		b->snapshot_id = xstrndup(id, len);
	const char *time = get_string(o, "time", &len);
	uint32_t ns;
	if (time && parse_rfc3339(time, &b->snap_time, &ns) < 0)
		b->snap_time = 0;
	if (b->root)
		return 0;
	struct json_object *paths;
	if (!json_object_object_get_ex(o, "paths", &paths) ||
	    !json_object_is_type(paths, json_type_array))
		return fail(b, err, xstrdup("restic ls snapshot line has no paths"));
	b->root = common_root(paths);
	if (!b->root)
		return fail(b, err, xstrdup("restic ls snapshot line has no absolute path"));
	return 0;
}

static struct tnode *new_node(struct sb_snaptree_builder *b)
{
	if (b->n == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 1024;
		b->nodes = xrealloc(b->nodes, b->cap * sizeof(*b->nodes));
	}
	struct tnode *t = &b->nodes[b->n++];
	*t = (struct tnode){.link = NONE};
	return t;
}

static void push_dir(struct sb_snaptree_builder *b, uint32_t index, const char *rel, size_t rel_len)
{
	if (b->depth == b->stack_cap) {
		b->stack_cap = b->stack_cap ? b->stack_cap * 2 : 64;
		b->stack = xrealloc(b->stack, b->stack_cap * sizeof(*b->stack));
	}
	b->stack[b->depth++] = (struct open_dir){.index = index, .rel_len = rel_len};
	b->cur.len = 0;
	sb_buf_append(&b->cur, rel, rel_len);
}

static void link_grow(struct sb_snaptree_builder *b)
{
	size_t cap = b->links_cap ? b->links_cap * 2 : 64;
	struct link_slot *t = xcalloc(cap, sizeof(*t));
	for (size_t i = 0; i < b->links_cap; i++) {
		if (!b->links[i].path)
			continue;
		size_t j = hash_bytes(b->links[i].path, strlen(b->links[i].path)) & (cap - 1);
		while (t[j].path)
			j = (j + 1) & (cap - 1);
		t[j] = b->links[i];
	}
	free(b->links);
	b->links = t;
	b->links_cap = cap;
}

static void link_add(struct sb_snaptree_builder *b, const char *path, size_t len, uint32_t index)
{
	if ((b->links_n + 1) * 2 > b->links_cap)
		link_grow(b);
	size_t j = hash_bytes(path, len) & (b->links_cap - 1);
	while (b->links[j].path)
		j = (j + 1) & (b->links_cap - 1);
	b->links[j] = (struct link_slot){.path = xstrndup(path, len), .index = index};
	b->links_n++;
}

/* The unset symlink whose path is exactly path[0..len), or NULL. */
static struct link_slot *link_find(struct sb_snaptree_builder *b, const char *path, size_t len)
{
	if (!b->links_cap)
		return NULL;
	size_t j = hash_bytes(path, len) & (b->links_cap - 1);
	for (; b->links[j].path; j = (j + 1) & (b->links_cap - 1)) {
		struct link_slot *s = &b->links[j];
		if (strncmp(s->path, path, len) == 0 && s->path[len] == '\0' &&
		    b->nodes[s->index].link == NONE)
			return s;
	}
	return NULL;
}

/* The root-relative part of an absolute path: NULL if outside the root, "" for the root. */
static const char *relative_to_root(const char *root, const char *path, size_t len)
{
	if (strcmp(root, "/") == 0)
		return path + 1;
	size_t rl = strlen(root);
	if (len < rl || memcmp(path, root, rl) != 0)
		return NULL;
	if (len == rl)
		return path + rl;
	if (path[rl] != '/')
		return NULL;
	return path + rl + 1;
}

/* The root node: from its own line, or made up when restic prints none (a snapshot of "/"). */
static uint32_t add_root(struct sb_snaptree_builder *b)
{
	struct tnode *t = new_node(b);
	t->name = 0;
	t->parent = 0;
	t->mode = S_IFDIR | 0755;
	t->mtime_s = b->snap_time;
	push_dir(b, 0, "", 0);
	return 0;
}

static int handle_node(struct sb_snaptree_builder *b, struct json_object *o, char **err)
{
	if (!b->seen_snapshot && !b->root)
		return fail(b, err, xstrdup("restic ls printed an entry before the snapshot line"));
	size_t path_len, name_len, type_len;
	const char *path = get_string(o, "path", &path_len);
	const char *name = get_string(o, "name", &name_len);
	const char *type = get_string(o, "type", &type_len);
	if (!path || !name || !type || path[0] != '/')
		return fail(b, err, xstrdup("restic ls entry lacks a name, type or absolute path"));
	const char *rel = relative_to_root(b->root, path, path_len);
	if (!rel)
		return 0;  /* an ancestor of the root, or another path of the snapshot */
	size_t rel_len = path_len - (size_t)(rel - path);

	uint64_t uid, gid, size, gomode;
	if (get_uint(o, "uid", UINT32_MAX, &uid) < 0 || get_uint(o, "gid", UINT32_MAX, &gid) < 0 ||
	    get_uint(o, "size", INT64_MAX, &size) < 0 || get_uint(o, "mode", UINT32_MAX, &gomode) < 0)
		return fail(b, err, xasprintf("restic ls entry '%s' has a bad number", path));
	uint32_t mode;
	if (mode_from(type, (uint32_t)gomode, &mode) < 0) {
		/* A type newer than this code (restic's "irregular"): not browsable, not fatal. */
		b->skipped++;
		return 0;
	}
	int64_t msec = 0;
	uint32_t mnsec = 0;
	size_t mlen;
	const char *mtime = get_string(o, "mtime", &mlen);
	if (mtime && parse_rfc3339(mtime, &msec, &mnsec) < 0)
		return fail(b, err, xasprintf("restic ls entry '%s' has a bad mtime '%s'", path, mtime));
	if (b->n >= NONE - 1 || b->pool_len + path_len + 2 > UINT32_MAX)
		return fail(b, err, xstrdup("snapshot has too many entries"));

	uint32_t index;
	if (rel_len == 0) {
		if (b->n > 0)
			return fail(b, err, xasprintf("restic ls listed the root '%s' twice or late", path));
		if (!S_ISDIR(mode))
			return fail(b, err, xasprintf("snapshot root '%s' is not a directory", path));
		index = add_root(b);
	} else {
		/* The parent is an open directory: pop those this entry is not inside. */
		const char *slash = memrchr(rel, '/', rel_len);
		size_t dir_len = slash ? (size_t)(slash - rel) : 0;
		const char *base = slash ? slash + 1 : rel;
		size_t base_len = rel_len - (size_t)(base - rel);
		if (base_len != name_len || memcmp(base, name, name_len) != 0 || name_len == 0 ||
		    (name_len == 1 && name[0] == '.') ||
		    (name_len == 2 && name[0] == '.' && name[1] == '.'))
			return fail(b, err, xasprintf("restic ls entry '%s' has a bad name", path));
		if (b->n == 0)
			add_root(b);
		while (b->depth > 0 && !(b->stack[b->depth - 1].rel_len == dir_len &&
					 memcmp(b->cur.data, rel, dir_len) == 0))
			b->depth--;
		if (b->depth == 0)
			return fail(b, err, xasprintf("restic ls entry '%s' arrived outside its directory", path));
		uint32_t parent = b->stack[b->depth - 1].index;
		index = (uint32_t)b->n;
		struct tnode *t = new_node(b);
		t->name = intern(b, name, name_len);
		t->parent = parent;
		if (S_ISDIR(mode))
			push_dir(b, index, rel, rel_len);
		if (S_ISLNK(mode))
			link_add(b, path, path_len, index);
	}
	struct tnode *t = &b->nodes[index];
	t->mode = mode;
	t->uid = (uint32_t)uid;
	t->gid = (uint32_t)gid;
	t->size = S_ISREG(mode) ? size : 0;
	t->mtime_s = msec;
	t->mtime_ns = mnsec;
	return 0;
}

int sb_snaptree_builder_feed_json(struct sb_snaptree_builder *b, const char *line, size_t len,
				  char **err)
{
	if (b->failed)
		return fail(b, err, xstrdup("restic ls output was already refused"));
	size_t start = 0;
	while (start < len && (line[start] == ' ' || line[start] == '\t' || line[start] == '\r'))
		start++;
	if (start == len)
		return 0;
	if (len - start > INT32_MAX)
		return fail(b, err, xstrdup("restic ls printed an overlong line"));
	json_tokener_reset(b->tok);
	struct json_object *o =
		json_tokener_parse_ex(b->tok, line + start, (int)(len - start));
	enum json_tokener_error jerr = json_tokener_get_error(b->tok);
	size_t used = start + json_tokener_get_parse_end(b->tok);
	while (o && used < len && (line[used] == ' ' || line[used] == '\t' || line[used] == '\r'))
		used++;
	if (!o || jerr != json_tokener_success || used != len ||
	    !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		int shown = len - start < 80 ? (int)(len - start) : 80;
		return fail(b, err, xasprintf("restic ls printed a line that is not a JSON object: %.*s",
					      shown, line + start));
	}
	size_t st_len = 0;
	const char *st = get_string(o, "struct_type", &st_len);
	int rc = 0;
	if (st && strcmp(st, "snapshot") == 0)
		rc = handle_snapshot(b, o, err);
	else if (st && strcmp(st, "node") == 0)
		rc = handle_node(b, o, err);
	json_object_put(o);
	return rc;
}

/* Skips one run of spaces then one token; returns the position after it, or NULL. */
static const char *skip_token(const char *p, const char *end)
{
	while (p < end && *p == ' ')
		p++;
	if (p == end)
		return NULL;
	while (p < end && *p != ' ')
		p++;
	return p;
}

void sb_snaptree_builder_feed_long(struct sb_snaptree_builder *b, const char *line, size_t len)
{
	/* "Lrwxrwxrwx  UID  GID  SIZE YYYY-MM-DD HH:MM:SS PATH -> TARGET": Go prints symlinks with 'L'. */
	if (b->failed || len == 0 || line[0] != 'L' || !b->links_n)
		return;
	const char *end = line + len;
	const char *p = line;
	for (int i = 0; i < 6 && p; i++)
		p = skip_token(p, end);
	if (!p || p + 1 >= end || *p != ' ')
		return;
	const char *rest = p + 1;
	static const char arrow[] = " -> ";
	for (const char *a = rest; (a = memmem(a, (size_t)(end - a), arrow, 4)); a++) {
		struct link_slot *s = link_find(b, rest, (size_t)(a - rest));
		if (!s)
			continue;
		const char *target = a + 4;
		size_t tlen = (size_t)(end - target);
		if (memchr(target, '\0', tlen) || b->pool_len + tlen + 1 > UINT32_MAX)
			return;
		b->nodes[s->index].link = intern(b, target, tlen);
		b->nodes[s->index].size = tlen;
		return;
	}
}

sb_snode_id sb_snaptree_builder_add(struct sb_snaptree_builder *b, sb_snode_id parent,
				    const struct sb_snaptree_entry *e, char **err)
{
	if (b->failed) {
		fail(b, err, xstrdup("the tree was already refused"));
		return SB_SNODE_NONE;
	}
	if (parent == SB_SNODE_NONE ? b->n != 0 || !S_ISDIR(e->mode) || !b->root
				    : parent >= b->n || !S_ISDIR(b->nodes[parent].mode)) {
		fail(b, err, xasprintf("'%.*s' has no directory to go in", (int)e->name_len, e->name));
		return SB_SNODE_NONE;
	}
	if (parent != SB_SNODE_NONE &&
	    (e->name_len == 0 || memchr(e->name, '/', e->name_len) || memchr(e->name, '\0', e->name_len) ||
	     (e->name_len == 1 && e->name[0] == '.') ||
	     (e->name_len == 2 && e->name[0] == '.' && e->name[1] == '.'))) {
		fail(b, err, xasprintf("'%.*s' is not a valid name", (int)e->name_len, e->name));
		return SB_SNODE_NONE;
	}
	if (S_ISLNK(e->mode) && e->link && memchr(e->link, '\0', e->link_len)) {
		fail(b, err, xasprintf("symlink '%.*s' has a target with a NUL byte", (int)e->name_len, e->name));
		return SB_SNODE_NONE;
	}
	if (b->n >= NONE - 1 || b->pool_len + e->name_len + e->link_len + 2 > UINT32_MAX) {
		fail(b, err, xstrdup("snapshot has too many entries"));
		return SB_SNODE_NONE;
	}
	uint32_t index = (uint32_t)b->n;
	struct tnode *t = new_node(b);
	t->name = parent == SB_SNODE_NONE ? 0 : intern(b, e->name, e->name_len);
	t->parent = parent == SB_SNODE_NONE ? 0 : parent;
	t->mode = (uint32_t)e->mode;
	t->uid = e->uid;
	t->gid = e->gid;
	t->mtime_s = e->mtime_s;
	t->mtime_ns = e->mtime_ns;
	t->nlink = e->nlink;
	t->size = S_ISREG(e->mode) ? e->size : 0;
	if (S_ISLNK(e->mode) && e->link) {
		t->link = intern(b, e->link, e->link_len);
		t->size = e->link_len;
	}
	return index;
}

struct sort_ctx {
	const struct tnode *nodes;
	const char *pool;
};

static int cmp_by_name(const void *a, const void *b, void *arg)
{
	const struct sort_ctx *c = arg;
	return strcmp(c->pool + c->nodes[*(const uint32_t *)a].name,
		      c->pool + c->nodes[*(const uint32_t *)b].name);
}

static struct sb_snaptree *tree_alloc(void)
{
	struct sb_snaptree *t = xcalloc(1, sizeof(*t));
	atomic_init(&t->refs, 1);
	return t;
}

struct sb_snaptree *sb_snaptree_builder_finish(struct sb_snaptree_builder *b, char **err)
{
	if (b->failed) {
		*err = xstrdup("restic ls output was refused");
		return NULL;
	}
	if (b->n == 0) {
		*err = xasprintf("snapshot has no entry for its root '%s'", b->root ? b->root : "?");
		return NULL;
	}
	size_t n = b->n;
	/* Children grouped per parent (CSR), in stream order, then sorted by name. */
	uint32_t *start = xcalloc(n + 1, sizeof(*start));
	for (size_t i = 1; i < n; i++)
		start[b->nodes[i].parent + 1]++;
	for (size_t i = 0; i < n; i++)
		start[i + 1] += start[i];
	uint32_t *kids = xmalloc((n ? n : 1) * sizeof(*kids));
	uint32_t *fill = xmalloc((n + 1) * sizeof(*fill));
	memcpy(fill, start, (n + 1) * sizeof(*fill));
	for (size_t i = 1; i < n; i++)
		kids[fill[b->nodes[i].parent]++] = (uint32_t)i;
	free(fill);
	struct sort_ctx sc = {.nodes = b->nodes, .pool = b->pool};
	for (size_t i = 0; i < n; i++) {
		uint32_t cnt = start[i + 1] - start[i];
		if (cnt > 1)
			qsort_r(kids + start[i], cnt, sizeof(*kids), cmp_by_name, &sc);
		for (uint32_t k = 1; k < cnt; k++) {
			if (cmp_by_name(&kids[start[i] + k - 1], &kids[start[i] + k], &sc) == 0) {
				*err = xasprintf("restic ls listed '%s' twice in one directory",
						 b->pool + b->nodes[kids[start[i] + k]].name);
				free(start);
				free(kids);
				return NULL;
			}
		}
	}

	/* Breadth-first layout: each directory's children become contiguous. */
	uint32_t *order = xmalloc(n * sizeof(*order));   /* new index -> stream index */
	uint32_t *newidx = xmalloc(n * sizeof(*newidx)); /* stream index -> new index */
	struct snode *nodes = xcalloc(n, sizeof(*nodes));
	size_t tail = 1;
	order[0] = 0;
	newidx[0] = 0;
	for (size_t i = 0; i < n; i++) {
		const struct tnode *src = &b->nodes[order[i]];
		struct snode *dst = &nodes[i];
		dst->name = src->name;
		dst->parent = i == 0 ? 0 : newidx[src->parent];
		dst->mode = src->mode;
		dst->uid = src->uid;
		dst->gid = src->gid;
		dst->mtime_s = src->mtime_s;
		dst->mtime_ns = src->mtime_ns;
		dst->size = src->size;
		if (!S_ISDIR(src->mode))
			dst->nlink = src->nlink;
		if (S_ISLNK(src->mode)) {
			dst->first = src->link;
		} else if (S_ISDIR(src->mode)) {
			uint32_t s0 = start[order[i]], cnt = start[order[i] + 1] - s0;
			dst->first = (uint32_t)tail;
			dst->count = cnt;
			for (uint32_t k = 0; k < cnt; k++) {
				uint32_t child = kids[s0 + k];
				if (S_ISDIR(b->nodes[child].mode))
					dst->nsub++;
				newidx[child] = (uint32_t)tail;
				order[tail++] = child;
			}
		}
	}
	free(start);
	free(kids);
	free(order);
	free(newidx);

	struct sb_snaptree *t = tree_alloc();
	t->n = (uint32_t)n;
	t->nodes = t->owned_nodes = nodes;
	t->pool_len = b->pool_len;
	t->pool = t->owned_pool = xrealloc(b->pool, b->pool_len);
	b->pool = NULL;
	b->pool_len = b->pool_cap = 0;
	t->root_path = xstrdup(b->root);
	/* The builder's pool moved into the tree: its intern table and links are now void. */
	b->failed = true;
	return t;
}

/* ---- loading through restic ---- */

struct ls_ctx {
	struct sb_snaptree_builder *b;
	char *err;   /* the first parse error; later lines are ignored */
	bool json;
};

static void on_ls_line(void *userdata, enum sb_stream stream, const char *line, size_t len)
{
	struct ls_ctx *c = userdata;
	if (stream != SB_STREAM_STDOUT || c->err)
		return;
	if (c->json)
		sb_snaptree_builder_feed_json(c->b, line, len, &c->err);
	else
		sb_snaptree_builder_feed_long(c->b, line, len);
}

/* `restic ls --json|-l [--tag TAG] -- SNAPSHOT`, fed line by line to c. */
static int run_ls(const struct sb_restic *r, const char *snapshot, const char *tag, bool json,
		  struct ls_ctx *c, char **err)
{
	struct snap_restic_cmd cmd;
	snap_restic_cmd_init(&cmd, r, "ls");
	sb_strv_push(&cmd.argv, json ? "--json" : "-l");
	if (tag) {
		sb_strv_push(&cmd.argv, "--tag");
		sb_strv_push(&cmd.argv, tag);
	}
	sb_strv_push(&cmd.argv, "--");
	sb_strv_push(&cmd.argv, snapshot);
	struct sb_run_opts o = {0};
	snap_restic_run_opts(&cmd, r, &o);
	o.timeout_s = (double)r->timeout_s;
	o.on_line = on_ls_line;
	o.userdata = c;
	c->json = json;
	struct sb_run_result res;
	int rc = sb_run(&o, &res);
	snap_restic_cmd_free(&cmd);
	if (rc != 0) {
		cleanup_free char *why = snap_restic_describe(&res, o.timeout_s);
		*err = xasprintf("listing snapshot %.8s failed: %s", snapshot, why);
		sb_run_result_free(&res);
		return -1;
	}
	sb_run_result_free(&res);
	if (c->err) {
		*err = xasprintf("listing snapshot %.8s failed: %s", snapshot, c->err);
		return -1;
	}
	return 0;
}

static struct sb_snaptree *load(const struct sb_restic *r, const char *snapshot, const char *tag,
				const char *root_path, char **id, char **err)
{
	struct sb_snaptree_builder *b = sb_snaptree_builder_new(root_path);
	struct ls_ctx c = {.b = b};
	struct sb_snaptree *t = NULL;
	if (run_ls(r, snapshot, tag, true, &c, err) < 0)
		goto out;
	const char *seen = sb_snaptree_builder_snapshot_id(b);
	if (tag && !seen) {
		*err = xasprintf("listing the latest snapshot tagged '%s' failed: restic named no snapshot", tag);
		goto out;
	}
	/*
	 * restic 0.14's JSON has no link targets: one text pass supplies them,
	 * of the very snapshot the JSON pass listed (a backup may have made
	 * another one the latest in between).
	 */
	if (sb_snaptree_builder_wants_links(b) && run_ls(r, seen ? seen : snapshot, NULL, false, &c, err) < 0)
		goto out;
	if (b->skipped)
		sb_warn("snapshot %.8s: %zu entries of a type restic 0.14 does not know are not shown",
			seen ? seen : snapshot, b->skipped);
	if (id)
		*id = xstrdup(seen);
	char *ferr = NULL;
	t = sb_snaptree_builder_finish(b, &ferr);
	if (!t) {
		*err = xasprintf("listing snapshot %.8s failed: %s", seen ? seen : snapshot, ferr);
		free(ferr);
		if (id) {
			free(*id);
			*id = NULL;
		}
	}
out:
	free(c.err);
	sb_snaptree_builder_free(b);
	return t;
}

struct sb_snaptree *sb_snaptree_load_restic(const struct sb_restic *r, const char *snapshot,
					     const char *root_path, char **err)
{
	return load(r, snapshot, NULL, root_path, NULL, err);
}

struct sb_snaptree *sb_snaptree_load_restic_latest(const struct sb_restic *r, const char *tag, char **id,
						    char **err)
{
	return load(r, "latest", tag, NULL, id, err);
}

/* ---- the on-disk form ---- */

/*
 * header | root path | padding to 8 | nodes | pool. Native byte order:
 * the cache belongs to this machine. checksum is FNV-1a over everything
 * after the header, so a torn or damaged file is refused.
 */
#define TREE_MAGIC "SBTREE\0\1"
#define TREE_VERSION 2U

struct tree_header {
	char magic[8];
	uint32_t version;
	uint32_t n;
	uint64_t pool_len;
	uint32_t root_len;
	uint32_t checksum;
};

static uint32_t checksum(const unsigned char *p, size_t len)
{
	uint32_t h = 2166136261U;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 16777619U;
	}
	return h;
}

static size_t pad8(size_t x)
{
	return (x + 7) & ~(size_t)7;
}

int sb_snaptree_save(const struct sb_snaptree *t, const char *path)
{
	size_t root_len = strlen(t->root_path);
	size_t nodes_off = pad8(sizeof(struct tree_header) + root_len);
	size_t nodes_len = (size_t)t->n * sizeof(struct snode);
	size_t total = nodes_off + nodes_len + t->pool_len;
	unsigned char *buf = xcalloc(1, total);
	struct tree_header h = {
		.version = TREE_VERSION,
		.n = t->n,
		.pool_len = t->pool_len,
		.root_len = (uint32_t)root_len,
	};
	memcpy(h.magic, TREE_MAGIC, 8);
	memcpy(buf + sizeof(h), t->root_path, root_len);
	memcpy(buf + nodes_off, t->nodes, nodes_len);
	memcpy(buf + nodes_off + nodes_len, t->pool, t->pool_len);
	h.checksum = checksum(buf + sizeof(h), total - sizeof(h));
	memcpy(buf, &h, sizeof(h));
	int rc = sb_write_file_atomic(path, buf, total, 0600);
	free(buf);
	return rc;
}

static bool valid_name(const char *pool, size_t pool_len, uint32_t off, bool root)
{
	if (off >= pool_len)
		return false;
	const char *s = pool + off;  /* the pool ends in NUL (checked), so strlen stays inside */
	size_t len = strlen(s);
	if (root)
		return len == 0;
	return len > 0 && !memchr(s, '/', len) && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

/* Checks every node of a tree read from disk; blob becomes the tree's on success. */
static int adopt_blob(void *blob, size_t len, struct sb_snaptree **out)
{
	struct tree_header h;
	if (len < sizeof(h))
		return -EINVAL;
	memcpy(&h, blob, sizeof(h));
	if (memcmp(h.magic, TREE_MAGIC, 8) != 0 || h.version != TREE_VERSION || h.n == 0 ||
	    h.n == NONE || h.pool_len == 0 || h.pool_len > UINT32_MAX || h.root_len == 0 ||
	    h.root_len > 4096)
		return -EINVAL;
	size_t nodes_off = pad8(sizeof(h) + h.root_len);
	if ((uint64_t)h.n > (SIZE_MAX - nodes_off) / sizeof(struct snode))
		return -EINVAL;
	size_t nodes_len = (size_t)h.n * sizeof(struct snode);
	if (nodes_off + nodes_len > len || len - nodes_off - nodes_len != h.pool_len)
		return -EINVAL;
	const unsigned char *p = blob;
	if (checksum(p + sizeof(h), len - sizeof(h)) != h.checksum)
		return -EINVAL;
	const char *root = (const char *)p + sizeof(h);
	if (root[0] != '/' || memchr(root, '\0', h.root_len))
		return -EINVAL;
	const struct snode *nodes = (const struct snode *)(p + nodes_off);
	const char *pool = (const char *)p + nodes_off + nodes_len;
	size_t pool_len = (size_t)h.pool_len;
	if (pool[pool_len - 1] != '\0')
		return -EINVAL;
	if (!S_ISDIR(nodes[0].mode) || nodes[0].parent != 0)
		return -EINVAL;
	for (uint32_t i = 0; i < h.n; i++) {
		const struct snode *nd = &nodes[i];
		if (!valid_name(pool, pool_len, nd->name, i == 0))
			return -EINVAL;
		if (i > 0 && (nd->parent >= i || !S_ISDIR(nodes[nd->parent].mode) ||
			      i < nodes[nd->parent].first ||
			      i - nodes[nd->parent].first >= nodes[nd->parent].count))
			return -EINVAL;
		mode_t fmt = nd->mode & S_IFMT;
		if (fmt != S_IFREG && fmt != S_IFDIR && fmt != S_IFLNK && fmt != S_IFBLK &&
		    fmt != S_IFCHR && fmt != S_IFIFO && fmt != S_IFSOCK)
			return -EINVAL;
		if (nd->mode & ~(uint32_t)(S_IFMT | 07777))
			return -EINVAL;
		if (nd->mtime_ns >= 1000000000U)
			return -EINVAL;
		if (S_ISDIR(nd->mode)) {
			if (nd->count > 0 && (nd->first <= i || nd->first > h.n ||
					      nd->count > h.n - nd->first))
				return -EINVAL;
			if (nd->nsub > nd->count)
				return -EINVAL;
			for (uint32_t k = 1; k < nd->count; k++)
				if (strcmp(pool + nodes[nd->first + k - 1].name,
					   pool + nodes[nd->first + k].name) >= 0)
					return -EINVAL;
		} else if (S_ISLNK(nd->mode)) {
			if (nd->first != NONE && nd->first >= pool_len)
				return -EINVAL;
		} else if (nd->first != 0 || nd->count != 0) {
			return -EINVAL;
		}
	}
	struct sb_snaptree *t = tree_alloc();
	t->n = h.n;
	t->nodes = nodes;
	t->pool = pool;
	t->pool_len = pool_len;
	t->root_path = xstrndup(root, h.root_len);
	t->owned_nodes = blob;
	*out = t;
	return 0;
}

int sb_snaptree_load_bytes(const void *data, size_t len, struct sb_snaptree **out)
{
	void *blob = xmalloc(len ? len : 1);
	memcpy(blob, data, len);
	int rc = adopt_blob(blob, len, out);
	if (rc < 0)
		free(blob);
	return rc;
}

int sb_snaptree_load_file(const char *path, struct sb_snaptree **out)
{
	char *data;
	size_t len;
	/* A tree file is never larger than its nodes and pool: 4 GiB is far beyond any budget. */
	int rc = sb_read_file(path, (size_t)4 << 30, &data, &len);
	if (rc < 0)
		return rc;
	rc = adopt_blob(data, len, out);
	if (rc < 0)
		free(data);
	return rc;
}
