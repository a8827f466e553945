/*
 * The log sinks (log.c) and how programs choose them (logsetup.c):
 * levels, the file and its rotation, secrets masked everywhere, syslog
 * datagrams on a socket this test binds, the service rules.
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "stackback/config.h"
#include "stackback/log.h"
#include "stackback/logsetup.h"
#include "stackback/util.h"

struct fixture {
	char dir[64];
	struct sb_config cfg;
	int sock;          /* the syslog listener, -1 if none */
	char *sock_path;
	int saved_stderr;  /* stderr while a test redirects it */
	char *stderr_path;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	strcpy(f->dir, "/tmp/sblogXXXXXX");
	assert_non_null(mkdtemp(f->dir));
	sb_config_defaults(&f->cfg);
	free(f->cfg.state_dir);
	f->cfg.state_dir = xasprintf("%s/state", f->dir);
	f->sock = -1;
	f->saved_stderr = -1;
	f->sock_path = xasprintf("%s/syslog.sock", f->dir);
	f->stderr_path = xasprintf("%s/stderr", f->dir);
	*state = f;
	return 0;
}

static void restore_stderr(struct fixture *f)
{
	if (f->saved_stderr >= 0) {
		dup2(f->saved_stderr, STDERR_FILENO);
		close(f->saved_stderr);
		f->saved_stderr = -1;
	}
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	restore_stderr(f);
	sb_log_open_file(NULL, 0);
	sb_log_open_syslog(NULL, NULL);
	sb_log_set_stderr(true);
	sb_log_set_level(SB_LOG_INFO);
	unsetenv("INVOCATION_ID");
	if (f->sock >= 0)
		close(f->sock);
	sb_rm_rf(f->dir);
	sb_config_free(&f->cfg);
	free(f->sock_path);
	free(f->stderr_path);
	free(f);
	return 0;
}

static void listen_syslog(struct fixture *f)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	strcpy(sa.sun_path, f->sock_path);
	f->sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(f->sock >= 0);
	assert_int_equal(bind(f->sock, (struct sockaddr *)&sa, sizeof(sa)), 0);
}

/* The next datagram, or NULL if none is waiting. Caller frees. */
static char *next_datagram(struct fixture *f)
{
	char buf[4096];
	ssize_t n = recv(f->sock, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	if (n < 0)
		return NULL;
	buf[n] = '\0';
	return xstrdup(buf);
}

static void capture_stderr(struct fixture *f)
{
	fflush(stderr);
	f->saved_stderr = dup(STDERR_FILENO);
	int fd = open(f->stderr_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	dup2(fd, STDERR_FILENO);
	close(fd);
}

static char *read_text(const char *path)
{
	char *text = NULL;
	if (sb_read_file(path, 64u << 20, &text, NULL) < 0)
		return xstrdup("");
	return text;
}

static void test_levels_and_file(void **state)
{
	struct fixture *f = *state;
	char *path = xasprintf("%s/log", f->dir);
	assert_int_equal(sb_log_open_file(path, 0), 0);
	sb_log_set_stderr(false);
	sb_log_set_level(SB_LOG_WARNING);
	sb_info("quiet info");
	sb_warn("loud warning");
	sb_log_set_level(SB_LOG_DEBUG);
	sb_debug("debug now");
	char *text = read_text(path);
	assert_null(strstr(text, "quiet info"));
	assert_non_null(strstr(text, " warning: loud warning\n"));
	assert_non_null(strstr(text, " debug: debug now\n"));
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	free(text);
	free(path);
}

static void test_rotation(void **state)
{
	struct fixture *f = *state;
	char *path = xasprintf("%s/log", f->dir);
	char *old = xasprintf("%s/log.1", f->dir);
	sb_log_set_stderr(false);
	assert_int_equal(sb_log_open_file(path, 4096), 0);
	for (int i = 0; i < 200; i++)
		sb_info("line %03d of a log that outgrows its limit", i);
	struct stat st, st1;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(stat(old, &st1), 0);
	/* A file passes the limit by at most a line before it is rotated. */
	assert_true(st.st_size < 4096 + 128);
	assert_true(st1.st_size >= 4096);
	char *text = read_text(path);
	assert_non_null(strstr(text, "line 199 of"));
	free(text);
	free(old);
	free(path);
}

static void test_secrets_masked(void **state)
{
	struct fixture *f = *state;
	listen_syslog(f);
	char *path = xasprintf("%s/log", f->dir);
	assert_int_equal(sb_log_open_file(path, 0), 0);
	assert_int_equal(sb_log_open_syslog(f->sock_path, "sbtest"), 0);
	sb_log_ring_enable(16);
	capture_stderr(f);
	sb_log_add_secret("hunter2-log-secret");
	sb_error("restic said: wrong password hunter2-log-secret for hunter2-log-secret");
	restore_stderr(f);
	char *file = read_text(path);
	char *err = read_text(f->stderr_path);
	char *dgram = next_datagram(f);
	char *ring = sb_log_ring_dump();
	const char *sinks[] = {file, err, dgram, ring};
	for (size_t i = 0; i < SB_ARRAY_SIZE(sinks); i++) {
		assert_non_null(sinks[i]);
		assert_null(strstr(sinks[i], "hunter2"));
		assert_non_null(strstr(sinks[i], "wrong password *** for ***"));
	}
	free(file);
	free(err);
	free(dgram);
	free(ring);
	free(path);
}

static void test_syslog_datagrams(void **state)
{
	struct fixture *f = *state;
	listen_syslog(f);
	sb_log_set_stderr(false);
	assert_int_equal(sb_log_open_syslog(f->sock_path, "stackback"), 0);
	sb_error("an error");
	sb_info("an info");
	char *a = next_datagram(f), *b = next_datagram(f);
	char *want_a = xasprintf("<27>stackback[%ld]: an error", (long)getpid());
	char *want_b = xasprintf("<30>stackback[%ld]: an info", (long)getpid());
	assert_non_null(a);
	assert_non_null(b);
	assert_string_equal(a, want_a);
	assert_string_equal(b, want_b);
	free(a);
	free(b);
	free(want_a);
	free(want_b);
	/* A socket nobody listens on: an error at set-up, never a blocked logger. */
	char *nobody = xasprintf("%s/nobody.sock", f->dir);
	assert_true(sb_log_open_syslog(nobody, "x") < 0);
	free(nobody);
}

static void test_setup_file(void **state)
{
	struct fixture *f = *state;
	/* Read-only commands never create STATE_DIR. */
	assert_int_equal(sb_log_setup_file(&f->cfg), -ENOENT);
	struct stat st;
	assert_int_not_equal(stat(f->cfg.state_dir, &st), 0);
	assert_int_equal(sb_mkdir_p(f->cfg.state_dir, 0700), 0);
	assert_int_equal(sb_log_setup_file(&f->cfg), 0);
	sb_log_set_stderr(false);
	sb_info("into the state log");
	char *path = xasprintf("%s/log", f->cfg.state_dir);
	char *text = read_text(path);
	assert_non_null(strstr(text, "info: into the state log\n"));
	free(text);
	free(path);
	free(f->cfg.log_level);
	f->cfg.log_level = xstrdup("error");
	sb_log_setup_level(&f->cfg);
	sb_warn("dropped");
	path = xasprintf("%s/log", f->cfg.state_dir);
	text = read_text(path);
	assert_null(strstr(text, "dropped"));
	free(text);
	free(path);
}

static void test_setup_syslog_rules(void **state)
{
	struct fixture *f = *state;
	bool have_dev_log = access(SB_LOG_DEFAULT_SYSLOG, F_OK) == 0;
	int in = open("/dev/null", O_RDONLY);
	int saved_in = dup(STDIN_FILENO);
	dup2(in, STDIN_FILENO);
	close(in);

	/* Not a service, not asked, nothing configured: no syslog. */
	unsetenv("INVOCATION_ID");
	assert_false(sb_log_running_as_service());
	assert_false(sb_log_setup_syslog(&f->cfg, "stackback", false));
	/* Asked for, but the machine has no /dev/log: a warning, no syslog. */
	if (!have_dev_log) {
		capture_stderr(f);
		assert_false(sb_log_setup_syslog(&f->cfg, "stackback", true));
		restore_stderr(f);
		char *err = read_text(f->stderr_path);
		assert_non_null(strstr(err, "no syslog: /dev/log is not a socket"));
		free(err);
	}

	/* A service with SYSLOG_SOCKET: lines go there and no longer to stderr. */
	listen_syslog(f);
	f->cfg.syslog_socket = xstrdup(f->sock_path);
	setenv("INVOCATION_ID", "0123456789abcdef", 1);
	assert_true(sb_log_running_as_service());
	capture_stderr(f);
	assert_true(sb_log_setup_syslog(&f->cfg, "stackbackfs", false));
	sb_info("as a service");
	restore_stderr(f);
	char *err = read_text(f->stderr_path);
	assert_null(strstr(err, "as a service"));
	free(err);
	char *d = next_datagram(f);
	assert_non_null(d);
	assert_non_null(strstr(d, "stackbackfs["));
	assert_non_null(strstr(d, "]: as a service"));
	free(d);

	/* The same command from a terminal is not a service. */
	if (isatty(saved_in)) {
		dup2(saved_in, STDIN_FILENO);
		assert_false(sb_log_running_as_service());
	}
	dup2(saved_in, STDIN_FILENO);
	close(saved_in);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_levels_and_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_secrets_masked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_syslog_datagrams, setup, teardown),
		cmocka_unit_test_setup_teardown(test_setup_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_setup_syslog_rules, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
