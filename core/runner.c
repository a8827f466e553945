#include "stackback/runner.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "stackback/util.h"

extern char **environ;

/*
 * After SIGTERM (or opts->term_signal) to the group, how long the
 * children get to exit cleanly before SIGKILL. restic removes its lock file on SIGTERM and docker
 * compose forwards it to its API calls; both need well under 5 s.
 */
#define SB_KILL_GRACE_S 5.0

/*
 * When the child itself has exited but something it started (a compose
 * helper, a hook's `sleep &`) still holds our stdout/stderr pipes, we
 * wait this long for the pipes to close before killing the group: the
 * leftover output is usually a last line or two in flight.
 */
#define SB_PIPE_LINGER_S 2.0

/*
 * After SIGKILL, pipes can only stay open if a process outside the group
 * (one that called setsid()) holds them; we stop reading after this.
 */
#define SB_ABANDON_PIPES_S 1.0

/* How often *cancel is looked at, as runner.h promises. */
#define SB_TICK_MS 100

/* Lines longer than this are delivered to on_line in pieces of this size. */
#define SB_LINE_MAX (1024 * 1024)

/* result.err keeps at most this much of the end of stderr. */
#define SB_ERR_TAIL 8192

#define SB_READ_CHUNK 65536

/* What the child reports through the error pipe when it cannot exec. */
enum spawn_stage {
	SPAWN_STAGE_CHDIR = 1,
	SPAWN_STAGE_STDIO,
	SPAWN_STAGE_EXEC,
	SPAWN_STAGE_BIND,
};

struct spawn_error {
	int stage;
	int err;
};

struct line_splitter {
	enum sb_stream stream;
	struct sb_buf pending;   /* bytes of an unfinished line */
};

struct run_ctx {
	const struct sb_run_opts *opts;
	struct line_splitter split[2];
	struct sb_buf out;       /* whole stdout, when captured */
	struct sb_buf err;       /* recent stderr lines, when captured */
};

/* ---- environment and PATH ---- */

static size_t env_key_len(const char *entry)
{
	const char *eq = strchr(entry, '=');
	return eq ? (size_t)(eq - entry) : strlen(entry);
}

static bool key_in_list(const char *entry, const char *const *list, bool list_has_values)
{
	if (!list)
		return false;
	size_t klen = env_key_len(entry);
	for (size_t i = 0; list[i]; i++) {
		size_t llen = list_has_values ? env_key_len(list[i]) : strlen(list[i]);
		if (llen == klen && strncmp(entry, list[i], klen) == 0)
			return true;
	}
	return false;
}

/* The child's environment: ours, minus env_del and env_add's keys, plus env_add. */
static void build_env(const struct sb_run_opts *opts, struct sb_strv *env)
{
	for (char **e = environ; e && *e; e++) {
		if (key_in_list(*e, opts->env_del, false) || key_in_list(*e, opts->env_add, true))
			continue;
		sb_strv_push(env, *e);
	}
	for (size_t i = 0; opts->env_add && opts->env_add[i]; i++)
		sb_strv_push(env, opts->env_add[i]);
}

/* env_add may carry secrets (RESTIC_PASSWORD): wipe our copies. */
static void free_env(struct sb_strv *env, const struct sb_run_opts *opts)
{
	size_t n_add = 0;
	while (opts->env_add && opts->env_add[n_add])
		n_add++;
	for (size_t i = env->n - n_add; i < env->n; i++)
		explicit_bzero(env->v[i], strlen(env->v[i]));
	sb_strv_free(env);
}

static const char *env_get(char *const *env, const char *key)
{
	size_t klen = strlen(key);
	for (; env && *env; env++)
		if (strncmp(*env, key, klen) == 0 && (*env)[klen] == '=')
			return *env + klen + 1;
	return NULL;
}

static bool is_executable_file(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/*
 * Finds prog in search_path the way execvp would. The lookup happens in
 * the parent, with the child's PATH, because execvp in a forked child of
 * a multi-threaded process is not async-signal-safe. Returns the path
 * (caller frees) or NULL with errno ENOENT or EACCES.
 */
static char *find_program(const char *prog, const char *search_path)
{
	if (strchr(prog, '/')) {
		if (access(prog, F_OK) < 0)
			return NULL;
		return xstrdup(prog);
	}
	if (!*prog) {
		errno = ENOENT;
		return NULL;
	}
	if (!search_path)
		search_path = "/bin:/usr/bin";
	bool denied = false;
	const char *p = search_path;
	for (;;) {
		const char *colon = strchrnul(p, ':');
		size_t dlen = (size_t)(colon - p);
		/* An empty PATH element means the current directory. */
		char *cand = dlen ? xasprintf("%.*s/%s", (int)dlen, p, prog) : xasprintf("./%s", prog);
		if (is_executable_file(cand))
			return cand;
		if (access(cand, F_OK) == 0)
			denied = true;
		free(cand);
		if (!*colon)
			break;
		p = colon + 1;
	}
	errno = denied ? EACCES : ENOENT;
	return NULL;
}

bool sb_program_exists(const char *prog)
{
	if (!prog || strchr(prog, '/'))
		return false;
	cleanup_free char *path = find_program(prog, getenv("PATH"));
	return path != NULL;
}

/* ---- the child side (only async-signal-safe calls after fork) ---- */

static void child_fail(int errfd, int stage)
{
	struct spawn_error se = {.stage = stage, .err = errno};
	ssize_t n = write(errfd, &se, sizeof(se));
	(void)n;
	_exit(127);
}

static int move_to_stdio(int fd, int target)
{
	if (fd == target)
		return fcntl(fd, F_SETFD, 0);
	return dup2(fd, target) < 0 ? -1 : 0;
}

static void mark_fds_cloexec(void)
{
	if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
		return;
	/* Kernels before 5.11 lack the flag: walk the descriptor table. */
	struct rlimit rl;
	int max = 1024;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < 65536)
		max = (int)rl.rlim_cur;
	for (int fd = 3; fd < max; fd++) {
		int fl = fcntl(fd, F_GETFD);
		if (fl >= 0 && !(fl & FD_CLOEXEC))
			fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
	}
}

/*
 * opts->bind_src over opts->bind_dst in a new mount namespace. Its
 * mounts become slaves first: where / is shared (systemd), the bind
 * mount would otherwise propagate back into the parent's namespace,
 * while an unmount there (a stopped container's overlay, the control
 * filesystem) still reaches the child's copy instead of being pinned
 * by it.
 */
static int private_bind(const char *src, const char *dst)
{
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
		return -1;
	return mount(src, dst, NULL, MS_BIND, NULL);
}

static __attribute__((noreturn)) void child_exec(const char *path, char *const *argv, char *const *envp,
						  const struct sb_run_opts *opts, int in_fd, int out_fd,
						  int err_fd, int errpipe)
{
	setpgid(0, 0);

	/* Undo what the parent may have changed: ignored SIGPIPE, blocked signals. */
	struct sigaction dfl = {.sa_handler = SIG_DFL};
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &dfl, NULL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	if (move_to_stdio(in_fd, STDIN_FILENO) < 0 || move_to_stdio(out_fd, STDOUT_FILENO) < 0 ||
	    move_to_stdio(err_fd, STDERR_FILENO) < 0)
		child_fail(errpipe, SPAWN_STAGE_STDIO);
	if (opts->bind_src && private_bind(opts->bind_src, opts->bind_dst) < 0)
		child_fail(errpipe, SPAWN_STAGE_BIND);
	if (opts->cwd && chdir(opts->cwd) < 0)
		child_fail(errpipe, SPAWN_STAGE_CHDIR);
	/* Descriptors other threads opened without O_CLOEXEC must not leak into the child. */
	mark_fds_cloexec();
	execve(path, argv, envp);
	child_fail(errpipe, SPAWN_STAGE_EXEC);
	_exit(127);
}

/* ---- output handling ---- */

static void deliver(struct run_ctx *ctx, enum sb_stream stream, const char *line, size_t len)
{
	if (stream == SB_STREAM_STDERR && ctx->opts->capture_stderr) {
		sb_buf_append(&ctx->err, line, len);
		sb_buf_append(&ctx->err, "\n", 1);
		/* Trim lazily, at twice the limit, so trimming stays linear. */
		if (ctx->err.len > 2 * SB_ERR_TAIL) {
			size_t drop = ctx->err.len - SB_ERR_TAIL;
			memmove(ctx->err.data, ctx->err.data + drop, ctx->err.len - drop);
			ctx->err.len -= drop;
			ctx->err.data[ctx->err.len] = '\0';
		}
	}
	/* line is the splitter's buffer, so it is NUL-terminated (and may hold NULs). */
	if (ctx->opts->on_line)
		ctx->opts->on_line(ctx->opts->userdata, stream, line, len);
}

static void split_feed(struct run_ctx *ctx, struct line_splitter *ls, const char *data, size_t len)
{
	while (len > 0) {
		const char *nl = memchr(data, '\n', len);
		size_t take = nl ? (size_t)(nl - data) : len;
		if (ls->pending.len + take > SB_LINE_MAX) {
			size_t room = SB_LINE_MAX - ls->pending.len;
			sb_buf_append(&ls->pending, data, room);
			deliver(ctx, ls->stream, ls->pending.data, ls->pending.len);
			ls->pending.len = 0;
			ls->pending.data[0] = '\0';
			data += room;
			len -= room;
			continue;
		}
		sb_buf_append(&ls->pending, data, take);
		if (!nl)
			return;
		deliver(ctx, ls->stream, ls->pending.data, ls->pending.len);
		ls->pending.len = 0;
		ls->pending.data[0] = '\0';
		data += take + 1;
		len -= take + 1;
	}
}

static void split_flush(struct run_ctx *ctx, struct line_splitter *ls)
{
	if (ls->pending.len > 0)
		deliver(ctx, ls->stream, ls->pending.data, ls->pending.len);
	sb_buf_free(&ls->pending);
}

/*
 * One read per wake-up (a pipe holds 64 KiB), so a chatty stream cannot
 * starve the other one or the timeout checks. Returns false at EOF or on
 * a read error.
 */
static bool drain(struct run_ctx *ctx, int fd, enum sb_stream stream)
{
	char chunk[SB_READ_CHUNK];
	ssize_t n = read(fd, chunk, sizeof(chunk));
	if (n < 0)
		return errno == EINTR || errno == EAGAIN;
	if (n == 0)
		return false;
	if (stream == SB_STREAM_STDOUT && ctx->opts->capture_stdout)
		sb_buf_append(&ctx->out, chunk, (size_t)n);
	if (stream == SB_STREAM_STDOUT && ctx->opts->on_stdout)
		ctx->opts->on_stdout(ctx->opts->userdata, chunk, (size_t)n);
	else
		split_feed(ctx, &ctx->split[stream], chunk, (size_t)n);
	return true;
}

/* The last SB_ERR_TAIL bytes of stderr, cut at a line start, without the final newline. */
static char *err_tail(struct sb_buf *err)
{
	if (err->len == 0) {
		sb_buf_free(err);
		return NULL;
	}
	size_t start = 0;
	if (err->len > SB_ERR_TAIL) {
		start = err->len - SB_ERR_TAIL;
		const char *nl = memchr(err->data + start, '\n', err->len - start - 1);
		if (nl && start > 0 && err->data[start - 1] != '\n')
			start = (size_t)(nl - err->data) + 1;
	}
	size_t end = err->len;
	if (end > start && err->data[end - 1] == '\n')
		end--;
	char *s = xstrndup(err->data + start, end - start);
	sb_buf_free(err);
	return s;
}

/*
 * Writes as much of stdin_data as the pipe takes. SIGPIPE is blocked
 * around the write (a child that exits without reading must not kill
 * us) and a pending one is consumed, so other threads see no change.
 * Returns false when stdin is finished (all written, or the reader left).
 */
static bool feed_stdin(int fd, const char *data, size_t len, size_t *off)
{
	sigset_t pipe_set, old;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	bool more = true;
	while (*off < len) {
		ssize_t n = write(fd, data + *off, len - *off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EPIPE) {
				struct timespec zero = {0, 0};
				while (sigtimedwait(&pipe_set, NULL, &zero) == SIGPIPE)
					;
				more = false;
			}
			break;
		}
		*off += (size_t)n;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return more && *off < len;
}

/* ---- the parent side ---- */

/* Moves fd above 0..2 so the child's dup2 onto stdio never clobbers another pipe. */
static int fd_above_stdio(int fd)
{
	if (fd < 0 || fd > STDERR_FILENO)
		return fd;
	int nfd = fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
	int saved = errno;
	close(fd);
	errno = saved;
	return nfd;
}

static int make_pipe(int p[2])
{
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	p[0] = fd_above_stdio(p[0]);
	p[1] = fd_above_stdio(p[1]);
	if (p[0] < 0 || p[1] < 0) {
		int e = errno;
		if (p[0] >= 0)
			close(p[0]);
		if (p[1] >= 0)
			close(p[1]);
		p[0] = p[1] = -1;
		errno = e;
		return -1;
	}
	return 0;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* True once the leader has exited; it stays a zombie (WNOWAIT) so its pgid cannot be reused. */
static bool leader_exited(pid_t pid)
{
	siginfo_t si = {0};
	if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
		return errno == ECHILD;
	return si.si_pid == pid;
}

enum kill_stage {
	KILL_NONE,
	KILL_TERM_SENT,
	KILL_KILL_SENT,
};

static void signal_group(pid_t pid, int sig)
{
	/* The child calls setpgid itself too, so the group exists once fork returns. */
	if (kill(-pid, sig) < 0)
		kill(pid, sig);
}

static void spawn_error_text(struct sb_run_result *res, const struct spawn_error *se, const char *path,
			     const struct sb_run_opts *opts)
{
	switch (se->stage) {
	case SPAWN_STAGE_CHDIR:
		res->err = xasprintf("cannot enter directory '%s': %s", opts->cwd, strerror(se->err));
		break;
	case SPAWN_STAGE_BIND:
		res->err = xasprintf("cannot show '%s' at '%s' in a private mount namespace: %s", opts->bind_src,
				     opts->bind_dst, strerror(se->err));
		break;
	case SPAWN_STAGE_STDIO:
		res->err = xasprintf("cannot set up standard streams: %s", strerror(se->err));
		break;
	default:
		res->err = xasprintf("cannot execute '%s': %s", path, strerror(se->err));
		break;
	}
}

int sb_run(const struct sb_run_opts *opts, struct sb_run_result *result)
{
	*result = (struct sb_run_result){0};
	double start = sb_now_monotonic();
	struct sb_strv env = {0};
	build_env(opts, &env);

	if (!opts->argv || !opts->argv[0]) {
		free_env(&env, opts);
		result->outcome = SB_RUN_SPAWN_FAILED;
		result->status = EINVAL;
		return 1;
	}
	cleanup_free char *path = find_program(opts->argv[0], env_get(env.v, "PATH"));
	if (!path) {
		free_env(&env, opts);
		result->outcome = SB_RUN_SPAWN_FAILED;
		result->status = errno;
		return 1;
	}

	int out_p[2] = {-1, -1}, err_p[2] = {-1, -1}, in_p[2] = {-1, -1}, ex_p[2] = {-1, -1};
	int in_child = -1;
	bool ok = make_pipe(out_p) == 0 && make_pipe(err_p) == 0 && make_pipe(ex_p) == 0;
	if (ok && opts->stdin_data) {
		ok = make_pipe(in_p) == 0;
		in_child = in_p[0];
	} else if (ok) {
		in_child = fd_above_stdio(open("/dev/null", O_RDONLY | O_CLOEXEC));
		ok = in_child >= 0;
	}
	pid_t pid = -1;
	int spawn_errno = 0;
	if (ok) {
		pid = fork();
		if (pid == 0)
			child_exec(path, (char *const *)opts->argv, env.v, opts, in_child, out_p[1], err_p[1],
				   ex_p[1]);
	}
	if (!ok || pid < 0)
		spawn_errno = errno ? errno : EIO;
	free_env(&env, opts);
	close_fd(&out_p[1]);
	close_fd(&err_p[1]);
	close_fd(&ex_p[1]);
	close_fd(&in_child);
	in_p[0] = -1;
	if (spawn_errno) {
		close_fd(&out_p[0]);
		close_fd(&err_p[0]);
		close_fd(&ex_p[0]);
		close_fd(&in_p[1]);
		result->outcome = SB_RUN_SPAWN_FAILED;
		result->status = spawn_errno;
		result->duration_s = sb_now_monotonic() - start;
		return 1;
	}
	setpgid(pid, pid);

	/* The error pipe closes on exec (O_CLOEXEC); data on it means exec failed. */
	struct spawn_error se = {0};
	ssize_t got;
	do
		got = read(ex_p[0], &se, sizeof(se));
	while (got < 0 && errno == EINTR);
	close_fd(&ex_p[0]);
	if (got == (ssize_t)sizeof(se)) {
		close_fd(&out_p[0]);
		close_fd(&err_p[0]);
		close_fd(&in_p[1]);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		result->outcome = SB_RUN_SPAWN_FAILED;
		result->status = se.err;
		spawn_error_text(result, &se, path, opts);
		result->duration_s = sb_now_monotonic() - start;
		return 1;
	}
	if (opts->on_spawn)
		opts->on_spawn(opts->userdata, pid);

	struct run_ctx ctx = {
		.opts = opts,
		.split = {{.stream = SB_STREAM_STDOUT}, {.stream = SB_STREAM_STDERR}},
	};
	int fds[2] = {out_p[0], err_p[0]};
	for (int i = 0; i < 2; i++)
		fcntl(fds[i], F_SETFL, O_NONBLOCK);
	/* A bulk stream: a larger pipe means fewer wake-ups per megabyte (best effort). */
	if (opts->on_stdout)
		fcntl(fds[0], F_SETPIPE_SZ, 1 << 20);
	int in_fd = in_p[1];
	size_t in_off = 0;
	if (in_fd >= 0) {
		fcntl(in_fd, F_SETFL, O_NONBLOCK);
		if (!feed_stdin(in_fd, opts->stdin_data, opts->stdin_len, &in_off))
			close_fd(&in_fd);
	}
	/* A pidfd wakes poll() the moment the child exits; without one, poll briefly. */
	int pidfd = pidfd_open(pid, 0);  /* close-on-exec by default */

	double deadline = opts->timeout_s > 0 ? start + opts->timeout_s : 0;
	enum sb_run_outcome forced = SB_RUN_EXITED;  /* TIMED_OUT/CANCELLED once we kill */
	enum kill_stage kstage = KILL_NONE;
	double kill_at = 0;      /* when the current kill stage began */
	double exited_at = 0;    /* when the leader was first seen exited */

	for (;;) {
		bool exited = leader_exited(pid);
		double now = sb_now_monotonic();
		if (exited && exited_at == 0)
			exited_at = now;
		if (exited && fds[0] < 0 && fds[1] < 0)
			break;

		if (kstage == KILL_NONE) {
			if (opts->cancel && atomic_load(opts->cancel) && !exited)
				forced = SB_RUN_CANCELLED;
			else if (deadline > 0 && now >= deadline && !exited)
				forced = SB_RUN_TIMED_OUT;
			if (forced != SB_RUN_EXITED || (exited && now - exited_at >= SB_PIPE_LINGER_S)) {
				signal_group(pid, opts->term_signal ? opts->term_signal : SIGTERM);
				kstage = KILL_TERM_SENT;
				kill_at = now;
			}
		} else if (kstage == KILL_TERM_SENT && now - kill_at >= SB_KILL_GRACE_S) {
			signal_group(pid, SIGKILL);
			kstage = KILL_KILL_SENT;
			kill_at = now;
		} else if (kstage == KILL_KILL_SENT && exited && now - kill_at >= SB_ABANDON_PIPES_S) {
			/* Held open by a process outside the group: stop listening. */
			for (int i = 0; i < 2; i++)
				close_fd(&fds[i]);
			break;
		}

		struct pollfd pfd[4];
		int n = 0;
		int idx_fd[2] = {-1, -1}, idx_in = -1;
		for (int i = 0; i < 2; i++) {
			if (fds[i] >= 0) {
				idx_fd[i] = n;
				pfd[n++] = (struct pollfd){.fd = fds[i], .events = POLLIN};
			}
		}
		if (in_fd >= 0) {
			idx_in = n;
			pfd[n++] = (struct pollfd){.fd = in_fd, .events = POLLOUT};
		}
		if (pidfd >= 0 && !exited)
			pfd[n++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
		int tick = SB_TICK_MS;
		if (pidfd < 0 && fds[0] < 0 && fds[1] < 0)
			tick = 10;
		if (deadline > 0 && kstage == KILL_NONE) {
			double left_ms = (deadline - now) * 1000.0 + 1;
			if (left_ms < tick)
				tick = left_ms < 1 ? 1 : (int)left_ms;
		}
		int pr = poll(pfd, (nfds_t)n, tick);
		if (pr < 0 && errno != EINTR)
			break;
		if (pr <= 0)
			continue;
		for (int i = 0; i < 2; i++) {
			if (idx_fd[i] >= 0 && (pfd[idx_fd[i]].revents & (POLLIN | POLLHUP | POLLERR)))
				if (!drain(&ctx, fds[i], (enum sb_stream)i))
					close_fd(&fds[i]);
		}
		if (idx_in >= 0 && (pfd[idx_in].revents & (POLLOUT | POLLERR | POLLHUP)))
			if (!feed_stdin(in_fd, opts->stdin_data, opts->stdin_len, &in_off))
				close_fd(&in_fd);
	}
	close_fd(&in_fd);
	close_fd(&pidfd);
	for (int i = 0; i < 2; i++)
		close_fd(&fds[i]);
	/* Whatever we started killing goes entirely: no survivor keeps running unseen. */
	if (kstage != KILL_NONE)
		signal_group(pid, SIGKILL);

	int wstatus = 0;
	while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
		;
	for (int i = 0; i < 2; i++)
		split_flush(&ctx, &ctx.split[i]);

	result->duration_s = sb_now_monotonic() - start;
	if (forced != SB_RUN_EXITED) {
		result->outcome = forced;
		result->status = WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : WEXITSTATUS(wstatus);
	} else if (WIFSIGNALED(wstatus)) {
		result->outcome = SB_RUN_SIGNALED;
		result->status = WTERMSIG(wstatus);
	} else {
		result->outcome = SB_RUN_EXITED;
		result->status = WEXITSTATUS(wstatus);
	}
	if (opts->capture_stdout)
		result->out = sb_buf_steal(&ctx.out);
	result->err = err_tail(&ctx.err);
	return result->outcome == SB_RUN_EXITED && result->status == 0 ? 0 : 1;
}

void sb_run_result_free(struct sb_run_result *result)
{
	free(result->out);
	free(result->err);
	result->out = NULL;
	result->err = NULL;
}

char *sb_run_printable(const char *s, size_t len)
{
	char *out = xmalloc(len + 1);
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == 0x1b) {
			/* CSI "ESC [ params final" (colours, "clear line"), else ESC + one byte. */
			if (i + 1 < len && s[i + 1] == '[') {
				i += 2;
				while (i < len && !((unsigned char)s[i] >= 0x40 && (unsigned char)s[i] <= 0x7e))
					i++;
			} else {
				i++;
			}
			continue;
		}
		if (c == '\t')
			c = ' ';
		if (c < 0x20 || c == 0x7f)
			continue;
		out[n++] = (char)c;
	}
	out[n] = '\0';
	return sb_strstrip(out);
}

/* The last non-empty line of text, as a pointer/length pair. */
static const char *last_line(const char *text, size_t *len)
{
	if (!text)
		return NULL;
	size_t end = strlen(text);
	while (end > 0) {
		while (end > 0 && (text[end - 1] == '\n' || text[end - 1] == '\r' || text[end - 1] == ' '))
			end--;
		size_t begin = end;
		while (begin > 0 && text[begin - 1] != '\n')
			begin--;
		if (end > begin) {
			*len = end - begin;
			return text + begin;
		}
	}
	return NULL;
}

char *sb_run_describe(const struct sb_run_result *result, double timeout_s)
{
	struct sb_buf b = {0};
	switch (result->outcome) {
	case SB_RUN_EXITED:
		sb_buf_printf(&b, "exited %d", result->status);
		break;
	case SB_RUN_SIGNALED:
		sb_buf_printf(&b, "killed by signal %d", result->status);
		if (sigabbrev_np(result->status))
			sb_buf_printf(&b, " (SIG%s)", sigabbrev_np(result->status));
		break;
	case SB_RUN_TIMED_OUT:
		sb_buf_printf(&b, "timed out after %gs", timeout_s);
		break;
	case SB_RUN_CANCELLED:
		sb_buf_puts(&b, "cancelled");
		break;
	case SB_RUN_SPAWN_FAILED:
		if (result->err)
			sb_buf_puts(&b, "could not be started");
		else if (result->status == ENOENT)
			sb_buf_puts(&b, "not found in PATH");
		else
			sb_buf_printf(&b, "could not be started: %s", strerror(result->status));
		break;
	}
	size_t len = 0;
	const char *line = last_line(result->err, &len);
	if (line) {
		cleanup_free char *clean = sb_run_printable(line, len);
		if (*clean)
			sb_buf_printf(&b, ": %s", clean);
	}
	return sb_buf_steal(&b);
}
