/*
 * The TUI's view model (see view.h): formatting and row logic, no
 * ncurses, no I/O beyond what the caller hands in.
 */
#include "view.h"

#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <math.h> /* isfinite: a macro, no libm */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <wchar.h>

/* ---- text ---- */

/*
 * Decodes one character at s (n bytes left). Returns its length in
 * bytes (at least 1) and its width in *w; an invalid byte is taken as
 * one column so nothing is ever lost from the count.
 */
static size_t next_char(const char *s, size_t n, int *w)
{
	mbstate_t ps = {0};
	wchar_t wc;
	size_t len = mbrtowc(&wc, s, n, &ps);
	if (len == (size_t)-1 || len == (size_t)-2 || len == 0) {
		*w = 1;
		return 1;
	}
	int cw = wcwidth(wc);
	*w = cw < 0 ? 1 : cw;
	return len;
}

int tui_text_width(const char *s)
{
	int total = 0;
	size_t n = strlen(s);
	while (n > 0) {
		int w;
		size_t len = next_char(s, n, &w);
		total += w;
		s += len;
		n -= len;
	}
	return total;
}

char *tui_fit(const char *s, int width, bool utf8)
{
	if (width <= 0)
		return xstrdup("");
	struct sb_buf b = {0};
	size_t n = strlen(s);
	int used = 0;
	if (tui_text_width(s) <= width) {
		sb_buf_puts(&b, s);
		used = tui_text_width(s);
	} else {
		/* Leave one column for the mark that says it was cut. */
		const char *p = s;
		while (n > 0) {
			int w;
			size_t len = next_char(p, n, &w);
			if (used + w > width - 1)
				break;
			sb_buf_append(&b, p, len);
			used += w;
			p += len;
			n -= len;
		}
		sb_buf_puts(&b, utf8 ? "\xe2\x80\xa6" : "~");
		used++;
	}
	while (used < width) {
		sb_buf_puts(&b, " ");
		used++;
	}
	return sb_buf_steal(&b);
}

void tui_wrap(const char *s, int width, struct sb_strv *out)
{
	if (width < 1)
		width = 1;
	const char *p = s;
	size_t n = strlen(s);
	while (n > 0) {
		/* Take characters while they fit; remember the last space to break there. */
		int used = 0;
		size_t take = 0, last_space = 0;
		bool have_space = false;
		while (take < n) {
			int w;
			size_t len = next_char(p + take, n - take, &w);
			if (used + w > width)
				break;
			if (p[take] == ' ') {
				last_space = take;
				have_space = true;
			}
			used += w;
			take += len;
		}
		if (take == 0) {
			/* A character wider than the line: it goes alone. */
			int w;
			take = next_char(p, n, &w);
		} else if (take < n && p[take] != ' ' && have_space && last_space > 0) {
			take = last_space;
		}
		size_t end = take;
		while (end > 0 && p[end - 1] == ' ')
			end--;
		sb_strv_push_owned(out, xstrndup(p, end));
		p += take;
		n -= take;
		while (n > 0 && *p == ' ') {
			p++;
			n--;
		}
	}
}

char *tui_wrap_text(const char *text, int width)
{
	struct sb_buf b = {0};
	const char *p = text ? text : "";
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		cleanup_free char *raw = xstrndup(p, len);
		cleanup_free char *line = tui_sanitize(raw);
		struct sb_strv w = {0};
		tui_wrap(line, width, &w);
		if (w.n == 0) {
			sb_buf_puts(&b, "\n");
		} else {
			sb_buf_printf(&b, "%s\n", w.v[0]);
			/* The rest of the line, rewrapped narrower so the indent fits. */
			if (w.n > 1 && width > 4) {
				size_t first = strlen(w.v[0]);
				const char *rest = line + first;
				while (*rest == ' ')
					rest++;
				struct sb_strv w2 = {0};
				tui_wrap(rest, width - 2, &w2);
				for (size_t i = 0; i < w2.n; i++)
					sb_buf_printf(&b, "  %s\n", w2.v[i]);
				sb_strv_free(&w2);
			} else {
				for (size_t i = 1; i < w.n; i++)
					sb_buf_printf(&b, "%s\n", w.v[i]);
			}
		}
		sb_strv_free(&w);
		p += len + (nl ? 1 : 0);
	}
	return b.data ? sb_buf_steal(&b) : xstrdup("");
}

char *tui_sanitize(const char *s)
{
	char *out = xstrdup(s);
	for (char *p = out; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	return out;
}

void tui_line_set(struct tui_line *l, const char *s)
{
	l->len = 0;
	l->text[0] = '\0';
	size_t n = strlen(s);
	while (n > 0) {
		int w;
		size_t len = next_char(s, n, &w);
		if (l->len + len >= sizeof(l->text))
			break;
		memcpy(l->text + l->len, s, len);
		l->len += len;
		s += len;
		n -= len;
	}
	l->text[l->len] = '\0';
}

bool tui_line_insert(struct tui_line *l, wchar_t wc)
{
	if (wc < 0x20 || wc == 0x7f || (wc >= 0x80 && wc < 0xa0))
		return false;
	char mb[MB_LEN_MAX];
	mbstate_t ps = {0};
	size_t len = wcrtomb(mb, wc, &ps);
	if (len == (size_t)-1 || l->len + len >= sizeof(l->text))
		return false;
	memcpy(l->text + l->len, mb, len);
	l->len += len;
	l->text[l->len] = '\0';
	return true;
}

bool tui_line_backspace(struct tui_line *l)
{
	if (l->len == 0)
		return false;
	/* Back to the start of the last character: skip UTF-8 continuation bytes. */
	size_t i = l->len - 1;
	while (i > 0 && ((unsigned char)l->text[i] & 0xc0) == 0x80)
		i--;
	l->len = i;
	l->text[i] = '\0';
	return true;
}

/* ---- numbers ---- */

void tui_format_age(double now, double then, char *buf, size_t size)
{
	if (then <= 0) {
		snprintf(buf, size, "never");
		return;
	}
	double d = now - then;
	if (d < 10) {
		/* Also a clock that went backwards: it was not long ago. */
		snprintf(buf, size, "just now");
	} else if (d < 60) {
		snprintf(buf, size, "%lds ago", (long)d);
	} else if (d < 3600) {
		snprintf(buf, size, "%ldm ago", (long)(d / 60));
	} else if (d < 86400) {
		snprintf(buf, size, "%ldh ago", (long)(d / 3600));
	} else if (d < 60 * 86400) {
		snprintf(buf, size, "%ldd ago", (long)(d / 86400));
	} else {
		time_t t = (time_t)then;
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(buf, size, "%Y-%m-%d", &tm);
	}
}

void tui_format_eta(double eta_s, char *buf, size_t size)
{
	if (!(eta_s >= 0)) {
		snprintf(buf, size, "-");
		return;
	}
	unsigned long s = (unsigned long)(eta_s + 0.5);
	if (s < 60)
		snprintf(buf, size, "%lus", s);
	else if (s < 3600)
		snprintf(buf, size, "%lum%02lus", s / 60, s % 60);
	else
		snprintf(buf, size, "%luh%02lum", s / 3600, (s % 3600) / 60);
}

char *tui_progress_bar(double percent, int width, bool utf8)
{
	if (width <= 0)
		return xstrdup("");
	if (!(percent >= 0))
		percent = 0;
	if (percent > 100)
		percent = 100;
	struct sb_buf b = {0};
	/* Eighths of a column, so a slow transfer still visibly moves. */
	long eighths = (long)(percent / 100.0 * width * 8 + 0.5);
	long full = eighths / 8, part = eighths % 8;
	static const char *const parts[8] = {
		"", "\xe2\x96\x8f", "\xe2\x96\x8e", "\xe2\x96\x8d",
		"\xe2\x96\x8c", "\xe2\x96\x8b", "\xe2\x96\x8a", "\xe2\x96\x89",
	};
	int used = 0;
	for (long i = 0; i < full; i++, used++)
		sb_buf_puts(&b, utf8 ? "\xe2\x96\x88" : "#");
	if (part > 0 && used < width) {
		sb_buf_puts(&b, utf8 ? parts[part] : (part >= 4 ? "#" : "-"));
		used++;
	}
	for (; used < width; used++)
		sb_buf_puts(&b, utf8 ? " " : "-");
	return sb_buf_steal(&b);
}

char *tui_progress_text(const struct sb_job_progress *p)
{
	struct sb_buf b = {0};
	if (p->stack_index > 0 && p->stack_count > 0)
		sb_buf_printf(&b, "[%d/%d] ", p->stack_index, p->stack_count);
	if (p->stack[0])
		sb_buf_printf(&b, "%s  ", p->stack);
	if (p->phase[0])
		sb_buf_printf(&b, "%s  ", p->phase);
	/* Whole percents, rounded down: 100% only when it is done. */
	if (p->percent > 0 || p->bytes_done > 0 || p->bytes_total > 0)
		sb_buf_printf(&b, "%ld%%  ", p->percent > 0 && p->percent < 1e6 ? (long)p->percent : 0L);
	if (p->bytes_total > 0) {
		char done[32], total[32];
		sb_format_bytes(p->bytes_done, done, sizeof(done));
		sb_format_bytes(p->bytes_total, total, sizeof(total));
		sb_buf_printf(&b, "%s / %s  ", done, total);
	} else if (p->bytes_done > 0) {
		char done[32];
		sb_format_bytes(p->bytes_done, done, sizeof(done));
		sb_buf_printf(&b, "%s  ", done);
	}
	if (p->files_total > 0)
		sb_buf_printf(&b, "%llu/%llu files  ", (unsigned long long)p->files_done,
			      (unsigned long long)p->files_total);
	if (p->eta_s >= 0) {
		char eta[32];
		tui_format_eta(p->eta_s, eta, sizeof(eta));
		sb_buf_printf(&b, "eta %s  ", eta);
	}
	/* Drop the trailing separator. */
	while (b.len > 0 && b.data[b.len - 1] == ' ')
		b.data[--b.len] = '\0';
	if (!b.data)
		return xstrdup("");
	return sb_buf_steal(&b);
}

/* ---- filtering ---- */

bool tui_filter_match(const char *pattern, const char *name)
{
	if (!pattern || !*pattern)
		return true;
	if (strpbrk(pattern, "*?["))
		return fnmatch(pattern, name, FNM_CASEFOLD) == 0;
	return strcasestr(name, pattern) != NULL;
}

/* ---- the last backup of a stack ---- */

void tui_last_backup_free(struct tui_last_backup *lb)
{
	free(lb->error);
	lb->error = NULL;
}

static int parse_double(const char *v, double *out)
{
	char *end;
	errno = 0;
	double d = strtod(v, &end);
	if (end == v || *end || errno || !isfinite(d) || d < 0)
		return -1;
	*out = d;
	return 0;
}

static int parse_utc(const char *v, double *out)
{
	struct tm tm = {0};
	const char *end = strptime(v, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (!end || *end)
		return -1;
	time_t t = timegm(&tm);
	if (t == (time_t)-1)
		return -1;
	*out = (double)t;
	return 0;
}

static int parse_last_line(struct tui_last_backup *lb, const char *key, const char *val)
{
	double d;
	if (strcmp(key, "time") == 0) {
		if (strcmp(val, "unknown") == 0)
			return 0;
		return parse_utc(val, &lb->time);
	}
	if (strcmp(key, "result") == 0) {
		if (!*val || strlen(val) >= sizeof(lb->result))
			return -1;
		snprintf(lb->result, sizeof(lb->result), "%s", val);
		return 0;
	}
	if (strcmp(key, "snapshot_id") == 0) {
		if (strcmp(val, "none") == 0)
			return 0;
		if (strlen(val) >= sizeof(lb->snapshot))
			return -1;
		snprintf(lb->snapshot, sizeof(lb->snapshot), "%s", val);
		return 0;
	}
	if (strcmp(key, "duration_s") == 0)
		return parse_double(val, &lb->duration_s);
	if (strcmp(key, "downtime_s") == 0) {
		if (parse_double(val, &lb->downtime_s) < 0)
			return -1;
		lb->has_downtime = true;
		return 0;
	}
	if (strcmp(key, "bytes_added") == 0) {
		if (parse_double(val, &d) < 0)
			return -1;
		lb->bytes_added = (uint64_t)d;
		return 0;
	}
	if (strcmp(key, "error") == 0) {
		free(lb->error);
		lb->error = tui_sanitize(val);
		return 0;
	}
	return 0;
}

int tui_last_backup_parse(const char *text, size_t len, struct tui_last_backup *lb)
{
	*lb = (struct tui_last_backup){0};
	snprintf(lb->result, sizeof(lb->result), "unknown");
	cleanup_free char *copy = xstrndup(text, len);
	if (strlen(copy) != len)
		return -1; /* a NUL inside: not text */
	if (strcmp(sb_strstrip(copy), "never") == 0)
		return 0;
	lb->known = true;
	char *save = NULL;
	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *colon = strstr(line, ": ");
		if (!colon)
			return -1;
		*colon = '\0';
		char *val = sb_strstrip(colon + 2);
		if (parse_last_line(lb, sb_strstrip(line), val) < 0)
			return -1;
	}
	return 0;
}

/* ---- the stacks screen ---- */

static void row_free(struct tui_stack_row *r)
{
	free(r->name);
	free(r->key);
	free(r->path);
	free(r->conflict);
	tui_last_backup_free(&r->last);
}

void tui_stack_list_free(struct tui_stack_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		row_free(&l->rows[i]);
	free(l->rows);
	free(l->filter);
	free(l->shown);
	*l = (struct tui_stack_list){0};
}

static void refilter(struct tui_stack_list *l, const char *keep_name)
{
	free(l->shown);
	l->shown = l->n ? xcalloc(l->n, sizeof(*l->shown)) : NULL;
	l->n_shown = 0;
	size_t cursor = 0;
	for (size_t i = 0; i < l->n; i++) {
		if (!tui_filter_match(l->filter, l->rows[i].name))
			continue;
		if (keep_name && strcmp(l->rows[i].name, keep_name) == 0)
			cursor = l->n_shown;
		l->shown[l->n_shown++] = i;
	}
	if (keep_name)
		l->cursor = cursor;
	if (l->cursor >= l->n_shown)
		l->cursor = l->n_shown ? l->n_shown - 1 : 0;
	if (l->top > l->cursor)
		l->top = l->cursor;
}

void tui_stack_list_load(struct tui_stack_list *l, const struct sb_selection *sel)
{
	struct tui_stack_row *cur = tui_stack_list_current(l);
	cleanup_free char *keep = cur ? xstrdup(cur->name) : NULL;
	struct tui_stack_row *old = l->rows;
	size_t n_old = l->n;

	l->rows = sel->n ? xcalloc(sel->n, sizeof(*l->rows)) : NULL;
	l->n = sel->n;
	for (size_t i = 0; i < sel->n; i++) {
		const struct sb_stack *s = &sel->stacks[i];
		struct tui_stack_row *r = &l->rows[i];
		r->name = xstrdup(s->name);
		r->key = xstrdup(s->dirlist_key ? s->dirlist_key : s->name);
		r->path = xstrdup(s->path);
		r->enabled = s->enabled;
		r->origin = s->origin;
		r->conflict = xstrdup(s->conflict);
		r->snapshots = -1;
		/* What was learned about the stack before the reload stays until it is asked again. */
		for (size_t j = 0; j < n_old; j++) {
			if (strcmp(old[j].name, r->name) != 0)
				continue;
			r->docker = old[j].docker;
			r->docker_known = old[j].docker_known;
			r->snapshots = old[j].snapshots;
			r->last = old[j].last;
			old[j].last.error = NULL;
			break;
		}
	}
	for (size_t j = 0; j < n_old; j++)
		row_free(&old[j]);
	free(old);
	if (!l->filter)
		l->filter = xstrdup("");
	refilter(l, keep);
}

void tui_stack_list_set_filter(struct tui_stack_list *l, const char *pattern)
{
	struct tui_stack_row *cur = tui_stack_list_current(l);
	cleanup_free char *keep = cur ? xstrdup(cur->name) : NULL;
	free(l->filter);
	l->filter = xstrdup(pattern ? pattern : "");
	l->top = 0;
	refilter(l, keep);
}

struct tui_stack_row *tui_stack_list_current(const struct tui_stack_list *l)
{
	if (l->n_shown == 0 || l->cursor >= l->n_shown)
		return NULL;
	return &l->rows[l->shown[l->cursor]];
}

void tui_stack_list_move(struct tui_stack_list *l, long delta, int height)
{
	if (l->n_shown == 0) {
		l->cursor = l->top = 0;
		return;
	}
	long c = (long)l->cursor + delta;
	if (c < 0)
		c = 0;
	if (c >= (long)l->n_shown)
		c = (long)l->n_shown - 1;
	l->cursor = (size_t)c;
	if (height < 1)
		height = 1;
	if (l->cursor < l->top)
		l->top = l->cursor;
	if (l->cursor >= l->top + (size_t)height)
		l->top = l->cursor - (size_t)height + 1;
	/* No empty rows below the last stack while stacks above are hidden (a window grew). */
	size_t max_top = l->n_shown > (size_t)height ? l->n_shown - (size_t)height : 0;
	if (l->top > max_top)
		l->top = max_top;
}

struct tui_stack_row *tui_stack_list_find(const struct tui_stack_list *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->rows[i].name, name) == 0)
			return &l->rows[i];
	return NULL;
}

size_t tui_stack_list_changes(const struct tui_stack_list *l, enum tui_bulk what,
			      struct sb_selection_change **out)
{
	*out = NULL;
	size_t n = 0;
	struct sb_selection_change *v = l->n_shown ? xcalloc(l->n_shown, sizeof(*v)) : NULL;
	for (size_t i = 0; i < l->n_shown; i++) {
		if (what == TUI_BULK_TOGGLE_CURSOR && i != l->cursor)
			continue;
		const struct tui_stack_row *r = &l->rows[l->shown[i]];
		bool want;
		switch (what) {
		case TUI_BULK_ENABLE_SHOWN:
			want = true;
			break;
		case TUI_BULK_DISABLE_SHOWN:
			want = false;
			break;
		default:
			want = !r->enabled;
			break;
		}
		if (want == r->enabled)
			continue;
		v[n++] = (struct sb_selection_change){.key = r->key, .enabled = want};
	}
	if (n == 0) {
		free(v);
		return 0;
	}
	*out = v;
	return n;
}

void tui_stack_list_count_snapshots(struct tui_stack_list *l, const struct sb_snapshot_list *snaps)
{
	for (size_t i = 0; i < l->n; i++)
		l->rows[i].snapshots = 0;
	for (size_t j = 0; j < snaps->n; j++) {
		if (!snaps->v[j].stack)
			continue;
		struct tui_stack_row *r = tui_stack_list_find(l, snaps->v[j].stack);
		if (r)
			r->snapshots++;
	}
}

static const int fixed_widths[TUI_STACK_NCOLS] = {
	[TUI_COL_ON] = 3,
	[TUI_COL_NAME] = 0,
	[TUI_COL_DOCKER] = 8,
	[TUI_COL_LAST] = 10,
	[TUI_COL_RESULT] = 8,
	[TUI_COL_SNAPS] = 5,
};

void tui_stack_layout(int width, int widths[TUI_STACK_NCOLS])
{
	int fixed = 0;
	for (int c = 0; c < TUI_STACK_NCOLS; c++) {
		widths[c] = fixed_widths[c];
		fixed += fixed_widths[c];
	}
	/* One space between columns, one at the left edge for the cursor mark. */
	int name = width - fixed - TUI_STACK_NCOLS;
	widths[TUI_COL_NAME] = name < 8 ? 8 : name;
}

const char *tui_stack_heading(enum tui_stack_col col)
{
	static const char *const headings[TUI_STACK_NCOLS] = {
		[TUI_COL_ON] = "ON",
		[TUI_COL_NAME] = "STACK",
		[TUI_COL_DOCKER] = "DOCKER",
		[TUI_COL_LAST] = "LAST",
		[TUI_COL_RESULT] = "RESULT",
		[TUI_COL_SNAPS] = "SNAPS",
	};
	return headings[col];
}

static void cell(struct tui_cell *c, enum tui_tone tone, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void cell(struct tui_cell *c, enum tui_tone tone, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->text, sizeof(c->text), fmt, ap);
	va_end(ap);
	c->tone = tone;
}

static enum tui_tone result_tone(const char *result)
{
	if (strcmp(result, "ok") == 0)
		return TUI_TONE_GOOD;
	if (strcmp(result, "dry-run") == 0)
		return TUI_TONE_DIM;
	return TUI_TONE_BAD;
}

void tui_stack_cells(const struct tui_stack_row *r, double now, bool utf8,
		     struct tui_cell cells[TUI_STACK_NCOLS])
{
	if (utf8)
		cell(&cells[TUI_COL_ON], r->enabled ? TUI_TONE_GOOD : TUI_TONE_DIM, "%s",
		     r->enabled ? "[\xe2\x9c\x93]" : "[ ]");
	else
		cell(&cells[TUI_COL_ON], r->enabled ? TUI_TONE_GOOD : TUI_TONE_DIM, "%s",
		     r->enabled ? "[x]" : "[ ]");

	if (r->conflict)
		cell(&cells[TUI_COL_NAME], TUI_TONE_BAD, "%s (clash)", r->name);
	else if (r->origin == SB_STACK_NEW)
		cell(&cells[TUI_COL_NAME], TUI_TONE_WARN, "%s (new)", r->name);
	else if (r->origin == SB_STACK_MISSING)
		cell(&cells[TUI_COL_NAME], TUI_TONE_BAD, "%s (missing)", r->name);
	else
		cell(&cells[TUI_COL_NAME], TUI_TONE_NORMAL, "%s", r->name);

	if (r->origin == SB_STACK_MISSING)
		cell(&cells[TUI_COL_DOCKER], TUI_TONE_BAD, "missing");
	else if (!r->docker_known)
		cell(&cells[TUI_COL_DOCKER], TUI_TONE_DIM, "...");
	else
		cell(&cells[TUI_COL_DOCKER],
		     r->docker == SB_STATE_RUNNING   ? TUI_TONE_GOOD
		     : r->docker == SB_STATE_PARTIAL ? TUI_TONE_WARN
		     : r->docker == SB_STATE_STOPPED ? TUI_TONE_NORMAL
						     : TUI_TONE_BAD,
		     "%s", sb_stack_state_name(r->docker));

	if (!r->last.known) {
		cell(&cells[TUI_COL_LAST], TUI_TONE_DIM, "never");
		cell(&cells[TUI_COL_RESULT], TUI_TONE_DIM, "-");
	} else {
		char age[32];
		tui_format_age(now, r->last.time, age, sizeof(age));
		cell(&cells[TUI_COL_LAST], TUI_TONE_NORMAL, "%s", age);
		cell(&cells[TUI_COL_RESULT], result_tone(r->last.result), "%s", r->last.result);
	}

	if (r->snapshots < 0)
		cell(&cells[TUI_COL_SNAPS], TUI_TONE_DIM, "%5s", "...");
	else
		cell(&cells[TUI_COL_SNAPS], TUI_TONE_NORMAL, "%5ld", r->snapshots);
}

size_t tui_stack_details(const struct tui_stack_row *r, double now, char **lines,
			 enum tui_tone *tones, size_t max)
{
	size_t n = 0;
#define ADD(tone, ...)                                             \
	do {                                                       \
		if (n < max) {                                     \
			tones[n] = (tone);                         \
			lines[n++] = xasprintf(__VA_ARGS__);       \
		}                                                  \
	} while (0)
	ADD(TUI_TONE_NORMAL, "%s  %s%s", r->name, r->path,
	    r->origin == SB_STACK_NEW       ? "  (new: not in the dirlist yet)"
	    : r->origin == SB_STACK_MISSING ? "  (missing: directory or compose file gone)"
					    : "");
	if (r->conflict)
		ADD(TUI_TONE_BAD, "not touched: %s", r->conflict);
	if (!r->last.known) {
		ADD(TUI_TONE_DIM, "never backed up");
	} else {
		char age[32], when[32] = "unknown time", dur[32], down[32], added[32];
		tui_format_age(now, r->last.time, age, sizeof(age));
		if (r->last.time > 0)
			sb_format_time_utc((time_t)r->last.time, when, sizeof(when));
		sb_format_duration(r->last.duration_s, dur, sizeof(dur));
		sb_format_bytes(r->last.bytes_added, added, sizeof(added));
		if (r->last.has_downtime && r->last.downtime_s > 0)
			sb_format_duration(r->last.downtime_s, down, sizeof(down));
		else
			snprintf(down, sizeof(down), "none");
		ADD(result_tone(r->last.result), "last backup %s (%s): %s, took %s, downtime %s%s%.8s%s%s",
		    age, when, r->last.result, dur, down, r->last.snapshot[0] ? ", snapshot " : "",
		    r->last.snapshot, strcmp(r->last.result, "ok") == 0 ? ", added " : "",
		    strcmp(r->last.result, "ok") == 0 ? added : "");
		if (r->last.error)
			ADD(TUI_TONE_BAD, "error: %s", r->last.error);
	}
#undef ADD
	return n;
}

char *tui_stack_summary(const struct tui_stack_list *l)
{
	size_t enabled = 0;
	for (size_t i = 0; i < l->n; i++)
		enabled += l->rows[i].enabled;
	if (l->filter && *l->filter)
		return xasprintf("%zu of %zu stacks enabled, %zu shown (filter '%s')", enabled, l->n,
				 l->n_shown, l->filter);
	return xasprintf("%zu of %zu stacks enabled", enabled, l->n);
}

/* ---- a run ---- */

static void run_stack_free(struct tui_run_stack *s)
{
	free(s->name);
	free(s->error);
	free(s->snapshot);
}

void tui_run_free(struct tui_run_view *v)
{
	for (size_t i = 0; i < v->n_stacks; i++)
		run_stack_free(&v->stacks[i]);
	free(v->stacks);
	sb_strv_free(&v->log);
	free(v->error);
	free(v->summary);
	*v = (struct tui_run_view){0};
}

void tui_run_begin(struct tui_run_view *v, enum sb_job_kind kind, bool dry_run)
{
	tui_run_free(v);
	v->kind = kind;
	v->dry_run = dry_run;
	v->phase = TUI_RUN_STARTING;
	v->state = SB_JOB_QUEUED;
	v->progress.eta_s = -1;
	v->started_mono = sb_now_monotonic();
}

void tui_run_started(struct tui_run_view *v, int job_id, bool daemon)
{
	v->job_id = job_id;
	v->daemon = daemon;
	if (v->phase == TUI_RUN_STARTING)
		v->phase = TUI_RUN_RUNNING;
}

static struct tui_run_stack *run_stack(struct tui_run_view *v, const char *name)
{
	for (size_t i = 0; i < v->n_stacks; i++)
		if (strcmp(v->stacks[i].name, name) == 0)
			return &v->stacks[i];
	v->stacks = xrealloc(v->stacks, (v->n_stacks + 1) * sizeof(*v->stacks));
	struct tui_run_stack *s = &v->stacks[v->n_stacks++];
	*s = (struct tui_run_stack){.name = xstrdup(name)};
	return s;
}

void tui_run_progress(struct tui_run_view *v, enum sb_job_state st, const struct sb_job_progress *p)
{
	if (v->phase == TUI_RUN_STARTING && st != SB_JOB_QUEUED)
		v->phase = TUI_RUN_RUNNING;
	v->state = st;
	/* Only per-stack kinds name a stack; a new name means the last one's turn is over. */
	if (p->stack[0] && strcmp(p->stack, v->progress.stack) != 0) {
		if (v->progress.stack[0])
			run_stack(v, v->progress.stack)->finished = true;
		run_stack(v, p->stack);
	}
	v->progress = *p;
}

char *tui_log_line_short(const char *line)
{
	/* "2024-05-01T12:00:03Z info: ..." -> "12:00:03 info: ..." */
	struct tm tm;
	const char *end = strptime(line, "%Y-%m-%dT%H:%M:%SZ ", &tm);
	if (!end || strlen(line) < 21 || line[10] != 'T')
		return tui_sanitize(line);
	cleanup_free char *rest = tui_sanitize(end);
	return xasprintf("%.8s %s", line + 11, rest);
}

void tui_run_log(struct tui_run_view *v, const char *line)
{
	if (v->log.n >= TUI_RUN_LOG_KEEP) {
		free(v->log.v[0]);
		memmove(v->log.v, v->log.v + 1, (v->log.n - 1) * sizeof(char *));
		v->log.n--;
		v->log.v[v->log.n] = NULL;
	}
	sb_strv_push_owned(&v->log, tui_log_line_short(line));
}

void tui_run_reports(struct tui_run_view *v, struct sb_job *job)
{
	pthread_mutex_lock(&job->mu);
	bool final = sb_job_state_final(job->state);
	for (size_t i = 0; i < job->n_reports; i++) {
		const struct sb_stack_report *r = &job->reports[i];
		/*
		 * The engine lists a stack when its turn starts, as failed with
		 * no error until its real result is committed; a failure it
		 * commits always names its cause. Until the job ends, such a
		 * placeholder is not a result.
		 */
		if (!final && r->result == SB_STACK_FAILED && !r->error) {
			run_stack(v, r->name);
			continue;
		}
		struct tui_run_stack *s = run_stack(v, r->name);
		s->finished = true;
		s->has_result = true;
		s->result = r->result;
		free(s->error);
		s->error = r->error ? tui_sanitize(r->error) : NULL;
		free(s->snapshot);
		s->snapshot = xstrdup(r->snapshot_id);
		s->duration_s = r->duration_s;
		s->downtime_s = r->downtime_s;
		s->bytes_added = r->bytes_added;
	}
	pthread_mutex_unlock(&job->mu);
}

void tui_run_finished(struct tui_run_view *v, struct sb_job *job)
{
	tui_run_reports(v, job);
	pthread_mutex_lock(&job->mu);
	v->state = job->state;
	v->job_id = job->id;
	free(v->summary);
	v->summary = job->summary ? tui_sanitize(job->summary) : NULL;
	free(v->error);
	v->error = job->error ? tui_sanitize(job->error) : NULL;
	pthread_mutex_unlock(&job->mu);
	for (size_t i = 0; i < v->n_stacks; i++)
		v->stacks[i].finished = true;
	v->phase = TUI_RUN_DONE;
	v->finished_mono = sb_now_monotonic();
}

void tui_run_failed(struct tui_run_view *v, const char *err)
{
	free(v->error);
	v->error = tui_sanitize(err ? err : "the job could not run");
	v->phase = TUI_RUN_ERROR;
	v->state = SB_JOB_FAILED;
	v->finished_mono = sb_now_monotonic();
}

double tui_run_overall_percent(const struct tui_run_view *v)
{
	/* A finished job is whole only if it went through stacks; otherwise no bar at all. */
	if (v->phase == TUI_RUN_DONE || v->phase == TUI_RUN_ERROR)
		return v->n_stacks > 0 ? 100 : -1;
	const struct sb_job_progress *p = &v->progress;
	if (p->stack_count <= 0 || p->stack_index <= 0)
		return -1;
	double cur = p->percent >= 0 && p->percent <= 100 ? p->percent : 0;
	double pct = ((double)(p->stack_index - 1) + cur / 100.0) / (double)p->stack_count * 100.0;
	return pct > 100 ? 100 : pct;
}

const char *tui_run_kind_title(enum sb_job_kind kind)
{
	switch (kind) {
	case SB_JOB_BACKUP:
		return "Stage 1: back up the enabled stacks";
	case SB_JOB_SYNC:
		return "Stage 2: check the repository, sync it to the cloud";
	case SB_JOB_RESTORE:
		return "Stage 3: copy the repository back from the cloud";
	case SB_JOB_CHECK:
		return "check the repository";
	case SB_JOB_FORGET:
		return "Apply the retention policy";
	case SB_JOB_RESTORE_STACK:
		return "Put a stack back from a snapshot";
	}
	return "?";
}

char *tui_run_headline(const struct tui_run_view *v, enum tui_tone *tone)
{
	struct sb_buf b = {0};
	sb_buf_printf(&b, "%s%s", sb_job_kind_name(v->kind), v->dry_run ? " (dry run)" : "");
	if (v->job_id > 0)
		sb_buf_printf(&b, " job %d", v->job_id);
	if (v->phase != TUI_RUN_STARTING && v->phase != TUI_RUN_ERROR)
		sb_buf_puts(&b, v->daemon ? " through the daemon" : " in this process");
	*tone = TUI_TONE_NORMAL;
	switch (v->phase) {
	case TUI_RUN_IDLE:
	case TUI_RUN_STARTING:
		sb_buf_puts(&b, ": starting");
		break;
	case TUI_RUN_RUNNING:
		sb_buf_printf(&b, ": %s", sb_job_state_name(v->state));
		break;
	case TUI_RUN_DONE:
		sb_buf_printf(&b, ": %s", v->state == SB_JOB_OK ? "finished ok" : sb_job_state_name(v->state));
		*tone = v->state == SB_JOB_OK ? TUI_TONE_GOOD : TUI_TONE_BAD;
		break;
	case TUI_RUN_ERROR:
		sb_buf_puts(&b, ": could not run");
		*tone = TUI_TONE_BAD;
		break;
	}
	return sb_buf_steal(&b);
}

int tui_run_name_width(const struct tui_run_view *v)
{
	int w = 8;
	for (size_t i = 0; i < v->n_stacks; i++) {
		int n = tui_text_width(v->stacks[i].name);
		if (n > w)
			w = n;
	}
	return w > 24 ? 24 : w;
}

char *tui_run_stack_line(const struct tui_run_view *v, const struct tui_run_stack *s,
			 enum tui_tone *tone)
{
	struct sb_buf b = {0};
	sb_buf_printf(&b, "%-*s ", tui_run_name_width(v), s->name);
	if (!s->has_result) {
		bool current = !s->finished && strcmp(v->progress.stack, s->name) == 0 &&
			       v->phase == TUI_RUN_RUNNING;
		if (current) {
			sb_buf_printf(&b, "%s", v->progress.phase[0] ? v->progress.phase : "running");
			*tone = TUI_TONE_WARN;
		} else if (s->finished && v->phase == TUI_RUN_RUNNING) {
			sb_buf_puts(&b, "done, result at the end");
			*tone = TUI_TONE_DIM;
		} else if (v->phase == TUI_RUN_DONE || v->phase == TUI_RUN_ERROR) {
			sb_buf_puts(&b, "no result reported");
			*tone = TUI_TONE_BAD;
		} else {
			sb_buf_puts(&b, "waiting");
			*tone = TUI_TONE_DIM;
		}
		return sb_buf_steal(&b);
	}
	sb_buf_printf(&b, "%-8s", sb_stack_result_name(s->result));
	switch (s->result) {
	case SB_STACK_OK:
		*tone = TUI_TONE_GOOD;
		break;
	case SB_STACK_DRY_RUN:
		*tone = TUI_TONE_NORMAL;
		break;
	default:
		*tone = TUI_TONE_BAD;
		break;
	}
	char dur[32], down[32], added[32];
	sb_format_duration(s->duration_s, dur, sizeof(dur));
	sb_format_duration(s->downtime_s, down, sizeof(down));
	sb_format_bytes(s->bytes_added, added, sizeof(added));
	if (s->result == SB_STACK_OK) {
		if (s->snapshot)
			sb_buf_printf(&b, " snapshot %.8s,", s->snapshot);
		sb_buf_printf(&b, " %s, downtime %s, added %s", dur, s->downtime_s > 0 ? down : "none",
			      added);
	} else if (s->downtime_s > 0) {
		sb_buf_printf(&b, " downtime %s", down);
	}
	/* The error goes on its own lines (s->error): it is what the user must read whole. */
	while (b.len > 0 && b.data[b.len - 1] == ' ')
		b.data[--b.len] = '\0';
	return sb_buf_steal(&b);
}

/* ---- scrollable text ---- */

void tui_text_free(struct tui_text *t)
{
	sb_strv_free(&t->lines);
	free(t->search);
	*t = (struct tui_text){0};
}

static size_t max_top(const struct tui_text *t, int height)
{
	if (height < 1)
		height = 1;
	return t->lines.n > (size_t)height ? t->lines.n - (size_t)height : 0;
}

void tui_text_set(struct tui_text *t, const char *text, bool keep_pos, bool tail, int height)
{
	sb_strv_free(&t->lines);
	const char *p = text ? text : "";
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		cleanup_free char *line = xstrndup(p, len);
		sb_strv_push_owned(&t->lines, tui_sanitize(line));
		p += len + (nl ? 1 : 0);
	}
	if (t->match >= t->lines.n)
		t->has_match = false;
	if (!keep_pos)
		t->top = tail ? max_top(t, height) : 0;
	if (t->top > max_top(t, height))
		t->top = max_top(t, height);
}

void tui_text_scroll(struct tui_text *t, long delta, int height)
{
	long top = (long)t->top + delta;
	if (top < 0)
		top = 0;
	if ((size_t)top > max_top(t, height))
		top = (long)max_top(t, height);
	t->top = (size_t)top;
}

void tui_text_jump(struct tui_text *t, bool end, int height)
{
	t->top = end ? max_top(t, height) : 0;
}

bool tui_text_search(struct tui_text *t, const char *pattern, bool backward, int height)
{
	if (pattern) {
		free(t->search);
		t->search = xstrdup(pattern);
	}
	if (!t->search || !*t->search || t->lines.n == 0)
		return false;
	size_t n = t->lines.n;
	/* Start next to the last hit, or at the top of the view. */
	size_t from = t->has_match ? t->match : (backward ? t->top : t->top + n - 1);
	for (size_t k = 1; k <= n; k++) {
		size_t i = backward ? (from + n - k) % n : (from + k) % n;
		if (!strcasestr(t->lines.v[i], t->search))
			continue;
		t->match = i;
		t->has_match = true;
		if (height < 1)
			height = 1;
		if (i < t->top || i >= t->top + (size_t)height) {
			/* Show the hit a third of the way down, with context above it. */
			size_t above = (size_t)height / 3;
			t->top = i > above ? i - above : 0;
			if (t->top > max_top(t, height))
				t->top = max_top(t, height);
		}
		return true;
	}
	t->has_match = false;
	return false;
}

/* ---- health ---- */

char *tui_health_line(const struct sb_doctor_check *c, const char *title, int title_w,
		      enum tui_tone *tone)
{
	cleanup_free char *t = tui_fit(c && c->title ? c->title : title ? title : "?", title_w, false);
	if (!c) {
		*tone = TUI_TONE_DIM;
		return xasprintf("%-8s %s  checking", "...", t);
	}
	switch (c->result) {
	case SB_DOCTOR_OK:
		*tone = TUI_TONE_GOOD;
		break;
	case SB_DOCTOR_WARNING:
		*tone = TUI_TONE_WARN;
		break;
	case SB_DOCTOR_FAILED:
		*tone = TUI_TONE_BAD;
		break;
	case SB_DOCTOR_SKIPPED:
	default:
		*tone = TUI_TONE_DIM;
		break;
	}
	cleanup_free char *detail = tui_sanitize(c->detail ? c->detail : "");
	return xasprintf("%-8s %s  %s", sb_doctor_result_name(c->result), t, detail);
}

char *tui_health_summary(const struct sb_doctor_check *checks, const bool *done, size_t n,
			 bool running, enum tui_tone *tone)
{
	size_t finished = 0, failed = 0, warned = 0;
	for (size_t i = 0; i < n; i++) {
		if (!done[i])
			continue;
		finished++;
		failed += checks[i].result == SB_DOCTOR_FAILED;
		warned += checks[i].result == SB_DOCTOR_WARNING;
	}
	if (failed > 0) {
		*tone = TUI_TONE_BAD;
		return xasprintf("%zu of %zu checks failed%s", failed, n, running ? " so far" : "");
	}
	if (running || finished < n) {
		*tone = TUI_TONE_DIM;
		return xasprintf("checking: %zu of %zu done", finished, n);
	}
	if (warned > 0) {
		*tone = TUI_TONE_WARN;
		return xasprintf("all %zu checks pass, %zu with a warning", n, warned);
	}
	*tone = TUI_TONE_GOOD;
	return xasprintf("all %zu checks pass", n);
}

/* ---- snapshots ---- */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void tui_snapshot_stacks(const struct sb_selection *sel, const struct sb_strv *with_snapshots,
			 struct sb_strv *out)
{
	for (size_t i = 0; sel && i < sel->n; i++)
		if (!sb_strv_contains(out, sel->stacks[i].name))
			sb_strv_push(out, sel->stacks[i].name);
	size_t first_extra = out->n;
	for (size_t i = 0; with_snapshots && i < with_snapshots->n; i++)
		if (!sb_strv_contains(out, with_snapshots->v[i]))
			sb_strv_push(out, with_snapshots->v[i]);
	if (out->n > first_extra)
		qsort(out->v + first_extra, out->n - first_extra, sizeof(char *), cmp_str);
}

char *tui_snapshot_line(const struct sb_snapview_snap *s)
{
	char when[32] = "unknown time";
	if (s->time > 0) {
		struct tm tm;
		gmtime_r(&s->time, &tm);
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	}
	return xasprintf("%s  %s", when, s->short_id);
}

static char type_char(mode_t m)
{
	return S_ISDIR(m) ? 'd' : S_ISLNK(m) ? 'l' : S_ISREG(m) ? '-' : S_ISFIFO(m) ? 'p' : S_ISSOCK(m) ? 's'
	       : S_ISCHR(m) ? 'c' : S_ISBLK(m) ? 'b' : '?';
}

char *tui_tree_entry_line(const struct sb_snaptree *t, sb_snode_id id)
{
	struct stat st;
	sb_snaptree_stat(t, id, &st);
	char perms[10];
	static const char rwx[] = "rwxrwxrwx";
	for (int i = 0; i < 9; i++)
		perms[i] = st.st_mode & (0400 >> i) ? rwx[i] : '-';
	perms[9] = '\0';
	char size[32] = "";
	if (S_ISREG(st.st_mode))
		sb_format_bytes((uint64_t)st.st_size, size, sizeof(size));
	char when[32] = "";
	struct tm tm;
	time_t mt = st.st_mtime;
	if (gmtime_r(&mt, &tm))
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M", &tm);
	cleanup_free char *name = tui_sanitize(sb_snaptree_name(t, id));
	const char *link = S_ISLNK(st.st_mode) ? sb_snaptree_link(t, id) : NULL;
	cleanup_free char *target = link ? tui_sanitize(link) : NULL;
	return xasprintf("%c%s %10s  %s  %s%s%s%s", type_char(st.st_mode), perms, size, when, name,
			 S_ISDIR(st.st_mode) ? "/" : "", target ? " -> " : "", target ? target : "");
}

char *tui_copy_destination(const char *dir, const char *name, const char *home)
{
	cleanup_free char *base = NULL;
	if (home && *home && (strcmp(dir, "~") == 0 || sb_str_has_prefix(dir, "~/")))
		base = xasprintf("%s%s", home, dir + 1);
	else
		base = xstrdup(dir);
	size_t len = strlen(base);
	while (len > 1 && base[len - 1] == '/')
		base[--len] = '\0';
	if (!name || !*name)
		return xstrdup(base);
	return xasprintf("%s%s%s", base, strcmp(base, "/") == 0 ? "" : "/", name);
}
