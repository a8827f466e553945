/*
 * A small strict JSON pull parser for the native restic reader.
 *
 * Why not json-c: a tree of 100,000 files is ~40 MB of JSON and an index
 * ~170 bytes per blob; building a json-c object for every member costs
 * several times the parse and hundreds of bytes per value. Pulling values
 * straight into the reader's own compact structures is what lets the
 * reader list a large snapshot faster than restic (see
 * docs/restic-reader.md). The grammar is RFC 8259's, without extensions.
 */
#include "resticrepo-internal.h"

#include <stdio.h>
#include <string.h>

void rr_json_init(struct rr_json *j, const void *data, size_t len)
{
	memset(j, 0, sizeof(*j));
	j->p = j->start = data;
	j->end = j->p + len;
}

void rr_json_free(struct rr_json *j)
{
	sb_buf_free(&j->scratch);
}

bool rr_json_fail(struct rr_json *j, const char *why)
{
	if (!j->error) {
		j->error = why;
		j->error_at = (size_t)(j->p - j->start);
	}
	return false;
}

char *rr_json_describe(const struct rr_json *j)
{
	return xasprintf("%s at byte %zu", j->error ? j->error : "no error", j->error_at);
}

static void skip_ws(struct rr_json *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
		j->p++;
}

enum rr_jtype rr_json_peek(struct rr_json *j)
{
	if (j->error)
		return RR_J_NONE;
	skip_ws(j);
	if (j->p == j->end)
		return RR_J_NONE;
	switch (*j->p) {
	case '{':
		return RR_J_OBJECT;
	case '[':
		return RR_J_ARRAY;
	case '"':
		return RR_J_STRING;
	case 't':
		return RR_J_TRUE;
	case 'f':
		return RR_J_FALSE;
	case 'n':
		return RR_J_NULL;
	case '-':
	case '0' ... '9':
		return RR_J_NUMBER;
	default:
		return RR_J_NONE;
	}
}

static bool enter(struct rr_json *j, char open)
{
	if (rr_json_peek(j) == RR_J_NONE || *j->p != open)
		return rr_json_fail(j, open == '{' ? "an object was expected" : "an array was expected");
	if (j->depth >= RR_JSON_MAX_DEPTH)
		return rr_json_fail(j, "nesting is too deep");
	j->p++;
	j->first[j->depth++] = true;
	return true;
}

bool rr_json_object(struct rr_json *j)
{
	return enter(j, '{');
}

bool rr_json_array(struct rr_json *j)
{
	return enter(j, '[');
}

/* Before a member or element: the closing byte ends the container (false), else a comma unless first. */
static bool more(struct rr_json *j, char close)
{
	if (j->error)
		return false;
	skip_ws(j);
	if (j->p == j->end)
		return rr_json_fail(j, "the document ends early");
	bool *first = &j->first[j->depth - 1];
	if (*j->p == close) {
		j->p++;
		j->depth--;
		return false;
	}
	if (!*first) {
		if (*j->p != ',')
			return rr_json_fail(j, "a comma was expected");
		j->p++;
	}
	*first = false;
	return true;
}

bool rr_json_next(struct rr_json *j)
{
	if (j->depth == 0)
		return rr_json_fail(j, "not inside an array");
	return more(j, ']');
}

bool rr_json_key(struct rr_json *j, const char **key, size_t *len)
{
	if (j->depth == 0)
		return rr_json_fail(j, "not inside an object");
	if (!more(j, '}'))
		return false;
	if (rr_json_peek(j) != RR_J_STRING)
		return rr_json_fail(j, "a member name was expected");
	if (!rr_json_string(j, key, len))
		return false;
	skip_ws(j);
	if (j->p == j->end || *j->p != ':')
		return rr_json_fail(j, "a colon was expected");
	j->p++;
	return true;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Four hex digits of a \u escape at p (end bounds them). Returns the value or -1. */
static long hex4(const char *p, const char *end)
{
	if (end - p < 4)
		return -1;
	long v = 0;
	for (int i = 0; i < 4; i++) {
		int d = hex_digit(p[i]);
		if (d < 0)
			return -1;
		v = v * 16 + d;
	}
	return v;
}

static void put_utf8(struct sb_buf *b, unsigned long cp)
{
	char out[4];
	size_t n;
	if (cp < 0x80) {
		out[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		out[0] = (char)(0xc0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		out[0] = (char)(0xe0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		out[0] = (char)(0xf0 | (cp >> 18));
		out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	sb_buf_append(b, out, n);
}

/* The escaped tail of a string from p (just after the opening quote), decoded into scratch. */
static bool string_slow(struct rr_json *j, const char *p, const char **s, size_t *len)
{
	struct sb_buf *b = &j->scratch;
	b->len = 0;
	const char *q = j->p + 1;
	sb_buf_append(b, q, (size_t)(p - q));
	while (p < j->end) {
		unsigned char c = (unsigned char)*p;
		if (c == '"') {
			j->p = p + 1;
			sb_buf_append(b, "", 1);
			b->len--;
			*s = b->data;
			*len = b->len;
			return true;
		}
		if (c < 0x20)
			return rr_json_fail(j, "a string holds a control character");
		if (c != '\\') {
			const char *run = p;
			while (p < j->end && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
				p++;
			sb_buf_append(b, run, (size_t)(p - run));
			continue;
		}
		if (++p == j->end)
			break;
		char e = *p++;
		char lit;
		switch (e) {
		case '"': lit = '"'; break;
		case '\\': lit = '\\'; break;
		case '/': lit = '/'; break;
		case 'b': lit = '\b'; break;
		case 'f': lit = '\f'; break;
		case 'n': lit = '\n'; break;
		case 'r': lit = '\r'; break;
		case 't': lit = '\t'; break;
		case 'u': {
			long cp = hex4(p, j->end);
			if (cp < 0)
				return rr_json_fail(j, "a string holds a bad \\u escape");
			p += 4;
			if (cp >= 0xd800 && cp <= 0xdbff) {
				long lo = j->end - p >= 6 && p[0] == '\\' && p[1] == 'u' ? hex4(p + 2, j->end) : -1;
				if (lo >= 0xdc00 && lo <= 0xdfff) {
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
					p += 6;
				} else {
					cp = 0xfffd;  /* a lone surrogate: what Go's decoder makes of it */
				}
			} else if (cp >= 0xdc00 && cp <= 0xdfff) {
				cp = 0xfffd;
			}
			put_utf8(b, (unsigned long)cp);
			continue;
		}
		default:
			return rr_json_fail(j, "a string holds an unknown escape");
		}
		sb_buf_append(b, &lit, 1);
	}
	return rr_json_fail(j, "a string is not terminated");
}

bool rr_json_string(struct rr_json *j, const char **s, size_t *len)
{
	if (rr_json_peek(j) != RR_J_STRING)
		return rr_json_fail(j, "a string was expected");
	const char *p = j->p + 1;
	while (p < j->end) {
		unsigned char c = (unsigned char)*p;
		if (c == '"') {
			*s = j->p + 1;
			*len = (size_t)(p - *s);
			j->p = p + 1;
			return true;
		}
		if (c == '\\')
			return string_slow(j, p, s, len);
		if (c < 0x20)
			return rr_json_fail(j, "a string holds a control character");
		p++;
	}
	return rr_json_fail(j, "a string is not terminated");
}

bool rr_json_uint(struct rr_json *j, uint64_t max, uint64_t *out)
{
	if (rr_json_peek(j) != RR_J_NUMBER)
		return rr_json_fail(j, "a number was expected");
	const char *p = j->p;
	if (*p == '-')
		return rr_json_fail(j, "a negative number where none may be");
	uint64_t v = 0;
	const char *digits = p;
	while (p < j->end && *p >= '0' && *p <= '9') {
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return rr_json_fail(j, "a number is too large");
		v = v * 10 + d;
		p++;
	}
	if (p - digits > 1 && *digits == '0')
		return rr_json_fail(j, "a number has a leading zero");
	if (p < j->end && (*p == '.' || *p == 'e' || *p == 'E'))
		return rr_json_fail(j, "a whole number was expected");
	if (v > max)
		return rr_json_fail(j, "a number is out of range");
	j->p = p;
	*out = v;
	return true;
}

static bool literal(struct rr_json *j, const char *lit)
{
	size_t n = strlen(lit);
	if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0)
		return rr_json_fail(j, "an unknown literal");
	j->p += n;
	return true;
}

bool rr_json_take_null(struct rr_json *j)
{
	if (rr_json_peek(j) != RR_J_NULL)
		return false;
	return literal(j, "null");
}

static bool skip_number(struct rr_json *j)
{
	const char *p = j->p;
	if (p < j->end && *p == '-')
		p++;
	const char *d = p;
	while (p < j->end && *p >= '0' && *p <= '9')
		p++;
	if (p == d || (p - d > 1 && *d == '0'))
		return rr_json_fail(j, "a malformed number");
	if (p < j->end && *p == '.') {
		d = ++p;
		while (p < j->end && *p >= '0' && *p <= '9')
			p++;
		if (p == d)
			return rr_json_fail(j, "a malformed number");
	}
	if (p < j->end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < j->end && (*p == '+' || *p == '-'))
			p++;
		d = p;
		while (p < j->end && *p >= '0' && *p <= '9')
			p++;
		if (p == d)
			return rr_json_fail(j, "a malformed number");
	}
	j->p = p;
	return true;
}

bool rr_json_skip(struct rr_json *j)
{
	const char *s;
	size_t len;
	switch (rr_json_peek(j)) {
	case RR_J_OBJECT:
		if (!rr_json_object(j))
			return false;
		while (rr_json_key(j, &s, &len))
			if (!rr_json_skip(j))
				return false;
		return !j->error;
	case RR_J_ARRAY:
		if (!rr_json_array(j))
			return false;
		while (rr_json_next(j))
			if (!rr_json_skip(j))
				return false;
		return !j->error;
	case RR_J_STRING:
		return rr_json_string(j, &s, &len);
	case RR_J_NUMBER:
		return skip_number(j);
	case RR_J_TRUE:
		return literal(j, "true");
	case RR_J_FALSE:
		return literal(j, "false");
	case RR_J_NULL:
		return literal(j, "null");
	default:
		return rr_json_fail(j, j->p == j->end ? "the document ends early" : "a value was expected");
	}
}

bool rr_json_at_end(struct rr_json *j)
{
	if (j->error)
		return false;
	skip_ws(j);
	return j->p == j->end;
}

/* ---- times ---- */

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static int digits(const char *s, int n)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

int rr_parse_time(const char *s, size_t len, struct timespec *out)
{
	if (len < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' ||
	    s[16] != ':')
		return -1;
	int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
	int h = digits(s + 11, 2), mi = digits(s + 14, 2), se = digits(s + 17, 2);
	if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 ||
	    se > 60)
		return -1;
	size_t i = 19;
	long ns = 0;
	if (s[i] == '.') {
		i++;
		int nd = 0;
		while (i < len && s[i] >= '0' && s[i] <= '9') {
			if (nd < 9) {
				ns = ns * 10 + (s[i] - '0');
				nd++;
			}
			i++;
		}
		if (nd == 0)
			return -1;
		while (nd++ < 9)
			ns *= 10;
	}
	int64_t offset = 0;
	if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
		i++;
	} else if (i < len && (s[i] == '+' || s[i] == '-')) {
		if (len - i < 6 || s[i + 3] != ':')
			return -1;
		int oh = digits(s + i + 1, 2), om = digits(s + i + 4, 2);
		if (oh < 0 || oh > 23 || om < 0 || om > 59)
			return -1;
		offset = (int64_t)(oh * 3600 + om * 60) * (s[i] == '-' ? -1 : 1);
		i += 6;
	} else {
		return -1;
	}
	if (i != len)
		return -1;
	int64_t secs = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + se - offset;
	out->tv_sec = (time_t)secs;
	out->tv_nsec = ns;
	return 0;
}
