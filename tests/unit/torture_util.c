#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "stackback/util.h"

static void test_parse_long(void **state)
{
	(void)state;
	long v;
	assert_int_equal(sb_parse_long("42", 0, 100, &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(sb_parse_long("-1", 0, 100, &v), -1);
	assert_int_equal(errno, ERANGE);
	assert_int_equal(sb_parse_long("12abc", 0, 100, &v), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(sb_parse_long("", 0, 100, &v), -1);
	assert_int_equal(sb_parse_long(" 1", 0, 100, &v), -1);
	assert_int_equal(sb_parse_long("99999999999999999999999", 0, 100, &v), -1);
}

static void test_parse_bool(void **state)
{
	(void)state;
	bool b = false;
	assert_int_equal(sb_parse_bool("TRUE", &b), 0);
	assert_true(b);
	assert_int_equal(sb_parse_bool("no", &b), 0);
	assert_false(b);
	assert_int_equal(sb_parse_bool("maybe", &b), -1);
}

static void test_strstrip(void **state)
{
	(void)state;
	char s[] = " \t hello world \r\n";
	assert_string_equal(sb_strstrip(s), "hello world");
	char e[] = "   ";
	assert_string_equal(sb_strstrip(e), "");
}

static void test_atomic_write_and_read(void **state)
{
	(void)state;
	char dir[] = "/tmp/sbutilXXXXXX";
	assert_non_null(mkdtemp(dir));
	char *path = xasprintf("%s/f", dir);
	assert_int_equal(sb_write_file_atomic(path, "abc", 3, 0600), 0);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	char *data;
	size_t len;
	assert_int_equal(sb_read_file(path, 100, &data, &len), 0);
	assert_int_equal(len, 3);
	assert_string_equal(data, "abc");
	free(data);
	assert_int_equal(sb_read_file(path, 2, &data, &len), -EFBIG);
	assert_int_equal(sb_read_file(dir, 100, &data, &len), -EINVAL);
	char *deep = xasprintf("%s/a/b/c", dir);
	assert_int_equal(sb_mkdir_p(deep, 0700), 0);
	assert_int_equal(sb_mkdir_p(path, 0700), -ENOTDIR);
	assert_int_equal(sb_rm_rf(dir), 0);
	assert_int_equal(access(dir, F_OK), -1);
	free(deep);
	free(path);
}

static void test_buf_and_strv(void **state)
{
	(void)state;
	struct sb_buf b = {0};
	sb_buf_printf(&b, "%d-%s", 7, "x");
	sb_buf_puts(&b, "y");
	char *s = sb_buf_steal(&b);
	assert_string_equal(s, "7-xy");
	free(s);
	struct sb_strv sv = {0};
	for (int i = 0; i < 20; i++)
		sb_strv_push_owned(&sv, xasprintf("%d", i));
	assert_int_equal(sv.n, 20);
	assert_null(sv.v[20]);
	assert_true(sb_strv_contains(&sv, "19"));
	assert_false(sb_strv_contains(&sv, "20"));
	sb_strv_free(&sv);
}

static void test_format(void **state)
{
	(void)state;
	char buf[64];
	sb_format_bytes(512, buf, sizeof(buf));
	assert_string_equal(buf, "512 B");
	sb_format_bytes(1536, buf, sizeof(buf));
	assert_string_equal(buf, "1.5 KiB");
	sb_format_duration(5.25, buf, sizeof(buf));
	assert_string_equal(buf, "5.2s");
	sb_format_duration(3725, buf, sizeof(buf));
	assert_string_equal(buf, "1h02m");
	sb_format_duration(1e300, buf, sizeof(buf));
	assert_string_equal(buf, "277777h46m");
	sb_format_duration(-5, buf, sizeof(buf));
	assert_string_equal(buf, "0.0s");
	sb_format_time_utc(0, buf, sizeof(buf));
	assert_string_equal(buf, "1970-01-01T00:00:00Z");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_long),
		cmocka_unit_test(test_parse_bool),
		cmocka_unit_test(test_strstrip),
		cmocka_unit_test(test_atomic_write_and_read),
		cmocka_unit_test(test_buf_and_strv),
		cmocka_unit_test(test_format),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
