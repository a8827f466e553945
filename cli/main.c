/*
 * stackback: the command table and dispatch. Global options come before
 * the command: -c CONFIG (repeatable, later files override earlier
 * ones), --version, --help.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "sb-build-config.h"
#include "stackback/log.h"
#include "stackback/logsetup.h"

/* The command table: drives dispatch, help and shell completion. */
static const struct cli_cmd *const commands[] = {
	&cmd_config,
	&cmd_status,
	&cmd_list,
	&cmd_enable,
	&cmd_disable,
	&cmd_discover,
	&cmd_init,
	&cmd_backup,
	&cmd_sync,
	&cmd_restore,
	&cmd_restore_stack,
	&cmd_check,
	&cmd_snapshots,
	&cmd_ls,
	&cmd_get,
	&cmd_forget,
	&cmd_recover,
	&cmd_doctor,
	&cmd_metrics,
	&cmd_completion,
	&cmd_mount,
	&cmd_umount,
	&cmd_wait,
	&cmd_cancel,
	NULL,
};

const struct cli_cmd *const *cli_command_table(void)
{
	return commands;
}

void cli_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	char *masked = sb_log_mask(msg);
	fprintf(stderr, "stackback: error: %s\n", masked);
	free(masked);
	free(msg);
}

int cli_usage(const struct cli_cmd *cmd)
{
	fprintf(stderr, "usage: stackback [-c CONFIG] %s %s\n", cmd->name, cmd->usage);
	return CLI_EXIT_USAGE;
}

bool cli_wants_help(const struct cli_cmd *cmd, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			printf("usage: stackback [-c CONFIG] %s %s\n\n%s\n", cmd->name, cmd->usage,
			       cmd->summary);
			if (cmd->help && *cmd->help)
				printf("\n%s", cmd->help);
			return true;
		}
	}
	return false;
}

static void print_help(FILE *out)
{
	fprintf(out, "usage: stackback [-c CONFIG]... [--log-level LEVEL] [--syslog] COMMAND [ARGS]\n\n"
		     "Back up Docker compose stacks with restic, sync them to the cloud with\n"
		     "rclone, and restore them.\n\ncommands:\n");
	for (size_t i = 0; commands[i]; i++)
		fprintf(out, "  %-14s %s\n", commands[i]->name, commands[i]->summary);
	fprintf(out, "\nCONFIG defaults to $STACKBACK_CONFIG, else %s.\n"
		     "--log-level overrides LOG_LEVEL (error, warning, info, debug); --syslog also\n"
		     "logs to /dev/log (automatic when run as a systemd service). Jobs and\n"
		     "recovery also log to STATE_DIR/log.\n"
		     "Run 'stackback COMMAND --help' for a command's options.\n"
		     "Exit codes: 0 ok, 1 failure, 2 usage.\n",
		SB_DEFAULT_CONFIG);
}

static const struct cli_cmd *find_command(const char *name)
{
	for (size_t i = 0; commands[i]; i++)
		if (strcmp(commands[i]->name, name) == 0)
			return commands[i];
	return NULL;
}

static int load_config(struct cli_ctx *ctx)
{
	struct sb_diags diags = {0};
	extern char **environ;
	int rc = sb_config_load(&ctx->cfg, (const char *const *)ctx->config_paths.v,
				ctx->config_paths.n, environ, &diags);
	sb_diags_print(&diags, stderr);
	sb_diags_free(&diags);
	if (rc < 0) {
		cli_error("configuration has errors (run 'stackback config check')");
		return -1;
	}
	enum sb_log_level level;
	if (ctx->cfg.log_level && sb_log_level_parse(ctx->cfg.log_level, &level) == 0)
		sb_log_set_level(level);
	return 0;
}

int main(int argc, char **argv)
{
	struct cli_ctx ctx = {.argv0 = argv[0]};
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{"log-level", required_argument, NULL, 'L'},
		{"syslog", no_argument, NULL, 'S'},
		{0},
	};
	int c;
	bool want_syslog = false, level_given = false;
	enum sb_log_level level = SB_LOG_INFO;
	/* '+' stops at the command name, so each command parses its own options. */
	while ((c = getopt_long(argc, argv, "+c:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			sb_strv_push(&ctx.config_paths, optarg);
			break;
		case 'L':
			if (sb_log_level_parse(optarg, &level) < 0) {
				cli_error("--log-level '%s': expected error, warning, info or debug", optarg);
				return CLI_EXIT_USAGE;
			}
			level_given = true;
			break;
		case 'S':
			want_syslog = true;
			break;
		case 'h':
			print_help(stdout);
			return CLI_EXIT_OK;
		case 'V':
			printf("stackback %s\n", SB_VERSION);
			return CLI_EXIT_OK;
		default:
			print_help(stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		print_help(stderr);
		return CLI_EXIT_USAGE;
	}
	const struct cli_cmd *cmd = find_command(argv[optind]);
	if (!cmd) {
		cli_error("unknown command '%s' (see 'stackback --help')", argv[optind]);
		return CLI_EXIT_USAGE;
	}
	int cmd_argc = argc - optind;
	char **cmd_argv = argv + optind;
	if (cli_wants_help(cmd, cmd_argc, cmd_argv)) {
		sb_strv_free(&ctx.config_paths);
		return CLI_EXIT_OK;
	}

	if (ctx.config_paths.n == 0) {
		const char *env = getenv("STACKBACK_CONFIG");
		sb_strv_push(&ctx.config_paths, env && *env ? env : SB_DEFAULT_CONFIG);
	}
	int rc;
	if (cmd->needs_config && load_config(&ctx) < 0) {
		rc = CLI_EXIT_FAILURE;
	} else {
		if (cmd->needs_config) {
			/* STATE_DIR/log is opened where STATE_DIR changes: jobs, recovery. */
			sb_log_setup_level(&ctx.cfg);
			sb_log_setup_syslog(&ctx.cfg, "stackback", want_syslog);
		}
		if (level_given)
			sb_log_set_level(level);
		optind = 0; /* full getopt reset for the command's own parsing */
		rc = cmd->exec(&ctx, cmd_argc, cmd_argv);
	}
	if (cmd->needs_config)
		sb_config_free(&ctx.cfg);
	sb_strv_free(&ctx.config_paths);
	return rc;
}
