/*
 * Stack discovery and the selection file `dirlist` (SPEC §4).
 *
 * The dirlist is the user's file: every line is kept verbatim and only
 * the value of an entry whose selection changes is rewritten, so
 * comments, blank lines, spacing and order survive every write. Writers
 * serialize on DIRLIST.lock (flock, so a dead holder never leaves a stale
 * lock), re-read the file under it, and replace it atomically; readers
 * never lock because a rename is atomic.
 *
 * Hostile names: a stack name is one path component from a fixed
 * alphabet, checked both when a directory is discovered and when a
 * dirlist line is parsed, so no name can lead outside DOCKER_STACKS_DIR.
 * External stacks are only the absolute, canonical paths the user wrote
 * into the dirlist (or passed to `enable`).
 */
#include "stackback/stacks.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* Compose's own lookup order (compose v2 prefers compose.yaml). */
static const char *const compose_names[] = {
	"compose.yaml",
	"compose.yml",
	"docker-compose.yaml",
	"docker-compose.yml",
};

/* The dirlist is a short text file; anything larger is not one. */
#define DIRLIST_MAX_BYTES (16u << 20)

/* Names in messages: control bytes escaped, very long names shortened. */
#define PRINTABLE_MAX 160

static char *printable(const char *s)
{
	struct sb_buf b = {0};
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++, n++) {
		if (n == PRINTABLE_MAX) {
			sb_buf_printf(&b, "...(%zu bytes)", strlen(s));
			break;
		}
		if (*p < 0x20 || *p == 0x7f || *p == '\\')
			sb_buf_printf(&b, "\\x%02x", *p);
		else
			sb_buf_append(&b, p, 1);
	}
	return sb_buf_steal(&b);
}

static bool name_char_ok(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
	       c == '_' || c == '-';
}

/* Why name breaks the rule, or NULL if it is a valid stack name. */
static const char *name_problem(const char *name)
{
	size_t len = strlen(name);
	if (len == 0)
		return "empty stack name";
	if (len > SB_STACK_NAME_MAX)
		return "stack name longer than 128 characters";
	if (name[0] == '.' || name[0] == '-')
		return "stack name starts with '.' or '-'";
	for (size_t i = 0; i < len; i++)
		if (!name_char_ok(name[i]))
			return "stack name may only hold A-Z a-z 0-9 . _ -";
	if (strcmp(name, "stackback") == 0)
		return "stack name 'stackback' is reserved (every snapshot carries that tag)";
	return NULL;
}

bool sb_stack_name_valid(const char *name)
{
	return name && !name_problem(name);
}

char *sb_compose_project_name(const char *name)
{
	char *out = xmalloc(strlen(name) + 1);
	size_t n = 0;
	for (const char *p = name; *p; p++) {
		char c = *p;
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')
			out[n++] = c;
	}
	out[n] = '\0';
	return out;
}

/*
 * Why path is not usable as an external stack key, or NULL. The key must
 * be canonical (no ".", "..", "//", trailing '/') so the same directory
 * has one spelling, and its basename must be a valid stack name.
 */
static const char *external_path_problem(const char *path)
{
	if (path[0] != '/')
		return "not an absolute path";
	if (strlen(path) >= PATH_MAX)
		return "path too long";
	for (const unsigned char *p = (const unsigned char *)path; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return "path holds a control character";
	for (const char *c = path; *c;) {
		c++; /* past the '/' */
		const char *end = strchrnul(c, '/');
		size_t len = (size_t)(end - c);
		if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
			return "path is not canonical (empty, '.' or '..' component, or trailing '/')";
		c = end;
	}
	const char *base = strrchr(path, '/') + 1;
	return name_problem(base);
}

static char *path_join(const char *dir, const char *name)
{
	size_t len = strlen(dir);
	while (len > 1 && dir[len - 1] == '/')
		len--;
	if (len == 1 && dir[0] == '/')
		return xasprintf("/%s", name);
	return xasprintf("%.*s/%s", (int)len, dir, name);
}

/*
 * The compose file inside directory sub of dirfd ("" for dirfd itself),
 * or NULL. One fstatat per candidate, without opening sub: discovery of
 * 1,000 stacks runs on every toggle.
 */
static const char *compose_file_at(int dirfd, const char *sub)
{
	for (size_t i = 0; i < SB_ARRAY_SIZE(compose_names); i++) {
		char path[NAME_MAX + 32];
		snprintf(path, sizeof(path), "%s%s%s", sub, *sub ? "/" : "", compose_names[i]);
		struct stat st;
		/* A FIFO or directory of that name must not count (nor block a reader). */
		if (fstatat(dirfd, path, &st, 0) == 0 && S_ISREG(st.st_mode))
			return compose_names[i];
	}
	return NULL;
}

char *sb_find_compose_file(const char *dir)
{
	cleanup_close int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	const char *name = compose_file_at(fd, "");
	return name ? path_join(dir, name) : NULL;
}

/* ---- the dirlist parser ---- */

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* Where an entry's parts sit inside its raw line. */
struct line_parts {
	bool is_entry;
	size_t key_off, key_len;
	size_t val_off, val_len;
};

/* Splits one raw line. Returns 0, or -1 with *why (static text). */
static int parse_line(const char *s, struct line_parts *p, const char **why)
{
	*p = (struct line_parts){0};
	size_t i = 0;
	while (is_blank(s[i]))
		i++;
	if (s[i] == '\0' || s[i] == '#')
		return 0;
	const char *eq = strchr(s + i, '=');
	if (!eq) {
		*why = "expected NAME=true|false";
		return -1;
	}
	size_t key_end = (size_t)(eq - s);
	while (key_end > i && is_blank(s[key_end - 1]))
		key_end--;
	if (key_end == i) {
		*why = "missing stack name before '='";
		return -1;
	}
	size_t j = (size_t)(eq - s) + 1;
	while (is_blank(s[j]))
		j++;
	size_t v = j;
	while (s[j] && !is_blank(s[j]))
		j++;
	size_t v_end = j;
	while (is_blank(s[j]))
		j++;
	if (s[j] != '\0' && s[j] != '#') {
		*why = "unexpected text after the value (a comment starts with ' #')";
		return -1;
	}
	p->is_entry = true;
	p->key_off = i;
	p->key_len = key_end - i;
	p->val_off = v;
	p->val_len = v_end - v;
	return 0;
}

static int parse_value(const char *s, size_t len, bool *out)
{
	if (len == 4 && strncasecmp(s, "true", 4) == 0) {
		*out = true;
		return 0;
	}
	if (len == 5 && strncasecmp(s, "false", 5) == 0) {
		*out = false;
		return 0;
	}
	return -1;
}

static const char *key_problem(const char *key)
{
	return key[0] == '/' ? external_path_problem(key) : name_problem(key);
}

static void dirlist_push_entry(struct sb_dirlist *dl, char *key, bool enabled, int line)
{
	dl->entries = xrealloc(dl->entries, (dl->n + 1) * sizeof(*dl->entries));
	dl->entries[dl->n++] = (struct sb_dirlist_entry){.key = key, .enabled = enabled, .line = line};
}

/*
 * The entries seen so far by key, so the duplicate check of a dirlist of
 * 1,000 stacks costs 1,000 probes rather than half a million comparisons
 * (the control filesystem parses it on every toggle). Open addressing; a
 * slot holds an entry's index + 1, 0 is empty.
 */
struct key_table {
	size_t *slot;
	size_t cap; /* a power of two, at least twice the entries */
};

static size_t key_hash(const char *s)
{
	uint64_t h = 14695981039346656037ull; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return (size_t)h;
}

/* The slot holding key, or the empty slot where it belongs. */
static size_t key_table_probe(const struct key_table *t, const struct sb_dirlist *dl, const char *key)
{
	size_t i = key_hash(key) & (t->cap - 1);
	while (t->slot[i] && strcmp(dl->entries[t->slot[i] - 1].key, key) != 0)
		i = (i + 1) & (t->cap - 1);
	return i;
}

/* The entry for key, or NULL. */
static const struct sb_dirlist_entry *key_table_find(const struct key_table *t,
						     const struct sb_dirlist *dl, const char *key)
{
	if (!t->cap)
		return NULL;
	size_t i = key_table_probe(t, dl, key);
	return t->slot[i] ? &dl->entries[t->slot[i] - 1] : NULL;
}

/* Records dl's last entry (its key is not in the table yet). */
static void key_table_add_last(struct key_table *t, const struct sb_dirlist *dl)
{
	if (dl->n * 2 > t->cap) {
		struct key_table grown = {.cap = t->cap ? t->cap * 2 : 64};
		grown.slot = xcalloc(grown.cap, sizeof(*grown.slot));
		for (size_t i = 0; i + 1 < dl->n; i++)
			grown.slot[key_table_probe(&grown, dl, dl->entries[i].key)] = i + 1;
		free(t->slot);
		*t = grown;
	}
	t->slot[key_table_probe(t, dl, dl->entries[dl->n - 1].key)] = dl->n;
}

int sb_dirlist_parse(const char *text, size_t len, const char *file, struct sb_dirlist *dl,
		     struct sb_diags *diags)
{
	*dl = (struct sb_dirlist){0};
	struct key_table seen = {0};
	int rc = 0;
	size_t pos = 0;
	int lineno = 0;
	while (pos < len) {
		const char *start = text + pos;
		const char *nl = memchr(start, '\n', len - pos);
		size_t line_len = nl ? (size_t)(nl - start) : len - pos;
		pos += line_len + (nl ? 1 : 0);
		lineno++;
		if (memchr(start, '\0', line_len)) {
			sb_diags_add(diags, file, lineno, SB_DIAG_ERROR, "line holds a NUL byte");
			sb_strv_push(&dl->lines, "");
			rc = -1;
			continue;
		}
		char *raw = xstrndup(start, line_len);
		sb_strv_push_owned(&dl->lines, raw);

		struct line_parts lp;
		const char *why;
		if (parse_line(raw, &lp, &why) < 0) {
			sb_diags_add(diags, file, lineno, SB_DIAG_ERROR, "%s", why);
			rc = -1;
			continue;
		}
		if (!lp.is_entry)
			continue;
		cleanup_free char *key = xstrndup(raw + lp.key_off, lp.key_len);
		const char *problem = key_problem(key);
		if (problem) {
			cleanup_free char *shown = printable(key);
			sb_diags_add(diags, file, lineno, SB_DIAG_ERROR, "invalid stack '%s': %s", shown,
				     problem);
			rc = -1;
			continue;
		}
		bool enabled;
		if (parse_value(raw + lp.val_off, lp.val_len, &enabled) < 0) {
			cleanup_free char *val = xstrndup(raw + lp.val_off, lp.val_len);
			cleanup_free char *shown = printable(val);
			sb_diags_add(diags, file, lineno, SB_DIAG_ERROR,
				     "invalid value '%s' for stack '%s' (expected true or false)", shown, key);
			rc = -1;
			continue;
		}
		const struct sb_dirlist_entry *first = key_table_find(&seen, dl, key);
		if (first) {
			sb_diags_add(diags, file, lineno, SB_DIAG_ERROR,
				     "duplicate entry for stack '%s' (first on line %d)", key, first->line);
			rc = -1;
			continue;
		}
		dirlist_push_entry(dl, key, enabled, lineno);
		key = NULL;
		key_table_add_last(&seen, dl);
	}
	free(seen.slot);
	return rc;
}

char *sb_dirlist_format(const struct sb_dirlist *dl)
{
	struct sb_buf b = {0};
	for (size_t i = 0; i < dl->lines.n; i++) {
		sb_buf_puts(&b, dl->lines.v[i]);
		sb_buf_puts(&b, "\n");
	}
	return sb_buf_steal(&b);
}

void sb_dirlist_free(struct sb_dirlist *dl)
{
	for (size_t i = 0; i < dl->n; i++)
		free(dl->entries[i].key);
	free(dl->entries);
	sb_strv_free(&dl->lines);
	*dl = (struct sb_dirlist){0};
}

/* ---- discovery ---- */

/* A stack directory found under DOCKER_STACKS_DIR. */
struct found {
	char *name;
	char *compose_file;
	bool claimed; /* matched by a dirlist entry */
};

struct found_list {
	struct found *v;
	size_t n;
};

static void found_list_free(struct found_list *fl)
{
	for (size_t i = 0; i < fl->n; i++) {
		free(fl->v[i].name);
		free(fl->v[i].compose_file);
	}
	free(fl->v);
	*fl = (struct found_list){0};
}

static int found_cmp(const void *a, const void *b)
{
	return strcmp(((const struct found *)a)->name, ((const struct found *)b)->name);
}

static void skip(struct sb_selection *sel, const char *path, const char *why)
{
	cleanup_free char *shown = printable(path);
	sb_strv_push_owned(&sel->skipped, xasprintf("%s: %s", shown, why));
}

/*
 * True if the symlink at dir/name resolves to a directory inside
 * real_root. Anything else (outside, dangling, not a directory) is
 * recorded in sel->skipped.
 */
static bool symlink_inside(struct sb_selection *sel, const char *dir, const char *name,
			   const char *real_root)
{
	cleanup_free char *link = path_join(dir, name);
	cleanup_free char *target = realpath(link, NULL);
	if (!target) {
		skip(sel, link, "broken symlink");
		return false;
	}
	size_t rlen = strlen(real_root);
	bool inside = strncmp(target, real_root, rlen) == 0 &&
		      (target[rlen] == '/' || (rlen == 1 && real_root[0] == '/'));
	if (!inside) {
		cleanup_free char *shown = printable(target);
		cleanup_free char *why = xasprintf("symlink to '%s', outside DOCKER_STACKS_DIR", shown);
		skip(sel, link, why);
		return false;
	}
	struct stat st;
	return stat(target, &st) == 0 && S_ISDIR(st.st_mode);
}

static int scan_stacks_dir(const char *dir, struct sb_selection *sel, struct found_list *fl,
			   struct sb_diags *diags)
{
	cleanup_free char *real_root = realpath(dir, NULL);
	DIR *d = real_root ? opendir(dir) : NULL;
	if (!d) {
		sb_diags_add(diags, dir, 0, SB_DIAG_ERROR, "cannot open the stacks directory: %s",
			     strerror(errno));
		return -1;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		const char *name = de->d_name;
		if (name[0] == '.')
			continue; /* hidden, and "." / ".." */
		unsigned char type = de->d_type;
		if (type == DT_UNKNOWN) {
			/* Filesystems that do not fill d_type. */
			struct stat st;
			if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) < 0)
				continue; /* vanished while we looked */
			type = S_ISLNK(st.st_mode) ? DT_LNK : S_ISDIR(st.st_mode) ? DT_DIR : DT_REG;
		}
		if (type == DT_LNK) {
			if (!symlink_inside(sel, dir, name, real_root))
				continue;
		} else if (type != DT_DIR) {
			continue; /* a plain file next to the stacks is not a stack */
		}
		const char *compose = compose_file_at(dirfd(d), name);
		cleanup_free char *path = path_join(dir, name);
		if (!compose) {
			skip(sel, path, "no compose file (compose.yaml, compose.yml, docker-compose.yaml, docker-compose.yml)");
			continue;
		}
		const char *problem = name_problem(name);
		if (problem) {
			skip(sel, path, problem);
			continue;
		}
		fl->v = xrealloc(fl->v, (fl->n + 1) * sizeof(*fl->v));
		fl->v[fl->n++] = (struct found){
			.name = xstrdup(name),
			.compose_file = path_join(path, compose),
		};
	}
	closedir(d);
	if (fl->n)
		qsort(fl->v, fl->n, sizeof(*fl->v), found_cmp);
	return 0;
}

/* DOCKER_STACKS_DIR without trailing slashes (caller frees). */
static char *stacks_root(const struct sb_config *cfg)
{
	char *root = xstrdup(cfg->stacks_dir);
	size_t len = strlen(root);
	while (len > 1 && root[len - 1] == '/')
		root[--len] = '\0';
	return root;
}

/*
 * An absolute key naming a direct child of DOCKER_STACKS_DIR is that
 * internal stack: returns its name inside key, else NULL.
 */
static const char *internal_name_of_path(const char *root, const char *key)
{
	if (key[0] != '/')
		return key;
	const char *slash = strrchr(key, '/');
	size_t dlen = (size_t)(slash - key);
	if (dlen == 0)
		dlen = 1;
	if (strlen(root) == dlen && strncmp(root, key, dlen) == 0)
		return slash + 1;
	return NULL;
}

static struct sb_stack *push_stack(struct sb_selection *sel)
{
	sel->stacks = xrealloc(sel->stacks, (sel->n + 1) * sizeof(*sel->stacks));
	struct sb_stack *st = &sel->stacks[sel->n++];
	*st = (struct sb_stack){0};
	return st;
}

static void add_conflict(struct sb_stack *st, const char *msg)
{
	if (!st->conflict) {
		st->conflict = xstrdup(msg);
		return;
	}
	char *both = xasprintf("%s; %s", st->conflict, msg);
	free(st->conflict);
	st->conflict = both;
}

/* Stacks ordered by compose project name, then by index. */
struct by_project {
	const char *project;
	size_t index;
};

static int by_project_cmp(const void *a, const void *b)
{
	const struct by_project *x = a, *y = b;
	int c = strcmp(x->project, y->project);
	return c ? c : (x->index > y->index) - (x->index < y->index);
}

struct clash {
	size_t a, b; /* indexes into the selection, a < b */
};

static int clash_cmp(const void *x, const void *y)
{
	const struct clash *p = x, *q = y;
	if (p->a != q->a)
		return (p->a > q->a) - (p->a < q->a);
	return (p->b > q->b) - (p->b < q->b);
}

/*
 * Two stacks clash when they share a name or a compose project name. The
 * project name follows from the name, so every clash is between stacks
 * of one project: sorting by project finds them in n log n (the control
 * filesystem loads 1,000 stacks on every toggle), and sorting the pairs
 * keeps each stack's messages in the order of the selection.
 */
static void find_conflicts(struct sb_selection *sel)
{
	struct by_project *order = xcalloc(sel->n ? sel->n : 1, sizeof(*order));
	for (size_t i = 0; i < sel->n; i++)
		order[i] = (struct by_project){sb_compose_project_name(sel->stacks[i].name), i};
	qsort(order, sel->n, sizeof(*order), by_project_cmp);

	struct clash *clashes = NULL;
	size_t n_clashes = 0;
	for (size_t g = 0; g < sel->n;) {
		size_t end = g + 1;
		while (end < sel->n && strcmp(order[end].project, order[g].project) == 0)
			end++;
		for (size_t i = g; i < end; i++) {
			for (size_t j = i + 1; j < end; j++) {
				clashes = xrealloc(clashes, (n_clashes + 1) * sizeof(*clashes));
				clashes[n_clashes++] = (struct clash){order[i].index, order[j].index};
			}
		}
		g = end;
	}
	if (n_clashes > 1)
		qsort(clashes, n_clashes, sizeof(*clashes), clash_cmp);

	for (size_t k = 0; k < n_clashes; k++) {
		struct sb_stack *a = &sel->stacks[clashes[k].a], *b = &sel->stacks[clashes[k].b];
		cleanup_free char *project = sb_compose_project_name(a->name);
		cleanup_free char *msg =
			strcmp(a->name, b->name) == 0
				? xasprintf("stacks '%s' (%s) and '%s' (%s) have the same name", a->name,
					    a->path, b->name, b->path)
				: xasprintf("stacks '%s' (%s) and '%s' (%s) have the same compose project name '%s'",
					    a->name, a->path, b->name, b->path, project);
		add_conflict(a, msg);
		add_conflict(b, msg);
	}
	free(clashes);
	for (size_t i = 0; i < sel->n; i++)
		free((char *)order[i].project);
	free(order);
}

/* Builds the selection from a parsed dirlist and a scan. */
static int build_selection(const struct sb_config *cfg, const struct sb_dirlist *dl,
			   struct sb_selection *sel, struct sb_diags *diags)
{
	if (!cfg->stacks_dir || !*cfg->stacks_dir) {
		sb_diags_add(diags, cfg->dirlist ? cfg->dirlist : "dirlist", 0, SB_DIAG_ERROR,
			     "DOCKER_STACKS_DIR is not set");
		return -1;
	}
	cleanup_free char *root = stacks_root(cfg);
	struct found_list fl = {0};
	if (scan_stacks_dir(root, sel, &fl, diags) < 0)
		return -1;

	for (size_t i = 0; i < dl->n; i++) {
		const struct sb_dirlist_entry *e = &dl->entries[i];
		struct sb_stack *st = push_stack(sel);
		st->dirlist_key = xstrdup(e->key);
		st->enabled = e->enabled;
		const char *internal = internal_name_of_path(root, e->key);
		if (internal) {
			st->name = xstrdup(internal);
			st->path = path_join(root, internal);
			st->origin = SB_STACK_MISSING;
			struct found wanted = {.name = (char *)internal};
			struct found *f = fl.n ? bsearch(&wanted, fl.v, fl.n, sizeof(*fl.v), found_cmp) : NULL;
			if (f) {
				f->claimed = true;
				st->compose_file = xstrdup(f->compose_file);
				st->origin = SB_STACK_LISTED;
			}
		} else {
			st->external = true;
			st->name = xstrdup(strrchr(e->key, '/') + 1);
			st->path = xstrdup(e->key);
			st->compose_file = sb_find_compose_file(e->key);
			st->origin = st->compose_file ? SB_STACK_LISTED : SB_STACK_MISSING;
		}
	}
	for (size_t k = 0; k < fl.n; k++) {
		if (fl.v[k].claimed)
			continue;
		struct sb_stack *st = push_stack(sel);
		st->name = xstrdup(fl.v[k].name);
		st->dirlist_key = xstrdup(fl.v[k].name);
		st->path = path_join(root, fl.v[k].name);
		st->compose_file = xstrdup(fl.v[k].compose_file);
		st->origin = SB_STACK_NEW;
	}
	found_list_free(&fl);
	find_conflicts(sel);
	return 0;
}

/* Reads and parses the dirlist; a missing file is an empty one. */
static int read_dirlist(const char *path, struct sb_dirlist *dl, struct sb_diags *diags)
{
	*dl = (struct sb_dirlist){0};
	cleanup_free char *text = NULL;
	size_t len = 0;
	int r = sb_read_file(path, DIRLIST_MAX_BYTES, &text, &len);
	if (r == -ENOENT)
		return 0;
	if (r < 0) {
		sb_diags_add(diags, path, 0, SB_DIAG_ERROR, "cannot read the dirlist: %s",
			     r == -EFBIG ? "larger than 16 MiB" : strerror(-r));
		return -1;
	}
	return sb_dirlist_parse(text, len, path, dl, diags);
}

static int load(const struct sb_config *cfg, struct sb_selection *sel, struct sb_dirlist *dl,
		struct sb_diags *diags)
{
	*sel = (struct sb_selection){0};
	*dl = (struct sb_dirlist){0};
	if (!cfg->dirlist || !*cfg->dirlist) {
		sb_diags_add(diags, "dirlist", 0, SB_DIAG_ERROR, "DIRLIST is not set");
		return -1;
	}
	if (read_dirlist(cfg->dirlist, dl, diags) < 0)
		return -1;
	if (build_selection(cfg, dl, sel, diags) < 0)
		return -1;
	return 0;
}

int sb_selection_load(const struct sb_config *cfg, struct sb_selection *sel, struct sb_diags *diags)
{
	struct sb_dirlist dl;
	int rc = load(cfg, sel, &dl, diags);
	sb_dirlist_free(&dl);
	if (rc < 0)
		sb_selection_free(sel);
	return rc;
}

void sb_selection_free(struct sb_selection *sel)
{
	for (size_t i = 0; i < sel->n; i++) {
		struct sb_stack *st = &sel->stacks[i];
		free(st->name);
		free(st->path);
		free(st->compose_file);
		free(st->dirlist_key);
		free(st->conflict);
	}
	free(sel->stacks);
	sb_strv_free(&sel->skipped);
	*sel = (struct sb_selection){0};
}

struct sb_stack *sb_selection_find(const struct sb_selection *sel, const char *name)
{
	for (size_t i = 0; i < sel->n; i++) {
		struct sb_stack *st = &sel->stacks[i];
		if (name[0] == '/' ? strcmp(st->path, name) == 0 || strcmp(st->dirlist_key, name) == 0
				   : strcmp(st->name, name) == 0)
			return st;
	}
	return NULL;
}

/* ---- updating ---- */

/* The first error of diags as "FILE:LINE: message" (caller frees). */
static char *first_error(const struct sb_diags *diags)
{
	for (size_t i = 0; i < diags->n; i++) {
		const struct sb_diag *d = &diags->v[i];
		if (d->severity != SB_DIAG_ERROR)
			continue;
		if (d->line > 0)
			return xasprintf("%s:%d: %s", d->file, d->line, d->message);
		return xasprintf("%s: %s", d->file, d->message);
	}
	return xstrdup("cannot load the stack selection");
}

/* The pending rewrite of the dirlist. */
struct edit {
	struct sb_dirlist *dl;
	bool *drop;               /* per line of dl->lines */
	struct sb_strv appended;  /* new lines */
	bool changed;
};

/* Rewrites the value of the entry on line (1-based) to v, keeping the rest. */
static void edit_set_line(struct edit *ed, int line, bool v)
{
	char *raw = ed->dl->lines.v[line - 1];
	struct line_parts lp;
	const char *why;
	if (parse_line(raw, &lp, &why) < 0 || !lp.is_entry)
		return; /* cannot happen: the line parsed as an entry */
	bool cur;
	if (parse_value(raw + lp.val_off, lp.val_len, &cur) == 0 && cur == v)
		return;
	char *next = xasprintf("%.*s%s%s", (int)lp.val_off, raw, v ? "true" : "false",
			       raw + lp.val_off + lp.val_len);
	free(raw);
	ed->dl->lines.v[line - 1] = next;
	ed->changed = true;
}

/* Index of key's line among the appended ones, or -1. */
static ssize_t appended_index(const struct edit *ed, const char *key)
{
	size_t klen = strlen(key);
	for (size_t i = 0; i < ed->appended.n; i++) {
		const char *a = ed->appended.v[i];
		if (strncmp(a, key, klen) == 0 && a[klen] == '=')
			return (ssize_t)i;
	}
	return -1;
}

static void edit_append(struct edit *ed, const char *key, bool v)
{
	ssize_t i = appended_index(ed, key);
	if (i >= 0) {
		free(ed->appended.v[i]);
		ed->appended.v[i] = xasprintf("%s=%s", key, v ? "true" : "false");
		return;
	}
	sb_strv_push_owned(&ed->appended, xasprintf("%s=%s", key, v ? "true" : "false"));
	ed->changed = true;
}

static const struct sb_dirlist_entry *entry_for_key(const struct sb_dirlist *dl, const char *key)
{
	for (size_t i = 0; i < dl->n; i++)
		if (strcmp(dl->entries[i].key, key) == 0)
			return &dl->entries[i];
	return NULL;
}

/* Sets a stack of the selection (listed, missing or new). */
static void edit_set_stack(struct edit *ed, const struct sb_stack *st, bool v)
{
	const struct sb_dirlist_entry *e = entry_for_key(ed->dl, st->dirlist_key);
	if (e)
		edit_set_line(ed, e->line, v);
	else
		edit_append(ed, st->dirlist_key, v);
}

/*
 * Applies one requested change. Returns 0, or -1 with a reason pushed to
 * bad (unknown, ambiguous or unusable key).
 */
static int apply_change(struct edit *ed, const struct sb_selection *sel, const char *root,
			const struct sb_selection_change *ch, struct sb_strv *bad)
{
	cleanup_free char *key = xstrdup(ch->key);
	size_t klen = strlen(key);
	while (klen > 1 && key[0] == '/' && key[klen - 1] == '/')
		key[--klen] = '\0';
	cleanup_free char *shown = printable(key);

	if (key[0] == '/') {
		const char *problem = external_path_problem(key);
		if (problem) {
			sb_strv_push_owned(bad, xasprintf("'%s': %s", shown, problem));
			return -1;
		}
		const char *internal = internal_name_of_path(root, key);
		if (!internal) {
			for (size_t i = 0; i < sel->n; i++) {
				if (sel->stacks[i].external && strcmp(sel->stacks[i].dirlist_key, key) == 0) {
					edit_set_stack(ed, &sel->stacks[i], ch->enabled);
					return 0;
				}
			}
			cleanup_free char *compose = sb_find_compose_file(key);
			if (!compose) {
				sb_strv_push_owned(bad, xasprintf("'%s' holds no compose file", shown));
				return -1;
			}
			const char *base = strrchr(key, '/') + 1;
			cleanup_free char *project = sb_compose_project_name(base);
			for (size_t i = 0; i < sel->n; i++) {
				const struct sb_stack *o = &sel->stacks[i];
				cleanup_free char *op = sb_compose_project_name(o->name);
				if (strcmp(o->name, base) == 0 || strcmp(op, project) == 0) {
					sb_strv_push_owned(bad, xasprintf("'%s' clashes with stack '%s' (%s): same name or compose project name",
									  shown, o->name, o->path));
					return -1;
				}
			}
			edit_append(ed, key, ch->enabled);
			return 0;
		}
		memmove(key, internal, strlen(internal) + 1);
	}

	const char *problem = name_problem(key);
	if (problem) {
		sb_strv_push_owned(bad, xasprintf("'%s': %s", shown, problem));
		return -1;
	}
	const struct sb_stack *match = NULL;
	for (size_t i = 0; i < sel->n; i++) {
		if (strcmp(sel->stacks[i].name, key) != 0)
			continue;
		if (match) {
			sb_strv_push_owned(bad, xasprintf("'%s' is ambiguous: %s and %s (name it by path)",
							  key, match->path, sel->stacks[i].path));
			return -1;
		}
		match = &sel->stacks[i];
	}
	if (!match) {
		sb_strv_push_owned(bad, xasprintf("no such stack '%s'", key));
		return -1;
	}
	edit_set_stack(ed, match, ch->enabled);
	return 0;
}

static char *edit_render(const struct edit *ed)
{
	struct sb_buf b = {0};
	for (size_t i = 0; i < ed->dl->lines.n; i++) {
		if (ed->drop[i])
			continue;
		sb_buf_puts(&b, ed->dl->lines.v[i]);
		sb_buf_puts(&b, "\n");
	}
	for (size_t i = 0; i < ed->appended.n; i++) {
		sb_buf_puts(&b, ed->appended.v[i]);
		sb_buf_puts(&b, "\n");
	}
	return sb_buf_steal(&b);
}

/* Where to write: the target of a symlinked dirlist, so the link survives. */
static char *write_target(const char *dirlist)
{
	struct stat st;
	if (lstat(dirlist, &st) == 0 && S_ISLNK(st.st_mode)) {
		char *real = realpath(dirlist, NULL);
		if (real)
			return real;
	}
	return xstrdup(dirlist);
}

static char *parent_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		return xstrdup(".");
	if (slash == path)
		return xstrdup("/");
	return xstrndup(path, (size_t)(slash - path));
}

/* Takes DIRLIST.lock, creating the directory if needed. Returns the fd or -1 with *err. */
static int lock_dirlist(const char *dirlist, char **err)
{
	cleanup_free char *dir = parent_dir(dirlist);
	int r = sb_mkdir_p(dir, 0700);
	if (r < 0) {
		*err = xasprintf("cannot create '%s' for the dirlist: %s", dir, strerror(-r));
		return -1;
	}
	cleanup_free char *lock_path = xasprintf("%s.lock", dirlist);
	int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		*err = xasprintf("cannot open '%s': %s", lock_path, strerror(errno));
		return -1;
	}
	while (flock(fd, LOCK_EX) < 0) {
		if (errno == EINTR)
			continue;
		*err = xasprintf("cannot lock '%s': %s", lock_path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * Computes the new dirlist text for the changes. Returns 0 with *text
 * (caller frees; NULL when nothing changes), or -1 with *err naming
 * every unusable key.
 */
static int plan_update(const struct sb_config *cfg, const struct sb_selection *sel,
		       struct sb_dirlist *dl, const struct sb_selection_change *changes,
		       size_t n_changes, bool add_new, bool prune, char **text, char **err)
{
	*text = NULL;
	struct edit ed = {.dl = dl, .drop = xcalloc(dl->lines.n + 1, sizeof(*ed.drop))};
	cleanup_free char *root = stacks_root(cfg);
	struct sb_strv bad = {0};
	for (size_t i = 0; i < n_changes; i++)
		apply_change(&ed, sel, root, &changes[i], &bad);
	if (bad.n) {
		struct sb_buf b = {0};
		for (size_t i = 0; i < bad.n; i++)
			sb_buf_printf(&b, "%s%s", i ? "; " : "", bad.v[i]);
		*err = sb_buf_steal(&b);
		sb_strv_free(&bad);
		free(ed.drop);
		sb_strv_free(&ed.appended);
		return -1;
	}
	for (size_t i = 0; add_new && i < sel->n; i++)
		if (sel->stacks[i].origin == SB_STACK_NEW && appended_index(&ed, sel->stacks[i].dirlist_key) < 0)
			edit_append(&ed, sel->stacks[i].dirlist_key, false);
	for (size_t i = 0; prune && i < sel->n; i++) {
		if (sel->stacks[i].origin != SB_STACK_MISSING)
			continue;
		const struct sb_dirlist_entry *e = entry_for_key(dl, sel->stacks[i].dirlist_key);
		if (e) {
			ed.drop[e->line - 1] = true;
			ed.changed = true;
		}
	}
	if (ed.changed)
		*text = edit_render(&ed);
	free(ed.drop);
	sb_strv_free(&ed.appended);
	return 0;
}

int sb_selection_update(const struct sb_config *cfg, const struct sb_selection_change *changes,
			size_t n_changes, bool add_new, bool prune, bool dry_run, char **err)
{
	*err = NULL;
	if (!cfg->dirlist || !*cfg->dirlist) {
		*err = xstrdup("DIRLIST is not set");
		return -1;
	}
	/*
	 * A dry run takes the lock too: it reports what a real run would do
	 * against a file nobody is rewriting at that moment.
	 */
	cleanup_close int lock_fd = lock_dirlist(cfg->dirlist, err);
	if (lock_fd < 0)
		return -1;

	struct sb_selection sel;
	struct sb_dirlist dl;
	struct sb_diags diags = {0};
	cleanup_free char *text = NULL;
	int rc = load(cfg, &sel, &dl, &diags);
	if (rc < 0)
		*err = first_error(&diags);
	else
		rc = plan_update(cfg, &sel, &dl, changes, n_changes, add_new, prune, &text, err);
	sb_selection_free(&sel);
	sb_dirlist_free(&dl);
	sb_diags_free(&diags);
	if (rc < 0 || !text || dry_run)
		return rc;

	cleanup_free char *target = write_target(cfg->dirlist);
	struct stat st;
	mode_t mode = stat(target, &st) == 0 ? (st.st_mode & 07777) : 0600;
	int w = sb_write_file_atomic(target, text, strlen(text), mode);
	if (w < 0) {
		*err = xasprintf("cannot write the dirlist '%s': %s", target, strerror(-w));
		return -1;
	}
	return 0;
}
