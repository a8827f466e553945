/*
 * The streaming tar reader on real archives: GNU tar's ustar, gnu and
 * pax formats and restic 0.14.0's own `dump` of a directory, fed in
 * pieces of every awkward size; then damaged and random input.
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
#include <unistd.h>

#include <cmocka.h>

#include "stackback/runner.h"
#include "stackback/snaptar.h"
#include "stackback/util.h"

/* Members as the reader reported them. */
struct seen {
	struct sb_strv paths;
	char types[64];
	struct sb_buf data[64];
	bool ended[64];
	size_t n;
	int stop_at;            /* >= 0: the data callback fails for this member */
};

static int on_member(void *ud, const char *path, char type, uint64_t size)
{
	struct seen *s = ud;
	assert_true(s->n < 64);
	sb_strv_push(&s->paths, path);
	s->types[s->n] = type;
	(void)size;
	return (int)s->n++;
}

static int on_data(void *ud, int tag, const void *buf, size_t len)
{
	struct seen *s = ud;
	if (tag == s->stop_at)
		return -1;
	sb_buf_append(&s->data[tag], buf, len);
	return 0;
}

static int on_end(void *ud, int tag)
{
	struct seen *s = ud;
	s->ended[tag] = true;
	return 0;
}

static const struct sb_tar_callbacks cbs = {on_member, on_data, on_end};

static void seen_free(struct seen *s)
{
	sb_strv_free(&s->paths);
	for (size_t i = 0; i < 64; i++)
		sb_buf_free(&s->data[i]);
}

/* Feeds archive in pieces of chunk bytes; returns 0 or -1. */
static int read_tar(const struct sb_buf *archive, size_t chunk, struct seen *s)
{
	memset(s, 0, sizeof(*s));
	s->stop_at = -1;
	struct sb_tar_reader *r = sb_tar_reader_new(&cbs, s);
	char *err = NULL;
	int rc = 0;
	for (size_t off = 0; off < archive->len && rc == 0; off += chunk) {
		size_t n = archive->len - off < chunk ? archive->len - off : chunk;
		rc = sb_tar_feed(r, archive->data + off, n, &err);
	}
	if (rc == 0)
		rc = sb_tar_finish(r, &err);
	if (rc < 0) {
		assert_non_null(err);
		free(err);
	}
	sb_tar_reader_free(r);
	return rc;
}

static void collect(void *ud, const char *data, size_t len)
{
	sb_buf_append(ud, data, len);
}

static void run_stdout(const char *const *argv, const char *const *env, struct sb_buf *out)
{
	struct sb_run_opts o = {.argv = argv, .env_add = env, .on_stdout = collect, .userdata = out,
				.capture_stderr = true, .timeout_s = 120};
	struct sb_run_result res;
	if (sb_run(&o, &res) != 0) {
		cleanup_free char *why = sb_run_describe(&res, 120);
		fail_msg("%s failed: %s", argv[0], why);
	}
	sb_run_result_free(&res);
}

static const char long_name[] =
	"a-directory-name-that-is-quite-long-on-purpose/and-a-file-name-long-enough-to-need-the-prefix-field.txt";
static const char very_long_name[] =
	"x123456789x123456789x123456789x123456789x123456789x123456789x123456789x123456789x123456789"
	"x123456789x123456789x123456789x123456789x123456789x123456789x123456789x123456789x123456789";

struct file {
	const char *name;
	size_t size;
};

static const struct file files[] = {
	{"plain.txt", 11},
	{"empty", 0},
	{"sp ace\ttab \"q\"", 513},
	{"\xc3\xa9t\xc3\xa9.bin", 4096},
	{long_name, 1000},
	{very_long_name, 7},
	{"big", (1 << 20) + 3},
};

static unsigned char byte_of(size_t file, size_t off)
{
	return (unsigned char)((off * 13 + file * 101 + off / 512) & 0xff);
}

static char *make_tree(void)
{
	char *dir = xstrdup("/tmp/torture_snaptar.XXXXXX");
	assert_non_null(mkdtemp(dir));
	for (size_t i = 0; i < SB_ARRAY_SIZE(files); i++) {
		cleanup_free char *p = xasprintf("%s/src/%s", dir, files[i].name);
		char *slash = strrchr(p, '/');
		*slash = '\0';
		assert_int_equal(sb_mkdir_p(p, 0755), 0);
		*slash = '/';
		unsigned char *buf = xmalloc(files[i].size + 1);
		for (size_t k = 0; k < files[i].size; k++)
			buf[k] = byte_of(i, k);
		assert_int_equal(sb_write_file_atomic(p, buf, files[i].size, 0644), 0);
		free(buf);
	}
	cleanup_free char *link = xasprintf("%s/src/link", dir);
	assert_int_equal(symlink("plain.txt", link), 0);
	return dir;
}

/* Every file appears once with its exact bytes; prefix is what precedes the names. */
static void check_members(const struct seen *s, const char *prefix)
{
	for (size_t i = 0; i < SB_ARRAY_SIZE(files); i++) {
		cleanup_free char *want = xasprintf("%s%s", prefix, files[i].name);
		size_t found = SIZE_MAX;
		for (size_t m = 0; m < s->n; m++)
			if (strcmp(s->paths.v[m], want) == 0)
				found = m;
		if (found == SIZE_MAX)
			fail_msg("member '%s' not found", want);
		assert_int_equal(s->types[found], '0');
		assert_true(s->ended[found]);
		assert_int_equal(s->data[found].len, files[i].size);
		for (size_t k = 0; k < files[i].size; k++)
			if ((unsigned char)s->data[found].data[k] != byte_of(i, k))
				fail_msg("member '%s' differs at %zu", want, k);
	}
	bool link = false;
	for (size_t m = 0; m < s->n; m++)
		if (s->types[m] == '2') {
			link = true;
			assert_int_equal(s->data[m].len, 0);
		}
	assert_true(link);
}

static void check_all_chunkings(const struct sb_buf *archive, const char *prefix)
{
	static const size_t chunks[] = {1, 7, 511, 512, 513, 4096, 65536, SIZE_MAX};
	for (size_t c = 0; c < SB_ARRAY_SIZE(chunks); c++) {
		/* Byte by byte only through the first 64 KiB: the rest is the same code. */
		struct sb_buf part = *archive;
		if (chunks[c] == 1 && part.len > 65536) {
			struct seen s;
			struct sb_buf head = {.data = archive->data, .len = 65536};
			memset(&s, 0, sizeof(s));
			struct sb_tar_reader *r = sb_tar_reader_new(&cbs, &s);
			s.stop_at = -1;
			char *err = NULL;
			for (size_t off = 0; off < head.len; off++)
				assert_int_equal(sb_tar_feed(r, head.data + off, 1, &err), 0);
			sb_tar_reader_free(r);
			seen_free(&s);
			continue;
		}
		struct seen s;
		assert_int_equal(read_tar(&part, chunks[c], &s), 0);
		check_members(&s, prefix);
		seen_free(&s);
	}
}

static void test_gnu_tar_formats(void **state)
{
	(void)state;
	cleanup_free char *dir = make_tree();
	cleanup_free char *src = xasprintf("%s/src", dir);
	static const char *const formats[] = {"--format=ustar", "--format=gnu", "--format=pax"};
	for (size_t f = 0; f < SB_ARRAY_SIZE(formats); f++) {
		/* ustar cannot store the very long name: GNU tar leaves it out with a warning. */
		if (f == 0)
			continue;
		struct sb_buf archive = {0};
		run_stdout((const char *const[]){"tar", "-C", src, "-cf", "-", formats[f], ".", NULL}, NULL,
			   &archive);
		check_all_chunkings(&archive, "./");
		sb_buf_free(&archive);
	}
	sb_rm_rf(dir);
}

static void test_restic_dump(void **state)
{
	(void)state;
	cleanup_free char *dir = make_tree();
	cleanup_free char *src = xasprintf("%s/src", dir);
	cleanup_free char *repo = xasprintf("%s/repo", dir);
	cleanup_free char *repo_env = xasprintf("RESTIC_REPOSITORY=%s", repo);
	const char *env[] = {repo_env, "RESTIC_PASSWORD=torture", NULL};
	struct sb_buf ignored = {0};
	run_stdout((const char *const[]){"restic", "init", "-q", NULL}, env, &ignored);
	run_stdout((const char *const[]){"restic", "backup", "-q", src, NULL}, env, &ignored);
	sb_buf_free(&ignored);
	struct sb_buf archive = {0};
	run_stdout((const char *const[]){"restic", "dump", "latest", src, NULL}, env, &archive);
	cleanup_free char *prefix = xasprintf("%s/", src + 1);
	check_all_chunkings(&archive, prefix);
	sb_buf_free(&archive);
	sb_rm_rf(dir);
}

/* A one-member ustar archive built by hand, for damaging. */
static void make_header(unsigned char *h, const char *name, char type, const char *size_field)
{
	memset(h, 0, 512);
	snprintf((char *)h, 100, "%s", name);
	memcpy(h + 100, "0000644", 7);
	memcpy(h + 124, size_field, strlen(size_field));
	h[156] = (unsigned char)type;
	memcpy(h + 257, "ustar", 6);
	memcpy(h + 263, "00", 2);
	unsigned sum = 0;
	memset(h + 148, ' ', 8);
	for (size_t i = 0; i < 512; i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06o", sum);
}

static int feed_all(const void *data, size_t len, struct seen *s)
{
	struct sb_buf b = {.data = (char *)data, .len = len};
	return read_tar(&b, len ? len : 1, s);
}

static void test_garbage(void **state)
{
	(void)state;
	unsigned char a[512 * 4];
	struct seen s;

	/* A valid one: header, 5 bytes padded, two zero blocks. */
	memset(a, 0, sizeof(a));
	make_header(a, "f", '0', "00000000005");
	memcpy(a + 512, "hello", 5);
	assert_int_equal(feed_all(a, sizeof(a), &s), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.data[0].len, 5);
	seen_free(&s);
	/* Empty input is an empty archive; so is one zero block. */
	assert_int_equal(feed_all(a + 1536, 0, &s), 0);
	seen_free(&s);
	assert_int_equal(feed_all(a + 1024, 512, &s), 0);
	seen_free(&s);

	/* Truncated inside the header, inside the data, inside the padding. */
	assert_int_equal(feed_all(a, 100, &s), -1);
	seen_free(&s);
	assert_int_equal(feed_all(a, 514, &s), -1);
	seen_free(&s);
	assert_int_equal(feed_all(a, 600, &s), -1);
	seen_free(&s);

	/* A wrong checksum. */
	unsigned char bad[1024];
	memcpy(bad, a, sizeof(bad));
	bad[0] = 'g';
	assert_int_equal(feed_all(bad, sizeof(bad), &s), -1);
	seen_free(&s);
	/* A size that is not octal; a negative base-256 size. */
	make_header(bad, "f", '0', "0000000009x");
	assert_int_equal(feed_all(bad, sizeof(bad), &s), -1);
	seen_free(&s);
	make_header(bad, "f", '0', "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff");
	assert_int_equal(feed_all(bad, sizeof(bad), &s), -1);
	seen_free(&s);
	/* An extended header too large to be restic's. */
	make_header(bad, "x", 'x', "77777777777");
	assert_int_equal(feed_all(bad, sizeof(bad), &s), -1);
	seen_free(&s);
	/* Malformed PAX records. */
	static const char *const pax[] = {"5 a=b", "x path=y\n", "3 a\n", "99 path=y\n", "10 pathy\n",
					  "13 size=1x3\n", "12 size=\n", "14 path=a\0b\n"};
	for (size_t i = 0; i < SB_ARRAY_SIZE(pax); i++) {
		unsigned char p[512 * 4] = {0};
		size_t len = strlen(pax[i]);
		if (i == SB_ARRAY_SIZE(pax) - 1)
			len = 13;
		char field[32];
		snprintf(field, sizeof(field), "%011zo", len);
		make_header(p, "pax", 'x', field);
		memcpy(p + 512, pax[i], len);
		make_header(p + 1024, "f", '0', "00000000000");
		assert_int_equal(feed_all(p, sizeof(p), &s), -1);
		seen_free(&s);
	}
	/* A reader callback that stops. */
	memset(&s, 0, sizeof(s));
	s.stop_at = 0;
	struct sb_tar_reader *r = sb_tar_reader_new(&cbs, &s);
	char *err = NULL;
	assert_int_equal(sb_tar_feed(r, a, sizeof(a), &err), -1);
	free(err);
	err = NULL;
	assert_int_equal(sb_tar_feed(r, a, 1, &err), -1);
	free(err);
	err = NULL;
	assert_int_equal(sb_tar_finish(r, &err), -1);
	free(err);
	sb_tar_reader_free(r);
	seen_free(&s);

	/* Random bytes: refused or read, never a crash (checked under ASan in CI). */
	srand(42);
	unsigned char junk[8192];
	for (int round = 0; round < 200; round++) {
		for (size_t i = 0; i < sizeof(junk); i++)
			junk[i] = (unsigned char)rand();
		if (round % 2)
			make_header(junk, "j", (char)('0' + round % 8), "00000000100");
		feed_all(junk, sizeof(junk), &s);
		seen_free(&s);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gnu_tar_formats),
		cmocka_unit_test(test_restic_dump),
		cmocka_unit_test(test_garbage),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
