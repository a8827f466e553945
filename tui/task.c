/*
 * Background tasks: a slow call (restic snapshots, docker, doctor
 * checks) runs on its own thread and wakes the main loop when it ends,
 * so the screen that asked keeps answering keys meanwhile.
 */
#include <string.h>

#include "stackback/log.h"
#include "tui.h"

static void *task_main(void *arg)
{
	struct tui_task *task = arg;
	task->work(task);
	atomic_store(&task->done, true);
	tui_wake(task->t);
	return NULL;
}

bool tui_task_start(struct tui_task *task, struct tui *t, void (*work)(struct tui_task *), void *data)
{
	if (task->running)
		return false;
	task->work = work;
	task->data = data;
	task->t = t;
	atomic_store(&task->done, false);
	int rc = pthread_create(&task->th, NULL, task_main, task);
	if (rc != 0) {
		/* Without a thread the work runs here: slower, never wrong. */
		sb_warn("cannot start a background thread: %s", strerror(rc));
		work(task);
		atomic_store(&task->done, true);
		task->running = false;
		return true;
	}
	task->running = true;
	return true;
}

bool tui_task_finished(struct tui_task *task)
{
	if (!atomic_load(&task->done))
		return false;
	atomic_store(&task->done, false);
	if (task->running) {
		pthread_join(task->th, NULL);
		task->running = false;
	}
	return true;
}

bool tui_task_running(const struct tui_task *task)
{
	return task->running;
}

void tui_task_join(struct tui_task *task)
{
	if (task->running) {
		pthread_join(task->th, NULL);
		task->running = false;
	}
}
