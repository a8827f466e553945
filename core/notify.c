/*
 * Notifications (notify.h): NOTIFY_COMMAND through the runner, and
 * healthchecks.io-style pings with curl through the runner. Nothing
 * here can fail a job: every problem becomes one warning line.
 *
 * To watch it work, point NOTIFY_COMMAND at `env` and HEALTHCHECK_URL at
 * `python3 -m http.server`: a backup logs the command's failure only if
 * it fails, and the server prints POST /start, then POST / or /fail.
 */
#include "stackback/notify.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb-build-config.h"
#include "stackback/log.h"
#include "stackback/runner.h"
#include "stackback/util.h"

/* A ping must not hold a job up: connect within 5 s, finish within 10 s, one retry. */
#define PING_CONNECT_TIMEOUT "5"
#define PING_MAX_TIME "10"
#define PING_RUN_TIMEOUT_S 30.0
/* A summary is one line; the notification need not carry a whole log. */
#define SUMMARY_MAX 2000

/* What a notification needs of the configuration (copied for the async path). */
struct target {
	const char *command;  /* NOTIFY_COMMAND, NULL = none */
	const char *url;      /* HEALTHCHECK_URL, NULL = none */
	double command_timeout;
};

struct notice {
	enum sb_notify_event event;
	enum sb_job_kind kind;
	const char *stacks;
	const char *failed;
	const char *summary;
	int job_id;          /* 0: the job never got one */
};

static const char *const event_names[] = {
	[SB_NOTIFY_START] = "start",
	[SB_NOTIFY_SUCCESS] = "success",
	[SB_NOTIFY_FAILURE] = "failure",
};

const char *sb_notify_event_name(enum sb_notify_event e)
{
	return event_names[e];
}

static struct target target_of(const struct sb_config *cfg)
{
	return (struct target){
		.command = cfg->notify_command && *cfg->notify_command ? cfg->notify_command : NULL,
		.url = cfg->healthcheck_url && *cfg->healthcheck_url ? cfg->healthcheck_url : NULL,
		.command_timeout = (double)cfg->hook_timeout,
	};
}

/* The secret restic needs is no business of a notification's child. */
static const char *const child_env_del[] = {"RESTIC_PASSWORD", NULL};

static void command_line(void *userdata, enum sb_stream stream, const char *line, size_t len)
{
	(void)userdata;
	(void)stream;
	sb_debug("notify command: %.*s", (int)len, line);
}

static void run_command(const struct target *t, const struct notice *n)
{
	struct sb_strv argv = {0};
	cleanup_free char *err = NULL;
	if (sb_split_command(t->command, &argv, &err) < 0) {
		sb_warn("NOTIFY_COMMAND not run: %s", err);
		return;
	}
	cleanup_free char *e_event = xasprintf("STACKBACK_EVENT=%s", event_names[n->event]);
	cleanup_free char *e_stage = xasprintf("STACKBACK_STAGE=%s", sb_job_kind_name(n->kind));
	cleanup_free char *e_stack = xasprintf("STACKBACK_STACK=%s", n->stacks ? n->stacks : "");
	cleanup_free char *e_failed = xasprintf("STACKBACK_FAILED=%s", n->failed ? n->failed : "");
	cleanup_free char *e_summary = xasprintf("STACKBACK_SUMMARY=%s", n->summary);
	cleanup_free char *e_job = n->job_id > 0 ? xasprintf("STACKBACK_JOB=%d", n->job_id) : xstrdup("STACKBACK_JOB=");
	const char *env[] = {e_event, e_stage, e_stack, e_failed, e_summary, e_job, NULL};
	struct sb_run_opts o = {
		.argv = (const char *const *)argv.v,
		.env_add = env,
		.env_del = child_env_del,
		.timeout_s = t->command_timeout,
		.on_line = command_line,
		.capture_stderr = true,
	};
	struct sb_run_result res;
	if (sb_run(&o, &res) != 0) {
		cleanup_free char *why = sb_run_describe(&res, t->command_timeout);
		sb_warn("notification command '%s' (%s of %s) failed: %s", argv.v[0], event_names[n->event],
			sb_job_kind_name(n->kind), why);
	} else {
		sb_debug("notification command '%s' ran (%s of %s)", argv.v[0], event_names[n->event],
			 sb_job_kind_name(n->kind));
	}
	sb_run_result_free(&res);
	sb_strv_free(&argv);
}

char *sb_notify_ping_url(const char *base, const char *suffix)
{
	size_t path_len = strcspn(base, "?#");
	/* "https://hc/ping/abc/" + "/fail" must not give "abc//fail"; "https://" stays whole. */
	const char *scheme = strstr(base, "://");
	size_t keep = scheme && (size_t)(scheme - base) < path_len ? (size_t)(scheme - base) + 3 : 0;
	size_t end = path_len;
	while (end > keep && base[end - 1] == '/')
		end--;
	return xasprintf("%.*s%s%s", (int)end, base, suffix, base + path_len);
}

/* Only the stages the nightly timer runs report to a health check. */
static bool pings_for(enum sb_job_kind kind)
{
	return kind == SB_JOB_BACKUP || kind == SB_JOB_SYNC;
}

static void ping(const struct target *t, const struct notice *n)
{
	if (!sb_str_has_prefix(t->url, "http://") && !sb_str_has_prefix(t->url, "https://")) {
		sb_warn("HEALTHCHECK_URL is not an http:// or https:// URL; no ping sent");
		return;
	}
	if (!sb_program_exists("curl")) {
		sb_warn("healthcheck ping (%s of %s) not sent: curl is not installed", event_names[n->event],
			sb_job_kind_name(n->kind));
		return;
	}
	static const char *const suffixes[] = {
		[SB_NOTIFY_START] = "/start",
		[SB_NOTIFY_SUCCESS] = "",
		[SB_NOTIFY_FAILURE] = "/fail",
	};
	cleanup_free char *url = sb_notify_ping_url(t->url, suffixes[n->event]);
	/* The URL carries the check's token: it goes to curl in argv but never into a log line. */
	const char *argv[] = {
		"curl", "--silent", "--show-error", "--fail", "--proto", "=http,https",
		"--connect-timeout", PING_CONNECT_TIMEOUT, "--max-time", PING_MAX_TIME,
		"--retry", "1", "--user-agent", "stackback/" SB_VERSION,
		"--output", "/dev/null", "--data-binary", "@-", url, NULL,
	};
	cleanup_free char *body = xasprintf("%s\n", n->summary);
	struct sb_run_opts o = {
		.argv = argv,
		.env_del = child_env_del,
		.stdin_data = body,
		.stdin_len = strlen(body),
		.timeout_s = PING_RUN_TIMEOUT_S,
		.capture_stderr = true,
	};
	struct sb_run_result res;
	if (sb_run(&o, &res) != 0) {
		cleanup_free char *why = sb_run_describe(&res, PING_RUN_TIMEOUT_S);
		sb_warn("healthcheck ping (%s of %s) failed: curl %s; the job's result stands",
			event_names[n->event], sb_job_kind_name(n->kind), why);
	} else {
		sb_debug("healthcheck ping (%s of %s) sent", event_names[n->event], sb_job_kind_name(n->kind));
	}
	sb_run_result_free(&res);
}

static void send_notice(const struct target *t, const struct notice *n)
{
	if (t->command)
		run_command(t, n);
	if (t->url && pings_for(n->kind))
		ping(t, n);
}

/* One printable line of bounded length, secrets masked. */
static char *clean_summary(const char *s)
{
	cleanup_free char *masked = sb_log_mask(s);
	size_t len = strlen(masked);
	if (len > SUMMARY_MAX)
		len = SUMMARY_MAX;
	return sb_run_printable(masked, len);
}

void sb_notify_job_start(const struct sb_config *cfg, struct sb_job *job)
{
	struct target t = target_of(cfg);
	if ((!t.command && !t.url) || job->req.dry_run)
		return;
	struct sb_buf stacks = {0};
	for (size_t i = 0; i < job->req.stacks.n; i++)
		sb_buf_printf(&stacks, "%s%s", i ? " " : "", job->req.stacks.v[i]);
	cleanup_free char *words = sb_job_request_describe(&job->req);
	cleanup_free char *summary = xasprintf("job %d %s%s%s started", job->id, sb_job_kind_name(job->req.kind),
					       *words ? " " : "", words);
	struct notice n = {
		.event = SB_NOTIFY_START,
		.kind = job->req.kind,
		.stacks = stacks.data ? stacks.data : "",
		.summary = summary,
		.job_id = job->id,
	};
	send_notice(&t, &n);
	sb_buf_free(&stacks);
}

void sb_notify_job_end(const struct sb_config *cfg, struct sb_job *job)
{
	struct target t = target_of(cfg);
	if ((!t.command && !t.url) || job->req.dry_run)
		return;
	struct sb_buf stacks = {0}, failed = {0}, line = {0};
	pthread_mutex_lock(&job->mu);
	enum sb_job_state state = job->state;
	sb_buf_printf(&line, "job %d %s %s", job->id, sb_job_kind_name(job->req.kind), sb_job_state_name(state));
	if (job->summary)
		sb_buf_printf(&line, ": %s", job->summary);
	if (state != SB_JOB_OK && job->error)
		sb_buf_printf(&line, "%s%s", job->summary ? "; " : ": ", job->error);
	for (size_t i = 0; i < job->n_reports; i++) {
		const struct sb_stack_report *r = &job->reports[i];
		sb_buf_printf(&stacks, "%s%s", stacks.len ? " " : "", r->name);
		if (r->result == SB_STACK_FAILED || r->result == SB_STACK_SKIPPED) {
			sb_buf_printf(&failed, "%s%s", failed.len ? " " : "", r->name);
			/* The job's own error names the first failure already. */
			if (r->error && (!job->error || !strstr(job->error, r->error)))
				sb_buf_printf(&line, "; %s", r->error);
		}
	}
	pthread_mutex_unlock(&job->mu);
	cleanup_free char *summary = clean_summary(line.data);
	struct notice n = {
		.event = state == SB_JOB_OK ? SB_NOTIFY_SUCCESS : SB_NOTIFY_FAILURE,
		.kind = job->req.kind,
		.stacks = stacks.data ? stacks.data : "",
		.failed = failed.data ? failed.data : "",
		.summary = summary,
		.job_id = job->id,
	};
	send_notice(&t, &n);
	sb_buf_free(&stacks);
	sb_buf_free(&failed);
	sb_buf_free(&line);
}

static void send_refusal(const struct target *t, enum sb_job_kind kind, const char *reason)
{
	cleanup_free char *line = xasprintf("%s could not start: %s", sb_job_kind_name(kind), reason);
	cleanup_free char *summary = clean_summary(line);
	struct notice n = {.event = SB_NOTIFY_FAILURE, .kind = kind, .summary = summary};
	send_notice(t, &n);
}

void sb_notify_refused(const struct sb_config *cfg, enum sb_job_kind kind, const char *reason)
{
	struct target t = target_of(cfg);
	if (t.command || t.url)
		send_refusal(&t, kind, reason);
}

struct refusal {
	char *command, *url;
	double command_timeout;
	enum sb_job_kind kind;
	char *reason;
};

static void *refusal_main(void *arg)
{
	struct refusal *r = arg;
	struct target t = {.command = r->command, .url = r->url, .command_timeout = r->command_timeout};
	send_refusal(&t, r->kind, r->reason);
	free(r->command);
	free(r->url);
	free(r->reason);
	free(r);
	return NULL;
}

void sb_notify_refused_async(const struct sb_config *cfg, enum sb_job_kind kind, const char *reason)
{
	struct target t = target_of(cfg);
	if (!t.command && !t.url)
		return;
	struct refusal *r = xcalloc(1, sizeof(*r));
	r->command = xstrdup(t.command);
	r->url = xstrdup(t.url);
	r->command_timeout = t.command_timeout;
	r->kind = kind;
	r->reason = xstrdup(reason);
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_t th;
	int rc = pthread_create(&th, &attr, refusal_main, r);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		sb_warn("notification of a refused %s not sent: cannot start a thread: %s", sb_job_kind_name(kind),
			strerror(rc));
		free(r->command);
		free(r->url);
		free(r->reason);
		free(r);
	}
}
