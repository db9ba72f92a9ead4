/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * regions.h: the C side of tools/regions, for kselftest tests.
 * Every helper runs the script (no shell in between: argv as given) and
 * returns what it said; none uses the harness's ASSERTs, tests assert on
 * the return values.
 *
 *	regions_down_all();			in setup and in teardown
 *	regions_up("a", 1);			3-node JetStream cluster, waited for
 *	regions_urls("a", urls, sizeof(urls));
 *	regions_kill("a"); regions_start("a");	whole-region crash
 *	regions_stop_leader("a", "EVRING", name, sizeof(name)); regions_cont("a");
 *	regions_partition("a"); regions_heal("a");
 *	regions_tcp_probe("10.77.1.2", 4222, 1000);	0, -ECONNREFUSED, -ETIMEDOUT
 *	regions_down_all();
 *
 * Regions are machine-wide (namespace names, addresses), so a test takes
 * regions_lock() before its first regions_down_all() and holds it until
 * it exits: two test binaries started at once take turns test by test
 * instead of tearing down each other's regions.
 *
 * Return values: 0 (or a count), the script's exit status (1: it failed,
 * its stderr went to ours; 2: usage), or -errno when it could not run.
 * $EVRING_REGIONS names the script (default tools/regions, run
 * from the repository root); $EVRING_REGIONS_DIR its state directory.
 */
#ifndef EVRING_SHIP_REGIONS_H
#define EVRING_SHIP_REGIONS_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define REGIONS_ARGS_MAX	8
#define REGIONS_OUT_MAX		(256 << 10)

static inline const char *regions_script(void)
{
	const char *p = getenv("EVRING_REGIONS");

	return p && *p ? p : "tools/regions";
}

static inline const char *regions_dir(void)
{
	const char *p = getenv("EVRING_REGIONS_DIR");

	return p && *p ? p : "/tmp/evring-regions";
}

#define REGIONS_LOCK_PATH	"/tmp/evring-regions.lock"

/*
 * Block until this process holds the machine-wide regions lock (an flock;
 * released when the process and the children it forked exit).  0 or
 * -errno.
 */
static inline int regions_lock(void)
{
	int fd = open(REGIONS_LOCK_PATH, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0)
		return -errno;
	while (flock(fd, LOCK_EX)) {
		if (errno != EINTR) {
			int e = -errno;

			close(fd);
			return e;
		}
	}
	return 0;	/* fd stays open: that is the lock */
}

/*
 * Run `regions ARGS...` (NULL-terminated), its stdout into @out (@len
 * bytes, NUL-terminated, trailing newline dropped; NULL: to our stdout).
 * Waits at most @timeout_s seconds, then kills it.  Returns its exit
 * status (0..255), 256 + a signal, or -errno.
 */
static inline int regions_runv(char *out, size_t len, int timeout_s,
			       const char *const *args)
{
	const char *argv[REGIONS_ARGS_MAX + 2];
	size_t have = 0;
	int p[2] = { -1, -1 }, status, n = 0;
	time_t end = time(NULL) + timeout_s;
	pid_t pid;

	argv[n++] = regions_script();
	for (; args[n - 1] && n <= REGIONS_ARGS_MAX; n++)
		argv[n] = args[n - 1];
	argv[n] = NULL;
	if (out && pipe2(p, O_CLOEXEC))
		return -errno;
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		int e = -errno;

		if (out) {
			close(p[0]);
			close(p[1]);
		}
		return e;
	}
	if (pid == 0) {
		if (out && dup2(p[1], 1) < 0)
			_exit(127);
		if (!out)
			dup2(2, 1);	/* keep TAP on stdout clean */
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	if (out) {
		close(p[1]);
		for (;;) {
			struct pollfd pfd = { .fd = p[0], .events = POLLIN };
			ssize_t r;

			if (poll(&pfd, 1, 1000) < 0 && errno != EINTR)
				break;
			if (time(NULL) > end)
				break;
			if (!pfd.revents)
				continue;
			r = read(p[0], out + have, have + 1 < len ?
				 len - 1 - have : 0);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
			have += r;
		}
		close(p[0]);
		while (have && out[have - 1] == '\n')
			have--;
		out[have] = '\0';
	}
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			break;
		if (r < 0 && errno != EINTR)
			return -errno;
		if (time(NULL) > end) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			fprintf(stderr, "# regions %s: timed out after %d s\n",
				args[0], timeout_s);
			return -ETIMEDOUT;
		}
		usleep(20000);
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) :
	       256 + WTERMSIG(status);
}

/* regions_runv() with the arguments inline, NULL-terminated. */
#define regions_run(out, len, timeout_s, ...) \
	regions_runv(out, len, timeout_s, (const char *const[]){ __VA_ARGS__, NULL })

static inline int regions_up(const char *name, unsigned int index)
{
	char i[12];

	snprintf(i, sizeof(i), "%u", index);
	return regions_run(NULL, 0, 60, "up", name, i);
}

static inline int regions_down(const char *name)
{
	return regions_run(NULL, 0, 60, "down", name);
}

static inline int regions_down_all(void)
{
	return regions_run(NULL, 0, 60, "down-all");
}

static inline int regions_kill(const char *name)
{
	return regions_run(NULL, 0, 30, "kill", name);
}

static inline int regions_start(const char *name)
{
	return regions_run(NULL, 0, 60, "start", name);
}

/* kill then start: the servers read their options ($EVRING_REGION_*) anew. */
static inline int regions_restart(const char *name)
{
	return regions_run(NULL, 0, 60, "restart", name);
}

static inline int regions_cont(const char *name)
{
	return regions_run(NULL, 0, 30, "cont", name);
}

static inline int regions_partition(const char *name)
{
	return regions_run(NULL, 0, 30, "partition", name);
}

/* @dir: "in" (host -> region dropped) or "out" (region -> host). */
static inline int regions_oneway(const char *name, const char *dir)
{
	return regions_run(NULL, 0, 30, "oneway", name, dir);
}

static inline int regions_heal(const char *name)
{
	return regions_run(NULL, 0, 30, "heal", name);
}

static inline int regions_urls(const char *name, char *out, size_t len)
{
	return regions_run(out, len, 10, "urls", name);
}

/* SIGSTOP the server leading @stream; its name ("a-2") into @out. */
static inline int regions_stop_leader(const char *name, const char *stream,
				      char *out, size_t len)
{
	return regions_run(out, len, 30, "stop-leader", name, stream);
}

static inline int regions_leader(const char *name, const char *stream,
				 char *out, size_t len)
{
	return regions_run(out, len, 30, "leader", name, stream);
}

/* One $JS.API.@subj request; the JSON answer into @out. */
static inline int regions_jsapi(const char *name, const char *subj,
				const char *body, char *out, size_t len)
{
	return regions_run(out, len, 30, "jsapi", name, subj, body ? body : "");
}

/*
 * The pid of server @k (1..3) of region @name, or -ESRCH when it is not
 * running.  Other errors as regions_runv().
 */
static inline int regions_pid(const char *name, unsigned int k, pid_t *pid)
{
	char out[256], want[80], *line, *save = NULL;
	int ret = regions_run(out, sizeof(out), 10, "pids", name);

	if (ret)
		return ret < 0 ? ret : -EIO;
	snprintf(want, sizeof(want), "%s-%u", name, k);
	for (line = strtok_r(out, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char who[80];
		int p;

		if (sscanf(line, "%79s %d", who, &p) == 2 && !strcmp(who, want)) {
			*pid = p;
			return 0;
		}
	}
	return -ESRCH;
}

/* The state letter of /proc/@pid/stat (R, S, T, Z ...), or 0 when gone. */
static inline char regions_proc_state(pid_t pid)
{
	char path[64], buf[512], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : 0;
}

/*
 * A TCP connect from the host to @addr:@port, bounded by @timeout_ms.
 * 0 (connected, closed again), -ECONNREFUSED, -ETIMEDOUT, or another
 * -errno (-EHOSTUNREACH ...).
 */
static inline int regions_tcp_probe(const char *addr, unsigned int port,
				    int timeout_ms)
{
	struct sockaddr_in sa = {
		.sin_family = AF_INET,
		.sin_port = htons(port),
	};
	struct pollfd pfd;
	socklen_t sl = sizeof(int);
	int fd, err = 0, ret;

	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
		return -EINVAL;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (!connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		close(fd);
		return 0;
	}
	if (errno != EINPROGRESS) {
		ret = -errno;
		close(fd);
		return ret;
	}
	pfd = (struct pollfd){ .fd = fd, .events = POLLOUT };
	do {
		ret = poll(&pfd, 1, timeout_ms);
	} while (ret < 0 && errno == EINTR);
	if (ret == 0) {
		close(fd);
		return -ETIMEDOUT;
	}
	if (ret < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl))
		err = errno;
	close(fd);
	return -err;
}

/* "10.77.@index.2": a region's address. */
static inline void regions_addr(unsigned int index, char *out, size_t len)
{
	snprintf(out, len, "10.77.%u.2", index);
}

/*
 * What a region run could leave behind, counted: network namespaces
 * "evr-*", links "evr-*" in the host's namespace, live nats-server
 * processes started on a config under regions_dir().  Each count is
 * written when its pointer is non-NULL; returns 0 or -errno.
 */
static inline int regions_leftovers(unsigned int *netns, unsigned int *links,
				    unsigned int *servers)
{
	unsigned int nn = 0, nl = 0, ns = 0;
	struct dirent *d;
	DIR *dir;
	char want[300];

	dir = opendir("/run/netns");
	if (dir) {
		while ((d = readdir(dir)))
			nn += !strncmp(d->d_name, "evr-", 4);
		closedir(dir);
	}
	dir = opendir("/sys/class/net");
	if (!dir)
		return -errno;
	while ((d = readdir(dir)))
		nl += !strncmp(d->d_name, "evr-", 4) ||
		      !strncmp(d->d_name, "evrp-", 5);
	closedir(dir);
	snprintf(want, sizeof(want), "%s/", regions_dir());
	dir = opendir("/proc");
	if (!dir)
		return -errno;
	while ((d = readdir(dir))) {
		char path[300], buf[4096];
		ssize_t n;
		int fd;
		char st;

		if (d->d_name[0] < '1' || d->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/cmdline", d->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		for (ssize_t i = 0; i < n; i++)
			if (!buf[i])
				buf[i] = ' ';
		st = regions_proc_state((pid_t)strtol(d->d_name, NULL, 10));
		if (strstr(buf, "nats-server") && strstr(buf, want) &&
		    st && st != 'Z')
			ns++;
	}
	closedir(dir);
	if (netns)
		*netns = nn;
	if (links)
		*links = nl;
	if (servers)
		*servers = ns;
	return 0;
}

#endif /* EVRING_SHIP_REGIONS_H */
