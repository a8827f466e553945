/**
 * @file cloud.h
 * The cloud copy's state (SPEC §2 `cloud/`): what the last sync and the
 * last restore did, whether the copy was verified, a transfer's progress.
 *
 * The sync and restore jobs (core/job-cloud.c) are the only writers of
 * STATE_DIR/cloud.json; fs/, cli/ and tui/ read it through
 * sb_cloud_state_read() and show it with the renderers below, so every
 * front end says the same thing. Dry runs never write it.
 *
 * cloud.json (times are wall-clock seconds since the epoch):
 *
 *   {"status":"idle|syncing|restoring|ok|failed", "reason":"...",
 *    "remote":"REMOTE:PATH" (of the last job),
 *    "step":"..." and "pid":N (while syncing or restoring),
 *    "last_sync":{"time","result":"ok|failed","bytes","files","duration",
 *                 "remote","error"},
 *    "in_sync":{"state":"verified|not verified|differs","by_hash",
 *               "differences","missing_remote","missing_local","matched",
 *               "time","repo_stamp"},
 *    "last_restore":{"time","result","target","duration","bytes","error",
 *                    "snapshots":{"STACK":N,...}},
 *    "progress":{"phase","percent","bytes_done","bytes_total",
 *                "files_done","files_total","eta_s","speed"} (while transferring)}
 */
#ifndef STACKBACK_CLOUD_H
#define STACKBACK_CLOUD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "stackback/config.h"

enum sb_cloud_status {
	SB_CLOUD_IDLE,       /**< nothing was ever synced or restored */
	SB_CLOUD_SYNCING,
	SB_CLOUD_RESTORING,
	SB_CLOUD_OK,         /**< the last sync or restore succeeded */
	SB_CLOUD_FAILED,     /**< it failed: reason says why */
};
const char *sb_cloud_status_name(enum sb_cloud_status s);
int sb_cloud_status_parse(const char *s, enum sb_cloud_status *out);

enum sb_cloud_in_sync {
	SB_IN_SYNC_NOT_VERIFIED, /**< never checked, sync failed, or the repository changed since */
	SB_IN_SYNC_VERIFIED,     /**< rclone check found the copy equal */
	SB_IN_SYNC_DIFFERS,      /**< rclone check found differences (counts) */
};
/** "not verified", "verified", "differs". */
const char *sb_cloud_in_sync_name(enum sb_cloud_in_sync s);
int sb_cloud_in_sync_parse(const char *s, enum sb_cloud_in_sync *out);

/** Snapshots found per stack in a restored copy. */
struct sb_cloud_stack_count {
	char *stack;       /**< owned; "(untagged)" for snapshots without a stack tag */
	uint64_t snapshots;
};

struct sb_cloud_progress {
	char phase[32];    /**< "upload" or "download" */
	double percent;
	uint64_t bytes_done, bytes_total;
	uint64_t files_done, files_total;
	double eta_s;      /**< -1 unknown */
	double speed;      /**< bytes/s */
};

/** The state as read from cloud.json. Every string is owned. */
struct sb_cloud_state {
	enum sb_cloud_status status;
	char *reason;        /**< NULL unless failed (or a job died mid-way) */
	char *step;          /**< while syncing/restoring: e.g. "uploading", NULL otherwise */
	char *remote;        /**< REMOTE:PATH configured now, NULL if RCLONE_REMOTE is unset */
	bool has_sync;
	struct {
		double time;     /**< when it started */
		bool ok;
		uint64_t bytes, files;
		double duration_s;
		char *error;     /**< NULL when ok */
		char *remote;    /**< where it went */
	} last_sync;
	struct {
		enum sb_cloud_in_sync state;
		bool by_hash;    /**< false: compared by size (the remote has no common hash) */
		uint64_t differences, missing_remote, missing_local, matched;
		double time;     /**< when it was checked, 0 never */
		/** The local repository changed (backup, prune) after the check. */
		bool repo_changed;
	} in_sync;
	bool has_restore;
	struct {
		double time;
		bool ok;
		char *target;    /**< the restored copy */
		double duration_s;
		uint64_t bytes;
		char *error;
		struct sb_cloud_stack_count *stacks;
		size_t n_stacks;
	} last_restore;
	bool transferring;   /**< progress is valid */
	struct sb_cloud_progress progress;
};

/**
 * Reads STATE_DIR/cloud.json. A missing or unreadable file gives the
 * idle state; a job that died while syncing or restoring (its pid is
 * gone) reads as failed with a reason saying so. Never fails: garbage
 * fields are ignored. Free with sb_cloud_state_free().
 */
void sb_cloud_state_read(const struct sb_config *cfg, struct sb_cloud_state *st);
/**
 * The same from cloud.json's text (exposed for tests and the fuzzer):
 * returns 0, or -1 when text is not one JSON object (st is then idle).
 * cfg gives the configured remote and the repository whose stamp is
 * compared. Free st with sb_cloud_state_free() either way.
 */
int sb_cloud_state_parse(const struct sb_config *cfg, const char *text, size_t len,
			 struct sb_cloud_state *st);
void sb_cloud_state_free(struct sb_cloud_state *st);

/**
 * The text of the files in the mount's `cloud/` directory and of the
 * CLI's and TUI's cloud lines. Each returns a string ending in a newline
 * (caller frees):
 *
 *   status     "ok", "syncing: 42%, 1.2 GiB of 2.9 GiB, eta 1m10s",
 *              "failed: sync to 'r:p' failed: ..."
 *   remote     "r:p" or "not configured"
 *   last_sync  key: value lines (time, result, bytes, files, duration_s,
 *              remote, error) or "never"
 *   in_sync    "verified: 250 files match by hash, checked TIME",
 *              "differs: 2 differ, 1 missing on the remote, 0 missing
 *              locally (by size), checked TIME", "not verified: REASON"
 *   progress   key: value lines (phase, percent, bytes_done, bytes_total,
 *              files_done, files_total, eta_s, speed); "phase: idle" when
 *              nothing transfers
 */
char *sb_cloud_render_status(const struct sb_cloud_state *st);
char *sb_cloud_render_remote(const struct sb_cloud_state *st);
char *sb_cloud_render_last_sync(const struct sb_cloud_state *st);
char *sb_cloud_render_in_sync(const struct sb_cloud_state *st);
char *sb_cloud_render_progress(const struct sb_cloud_state *st);
/** Key: value lines of the last restore (time, result, target, snapshots, per stack), or "never". */
char *sb_cloud_render_last_restore(const struct sb_cloud_state *st);

/**
 * The repository copy the last successful restore made (for
 * `cloud/snapshots/` and `restore-stack cloud:...`), or NULL if there is
 * none or it is gone. Caller frees.
 */
char *sb_cloud_restored_repository(const struct sb_config *cfg);

/**
 * Decides where a restore may write (SPEC §5 "a failed restore never
 * touches the local repository"). target NULL means RESTORE_DIR; a
 * relative one is taken from the working directory. Both the target
 * and the local repository are resolved with realpath (a missing tail of
 * the target is taken as written, without "." or ".." components).
 * Refuses a target that is, contains or lies inside RESTIC_REPOSITORY,
 * a stack directory tree or the mount point, that contains STATE_DIR,
 * that is not a directory, or that is not empty unless force; even with
 * force, a non-empty target may hold only what a restic repository holds
 * (rclone sync deletes everything else in it).
 * Returns 0 with *resolved (absolute, caller frees), or -1 with *err (one
 * line naming the paths, caller frees).
 */
int sb_cloud_restore_target(const struct sb_config *cfg, const char *target, bool force,
			    char **resolved, char **err);

/**
 * A stamp of the local repository's content: changes whenever a backup,
 * forget or prune adds or removes snapshots, indexes or keys (it reads
 * the mtimes of those directories). Kept with a verification, so a later
 * change reads as "not verified". Empty string if the repository is
 * missing. Caller frees.
 */
char *sb_cloud_repo_stamp(const char *repository);

#endif
