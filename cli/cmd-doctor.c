/* stackback doctor: what works and what does not, each failure with its fix. */
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "stackback/doctor.h"
#include "stackback/log.h"

static int cmd_doctor_exec(struct cli_ctx *ctx, int argc, char **argv);

const struct cli_cmd cmd_doctor = {
	.name = "doctor",
	.usage = "[--json]",
	.summary = "check docker, compose, restic, rclone, the repository, the remote, disk space and files",
	.help = "Checks, in order: the configuration, the permissions of the files holding\n"
		"secrets, STATE_DIR (and stacks an interrupted run left stopped), the Docker\n"
		"engine, the compose command, restic, the repository (opened with the\n"
		"password), free space where it lives (MIN_DISK_SPACE_MB), rclone, the\n"
		"remote (rclone lsd within REMOTE_TIMEOUT), the control filesystem's mount\n"
		"and the notification settings. Every failure comes with the command that\n"
		"fixes it. Nothing is changed and no notification is sent.\n\n"
		"  --json        print {\"ok\", \"failed\", \"checks\": [{name, title, result,\n"
		"                detail, fix, duration_s}]}\n\n"
		"Exit status: 0 every check passed (warnings allowed), 1 a check failed, 2 usage.\n",
	/* A broken configuration is one of the things doctor reports, so it loads it itself. */
	.needs_config = false,
	.exec = cmd_doctor_exec,
};

static int cmd_doctor_exec(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{0},
	};
	bool json = false;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'j')
			return cli_usage(&cmd_doctor);
		json = true;
	}
	if (optind < argc) {
		cli_error("doctor takes no arguments");
		return cli_usage(&cmd_doctor);
	}

	struct sb_config cfg;
	struct sb_diags diags = {0};
	extern char **environ;
	sb_config_load(&cfg, (const char *const *)ctx->config_paths.v, ctx->config_paths.n, environ, &diags);
	struct sb_doctor_opts o = {.diags = &diags};
	struct sb_doctor_report rep;
	size_t failed = sb_doctor_run(&cfg, &o, &rep);
	char *text;
	if (json) {
		struct json_object *j = sb_doctor_json(&rep);
		text = xasprintf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY |
									     JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(j);
	} else {
		text = sb_doctor_text(&rep);
	}
	/* A detail may quote a child's stderr: mask whatever secret it could carry. */
	char *masked = sb_log_mask(text);
	fputs(masked, stdout);
	free(masked);
	free(text);
	sb_doctor_report_free(&rep);
	sb_diags_free(&diags);
	sb_config_free(&cfg);
	return failed ? CLI_EXIT_FAILURE : CLI_EXIT_OK;
}
