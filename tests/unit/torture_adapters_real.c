/*
 * The docker, restic and rclone adapters against the real programs: a
 * real compose stack on the running Docker engine (from a local busybox
 * image, no registry), a real restic repository and a real rclone
 * `type = local` remote, all in a private temp directory.
 *
 * Registered in the 'docker' suite and not parallel: it needs the engine,
 * and its stack (named sbadp<pid>...) is global to it. A missing tool or
 * engine fails loudly.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <pthread.h>
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

#include "stackback/docker.h"
#include "stackback/rclone.h"
#include "stackback/restic.h"
#include "stackback/runner.h"
#include "stackback/stacks.h"
#include "stackback/util.h"

static char tmpdir[] = "/tmp/sbadpXXXXXX";

/* Runs a shell snippet for test set-up; fails the test if it fails. */
static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *script = xvasprintf(fmt, ap);
	va_end(ap);
	const char *argv[] = {"sh", "-c", script, NULL};
	struct sb_run_opts o = {.argv = argv, .capture_stderr = true, .timeout_s = 300};
	struct sb_run_result res;
	int rc = sb_run(&o, &res);
	if (rc != 0) {
		char *why = sb_run_describe(&res, 300);
		fail_msg("set-up command failed: %s: %s", script, why);
	}
	sb_run_result_free(&res);
	free(script);
}

static char *write_file(const char *dir, const char *name, const char *text)
{
	char *path = xasprintf("%s/%s", dir, name);
	assert_int_equal(sb_write_file_atomic(path, text, strlen(text), 0644), 0);
	return path;
}

/* ---- docker ---- */

static char *stack_dir;    /* tmpdir/<unique project> */
static char *compose_file; /* its docker-compose.yml */

static const char compose_yaml[] =
	"version: \"3\"\n"
	"services:\n"
	"  app:\n"
	"    image: local/busybox:latest\n"
	"    network_mode: none\n"
	"    volumes:\n"
	"      - ./data:/data\n"
	"    command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; while true; do date >> /data/ticks; sleep 1 & wait $$!; done\"]\n"
	"  side:\n"
	"    image: local/busybox:latest\n"
	"    network_mode: none\n"
	"    command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; while true; do sleep 1 & wait $$!; done\"]\n";

static int docker_setup(void **state)
{
	(void)state;
	if (!sb_program_exists("docker") || !sb_program_exists("busybox"))
		fail_msg("docker and busybox are required (run scripts/install-deps.sh)");
	sh("docker info >/dev/null 2>&1 || { echo 'no Docker engine answers (run scripts/dockerd.sh start)' >&2; exit 1; }");
	/* The local image the integration tests also use (tests/integration/lib.sh). */
	sh("docker image inspect local/busybox:latest >/dev/null 2>&1 && exit 0; "
	   "root=%s/busybox-root; mkdir -p $root/bin $root/tmp && cp \"$(command -v busybox)\" $root/bin/busybox && "
	   "for a in sh sleep cat echo ls date mkdir rm touch true false wc head tail seq trap; do ln -sf busybox $root/bin/$a; done && "
	   "tar -C $root -c . | docker import - local/busybox:latest >/dev/null",
	   tmpdir);
	stack_dir = xasprintf("%s/sbadp%ld", tmpdir, (long)getpid());
	char *data = xasprintf("%s/data", stack_dir);
	assert_int_equal(sb_mkdir_p(data, 0755), 0);
	free(data);
	compose_file = write_file(stack_dir, "docker-compose.yml", compose_yaml);
	return 0;
}

/* The detected compose command as shell words, for set-up and clean-up. */
static char *compose_words(void)
{
	struct sb_config cfg = {.docker_timeout = 20};
	struct sb_compose c;
	char *err = NULL;
	if (sb_compose_detect(&cfg, &c, &err) < 0)
		fail_msg("%s", err);
	struct sb_buf b = {0};
	for (size_t i = 0; i < c.argv.n; i++)
		sb_buf_printf(&b, "%s%s", i ? " " : "", c.argv.v[i]);
	sb_compose_free(&c);
	return sb_buf_steal(&b);
}

static int docker_teardown(void **state)
{
	(void)state;
	if (compose_file) {
		char *compose = compose_words();
		sh("%s -f '%s' down -t 1 >/dev/null 2>&1 || true", compose, compose_file);
		free(compose);
	}
	free(stack_dir);
	free(compose_file);
	return 0;
}

static struct sb_config docker_cfg(enum sb_stop_mode mode)
{
	return (struct sb_config){.docker_timeout = 20, .stop_mode = mode};
}

static struct sb_stack the_stack(void)
{
	return (struct sb_stack){
		.name = strrchr(stack_dir, '/') + 1,
		.path = stack_dir,
		.compose_file = compose_file,
	};
}

static void test_compose_detect(void **state)
{
	(void)state;
	struct sb_config cfg = docker_cfg(SB_STOP_MODE_STOP);
	struct sb_compose c;
	char *err = NULL;
	assert_int_equal(sb_compose_detect(&cfg, &c, &err), 0);
	/* Whichever exists: v2 when `docker compose version` works, else v1. */
	const char *v2[] = {"docker", "compose", "version", NULL};
	struct sb_run_opts o = {.argv = v2, .timeout_s = 10};
	struct sb_run_result res;
	bool have_v2 = sb_run(&o, &res) == 0;
	sb_run_result_free(&res);
	if (have_v2) {
		assert_int_equal(c.argv.n, 2);
		assert_string_equal(c.argv.v[0], "docker");
		assert_string_equal(c.argv.v[1], "compose");
	} else {
		assert_int_equal(c.argv.n, 1);
		assert_string_equal(c.argv.v[0], "docker-compose");
	}
	sb_compose_free(&c);

	cfg.compose_cmd = (char *)"  docker   compose\t--ansi never ";
	assert_int_equal(sb_compose_detect(&cfg, &c, &err), 0);
	assert_int_equal(c.argv.n, 4);
	assert_string_equal(c.argv.v[0], "docker");
	assert_string_equal(c.argv.v[1], "compose");
	assert_string_equal(c.argv.v[3], "never");
	sb_compose_free(&c);

	cfg.compose_cmd = (char *)"sb-no-such-compose up";
	assert_int_equal(sb_compose_detect(&cfg, &c, &err), -1);
	assert_non_null(strstr(err, "sb-no-such-compose"));
	free(err);
	err = NULL;

	/* Nothing in PATH: the message says what to install. */
	cfg.compose_cmd = NULL;
	char *old_path = xstrdup(getenv("PATH"));
	setenv("PATH", tmpdir, 1);
	assert_int_equal(sb_compose_detect(&cfg, &c, &err), -1);
	setenv("PATH", old_path, 1);
	free(old_path);
	assert_string_equal(err, "no compose command found (install docker compose v2 or docker-compose)");
	free(err);
}

/* want: what sb_docker_state() says; want_job: sb_docker_state_for_job(). */
static void expect_states(const struct sb_config *cfg, const struct sb_compose *c, const struct sb_stack *st,
			  enum sb_stack_state want, enum sb_stack_state want_job)
{
	char *err = NULL;
	enum sb_stack_state got = sb_docker_state(cfg, c, st, &err);
	if (got != want)
		fail_msg("stack state: expected %s, got %s (%s)", sb_stack_state_name(want),
			 sb_stack_state_name(got), err ? err : "no error");
	assert_null(err);
	got = sb_docker_state_for_job(cfg, c, st, &err);
	if (got != want_job)
		fail_msg("stack state for a job: expected %s, got %s (%s)", sb_stack_state_name(want_job),
			 sb_stack_state_name(got), err ? err : "no error");
	assert_null(err);
}

static void expect_state(const struct sb_config *cfg, const struct sb_compose *c, const struct sb_stack *st,
			 enum sb_stack_state want)
{
	expect_states(cfg, c, st, want, want);
}

static void test_stack_lifecycle(void **state)
{
	(void)state;
	struct sb_config cfg = docker_cfg(SB_STOP_MODE_STOP);
	struct sb_compose c;
	char *err = NULL;
	assert_int_equal(sb_compose_detect(&cfg, &c, &err), 0);
	struct sb_stack st = the_stack();
	char *words = compose_words();

	expect_state(&cfg, &c, &st, SB_STATE_STOPPED);

	/*
	 * One of two services up, the other never created: partial; a job
	 * sees every container the stack has running and does not ask compose.
	 */
	sh("cd '%s' && %s -f docker-compose.yml up -d app >/dev/null 2>&1", stack_dir, words);
	expect_states(&cfg, &c, &st, SB_STATE_PARTIAL, SB_STATE_RUNNING);
	sh("cd '%s' && %s -f docker-compose.yml up -d >/dev/null 2>&1", stack_dir, words);
	expect_state(&cfg, &c, &st, SB_STATE_RUNNING);
	/* One of two containers stopped: partial for both. */
	sh("cd '%s' && %s -f docker-compose.yml stop -t 1 app >/dev/null 2>&1", stack_dir, words);
	expect_state(&cfg, &c, &st, SB_STATE_PARTIAL);
	sh("cd '%s' && %s -f docker-compose.yml up -d >/dev/null 2>&1", stack_dir, words);
	expect_state(&cfg, &c, &st, SB_STATE_RUNNING);

	double t0 = sb_now_monotonic();
	assert_int_equal(sb_docker_stop(&cfg, &c, &st, NULL, &err), 0);
	assert_true(sb_now_monotonic() - t0 < 15);
	expect_state(&cfg, &c, &st, SB_STATE_STOPPED);
	assert_int_equal(sb_docker_start(&cfg, &c, &st, &err), 0);
	expect_state(&cfg, &c, &st, SB_STATE_RUNNING);

	/* STOP_MODE=down removes the containers; up -d recreates them. */
	cfg.stop_mode = SB_STOP_MODE_DOWN;
	assert_int_equal(sb_docker_stop(&cfg, &c, &st, NULL, &err), 0);
	expect_state(&cfg, &c, &st, SB_STATE_STOPPED);
	sh("test -z \"$(docker ps -aq --filter label=com.docker.compose.project=%s)\"", st.name);
	assert_int_equal(sb_docker_start(&cfg, &c, &st, &err), 0);
	expect_state(&cfg, &c, &st, SB_STATE_RUNNING);

	/* `start` with no containers (after down) fails with compose's own reason. */
	cfg.stop_mode = SB_STOP_MODE_DOWN;
	assert_int_equal(sb_docker_stop(&cfg, &c, &st, NULL, &err), 0);
	cfg.stop_mode = SB_STOP_MODE_STOP;
	if (sb_docker_start(&cfg, &c, &st, &err) == 0) {
		/* compose v2 may accept it silently; the state must still say stopped. */
		expect_state(&cfg, &c, &st, SB_STATE_STOPPED);
	} else {
		assert_non_null(strstr(err, " start exited "));
		free(err);
		err = NULL;
	}
	free(words);
	sb_compose_free(&c);
}

static void test_stack_missing_and_broken(void **state)
{
	(void)state;
	struct sb_config cfg = docker_cfg(SB_STOP_MODE_STOP);
	struct sb_compose c;
	char *err = NULL;
	assert_int_equal(sb_compose_detect(&cfg, &c, &err), 0);

	char *gone_dir = xasprintf("%s/sbadpgone%ld", tmpdir, (long)getpid());
	char *gone_file = xasprintf("%s/compose.yaml", gone_dir);
	struct sb_stack gone = {.name = (char *)"gone", .path = gone_dir, .compose_file = gone_file};
	assert_int_equal(sb_docker_state(&cfg, &c, &gone, &err), SB_STATE_MISSING);
	assert_int_equal(sb_docker_stop(&cfg, &c, &gone, NULL, &err), -1);
	assert_non_null(strstr(err, "no compose file"));
	free(err);
	err = NULL;
	gone.compose_file = NULL;
	assert_int_equal(sb_docker_state(&cfg, &c, &gone, &err), SB_STATE_MISSING);

	/* A compose file compose cannot read: unknown, with compose's complaint. */
	char *bad_dir = xasprintf("%s/sbadpbad%ld", tmpdir, (long)getpid());
	assert_int_equal(sb_mkdir_p(bad_dir, 0755), 0);
	char *bad_file = write_file(bad_dir, "compose.yaml", "services: [this is: not valid\n");
	struct sb_stack bad = {.name = (char *)"bad", .path = bad_dir, .compose_file = bad_file};
	assert_int_equal(sb_docker_state(&cfg, &c, &bad, &err), SB_STATE_UNKNOWN);
	assert_non_null(err);
	assert_non_null(strstr(err, " config exited 1"));
	free(err);

	free(gone_dir);
	free(gone_file);
	free(bad_dir);
	free(bad_file);
	sb_compose_free(&c);
}

static void test_engine_ok(void **state)
{
	(void)state;
	struct sb_config cfg = docker_cfg(SB_STOP_MODE_STOP);
	char *err = NULL;
	assert_true(sb_docker_engine_ok(&cfg, &err));
	assert_null(err);

	/* An engine that does not answer: a real refused connection, not a fake. */
	char *old = getenv("DOCKER_HOST") ? xstrdup(getenv("DOCKER_HOST")) : NULL;
	char *sock = xasprintf("unix://%s/no-docker.sock", tmpdir);
	setenv("DOCKER_HOST", sock, 1);
	assert_false(sb_docker_engine_ok(&cfg, &err));
	if (old)
		setenv("DOCKER_HOST", old, 1);
	else
		unsetenv("DOCKER_HOST");
	assert_non_null(strstr(err, "docker engine not reachable"));
	assert_non_null(strstr(err, "Cannot connect"));
	free(err);
	free(sock);
	free(old);
}

/* ---- restic ---- */

static char password[64];

static struct sb_config restic_cfg(void)
{
	return (struct sb_config){.restic_password = password, .backup_timeout = 600, .keep_daily = 1};
}

static char *repo_path(void)
{
	return xasprintf("%s/repo", tmpdir);
}

static char *make_source(void)
{
	char *src = xasprintf("%s/stacks/web", tmpdir);
	char *sub = xasprintf("%s/data/sub", src);
	assert_int_equal(sb_mkdir_p(sub, 0755), 0);
	free(write_file(src, "docker-compose.yml", "services: {}\n"));
	free(write_file(src, "data/a.txt", "alpha\n"));
	free(write_file(src, "data/sub/b.txt", "beta\n"));
	free(write_file(src, "data/sub/c.bin", "gamma\n"));
	free(write_file(src, "data/scratch.tmp", "excluded\n"));
	char *link = xasprintf("%s/data/link", src);
	assert_int_equal(symlink("a.txt", link), 0);
	free(link);
	free(sub);
	return src;
}

/* Reads a /proc file whole (NUL-separated contents kept). */
static char *read_proc(pid_t pid, const char *what, size_t *len)
{
	char *path = xasprintf("/proc/%d/%s", (int)pid, what);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	if (fd < 0)
		return NULL;
	struct sb_buf b = {0};
	char chunk[4096];
	ssize_t n;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		sb_buf_append(&b, chunk, (size_t)n);
	close(fd);
	*len = b.len;
	return sb_buf_steal(&b);
}

/* Our restic child, found through /proc (its parent is this process). */
static pid_t find_restic_child(void)
{
	DIR *d = opendir("/proc");
	assert_non_null(d);
	pid_t found = 0;
	struct dirent *de;
	while (!found && (de = readdir(d))) {
		pid_t pid = atoi(de->d_name);
		if (pid <= 0)
			continue;
		size_t len;
		char *stat = read_proc(pid, "stat", &len);
		if (!stat)
			continue;
		char comm[64];
		int ppid = 0;
		const char *rp = strrchr(stat, ')');
		if (sscanf(stat, "%*d (%63[^)])", comm) == 1 && rp && sscanf(rp + 2, "%*c %d", &ppid) == 1 &&
		    ppid == getpid() && strcmp(comm, "restic") == 0)
			found = pid;
		free(stat);
	}
	closedir(d);
	return found;
}

struct progress_seen {
	int calls;
	bool checked_child;
	double last_percent;
};

/* While restic runs: the password is in its environment and nowhere in its command line. */
static void check_child(struct progress_seen *seen)
{
	if (seen->checked_child)
		return;
	pid_t pid = find_restic_child();
	if (!pid)
		return;
	size_t len;
	char *cmdline = read_proc(pid, "cmdline", &len);
	char *environ_text = read_proc(pid, "environ", &len);
	if (!cmdline || !environ_text)
		fail_msg("cannot read /proc/%d", (int)pid);
	size_t clen = 0;
	for (char *p = cmdline; p < cmdline + len && *p; p += strlen(p) + 1)
		clen = (size_t)(p - cmdline) + strlen(p) + 1;
	assert_null(memmem(cmdline, clen ? clen : 1, password, strlen(password)));
	char *want = xasprintf("RESTIC_PASSWORD=%s", password);
	bool has_pw = false, has_file = false;
	for (char *p = environ_text; p < environ_text + len; p += strlen(p) + 1) {
		if (strcmp(p, want) == 0)
			has_pw = true;
		if (sb_str_has_prefix(p, "RESTIC_PASSWORD_FILE=") || sb_str_has_prefix(p, "RESTIC_REPOSITORY_FILE="))
			has_file = true;
	}
	assert_true(has_pw);
	assert_false(has_file);
	free(want);
	free(cmdline);
	free(environ_text);
	seen->checked_child = true;
}

static void on_progress(void *userdata, const struct sb_backup_progress *p)
{
	struct progress_seen *seen = userdata;
	seen->calls++;
	assert_true(p->percent >= 0 && p->percent <= 100);
	seen->last_percent = p->percent;
	check_child(seen);
}

static void test_restic_repository(void **state)
{
	(void)state;
	struct sb_config cfg = restic_cfg();
	char *repo = repo_path();
	char *err = NULL;
	struct sb_restic r;
	assert_int_equal(sb_restic_open(&r, &cfg, repo, &err), 0);
	assert_string_equal(r.password, password);

	assert_false(sb_restic_repo_exists(&r));
	bool created = false;
	if (sb_restic_init(&r, &created, &err) < 0)
		fail_msg("init: %s", err);
	assert_true(created);
	assert_true(sb_restic_repo_exists(&r));
	assert_int_equal(sb_restic_init(&r, &created, &err), 0);
	assert_false(created);

	/* The user's shell may carry these; they must not reach restic. */
	setenv("RESTIC_PASSWORD_FILE", "/nonexistent/pw", 1);
	setenv("RESTIC_REPOSITORY_FILE", "/nonexistent/repo", 1);

	char *src = make_source();
	const char *tags[] = {"stackback", "web", NULL};
	const char *excludes[] = {"*.tmp", NULL};
	struct progress_seen seen = {0};
	struct sb_restic_backup_opts bo = {
		.path = src,
		.tags = tags,
		.hostname = "sbtest",
		.excludes = excludes,
		.on_progress = on_progress,
		.userdata = &seen,
	};
	struct sb_backup_summary sum;
	if (sb_restic_backup(&r, &bo, &sum, &err) < 0)
		fail_msg("backup: %s", err);
	assert_non_null(sum.snapshot_id);
	assert_int_equal(sum.files_new, 4);
	assert_int_equal(sum.files_changed, 0);
	assert_int_equal(sum.total_files_processed, 4);
	assert_true(sum.data_added > 0);
	assert_true(seen.calls > 0);
	assert_true(seen.checked_child);
	char *first_id = xstrdup(sum.snapshot_id);
	sb_backup_summary_free(&sum);

	/* Unchanged: nothing new, everything unmodified. */
	if (sb_restic_backup(&r, &bo, &sum, &err) < 0)
		fail_msg("second backup: %s", err);
	assert_int_equal(sum.files_new, 0);
	assert_int_equal(sum.files_unmodified, 4);
	sb_backup_summary_free(&sum);

	struct sb_snapshot_list l;
	if (sb_restic_snapshots(&r, "web", &l, &err) < 0)
		fail_msg("snapshots: %s", err);
	assert_int_equal(l.n, 2);
	assert_true(sb_str_has_prefix(l.v[0].id, first_id));
	assert_string_equal(l.v[0].stack, "web");
	assert_true(sb_strv_contains(&l.v[0].tags, "stackback"));
	assert_string_equal(l.v[0].hostname, "sbtest");
	assert_int_equal(l.v[0].paths.n, 1);
	assert_string_equal(l.v[0].paths.v[0], src);
	assert_true(l.v[0].time_utc <= l.v[1].time_utc);
	assert_true(labs((long)(l.v[1].time_utc - time(NULL))) < 300);

	uint64_t files = 0, nodes = 0;
	if (sb_restic_ls_count(&r, l.v[1].id, &files, &nodes, &err) < 0)
		fail_msg("ls: %s", err);
	/* 4 files; the tree holds the path's directories, data/, data/sub/ and the symlink too. */
	assert_int_equal(files, 4);
	assert_true(nodes >= files + 3);

	char *target = xasprintf("%s/restored", tmpdir);
	if (sb_restic_restore(&r, l.v[1].short_id, target, &err) < 0)
		fail_msg("restore: %s", err);
	char *restored = xasprintf("%s%s/data/sub/b.txt", target, src);
	char *text = NULL;
	assert_int_equal(sb_read_file(restored, 100, &text, NULL), 0);
	assert_string_equal(text, "beta\n");
	free(text);
	free(restored);
	free(target);
	sb_snapshot_list_free(&l);

	/* Another tag is another stack: no snapshots of it. */
	assert_int_equal(sb_restic_snapshots(&r, "db", &l, &err), 0);
	assert_int_equal(l.n, 0);
	sb_snapshot_list_free(&l);

	/* keep-daily 1: both snapshots are from today, one stays. */
	if (sb_restic_forget(&r, &cfg, "web", true, &err) < 0)
		fail_msg("forget --dry-run: %s", err);
	assert_int_equal(sb_restic_snapshots(&r, "web", &l, &err), 0);
	assert_int_equal(l.n, 2);
	sb_snapshot_list_free(&l);
	if (sb_restic_forget(&r, &cfg, "web", false, &err) < 0)
		fail_msg("forget: %s", err);
	assert_int_equal(sb_restic_snapshots(&r, NULL, &l, &err), 0);
	assert_int_equal(l.n, 1);
	sb_snapshot_list_free(&l);

	if (sb_restic_check(&r, false, &err) < 0)
		fail_msg("check: %s", err);
	if (sb_restic_check(&r, true, &err) < 0)
		fail_msg("check --read-data: %s", err);

	unsetenv("RESTIC_PASSWORD_FILE");
	unsetenv("RESTIC_REPOSITORY_FILE");
	free(first_id);
	free(src);
	free(repo);
	sb_restic_close(&r);
	assert_null(r.password);
}

static void test_restic_failures(void **state)
{
	(void)state;
	char *repo = repo_path();
	char *err = NULL;
	struct sb_restic r;

	/* Wrong password against the repository the previous test made. */
	char wrong[] = "not-the-password";
	struct sb_config cfg = restic_cfg();
	cfg.restic_password = wrong;
	assert_int_equal(sb_restic_open(&r, &cfg, repo, &err), 0);
	struct sb_snapshot_list l;
	assert_int_equal(sb_restic_snapshots(&r, NULL, &l, &err), -1);
	assert_string_equal(err, "restic exited 1: wrong password or no key found");
	free(err);
	err = NULL;
	sb_restic_close(&r);

	/* No repository there. */
	cfg = restic_cfg();
	char *nowhere = xasprintf("%s/no-repo", tmpdir);
	assert_int_equal(sb_restic_open(&r, &cfg, nowhere, &err), 0);
	assert_false(sb_restic_repo_exists(&r));
	assert_int_equal(sb_restic_check(&r, false, &err), -1);
	char *want = xasprintf("restic exited 1: repository does not exist at %s (run 'stackback init')", nowhere);
	assert_string_equal(err, want);
	free(want);
	free(err);
	err = NULL;

	/* restic not installed. */
	char *old_path = xstrdup(getenv("PATH"));
	setenv("PATH", tmpdir, 1);
	assert_int_equal(sb_restic_check(&r, false, &err), -1);
	setenv("PATH", old_path, 1);
	free(old_path);
	assert_string_equal(err, "restic is not installed (not found in PATH)");
	free(err);
	err = NULL;
	sb_restic_close(&r);
	free(nowhere);

	/* No repository configured, no password. */
	assert_int_equal(sb_restic_open(&r, &cfg, "", &err), -1);
	free(err);
	err = NULL;
	struct sb_config none = {0};
	assert_int_equal(sb_restic_open(&r, &none, repo, &err), -1);
	assert_non_null(err);
	free(err);
	free(repo);
}

struct cancel_on_progress {
	struct progress_seen seen;
	atomic_bool cancel;
	double cancelled_at;
};

/*
 * Cancels the backup mid-file: from the first progress line with bytes
 * done (restic holds its lock by then), once restic's environment was checked.
 */
static void cancel_mid_backup(void *userdata, const struct sb_backup_progress *p)
{
	struct cancel_on_progress *c = userdata;
	on_progress(&c->seen, p);
	if (c->seen.checked_child && p->bytes_done > 0 && !atomic_load(&c->cancel)) {
		c->cancelled_at = sb_now_monotonic();
		atomic_store(&c->cancel, true);
	}
}

/* If no progress line comes within a minute, cancel anyway: the test then fails, it does not hang. */
static void *cancel_by_deadline(void *arg)
{
	atomic_bool *cancel = arg;
	for (int i = 0; i < 600 && !atomic_load(cancel); i++)
		usleep(100000);
	atomic_store(cancel, true);
	return NULL;
}

static void test_restic_cancel_leaves_no_lock(void **state)
{
	(void)state;
	/* A 64 GiB sparse file keeps restic busy long enough to cancel it mid-backup. */
	char *big_dir = xasprintf("%s/stacks/big", tmpdir);
	assert_int_equal(sb_mkdir_p(big_dir, 0755), 0);
	sh("truncate -s 64G '%s/sparse'", big_dir);
	struct sb_config cfg = restic_cfg();
	char *repo = repo_path();
	char *err = NULL;
	struct sb_restic r;
	assert_int_equal(sb_restic_open(&r, &cfg, repo, &err), 0);
	struct cancel_on_progress c = {0};
	r.cancel = &c.cancel;
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, cancel_by_deadline, &c.cancel), 0);
	const char *tags[] = {"stackback", "big", NULL};
	struct sb_restic_backup_opts bo = {
		.path = big_dir, .tags = tags, .on_progress = cancel_mid_backup, .userdata = &c};
	struct sb_backup_summary sum;
	assert_int_equal(sb_restic_backup(&r, &bo, &sum, &err), -1);
	/* Whatever ended the backup, the deadline thread stops now. */
	atomic_store(&c.cancel, true);
	pthread_join(th, NULL);
	assert_string_equal(err, "restic backup cancelled");
	free(err);
	err = NULL;
	/* Cancelled from a progress line, not by the deadline, and it ended long before 64 GiB were read. */
	assert_true(c.seen.checked_child);
	assert_true(c.cancelled_at > 0);
	assert_true(sb_now_monotonic() - c.cancelled_at < 30);
	/* SIGINT, not SIGTERM: restic removed its lock, so an exclusive operation works at once. */
	char *locks = xasprintf("%s/locks", repo);
	DIR *d = opendir(locks);
	assert_non_null(d);
	struct dirent *de;
	int n = 0;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	assert_int_equal(n, 0);
	r.cancel = NULL;
	if (sb_restic_forget(&r, &cfg, "big", false, &err) < 0)
		fail_msg("forget after cancel: %s", err);
	sb_restic_close(&r);
	free(locks);
	free(repo);
	free(big_dir);
}

static int count_locks(const char *repo)
{
	char *locks = xasprintf("%s/locks", repo);
	DIR *d = opendir(locks);
	assert_non_null(d);
	struct dirent *de;
	int n = 0;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	free(locks);
	return n;
}

/*
 * A restic killed with SIGKILL leaves its lock, and restic 0.14 lets no
 * exclusive command past it: the adapter removes stale locks (restic
 * unlock) and retries once; a live holder's lock stays and is reported.
 */
static void test_restic_stale_lock(void **state)
{
	(void)state;
	struct sb_config cfg = restic_cfg();
	char *repo = repo_path();
	char *pwfile = write_file(tmpdir, "lock-password", password);
	chmod(pwfile, 0600);
	/* restic backup --stdin holds its lock while it waits on a FIFO nobody writes to. */
	sh("mkfifo '%s/never' && (RESTIC_PASSWORD_FILE='%s' restic -r '%s' --no-cache backup --stdin "
	   "0<>'%s/never' >/dev/null 2>&1 & echo $! > '%s/holder.pid') && "
	   "for i in $(seq 200); do [ -n \"$(ls '%s/locks')\" ] && exit 0; sleep 0.05; done; exit 1",
	   tmpdir, pwfile, repo, tmpdir, tmpdir, repo);
	char *pidpath = xasprintf("%s/holder.pid", tmpdir);
	char *pidtext = NULL;
	size_t len;
	assert_int_equal(sb_read_file(pidpath, 64, &pidtext, &len), 0);
	pid_t holder = (pid_t)atoi(pidtext);
	assert_true(holder > 0);
	assert_int_equal(count_locks(repo), 1);

	char *err = NULL;
	struct sb_restic r;
	assert_int_equal(sb_restic_open(&r, &cfg, repo, &err), 0);
	/* Alive: its lock is kept and the failure says so. */
	assert_int_equal(sb_restic_check(&r, false, &err), -1);
	assert_non_null(strstr(err, "repository is locked"));
	free(err);
	err = NULL;
	assert_int_equal(count_locks(repo), 1);

	/* Killed: the lock is stale, removed, and the check passes. */
	assert_int_equal(kill(holder, SIGKILL), 0);
	sh("while kill -0 %d 2>/dev/null; do sleep 0.05; done", (int)holder);
	assert_int_equal(count_locks(repo), 1);
	if (sb_restic_check(&r, false, &err) < 0)
		fail_msg("check after a killed restic: %s", err);
	assert_int_equal(count_locks(repo), 0);
	sb_restic_close(&r);
	free(pidtext);
	free(pidpath);
	free(pwfile);
	free(repo);
}

/* ---- rclone ---- */

static char *rclone_conf;
static struct sb_config rclone_cfg_storage;

static struct sb_config *rclone_cfg(void)
{
	if (!rclone_conf) {
		rclone_conf = write_file(tmpdir, "rclone.conf",
					 "[sbadplocal]\ntype = local\n\n"
					 "[sbadpdead]\ntype = webdav\nurl = http://127.0.0.1:1/\nvendor = other\n");
		chmod(rclone_conf, 0600);
	}
	rclone_cfg_storage = (struct sb_config){
		.rclone_remote = (char *)"sbadplocal",
		.rclone_path = NULL,
		.rclone_config = rclone_conf,
		.transfers = 2,
		.retries = 1,
		.remote_timeout = 20,
	};
	return &rclone_cfg_storage;
}

static char *make_sync_source(void)
{
	char *src = xasprintf("%s/sync-src", tmpdir);
	char *sub = xasprintf("%s/data/00", src);
	assert_int_equal(sb_mkdir_p(sub, 0755), 0);
	free(sub);
	free(write_file(src, "config", "repository config\n"));
	free(write_file(src, "data/00/pack1", "0123456789abcdef\n"));
	sh("head -c 3000000 /dev/urandom > '%s/data/00/pack2'", src);
	return src;
}

struct rclone_seen {
	int calls;
	struct sb_rclone_progress last;
};

static void on_rclone_progress(void *userdata, const struct sb_rclone_progress *p)
{
	struct rclone_seen *seen = userdata;
	seen->calls++;
	seen->last = *p;
	assert_true(p->percent >= 0 && p->percent <= 100);
}

static int check_now(struct sb_config *cfg, const char *src, const char *dst, struct sb_rclone_check *chk)
{
	char *err = NULL;
	int rc = sb_rclone_check(cfg, src, dst, NULL, chk, &err);
	if (rc < 0)
		fail_msg("rclone check: %s", err);
	assert_null(err);
	return rc;
}

static void test_rclone_sync_and_check(void **state)
{
	(void)state;
	struct sb_config *cfg = rclone_cfg();
	char *err = NULL;
	if (sb_rclone_reachable(cfg, &err) < 0)
		fail_msg("reachable: %s", err);

	char *src = make_sync_source();
	char *cloud = xasprintf("%s/cloud", tmpdir);
	cfg->rclone_path = cloud;
	char *dst = sb_rclone_remote_spec(cfg);
	assert_true(sb_str_has_prefix(dst, "sbadplocal:/"));

	struct rclone_seen seen = {0};
	struct sb_rclone_result res;
	if (sb_rclone_sync(cfg, src, dst, false, NULL, on_rclone_progress, &seen, &res, &err) < 0)
		fail_msg("sync: %s", err);
	assert_true(seen.calls >= 1);
	assert_int_equal(res.files, 3);
	assert_int_equal(res.bytes, 3000000 + 18 + 17);
	assert_true(seen.last.percent == 100);
	assert_true(res.duration_s > 0);

	struct sb_rclone_check chk;
	assert_int_equal(check_now(cfg, src, dst, &chk), 0);
	assert_true(chk.by_hash);
	assert_int_equal(chk.matched, 3);

	/* Same size, other content: only a hash notices. Then one file gone, one extra. */
	sh("printf X | dd of='%s/data/00/pack1' bs=1 seek=3 conv=notrunc 2>/dev/null", cloud);
	sh("rm '%s/config' && echo stray > '%s/stray'", cloud, cloud);
	assert_int_equal(check_now(cfg, src, dst, &chk), 1);
	assert_true(chk.by_hash);
	assert_int_equal(chk.differences, 1);
	assert_int_equal(chk.missing_on_dst, 1);
	assert_int_equal(chk.missing_on_src, 1);
	assert_int_equal(chk.matched, 1);

	/* A dry run changes nothing. */
	if (sb_rclone_sync(cfg, src, dst, true, NULL, NULL, NULL, &res, &err) < 0)
		fail_msg("dry-run sync: %s", err);
	assert_int_equal(check_now(cfg, src, dst, &chk), 1);

	if (sb_rclone_sync(cfg, src, dst, false, NULL, NULL, NULL, &res, &err) < 0)
		fail_msg("second sync: %s", err);
	assert_int_equal(check_now(cfg, src, dst, &chk), 0);
	sh("test ! -e '%s/stray'", cloud);

	/* Copying back (Stage 3) is the same call the other way round. */
	char *back = xasprintf("%s/sync-back", tmpdir);
	if (sb_rclone_sync(cfg, dst, back, false, NULL, NULL, NULL, &res, &err) < 0)
		fail_msg("sync back: %s", err);
	sh("cmp '%s/data/00/pack2' '%s/data/00/pack2'", src, back);

	free(back);
	free(dst);
	free(cloud);
	free(src);
}

static void test_rclone_size_only_check(void **state)
{
	(void)state;
	/* A real webdav server on loopback (rclone serve): no hash in common, sizes only. */
	struct sb_config *cfg = rclone_cfg();
	char *served = xasprintf("%s/dav", tmpdir);
	assert_int_equal(sb_mkdir_p(served, 0755), 0);
	/* A port someone else holds makes the server exit: then try the next one. */
	pid_t server = 0;
	char *conf = NULL, *dav_conf = NULL, *err = NULL;
	int up = -1;
	for (int attempt = 0; attempt < 5 && up < 0; attempt++) {
		int port = 20000 + (int)((getpid() * 7 + attempt * 7919) % 30000);
		char port_s[16];
		snprintf(port_s, sizeof(port_s), "%d", port);
		const char *argv[] = {"sh", "-c",
				      "rclone serve webdav \"$0\" --addr \"127.0.0.1:$1\" >/dev/null 2>&1 & echo $!",
				      served, port_s, NULL};
		struct sb_run_opts o = {.argv = argv, .capture_stdout = true};
		struct sb_run_result rr;
		assert_int_equal(sb_run(&o, &rr), 0);
		server = atoi(rr.out);
		sb_run_result_free(&rr);
		assert_true(server > 1);
		free(conf);
		free(dav_conf);
		conf = xasprintf("[sbadpdav]\ntype = webdav\nurl = http://127.0.0.1:%d/\nvendor = other\n", port);
		dav_conf = write_file(tmpdir, "rclone-dav.conf", conf);
		cfg->rclone_config = dav_conf;
		cfg->rclone_remote = (char *)"sbadpdav";
		for (int i = 0; i < 30 && up < 0; i++) {
			free(err);
			err = NULL;
			up = sb_rclone_reachable(cfg, &err);
			if (up < 0)
				usleep(100000);
		}
		if (up < 0)
			kill(server, SIGTERM);
	}
	if (up < 0)
		fail_msg("webdav server did not come up: %s", err);

	char *src = make_sync_source();
	struct sb_rclone_result res;
	if (sb_rclone_sync(cfg, src, "sbadpdav:", false, NULL, NULL, NULL, &res, &err) < 0)
		fail_msg("sync to webdav: %s", err);
	struct sb_rclone_check chk;
	assert_int_equal(check_now(cfg, src, "sbadpdav:", &chk), 0);
	assert_false(chk.by_hash);
	assert_int_equal(chk.matched, 3);

	kill(server, SIGTERM);
	free(src);
	free(dav_conf);
	free(conf);
	free(served);
}

static void *cancel_rclone_later(void *arg)
{
	usleep(1000000);
	atomic_store((atomic_bool *)arg, true);
	return NULL;
}

static void test_rclone_failures(void **state)
{
	(void)state;
	struct sb_config *cfg = rclone_cfg();
	char *err = NULL;

	/* A remote nobody answers for: a real refused connection. */
	cfg->rclone_remote = (char *)"sbadpdead";
	assert_int_equal(sb_rclone_reachable(cfg, &err), -1);
	assert_true(sb_str_has_prefix(err, "remote 'sbadpdead:' is not reachable: rclone lsd exited "));
	assert_non_null(strstr(err, "connection refused"));
	free(err);
	err = NULL;

	/* A remote the config does not know. */
	struct sb_rclone_result res;
	char *src = xasprintf("%s/sync-src", tmpdir);
	assert_int_equal(sb_rclone_sync(cfg, src, "sbadpnosuch:x", false, NULL, NULL, NULL, &res, &err), -1);
	assert_non_null(strstr(err, "rclone sync exited 1: failed to create file system for \"sbadpnosuch:x\""));
	assert_non_null(strstr(err, "didn't find section in config file"));
	free(err);
	err = NULL;
	struct sb_rclone_check chk;
	assert_int_equal(sb_rclone_check(cfg, src, "sbadpnosuch:x", NULL, &chk, &err), -1);
	assert_non_null(strstr(err, "didn't find section in config file"));
	free(err);
	err = NULL;

	/* Cancelled mid-transfer: 8 MB at 1 MiB/s. */
	cfg->rclone_remote = (char *)"sbadplocal";
	cfg->bandwidth = (char *)"1M";
	char *slow = xasprintf("%s/slow-src", tmpdir);
	assert_int_equal(sb_mkdir_p(slow, 0755), 0);
	sh("head -c 8000000 /dev/urandom > '%s/big'", slow);
	char *slow_dst = xasprintf("sbadplocal:%s/slow-dst", tmpdir);
	atomic_bool cancel = false;
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, cancel_rclone_later, &cancel), 0);
	double t0 = sb_now_monotonic();
	assert_int_equal(sb_rclone_sync(cfg, slow, slow_dst, false, &cancel, NULL, NULL, &res, &err), -1);
	pthread_join(th, NULL);
	assert_true(sb_now_monotonic() - t0 < 7);
	assert_string_equal(err, "rclone sync cancelled");
	free(err);
	err = NULL;

	/* rclone not installed. */
	char *old_path = xstrdup(getenv("PATH"));
	setenv("PATH", tmpdir, 1);
	assert_int_equal(sb_rclone_reachable(cfg, &err), -1);
	setenv("PATH", old_path, 1);
	free(old_path);
	assert_string_equal(err, "remote 'sbadplocal:' is not reachable: rclone is not installed (not found in PATH)");
	free(err);
	free(slow_dst);
	free(slow);
	free(src);
}

static int group_setup(void **state)
{
	(void)state;
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(password, sizeof(password), "sbadp-secret-%ld-%d", (long)getpid(), rand());
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	free(rclone_conf);
	return sb_rm_rf(tmpdir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_compose_detect, docker_setup, docker_teardown),
		cmocka_unit_test_setup_teardown(test_stack_lifecycle, docker_setup, docker_teardown),
		cmocka_unit_test_setup_teardown(test_stack_missing_and_broken, docker_setup, docker_teardown),
		cmocka_unit_test(test_engine_ok),
		cmocka_unit_test(test_restic_repository),
		cmocka_unit_test(test_restic_failures),
		cmocka_unit_test(test_restic_cancel_leaves_no_lock),
		cmocka_unit_test(test_restic_stale_lock),
		cmocka_unit_test(test_rclone_sync_and_check),
		cmocka_unit_test(test_rclone_size_only_check),
		cmocka_unit_test(test_rclone_failures),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
