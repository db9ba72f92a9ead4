// SPDX-License-Identifier: GPL-2.0-only
/*
 * drill_inject: the regions, evringd, the fault proxies and the spool's
 * filesystem of a drill, and the injectors of its fault schedule; the
 * cleanup journal that undoes it all.  See drill_inject.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "drill_inject.h"

/* snprintf where a truncated result is acceptable (bounded names, notes). */
static void __attribute__((format(printf, 3, 4)))
sfmt(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

#define REGIONS_LOCK_PATH	"/tmp/evring-regions.lock"
#define JOBS_MAX		64
#define JOB_ARGS_MAX		16
#define JOB_ARG_MAX		96
#define QUEUE_DAEMON		DRILL_REGIONS_MAX	/* evringd's own queue */
#define NR_QUEUES		(DRILL_REGIONS_MAX + 1)
#define PROXIES			3	/* one per server of a region */
#define REGION_CMD_TIMEOUT_MS	60000

enum job_kind {
	JOB_PLAIN,
	JOB_FAILPOINT,		/* arming a failpoint: on failure, SIGKILL */
};

struct job {
	bool used, running;
	enum job_kind kind;
	int fault;		/* index, -1: none */
	unsigned int queue;
	uint64_t order;		/* submission order within the queue */
	pid_t pid;
	char argv[JOB_ARGS_MAX][JOB_ARG_MAX];
	unsigned int argc;
};

struct fault_state {
	bool started, ended;
	bool cut;		/* region-flap: partitioned right now */
	int64_t next_ms;	/* flap: next toggle; daemon-kill: next kill */
	bool fp_fired;		/* failpoint: evringd died in the window */
	struct drill_fault_log log;
};

struct drill_inject {
	struct drill_scenario s;
	struct drill_paths paths;
	char dir[PATH_MAX];
	char spool[PATH_MAX], ctl[PATH_MAX], ingest[PATH_MAX];
	char conf[PATH_MAX], daemon_log[PATH_MAX], filler[PATH_MAX];
	char sets[DRILL_SETS_MAX][256];
	unsigned int nsets;
	int journal, log, lock;
	char urls[DRILL_REGIONS_MAX][DRILL_URLS_MAX];
	char direct[DRILL_REGIONS_MAX][DRILL_URLS_MAX];
	bool proxied[DRILL_REGIONS_MAX];
	char proxy_ctl[DRILL_REGIONS_MAX][PROXIES][PATH_MAX];
	bool netem;			/* decided at setup */
	bool tmpfs;
	pid_t daemon;			/* 0: not running */
	bool daemon_wanted;		/* restart it when it dies */
	unsigned int crashes;
	struct job jobs[JOBS_MAX];
	uint64_t job_seq;
	struct fault_state f[DRILL_FAULTS_MAX];
};

/* --- clocks, small helpers -------------------------------------------- */

int64_t drill_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t drill_wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* One line to DIR/inject.log, stamped with the wall clock. */
static void __attribute__((format(printf, 2, 3)))
ilog(struct drill_inject *inj, const char *fmt, ...)
{
	char line[512];
	struct timespec ts;
	va_list ap;
	int n;

	if (inj->log < 0)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	n = snprintf(line, sizeof(line), "%lld.%03ld ", (long long)ts.tv_sec,
		     ts.tv_nsec / 1000000);
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof(line) - 1)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	if (write(inj->log, line, n) < 0)
		return;
}

/* The process's start time (field 22 of /proc/PID/stat), 0: gone. */
static uint64_t proc_start(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long v = 0;
	ssize_t n;
	int fd;

	sfmt(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p)
		return 0;
	/* After ") ": state is field 3; start time field 22. */
	for (int field = 2; p && field < 22; field++)
		p = strchr(p + 1, ' ');
	if (!p || sscanf(p + 1, "%llu", &v) != 1)
		return 0;
	return v;
}

/* --- the journal --------------------------------------------------------- */

static void __attribute__((format(printf, 2, 3)))
journal(struct drill_inject *inj, const char *fmt, ...)
{
	char line[PATH_MAX + 64];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= (int)sizeof(line) - 1)
		return;
	line[n++] = '\n';
	if (write(inj->journal, line, n) != n)
		ilog(inj, "cannot write the cleanup journal: %s",
		     strerror(errno));
	fsync(inj->journal);
}

static void journal_pid(struct drill_inject *inj, pid_t pid, const char *what)
{
	journal(inj, "pid %d %" PRIu64 " %s", (int)pid, proc_start(pid), what);
}

void drill_inject_track(struct drill_inject *inj, pid_t pid, const char *what)
{
	journal_pid(inj, pid, what);
}

/* --- children ------------------------------------------------------------ */

/*
 * Fork and exec @argv in its own process group: stdin /dev/null, stdout
 * to @out_fd (-1: the inject log), stderr to @err_fd (-1: the inject
 * log).  The pid, or -errno.
 */
static pid_t spawn(struct drill_inject *inj, char *const *argv, int out_fd,
		   int err_fd)
{
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		sigset_t none;
		int null = open("/dev/null", O_RDONLY);

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGPIPE, SIG_DFL);
		setpgid(0, 0);
		if (null >= 0)
			dup2(null, 0);
		dup2(out_fd >= 0 ? out_fd : inj->log, 1);
		dup2(err_fd >= 0 ? err_fd : inj->log, 2);
		execv(argv[0], argv);
		dprintf(2, "drill: cannot run %s: %s\n", argv[0],
			strerror(errno));
		_exit(127);
	}
	return pid;
}

/* Wait for @pid up to @timeout_ms, then SIGKILL it.  Exit status or 256+sig. */
static int wait_child(pid_t pid, int timeout_ms)
{
	int64_t end = drill_now_ms() + timeout_ms;
	int status;

	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) :
			       256 + WTERMSIG(status);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (drill_now_ms() >= end) {
			kill(pid, SIGKILL);
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
			return 256 + SIGKILL;
		}
		sleep_ms(10);
	}
}

/*
 * Run argv (NULL-terminated) and wait; its stdout into @out (NUL-terminated,
 * trailing newline cut; NULL: the log).  Exit status, or -errno.
 */
static int run_sync(struct drill_inject *inj, char *const *argv,
		    int timeout_ms, char *out, size_t outlen)
{
	int pfd[2] = { -1, -1 }, ret;
	size_t have = 0;
	pid_t pid;

	ilog(inj, "run: %s %s %s %s", argv[0], argv[1] ? argv[1] : "",
	     argv[1] && argv[2] ? argv[2] : "",
	     argv[1] && argv[2] && argv[3] ? argv[3] : "");
	if (out && pipe2(pfd, O_CLOEXEC))
		return -errno;
	pid = spawn(inj, argv, out ? pfd[1] : -1, -1);
	if (out)
		close(pfd[1]);
	if (pid < 0) {
		if (out)
			close(pfd[0]);
		return pid;
	}
	if (out) {
		int64_t end = drill_now_ms() + timeout_ms;

		for (;;) {
			struct pollfd p = { .fd = pfd[0], .events = POLLIN };
			int64_t left = end - drill_now_ms();
			ssize_t n;

			if (left <= 0 || poll(&p, 1, (int)left) <= 0)
				break;
			if (have + 1 >= outlen)
				break;
			n = read(pfd[0], out + have, outlen - 1 - have);
			if (n <= 0)
				break;
			have += n;
		}
		close(pfd[0]);
		out[have] = '\0';
		while (have && (out[have - 1] == '\n' || out[have - 1] == '\r'))
			out[--have] = '\0';
	}
	ret = wait_child(pid, timeout_ms);
	if (ret)
		ilog(inj, "run: %s %s: exit status %d", argv[0],
		     argv[1] ? argv[1] : "", ret);
	return ret;
}

static int regions_sync(struct drill_inject *inj, char *out, size_t outlen,
			const char *a1, const char *a2, const char *a3)
{
	char *argv[] = { inj->paths.regions, (char *)a1, (char *)a2,
			 (char *)a3, NULL };

	return run_sync(inj, argv, REGION_CMD_TIMEOUT_MS, out, outlen);
}

/* --- jobs: region commands off the tick ---------------------------------- */

static void job_add(struct drill_inject *inj, unsigned int queue, int fault,
		    enum job_kind kind, const char *const *args)
{
	struct job *j = NULL;

	for (unsigned int i = 0; i < JOBS_MAX && !j; i++)
		if (!inj->jobs[i].used)
			j = &inj->jobs[i];
	if (!j) {
		ilog(inj, "job table full: '%s %s' dropped", args[0], args[1]);
		if (fault >= 0)
			inj->f[fault].log.job_failures++;
		return;
	}
	memset(j, 0, sizeof(*j));
	j->used = true;
	j->kind = kind;
	j->fault = fault;
	j->queue = queue;
	j->order = ++inj->job_seq;
	for (; args[j->argc] && j->argc < JOB_ARGS_MAX - 1; j->argc++)
		sfmt(j->argv[j->argc], JOB_ARG_MAX, "%s", args[j->argc]);
}

static void region_job(struct drill_inject *inj, unsigned int region,
		       int fault, const char *cmd, const char *arg)
{
	char name[8];
	const char *args[] = { inj->paths.regions, cmd, name, arg, NULL };

	sfmt(name, sizeof(name), "r%u", region + 1);
	job_add(inj, region, fault, JOB_PLAIN, args);
}

static void job_done(struct drill_inject *inj, struct job *j, int status)
{
	ilog(inj, "job %s %s %s: %s %d", j->argv[0], j->argv[1], j->argv[2],
	     status ? "FAILED, status" : "done, status", status);
	if (status && j->fault >= 0)
		inj->f[j->fault].log.job_failures++;
	if (status && j->kind == JOB_FAILPOINT && j->fault >= 0) {
		struct fault_state *f = &inj->f[j->fault];

		sfmt(f->log.note, sizeof(f->log.note),
			 "evringctl failpoint failed (an evringd without failpoints?): SIGKILL instead");
		if (inj->daemon > 0 && !f->ended)
			kill(inj->daemon, SIGKILL);
	}
	j->used = false;
}

/* Reap finished jobs and start the next of every idle queue. */
static void jobs_poll(struct drill_inject *inj)
{
	for (unsigned int i = 0; i < JOBS_MAX; i++) {
		struct job *j = &inj->jobs[i];
		int status;

		if (!j->used || !j->running)
			continue;
		if (waitpid(j->pid, &status, WNOHANG) != j->pid)
			continue;
		job_done(inj, j, WIFEXITED(status) ? WEXITSTATUS(status) :
			 256 + WTERMSIG(status));
	}
	for (unsigned int q = 0; q < NR_QUEUES; q++) {
		struct job *next = NULL;
		bool busy = false;

		for (unsigned int i = 0; i < JOBS_MAX; i++) {
			struct job *j = &inj->jobs[i];

			if (!j->used || j->queue != q)
				continue;
			busy |= j->running;
			if (!j->running && (!next || j->order < next->order))
				next = j;
		}
		if (busy || !next) {
			continue;
		} else {
			char *argv[JOB_ARGS_MAX + 1];
			pid_t pid;

			for (unsigned int a = 0; a < next->argc; a++)
				argv[a] = next->argv[a];
			argv[next->argc] = NULL;
			ilog(inj, "job start: %s %s %s %s", argv[0], argv[1],
			     argv[2] ? argv[2] : "",
			     argv[2] && argv[3] ? argv[3] : "");
			pid = spawn(inj, argv, -1, -1);
			if (pid < 0) {
				job_done(inj, next, 127);
				continue;
			}
			next->pid = pid;
			next->running = true;
		}
	}
}

static bool jobs_pending(const struct drill_inject *inj)
{
	for (unsigned int i = 0; i < JOBS_MAX; i++)
		if (inj->jobs[i].used)
			return true;
	return false;
}

/* Run every queued job to its end, at most @timeout_ms. */
static void jobs_drain(struct drill_inject *inj, int timeout_ms)
{
	int64_t end = drill_now_ms() + timeout_ms;

	while (jobs_pending(inj) && drill_now_ms() < end) {
		jobs_poll(inj);
		sleep_ms(20);
	}
	for (unsigned int i = 0; i < JOBS_MAX; i++) {
		struct job *j = &inj->jobs[i];

		if (j->used && j->running) {
			kill(j->pid, SIGKILL);
			job_done(inj, j, wait_child(j->pid, 1000));
		} else if (j->used) {
			job_done(inj, j, -ETIMEDOUT);
		}
	}
}

/* --- paths --------------------------------------------------------------- */

static int find_one(char *dst, const char *env, const char *dir,
		    const char *rel, char *err, size_t errlen)
{
	const char *e = env ? getenv(env) : NULL;

	if (e && *e)
		sfmt(dst, PATH_MAX, "%s", e);
	else
		sfmt(dst, PATH_MAX, "%s/%s", dir, rel);
	if (access(dst, X_OK)) {
		sfmt(err, errlen, "cannot run '%s'%s%s%s", dst,
			 env ? " (set $" : "", env ? env : "", env ? ")" : "");
		return -ENOENT;
	}
	return 0;
}

int drill_paths_find(struct drill_paths *p, char *err, size_t errlen)
{
	char self[PATH_MAX], bin[PATH_MAX], top[PATH_MAX], *d;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	int ret;

	if (n <= 0) {
		sfmt(err, errlen, "cannot read /proc/self/exe: %s",
			 strerror(errno));
		return -ENOENT;
	}
	self[n] = '\0';
	sfmt(bin, sizeof(bin), "%s", self);
	d = dirname(bin);
	memmove(bin, d, strlen(d) + 1);
	sfmt(top, sizeof(top), "%s/../..", bin);
	sfmt(p->evringctl, sizeof(p->evringctl), "%s", self);
	ret = find_one(p->evringd, "EVRINGD", bin, "evringd", err, errlen);
	if (!ret)
		ret = find_one(p->faultproxy, "EVRING_FAULTPROXY", bin,
			       "faultproxy", err, errlen);
	if (!ret)
		ret = find_one(p->regions, "EVRING_REGIONS", top,
			       "tools/regions", err, errlen);
	if (!ret)
		ret = find_one(p->plot, "EVRING_DRILL_PLOT", top,
			       "tools/drill-plot", err, errlen);
	return ret;
}

/* --- setup ---------------------------------------------------------------- */

int drill_inject_new(const struct drill_scenario *s, const char *dir,
		     const struct drill_paths *paths, const char *const *sets,
		     struct drill_inject **out, char *err, size_t errlen)
{
	struct drill_inject *inj = calloc(1, sizeof(*inj));
	char path[PATH_MAX + 32], rdir[PATH_MAX + 16];

	if (!inj) {
		sfmt(err, errlen, "out of memory");
		return -ENOMEM;
	}
	inj->s = *s;
	inj->paths = *paths;
	inj->journal = inj->log = inj->lock = -1;
	sfmt(inj->dir, sizeof(inj->dir), "%s", dir);
	sfmt(inj->spool, sizeof(inj->spool), "%s/spool", dir);
	sfmt(inj->ctl, sizeof(inj->ctl), "%s/control.sock", dir);
	sfmt(inj->ingest, sizeof(inj->ingest), "%s/ingest.sock", dir);
	sfmt(inj->conf, sizeof(inj->conf), "%s/evringd.conf", dir);
	sfmt(inj->daemon_log, sizeof(inj->daemon_log), "%s/evringd.log",
		 dir);
	sfmt(inj->filler, sizeof(inj->filler), "%s/spool/filler", dir);
	for (unsigned int i = 0; sets && sets[i]; i++) {
		if (inj->nsets == DRILL_SETS_MAX) {
			sfmt(err, errlen, "too many --set (max %d)",
				 DRILL_SETS_MAX);
			free(inj);
			return -E2BIG;
		}
		sfmt(inj->sets[inj->nsets++], sizeof(inj->sets[0]), "%s",
			 sets[i]);
	}
	for (unsigned int i = 0; i < DRILL_FAULTS_MAX; i++)
		inj->f[i].log.start_ms = inj->f[i].log.end_ms = -1;
	sfmt(path, sizeof(path), "%s/inject.log", dir);
	inj->log = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	sfmt(path, sizeof(path), "%s/cleanup.journal", dir);
	inj->journal = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
			    0644);
	if (inj->log < 0 || inj->journal < 0) {
		int ret = -errno;

		sfmt(err, errlen, "cannot create '%s': %s", path,
			 strerror(errno));
		drill_inject_free(inj, true);
		return ret;
	}
	/* The regions' state lives in the drill's directory. */
	sfmt(rdir, sizeof(rdir), "%s/regions", dir);
	setenv("EVRING_REGIONS_DIR", rdir, 1);
	journal(inj, "tool %s", inj->paths.regions);
	journal(inj, "rdir %s", rdir);
	*out = inj;
	return 0;
}

/* The machine-wide regions lock; say so when we have to wait. */
static int take_lock(struct drill_inject *inj, char *err, size_t errlen)
{
	inj->lock = open(REGIONS_LOCK_PATH, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (inj->lock < 0) {
		sfmt(err, errlen, "cannot open %s: %s", REGIONS_LOCK_PATH,
			 strerror(errno));
		return -errno;
	}
	if (!flock(inj->lock, LOCK_EX | LOCK_NB))
		return 0;
	fprintf(stderr, "drill: waiting for the regions lock (%s): another drill or shipping test runs\n",
		REGIONS_LOCK_PATH);
	while (flock(inj->lock, LOCK_EX)) {
		if (errno != EINTR) {
			sfmt(err, errlen, "cannot lock %s: %s",
				 REGIONS_LOCK_PATH, strerror(errno));
			return -errno;
		}
	}
	return 0;
}

/* Three proxies in front of region @i's servers; URLs point at them. */
static int start_proxies(struct drill_inject *inj, unsigned int i, char *err,
			 size_t errlen)
{
	size_t n = 0;

	for (unsigned int k = 0; k < PROXIES; k++) {
		char up[64], line[128], *port;
		char *argv[] = { inj->paths.faultproxy, "-l", "127.0.0.1:0",
				 "-u", up, "--control", inj->proxy_ctl[i][k],
				 NULL };
		int pfd[2];
		ssize_t got = 0;
		pid_t pid;

		sfmt(inj->proxy_ctl[i][k], PATH_MAX, "%s/proxy-r%u-%u.sock",
			 inj->dir, i + 1, k + 1);
		sfmt(up, sizeof(up), "10.77.%u.2:%u", i + 1, 4222 + k);
		if (pipe2(pfd, O_CLOEXEC))
			return -errno;
		pid = spawn(inj, argv, pfd[1], -1);
		close(pfd[1]);
		if (pid < 0) {
			close(pfd[0]);
			sfmt(err, errlen, "cannot start faultproxy: %s",
				 strerror(-pid));
			return pid;
		}
		journal_pid(inj, pid, "faultproxy");
		/* "faultproxy: listening on 127.0.0.1:PORT" */
		for (int64_t end = drill_now_ms() + 5000;
		     drill_now_ms() < end && !memchr(line, '\n', got);) {
			struct pollfd p = { .fd = pfd[0], .events = POLLIN };
			ssize_t r;

			if (poll(&p, 1, 100) <= 0)
				continue;
			r = read(pfd[0], line + got, sizeof(line) - 1 - got);
			if (r <= 0)
				break;
			got += r;
		}
		close(pfd[0]);
		line[got] = '\0';
		port = strrchr(line, ':');
		if (!strstr(line, "listening on") || !port) {
			sfmt(err, errlen,
				 "faultproxy for r%u did not start (see %s/inject.log)",
				 i + 1, inj->dir);
			return -EIO;
		}
		n += snprintf(inj->urls[i] + n, DRILL_URLS_MAX - n,
			      "%snats://127.0.0.1:%ld", k ? "," : "",
			      strtol(port + 1, NULL, 10));
	}
	inj->proxied[i] = true;
	return 0;
}

static int setup_spool(struct drill_inject *inj, char *err, size_t errlen)
{
	uint64_t size = 0;
	char opts[64];

	if (mkdir(inj->spool, 0700) && errno != EEXIST) {
		sfmt(err, errlen, "cannot create '%s': %s", inj->spool,
			 strerror(errno));
		return -errno;
	}
	for (unsigned int i = 0; i < inj->s.nr_faults; i++)
		if (inj->s.fault[i].kind == DRILL_SPOOL_FULL && !size)
			size = inj->s.fault[i].fs_size;
	if (!size)
		return 0;
	journal(inj, "mount %s", inj->spool);
	sfmt(opts, sizeof(opts), "size=%" PRIu64 ",mode=0700", size);
	if (mount("tmpfs", inj->spool, "tmpfs", MS_NOSUID | MS_NODEV, opts)) {
		sfmt(err, errlen, "cannot mount a %" PRIu64
			 "-byte tmpfs on '%s': %s", size, inj->spool,
			 strerror(errno));
		return -errno;
	}
	inj->tmpfs = true;
	return 0;
}

int drill_inject_setup(struct drill_inject *inj, char *err, size_t errlen)
{
	bool slow[DRILL_REGIONS_MAX] = { false };
	bool any_slow = false;
	int ret;

	ret = take_lock(inj, err, errlen);
	if (ret)
		return ret;
	/* Whatever an earlier drill or test left (the lock is ours). */
	if (regions_sync(inj, NULL, 0, "down-all", NULL, NULL)) {
		sfmt(err, errlen, "'regions down-all' failed (see %s/inject.log)",
			 inj->dir);
		return -EIO;
	}
	for (unsigned int i = 0; i < inj->s.regions; i++) {
		char name[8], idx[8];

		sfmt(name, sizeof(name), "r%u", i + 1);
		sfmt(idx, sizeof(idx), "%u", i + 1);
		journal(inj, "region %s", name);
		if (regions_sync(inj, NULL, 0, "up", name, idx) ||
		    regions_sync(inj, inj->direct[i], DRILL_URLS_MAX, "urls",
				 name, NULL)) {
			sfmt(err, errlen,
				 "region %s did not come up (see %s/inject.log, %s/regions/%s/)",
				 name, inj->dir, inj->dir, name);
			return -EIO;
		}
		sfmt(inj->urls[i], DRILL_URLS_MAX, "%s", inj->direct[i]);
	}
	for (unsigned int i = 0; i < inj->s.nr_faults; i++) {
		const struct drill_fault *f = &inj->s.fault[i];

		if (f->kind == DRILL_REGION_SLOW) {
			slow[f->target_region] = true;
			any_slow = true;
		}
	}
	if (any_slow) {
		char name[8];
		unsigned int first = 0;

		while (!slow[first])
			first++;
		sfmt(name, sizeof(name), "r%u", first + 1);
		inj->netem = !regions_sync(inj, NULL, 0, "netem-ok", name, NULL);
		ilog(inj, "region-slow: %s", inj->netem ? "netem" :
		     "no netem here: tools/faultproxy in front of the region");
		for (unsigned int i = 0; !inj->netem && i < inj->s.regions; i++) {
			if (!slow[i])
				continue;
			ret = start_proxies(inj, i, err, errlen);
			if (ret)
				return ret;
		}
	}
	return setup_spool(inj, err, errlen);
}

const char *drill_inject_urls(const struct drill_inject *inj, unsigned int i)
{
	return inj->urls[i];
}

const char *drill_inject_direct_urls(const struct drill_inject *inj,
				     unsigned int i)
{
	return inj->direct[i];
}

const char *drill_inject_spool_dir(const struct drill_inject *inj)
{
	return inj->spool;
}

const char *drill_inject_ctl(const struct drill_inject *inj)
{
	return inj->ctl;
}

const char *drill_inject_ingest(const struct drill_inject *inj)
{
	return inj->ingest;
}

const char *drill_inject_conf(const struct drill_inject *inj)
{
	return inj->conf;
}

/* --- the control socket ------------------------------------------------ */

int drill_ctl(const char *path, const char *req, int timeout_ms,
	      json_t **out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = {
		.tv_sec = timeout_ms / 1000,
		.tv_usec = (timeout_ms % 1000) * 1000,
	};
	size_t have = 0, cap = 65536;
	char *buf = malloc(cap);
	json_t *j;
	int fd, ret = 0;

	if (!buf)
		return -ENOMEM;
	sfmt(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		free(buf);
		return -errno;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    send(fd, req, strlen(req), MSG_NOSIGNAL) < 0 ||
	    send(fd, "\n", 1, MSG_NOSIGNAL) < 0) {
		ret = -errno;
		goto out;
	}
	while (!have || !memchr(buf, '\n', have)) {
		ssize_t n;

		if (have == cap - 1) {
			char *nb = cap < (16u << 20) ? realloc(buf, cap * 2) :
				   NULL;

			if (!nb) {
				ret = -EMSGSIZE;
				goto out;
			}
			buf = nb;
			cap *= 2;
		}
		n = recv(fd, buf + have, cap - 1 - have, 0);
		if (n < 0 && errno == EINTR)
			continue;
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
	free(buf);
	return ret;
}

/* --- evringd ----------------------------------------------------------------- */

static int daemon_spawn(struct drill_inject *inj)
{
	char *argv[3 + 2 * DRILL_SETS_MAX + 1];
	unsigned int n = 0;
	int fd;
	pid_t pid;

	argv[n++] = inj->paths.evringd;
	argv[n++] = "-c";
	argv[n++] = inj->conf;
	for (unsigned int i = 0; i < inj->nsets; i++) {
		argv[n++] = "--set";
		argv[n++] = inj->sets[i];
	}
	argv[n] = NULL;
	fd = open(inj->daemon_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
		  0644);
	if (fd < 0)
		return -errno;
	pid = spawn(inj, argv, fd, fd);
	close(fd);
	if (pid < 0)
		return pid;
	inj->daemon = pid;
	inj->daemon_wanted = true;
	journal_pid(inj, pid, "evringd");
	ilog(inj, "evringd started, pid %d", (int)pid);
	return 0;
}

/* The last line of evringd's log, for an error message. */
static void daemon_last_line(struct drill_inject *inj, char *buf, size_t len)
{
	char tail[1024];
	ssize_t n = 0;
	int fd = open(inj->daemon_log, O_RDONLY | O_CLOEXEC);

	buf[0] = '\0';
	if (fd < 0)
		return;
	off_t size = lseek(fd, 0, SEEK_END);

	if (size > 0) {
		off_t from = size > (off_t)sizeof(tail) - 1 ?
			     size - (off_t)sizeof(tail) + 1 : 0;

		n = pread(fd, tail, sizeof(tail) - 1, from);
	}
	close(fd);
	if (n <= 0)
		return;
	tail[n] = '\0';
	while (n && tail[n - 1] == '\n')
		tail[--n] = '\0';
	char *nl = strrchr(tail, '\n');

	sfmt(buf, len, "%s", nl ? nl + 1 : tail);
}

int drill_inject_daemon_start(struct drill_inject *inj, int timeout_ms,
			      char *err, size_t errlen)
{
	int64_t end = drill_now_ms() + timeout_ms;
	int ret = daemon_spawn(inj), status;

	if (ret) {
		sfmt(err, errlen, "cannot start %s: %s", inj->paths.evringd,
			 strerror(-ret));
		return ret;
	}
	while (drill_now_ms() < end) {
		json_t *j = NULL;

		if (waitpid(inj->daemon, &status, WNOHANG) == inj->daemon) {
			char last[300];

			inj->daemon = 0;
			daemon_last_line(inj, last, sizeof(last));
			sfmt(err, errlen, "evringd exited at start: %s",
				 last[0] ? last : "(empty log)");
			return -ECHILD;
		}
		if (!drill_ctl(inj->ctl, "{\"cmd\":\"ping\"}", 1000, &j)) {
			bool ok = json_is_true(json_object_get(j, "ok"));

			json_decref(j);
			if (ok)
				return 0;
		}
		sleep_ms(20);
	}
	sfmt(err, errlen, "evringd did not answer a ping within %d ms (see %s)",
		 timeout_ms, inj->daemon_log);
	return -ETIMEDOUT;
}

bool drill_inject_daemon_up(const struct drill_inject *inj)
{
	return inj->daemon > 0;
}

unsigned int drill_inject_daemon_crashes(const struct drill_inject *inj)
{
	return inj->crashes;
}

/* The fault whose window explains an evringd death at @t_ms, or -1. */
static int death_explained(struct drill_inject *inj, int64_t t_ms)
{
	for (unsigned int i = 0; i < inj->s.nr_faults; i++) {
		const struct drill_fault *f = &inj->s.fault[i];
		const struct fault_state *st = &inj->f[i];

		if (f->kind != DRILL_DAEMON_KILL && f->kind != DRILL_FAILPOINT)
			continue;
		/* A failpoint may fire a little after the window closed. */
		if (st->started && (!st->ended || t_ms < st->log.end_ms + 2000))
			return (int)i;
	}
	return -1;
}

/* Reap evringd if it died, and restart it. */
static void daemon_supervise(struct drill_inject *inj, int64_t t_ms)
{
	int status, why;

	if (inj->daemon <= 0) {
		if (inj->daemon_wanted && daemon_spawn(inj))
			ilog(inj, "cannot restart evringd");
		return;
	}
	if (waitpid(inj->daemon, &status, WNOHANG) != inj->daemon)
		return;
	why = death_explained(inj, t_ms);
	ilog(inj, "evringd pid %d %s %d at t=%" PRId64 " ms (%s)",
	     (int)inj->daemon, WIFEXITED(status) ? "exited" : "killed by",
	     WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), t_ms,
	     why >= 0 ? inj->s.fault[why].name : "UNEXPECTED");
	inj->daemon = 0;
	if (why >= 0) {
		inj->f[why].log.kills++;
		inj->f[why].fp_fired = true;
	} else {
		inj->crashes++;
	}
	if (daemon_spawn(inj))
		ilog(inj, "cannot restart evringd");
}

/* SIGKILL evringd, reap it, start it again (daemon-kill). */
static void daemon_kill_restart(struct drill_inject *inj, unsigned int fault)
{
	if (inj->daemon > 0) {
		kill(inj->daemon, SIGKILL);
		wait_child(inj->daemon, 5000);
		ilog(inj, "evringd pid %d killed (SIGKILL)", (int)inj->daemon);
		inj->daemon = 0;
		inj->f[fault].log.kills++;
	}
	if (daemon_spawn(inj))
		ilog(inj, "cannot restart evringd");
}

/* --- injectors ------------------------------------------------------------ */

static int proxy_cmd(struct drill_inject *inj, const char *path,
		     const char *line)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { 2, 0 };
	char ans[128];
	ssize_t n;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), ret = 0;

	if (fd < 0)
		return -errno;
	sfmt(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    write(fd, line, strlen(line)) < 0) {
		ret = -errno;
	} else {
		n = read(fd, ans, sizeof(ans) - 1);
		ans[n > 0 ? n : 0] = '\0';
		if (strncmp(ans, "ok", 2))
			ret = -EIO;
	}
	close(fd);
	ilog(inj, "faultproxy %s: %.*s -> %s", path, (int)strcspn(line, "\n"),
	     line, ret ? "FAILED" : "ok");
	return ret;
}

static void proxy_set(struct drill_inject *inj, unsigned int fault,
		      unsigned int region, const struct drill_fault *f,
		      bool on)
{
	for (unsigned int k = 0; k < PROXIES; k++) {
		const char *p = inj->proxy_ctl[region][k];
		char l[4][48];

		sfmt(l[0], sizeof(l[0]), "set latency_ms %u\n",
			 on ? f->latency_ms : 0);
		sfmt(l[1], sizeof(l[1]), "set jitter_ms %u\n",
			 on ? f->jitter_ms : 0);
		sfmt(l[2], sizeof(l[2]), "set rate_kbit %u\n",
			 on ? f->rate_kbit : 0);
		sfmt(l[3], sizeof(l[3]), "set drop_pct %u\n",
			 on ? f->loss_pct : 0);
		/* Jitter may not exceed latency: order the changes. */
		for (unsigned int c = 0; c < 4; c++)
			if (proxy_cmd(inj, p, on ? l[c] : l[(c + 1) % 4]))
				inj->f[fault].log.job_failures++;
	}
}

static void slow_on(struct drill_inject *inj, unsigned int i)
{
	const struct drill_fault *f = &inj->s.fault[i];
	unsigned int r = f->target_region;

	if (!inj->netem) {
		sfmt(inj->f[i].log.note, DRILL_NOTE_MAX,
			 "tools/faultproxy (no netem here): latency %u+-%u ms, rate %u kbit, %u %% of connections reset",
			 f->latency_ms, f->jitter_ms, f->rate_kbit, f->loss_pct);
		proxy_set(inj, i, r, f, true);
		return;
	}
	const char *args[JOB_ARGS_MAX];
	char name[8], v[4][16];
	unsigned int n = 0;

	sfmt(name, sizeof(name), "r%u", r + 1);
	args[n++] = inj->paths.regions;
	args[n++] = "slow";
	args[n++] = name;
	if (f->latency_ms) {
		sfmt(v[0], sizeof(v[0]), "%u", f->latency_ms);
		args[n++] = "delay";
		args[n++] = v[0];
		if (f->jitter_ms) {
			sfmt(v[1], sizeof(v[1]), "%u", f->jitter_ms);
			args[n++] = v[1];
		}
	}
	if (f->loss_pct) {
		sfmt(v[2], sizeof(v[2]), "%u", f->loss_pct);
		args[n++] = "loss";
		args[n++] = v[2];
	}
	if (f->rate_kbit) {
		sfmt(v[3], sizeof(v[3]), "%u", f->rate_kbit);
		args[n++] = "rate";
		args[n++] = v[3];
	}
	args[n] = NULL;
	sfmt(inj->f[i].log.note, DRILL_NOTE_MAX,
		 "netem both ways: delay %u+-%u ms, loss %u %%, rate %u kbit",
		 f->latency_ms, f->jitter_ms, f->loss_pct, f->rate_kbit);
	job_add(inj, r, (int)i, JOB_PLAIN, args);
}

static void slow_off(struct drill_inject *inj, unsigned int i)
{
	const struct drill_fault *f = &inj->s.fault[i];

	if (inj->netem)
		region_job(inj, f->target_region, (int)i, "unslow", NULL);
	else
		proxy_set(inj, i, f->target_region, f, false);
}

/* Take all the free space of the spool's filesystem. */
static void fill_spool(struct drill_inject *inj, unsigned int i)
{
	static const char zero[1 << 16];
	struct statvfs sv;
	int fd;

	journal(inj, "filler %s", inj->filler);
	fd = open(inj->filler, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || fstatvfs(fd, &sv)) {
		ilog(inj, "cannot create '%s': %s", inj->filler,
		     strerror(errno));
		inj->f[i].log.job_failures++;
		if (fd >= 0)
			close(fd);
		return;
	}
	if (fallocate(fd, 0, 0, (off_t)sv.f_bavail * sv.f_frsize))
		while (write(fd, zero, sizeof(zero)) > 0)
			;
	while (write(fd, zero, 4096) > 0)
		;
	fstatvfs(fd, &sv);
	ilog(inj, "spool filesystem filled: %llu bytes free",
	     (unsigned long long)sv.f_bavail * sv.f_frsize);
	close(fd);
	sfmt(inj->f[i].log.note, DRILL_NOTE_MAX,
		 "spool on a %" PRIu64 "-byte tmpfs, filled by %s",
		 inj->s.fault[i].fs_size, inj->filler);
}

static void fault_start(struct drill_inject *inj, unsigned int i, int64_t t)
{
	const struct drill_fault *f = &inj->s.fault[i];
	struct fault_state *st = &inj->f[i];
	unsigned int r = f->target_region;

	st->started = true;
	st->log.start_ms = t;
	ilog(inj, "fault '%s' (%s) on at t=%" PRId64 " ms", f->name,
	     drill_fault_kind_name(f->kind), t);
	switch (f->kind) {
	case DRILL_REGION_KILL:
		region_job(inj, r, (int)i, "kill", NULL);
		sfmt(st->log.note, DRILL_NOTE_MAX,
			 "SIGKILL every server; restarted on their stores after");
		break;
	case DRILL_REGION_PAUSE:
		region_job(inj, r, (int)i, "stop", NULL);
		sfmt(st->log.note, DRILL_NOTE_MAX,
			 "SIGSTOP every server, SIGCONT after");
		break;
	case DRILL_REGION_PARTITION:
		region_job(inj, r, (int)i, "partition", NULL);
		sfmt(st->log.note, DRILL_NOTE_MAX,
			 "nftables in the region's namespace: both ways dropped");
		break;
	case DRILL_REGION_ONEWAY:
		region_job(inj, r, (int)i, "oneway", "in");
		sfmt(st->log.note, DRILL_NOTE_MAX,
			 "nftables: evringd -> region dropped, region -> evringd passes");
		break;
	case DRILL_REGION_FLAP:
		region_job(inj, r, (int)i, "partition", NULL);
		st->cut = true;
		st->next_ms = t + f->period_ms / 2;
		sfmt(st->log.note, DRILL_NOTE_MAX,
			 "nftables partition on %u ms, off %u ms, repeated",
			 f->period_ms / 2, f->period_ms - f->period_ms / 2);
		break;
	case DRILL_REGION_SLOW:
		slow_on(inj, i);
		break;
	case DRILL_DAEMON_KILL:
		st->next_ms = t;	/* the first kill now, in the tick */
		sfmt(st->log.note, DRILL_NOTE_MAX,
			 "SIGKILL evringd every %u ms, restarted at once",
			 f->every_ms);
		break;
	case DRILL_SPOOL_FULL:
		fill_spool(inj, i);
		break;
	case DRILL_FAILPOINT: {
		const char *args[] = { inj->paths.evringctl, "--socket",
				       inj->ctl, "failpoint", f->failpoint,
				       "crash", NULL };

		sfmt(st->log.note, DRILL_NOTE_MAX,
			 "evringctl failpoint %s crash", f->failpoint);
		job_add(inj, QUEUE_DAEMON, (int)i, JOB_FAILPOINT, args);
		break;
	}
	default:
		break;
	}
}

static void fault_end(struct drill_inject *inj, unsigned int i, int64_t t)
{
	const struct drill_fault *f = &inj->s.fault[i];
	struct fault_state *st = &inj->f[i];
	unsigned int r = f->target_region;

	st->ended = true;
	st->log.end_ms = t;
	ilog(inj, "fault '%s' (%s) off at t=%" PRId64 " ms", f->name,
	     drill_fault_kind_name(f->kind), t);
	switch (f->kind) {
	case DRILL_REGION_KILL:
		region_job(inj, r, (int)i, "start", NULL);
		break;
	case DRILL_REGION_PAUSE:
		region_job(inj, r, (int)i, "cont", NULL);
		break;
	case DRILL_REGION_PARTITION:
	case DRILL_REGION_ONEWAY:
	case DRILL_REGION_FLAP:
		region_job(inj, r, (int)i, "heal", NULL);
		st->cut = false;
		break;
	case DRILL_REGION_SLOW:
		slow_off(inj, i);
		break;
	case DRILL_SPOOL_FULL:
		if (unlink(inj->filler) && errno != ENOENT)
			ilog(inj, "cannot remove '%s': %s", inj->filler,
			     strerror(errno));
		break;
	case DRILL_FAILPOINT:
		if (!st->fp_fired && inj->daemon > 0) {
			const char *args[] = { inj->paths.evringctl,
					       "--socket", inj->ctl,
					       "failpoint", f->failpoint,
					       "off", NULL };

			job_add(inj, QUEUE_DAEMON, -1, JOB_PLAIN, args);
		}
		break;
	default:
		break;
	}
}

void drill_inject_tick(struct drill_inject *inj, int64_t t)
{
	for (unsigned int i = 0; i < inj->s.nr_faults; i++) {
		const struct drill_fault *f = &inj->s.fault[i];
		struct fault_state *st = &inj->f[i];
		int64_t end = (int64_t)f->at_ms + f->for_ms;

		if (!st->started && !st->ended && t >= f->at_ms && t < end)
			fault_start(inj, i, t);
		if (!st->started || st->ended)
			continue;
		if (f->kind == DRILL_REGION_FLAP) {
			while (t >= st->next_ms && st->next_ms < end) {
				st->cut = !st->cut;
				region_job(inj, f->target_region, (int)i,
					   st->cut ? "partition" : "heal", NULL);
				st->next_ms += st->cut ? f->period_ms / 2 :
					       f->period_ms - f->period_ms / 2;
			}
		}
		if (f->kind == DRILL_DAEMON_KILL) {
			while (t >= st->next_ms && st->next_ms < end) {
				daemon_kill_restart(inj, i);
				st->next_ms += f->every_ms;
			}
		}
		if (t >= end)
			fault_end(inj, i, t);
	}
	jobs_poll(inj);
	daemon_supervise(inj, t);
}

void drill_inject_end_all(struct drill_inject *inj, int64_t t)
{
	for (unsigned int i = 0; i < inj->s.nr_faults; i++)
		if (inj->f[i].started && !inj->f[i].ended)
			fault_end(inj, i, t);
	jobs_drain(inj, REGION_CMD_TIMEOUT_MS);
	daemon_supervise(inj, t);
}

bool drill_inject_active(const struct drill_inject *inj, unsigned int i)
{
	return i < inj->s.nr_faults && inj->f[i].started && !inj->f[i].ended;
}

void drill_inject_fault_log(const struct drill_inject *inj, unsigned int i,
			    struct drill_fault_log *out)
{
	*out = inj->f[i].log;
}

/* --- cleanup ----------------------------------------------------------------- */

static int kill_tracked(pid_t pid, uint64_t start, const char *what)
{
	int64_t end;

	if (pid <= 1 || !start || proc_start(pid) != start)
		return 0;	/* gone, or the pid was reused */
	/* evringd and the proxies stop cleanly on SIGTERM. */
	kill(pid, strcmp(what, "writer") ? SIGTERM : SIGKILL);
	end = drill_now_ms() + 5000;
	while (proc_start(pid) == start && drill_now_ms() < end) {
		waitpid(pid, NULL, WNOHANG);
		sleep_ms(20);
	}
	if (proc_start(pid) == start) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	waitpid(pid, NULL, WNOHANG);
	return proc_start(pid) == start ? -EBUSY : 0;
}

static int tool_run(const char *tool, const char *cmd, const char *arg)
{
	pid_t pid = fork();
	int status;

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
		}
		setpgid(0, 0);
		execl(tool, tool, cmd, arg, (char *)NULL);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -EINTR;
}

int drill_cleanup_dir(const char *dir, bool keep, char *err, size_t errlen)
{
	char path[PATH_MAX + 32], line[PATH_MAX + 64], tool[PATH_MAX] = "";
	char regions[DRILL_REGIONS_MAX][16], mnt[PATH_MAX] = "";
	unsigned int nreg = 0, failed = 0;
	FILE *f;

	sfmt(path, sizeof(path), "%s/cleanup.journal", dir);
	f = fopen(path, "re");
	if (!f) {
		sfmt(err, errlen, "cannot open '%s': %s", path,
			 strerror(errno));
		return -errno;
	}
	/* First pass: what exists; the faults go first. */
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (!strncmp(line, "tool ", 5))
			sfmt(tool, sizeof(tool), "%s", line + 5);
		else if (!strncmp(line, "rdir ", 5))
			setenv("EVRING_REGIONS_DIR", line + 5, 1);
		else if (!strncmp(line, "region ", 7) && nreg < DRILL_REGIONS_MAX)
			sfmt(regions[nreg++], sizeof(regions[0]), "%s",
				 line + 7);
		else if (!strncmp(line, "filler ", 7))
			unlink(line + 7);
		else if (!strncmp(line, "mount ", 6))
			sfmt(mnt, sizeof(mnt), "%s", line + 6);
	}
	for (unsigned int i = 0; tool[0] && i < nreg; i++) {
		tool_run(tool, "heal", regions[i]);
		tool_run(tool, "unslow", regions[i]);
		tool_run(tool, "cont", regions[i]);
		if (keep)
			tool_run(tool, "start", regions[i]);
	}
	if (!keep) {
		/* Processes in reverse order: writers, evringd, proxies. */
		pid_t pids[512];
		uint64_t starts[512];
		char whats[512][16];
		unsigned int np = 0;

		rewind(f);
		while (fgets(line, sizeof(line), f) && np < 512) {
			int pid;
			unsigned long long st;
			char what[16];

			if (sscanf(line, "pid %d %llu %15s", &pid, &st, what) != 3)
				continue;
			pids[np] = pid;
			starts[np] = st;
			sfmt(whats[np++], sizeof(whats[0]), "%s", what);
		}
		while (np--)
			if (kill_tracked(pids[np], starts[np], whats[np]))
				failed++;
		for (unsigned int i = 0; tool[0] && i < nreg; i++)
			if (tool_run(tool, "down", regions[i]))
				failed++;
		if (mnt[0] && umount2(mnt, MNT_DETACH) && errno != EINVAL &&
		    errno != ENOENT)
			failed++;
	}
	fclose(f);
	if (failed) {
		sfmt(err, errlen,
			 "%u thing(s) could not be removed (ip netns list; mount | grep %s)",
			 failed, dir);
		return -EBUSY;
	}
	return 0;
}

void drill_inject_forked(struct drill_inject *inj)
{
	/*
	 * A child that does not exec keeps the regions lock's open file
	 * alive; were the runner SIGKILLed, that child would hold the lock
	 * and `--cleanup` would wait for it forever.
	 */
	if (inj && inj->lock >= 0) {
		close(inj->lock);
		inj->lock = -1;
	}
}

int drill_cleanup_dir_locked(const char *dir, bool keep, char *err,
			     size_t errlen)
{
	struct drill_inject lk = { .lock = -1 };
	int ret;

	/* Regions are machine-wide: never tear down under a running drill. */
	ret = take_lock(&lk, err, errlen);
	if (!ret)
		ret = drill_cleanup_dir(dir, keep, err, errlen);
	if (lk.lock >= 0)
		close(lk.lock);
	return ret;
}

void drill_inject_free(struct drill_inject *inj, bool keep)
{
	char err[256];

	if (!inj)
		return;
	jobs_drain(inj, 10000);
	inj->daemon_wanted = false;
	if (!keep && inj->daemon > 0) {
		kill(inj->daemon, SIGTERM);
		wait_child(inj->daemon, 10000);
		inj->daemon = 0;
	}
	if (inj->journal >= 0 && drill_cleanup_dir(inj->dir, keep, err,
						   sizeof(err)))
		fprintf(stderr, "drill: cleanup: %s\n", err);
	if (inj->journal >= 0)
		close(inj->journal);
	if (inj->log >= 0)
		close(inj->log);
	if (inj->lock >= 0)
		close(inj->lock);
	free(inj);
}
