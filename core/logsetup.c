/*
 * Choosing the log sinks (logsetup.h). The sinks themselves live in
 * log.c; this file only knows the configuration and the environment.
 *
 * To see the service path without systemd: INVOCATION_ID=x stackback
 * backup </dev/null with a datagram listener bound at /dev/log (or at
 * SYSLOG_SOCKET) receives "<30>stackback[PID]: ..." lines.
 */
#include "stackback/logsetup.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stackback/log.h"
#include "stackback/util.h"

bool sb_log_running_as_service(void)
{
	const char *id = getenv("INVOCATION_ID");
	return id && *id && !isatty(STDIN_FILENO);
}

void sb_log_setup_level(const struct sb_config *cfg)
{
	enum sb_log_level level;
	if (cfg->log_level && sb_log_level_parse(cfg->log_level, &level) == 0)
		sb_log_set_level(level);
}

int sb_log_setup_file(const struct sb_config *cfg)
{
	struct stat st;
	if (stat(cfg->state_dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	if (access(cfg->state_dir, W_OK | X_OK) < 0)
		return -errno;
	cleanup_free char *path = xasprintf("%s/log", cfg->state_dir);
	return sb_log_open_file(path, SB_LOG_FILE_MAX);
}

bool sb_log_setup_syslog(const struct sb_config *cfg, const char *ident, bool requested)
{
	bool service = sb_log_running_as_service();
	const char *socket = cfg->syslog_socket;
	if (!socket) {
		if (!requested && !service)
			return false;
		socket = SB_LOG_DEFAULT_SYSLOG;
		struct stat st;
		if (stat(socket, &st) < 0 || !S_ISSOCK(st.st_mode)) {
			/* A service on a machine without syslog keeps its stderr, which is enough. */
			if (requested)
				sb_warn("no syslog: %s is not a socket (set SYSLOG_SOCKET)", socket);
			return false;
		}
	}
	int rc = sb_log_open_syslog(socket, ident);
	if (rc < 0) {
		sb_warn("cannot log to syslog socket '%s': %s", socket, strerror(-rc));
		return false;
	}
	if (service)
		sb_log_set_stderr(false);
	return true;
}
