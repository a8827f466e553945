/*
 * Notifications: the ping URLs, and NOTIFY_COMMAND run for real through
 * the runner with a command that records its environment. The pings
 * themselves go to a real HTTP server in tests/integration/test-notify.sh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "stackback/config.h"
#include "stackback/log.h"
#include "stackback/notify.h"
#include "stackback/util.h"

static void test_ping_url(void **state)
{
	(void)state;
	static const struct {
		const char *base, *suffix, *want;
	} cases[] = {
		{"https://hc-ping.com/abc", "/start", "https://hc-ping.com/abc/start"},
		{"https://hc-ping.com/abc/", "/fail", "https://hc-ping.com/abc/fail"},
		{"https://hc-ping.com/abc//", "/fail", "https://hc-ping.com/abc/fail"},
		{"https://hc-ping.com/abc", "", "https://hc-ping.com/abc"},
		{"http://127.0.0.1:8000/ping/x?rid=1", "/start", "http://127.0.0.1:8000/ping/x/start?rid=1"},
		{"http://h/p/?a=b#frag", "/fail", "http://h/p/fail?a=b#frag"},
		{"http://h/p#frag", "/fail", "http://h/p/fail#frag"},
		{"http://h", "/start", "http://h/start"},
		{"http://", "/start", "http:///start"},
		{"", "/start", "/start"},
		{"?", "/fail", "/fail?"},
	};
	for (size_t i = 0; i < SB_ARRAY_SIZE(cases); i++) {
		char *got = sb_notify_ping_url(cases[i].base, cases[i].suffix);
		if (strcmp(got, cases[i].want) != 0)
			fail_msg("'%s' + '%s': want '%s', got '%s'", cases[i].base, cases[i].suffix, cases[i].want, got);
		free(got);
	}
}

static void test_event_names(void **state)
{
	(void)state;
	assert_string_equal(sb_notify_event_name(SB_NOTIFY_START), "start");
	assert_string_equal(sb_notify_event_name(SB_NOTIFY_SUCCESS), "success");
	assert_string_equal(sb_notify_event_name(SB_NOTIFY_FAILURE), "failure");
}

struct fixture {
	char dir[64];
	char *out;
	struct sb_config cfg;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	strcpy(f->dir, "/tmp/sbnotifyXXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->out = xasprintf("%s/env", f->dir);
	sb_config_defaults(&f->cfg);
	f->cfg.hook_timeout = 10;
	/* Words, no shell: the quotes group "env > FILE" into sh's one argument. */
	f->cfg.notify_command = xasprintf("sh -c 'env | grep -e ^STACKBACK_ -e ^RESTIC_PASSWORD= | sort > %s'", f->out);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	sb_rm_rf(f->dir);
	free(f->out);
	sb_config_free(&f->cfg);
	free(f);
	return 0;
}

static char *read_out(struct fixture *f)
{
	char *text = NULL;
	if (sb_read_file(f->out, 1 << 20, &text, NULL) < 0)
		return NULL;
	return text;
}

static void test_refused_command_env(void **state)
{
	struct fixture *f = *state;
	setenv("RESTIC_PASSWORD", "notify-secret-1234", 1);
	sb_log_add_secret("notify-secret-1234");
	sb_notify_refused(&f->cfg, SB_JOB_BACKUP, "job lock held by pid 42 (password notify-secret-1234)");
	unsetenv("RESTIC_PASSWORD");
	char *env = read_out(f);
	assert_non_null(env);
	assert_string_equal(env,
			    "STACKBACK_EVENT=failure\n"
			    "STACKBACK_FAILED=\n"
			    "STACKBACK_JOB=\n"
			    "STACKBACK_STACK=\n"
			    "STACKBACK_STAGE=backup\n"
			    "STACKBACK_SUMMARY=backup could not start: job lock held by pid 42 (password ***)\n");
	free(env);
}

static void test_job_end_env(void **state)
{
	struct fixture *f = *state;
	struct sb_job_request req = {.kind = SB_JOB_BACKUP};
	sb_strv_push(&req.stacks, "web");
	sb_strv_push(&req.stacks, "db");
	struct sb_job *job = sb_job_new(17, &req);
	job->state = SB_JOB_RUNNING;
	sb_notify_job_start(&f->cfg, job);
	char *env = read_out(f);
	assert_non_null(env);
	assert_non_null(strstr(env, "STACKBACK_EVENT=start\n"));
	assert_non_null(strstr(env, "STACKBACK_STACK=web db\n"));
	assert_non_null(strstr(env, "STACKBACK_JOB=17\n"));
	assert_non_null(strstr(env, "STACKBACK_SUMMARY=job 17 backup web db started\n"));
	free(env);

	job->state = SB_JOB_FAILED;
	job->summary = xstrdup("1 of 2 stacks backed up");
	job->error = xstrdup("backup: 1 of 2 stacks failed");
	job->reports = xcalloc(2, sizeof(*job->reports));
	job->n_reports = 2;
	job->reports[0] = (struct sb_stack_report){.name = xstrdup("web"), .result = SB_STACK_OK};
	job->reports[1] = (struct sb_stack_report){
		.name = xstrdup("db"),
		.result = SB_STACK_FAILED,
		.error = xstrdup("backup of stack 'db' failed: restic exited 1: boom\nsecond line"),
	};
	sb_notify_job_end(&f->cfg, job);
	env = read_out(f);
	assert_non_null(env);
	assert_non_null(strstr(env, "STACKBACK_EVENT=failure\n"));
	assert_non_null(strstr(env, "STACKBACK_STACK=web db\n"));
	assert_non_null(strstr(env, "STACKBACK_FAILED=db\n"));
	/* One line: the stack's error joins the summary, its newline does not. */
	assert_non_null(strstr(env, "STACKBACK_SUMMARY=job 17 backup failed: 1 of 2 stacks backed up; backup: 1 of 2 "
				    "stacks failed; backup of stack 'db' failed: restic exited 1: boom"));
	assert_null(strstr(env, "\nsecond line"));
	free(env);

	/* A dry run notifies nothing. */
	unlink(f->out);
	job->req.dry_run = true;
	sb_notify_job_end(&f->cfg, job);
	assert_int_not_equal(access(f->out, F_OK), 0);
	sb_job_free(job);
}

static void test_failing_command_is_harmless(void **state)
{
	struct fixture *f = *state;
	free(f->cfg.notify_command);
	f->cfg.notify_command = xstrdup("false");
	sb_notify_refused(&f->cfg, SB_JOB_SYNC, "x");
	free(f->cfg.notify_command);
	f->cfg.notify_command = xstrdup("no-such-notify-program-xyz");
	sb_notify_refused(&f->cfg, SB_JOB_SYNC, "x");
	free(f->cfg.notify_command);
	f->cfg.notify_command = xstrdup("'unterminated");
	sb_notify_refused(&f->cfg, SB_JOB_SYNC, "x");
	/* A command that outlives HOOK_TIMEOUT is killed. */
	free(f->cfg.notify_command);
	f->cfg.notify_command = xstrdup("sleep 30");
	f->cfg.hook_timeout = 1;
	double t0 = sb_now_monotonic();
	sb_notify_refused(&f->cfg, SB_JOB_SYNC, "x");
	assert_true(sb_now_monotonic() - t0 < 10);
}

static void test_async_refusal(void **state)
{
	struct fixture *f = *state;
	struct sb_config copy;
	sb_config_defaults(&copy);
	copy.notify_command = xstrdup(f->cfg.notify_command);
	copy.hook_timeout = 10;
	sb_notify_refused_async(&copy, SB_JOB_SYNC, "job queue is full");
	/* What the thread needs was copied: the configuration may go at once. */
	sb_config_free(&copy);
	char *env = NULL;
	for (int i = 0; i < 100 && !env; i++) {
		env = read_out(f);
		if (env && !strstr(env, "STACKBACK_SUMMARY")) {
			free(env);
			env = NULL;
		}
		if (!env)
			usleep(100 * 1000);
	}
	assert_non_null(env);
	assert_non_null(strstr(env, "STACKBACK_STAGE=sync\n"));
	assert_non_null(strstr(env, "STACKBACK_SUMMARY=sync could not start: job queue is full\n"));
	free(env);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ping_url),
		cmocka_unit_test(test_event_names),
		cmocka_unit_test_setup_teardown(test_refused_command_env, setup, teardown),
		cmocka_unit_test_setup_teardown(test_job_end_env, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failing_command_is_harmless, setup, teardown),
		cmocka_unit_test_setup_teardown(test_async_refusal, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
