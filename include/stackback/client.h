/**
 * @file client.h
 * Driving a running daemon through its control filesystem (SPEC §7):
 * mount detection, the trigger handshake, following a job and waiting
 * for the queue to drain. The CLI and the TUI share it; it knows
 * nothing of argv, terminals or FUSE, only of files under MOUNTPOINT.
 */
#ifndef STACKBACK_CLIENT_H
#define STACKBACK_CLIENT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "stackback/job.h"

enum sb_mount_state {
	SB_MOUNT_ABSENT,   /**< no stackbackfs at MOUNTPOINT: run jobs in-process */
	SB_MOUNT_MOUNTED,  /**< a live daemon answers there */
	SB_MOUNT_STALE,    /**< mounted but its daemon is gone or hung */
};

/**
 * Scans mountinfo text (the format of /proc/self/mountinfo, octal
 * escapes such as "\040" decoded) for the topmost mount at exactly
 * mountpoint (absolute, no trailing slash). Returns true when that
 * mount's type is "fuse.stackbackfs".
 */
bool sb_mountinfo_has_stackbackfs(const char *text, size_t len, const char *mountpoint);

/**
 * Decodes one mountinfo path field in place ("\040" → ' ', "\011",
 * "\012", "\134"). Malformed escapes are kept verbatim. Returns s.
 */
char *sb_mountinfo_unescape(char *s);

/**
 * Where the daemon stands at mountpoint, judged from mountinfo_path
 * (NULL = /proc/self/mountinfo) and from a stat of the mountpoint that
 * must answer within a few seconds. mountpoint is made absolute and
 * resolved (through its parent, so a dead mount is never stat-ed for
 * that). STALE comes with *err naming the fix `fusermount3 -u
 * MOUNTPOINT` (caller frees); so does an unreadable mountinfo, which
 * is reported as STALE because running in-process would then be a
 * guess.
 */
enum sb_mount_state sb_mount_state_at(const char *mountinfo_path, const char *mountpoint,
				      char **err);
/** sb_mount_state_at() on /proc/self/mountinfo. */
enum sb_mount_state sb_mount_state(const char *mountpoint, char **err);

/**
 * Parses the "key: value" lines of jobs/ID/progress into *p (zeroed
 * first, eta_s -1 when absent). Unknown keys are ignored so the daemon
 * may add some. Returns 0, or -1 when a known key has a malformed
 * value (p then holds what was read before it).
 */
int sb_client_parse_progress(const char *text, size_t len, struct sb_job_progress *p);

/**
 * Parses a trigger's read-back "job ID STATE" (or "job ID queued").
 * Returns 0 with *id and *state, or -1.
 */
int sb_client_parse_trigger_reply(const char *text, size_t len, int *id, enum sb_job_state *state);

/**
 * The trigger payload for a request (SPEC §7 "Triggers"): the stack
 * names or "1", then "force", "read-data" and "dry-run" as set, so that
 * sb_job_request_parse() gives the request back; for a restore-stack
 * job "NAME SNAPSHOT [dry-run]". NULL when a trigger cannot carry it (a
 * restore target, --to). Caller frees.
 */
char *sb_client_trigger_payload(const struct sb_job_request *r);

/**
 * Writes payload to MOUNTPOINT/trigger/KIND and learns the job's id by
 * reading "job ID queued" back on the same open file. A refusal
 * (EINVAL) comes back with the daemon's reason in *err; a full queue
 * (EBUSY) says so. The trigger file is named after the kind
 * (sb_job_kind_name()), except for restore-stack: its payload's first
 * word names the stack, the rest goes to stacks/NAME/restore. Returns 0
 * with *job_id, or -1 with *err (caller frees).
 */
int sb_client_trigger(const char *mountpoint, enum sb_job_kind kind, const char *payload,
		      int *job_id, char **err);

/** The id of the job the daemon runs (status.json), 0 when none, -1 with *err (caller frees). */
int sb_client_running_job(const char *mountpoint, char **err);

/**
 * Asks the daemon to cancel job id (jobs/ID/cancel). Returns 0, or -1
 * with *err (caller frees): no such job, or the daemon's reason (it ended).
 */
int sb_client_cancel(const char *mountpoint, int id, char **err);

/** Called by sb_client_follow() whenever the job's state or progress changes. */
typedef void (*sb_client_progress_fn)(void *userdata, int job_id, enum sb_job_state state,
				      const struct sb_job_progress *p);
/** Called by sb_client_follow() for each new line of jobs/ID/log (without its newline). */
typedef void (*sb_client_log_fn)(void *userdata, const char *line);

struct sb_client_follow_opts {
	double timeout_s;               /**< <= 0: no limit */
	double poll_s;                  /**< <= 0: 0.2 s */
	const atomic_bool *stop;        /**< stop following (the job goes on); may be NULL */
	sb_client_progress_fn on_progress;
	sb_client_log_fn on_log;
	void *userdata;
};

/**
 * Follows job id by polling jobs/ID/state, jobs/ID/progress and
 * jobs/ID/log until the state is final. Returns 0 with *final, 1 if
 * the timeout passed or *stop became true first, -1 with *err (the job
 * vanished, the mount went away).
 */
int sb_client_follow(const char *mountpoint, int id, const struct sb_client_follow_opts *o,
		     enum sb_job_state *final, char **err);

/**
 * Reads MOUNTPOINT/jobs/ID/report, the finished job's report as JSON.
 * Returns the text (caller frees) or NULL with *err.
 */
char *sb_client_report(const char *mountpoint, int id, char **err);

/** True if the control file for KIND exists (trigger/KIND; stacks/ for restore-stack). */
bool sb_client_has_trigger(const char *mountpoint, enum sb_job_kind kind);

/**
 * Rebuilds a finished job from its report (the JSON that the engine
 * persists as report.json and the daemon serves as jobs/ID/report), so
 * that sb_job_report_text() renders a daemon's job exactly as an
 * in-process one. Returns the job (caller frees with sb_job_free()) or
 * NULL with *err.
 */
struct sb_job *sb_client_job_from_report(const char *json, size_t len, char **err);

/** What sb_client_wait() found once nothing was queued or running. */
struct sb_client_last {
	bool any;                 /**< false: no job ever ran */
	int id;
	enum sb_job_kind kind;
	enum sb_job_state state;
};

/**
 * Parses status.json (SPEC §7 "Status"). *busy is true while a job
 * runs or one is queued; *last the newest finished job. Returns 0, or
 * -1 when the text is not the expected object.
 */
int sb_client_parse_status(const char *json, size_t len, bool *busy, struct sb_client_last *last);

/**
 * SPEC `wait` through the mount: polls status.json until nothing is
 * queued or running. Returns 0 with *last, 1 on timeout (or *stop),
 * -1 with *err.
 */
int sb_client_wait(const char *mountpoint, double timeout_s, const atomic_bool *stop,
		   struct sb_client_last *last, char **err);

#endif
