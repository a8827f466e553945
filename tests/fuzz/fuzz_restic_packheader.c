/*
 * libFuzzer harness for the native reader's pack header parser (a
 * decrypted pack header). The first byte picks the version, the next
 * four the end of the blobs. Accepted entries must lie back to back from
 * byte 0 and end exactly there.
 */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz.h"
#include "stackback/resticrepo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 5)
		return 0;
	int version = 1 + (data[0] & 1);
	uint64_t data_end = (uint64_t)data[1] | (uint64_t)data[2] << 8 | (uint64_t)data[3] << 16 |
			    (uint64_t)data[4] << 24;
	struct sb_resticpack_entry *e = NULL;
	size_t n = 0;
	char *err = NULL;
	int rc = sb_resticpack_parse_header(data + 5, size - 5, version, data_end, &e, &n, &err);
	if (rc < 0) {
		if (!err || e)
			abort();
		free(err);
		return 0;
	}
	uint64_t at = 0;
	for (size_t i = 0; i < n; i++) {
		if (e[i].offset != at || e[i].length < 32 || (e[i].compressed && version < 2))
			abort();
		at += e[i].length;
	}
	if (at != data_end)
		abort();
	free(e);
	return 0;
}
