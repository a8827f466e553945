/* stackback ls: browse a snapshot's tree, like snapshots/NAME/SNAP/ in the mount. */
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "snaptarget.h"

static int cmd_ls_exec(struct cli_ctx *ctx, int argc, char **argv);

const struct cli_cmd cmd_ls = {
	.name = "ls",
	.usage = "[--json] [-R] [cloud:]NAME[@SNAPSHOT] [PATH]",
	.summary = "list a directory (or show a file) of a stack's snapshot",
	.help = "SNAPSHOT is latest (the default), a short or full id, or a snapshots/NAME/\n"
		"directory name (YYYY-MM-DDTHH:MM:SS_ID); cloud: reads the repository restored\n"
		"from the cloud. PATH is relative to the stack's directory (default: its top).\n\n"
		"  -R, --recursive  list the whole subtree\n"
		"  --json           print {stack, snapshot{id,short_id,name,time}, path, entries[]}\n"
		"                   with name, path, type, mode, size, mtime, uid, gid, target\n\n"
		"Lines: MODE UID GID SIZE MTIME(UTC) PATH, \" -> TARGET\" for symlinks; bytes that\n"
		"are not printable are shown as \\ooo escapes.\n\n"
		"Exit status: 0 ok, 1 failure (e.g. no such path), 2 usage.\n",
	.needs_config = true,
	.exec = cmd_ls_exec,
};

static const char *type_name(mode_t m)
{
	switch (m & S_IFMT) {
	case S_IFDIR:
		return "dir";
	case S_IFLNK:
		return "symlink";
	case S_IFREG:
		return "file";
	case S_IFIFO:
		return "fifo";
	case S_IFSOCK:
		return "socket";
	case S_IFCHR:
		return "chardev";
	case S_IFBLK:
		return "dev";
	default:
		return "other";
	}
}

static void mode_string(mode_t m, char out[11])
{
	static const char types[] = {[S_IFDIR >> 12] = 'd', [S_IFLNK >> 12] = 'l', [S_IFREG >> 12] = '-',
				     [S_IFIFO >> 12] = 'p', [S_IFSOCK >> 12] = 's', [S_IFCHR >> 12] = 'c',
				     [S_IFBLK >> 12] = 'b'};
	out[0] = types[(m & S_IFMT) >> 12] ? types[(m & S_IFMT) >> 12] : '?';
	static const char rwx[] = "rwxrwxrwx";
	for (int i = 0; i < 9; i++)
		out[1 + i] = (m & (0400 >> i)) ? rwx[i] : '-';
	if (m & S_ISUID)
		out[3] = (m & 0100) ? 's' : 'S';
	if (m & S_ISGID)
		out[6] = (m & 0010) ? 's' : 'S';
	if (m & S_ISVTX)
		out[9] = (m & 0001) ? 't' : 'T';
	out[10] = '\0';
}

/* Names may hold any byte but '/' and NUL: keep a terminal safe. */
static void print_escaped(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < 0x20 || *p == 0x7f || *p == '\\')
			printf("\\%03o", *p);
		else
			putchar(*p);
	}
}

static void print_line(const struct sb_snaptree *t, sb_snode_id id, const char *shown)
{
	struct stat st;
	sb_snaptree_stat(t, id, &st);
	char mode[11], when[32];
	mode_string(st.st_mode, mode);
	struct tm tm;
	gmtime_r(&st.st_mtim.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	printf("%s %5u %5u %10lld %s ", mode, (unsigned)st.st_uid, (unsigned)st.st_gid,
	       (long long)st.st_size, when);
	print_escaped(shown);
	if (S_ISDIR(st.st_mode) && *shown)
		putchar('/');
	const char *target = sb_snaptree_link(t, id);
	if (target) {
		fputs(" -> ", stdout);
		print_escaped(target);
	}
	putchar('\n');
}

static struct json_object *entry_json(const struct sb_snaptree *t, sb_snode_id id)
{
	struct stat st;
	sb_snaptree_stat(t, id, &st);
	struct json_object *o = json_object_new_object();
	cleanup_free char *path = sb_snaptree_path(t, id);
	char mode[8], when[48];
	snprintf(mode, sizeof(mode), "%04o", (unsigned)(st.st_mode & 07777));
	struct tm tm;
	gmtime_r(&st.st_mtim.tv_sec, &tm);
	size_t n = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + n, sizeof(when) - n, ".%09ldZ", st.st_mtim.tv_nsec);
	json_object_object_add(o, "name", json_object_new_string(sb_snaptree_name(t, id)));
	json_object_object_add(o, "path", json_object_new_string(path));
	json_object_object_add(o, "type", json_object_new_string(type_name(st.st_mode)));
	json_object_object_add(o, "mode", json_object_new_string(mode));
	json_object_object_add(o, "size", json_object_new_int64((int64_t)st.st_size));
	json_object_object_add(o, "mtime", json_object_new_string(when));
	json_object_object_add(o, "uid", json_object_new_int64(st.st_uid));
	json_object_object_add(o, "gid", json_object_new_int64(st.st_gid));
	const char *target = sb_snaptree_link(t, id);
	if (target)
		json_object_object_add(o, "target", json_object_new_string(target));
	return o;
}

struct listing {
	const struct sb_snaptree *t;
	struct json_object *entries;  /* NULL: print lines */
	size_t base_len;              /* strip this much of each path in text lines */
};

static void emit(struct listing *l, sb_snode_id id)
{
	if (l->entries) {
		json_object_array_add(l->entries, entry_json(l->t, id));
		return;
	}
	cleanup_free char *path = sb_snaptree_path(l->t, id);
	const char *shown = path + (l->base_len && strlen(path) > l->base_len ? l->base_len + 1 : 0);
	print_line(l->t, id, shown);
}

static void list_dir(struct listing *l, sb_snode_id dir, bool recursive)
{
	uint32_t n = sb_snaptree_nchildren(l->t, dir);
	for (uint32_t i = 0; i < n; i++) {
		sb_snode_id c = sb_snaptree_child_at(l->t, dir, i);
		emit(l, c);
		if (recursive && S_ISDIR(sb_snaptree_mode(l->t, c)))
			list_dir(l, c, true);
	}
}

static int cmd_ls_exec(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"recursive", no_argument, NULL, 'R'},
		{0},
	};
	bool json = false, recursive = false;
	int c;
	while ((c = getopt_long(argc, argv, "R", opts, NULL)) != -1) {
		if (c == 'j')
			json = true;
		else if (c == 'R')
			recursive = true;
		else
			return cli_usage(&cmd_ls);
	}
	int left = argc - optind;
	if (left < 1 || left > 2)
		return cli_usage(&cmd_ls);
	const char *path = left == 2 ? argv[optind + 1] : "";

	struct snap_target t;
	int rc = snap_target_open(ctx, argv[optind], &t);
	if (rc != CLI_EXIT_OK)
		return rc;
	sb_snode_id id;
	int lrc = sb_snaptree_lookup(t.tree, path, &id);
	if (lrc < 0) {
		cleanup_free char *label = snap_target_label(&t);
		cli_error("'%s' is not in snapshot %s: %s", path, label, strerror(-lrc));
		snap_target_close(&t);
		return CLI_EXIT_FAILURE;
	}
	bool is_dir = S_ISDIR(sb_snaptree_mode(t.tree, id));
	cleanup_free char *base = sb_snaptree_path(t.tree, id);
	struct listing l = {.t = t.tree, .base_len = is_dir ? strlen(base) : 0};
	struct json_object *out = NULL;
	if (json) {
		out = json_object_new_object();
		struct json_object *snap = json_object_new_object();
		char when[32];
		sb_format_time_utc(t.snap.time, when, sizeof(when));
		json_object_object_add(snap, "id", json_object_new_string(t.snap.id));
		json_object_object_add(snap, "short_id", json_object_new_string(t.snap.short_id));
		json_object_object_add(snap, "name", json_object_new_string(t.snap.name));
		json_object_object_add(snap, "time", json_object_new_string(when));
		json_object_object_add(out, "stack", json_object_new_string(t.stack));
		json_object_object_add(out, "cloud", json_object_new_boolean(t.cloud));
		json_object_object_add(out, "snapshot", snap);
		json_object_object_add(out, "path", json_object_new_string(base));
		l.entries = json_object_new_array();
		json_object_object_add(out, "entries", l.entries);
	}
	if (is_dir)
		list_dir(&l, id, recursive);
	else
		emit(&l, id);
	if (out) {
		printf("%s\n", json_object_to_json_string_ext(out, JSON_C_TO_STRING_PRETTY |
									JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(out);
	}
	snap_target_close(&t);
	return CLI_EXIT_OK;
}
