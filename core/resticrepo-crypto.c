/*
 * The native reader's crypto and encodings, all through libcrypto and
 * libzstd (see resticrepo-internal.h).
 *
 * restic's box (design.rst, "Keys, Encryption and MAC"): IV || C || MAC.
 * C is AES-256-CTR of the plaintext with the IV as the initial 128-bit
 * counter; MAC is Poly1305-AES over C: Poly1305 keyed with r || AES-128_k(IV),
 * the IV serving as the nonce. The MAC is checked first; nothing of an
 * unverified box is decrypted.
 */
#include "resticrepo-internal.h"

#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <string.h>
#include <zstd.h>

int rr_crypto_init(struct rr_crypto *c, char **err)
{
	memset(c, 0, sizeof(*c));
	c->aes256_ctr = EVP_CIPHER_fetch(NULL, "AES-256-CTR", NULL);
	c->aes128_ecb = EVP_CIPHER_fetch(NULL, "AES-128-ECB", NULL);
	c->poly1305 = EVP_MAC_fetch(NULL, "POLY1305", NULL);
	c->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (!c->aes256_ctr || !c->aes128_ecb || !c->poly1305 || !c->sha256) {
		*err = xstrdup("libcrypto lacks AES-256-CTR, AES-128, Poly1305 or SHA-256");
		rr_crypto_free(c);
		return -1;
	}
	return 0;
}

void rr_crypto_free(struct rr_crypto *c)
{
	EVP_CIPHER_free(c->aes256_ctr);
	EVP_CIPHER_free(c->aes128_ecb);
	EVP_MAC_free(c->poly1305);
	EVP_MD_free(c->sha256);
	memset(c, 0, sizeof(*c));
}

/* Poly1305-AES of msg under (k, r) with nonce: tag gets 16 bytes. Returns 0 or -1. */
static int poly1305_aes(const struct rr_crypto *c, const struct rr_key *k, const uint8_t nonce[RR_IV_LEN],
			const uint8_t *msg, size_t len, uint8_t tag[RR_MAC_LEN])
{
	/* The one-time Poly1305 key: r, then s = AES-128_k(nonce). Poly1305 clamps r itself. */
	uint8_t key[32];
	memcpy(key, k->mac_r, 16);
	int ok = 0, outl = 0;
	EVP_CIPHER_CTX *ecb = EVP_CIPHER_CTX_new();
	if (ecb && EVP_EncryptInit_ex2(ecb, c->aes128_ecb, k->mac_k, NULL, NULL) == 1 &&
	    EVP_CIPHER_CTX_set_padding(ecb, 0) == 1 && EVP_EncryptUpdate(ecb, key + 16, &outl, nonce, 16) == 1 &&
	    outl == 16)
		ok = 1;
	EVP_CIPHER_CTX_free(ecb);
	EVP_MAC_CTX *mac = ok ? EVP_MAC_CTX_new(c->poly1305) : NULL;
	size_t taglen = 0;
	ok = mac && EVP_MAC_init(mac, key, sizeof(key), NULL) == 1 && EVP_MAC_update(mac, msg, len) == 1 &&
	     EVP_MAC_final(mac, tag, &taglen, RR_MAC_LEN) == 1 && taglen == RR_MAC_LEN;
	EVP_MAC_CTX_free(mac);
	OPENSSL_cleanse(key, sizeof(key));
	return ok ? 0 : -1;
}

int rr_open_box(const struct rr_crypto *c, const struct rr_key *k, const uint8_t *box, size_t len,
		uint8_t *out)
{
	if (len < RR_OVERHEAD)
		return -EBADMSG;
	const uint8_t *iv = box;
	const uint8_t *ct = box + RR_IV_LEN;
	size_t ct_len = len - RR_OVERHEAD;
	uint8_t tag[RR_MAC_LEN];
	if (poly1305_aes(c, k, iv, ct, ct_len, tag) < 0)
		return -EIO;
	if (CRYPTO_memcmp(tag, ct + ct_len, RR_MAC_LEN) != 0)
		return -EBADMSG;
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int ok = ctx && EVP_DecryptInit_ex2(ctx, c->aes256_ctr, k->enc, iv, NULL) == 1;
	/* EVP lengths are ints: decrypt in slices. */
	size_t done = 0;
	while (ok && done < ct_len) {
		size_t step = ct_len - done < (1u << 30) ? ct_len - done : (1u << 30);
		int outl = 0;
		ok = EVP_DecryptUpdate(ctx, out + done, &outl, ct + done, (int)step) == 1 && (size_t)outl == step;
		done += step;
	}
	EVP_CIPHER_CTX_free(ctx);
	return ok ? 0 : -EIO;
}

void rr_sha256(const struct rr_crypto *c, const void *data, size_t len, uint8_t out[SB_RESTIC_ID_LEN])
{
	unsigned int outl = 0;
	if (EVP_Digest(data, len, out, &outl, c->sha256, NULL) != 1 || outl != SB_RESTIC_ID_LEN)
		/* Cannot happen with a fetched SHA-256; make any comparison fail rather than pass. */
		memset(out, 0, SB_RESTIC_ID_LEN);
}

int rr_scrypt(const char *password, const uint8_t *salt, size_t salt_len, uint64_t n, uint64_t r,
	      uint64_t p, uint8_t out[64])
{
	/* scrypt needs 128 * r * (N + p) bytes; the caller bounded N, r and p. */
	uint64_t maxmem = 128 * r * (n + p) + (1u << 20);
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "SCRYPT", NULL);
	EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	EVP_KDF_free(kdf);
	if (!ctx)
		return -1;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, (void *)password, strlen(password)),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len),
		OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n),
		OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_R, &r),
		OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_P, &p),
		OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem),
		OSSL_PARAM_construct_end(),
	};
	int ok = EVP_KDF_derive(ctx, out, 64, params) == 1;
	EVP_KDF_CTX_free(ctx);
	return ok ? 0 : -1;
}

ssize_t rr_base64_decode(const char *in, size_t len, uint8_t *out)
{
	if (len % 4 != 0 || len > INT32_MAX)
		return -1;
	if (len == 0)
		return 0;
	size_t pad = 0;
	if (in[len - 1] == '=')
		pad++;
	if (in[len - 2] == '=')
		pad++;
	/* EVP_DecodeBlock skips surrounding whitespace; restic's base64 has none. */
	for (size_t i = 0; i < len; i++)
		if (in[i] == ' ' || in[i] == '\t' || in[i] == '\n' || in[i] == '\r')
			return -1;
	int n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);
	if (n < 0 || (size_t)n < pad)
		return -1;
	return (ssize_t)((size_t)n - pad);
}

int rr_zstd_exact(const void *in, size_t len, void *out, size_t want)
{
	size_t got = ZSTD_decompress(out, want, in, len);
	if (ZSTD_isError(got) || got != want)
		return -1;
	return 0;
}

/* Unpacked files (index, snapshots) decompress to at most this: a fence against a hostile frame. */
#define MAX_UNPACKED (256u << 20)

static int zstd_unknown(const uint8_t *in, size_t len, char **json, size_t *json_len, const char **why)
{
	unsigned long long size = ZSTD_getFrameContentSize(in, len);
	if (size == ZSTD_CONTENTSIZE_ERROR) {
		*why = "it is not a zstd frame";
		return -1;
	}
	if (size != ZSTD_CONTENTSIZE_UNKNOWN) {
		if (size > MAX_UNPACKED) {
			*why = "it decompresses to more than 256 MiB";
			return -1;
		}
		char *buf = xmalloc((size_t)size + 1);
		size_t got = ZSTD_decompress(buf, (size_t)size, in, len);
		/* A frame may be followed by more frames: then the declared size is only the first's. */
		if (!ZSTD_isError(got) && got == size) {
			buf[size] = '\0';
			*json = buf;
			*json_len = (size_t)size;
			return 0;
		}
		free(buf);
	}
	ZSTD_DCtx *d = ZSTD_createDCtx();
	if (!d)
		abort();
	struct sb_buf b = {0};
	ZSTD_inBuffer ib = {in, len, 0};
	char chunk[64 << 10];
	size_t rc = 1;
	while (rc != 0 || ib.pos < ib.size) {
		ZSTD_outBuffer ob = {chunk, sizeof(chunk), 0};
		rc = ZSTD_decompressStream(d, &ob, &ib);
		if (ZSTD_isError(rc)) {
			*why = "its zstd data is damaged";
			goto fail;
		}
		sb_buf_append(&b, chunk, ob.pos);
		if (b.len > MAX_UNPACKED) {
			*why = "it decompresses to more than 256 MiB";
			goto fail;
		}
		if (ob.pos == 0 && ib.pos == ib.size && rc != 0) {
			*why = "its zstd data is truncated";
			goto fail;
		}
	}
	ZSTD_freeDCtx(d);
	sb_buf_append(&b, "", 1);
	*json_len = b.len - 1;
	*json = sb_buf_steal(&b);
	return 0;
fail:
	ZSTD_freeDCtx(d);
	sb_buf_free(&b);
	return -1;
}

int rr_decode_unpacked(const uint8_t *plain, size_t len, int version, char **json, size_t *json_len,
		       const char **why)
{
	if (len == 0) {
		*why = "it is empty";
		return -1;
	}
	if (plain[0] == '{' || plain[0] == '[') {
		*json = xmalloc(len + 1);
		memcpy(*json, plain, len);
		(*json)[len] = '\0';
		*json_len = len;
		return 0;
	}
	if (version >= 2 && plain[0] == 2)
		return zstd_unknown(plain + 1, len - 1, json, json_len, why);
	*why = version >= 2 ? "it has an unknown encoding" : "it is not JSON";
	return -1;
}
