/*
 * libFuzzer harness for the rclone adapter's parsers: every line of the
 * input as a JSON log line (stats) and as a `check --combined` line.
 * Beyond not crashing: progress stays in range, and a check line counts
 * exactly one file or none.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "stackback/rclone.h"

static uint64_t total(const struct sb_rclone_check *c)
{
	return c->matched + c->missing_on_dst + c->missing_on_src + c->differences + c->errors;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct sb_rclone_check chk = {0};
	for (size_t off = 0; off <= size;) {
		const char *nl = memchr(text + off, '\n', size - off);
		size_t len = nl ? (size_t)(nl - (text + off)) : size - off;
		const char *line = text + off;

		struct sb_rclone_progress p = {0};
		int rc = sb_rclone_parse_stats_line(line, len, &p);
		if (rc < -1 || rc > 1)
			abort();
		if (rc == 1 && (!(p.percent >= 0 && p.percent <= 100) || !(p.speed >= 0) ||
				!(p.eta_s == -1 || p.eta_s >= 0)))
			abort();

		uint64_t before = total(&chk);
		rc = sb_rclone_parse_check_line(line, len, &chk);
		if ((rc == 0 && total(&chk) != before + 1) || (rc == -1 && total(&chk) != before) ||
		    (rc != 0 && rc != -1))
			abort();
		off += len + 1;
	}
	return 0;
}
