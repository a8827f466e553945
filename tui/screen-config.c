/*
 * The Config screen: the files that were loaded, every problem found in
 * them as FILE:LINE (errors red, warnings yellow), and the effective
 * configuration with secrets masked (sb_config_show(), the text of
 * `stackback config show`). `r` validates the files again, for a user
 * editing them in another window; the TUI keeps running on what it
 * loaded at start, since jobs and background tasks hold that one.
 */
#include <stdlib.h>
#include <string.h>

#include "tui.h"

struct config_screen {
	struct tui_pager pager;
	bool reloaded;       /* the text shows a fresh validation, not the running one */
};

static void diag_lines(struct sb_buf *b, const struct sb_diags *d)
{
	size_t errors = sb_diags_count(d, SB_DIAG_ERROR);
	size_t warnings = sb_diags_count(d, SB_DIAG_WARNING);
	if (errors == 0 && warnings == 0) {
		sb_buf_puts(b, "Validation: no problems found\n");
		return;
	}
	sb_buf_printf(b, "Validation: %zu error(s), %zu warning(s)%s\n", errors, warnings,
		      errors ? " - jobs cannot run until the errors are fixed" : "");
	for (size_t i = 0; i < d->n; i++) {
		const struct sb_diag *g = &d->v[i];
		const char *sev = g->severity == SB_DIAG_ERROR ? "error" : "warning";
		if (g->line > 0)
			sb_buf_printf(b, "  %s:%d: %s: %s\n", g->file, g->line, sev, g->message);
		else
			sb_buf_printf(b, "  %s: %s: %s\n", g->file, sev, g->message);
	}
}

static void render(struct config_screen *c, struct tui *t, const struct sb_config *cfg,
		   const struct sb_diags *d, bool fresh)
{
	struct sb_buf b = {0};
	sb_buf_puts(&b, "Files:");
	for (size_t i = 0; i < t->config_paths.n; i++)
		sb_buf_printf(&b, " %s", t->config_paths.v[i]);
	sb_buf_puts(&b, "\n");
	if (fresh)
		sb_buf_puts(&b, "(validated again just now; restart the TUI to use changes)\n");
	diag_lines(&b, d);
	sb_buf_puts(&b, "\nEffective configuration (secrets masked):\n");
	cleanup_free char *show = sb_config_show(cfg);
	const char *p = show;
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		sb_buf_puts(&b, "  ");
		sb_buf_append(&b, p, len);
		sb_buf_puts(&b, "\n");
		p += len + (nl ? 1 : 0);
	}
	tui_pager_set(&c->pager, b.data, false);
	sb_buf_free(&b);
	c->reloaded = fresh;
}

static void *config_init(struct tui *t)
{
	struct config_screen *c = xcalloc(1, sizeof(*c));
	render(c, t, &t->cfg, &t->diags, false);
	return c;
}

static void config_free(void *data)
{
	struct config_screen *c = data;
	tui_pager_free(&c->pager);
	free(c);
}

static void config_resize(void *data, struct tui *t)
{
	(void)data;
	(void)t;
}

static void config_update(void *data, struct tui *t)
{
	(void)data;
	(void)t;
}

static void revalidate(struct config_screen *c, struct tui *t)
{
	extern char **environ;
	struct sb_config cfg;
	struct sb_diags d = {0};
	sb_config_load(&cfg, (const char *const *)t->config_paths.v, t->config_paths.n, environ, &d);
	render(c, t, &cfg, &d, true);
	size_t errors = sb_diags_count(&d, SB_DIAG_ERROR);
	tui_message(t, errors ? TUI_TONE_BAD : TUI_TONE_GOOD, "validated: %zu error(s), %zu warning(s)",
		    errors, sb_diags_count(&d, SB_DIAG_WARNING));
	sb_diags_free(&d);
	sb_config_free(&cfg);
}

static bool config_key(void *data, struct tui *t, const struct tui_key *k)
{
	struct config_screen *c = data;
	if (!c->pager.search.active && tui_key_is(k, 'r')) {
		revalidate(c, t);
		return true;
	}
	return tui_pager_key(t, &c->pager, k);
}

static void config_draw(void *data, struct tui *t, const struct tui_rect *r)
{
	struct config_screen *c = data;
	tui_pager_draw(t, &c->pager, r);
}

static const char *config_footer(void *data, struct tui *t)
{
	struct config_screen *c = data;
	(void)t;
	if (c->pager.search.active)
		return "type text to find  enter:search esc:cancel";
	return "arrows/pgup/pgdn:scroll /:search n/N:next/prev r:validate again q:quit";
}

const struct tui_screen tui_screen_config = {
	.name = "Config",
	.init = config_init,
	.free = config_free,
	.resize = config_resize,
	.key = config_key,
	.update = config_update,
	.draw = config_draw,
	.footer = config_footer,
};
