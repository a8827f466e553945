/**
 * @file state.h
 * What stackback keeps in STATE_DIR:
 *
 *   lock               the job lock (flock; holder's PID inside)
 *   journal            stacks stopped by us and not yet started again
 *   staging            snapshot-mode copies not yet removed
 *   next-job-id        the job id counter (ids never reused)
 *   jobs/ID/           report.json, log, state of each finished job
 *   stacks/NAME.json   last backup of each stack
 *   cloud.json         last sync / restore and the cloud's state
 *   log                the daemon/CLI log file
 */
#ifndef STACKBACK_STATE_H
#define STACKBACK_STATE_H

#include <stdbool.h>
#include <sys/types.h>

#include "stackback/config.h"

/** Creates STATE_DIR (0700) and its subdirectories. Returns 0 or -1 with *err. */
int sb_state_prepare(const struct sb_config *cfg, char **err);

/** The job lock. fd < 0 when not held. */
struct sb_lock {
	int fd;
};
/**
 * Takes STATE_DIR/lock. A dead holder never blocks (flock dies with it).
 * With wait false and a live holder: -1 and *err names its PID.
 */
int sb_lock_acquire(const struct sb_config *cfg, bool wait, struct sb_lock *lock, char **err);
void sb_lock_release(struct sb_lock *lock);
/** PID of the live holder, 0 if free. */
pid_t sb_lock_holder(const struct sb_config *cfg);

/** Allocates the next job id (under its own flock). Returns > 0 or -1 with *err. */
int sb_state_next_job_id(const struct sb_config *cfg, char **err);
/** The newest job id ever allocated, 0 if none. */
int sb_state_last_job_id(const struct sb_config *cfg);

/**
 * The journal of stacks stopped by us. journal_add is called (and
 * fsynced) before a stop, journal_remove after the start succeeded.
 */
int sb_journal_add(const struct sb_config *cfg, const char *name, const char *path, bool was_down);
int sb_journal_remove(const struct sb_config *cfg, const char *name);
struct sb_journal_entry {
	char *name;
	char *path;
	bool was_down;  /**< stopped with `down`: bring back with `up -d` */
};
int sb_journal_read(const struct sb_config *cfg, struct sb_journal_entry **entries, size_t *n);
void sb_journal_entries_free(struct sb_journal_entry *entries, size_t n);

/**
 * The staging journal: copies of stack directories made by snapshot
 * mode (cowsnap.h) and not yet removed. staging_add is called (and
 * fsynced) before a copy is made, staging_remove once it is gone.
 */
int sb_staging_add(const struct sb_config *cfg, const char *name, const char *path);
int sb_staging_remove(const struct sb_config *cfg, const char *path);
struct sb_staging_entry {
	char *name;  /**< the stack */
	char *path;  /**< the copy */
};
int sb_staging_read(const struct sb_config *cfg, struct sb_staging_entry **entries, size_t *n);
void sb_staging_entries_free(struct sb_staging_entry *entries, size_t n);

/**
 * Restarts every stack the journal lists (a previous run died), then
 * clears them from it. *restarted / *failed count them. Then removes
 * the copies the staging journal lists; one that cannot be removed is
 * logged and stays listed (retried next time) without counting here.
 * Caller holds the job lock. Returns 0 if all stacks were started, -1
 * otherwise.
 */
int sb_recover(const struct sb_config *cfg, int *restarted, int *failed);

/** Reads a JSON state file under STATE_DIR (e.g. "stacks/web.json"); NULL if absent. Caller puts. */
struct json_object *sb_state_read_json(const struct sb_config *cfg, const char *relpath);
/** Writes it atomically (0600). Returns 0 or -errno. */
int sb_state_write_json(const struct sb_config *cfg, const char *relpath, struct json_object *obj);

#endif
