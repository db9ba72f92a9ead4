/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * e2e.h: what the end-to-end tests share.  They run the real binaries
 * (build/bin/evringd, evringctl, evring-cat; $EVRINGD, $EVRINGCTL and
 * $EVRING_CAT override) against the real module, and judge the outcome
 * only by reading the whole spool back through the spool API.
 *
 *	struct e2e_env e;
 *	e2e_env_init(&e, "tag");		private dir under /tmp
 *	e2e_daemon_up(&e, sets, 30000);		evringd, --set overrides, ready
 *	... writers (e2e_writers.h) record every attempt in a track ...
 *	e2e_daemon_kill(&e, SIGKILL);		any number of times
 *	e2e_wait_drained(&e, "device", 60000);	rings empty, nothing staged
 *	e2e_daemon_stop(&e);			SIGTERM: its exit status
 *	e2e_spool_read(&sp, e.spool);		e2e_verdict.h
 *	e2e_env_fini(&e);
 *
 * This file: time, randomness, child processes, the private directory,
 * evringd and its control socket, the module.  e2e_writers.h: the events
 * and the writers.  e2e_verdict.h: reading the spool back and judging it.
 * Helpers never use the harness's ASSERTs: they return -errno (or a
 * count) and tests assert on that.  A failing test keeps its directory
 * when $EVRING_E2E_KEEP is set.
 */
#ifndef EVRING_E2E_H
#define EVRING_E2E_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "evring.h"
#include <evring_socket.h>
#include "batch.h"
#include "spool.h"
#include "../kmod/evring_module.h"

#define E2E_SETS_MAX		32
#define E2E_WRITERS_MAX		16
#define E2E_CHILDREN_MAX	64
#define E2E_EV_MAGIC		0x45324576u	/* "vE2E" */
#define E2E_EV_MIN		24		/* struct e2e_ev */
#define E2E_NO_WRITER		UINT32_MAX

/* --- small things ------------------------------------------------------ */

static inline uint64_t e2e_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void e2e_sleep_ms(unsigned int ms)
{
	struct timespec ts = {
		.tv_sec = ms / 1000,
		.tv_nsec = (long)(ms % 1000) * 1000000L,
	};

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static inline void e2e_sleep_us(unsigned int us)
{
	struct timespec ts = {
		.tv_sec = us / 1000000,
		.tv_nsec = (long)(us % 1000000) * 1000L,
	};

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* One "# "-prefixed line of TAP commentary, flushed (tests end in _exit). */
static inline void e2e_msg(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static inline void e2e_msg(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}

/* splitmix64: a seeded PRNG that is the same everywhere. */
static inline uint64_t e2e_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in [lo, hi]. */
static inline uint64_t e2e_rand_range(uint64_t *state, uint64_t lo,
				      uint64_t hi)
{
	return lo + e2e_rand(state) % (hi - lo + 1);
}

/* An unsigned number from the environment, or @def when unset or bad. */
static inline uint64_t e2e_env_u64(const char *name, uint64_t def)
{
	const char *s = getenv(name);
	char *end;
	uint64_t v;

	if (!s || !*s || *s == '-')
		return def;
	errno = 0;
	v = strtoull(s, &end, 0);
	return errno || *end ? def : v;
}

/* The seed: $EVRING_E2E_SEED, else from the clock. */
static inline uint64_t e2e_seed(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return e2e_env_u64("EVRING_E2E_SEED",
			   (uint64_t)ts.tv_sec * 1000000007ull ^ ts.tv_nsec ^
			   (uint64_t)getpid() << 32);
}

static inline const char *e2e_bin(const char *env, const char *def)
{
	const char *p = getenv(env);

	return p && *p ? p : def;
}

#define E2E_EVRINGD	e2e_bin("EVRINGD", "build/bin/evringd")
#define E2E_EVRINGCTL	e2e_bin("EVRINGCTL", "build/bin/evringctl")
#define E2E_EVRING_CAT	e2e_bin("EVRING_CAT", "build/bin/evring-cat")

/* Whole file into a malloc'ed NUL-terminated buffer, or NULL. */
static inline char *e2e_slurp(const char *path, size_t *lenp)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (!buf || fd < 0) {
		free(buf);
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	for (;;) {
		if (len + 1 >= cap) {
			char *nb = realloc(buf, cap * 2);

			if (!nb)
				break;
			buf = nb;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n <= 0)
			break;
		len += n;
	}
	close(fd);
	buf[len] = '\0';
	if (lenp)
		*lenp = len;
	return buf;
}

static inline int e2e_write_file(const char *path, const void *buf,
				 size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, buf, len);
	close(fd);
	return n == (ssize_t)len ? 0 : -EIO;
}

/* --- children ---------------------------------------------------------- */

/*
 * Children are remembered so a fixture's teardown can e2e_reap_all() them;
 * a writer blocked in the device pins the module.
 */
static pid_t e2e_children[E2E_CHILDREN_MAX];

/* Run @fn(@arg) in a child that _exit()s with its return value. */
static inline pid_t e2e_spawn(int (*fn)(void *), void *arg)
{
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0)
		_exit(fn(arg));
	for (int i = 0; i < E2E_CHILDREN_MAX; i++) {
		if (!e2e_children[i]) {
			e2e_children[i] = pid;
			break;
		}
	}
	return pid;
}

static inline void e2e_forget(pid_t pid)
{
	for (int i = 0; i < E2E_CHILDREN_MAX; i++)
		if (e2e_children[i] == pid)
			e2e_children[i] = 0;
}

/*
 * Wait up to @timeout_ms (-1: forever) for @pid.  Returns its exit status
 * (0..255), 256 + the signal that ended it, or -ETIMEDOUT (still running).
 */
static inline int e2e_wait(pid_t pid, int timeout_ms)
{
	uint64_t end = e2e_now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
	unsigned int nap = 1;
	int status;

	for (;;) {
		pid_t r = waitpid(pid, &status, timeout_ms < 0 ? 0 : WNOHANG);

		if (r == pid) {
			e2e_forget(pid);
			return WIFEXITED(status) ? WEXITSTATUS(status) :
			       256 + WTERMSIG(status);
		}
		if (r < 0 && errno != EINTR)
			return -errno;
		if (timeout_ms >= 0 && e2e_now_ms() >= end)
			return -ETIMEDOUT;
		e2e_sleep_ms(nap);
		if (nap < 10)
			nap++;
	}
}

static inline void e2e_reap_all(void)
{
	for (int i = 0; i < E2E_CHILDREN_MAX; i++) {
		if (e2e_children[i] > 0) {
			kill(e2e_children[i], SIGKILL);
			e2e_wait(e2e_children[i], 30000);
		}
		e2e_children[i] = 0;
	}
}

/*
 * Run @argv (argv[0] a path) with stdout and stderr into the files @out
 * and @err (NULL: /dev/null).  Returns what e2e_wait() returns, waiting at
 * most @timeout_ms.
 */
static inline int e2e_run(const char *const *argv, const char *out,
			  const char *err, int timeout_ms)
{
	pid_t pid;
	int ret;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int o = open(out ? out : "/dev/null",
			     O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int e = open(err ? err : "/dev/null",
			     O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
			_exit(127);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	ret = e2e_wait(pid, timeout_ms);
	if (ret == -ETIMEDOUT) {
		kill(pid, SIGKILL);
		e2e_wait(pid, -1);
	}
	return ret;
}

/* CPU time (user + system) of @pid so far, in clock ticks; -1 if gone. */
static inline long e2e_cpu_ticks(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut, st;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	/* after "pid (comm)": state ppid pgrp session tty tpgid flags
	 * minflt cminflt majflt cmajflt utime stime */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
			 &ut, &st) != 2)
		return -1;
	return (long)(ut + st);
}

/* --- the private directory and the daemon ------------------------------ */

struct e2e_env {
	char dir[64];
	char spool[128];
	char ingest[108];
	char ctl[108];
	char log[128];
	char conf[128];
	pid_t pid;			/* the running evringd, or 0 */
	int last_status;		/* of the last evringd that ended */
};

static inline int e2e_env_init(struct e2e_env *e, const char *tag)
{
	memset(e, 0, sizeof(*e));
	snprintf(e->dir, sizeof(e->dir), "/tmp/evring-e2e-%s.XXXXXX", tag);
	if (!mkdtemp(e->dir))
		return -errno;
	snprintf(e->spool, sizeof(e->spool), "%s/spool.db", e->dir);
	snprintf(e->ingest, sizeof(e->ingest), "%s/ingest.sock", e->dir);
	snprintf(e->ctl, sizeof(e->ctl), "%s/ctl.sock", e->dir);
	snprintf(e->log, sizeof(e->log), "%s/evringd.log", e->dir);
	snprintf(e->conf, sizeof(e->conf), "%s/evringd.conf", e->dir);
	return e2e_write_file(e->conf, "", 0, 0600);
}

static inline int e2e_rm_cb(const char *path, const struct stat *st,
			    int flag, struct FTW *ftw)
{
	return remove(path) && errno != ENOENT ? -1 : 0;
}

/* Kill the daemon if running; remove the directory unless $EVRING_E2E_KEEP. */
static inline void e2e_env_fini(struct e2e_env *e)
{
	if (e->pid > 0) {
		kill(e->pid, SIGKILL);
		e2e_wait(e->pid, 30000);
		e->pid = 0;
	}
	if (!e->dir[0])
		return;
	if (getenv("EVRING_E2E_KEEP"))
		fprintf(stderr, "# kept %s\n", e->dir);
	else
		nftw(e->dir, e2e_rm_cb, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

/*
 * Start evringd in the background on @e's files: the empty config file,
 * host.id "e2e", its spool, control socket and ingest socket, the device
 * source on /dev/evring; then @sets (NULL-terminated "section.key=value"
 * strings, may be NULL), which win over those.  stdout and stderr append
 * to e->log.  Returns 0 (e->pid set) or -errno.
 */
static inline int e2e_daemon_start(struct e2e_env *e, const char *const *sets)
{
	static char base[5][160];
	const char *argv[8 + 2 * (5 + E2E_SETS_MAX)];
	unsigned int n = 0;
	pid_t pid;

	snprintf(base[0], sizeof(base[0]), "spool.path=%s", e->spool);
	snprintf(base[1], sizeof(base[1]), "control.socket=%s", e->ctl);
	snprintf(base[2], sizeof(base[2]), "sources.socket=%s", e->ingest);
	snprintf(base[3], sizeof(base[3]), "host.id=e2e");
	/* No /metrics: two daemons at once would both want its port. */
	snprintf(base[4], sizeof(base[4]), "ship.metrics_listen=");
	argv[n++] = E2E_EVRINGD;
	argv[n++] = "-c";
	argv[n++] = e->conf;
	for (unsigned int i = 0; i < 5; i++) {
		argv[n++] = "--set";
		argv[n++] = base[i];
	}
	for (unsigned int i = 0; sets && sets[i] && i < E2E_SETS_MAX; i++) {
		argv[n++] = "--set";
		argv[n++] = sets[i];
	}
	argv[n] = NULL;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int fd = open(e->log, O_WRONLY | O_CREAT | O_APPEND, 0600);

		if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(127);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	e->pid = pid;
	return 0;
}

/*
 * One request line to the control socket at @path, one response line back,
 * parsed into *@out (json_decref() it).  Returns 0 or -errno (-EBADMSG:
 * the response is not JSON).
 */
static inline int e2e_ctl(const char *path, const char *req, json_t **out,
			  int timeout_ms)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = {
		.tv_sec = timeout_ms / 1000,
		.tv_usec = (timeout_ms % 1000) * 1000,
	};
	char buf[65536];
	size_t have = 0;
	json_t *j;
	int fd, ret = 0;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    send(fd, req, strlen(req), MSG_NOSIGNAL) < 0 ||
	    send(fd, "\n", 1, MSG_NOSIGNAL) < 0) {
		ret = -errno;
		goto out;
	}
	while (!memchr(buf, '\n', have)) {
		ssize_t n;

		if (have == sizeof(buf) - 1) {
			ret = -EMSGSIZE;
			goto out;
		}
		n = recv(fd, buf + have, sizeof(buf) - 1 - have, 0);
		if (n < 0) {
			ret = errno == EAGAIN ? -ETIMEDOUT : -errno;
			goto out;
		}
		if (n == 0) {
			ret = -ECONNRESET;
			goto out;
		}
		have += n;
	}
	buf[have] = '\0';
	j = json_loads(buf, JSON_DISABLE_EOF_CHECK, NULL);
	if (!j)
		ret = -EBADMSG;
	else
		*out = j;
out:
	close(fd);
	return ret;
}

/* Has @e->pid ended?  Then reap it: e->last_status, e->pid = 0. */
static inline bool e2e_daemon_gone(struct e2e_env *e)
{
	int status;

	if (e->pid <= 0)
		return true;
	if (waitpid(e->pid, &status, WNOHANG) != e->pid)
		return false;
	e->last_status = WIFEXITED(status) ? WEXITSTATUS(status) :
			 256 + WTERMSIG(status);
	e->pid = 0;
	return true;
}

/*
 * Wait until the daemon answers a ping on its control socket (it has
 * attached its sources and resumed from the spool by then).  0, -ECHILD
 * when it exited first (e->last_status says how), -ETIMEDOUT.
 */
static inline int e2e_daemon_wait_ready(struct e2e_env *e, int timeout_ms)
{
	uint64_t end = e2e_now_ms() + timeout_ms;

	while (e2e_now_ms() < end) {
		json_t *j = NULL;

		if (e2e_daemon_gone(e))
			return -ECHILD;
		if (!e2e_ctl(e->ctl, "{\"cmd\":\"ping\"}", &j, 2000)) {
			bool ok = json_is_true(json_object_get(j, "ok"));

			json_decref(j);
			if (ok)
				return 0;
		}
		e2e_sleep_ms(5);
	}
	return -ETIMEDOUT;
}

/* Send @sig and reap.  Returns the exit status as e2e_wait(). */
static inline int e2e_daemon_kill(struct e2e_env *e, int sig)
{
	int ret;

	if (e->pid <= 0)
		return e->last_status;
	kill(e->pid, sig);
	ret = e2e_wait(e->pid, 60000);
	if (ret == -ETIMEDOUT) {
		kill(e->pid, SIGKILL);
		e2e_wait(e->pid, -1);
	}
	e->last_status = ret;
	e->pid = 0;
	return ret;
}

/* SIGTERM: a clean stop.  Returns the exit status (0 expected). */
static inline int e2e_daemon_stop(struct e2e_env *e)
{
	return e2e_daemon_kill(e, SIGTERM);
}

/* The last @max bytes of the daemon's log to stderr, for a failure. */
static inline void e2e_log_tail(const struct e2e_env *e, size_t max)
{
	char *log = e2e_slurp(e->log, NULL);
	size_t len = log ? strlen(log) : 0;

	fprintf(stderr, "# evringd log tail (%s):\n%s\n", e->log,
		log ? log + (len > max ? len - max : 0) : "(none)");
	free(log);
}

/*
 * Start evringd and wait until it is ready; on failure the log's tail goes
 * to stderr.  Returns 0 or what e2e_daemon_wait_ready() returned.
 */
static inline int e2e_daemon_up(struct e2e_env *e, const char *const *sets,
				int timeout_ms)
{
	int ret = e2e_daemon_start(e, sets);

	if (!ret)
		ret = e2e_daemon_wait_ready(e, timeout_ms);
	if (ret) {
		fprintf(stderr, "# evringd did not come up (%s, status %d)\n",
			strerror(-ret), e->last_status);
		e2e_log_tail(e, 2000);
	}
	return ret;
}

/*
 * Run `evringctl --socket CTL --json CMD` and parse its one line of output
 * (the daemon's own response) into *@out.  Returns 0 when evringctl exited
 * 0, its exit status (1: the daemon said no, *@out still set when it
 * printed a line), or -errno.
 */
static inline int e2e_evringctl(struct e2e_env *e, const char *cmd,
				json_t **out)
{
	const char *const argv[] = { E2E_EVRINGCTL, "--socket", e->ctl,
				     "--json", cmd, NULL };
	char path[160], *text;
	int ret;

	snprintf(path, sizeof(path), "%s/evringctl.out", e->dir);
	ret = e2e_run(argv, path, NULL, 30000);
	if (ret < 0)
		return ret;
	text = e2e_slurp(path, NULL);
	*out = text && *text ? json_loads(text, JSON_DISABLE_EOF_CHECK, NULL) :
	       NULL;
	free(text);
	if (!*out && !ret)
		return -EBADMSG;
	return ret;
}

/* `evringctl --json status`: 0 with *@out set, or what failed. */
static inline int e2e_status(struct e2e_env *e, json_t **out)
{
	json_t *j = NULL;
	int ret = e2e_evringctl(e, "status", &j);

	if (ret) {
		json_decref(j);
		return ret < 0 ? ret : -EIO;
	}
	*out = j;
	return 0;
}

static inline const char *e2e_jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

static inline uint64_t e2e_jint(json_t *o, const char *key)
{
	return (uint64_t)json_integer_value(json_object_get(o, key));
}

/*
 * Is everything taken in?  state "draining", and every partition of
 * @source (NULL: every source) has ring_fill 0: for the device nothing
 * between release_pos and prod_pos, for the socket nothing staged.
 */
static inline bool e2e_status_drained(json_t *st, const char *source)
{
	json_t *parts = json_object_get(st, "partitions"), *p;
	size_t i;

	if (strcmp(e2e_jstr(st, "state"), "draining"))
		return false;
	json_array_foreach(parts, i, p) {
		if (source && strcmp(e2e_jstr(p, "source"), source))
			continue;
		if (e2e_jint(p, "ring_fill"))
			return false;
	}
	return true;
}

/* Poll the status until drained (see above).  0, -ETIMEDOUT, -ECHILD. */
static inline int e2e_wait_drained(struct e2e_env *e, const char *source,
				   int timeout_ms)
{
	uint64_t end = e2e_now_ms() + timeout_ms;

	do {
		json_t *st = NULL;
		bool done;

		if (e2e_daemon_gone(e))
			return -ECHILD;
		if (e2e_status(e, &st)) {
			e2e_sleep_ms(20);
			continue;
		}
		done = e2e_status_drained(st, source);
		json_decref(st);
		if (done)
			return 0;
		e2e_sleep_ms(20);
	} while (e2e_now_ms() < end);
	return -ETIMEDOUT;
}

/* Poll the status until its "state" is @state.  0 or -ETIMEDOUT. */
static inline int e2e_wait_state(struct e2e_env *e, const char *state,
				 int timeout_ms)
{
	uint64_t end = e2e_now_ms() + timeout_ms;

	do {
		json_t *st = NULL;
		bool done;

		if (e2e_daemon_gone(e))
			return -ECHILD;
		if (e2e_status(e, &st)) {
			e2e_sleep_ms(20);
			continue;
		}
		done = !strcmp(e2e_jstr(st, "state"), state);
		json_decref(st);
		if (done)
			return 0;
		e2e_sleep_ms(20);
	} while (e2e_now_ms() < end);
	return -ETIMEDOUT;
}

/* Does the daemon's log contain @needle? */
static inline bool e2e_log_has(const struct e2e_env *e, const char *needle)
{
	char *log = e2e_slurp(e->log, NULL);
	bool has = log && strstr(log, needle);

	free(log);
	return has;
}

/* The mtime and size of the spool's WAL: they change with every commit. */
static inline uint64_t e2e_wal_stamp(const struct e2e_env *e)
{
	char path[160];
	struct stat st;

	snprintf(path, sizeof(path), "%s-wal", e->spool);
	if (stat(path, &st))
		return 0;
	return (uint64_t)st.st_mtim.tv_sec * 1000000000ull + st.st_mtim.tv_nsec +
	       (uint64_t)st.st_size;
}

/*
 * Return as soon as the WAL changes (a commit is being written or has just
 * been), polling every 200 us, or after @ms.  true when it changed.
 */
static inline bool e2e_wait_commit(const struct e2e_env *e, unsigned int ms)
{
	uint64_t before = e2e_wal_stamp(e), end = e2e_now_ms() + ms;

	while (e2e_now_ms() < end) {
		if (e2e_wal_stamp(e) != before)
			return true;
		e2e_sleep_us(200);
	}
	return false;
}

/* What e2e_fault_round() did, summed over rounds. */
struct e2e_faults {
	uint64_t rounds;
	uint64_t at_start;	/* killed while starting */
	uint64_t at_commit;	/* killed the moment the WAL changed */
	uint64_t paused;	/* SIGSTOPped for a while first */
	uint64_t in_stop;	/* killed during its SIGTERM drain-out */
	uint64_t stopped;	/* ... or it finished that and exited 0 */
};

/*
 * One round of faults: start evringd with @sets and end it with SIGKILL at
 * a random instant, one of: during its start (attach, resume, skip,
 * release); the moment a commit hits the WAL; after a SIGSTOP pause of up
 * to 500 ms; a little after a SIGTERM, during its drain-out; or anywhere
 * up to @kill_ms after it became ready.  Returns 0 when it ended by our
 * hand (SIGKILL, or exit 0 after SIGTERM), else its unexpected status
 * (> 0) or -errno.
 */
static inline int e2e_fault_round(struct e2e_env *e, const char *const *sets,
				  uint64_t *rng, unsigned int kill_ms,
				  struct e2e_faults *f)
{
	unsigned int how = e2e_rand(rng) % 8;
	bool termed = false;
	int ret, status;

	f->rounds++;
	ret = e2e_daemon_start(e, sets);
	if (ret)
		return ret;
	if (how < 2) {
		e2e_sleep_ms(e2e_rand_range(rng, 0, 40));
		f->at_start++;
	} else if (e2e_daemon_wait_ready(e, 30000)) {
		/* Died by itself: report how. */
	} else if (how < 5) {
		e2e_sleep_ms(e2e_rand_range(rng, 0, kill_ms / 2));
		f->at_commit += e2e_wait_commit(e, 1000);
	} else if (how == 5) {
		e2e_sleep_ms(e2e_rand_range(rng, 0, kill_ms / 2));
		kill(e->pid, SIGSTOP);
		e2e_sleep_ms(e2e_rand_range(rng, 50, 500));
		kill(e->pid, SIGCONT);
		e2e_sleep_ms(e2e_rand_range(rng, 0, kill_ms / 2));
		f->paused++;
	} else if (how == 6) {
		e2e_sleep_ms(e2e_rand_range(rng, 0, kill_ms / 2));
		kill(e->pid, SIGTERM);
		termed = true;
		e2e_sleep_ms(e2e_rand_range(rng, 0, 30));
	} else {
		e2e_sleep_ms(e2e_rand_range(rng, 10, kill_ms));
	}
	status = e2e_daemon_kill(e, SIGKILL);
	if (status == 256 + SIGKILL) {
		f->in_stop += termed;
		return 0;
	}
	if (termed && status == 0) {
		f->stopped++;
		return 0;
	}
	e2e_log_tail(e, 2000);
	return status ? status : -ECHILD;
}

static inline void e2e_print_faults(const char *what, const struct e2e_faults *f,
				    uint64_t ms)
{
	e2e_msg("%s: %" PRIu64 " rounds in %" PRIu64 " ms: killed %" PRIu64
		" while starting, %" PRIu64 " as a commit hit the WAL, %" PRIu64
		" after a SIGSTOP pause, %" PRIu64 " during a SIGTERM drain-out (%" PRIu64
		" finished it first)", what, f->rounds, ms, f->at_start,
		f->at_commit, f->paused, f->in_stop, f->stopped);
}

/* --- the module --------------------------------------------------------- */

/* In a test: load evring.ko with @params, or SKIP when it cannot load. */
#define E2E_LOAD_OR_SKIP(params) do {					\
	int r_ = evring_module_load(params);				\
	if (r_)								\
		SKIP(return, "cannot load %s %s (%s): not in the VM?",	\
		     evring_ko_path(), params, strerror(-r_));		\
} while (0)

/* Stats of every partition; 0 or -errno. */
static inline int e2e_kstats(struct evring_part_stats *out, unsigned int max,
			     unsigned int *n)
{
	struct evring_nl *nl;
	int ret = evring_nl_open(&nl);

	if (ret)
		return ret;
	ret = evring_nl_stats_all(nl, out, max, n);
	evring_nl_close(nl);
	return ret;
}

/* Writers asleep for ring space now, over every partition; -errno. */
static inline long e2e_writers_blocked(void)
{
	struct evring_part_stats st[EVRING_PARTITIONS_MAX];
	unsigned int n;
	long sum = 0;
	int ret = e2e_kstats(st, EVRING_PARTITIONS_MAX, &n);

	if (ret)
		return ret;
	for (unsigned int i = 0; i < n; i++)
		sum += st[i].writers_blocked;
	return sum;
}

#include "e2e_writers.h"
#include "e2e_verdict.h"

#endif /* EVRING_E2E_H */
