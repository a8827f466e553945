/*
 * The native restic repository reader (see resticrepo.h): keys, config,
 * snapshots, the index, blobs, trees and file contents of a repository
 * on a local path.
 *
 * Layout read (restic's default, the only one `restic init` makes for a
 * local path): config, keys/ID, snapshots/ID, index/ID, data/XX/ID.
 *
 * Verification, in order, for everything read:
 *  - files named by their hash (keys, snapshots, index) are hashed;
 *  - every box's MAC is checked before it is decrypted (rr_open_box);
 *  - a pack's header is checked against the index the first time the
 *    pack is used (truncation or a pack that is not what the index says);
 *  - each blob's plaintext is hashed and must equal its id.
 *
 * Caches: parsed trees (TREE_CACHE_BYTES) and decrypted data blobs
 * (BLOB_CACHE_BYTES), least recently used out; the snapshot documents
 * (small, immutable, by file name).
 */
#include "stackback/resticrepo.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "resticrepo-internal.h"
#include "stackback/log.h"

#define TREE_CACHE_BYTES (16u << 20)
#define BLOB_CACHE_BYTES (16u << 20)
/* Bounds for what a repository file may make us allocate. */
#define MAX_KEY_FILE (1u << 20)
#define MAX_CONFIG_FILE (1u << 20)
#define MAX_SNAPSHOT_FILE (16u << 20)
#define MAX_INDEX_FILE (256u << 20)
/* scrypt parameters beyond these are refused (restic uses N=2^15..2^16, r=8, p=1). */
#define MAX_SCRYPT_N (1u << 22)
#define MAX_SCRYPT_R 32
#define MAX_SCRYPT_P 16
#define MAX_SCRYPT_MEM (1ull << 30)

/* ---- a cache of refcounted values by id ---- */

struct cvalue_ops {
	void (*unref)(void *value);
	void *(*ref)(void *value);
};

struct centry {
	uint8_t id[SB_RESTIC_ID_LEN];
	void *value;                /* the cache's reference; NULL while loading */
	size_t bytes;
	bool loading;
	struct centry *hnext;       /* hash chain */
	struct centry *prev, *next; /* LRU order, oldest first; only loaded entries */
};

#define CACHE_BUCKETS 4096

struct cache {
	pthread_mutex_t mu;         /* protects everything below */
	pthread_cond_t loaded;      /* a load finished (or failed) */
	struct centry *buckets[CACHE_BUCKETS];
	struct centry lru;          /* sentinel */
	size_t bytes, budget;
	const struct cvalue_ops *ops;
};

static void cache_init(struct cache *c, size_t budget, const struct cvalue_ops *ops)
{
	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->loaded, NULL);
	c->lru.prev = c->lru.next = &c->lru;
	c->budget = budget;
	c->ops = ops;
}

static void cache_destroy(struct cache *c)
{
	for (size_t b = 0; b < CACHE_BUCKETS; b++) {
		for (struct centry *e = c->buckets[b], *next; e; e = next) {
			next = e->hnext;
			if (e->value)
				c->ops->unref(e->value);
			free(e);
		}
	}
	pthread_cond_destroy(&c->loaded);
	pthread_mutex_destroy(&c->mu);
}

static struct centry **cache_slot(struct cache *c, const uint8_t *id)
{
	uint64_t h;
	memcpy(&h, id, sizeof(h));
	struct centry **pp = &c->buckets[h % CACHE_BUCKETS];
	while (*pp && memcmp((*pp)->id, id, SB_RESTIC_ID_LEN) != 0)
		pp = &(*pp)->hnext;
	return pp;
}

static void lru_unlink(struct centry *e)
{
	e->prev->next = e->next;
	e->next->prev = e->prev;
}

static void lru_append(struct cache *c, struct centry *e)
{
	e->prev = c->lru.prev;
	e->next = &c->lru;
	c->lru.prev->next = e;
	c->lru.prev = e;
}

/* Drops the oldest values past the budget (mu held); their users keep their own references. */
static void cache_trim(struct cache *c)
{
	while (c->bytes > c->budget && c->lru.next != &c->lru) {
		struct centry *e = c->lru.next;
		lru_unlink(e);
		*cache_slot(c, e->id) = e->hnext;
		c->bytes -= e->bytes;
		c->ops->unref(e->value);
		free(e);
	}
}

typedef int (*cache_load_fn)(void *ctx, const uint8_t *id, void **value, size_t *bytes, char **err);

/*
 * The value for id (a reference for the caller), loading it with load
 * if nobody has it; concurrent callers of one id share one load.
 */
static int cache_get(struct cache *c, const uint8_t *id, cache_load_fn load, void *ctx, void **out, char **err)
{
	pthread_mutex_lock(&c->mu);
	for (;;) {
		struct centry *e = *cache_slot(c, id);
		if (!e)
			break;
		if (!e->loading) {
			lru_unlink(e);
			lru_append(c, e);
			*out = c->ops->ref(e->value);
			pthread_mutex_unlock(&c->mu);
			return 0;
		}
		/* Someone loads it: wait, then look again (a failed load leaves no entry). */
		pthread_cond_wait(&c->loaded, &c->mu);
	}
	struct centry *e = xcalloc(1, sizeof(*e));
	memcpy(e->id, id, SB_RESTIC_ID_LEN);
	e->loading = true;
	*cache_slot(c, id) = e;
	pthread_mutex_unlock(&c->mu);

	void *value = NULL;
	size_t bytes = 0;
	int rc = load(ctx, id, &value, &bytes, err);

	pthread_mutex_lock(&c->mu);
	if (rc < 0) {
		*cache_slot(c, id) = e->hnext;
		free(e);
	} else {
		e->loading = false;
		e->value = value;
		e->bytes = bytes;
		c->bytes += bytes;
		lru_append(c, e);
		*out = c->ops->ref(value);
		cache_trim(c);
	}
	pthread_cond_broadcast(&c->loaded);
	pthread_mutex_unlock(&c->mu);
	return rc;
}

static size_t cache_bytes(struct cache *c)
{
	pthread_mutex_lock(&c->mu);
	size_t b = c->bytes;
	pthread_mutex_unlock(&c->mu);
	return b;
}

/* ---- values: trees and decrypted blobs ---- */

static void *tree_ref(void *v)
{
	return sb_restictree_ref(v);
}

static void tree_unref(void *v)
{
	sb_restictree_unref(v);
}

static const struct cvalue_ops tree_ops = {tree_unref, tree_ref};

/*
 * Blob buffers of BIG_ALLOC or more are mapped, not malloc'ed: freed, they
 * go back to the system at once. With malloc, glibc's per-thread arenas
 * would keep every FUSE thread's largest blob resident long after (a
 * first cat of a big file otherwise leaves ~100 MiB behind).
 */
#define BIG_ALLOC (128u << 10)

static void *buf_alloc(size_t size)
{
	if (size < BIG_ALLOC)
		return xmalloc(size);
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (p == MAP_FAILED) {
		fputs("stackback: out of memory\n", stderr);
		abort();
	}
	return p;
}

static void buf_free(void *p, size_t size)
{
	if (!p)
		return;
	if (size < BIG_ALLOC)
		free(p);
	else
		munmap(p, size);
}

/* A decrypted blob: data points into the same allocation (after a box's IV when decrypted in place). */
struct blob {
	atomic_uint refs;
	size_t len;
	size_t alloc;             /* bytes allocated, this header included */
	uint8_t *data;
};

/* A blob with room for size bytes after its header. */
static struct blob *blob_alloc(size_t size)
{
	size_t alloc = sizeof(struct blob) + size;
	struct blob *b = buf_alloc(alloc);
	atomic_init(&b->refs, 1);
	b->alloc = alloc;
	b->len = size;
	b->data = (uint8_t *)(b + 1);
	return b;
}

static void *blob_ref(void *v)
{
	struct blob *b = v;
	atomic_fetch_add(&b->refs, 1);
	return b;
}

static void blob_unref(void *v)
{
	struct blob *b = v;
	if (b && atomic_fetch_sub(&b->refs, 1) == 1)
		buf_free(b, b->alloc);
}

static const struct cvalue_ops blob_ops = {blob_unref, blob_ref};

/* ---- the repository ---- */

/* One loaded index: immutable, shared by readers while a newer one replaces it. */
struct index_gen {
	atomic_uint refs;
	struct sb_resticindex *idx;
	struct sb_strv files;          /* sorted names of the index files read */
	_Atomic uint8_t *checked;      /* per pack: its header agreed with the index */
};

struct snapdoc {
	char id[2 * SB_RESTIC_ID_LEN + 1];
	char *json;
	size_t len;
};

struct sb_resticrepo {
	atomic_uint refs;              /* the owner's and one per open file */
	char *dir;
	int version;
	struct rr_crypto crypto;
	struct rr_key key;

	pthread_mutex_t mu;            /* protects index and the snapshot documents */
	struct index_gen *index;       /* NULL until loaded */
	struct snapdoc *snaps;         /* sorted by id */
	size_t n_snaps;

	struct cache trees;
	struct cache blobs;
	atomic_uint_fast64_t blobs_read;
	atomic_uint_fast64_t bytes_read;
};

static void index_unref(struct index_gen *g)
{
	if (!g || atomic_fetch_sub(&g->refs, 1) != 1)
		return;
	sb_resticindex_free(g->idx);
	sb_strv_free(&g->files);
	free((void *)g->checked);
	free(g);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The file names of dir/sub that are ids (64 hex digits), sorted. */
static int list_ids(const struct sb_resticrepo *r, const char *sub, struct sb_strv *out, char **err)
{
	cleanup_free char *path = xasprintf("%s/%s", r->dir, sub);
	DIR *d = opendir(path);
	if (!d) {
		int e = errno;
		*err = xasprintf("cannot list '%s': %s", path, strerror(e));
		return e == ENOENT ? -ENOENT : -EIO;
	}
	struct dirent *de;
	uint8_t id[SB_RESTIC_ID_LEN];
	while ((de = readdir(d)))
		if (sb_restic_id_parse(de->d_name, strlen(de->d_name), id) == 0)
			sb_strv_push(out, de->d_name);
	closedir(d);
	if (out->n > 1)
		qsort(out->v, out->n, sizeof(char *), cmp_str);
	return 0;
}

/* Reads a whole file of at most max bytes. Returns 0, or -errno with *err naming it. */
static int slurp(const char *path, size_t max, uint8_t **out, size_t *len, char **err)
{
	char *data;
	int rc = sb_read_file(path, max, &data, len);
	if (rc < 0) {
		*err = rc == -EFBIG ? xasprintf("'%s' is larger than %zu bytes", path, max)
				    : xasprintf("cannot read '%s': %s", path, strerror(-rc));
		return rc == -ENOENT ? -ENOENT : -EIO;
	}
	*out = (uint8_t *)data;
	return 0;
}

/* True if data hashes to the id hex names. */
static bool hash_matches(const struct sb_resticrepo *r, const void *data, size_t len, const char *hex)
{
	uint8_t want[SB_RESTIC_ID_LEN], got[SB_RESTIC_ID_LEN];
	if (sb_restic_id_parse(hex, strlen(hex), want) < 0)
		return false;
	rr_sha256(&r->crypto, data, len, got);
	return memcmp(want, got, SB_RESTIC_ID_LEN) == 0;
}

/*
 * An unpacked file (snapshots/ID, index/ID): hash, MAC, decrypt, decode.
 * Returns 0 with *json (caller frees), or -ENOENT/-EIO with *err.
 */
static int read_unpacked(const struct sb_resticrepo *r, const char *sub, const char *hex, size_t max, char **json,
			 size_t *json_len, char **err)
{
	cleanup_free char *path = xasprintf("%s/%s/%s", r->dir, sub, hex);
	cleanup_free uint8_t *raw = NULL;
	size_t len;
	int rc = slurp(path, max, &raw, &len, err);
	if (rc < 0)
		return rc;
	if (!hash_matches(r, raw, len, hex)) {
		*err = xasprintf("'%s' is damaged: its contents do not match its name", path);
		return -EIO;
	}
	if (len < RR_OVERHEAD) {
		*err = xasprintf("'%s' is damaged: it is too short to be encrypted data", path);
		return -EIO;
	}
	cleanup_free uint8_t *plain = xmalloc(len - RR_OVERHEAD + 1);
	rc = rr_open_box(&r->crypto, &r->key, raw, len, plain);
	if (rc < 0) {
		*err = rc == -EBADMSG ? xasprintf("'%s' is damaged: its MAC does not verify", path)
				      : xasprintf("decrypting '%s' failed in libcrypto", path);
		return -EIO;
	}
	const char *why;
	if (rr_decode_unpacked(plain, len - RR_OVERHEAD, r->version, json, json_len, &why) < 0) {
		*err = xasprintf("'%s' cannot be read: %s", path, why);
		return -EIO;
	}
	return 0;
}

/* ---- opening: keys and config ---- */

static bool get_uint(struct json_object *o, const char *key, uint64_t max, uint64_t *out)
{
	struct json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
		return false;
	int64_t x = json_object_get_int64(v);
	if (x < 0 || (uint64_t)x > max)
		return false;
	*out = (uint64_t)x;
	return true;
}

static const char *get_str(struct json_object *o, const char *key)
{
	struct json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* Decodes base64 field key of o into exactly want bytes. */
static bool get_b64(struct json_object *o, const char *key, uint8_t *out, size_t want)
{
	const char *s = get_str(o, key);
	if (!s)
		return false;
	size_t len = strlen(s);
	cleanup_free uint8_t *buf = xmalloc(len / 4 * 3 + 1);
	ssize_t n = rr_base64_decode(s, len, buf);
	if (n < 0 || (size_t)n != want) {
		OPENSSL_cleanse(buf, len / 4 * 3 + 1);
		return false;
	}
	memcpy(out, buf, want);
	OPENSSL_cleanse(buf, want);
	return true;
}

/* The master key from a decrypted key file payload. */
static bool parse_master(const uint8_t *plain, size_t len, struct rr_key *key)
{
	json_tokener *tok = json_tokener_new();
	struct json_object *o = json_tokener_parse_ex(tok, (const char *)plain, (int)len);
	bool ok = o && json_tokener_get_error(tok) == json_tokener_success;
	json_tokener_free(tok);
	struct json_object *mac;
	ok = ok && json_object_object_get_ex(o, "mac", &mac) && get_b64(mac, "k", key->mac_k, 16) &&
	     get_b64(mac, "r", key->mac_r, 16) && get_b64(o, "encrypt", key->enc, 32);
	json_object_put(o);
	return ok;
}

/*
 * Tries one key file. Returns 0 (key set), 1 (the password does not open
 * it), -ENOTSUP (a KDF or parameters we do not take) or -EIO, with *err.
 */
static int try_key(struct sb_resticrepo *r, const char *hex, const char *password, char **err)
{
	cleanup_free char *path = xasprintf("%s/keys/%s", r->dir, hex);
	cleanup_free uint8_t *raw = NULL;
	size_t len;
	int rc = slurp(path, MAX_KEY_FILE, &raw, &len, err);
	if (rc < 0)
		return -EIO;
	if (!hash_matches(r, raw, len, hex)) {
		*err = xasprintf("key file '%s' is damaged: its contents do not match its name", path);
		return -EIO;
	}
	struct json_object *o = json_tokener_parse((const char *)raw);
	uint64_t n, rr, p;
	const char *kdf = o ? get_str(o, "kdf") : NULL;
	const char *salt64 = o ? get_str(o, "salt") : NULL;
	const char *data64 = o ? get_str(o, "data") : NULL;
	if (!kdf || !salt64 || !data64 || !get_uint(o, "N", UINT32_MAX, &n) || !get_uint(o, "r", UINT32_MAX, &rr) ||
	    !get_uint(o, "p", UINT32_MAX, &p)) {
		json_object_put(o);
		*err = xasprintf("key file '%s' cannot be read: it lacks kdf, N, r, p, salt or data", path);
		return -EIO;
	}
	if (strcmp(kdf, "scrypt") != 0 || n < 2 || (n & (n - 1)) || n > MAX_SCRYPT_N || rr < 1 ||
	    rr > MAX_SCRYPT_R || p < 1 || p > MAX_SCRYPT_P || 128 * rr * (n + p) > MAX_SCRYPT_MEM) {
		*err = xasprintf("key file '%s' uses key derivation %s (N=%" PRIu64 ", r=%" PRIu64 ", p=%" PRIu64
				 "), which this reader does not take",
				 path, kdf, n, rr, p);
		json_object_put(o);
		return -ENOTSUP;
	}
	size_t salt_cap = strlen(salt64) / 4 * 3 + 1, data_cap = strlen(data64) / 4 * 3 + 1;
	cleanup_free uint8_t *salt = xmalloc(salt_cap);
	cleanup_free uint8_t *data = xmalloc(data_cap);
	ssize_t salt_len = rr_base64_decode(salt64, strlen(salt64), salt);
	ssize_t data_len = rr_base64_decode(data64, strlen(data64), data);
	json_object_put(o);
	if (salt_len <= 0 || data_len < RR_OVERHEAD) {
		*err = xasprintf("key file '%s' cannot be read: its salt or data is not base64", path);
		return -EIO;
	}
	uint8_t derived[64];
	if (rr_scrypt(password, salt, (size_t)salt_len, n, rr, p, derived) < 0) {
		*err = xasprintf("key derivation (scrypt) failed in libcrypto for '%s'", path);
		return -EIO;
	}
	struct rr_key user;
	memcpy(user.enc, derived, 32);
	memcpy(user.mac_k, derived + 32, 16);
	memcpy(user.mac_r, derived + 48, 16);
	OPENSSL_cleanse(derived, sizeof(derived));
	size_t plain_len = (size_t)data_len - RR_OVERHEAD;
	uint8_t *plain = xmalloc(plain_len + 1);
	rc = rr_open_box(&r->crypto, &user, data, (size_t)data_len, plain);
	OPENSSL_cleanse(&user, sizeof(user));
	if (rc == -EBADMSG) {
		free(plain);
		return 1;
	}
	bool ok = rc == 0 && parse_master(plain, plain_len, &r->key);
	OPENSSL_cleanse(plain, plain_len);
	free(plain);
	if (!ok) {
		*err = xasprintf("key file '%s' opens with the password but holds no valid master key", path);
		return -EIO;
	}
	return 0;
}

static int read_config(struct sb_resticrepo *r, char **err)
{
	cleanup_free char *path = xasprintf("%s/config", r->dir);
	cleanup_free uint8_t *raw = NULL;
	size_t len;
	int rc = slurp(path, MAX_CONFIG_FILE, &raw, &len, err);
	if (rc < 0)
		return -EIO;
	if (len < RR_OVERHEAD) {
		*err = xasprintf("'%s' is damaged: it is too short to be encrypted data", path);
		return -EIO;
	}
	cleanup_free uint8_t *plain = xmalloc(len - RR_OVERHEAD + 1);
	rc = rr_open_box(&r->crypto, &r->key, raw, len, plain);
	if (rc < 0) {
		*err = xasprintf("'%s' is damaged: its MAC does not verify with the repository's key", path);
		return -EIO;
	}
	plain[len - RR_OVERHEAD] = '\0';
	struct json_object *o = json_tokener_parse((const char *)plain);
	uint64_t version = 0;
	bool ok = o && get_uint(o, "version", UINT32_MAX, &version);
	json_object_put(o);
	if (!ok) {
		*err = xasprintf("'%s' cannot be read: it holds no repository version", path);
		return -EIO;
	}
	if (version != 1 && version != 2) {
		*err = xasprintf("repository '%s' has format version %" PRIu64 "; this reader knows 1 and 2", r->dir,
				 version);
		return -ENOTSUP;
	}
	r->version = (int)version;
	return 0;
}

int sb_resticrepo_open(const char *dir, const char *password, struct sb_resticrepo **out, char **err)
{
	*out = NULL;
	cleanup_free char *config = xasprintf("%s/config", dir);
	struct stat st;
	if (stat(config, &st) < 0) {
		int e = errno;
		*err = e == ENOENT ? xasprintf("there is no restic repository at '%s'", dir)
				   : xasprintf("cannot read '%s': %s", config, strerror(e));
		return e == ENOENT ? -ENOENT : -EIO;
	}
	struct sb_resticrepo *r = xcalloc(1, sizeof(*r));
	atomic_init(&r->refs, 1);
	r->dir = xstrdup(dir);
	pthread_mutex_init(&r->mu, NULL);
	cache_init(&r->trees, TREE_CACHE_BYTES, &tree_ops);
	cache_init(&r->blobs, BLOB_CACHE_BYTES, &blob_ops);
	if (rr_crypto_init(&r->crypto, err) < 0) {
		sb_resticrepo_free(r);
		return -ENOTSUP;
	}
	struct sb_strv keys = {0};
	int rc = list_ids(r, "keys", &keys, err);
	if (rc == 0 && keys.n == 0) {
		*err = xasprintf("repository '%s' has no key files", dir);
		rc = -EIO;
	}
	/* Every key file is tried: the password may open any of them. */
	char *first_err = NULL;
	int first_rc = 0;
	bool opened = false;
	for (size_t i = 0; rc == 0 && i < keys.n && !opened; i++) {
		char *kerr = NULL;
		int k = try_key(r, keys.v[i], password, &kerr);
		if (k == 0) {
			opened = true;
		} else if (k < 0 && !first_err) {
			first_err = kerr;
			first_rc = k;
		} else {
			free(kerr);
		}
	}
	sb_strv_free(&keys);
	if (rc == 0 && !opened) {
		if (first_err) {
			/* A damaged or foreign key file explains the failure better than "wrong password". */
			*err = first_err;
			first_err = NULL;
			rc = first_rc;
		} else {
			*err = xasprintf("wrong password: no key of repository '%s' opens with it", dir);
			rc = -EACCES;
		}
	}
	free(first_err);
	if (rc == 0)
		rc = read_config(r, err);
	if (rc < 0) {
		sb_resticrepo_free(r);
		return rc;
	}
	*out = r;
	return 0;
}

void sb_resticrepo_free(struct sb_resticrepo *r)
{
	if (!r || atomic_fetch_sub(&r->refs, 1) != 1)
		return;
	cache_destroy(&r->trees);
	cache_destroy(&r->blobs);
	index_unref(r->index);
	for (size_t i = 0; i < r->n_snaps; i++)
		free(r->snaps[i].json);
	free(r->snaps);
	rr_crypto_free(&r->crypto);
	OPENSSL_cleanse(&r->key, sizeof(r->key));
	pthread_mutex_destroy(&r->mu);
	free(r->dir);
	free(r);
}

int sb_resticrepo_version(const struct sb_resticrepo *r)
{
	return r->version;
}

const char *sb_resticrepo_dir(const struct sb_resticrepo *r)
{
	return r->dir;
}

/* ---- snapshots ---- */

static struct snapdoc *snapdoc_find(struct sb_resticrepo *r, const char *id)
{
	size_t lo = 0, hi = r->n_snaps;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(id, r->snaps[mid].id);
		if (c == 0)
			return &r->snaps[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

int sb_resticrepo_snapshot(struct sb_resticrepo *r, const char *id, char **json, size_t *len, char **err)
{
	uint8_t bin[SB_RESTIC_ID_LEN];
	if (sb_restic_id_parse(id, strlen(id), bin) < 0) {
		*err = xasprintf("'%s' is not a snapshot id", id);
		return -ENOENT;
	}
	pthread_mutex_lock(&r->mu);
	struct snapdoc *d = snapdoc_find(r, id);
	if (d) {
		*json = xstrdup(d->json);
		*len = d->len;
	}
	pthread_mutex_unlock(&r->mu);
	if (d)
		return 0;
	return read_unpacked(r, "snapshots", id, MAX_SNAPSHOT_FILE, json, len, err);
}

int sb_resticrepo_snapshots_json(struct sb_resticrepo *r, char **json, char **err)
{
	struct sb_strv ids = {0};
	int rc = list_ids(r, "snapshots", &ids, err);
	if (rc < 0)
		return rc;
	/* Documents already read are reused; the rest are read without the lock. */
	struct snapdoc *docs = xcalloc(ids.n ? ids.n : 1, sizeof(*docs));
	pthread_mutex_lock(&r->mu);
	for (size_t i = 0; i < ids.n; i++) {
		snprintf(docs[i].id, sizeof(docs[i].id), "%s", ids.v[i]);
		struct snapdoc *d = snapdoc_find(r, ids.v[i]);
		if (d) {
			docs[i].json = xstrdup(d->json);
			docs[i].len = d->len;
		}
	}
	pthread_mutex_unlock(&r->mu);
	size_t n = ids.n;
	for (size_t i = 0; i < n && rc == 0; i++)
		if (!docs[i].json)
			rc = read_unpacked(r, "snapshots", ids.v[i], MAX_SNAPSHOT_FILE, &docs[i].json, &docs[i].len, err);
	sb_strv_free(&ids);
	struct json_object *arr = json_object_new_array();
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct json_object *o = json_tokener_parse(docs[i].json);
		if (!o || !json_object_is_type(o, json_type_object)) {
			json_object_put(o);
			*err = xasprintf("'%s/snapshots/%s' cannot be read: it is not a JSON object", r->dir, docs[i].id);
			rc = -EIO;
			break;
		}
		json_object_object_add(o, "id", json_object_new_string(docs[i].id));
		json_object_object_add(o, "short_id", json_object_new_string_len(docs[i].id, 8));
		json_object_array_add(arr, o);
	}
	if (rc == 0) {
		*json = xstrdup(json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
		pthread_mutex_lock(&r->mu);
		for (size_t i = 0; i < r->n_snaps; i++)
			free(r->snaps[i].json);
		free(r->snaps);
		r->snaps = docs;
		r->n_snaps = n;
		pthread_mutex_unlock(&r->mu);
		docs = NULL;
	}
	json_object_put(arr);
	if (docs) {
		for (size_t i = 0; i < n; i++)
			free(docs[i].json);
		free(docs);
	}
	return rc;
}

/* ---- the index ---- */

static bool same_files(const struct sb_strv *a, const struct sb_strv *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->v[i], b->v[i]) != 0)
			return false;
	return true;
}

int sb_resticrepo_load_index(struct sb_resticrepo *r, char **err)
{
	struct sb_strv files = {0};
	int rc = list_ids(r, "index", &files, err);
	if (rc < 0)
		return rc == -ENOENT ? -EIO : rc;
	pthread_mutex_lock(&r->mu);
	bool same = r->index && same_files(&r->index->files, &files);
	pthread_mutex_unlock(&r->mu);
	if (same) {
		sb_strv_free(&files);
		return 0;
	}
	double t0 = sb_now_monotonic();
	struct sb_resticindex *idx = sb_resticindex_new();
	for (size_t i = 0; i < files.n; i++) {
		char *json;
		size_t len;
		rc = read_unpacked(r, "index", files.v[i], MAX_INDEX_FILE, &json, &len, err);
		if (rc < 0)
			break;
		char *why = NULL;
		rc = sb_resticindex_add_json(idx, json, len, r->version, &why);
		free(json);
		if (rc < 0) {
			*err = xasprintf("'%s/index/%s' cannot be read: %s", r->dir, files.v[i], why);
			free(why);
			break;
		}
	}
	if (rc < 0) {
		sb_resticindex_free(idx);
		sb_strv_free(&files);
		return -EIO;
	}
	sb_resticindex_finish(idx);
	struct index_gen *g = xcalloc(1, sizeof(*g));
	atomic_init(&g->refs, 1);
	g->idx = idx;
	g->files = files;
	g->checked = xcalloc(sb_resticindex_packs(idx) ? sb_resticindex_packs(idx) : 1, 1);
	sb_debug("restic repository '%s': %zu index files, %zu blobs in %zu packs read in %.2f s (%zu KiB)", r->dir,
		 files.n, sb_resticindex_count(idx), sb_resticindex_packs(idx), sb_now_monotonic() - t0,
		 sb_resticindex_memory(idx) >> 10);
	pthread_mutex_lock(&r->mu);
	struct index_gen *old = r->index;
	r->index = g;
	pthread_mutex_unlock(&r->mu);
	index_unref(old);
	return 0;
}

/* The current index (a reference), loading it on first use. */
static int get_index(struct sb_resticrepo *r, struct index_gen **out, char **err)
{
	pthread_mutex_lock(&r->mu);
	struct index_gen *g = r->index;
	if (g)
		atomic_fetch_add(&g->refs, 1);
	pthread_mutex_unlock(&r->mu);
	if (!g) {
		int rc = sb_resticrepo_load_index(r, err);
		if (rc < 0)
			return rc;
		return get_index(r, out, err);
	}
	*out = g;
	return 0;
}

/* ---- packs and blobs ---- */

static char *pack_path(const struct sb_resticrepo *r, const uint8_t *id)
{
	char hex[2 * SB_RESTIC_ID_LEN + 1];
	sb_restic_id_format(id, hex);
	return xasprintf("%s/data/%.2s/%s", r->dir, hex, hex);
}

/* Reads exactly len bytes at off. Returns 0, or -1 with errno (0 for a short file). */
static int read_at(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = 0;
			return -1;
		}
		done += (size_t)n;
	}
	return 0;
}

/*
 * The first use of a pack: its header (at the end) must verify and agree
 * with the index on every blob the index places in this pack. Catches
 * truncated packs and an index that describes another pack.
 */
static int check_pack(struct sb_resticrepo *r, const struct index_gen *g, uint32_t pack, int fd,
		      const char *path, char **err)
{
	struct stat st;
	if (fstat(fd, &st) < 0) {
		*err = xasprintf("cannot read '%s': %s", path, strerror(errno));
		return -EIO;
	}
	uint64_t size = (uint64_t)st.st_size;
	uint8_t lenbuf[4];
	if (size < 4 + RR_OVERHEAD || read_at(fd, lenbuf, 4, size - 4) < 0) {
		*err = xasprintf("pack '%s' is truncated: %" PRIu64 " bytes cannot hold a header", path, size);
		return -EIO;
	}
	uint64_t hlen = (uint64_t)lenbuf[0] | (uint64_t)lenbuf[1] << 8 | (uint64_t)lenbuf[2] << 16 |
			(uint64_t)lenbuf[3] << 24;
	if (hlen < RR_OVERHEAD || hlen > size - 4) {
		*err = xasprintf("pack '%s' is truncated or damaged: its header length %" PRIu64
				 " does not fit its %" PRIu64 " bytes",
				 path, hlen, size);
		return -EIO;
	}
	uint64_t data_end = size - 4 - hlen;
	cleanup_free uint8_t *box = xmalloc(hlen);
	cleanup_free uint8_t *plain = xmalloc(hlen - RR_OVERHEAD + 1);
	if (read_at(fd, box, hlen, data_end) < 0) {
		*err = xasprintf("cannot read the header of pack '%s': %s", path,
				 errno ? strerror(errno) : "unexpected end of file");
		return -EIO;
	}
	if (rr_open_box(&r->crypto, &r->key, box, hlen, plain) < 0) {
		*err = xasprintf("pack '%s' is truncated or damaged: its header does not verify", path);
		return -EIO;
	}
	struct sb_resticpack_entry *entries;
	size_t n;
	char *why = NULL;
	if (sb_resticpack_parse_header(plain, hlen - RR_OVERHEAD, r->version, data_end, &entries, &n, &why) < 0) {
		*err = xasprintf("pack '%s' has a bad header: %s", path, why);
		free(why);
		return -EIO;
	}
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		ssize_t pos = sb_resticindex_find(g->idx, entries[i].id, entries[i].type);
		if (pos < 0)
			continue;
		struct sb_restic_blob b;
		sb_resticindex_get(g->idx, (size_t)pos, &b);
		/* The index may hold the blob from another pack: then this copy is simply unused. */
		if (b.pack != pack)
			continue;
		if (b.offset != entries[i].offset || b.length != entries[i].length ||
		    b.compressed != entries[i].compressed ||
		    (b.compressed && b.raw_length != entries[i].raw_length)) {
			char hex[2 * SB_RESTIC_ID_LEN + 1];
			sb_restic_id_format(entries[i].id, hex);
			*err = xasprintf("pack '%s' does not hold blob %.16s where the index says", path, hex);
			rc = -EIO;
		}
	}
	free(entries);
	return rc;
}

/*
 * Reads blob pos of index g: pack header check on the pack's first use,
 * MAC, decryption, decompression, and the plaintext's hash against the
 * id. Returns 0 with *out (a struct blob, one reference) or -EIO.
 */
static int read_blob(struct sb_resticrepo *r, const struct index_gen *g, size_t pos, const uint8_t *id,
		     struct blob **out, char **err)
{
	struct sb_restic_blob b;
	sb_resticindex_get(g->idx, pos, &b);
	char hex[2 * SB_RESTIC_ID_LEN + 1];
	sb_restic_id_format(id, hex);
	cleanup_free char *path = pack_path(r, sb_resticindex_pack_id(g->idx, b.pack));
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		*err = xasprintf("cannot read blob %.16s: pack '%s': %s", hex, path, strerror(errno));
		return -EIO;
	}
	if (!atomic_load(&g->checked[b.pack])) {
		int rc = check_pack(r, g, b.pack, fd, path, err);
		if (rc < 0)
			return rc;
		atomic_store(&g->checked[b.pack], 1);
	}
	/*
	 * The box is read into the blob itself and decrypted in place: an
	 * uncompressed blob's plaintext is its box without IV and MAC. A
	 * compressed one is decompressed from there into a blob of its own.
	 */
	struct blob *box = blob_alloc(b.length);
	if (read_at(fd, box->data, b.length, b.offset) < 0) {
		*err = xasprintf("pack '%s' is truncated: blob %.16s at byte %" PRIu32 " is cut short", path, hex,
				 b.offset);
		blob_unref(box);
		return -EIO;
	}
	atomic_fetch_add(&r->blobs_read, 1);
	atomic_fetch_add(&r->bytes_read, b.length);
	size_t plain_len = b.length - RR_OVERHEAD;
	uint8_t *plain = box->data + RR_IV_LEN;
	struct blob *res = box;
	const char *why = NULL;
	int rc = rr_open_box(&r->crypto, &r->key, box->data, b.length, plain);
	if (rc == -EBADMSG) {
		why = "its MAC does not verify";
	} else if (rc < 0) {
		why = "libcrypto failed to decrypt it";
	} else if (b.compressed) {
		res = blob_alloc(b.raw_length);
		if (rr_zstd_exact(plain, plain_len, res->data, b.raw_length) < 0)
			why = "it does not decompress to its length";
		blob_unref(box);
	} else {
		box->data = plain;
		box->len = plain_len;
	}
	if (!why) {
		uint8_t got[SB_RESTIC_ID_LEN];
		rr_sha256(&r->crypto, res->data, res->len, got);
		if (memcmp(got, id, SB_RESTIC_ID_LEN) != 0)
			why = "its contents do not match its id";
	}
	if (why) {
		*err = xasprintf("blob %.16s in pack '%s' is damaged: %s", hex, path, why);
		blob_unref(res);
		return -EIO;
	}
	*out = res;
	return 0;
}

int sb_resticrepo_read_blob(struct sb_resticrepo *r, enum sb_restic_blob_type type,
			    const uint8_t id[SB_RESTIC_ID_LEN], void **out, size_t *len, char **err)
{
	struct index_gen *g;
	int rc = get_index(r, &g, err);
	if (rc < 0)
		return rc;
	ssize_t pos = sb_resticindex_find(g->idx, id, type);
	if (pos < 0) {
		char hex[2 * SB_RESTIC_ID_LEN + 1];
		sb_restic_id_format(id, hex);
		*err = xasprintf("the index of '%s' has no %s blob %.16s", r->dir,
				 type == SB_RESTIC_BLOB_TREE ? "tree" : "data", hex);
		index_unref(g);
		return -ENOENT;
	}
	struct blob *b;
	rc = read_blob(r, g, (size_t)pos, id, &b, err);
	index_unref(g);
	if (rc < 0)
		return rc;
	*len = b->len;
	*out = xmalloc(b->len ? b->len : 1);
	memcpy(*out, b->data, b->len);
	blob_unref(b);
	return 0;
}

int sb_resticrepo_blob_location(struct sb_resticrepo *r, enum sb_restic_blob_type type,
				const uint8_t id[SB_RESTIC_ID_LEN], char **pack, uint32_t *offset, char **err)
{
	struct index_gen *g;
	int rc = get_index(r, &g, err);
	if (rc < 0)
		return rc;
	ssize_t pos = sb_resticindex_find(g->idx, id, type);
	if (pos < 0) {
		char hex[2 * SB_RESTIC_ID_LEN + 1];
		sb_restic_id_format(id, hex);
		*err = xasprintf("the index of '%s' has no blob %.16s", r->dir, hex);
		index_unref(g);
		return -ENOENT;
	}
	struct sb_restic_blob b;
	sb_resticindex_get(g->idx, (size_t)pos, &b);
	*pack = pack_path(r, sb_resticindex_pack_id(g->idx, b.pack));
	*offset = b.offset;
	index_unref(g);
	return 0;
}

/* ---- trees ---- */

static int load_tree(void *ctx, const uint8_t *id, void **value, size_t *bytes, char **err)
{
	struct sb_resticrepo *r = ctx;
	void *json;
	size_t len;
	int rc = sb_resticrepo_read_blob(r, SB_RESTIC_BLOB_TREE, id, &json, &len, err);
	if (rc < 0)
		return rc == -ENOENT ? -EIO : rc;
	struct sb_restictree *t;
	char *why = NULL;
	rc = sb_restictree_parse(json, len, &t, &why);
	free(json);
	if (rc < 0) {
		char hex[2 * SB_RESTIC_ID_LEN + 1];
		sb_restic_id_format(id, hex);
		*err = xasprintf("tree %.16s of '%s' cannot be read: %s", hex, r->dir, why);
		free(why);
		return -EIO;
	}
	*value = t;
	*bytes = sb_restictree_memory(t);
	return 0;
}

int rr_read_tree(struct sb_resticrepo *r, const uint8_t *id, struct sb_restictree **out, char **err)
{
	void *v;
	size_t bytes;
	int rc = load_tree(r, id, &v, &bytes, err);
	if (rc == 0)
		*out = v;
	return rc;
}

int sb_resticrepo_tree(struct sb_resticrepo *r, const uint8_t id[SB_RESTIC_ID_LEN], struct sb_restictree **out,
		       char **err)
{
	void *v;
	int rc = cache_get(&r->trees, id, load_tree, r, &v, err);
	if (rc < 0)
		return rc;
	*out = v;
	return 0;
}

int sb_resticrepo_lookup(struct sb_resticrepo *r, const uint8_t root[SB_RESTIC_ID_LEN], const char *path,
			 struct sb_restictree **tree, const struct sb_restic_node **node, char **err)
{
	uint8_t cur[SB_RESTIC_ID_LEN];
	memcpy(cur, root, SB_RESTIC_ID_LEN);
	struct sb_restictree *t = NULL;
	const struct sb_restic_node *nd = NULL;
	const char *p = path;
	for (;;) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		const char *end = strchrnul(p, '/');
		if (nd) {
			if (nd->type != SB_RESTIC_NODE_DIR) {
				*err = xasprintf("'%.*s' in '%s' is not a directory", (int)(p - path), path, path);
				sb_restictree_unref(t);
				return -ENOTDIR;
			}
			memcpy(cur, nd->subtree, SB_RESTIC_ID_LEN);
		}
		sb_restictree_unref(t);
		int rc = sb_resticrepo_tree(r, cur, &t, err);
		if (rc < 0)
			return rc;
		nd = sb_restictree_find(t, p, (size_t)(end - p));
		if (!nd) {
			*err = xasprintf("'%s' is not in the snapshot: no '%.*s'", path, (int)(end - p), p);
			sb_restictree_unref(t);
			return -ENOENT;
		}
		p = end;
	}
	if (!nd) {
		*err = xstrdup("an empty path names no node");
		return -ENOENT;
	}
	*tree = t;
	*node = nd;
	return 0;
}

/* ---- file contents ---- */

struct sb_resticfile {
	struct sb_resticrepo *r;
	struct index_gen *g;        /* the positions below are in this index */
	char *name;
	uint32_t n;
	uint32_t *pos;              /* index positions of the content blobs */
	uint64_t *start;            /* n + 1 offsets: blob i covers [start[i], start[i + 1]) */
	atomic_bool failed_logged;
};

int sb_resticfile_open(struct sb_resticrepo *r, const struct sb_restic_node *node, const char *name,
		       struct sb_resticfile **out, char **err)
{
	if (node->type != SB_RESTIC_NODE_FILE) {
		*err = xasprintf("'%s' is not a regular file", name);
		return -EINVAL;
	}
	struct index_gen *g;
	int rc = get_index(r, &g, err);
	if (rc < 0)
		return rc;
	struct sb_resticfile *f = xcalloc(1, sizeof(*f));
	atomic_fetch_add(&r->refs, 1);
	f->r = r;
	f->g = g;
	f->name = xstrdup(name);
	f->n = node->n_content;
	f->pos = xmalloc((f->n ? f->n : 1) * sizeof(*f->pos));
	f->start = xmalloc(((size_t)f->n + 1) * sizeof(*f->start));
	f->start[0] = 0;
	for (uint32_t i = 0; i < f->n; i++) {
		ssize_t pos = sb_resticindex_find(g->idx, node->content[i], SB_RESTIC_BLOB_DATA);
		if (pos < 0) {
			char hex[2 * SB_RESTIC_ID_LEN + 1];
			sb_restic_id_format(node->content[i], hex);
			*err = xasprintf("'%s' cannot be read: its blob %.16s is not in the index of '%s'", name, hex,
					 r->dir);
			sb_resticfile_close(f);
			return -EIO;
		}
		struct sb_restic_blob b;
		sb_resticindex_get(g->idx, (size_t)pos, &b);
		f->pos[i] = (uint32_t)pos;
		f->start[i + 1] = f->start[i] + b.raw_length;
	}
	if (f->start[f->n] != node->size)
		sb_warn("'%s': restic recorded %" PRIu64 " bytes but its content holds %" PRIu64
			"; serving the content",
			name, node->size, f->start[f->n]);
	*out = f;
	return 0;
}

uint64_t sb_resticfile_size(const struct sb_resticfile *f)
{
	return f->start[f->n];
}

struct blob_load_ctx {
	struct sb_resticrepo *r;
	const struct index_gen *g;
	size_t pos;
};

static int load_data_blob(void *ctx, const uint8_t *id, void **value, size_t *bytes, char **err)
{
	struct blob_load_ctx *c = ctx;
	struct blob *b;
	int rc = read_blob(c->r, c->g, c->pos, id, &b, err);
	if (rc < 0)
		return rc;
	*value = b;
	*bytes = b->alloc;
	return 0;
}

ssize_t sb_resticfile_read(struct sb_resticfile *f, void *buf, size_t len, uint64_t off)
{
	uint64_t size = f->start[f->n];
	if (off >= size || len == 0)
		return 0;
	if (len > size - off)
		len = (size_t)(size - off);
	/* The first blob holding off: the last start <= off. */
	uint32_t lo = 0, hi = f->n;
	while (hi - lo > 1) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (f->start[mid] <= off)
			lo = mid;
		else
			hi = mid;
	}
	size_t done = 0;
	for (uint32_t i = lo; done < len && i < f->n; i++) {
		uint64_t bstart = f->start[i], blen = f->start[i + 1] - bstart;
		if (blen == 0)
			continue;
		uint64_t at = off + done - bstart;
		size_t take = blen - at < len - done ? (size_t)(blen - at) : len - done;
		struct blob_load_ctx ctx = {f->r, f->g, f->pos[i]};
		void *v;
		char *err = NULL;
		if (cache_get(&f->r->blobs, sb_resticindex_id(f->g->idx, f->pos[i]), load_data_blob, &ctx, &v,
			      &err) < 0) {
			if (!atomic_exchange(&f->failed_logged, true))
				sb_error("reading '%s' failed: %s", f->name, err);
			free(err);
			return -EIO;
		}
		struct blob *bl = v;
		memcpy((char *)buf + done, bl->data + at, take);
		blob_unref(bl);
		done += take;
	}
	return (ssize_t)done;
}

void sb_resticfile_close(struct sb_resticfile *f)
{
	if (!f)
		return;
	index_unref(f->g);
	sb_resticrepo_free(f->r);
	free(f->name);
	free(f->pos);
	free(f->start);
	free(f);
}

void sb_resticrepo_stats(struct sb_resticrepo *r, struct sb_resticrepo_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->version = r->version;
	pthread_mutex_lock(&r->mu);
	if (r->index) {
		st->index_files = r->index->files.n;
		st->blobs = sb_resticindex_count(r->index->idx);
		st->packs = sb_resticindex_packs(r->index->idx);
		st->index_bytes = sb_resticindex_memory(r->index->idx) + st->packs;
	}
	pthread_mutex_unlock(&r->mu);
	st->tree_cache_bytes = cache_bytes(&r->trees);
	st->blob_cache_bytes = cache_bytes(&r->blobs);
	st->blobs_read = atomic_load(&r->blobs_read);
	st->bytes_read = atomic_load(&r->bytes_read);
}
