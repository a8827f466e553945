/*
 * Configuration (SPEC §3). One table, keys[], describes every key: its
 * section, aliases, type, field, default and a one-line meaning. Loading,
 * environment overrides, `config show`, the JSON form and the reference in
 * docs/configuration.md are all walks over that table, so a key added
 * there is parsed, shown and documented at once.
 *
 * Loading never stops at the first problem: every line is checked and
 * every problem becomes one FILE:LINE diagnostic, so `config check` can
 * list them all. The values that could be read are kept either way.
 */
#include "stackback/config.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stackback/log.h"
#include "stackback/runner.h"
#include "stackback/util.h"

/* Generated from config/config.ini.example at build time. */
extern const char sb_config_template_text[];

/* Bounds that keep a hostile or corrupt file from costing much. */
#define CONFIG_FILE_MAX (4u << 20)
#define CONFIG_LINE_MAX 65536
#define CONFIG_ERRORS_MAX 20
/* Longest piece of user text quoted back in a message. */
#define QUOTE_MAX 60
/* PASSWORD_COMMAND may wait for a pinentry or a vault, but not forever. */
#define PASSWORD_COMMAND_TIMEOUT_S 60.0
#define PASSWORD_FILE_MAX 65536

enum key_type {
	KEY_STRING,     /* free text; empty = unset */
	KEY_COMMAND,    /* a command line, split into words without a shell */
	KEY_PATH,       /* relative = relative to the config file's directory */
	KEY_REPOSITORY, /* a restic repository: a path, or backend:location */
	KEY_REMOTE,     /* an rclone remote name; a trailing colon is dropped */
	KEY_SECRET,     /* text never shown */
	KEY_LONG,       /* decimal integer in [min, max] */
	KEY_BOOL,
	KEY_ENUM,       /* one of choices, stored as its index (an enum) */
	KEY_CHOICE,     /* one of choices, stored as the canonical string */
	KEY_LIST,       /* comma-separated, stored as an sb_strv */
	KEY_SAME_AS_REPOSITORY, /* legacy RCLONE_SOURCE_DIR: checked, not stored */
};

struct key_def {
	const char *name;
	const char *aliases[2]; /* NULL-terminated when shorter */
	const char *section;
	enum key_type type;
	size_t offset;          /* into struct sb_config */
	const char *def;        /* parsed like a value; NULL = unset */
	const char *def_doc;    /* the default as documented when def is NULL */
	long min, max;          /* KEY_LONG */
	const char *const *choices; /* KEY_ENUM, KEY_CHOICE: NULL-terminated */
	bool required;
	const char *env;        /* environment variable when not the key's name */
	bool per_stack;         /* may be set in a stack's own .stackback/config too */
	const char *doc;
};

static const char *const verify_depth_names[] = {"metadata", "files", "data", NULL};
static const char *const stop_mode_names[] = {"stop", "down", NULL};
static const char *const snapshot_mode_names[] = {"off", "auto", "btrfs", "reflink", NULL};
static const char *const log_level_names[] = {"error", "warning", "info", "debug", NULL};
static const char *const snapshot_reader_names[] = {"auto", "restic", NULL};

_Static_assert(sizeof(enum sb_verify_depth) == sizeof(int), "KEY_ENUM stores an int");
_Static_assert(sizeof(enum sb_stop_mode) == sizeof(int), "KEY_ENUM stores an int");
_Static_assert(sizeof(enum sb_snapshot_mode) == sizeof(int), "KEY_ENUM stores an int");
_Static_assert(sizeof(enum sb_snapshot_reader) == sizeof(int), "KEY_ENUM stores an int");

#define OFF(field) offsetof(struct sb_config, field)
#define DAY 86400L

static const struct key_def keys[] = {
	/* [docker] */
	{.name = "DOCKER_STACKS_DIR", .aliases = {"BACKUP_DIR"}, .section = "docker",
	 .type = KEY_PATH, .offset = OFF(stacks_dir), .required = true,
	 .doc = "the folder holding one directory per compose stack"},
	{.name = "DOCKER_TIMEOUT", .section = "docker", .type = KEY_LONG,
	 .offset = OFF(docker_timeout), .def = "30", .min = 1, .max = DAY,
	 .doc = "seconds allowed for each docker compose stop/start/down/up"},

	/* [local_backup] */
	{.name = "RESTIC_REPOSITORY", .section = "local_backup", .type = KEY_REPOSITORY,
	 .offset = OFF(restic_repository), .required = true,
	 .doc = "the restic repository: a path, or a restic backend such as sftp:host:/path"},
	{.name = "RESTIC_PASSWORD", .section = "local_backup", .type = KEY_SECRET,
	 .offset = OFF(restic_password),
	 .doc = "the repository password itself (never shown); first of the three methods"},
	{.name = "PASSWORD_FILE", .aliases = {"RESTIC_PASSWORD_FILE"}, .section = "local_backup",
	 .type = KEY_PATH, .offset = OFF(password_file),
	 .doc = "a file whose first line is the password; must be mode 0600"},
	{.name = "PASSWORD_COMMAND", .aliases = {"RESTIC_PASSWORD_COMMAND"},
	 .section = "local_backup", .type = KEY_COMMAND, .offset = OFF(password_command),
	 .doc = "a command printing the password (split into words, no shell)"},
	{.name = "BACKUP_TIMEOUT", .section = "local_backup", .type = KEY_LONG,
	 .offset = OFF(backup_timeout), .def = "3600", .min = 1, .max = 7 * DAY,
	 .doc = "seconds allowed for one stack's restic backup"},
	{.name = "HOSTNAME", .section = "local_backup", .type = KEY_STRING,
	 .offset = OFF(hostname), .def_doc = "the machine's", .env = "STACKBACK_HOSTNAME",
	 .doc = "host name recorded in the snapshots"},
	{.name = "KEEP_DAILY", .section = "local_backup", .type = KEY_LONG,
	 .offset = OFF(keep_daily), .def = "7", .min = 0, .max = 1000000,
	 .doc = "retention: daily snapshots kept per stack"},
	{.name = "KEEP_WEEKLY", .section = "local_backup", .type = KEY_LONG,
	 .offset = OFF(keep_weekly), .def = "4", .min = 0, .max = 1000000,
	 .doc = "retention: weekly snapshots kept per stack"},
	{.name = "KEEP_MONTHLY", .section = "local_backup", .type = KEY_LONG,
	 .offset = OFF(keep_monthly), .def = "6", .min = 0, .max = 1000000,
	 .doc = "retention: monthly snapshots kept per stack"},
	{.name = "KEEP_YEARLY", .section = "local_backup", .type = KEY_LONG,
	 .offset = OFF(keep_yearly), .def = "2", .min = 0, .max = 1000000,
	 .doc = "retention: yearly snapshots kept per stack"},
	{.name = "AUTO_PRUNE", .section = "local_backup", .type = KEY_BOOL,
	 .offset = OFF(auto_prune), .def = "false",
	 .doc = "run restic forget --prune with the KEEP_* policy after each backup"},
	{.name = "ENABLE_VERIFICATION", .aliases = {"ENABLE_BACKUP_VERIFICATION"},
	 .section = "local_backup", .type = KEY_BOOL, .offset = OFF(enable_verification),
	 .def = "true", .doc = "verify each new snapshot"},
	{.name = "VERIFICATION_DEPTH", .section = "local_backup", .type = KEY_ENUM,
	 .offset = OFF(verification_depth), .def = "metadata", .choices = verify_depth_names,
	 .doc = "metadata (the snapshot lists), files (file count equals the source's), "
		"data (restic check --read-data)"},

	/* [cloud_sync] */
	{.name = "RCLONE_REMOTE", .section = "cloud_sync", .type = KEY_REMOTE,
	 .offset = OFF(rclone_remote),
	 .doc = "the rclone remote's name, as in rclone listremotes (a trailing colon is dropped)"},
	{.name = "RCLONE_PATH", .aliases = {"RCLONE_BACKUP_PATH"}, .section = "cloud_sync",
	 .type = KEY_STRING, .offset = OFF(rclone_path),
	 .doc = "the path on the remote that receives the repository"},
	{.name = "RCLONE_SOURCE_DIR", .section = "cloud_sync", .type = KEY_SAME_AS_REPOSITORY,
	 .doc = "legacy: accepted if it equals RESTIC_REPOSITORY (stackback syncs the repository), "
		"an error otherwise"},
	{.name = "TRANSFERS", .aliases = {"RCLONE_TRANSFERS"}, .section = "cloud_sync",
	 .type = KEY_LONG, .offset = OFF(transfers), .def = "4", .min = 1, .max = 256,
	 .doc = "parallel rclone transfers"},
	{.name = "RETRIES", .aliases = {"RCLONE_RETRIES"}, .section = "cloud_sync",
	 .type = KEY_LONG, .offset = OFF(retries), .def = "3", .min = 0, .max = 100,
	 .doc = "rclone retries of a failed sync"},
	{.name = "BANDWIDTH", .aliases = {"RCLONE_BANDWIDTH"}, .section = "cloud_sync",
	 .type = KEY_STRING, .offset = OFF(bandwidth), .def_doc = "unlimited",
	 .doc = "bandwidth limit in rclone's --bwlimit syntax, e.g. 10M"},

	/* [stackback] */
	{.name = "STATE_DIR", .section = "stackback", .type = KEY_PATH,
	 .offset = OFF(state_dir), .def = "/var/lib/stackback",
	 .doc = "job history, lock, journal and log file"},
	{.name = "DIRLIST", .section = "stackback", .type = KEY_PATH, .offset = OFF(dirlist),
	 .def_doc = "`$STATE_DIR/dirlist`", .doc = "the selection file (NAME=true|false per stack)"},
	{.name = "MOUNTPOINT", .section = "stackback", .type = KEY_PATH,
	 .offset = OFF(mountpoint), .def = "/mnt/stackback",
	 .doc = "where stackbackfs mounts the control filesystem"},
	{.name = "RESTORE_DIR", .aliases = {"RCLONE_RESTORE_DIR"}, .section = "stackback",
	 .type = KEY_PATH, .offset = OFF(restore_dir), .def_doc = "`$STATE_DIR/restored`",
	 .doc = "where Stage 3 restores the repository from the cloud"},
	{.name = "COMPOSE_CMD", .section = "stackback", .type = KEY_COMMAND,
	 .offset = OFF(compose_cmd), .def_doc = "`docker compose`, else `docker-compose`",
	 .doc = "the compose command (split into words)"},
	{.name = "STOP_MODE", .section = "stackback", .type = KEY_ENUM, .offset = OFF(stop_mode),
	 .def = "stop", .choices = stop_mode_names,
	 .doc = "stop: compose stop/start (containers kept); down: compose down/up -d"},
	{.name = "RCLONE_CONFIG", .section = "stackback", .type = KEY_PATH,
	 .offset = OFF(rclone_config), .def_doc = "rclone's own", .doc = "rclone's configuration file"},
	{.name = "EXCLUDES", .section = "stackback", .type = KEY_LIST, .offset = OFF(excludes),
	 .doc = "comma-separated restic --exclude patterns for every stack"},
	{.name = "HOOK_TIMEOUT", .section = "stackback", .type = KEY_LONG,
	 .offset = OFF(hook_timeout), .def = "300", .min = 1, .max = DAY,
	 .doc = "seconds allowed for each pre/post hook"},
	{.name = "REMOTE_TIMEOUT", .section = "stackback", .type = KEY_LONG,
	 .offset = OFF(remote_timeout), .def = "60", .min = 1, .max = DAY,
	 .doc = "seconds allowed for a quick remote operation (listing, reachability)"},
	{.name = "MIN_DISK_SPACE_MB", .section = "stackback", .type = KEY_LONG,
	 .offset = OFF(min_disk_space_mb), .def = "1024", .min = 0, .max = 1L << 30,
	 .doc = "free space (MiB) the repository's filesystem needs before a backup"},
	{.name = "ALLOW_OTHER", .section = "stackback", .type = KEY_BOOL,
	 .offset = OFF(allow_other), .def = "false",
	 .doc = "let other users see the control filesystem"},
	{.name = "ALLOW_LOOSE_PERMISSIONS", .section = "stackback", .type = KEY_BOOL,
	 .offset = OFF(allow_loose_permissions), .def = "false",
	 .doc = "config and password files readable by group/others: a warning, not an error"},
	{.name = "SNAPSHOT_CACHE_MB", .section = "stackback", .type = KEY_LONG,
	 .offset = OFF(snapshot_cache_mb), .def = "256", .min = 0, .max = 1L << 20,
	 .doc = "memory (MiB) for the snapshot trees' metadata"},
	{.name = "CONTENT_CACHE_MB", .section = "stackback", .type = KEY_LONG,
	 .offset = OFF(content_cache_mb), .def = "2048", .min = 0, .max = 1L << 20,
	 .doc = "memory (MiB) for file contents read from snapshots"},
	{.name = "SNAPSHOT_READER", .section = "stackback", .type = KEY_ENUM,
	 .offset = OFF(snapshot_reader), .def = "auto", .choices = snapshot_reader_names,
	 .doc = "who reads snapshots for browsing: auto (stackback's own reader for a repository on a "
		"local path, see docs/restic-reader.md; restic for others or a format it refuses), "
		"restic (always restic)"},
	{.name = "SNAPSHOT_MODE", .section = "stackback", .type = KEY_ENUM,
	 .offset = OFF(snapshot_mode), .def = "off", .choices = snapshot_mode_names, .per_stack = true,
	 .doc = "stop the stack only while a copy-on-write snapshot of it is taken, then back up "
		"the snapshot while it runs: off, auto (the best the filesystem offers, else off), "
		"btrfs (subvolume snapshot or reflink copy), reflink (XFS, btrfs); see "
		"docs/snapshot-mode.md"},
	{.name = "SNAPSHOT_STAGING", .section = "stackback", .type = KEY_PATH,
	 .offset = OFF(snapshot_staging), .per_stack = true,
	 .def_doc = "`.stackback-staging` beside the stack, else at the top of its filesystem",
	 .doc = "where SNAPSHOT_MODE puts its copies: a private directory on the stack's "
		"filesystem, outside the stack"},
	{.name = "NOTIFY_COMMAND", .section = "stackback", .type = KEY_COMMAND,
	 .offset = OFF(notify_command),
	 .doc = "a command run when a job starts and ends (words, no shell), told what happened in "
		"STACKBACK_EVENT (start, success, failure), STACKBACK_STAGE, STACKBACK_STACK, "
		"STACKBACK_FAILED, STACKBACK_SUMMARY, STACKBACK_JOB"},
	{.name = "HEALTHCHECK_URL", .section = "stackback", .type = KEY_STRING,
	 .offset = OFF(healthcheck_url),
	 .doc = "a healthchecks.io-style URL pinged by backup and sync jobs: URL/start when one "
		"starts, URL when it succeeds, URL/fail when it fails or cannot start"},
	{.name = "LOG_LEVEL", .section = "stackback", .type = KEY_CHOICE,
	 .offset = OFF(log_level), .def = "info", .choices = log_level_names,
	 .doc = "error, warning, info or debug"},
	{.name = "SYSLOG_SOCKET", .section = "stackback", .type = KEY_PATH,
	 .offset = OFF(syslog_socket), .def_doc = "no syslog",
	 .doc = "a syslog datagram socket, e.g. /dev/log"},
};

#define N_KEYS SB_ARRAY_SIZE(keys)

static const char *const sections[] = {"docker", "local_backup", "cloud_sync", "stackback"};

/*
 * docker-compose-backup keys stackback has no use for: accepted without a
 * warning so the bash-era files load unchanged (docs/configuration.md
 * lists them).
 */
static const char *const ignored_keys[] = {
	"CHECK_SYSTEM_RESOURCES",
	"MEMORY_THRESHOLD_MB",
	"LOAD_THRESHOLD",
	"ENABLE_PERFORMANCE_MODE",
	"ENABLE_DOCKER_STATE_CACHE",
	"ENABLE_PARALLEL_PROCESSING",
	"MAX_PARALLEL_JOBS",
	"ENABLE_JSON_LOGGING",
	"JSON_LOG_FILE",
	"ENABLE_PROGRESS_BARS",
	"ENABLE_METRICS_COLLECTION",
	"METRICS_FILE",
	"ENABLE_PASSWORD_FILE",
	"ENABLE_PASSWORD_COMMAND",
	"RCLONE_LOG_FILE",
	"RCLONE_EXTRA_OPTIONS",
};

/* ---- diagnostics ---- */

void sb_diags_add(struct sb_diags *d, const char *file, int line, enum sb_diag_severity sev,
		  const char *fmt, ...)
{
	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 8;
		d->v = xrealloc(d->v, d->cap * sizeof(*d->v));
	}
	va_list ap;
	va_start(ap, fmt);
	d->v[d->n++] = (struct sb_diag){
		.file = xstrdup(file),
		.line = line,
		.severity = sev,
		.message = xvasprintf(fmt, ap),
	};
	va_end(ap);
}

size_t sb_diags_count(const struct sb_diags *d, enum sb_diag_severity sev)
{
	size_t n = 0;
	for (size_t i = 0; i < d->n; i++)
		if (d->v[i].severity == sev)
			n++;
	return n;
}

void sb_diags_print(const struct sb_diags *d, FILE *out)
{
	for (size_t i = 0; i < d->n; i++) {
		const struct sb_diag *g = &d->v[i];
		const char *sev = g->severity == SB_DIAG_ERROR ? "error" : "warning";
		if (g->line > 0)
			fprintf(out, "%s:%d: %s: %s\n", g->file, g->line, sev, g->message);
		else
			fprintf(out, "%s: %s: %s\n", g->file, sev, g->message);
	}
}

void sb_diags_free(struct sb_diags *d)
{
	for (size_t i = 0; i < d->n; i++) {
		free(d->v[i].file);
		free(d->v[i].message);
	}
	free(d->v);
	*d = (struct sb_diags){0};
}

/* ---- small helpers ---- */

const char *sb_verify_depth_name(enum sb_verify_depth d)
{
	return verify_depth_names[d];
}

const char *sb_stop_mode_name(enum sb_stop_mode m)
{
	return stop_mode_names[m];
}

const char *sb_snapshot_mode_name(enum sb_snapshot_mode m)
{
	return snapshot_mode_names[m];
}

/* User text quoted in a message: bounded, control bytes shown as '?'. */
static char *quote_text(const char *s)
{
	size_t len = strlen(s);
	size_t n = len > QUOTE_MAX ? QUOTE_MAX : len;
	char *q = xmalloc(n + 4);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		q[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	strcpy(q + n, len > n ? "..." : "");
	return q;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static char *skip_blanks(char *s)
{
	while (is_blank(*s))
		s++;
	return s;
}

static void strip_trailing_blanks(char *s)
{
	size_t n = strlen(s);
	while (n > 0 && is_blank(s[n - 1]))
		s[--n] = '\0';
}

static bool valid_key_name(const char *k)
{
	if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') || *k == '_'))
		return false;
	for (k++; *k; k++)
		if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') || (*k >= '0' && *k <= '9') ||
		      *k == '_'))
			return false;
	return true;
}

/*
 * Joins base and a relative path and drops empty and "." components;
 * ".." is kept, because resolving it lexically is wrong across symlinks.
 */
static char *path_resolve(const char *value, const char *base)
{
	cleanup_free char *joined = value[0] == '/' || !base ? xstrdup(value)
							      : xasprintf("%s/%s", base, value);
	struct sb_buf b = {0};
	if (joined[0] == '/')
		sb_buf_puts(&b, "/");
	char *save = NULL;
	for (char *c = strtok_r(joined, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		if (strcmp(c, ".") == 0)
			continue;
		if (b.len > 0 && b.data[b.len - 1] != '/')
			sb_buf_puts(&b, "/");
		sb_buf_puts(&b, c);
	}
	if (b.len == 0)
		sb_buf_puts(&b, ".");
	return sb_buf_steal(&b);
}

/* The directory relative values in path are relative to (caller frees). */
static char *base_dir_of(const char *path)
{
	cleanup_free char *abs = NULL;
	if (path[0] != '/') {
		cleanup_free char *cwd = getcwd(NULL, 0);
		abs = cwd ? xasprintf("%s/%s", cwd, path) : xstrdup(path);
	} else {
		abs = xstrdup(path);
	}
	char *slash = strrchr(abs, '/');
	if (!slash)
		return xstrdup(".");
	if (slash == abs)
		return xstrdup("/");
	return xstrndup(abs, (size_t)(slash - abs));
}

int sb_split_command(const char *cmd, struct sb_strv *argv, char **err)
{
	struct sb_strv words = {0};
	struct sb_buf word = {0};
	bool in_word = false;
	for (const char *p = cmd; *p; p++) {
		if (*p == '\'' || *p == '"') {
			const char *close = strchr(p + 1, *p);
			if (!close) {
				*err = xasprintf("unterminated %s quote",
						 *p == '"' ? "double" : "single");
				sb_buf_free(&word);
				sb_strv_free(&words);
				return -1;
			}
			sb_buf_append(&word, p + 1, (size_t)(close - p - 1));
			in_word = true;
			p = close;
		} else if (is_blank(*p)) {
			if (in_word)
				sb_strv_push_owned(&words, sb_buf_steal(&word));
			in_word = false;
		} else {
			sb_buf_append(&word, p, 1);
			in_word = true;
		}
	}
	if (in_word)
		sb_strv_push_owned(&words, sb_buf_steal(&word));
	if (words.n == 0) {
		*err = xstrdup("the command is empty");
		return -1;
	}
	*argv = words;
	return 0;
}

/* ---- the table's fields ---- */

#define FIELD(cfg, k, type) ((type *)(void *)((char *)(cfg) + (k)->offset))
#define CFIELD(cfg, k, type) ((const type *)(const void *)((const char *)(cfg) + (k)->offset))

static int choice_index(const struct key_def *k, const char *value)
{
	for (int i = 0; k->choices[i]; i++)
		if (strcasecmp(value, k->choices[i]) == 0)
			return i;
	return -1;
}

static char *choices_text(const struct key_def *k)
{
	struct sb_buf b = {0};
	for (size_t i = 0; k->choices[i]; i++) {
		if (i > 0)
			sb_buf_puts(&b, k->choices[i + 1] ? ", " : " or ");
		sb_buf_puts(&b, k->choices[i]);
	}
	return sb_buf_steal(&b);
}

static void replace_string(char **field, char *value)
{
	free(*field);
	*field = value;
}

/*
 * Stores value (NUL-terminated, already unquoted) in k's field. An empty
 * value means the default. Relative paths are resolved against base
 * (NULL: kept as given). Returns 0, or -1 with *err (caller frees) and
 * the field untouched.
 */
static int set_key(struct sb_config *cfg, const struct key_def *k, const char *value,
		   const char *base, char **err)
{
	if (!*value)
		value = k->def;
	switch (k->type) {
	case KEY_STRING:
	case KEY_SECRET:
		replace_string(FIELD(cfg, k, char *), xstrdup(value));
		return 0;
	case KEY_COMMAND:
		if (value) {
			struct sb_strv words;
			char *why = NULL;
			if (sb_split_command(value, &words, &why) < 0) {
				*err = xasprintf("%s: %s", k->name, why);
				free(why);
				return -1;
			}
			sb_strv_free(&words);
		}
		replace_string(FIELD(cfg, k, char *), xstrdup(value));
		return 0;
	case KEY_PATH:
		replace_string(FIELD(cfg, k, char *), value ? path_resolve(value, base) : NULL);
		return 0;
	case KEY_REPOSITORY:
		/* "sftp:host:/x", "rest:http://..." are restic backends, not paths. */
		replace_string(FIELD(cfg, k, char *),
			       !value ? NULL : strchr(value, ':') ? xstrdup(value)
								  : path_resolve(value, base));
		return 0;
	case KEY_REMOTE: {
		char *remote = NULL;
		if (value) {
			size_t n = strlen(value);
			if (value[n - 1] == ':')
				n--;
			if (n > 0)
				remote = xstrndup(value, n);
		}
		replace_string(FIELD(cfg, k, char *), remote);
		return 0;
	}
	case KEY_LONG: {
		long v;
		if (sb_parse_long(value, k->min, k->max, &v) < 0) {
			cleanup_free char *q = quote_text(value);
			if (errno == ERANGE)
				*err = xasprintf("%s: %s is out of range (%ld to %ld)", k->name, q,
						 k->min, k->max);
			else
				*err = xasprintf("%s: '%s' is not a number", k->name, q);
			return -1;
		}
		*FIELD(cfg, k, long) = v;
		return 0;
	}
	case KEY_BOOL:
		if (sb_parse_bool(value, FIELD(cfg, k, bool)) < 0) {
			cleanup_free char *q = quote_text(value);
			*err = xasprintf("%s: '%s' is not a boolean (use true or false)", k->name, q);
			return -1;
		}
		return 0;
	case KEY_ENUM:
	case KEY_CHOICE: {
		int i = choice_index(k, value);
		if (i < 0) {
			cleanup_free char *q = quote_text(value);
			cleanup_free char *expected = choices_text(k);
			*err = xasprintf("%s: unknown value '%s' (expected %s)", k->name, q, expected);
			return -1;
		}
		if (k->type == KEY_ENUM)
			*FIELD(cfg, k, int) = i;
		else
			replace_string(FIELD(cfg, k, char *), xstrdup(k->choices[i]));
		return 0;
	}
	case KEY_LIST: {
		struct sb_strv *list = FIELD(cfg, k, struct sb_strv);
		sb_strv_free(list);
		if (!value)
			return 0;
		cleanup_free char *copy = xstrdup(value);
		char *save = NULL;
		for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
			sb_strstrip(item);
			if (*item)
				sb_strv_push(list, item);
		}
		return 0;
	}
	case KEY_SAME_AS_REPOSITORY:
		break;
	}
	abort(); /* KEY_SAME_AS_REPOSITORY is handled by the loader */
}

static void apply_table_defaults(struct sb_config *cfg)
{
	*cfg = (struct sb_config){0};
	for (size_t i = 0; i < N_KEYS; i++) {
		if (!keys[i].def)
			continue;
		char *err = NULL;
		if (set_key(cfg, &keys[i], keys[i].def, NULL, &err) < 0) {
			/* A bad default is a bug in the table; torture_config catches it. */
			fprintf(stderr, "stackback: bad built-in default: %s\n", err);
			abort();
		}
	}
}

/* Defaults that follow STATE_DIR unless they were set. */
static void apply_derived_defaults(struct sb_config *cfg)
{
	if (!cfg->dirlist)
		cfg->dirlist = xasprintf("%s/dirlist", cfg->state_dir);
	if (!cfg->restore_dir)
		cfg->restore_dir = xasprintf("%s/restored", cfg->state_dir);
}

void sb_config_defaults(struct sb_config *cfg)
{
	apply_table_defaults(cfg);
	apply_derived_defaults(cfg);
}

void sb_config_free(struct sb_config *cfg)
{
	for (size_t i = 0; i < N_KEYS; i++) {
		const struct key_def *k = &keys[i];
		switch (k->type) {
		case KEY_STRING:
		case KEY_COMMAND:
		case KEY_PATH:
		case KEY_REPOSITORY:
		case KEY_REMOTE:
		case KEY_CHOICE:
			free(*FIELD(cfg, k, char *));
			break;
		case KEY_SECRET: {
			char *secret = *FIELD(cfg, k, char *);
			if (secret)
				explicit_bzero(secret, strlen(secret));
			free(secret);
			break;
		}
		case KEY_LIST:
			sb_strv_free(FIELD(cfg, k, struct sb_strv));
			break;
		case KEY_LONG:
		case KEY_BOOL:
		case KEY_ENUM:
		case KEY_SAME_AS_REPOSITORY:
			break;
		}
	}
	sb_strv_free(&cfg->files);
	*cfg = (struct sb_config){0};
}

static const struct key_def *find_key(const char *name)
{
	for (size_t i = 0; i < N_KEYS; i++) {
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
		for (size_t a = 0; a < SB_ARRAY_SIZE(keys[i].aliases) && keys[i].aliases[a]; a++)
			if (strcmp(keys[i].aliases[a], name) == 0)
				return &keys[i];
	}
	return NULL;
}

static bool is_ignored_key(const char *name)
{
	for (size_t i = 0; i < SB_ARRAY_SIZE(ignored_keys); i++)
		if (strcmp(ignored_keys[i], name) == 0)
			return true;
	return false;
}

/* A known name that differs only in case, for "did you mean". */
static const char *case_twin(const char *name)
{
	for (size_t i = 0; i < N_KEYS; i++) {
		if (strcasecmp(keys[i].name, name) == 0)
			return keys[i].name;
		for (size_t a = 0; a < SB_ARRAY_SIZE(keys[i].aliases) && keys[i].aliases[a]; a++)
			if (strcasecmp(keys[i].aliases[a], name) == 0)
				return keys[i].aliases[a];
	}
	return NULL;
}

/* ---- loading ---- */

/* Where a key got its value; file NULL = the default. */
struct origin {
	const char *file;
	int line;
};

struct loose_file {
	const char *file;
	mode_t mode;
};

struct loader {
	struct sb_config *cfg;
	struct sb_diags *diags;
	bool stack_file;               /* a stack's .stackback/config: per_stack keys only */
	struct origin origin[N_KEYS];
	char *source_dir;              /* RCLONE_SOURCE_DIR, NULL if not given */
	struct origin source_dir_origin;
	struct loose_file *loose;      /* config files open to group/others */
	size_t n_loose;
	bool incomplete;               /* a file could not be read in full */
	size_t file_errors;            /* errors in the file being parsed */
};

static const char env_origin[] = "environment";

static void diag(struct loader *L, const char *file, int line, enum sb_diag_severity sev,
		 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void diag(struct loader *L, const char *file, int line, enum sb_diag_severity sev,
		 const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cleanup_free char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	sb_diags_add(L->diags, file, line, sev, "%s", msg);
	if (sev == SB_DIAG_ERROR)
		L->file_errors++;
}

static void set_from(struct loader *L, const struct key_def *k, const char *value,
		     const char *base, const char *file, int line)
{
	if (k->type == KEY_SAME_AS_REPOSITORY) {
		free(L->source_dir);
		L->source_dir = !*value ? NULL : strchr(value, ':') ? xstrdup(value)
								    : path_resolve(value, base);
		L->source_dir_origin = (struct origin){file, line};
		return;
	}
	char *err = NULL;
	if (set_key(L->cfg, k, value, base, &err) < 0) {
		diag(L, file, line, SB_DIAG_ERROR, "%s", err);
		free(err);
		return;
	}
	L->origin[k - keys] = (struct origin){file, line};
}

enum { SECTION_NONE = -1, SECTION_UNKNOWN = -2 };

/* Per-file parsing state. */
struct file_ctx {
	const char *file;
	const char *base;
	int lineno;
	int section;         /* index into sections[], or SECTION_* */
	int seen[N_KEYS];    /* line where each key was set in this file, 0 = not yet */
};

static void parse_section(struct loader *L, struct file_ctx *f, char *p)
{
	char *close = strchr(p, ']');
	if (!close) {
		diag(L, f->file, f->lineno, SB_DIAG_ERROR, "malformed section header: missing ']'");
		f->section = SECTION_UNKNOWN;
		return;
	}
	char *rest = skip_blanks(close + 1);
	if (*rest && *rest != '#') {
		diag(L, f->file, f->lineno, SB_DIAG_ERROR,
		     "malformed section header: unexpected text after ']'");
		f->section = SECTION_UNKNOWN;
		return;
	}
	*close = '\0';
	char *name = skip_blanks(p + 1);
	strip_trailing_blanks(name);
	if (!*name) {
		diag(L, f->file, f->lineno, SB_DIAG_ERROR, "malformed section header: empty name");
		f->section = SECTION_UNKNOWN;
		return;
	}
	for (size_t i = 0; i < SB_ARRAY_SIZE(sections); i++) {
		if (strcasecmp(name, sections[i]) == 0) {
			f->section = (int)i;
			return;
		}
	}
	cleanup_free char *q = quote_text(name);
	diag(L, f->file, f->lineno, SB_DIAG_WARNING,
	     "unknown section [%s]: its keys are ignored (known: [docker], [local_backup], "
	     "[cloud_sync], [stackback])",
	     q);
	f->section = SECTION_UNKNOWN;
}

/*
 * Splits the text after '=' into the value: quoted (taken literally up to
 * the same quote) or bare (up to a '#' that follows a blank, trailing
 * blanks dropped). Returns the value inside raw, or NULL with *why.
 */
static char *parse_value(char *raw, const char **why)
{
	char *v = skip_blanks(raw);
	if (*v == '"' || *v == '\'') {
		char *close = strchr(v + 1, *v);
		if (!close) {
			*why = "unterminated quote";
			return NULL;
		}
		char *rest = skip_blanks(close + 1);
		if (*rest && !(*rest == '#' && rest > close + 1)) {
			*why = "unexpected text after the closing quote";
			return NULL;
		}
		*close = '\0';
		return v + 1;
	}
	for (char *c = v; *c; c++) {
		/* c[-1] is at worst the '=' itself: "KEY=#x" is the value "#x". */
		if (*c == '#' && is_blank(c[-1])) {
			*c = '\0';
			break;
		}
	}
	strip_trailing_blanks(v);
	return v;
}

static void parse_assignment(struct loader *L, struct file_ctx *f, char *p)
{
	char *eq = strchr(p, '=');
	if (!eq) {
		diag(L, f->file, f->lineno, SB_DIAG_ERROR,
		     "malformed line: expected KEY=VALUE, [section] or a # comment");
		return;
	}
	*eq = '\0';
	char *key = p;
	strip_trailing_blanks(key);
	if (!*key) {
		diag(L, f->file, f->lineno, SB_DIAG_ERROR, "malformed line: no key before '='");
		return;
	}
	if (!valid_key_name(key)) {
		cleanup_free char *q = quote_text(key);
		if (sb_str_has_prefix(key, "export") && is_blank(key[6]))
			diag(L, f->file, f->lineno, SB_DIAG_ERROR,
			     "'export' is not supported: write KEY=VALUE");
		else
			diag(L, f->file, f->lineno, SB_DIAG_ERROR,
			     "malformed line: '%s' is not a key name (letters, digits, '_')", q);
		return;
	}
	const char *why = NULL;
	char *value = parse_value(eq + 1, &why);
	if (!value) {
		cleanup_free char *q = quote_text(key);
		diag(L, f->file, f->lineno, SB_DIAG_ERROR, "%s: %s", q, why);
		return;
	}
	if (f->section == SECTION_UNKNOWN)
		return;

	const struct key_def *k = find_key(key);
	if (!k) {
		cleanup_free char *quoted = quote_text(key);
		if (strcmp(key, "RCLONE_EXTRA_OPTIONS") == 0 && *value)
			diag(L, f->file, f->lineno, SB_DIAG_WARNING,
			     "RCLONE_EXTRA_OPTIONS is not supported and is ignored: give rclone "
			     "options in its environment (RCLONE_<FLAG>=...) or in RCLONE_CONFIG");
		else if (is_ignored_key(key))
			return;
		else if (case_twin(key))
			diag(L, f->file, f->lineno, SB_DIAG_WARNING,
			     "unknown key %s (ignored; did you mean %s?)", key, case_twin(key));
		else
			diag(L, f->file, f->lineno, SB_DIAG_WARNING, "unknown key %s (ignored)",
			     quoted);
		return;
	}
	if (L->stack_file && !k->per_stack) {
		diag(L, f->file, f->lineno, SB_DIAG_WARNING,
		     "%s cannot be set for one stack (ignored; set it in the main config)", k->name);
		return;
	}
	size_t idx = (size_t)(k - keys);
	if (f->seen[idx])
		diag(L, f->file, f->lineno, SB_DIAG_WARNING,
		     "duplicate key %s (%s is already set at line %d): the last value wins", key,
		     k->name, f->seen[idx]);
	f->seen[idx] = f->lineno;
	if (f->section >= 0 && strcmp(sections[f->section], k->section) != 0)
		diag(L, f->file, f->lineno, SB_DIAG_WARNING,
		     "%s belongs in section [%s], not [%s] (used anyway)", key, k->section,
		     sections[f->section]);
	set_from(L, k, value, f->base, f->file, f->lineno);
}

/* Returns false if the line held bytes no config file has. */
static bool check_line_bytes(struct loader *L, struct file_ctx *f, const char *s, size_t n)
{
	if (n > CONFIG_LINE_MAX) {
		diag(L, f->file, f->lineno, SB_DIAG_ERROR,
		     "line is too long (%zu bytes; the limit is %d)", n, CONFIG_LINE_MAX);
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\0') {
			diag(L, f->file, f->lineno, SB_DIAG_ERROR,
			     "line contains a NUL byte (is this a text file?)");
			return false;
		}
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			diag(L, f->file, f->lineno, SB_DIAG_ERROR,
			     "line contains the control character 0x%02x (is this a text file?)", c);
			return false;
		}
	}
	return true;
}

static void parse_text(struct loader *L, const char *file, const char *base, const char *data,
		       size_t len)
{
	struct file_ctx f = {.file = file, .base = base, .section = SECTION_NONE};
	size_t pos = 0;
	if (len >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0)
		pos = 3; /* a UTF-8 byte order mark, as some editors write */
	L->file_errors = 0;
	while (pos < len) {
		f.lineno++;
		if (L->file_errors >= CONFIG_ERRORS_MAX) {
			diag(L, file, f.lineno, SB_DIAG_ERROR,
			     "too many errors: the rest of the file is not checked");
			L->incomplete = true;
			return;
		}
		const char *start = data + pos;
		const char *nl = memchr(start, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - start) : len - pos;
		pos += n + (nl ? 1 : 0);
		if (n > 0 && start[n - 1] == '\r')
			n--;
		if (!check_line_bytes(L, &f, start, n))
			continue;
		cleanup_free char *line = xstrndup(start, n);
		char *p = skip_blanks(line);
		if (!*p || *p == '#')
			continue;
		if (*p == '[')
			parse_section(L, &f, p);
		else
			parse_assignment(L, &f, p);
	}
}

static int read_fd(int fd, size_t max, char **out, size_t *len)
{
	struct sb_buf b = {0};
	char chunk[65536];
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			sb_buf_free(&b);
			return -e;
		}
		if (n == 0)
			break;
		if (b.len + (size_t)n > max) {
			sb_buf_free(&b);
			return -EFBIG;
		}
		sb_buf_append(&b, chunk, (size_t)n);
	}
	*len = b.len;
	*out = sb_buf_steal(&b);
	return 0;
}

/* Relative paths in the file resolve against base (NULL: the file's directory). */
static void load_file(struct loader *L, const char *path, const char *base)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		diag(L, path, 0, SB_DIAG_ERROR, "cannot open config file: %s", strerror(errno));
		L->incomplete = true;
		return;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		diag(L, path, 0, SB_DIAG_ERROR, "cannot stat config file: %s", strerror(errno));
		L->incomplete = true;
		return;
	}
	if (!S_ISREG(st.st_mode)) {
		diag(L, path, 0, SB_DIAG_ERROR, "not a regular file");
		L->incomplete = true;
		return;
	}
	cleanup_free char *data = NULL;
	size_t len = 0;
	int rc = read_fd(fd, CONFIG_FILE_MAX, &data, &len);
	if (rc == -EFBIG) {
		diag(L, path, 0, SB_DIAG_ERROR, "config file is larger than %u MiB",
		     CONFIG_FILE_MAX >> 20);
		L->incomplete = true;
		return;
	}
	if (rc < 0) {
		diag(L, path, 0, SB_DIAG_ERROR, "cannot read config file: %s", strerror(-rc));
		L->incomplete = true;
		return;
	}
	sb_strv_push(&L->cfg->files, path);
	const char *file = L->cfg->files.v[L->cfg->files.n - 1];
	if (st.st_mode & (S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH)) {
		L->loose = xrealloc(L->loose, (L->n_loose + 1) * sizeof(*L->loose));
		L->loose[L->n_loose++] = (struct loose_file){file, st.st_mode & 07777};
	}
	cleanup_free char *file_dir = base ? NULL : base_dir_of(path);
	parse_text(L, file, base ? base : file_dir, data, len);
}

static const char *env_lookup(char *const *envp, const char *name)
{
	size_t n = strlen(name);
	for (; *envp; envp++)
		if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
			return *envp + n + 1;
	return NULL;
}

static void apply_env(struct loader *L, char *const *envp)
{
	if (!envp)
		return;
	cleanup_free char *cwd = getcwd(NULL, 0);
	for (size_t i = 0; i < N_KEYS; i++) {
		const struct key_def *k = &keys[i];
		/* The key's own name wins over its aliases. */
		const char *value = env_lookup(envp, k->env ? k->env : k->name);
		for (size_t a = 0; !value && !k->env && a < SB_ARRAY_SIZE(k->aliases) && k->aliases[a];
		     a++)
			value = env_lookup(envp, k->aliases[a]);
		if (value)
			set_from(L, k, value, cwd, env_origin, 0);
	}
}

/*
 * 0: private; 1: open to group/others (*err says so); -1: cannot be
 * checked (*err says why). *err is set in both failure cases.
 */
static int private_file_state(const char *path, char **err)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		*err = xasprintf("cannot access %s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		*err = xasprintf("%s is not a regular file", path);
		return -1;
	}
	if (st.st_mode & (S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH)) {
		*err = xasprintf("%s is readable or writable by group or others (mode %04o): "
				 "run 'chmod 600 %s'",
				 path, (unsigned)(st.st_mode & 07777), path);
		return 1;
	}
	return 0;
}

int sb_check_private_file(const char *path, char **err)
{
	return private_file_state(path, err) == 0 ? 0 : -1;
}

/* Repository locations compared the way a user means them. */
static char *repository_key(const char *repo)
{
	const char *r = sb_str_has_prefix(repo, "local:") ? repo + 6 : repo;
	char *k = xstrdup(r);
	size_t n = strlen(k);
	while (n > 1 && k[n - 1] == '/')
		k[--n] = '\0';
	return k;
}

static void check_passwords(struct loader *L, const char *where)
{
	struct sb_config *cfg = L->cfg;
	static const char *const methods[] = {"RESTIC_PASSWORD", "PASSWORD_FILE", "PASSWORD_COMMAND"};
	const char *values[] = {cfg->restic_password, cfg->password_file, cfg->password_command};
	const char *used = NULL;
	for (size_t i = 0; i < SB_ARRAY_SIZE(methods); i++) {
		if (!values[i])
			continue;
		const struct key_def *k = find_key(methods[i]);
		struct origin o = L->origin[k - keys];
		if (!used)
			used = methods[i];
		else
			diag(L, o.file, o.line, SB_DIAG_WARNING,
			     "%s is set as well as %s: only %s is used", methods[i], used, used);
	}
	if (!used)
		diag(L, where, 0, SB_DIAG_ERROR,
		     "no repository password: set RESTIC_PASSWORD, PASSWORD_FILE or PASSWORD_COMMAND");
	if (cfg->password_file) {
		const struct key_def *k = find_key("PASSWORD_FILE");
		struct origin o = L->origin[k - keys];
		cleanup_free char *err = NULL;
		int state = private_file_state(cfg->password_file, &err);
		if (state == 1 && cfg->allow_loose_permissions)
			diag(L, o.file, o.line, SB_DIAG_WARNING,
			     "PASSWORD_FILE %s (allowed by ALLOW_LOOSE_PERMISSIONS)", err);
		else if (state != 0)
			diag(L, o.file, o.line, SB_DIAG_ERROR, "PASSWORD_FILE: %s", err);
	}
}

static void validate(struct loader *L)
{
	struct sb_config *cfg = L->cfg;
	const char *where = cfg->files.n ? cfg->files.v[cfg->files.n - 1] : env_origin;

	for (size_t i = 0; i < L->n_loose; i++) {
		const struct loose_file *lf = &L->loose[i];
		if (cfg->allow_loose_permissions)
			diag(L, lf->file, 0, SB_DIAG_WARNING,
			     "readable or writable by group or others (mode %04o), allowed by "
			     "ALLOW_LOOSE_PERMISSIONS",
			     (unsigned)lf->mode);
		else
			diag(L, lf->file, 0, SB_DIAG_ERROR,
			     "config file is readable or writable by group or others (mode %04o): "
			     "run 'chmod 600 %s'",
			     (unsigned)lf->mode, lf->file);
	}

	if (L->source_dir && cfg->restic_repository) {
		cleanup_free char *a = repository_key(L->source_dir);
		cleanup_free char *b = repository_key(cfg->restic_repository);
		if (strcmp(a, b) != 0)
			diag(L, L->source_dir_origin.file, L->source_dir_origin.line, SB_DIAG_ERROR,
			     "RCLONE_SOURCE_DIR %s differs from RESTIC_REPOSITORY %s: stackback "
			     "syncs the repository itself; remove RCLONE_SOURCE_DIR",
			     L->source_dir, cfg->restic_repository);
	}

	/* A file that could not be read explains the missing keys already. */
	if (L->incomplete)
		return;
	for (size_t i = 0; i < N_KEYS; i++) {
		const struct key_def *k = &keys[i];
		if (k->required && !*CFIELD(cfg, k, char *))
			diag(L, where, 0, SB_DIAG_ERROR, "%s is not set (it is required, in [%s])",
			     k->name, k->section);
	}
	check_passwords(L, where);
}

int sb_config_load(struct sb_config *cfg, const char *const *paths, size_t n_paths,
		   char *const *envp, struct sb_diags *diags)
{
	size_t errors_before = sb_diags_count(diags, SB_DIAG_ERROR);
	struct loader L = {.cfg = cfg, .diags = diags};
	apply_table_defaults(cfg);
	for (size_t i = 0; i < n_paths; i++)
		load_file(&L, paths[i], NULL);
	apply_env(&L, envp);
	apply_derived_defaults(cfg);
	validate(&L);
	free(L.source_dir);
	free(L.loose);
	return sb_diags_count(diags, SB_DIAG_ERROR) > errors_before ? -1 : 0;
}

int sb_config_load_stack(const struct sb_config *cfg, const char *stack_dir, struct sb_stack_settings *out,
			 struct sb_diags *diags)
{
	*out = (struct sb_stack_settings){
		.snapshot_mode = cfg->snapshot_mode,
		.snapshot_staging = xstrdup(cfg->snapshot_staging),
	};
	cleanup_free char *path = xasprintf("%s/.stackback/config", stack_dir);
	struct stat st;
	if (lstat(path, &st) < 0 && errno == ENOENT)
		return 0;
	size_t errors_before = sb_diags_count(diags, SB_DIAG_ERROR);
	/* Only per_stack keys reach it, so only those fields are ever set. */
	struct sb_config local = {.snapshot_mode = out->snapshot_mode, .snapshot_staging = out->snapshot_staging};
	struct loader L = {.cfg = &local, .diags = diags, .stack_file = true};
	load_file(&L, path, stack_dir);
	out->snapshot_mode = local.snapshot_mode;
	out->snapshot_staging = local.snapshot_staging;
	local.snapshot_staging = NULL;
	sb_config_free(&local);
	free(L.source_dir);
	free(L.loose);
	return sb_diags_count(diags, SB_DIAG_ERROR) > errors_before ? -1 : 0;
}

void sb_stack_settings_free(struct sb_stack_settings *s)
{
	free(s->snapshot_staging);
	*s = (struct sb_stack_settings){0};
}

/* ---- showing ---- */

/* The value as text, secrets masked; NULL if unset (caller frees). */
static char *value_text(const struct sb_config *cfg, const struct key_def *k)
{
	switch (k->type) {
	case KEY_SECRET:
		return *CFIELD(cfg, k, char *) ? xstrdup("***") : NULL;
	case KEY_STRING:
	case KEY_COMMAND:
	case KEY_PATH:
	case KEY_REPOSITORY:
	case KEY_REMOTE:
	case KEY_CHOICE:
		return xstrdup(*CFIELD(cfg, k, char *));
	case KEY_LONG:
		return xasprintf("%ld", *CFIELD(cfg, k, long));
	case KEY_BOOL:
		return xstrdup(*CFIELD(cfg, k, bool) ? "true" : "false");
	case KEY_ENUM:
		return xstrdup(k->choices[*CFIELD(cfg, k, int)]);
	case KEY_LIST: {
		const struct sb_strv *list = CFIELD(cfg, k, struct sb_strv);
		if (list->n == 0)
			return NULL;
		struct sb_buf b = {0};
		for (size_t i = 0; i < list->n; i++) {
			if (i > 0)
				sb_buf_puts(&b, ",");
			sb_buf_puts(&b, list->v[i]);
		}
		return sb_buf_steal(&b);
	}
	case KEY_SAME_AS_REPOSITORY:
		break;
	}
	return NULL;
}

char *sb_config_show(const struct sb_config *cfg)
{
	struct sb_buf b = {0};
	for (size_t i = 0; i < N_KEYS; i++) {
		if (keys[i].type == KEY_SAME_AS_REPOSITORY)
			continue;
		cleanup_free char *v = value_text(cfg, &keys[i]);
		sb_buf_printf(&b, "%s=%s\n", keys[i].name, v ? v : "");
	}
	return sb_buf_steal(&b);
}

struct json_object *sb_config_show_json(const struct sb_config *cfg)
{
	struct json_object *obj = json_object_new_object();
	for (size_t i = 0; i < N_KEYS; i++) {
		const struct key_def *k = &keys[i];
		struct json_object *v = NULL;
		switch (k->type) {
		case KEY_LONG:
			v = json_object_new_int64(*CFIELD(cfg, k, long));
			break;
		case KEY_BOOL:
			v = json_object_new_boolean(*CFIELD(cfg, k, bool));
			break;
		case KEY_LIST: {
			const struct sb_strv *list = CFIELD(cfg, k, struct sb_strv);
			v = json_object_new_array();
			for (size_t j = 0; j < list->n; j++)
				json_object_array_add(v, json_object_new_string(list->v[j]));
			break;
		}
		case KEY_SAME_AS_REPOSITORY:
			continue;
		default: {
			cleanup_free char *text = value_text(cfg, k);
			v = text ? json_object_new_string(text) : NULL;
			break;
		}
		}
		json_object_object_add(obj, k->name, v);
	}
	return obj;
}

/* Table cells cannot hold a bare '|'. */
static void md_cell(struct sb_buf *b, const char *text)
{
	for (const char *p = text; *p; p++) {
		if (*p == '|')
			sb_buf_puts(b, "\\|");
		else
			sb_buf_append(b, p, 1);
	}
}

char *sb_config_reference(void)
{
	struct sb_buf b = {0};
	sb_buf_puts(&b, "| key | section | aliases | default | meaning |\n"
			"|---|---|---|---|---|\n");
	for (size_t i = 0; i < N_KEYS; i++) {
		const struct key_def *k = &keys[i];
		sb_buf_printf(&b, "| `%s` | `[%s]` | ", k->name, k->section);
		for (size_t a = 0; a < SB_ARRAY_SIZE(k->aliases) && k->aliases[a]; a++)
			sb_buf_printf(&b, "%s`%s`", a ? ", " : "", k->aliases[a]);
		sb_buf_puts(&b, " | ");
		if (k->required)
			sb_buf_puts(&b, "required");
		else if (k->def)
			sb_buf_printf(&b, "`%s`", k->def);
		else if (k->def_doc)
			md_cell(&b, k->def_doc);
		else
			sb_buf_puts(&b, "unset");
		sb_buf_puts(&b, " | ");
		md_cell(&b, k->doc);
		if (k->per_stack)
			sb_buf_puts(&b, " (also per stack, in its `.stackback/config`)");
		if (k->env)
			sb_buf_printf(&b, " (environment: `%s`)", k->env);
		sb_buf_puts(&b, " |\n");
	}
	sb_buf_puts(&b, "\nAccepted and ignored (docker-compose-backup keys stackback has no use for):");
	for (size_t i = 0; i < SB_ARRAY_SIZE(ignored_keys); i++)
		sb_buf_printf(&b, "%s`%s`", i ? ", " : " ", ignored_keys[i]);
	sb_buf_puts(&b, ".\n");
	return sb_buf_steal(&b);
}

const char *sb_config_template(void)
{
	return sb_config_template_text;
}

/* ---- the password ---- */

static char *first_line(const char *s, size_t len)
{
	const char *nl = memchr(s, '\n', len);
	size_t n = nl ? (size_t)(nl - s) : len;
	if (n > 0 && s[n - 1] == '\r')
		n--;
	return xstrndup(s, n);
}

static void wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

static int password_from_file(const struct sb_config *cfg, char **password, char **err)
{
	cleanup_free char *why = NULL;
	int state = private_file_state(cfg->password_file, &why);
	if (state < 0 || (state == 1 && !cfg->allow_loose_permissions)) {
		*err = xasprintf("PASSWORD_FILE: %s", why);
		return -1;
	}
	char *data = NULL;
	size_t len = 0;
	int rc = sb_read_file(cfg->password_file, PASSWORD_FILE_MAX, &data, &len);
	if (rc < 0) {
		*err = xasprintf("cannot read PASSWORD_FILE %s: %s", cfg->password_file,
				 rc == -EFBIG ? "too large for a password file" : strerror(-rc));
		return -1;
	}
	char *line = first_line(data, len);
	explicit_bzero(data, len);
	free(data);
	if (!*line) {
		free(line);
		*err = xasprintf("PASSWORD_FILE %s has an empty first line", cfg->password_file);
		return -1;
	}
	*password = line;
	return 0;
}

static int password_from_command(const struct sb_config *cfg, char **password, char **err)
{
	struct sb_strv argv = {0};
	cleanup_free char *why = NULL;
	if (sb_split_command(cfg->password_command, &argv, &why) < 0) {
		*err = xasprintf("PASSWORD_COMMAND: %s", why);
		return -1;
	}
	struct sb_run_opts opts = {
		.argv = (const char *const *)argv.v,
		.timeout_s = PASSWORD_COMMAND_TIMEOUT_S,
		.capture_stdout = true,
		.capture_stderr = true,
	};
	struct sb_run_result res = {0};
	int rc = sb_run(&opts, &res);
	int ret = -1;
	if (rc != 0) {
		cleanup_free char *d = sb_run_describe(&res, opts.timeout_s);
		*err = xasprintf("PASSWORD_COMMAND %s failed: %s", argv.v[0], d);
	} else {
		const char *out = res.out ? res.out : "";
		char *line = first_line(out, strlen(out));
		if (!*line) {
			free(line);
			*err = xasprintf("PASSWORD_COMMAND %s printed no password", argv.v[0]);
		} else {
			*password = line;
			ret = 0;
		}
	}
	wipe_free(res.out);
	res.out = NULL;
	sb_run_result_free(&res);
	sb_strv_free(&argv);
	return ret;
}

int sb_config_password(const struct sb_config *cfg, char **password, char **err)
{
	int rc;
	if (cfg->restic_password && *cfg->restic_password) {
		*password = xstrdup(cfg->restic_password);
		rc = 0;
	} else if (cfg->password_file) {
		rc = password_from_file(cfg, password, err);
	} else if (cfg->password_command) {
		rc = password_from_command(cfg, password, err);
	} else {
		*err = xstrdup("no repository password: set RESTIC_PASSWORD, PASSWORD_FILE or "
			       "PASSWORD_COMMAND");
		return -1;
	}
	/* Whatever prints it by accident later is masked. */
	if (rc == 0)
		sb_log_add_secret(*password);
	return rc;
}
