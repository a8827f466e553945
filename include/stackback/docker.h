/**
 * @file docker.h
 * The Docker compose adapter: command detection (`docker compose` v2,
 * else `docker-compose` v1, or COMPOSE_CMD), per-stack running state,
 * stop/start (or down/up -d). Every call goes through the runner with
 * DOCKER_TIMEOUT.
 */
#ifndef STACKBACK_DOCKER_H
#define STACKBACK_DOCKER_H

#include <stdatomic.h>

#include "stackback/config.h"
#include "stackback/stacks.h"

enum sb_stack_state {
	SB_STATE_UNKNOWN,  /**< docker could not be asked */
	SB_STATE_RUNNING,  /**< every service running */
	SB_STATE_STOPPED,  /**< no service running */
	SB_STATE_PARTIAL,  /**< some services running */
	SB_STATE_MISSING,  /**< the stack's directory or compose file is gone */
};

const char *sb_stack_state_name(enum sb_stack_state s);

/** The compose command as argv words, e.g. {"docker","compose"} (owned). */
struct sb_compose {
	struct sb_strv argv;
};

/**
 * Detects the compose command: COMPOSE_CMD split on spaces if set, else
 * `docker compose` if `docker compose version` works, else
 * `docker-compose`. Returns 0, or -1 with *err (caller frees).
 */
int sb_compose_detect(const struct sb_config *cfg, struct sb_compose *compose, char **err);
void sb_compose_free(struct sb_compose *compose);

/**
 * Asks docker for the stack's state: the services the compose file
 * defines against those running. Returns the state; MISSING without
 * asking docker when the compose file is gone; UNKNOWN with *err set
 * (caller frees) when docker fails.
 */
enum sb_stack_state sb_docker_state(const struct sb_config *cfg, const struct sb_compose *compose,
				    const struct sb_stack *stack, char **err);

/**
 * The same for a job, which only needs to know whether the stack runs:
 * when docker shows containers of the stack, their states decide, without
 * asking compose which services its file defines (a docker-compose v1 run
 * costs up to a second before every stop). A service whose container was
 * never created then does not make the stack partial.
 */
enum sb_stack_state sb_docker_state_for_job(const struct sb_config *cfg, const struct sb_compose *compose,
					    const struct sb_stack *stack, char **err);

/**
 * Stops (STOP_MODE=stop) or takes down (down) the stack. Returns 0, or
 * -1 with *err (caller frees).
 */
int sb_docker_stop(const struct sb_config *cfg, const struct sb_compose *compose,
		   const struct sb_stack *stack, const atomic_bool *cancel, char **err);
/** Starts (start) or brings up (up -d) the stack. Returns 0 or -1 with *err. */
int sb_docker_start(const struct sb_config *cfg, const struct sb_compose *compose,
		    const struct sb_stack *stack, char **err);
/** True if the Docker engine answers `docker info` within the timeout. */
bool sb_docker_engine_ok(const struct sb_config *cfg, char **err);

#endif
