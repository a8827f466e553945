#include "stackback/queue.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "stackback/log.h"
#include "stackback/notify.h"
#include "stackback/state.h"
#include "stackback/util.h"

/* How often the worker retries the job lock while an in-process run holds it. */
#define LOCK_RETRY_S 0.5

#define N_KINDS (SB_JOB_RESTORE_STACK + 1)

/* The outcome of the last trigger write of one kind. */
struct trigger_result {
	int job_id;   /* 0 when the last write was refused or there was none */
	char *error;  /* the refusal, NULL otherwise */
};

struct sb_queue {
	const struct sb_config *cfg;
	sb_queue_change_fn change;
	void *userdata;

	/*
	 * Serialises id allocation with the append, so jobs run in id order.
	 * Taken before mu, never while holding it.
	 */
	pthread_mutex_t submit_mu;

	pthread_mutex_t mu;        /* protects everything below */
	pthread_cond_t cond;       /* a job was queued, or stopping was set */
	struct sb_job *waiting[SB_QUEUE_MAX]; /* mu: FIFO, oldest first */
	size_t n_waiting;                     /* mu */
	struct sb_job *running;               /* mu: owned by the worker while it runs */
	enum sb_job_state running_state;      /* mu: the running job's state at its last notify */
	char running_phase[200];              /* mu: its "stack/phase" at its last notify */
	struct sb_job *done[SB_QUEUE_KEEP];   /* mu: finished jobs, oldest first */
	size_t n_done;                        /* mu */
	struct trigger_result triggers[N_KINDS]; /* mu */
	bool started, stopping;               /* mu */
	bool recover;                         /* mu: run sb_recover() before the first job */

	pthread_t worker;
	atomic_uint_fast64_t version;
};

static void changed(struct sb_queue *q, enum sb_queue_event ev, int job_id)
{
	atomic_fetch_add(&q->version, 1);
	if (q->change)
		q->change(q->userdata, ev, job_id);
}

struct sb_queue *sb_queue_new(const struct sb_config *cfg, sb_queue_change_fn change, void *userdata)
{
	struct sb_queue *q = xcalloc(1, sizeof(*q));
	q->cfg = cfg;
	q->change = change;
	q->userdata = userdata;
	pthread_mutex_init(&q->submit_mu, NULL);
	pthread_mutex_init(&q->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&q->cond, &ca);
	pthread_condattr_destroy(&ca);
	atomic_init(&q->version, 1);
	return q;
}

/* The engine's notify hook: tells state changes from progress. Runs without job->mu. */
static void job_notify(void *userdata, struct sb_job *job)
{
	struct sb_queue *q = userdata;
	char phase[sizeof(q->running_phase)];
	pthread_mutex_lock(&job->mu);
	enum sb_job_state st = job->state;
	snprintf(phase, sizeof(phase), "%s/%s", job->progress.stack, job->progress.phase);
	pthread_mutex_unlock(&job->mu);
	pthread_mutex_lock(&q->mu);
	bool state_changed = q->running == job && q->running_state != st;
	bool phase_changed = q->running == job && strcmp(q->running_phase, phase) != 0;
	if (q->running == job) {
		q->running_state = st;
		memcpy(q->running_phase, phase, sizeof(phase));
	}
	pthread_mutex_unlock(&q->mu);
	changed(q, state_changed   ? SB_QUEUE_JOB_STATE
		   : phase_changed ? SB_QUEUE_JOB_PHASE
				   : SB_QUEUE_JOB_PROGRESS,
		job->id);
}

/* Caller holds mu and q->running is set: has the running job reached its final state? */
static bool running_ended_locked(struct sb_queue *q)
{
	pthread_mutex_lock(&q->running->mu);
	bool ended = sb_job_state_final(q->running->state);
	pthread_mutex_unlock(&q->running->mu);
	return ended;
}

/* Caller holds mu. Keeps the newest SB_QUEUE_KEEP finished jobs. */
static void retire_locked(struct sb_queue *q, struct sb_job *job)
{
	if (q->n_done == SB_QUEUE_KEEP) {
		sb_job_free(q->done[0]);
		memmove(q->done, q->done + 1, (SB_QUEUE_KEEP - 1) * sizeof(*q->done));
		q->n_done--;
	}
	q->done[q->n_done++] = job;
}

/* Waits up to seconds on cond; caller holds mu. */
static void wait_locked(struct sb_queue *q, double seconds)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	long ns = ts.tv_nsec + (long)(seconds * 1e9);
	ts.tv_sec += ns / 1000000000L;
	ts.tv_nsec = ns % 1000000000L;
	pthread_cond_timedwait(&q->cond, &q->mu, &ts);
}

/*
 * Takes the job lock, waiting for an in-process run that holds it, but
 * polling so that a shutdown is never stuck behind it. Returns false
 * when the queue stops first.
 */
static bool take_job_lock(struct sb_queue *q, struct sb_lock *lock, const char *purpose)
{
	bool told = false;
	for (;;) {
		cleanup_free char *err = NULL;
		if (sb_lock_acquire(q->cfg, false, lock, &err) == 0)
			return true;
		if (!told) {
			sb_info("%s waits: %s", purpose, err);
			told = true;
		}
		pthread_mutex_lock(&q->mu);
		if (!q->stopping)
			wait_locked(q, LOCK_RETRY_S);
		bool stop = q->stopping;
		pthread_mutex_unlock(&q->mu);
		if (stop)
			return false;
	}
}

static void run_recover(struct sb_queue *q)
{
	struct sb_lock lock;
	if (!take_job_lock(q, &lock, "recovery of stacks left stopped"))
		return;
	int restarted, failed;
	if (sb_recover(q->cfg, &restarted, &failed) < 0)
		sb_error("recovery: %d stack(s) a previous run left stopped could not be started "
			 "(see 'stackback recover')", failed);
	else if (restarted > 0)
		sb_info("recovery: started %d stack(s) a previous run left stopped", restarted);
	sb_lock_release(&lock);
}

static void *worker_main(void *arg)
{
	struct sb_queue *q = arg;
	pthread_mutex_lock(&q->mu);
	bool recover = q->recover;
	pthread_mutex_unlock(&q->mu);
	if (recover)
		run_recover(q);

	for (;;) {
		pthread_mutex_lock(&q->mu);
		while (!q->stopping && q->n_waiting == 0)
			pthread_cond_wait(&q->cond, &q->mu);
		if (q->stopping) {
			pthread_mutex_unlock(&q->mu);
			break;
		}
		/* The job stays queued (and counted) until it holds the lock. */
		int id = q->waiting[0]->id;
		pthread_mutex_unlock(&q->mu);

		struct sb_lock lock;
		cleanup_free char *purpose = xasprintf("job %d", id);
		if (!take_job_lock(q, &lock, purpose))
			break;
		pthread_mutex_lock(&q->mu);
		if (q->stopping) {
			/* shutdown already cancelled it with the rest of the queue */
			pthread_mutex_unlock(&q->mu);
			sb_lock_release(&lock);
			break;
		}
		struct sb_job *job = q->waiting[0];
		memmove(q->waiting, q->waiting + 1, (q->n_waiting - 1) * sizeof(*q->waiting));
		q->n_waiting--;
		q->running = job;
		q->running_state = SB_JOB_QUEUED;
		pthread_mutex_unlock(&q->mu);

		sb_job_execute(q->cfg, job);
		sb_lock_release(&lock);

		pthread_mutex_lock(&q->mu);
		q->running = NULL;
		retire_locked(q, job);
		pthread_mutex_unlock(&q->mu);
		/* After the lock is free and the job is listed as done: a waiter may act on it. */
		changed(q, SB_QUEUE_JOB_STATE, job->id);
	}
	return NULL;
}

int sb_queue_start(struct sb_queue *q, bool recover, char **err)
{
	pthread_mutex_lock(&q->mu);
	q->recover = recover;
	q->started = true;
	pthread_mutex_unlock(&q->mu);
	int rc = pthread_create(&q->worker, NULL, worker_main, q);
	if (rc != 0) {
		pthread_mutex_lock(&q->mu);
		q->started = false;
		pthread_mutex_unlock(&q->mu);
		*err = xasprintf("cannot start the job worker thread: %s", strerror(rc));
		return -1;
	}
	return 0;
}

int sb_queue_submit(struct sb_queue *q, struct sb_job_request *req, int *job_id, char **err)
{
	pthread_mutex_lock(&q->submit_mu);
	pthread_mutex_lock(&q->mu);
	bool stopping = q->stopping;
	bool full = q->n_waiting >= SB_QUEUE_MAX;
	pthread_mutex_unlock(&q->mu);
	int rc = 0;
	if (stopping) {
		*err = xasprintf("the daemon is shutting down; %s not queued", sb_job_kind_name(req->kind));
		rc = -ESHUTDOWN;
		goto out;
	}
	if (full) {
		*err = xasprintf("job queue is full (%d jobs waiting); %s not queued", SB_QUEUE_MAX,
				 sb_job_kind_name(req->kind));
		rc = -EBUSY;
		goto out;
	}
	/* Ids come from STATE_DIR, so the CLI's in-process runs never reuse them. */
	int id = sb_state_next_job_id(q->cfg, err);
	if (id < 0) {
		rc = -EIO;
		goto out;
	}
	struct sb_job *job = sb_job_new(id, req);
	job->notify = job_notify;
	job->notify_userdata = q;
	pthread_mutex_lock(&q->mu);
	/* Only submitters append and they hold submit_mu: the room checked above is still there. */
	q->waiting[q->n_waiting++] = job;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->mu);
	*job_id = id;
out:
	pthread_mutex_unlock(&q->submit_mu);
	if (rc == 0)
		changed(q, SB_QUEUE_JOB_QUEUED, *job_id);
	return rc;
}

static void record_trigger(struct sb_queue *q, enum sb_job_kind kind, int job_id, const char *error)
{
	pthread_mutex_lock(&q->mu);
	struct trigger_result *t = &q->triggers[kind];
	free(t->error);
	t->job_id = job_id;
	t->error = xstrdup(error);
	pthread_mutex_unlock(&q->mu);
}

/* Every stack a request names must exist: a typo is refused now, not found failing later. */
static int check_known(const struct sb_job_request *req, const struct sb_selection *known, char **err)
{
	for (size_t i = 0; known && i < req->stacks.n; i++) {
		if (!sb_selection_find(known, req->stacks.v[i])) {
			*err = xasprintf("no stack named '%s' (see stacks/)", req->stacks.v[i]);
			return -1;
		}
	}
	return 0;
}

int sb_queue_trigger(struct sb_queue *q, enum sb_job_kind kind, const char *payload, size_t len,
		     const struct sb_selection *known, int *job_id, char **err)
{
	const char *name = sb_job_kind_name(kind);
	struct sb_job_request req = {0};
	int rc;
	if (len > SB_TRIGGER_MAX) {
		*err = xasprintf("%s trigger payload too long (%zu bytes, at most %d)", name, len,
				 SB_TRIGGER_MAX);
		rc = -EINVAL;
	} else if (sb_job_request_parse(kind, payload, len, &req, err) < 0) {
		rc = -EINVAL;
	} else if (check_known(&req, known, err) < 0) {
		sb_job_request_free(&req);
		rc = -EINVAL;
	} else {
		cleanup_free char *words = sb_job_request_describe(&req);
		rc = sb_queue_submit(q, &req, job_id, err);
		if (rc == 0)
			sb_info("job %d queued: %s %s", *job_id, name, words);
		else if (!req.dry_run)
			/* A full queue or a shutdown: the job cannot start, which its watchers must hear. */
			sb_notify_refused_async(q->cfg, kind, *err);
		sb_job_request_free(&req);
	}
	if (rc < 0) {
		sb_warn("trigger/%s refused: %s", name, *err);
		record_trigger(q, kind, 0, *err);
		changed(q, SB_QUEUE_TRIGGER, 0);
	} else {
		record_trigger(q, kind, *job_id, NULL);
	}
	return rc;
}

/* Caller holds mu. A job in memory, or NULL. */
static struct sb_job *find_locked(struct sb_queue *q, int id)
{
	if (q->running && q->running->id == id)
		return q->running;
	for (size_t i = 0; i < q->n_waiting; i++)
		if (q->waiting[i]->id == id)
			return q->waiting[i];
	for (size_t i = q->n_done; i-- > 0;)
		if (q->done[i]->id == id)
			return q->done[i];
	return NULL;
}

static char *render(struct sb_job *job, enum sb_job_file which)
{
	switch (which) {
	case SB_JOB_FILE_STATE: {
		pthread_mutex_lock(&job->mu);
		enum sb_job_state st = job->state;
		pthread_mutex_unlock(&job->mu);
		return xasprintf("%s\n", sb_job_state_name(st));
	}
	case SB_JOB_FILE_PROGRESS:
		return sb_job_progress_text(job);
	case SB_JOB_FILE_LOG: {
		pthread_mutex_lock(&job->mu);
		char *log = xstrdup(job->log.data ? job->log.data : "");
		pthread_mutex_unlock(&job->mu);
		return log;
	}
	case SB_JOB_FILE_REPORT:
		return sb_job_report_json(job);
	}
	return xstrdup("");
}

int sb_queue_job_read(struct sb_queue *q, int id, enum sb_job_file which, char **out)
{
	pthread_mutex_lock(&q->mu);
	struct sb_job *job = find_locked(q, id);
	if (job) {
		/* mu keeps the job from being retired and freed while it renders. */
		*out = render(job, which);
		pthread_mutex_unlock(&q->mu);
		return 0;
	}
	pthread_mutex_unlock(&q->mu);
	job = sb_status_load_job(q->cfg, id);
	if (!job)
		return -ENOENT;
	*out = render(job, which);
	sb_job_free(job);
	return 0;
}

int sb_queue_cancel(struct sb_queue *q, int id, char **why)
{
	*why = NULL;
	pthread_mutex_lock(&q->mu);
	if (q->running && q->running->id == id && !running_ended_locked(q)) {
		/* The engine sees the flag between steps and starts again every stack it stopped. */
		atomic_store(&q->running->cancel, true);
		pthread_mutex_unlock(&q->mu);
		sb_info("job %d: cancelling (asked through jobs/%d/cancel)", id, id);
		changed(q, SB_QUEUE_JOB_PROGRESS, id);
		return 0;
	}
	for (size_t i = 0; i < q->n_waiting; i++) {
		struct sb_job *job = q->waiting[i];
		if (job->id != id)
			continue;
		memmove(&q->waiting[i], &q->waiting[i + 1], (q->n_waiting - i - 1) * sizeof(*q->waiting));
		q->n_waiting--;
		pthread_mutex_lock(&job->mu);
		job->state = SB_JOB_CANCELLED;
		job->finished_at = sb_now_wall();
		pthread_mutex_unlock(&job->mu);
		retire_locked(q, job);
		pthread_mutex_unlock(&q->mu);
		sb_info("job %d: cancelled before it started (asked through jobs/%d/cancel)", id, id);
		changed(q, SB_QUEUE_JOB_STATE, id);
		return 0;
	}
	pthread_mutex_unlock(&q->mu);
	cleanup_free char *state = NULL;
	if (sb_queue_job_read(q, id, SB_JOB_FILE_STATE, &state) < 0)
		return -ENOENT;
	sb_strstrip(state);
	*why = xasprintf("job %d has already ended: %s", id, state);
	return -EALREADY;
}

bool sb_queue_job_exists(struct sb_queue *q, int id)
{
	pthread_mutex_lock(&q->mu);
	bool found = find_locked(q, id) != NULL;
	pthread_mutex_unlock(&q->mu);
	if (found)
		return true;
	/* A lookup must stay cheap: the report is parsed only when a file is read. */
	cleanup_free char *path = xasprintf("%s/jobs/%d/report.json", q->cfg->state_dir, id);
	return access(path, F_OK) == 0;
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

void sb_queue_job_ids(struct sb_queue *q, int **ids, size_t *n)
{
	int *disk;
	size_t n_disk;
	sb_status_persisted_jobs(q->cfg, &disk, &n_disk);
	pthread_mutex_lock(&q->mu);
	size_t total = n_disk + q->n_done + q->n_waiting + (q->running != NULL);
	int *all = xmalloc((total ? total : 1) * sizeof(*all));
	size_t k = 0;
	for (size_t i = 0; i < q->n_done; i++)
		all[k++] = q->done[i]->id;
	if (q->running)
		all[k++] = q->running->id;
	for (size_t i = 0; i < q->n_waiting; i++)
		all[k++] = q->waiting[i]->id;
	pthread_mutex_unlock(&q->mu);
	if (n_disk)
		memcpy(all + k, disk, n_disk * sizeof(*disk));
	k += n_disk;
	free(disk);
	qsort(all, k, sizeof(*all), cmp_int);
	size_t uniq = 0;
	for (size_t i = 0; i < k; i++)
		if (uniq == 0 || all[uniq - 1] != all[i])
			all[uniq++] = all[i];
	*ids = all;
	*n = uniq;
}

int sb_queue_last_job_id(struct sb_queue *q)
{
	int *ids;
	size_t n;
	sb_queue_job_ids(q, &ids, &n);
	int last = n ? ids[n - 1] : 0;
	free(ids);
	return last;
}

char *sb_queue_trigger_result(struct sb_queue *q, enum sb_job_kind kind)
{
	pthread_mutex_lock(&q->mu);
	struct trigger_result *t = &q->triggers[kind];
	if (t->error) {
		char *s = xasprintf("error: %s\n", t->error);
		pthread_mutex_unlock(&q->mu);
		return s;
	}
	int id = t->job_id;
	pthread_mutex_unlock(&q->mu);
	if (id == 0)
		return xstrdup("");
	cleanup_free char *state = NULL;
	if (sb_queue_job_read(q, id, SB_JOB_FILE_STATE, &state) < 0)
		return xasprintf("job %d unknown\n", id);
	return xasprintf("job %d %s", id, state);
}

void sb_queue_status(struct sb_queue *q, struct sb_status_snapshot *snap)
{
	*snap = (struct sb_status_snapshot){0};
	pthread_mutex_lock(&q->mu);
	/*
	 * A running job whose state is final is only releasing the job lock:
	 * it is already the last job, so that status agrees with jobs/ID/state.
	 */
	bool finishing = q->running && running_ended_locked(q);
	if (q->running && !finishing) {
		sb_status_job_from(q->running, &snap->job);
		snap->has_job = true;
		snap->running = true;
	}
	snap->queued = (int)q->n_waiting;
	if (finishing) {
		sb_status_job_from(q->running, &snap->last);
		snap->has_last = true;
	} else if (q->n_done > 0) {
		sb_status_job_from(q->done[q->n_done - 1], &snap->last);
		snap->has_last = true;
	}
	pthread_mutex_unlock(&q->mu);
	/* An in-process CLI run (or our own recovery) holds the job lock without a queued job. */
	if (!snap->running && !finishing)
		snap->running = sb_lock_holder(q->cfg) != 0;
	if (!snap->has_last) {
		/* Nothing finished since the daemon started: the last run before it. */
		struct sb_status_snapshot disk;
		sb_status_snapshot_load(q->cfg, &disk);
		snap->has_last = disk.has_last;
		snap->last = disk.last;
	}
}

uint64_t sb_queue_version(struct sb_queue *q)
{
	return atomic_load(&q->version);
}

void sb_queue_shutdown(struct sb_queue *q)
{
	pthread_mutex_lock(&q->submit_mu);
	pthread_mutex_lock(&q->mu);
	bool join = q->started && !q->stopping;
	q->stopping = true;
	if (q->running) {
		atomic_store(&q->running->cancel, true);
		sb_info("job %d: cancelling (the daemon stops)", q->running->id);
	}
	double now = sb_now_wall();
	for (size_t i = 0; i < q->n_waiting; i++) {
		struct sb_job *job = q->waiting[i];
		pthread_mutex_lock(&job->mu);
		job->state = SB_JOB_CANCELLED;
		job->finished_at = now;
		pthread_mutex_unlock(&job->mu);
		sb_info("job %d: cancelled before it started (the daemon stops)", job->id);
		retire_locked(q, job);
	}
	q->n_waiting = 0;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->mu);
	pthread_mutex_unlock(&q->submit_mu);
	changed(q, SB_QUEUE_JOB_STATE, 0);
	if (join)
		pthread_join(q->worker, NULL);
}

void sb_queue_free(struct sb_queue *q)
{
	if (!q)
		return;
	for (size_t i = 0; i < q->n_waiting; i++)
		sb_job_free(q->waiting[i]);
	for (size_t i = 0; i < q->n_done; i++)
		sb_job_free(q->done[i]);
	for (size_t i = 0; i < N_KINDS; i++)
		free(q->triggers[i].error);
	pthread_cond_destroy(&q->cond);
	pthread_mutex_destroy(&q->mu);
	pthread_mutex_destroy(&q->submit_mu);
	free(q);
}
