/**
 * @file jobrun.h
 * The one path a front end takes to run a job (SPEC §6, §7 "Queue vs
 * refuse"): through the daemon when MOUNTPOINT has a live stackbackfs
 * with a trigger for the kind (write the trigger, follow jobs/ID/), in
 * this process otherwise (STATE_DIR, the job lock, restarting what a
 * crashed run left stopped, then sb_job_execute()), and an error that
 * names the fix when the mount is stale. Front ends differ only in how
 * they show what the hooks report; none of them decides anything here.
 */
#ifndef STACKBACK_JOBRUN_H
#define STACKBACK_JOBRUN_H

#include <stdatomic.h>
#include <stdbool.h>

#include "stackback/config.h"
#include "stackback/job.h"

/** What a front end hears while a job runs; every hook may be NULL. */
struct sb_jobrun_hooks {
	/**
	 * The job was accepted: its id (0 for an in-process dry run, which
	 * leaves no trace in STATE_DIR), whether the daemon runs it, and,
	 * in process, the job itself (NULL through the daemon) so that the
	 * caller may cancel it with job->cancel from any thread until
	 * sb_jobrun() returns.
	 */
	void (*on_start)(void *userdata, int job_id, bool daemon, struct sb_job *job);
	/** The job's state or progress changed. */
	void (*on_progress)(void *userdata, enum sb_job_state state, const struct sb_job_progress *p);
	/** One new line of the job's log ("STAMP LEVEL: text"), without its newline. */
	void (*on_log)(void *userdata, const char *line);
	void *userdata;
};

struct sb_jobrun_opts {
	/** In process: wait for the job lock instead of refusing while another run holds it. */
	bool wait_lock;
	/**
	 * Through the daemon: stop following once it becomes true (the job
	 * goes on in the daemon). May be NULL. In process, cancel through
	 * the job given to on_start instead: the engine then still starts
	 * every stack it stopped.
	 */
	const atomic_bool *stop;
	struct sb_jobrun_hooks hooks;
};

/** How sb_jobrun() ended when it returns no job. */
enum sb_jobrun_failure {
	SB_JOBRUN_NOT_RUN,    /**< it never ran: stale mount, lock held, trigger refused */
	SB_JOBRUN_DETACHED,   /**< following stopped; the job goes on in the daemon */
	SB_JOBRUN_LOST,       /**< the daemon ran it, but its result could not be read */
};

/**
 * Runs *req (consumed, zeroed) to its end, calling the hooks on the
 * calling thread. Returns the finished job (caller frees it with
 * sb_job_free()): in process the job that ran, through the daemon one
 * rebuilt from jobs/ID/report, so that sb_job_report_text() and
 * sb_job_report_json() render both alike. Returns NULL with *err (one
 * line, caller frees) and *why (may be NULL) when there is no result.
 *
 * In process the log file STATE_DIR/log is written while the job runs
 * (not for dry runs, which change nothing in STATE_DIR and take no
 * lock); whether log lines also reach stderr is the caller's choice
 * (sb_log_set_stderr()).
 */
struct sb_job *sb_jobrun(const struct sb_config *cfg, struct sb_job_request *req,
			 const struct sb_jobrun_opts *o, enum sb_jobrun_failure *why, char **err);

#endif
