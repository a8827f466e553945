/*
 * libFuzzer harness for the snapshot tree's parsers: `restic ls --json`
 * lines (before the first NUL byte of the input), `restic ls -l` lines
 * (after it), and the on-disk tree form (the whole input). Beyond not
 * crashing, it checks what browsing relies on: every node of an accepted
 * tree is found again by its own path, children are sorted and name
 * their parent, and a saved tree reads back the same.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "stackback/snaptree.h"
#include "stackback/util.h"

static void feed(struct sb_snaptree_builder *b, const char *p, size_t len, bool json)
{
	const char *end = p + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (json) {
			char *err = NULL;
			if (sb_snaptree_builder_feed_json(b, p, n, &err) < 0) {
				if (!err)
					abort();
				free(err);
				return;
			}
		} else {
			sb_snaptree_builder_feed_long(b, p, n);
		}
		p += n + 1;
	}
}

static void check_tree(const struct sb_snaptree *t)
{
	uint32_t n = sb_snaptree_count(t);
	for (sb_snode_id id = 0; id < n; id++) {
		char *path = sb_snaptree_path(t, id);
		sb_snode_id back;
		if (sb_snaptree_lookup(t, path, &back) != 0 || back != id)
			abort();
		free(path);
		uint32_t nc = sb_snaptree_nchildren(t, id);
		for (uint32_t i = 0; i < nc; i++) {
			sb_snode_id c = sb_snaptree_child_at(t, id, i);
			if (sb_snaptree_parent(t, c) != id)
				abort();
			if (i > 0 && strcmp(sb_snaptree_name(t, c - 1), sb_snaptree_name(t, c)) >= 0)
				abort();
		}
		struct stat st;
		sb_snaptree_stat(t, id, &st);
		if (S_ISLNK(st.st_mode) && sb_snaptree_link(t, id) &&
		    strlen(sb_snaptree_link(t, id)) != (size_t)st.st_size)
			abort();
		char *src = sb_snaptree_source_path(t, id);
		if (src[0] != '/')
			abort();
		free(src);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	const char *nul = memchr(text, '\0', size);
	size_t json_len = nul ? (size_t)(nul - text) : size;

	struct sb_snaptree_builder *b = sb_snaptree_builder_new(NULL);
	feed(b, text, json_len, true);
	if (nul)
		feed(b, nul + 1, size - json_len - 1, false);
	char *err = NULL;
	struct sb_snaptree *t = sb_snaptree_builder_finish(b, &err);
	sb_snaptree_builder_free(b);
	if (t) {
		check_tree(t);
		char path[] = "/tmp/fuzz_restic_ls.XXXXXX";
		int fd = mkstemp(path);
		if (fd >= 0) {
			close(fd);
			struct sb_snaptree *u = NULL;
			if (sb_snaptree_save(t, path) != 0 || sb_snaptree_load_file(path, &u) != 0 ||
			    sb_snaptree_count(u) != sb_snaptree_count(t))
				abort();
			check_tree(u);
			sb_snaptree_unref(u);
			unlink(path);
		}
		sb_snaptree_unref(t);
	} else if (!err) {
		abort();
	}
	free(err);

	struct sb_snaptree *d = NULL;
	if (sb_snaptree_load_bytes(data, size, &d) == 0) {
		check_tree(d);
		sb_snaptree_unref(d);
	}
	return 0;
}
