/**
 * @file stacks.h
 * Stack discovery and the selection file `dirlist` (SPEC §4).
 *
 * The dirlist keeps the user's lines verbatim (comments, blank lines,
 * order); only the value of a changed entry is rewritten and new stacks
 * are appended. Every write happens under DIRLIST.lock (flock), after a
 * fresh re-read, atomically (temp + fsync + rename).
 */
#ifndef STACKBACK_STACKS_H
#define STACKBACK_STACKS_H

#include <stdbool.h>
#include <stddef.h>

#include "stackback/config.h"

#define SB_STACK_NAME_MAX 128

/** Where a stack stands with respect to the dirlist and the disk. */
enum sb_stack_origin {
	SB_STACK_LISTED,   /**< in the dirlist and on disk */
	SB_STACK_NEW,      /**< on disk, not yet in the dirlist (shown as new, disabled) */
	SB_STACK_MISSING,  /**< in the dirlist, directory or compose file gone */
};

struct sb_stack {
	char *name;          /**< the stack name (basename for external stacks) */
	char *path;          /**< absolute directory */
	char *compose_file;  /**< absolute compose file path, NULL when missing */
	char *dirlist_key;   /**< the dirlist key: name, or the absolute path for external stacks */
	bool enabled;
	bool external;
	enum sb_stack_origin origin;
	/**
	 * Non-NULL when the stack clashes with another (same name or same
	 * compose project name): it is then never touched. Owned.
	 */
	char *conflict;
};

/** A loaded selection: the stacks in dirlist order, then new ones. */
struct sb_selection {
	struct sb_stack *stacks;
	size_t n;
	/** Directories skipped (bad names, no compose file...), for reports. */
	struct sb_strv skipped;
};

/**
 * True if name matches [A-Za-z0-9._-]{1,128} and does not start with
 * '.' or '-', and is not the reserved tag "stackback".
 */
bool sb_stack_name_valid(const char *name);

/** Compose's project name for a directory name: lowercased, [a-z0-9_-] kept. */
char *sb_compose_project_name(const char *name);

/** Returns the compose file inside dir (caller frees), or NULL. */
char *sb_find_compose_file(const char *dir);

/**
 * Reads the dirlist and scans DOCKER_STACKS_DIR. Never writes. A
 * malformed dirlist line is an error in diags (FILE:LINE) and -1 is
 * returned; a missing dirlist is an empty one.
 */
int sb_selection_load(const struct sb_config *cfg, struct sb_selection *sel, struct sb_diags *diags);
void sb_selection_free(struct sb_selection *sel);

/** Finds a stack by name (or by absolute path for external ones); NULL if none. */
struct sb_stack *sb_selection_find(const struct sb_selection *sel, const char *name);

/** One requested change to the dirlist. */
struct sb_selection_change {
	const char *key;   /**< stack name, or absolute path of an external stack */
	bool enabled;
};

/**
 * Under the lock: re-reads, applies changes (unknown keys → -1 with
 * *err naming them, nothing written), appends new stacks when
 * add_new is set, drops missing ones when prune is set, and writes
 * atomically if anything changed. With dry_run nothing is written.
 * Returns 0, or -1 with *err (caller frees).
 */
int sb_selection_update(const struct sb_config *cfg, const struct sb_selection_change *changes,
			size_t n_changes, bool add_new, bool prune, bool dry_run, char **err);

/** The dirlist parser on its own (used by the loader and the fuzzer). */
struct sb_dirlist_entry {
	char *key;
	bool enabled;
	int line;
};
struct sb_dirlist {
	struct sb_strv lines;          /**< the raw lines, verbatim */
	struct sb_dirlist_entry *entries;
	size_t n;
};
/** Returns 0, or -1 with problems in diags (file names them). */
int sb_dirlist_parse(const char *text, size_t len, const char *file, struct sb_dirlist *dl,
		     struct sb_diags *diags);
/** Serializes back (caller frees). */
char *sb_dirlist_format(const struct sb_dirlist *dl);
void sb_dirlist_free(struct sb_dirlist *dl);

#endif
