/*
 * The client side of the control filesystem: mountinfo parsing (with
 * the kernel's octal escapes), mount state from a sample mountinfo
 * file, and the parsers for progress, trigger replies, status.json and
 * job reports, each fed garbage too. Following a live daemon is tested
 * end to end in tests/integration/ against the real stackbackfs.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "stackback/client.h"
#include "stackback/util.h"

/* Lines as the kernel writes them; \040 is a space, \134 a backslash. */
static const char sample_mountinfo[] =
	"22 27 0:21 / /proc rw,relatime - proc proc rw\n"
	"27 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
	"40 27 0:40 / /mnt/stackback rw,nosuid,nodev,relatime shared:20 master:3 - "
	"fuse.stackbackfs stackbackfs rw,user_id=0,group_id=0\n"
	"41 27 0:41 / /mnt/other\\040place rw,relatime - fuse.stackbackfs stackbackfs rw\n"
	"42 27 0:42 / /mnt/not-ours rw,relatime - fuse.sshfs host:/ rw\n"
	"43 27 0:43 / /mnt/back\\134slash rw - fuse.stackbackfs stackbackfs rw\n"
	/* Mounted over, then a stackbackfs on top: the last one decides. */
	"44 27 0:44 / /mnt/stacked rw - fuse.stackbackfs stackbackfs rw\n"
	"45 44 0:45 / /mnt/stacked rw - tmpfs tmpfs rw\n"
	"46 27 0:46 / /mnt/restacked rw - tmpfs tmpfs rw\n"
	"47 46 0:47 / /mnt/restacked rw - fuse.stackbackfs stackbackfs rw\n"
	/* Garbage lines must be skipped, not crash or match. */
	"\n"
	"48 27 0:48 / /mnt/short\n"
	"49 27 0:49 / /mnt/noseparator rw shared:1 fuse.stackbackfs x rw\n"
	"50 27 0:50 / /mnt/nothing-after-dash rw -\n";

static bool has(const char *mp)
{
	return sb_mountinfo_has_stackbackfs(sample_mountinfo, strlen(sample_mountinfo), mp);
}

static void test_mountinfo_matches(void **state)
{
	(void)state;
	assert_true(has("/mnt/stackback"));
	assert_true(has("/mnt/other place"));
	assert_true(has("/mnt/back\\slash"));
	assert_true(has("/mnt/restacked"));
	assert_false(has("/mnt/stacked"));
	assert_false(has("/mnt/not-ours"));
	assert_false(has("/mnt/other\\040place"));
	assert_false(has("/mnt/stackback/"));
	assert_false(has("/mnt/stack"));
	assert_false(has("/proc"));
	assert_false(has("/mnt/short"));
	assert_false(has("/mnt/noseparator"));
	assert_false(has("/mnt/nothing-after-dash"));
}

static void test_mountinfo_garbage(void **state)
{
	(void)state;
	static const char *const junk[] = {
		"",
		"\n\n\n",
		"- - - - - - - - -",
		"1 2 3 4 /x - fuse.stackbackfs",
		"1 2 3 4 /x 6 - fuse.stackbackfs",
		"1 2 3 4 /x 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20",
		"\\\\\\\\ \\0 \\777 \\1",
	};
	for (size_t i = 0; i < SB_ARRAY_SIZE(junk); i++)
		assert_false(sb_mountinfo_has_stackbackfs(junk[i], strlen(junk[i]), "/x"));
	/* The minimal well-formed line does match: the parser is not just saying no. */
	const char *ok = "1 2 3 4 /x 6 - fuse.stackbackfs src opts";
	assert_true(sb_mountinfo_has_stackbackfs(ok, strlen(ok), "/x"));
	/* Text without a final newline, and with embedded NULs (len counts past them). */
	const char nul[] = "1 2 3 4 /x 6 - fuse.stackbackfs\0 src\n1 2 3 4 /y 6 - fuse.stackbackfs s o";
	assert_false(sb_mountinfo_has_stackbackfs(nul, sizeof(nul) - 1, "/x"));
	assert_true(sb_mountinfo_has_stackbackfs(nul, sizeof(nul) - 1, "/y"));

	/* Random bytes never crash it. */
	srand(42);
	char buf[512];
	for (int round = 0; round < 2000; round++) {
		size_t len = (size_t)(rand() % (int)sizeof(buf));
		for (size_t i = 0; i < len; i++) {
			static const char alphabet[] = " -\\\n0123/fuse.stackbackfsx\t";
			buf[i] = round % 2 ? (char)(rand() % 256) : alphabet[rand() % (int)(sizeof(alphabet) - 1)];
		}
		sb_mountinfo_has_stackbackfs(buf, len, "/x");
	}
}

static void test_unescape(void **state)
{
	(void)state;
	char a[] = "/a\\040b\\011c\\012d\\134e";
	assert_string_equal(sb_mountinfo_unescape(a), "/a b\tc\nd\\e");
	char bad[] = "\\04 \\999 \\4 trailing\\";
	assert_string_equal(sb_mountinfo_unescape(bad), "\\04 \\999 \\4 trailing\\");
	char plain[] = "/mnt/stackback";
	assert_string_equal(sb_mountinfo_unescape(plain), "/mnt/stackback");
	char empty[] = "";
	assert_string_equal(sb_mountinfo_unescape(empty), "");
}

struct tree {
	char root[64];
	char *mountinfo;
};

static int tree_setup(void **state)
{
	struct tree *t = xcalloc(1, sizeof(*t));
	snprintf(t->root, sizeof(t->root), "/tmp/sbclientXXXXXX");
	if (!mkdtemp(t->root))
		return -1;
	t->mountinfo = xasprintf("%s/mountinfo", t->root);
	*state = t;
	return 0;
}

static int tree_teardown(void **state)
{
	struct tree *t = *state;
	sb_rm_rf(t->root);
	free(t->mountinfo);
	free(t);
	return 0;
}

static void write_mountinfo(struct tree *t, const char *escaped_mp, const char *fstype)
{
	cleanup_free char *text = xasprintf("%s27 1 8:1 / %s rw,relatime shared:5 - %s src rw\n",
					    sample_mountinfo, escaped_mp, fstype);
	assert_int_equal(sb_write_file_atomic(t->mountinfo, text, strlen(text), 0600), 0);
}

static void test_mount_state_from_file(void **state)
{
	struct tree *t = *state;
	/* A real directory with a space in its name, listed escaped. */
	cleanup_free char *mp = xasprintf("%s/my mount", t->root);
	assert_int_equal(mkdir(mp, 0700), 0);
	cleanup_free char *escaped = xasprintf("%s/my\\040mount", t->root);
	char *err = NULL;

	write_mountinfo(t, escaped, "fuse.stackbackfs");
	assert_int_equal(sb_mount_state_at(t->mountinfo, mp, &err), SB_MOUNT_MOUNTED);
	assert_null(err);
	/* Trailing slashes and a relative path name the same mount. */
	cleanup_free char *slashed = xasprintf("%s//", mp);
	assert_int_equal(sb_mount_state_at(t->mountinfo, slashed, &err), SB_MOUNT_MOUNTED);
	char cwd[PATH_MAX];
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(t->root), 0);
	assert_int_equal(sb_mount_state_at(t->mountinfo, "my mount", &err), SB_MOUNT_MOUNTED);
	assert_int_equal(sb_mount_state_at(t->mountinfo, "./my mount/", &err), SB_MOUNT_MOUNTED);
	assert_int_equal(chdir(cwd), 0);
	/* A symlinked parent resolves to the listed path. */
	cleanup_free char *link = xasprintf("%s/link", t->root);
	assert_int_equal(symlink(t->root, link), 0);
	cleanup_free char *via_link = xasprintf("%s/my mount", link);
	assert_int_equal(sb_mount_state_at(t->mountinfo, via_link, &err), SB_MOUNT_MOUNTED);

	write_mountinfo(t, escaped, "fuse.sshfs");
	assert_int_equal(sb_mount_state_at(t->mountinfo, mp, &err), SB_MOUNT_ABSENT);
	assert_null(err);
	/* Unescaped in the file: a different path, so not this mount. */
	write_mountinfo(t, mp, "fuse.stackbackfs");
	assert_int_equal(sb_mount_state_at(t->mountinfo, mp, &err), SB_MOUNT_ABSENT);

	/* A mountpoint that does not even exist is simply absent. */
	cleanup_free char *gone = xasprintf("%s/nope/deeper", t->root);
	assert_int_equal(sb_mount_state_at(t->mountinfo, gone, &err), SB_MOUNT_ABSENT);
	assert_null(err);
}

static void test_mount_state_unreadable_mountinfo(void **state)
{
	struct tree *t = *state;
	char *err = NULL;
	cleanup_free char *missing = xasprintf("%s/no-such-mountinfo", t->root);
	assert_int_equal(sb_mount_state_at(missing, t->root, &err), SB_MOUNT_STALE);
	assert_non_null(err);
	assert_non_null(strstr(err, "cannot tell whether stackbackfs is mounted"));
	free(err);
}

static void test_mount_state_real_proc(void **state)
{
	struct tree *t = *state;
	/* This process's own mountinfo: a plain temp directory is no stackbackfs. */
	char *err = NULL;
	assert_int_equal(sb_mount_state(t->root, &err), SB_MOUNT_ABSENT);
	assert_null(err);
	assert_int_equal(sb_mount_state("/", &err), SB_MOUNT_ABSENT);
}

static void test_progress_round_trip(void **state)
{
	(void)state;
	struct sb_job_request req = {.kind = SB_JOB_BACKUP};
	struct sb_job *job = sb_job_new(3, &req);
	job->progress = (struct sb_job_progress){
		.stack = "web",
		.phase = "backup",
		.stack_index = 2,
		.stack_count = 3,
		.percent = 45.5,
		.bytes_done = 126353408,
		.bytes_total = 314572800,
		.files_done = 10,
		.files_total = 1000,
		.eta_s = 12,
	};
	cleanup_free char *text = sb_job_progress_text(job);
	struct sb_job_progress p;
	assert_int_equal(sb_client_parse_progress(text, strlen(text), &p), 0);
	assert_string_equal(p.stack, "web");
	assert_string_equal(p.phase, "backup");
	assert_int_equal(p.stack_index, 2);
	assert_int_equal(p.stack_count, 3);
	assert_true(p.percent > 45.4 && p.percent < 45.6);
	assert_int_equal(p.bytes_done, 126353408);
	assert_int_equal(p.bytes_total, 314572800);
	assert_int_equal(p.files_done, 10);
	assert_int_equal(p.files_total, 1000);
	assert_true(p.eta_s > 11.9 && p.eta_s < 12.1);
	sb_job_free(job);

	/* Only the SPEC keys, unknown keys, CRLF, no final newline. */
	const char *minimal = "stack: db\r\nphase: stop\nfuture_key: whatever\npercent: 0";
	assert_int_equal(sb_client_parse_progress(minimal, strlen(minimal), &p), 0);
	assert_string_equal(p.stack, "db");
	assert_string_equal(p.phase, "stop");
	assert_int_equal(p.stack_index, 0);
	assert_true(p.eta_s < 0);
	/* Empty: nothing known yet. */
	assert_int_equal(sb_client_parse_progress("", 0, &p), 0);
	assert_string_equal(p.stack, "");
	assert_true(p.eta_s < 0);
	/* A value with a colon in it (a stack path would have none, but a phase may). */
	const char *colon = "phase: check: metadata\n";
	assert_int_equal(sb_client_parse_progress(colon, strlen(colon), &p), 0);
	assert_string_equal(p.phase, "check: metadata");
	/* An over-long stack name is cut, never overflows. */
	struct sb_buf b = {0};
	sb_buf_puts(&b, "stack: ");
	for (int i = 0; i < 1000; i++)
		sb_buf_puts(&b, "x");
	sb_buf_puts(&b, "\n");
	assert_int_equal(sb_client_parse_progress(b.data, b.len, &p), 0);
	assert_int_equal(strlen(p.stack), sizeof(p.stack) - 1);
	sb_buf_free(&b);
}

static void test_progress_garbage(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"percent: abc\n",
		"percent: 150\n",
		"percent: -1\n",
		"percent: nan\n",
		"percent:\n",
		"bytes_done: -5\n",
		"bytes_done: 12x\n",
		"bytes_total: 99999999999999999999999\n",
		"files_done: 1.5\n",
		"stack_index: -1\n",
		"stack_count: 99999999999\n",
		"eta_s: soon\n",
		"eta_s: nan\n",
		"eta_s: 1e300\n",
		"just a line without a colon\n",
	};
	struct sb_job_progress p;
	for (size_t i = 0; i < SB_ARRAY_SIZE(bad); i++) {
		if (sb_client_parse_progress(bad[i], strlen(bad[i]), &p) != -1)
			fail_msg("accepted garbage: %s", bad[i]);
	}
	const char nul[] = "stack: a\0b\n";
	assert_int_equal(sb_client_parse_progress(nul, sizeof(nul) - 1, &p), -1);

	srand(7);
	char buf[256];
	for (int round = 0; round < 5000; round++) {
		size_t len = (size_t)(rand() % (int)sizeof(buf));
		for (size_t i = 0; i < len; i++) {
			static const char alphabet[] = "stackphasepercentbytes_donetotaleta_s:0123456789.-\n ";
			buf[i] = round % 3 ? alphabet[rand() % (int)(sizeof(alphabet) - 1)] : (char)(rand() % 256);
		}
		sb_client_parse_progress(buf, len, &p);
	}
}

static void test_trigger_reply(void **state)
{
	(void)state;
	int id = 0;
	enum sb_job_state st;
	assert_int_equal(sb_client_parse_trigger_reply("job 12 queued\n", 14, &id, &st), 0);
	assert_int_equal(id, 12);
	assert_int_equal(st, SB_JOB_QUEUED);
	assert_int_equal(sb_client_parse_trigger_reply("job 7 failed", 12, &id, &st), 0);
	assert_int_equal(id, 7);
	assert_int_equal(st, SB_JOB_FAILED);

	static const char *const bad[] = {
		"", "\n", "job", "job 12", "job 12 queued extra", "job 0 queued", "job -1 queued",
		"job x queued", "job 12 sleeping", "error: empty backup trigger", "JOB 12 queued",
		"job 99999999999 queued",
	};
	for (size_t i = 0; i < SB_ARRAY_SIZE(bad); i++)
		assert_int_equal(sb_client_parse_trigger_reply(bad[i], strlen(bad[i]), &id, &st), -1);
	const char nul[] = "job 1\0 queued";
	assert_int_equal(sb_client_parse_trigger_reply(nul, sizeof(nul) - 1, &id, &st), -1);
}

static void round_trip(struct sb_job_request *r)
{
	cleanup_free char *payload = sb_client_trigger_payload(r);
	assert_non_null(payload);
	struct sb_job_request back = {0};
	char *err = NULL;
	if (sb_job_request_parse(r->kind, payload, strlen(payload), &back, &err) < 0)
		fail_msg("'%s' not accepted: %s", payload, err);
	assert_int_equal(back.kind, r->kind);
	assert_int_equal(back.stacks.n, r->stacks.n);
	for (size_t i = 0; i < r->stacks.n; i++)
		assert_string_equal(back.stacks.v[i], r->stacks.v[i]);
	assert_int_equal(back.dry_run, r->dry_run);
	assert_int_equal(back.force, r->force);
	assert_int_equal(back.read_data, r->read_data);
	sb_job_request_free(&back);
	sb_job_request_free(r);
}

static void test_trigger_payload(void **state)
{
	(void)state;
	struct sb_job_request r = {.kind = SB_JOB_BACKUP};
	round_trip(&r);
	r = (struct sb_job_request){.kind = SB_JOB_BACKUP, .dry_run = true};
	sb_strv_push(&r.stacks, "web");
	sb_strv_push(&r.stacks, "db.2");
	round_trip(&r);
	r = (struct sb_job_request){.kind = SB_JOB_SYNC};
	round_trip(&r);
	r = (struct sb_job_request){.kind = SB_JOB_SYNC, .dry_run = true};
	round_trip(&r);
	r = (struct sb_job_request){.kind = SB_JOB_RESTORE, .force = true, .dry_run = true};
	round_trip(&r);
	r = (struct sb_job_request){.kind = SB_JOB_CHECK, .read_data = true};
	round_trip(&r);
	r = (struct sb_job_request){.kind = SB_JOB_FORGET};
	sb_strv_push(&r.stacks, "web");
	round_trip(&r);

	/* What no trigger can carry runs in process instead. */
	r = (struct sb_job_request){.kind = SB_JOB_RESTORE, .target = xstrdup("/tmp/x")};
	assert_null(sb_client_trigger_payload(&r));
	sb_job_request_free(&r);
	/* restore-stack goes to stacks/NAME/restore: the payload still parses back whole. */
	r = (struct sb_job_request){.kind = SB_JOB_RESTORE_STACK, .snapshot = xstrdup("cloud:latest"),
				    .dry_run = true};
	sb_strv_push(&r.stacks, "web");
	round_trip(&r);
	r = (struct sb_job_request){.kind = SB_JOB_RESTORE_STACK};
	sb_strv_push(&r.stacks, "web");
	assert_null(sb_client_trigger_payload(&r));
	sb_job_request_free(&r);
}

static void test_status_parse(void **state)
{
	(void)state;
	bool busy = true;
	struct sb_client_last last;
	const char *idle = "{\"state\":\"idle\",\"job\":null,\"queue\":0,"
			   "\"last\":{\"id\":4,\"kind\":\"backup\",\"state\":\"failed\",\"finished\":null},"
			   "\"cloud\":{\"status\":\"idle\",\"last_sync\":null}}";
	assert_int_equal(sb_client_parse_status(idle, strlen(idle), &busy, &last), 0);
	assert_false(busy);
	assert_true(last.any);
	assert_int_equal(last.id, 4);
	assert_int_equal(last.kind, SB_JOB_BACKUP);
	assert_int_equal(last.state, SB_JOB_FAILED);

	const char *never = "{\"state\":\"idle\",\"job\":null,\"queue\":0,\"last\":null}";
	assert_int_equal(sb_client_parse_status(never, strlen(never), &busy, &last), 0);
	assert_false(busy);
	assert_false(last.any);

	const char *running = "{\"state\":\"running\",\"job\":{\"id\":5,\"kind\":\"sync\"},\"queue\":0,\"last\":null}";
	assert_int_equal(sb_client_parse_status(running, strlen(running), &busy, &last), 0);
	assert_true(busy);
	/* Between two jobs the daemon may be idle with work queued: still busy. */
	const char *queued = "{\"state\":\"idle\",\"job\":null,\"queue\":2,\"last\":null}";
	assert_int_equal(sb_client_parse_status(queued, strlen(queued), &busy, &last), 0);
	assert_true(busy);

	static const char *const bad[] = {
		"",
		"not json",
		"[]",
		"{}",
		"{\"state\":1}",
		"{\"state\":\"idle\",\"queue\":\"two\"}",
		"{\"state\":\"idle\",\"last\":{\"id\":\"4\",\"kind\":\"backup\",\"state\":\"ok\"}}",
		"{\"state\":\"idle\",\"last\":{\"id\":4,\"kind\":\"bake\",\"state\":\"ok\"}}",
		"{\"state\":\"idle\",\"last\":{\"id\":4,\"kind\":\"backup\",\"state\":\"fine\"}}",
		"{\"state\":\"idle\",\"last\":{\"id\":-4,\"kind\":\"backup\",\"state\":\"ok\"}}",
		"{\"state\":\"idle\",\"last\":{\"kind\":\"backup\",\"state\":\"ok\"}}",
		"{\"state\":\"idle\"",
		"{\"state\":\"idle\"} trailing",
	};
	for (size_t i = 0; i < SB_ARRAY_SIZE(bad); i++) {
		if (sb_client_parse_status(bad[i], strlen(bad[i]), &busy, &last) != -1)
			fail_msg("accepted garbage: %s", bad[i]);
	}
}

static void test_job_from_report_round_trip(void **state)
{
	(void)state;
	struct sb_job_request req = {.kind = SB_JOB_BACKUP, .dry_run = false};
	struct sb_job *job = sb_job_new(9, &req);
	job->state = SB_JOB_FAILED;
	job->summary = xstrdup("1 of 2 stacks backed up");
	job->reports = xcalloc(2, sizeof(*job->reports));
	job->n_reports = 2;
	job->reports[0] = (struct sb_stack_report){
		.name = xstrdup("web"),
		.result = SB_STACK_OK,
		.snapshot_id = xstrdup("0123456789abcdef0123"),
		.was_running = true,
		.restarted = true,
		.duration_s = 3.5,
		.downtime_s = 2.25,
		.backup_s = 1.0,
		.mode = xstrdup("btrfs"),
		.bytes_added = 1048576,
		.files_new = 3,
	};
	job->reports[1] = (struct sb_stack_report){
		.name = xstrdup("db"),
		.result = SB_STACK_FAILED,
		.error = xstrdup("backup of stack 'db' failed: restic exited 1: repository is locked"),
	};
	cleanup_free char *json = sb_job_report_json(job);
	cleanup_free char *want = sb_job_report_text(job);

	char *err = NULL;
	struct sb_job *back = sb_client_job_from_report(json, strlen(json), &err);
	assert_non_null(back);
	assert_null(err);
	assert_int_equal(back->id, 9);
	assert_int_equal(back->state, SB_JOB_FAILED);
	assert_int_equal(back->n_reports, 2);
	assert_true(back->reports[0].restarted);
	assert_int_equal(back->reports[0].bytes_added, 1048576);
	cleanup_free char *got = sb_job_report_text(back);
	assert_string_equal(got, want);
	assert_non_null(strstr(got, "mode btrfs, downtime 2.2s, backup 1.0s"));
	sb_job_free(back);
	sb_job_free(job);
}

static void test_job_from_report_garbage(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"",
		"null",
		"[]",
		"{}",
		"{\"id\":1,\"kind\":\"backup\"}",
		"{\"id\":1,\"kind\":\"bake\",\"state\":\"ok\"}",
		"{\"id\":\"1\",\"kind\":\"backup\",\"state\":\"ok\"}",
		"{\"id\":-1,\"kind\":\"backup\",\"state\":\"ok\"}",
		"{\"id\":1,\"kind\":\"backup\",\"state\":\"ok\",\"stacks\":{}}",
		"{\"id\":1,\"kind\":\"backup\",\"state\":\"ok\",\"stacks\":[1]}",
		"{\"id\":1,\"kind\":\"backup\",\"state\":\"ok\",\"stacks\":[{\"stack\":\"a\"}]}",
		"{\"id\":1,\"kind\":\"backup\",\"state\":\"ok\",\"stacks\":[{\"stack\":\"a\",\"result\":\"meh\"}]}",
		"{\"id\":1,\"kind\":\"backup\",\"state\":\"ok\",\"stacks\":[{\"stack\":\"a\",\"result\":\"ok\"},",
	};
	for (size_t i = 0; i < SB_ARRAY_SIZE(bad); i++) {
		char *err = NULL;
		struct sb_job *job = sb_client_job_from_report(bad[i], strlen(bad[i]), &err);
		if (job)
			fail_msg("accepted garbage: %s", bad[i]);
		assert_non_null(err);
		free(err);
	}
	/* Wrong types for optional members read as absent, not as a crash. */
	const char *odd = "{\"id\":2,\"kind\":\"check\",\"state\":\"ok\",\"error\":5,\"summary\":[],"
			  "\"started_at\":\"x\",\"stacks\":[{\"stack\":\"a\",\"result\":\"ok\",\"bytes_added\":\"1\"}]}";
	char *err = NULL;
	struct sb_job *job = sb_client_job_from_report(odd, strlen(odd), &err);
	assert_non_null(job);
	assert_null(job->error);
	assert_null(job->summary);
	assert_int_equal(job->reports[0].bytes_added, 0);
	sb_job_free(job);

	/* Durations no clock gives read as absent, so rendering stays defined. */
	const char *huge = "{\"id\":3,\"kind\":\"backup\",\"state\":\"ok\",\"stacks\":[{\"stack\":\"a\","
			   "\"result\":\"ok\",\"snapshot_id\":\"abcdef0123\",\"duration_s\":1e300,\"downtime_s\":-1e300}]}";
	job = sb_client_job_from_report(huge, strlen(huge), &err);
	assert_non_null(job);
	assert_true(job->reports[0].duration_s == 0);
	assert_true(job->reports[0].downtime_s == 0);
	cleanup_free char *text = sb_job_report_text(job);
	assert_non_null(strstr(text, "downtime 0.0s"));
	sb_job_free(job);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mountinfo_matches),
		cmocka_unit_test(test_mountinfo_garbage),
		cmocka_unit_test(test_unescape),
		cmocka_unit_test_setup_teardown(test_mount_state_from_file, tree_setup, tree_teardown),
		cmocka_unit_test_setup_teardown(test_mount_state_unreadable_mountinfo, tree_setup,
						tree_teardown),
		cmocka_unit_test_setup_teardown(test_mount_state_real_proc, tree_setup, tree_teardown),
		cmocka_unit_test(test_progress_round_trip),
		cmocka_unit_test(test_progress_garbage),
		cmocka_unit_test(test_trigger_reply),
		cmocka_unit_test(test_trigger_payload),
		cmocka_unit_test(test_status_parse),
		cmocka_unit_test(test_job_from_report_round_trip),
		cmocka_unit_test(test_job_from_report_garbage),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
