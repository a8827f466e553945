/**
 * @file notify.h
 * Notifications when a job starts and ends, or cannot even start
 * (SPEC §3 "notification settings", the `[stackback]` keys):
 *
 * - NOTIFY_COMMAND: split into words (no shell) and run through the
 *   runner with HOOK_TIMEOUT, with these variables added to its
 *   environment (RESTIC_PASSWORD removed from it):
 *     STACKBACK_EVENT    start | success | failure
 *     STACKBACK_STAGE    the job's kind: backup, sync, restore, check, forget, restore-stack
 *     STACKBACK_STACK    the stacks concerned, space-separated: those named
 *                        in the request at start (empty for "every enabled
 *                        stack"), those the job went through at its end
 *     STACKBACK_FAILED   at the end, the stacks that failed (space-separated)
 *     STACKBACK_SUMMARY  one line saying what happened (secrets masked)
 *     STACKBACK_JOB      the job id (empty when the job could not start)
 *   for every kind of job.
 * - HEALTHCHECK_URL: healthchecks.io-style pings for the stages the
 *   timer runs, backup and sync: URL/start when one starts, URL when it
 *   succeeds, URL/fail when it fails or cannot start, each a POST whose
 *   body is the summary. Sent with curl (http and https only), at most
 *   a few seconds each.
 *
 * Dry runs notify nothing. A failing notification is a warning in the
 * log and never changes a job's result.
 */
#ifndef STACKBACK_NOTIFY_H
#define STACKBACK_NOTIFY_H

#include "stackback/config.h"
#include "stackback/job.h"

enum sb_notify_event {
	SB_NOTIFY_START,
	SB_NOTIFY_SUCCESS,
	SB_NOTIFY_FAILURE,
};
/** "start", "success", "failure". */
const char *sb_notify_event_name(enum sb_notify_event e);

/** The engine calls this when the job starts running (sb_job_execute()). */
void sb_notify_job_start(const struct sb_config *cfg, struct sb_job *job);
/** The engine calls this once the job has its final state. */
void sb_notify_job_end(const struct sb_config *cfg, struct sb_job *job);

/**
 * A job of this kind was refused before it could start (job lock held,
 * stale mount, full queue...): a failure notification with reason as
 * its summary. Callers skip dry runs. Waits for the notification to be
 * sent (seconds at most).
 */
void sb_notify_refused(const struct sb_config *cfg, enum sb_job_kind kind, const char *reason);
/**
 * The same without waiting, for threads that must answer at once (a
 * FUSE request): what it needs of cfg is copied, so cfg need not
 * outlive the call.
 */
void sb_notify_refused_async(const struct sb_config *cfg, enum sb_job_kind kind, const char *reason);

/**
 * The URL a ping goes to: base with "/start" or "/fail" inserted before
 * any query string, a trailing slash of the path dropped first
 * ("https://hc.example/ping/abc?x=1" + "/fail" ->
 * "https://hc.example/ping/abc/fail?x=1"). suffix may be "". Caller frees.
 */
char *sb_notify_ping_url(const char *base, const char *suffix);

#endif
