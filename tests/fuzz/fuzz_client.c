/*
 * libFuzzer harness for the control-filesystem client's parsers: the
 * input as mountinfo text, as a jobs/ID/progress file, as a trigger's
 * read-back, as status.json and as a job report. Beyond not crashing:
 * parsed progress stays in range and a rebuilt job renders.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "stackback/client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;

	sb_mountinfo_has_stackbackfs(text, size, "/mnt/stackback");
	/* A mountpoint taken from the input exercises the escape decoding against itself. */
	char *mp = strndup(text, size < 64 ? size : 64);
	if (!mp)
		abort();
	sb_mountinfo_has_stackbackfs(text, size, sb_mountinfo_unescape(mp));
	free(mp);

	struct sb_job_progress p;
	if (sb_client_parse_progress(text, size, &p) == 0) {
		if (!(p.percent >= 0 && p.percent <= 100) || p.stack_index < 0 || p.stack_count < 0 ||
		    !(p.eta_s <= 1e9) ||
		    memchr(p.stack, '\0', sizeof(p.stack)) == NULL ||
		    memchr(p.phase, '\0', sizeof(p.phase)) == NULL)
			abort();
	}

	int id;
	enum sb_job_state st;
	if (sb_client_parse_trigger_reply(text, size, &id, &st) == 0 && id <= 0)
		abort();

	bool busy;
	struct sb_client_last last;
	if (sb_client_parse_status(text, size, &busy, &last) == 0 && last.any && last.id < 0)
		abort();

	char *err = NULL;
	struct sb_job *job = sb_client_job_from_report(text, size, &err);
	if (job) {
		char *report = sb_job_report_text(job);
		free(report);
		report = sb_job_report_json(job);
		free(report);
		sb_job_free(job);
	} else if (!err) {
		abort();
	}
	free(err);
	return 0;
}
