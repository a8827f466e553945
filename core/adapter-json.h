/*
 * JSON helpers shared by the tool adapters (restic.c, rclone.c): strict
 * parsing of one line of a tool's output and typed member access that
 * tells "absent" from "wrong type", so parsers reject garbage instead of
 * reading zeros. Values returned are borrowed from the object.
 */
#ifndef STACKBACK_ADAPTER_JSON_H
#define STACKBACK_ADAPTER_JSON_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Parses exactly one JSON value from text[0..len) (trailing whitespace
 * allowed; NUL bytes refused). Returns an owned object or NULL.
 */
struct json_object *sb_json_parse(const char *text, size_t len);

/* Absent or null: *out untouched, 0. A non-negative number below 2^64 (a double is truncated): 0. Else -1. */
int sb_json_get_u64(struct json_object *o, const char *key, uint64_t *out);
/* Absent or null: *out untouched, 0. A finite number: 0. Else -1. */
int sb_json_get_double(struct json_object *o, const char *key, double *out);
/* A string member (borrowed), or NULL if absent or of another type. */
const char *sb_json_get_str(struct json_object *o, const char *key);

#endif
