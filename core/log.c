#include "stackback/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "stackback/util.h"

static const char *const level_names[] = {"error", "warning", "info", "debug"};

/* Lock order: log_mu is a leaf; no other lock is taken while holding it. */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static enum sb_log_level min_level = SB_LOG_INFO;  /* log_mu */
static bool to_stderr = true;                      /* log_mu */
static int file_fd = -1;                           /* log_mu */
static char *file_path;                            /* log_mu */
static size_t file_max;                            /* log_mu */
static int syslog_fd = -1;                         /* log_mu */
static char *syslog_ident;                         /* log_mu */
static char **ring;                                /* log_mu: circular, ring_cap slots */
static size_t ring_cap, ring_next, ring_count;     /* log_mu */
static struct sb_strv secrets;                     /* log_mu */

static __thread sb_log_observer_fn thread_observer;
static __thread void *thread_observer_data;

int sb_log_level_parse(const char *s, enum sb_log_level *out)
{
	for (size_t i = 0; i < SB_ARRAY_SIZE(level_names); i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*out = (enum sb_log_level)i;
			return 0;
		}
	}
	if (strcasecmp(s, "warn") == 0) {
		*out = SB_LOG_WARNING;
		return 0;
	}
	return -1;
}

const char *sb_log_level_name(enum sb_log_level level)
{
	return level_names[level];
}

void sb_log_set_level(enum sb_log_level level)
{
	pthread_mutex_lock(&log_mu);
	min_level = level;
	pthread_mutex_unlock(&log_mu);
}

void sb_log_set_stderr(bool enabled)
{
	pthread_mutex_lock(&log_mu);
	to_stderr = enabled;
	pthread_mutex_unlock(&log_mu);
}

int sb_log_open_file(const char *path, size_t max_bytes)
{
	int fd = -1;
	if (path) {
		fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (fd < 0)
			return -errno;
	}
	pthread_mutex_lock(&log_mu);
	if (file_fd >= 0)
		close(file_fd);
	free(file_path);
	file_fd = fd;
	file_path = xstrdup(path);
	file_max = max_bytes;
	pthread_mutex_unlock(&log_mu);
	return 0;
}

int sb_log_open_syslog(const char *socket_path, const char *ident)
{
	int fd = -1;
	if (socket_path) {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		if (strlen(socket_path) >= sizeof(sa.sun_path))
			return -ENAMETOOLONG;
		strcpy(sa.sun_path, socket_path);
		fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			int e = errno;
			close(fd);
			return -e;
		}
	}
	pthread_mutex_lock(&log_mu);
	if (syslog_fd >= 0)
		close(syslog_fd);
	free(syslog_ident);
	syslog_fd = fd;
	syslog_ident = xstrdup(ident ? ident : "stackback");
	pthread_mutex_unlock(&log_mu);
	return 0;
}

void sb_log_ring_enable(size_t lines)
{
	pthread_mutex_lock(&log_mu);
	if (!ring && lines > 0) {
		ring = xcalloc(lines, sizeof(*ring));
		ring_cap = lines;
	}
	pthread_mutex_unlock(&log_mu);
}

char *sb_log_ring_dump(void)
{
	struct sb_buf b = {0};
	pthread_mutex_lock(&log_mu);
	size_t first = (ring_next + ring_cap - ring_count) % (ring_cap ? ring_cap : 1);
	for (size_t i = 0; i < ring_count; i++) {
		sb_buf_puts(&b, ring[(first + i) % ring_cap]);
		sb_buf_puts(&b, "\n");
	}
	pthread_mutex_unlock(&log_mu);
	return sb_buf_steal(&b);
}

void sb_log_add_secret(const char *secret)
{
	if (!secret || !*secret)
		return;
	pthread_mutex_lock(&log_mu);
	if (!sb_strv_contains(&secrets, secret))
		sb_strv_push(&secrets, secret);
	pthread_mutex_unlock(&log_mu);
}

/* Caller holds log_mu. */
static char *mask_locked(const char *line)
{
	char *out = xstrdup(line);
	for (size_t i = 0; i < secrets.n; i++) {
		const char *secret = secrets.v[i];
		size_t slen = strlen(secret);
		char *hit;
		while ((hit = strstr(out, secret))) {
			char *next = xasprintf("%.*s***%s", (int)(hit - out), out, hit + slen);
			free(out);
			out = next;
		}
	}
	return out;
}

char *sb_log_mask(const char *line)
{
	pthread_mutex_lock(&log_mu);
	char *out = mask_locked(line);
	pthread_mutex_unlock(&log_mu);
	return out;
}

void sb_log_set_thread_observer(sb_log_observer_fn fn, void *userdata)
{
	thread_observer = fn;
	thread_observer_data = userdata;
}

/* Caller holds log_mu. */
static void rotate_locked(void)
{
	struct stat st;
	if (file_fd < 0 || !file_max || fstat(file_fd, &st) < 0 || (size_t)st.st_size < file_max)
		return;
	cleanup_free char *old = xasprintf("%s.1", file_path);
	rename(file_path, old);
	int fd = open(file_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd >= 0) {
		close(file_fd);
		file_fd = fd;
	}
}

static void write_all(int fd, const char *s, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, s, len);
		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			return;
		}
		s += n;
		len -= (size_t)n;
	}
}

void sb_logv(enum sb_log_level level, const char *fmt, va_list ap)
{
	cleanup_free char *raw = xvasprintf(fmt, ap);
	char stamp[32];
	sb_format_time_utc(time(NULL), stamp, sizeof(stamp));

	pthread_mutex_lock(&log_mu);
	if (level > min_level) {
		pthread_mutex_unlock(&log_mu);
		return;
	}
	cleanup_free char *line = mask_locked(raw);
	cleanup_free char *stamped = xasprintf("%s %s: %s\n", stamp, level_names[level], line);
	if (to_stderr) {
		cleanup_free char *plain = level <= SB_LOG_WARNING
			? xasprintf("stackback: %s: %s\n", level_names[level], line)
			: xasprintf("stackback: %s\n", line);
		write_all(STDERR_FILENO, plain, strlen(plain));
	}
	if (file_fd >= 0) {
		rotate_locked();
		write_all(file_fd, stamped, strlen(stamped));
	}
	if (syslog_fd >= 0) {
		/* RFC 3164 priority: facility daemon (3) * 8 + severity. */
		static const int severity[] = {3, 4, 6, 7};
		cleanup_free char *msg = xasprintf("<%d>%s[%ld]: %s", 3 * 8 + severity[level],
						   syslog_ident, (long)getpid(), line);
		send(syslog_fd, msg, strlen(msg), MSG_DONTWAIT | MSG_NOSIGNAL);
	}
	if (ring_cap) {
		free(ring[ring_next]);
		stamped[strlen(stamped) - 1] = '\0';
		ring[ring_next] = xstrdup(stamped);
		ring_next = (ring_next + 1) % ring_cap;
		if (ring_count < ring_cap)
			ring_count++;
	}
	pthread_mutex_unlock(&log_mu);

	if (thread_observer)
		thread_observer(thread_observer_data, level, line);
}

void sb_log(enum sb_log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	sb_logv(level, fmt, ap);
	va_end(ap);
}
