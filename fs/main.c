/* stackbackfs: the FUSE control filesystem (see docs/control-filesystem.md). */
#include <stdio.h>
#include <string.h>

#include "sb-build-config.h"

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--version") == 0) {
		printf("stackbackfs %s\n", SB_VERSION);
		return 0;
	}
	fprintf(stderr, "usage: stackbackfs [-c CONFIG] MOUNTPOINT [-f] [-o OPTIONS]\n");
	return 2;
}
