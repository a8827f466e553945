/**
 * @file metrics.h
 * What the Prometheus exposition (sb_metrics_text(), declared in
 * status.h) needs beyond the job reports, and the node_exporter
 * textfile output of `stackback metrics --textfile`.
 *
 * Reading metrics never runs restic: the engine keeps what they show
 * in STATE_DIR/metrics.json as jobs end:
 *
 *   {"stacks":{"NAME":{"last_success":T,"snapshots":N},...},
 *    "snapshots_counted_at":T, "snapshots_total":N,
 *    "sync":{"last_success":T}}
 *
 * T is wall-clock seconds since the epoch (when the backup or sync
 * ended). Snapshot counts are kept up by the jobs that add or remove
 * snapshots (backup, forget, restore-stack): a backup without retention
 * adds its own snapshots, and restic lists them all when a count is
 * older than six hours or a job may have forgotten some.
 */
#ifndef STACKBACK_METRICS_H
#define STACKBACK_METRICS_H

#include "stackback/config.h"
#include "stackback/job.h"

/** A snapshot count that runs beside a job (sb_metrics_count_start()). */
struct sb_metrics_count;

/**
 * Starts, beside a backup job that is about to run, the `restic
 * snapshots` its metrics will need when a full count is due, so that
 * opening the repository (~0.7 s) hides behind the job's first stop
 * instead of adding to its end. NULL when none is due, or when only a
 * count after the job is right (retention on). The count follows the
 * job's cancel flag; pass it to sb_metrics_record_job() for job.
 */
struct sb_metrics_count *sb_metrics_count_start(const struct sb_config *cfg, struct sb_job *job);

/**
 * Updates STATE_DIR/metrics.json after job ended (the engine calls it
 * from sb_job_execute()), taking and freeing early (may be NULL). Dry
 * runs and jobs without an id change nothing; a cancelled job does not
 * recount snapshots. Failures are warnings: metrics never fail a job.
 */
void sb_metrics_record_job(const struct sb_config *cfg, struct sb_job *job, struct sb_metrics_count *early);

/**
 * Writes text to path atomically for node_exporter's textfile collector
 * (a temporary file next to it that the collector ignores, then a
 * rename), mode 0644. Returns 0, or -1 with *err (caller frees).
 */
int sb_metrics_write_textfile(const char *path, const char *text, char **err);

#endif
