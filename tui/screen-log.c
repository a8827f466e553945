/*
 * The Log screen: STATE_DIR/log, the file the daemon and in-process
 * runs append to (its rotated predecessor log.1 is not shown), or this
 * session's own lines (`s`), which include dry runs, since those never
 * write the file. Scrollable and searchable; it follows the end while
 * the view is at the end, and stays put once the user scrolls back.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "stackback/log.h"
#include "tui.h"

/* Only the end of a big log is read: the screen is for recent events. */
#define LOG_TAIL_MAX (1u << 20)

struct log_screen {
	struct tui_pager pager;
	bool session;          /* show this process's ring instead of the file */
	char *path;
	struct stat st;        /* of the file as last read */
	bool have_st;
	char *note;            /* why there is nothing to show */
	size_t ring_len;       /* bytes of the ring as last shown */
};

/* Reads up to the last LOG_TAIL_MAX bytes of path, from a line start. */
static int read_tail(const char *path, char **out)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	if (fseeko(f, 0, SEEK_END) < 0) {
		int e = errno;
		fclose(f);
		return -e;
	}
	off_t size = ftello(f);
	off_t from = size > (off_t)LOG_TAIL_MAX ? size - (off_t)LOG_TAIL_MAX : 0;
	fseeko(f, from, SEEK_SET);
	struct sb_buf b = {0};
	char buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		sb_buf_append(&b, buf, n);
	fclose(f);
	char *text = sb_buf_steal(&b);
	if (!text)
		text = xstrdup("");
	if (from > 0) {
		/* Drop the partial first line. */
		char *nl = strchr(text, '\n');
		char *rest = nl ? nl + 1 : text + strlen(text);
		memmove(text, rest, strlen(rest) + 1);
	}
	*out = text;
	return 0;
}

static void refresh_file(struct log_screen *l, bool force)
{
	struct stat st;
	if (stat(l->path, &st) < 0) {
		free(l->note);
		l->note = xasprintf("no log yet at %s (jobs write it; dry runs do not: s shows this session)",
				    l->path);
		l->have_st = false;
		tui_pager_set(&l->pager, "", false);
		return;
	}
	if (!force && l->have_st && st.st_ino == l->st.st_ino && st.st_size == l->st.st_size &&
	    st.st_mtim.tv_sec == l->st.st_mtim.tv_sec && st.st_mtim.tv_nsec == l->st.st_mtim.tv_nsec)
		return;
	bool follow = tui_pager_at_end(&l->pager);
	cleanup_free char *text = NULL;
	int rc = read_tail(l->path, &text);
	free(l->note);
	l->note = rc < 0 ? xasprintf("cannot read %s: %s", l->path, strerror(-rc)) : NULL;
	l->st = st;
	l->have_st = rc == 0;
	tui_pager_set(&l->pager, text ? text : "", follow);
}

static void refresh_ring(struct log_screen *l, bool force)
{
	cleanup_free char *text = sb_log_ring_dump();
	size_t len = text ? strlen(text) : 0;
	if (!force && len == l->ring_len)
		return;
	l->ring_len = len;
	bool follow = tui_pager_at_end(&l->pager);
	free(l->note);
	l->note = len ? NULL : xstrdup("nothing logged in this session yet");
	tui_pager_set(&l->pager, text ? text : "", follow);
}

static void reread(struct log_screen *l, bool force)
{
	if (l->session)
		refresh_ring(l, force);
	else
		refresh_file(l, force);
}

static void *log_init(struct tui *t)
{
	struct log_screen *l = xcalloc(1, sizeof(*l));
	l->path = xasprintf("%s/log", t->cfg.state_dir ? t->cfg.state_dir : ".");
	l->pager.height = t->rows - 4;
	reread(l, true);
	return l;
}

static void log_free(void *data)
{
	struct log_screen *l = data;
	tui_pager_free(&l->pager);
	free(l->path);
	free(l->note);
	free(l);
}

static void log_resize(void *data, struct tui *t)
{
	(void)data;
	(void)t;
}

static void log_update(void *data, struct tui *t)
{
	(void)t;
	reread(data, false);
}

static bool log_key(void *data, struct tui *t, const struct tui_key *k)
{
	struct log_screen *l = data;
	if (!l->pager.search.active && tui_key_is(k, 's')) {
		l->session = !l->session;
		l->pager.text.has_match = false;
		reread(l, true);
		/* Start at the end of the new source. */
		l->pager.follow = true;
		tui_message(t, TUI_TONE_DIM, "showing %s", l->session ? "this session's log" : l->path);
		return true;
	}
	return tui_pager_key(t, &l->pager, k);
}

static void log_draw(void *data, struct tui *t, const struct tui_rect *r)
{
	struct log_screen *l = data;
	cleanup_free char *head = xasprintf("%s  (%zu lines)", l->session ? "this session" : l->path,
					    l->pager.text.lines.n);
	tui_put_attr(t, r->y, 1, r->w - 1, head, A_BOLD);
	if (l->note)
		tui_put(t, r->y + 1, 1, r->w - 1, l->note, TUI_TONE_DIM);
	struct tui_rect tr = {.y = r->y + 1 + (l->note ? 1 : 0), .x = 0, .w = r->w,
			      .h = r->h - 1 - (l->note ? 1 : 0)};
	tui_pager_draw(t, &l->pager, &tr);
}

static const char *log_footer(void *data, struct tui *t)
{
	struct log_screen *l = data;
	(void)t;
	if (l->pager.search.active)
		return "type text to find  enter:search esc:cancel";
	return "arrows/pgup/pgdn:scroll g/G:start/end /:search n/N:next s:source q:quit";
}

const struct tui_screen tui_screen_log = {
	.name = "Log",
	.init = log_init,
	.free = log_free,
	.resize = log_resize,
	.key = log_key,
	.update = log_update,
	.draw = log_draw,
	.footer = log_footer,
};
