// SPDX-License-Identifier: GPL-2.0-only
/*
 * ship_bench: events from writer processes to acknowledged-in-JetStream,
 * evring (writers -> evringd's ingest socket -> SQLite spool -> shipped as
 * batches) against the direct path (writers publishing each event as its
 * own JetStream message with libnats' async publish, bench/ship_direct.c),
 * side by side, on a local region: an R1 stream on one nats-server, and an
 * R3 stream on a three-node cluster on loopback.
 *
 * Throughput cells: W writers send N events each, as fast as they can.
 *  - evring: a fresh evringd (socket source only, a fresh spool, one
 *    [region a] with the cell's own stream, which evringd creates); the
 *    cell starts when the stream exists, and ends when an ordered consumer
 *    of the stream (headers only) has seen the Evring-Count headers of the
 *    stored batches add up to W x N.  Then evringd is stopped and the sum
 *    must still be exactly W x N.
 *  - direct: the stream is created here (file storage, the same replicas);
 *    W ship_direct processes (PublishAsync.MaxPending -p); the cell ends
 *    when the last of them has had every publish acknowledged
 *    (js_PublishAsyncComplete); the stream must then hold W x N messages.
 *
 * Latency cells: each path at half its own median throughput (paced
 * writers, 1 ms steps) for -L seconds; every event carries CLOCK_REALTIME
 * at the moment it is written; an ordered consumer of the stream decodes
 * every stored message (evring's batches with batch_decode) and takes
 * now - sent for each event as it is delivered.  Every (writer, counter)
 * must arrive exactly once.
 *
 * Repetitions are interleaved: every throughput cell of repetition r runs
 * before any of r + 1, setups alternating and the methods' order rotated;
 * then the latency cells the same way.  The table gives medians and the
 * min-max of the repetitions.  Nothing here asserts a speed.
 *
 * Usage: ship_bench [-d DIR] [-o OUTDIR] [-r REPS] [-w WRITERS] [-n COUNT]
 *		     [-z SIZE] [-L SECONDS] [-s r1,r3] [-m evring,direct]
 *		     [-P BASE_PORT] [-p PENDING] [-t CELL_TIMEOUT_S]
 * $EVRINGD, $SHIP_DIRECT, $NATS_SERVER override the programs' paths.
 *
 * Internal: ship_bench --writer SOCKET COUNT SIZE RATE ID is one evring
 * writer process, with ship_direct's protocol on stdin/stdout.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nats/nats.h>

#include "evring.h"
/* This program uses only some of the shared helpers. */
#include "bench_util.h"
#include "ship_event.h"
#include "../daemon/batch.h"

#define SB_MAX_WRITERS	16
#define SB_MAX_REPS	20
#define SB_START_S	60	/* evringd, a stream, a cluster: ready by then */
#define SB_STOP_S	30
#define SB_HDR_COUNT	"Evring-Count"	/* daemon/jetstream.h JS_HDR_COUNT */

enum sb_setup { S_R1, S_R3, S_NR };
enum sb_method { M_EVRING, M_DIRECT, M_NR };

static const char *const setup_name[S_NR] = { "r1", "r3" };
static const char *const setup_label[S_NR] = {
	"R1, one nats-server", "R3, 3-node cluster",
};
static const char *const method_name[M_NR] = { "evring", "direct" };
static const char *const method_label[M_NR] = {
	"evring (socket -> evringd -> batches)",
	"direct (js_PublishAsync per event)",
};

struct sb_result {
	bool ok;
	uint64_t events;
	uint64_t messages;	/* stored in the stream */
	uint64_t bytes;		/* the stream's, as stored */
	double elapsed_s;
	double spooled_s;	/* evring: writers' last ack from evringd */
	double rate;		/* latency cells: events/s asked for */
	double p50_ms, p99_ms, max_ms;
	double ack_p50_ms, ack_p99_ms, ack_max_ms;	/* direct: write -> ack */
};

/* One cluster (or single server) and our connection to it. */
struct sb_region {
	pid_t pid[3];
	unsigned int nservers;
	char urls[256];
	natsConnection *nc;
	jsCtx *js;
};

static struct {
	const char *dir;
	const char *outdir;
	unsigned int reps;
	unsigned int nwriters;
	unsigned int count;
	unsigned int size;
	unsigned int lat_s;
	bool setup_on[S_NR];
	bool method_on[M_NR];
	unsigned int base_port;
	unsigned int pending;
	unsigned int cell_timeout_s;
	const char *evringd;
	const char *direct;
	const char *nats_server;
	char self[PATH_MAX];
} opt = {
	.dir = "/tmp/ship_bench",
	.reps = 3,
	.nwriters = 4,
	.count = 50000,
	.size = 128,
	.lat_s = 10,
	.base_port = 14400,
	.pending = 4096,
	.cell_timeout_s = 300,
};

static struct sb_region regions[S_NR];
static unsigned int cell_no;		/* names each cell's stream */

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* --- the evring writer process ---------------------------------------- */

static void wait_start(void)
{
	char c;

	while (read(STDIN_FILENO, &c, 1) > 0 || errno == EINTR)
		;
}

/*
 * One writer: COUNT events of SIZE bytes through evringd's ingest socket
 * (never the device: the path given for it does not exist), paced at RATE
 * events/s unless 0, then wait until evringd has acknowledged every one as
 * spooled.  Prints "ready", waits for stdin's EOF, prints
 * "done COUNT 0 END_NS".
 */
static int writer_main(char **argv)
{
	unsigned int count, size, rate, id;
	struct evring_writer *w;
	char nodev[PATH_MAX], *buf;
	uint64_t t0;
	int ret;

	if (parse_uint(argv[1], 1000000000, &count) ||
	    parse_uint(argv[2], 1 << 20, &size) ||
	    size < sizeof(struct ship_event) ||
	    parse_uint(argv[3], 100000000, &rate) ||
	    parse_uint(argv[4], 1 << 20, &id)) {
		fprintf(stderr, "ship_bench: bad --writer arguments\n");
		return 2;
	}
	buf = malloc(size);
	if (!buf)
		return 1;
	snprintf(nodev, sizeof(nodev), "%s.no-device", argv[0]);
	ret = evring_writer_open(nodev, argv[0], &w);
	if (ret) {
		fprintf(stderr, "ship_bench: cannot connect to '%s': %s\n",
			argv[0], strerror(-ret));
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	wait_start();
	t0 = now_ns();
	for (unsigned int c = 1; c <= count; c++) {
		if (rate)
			pace(t0, c - 1, rate);
		ship_event_fill(buf, size, id, c);
		ret = evring_writer_write(w, buf, size);
		if (ret) {
			fprintf(stderr, "ship_bench: writer %u: event %u: %s\n",
				id, c, strerror(-ret));
			return 1;
		}
	}
	ret = evring_writer_sync(w, opt.cell_timeout_s * 1000);
	if (ret) {
		fprintf(stderr, "ship_bench: writer %u: sync: %s\n", id,
			strerror(-ret));
		return 1;
	}
	printf("done %u 0 %" PRIu64 "\n", count, now_ns());
	fflush(stdout);
	evring_writer_close(w);
	free(buf);
	return 0;
}

/* --- child processes -------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* The @q quantile of the @n sorted latencies at @v (ns), in ms. */
static double pct_ms(const uint64_t *v, uint64_t n, double q)
{
	uint64_t i = (uint64_t)(q * (n - 1) + 0.5);

	return n ? v[i < n ? i : n - 1] / 1e6 : 0;
}

struct sb_child {
	pid_t pid;
	int in_fd;		/* its stdin: closed to start it */
	int out_fd;		/* its stdout */
	char line[256];
	size_t have;
	bool ready, done;
	uint64_t end_ns;
};

static pid_t spawn(char *const argv[], int *in_fd, int *out_fd,
		   const char *log_path, const char *env)
{
	int in[2] = { -1, -1 }, out[2] = { -1, -1 };
	pid_t pid;

	if ((in_fd && pipe2(in, O_CLOEXEC)) || (out_fd && pipe2(out, O_CLOEXEC)))
		return -errno;
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (!pid) {
		if (in_fd)
			dup2(in[0], STDIN_FILENO);
		else
			close(STDIN_FILENO);
		if (out_fd)
			dup2(out[1], STDOUT_FILENO);
		if (log_path) {
			int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);

			if (fd >= 0) {
				if (!out_fd)
					dup2(fd, STDOUT_FILENO);
				dup2(fd, STDERR_FILENO);
			}
		}
		if (env)
			putenv((char *)env);
		execv(argv[0], argv);
		fprintf(stderr, "ship_bench: cannot run '%s': %s\n", argv[0],
			strerror(errno));
		_exit(127);
	}
	if (in_fd) {
		close(in[0]);
		*in_fd = in[1];
	}
	if (out_fd) {
		close(out[1]);
		*out_fd = out[0];
	}
	return pid;
}

/* Reap @pid within @timeout_s, SIGKILL after; its wait status or -errno. */
static int reap(pid_t pid, unsigned int timeout_s)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_s * 1000000000u;
	int st;

	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			return st;
		if (r < 0 && errno != EINTR)
			return -errno;
		if (now_ns() >= deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return -ETIMEDOUT;
		}
		sleep_ms(5);
	}
}

static void stop(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	if (reap(pid, SB_STOP_S) == -ETIMEDOUT)
		fprintf(stderr, "ship_bench: pid %d ignored SIGTERM, killed\n",
			(int)pid);
}

/*
 * Read what the children printed, for up to @ms; a line "ready" or
 * "done SENT FAILED END_NS" updates the child.  false on EOF or a line we
 * do not expect from a child that has not finished.
 */
static bool children_read(struct sb_child *ch, unsigned int n, int ms)
{
	struct pollfd p[SB_MAX_WRITERS];
	bool ok = true;

	for (unsigned int i = 0; i < n; i++)
		p[i] = (struct pollfd){
			.fd = ch[i].done ? -1 : ch[i].out_fd, .events = POLLIN,
		};
	if (poll(p, n, ms) <= 0)
		return true;
	for (unsigned int i = 0; i < n; i++) {
		struct sb_child *c = &ch[i];
		unsigned long long sent, failed, end;
		char *nl;
		ssize_t r;

		if (!(p[i].revents & (POLLIN | POLLHUP)))
			continue;
		r = read(c->out_fd, c->line + c->have, sizeof(c->line) - 1 - c->have);
		if (r <= 0) {
			ok = false;
			c->done = true;	/* failed: done without end_ns */
			continue;
		}
		c->have += r;
		c->line[c->have] = 0;
		while ((nl = strchr(c->line, '\n'))) {
			*nl = 0;
			if (!strcmp(c->line, "ready")) {
				c->ready = true;
			} else if (sscanf(c->line, "done %llu %llu %llu", &sent,
					  &failed, &end) == 3 && !failed) {
				c->done = true;
				c->end_ns = end;
			} else {
				ok = false;
				c->done = true;
			}
			c->have -= nl + 1 - c->line;
			memmove(c->line, nl + 1, c->have + 1);
		}
	}
	return ok;
}

/* Where direct writer @i leaves its acknowledgement latencies. */
static void ack_path(unsigned int i, char *buf, size_t len)
{
	snprintf(buf, len, "%s/ack-%u.bin", opt.dir, i);
}

/*
 * Every direct writer's acknowledgement latencies, sorted, into @r; false
 * unless there is one per event.
 */
static bool ack_collect(unsigned int per_writer, struct sb_result *r)
{
	uint64_t total = (uint64_t)per_writer * opt.nwriters, n = 0;
	uint64_t *v = calloc(total, sizeof(*v));
	char path[PATH_MAX];
	bool ok = v != NULL;

	for (unsigned int i = 0; i < opt.nwriters && ok; i++) {
		FILE *f;

		ack_path(i, path, sizeof(path));
		f = fopen(path, "re");
		if (!f) {
			ok = false;
			break;
		}
		n += fread(v + n, sizeof(*v), total - n, f);
		fclose(f);
		unlink(path);
	}
	if (ok && n == total) {
		qsort(v, n, sizeof(*v), cmp_u64);
		r->ack_p50_ms = pct_ms(v, n, 0.50);
		r->ack_p99_ms = pct_ms(v, n, 0.99);
		r->ack_max_ms = v[n - 1] / 1e6;
	}
	free(v);
	return ok && n == total;
}

/*
 * Start @n writers (evring: ourselves with --writer; direct: ship_direct),
 * wait until each is connected.  0 or -errno.
 */
static int writers_spawn(enum sb_method m, const char *target,
			 const char *subject, unsigned int count,
			 unsigned int rate, struct sb_child *ch, unsigned int n)
{
	uint64_t deadline = now_ns() + SB_START_S * 1000000000ull;
	char a_count[16], a_size[16], a_rate[16], a_id[16], a_pend[16],
	     a_ack[PATH_MAX];

	snprintf(a_count, sizeof(a_count), "%u", count);
	snprintf(a_size, sizeof(a_size), "%u", opt.size);
	snprintf(a_rate, sizeof(a_rate), "%u", rate);
	snprintf(a_pend, sizeof(a_pend), "%u", opt.pending);
	for (unsigned int i = 0; i < n; i++) {
		char *ev_argv[] = { opt.self, "--writer", (char *)target, a_count,
				    a_size, a_rate, a_id, NULL };
		char *di_argv[] = { (char *)opt.direct, "-u", (char *)target,
				    "-s", (char *)subject, "-n", a_count, "-z",
				    a_size, "-r", a_rate, "-p", a_pend, "-i",
				    a_id, rate ? "-A" : NULL, a_ack, NULL };
		pid_t pid;

		snprintf(a_id, sizeof(a_id), "%u", i);
		ack_path(i, a_ack, sizeof(a_ack));
		unlink(a_ack);
		ch[i] = (struct sb_child){ .in_fd = -1, .out_fd = -1 };
		pid = spawn(m == M_EVRING ? ev_argv : di_argv, &ch[i].in_fd,
			    &ch[i].out_fd, NULL, NULL);
		if (pid < 0)
			return pid;
		ch[i].pid = pid;
	}
	for (;;) {
		unsigned int ready = 0;

		if (!children_read(ch, n, 50))
			return -EIO;
		for (unsigned int i = 0; i < n; i++)
			ready += ch[i].ready;
		if (ready == n)
			return 0;
		if (now_ns() > deadline)
			return -ETIMEDOUT;
	}
}

/* Close the children's pipes and reap them; true when all exited 0. */
static bool writers_reap(struct sb_child *ch, unsigned int n)
{
	bool ok = true;

	for (unsigned int i = 0; i < n; i++) {
		int st;

		if (!ch[i].pid)
			continue;
		if (ch[i].in_fd >= 0)
			close(ch[i].in_fd);
		if (!ch[i].done)
			kill(ch[i].pid, SIGKILL);
		st = reap(ch[i].pid, SB_STOP_S);
		ok &= st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
		close(ch[i].out_fd);
		ch[i].pid = 0;
	}
	return ok;
}

/* --- nats-server ------------------------------------------------------ */

static unsigned int client_port(enum sb_setup s, unsigned int i)
{
	return opt.base_port + (s == S_R1 ? 0 : 11 + i);
}

/* The config of server @i of setup @s, written to DIR/<setup>-<i>.conf. */
static int server_conf(enum sb_setup s, unsigned int i, char *path, size_t len)
{
	char routes[256] = "";
	FILE *f;

	snprintf(path, len, "%s/%s-%u.conf", opt.dir, setup_name[s], i);
	f = fopen(path, "we");
	if (!f)
		return -errno;
	fprintf(f, "server_name: sb-%s-%u\nlisten: 127.0.0.1:%u\n"
		   "jetstream {\n  store_dir: \"%s/store-%s-%u\"\n"
		   "  max_memory_store: 256MB\n  max_file_store: 8GB\n}\n",
		setup_name[s], i, client_port(s, i), opt.dir, setup_name[s], i);
	if (s == S_R3) {
		for (unsigned int j = 0; j < 3; j++)
			snprintf(routes + strlen(routes), sizeof(routes) - strlen(routes),
				 "%s\"nats-route://127.0.0.1:%u\"", j ? ", " : "",
				 opt.base_port + 21 + j);
		fprintf(f, "cluster {\n  name: sb-r3\n  listen: 127.0.0.1:%u\n"
			   "  routes: [%s]\n}\n", opt.base_port + 21 + i, routes);
	}
	return fclose(f) ? -errno : 0;
}

/* A stream of @replicas on "<prefix>.>", file storage. */
static int stream_add(struct sb_region *r, const char *name,
		      const char *prefix, unsigned int replicas, char *err,
		      size_t errlen)
{
	char subj[160];
	const char *subjects[1] = { subj };
	jsStreamConfig sc;
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	natsStatus s;

	snprintf(subj, sizeof(subj), "%s.>", prefix);
	jsStreamConfig_Init(&sc);
	sc.Name = name;
	sc.Subjects = subjects;
	sc.SubjectsLen = 1;
	sc.Storage = js_FileStorage;
	sc.Replicas = replicas;
	s = js_AddStream(&si, r->js, &sc, NULL, &jerr);
	if (s != NATS_OK) {
		snprintf(err, errlen, "%s (js %d)", natsStatus_GetText(s), (int)jerr);
		return -EIO;
	}
	jsStreamInfo_Destroy(si);
	return 0;
}

/*
 * Messages in stream @name (and its bytes into *@bytes unless NULL), or
 * -errno (-ENOENT when it does not exist).
 */
static int64_t stream_messages(struct sb_region *r, const char *name,
			       uint64_t *bytes)
{
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	natsStatus s;
	int64_t n;

	s = js_GetStreamInfo(&si, r->js, name, NULL, &jerr);
	if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr)
		return -ENOENT;
	if (s != NATS_OK)
		return -EIO;
	n = si->State.Msgs;
	if (bytes)
		*bytes = si->State.Bytes;
	jsStreamInfo_Destroy(si);
	return n;
}

static void stream_delete(struct sb_region *r, const char *name)
{
	jsErrCode jerr = 0;

	js_DeleteStream(r->js, name, NULL, &jerr);
}

/*
 * Start setup @s's servers, connect, and wait until JetStream can create
 * (and delete) a stream of the setup's replicas.
 */
static int region_start(enum sb_setup s)
{
	struct sb_region *r = &regions[s];
	uint64_t deadline = now_ns() + SB_START_S * 1000000000ull;
	char conf[PATH_MAX], logp[PATH_MAX], err[200] = "";
	natsOptions *no = NULL;
	natsStatus st;
	int ret;

	r->nservers = s == S_R1 ? 1 : 3;
	r->urls[0] = 0;
	for (unsigned int i = 0; i < r->nservers; i++) {
		char *argv[] = { (char *)opt.nats_server, "-c", conf, NULL };

		ret = server_conf(s, i, conf, sizeof(conf));
		if (ret)
			return ret;
		snprintf(logp, sizeof(logp), "%s/%s-%u.log", opt.dir,
			 setup_name[s], i);
		r->pid[i] = spawn(argv, NULL, NULL, logp, NULL);
		if (r->pid[i] < 0)
			return r->pid[i];
		snprintf(r->urls + strlen(r->urls), sizeof(r->urls) - strlen(r->urls),
			 "%snats://127.0.0.1:%u", i ? "," : "", client_port(s, i));
	}
	if (natsOptions_Create(&no) != NATS_OK ||
	    ship_set_urls(no, r->urls) != NATS_OK ||
	    natsOptions_SetMaxReconnect(no, -1) != NATS_OK)
		return -ENOMEM;
	for (;;) {
		st = natsConnection_Connect(&r->nc, no);
		if (st == NATS_OK)
			break;
		if (now_ns() > deadline) {
			fprintf(stderr, "ship_bench: cannot connect to '%s': %s\n",
				r->urls, natsStatus_GetText(st));
			return -ETIMEDOUT;
		}
		sleep_ms(100);
	}
	natsOptions_Destroy(no);
	if (natsConnection_JetStream(&r->js, r->nc, NULL) != NATS_OK)
		return -EIO;
	while (stream_add(r, "SB_PROBE", "sbprobe", r->nservers, err,
			  sizeof(err))) {
		if (now_ns() > deadline) {
			fprintf(stderr, "ship_bench: JetStream on '%s' not ready: %s\n",
				r->urls, err);
			return -ETIMEDOUT;
		}
		sleep_ms(250);
	}
	stream_delete(r, "SB_PROBE");
	return 0;
}

static void region_stop(enum sb_setup s)
{
	struct sb_region *r = &regions[s];

	jsCtx_Destroy(r->js);
	r->js = NULL;
	natsConnection_Destroy(r->nc);
	r->nc = NULL;
	for (unsigned int i = 0; i < r->nservers; i++)
		stop(r->pid[i]);
	r->nservers = 0;
}

/* --- the observer: an ordered consumer of the cell's stream ------------ */

struct sb_observer {
	bool evring;		/* messages are batches */
	bool latency;		/* decode everything, else headers only */
	uint64_t target;	/* events */
	atomic_uint_fast64_t events;
	atomic_uint_fast64_t messages;
	atomic_uint_fast64_t bad;	/* undecodable, unknown, duplicate */
	atomic_uint_fast64_t done_ns;	/* CLOCK_MONOTONIC at target */
	/* latency: one entry per event, in ns; seen[w][c] bitmap */
	uint64_t *lat;
	uint64_t nlat;
	unsigned char *seen;
	unsigned int per_writer;
	char first_bad[160];
};

static void obs_bad(struct sb_observer *o, const char *why)
{
	if (atomic_fetch_add(&o->bad, 1) == 0)
		snprintf(o->first_bad, sizeof(o->first_bad), "%s", why);
}

/* One event's payload, latency cells only. */
static void obs_event(struct sb_observer *o, const void *p, size_t len,
		      uint64_t now)
{
	struct ship_event ev;
	uint64_t bit;

	if (len != opt.size) {
		obs_bad(o, "an event of the wrong size");
		return;
	}
	memcpy(&ev, p, sizeof(ev));
	if (ev.writer >= opt.nwriters || !ev.counter ||
	    ev.counter > o->per_writer) {
		obs_bad(o, "an event from no writer of this cell");
		return;
	}
	bit = (uint64_t)ev.writer * o->per_writer + ev.counter - 1;
	if (o->seen[bit / 8] & (1u << (bit % 8))) {
		obs_bad(o, "an event delivered twice");
		return;
	}
	o->seen[bit / 8] |= 1u << (bit % 8);
	if (o->nlat < o->target)
		o->lat[o->nlat++] = now > ev.sent_ns ? now - ev.sent_ns : 0;
}

/* libnats' delivery thread, one message at a time. */
static void obs_on_msg(natsConnection *nc, natsSubscription *sub,
		       natsMsg *msg, void *closure)
{
	struct sb_observer *o = closure;
	uint64_t now = realtime_ns(), n = 0, total;
	const char *v;

	atomic_fetch_add(&o->messages, 1);
	if (!o->evring) {
		n = 1;
		if (o->latency)
			obs_event(o, natsMsg_GetData(msg),
				  natsMsg_GetDataLength(msg), now);
	} else if (!o->latency) {
		char *end;

		if (natsMsgHeader_Get(msg, SB_HDR_COUNT, &v) != NATS_OK) {
			obs_bad(o, "a message without " SB_HDR_COUNT);
		} else {
			errno = 0;
			n = strtoull(v, &end, 10);
			if (errno || *end || end == v) {
				obs_bad(o, "a bad " SB_HDR_COUNT);
				n = 0;
			}
		}
	} else {
		struct batch_view bv;
		struct batch_iter it;
		struct evring_rec rec;
		const void *payload;

		if (batch_decode(natsMsg_GetData(msg), natsMsg_GetDataLength(msg),
				 &bv)) {
			obs_bad(o, "a message that is not a batch");
		} else {
			batch_iter_init(&it, &bv);
			while (batch_iter_next(&it, &rec, &payload) > 0) {
				obs_event(o, payload, rec.len, now);
				n++;
			}
			batch_view_release(&bv);
		}
	}
	total = atomic_fetch_add(&o->events, n) + n;
	if (n && total >= o->target && total - n < o->target)
		atomic_store(&o->done_ns, now_ns());
	natsMsg_Destroy(msg);
}

static int obs_subscribe(struct sb_region *r, const char *stream,
			 const char *prefix, struct sb_observer *o,
			 natsSubscription **sub)
{
	char subj[160];
	jsSubOptions so;
	jsErrCode jerr = 0;
	natsStatus s;

	snprintf(subj, sizeof(subj), "%s.>", prefix);
	jsSubOptions_Init(&so);
	so.Stream = stream;
	so.Ordered = true;
	so.Config.HeadersOnly = o->evring && !o->latency;
	s = js_Subscribe(sub, r->js, subj, obs_on_msg, o, NULL, &so, &jerr);
	if (s != NATS_OK) {
		fprintf(stderr, "ship_bench: cannot consume '%s': %s (js %d)\n",
			stream, natsStatus_GetText(s), (int)jerr);
		return -EIO;
	}
	natsSubscription_SetPendingLimits(*sub, -1, -1);
	return 0;
}

static void obs_free(struct sb_observer *o)
{
	free(o->lat);
	free(o->seen);
}

/* --- evringd ---------------------------------------------------------- */

static int write_evringd_conf(const char *path, enum sb_setup s,
			      const char *stream, const char *prefix)
{
	FILE *f = fopen(path, "we");

	if (!f)
		return -errno;
	fprintf(f, "# ship_bench: one cell\n[host]\nid = shipbench\n\n"
		   "[spool]\npath = %s/cell/spool.db\n\n"
		   "[control]\nsocket = %s/control.sock\n\n"
		   "[ship]\nmetrics_listen =\n\n"
		   "[region a]\nurls = %s\nstream = %s\nsubject_prefix = %s\n"
		   "replicas = %u\n",
		opt.dir, opt.dir, regions[s].urls, stream, prefix,
		regions[s].nservers);
	return fclose(f) ? -errno : 0;
}

static int notify_open(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	size_t len = strlen(path);
	int fd;

	if (len >= sizeof(a.sun_path))
		return -ENAMETOOLONG;
	memcpy(a.sun_path, path, len + 1);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	unlink(path);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return -errno;
	}
	return fd;
}

/*
 * Start evringd on a fresh spool, shipping to @stream in setup @s; ready
 * when it has said READY=1 and the stream exists (it creates it).
 */
static int evringd_start(enum sb_setup s, const char *stream,
			 const char *prefix, pid_t *pid)
{
	uint64_t deadline = now_ns() + SB_START_S * 1000000000ull;
	char conf[PATH_MAX], cmd[PATH_MAX + 16], a_sock[PATH_MAX + 32],
	     logp[PATH_MAX], notify[PATH_MAX];
	static char env[PATH_MAX + 16];
	char *argv[] = { (char *)opt.evringd, "-c", conf, "--set",
			 "sources.device=", "--set", a_sock, NULL };
	bool ready = false;
	char buf[512];
	int nfd, ret;

	snprintf(cmd, sizeof(cmd), "rm -rf '%s/cell'", opt.dir);
	if (system(cmd))
		return -EIO;
	snprintf(cmd, sizeof(cmd), "%s/cell", opt.dir);
	if (mkdir(cmd, 0700))
		return -errno;
	snprintf(conf, sizeof(conf), "%s/evringd.conf", opt.dir);
	ret = write_evringd_conf(conf, s, stream, prefix);
	if (ret)
		return ret;
	snprintf(a_sock, sizeof(a_sock), "sources.socket=%s/ingest.sock", opt.dir);
	snprintf(notify, sizeof(notify), "%s/notify.sock", opt.dir);
	snprintf(env, sizeof(env), "NOTIFY_SOCKET=%s", notify);
	snprintf(logp, sizeof(logp), "%s/evringd.log", opt.dir);
	nfd = notify_open(notify);
	if (nfd < 0)
		return nfd;
	*pid = spawn(argv, NULL, NULL, logp, env);
	if (*pid < 0) {
		close(nfd);
		return *pid;
	}
	while (now_ns() < deadline) {
		struct pollfd p = { .fd = nfd, .events = POLLIN };

		if (!ready && poll(&p, 1, 50) == 1) {
			ssize_t n = recv(nfd, buf, sizeof(buf) - 1, 0);

			if (n > 0) {
				buf[n] = 0;
				ready = strstr(buf, "READY=1");
			}
		} else if (ready) {
			if (stream_messages(&regions[s], stream, NULL) >= 0) {
				close(nfd);
				return 0;
			}
			sleep_ms(20);
		}
		if (waitpid(*pid, NULL, WNOHANG) == *pid) {
			close(nfd);
			*pid = 0;
			fprintf(stderr, "ship_bench: evringd exited at start (see %s)\n",
				logp);
			return -ECHILD;
		}
	}
	close(nfd);
	fprintf(stderr, "ship_bench: evringd did not %s within %d s (see %s)\n",
		ready ? "create its stream" : "become ready", SB_START_S, logp);
	return -ETIMEDOUT;
}

/* --- cells ------------------------------------------------------------ */

/*
 * One cell: method @m in setup @s; @rate 0 is a throughput cell of
 * opt.count events per writer, else a latency cell of @rate events/s in
 * all for opt.lat_s seconds.
 */
static int run_cell(enum sb_setup s, enum sb_method m, double rate,
		    struct sb_result *res)
{
	struct sb_region *r = &regions[s];
	struct sb_child ch[SB_MAX_WRITERS] = { 0 };
	struct sb_observer o = { .evring = m == M_EVRING, .latency = rate > 0 };
	natsSubscription *sub = NULL;
	unsigned int per_writer = opt.count, wrate = 0;
	char stream[64], prefix[64], subject[80], sock[PATH_MAX], err[200];
	uint64_t t0, deadline;
	bool writers_ok, done = false;
	pid_t evd = 0;
	int64_t msgs;
	int ret;

	*res = (struct sb_result){ .rate = rate };
	cell_no++;
	snprintf(stream, sizeof(stream), "SB_%s_%s_%u", setup_name[s],
		 method_name[m], cell_no);
	snprintf(prefix, sizeof(prefix), "sb%u", cell_no);
	snprintf(subject, sizeof(subject), "%s.direct", prefix);
	if (rate > 0) {
		wrate = (unsigned int)(rate / opt.nwriters + 0.5);
		if (!wrate)
			wrate = 1;
		per_writer = wrate * opt.lat_s;
		res->rate = (double)wrate * opt.nwriters;
	}
	o.target = (uint64_t)per_writer * opt.nwriters;
	o.per_writer = per_writer;
	if (o.latency) {
		o.lat = calloc(o.target, sizeof(*o.lat));
		o.seen = calloc(o.target / 8 + 1, 1);
		if (!o.lat || !o.seen) {
			obs_free(&o);
			return -ENOMEM;
		}
	}

	if (m == M_EVRING) {
		ret = evringd_start(s, stream, prefix, &evd);
		snprintf(sock, sizeof(sock), "%s/ingest.sock", opt.dir);
	} else {
		ret = stream_add(r, stream, prefix, r->nservers, err, sizeof(err));
		if (ret)
			fprintf(stderr, "ship_bench: cannot create stream '%s': %s\n",
				stream, err);
		snprintf(sock, sizeof(sock), "%s", r->urls);
	}
	if (ret)
		goto out;
	if (m == M_EVRING || o.latency) {
		ret = obs_subscribe(r, stream, prefix, &o, &sub);
		if (ret)
			goto out;
	}
	ret = writers_spawn(m, sock, subject, per_writer, wrate, ch,
			    opt.nwriters);
	if (ret) {
		fprintf(stderr, "ship_bench: writers did not start: %s\n",
			strerror(-ret));
		goto out;
	}

	t0 = now_ns();
	for (unsigned int i = 0; i < opt.nwriters; i++) {
		close(ch[i].in_fd);
		ch[i].in_fd = -1;
	}
	deadline = t0 + (uint64_t)opt.cell_timeout_s * 1000000000u;
	while (!done && now_ns() < deadline) {
		unsigned int nd = 0;
		uint64_t last = 0;

		children_read(ch, opt.nwriters, 5);
		for (unsigned int i = 0; i < opt.nwriters; i++) {
			nd += ch[i].done;
			if (ch[i].end_ns > last)
				last = ch[i].end_ns;
			if (ch[i].done && !ch[i].end_ns)
				deadline = 0;	/* a writer failed */
		}
		if (nd == opt.nwriters && last)
			res->spooled_s = (last - t0) / 1e9;
		if (m == M_DIRECT && !o.latency) {
			done = nd == opt.nwriters && last;
			if (done)
				res->elapsed_s = (last - t0) / 1e9;
		} else if (atomic_load(&o.done_ns) && nd == opt.nwriters) {
			done = true;
			res->elapsed_s = (atomic_load(&o.done_ns) - t0) / 1e9;
		}
	}
	writers_ok = writers_reap(ch, opt.nwriters);
	if (!done || !writers_ok) {
		fprintf(stderr, "ship_bench: %s %s: %s (%" PRIuFAST64 " of %" PRIu64 " events seen)\n",
			setup_name[s], method_name[m],
			done ? "a writer failed" : "timed out or a writer failed",
			atomic_load(&o.events), o.target);
		ret = -EIO;
		goto out;
	}
	if (evd) {
		stop(evd);
		evd = 0;
	}
	sleep_ms(100);	/* anything more than the target would show now */

	res->ok = true;
	msgs = stream_messages(r, stream, &res->bytes);
	res->messages = msgs > 0 ? msgs : 0;
	res->events = m == M_DIRECT && !o.latency ? res->messages :
		      atomic_load(&o.events);
	if (res->events != o.target) {
		fprintf(stderr, "ship_bench: %s %s: the stream holds %" PRIu64 " events, expected %" PRIu64 "\n",
			setup_name[s], method_name[m], res->events, o.target);
		res->ok = false;
	}
	if (atomic_load(&o.bad)) {
		fprintf(stderr, "ship_bench: %s %s: %" PRIuFAST64 " bad deliveries, the first: %s\n",
			setup_name[s], method_name[m], atomic_load(&o.bad),
			o.first_bad);
		res->ok = false;
	}
	if (o.latency && sub) {
		natsSubscription_Unsubscribe(sub);
		natsSubscription_Destroy(sub);
		sub = NULL;
		qsort(o.lat, o.nlat, sizeof(*o.lat), cmp_u64);
		res->p50_ms = pct_ms(o.lat, o.nlat, 0.50);
		res->p99_ms = pct_ms(o.lat, o.nlat, 0.99);
		res->max_ms = o.nlat ? o.lat[o.nlat - 1] / 1e6 : 0;
		if (o.nlat != o.target)
			res->ok = false;
		if (m == M_DIRECT && !ack_collect(per_writer, res)) {
			fprintf(stderr, "ship_bench: %s direct: the writers' acknowledgement latencies are missing\n",
				setup_name[s]);
			res->ok = false;
		}
	}
	ret = 0;
out:
	for (unsigned int i = 0; i < opt.nwriters; i++)
		if (ch[i].pid)
			writers_reap(&ch[i], 1);
	if (evd)
		stop(evd);
	if (sub) {
		natsSubscription_Unsubscribe(sub);
		natsSubscription_Destroy(sub);
	}
	stream_delete(r, stream);
	obs_free(&o);
	return ret;
}

/* --- report ----------------------------------------------------------- */

struct sb_summary {
	bool ran, ok;
	double eps, eps_min, eps_max;
	double per_msg;		/* events per stored message */
	double bytes_per_ev;	/* stream bytes per event */
	double rate;		/* latency cells */
	double p50, p50_min, p50_max, p99, p99_min, p99_max, max, max_min,
	       max_max;
	double ack_p50, ack_p99, ack_max;	/* direct, medians */
	bool lat_ok, lat_ran;
};

static void stat3(double *v, unsigned int n, double *med, double *lo,
		  double *hi)
{
	*med = median(v, n);	/* sorts v */
	*lo = v[0];
	*hi = v[n - 1];
}

static void summarize(const struct sb_result *t, const struct sb_result *l,
		      unsigned int reps, bool lat, struct sb_summary *s)
{
	double v[SB_MAX_REPS], w[SB_MAX_REPS], x[SB_MAX_REPS],
	       a[SB_MAX_REPS], b[SB_MAX_REPS], c[SB_MAX_REPS];
	double y[SB_MAX_REPS];
	unsigned int n = 0;

	*s = (struct sb_summary){ .ran = true, .ok = true, .lat_ok = true };
	for (unsigned int i = 0; i < reps; i++) {
		s->ok &= t[i].ok;
		if (!t[i].ok || t[i].elapsed_s <= 0)
			continue;
		v[n] = t[i].events / t[i].elapsed_s;
		w[n] = t[i].messages ? (double)t[i].events / t[i].messages : 0;
		y[n] = t[i].events ? (double)t[i].bytes / t[i].events : 0;
		n++;
	}
	if (n) {
		stat3(v, n, &s->eps, &s->eps_min, &s->eps_max);
		s->per_msg = median(w, n);
		s->bytes_per_ev = median(y, n);
	}
	if (!lat)
		return;
	s->lat_ran = true;
	n = 0;
	for (unsigned int i = 0; i < reps; i++) {
		s->lat_ok &= l[i].ok;
		s->rate = l[i].rate;
		if (!l[i].ok)
			continue;
		v[n] = l[i].p50_ms;
		w[n] = l[i].p99_ms;
		x[n] = l[i].max_ms;
		a[n] = l[i].ack_p50_ms;
		b[n] = l[i].ack_p99_ms;
		c[n] = l[i].ack_max_ms;
		n++;
	}
	if (n) {
		s->ack_p50 = median(a, n);
		s->ack_p99 = median(b, n);
		s->ack_max = median(c, n);
		stat3(v, n, &s->p50, &s->p50_min, &s->p50_max);
		stat3(w, n, &s->p99, &s->p99_min, &s->p99_max);
		stat3(x, n, &s->max, &s->max_min, &s->max_max);
	}
}

static void print_markdown(FILE *f, struct sb_summary sum[S_NR][M_NR])
{
	char a[32], b[32], c[32];

	fprintf(f, "| stream | path | events | events/s | events/s min–max | events per message | stream bytes per event |\n");
	fprintf(f, "|---|---|---:|---:|---:|---:|---:|\n");
	for (unsigned int s = 0; s < S_NR; s++)
		for (unsigned int m = 0; m < M_NR; m++) {
			const struct sb_summary *x = &sum[s][m];

			if (!x->ran)
				continue;
			fprintf(f, "| %s | %s | %u × %u | %s%s | %s–%s | %.0f | %.1f |\n",
				setup_label[s], method_label[m], opt.nwriters,
				opt.count, rate_label(x->eps, a, sizeof(a)),
				x->ok ? "" : " (FAILED)",
				rate_label(x->eps_min, b, sizeof(b)),
				rate_label(x->eps_max, c, sizeof(c)), x->per_msg,
				x->bytes_per_ev);
		}
	fprintf(f, "\nEnd-to-end latency (written -> delivered from the stream to a consumer) at half of each path's median events/s, %u s per cell:\n\n",
		opt.lat_s);
	fprintf(f, "| stream | path | events/s | p50 ms | p99 ms | max ms | p99 min–max | direct: written -> acknowledged, p50 / p99 / max ms |\n");
	fprintf(f, "|---|---|---:|---:|---:|---:|---:|---:|\n");
	for (unsigned int s = 0; s < S_NR; s++)
		for (unsigned int m = 0; m < M_NR; m++) {
			const struct sb_summary *x = &sum[s][m];

			if (!x->lat_ran)
				continue;
			fprintf(f, "| %s | %s | %s | %.1f | %.1f | %.1f | %.1f–%.1f%s | ",
				setup_label[s], method_label[m],
				rate_label(x->rate, a, sizeof(a)), x->p50, x->p99,
				x->max, x->p99_min, x->p99_max,
				x->lat_ok ? "" : " (FAILED)");
			if (m == M_DIRECT)
				fprintf(f, "%.1f / %.1f / %.1f |\n", x->ack_p50,
					x->ack_p99, x->ack_max);
			else
				fprintf(f, "– |\n");
		}
	fprintf(f, "\n| stream | evring / direct, events/s (medians) | ≥ 3× | evring p99 at half rate | < 50 ms |\n");
	fprintf(f, "|---|---:|---|---:|---|\n");
	for (unsigned int s = 0; s < S_NR; s++) {
		const struct sb_summary *e = &sum[s][M_EVRING], *d = &sum[s][M_DIRECT];
		double ratio;

		if (!e->ran || !d->ran || d->eps <= 0)
			continue;
		ratio = e->eps / d->eps;
		fprintf(f, "| %s | %.2f×%s | %s | ", setup_label[s], ratio,
			e->ok && d->ok ? "" : " (FAILED)",
			ratio >= 3 ? "yes" : "no");
		if (e->lat_ran && e->lat_ok)
			fprintf(f, "%.1f ms | %s |\n", e->p99,
				e->p99 < 50 ? "yes" : "no");
		else
			fprintf(f, "%s | – |\n", e->lat_ran ? "FAILED" : "–");
	}
}

/* --- options and main ------------------------------------------------- */

static int parse_names(const char *arg, const char *const *names,
		       unsigned int n, bool *on)
{
	char *s = strdup(arg), *save = NULL, *tok;
	int ret = 0;

	if (!s)
		return -ENOMEM;
	memset(on, 0, n * sizeof(*on));
	for (tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		unsigned int i;

		for (i = 0; i < n && strcmp(tok, names[i]); i++)
			;
		if (i == n) {
			ret = -EINVAL;
			break;
		}
		on[i] = true;
	}
	free(s);
	return ret;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: ship_bench [-d DIR] [-o OUTDIR] [-r REPS] [-w WRITERS] [-n COUNT]\n"
		"                  [-z SIZE] [-L SECONDS] [-s r1,r3] [-m evring,direct]\n"
		"                  [-P BASE_PORT] [-p PENDING] [-t CELL_TIMEOUT_S]\n");
}

static int parse_args(int argc, char **argv)
{
	int ch;

	for (unsigned int i = 0; i < S_NR; i++)
		opt.setup_on[i] = true;
	for (unsigned int i = 0; i < M_NR; i++)
		opt.method_on[i] = true;
	opt.evringd = getenv("EVRINGD") ? getenv("EVRINGD") : "build/bin/evringd";
	opt.direct = getenv("SHIP_DIRECT") ? getenv("SHIP_DIRECT") :
		     "build/bench/ship_direct";
	opt.nats_server = getenv("NATS_SERVER") ? getenv("NATS_SERVER") :
			  "/usr/sbin/nats-server";
	while ((ch = getopt(argc, argv, "d:o:r:w:n:z:L:s:m:P:p:t:h")) != -1) {
		switch (ch) {
		case 'd': opt.dir = optarg; break;
		case 'o': opt.outdir = optarg; break;
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
			if (parse_uint(optarg, 100000000, &opt.count) || !opt.count)
				goto bad;
			break;
		case 'z':
			if (parse_uint(optarg, 65536, &opt.size) ||
			    opt.size < sizeof(struct ship_event))
				goto bad;
			break;
		case 'L':
			if (parse_uint(optarg, 3600, &opt.lat_s))
				goto bad;
			break;
		case 's':
			if (parse_names(optarg, setup_name, S_NR, opt.setup_on))
				goto bad;
			break;
		case 'm':
			if (parse_names(optarg, method_name, M_NR, opt.method_on))
				goto bad;
			break;
		case 'P':
			if (parse_uint(optarg, 65000, &opt.base_port) ||
			    opt.base_port < 1024)
				goto bad;
			break;
		case 'p':
			if (parse_uint(optarg, 1 << 20, &opt.pending) || !opt.pending)
				goto bad;
			break;
		case 't':
			if (parse_uint(optarg, 86400, &opt.cell_timeout_s) ||
			    !opt.cell_timeout_s)
				goto bad;
			break;
		default:
			usage();
			return -EINVAL;
		}
	}
	if (optind != argc || opt.dir[0] != '/') {
		usage();
		return -EINVAL;
	}
	return 0;
bad:
	fprintf(stderr, "ship_bench: bad value '%s' for -%c\n", optarg, ch);
	usage();
	return -EINVAL;
}

static FILE *out_open(const char *name)
{
	char path[PATH_MAX];
	FILE *f;

	if (!opt.outdir)
		return NULL;
	snprintf(path, sizeof(path), "%s/%s", opt.outdir, name);
	f = fopen(path, "we");
	if (!f)
		fprintf(stderr, "ship_bench: cannot write '%s': %s\n", path,
			strerror(errno));
	return f;
}

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
	stopping = sig;
}

/* The order of the methods in repetition @rep. */
static enum sb_method method_at(unsigned int rep, unsigned int setup,
				unsigned int k)
{
	return (k + rep + setup) % M_NR;
}

static void log_cell(FILE *tsv, const char *kind, unsigned int rep,
		     enum sb_setup s, enum sb_method m,
		     const struct sb_result *r)
{
	char a[32];

	if (kind[0] == 't')
		fprintf(stderr, "rep %u/%u %-3s %-7s throughput: %s events/s in %.2f s (%" PRIu64 " messages, spooled in %.2f s)%s\n",
			rep + 1, opt.reps, setup_name[s], method_name[m],
			rate_label(r->elapsed_s > 0 ? r->events / r->elapsed_s : 0,
				   a, sizeof(a)),
			r->elapsed_s, r->messages, r->spooled_s,
			r->ok ? "" : " FAILED");
	else
		fprintf(stderr, "rep %u/%u %-3s %-7s latency at %s events/s: p50 %.2f ms, p99 %.2f ms, max %.2f ms (acks: %.2f / %.2f / %.2f ms)%s\n",
			rep + 1, opt.reps, setup_name[s], method_name[m],
			rate_label(r->rate, a, sizeof(a)), r->p50_ms, r->p99_ms,
			r->max_ms, r->ack_p50_ms, r->ack_p99_ms, r->ack_max_ms,
			r->ok ? "" : " FAILED");
	if (tsv) {
		fprintf(tsv, "%s\t%u\t%s\t%s\t%d\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\t%.6f\t%.6f\t%.1f\t%.0f\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\n",
			kind, rep + 1, setup_name[s], method_name[m], r->ok,
			r->events, r->messages, r->bytes, r->elapsed_s, r->spooled_s,
			r->elapsed_s > 0 ? r->events / r->elapsed_s : 0,
			r->rate, r->p50_ms, r->p99_ms, r->max_ms, r->ack_p50_ms,
			r->ack_p99_ms, r->ack_max_ms);
		fflush(tsv);
	}
}

int main(int argc, char **argv)
{
	static struct sb_result thr[S_NR][M_NR][SB_MAX_REPS],
				lat[S_NR][M_NR][SB_MAX_REPS];
	static struct sb_summary sum[S_NR][M_NR];
	unsigned int failed = 0;
	char date[64];
	struct utsname uts;
	FILE *tsv, *f;
	time_t t;
	ssize_t n;

	if (argc == 7 && !strcmp(argv[1], "--writer"))
		return writer_main(argv + 2);
	if (parse_args(argc, argv))
		return 2;
	n = readlink("/proc/self/exe", opt.self, sizeof(opt.self) - 1);
	if (n < 0)
		return 1;
	opt.self[n] = 0;
	if (opt.method_on[M_DIRECT] && access(opt.direct, X_OK)) {
		fprintf(stderr, "ship_bench: '%s' missing\n", opt.direct);
		return 1;
	}
	if (opt.method_on[M_EVRING] && access(opt.evringd, X_OK)) {
		fprintf(stderr, "ship_bench: '%s' missing\n", opt.evringd);
		return 1;
	}
	if (mkdir(opt.dir, 0700) && errno != EEXIST) {
		fprintf(stderr, "ship_bench: cannot create '%s': %s\n", opt.dir,
			strerror(errno));
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	t = time(NULL);
	strftime(date, sizeof(date), "%Y-%m-%d %H:%M UTC", gmtime(&t));
	uname(&uts);

	for (unsigned int s = 0; s < S_NR; s++)
		if (opt.setup_on[s] && region_start(s)) {
			fprintf(stderr, "ship_bench: cannot start the %s setup (logs in %s)\n",
				setup_name[s], opt.dir);
			failed++;
			goto stop;
		}
	tsv = out_open("ship_bench.tsv");
	if (tsv)
		fprintf(tsv, "kind\trep\tstream\tpath\tok\tevents\tmessages\tbytes\telapsed_s\tspooled_s\tevents_per_s\trate\tp50_ms\tp99_ms\tmax_ms\tack_p50_ms\tack_p99_ms\tack_max_ms\n");

	for (unsigned int rep = 0; rep < opt.reps && !stopping; rep++)
		for (unsigned int s = 0; s < S_NR && !stopping; s++)
			for (unsigned int k = 0; k < M_NR && opt.setup_on[s]; k++) {
				enum sb_method m = method_at(rep, s, k);

				if (!opt.method_on[m] || stopping)
					continue;
				run_cell(s, m, 0, &thr[s][m][rep]);
				log_cell(tsv, "throughput", rep, s, m, &thr[s][m][rep]);
			}
	for (unsigned int s = 0; s < S_NR; s++)
		for (unsigned int m = 0; m < M_NR; m++)
			if (opt.setup_on[s] && opt.method_on[m])
				summarize(thr[s][m], NULL, opt.reps, false,
					  &sum[s][m]);
	for (unsigned int rep = 0; rep < opt.reps && opt.lat_s && !stopping; rep++)
		for (unsigned int s = 0; s < S_NR && !stopping; s++)
			for (unsigned int k = 0; k < M_NR && opt.setup_on[s]; k++) {
				enum sb_method m = method_at(rep, s, k);

				if (!opt.method_on[m] || stopping ||
				    sum[s][m].eps <= 0)
					continue;
				run_cell(s, m, sum[s][m].eps / 2, &lat[s][m][rep]);
				log_cell(tsv, "latency", rep, s, m, &lat[s][m][rep]);
			}
	if (tsv)
		fclose(tsv);
	for (unsigned int s = 0; s < S_NR; s++)
		for (unsigned int m = 0; m < M_NR; m++) {
			if (!opt.setup_on[s] || !opt.method_on[m])
				continue;
			summarize(thr[s][m], lat[s][m], opt.reps,
				  opt.lat_s && sum[s][m].eps > 0, &sum[s][m]);
			failed += !sum[s][m].ok || !sum[s][m].lat_ok;
		}

	printf("Medians of %u interleaved repetitions; %s, %s, %ld CPUs; %u writers of %u B events; latency cells %u s at half the median events/s.\n\n",
	       opt.reps, date, uts.release, sysconf(_SC_NPROCESSORS_ONLN),
	       opt.nwriters, opt.size, opt.lat_s);
	print_markdown(stdout, sum);
	f = out_open("ship_bench.md");
	if (f) {
		print_markdown(f, sum);
		fclose(f);
	}
stop:
	for (unsigned int s = 0; s < S_NR; s++)
		if (regions[s].nservers)
			region_stop(s);
	if (stopping)
		fprintf(stderr, "ship_bench: stopped by signal %d\n", (int)stopping);
	if (failed)
		fprintf(stderr, "ship_bench: %u cells lost events or failed\n",
			failed);
	return failed || stopping ? 1 : 0;
}
