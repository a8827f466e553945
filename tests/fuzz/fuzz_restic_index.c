/*
 * libFuzzer harness for the native reader's index parser (a decrypted
 * index file). The first byte picks the repository version. An accepted
 * file must leave an index whose every blob is found again by its id and
 * lies within 4 GiB; a refused one must say why and add nothing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "stackback/resticrepo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	int version = 1 + (data[0] & 1);
	struct sb_resticindex *idx = sb_resticindex_new();
	char *err = NULL;
	int rc = sb_resticindex_add_json(idx, data + 1, size - 1, version, &err);
	if (rc < 0 && !err)
		abort();
	free(err);
	sb_resticindex_finish(idx);
	size_t n = sb_resticindex_count(idx);
	if (rc < 0 && (n != 0 || sb_resticindex_packs(idx) != 0))
		abort();
	for (size_t i = 0; i < n; i++) {
		struct sb_restic_blob b;
		sb_resticindex_get(idx, i, &b);
		if ((uint64_t)b.offset + b.length > UINT32_MAX || b.length < 32 || b.pack >= sb_resticindex_packs(idx))
			abort();
		if (b.compressed && version < 2)
			abort();
		if (sb_resticindex_find(idx, sb_resticindex_id(idx, i), b.type) != (ssize_t)i)
			abort();
	}
	sb_resticindex_free(idx);
	return 0;
}
