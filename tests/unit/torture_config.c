/*
 * The configuration module against real files in a private temp dir:
 * every grammar rule, the aliases, layering, environment overrides,
 * relative paths, validation, permission checks, and garbage of every
 * kind (each must give a FILE:LINE error, never a crash).
 */
#include <errno.h>
#include <json-c/json.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "stackback/config.h"
#include "stackback/util.h"

struct fx {
	char dir[64];
	struct sb_config cfg;
	struct sb_diags diags;
};

static int setup(void **state)
{
	struct fx *fx = xcalloc(1, sizeof(*fx));
	strcpy(fx->dir, "/tmp/sbconfigXXXXXX");
	if (!mkdtemp(fx->dir))
		return -1;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	sb_config_free(&fx->cfg);
	sb_diags_free(&fx->diags);
	sb_rm_rf(fx->dir);
	free(fx);
	return 0;
}

/* Writes len bytes (or strlen) to DIR/name with mode; returns the path (caller frees). */
static char *write_bytes(struct fx *fx, const char *name, const char *data, size_t len, mode_t mode)
{
	char *path = xasprintf("%s/%s", fx->dir, name);
	unlink(path);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
	return path;
}

static char *write_file(struct fx *fx, const char *name, const char *text)
{
	return write_bytes(fx, name, text, strlen(text), 0600);
}

/* A minimal valid config prefix, so tests see only the diags they provoke. */
#define VALID "DOCKER_STACKS_DIR=/srv/stacks\nRESTIC_REPOSITORY=/srv/repo\nRESTIC_PASSWORD=pw\n"

static int load_env(struct fx *fx, const char *const *paths, size_t n, char *const *envp)
{
	sb_config_free(&fx->cfg);
	sb_diags_free(&fx->diags);
	return sb_config_load(&fx->cfg, paths, n, envp, &fx->diags);
}

static int load1(struct fx *fx, const char *path)
{
	return load_env(fx, &path, 1, NULL);
}

static int load_text(struct fx *fx, const char *text)
{
	cleanup_free char *path = write_file(fx, "config.ini", text);
	return load1(fx, path);
}

/* True if a diag with that file (NULL: any), line, severity and text exists. */
static bool has_diag(const struct fx *fx, const char *file, int line, enum sb_diag_severity sev,
		     const char *text)
{
	for (size_t i = 0; i < fx->diags.n; i++) {
		const struct sb_diag *d = &fx->diags.v[i];
		if ((!file || strcmp(d->file, file) == 0) && d->line == line && d->severity == sev &&
		    strstr(d->message, text))
			return true;
	}
	return false;
}

static void dump_diags(const struct fx *fx)
{
	sb_diags_print(&fx->diags, stderr);
}

#define assert_diag(fx, file, line, sev, text)                                                  \
	do {                                                                                    \
		if (!has_diag(fx, file, line, sev, text)) {                                     \
			dump_diags(fx);                                                         \
			fail_msg("no %s at line %d containing '%s'",                            \
				 (sev) == SB_DIAG_ERROR ? "error" : "warning", line, text);     \
		}                                                                               \
	} while (0)

#define assert_no_diags(fx)                                                                     \
	do {                                                                                    \
		if ((fx)->diags.n) {                                                            \
			dump_diags(fx);                                                         \
			fail_msg("%zu unexpected diagnostics", (fx)->diags.n);                   \
		}                                                                               \
	} while (0)

static void test_defaults(void **state)
{
	struct fx *fx = *state;
	struct sb_config *c = &fx->cfg;
	sb_config_defaults(c);
	assert_null(c->stacks_dir);
	assert_null(c->restic_repository);
	assert_string_equal(c->state_dir, "/var/lib/stackback");
	assert_string_equal(c->dirlist, "/var/lib/stackback/dirlist");
	assert_string_equal(c->mountpoint, "/mnt/stackback");
	assert_string_equal(c->restore_dir, "/var/lib/stackback/restored");
	assert_int_equal(c->docker_timeout, 30);
	assert_int_equal(c->backup_timeout, 3600);
	assert_int_equal(c->hook_timeout, 300);
	assert_int_equal(c->remote_timeout, 60);
	assert_int_equal(c->min_disk_space_mb, 1024);
	assert_int_equal(c->stop_mode, SB_STOP_MODE_STOP);
	assert_false(c->allow_other);
	assert_false(c->allow_loose_permissions);
	assert_int_equal(c->excludes.n, 0);
	assert_int_equal(c->snapshot_cache_mb, 256);
	assert_int_equal(c->content_cache_mb, 2048);
	assert_int_equal(c->transfers, 4);
	assert_int_equal(c->retries, 3);
	assert_null(c->compose_cmd);
	assert_null(c->bandwidth);
	assert_string_equal(c->log_level, "info");
	assert_int_equal(c->snapshot_mode, SB_SNAPSHOT_MODE_OFF);
	assert_string_equal(sb_stop_mode_name(SB_STOP_MODE_DOWN), "down");
	assert_string_equal(sb_verify_depth_name(SB_VERIFY_FILES), "files");
	assert_string_equal(sb_snapshot_mode_name(SB_SNAPSHOT_MODE_REFLINK), "reflink");
}

static void test_grammar(void **state)
{
	struct fx *fx = *state;
	int rc = load_text(fx, "\xef\xbb\xbf# a comment\n"
			       "   # an indented comment\n"
			       "\n"
			       "[docker]\n"
			       "DOCKER_STACKS_DIR = /srv/stacks   \n"
			       "DOCKER_TIMEOUT\t=\t45 # trailing comment\n"
			       "[ local_backup ]  # comment after a section\n"
			       "RESTIC_REPOSITORY=\"/srv/my repo # not a comment\"\n"
			       "RESTIC_PASSWORD='it''s' \n"
			       "HOSTNAME=host#1\n"
			       "KEEP_DAILY=\"9\"   # quoted number\r\n"
			       "VERIFICATION_DEPTH=DATA\n"
			       "AUTO_PRUNE=yes\n"
			       "[cloud_sync]\n"
			       "RCLONE_REMOTE=b2:\n"
			       "RCLONE_PATH=\"\"\n"
			       "BANDWIDTH=''\n"
			       "[stackback]\n"
			       "EXCLUDES= *.tmp , cache/**,,  \n"
			       "STOP_MODE=down\n"
			       "COMPOSE_CMD=\"docker compose\"\n"
			       "LOG_LEVEL=Debug\n"
			       "SNAPSHOT_MODE=reflink\n"
			       "NOTIFY_COMMAND=#literal\n");
	/* 'it''s' is a quoted value followed by text: an error, the rest still loads. */
	assert_int_equal(rc, -1);
	assert_diag(fx, NULL, 9, SB_DIAG_ERROR, "RESTIC_PASSWORD: unexpected text after the closing quote");
	assert_int_equal(fx->diags.n, 2); /* and hence no password */
	assert_diag(fx, NULL, 0, SB_DIAG_ERROR, "no repository password");
	struct sb_config *c = &fx->cfg;
	assert_string_equal(c->stacks_dir, "/srv/stacks");
	assert_int_equal(c->docker_timeout, 45);
	assert_string_equal(c->restic_repository, "/srv/my repo # not a comment");
	assert_null(c->restic_password);
	assert_string_equal(c->hostname, "host#1");
	assert_int_equal(c->keep_daily, 9);
	assert_int_equal(c->verification_depth, SB_VERIFY_DATA);
	assert_true(c->auto_prune);
	assert_string_equal(c->rclone_remote, "b2");
	assert_null(c->rclone_path);
	assert_null(c->bandwidth);
	assert_int_equal(c->excludes.n, 2);
	assert_string_equal(c->excludes.v[0], "*.tmp");
	assert_string_equal(c->excludes.v[1], "cache/**");
	assert_int_equal(c->stop_mode, SB_STOP_MODE_DOWN);
	assert_string_equal(c->compose_cmd, "docker compose");
	assert_string_equal(c->log_level, "debug");
	assert_int_equal(c->snapshot_mode, SB_SNAPSHOT_MODE_REFLINK);
	assert_string_equal(c->notify_command, "#literal");
}

static void test_quotes_and_empty_values(void **state)
{
	struct fx *fx = *state;
	assert_int_equal(load_text(fx, VALID "HOSTNAME='single \"double\" inside'\n"
					     "RCLONE_PATH=\"it's\"  # comment\n"
					     "DOCKER_TIMEOUT=\n"
					     "STATE_DIR=\"\"\n"
					     "KEEP_WEEKLY= \n"),
			 0);
	assert_no_diags(fx);
	assert_string_equal(fx->cfg.hostname, "single \"double\" inside");
	assert_string_equal(fx->cfg.rclone_path, "it's");
	/* An empty value means the default. */
	assert_int_equal(fx->cfg.docker_timeout, 30);
	assert_string_equal(fx->cfg.state_dir, "/var/lib/stackback");
	assert_int_equal(fx->cfg.keep_weekly, 4);
}

static void test_flat_form_and_aliases(void **state)
{
	struct fx *fx = *state;
	assert_int_equal(load_text(fx, "BACKUP_DIR=/opt/docker-stacks\n"
				       "RESTIC_REPOSITORY=/srv/repo\n"
				       "RESTIC_PASSWORD_FILE=/nonexistent/pw\n"
				       "RESTIC_PASSWORD_COMMAND=\"pass show backup/restic\"\n"
				       "ENABLE_BACKUP_VERIFICATION=false\n"
				       "RCLONE_BACKUP_PATH=/backup/restic\n"
				       "RCLONE_TRANSFERS=8\n"
				       "RCLONE_RETRIES=5\n"
				       "RCLONE_BANDWIDTH=10M\n"
				       "RCLONE_RESTORE_DIR=/tmp/restored_backup\n"
				       "MIN_DISK_SPACE_MB=5120\n"
				       "STATE_DIR=/srv/state\n"),
			 -1);
	struct sb_config *c = &fx->cfg;
	assert_string_equal(c->stacks_dir, "/opt/docker-stacks");
	assert_string_equal(c->password_file, "/nonexistent/pw");
	assert_string_equal(c->password_command, "pass show backup/restic");
	assert_false(c->enable_verification);
	assert_string_equal(c->rclone_path, "/backup/restic");
	assert_int_equal(c->transfers, 8);
	assert_int_equal(c->retries, 5);
	assert_string_equal(c->bandwidth, "10M");
	assert_string_equal(c->restore_dir, "/tmp/restored_backup");
	assert_int_equal(c->min_disk_space_mb, 5120);
	assert_string_equal(c->dirlist, "/srv/state/dirlist");
	/* Two methods: a warning; the file that does not exist: an error. */
	assert_diag(fx, NULL, 4, SB_DIAG_WARNING,
		    "PASSWORD_COMMAND is set as well as PASSWORD_FILE: only PASSWORD_FILE is used");
	assert_diag(fx, NULL, 3, SB_DIAG_ERROR, "PASSWORD_FILE: cannot access /nonexistent/pw");
	assert_int_equal(fx->diags.n, 2);
}

static void test_ignored_legacy_keys(void **state)
{
	struct fx *fx = *state;
	assert_int_equal(load_text(fx, VALID "CHECK_SYSTEM_RESOURCES=true\n"
					     "MEMORY_THRESHOLD_MB=512\n"
					     "LOAD_THRESHOLD=80\n"
					     "ENABLE_PERFORMANCE_MODE=false\n"
					     "ENABLE_DOCKER_STATE_CACHE=false\n"
					     "ENABLE_PARALLEL_PROCESSING=false\n"
					     "MAX_PARALLEL_JOBS=2\n"
					     "ENABLE_JSON_LOGGING=false\n"
					     "JSON_LOG_FILE=/path/to/json/backup.log\n"
					     "ENABLE_PROGRESS_BARS=true\n"
					     "ENABLE_METRICS_COLLECTION=false\n"
					     "METRICS_FILE=/x\n"
					     "ENABLE_PASSWORD_FILE=true\n"
					     "ENABLE_PASSWORD_COMMAND=true\n"
					     "RCLONE_LOG_FILE=\"/var/log/rclone_backup.log\"\n"
					     "RCLONE_EXTRA_OPTIONS=\"\"\n"),
			 0);
	assert_no_diags(fx);
	/* Extra rclone options would change what the user gets: say they are dropped. */
	assert_int_equal(load_text(fx, VALID "RCLONE_EXTRA_OPTIONS=\"--fast-list\"\n"), 0);
	assert_diag(fx, NULL, 4, SB_DIAG_WARNING, "RCLONE_EXTRA_OPTIONS is not supported");
	char *ref = sb_config_reference();
	assert_non_null(strstr(ref, "`CHECK_SYSTEM_RESOURCES`"));
	assert_non_null(strstr(ref, "`RCLONE_EXTRA_OPTIONS`"));
	free(ref);
}

static void test_unknown_keys_and_sections(void **state)
{
	struct fx *fx = *state;
	cleanup_free char *path = write_file(fx, "c.ini", "[docker]\n"
							  "DOCKER_STACKS_DIR=/srv/stacks\n"
							  "NO_SUCH_KEY=1\n"
							  "docker_timeout=5\n"
							  "[mystery]\n"
							  "DOCKER_TIMEOUT=7\n"
							  "ANYTHING=goes\n"
							  "[local_backup]\n"
							  "RESTIC_REPOSITORY=/r\n"
							  "RESTIC_PASSWORD=pw\n"
							  "MOUNTPOINT=/m\n");
	assert_int_equal(load1(fx, path), 0);
	assert_diag(fx, path, 3, SB_DIAG_WARNING, "unknown key NO_SUCH_KEY (ignored)");
	assert_diag(fx, path, 4, SB_DIAG_WARNING, "did you mean DOCKER_TIMEOUT?");
	assert_diag(fx, path, 5, SB_DIAG_WARNING, "unknown section [mystery]: its keys are ignored");
	assert_diag(fx, path, 11, SB_DIAG_WARNING, "MOUNTPOINT belongs in section [stackback], not [local_backup]");
	assert_int_equal(fx->diags.n, 4);
	assert_int_equal(fx->cfg.docker_timeout, 30);
	assert_string_equal(fx->cfg.mountpoint, "/m");
}

static void test_duplicates(void **state)
{
	struct fx *fx = *state;
	assert_int_equal(load_text(fx, VALID "DOCKER_TIMEOUT=10\n"
					     "DOCKER_TIMEOUT=20\n"
					     "BACKUP_DIR=/other\n"),
			 0);
	assert_diag(fx, NULL, 5, SB_DIAG_WARNING,
		    "duplicate key DOCKER_TIMEOUT (DOCKER_TIMEOUT is already set at line 4): the last value wins");
	assert_diag(fx, NULL, 6, SB_DIAG_WARNING, "duplicate key BACKUP_DIR (DOCKER_STACKS_DIR is already set at line 1)");
	assert_int_equal(fx->diags.n, 2);
	assert_int_equal(fx->cfg.docker_timeout, 20);
	assert_string_equal(fx->cfg.stacks_dir, "/other");
}

static void test_bad_values(void **state)
{
	struct fx *fx = *state;
	cleanup_free char *path = write_file(fx, "c.ini", VALID "DOCKER_TIMEOUT=abc\n"
								"BACKUP_TIMEOUT=0\n"
								"KEEP_DAILY=99999999999999999999999\n"
								"TRANSFERS=4.5\n"
								"AUTO_PRUNE=maybe\n"
								"VERIFICATION_DEPTH=deep\n"
								"STOP_MODE=kill\n"
								"LOG_LEVEL=loud\n"
								"PASSWORD_COMMAND=\"unterminated 'quote\"\n"
								"RETRIES= -1\n");
	assert_int_equal(load1(fx, path), -1);
	assert_diag(fx, path, 4, SB_DIAG_ERROR, "DOCKER_TIMEOUT: 'abc' is not a number");
	assert_diag(fx, path, 5, SB_DIAG_ERROR, "BACKUP_TIMEOUT: 0 is out of range (1 to 604800)");
	assert_diag(fx, path, 6, SB_DIAG_ERROR, "KEEP_DAILY: 99999999999999999999999 is out of range");
	assert_diag(fx, path, 7, SB_DIAG_ERROR, "TRANSFERS: '4.5' is not a number");
	assert_diag(fx, path, 8, SB_DIAG_ERROR, "AUTO_PRUNE: 'maybe' is not a boolean");
	assert_diag(fx, path, 9, SB_DIAG_ERROR,
		    "VERIFICATION_DEPTH: unknown value 'deep' (expected metadata, files or data)");
	assert_diag(fx, path, 10, SB_DIAG_ERROR, "STOP_MODE: unknown value 'kill' (expected stop or down)");
	assert_diag(fx, path, 11, SB_DIAG_ERROR, "LOG_LEVEL: unknown value 'loud'");
	assert_diag(fx, path, 12, SB_DIAG_ERROR, "PASSWORD_COMMAND: unterminated single quote");
	assert_diag(fx, path, 13, SB_DIAG_ERROR, "RETRIES: -1 is out of range (0 to 100)");
	/* Bad values leave the defaults in place. */
	assert_int_equal(fx->cfg.docker_timeout, 30);
	assert_int_equal(fx->cfg.backup_timeout, 3600);
	assert_int_equal(fx->cfg.verification_depth, SB_VERIFY_METADATA);
	assert_string_equal(fx->cfg.log_level, "info");
	assert_null(fx->cfg.password_command);
}

static void test_malformed_lines(void **state)
{
	struct fx *fx = *state;
	cleanup_free char *path = write_file(fx, "c.ini", VALID "JUST_A_WORD\n"
								"=value\n"
								"export DOCKER_TIMEOUT=5\n"
								"BAD KEY=1\n"
								"9LIVES=1\n"
								"HOSTNAME=\"unterminated\n"
								"HOSTNAME='also unterminated\n"
								"[docker\n"
								"[]\n"
								"[docker] junk\n"
								"RESTIC_PASSWORD secret-without-equals\n");
	assert_int_equal(load1(fx, path), -1);
	assert_diag(fx, path, 4, SB_DIAG_ERROR, "malformed line: expected KEY=VALUE, [section] or a # comment");
	assert_diag(fx, path, 5, SB_DIAG_ERROR, "malformed line: no key before '='");
	assert_diag(fx, path, 6, SB_DIAG_ERROR, "'export' is not supported");
	assert_diag(fx, path, 7, SB_DIAG_ERROR, "'BAD KEY' is not a key name");
	assert_diag(fx, path, 8, SB_DIAG_ERROR, "'9LIVES' is not a key name");
	assert_diag(fx, path, 9, SB_DIAG_ERROR, "HOSTNAME: unterminated quote");
	assert_diag(fx, path, 10, SB_DIAG_ERROR, "HOSTNAME: unterminated quote");
	assert_diag(fx, path, 11, SB_DIAG_ERROR, "malformed section header: missing ']'");
	assert_diag(fx, path, 12, SB_DIAG_ERROR, "malformed section header: empty name");
	assert_diag(fx, path, 13, SB_DIAG_ERROR, "malformed section header: unexpected text after ']'");
	assert_diag(fx, path, 14, SB_DIAG_ERROR, "malformed line");
	/* A line without '=' is never quoted back: it may hold a password. */
	for (size_t i = 0; i < fx->diags.n; i++)
		assert_null(strstr(fx->diags.v[i].message, "secret-without-equals"));
	assert_int_equal(fx->diags.n, 11);
}

static void test_huge_line(void **state)
{
	struct fx *fx = *state;
	size_t big = 1024 * 1024;
	struct sb_buf b = {0};
	sb_buf_puts(&b, VALID "HOSTNAME=");
	for (size_t i = 0; i < big; i++)
		sb_buf_append(&b, "x", 1);
	sb_buf_puts(&b, "\nDOCKER_TIMEOUT=77\n");
	cleanup_free char *path = write_bytes(fx, "big.ini", b.data, b.len, 0600);
	sb_buf_free(&b);
	assert_int_equal(load1(fx, path), -1);
	assert_diag(fx, path, 4, SB_DIAG_ERROR, "line is too long (1048585 bytes; the limit is 65536)");
	assert_int_equal(fx->diags.n, 1);
	assert_null(fx->cfg.hostname);
	assert_int_equal(fx->cfg.docker_timeout, 77); /* the next line is read */
}

static void test_nul_and_control_bytes(void **state)
{
	struct fx *fx = *state;
	static const char data[] = VALID "HOSTNAME=ab\0cd\nDOCKER_TIMEOUT=12\n\0\0\0\nKEEP_DAILY=1\x1b[31m\n"
					 "KEEP_WEEKLY=3\rKEEP_MONTHLY=9\nKEEP_YEARLY=5\n";
	cleanup_free char *path = write_bytes(fx, "nul.ini", data, sizeof(data) - 1, 0600);
	assert_int_equal(load1(fx, path), -1);
	assert_diag(fx, path, 4, SB_DIAG_ERROR, "line contains a NUL byte");
	assert_diag(fx, path, 6, SB_DIAG_ERROR, "line contains a NUL byte");
	assert_diag(fx, path, 7, SB_DIAG_ERROR, "control character 0x1b");
	assert_diag(fx, path, 8, SB_DIAG_ERROR, "control character 0x0d");
	assert_int_equal(fx->diags.n, 4);
	assert_null(fx->cfg.hostname);
	assert_int_equal(fx->cfg.docker_timeout, 12);
	assert_int_equal(fx->cfg.keep_daily, 7);
	assert_int_equal(fx->cfg.keep_yearly, 5);
}

static void test_binary_garbage(void **state)
{
	struct fx *fx = *state;
	/* Deterministic noise (xorshift), with some '=' and '\n' to reach the parser. */
	size_t len = 256 * 1024;
	char *data = xmalloc(len);
	uint32_t x = 2463534242u;
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		data[i] = (char)(x % 7 == 0 ? '\n' : x % 11 == 0 ? '=' : (x >> 8) & 0xff);
	}
	cleanup_free char *path = write_bytes(fx, "garbage.ini", data, len, 0600);
	free(data);
	assert_int_equal(load1(fx, path), -1);
	/* Capped: 20 errors, then one saying the rest was not checked. */
	assert_int_equal(sb_diags_count(&fx->diags, SB_DIAG_ERROR), 21);
	const struct sb_diag *last = &fx->diags.v[fx->diags.n - 1];
	assert_string_equal(last->file, path);
	assert_true(last->line > 0);
	assert_non_null(strstr(last->message, "too many errors"));
	for (size_t i = 0; i < fx->diags.n; i++) {
		assert_string_equal(fx->diags.v[i].file, path);
		assert_true(fx->diags.v[i].line > 0);
	}
}

static void test_unreadable_files(void **state)
{
	struct fx *fx = *state;
	cleanup_free char *missing = xasprintf("%s/missing.ini", fx->dir);
	assert_int_equal(load1(fx, missing), -1);
	assert_diag(fx, missing, 0, SB_DIAG_ERROR, "cannot open config file: No such file or directory");
	/* No cascade of "X is not set": the one real problem stands alone. */
	assert_int_equal(fx->diags.n, 1);

	assert_int_equal(load1(fx, fx->dir), -1);
	assert_diag(fx, fx->dir, 0, SB_DIAG_ERROR, "not a regular file");

	size_t big = (4u << 20) + 1;
	char *data = xmalloc(big);
	memset(data, '#', big);
	cleanup_free char *path = write_bytes(fx, "huge.ini", data, big, 0600);
	free(data);
	assert_int_equal(load1(fx, path), -1);
	assert_diag(fx, path, 0, SB_DIAG_ERROR, "config file is larger than 4 MiB");
	assert_int_equal(fx->diags.n, 1);
}

static void test_required_and_passwords(void **state)
{
	struct fx *fx = *state;
	cleanup_free char *path = write_file(fx, "c.ini", "[docker]\nDOCKER_TIMEOUT=30\n");
	assert_int_equal(load1(fx, path), -1);
	assert_diag(fx, path, 0, SB_DIAG_ERROR, "DOCKER_STACKS_DIR is not set (it is required, in [docker])");
	assert_diag(fx, path, 0, SB_DIAG_ERROR, "RESTIC_REPOSITORY is not set");
	assert_diag(fx, path, 0, SB_DIAG_ERROR, "no repository password");
	assert_int_equal(fx->diags.n, 3);

	cleanup_free char *pw = write_file(fx, "pw", "pw\n");
	cleanup_free char *text = xasprintf(VALID "PASSWORD_FILE=%s\nPASSWORD_COMMAND=echo x\n", pw);
	assert_int_equal(load_text(fx, text), 0);
	assert_diag(fx, NULL, 4, SB_DIAG_WARNING,
		    "PASSWORD_FILE is set as well as RESTIC_PASSWORD: only RESTIC_PASSWORD is used");
	assert_diag(fx, NULL, 5, SB_DIAG_WARNING, "PASSWORD_COMMAND is set as well as RESTIC_PASSWORD");
	assert_int_equal(fx->diags.n, 2);
}

static void test_permissions(void **state)
{
	struct fx *fx = *state;
	cleanup_free char *loose = write_bytes(fx, "loose.ini", VALID, strlen(VALID), 0644);
	assert_int_equal(load1(fx, loose), -1);
	cleanup_free char *want = xasprintf("(mode 0644): run 'chmod 600 %s'", loose);
	assert_diag(fx, loose, 0, SB_DIAG_ERROR, want);
	assert_int_equal(fx->diags.n, 1);

	/* Writable by group is as bad as readable. */
	assert_int_equal(chmod(loose, 0620), 0);
	assert_int_equal(load1(fx, loose), -1);
	assert_diag(fx, loose, 0, SB_DIAG_ERROR, "readable or writable by group or others (mode 0620)");

	/* The opt-in (in a later file, or the environment) turns it into a warning. */
	assert_int_equal(chmod(loose, 0644), 0);
	cleanup_free char *optin = write_file(fx, "optin.ini", "[stackback]\nALLOW_LOOSE_PERMISSIONS=true\n");
	const char *both[] = {loose, optin};
	assert_int_equal(load_env(fx, both, 2, NULL), 0);
	assert_diag(fx, loose, 0, SB_DIAG_WARNING, "allowed by ALLOW_LOOSE_PERMISSIONS");
	char *env[] = {(char *)"ALLOW_LOOSE_PERMISSIONS=1", NULL};
	assert_int_equal(load_env(fx, (const char *const *)&loose, 1, env), 0);
	assert_diag(fx, loose, 0, SB_DIAG_WARNING, "allowed by ALLOW_LOOSE_PERMISSIONS");

	/* The password file: private, else refused (or warned about). */
	cleanup_free char *pw = write_bytes(fx, "pw", "secret\n", 7, 0640);
	cleanup_free char *text = xasprintf("DOCKER_STACKS_DIR=/s\nRESTIC_REPOSITORY=/r\nPASSWORD_FILE=%s\n", pw);
	assert_int_equal(load_text(fx, text), -1);
	cleanup_free char *want_pw = xasprintf("PASSWORD_FILE: %s is readable or writable by group or "
					       "others (mode 0640): run 'chmod 600 %s'",
					       pw, pw);
	assert_diag(fx, NULL, 3, SB_DIAG_ERROR, want_pw);
	char *password = NULL, *err = NULL;
	assert_int_equal(sb_config_password(&fx->cfg, &password, &err), -1);
	assert_non_null(strstr(err, "chmod 600"));
	free(err);
	assert_int_equal(sb_check_private_file(pw, &err), -1);
	free(err);

	cleanup_free char *text2 = xasprintf("%sALLOW_LOOSE_PERMISSIONS=true\n", text);
	assert_int_equal(load_text(fx, text2), 0);
	assert_diag(fx, NULL, 3, SB_DIAG_WARNING, "(allowed by ALLOW_LOOSE_PERMISSIONS)");
	assert_int_equal(sb_config_password(&fx->cfg, &password, &err), 0);
	assert_string_equal(password, "secret");
	free(password);

	assert_int_equal(chmod(pw, 0600), 0);
	assert_int_equal(sb_check_private_file(pw, &err), 0);
	assert_int_equal(sb_check_private_file(fx->dir, &err), -1);
	assert_non_null(strstr(err, "not a regular file"));
	free(err);
}

static void test_relative_paths(void **state)
{
	struct fx *fx = *state;
	cleanup_free char *sub = xasprintf("%s/etc", fx->dir);
	assert_int_equal(sb_mkdir_p(sub, 0700), 0);
	cleanup_free char *path = xasprintf("%s/etc/c.ini", fx->dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("DOCKER_STACKS_DIR=stacks\n"
	      "RESTIC_REPOSITORY=./repo/\n"
	      "RESTIC_PASSWORD=pw\n"
	      "STATE_DIR=../state\n"
	      "RCLONE_CONFIG=/abs//rclone.conf\n"
	      "SYSLOG_SOCKET=.\n"
	      "RCLONE_PATH=relative/remote/path\n",
	      f);
	fclose(f);
	chmod(path, 0600);
	assert_int_equal(load1(fx, path), 0);
	cleanup_free char *stacks = xasprintf("%s/etc/stacks", fx->dir);
	cleanup_free char *repo = xasprintf("%s/etc/repo", fx->dir);
	cleanup_free char *statedir = xasprintf("%s/etc/../state", fx->dir);
	cleanup_free char *dirlist = xasprintf("%s/etc/../state/dirlist", fx->dir);
	assert_string_equal(fx->cfg.stacks_dir, stacks);
	assert_string_equal(fx->cfg.restic_repository, repo);
	assert_string_equal(fx->cfg.state_dir, statedir);
	assert_string_equal(fx->cfg.dirlist, dirlist);
	assert_string_equal(fx->cfg.rclone_config, "/abs/rclone.conf");
	assert_string_equal(fx->cfg.syslog_socket, sub);
	/* A remote path is not a local path. */
	assert_string_equal(fx->cfg.rclone_path, "relative/remote/path");

	/* A restic backend is not a path; a config named without a directory is in the cwd. */
	cleanup_free char *cwd = getcwd(NULL, 0);
	assert_int_equal(chdir(sub), 0);
	f = fopen("c2.ini", "w");
	assert_non_null(f);
	fputs("DOCKER_STACKS_DIR=s\nRESTIC_REPOSITORY=sftp:host:/srv/repo\nRESTIC_PASSWORD=x\n", f);
	fclose(f);
	chmod("c2.ini", 0600);
	char *env[] = {(char *)"MOUNTPOINT=mnt", NULL};
	const char *rel = "c2.ini";
	assert_int_equal(load_env(fx, &rel, 1, env), 0);
	assert_int_equal(chdir(cwd), 0);
	cleanup_free char *s = xasprintf("%s/s", sub);
	cleanup_free char *mnt = xasprintf("%s/mnt", sub);
	assert_string_equal(fx->cfg.stacks_dir, s);
	assert_string_equal(fx->cfg.restic_repository, "sftp:host:/srv/repo");
	assert_string_equal(fx->cfg.mountpoint, mnt); /* environment: against the cwd */
	assert_string_equal(fx->cfg.files.v[0], "c2.ini");
}

static void test_derived_defaults(void **state)
{
	struct fx *fx = *state;
	/* DIRLIST follows STATE_DIR, wherever STATE_DIR is set. */
	cleanup_free char *a = write_file(fx, "a.ini", VALID "DIRLIST=/keep/dirlist\n");
	cleanup_free char *b = write_file(fx, "b.ini", "[stackback]\nSTATE_DIR=/new/state\n");
	const char *both[] = {a, b};
	assert_int_equal(load_env(fx, both, 2, NULL), 0);
	assert_string_equal(fx->cfg.dirlist, "/keep/dirlist");
	assert_string_equal(fx->cfg.restore_dir, "/new/state/restored");
}

static void test_layering(void **state)
{
	struct fx *fx = *state;
	cleanup_free char *a = write_file(fx, "a.ini", "[docker]\n"
						       "DOCKER_STACKS_DIR=/first\n"
						       "DOCKER_TIMEOUT=11\n"
						       "[local_backup]\n"
						       "RESTIC_REPOSITORY=/repo\n"
						       "RESTIC_PASSWORD=pw\n"
						       "KEEP_DAILY=1\n"
						       "[stackback]\n"
						       "EXCLUDES=a,b\n");
	cleanup_free char *b = write_file(fx, "b.ini", "BACKUP_DIR=/second\n"
						       "KEEP_DAILY=oops\n"
						       "EXCLUDES=c\n");
	const char *both[] = {a, b};
	assert_int_equal(load_env(fx, both, 2, NULL), -1);
	/* Setting a key again in a later file is the point, not a duplicate. */
	assert_diag(fx, b, 2, SB_DIAG_ERROR, "KEEP_DAILY: 'oops' is not a number");
	assert_int_equal(fx->diags.n, 1);
	assert_string_equal(fx->cfg.stacks_dir, "/second");
	assert_int_equal(fx->cfg.docker_timeout, 11);
	assert_int_equal(fx->cfg.keep_daily, 1);
	assert_int_equal(fx->cfg.excludes.n, 1);
	assert_string_equal(fx->cfg.excludes.v[0], "c");
	assert_int_equal(fx->cfg.files.n, 2);
	assert_string_equal(fx->cfg.files.v[0], a);
	assert_string_equal(fx->cfg.files.v[1], b);
}

static void test_env_overrides(void **state)
{
	struct fx *fx = *state;
	cleanup_free char *path = write_file(fx, "c.ini", VALID "HOSTNAME=from-file\nTRANSFERS=2\n");
	char *env[] = {
		(char *)"PATH=/usr/bin",
		(char *)"DOCKER_STACKS_DIR=/env/stacks",
		(char *)"BACKUP_DIR=/alias/loses",
		(char *)"RCLONE_TRANSFERS=9",
		(char *)"HOSTNAME=shell-exported",
		(char *)"RESTIC_PASSWORD=",
		(char *)"PASSWORD_COMMAND=echo env-secret",
		(char *)"DOCKER_TIMEOUT=soon",
		(char *)"EXCLUDES=x,y",
		(char *)"DOCKER_TIMEOUTX=1",
		NULL,
	};
	assert_int_equal(load_env(fx, (const char *const *)&path, 1, env), -1);
	assert_string_equal(fx->cfg.stacks_dir, "/env/stacks");
	assert_int_equal(fx->cfg.transfers, 9);
	/* Shells and containers export HOSTNAME: only STACKBACK_HOSTNAME overrides it. */
	assert_string_equal(fx->cfg.hostname, "from-file");
	/* An empty variable unsets the password, so the command is the one method. */
	assert_null(fx->cfg.restic_password);
	assert_string_equal(fx->cfg.password_command, "echo env-secret");
	assert_diag(fx, "environment", 0, SB_DIAG_ERROR, "DOCKER_TIMEOUT: 'soon' is not a number");
	assert_int_equal(fx->diags.n, 1);
	assert_int_equal(fx->cfg.excludes.n, 2);

	char *env2[] = {(char *)"STACKBACK_HOSTNAME=override", NULL};
	assert_int_equal(load_env(fx, (const char *const *)&path, 1, env2), 0);
	assert_string_equal(fx->cfg.hostname, "override");

	/* The environment alone can make a complete configuration. */
	char *env3[] = {(char *)"BACKUP_DIR=/s", (char *)"RESTIC_REPOSITORY=/r",
			(char *)"RESTIC_PASSWORD=p", NULL};
	assert_int_equal(load_env(fx, NULL, 0, env3), 0);
	assert_no_diags(fx);
	assert_string_equal(fx->cfg.stacks_dir, "/s");
	char *env4[] = {NULL};
	assert_int_equal(load_env(fx, NULL, 0, env4), -1);
	assert_diag(fx, "environment", 0, SB_DIAG_ERROR, "DOCKER_STACKS_DIR is not set");
}

static void test_rclone_source_dir(void **state)
{
	struct fx *fx = *state;
	assert_int_equal(load_text(fx, VALID "RCLONE_SOURCE_DIR=\"/srv/repo/\"\n"), 0);
	assert_no_diags(fx);
	assert_int_equal(load_text(fx, VALID "RCLONE_SOURCE_DIR=/srv/elsewhere\n"), -1);
	assert_diag(fx, NULL, 4, SB_DIAG_ERROR,
		    "RCLONE_SOURCE_DIR /srv/elsewhere differs from RESTIC_REPOSITORY /srv/repo");
	assert_int_equal(fx->diags.n, 1);
	/* Across files, as the bash-era tool split them. */
	cleanup_free char *a = write_file(fx, "backup.conf", VALID);
	cleanup_free char *b = write_file(fx, "rclone.conf", "RCLONE_SOURCE_DIR=\"/srv/other\"\n");
	const char *both[] = {a, b};
	assert_int_equal(load_env(fx, both, 2, NULL), -1);
	assert_diag(fx, b, 1, SB_DIAG_ERROR, "differs from RESTIC_REPOSITORY");
}

static void test_show(void **state)
{
	struct fx *fx = *state;
	assert_int_equal(load_text(fx, VALID "EXCLUDES=*.log,tmp\nKEEP_DAILY=3\n"), 0);
	char *text = sb_config_show(&fx->cfg);
	assert_non_null(strstr(text, "\nRESTIC_PASSWORD=***\n"));
	assert_null(strstr(text, "=pw\n"));
	assert_non_null(strstr(text, "DOCKER_STACKS_DIR=/srv/stacks\n"));
	assert_non_null(strstr(text, "\nEXCLUDES=*.log,tmp\n"));
	assert_non_null(strstr(text, "\nKEEP_DAILY=3\n"));
	assert_non_null(strstr(text, "\nHOSTNAME=\n"));
	assert_non_null(strstr(text, "\nVERIFICATION_DEPTH=metadata\n"));
	assert_non_null(strstr(text, "\nAUTO_PRUNE=false\n"));
	assert_non_null(strstr(text, "\nDIRLIST=/var/lib/stackback/dirlist\n"));

	/* Every key once; each is in the template and in the reference. */
	char *ref = sb_config_reference();
	const char *tmpl = sb_config_template();
	size_t n_keys = 0;
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *eq = strchr(line, '=');
		assert_non_null(eq);
		*eq = '\0';
		cleanup_free char *in_tmpl = xasprintf("\n%s=", line);
		cleanup_free char *in_tmpl_commented = xasprintf("\n# %s=", line);
		if (!strstr(tmpl, in_tmpl) && !strstr(tmpl, in_tmpl_commented))
			fail_msg("key %s is missing from config/config.ini.example", line);
		cleanup_free char *in_ref = xasprintf("| `%s` |", line);
		assert_non_null(strstr(ref, in_ref));
		n_keys++;
	}
	assert_true(n_keys >= 40);
	free(ref);
	free(text);

	struct json_object *obj = sb_config_show_json(&fx->cfg);
	struct json_object *v;
	assert_true(json_object_object_get_ex(obj, "RESTIC_PASSWORD", &v));
	assert_string_equal(json_object_get_string(v), "***");
	assert_true(json_object_object_get_ex(obj, "KEEP_DAILY", &v));
	assert_true(json_object_is_type(v, json_type_int));
	assert_int_equal(json_object_get_int(v), 3);
	assert_true(json_object_object_get_ex(obj, "AUTO_PRUNE", &v));
	assert_true(json_object_is_type(v, json_type_boolean));
	assert_true(json_object_object_get_ex(obj, "EXCLUDES", &v));
	assert_int_equal(json_object_array_length(v), 2);
	assert_true(json_object_object_get_ex(obj, "HOSTNAME", &v));
	assert_null(v);
	assert_int_equal(json_object_object_length(obj), n_keys);
	json_object_put(obj);

	/* No password at all shows as empty, not as ***. */
	char *env[] = {(char *)"RESTIC_PASSWORD=", NULL};
	cleanup_free char *path = write_file(fx, "c.ini", VALID);
	load_env(fx, (const char *const *)&path, 1, env);
	text = sb_config_show(&fx->cfg);
	assert_non_null(strstr(text, "\nRESTIC_PASSWORD=\n"));
	free(text);
}

/* "# KEY=VALUE" with a one-word value: a commented default, not prose. */
static bool is_commented_assignment(const char *t, size_t n)
{
	if (n < 4 || t[0] != '#' || t[1] != ' ')
		return false;
	size_t i = 2;
	while (i < n && ((t[i] >= 'A' && t[i] <= 'Z') || t[i] == '_' || (t[i] >= '0' && t[i] <= '9')))
		i++;
	if (i == 2 || i == n || t[i] != '=')
		return false;
	return !memchr(t + i, ' ', n - i);
}

static void test_template_loads(void **state)
{
	struct fx *fx = *state;
	cleanup_free char *pw = write_file(fx, "pw", "from-template-test\n");
	cleanup_free char *path = write_file(fx, "config.ini", sb_config_template());
	/* As shipped it names /etc/stackback/restic.password, which a test cannot own. */
	cleanup_free char *pw_env = xasprintf("PASSWORD_FILE=%s", pw);
	char *env[] = {pw_env, NULL};
	assert_int_equal(load_env(fx, (const char *const *)&path, 1, env), 0);
	assert_no_diags(fx);
	assert_string_equal(fx->cfg.stacks_dir, "/opt/docker-stacks");
	/* Its commented values are the defaults. */
	struct sb_config defaults;
	sb_config_defaults(&defaults);
	char *a = sb_config_show(&defaults);
	sb_config_free(&defaults);
	sb_config_free(&fx->cfg);
	sb_diags_free(&fx->diags);
	struct sb_buf uncommented = {0};
	const char *t = sb_config_template();
	while (*t) {
		const char *nl = strchr(t, '\n');
		size_t n = nl ? (size_t)(nl - t) : strlen(t);
		if (is_commented_assignment(t, n))
			sb_buf_append(&uncommented, t + 2, n - 2);
		else
			sb_buf_append(&uncommented, t, n);
		sb_buf_puts(&uncommented, "\n");
		t += n + (nl ? 1 : 0);
	}
	cleanup_free char *p2 = write_file(fx, "uncommented.ini", uncommented.data);
	sb_buf_free(&uncommented);
	assert_int_equal(load_env(fx, (const char *const *)&p2, 1, env), 0);
	char *b = sb_config_show(&fx->cfg);
	/* Same values but the three keys the template sets for real. */
	char *save = NULL;
	for (char *line = strtok_r(a, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (sb_str_has_prefix(line, "DOCKER_STACKS_DIR=") ||
		    sb_str_has_prefix(line, "RESTIC_REPOSITORY=") ||
		    sb_str_has_prefix(line, "PASSWORD_FILE="))
			continue;
		cleanup_free char *want = xasprintf("%s\n", line);
		if (!strstr(b, want))
			fail_msg("the template's commented value differs from the default: %s", line);
	}
	free(a);
	free(b);
}

static void test_split_command(void **state)
{
	(void)state;
	struct sb_strv argv;
	char *err = NULL;
	assert_int_equal(sb_split_command("  pass show  'backup/my key' \"a 'b'\"x ''", &argv, &err), 0);
	assert_int_equal(argv.n, 5);
	assert_string_equal(argv.v[0], "pass");
	assert_string_equal(argv.v[1], "show");
	assert_string_equal(argv.v[2], "backup/my key");
	assert_string_equal(argv.v[3], "a 'b'x");
	assert_string_equal(argv.v[4], "");
	assert_null(argv.v[5]);
	sb_strv_free(&argv);
	assert_int_equal(sb_split_command("echo \"open", &argv, &err), -1);
	assert_string_equal(err, "unterminated double quote");
	free(err);
	assert_int_equal(sb_split_command(" \t ", &argv, &err), -1);
	assert_string_equal(err, "the command is empty");
	free(err);
}

static void test_password(void **state)
{
	struct fx *fx = *state;
	char *password = NULL, *err = NULL;

	assert_int_equal(load_text(fx, VALID), 0);
	assert_int_equal(sb_config_password(&fx->cfg, &password, &err), 0);
	assert_string_equal(password, "pw");
	free(password);

	cleanup_free char *pw = write_file(fx, "pw", "first line\r\nsecond line\n");
	cleanup_free char *t1 = xasprintf("DOCKER_STACKS_DIR=/s\nRESTIC_REPOSITORY=/r\nPASSWORD_FILE=%s\n", pw);
	assert_int_equal(load_text(fx, t1), 0);
	assert_int_equal(sb_config_password(&fx->cfg, &password, &err), 0);
	assert_string_equal(password, "first line");
	free(password);

	cleanup_free char *empty = write_file(fx, "empty", "\nsecond\n");
	free(fx->cfg.password_file);
	fx->cfg.password_file = xstrdup(empty);
	assert_int_equal(sb_config_password(&fx->cfg, &password, &err), -1);
	assert_non_null(strstr(err, "has an empty first line"));
	free(err);

	/* The command runs through the runner, its words split without a shell. */
	assert_int_equal(load_text(fx, "DOCKER_STACKS_DIR=/s\nRESTIC_REPOSITORY=/r\n"
				       "PASSWORD_COMMAND=printf 'from a command\\nignored'\n"),
			 0);
	assert_int_equal(sb_config_password(&fx->cfg, &password, &err), 0);
	assert_string_equal(password, "from a command");
	free(password);

	assert_int_equal(load_text(fx, "DOCKER_STACKS_DIR=/s\nRESTIC_REPOSITORY=/r\n"
				       "PASSWORD_COMMAND=sh -c 'echo nope >&2; exit 3'\n"),
			 0);
	assert_int_equal(sb_config_password(&fx->cfg, &password, &err), -1);
	assert_non_null(strstr(err, "PASSWORD_COMMAND sh failed: exited 3"));
	free(err);

	assert_int_equal(load_text(fx, "DOCKER_STACKS_DIR=/s\nRESTIC_REPOSITORY=/r\n"
				       "PASSWORD_COMMAND=true\n"),
			 0);
	assert_int_equal(sb_config_password(&fx->cfg, &password, &err), -1);
	assert_non_null(strstr(err, "printed no password"));
	free(err);

	assert_int_equal(load_text(fx, "DOCKER_STACKS_DIR=/s\nRESTIC_REPOSITORY=/r\n"
				       "PASSWORD_COMMAND=/nonexistent/vault get\n"),
			 0);
	assert_int_equal(sb_config_password(&fx->cfg, &password, &err), -1);
	assert_non_null(strstr(err, "PASSWORD_COMMAND /nonexistent/vault failed"));
	free(err);

	/* No method: the config is refused at load, and the call says why too. */
	assert_int_equal(load_text(fx, "DOCKER_STACKS_DIR=/s\nRESTIC_REPOSITORY=/r\n"), -1);
	assert_int_equal(sb_config_password(&fx->cfg, &password, &err), -1);
	assert_non_null(strstr(err, "no repository password"));
	free(err);
}

/* A stack's own .stackback/config: only the per-stack keys, over the global values. */
static void test_stack_settings(void **state)
{
	struct fx *fx = *state;
	sb_config_defaults(&fx->cfg);
	fx->cfg.snapshot_mode = SB_SNAPSHOT_MODE_BTRFS;
	fx->cfg.snapshot_staging = xstrdup("/srv/global-staging");
	char *stack = xasprintf("%s/web", fx->dir);
	char *dot = xasprintf("%s/.stackback", stack);
	assert_int_equal(sb_mkdir_p(dot, 0755), 0);

	/* No file: the global values. */
	struct sb_stack_settings set;
	assert_int_equal(sb_config_load_stack(&fx->cfg, stack, &set, &fx->diags), 0);
	assert_int_equal(set.snapshot_mode, SB_SNAPSHOT_MODE_BTRFS);
	assert_string_equal(set.snapshot_staging, "/srv/global-staging");
	sb_stack_settings_free(&set);
	assert_no_diags(fx);

	char *path = write_file(fx, "web/.stackback/config",
				"# this stack lives on XFS\n"
				"SNAPSHOT_MODE = Reflink\n"
				"SNAPSHOT_STAGING=../.staging   # beside the stack\n"
				"[stackback]\n"
				"RESTIC_PASSWORD=not here\n"
				"FROBNICATE=1\n");
	assert_int_equal(sb_config_load_stack(&fx->cfg, stack, &set, &fx->diags), 0);
	assert_int_equal(set.snapshot_mode, SB_SNAPSHOT_MODE_REFLINK);
	/* Relative to the stack directory, not to .stackback/. */
	char *want = xasprintf("%s/web/../.staging", fx->dir);
	assert_string_equal(set.snapshot_staging, want);
	free(want);
	sb_stack_settings_free(&set);
	assert_diag(fx, path, 5, SB_DIAG_WARNING, "RESTIC_PASSWORD cannot be set for one stack");
	assert_diag(fx, path, 6, SB_DIAG_WARNING, "unknown key FROBNICATE");
	assert_int_equal(sb_diags_count(&fx->diags, SB_DIAG_ERROR), 0);
	/* The global config is untouched. */
	assert_int_equal(fx->cfg.snapshot_mode, SB_SNAPSHOT_MODE_BTRFS);
	assert_null(fx->cfg.restic_password);
	sb_diags_free(&fx->diags);

	/* An empty value means the default: the staging area next to the stack. */
	free(path);
	path = write_file(fx, "web/.stackback/config", "SNAPSHOT_MODE=off\nSNAPSHOT_STAGING=\n");
	assert_int_equal(sb_config_load_stack(&fx->cfg, stack, &set, &fx->diags), 0);
	assert_int_equal(set.snapshot_mode, SB_SNAPSHOT_MODE_OFF);
	assert_null(set.snapshot_staging);
	sb_stack_settings_free(&set);
	assert_no_diags(fx);
	free(path);
	free(dot);
	free(stack);
}

static void test_stack_settings_garbage(void **state)
{
	struct fx *fx = *state;
	sb_config_defaults(&fx->cfg);
	char *stack = xasprintf("%s/db", fx->dir);
	char *dot = xasprintf("%s/.stackback", stack);
	assert_int_equal(sb_mkdir_p(dot, 0755), 0);
	static const struct {
		const char *text;
		size_t len;
		int line;
		const char *error;
	} cases[] = {
		{"SNAPSHOT_MODE=zfs\n", 0, 1, "SNAPSHOT_MODE: unknown value 'zfs' (expected off, auto, btrfs or reflink)"},
		{"\nSNAPSHOT_MODE\n", 0, 2, "malformed line"},
		{"SNAPSHOT_MODE='btrfs\n", 0, 1, "unterminated quote"},
		{"export SNAPSHOT_MODE=auto\n", 0, 1, "'export' is not supported"},
		{"SNAPSHOT_MODE=auto\0\n", 20, 1, "NUL byte"},
		{"[stackback\n", 0, 1, "missing ']'"},
		{"\x7f\x01=\n", 0, 1, "control character"},
	};
	for (size_t i = 0; i < SB_ARRAY_SIZE(cases); i++) {
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
		char *path = write_bytes(fx, "db/.stackback/config", cases[i].text, len, 0644);
		struct sb_stack_settings set;
		assert_int_equal(sb_config_load_stack(&fx->cfg, stack, &set, &fx->diags), -1);
		assert_diag(fx, path, cases[i].line, SB_DIAG_ERROR, cases[i].error);
		/* What could not be read keeps the global value. */
		assert_int_equal(set.snapshot_mode, fx->cfg.snapshot_mode);
		sb_stack_settings_free(&set);
		sb_diags_free(&fx->diags);
		free(path);
	}

	/* Random bytes: errors at FILE:LINE, never a crash. */
	size_t len = 64 * 1024;
	char *data = xmalloc(len);
	uint32_t x = 88172645u;
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		data[i] = (char)(x % 5 == 0 ? '\n' : x % 9 == 0 ? '=' : (x >> 8) & 0xff);
	}
	char *path = write_bytes(fx, "db/.stackback/config", data, len, 0644);
	free(data);
	struct sb_stack_settings set;
	assert_int_equal(sb_config_load_stack(&fx->cfg, stack, &set, &fx->diags), -1);
	assert_true(sb_diags_count(&fx->diags, SB_DIAG_ERROR) > 0);
	sb_stack_settings_free(&set);
	free(path);

	/* A directory where the file should be: one error for the file as a whole. */
	sb_diags_free(&fx->diags);
	path = xasprintf("%s/config", dot);
	unlink(path);
	assert_int_equal(mkdir(path, 0755), 0);
	assert_int_equal(sb_config_load_stack(&fx->cfg, stack, &set, &fx->diags), -1);
	assert_diag(fx, path, 0, SB_DIAG_ERROR, "not a regular file");
	sb_stack_settings_free(&set);
	free(path);
	free(dot);
	free(stack);
}

static void test_diags_print(void **state)
{
	(void)state;
	struct sb_diags d = {0};
	sb_diags_add(&d, "/etc/x.ini", 7, SB_DIAG_WARNING, "unknown key %s (ignored)", "FOO");
	sb_diags_add(&d, "/etc/x.ini", 0, SB_DIAG_ERROR, "whole file");
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	sb_diags_print(&d, out);
	fclose(out);
	assert_string_equal(buf, "/etc/x.ini:7: warning: unknown key FOO (ignored)\n"
				 "/etc/x.ini: error: whole file\n");
	assert_int_equal(sb_diags_count(&d, SB_DIAG_ERROR), 1);
	assert_int_equal(sb_diags_count(&d, SB_DIAG_WARNING), 1);
	free(buf);
	sb_diags_free(&d);
	assert_int_equal(d.n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_grammar, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quotes_and_empty_values, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flat_form_and_aliases, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ignored_legacy_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_keys_and_sections, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_values, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_huge_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nul_and_control_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_binary_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unreadable_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_required_and_passwords, setup, teardown),
		cmocka_unit_test_setup_teardown(test_permissions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_relative_paths, setup, teardown),
		cmocka_unit_test_setup_teardown(test_derived_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_layering, setup, teardown),
		cmocka_unit_test_setup_teardown(test_env_overrides, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rclone_source_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_show, setup, teardown),
		cmocka_unit_test_setup_teardown(test_template_loads, setup, teardown),
		cmocka_unit_test(test_split_command),
		cmocka_unit_test_setup_teardown(test_password, setup, teardown),
		cmocka_unit_test(test_diags_print),
		cmocka_unit_test_setup_teardown(test_stack_settings, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stack_settings_garbage, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
