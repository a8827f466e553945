#include "snap-restic.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

/* Variables that would make restic look for a password elsewhere than in RESTIC_PASSWORD. */
static const char *const snap_env_del[] = {
	"RESTIC_PASSWORD_FILE",
	"RESTIC_PASSWORD_COMMAND",
	"RESTIC_REPOSITORY_FILE",
	NULL,
};

void snap_restic_cmd_init(struct snap_restic_cmd *c, const struct sb_restic *r,
			  const char *subcommand)
{
	*c = (struct snap_restic_cmd){0};
	sb_strv_push(&c->argv, "restic");
	sb_strv_push(&c->argv, "--no-lock");
	sb_strv_push(&c->argv, subcommand);
	sb_strv_push_owned(&c->env, xasprintf("RESTIC_REPOSITORY=%s", r->repository));
	if (r->password)
		sb_strv_push_owned(&c->env, xasprintf("RESTIC_PASSWORD=%s", r->password));
}

void snap_restic_cmd_free(struct snap_restic_cmd *c)
{
	for (size_t i = 0; i < c->env.n; i++)
		explicit_bzero(c->env.v[i], strlen(c->env.v[i]));
	sb_strv_free(&c->env);
	sb_strv_free(&c->argv);
}

void snap_restic_run_opts(const struct snap_restic_cmd *c, const struct sb_restic *r,
			  struct sb_run_opts *o)
{
	o->argv = (const char *const *)c->argv.v;
	o->env_add = (const char *const *)c->env.v;
	o->env_del = snap_env_del;
	o->cancel = r->cancel;
	/* restic cleans up (and stops reading the repository) on SIGINT. */
	o->term_signal = SIGINT;
	o->capture_stderr = true;
}

char *snap_restic_describe(const struct sb_run_result *res, double timeout_s)
{
	if (res->outcome == SB_RUN_EXITED)
		return sb_restic_explain(res->status, res->err);
	if (res->outcome == SB_RUN_SPAWN_FAILED && res->status == ENOENT && !res->err)
		return xstrdup("restic is not installed (not found in PATH)");
	cleanup_free char *what = sb_run_describe(res, timeout_s);
	return xasprintf("restic %s", what);
}

const char *snap_repo_local_path(const char *repo)
{
	if (sb_str_has_prefix(repo, "local:"))
		return repo + strlen("local:");
	if (repo[0] == '/')
		return repo;
	return NULL;
}
