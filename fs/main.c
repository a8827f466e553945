/*
 * stackbackfs: mounts the control filesystem (docs/control-filesystem.md)
 * and runs the jobs written to its trigger files, one at a time, in one
 * worker thread (core/queue.c). FUSE request threads only read state and
 * queue jobs; docker, restic and rclone run in the worker and in the
 * docker state prober, never on a request thread.
 *
 *   stackbackfs [-c CONFIG]... [MOUNTPOINT] [-f] [-d] [-s] [-o OPTIONS]
 *
 * Life cycle: parse options and configuration, refuse a stale or busy
 * mountpoint, mount, daemonize, then start the threads (fork keeps none).
 * SIGTERM, SIGINT or `fusermount3 -u` end the session; the running job
 * is then cancelled and the stacks it stopped are started again before
 * the process exits.
 */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sb-build-config.h"
#include "sbfs.h"
/* after sbfs.h, which sets FUSE_USE_VERSION */
#include <fuse_lowlevel.h>
#include "stackback/client.h"
#include "stackback/log.h"
#include "stackback/logsetup.h"
#include "stackback/state.h"

/* The daemon log in STATE_DIR is rotated to log.1 past this size. */
#define LOG_FILE_MAX (8u << 20)
/* Lines the `log` file shows. */
#define LOG_RING_LINES 1000

struct options {
	struct sb_strv configs;
	char *mountpoint;
	bool help;
	bool version;
};

enum {
	KEY_CONFIG,
	KEY_CONFIG_LONG,
	KEY_HELP,
	KEY_VERSION,
};

static const struct fuse_opt option_spec[] = {
	FUSE_OPT_KEY("-c ", KEY_CONFIG),
	FUSE_OPT_KEY("--config=%s", KEY_CONFIG_LONG),
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_END,
};

static int option_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct options *o = data;
	switch (key) {
	case KEY_CONFIG:
		sb_strv_push(&o->configs, arg + strlen("-c"));
		return 0;
	case KEY_CONFIG_LONG:
		sb_strv_push(&o->configs, arg + strlen("--config="));
		return 0;
	case KEY_HELP:
		o->help = true;
		return 0;
	case KEY_VERSION:
		o->version = true;
		return 0;
	case FUSE_OPT_KEY_NONOPT:
		/*
		 * Ours, not fuse_parse_cmdline()'s: it would realpath() a stale
		 * mountpoint and fail with a bare "Transport endpoint is not
		 * connected" before we can explain the fix.
		 */
		if (o->mountpoint) {
			fprintf(stderr, "stackbackfs: error: unexpected argument '%s'\n", arg);
			return -1;
		}
		o->mountpoint = xstrdup(arg);
		return 0;
	default:
		return 1;
	}
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: stackbackfs [-c CONFIG]... [MOUNTPOINT] [-f] [-d] [-s] [-o OPTIONS]\n"
		"\n"
		"Mounts the stackback control filesystem at MOUNTPOINT (default: MOUNTPOINT\n"
		"from the configuration) and runs the jobs its trigger files queue.\n"
		"\n"
		"  -c, --config=FILE  configuration file; repeat to layer files, later ones win\n"
		"                     (default: $STACKBACK_CONFIG, else %s)\n"
		"  -f                 stay in the foreground\n"
		"  -d                 foreground, with FUSE debug output\n"
		"  -s                 single-threaded\n"
		"  -o OPTIONS         mount options; allow_other follows ALLOW_OTHER\n"
		"  -h, --help         this help\n"
		"  -V, --version      the version\n"
		"\n"
		"Unmount with 'fusermount3 -u MOUNTPOINT'. See stackbackfs(8).\n",
		SB_DEFAULT_CONFIG);
}

/* ---- the selection cache ---- */

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static void sel_unref_locked(struct sbfs_sel *s)
{
	if (--s->refs > 0)
		return;
	sb_selection_free(&s->sel);
	free(s);
}

static void stat_sources(struct sbfs *fs, struct stat *dirlist, struct stat *stacks)
{
	/* A missing file is a zeroed stat: its appearance is a change too. */
	if (stat(fs->cfg.dirlist, dirlist) < 0)
		memset(dirlist, 0, sizeof(*dirlist));
	if (stat(fs->cfg.stacks_dir, stacks) < 0)
		memset(stacks, 0, sizeof(*stacks));
}

static int load_selection(struct sbfs *fs, struct sb_selection *sel, char **err)
{
	struct sb_diags diags = {0};
	int rc = sb_selection_load(&fs->cfg, sel, &diags);
	for (size_t i = 0; rc < 0 && i < diags.n && !*err; i++)
		if (diags.v[i].severity == SB_DIAG_ERROR)
			*err = diags.v[i].line > 0
				? xasprintf("%s:%d: %s", diags.v[i].file, diags.v[i].line, diags.v[i].message)
				: xasprintf("%s: %s", diags.v[i].file, diags.v[i].message);
	if (rc < 0 && !*err)
		*err = xstrdup("cannot load the stack selection");
	sb_diags_free(&diags);
	return rc;
}

static int by_name(const void *a, const void *b)
{
	const struct sb_stack *x = *(const struct sb_stack *const *)a, *y = *(const struct sb_stack *const *)b;
	int c = strcmp(x->name, y->name);
	return c ? c : (int)x->enabled - (int)y->enabled;
}

/* The stacks of one selection, ordered by name then enabled (caller frees). */
static const struct sb_stack **sorted_stacks(const struct sb_selection *sel)
{
	const struct sb_stack **v = xcalloc(sel->n + 1, sizeof(*v));
	for (size_t i = 0; i < sel->n; i++)
		v[i] = &sel->stacks[i];
	qsort(v, sel->n, sizeof(*v), by_name);
	return v;
}

/* Adds to names every stack that is in only one of a and b, or enabled in only one. */
static void selection_changes(const struct sb_selection *a, const struct sb_selection *b, struct sb_strv *names)
{
	cleanup_free const struct sb_stack **x = sorted_stacks(a);
	cleanup_free const struct sb_stack **y = sorted_stacks(b);
	size_t i = 0, j = 0;
	while (i < a->n || j < b->n) {
		int c = i == a->n ? 1 : j == b->n ? -1 : by_name(&x[i], &y[j]);
		if (c == 0) {
			i++, j++;
			continue;
		}
		const char *name = c < 0 ? x[i++]->name : y[j++]->name;
		if (!names->n || strcmp(names->v[names->n - 1], name) != 0)
			sb_strv_push(names, name);
	}
}

/* Caller holds sel_mu. Adds the stacks whose entries changed to changed. */
static void reload_locked(struct sbfs *fs, struct stat *dirlist, struct stat *stacks, struct sb_strv *changed)
{
	struct sb_selection sel = {0};
	cleanup_free char *err = NULL;
	int rc = load_selection(fs, &sel, &err);
	if (rc == 0) {
		bool has_new = false;
		for (size_t i = 0; i < sel.n; i++)
			has_new |= sel.stacks[i].origin == SB_STACK_NEW;
		/* The daemon records the stacks it discovers (SPEC §4), disabled. */
		cleanup_free char *uerr = NULL;
		if (has_new && sb_selection_update(&fs->cfg, NULL, 0, true, false, false, &uerr) == 0) {
			sb_selection_free(&sel);
			stat_sources(fs, dirlist, stacks);
			rc = load_selection(fs, &sel, &err);
		} else if (has_new) {
			sb_warn("cannot record new stacks in the dirlist '%s': %s", fs->cfg.dirlist, uerr);
		}
	}
	fs->dirlist_st = *dirlist;
	fs->stacks_st = *stacks;
	fs->sel_loaded_at = sb_now_monotonic();
	fs->sel_stale = false;
	if (rc < 0) {
		/* Keep serving the last good selection; say why once per distinct error. */
		if (!fs->sel_error || strcmp(fs->sel_error, err) != 0) {
			sb_error("stack selection not reloaded: %s", err);
			free(fs->sel_error);
			fs->sel_error = xstrdup(err);
		}
		if (fs->sel)
			return;
	} else {
		free(fs->sel_error);
		fs->sel_error = NULL;
	}
	struct sbfs_sel *s = xcalloc(1, sizeof(*s));
	s->refs = 1; /* the cache's own reference */
	s->sel = sel;
	if (fs->sel) {
		selection_changes(&fs->sel->sel, &sel, changed);
		sel_unref_locked(fs->sel);
	}
	fs->sel = s;
}

struct sbfs_sel *sbfs_sel_get(struct sbfs *fs)
{
	struct stat dirlist, stacks;
	stat_sources(fs, &dirlist, &stacks);
	struct sb_strv changed = {0};
	pthread_mutex_lock(&fs->sel_mu);
	/* The CLI edits the dirlist behind our back: its identity, size and mtime tell. */
	if (!fs->sel || fs->sel_stale || !same_file(&dirlist, &fs->dirlist_st) ||
	    !same_file(&stacks, &fs->stacks_st) ||
	    sb_now_monotonic() - fs->sel_loaded_at >= SBFS_SELECTION_TTL)
		reload_locked(fs, &dirlist, &stacks, &changed);
	struct sbfs_sel *s = fs->sel;
	s->refs++;
	pthread_mutex_unlock(&fs->sel_mu);
	/* The CLI toggled, a stack directory came or went: the kernel must ask again. */
	if (changed.n)
		sbfs_forget_stacks(fs, &changed);
	sb_strv_free(&changed);
	return s;
}

void sbfs_sel_put(struct sbfs *fs, struct sbfs_sel *s)
{
	pthread_mutex_lock(&fs->sel_mu);
	sel_unref_locked(s);
	pthread_mutex_unlock(&fs->sel_mu);
}

/*
 * A deep copy. Scalars come with the struct copy; each owned string is
 * duplicated (a new owned field in struct sb_stack must be added here).
 */
static void copy_selection(const struct sb_selection *from, struct sb_selection *to)
{
	*to = (struct sb_selection){0};
	to->n = from->n;
	to->stacks = xcalloc(from->n ? from->n : 1, sizeof(*to->stacks));
	for (size_t i = 0; i < from->n; i++) {
		const struct sb_stack *a = &from->stacks[i];
		struct sb_stack *b = &to->stacks[i];
		*b = *a;
		b->name = xstrdup(a->name);
		b->path = xstrdup(a->path);
		b->compose_file = xstrdup(a->compose_file);
		b->dirlist_key = xstrdup(a->dirlist_key);
		b->conflict = xstrdup(a->conflict);
	}
	for (size_t i = 0; i < from->skipped.n; i++)
		sb_strv_push(&to->skipped, from->skipped.v[i]);
}

void sbfs_sel_applied(struct sbfs *fs, const char *key, bool enabled)
{
	struct stat dirlist, stacks;
	stat_sources(fs, &dirlist, &stacks);
	pthread_mutex_lock(&fs->sel_mu);
	/*
	 * Re-reading 1,000 stacks costs more than the change itself: apply it
	 * to a copy of the cache (sb_selection_update() also recorded any new
	 * stack, so none is new any more) and take the dirlist's new identity
	 * as the one it matches. A CLI edit racing this one is picked up by the
	 * next reload, at the latest after SBFS_SELECTION_TTL.
	 */
	struct sb_strv changed = {0};
	if (fs->sel && !fs->sel_stale) {
		struct sbfs_sel *s = xcalloc(1, sizeof(*s));
		s->refs = 1;
		copy_selection(&fs->sel->sel, &s->sel);
		for (size_t i = 0; i < s->sel.n; i++) {
			struct sb_stack *st = &s->sel.stacks[i];
			if (st->origin == SB_STACK_NEW)
				st->origin = SB_STACK_LISTED;
			if (strcmp(st->dirlist_key, key) == 0) {
				st->enabled = enabled;
				sb_strv_push(&changed, st->name);
			}
		}
		sel_unref_locked(fs->sel);
		fs->sel = s;
		fs->dirlist_st = dirlist;
	} else {
		fs->sel_stale = true;
		/* The reload finds the change, but only if someone asks: forget the stack's entries now. */
		const char *slash = strrchr(key, '/');
		sb_strv_push(&changed, slash ? slash + 1 : key);
	}
	pthread_mutex_unlock(&fs->sel_mu);
	sbfs_forget_stacks(fs, &changed);
	sb_strv_free(&changed);
}

void sbfs_forget_stacks(struct sbfs *fs, const struct sb_strv *names)
{
	static const char *const dirs[] = {"enabled", "disabled", "stacks", "snapshots"};
	pthread_mutex_lock(&fs->open_mu);
	for (size_t i = 0; fs->notify_ok && i < names->n; i++) {
		for (size_t d = 0; d < SB_ARRAY_SIZE(dirs); d++) {
			cleanup_free char *path = xasprintf("/%s/%s", dirs[d], names->v[i]);
			/* -ENOENT: the kernel never looked it up, nothing to forget. */
			fuse_invalidate_path(fs->fuse, path);
		}
	}
	pthread_mutex_unlock(&fs->open_mu);
}

/* ---- poll notification ---- */

void sbfs_notify_polls(struct sbfs *fs)
{
	pthread_mutex_lock(&fs->open_mu);
	if (fs->notify_ok) {
		/* Each handle is armed once; the kernel polls again and re-arms it. */
		for (struct sbfs_handle *h = fs->polled; h; h = h->next_poll) {
			fuse_notify_poll(h->ph);
			fuse_pollhandle_destroy(h->ph);
			h->ph = NULL;
		}
		fs->polled = NULL;
	}
	pthread_mutex_unlock(&fs->open_mu);
}

static void on_queue_change(void *userdata, enum sb_queue_event ev, int job_id)
{
	struct sbfs *fs = userdata;
	/* A job that started, ended or went on to another step has stopped or started stacks. */
	if (ev == SB_QUEUE_JOB_PHASE)
		sb_stack_states_invalidate(fs->states);
	if (ev == SB_QUEUE_JOB_STATE) {
		sb_stack_states_invalidate(fs->states);
		/* ... and may have added or removed snapshots: `latest` must follow. */
		sbfs_snap_invalidate(fs);
	}
	sbfs_notify_polls(fs);
}

/* ---- start-up ---- */

static int load_config(struct sbfs *fs, struct options *o)
{
	if (o->configs.n == 0) {
		const char *env = getenv("STACKBACK_CONFIG");
		sb_strv_push(&o->configs, env && *env ? env : SB_DEFAULT_CONFIG);
	}
	extern char **environ;
	struct sb_diags diags = {0};
	int rc = sb_config_load(&fs->cfg, (const char *const *)o->configs.v, o->configs.n, environ, &diags);
	sb_diags_print(&diags, stderr);
	sb_diags_free(&diags);
	if (rc < 0) {
		sb_error("configuration has errors (run 'stackback config check')");
		return -1;
	}
	enum sb_log_level level;
	if (fs->cfg.log_level && sb_log_level_parse(fs->cfg.log_level, &level) == 0)
		sb_log_set_level(level);
	return 0;
}

/*
 * Refuses a mountpoint that holds a stale mount (a daemon died: the fix is
 * fusermount3 -u) or a live stackbackfs, and creates a missing one.
 * Returns the absolute mountpoint (caller frees) or NULL.
 */
static char *prepare_mountpoint(const char *mountpoint)
{
	cleanup_free char *err = NULL;
	switch (sb_mount_state(mountpoint, &err)) {
	case SB_MOUNT_STALE:
		sb_error("cannot mount: %s", err);
		return NULL;
	case SB_MOUNT_MOUNTED:
		sb_error("cannot mount: stackbackfs is already mounted at %s (unmount it with "
			 "'fusermount3 -u %s' first)", mountpoint, mountpoint);
		return NULL;
	case SB_MOUNT_ABSENT:
		break;
	}
	struct stat st;
	if (stat(mountpoint, &st) < 0) {
		int e = errno;
		if (e == ENOTCONN) {
			sb_error("cannot mount: %s holds a stale FUSE mount (transport endpoint is not "
				 "connected): unmount it with 'fusermount3 -u %s'", mountpoint, mountpoint);
			return NULL;
		}
		int rc = e == ENOENT ? sb_mkdir_p(mountpoint, 0755) : -e;
		if (rc < 0) {
			sb_error("cannot mount: mountpoint %s: %s", mountpoint, strerror(-rc));
			return NULL;
		}
	} else if (!S_ISDIR(st.st_mode)) {
		sb_error("cannot mount: mountpoint %s is not a directory", mountpoint);
		return NULL;
	}
	char *abs = realpath(mountpoint, NULL);
	if (!abs)
		sb_error("cannot mount: mountpoint %s: %s", mountpoint, strerror(errno));
	return abs;
}

static void record_new_stacks(struct sbfs *fs)
{
	cleanup_free char *err = NULL;
	if (sb_selection_update(&fs->cfg, NULL, 0, true, false, false, &err) < 0)
		sb_warn("cannot record new stacks in the dirlist '%s': %s", fs->cfg.dirlist, err);
}

/* During the shutdown a second signal must not cut short the restart of stopped stacks. */
static void ignore_stop_signals(void)
{
	struct sigaction sa = {.sa_handler = SIG_IGN};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct options opts = {0};
	struct fuse_cmdline_opts cl = {0};
	static struct sbfs fs_storage;
	struct sbfs *fs = &fs_storage;
	struct fuse *fuse = NULL;
	char *mountpoint = NULL;
	char *err = NULL;
	char *log_path = NULL;
	int status = 1;

	if (fuse_opt_parse(&args, &opts, option_spec, option_proc) < 0) {
		usage(stderr);
		status = 2;
		goto out_args;
	}
	if (opts.version) {
		printf("stackbackfs %s (libfuse %s)\n", SB_VERSION, fuse_pkgversion());
		status = 0;
		goto out_args;
	}
	if (opts.help) {
		usage(stdout);
		status = 0;
		goto out_args;
	}
	if (fuse_parse_cmdline(&args, &cl) != 0) {
		usage(stderr);
		status = 2;
		goto out_args;
	}

	if (load_config(fs, &opts) < 0)
		goto out_config;
	mountpoint = prepare_mountpoint(opts.mountpoint ? opts.mountpoint : fs->cfg.mountpoint);
	if (!mountpoint)
		goto out_config;
	if (sb_state_prepare(&fs->cfg, &err) < 0) {
		sb_error("%s", err);
		goto out_config;
	}

	fs->uid = getuid();
	fs->gid = getgid();
	clock_gettime(CLOCK_REALTIME, &fs->started);
	pthread_mutex_init(&fs->sel_mu, NULL);
	pthread_mutex_init(&fs->open_mu, NULL);
	sbfs_nodes_init(fs);
	fs->queue = sb_queue_new(&fs->cfg, on_queue_change, fs);
	fs->states = sb_stack_states_new(&fs->cfg);

	/* Owner-only unless the configuration opens it up; the kernel checks the modes. */
	fuse_opt_add_arg(&args, "-odefault_permissions,fsname=stackback,subtype=stackbackfs");
	if (fs->cfg.allow_other)
		fuse_opt_add_arg(&args, "-oallow_other");
	static struct fuse_operations ops;
	sbfs_snap_wrap(&sbfs_ops, &ops);
	fuse = fuse_new(&args, &ops, sizeof(ops), fs);
	if (!fuse)
		goto out_fs;
	if (fuse_mount(fuse, mountpoint) != 0) {
		sb_error("cannot mount the control filesystem at %s", mountpoint);
		goto out_fuse;
	}

	log_path = xasprintf("%s/log", fs->cfg.state_dir);
	int rc = sb_log_open_file(log_path, LOG_FILE_MAX);
	if (rc < 0)
		sb_warn("cannot write the log file '%s': %s", log_path, strerror(-rc));
	/* SYSLOG_SOCKET, or /dev/log when systemd runs us as a service (logsetup.h). */
	sb_log_setup_syslog(&fs->cfg, "stackbackfs", false);
	sb_log_ring_enable(LOG_RING_LINES);

	/* Threads start after this: fork keeps only the calling one. */
	if (fuse_daemonize(cl.foreground) != 0) {
		sb_error("cannot daemonize");
		goto out_unmount;
	}
	if (!cl.foreground)
		sb_log_set_stderr(false);

	record_new_stacks(fs);
	/* Before the queue, whose change callback invalidates the snapshot lists. */
	if (sbfs_snap_start(fs, &err) < 0) {
		sb_error("snapshots cannot be browsed: %s", err);
		free(err);
		err = NULL;
	}
	if (sb_queue_start(fs->queue, true, &err) < 0 || sb_stack_states_start(fs->states, &err) < 0) {
		sb_error("%s", err);
		goto out_threads;
	}
	struct fuse_session *se = fuse_get_session(fuse);
	if (fuse_set_signal_handlers(se) != 0) {
		sb_error("cannot install signal handlers");
		goto out_threads;
	}
	pthread_mutex_lock(&fs->open_mu);
	fs->notify_ok = true;
	fs->fuse = fuse;
	pthread_mutex_unlock(&fs->open_mu);
	sb_info("control filesystem mounted at %s (pid %ld, configuration %s)", mountpoint,
		(long)getpid(), fs->cfg.files.n ? fs->cfg.files.v[0] : "defaults");

	rc = cl.singlethread ? fuse_loop(fuse) : fuse_loop_mt(fuse, cl.clone_fd);
	status = rc < 0 ? 1 : 0;
	sb_info("control filesystem at %s is going away", mountpoint);
	fuse_remove_signal_handlers(se);

out_threads:
	ignore_stop_signals();
	pthread_mutex_lock(&fs->open_mu);
	fs->notify_ok = false;
	pthread_mutex_unlock(&fs->open_mu);
out_unmount:
	/* Unmount first: nobody should wait on a mount that no longer answers while the job unwinds. */
	fuse_unmount(fuse);
	sb_queue_shutdown(fs->queue);
	sb_stack_states_stop(fs->states);
	sbfs_snap_stop(fs);
	sb_info("stackbackfs stopped");
out_fuse:
	fuse_destroy(fuse);
out_fs:
	sb_queue_free(fs->queue);
	sb_stack_states_free(fs->states);
	sbfs_nodes_free(fs);
	if (fs->sel)
		sel_unref_locked(fs->sel);
	free(fs->sel_error);
	sb_log_open_file(NULL, 0);
	sb_log_open_syslog(NULL, NULL);
	free(mountpoint);
	free(log_path);
	free(err);
out_config:
	sb_config_free(&fs->cfg);
out_args:
	free(cl.mountpoint);
	free(opts.mountpoint);
	sb_strv_free(&opts.configs);
	fuse_opt_free_args(&args);
	return status;
}
