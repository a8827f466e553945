/* The cloud state reader, its renderers and the restore target rule (core/cloud.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "stackback/cloud.h"
#include "stackback/util.h"

struct fixture {
	char dir[64];
	struct sb_config cfg;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/sbcloudXXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	f->cfg.state_dir = xasprintf("%s/state", f->dir);
	f->cfg.restic_repository = xasprintf("%s/repo", f->dir);
	f->cfg.stacks_dir = xasprintf("%s/stacks", f->dir);
	f->cfg.mountpoint = xasprintf("%s/mnt", f->dir);
	f->cfg.restore_dir = xasprintf("%s/state/restored", f->dir);
	f->cfg.rclone_remote = xstrdup("dav");
	f->cfg.rclone_path = xstrdup("backups/repo");
	for (const char *sub = "state\0repo\0repo/snapshots\0repo/index\0repo/keys\0stacks\0"; *sub;
	     sub += strlen(sub) + 1) {
		cleanup_free char *p = xasprintf("%s/%s", f->dir, sub);
		if (mkdir(p, 0700) < 0)
			return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	sb_rm_rf(f->dir);
	free(f->cfg.state_dir);
	free(f->cfg.restic_repository);
	free(f->cfg.stacks_dir);
	free(f->cfg.mountpoint);
	free(f->cfg.restore_dir);
	free(f->cfg.rclone_remote);
	free(f->cfg.rclone_path);
	free(f);
	return 0;
}

static void write_state(struct fixture *f, const char *text)
{
	cleanup_free char *path = xasprintf("%s/cloud.json", f->cfg.state_dir);
	assert_int_equal(sb_write_file_atomic(path, text, strlen(text), 0600), 0);
}

/* Renders every cloud/ file of the current state into one string. */
static char *render_all(struct fixture *f)
{
	struct sb_cloud_state st;
	sb_cloud_state_read(&f->cfg, &st);
	char *parts[] = {
		sb_cloud_render_status(&st),      sb_cloud_render_remote(&st),
		sb_cloud_render_last_sync(&st),   sb_cloud_render_in_sync(&st),
		sb_cloud_render_progress(&st),    sb_cloud_render_last_restore(&st),
	};
	struct sb_buf b = {0};
	for (size_t i = 0; i < SB_ARRAY_SIZE(parts); i++) {
		sb_buf_printf(&b, "[%zu]%s", i, parts[i]);
		free(parts[i]);
	}
	sb_cloud_state_free(&st);
	return sb_buf_steal(&b);
}

static void test_missing_state_is_idle(void **state)
{
	struct fixture *f = *state;
	cleanup_free char *all = render_all(f);
	assert_string_equal(all, "[0]idle\n[1]dav:backups/repo\n[2]never\n"
				 "[3]not verified: never synced\n[4]phase: idle\n[5]never\n");
}

static void test_unconfigured_remote(void **state)
{
	struct fixture *f = *state;
	free(f->cfg.rclone_remote);
	f->cfg.rclone_remote = NULL;
	struct sb_cloud_state st;
	sb_cloud_state_read(&f->cfg, &st);
	cleanup_free char *remote = sb_cloud_render_remote(&st);
	assert_string_equal(remote, "not configured\n");
	sb_cloud_state_free(&st);
}

static void test_garbage_state_never_crashes(void **state)
{
	struct fixture *f = *state;
	static const char *const garbage[] = {
		"",
		"not json at all {",
		"[1,2,3]",
		"42",
		"null",
		"{\"status\":17,\"last_sync\":[],\"in_sync\":\"verified\",\"progress\":{}}",
		"{\"status\":\"bogus\",\"last_sync\":{\"time\":\"x\",\"bytes\":-5,\"result\":true}}",
		"{\"status\":\"syncing\",\"pid\":\"1\",\"progress\":{\"percent\":\"a\",\"phase\":7}}",
		"{\"last_restore\":{\"snapshots\":{\"web\":\"3\",\"db\":2,\"x\":null}}}",
		"{\"in_sync\":{\"state\":\"verified\",\"repo_stamp\":12}}",
		"{\"status\":\"failed\"}",
	};
	for (size_t i = 0; i < SB_ARRAY_SIZE(garbage); i++) {
		write_state(f, garbage[i]);
		cleanup_free char *all = render_all(f);
		assert_non_null(strstr(all, "[5]"));
	}
	write_state(f, "{\"last_restore\":{\"result\":\"ok\",\"snapshots\":{\"web\":\"3\",\"db\":2}}}");
	cleanup_free char *all = render_all(f);
	assert_non_null(strstr(all, "snapshots: 2 (db 2)\n"));
	write_state(f, "{\"status\":\"failed\"}");
	struct sb_cloud_state st;
	sb_cloud_state_read(&f->cfg, &st);
	cleanup_free char *status = sb_cloud_render_status(&st);
	assert_string_equal(status, "failed: no reason recorded\n");
	sb_cloud_state_free(&st);
}

static void test_full_state(void **state)
{
	struct fixture *f = *state;
	cleanup_free char *stamp = sb_cloud_repo_stamp(f->cfg.restic_repository);
	assert_true(strlen(stamp) > 0);
	cleanup_free char *doc = xasprintf(
		"{\"status\":\"ok\",\"remote\":\"dav:backups/repo\","
		"\"last_sync\":{\"time\":1714532412.5,\"result\":\"ok\",\"bytes\":1048576,\"files\":12,"
		"\"duration\":3.25,\"remote\":\"dav:backups/repo\"},"
		"\"in_sync\":{\"state\":\"verified\",\"by_hash\":false,\"differences\":0,"
		"\"missing_remote\":0,\"missing_local\":0,\"matched\":12,\"time\":1714532415,"
		"\"repo_stamp\":\"%s\"},"
		"\"last_restore\":{\"time\":1714532000,\"result\":\"ok\",\"target\":\"/r\",\"duration\":2,"
		"\"bytes\":10,\"snapshots\":{\"db\":1,\"web\":3}}}",
		stamp);
	write_state(f, doc);
	cleanup_free char *all = render_all(f);
	assert_string_equal(all, "[0]ok\n[1]dav:backups/repo\n"
				 "[2]time: 2024-05-01T03:00:12Z\nresult: ok\nbytes: 1048576\nfiles: 12\n"
				 "duration_s: 3.2\nremote: dav:backups/repo\n"
				 "[3]verified: 12 files match by size, checked 2024-05-01T03:00:15Z\n"
				 "[4]phase: idle\n"
				 "[5]time: 2024-05-01T02:53:20Z\nresult: ok\ntarget: /r\nbytes: 10\n"
				 "duration_s: 2.0\nsnapshots: 4 (db 1, web 3)\n");

	cleanup_free char *repo = sb_cloud_restored_repository(&f->cfg);
	assert_null(repo); /* /r holds no repository */

	/* A backup adds a snapshot file: the verification no longer holds. */
	cleanup_free char *snap = xasprintf("%s/snapshots/abc", f->cfg.restic_repository);
	usleep(20000);
	assert_int_equal(sb_write_file_atomic(snap, "x", 1, 0600), 0);
	struct sb_cloud_state st;
	sb_cloud_state_read(&f->cfg, &st);
	assert_int_equal(st.in_sync.state, SB_IN_SYNC_NOT_VERIFIED);
	assert_true(st.in_sync.repo_changed);
	cleanup_free char *in_sync = sb_cloud_render_in_sync(&st);
	assert_string_equal(in_sync, "not verified: the local repository changed after the check of "
				     "2024-05-01T03:00:15Z\n");
	sb_cloud_state_free(&st);
}

static void test_differs_and_failed(void **state)
{
	struct fixture *f = *state;
	write_state(f, "{\"status\":\"failed\",\"reason\":\"sync to 'dav:x' failed: boom\","
		       "\"last_sync\":{\"time\":0,\"result\":\"failed\",\"error\":\"sync to 'dav:x' failed: boom\"},"
		       "\"in_sync\":{\"state\":\"differs\",\"by_hash\":true,\"differences\":2,"
		       "\"missing_remote\":1,\"missing_local\":0,\"time\":0}}");
	cleanup_free char *all = render_all(f);
	assert_string_equal(all, "[0]failed: sync to 'dav:x' failed: boom\n[1]dav:backups/repo\n"
				 "[2]time: 1970-01-01T00:00:00Z\nresult: failed\nbytes: 0\nfiles: 0\n"
				 "duration_s: 0.0\nerror: sync to 'dav:x' failed: boom\n"
				 "[3]differs: 2 differ, 1 missing on the remote, 0 missing locally (by hash)\n"
				 "[4]phase: idle\n[5]never\n");
}

static void test_syncing_with_progress(void **state)
{
	struct fixture *f = *state;
	cleanup_free char *doc = xasprintf(
		"{\"status\":\"syncing\",\"step\":\"uploading\",\"pid\":%d,"
		"\"progress\":{\"phase\":\"upload\",\"percent\":42.4,\"bytes_done\":1073741824,"
		"\"bytes_total\":2147483648,\"files_done\":3,\"files_total\":9,\"eta_s\":70,\"speed\":1000}}",
		(int)getpid());
	write_state(f, doc);
	cleanup_free char *all = render_all(f);
	assert_string_equal(all, "[0]syncing: uploading, 42%, 1.0 GiB of 2.0 GiB, eta 1m10s\n"
				 "[1]dav:backups/repo\n[2]never\n[3]not verified: a sync is running\n"
				 "[4]phase: upload\npercent: 42.4\nbytes_done: 1073741824\n"
				 "bytes_total: 2147483648\nfiles_done: 3\nfiles_total: 9\neta_s: 70\n"
				 "speed: 1000\n[5]never\n");
}

static void test_dead_job_reads_as_failed(void **state)
{
	struct fixture *f = *state;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(0);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	cleanup_free char *doc = xasprintf(
		"{\"status\":\"restoring\",\"step\":\"downloading\",\"pid\":%d,"
		"\"progress\":{\"phase\":\"download\",\"percent\":5}}",
		(int)pid);
	write_state(f, doc);
	struct sb_cloud_state st;
	sb_cloud_state_read(&f->cfg, &st);
	assert_int_equal(st.status, SB_CLOUD_FAILED);
	assert_false(st.transferring);
	cleanup_free char *status = sb_cloud_render_status(&st);
	cleanup_free char *want = xasprintf("failed: restore interrupted: the process running it (pid %d) ended\n",
					    (int)pid);
	assert_string_equal(status, want);
	sb_cloud_state_free(&st);
}

static void test_restored_repository(void **state)
{
	struct fixture *f = *state;
	cleanup_free char *copy = xasprintf("%s/state/restored", f->dir);
	cleanup_free char *config = xasprintf("%s/config", copy);
	assert_int_equal(sb_mkdir_p(copy, 0700), 0);
	assert_int_equal(sb_write_file_atomic(config, "x", 1, 0600), 0);
	cleanup_free char *doc = xasprintf("{\"last_restore\":{\"result\":\"ok\",\"target\":\"%s\"}}", copy);
	write_state(f, doc);
	cleanup_free char *repo = sb_cloud_restored_repository(&f->cfg);
	assert_non_null(repo);
	assert_string_equal(repo, copy);
	cleanup_free char *failed = xasprintf("{\"last_restore\":{\"result\":\"failed\",\"target\":\"%s\"}}", copy);
	write_state(f, failed);
	cleanup_free char *none = sb_cloud_restored_repository(&f->cfg);
	assert_null(none);
}

/* Expects a refusal whose message contains want. */
static void refused(struct fixture *f, const char *target, bool force, const char *want)
{
	char *resolved = NULL, *err = NULL;
	assert_int_equal(sb_cloud_restore_target(&f->cfg, target, force, &resolved, &err), -1);
	assert_null(resolved);
	assert_non_null(err);
	if (!strstr(err, want))
		fail_msg("'%s' not in '%s'", want, err);
	free(err);
}

static char *allowed(struct fixture *f, const char *target, bool force)
{
	char *resolved = NULL, *err = NULL;
	if (sb_cloud_restore_target(&f->cfg, target, force, &resolved, &err) < 0)
		fail_msg("target '%s' refused: %s", target, err);
	return resolved;
}

static void test_restore_target_guards_repository(void **state)
{
	struct fixture *f = *state;
	const char *repo = f->cfg.restic_repository;
	cleanup_free char *inside = xasprintf("%s/data/new", repo);
	cleanup_free char *link = xasprintf("%s/link", f->dir);
	cleanup_free char *via_link = xasprintf("%s/link/x", f->dir);
	cleanup_free char *dotdot = xasprintf("%s/stacks/../repo", f->dir);
	assert_int_equal(symlink(repo, link), 0);

	refused(f, repo, true, "is the local repository");
	refused(f, inside, true, "is inside the local repository");
	refused(f, f->dir, true, "contains the local repository");
	refused(f, link, true, "is the local repository");
	refused(f, via_link, true, "is inside the local repository");
	refused(f, dotdot, true, "is the local repository");
	refused(f, "/", true, "contains the local repository");
	refused(f, f->cfg.stacks_dir, true, "the stacks directory");
	refused(f, f->cfg.state_dir, true, "is the state directory");
	cleanup_free char *mnt_inside = xasprintf("%s/mnt/cloud", f->dir);
	refused(f, mnt_inside, false, "is inside the mount point");

	/* Also when the repository itself is reached through a symlink in the config. */
	free(f->cfg.restic_repository);
	f->cfg.restic_repository = xstrdup(link);
	cleanup_free char *real_repo = xasprintf("%s/repo", f->dir);
	refused(f, real_repo, true, "is the local repository");
}

static void test_restore_target_contents(void **state)
{
	struct fixture *f = *state;
	/* The default, inside STATE_DIR, does not exist yet. */
	cleanup_free char *def = allowed(f, NULL, false);
	cleanup_free char *want_def = xasprintf("%s/state/restored", f->dir);
	assert_string_equal(def, want_def);

	cleanup_free char *deep = xasprintf("%s/new/a/b", f->dir);
	cleanup_free char *got_deep = allowed(f, deep, false);
	assert_string_equal(got_deep, deep);
	cleanup_free char *bad_dots = xasprintf("%s/new/../x", f->dir);
	refused(f, bad_dots, false, "'.' or '..'");

	cleanup_free char *file = xasprintf("%s/file", f->dir);
	assert_int_equal(sb_write_file_atomic(file, "x", 1, 0600), 0);
	refused(f, file, true, "is not a directory");

	cleanup_free char *busy = xasprintf("%s/busy", f->dir);
	cleanup_free char *busy_config = xasprintf("%s/busy/config", f->dir);
	cleanup_free char *busy_data = xasprintf("%s/busy/data", f->dir);
	assert_int_equal(mkdir(busy, 0700), 0);
	cleanup_free char *empty = allowed(f, busy, false);
	assert_int_equal(sb_write_file_atomic(busy_config, "x", 1, 0600), 0);
	assert_int_equal(mkdir(busy_data, 0700), 0);
	refused(f, busy, false, "is not empty (use --force");
	cleanup_free char *forced = allowed(f, busy, true);
	assert_string_equal(forced, busy);

	cleanup_free char *foreign = xasprintf("%s/busy/notes.txt", f->dir);
	assert_int_equal(sb_write_file_atomic(foreign, "x", 1, 0600), 0);
	refused(f, busy, true, "holds 'notes.txt', which is not part of a restic repository");

	/* Relative targets are taken from the working directory. */
	cleanup_free char *cwd = getcwd(NULL, 0);
	assert_int_equal(chdir(f->dir), 0);
	cleanup_free char *rel = allowed(f, "fresh", false);
	assert_int_equal(chdir(cwd), 0);
	cleanup_free char *want_rel = xasprintf("%s/fresh", f->dir);
	assert_string_equal(rel, want_rel);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_missing_state_is_idle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unconfigured_remote, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_state_never_crashes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_differs_and_failed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_syncing_with_progress, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dead_job_reads_as_failed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restored_repository, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restore_target_guards_repository, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restore_target_contents, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
