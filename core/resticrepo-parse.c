/*
 * The native reader's parsers of decrypted data: index files, tree blobs
 * and pack headers (formats: restic's doc/design.rst). They trust nothing:
 * every number is range-checked, every id is 64 hex digits, and a
 * document that does not parse completely is refused. The fuzzers
 * (tests/fuzz/fuzz_restic_{index,tree,packheader}.c) drive them directly.
 */
#include "resticrepo-internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- ids ---- */

int sb_restic_id_parse(const char *hex, size_t len, uint8_t id[SB_RESTIC_ID_LEN])
{
	static const int8_t val[256] = {
		['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5, ['5'] = 6, ['6'] = 7, ['7'] = 8,
		['8'] = 9, ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
	};
	if (len != 2 * SB_RESTIC_ID_LEN)
		return -1;
	for (size_t i = 0; i < SB_RESTIC_ID_LEN; i++) {
		int hi = val[(unsigned char)hex[2 * i]], lo = val[(unsigned char)hex[2 * i + 1]];
		if (!hi || !lo)
			return -1;
		id[i] = (uint8_t)((hi - 1) << 4 | (lo - 1));
	}
	return 0;
}

void sb_restic_id_format(const uint8_t id[SB_RESTIC_ID_LEN], char out[2 * SB_RESTIC_ID_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < SB_RESTIC_ID_LEN; i++) {
		out[2 * i] = digits[id[i] >> 4];
		out[2 * i + 1] = digits[id[i] & 15];
	}
	out[2 * SB_RESTIC_ID_LEN] = '\0';
}

static bool json_id(struct rr_json *j, uint8_t id[SB_RESTIC_ID_LEN])
{
	const char *s;
	size_t len;
	if (!rr_json_string(j, &s, &len))
		return false;
	if (sb_restic_id_parse(s, len, id) < 0)
		return rr_json_fail(j, "an id is not 64 lowercase hex digits");
	return true;
}

/* ---- the index ---- */

/* One blob: 48 bytes (SB_RESTICINDEX_ENTRY_BYTES). */
struct ientry {
	uint8_t id[SB_RESTIC_ID_LEN];
	uint32_t packtype;     /* pack number | PT_TREE | PT_COMPRESSED */
	uint32_t offset;
	uint32_t length;
	uint32_t raw_length;
};
_Static_assert(sizeof(struct ientry) == SB_RESTICINDEX_ENTRY_BYTES, "index entries are 48 bytes");

#define PT_TREE (1u << 31)
#define PT_COMPRESSED (1u << 30)
#define PT_PACK ((1u << 30) - 1)

struct sb_resticindex {
	struct ientry *e;
	size_t n, cap;
	uint8_t (*packs)[SB_RESTIC_ID_LEN];
	size_t npacks, cap_packs;
	uint32_t *table;       /* while adding: pack id -> number + 1, open addressing; 0 = empty */
	size_t table_cap;
};

struct sb_resticindex *sb_resticindex_new(void)
{
	return xcalloc(1, sizeof(struct sb_resticindex));
}

void sb_resticindex_free(struct sb_resticindex *idx)
{
	if (!idx)
		return;
	free(idx->e);
	free(idx->packs);
	free(idx->table);
	free(idx);
}

static uint64_t id_hash(const uint8_t *id)
{
	/* Ids are SHA-256 hashes: any 8 of their bytes are already uniform. */
	uint64_t h;
	memcpy(&h, id, sizeof(h));
	return h;
}

static void table_insert(struct sb_resticindex *idx, uint32_t number)
{
	size_t mask = idx->table_cap - 1;
	size_t i = id_hash(idx->packs[number]) & mask;
	while (idx->table[i])
		i = (i + 1) & mask;
	idx->table[i] = number + 1;
}

static void table_rebuild(struct sb_resticindex *idx, size_t cap)
{
	free(idx->table);
	idx->table_cap = cap;
	idx->table = xcalloc(cap, sizeof(*idx->table));
	for (size_t k = 0; k < idx->npacks; k++)
		table_insert(idx, (uint32_t)k);
}

/* The number of pack id, added if new. */
static uint32_t pack_number(struct sb_resticindex *idx, const uint8_t id[SB_RESTIC_ID_LEN])
{
	if ((idx->npacks + 1) * 2 > idx->table_cap)
		table_rebuild(idx, idx->table_cap ? idx->table_cap * 2 : 1024);
	size_t mask = idx->table_cap - 1;
	for (size_t i = id_hash(id) & mask; idx->table[i]; i = (i + 1) & mask)
		if (memcmp(idx->packs[idx->table[i] - 1], id, SB_RESTIC_ID_LEN) == 0)
			return idx->table[i] - 1;
	if (idx->npacks == idx->cap_packs) {
		idx->cap_packs = idx->cap_packs ? idx->cap_packs * 2 : 256;
		idx->packs = xrealloc(idx->packs, idx->cap_packs * sizeof(*idx->packs));
	}
	uint32_t number = (uint32_t)idx->npacks++;
	memcpy(idx->packs[number], id, SB_RESTIC_ID_LEN);
	table_insert(idx, number);
	return number;
}

static bool index_blob(struct rr_json *j, struct sb_resticindex *idx, int version)
{
	struct ientry e = {0};
	bool have_id = false, have_type = false, have_offset = false, have_length = false, have_raw = false;
	uint64_t offset = 0, length = 0, raw = 0;
	const char *key;
	size_t klen;
	if (!rr_json_object(j))
		return false;
	while (rr_json_key(j, &key, &klen)) {
		if (rr_key_is(key, klen, "id")) {
			have_id = json_id(j, e.id);
		} else if (rr_key_is(key, klen, "type")) {
			const char *t;
			size_t tlen;
			if (!rr_json_string(j, &t, &tlen))
				return false;
			if (rr_key_is(t, tlen, "tree"))
				e.packtype |= PT_TREE;
			else if (!rr_key_is(t, tlen, "data"))
				return rr_json_fail(j, "a blob has an unknown type");
			have_type = true;
		} else if (rr_key_is(key, klen, "offset")) {
			have_offset = rr_json_uint(j, UINT32_MAX, &offset);
		} else if (rr_key_is(key, klen, "length")) {
			have_length = rr_json_uint(j, UINT32_MAX, &length);
		} else if (rr_key_is(key, klen, "uncompressed_length")) {
			have_raw = rr_json_uint(j, UINT32_MAX, &raw);
		} else {
			rr_json_skip(j);
		}
	}
	if (j->error)
		return false;
	if (!have_id || !have_type || !have_offset || !have_length)
		return rr_json_fail(j, "a blob lacks its id, type, offset or length");
	if (length < RR_OVERHEAD)
		return rr_json_fail(j, "a blob is shorter than its encryption overhead");
	if (offset + length > UINT32_MAX)
		return rr_json_fail(j, "a blob lies beyond 4 GiB in its pack");
	if (have_raw && version < 2)
		return rr_json_fail(j, "a compressed blob in a version 1 repository");
	e.offset = (uint32_t)offset;
	e.length = (uint32_t)length;
	if (have_raw) {
		e.packtype |= PT_COMPRESSED;
		e.raw_length = (uint32_t)raw;
	} else {
		e.raw_length = (uint32_t)(length - RR_OVERHEAD);
	}
	if (idx->n == idx->cap) {
		idx->cap = idx->cap ? idx->cap * 2 : 4096;
		idx->e = xrealloc(idx->e, idx->cap * sizeof(*idx->e));
	}
	idx->e[idx->n++] = e;
	return true;
}

static bool index_pack(struct rr_json *j, struct sb_resticindex *idx, int version)
{
	uint8_t id[SB_RESTIC_ID_LEN];
	bool have_id = false;
	size_t first = idx->n;
	const char *key;
	size_t klen;
	if (!rr_json_object(j))
		return false;
	while (rr_json_key(j, &key, &klen)) {
		if (rr_key_is(key, klen, "id")) {
			have_id = json_id(j, id);
		} else if (rr_key_is(key, klen, "blobs")) {
			if (!rr_json_array(j))
				return false;
			while (rr_json_next(j))
				if (!index_blob(j, idx, version))
					return false;
		} else {
			rr_json_skip(j);
		}
	}
	if (j->error)
		return false;
	if (!have_id)
		return rr_json_fail(j, "a pack has no id");
	if (idx->npacks >= PT_PACK)
		return rr_json_fail(j, "too many packs");
	uint32_t number = pack_number(idx, id);
	for (size_t i = first; i < idx->n; i++)
		idx->e[i].packtype |= number;
	return true;
}

static bool index_packs(struct rr_json *j, struct sb_resticindex *idx, int version)
{
	if (!rr_json_array(j))
		return false;
	while (rr_json_next(j))
		if (!index_pack(j, idx, version))
			return false;
	return !j->error;
}

int sb_resticindex_add_json(struct sb_resticindex *idx, const void *json, size_t len, int version,
			    char **err)
{
	size_t n0 = idx->n, np0 = idx->npacks;
	struct rr_json j;
	rr_json_init(&j, json, len);
	bool ok;
	if (rr_json_peek(&j) == RR_J_ARRAY) {
		/* The first index format: the packs array alone. */
		ok = index_packs(&j, idx, version);
	} else {
		bool have_packs = false;
		const char *key;
		size_t klen;
		ok = rr_json_object(&j);
		while (ok && rr_json_key(&j, &key, &klen)) {
			if (rr_key_is(key, klen, "packs")) {
				have_packs = true;
				ok = index_packs(&j, idx, version);
			} else {
				/* "supersedes": every listed pack is taken, whichever file lists it. */
				ok = rr_json_skip(&j);
			}
		}
		ok = ok && !j.error && (have_packs || rr_json_fail(&j, "there is no packs list"));
	}
	ok = ok && (rr_json_at_end(&j) || rr_json_fail(&j, "data follows the document"));
	if (!ok) {
		*err = rr_json_describe(&j);
		rr_json_free(&j);
		idx->n = n0;
		if (idx->npacks != np0) {
			idx->npacks = np0;
			table_rebuild(idx, idx->table_cap);
		}
		return -EIO;
	}
	rr_json_free(&j);
	return 0;
}

static int entry_cmp(const void *a, const void *b)
{
	const struct ientry *x = a, *y = b;
	int c = memcmp(x->id, y->id, SB_RESTIC_ID_LEN);
	if (c)
		return c;
	return (int)(x->packtype >> 31) - (int)(y->packtype >> 31);
}

void sb_resticindex_finish(struct sb_resticindex *idx)
{
	free(idx->table);
	idx->table = NULL;
	idx->table_cap = 0;
	if (idx->n > 1)
		qsort(idx->e, idx->n, sizeof(*idx->e), entry_cmp);
	/* A blob stored twice (two packs, or an index listing a pack twice) is kept once. */
	size_t out = 0;
	for (size_t i = 0; i < idx->n; i++)
		if (out == 0 || entry_cmp(&idx->e[out - 1], &idx->e[i]) != 0)
			idx->e[out++] = idx->e[i];
	idx->n = out;
	idx->cap = out;
	idx->e = xrealloc(idx->e, (out ? out : 1) * sizeof(*idx->e));
	idx->cap_packs = idx->npacks;
	idx->packs = xrealloc(idx->packs, (idx->npacks ? idx->npacks : 1) * sizeof(*idx->packs));
}

ssize_t sb_resticindex_find(const struct sb_resticindex *idx, const uint8_t id[SB_RESTIC_ID_LEN],
			    enum sb_restic_blob_type type)
{
	struct ientry key;
	memcpy(key.id, id, SB_RESTIC_ID_LEN);
	key.packtype = type == SB_RESTIC_BLOB_TREE ? PT_TREE : 0;
	size_t lo = 0, hi = idx->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = entry_cmp(&key, &idx->e[mid]);
		if (c == 0)
			return (ssize_t)mid;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return -1;
}

void sb_resticindex_get(const struct sb_resticindex *idx, size_t pos, struct sb_restic_blob *out)
{
	const struct ientry *e = &idx->e[pos];
	out->pack = e->packtype & PT_PACK;
	out->offset = e->offset;
	out->length = e->length;
	out->raw_length = e->raw_length;
	out->type = (e->packtype & PT_TREE) ? SB_RESTIC_BLOB_TREE : SB_RESTIC_BLOB_DATA;
	out->compressed = (e->packtype & PT_COMPRESSED) != 0;
}

const uint8_t *sb_resticindex_id(const struct sb_resticindex *idx, size_t pos)
{
	return idx->e[pos].id;
}

size_t sb_resticindex_count(const struct sb_resticindex *idx)
{
	return idx->n;
}

size_t sb_resticindex_packs(const struct sb_resticindex *idx)
{
	return idx->npacks;
}

const uint8_t *sb_resticindex_pack_id(const struct sb_resticindex *idx, uint32_t i)
{
	return idx->packs[i];
}

size_t sb_resticindex_memory(const struct sb_resticindex *idx)
{
	return sizeof(*idx) + idx->cap * sizeof(*idx->e) + idx->cap_packs * sizeof(*idx->packs) +
	       idx->table_cap * sizeof(*idx->table);
}

/* ---- pack headers ---- */

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int sb_resticpack_parse_header(const void *hdr, size_t len, int version, uint64_t data_end,
			       struct sb_resticpack_entry **out, size_t *n, char **err)
{
	const uint8_t *p = hdr, *end = p + len;
	struct sb_resticpack_entry *v = NULL;
	size_t cnt = 0, cap = 0;
	uint64_t offset = 0;
	*out = NULL;
	*n = 0;
	while (p < end) {
		uint8_t type = *p;
		if (type > 3 || (type >= 2 && version < 2)) {
			*err = xasprintf("entry %zu has an unknown blob type %u", cnt, type);
			goto fail;
		}
		bool compressed = type >= 2;
		size_t need = compressed ? 41 : 37;
		if ((size_t)(end - p) < need) {
			*err = xasprintf("entry %zu is cut short", cnt);
			goto fail;
		}
		if (cnt == cap) {
			cap = cap ? cap * 2 : 64;
			v = xrealloc(v, cap * sizeof(*v));
		}
		struct sb_resticpack_entry *e = &v[cnt];
		e->type = (type & 1) ? SB_RESTIC_BLOB_TREE : SB_RESTIC_BLOB_DATA;
		e->compressed = compressed;
		e->length = le32(p + 1);
		e->raw_length = compressed ? le32(p + 5) : (e->length >= RR_OVERHEAD ? e->length - RR_OVERHEAD : 0);
		memcpy(e->id, p + (compressed ? 9 : 5), SB_RESTIC_ID_LEN);
		if (e->length < RR_OVERHEAD) {
			*err = xasprintf("entry %zu is shorter than its encryption overhead", cnt);
			goto fail;
		}
		if (offset + e->length > data_end) {
			*err = xasprintf("entry %zu ends at byte %" PRIu64 ", beyond the blobs' end at %" PRIu64, cnt,
					 offset + e->length, data_end);
			goto fail;
		}
		e->offset = (uint32_t)offset;
		offset += e->length;
		cnt++;
		p += need;
	}
	if (offset != data_end) {
		*err = xasprintf("the blobs end at byte %" PRIu64 ", the header starts at %" PRIu64, offset, data_end);
		goto fail;
	}
	*out = v;
	*n = cnt;
	return 0;
fail:
	free(v);
	return -EIO;
}

/* ---- trees ---- */

struct sb_restictree {
	atomic_uint refs;
	size_t n;
	struct sb_restic_node *nodes;
	char *strings;                        /* names and link targets, NUL-terminated */
	uint8_t (*content)[SB_RESTIC_ID_LEN];
	size_t memory;
};

struct sb_restictree *sb_restictree_ref(struct sb_restictree *t)
{
	atomic_fetch_add(&t->refs, 1);
	return t;
}

void sb_restictree_unref(struct sb_restictree *t)
{
	if (!t || atomic_fetch_sub(&t->refs, 1) != 1)
		return;
	free(t->nodes);
	free(t->strings);
	free(t->content);
	free(t);
}

size_t sb_restictree_count(const struct sb_restictree *t)
{
	return t->n;
}

const struct sb_restic_node *sb_restictree_node(const struct sb_restictree *t, size_t i)
{
	return &t->nodes[i];
}

size_t sb_restictree_memory(const struct sb_restictree *t)
{
	return t->memory;
}

static int name_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

const struct sb_restic_node *sb_restictree_find(const struct sb_restictree *t, const char *name, size_t len)
{
	size_t lo = 0, hi = t->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = name_cmp(name, len, t->nodes[mid].name, t->nodes[mid].name_len);
		if (c == 0)
			return &t->nodes[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* While parsing, strings and content are offsets into growing buffers; pointers come at the end. */
struct tree_parse {
	struct sb_restic_node *nodes;
	size_t n, cap;
	struct sb_buf strings;
	uint8_t (*content)[SB_RESTIC_ID_LEN];
	size_t ncontent, cap_content;
	struct sb_buf name;    /* scratch: the name being unquoted */
};

static size_t add_string(struct tree_parse *tp, const char *s, size_t len)
{
	size_t off = tp->strings.len;
	sb_buf_append(&tp->strings, s, len);
	sb_buf_append(&tp->strings, "", 1);
	return off;
}

/*
 * restic stores a node's name Go-quoted inside the JSON string (what Go's
 * strconv.Quote makes of it, without the quotes), so that names that are
 * not UTF-8 survive: "back\\slash" in the JSON is the name back\slash,
 * "\\xff" the byte 0xff. Decodes that quoting into out. Returns 0, or -1
 * for anything strconv.Unquote would refuse.
 */
static int go_unquote(const char *s, size_t len, struct sb_buf *out)
{
	out->len = 0;
	const char *p = s, *end = s + len;
	while (p < end) {
		const char *run = p;
		while (p < end && *p != '\\' && *p != '"' && *p != '\n')
			p++;
		sb_buf_append(out, run, (size_t)(p - run));
		if (p == end)
			break;
		if (*p != '\\' || end - p < 2)
			return -1;
		char e = p[1];
		p += 2;
		char lit;
		switch (e) {
		case 'a': lit = '\a'; break;
		case 'b': lit = '\b'; break;
		case 'f': lit = '\f'; break;
		case 'n': lit = '\n'; break;
		case 'r': lit = '\r'; break;
		case 't': lit = '\t'; break;
		case 'v': lit = '\v'; break;
		case '\\': lit = '\\'; break;
		case '"': lit = '"'; break;
		case 'x':
		case 'u':
		case 'U': {
			int digits = e == 'x' ? 2 : e == 'u' ? 4 : 8;
			if (end - p < digits)
				return -1;
			uint32_t v = 0;
			for (int i = 0; i < digits; i++) {
				char c = p[i];
				int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
					: c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
				if (d < 0)
					return -1;
				v = v << 4 | (uint32_t)d;
			}
			p += digits;
			if (e == 'x') {
				lit = (char)v;
				break;
			}
			if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
				return -1;
			char u[4];
			size_t n;
			if (v < 0x80) {
				u[0] = (char)v;
				n = 1;
			} else if (v < 0x800) {
				u[0] = (char)(0xc0 | (v >> 6));
				u[1] = (char)(0x80 | (v & 0x3f));
				n = 2;
			} else if (v < 0x10000) {
				u[0] = (char)(0xe0 | (v >> 12));
				u[1] = (char)(0x80 | ((v >> 6) & 0x3f));
				u[2] = (char)(0x80 | (v & 0x3f));
				n = 3;
			} else {
				u[0] = (char)(0xf0 | (v >> 18));
				u[1] = (char)(0x80 | ((v >> 12) & 0x3f));
				u[2] = (char)(0x80 | ((v >> 6) & 0x3f));
				u[3] = (char)(0x80 | (v & 0x3f));
				n = 4;
			}
			sb_buf_append(out, u, n);
			continue;
		}
		case '0' ... '7': {
			/* Three octal digits, at most \377. */
			if (end - p < 2 || p[0] < '0' || p[0] > '7' || p[1] < '0' || p[1] > '7' || e > '3')
				return -1;
			lit = (char)((e - '0') << 6 | (p[0] - '0') << 3 | (p[1] - '0'));
			p += 2;
			break;
		}
		default:
			return -1;
		}
		sb_buf_append(out, &lit, 1);
	}
	return 0;
}

/* Go's os.FileMode bits restic stores in "mode". */
#define GO_MODE_SETUID (1u << 23)
#define GO_MODE_SETGID (1u << 22)
#define GO_MODE_STICKY (1u << 20)

static const struct {
	const char *name;
	enum sb_restic_node_type type;
	mode_t fmt;
} node_types[] = {
	{"file", SB_RESTIC_NODE_FILE, S_IFREG},       {"dir", SB_RESTIC_NODE_DIR, S_IFDIR},
	{"symlink", SB_RESTIC_NODE_SYMLINK, S_IFLNK}, {"dev", SB_RESTIC_NODE_DEV, S_IFBLK},
	{"chardev", SB_RESTIC_NODE_CHARDEV, S_IFCHR}, {"fifo", SB_RESTIC_NODE_FIFO, S_IFIFO},
	{"socket", SB_RESTIC_NODE_SOCKET, S_IFSOCK},
};

static bool json_time(struct rr_json *j, struct timespec *out)
{
	const char *s;
	size_t len;
	if (!rr_json_string(j, &s, &len))
		return false;
	if (rr_parse_time(s, len, out) < 0)
		return rr_json_fail(j, "a time is not in RFC 3339 form");
	return true;
}

static bool json_u32(struct rr_json *j, uint32_t *out)
{
	uint64_t v;
	if (!rr_json_uint(j, UINT32_MAX, &v))
		return false;
	*out = (uint32_t)v;
	return true;
}

static bool tree_node(struct rr_json *j, struct tree_parse *tp)
{
	if (tp->n == tp->cap) {
		tp->cap = tp->cap ? tp->cap * 2 : 16;
		tp->nodes = xrealloc(tp->nodes, tp->cap * sizeof(*tp->nodes));
	}
	struct sb_restic_node *nd = &tp->nodes[tp->n];
	memset(nd, 0, sizeof(*nd));
	bool have_name = false, have_type = false, have_link = false, have_link_raw = false;
	uint64_t gomode = 0;
	size_t name_off = 0, link_off = 0, link_raw_off = 0, link_raw_len = 0;
	size_t content_first = tp->ncontent;
	const char *key, *s;
	size_t klen, len;
	if (!rr_json_object(j))
		return false;
	while (rr_json_key(j, &key, &klen)) {
		switch (klen) {
		case 3:
			if (rr_key_is(key, klen, "uid"))
				json_u32(j, &nd->uid);
			else if (rr_key_is(key, klen, "gid"))
				json_u32(j, &nd->gid);
			else
				rr_json_skip(j);
			continue;
		case 4:
			if (rr_key_is(key, klen, "name")) {
				if (!rr_json_string(j, &s, &len))
					return false;
				if (go_unquote(s, len, &tp->name))
					return rr_json_fail(j, "a node name is not Go-quoted");
				s = tp->name.data;
				len = tp->name.len;
				if (len == 0 || memchr(s, '/', len) || memchr(s, '\0', len) ||
				    (len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
					return rr_json_fail(j, "a node has an invalid name");
				name_off = add_string(tp, s, len);
				nd->name_len = len;
				have_name = true;
			} else if (rr_key_is(key, klen, "type")) {
				if (!rr_json_string(j, &s, &len))
					return false;
				nd->type = SB_RESTIC_NODE_OTHER;
				for (size_t i = 0; i < SB_ARRAY_SIZE(node_types); i++)
					if (rr_key_is(s, len, node_types[i].name))
						nd->type = node_types[i].type;
				have_type = true;
			} else if (rr_key_is(key, klen, "mode")) {
				rr_json_uint(j, UINT32_MAX, &gomode);
			} else if (rr_key_is(key, klen, "size")) {
				rr_json_uint(j, INT64_MAX, &nd->size);
			} else {
				rr_json_skip(j);
			}
			continue;
		case 5:
			if (rr_key_is(key, klen, "mtime"))
				json_time(j, &nd->mtime);
			else if (rr_key_is(key, klen, "atime"))
				json_time(j, &nd->atime);
			else if (rr_key_is(key, klen, "ctime"))
				json_time(j, &nd->ctime);
			else if (rr_key_is(key, klen, "inode"))
				rr_json_uint(j, UINT64_MAX, &nd->inode);
			else if (rr_key_is(key, klen, "links"))
				rr_json_uint(j, UINT64_MAX, &nd->links);
			else
				rr_json_skip(j);
			continue;
		default:
			break;
		}
		if (rr_key_is(key, klen, "content")) {
			if (rr_json_take_null(j))
				continue;
			if (!rr_json_array(j))
				return false;
			while (rr_json_next(j)) {
				if (tp->ncontent == tp->cap_content) {
					tp->cap_content = tp->cap_content ? tp->cap_content * 2 : 64;
					tp->content = xrealloc(tp->content, tp->cap_content * sizeof(*tp->content));
				}
				if (!json_id(j, tp->content[tp->ncontent]))
					return false;
				tp->ncontent++;
				if (tp->ncontent - content_first > UINT32_MAX)
					return rr_json_fail(j, "a file has too many blobs");
			}
		} else if (rr_key_is(key, klen, "subtree")) {
			if (rr_json_take_null(j))
				continue;
			nd->has_subtree = json_id(j, nd->subtree);
		} else if (rr_key_is(key, klen, "linktarget")) {
			if (!rr_json_string(j, &s, &len))
				return false;
			if (memchr(s, '\0', len))
				return rr_json_fail(j, "a link target holds a NUL byte");
			link_off = add_string(tp, s, len);
			nd->linktarget_len = len;
			have_link = true;
		} else if (rr_key_is(key, klen, "linktarget_raw")) {
			/* Newer restic: the target's exact bytes when they are not UTF-8. */
			if (!rr_json_string(j, &s, &len))
				return false;
			uint8_t *raw = xmalloc(len / 4 * 3 + 1);
			ssize_t rl = rr_base64_decode(s, len, raw);
			bool bad = rl < 0 || memchr(raw, '\0', (size_t)rl);
			if (!bad) {
				link_raw_off = add_string(tp, (const char *)raw, (size_t)rl);
				link_raw_len = (size_t)rl;
			}
			free(raw);
			if (bad)
				return rr_json_fail(j, "a raw link target is not base64 of a path");
			have_link_raw = true;
		} else if (rr_key_is(key, klen, "device")) {
			rr_json_uint(j, UINT64_MAX, &nd->device);
		} else {
			/* user, group, device_id, extended_attributes and anything newer. */
			rr_json_skip(j);
		}
	}
	if (j->error)
		return false;
	if (!have_name || !have_type)
		return rr_json_fail(j, "a node lacks its name or type");
	mode_t fmt = 0;
	for (size_t i = 0; i < SB_ARRAY_SIZE(node_types); i++)
		if (node_types[i].type == nd->type)
			fmt = node_types[i].fmt;
	nd->mode = fmt | (mode_t)(gomode & 0777);
	if (gomode & GO_MODE_SETUID)
		nd->mode |= S_ISUID;
	if (gomode & GO_MODE_SETGID)
		nd->mode |= S_ISGID;
	if (gomode & GO_MODE_STICKY)
		nd->mode |= S_ISVTX;
	if (nd->type == SB_RESTIC_NODE_DIR && !nd->has_subtree)
		return rr_json_fail(j, "a directory has no subtree");
	if (nd->type != SB_RESTIC_NODE_FILE && tp->ncontent != content_first)
		return rr_json_fail(j, "a node that is not a file has content");
	if (nd->type == SB_RESTIC_NODE_SYMLINK && !have_link && !have_link_raw)
		return rr_json_fail(j, "a symlink has no target");
	/* Offsets now; tree_finish turns them into pointers. */
	nd->name = (const char *)(uintptr_t)name_off;
	if (nd->type == SB_RESTIC_NODE_SYMLINK) {
		nd->linktarget = (const char *)(uintptr_t)(have_link_raw ? link_raw_off : link_off);
		if (have_link_raw)
			nd->linktarget_len = link_raw_len;
	} else {
		nd->linktarget_len = 0;
	}
	nd->content = (const uint8_t(*)[SB_RESTIC_ID_LEN])(uintptr_t)content_first;
	nd->n_content = (uint32_t)(tp->ncontent - content_first);
	if (nd->type != SB_RESTIC_NODE_FILE)
		nd->size = 0;
	tp->n++;
	return true;
}

static int node_cmp(const void *a, const void *b)
{
	const struct sb_restic_node *x = a, *y = b;
	return name_cmp(x->name, x->name_len, y->name, y->name_len);
}

int sb_restictree_parse(const void *json, size_t len, struct sb_restictree **out, char **err)
{
	struct tree_parse tp = {0};
	struct rr_json j;
	rr_json_init(&j, json, len);
	bool have_nodes = false;
	const char *key;
	size_t klen;
	bool ok = rr_json_object(&j);
	while (ok && rr_json_key(&j, &key, &klen)) {
		if (rr_key_is(key, klen, "nodes")) {
			have_nodes = true;
			if (rr_json_take_null(&j))
				continue;
			ok = rr_json_array(&j);
			while (ok && rr_json_next(&j))
				ok = tree_node(&j, &tp);
		} else {
			ok = rr_json_skip(&j);
		}
	}
	ok = ok && !j.error && (have_nodes || rr_json_fail(&j, "there is no nodes list"));
	ok = ok && (rr_json_at_end(&j) || rr_json_fail(&j, "data follows the document"));
	if (!ok) {
		*err = rr_json_describe(&j);
		goto fail;
	}
	struct sb_restictree *t = xcalloc(1, sizeof(*t));
	atomic_init(&t->refs, 1);
	t->n = tp.n;
	t->nodes = xrealloc(tp.nodes, (tp.n ? tp.n : 1) * sizeof(*tp.nodes));
	t->strings = tp.strings.len ? xrealloc(tp.strings.data, tp.strings.len) : NULL;
	t->content = tp.ncontent ? xrealloc(tp.content, tp.ncontent * sizeof(*tp.content)) : NULL;
	if (!tp.strings.len)
		free(tp.strings.data);
	if (!tp.ncontent)
		free(tp.content);
	bool sorted = true;
	for (size_t i = 0; i < t->n; i++) {
		struct sb_restic_node *nd = &t->nodes[i];
		nd->name = t->strings + (uintptr_t)nd->name;
		nd->linktarget = nd->type == SB_RESTIC_NODE_SYMLINK ? t->strings + (uintptr_t)nd->linktarget : NULL;
		nd->content = nd->n_content ? (const uint8_t(*)[SB_RESTIC_ID_LEN])&t->content[(uintptr_t)nd->content]
					    : NULL;
		if (i > 0 && node_cmp(&t->nodes[i - 1], nd) >= 0)
			sorted = false;
	}
	if (!sorted) {
		qsort(t->nodes, t->n, sizeof(*t->nodes), node_cmp);
		for (size_t i = 1; i < t->n; i++) {
			if (node_cmp(&t->nodes[i - 1], &t->nodes[i]) == 0) {
				*err = xasprintf("the name '%.*s' appears twice", (int)t->nodes[i].name_len,
						 t->nodes[i].name);
				rr_json_free(&j);
				sb_buf_free(&tp.name);
				sb_restictree_unref(t);
				return -EIO;
			}
		}
	}
	t->memory = sizeof(*t) + t->n * sizeof(*t->nodes) + tp.strings.len + tp.ncontent * SB_RESTIC_ID_LEN;
	rr_json_free(&j);
	sb_buf_free(&tp.name);
	*out = t;
	return 0;
fail:
	rr_json_free(&j);
	sb_buf_free(&tp.name);
	free(tp.nodes);
	sb_buf_free(&tp.strings);
	free(tp.content);
	return -EIO;
}
