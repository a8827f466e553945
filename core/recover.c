/*
 * Undoing a crash: the journal lists stacks a previous run stopped and
 * never started again (it died: SIGKILL, power loss, OOM). Each is
 * started with the verb matching how it was stopped. Then the staging
 * journal's copies (snapshot mode) are removed: the backups they were
 * made for died with that run.
 */
#include <stdlib.h>
#include <string.h>

#include "stackback/cowsnap.h"
#include "stackback/docker.h"
#include "stackback/log.h"
#include "stackback/state.h"
#include "stackback/util.h"

static int restart_stopped(const struct sb_config *cfg, int *restarted, int *failed)
{
	struct sb_journal_entry *e;
	size_t n;
	if (sb_journal_read(cfg, &e, &n) < 0) {
		sb_error("recover: cannot read the journal in '%s'", cfg->state_dir);
		return -1;
	}
	if (n == 0) {
		free(e);
		return 0;
	}
	struct sb_compose compose = {0};
	cleanup_free char *err = NULL;
	if (sb_compose_detect(cfg, &compose, &err) < 0) {
		sb_error("recover: %s", err);
		*failed = (int)n;
		sb_journal_entries_free(e, n);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		cleanup_free char *compose_file = sb_find_compose_file(e[i].path);
		struct sb_stack stack = {
			.name = e[i].name,
			.path = e[i].path,
			.compose_file = compose_file,
		};
		if (!compose_file) {
			sb_error("recover: stack '%s' cannot be started: no compose file in '%s'", e[i].name, e[i].path);
			(*failed)++;
			continue;
		}
		/* A stack stopped with `down` comes back with `up -d`, whatever the config says now. */
		struct sb_config mode_cfg = *cfg;
		mode_cfg.stop_mode = e[i].was_down ? SB_STOP_MODE_DOWN : SB_STOP_MODE_STOP;
		cleanup_free char *serr = NULL;
		if (sb_docker_start(&mode_cfg, &compose, &stack, &serr) < 0) {
			sb_error("recover: start of stack '%s' failed: %s", e[i].name, serr);
			(*failed)++;
			continue;
		}
		sb_info("recover: started stack '%s' that an interrupted run had stopped", e[i].name);
		sb_journal_remove(cfg, e[i].name);
		(*restarted)++;
	}
	sb_compose_free(&compose);
	sb_journal_entries_free(e, n);
	return *failed ? -1 : 0;
}

/* Stacks come first: a leftover copy only costs disk space. */
static void remove_staging_copies(const struct sb_config *cfg)
{
	struct sb_staging_entry *e;
	size_t n;
	int rc = sb_staging_read(cfg, &e, &n);
	if (rc < 0) {
		sb_error("recover: cannot read the staging journal in '%s': %s", cfg->state_dir, strerror(-rc));
		return;
	}
	for (size_t i = 0; i < n; i++) {
		cleanup_free char *err = NULL;
		if (sb_cow_remove(e[i].path, &err) < 0) {
			sb_error("recover: snapshot copy of stack '%s' left behind: %s", e[i].name, err);
			continue;
		}
		sb_info("recover: removed the snapshot copy '%s' of stack '%s' that an interrupted run left",
			e[i].path, e[i].name);
		sb_staging_remove(cfg, e[i].path);
	}
	sb_staging_entries_free(e, n);
}

int sb_recover(const struct sb_config *cfg, int *restarted, int *failed)
{
	*restarted = *failed = 0;
	int rc = restart_stopped(cfg, restarted, failed);
	remove_staging_copies(cfg);
	return rc;
}
