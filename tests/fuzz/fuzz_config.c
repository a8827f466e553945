/*
 * Fuzzes the configuration parser (core/config.c). Each input is written
 * to a private 0600 file and loaded twice over (layering), then its lines
 * are given again as the environment; the results are shown as text and
 * JSON, and the first line is split as a command. Besides the sanitizers,
 * the harness checks what users rely on: every diagnostic names the file
 * (or the environment) and a line that exists, and has a message.
 */
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "stackback/config.h"
#include "stackback/util.h"

#define ENV_MAX 64

static char dir[] = "/tmp/sbfuzzcfgXXXXXX";
static char *path;
static FILE *sink;

static void remove_dir(void)
{
	if (path)
		unlink(path);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (!mkdtemp(dir))
		abort();
	path = xasprintf("%s/fuzz.ini", dir);
	atexit(remove_dir);
	sink = fopen("/dev/null", "w");
	if (!sink)
		abort();
	return 0;
}

static void check_diags(const struct sb_diags *diags, const char *file, int lines)
{
	for (size_t i = 0; i < diags->n; i++) {
		const struct sb_diag *d = &diags->v[i];
		bool from_env = strcmp(d->file, "environment") == 0;
		if (!from_env && strcmp(d->file, file) != 0) {
			fprintf(stderr, "diagnostic names file '%s'\n", d->file);
			abort();
		}
		if (d->line < 0 || d->line > lines || (from_env && d->line != 0)) {
			fprintf(stderr, "diagnostic at line %d of %d lines\n", d->line, lines);
			abort();
		}
		if (!d->message || !*d->message)
			abort();
	}
	sb_diags_print(diags, sink);
}

static void show(const struct sb_config *cfg)
{
	char *text = sb_config_show(cfg);
	fputs(text, sink);
	free(text);
	struct json_object *obj = sb_config_show_json(cfg);
	fputs(json_object_to_json_string(obj), sink);
	json_object_put(obj);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size) || close(fd) < 0)
		abort();
	int lines = 1;
	for (size_t i = 0; i < size; i++)
		if (data[i] == '\n')
			lines++;

	struct sb_config cfg;
	struct sb_diags diags = {0};
	const char *twice[] = {path, path};
	sb_config_load(&cfg, twice, 2, NULL, &diags);
	check_diags(&diags, path, lines);
	show(&cfg);
	sb_config_free(&cfg);
	sb_diags_free(&diags);

	/* The same bytes as environment entries: one per line, up to a NUL. */
	char *text = xstrndup((const char *)data, size);
	char *envp[ENV_MAX + 1];
	size_t n = 0;
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line && n < ENV_MAX;
	     line = strtok_r(NULL, "\n", &save))
		envp[n++] = line;
	envp[n] = NULL;
	sb_config_load(&cfg, NULL, 0, envp, &diags);
	check_diags(&diags, path, lines);
	show(&cfg);
	sb_config_free(&cfg);
	sb_diags_free(&diags);

	struct sb_strv argv;
	char *err = NULL;
	if (sb_split_command(n ? envp[0] : "", &argv, &err) == 0)
		sb_strv_free(&argv);
	else
		free(err);
	free(text);
	return 0;
}
