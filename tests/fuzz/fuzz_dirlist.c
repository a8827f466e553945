/*
 * libFuzzer harness for the dirlist parser. Beyond not crashing, it
 * checks the promises the rest of stackback relies on: an accepted file
 * formats back to itself (the user's lines survive a rewrite), re-parses
 * to the same entries, and every accepted key is a valid name or a
 * canonical absolute path.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "stackback/stacks.h"

static void check_name_rule(const char *s)
{
	if (!sb_stack_name_valid(s))
		return;
	/* A valid name is one path component that compose can use. */
	char *project = sb_compose_project_name(s);
	if (strchr(s, '/') || strcmp(s, ".") == 0 || strcmp(s, "..") == 0 || !*project ||
	    strlen(s) > SB_STACK_NAME_MAX)
		abort();
	free(project);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct sb_dirlist dl;
	struct sb_diags diags = {0};
	int rc = sb_dirlist_parse(text, size, "fuzz", &dl, &diags);
	if ((rc == 0) != (sb_diags_count(&diags, SB_DIAG_ERROR) == 0))
		abort();
	if (rc == 0) {
		char *out = sb_dirlist_format(&dl);
		size_t out_len = strlen(out);
		bool ends_nl = size == 0 || text[size - 1] == '\n';
		if (out_len != size + (ends_nl ? 0 : 1) || memcmp(out, text, size) != 0)
			abort();

		struct sb_dirlist again;
		struct sb_diags diags2 = {0};
		if (sb_dirlist_parse(out, out_len, "fuzz", &again, &diags2) != 0 || again.n != dl.n ||
		    again.lines.n != dl.lines.n)
			abort();
		for (size_t i = 0; i < dl.n; i++) {
			const struct sb_dirlist_entry *a = &dl.entries[i], *b = &again.entries[i];
			if (strcmp(a->key, b->key) != 0 || a->enabled != b->enabled || a->line != b->line)
				abort();
			const char *base = strrchr(a->key, '/');
			if (a->key[0] == '/' ? !sb_stack_name_valid(base + 1) || strstr(a->key, "/../") ||
						       strstr(a->key, "//")
					     : !sb_stack_name_valid(a->key))
				abort();
		}
		sb_dirlist_free(&again);
		sb_diags_free(&diags2);
		free(out);
	}
	sb_dirlist_free(&dl);
	sb_diags_free(&diags);

	char *s = xstrndup(text, size);
	check_name_rule(s);
	free(s);
	return 0;
}
