// SPDX-License-Identifier: GPL-2.0-only
/*
 * spool_bench: writer processes -> evring.ko -> evringd -> SQLite spool,
 * against writer processes -> AF_UNIX datagrams -> rsyslogd -> omfile, side
 * by side, until every event is durable in the sink.
 *
 * Sinks (-m), each started afresh for every cell with an empty data dir:
 *
 *	evringd-full	 evringd, spool.synchronous=full, once per commit-bound
 *			 setting (-b); the device source only; writer i pinned
 *			 to partition i, one write(2) per event
 *	evringd-normal	 the same with spool.synchronous=normal
 *	rsyslog-disk	 rsyslogd, imuxsock on a private socket, main queue
 *			 queue.type="Disk" with syncQueueFiles and
 *			 checkpointInterval=1, omfile sync="on": rsyslog's most
 *			 durable setting (every message fsynced to the queue
 *			 file on receipt, the output fsynced per batch)
 *	rsyslog-da-sync	 the same options on a disk-assisted (LinkedList +
 *			 queue.filename) main queue, which keeps messages in
 *			 memory until its high watermark
 *	rsyslog-default	 rsyslog's defaults, the main queue made disk-assisted
 *			 by queue.filename; omfile with its defaults
 *
 * Writers send one event per call (send(2) on a socket connected once, as
 * syslog(3) does, for rsyslog), the same bytes to every sink: a syslog(3)
 * line "<14>TIMESTAMP spool_bench[PID]: w=W c=C xxx..." padded to the event
 * size.  A cell is timed from the common start of the writers until the
 * sink holds every event: for evringd, until the spool's record count (the
 * control socket's "spool" answer, what `evringctl --json spool` prints)
 * reaches the total; for rsyslog, until the output file holds every line.
 * Both are polled every -p milliseconds.  Then the sink is stopped and the
 * cell verified: the spool must hold, in partition i, exactly the records
 * 1..N of writer i (sqlite3 on the file, no ledger entries); the rsyslog
 * output must hold every (w, c) exactly once and nothing else.
 *
 * Repetitions are interleaved (every cell of a repetition runs before the
 * next, in a rotated order) and the report gives medians.  Nothing here
 * asserts a speed.  One more check, not timed: a writer writes events,
 * fsync(2)s its device fd and SIGKILLs evringd as soon as fsync returns;
 * every event must then be in the spool.
 *
 * Besides the rates, every cell samples where the time went over its timed
 * window: how busy the VM's CPUs were (and how much of the rest was
 * iowait, /proc/stat), the sink's CPU time (/proc/PID/stat, all its
 * threads), the bytes it passed to write(2) (/proc/PID/io wchar) and the
 * writers' CPU time.
 *
 * Usage: spool_bench -d DIR [-o OUTDIR] [-l PARAMS] [-r REPS] [-w WRITERS]
 *		      [-n COUNTS] [-N METHOD=COUNT]... [-s SIZES] [-m METHODS]
 *		      [-b BOUNDS] [-p POLL_MS] [-t CELL_TIMEOUT_S] [-k COUNT]
 *	-d	the file system under test: spools, queues and outputs go here
 *	-l	(re)load evring.ko ($EVRING_KO, else ./evring.ko) with PARAMS
 *		before every evringd cell, unload it at the end
 *	-n	events per writer, one per size (the last one repeats);
 *		-N METHOD=COUNT overrides it for one method at every size
 *	-b	commit bounds to try, RECORDS:BYTES:MS[,...] (evringd's
 *		drain.batch_records, drain.batch_bytes, drain.batch_ms)
 *	-k	events of the kill -9 check (0: skip it)
 *	-o	write spool_bench.tsv (every run), spool_bench.json and
 *		spool_bench.md (the table printed on stdout), and the sinks'
 *		logs, into OUTDIR
 * $EVRINGD, $RSYSLOGD, $SQLITE3 override the programs' paths.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "evring.h"
#include "bench_util.h"
#include "../selftests/kmod/evring_module.h"

#define SB_MAX_WRITERS	4
#define SB_MAX_SIZES	4
#define SB_MAX_BOUNDS	6
#define SB_MAX_REPS	20
#define SB_MAX_PEERS	(2 * SB_MAX_BOUNDS + 3)
#define SB_MIN_SIZE	96	/* room for the syslog header and w=, c= */
#define SB_MAX_SIZE	8192	/* rsyslog's default maxMessageSize */
#define SB_START_S	60	/* a sink must be ready within this */
#define SB_STOP_S	60	/* ... and gone this long after SIGTERM */
#define SB_TAG		"spool_bench"
#define SB_RUN_DIR	"/tmp/spool_bench"

enum sb_method {
	M_EVRINGD_FULL,
	M_EVRINGD_NORMAL,
	M_RSYSLOG_DISK,
	M_RSYSLOG_DA_SYNC,
	M_RSYSLOG_DEFAULT,
	M_NR,
};

static const struct {
	const char *name;
	const char *label;
	bool evringd;
} sb_methods[M_NR] = {
	[M_EVRINGD_FULL] = { "evringd-full", "evringd, synchronous=full", true },
	[M_EVRINGD_NORMAL] = { "evringd-normal", "evringd, synchronous=normal", true },
	[M_RSYSLOG_DISK] = { "rsyslog-disk", "rsyslog, Disk queue, all syncs on", false },
	[M_RSYSLOG_DA_SYNC] = { "rsyslog-da-sync", "rsyslog, DA queue, all syncs on", false },
	[M_RSYSLOG_DEFAULT] = { "rsyslog-default", "rsyslog, defaults, DA queue", false },
};

/* evringd's group-commit bounds: drain.batch_records/_bytes/_ms. */
struct sb_bounds {
	unsigned int records;
	unsigned long long bytes;
	unsigned int ms;
	char label[48];		/* as given, "4096:4M:5" */
	char bytes_label[24];	/* "4M" */
};

/* One sink configuration: a method, and for evringd one bounds setting. */
struct sb_peer {
	enum sb_method m;
	unsigned int bounds;	/* index into opt.bounds, evringd only */
};

/* One cell: a sink configuration, an event size, events per writer. */
struct sb_cell {
	const struct sb_peer *pe;
	unsigned int size;
	unsigned int count;
};

/* What the machine and the sink did up to one moment. */
struct sb_sample {
	uint64_t vm_total, vm_busy, vm_iowait;	/* /proc/stat, ticks */
	uint64_t sink_ticks;			/* utime + stime */
	uint64_t sink_wchar;			/* /proc/PID/io */
};

struct sb_result {
	bool ok;
	uint64_t events;	/* verified in the sink */
	double elapsed_s;	/* common start -> all durable */
	uint64_t batches;	/* evringd: batches in the spool */
	double vm_busy;		/* share of all CPUs' time, timed window */
	double vm_iowait;	/* likewise */
	double sink_cpu_s;	/* the sink, all threads, timed window */
	double writer_cpu_s;	/* the writers, user + sys, their lives */
	uint64_t sink_wchar;	/* bytes the sink passed to write(2) */
};

/* A running sink. */
struct sb_sink {
	pid_t pid;
	int ctl_fd;		/* evringd: control socket */
	int out_fd;		/* rsyslog: the output file, -1 until it exists */
	uint64_t out_lines;	/* rsyslog: '\n' seen so far */
};

static struct {
	const char *dir;
	const char *outdir;
	const char *load_params;
	unsigned int reps;
	unsigned int nwriters;
	unsigned int count[SB_MAX_SIZES];	/* per size */
	unsigned int ncounts;
	unsigned int method_count[M_NR];	/* 0: opt.count */
	unsigned int sizes[SB_MAX_SIZES];
	unsigned int nsizes;
	bool method_on[M_NR];
	struct sb_bounds bounds[SB_MAX_BOUNDS];
	unsigned int nbounds;
	unsigned int poll_ms;
	unsigned int cell_timeout_s;
	unsigned int kill_count;
	const char *evringd;
	const char *rsyslogd;
	const char *sqlite3;
	struct sb_peer peers[SB_MAX_PEERS];
	unsigned int npeers;
} opt = {
	.reps = 3,
	.nwriters = 2,
	.count = { 50000, 10000 },
	.ncounts = 2,
	.poll_ms = 5,
	.cell_timeout_s = 300,
	.kill_count = 10000,
};

static FILE *sink_log;		/* OUTDIR/sinks.log: the sinks' stderr */

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static double tv_s(const struct timeval *tv)
{
	return tv->tv_sec + tv->tv_usec / 1e6;
}

static int write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");
	int ret = 0;

	if (!f)
		return -errno;
	if (fputs(text, f) < 0)
		ret = -EIO;
	if (fclose(f) && !ret)
		ret = -errno;
	return ret;
}

/* rm -rf @path (our own data dirs only). */
static int remove_tree(const char *path)
{
	char cmd[PATH_MAX + 32];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	return system(cmd) == 0 ? 0 : -EIO;
}

/* --- events --------------------------------------------------------------- */

/*
 * Event @c of writer @w in @buf, exactly @size bytes: what syslog(3) sends,
 * "<14>Mmm dd hh:mm:ss spool_bench[PID]: w=W c=C " padded with 'x'.
 */
static void ev_format(char *buf, unsigned int size, const char *hdr,
		      unsigned int w, uint64_t c)
{
	int n = snprintf(buf, size, "%sw=%u c=%010" PRIu64 " ", hdr, w, c);

	memset(buf + n, 'x', size - n);
}

/* The syslog(3) prefix of this process's events. */
static void ev_header(char *hdr, size_t len)
{
	char ts[32];
	time_t t = time(NULL);
	struct tm tm;

	localtime_r(&t, &tm);
	strftime(ts, sizeof(ts), "%b %e %H:%M:%S", &tm);
	snprintf(hdr, len, "<14>%s " SB_TAG "[%d]: ", ts, (int)getpid());
}

/* --- processes ------------------------------------------------------------ */

/*
 * Reap @pid within @timeout_s (SIGKILL after it); @ru gets its usage.
 * Returns its wait status, or -ETIMEDOUT when it had to be killed.
 */
static int reap_pid(pid_t pid, unsigned int timeout_s, struct rusage *ru)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_s * 1000000000u;
	struct rusage dummy;
	int st;

	for (;;) {
		pid_t r = wait4(pid, &st, WNOHANG, ru ? ru : &dummy);

		if (r == pid)
			return st;
		if (r < 0 && errno != EINTR)
			return -errno;
		if (now_ns() >= deadline) {
			fprintf(stderr, "spool_bench: pid %d did not exit, killing it\n",
				(int)pid);
			kill(pid, SIGKILL);
			wait4(pid, &st, 0, ru ? ru : &dummy);
			return -ETIMEDOUT;
		}
		sleep_ms(5);
	}
}

/* fork + exec @argv with stdout and stderr appended to the sinks' log. */
static pid_t spawn_sink(char *const argv[], char *const envp_add)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid)
		return pid;
	if (sink_log) {
		dup2(fileno(sink_log), STDOUT_FILENO);
		dup2(fileno(sink_log), STDERR_FILENO);
	}
	if (envp_add)
		putenv(envp_add);
	execv(argv[0], argv);
	fprintf(stderr, "spool_bench: cannot run '%s': %s\n", argv[0],
		strerror(errno));
	_exit(127);
}

/* Run a shell command, its first output line into @line; 0 or -EIO. */
static int run_line(const char *cmd, char *line, size_t len)
{
	FILE *p = popen(cmd, "re");
	int ret = 0;

	if (!p)
		return -errno;
	if (!fgets(line, len, p))
		line[0] = 0;
	while (fgetc(p) != EOF)
		;
	if (pclose(p))
		ret = -EIO;
	return ret;
}

/* --- where the time goes -------------------------------------------------- */

/* The first "cpu" line of /proc/stat: every CPU's ticks, by state. */
static void sample_vm(struct sb_sample *sm)
{
	unsigned long long v[8] = { 0 };
	FILE *f = fopen("/proc/stat", "re");

	if (!f)
		return;
	if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
		   &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) == 8) {
		sm->vm_total = v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] +
			       v[7];
		sm->vm_iowait = v[4];
		sm->vm_busy = sm->vm_total - v[3] - v[4];
	}
	fclose(f);
}

/* @pid's CPU ticks (all threads) and the bytes it passed to write(2). */
static void sample_sink(pid_t pid, struct sb_sample *sm)
{
	unsigned long long ut, st, wchar;
	char path[64], buf[1024], *p;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (f) {
		/* after "(comm)": state and 10 more fields, then utime, stime */
		if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) &&
		    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
			   &ut, &st) == 2)
			sm->sink_ticks = ut + st;
		fclose(f);
	}
	snprintf(path, sizeof(path), "/proc/%d/io", (int)pid);
	f = fopen(path, "re");
	if (f) {
		while (fgets(buf, sizeof(buf), f))
			if (sscanf(buf, "wchar: %llu", &wchar) == 1)
				sm->sink_wchar = wchar;
		fclose(f);
	}
}

static void sample(pid_t sink, struct sb_sample *sm)
{
	*sm = (struct sb_sample){ 0 };
	sample_vm(sm);
	sample_sink(sink, sm);
}

/* The window [@a, @b] into @r. */
static void sample_diff(const struct sb_sample *a, const struct sb_sample *b,
			struct sb_result *r)
{
	double total = b->vm_total - a->vm_total;

	if (total > 0) {
		r->vm_busy = (b->vm_busy - a->vm_busy) / total;
		r->vm_iowait = (b->vm_iowait - a->vm_iowait) / total;
	}
	r->sink_cpu_s = (double)(b->sink_ticks - a->sink_ticks) /
			sysconf(_SC_CLK_TCK);
	r->sink_wchar = b->sink_wchar - a->sink_wchar;
}

/* --- evringd -------------------------------------------------------------- */

/* A datagram socket bound at @path, for sd_notify's READY=1. */
static int notify_open(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	unlink(path);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return -errno;
	}
	return fd;
}

/* Wait for "READY=1" on @fd while @pid lives; 0 or -errno. */
static int notify_wait(int fd, pid_t pid)
{
	uint64_t deadline = now_ns() + SB_START_S * 1000000000ull;
	char buf[512];
	ssize_t n;

	while (now_ns() < deadline) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (poll(&p, 1, 50) == 1) {
			n = recv(fd, buf, sizeof(buf) - 1, 0);
			if (n > 0) {
				buf[n] = 0;
				if (strstr(buf, "READY=1"))
					return 0;
			}
		}
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return -ECHILD;
	}
	return -ETIMEDOUT;
}

static int unix_connect(int type, const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return -errno;
	}
	return fd;
}

/*
 * Ask evringd for "spool" on the open control connection and return its
 * "records" (>= 0), or -errno.
 */
static int64_t evringd_records(int fd)
{
	static const char req[] = "{\"cmd\":\"spool\"}\n";
	char buf[4096], *p;
	size_t have = 0;
	ssize_t n;

	if (write(fd, req, sizeof(req) - 1) != sizeof(req) - 1)
		return -EIO;
	while (!memchr(buf, '\n', have)) {
		if (have == sizeof(buf) - 1)
			return -EMSGSIZE;
		n = read(fd, buf + have, sizeof(buf) - 1 - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -ECONNRESET;
		have += n;
	}
	buf[have] = 0;
	p = strstr(buf, "\"records\":");
	if (!strstr(buf, "\"ok\":true") || !p)
		return -EPROTO;
	return strtoll(p + strlen("\"records\":"), NULL, 10);
}

static void evringd_spool_path(char *buf, size_t len)
{
	snprintf(buf, len, "%s/cell/spool.db", opt.dir);
}

/* Start evringd with @sync and @b on an empty spool; ready when it says so. */
static int evringd_start(bool full, const struct sb_bounds *b,
			 struct sb_sink *s)
{
	char a_path[PATH_MAX + 32], a_sync[64], a_rec[64], a_bytes[64],
	     a_ms[64], a_ctl[160], spool[PATH_MAX];
	static char env[160];
	char *argv[] = {
		(char *)opt.evringd, "-c", "/dev/null",
		"--set", a_path, "--set", a_sync, "--set", a_rec,
		"--set", a_bytes, "--set", a_ms,
		"--set", "sources.socket=", "--set", a_ctl,
		"--set", "ship.metrics_listen=", NULL
	};
	int nfd, ret;

	evringd_spool_path(spool, sizeof(spool));
	snprintf(a_path, sizeof(a_path), "spool.path=%s", spool);
	snprintf(a_sync, sizeof(a_sync), "spool.synchronous=%s",
		 full ? "full" : "normal");
	snprintf(a_rec, sizeof(a_rec), "drain.batch_records=%u", b->records);
	snprintf(a_bytes, sizeof(a_bytes), "drain.batch_bytes=%llu", b->bytes);
	snprintf(a_ms, sizeof(a_ms), "drain.batch_ms=%u", b->ms);
	snprintf(a_ctl, sizeof(a_ctl), "control.socket=" SB_RUN_DIR "/control.sock");
	snprintf(env, sizeof(env), "NOTIFY_SOCKET=" SB_RUN_DIR "/notify.sock");

	if (opt.load_params) {
		ret = evring_module_load(opt.load_params);
		if (ret) {
			fprintf(stderr, "spool_bench: cannot load '%s': %s\n",
				evring_ko_path(), strerror(-ret));
			return ret;
		}
	}
	nfd = notify_open(SB_RUN_DIR "/notify.sock");
	if (nfd < 0)
		return nfd;
	*s = (struct sb_sink){ .ctl_fd = -1, .out_fd = -1 };
	s->pid = spawn_sink(argv, env);
	if (s->pid < 0) {
		close(nfd);
		return -errno;
	}
	ret = notify_wait(nfd, s->pid);
	close(nfd);
	if (!ret) {
		s->ctl_fd = unix_connect(SOCK_STREAM, SB_RUN_DIR "/control.sock");
		if (s->ctl_fd < 0)
			ret = s->ctl_fd;
	}
	if (ret)
		fprintf(stderr, "spool_bench: evringd did not become ready: %s\n",
			strerror(-ret));
	return ret;
}

/*
 * Check the stopped evringd's spool: partition i holds exactly the records
 * 1..count of writer i, nothing else, and the ledger is empty.  Returns the
 * records found (in *events) and the batches; false when anything is off.
 */
static bool evringd_verify(unsigned int count, uint64_t *events,
			   uint64_t *batches)
{
	char spool[PATH_MAX], cmd[PATH_MAX * 2], line[256];
	unsigned long long part, nb, sum, lo, hi, ledger;
	bool ok = true, seen[SB_MAX_WRITERS] = { false };
	FILE *p;

	*events = *batches = 0;
	evringd_spool_path(spool, sizeof(spool));
	snprintf(cmd, sizeof(cmd),
		 "'%s' -batch -noheader -separator ' ' '%s' "
		 "'SELECT partition, count(*), sum(count), min(first_seq), max(first_seq + count - 1) FROM batches WHERE count > 0 GROUP BY source, partition; "
		 "SELECT -1, count(*), 0, 0, 0 FROM ledger;'",
		 opt.sqlite3, spool);
	p = popen(cmd, "re");
	if (!p)
		return false;
	while (fgets(line, sizeof(line), p)) {
		long long sp;

		if (sscanf(line, "%lld %llu %llu %llu %llu", &sp, &nb, &sum, &lo,
			   &hi) != 5) {
			ok = false;
			continue;
		}
		if (sp < 0) {
			ledger = nb;
			if (ledger) {
				fprintf(stderr, "spool_bench: the spool's ledger has %llu loss ranges\n",
					ledger);
				ok = false;
			}
			continue;
		}
		part = sp;
		*events += sum;
		*batches += nb;
		if (part >= opt.nwriters || seen[part] || sum != count ||
		    lo != 1 || hi != count) {
			fprintf(stderr, "spool_bench: spool partition %llu: %llu records, seq %llu..%llu, expected %u, 1..%u\n",
				part, sum, lo, hi, count, count);
			ok = false;
			continue;
		}
		seen[part] = true;
	}
	if (pclose(p))
		ok = false;
	for (unsigned int i = 0; i < opt.nwriters; i++)
		ok &= seen[i];
	return ok;
}

/* --- rsyslog -------------------------------------------------------------- */

static void rsyslog_out_path(char *buf, size_t len)
{
	snprintf(buf, len, "%s/cell/messages", opt.dir);
}

/* The whole rsyslog.conf of method @m, into @buf. */
static void rsyslog_conf(enum sb_method m, char *buf, size_t len)
{
	const char *queue, *action;
	char out[PATH_MAX];

	switch (m) {
	case M_RSYSLOG_DISK:
		queue = "queue.type=\"Disk\" queue.syncQueueFiles=\"on\" queue.checkpointInterval=\"1\" queue.saveOnShutdown=\"on\"";
		action = "sync=\"on\" flushOnTXEnd=\"on\" asyncWriting=\"off\"";
		break;
	case M_RSYSLOG_DA_SYNC:
		queue = "queue.type=\"LinkedList\" queue.syncQueueFiles=\"on\" queue.checkpointInterval=\"1\" queue.saveOnShutdown=\"on\"";
		action = "sync=\"on\" flushOnTXEnd=\"on\" asyncWriting=\"off\"";
		break;
	default:
		queue = "";
		action = "";
		break;
	}
	rsyslog_out_path(out, sizeof(out));
	snprintf(buf, len,
		 "# spool_bench: %s\n"
		 "global(workDirectory=\"%s/cell/work\")\n"
		 "module(load=\"imuxsock\" SysSock.Use=\"off\")\n"
		 "input(type=\"imuxsock\" Socket=\"" SB_RUN_DIR "/log.sock\" RateLimit.Interval=\"0\")\n"
		 "main_queue(queue.filename=\"mainq\" queue.spoolDirectory=\"%s/cell/work\" %s)\n"
		 "if $programname == \"" SB_TAG "\" then {\n"
		 "\taction(type=\"omfile\" file=\"%s\" %s)\n"
		 "}\n",
		 sb_methods[m].name, opt.dir, opt.dir, queue, out, action);
}

/* Lines in the output file so far (reads only what was appended). */
static int64_t rsyslog_lines(struct sb_sink *s)
{
	char buf[65536], path[PATH_MAX];
	ssize_t n;

	if (s->out_fd < 0) {
		rsyslog_out_path(path, sizeof(path));
		s->out_fd = open(path, O_RDONLY | O_CLOEXEC);
		if (s->out_fd < 0)
			return errno == ENOENT ? 0 : -errno;
	}
	while ((n = read(s->out_fd, buf, sizeof(buf))) > 0)
		for (char *p = buf; (p = memchr(p, '\n', buf + n - p)); p++)
			s->out_lines++;
	return n < 0 ? -errno : (int64_t)s->out_lines;
}

/* Send one datagram to the rsyslog socket from a throwaway socket. */
static int rsyslog_send(const char *msg)
{
	int fd = unix_connect(SOCK_DGRAM, SB_RUN_DIR "/log.sock");
	int ret = 0;

	if (fd < 0)
		return fd;
	if (send(fd, msg, strlen(msg), 0) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

/*
 * Start rsyslogd (method @m) on an empty data dir; ready once a probe
 * message sent to its socket is in the output file (one line).
 */
static int rsyslog_start(enum sb_method m, struct sb_sink *s)
{
	char conf[4 * PATH_MAX], work[PATH_MAX], hdr[96], probe[160];
	char *argv[] = {
		(char *)opt.rsyslogd, "-n", "-f", SB_RUN_DIR "/rsyslog.conf",
		"-i", SB_RUN_DIR "/rsyslogd.pid", NULL
	};
	uint64_t deadline = now_ns() + SB_START_S * 1000000000ull;
	bool sent = false;
	int ret;

	snprintf(work, sizeof(work), "%s/cell/work", opt.dir);
	if (mkdir(work, 0700))
		return -errno;
	rsyslog_conf(m, conf, sizeof(conf));
	ret = write_file(SB_RUN_DIR "/rsyslog.conf", conf);
	if (ret)
		return ret;
	unlink(SB_RUN_DIR "/log.sock");
	unlink(SB_RUN_DIR "/rsyslogd.pid");
	*s = (struct sb_sink){ .ctl_fd = -1, .out_fd = -1 };
	s->pid = spawn_sink(argv, NULL);
	if (s->pid < 0)
		return -errno;
	ev_header(hdr, sizeof(hdr));
	snprintf(probe, sizeof(probe), "%sprobe", hdr);
	while (now_ns() < deadline) {
		if (!sent && !rsyslog_send(probe))
			sent = true;
		if (sent && rsyslog_lines(s) >= 1)
			return 0;
		if (waitpid(s->pid, NULL, WNOHANG) == s->pid)
			break;
		sleep_ms(20);
	}
	fprintf(stderr, "spool_bench: rsyslogd did not become ready\n");
	return -ETIMEDOUT;
}

/*
 * Check the stopped rsyslogd's output: one probe line, then every (w, c)
 * of the writers exactly once and nothing else.  *events: the lines found.
 */
static bool rsyslog_verify(unsigned int count, uint64_t *events)
{
	size_t nbits = (size_t)opt.nwriters * count;
	unsigned char *seen = calloc(nbits / 8 + 1, 1);
	unsigned int probes = 0, bad = 0, dup = 0;
	char path[PATH_MAX], *line = NULL;
	size_t cap = 0;
	bool ok;
	FILE *f;

	*events = 0;
	rsyslog_out_path(path, sizeof(path));
	f = fopen(path, "re");
	if (!f || !seen) {
		free(seen);
		if (f)
			fclose(f);
		return false;
	}
	while (getline(&line, &cap, f) > 0) {
		unsigned long long c;
		unsigned int w;
		char *p = strstr(line, SB_TAG "[");
		size_t bit;

		p = p ? strstr(p, "]: ") : NULL;
		if (p && !strncmp(p + 3, "probe", 5)) {
			probes++;
			continue;
		}
		if (!p || sscanf(p + 3, "w=%u c=%llu ", &w, &c) != 2 ||
		    w >= opt.nwriters || c >= count) {
			bad++;
			continue;
		}
		bit = (size_t)w * count + c;
		if (seen[bit / 8] & (1u << (bit % 8))) {
			dup++;
			continue;
		}
		seen[bit / 8] |= 1u << (bit % 8);
		(*events)++;
	}
	free(line);
	fclose(f);
	free(seen);
	ok = probes == 1 && !bad && !dup && *events == nbits;
	if (!ok)
		fprintf(stderr, "spool_bench: rsyslog output: %" PRIu64 " of %zu events, %u foreign, %u duplicate, %u probe lines\n",
			*events, nbits, bad, dup, probes);
	return ok;
}

/* --- sinks, generically --------------------------------------------------- */

static int sink_start(const struct sb_peer *pe, struct sb_sink *s)
{
	char cell[PATH_MAX];

	snprintf(cell, sizeof(cell), "%s/cell", opt.dir);
	remove_tree(cell);
	if (mkdir(cell, 0700))
		return -errno;
	if (sink_log) {
		fprintf(sink_log, "=== %s%s%s\n", sb_methods[pe->m].name,
			sb_methods[pe->m].evringd ? " " : "",
			sb_methods[pe->m].evringd ?
			opt.bounds[pe->bounds].label : "");
		fflush(sink_log);
	}
	switch (pe->m) {
	case M_EVRINGD_FULL:
	case M_EVRINGD_NORMAL:
		return evringd_start(pe->m == M_EVRINGD_FULL,
				     &opt.bounds[pe->bounds], s);
	default:
		return rsyslog_start(pe->m, s);
	}
}

/* Events durable in the sink now, or -errno. */
static int64_t sink_count(const struct sb_peer *pe, struct sb_sink *s)
{
	int64_t n;

	if (sb_methods[pe->m].evringd)
		return evringd_records(s->ctl_fd);
	n = rsyslog_lines(s);
	return n > 0 ? n - 1 : n;	/* the probe */
}

/* SIGTERM and reap; true when it exited 0 in time. */
static bool sink_stop(struct sb_sink *s)
{
	int st;

	if (s->ctl_fd >= 0)
		close(s->ctl_fd);
	if (s->out_fd >= 0)
		close(s->out_fd);
	s->ctl_fd = s->out_fd = -1;
	if (s->pid <= 0)
		return false;
	kill(s->pid, SIGTERM);
	st = reap_pid(s->pid, SB_STOP_S, NULL);
	s->pid = 0;
	return st >= 0 && WIFEXITED(st) && !WEXITSTATUS(st);
}

/* --- writers -------------------------------------------------------------- */

/* Writer @idx's transport: /dev/evring pinned to partition @idx, or the socket. */
static int writer_open(const struct sb_peer *pe, unsigned int idx)
{
	struct evring_key key = { .key = idx, .mode = EVRING_KEY_PARTITION };
	int fd;

	if (!sb_methods[pe->m].evringd)
		return unix_connect(SOCK_DGRAM, SB_RUN_DIR "/log.sock");
	fd = open(EVRING_DEV_PATH, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ioctl(fd, EVRING_IOC_SET_KEY, &key)) {
		close(fd);
		return -errno;
	}
	return fd;
}

/*
 * A writer process: open, say ready, wait for the start (EOF on @go_fd),
 * then the cell's events, one write(2)/send(2) each; blocks whenever the
 * transport is full.  Exit status 0 when all were written.
 */
static int writer_main(const struct sb_cell *c, unsigned int idx,
		       int ready_fd, int go_fd)
{
	unsigned int size = c->size;
	char *buf = malloc(size), hdr[96], b;
	ssize_t r;
	int fd;

	fd = writer_open(c->pe, idx);
	if (fd < 0 || !buf) {
		fprintf(stderr, "spool_bench: writer %u: open: %s\n", idx,
			strerror(fd < 0 ? -fd : ENOMEM));
		return 1;
	}
	ev_header(hdr, sizeof(hdr));
	/* closed at once, so that the parent sees EOF if a writer fails */
	if (write(ready_fd, "w", 1) != 1)
		return 1;
	close(ready_fd);
	if (read(go_fd, &b, 1) != 0)
		return 1;
	for (uint64_t i = 0; i < c->count; i++) {
		ev_format(buf, size, hdr, idx, i);
		do
			r = write(fd, buf, size);
		while (r < 0 && errno == EINTR);
		if (r != (ssize_t)size) {
			fprintf(stderr, "spool_bench: writer %u: event %" PRIu64 ": %s\n",
				idx, i, r < 0 ? strerror(errno) : "short write");
			return 1;
		}
	}
	close(fd);
	return 0;
}

/* --- one cell ------------------------------------------------------------- */

/*
 * Run one cell: start the sink, writers ready, common start, poll the sink
 * until it holds every event, stop it, verify.  Returns 0 with @res filled
 * (res->ok false when anything was lost, failed or timed out), or -errno
 * when the sink could not be started.
 */
static int run_cell(const struct sb_cell *c, struct sb_result *res)
{
	const struct sb_peer *pe = c->pe;
	uint64_t total = (uint64_t)opt.nwriters * c->count;
	uint64_t t0, t_end = 0, deadline;
	struct sb_sample s0, s1;
	struct sb_result r = { .ok = true };
	pid_t wpid[SB_MAX_WRITERS];
	struct sb_sink s = { .ctl_fd = -1, .out_fd = -1 };
	unsigned int nready = 0;
	int ready[2], go[2], ret;
	int64_t n = 0;
	char b;

	ret = sink_start(pe, &s);
	if (ret) {
		sink_stop(&s);
		return ret;
	}
	if (pipe2(ready, O_CLOEXEC) || pipe2(go, O_CLOEXEC)) {
		sink_stop(&s);
		return -errno;
	}
	for (unsigned int i = 0; i < opt.nwriters; i++) {
		fflush(NULL);
		wpid[i] = fork();
		if (wpid[i] < 0) {
			fprintf(stderr, "spool_bench: fork: %s\n", strerror(errno));
			exit(1);
		}
		if (!wpid[i]) {
			close(ready[0]);
			close(go[1]);
			_exit(writer_main(c, i, ready[1], go[0]));
		}
	}
	close(ready[1]);
	close(go[0]);
	while (nready < opt.nwriters && read(ready[0], &b, 1) == 1)
		nready++;
	close(ready[0]);
	if (nready < opt.nwriters)
		r.ok = false;

	sample(s.pid, &s0);
	t0 = now_ns();
	close(go[1]);		/* start */
	deadline = t0 + (uint64_t)opt.cell_timeout_s * 1000000000u;
	while (r.ok) {
		n = sink_count(pe, &s);
		if (n < 0) {
			fprintf(stderr, "spool_bench: %s: cannot count: %s\n",
				sb_methods[pe->m].name, strerror((int)-n));
			r.ok = false;
			break;
		}
		if ((uint64_t)n >= total) {
			t_end = now_ns();
			sample(s.pid, &s1);
			sample_diff(&s0, &s1, &r);
			break;
		}
		if (now_ns() >= deadline) {
			fprintf(stderr, "spool_bench: %s: %" PRId64 " of %" PRIu64 " events after %u s, giving up\n",
				sb_methods[pe->m].name, n, total,
				opt.cell_timeout_s);
			r.ok = false;
			break;
		}
		sleep_ms(opt.poll_ms);
	}

	for (unsigned int i = 0; i < opt.nwriters; i++) {
		struct rusage ru;
		int st = reap_pid(wpid[i], r.ok ? 60 : 1, &ru);

		if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
			r.ok = false;
		r.writer_cpu_s += tv_s(&ru.ru_utime) + tv_s(&ru.ru_stime);
	}
	if (!sink_stop(&s)) {
		fprintf(stderr, "spool_bench: %s did not exit cleanly\n",
			sb_methods[pe->m].name);
		r.ok = false;
	}
	if (sb_methods[pe->m].evringd)
		r.ok &= evringd_verify(c->count, &r.events, &r.batches);
	else
		r.ok &= rsyslog_verify(c->count, &r.events);
	if (r.events != total)
		r.ok = false;
	r.elapsed_s = t_end > t0 ? (t_end - t0) / 1e9 : 0;
	*res = r;
	return 0;
}

/*
 * The fsync promise, end to end: a writer writes @count events to
 * partition 0, fsync(2)s, and SIGKILLs evringd the moment fsync returns;
 * then count them in the spool.  The verdict, one line, into @msg; true
 * when all are there.
 */
static bool kill9_check(bool full, char *msg, size_t len)
{
	struct sb_peer pe = { .m = full ? M_EVRINGD_FULL : M_EVRINGD_NORMAL };
	char spool[PATH_MAX], cmd[PATH_MAX * 2], line[128];
	unsigned long long got = 0, lo = 0, hi = 0;
	struct sb_sink s = { .ctl_fd = -1, .out_fd = -1 };
	bool wrote, killed, ok;
	int fd, st, ret;
	pid_t w;

	ret = sink_start(&pe, &s);
	if (ret) {
		sink_stop(&s);
		snprintf(msg, len, "kill -9 after fsync (synchronous=%s): evringd did not start: FAIL",
			 full ? "full" : "normal");
		return false;
	}
	close(s.ctl_fd);
	s.ctl_fd = -1;
	fflush(NULL);
	w = fork();
	if (w < 0)
		exit(1);
	if (!w) {
		char *buf = malloc(256), hdr[96];
		int rc = 0;

		fd = writer_open(&pe, 0);
		if (fd < 0 || !buf)
			_exit(2);
		ev_header(hdr, sizeof(hdr));
		for (uint64_t c = 0; c < opt.kill_count && !rc; c++) {
			ev_format(buf, 128, hdr, 0, c);
			if (write(fd, buf, 128) != 128)
				rc = 3;
		}
		if (!rc && fsync(fd))
			rc = 4;
		kill(s.pid, SIGKILL);	/* the moment fsync returned */
		_exit(rc);
	}
	st = reap_pid(w, 120, NULL);
	ret = reap_pid(s.pid, 10, NULL);
	s.pid = 0;
	evringd_spool_path(spool, sizeof(spool));
	snprintf(cmd, sizeof(cmd),
		 "'%s' -batch -noheader -separator ' ' '%s' "
		 "'SELECT coalesce(sum(count), 0), coalesce(min(first_seq), 0), coalesce(max(first_seq + count - 1), 0) FROM batches WHERE source = 0 AND partition = 0;'",
		 opt.sqlite3, spool);
	if (run_line(cmd, line, sizeof(line)) ||
	    sscanf(line, "%llu %llu %llu", &got, &lo, &hi) != 3)
		got = 0;
	wrote = st >= 0 && WIFEXITED(st) && !WEXITSTATUS(st);
	killed = ret >= 0 && WIFSIGNALED(ret) && WTERMSIG(ret) == SIGKILL;
	ok = wrote && killed && got == opt.kill_count && lo == 1 &&
	     hi == opt.kill_count;
	snprintf(msg, len, "kill -9 after fsync (synchronous=%s): a writer wrote %u events of 128 B, fsync(2) %s, evringd %s at once; the spool holds %llu of them (seq %llu..%llu): %s",
		 full ? "full" : "normal", opt.kill_count,
		 wrote ? "returned 0" : "FAILED",
		 killed ? "SIGKILLed" : "NOT SIGKILLed", got, lo, hi,
		 ok ? "PASS" : "FAIL");
	return ok;
}

/* --- the report ----------------------------------------------------------- */

struct sb_summary {
	bool ran;
	bool ok;		/* every repetition delivered everything */
	unsigned int count;	/* events per writer */
	double eps_med, eps_min, eps_max;
	double mbs_med;
	double per_batch_med;	/* evringd: records per spooled batch */
	double busy_med;	/* VM CPUs busy, % */
	double iowait_med;	/* VM CPUs in iowait, % */
	double sink_us_med;	/* sink CPU per event, microseconds */
	double writer_us_med;	/* writers' CPU per event, microseconds */
	double wamp_med;	/* sink write(2) bytes per payload byte */
};

static void summarize(const struct sb_result *runs, unsigned int n,
		      unsigned int size, unsigned int count,
		      struct sb_summary *s)
{
	double eps[SB_MAX_REPS], v[6][SB_MAX_REPS];

	*s = (struct sb_summary){ .ran = n > 0, .ok = true, .count = count };
	if (!n)
		return;
	for (unsigned int i = 0; i < n; i++) {
		const struct sb_result *r = &runs[i];
		double ev = r->events ? r->events : 1;

		s->ok &= r->ok;
		eps[i] = r->elapsed_s > 0 ? r->events / r->elapsed_s : 0;
		v[0][i] = r->batches ? (double)r->events / r->batches : 0;
		v[1][i] = r->vm_busy * 100;
		v[2][i] = r->vm_iowait * 100;
		v[3][i] = r->sink_cpu_s * 1e6 / ev;
		v[4][i] = r->writer_cpu_s * 1e6 / ev;
		v[5][i] = r->sink_wchar / (ev * size);
	}
	s->eps_med = median(eps, n);
	s->eps_min = eps[0];
	s->eps_max = eps[n - 1];
	s->mbs_med = s->eps_med * size / 1e6;
	s->per_batch_med = median(v[0], n);
	s->busy_med = median(v[1], n);
	s->iowait_med = median(v[2], n);
	s->sink_us_med = median(v[3], n);
	s->writer_us_med = median(v[4], n);
	s->wamp_med = median(v[5], n);
}

static const char *size_label(unsigned int size, char *buf, size_t len)
{
	if (size >= 1024 && !(size % 1024))
		snprintf(buf, len, "%u KiB", size / 1024);
	else
		snprintf(buf, len, "%u B", size);
	return buf;
}

/* The peer of method @m with the best median events/s at size @si, or -1. */
static int best_peer(struct sb_summary (*sum)[SB_MAX_PEERS], unsigned int si,
		     enum sb_method m)
{
	int best = -1;

	for (unsigned int p = 0; p < opt.npeers; p++) {
		const struct sb_summary *s = &sum[si][p];

		if (opt.peers[p].m != m || !s->ran || !s->ok)
			continue;
		if (best < 0 || s->eps_med > sum[si][best].eps_med)
			best = p;
	}
	/* all failed: show the first, as FAILED */
	for (unsigned int p = 0; best < 0 && p < opt.npeers; p++)
		if (opt.peers[p].m == m && sum[si][p].ran)
			best = p;
	return best;
}

static void bounds_label(const struct sb_peer *pe, char *buf, size_t len)
{
	const struct sb_bounds *b = &opt.bounds[pe->bounds];

	if (sb_methods[pe->m].evringd)
		snprintf(buf, len, "%u rec / %s / %u ms", b->records,
			 b->bytes_label, b->ms);
	else
		snprintf(buf, len, "–");
}

/* A row of the rates table. */
static void rate_row(FILE *f, const struct sb_peer *pe,
		     const struct sb_summary *s, unsigned int size)
{
	char sb[32], r1[32], r2[32], r3[32], bl[64];

	bounds_label(pe, bl, sizeof(bl));
	fprintf(f, "| %s | %s | %u × %u |", sb_methods[pe->m].label,
		size_label(size, sb, sizeof(sb)), opt.nwriters, s->count);
	if (!s->ok) {
		fprintf(f, " FAILED (lost events or errors) | | | %s |\n", bl);
		return;
	}
	fprintf(f, " %s | %.2f | %s–%s | %s |\n",
		rate_label(s->eps_med, r1, sizeof(r1)), s->mbs_med,
		rate_label(s->eps_min, r2, sizeof(r2)),
		rate_label(s->eps_max, r3, sizeof(r3)), bl);
}

/* A row of the where-the-time-goes table. */
static void time_row(FILE *f, const struct sb_peer *pe,
		     const struct sb_summary *s, unsigned int size)
{
	char sb[32];

	fprintf(f, "| %s | %s | %.0f %% | %.0f %% | %.1f | %.1f | %.2f |",
		sb_methods[pe->m].label, size_label(size, sb, sizeof(sb)),
		s->busy_med, s->iowait_med, s->sink_us_med, s->writer_us_med,
		s->wamp_med);
	if (sb_methods[pe->m].evringd)
		fprintf(f, " %.0f |\n", s->per_batch_med);
	else
		fprintf(f, " – |\n");
}

static void ratio_cell(FILE *f, struct sb_summary (*sum)[SB_MAX_PEERS],
		       unsigned int si, enum sb_method num, enum sb_method den)
{
	int a = best_peer(sum, si, num), b = best_peer(sum, si, den);

	if (a >= 0 && b >= 0 && sum[si][a].ok && sum[si][b].ok &&
	    sum[si][b].eps_med > 0)
		fprintf(f, " %.2f× |", sum[si][a].eps_med / sum[si][b].eps_med);
	else
		fprintf(f, " n/a |");
}

static const enum sb_method table_order[] = {
	M_EVRINGD_FULL, M_RSYSLOG_DISK, M_RSYSLOG_DA_SYNC,
	M_EVRINGD_NORMAL, M_RSYSLOG_DEFAULT,
};

static void print_markdown(FILE *f, struct sb_summary (*sum)[SB_MAX_PEERS])
{
	char sb[32];
	int p;

	fprintf(f, "| sink | event | events | events/s | MB/s | events/s min–max | commit bounds |\n");
	fprintf(f, "|---|---:|---:|---:|---:|---:|---|\n");
	for (unsigned int si = 0; si < opt.nsizes; si++)
		for (unsigned int k = 0; k < M_NR; k++)
			if ((p = best_peer(sum, si, table_order[k])) >= 0)
				rate_row(f, &opt.peers[p], &sum[si][p],
					 opt.sizes[si]);

	fprintf(f, "\nRatios of the median events/s (evringd at its best commit bounds):\n\n");
	fprintf(f, "| event | evringd full / rsyslog Disk queue | evringd full / rsyslog DA queue, syncs on | evringd normal / rsyslog defaults |\n");
	fprintf(f, "|---:|---:|---:|---:|\n");
	for (unsigned int si = 0; si < opt.nsizes; si++) {
		fprintf(f, "| %s |", size_label(opt.sizes[si], sb, sizeof(sb)));
		ratio_cell(f, sum, si, M_EVRINGD_FULL, M_RSYSLOG_DISK);
		ratio_cell(f, sum, si, M_EVRINGD_FULL, M_RSYSLOG_DA_SYNC);
		ratio_cell(f, sum, si, M_EVRINGD_NORMAL, M_RSYSLOG_DEFAULT);
		fprintf(f, "\n");
	}

	fprintf(f, "\nWhere the time goes (medians over the timed window; CPU %% of all vCPUs):\n\n");
	fprintf(f, "| sink | event | CPUs busy | iowait | sink CPU µs/event | writers CPU µs/event | sink write(2) bytes / payload byte | records/batch |\n");
	fprintf(f, "|---|---:|---:|---:|---:|---:|---:|---:|\n");
	for (unsigned int si = 0; si < opt.nsizes; si++)
		for (unsigned int k = 0; k < M_NR; k++)
			if ((p = best_peer(sum, si, table_order[k])) >= 0)
				time_row(f, &opt.peers[p], &sum[si][p],
					 opt.sizes[si]);

	fprintf(f, "\nevringd, every commit-bound setting tried:\n\n");
	fprintf(f, "| sink | event | events | events/s | MB/s | events/s min–max | commit bounds |\n");
	fprintf(f, "|---|---:|---:|---:|---:|---:|---|\n");
	for (unsigned int si = 0; si < opt.nsizes; si++)
		for (unsigned int q = 0; q < opt.npeers; q++)
			if (sb_methods[opt.peers[q].m].evringd && sum[si][q].ran)
				rate_row(f, &opt.peers[q], &sum[si][q],
					 opt.sizes[si]);
}

static void print_json(FILE *f, struct sb_summary (*sum)[SB_MAX_PEERS],
		       const char *date, const char *kernel, long cpus)
{
	bool first = true;

	fprintf(f, "{\n  \"date\": \"%s\",\n  \"kernel\": \"%s\",\n  \"cpus\": %ld,\n",
		date, kernel, cpus);
	fprintf(f, "  \"repetitions\": %u,\n  \"writers\": %u,\n  \"poll_ms\": %u,\n",
		opt.reps, opt.nwriters, opt.poll_ms);
	fprintf(f, "  \"module_params\": \"%s\",\n  \"dir\": \"%s\",\n",
		opt.load_params ? opt.load_params : "", opt.dir);
	fprintf(f, "  \"cells\": [");
	for (unsigned int si = 0; si < opt.nsizes; si++)
		for (unsigned int p = 0; p < opt.npeers; p++) {
			const struct sb_peer *pe = &opt.peers[p];
			const struct sb_summary *s = &sum[si][p];

			if (!s->ran)
				continue;
			fprintf(f, "%s\n    {\"method\": \"%s\", \"size\": %u, \"events_per_writer\": %u, ",
				first ? "" : ",", sb_methods[pe->m].name,
				opt.sizes[si], s->count);
			if (sb_methods[pe->m].evringd)
				fprintf(f, "\"batch_records\": %u, \"batch_bytes\": %llu, \"batch_ms\": %u, \"records_per_batch\": %.1f, ",
					opt.bounds[pe->bounds].records,
					opt.bounds[pe->bounds].bytes,
					opt.bounds[pe->bounds].ms,
					s->per_batch_med);
			fprintf(f, "\"ok\": %s, \"events_per_s\": %.0f, \"events_per_s_min\": %.0f, \"events_per_s_max\": %.0f, \"mb_per_s\": %.3f, \"cpus_busy_pct\": %.1f, \"iowait_pct\": %.1f, \"sink_cpu_us_per_event\": %.2f, \"writer_cpu_us_per_event\": %.2f, \"sink_write_bytes_per_payload_byte\": %.3f}",
				s->ok ? "true" : "false", s->eps_med,
				s->eps_min, s->eps_max, s->mbs_med,
				s->busy_med, s->iowait_med, s->sink_us_med,
				s->writer_us_med, s->wamp_med);
			first = false;
		}
	fprintf(f, "\n  ]\n}\n");
}

static FILE *out_open(const char *name, const char *mode)
{
	char path[PATH_MAX];
	FILE *f;

	if (!opt.outdir)
		return NULL;
	snprintf(path, sizeof(path), "%s/%s", opt.outdir, name);
	f = fopen(path, mode);
	if (!f)
		fprintf(stderr, "spool_bench: cannot write '%s': %s\n", path,
			strerror(errno));
	return f;
}

/* --- options and main ----------------------------------------------------- */

static int method_by_name(const char *name, size_t len)
{
	for (unsigned int m = 0; m < M_NR; m++)
		if (strlen(sb_methods[m].name) == len &&
		    !strncmp(name, sb_methods[m].name, len))
			return m;
	fprintf(stderr, "spool_bench: unknown method '%.*s'\n", (int)len, name);
	return -EINVAL;
}

static int parse_methods(const char *arg)
{
	char *s = strdup(arg), *save = NULL, *tok;
	int m, ret = 0;

	if (!s)
		return -ENOMEM;
	memset(opt.method_on, 0, sizeof(opt.method_on));
	for (tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		m = method_by_name(tok, strlen(tok));
		if (m < 0) {
			ret = m;
			break;
		}
		opt.method_on[m] = true;
	}
	free(s);
	return ret;
}

/* METHOD=COUNT */
static int parse_method_count(const char *arg)
{
	const char *eq = strchr(arg, '=');
	unsigned int n;
	int m;

	if (!eq)
		return -EINVAL;
	m = method_by_name(arg, eq - arg);
	if (m < 0 || parse_uint(eq + 1, 100000000, &n) || !n)
		return -EINVAL;
	opt.method_count[m] = n;
	return 0;
}

/* A size with an optional K or M suffix (powers of 1024). */
static int parse_size(const char *s, unsigned long long *out)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return -EINVAL;
	if (*end == 'K')
		v <<= 10, end++;
	else if (*end == 'M')
		v <<= 20, end++;
	if (*end)
		return -EINVAL;
	*out = v;
	return 0;
}

/* RECORDS:BYTES:MS[,...] */
static int parse_bounds(const char *arg)
{
	char *s = strdup(arg), *save = NULL, *tok;
	int ret = 0;

	if (!s)
		return -ENOMEM;
	opt.nbounds = 0;
	for (tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		struct sb_bounds *b = &opt.bounds[opt.nbounds];
		char rec[24], bytes[24], ms[24];

		if (opt.nbounds == SB_MAX_BOUNDS ||
		    sscanf(tok, "%23[^:]:%23[^:]:%23s", rec, bytes, ms) != 3 ||
		    parse_uint(rec, 1u << 20, &b->records) ||
		    parse_size(bytes, &b->bytes) ||
		    parse_uint(ms, 60000, &b->ms)) {
			ret = -EINVAL;
			break;
		}
		snprintf(b->label, sizeof(b->label), "%s", tok);
		snprintf(b->bytes_label, sizeof(b->bytes_label), "%s", bytes);
		opt.nbounds++;
	}
	free(s);
	return ret ? ret : (opt.nbounds ? 0 : -EINVAL);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: spool_bench -d DIR [-o OUTDIR] [-l PARAMS] [-r REPS] [-w WRITERS]\n"
		"                   [-n COUNT] [-N METHOD=COUNT]... [-s SIZES] [-m METHODS]\n"
		"                   [-b RECORDS:BYTES:MS[,...]] [-p POLL_MS] [-t CELL_TIMEOUT_S]\n"
		"                   [-k KILL_COUNT]\n"
		"methods: evringd-full,evringd-normal,rsyslog-disk,rsyslog-da-sync,rsyslog-default\n");
}

static int parse_args(int argc, char **argv)
{
	int ch, n;

	opt.sizes[0] = 128;
	opt.sizes[1] = 1024;
	opt.nsizes = 2;
	for (unsigned int m = 0; m < M_NR; m++)
		opt.method_on[m] = true;
	parse_bounds("4096:4M:5,1024:1M:1,16384:16M:20");
	opt.evringd = getenv("EVRINGD") ? getenv("EVRINGD") : "build/bin/evringd";
	opt.rsyslogd = getenv("RSYSLOGD") ? getenv("RSYSLOGD") : "/usr/sbin/rsyslogd";
	opt.sqlite3 = getenv("SQLITE3") ? getenv("SQLITE3") : "sqlite3";

	while ((ch = getopt(argc, argv, "d:o:l:r:w:n:N:s:m:b:p:t:k:h")) != -1) {
		switch (ch) {
		case 'd':
			opt.dir = optarg;
			break;
		case 'o':
			opt.outdir = optarg;
			break;
		case 'l':
			opt.load_params = optarg;
			break;
		case 'r':
			if (parse_uint(optarg, SB_MAX_REPS, &opt.reps) || !opt.reps)
				goto bad;
			break;
		case 'w':
			if (parse_uint(optarg, SB_MAX_WRITERS, &opt.nwriters) ||
			    !opt.nwriters)
				goto bad;
			break;
		case 'n':
			n = parse_list(optarg, 1, 100000000, opt.count,
				       SB_MAX_SIZES);
			if (n < 0)
				goto bad;
			opt.ncounts = n;
			break;
		case 'N':
			if (parse_method_count(optarg))
				goto bad;
			break;
		case 's':
			n = parse_list(optarg, SB_MIN_SIZE, SB_MAX_SIZE, opt.sizes,
				       SB_MAX_SIZES);
			if (n < 0)
				goto bad;
			opt.nsizes = n;
			break;
		case 'm':
			if (parse_methods(optarg))
				goto bad;
			break;
		case 'b':
			if (parse_bounds(optarg))
				goto bad;
			break;
		case 'p':
			if (parse_uint(optarg, 1000, &opt.poll_ms) || !opt.poll_ms)
				goto bad;
			break;
		case 't':
			if (parse_uint(optarg, 86400, &opt.cell_timeout_s) ||
			    !opt.cell_timeout_s)
				goto bad;
			break;
		case 'k':
			if (parse_uint(optarg, 10000000, &opt.kill_count))
				goto bad;
			break;
		default:
			usage();
			return -EINVAL;
		}
	}
	if (optind != argc || !opt.dir || opt.dir[0] != '/') {
		usage();
		return -EINVAL;
	}
	return 0;
bad:
	fprintf(stderr, "spool_bench: bad value '%s' for -%c\n", optarg, ch);
	usage();
	return -EINVAL;
}

/* Every method's peers: one per bounds setting for evringd. */
static void make_peers(void)
{
	for (unsigned int m = 0; m < M_NR; m++) {
		unsigned int nb = sb_methods[m].evringd ? opt.nbounds : 1;

		if (!opt.method_on[m])
			continue;
		for (unsigned int b = 0; b < nb; b++)
			opt.peers[opt.npeers++] = (struct sb_peer){
				.m = m, .bounds = b,
			};
	}
}

/* Events per writer for method @m at size index @si. */
static unsigned int cell_count(enum sb_method m, unsigned int si)
{
	if (opt.method_count[m])
		return opt.method_count[m];
	return opt.count[si < opt.ncounts ? si : opt.ncounts - 1];
}

int main(int argc, char **argv)
{
	static struct sb_result runs[SB_MAX_SIZES][SB_MAX_PEERS][SB_MAX_REPS];
	static struct sb_summary sum[SB_MAX_SIZES][SB_MAX_PEERS];
	bool any_evringd = false, kill_ok = true;
	char kill_msg[2][512] = { "", "" };
	unsigned int failed = 0;
	char date[64], r1[32];
	struct utsname uts;
	FILE *tsv, *f;
	time_t t;

	if (parse_args(argc, argv))
		return 2;
	make_peers();
	for (unsigned int p = 0; p < opt.npeers; p++)
		any_evringd |= sb_methods[opt.peers[p].m].evringd;
	t = time(NULL);
	strftime(date, sizeof(date), "%Y-%m-%d %H:%M UTC", gmtime(&t));
	uname(&uts);
	signal(SIGPIPE, SIG_IGN);
	if (mkdir(SB_RUN_DIR, 0700) && errno != EEXIST) {
		fprintf(stderr, "spool_bench: cannot create '%s': %s\n",
			SB_RUN_DIR, strerror(errno));
		return 1;
	}
	sink_log = out_open("sinks.log", "ae");
	if (any_evringd && !opt.load_params && access(EVRING_DEV_PATH, W_OK)) {
		fprintf(stderr, "spool_bench: '%s' is not there: load evring.ko or pass -l\n",
			EVRING_DEV_PATH);
		return 1;
	}

	tsv = out_open("spool_bench.tsv", "we");
	if (tsv)
		fprintf(tsv, "rep\tmethod\tbounds\tsize\tevents_per_writer\tok\tevents\telapsed_s\tevents_per_s\tmb_per_s\tbatches\tcpus_busy\tiowait\tsink_cpu_s\twriter_cpu_s\tsink_wchar\n");
	for (unsigned int rep = 0; rep < opt.reps; rep++)
		for (unsigned int si = 0; si < opt.nsizes; si++)
			for (unsigned int k = 0; k < opt.npeers; k++) {
				unsigned int p = (k + rep * 3) % opt.npeers;
				const struct sb_peer *pe = &opt.peers[p];
				struct sb_result *r = &runs[si][p][rep];
				const char *bl = sb_methods[pe->m].evringd ?
						 opt.bounds[pe->bounds].label : "-";
				struct sb_cell c = {
					.pe = pe, .size = opt.sizes[si],
					.count = cell_count(pe->m, si),
				};
				uint64_t t_cell = now_ns();
				double eps;
				int ret;

				ret = run_cell(&c, r);
				if (ret) {
					fprintf(stderr, "spool_bench: cannot set up %s: %s\n",
						sb_methods[pe->m].name, strerror(-ret));
					r->ok = false;
				}
				eps = r->elapsed_s > 0 ? r->events / r->elapsed_s : 0;
				fprintf(stderr, "rep %u/%u %-16s %-14s %4u B: %s events/s in %.2f s (cell %.1f s)%s\n",
					rep + 1, opt.reps, sb_methods[pe->m].name, bl,
					opt.sizes[si], rate_label(eps, r1, sizeof(r1)),
					r->elapsed_s, (now_ns() - t_cell) / 1e9,
					r->ok ? "" : " FAILED");
				if (tsv) {
					fprintf(tsv, "%u\t%s\t%s\t%u\t%u\t%d\t%" PRIu64 "\t%.6f\t%.1f\t%.3f\t%" PRIu64 "\t%.3f\t%.3f\t%.3f\t%.3f\t%" PRIu64 "\n",
						rep + 1, sb_methods[pe->m].name, bl,
						c.size, c.count, r->ok,
						r->events, r->elapsed_s, eps,
						eps * c.size / 1e6, r->batches,
						r->vm_busy, r->vm_iowait,
						r->sink_cpu_s, r->writer_cpu_s,
						r->sink_wchar);
					fflush(tsv);
				}
			}
	if (tsv)
		fclose(tsv);

	for (unsigned int si = 0; si < opt.nsizes; si++)
		for (unsigned int p = 0; p < opt.npeers; p++) {
			summarize(runs[si][p], opt.reps, opt.sizes[si],
				  cell_count(opt.peers[p].m, si), &sum[si][p]);
			failed += !sum[si][p].ok;
		}

	printf("Medians of %u interleaved runs; %s, %s, %ld CPUs; %u writers; events = writers × events per writer.\n\n",
	       opt.reps, date, uts.release, sysconf(_SC_NPROCESSORS_ONLN),
	       opt.nwriters);
	print_markdown(stdout, sum);
	if (any_evringd && opt.kill_count) {
		kill_ok &= kill9_check(true, kill_msg[0], sizeof(kill_msg[0]));
		kill_ok &= kill9_check(false, kill_msg[1], sizeof(kill_msg[1]));
		printf("\n%s\n%s\n", kill_msg[0], kill_msg[1]);
	}
	f = out_open("spool_bench.md", "we");
	if (f) {
		print_markdown(f, sum);
		if (kill_msg[0][0])
			fprintf(f, "\n%s\n%s\n", kill_msg[0], kill_msg[1]);
		fclose(f);
	}
	f = out_open("spool_bench.json", "we");
	if (f) {
		print_json(f, sum, date, uts.release,
			   sysconf(_SC_NPROCESSORS_ONLN));
		fclose(f);
	}
	if (opt.load_params)
		evring_module_unload();
	if (sink_log)
		fclose(sink_log);
	if (failed)
		fprintf(stderr, "spool_bench: %u cells lost events or failed\n",
			failed);
	if (!kill_ok)
		fprintf(stderr, "spool_bench: the kill -9 check failed\n");
	return failed || !kill_ok ? 1 : 0;
}
