/* stackback-tui: the ncurses front end. */
#include <stdio.h>
#include <string.h>

#include "sb-build-config.h"

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--version") == 0) {
		printf("stackback-tui %s\n", SB_VERSION);
		return 0;
	}
	fprintf(stderr, "usage: stackback-tui [-c CONFIG]\n");
	return 2;
}
