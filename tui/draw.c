/*
 * Drawing helpers shared by the screens: tones to colours, fitted text,
 * bars, scrollable text and the one-line editor. Text is fitted by
 * view.c, so nothing here decides what is shown.
 */
#include <stdlib.h>
#include <string.h>

#include "tui.h"

/* Colour pairs, one per tone, plus the bars and the title. */
enum {
	PAIR_GOOD = 1,
	PAIR_BAD,
	PAIR_WARN,
	PAIR_DIM,
	PAIR_BAR,
	PAIR_TITLE,
};

void tui_colors_init(struct tui *t)
{
	t->colors = has_colors();
	if (!t->colors)
		return;
	start_color();
	/* -1: the terminal's own background, so the TUI looks native in light and dark themes. */
	short bg = use_default_colors() == OK ? -1 : COLOR_BLACK;
	init_pair(PAIR_GOOD, COLOR_GREEN, bg);
	init_pair(PAIR_BAD, COLOR_RED, bg);
	init_pair(PAIR_WARN, COLOR_YELLOW, bg);
	init_pair(PAIR_DIM, COLORS >= 16 ? 8 : COLOR_BLUE, bg);
	init_pair(PAIR_BAR, COLOR_CYAN, bg);
	init_pair(PAIR_TITLE, COLOR_WHITE, COLOR_BLUE);
}

attr_t tui_tone_attr(const struct tui *t, enum tui_tone tone)
{
	/* Without colours, tones still differ: bold for failures, dim for the unimportant. */
	switch (tone) {
	case TUI_TONE_GOOD:
		return t->colors ? COLOR_PAIR(PAIR_GOOD) : A_NORMAL;
	case TUI_TONE_BAD:
		return t->colors ? (COLOR_PAIR(PAIR_BAD) | A_BOLD) : A_BOLD;
	case TUI_TONE_WARN:
		return t->colors ? COLOR_PAIR(PAIR_WARN) : A_NORMAL;
	case TUI_TONE_DIM:
		return t->colors ? COLOR_PAIR(PAIR_DIM) : A_DIM;
	case TUI_TONE_NORMAL:
		break;
	}
	return A_NORMAL;
}

attr_t tui_bar_attr(const struct tui *t)
{
	return t->colors ? COLOR_PAIR(PAIR_TITLE) : A_REVERSE;
}

attr_t tui_heading_attr(const struct tui *t)
{
	(void)t;
	return A_BOLD | A_UNDERLINE;
}

void tui_put_attr(struct tui *t, int y, int x, int width, const char *text, attr_t attr)
{
	if (y < 0 || y >= t->rows || x >= t->cols || width <= 0)
		return;
	if (x + width > t->cols)
		width = t->cols - x;
	cleanup_free char *fitted = tui_fit(text, width, t->utf8);
	attron(attr);
	mvaddstr(y, x, fitted);
	attroff(attr);
}

void tui_put(struct tui *t, int y, int x, int width, const char *text, enum tui_tone tone)
{
	tui_put_attr(t, y, x, width, text, tui_tone_attr(t, tone));
}

void tui_put_rule(struct tui *t, int y, int width, const char *title)
{
	struct sb_buf b = {0};
	const char *dash = t->utf8 ? "\xe2\x94\x80" : "-";
	int used = 0;
	if (title) {
		sb_buf_printf(&b, "%s%s %s ", dash, dash, title);
		used = 4 + tui_text_width(title);
	}
	for (; used < width; used++)
		sb_buf_puts(&b, dash);
	tui_put(t, y, 0, width, b.data ? b.data : "", TUI_TONE_DIM);
	sb_buf_free(&b);
}

void tui_put_bar(struct tui *t, int y, int x, int width, double percent)
{
	if (width <= 0)
		return;
	cleanup_free char *bar = tui_progress_bar(percent, width, t->utf8);
	attr_t a = t->colors ? COLOR_PAIR(PAIR_BAR) : A_NORMAL;
	tui_put_attr(t, y, x, width, bar, a);
}

void tui_put_text(struct tui *t, const struct tui_rect *r, const struct tui_text *tt)
{
	for (int i = 0; i < r->h; i++) {
		size_t line = tt->top + (size_t)i;
		if (line >= tt->lines.n)
			break;
		const char *s = tt->lines.v[line];
		attr_t a = A_NORMAL;
		if (tt->has_match && tt->match == line)
			a = A_REVERSE;
		else if (strstr(s, " error: ") || strstr(s, "error:") == s)
			a = tui_tone_attr(t, TUI_TONE_BAD);
		else if (strstr(s, " warning: ") || strstr(s, "warning:") == s)
			a = tui_tone_attr(t, TUI_TONE_WARN);
		tui_put_attr(t, r->y + i, r->x, r->w, s, a);
	}
}

bool tui_text_key(struct tui_text *tt, const struct tui_key *k, int height)
{
	long page = height > 1 ? height - 1 : 1;
	if (k->fn) {
		switch (k->code) {
		case KEY_UP:
			tui_text_scroll(tt, -1, height);
			return true;
		case KEY_DOWN:
			tui_text_scroll(tt, 1, height);
			return true;
		case KEY_PPAGE:
			tui_text_scroll(tt, -page, height);
			return true;
		case KEY_NPAGE:
			tui_text_scroll(tt, page, height);
			return true;
		case KEY_HOME:
			tui_text_jump(tt, false, height);
			return true;
		case KEY_END:
			tui_text_jump(tt, true, height);
			return true;
		default:
			return false;
		}
	}
	switch (k->code) {
	case 'k':
		tui_text_scroll(tt, -1, height);
		return true;
	case 'j':
		tui_text_scroll(tt, 1, height);
		return true;
	case ' ':
		tui_text_scroll(tt, page, height);
		return true;
	case 'g':
		tui_text_jump(tt, false, height);
		return true;
	case 'G':
		tui_text_jump(tt, true, height);
		return true;
	default:
		return false;
	}
}

void tui_input_begin(struct tui_input *in, const char *prompt, const char *initial)
{
	in->active = true;
	in->prompt = prompt;
	tui_line_set(&in->line, initial ? initial : "");
}

enum tui_input_result tui_input_key(struct tui_input *in, const struct tui_key *k)
{
	if (k->fn) {
		switch (k->code) {
		case KEY_ENTER:
			in->active = false;
			return TUI_INPUT_DONE;
		case KEY_BACKSPACE:
			return tui_line_backspace(&in->line) ? TUI_INPUT_EDITED : TUI_INPUT_MOVED;
		default:
			return TUI_INPUT_MOVED;
		}
	}
	switch (k->code) {
	case '\n':
	case '\r':
		in->active = false;
		return TUI_INPUT_DONE;
	case 27: /* Escape */
		in->active = false;
		return TUI_INPUT_CANCELLED;
	case 127:
	case 8:
		return tui_line_backspace(&in->line) ? TUI_INPUT_EDITED : TUI_INPUT_MOVED;
	case 21: /* ^U: clear the line, as in a shell */
		tui_line_set(&in->line, "");
		return TUI_INPUT_EDITED;
	default:
		return tui_line_insert(&in->line, (wchar_t)k->code) ? TUI_INPUT_EDITED : TUI_INPUT_MOVED;
	}
}

void tui_input_draw(struct tui *t, const struct tui_input *in, int y)
{
	cleanup_free char *s = xasprintf("%s%s", in->prompt, in->line.text);
	tui_put_attr(t, y, 0, t->cols, s, A_BOLD);
	int x = tui_text_width(s);
	if (x < t->cols) {
		move(y, x);
		curs_set(1);
	}
}

bool tui_pager_key(struct tui *t, struct tui_pager *pg, const struct tui_key *k)
{
	int h = pg->height > 0 ? pg->height : 1;
	if (pg->search.active) {
		enum tui_input_result r = tui_input_key(&pg->search, k);
		if (r == TUI_INPUT_DONE && pg->search.line.len > 0) {
			pg->text.has_match = false;
			if (!tui_text_search(&pg->text, pg->search.line.text, false, h))
				tui_message(t, TUI_TONE_WARN, "not found: %s", pg->search.line.text);
		}
		return true;
	}
	/* Keys that arrive before the first draw: the end is where the text will be wrapped. */
	if (pg->wrap_w == 0 && ((k->fn && k->code == KEY_END) || tui_key_is(k, 'G'))) {
		pg->follow = true;
		return true;
	}
	if (tui_text_key(&pg->text, k, h))
		return true;
	if (k->fn)
		return false;
	switch (k->code) {
	case '/':
		tui_input_begin(&pg->search, "search: ", pg->text.search);
		return true;
	case 'n':
	case 'N':
		if (!pg->text.search)
			tui_message(t, TUI_TONE_DIM, "no search yet: / starts one");
		else if (!tui_text_search(&pg->text, NULL, k->code == 'N', h))
			tui_message(t, TUI_TONE_WARN, "not found: %s", pg->text.search);
		return true;
	default:
		return false;
	}
}

void tui_pager_set(struct tui_pager *pg, const char *text, bool follow)
{
	free(pg->raw);
	pg->raw = xstrdup(text ? text : "");
	pg->wrap_w = 0;
	pg->follow = follow;
}

bool tui_pager_at_end(const struct tui_pager *pg)
{
	size_t h = (size_t)(pg->height > 0 ? pg->height : 1);
	return pg->text.lines.n <= h || pg->text.top + h >= pg->text.lines.n;
}

void tui_pager_draw(struct tui *t, struct tui_pager *pg, const struct tui_rect *r)
{
	struct tui_rect tr = *r;
	/* The same left margin as the other screens' text. */
	tr.x = r->x + 1;
	tr.w = r->w - 1;
	if (pg->search.active)
		tr.h--;
	pg->height = tr.h > 0 ? tr.h : 1;
	/* Long lines wrap, so an error's cause at the end of its line is read whole. */
	if (pg->wrap_w != tr.w && pg->raw) {
		bool follow = pg->follow || (pg->wrap_w > 0 && tui_pager_at_end(pg));
		cleanup_free char *wrapped = tui_wrap_text(pg->raw, tr.w > 1 ? tr.w : 1);
		tui_text_set(&pg->text, wrapped, !follow, follow, pg->height);
		pg->wrap_w = tr.w;
		pg->follow = false;
	}
	tui_text_scroll(&pg->text, 0, pg->height);
	tui_put_text(t, &tr, &pg->text);
	if (pg->search.active)
		tui_input_draw(t, &pg->search, r->y + r->h - 1);
}

void tui_pager_free(struct tui_pager *pg)
{
	tui_text_free(&pg->text);
	free(pg->raw);
	pg->raw = NULL;
}
