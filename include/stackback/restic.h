/**
 * @file restic.h
 * The restic adapter. The password reaches restic only through its
 * environment (RESTIC_PASSWORD), never argv. JSON output is parsed with
 * json-c; the parsers are exposed for tests and fuzzers.
 */
#ifndef STACKBACK_RESTIC_H
#define STACKBACK_RESTIC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "stackback/config.h"

/** An open handle: repository path and resolved password (owned). */
struct sb_restic {
	char *repository;
	char *password;      /**< secret: wiped on close */
	long timeout_s;      /**< BACKUP_TIMEOUT for long commands */
	const atomic_bool *cancel;
};

/** Resolves the password. Returns 0 or -1 with *err (caller frees). */
int sb_restic_open(struct sb_restic *r, const struct sb_config *cfg, const char *repository,
		   char **err);
void sb_restic_close(struct sb_restic *r);

/** True if the repository has been initialised (its `config` file exists, or restic says so). */
bool sb_restic_repo_exists(const struct sb_restic *r);
/** `restic init` if missing. *created tells whether it was. Returns 0 or -1 with *err. */
int sb_restic_init(const struct sb_restic *r, bool *created, char **err);

struct sb_backup_progress {
	double percent;          /**< 0..100 */
	uint64_t bytes_done, bytes_total;
	uint64_t files_done, files_total;
	double eta_s;            /**< -1 unknown */
};

struct sb_backup_summary {
	char *snapshot_id;       /**< as restic printed it (owned): restic 0.14 gives the short id */
	uint64_t files_new, files_changed, files_unmodified;
	uint64_t dirs_new, dirs_changed;
	uint64_t data_added;
	uint64_t total_files_processed;
	uint64_t total_bytes_processed;
	double total_duration;
};
void sb_backup_summary_free(struct sb_backup_summary *s);

/**
 * Parses one line of `restic backup --json`. 1 = status (p filled), 2 =
 * summary (s filled; s must start zeroed, an earlier summary in it is
 * freed), 0 = other, -1 = malformed.
 */
int sb_restic_parse_backup_line(const char *line, size_t len, struct sb_backup_progress *p,
				struct sb_backup_summary *s);

typedef void (*sb_backup_progress_fn)(void *userdata, const struct sb_backup_progress *p);

struct sb_restic_backup_opts {
	const char *path;           /**< directory backed up (also cwd) */
	const char *const *tags;    /**< NULL-terminated */
	const char *hostname;       /**< NULL = restic's default */
	const char *const *excludes;/**< NULL-terminated patterns, may be NULL */
	const char *parent;         /**< --parent, may be NULL */
	bool ignore_inode;          /**< --ignore-inode --ignore-ctime */
	/**
	 * Snapshot mode: the copy of path that restic reads, shown to it at
	 * path through a private bind mount (runner.h), so the snapshot is
	 * recorded under path as a plain one would be. NULL = path itself.
	 */
	const char *source_dir;
	sb_backup_progress_fn on_progress;
	void *userdata;
};

/** Runs restic backup. Returns 0 with summary filled, or -1 with *err. */
int sb_restic_backup(const struct sb_restic *r, const struct sb_restic_backup_opts *o,
		     struct sb_backup_summary *summary, char **err);

struct sb_snapshot {
	char *id, *short_id;
	char *time;       /**< restic's RFC 3339 text */
	time_t time_utc;  /**< parsed, seconds */
	char *hostname;
	char *tree;
	struct sb_strv paths;
	struct sb_strv tags;
	char *stack;      /**< the stack tag (the tag that is not "stackback"), may be NULL */
};
struct sb_snapshot_list {
	struct sb_snapshot *v;
	size_t n;
};
/** Parses `restic snapshots --json` output, sorted by time ascending. Returns 0 or -1. */
int sb_restic_parse_snapshots(const char *json, size_t len, struct sb_snapshot_list *out);
/** Lists snapshots, optionally only those tagged tag. Returns 0 or -1 with *err. */
int sb_restic_snapshots(const struct sb_restic *r, const char *tag, struct sb_snapshot_list *out,
			char **err);
void sb_snapshot_list_free(struct sb_snapshot_list *l);

/**
 * The snapshot's directory name in snapshots/NAME/: its UTC time and
 * short id, "YYYY-MM-DDTHH:MM:SS_1a2b3c4d" (into buf, >= 32 bytes).
 */
void sb_snapshot_dirname(const struct sb_snapshot *s, char *buf, size_t size);
/**
 * Finds a stack's snapshot by reference (SPEC §7): "latest", a short or
 * full id (unique prefix), or a snapshots/NAME/ directory name. Only
 * snapshots whose stack is `stack` are considered (all if NULL).
 * Returns a pointer into l, or NULL with *err (caller frees).
 */
/**
 * True if ref has the shape of a snapshot reference: "latest", 4 to 64
 * lowercase hex digits, or a snapshots/ directory name, each optionally
 * prefixed "cloud:". Says nothing of whether the snapshot exists.
 */
bool sb_snapshot_ref_valid(const char *ref);
const struct sb_snapshot *sb_snapshot_resolve(const struct sb_snapshot_list *l, const char *stack,
					      const char *ref, char **err);

/** `restic forget --tag TAG --keep-* --prune` (dry_run adds --dry-run). */
int sb_restic_forget(const struct sb_restic *r, const struct sb_config *cfg, const char *tag,
		     bool dry_run, char **err);
/** `restic check` (read_data adds --read-data). */
int sb_restic_check(const struct sb_restic *r, bool read_data, char **err);
/**
 * `restic restore SNAP --target DIR`: the whole snapshot, with owners and
 * modes, under DIR (at DIR + the snapshot's original absolute path).
 */
int sb_restic_restore(const struct sb_restic *r, const char *snapshot, const char *target, char **err);
/** Counts entries of `restic ls --json SNAP`: files and all nodes. */
int sb_restic_ls_count(const struct sb_restic *r, const char *snapshot, uint64_t *files,
		       uint64_t *nodes, char **err);

/**
 * Explains a failed restic run in one phrase, recognising "repository
 * does not exist", "wrong password", "repository is already locked".
 * Caller frees.
 */
char *sb_restic_explain(int exit_code, const char *stderr_tail);

#endif
