/* stackback get: copy a file or directory out of a stack's snapshot. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "snaptarget.h"

static int cmd_get_exec(struct cli_ctx *ctx, int argc, char **argv);

const struct cli_cmd cmd_get = {
	.name = "get",
	.usage = "[--dry-run] [--to DIR] [cloud:]NAME[@SNAPSHOT] PATH",
	.summary = "copy a file or directory out of a stack's snapshot",
	.help = "Copies PATH (relative to the stack's directory; / for all of it) from the\n"
		"snapshot to DIR/BASENAME (DIR/NAME for the whole snapshot), with the snapshot's\n"
		"modes and times (and owners, as root). The destination must not exist.\n"
		"SNAPSHOT is latest (the default), a short or full id, or a snapshots/NAME/\n"
		"directory name; cloud: reads the repository restored from the cloud.\n\n"
		"  --to DIR      where to put it (default: the current directory)\n"
		"  --dry-run     say what would be copied, copy nothing\n\n"
		"Exit status: 0 ok, 1 failure, 2 usage.\n",
	.needs_config = true,
	.exec = cmd_get_exec,
};

static int cmd_get_exec(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{"to", required_argument, NULL, 't'},
		{"dry-run", no_argument, NULL, 'n'},
		{0},
	};
	const char *to = ".";
	bool dry_run = false;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 't')
			to = optarg;
		else if (c == 'n')
			dry_run = true;
		else
			return cli_usage(&cmd_get);
	}
	if (argc - optind != 2)
		return cli_usage(&cmd_get);
	const char *path = argv[optind + 1];
	struct stat st;
	if (stat(to, &st) < 0 || !S_ISDIR(st.st_mode)) {
		cli_error("'%s' is not a directory", to);
		return CLI_EXIT_FAILURE;
	}

	struct snap_target t;
	int rc = snap_target_open(ctx, argv[optind], &t);
	if (rc != CLI_EXIT_OK)
		return rc;
	cleanup_free char *label = snap_target_label(&t);
	sb_snode_id id;
	int lrc = sb_snaptree_lookup(t.tree, path, &id);
	if (lrc < 0) {
		cli_error("'%s' is not in snapshot %s: %s", path, label, strerror(-lrc));
		snap_target_close(&t);
		return CLI_EXIT_FAILURE;
	}
	const char *base = id == SB_SNODE_ROOT ? t.stack : sb_snaptree_name(t.tree, id);
	cleanup_free char *dest = xasprintf("%s/%s", to, base);
	cleanup_free char *rel = sb_snaptree_path(t.tree, id);
	if (dry_run) {
		printf("would copy %s:/%s to %s\n", label, rel, dest);
		snap_target_close(&t);
		return CLI_EXIT_OK;
	}
	cleanup_free char *err = NULL;
	if (sb_snapview_get(t.view, &t.snap, t.tree, path, dest, &err) < 0) {
		cli_error("%s", err);
		rc = CLI_EXIT_FAILURE;
	} else {
		printf("copied %s:/%s to %s\n", label, rel, dest);
	}
	snap_target_close(&t);
	return rc;
}
