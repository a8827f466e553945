/*
 * The health checks of `stackback doctor` (doctor.h). Each check is a
 * function filling one sb_doctor_check; they run in table order, and a
 * check that needs another's result (the repository needs restic) reads
 * it from the report filled so far.
 */
#include "stackback/doctor.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "stackback/client.h"
#include "stackback/docker.h"
#include "stackback/restic.h"
#include "stackback/runner.h"
#include "stackback/state.h"
#include "stackback/util.h"

/* `restic version`, `docker version`...: answer at once or something is wrong. */
#define PROBE_TIMEOUT_S 15.0
/* Opening the repository costs ~0.7 s of key derivation; listing a big one a few seconds more. */
#define REPOSITORY_TIMEOUT_S 120.0
/* restic 0.14 brought compression, which the repositories stackback creates use. */
#define RESTIC_MIN_MAJOR 0
#define RESTIC_MIN_MINOR 14

struct doctor {
	const struct sb_config *cfg;
	const struct sb_doctor_opts *o;
	struct sb_doctor_report *rep;
	/* "stackback -c FILE ...": the prefix of fixes that run stackback again. */
	char *sb;
};

typedef void (*check_fn)(struct doctor *d, struct sb_doctor_check *c);

struct check_def {
	const char *name;
	const char *title;
	check_fn run;
};

static const char *const result_names[] = {
	[SB_DOCTOR_OK] = "ok",
	[SB_DOCTOR_WARNING] = "warning",
	[SB_DOCTOR_FAILED] = "failed",
	[SB_DOCTOR_SKIPPED] = "skipped",
};

const char *sb_doctor_result_name(enum sb_doctor_result r)
{
	return result_names[r];
}

static void set(struct sb_doctor_check *c, enum sb_doctor_result r, char *fix, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Records the outcome; takes ownership of fix (may be NULL). */
static void set(struct sb_doctor_check *c, enum sb_doctor_result r, char *fix, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	free(c->detail);
	c->detail = xvasprintf(fmt, ap);
	va_end(ap);
	free(c->fix);
	c->fix = fix;
	c->result = r;
}

/* A word as the shell reads it back: bare when harmless, else in single quotes. */
static char *shq(const char *s)
{
	bool plain = *s != '\0';
	for (const char *p = s; *p && plain; p++)
		plain = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:@%+=,-", *p) != NULL;
	if (plain)
		return xstrdup(s);
	struct sb_buf b = {0};
	sb_buf_puts(&b, "'");
	for (const char *p = s; *p; p++) {
		if (*p == '\'')
			sb_buf_puts(&b, "'\\''");
		else
			sb_buf_append(&b, p, 1);
	}
	sb_buf_puts(&b, "'");
	return sb_buf_steal(&b);
}

/*
 * Runs argv with a timeout and returns its first stdout line (caller
 * frees), or NULL with *why describing the failure (caller frees).
 */
static char *probe(const char *const *argv, const char *const *env_add, double timeout,
		   const atomic_bool *cancel, char **why)
{
	struct sb_run_opts o = {
		.argv = argv,
		.env_add = env_add,
		.timeout_s = timeout,
		.capture_stdout = true,
		.capture_stderr = true,
		.cancel = cancel,
	};
	struct sb_run_result res;
	char *line = NULL;
	if (sb_run(&o, &res) == 0) {
		const char *out = res.out ? res.out : "";
		line = sb_run_printable(out, strcspn(out, "\n"));
	} else {
		*why = sb_run_describe(&res, timeout);
	}
	sb_run_result_free(&res);
	return line;
}

static const struct sb_doctor_check *earlier(const struct doctor *d, const char *name)
{
	for (size_t i = 0; i < d->rep->n; i++)
		if (strcmp(d->rep->v[i].name, name) == 0)
			return &d->rep->v[i];
	return NULL;
}

static bool earlier_ok(const struct doctor *d, const char *name)
{
	const struct sb_doctor_check *c = earlier(d, name);
	return c && (c->result == SB_DOCTOR_OK || c->result == SB_DOCTOR_WARNING);
}

/* ---- configuration and files ---- */

static void check_config(struct doctor *d, struct sb_doctor_check *c)
{
	const struct sb_config *cfg = d->cfg;
	const struct sb_diags *diags = d->o->diags;
	size_t errors = diags ? sb_diags_count(diags, SB_DIAG_ERROR) : 0;
	size_t warnings = diags ? sb_diags_count(diags, SB_DIAG_WARNING) : 0;
	const struct sb_diag *first = NULL;
	for (size_t i = 0; diags && i < diags->n && !first; i++)
		if (diags->v[i].severity == (errors ? SB_DIAG_ERROR : SB_DIAG_WARNING))
			first = &diags->v[i];

	if (first) {
		cleanup_free char *where = first->line > 0 ? xasprintf("%s:%d", first->file, first->line)
							   : xstrdup(first->file);
		struct stat st;
		char *fix;
		if (first->line == 0 && stat(first->file, &st) < 0 && errno == ENOENT) {
			cleanup_free char *q = shq(first->file);
			fix = xasprintf("stackback config init %s", q);
		} else {
			fix = xasprintf("%s config check", d->sb);
		}
		if (errors)
			set(c, SB_DOCTOR_FAILED, fix, "%zu error(s), %zu warning(s); first: %s: %s", errors,
			    warnings, where, first->message);
		else
			set(c, SB_DOCTOR_WARNING, fix, "%zu warning(s); first: %s: %s", warnings, where,
			    first->message);
		return;
	}
	struct sb_buf files = {0};
	for (size_t i = 0; i < cfg->files.n; i++)
		sb_buf_printf(&files, "%s%s", i ? ", " : "", cfg->files.v[i]);
	if (files.len)
		set(c, SB_DOCTOR_OK, NULL, "loaded %s", files.data);
	else
		set(c, SB_DOCTOR_OK, NULL, "no file loaded: defaults and environment only");
	sb_buf_free(&files);
}

/* Files that hold secrets: the config files (RESTIC_PASSWORD), PASSWORD_FILE, RCLONE_CONFIG. */
static void check_permissions(struct doctor *d, struct sb_doctor_check *c)
{
	const struct sb_config *cfg = d->cfg;
	struct sb_strv paths = {0};
	for (size_t i = 0; i < cfg->files.n; i++)
		sb_strv_push(&paths, cfg->files.v[i]);
	if (cfg->password_file)
		sb_strv_push(&paths, cfg->password_file);
	if (cfg->rclone_config && access(cfg->rclone_config, F_OK) == 0)
		sb_strv_push(&paths, cfg->rclone_config);

	struct sb_buf loose = {0}, quoted = {0};
	cleanup_free char *missing = NULL;
	size_t n_loose = 0;
	for (size_t i = 0; i < paths.n; i++) {
		struct stat st;
		if (stat(paths.v[i], &st) < 0) {
			if (!missing)
				missing = xasprintf("%s: %s", paths.v[i], strerror(errno));
			continue;
		}
		if (st.st_mode & (S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH)) {
			cleanup_free char *q = shq(paths.v[i]);
			sb_buf_printf(&loose, "%s%s (mode %04o)", n_loose ? ", " : "", paths.v[i],
				      (unsigned)(st.st_mode & 07777));
			sb_buf_printf(&quoted, " %s", q);
			n_loose++;
		}
	}
	if (missing && cfg->password_file && sb_str_has_prefix(missing, cfg->password_file)) {
		cleanup_free char *q = shq(cfg->password_file);
		set(c, SB_DOCTOR_FAILED,
		    xasprintf("(umask 077; printf '%%s\\n' 'REPOSITORY-PASSWORD' > %s)", q),
		    "PASSWORD_FILE %s", missing);
	} else if (n_loose) {
		set(c, cfg->allow_loose_permissions ? SB_DOCTOR_WARNING : SB_DOCTOR_FAILED,
		    xasprintf("chmod 600%s", quoted.data),
		    "readable or writable by group or others: %s%s", loose.data,
		    cfg->allow_loose_permissions ? " (allowed by ALLOW_LOOSE_PERMISSIONS)" : "");
	} else if (paths.n) {
		set(c, SB_DOCTOR_OK, NULL, "%zu file(s) holding secrets are private to their owner", paths.n);
	} else {
		set(c, SB_DOCTOR_SKIPPED, NULL, "no config, password or rclone file in use");
	}
	sb_buf_free(&loose);
	sb_buf_free(&quoted);
	sb_strv_free(&paths);
}

static void check_state(struct doctor *d, struct sb_doctor_check *c)
{
	const struct sb_config *cfg = d->cfg;
	cleanup_free char *q = shq(cfg->state_dir);
	struct stat st;
	if (stat(cfg->state_dir, &st) < 0) {
		if (errno == ENOENT)
			set(c, SB_DOCTOR_WARNING, xasprintf("%s init", d->sb),
			    "STATE_DIR %s does not exist yet (the first job or 'stackback init' creates it)",
			    cfg->state_dir);
		else
			set(c, SB_DOCTOR_FAILED, xasprintf("ls -ld %s  # and fix its parent's permissions", q),
			    "STATE_DIR %s: %s", cfg->state_dir, strerror(errno));
		return;
	}
	if (!S_ISDIR(st.st_mode) || access(cfg->state_dir, W_OK | X_OK) < 0) {
		set(c, SB_DOCTOR_FAILED, xasprintf("chown -R %ld %s", (long)geteuid(), q),
		    "STATE_DIR %s is not a directory this user (uid %ld) can write", cfg->state_dir,
		    (long)geteuid());
		return;
	}
	struct sb_journal_entry *e = NULL;
	size_t n = 0;
	int rc = sb_journal_read(cfg, &e, &n);
	if (rc < 0) {
		set(c, SB_DOCTOR_FAILED, xasprintf("%s recover", d->sb), "cannot read the journal in %s: %s",
		    cfg->state_dir, strerror(-rc));
		return;
	}
	if (n) {
		struct sb_buf names = {0};
		for (size_t i = 0; i < n; i++)
			sb_buf_printf(&names, "%s%s", i ? ", " : "", e[i].name);
		sb_journal_entries_free(e, n);
		pid_t holder = sb_lock_holder(cfg);
		if (holder > 0)
			set(c, SB_DOCTOR_OK, NULL, "job running (pid %ld) with stopped stack(s): %s",
			    (long)holder, names.data);
		else
			set(c, SB_DOCTOR_FAILED, xasprintf("%s recover", d->sb),
			    "an interrupted run left stack(s) stopped: %s", names.data);
		sb_buf_free(&names);
		return;
	}
	pid_t holder = sb_lock_holder(cfg);
	if (holder > 0)
		set(c, SB_DOCTOR_OK, NULL, "%s: a job is running (pid %ld holds the job lock)", cfg->state_dir,
		    (long)holder);
	else
		set(c, SB_DOCTOR_OK, NULL, "%s is writable, no job running, no stack left stopped",
		    cfg->state_dir);
}

/* ---- programs ---- */

static void check_docker(struct doctor *d, struct sb_doctor_check *c)
{
	if (!sb_program_exists("docker")) {
		set(c, SB_DOCTOR_FAILED, xstrdup("apt-get install docker.io"), "docker is not installed (not in PATH)");
		return;
	}
	double timeout = PROBE_TIMEOUT_S;
	if (d->cfg->docker_timeout > 0 && d->cfg->docker_timeout < timeout)
		timeout = (double)d->cfg->docker_timeout;
	static const char *const argv[] = {"docker", "version", "--format", "{{.Server.Version}}", NULL};
	cleanup_free char *why = NULL;
	cleanup_free char *version = probe(argv, NULL, timeout, d->o->cancel, &why);
	if (!version) {
		char *fix = strstr(why, "permission denied")
			? xasprintf("usermod -aG docker %s  # or run stackback as root", getenv("USER") ? getenv("USER") : "USER")
			: xstrdup("systemctl start docker");
		set(c, SB_DOCTOR_FAILED, fix, "the Docker engine does not answer: docker version %s", why);
		return;
	}
	set(c, SB_DOCTOR_OK, NULL, "Docker engine %s answers", version);
}

static void check_compose(struct doctor *d, struct sb_doctor_check *c)
{
	struct sb_compose compose;
	cleanup_free char *err = NULL;
	if (sb_compose_detect(d->cfg, &compose, &err) < 0) {
		set(c, SB_DOCTOR_FAILED,
		    xstrdup(d->cfg->compose_cmd ? "fix COMPOSE_CMD in the configuration"
						: "apt-get install docker-compose  # or Docker's docker-compose-plugin"),
		    "%s", err);
		return;
	}
	struct sb_strv argv = {0};
	struct sb_buf cmd = {0};
	for (size_t i = 0; i < compose.argv.n; i++) {
		sb_strv_push(&argv, compose.argv.v[i]);
		sb_buf_printf(&cmd, "%s%s", i ? " " : "", compose.argv.v[i]);
	}
	sb_strv_push(&argv, "version");
	sb_strv_push(&argv, "--short");
	cleanup_free char *why = NULL;
	cleanup_free char *version = probe((const char *const *)argv.v, NULL, PROBE_TIMEOUT_S, d->o->cancel, &why);
	const char *how = d->cfg->compose_cmd ? "from COMPOSE_CMD" : "auto-detected";
	if (version)
		set(c, SB_DOCTOR_OK, NULL, "'%s' %s (%s)", cmd.data, version, how);
	else
		set(c, SB_DOCTOR_FAILED,
		    xstrdup(d->cfg->compose_cmd ? "fix COMPOSE_CMD in the configuration" : "apt-get install docker-compose"),
		    "'%s' (%s) does not work: version %s", cmd.data, how, why);
	sb_buf_free(&cmd);
	sb_strv_free(&argv);
	sb_compose_free(&compose);
}

static void check_restic(struct doctor *d, struct sb_doctor_check *c)
{
	if (!sb_program_exists("restic")) {
		set(c, SB_DOCTOR_FAILED, xstrdup("apt-get install restic"), "restic is not installed (not in PATH)");
		return;
	}
	static const char *const argv[] = {"restic", "version", NULL};
	cleanup_free char *why = NULL;
	cleanup_free char *line = probe(argv, NULL, PROBE_TIMEOUT_S, d->o->cancel, &why);
	if (!line) {
		set(c, SB_DOCTOR_FAILED, xstrdup("apt-get install --reinstall restic"), "restic version %s", why);
		return;
	}
	/* "restic 0.14.0 compiled with go1.19.8 on linux/amd64" */
	int major, minor;
	if (sscanf(line, "restic %d.%d", &major, &minor) != 2) {
		set(c, SB_DOCTOR_WARNING, xstrdup("apt-get install restic"), "unrecognised version line: %s", line);
		return;
	}
	/* Keep "restic 0.14.0", drop the compiler and platform. */
	char *compiled = strstr(line, " compiled");
	if (compiled)
		*compiled = '\0';
	if (major < RESTIC_MIN_MAJOR || (major == RESTIC_MIN_MAJOR && minor < RESTIC_MIN_MINOR))
		set(c, SB_DOCTOR_FAILED, xstrdup("apt-get install restic  # from Debian 12 or newer"),
		    "%s is too old: %d.%d or newer is needed (compressed repositories)", line,
		    RESTIC_MIN_MAJOR, RESTIC_MIN_MINOR);
	else
		set(c, SB_DOCTOR_OK, NULL, "%s", line);
}

/* A repository string restic treats as a local path ("/x", "local:/x"); NULL for backends. */
static const char *local_repository(const char *repo)
{
	if (sb_str_has_prefix(repo, "local:"))
		return repo + strlen("local:");
	if (repo[0] == '/' || !strchr(repo, ':'))
		return repo;
	return NULL;
}

/* Each restic failure the adapter recognises, with its cure. */
static char *repository_fix(const struct doctor *d, const char *err)
{
	cleanup_free char *repo = shq(d->cfg->restic_repository);
	if (strstr(err, "does not exist"))
		return xasprintf("%s init", d->sb);
	if (strstr(err, "wrong password"))
		return xstrdup("set RESTIC_PASSWORD, PASSWORD_FILE or PASSWORD_COMMAND to this repository's password");
	if (strstr(err, "locked"))
		return xasprintf("restic -r %s unlock  # only while no backup runs", repo);
	if (strstr(err, "PASSWORD_FILE") || strstr(err, "PASSWORD_COMMAND") || strstr(err, "password"))
		return xasprintf("%s config check", d->sb);
	return xasprintf("restic -r %s snapshots  # shows restic's whole message", repo);
}

static void check_repository(struct doctor *d, struct sb_doctor_check *c)
{
	const struct sb_config *cfg = d->cfg;
	if (!cfg->restic_repository || !*cfg->restic_repository) {
		set(c, SB_DOCTOR_FAILED, xstrdup("set RESTIC_REPOSITORY in [local_backup]"),
		    "no repository configured (RESTIC_REPOSITORY)");
		return;
	}
	if (!earlier_ok(d, "restic")) {
		set(c, SB_DOCTOR_SKIPPED, NULL, "restic is not usable");
		return;
	}
	struct sb_restic r;
	cleanup_free char *err = NULL;
	if (sb_restic_open(&r, cfg, cfg->restic_repository, &err) < 0) {
		set(c, SB_DOCTOR_FAILED, repository_fix(d, err), "no password for '%s': %s",
		    cfg->restic_repository, err);
		return;
	}
	if (r.timeout_s <= 0 || r.timeout_s > REPOSITORY_TIMEOUT_S)
		r.timeout_s = (long)REPOSITORY_TIMEOUT_S;
	r.cancel = d->o->cancel;
	struct sb_snapshot_list l;
	if (sb_restic_snapshots(&r, NULL, &l, &err) < 0) {
		set(c, SB_DOCTOR_FAILED, repository_fix(d, err), "'%s' does not open: %s", cfg->restic_repository, err);
		sb_restic_close(&r);
		return;
	}
	sb_restic_close(&r);
	struct sb_strv stacks = {0};
	for (size_t i = 0; i < l.n; i++)
		if (l.v[i].stack && !sb_strv_contains(&stacks, l.v[i].stack))
			sb_strv_push(&stacks, l.v[i].stack);
	char newest[32] = "";
	if (l.n)
		sb_format_time_utc(l.v[l.n - 1].time_utc, newest, sizeof(newest));
	if (l.n)
		set(c, SB_DOCTOR_OK, NULL, "'%s' opens with the password: %zu snapshot(s) of %zu stack(s), newest %s",
		    cfg->restic_repository, l.n, stacks.n, newest);
	else
		set(c, SB_DOCTOR_OK, NULL, "'%s' opens with the password: no snapshots yet", cfg->restic_repository);
	sb_strv_free(&stacks);
	sb_snapshot_list_free(&l);
}

static void check_disk(struct doctor *d, struct sb_doctor_check *c)
{
	const struct sb_config *cfg = d->cfg;
	const char *path = cfg->restic_repository ? local_repository(cfg->restic_repository) : NULL;
	if (!path || !*path) {
		set(c, SB_DOCTOR_SKIPPED, NULL, "the repository is not a local path");
		return;
	}
	/* The repository may not exist yet: measure the filesystem it will be created on. */
	cleanup_free char *dir = xstrdup(path);
	struct statvfs vfs;
	while (statvfs(dir, &vfs) < 0) {
		char *slash = strrchr(dir, '/');
		if (!slash) {
			set(c, SB_DOCTOR_FAILED, xasprintf("mkdir -p %s", path), "cannot measure the space at '%s': %s",
			    path, strerror(errno));
			return;
		}
		if (slash == dir)
			slash[1] = '\0';
		else
			*slash = '\0';
	}
	uint64_t free_bytes = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	uint64_t free_mb = free_bytes / (1024 * 1024);
	char human[32];
	sb_format_bytes(free_bytes, human, sizeof(human));
	if (free_mb < (uint64_t)cfg->min_disk_space_mb) {
		cleanup_free char *q = shq(dir);
		set(c, SB_DOCTOR_FAILED,
		    xasprintf("free space on the filesystem of %s, or drop old snapshots: %s forget", q, d->sb),
		    "only %s free where the repository lives ('%s'); MIN_DISK_SPACE_MB is %ld", human, dir,
		    cfg->min_disk_space_mb);
		return;
	}
	set(c, SB_DOCTOR_OK, NULL, "%s free where the repository lives ('%s'); MIN_DISK_SPACE_MB is %ld", human,
	    dir, cfg->min_disk_space_mb);
}

static void check_rclone(struct doctor *d, struct sb_doctor_check *c)
{
	bool needed = d->cfg->rclone_remote && *d->cfg->rclone_remote;
	if (!sb_program_exists("rclone")) {
		if (needed)
			set(c, SB_DOCTOR_FAILED, xstrdup("apt-get install rclone"),
			    "rclone is not installed (not in PATH); RCLONE_REMOTE needs it");
		else
			set(c, SB_DOCTOR_SKIPPED, NULL, "rclone is not installed; no cloud remote is configured");
		return;
	}
	static const char *const argv[] = {"rclone", "version", NULL};
	cleanup_free char *why = NULL;
	cleanup_free char *line = probe(argv, NULL, PROBE_TIMEOUT_S, d->o->cancel, &why);
	if (!line)
		set(c, needed ? SB_DOCTOR_FAILED : SB_DOCTOR_WARNING, xstrdup("apt-get install --reinstall rclone"),
		    "rclone version %s", why);
	else
		set(c, SB_DOCTOR_OK, NULL, "%s", line);
}

static void check_remote(struct doctor *d, struct sb_doctor_check *c)
{
	const struct sb_config *cfg = d->cfg;
	if (!cfg->rclone_remote || !*cfg->rclone_remote) {
		set(c, SB_DOCTOR_SKIPPED, NULL, "no cloud remote configured (RCLONE_REMOTE)");
		return;
	}
	if (!earlier_ok(d, "rclone")) {
		set(c, SB_DOCTOR_SKIPPED, NULL, "rclone is not usable");
		return;
	}
	cleanup_free char *root = xasprintf("%s:", cfg->rclone_remote);
	struct sb_strv argv = {0};
	sb_strv_push(&argv, "rclone");
	if (cfg->rclone_config) {
		sb_strv_push(&argv, "--config");
		sb_strv_push(&argv, cfg->rclone_config);
	}
	/* One attempt: doctor asks whether it answers, a sync's retries come later. */
	static const char *const tail[] = {"--retries", "1", "--low-level-retries", "1", "lsd", NULL};
	for (size_t i = 0; tail[i]; i++)
		sb_strv_push(&argv, tail[i]);
	sb_strv_push(&argv, root);
	double timeout = cfg->remote_timeout > 0 ? (double)cfg->remote_timeout : 60;
	struct sb_run_opts o = {
		.argv = (const char *const *)argv.v,
		.timeout_s = timeout,
		.capture_stdout = true,
		.capture_stderr = true,
		.cancel = d->o->cancel,
	};
	struct sb_run_result res;
	int rc = sb_run(&o, &res);
	cleanup_free char *qconf = cfg->rclone_config ? shq(cfg->rclone_config) : NULL;
	cleanup_free char *edit = qconf ? xasprintf("rclone config --config %s", qconf) : xstrdup("rclone config");
	if (rc != 0) {
		cleanup_free char *why = sb_run_describe(&res, timeout);
		bool unknown = res.err && strstr(res.err, "didn't find section in config file");
		set(c, SB_DOCTOR_FAILED,
		    unknown ? xasprintf("%s  # create the remote '%s'", edit, cfg->rclone_remote)
			    : xasprintf("%s  # check the remote '%s', its credentials and the network", edit,
					cfg->rclone_remote),
		    "remote '%s' does not answer: rclone lsd %s", root, why);
	} else {
		size_t dirs = 0;
		for (const char *p = res.out ? res.out : ""; (p = strchr(p, '\n')); p++)
			dirs++;
		cleanup_free char *spec = cfg->rclone_path && *cfg->rclone_path
			? xasprintf("%s:%s", cfg->rclone_remote, cfg->rclone_path) : xstrdup(root);
		set(c, SB_DOCTOR_OK, NULL, "remote '%s' answers (%zu top-level director%s); syncs go to '%s'", root,
		    dirs, dirs == 1 ? "y" : "ies", spec);
	}
	sb_run_result_free(&res);
	sb_strv_free(&argv);
}

static void check_mount(struct doctor *d, struct sb_doctor_check *c)
{
	const char *mp = d->cfg->mountpoint;
	cleanup_free char *err = NULL;
	switch (sb_mount_state(mp, &err)) {
	case SB_MOUNT_MOUNTED:
		set(c, SB_DOCTOR_OK, NULL, "stackbackfs is mounted at %s: jobs run in the daemon", mp);
		break;
	case SB_MOUNT_ABSENT:
		set(c, SB_DOCTOR_OK, NULL, "not mounted at %s: jobs run in the calling process ('stackback mount' starts the daemon)",
		    mp);
		break;
	case SB_MOUNT_STALE: {
		cleanup_free char *q = shq(mp);
		set(c, SB_DOCTOR_FAILED, xasprintf("fusermount3 -u %s", q), "%s", err ? err : "stale mount");
		break;
	}
	}
}

static void check_notify(struct doctor *d, struct sb_doctor_check *c)
{
	const struct sb_config *cfg = d->cfg;
	bool command = cfg->notify_command && *cfg->notify_command;
	bool url = cfg->healthcheck_url && *cfg->healthcheck_url;
	if (!command && !url) {
		set(c, SB_DOCTOR_SKIPPED, NULL, "no NOTIFY_COMMAND or HEALTHCHECK_URL configured");
		return;
	}
	/* Only what can be known without sending anything: a ping would change the check's state. */
	if (command) {
		struct sb_strv argv = {0};
		cleanup_free char *err = NULL;
		if (sb_split_command(cfg->notify_command, &argv, &err) < 0) {
			set(c, SB_DOCTOR_FAILED, xasprintf("%s config check", d->sb), "NOTIFY_COMMAND: %s", err);
			return;
		}
		const char *prog = argv.v[0];
		bool found = strchr(prog, '/') ? access(prog, X_OK) == 0 : sb_program_exists(prog);
		if (!found) {
			set(c, SB_DOCTOR_FAILED, xstrdup("fix NOTIFY_COMMAND in [stackback]"),
			    "NOTIFY_COMMAND: '%s' is not an executable program", prog);
			sb_strv_free(&argv);
			return;
		}
		sb_strv_free(&argv);
	}
	if (url && !sb_str_has_prefix(cfg->healthcheck_url, "http://") &&
	    !sb_str_has_prefix(cfg->healthcheck_url, "https://")) {
		set(c, SB_DOCTOR_FAILED, xstrdup("fix HEALTHCHECK_URL in [stackback]"),
		    "HEALTHCHECK_URL is not an http:// or https:// URL");
		return;
	}
	if (url && !sb_program_exists("curl")) {
		set(c, SB_DOCTOR_FAILED, xstrdup("apt-get install curl"), "HEALTHCHECK_URL needs curl, which is not installed");
		return;
	}
	set(c, SB_DOCTOR_OK, NULL, "%s%s%s", command ? "NOTIFY_COMMAND runs" : "",
	    command && url ? "; " : "", url ? "HEALTHCHECK_URL is pinged with curl (backup and sync)" : "");
}

static const struct check_def checks[] = {
	{"config", "Configuration", check_config},
	{"permissions", "Secret files", check_permissions},
	{"state", "State directory", check_state},
	{"docker", "Docker engine", check_docker},
	{"compose", "Compose command", check_compose},
	{"restic", "restic", check_restic},
	{"repository", "Repository", check_repository},
	{"disk", "Free disk space", check_disk},
	{"rclone", "rclone", check_rclone},
	{"remote", "Cloud remote", check_remote},
	{"mount", "Control filesystem", check_mount},
	{"notify", "Notifications", check_notify},
};

size_t sb_doctor_check_count(void)
{
	return SB_ARRAY_SIZE(checks);
}

const char *sb_doctor_check_name(size_t i)
{
	return i < SB_ARRAY_SIZE(checks) ? checks[i].name : NULL;
}

const char *sb_doctor_check_title(size_t i)
{
	return i < SB_ARRAY_SIZE(checks) ? checks[i].title : NULL;
}

size_t sb_doctor_run(const struct sb_config *cfg, const struct sb_doctor_opts *o, struct sb_doctor_report *rep)
{
	static const struct sb_doctor_opts none;
	*rep = (struct sb_doctor_report){.v = xcalloc(SB_ARRAY_SIZE(checks), sizeof(*rep->v))};
	struct doctor d = {.cfg = cfg, .o = o ? o : &none, .rep = rep};
	struct sb_buf sb = {0};
	sb_buf_puts(&sb, "stackback");
	for (size_t i = 0; i < cfg->files.n; i++) {
		cleanup_free char *q = shq(cfg->files.v[i]);
		sb_buf_printf(&sb, " -c %s", q);
	}
	d.sb = sb_buf_steal(&sb);

	for (size_t i = 0; i < SB_ARRAY_SIZE(checks); i++) {
		struct sb_doctor_check *c = &rep->v[rep->n++];
		c->name = checks[i].name;
		c->title = checks[i].title;
		if (d.o->cancel && atomic_load(d.o->cancel)) {
			set(c, SB_DOCTOR_SKIPPED, NULL, "cancelled");
		} else {
			double t0 = sb_now_monotonic();
			checks[i].run(&d, c);
			c->duration_s = sb_now_monotonic() - t0;
		}
		if (c->result == SB_DOCTOR_FAILED)
			rep->failed++;
		if (d.o->on_check)
			d.o->on_check(d.o->userdata, i, c);
	}
	free(d.sb);
	return rep->failed;
}

void sb_doctor_report_free(struct sb_doctor_report *rep)
{
	for (size_t i = 0; i < rep->n; i++) {
		free(rep->v[i].detail);
		free(rep->v[i].fix);
	}
	free(rep->v);
	*rep = (struct sb_doctor_report){0};
}

struct json_object *sb_doctor_json(const struct sb_doctor_report *rep)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "ok", json_object_new_boolean(rep->failed == 0));
	json_object_object_add(o, "failed", json_object_new_int((int)rep->failed));
	struct json_object *arr = json_object_new_array();
	for (size_t i = 0; i < rep->n; i++) {
		const struct sb_doctor_check *c = &rep->v[i];
		struct json_object *e = json_object_new_object();
		json_object_object_add(e, "name", json_object_new_string(c->name));
		json_object_object_add(e, "title", json_object_new_string(c->title));
		json_object_object_add(e, "result", json_object_new_string(result_names[c->result]));
		json_object_object_add(e, "detail", json_object_new_string(c->detail ? c->detail : ""));
		json_object_object_add(e, "fix", c->fix ? json_object_new_string(c->fix) : NULL);
		json_object_object_add(e, "duration_s", json_object_new_double((double)(int64_t)(c->duration_s * 1000) / 1000));
		json_object_array_add(arr, e);
	}
	json_object_object_add(o, "checks", arr);
	return o;
}

char *sb_doctor_text(const struct sb_doctor_report *rep)
{
	struct sb_buf b = {0};
	for (size_t i = 0; i < rep->n; i++) {
		const struct sb_doctor_check *c = &rep->v[i];
		/* Upper case catches the eye in a long list; the other words stay quiet. */
		const char *word = c->result == SB_DOCTOR_FAILED ? "FAILED" : result_names[c->result];
		sb_buf_printf(&b, "%-8s %-12s %s\n", word, c->name, c->detail ? c->detail : "");
		if (c->fix)
			sb_buf_printf(&b, "%-8s %-12s fix: %s\n", "", "", c->fix);
	}
	if (rep->failed)
		sb_buf_printf(&b, "%zu check(s) failed\n", rep->failed);
	else
		sb_buf_puts(&b, "all checks passed\n");
	return sb_buf_steal(&b);
}
