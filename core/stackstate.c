#include "stackback/stackstate.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stackback/log.h"
#include "stackback/util.h"

/* One stack's last answer from docker. */
struct entry {
	char *name;
	char *path;
	char *compose_file;
	enum sb_stack_state state;
	bool have;      /* state holds an answer */
	double at;      /* monotonic time of the answer; 0 = stale */
	bool pending;   /* a reader asked the prober for a fresh answer */
};

struct sb_stack_states {
	const struct sb_config *cfg;
	pthread_mutex_t mu;        /* protects everything below */
	pthread_cond_t work;       /* a request is pending, or stopping was set */
	pthread_cond_t answered;   /* an answer arrived, or stopping was set */
	struct entry *v;           /* mu */
	size_t n, cap;             /* mu */
	bool started, stopping;    /* mu */
	pthread_t thread;
	/* Only the prober touches these. */
	struct sb_compose compose;
	bool have_compose;
};

struct sb_stack_states *sb_stack_states_new(const struct sb_config *cfg)
{
	struct sb_stack_states *s = xcalloc(1, sizeof(*s));
	s->cfg = cfg;
	pthread_mutex_init(&s->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->work, &ca);
	pthread_cond_init(&s->answered, &ca);
	pthread_condattr_destroy(&ca);
	return s;
}

/* Caller holds mu. Returns the index of name's entry, or -1. */
static long find_locked(struct sb_stack_states *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->v[i].name, name) == 0)
			return (long)i;
	return -1;
}

static void replace(char **field, const char *value)
{
	if (*field && value && strcmp(*field, value) == 0)
		return;
	free(*field);
	*field = xstrdup(value);
}

/* Runs docker for one pending entry; called by the prober without mu. */
static enum sb_stack_state probe(struct sb_stack_states *s, const char *name, const char *path,
				 const char *compose_file)
{
	cleanup_free char *err = NULL;
	if (!s->have_compose) {
		if (sb_compose_detect(s->cfg, &s->compose, &err) < 0) {
			sb_debug("state of stack '%s' unknown: %s", name, err);
			return SB_STATE_UNKNOWN;
		}
		s->have_compose = true;
	}
	struct sb_stack stack = {
		.name = (char *)name,
		.path = (char *)path,
		.compose_file = (char *)compose_file,
		.dirlist_key = (char *)name,
	};
	enum sb_stack_state st = sb_docker_state(s->cfg, &s->compose, &stack, &err);
	if (st == SB_STATE_UNKNOWN)
		sb_debug("state of stack '%s' unknown: %s", name, err ? err : "docker did not answer");
	return st;
}

static void *prober_main(void *arg)
{
	struct sb_stack_states *s = arg;
	pthread_mutex_lock(&s->mu);
	for (;;) {
		long idx = -1;
		while (!s->stopping) {
			for (size_t i = 0; i < s->n && idx < 0; i++)
				if (s->v[i].pending)
					idx = (long)i;
			if (idx >= 0)
				break;
			pthread_cond_wait(&s->work, &s->mu);
		}
		if (s->stopping)
			break;
		struct entry *e = &s->v[idx];
		e->pending = false;
		cleanup_free char *name = xstrdup(e->name);
		cleanup_free char *path = xstrdup(e->path);
		cleanup_free char *compose_file = xstrdup(e->compose_file);
		pthread_mutex_unlock(&s->mu);

		enum sb_stack_state st = probe(s, name, path, compose_file);

		pthread_mutex_lock(&s->mu);
		/* Entries may have moved while docker ran: look it up again. */
		idx = find_locked(s, name);
		if (idx >= 0) {
			s->v[idx].state = st;
			s->v[idx].have = true;
			s->v[idx].at = sb_now_monotonic();
		}
		pthread_cond_broadcast(&s->answered);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

int sb_stack_states_start(struct sb_stack_states *s, char **err)
{
	pthread_mutex_lock(&s->mu);
	s->started = true;
	pthread_mutex_unlock(&s->mu);
	int rc = pthread_create(&s->thread, NULL, prober_main, s);
	if (rc != 0) {
		pthread_mutex_lock(&s->mu);
		s->started = false;
		pthread_mutex_unlock(&s->mu);
		*err = xasprintf("cannot start the docker state thread: %s", strerror(rc));
		return -1;
	}
	return 0;
}

enum sb_stack_state sb_stack_states_get(struct sb_stack_states *s, const struct sb_stack *stack,
					double wait_s)
{
	if (stack->origin == SB_STACK_MISSING || !stack->compose_file)
		return SB_STATE_MISSING;
	pthread_mutex_lock(&s->mu);
	long idx = find_locked(s, stack->name);
	if (idx < 0) {
		if (s->n == s->cap) {
			s->cap = s->cap ? s->cap * 2 : 32;
			s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
		}
		idx = (long)s->n++;
		s->v[idx] = (struct entry){.name = xstrdup(stack->name)};
	}
	struct entry *e = &s->v[idx];
	replace(&e->path, stack->path);
	replace(&e->compose_file, stack->compose_file);
	double now = sb_now_monotonic();
	if (e->have && e->at > 0 && now - e->at < SB_STACK_STATE_TTL) {
		enum sb_stack_state st = e->state;
		pthread_mutex_unlock(&s->mu);
		return st;
	}
	if (s->started && !s->stopping) {
		e->pending = true;
		pthread_cond_signal(&s->work);
		double deadline = now + wait_s;
		for (;;) {
			idx = find_locked(s, stack->name);
			if (idx < 0 || s->stopping || (s->v[idx].at > now))
				break;
			double left = deadline - sb_now_monotonic();
			if (left <= 0)
				break;
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			long ns = ts.tv_nsec + (long)(left * 1e9);
			ts.tv_sec += ns / 1000000000L;
			ts.tv_nsec = ns % 1000000000L;
			pthread_cond_timedwait(&s->answered, &s->mu, &ts);
		}
	}
	idx = find_locked(s, stack->name);
	enum sb_stack_state st = idx >= 0 && s->v[idx].have ? s->v[idx].state : SB_STATE_UNKNOWN;
	pthread_mutex_unlock(&s->mu);
	return st;
}

void sb_stack_states_invalidate(struct sb_stack_states *s)
{
	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < s->n; i++)
		s->v[i].at = 0;
	pthread_mutex_unlock(&s->mu);
}

void sb_stack_states_stop(struct sb_stack_states *s)
{
	pthread_mutex_lock(&s->mu);
	bool join = s->started && !s->stopping;
	s->stopping = true;
	pthread_cond_broadcast(&s->work);
	pthread_cond_broadcast(&s->answered);
	pthread_mutex_unlock(&s->mu);
	if (join)
		pthread_join(s->thread, NULL);
}

void sb_stack_states_free(struct sb_stack_states *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++) {
		free(s->v[i].name);
		free(s->v[i].path);
		free(s->v[i].compose_file);
	}
	free(s->v);
	if (s->have_compose)
		sb_compose_free(&s->compose);
	pthread_cond_destroy(&s->answered);
	pthread_cond_destroy(&s->work);
	pthread_mutex_destroy(&s->mu);
	free(s);
}
