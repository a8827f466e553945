/*
 * The client side of the control filesystem: what `stackback` and
 * `stackback-tui` do to drive a running stackbackfs. Everything goes
 * through plain files under MOUNTPOINT, exactly as a user with `cat`
 * and `echo` would, so the CLI exercises the same contract (SPEC §7).
 */
#include "stackback/client.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "stackback/util.h"

/* A daemon that takes longer than this to answer a stat is hung. */
#define STAT_TIMEOUT_S 5.0
#define CONTROL_FILE_MAX (4u << 20)

char *sb_mountinfo_unescape(char *s)
{
	char *w = s;
	for (const char *r = s; *r;) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
		    r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
			r += 4;
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
	return s;
}

/* Splits one mountinfo line into its space-separated fields (in place). */
static size_t split_fields(char *line, char **fields, size_t max)
{
	size_t n = 0;
	char *save = NULL;
	for (char *tok = strtok_r(line, " ", &save); tok && n < max; tok = strtok_r(NULL, " ", &save))
		fields[n++] = tok;
	return n;
}

bool sb_mountinfo_has_stackbackfs(const char *text, size_t len, const char *mountpoint)
{
	/*
	 * Field 5 is the mount point; after the optional fields comes "-",
	 * then the filesystem type. Later lines are mounted on top of
	 * earlier ones, so the last mount at the path decides.
	 */
	bool found = false;
	const char *end = text + len;
	for (const char *p = text; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t linelen = nl ? (size_t)(nl - p) : (size_t)(end - p);
		cleanup_free char *line = xstrndup(p, linelen);
		p += linelen + 1;

		char *f[64];
		size_t n = split_fields(line, f, SB_ARRAY_SIZE(f));
		if (n < 7)
			continue;
		size_t sep = 6;
		while (sep < n && strcmp(f[sep], "-") != 0)
			sep++;
		/* After "-": type, source and superblock options. */
		if (sep + 3 >= n)
			continue;
		if (strcmp(sb_mountinfo_unescape(f[4]), mountpoint) != 0)
			continue;
		found = strcmp(f[sep + 1], "fuse.stackbackfs") == 0;
	}
	return found;
}

/*
 * The mountpoint as the kernel lists it: absolute, without trailing
 * slashes, its parent resolved. The mountpoint itself is not resolved:
 * resolving means stat-ing it, which fails or hangs on a dead mount.
 */
static char *canonical_mountpoint(const char *mountpoint)
{
	cleanup_free char *abs = NULL;
	if (mountpoint[0] == '/') {
		abs = xstrdup(mountpoint);
	} else {
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof(cwd)))
			return xstrdup(mountpoint);
		abs = xasprintf("%s/%s", cwd, mountpoint);
	}
	size_t l = strlen(abs);
	while (l > 1 && abs[l - 1] == '/')
		abs[--l] = '\0';
	char *slash = strrchr(abs, '/');
	const char *base = slash + 1;
	if (strcmp(base, ".") == 0 || strcmp(base, "..") == 0 || *base == '\0') {
		char *full = realpath(abs, NULL);
		return full ? full : xstrdup(abs);
	}
	cleanup_free char *parent = slash == abs ? xstrdup("/") : xstrndup(abs, (size_t)(slash - abs));
	cleanup_free char *rparent = realpath(parent, NULL);
	if (!rparent)
		return xstrdup(abs);
	return strcmp(rparent, "/") == 0 ? xasprintf("/%s", base) : xasprintf("%s/%s", rparent, base);
}

/*
 * statfs() in a child process, so that a hung daemon costs a timeout,
 * not a hang. A thread would not do: a thread stuck in a FUSE request
 * keeps the whole process from exiting. The child only calls statfs()
 * and _exit() (async-signal-safe after fork in a threaded process); if
 * it does not answer in time it is killed and left to init. statfs, not
 * stat: the kernel keeps the mount's attributes for a second, so a stat
 * can succeed on a mount whose daemon just died; statfs always asks.
 */
static int statfs_with_timeout(const char *path, double timeout_s)
{
	pid_t pid = fork();
	if (pid < 0) {
		struct statfs sfs;
		return statfs(path, &sfs) < 0 ? errno : 0;
	}
	if (pid == 0) {
		struct statfs sfs;
		_exit(statfs(path, &sfs) < 0 ? (errno & 0xff) : 0);
	}
	int pidfd = (int)pidfd_open(pid, 0);
	double deadline = sb_now_monotonic() + timeout_s;
	for (;;) {
		int wstatus;
		pid_t w = waitpid(pid, &wstatus, WNOHANG);
		if (w == pid) {
			if (pidfd >= 0)
				close(pidfd);
			return WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : EIO;
		}
		if (w < 0 && errno != EINTR) {
			/* Reaped elsewhere (SIGCHLD ignored): it answered, that is all we know. */
			if (pidfd >= 0)
				close(pidfd);
			return 0;
		}
		double left = deadline - sb_now_monotonic();
		if (left <= 0)
			break;
		if (pidfd >= 0) {
			struct pollfd pfd = {.fd = pidfd, .events = POLLIN};
			poll(&pfd, 1, (int)(left * 1000) + 1);
		} else {
			struct timespec ts = {.tv_nsec = 10 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, WNOHANG);
	if (pidfd >= 0)
		close(pidfd);
	return ETIMEDOUT;
}

enum sb_mount_state sb_mount_state_at(const char *mountinfo_path, const char *mountpoint,
				      char **err)
{
	if (!mountinfo_path)
		mountinfo_path = "/proc/self/mountinfo";
	cleanup_free char *mp = canonical_mountpoint(mountpoint);
	cleanup_free char *text = NULL;
	size_t len = 0;
	int rc = sb_read_file(mountinfo_path, 64u << 20, &text, &len);
	if (rc < 0) {
		*err = xasprintf("cannot tell whether stackbackfs is mounted at %s: reading %s: %s",
				 mp, mountinfo_path, strerror(-rc));
		return SB_MOUNT_STALE;
	}
	bool listed = sb_mountinfo_has_stackbackfs(text, len, mp);

	int e = statfs_with_timeout(mp, STAT_TIMEOUT_S);
	if (e == ENOTCONN) {
		*err = xasprintf("the control filesystem at %s is stale (its daemon is gone): "
				 "unmount it with 'fusermount3 -u %s'",
				 mp, mp);
		return SB_MOUNT_STALE;
	}
	if (e == ETIMEDOUT && listed) {
		*err = xasprintf("the control filesystem at %s does not answer (its daemon hangs): "
				 "stop stackbackfs, then 'fusermount3 -u %s'",
				 mp, mp);
		return SB_MOUNT_STALE;
	}
	return listed ? SB_MOUNT_MOUNTED : SB_MOUNT_ABSENT;
}

enum sb_mount_state sb_mount_state(const char *mountpoint, char **err)
{
	return sb_mount_state_at(NULL, mountpoint, err);
}

static int parse_u64(const char *s, uint64_t *out)
{
	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

static int parse_double(const char *s, double *out)
{
	if (!*s)
		return -1;
	errno = 0;
	char *end;
	double v = strtod(s, &end);
	if (errno || *end || v != v)
		return -1;
	*out = v;
	return 0;
}

static int parse_int(const char *s, int *out)
{
	long v;
	if (sb_parse_long(s, 0, INT_MAX, &v) < 0)
		return -1;
	*out = (int)v;
	return 0;
}

static void copy_field(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src);
}

int sb_client_parse_progress(const char *text, size_t len, struct sb_job_progress *p)
{
	memset(p, 0, sizeof(*p));
	p->eta_s = -1;
	const char *end = text + len;
	for (const char *s = text; s < end;) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		size_t linelen = nl ? (size_t)(nl - s) : (size_t)(end - s);
		cleanup_free char *line = xstrndup(s, linelen);
		s += linelen + 1;
		if (strlen(line) != linelen)
			return -1; /* an embedded NUL: not a progress file */
		char *colon = strchr(line, ':');
		if (!colon) {
			if (*sb_strstrip(line))
				return -1;
			continue;
		}
		*colon = '\0';
		const char *key = sb_strstrip(line);
		const char *val = sb_strstrip(colon + 1);
		int rc = 0;
		if (strcmp(key, "stack") == 0)
			copy_field(p->stack, sizeof(p->stack), val);
		else if (strcmp(key, "phase") == 0)
			copy_field(p->phase, sizeof(p->phase), val);
		else if (strcmp(key, "stack_index") == 0)
			rc = parse_int(val, &p->stack_index);
		else if (strcmp(key, "stack_count") == 0)
			rc = parse_int(val, &p->stack_count);
		else if (strcmp(key, "percent") == 0)
			rc = parse_double(val, &p->percent) < 0 || p->percent < 0 || p->percent > 100 ? -1 : 0;
		else if (strcmp(key, "bytes_done") == 0)
			rc = parse_u64(val, &p->bytes_done);
		else if (strcmp(key, "bytes_total") == 0)
			rc = parse_u64(val, &p->bytes_total);
		else if (strcmp(key, "files_done") == 0)
			rc = parse_u64(val, &p->files_done);
		else if (strcmp(key, "files_total") == 0)
			rc = parse_u64(val, &p->files_total);
		else if (strcmp(key, "eta_s") == 0)
			/* Negative means unknown; more than ~30 years is not an estimate. */
			rc = parse_double(val, &p->eta_s) < 0 || p->eta_s > 1e9 ? -1 : 0;
		if (rc < 0)
			return -1;
	}
	return 0;
}

int sb_client_parse_trigger_reply(const char *text, size_t len, int *id, enum sb_job_state *state)
{
	cleanup_free char *copy = xstrndup(text, len);
	if (strlen(copy) != len)
		return -1;
	char *save = NULL;
	const char *w0 = strtok_r(copy, " \t\n", &save);
	const char *w1 = strtok_r(NULL, " \t\n", &save);
	const char *w2 = strtok_r(NULL, " \t\n", &save);
	const char *w3 = strtok_r(NULL, " \t\n", &save);
	long v;
	if (!w0 || !w1 || !w2 || w3 || strcmp(w0, "job") != 0 || sb_parse_long(w1, 1, INT_MAX, &v) < 0)
		return -1;
	if (sb_job_state_parse(w2, state) < 0)
		return -1;
	*id = (int)v;
	return 0;
}

char *sb_client_trigger_payload(const struct sb_job_request *r)
{
	if (r->target)
		return NULL;
	struct sb_buf b = {0};
	if (r->kind == SB_JOB_RESTORE_STACK) {
		if (r->stacks.n != 1 || !r->snapshot)
			return NULL;
		sb_buf_printf(&b, "%s %s%s", r->stacks.v[0], r->snapshot, r->dry_run ? " dry-run" : "");
		return sb_buf_steal(&b);
	}
	for (size_t i = 0; i < r->stacks.n; i++)
		sb_buf_printf(&b, "%s%s", i ? " " : "", r->stacks.v[i]);
	if (r->stacks.n == 0)
		sb_buf_puts(&b, "1");
	if (r->force)
		sb_buf_puts(&b, " force");
	if (r->read_data)
		sb_buf_puts(&b, " read-data");
	if (r->dry_run)
		sb_buf_puts(&b, " dry-run");
	return sb_buf_steal(&b);
}

bool sb_client_has_trigger(const char *mountpoint, enum sb_job_kind kind)
{
	cleanup_free char *path = kind == SB_JOB_RESTORE_STACK
		? xasprintf("%s/stacks", mountpoint)
		: xasprintf("%s/trigger/%s", mountpoint, sb_job_kind_name(kind));
	struct stat st;
	return stat(path, &st) == 0 && (kind == SB_JOB_RESTORE_STACK ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode));
}

/* Reads an open control file from offset 0 (the trigger's read-back). */
static char *pread_all(int fd)
{
	struct sb_buf b = {0};
	char chunk[4096];
	for (;;) {
		ssize_t n = pread(fd, chunk, sizeof(chunk), (off_t)b.len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || b.len + (size_t)n > CONTROL_FILE_MAX)
			break;
		sb_buf_append(&b, chunk, (size_t)n);
	}
	if (!b.data)
		return xstrdup("");
	return sb_buf_steal(&b);
}

/* The last non-empty line of text, stripped (caller frees), or NULL. */
static char *last_line(const char *text)
{
	cleanup_free char *copy = xstrdup(text);
	char *save = NULL;
	char *last = NULL;
	for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
		if (*sb_strstrip(l))
			last = l;
	return last ? xstrdup(last) : NULL;
}

/* The reason in a trigger's read-back "error: REASON", or NULL. */
static char *reason_in(const char *text)
{
	cleanup_free char *line = last_line(text);
	if (!line || !sb_str_has_prefix(line, "error: "))
		return NULL;
	return xstrdup(line + strlen("error: "));
}

/*
 * Why a trigger write was refused: the trigger's read-back on the same
 * file, else on a fresh open, else the daemon's last log line.
 */
static char *refusal_reason(int fd, const char *path, const char *mountpoint)
{
	cleanup_free char *same = pread_all(fd);
	char *why = reason_in(same);
	if (why)
		return why;
	cleanup_free char *fresh = NULL;
	if (sb_read_file(path, CONTROL_FILE_MAX, &fresh, NULL) == 0 && (why = reason_in(fresh)))
		return why;

	cleanup_free char *logpath = xasprintf("%s/log", mountpoint);
	cleanup_free char *log = NULL;
	if (sb_read_file(logpath, CONTROL_FILE_MAX, &log, NULL) == 0 && (why = last_line(log)))
		return why;
	return xstrdup("no reason given (see the daemon's log)");
}

int sb_client_trigger(const char *mountpoint, enum sb_job_kind kind, const char *payload,
		      int *job_id, char **err)
{
	const char *name = sb_job_kind_name(kind);
	cleanup_free char *path = NULL;
	if (kind == SB_JOB_RESTORE_STACK) {
		/* "NAME SNAPSHOT [dry-run]": the stack's own restore file takes the rest. */
		size_t name_len = strcspn(payload, " ");
		if (payload[name_len] != ' ') {
			*err = xasprintf("restore-stack needs a stack name and a snapshot, got '%s'", payload);
			return -1;
		}
		path = xasprintf("%s/stacks/%.*s/restore", mountpoint, (int)name_len, payload);
		payload += name_len + 1;
	} else {
		path = xasprintf("%s/trigger/%s", mountpoint, name);
	}
	cleanup_close int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		*err = xasprintf("cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	size_t len = strlen(payload);
	ssize_t n;
	do
		n = write(fd, payload, len);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		int e = errno;
		if (e == EINVAL) {
			cleanup_free char *why = refusal_reason(fd, path, mountpoint);
			*err = xasprintf("the daemon refused '%s' on trigger/%s: %s", payload, name, why);
		} else if (e == EBUSY) {
			*err = xasprintf("the daemon's job queue is full, %s not queued "
					 "(run 'stackback wait' and try again)",
					 name);
		} else {
			*err = xasprintf("writing %s failed: %s", path, strerror(e));
		}
		return -1;
	}
	if ((size_t)n != len) {
		*err = xasprintf("writing %s failed: short write (%zd of %zu bytes)", path, n, len);
		return -1;
	}
	cleanup_free char *reply = pread_all(fd);
	enum sb_job_state st;
	if (sb_client_parse_trigger_reply(reply, strlen(reply), job_id, &st) < 0) {
		cleanup_free char *shown = last_line(reply);
		*err = xasprintf("trigger/%s accepted the request but did not say which job: '%s'", name,
				 shown ? shown : "");
		return -1;
	}
	return 0;
}

int sb_client_cancel(const char *mountpoint, int id, char **err)
{
	cleanup_free char *path = xasprintf("%s/jobs/%d/cancel", mountpoint, id);
	cleanup_close int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		*err = errno == ENOENT ? xasprintf("job %d is unknown to the daemon at %s", id, mountpoint)
				       : xasprintf("cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	ssize_t n;
	do
		n = write(fd, "1", 1);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		int e = errno;
		*err = e == EINVAL ? refusal_reason(fd, path, mountpoint)
				   : xasprintf("writing %s failed: %s", path, strerror(e));
		return -1;
	}
	return 0;
}

/* Reads MOUNTPOINT/jobs/ID/FILE; returns 0 or -errno. */
static int read_job_file(const char *mountpoint, int id, const char *file, char **out, size_t *len)
{
	cleanup_free char *path = xasprintf("%s/jobs/%d/%s", mountpoint, id, file);
	return sb_read_file(path, CONTROL_FILE_MAX, out, len);
}

static char *job_file_error(const char *mountpoint, int id, const char *file, int rc)
{
	if (rc == -ENOENT)
		return xasprintf("job %d is unknown to the daemon at %s", id, mountpoint);
	if (rc == -ENOTCONN)
		return xasprintf("the daemon at %s went away while job %d ran: "
				 "unmount it with 'fusermount3 -u %s'",
				 mountpoint, id, mountpoint);
	return xasprintf("reading %s/jobs/%d/%s failed: %s", mountpoint, id, file, strerror(-rc));
}

static void sleep_s(double s)
{
	struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Hands the lines of log past *seen to on_log; a log that shrank (rotated) starts over. */
static void deliver_log(const struct sb_client_follow_opts *o, const char *log, size_t len,
			size_t *seen)
{
	if (len < *seen)
		*seen = 0;
	const char *p = log + *seen;
	const char *end = log + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			break; /* a partial line: wait for the rest */
		cleanup_free char *line = xstrndup(p, (size_t)(nl - p));
		o->on_log(o->userdata, line);
		p = nl + 1;
	}
	*seen = (size_t)(p - log);
}

int sb_client_follow(const char *mountpoint, int id, const struct sb_client_follow_opts *o,
		     enum sb_job_state *final, char **err)
{
	double poll = o->poll_s > 0 ? o->poll_s : 0.2;
	double start = sb_now_monotonic();
	struct sb_job_progress last = {0};
	bool have_last = false;
	enum sb_job_state last_state = SB_JOB_QUEUED;
	size_t log_seen = 0;

	for (;;) {
		cleanup_free char *st_text = NULL;
		int rc = read_job_file(mountpoint, id, "state", &st_text, NULL);
		if (rc < 0) {
			*err = job_file_error(mountpoint, id, "state", rc);
			return -1;
		}
		enum sb_job_state st;
		if (sb_job_state_parse(sb_strstrip(st_text), &st) < 0) {
			*err = xasprintf("job %d has an unknown state '%s'", id, st_text);
			return -1;
		}

		cleanup_free char *pr_text = NULL;
		size_t pr_len = 0;
		struct sb_job_progress p;
		if (read_job_file(mountpoint, id, "progress", &pr_text, &pr_len) < 0 ||
		    sb_client_parse_progress(pr_text, pr_len, &p) < 0) {
			/* Progress is advisory: keep the last good one. */
			p = last;
		}

		if (o->on_log) {
			cleanup_free char *log = NULL;
			size_t log_len = 0;
			if (read_job_file(mountpoint, id, "log", &log, &log_len) == 0)
				deliver_log(o, log, log_len, &log_seen);
		}

		if (o->on_progress &&
		    (!have_last || st != last_state || memcmp(&p, &last, sizeof(p)) != 0))
			o->on_progress(o->userdata, id, st, &p);
		last = p;
		last_state = st;
		have_last = true;

		if (sb_job_state_final(st)) {
			*final = st;
			return 0;
		}
		if (o->stop && atomic_load(o->stop))
			return 1;
		if (o->timeout_s > 0 && sb_now_monotonic() - start >= o->timeout_s)
			return 1;
		sleep_s(poll);
	}
}

char *sb_client_report(const char *mountpoint, int id, char **err)
{
	char *text = NULL;
	int rc = read_job_file(mountpoint, id, "report", &text, NULL);
	if (rc < 0) {
		*err = job_file_error(mountpoint, id, "report", rc);
		return NULL;
	}
	return text;
}

/* Borrowed accessors: a missing or null member reads as empty. */
static const char *get_str(struct json_object *o, const char *key)
{
	struct json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* Times and durations: a value no clock gives (beyond ~30,000 years) reads as absent. */
static double get_num(struct json_object *o, const char *key)
{
	struct json_object *v;
	if (!json_object_object_get_ex(o, key, &v) ||
	    !(json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int)))
		return 0;
	double d = json_object_get_double(v);
	return d >= -1e12 && d <= 1e12 ? d : 0;
}

static uint64_t get_u64(struct json_object *o, const char *key)
{
	struct json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
		return 0;
	return json_object_get_uint64(v);
}

static bool get_bool(struct json_object *o, const char *key)
{
	struct json_object *v;
	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_boolean) &&
	       json_object_get_boolean(v);
}

static int stack_result_parse(const char *s, enum sb_stack_result *out)
{
	static const enum sb_stack_result all[] = {SB_STACK_OK, SB_STACK_FAILED, SB_STACK_SKIPPED,
						   SB_STACK_DRY_RUN};
	for (size_t i = 0; s && i < SB_ARRAY_SIZE(all); i++) {
		if (strcmp(sb_stack_result_name(all[i]), s) == 0) {
			*out = all[i];
			return 0;
		}
	}
	return -1;
}

static struct json_object *parse_json(const char *text, size_t len)
{
	if (len > INT_MAX)
		return NULL;
	struct json_tokener *tok = json_tokener_new();
	struct json_object *root = json_tokener_parse_ex(tok, text, (int)len);
	bool complete = json_tokener_get_error(tok) == json_tokener_success;
	/* One document and nothing after it but whitespace. */
	for (size_t i = complete ? json_tokener_get_parse_end(tok) : len; i < len; i++)
		if (!memchr(" \t\r\n", text[i], 4))
			complete = false;
	json_tokener_free(tok);
	if (!complete) {
		json_object_put(root);
		return NULL;
	}
	return root;
}

struct sb_job *sb_client_job_from_report(const char *json, size_t len, char **err)
{
	struct json_object *root = parse_json(json, len);
	struct json_object *id, *stacks = NULL;
	enum sb_job_kind kind;
	enum sb_job_state state;
	if (!root || !json_object_is_type(root, json_type_object) ||
	    !json_object_object_get_ex(root, "id", &id) || !json_object_is_type(id, json_type_int) ||
	    json_object_get_int64(id) < 0 || json_object_get_int64(id) > INT_MAX ||
	    sb_job_kind_parse(get_str(root, "kind") ? get_str(root, "kind") : "", &kind) < 0 ||
	    sb_job_state_parse(get_str(root, "state") ? get_str(root, "state") : "", &state) < 0 ||
	    (json_object_object_get_ex(root, "stacks", &stacks) &&
	     !json_object_is_type(stacks, json_type_array))) {
		*err = xstrdup("the job report is not the JSON object stackback writes");
		json_object_put(root);
		return NULL;
	}
	struct sb_job_request req = {.kind = kind, .dry_run = get_bool(root, "dry_run")};
	struct sb_job *job = sb_job_new((int)json_object_get_int64(id), &req);
	job->state = state;
	job->queued_at = get_num(root, "queued_at");
	job->started_at = get_num(root, "started_at");
	job->finished_at = get_num(root, "finished_at");
	job->error = xstrdup(get_str(root, "error"));
	job->summary = xstrdup(get_str(root, "summary"));
	job->transfer_bytes = get_u64(root, "transfer_bytes");
	job->transfer_files = get_u64(root, "transfer_files");
	job->transfer_s = get_num(root, "transfer_s");

	size_t n = stacks ? json_object_array_length(stacks) : 0;
	job->reports = n ? xcalloc(n, sizeof(*job->reports)) : NULL;
	for (size_t i = 0; i < n; i++) {
		struct json_object *o = json_object_array_get_idx(stacks, i);
		enum sb_stack_result result;
		if (!json_object_is_type(o, json_type_object) || !get_str(o, "stack") ||
		    stack_result_parse(get_str(o, "result"), &result) < 0) {
			*err = xasprintf("the job report's stack entry %zu is malformed", i + 1);
			sb_job_free(job);
			json_object_put(root);
			return NULL;
		}
		struct sb_stack_report *r = &job->reports[job->n_reports++];
		r->name = xstrdup(get_str(o, "stack"));
		r->result = result;
		r->error = xstrdup(get_str(o, "error"));
		r->snapshot_id = xstrdup(get_str(o, "snapshot_id"));
		r->state_before = xstrdup(get_str(o, "state_before"));
		r->was_running = get_bool(o, "was_running");
		r->restarted = get_bool(o, "restarted");
		r->started_at = get_num(o, "started_at");
		r->duration_s = get_num(o, "duration_s");
		r->downtime_s = get_num(o, "downtime_s");
		r->backup_s = get_num(o, "backup_s");
		r->bytes_added = get_u64(o, "bytes_added");
		r->files_new = get_u64(o, "files_new");
		r->files_changed = get_u64(o, "files_changed");
		r->files_total = get_u64(o, "files_total");
		r->mode = xstrdup(get_str(o, "mode"));
	}
	json_object_put(root);
	return job;
}

int sb_client_parse_status(const char *json, size_t len, bool *busy, struct sb_client_last *last)
{
	struct json_object *root = parse_json(json, len);
	int rc = -1;
	if (!root || !json_object_is_type(root, json_type_object))
		goto out;

	struct json_object *state, *job, *queue, *lastobj;
	if (!json_object_object_get_ex(root, "state", &state) ||
	    !json_object_is_type(state, json_type_string))
		goto out;
	bool running = strcmp(json_object_get_string(state), "idle") != 0;
	bool has_job = json_object_object_get_ex(root, "job", &job) &&
		       json_object_is_type(job, json_type_object);
	int64_t queued = 0;
	if (json_object_object_get_ex(root, "queue", &queue)) {
		if (!json_object_is_type(queue, json_type_int))
			goto out;
		queued = json_object_get_int64(queue);
	}

	memset(last, 0, sizeof(*last));
	if (json_object_object_get_ex(root, "last", &lastobj) &&
	    json_object_is_type(lastobj, json_type_object)) {
		struct json_object *id, *kind, *lstate;
		if (!json_object_object_get_ex(lastobj, "id", &id) ||
		    !json_object_is_type(id, json_type_int) ||
		    !json_object_object_get_ex(lastobj, "kind", &kind) ||
		    !json_object_is_type(kind, json_type_string) ||
		    !json_object_object_get_ex(lastobj, "state", &lstate) ||
		    !json_object_is_type(lstate, json_type_string))
			goto out;
		int64_t v = json_object_get_int64(id);
		if (v < 0 || v > INT_MAX ||
		    sb_job_kind_parse(json_object_get_string(kind), &last->kind) < 0 ||
		    sb_job_state_parse(json_object_get_string(lstate), &last->state) < 0)
			goto out;
		last->id = (int)v;
		last->any = true;
	}
	*busy = running || has_job || queued > 0;
	rc = 0;
out:
	json_object_put(root);
	return rc;
}

int sb_client_wait(const char *mountpoint, double timeout_s, const atomic_bool *stop,
		   struct sb_client_last *last, char **err)
{
	cleanup_free char *path = xasprintf("%s/status.json", mountpoint);
	double start = sb_now_monotonic();
	for (;;) {
		cleanup_free char *text = NULL;
		size_t len = 0;
		int rc = sb_read_file(path, CONTROL_FILE_MAX, &text, &len);
		if (rc < 0) {
			*err = rc == -ENOTCONN
				? xasprintf("the daemon at %s went away: unmount it with "
					    "'fusermount3 -u %s'",
					    mountpoint, mountpoint)
				: xasprintf("reading %s failed: %s", path, strerror(-rc));
			return -1;
		}
		bool busy;
		if (sb_client_parse_status(text, len, &busy, last) < 0) {
			*err = xasprintf("%s is not the status object stackback expects", path);
			return -1;
		}
		if (!busy)
			return 0;
		if (stop && atomic_load(stop))
			return 1;
		if (timeout_s > 0 && sb_now_monotonic() - start >= timeout_s)
			return 1;
		sleep_s(0.2);
	}
}

int sb_client_running_job(const char *mountpoint, char **err)
{
	cleanup_free char *path = xasprintf("%s/status.json", mountpoint);
	cleanup_free char *text = NULL;
	size_t len = 0;
	int rc = sb_read_file(path, CONTROL_FILE_MAX, &text, &len);
	if (rc < 0) {
		*err = xasprintf("reading %s failed: %s", path, strerror(-rc));
		return -1;
	}
	struct json_object *root = parse_json(text, len), *job, *id;
	int out = 0;
	if (root && json_object_object_get_ex(root, "job", &job) && json_object_is_type(job, json_type_object) &&
	    json_object_object_get_ex(job, "id", &id) && json_object_is_type(id, json_type_int))
		out = (int)json_object_get_int64(id);
	json_object_put(root);
	return out;
}
