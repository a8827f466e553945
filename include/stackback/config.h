/**
 * @file config.h
 * Configuration (SPEC §3): INI with sections or the legacy flat
 * KEY=VALUE form, the bash-era aliases, environment overrides, several
 * files layered (later wins), validation with FILE:LINE diagnostics.
 */
#ifndef STACKBACK_CONFIG_H
#define STACKBACK_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "stackback/util.h"

struct json_object;

enum sb_stop_mode {
	SB_STOP_MODE_STOP, /**< docker compose stop / start */
	SB_STOP_MODE_DOWN, /**< docker compose down / up -d */
};

enum sb_verify_depth {
	SB_VERIFY_METADATA,
	SB_VERIFY_FILES,
	SB_VERIFY_DATA,
};

enum sb_snapshot_mode {
	SB_SNAPSHOT_MODE_OFF,
	SB_SNAPSHOT_MODE_AUTO,
	SB_SNAPSHOT_MODE_BTRFS,
	SB_SNAPSHOT_MODE_REFLINK,
};

/** SNAPSHOT_READER: who reads repositories for browsing. */
enum sb_snapshot_reader {
	SB_SNAPSHOT_READER_AUTO,    /**< the native reader for local repositories, restic for others */
	SB_SNAPSHOT_READER_RESTIC,  /**< always restic */
};

/** The effective configuration. Every string is owned by the struct. */
struct sb_config {
	/* [docker] */
	char *stacks_dir;         /**< DOCKER_STACKS_DIR (alias BACKUP_DIR) */
	long docker_timeout;      /**< DOCKER_TIMEOUT, seconds */
	/* [local_backup] */
	char *restic_repository;  /**< RESTIC_REPOSITORY */
	char *restic_password;    /**< RESTIC_PASSWORD (secret) */
	char *password_file;      /**< PASSWORD_FILE */
	char *password_command;   /**< PASSWORD_COMMAND */
	long backup_timeout;      /**< BACKUP_TIMEOUT, seconds */
	char *hostname;           /**< HOSTNAME, NULL = restic's default */
	long keep_daily, keep_weekly, keep_monthly, keep_yearly;
	bool auto_prune;
	bool enable_verification;
	enum sb_verify_depth verification_depth;
	/* [cloud_sync] */
	char *rclone_remote;      /**< RCLONE_REMOTE, without the colon */
	char *rclone_path;        /**< RCLONE_PATH */
	long transfers;
	long retries;
	char *bandwidth;          /**< BANDWIDTH, rclone --bwlimit syntax, NULL = none */
	/* [stackback] */
	char *state_dir;
	char *dirlist;
	char *mountpoint;
	char *restore_dir;
	char *compose_cmd;        /**< NULL = auto-detect */
	char *rclone_config;      /**< NULL = rclone's default */
	struct sb_strv excludes;  /**< EXCLUDES, comma-separated */
	long hook_timeout;
	long remote_timeout;
	long min_disk_space_mb;
	enum sb_stop_mode stop_mode;
	bool allow_other;
	bool allow_loose_permissions;
	long snapshot_cache_mb;
	long content_cache_mb;
	enum sb_snapshot_reader snapshot_reader;
	enum sb_snapshot_mode snapshot_mode;
	char *snapshot_staging;   /**< NULL = default next to the stack */
	char *notify_command;
	char *healthcheck_url;
	char *log_level;
	char *syslog_socket;      /**< SYSLOG_SOCKET, NULL = no syslog */

	/** The files that were loaded, in order. */
	struct sb_strv files;
};

enum sb_diag_severity {
	SB_DIAG_WARNING,
	SB_DIAG_ERROR,
};

/** One problem found while loading; line 0 = the file as a whole. */
struct sb_diag {
	char *file;
	int line;
	enum sb_diag_severity severity;
	char *message;
};

struct sb_diags {
	struct sb_diag *v;
	size_t n;
	size_t cap;
};

void sb_diags_add(struct sb_diags *d, const char *file, int line, enum sb_diag_severity sev,
		  const char *fmt, ...) __attribute__((format(printf, 5, 6)));
size_t sb_diags_count(const struct sb_diags *d, enum sb_diag_severity sev);
/** Prints "FILE:LINE: warning|error: message" lines. */
void sb_diags_print(const struct sb_diags *d, FILE *out);
void sb_diags_free(struct sb_diags *d);

/** Fills cfg with the SPEC §3 defaults. */
void sb_config_defaults(struct sb_config *cfg);

/**
 * Loads paths in order over the defaults, then applies environment
 * overrides from envp (NULL-terminated "KEY=VALUE", may be NULL), then
 * validates (including file permissions). Every problem goes to diags.
 * Returns 0 if no error was found, -1 otherwise (cfg is still filled
 * with what could be read and must be freed).
 */
int sb_config_load(struct sb_config *cfg, const char *const *paths, size_t n_paths,
		   char *const *envp, struct sb_diags *diags);

void sb_config_free(struct sb_config *cfg);

/** One stack's settings: the global ones, overridden by the stack's own file. */
struct sb_stack_settings {
	enum sb_snapshot_mode snapshot_mode;
	char *snapshot_staging;   /**< owned; NULL = the default */
};

/**
 * Reads STACK/.stackback/config over cfg's values: KEY=VALUE lines in
 * the config grammar, for the keys that may differ per stack
 * (SNAPSHOT_MODE, SNAPSHOT_STAGING; any other key is a warning).
 * Relative paths resolve against the stack directory. An absent file
 * leaves cfg's values. Returns 0, or -1 when diags got an error (out
 * then holds what could be read). Free out either way.
 */
int sb_config_load_stack(const struct sb_config *cfg, const char *stack_dir,
			 struct sb_stack_settings *out, struct sb_diags *diags);
void sb_stack_settings_free(struct sb_stack_settings *s);

/**
 * Returns the effective values as "KEY=VALUE" lines, secrets masked
 * (caller frees).
 */
char *sb_config_show(const struct sb_config *cfg);

/**
 * The same values as a JSON object (numbers, booleans, arrays; null when
 * unset; secrets "***"). The caller owns the reference (json_object_put).
 */
struct json_object *sb_config_show_json(const struct sb_config *cfg);

/**
 * The reference of every key as a Markdown table (section, aliases,
 * default, meaning), followed by the ignored legacy keys: what
 * docs/configuration.md embeds and `config keys` prints (caller frees).
 */
char *sb_config_reference(void);

/** The commented template `config init` writes (static storage). */
const char *sb_config_template(void);

/**
 * Resolves the password restic needs: RESTIC_PASSWORD, else the content
 * of PASSWORD_FILE, else PASSWORD_COMMAND's output (run through the
 * runner). Returns 0 and a string the caller frees (and should wipe), or
 * -1 with *err set (caller frees). Never logs the password.
 */
int sb_config_password(const struct sb_config *cfg, char **password, char **err);

/**
 * Splits a command line from the config (PASSWORD_COMMAND, NOTIFY_COMMAND,
 * COMPOSE_CMD) into argv words without a shell: blanks separate words,
 * '...' and "..." quote literally (no escapes, no expansion). Returns 0
 * and fills argv (caller frees with sb_strv_free), or -1 with *err
 * (caller frees) for an unterminated quote or an empty command.
 */
int sb_split_command(const char *cmd, struct sb_strv *argv, char **err);

const char *sb_verify_depth_name(enum sb_verify_depth d);
const char *sb_stop_mode_name(enum sb_stop_mode m);
const char *sb_snapshot_mode_name(enum sb_snapshot_mode m);

/**
 * Checks that a secret-bearing file is not readable by group or others.
 * Returns 0, or -1 with *err set (caller frees).
 */
int sb_check_private_file(const char *path, char **err);

#endif
