/*
 * The streaming tar reader for `restic dump SNAP DIR` (see snaptar.h).
 *
 * A tar is a sequence of 512-byte headers, each followed by its data
 * padded to 512 bytes; the archive ends with zero blocks. Metadata
 * members (PAX 'x', GNU 'L') carry the real name of the member after
 * them. Nothing here allocates per member except names.
 */
#include "stackback/snaptar.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "stackback/util.h"

#define BLOCK 512
/* PAX records and GNU long names larger than this are refused (restic's are short). */
#define META_MAX (1u << 20)

enum tar_state {
	TAR_HEADER,
	TAR_DATA,
	TAR_META,
	TAR_PAD,
	TAR_END,
	TAR_FAILED,
};

struct sb_tar_reader {
	struct sb_tar_callbacks cb;
	void *userdata;
	enum tar_state state;
	unsigned char hdr[BLOCK];
	size_t hdr_len;
	uint64_t remaining;     /* DATA/META bytes left */
	size_t pad;             /* PAD bytes left */
	int tag;                /* the member's tag, -1 skipped */
	char meta_type;
	struct sb_buf meta;
	char *next_path;        /* from a PAX or GNU header, for the next member */
	bool has_next_size;
	uint64_t next_size;
};

struct sb_tar_reader *sb_tar_reader_new(const struct sb_tar_callbacks *cb, void *userdata)
{
	struct sb_tar_reader *r = xcalloc(1, sizeof(*r));
	r->cb = *cb;
	r->userdata = userdata;
	r->tag = -1;
	return r;
}

void sb_tar_reader_free(struct sb_tar_reader *r)
{
	if (!r)
		return;
	sb_buf_free(&r->meta);
	free(r->next_path);
	free(r);
}

static int fail(struct sb_tar_reader *r, char **err, char *msg)
{
	r->state = TAR_FAILED;
	*err = msg;
	return -1;
}

/* An octal field (spaces and NULs around it allowed), or Go's base-256 form. Returns 0 or -1. */
static int parse_number(const unsigned char *f, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	if (f[0] & 0x80) {
		/* Base-256: big-endian, the top bit of the first byte is the marker (negative: refused). */
		if (f[0] & 0x40)
			return -1;
		v = f[0] & 0x3f;
		for (size_t i = 1; i < len; i++) {
			if (v >> 55)
				return -1;
			v = (v << 8) | f[i];
		}
		*out = v;
		return 0;
	}
	size_t i = 0;
	while (i < len && (f[i] == ' ' || f[i] == '\0'))
		i++;
	bool digits = false;
	for (; i < len && f[i] >= '0' && f[i] <= '7'; i++) {
		if (v >> 60)
			return -1;
		v = v * 8 + (uint64_t)(f[i] - '0');
		digits = true;
	}
	for (; i < len; i++)
		if (f[i] != ' ' && f[i] != '\0')
			return -1;
	if (!digits)
		v = 0;
	*out = v;
	return 0;
}

static bool checksum_ok(const unsigned char *h)
{
	uint64_t want;
	if (parse_number(h + 148, 8, &want) < 0)
		return false;
	uint64_t usum = 0;
	int64_t ssum = 0;
	for (size_t i = 0; i < BLOCK; i++) {
		unsigned char c = (i >= 148 && i < 156) ? ' ' : h[i];
		usum += c;
		ssum += (signed char)c;
	}
	return usum == want || (uint64_t)ssum == want;
}

static bool all_zero(const unsigned char *b, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (b[i])
			return false;
	return true;
}

/* PAX records: "LEN key=value\n", LEN counting the whole record. Keeps path and size. */
static int parse_pax(struct sb_tar_reader *r, char **err)
{
	const char *p = r->meta.data ? r->meta.data : "";
	size_t left = r->meta.len;
	while (left > 0) {
		size_t len = 0, i = 0;
		while (i < left && p[i] >= '0' && p[i] <= '9' && len < META_MAX)
			len = len * 10 + (size_t)(p[i++] - '0');
		if (i == 0 || i >= left || p[i] != ' ' || len <= i + 1 || len > left || p[len - 1] != '\n')
			return fail(r, err, xstrdup("malformed PAX record in restic's tar"));
		const char *kv = p + i + 1;
		size_t kv_len = len - i - 2;
		const char *eq = memchr(kv, '=', kv_len);
		if (!eq)
			return fail(r, err, xstrdup("malformed PAX record in restic's tar"));
		size_t klen = (size_t)(eq - kv);
		const char *val = eq + 1;
		size_t vlen = kv_len - klen - 1;
		if (klen == 4 && memcmp(kv, "path", 4) == 0) {
			if (memchr(val, '\0', vlen))
				return fail(r, err, xstrdup("PAX path with a NUL byte in restic's tar"));
			free(r->next_path);
			r->next_path = xstrndup(val, vlen);
		} else if (klen == 4 && memcmp(kv, "size", 4) == 0) {
			uint64_t v = 0;
			if (vlen == 0 || vlen > 19)
				return fail(r, err, xstrdup("malformed PAX size in restic's tar"));
			for (size_t k = 0; k < vlen; k++) {
				if (val[k] < '0' || val[k] > '9')
					return fail(r, err, xstrdup("malformed PAX size in restic's tar"));
				v = v * 10 + (uint64_t)(val[k] - '0');
			}
			r->next_size = v;
			r->has_next_size = true;
		}
		p += len;
		left -= len;
	}
	return 0;
}

static size_t pad_of(uint64_t size)
{
	return (size_t)((BLOCK - size % BLOCK) % BLOCK);
}

static int end_member(struct sb_tar_reader *r, char **err)
{
	if (r->tag >= 0 && r->cb.end(r->userdata, r->tag) < 0)
		return fail(r, err, xstrdup("stopped by the reader"));
	r->tag = -1;
	return 0;
}

static int handle_header(struct sb_tar_reader *r, char **err)
{
	const unsigned char *h = r->hdr;
	if (all_zero(h, BLOCK)) {
		r->state = TAR_END;
		return 0;
	}
	if (!checksum_ok(h))
		return fail(r, err, xstrdup("bad header checksum in restic's tar"));
	uint64_t size;
	if (parse_number(h + 124, 12, &size) < 0)
		return fail(r, err, xstrdup("bad member size in restic's tar"));
	char type = (char)h[156];
	if (type == 'x' || type == 'L' || type == 'g' || type == 'K') {
		if (size > META_MAX)
			return fail(r, err, xstrdup("oversized extended header in restic's tar"));
		r->meta_type = type;
		r->meta.len = 0;
		r->remaining = size;
		r->pad = pad_of(size);
		r->state = TAR_META;
		return 0;
	}
	char *path;
	if (r->next_path) {
		path = r->next_path;
		r->next_path = NULL;
	} else {
		char name[101], prefix[156];
		memcpy(name, h, 100);
		name[100] = '\0';
		prefix[0] = '\0';
		if (memcmp(h + 257, "ustar", 5) == 0) {
			memcpy(prefix, h + 345, 155);
			prefix[155] = '\0';
		}
		path = prefix[0] ? xasprintf("%s/%s", prefix, name) : xstrdup(name);
	}
	if (r->has_next_size) {
		size = r->next_size;
		r->has_next_size = false;
	}
	if (type == '\0')
		type = '0';
	/* Links, directories, devices and fifos carry no data whatever their size field says. */
	if (type == '1' || type == '2' || type == '3' || type == '4' || type == '5' || type == '6')
		size = 0;
	r->tag = r->cb.member(r->userdata, path, type, size);
	free(path);
	r->remaining = size;
	r->pad = pad_of(size);
	if (size == 0) {
		r->state = TAR_HEADER;
		return end_member(r, err);
	}
	r->state = TAR_DATA;
	return 0;
}

int sb_tar_feed(struct sb_tar_reader *r, const void *data, size_t len, char **err)
{
	const unsigned char *p = data;
	while (len > 0) {
		switch (r->state) {
		case TAR_FAILED:
			*err = xstrdup("restic's tar was already refused");
			return -1;
		case TAR_END:
			/* Trailing zero blocks and padding. */
			return 0;
		case TAR_HEADER: {
			size_t take = BLOCK - r->hdr_len < len ? BLOCK - r->hdr_len : len;
			memcpy(r->hdr + r->hdr_len, p, take);
			r->hdr_len += take;
			p += take;
			len -= take;
			if (r->hdr_len == BLOCK) {
				r->hdr_len = 0;
				if (handle_header(r, err) < 0)
					return -1;
			}
			break;
		}
		case TAR_DATA: {
			size_t take = r->remaining < len ? (size_t)r->remaining : len;
			if (r->tag >= 0 && r->cb.data(r->userdata, r->tag, p, take) < 0)
				return fail(r, err, xstrdup("stopped by the reader"));
			p += take;
			len -= take;
			r->remaining -= take;
			if (r->remaining == 0) {
				r->state = r->pad ? TAR_PAD : TAR_HEADER;
				if (end_member(r, err) < 0)
					return -1;
			}
			break;
		}
		case TAR_META: {
			size_t take = r->remaining < len ? (size_t)r->remaining : len;
			sb_buf_append(&r->meta, p, take);
			p += take;
			len -= take;
			r->remaining -= take;
			if (r->remaining == 0) {
				if (r->meta_type == 'x' && parse_pax(r, err) < 0)
					return -1;
				if (r->meta_type == 'L') {
					free(r->next_path);
					r->next_path = xstrndup(r->meta.data ? r->meta.data : "", r->meta.len);
				}
				r->state = r->pad ? TAR_PAD : TAR_HEADER;
			}
			break;
		}
		case TAR_PAD: {
			size_t take = r->pad < len ? r->pad : len;
			p += take;
			len -= take;
			r->pad -= take;
			if (r->pad == 0)
				r->state = TAR_HEADER;
			break;
		}
		}
	}
	return 0;
}

int sb_tar_finish(struct sb_tar_reader *r, char **err)
{
	if (r->state == TAR_FAILED) {
		*err = xstrdup("restic's tar was refused");
		return -1;
	}
	if (r->state == TAR_END || (r->state == TAR_HEADER && r->hdr_len == 0))
		return 0;
	r->state = TAR_FAILED;
	*err = xstrdup("restic's tar ended in the middle of a member");
	return -1;
}
