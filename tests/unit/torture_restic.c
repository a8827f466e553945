/*
 * The restic adapter's parsers and error explanations. The samples are
 * real output of restic 0.14.0 on this project's machines (backup
 * --json, snapshots --json, stderr of failed runs); then garbage.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "stackback/restic.h"
#include "stackback/util.h"

/* restic 0.14.0 `backup --json`: the first status line, one mid-run, the summary, a read error. */
static const char status_first[] =
	"{\"message_type\":\"status\",\"percent_done\":0,\"total_files\":1,\"total_bytes\":6}";
static const char status_mid[] =
	"{\"message_type\":\"status\",\"seconds_elapsed\":1,\"seconds_remaining\":4,"
	"\"percent_done\":0.20249978666666665,\"total_files\":30,\"files_done\":5,\"total_bytes\":600000000,"
	"\"bytes_done\":121499872,\"current_files\":[\"/f13\",\"/f15\"]}";
static const char summary_line[] =
	"{\"message_type\":\"summary\",\"files_new\":30,\"files_changed\":0,\"files_unmodified\":0,"
	"\"dirs_new\":0,\"dirs_changed\":0,\"dirs_unmodified\":0,\"data_blobs\":404,\"tree_blobs\":1,"
	"\"data_added\":600035489,\"total_files_processed\":30,\"total_bytes_processed\":600000000,"
	"\"total_duration\":7.213079124,\"snapshot_id\":\"ce462638\"}";
static const char error_line[] =
	"{\"message_type\":\"error\",\"error\":{\"Op\":\"read\",\"Path\":\"/proc/self/mem\",\"Err\":5},"
	"\"during\":\"archival\",\"item\":\"/proc/self/mem\"}";

/* restic 0.14.0 `snapshots --json`: a migrated snapshot (bare name tag, local offset) and two of ours. */
static const char snapshots_json[] =
	"[{\"time\":\"2026-11-28T04:26:48.915836914Z\",\"tree\":\"7bd4e79e0df7a9fcc5ad06c3a3a8b21d9b2cae745abc07d9098b4b883fab15ac\","
	"\"paths\":[\"/tmp/adp/src2\"],\"hostname\":\"h1\",\"username\":\"root\",\"tags\":[\"stackback\",\"db\"],"
	"\"id\":\"ce462638d2dc47bb782612d299c867ca97133ee9aa677e6b675d8d83a2bd9847\",\"short_id\":\"ce462638\"},"
	"{\"time\":\"2024-03-10T12:00:00-04:00\",\"tree\":\"750cc35801fc829dbd422e539d2ae1c4491c35b23c39604a03adbb58ea7ecc1f\","
	"\"paths\":[\"/tmp/adp/src\"],\"hostname\":\"old-host\",\"username\":\"root\",\"tags\":[\"web\"],"
	"\"id\":\"267ff9c59179a442f9fc0df8c2e32908dd66ef15d03a75e647726bd860105b3c\",\"short_id\":\"267ff9c5\"},"
	"{\"time\":\"2026-11-28T04:26:41.418051969Z\",\"tree\":\"08dac5fe36c38ed75eeae1160da17fd5aea298dff065a71da1fb7c0de28f8b4d\","
	"\"paths\":[\"/tmp/adp/src\"],\"hostname\":\"h1\",\"username\":\"root\",\"tags\":[\"stackback\",\"web\"],"
	"\"id\":\"d079f312c4fdc14dd1e027c75466c3fdbbfe3efec120a48e959c17e160449a33\",\"short_id\":\"d079f312\"}]\n";

static int parse_line(const char *line, struct sb_backup_progress *p, struct sb_backup_summary *s)
{
	return sb_restic_parse_backup_line(line, strlen(line), p, s);
}

static void test_backup_status(void **state)
{
	(void)state;
	struct sb_backup_progress p;
	struct sb_backup_summary s = {0};
	assert_int_equal(parse_line(status_first, &p, &s), 1);
	assert_true(p.percent == 0);
	assert_int_equal(p.bytes_total, 6);
	assert_int_equal(p.files_total, 1);
	assert_int_equal(p.bytes_done, 0);
	assert_true(p.eta_s == -1);

	assert_int_equal(parse_line(status_mid, &p, &s), 1);
	assert_true(p.percent > 20.24 && p.percent < 20.26);
	assert_int_equal(p.bytes_done, 121499872);
	assert_int_equal(p.bytes_total, 600000000);
	assert_int_equal(p.files_done, 5);
	assert_int_equal(p.files_total, 30);
	assert_true(p.eta_s == 4);
	assert_null(s.snapshot_id);

	/* percent_done outside 0..1 is clamped, not trusted. */
	assert_int_equal(parse_line("{\"message_type\":\"status\",\"percent_done\":7}", &p, &s), 1);
	assert_true(p.percent == 100);
	assert_int_equal(parse_line("{\"message_type\":\"status\",\"percent_done\":-1}", &p, &s), 1);
	assert_true(p.percent == 0);
}

static void test_backup_summary_and_others(void **state)
{
	(void)state;
	struct sb_backup_progress p;
	struct sb_backup_summary s = {0};
	assert_int_equal(parse_line(summary_line, &p, &s), 2);
	assert_string_equal(s.snapshot_id, "ce462638");
	assert_int_equal(s.files_new, 30);
	assert_int_equal(s.files_changed, 0);
	assert_int_equal(s.data_added, 600035489);
	assert_int_equal(s.total_files_processed, 30);
	assert_int_equal(s.total_bytes_processed, 600000000);
	assert_true(s.total_duration > 7.2 && s.total_duration < 7.3);
	/* A second summary replaces the first without leaking it. */
	assert_int_equal(parse_line(summary_line, &p, &s), 2);
	sb_backup_summary_free(&s);
	assert_null(s.snapshot_id);

	assert_int_equal(parse_line(error_line, &p, &s), 0);
	assert_int_equal(parse_line("{\"message_type\":\"verbose_status\",\"action\":\"new\"}", &p, &s), 0);
	assert_null(s.snapshot_id);
}

static void test_backup_garbage(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"",
		"{",
		"not json",
		"Fatal: wrong password or no key found",
		"[]",
		"42",
		"\"status\"",
		"null",
		"{}",
		"{\"message_type\":5}",
		"{\"message_type\":null}",
		"{\"message_type\":\"status\",\"percent_done\":\"half\"}",
		"{\"message_type\":\"status\",\"bytes_done\":-5}",
		"{\"message_type\":\"status\",\"bytes_done\":1.5e300}",
		"{\"message_type\":\"status\",\"total_files\":[1]}",
		"{\"message_type\":\"status\",\"seconds_remaining\":{}}",
		"{\"message_type\":\"summary\"}",
		"{\"message_type\":\"summary\",\"snapshot_id\":\"\"}",
		"{\"message_type\":\"summary\",\"snapshot_id\":12345678}",
		"{\"message_type\":\"summary\",\"snapshot_id\":\"ab\",\"files_new\":\"3\"}",
		"{\"message_type\":\"summary\",\"snapshot_id\":\"ab\",\"data_added\":true}",
		"{\"message_type\":\"status\"} trailing",
		"{\"message_type\":\"status\"}{\"message_type\":\"status\"}",
		"{\"message_type\":\"summary\",\"files_new\":30,\"files_changed\":0,\"snapshot_id\":\"ce46",
	};
	for (size_t i = 0; i < SB_ARRAY_SIZE(bad); i++) {
		struct sb_backup_progress p = {.percent = 55};
		struct sb_backup_summary s = {0};
		int rc = parse_line(bad[i], &p, &s);
		if (rc != -1)
			fail_msg("line %zu (%s) parsed as %d", i, bad[i], rc);
		assert_null(s.snapshot_id);
		/* Nothing half-filled on failure. */
		assert_true(p.percent == 55);
	}

	/* The real summary cut at every length: never a crash, never a summary. */
	size_t n = strlen(summary_line);
	for (size_t cut = 0; cut < n; cut++) {
		struct sb_backup_progress p;
		struct sb_backup_summary s = {0};
		assert_int_equal(sb_restic_parse_backup_line(summary_line, cut, &p, &s), -1);
		assert_null(s.snapshot_id);
	}

	/* A NUL inside the line. */
	char with_nul[sizeof(status_first)];
	memcpy(with_nul, status_first, sizeof(status_first));
	with_nul[10] = '\0';
	struct sb_backup_progress p;
	struct sb_backup_summary s = {0};
	assert_int_equal(sb_restic_parse_backup_line(with_nul, sizeof(status_first) - 1, &p, &s), -1);

	/* Deep nesting stops at json-c's depth limit. */
	struct sb_buf deep = {0};
	sb_buf_puts(&deep, "{\"message_type\":\"status\",\"x\":");
	for (int i = 0; i < 10000; i++)
		sb_buf_puts(&deep, "[");
	assert_int_equal(sb_restic_parse_backup_line(deep.data, deep.len, &p, &s), -1);
	sb_buf_free(&deep);
}

static void test_backup_huge_numbers(void **state)
{
	(void)state;
	struct sb_backup_progress p;
	struct sb_backup_summary s = {0};
	assert_int_equal(parse_line("{\"message_type\":\"status\",\"bytes_done\":18446744073709551615,"
				    "\"total_bytes\":9223372036854775807}",
				    &p, &s),
			 1);
	assert_true(p.bytes_done == UINT64_MAX);
	assert_true(p.bytes_total == (uint64_t)INT64_MAX);
	/* Integral doubles are what some restic versions print for sizes. */
	assert_int_equal(parse_line("{\"message_type\":\"status\",\"bytes_done\":1.0e10}", &p, &s), 1);
	assert_true(p.bytes_done == 10000000000ULL);
	/* Beyond uint64: refused rather than wrapped. */
	int rc = parse_line("{\"message_type\":\"status\",\"bytes_done\":1e20}", &p, &s);
	assert_int_equal(rc, -1);
}

static void test_snapshots_real(void **state)
{
	(void)state;
	struct sb_snapshot_list l;
	assert_int_equal(sb_restic_parse_snapshots(snapshots_json, strlen(snapshots_json), &l), 0);
	assert_int_equal(l.n, 3);
	/* Sorted by time: the migrated 2024 snapshot first, whatever restic's order. */
	assert_string_equal(l.v[0].short_id, "267ff9c5");
	assert_int_equal(l.v[0].time_utc, 1710086400); /* 2024-03-10T12:00:00-04:00 = 16:00Z */
	assert_string_equal(l.v[0].time, "2024-03-10T12:00:00-04:00");
	assert_string_equal(l.v[0].stack, "web");
	assert_string_equal(l.v[0].hostname, "old-host");
	assert_int_equal(l.v[0].tags.n, 1);

	assert_string_equal(l.v[1].id, "d079f312c4fdc14dd1e027c75466c3fdbbfe3efec120a48e959c17e160449a33");
	assert_string_equal(l.v[1].short_id, "d079f312");
	assert_int_equal(l.v[1].time_utc, 1795840001);
	assert_string_equal(l.v[1].stack, "web");
	assert_string_equal(l.v[1].tree, "08dac5fe36c38ed75eeae1160da17fd5aea298dff065a71da1fb7c0de28f8b4d");
	assert_int_equal(l.v[1].paths.n, 1);
	assert_string_equal(l.v[1].paths.v[0], "/tmp/adp/src");
	assert_int_equal(l.v[1].tags.n, 2);

	assert_string_equal(l.v[2].stack, "db");
	assert_int_equal(l.v[2].time_utc, 1795840008);
	sb_snapshot_list_free(&l);

	assert_int_equal(sb_restic_parse_snapshots("[]\n", 3, &l), 0);
	assert_int_equal(l.n, 0);
	sb_snapshot_list_free(&l);
}

static void test_snapshot_times(void **state)
{
	(void)state;
	static const struct {
		const char *time;
		time_t want;
	} ok[] = {
		{"1970-01-01T00:00:00Z", 0},
		{"2024-03-10T12:00:00-04:00", 1710086400},
		{"2024-03-10T21:30:00.999999999+05:30", 1710086400},
		{"2024-03-10t16:00:00.5z", 1710086400},
		{"2024-03-10T16:00:00.123456789123Z", 1710086400},
		{"2024-02-29T00:00:00Z", 1709164800},
	};
	for (size_t i = 0; i < SB_ARRAY_SIZE(ok); i++) {
		char *json = xasprintf("[{\"id\":\"abcdef0123\",\"time\":\"%s\"}]", ok[i].time);
		struct sb_snapshot_list l;
		if (sb_restic_parse_snapshots(json, strlen(json), &l) != 0)
			fail_msg("time %s refused", ok[i].time);
		assert_int_equal(l.v[0].time_utc, ok[i].want);
		/* Without short_id, the first 8 characters of the id; without tags, no stack. */
		assert_string_equal(l.v[0].short_id, "abcdef01");
		assert_null(l.v[0].stack);
		sb_snapshot_list_free(&l);
		free(json);
	}
	static const char *const bad[] = {
		"", "2024-03-10", "2024-03-10T12:00:00", "2024-13-10T12:00:00Z", "2024-03-10T25:00:00Z",
		"2024-03-10T12:00:00+2:00", "2024-03-10T12:00:00.Z", "2024-03-10T12:00:00Zjunk", "garbage",
		"２024-03-10T12:00:00Z", "2024-03-10T12:00:00+24:00",
	};
	for (size_t i = 0; i < SB_ARRAY_SIZE(bad); i++) {
		char *json = xasprintf("[{\"id\":\"abcdef0123\",\"time\":\"%s\"}]", bad[i]);
		struct sb_snapshot_list l;
		if (sb_restic_parse_snapshots(json, strlen(json), &l) != -1)
			fail_msg("time '%s' accepted", bad[i]);
		assert_int_equal(l.n, 0);
		free(json);
	}
}

static void test_snapshots_garbage(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"",
		"{}",
		"[",
		"[{}]",
		"[1]",
		"[null]",
		"[{\"id\":\"x\"}]",
		"[{\"time\":\"2024-03-10T12:00:00Z\"}]",
		"[{\"id\":5,\"time\":\"2024-03-10T12:00:00Z\"}]",
		"[{\"id\":\"x\",\"time\":\"2024-03-10T12:00:00Z\",\"tags\":\"web\"}]",
		"[{\"id\":\"x\",\"time\":\"2024-03-10T12:00:00Z\",\"tags\":[\"web\",3]}]",
		"[{\"id\":\"x\",\"time\":\"2024-03-10T12:00:00Z\",\"paths\":{}}]",
		"[{\"id\":\"x\",\"time\":\"2024-03-10T12:00:00Z\",\"hostname\":[]}]",
		"[{\"id\":\"x\",\"time\":\"2024-03-10T12:00:00Z\"},{\"id\":\"y\"}]",
		"[{\"id\":\"x\",\"time\":\"2024-03-10T12:00:00Z\"}] []",
		"Fatal: wrong password or no key found",
	};
	for (size_t i = 0; i < SB_ARRAY_SIZE(bad); i++) {
		struct sb_snapshot_list l;
		if (sb_restic_parse_snapshots(bad[i], strlen(bad[i]), &l) != -1)
			fail_msg("snapshot list %zu accepted: %s", i, bad[i]);
		assert_int_equal(l.n, 0);
		assert_null(l.v);
	}
	/* The real list cut at every length. */
	size_t n = strlen(snapshots_json);
	for (size_t cut = 0; cut + 1 < n; cut++) {
		struct sb_snapshot_list l;
		assert_int_equal(sb_restic_parse_snapshots(snapshots_json, cut, &l), -1);
	}
	/* A NUL in the middle. */
	char *copy = xstrdup(snapshots_json);
	copy[100] = '\0';
	struct sb_snapshot_list l;
	assert_int_equal(sb_restic_parse_snapshots(copy, n, &l), -1);
	free(copy);

	/* Only "stackback" as a tag: no stack. */
	const char *only = "[{\"id\":\"x\",\"time\":\"2024-03-10T12:00:00Z\",\"tags\":[\"stackback\"],\"hostname\":null}]";
	assert_int_equal(sb_restic_parse_snapshots(only, strlen(only), &l), 0);
	assert_null(l.v[0].stack);
	assert_null(l.v[0].hostname);
	sb_snapshot_list_free(&l);
}

static void test_explain(void **state)
{
	(void)state;
	/* stderr of restic 0.14.0 in each situation. */
	char *s = sb_restic_explain(1, "Fatal: wrong password or no key found");
	assert_string_equal(s, "restic exited 1: wrong password or no key found");
	free(s);

	s = sb_restic_explain(1, "Fatal: unable to open config file: stat /tmp/adp/nope/config: no such file or directory\n"
				 "Is there a repository at the following location?\n"
				 "/tmp/adp/nope");
	assert_string_equal(s, "restic exited 1: repository does not exist at /tmp/adp/nope (run 'stackback init')");
	free(s);

	s = sb_restic_explain(1, "unable to create lock in backend: repository is already locked by PID 23739 on vm by "
				 "root (UID 0, GID 0)\n"
				 "lock was created at 2026-11-28 04:27:08 (2.088228335s ago)\n"
				 "storage ID 1bea1ca3\n"
				 "the `unlock` command can be used to remove stale locks");
	assert_string_equal(s, "restic exited 1: repository is locked by another process (run 'restic unlock' if no "
			       "backup is running)");
	free(s);

	s = sb_restic_explain(3, "Warning: at least one source file could not be read");
	assert_string_equal(s, "restic exited 3: some files could not be read");
	free(s);

	s = sb_restic_explain(1, "Fatal: Save(<data/1234>) returned error, retrying after 552.330144ms: "
				 "write /repo/data/12/1234: no space left on device");
	assert_string_equal(s, "restic exited 1: disk full (no space left on device)");
	free(s);
	/* With the disk full, restic's first failure is its lock file: the cause is the disk, not a lock. */
	s = sb_restic_explain(1, "create exclusive lock for repository\n"
				 "write /repo/locks/ab04f8bd-tmp-1021177056: no space left on device\n"
				 "github.com/restic/restic/internal/backend/local.(*Local).Save\n"
				 "unable to create lock in backend");
	assert_string_equal(s, "restic exited 1: disk full (no space left on device)");
	free(s);
	s = sb_restic_explain(1, "open /repo/locks/ab04f8bd-tmp-1: permission denied\n"
				 "unable to create lock in backend");
	assert_string_equal(s, "restic exited 1: cannot write a lock file in the repository: permission denied");
	free(s);

	s = sb_restic_explain(1, "Fatal: create repository at /tmp/r failed: Fatal: config file already exists");
	assert_string_equal(s, "restic exited 1: a repository already exists there");
	free(s);

	/* Otherwise the last Fatal line, else the last line. */
	s = sb_restic_explain(1, "some noise\nFatal: repository contains errors\n\n");
	assert_string_equal(s, "restic exited 1: repository contains errors");
	free(s);
	s = sb_restic_explain(2, "  \nsomething odd happened  \n");
	assert_string_equal(s, "restic exited 2: something odd happened");
	free(s);
	/* restic clears the terminal line even into a pipe: no escape codes in messages. */
	s = sb_restic_explain(1, "\x1b[2Ksomething \x1b[1mbroke\x1b[0m\r\n\x1b[2K\n");
	assert_string_equal(s, "restic exited 1: something broke");
	free(s);
	s = sb_restic_explain(1, NULL);
	assert_string_equal(s, "restic exited 1: no error message");
	free(s);
	s = sb_restic_explain(1, "");
	assert_string_equal(s, "restic exited 1: no error message");
	free(s);
}

static void test_forget_refuses_without_policy(void **state)
{
	(void)state;
	/* Refused before restic runs: the repository does not even exist. */
	struct sb_restic r = {.repository = (char *)"/nonexistent/repo", .password = (char *)"x"};
	struct sb_config cfg = {0};
	char *err = NULL;
	assert_int_equal(sb_restic_forget(&r, &cfg, "web", false, &err), -1);
	assert_non_null(strstr(err, "refusing to forget every snapshot"));
	assert_non_null(strstr(err, "'web'"));
	free(err);
	err = NULL;
	cfg.keep_daily = 7;
	assert_int_equal(sb_restic_forget(&r, &cfg, "", false, &err), -1);
	free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backup_status),
		cmocka_unit_test(test_backup_summary_and_others),
		cmocka_unit_test(test_backup_garbage),
		cmocka_unit_test(test_backup_huge_numbers),
		cmocka_unit_test(test_snapshots_real),
		cmocka_unit_test(test_snapshot_times),
		cmocka_unit_test(test_snapshots_garbage),
		cmocka_unit_test(test_explain),
		cmocka_unit_test(test_forget_refuses_without_policy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
