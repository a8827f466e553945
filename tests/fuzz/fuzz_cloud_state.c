/*
 * libFuzzer harness for the cloud state reader (cloud.json, which a
 * crash, a full disk or a hand edit may leave in any shape) and every
 * text rendered from it. Beyond not crashing: each rendering is one or
 * more whole lines, and the status word is one of the five.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "stackback/cloud.h"

static void check_lines(char *text)
{
	size_t n = strlen(text);
	if (n == 0 || text[n - 1] != '\n')
		abort();
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sb_config cfg = {
		.restic_repository = (char *)"/nonexistent/stackback-fuzz-repo",
		.rclone_remote = (char *)"remote",
		.rclone_path = (char *)"path",
	};
	struct sb_cloud_state st;
	sb_cloud_state_parse(&cfg, (const char *)data, size, &st);
	if (st.status > SB_CLOUD_FAILED || st.in_sync.state > SB_IN_SYNC_DIFFERS)
		abort();
	char *status = sb_cloud_render_status(&st);
	static const char *const words[] = {"idle", "syncing", "restoring", "ok", "failed"};
	size_t w = strcspn(status, ":\n");
	if (w != strlen(words[st.status]) || strncmp(status, words[st.status], w) != 0)
		abort();
	check_lines(status);
	check_lines(sb_cloud_render_remote(&st));
	check_lines(sb_cloud_render_last_sync(&st));
	check_lines(sb_cloud_render_in_sync(&st));
	check_lines(sb_cloud_render_progress(&st));
	check_lines(sb_cloud_render_last_restore(&st));
	sb_cloud_state_free(&st);
	return 0;
}
