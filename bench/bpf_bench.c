// SPDX-License-Identifier: GPL-2.0-only
/*
 * bpf_bench: what the BPF capture shim costs, and how fast it can capture.
 *
 *	bpf_bench [-r REPS] [-s SECONDS] [-g GENERATORS] [-o DIR]
 *						as root, from the repo root
 *
 * 1. Overhead.  Two workloads, each run for SECONDS per cell:
 *	exec	fork + execve("/bin/true") + waitpid, in a loop (each exec
 *		also opens /etc/ld.so.cache: an open event at the defaults)
 *	connect	loopback TCP: socket, connect, accept, close both (with
 *		SO_LINGER 0, so that no TIME_WAIT piles up), in a loop
 *    with the shim off (no evringd, nothing attached) and on (evringd at
 *    its defaults with bpf.enable = yes: every capture, open prefix /etc/,
 *    the spool synchronous=full), interleaved: each repetition runs every
 *    (mode, workload) cell, the modes in alternating order.  Medians and
 *    min-max of the REPS repetitions.
 * 2. The highest rate of captured events before the first drop: evringd
 *    on, only the open capture, no shedding, 4 MiB ring; GENERATORS
 *    processes (default 2) open a file under the prefix at a paced rate
 *    for SECONDS; the rate doubles until drops appear (or the generators
 *    cannot keep up), then bisects.
 *    Drops and events come from the pinned stats map.
 *
 * Prints markdown on stdout; every cell goes to DIR/bpf_bench.tsv.
 * $EVRINGD overrides build/bin/evringd.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>
#include <linux/bpf.h>
#include "../bpf/capture.h"

#define MAX_REPS	31

static char dir[64], spool[128], ctl[100], logf[128], pin[128], rate_dir[128];
static pid_t daemon_pid;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (time_t)s) * 1e9) };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static void die(const char *what)
{
	fprintf(stderr, "bpf_bench: %s: %s\n", what, strerror(errno));
	if (daemon_pid > 0)
		kill(daemon_pid, SIGKILL);
	exit(1);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
	double s[MAX_REPS];

	memcpy(s, v, n * sizeof(*v));
	qsort(s, n, sizeof(*s), cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static double minv(const double *v, int n)
{
	double m = v[0];

	for (int i = 1; i < n; i++)
		m = v[i] < m ? v[i] : m;
	return m;
}

static double maxv(const double *v, int n)
{
	double m = v[0];

	for (int i = 1; i < n; i++)
		m = v[i] > m ? v[i] : m;
	return m;
}

/* --- the pinned stats map, through bpf(2) itself ---------------------------- */

/* Possible CPUs, "0-N" or "0": what per-CPU map values are sized by. */
static int ncpus(void)
{
	int lo = 0, hi = 0, n;
	FILE *f = fopen("/sys/devices/system/cpu/possible", "re");

	if (!f)
		die("cannot read the possible CPUs");
	n = fscanf(f, "%d-%d", &lo, &hi);
	fclose(f);
	if (n < 1)
		die("cannot parse the possible CPUs");
	return (n == 2 ? hi : lo) + 1;
}

/* The kernel's totals of @capture (events, drops, shed), summed over CPUs. */
static void kstats(uint32_t capture, struct evring_bpf_stats *out)
{
	static struct evring_bpf_stats v[1024];
	union bpf_attr a;
	char path[200];
	int fd, n = ncpus();

	snprintf(path, sizeof(path), "%s/stats", pin);
	memset(&a, 0, sizeof(a));
	a.pathname = (uint64_t)(uintptr_t)path;
	fd = syscall(__NR_bpf, BPF_OBJ_GET, &a, sizeof(a));
	if (fd < 0)
		die("cannot open the pinned stats map");
	memset(&a, 0, sizeof(a));
	a.map_fd = fd;
	a.key = (uint64_t)(uintptr_t)&capture;
	a.value = (uint64_t)(uintptr_t)v;
	if (n > 1024 || syscall(__NR_bpf, BPF_MAP_LOOKUP_ELEM, &a, sizeof(a)))
		die("cannot read the stats map");
	close(fd);
	memset(out, 0, sizeof(*out));
	for (int c = 0; c < n; c++) {
		out->events += v[c].events;
		out->drops += v[c].drops;
		out->shed += v[c].shed;
	}
}

/* CPU seconds (user + system) @pid has used so far. */
static double cpu_s(pid_t pid)
{
	unsigned long ut = 0, st = 0;
	char path[64], buf[1024], *p;
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
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
			 &ut, &st) != 2)
		return 0;
	return (double)(ut + st) / sysconf(_SC_CLK_TCK);
}

/* run_cnt and run_time_ns of the program behind pinned link @name. */
static void prog_stats(const char *name, uint64_t *cnt, uint64_t *ns)
{
	struct bpf_link_info li;
	struct bpf_prog_info pi;
	union bpf_attr a;
	char path[200];
	int lfd, pfd;

	*cnt = *ns = 0;
	snprintf(path, sizeof(path), "%s/link_%s", pin, name);
	memset(&a, 0, sizeof(a));
	a.pathname = (uint64_t)(uintptr_t)path;
	lfd = syscall(__NR_bpf, BPF_OBJ_GET, &a, sizeof(a));
	if (lfd < 0)
		return;
	memset(&li, 0, sizeof(li));
	memset(&a, 0, sizeof(a));
	a.info.bpf_fd = lfd;
	a.info.info_len = sizeof(li);
	a.info.info = (uint64_t)(uintptr_t)&li;
	if (syscall(__NR_bpf, BPF_OBJ_GET_INFO_BY_FD, &a, sizeof(a)))
		goto out;
	memset(&a, 0, sizeof(a));
	a.prog_id = li.prog_id;
	pfd = syscall(__NR_bpf, BPF_PROG_GET_FD_BY_ID, &a, sizeof(a));
	if (pfd < 0)
		goto out;
	memset(&pi, 0, sizeof(pi));
	memset(&a, 0, sizeof(a));
	a.info.bpf_fd = pfd;
	a.info.info_len = sizeof(pi);
	a.info.info = (uint64_t)(uintptr_t)&pi;
	if (!syscall(__NR_bpf, BPF_OBJ_GET_INFO_BY_FD, &a, sizeof(a))) {
		*cnt = pi.run_cnt;
		*ns = pi.run_time_ns;
	}
	close(pfd);
out:
	close(lfd);
}

static int set_bpf_stats(int on)
{
	int fd = open("/proc/sys/kernel/bpf_stats_enabled", O_WRONLY | O_CLOEXEC);
	int ok = fd >= 0 && write(fd, on ? "1" : "0", 1) == 1;

	if (fd >= 0)
		close(fd);
	return ok ? 0 : -1;
}

/* --- evringd ------------------------------------------------------------------ */

static int rm_cb(const char *path, const struct stat *st, int flag,
		 struct FTW *ftw)
{
	remove(path);
	return 0;
}

static bool ping(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char buf[512] = "";
	ssize_t n;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok = false;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", ctl);
	if (fd >= 0 && !connect(fd, (struct sockaddr *)&sa, sizeof(sa)) &&
	    write(fd, "{\"cmd\":\"ping\"}\n", 15) == 15 &&
	    (n = read(fd, buf, sizeof(buf) - 1)) > 0)
		ok = strstr(buf, "\"ok\":true") || strstr(buf, "\"ok\": true");
	if (fd >= 0)
		close(fd);
	return ok;
}

/* Start evringd with the BPF source and @extra settings; wait for it. */
static void daemon_up(const char *const *extra)
{
	const char *bin = getenv("EVRINGD") ? getenv("EVRINGD") :
			  "build/bin/evringd";
	char sets[7][200];
	const char *argv[40];
	int n = 0;
	double end;

	snprintf(sets[0], sizeof(sets[0]), "spool.path=%s", spool);
	snprintf(sets[1], sizeof(sets[1]), "control.socket=%s", ctl);
	snprintf(sets[2], sizeof(sets[2]), "bpf.pin_path=%s", pin);
	snprintf(sets[3], sizeof(sets[3]), "sources.device=");
	snprintf(sets[4], sizeof(sets[4]), "sources.socket=");
	snprintf(sets[5], sizeof(sets[5]), "bpf.enable=yes");
	snprintf(sets[6], sizeof(sets[6]), "ship.metrics_listen=");
	argv[n++] = bin;
	for (int i = 0; i < 7; i++) {
		argv[n++] = "--set";
		argv[n++] = sets[i];
	}
	for (int i = 0; extra && extra[i]; i++) {
		argv[n++] = "--set";
		argv[n++] = extra[i];
	}
	argv[n] = NULL;
	fflush(NULL);
	daemon_pid = fork();
	if (daemon_pid < 0)
		die("fork");
	if (!daemon_pid) {
		int fd = open(logf, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
			      0600);

		if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(127);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	for (end = now_s() + 30; !ping(); sleep_s(0.01)) {
		if (now_s() > end || waitpid(daemon_pid, NULL, WNOHANG)) {
			errno = ETIMEDOUT;
			die("evringd did not come up (see its log)");
		}
	}
}

/* Stop evringd and remove the pins: nothing of the shim is left. */
static void daemon_down(void)
{
	if (daemon_pid > 0) {
		kill(daemon_pid, SIGTERM);
		waitpid(daemon_pid, NULL, 0);
		daemon_pid = 0;
	}
	nftw(pin, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
	unlink(spool);
}

/* --- the workloads ---------------------------------------------------------- */

static double run_exec(double secs)
{
	double t0 = now_s(), t;
	uint64_t n = 0;

	do {
		int status;
		pid_t pid = fork();

		if (pid < 0)
			die("fork");
		if (!pid) {
			execl("/bin/true", "true", (char *)NULL);
			_exit(127);
		}
		if (waitpid(pid, &status, 0) != pid || status)
			die("/bin/true failed");
		n++;
		t = now_s();
	} while (t - t0 < secs);
	return n / (t - t0);
}

static double run_connect(double secs)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct linger lg = { 1, 0 };
	socklen_t len = sizeof(sa);
	double t0, t;
	uint64_t n = 0;
	int l;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) ||
	    listen(l, 128) || getsockname(l, (struct sockaddr *)&sa, &len))
		die("listen");
	t0 = now_s();
	do {
		int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), a;

		if (c < 0 || connect(c, (struct sockaddr *)&sa, sizeof(sa)))
			die("connect");
		a = accept4(l, NULL, NULL, SOCK_CLOEXEC);
		if (a < 0)
			die("accept");
		setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		setsockopt(a, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(c);
		close(a);
		n++;
		t = now_s();
	} while (t - t0 < secs);
	close(l);
	return n / (t - t0);
}

/* Open @path at @rate per second for @secs; returns the rate achieved. */
static double run_opens1(const char *path, double rate, double secs)
{
	double t0 = now_s(), t;
	uint64_t n = 0;

	while ((t = now_s()) - t0 < secs) {
		uint64_t due = (uint64_t)((t - t0) * rate);

		if (n >= due) {
			sleep_s(0.0002);
			continue;
		}
		while (n < due) {
			int fd = open(path, O_RDONLY | O_CLOEXEC);

			if (fd < 0)
				die("open");
			close(fd);
			n++;
		}
	}
	return n / (t - t0);
}

/* The same from @procs processes, each at @rate / @procs; the sum. */
static double run_opens(const char *path, double rate, double secs,
			int procs)
{
	pid_t pids[64];
	double sum = 0;
	int p[2];

	if (procs == 1)
		return run_opens1(path, rate, secs);
	if (pipe(p))
		die("pipe");
	for (int i = 0; i < procs; i++) {
		pid_t pid = pids[i] = fork();

		if (pid < 0)
			die("fork");
		if (!pid) {
			double got = run_opens1(path, rate / procs, secs);

			_exit(write(p[1], &got, sizeof(got)) != sizeof(got));
		}
	}
	close(p[1]);
	for (int i = 0; i < procs; i++) {
		double got;

		if (read(p[0], &got, sizeof(got)) != sizeof(got))
			die("a generator failed");
		sum += got;
	}
	close(p[0]);
	for (int i = 0; i < procs; i++)
		waitpid(pids[i], NULL, 0);
	return sum;
}

/* --- main ------------------------------------------------------------------- */

enum { W_EXEC, W_CONNECT, NW };
static const char *const wname[NW] = { "exec", "connect" };

int main(int argc, char **argv)
{
	static double rate[2][NW][MAX_REPS], dcpu[NW][MAX_REPS];
	const char *out = "build/bench";
	double secs = 2;
	int reps = 7, procs = 2, opt;
	char tsvp[300], path[200];
	struct utsname u;
	FILE *tsv;

	while ((opt = getopt(argc, argv, "r:s:o:g:")) != -1) {
		switch (opt) {
		case 'g':
			procs = atoi(optarg);
			break;
		case 'r':
			reps = atoi(optarg);
			break;
		case 's':
			secs = atof(optarg);
			break;
		case 'o':
			out = optarg;
			break;
		default:
			fprintf(stderr, "usage: bpf_bench [-r REPS] [-s SECONDS] [-g GENERATORS] [-o DIR]\n");
			return 2;
		}
	}
	if (reps < 1 || reps > MAX_REPS || secs <= 0 || procs < 1 ||
	    procs > 64) {
		fprintf(stderr, "bpf_bench: REPS 1..%d, SECONDS > 0, GENERATORS 1..64\n",
			MAX_REPS);
		return 2;
	}
	if (geteuid()) {
		fprintf(stderr, "bpf_bench: must run as root\n");
		return 1;
	}
	mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700");
	if (access("/sys/kernel/tracing/events", F_OK))
		mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, NULL);
	strcpy(dir, "/tmp/evring-bpf-bench.XXXXXX");
	if (!mkdtemp(dir))
		die("mkdtemp");
	snprintf(spool, sizeof(spool), "%s/spool.db", dir);
	snprintf(ctl, sizeof(ctl), "%s/ctl.sock", dir);
	snprintf(logf, sizeof(logf), "%s/evringd.log", dir);
	snprintf(rate_dir, sizeof(rate_dir), "%s/rate/", dir);
	snprintf(pin, sizeof(pin), "/sys/fs/bpf/evring-bench-%d", (int)getpid());
	mkdir(rate_dir, 0755);
	mkdir(out, 0755);
	snprintf(tsvp, sizeof(tsvp), "%s/bpf_bench.tsv", out);
	tsv = fopen(tsvp, "we");
	if (!tsv)
		die(tsvp);
	fprintf(tsv, "part\trep\tmode\tworkload\trate_per_s\tevents\tdrops\tshed\n");
	uname(&u);

	/* 1. Overhead, interleaved. */
	for (int r = 0; r < reps; r++) {
		for (int mi = 0; mi < 2; mi++) {
			int mode = (r + mi) % 2;	/* 0 off, 1 on */
			struct evring_bpf_stats before[EVRING_BPF_NR_CAPTURES];

			if (mode)
				daemon_up(NULL);
			for (int wi = 0; wi < NW; wi++) {
				int w = (r + wi) % NW;
				struct evring_bpf_stats s = { 0 };
				uint32_t cap = w == W_EXEC ? EVRING_BPF_EXEC :
					       EVRING_BPF_CONNECT;

				double c0 = mode ? cpu_s(daemon_pid) : 0, t0 = now_s();

				if (mode)
					kstats(cap, &before[cap]);
				rate[mode][w][r] = w == W_EXEC ? run_exec(secs) :
						   run_connect(secs);
				if (mode) {
					dcpu[w][r] = 100 * (cpu_s(daemon_pid) - c0) /
						     (now_s() - t0);
					kstats(cap, &s);
					s.events -= before[cap].events;
					s.drops -= before[cap].drops;
					s.shed -= before[cap].shed;
				}
				fprintf(tsv, "overhead\t%d\t%s\t%s\t%.1f\t%llu\t%llu\t%llu\n",
					r, mode ? "on" : "off", wname[w],
					rate[mode][w][r],
					(unsigned long long)s.events,
					(unsigned long long)s.drops,
					(unsigned long long)s.shed);
				fflush(tsv);
				fprintf(stderr, "rep %d %s %s: %.0f/s\n", r,
					mode ? "on " : "off", wname[w],
					rate[mode][w][r]);
			}
			if (mode)
				daemon_down();
		}
	}
	printf("Kernel %s, %ld CPUs, %d repetitions of %.1f s per cell, interleaved.\n\n",
	       u.release, sysconf(_SC_NPROCESSORS_ONLN), reps, secs);
	printf("| workload | shim off /s (median, min–max) | shim on /s (median, min–max) | overhead (medians) | overhead (median of the repetitions' own, min–max) | evringd CPU, shim on (median) |\n");
	printf("|---|---:|---:|---:|---:|---:|\n");
	for (int w = 0; w < NW; w++) {
		double off = median(rate[0][w], reps), on = median(rate[1][w], reps);
		double pair[MAX_REPS];

		/* Each repetition ran both modes back to back: its own ratio. */
		for (int r = 0; r < reps; r++)
			pair[r] = 100 * (rate[0][w][r] - rate[1][w][r]) /
				  rate[0][w][r];
		printf("| %s | %.0f (%.0f–%.0f) | %.0f (%.0f–%.0f) | %.1f%% | %.1f%% (%.1f%% to %.1f%%) | %.1f%% |\n",
		       wname[w], off, minv(rate[0][w], reps),
		       maxv(rate[0][w], reps), on, minv(rate[1][w], reps),
		       maxv(rate[1][w], reps), 100 * (off - on) / off,
		       median(pair, reps), minv(pair, reps), maxv(pair, reps),
		       median(dcpu[w], reps));
	}

	/* The programs' own cost, from the kernel's BPF run-time stats. */
	if (!set_bpf_stats(1)) {
		static const char *const progs[NW][3] = {
			{ "evring_exec", "evring_exit", "evring_openat" },
			{ "evring_connect", "evring_accept4", NULL },
		};

		daemon_up(NULL);
		printf("\nCost per program run (kernel.bpf_stats_enabled, one %.1f s run of each workload, shim on):\n\n",
		       secs);
		printf("| workload | program | runs | ns/run |\n|---|---|---:|---:|\n");
		for (int w = 0; w < NW; w++) {
			uint64_t c0[3], n0[3], c1, n1;

			for (int i = 0; i < 3 && progs[w][i]; i++)
				prog_stats(progs[w][i], &c0[i], &n0[i]);
			if (w == W_EXEC)
				run_exec(secs);
			else
				run_connect(secs);
			for (int i = 0; i < 3 && progs[w][i]; i++) {
				prog_stats(progs[w][i], &c1, &n1);
				printf("| %s | %s | %llu | %.0f |\n", wname[w],
				       progs[w][i],
				       (unsigned long long)(c1 - c0[i]),
				       c1 > c0[i] ? (double)(n1 - n0[i]) /
						    (c1 - c0[i]) : 0);
			}
		}
		daemon_down();
		set_bpf_stats(0);
	}

	/* 2. The capture rate before the first drop. */
	{
		char prefix[200];
		const char *const sets[] = { "bpf.captures=open", "bpf.shed=",
					     "spool.max_bytes=16G", prefix,
					     NULL };
		double ok_rate = 0, ok_got = 0, bad_rate = 0, got, try;
		uint64_t bad_drops = 0, bad_total = 0;
		bool limit = false;
		int fd;

		snprintf(prefix, sizeof(prefix), "bpf.open_prefixes=%s", rate_dir);
		snprintf(path, sizeof(path), "%sf", rate_dir);
		fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0)
			die(path);
		close(fd);
		/* Double from 25k/s until drops; then bisect.  A fresh evringd,
		 * spool and ring for each step. */
		for (int step = 0; step < 30; step++) {
			struct evring_bpf_stats a, b;

			if (!bad_rate)
				try = ok_rate ? 2 * ok_rate : 25000;
			else if (bad_rate - ok_rate < 0.02 * bad_rate)
				break;
			else
				try = (ok_rate + bad_rate) / 2;
			daemon_up(sets);
			kstats(EVRING_BPF_OPEN, &a);
			got = run_opens(path, try, secs, procs);
			sleep_s(0.5);	/* let evringd drain and count */
			kstats(EVRING_BPF_OPEN, &b);
			daemon_down();
			fprintf(tsv, "rate\t%d\ton\topen\t%.1f\t%llu\t%llu\t%llu\n",
				step, got,
				(unsigned long long)(b.events - a.events),
				(unsigned long long)(b.drops - a.drops),
				(unsigned long long)(b.shed - a.shed));
			fflush(tsv);
			fprintf(stderr, "rate target %.0f/s: generated %.0f/s, %llu events, %llu drops\n",
				try, got, (unsigned long long)(b.events - a.events),
				(unsigned long long)(b.drops - a.drops));
			if (b.drops != a.drops) {
				bad_rate = try;
				bad_drops = b.drops - a.drops;
				bad_total = bad_drops + b.events - a.events;
			} else if (got < 0.95 * try) {
				limit = true;	/* the generator cannot go faster */
				ok_got = got > ok_got ? got : ok_got;
				break;
			} else {
				ok_rate = try;
				ok_got = got;
			}
		}
		printf("\nHighest paced open rate captured with no drop (%d generator processes, 4 MiB ring, no shedding): %.0f events/s",
		       procs, ok_got);
		if (bad_rate && !limit)
			printf("; at %.0f/s, %llu of %llu events were dropped.\n",
			       bad_rate, (unsigned long long)bad_drops,
			       (unsigned long long)bad_total);
		else
			printf(" (the generator's own limit: it dropped nothing).\n");
	}
	fclose(tsv);
	nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
	return 0;
}
