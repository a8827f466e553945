/*
 * What endwin() would send to the terminal, captured once at start so
 * that the crash-signal handler can restore the terminal with write()
 * alone. Kept apart because <term.h> defines capability macros
 * (lines, columns, tone...) that clash with ordinary identifiers.
 */
#include "tui.h"

#include <string.h>
#include <term.h>

size_t tui_terminal_reset_sequence(char *buf, size_t size)
{
	static const char *const caps[] = {"sgr0", "cnorm", "rmcup"};
	size_t len = 0;
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
		const char *s = tigetstr(caps[i]);
		if (!s || s == (const char *)-1)
			continue;
		size_t n = strlen(s);
		if (len + n >= size)
			break;
		memcpy(buf + len, s, n);
		len += n;
	}
	return len;
}
