/*
 * fs-latency: times control filesystem syscalls from one process and
 * prints medians against the targets of the control filesystem:
 *
 *   control read  open+read+close of status and stacks/NAME/enabled  < 1 ms
 *   toggle        mkdir enabled/NAME, rmdir enabled/NAME               < 5 ms
 *   listing       opendir+readdir+closedir of stacks/ (1,000 stacks)   < 50 ms
 *
 *   fs-latency MOUNTPOINT STACK [ROUNDS [STATE_DIR]]
 *
 * Exits 1 if a median misses its target. With STATE_DIR it also times
 * the floor under every toggle: writing a small file there the way the
 * dirlist is written (temp file, fsync, rename, fsync of the directory).
 * bench/fs-latency.sh sets up a mount with 1,000 stacks and runs it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void die(const char *what, const char *path)
{
	fprintf(stderr, "fs-latency: %s %s: %s\n", what, path, strerror(errno));
	exit(2);
}

static void read_file(const char *path)
{
	char buf[65536];
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		die("open", path);
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
}

static size_t list_dir(const char *path)
{
	DIR *d = opendir(path);
	if (!d)
		die("opendir", path);
	size_t n = 0;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* One write of the dirlist's kind, for the floor of a toggle. */
static void atomic_write(const char *dir)
{
	char tmp[4096], dst[4096];
	snprintf(tmp, sizeof(tmp), "%s/fs-latency.tmp", dir);
	snprintf(dst, sizeof(dst), "%s/fs-latency", dir);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, "web=true\n", 9) != 9 || fsync(fd) < 0 || close(fd) < 0)
		die("write", tmp);
	if (rename(tmp, dst) < 0)
		die("rename", tmp);
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);
	if (dfd < 0 || fsync(dfd) < 0)
		die("fsync", dir);
	close(dfd);
}

/* Prints the median (and 95th percentile) of samples; returns whether it meets target_ms. */
static int report(const char *what, double *samples, int n, double target_ms)
{
	qsort(samples, (size_t)n, sizeof(*samples), cmp_double);
	double median = samples[n / 2], p95 = samples[(n * 95) / 100];
	int ok = median < target_ms;
	printf("%-34s median %8.3f ms  p95 %8.3f ms  (n=%d)  target < %g ms: %s\n", what, median, p95, n,
	       target_ms, ok ? "ok" : "MISSED");
	return ok;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: fs-latency MOUNTPOINT STACK [ROUNDS [STATE_DIR]]\n");
		return 2;
	}
	const char *mnt = argv[1], *stack = argv[2];
	int rounds = argc > 3 ? atoi(argv[3]) : 1000;
	if (rounds < 20)
		rounds = 20;
	char status[4096], enabled[4096], on[4096], stacks[4096];
	snprintf(status, sizeof(status), "%s/status", mnt);
	snprintf(enabled, sizeof(enabled), "%s/stacks/%s/enabled", mnt, stack);
	snprintf(on, sizeof(on), "%s/enabled/%s", mnt, stack);
	snprintf(stacks, sizeof(stacks), "%s/stacks", mnt);
	double *t = calloc((size_t)rounds, sizeof(*t));
	int all_ok = 1;

	for (int i = 0; i < rounds; i++) {
		double s = now_ms();
		read_file(status);
		t[i] = now_ms() - s;
	}
	all_ok &= report("open+read+close status", t, rounds, 1.0);

	for (int i = 0; i < rounds; i++) {
		double s = now_ms();
		read_file(enabled);
		t[i] = now_ms() - s;
	}
	all_ok &= report("open+read+close stacks/NAME/enabled", t, rounds, 1.0);

	/* Each toggle rewrites the dirlist (fsync): fewer rounds. */
	int toggles = rounds / 10 < 20 ? 20 : rounds / 10;
	struct stat st;
	if (stat(on, &st) == 0 && rmdir(on) < 0)
		die("rmdir", on);
	for (int i = 0; i < toggles; i++) {
		double s = now_ms();
		if (i % 2 == 0 ? mkdir(on, 0755) < 0 : rmdir(on) < 0)
			die(i % 2 == 0 ? "mkdir" : "rmdir", on);
		t[i] = now_ms() - s;
	}
	if (toggles % 2 == 1 && rmdir(on) < 0)
		die("rmdir", on);
	all_ok &= report("mkdir/rmdir enabled/NAME", t, toggles, 5.0);
	if (argc > 4) {
		for (int i = 0; i < toggles; i++) {
			double s = now_ms();
			atomic_write(argv[4]);
			t[i] = now_ms() - s;
		}
		qsort(t, (size_t)toggles, sizeof(*t), cmp_double);
		printf("%-34s median %8.3f ms  (the disk's part of each toggle)\n", "  floor: atomic write + 2 fsyncs",
		       t[toggles / 2]);
	}

	int listings = rounds / 20 < 20 ? 20 : rounds / 20;
	size_t entries = 0;
	for (int i = 0; i < listings; i++) {
		double s = now_ms();
		entries = list_dir(stacks);
		t[i] = now_ms() - s;
	}
	char what[64];
	snprintf(what, sizeof(what), "readdir stacks/ (%zu entries)", entries - 2);
	all_ok &= report(what, t, listings, 50.0);

	free(t);
	return all_ok ? 0 : 1;
}
