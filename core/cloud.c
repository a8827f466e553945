/*
 * The cloud copy's state as the front ends see it: cloud.json read into
 * a struct, the texts of the mount's cloud/ files, and the rule that
 * decides where a restore may write. The jobs in job-cloud.c write the
 * file; nothing here spawns a process, so the control filesystem may
 * call any of it on a request thread.
 */
#include "stackback/cloud.h"

#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stackback/util.h"

/* Durations and ETAs beyond this (~31 years) come from a corrupt file. */
#define MAX_SECONDS 1e9

static const char *const status_names[] = {
	[SB_CLOUD_IDLE] = "idle",
	[SB_CLOUD_SYNCING] = "syncing",
	[SB_CLOUD_RESTORING] = "restoring",
	[SB_CLOUD_OK] = "ok",
	[SB_CLOUD_FAILED] = "failed",
};

static const char *const in_sync_names[] = {
	[SB_IN_SYNC_NOT_VERIFIED] = "not verified",
	[SB_IN_SYNC_VERIFIED] = "verified",
	[SB_IN_SYNC_DIFFERS] = "differs",
};

const char *sb_cloud_status_name(enum sb_cloud_status s)
{
	return status_names[s];
}

int sb_cloud_status_parse(const char *s, enum sb_cloud_status *out)
{
	for (size_t i = 0; i < SB_ARRAY_SIZE(status_names); i++) {
		if (strcmp(s, status_names[i]) == 0) {
			*out = (enum sb_cloud_status)i;
			return 0;
		}
	}
	return -1;
}

const char *sb_cloud_in_sync_name(enum sb_cloud_in_sync s)
{
	return in_sync_names[s];
}

int sb_cloud_in_sync_parse(const char *s, enum sb_cloud_in_sync *out)
{
	for (size_t i = 0; i < SB_ARRAY_SIZE(in_sync_names); i++) {
		if (strcmp(s, in_sync_names[i]) == 0) {
			*out = (enum sb_cloud_in_sync)i;
			return 0;
		}
	}
	return -1;
}

/* Typed getters that ignore fields of the wrong type: cloud.json is ours,
 * but a hand-edited or truncated file must never crash a reader. */
static struct json_object *get_obj(struct json_object *o, const char *key)
{
	struct json_object *v;
	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_object))
		return NULL;
	return v;
}

static const char *get_str(struct json_object *o, const char *key)
{
	struct json_object *v;
	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static double get_double(struct json_object *o, const char *key)
{
	struct json_object *v;
	if (!o || !json_object_object_get_ex(o, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int))
		return 0;
	return json_object_get_double(v);
}

/* A number the renderers can print: NaN and negatives give dflt, huge values are capped. */
static double get_bounded(struct json_object *o, const char *key, double dflt, double max)
{
	struct json_object *v;
	if (!o || !json_object_object_get_ex(o, key, &v) ||
	    (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int)))
		return dflt;
	double d = json_object_get_double(v);
	if (!(d >= 0))
		return dflt;
	return d > max ? max : d;
}

static uint64_t get_u64(struct json_object *o, const char *key)
{
	struct json_object *v;
	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
		return 0;
	return json_object_get_uint64(v);
}

static bool get_bool(struct json_object *o, const char *key)
{
	struct json_object *v;
	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_boolean))
		return false;
	return json_object_get_boolean(v);
}

/* The whole of text as one JSON object, or NULL. */
static struct json_object *parse_object(const char *text, size_t len)
{
	if (len == 0 || len > INT_MAX)
		return NULL;
	struct json_tokener *tok = json_tokener_new();
	struct json_object *o = json_tokener_parse_ex(tok, text, (int)len);
	bool whole = o && json_tokener_get_error(tok) == json_tokener_success &&
		     json_tokener_get_parse_end(tok) == len;
	json_tokener_free(tok);
	if (!whole || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* A time from the file as time_t: NaN, negative and absurd values are clamped, never cast blindly. */
static time_t to_time(double t)
{
	if (!(t >= 0))
		return 0;
	if (t > 253402300799.0) /* 9999-12-31T23:59:59Z */
		return (time_t)253402300799;
	return (time_t)t;
}

char *sb_cloud_repo_stamp(const char *repository)
{
	/* A backup adds a file under snapshots/ and index/, forget removes
	 * from snapshots/, prune rewrites index/, key changes touch keys/:
	 * each changes its directory's mtime. locks/ is left out because
	 * readers such as `restic check` create and remove locks there. */
	static const char *const dirs[] = {"snapshots", "index", "keys"};
	struct sb_buf b = {0};
	if (!repository)
		return xstrdup("");
	for (size_t i = 0; i < SB_ARRAY_SIZE(dirs); i++) {
		cleanup_free char *path = xasprintf("%s/%s", repository, dirs[i]);
		struct stat st;
		if (stat(path, &st) < 0) {
			sb_buf_free(&b);
			return xstrdup("");
		}
		sb_buf_printf(&b, "%s%lld.%09ld", i ? ":" : "", (long long)st.st_mtim.tv_sec,
			      st.st_mtim.tv_nsec);
	}
	return sb_buf_steal(&b);
}

static char *configured_remote(const struct sb_config *cfg)
{
	if (!cfg->rclone_remote || !*cfg->rclone_remote)
		return NULL;
	return xasprintf("%s:%s", cfg->rclone_remote, cfg->rclone_path ? cfg->rclone_path : "");
}

static void read_progress(struct json_object *p, struct sb_cloud_progress *out)
{
	const char *phase = get_str(p, "phase");
	snprintf(out->phase, sizeof(out->phase), "%s", phase ? phase : "");
	out->percent = get_bounded(p, "percent", 0, 100);
	out->bytes_done = get_u64(p, "bytes_done");
	out->bytes_total = get_u64(p, "bytes_total");
	out->files_done = get_u64(p, "files_done");
	out->files_total = get_u64(p, "files_total");
	out->eta_s = get_bounded(p, "eta_s", -1, MAX_SECONDS);
	out->speed = get_bounded(p, "speed", 0, 1e18);
}

static void read_restore(struct json_object *r, struct sb_cloud_state *st)
{
	st->has_restore = true;
	st->last_restore.time = get_double(r, "time");
	const char *result = get_str(r, "result");
	st->last_restore.ok = result && strcmp(result, "ok") == 0;
	st->last_restore.target = xstrdup(get_str(r, "target"));
	st->last_restore.duration_s = get_bounded(r, "duration", 0, MAX_SECONDS);
	st->last_restore.bytes = get_u64(r, "bytes");
	st->last_restore.error = xstrdup(get_str(r, "error"));
	struct json_object *snaps = get_obj(r, "snapshots");
	if (!snaps)
		return;
	size_t n = (size_t)json_object_object_length(snaps);
	st->last_restore.stacks = xcalloc(n, sizeof(*st->last_restore.stacks));
	json_object_object_foreach(snaps, key, val)
	{
		if (!json_object_is_type(val, json_type_int))
			continue;
		struct sb_cloud_stack_count *c = &st->last_restore.stacks[st->last_restore.n_stacks++];
		c->stack = xstrdup(key);
		c->snapshots = json_object_get_uint64(val);
	}
}

void sb_cloud_state_read(const struct sb_config *cfg, struct sb_cloud_state *st)
{
	cleanup_free char *path = xasprintf("%s/cloud.json", cfg->state_dir);
	cleanup_free char *text = NULL;
	size_t len = 0;
	if (sb_read_file(path, 16 << 20, &text, &len) < 0)
		len = 0;
	sb_cloud_state_parse(cfg, text ? text : "", len, st);
}

int sb_cloud_state_parse(const struct sb_config *cfg, const char *text, size_t len,
			 struct sb_cloud_state *st)
{
	*st = (struct sb_cloud_state){.status = SB_CLOUD_IDLE};
	st->remote = configured_remote(cfg);
	st->progress.eta_s = -1;
	struct json_object *root = parse_object(text, len);
	if (!root)
		return -1;
	const char *status = get_str(root, "status");
	if (!status || sb_cloud_status_parse(status, &st->status) < 0)
		st->status = SB_CLOUD_IDLE;
	st->reason = xstrdup(get_str(root, "reason"));
	st->step = xstrdup(get_str(root, "step"));

	struct json_object *sync = get_obj(root, "last_sync");
	if (sync) {
		st->has_sync = true;
		st->last_sync.time = get_double(sync, "time");
		const char *result = get_str(sync, "result");
		st->last_sync.ok = result && strcmp(result, "ok") == 0;
		st->last_sync.bytes = get_u64(sync, "bytes");
		st->last_sync.files = get_u64(sync, "files");
		st->last_sync.duration_s = get_bounded(sync, "duration", 0, MAX_SECONDS);
		st->last_sync.error = xstrdup(get_str(sync, "error"));
		st->last_sync.remote = xstrdup(get_str(sync, "remote"));
	}

	struct json_object *in_sync = get_obj(root, "in_sync");
	const char *state = get_str(in_sync, "state");
	if (!state || sb_cloud_in_sync_parse(state, &st->in_sync.state) < 0)
		st->in_sync.state = SB_IN_SYNC_NOT_VERIFIED;
	st->in_sync.by_hash = get_bool(in_sync, "by_hash");
	st->in_sync.differences = get_u64(in_sync, "differences");
	st->in_sync.missing_remote = get_u64(in_sync, "missing_remote");
	st->in_sync.missing_local = get_u64(in_sync, "missing_local");
	st->in_sync.matched = get_u64(in_sync, "matched");
	st->in_sync.time = get_double(in_sync, "time");
	const char *stamp = get_str(in_sync, "repo_stamp");
	if (st->in_sync.state != SB_IN_SYNC_NOT_VERIFIED && stamp) {
		cleanup_free char *now = sb_cloud_repo_stamp(cfg->restic_repository);
		if (strcmp(now, stamp) != 0) {
			st->in_sync.state = SB_IN_SYNC_NOT_VERIFIED;
			st->in_sync.repo_changed = true;
		}
	}

	struct json_object *restore = get_obj(root, "last_restore");
	if (restore)
		read_restore(restore, st);

	struct json_object *progress = get_obj(root, "progress");
	bool busy = st->status == SB_CLOUD_SYNCING || st->status == SB_CLOUD_RESTORING;
	if (busy && progress) {
		st->transferring = true;
		read_progress(progress, &st->progress);
	}

	/* A job killed mid-way cannot say so itself: its pid tells. */
	uint64_t pid = get_u64(root, "pid");
	if (busy && pid > 0 && pid <= INT_MAX && kill((pid_t)pid, 0) < 0 && errno == ESRCH) {
		free(st->reason);
		st->reason = xasprintf("%s interrupted: the process running it (pid %d) ended",
				       st->status == SB_CLOUD_SYNCING ? "sync" : "restore", (int)pid);
		st->status = SB_CLOUD_FAILED;
		st->transferring = false;
		free(st->step);
		st->step = NULL;
	}
	json_object_put(root);
	return 0;
}

void sb_cloud_state_free(struct sb_cloud_state *st)
{
	free(st->reason);
	free(st->step);
	free(st->remote);
	free(st->last_sync.error);
	free(st->last_sync.remote);
	free(st->last_restore.target);
	free(st->last_restore.error);
	for (size_t i = 0; i < st->last_restore.n_stacks; i++)
		free(st->last_restore.stacks[i].stack);
	free(st->last_restore.stacks);
	*st = (struct sb_cloud_state){0};
}

static void append_progress_words(struct sb_buf *b, const struct sb_cloud_progress *p)
{
	char done[32], total[32];
	sb_format_bytes(p->bytes_done, done, sizeof(done));
	sb_format_bytes(p->bytes_total, total, sizeof(total));
	sb_buf_printf(b, ", %.0f%%, %s of %s", p->percent, done, total);
	if (p->eta_s >= 0) {
		char eta[32];
		sb_format_duration(p->eta_s, eta, sizeof(eta));
		sb_buf_printf(b, ", eta %s", eta);
	}
}

char *sb_cloud_render_status(const struct sb_cloud_state *st)
{
	struct sb_buf b = {0};
	sb_buf_puts(&b, status_names[st->status]);
	switch (st->status) {
	case SB_CLOUD_SYNCING:
	case SB_CLOUD_RESTORING:
		if (st->step)
			sb_buf_printf(&b, ": %s", st->step);
		if (st->transferring) {
			if (!st->step)
				sb_buf_puts(&b, ": transferring");
			append_progress_words(&b, &st->progress);
		}
		break;
	case SB_CLOUD_FAILED:
		sb_buf_printf(&b, ": %s", st->reason ? st->reason : "no reason recorded");
		break;
	case SB_CLOUD_IDLE:
	case SB_CLOUD_OK:
		break;
	}
	sb_buf_puts(&b, "\n");
	return sb_buf_steal(&b);
}

char *sb_cloud_render_remote(const struct sb_cloud_state *st)
{
	return xasprintf("%s\n", st->remote ? st->remote : "not configured");
}

static void put_time(struct sb_buf *b, const char *key, double t)
{
	char stamp[32];
	sb_format_time_utc(to_time(t), stamp, sizeof(stamp));
	sb_buf_printf(b, "%s: %s\n", key, stamp);
}

char *sb_cloud_render_last_sync(const struct sb_cloud_state *st)
{
	if (!st->has_sync)
		return xstrdup("never\n");
	struct sb_buf b = {0};
	put_time(&b, "time", st->last_sync.time);
	sb_buf_printf(&b, "result: %s\n", st->last_sync.ok ? "ok" : "failed");
	sb_buf_printf(&b, "bytes: %llu\n", (unsigned long long)st->last_sync.bytes);
	sb_buf_printf(&b, "files: %llu\n", (unsigned long long)st->last_sync.files);
	sb_buf_printf(&b, "duration_s: %.1f\n", st->last_sync.duration_s);
	if (st->last_sync.remote)
		sb_buf_printf(&b, "remote: %s\n", st->last_sync.remote);
	if (st->last_sync.error)
		sb_buf_printf(&b, "error: %s\n", st->last_sync.error);
	return sb_buf_steal(&b);
}

char *sb_cloud_render_in_sync(const struct sb_cloud_state *st)
{
	struct sb_buf b = {0};
	char when[32] = "";
	if (st->in_sync.time > 0)
		sb_format_time_utc(to_time(st->in_sync.time), when, sizeof(when));
	const char *by = st->in_sync.by_hash ? "hash" : "size";
	switch (st->in_sync.state) {
	case SB_IN_SYNC_VERIFIED:
		sb_buf_printf(&b, "verified: %llu files match by %s",
			      (unsigned long long)st->in_sync.matched, by);
		break;
	case SB_IN_SYNC_DIFFERS:
		sb_buf_printf(&b, "differs: %llu differ, %llu missing on the remote, %llu missing locally (by %s)",
			      (unsigned long long)st->in_sync.differences,
			      (unsigned long long)st->in_sync.missing_remote,
			      (unsigned long long)st->in_sync.missing_local, by);
		break;
	case SB_IN_SYNC_NOT_VERIFIED:
		if (st->status == SB_CLOUD_SYNCING)
			sb_buf_puts(&b, "not verified: a sync is running");
		else if (st->in_sync.repo_changed)
			sb_buf_printf(&b, "not verified: the local repository changed after the check of %s",
				      when);
		else if (!st->has_sync)
			sb_buf_puts(&b, "not verified: never synced");
		else if (!st->last_sync.ok)
			sb_buf_puts(&b, "not verified: the last sync failed");
		else
			sb_buf_puts(&b, "not verified");
		break;
	}
	if (*when && st->in_sync.state != SB_IN_SYNC_NOT_VERIFIED)
		sb_buf_printf(&b, ", checked %s", when);
	sb_buf_puts(&b, "\n");
	return sb_buf_steal(&b);
}

char *sb_cloud_render_progress(const struct sb_cloud_state *st)
{
	if (!st->transferring)
		return xstrdup("phase: idle\n");
	const struct sb_cloud_progress *p = &st->progress;
	return xasprintf("phase: %s\npercent: %.1f\nbytes_done: %llu\nbytes_total: %llu\n"
			 "files_done: %llu\nfiles_total: %llu\neta_s: %.0f\nspeed: %.0f\n",
			 p->phase, p->percent, (unsigned long long)p->bytes_done,
			 (unsigned long long)p->bytes_total, (unsigned long long)p->files_done,
			 (unsigned long long)p->files_total, p->eta_s, p->speed);
}

char *sb_cloud_render_last_restore(const struct sb_cloud_state *st)
{
	if (!st->has_restore)
		return xstrdup("never\n");
	struct sb_buf b = {0};
	put_time(&b, "time", st->last_restore.time);
	sb_buf_printf(&b, "result: %s\n", st->last_restore.ok ? "ok" : "failed");
	if (st->last_restore.target)
		sb_buf_printf(&b, "target: %s\n", st->last_restore.target);
	sb_buf_printf(&b, "bytes: %llu\n", (unsigned long long)st->last_restore.bytes);
	sb_buf_printf(&b, "duration_s: %.1f\n", st->last_restore.duration_s);
	if (st->last_restore.ok) {
		uint64_t total = 0;
		for (size_t i = 0; i < st->last_restore.n_stacks; i++)
			total += st->last_restore.stacks[i].snapshots;
		sb_buf_printf(&b, "snapshots: %llu", (unsigned long long)total);
		for (size_t i = 0; i < st->last_restore.n_stacks; i++)
			sb_buf_printf(&b, "%s%s %llu", i ? ", " : " (", st->last_restore.stacks[i].stack,
				      (unsigned long long)st->last_restore.stacks[i].snapshots);
		sb_buf_puts(&b, st->last_restore.n_stacks ? ")\n" : "\n");
	}
	if (st->last_restore.error)
		sb_buf_printf(&b, "error: %s\n", st->last_restore.error);
	return sb_buf_steal(&b);
}

char *sb_cloud_restored_repository(const struct sb_config *cfg)
{
	struct sb_cloud_state st;
	sb_cloud_state_read(cfg, &st);
	char *repo = NULL;
	if (st.has_restore && st.last_restore.ok && st.last_restore.target) {
		cleanup_free char *config = xasprintf("%s/config", st.last_restore.target);
		if (access(config, F_OK) == 0)
			repo = xstrdup(st.last_restore.target);
	}
	sb_cloud_state_free(&st);
	return repo;
}

/*
 * Resolves path to an absolute one without symlinks: realpath() of its
 * longest existing prefix, the missing components appended as written.
 * Returns 0 or -errno (-EINVAL for "." or ".." in the missing part, whose
 * meaning would depend on directories that do not exist yet).
 */
static int resolve_path(const char *path, char **out)
{
	char *abs;
	if (path[0] == '/') {
		abs = xstrdup(path);
	} else {
		cleanup_free char *cwd = getcwd(NULL, 0);
		if (!cwd)
			return -errno;
		abs = xasprintf("%s/%s", cwd, path);
	}
	struct sb_strv tail = {0};
	char *real = NULL;
	int rc = 0;
	for (;;) {
		real = realpath(abs, NULL);
		if (real)
			break;
		if (errno != ENOENT) {
			rc = -errno;
			break;
		}
		char *slash = strrchr(abs, '/');
		const char *name = slash + 1;
		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
			rc = -EINVAL;
			break;
		}
		if (*name)
			sb_strv_push(&tail, name);
		if (slash == abs)
			slash[1] = '\0';
		else
			*slash = '\0';
	}
	free(abs);
	if (rc == 0) {
		struct sb_buf b = {0};
		sb_buf_puts(&b, real);
		for (size_t i = tail.n; i > 0; i--)
			sb_buf_printf(&b, "%s%s", b.data[b.len - 1] == '/' ? "" : "/", tail.v[i - 1]);
		*out = sb_buf_steal(&b);
	}
	free(real);
	sb_strv_free(&tail);
	return rc;
}

/* True if path is dir or lies inside it; both absolute and resolved. */
static bool path_within(const char *path, const char *dir)
{
	if (strcmp(dir, "/") == 0)
		return true;
	size_t n = strlen(dir);
	return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/*
 * The relation of target to a protected path, as a phrase for the
 * refusal, or NULL when they are apart. inside_ok: a target inside it is
 * fine (STATE_DIR holds the default RESTORE_DIR).
 */
static const char *overlap(const char *target, const char *protected, bool inside_ok)
{
	if (strcmp(target, protected) == 0)
		return "is";
	if (path_within(protected, target))
		return "contains";
	if (!inside_ok && path_within(target, protected))
		return "is inside";
	return NULL;
}

/* Only these may be in a target that --force lets a restore overwrite. */
static bool restic_entry(const char *name)
{
	static const char *const names[] = {"config", "data", "index", "keys", "snapshots", "locks"};
	for (size_t i = 0; i < SB_ARRAY_SIZE(names); i++)
		if (strcmp(name, names[i]) == 0)
			return true;
	return false;
}

static int check_contents(const char *target, bool force, char **err)
{
	DIR *d = opendir(target);
	if (!d) {
		if (errno == ENOENT)
			return 0;
		if (errno == ENOTDIR)
			*err = xasprintf("target '%s' is not a directory", target);
		else
			*err = xasprintf("cannot read target '%s': %s", target, strerror(errno));
		return -1;
	}
	struct dirent *de;
	bool empty = true;
	char *foreign = NULL;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		empty = false;
		if (!restic_entry(de->d_name)) {
			foreign = xstrdup(de->d_name);
			break;
		}
	}
	closedir(d);
	int rc = 0;
	if (!empty && !force) {
		*err = xasprintf("target '%s' is not empty (use --force to replace an earlier restored copy)",
				 target);
		rc = -1;
	} else if (foreign) {
		*err = xasprintf("target '%s' holds '%s', which is not part of a restic repository, "
				 "and a restore deletes what the cloud copy does not have; "
				 "choose an empty directory",
				 target, foreign);
		rc = -1;
	}
	free(foreign);
	return rc;
}

int sb_cloud_restore_target(const struct sb_config *cfg, const char *target, bool force,
			    char **resolved, char **err)
{
	const char *given = target && *target ? target : cfg->restore_dir;
	if (!given || !*given) {
		*err = xstrdup("no target: RESTORE_DIR is empty and no --to was given");
		return -1;
	}
	cleanup_free char *t = NULL;
	int rc = resolve_path(given, &t);
	if (rc < 0) {
		*err = xasprintf("cannot resolve target '%s': %s", given,
				 rc == -EINVAL ? "'.' or '..' in a directory that does not exist yet"
					       : strerror(-rc));
		return -1;
	}
	const struct {
		const char *path;
		const char *what;
		bool inside_ok;
	} guarded[] = {
		{cfg->restic_repository, "the local repository", false},
		{cfg->stacks_dir, "the stacks directory", false},
		{cfg->mountpoint, "the mount point", false},
		{cfg->state_dir, "the state directory", true},
	};
	for (size_t i = 0; i < SB_ARRAY_SIZE(guarded); i++) {
		if (!guarded[i].path || !*guarded[i].path)
			continue;
		/* A stale FUSE mount fails realpath with ENOTCONN: compare it as written. */
		cleanup_free char *p = NULL;
		if (resolve_path(guarded[i].path, &p) < 0)
			p = xstrdup(guarded[i].path);
		const char *rel = overlap(t, p, guarded[i].inside_ok);
		if (rel) {
			*err = xasprintf("target '%s' %s %s '%s'", t, rel, guarded[i].what, p);
			return -1;
		}
	}
	if (check_contents(t, force, err) < 0)
		return -1;
	*resolved = t;
	t = NULL;
	return 0;
}
