#include "stackback/rclone.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "adapter-json.h"
#include "stackback/log.h"
#include "stackback/runner.h"
#include "stackback/util.h"

/*
 * sync and check get no overall deadline from us: a first upload of a
 * large repository can take a day. What bounds them is rclone's own
 * --contimeout (connecting) and --timeout (a transfer idle that long is
 * broken), both REMOTE_TIMEOUT, plus the job's cancel.
 */
#define SB_RCLONE_NO_DEADLINE 0

/* ---- parsers ---- */

int sb_rclone_parse_stats_line(const char *line, size_t len, struct sb_rclone_progress *p)
{
	struct json_object *o = sb_json_parse(line, len);
	if (!o)
		return -1;
	int rc = -1;
	struct json_object *st;
	if (!json_object_is_type(o, json_type_object)) {
		rc = -1;
	} else if (!json_object_object_get_ex(o, "stats", &st)) {
		rc = 0;
	} else if (json_object_is_type(st, json_type_object)) {
		struct sb_rclone_progress np = {.eta_s = -1};
		double eta = -1;
		if (sb_json_get_u64(st, "bytes", &np.bytes_done) == 0 &&
		    sb_json_get_u64(st, "totalBytes", &np.bytes_total) == 0 &&
		    sb_json_get_u64(st, "transfers", &np.files_done) == 0 &&
		    sb_json_get_u64(st, "totalTransfers", &np.files_total) == 0 &&
		    sb_json_get_double(st, "eta", &eta) == 0 && sb_json_get_double(st, "speed", &np.speed) == 0) {
			np.eta_s = eta >= 0 ? eta : -1;
			if (np.speed < 0)
				np.speed = 0;
			if (np.bytes_total > 0)
				np.percent = np.bytes_done >= np.bytes_total
						     ? 100.0
						     : 100.0 * (double)np.bytes_done / (double)np.bytes_total;
			*p = np;
			rc = 1;
		}
	}
	json_object_put(o);
	return rc;
}

int sb_rclone_parse_check_line(const char *line, size_t len, struct sb_rclone_check *chk)
{
	if (len < 3 || line[1] != ' ')
		return -1;
	switch (line[0]) {
	case '=':
		chk->matched++;
		return 0;
	case '+':
		chk->missing_on_dst++;
		return 0;
	case '-':
		chk->missing_on_src++;
		return 0;
	case '*':
		chk->differences++;
		return 0;
	case '!':
		chk->errors++;
		return 0;
	}
	return -1;
}

/* ---- errors ---- */

/* Drops rclone's "2024/01/02 03:04:05 " log prefix. */
static const char *skip_timestamp(const char *s)
{
	static const char shape[] = "dddd/dd/dd dd:dd:dd ";
	for (size_t i = 0; i < sizeof(shape) - 1; i++) {
		bool digit = s[i] >= '0' && s[i] <= '9';
		if (shape[i] == 'd' ? !digit : s[i] != shape[i])
			return s;
	}
	return s + sizeof(shape) - 1;
}

/*
 * The telling part of rclone's stderr: its closing "Failed to ..." line,
 * else the last error from the JSON log ("object: msg"), else the last
 * line. Caller frees; NULL if stderr was empty.
 */
static char *rclone_reason(const char *text)
{
	char *failed = NULL, *json_error = NULL, *last = NULL;
	for (const char *p = text ? text : ""; *p;) {
		const char *end = strchrnul(p, '\n');
		struct json_object *o = sb_json_parse(p, (size_t)(end - p));
		if (o && json_object_is_type(o, json_type_object)) {
			const char *level = sb_json_get_str(o, "level");
			const char *msg = sb_json_get_str(o, "msg");
			const char *object = sb_json_get_str(o, "object");
			if (level && msg && strcmp(level, "error") == 0) {
				free(json_error);
				char *raw = object && *object ? xasprintf("%s: %s", object, msg) : xstrdup(msg);
				json_error = sb_run_printable(raw, strlen(raw));
				free(raw);
			}
		} else {
			char *line = sb_run_printable(p, (size_t)(end - p));
			const char *body = skip_timestamp(line);
			if (sb_str_has_prefix(body, "Failed to ")) {
				free(failed);
				failed = xasprintf("failed to %s", body + strlen("Failed to "));
			}
			if (*body) {
				free(last);
				last = xstrdup(body);
			}
			free(line);
		}
		json_object_put(o);
		p = *end ? end + 1 : end;
	}
	char *pick = failed ? failed : json_error ? json_error : last;
	if (pick != failed)
		free(failed);
	if (pick != json_error)
		free(json_error);
	if (pick != last)
		free(last);
	return pick;
}

/* One phrase for a failed rclone run; verb is "sync", "check", "lsd" or "copyto". */
static char *rclone_error(const char *verb, const struct sb_run_result *res, double timeout_s)
{
	switch (res->outcome) {
	case SB_RUN_EXITED: {
		cleanup_free char *why = rclone_reason(res->err);
		return xasprintf("rclone %s exited %d: %s", verb, res->status, why ? why : "no error message");
	}
	case SB_RUN_SPAWN_FAILED:
		if (res->status == ENOENT && !res->err)
			return xstrdup("rclone is not installed (not found in PATH)");
		break;
	case SB_RUN_CANCELLED:
		return xasprintf("rclone %s cancelled", verb);
	case SB_RUN_TIMED_OUT:
		return xasprintf("rclone %s timed out after %gs", verb, timeout_s);
	case SB_RUN_SIGNALED:
		break;
	}
	cleanup_free char *why = sb_run_describe(res, timeout_s);
	return xasprintf("rclone %s %s", verb, why);
}

/* ---- commands ---- */

char *sb_rclone_remote_spec(const struct sb_config *cfg)
{
	return xasprintf("%s:%s", cfg->rclone_remote ? cfg->rclone_remote : "",
			 cfg->rclone_path ? cfg->rclone_path : "");
}

/* Flags every call shares: the config file and the connection timeouts. */
static void common_flags(const struct sb_config *cfg, struct sb_strv *argv, long timeout_s)
{
	if (cfg->rclone_config && *cfg->rclone_config) {
		sb_strv_push(argv, "--config");
		sb_strv_push(argv, cfg->rclone_config);
	}
	if (timeout_s > 0) {
		sb_strv_push(argv, "--contimeout");
		sb_strv_push_owned(argv, xasprintf("%lds", timeout_s));
		sb_strv_push(argv, "--timeout");
		sb_strv_push_owned(argv, xasprintf("%lds", timeout_s));
	}
}

struct sync_ctx {
	sb_rclone_progress_fn fn;
	void *userdata;
	struct sb_rclone_progress last;
	bool have_stats;
};

static void sync_line(void *userdata, enum sb_stream stream, const char *line, size_t len)
{
	struct sync_ctx *ctx = userdata;
	/* rclone logs, stats included, go to stderr. */
	if (stream != SB_STREAM_STDERR)
		return;
	struct sb_rclone_progress p;
	if (sb_rclone_parse_stats_line(line, len, &p) != 1)
		return;
	ctx->last = p;
	ctx->have_stats = true;
	if (ctx->fn)
		ctx->fn(ctx->userdata, &p);
}

int sb_rclone_sync(const struct sb_config *cfg, const char *src, const char *dst, bool dry_run,
		   const atomic_bool *cancel, sb_rclone_progress_fn fn, void *userdata,
		   struct sb_rclone_result *res, char **err)
{
	*res = (struct sb_rclone_result){0};
	struct sb_strv argv = {0};
	sb_strv_push(&argv, "rclone");
	sb_strv_push(&argv, "sync");
	sb_strv_push(&argv, src);
	sb_strv_push(&argv, dst);
	/* JSON log lines carry a "stats" object every second and at the end. */
	sb_strv_push(&argv, "--use-json-log");
	sb_strv_push(&argv, "--stats");
	sb_strv_push(&argv, "1s");
	sb_strv_push(&argv, "--stats-log-level");
	sb_strv_push(&argv, "NOTICE");
	sb_strv_push(&argv, "-v");
	if (cfg->transfers > 0) {
		sb_strv_push(&argv, "--transfers");
		sb_strv_push_owned(&argv, xasprintf("%ld", cfg->transfers));
	}
	if (cfg->retries > 0) {
		sb_strv_push(&argv, "--retries");
		sb_strv_push_owned(&argv, xasprintf("%ld", cfg->retries));
	}
	/*
	 * rclone's default of 10 nests: an upload retries 10 times, each
	 * retrying its parent-directory call 10 times at up to 2 s apart, so
	 * a remote that died mid-sync took 6.5 minutes to be reported (webdav,
	 * two files in flight). 3 still rides out a transient error; RETRIES
	 * reruns the whole sync after that.
	 */
	sb_strv_push(&argv, "--low-level-retries");
	sb_strv_push(&argv, "3");
	if (cfg->bandwidth && *cfg->bandwidth) {
		sb_strv_push(&argv, "--bwlimit");
		sb_strv_push(&argv, cfg->bandwidth);
	}
	common_flags(cfg, &argv, cfg->remote_timeout);
	if (dry_run)
		sb_strv_push(&argv, "--dry-run");

	struct sync_ctx ctx = {.fn = fn, .userdata = userdata};
	struct sb_run_opts o = {
		.argv = (const char *const *)argv.v,
		.timeout_s = SB_RCLONE_NO_DEADLINE,
		.cancel = cancel,
		.on_line = sync_line,
		.userdata = &ctx,
		.capture_stderr = true,
	};
	sb_debug("running rclone sync '%s' → '%s'%s", src, dst, dry_run ? " (dry run)" : "");
	struct sb_run_result rr;
	int rc = sb_run(&o, &rr);
	sb_strv_free(&argv);
	res->duration_s = rr.duration_s;
	if (ctx.have_stats) {
		res->bytes = ctx.last.bytes_done;
		res->files = ctx.last.files_done;
	}
	if (rc != 0)
		*err = rclone_error("sync", &rr, 0);
	sb_run_result_free(&rr);
	return rc == 0 ? 0 : -1;
}

struct check_ctx {
	struct sb_rclone_check *chk;
	char *first_error;   /* the first "! path", for the message */
};

static void check_line(void *userdata, enum sb_stream stream, const char *line, size_t len)
{
	struct check_ctx *ctx = userdata;
	if (stream == SB_STREAM_STDOUT) {
		uint64_t errors = ctx->chk->errors;
		if (sb_rclone_parse_check_line(line, len, ctx->chk) == 0 && ctx->chk->errors > errors &&
		    !ctx->first_error)
			ctx->first_error = sb_run_printable(line + 2, len - 2);
		return;
	}
	/*
	 * Without a hash both sides support (webdav with vendor=other, for
	 * one), rclone compares sizes only and says so.
	 */
	if (memmem(line, len, "No common hash found", strlen("No common hash found")) ||
	    memmem(line, len, "hashes could not be checked", strlen("hashes could not be checked")))
		ctx->chk->by_hash = false;
}

int sb_rclone_check(const struct sb_config *cfg, const char *src, const char *dst, const atomic_bool *cancel,
		    struct sb_rclone_check *chk, char **err)
{
	*chk = (struct sb_rclone_check){.by_hash = true};
	struct sb_strv argv = {0};
	sb_strv_push(&argv, "rclone");
	sb_strv_push(&argv, "check");
	sb_strv_push(&argv, src);
	sb_strv_push(&argv, dst);
	/* One line per file on stdout, marked =, +, -, * or !: exact counts per side. */
	sb_strv_push(&argv, "--combined");
	sb_strv_push(&argv, "-");
	common_flags(cfg, &argv, cfg->remote_timeout);

	struct check_ctx ctx = {.chk = chk};
	struct sb_run_opts o = {
		.argv = (const char *const *)argv.v,
		.timeout_s = SB_RCLONE_NO_DEADLINE,
		.cancel = cancel,
		.on_line = check_line,
		.userdata = &ctx,
		.capture_stderr = true,
	};
	sb_debug("running rclone check '%s' '%s'", src, dst);
	struct sb_run_result rr;
	int rc = sb_run(&o, &rr);
	sb_strv_free(&argv);
	int ret;
	if (rr.outcome != SB_RUN_EXITED) {
		*err = rclone_error("check", &rr, 0);
		ret = -1;
	} else if (chk->errors > 0) {
		*err = xasprintf("rclone check could not read %llu files (first: %s)",
				 (unsigned long long)chk->errors, ctx.first_error ? ctx.first_error : "?");
		ret = -1;
	} else if (chk->differences + chk->missing_on_dst + chk->missing_on_src > 0) {
		ret = 1;
	} else if (rc == 0) {
		ret = 0;
	} else {
		/* Failed without naming a file: the remote itself is the problem. */
		*err = rclone_error("check", &rr, 0);
		ret = -1;
	}
	free(ctx.first_error);
	sb_run_result_free(&rr);
	return ret;
}

int sb_rclone_reachable(const struct sb_config *cfg, char **err)
{
	cleanup_free char *remote = xasprintf("%s:", cfg->rclone_remote ? cfg->rclone_remote : "");
	/*
	 * rclone's own timeouts at half of REMOTE_TIMEOUT, so that its
	 * message (refused, DNS, TLS...) comes before our deadline does.
	 */
	long half = cfg->remote_timeout > 1 ? cfg->remote_timeout / 2 : 1;
	double deadline = cfg->remote_timeout > 0 ? (double)cfg->remote_timeout : 60;
	struct sb_strv argv = {0};
	sb_strv_push(&argv, "rclone");
	sb_strv_push(&argv, "lsd");
	sb_strv_push(&argv, remote);
	sb_strv_push(&argv, "--retries");
	sb_strv_push(&argv, "1");
	sb_strv_push(&argv, "--low-level-retries");
	sb_strv_push(&argv, "1");
	common_flags(cfg, &argv, half);
	struct sb_run_opts o = {
		.argv = (const char *const *)argv.v,
		.timeout_s = deadline,
		.capture_stderr = true,
	};
	struct sb_run_result rr;
	int rc = sb_run(&o, &rr);
	sb_strv_free(&argv);
	if (rc != 0) {
		cleanup_free char *why = rclone_error("lsd", &rr, deadline);
		*err = xasprintf("remote '%s' is not reachable: %s", remote, why);
	}
	sb_run_result_free(&rr);
	return rc == 0 ? 0 : -1;
}

int sb_rclone_fetch(const struct sb_config *cfg, const char *remote_file, const char *local_file,
		    char **err)
{
	struct sb_strv argv = {0};
	sb_strv_push(&argv, "rclone");
	sb_strv_push(&argv, "copyto");
	sb_strv_push(&argv, remote_file);
	sb_strv_push(&argv, local_file);
	sb_strv_push(&argv, "--retries");
	sb_strv_push(&argv, "1");
	sb_strv_push(&argv, "--low-level-retries");
	sb_strv_push(&argv, "3");
	common_flags(cfg, &argv, cfg->remote_timeout);
	struct sb_run_opts o = {
		.argv = (const char *const *)argv.v,
		.timeout_s = SB_RCLONE_NO_DEADLINE,
		.capture_stderr = true,
	};
	struct sb_run_result rr;
	int rc = sb_run(&o, &rr);
	sb_strv_free(&argv);
	int ret = 1;
	/* rclone's exit 3 and 4: directory or file not found. */
	if (rc != 0 && rr.outcome == SB_RUN_EXITED && (rr.status == 3 || rr.status == 4)) {
		ret = 0;
	} else if (rc != 0) {
		*err = rclone_error("copyto", &rr, 0);
		ret = -1;
	}
	sb_run_result_free(&rr);
	return ret;
}
