// SPDX-License-Identifier: GPL-2.0-only
/*
 * kmod_bench: evring.ko against the kernel's own local IPC, side by side.
 *
 * For every record size and writer count, one cell per method moves records
 * from writer processes to reader processes for a fixed time:
 *
 *	evring-write	write(2) per record to /dev/evring; writer i is pinned
 *			to partition i, one mmap consumer process per partition
 *			(evring_consumer_next until NULL, release, wait)
 *	evring-batch	the same, EVRING_IOC_WRITE_BATCH of 64 records per call
 *	unix-dgram	AF_UNIX SOCK_DGRAM, what /dev/log is: writers send(2)
 *			one record per datagram to one bound socket (connected
 *			once, as syslog(3) does), one reader recv(2)s
 *	unix-mmsg	the same socket, sendmmsg(2) of 64 datagrams per call
 *	pipe		write(2) per record into one pipe, one reader read(2)s
 *
 * Every writer blocks when its transport is full; none drops.  A cell counts
 * what the readers received, and fails unless that equals what the writers
 * wrote, gap-free and in order per writer (and, for evring, gap-free in
 * seq per partition).  Throughput is records received over the time from the
 * common start to the last record received.  Repetitions are interleaved
 * (every cell of a repetition runs before the next repetition starts, in a
 * rotated method order) so that noise on a shared machine falls on all
 * methods alike; the report gives medians.  Nothing here asserts a speed.
 *
 * Usage: kmod_bench [-l PARAMS] [-d SECONDS] [-r REPS] [-s SIZES]
 *		     [-w WRITERS] [-m METHODS] [-o DIR]
 *	-l	(re)load evring.ko ($EVRING_KO, else ./evring.ko) with PARAMS
 *		first, unload it at the end
 *	-s, -w, -m take comma-separated lists
 *	-o	write kmod_bench.tsv (every run), kmod_bench.json (medians)
 *		and kmod_bench.md (the table printed on stdout) into DIR
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
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

#define BENCH_BATCH		64	/* records per batch call */
#define BENCH_MAX_WRITERS	8
#define BENCH_MAX_SIZES		8
#define BENCH_MAX_REPS		50
#define BENCH_MAGIC		0x6576726eu	/* "evrn" */
#define BENCH_READ_BUF		(1u << 20)	/* pipe reader's buffer */
#define BENCH_DGRAM_BUF		65536
#define BENCH_WATCHDOG_S	120	/* beyond the cell's own duration */

enum bench_method {
	M_EVRING_WRITE,
	M_EVRING_BATCH,
	M_UNIX_DGRAM,
	M_UNIX_MMSG,
	M_PIPE,
	M_NR,
};

static const struct {
	const char *name;
	const char *label;
	bool evring;
	bool batch;
} bench_methods[M_NR] = {
	[M_EVRING_WRITE] = { "evring-write", "evring write(2)", true, false },
	[M_EVRING_BATCH] = { "evring-batch", "evring WRITE_BATCH x64", true, true },
	[M_UNIX_DGRAM] = { "unix-dgram", "AF_UNIX dgram send(2)", false, false },
	[M_UNIX_MMSG] = { "unix-mmsg", "AF_UNIX dgram sendmmsg x64", false, true },
	[M_PIPE] = { "pipe", "pipe write(2)", false, false },
};

/* The first bytes of every record's payload: who wrote it, which one. */
struct bench_hdr {
	uint32_t magic;
	uint32_t writer;
	uint64_t counter;	/* 0, 1, 2, ... per writer and cell */
};

/*
 * Shared by the parent and the children of one cell (MAP_SHARED).  Each
 * field has one writer: the parent writes t0/deadline before the start and
 * expected/writers_done after the writers exit; writer i writes written[i];
 * reader i writes received[i] and t_last_ns[i].
 */
struct bench_shm {
	uint64_t t0_ns;
	uint64_t deadline_ns;
	uint64_t written[BENCH_MAX_WRITERS];
	uint64_t expected[BENCH_MAX_WRITERS];
	uint64_t received[BENCH_MAX_WRITERS];
	uint64_t t_last_ns[BENCH_MAX_WRITERS];
	int writers_done;	/* store-release after expected[] */
};

struct bench_cell {
	enum bench_method m;
	unsigned int size;
	unsigned int nwriters;
	double secs;
};

struct bench_result {
	bool ok;
	bool have_stats;
	uint64_t events;
	double elapsed_s;
	uint64_t wakeups;	/* EVRING_A_WAKEUPS delta, used partitions */
	uint64_t produced;	/* EVRING_A_PRODUCED delta */
	uint64_t blocks;	/* EVRING_A_BLOCKS delta */
};

/* What a cell's processes share besides the shm: the transport. */
struct bench_xport {
	int pipe_fd[2];		/* M_PIPE */
	int sock_fd;		/* the bound reader socket, unix methods */
	struct sockaddr_un addr;
	int pipe_size;
};

static struct {
	double secs;
	unsigned int reps;
	unsigned int sizes[BENCH_MAX_SIZES];
	unsigned int nsizes;
	unsigned int writers[BENCH_MAX_WRITERS];
	unsigned int nwriters;
	bool method_on[M_NR];
	const char *load_params;
	const char *outdir;
	unsigned int nr_partitions;
	unsigned int ring_size;
	int unix_qlen;
	int pipe_size;
} opt = {
	.secs = 1.5,
	.reps = 5,
};

static volatile sig_atomic_t watchdog_fired;

static void hdr_put(void *buf, unsigned int writer, uint64_t counter)
{
	struct bench_hdr h = {
		.magic = BENCH_MAGIC, .writer = writer, .counter = counter,
	};

	memcpy(buf, &h, sizeof(h));
}

/*
 * Check one received payload against the per-writer counters in @next.
 * Returns 0, or -EBADMSG naming the first mismatch on stderr.
 */
static int hdr_check(const void *buf, unsigned int nwriters, uint64_t *next)
{
	struct bench_hdr h;

	memcpy(&h, buf, sizeof(h));
	if (h.magic != BENCH_MAGIC || h.writer >= nwriters) {
		fprintf(stderr, "kmod_bench: foreign record (magic %#x writer %u)\n",
			h.magic, h.writer);
		return -EBADMSG;
	}
	if (h.counter != next[h.writer]) {
		fprintf(stderr, "kmod_bench: writer %u: got record %" PRIu64
			", expected %" PRIu64 "\n", h.writer, h.counter,
			next[h.writer]);
		return -EBADMSG;
	}
	next[h.writer]++;
	return 0;
}

/* --- writers ----------------------------------------------------------- */

/* Open writer @idx's end of the transport; returns an fd or -errno. */
static int writer_open(const struct bench_cell *c, unsigned int idx,
		       const struct bench_xport *x)
{
	struct evring_key key = { .key = idx, .mode = EVRING_KEY_PARTITION };
	int fd;

	switch (c->m) {
	case M_EVRING_WRITE:
	case M_EVRING_BATCH:
		fd = open(EVRING_DEV_PATH, O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		if (ioctl(fd, EVRING_IOC_SET_KEY, &key)) {
			close(fd);
			return -errno;
		}
		return fd;
	case M_UNIX_DGRAM:
	case M_UNIX_MMSG:
		fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		if (connect(fd, (const struct sockaddr *)&x->addr,
			    sizeof(x->addr))) {
			close(fd);
			return -errno;
		}
		return fd;
	case M_PIPE:
		return x->pipe_fd[1];
	default:
		return -EINVAL;
	}
}

/* One record per call until the deadline; returns records written or -errno. */
static int64_t writer_loop_single(const struct bench_cell *c, unsigned int idx,
				  int fd, uint64_t deadline)
{
	char *buf = calloc(1, c->size);
	uint64_t n = 0;
	ssize_t r;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		if (!(n & 15) && now_ns() >= deadline)
			break;
		hdr_put(buf, idx, n);
		r = write(fd, buf, c->size);
		if (r < 0 && errno == EINTR)
			continue;
		if (r != (ssize_t)c->size) {
			r = r < 0 ? -errno : -EIO;
			free(buf);
			return r;
		}
		n++;
	}
	free(buf);
	return n;
}

/*
 * BENCH_BATCH records per call until the deadline.  A call may take fewer
 * than it was offered; the rest are offered again, so the counters the
 * readers see stay gap-free.  Returns records written or -errno.
 */
static int64_t writer_loop_batch(const struct bench_cell *c, unsigned int idx,
				 int fd, uint64_t deadline)
{
	struct evring_iovec iov[BENCH_BATCH];
	struct mmsghdr msg[BENCH_BATCH];
	struct iovec siov[BENCH_BATCH];
	char *buf = calloc(BENCH_BATCH, c->size);
	unsigned int off = BENCH_BATCH;
	uint64_t n = 0;
	int r;

	if (!buf)
		return -ENOMEM;
	memset(iov, 0, sizeof(iov));
	memset(msg, 0, sizeof(msg));
	for (unsigned int i = 0; i < BENCH_BATCH; i++) {
		iov[i].base = (uintptr_t)(buf + (size_t)i * c->size);
		iov[i].len = c->size;
		siov[i].iov_base = buf + (size_t)i * c->size;
		siov[i].iov_len = c->size;
		msg[i].msg_hdr.msg_iov = &siov[i];
		msg[i].msg_hdr.msg_iovlen = 1;
	}
	for (;;) {
		if (off == BENCH_BATCH) {
			if (now_ns() >= deadline)
				break;
			for (unsigned int i = 0; i < BENCH_BATCH; i++)
				hdr_put(buf + (size_t)i * c->size, idx, n + i);
			off = 0;
		}
		if (c->m == M_EVRING_BATCH) {
			struct evring_batch b = {
				.records = (uintptr_t)&iov[off],
				.count = BENCH_BATCH - off,
			};

			r = ioctl(fd, EVRING_IOC_WRITE_BATCH, &b);
		} else {
			r = sendmmsg(fd, &msg[off], BENCH_BATCH - off, 0);
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || r > (int)(BENCH_BATCH - off)) {
			r = r < 0 ? -errno : -EIO;
			free(buf);
			return r;
		}
		off += r;
		n += r;
	}
	free(buf);
	return n;
}

/* A writer process: open, say ready, wait for the start, write, report. */
static int writer_main(const struct bench_cell *c, unsigned int idx,
		       const struct bench_xport *x, struct bench_shm *shm,
		       int ready_fd, int go_fd)
{
	char b;
	int64_t n;
	int fd;

	fd = writer_open(c, idx, x);
	if (fd < 0) {
		fprintf(stderr, "kmod_bench: writer %u: open: %s\n", idx,
			strerror(-fd));
		return 1;
	}
	if (write(ready_fd, "w", 1) != 1)
		return 1;
	if (read(go_fd, &b, 1) != 0)	/* EOF is the start signal */
		return 1;
	if (bench_methods[c->m].batch)
		n = writer_loop_batch(c, idx, fd, shm->deadline_ns);
	else
		n = writer_loop_single(c, idx, fd, shm->deadline_ns);
	if (n < 0) {
		fprintf(stderr, "kmod_bench: writer %u: %s: %s\n", idx,
			bench_methods[c->m].name, strerror((int)-n));
		return 1;
	}
	shm->written[idx] = n;
	return 0;
}

/* --- readers ----------------------------------------------------------- */

/* Whether the parent has published expected[] (all writers are gone). */
static bool writers_done(struct bench_shm *shm)
{
	/* pairs with the store-release in run_cell() */
	return __atomic_load_n(&shm->writers_done, __ATOMIC_ACQUIRE);
}

/* A reader that saw its end before the parent reaped the writers waits. */
static void wait_writers_done(struct bench_shm *shm)
{
	while (!writers_done(shm))
		nanosleep(&(struct timespec){ .tv_nsec = 1000 * 1000 }, NULL);
}

/*
 * The evring consumer of partition @idx: drain with evring_consumer_next
 * until NULL, release what it took, wait; stop once the parent says how
 * many records the partition's writer wrote and all of them are in.
 */
static int reader_evring(const struct bench_cell *c, unsigned int idx,
			 struct bench_shm *shm, int ready_fd)
{
	const struct evring_rec *rec;
	struct evring_consumer *cons;
	uint64_t next_ctr[BENCH_MAX_WRITERS] = { 0 };
	uint64_t n = 0, got, next_seq = 0;
	int ret;

	ret = evring_consumer_open(NULL, idx, &cons);
	if (ret) {
		fprintf(stderr, "kmod_bench: consumer %u: attach: %s\n", idx,
			strerror(-ret));
		return 1;
	}
	if (write(ready_fd, "r", 1) != 1)
		return 1;
	next_ctr[idx] = 0;
	for (;;) {
		got = 0;
		while ((rec = evring_consumer_next(cons))) {
			if (rec->len != c->size ||
			    (next_seq && rec->seq != next_seq)) {
				fprintf(stderr, "kmod_bench: consumer %u: record len %u seq %llu, expected len %u seq %" PRIu64 "\n",
					idx, rec->len,
					(unsigned long long)rec->seq, c->size,
					next_seq);
				return 1;
			}
			next_seq = rec->seq + 1;
			if (hdr_check(rec + 1, c->nwriters, next_ctr))
				return 1;
			got++;
		}
		if (got) {
			n += got;
			ret = evring_consumer_release(cons,
						      evring_consumer_pos(cons));
			if (ret) {
				fprintf(stderr, "kmod_bench: consumer %u: release: %s\n",
					idx, strerror(-ret));
				return 1;
			}
			__atomic_store_n(&shm->t_last_ns[idx], now_ns(),
					 __ATOMIC_RELAXED);
		}
		if (writers_done(shm) && n >= shm->expected[idx])
			break;
		ret = evring_consumer_wait(cons, 10);
		if (ret < 0) {
			fprintf(stderr, "kmod_bench: consumer %u: wait: %s\n",
				idx, strerror(-ret));
			return 1;
		}
	}
	shm->received[idx] = n;
	evring_consumer_close(cons);
	if (next_ctr[idx] != n || n != shm->expected[idx]) {
		fprintf(stderr, "kmod_bench: consumer %u: %" PRIu64 " records, writer wrote %" PRIu64 "\n",
			idx, n, shm->expected[idx]);
		return 1;
	}
	return 0;
}

/* The datagram reader: recv(2) until the parent's one-byte end marker. */
static int reader_unix(const struct bench_cell *c, const struct bench_xport *x,
		       struct bench_shm *shm, int ready_fd)
{
	uint64_t next_ctr[BENCH_MAX_WRITERS] = { 0 };
	char *buf = malloc(BENCH_DGRAM_BUF);
	uint64_t n = 0;
	ssize_t r;

	if (!buf || write(ready_fd, "r", 1) != 1)
		return 1;
	for (;;) {
		r = recv(x->sock_fd, buf, BENCH_DGRAM_BUF, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 1)
			break;
		if (r != (ssize_t)c->size) {
			fprintf(stderr, "kmod_bench: unix reader: recv %zd: %s\n",
				r, r < 0 ? strerror(errno) : "wrong size");
			return 1;
		}
		shm->t_last_ns[0] = now_ns();
		if (hdr_check(buf, c->nwriters, next_ctr))
			return 1;
		n++;
	}
	shm->received[0] = n;
	free(buf);
	wait_writers_done(shm);
	if (n != shm->expected[0]) {
		fprintf(stderr, "kmod_bench: unix reader: %" PRIu64 " records, writers wrote %" PRIu64 "\n",
			n, shm->expected[0]);
		return 1;
	}
	return 0;
}

/*
 * The pipe reader: read(2) into a buffer as big as the pipe, split the
 * stream into records (writes of <= PIPE_BUF bytes are atomic, so records
 * of different writers never interleave) until EOF.
 */
static int reader_pipe(const struct bench_cell *c, const struct bench_xport *x,
		       struct bench_shm *shm, int ready_fd)
{
	uint64_t next_ctr[BENCH_MAX_WRITERS] = { 0 };
	char *buf = malloc(BENCH_READ_BUF);
	size_t have = 0, off;
	uint64_t n = 0;
	ssize_t r;

	if (!buf || write(ready_fd, "r", 1) != 1)
		return 1;
	for (;;) {
		r = read(x->pipe_fd[0], buf + have, BENCH_READ_BUF - have);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			fprintf(stderr, "kmod_bench: pipe reader: %s\n",
				strerror(errno));
			return 1;
		}
		if (r == 0)
			break;
		shm->t_last_ns[0] = now_ns();
		have += r;
		for (off = 0; have - off >= c->size; off += c->size) {
			if (hdr_check(buf + off, c->nwriters, next_ctr))
				return 1;
			n++;
		}
		memmove(buf, buf + off, have - off);
		have -= off;
	}
	shm->received[0] = n;
	free(buf);
	wait_writers_done(shm);
	if (have || n != shm->expected[0]) {
		fprintf(stderr, "kmod_bench: pipe reader: %" PRIu64 " records (+%zu bytes), writers wrote %" PRIu64 "\n",
			n, have, shm->expected[0]);
		return 1;
	}
	return 0;
}

/* --- one cell ------------------------------------------------------------ */

static unsigned int cell_nreaders(const struct bench_cell *c)
{
	return bench_methods[c->m].evring ? c->nwriters : 1;
}

/* Reader of writer @w's records. */
static unsigned int cell_reader_of(const struct bench_cell *c, unsigned int w)
{
	return bench_methods[c->m].evring ? w : 0;
}

static int xport_init(const struct bench_cell *c, struct bench_xport *x)
{
	*x = (struct bench_xport){ .pipe_fd = { -1, -1 }, .sock_fd = -1 };
	switch (c->m) {
	case M_PIPE:
		if (pipe2(x->pipe_fd, O_CLOEXEC))
			return -errno;
		/* as much buffer as an evring partition, where allowed */
		if (opt.ring_size)
			fcntl(x->pipe_fd[1], F_SETPIPE_SZ, opt.ring_size);
		x->pipe_size = fcntl(x->pipe_fd[1], F_GETPIPE_SZ);
		return 0;
	case M_UNIX_DGRAM:
	case M_UNIX_MMSG:
		x->addr.sun_family = AF_UNIX;
		snprintf(x->addr.sun_path, sizeof(x->addr.sun_path),
			 "/tmp/kmod_bench.%d.sock", (int)getpid());
		unlink(x->addr.sun_path);
		x->sock_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (x->sock_fd < 0)
			return -errno;
		if (bind(x->sock_fd, (const struct sockaddr *)&x->addr,
			 sizeof(x->addr)))
			return -errno;
		return 0;
	default:
		return 0;
	}
}

static void xport_fini(struct bench_xport *x)
{
	if (x->pipe_fd[0] >= 0)
		close(x->pipe_fd[0]);
	if (x->pipe_fd[1] >= 0)
		close(x->pipe_fd[1]);
	if (x->sock_fd >= 0) {
		close(x->sock_fd);
		unlink(x->addr.sun_path);
	}
}

static void on_alarm(int sig)
{
	watchdog_fired = 1;
}

/*
 * Reap @pids[0..n); a child that is still there when the watchdog fires is
 * killed.  Returns true when every child exited with status 0 in time.
 */
static bool reap(pid_t *pids, unsigned int n, unsigned int timeout_s)
{
	bool ok = true;
	int st;

	watchdog_fired = 0;
	alarm(timeout_s);
	for (unsigned int i = 0; i < n; i++) {
		while (waitpid(pids[i], &st, 0) < 0) {
			if (errno != EINTR)
				return false;
			if (!watchdog_fired)
				continue;
			for (unsigned int j = i; j < n; j++) {
				fprintf(stderr, "kmod_bench: child %d hung, killing it\n",
					(int)pids[j]);
				kill(pids[j], SIGKILL);
			}
		}
		if (!WIFEXITED(st) || WEXITSTATUS(st))
			ok = false;
	}
	alarm(0);
	return ok;
}

/* Sum the evring counters of partitions [0, n) into @r (as a baseline if neg). */
static int stats_sum(struct evring_nl *nl, unsigned int n, int sign,
		     struct bench_result *r)
{
	struct evring_part_stats st;
	int ret;

	for (unsigned int p = 0; p < n; p++) {
		ret = evring_nl_stats(nl, p, &st);
		if (ret)
			return ret;
		r->wakeups += sign * st.wakeups;
		r->produced += sign * st.produced;
		r->blocks += sign * st.blocks;
	}
	return 0;
}

static pid_t spawn(int (*fn)(const struct bench_cell *, unsigned int,
			     const struct bench_xport *, struct bench_shm *,
			     int, int),
		   const struct bench_cell *c, unsigned int idx,
		   const struct bench_xport *x, struct bench_shm *shm,
		   int ready[2], int go[2])
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		/* children already started stop at once: the deadline is 0 */
		fprintf(stderr, "kmod_bench: fork: %s\n", strerror(errno));
		exit(1);
	}
	if (pid)
		return pid;
	close(ready[0]);
	close(go[1]);
	_exit(fn(c, idx, x, shm, ready[1], go[0]));
}

static int writer_child(const struct bench_cell *c, unsigned int idx,
			const struct bench_xport *x, struct bench_shm *shm,
			int ready_fd, int go_fd)
{
	if (x->pipe_fd[0] >= 0)
		close(x->pipe_fd[0]);
	if (x->sock_fd >= 0)
		close(x->sock_fd);
	return writer_main(c, idx, x, shm, ready_fd, go_fd);
}

static int reader_child(const struct bench_cell *c, unsigned int idx,
			const struct bench_xport *x, struct bench_shm *shm,
			int ready_fd, int go_fd)
{
	close(go_fd);
	if (x->pipe_fd[1] >= 0)
		close(x->pipe_fd[1]);	/* else EOF never comes */
	switch (c->m) {
	case M_PIPE:
		return reader_pipe(c, x, shm, ready_fd);
	case M_UNIX_DGRAM:
	case M_UNIX_MMSG:
		return reader_unix(c, x, shm, ready_fd);
	default:
		return reader_evring(c, idx, shm, ready_fd);
	}
}

/* The unix reader's end marker: one byte, after every writer has gone. */
static int send_end_marker(const struct bench_xport *x)
{
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int ret = 0;

	if (fd < 0)
		return -errno;
	if (sendto(fd, "E", 1, 0, (const struct sockaddr *)&x->addr,
		   sizeof(x->addr)) != 1)
		ret = -errno;
	close(fd);
	return ret;
}

/*
 * Run one cell: readers first (attached and ready), then writers, a common
 * start, writers until the deadline, then readers until they hold all.
 * Returns 0 with @res filled (res->ok false when data went missing or a
 * process failed), or -errno when the cell could not be set up.
 */
static int run_cell(const struct bench_cell *c, struct evring_nl *nl,
		    struct bench_result *res)
{
	unsigned int nreaders = cell_nreaders(c), nready = 0;
	pid_t rpid[BENCH_MAX_WRITERS], wpid[BENCH_MAX_WRITERS];
	bool evr = bench_methods[c->m].evring;
	struct bench_result r = { .ok = true };
	struct bench_xport x;
	struct bench_shm *shm;
	uint64_t t_last = 0, sent = 0, got = 0;
	int ready[2], go[2], ret;
	char b;

	shm = mmap(NULL, sizeof(*shm), PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shm == MAP_FAILED)
		return -errno;
	ret = xport_init(c, &x);
	if (ret)
		goto out_xport;
	opt.pipe_size = x.pipe_size ? x.pipe_size : opt.pipe_size;
	if (pipe2(ready, O_CLOEXEC)) {
		ret = -errno;
		goto out_xport;
	}
	if (pipe2(go, O_CLOEXEC)) {
		ret = -errno;
		goto out_ready;
	}

	for (unsigned int i = 0; i < nreaders; i++)
		rpid[i] = spawn(reader_child, c, i, &x, shm, ready, go);
	for (unsigned int i = 0; i < c->nwriters; i++)
		wpid[i] = spawn(writer_child, c, i, &x, shm, ready, go);
	close(ready[1]);
	if (x.pipe_fd[1] >= 0) {
		close(x.pipe_fd[1]);
		x.pipe_fd[1] = -1;
	}
	while (nready < nreaders + c->nwriters && read(ready[0], &b, 1) == 1)
		nready++;
	if (evr && nl && !stats_sum(nl, c->nwriters, -1, &r))
		r.have_stats = true;
	shm->t0_ns = now_ns();
	shm->deadline_ns = shm->t0_ns + (uint64_t)(c->secs * 1e9);
	if (nready < nreaders + c->nwriters) {
		/* a child failed to set up: writers stop at once, reap all */
		r.ok = false;
		shm->deadline_ns = shm->t0_ns;
	}
	close(go[1]);		/* start */

	if (!reap(wpid, c->nwriters, (unsigned int)c->secs + BENCH_WATCHDOG_S))
		r.ok = false;
	for (unsigned int i = 0; i < c->nwriters; i++) {
		shm->expected[cell_reader_of(c, i)] += shm->written[i];
		sent += shm->written[i];
	}
	/* pairs with the load-acquire in writers_done() */
	__atomic_store_n(&shm->writers_done, 1, __ATOMIC_RELEASE);
	if (x.sock_fd >= 0 && send_end_marker(&x))
		r.ok = false;
	if (!reap(rpid, nreaders, BENCH_WATCHDOG_S))
		r.ok = false;

	for (unsigned int i = 0; i < nreaders; i++) {
		got += shm->received[i];
		if (shm->t_last_ns[i] > t_last)
			t_last = shm->t_last_ns[i];
	}
	if (got != sent || !t_last) {
		fprintf(stderr, "kmod_bench: %s %uB x%u: received %" PRIu64 " of %" PRIu64 " records\n",
			bench_methods[c->m].name, c->size, c->nwriters, got,
			sent);
		r.ok = false;
	}
	if (r.have_stats && stats_sum(nl, c->nwriters, 1, &r))
		r.have_stats = false;
	r.events = got;
	r.elapsed_s = t_last > shm->t0_ns ? (t_last - shm->t0_ns) / 1e9 : 0;
	*res = r;
	ret = 0;

	close(go[0]);
out_ready:
	close(ready[0]);
out_xport:
	xport_fini(&x);
	munmap(shm, sizeof(*shm));
	return ret;
}

/* --- the report ---------------------------------------------------------- */

struct bench_summary {
	bool ran;
	bool ok;		/* every repetition delivered everything */
	double eps_med, eps_min, eps_max;
	double mbs_med;
	double wake_med;	/* wake-ups per record, < 0 when unknown */
};

static void summarize(const struct bench_result *runs, unsigned int n,
		      unsigned int size, struct bench_summary *s)
{
	double eps[BENCH_MAX_REPS], wake[BENCH_MAX_REPS];
	unsigned int nw = 0;

	*s = (struct bench_summary){ .ran = n > 0, .ok = true, .wake_med = -1 };
	for (unsigned int i = 0; i < n; i++) {
		s->ok &= runs[i].ok;
		eps[i] = runs[i].elapsed_s > 0 ?
			 runs[i].events / runs[i].elapsed_s : 0;
		if (runs[i].have_stats && runs[i].events)
			wake[nw++] = (double)runs[i].wakeups / runs[i].events;
	}
	if (!n)
		return;
	s->eps_med = median(eps, n);
	s->eps_min = eps[0];
	s->eps_max = eps[n - 1];
	s->mbs_med = s->eps_med * size / 1e6;
	if (nw)
		s->wake_med = median(wake, nw);
}

static const char *size_label(unsigned int size, char *buf, size_t len)
{
	if (size >= 1048576 && !(size % 1048576))
		snprintf(buf, len, "%u MiB", size / 1048576);
	else if (size >= 1024 && !(size % 1024))
		snprintf(buf, len, "%u KiB", size / 1024);
	else
		snprintf(buf, len, "%u B", size);
	return buf;
}

static void ratio_cell(FILE *f, const struct bench_summary *num,
		       const struct bench_summary *den)
{
	if (num->ran && den->ran && num->ok && den->ok && den->eps_med > 0)
		fprintf(f, " %.2f× |", num->eps_med / den->eps_med);
	else
		fprintf(f, " n/a |");
}

static void print_markdown(FILE *f, struct bench_summary (*sum)[BENCH_MAX_WRITERS][M_NR])
{
	char sb[32], r1[32], r2[32], r3[32];

	fprintf(f, "| record | writers | method | events/s | MB/s | events/s min–max | wake-ups/record |\n");
	fprintf(f, "|---:|---:|---|---:|---:|---:|---:|\n");
	for (unsigned int si = 0; si < opt.nsizes; si++)
		for (unsigned int wi = 0; wi < opt.nwriters; wi++)
			for (unsigned int m = 0; m < M_NR; m++) {
				const struct bench_summary *s = &sum[si][wi][m];

				if (!s->ran)
					continue;
				fprintf(f, "| %s | %u | %s |",
					size_label(opt.sizes[si], sb, sizeof(sb)),
					opt.writers[wi], bench_methods[m].label);
				if (!s->ok) {
					fprintf(f, " FAILED (lost or bad records) | | | |\n");
					continue;
				}
				fprintf(f, " %s | %.1f | %s–%s |",
					rate_label(s->eps_med, r1, sizeof(r1)),
					s->mbs_med,
					rate_label(s->eps_min, r2, sizeof(r2)),
					rate_label(s->eps_max, r3, sizeof(r3)));
				if (s->wake_med >= 0)
					fprintf(f, " %.4f |\n", s->wake_med);
				else
					fprintf(f, " – |\n");
			}

	fprintf(f, "\nRatios of median events/s:\n\n");
	fprintf(f, "| record | writers | evring write / AF_UNIX dgram | evring batch / AF_UNIX dgram | evring batch / AF_UNIX sendmmsg | evring write / pipe |\n");
	fprintf(f, "|---:|---:|---:|---:|---:|---:|\n");
	for (unsigned int si = 0; si < opt.nsizes; si++)
		for (unsigned int wi = 0; wi < opt.nwriters; wi++) {
			struct bench_summary *s = sum[si][wi];

			fprintf(f, "| %s | %u |",
				size_label(opt.sizes[si], sb, sizeof(sb)),
				opt.writers[wi]);
			ratio_cell(f, &s[M_EVRING_WRITE], &s[M_UNIX_DGRAM]);
			ratio_cell(f, &s[M_EVRING_BATCH], &s[M_UNIX_DGRAM]);
			ratio_cell(f, &s[M_EVRING_BATCH], &s[M_UNIX_MMSG]);
			ratio_cell(f, &s[M_EVRING_WRITE], &s[M_PIPE]);
			fprintf(f, "\n");
		}
}

static void json_ratio(FILE *f, const char *key, const struct bench_summary *num,
		       const struct bench_summary *den, bool comma)
{
	if (num->ran && den->ran && num->ok && den->ok && den->eps_med > 0)
		fprintf(f, "\"%s\": %.4f%s", key, num->eps_med / den->eps_med,
			comma ? ", " : "");
	else
		fprintf(f, "\"%s\": null%s", key, comma ? ", " : "");
}

static void print_json(FILE *f, struct bench_summary (*sum)[BENCH_MAX_WRITERS][M_NR],
		       const char *date, const char *kernel, long cpus)
{
	bool first = true;

	fprintf(f, "{\n  \"date\": \"%s\",\n  \"kernel\": \"%s\",\n  \"cpus\": %ld,\n",
		date, kernel, cpus);
	fprintf(f, "  \"seconds_per_cell\": %.3f,\n  \"repetitions\": %u,\n",
		opt.secs, opt.reps);
	fprintf(f, "  \"module_params\": \"%s\",\n  \"nr_partitions\": %u,\n  \"ring_size\": %u,\n",
		opt.load_params ? opt.load_params : "", opt.nr_partitions,
		opt.ring_size);
	fprintf(f, "  \"batch\": %d,\n  \"unix_max_dgram_qlen\": %d,\n  \"pipe_size\": %d,\n",
		BENCH_BATCH, opt.unix_qlen, opt.pipe_size);
	fprintf(f, "  \"cells\": [");
	for (unsigned int si = 0; si < opt.nsizes; si++)
		for (unsigned int wi = 0; wi < opt.nwriters; wi++)
			for (unsigned int m = 0; m < M_NR; m++) {
				const struct bench_summary *s = &sum[si][wi][m];

				if (!s->ran)
					continue;
				fprintf(f, "%s\n    {\"method\": \"%s\", \"size\": %u, \"writers\": %u, \"ok\": %s, \"events_per_s\": %.0f, \"events_per_s_min\": %.0f, \"events_per_s_max\": %.0f, \"mb_per_s\": %.3f, ",
					first ? "" : ",", bench_methods[m].name,
					opt.sizes[si], opt.writers[wi],
					s->ok ? "true" : "false", s->eps_med,
					s->eps_min, s->eps_max, s->mbs_med);
				if (s->wake_med >= 0)
					fprintf(f, "\"wakeups_per_record\": %.6f}",
						s->wake_med);
				else
					fprintf(f, "\"wakeups_per_record\": null}");
				first = false;
			}
	fprintf(f, "\n  ],\n  \"ratios\": [");
	first = true;
	for (unsigned int si = 0; si < opt.nsizes; si++)
		for (unsigned int wi = 0; wi < opt.nwriters; wi++) {
			struct bench_summary *s = sum[si][wi];

			fprintf(f, "%s\n    {\"size\": %u, \"writers\": %u, ",
				first ? "" : ",", opt.sizes[si], opt.writers[wi]);
			json_ratio(f, "evring_write_vs_unix_dgram",
				   &s[M_EVRING_WRITE], &s[M_UNIX_DGRAM], true);
			json_ratio(f, "evring_batch_vs_unix_dgram",
				   &s[M_EVRING_BATCH], &s[M_UNIX_DGRAM], true);
			json_ratio(f, "evring_batch_vs_unix_mmsg",
				   &s[M_EVRING_BATCH], &s[M_UNIX_MMSG], true);
			json_ratio(f, "evring_write_vs_pipe",
				   &s[M_EVRING_WRITE], &s[M_PIPE], false);
			fprintf(f, "}");
			first = false;
		}
	fprintf(f, "\n  ]\n}\n");
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
		fprintf(stderr, "kmod_bench: cannot write '%s': %s\n", path,
			strerror(errno));
	return f;
}

/* --- options and main ---------------------------------------------------- */

static int parse_methods(const char *arg)
{
	char *s = strdup(arg), *save = NULL, *tok;
	int ret = 0;

	if (!s)
		return -ENOMEM;
	memset(opt.method_on, 0, sizeof(opt.method_on));
	for (tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		unsigned int m;

		for (m = 0; m < M_NR; m++)
			if (!strcmp(tok, bench_methods[m].name))
				break;
		if (m == M_NR) {
			fprintf(stderr, "kmod_bench: unknown method '%s'\n", tok);
			ret = -EINVAL;
			break;
		}
		opt.method_on[m] = true;
	}
	free(s);
	return ret;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: kmod_bench [-l PARAMS] [-d SECONDS] [-r REPS] [-s SIZES] [-w WRITERS]\n"
		"                  [-m METHODS] [-o DIR]\n"
		"methods: evring-write,evring-batch,unix-dgram,unix-mmsg,pipe\n");
}

static int parse_args(int argc, char **argv)
{
	char *end;
	int ch, n;

	opt.sizes[0] = 64;
	opt.sizes[1] = 256;
	opt.sizes[2] = 4096;
	opt.nsizes = 3;
	opt.writers[0] = 1;
	opt.writers[1] = 2;
	opt.nwriters = 2;
	for (unsigned int m = 0; m < M_NR; m++)
		opt.method_on[m] = true;

	while ((ch = getopt(argc, argv, "l:d:r:s:w:m:o:h")) != -1) {
		switch (ch) {
		case 'l':
			opt.load_params = optarg;
			break;
		case 'd':
			errno = 0;
			opt.secs = strtod(optarg, &end);
			if (errno || end == optarg || *end || opt.secs < 0.05 ||
			    opt.secs > 600) {
				fprintf(stderr, "kmod_bench: bad duration '%s'\n", optarg);
				return -EINVAL;
			}
			break;
		case 'r':
			if (parse_uint(optarg, BENCH_MAX_REPS, &opt.reps) ||
			    !opt.reps) {
				fprintf(stderr, "kmod_bench: bad repetitions '%s'\n", optarg);
				return -EINVAL;
			}
			break;
		case 's':
			/* PIPE_BUF bounds the pipe's atomic writes */
			n = parse_list(optarg, sizeof(struct bench_hdr), PIPE_BUF,
				       opt.sizes, BENCH_MAX_SIZES);
			if (n < 0) {
				fprintf(stderr, "kmod_bench: bad sizes '%s' (each %zu..%d)\n",
					optarg, sizeof(struct bench_hdr), PIPE_BUF);
				return n;
			}
			opt.nsizes = n;
			break;
		case 'w':
			n = parse_list(optarg, 1, BENCH_MAX_WRITERS, opt.writers,
				       BENCH_MAX_WRITERS);
			if (n < 0) {
				fprintf(stderr, "kmod_bench: bad writer counts '%s' (each 1..%d)\n",
					optarg, BENCH_MAX_WRITERS);
				return n;
			}
			opt.nwriters = n;
			break;
		case 'm':
			if (parse_methods(optarg))
				return -EINVAL;
			break;
		case 'o':
			opt.outdir = optarg;
			break;
		default:
			usage();
			return -EINVAL;
		}
	}
	if (optind != argc) {
		usage();
		return -EINVAL;
	}
	return 0;
}

static int read_proc_int(const char *path)
{
	FILE *f = fopen(path, "re");
	int v = -1;

	if (f) {
		if (fscanf(f, "%d", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static bool any_evring_method(void)
{
	return opt.method_on[M_EVRING_WRITE] || opt.method_on[M_EVRING_BATCH];
}

/* Learn the partition count and ring size from the device itself. */
static int evring_probe(void)
{
	struct evring_info info;
	int fd, ret = 0;

	fd = open(EVRING_DEV_PATH, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ioctl(fd, EVRING_IOC_INFO, &info))
		ret = -errno;
	close(fd);
	if (ret)
		return ret;
	opt.nr_partitions = info.nr_partitions;
	opt.ring_size = info.ring_size;
	return 0;
}

int main(int argc, char **argv)
{
	static struct bench_result runs[BENCH_MAX_SIZES][BENCH_MAX_WRITERS][M_NR][BENCH_MAX_REPS];
	static struct bench_summary sum[BENCH_MAX_SIZES][BENCH_MAX_WRITERS][M_NR];
	struct evring_nl *nl = NULL;
	char date[64], sb[32], r1[32];
	unsigned int nmethods = 0, failed = 0;
	struct utsname uts;
	FILE *tsv, *f;
	time_t t;
	int ret;

	if (parse_args(argc, argv))
		return 2;
	for (unsigned int m = 0; m < M_NR; m++)
		nmethods += opt.method_on[m];
	t = time(NULL);
	strftime(date, sizeof(date), "%Y-%m-%d %H:%M UTC", gmtime(&t));
	uname(&uts);

	if (opt.load_params) {
		ret = evring_module_load(opt.load_params);
		if (ret) {
			fprintf(stderr, "kmod_bench: cannot load '%s' with '%s': %s\n",
				evring_ko_path(), opt.load_params, strerror(-ret));
			return 1;
		}
	}
	if (any_evring_method()) {
		ret = evring_probe();
		if (ret) {
			fprintf(stderr, "kmod_bench: cannot open '%s': %s\n",
				EVRING_DEV_PATH, strerror(-ret));
			return 1;
		}
		for (unsigned int wi = 0; wi < opt.nwriters; wi++)
			if (opt.writers[wi] > opt.nr_partitions) {
				fprintf(stderr, "kmod_bench: %u writers need %u partitions, the module has %u\n",
					opt.writers[wi], opt.writers[wi],
					opt.nr_partitions);
				return 1;
			}
		ret = evring_nl_open(&nl);
		if (ret)
			fprintf(stderr, "kmod_bench: no netlink stats, wake-ups not counted: %s\n",
				strerror(-ret));
	}
	opt.unix_qlen = read_proc_int("/proc/sys/net/unix/max_dgram_qlen");
	signal(SIGPIPE, SIG_IGN);
	sigaction(SIGALRM, &(struct sigaction){ .sa_handler = on_alarm }, NULL);

	tsv = out_open("kmod_bench.tsv");
	if (tsv)
		fprintf(tsv, "rep\tmethod\tsize\twriters\tok\tevents\telapsed_s\tevents_per_s\tmb_per_s\twakeups\tproduced\tblocks\n");

	for (unsigned int rep = 0; rep < opt.reps; rep++)
		for (unsigned int si = 0; si < opt.nsizes; si++)
			for (unsigned int wi = 0; wi < opt.nwriters; wi++)
				for (unsigned int k = 0; k < M_NR; k++) {
					enum bench_method m = (k + rep) % M_NR;
					struct bench_cell c = {
						.m = m, .size = opt.sizes[si],
						.nwriters = opt.writers[wi],
						.secs = opt.secs,
					};
					struct bench_result *r = &runs[si][wi][m][rep];
					double eps;

					if (!opt.method_on[m])
						continue;
					ret = run_cell(&c, nl, r);
					if (ret) {
						fprintf(stderr, "kmod_bench: cannot set up %s: %s\n",
							bench_methods[m].name, strerror(-ret));
						r->ok = false;
					}
					eps = r->elapsed_s > 0 ? r->events / r->elapsed_s : 0;
					fprintf(stderr, "rep %u/%u %-12s %4u B x%u: %s events/s%s\n",
						rep + 1, opt.reps, bench_methods[m].name,
						c.size, c.nwriters,
						rate_label(eps, r1, sizeof(r1)),
						r->ok ? "" : " FAILED");
					if (tsv)
						fprintf(tsv, "%u\t%s\t%u\t%u\t%d\t%" PRIu64 "\t%.6f\t%.1f\t%.3f\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\n",
							rep + 1, bench_methods[m].name,
							c.size, c.nwriters, r->ok,
							r->events, r->elapsed_s, eps,
							eps * c.size / 1e6,
							r->have_stats ? r->wakeups : 0,
							r->have_stats ? r->produced : 0,
							r->have_stats ? r->blocks : 0);
				}
	if (tsv)
		fclose(tsv);

	for (unsigned int si = 0; si < opt.nsizes; si++)
		for (unsigned int wi = 0; wi < opt.nwriters; wi++)
			for (unsigned int m = 0; m < M_NR; m++) {
				summarize(runs[si][wi][m],
					  opt.method_on[m] ? opt.reps : 0,
					  opt.sizes[si], &sum[si][wi][m]);
				failed += sum[si][wi][m].ran && !sum[si][wi][m].ok;
			}

	printf("Medians of %u runs of %.1f s per cell, interleaved; %s, %s, %ld CPUs.\n",
	       opt.reps, opt.secs, date, uts.release,
	       sysconf(_SC_NPROCESSORS_ONLN));
	if (opt.nr_partitions)
		printf("evring: %u partitions of %s, writer i pinned to partition i, one consumer each. ",
		       opt.nr_partitions,
		       size_label(opt.ring_size, sb, sizeof(sb)));
	printf("AF_UNIX: net.unix.max_dgram_qlen=%d, one reader. Pipe: %d bytes, one reader. Batch calls: %d records.\n\n",
	       opt.unix_qlen, opt.pipe_size, BENCH_BATCH);
	print_markdown(stdout, sum);
	f = out_open("kmod_bench.md");
	if (f) {
		print_markdown(f, sum);
		fclose(f);
	}
	f = out_open("kmod_bench.json");
	if (f) {
		print_json(f, sum, date, uts.release,
			   sysconf(_SC_NPROCESSORS_ONLN));
		fclose(f);
	}

	evring_nl_close(nl);
	if (opt.load_params)
		evring_module_unload();
	if (failed)
		fprintf(stderr, "kmod_bench: %u cells lost or corrupted records\n",
			failed);
	return failed ? 1 : 0;
}
