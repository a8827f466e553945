/*
 * The CLI side of every job command (SPEC §6, §7), over sb_jobrun():
 * through the daemon when MOUNTPOINT is mounted, in process under the
 * job lock otherwise, an error naming the fix when the mount is stale.
 */
#ifndef STACKBACK_CLI_JOBRUN_H
#define STACKBACK_CLI_JOBRUN_H

#include <getopt.h>
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

/* What a job command takes besides --json and --wait-lock. */
struct cli_job_flags {
	bool dry_run;               /* --dry-run sets req->dry_run */
	const struct option *extra; /* the command's own options, {0}-terminated, or NULL */
	/* Applies one of extra's options to req; -1 refuses it (usage). */
	int (*on_extra)(int opt, const char *arg, struct sb_job_request *req);
};

/*
 * Parses a job command's options into *req and *o, leaving optind at the
 * first operand. Returns 0, or CLI_EXIT_USAGE after printing cmd's usage
 * (req freed).
 */
int cli_job_options(const struct cli_cmd *cmd, int argc, char **argv, const struct cli_job_flags *flags,
		    struct sb_job_request *req, struct cli_jobrun_opts *o);

/*
 * The operands from optind on as stack names, each once, into req->stacks.
 * Returns 0, or CLI_EXIT_USAGE after naming an invalid one (req freed).
 */
int cli_job_stacks(int argc, char **argv, struct sb_job_request *req);

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
