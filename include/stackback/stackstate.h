/**
 * @file stackstate.h
 * The daemon's cache of Docker stack states (`stacks/NAME/state`). A
 * filesystem request must never spawn docker, so one prober thread asks
 * docker (sb_docker_state()) on behalf of readers, who wait a bounded
 * time for the answer. Knows nothing of FUSE.
 *
 * Threads: every function may be called from any thread; the prober is
 * the only thread that runs docker. Lock order: the cache's mutex is a
 * leaf.
 */
#ifndef STACKBACK_STACKSTATE_H
#define STACKBACK_STACKSTATE_H

#include "stackback/config.h"
#include "stackback/docker.h"
#include "stackback/stacks.h"

/** How long an answer from docker is served before it is asked again, seconds. */
#define SB_STACK_STATE_TTL 5.0

struct sb_stack_states;

/** Creates a cache for cfg (borrowed: it must outlive the cache). Never fails. */
struct sb_stack_states *sb_stack_states_new(const struct sb_config *cfg);

/** Starts the prober thread. Returns 0, or -1 with *err (caller frees). */
int sb_stack_states_start(struct sb_stack_states *s, char **err);

/**
 * The state of stack: a missing stack is SB_STATE_MISSING at once; an
 * answer younger than SB_STACK_STATE_TTL is returned at once; otherwise
 * the prober is asked and the caller waits up to wait_s seconds (0 = not
 * at all) for it, then gets the previous answer, or SB_STATE_UNKNOWN if
 * there was none.
 */
enum sb_stack_state sb_stack_states_get(struct sb_stack_states *s, const struct sb_stack *stack,
					double wait_s);

/** Forgets every answer (a job stopped or started stacks). */
void sb_stack_states_invalidate(struct sb_stack_states *s);

/** Stops and joins the prober; waiting readers get their fallback. Idempotent. */
void sb_stack_states_stop(struct sb_stack_states *s);

/** Frees a stopped (or never started) cache. NULL is ignored. */
void sb_stack_states_free(struct sb_stack_states *s);

#endif
