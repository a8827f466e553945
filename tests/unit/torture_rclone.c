/*
 * The rclone adapter's parsers: JSON log stats lines and `check
 * --combined` lines. The samples are real output of rclone 1.60.1 on
 * this project's machines (a sync of a restic repository to a `type =
 * local` remote with --use-json-log --stats 1s -v); then garbage.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "stackback/rclone.h"
#include "stackback/util.h"

/* Mid-sync stats, the final stats, and an ordinary info line. */
static const char stats_mid[] =
	"{\"level\":\"warning\",\"msg\":\"\\nTransferred:   \\t  264.444 MiB / 572.579 MiB, 46%, 131.423 MiB/s, ET"
	"A 2s\\nTransferred:           27 / 49, 55%\\nElapsed time:         2.0s\\nTransferring:\\n * data/81"
	"/81859564f087e9…1f2404b34efc6f5ca48af1: 35% /19.299Mi, 0/s, -\\n * data/8c/8c220dcf0debc7…0b99c02"
	"c5b5a2dd951d2b4: 61% /16.338Mi, 0/s, -\\n * data/8f/8fe7b2be25d5be…1522722ec9e5386cc28ccb: 20% /1"
	"7.746Mi, 0/s, -\\n * data/91/91daa18c1aa270…02851ccf6b5949932268b1:  4% /19.344Mi, 0/s, -\\n\\n\",\"s"
	"ource\":\"accounting/stats.go:482\",\"stats\":{\"bytes\":277289935,\"checks\":0,\"deletedDirs\":0,\"deletes\""
	":0,\"elapsedTime\":2.094666019,\"errors\":0,\"eta\":2,\"fatalError\":false,\"renames\":0,\"retryError\":fals"
	"e,\"speed\":137807474.34480518,\"totalBytes\":600392724,\"totalChecks\":0,\"totalTransfers\":49,\"transfe"
	"rTime\":0,\"transferring\":[{\"bytes\":7139328,\"eta\":null,\"group\":\"global_stats\",\"name\":\"data/81/8185"
	"9564f087e9ec21b8594783ce09039ad9aa8ad01f2404b34efc6f5ca48af1\",\"percentage\":35,\"size\":20236273,\"s"
	"peed\":16323226.501874419,\"speedAvg\":0},{\"bytes\":10612736,\"eta\":null,\"group\":\"global_stats\",\"name"
	"\":\"data/8c/8c220dcf0debc7c719be019a1de378eb1cee5322450b99c02c5b5a2dd951d2b4\",\"percentage\":61,\"si"
	"ze\":17131538,\"speed\":24287946.95514084,\"speedAvg\":0},{\"bytes\":3731456,\"eta\":null,\"group\":\"global"
	"_stats\",\"name\":\"data/8f/8fe7b2be25d5be98428d581db9e3d042a5680603811522722ec9e5386cc28ccb\",\"perce"
	"ntage\":20,\"size\":18608102,\"speed\":12770630.44125025,\"speedAvg\":0},{\"bytes\":978944,\"eta\":null,\"gr"
	"oup\":\"global_stats\",\"name\":\"data/91/91daa18c1aa27052f383443219225ca2f3dc8c8d1f02851ccf6b59499322"
	"68b1\",\"percentage\":4,\"size\":20283717,\"speed\":24527031.525001425,\"speedAvg\":0}],\"transfers\":27},\""
	"time\":\"2026-11-28T04:34:37.108555+00:00\"}";
static const char stats_final[] =
	"{\"level\":\"warning\",\"msg\":\"\\nTransferred:   \\t  572.579 MiB / 572.579 MiB, 100%, 128.886 MiB/s, E"
	"TA 0s\\nTransferred:           49 / 49, 100%\\nElapsed time:         4.6s\\n\\n\",\"source\":\"accountin"
	"g/stats.go:482\",\"stats\":{\"bytes\":600392724,\"checks\":0,\"deletedDirs\":0,\"deletes\":0,\"elapsedTime\":"
	"4.604205409,\"errors\":0,\"eta\":0,\"fatalError\":false,\"renames\":0,\"retryError\":false,\"speed\":1351463"
	"00.54032904,\"totalBytes\":600392724,\"totalChecks\":0,\"totalTransfers\":49,\"transferTime\":0,\"transfe"
	"rs\":49},\"time\":\"2026-11-28T04:34:39.618041+00:00\"}";
static const char copied_line[] =
	"{\"level\":\"info\",\"msg\":\"Copied (new)\",\"object\":\"keys/e8ef3c9443134c51044bea061a88b6f8bddfa160f383"
	"9721336b77b42366d039\",\"objectType\":\"*local.Object\",\"source\":\"operations/operations.go:566\",\"time"
	"\":\"2026-11-28T04:34:35.096074+00:00\"}";

/* A sync with nothing to do: eta null, no bytes. */
static const char stats_noop[] =
	"{\"level\":\"warning\",\"msg\":\"\\nTransferred:   \\t          0 B / 0 B, -, 0 B/s, ETA -\\nChecks:"
	"                 2 / 2, 100%\\nElapsed time:         0.1s\\n\\n\",\"source\":\"accounting/stats.go:482\","
	"\"stats\":{\"bytes\":0,\"checks\":2,\"deletedDirs\":0,\"deletes\":0,\"elapsedTime\":0.123978279,\"errors\":0,"
	"\"eta\":null,\"fatalError\":false,\"renames\":0,\"retryError\":false,\"speed\":0,\"totalBytes\":0,"
	"\"totalChecks\":2,\"totalTransfers\":0,\"transferTime\":0,\"transfers\":0},"
	"\"time\":\"2026-11-28T04:35:49.571033+00:00\"}";

static int parse(const char *line, struct sb_rclone_progress *p)
{
	return sb_rclone_parse_stats_line(line, strlen(line), p);
}

static void test_stats_real(void **state)
{
	(void)state;
	struct sb_rclone_progress p;
	assert_int_equal(parse(stats_mid, &p), 1);
	assert_int_equal(p.bytes_done, 277289935);
	assert_int_equal(p.bytes_total, 600392724);
	assert_int_equal(p.files_done, 27);
	assert_int_equal(p.files_total, 49);
	assert_true(p.eta_s == 2);
	assert_true(p.speed > 137807474 && p.speed < 137807475);
	assert_true(p.percent > 46.1 && p.percent < 46.3);

	assert_int_equal(parse(stats_final, &p), 1);
	assert_int_equal(p.bytes_done, 600392724);
	assert_int_equal(p.bytes_total, 600392724);
	assert_int_equal(p.files_done, 49);
	assert_true(p.percent == 100);
	assert_true(p.eta_s == 0);

	assert_int_equal(parse(stats_noop, &p), 1);
	assert_int_equal(p.bytes_total, 0);
	assert_true(p.percent == 0);
	assert_true(p.eta_s == -1);

	p.bytes_done = 77;
	assert_int_equal(parse(copied_line, &p), 0);
	assert_int_equal(p.bytes_done, 77);
}

static void test_stats_garbage(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"",
		"{",
		"[]",
		"null",
		"\"stats\"",
		"2026/11/28 04:35:28 Failed to create file system for \"nosuchremote:/x\": didn't find section in config file",
		"{\"stats\":5}",
		"{\"stats\":[]}",
		"{\"stats\":null}",
		"{\"stats\":{\"bytes\":\"12\"}}",
		"{\"stats\":{\"bytes\":-1}}",
		"{\"stats\":{\"totalBytes\":1e300}}",
		"{\"stats\":{\"transfers\":true}}",
		"{\"stats\":{\"eta\":\"soon\"}}",
		"{\"stats\":{\"speed\":{}}}",
		"{\"stats\":{}} x",
		"{\"level\":\"warning\",\"stats\":{\"bytes\":1,\"totalBytes\":2",
	};
	for (size_t i = 0; i < SB_ARRAY_SIZE(bad); i++) {
		struct sb_rclone_progress p = {.bytes_done = 99};
		int rc = parse(bad[i], &p);
		if (rc != -1)
			fail_msg("line %zu (%s) parsed as %d", i, bad[i], rc);
		assert_int_equal(p.bytes_done, 99);
	}
	/* The real line cut at every length. */
	size_t n = strlen(stats_final);
	for (size_t cut = 0; cut < n; cut++) {
		struct sb_rclone_progress p;
		assert_int_equal(sb_rclone_parse_stats_line(stats_final, cut, &p), -1);
	}
	/* A NUL inside. */
	char *copy = xstrdup(stats_final);
	copy[40] = '\0';
	struct sb_rclone_progress p;
	assert_int_equal(sb_rclone_parse_stats_line(copy, n, &p), -1);
	free(copy);

	/* Huge but valid numbers; more done than total is 100%, not more. */
	assert_int_equal(parse("{\"stats\":{\"bytes\":18446744073709551615,\"totalBytes\":10,\"speed\":-3}}", &p), 1);
	assert_true(p.bytes_done == UINT64_MAX);
	assert_true(p.percent == 100);
	assert_true(p.speed == 0);
	/* Missing members are zero, not an error: rclone omits some early on. */
	assert_int_equal(parse("{\"stats\":{}}", &p), 1);
	assert_int_equal(p.bytes_done, 0);
	assert_true(p.eta_s == -1);
}

static int check_line(const char *line, struct sb_rclone_check *c)
{
	return sb_rclone_parse_check_line(line, strlen(line), c);
}

static void test_check_lines(void **state)
{
	(void)state;
	/* rclone 1.60.1 `check --combined -` after tampering with a copy. */
	static const char *const real[] = {
		"- extra.txt",
		"+ keys/e8ef3c9443134c51044bea061a88b6f8bddfa160f3839721336b77b42366d039",
		"* snapshots/267ff9c59179a442f9fc0df8c2e32908dd66ef15d03a75e647726bd860105b3c",
		"= config",
		"= data/07/073192d7c4a407e29e730654b5ff4ce4f5cf76c0885dd67491e534701546254a",
		"! data/10/10ec2b79e60e5e55e93191fdf1bc1ce892402aa5de7694b50ece6fca9e1bcdf3",
	};
	struct sb_rclone_check c = {0};
	for (size_t i = 0; i < SB_ARRAY_SIZE(real); i++)
		assert_int_equal(check_line(real[i], &c), 0);
	assert_int_equal(c.missing_on_src, 1);
	assert_int_equal(c.missing_on_dst, 1);
	assert_int_equal(c.differences, 1);
	assert_int_equal(c.matched, 2);
	assert_int_equal(c.errors, 1);

	static const char *const bad[] = {
		"", "=", "= ", "=x", "?  a", " = a", "2026/11/28 04:35:18 NOTICE: Local file system at /x: 49 files missing",
	};
	struct sb_rclone_check z = {0};
	for (size_t i = 0; i < SB_ARRAY_SIZE(bad); i++)
		if (check_line(bad[i], &z) != -1)
			fail_msg("check line '%s' accepted", bad[i]);
	assert_int_equal(z.matched + z.missing_on_dst + z.missing_on_src + z.differences + z.errors, 0);
}

static void test_remote_spec(void **state)
{
	(void)state;
	struct sb_config cfg = {.rclone_remote = (char *)"b2", .rclone_path = (char *)"bucket/stackback"};
	char *s = sb_rclone_remote_spec(&cfg);
	assert_string_equal(s, "b2:bucket/stackback");
	free(s);
	cfg.rclone_path = NULL;
	s = sb_rclone_remote_spec(&cfg);
	assert_string_equal(s, "b2:");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stats_real),
		cmocka_unit_test(test_stats_garbage),
		cmocka_unit_test(test_check_lines),
		cmocka_unit_test(test_remote_spec),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
