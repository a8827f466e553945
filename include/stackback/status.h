/**
 * @file status.h
 * The status object of SPEC §7 ("Status"), shared by the control
 * filesystem (`status`, `status.json`), `stackback status` and the TUI,
 * and the Prometheus exposition behind `metrics` and `stackback metrics`.
 *
 * A status is built from a snapshot: the daemon fills one from its queue
 * (queue.h); without a daemon, sb_status_snapshot_load() fills one from
 * the files the engine leaves in STATE_DIR. Rendering never runs docker,
 * restic or rclone.
 */
#ifndef STACKBACK_STATUS_H
#define STACKBACK_STATUS_H

#include <stdbool.h>

#include "stackback/config.h"
#include "stackback/job.h"
#include "stackback/stacks.h"

struct json_object;

/** A job as status shows it (a copy: no pointers into the job). */
struct sb_status_job {
	int id;
	enum sb_job_kind kind;
	enum sb_job_state state;
	struct sb_job_progress progress;
	double started_at;   /**< wall clock, 0 if unknown or not started */
	double finished_at;  /**< wall clock, 0 if unknown or not finished */
};

/** What status reports about jobs. */
struct sb_status_snapshot {
	/**
	 * A job runs: the daemon's, or an in-process run holding the job
	 * lock, whose details (has_job) are not visible from STATE_DIR.
	 */
	bool running;
	bool has_job;                /**< the running job is known */
	struct sb_status_job job;    /**< valid when has_job */
	int queued;                  /**< jobs waiting behind it */
	bool has_last;               /**< a job has finished */
	struct sb_status_job last;   /**< the newest finished job, valid when has_last */
};

/** Copies what status shows of job (takes job->mu). */
void sb_status_job_from(struct sb_job *job, struct sb_status_job *out);

/**
 * Reads job id back from STATE_DIR/jobs/ID/report.json (the engine
 * persists every job but dry runs there). Returns the rebuilt, finished
 * job (caller sb_job_free()s; its log is filled from jobs/ID/log), or
 * NULL if there is no such readable job.
 */
struct sb_job *sb_status_load_job(const struct sb_config *cfg, int id);

/**
 * The ids of the jobs persisted under STATE_DIR/jobs/ (numeric
 * directory names), ascending. *ids is allocated (caller frees), *n may
 * be 0.
 */
void sb_status_persisted_jobs(const struct sb_config *cfg, int **ids, size_t *n);

/**
 * Fills snap from STATE_DIR when no daemon runs: running when the job
 * lock has a live holder (an in-process run: has_job stays false, the
 * engine persists a job only when it ends), last = the newest job
 * persisted under STATE_DIR/jobs/. Never fails: a missing or unreadable
 * STATE_DIR is an idle status with no last job.
 */
void sb_status_snapshot_load(const struct sb_config *cfg, struct sb_status_snapshot *snap);

/**
 * Builds {"state","job","queue","last","cloud"} (SPEC §7). The cloud
 * part comes from STATE_DIR/cloud.json ("status":"idle", "last_sync":
 * null when absent). Caller puts the returned object.
 */
struct json_object *sb_status_json(const struct sb_config *cfg,
				   const struct sb_status_snapshot *snap);

/**
 * Renders a status object as `key: value` lines, nested keys joined with
 * dots (`job.progress.percent: 42.0`), null as `none`. Caller frees.
 */
char *sb_status_text(struct json_object *status);

/**
 * The last backup of a stack as `key: value` lines (time, result,
 * snapshot, duration, downtime, bytes_added...), from
 * STATE_DIR/stacks/NAME.json; "never\n" if it was never backed up.
 * Caller frees.
 */
char *sb_status_last_backup_text(const struct sb_config *cfg, const char *name);

/**
 * The Prometheus text exposition (version 0.0.4): per stack of sel its
 * enabled flag and last backup (timestamp, success, duration, downtime,
 * bytes added), the daemon's job state and queue length, the last job's
 * result and the cloud's last sync. snap may be NULL (no daemon: read
 * from STATE_DIR). Caller frees.
 */
char *sb_metrics_text(const struct sb_config *cfg, const struct sb_selection *sel,
		      const struct sb_status_snapshot *snap);

#endif
