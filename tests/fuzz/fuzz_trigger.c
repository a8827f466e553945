/*
 * libFuzzer harness for the control files' write parser,
 * sb_job_request_parse() (core/job.c): what `echo ... > trigger/KIND`
 * and `stacks/NAME/restore` hand to the daemon. The first byte picks the
 * job kind, the rest is the payload, NULs and all.
 *
 * Beyond the sanitizers it checks what the daemon relies on: a refusal
 * comes with a message and leaves the request untouched (SPEC §2: nothing
 * changes on bad input); an accepted request names only valid, distinct
 * stacks (a hostile name can never reach a path), carries only the
 * options its kind takes, and a backup or stack restore described back
 * into words parses to the same request.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "stackback/job.h"
#include "stackback/restic.h"
#include "stackback/stacks.h"

#define N_KINDS 6

static bool same_request(const struct sb_job_request *a, const struct sb_job_request *b)
{
	if (a->kind != b->kind || a->dry_run != b->dry_run || a->force != b->force ||
	    a->read_data != b->read_data || a->stacks.n != b->stacks.n)
		return false;
	for (size_t i = 0; i < a->stacks.n; i++)
		if (strcmp(a->stacks.v[i], b->stacks.v[i]) != 0)
			return false;
	if (!a->snapshot != !b->snapshot || (a->snapshot && strcmp(a->snapshot, b->snapshot) != 0))
		return false;
	return true;
}

static void check_accepted(const struct sb_job_request *r)
{
	enum sb_job_kind k = r->kind;
	for (size_t i = 0; i < r->stacks.n; i++) {
		if (!sb_stack_name_valid(r->stacks.v[i]) || strchr(r->stacks.v[i], '/'))
			abort();
		for (size_t j = 0; j < i; j++)
			if (strcmp(r->stacks.v[i], r->stacks.v[j]) == 0)
				abort();
	}
	if (r->stacks.n && k != SB_JOB_BACKUP && k != SB_JOB_FORGET && k != SB_JOB_RESTORE_STACK)
		abort();
	if ((r->force && k != SB_JOB_RESTORE) || (r->read_data && k != SB_JOB_CHECK) ||
	    (r->dry_run && k == SB_JOB_CHECK) || r->target)
		abort();
	if (k == SB_JOB_RESTORE_STACK &&
	    (r->stacks.n != 1 || !r->snapshot || !sb_snapshot_ref_valid(r->snapshot)))
		abort();
	if (k != SB_JOB_RESTORE_STACK && r->snapshot)
		abort();

	if (k == SB_JOB_BACKUP || k == SB_JOB_RESTORE_STACK) {
		char *words = sb_job_request_describe(r);
		struct sb_job_request again = {0};
		char *err = NULL;
		if (sb_job_request_parse(k, words, strlen(words), &again, &err) != 0 || err ||
		    !same_request(r, &again))
			abort();
		sb_job_request_free(&again);
		free(words);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	enum sb_job_kind kind = (enum sb_job_kind)(data[0] % N_KINDS);
	const char *payload = (const char *)data + 1;
	size_t len = size - 1;

	/* A refusal must leave this exactly as it was. */
	struct sb_job_request req;
	memset(&req, 0xa5, sizeof(req));
	struct sb_job_request untouched;
	memcpy(&untouched, &req, sizeof(req));
	char *err = NULL;
	int rc = sb_job_request_parse(kind, payload, len, &req, &err);
	if (rc == 0) {
		if (err || req.kind != kind)
			abort();
		check_accepted(&req);
		sb_job_request_free(&req);
	} else {
		if (rc != -1 || !err || !*err || memcmp(&req, &untouched, sizeof(req)) != 0)
			abort();
		free(err);
	}
	return 0;
}
