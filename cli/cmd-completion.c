/*
 * stackback completion: the bash completion script, generated from the
 * command table (each command's usage and option lines), so a new
 * command or option completes without anyone editing a script; and the
 * stack names the script offers where a usage says NAME.
 *
 * Try it: source <(stackback completion bash); stackback backup --<TAB>
 */
#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "stackback/stacks.h"

static int cmd_completion_exec(struct cli_ctx *ctx, int argc, char **argv);

const struct cli_cmd cmd_completion = {
	.name = "completion",
	.usage = "bash | stacks",
	.summary = "print the bash completion script, or the stack names it completes",
	.help = "  bash     the completion script for bash, generated from this program's\n"
		"           command table; installed as\n"
		"           share/bash-completion/completions/stackback. To try it:\n"
		"           source <(stackback completion bash)\n"
		"  stacks   the stack names, one per line (the script calls it with the\n"
		"           -c files on the command line being completed)\n\n"
		"Exit status: 0 ok, 1 failure (stacks: no usable configuration), 2 usage.\n",
	/* The script needs no configuration; `stacks` loads it itself. */
	.needs_config = false,
	.exec = cmd_completion_exec,
};

/* What a command line may hold, as read from a usage string and option lines. */
struct spec {
	struct sb_strv opts;    /* every option word, e.g. "--dry-run", "-R" */
	struct sb_strv valued;  /* "--to DIR": the options taking a value, then their value word */
	bool stacks;            /* a NAME operand */
	bool files;             /* a PATH, DIR or FILE operand */
};

static void spec_free(struct spec *s)
{
	sb_strv_free(&s->opts);
	sb_strv_free(&s->valued);
}

static bool is_word_char(char c)
{
	return isalnum((unsigned char)c) || c == '-' || c == '_';
}

/* An upper-case placeholder such as DIR, PATH, NAME at p (its length, or 0). */
static size_t placeholder(const char *p)
{
	size_t n = 0;
	while (isupper((unsigned char)p[n]) || p[n] == '_')
		n++;
	return n >= 1 && !islower((unsigned char)p[n]) ? n : 0;
}

/*
 * Reads options and operands from text. Options are words starting with
 * '-' after a blank, '[', '|' or ','; one followed by a blank and a
 * placeholder takes that value. Operands are placeholders elsewhere.
 */
static void scan(struct spec *s, const char *text, bool operands)
{
	for (const char *p = text; *p;) {
		bool boundary = p == text || strchr(" \t[|,", p[-1]);
		if (boundary && p[0] == '-' && (isalpha((unsigned char)p[1]) || (p[1] == '-' && isalpha((unsigned char)p[2])))) {
			const char *e = p + 1;
			while (is_word_char(*e))
				e++;
			char *opt = xstrndup(p, (size_t)(e - p));
			size_t v = *e == ' ' ? placeholder(e + 1) : 0;
			if (v) {
				if (!sb_strv_contains(&s->valued, opt)) {
					sb_strv_push(&s->valued, opt);
					sb_strv_push_owned(&s->valued, xstrndup(e + 1, v));
				}
				e += 1 + v;
			}
			if (!sb_strv_contains(&s->opts, opt))
				sb_strv_push(&s->opts, opt);
			free(opt);
			p = e;
			continue;
		}
		size_t v = operands && boundary ? placeholder(p) : 0;
		if (v) {
			cleanup_free char *w = xstrndup(p, v);
			if (strcmp(w, "NAME") == 0)
				s->stacks = true;
			else if (strcmp(w, "PATH") == 0 || strcmp(w, "DIR") == 0 || strcmp(w, "FILE") == 0)
				s->files = true;
			p += v;
			continue;
		}
		/* "[cloud:]NAME[@SNAPSHOT]": an operand may follow ']' too. */
		if (operands && *p == ']' && placeholder(p + 1) && strncmp(p + 1, "NAME", 4) == 0)
			s->stacks = true;
		p++;
	}
}

/* The option lines of a help text: those whose first non-blank is '-'. */
static void scan_help(struct spec *s, const char *help)
{
	if (!help)
		return;
	cleanup_free char *copy = xstrdup(help);
	char *save = NULL;
	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *t = line + strspn(line, " ");
		if (*t != '-')
			continue;
		/* Only the option column: the description may name other commands' options. */
		char *gap = strstr(t, "  ");
		if (gap)
			*gap = '\0';
		scan(s, t, false);
	}
}

static void put_words(struct sb_buf *b, const struct sb_strv *words)
{
	for (size_t i = 0; i < words->n; i++)
		sb_buf_printf(b, "%s%s", i ? " " : "", words->v[i]);
}

/* The lines of one `case` branch that set opts and args. */
static void put_spec(struct sb_buf *b, const struct spec *s)
{
	sb_buf_puts(b, "opts=\"");
	put_words(b, &s->opts);
	sb_buf_printf(b, "\"; args=%s", s->stacks ? "stacks" : s->files ? "files" : "none");
}

/* Every option that takes a value, across commands, with what to offer for it. */
static void collect_valued(struct sb_strv *all, const struct spec *s)
{
	for (size_t i = 0; i + 1 < s->valued.n; i += 2) {
		if (sb_strv_contains(all, s->valued.v[i]))
			continue;
		sb_strv_push(all, s->valued.v[i]);
		sb_strv_push(all, s->valued.v[i + 1]);
	}
}

static char *bash_script(void)
{
	const struct cli_cmd *const *table = cli_command_table();
	struct sb_buf b = {0}, cases = {0};
	struct sb_strv names = {0}, valued = {0};
	for (size_t i = 0; table[i]; i++) {
		const struct cli_cmd *c = table[i];
		sb_strv_push(&names, c->name);
		/* "check | show [--json] | init [PATH]": subcommands, each with its own words. */
		if (strstr(c->usage, " | ")) {
			struct sb_strv subs = {0};
			struct sb_buf sub_cases = {0};
			cleanup_free char *usage = xstrdup(c->usage);
			char *save = NULL;
			for (char *alt = strtok_r(usage, "|", &save); alt; alt = strtok_r(NULL, "|", &save)) {
				alt += strspn(alt, " ");
				size_t n = strcspn(alt, " ");
				if (n == 0)
					continue;
				cleanup_free char *sub = xstrndup(alt, n);
				sb_strv_push(&subs, sub);
				struct spec s = {0};
				scan(&s, alt + n, true);
				collect_valued(&valued, &s);
				sb_buf_printf(&sub_cases, "\t\t%s) ", sub);
				put_spec(&sub_cases, &s);
				sb_buf_puts(&sub_cases, " ;;\n");
				spec_free(&s);
			}
			sb_buf_printf(&cases, "\t%s)\n\t\tif [ \"$COMP_CWORD\" -eq $((ci + 1)) ]; then\n\t\t\twords=\"", c->name);
			put_words(&cases, &subs);
			sb_buf_printf(&cases, "\"\n\t\tfi\n\t\tcase ${COMP_WORDS[ci + 1]} in\n%s\t\tesac\n\t\t;;\n",
				      sub_cases.data ? sub_cases.data : "");
			sb_buf_free(&sub_cases);
			sb_strv_free(&subs);
			continue;
		}
		struct spec s = {0};
		scan(&s, c->usage, true);
		scan_help(&s, c->help);
		collect_valued(&valued, &s);
		sb_buf_printf(&cases, "\t%s) ", c->name);
		put_spec(&cases, &s);
		sb_buf_puts(&cases, " ;;\n");
		spec_free(&s);
	}

	sb_buf_puts(&b, "# bash completion for stackback, generated by 'stackback completion bash'\n"
			"# from the program's command table: do not edit, regenerate.\n\n"
			"# The stack names, asked of stackback with the -c files already typed.\n"
			"_stackback_stacks()\n{\n"
			"\t\"${COMP_WORDS[0]}\" \"${_stackback_global[@]}\" completion stacks 2>/dev/null\n}\n\n"
			"_stackback()\n{\n"
			"\tlocal cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}\n"
			"\tlocal i cmd= ci=0 opts= args=none words=\n"
			"\t_stackback_global=()\n"
			"\tCOMPREPLY=()\n"
			"\tfor ((i = 1; i < COMP_CWORD; i++)); do\n"
			"\t\tcase ${COMP_WORDS[i]} in\n"
			"\t\t-c | --config | --log-level)\n"
			"\t\t\t_stackback_global+=(\"${COMP_WORDS[i]}\" \"${COMP_WORDS[i + 1]}\")\n"
			"\t\t\t((i++))\n\t\t\t;;\n"
			"\t\t-*) ;;\n"
			"\t\t*)\n\t\t\tcmd=${COMP_WORDS[i]}\n\t\t\tci=$i\n\t\t\tbreak\n\t\t\t;;\n"
			"\t\tesac\n\tdone\n"
			"\tif [ -z \"$cmd\" ]; then\n"
			"\t\tcase $prev in\n"
			"\t\t-c | --config) COMPREPLY=($(compgen -f -- \"$cur\")) ;;\n"
			"\t\t--log-level) COMPREPLY=($(compgen -W \"error warning info debug\" -- \"$cur\")) ;;\n"
			"\t\t*) COMPREPLY=($(compgen -W \"-c --config --log-level --syslog --help --version ");
	put_words(&b, &names);
	sb_buf_puts(&b, "\" -- \"$cur\")) ;;\n\t\tesac\n\t\treturn\n\tfi\n\tcase $cmd in\n");
	sb_buf_puts(&b, cases.data ? cases.data : "");
	sb_buf_puts(&b, "\t*) return ;;\n\tesac\n\tcase $prev in\n");
	for (size_t i = 0; i + 1 < valued.n; i += 2) {
		const char *what = valued.v[i + 1];
		const char *action = strcmp(what, "DIR") == 0 ? "COMPREPLY=($(compgen -d -- \"$cur\"))"
				     : strcmp(what, "PATH") == 0 || strcmp(what, "FILE") == 0
					     ? "COMPREPLY=($(compgen -f -- \"$cur\"))"
					     : ":";
		sb_buf_printf(&b, "\t%s) %s; return ;;\n", valued.v[i], action);
	}
	sb_buf_puts(&b, "\tesac\n"
			"\tif [ -n \"$words\" ]; then\n"
			"\t\tCOMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n"
			"\telif [[ $cur == -* ]]; then\n"
			"\t\tCOMPREPLY=($(compgen -W \"$opts\" -- \"$cur\"))\n"
			"\telif [ \"$args\" = stacks ]; then\n"
			"\t\tCOMPREPLY=($(compgen -W \"$(_stackback_stacks)\" -- \"$cur\"))\n"
			"\telif [ \"$args\" = files ]; then\n"
			"\t\tCOMPREPLY=($(compgen -f -- \"$cur\"))\n"
			"\tfi\n}\n\n"
			"complete -o bashdefault -F _stackback stackback\n");
	sb_buf_free(&cases);
	sb_strv_free(&names);
	sb_strv_free(&valued);
	return sb_buf_steal(&b);
}

static int print_stacks(struct cli_ctx *ctx)
{
	struct sb_config cfg;
	struct sb_diags diags = {0};
	extern char **environ;
	int rc = sb_config_load(&cfg, (const char *const *)ctx->config_paths.v, ctx->config_paths.n, environ,
				&diags);
	sb_diags_free(&diags);
	struct sb_selection sel = {0};
	/* Quiet on purpose: a completion must never print onto the user's command line. */
	if (rc == 0) {
		struct sb_diags sdiags = {0};
		rc = sb_selection_load(&cfg, &sel, &sdiags);
		sb_diags_free(&sdiags);
	}
	for (size_t i = 0; rc == 0 && i < sel.n; i++)
		printf("%s\n", sel.stacks[i].name);
	sb_selection_free(&sel);
	sb_config_free(&cfg);
	return rc == 0 ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
}

static int cmd_completion_exec(struct cli_ctx *ctx, int argc, char **argv)
{
	if (argc != 2)
		return cli_usage(&cmd_completion);
	if (strcmp(argv[1], "bash") == 0) {
		cleanup_free char *script = bash_script();
		fputs(script, stdout);
		return CLI_EXIT_OK;
	}
	if (strcmp(argv[1], "stacks") == 0)
		return print_stacks(ctx);
	cli_error("completion: unknown shell or word list '%s' (bash, stacks)", argv[1]);
	return cli_usage(&cmd_completion);
}
