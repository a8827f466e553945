#include "stackback/state.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stackback/log.h"
#include "stackback/util.h"

int sb_state_prepare(const struct sb_config *cfg, char **err)
{
	static const char *const subdirs[] = {"", "/jobs", "/stacks"};
	for (size_t i = 0; i < SB_ARRAY_SIZE(subdirs); i++) {
		cleanup_free char *dir = xasprintf("%s%s", cfg->state_dir, subdirs[i]);
		int rc = sb_mkdir_p(dir, 0700);
		if (rc < 0) {
			*err = xasprintf("cannot create state directory '%s': %s", dir, strerror(-rc));
			return -1;
		}
	}
	return 0;
}

static char *state_path(const struct sb_config *cfg, const char *rel)
{
	return xasprintf("%s/%s", cfg->state_dir, rel);
}

static pid_t read_pid_fd(int fd)
{
	char buf[32] = {0};
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return 0;
	long pid;
	sb_strstrip(buf);
	if (sb_parse_long(buf, 1, 1L << 30, &pid) < 0)
		return 0;
	return (pid_t)pid;
}

int sb_lock_acquire(const struct sb_config *cfg, bool wait, struct sb_lock *lock, char **err)
{
	lock->fd = -1;
	cleanup_free char *path = state_path(cfg, "lock");
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		*err = xasprintf("cannot open job lock '%s': %s", path, strerror(errno));
		return -1;
	}
	/*
	 * flock dies with its holder, so a crashed run never leaves a stale
	 * lock; the PID inside only serves the refusal message.
	 */
	while (flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) < 0) {
		if (errno == EINTR)
			continue;
		int e = errno;
		if (e == EWOULDBLOCK) {
			pid_t holder = read_pid_fd(fd);
			*err = holder > 0
				? xasprintf("another stackback job is running (pid %ld holds %s)", (long)holder, path)
				: xasprintf("another stackback job is running (it holds %s)", path);
		} else {
			*err = xasprintf("cannot lock '%s': %s", path, strerror(e));
		}
		close(fd);
		return -1;
	}
	char pid[32];
	int len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)len, 0) != len)
		sb_warn("cannot record pid in job lock '%s': %s", path, strerror(errno));
	lock->fd = fd;
	return 0;
}

void sb_lock_release(struct sb_lock *lock)
{
	if (lock->fd < 0)
		return;
	if (ftruncate(lock->fd, 0) < 0)
		sb_debug("cannot clear job lock pid: %s", strerror(errno));
	close(lock->fd);
	lock->fd = -1;
}

pid_t sb_lock_holder(const struct sb_config *cfg)
{
	cleanup_free char *path = state_path(cfg, "lock");
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return 0;
	if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
		flock(fd, LOCK_UN);
		return 0;
	}
	pid_t pid = read_pid_fd(fd);
	return pid > 0 ? pid : -1;
}

/* Runs fn with an exclusive flock on STATE_DIR/NAME.lock held. */
static int with_file_lock(const struct sb_config *cfg, const char *name, int (*fn)(void *), void *arg)
{
	cleanup_free char *path = xasprintf("%s/%s.lock", cfg->state_dir, name);
	cleanup_close int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	while (flock(fd, LOCK_EX) < 0)
		if (errno != EINTR)
			return -errno;
	int rc = fn(arg);
	flock(fd, LOCK_UN);
	return rc;
}

static int read_counter(const struct sb_config *cfg)
{
	cleanup_free char *path = state_path(cfg, "next-job-id");
	cleanup_free char *text = NULL;
	if (sb_read_file(path, 64, &text, NULL) < 0)
		return 0;
	long v;
	if (sb_parse_long(sb_strstrip(text), 0, 1L << 30, &v) < 0)
		return 0;
	return (int)v;
}

struct counter_arg {
	const struct sb_config *cfg;
	int id;
};

static int bump_counter(void *p)
{
	struct counter_arg *a = p;
	int last = read_counter(a->cfg);
	a->id = last + 1;
	cleanup_free char *path = state_path(a->cfg, "next-job-id");
	char buf[32];
	int len = snprintf(buf, sizeof(buf), "%d\n", a->id);
	return sb_write_file_atomic(path, buf, (size_t)len, 0600);
}

int sb_state_next_job_id(const struct sb_config *cfg, char **err)
{
	struct counter_arg a = {.cfg = cfg};
	int rc = with_file_lock(cfg, "next-job-id", bump_counter, &a);
	if (rc < 0) {
		*err = xasprintf("cannot allocate a job id in '%s': %s", cfg->state_dir, strerror(-rc));
		return -1;
	}
	return a.id;
}

int sb_state_last_job_id(const struct sb_config *cfg)
{
	return read_counter(cfg);
}

/*
 * The journal: one line per stack stopped by us, "stop|down\tNAME\tPATH".
 * Only the job-lock holder writes it; each change is a fresh atomic file.
 */
static int journal_write(const struct sb_config *cfg, const struct sb_journal_entry *e, size_t n)
{
	struct sb_buf b = {0};
	for (size_t i = 0; i < n; i++)
		sb_buf_printf(&b, "%s\t%s\t%s\n", e[i].was_down ? "down" : "stop", e[i].name, e[i].path);
	cleanup_free char *path = state_path(cfg, "journal");
	int rc = sb_write_file_atomic(path, b.data ? b.data : "", b.len, 0600);
	sb_buf_free(&b);
	return rc;
}

int sb_journal_read(const struct sb_config *cfg, struct sb_journal_entry **entries, size_t *n)
{
	*entries = NULL;
	*n = 0;
	cleanup_free char *path = state_path(cfg, "journal");
	cleanup_free char *text = NULL;
	int rc = sb_read_file(path, 1 << 20, &text, NULL);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *mode = line;
		char *name = strchr(mode, '\t');
		char *dir = name ? strchr(name + 1, '\t') : NULL;
		if (!dir) {
			sb_warn("journal '%s': ignoring malformed line", path);
			continue;
		}
		*name++ = '\0';
		*dir++ = '\0';
		*entries = xrealloc(*entries, (*n + 1) * sizeof(**entries));
		(*entries)[*n] = (struct sb_journal_entry){
			.name = xstrdup(name),
			.path = xstrdup(dir),
			.was_down = strcmp(mode, "down") == 0,
		};
		(*n)++;
	}
	return 0;
}

void sb_journal_entries_free(struct sb_journal_entry *entries, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(entries[i].name);
		free(entries[i].path);
	}
	free(entries);
}

int sb_journal_add(const struct sb_config *cfg, const char *name, const char *path, bool was_down)
{
	struct sb_journal_entry *e;
	size_t n;
	int rc = sb_journal_read(cfg, &e, &n);
	if (rc < 0)
		return rc;
	bool present = false;
	for (size_t i = 0; i < n; i++)
		present |= strcmp(e[i].name, name) == 0;
	if (!present) {
		e = xrealloc(e, (n + 1) * sizeof(*e));
		e[n++] = (struct sb_journal_entry){xstrdup(name), xstrdup(path), was_down};
	}
	rc = journal_write(cfg, e, n);
	sb_journal_entries_free(e, n);
	return rc;
}

int sb_journal_remove(const struct sb_config *cfg, const char *name)
{
	struct sb_journal_entry *e;
	size_t n;
	int rc = sb_journal_read(cfg, &e, &n);
	if (rc < 0)
		return rc;
	size_t kept = 0;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(e[i].name, name) == 0) {
			free(e[i].name);
			free(e[i].path);
			continue;
		}
		e[kept++] = e[i];
	}
	rc = kept == n ? 0 : journal_write(cfg, e, kept);
	sb_journal_entries_free(e, kept);
	return rc;
}

/*
 * The staging journal: one line per copy, "NAME\tPATH" (a stack name has
 * no tab; PATH is the rest of the line). Written like the journal.
 */
static int staging_write(const struct sb_config *cfg, const struct sb_staging_entry *e, size_t n)
{
	struct sb_buf b = {0};
	for (size_t i = 0; i < n; i++)
		sb_buf_printf(&b, "%s\t%s\n", e[i].name, e[i].path);
	cleanup_free char *path = state_path(cfg, "staging");
	int rc = sb_write_file_atomic(path, b.data ? b.data : "", b.len, 0600);
	sb_buf_free(&b);
	return rc;
}

int sb_staging_read(const struct sb_config *cfg, struct sb_staging_entry **entries, size_t *n)
{
	*entries = NULL;
	*n = 0;
	cleanup_free char *path = state_path(cfg, "staging");
	cleanup_free char *text = NULL;
	int rc = sb_read_file(path, 1 << 20, &text, NULL);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *tab = strchr(line, '\t');
		if (!tab || tab == line || tab[1] != '/') {
			sb_warn("staging journal '%s': ignoring malformed line", path);
			continue;
		}
		*tab = '\0';
		*entries = xrealloc(*entries, (*n + 1) * sizeof(**entries));
		(*entries)[*n] = (struct sb_staging_entry){.name = xstrdup(line), .path = xstrdup(tab + 1)};
		(*n)++;
	}
	return 0;
}

void sb_staging_entries_free(struct sb_staging_entry *entries, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(entries[i].name);
		free(entries[i].path);
	}
	free(entries);
}

int sb_staging_add(const struct sb_config *cfg, const char *name, const char *path)
{
	struct sb_staging_entry *e;
	size_t n;
	int rc = sb_staging_read(cfg, &e, &n);
	if (rc < 0)
		return rc;
	bool present = false;
	for (size_t i = 0; i < n; i++)
		present |= strcmp(e[i].path, path) == 0;
	if (!present) {
		e = xrealloc(e, (n + 1) * sizeof(*e));
		e[n++] = (struct sb_staging_entry){xstrdup(name), xstrdup(path)};
	}
	rc = staging_write(cfg, e, n);
	sb_staging_entries_free(e, n);
	return rc;
}

int sb_staging_remove(const struct sb_config *cfg, const char *path)
{
	struct sb_staging_entry *e;
	size_t n;
	int rc = sb_staging_read(cfg, &e, &n);
	if (rc < 0)
		return rc;
	size_t kept = 0;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(e[i].path, path) == 0) {
			free(e[i].name);
			free(e[i].path);
			continue;
		}
		e[kept++] = e[i];
	}
	rc = kept == n ? 0 : staging_write(cfg, e, kept);
	sb_staging_entries_free(e, kept);
	return rc;
}

struct json_object *sb_state_read_json(const struct sb_config *cfg, const char *relpath)
{
	cleanup_free char *path = state_path(cfg, relpath);
	cleanup_free char *text = NULL;
	if (sb_read_file(path, 16 << 20, &text, NULL) < 0)
		return NULL;
	struct json_object *obj = json_tokener_parse(text);
	if (!obj)
		sb_warn("state file '%s' is not valid JSON; ignoring it", path);
	return obj;
}

int sb_state_write_json(const struct sb_config *cfg, const char *relpath, struct json_object *obj)
{
	cleanup_free char *path = state_path(cfg, relpath);
	cleanup_free char *dir = xstrdup(path);
	*strrchr(dir, '/') = '\0';
	int rc = sb_mkdir_p(dir, 0700);
	if (rc < 0)
		return rc;
	const char *text = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
	cleanup_free char *with_nl = xasprintf("%s\n", text);
	return sb_write_file_atomic(path, with_nl, strlen(with_nl), 0600);
}
