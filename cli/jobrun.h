/*
 * The CLI side of every job command (SPEC §6, §7), over sb_jobrun():
 * through the daemon when MOUNTPOINT is mounted, in process under the
 * job lock otherwise, an error naming the fix when the mount is stale.
 */
#ifndef STACKBACK_CLI_JOBRUN_H
#define STACKBACK_CLI_JOBRUN_H

#include <stdatomic.h>
#include <stdbool.h>

#include "cli.h"
#include "stackback/client.h"
#include "stackback/job.h"
#include "stackback/state.h"

struct cli_jobrun_opts {
	bool json;       /* the report as JSON on stdout, no progress display */
	bool wait_lock;  /* in-process: wait for the job lock instead of refusing */
};

/*
 * Runs the job described by *req (consumed) and prints its report.
 * Returns CLI_EXIT_OK if the job ended ok, CLI_EXIT_FAILURE otherwise.
 */
int cli_run_job(struct cli_ctx *ctx, struct sb_job_request *req, const struct cli_jobrun_opts *o);

/*
 * Looks at MOUNTPOINT: prints the error and returns -1 when the mount is
 * stale, else 0 with *mounted.
 */
int cli_check_mount(struct cli_ctx *ctx, bool *mounted);

/*
 * Takes the job lock for commands that act without a job (recover):
 * creates STATE_DIR, refuses naming the holder's PID unless wait.
 * Prints the error and returns -1 on failure.
 */
int cli_take_lock(struct cli_ctx *ctx, bool wait, struct sb_lock *lock);

/*
 * SIGINT, SIGTERM and SIGHUP set the flag cli_stop_flag() points to (and
 * cancel the job given, if any) instead of killing the process, until
 * cli_signals_restore().
 */
void cli_signals_catch(struct sb_job *job);
void cli_signals_restore(void);
const atomic_bool *cli_stop_flag(void);

#endif
