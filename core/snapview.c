/*
 * A repository's snapshots as browsable trees (see snapview.h).
 *
 * Two worker threads do everything that runs restic: they reload the
 * snapshot list when asked (first, before any tree) and load the trees
 * that requests or prefetching queued. Requests only wait on `changed`.
 *
 * A repository on a local path is read by the native reader
 * (resticrepo.h) instead: the list, the trees (with link targets and
 * counts) and the contents (only the blobs a read needs) come without
 * restic. The first list load opens it; a format the reader refuses, or
 * a repository that is not local, is read through restic as above.
 *
 * On disk, under STATE_DIR/cache/:
 *   snapshots-LABEL.json   the last `restic snapshots --json` of a local
 *                          repository, with the file names of its
 *                          snapshots/ directory at that time
 *   trees/LABEL/ID         parsed trees (snaptree's format)
 */
#include "stackback/snapview.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snap-restic.h"
#include "stackback/log.h"
#include "stackback/restic.h"
#include "stackback/resticrepo.h"
#include "stackback/snaptar.h"
#include "stackback/util.h"

#define N_WORKERS 2
/* A failed tree load is retried by a request after this many seconds, not sooner. */
#define RETRY_S 10.0
/* How often a request may stat the repository's snapshots/ directory, seconds. */
#define MTIME_CHECK_S 1.0
/* The on-disk trees may use this many times SNAPSHOT_CACHE_MB. */
#define DISK_TREES_FACTOR 4
/* A tree cache file in writing for longer than this was left by a crash. */
#define STALE_TEMP_S 3600

/* An immutable snapshot list, shared by readers while a new one loads. */
struct snaplist {
	unsigned refs;                /* view mu */
	struct sb_snapshot_list l;    /* oldest first */
	struct sb_strv stacks;        /* sorted, unique */
};

enum tree_state {
	TREE_NONE,
	TREE_QUEUED,
	TREE_LOADING,
	TREE_READY,
	TREE_FAILED,
};

struct tree_entry {
	char id[65];
	char *root;                   /* the snapshot's root path, for loading */
	char tree_id[65];             /* the snapshot's tree blob, for the native reader */
	char *native_root;            /* the root the native reader walks from (root, or the paths' common one) */
	time_t time;
	char *label;                  /* "web@NAME", for log lines */
	enum tree_state state;
	struct sb_snaptree *tree;     /* READY: the view's reference */
	uint64_t *cost;               /* per node: bytes + 1 KiB per file below it, built on demand */
	size_t bytes;                 /* memory charged to the budget */
	uint64_t used;                /* LRU stamp */
	char *error;                  /* FAILED */
	double failed_at;
	bool prefetch;                /* queued by prefetching, not by a request */
	/*
	 * A guess made before the first list arrived: the newest snapshot of
	 * this stack, listed with `restic ls latest --tag STACK` while
	 * `restic snapshots` runs. id is empty until the list or the load
	 * names it; then it is an ordinary entry again (guessing false). The
	 * stack stays recorded so that a view guesses once per stack.
	 */
	char *spec_stack;
	bool guessing;
	struct tree_entry *next;      /* queue link */
};

/* Who reads the repository. */
enum backend {
	BACKEND_UNDECIDED,            /* a local repository the native reader has not opened yet */
	BACKEND_NATIVE,
	BACKEND_RESTIC,
};

struct sb_snapview {
	const struct sb_config *cfg;
	struct sb_restic r;
	char *label;
	struct sb_snapcache *content;
	bool prefetch;
	char *snapdir;                /* REPO/snapshots for a local repository, else NULL */
	char *list_cache;
	char *tree_dir;
	uint64_t tree_budget;
	atomic_bool stop;             /* r.cancel points here */

	/* mu protects everything below. */
	pthread_mutex_t mu;
	pthread_cond_t changed;       /* the list or a tree changed state */
	pthread_cond_t work;          /* a list load was requested or a tree queued; or stopping */
	struct snaplist *list;        /* NULL before the first successful load */
	uint64_t list_req;            /* reloads requested */
	uint64_t list_done;           /* the request number the last finished load served */
	bool list_loading;
	char *list_error;             /* the last load's failure, NULL after a success */
	double list_failed_at;
	struct timespec list_mtime;   /* snapshots/ when the current list was read */
	double mtime_checked;
	uint64_t generation;
	struct tree_entry **trees;
	size_t n_trees, cap_trees;
	struct tree_entry *queue_head, *queue_tail;
	uint64_t tree_bytes;
	uint64_t clock;
	bool stopping;
	enum backend backend;
	struct sb_resticrepo *native; /* set once with backend NATIVE, then used without mu */
	bool native_opening;          /* a worker is opening it */

	pthread_t threads[N_WORKERS];
	size_t n_threads;
};

/* ---- the snapshot list ---- */

static void list_unref_locked(struct snaplist *sl)
{
	if (!sl || --sl->refs > 0)
		return;
	sb_snapshot_list_free(&sl->l);
	sb_strv_free(&sl->stacks);
	free(sl);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static struct snaplist *list_build(struct sb_snapshot_list *l)
{
	struct snaplist *sl = xcalloc(1, sizeof(*sl));
	sl->refs = 1;
	sl->l = *l;
	*l = (struct sb_snapshot_list){0};
	for (size_t i = 0; i < sl->l.n; i++) {
		const char *stack = sl->l.v[i].stack;
		if (stack && sb_stack_name_valid(stack) && !sb_strv_contains(&sl->stacks, stack))
			sb_strv_push(&sl->stacks, stack);
	}
	if (sl->stacks.n > 1)
		qsort(sl->stacks.v, sl->stacks.n, sizeof(char *), cmp_str);
	return sl;
}

static void snap_copy(const struct sb_snapshot *s, struct sb_snapview_snap *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->id, sizeof(out->id), "%s", s->id);
	snprintf(out->short_id, sizeof(out->short_id), "%s", s->short_id ? s->short_id : "");
	snprintf(out->stack, sizeof(out->stack), "%s", s->stack ? s->stack : "");
	sb_snapshot_dirname(s, out->name, sizeof(out->name));
	out->time = s->time_utc;
}

static const struct sb_snapshot *list_find_id(const struct snaplist *sl, const char *id)
{
	for (size_t i = 0; i < sl->l.n; i++)
		if (strcmp(sl->l.v[i].id, id) == 0)
			return &sl->l.v[i];
	return NULL;
}

/* The snapshot ids a local repository's snapshots/ directory holds, sorted. */
static int read_snapdir(const char *dir, struct sb_strv *ids, struct timespec *mtime)
{
	DIR *d = opendir(dir);
	if (!d)
		return -errno;
	struct stat st;
	if (fstat(dirfd(d), &st) == 0)
		*mtime = st.st_mtim;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strlen(de->d_name) == 64 && strspn(de->d_name, "0123456789abcdef") == 64)
			sb_strv_push(ids, de->d_name);
	closedir(d);
	if (ids->n > 1)
		qsort(ids->v, ids->n, sizeof(char *), cmp_str);
	return 0;
}

/* The cached `restic snapshots --json` text if it was taken with exactly these ids. */
static char *cached_list(struct sb_snapview *v, const struct sb_strv *ids)
{
	char *text;
	size_t len;
	if (sb_read_file(v->list_cache, 64 << 20, &text, &len) < 0)
		return NULL;
	struct json_object *o = json_tokener_parse(text);
	free(text);
	char *out = NULL;
	struct json_object *repo, *jids, *raw;
	if (o && json_object_object_get_ex(o, "repository", &repo) &&
	    json_object_object_get_ex(o, "ids", &jids) && json_object_object_get_ex(o, "restic", &raw) &&
	    json_object_is_type(jids, json_type_array) && json_object_is_type(raw, json_type_string) &&
	    strcmp(json_object_get_string(repo), v->r.repository) == 0 &&
	    json_object_array_length(jids) == ids->n) {
		bool same = true;
		for (size_t i = 0; i < ids->n && same; i++)
			same = strcmp(json_object_get_string(json_object_array_get_idx(jids, i)), ids->v[i]) == 0;
		if (same)
			out = xstrdup(json_object_get_string(raw));
	}
	json_object_put(o);
	return out;
}

static void save_list(struct sb_snapview *v, const struct sb_strv *ids, const char *raw)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "repository", json_object_new_string(v->r.repository));
	struct json_object *a = json_object_new_array();
	for (size_t i = 0; i < ids->n; i++)
		json_object_array_add(a, json_object_new_string(ids->v[i]));
	json_object_object_add(o, "ids", a);
	json_object_object_add(o, "restic", json_object_new_string(raw));
	const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	int rc = sb_write_file_atomic(v->list_cache, text, strlen(text), 0600);
	if (rc < 0)
		sb_warn("cannot write the snapshot list cache '%s': %s", v->list_cache, strerror(-rc));
	json_object_put(o);
}

static int run_snapshots(struct sb_snapview *v, char **raw, char **err)
{
	struct snap_restic_cmd cmd;
	snap_restic_cmd_init(&cmd, &v->r, "snapshots");
	sb_strv_push(&cmd.argv, "--json");
	struct sb_run_opts o = {0};
	snap_restic_run_opts(&cmd, &v->r, &o);
	o.timeout_s = (double)v->r.timeout_s;
	o.capture_stdout = true;
	struct sb_run_result res;
	int rc = sb_run(&o, &res);
	snap_restic_cmd_free(&cmd);
	if (rc != 0) {
		cleanup_free char *why = snap_restic_describe(&res, o.timeout_s);
		*err = xasprintf("listing the snapshots of %s repository '%s' failed: %s", v->label,
				 v->r.repository, why);
		sb_run_result_free(&res);
		return -1;
	}
	*raw = res.out;
	res.out = NULL;
	sb_run_result_free(&res);
	return 0;
}

/* Loads the list (from the disk cache when the repository's snapshots/ still matches). */
/* The native reader's list, then its index (in that order: a new snapshot's blobs are indexed by then). */
static int native_snapshots(struct sb_snapview *v, struct sb_resticrepo *native, char **raw, char **err)
{
	char *why = NULL;
	if (sb_resticrepo_snapshots_json(native, raw, &why) < 0 || sb_resticrepo_load_index(native, &why) < 0) {
		*err = xasprintf("listing the snapshots of %s repository '%s' failed: %s", v->label, v->r.repository,
				 why);
		free(why);
		free(*raw);
		*raw = NULL;
		return -1;
	}
	return 0;
}

/* The native reader if it was opened, without trying to. */
static struct sb_resticrepo *native_peek(struct sb_snapview *v)
{
	pthread_mutex_lock(&v->mu);
	struct sb_resticrepo *native = v->backend == BACKEND_NATIVE ? v->native : NULL;
	pthread_mutex_unlock(&v->mu);
	return native;
}

/*
 * The native reader, or NULL when restic reads. A local repository is
 * opened on first need (the key derivation takes a few tenths of a
 * second, once; others needing it meanwhile wait). One that does not
 * exist yet is tried again next time; any other refusal leaves the view
 * on restic for good, said once.
 */
static struct sb_resticrepo *native_of(struct sb_snapview *v)
{
	pthread_mutex_lock(&v->mu);
	while (v->backend == BACKEND_UNDECIDED && v->native_opening && !v->stopping)
		pthread_cond_wait(&v->changed, &v->mu);
	bool open = v->backend == BACKEND_UNDECIDED && !v->stopping;
	v->native_opening = open;
	struct sb_resticrepo *native = v->backend == BACKEND_NATIVE ? v->native : NULL;
	pthread_mutex_unlock(&v->mu);
	if (!open)
		return native;
	const char *dir = snap_repo_local_path(v->r.repository);
	char *why = NULL;
	double t0 = sb_now_monotonic();
	int rc = sb_resticrepo_open(dir, v->r.password, &native, &why);
	if (rc == 0)
		sb_info("%s repository '%s': browsed with the native reader (format version %d, opened in %.2f s)",
			v->label, v->r.repository, sb_resticrepo_version(native), sb_now_monotonic() - t0);
	else if (rc != -ENOENT)
		sb_warn("%s repository '%s': browsed through restic, the native reader refused it: %s", v->label,
			v->r.repository, why);
	free(why);
	pthread_mutex_lock(&v->mu);
	v->native_opening = false;
	if (rc == 0) {
		v->native = native;
		v->backend = BACKEND_NATIVE;
	} else if (rc != -ENOENT) {
		v->backend = BACKEND_RESTIC;
	}
	pthread_cond_broadcast(&v->changed);
	pthread_mutex_unlock(&v->mu);
	return rc == 0 ? native : NULL;
}

static int load_list(struct sb_snapview *v, struct sb_snapshot_list *out, struct timespec *mtime,
		     char **err)
{
	struct sb_strv ids = {0};
	bool have_ids = v->snapdir && read_snapdir(v->snapdir, &ids, mtime) == 0;
	/*
	 * The cache needs no key: after a restart, browsing starts before the
	 * native reader has derived one. A job may have changed the index
	 * without a new snapshot (prune): an open reader looks again.
	 */
	cleanup_free char *raw = have_ids ? cached_list(v, &ids) : NULL;
	struct sb_resticrepo *native = raw ? native_peek(v) : native_of(v);
	char *why = NULL;
	bool fresh = false;
	if (!raw) {
		if ((native ? native_snapshots(v, native, &raw, err) : run_snapshots(v, &raw, err)) < 0) {
			sb_strv_free(&ids);
			return -1;
		}
		fresh = true;
	} else if (native && sb_resticrepo_load_index(native, &why) < 0) {
		*err = xasprintf("reading the index of %s repository '%s' failed: %s", v->label, v->r.repository, why);
		free(why);
		sb_strv_free(&ids);
		return -1;
	}
	if (sb_restic_parse_snapshots(raw, strlen(raw), out) < 0) {
		*err = xasprintf("restic printed a snapshot list of %s repository '%s' that cannot be read",
				 v->label, v->r.repository);
		sb_strv_free(&ids);
		return -1;
	}
	if (fresh && have_ids)
		save_list(v, &ids, raw);
	sb_strv_free(&ids);
	return 0;
}

/* ---- trees ---- */

static struct tree_entry *tree_find(struct sb_snapview *v, const char *id)
{
	for (size_t i = 0; i < v->n_trees; i++)
		if (strcmp(v->trees[i]->id, id) == 0)
			return v->trees[i];
	return NULL;
}

static char *snapshot_root(const struct sb_snapshot *s)
{
	/* The builder works out the common directory of several paths itself. */
	if (s->paths.n == 1)
		return xstrdup(s->paths.v[0]);
	return NULL;
}

static struct tree_entry *tree_get(struct sb_snapview *v, const struct sb_snapshot *s)
{
	struct tree_entry *t = tree_find(v, s->id);
	if (t)
		return t;
	t = xcalloc(1, sizeof(*t));
	snprintf(t->id, sizeof(t->id), "%s", s->id);
	t->root = snapshot_root(s);
	snprintf(t->tree_id, sizeof(t->tree_id), "%s", s->tree ? s->tree : "");
	t->native_root = sb_resticrepo_snapshot_root((const char *const *)s->paths.v, s->paths.n);
	t->time = s->time_utc;
	char name[48];
	sb_snapshot_dirname(s, name, sizeof(name));
	t->label = xasprintf("%s%s@%s", strcmp(v->label, "local") == 0 ? "" : "cloud:",
			     s->stack ? s->stack : "?", name);
	if (v->n_trees == v->cap_trees) {
		v->cap_trees = v->cap_trees ? v->cap_trees * 2 : 16;
		v->trees = xrealloc(v->trees, v->cap_trees * sizeof(*v->trees));
	}
	v->trees[v->n_trees++] = t;
	return t;
}

static void tree_release(struct sb_snapview *v, struct tree_entry *t)
{
	sb_snaptree_unref(t->tree);
	t->tree = NULL;
	free(t->cost);
	t->cost = NULL;
	v->tree_bytes -= t->bytes;
	t->bytes = 0;
	t->state = TREE_NONE;
}

/* Drops the least recently used trees (never keep) until the budget holds. */
static void trees_evict(struct sb_snapview *v, const struct tree_entry *keep)
{
	while (v->tree_bytes > v->tree_budget) {
		struct tree_entry *victim = NULL;
		for (size_t i = 0; i < v->n_trees; i++) {
			struct tree_entry *t = v->trees[i];
			if (t != keep && t->state == TREE_READY && (!victim || t->used < victim->used))
				victim = t;
		}
		if (!victim)
			return;
		sb_debug("snapshot %s: tree dropped from memory (budget %" PRIu64 " MiB)", victim->label,
			 v->tree_budget >> 20);
		tree_release(v, victim);
	}
}

static void tree_enqueue(struct sb_snapview *v, struct tree_entry *t, bool prefetch)
{
	t->state = TREE_QUEUED;
	t->prefetch = prefetch;
	/* Requests go before every prefetch (someone waits for them), prefetches last. */
	struct tree_entry **pp = &v->queue_head;
	while (*pp && (prefetch || !(*pp)->prefetch))
		pp = &(*pp)->next;
	t->next = *pp;
	*pp = t;
	if (!t->next)
		v->queue_tail = t;
	pthread_cond_signal(&v->work);
}

static char *tree_file(const struct sb_snapview *v, const char *id)
{
	return xasprintf("%s/%s", v->tree_dir, id);
}

struct disk_tree {
	char *name;
	double mtime;
	uint64_t size;
};

static int cmp_disk_tree(const void *a, const void *b)
{
	const struct disk_tree *x = a, *y = b;
	return (x->mtime > y->mtime) - (x->mtime < y->mtime);
}

/*
 * Removes tree files of snapshots that are gone (when list is given) and
 * the oldest ones past the disk budget, never keep_id's.
 */
static void prune_disk_trees(struct sb_snapview *v, const struct snaplist *list, const char *keep_id)
{
	DIR *d = opendir(v->tree_dir);
	if (!d)
		return;
	struct disk_tree *all = NULL;
	size_t n = 0, cap = 0;
	uint64_t total = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
			continue;
		/*
		 * "ID.tmp.PID" is a tree being written (by this process or a
		 * CLI's): removing it would fail that write. Only one left over
		 * by a crash is old.
		 */
		if (strlen(de->d_name) != 2 * SB_RESTIC_ID_LEN) {
			if (strstr(de->d_name, ".tmp.") && time(NULL) - st.st_mtim.tv_sec > STALE_TEMP_S)
				unlinkat(dirfd(d), de->d_name, 0);
			continue;
		}
		if (list && !list_find_id(list, de->d_name)) {
			unlinkat(dirfd(d), de->d_name, 0);
			continue;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			all = xrealloc(all, cap * sizeof(*all));
		}
		all[n++] = (struct disk_tree){xstrdup(de->d_name),
					      (double)st.st_mtim.tv_sec + st.st_mtim.tv_nsec / 1e9,
					      (uint64_t)st.st_size};
		total += (uint64_t)st.st_size;
	}
	if (n > 1)
		qsort(all, n, sizeof(*all), cmp_disk_tree);
	uint64_t budget = v->tree_budget * DISK_TREES_FACTOR;
	for (size_t i = 0; i < n; i++) {
		if (total > budget && !(keep_id && strcmp(all[i].name, keep_id) == 0)) {
			unlinkat(dirfd(d), all[i].name, 0);
			total -= all[i].size;
		}
		free(all[i].name);
	}
	free(all);
	closedir(d);
}

/* Lists snapshot t with the native reader. Returns the tree or NULL with *err. */
static struct sb_snaptree *load_tree_native(struct sb_snapview *v, struct sb_resticrepo *native,
					    const struct tree_entry *t, char **err)
{
	uint8_t tree_id[SB_RESTIC_ID_LEN];
	if (sb_restic_id_parse(t->tree_id, strlen(t->tree_id), tree_id) < 0 || !t->native_root) {
		*err = xasprintf("snapshot %s: the snapshot names no tree or no absolute path", t->label);
		return NULL;
	}
	struct sb_snaptree *tree = NULL;
	size_t skipped = 0;
	char *why = NULL;
	if (sb_resticrepo_snaptree(native, tree_id, t->native_root, (int64_t)t->time, &tree, &skipped, &why) < 0) {
		*err = xasprintf("listing snapshot %s failed: %s", t->label, why);
		free(why);
		return NULL;
	}
	if (skipped)
		sb_warn("snapshot %s: %zu entries of a type the native reader does not know are not shown", t->label,
			skipped);
	return tree;
}

/* Runs in a worker, without mu. Returns the tree (*fresh: listed now, not yet on disk) or NULL with *err. */
static struct sb_snaptree *load_tree(struct sb_snapview *v, const struct tree_entry *t, bool *fresh, char **err)
{
	const char *id = t->id, *root = t->root, *label = t->label;
	cleanup_free char *path = tree_file(v, id);
	struct sb_snaptree *tree = NULL;
	*fresh = false;
	int rc = sb_snaptree_load_file(path, &tree);
	if (rc == 0 && root && strcmp(sb_snaptree_root_path(tree), root) != 0) {
		sb_snaptree_unref(tree);
		tree = NULL;
		rc = -EINVAL;
	}
	if (rc == 0) {
		/* The file's mtime orders the on-disk trees for pruning. */
		utimensat(AT_FDCWD, path, NULL, 0);
		sb_debug("snapshot %s: tree read from %s", label, path);
		return tree;
	}
	if (rc != -ENOENT)
		sb_warn("snapshot %s: ignoring the damaged tree cache '%s'", label, path);
	double t0 = sb_now_monotonic();
	struct sb_resticrepo *native = native_of(v);
	tree = native ? load_tree_native(v, native, t, err) : sb_snaptree_load_restic(&v->r, id, root, err);
	if (!tree)
		return NULL;
	sb_info("snapshot %s: listed %u entries in %.2f s (%s)", label, sb_snaptree_count(tree),
		sb_now_monotonic() - t0, native ? "native reader" : "restic");
	*fresh = true;
	return tree;
}

/*
 * Keeps a tree just listed on disk for the next start. Called
 * after the tree was published: nobody waits for the fsync.
 */
static void save_tree(struct sb_snapview *v, const struct sb_snaptree *tree, const char *id,
		      const char *label)
{
	cleanup_free char *path = tree_file(v, id);
	int rc = sb_mkdir_p(v->tree_dir, 0700);
	if (rc == 0)
		rc = sb_snaptree_save(tree, path);
	if (rc < 0)
		sb_warn("snapshot %s: cannot write the tree cache '%s': %s", label, path, strerror(-rc));
	else
		prune_disk_trees(v, NULL, id);
}

/* After a list load (mu held): queue the newest tree of each stack that is built nowhere yet. */
static void prefetch_latest(struct sb_snapview *v, const struct snaplist *sl)
{
	for (size_t k = 0; k < sl->stacks.n; k++) {
		const struct sb_snapshot *latest = NULL;
		for (size_t i = sl->l.n; i-- > 0 && !latest;)
			if (sl->l.v[i].stack && strcmp(sl->l.v[i].stack, sl->stacks.v[k]) == 0)
				latest = &sl->l.v[i];
		struct tree_entry *t = tree_get(v, latest);
		if (t->state != TREE_NONE)
			continue;
		cleanup_free char *path = tree_file(v, t->id);
		if (access(path, F_OK) == 0)
			continue;
		tree_enqueue(v, t, true);
	}
}

static const struct sb_snapshot *latest_of(const struct snaplist *sl, const char *stack)
{
	for (size_t i = sl->l.n; i-- > 0;)
		if (sl->l.v[i].stack && strcmp(sl->l.v[i].stack, stack) == 0)
			return &sl->l.v[i];
	return NULL;
}

/* Makes t an ordinary entry for s, the snapshot the list says is its stack's newest. */
static void spec_settle(struct tree_entry *t, const struct sb_snapshot *s)
{
	t->guessing = false;
	free(t->root);
	t->root = snapshot_root(s);
	snprintf(t->tree_id, sizeof(t->tree_id), "%s", s->tree ? s->tree : "");
	free(t->native_root);
	t->native_root = sb_resticrepo_snapshot_root((const char *const *)s->paths.v, s->paths.n);
	t->time = s->time_utc;
}

/* The first list arrived (mu held): guesses still waiting become ordinary loads, running ones learn their id. */
static void spec_merge(struct sb_snapview *v, const struct snaplist *sl)
{
	for (size_t i = 0; i < v->n_trees; i++) {
		struct tree_entry *t = v->trees[i];
		if (!t->guessing || t->id[0])
			continue;
		const struct sb_snapshot *s = latest_of(sl, t->spec_stack);
		if (!s || tree_find(v, s->id))
			continue;
		snprintf(t->id, sizeof(t->id), "%s", s->id);
		if (t->state == TREE_QUEUED)
			spec_settle(t, s);
	}
}

/* Before the first list (mu held): start listing stack's newest snapshot at once, in parallel. */
static void speculate_locked(struct sb_snapview *v, const char *stack)
{
	for (size_t i = 0; i < v->n_trees; i++)
		if (v->trees[i]->spec_stack && strcmp(v->trees[i]->spec_stack, stack) == 0)
			return;
	struct tree_entry *t = xcalloc(1, sizeof(*t));
	t->spec_stack = xstrdup(stack);
	t->guessing = true;
	t->label = xasprintf("%s%s@latest", strcmp(v->label, "local") == 0 ? "" : "cloud:", stack);
	if (v->n_trees == v->cap_trees) {
		v->cap_trees = v->cap_trees ? v->cap_trees * 2 : 16;
		v->trees = xrealloc(v->trees, v->cap_trees * sizeof(*v->trees));
	}
	v->trees[v->n_trees++] = t;
	tree_enqueue(v, t, false);
}

/* ---- the workers ---- */

static void do_list_load(struct sb_snapview *v, uint64_t req)
{
	struct sb_snapshot_list l = {0};
	struct timespec mtime = {0};
	char *err = NULL;
	double t0 = sb_now_monotonic();
	int rc = load_list(v, &l, &mtime, &err);
	struct snaplist *sl = rc == 0 ? list_build(&l) : NULL;
	if (sl)
		sb_debug("%s repository: %zu snapshots listed in %.2f s", v->label, sl->l.n,
			 sb_now_monotonic() - t0);
	pthread_mutex_lock(&v->mu);
	v->list_loading = false;
	v->list_done = req;
	if (sl) {
		bool differs = !v->list || v->list->l.n != sl->l.n;
		for (size_t i = 0; !differs && i < sl->l.n; i++)
			differs = strcmp(v->list->l.v[i].id, sl->l.v[i].id) != 0;
		if (differs)
			v->generation++;
		list_unref_locked(v->list);
		v->list = sl;
		v->list_mtime = mtime;
		free(v->list_error);
		v->list_error = NULL;
		spec_merge(v, sl);
		if (v->prefetch)
			prefetch_latest(v, sl);
	} else {
		/* Say it once per distinct failure (and not at all when we stopped it). */
		if (!atomic_load(&v->stop) && (!v->list_error || strcmp(v->list_error, err) != 0))
			sb_error("%s", err);
		free(v->list_error);
		v->list_error = err;
		v->list_failed_at = sb_now_monotonic();
	}
	v->mtime_checked = sb_now_monotonic();
	pthread_cond_broadcast(&v->changed);
	if (sl) {
		sl->refs++;
		pthread_mutex_unlock(&v->mu);
		prune_disk_trees(v, sl, NULL);
		pthread_mutex_lock(&v->mu);
		list_unref_locked(sl);
	}
	pthread_mutex_unlock(&v->mu);
}

/* The guessed load ended (mu held): keep its tree if the guess was right, else load the real one. */
static void spec_done(struct sb_snapview *v, struct tree_entry *t, struct sb_snaptree *tree, const char *id,
		      char *err)
{
	bool match = tree && (!t->id[0] || strcmp(t->id, id) == 0) && !(!t->id[0] && tree_find(v, id));
	t->guessing = false;
	if (match) {
		snprintf(t->id, sizeof(t->id), "%s", id);
		t->state = TREE_READY;
		t->tree = tree;
		t->bytes = sb_snaptree_memory(tree);
		t->used = ++v->clock;
		v->tree_bytes += t->bytes;
		trees_evict(v, t);
	} else {
		sb_snaptree_unref(tree);
		sb_debug("%s: the early listing was not used (%s)", t->label, err ? err : "another snapshot");
		t->state = TREE_NONE;
		/* The list named the snapshot meanwhile: someone waits for it, load it for real. */
		if (t->id[0])
			tree_enqueue(v, t, false);
	}
	free(err);
}

static void do_tree_load(struct sb_snapview *v, struct tree_entry *t)
{
	/* t stays allocated until the view is freed; only a guess's id changes (under mu). */
	char *err = NULL;
	if (t->guessing) {
		char *id = NULL;
		double t0 = sb_now_monotonic();
		struct sb_snaptree *tree = sb_snaptree_load_restic_latest(&v->r, t->spec_stack, &id, &err);
		if (tree)
			sb_info("snapshot %s: listed %u entries in %.1f s, while the snapshots were listed",
				t->label, sb_snaptree_count(tree), sb_now_monotonic() - t0);
		struct sb_snaptree *keep = tree ? sb_snaptree_ref(tree) : NULL;
		pthread_mutex_lock(&v->mu);
		spec_done(v, t, tree, id, err);
		pthread_cond_broadcast(&v->changed);
		pthread_mutex_unlock(&v->mu);
		/* Right or wrong guess, it is a snapshot's tree: keep it for the next start. */
		if (keep)
			save_tree(v, keep, id, t->label);
		sb_snaptree_unref(keep);
		free(id);
		return;
	}
	bool fresh;
	struct sb_snaptree *tree = load_tree(v, t, &fresh, &err);
	struct sb_snaptree *keep = tree && fresh ? sb_snaptree_ref(tree) : NULL;
	pthread_mutex_lock(&v->mu);
	if (tree) {
		t->state = TREE_READY;
		t->tree = tree;
		t->bytes = sb_snaptree_memory(tree);
		t->used = ++v->clock;
		v->tree_bytes += t->bytes;
		trees_evict(v, t);
	} else {
		t->state = TREE_FAILED;
		free(t->error);
		t->error = err;
		t->failed_at = sb_now_monotonic();
		if (!atomic_load(&v->stop))
			sb_error("%s", err);
	}
	pthread_cond_broadcast(&v->changed);
	pthread_mutex_unlock(&v->mu);
	if (keep)
		save_tree(v, keep, t->id, t->label);
	sb_snaptree_unref(keep);
}

static void *worker_main(void *arg)
{
	struct sb_snapview *v = arg;
	pthread_mutex_lock(&v->mu);
	while (!v->stopping) {
		if (!v->list_loading && v->list_req > v->list_done) {
			uint64_t req = v->list_req;
			v->list_loading = true;
			pthread_mutex_unlock(&v->mu);
			do_list_load(v, req);
			pthread_mutex_lock(&v->mu);
			continue;
		}
		struct tree_entry *t = v->queue_head;
		if (!t) {
			pthread_cond_wait(&v->work, &v->mu);
			continue;
		}
		v->queue_head = t->next;
		if (!v->queue_head)
			v->queue_tail = NULL;
		t->state = TREE_LOADING;
		pthread_mutex_unlock(&v->mu);
		do_tree_load(v, t);
		pthread_mutex_lock(&v->mu);
	}
	pthread_mutex_unlock(&v->mu);
	return NULL;
}

/* ---- waiting ---- */

static void deadline_of(double wait_s, struct timespec *ts)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	double s = wait_s > 0 ? wait_s : 0;
	ts->tv_sec += (time_t)s;
	ts->tv_nsec += (long)((s - (double)(time_t)s) * 1e9);
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Waits on changed until the deadline; returns false once it passed. mu held. */
static bool wait_changed(struct sb_snapview *v, const struct timespec *deadline)
{
	return pthread_cond_timedwait(&v->changed, &v->mu, deadline) != ETIMEDOUT;
}

static void request_list_locked(struct sb_snapview *v)
{
	v->list_req++;
	pthread_cond_signal(&v->work);
}

/* Without a list, ask restic for one, but not for every request while it keeps failing. mu held. */
static void request_first_list_locked(struct sb_snapview *v)
{
	if (!v->list && v->list_req == v->list_done && !v->list_loading &&
	    (!v->list_error || sb_now_monotonic() - v->list_failed_at >= RETRY_S))
		request_list_locked(v);
}

/*
 * The current list (a reference), reloading it first if it is missing,
 * invalidated, or the repository's snapshots/ changed. A reload that does
 * not finish in time, or fails, leaves the previous list in use; with no
 * list at all that is -EIO. mu held.
 */
static int get_list_locked(struct sb_snapview *v, double wait_s, struct snaplist **out, char **err)
{
	double now = sb_now_monotonic();
	if (v->list && v->snapdir && now - v->mtime_checked >= MTIME_CHECK_S) {
		v->mtime_checked = now;
		struct stat st;
		if (stat(v->snapdir, &st) == 0 && (st.st_mtim.tv_sec != v->list_mtime.tv_sec ||
						   st.st_mtim.tv_nsec != v->list_mtime.tv_nsec) &&
		    v->list_req == v->list_done)
			request_list_locked(v);
	}
	request_first_list_locked(v);
	uint64_t want = v->list_req;
	struct timespec deadline;
	deadline_of(wait_s, &deadline);
	while (v->list_done < want && !v->stopping)
		if (!wait_changed(v, &deadline))
			break;
	if (!v->list) {
		if (v->list_error)
			*err = xstrdup(v->list_error);
		else
			*err = xasprintf("listing the snapshots of %s repository '%s' did not finish within %.0f s",
					 v->label, v->r.repository, wait_s);
		return -EIO;
	}
	v->list->refs++;
	*out = v->list;
	return 0;
}

/* ---- the API ---- */

int sb_snapview_stacks(struct sb_snapview *v, double wait_s, struct sb_strv *out, char **err)
{
	pthread_mutex_lock(&v->mu);
	struct snaplist *sl;
	int rc = get_list_locked(v, wait_s, &sl, err);
	if (rc == 0) {
		for (size_t i = 0; i < sl->stacks.n; i++)
			sb_strv_push(out, sl->stacks.v[i]);
		list_unref_locked(sl);
	}
	pthread_mutex_unlock(&v->mu);
	return rc;
}

int sb_snapview_list(struct sb_snapview *v, const char *stack, double wait_s,
		     struct sb_snapview_snap **out, size_t *n, char **err)
{
	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&v->mu);
	struct snaplist *sl;
	int rc = get_list_locked(v, wait_s, &sl, err);
	if (rc == 0) {
		size_t cnt = 0;
		for (size_t i = 0; i < sl->l.n; i++)
			if (sl->l.v[i].stack && strcmp(sl->l.v[i].stack, stack) == 0)
				cnt++;
		*out = xcalloc(cnt ? cnt : 1, sizeof(**out));
		for (size_t i = 0; i < sl->l.n; i++)
			if (sl->l.v[i].stack && strcmp(sl->l.v[i].stack, stack) == 0)
				snap_copy(&sl->l.v[i], &(*out)[(*n)++]);
		list_unref_locked(sl);
	}
	pthread_mutex_unlock(&v->mu);
	return rc;
}

int sb_snapview_resolve(struct sb_snapview *v, const char *stack, const char *ref, double wait_s,
			struct sb_snapview_snap *out, char **err)
{
	pthread_mutex_lock(&v->mu);
	/*
	 * The first request for a stack's latest while `restic snapshots` still
	 * runs: list the tree in parallel, it is what will be asked for next.
	 */
	request_first_list_locked(v);
	if (!v->list && v->backend == BACKEND_RESTIC && (v->list_loading || v->list_req > v->list_done) &&
	    (!ref || !*ref || strcmp(ref, "latest") == 0) && stack && sb_stack_name_valid(stack))
		speculate_locked(v, stack);
	struct snaplist *sl;
	int rc = get_list_locked(v, wait_s, &sl, err);
	if (rc == 0) {
		const struct sb_snapshot *s = sb_snapshot_resolve(&sl->l, stack, ref, err);
		if (s)
			snap_copy(s, out);
		else
			rc = -ENOENT;
		list_unref_locked(sl);
	}
	pthread_mutex_unlock(&v->mu);
	return rc;
}

int sb_snapview_tree(struct sb_snapview *v, const struct sb_snapview_snap *snap, double wait_s,
		     struct sb_snaptree **tree, char **err)
{
	pthread_mutex_lock(&v->mu);
	struct tree_entry *t = tree_find(v, snap->id);
	if (!t || t->state == TREE_NONE ||
	    (t->state == TREE_FAILED && sb_now_monotonic() - t->failed_at >= RETRY_S)) {
		/* The root comes from the list's copy of the snapshot. */
		struct snaplist *sl = NULL;
		int rc = get_list_locked(v, wait_s, &sl, err);
		const struct sb_snapshot *s = rc == 0 ? list_find_id(sl, snap->id) : NULL;
		if (rc == 0 && !s) {
			*err = xasprintf("snapshot %s of stack '%s' no longer exists", snap->short_id, snap->stack);
			rc = -ENOENT;
		}
		if (rc == 0) {
			t = tree_get(v, s);
			if (t->state == TREE_NONE || t->state == TREE_FAILED)
				tree_enqueue(v, t, false);
		}
		list_unref_locked(sl);
		if (rc < 0) {
			pthread_mutex_unlock(&v->mu);
			return rc;
		}
	} else if (t->state == TREE_QUEUED && t->prefetch) {
		/* Someone waits for it now: move it ahead of other prefetches. */
		struct tree_entry **pp = &v->queue_head;
		struct tree_entry *prev = NULL;
		while (*pp && *pp != t) {
			prev = *pp;
			pp = &(*pp)->next;
		}
		if (*pp) {
			*pp = t->next;
			if (v->queue_tail == t)
				v->queue_tail = prev;
			tree_enqueue(v, t, false);
		}
	}
	struct timespec deadline;
	deadline_of(wait_s, &deadline);
	while ((t->state == TREE_QUEUED || t->state == TREE_LOADING) && !v->stopping)
		if (!wait_changed(v, &deadline))
			break;
	int rc = 0;
	switch (t->state) {
	case TREE_READY:
		t->used = ++v->clock;
		*tree = sb_snaptree_ref(t->tree);
		break;
	case TREE_FAILED:
		*err = xstrdup(t->error);
		rc = -EIO;
		break;
	default:
		*err = xasprintf("snapshot %s: listing it did not finish within %.0f s", t->label, wait_s);
		sb_warn("%s", *err);
		rc = -EIO;
		break;
	}
	pthread_mutex_unlock(&v->mu);
	return rc;
}

void sb_snapview_invalidate(struct sb_snapview *v)
{
	pthread_mutex_lock(&v->mu);
	request_list_locked(v);
	pthread_mutex_unlock(&v->mu);
}

uint64_t sb_snapview_generation(struct sb_snapview *v)
{
	pthread_mutex_lock(&v->mu);
	uint64_t g = v->generation;
	pthread_mutex_unlock(&v->mu);
	return g;
}

const char *sb_snapview_repository(const struct sb_snapview *v)
{
	return v->r.repository;
}

void sb_snapview_backend(struct sb_snapview *v, char *buf, size_t size)
{
	pthread_mutex_lock(&v->mu);
	switch (v->backend) {
	case BACKEND_NATIVE:
		snprintf(buf, size, "native (format version %d)", sb_resticrepo_version(v->native));
		break;
	case BACKEND_RESTIC:
		snprintf(buf, size, "restic");
		break;
	case BACKEND_UNDECIDED:
		snprintf(buf, size, "native, not opened yet");
		break;
	}
	pthread_mutex_unlock(&v->mu);
}

/* ---- file contents ---- */

/* What a fetch needs, copied: the cache may outlive the view. */
struct dump_source {
	char *repository;
	char *password;               /* secret: wiped on free */
	long timeout_s;
	char id[65];
	char *path;                   /* the file, or the directory a tar is made of */
	bool tar;
	struct sb_snaptree *tree;     /* tar: maps member names to nodes */
	sb_snode_id *nodes;           /* tar: item i is nodes[i], ascending */
	size_t n;
};

static void dump_source_free(void *data)
{
	struct dump_source *d = data;
	if (d->password) {
		explicit_bzero(d->password, strlen(d->password));
		free(d->password);
	}
	free(d->repository);
	free(d->path);
	sb_snaptree_unref(d->tree);
	free(d->nodes);
	free(d);
}

struct dump_run {
	struct dump_source *src;
	struct sb_snapcache_batch *batch;
	atomic_bool *cancel;
	struct sb_tar_reader *tar;
	char *error;                  /* the first failure; later output is ignored */
};

static void on_raw_file(void *userdata, const char *data, size_t len)
{
	struct dump_run *d = userdata;
	if (d->error)
		return;
	if (sb_snapcache_batch_write(d->batch, 0, data, len) < 0) {
		d->error = xstrdup("the cache file cannot be written");
		atomic_store(d->cancel, true);
	}
}

static int tar_member(void *userdata, const char *path, char type, uint64_t size)
{
	struct dump_run *d = userdata;
	if (type != '0' && type != '7')
		return -1;
	const char *root = sb_snaptree_root_path(d->src->tree);
	/* Member names are the absolute paths without their leading '/'. */
	size_t rl = strcmp(root, "/") == 0 ? 0 : strlen(root) - 1;
	if (rl && (strncmp(path, root + 1, rl) != 0 || (path[rl] != '/' && path[rl] != '\0')))
		return -1;
	sb_snode_id node;
	if (sb_snaptree_lookup(d->src->tree, path + rl, &node) < 0)
		return -1;
	size_t lo = 0, hi = d->src->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (d->src->nodes[mid] == node)
			return sb_snaptree_size(d->src->tree, node) == size ? (int)mid : -1;
		if (d->src->nodes[mid] < node)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static int tar_data(void *userdata, int tag, const void *buf, size_t len)
{
	struct dump_run *d = userdata;
	return sb_snapcache_batch_write(d->batch, (size_t)tag, buf, len) < 0 ? -1 : 0;
}

static int tar_end(void *userdata, int tag)
{
	struct dump_run *d = userdata;
	sb_snapcache_batch_done(d->batch, (size_t)tag);
	return 0;
}

static void on_raw_tar(void *userdata, const char *data, size_t len)
{
	struct dump_run *d = userdata;
	if (d->error)
		return;
	if (sb_tar_feed(d->tar, data, len, &d->error) < 0)
		atomic_store(d->cancel, true);
}

static int dump_fetch(void *data, struct sb_snapcache_batch *batch, atomic_bool *cancel, char **err)
{
	struct dump_source *src = data;
	struct sb_restic r = {.repository = src->repository, .password = src->password,
			      .timeout_s = src->timeout_s, .cancel = cancel};
	struct dump_run d = {.src = src, .batch = batch, .cancel = cancel};
	static const struct sb_tar_callbacks tar_cb = {tar_member, tar_data, tar_end};
	if (src->tar)
		d.tar = sb_tar_reader_new(&tar_cb, &d);
	struct snap_restic_cmd cmd;
	snap_restic_cmd_init(&cmd, &r, "dump");
	sb_strv_push(&cmd.argv, "--");
	sb_strv_push(&cmd.argv, src->id);
	sb_strv_push(&cmd.argv, src->path);
	struct sb_run_opts o = {0};
	snap_restic_run_opts(&cmd, &r, &o);
	o.timeout_s = (double)src->timeout_s;
	o.on_stdout = src->tar ? on_raw_tar : on_raw_file;
	o.userdata = &d;
	struct sb_run_result res;
	int rc = sb_run(&o, &res);
	snap_restic_cmd_free(&cmd);
	if (d.error) {
		*err = d.error;
		d.error = NULL;
		rc = -1;
	} else if (rc != 0) {
		*err = snap_restic_describe(&res, o.timeout_s);
		rc = -1;
	} else if (src->tar) {
		rc = sb_tar_finish(d.tar, err);
	} else {
		/* A short file is logged there and fails; the batch reports nothing more. */
		sb_snapcache_batch_done(batch, 0);
	}
	sb_run_result_free(&res);
	sb_tar_reader_free(d.tar);
	return rc;
}

/* Per node: its bytes plus 1 KiB per regular file, summed over its subtree (built once per tree). */
static uint64_t *subtree_costs(const struct sb_snaptree *tree)
{
	uint32_t n = sb_snaptree_count(tree);
	uint64_t *cost = xcalloc(n, sizeof(*cost));
	/* Children always come after their parent: one backward pass sums every subtree. */
	for (uint32_t i = n; i-- > 0;) {
		if (S_ISREG(sb_snaptree_mode(tree, i)))
			cost[i] += sb_snaptree_size(tree, i) + 1024;
		if (i > 0)
			cost[sb_snaptree_parent(tree, i)] += cost[i];
	}
	return cost;
}

static void item_key(const char *id, sb_snode_id node, char *buf, size_t size)
{
	snprintf(buf, size, "%s.%u", id, node);
}

/*
 * The directory whose regular files one tar fetch brings along with
 * node: the highest ancestor within the batch budget, or SB_SNODE_NONE
 * if even node's own directory is too big (node then comes alone).
 */
static sb_snode_id batch_dir(const struct sb_snaptree *tree, const uint64_t *cost, sb_snode_id node)
{
	if (sb_snaptree_size(tree, node) >= SB_SNAPVIEW_SMALL_FILE)
		return SB_SNODE_NONE;
	sb_snode_id dir = sb_snaptree_parent(tree, node);
	if (cost[dir] > SB_SNAPVIEW_BATCH_BYTES)
		return SB_SNODE_NONE;
	while (dir != SB_SNODE_ROOT && cost[sb_snaptree_parent(tree, dir)] <= SB_SNAPVIEW_BATCH_BYTES)
		dir = sb_snaptree_parent(tree, dir);
	return dir;
}

/* The non-empty regular files under dir, ascending (breadth-first order is ascending ids). */
static void collect_files(const struct sb_snaptree *tree, sb_snode_id dir, sb_snode_id **out,
			  size_t *n)
{
	size_t cap = 64, cnt = 0, qcap = 64, qh = 0, qt = 0;
	sb_snode_id *files = xmalloc(cap * sizeof(*files));
	sb_snode_id *queue = xmalloc(qcap * sizeof(*queue));
	queue[qt++] = dir;
	while (qh < qt) {
		sb_snode_id d = queue[qh++];
		uint32_t nc = sb_snaptree_nchildren(tree, d);
		for (uint32_t i = 0; i < nc; i++) {
			sb_snode_id c = sb_snaptree_child_at(tree, d, i);
			mode_t m = sb_snaptree_mode(tree, c);
			if (S_ISDIR(m)) {
				if (qt == qcap)
					queue = xrealloc(queue, (qcap *= 2) * sizeof(*queue));
				queue[qt++] = c;
			} else if (S_ISREG(m) && sb_snaptree_size(tree, c) > 0) {
				if (cnt == cap)
					files = xrealloc(files, (cap *= 2) * sizeof(*files));
				files[cnt++] = c;
			}
		}
	}
	free(queue);
	/* Breadth-first over a breadth-first layout is almost sorted; sort to be exact. */
	for (size_t i = 1; i < cnt; i++) {
		sb_snode_id x = files[i];
		size_t j = i;
		while (j > 0 && files[j - 1] > x) {
			files[j] = files[j - 1];
			j--;
		}
		files[j] = x;
	}
	*out = files;
	*n = cnt;
}

static ssize_t native_read(void *data, void *buf, size_t len, uint64_t off)
{
	return sb_resticfile_read(data, buf, len, off);
}

static void native_close(void *data)
{
	sb_resticfile_close(data);
}

static const struct sb_snapfile_source native_source = {native_read, native_close};

/* A file read by the native reader: no fetch, each read decrypts only the blobs it covers. */
static int open_native(struct sb_snapview *v, struct sb_resticrepo *native, const struct sb_snapview_snap *snap,
		       struct sb_snaptree *tree, sb_snode_id node, struct sb_snapfile **out)
{
	char tree_hex[65] = "";
	pthread_mutex_lock(&v->mu);
	struct tree_entry *t = tree_find(v, snap->id);
	if (t)
		snprintf(tree_hex, sizeof(tree_hex), "%s", t->tree_id);
	pthread_mutex_unlock(&v->mu);
	cleanup_free char *rel = sb_snaptree_path(tree, node);
	cleanup_free char *source = sb_snaptree_source_path(tree, node);
	cleanup_free char *what = xasprintf("%s%s@%s:/%s", strcmp(v->label, "local") == 0 ? "" : "cloud:",
					    snap->stack, snap->name, rel);
	uint8_t root[SB_RESTIC_ID_LEN];
	if (sb_restic_id_parse(tree_hex, strlen(tree_hex), root) < 0) {
		sb_error("reading %s failed: its snapshot's tree is not known", what);
		return -EIO;
	}
	struct sb_restictree *rt;
	const struct sb_restic_node *nd;
	struct sb_resticfile *f = NULL;
	char *err = NULL;
	int rc = sb_resticrepo_lookup(native, root, source, &rt, &nd, &err);
	if (rc == 0) {
		rc = sb_resticfile_open(native, nd, what, &f, &err);
		sb_restictree_unref(rt);
	}
	if (rc < 0) {
		sb_error("reading %s failed: %s", what, err);
		free(err);
		return -EIO;
	}
	*out = sb_snapfile_direct(sb_resticfile_size(f), &native_source, f);
	return 0;
}

int sb_snapview_open(struct sb_snapview *v, const struct sb_snapview_snap *snap,
		     struct sb_snaptree *tree, sb_snode_id node, struct sb_snapfile **out)
{
	*out = NULL;
	mode_t mode = sb_snaptree_mode(tree, node);
	if (S_ISDIR(mode))
		return -EISDIR;
	if (!S_ISREG(mode))
		return -EINVAL;
	uint64_t size = sb_snaptree_size(tree, node);
	struct sb_resticrepo *native = native_of(v);
	if (native)
		return size == 0 ? 0 : open_native(v, native, snap, tree, node, out);
	if (!v->content)
		return -ENOTSUP;
	if (size == 0)
		return 0;
	char key[96];
	item_key(snap->id, node, key, sizeof(key));
	int rc = sb_snapcache_open(v->content, key, size, out);
	if (rc != -ENOENT)
		return rc;

	/* Nobody has it: plan a fetch, with its small neighbours if it is small. */
	pthread_mutex_lock(&v->mu);
	struct tree_entry *t = tree_find(v, snap->id);
	uint64_t *cost = t && t->tree == tree ? t->cost : NULL;
	pthread_mutex_unlock(&v->mu);
	bool own_cost = false;
	if (!cost && size < SB_SNAPVIEW_SMALL_FILE) {
		cost = subtree_costs(tree);
		own_cost = true;
		pthread_mutex_lock(&v->mu);
		if (t && t->tree == tree && !t->cost) {
			t->cost = cost;
			t->bytes += sb_snaptree_count(tree) * sizeof(*cost);
			v->tree_bytes += sb_snaptree_count(tree) * sizeof(*cost);
			own_cost = false;
		}
		pthread_mutex_unlock(&v->mu);
	}
	sb_snode_id dir = cost ? batch_dir(tree, cost, node) : SB_SNODE_NONE;
	struct dump_source *src = xcalloc(1, sizeof(*src));
	src->repository = xstrdup(v->r.repository);
	src->password = xstrdup(v->r.password);
	src->timeout_s = v->r.timeout_s;
	snprintf(src->id, sizeof(src->id), "%s", snap->id);
	if (dir != SB_SNODE_NONE) {
		src->tar = true;
		src->path = sb_snaptree_source_path(tree, dir);
		src->tree = sb_snaptree_ref(tree);
		collect_files(tree, dir, &src->nodes, &src->n);
	} else {
		src->path = sb_snaptree_source_path(tree, node);
		src->nodes = xmalloc(sizeof(*src->nodes));
		src->nodes[0] = node;
		src->n = 1;
	}
	if (own_cost)
		free(cost);
	struct sb_snapcache_item *items = xcalloc(src->n, sizeof(*items));
	char (*keys)[96] = xcalloc(src->n, sizeof(*keys));
	for (size_t i = 0; i < src->n; i++) {
		item_key(snap->id, src->nodes[i], keys[i], sizeof(keys[i]));
		items[i] = (struct sb_snapcache_item){keys[i], sb_snaptree_size(tree, src->nodes[i])};
	}
	cleanup_free char *rel = sb_snaptree_path(tree, src->tar ? dir : node);
	cleanup_free char *what = xasprintf("%s%s@%s:/%s", strcmp(v->label, "local") == 0 ? "" : "cloud:",
					    snap->stack, snap->name, rel);
	struct sb_snapcache_source s = {
		.fetch = dump_fetch,
		.data = src,
		.free = dump_source_free,
		.what = what,
	};
	size_t n = src->n;
	sb_snapcache_fetch(v->content, items, n, &s);
	free(items);
	free(keys);
	rc = sb_snapcache_open(v->content, key, size, out);
	/* Claimed by this fetch or another, the item exists until it fails: then it is an I/O error. */
	return rc == -ENOENT ? -EIO : rc;
}

/* ---- copying out (the CLI's get) ---- */

/* A restic include pattern matching exactly path: glob characters escaped. */
static char *literal_pattern(const char *path)
{
	struct sb_buf b = {0};
	for (const char *p = path; *p; p++) {
		if (*p == '*' || *p == '?' || *p == '[' || *p == '\\')
			sb_buf_append(&b, "\\", 1);
		sb_buf_append(&b, p, 1);
	}
	return sb_buf_steal(&b);
}

int sb_snapview_get(struct sb_snapview *v, const struct sb_snapview_snap *snap,
		    struct sb_snaptree *tree, const char *path, const char *dest, char **err)
{
	sb_snode_id node;
	int rc = sb_snaptree_lookup(tree, path, &node);
	if (rc < 0) {
		*err = xasprintf("'%s' is not in snapshot %s of stack '%s': %s", path, snap->name, snap->stack,
				 strerror(-rc));
		return -1;
	}
	struct stat st;
	if (lstat(dest, &st) == 0 || errno != ENOENT) {
		*err = xasprintf("'%s' already exists: choose another destination", dest);
		return -1;
	}
	cleanup_free char *dest_copy = xstrdup(dest);
	char *slash = strrchr(dest_copy, '/');
	cleanup_free char *parent = slash ? xstrndup(dest_copy, (size_t)(slash - dest_copy)) : xstrdup(".");
	if (!*parent) {
		free(parent);
		parent = xstrdup("/");
	}
	/* Staging next to the destination: the final rename stays on one filesystem. */
	cleanup_free char *staging = xasprintf("%s/.stackback-get-XXXXXX", parent);
	if (!mkdtemp(staging)) {
		*err = xasprintf("cannot create a staging directory in '%s': %s", parent, strerror(errno));
		return -1;
	}
	cleanup_free char *source = sb_snaptree_source_path(tree, node);
	struct snap_restic_cmd cmd;
	snap_restic_cmd_init(&cmd, &v->r, "restore");
	sb_strv_push(&cmd.argv, "--target");
	sb_strv_push(&cmd.argv, staging);
	if (node != SB_SNODE_ROOT) {
		sb_strv_push(&cmd.argv, "--include");
		sb_strv_push_owned(&cmd.argv, literal_pattern(source));
	}
	sb_strv_push(&cmd.argv, "--");
	sb_strv_push(&cmd.argv, snap->id);
	struct sb_run_opts o = {0};
	snap_restic_run_opts(&cmd, &v->r, &o);
	o.timeout_s = (double)v->r.timeout_s;
	struct sb_run_result res;
	rc = sb_run(&o, &res);
	snap_restic_cmd_free(&cmd);
	if (rc != 0) {
		cleanup_free char *why = snap_restic_describe(&res, o.timeout_s);
		*err = xasprintf("restoring '%s' of snapshot %s failed: %s", path, snap->name, why);
		sb_run_result_free(&res);
		sb_rm_rf(staging);
		return -1;
	}
	sb_run_result_free(&res);
	cleanup_free char *restored = xasprintf("%s%s", staging, strcmp(source, "/") == 0 ? "" : source);
	if (rename(restored, dest) < 0) {
		*err = xasprintf("cannot move the restored '%s' to '%s': %s", path, dest, strerror(errno));
		sb_rm_rf(staging);
		return -1;
	}
	sb_rm_rf(staging);
	return 0;
}

/* ---- life cycle ---- */

struct sb_snapview *sb_snapview_new(const struct sb_snapview_opts *o, char **err)
{
	struct sb_snapview *v = xcalloc(1, sizeof(*v));
	const char *repo = o->repository ? o->repository : o->cfg->restic_repository;
	if (sb_restic_open(&v->r, o->cfg, repo, err) < 0) {
		free(v);
		return NULL;
	}
	atomic_init(&v->stop, false);
	v->r.cancel = &v->stop;
	v->cfg = o->cfg;
	v->label = xstrdup(o->label ? o->label : "local");
	v->content = o->content;
	v->prefetch = o->prefetch;
	const char *local = snap_repo_local_path(v->r.repository);
	if (local)
		v->snapdir = xasprintf("%s/snapshots", local);
	v->backend = local && o->cfg->snapshot_reader == SB_SNAPSHOT_READER_AUTO ? BACKEND_UNDECIDED : BACKEND_RESTIC;
	v->list_cache = xasprintf("%s/cache/snapshots-%s.json", o->cfg->state_dir, v->label);
	v->tree_dir = xasprintf("%s/cache/trees/%s", o->cfg->state_dir, v->label);
	long mb = o->cfg->snapshot_cache_mb > 0 ? o->cfg->snapshot_cache_mb : 1;
	v->tree_budget = (uint64_t)mb << 20;
	cleanup_free char *cache_dir = xasprintf("%s/cache", o->cfg->state_dir);
	int rc = sb_mkdir_p(cache_dir, 0700);
	if (rc < 0)
		sb_warn("cannot create the cache directory '%s': %s", cache_dir, strerror(-rc));
	pthread_mutex_init(&v->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&v->changed, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&v->work, NULL);
	if (v->prefetch)
		v->list_req = 1;
	while (v->n_threads < N_WORKERS &&
	       pthread_create(&v->threads[v->n_threads], NULL, worker_main, v) == 0)
		v->n_threads++;
	if (v->n_threads == 0) {
		*err = xstrdup("cannot start the snapshot loader threads");
		sb_snapview_free(v);
		return NULL;
	}
	return v;
}

void sb_snapview_free(struct sb_snapview *v)
{
	if (!v)
		return;
	pthread_mutex_lock(&v->mu);
	v->stopping = true;
	atomic_store(&v->stop, true);
	pthread_cond_broadcast(&v->work);
	pthread_cond_broadcast(&v->changed);
	pthread_mutex_unlock(&v->mu);
	for (size_t i = 0; i < v->n_threads; i++)
		pthread_join(v->threads[i], NULL);
	for (size_t i = 0; i < v->n_trees; i++) {
		struct tree_entry *t = v->trees[i];
		sb_snaptree_unref(t->tree);
		free(t->cost);
		free(t->root);
		free(t->native_root);
		free(t->label);
		free(t->error);
		free(t->spec_stack);
		free(t);
	}
	free(v->trees);
	list_unref_locked(v->list);
	free(v->list_error);
	pthread_cond_destroy(&v->changed);
	pthread_cond_destroy(&v->work);
	pthread_mutex_destroy(&v->mu);
	free(v->snapdir);
	free(v->list_cache);
	free(v->tree_dir);
	free(v->label);
	sb_resticrepo_free(v->native);
	sb_restic_close(&v->r);
	free(v);
}
