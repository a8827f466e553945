/**
 * @file rclone.h
 * The rclone adapter for Stage 2 (sync + check) and Stage 3 (copy back).
 * Progress comes from rclone's JSON log stats lines.
 */
#ifndef STACKBACK_RCLONE_H
#define STACKBACK_RCLONE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stackback/config.h"

struct sb_rclone_progress {
	uint64_t bytes_done, bytes_total;
	uint64_t files_done, files_total;
	double percent;
	double eta_s;   /**< -1 unknown */
	double speed;   /**< bytes/s */
};
/** Parses one `--use-json-log` line; 1 if it carried stats, 0 if not, -1 malformed. */
int sb_rclone_parse_stats_line(const char *line, size_t len, struct sb_rclone_progress *p);

typedef void (*sb_rclone_progress_fn)(void *userdata, const struct sb_rclone_progress *p);

struct sb_rclone_result {
	uint64_t bytes;
	uint64_t files;
	double duration_s;
};

/** "REMOTE:PATH" for the configured remote (caller frees). */
char *sb_rclone_remote_spec(const struct sb_config *cfg);

/** rclone sync src dst with TRANSFERS/RETRIES/BANDWIDTH/RCLONE_CONFIG. */
int sb_rclone_sync(const struct sb_config *cfg, const char *src, const char *dst, bool dry_run,
		   const atomic_bool *cancel, sb_rclone_progress_fn fn, void *userdata,
		   struct sb_rclone_result *res, char **err);

struct sb_rclone_check {
	bool by_hash;          /**< false = sizes only */
	uint64_t differences;  /**< on both sides, contents differ */
	uint64_t missing_on_dst, missing_on_src;
	uint64_t matched;
	uint64_t errors;       /**< could not be read or hashed */
};
/**
 * Counts one line of `rclone check --combined -` ("= path", "+ path",
 * "- path", "* path", "! path") into chk. Returns 0, or -1 if the line
 * is not one of those.
 */
int sb_rclone_parse_check_line(const char *line, size_t len, struct sb_rclone_check *chk);
/**
 * rclone check src dst (both directions, by hash when the two sides
 * share one). Returns 0 if identical, 1 if they differ (counts filled),
 * -1 on error (*err, caller frees).
 */
int sb_rclone_check(const struct sb_config *cfg, const char *src, const char *dst,
		    const atomic_bool *cancel, struct sb_rclone_check *chk, char **err);

/** rclone lsd on the remote with REMOTE_TIMEOUT; 0 if reachable. */
int sb_rclone_reachable(const struct sb_config *cfg, char **err);

/**
 * rclone copyto of one remote file (e.g. "r:path/config") to a local
 * path, with REMOTE_TIMEOUT. Returns 1 if copied, 0 if the remote has no
 * such file, -1 on error (*err, caller frees).
 */
int sb_rclone_fetch(const struct sb_config *cfg, const char *remote_file, const char *local_file,
		    char **err);

#endif
