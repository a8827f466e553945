/**
 * @file queue.h
 * The daemon's job queue (SPEC §7 "Queue vs refuse"). Requests from the
 * control filesystem are queued (at most SB_QUEUE_MAX waiting, then
 * EBUSY) and run one at a time by ONE worker thread, which takes the job
 * lock (state.h) around each job, so the daemon never runs two jobs at
 * once and never races an in-process CLI run. Knows nothing of FUSE.
 *
 * Ownership: the queue owns every sb_job it creates; callers never see
 * a job pointer, they read rendered copies (sb_queue_job_read()). The
 * last SB_QUEUE_KEEP finished jobs stay in memory; older ones are read
 * back from STATE_DIR/jobs/ID/ where the engine persisted them.
 *
 * Threads: every function may be called from any thread, except that
 * sb_queue_free() must follow sb_queue_shutdown(). The worker is the only
 * thread that calls sb_job_execute().
 *
 * Lock order: the queue's mutex, then a job's mu. The change callback
 * runs with neither held.
 */
#ifndef STACKBACK_QUEUE_H
#define STACKBACK_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stackback/config.h"
#include "stackback/job.h"
#include "stackback/stacks.h"
#include "stackback/status.h"

/** How many jobs may wait behind the running one. */
#define SB_QUEUE_MAX 16
/** How many finished jobs stay in memory. */
#define SB_QUEUE_KEEP 64
/** Longest accepted trigger payload, in bytes. */
#define SB_TRIGGER_MAX 4096

struct sb_queue;

/** What changed, for the change callback. */
enum sb_queue_event {
	SB_QUEUE_JOB_QUEUED,    /**< a job was queued */
	SB_QUEUE_JOB_STATE,     /**< a job started, finished or was cancelled */
	SB_QUEUE_JOB_PHASE,     /**< a running job went on to another stack or phase (stop, backup, start...) */
	SB_QUEUE_JOB_PROGRESS,  /**< a running job's progress or log moved */
	SB_QUEUE_TRIGGER,       /**< a trigger write was refused (its read-back changed) */
};

/**
 * Called after anything a reader may see changed. job_id names the job
 * concerned, 0 when none. Runs on the thread that made the change (the
 * worker, the engine, or a submitting thread) without any queue or job
 * lock held; it must not block.
 */
typedef void (*sb_queue_change_fn)(void *userdata, enum sb_queue_event event, int job_id);

/**
 * Creates a stopped queue for cfg (borrowed: it must outlive the queue).
 * change may be NULL. Never fails.
 */
struct sb_queue *sb_queue_new(const struct sb_config *cfg, sb_queue_change_fn change,
			      void *userdata);

/**
 * Starts the worker thread. With recover set, the worker first runs
 * sb_recover() under the job lock (a previous daemon or CLI died with
 * stacks stopped), before any queued job. Returns 0, or -1 with *err
 * (caller frees).
 */
int sb_queue_start(struct sb_queue *q, bool recover, char **err);

/**
 * Queues a job. Takes ownership of *req (zeroed) on success only.
 * Returns 0 with *job_id set, -EBUSY when SB_QUEUE_MAX jobs already
 * wait, -ESHUTDOWN after sb_queue_shutdown(), or -EIO when no job id
 * could be allocated; *err (caller frees) explains every failure.
 */
int sb_queue_submit(struct sb_queue *q, struct sb_job_request *req, int *job_id, char **err);

/**
 * A trigger write: parses payload (len bytes, any bytes) for a job of
 * the given kind (sb_job_request_parse()), checks that every stack it
 * names is in known (when known is not NULL), queues it, and records the
 * outcome for sb_queue_trigger_result(). A payload that is not
 * understood (NUL bytes, longer than SB_TRIGGER_MAX, bad words, names of
 * no known stack) gives -EINVAL and nothing is queued; the reason is
 * logged and kept for the read-back. Other returns as sb_queue_submit().
 * *err is always set on failure (caller frees).
 */
int sb_queue_trigger(struct sb_queue *q, enum sb_job_kind kind, const char *payload, size_t len,
		     const struct sb_selection *known, int *job_id, char **err);

/**
 * The read-back of a trigger file opened afresh: "job ID STATE\n" for
 * the last job a trigger of this kind queued, "error: REASON\n" if the
 * last trigger write was refused, "" if there was none since the daemon
 * started. Caller frees.
 */
char *sb_queue_trigger_result(struct sb_queue *q, enum sb_job_kind kind);

/** The files of a job directory (jobs/ID/...). */
enum sb_job_file {
	SB_JOB_FILE_STATE,     /**< "running\n" */
	SB_JOB_FILE_PROGRESS,  /**< SPEC §7 key: value lines */
	SB_JOB_FILE_LOG,       /**< the job's log lines */
	SB_JOB_FILE_REPORT,    /**< the report as JSON */
};

/**
 * Renders one file of job id, from memory or from STATE_DIR/jobs/ID/.
 * Returns 0 with *out (caller frees), or -ENOENT if there is no such job.
 */
int sb_queue_job_read(struct sb_queue *q, int id, enum sb_job_file which, char **out);

/**
 * Cancels job id: a running job stops at its next step and starts again
 * every stack it stopped (its state becomes cancelled when it has); a
 * waiting one is cancelled at once and never runs. Returns 0, -ENOENT
 * for no such job, or -EALREADY with *why (caller frees) when it ended.
 */
int sb_queue_cancel(struct sb_queue *q, int id, char **why);

/** True if job id is in memory or in STATE_DIR/jobs/. */
bool sb_queue_job_exists(struct sb_queue *q, int id);

/**
 * Every job id known (in memory, or persisted under STATE_DIR/jobs/), in
 * ascending order. *ids is allocated (caller frees), *n may be 0.
 */
void sb_queue_job_ids(struct sb_queue *q, int **ids, size_t *n);

/** The newest job id sb_queue_job_ids() would list, 0 if none. */
int sb_queue_last_job_id(struct sb_queue *q);

/** Fills snap with the running job, the queue length and the last finished job. */
void sb_queue_status(struct sb_queue *q, struct sb_status_snapshot *snap);

/** Counts every change the callback reported; readers compare it to see whether to re-render. */
uint64_t sb_queue_version(struct sb_queue *q);

/**
 * Stops the queue: cancels the running job (the engine starts again the
 * stacks it stopped), marks every waiting job cancelled, and joins the
 * worker. Blocks until the running job has unwound. Idempotent.
 */
void sb_queue_shutdown(struct sb_queue *q);

/** Frees a queue that was shut down (or never started). NULL is ignored. */
void sb_queue_free(struct sb_queue *q);

#endif
