/*
 * A snapshot's browsable tree (snaptree.h) built by the native reader:
 * the snapshot's trees walked from its root path down, every node given
 * to the snaptree builder with what `restic ls` cannot tell (link
 * targets, link counts).
 */
#include "resticrepo-internal.h"

#include <errno.h>
#include <string.h>

#include "stackback/snaptree.h"

static void entry_of(const struct sb_restic_node *n, struct sb_snaptree_entry *e)
{
	*e = (struct sb_snaptree_entry){
		.name = n->name,
		.name_len = n->name_len,
		.mode = n->mode,
		.uid = n->uid,
		.gid = n->gid,
		.size = n->size,
		.mtime_s = n->mtime.tv_sec,
		.mtime_ns = (uint32_t)n->mtime.tv_nsec,
		.link = n->linktarget,
		.link_len = n->linktarget_len,
		.nlink = n->links > UINT32_MAX ? UINT32_MAX : (uint32_t)n->links,
	};
}

/* The root node: root_path's components followed from the snapshot's tree. */
static int find_root(struct sb_resticrepo *r, const uint8_t *tree, const char *root_path,
		     struct sb_restictree **t, const struct sb_restic_node **node, char **err)
{
	char *why = NULL;
	int rc = sb_resticrepo_lookup(r, tree, root_path, t, node, &why);
	if (rc < 0) {
		*err = xasprintf("the snapshot holds no directory '%s': %s", root_path, why);
		free(why);
		return rc;
	}
	if ((*node)->type != SB_RESTIC_NODE_DIR) {
		sb_restictree_unref(*t);
		*err = xasprintf("'%s' is not a directory in the snapshot", root_path);
		return -ENOTDIR;
	}
	return 0;
}

struct pending {
	uint8_t tree[SB_RESTIC_ID_LEN];
	sb_snode_id parent;
};

int sb_resticrepo_snaptree(struct sb_resticrepo *r, const uint8_t tree[SB_RESTIC_ID_LEN], const char *root_path,
			   int64_t snap_time, struct sb_snaptree **out, size_t *skipped, char **err)
{
	*skipped = 0;
	struct sb_snaptree_builder *b = sb_snaptree_builder_new(root_path);
	struct sb_snaptree_entry e;
	struct pending *todo = xmalloc(64 * sizeof(*todo));
	size_t n = 0, cap = 64;
	char *why = NULL;
	int rc = 0;
	if (strcmp(root_path, "/") == 0) {
		e = (struct sb_snaptree_entry){.mode = S_IFDIR | 0755, .mtime_s = snap_time};
		memcpy(todo[0].tree, tree, SB_RESTIC_ID_LEN);
	} else {
		struct sb_restictree *t;
		const struct sb_restic_node *root;
		rc = find_root(r, tree, root_path, &t, &root, err);
		if (rc < 0)
			goto out;
		entry_of(root, &e);
		memcpy(todo[0].tree, root->subtree, SB_RESTIC_ID_LEN);
		sb_restictree_unref(t);
	}
	todo[0].parent = sb_snaptree_builder_add(b, SB_SNODE_NONE, &e, &why);
	if (todo[0].parent == SB_SNODE_NONE)
		goto refused;
	n = 1;
	while (n > 0) {
		struct pending cur = todo[--n];
		struct sb_restictree *t;
		rc = rr_read_tree(r, cur.tree, &t, err);
		if (rc < 0)
			goto out;
		for (size_t i = 0; i < sb_restictree_count(t); i++) {
			const struct sb_restic_node *nd = sb_restictree_node(t, i);
			if (nd->type == SB_RESTIC_NODE_OTHER) {
				(*skipped)++;
				continue;
			}
			entry_of(nd, &e);
			sb_snode_id id = sb_snaptree_builder_add(b, cur.parent, &e, &why);
			if (id == SB_SNODE_NONE) {
				sb_restictree_unref(t);
				goto refused;
			}
			if (nd->type != SB_RESTIC_NODE_DIR)
				continue;
			if (n == cap) {
				cap *= 2;
				todo = xrealloc(todo, cap * sizeof(*todo));
			}
			memcpy(todo[n].tree, nd->subtree, SB_RESTIC_ID_LEN);
			todo[n].parent = id;
			n++;
		}
		sb_restictree_unref(t);
	}
	*out = sb_snaptree_builder_finish(b, &why);
	if (!*out)
		goto refused;
	goto out;
refused:
	*err = xasprintf("the snapshot's tree under '%s' cannot be browsed: %s", root_path, why);
	rc = -EIO;
out:
	free(why);
	free(todo);
	sb_snaptree_builder_free(b);
	return rc;
}

char *sb_resticrepo_snapshot_root(const char *const *paths, size_t n)
{
	char *root = NULL;
	for (size_t i = 0; i < n; i++) {
		const char *s = paths[i];
		if (s[0] != '/')
			continue;
		size_t len = strlen(s);
		while (len > 1 && s[len - 1] == '/')
			len--;
		if (!root) {
			root = xstrndup(s, len);
			/* Several paths share their parent at least. */
			if (n > 1) {
				char *slash = strrchr(root, '/');
				slash[slash == root ? 1 : 0] = '\0';
			}
			continue;
		}
		/* Shorten root to a whole-component prefix of s. */
		size_t k = 0;
		while (root[k] && k < len && root[k] == s[k])
			k++;
		if (!(root[k] == '\0' && (k == len || s[k] == '/'))) {
			while (k > 0 && root[k] != '/')
				k--;
			root[k == 0 ? 1 : k] = '\0';
		}
	}
	return root;
}
