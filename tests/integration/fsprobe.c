/*
 * fsprobe: one syscall (or a short sequence) against a path, reported
 * exactly, for the control filesystem's tests. Each command prints one
 * line per syscall: "ok [RESULT]" or "err ERRNO-NAME". The exit status is
 * 0 unless the command line itself is wrong (2) or a setup call fails (1).
 *
 *   fsprobe write PATH DATA          one write(2) of DATA (no newline added)
 *   fsprobe fill PATH SIZE           one write(2) of SIZE bytes of '1'
 *   fsprobe nul PATH                 one write(2) of "1\0all\n"
 *   fsprobe partial PATH A B         two write(2)s on one descriptor
 *   fsprobe handshake PATH DATA      O_RDWR, write, pread from 0: prints the reply
 *   fsprobe open PATH r|w|rw|wt      open(2) with that access (wt: O_WRONLY|O_TRUNC)
 *   fsprobe mkdir|rmdir|unlink|creat|truncate PATH
 *   fsprobe rename FROM TO
 *   fsprobe symlink TARGET PATH
 *   fsprobe size PATH                st_size and the bytes a read to EOF returns
 *   fsprobe poll PATH TIMEOUT_MS [READY]
 *                                    read, poll for POLLIN|POLLPRI, lseek 0, read;
 *                                    creates READY once the first read is done
 *   fsprobe triggers PATH N DATA     N threads write DATA at once (handshake each)
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void report(long rc, int err)
{
	if (rc < 0)
		printf("err %s\n", strerrorname_np(err));
	else
		printf("ok %ld\n", rc);
}

/* Evaluates the call before errno (argument order is unspecified in C). */
#define REPORT(call)                      \
	do {                              \
		long rc_ = (long)(call);  \
		report(rc_, errno);       \
	} while (0)

static int open_or_die(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC);
	if (fd < 0) {
		printf("err %s\n", strerrorname_np(errno));
		exit(1);
	}
	return fd;
}

static void write_once(const char *path, const char *data, size_t len)
{
	int fd = open_or_die(path, O_WRONLY);
	ssize_t n = write(fd, data, len);
	report(n, errno);
	close(fd);
}

/* Reads fd from offset 0 to EOF; returns a malloc'd NUL-terminated buffer. */
static char *read_all(int fd, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap + 1);
	for (;;) {
		if (n == cap) {
			cap *= 2;
			buf = realloc(buf, cap + 1);
		}
		ssize_t r = pread(fd, buf + n, cap - n, (off_t)n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}

static int cmd_handshake(const char *path, const char *data)
{
	int fd = open_or_die(path, O_RDWR);
	ssize_t n = write(fd, data, strlen(data));
	report(n, errno);
	char *reply = read_all(fd, NULL);
	fputs(reply, stdout);
	free(reply);
	close(fd);
	return 0;
}

static int cmd_open(const char *path, const char *mode)
{
	int flags = strcmp(mode, "r") == 0 ? O_RDONLY
		  : strcmp(mode, "w") == 0 ? O_WRONLY
		  : strcmp(mode, "rw") == 0 ? O_RDWR
		  : strcmp(mode, "wt") == 0 ? O_WRONLY | O_TRUNC
		  : -1;
	if (flags < 0)
		return 2;
	int fd = open(path, flags | O_CLOEXEC);
	report(fd < 0 ? -1 : 0, errno);
	if (fd >= 0)
		close(fd);
	return 0;
}

static int cmd_size(const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		report(-1, errno);
		return 0;
	}
	int fd = open_or_die(path, O_RDONLY);
	size_t len;
	free(read_all(fd, &len));
	close(fd);
	printf("size %lld read %zu\n", (long long)st.st_size, len);
	return 0;
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmd_poll(const char *path, int timeout_ms, const char *ready)
{
	int fd = open_or_die(path, O_RDONLY);
	char buf[65536];
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	/* From here on a change wakes the poll: a test may now make one. */
	if (ready) {
		int r = open(ready, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (r < 0) {
			printf("err %s\n", strerrorname_np(errno));
			return 1;
		}
		close(r);
	}
	double start = now_ms();
	struct pollfd p = {.fd = fd, .events = POLLIN | POLLPRI};
	int rc = poll(&p, 1, timeout_ms);
	if (rc < 0) {
		report(-1, errno);
	} else if (rc == 0) {
		printf("timeout\n");
	} else {
		printf("changed %.0f revents %#x\n", now_ms() - start, (unsigned)p.revents);
		char buf2[65536];
		ssize_t n = pread(fd, buf2, sizeof(buf2) - 1, 0);
		if (n < 0) {
			report(-1, errno);
		} else {
			buf2[n] = '\0';
			fputs(buf2, stdout);
		}
	}
	close(fd);
	return 0;
}

struct trigger_thread {
	pthread_t thread;
	const char *path;
	const char *data;
	pthread_barrier_t *start;
	int err;          /* errno of the write, 0 if it succeeded */
	char reply[256];  /* the read-back on the same descriptor */
};

static void *trigger_main(void *arg)
{
	struct trigger_thread *t = arg;
	int fd = open(t->path, O_RDWR | O_CLOEXEC);
	pthread_barrier_wait(t->start);
	if (fd < 0) {
		t->err = errno;
		return NULL;
	}
	if (write(fd, t->data, strlen(t->data)) < 0)
		t->err = errno;
	ssize_t n = pread(fd, t->reply, sizeof(t->reply) - 1, 0);
	t->reply[n > 0 ? n : 0] = '\0';
	char *nl = strchr(t->reply, '\n');
	if (nl)
		*nl = '\0';
	close(fd);
	return NULL;
}

static int cmd_triggers(const char *path, int n, const char *data)
{
	struct trigger_thread *t = calloc((size_t)n, sizeof(*t));
	pthread_barrier_t start;
	pthread_barrier_init(&start, NULL, (unsigned)n);
	for (int i = 0; i < n; i++) {
		t[i] = (struct trigger_thread){.path = path, .data = data, .start = &start};
		if (pthread_create(&t[i].thread, NULL, trigger_main, &t[i]) != 0) {
			fprintf(stderr, "fsprobe: cannot start thread %d\n", i);
			return 1;
		}
	}
	for (int i = 0; i < n; i++) {
		pthread_join(t[i].thread, NULL);
		if (t[i].err)
			printf("err %s %s\n", strerrorname_np(t[i].err), t[i].reply);
		else
			printf("ok %s\n", t[i].reply);
	}
	pthread_barrier_destroy(&start);
	free(t);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: fsprobe COMMAND ARGS (see the source)\n");
		return 2;
	}
	const char *cmd = argv[1], *path = argv[2];
	if (strcmp(cmd, "write") == 0 && argc == 4) {
		write_once(path, argv[3], strlen(argv[3]));
	} else if (strcmp(cmd, "fill") == 0 && argc == 4) {
		size_t size = strtoul(argv[3], NULL, 10);
		char *data = malloc(size);
		memset(data, '1', size);
		write_once(path, data, size);
		free(data);
	} else if (strcmp(cmd, "nul") == 0) {
		static const char data[] = "1\0all\n";
		write_once(path, data, sizeof(data) - 1);
	} else if (strcmp(cmd, "partial") == 0 && argc == 5) {
		int fd = open_or_die(path, O_WRONLY);
		for (int i = 3; i < 5; i++) {
			ssize_t n = write(fd, argv[i], strlen(argv[i]));
			report(n, errno);
		}
		close(fd);
	} else if (strcmp(cmd, "handshake") == 0 && argc == 4) {
		return cmd_handshake(path, argv[3]);
	} else if (strcmp(cmd, "open") == 0 && argc == 4) {
		return cmd_open(path, argv[3]);
	} else if (strcmp(cmd, "mkdir") == 0) {
		REPORT(mkdir(path, 0755));
	} else if (strcmp(cmd, "rmdir") == 0) {
		REPORT(rmdir(path));
	} else if (strcmp(cmd, "unlink") == 0) {
		REPORT(unlink(path));
	} else if (strcmp(cmd, "creat") == 0) {
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		report(fd < 0 ? -1 : 0, errno);
		if (fd >= 0)
			close(fd);
	} else if (strcmp(cmd, "truncate") == 0) {
		REPORT(truncate(path, 0));
	} else if (strcmp(cmd, "rename") == 0 && argc == 4) {
		REPORT(rename(path, argv[3]));
	} else if (strcmp(cmd, "symlink") == 0 && argc == 4) {
		REPORT(symlink(path, argv[3]));
	} else if (strcmp(cmd, "size") == 0) {
		return cmd_size(path);
	} else if (strcmp(cmd, "poll") == 0 && (argc == 4 || argc == 5)) {
		return cmd_poll(path, atoi(argv[3]), argc == 5 ? argv[4] : NULL);
	} else if (strcmp(cmd, "triggers") == 0 && argc == 5) {
		return cmd_triggers(path, atoi(argv[3]), argv[4]);
	} else {
		fprintf(stderr, "fsprobe: unknown command or wrong arguments: %s\n", cmd);
		return 2;
	}
	return 0;
}
