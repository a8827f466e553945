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
#include <errno.h>
#include <fcntl.h>
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

static int docker_teardown(void **state)
{
	(void)state;
	if (compose_file)
		sh("docker-compose -f '%s' down -t 1 >/dev/null 2>&1 || true", compose_file);
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

	cfg.compose_cmd = (char *)"  docker-compose   --ansi never ";
	assert_int_equal(sb_compose_detect(&cfg, &c, &err), 0);
	assert_int_equal(c.argv.n, 3);
	assert_string_equal(c.argv.v[0], "docker-compose");
	assert_string_equal(c.argv.v[2], "never");
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

static void expect_state(const struct sb_config *cfg, const struct sb_compose *c, const struct sb_stack *st,
			 enum sb_stack_state want)
{
	char *err = NULL;
	enum sb_stack_state got = sb_docker_state(cfg, c, st, &err);
	if (got != want)
		fail_msg("stack state: expected %s, got %s (%s)", sb_stack_state_name(want),
			 sb_stack_state_name(got), err ? err : "no error");
	assert_null(err);
}

static void test_stack_lifecycle(void **state)
{
	(void)state;
	struct sb_config cfg = docker_cfg(SB_STOP_MODE_STOP);
	struct sb_compose c;
	char *err = NULL;
	assert_int_equal(sb_compose_detect(&cfg, &c, &err), 0);
	struct sb_stack st = the_stack();

	expect_state(&cfg, &c, &st, SB_STATE_STOPPED);

	/* One of two services up: partial. */
	sh("cd '%s' && %s -f docker-compose.yml up -d app >/dev/null 2>&1", stack_dir, c.argv.n == 2 ? "docker compose" : "docker-compose");
	expect_state(&cfg, &c, &st, SB_STATE_PARTIAL);
	sh("cd '%s' && %s -f docker-compose.yml up -d >/dev/null 2>&1", stack_dir, c.argv.n == 2 ? "docker compose" : "docker-compose");
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

static int group_setup(void **state)
{
	(void)state;
	if (!mkdtemp(tmpdir))
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	return sb_rm_rf(tmpdir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_compose_detect, docker_setup, docker_teardown),
		cmocka_unit_test_setup_teardown(test_stack_lifecycle, docker_setup, docker_teardown),
		cmocka_unit_test_setup_teardown(test_stack_missing_and_broken, docker_setup, docker_teardown),
		cmocka_unit_test(test_engine_ok),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
