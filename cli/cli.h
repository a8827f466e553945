/* The stackback CLI: one file per command (cmd-*.c), one table (main.c). */
#ifndef STACKBACK_CLI_H
#define STACKBACK_CLI_H

#include <stdbool.h>

#include "stackback/config.h"

/* Exit codes (documented in stackback.1). */
enum {
	CLI_EXIT_OK = 0,
	CLI_EXIT_FAILURE = 1,
	CLI_EXIT_USAGE = 2,
};

struct cli_ctx {
	/** -c arguments in order, or the one default. */
	struct sb_strv config_paths;
	/** Loaded before exec when the command's needs_config is set. */
	struct sb_config cfg;
	bool json;
	const char *argv0;
};

struct cli_cmd {
	const char *name;
	const char *usage;    /* arguments after the name */
	const char *summary;  /* one line */
	const char *help;     /* the options, one per line, for --help */
	bool needs_config;
	/* argv[0] is the command name; getopt-style parsing from argv[1]. */
	int (*exec)(struct cli_ctx *ctx, int argc, char **argv);
};

extern const struct cli_cmd cmd_config;
extern const struct cli_cmd cmd_list, cmd_enable, cmd_disable, cmd_discover;
extern const struct cli_cmd cmd_status, cmd_init, cmd_backup, cmd_sync, cmd_restore, cmd_check;
extern const struct cli_cmd cmd_restore_stack;
extern const struct cli_cmd cmd_snapshots, cmd_forget, cmd_recover, cmd_mount, cmd_umount, cmd_wait, cmd_cancel;
extern const struct cli_cmd cmd_doctor, cmd_metrics, cmd_completion;

/* The command table (NULL-terminated): dispatch, help and completion read it. */
const struct cli_cmd *const *cli_command_table(void);
extern const struct cli_cmd cmd_ls, cmd_get;

/* Prints "stackback: error: ..." to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints the command's usage to stderr and returns CLI_EXIT_USAGE. */
int cli_usage(const struct cli_cmd *cmd);
/* Handles --help/-h for a command: returns true if help was printed. */
bool cli_wants_help(const struct cli_cmd *cmd, int argc, char **argv);

#endif
