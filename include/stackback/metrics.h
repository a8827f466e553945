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
 * ended). Snapshot counts come from one `restic snapshots` after each
 * job that adds or removes snapshots (backup, forget, restore-stack).
 */
#ifndef STACKBACK_METRICS_H
#define STACKBACK_METRICS_H

#include "stackback/config.h"
#include "stackback/job.h"

/**
 * Updates STATE_DIR/metrics.json after job ended (the engine calls it
 * from sb_job_execute()). Dry runs and jobs without an id change
 * nothing; a cancelled job does not recount snapshots. Failures are
 * warnings: metrics never fail a job.
 */
void sb_metrics_record_job(const struct sb_config *cfg, struct sb_job *job);

/**
 * Writes text to path atomically for node_exporter's textfile collector
 * (a temporary file next to it that the collector ignores, then a
 * rename), mode 0644. Returns 0, or -1 with *err (caller frees).
 */
int sb_metrics_write_textfile(const char *path, const char *text, char **err);

#endif
