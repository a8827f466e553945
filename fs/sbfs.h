/*
 * stackbackfs internals: the daemon's state (main.c), the node table
 * (nodes.c) and the FUSE operations that translate it (ops.c).
 *
 * Lock order: sel_mu and open_mu are leaves with respect to each other
 * (never nested); both may be taken while no core lock is held. Core
 * locks (queue, job, state cache) are never held when they are taken,
 * except that the queue's change callback takes open_mu with nothing
 * held.
 */
#ifndef STACKBACKFS_SBFS_H
#define STACKBACKFS_SBFS_H

#define FUSE_USE_VERSION 31

#include <fuse.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/stat.h>

#include "stackback/config.h"
#include "stackback/queue.h"
#include "stackback/stacks.h"
#include "stackback/stackstate.h"
#include "stackback/util.h"

/*
 * How long the kernel keeps names and attributes (ops.c). A listing is
 * never cached; what the daemon changes itself (a toggle, a selection it
 * reloads) it makes the kernel forget at once (sbfs_forget_stacks()), so
 * only a stat of a name removed behind its back (a stack directory
 * deleted, a job pruned, a snapshot forgotten by the CLI) may be this old.
 * Without it every stat costs two round trips to the daemon: `du` of a
 * 100,000-file snapshot took 15 s instead of about 2.
 */
#define SBFS_CACHE_S 1.0
/* How long a loaded selection is trusted when neither the dirlist nor DOCKER_STACKS_DIR changed. */
#define SBFS_SELECTION_TTL 2.0
/*
 * A read of stacks/NAME/state waits for docker as long as docker itself
 * may take (DOCKER_TIMEOUT, after which the runner kills it) plus this
 * margin, then answers from the cache ("unknown" if docker never did).
 */
#define SBFS_STATE_MARGIN 1.0

/* A loaded selection shared by the requests that use it. */
struct sbfs_sel {
	int refs;                  /* sbfs.sel_mu */
	struct sb_selection sel;   /* read-only once published */
};

/* An open file: its content as rendered at open (or as the last write replied). */
struct sbfs_handle {
	const struct sbfs_node *node;
	struct sb_buf content;
	bool replied;                  /* content is a write's reply: never re-rendered */
	off_t reply_end;               /* where the write that made the reply ended */
	off_t reply_base;              /* the offset the reply is served from; -1 until read */
	bool read_once;                /* a read happened: the next one at offset 0 re-renders */
	struct fuse_pollhandle *ph;    /* sbfs.open_mu: armed poll, NULL if none */
	struct sbfs_handle *next_poll; /* sbfs.open_mu: list of handles with ph set */
	char *path;                    /* for re-rendering in poll */
};

struct sbfs {
	struct sb_config cfg;
	struct sb_queue *queue;
	struct sb_stack_states *states;
	uid_t uid;
	gid_t gid;
	struct timespec started;
	char *readme;              /* generated from the node table once */

	pthread_mutex_t sel_mu;    /* protects the fields below up to open_mu */
	struct sbfs_sel *sel;      /* the current selection, NULL before the first load */
	struct stat dirlist_st;    /* what the dirlist looked like when sel was loaded */
	struct stat stacks_st;     /* and DOCKER_STACKS_DIR */
	double sel_loaded_at;      /* monotonic */
	bool sel_stale;            /* the next get() must reload */
	char *sel_error;           /* the last load error, logged once */

	pthread_mutex_t open_mu;   /* protects the poll list, notify_ok and fuse */
	struct sbfs_handle *polled;
	bool notify_ok;            /* the session can take notifications */
	struct fuse *fuse;         /* for notifications, set with notify_ok */

	struct sbfs_snap *snap;    /* snapshot browsing (snapshots.c): set before the threads start */
};

/* Selection cache (main.c). get() never returns NULL; put() each get. */
struct sbfs_sel *sbfs_sel_get(struct sbfs *fs);
void sbfs_sel_put(struct sbfs *fs, struct sbfs_sel *s);
/* Our own dirlist write set key's stack to enabled: the cache follows without a reload. */
void sbfs_sel_applied(struct sbfs *fs, const char *key, bool enabled);

/*
 * Makes the kernel forget what it cached about these stacks' entries
 * (enabled/, disabled/, stacks/, snapshots/), so the next stat asks the
 * daemon (main.c). Takes open_mu: call it without sel_mu.
 */
void sbfs_forget_stacks(struct sbfs *fs, const struct sb_strv *names);

/* Wakes every armed poll (main.c). */
void sbfs_notify_polls(struct sbfs *fs);

/* ---- the node table (nodes.c) ---- */

enum sbfs_type {
	SBFS_DIR,
	SBFS_FILE,
	SBFS_LINK,
};

enum {
	SBFS_POLL = 1 << 0,     /* poll() wakes when the content changes */
	SBFS_STATIC = 1 << 1,   /* content never changes while mounted: page cache allowed */
	SBFS_TOGGLE = 1 << 2,   /* enabled/NAME, disabled/NAME: rename between them toggles */
	SBFS_APPEND = 1 << 3,   /* only grows: an open descriptor sees what was appended (tail -f) */
};

/* A resolved path. */
struct sbfs_ctx {
	struct sbfs *fs;
	const struct sbfs_node *node;
	char name[256];            /* the wildcard component ({NAME} or {ID}), "" if none */
	int job_id;                /* {ID} as a number */
	struct sbfs_sel *sel;      /* held while ctx lives, NULL if never needed */
	const struct sb_stack *stack; /* {NAME} resolved in sel */
	bool for_size;             /* rendering for getattr: never wait */
};

struct sbfs_node {
	/* Absolute; a component in braces ({NAME}, {ID}) matches any name lookup() accepts. */
	const char *path;
	enum sbfs_type type;
	mode_t mode;
	unsigned flags;
	const char *help;          /* the README line */
	int arg;                   /* for the handlers: a trigger's job kind, a job file */
	/* Wildcards (and dynamic literals like jobs/last): 0 if name exists, else -ENOENT. Fills ctx. */
	int (*lookup)(struct sbfs_ctx *c, const char *name);
	/* Directories with a wildcard child: the child names. */
	void (*list)(struct sbfs_ctx *c, struct sb_strv *names);
	/* Files: renders the content. Returns 0 or -errno. */
	int (*read)(struct sbfs_ctx *c, struct sb_buf *out);
	/* Files: acts on a write (len bytes, no NUL, at most SB_TRIGGER_MAX); reply is what a read on the same fd returns. */
	int (*write)(struct sbfs_ctx *c, const char *data, size_t len, struct sb_buf *reply);
	/* Links: the target. */
	int (*link)(struct sbfs_ctx *c, struct sb_buf *target);
	/* Wildcard directories: mkdir of name (the node is the wildcard child) and rmdir of ctx. */
	int (*mkdir)(struct sbfs_ctx *c, const char *name);
	int (*rmdir)(struct sbfs_ctx *c);
};

/* Builds the table's lookup structure and the README. Call once. */
void sbfs_nodes_init(struct sbfs *fs);
void sbfs_nodes_free(struct sbfs *fs);

/* Resolves path into c. Returns 0 or -ENOENT/-ENOTDIR. sbfs_ctx_done() after either. */
int sbfs_resolve(struct sbfs *fs, const char *path, struct sbfs_ctx *c);
void sbfs_ctx_done(struct sbfs_ctx *c);
/* The selection for c (got once, held until sbfs_ctx_done). */
const struct sb_selection *sbfs_ctx_sel(struct sbfs_ctx *c);

/* The children of directory c->node: calls fn for each name with its node. */
typedef void (*sbfs_child_fn)(void *userdata, const char *name, const struct sbfs_node *node);
void sbfs_children(struct sbfs_ctx *c, sbfs_child_fn fn, void *userdata);

/* The wildcard child of directory node dir, NULL if it has none. */
const struct sbfs_node *sbfs_wild_child(const struct sbfs_node *dir);

/* ---- snapshots/ and cloud/snapshots/ (snapshots.c) ---- */

/* Starts the snapshot views and content cache (threads: after daemonizing). Returns 0 or -1 with *err. */
int sbfs_snap_start(struct sbfs *fs, char **err);
/* A job ran: the snapshot lists are read again before the next answer. NULL-safe before start. */
void sbfs_snap_invalidate(struct sbfs *fs);
/* Stops and frees it, once no request and no queue thread can call in. */
void sbfs_snap_stop(struct sbfs *fs);
/* Adds "snapshots": {"local": BACKEND, "cloud": BACKEND} (who reads each repository) to status o. */
void sbfs_snap_status(struct sbfs *fs, struct json_object *o);
/* out = ops, with paths below snapshots/ and cloud/snapshots/ answered by snapshots.c. */
void sbfs_snap_wrap(const struct fuse_operations *ops, struct fuse_operations *out);

/* ---- cloud/ (cloud.c) ---- */

/* Which cloud/ file a node is (its arg). */
enum sbfs_cloud_file {
	SBFS_CLOUD_STATUS,
	SBFS_CLOUD_REMOTE,
	SBFS_CLOUD_LAST_SYNC,
	SBFS_CLOUD_IN_SYNC,
	SBFS_CLOUD_PROGRESS,
	SBFS_CLOUD_LAST_RESTORE,
};
/* Renders cloud/FILE (c->node->arg) from STATE_DIR/cloud.json. */
int sbfs_cloud_read(struct sbfs_ctx *c, struct sb_buf *out);

/* The fuse_operations (ops.c). */
extern const struct fuse_operations sbfs_ops;

#endif
