/*
 * Progress display. The bar is redrawn with "\r" and cleared with
 * "\033[K"; it is cut to the terminal's width because a wrapped line
 * can no longer be redrawn in place.
 */
#include "progress.h"

#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "stackback/log.h"
#include "stackback/util.h"

void cli_progress_init(struct cli_progress *pg, bool json)
{
	memset(pg, 0, sizeof(*pg));
	if (json)
		pg->mode = CLI_PROGRESS_NONE;
	else
		pg->mode = isatty(STDERR_FILENO) ? CLI_PROGRESS_BAR : CLI_PROGRESS_LINES;
}

void cli_format_eta(double seconds, char *buf, size_t size)
{
	if (seconds < 0 || seconds != seconds || seconds > 1e9) {
		snprintf(buf, size, "%s", "");
		return;
	}
	unsigned long s = (unsigned long)(seconds + 0.5);
	if (s >= 3600)
		snprintf(buf, size, "%luh%02lum", s / 3600, (s % 3600) / 60);
	else
		snprintf(buf, size, "%lum%02lus", s / 60, s % 60);
}

/* "[2/3] web  backup" for the bar, "[2/3] web: backup" as a log line. */
static void format_step(const struct sb_job_progress *p, const char *sep, struct sb_buf *b)
{
	if (p->stack_index > 0 && p->stack_count > 0)
		sb_buf_printf(b, "[%d/%d] ", p->stack_index, p->stack_count);
	if (p->stack[0])
		sb_buf_puts(b, p->stack);
	if (p->phase[0])
		sb_buf_printf(b, "%s%s", p->stack[0] ? sep : "", p->phase);
}

void cli_progress_format(const struct sb_job_progress *p, char *buf, size_t size)
{
	struct sb_buf b = {0};
	format_step(p, "  ", &b);
	if (b.len)
		sb_buf_puts(&b, "  ");
	bool counting = p->percent > 0 || p->bytes_done > 0 || p->bytes_total > 0;
	if (counting)
		sb_buf_printf(&b, "%.0f%% ", p->percent);
	if (p->bytes_total > 0) {
		char done[32], total[32];
		sb_format_bytes(p->bytes_done, done, sizeof(done));
		sb_format_bytes(p->bytes_total, total, sizeof(total));
		sb_buf_printf(&b, "%s/%s  ", done, total);
	} else if (p->bytes_done > 0) {
		char done[32];
		sb_format_bytes(p->bytes_done, done, sizeof(done));
		sb_buf_printf(&b, "%s  ", done);
	}
	char eta[32];
	cli_format_eta(p->eta_s, eta, sizeof(eta));
	if (counting && eta[0])
		sb_buf_printf(&b, "eta %s", eta);
	/* The separators trail; a bar ends with its last word. */
	while (b.len > 0 && b.data[b.len - 1] == ' ')
		b.data[--b.len] = '\0';
	snprintf(buf, size, "%s", b.data ? b.data : "");
	sb_buf_free(&b);
}

static size_t terminal_width(void)
{
	struct winsize ws;
	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1)
		return ws.ws_col;
	return 80;
}

static void draw(struct cli_progress *pg)
{
	size_t width = terminal_width() - 1;
	size_t len = strlen(pg->bar);
	fprintf(stderr, "\r\033[K%.*s", (int)(len < width ? len : width), pg->bar);
	fflush(stderr);
	pg->drawn = true;
}

static void clear(struct cli_progress *pg)
{
	if (!pg->drawn)
		return;
	fputs("\r\033[K", stderr);
	fflush(stderr);
	pg->drawn = false;
}

void cli_progress_update(struct cli_progress *pg, enum sb_job_state state,
			 const struct sb_job_progress *p)
{
	switch (pg->mode) {
	case CLI_PROGRESS_NONE:
		return;
	case CLI_PROGRESS_BAR:
		if (sb_job_state_final(state)) {
			clear(pg);
			return;
		}
		if (state == SB_JOB_QUEUED)
			snprintf(pg->bar, sizeof(pg->bar), "%s", "queued, waiting for the running job");
		else
			cli_progress_format(p, pg->bar, sizeof(pg->bar));
		if (pg->bar[0])
			draw(pg);
		return;
	case CLI_PROGRESS_LINES: {
		if (state != SB_JOB_RUNNING)
			return;
		struct sb_buf b = {0};
		format_step(p, ": ", &b);
		if (b.len && strcmp(b.data, pg->last_step) != 0) {
			snprintf(pg->last_step, sizeof(pg->last_step), "%s", b.data);
			fprintf(stderr, "stackback: %s\n", b.data);
		}
		sb_buf_free(&b);
		return;
	}
	}
}

void cli_progress_log(struct cli_progress *pg, const char *line)
{
	bool redraw = pg->drawn;
	clear(pg);
	cleanup_free char *shown = cli_format_log_line(line);
	fprintf(stderr, "%s\n", shown);
	if (redraw)
		draw(pg);
	else
		fflush(stderr);
}

void cli_progress_done(struct cli_progress *pg)
{
	clear(pg);
}

char *cli_format_log_line(const char *line)
{
	/* "2024-05-01T02:00:00Z info: text" */
	const char *sp = strchr(line, ' ');
	if (!sp || sp - line != 20 || line[19] != 'Z' || line[10] != 'T')
		return xstrdup(line);
	const char *rest = sp + 1;
	const char *colon = strstr(rest, ": ");
	if (!colon)
		return xstrdup(line);
	cleanup_free char *level_name = xstrndup(rest, (size_t)(colon - rest));
	enum sb_log_level level;
	if (sb_log_level_parse(level_name, &level) < 0)
		return xstrdup(line);
	if (level <= SB_LOG_WARNING)
		return xasprintf("stackback: %s: %s", level_name, colon + 2);
	return xasprintf("stackback: %s", colon + 2);
}
