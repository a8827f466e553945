#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "stackback/job.h"
#include "stackback/util.h"

static int parse(enum sb_job_kind kind, const char *payload, struct sb_job_request *req, char **err)
{
	*err = NULL;
	return sb_job_request_parse(kind, payload, strlen(payload), req, err);
}

static void test_backup_payloads(void **state)
{
	(void)state;
	struct sb_job_request req;
	char *err;
	assert_int_equal(parse(SB_JOB_BACKUP, "1\n", &req, &err), 0);
	assert_int_equal(req.stacks.n, 0);
	assert_false(req.dry_run);
	sb_job_request_free(&req);

	assert_int_equal(parse(SB_JOB_BACKUP, "all dry-run", &req, &err), 0);
	assert_true(req.dry_run);
	sb_job_request_free(&req);

	assert_int_equal(parse(SB_JOB_BACKUP, "  web\tdb web\n", &req, &err), 0);
	assert_int_equal(req.stacks.n, 2);
	assert_string_equal(req.stacks.v[0], "web");
	assert_string_equal(req.stacks.v[1], "db");
	char *words = sb_job_request_describe(&req);
	assert_string_equal(words, "web db");
	free(words);
	sb_job_request_free(&req);
}

static void test_bad_payloads(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"", "\n", "banana!", "../etc", "1 web", ".hidden", "-rf",
		"stackback", "web/../x", "we b\x01",
	};
	for (size_t i = 0; i < SB_ARRAY_SIZE(bad); i++) {
		struct sb_job_request req = {.kind = SB_JOB_SYNC};
		char *err;
		assert_int_equal(parse(SB_JOB_BACKUP, bad[i], &req, &err), -1);
		assert_non_null(err);
		/* req untouched on failure */
		assert_int_equal(req.kind, SB_JOB_SYNC);
		free(err);
	}
	struct sb_job_request req;
	char *err = NULL;
	assert_int_equal(sb_job_request_parse(SB_JOB_BACKUP, "1\0x", 3, &req, &err), -1);
	assert_non_null(strstr(err, "NUL"));
	free(err);

	char *big = xmalloc(1 << 20);
	memset(big, 'a', (1 << 20) - 1);
	big[(1 << 20) - 1] = '\0';
	assert_int_equal(parse(SB_JOB_BACKUP, big, &req, &err), -1);
	assert_non_null(strstr(err, "too long"));
	free(err);
	free(big);
}

static void test_other_kinds(void **state)
{
	(void)state;
	struct sb_job_request req;
	char *err;
	assert_int_equal(parse(SB_JOB_SYNC, "1 dry-run", &req, &err), 0);
	assert_true(req.dry_run);
	sb_job_request_free(&req);
	assert_int_equal(parse(SB_JOB_SYNC, "dry-run", &req, &err), 0);
	assert_true(req.dry_run);
	sb_job_request_free(&req);
	assert_int_equal(parse(SB_JOB_BACKUP, "dry-run", &req, &err), 0);
	assert_true(req.dry_run);
	assert_int_equal(req.stacks.n, 0);
	sb_job_request_free(&req);
	assert_int_equal(parse(SB_JOB_RESTORE, "force", &req, &err), -1);
	free(err);
	assert_int_equal(parse(SB_JOB_SYNC, "web", &req, &err), -1);
	free(err);
	assert_int_equal(parse(SB_JOB_RESTORE, "1 force", &req, &err), 0);
	assert_true(req.force);
	sb_job_request_free(&req);
	assert_int_equal(parse(SB_JOB_CHECK, "read-data", &req, &err), -1);
	free(err);
	assert_int_equal(parse(SB_JOB_CHECK, "1 read-data", &req, &err), 0);
	assert_true(req.read_data);
	sb_job_request_free(&req);
	assert_int_equal(parse(SB_JOB_CHECK, "1 dry-run", &req, &err), -1);
	free(err);
	assert_int_equal(parse(SB_JOB_RESTORE_STACK, "web latest", &req, &err), 0);
	assert_string_equal(req.stacks.v[0], "web");
	assert_string_equal(req.snapshot, "latest");
	sb_job_request_free(&req);
	assert_int_equal(parse(SB_JOB_RESTORE_STACK, "web", &req, &err), -1);
	free(err);
	static const char *const refs[] = {"web cloud:latest", "web 1a2b3c4d", "web 2026-11-28T04:59:32_85cca7b0",
					   "web cloud:2026-11-28T04:59:32_85cca7b0 dry-run"};
	for (size_t i = 0; i < SB_ARRAY_SIZE(refs); i++) {
		assert_int_equal(parse(SB_JOB_RESTORE_STACK, refs[i], &req, &err), 0);
		sb_job_request_free(&req);
	}
	static const char *const bad_refs[] = {"web ../../x", "web abc", "web LATEST", "web cloud:",
					       "web 2026-11-28_85cca7b0", "web 2026-11-28T04:59:32_",
					       "web latest/../x"};
	for (size_t i = 0; i < SB_ARRAY_SIZE(bad_refs); i++) {
		assert_int_equal(parse(SB_JOB_RESTORE_STACK, bad_refs[i], &req, &err), -1);
		assert_non_null(strstr(err, "snapshot reference"));
		free(err);
	}
}

static void test_names(void **state)
{
	(void)state;
	enum sb_job_kind k;
	assert_int_equal(sb_job_kind_parse("restore-stack", &k), 0);
	assert_int_equal(k, SB_JOB_RESTORE_STACK);
	assert_int_equal(sb_job_kind_parse("nope", &k), -1);
	enum sb_job_state s;
	assert_int_equal(sb_job_state_parse("cancelled", &s), 0);
	assert_true(sb_job_state_final(s));
	assert_string_equal(sb_job_state_name(SB_JOB_QUEUED), "queued");
}

static void test_progress_and_report(void **state)
{
	(void)state;
	struct sb_job_request req = {.kind = SB_JOB_BACKUP};
	sb_strv_push(&req.stacks, "web");
	struct sb_job *job = sb_job_new(7, &req);
	assert_int_equal(req.stacks.n, 0);
	char *text = sb_job_progress_text(job);
	assert_non_null(strstr(text, "phase: \n"));
	assert_non_null(strstr(text, "eta_s: -1\n"));
	free(text);
	char *json = sb_job_report_json(job);
	struct json_object *o = json_tokener_parse(json);
	assert_non_null(o);
	struct json_object *v;
	assert_true(json_object_object_get_ex(o, "id", &v));
	assert_int_equal(json_object_get_int(v), 7);
	assert_true(json_object_object_get_ex(o, "state", &v));
	assert_string_equal(json_object_get_string(v), "queued");
	json_object_put(o);
	free(json);
	char *report = sb_job_report_text(job);
	assert_non_null(strstr(report, "job 7 backup: queued"));
	free(report);
	sb_job_free(job);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backup_payloads),
		cmocka_unit_test(test_bad_payloads),
		cmocka_unit_test(test_other_kinds),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_progress_and_report),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
