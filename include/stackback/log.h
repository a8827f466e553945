/**
 * @file log.h
 * Logging: one call site, several sinks (stderr, STATE_DIR/log with
 * rotation, syslog, an in-memory ring read by the control filesystem's
 * `log` file, and per-job observers).
 *
 * Secrets registered with sb_log_add_secret() are replaced by "***" in
 * every line before any sink sees it. Thread-safe.
 */
#ifndef STACKBACK_LOG_H
#define STACKBACK_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

enum sb_log_level {
	SB_LOG_ERROR,
	SB_LOG_WARNING,
	SB_LOG_INFO,
	SB_LOG_DEBUG,
};

/** Parses "error|warning|info|debug". Returns 0 or -1. */
int sb_log_level_parse(const char *s, enum sb_log_level *out);
const char *sb_log_level_name(enum sb_log_level level);

/** Lines below this level are dropped (default SB_LOG_INFO). */
void sb_log_set_level(enum sb_log_level level);
/** Whether lines go to stderr (default true). */
void sb_log_set_stderr(bool enabled);
/**
 * Appends every line to path (created 0600), rotated to path.1 when it
 * passes max_bytes. NULL closes the file. Returns 0 or -errno.
 */
int sb_log_open_file(const char *path, size_t max_bytes);
/**
 * Sends lines to a syslog datagram socket (normally /dev/log) with the
 * given ident. NULL closes. Returns 0 or -errno.
 */
int sb_log_open_syslog(const char *socket_path, const char *ident);
/** Keeps the last `lines` lines in memory for sb_log_ring_dump(). */
void sb_log_ring_enable(size_t lines);
/** Returns the ring's content (caller frees), oldest line first. */
char *sb_log_ring_dump(void);

/** Registers a secret to mask; copied. Empty strings are ignored. */
void sb_log_add_secret(const char *secret);
/** Returns a copy of line with every registered secret masked (caller frees). */
char *sb_log_mask(const char *line);

/**
 * A per-thread observer also receives each line (after masking), e.g.
 * to append it to the running job's log. NULL removes it.
 */
typedef void (*sb_log_observer_fn)(void *userdata, enum sb_log_level level, const char *line);
void sb_log_set_thread_observer(sb_log_observer_fn fn, void *userdata);

void sb_log(enum sb_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_logv(enum sb_log_level level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

#define sb_error(...) sb_log(SB_LOG_ERROR, __VA_ARGS__)
#define sb_warn(...) sb_log(SB_LOG_WARNING, __VA_ARGS__)
#define sb_info(...) sb_log(SB_LOG_INFO, __VA_ARGS__)
#define sb_debug(...) sb_log(SB_LOG_DEBUG, __VA_ARGS__)

#endif
