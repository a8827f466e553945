/**
 * @file snaptar.h
 * A streaming reader for the tar archives `restic dump SNAP DIR` writes
 * (Go's archive/tar: ustar with its prefix field, PAX extended headers
 * for long or non-ASCII names, GNU long names, base-256 sizes). It is fed
 * the bytes as they come out of restic and hands out each member's
 * header and data as they pass, so a directory's small files land in the
 * content cache in one restic run. Garbage input is refused, never
 * trusted: the fuzzer drives it too.
 */
#ifndef STACKBACK_SNAPTAR_H
#define STACKBACK_SNAPTAR_H

#include <stddef.h>
#include <stdint.h>

struct sb_tar_callbacks {
	/**
	 * A member starts. path is its name as stored (no leading '/'),
	 * type its typeflag ('0' for a regular file, '5' directory, '2'
	 * symlink...). Returns a tag >= 0 to receive the data, or -1 to skip it.
	 */
	int (*member)(void *userdata, const char *path, char type, uint64_t size);
	/** A piece of the data of the member tagged tag, in order. Returns 0, or -1 to stop reading. */
	int (*data)(void *userdata, int tag, const void *buf, size_t len);
	/** The member tagged tag ended (all of its size was delivered). Returns 0 or -1 to stop. */
	int (*end)(void *userdata, int tag);
};

struct sb_tar_reader;

/** A reader that reports to cb (copied) with userdata. */
struct sb_tar_reader *sb_tar_reader_new(const struct sb_tar_callbacks *cb, void *userdata);
void sb_tar_reader_free(struct sb_tar_reader *r);

/**
 * Feeds len bytes. Returns 0, or -1 with *err (caller frees) on a
 * malformed archive or when a callback stopped; further feeds then fail.
 */
int sb_tar_feed(struct sb_tar_reader *r, const void *data, size_t len, char **err);

/** The input ended: returns 0 if it ended between members, else -1 with *err. */
int sb_tar_finish(struct sb_tar_reader *r, char **err);

#endif
