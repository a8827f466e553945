#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "stackback/config.h"
#include "stackback/state.h"
#include "stackback/util.h"

struct fixture {
	char dir[64];
	struct sb_config cfg;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	strcpy(f->dir, "/tmp/sbstateXXXXXX");
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

static void test_prepare_modes(void **state)
{
	struct fixture *f = *state;
	struct stat st;
	assert_int_equal(stat(f->cfg.state_dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	char *jobs = xasprintf("%s/jobs", f->cfg.state_dir);
	assert_int_equal(stat(jobs, &st), 0);
	free(jobs);
}

static void test_lock_refuses_live_holder(void **state)
{
	struct fixture *f = *state;
	int ready[2], go[2];
	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(go), 0);
	pid_t child = fork();
	if (child == 0) {
		struct sb_lock l;
		char *err = NULL;
		if (sb_lock_acquire(&f->cfg, false, &l, &err) < 0)
			_exit(1);
		char c = 'x';
		if (write(ready[1], &c, 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(2);
		_exit(0);
	}
	char c;
	assert_int_equal(read(ready[0], &c, 1), 1);

	struct sb_lock lock;
	char *err = NULL;
	assert_int_equal(sb_lock_acquire(&f->cfg, false, &lock, &err), -1);
	char *pid = xasprintf("pid %ld", (long)child);
	assert_non_null(strstr(err, pid));
	assert_int_equal(sb_lock_holder(&f->cfg), child);
	free(pid);
	free(err);

	/* The holder dies without releasing: the lock is free at once. */
	kill(child, SIGKILL);
	int status;
	waitpid(child, &status, 0);
	assert_int_equal(sb_lock_holder(&f->cfg), 0);
	err = NULL;
	assert_int_equal(sb_lock_acquire(&f->cfg, false, &lock, &err), 0);
	/* Our own flock conflicts with the probe's shared lock on another fd. */
	assert_int_equal(sb_lock_holder(&f->cfg), getpid());
	sb_lock_release(&lock);
	close(ready[0]);
	close(ready[1]);
	close(go[0]);
	close(go[1]);
}

static void test_job_ids_unique_across_processes(void **state)
{
	struct fixture *f = *state;
	enum { PROCS = 6, EACH = 20 };
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	for (int p = 0; p < PROCS; p++) {
		if (fork() == 0) {
			for (int i = 0; i < EACH; i++) {
				char *err = NULL;
				int id = sb_state_next_job_id(&f->cfg, &err);
				if (write(fds[1], &id, sizeof(id)) != sizeof(id))
					_exit(1);
			}
			_exit(0);
		}
	}
	close(fds[1]);
	bool seen[PROCS * EACH + 1] = {0};
	int id, count = 0;
	while (read(fds[0], &id, sizeof(id)) == sizeof(id)) {
		assert_in_range(id, 1, PROCS * EACH);
		assert_false(seen[id]);
		seen[id] = true;
		count++;
	}
	close(fds[0]);
	while (wait(NULL) > 0)
		;
	assert_int_equal(count, PROCS * EACH);
	assert_int_equal(sb_state_last_job_id(&f->cfg), PROCS * EACH);
}

static void test_journal(void **state)
{
	struct fixture *f = *state;
	struct sb_journal_entry *e;
	size_t n;
	assert_int_equal(sb_journal_read(&f->cfg, &e, &n), 0);
	assert_int_equal(n, 0);
	free(e);
	assert_int_equal(sb_journal_add(&f->cfg, "web", "/opt/stacks/web", false), 0);
	assert_int_equal(sb_journal_add(&f->cfg, "db", "/opt/stacks/my db", true), 0);
	assert_int_equal(sb_journal_add(&f->cfg, "web", "/opt/stacks/web", false), 0);
	assert_int_equal(sb_journal_read(&f->cfg, &e, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(e[0].name, "web");
	assert_false(e[0].was_down);
	assert_string_equal(e[1].path, "/opt/stacks/my db");
	assert_true(e[1].was_down);
	sb_journal_entries_free(e, n);
	assert_int_equal(sb_journal_remove(&f->cfg, "web"), 0);
	assert_int_equal(sb_journal_read(&f->cfg, &e, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(e[0].name, "db");
	sb_journal_entries_free(e, n);

	/* Garbage in the journal is skipped, not fatal. */
	char *path = xasprintf("%s/journal", f->cfg.state_dir);
	const char garbage[] = "no tabs here\nstop\tok\t/p\n\x01\x02\n";
	assert_int_equal(sb_write_file_atomic(path, garbage, sizeof(garbage) - 1, 0600), 0);
	assert_int_equal(sb_journal_read(&f->cfg, &e, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(e[0].name, "ok");
	sb_journal_entries_free(e, n);
	free(path);
}

static void test_staging_journal(void **state)
{
	struct fixture *f = *state;
	struct sb_staging_entry *e;
	size_t n;
	assert_int_equal(sb_staging_read(&f->cfg, &e, &n), 0);
	assert_int_equal(n, 0);
	free(e);
	assert_int_equal(sb_staging_add(&f->cfg, "web", "/srv/.stackback-staging/web"), 0);
	assert_int_equal(sb_staging_add(&f->cfg, "db", "/srv/my staging\twith a tab/db"), 0);
	assert_int_equal(sb_staging_add(&f->cfg, "web", "/srv/.stackback-staging/web"), 0);
	assert_int_equal(sb_staging_read(&f->cfg, &e, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(e[0].name, "web");
	assert_string_equal(e[1].path, "/srv/my staging\twith a tab/db");
	sb_staging_entries_free(e, n);
	assert_int_equal(sb_staging_remove(&f->cfg, "/srv/.stackback-staging/web"), 0);
	assert_int_equal(sb_staging_remove(&f->cfg, "/never/listed"), 0);
	assert_int_equal(sb_staging_read(&f->cfg, &e, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(e[0].name, "db");
	sb_staging_entries_free(e, n);

	/* Garbage is skipped: no tab, no name, a relative path, control bytes. */
	char *path = xasprintf("%s/staging", f->cfg.state_dir);
	const char garbage[] = "no tabs\n\t/no/name\nweb\trelative/path\n\x01\x02\nok\t/p\n\n";
	assert_int_equal(sb_write_file_atomic(path, garbage, sizeof(garbage) - 1, 0600), 0);
	assert_int_equal(sb_staging_read(&f->cfg, &e, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(e[0].name, "ok");
	assert_string_equal(e[0].path, "/p");
	sb_staging_entries_free(e, n);
	free(path);
}

/* recover removes what the staging journal lists, even with no stack to restart. */
static void test_recover_removes_staging_copies(void **state)
{
	struct fixture *f = *state;
	char *copy = xasprintf("%s/.stackback-staging/web", f->dir);
	char *inner = xasprintf("%s/data", copy);
	assert_int_equal(sb_mkdir_p(inner, 0700), 0);
	assert_int_equal(chmod(inner, 0500), 0);
	/* A copy that cannot be removed (its parent is a file) stays listed. */
	char *file = xasprintf("%s/file", f->dir);
	assert_int_equal(sb_write_file_atomic(file, "x", 1, 0600), 0);
	char *stuck = xasprintf("%s/db", file);
	assert_int_equal(sb_staging_add(&f->cfg, "web", copy), 0);
	assert_int_equal(sb_staging_add(&f->cfg, "db", stuck), 0);

	int restarted = -1, failed = -1;
	assert_int_equal(sb_recover(&f->cfg, &restarted, &failed), 0);
	assert_int_equal(restarted, 0);
	assert_int_equal(failed, 0);
	struct stat st;
	assert_int_equal(lstat(copy, &st), -1);
	/* The default staging directory went with its last copy. */
	char *staging = xasprintf("%s/.stackback-staging", f->dir);
	assert_int_equal(lstat(staging, &st), -1);
	struct sb_staging_entry *e;
	size_t n;
	assert_int_equal(sb_staging_read(&f->cfg, &e, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(e[0].path, stuck);
	sb_staging_entries_free(e, n);
	free(staging);
	free(stuck);
	free(file);
	free(inner);
	free(copy);
}

static void test_json_state(void **state)
{
	struct fixture *f = *state;
	assert_null(sb_state_read_json(&f->cfg, "stacks/none.json"));
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "result", json_object_new_string("ok"));
	assert_int_equal(sb_state_write_json(&f->cfg, "stacks/web.json", o), 0);
	json_object_put(o);
	o = sb_state_read_json(&f->cfg, "stacks/web.json");
	assert_non_null(o);
	struct json_object *v;
	assert_true(json_object_object_get_ex(o, "result", &v));
	assert_string_equal(json_object_get_string(v), "ok");
	json_object_put(o);
	char *path = xasprintf("%s/stacks/bad.json", f->cfg.state_dir);
	assert_int_equal(sb_write_file_atomic(path, "{not json", 9, 0600), 0);
	assert_null(sb_state_read_json(&f->cfg, "stacks/bad.json"));
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_prepare_modes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock_refuses_live_holder, setup, teardown),
		cmocka_unit_test_setup_teardown(test_job_ids_unique_across_processes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_journal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_staging_journal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_removes_staging_copies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_json_state, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
