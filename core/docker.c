#include "stackback/docker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stackback/log.h"
#include "stackback/runner.h"
#include "stackback/util.h"

/*
 * `stop -t N` lets each container take N seconds before docker kills it,
 * then compose still has to collect the results: the runner's own
 * timeout for stop/down is N plus this margin, so it never cuts off a
 * stop that docker is about to finish by force.
 */
#define SB_COMPOSE_STOP_MARGIN_S 30

/* `docker info` and `docker compose version` answer in well under a second when healthy. */
#define SB_DOCKER_PROBE_TIMEOUT_S 10

/*
 * Inherited variables that would point compose at another project than
 * the stack's own directory (the stack's .env file still applies: it is
 * read from the project directory, not from our environment).
 */
static const char *const compose_env_del[] = {
	"COMPOSE_PROJECT_NAME",
	"COMPOSE_FILE",
	NULL,
};

const char *sb_stack_state_name(enum sb_stack_state s)
{
	switch (s) {
	case SB_STATE_RUNNING:
		return "running";
	case SB_STATE_STOPPED:
		return "stopped";
	case SB_STATE_PARTIAL:
		return "partial";
	case SB_STATE_MISSING:
		return "missing";
	case SB_STATE_UNKNOWN:
		break;
	}
	return "unknown";
}

void sb_compose_free(struct sb_compose *compose)
{
	sb_strv_free(&compose->argv);
}

static char *compose_name(const struct sb_compose *compose)
{
	struct sb_buf b = {0};
	for (size_t i = 0; i < compose->argv.n; i++) {
		if (i)
			sb_buf_puts(&b, " ");
		sb_buf_puts(&b, compose->argv.v[i]);
	}
	return sb_buf_steal(&b);
}

static bool command_exists(const char *prog)
{
	if (strchr(prog, '/'))
		return access(prog, X_OK) == 0;
	return sb_program_exists(prog);
}

int sb_compose_detect(const struct sb_config *cfg, struct sb_compose *compose, char **err)
{
	*compose = (struct sb_compose){0};
	if (cfg->compose_cmd && *cfg->compose_cmd) {
		/* The same quote-aware splitting `config check` validated it with. */
		cleanup_free char *split_err = NULL;
		if (sb_split_command(cfg->compose_cmd, &compose->argv, &split_err) < 0) {
			*err = xasprintf("COMPOSE_CMD: %s", split_err);
			sb_compose_free(compose);
			return -1;
		}
		if (compose->argv.n == 0) {
			*err = xstrdup("COMPOSE_CMD is blank");
			return -1;
		}
		if (!command_exists(compose->argv.v[0])) {
			*err = xasprintf("COMPOSE_CMD '%s': %s not found", cfg->compose_cmd, compose->argv.v[0]);
			sb_compose_free(compose);
			return -1;
		}
		return 0;
	}

	if (sb_program_exists("docker")) {
		const char *argv[] = {"docker", "compose", "version", NULL};
		struct sb_run_opts o = {.argv = argv, .timeout_s = SB_DOCKER_PROBE_TIMEOUT_S};
		struct sb_run_result res;
		int rc = sb_run(&o, &res);
		sb_run_result_free(&res);
		if (rc == 0) {
			sb_strv_push(&compose->argv, "docker");
			sb_strv_push(&compose->argv, "compose");
			return 0;
		}
	}
	if (sb_program_exists("docker-compose")) {
		sb_strv_push(&compose->argv, "docker-compose");
		return 0;
	}
	*err = xstrdup("no compose command found (install docker compose v2 or docker-compose)");
	return -1;
}

static bool compose_file_present(const struct sb_stack *stack)
{
	struct stat st;
	return stack->compose_file && stat(stack->compose_file, &st) == 0 && S_ISREG(st.st_mode);
}

/*
 * Runs `COMPOSE -f FILE --project-directory DIR VERB...` in the stack's
 * directory. Returns 0, or -1 with *err "COMPOSE VERB <what went wrong>".
 */
static int compose_run(const struct sb_compose *compose, const struct sb_stack *stack,
		       const char *const *verb, double timeout_s, const atomic_bool *cancel,
		       char **out, char **err)
{
	struct sb_strv argv = {0};
	for (size_t i = 0; i < compose->argv.n; i++)
		sb_strv_push(&argv, compose->argv.v[i]);
	sb_strv_push(&argv, "-f");
	sb_strv_push(&argv, stack->compose_file);
	sb_strv_push(&argv, "--project-directory");
	sb_strv_push(&argv, stack->path);
	for (size_t i = 0; verb[i]; i++)
		sb_strv_push(&argv, verb[i]);

	struct sb_run_opts o = {
		.argv = (const char *const *)argv.v,
		.env_del = compose_env_del,
		.cwd = stack->path,
		.timeout_s = timeout_s,
		.cancel = cancel,
		.capture_stdout = out != NULL,
		.capture_stderr = true,
	};
	sb_debug("stack '%s': running %s %s", stack->name, compose->argv.v[0], verb[0]);
	struct sb_run_result res;
	int rc = sb_run(&o, &res);
	if (rc == 0) {
		if (out) {
			*out = res.out;
			res.out = NULL;
		}
	} else {
		cleanup_free char *why = sb_run_describe(&res, timeout_s);
		cleanup_free char *name = compose_name(compose);
		*err = xasprintf("%s %s %s", name, verb[0], why);
	}
	sb_run_result_free(&res);
	sb_strv_free(&argv);
	return rc == 0 ? 0 : -1;
}

/* Splits compose's one-name-per-line output into a list (blank lines dropped). */
static void split_names(const char *text, struct sb_strv *names)
{
	cleanup_free char *copy = xstrdup(text);
	char *save = NULL;
	for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		sb_strstrip(l);
		if (*l && !sb_strv_contains(names, l))
			sb_strv_push(names, l);
	}
}

/*
 * Fast path: compose labels every container it creates with its project
 * directory, and `docker ps` answers in ~20 ms where each docker-compose
 * v1 call costs 0.3–1.5 s. Fills the services that have a running
 * container and the number of containers seen. Returns -1 when docker
 * cannot be asked.
 */
static int containers_by_label(const struct sb_config *cfg, const struct sb_stack *stack,
			       struct sb_strv *running, size_t *seen, size_t *down)
{
	cleanup_free char *dir_filter = xasprintf("label=com.docker.compose.project.working_dir=%s", stack->path);
	const char *argv[] = {"docker", "ps", "-a", "--filter", dir_filter, "--filter",
			      "label=com.docker.compose.oneoff=False", "--format",
			      "{{.State}}\t{{.Label \"com.docker.compose.service\"}}", NULL};
	struct sb_run_opts o = {
		.argv = argv,
		.timeout_s = (double)cfg->docker_timeout,
		.capture_stdout = true,
	};
	struct sb_run_result res = {0};
	int rc = sb_run(&o, &res);
	*seen = *down = 0;
	if (rc == 0 && res.out) {
		cleanup_free char *copy = xstrdup(res.out);
		char *save = NULL;
		for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
			char *service = strchr(l, '\t');
			if (!service)
				continue;
			*service++ = '\0';
			(*seen)++;
			/* A restarting container is as good as running: it must be stopped too. */
			if (strcmp(l, "running") == 0 || strcmp(l, "restarting") == 0) {
				if (!sb_strv_contains(running, service))
					sb_strv_push(running, service);
			} else {
				(*down)++;
			}
		}
	}
	sb_run_result_free(&res);
	return rc == 0 ? 0 : -1;
}

/* exact: also ask compose for the services its file defines when every container runs. */
static enum sb_stack_state docker_state(const struct sb_config *cfg, const struct sb_compose *compose,
					const struct sb_stack *stack, bool exact, char **err)
{
	if (!compose_file_present(stack))
		return SB_STATE_MISSING;
	struct sb_strv running = {0};
	size_t seen = 0, down = 0;
	enum sb_stack_state st = SB_STATE_UNKNOWN;
	cleanup_free char *all_out = NULL;
	bool labels_ok = containers_by_label(cfg, stack, &running, &seen, &down) == 0;
	if (labels_ok && seen > 0 && running.n == 0) {
		st = SB_STATE_STOPPED;
		goto out;
	}
	if (labels_ok && seen > 0 && down > 0) {
		st = SB_STATE_PARTIAL;
		goto out;
	}
	if (!exact && labels_ok && seen > 0) {
		st = SB_STATE_RUNNING;
		goto out;
	}
	/*
	 * Every container up, or none found (never created, taken down, or
	 * started from another path): only compose knows every service the
	 * file defines — `ps` misses never-started ones.
	 */
	static const char *const all_verb[] = {"config", "--services", NULL};
	if (compose_run(compose, stack, all_verb, (double)cfg->docker_timeout, NULL, &all_out, err) < 0)
		goto out;
	if (!labels_ok || seen == 0) {
		static const char *const running_verb[] = {"ps", "--services", "--filter", "status=running", NULL};
		cleanup_free char *running_out = NULL;
		if (compose_run(compose, stack, running_verb, (double)cfg->docker_timeout, NULL, &running_out, err) < 0)
			goto out;
		split_names(running_out, &running);
	}
	struct sb_strv all = {0};
	split_names(all_out, &all);
	size_t up = 0;
	for (size_t i = 0; i < running.n; i++)
		if (sb_strv_contains(&all, running.v[i]))
			up++;
	st = up == 0 ? SB_STATE_STOPPED : up >= all.n ? SB_STATE_RUNNING : SB_STATE_PARTIAL;
	sb_strv_free(&all);
out:
	sb_strv_free(&running);
	return st;
}

enum sb_stack_state sb_docker_state(const struct sb_config *cfg, const struct sb_compose *compose,
				    const struct sb_stack *stack, char **err)
{
	return docker_state(cfg, compose, stack, true, err);
}

enum sb_stack_state sb_docker_state_for_job(const struct sb_config *cfg, const struct sb_compose *compose,
					    const struct sb_stack *stack, char **err)
{
	return docker_state(cfg, compose, stack, false, err);
}

int sb_docker_stop(const struct sb_config *cfg, const struct sb_compose *compose,
		   const struct sb_stack *stack, const atomic_bool *cancel, char **err)
{
	if (!compose_file_present(stack)) {
		*err = xasprintf("no compose file in '%s'", stack->path);
		return -1;
	}
	cleanup_free char *t = xasprintf("%ld", cfg->docker_timeout);
	const char *verb[] = {cfg->stop_mode == SB_STOP_MODE_DOWN ? "down" : "stop", "-t", t, NULL};
	double timeout = (double)(cfg->docker_timeout + SB_COMPOSE_STOP_MARGIN_S);
	int rc = compose_run(compose, stack, verb, timeout, cancel, NULL, err);
	if (rc < 0) {
		/*
		 * The engine goes on stopping what a cancelled or killed client
		 * asked it to: a container in its grace period still shows as
		 * running, so the caller's start would be a no-op and the stack
		 * would go down a moment later, with the journal cleared. The
		 * same verb again (never cancelled) returns once that stop is
		 * over; with the engine unreachable it fails at once.
		 */
		cleanup_free char *again = NULL;
		if (compose_run(compose, stack, verb, timeout, NULL, NULL, &again) < 0)
			sb_debug("stack '%s': %s again failed: %s", stack->name, verb[0], again);
	}
	return rc;
}

int sb_docker_start(const struct sb_config *cfg, const struct sb_compose *compose,
		    const struct sb_stack *stack, char **err)
{
	if (!compose_file_present(stack)) {
		*err = xasprintf("no compose file in '%s'", stack->path);
		return -1;
	}
	static const char *const start_verb[] = {"start", NULL};
	static const char *const up_verb[] = {"up", "-d", NULL};
	/* No cancel here: a stack we stopped is always brought back. */
	return compose_run(compose, stack, cfg->stop_mode == SB_STOP_MODE_DOWN ? up_verb : start_verb,
			   (double)cfg->docker_timeout, NULL, NULL, err);
}

bool sb_docker_engine_ok(const struct sb_config *cfg, char **err)
{
	double timeout = SB_DOCKER_PROBE_TIMEOUT_S;
	if (cfg->docker_timeout > 0 && cfg->docker_timeout < timeout)
		timeout = (double)cfg->docker_timeout;
	const char *argv[] = {"docker", "info", "--format", "{{.ServerVersion}}", NULL};
	struct sb_run_opts o = {.argv = argv, .timeout_s = timeout, .capture_stderr = true};
	struct sb_run_result res;
	int rc = sb_run(&o, &res);
	if (rc != 0) {
		cleanup_free char *why = sb_run_describe(&res, timeout);
		*err = xasprintf("docker engine not reachable: docker info %s", why);
	}
	sb_run_result_free(&res);
	return rc == 0;
}
