/**
 * @file job.h
 * The job engine (SPEC §7 "Jobs"): one job runs Stage 1 (backup), Stage
 * 2 (sync), Stage 3 (restore), a check, a forget or a stack restore,
 * synchronously, in the calling thread. The daemon's worker thread and
 * the in-process CLI both call sb_job_execute(); neither front end holds
 * business logic.
 *
 * Thread safety: the fields marked "mu" are written by the executing
 * thread and read by others (the control filesystem) under job->mu.
 */
#ifndef STACKBACK_JOB_H
#define STACKBACK_JOB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "stackback/config.h"
#include "stackback/util.h"

enum sb_job_kind {
	SB_JOB_BACKUP,
	SB_JOB_SYNC,
	SB_JOB_RESTORE,
	SB_JOB_CHECK,
	SB_JOB_FORGET,
	SB_JOB_RESTORE_STACK,
};

enum sb_job_state {
	SB_JOB_QUEUED,
	SB_JOB_RUNNING,
	SB_JOB_OK,
	SB_JOB_FAILED,
	SB_JOB_CANCELLED,
};

const char *sb_job_kind_name(enum sb_job_kind k);
int sb_job_kind_parse(const char *s, enum sb_job_kind *out);
const char *sb_job_state_name(enum sb_job_state s);
int sb_job_state_parse(const char *s, enum sb_job_state *out);
static inline bool sb_job_state_final(enum sb_job_state s)
{
	return s == SB_JOB_OK || s == SB_JOB_FAILED || s == SB_JOB_CANCELLED;
}

/** What to do. Owned strings. */
struct sb_job_request {
	enum sb_job_kind kind;
	struct sb_strv stacks;  /**< backup: names (empty = every enabled stack); restore-stack: one */
	char *snapshot;         /**< restore-stack: latest | id | dir name, "cloud:" prefix allowed */
	char *target;           /**< restore: --to DIR (NULL = RESTORE_DIR) */
	bool dry_run;
	bool force;             /**< restore: into a non-empty target */
	bool read_data;         /**< check: --read-data */
};
void sb_job_request_free(struct sb_job_request *r);
/**
 * Parses a trigger payload (SPEC §7 "Triggers"): whitespace-separated
 * words, e.g. "1", "all", "web db dry-run", "force", "read-data". Stack
 * names are checked against the name rule only (existence is checked
 * when the job runs). Returns 0, or -1 with *err (caller frees) and req
 * untouched.
 */
int sb_job_request_parse(enum sb_job_kind kind, const char *payload, size_t len,
			 struct sb_job_request *req, char **err);
/** Renders the request as the words a trigger would take, e.g. "web db dry-run" (caller frees). */
char *sb_job_request_describe(const struct sb_job_request *r);

struct sb_job_progress {
	char stack[160];
	char phase[32];        /**< e.g. "stop", "backup", "start", "sync", "check" */
	int stack_index;       /**< 1-based, 0 when not per stack */
	int stack_count;
	double percent;        /**< of the current phase, 0..100 */
	uint64_t bytes_done, bytes_total;
	uint64_t files_done, files_total;
	double eta_s;          /**< -1 unknown */
};

enum sb_stack_result {
	SB_STACK_OK,
	SB_STACK_FAILED,
	SB_STACK_SKIPPED,   /**< pre-hook failed, conflict, missing: counts as failure */
	SB_STACK_DRY_RUN,   /**< would have been backed up */
};
const char *sb_stack_result_name(enum sb_stack_result r);

/** One stack's outcome in a backup (or restore-stack) job. Owned strings. */
struct sb_stack_report {
	char *name;
	enum sb_stack_result result;
	char *error;          /**< one line: stage and cause, NULL when ok */
	char *snapshot_id;
	char *state_before;   /**< docker state before the job touched it */
	bool was_running;
	bool restarted;
	double started_at;    /**< wall clock */
	double duration_s;
	double downtime_s;    /**< stop → start completed, 0 if never stopped */
	double backup_s;      /**< how long restic read the data (in snapshot mode: while the stack ran) */
	uint64_t bytes_added;
	uint64_t files_new, files_changed, files_total;
	char *mode;           /**< "stop", "down", or a snapshot mode */
};

struct sb_job;
typedef void (*sb_job_notify_fn)(void *userdata, struct sb_job *job);

struct sb_job {
	int id;
	struct sb_job_request req;
	atomic_bool cancel;     /**< set to stop the job; stacks are still restarted */

	pthread_mutex_t mu;     /**< protects the fields below */
	enum sb_job_state state;            /* mu */
	struct sb_job_progress progress;    /* mu */
	struct sb_buf log;                  /* mu: the job's log lines */
	struct sb_stack_report *reports;    /* mu */
	size_t n_reports;                   /* mu */
	char *error;                        /* mu: the job-level failure line */
	char *summary;                      /* mu: one line for notifications and status */
	double queued_at, started_at, finished_at; /* mu: wall clock */
	/* cloud results (sync/restore): mu */
	uint64_t transfer_bytes;
	uint64_t transfer_files;
	double transfer_s;

	/** Called (without mu held) whenever state or progress change. */
	sb_job_notify_fn notify;
	void *notify_userdata;
};

/** Allocates a queued job; takes ownership of *req (zeroed). */
struct sb_job *sb_job_new(int id, struct sb_job_request *req);
void sb_job_free(struct sb_job *job);

/**
 * Runs the job to its end in the calling thread. The caller holds the
 * job lock (state.h). Persists the report and log under
 * STATE_DIR/jobs/ID/ and updates per-stack and cloud state. Returns the
 * final state.
 */
enum sb_job_state sb_job_execute(const struct sb_config *cfg, struct sb_job *job);

/** The job's report as JSON text (caller frees). Takes mu. */
char *sb_job_report_json(struct sb_job *job);
/** The job's report as human text, one line per stack (caller frees). Takes mu. */
char *sb_job_report_text(struct sb_job *job);
/** "key: value" progress lines per SPEC §7 (caller frees). Takes mu. */
char *sb_job_progress_text(struct sb_job *job);

#endif
