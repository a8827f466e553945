/*
 * Shared by the job engine's files: job.c (lifecycle, reports,
 * persistence, dispatch) and one file per kind of job. Not installed.
 */
#ifndef STACKBACK_JOB_INTERNAL_H
#define STACKBACK_JOB_INTERNAL_H

#include <stdarg.h>

#include "stackback/job.h"
#include "stackback/log.h"

/*
 * Per-kind runners. Each runs in the job's thread, logs through sb_log
 * (the engine copies every line into job->log), updates progress with
 * the helpers below, honours job->cancel, and returns 0 on success or
 * -1 after sb_job_fail(). Stacks it stopped are started again on every
 * path.
 */
int sb_job_run_backup(const struct sb_config *cfg, struct sb_job *job);
int sb_job_run_check(const struct sb_config *cfg, struct sb_job *job);
int sb_job_run_forget(const struct sb_config *cfg, struct sb_job *job);
int sb_job_run_sync(const struct sb_config *cfg, struct sb_job *job);
int sb_job_run_restore(const struct sb_config *cfg, struct sb_job *job);
int sb_job_run_restore_stack(const struct sb_config *cfg, struct sb_job *job);

/* Sets the phase (and resets the counters) of the progress. stack may be NULL. */
void sb_job_set_phase(struct sb_job *job, const char *stack, const char *phase, int index,
		      int count);
/* Sets the counters of the current phase; eta_s < 0 = unknown. */
void sb_job_set_progress(struct sb_job *job, double percent, uint64_t bytes_done,
			 uint64_t bytes_total, uint64_t files_done, uint64_t files_total,
			 double eta_s);
/* Logs an error line and records it as the job's error (the first one wins). */
void sb_job_fail(struct sb_job *job, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Sets the one-line summary used by status and notifications. */
void sb_job_set_summary(struct sb_job *job, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Appends a report for a stack and returns its index. Reports are
 * edited through sb_job_report_update() so readers under mu never see a
 * half-written one.
 */
size_t sb_job_add_report(struct sb_job *job, const char *name);
/* Calls fn(report, userdata) under job->mu. */
void sb_job_report_update(struct sb_job *job, size_t index,
			  void (*fn)(struct sb_stack_report *r, void *userdata), void *userdata);

/* Records the transfer totals of a sync or restore (under mu). */
void sb_job_set_transfer(struct sb_job *job, uint64_t bytes, uint64_t files, double seconds);

#endif
