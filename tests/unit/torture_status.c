/*
 * The status object, its text rendering, last_backup, metrics, and
 * reading jobs back from STATE_DIR, including garbage state files.
 */
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
#include <json-c/json.h>

#include "stackback/state.h"
#include "stackback/status.h"
#include "stackback/util.h"

struct fixture {
	char dir[64];
	struct sb_config cfg;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	strcpy(f->dir, "/tmp/sbstatusXXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->cfg.state_dir = xasprintf("%s/state", f->dir);
	char *err = NULL;
	assert_int_equal(sb_state_prepare(&f->cfg, &err), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	sb_rm_rf(f->dir);
	free(f->cfg.state_dir);
	free(f);
	return 0;
}

static void put_file(struct fixture *f, const char *rel, const char *text)
{
	char *path = xasprintf("%s/%s", f->cfg.state_dir, rel);
	char *dir = xstrdup(path);
	*strrchr(dir, '/') = '\0';
	assert_int_equal(sb_mkdir_p(dir, 0700), 0);
	assert_int_equal(sb_write_file_atomic(path, text, strlen(text), 0600), 0);
	free(dir);
	free(path);
}

static char *status_text(struct fixture *f, const struct sb_status_snapshot *snap)
{
	struct json_object *o = sb_status_json(&f->cfg, snap);
	char *text = sb_status_text(o);
	json_object_put(o);
	return text;
}

static void test_idle(void **state)
{
	struct fixture *f = *state;
	struct sb_status_snapshot snap;
	sb_status_snapshot_load(&f->cfg, &snap);
	assert_false(snap.running);
	assert_false(snap.has_job);
	assert_false(snap.has_last);
	struct json_object *o = sb_status_json(&f->cfg, &snap);
	assert_string_equal(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
			    "{\"state\":\"idle\",\"job\":null,\"queue\":0,\"last\":null,"
			    "\"cloud\":{\"status\":\"idle\",\"last_sync\":null,\"reason\":null,"
			    "\"remote\":null,\"in_sync\":\"not verified: never synced\"}}");
	char *text = sb_status_text(o);
	assert_string_equal(text, "state: idle\njob: none\nqueue: 0\nlast: none\n"
				  "cloud.status: idle\ncloud.last_sync: none\ncloud.reason: none\n"
				  "cloud.remote: none\ncloud.in_sync: not verified: never synced\n");
	free(text);
	json_object_put(o);
}

static void test_running(void **state)
{
	struct fixture *f = *state;
	struct sb_status_snapshot snap = {
		.running = true,
		.has_job = true,
		.job = {.id = 7, .kind = SB_JOB_BACKUP, .state = SB_JOB_RUNNING,
			.progress = {.stack = "web", .phase = "backup", .stack_index = 1, .stack_count = 2,
				     .percent = 42.46, .bytes_done = 10, .bytes_total = 20, .eta_s = -1}},
		.queued = 3,
		.has_last = true,
		.last = {.id = 6, .kind = SB_JOB_SYNC, .state = SB_JOB_FAILED, .finished_at = 86400},
	};
	char *text = status_text(f, &snap);
	assert_non_null(strstr(text, "state: running\njob.id: 7\njob.kind: backup\njob.state: running\n"
				     "job.progress.stack: web\njob.progress.phase: backup\n"));
	assert_non_null(strstr(text, "job.progress.percent: 42.5\n"));
	assert_non_null(strstr(text, "job.progress.eta_s: none\n"));
	assert_non_null(strstr(text, "queue: 3\nlast.id: 6\nlast.kind: sync\nlast.state: failed\n"
				     "last.finished: 1970-01-02T00:00:00Z\n"));
	free(text);
}

static void test_cloud_file(void **state)
{
	struct fixture *f = *state;
	struct sb_status_snapshot snap = {0};
	put_file(f, "cloud.json", "{\"status\":\"ok\",\"last_sync\":{\"result\":\"ok\",\"bytes\":5}}");
	char *text = status_text(f, &snap);
	assert_non_null(strstr(text, "cloud.status: ok\ncloud.last_sync.result: ok\ncloud.last_sync.bytes: 5\n"));
	free(text);
	/* Garbage never breaks status: it reads as never synced. */
	static const char *const garbage[] = {"[1,2]", "{\"status\":5,\"last_sync\":\"x\"}", "{{{", "", "null"};
	for (size_t i = 0; i < SB_ARRAY_SIZE(garbage); i++) {
		put_file(f, "cloud.json", garbage[i]);
		text = status_text(f, &snap);
		assert_non_null(strstr(text, "cloud.status: idle\ncloud.last_sync: none\n"));
		free(text);
	}
}

static void test_last_backup(void **state)
{
	struct fixture *f = *state;
	char *text = sb_status_last_backup_text(&f->cfg, "web");
	assert_string_equal(text, "never\n");
	free(text);
	put_file(f, "stacks/web.json",
		 "{\"stack\":\"web\",\"result\":\"ok\",\"snapshot_id\":\"abcdef12\",\"started_at\":100,"
		 "\"duration_s\":3.5,\"downtime_s\":1.5,\"bytes_added\":2048,\"files_new\":2,\"job\":4,"
		 "\"error\":null}");
	text = sb_status_last_backup_text(&f->cfg, "web");
	assert_string_equal(text, "time: 1970-01-01T00:01:43Z\nresult: ok\nsnapshot_id: abcdef12\n"
				  "duration_s: 3.5\ndowntime_s: 1.5\nbytes_added: 2048\nfiles_new: 2\njob: 4\n");
	free(text);
	/* Snapshot mode: how the stack was kept consistent, and restic's time apart from the downtime. */
	put_file(f, "stacks/web.json",
		 "{\"result\":\"ok\",\"snapshot_id\":\"abcdef12\",\"started_at\":100,\"duration_s\":30,"
		 "\"downtime_s\":1.25,\"backup_s\":27.5,\"mode\":\"reflink\"}");
	text = sb_status_last_backup_text(&f->cfg, "web");
	assert_string_equal(text, "time: 1970-01-01T00:02:10Z\nresult: ok\nsnapshot_id: abcdef12\nmode: reflink\n"
				  "duration_s: 30.0\ndowntime_s: 1.2\nbackup_s: 27.5\n");
	free(text);
	put_file(f, "stacks/db.json", "{\"result\":\"failed\",\"error\":\"backup of stack 'db' failed: x\"}");
	text = sb_status_last_backup_text(&f->cfg, "db");
	assert_string_equal(text, "time: unknown\nresult: failed\nsnapshot_id: none\n"
				  "error: backup of stack 'db' failed: x\n");
	free(text);
	static const char *const garbage[] = {"[]", "{\"result\":7,\"duration_s\":\"x\"}", "nope", "\"str\""};
	for (size_t i = 0; i < SB_ARRAY_SIZE(garbage); i++) {
		put_file(f, "stacks/g.json", garbage[i]);
		text = sb_status_last_backup_text(&f->cfg, "g");
		assert_true(strcmp(text, "never\n") == 0 || strstr(text, "result: unknown\n"));
		free(text);
	}
	/* A hostile name never becomes a path. */
	put_file(f, "secret.json", "{\"result\":\"ok\"}");
	text = sb_status_last_backup_text(&f->cfg, "../secret");
	assert_string_equal(text, "never\n");
	free(text);
}

static void test_persisted_jobs(void **state)
{
	struct fixture *f = *state;
	static const char *const names[] = {"10", "2", "1", "01", "abc", "-3", "0", "99999999999", "3x"};
	for (size_t i = 0; i < SB_ARRAY_SIZE(names); i++) {
		char *rel = xasprintf("jobs/%s/state", names[i]);
		put_file(f, rel, "ok\n");
		free(rel);
	}
	int *ids;
	size_t n;
	sb_status_persisted_jobs(&f->cfg, &ids, &n);
	assert_int_equal(n, 3);
	assert_int_equal(ids[0], 1);
	assert_int_equal(ids[1], 2);
	assert_int_equal(ids[2], 10);
	free(ids);
}

static const char report_fmt[] =
	"{\"id\":%d,\"kind\":\"backup\",\"request\":\"1\",\"dry_run\":false,\"state\":\"%s\","
	"\"queued_at\":1,\"started_at\":2,\"finished_at\":%d,\"error\":null,\"summary\":null,"
	"\"stacks\":[{\"stack\":\"web\",\"result\":\"ok\"}]}";

static void put_report(struct fixture *f, int id, const char *state, int finished)
{
	char *rel = xasprintf("jobs/%d/report.json", id);
	char *text = xasprintf(report_fmt, id, state, finished);
	put_file(f, rel, text);
	free(text);
	free(rel);
}

static void test_load_jobs(void **state)
{
	struct fixture *f = *state;
	put_report(f, 3, "ok", 100);
	put_file(f, "jobs/3/log", "line one\nline two\n");
	put_report(f, 4, "failed", 200);
	/* The newest is garbage, or claims another id: both are skipped. */
	put_file(f, "jobs/5/report.json", "{\"id\":5,\"kind\":\"teleport\",\"state\":\"ok\"}");
	char *other = xasprintf(report_fmt, 4, "ok", 300);
	put_file(f, "jobs/6/report.json", other);
	free(other);

	struct sb_job *job = sb_status_load_job(&f->cfg, 3);
	assert_non_null(job);
	assert_int_equal(job->state, SB_JOB_OK);
	assert_string_equal(job->log.data, "line one\nline two\n");
	assert_int_equal(job->n_reports, 1);
	sb_job_free(job);
	assert_null(sb_status_load_job(&f->cfg, 5));
	assert_null(sb_status_load_job(&f->cfg, 6));
	assert_null(sb_status_load_job(&f->cfg, 99));
	assert_null(sb_status_load_job(&f->cfg, 0));

	struct sb_status_snapshot snap;
	sb_status_snapshot_load(&f->cfg, &snap);
	assert_true(snap.has_last);
	assert_int_equal(snap.last.id, 4);
	assert_int_equal(snap.last.state, SB_JOB_FAILED);
	assert_true(snap.last.finished_at == 200);
	assert_false(snap.running);

	/* A live holder of the job lock is a running job, whose details STATE_DIR does not have. */
	struct sb_lock lock;
	char *err = NULL;
	assert_int_equal(sb_lock_acquire(&f->cfg, false, &lock, &err), 0);
	sb_status_snapshot_load(&f->cfg, &snap);
	assert_true(snap.running);
	assert_false(snap.has_job);
	sb_lock_release(&lock);
}

static void test_metrics(void **state)
{
	struct fixture *f = *state;
	struct sb_stack stacks[] = {
		{.name = (char *)"web", .enabled = true},
		{.name = (char *)"db", .enabled = false},
		{.name = (char *)"we\"ird\\\n", .enabled = true},
	};
	struct sb_selection sel = {.stacks = stacks, .n = SB_ARRAY_SIZE(stacks)};
	put_file(f, "stacks/web.json", "{\"result\":\"ok\",\"started_at\":100,\"duration_s\":5,\"downtime_s\":2,"
				       "\"bytes_added\":4096}");
	put_file(f, "stacks/db.json", "{\"result\":\"failed\",\"started_at\":\"garbage\"}");
	struct sb_status_snapshot snap = {.running = true, .queued = 2, .has_last = true,
					  .last = {.id = 9, .kind = SB_JOB_CHECK, .state = SB_JOB_OK, .finished_at = 50}};
	char *m = sb_metrics_text(&f->cfg, &sel, &snap);
	assert_non_null(strstr(m, "# TYPE stackback_stack_enabled gauge\n"));
	assert_non_null(strstr(m, "stackback_stack_enabled{stack=\"web\"} 1\n"));
	assert_non_null(strstr(m, "stackback_stack_enabled{stack=\"db\"} 0\n"));
	assert_non_null(strstr(m, "stackback_stack_enabled{stack=\"we\\\"ird\\\\\\n\"} 1\n"));
	assert_non_null(strstr(m, "stackback_stack_last_backup_timestamp_seconds{stack=\"web\"} 105\n"));
	assert_null(strstr(m, "stackback_stack_last_backup_timestamp_seconds{stack=\"db\"}"));
	assert_non_null(strstr(m, "stackback_stack_last_backup_success{stack=\"web\"} 1\n"));
	assert_non_null(strstr(m, "stackback_stack_last_backup_success{stack=\"db\"} 0\n"));
	assert_non_null(strstr(m, "stackback_stack_last_backup_downtime_seconds{stack=\"web\"} 2\n"));
	assert_non_null(strstr(m, "stackback_stack_last_backup_bytes_added{stack=\"web\"} 4096\n"));
	assert_non_null(strstr(m, "stackback_job_running 1\nstackback_jobs_queued 2\n") ||
			strstr(m, "stackback_jobs_queued 2\n"));
	assert_non_null(strstr(m, "stackback_last_job_success{kind=\"check\"} 1\n"));
	/* Every line is a comment or a sample. */
	char *copy = xstrdup(m), *save = NULL;
	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		assert_true(line[0] == '#' || strncmp(line, "stackback_", 10) == 0);
	free(copy);
	free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_idle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_running, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cloud_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_last_backup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_persisted_jobs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_jobs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
