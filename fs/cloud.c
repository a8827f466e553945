/*
 * cloud/: what the last sync and restore did, read from STATE_DIR/cloud.json
 * on every open (the sync and restore jobs rewrite it, atomically, as they
 * go). core/cloud.c holds the words; this file only picks the renderer.
 *
 *   $ cat /mnt/stackback/cloud/status
 *   syncing: uploading, 42%, 1.2 GiB of 2.9 GiB, eta 1m10s
 *   $ cat /mnt/stackback/cloud/in_sync
 *   verified: 312 files match by size, checked 2024-05-01T03:04:12Z
 */
#include <stdlib.h>

#include "sbfs.h"
#include "stackback/cloud.h"

int sbfs_cloud_read(struct sbfs_ctx *c, struct sb_buf *out)
{
	static char *(*const render[])(const struct sb_cloud_state *st) = {
		[SBFS_CLOUD_STATUS] = sb_cloud_render_status,
		[SBFS_CLOUD_REMOTE] = sb_cloud_render_remote,
		[SBFS_CLOUD_LAST_SYNC] = sb_cloud_render_last_sync,
		[SBFS_CLOUD_IN_SYNC] = sb_cloud_render_in_sync,
		[SBFS_CLOUD_PROGRESS] = sb_cloud_render_progress,
		[SBFS_CLOUD_LAST_RESTORE] = sb_cloud_render_last_restore,
	};
	struct sb_cloud_state st;
	sb_cloud_state_read(&c->fs->cfg, &st);
	char *text = render[c->node->arg](&st);
	sb_buf_puts(out, text);
	free(text);
	sb_cloud_state_free(&st);
	return 0;
}
