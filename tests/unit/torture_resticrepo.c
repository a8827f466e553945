/*
 * The native restic reader's parsers on their own (no restic needed):
 * index files, tree blobs and pack headers, the valid forms restic writes
 * and garbage of every kind, which must be refused with a message and
 * never crash or half-apply. tests/unit/torture_resticrepo_real.c reads
 * real repositories.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "stackback/resticrepo.h"
#include "stackback/util.h"

#define ID_A "aa00000000000000000000000000000000000000000000000000000000000001"
#define ID_B "bb00000000000000000000000000000000000000000000000000000000000002"
#define ID_P "cc00000000000000000000000000000000000000000000000000000000000003"
#define ID_Q "dd00000000000000000000000000000000000000000000000000000000000004"
#define ID_E "ee00000000000000000000000000000000000000000000000000000000000005"

static void test_ids(void **state)
{
	(void)state;
	uint8_t id[SB_RESTIC_ID_LEN];
	assert_int_equal(sb_restic_id_parse(ID_A, 64, id), 0);
	assert_int_equal(id[0], 0xaa);
	assert_int_equal(id[31], 0x01);
	char hex[65];
	sb_restic_id_format(id, hex);
	assert_string_equal(hex, ID_A);
	assert_int_equal(sb_restic_id_parse(ID_A, 63, id), -1);
	assert_int_equal(sb_restic_id_parse("AA00000000000000000000000000000000000000000000000000000000000001", 64, id), -1);
	assert_int_equal(sb_restic_id_parse("g000000000000000000000000000000000000000000000000000000000000001", 64, id), -1);
}

static const char index_json[] =
	"{\"supersedes\":[\"" ID_Q "\"],\"packs\":[{\"id\":\"" ID_P "\",\"blobs\":["
	"{\"id\":\"" ID_A "\",\"type\":\"data\",\"offset\":0,\"length\":100,\"uncompressed_length\":500},"
	"{\"id\":\"" ID_B "\",\"type\":\"tree\",\"offset\":100,\"length\":50}]},"
	"{\"blobs\":[{\"id\":\"" ID_A "\",\"type\":\"data\",\"offset\":7,\"length\":100,\"uncompressed_length\":500}],"
	"\"id\":\"" ID_Q "\"}]}";

static void test_index_valid(void **state)
{
	(void)state;
	struct sb_resticindex *idx = sb_resticindex_new();
	char *err = NULL;
	assert_int_equal(sb_resticindex_add_json(idx, index_json, strlen(index_json), 2, &err), 0);
	/* The old format: a bare array of packs. */
	static const char legacy[] = "[{\"id\":\"" ID_Q "\",\"blobs\":[{\"id\":\"" ID_B
				     "\",\"type\":\"data\",\"offset\":0,\"length\":40}]}]";
	assert_int_equal(sb_resticindex_add_json(idx, legacy, strlen(legacy), 2, &err), 0);
	sb_resticindex_finish(idx);
	/* A twice: kept once; B as data and as tree: two blobs. */
	assert_int_equal(sb_resticindex_count(idx), 3);
	assert_int_equal(sb_resticindex_packs(idx), 2);
	uint8_t a[32], b[32];
	sb_restic_id_parse(ID_A, 64, a);
	sb_restic_id_parse(ID_B, 64, b);
	ssize_t pos = sb_resticindex_find(idx, a, SB_RESTIC_BLOB_DATA);
	assert_true(pos >= 0);
	struct sb_restic_blob blob;
	sb_resticindex_get(idx, (size_t)pos, &blob);
	assert_true(blob.compressed);
	assert_int_equal(blob.raw_length, 500);
	assert_int_equal(blob.length, 100);
	assert_memory_equal(sb_resticindex_id(idx, (size_t)pos), a, 32);
	assert_int_equal(sb_resticindex_find(idx, a, SB_RESTIC_BLOB_TREE), -1);
	pos = sb_resticindex_find(idx, b, SB_RESTIC_BLOB_TREE);
	assert_true(pos >= 0);
	sb_resticindex_get(idx, (size_t)pos, &blob);
	assert_false(blob.compressed);
	assert_int_equal(blob.raw_length, 50 - 32);
	assert_int_equal(blob.offset, 100);
	char hex[65];
	sb_restic_id_format(sb_resticindex_pack_id(idx, blob.pack), hex);
	assert_string_equal(hex, ID_P);
	pos = sb_resticindex_find(idx, b, SB_RESTIC_BLOB_DATA);
	sb_resticindex_get(idx, (size_t)pos, &blob);
	sb_restic_id_format(sb_resticindex_pack_id(idx, blob.pack), hex);
	assert_string_equal(hex, ID_Q);
	/* Memory as documented: 48 bytes a blob, 32 a pack. */
	size_t mem = sb_resticindex_memory(idx);
	assert_true(mem >= 3 * SB_RESTICINDEX_ENTRY_BYTES + 2 * 32);
	assert_true(mem <= 3 * SB_RESTICINDEX_ENTRY_BYTES + 2 * 32 + 256);
	sb_resticindex_free(idx);
}

static void test_index_garbage(void **state)
{
	(void)state;
#define BLOB(fields) "{\"packs\":[{\"id\":\"" ID_P "\",\"blobs\":[{" fields "}]}]}"
	static const struct {
		const char *json;
		int version;
		const char *why;
	} bad[] = {
		{"", 2, "object"},
		{"{", 2, "ends early"},
		{"{}", 2, "no packs"},
		{"{\"packs\":{}}", 2, "array"},
		{"{\"packs\":[1]}", 2, "object"},
		{"{\"packs\":[{\"blobs\":[]}]}", 2, "no id"},
		{"{\"packs\":[{\"id\":\"xyz\",\"blobs\":[]}]}", 2, "hex"},
		{BLOB("\"id\":\"" ID_A "\",\"type\":\"data\",\"offset\":0"), 2, "lacks"},
		{BLOB("\"id\":\"" ID_A "\",\"type\":\"blob\",\"offset\":0,\"length\":40"), 2, "unknown type"},
		{BLOB("\"id\":\"" ID_A "\",\"type\":\"data\",\"offset\":-1,\"length\":40"), 2, "negative"},
		{BLOB("\"id\":\"" ID_A "\",\"type\":\"data\",\"offset\":1.5,\"length\":40"), 2, "whole"},
		{BLOB("\"id\":\"" ID_A "\",\"type\":\"data\",\"offset\":0,\"length\":31"), 2, "overhead"},
		{BLOB("\"id\":\"" ID_A "\",\"type\":\"data\",\"offset\":4294967295,\"length\":40"), 2, "4 GiB"},
		{BLOB("\"id\":\"" ID_A "\",\"type\":\"data\",\"offset\":0,\"length\":99999999999999999999999"), 2,
		 "too large"},
		{BLOB("\"id\":\"" ID_A "\",\"type\":\"data\",\"offset\":0,\"length\":40,\"uncompressed_length\":9"), 1,
		 "version 1"},
		{BLOB("\"id\":\"" ID_A "\",\"type\":\"data\",\"offset\":00,\"length\":40"), 2, "leading zero"},
		{BLOB("\"id\":\"" ID_A "\" \"type\":\"data\""), 2, "comma"},
		{"{\"packs\":[]} x", 2, "follows"},
		{"{\"packs\":[],}", 2, "member name"},
		{"{\"packs\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}", 2, "object"},
		{"{\"x\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],\"packs\":[]}", 2,
		 "deep"},
		{"{\"x\":\"\x01\",\"packs\":[]}", 2, "control"},
		{"{\"x\":\"\\q\",\"packs\":[]}", 2, "escape"},
		{"{\"x\":\"\\u12\",\"packs\":[]}", 2, "\\u"},
		{"{\"x\":tru,\"packs\":[]}", 2, "literal"},
		{"{\"x\":1e,\"packs\":[]}", 2, "malformed"},
	};
	struct sb_resticindex *idx = sb_resticindex_new();
	char *err = NULL;
	assert_int_equal(sb_resticindex_add_json(idx, index_json, strlen(index_json), 2, &err), 0);
	for (size_t i = 0; i < SB_ARRAY_SIZE(bad); i++) {
		err = NULL;
		int rc = sb_resticindex_add_json(idx, bad[i].json, strlen(bad[i].json), bad[i].version, &err);
		if (rc != -EIO)
			fail_msg("index '%s' was accepted", bad[i].json);
		if (!strstr(err, bad[i].why))
			fail_msg("index '%s': '%s' does not say '%s'", bad[i].json, err, bad[i].why);
		free(err);
	}
	/* A refused file adds nothing, even after some of its packs parsed. */
	static const char half[] = "{\"packs\":[{\"id\":\"" ID_E "\",\"blobs\":[]},{\"id\":1}]}";
	assert_int_equal(sb_resticindex_add_json(idx, half, strlen(half), 2, &err), -EIO);
	free(err);
	sb_resticindex_finish(idx);
	assert_int_equal(sb_resticindex_count(idx), 2);
	assert_int_equal(sb_resticindex_packs(idx), 2);
	sb_resticindex_free(idx);

	/* Every prefix of a valid file: refused or accepted, never a crash. */
	for (size_t len = 0; len < strlen(index_json); len++) {
		idx = sb_resticindex_new();
		err = NULL;
		assert_int_equal(sb_resticindex_add_json(idx, index_json, len, 2, &err), -EIO);
		free(err);
		sb_resticindex_free(idx);
	}
}

static const char tree_json[] =
	"{\"nodes\":["
	"{\"name\":\"z-dir\",\"type\":\"dir\",\"mode\":2147484141,\"mtime\":\"2001-02-03T04:05:06.5+02:00\","
	"\"uid\":1000,\"gid\":100,\"inode\":7,\"content\":null,\"subtree\":\"" ID_B "\"},"
	"{\"name\":\"back\\\\\\\\slash \\\\xff\\\\u00e9\\\\n\",\"type\":\"file\",\"mode\":8389101,\"size\":12,"
	"\"links\":2,\"inode\":9,\"mtime\":\"0001-01-01T00:00:00Z\",\"content\":[\"" ID_A "\",\"" ID_A "\"],"
	"\"extended_attributes\":[{\"name\":\"user.x\",\"value\":\"eQ==\"}],\"future\":{\"a\":[1,2.5e3,true,null]}},"
	"{\"name\":\"link\",\"type\":\"symlink\",\"mode\":134218239,\"linktarget\":\"../t\\u00e4rget\",\"links\":1},"
	"{\"name\":\"raw\",\"type\":\"symlink\",\"mode\":134218239,\"linktarget\":\"\\ufffd\",\"linktarget_raw\":\"/w==\"},"
	"{\"name\":\"sock\",\"type\":\"irregular\",\"mode\":420},"
	"{\"name\":\"null\",\"type\":\"chardev\",\"mode\":69206454,\"device\":259,\"size\":99}"
	"]}";

static void test_tree_valid(void **state)
{
	(void)state;
	struct sb_restictree *t;
	char *err = NULL;
	if (sb_restictree_parse(tree_json, strlen(tree_json), &t, &err) < 0)
		fail_msg("%s", err);
	assert_int_equal(sb_restictree_count(t), 6);
	/* Sorted by name, bytes: "back\\..." < "link" < "null" < "raw" < "sock" < "z-dir". */
	const struct sb_restic_node *f = sb_restictree_node(t, 0);
	assert_int_equal(f->name_len, strlen("back\\slash \xff\xc3\xa9\n"));
	assert_memory_equal(f->name, "back\\slash \xff\xc3\xa9\n", f->name_len);
	assert_int_equal(f->type, SB_RESTIC_NODE_FILE);
	assert_int_equal(f->mode, S_IFREG | S_ISUID | 0755);
	assert_int_equal(f->size, 12);
	assert_int_equal(f->links, 2);
	assert_int_equal(f->n_content, 2);
	assert_int_equal(f->content[1][0], 0xaa);
	assert_int_equal(f->mtime.tv_sec, -62135596800LL);
	const struct sb_restic_node *l = sb_restictree_find(t, "link", 4);
	assert_non_null(l);
	assert_string_equal(l->linktarget, "../t\xc3\xa4rget");
	assert_int_equal(l->mode, S_IFLNK | 0777);
	const struct sb_restic_node *raw = sb_restictree_find(t, "raw", 3);
	assert_int_equal(raw->linktarget_len, 1);
	assert_int_equal((unsigned char)raw->linktarget[0], 0xff);
	assert_int_equal(sb_restictree_find(t, "sock", 4)->type, SB_RESTIC_NODE_OTHER);
	const struct sb_restic_node *dev = sb_restictree_find(t, "null", 4);
	assert_int_equal(dev->mode, S_IFCHR | 0666);
	assert_int_equal(dev->device, 259);
	assert_int_equal(dev->size, 0);
	const struct sb_restic_node *d = sb_restictree_find(t, "z-dir", 5);
	assert_true(d->has_subtree);
	assert_int_equal(d->subtree[0], 0xbb);
	assert_int_equal(d->mode, S_IFDIR | 0755);
	assert_int_equal(d->mtime.tv_sec, 981165906);
	assert_int_equal(d->mtime.tv_nsec, 500000000);
	assert_int_equal(d->uid, 1000);
	assert_null(sb_restictree_find(t, "z-di", 4));
	assert_true(sb_restictree_memory(t) > 6 * sizeof(struct sb_restic_node));
	sb_restictree_unref(t);

	static const char empty[] = "{\"nodes\":[]}\n";
	assert_int_equal(sb_restictree_parse(empty, strlen(empty), &t, &err), 0);
	assert_int_equal(sb_restictree_count(t), 0);
	assert_null(sb_restictree_find(t, "x", 1));
	sb_restictree_unref(t);
}

static void test_tree_garbage(void **state)
{
	(void)state;
#define NODE(fields) "{\"nodes\":[{" fields "}]}"
	static const struct {
		const char *json;
		const char *why;
	} bad[] = {
		{"[]", "object"},
		{"{\"nodes\":7}", "array"},
		{"{}", "no nodes"},
		{NODE("\"type\":\"file\""), "lacks"},
		{NODE("\"name\":\"x\""), "lacks"},
		{NODE("\"name\":\"\",\"type\":\"file\""), "invalid name"},
		{NODE("\"name\":\".\",\"type\":\"file\""), "invalid name"},
		{NODE("\"name\":\"..\",\"type\":\"file\""), "invalid name"},
		{NODE("\"name\":\"a/b\",\"type\":\"file\""), "invalid name"},
		{NODE("\"name\":\"a\\\\x00\",\"type\":\"file\""), "invalid name"},
		{NODE("\"name\":\"a\\\\q\",\"type\":\"file\""), "Go-quoted"},
		{NODE("\"name\":\"a\\\\\",\"type\":\"file\""), "Go-quoted"},
		{NODE("\"name\":\"a\\\"\",\"type\":\"file\""), "Go-quoted"},
		{NODE("\"name\":\"a\\\\ud800\",\"type\":\"file\""), "Go-quoted"},
		{NODE("\"name\":\"a\\\\400\",\"type\":\"file\""), "Go-quoted"},
		{NODE("\"name\":\"d\",\"type\":\"dir\""), "no subtree"},
		{NODE("\"name\":\"l\",\"type\":\"symlink\""), "no target"},
		{NODE("\"name\":\"l\",\"type\":\"symlink\",\"linktarget\":\"a\\u0000b\""), "NUL"},
		{NODE("\"name\":\"l\",\"type\":\"symlink\",\"linktarget_raw\":\"!!\""), "base64"},
		{NODE("\"name\":\"d\",\"type\":\"dir\",\"subtree\":\"" ID_A "\",\"content\":[\"" ID_B "\"]"), "has content"},
		{NODE("\"name\":\"f\",\"type\":\"file\",\"content\":[\"abc\"]"), "hex"},
		{NODE("\"name\":\"f\",\"type\":\"file\",\"uid\":4294967296"), "range"},
		{NODE("\"name\":\"f\",\"type\":\"file\",\"size\":-3"), "negative"},
		{NODE("\"name\":\"f\",\"type\":\"file\",\"mtime\":\"yesterday\""), "RFC 3339"},
		{NODE("\"name\":\"f\",\"type\":\"file\",\"mtime\":\"2001-13-03T04:05:06Z\""), "RFC 3339"},
		{NODE("\"name\":\"f\",\"type\":\"file\",\"mtime\":\"2001-02-03T04:05:06+2:00\""), "RFC 3339"},
		{NODE("\"name\":\"f\",\"type\":\"file\",\"mtime\":\"2001-02-03T04:05:06.Z\""), "RFC 3339"},
		{"{\"nodes\":[{\"name\":\"f\",\"type\":\"file\"},{\"name\":\"f\",\"type\":\"fifo\"}]}", "twice"},
		{"{\"nodes\":[{\"name\":\"b\",\"type\":\"file\"},{\"name\":\"a\",\"type\":\"fifo\"},{\"name\":\"b\",\"type\":\"file\"}]}",
		 "twice"},
		{"{\"nodes\":[]}{}", "follows"},
	};
	for (size_t i = 0; i < SB_ARRAY_SIZE(bad); i++) {
		struct sb_restictree *t = NULL;
		char *err = NULL;
		int rc = sb_restictree_parse(bad[i].json, strlen(bad[i].json), &t, &err);
		if (rc != -EIO)
			fail_msg("tree '%s' was accepted", bad[i].json);
		if (!strstr(err, bad[i].why))
			fail_msg("tree '%s': '%s' does not say '%s'", bad[i].json, err, bad[i].why);
		assert_null(t);
		free(err);
	}
	/* Every prefix, and every single-byte change of a valid tree: no crash, no leak. */
	size_t len = strlen(tree_json);
	char *copy = xmalloc(len);
	for (size_t cut = 0; cut <= len; cut++) {
		struct sb_restictree *t = NULL;
		char *err = NULL;
		if (sb_restictree_parse(tree_json, cut, &t, &err) == 0)
			sb_restictree_unref(t);
		free(err);
	}
	for (size_t i = 0; i < len; i++) {
		memcpy(copy, tree_json, len);
		copy[i] ^= (char)(1 + i % 127);
		struct sb_restictree *t = NULL;
		char *err = NULL;
		if (sb_restictree_parse(copy, len, &t, &err) == 0) {
			for (size_t k = 0; k < sb_restictree_count(t); k++)
				assert_true(sb_restictree_node(t, k)->name_len > 0);
			sb_restictree_unref(t);
		}
		free(err);
	}
	free(copy);
}

static size_t put_entry(uint8_t *p, int type, uint32_t len, uint32_t raw, uint8_t idbyte)
{
	size_t n = 0;
	p[n++] = (uint8_t)type;
	for (int i = 0; i < 4; i++)
		p[n++] = (uint8_t)(len >> (8 * i));
	if (type >= 2)
		for (int i = 0; i < 4; i++)
			p[n++] = (uint8_t)(raw >> (8 * i));
	memset(p + n, idbyte, 32);
	return n + 32;
}

static void test_pack_header(void **state)
{
	(void)state;
	uint8_t hdr[256];
	size_t len = 0;
	len += put_entry(hdr + len, 0, 100, 0, 1);
	len += put_entry(hdr + len, 3, 60, 1000, 2);
	len += put_entry(hdr + len, 1, 32, 0, 3);
	struct sb_resticpack_entry *e;
	size_t n;
	char *err = NULL;
	assert_int_equal(sb_resticpack_parse_header(hdr, len, 2, 192, &e, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_int_equal(e[0].type, SB_RESTIC_BLOB_DATA);
	assert_false(e[0].compressed);
	assert_int_equal(e[0].raw_length, 68);
	assert_int_equal(e[1].type, SB_RESTIC_BLOB_TREE);
	assert_true(e[1].compressed);
	assert_int_equal(e[1].offset, 100);
	assert_int_equal(e[1].raw_length, 1000);
	assert_int_equal(e[1].id[0], 2);
	assert_int_equal(e[2].offset, 160);
	assert_int_equal(e[2].raw_length, 0);
	free(e);

	static const struct {
		int version;
		uint64_t data_end;
		size_t cut;
		const char *why;
	} bad[] = {
		{1, 192, 0, "unknown blob type"},   /* a compressed entry in version 1 */
		{2, 191, 0, "beyond"},
		{2, 193, 0, "header starts"},
		{2, 192, 1, "cut short"},
	};
	for (size_t i = 0; i < SB_ARRAY_SIZE(bad); i++) {
		err = NULL;
		assert_int_equal(sb_resticpack_parse_header(hdr, len - bad[i].cut, bad[i].version, bad[i].data_end, &e, &n,
							    &err), -EIO);
		if (!strstr(err, bad[i].why))
			fail_msg("'%s' does not say '%s'", err, bad[i].why);
		assert_null(e);
		free(err);
	}
	uint8_t junk[40] = {7};
	assert_int_equal(sb_resticpack_parse_header(junk, sizeof(junk), 2, 100, &e, &n, &err), -EIO);
	free(err);
	len = put_entry(hdr, 0, 31, 0, 1);
	assert_int_equal(sb_resticpack_parse_header(hdr, len, 2, 31, &e, &n, &err), -EIO);
	assert_non_null(strstr(err, "overhead"));
	free(err);
	len = put_entry(hdr, 0, UINT32_MAX, 0, 1);
	len += put_entry(hdr + len, 0, UINT32_MAX, 0, 1);
	assert_int_equal(sb_resticpack_parse_header(hdr, len, 2, UINT32_MAX, &e, &n, &err), -EIO);
	free(err);
	/* An empty header describes an empty pack. */
	assert_int_equal(sb_resticpack_parse_header(hdr, 0, 2, 0, &e, &n, &err), 0);
	assert_int_equal(n, 0);
	free(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_index_valid),
		cmocka_unit_test(test_index_garbage),
		cmocka_unit_test(test_tree_valid),
		cmocka_unit_test(test_tree_garbage),
		cmocka_unit_test(test_pack_header),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
