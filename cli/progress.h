/*
 * Job progress on the terminal: one line redrawn in place when stderr
 * is a TTY, plain lines when it is not, nothing with --json. Log lines
 * printed through cli_progress_log() appear above the bar, never
 * through it.
 */
#ifndef STACKBACK_CLI_PROGRESS_H
#define STACKBACK_CLI_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>

#include "stackback/job.h"

enum cli_progress_mode {
	CLI_PROGRESS_NONE,
	CLI_PROGRESS_LINES,
	CLI_PROGRESS_BAR,
};

struct cli_progress {
	enum cli_progress_mode mode;
	bool drawn;            /* a bar is on the screen, the cursor at its end */
	char bar[512];         /* the bar last drawn, redrawn after a log line */
	char last_step[256];   /* LINES mode: the "[i/n] stack phase" last printed */
};

/* Picks the mode: NONE with json, BAR if stderr is a terminal, else LINES. */
void cli_progress_init(struct cli_progress *pg, bool json);
/* Shows the job's state and progress. */
void cli_progress_update(struct cli_progress *pg, enum sb_job_state state,
			 const struct sb_job_progress *p);
/* Prints one job log line to stderr, above the bar if there is one. */
void cli_progress_log(struct cli_progress *pg, const char *line);
/* Clears the bar so the report starts on a clean line. */
void cli_progress_done(struct cli_progress *pg);

/*
 * The bar's text, e.g. "[2/3] web  backup  45% 120.5 MiB/300.0 MiB  eta
 * 0m12s"; parts without data are left out.
 */
void cli_progress_format(const struct sb_job_progress *p, char *buf, size_t size);
/* "0m12s", "1h05m"; "" when unknown (negative). */
void cli_format_eta(double seconds, char *buf, size_t size);
/*
 * A job log line as the user sees it on stderr: "STAMP LEVEL: text"
 * (the engine's format) becomes "stackback: text", warnings and errors
 * keep their level. Other lines are returned as they are. Caller frees.
 */
char *cli_format_log_line(const char *line);

#endif
