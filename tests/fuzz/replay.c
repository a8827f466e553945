/*
 * Replays a fuzzing corpus through a harness without libFuzzer: every
 * regular file in the given directories (sorted, not recursive), or the
 * given files, goes to LLVMFuzzerTestOneInput once. Linked with each
 * harness in every build and run as a 'unit' test, so the corpus is a
 * regression test on every machine and compiler, sanitizers or not.
 *
 * Usage: replay_NAME DIR|FILE...   (a crash names the input just before it)
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"
#include "stackback/util.h"

/* libFuzzer inputs are capped at 1 MiB by default; seeds are far smaller. */
#define REPLAY_INPUT_MAX (16u << 20)

/* Optional in a harness: weak, so replay links without it. */
extern int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int replay_file(const char *path)
{
	char *data = NULL;
	size_t len = 0;
	int rc = sb_read_file(path, REPLAY_INPUT_MAX, &data, &len);
	if (rc < 0) {
		fprintf(stderr, "replay: cannot read %s: %s\n", path, strerror(-rc));
		return -1;
	}
	printf("replay: %s (%zu bytes)\n", path, len);
	fflush(stdout);
	/* An exact-size copy, so ASan sees a read past the input's end. */
	uint8_t *input = xmalloc(len);
	memcpy(input, data, len);
	free(data);
	LLVMFuzzerTestOneInput(input, len);
	free(input);
	return 0;
}

static int replay_dir(const char *dir, size_t *count)
{
	struct dirent **names;
	int n = scandir(dir, &names, NULL, alphasort);
	if (n < 0) {
		fprintf(stderr, "replay: cannot list %s: %s\n", dir, strerror(errno));
		return -1;
	}
	int rc = 0;
	for (int i = 0; i < n; i++) {
		cleanup_free char *path = xasprintf("%s/%s", dir, names[i]->d_name);
		struct stat st;
		if (names[i]->d_name[0] != '.' && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
			if (replay_file(path) < 0)
				rc = -1;
			else
				(*count)++;
		}
		free(names[i]);
	}
	free(names);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s DIR|FILE...\n", argv[0]);
		return 2;
	}
	if (LLVMFuzzerInitialize)
		LLVMFuzzerInitialize(&argc, &argv);
	size_t count = 0;
	int rc = 0;
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
			rc = -1;
		} else if (S_ISDIR(st.st_mode)) {
			if (replay_dir(argv[i], &count) < 0)
				rc = -1;
		} else if (replay_file(argv[i]) < 0) {
			rc = -1;
		} else {
			count++;
		}
	}
	/* An empty corpus would pass without testing anything. */
	if (count == 0) {
		fprintf(stderr, "replay: no inputs found\n");
		return 1;
	}
	printf("replay: %zu inputs, no crash\n", count);
	return rc < 0 ? 1 : 0;
}
