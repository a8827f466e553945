/*
 * The control filesystem's tree (SPEC §2): ONE table of nodes, each with
 * its mode and handlers. ops.c walks it; nothing else knows paths. Every
 * handler asks core for the answer: the tree only translates.
 *
 * Try it:
 *   $ cat /mnt/stackback/status
 *   $ echo 1 > /mnt/stackback/trigger/backup
 *   $ exec 3<>/mnt/stackback/trigger/backup; echo 'web dry-run' >&3; cat <&3
 *   job 12 queued
 *   $ mv /mnt/stackback/disabled/web /mnt/stackback/enabled/
 */
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sbfs.h"
#include "stackback/job.h"
#include "stackback/log.h"
#include "stackback/status.h"

/* ---- handlers: the daemon ---- */

static int read_readme(struct sbfs_ctx *c, struct sb_buf *out)
{
	sb_buf_puts(out, c->fs->readme);
	return 0;
}

static struct json_object *status_object(struct sbfs_ctx *c)
{
	struct sb_status_snapshot snap;
	sb_queue_status(c->fs->queue, &snap);
	struct json_object *o = sb_status_json(&c->fs->cfg, &snap);
	sbfs_snap_status(c->fs, o);
	return o;
}

static int read_status(struct sbfs_ctx *c, struct sb_buf *out)
{
	struct json_object *o = status_object(c);
	char *text = sb_status_text(o);
	sb_buf_puts(out, text);
	free(text);
	json_object_put(o);
	return 0;
}

static int read_status_json(struct sbfs_ctx *c, struct sb_buf *out)
{
	struct json_object *o = status_object(c);
	sb_buf_printf(out, "%s\n",
		      json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return 0;
}

static int read_log(struct sbfs_ctx *c, struct sb_buf *out)
{
	char *text = sb_log_ring_dump();
	sb_buf_puts(out, text);
	free(text);
	return 0;
}

static int read_metrics(struct sbfs_ctx *c, struct sb_buf *out)
{
	struct sb_status_snapshot snap;
	sb_queue_status(c->fs->queue, &snap);
	char *text = sb_metrics_text(&c->fs->cfg, sbfs_ctx_sel(c), &snap);
	sb_buf_puts(out, text);
	free(text);
	return 0;
}

/* ---- handlers: stacks and the selection ---- */

/* Unique names in dirlist order (a clash lists its name once: both are untouchable anyway). */
static void list_stacks_where(struct sbfs_ctx *c, struct sb_strv *names, int enabled)
{
	const struct sb_selection *sel = sbfs_ctx_sel(c);
	for (size_t i = 0; i < sel->n; i++) {
		const struct sb_stack *st = &sel->stacks[i];
		if (enabled >= 0 && st->enabled != (enabled == 1))
			continue;
		if (!sb_strv_contains(names, st->name))
			sb_strv_push(names, st->name);
	}
}

static void list_stacks(struct sbfs_ctx *c, struct sb_strv *names)
{
	list_stacks_where(c, names, -1);
}

static void list_enabled(struct sbfs_ctx *c, struct sb_strv *names)
{
	list_stacks_where(c, names, 1);
}

static void list_disabled(struct sbfs_ctx *c, struct sb_strv *names)
{
	list_stacks_where(c, names, 0);
}

static int find_stack(struct sbfs_ctx *c, const char *name, int enabled)
{
	const struct sb_stack *st = sb_selection_find(sbfs_ctx_sel(c), name);
	if (!st || name[0] == '/' || (enabled >= 0 && st->enabled != (enabled == 1)))
		return -ENOENT;
	c->stack = st;
	snprintf(c->name, sizeof(c->name), "%s", name);
	return 0;
}

static int lookup_stack(struct sbfs_ctx *c, const char *name)
{
	return find_stack(c, name, -1);
}

static int lookup_enabled(struct sbfs_ctx *c, const char *name)
{
	return find_stack(c, name, 1);
}

static int lookup_disabled(struct sbfs_ctx *c, const char *name)
{
	return find_stack(c, name, 0);
}

/* Persists the choice in the dirlist (atomically, under its lock) before the syscall returns. */
static int set_enabled(struct sbfs_ctx *c, const struct sb_stack *st, bool on, const char *via)
{
	struct sb_selection_change change = {.key = st->dirlist_key, .enabled = on};
	cleanup_free char *err = NULL;
	/* add_new: the daemon records stacks it discovers (SPEC §4), so none is "unknown" here. */
	if (sb_selection_update(&c->fs->cfg, &change, 1, true, false, false, &err) < 0) {
		sb_error("%s: cannot %s stack '%s': %s", via, on ? "enable" : "disable", st->name, err);
		return -EIO;
	}
	sbfs_sel_applied(c->fs, st->dirlist_key, on);
	sb_info("stack '%s' %s (%s)", st->name, on ? "enabled" : "disabled", via);
	return 0;
}

static int read_enabled(struct sbfs_ctx *c, struct sb_buf *out)
{
	sb_buf_puts(out, c->stack->enabled ? "1\n" : "0\n");
	return 0;
}

static int write_enabled(struct sbfs_ctx *c, const char *data, size_t len, struct sb_buf *reply)
{
	cleanup_free char *text = xstrndup(data, len);
	sb_strstrip(text);
	bool on;
	if (sb_parse_bool(text, &on) < 0) {
		sb_warn("stacks/%s/enabled: '%.64s' is not 1, 0, true, false, yes or no", c->name, text);
		sb_buf_printf(reply, "error: '%.64s' is not 1, 0, true, false, yes or no\n", text);
		return -EINVAL;
	}
	cleanup_free char *via = xasprintf("stacks/%s/enabled", c->name);
	int rc = set_enabled(c, c->stack, on, via);
	sb_buf_puts(reply, rc == 0 ? (on ? "1\n" : "0\n") : "error: see log\n");
	return rc;
}

static int read_state(struct sbfs_ctx *c, struct sb_buf *out)
{
	double wait = c->for_size ? 0 : (double)c->fs->cfg.docker_timeout + SBFS_STATE_MARGIN;
	enum sb_stack_state st = sb_stack_states_get(c->fs->states, c->stack, wait);
	sb_buf_printf(out, "%s\n", sb_stack_state_name(st));
	return 0;
}

static int read_last_backup(struct sbfs_ctx *c, struct sb_buf *out)
{
	char *text = sb_status_last_backup_text(&c->fs->cfg, c->stack->name);
	sb_buf_puts(out, text);
	free(text);
	return 0;
}

static int read_path(struct sbfs_ctx *c, struct sb_buf *out)
{
	sb_buf_printf(out, "%s\n", c->stack->path);
	return 0;
}

static int link_snapshots(struct sbfs_ctx *c, struct sb_buf *target)
{
	sb_buf_printf(target, "../../snapshots/%s", c->stack->name);
	return 0;
}

/* mkdir enabled/NAME, mkdir disabled/NAME, and a rename into either. */
static int toggle_by_name(struct sbfs_ctx *c, const char *name, bool on)
{
	const char *dir = on ? "enabled" : "disabled";
	if (!sb_stack_name_valid(name)) {
		sb_warn("mkdir %s/%.64s: not a valid stack name", dir, name);
		return -EINVAL;
	}
	const struct sb_stack *st = sb_selection_find(sbfs_ctx_sel(c), name);
	if (!st) {
		sb_warn("mkdir %s/%s: no stack of that name in '%s' or the dirlist", dir, name,
			c->fs->cfg.stacks_dir);
		return -ENOENT;
	}
	if (st->enabled == on)
		return 0;
	cleanup_free char *via = xasprintf("%s/%s", dir, name);
	return set_enabled(c, st, on, via);
}

static int mkdir_enabled(struct sbfs_ctx *c, const char *name)
{
	return toggle_by_name(c, name, true);
}

static int mkdir_disabled(struct sbfs_ctx *c, const char *name)
{
	return toggle_by_name(c, name, false);
}

static int rmdir_enabled(struct sbfs_ctx *c)
{
	cleanup_free char *via = xasprintf("rmdir enabled/%s", c->name);
	return set_enabled(c, c->stack, false, via);
}

static int rmdir_disabled(struct sbfs_ctx *c)
{
	/* Deleting a name must never start backups (and the stops they bring) by accident. */
	sb_warn("rmdir disabled/%s: refused; enable a stack with mkdir enabled/%s", c->name, c->name);
	return -EPERM;
}

/* ---- handlers: triggers ---- */

static int read_trigger(struct sbfs_ctx *c, struct sb_buf *out)
{
	char *text = sb_queue_trigger_result(c->fs->queue, (enum sb_job_kind)c->node->arg);
	sb_buf_puts(out, text);
	free(text);
	return 0;
}

static int queue_trigger(struct sbfs_ctx *c, enum sb_job_kind kind, const char *data, size_t len,
			 struct sb_buf *reply)
{
	int id = 0;
	cleanup_free char *err = NULL;
	int rc = sb_queue_trigger(c->fs->queue, kind, data, len, sbfs_ctx_sel(c), &id, &err);
	if (rc < 0)
		sb_buf_printf(reply, "error: %s\n", err);
	else
		sb_buf_printf(reply, "job %d queued\n", id);
	return rc;
}

static int write_trigger(struct sbfs_ctx *c, const char *data, size_t len, struct sb_buf *reply)
{
	return queue_trigger(c, (enum sb_job_kind)c->node->arg, data, len, reply);
}

/* stacks/NAME/restore takes what `restore-stack NAME ...` takes after the name. */
static int write_restore(struct sbfs_ctx *c, const char *data, size_t len, struct sb_buf *reply)
{
	struct sb_buf payload = {0};
	sb_buf_printf(&payload, "%s ", c->stack->name);
	sb_buf_append(&payload, data, len);
	int rc = queue_trigger(c, SB_JOB_RESTORE_STACK, payload.data, payload.len, reply);
	sb_buf_free(&payload);
	return rc;
}

/* ---- handlers: jobs ---- */

static void list_jobs(struct sbfs_ctx *c, struct sb_strv *names)
{
	int *ids;
	size_t n;
	sb_queue_job_ids(c->fs->queue, &ids, &n);
	for (size_t i = 0; i < n; i++)
		sb_strv_push_owned(names, xasprintf("%d", ids[i]));
	free(ids);
}

static int lookup_job(struct sbfs_ctx *c, const char *name)
{
	long id;
	/* One spelling per job: "07" is not job 7. */
	if (name[0] == '0' || sb_parse_long(name, 1, INT_MAX, &id) < 0)
		return -ENOENT;
	if (!sb_queue_job_exists(c->fs->queue, (int)id))
		return -ENOENT;
	c->job_id = (int)id;
	snprintf(c->name, sizeof(c->name), "%s", name);
	return 0;
}

static int lookup_last(struct sbfs_ctx *c, const char *name)
{
	c->job_id = sb_queue_last_job_id(c->fs->queue);
	return c->job_id > 0 ? 0 : -ENOENT;
}

static int link_last(struct sbfs_ctx *c, struct sb_buf *target)
{
	sb_buf_printf(target, "%d", c->job_id);
	return 0;
}

static int read_job_file(struct sbfs_ctx *c, struct sb_buf *out)
{
	char *text = NULL;
	int rc = sb_queue_job_read(c->fs->queue, c->job_id, (enum sb_job_file)c->node->arg, &text);
	if (rc < 0)
		return rc;
	sb_buf_puts(out, text);
	free(text);
	return 0;
}

/* The read-back of jobs/ID/cancel: the job's state, so a script sees where its cancel stands. */
static int read_cancel(struct sbfs_ctx *c, struct sb_buf *out)
{
	char *text = NULL;
	int rc = sb_queue_job_read(c->fs->queue, c->job_id, SB_JOB_FILE_STATE, &text);
	if (rc < 0)
		return rc;
	sb_buf_puts(out, text);
	free(text);
	return 0;
}

static int write_cancel(struct sbfs_ctx *c, const char *data, size_t len, struct sb_buf *reply)
{
	cleanup_free char *text = xstrndup(data, len);
	sb_strstrip(text);
	bool yes = false;
	if (strcmp(text, "cancel") != 0 && (sb_parse_bool(text, &yes) < 0 || !yes)) {
		sb_warn("jobs/%d/cancel: '%.64s' is not 1, yes, true or cancel", c->job_id, text);
		sb_buf_printf(reply, "error: '%.64s' is not 1, yes, true or cancel\n", text);
		return -EINVAL;
	}
	cleanup_free char *why = NULL;
	int rc = sb_queue_cancel(c->fs->queue, c->job_id, &why);
	if (rc == -EALREADY) {
		sb_warn("jobs/%d/cancel: %s", c->job_id, why);
		sb_buf_printf(reply, "error: %s\n", why);
		return -EINVAL;
	}
	if (rc < 0)
		return rc;
	sb_buf_printf(reply, "cancelling job %d\n", c->job_id);
	return 0;
}

/* ---- the table ---- */

#define TRIGGER(kind_name, kind, what)                                                       \
	{                                                                                    \
		.path = "/trigger/" kind_name, .type = SBFS_FILE, .mode = 0644,              \
		.flags = SBFS_POLL, .arg = kind, .read = read_trigger, .write = write_trigger, \
		.help = what,                                                                \
	}

#define JOB_FILE(file_name, file, perm, poll, what)                                          \
	{                                                                                    \
		.path = "/jobs/{ID}/" file_name, .type = SBFS_FILE, .mode = perm, .flags = poll, \
		.arg = file, .read = read_job_file, .help = what,                            \
	}

#define CLOUD_FILE(file_name, file, poll, what)                                              \
	{                                                                                    \
		.path = "/cloud/" file_name, .type = SBFS_FILE, .mode = 0444, .flags = poll,   \
		.arg = file, .read = sbfs_cloud_read, .help = what,                          \
	}

static const struct sbfs_node nodes[] = {
	{.path = "/", .type = SBFS_DIR, .mode = 0755, .help = "the control filesystem"},
	{.path = "/README", .type = SBFS_FILE, .mode = 0444, .flags = SBFS_STATIC, .read = read_readme,
	 .help = "this file"},
	{.path = "/status", .type = SBFS_FILE, .mode = 0444, .flags = SBFS_POLL, .read = read_status,
	 .help = "the daemon and its current job, key: value lines (state, job.*, queue, last.*, cloud.*)"},
	{.path = "/status.json", .type = SBFS_FILE, .mode = 0444, .flags = SBFS_POLL, .read = read_status_json,
	 .help = "the same as JSON: {state, job, queue, last, cloud}"},
	{.path = "/log", .type = SBFS_FILE, .mode = 0600, .read = read_log,
	 .help = "the daemon's recent log lines, oldest first (refused writes say why here)"},
	{.path = "/metrics", .type = SBFS_FILE, .mode = 0444, .read = read_metrics,
	 .help = "Prometheus text exposition: per-stack last backup, job and queue, cloud sync"},

	{.path = "/stacks", .type = SBFS_DIR, .mode = 0755, .list = list_stacks,
	 .help = "one directory per discovered compose stack"},
	{.path = "/stacks/{NAME}", .type = SBFS_DIR, .mode = 0755, .lookup = lookup_stack,
	 .help = "the stack NAME"},
	{.path = "/stacks/{NAME}/enabled", .type = SBFS_FILE, .mode = 0644, .read = read_enabled,
	 .write = write_enabled,
	 .help = "1 or 0; write 1/0/true/false/yes/no to select the stack for backups"},
	{.path = "/stacks/{NAME}/state", .type = SBFS_FILE, .mode = 0444, .read = read_state,
	 .help = "running, stopped, partial, missing or unknown, as docker says (cached 5 s)"},
	{.path = "/stacks/{NAME}/last_backup", .type = SBFS_FILE, .mode = 0444, .read = read_last_backup,
	 .help = "time, result, snapshot_id, duration_s, downtime_s, bytes_added... or \"never\""},
	{.path = "/stacks/{NAME}/path", .type = SBFS_FILE, .mode = 0444, .read = read_path,
	 .help = "the stack's directory"},
	{.path = "/stacks/{NAME}/snapshots", .type = SBFS_LINK, .mode = 0777, .link = link_snapshots,
	 .help = "symlink to ../../snapshots/NAME"},
	{.path = "/stacks/{NAME}/restore", .type = SBFS_FILE, .mode = 0644, .flags = SBFS_POLL,
	 .arg = SB_JOB_RESTORE_STACK, .read = read_trigger, .write = write_restore,
	 .help = "write latest, a snapshot id or a snapshots/NAME/ entry (cloud: prefix for the "
		 "cloud copy), optionally dry-run: queues a restore of this stack"},

	{.path = "/enabled", .type = SBFS_DIR, .mode = 0755, .list = list_enabled,
	 .help = "one empty directory per enabled stack: mkdir enables, rmdir disables"},
	{.path = "/enabled/{NAME}", .type = SBFS_DIR, .mode = 0755, .flags = SBFS_TOGGLE,
	 .lookup = lookup_enabled, .mkdir = mkdir_enabled, .rmdir = rmdir_enabled,
	 .help = "present iff NAME is enabled; mv enabled/NAME disabled/ disables"},
	{.path = "/disabled", .type = SBFS_DIR, .mode = 0755, .list = list_disabled,
	 .help = "one empty directory per disabled stack: mkdir disables"},
	{.path = "/disabled/{NAME}", .type = SBFS_DIR, .mode = 0755, .flags = SBFS_TOGGLE,
	 .lookup = lookup_disabled, .mkdir = mkdir_disabled, .rmdir = rmdir_disabled,
	 .help = "present iff NAME is disabled; mv disabled/NAME enabled/ enables (rmdir: EPERM)"},

	{.path = "/trigger", .type = SBFS_DIR, .mode = 0755,
	 .help = "write to queue a job; a read on the same open file gives \"job ID queued\", "
		 "a fresh read the last result \"job ID STATE\" or \"error: REASON\""},
	TRIGGER("backup", SB_JOB_BACKUP, "1 or all (enabled stacks), or stack names; optionally dry-run"),
	TRIGGER("sync", SB_JOB_SYNC, "1, optionally dry-run: check the repository, sync it to the cloud"),
	TRIGGER("restore", SB_JOB_RESTORE, "1, optionally force, dry-run: copy the repository back from the cloud"),
	TRIGGER("check", SB_JOB_CHECK, "1 or read-data: restic check of the repository"),
	TRIGGER("forget", SB_JOB_FORGET, "1 or all, or stack names; optionally dry-run: apply retention"),

	{.path = "/jobs", .type = SBFS_DIR, .mode = 0755, .list = list_jobs,
	 .help = "one directory per job (queued, running, the last 64 finished, and those kept in STATE_DIR)"},
	{.path = "/jobs/last", .type = SBFS_LINK, .mode = 0777, .lookup = lookup_last, .link = link_last,
	 .help = "symlink to the newest job"},
	{.path = "/jobs/{ID}", .type = SBFS_DIR, .mode = 0755, .lookup = lookup_job, .help = "job ID"},
	JOB_FILE("state", SB_JOB_FILE_STATE, 0444, SBFS_POLL, "queued, running, ok, failed or cancelled"),
	JOB_FILE("progress", SB_JOB_FILE_PROGRESS, 0444, SBFS_POLL,
		 "stack, phase, percent, bytes_done, bytes_total, files_done, files_total, eta_s"),
	JOB_FILE("log", SB_JOB_FILE_LOG, 0600, SBFS_APPEND, "the job's log lines (tail -f follows it)"),
	JOB_FILE("report", SB_JOB_FILE_REPORT, 0444, 0, "the job's report as JSON (per stack results)"),
	{.path = "/jobs/{ID}/cancel", .type = SBFS_FILE, .mode = 0644, .flags = SBFS_POLL, .read = read_cancel,
	 .write = write_cancel,
	 .help = "write 1 to cancel the job: a queued one never runs, a running one stops at its next step "
		 "and starts again every stack it stopped; reads as the job's state"},

	{.path = "/cloud", .type = SBFS_DIR, .mode = 0755, .help = "the cloud copy of the repository"},
	CLOUD_FILE("status", SBFS_CLOUD_STATUS, SBFS_POLL,
		   "idle, syncing, restoring, ok, or failed: REASON (with the step and percent while busy)"),
	CLOUD_FILE("remote", SBFS_CLOUD_REMOTE, 0, "RCLONE_REMOTE:RCLONE_PATH, or \"not configured\""),
	CLOUD_FILE("last_sync", SBFS_CLOUD_LAST_SYNC, 0,
		   "time, result, bytes, files, duration_s, remote, error of the last sync, or \"never\""),
	CLOUD_FILE("in_sync", SBFS_CLOUD_IN_SYNC, 0,
		   "verified, differs (with counts) or not verified: REASON, from the last rclone check"),
	CLOUD_FILE("progress", SBFS_CLOUD_PROGRESS, SBFS_POLL,
		   "phase, percent, bytes_done, bytes_total, files_done, files_total, eta_s, speed of a "
		   "transfer; \"phase: idle\" otherwise"),
	CLOUD_FILE("last_restore", SBFS_CLOUD_LAST_RESTORE, 0,
		   "time, result, target, bytes, duration_s, snapshots per stack of the last restore"),
	/* Below these two, fs/snapshots.c answers: only their README lines live here. */
	{.path = "/cloud/snapshots", .type = SBFS_DIR, .mode = 0555,
	 .help = "snapshots/ of the repository Stage 3 restored from the cloud, read-only"},
	{.path = "/snapshots", .type = SBFS_DIR, .mode = 0555,
	 .help = "NAME/SNAPSHOT/ per stack (YYYY-MM-DDTHH:MM:SS_ID, UTC) and NAME/latest, read-only"},
};

#define N_NODES SB_ARRAY_SIZE(nodes)

/* Derived once from the paths: parent index and last component of every node. */
static struct {
	int parent;
	const char *comp;
	size_t comp_len;
	bool wild;
} info[N_NODES];

static int index_of(const char *path, size_t len)
{
	for (size_t i = 0; i < N_NODES; i++)
		if (strlen(nodes[i].path) == len && strncmp(nodes[i].path, path, len) == 0)
			return (int)i;
	return -1;
}

static const char readme_head[] =
	"stackbackfs: the control filesystem of stackback\n"
	"\n"
	"Everything here is driven with cat, echo, mkdir, rmdir and mv (or a file\n"
	"manager). A write that is not understood fails with EINVAL (\"Invalid\n"
	"argument\") and the reason is in log and in the trigger's read-back; an\n"
	"unknown name is ENOENT; a full job queue (16 waiting) is EBUSY; a file\n"
	"that cannot be written is EACCES. Selection changes are saved to the\n"
	"dirlist before the command returns. poll(2) on status, status.json and\n"
	"jobs/ID/state wakes when they change. See stackbackfs(8) and\n"
	"docs/control-filesystem.md.\n"
	"\n";

void sbfs_nodes_init(struct sbfs *fs)
{
	struct sb_buf b = {0};
	sb_buf_puts(&b, readme_head);
	for (size_t i = 0; i < N_NODES; i++) {
		const char *path = nodes[i].path;
		const char *slash = strrchr(path, '/');
		info[i].comp = slash + 1;
		info[i].comp_len = strlen(slash + 1);
		info[i].wild = slash[1] == '{';
		info[i].parent = i == 0 ? -1 : index_of(path, slash == path ? 1 : (size_t)(slash - path));
		if (i > 0 && info[i].parent < 0)
			abort(); /* a table entry without its directory: a programming error */
		if (i == 0)
			continue;
		struct sb_buf shown = {0};
		for (const char *p = path + 1; *p; p++)
			if (*p != '{' && *p != '}')
				sb_buf_append(&shown, p, 1);
		if (nodes[i].type == SBFS_DIR)
			sb_buf_puts(&shown, "/");
		sb_buf_printf(&b, "%-26s %s\n", shown.data, nodes[i].help);
		sb_buf_free(&shown);
	}
	fs->readme = sb_buf_steal(&b);
}

void sbfs_nodes_free(struct sbfs *fs)
{
	free(fs->readme);
	fs->readme = NULL;
}

const struct sb_selection *sbfs_ctx_sel(struct sbfs_ctx *c)
{
	if (!c->sel)
		c->sel = sbfs_sel_get(c->fs);
	return &c->sel->sel;
}

void sbfs_ctx_done(struct sbfs_ctx *c)
{
	if (c->sel)
		sbfs_sel_put(c->fs, c->sel);
	c->sel = NULL;
	c->stack = NULL;
}

const struct sbfs_node *sbfs_wild_child(const struct sbfs_node *dir)
{
	int d = (int)(dir - nodes);
	for (size_t i = 1; i < N_NODES; i++)
		if (info[i].parent == d && info[i].wild)
			return &nodes[i];
	return NULL;
}

int sbfs_resolve(struct sbfs *fs, const char *path, struct sbfs_ctx *c)
{
	*c = (struct sbfs_ctx){.fs = fs};
	int cur = 0;
	const char *p = path;
	for (;;) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		const char *end = strchrnul(p, '/');
		size_t len = (size_t)(end - p);
		if (len >= sizeof(c->name))
			return -ENAMETOOLONG;
		if (nodes[cur].type != SBFS_DIR)
			return -ENOTDIR;
		char comp[sizeof(c->name)];
		memcpy(comp, p, len);
		comp[len] = '\0';
		int next = -1, wild = -1;
		for (size_t i = 1; i < N_NODES && next < 0; i++) {
			if (info[i].parent != cur)
				continue;
			if (info[i].wild)
				wild = (int)i;
			else if (info[i].comp_len == len && memcmp(info[i].comp, comp, len) == 0)
				next = (int)i;
		}
		if (next < 0 && wild < 0)
			return -ENOENT;
		if (next < 0)
			next = wild;
		if (nodes[next].lookup && nodes[next].lookup(c, comp) < 0)
			return -ENOENT;
		cur = next;
		p = end;
	}
	c->node = &nodes[cur];
	return 0;
}

void sbfs_children(struct sbfs_ctx *c, sbfs_child_fn fn, void *userdata)
{
	int d = (int)(c->node - nodes);
	for (size_t i = 1; i < N_NODES; i++) {
		if (info[i].parent != d)
			continue;
		if (info[i].wild) {
			struct sb_strv names = {0};
			if (c->node->list)
				c->node->list(c, &names);
			for (size_t k = 0; k < names.n; k++)
				fn(userdata, names.v[k], &nodes[i]);
			sb_strv_free(&names);
			continue;
		}
		/* A literal with a lookup (jobs/last) is listed only when it resolves. */
		if (nodes[i].lookup) {
			struct sbfs_ctx probe = {.fs = c->fs};
			int rc = nodes[i].lookup(&probe, info[i].comp);
			sbfs_ctx_done(&probe);
			if (rc < 0)
				continue;
		}
		fn(userdata, info[i].comp, &nodes[i]);
	}
}
