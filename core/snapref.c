/* Naming and resolving snapshots the way every front end shows them. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "stackback/restic.h"
#include "stackback/util.h"

void sb_snapshot_dirname(const struct sb_snapshot *s, char *buf, size_t size)
{
	struct tm tm;
	gmtime_r(&s->time_utc, &tm);
	char stamp[32];
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, size, "%s_%s", stamp, s->short_id ? s->short_id : "");
}

static bool is_hex_id(const char *id)
{
	size_t len = strlen(id);
	return len >= 4 && len <= 64 && strspn(id, "0123456789abcdef") == len;
}

bool sb_snapshot_ref_valid(const char *ref)
{
	if (sb_str_has_prefix(ref, "cloud:"))
		ref += 6;
	if (strcmp(ref, "latest") == 0 || is_hex_id(ref))
		return true;
	/* YYYY-MM-DDTHH:MM:SS_<id> */
	struct tm tm = {0};
	const char *rest = strptime(ref, "%Y-%m-%dT%H:%M:%S", &tm);
	return rest && rest - ref == 19 && *rest == '_' && is_hex_id(rest + 1);
}

static bool belongs(const struct sb_snapshot *s, const char *stack)
{
	return !stack || (s->stack && strcmp(s->stack, stack) == 0);
}

const struct sb_snapshot *sb_snapshot_resolve(const struct sb_snapshot_list *l, const char *stack,
					      const char *ref, char **err)
{
	const char *who = stack ? stack : "any stack";
	if (!ref || !*ref || strcmp(ref, "latest") == 0) {
		/* The list is sorted by time, so the last match is the newest. */
		for (size_t i = l->n; i-- > 0;)
			if (belongs(&l->v[i], stack))
				return &l->v[i];
		*err = xasprintf("no snapshot of %s%s%s", stack ? "stack '" : "", who, stack ? "'" : "");
		return NULL;
	}
	/* A directory name: the id after the last '_' must match, and the time too. */
	const char *underscore = strrchr(ref, '_');
	const char *id = underscore ? underscore + 1 : ref;
	size_t id_len = strlen(id);
	if (!sb_snapshot_ref_valid(ref)) {
		*err = xasprintf("'%.80s' is not a snapshot reference (latest, an id, or a snapshots/ name)", ref);
		return NULL;
	}
	const struct sb_snapshot *found = NULL;
	for (size_t i = 0; i < l->n; i++) {
		const struct sb_snapshot *s = &l->v[i];
		if (!belongs(s, stack) || strncmp(s->id, id, id_len) != 0)
			continue;
		if (underscore) {
			char name[96];
			sb_snapshot_dirname(s, name, sizeof(name));
			if (strcmp(name, ref) != 0)
				continue;
		}
		if (found) {
			*err = xasprintf("snapshot id '%s' is ambiguous", id);
			return NULL;
		}
		found = s;
	}
	if (!found)
		*err = xasprintf("no snapshot '%.80s' of %s%s%s", ref, stack ? "stack '" : "", who, stack ? "'" : "");
	return found;
}
