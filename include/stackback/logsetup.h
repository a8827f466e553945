/**
 * @file logsetup.h
 * Where a program's log lines go (SPEC §6 "Logs"), decided once for the
 * CLI, the daemon and the TUI from the configuration and from how the
 * program was started:
 *
 * - STATE_DIR/log, rotated to log.1 at SB_LOG_FILE_MAX, by a process
 *   that acts on STATE_DIR: the daemon, an in-process job, a recovery
 *   (never a dry run or a command that only reads, which leave STATE_DIR
 *   as it was);
 * - syslog: SYSLOG_SOCKET when configured; otherwise /dev/log, if it
 *   exists, when asked for (--syslog) or when running as a systemd
 *   service. A service's stderr already reaches the journal, so once
 *   syslog is on there, lines no longer go to stderr as well (they would
 *   be stored twice).
 * - LOG_LEVEL drops the lines below it, in every sink.
 */
#ifndef STACKBACK_LOGSETUP_H
#define STACKBACK_LOGSETUP_H

#include <stdbool.h>

#include "stackback/config.h"

/** STATE_DIR/log is rotated when it passes this size. */
#define SB_LOG_FILE_MAX (8u << 20)
/** The syslog socket of a systemd (or any syslog) machine. */
#define SB_LOG_DEFAULT_SYSLOG "/dev/log"

/** True when systemd started us as a service: INVOCATION_ID is set and stdin is not a terminal. */
bool sb_log_running_as_service(void);

/** Applies LOG_LEVEL (a bad value was refused by the config already). */
void sb_log_setup_level(const struct sb_config *cfg);

/**
 * Appends log lines to STATE_DIR/log if STATE_DIR exists and is
 * writable; never creates it. Returns 0, or -errno when the file is not
 * used (nothing is logged about it: most commands only read).
 */
int sb_log_setup_file(const struct sb_config *cfg);

/**
 * Connects syslog as described above, lines tagged ident. requested:
 * the user asked for it (--syslog), so a missing /dev/log is a warning.
 * Returns true if lines now go to syslog.
 */
bool sb_log_setup_syslog(const struct sb_config *cfg, const char *ident, bool requested);

#endif
