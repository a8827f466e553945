/*
 * libFuzzer harness for the restic adapter's parsers: every line of the
 * input through the `backup --json` line parser, the whole input through
 * the `snapshots --json` parser and through sb_restic_explain(). Beyond
 * not crashing, it checks what callers rely on: progress in range, a
 * summary always names its snapshot, lists come sorted with ids, and an
 * explanation is one printable line.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "stackback/restic.h"

static void check_backup_line(const char *line, size_t len)
{
	struct sb_backup_progress p = {0};
	struct sb_backup_summary s = {0};
	int rc = sb_restic_parse_backup_line(line, len, &p, &s);
	if (rc < -1 || rc > 2)
		abort();
	if (rc == 1 && (!(p.percent >= 0 && p.percent <= 100) || !(p.eta_s == -1 || p.eta_s >= 0)))
		abort();
	if (rc == 2 && (!s.snapshot_id || !*s.snapshot_id))
		abort();
	if (rc != 2 && s.snapshot_id)
		abort();
	sb_backup_summary_free(&s);
}

static void check_snapshots(const char *text, size_t len)
{
	struct sb_snapshot_list l;
	if (sb_restic_parse_snapshots(text, len, &l) != 0) {
		if (l.n || l.v)
			abort();
		return;
	}
	for (size_t i = 0; i < l.n; i++) {
		const struct sb_snapshot *s = &l.v[i];
		if (!s->id || !*s->id || !s->short_id || !s->time)
			abort();
		if (i > 0 && l.v[i - 1].time_utc > s->time_utc)
			abort();
		if (s->stack && strcmp(s->stack, "stackback") == 0)
			abort();
	}
	sb_snapshot_list_free(&l);
}

static void check_explain(const char *text, size_t len)
{
	char *s = xstrndup(text, len);
	char *e = sb_restic_explain(1, s);
	if (strncmp(e, "restic exited 1: ", 17) != 0)
		abort();
	for (const char *p = e; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			abort();
	free(e);
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	for (size_t off = 0; off <= size;) {
		const char *nl = memchr(text + off, '\n', size - off);
		size_t len = nl ? (size_t)(nl - (text + off)) : size - off;
		check_backup_line(text + off, len);
		off += len + 1;
	}
	check_snapshots(text, size);
	check_explain(text, size);
	return 0;
}
