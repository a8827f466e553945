/**
 * @file runner.h
 * The one place that spawns children: argv arrays (never a shell
 * string), a new process group, a timeout after which the whole group
 * gets SIGTERM then SIGKILL, stdout/stderr delivered line by line,
 * exit status decoded. docker, restic, rclone and hooks all go through
 * sb_run(); it is also the seam tests use.
 */
#ifndef STACKBACK_RUNNER_H
#define STACKBACK_RUNNER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

enum sb_stream {
	SB_STREAM_STDOUT,
	SB_STREAM_STDERR,
};

/** Called for each complete line (without its newline). */
typedef void (*sb_line_fn)(void *userdata, enum sb_stream stream, const char *line, size_t len);

struct sb_run_opts {
	const char *const *argv;     /**< argv[0] looked up in PATH */
	const char *const *env_add;  /**< "KEY=VALUE" added to/overriding the environment; may be NULL */
	const char *const *env_del;  /**< names removed from the environment; may be NULL */
	const char *cwd;             /**< NULL = inherit */
	const char *stdin_data;      /**< written to the child's stdin, then closed; NULL = /dev/null */
	size_t stdin_len;
	double timeout_s;            /**< <= 0: no timeout */
	sb_line_fn on_line;          /**< NULL: output discarded unless captured */
	void *userdata;
	bool capture_stdout;         /**< keep stdout in result.out */
	bool capture_stderr;         /**< keep the last stderr lines in result.err */
	/** Polled every 100 ms; when it becomes true the group is killed. */
	const atomic_bool *cancel;
	/** Called once the child exists (e.g. to record its pid). */
	void (*on_spawn)(void *userdata, pid_t pid);
	/**
	 * First signal of the kill sequence on timeout or cancel; 0 = SIGTERM.
	 * restic needs SIGINT: only then does it remove its repository lock.
	 */
	int term_signal;
	/**
	 * Raw stdout: when set, stdout is not split into lines (nor given to
	 * on_line) but handed over chunk by chunk as it arrives, byte-exact
	 * (`restic dump` streams binary file contents).
	 */
	void (*on_stdout)(void *userdata, const char *data, size_t len);
	/**
	 * A private view for the child (needs CAP_SYS_ADMIN): when bind_src
	 * is set, the child runs in a mount namespace of its own in which
	 * bind_src is bind-mounted over bind_dst (before cwd is entered).
	 * No other process sees the mount, and it goes with the child.
	 * Snapshot mode uses it to show restic a copy at the original path.
	 */
	const char *bind_src;
	const char *bind_dst;
};

enum sb_run_outcome {
	SB_RUN_EXITED,     /**< status holds the exit code */
	SB_RUN_SIGNALED,   /**< status holds the signal */
	SB_RUN_TIMED_OUT,  /**< killed after timeout_s */
	SB_RUN_CANCELLED,  /**< killed because *cancel became true */
	SB_RUN_SPAWN_FAILED, /**< status holds errno (ENOENT: not found) */
};

struct sb_run_result {
	enum sb_run_outcome outcome;
	int status;
	double duration_s;
	char *out;  /**< captured stdout (owned), NULL if not captured */
	char *err;  /**< last stderr lines (owned, at most 8 KiB), NULL if none */
};

/**
 * Runs the child to completion. Returns 0 if it exited with status 0,
 * 1 otherwise (details in result, which the caller frees with
 * sb_run_result_free()).
 */
int sb_run(const struct sb_run_opts *opts, struct sb_run_result *result);
void sb_run_result_free(struct sb_run_result *result);

/**
 * Describes a failed result in one lowercase phrase, e.g. "exited 3",
 * "killed by signal 9", "timed out after 30s", "not found in PATH",
 * followed by ": <last stderr line>" when there is one (caller frees).
 */
char *sb_run_describe(const struct sb_run_result *result, double timeout_s);

/**
 * Copies len bytes of a child's output as one printable line: terminal
 * escape sequences and control characters dropped, whitespace trimmed
 * (caller frees). For quoting stderr in messages.
 */
char *sb_run_printable(const char *s, size_t len);

/** True if prog (no slash) is found in PATH and executable. */
bool sb_program_exists(const char *prog);

#endif
