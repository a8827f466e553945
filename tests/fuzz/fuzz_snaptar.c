/*
 * libFuzzer harness for the streaming tar reader (restic dump of a
 * directory). The input is fed twice, whole and in 3-byte pieces; both
 * must give the same members with the same bytes, and every member the
 * reader reported data for must have ended before the next one began.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "stackback/snaptar.h"
#include "stackback/util.h"

struct trace {
	struct sb_buf log;   /* "M<type><path>\n", data bytes, "E\n" */
	int open;            /* the member whose data is flowing, -1 none */
	int next;
};

static int on_member(void *ud, const char *path, char type, uint64_t size)
{
	struct trace *t = ud;
	if (t->open >= 0)
		abort();
	sb_buf_printf(&t->log, "M%c%s %llu\n", type, path, (unsigned long long)size);
	t->open = t->next++;
	return t->open;
}

static int on_data(void *ud, int tag, const void *buf, size_t len)
{
	struct trace *t = ud;
	if (tag != t->open)
		abort();
	sb_buf_append(&t->log, buf, len);
	return 0;
}

static int on_end(void *ud, int tag)
{
	struct trace *t = ud;
	if (tag != t->open)
		abort();
	t->open = -1;
	sb_buf_puts(&t->log, "E\n");
	return 0;
}

static int run(const uint8_t *data, size_t size, size_t chunk, struct trace *t)
{
	static const struct sb_tar_callbacks cb = {on_member, on_data, on_end};
	*t = (struct trace){.open = -1};
	struct sb_tar_reader *r = sb_tar_reader_new(&cb, t);
	char *err = NULL;
	int rc = 0;
	for (size_t off = 0; off < size && rc == 0; off += chunk)
		rc = sb_tar_feed(r, data + off, size - off < chunk ? size - off : chunk, &err);
	if (rc == 0)
		rc = sb_tar_finish(r, &err);
	if (rc < 0 && !err)
		abort();
	free(err);
	sb_tar_reader_free(r);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct trace whole, pieces;
	int a = run(data, size, size ? size : 1, &whole);
	int b = run(data, size, 3, &pieces);
	if (a != b || (a == 0 && (whole.log.len != pieces.log.len ||
				  (whole.log.len && memcmp(whole.log.data, pieces.log.data, whole.log.len) != 0))))
		abort();
	sb_buf_free(&whole.log);
	sb_buf_free(&pieces.log);
	return 0;
}
