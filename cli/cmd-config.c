/*
 * stackback config check|show|init|keys: the configuration seen from the
 * user's side (docs/configuration.md). The command loads the
 * configuration itself (needs_config is false) so that `check` can print
 * every diagnostic and choose its exit code even when loading fails.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "sb-build-config.h"

static int cmd_config_exec(struct cli_ctx *ctx, int argc, char **argv);

const struct cli_cmd cmd_config = {
	.name = "config",
	.usage = "check | show [--json] | init [PATH] [--force] | keys",
	.summary = "check, show or create the configuration",
	.help = "  check            report every problem as FILE:LINE: warning|error: message;\n"
		"                   exit 0 with warnings only, 1 on any error\n"
		"  show [--json]    the effective value of every key, as the files, the\n"
		"                   environment and the defaults make it; the password as ***\n"
		"  init [PATH]      write the commented template, mode 0600, to PATH (default:\n"
		"                   the -c file, $STACKBACK_CONFIG or " SB_DEFAULT_CONFIG ");\n"
		"    --force        overwrite an existing file\n"
		"  keys             the reference of every key (Markdown)\n\n"
		"Several -c files are layered: later files override earlier ones, and\n"
		"environment variables of the same names override them all (HOSTNAME:\n"
		"STACKBACK_HOSTNAME). Reference: docs/configuration.md.\n",
	.needs_config = false,
	.exec = cmd_config_exec,
};

/* Loads ctx's files and environment; diags are the caller's to print. */
static int load(struct cli_ctx *ctx, struct sb_diags *diags)
{
	extern char **environ;
	return sb_config_load(&ctx->cfg, (const char *const *)ctx->config_paths.v,
			      ctx->config_paths.n, environ, diags);
}

static const char *plural(size_t n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

static int config_check(struct cli_ctx *ctx, int argc, char **argv)
{
	if (argc > 1)
		return cli_usage(&cmd_config);
	struct sb_diags diags = {0};
	load(ctx, &diags);
	sb_diags_print(&diags, stdout);
	size_t errors = sb_diags_count(&diags, SB_DIAG_ERROR);
	size_t warnings = sb_diags_count(&diags, SB_DIAG_WARNING);
	struct sb_buf files = {0};
	for (size_t i = 0; i < ctx->config_paths.n; i++)
		sb_buf_printf(&files, "%s%s", i ? ", " : "", ctx->config_paths.v[i]);
	printf("%s: %s, %zu %s, %zu %s\n", files.data, errors ? "invalid" : "ok", errors,
	       plural(errors, "error", "errors"), warnings, plural(warnings, "warning", "warnings"));
	sb_buf_free(&files);
	sb_diags_free(&diags);
	return errors ? CLI_EXIT_FAILURE : CLI_EXIT_OK;
}

static int config_show(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{0},
	};
	bool json = false;
	int c;
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		if (c != 'j')
			return cli_usage(&cmd_config);
		json = true;
	}
	if (optind < argc)
		return cli_usage(&cmd_config);
	struct sb_diags diags = {0};
	int rc = load(ctx, &diags);
	sb_diags_print(&diags, stderr);
	sb_diags_free(&diags);
	if (json) {
		struct json_object *obj = sb_config_show_json(&ctx->cfg);
		puts(json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PRETTY |
								 JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(obj);
	} else {
		char *text = sb_config_show(&ctx->cfg);
		fputs(text, stdout);
		free(text);
	}
	if (rc < 0) {
		cli_error("configuration has errors (run 'stackback config check')");
		return CLI_EXIT_FAILURE;
	}
	return CLI_EXIT_OK;
}

/*
 * Writes data to path with mode 0600 through a temp file in the same
 * directory: link() refuses an existing path, rename() replaces it, so a
 * reader never sees half a file and no file is overwritten by accident.
 * Returns 0 or -errno.
 */
static int write_private_file(const char *path, const char *data, bool force)
{
	cleanup_free char *tmp = xasprintf("%s.XXXXXX", path);
	int fd = mkstemp(tmp);
	if (fd < 0)
		return -errno;
	int rc = 0;
	size_t len = strlen(data);
	for (size_t off = 0; off < len && rc == 0;) {
		ssize_t n = write(fd, data + off, len - off);
		if (n < 0 && errno != EINTR)
			rc = -errno;
		else if (n > 0)
			off += (size_t)n;
	}
	if (rc == 0 && fchmod(fd, 0600) < 0)
		rc = -errno;
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && (force ? rename(tmp, path) : link(tmp, path)) < 0)
		rc = -errno;
	if (rc != 0 || !force)
		unlink(tmp);
	return rc;
}

static int config_init(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{"force", no_argument, NULL, 'f'},
		{0},
	};
	bool force = false;
	int c;
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		if (c != 'f')
			return cli_usage(&cmd_config);
		force = true;
	}
	if (argc - optind > 1)
		return cli_usage(&cmd_config);
	const char *path;
	if (optind < argc) {
		path = argv[optind];
	} else if (ctx->config_paths.n == 1) {
		path = ctx->config_paths.v[0];
	} else {
		cli_error("several -c files given: name the one to write (config init PATH)");
		return CLI_EXIT_USAGE;
	}

	cleanup_free char *dir = xstrdup(path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		int r = sb_mkdir_p(dir, 0700);
		if (r < 0) {
			cli_error("cannot create directory %s: %s", dir, strerror(-r));
			return CLI_EXIT_FAILURE;
		}
	}
	int r = write_private_file(path, sb_config_template(), force);
	if (r == -EEXIST) {
		cli_error("%s already exists: not overwritten (use --force to replace it)", path);
		return CLI_EXIT_FAILURE;
	}
	if (r < 0) {
		cli_error("cannot write %s: %s", path, strerror(-r));
		return CLI_EXIT_FAILURE;
	}
	printf("wrote %s (mode 0600): edit it, then run 'stackback -c %s config check'\n", path,
	       path);
	return CLI_EXIT_OK;
}

static int config_keys(int argc)
{
	if (argc > 1)
		return cli_usage(&cmd_config);
	char *text = sb_config_reference();
	fputs(text, stdout);
	free(text);
	return CLI_EXIT_OK;
}

static int cmd_config_exec(struct cli_ctx *ctx, int argc, char **argv)
{
	if (argc < 2)
		return cli_usage(&cmd_config);
	const char *sub = argv[1];
	/* The subcommand parses its own options: argv[0] is its name. */
	int rc;
	if (strcmp(sub, "check") == 0) {
		rc = config_check(ctx, argc - 1, argv + 1);
	} else if (strcmp(sub, "show") == 0) {
		rc = config_show(ctx, argc - 1, argv + 1);
	} else if (strcmp(sub, "init") == 0) {
		return config_init(ctx, argc - 1, argv + 1);
	} else if (strcmp(sub, "keys") == 0) {
		return config_keys(argc - 1);
	} else {
		cli_error("unknown config subcommand '%s' (check, show, init or keys)", sub);
		return CLI_EXIT_USAGE;
	}
	sb_config_free(&ctx->cfg);
	return rc;
}
