/**
 * @file util.h
 * Small helpers every module uses: aborting allocators, cleanup
 * attributes, string building, atomic file writes, time formatting.
 *
 * Allocation failures of small objects abort (tmux's xmalloc idea), so
 * callers never check for NULL from the x* functions.
 */
#ifndef STACKBACK_UTIL_H
#define STACKBACK_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define SB_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *ptr, size_t size);
/** Returns a copy the caller frees; NULL in, NULL out. */
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/** Returns a newly allocated formatted string the caller frees. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

void sb_freep(void *pp);
void sb_closep(int *fdp);
void sb_fclosep(void *fpp);
#define cleanup_free __attribute__((cleanup(sb_freep)))
#define cleanup_close __attribute__((cleanup(sb_closep)))
#define cleanup_fclose __attribute__((cleanup(sb_fclosep)))

/** A growable byte buffer, always NUL-terminated. */
struct sb_buf {
	char *data;
	size_t len;
	size_t cap;
};
void sb_buf_append(struct sb_buf *b, const void *data, size_t len);
void sb_buf_puts(struct sb_buf *b, const char *s);
void sb_buf_printf(struct sb_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** Hands the buffer's string to the caller (who frees it) and resets b. */
char *sb_buf_steal(struct sb_buf *b);
void sb_buf_free(struct sb_buf *b);

/** A NULL-terminated, growable array of owned strings. */
struct sb_strv {
	char **v;
	size_t n;
	size_t cap;
};
void sb_strv_push(struct sb_strv *sv, const char *s);
void sb_strv_push_owned(struct sb_strv *sv, char *s);
void sb_strv_free(struct sb_strv *sv);
bool sb_strv_contains(const struct sb_strv *sv, const char *s);

/** Strips leading and trailing ASCII whitespace in place; returns s. */
char *sb_strstrip(char *s);
bool sb_str_has_prefix(const char *s, const char *prefix);

/**
 * Parses a decimal integer in [min, max]; the whole string must be the
 * number. Returns 0 or -1 (errno EINVAL or ERANGE).
 */
int sb_parse_long(const char *s, long min, long max, long *out);
/** Accepts true/false, yes/no, 1/0, on/off (any case). Returns 0 or -1. */
int sb_parse_bool(const char *s, bool *out);

/**
 * Writes data to path atomically: temp file in the same directory with
 * the given mode, fsync, rename, fsync of the directory. Returns 0 or
 * -errno; on failure path is untouched.
 */
int sb_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);
/**
 * Reads a whole regular file up to max bytes. Returns 0 and a
 * NUL-terminated buffer the caller frees, or -errno (-EFBIG if larger).
 */
int sb_read_file(const char *path, size_t max, char **out, size_t *len);
/** mkdir -p with the given mode for created directories. Returns 0 or -errno. */
int sb_mkdir_p(const char *path, mode_t mode);
/** Removes a tree (no symlink following). Returns 0 or -errno. */
int sb_rm_rf(const char *path);

/** CLOCK_MONOTONIC in seconds. */
double sb_now_monotonic(void);
/** Wall-clock seconds since the epoch, as a double. */
double sb_now_wall(void);
/** Formats t as UTC "YYYY-MM-DDTHH:MM:SSZ" into buf (at least 21 bytes). */
void sb_format_time_utc(time_t t, char *buf, size_t size);
/** Formats a byte count as "1.5 MiB" into buf. */
void sb_format_bytes(uint64_t bytes, char *buf, size_t size);
/** Formats a duration as "1h02m", "3m04s" or "5.2s" into buf. */
void sb_format_duration(double seconds, char *buf, size_t size);

#endif
