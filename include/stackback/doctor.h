/**
 * @file doctor.h
 * Health checks behind `stackback doctor` and the TUI's Health screen:
 * the configuration and the permissions of the files holding secrets,
 * STATE_DIR and its crash journal, the Docker engine and the compose
 * command, restic and rclone, the repository (opened with the
 * password), free disk space where it lives, the cloud remote, the
 * control filesystem's mount, and the notification settings.
 *
 * Every check runs its tools through the runner with a timeout, so a
 * dead engine or remote costs seconds, never a hang. A failed check
 * comes with the command that fixes it. Checks never change anything.
 */
#ifndef STACKBACK_DOCTOR_H
#define STACKBACK_DOCTOR_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "stackback/config.h"

struct json_object;

enum sb_doctor_result {
	SB_DOCTOR_OK,
	SB_DOCTOR_WARNING,  /**< works, but worth a look (e.g. no STATE_DIR yet) */
	SB_DOCTOR_FAILED,   /**< broken: `fix` says what to run */
	SB_DOCTOR_SKIPPED,  /**< not applicable (no remote configured, restic missing...) */
};
/** "ok", "warning", "failed", "skipped". */
const char *sb_doctor_result_name(enum sb_doctor_result r);

/** One check's outcome. */
struct sb_doctor_check {
	const char *name;    /**< static: "config", "docker", "repository", ... */
	const char *title;   /**< static: "Docker engine", ... */
	enum sb_doctor_result result;
	char *detail;        /**< owned: one line, what was found or what is wrong */
	char *fix;           /**< owned: the command (or step) that fixes it; NULL unless failed or warning */
	double duration_s;
};

struct sb_doctor_report {
	struct sb_doctor_check *v;  /**< owned, in the order of sb_doctor_check_name() */
	size_t n;
	size_t failed;              /**< how many checks failed */
};

/** The number of checks, and each one's static name and title, e.g. to lay out a screen first. */
size_t sb_doctor_check_count(void);
const char *sb_doctor_check_name(size_t i);
const char *sb_doctor_check_title(size_t i);

/** Called after each check, on the thread running sb_doctor_run(); c is borrowed. */
typedef void (*sb_doctor_fn)(void *userdata, size_t index, const struct sb_doctor_check *c);

struct sb_doctor_opts {
	/**
	 * The diagnostics of loading cfg (sb_config_load()), shown by the
	 * "config" check; NULL when the caller loaded it cleanly already.
	 */
	const struct sb_diags *diags;
	/** Checks not yet started are skipped once it becomes true; may be NULL. */
	const atomic_bool *cancel;
	sb_doctor_fn on_check;  /**< may be NULL */
	void *userdata;
};

/**
 * Runs every check in order (seconds; up to REMOTE_TIMEOUT when a remote
 * does not answer). Fills *rep (free with sb_doctor_report_free()).
 * Returns rep->failed.
 */
size_t sb_doctor_run(const struct sb_config *cfg, const struct sb_doctor_opts *o,
		     struct sb_doctor_report *rep);
void sb_doctor_report_free(struct sb_doctor_report *rep);

/**
 * {"ok":bool,"failed":N,"checks":[{"name","title","result","detail",
 * "fix"|null,"duration_s"}...]}. The caller owns the reference.
 */
struct json_object *sb_doctor_json(const struct sb_doctor_report *rep);
/** One line per check ("ok       docker     Docker 20.10.24 answers"), then "  fix: ..." lines (caller frees). */
char *sb_doctor_text(const struct sb_doctor_report *rep);

#endif
