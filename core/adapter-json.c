#include "adapter-json.h"

#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

struct json_object *sb_json_parse(const char *line, size_t len)
{
	/* json-c would stop at a NUL byte and take the rest as unseen. */
	if (len == 0 || len > INT_MAX || memchr(line, '\0', len))
		return NULL;
	struct json_tokener *tok = json_tokener_new();
	if (!tok)
		return NULL;
	struct json_object *obj = json_tokener_parse_ex(tok, line, (int)len);
	size_t end = json_tokener_get_parse_end(tok);
	bool ok = obj && json_tokener_get_error(tok) == json_tokener_success;
	json_tokener_free(tok);
	for (size_t i = end; ok && i < len; i++)
		if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r' && line[i] != '\n')
			ok = false;
	if (!ok) {
		json_object_put(obj);
		return NULL;
	}
	return obj;
}

int sb_json_get_u64(struct json_object *o, const char *key, uint64_t *out)
{
	struct json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (json_object_is_type(v, json_type_int)) {
		int64_t i = json_object_get_int64(v);
		if (i < 0)
			return -1;
		/* json-c keeps values above INT64_MAX as unsigned and clamps the signed view. */
		*out = i == INT64_MAX ? json_object_get_uint64(v) : (uint64_t)i;
		return 0;
	}
	if (json_object_is_type(v, json_type_double)) {
		double d = json_object_get_double(v);
		if (!isfinite(d) || d < 0 || d >= 18446744073709551616.0)
			return -1;
		*out = (uint64_t)d;
		return 0;
	}
	return -1;
}

int sb_json_get_double(struct json_object *o, const char *key, double *out)
{
	struct json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
		return -1;
	double d = json_object_get_double(v);
	if (!isfinite(d))
		return -1;
	*out = d;
	return 0;
}

const char *sb_json_get_str(struct json_object *o, const char *key)
{
	struct json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}
