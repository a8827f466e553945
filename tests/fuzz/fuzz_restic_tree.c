/*
 * libFuzzer harness for the native reader's tree parser (a decrypted tree
 * blob). An accepted tree must hold valid, distinct, sorted names that
 * sb_restictree_find() finds, file content only on files, a subtree on
 * every directory and a target on every symlink.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"
#include "stackback/resticrepo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sb_restictree *t = NULL;
	char *err = NULL;
	int rc = sb_restictree_parse(data, size, &t, &err);
	if (rc < 0) {
		if (!err || t)
			abort();
		free(err);
		return 0;
	}
	for (size_t i = 0; i < sb_restictree_count(t); i++) {
		const struct sb_restic_node *n = sb_restictree_node(t, i);
		if (n->name_len == 0 || memchr(n->name, '/', n->name_len) || memchr(n->name, '\0', n->name_len) ||
		    n->name[n->name_len] != '\0')
			abort();
		if (sb_restictree_find(t, n->name, n->name_len) != n)
			abort();
		if (i > 0) {
			const struct sb_restic_node *p = sb_restictree_node(t, i - 1);
			size_t m = p->name_len < n->name_len ? p->name_len : n->name_len;
			int c = memcmp(p->name, n->name, m);
			if (c > 0 || (c == 0 && p->name_len >= n->name_len))
				abort();
		}
		if (n->type != SB_RESTIC_NODE_FILE && (n->n_content || n->size))
			abort();
		/* Every content id must be readable memory (ASan checks the reads). */
		uint8_t sum = 0;
		for (uint32_t k = 0; k < n->n_content; k++)
			for (size_t b = 0; b < SB_RESTIC_ID_LEN; b++)
				sum ^= n->content[k][b];
		volatile uint8_t sink = sum;
		(void)sink;
		if (n->type == SB_RESTIC_NODE_DIR && (!n->has_subtree || !S_ISDIR(n->mode)))
			abort();
		if (n->type == SB_RESTIC_NODE_SYMLINK &&
		    (!n->linktarget || strlen(n->linktarget) != n->linktarget_len))
			abort();
	}
	sb_restictree_unref(t);
	return 0;
}
