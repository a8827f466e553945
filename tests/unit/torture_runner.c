/*
 * The runner against real /bin/sh children: exit codes, signals, line
 * splitting, stdin, environment, cwd, timeouts and cancellation that
 * kill the whole process group, spawn failures, and many runs at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "stackback/runner.h"
#include "stackback/util.h"

/* Collects on_line calls per stream. */
struct lines {
	struct sb_strv v[2];
	size_t lens[2][64];
	uint64_t bytes[2];
	size_t count[2];
	size_t max_len;
};

static void collect(void *userdata, enum sb_stream stream, const char *line, size_t len)
{
	struct lines *l = userdata;
	assert_int_equal(line[len], '\0');
	if (l->count[stream] < 64)
		l->lens[stream][l->count[stream]] = len;
	l->count[stream]++;
	l->bytes[stream] += len;
	if (len > l->max_len)
		l->max_len = len;
	if (len < 4096)
		sb_strv_push(&l->v[stream], line);
}

static void lines_free(struct lines *l)
{
	sb_strv_free(&l->v[0]);
	sb_strv_free(&l->v[1]);
}

static int run_sh(const char *script, struct sb_run_result *res, struct lines *l)
{
	const char *argv[] = {"sh", "-c", script, NULL};
	struct sb_run_opts o = {
		.argv = argv,
		.on_line = l ? collect : NULL,
		.userdata = l,
		.capture_stdout = true,
		.capture_stderr = true,
		.timeout_s = 60,
	};
	return sb_run(&o, res);
}

/*
 * Timeouts long enough for sh to start and run its first lines (trap,
 * echo) before the signal even on a loaded machine or under valgrind:
 * the tests check the line that says it did.
 */
#define SCRIPT_READY_S 3.0
/*
 * SB_KILL_GRACE_S in core/runner.c: how long after the first signal of
 * the kill sequence the SIGKILL follows.
 */
#define KILL_GRACE_S 5.0
/* Slack on upper bounds that only show nothing waited for the 300 s sleeps. */
#define SLACK_S 20.0

/* False once pid is gone or a zombie waiting for init. */
static bool pid_running(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	const char *rp = strrchr(buf, ')');
	return !(rp && (rp[2] == 'Z' || rp[2] == 'X'));
}

/* True once pid no longer runs; waits up to 10 s for a killed process to go. */
static bool pid_gone(pid_t pid)
{
	for (int i = 0; i < 500; i++) {
		if (!pid_running(pid))
			return true;
		usleep(20000);
	}
	return false;
}

static void test_exit_codes(void **state)
{
	(void)state;
	struct sb_run_result res;
	assert_int_equal(run_sh("exit 0", &res, NULL), 0);
	assert_int_equal(res.outcome, SB_RUN_EXITED);
	assert_int_equal(res.status, 0);
	assert_string_equal(res.out, "");
	assert_null(res.err);
	sb_run_result_free(&res);

	assert_int_equal(run_sh("echo oops >&2; exit 3", &res, NULL), 1);
	assert_int_equal(res.outcome, SB_RUN_EXITED);
	assert_int_equal(res.status, 3);
	assert_string_equal(res.err, "oops");
	char *d = sb_run_describe(&res, 0);
	assert_string_equal(d, "exited 3: oops");
	free(d);
	sb_run_result_free(&res);
}

static void test_describe_printable(void **state)
{
	(void)state;
	struct sb_run_result res;
	assert_int_equal(run_sh("printf 'first\\n\\033[2K\\033[31mred\\033[0m\\tand\\001 plain\\r\\n' >&2; exit 1", &res, NULL), 1);
	char *d = sb_run_describe(&res, 0);
	assert_string_equal(d, "exited 1: red and plain");
	free(d);
	sb_run_result_free(&res);
	char *p = sb_run_printable("\x1b]0;title\x07 x \x1b", 13);
	assert_string_equal(p, "0;title x");
	free(p);
}

static void test_signal(void **state)
{
	(void)state;
	struct sb_run_result res;
	assert_int_equal(run_sh("kill -9 $$", &res, NULL), 1);
	assert_int_equal(res.outcome, SB_RUN_SIGNALED);
	assert_int_equal(res.status, SIGKILL);
	char *d = sb_run_describe(&res, 0);
	assert_string_equal(d, "killed by signal 9 (SIGKILL)");
	free(d);
	sb_run_result_free(&res);
}

static void test_lines_both_streams(void **state)
{
	(void)state;
	struct sb_run_result res;
	struct lines l = {0};
	assert_int_equal(run_sh("echo one; echo e1 >&2; echo; echo two; printf 'e2\\nlast' >&2", &res, &l),
			 0);
	assert_int_equal(l.v[SB_STREAM_STDOUT].n, 3);
	assert_string_equal(l.v[SB_STREAM_STDOUT].v[0], "one");
	assert_string_equal(l.v[SB_STREAM_STDOUT].v[1], "");
	assert_string_equal(l.v[SB_STREAM_STDOUT].v[2], "two");
	assert_int_equal(l.v[SB_STREAM_STDERR].n, 3);
	assert_string_equal(l.v[SB_STREAM_STDERR].v[0], "e1");
	assert_string_equal(l.v[SB_STREAM_STDERR].v[1], "e2");
	/* The final line without a newline is still delivered. */
	assert_string_equal(l.v[SB_STREAM_STDERR].v[2], "last");
	assert_string_equal(res.out, "one\n\ntwo\n");
	assert_string_equal(res.err, "e1\ne2\nlast");
	sb_run_result_free(&res);
	lines_free(&l);
}

static void test_no_trailing_newline_and_nul(void **state)
{
	(void)state;
	struct sb_run_result res;
	struct lines l = {0};
	assert_int_equal(run_sh("printf 'a\\000b\\nabc'", &res, &l), 0);
	assert_int_equal(l.count[SB_STREAM_STDOUT], 2);
	assert_int_equal(l.lens[SB_STREAM_STDOUT][0], 3);
	assert_int_equal(l.lens[SB_STREAM_STDOUT][1], 3);
	assert_string_equal(l.v[SB_STREAM_STDOUT].v[1], "abc");
	sb_run_result_free(&res);
	lines_free(&l);
}

static void test_long_lines(void **state)
{
	(void)state;
	struct sb_run_result res;
	struct lines l = {0};
	/* 200 000 bytes: longer than one read, shorter than the line limit: one line. */
	assert_int_equal(run_sh("head -c 200000 /dev/zero | tr '\\0' x; echo; echo end", &res, &l), 0);
	assert_int_equal(l.count[SB_STREAM_STDOUT], 2);
	assert_int_equal(l.lens[SB_STREAM_STDOUT][0], 200000);
	assert_string_equal(l.v[SB_STREAM_STDOUT].v[0], "end");
	assert_int_equal(strlen(res.out), 200000 + 1 + 4);
	sb_run_result_free(&res);
	lines_free(&l);

	/* 3.5 MiB without a newline: delivered in 1 MiB pieces, nothing lost. */
	struct lines big = {0};
	assert_int_equal(run_sh("head -c 3670016 /dev/zero | tr '\\0' y", &res, &big), 0);
	assert_int_equal(big.count[SB_STREAM_STDOUT], 4);
	assert_int_equal(big.bytes[SB_STREAM_STDOUT], 3670016);
	assert_int_equal(big.max_len, 1024 * 1024);
	assert_int_equal(big.lens[SB_STREAM_STDOUT][3], 3670016 - 3 * 1024 * 1024);
	sb_run_result_free(&res);
	lines_free(&big);
}

struct raw_and_lines {
	struct lines l;   /* first: collect() takes a pointer to this */
	struct sb_buf raw;
};

static void raw_collect(void *userdata, const char *data, size_t len)
{
	struct raw_and_lines *r = userdata;
	sb_buf_append(&r->raw, data, len);
}

static void test_raw_stdout(void **state)
{
	(void)state;
	/* Byte-exact, not split, not given to on_line; stderr still comes as lines. */
	struct raw_and_lines r = {0};
	const char *argv[] = {"sh", "-c", "printf 'a\\000b\\nc'; head -c 300000 /dev/zero; echo err >&2", NULL};
	struct sb_run_opts o = {.argv = argv, .on_stdout = raw_collect, .on_line = collect, .userdata = &r};
	struct sb_run_result res;
	assert_int_equal(sb_run(&o, &res), 0);
	assert_int_equal(r.raw.len, 5 + 300000);
	assert_memory_equal(r.raw.data, "a\0b\nc", 5);
	assert_int_equal(r.l.count[SB_STREAM_STDOUT], 0);
	assert_int_equal(r.l.count[SB_STREAM_STDERR], 1);
	assert_string_equal(r.l.v[SB_STREAM_STDERR].v[0], "err");
	sb_run_result_free(&res);
	sb_buf_free(&r.raw);
	lines_free(&r.l);
}

static void test_stdin(void **state)
{
	(void)state;
	const char *argv[] = {"cat", NULL};
	struct sb_run_result res;
	struct sb_run_opts o = {
		.argv = argv,
		.stdin_data = "hello\nworld",
		.stdin_len = 11,
		.capture_stdout = true,
	};
	assert_int_equal(sb_run(&o, &res), 0);
	assert_string_equal(res.out, "hello\nworld");
	sb_run_result_free(&res);

	/* More than a pipe holds: stdin and stdout must be interleaved. */
	size_t big = 3 * 1024 * 1024;
	char *data = xmalloc(big + 1);
	for (size_t i = 0; i < big; i++)
		data[i] = (char)('a' + i % 26);
	data[big] = '\0';
	o.stdin_data = data;
	o.stdin_len = big;
	assert_int_equal(sb_run(&o, &res), 0);
	assert_int_equal(strlen(res.out), big);
	assert_memory_equal(res.out, data, big);
	sb_run_result_free(&res);

	/* A child that never reads its stdin must not kill us with SIGPIPE. */
	const char *argv_true[] = {"true", NULL};
	o.argv = argv_true;
	assert_int_equal(sb_run(&o, &res), 0);
	assert_int_equal(res.outcome, SB_RUN_EXITED);
	sb_run_result_free(&res);
	free(data);

	/* Without stdin_data, stdin is /dev/null. */
	const char *argv_wc[] = {"wc", "-c", NULL};
	struct sb_run_opts o2 = {.argv = argv_wc, .capture_stdout = true};
	assert_int_equal(sb_run(&o2, &res), 0);
	assert_int_equal(atoi(res.out), 0);
	sb_run_result_free(&res);
}

static void test_env(void **state)
{
	(void)state;
	setenv("SB_TEST_DEL", "should-vanish", 1);
	setenv("SB_TEST_KEEP", "kept", 1);
	setenv("SB_TEST_OVR", "old", 1);
	const char *argv[] = {"sh", "-c", "echo \"${SB_TEST_DEL-unset}|$SB_TEST_KEEP|$SB_TEST_OVR|$SB_TEST_ADD\"",
			      NULL};
	const char *add[] = {"SB_TEST_OVR=new", "SB_TEST_ADD=a=b c", NULL};
	const char *del[] = {"SB_TEST_DEL", NULL};
	struct sb_run_opts o = {.argv = argv, .env_add = add, .env_del = del, .capture_stdout = true};
	struct sb_run_result res;
	assert_int_equal(sb_run(&o, &res), 0);
	assert_string_equal(res.out, "unset|kept|new|a=b c\n");
	sb_run_result_free(&res);

	/* Overridden keys appear once. */
	const char *argv_env[] = {"sh", "-c", "env | grep -c '^SB_TEST_OVR='", NULL};
	o.argv = argv_env;
	assert_int_equal(sb_run(&o, &res), 0);
	assert_string_equal(res.out, "1\n");
	sb_run_result_free(&res);

	/* PATH from env_add is the one used to find the program. */
	const char *path_add[] = {"PATH=/nonexistent-dir", NULL};
	const char *argv_sh[] = {"sh", "-c", "true", NULL};
	struct sb_run_opts o2 = {.argv = argv_sh, .env_add = path_add};
	assert_int_equal(sb_run(&o2, &res), 1);
	assert_int_equal(res.outcome, SB_RUN_SPAWN_FAILED);
	assert_int_equal(res.status, ENOENT);
	sb_run_result_free(&res);
	unsetenv("SB_TEST_DEL");
	unsetenv("SB_TEST_KEEP");
	unsetenv("SB_TEST_OVR");
}

static void test_cwd(void **state)
{
	(void)state;
	char dir[] = "/tmp/sbrunnerXXXXXX";
	assert_non_null(mkdtemp(dir));
	const char *argv[] = {"pwd", NULL};
	struct sb_run_opts o = {.argv = argv, .cwd = dir, .capture_stdout = true};
	struct sb_run_result res;
	assert_int_equal(sb_run(&o, &res), 0);
	char *want = xasprintf("%s\n", dir);
	assert_string_equal(res.out, want);
	free(want);
	sb_run_result_free(&res);
	rmdir(dir);

	/* A missing cwd is a spawn failure that names the directory. */
	assert_int_equal(sb_run(&o, &res), 1);
	assert_int_equal(res.outcome, SB_RUN_SPAWN_FAILED);
	assert_int_equal(res.status, ENOENT);
	char *d = sb_run_describe(&res, 0);
	assert_non_null(strstr(d, "cannot enter directory"));
	assert_non_null(strstr(d, dir));
	free(d);
	sb_run_result_free(&res);
}

/* bind_src over bind_dst for the child only (snapshot mode's view for restic). Needs root. */
static void test_private_bind(void **state)
{
	(void)state;
	char dir[] = "/tmp/sbrunnerXXXXXX";
	assert_non_null(mkdtemp(dir));
	char *src = xasprintf("%s/copy", dir), *dst = xasprintf("%s/stack", dir);
	assert_int_equal(mkdir(src, 0755), 0);
	assert_int_equal(mkdir(dst, 0755), 0);
	char *seen = xasprintf("%s/file", src), *orig = xasprintf("%s/file", dst);
	assert_int_equal(sb_write_file_atomic(seen, "the copy\n", 9, 0644), 0);
	assert_int_equal(sb_write_file_atomic(orig, "the original\n", 13, 0644), 0);

	/* The child sees the copy at the original path, from its cwd and by absolute path. */
	char *script = xasprintf("cat file; cat '%s/file'; grep -c ' %s ' /proc/self/mountinfo", dst, dst);
	const char *argv[] = {"sh", "-c", script, NULL};
	struct sb_run_opts o = {.argv = argv, .cwd = dst, .bind_src = src, .bind_dst = dst,
				.capture_stdout = true, .capture_stderr = true};
	struct sb_run_result res;
	int rc = sb_run(&o, &res);
	if (rc != 0)
		fail_msg("bind run failed: %s", res.err ? res.err : "?");
	assert_string_equal(res.out, "the copy\nthe copy\n1\n");
	sb_run_result_free(&res);

	/* Nothing changed for anyone else. */
	char *text = NULL;
	assert_int_equal(sb_read_file(orig, 100, &text, NULL), 0);
	assert_string_equal(text, "the original\n");
	free(text);
	assert_int_equal(sb_read_file("/proc/self/mountinfo", 1 << 20, &text, NULL), 0);
	char *needle = xasprintf(" %s ", dst);
	assert_null(strstr(text, needle));
	free(needle);
	free(text);

	/* A copy that is not there: a spawn failure saying what could not be shown where. */
	sb_rm_rf(src);
	assert_int_equal(sb_run(&o, &res), 1);
	assert_int_equal(res.outcome, SB_RUN_SPAWN_FAILED);
	assert_int_equal(res.status, ENOENT);
	char *d = sb_run_describe(&res, 0);
	char *want = xasprintf("could not be started: cannot show '%s' at '%s' in a private mount namespace: %s",
			       src, dst, strerror(ENOENT));
	assert_string_equal(d, want);
	free(want);
	free(d);
	sb_run_result_free(&res);

	free(script);
	free(seen);
	free(orig);
	free(src);
	free(dst);
	sb_rm_rf(dir);
}

static void test_timeout_kills_group(void **state)
{
	(void)state;
	struct lines l = {0};
	const char *argv[] = {"sh", "-c", "sleep 300 & echo $!; wait", NULL};
	struct sb_run_opts o = {.argv = argv, .timeout_s = SCRIPT_READY_S, .on_line = collect, .userdata = &l};
	struct sb_run_result res;
	assert_int_equal(sb_run(&o, &res), 1);
	assert_int_equal(res.outcome, SB_RUN_TIMED_OUT);
	/* SIGTERM ended it: no SIGKILL after the grace period was needed. */
	assert_int_equal(res.status, SIGTERM);
	assert_true(res.duration_s >= SCRIPT_READY_S);
	assert_true(res.duration_s < SCRIPT_READY_S + SLACK_S);
	assert_int_equal(l.v[SB_STREAM_STDOUT].n, 1);
	pid_t grandchild = atoi(l.v[SB_STREAM_STDOUT].v[0]);
	assert_true(grandchild > 1);
	assert_true(pid_gone(grandchild));
	char *d = sb_run_describe(&res, SCRIPT_READY_S);
	assert_string_equal(d, "timed out after 3s");
	free(d);
	sb_run_result_free(&res);
	lines_free(&l);
}

static void test_timeout_sigkill_after_grace(void **state)
{
	(void)state;
	/*
	 * Everything ignores SIGTERM (the sleep inherits the ignored
	 * disposition): only the SIGKILL after the grace period ends it. The
	 * echo comes after the trap, so its line shows the trap was in place.
	 */
	struct lines l = {0};
	const char *argv[] = {"sh", "-c", "trap '' TERM; sleep 300 & echo $!; wait; wait", NULL};
	struct sb_run_opts o = {.argv = argv, .timeout_s = SCRIPT_READY_S, .on_line = collect, .userdata = &l};
	struct sb_run_result res;
	assert_int_equal(sb_run(&o, &res), 1);
	assert_int_equal(res.outcome, SB_RUN_TIMED_OUT);
	assert_int_equal(l.v[SB_STREAM_STDOUT].n, 1);
	assert_int_equal(res.status, SIGKILL);
	assert_true(res.duration_s >= SCRIPT_READY_S + KILL_GRACE_S);
	assert_true(res.duration_s < SCRIPT_READY_S + KILL_GRACE_S + SLACK_S);
	pid_t grandchild = atoi(l.v[SB_STREAM_STDOUT].v[0]);
	assert_true(pid_gone(grandchild));
	sb_run_result_free(&res);
	lines_free(&l);
}

static void test_timeout_term_signal(void **state)
{
	(void)state;
	/* restic's case: SIGINT lets the child clean up (its lock) before it goes. */
	struct lines l = {0};
	const char *argv[] = {"sh", "-c",
			      "trap 'echo got-int; exit 0' INT; echo ready; sleep 300 >/dev/null 2>&1 & wait", NULL};
	struct sb_run_opts o = {
		.argv = argv,
		.timeout_s = SCRIPT_READY_S,
		.term_signal = SIGINT,
		.on_line = collect,
		.userdata = &l,
	};
	struct sb_run_result res;
	assert_int_equal(sb_run(&o, &res), 1);
	assert_int_equal(res.outcome, SB_RUN_TIMED_OUT);
	/* The shell exited by itself, from its trap, before any SIGKILL. */
	assert_int_equal(res.status, 0);
	assert_int_equal(l.v[SB_STREAM_STDOUT].n, 2);
	assert_string_equal(l.v[SB_STREAM_STDOUT].v[0], "ready");
	assert_string_equal(l.v[SB_STREAM_STDOUT].v[1], "got-int");
	sb_run_result_free(&res);
	lines_free(&l);
}

static void test_leftover_grandchild_holding_pipes(void **state)
{
	(void)state;
	/* The leader exits at once; its background child keeps stdout open. */
	struct lines l = {0};
	const char *argv[] = {"sh", "-c", "sleep 300 & echo $!; exit 4", NULL};
	struct sb_run_opts o = {.argv = argv, .on_line = collect, .userdata = &l};
	struct sb_run_result res;
	assert_int_equal(sb_run(&o, &res), 1);
	assert_int_equal(res.outcome, SB_RUN_EXITED);
	assert_int_equal(res.status, 4);
	/* Killed after the pipes lingered a while, not waited for. */
	assert_true(res.duration_s < SLACK_S);
	assert_int_equal(l.v[SB_STREAM_STDOUT].n, 1);
	pid_t grandchild = atoi(l.v[SB_STREAM_STDOUT].v[0]);
	assert_true(pid_gone(grandchild));
	sb_run_result_free(&res);
	lines_free(&l);
}

static void test_background_child_without_pipes_is_left_alone(void **state)
{
	(void)state;
	/* A daemon-like child that closed our pipes is the caller's business: not waited for, not killed. */
	struct lines l = {0};
	const char *argv[] = {"sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $!", NULL};
	struct sb_run_opts o = {.argv = argv, .on_line = collect, .userdata = &l};
	struct sb_run_result res;
	assert_int_equal(sb_run(&o, &res), 0);
	assert_int_equal(l.v[SB_STREAM_STDOUT].n, 1);
	pid_t bg = atoi(l.v[SB_STREAM_STDOUT].v[0]);
	assert_true(bg > 1);
	bool alive = pid_running(bg);
	kill(bg, SIGKILL);
	assert_true(alive);
	assert_true(res.duration_s < SLACK_S);
	sb_run_result_free(&res);
	lines_free(&l);
}

struct lines_then_cancel {
	struct lines l;   /* first: collect() takes a pointer to this */
	atomic_bool cancel;
	double cancelled_at;
};

/* Cancels once the script's first line shows its background child exists. */
static void collect_then_cancel(void *userdata, enum sb_stream stream, const char *line, size_t len)
{
	struct lines_then_cancel *c = userdata;
	collect(&c->l, stream, line, len);
	if (!atomic_load(&c->cancel)) {
		c->cancelled_at = sb_now_monotonic();
		atomic_store(&c->cancel, true);
	}
}

static void test_cancel(void **state)
{
	(void)state;
	struct lines_then_cancel c = {0};
	const char *argv[] = {"sh", "-c", "sleep 300 & echo $!; wait", NULL};
	struct sb_run_opts o = {.argv = argv, .cancel = &c.cancel, .on_line = collect_then_cancel, .userdata = &c};
	struct sb_run_result res;
	assert_int_equal(sb_run(&o, &res), 1);
	assert_int_equal(res.outcome, SB_RUN_CANCELLED);
	/* SIGTERM ended it: no SIGKILL after the grace period was needed. */
	assert_int_equal(res.status, SIGTERM);
	assert_true(sb_now_monotonic() - c.cancelled_at < SLACK_S);
	assert_int_equal(c.l.v[SB_STREAM_STDOUT].n, 1);
	pid_t grandchild = atoi(c.l.v[SB_STREAM_STDOUT].v[0]);
	assert_true(pid_gone(grandchild));
	char *d = sb_run_describe(&res, 0);
	assert_string_equal(d, "cancelled");
	free(d);
	sb_run_result_free(&res);
	lines_free(&c.l);
}

static void test_spawn_failures(void **state)
{
	(void)state;
	struct sb_run_result res;
	const char *argv[] = {"sb-no-such-program-here", "x", NULL};
	struct sb_run_opts o = {.argv = argv, .capture_stderr = true};
	assert_int_equal(sb_run(&o, &res), 1);
	assert_int_equal(res.outcome, SB_RUN_SPAWN_FAILED);
	assert_int_equal(res.status, ENOENT);
	char *d = sb_run_describe(&res, 0);
	assert_string_equal(d, "not found in PATH");
	free(d);
	sb_run_result_free(&res);

	const char *argv_abs[] = {"/nonexistent/bin/prog", NULL};
	o.argv = argv_abs;
	assert_int_equal(sb_run(&o, &res), 1);
	assert_int_equal(res.outcome, SB_RUN_SPAWN_FAILED);
	assert_int_equal(res.status, ENOENT);
	sb_run_result_free(&res);

	/* Not executable: the child's exec errno comes back through the error pipe. */
	char file[] = "/tmp/sbrunnerXXXXXX";
	int fd = mkstemp(file);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "#!/bin/sh\n", 10), 10);
	close(fd);
	chmod(file, 0600);
	const char *argv_noexec[] = {file, NULL};
	o.argv = argv_noexec;
	assert_int_equal(sb_run(&o, &res), 1);
	assert_int_equal(res.outcome, SB_RUN_SPAWN_FAILED);
	assert_int_equal(res.status, EACCES);
	d = sb_run_describe(&res, 0);
	assert_non_null(strstr(d, "cannot execute"));
	assert_non_null(strstr(d, "Permission denied"));
	free(d);
	sb_run_result_free(&res);
	unlink(file);

	assert_true(sb_program_exists("sh"));
	assert_false(sb_program_exists("sb-no-such-program-here"));
	assert_false(sb_program_exists("/bin/sh"));
}

static void record_pid(void *userdata, pid_t pid)
{
	pid_t *p = userdata;
	*p = pid;
	/* The child leads its own process group from the start. */
	assert_int_equal(getpgid(pid), pid);
}

static void test_on_spawn_and_pgid(void **state)
{
	(void)state;
	pid_t seen = 0;
	const char *argv[] = {"sh", "-c", "cut -d' ' -f5 /proc/$$/stat; echo $$",
			      NULL};
	struct sb_run_opts o = {.argv = argv, .on_spawn = record_pid, .userdata = &seen, .capture_stdout = true};
	struct sb_run_result res;
	assert_int_equal(sb_run(&o, &res), 0);
	assert_true(seen > 0);
	long pgid = 0, self = 0;
	assert_int_equal(sscanf(res.out, "%ld %ld", &pgid, &self), 2);
	assert_int_equal(pgid, seen);
	assert_int_equal(self, seen);
	sb_run_result_free(&res);
}

static void test_fd_and_signal_hygiene(void **state)
{
	(void)state;
	/* A descriptor another thread opened without O_CLOEXEC must not reach the child. */
	int leak = open("/dev/null", O_RDONLY);
	assert_true(leak > 2);
	/* SIGPIPE ignored and SIGTERM blocked here must be reset for the child. */
	signal(SIGPIPE, SIG_IGN);
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	/* The programs themselves look, not a shell that may juggle its own mask. */
	char *fd_path = xasprintf("/proc/self/fd/%d", leak);
	const char *argv_test[] = {"test", "-e", fd_path, NULL};
	struct sb_run_opts o = {.argv = argv_test};
	struct sb_run_result res;
	assert_int_equal(sb_run(&o, &res), 1);
	assert_int_equal(res.outcome, SB_RUN_EXITED);
	assert_int_equal(res.status, 1);
	sb_run_result_free(&res);
	const char *argv_grep[] = {"grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status", NULL};
	struct sb_run_opts o2 = {.argv = argv_grep, .capture_stdout = true};
	assert_int_equal(sb_run(&o2, &res), 0);
	assert_non_null(strstr(res.out, "SigBlk:\t0000000000000000"));
	assert_non_null(strstr(res.out, "SigIgn:\t0000000000000000"));
	/* The parent's own descriptor is still open and usable. */
	assert_true(fcntl(leak, F_GETFD) >= 0);
	sb_run_result_free(&res);
	free(fd_path);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	signal(SIGPIPE, SIG_DFL);
	close(leak);
}

static void test_stderr_tail(void **state)
{
	(void)state;
	struct sb_run_result res;
	assert_int_equal(run_sh("i=0; while [ $i -lt 5000 ]; do echo \"error line $i\" >&2; i=$((i+1)); done; exit 2",
				&res, NULL),
			 1);
	assert_true(strlen(res.err) <= 8192);
	assert_true(strlen(res.err) > 8000);
	assert_true(sb_str_has_prefix(res.err, "error line "));
	size_t n = strlen(res.err);
	assert_string_equal(res.err + n - strlen("error line 4999"), "error line 4999");
	char *d = sb_run_describe(&res, 0);
	assert_string_equal(d, "exited 2: error line 4999");
	free(d);
	sb_run_result_free(&res);
}

struct worker {
	int id;
	int failures;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	for (int i = 0; i < 25; i++) {
		char *tag = xasprintf("w%d-%d", w->id, i);
		const char *argv[] = {"sh", "-c", "echo \"$0\"; echo \"err $0\" >&2; exit $(( ${#0} % 5 ))", tag,
				      NULL};
		struct lines l = {0};
		struct sb_run_opts o = {
			.argv = argv,
			.on_line = collect,
			.userdata = &l,
			.capture_stdout = true,
			.capture_stderr = true,
			.timeout_s = 30,
		};
		struct sb_run_result res;
		sb_run(&o, &res);
		char *want_out = xasprintf("%s\n", tag);
		char *want_err = xasprintf("err %s", tag);
		if (res.outcome != SB_RUN_EXITED || res.status != (int)(strlen(tag) % 5) ||
		    strcmp(res.out, want_out) != 0 || !res.err || strcmp(res.err, want_err) != 0 ||
		    l.v[0].n != 1 || l.v[1].n != 1)
			w->failures++;
		free(want_out);
		free(want_err);
		free(tag);
		lines_free(&l);
		sb_run_result_free(&res);
	}
	return NULL;
}

static void test_concurrent_runs(void **state)
{
	(void)state;
	enum { N = 8 };
	pthread_t th[N];
	struct worker w[N];
	for (int i = 0; i < N; i++) {
		w[i] = (struct worker){.id = i};
		assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].failures, 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exit_codes),
		cmocka_unit_test(test_signal),
		cmocka_unit_test(test_describe_printable),
		cmocka_unit_test(test_lines_both_streams),
		cmocka_unit_test(test_no_trailing_newline_and_nul),
		cmocka_unit_test(test_long_lines),
		cmocka_unit_test(test_raw_stdout),
		cmocka_unit_test(test_stdin),
		cmocka_unit_test(test_env),
		cmocka_unit_test(test_cwd),
		cmocka_unit_test(test_private_bind),
		cmocka_unit_test(test_timeout_kills_group),
		cmocka_unit_test(test_timeout_sigkill_after_grace),
		cmocka_unit_test(test_timeout_term_signal),
		cmocka_unit_test(test_leftover_grandchild_holding_pipes),
		cmocka_unit_test(test_background_child_without_pipes_is_left_alone),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_spawn_failures),
		cmocka_unit_test(test_on_spawn_and_pgid),
		cmocka_unit_test(test_fd_and_signal_hygiene),
		cmocka_unit_test(test_stderr_tail),
		cmocka_unit_test(test_concurrent_runs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
