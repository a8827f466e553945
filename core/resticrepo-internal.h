/*
 * Internals of the native restic repository reader (resticrepo.h):
 * the crypto box, the unpacked-file encoding and a small JSON pull
 * parser shared by the index, tree and snapshot readers. Internal to
 * core/.
 */
#ifndef STACKBACK_RESTICREPO_INTERNAL_H
#define STACKBACK_RESTICREPO_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "stackback/resticrepo.h"
#include "stackback/util.h"

/* IV before and MAC after every encrypted piece. */
#define RR_IV_LEN 16
#define RR_MAC_LEN 16
#define RR_OVERHEAD (RR_IV_LEN + RR_MAC_LEN)

/* A key: AES-256 for encryption, then Poly1305-AES's AES-128 key k and r. */
struct rr_key {
	uint8_t enc[32];
	uint8_t mac_k[16];
	uint8_t mac_r[16];
};

/* The algorithms, fetched once per repository; safe to share between threads. */
struct rr_crypto {
	EVP_CIPHER *aes256_ctr;
	EVP_CIPHER *aes128_ecb;
	EVP_MAC *poly1305;
	EVP_MD *sha256;
};

int rr_crypto_init(struct rr_crypto *c, char **err);
void rr_crypto_free(struct rr_crypto *c);

/*
 * Verifies the MAC of box (IV || ciphertext || MAC, len >= RR_OVERHEAD)
 * and only then decrypts the ciphertext into out (len - RR_OVERHEAD
 * bytes; out may be box + RR_IV_LEN, decrypting in place). Returns 0, -EBADMSG (the MAC does not match: damaged data or
 * another key) or -EIO (libcrypto failed).
 */
int rr_open_box(const struct rr_crypto *c, const struct rr_key *k, const uint8_t *box, size_t len,
		uint8_t *out);

/* SHA-256 of data. */
void rr_sha256(const struct rr_crypto *c, const void *data, size_t len, uint8_t out[SB_RESTIC_ID_LEN]);

/* scrypt(password, salt, N, r, p) -> 64 bytes. Returns 0 or -1. */
int rr_scrypt(const char *password, const uint8_t *salt, size_t salt_len, uint64_t n, uint64_t r,
	      uint64_t p, uint8_t out[64]);

/* Standard base64 (with padding). Returns the decoded length, or -1. out holds len / 4 * 3 bytes. */
ssize_t rr_base64_decode(const char *in, size_t len, uint8_t *out);

/*
 * zstd-decompresses exactly want bytes (a compressed blob). Returns 0, or
 * -1 if the data is not a valid frame or decompresses to another size.
 */
int rr_zstd_exact(const void *in, size_t len, void *out, size_t want);

/*
 * The JSON document of an unpacked file's plaintext (index, snapshot):
 * as is in version 1, or after the encoding byte in version 2 (JSON as
 * is, or 2 = zstd). Returns 0 with *json (caller frees; NUL-terminated)
 * and *json_len, or -1 with *why (a static phrase).
 */
int rr_decode_unpacked(const uint8_t *plain, size_t len, int version, char **json, size_t *json_len,
		       const char **why);

/* ---- JSON pull parser ---- */

#define RR_JSON_MAX_DEPTH 32

enum rr_jtype {
	RR_J_NONE,     /* end of input or a byte no value starts with */
	RR_J_OBJECT,
	RR_J_ARRAY,
	RR_J_STRING,
	RR_J_NUMBER,
	RR_J_TRUE,
	RR_J_FALSE,
	RR_J_NULL,
};

/*
 * A strict reader of one JSON document in memory. Every call after an
 * error fails too, so a caller may check j->error once at the end of a
 * loop. Strings are returned decoded: pointing into the input when they
 * hold no escape, else into a scratch buffer valid until the next string.
 */
struct rr_json {
	const char *p, *end;
	int depth;
	bool first[RR_JSON_MAX_DEPTH];  /* no member/element read yet at this depth */
	const char *error;              /* static phrase, NULL while fine */
	size_t error_at;                /* byte offset of the error */
	const char *start;
	struct sb_buf scratch;
};

void rr_json_init(struct rr_json *j, const void *data, size_t len);
void rr_json_free(struct rr_json *j);
/* Sets the error (the first one wins). Returns false, for `return rr_json_fail(...)`. */
bool rr_json_fail(struct rr_json *j, const char *why);
/* The type of the next value, without consuming it. */
enum rr_jtype rr_json_peek(struct rr_json *j);
/* Enters an object: true, or false (not an object, or an error). */
bool rr_json_object(struct rr_json *j);
/* The next member's key (its ':' consumed): true; false at the object's end (consumed) or on error. */
bool rr_json_key(struct rr_json *j, const char **key, size_t *len);
/* Enters an array. */
bool rr_json_array(struct rr_json *j);
/* True if another element follows; false at the array's end (consumed) or on error. */
bool rr_json_next(struct rr_json *j);
bool rr_json_string(struct rr_json *j, const char **s, size_t *len);
/* A non-negative integer <= max (no fraction, no exponent). */
bool rr_json_uint(struct rr_json *j, uint64_t max, uint64_t *out);
/* Consumes null if it comes next: true; else false without consuming (and no error). */
bool rr_json_take_null(struct rr_json *j);
/* Skips one value of any kind. */
bool rr_json_skip(struct rr_json *j);
/* True if only whitespace is left. */
bool rr_json_at_end(struct rr_json *j);
/* "what at byte N" for error messages (caller frees). */
char *rr_json_describe(const struct rr_json *j);

/* True if key (len bytes) is lit. */
static inline bool rr_key_is(const char *key, size_t len, const char *lit)
{
	size_t n = __builtin_strlen(lit);
	return len == n && __builtin_memcmp(key, lit, n) == 0;
}

/* A tree blob read and parsed without the tree cache (one reference), for walks over a whole snapshot. */
int rr_read_tree(struct sb_resticrepo *r, const uint8_t *id, struct sb_restictree **out, char **err);

/* RFC 3339 time ("2024-05-01T10:00:00.123456789+02:00") to UTC. Returns 0 or -1. */
int rr_parse_time(const char *s, size_t len, struct timespec *out);

#endif
