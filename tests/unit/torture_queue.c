/*
 * The daemon's job queue with the real engine: backups with nothing to
 * back up fail at once without running any tool, which is all the queue
 * needs to be exercised (bounds, order, read-back, eviction to
 * STATE_DIR, shutdown).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "stackback/log.h"
#include "stackback/queue.h"
#include "stackback/state.h"
#include "stackback/util.h"

struct fixture {
	char dir[64];
	struct sb_config cfg;
	atomic_int events[SB_QUEUE_TRIGGER + 1];
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	strcpy(f->dir, "/tmp/sbqueueXXXXXX");
	assert_non_null(mkdtemp(f->dir));
	sb_config_defaults(&f->cfg);
	free(f->cfg.state_dir);
	free(f->cfg.stacks_dir);
	free(f->cfg.dirlist);
	free(f->cfg.restic_repository);
	f->cfg.state_dir = xasprintf("%s/state", f->dir);
	f->cfg.stacks_dir = xasprintf("%s/stacks", f->dir);
	f->cfg.dirlist = xasprintf("%s/dirlist", f->dir);
	f->cfg.restic_repository = xasprintf("%s/no-repo", f->dir);
	assert_int_equal(sb_mkdir_p(f->cfg.stacks_dir, 0700), 0);
	char *err = NULL;
	assert_int_equal(sb_state_prepare(&f->cfg, &err), 0);
	sb_log_set_stderr(false);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	sb_rm_rf(f->dir);
	sb_config_free(&f->cfg);
	free(f);
	return 0;
}

static void on_change(void *userdata, enum sb_queue_event ev, int job_id)
{
	struct fixture *f = userdata;
	atomic_fetch_add(&f->events[ev], 1);
}

static struct sb_job_request backup_of(const char *name)
{
	struct sb_job_request r = {.kind = SB_JOB_BACKUP};
	sb_strv_push(&r.stacks, name);
	return r;
}

static char *job_file(struct sb_queue *q, int id, enum sb_job_file which)
{
	char *out = NULL;
	assert_int_equal(sb_queue_job_read(q, id, which, &out), 0);
	return out;
}

/* Waits until job id is final; returns its state line. */
static char *wait_final(struct sb_queue *q, int id)
{
	for (int i = 0; i < 1000; i++) {
		char *s = job_file(q, id, SB_JOB_FILE_STATE);
		if (strcmp(s, "ok\n") == 0 || strcmp(s, "failed\n") == 0 || strcmp(s, "cancelled\n") == 0)
			return s;
		free(s);
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	fail_msg("job %d never finished", id);
	return NULL;
}

static void test_bounded_while_the_lock_is_taken(void **state)
{
	struct fixture *f = *state;
	/* An in-process run holds the job lock: the queue fills and waits. */
	struct sb_lock lock;
	char *err = NULL;
	assert_int_equal(sb_lock_acquire(&f->cfg, false, &lock, &err), 0);
	struct sb_queue *q = sb_queue_new(&f->cfg, on_change, f);
	assert_int_equal(sb_queue_start(q, false, &err), 0);
	for (int i = 1; i <= SB_QUEUE_MAX; i++) {
		struct sb_job_request r = backup_of("web");
		int id = 0;
		assert_int_equal(sb_queue_submit(q, &r, &id, &err), 0);
		assert_int_equal(id, i);
		assert_int_equal(r.stacks.n, 0); /* taken over */
	}
	struct sb_job_request r = backup_of("web");
	int id = 0;
	assert_int_equal(sb_queue_submit(q, &r, &id, &err), -EBUSY);
	assert_non_null(strstr(err, "job queue is full (16 jobs waiting)"));
	free(err);
	err = NULL;
	assert_int_equal(r.stacks.n, 1); /* still the caller's */
	sb_job_request_free(&r);
	assert_int_equal(sb_state_last_job_id(&f->cfg), SB_QUEUE_MAX);
	assert_int_equal(atomic_load(&f->events[SB_QUEUE_JOB_QUEUED]), SB_QUEUE_MAX);

	struct sb_status_snapshot snap;
	sb_queue_status(q, &snap);
	assert_true(snap.running);   /* someone holds the lock */
	assert_false(snap.has_job);  /* but it is not ours */
	assert_int_equal(snap.queued, SB_QUEUE_MAX);
	char *s = job_file(q, 1, SB_JOB_FILE_STATE);
	assert_string_equal(s, "queued\n");
	free(s);

	/* A waiting job cancelled leaves the queue at once; the others keep their order. */
	assert_int_equal(sb_queue_cancel(q, 3, &err), 0);
	assert_null(err);
	s = job_file(q, 3, SB_JOB_FILE_STATE);
	assert_string_equal(s, "cancelled\n");
	free(s);
	sb_queue_status(q, &snap);
	assert_int_equal(snap.queued, SB_QUEUE_MAX - 1);
	assert_int_equal(sb_queue_cancel(q, 3, &err), -EALREADY);
	assert_string_equal(err, "job 3 has already ended: cancelled");
	free(err);
	err = NULL;
	assert_int_equal(sb_queue_cancel(q, 999, &err), -ENOENT);
	assert_null(err);

	/* Shutdown drops the waiting jobs as cancelled, even while the lock is held elsewhere. */
	sb_queue_shutdown(q);
	for (int i = 1; i <= SB_QUEUE_MAX; i++) {
		s = job_file(q, i, SB_JOB_FILE_STATE);
		assert_string_equal(s, "cancelled\n");
		free(s);
	}
	r = backup_of("web");
	assert_int_equal(sb_queue_submit(q, &r, &id, &err), -ESHUTDOWN);
	free(err);
	sb_job_request_free(&r);
	sb_queue_shutdown(q);
	sb_queue_free(q);
	sb_lock_release(&lock);
}

static void test_runs_in_order_and_reads_back(void **state)
{
	struct fixture *f = *state;
	char *err = NULL;
	struct sb_queue *q = sb_queue_new(&f->cfg, on_change, f);
	assert_int_equal(sb_queue_start(q, true, &err), 0);
	int ids[3];
	for (int i = 0; i < 3; i++)
		assert_int_equal(sb_queue_trigger(q, SB_JOB_BACKUP, "1\n", 2, NULL, &ids[i], &err), 0);
	char *r = sb_queue_trigger_result(q, SB_JOB_BACKUP);
	char *want = xasprintf("job %d ", ids[2]);
	assert_true(sb_str_has_prefix(r, want));
	free(want);
	free(r);
	double prev_end = 0;
	for (int i = 0; i < 3; i++) {
		char *s = wait_final(q, ids[i]);
		assert_string_equal(s, "failed\n"); /* nothing to back up */
		free(s);
		char *report = job_file(q, ids[i], SB_JOB_FILE_REPORT);
		struct json_object *o = json_tokener_parse(report), *v;
		assert_non_null(o);
		assert_true(json_object_object_get_ex(o, "started_at", &v));
		double start = json_object_get_double(v);
		assert_true(json_object_object_get_ex(o, "finished_at", &v));
		double end = json_object_get_double(v);
		assert_true(prev_end <= start && start <= end);
		prev_end = end;
		json_object_put(o);
		free(report);
		char *log = job_file(q, ids[i], SB_JOB_FILE_LOG);
		assert_non_null(strstr(log, "no stack is enabled"));
		free(log);
		char *progress = job_file(q, ids[i], SB_JOB_FILE_PROGRESS);
		assert_non_null(strstr(progress, "percent: "));
		free(progress);
	}
	r = sb_queue_trigger_result(q, SB_JOB_BACKUP);
	want = xasprintf("job %d failed\n", ids[2]);
	assert_string_equal(r, want);
	free(want);
	free(r);
	/* The worker still holds the job lock while the engine persists the last job: wait for idle. */
	struct sb_status_snapshot snap;
	for (int i = 0; i < 1000; i++) {
		sb_queue_status(q, &snap);
		if (!snap.running)
			break;
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	assert_false(snap.running);
	assert_true(snap.has_last);
	assert_int_equal(snap.last.id, ids[2]);
	assert_int_equal(snap.last.state, SB_JOB_FAILED);
	assert_true(atomic_load(&f->events[SB_QUEUE_JOB_STATE]) >= 6); /* running and final, each */
	assert_int_equal(sb_queue_last_job_id(q), ids[2]);
	assert_true(sb_queue_version(q) > 1);
	sb_queue_shutdown(q);
	sb_queue_free(q);
}

static void test_trigger_refusals(void **state)
{
	struct fixture *f = *state;
	char *err = NULL;
	struct sb_queue *q = sb_queue_new(&f->cfg, on_change, f);
	assert_int_equal(sb_queue_start(q, false, &err), 0);
	struct sb_stack web = {.name = (char *)"web"};
	struct sb_selection known = {.stacks = &web, .n = 1};
	char big[SB_TRIGGER_MAX + 1];
	memset(big, '1', sizeof(big));
	static const struct {
		enum sb_job_kind kind;
		const char *payload;
		size_t len;
		const char *reason;
	} bad[] = {
		{SB_JOB_BACKUP, "banana", 6, "no stack named 'banana'"},
		{SB_JOB_BACKUP, "web banana", 10, "no stack named 'banana'"},
		{SB_JOB_BACKUP, "", 0, "empty"},
		{SB_JOB_BACKUP, " \n\t", 3, "empty"},
		{SB_JOB_BACKUP, "1\0all", 5, "NUL"},
		{SB_JOB_BACKUP, "../../etc", 9, "not a valid stack name"},
		{SB_JOB_SYNC, "web", 3, "not understood"},
		{SB_JOB_CHECK, "dry-run", 7, "not understood"},
		{SB_JOB_RESTORE, "force", 5, "needs '1'"},
	};
	for (size_t i = 0; i < SB_ARRAY_SIZE(bad); i++) {
		int id = -1;
		assert_int_equal(sb_queue_trigger(q, bad[i].kind, bad[i].payload, bad[i].len, &known, &id, &err),
				 -EINVAL);
		assert_non_null(strstr(err, bad[i].reason));
		char *r = sb_queue_trigger_result(q, bad[i].kind);
		char *want = xasprintf("error: %s\n", err);
		assert_string_equal(r, want);
		free(want);
		free(r);
		free(err);
		err = NULL;
	}
	int id;
	assert_int_equal(sb_queue_trigger(q, SB_JOB_BACKUP, big, sizeof(big), &known, &id, &err), -EINVAL);
	assert_non_null(strstr(err, "too long"));
	free(err);
	err = NULL;
	assert_int_equal(sb_state_last_job_id(&f->cfg), 0); /* no id spent on a refusal */
	assert_int_equal(atomic_load(&f->events[SB_QUEUE_TRIGGER]), (int)SB_ARRAY_SIZE(bad) + 1);
	char *r = sb_queue_trigger_result(q, SB_JOB_FORGET);
	assert_string_equal(r, "");
	free(r);
	/* A known name is accepted. */
	assert_int_equal(sb_queue_trigger(q, SB_JOB_BACKUP, "web", 3, &known, &id, &err), 0);
	assert_int_equal(id, 1);
	free(wait_final(q, id));
	sb_queue_shutdown(q);
	sb_queue_free(q);
}

static void test_old_jobs_come_from_state_dir(void **state)
{
	struct fixture *f = *state;
	char *err = NULL;
	struct sb_queue *q = sb_queue_new(&f->cfg, on_change, f);
	assert_int_equal(sb_queue_start(q, false, &err), 0);
	int total = SB_QUEUE_KEEP + 6, last = 0;
	for (int i = 0; i < total; i++) {
		struct sb_job_request r = backup_of("web");
		int id;
		while (sb_queue_submit(q, &r, &id, &err) == -EBUSY) {
			free(err);
			err = NULL;
			struct timespec ts = {0, 20 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
		last = id;
	}
	free(wait_final(q, last));
	int *ids;
	size_t n;
	sb_queue_job_ids(q, &ids, &n);
	assert_int_equal(n, (size_t)total);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(ids[i], (int)i + 1);
	free(ids);
	/* Job 1 left memory long ago: the engine's files answer for it. */
	assert_true(sb_queue_job_exists(q, 1));
	char *s = job_file(q, 1, SB_JOB_FILE_STATE);
	assert_string_equal(s, "failed\n");
	free(s);
	char *report = job_file(q, 1, SB_JOB_FILE_REPORT);
	assert_non_null(strstr(report, "\"id\":1,"));
	free(report);
	char *log = job_file(q, 1, SB_JOB_FILE_LOG);
	assert_non_null(strstr(log, "job 1: backup web started"));
	free(log);
	assert_false(sb_queue_job_exists(q, total + 1));
	char *out = NULL;
	assert_int_equal(sb_queue_job_read(q, total + 1, SB_JOB_FILE_STATE, &out), -ENOENT);
	assert_int_equal(sb_queue_job_read(q, 0, SB_JOB_FILE_STATE, &out), -ENOENT);
	sb_queue_shutdown(q);
	sb_queue_free(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_bounded_while_the_lock_is_taken, setup, teardown),
		cmocka_unit_test_setup_teardown(test_runs_in_order_and_reads_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trigger_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_old_jobs_come_from_state_dir, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
