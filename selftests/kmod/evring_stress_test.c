// SPDX-License-Identifier: GPL-2.0-only
/*
 * evring under load and abuse:
 *
 *  writers: processes x threads write thousands of self-describing records
 *	(writer id, per-writer counter, length, checksum) into every
 *	partition while one consumer thread per partition drains and
 *	releases; the consumers prove that nothing is missing, doubled,
 *	reordered or damaged.
 *  wrap: one writer, a 16 KiB ring, records of random length crossing
 *	the end of the ring hundreds of times; every byte is checked through
 *	the contiguous double mapping.
 *  fuzz: a few thousand random ioctls, writes and mmaps on attached and
 *	unattached fds; the kernel must keep answering with the documented
 *	errnos, stay untainted, and the ring must work afterwards.
 *
 * The random streams are seeded from $EVRING_SEED when set, else from the
 * clock; every test logs its seed so that a failure can be replayed.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/fiemap.h>
#include <linux/fs.h>

#include "evring.h"
#include "evring_module.h"
#include "evring_test_util.h"

/* EXPECT_EQ(0, u64) compares an int with an unsigned value, as meant. */
#pragma GCC diagnostic ignored "-Wsign-compare"
#include "kselftest_harness.h"

/*
 * Unload after a test.  A test that stopped at a failed ASSERT may have left
 * fds or mappings open in this process, and they hold the module: then the
 * unload is only attempted (the next setup's load retries it once this
 * process is gone), so that one failure is not reported twice.
 */
static void unload_after(struct __test_metadata *_metadata)
{
	int ret = evring_module_unload();

	if (_metadata->passed)
		EXPECT_EQ(0, ret);
}

#define MUST_MS		10000

/* --- shared helpers ---------------------------------------------------- */

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t test_seed(void)
{
	const char *s = getenv("EVRING_SEED");
	char *end;

	if (s && *s) {
		unsigned long long v;

		errno = 0;
		v = strtoull(s, &end, 0);
		if (!errno && !*end)
			return v;
	}
	return evt_now_ns(CLOCK_REALTIME) ^ ((uint64_t)getpid() << 32);
}

/* Fill @buf with @len bytes of the stream named by @key. */
static void fill_stream(uint8_t *buf, size_t len, uint64_t key)
{
	uint64_t s = key;

	while (len >= 8) {
		uint64_t v = splitmix64(&s);

		memcpy(buf, &v, 8);
		buf += 8;
		len -= 8;
	}
	if (len) {
		uint64_t v = splitmix64(&s);

		memcpy(buf, &v, len);
	}
}

static uint32_t fnv1a(const uint8_t *p, size_t len, uint32_t h)
{
	while (len--)
		h = (h ^ *p++) * 16777619u;
	return h;
}

/* Taint bits that mean the kernel hit a WARN, an oops or bad page state. */
#define BAD_TAINTS ((1ul << 5) | (1ul << 7) | (1ul << 9) | (1ul << 14))

static unsigned long kernel_taint(void)
{
	unsigned long t = 0;
	FILE *f = fopen("/proc/sys/kernel/tainted", "re");

	if (f) {
		if (fscanf(f, "%lu", &t) != 1)
			t = 0;
		fclose(f);
	}
	return t;
}

static int load_or_skip(char *skip, size_t n, const char *params)
{
	int ret = evring_module_load(params);

	if (ret == -ENOENT || ret == -EPERM)
		snprintf(skip, n, "cannot load '%s': %s", evring_ko_path(),
			 strerror(-ret));
	return ret == -ENOENT || ret == -EPERM ? 0 : ret;
}

#define NEED_MODULE() do {						\
	if (self->skip[0])						\
		SKIP(return, "%s", self->skip);				\
} while (0)

/* A blocking-or-not writer fd keyed as asked; -errno on failure. */
static int writer_open(int flags, uint32_t mode, uint64_t key)
{
	struct evring_key k = { .key = key, .mode = mode };
	int fd = open(EVRING_DEV_PATH, O_WRONLY | O_CLOEXEC | flags);

	if (fd < 0)
		return -errno;
	if (mode != EVRING_KEY_TGID && ioctl(fd, EVRING_IOC_SET_KEY, &k)) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

/* ===================================================================== */
/* Concurrent writers                                                     */
/* ===================================================================== */

#define W_PROCS		4
#define W_THREADS	3
#define W_WRITERS	(W_PROCS * W_THREADS)
#define W_PARTS		4
#define W_HDR		16
#define W_DEADLINE_S	100

/* The first W_HDR payload bytes of every record the writers write. */
struct w_hdr {
	uint32_t writer;
	uint32_t counter;
	uint32_t len;
	uint32_t csum;		/* fnv1a of the bytes after this header */
};

/* Written by the writer processes, read by the test after they exit. */
struct w_shared {
	uint32_t partition[W_WRITERS];	/* EVRING_IOC_INFO after keying */
	uint64_t bytes[W_WRITERS];	/* payload bytes written */
	char err[W_WRITERS][160];
};

struct w_args {
	struct w_shared *sh;
	unsigned int proc, per_writer, max_record;
	uint64_t seed;
	int start;			/* read end: EOF means go */
	int start_w;			/* write end, closed by the child */
};

struct w_thread {
	struct w_args *a;
	unsigned int id, thread;
	int failed;
};

/* Record @counter of writer @id: header, then bytes from its own stream. */
static void w_make(uint8_t *buf, uint32_t id, uint32_t counter, uint32_t len,
		   uint64_t seed)
{
	struct w_hdr h = { .writer = id, .counter = counter, .len = len };

	fill_stream(buf + W_HDR, len - W_HDR,
		    seed ^ ((uint64_t)id << 40) ^ counter);
	h.csum = fnv1a(buf + W_HDR, len - W_HDR, 2166136261u);
	memcpy(buf, &h, sizeof(h));
}

static uint32_t w_len(uint64_t *rng, unsigned int max_record)
{
	uint64_t r = splitmix64(rng);

	/* Mostly small records, a quarter up to the maximum. */
	if (r & 3)
		return W_HDR + (r >> 8) % 241;
	return W_HDR + (r >> 8) % (max_record - W_HDR + 1);
}

#define W_FAIL(t, fmt, ...) do {					\
	snprintf((t)->a->sh->err[(t)->id], sizeof((t)->a->sh->err[0]),	\
		 fmt, ##__VA_ARGS__);					\
	(t)->failed = 1;						\
	goto out;							\
} while (0)

/*
 * One writer: thread 0 keeps the default partition (hash of the tgid),
 * thread 1 pins its fd to partition proc % W_PARTS, thread 2 uses a hashed
 * key.  Records go out one by one or in batches of up to 16; at the end
 * fsync must see them all released.
 */
static void *w_thread_fn(void *arg)
{
	struct w_thread *t = arg;
	struct w_args *a = t->a;
	struct evring_iovec iov[16];
	struct evring_info info;
	uint64_t rng = a->seed ^ (0x5151ull * (t->id + 1));
	uint32_t counter = 0;
	uint8_t *buf;
	int fd = -1;

	buf = malloc((size_t)16 * a->max_record);
	if (!buf)
		W_FAIL(t, "no memory");
	if (t->thread == 0)
		fd = writer_open(0, EVRING_KEY_TGID, 0);
	else if (t->thread == 1)
		fd = writer_open(0, EVRING_KEY_PARTITION, a->proc % W_PARTS);
	else
		fd = writer_open(0, EVRING_KEY_HASH,
				 0x9e3779b97f4a7c15ull * (a->proc + 1));
	if (fd < 0)
		W_FAIL(t, "open/key: %s", strerror(-fd));
	memset(&info, 0xa5, sizeof(info));
	if (ioctl(fd, EVRING_IOC_INFO, &info))
		W_FAIL(t, "INFO: %s", strerror(errno));
	a->sh->partition[t->id] = info.partition;

	while (counter < a->per_writer) {
		uint64_t r = splitmix64(&rng);
		unsigned int n = 1 + (r >> 32) % 16, i;
		ssize_t w;

		if (n > a->per_writer - counter)
			n = a->per_writer - counter;
		if (r % 10 < 7) {
			uint32_t len = w_len(&rng, a->max_record);

			w_make(buf, t->id, counter, len, a->seed);
			w = write(fd, buf, len);
			if (w != (ssize_t)len)
				W_FAIL(t, "write #%u (%u bytes): %zd, %s",
				       counter, len, w, strerror(errno));
			a->sh->bytes[t->id] += len;
			counter++;
			continue;
		}
		for (i = 0; i < n; i++) {
			uint32_t len = w_len(&rng, a->max_record);
			uint8_t *p = buf + (size_t)i * a->max_record;

			w_make(p, t->id, counter + i, len, a->seed);
			iov[i] = (struct evring_iovec){ .base = (uintptr_t)p,
							.len = len };
		}
		w = ioctl(fd, EVRING_IOC_WRITE_BATCH,
			  &(struct evring_batch){ .records = (uintptr_t)iov,
						  .count = n });
		if (w < 1 || w > n)
			W_FAIL(t, "batch at #%u of %u: %zd, %s", counter, n,
			       w, strerror(errno));
		for (i = 0; i < (unsigned int)w; i++)
			a->sh->bytes[t->id] += iov[i].len;
		counter += w;
	}
	if (fsync(fd))
		W_FAIL(t, "fsync: %s", strerror(errno));
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return NULL;
}

static int w_proc(void *arg)
{
	struct w_args *a = arg;
	struct w_thread t[W_THREADS];
	pthread_t th[W_THREADS];
	char x;
	int ret = 0;

	close(a->start_w);
	if (read(a->start, &x, 1) != 0)
		return 40;
	for (unsigned int i = 0; i < W_THREADS; i++) {
		t[i] = (struct w_thread){ .a = a, .thread = i,
					  .id = a->proc * W_THREADS + i };
		if (pthread_create(&th[i], NULL, w_thread_fn, &t[i]))
			return 41;
	}
	for (unsigned int i = 0; i < W_THREADS; i++) {
		pthread_join(th[i], NULL);
		ret |= t[i].failed;
	}
	return ret ? 42 : 0;
}

/* One consumer thread per partition. */
struct w_cons {
	struct evring_consumer *c;
	unsigned int part, max_record, per_writer;
	uint64_t seed, deadline_ns;
	const pid_t *pids;		/* writer process of writer id / 3 */
	const int *done;		/* set once every writer has exited */
	int *abort;			/* set by a consumer that gave up */

	uint64_t next_seq, records, bytes, wakeups_waited;
	/* Records taken since the last release, to check again before it. */
	const struct evring_rec **taken;
	uint64_t *taken_seq;
	unsigned int taken_max;
	int64_t last[W_WRITERS];	/* highest counter seen, -1: none */
	uint32_t count[W_WRITERS];
	unsigned int nerr;
	char err[8][200];
};

#define C_ERR(c, seq, fmt, ...) do {					\
	if ((c)->nerr < 8)						\
		snprintf((c)->err[(c)->nerr], sizeof((c)->err[0]),	\
			 "partition %u seq %llu: " fmt, (c)->part,	\
			 (unsigned long long)(seq), ##__VA_ARGS__);	\
	(c)->nerr++;							\
} while (0)

/* Check one record; returns -1 when its length makes the rest untrustworthy. */
static int w_check(struct w_cons *c, const struct evring_rec *r)
{
	const uint8_t *p = (const uint8_t *)(r + 1);
	struct w_hdr h;

	if (r->len < W_HDR || r->len > c->max_record) {
		C_ERR(c, r->seq, "length %u out of [%u, %u]", r->len, W_HDR,
		      c->max_record);
		return -1;
	}
	if (r->seq != c->next_seq)
		C_ERR(c, r->seq, "expected seq %llu", (unsigned long long)c->next_seq);
	c->next_seq = r->seq + 1;
	if (r->flags)
		C_ERR(c, r->seq, "flags %#x", r->flags);
	memcpy(&h, p, sizeof(h));
	if (h.writer >= W_WRITERS) {
		C_ERR(c, r->seq, "writer id %u", h.writer);
		return 0;
	}
	if (h.len != r->len)
		C_ERR(c, r->seq, "payload says %u bytes, header %u", h.len, r->len);
	if (fnv1a(p + W_HDR, r->len - W_HDR, 2166136261u) != h.csum)
		C_ERR(c, r->seq, "writer %u record %u: checksum mismatch", h.writer,
		      h.counter);
	if (r->pid != (uint32_t)c->pids[h.writer / W_THREADS])
		C_ERR(c, r->seq, "writer %u: pid %u, expected %d", h.writer, r->pid,
		      c->pids[h.writer / W_THREADS]);
	if (r->uid != getuid())
		C_ERR(c, r->seq, "uid %u", r->uid);
	if ((int64_t)h.counter <= c->last[h.writer] ||
	    h.counter >= c->per_writer)
		C_ERR(c, r->seq, "writer %u: counter %u after %lld", h.writer,
		      h.counter, (long long)c->last[h.writer]);
	c->last[h.writer] = h.counter;
	c->count[h.writer]++;
	c->records++;
	c->bytes += r->len;
	return 0;
}

/*
 * Re-check the records taken since the last release: read_pos has moved
 * past them, but until they are released their bytes must not change (a
 * consumer makes them durable in this window).
 */
static int w_recheck(struct w_cons *c, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		const struct evring_rec *r = c->taken[i];
		const uint8_t *p = (const uint8_t *)(r + 1);
		struct w_hdr h;

		memcpy(&h, p, sizeof(h));
		if (r->seq != c->taken_seq[i] || h.len != r->len ||
		    r->len < W_HDR || r->len > c->max_record ||
		    fnv1a(p + W_HDR, r->len - W_HDR, 2166136261u) != h.csum) {
			C_ERR(c, c->taken_seq[i],
			      "changed after read_pos passed it, before release "
			      "(now seq %llu)", (unsigned long long)r->seq);
			return -1;
		}
	}
	return 0;
}

static void *w_cons_loop(struct w_cons *c)
{
	const struct evring_rec *r;

	for (;;) {
		int done = __atomic_load_n(c->done, __ATOMIC_ACQUIRE);
		uint64_t before = evring_consumer_pos(c->c);
		unsigned int n = 0;
		int ret;

		while (n < c->taken_max && (r = evring_consumer_next(c->c))) {
			if (w_check(c, r))
				return NULL;
			c->taken[n] = r;
			c->taken_seq[n++] = r->seq;
		}
		if (evring_consumer_pos(c->c) != before) {
			evring_consumer_mark_read(c->c);
			sched_yield();
			if (w_recheck(c, n))
				return NULL;
			ret = evring_consumer_release(c->c,
						      evring_consumer_pos(c->c));
			if (ret) {
				C_ERR(c, 0, "release: %s", strerror(-ret));
				return NULL;
			}
			continue;
		}
		if (done &&
		    evring_consumer_pos(c->c) == evring_consumer_prod_pos(c->c))
			return NULL;
		if (evt_now_ns(CLOCK_MONOTONIC) > c->deadline_ns) {
			C_ERR(c, 0, "deadline passed at position %llu",
			      (unsigned long long)evring_consumer_pos(c->c));
			return NULL;
		}
		ret = evring_consumer_wait(c->c, 50);
		if (ret < 0) {
			C_ERR(c, 0, "wait: %s", strerror(-ret));
			return NULL;
		}
		c->wakeups_waited += ret;
	}
}

/* A consumer that gives up tells the test to stop the writers it blocks. */
static void *w_cons_fn(void *arg)
{
	struct w_cons *c = arg;

	w_cons_loop(c);
	if (c->nerr)
		__atomic_store_n(c->abort, 1, __ATOMIC_RELEASE);
	return NULL;
}

FIXTURE(writers) {
	char skip[128];
	unsigned long taint;
	struct w_shared *sh;
	struct w_cons cons[W_PARTS];
};

FIXTURE_VARIANT(writers) {
	uint32_t ring_size;
	uint32_t max_record;
	uint32_t per_writer;
};

FIXTURE_VARIANT_ADD(writers, ring16k) {
	.ring_size = 16384, .max_record = 4064, .per_writer = 3000,
};

FIXTURE_VARIANT_ADD(writers, ring64k) {
	.ring_size = 65536, .max_record = 4096, .per_writer = 3000,
};

FIXTURE_VARIANT_ADD(writers, ring1m) {
	.ring_size = 1 << 20, .max_record = 16384, .per_writer = 3000,
};

FIXTURE_SETUP(writers)
{
	char params[160];

	snprintf(params, sizeof(params),
		 "partitions=%u ring_size=%u max_record=%u "
		 "fsync_timeout_ms=120000", W_PARTS, variant->ring_size,
		 variant->max_record);
	ASSERT_EQ(0, load_or_skip(self->skip, sizeof(self->skip), params));
	self->taint = kernel_taint();
	self->sh = mmap(NULL, sizeof(*self->sh), PROT_READ | PROT_WRITE,
			MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->sh);
}

FIXTURE_TEARDOWN(writers)
{
	evt_reap_all();
	for (unsigned int p = 0; p < W_PARTS; p++) {
		evring_consumer_close(self->cons[p].c);
		free(self->cons[p].taken);
		free(self->cons[p].taken_seq);
	}
	if (self->sh && self->sh != MAP_FAILED)
		munmap(self->sh, sizeof(*self->sh));
	if (self->skip[0])
		return;
	EXPECT_EQ(0, kernel_taint() & ~self->taint & BAD_TAINTS);
	unload_after(_metadata);
}

TEST_F_TIMEOUT(writers, concurrent_writers_lose_nothing_double_nothing_reorder_nothing, 180)
{
	struct evring_part_stats st[W_PARTS];
	struct w_args args[W_PROCS];
	pthread_t th[W_PARTS];
	struct evring_nl *nl = NULL;
	uint64_t seed = test_seed(), total = 0, written = 0, read = 0;
	pid_t pids[W_PROCS], alive[W_PROCS];
	int start[2], done = 0, abort = 0, failed = 0, left = W_PROCS;
	uint64_t deadline;
	unsigned int n;

	NEED_MODULE();
	TH_LOG("seed %#llx (EVRING_SEED to replay)", (unsigned long long)seed);
	ASSERT_EQ(0, pipe2(start, O_CLOEXEC));
	for (unsigned int i = 0; i < W_PROCS; i++) {
		args[i] = (struct w_args){
			.sh = self->sh, .proc = i, .seed = seed,
			.per_writer = variant->per_writer,
			.max_record = variant->max_record,
			.start = start[0], .start_w = start[1],
		};
		pids[i] = evt_spawn(w_proc, &args[i]);
		ASSERT_LT(0, pids[i]);
		alive[i] = pids[i];
	}
	close(start[0]);

	for (unsigned int p = 0; p < W_PARTS; p++) {
		struct w_cons *c = &self->cons[p];

		c->part = p;
		c->max_record = variant->max_record;
		c->per_writer = variant->per_writer;
		c->seed = seed;
		c->pids = pids;
		c->done = &done;
		c->abort = &abort;
		c->next_seq = 1;
		c->deadline_ns = evt_now_ns(CLOCK_MONOTONIC) +
				 W_DEADLINE_S * 1000000000ull;
		for (unsigned int w = 0; w < W_WRITERS; w++)
			c->last[w] = -1;
		/* The most records a ring can hold. */
		c->taken_max = variant->ring_size /
			       EVRING_REC_SIZE(W_HDR) + 1;
		c->taken = calloc(c->taken_max, sizeof(*c->taken));
		c->taken_seq = calloc(c->taken_max, sizeof(*c->taken_seq));
		ASSERT_NE(NULL, c->taken);
		ASSERT_NE(NULL, c->taken_seq);
		ASSERT_EQ(0, evring_consumer_open(NULL, p, &c->c));
	}
	for (unsigned int p = 0; p < W_PARTS; p++) {
		ASSERT_EQ(0, pthread_create(&th[p], NULL, w_cons_fn,
					    &self->cons[p]));
	}
	close(start[1]);		/* go */

	/* Wait for the writers; stop them if a consumer gave up or time ran out. */
	deadline = evt_now_ns(CLOCK_MONOTONIC) + W_DEADLINE_S * 1000000000ull;
	while (left) {
		int stop = __atomic_load_n(&abort, __ATOMIC_ACQUIRE) ||
			   evt_now_ns(CLOCK_MONOTONIC) > deadline;

		for (unsigned int i = 0; i < W_PROCS; i++) {
			int st;

			if (!alive[i])
				continue;
			st = stop ? evt_kill(alive[i]) : evt_wait(alive[i], 0);
			if (st == -ETIMEDOUT)
				continue;
			if (st)
				TH_LOG("writer process %u ended with %d%s", i,
				       st, stop ? " (stopped)" : "");
			failed |= st != 0;
			alive[i] = 0;
			left--;
		}
		evt_sleep_ms(5);
	}
	__atomic_store_n(&done, 1, __ATOMIC_RELEASE);
	for (unsigned int p = 0; p < W_PARTS; p++)
		pthread_join(th[p], NULL);

	for (unsigned int w = 0; w < W_WRITERS; w++)
		if (self->sh->err[w][0])
			TH_LOG("writer %u: %s", w, self->sh->err[w]);
	EXPECT_EQ(0, failed);
	for (unsigned int p = 0; p < W_PARTS; p++) {
		struct w_cons *c = &self->cons[p];

		for (unsigned int e = 0; e < c->nerr && e < 8; e++)
			TH_LOG("%s", c->err[e]);
		EXPECT_EQ(0, c->nerr);
		TH_LOG("partition %u: %llu records, %llu bytes", p,
		       (unsigned long long)c->records,
		       (unsigned long long)c->bytes);
		/* Gap-free from 1 and complete. */
		EXPECT_EQ(c->records, c->next_seq - 1);
		EXPECT_LT(0, c->records);
		total += c->records;
	}
	/* A consumer that gave up stopped the writers: nothing more to count. */
	ASSERT_EQ(0, abort);
	EXPECT_EQ((uint64_t)W_WRITERS * variant->per_writer, total);
	for (unsigned int w = 0; w < W_WRITERS; w++)
		written += self->sh->bytes[w];
	for (unsigned int p = 0; p < W_PARTS; p++)
		read += self->cons[p].bytes;
	EXPECT_EQ(written, read);

	/* Every writer: exactly 0..per_writer-1, all in its own partition. */
	for (unsigned int w = 0; w < W_WRITERS; w++) {
		uint32_t part = self->sh->partition[w], sum = 0;

		ASSERT_GT(W_PARTS, part);
		if (w % W_THREADS == 1)
			EXPECT_EQ((w / W_THREADS) % W_PARTS, part);
		for (unsigned int p = 0; p < W_PARTS; p++) {
			sum += self->cons[p].count[w];
			if (p != part)
				EXPECT_EQ(0, self->cons[p].count[w]);
		}
		EXPECT_EQ(variant->per_writer, sum);
		EXPECT_EQ(variant->per_writer - 1, self->cons[part].last[w]);
	}

	/* The kernel's counters agree with what was seen. */
	ASSERT_EQ(0, evring_nl_open(&nl));
	memset(st, 0xa5, sizeof(st));
	ASSERT_EQ(0, evring_nl_stats_all(nl, st, W_PARTS, &n));
	ASSERT_EQ(W_PARTS, n);
	for (unsigned int i = 0; i < W_PARTS; i++) {
		struct w_cons *c = &self->cons[st[i].partition % W_PARTS];

		EXPECT_EQ(c->records, st[i].produced);
		EXPECT_EQ(c->bytes, st[i].produced_bytes);
		EXPECT_EQ(c->records, st[i].released);
		EXPECT_EQ(0, st[i].fill);
		EXPECT_EQ(0, st[i].writers_blocked);
		EXPECT_GE(variant->ring_size, st[i].fill_hwm);
		TH_LOG("partition %u: blocks %llu, wakeups %llu, hwm %u",
		       st[i].partition, (unsigned long long)st[i].blocks,
		       (unsigned long long)st[i].wakeups, st[i].fill_hwm);
	}
	evring_nl_close(nl);
}

/* ===================================================================== */
/* Wrap-around through the double mapping                                 */
/* ===================================================================== */

struct wrap_args {
	uint64_t seed;
	unsigned int records, max_record;
};

static uint32_t wrap_len(uint64_t *rng, unsigned int max_record)
{
	return 1 + splitmix64(rng) % max_record;
}

static uint64_t wrap_key(uint64_t seed, uint64_t seq)
{
	return seed * 31 + seq;
}

/* Child: records 1..n with lengths from one stream, bytes from another. */
static int wrap_writer(void *arg)
{
	struct wrap_args *a = arg;
	uint64_t lens = a->seed, pick = ~a->seed;
	struct evring_iovec iov[8];
	uint8_t *buf = malloc((size_t)8 * a->max_record);
	unsigned int seq = 1;
	int fd = writer_open(0, EVRING_KEY_PARTITION, 0);

	if (!buf || fd < 0)
		return 50;
	while (seq <= a->records) {
		unsigned int n = 1 + splitmix64(&pick) % 8, i;
		long w;

		if (n > a->records - seq + 1)
			n = a->records - seq + 1;
		for (i = 0; i < n; i++) {
			uint32_t len = wrap_len(&lens, a->max_record);
			uint8_t *p = buf + (size_t)i * a->max_record;

			fill_stream(p, len, wrap_key(a->seed, seq + i));
			iov[i] = (struct evring_iovec){ .base = (uintptr_t)p,
							.len = len };
		}
		if (n == 1) {
			w = write(fd, buf, iov[0].len) == iov[0].len ? 1 : -1;
		} else {
			w = ioctl(fd, EVRING_IOC_WRITE_BATCH,
				  &(struct evring_batch){
					.records = (uintptr_t)iov, .count = n });
		}
		if (w < 1 || w > n) {
			fprintf(stderr, "wrap writer: record %u: %s\n", seq,
				strerror(errno));
			return 51;
		}
		/* Unwritten records of a short batch are made again. */
		for (i = w; i < n; i++)
			lens -= 0x9e3779b97f4a7c15ull;
		seq += w;
	}
	close(fd);
	free(buf);
	return 0;
}

FIXTURE(wrap) {
	char skip[128];
	unsigned long taint;
	struct evring_consumer *c;
	void *view;
	size_t view_len;
};

FIXTURE_VARIANT(wrap) {
	uint32_t max_record;
	uint32_t records;
};

/* Large records: about 8 a lap, so a straddler nearly every lap. */
FIXTURE_VARIANT_ADD(wrap, ring16k_records_to_4064) {
	.max_record = 4064, .records = 3000,
};

/* Tiny records: record headers themselves split by the wrap point. */
FIXTURE_VARIANT_ADD(wrap, ring16k_records_to_64) {
	.max_record = 64, .records = 20000,
};

FIXTURE_SETUP(wrap)
{
	char params[128];

	snprintf(params, sizeof(params),
		 "partitions=1 ring_size=16384 max_record=%u",
		 variant->max_record);
	ASSERT_EQ(0, load_or_skip(self->skip, sizeof(self->skip), params));
	self->taint = kernel_taint();
}

FIXTURE_TEARDOWN(wrap)
{
	evt_reap_all();
	if (self->view && self->view != MAP_FAILED)
		munmap(self->view, self->view_len);
	evring_consumer_close(self->c);
	if (self->skip[0])
		return;
	EXPECT_EQ(0, kernel_taint() & ~self->taint & BAD_TAINTS);
	unload_after(_metadata);
}

TEST_F_TIMEOUT(wrap, records_crossing_the_end_are_contiguous_and_intact, 150)
{
	struct wrap_args a = { .seed = test_seed(),
			       .records = variant->records,
			       .max_record = variant->max_record };
	const struct evring_layout *lay;
	const uint8_t *base = NULL, *data;
	uint64_t lens, mask, deadline, straddles = 0, split_headers = 0;
	uint8_t *want;
	unsigned int seq = 0;
	pid_t pid;

	NEED_MODULE();
	TH_LOG("seed %#llx (EVRING_SEED to replay)",
	       (unsigned long long)a.seed);
	lens = a.seed;
	want = malloc(variant->max_record);
	ASSERT_NE(NULL, want);
	ASSERT_EQ(0, evring_consumer_open(NULL, 0, &self->c));
	lay = evring_consumer_layout(self->c);
	ASSERT_EQ(16384, lay->data_size);
	mask = lay->data_size - 1;
	/* A second view of the same pages, mapped by the test itself. */
	self->view_len = lay->prod_size;
	self->view = mmap(NULL, lay->prod_size, PROT_READ, MAP_SHARED,
			  evring_consumer_fd(self->c), lay->prod_off);
	ASSERT_NE(MAP_FAILED, self->view);
	ASSERT_LE(lay->data_off + 2 * lay->data_size, lay->prod_size);
	data = (const uint8_t *)self->view + lay->data_off;

	pid = evt_spawn(wrap_writer, &a);
	ASSERT_LT(0, pid);
	deadline = evt_now_ns(CLOCK_MONOTONIC) + 120 * 1000000000ull;
	while (seq < a.records) {
		uint64_t pos = evring_consumer_pos(self->c), off = pos & mask;
		const struct evring_rec *r = evring_consumer_next(self->c);
		uint32_t len;

		if (!r) {
			ASSERT_EQ(0, evring_consumer_release(self->c, pos));
			ASSERT_LE(0, evring_consumer_wait(self->c, 100));
			ASSERT_GT(deadline, evt_now_ns(CLOCK_MONOTONIC)) {
				TH_LOG("stuck after record %u", seq);
			}
			continue;
		}
		seq++;
		if (!base)
			base = (const uint8_t *)r - off;
		/* Where the layout says, in one piece. */
		ASSERT_EQ((uintptr_t)(base + off), (uintptr_t)r);
		ASSERT_EQ(seq, r->seq);
		len = wrap_len(&lens, variant->max_record);
		ASSERT_EQ(len, r->len);
		ASSERT_EQ(0, r->flags);
		fill_stream(want, len, wrap_key(a.seed, seq));
		ASSERT_EQ(0, memcmp(want, r + 1, len)) {
			TH_LOG("record %u (%u bytes at offset %llu) differs",
			       seq, len, (unsigned long long)off);
		}
		/* The test's own mapping shows the same bytes... */
		ASSERT_EQ(0, memcmp(data + off, r, sizeof(*r) + len));
		/* ...and its second copy of the data is the first one. */
		if (off + EVRING_REC_SIZE(len) > lay->data_size) {
			size_t tail = off + sizeof(*r) + len - lay->data_size;

			straddles++;
			if (off + sizeof(*r) > lay->data_size)
				split_headers++;
			if (off + sizeof(*r) + len > lay->data_size)
				ASSERT_EQ(0, memcmp(data + lay->data_size,
						    data, tail));
		}
	}
	ASSERT_EQ(0, evring_consumer_release(self->c,
					     evring_consumer_pos(self->c)));
	EXPECT_EQ(0, evt_wait(pid, MUST_MS));
	TH_LOG("%u records, %llu laps, %llu crossed the end (%llu headers)",
	       seq, (unsigned long long)(evring_consumer_pos(self->c) /
					 lay->data_size),
	       (unsigned long long)straddles,
	       (unsigned long long)split_headers);
	EXPECT_LE(evring_consumer_pos(self->c) / lay->data_size / 2,
		  straddles);
	EXPECT_EQ(evring_consumer_pos(self->c),
		  evring_consumer_prod_pos(self->c));
	free(want);
}

/* ===================================================================== */
/* Random ioctl / write / mmap sequences                                   */
/* ===================================================================== */

#define FZ_PARTS	2
#define FZ_RING		16384u
#define FZ_MAXREC	1024u
#define FZ_ITERS	20000
#define FZ_FDS		6
#define FZ_MAPS		8
#define FZ_SCRATCH	65536

static const unsigned int fz_known[] = {
	EVRING_IOC_INFO, EVRING_IOC_SET_KEY, EVRING_IOC_WRITE_BATCH,
	EVRING_IOC_ATTACH, EVRING_IOC_DETACH, EVRING_IOC_LAYOUT,
	EVRING_IOC_RELEASE,
};

/* Handled by the VFS before the driver sees them: not ours to fuzz. */
static const unsigned int fz_vfs[] = {
	FIOCLEX, FIONCLEX, FIONBIO, FIOASYNC, FIOQSIZE, FIFREEZE, FITHAW,
	FS_IOC_FIEMAP, FIGETBSZ, FICLONE, FICLONERANGE, FIDEDUPERANGE,
	FIONREAD, FS_IOC_GETFLAGS, FS_IOC_SETFLAGS, FS_IOC_FSGETXATTR,
	FS_IOC_FSSETXATTR,
};

struct fz_fd {
	int fd;
	int acc;		/* O_WRONLY, O_RDWR or O_RDONLY */
	int attached;		/* partition, or -1 */
	void *view;		/* producer page + data, while attached */
	size_t view_len;
};

struct fz_map {
	void *addr;
	size_t len;
	int writable_ok;	/* the consumer page: may be written */
};

struct fz {
	uint64_t rng;
	struct fz_fd fds[FZ_FDS];
	struct fz_map maps[FZ_MAPS];
	uint8_t *scratch;	/* FZ_SCRATCH random bytes, ours to trash */
	uint8_t *iovs;		/* FZ_SCRATCH for crafted iovec arrays */
	void *none;		/* a PROT_NONE page */
	void *ro;		/* a read-only page */
	struct evring_layout lay;
	unsigned int nviol, ops[5];
	unsigned int attaches, maps_ok, releases, records;
	char viol[8][200];
};

static uint64_t fz_rand(struct fz *z, uint64_t n)
{
	return n ? splitmix64(&z->rng) % n : 0;
}

#define FZ_VIOL(z, fmt, ...) do {					\
	if ((z)->nviol < 8)						\
		snprintf((z)->viol[(z)->nviol], sizeof((z)->viol[0]),	\
			 fmt, ##__VA_ARGS__);				\
	(z)->nviol++;							\
} while (0)

static int fz_in(int err, const int *allowed)
{
	for (; *allowed; allowed++)
		if (*allowed == err)
			return 1;
	return 0;
}

#define FZ_ALLOW(...) ((const int[]){ __VA_ARGS__, 0 })

static sigjmp_buf fz_jmp;
static volatile sig_atomic_t fz_armed;

static void fz_fault(int sig)
{
	if (fz_armed)
		siglongjmp(fz_jmp, sig);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Read one byte of every page of [p, p + len); the signal, or 0. */
static int fz_touch(const void *p, size_t len)
{
	volatile const uint8_t *b = p;
	int sig;

	sig = sigsetjmp(fz_jmp, 1);
	if (sig) {
		fz_armed = 0;
		return sig;
	}
	fz_armed = 1;
	for (size_t off = 0; off < len; off += 4096)
		(void)b[off];
	fz_armed = 0;
	return 0;
}

static void fz_open(struct fz *z, struct fz_fd *f)
{
	static const int accs[] = { O_WRONLY, O_RDWR, O_RDONLY };

	f->acc = accs[fz_rand(z, 3)];
	f->fd = open(EVRING_DEV_PATH, f->acc | O_NONBLOCK | O_CLOEXEC);
	f->attached = -1;
	f->view = NULL;
	if (f->fd < 0)
		FZ_VIOL(z, "open: %s", strerror(errno));
}

static void fz_unview(struct fz_fd *f)
{
	if (f->view)
		munmap(f->view, f->view_len);
	f->view = NULL;
	f->attached = -1;
}

static void fz_close(struct fz_fd *f)
{
	/* The view keeps the file, and so the attachment, alive. */
	fz_unview(f);
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}

/* After a successful ATTACH: map the producer side to find real positions. */
static void fz_attached(struct fz *z, struct fz_fd *f, unsigned int part)
{
	struct evring_layout lay;

	f->attached = part;
	memset(&lay, 0xa5, sizeof(lay));
	if (ioctl(f->fd, EVRING_IOC_LAYOUT, &lay)) {
		FZ_VIOL(z, "LAYOUT after ATTACH: %s", strerror(errno));
		return;
	}
	z->lay = lay;
	f->view = mmap(NULL, lay.prod_size, PROT_READ, MAP_SHARED, f->fd,
		       lay.prod_off);
	if (f->view == MAP_FAILED) {
		FZ_VIOL(z, "mapping the producer side: %s", strerror(errno));
		f->view = NULL;
		return;
	}
	f->view_len = lay.prod_size;
}

/* A position worth releasing: real boundaries, near misses, garbage. */
static uint64_t fz_pos(struct fz *z, struct fz_fd *f)
{
	const struct evring_prod_page *pp = f->view;
	const uint8_t *data;
	uint64_t rel, prod, pos;

	if (!pp || fz_rand(z, 8) == 0)
		return splitmix64(&z->rng) >> fz_rand(z, 64);
	data = (const uint8_t *)f->view + z->lay.data_off;
	rel = __atomic_load_n(&pp->release_pos, __ATOMIC_ACQUIRE);
	prod = __atomic_load_n(&pp->prod_pos, __ATOMIC_ACQUIRE);
	pos = rel;
	for (uint64_t n = fz_rand(z, 24); n && pos < prod; n--) {
		const struct evring_rec *r = (const void *)
			(data + (pos & (z->lay.data_size - 1)));

		if (r->len == 0 || r->len > FZ_MAXREC)
			break;
		pos += EVRING_REC_SIZE(r->len);
	}
	switch (fz_rand(z, 6)) {
	case 0:
		return rel;
	case 1:
		return prod;
	case 2:
		return prod + 8;
	case 3:
		return rel - 8;
	case 4:
		return pos + 8 * fz_rand(z, 3);
	default:
		return pos;
	}
}

static uint64_t fz_ptr(struct fz *z)
{
	switch (fz_rand(z, 10)) {
	case 0:
		return 0;
	case 1:
		return (uintptr_t)z->none;
	case 2:
		return (uintptr_t)z->ro;
	case 3:
		return 0xffffffff81000000ull;
	case 4:
		return UINT64_MAX - fz_rand(z, 4096);
	case 5:
		return splitmix64(&z->rng);
	default:
		return (uintptr_t)z->scratch + fz_rand(z, FZ_SCRATCH - 4096);
	}
}

/* Make the argument of a known ioctl plausible, to get past the first check. */
static void fz_craft(struct fz *z, unsigned int cmd, struct fz_fd *f, void *arg)
{
	if (cmd == EVRING_IOC_SET_KEY) {
		struct evring_key *k = arg;

		k->mode = fz_rand(z, 5);
		k->key = fz_rand(z, 2) ? fz_rand(z, FZ_PARTS + 2) :
					 splitmix64(&z->rng);
		k->pad = fz_rand(z, 8) ? 0 : (uint32_t)splitmix64(&z->rng);
	} else if (cmd == EVRING_IOC_ATTACH) {
		struct evring_attach *a = arg;

		a->partition = fz_rand(z, 4) ? fz_rand(z, FZ_PARTS + 1) :
					       (uint32_t)splitmix64(&z->rng);
		a->flags = fz_rand(z, 8) ? 0 : 1u << fz_rand(z, 32);
	} else if (cmd == EVRING_IOC_RELEASE) {
		((struct evring_release *)arg)->pos = fz_pos(z, f);
	} else if (cmd == EVRING_IOC_WRITE_BATCH) {
		struct evring_batch *b = arg;
		struct evring_iovec *iov = (void *)z->iovs;
		unsigned int n = fz_rand(z, 4) ? 1 + fz_rand(z, 8) :
				 fz_rand(z, EVRING_BATCH_MAX + 3);

		for (unsigned int i = 0; i < n && i < EVRING_BATCH_MAX + 2; i++) {
			iov[i].base = fz_rand(z, 8) ? (uintptr_t)z->scratch +
					fz_rand(z, FZ_SCRATCH - 2 * FZ_MAXREC) :
					fz_ptr(z);
			iov[i].len = fz_rand(z, 8) ? 1 + fz_rand(z, FZ_MAXREC) :
				     (uint32_t)fz_rand(z, 3) * (FZ_MAXREC + 1);
			iov[i].pad = fz_rand(z, 16) ? 0 : 1;
		}
		b->records = fz_rand(z, 8) ? (uintptr_t)iov : fz_ptr(z);
		b->count = n;
		b->flags = fz_rand(z, 16) ? 0 : 1u << fz_rand(z, 32);
	}
}

static void fz_ioctl(struct fz *z, struct fz_fd *f)
{
	unsigned int cmd, known = 0;
	uint64_t arg;
	long ret;
	int err;

	switch (fz_rand(z, 4)) {
	case 0:
	case 1:
		/* Known commands, biased to what moves the ring along. */
		if (f->attached >= 0 && fz_rand(z, 2))
			cmd = EVRING_IOC_RELEASE;
		else if (f->acc == O_RDWR && f->attached < 0 && fz_rand(z, 3) == 0)
			cmd = EVRING_IOC_ATTACH;
		else
			cmd = fz_known[fz_rand(z, sizeof(fz_known) /
						  sizeof(*fz_known))];
		break;
	case 2:
		cmd = _IOC(fz_rand(z, 4), EVRING_IOC_MAGIC, fz_rand(z, 0x20),
			   fz_rand(z, 64));
		break;
	default:
		cmd = (uint32_t)splitmix64(&z->rng);
		break;
	}
	for (unsigned int i = 0; i < sizeof(fz_vfs) / sizeof(*fz_vfs); i++)
		if (cmd == fz_vfs[i])
			return;
	for (unsigned int i = 0; i < sizeof(fz_known) / sizeof(*fz_known); i++)
		known |= cmd == fz_known[i];

	if (known && fz_rand(z, 5)) {
		arg = (uintptr_t)z->scratch + 8 * fz_rand(z, 512);
		fz_craft(z, cmd, f, (void *)(uintptr_t)arg);
	} else {
		arg = fz_ptr(z);
	}
	ret = ioctl(f->fd, cmd, (unsigned long)arg);
	err = ret < 0 ? errno : 0;
	z->ops[0]++;
	if (!known) {
		if (ret != -1 || err != ENOTTY)
			FZ_VIOL(z, "unknown ioctl %#x: %ld, %s", cmd, ret,
				strerror(err));
		return;
	}
	if (ret < 0 && !fz_in(err, FZ_ALLOW(EINVAL, EFAULT, EPERM, EBUSY,
					    E2BIG, EMSGSIZE, EAGAIN, EBADF)))
		FZ_VIOL(z, "ioctl %#x: %s", cmd, strerror(err));
	if (ret < 0)
		return;
	z->releases += cmd == EVRING_IOC_RELEASE;
	if (cmd == EVRING_IOC_WRITE_BATCH)
		z->records += ret;
	if (cmd == EVRING_IOC_ATTACH) {
		z->attaches++;
		if (f->attached >= 0)
			FZ_VIOL(z, "second ATTACH on one fd succeeded");
		fz_unview(f);
		fz_attached(z, f, ((struct evring_attach *)
				   (uintptr_t)arg)->partition);
	} else if (cmd == EVRING_IOC_DETACH) {
		fz_unview(f);
	}
}

static void fz_write(struct fz *z, struct fz_fd *f)
{
	static const size_t lens[] = { 0, 1, FZ_MAXREC, FZ_MAXREC + 1,
				       65536, 1u << 30 };
	size_t len = fz_rand(z, 2) ? 1 + fz_rand(z, FZ_MAXREC) :
				     lens[fz_rand(z, 6)];
	uint64_t buf = fz_rand(z, 4) ? (uintptr_t)z->scratch : fz_ptr(z);
	ssize_t ret = write(f->fd, (void *)(uintptr_t)buf, len);
	int err = ret < 0 ? errno : 0;

	z->ops[1]++;
	if (ret >= 0 && (size_t)ret != len)
		FZ_VIOL(z, "write of %zu returned %zd", len, ret);
	z->records += ret >= 0;
	if (ret < 0 && !fz_in(err, FZ_ALLOW(EINVAL, EMSGSIZE, EFAULT, EAGAIN,
					    EBADF)))
		FZ_VIOL(z, "write of %zu: %s", len, strerror(err));
}

static struct fz_map *fz_slot(struct fz *z)
{
	struct fz_map *m = &z->maps[fz_rand(z, FZ_MAPS)];

	if (m->addr)
		munmap(m->addr, m->len);
	m->addr = NULL;
	return m;
}

static void fz_mmap(struct fz *z, struct fz_fd *f)
{
	static const int prots[] = {
		PROT_READ, PROT_READ | PROT_WRITE, PROT_WRITE, PROT_NONE,
		PROT_READ | PROT_EXEC, PROT_READ | PROT_WRITE | PROT_EXEC,
	};
	size_t page = 4096, len, prod = z->lay.prod_size ? z->lay.prod_size :
							    16 * page;
	int prot = prots[fz_rand(z, 6)];
	int flags = fz_rand(z, 6) ? MAP_SHARED : MAP_PRIVATE;
	off_t off;
	struct fz_map *m;
	void *p;
	int sig;

	switch (fz_rand(z, 5)) {
	case 0:
		off = 0;
		break;
	case 1:
		off = page;
		break;
	case 2:
		off = page * fz_rand(z, prod / page + 4);
		break;
	case 3:
		off = (off_t)(splitmix64(&z->rng) >> 12) << 12;
		break;
	default:
		off = fz_rand(z, 2 * page);
		break;
	}
	switch (fz_rand(z, 6)) {
	case 0:
		len = page;
		break;
	case 1:
		len = prod;
		break;
	case 2:
		len = prod + page;
		break;
	case 3:
		len = 1 + fz_rand(z, 2 * prod);
		break;
	case 4:
		len = (size_t)1 << (20 + fz_rand(z, 20));
		break;
	default:
		len = page * (1 + fz_rand(z, 4));
		break;
	}
	z->ops[2]++;
	p = mmap(NULL, len, prot, flags, f->fd, off);
	if (p == MAP_FAILED) {
		if (!fz_in(errno, FZ_ALLOW(EINVAL, EPERM, EACCES, ENOMEM,
					   EOVERFLOW)))
			FZ_VIOL(z, "mmap off %#llx len %#zx prot %d: %s",
				(unsigned long long)off, len, prot,
				strerror(errno));
		return;
	}
	z->maps_ok++;
	if (f->attached < 0)
		FZ_VIOL(z, "mmap on an unattached fd succeeded (off %#llx)",
			(unsigned long long)off);
	if ((prot & PROT_WRITE) && flags == MAP_SHARED &&
	    (off != 0 || len > page))
		FZ_VIOL(z, "writable mapping at %#llx len %#zx succeeded",
			(unsigned long long)off, len);
	if (flags == MAP_PRIVATE)
		FZ_VIOL(z, "private mapping succeeded");
	m = fz_slot(z);
	m->addr = p;
	m->len = len;
	m->writable_ok = off == 0 && len <= page;
	sig = prot & PROT_READ ? fz_touch(p, len) : 0;
	if (sig)
		FZ_VIOL(z, "signal %d reading a mapping (off %#llx len %#zx)",
			sig, (unsigned long long)off, len);
	/* Garbage in read_pos: the kernel may only use it to decide wakeups. */
	if ((prot & PROT_WRITE) && m->writable_ok)
		*(volatile uint64_t *)p = fz_rand(z, 2) ?
			splitmix64(&z->rng) : fz_rand(z, 1u << 20);
}

static void fz_remap(struct fz *z)
{
	struct fz_map *m = &z->maps[fz_rand(z, FZ_MAPS)];
	static const int prots[] = { PROT_READ, PROT_READ | PROT_WRITE,
				     PROT_NONE, PROT_READ | PROT_EXEC };
	size_t len;
	void *p;

	if (!m->addr)
		return;
	z->ops[3]++;
	if (fz_rand(z, 2)) {
		int prot = prots[fz_rand(z, 4)];

		if (mprotect(m->addr, m->len, prot)) {
			if (errno != EACCES)
				FZ_VIOL(z, "mprotect %d: %s", prot,
					strerror(errno));
		} else if ((prot & PROT_WRITE) && !m->writable_ok) {
			FZ_VIOL(z, "mprotect made a read-only mapping writable");
		}
		return;
	}
	/* Growing must not give pages the ring does not have; never touched. */
	len = fz_rand(z, 2) ? m->len * 2 : 4096;
	p = mremap(m->addr, m->len, len, MREMAP_MAYMOVE);
	if (p != MAP_FAILED) {
		munmap(p, len);
		m->addr = NULL;
	}
}

static void fz_misc(struct fz *z, struct fz_fd *f)
{
	struct pollfd pfd = { .fd = f->fd, .events = POLLIN | POLLOUT };
	char c;

	z->ops[4]++;
	switch (fz_rand(z, 4)) {
	case 0:
		if (poll(&pfd, 1, 0) < 0)
			FZ_VIOL(z, "poll: %s", strerror(errno));
		break;
	case 1:
		if (fsync(f->fd) && !fz_in(errno, FZ_ALLOW(ETIMEDOUT, EINVAL,
							    EBADF)))
			FZ_VIOL(z, "fsync: %s", strerror(errno));
		break;
	case 2:
		if (read(f->fd, &c, 1) >= 0)
			FZ_VIOL(z, "read from the device succeeded");
		break;
	default:
		fz_close(f);
		fz_open(z, f);
		break;
	}
}

FIXTURE(fuzz) {
	char skip[128];
	unsigned long taint;
	struct fz z;
	struct evring_nl *nl;
};

FIXTURE_SETUP(fuzz)
{
	ASSERT_EQ(0, load_or_skip(self->skip, sizeof(self->skip),
				  "partitions=2 ring_size=16384 "
				  "max_record=1024 fsync_timeout_ms=5"));
	self->taint = kernel_taint();
	for (unsigned int i = 0; i < FZ_FDS; i++)
		self->z.fds[i].fd = -1;
}

FIXTURE_TEARDOWN(fuzz)
{
	for (unsigned int i = 0; i < FZ_FDS; i++)
		fz_close(&self->z.fds[i]);
	for (unsigned int i = 0; i < FZ_MAPS; i++)
		if (self->z.maps[i].addr)
			munmap(self->z.maps[i].addr, self->z.maps[i].len);
	evring_nl_close(self->nl);
	if (self->skip[0])
		return;
	EXPECT_EQ(0, kernel_taint() & ~self->taint & BAD_TAINTS);
	unload_after(_metadata);
}

/*
 * After the storm: each partition's surviving records are gap-free and
 * sane, and 300 known records go through intact with the next seqs.
 */
static void fz_check_ring(struct __test_metadata *_metadata,
			  struct evring_nl *nl, unsigned int part)
{
	struct evring_consumer *c = NULL;
	struct evring_part_stats st;
	const struct evring_rec *r;
	uint8_t buf[FZ_MAXREC], want[FZ_MAXREC];
	uint64_t seq, rng = part + 1;
	int fd;

	memset(&st, 0xa5, sizeof(st));
	ASSERT_EQ(0, evring_nl_stats(nl, part, &st));
	ASSERT_EQ(0, st.consumer);
	ASSERT_EQ(0, evring_consumer_open(NULL, part, &c));
	ASSERT_EQ(st.release_pos, evring_consumer_pos(c));
	seq = st.released + 1;
	while ((r = evring_consumer_next(c))) {
		ASSERT_EQ(seq, r->seq);
		ASSERT_LE(1, r->len);
		ASSERT_GE(FZ_MAXREC, r->len);
		ASSERT_EQ(0, r->flags);
		ASSERT_EQ((uint32_t)getpid(), r->pid);
		seq++;
	}
	ASSERT_EQ(st.produced + 1, seq);
	ASSERT_EQ(st.prod_pos, evring_consumer_pos(c));
	ASSERT_EQ(0, evring_consumer_release(c, evring_consumer_pos(c)));

	fd = writer_open(0, EVRING_KEY_PARTITION, part);
	ASSERT_LE(0, fd);
	for (unsigned int i = 0; i < 300; i++) {
		uint32_t len = 1 + splitmix64(&rng) % FZ_MAXREC;

		fill_stream(buf, len, 1000 * part + i);
		ASSERT_EQ(len, write(fd, buf, len));
		r = evring_consumer_next(c);
		ASSERT_NE(NULL, r);
		ASSERT_EQ(seq + i, r->seq);
		ASSERT_EQ(len, r->len);
		fill_stream(want, len, 1000 * part + i);
		ASSERT_EQ(0, memcmp(want, r + 1, len));
		ASSERT_EQ(0, evring_consumer_release(c,
						     evring_consumer_pos(c)));
	}
	ASSERT_EQ(NULL, evring_consumer_next(c));
	ASSERT_EQ(0, fsync(fd));
	close(fd);
	memset(&st, 0xa5, sizeof(st));
	ASSERT_EQ(0, evring_nl_stats(nl, part, &st));
	EXPECT_EQ(0, st.fill);
	EXPECT_EQ(0, st.writers_blocked);
	EXPECT_EQ(1, st.consumer);
	evring_consumer_close(c);
}

TEST_F_TIMEOUT(fuzz, random_ioctl_write_mmap_sequences_leave_the_ring_working, 150)
{
	struct fz *z = &self->z;
	struct sigaction sa = { .sa_handler = fz_fault };
	uint64_t seed = test_seed();

	NEED_MODULE();
	TH_LOG("seed %#llx (EVRING_SEED to replay)", (unsigned long long)seed);
	z->rng = seed;
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
	z->scratch = mmap(NULL, FZ_SCRATCH, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	z->iovs = mmap(NULL, FZ_SCRATCH, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	z->none = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	z->ro = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, z->scratch);
	ASSERT_NE(MAP_FAILED, z->iovs);
	ASSERT_NE(MAP_FAILED, z->none);
	ASSERT_NE(MAP_FAILED, z->ro);
	fill_stream(z->ro, 4096, seed);
	ASSERT_EQ(0, mprotect(z->ro, 4096, PROT_READ));
	for (unsigned int i = 0; i < FZ_FDS; i++)
		fz_open(z, &z->fds[i]);

	for (unsigned int it = 0; it < FZ_ITERS && z->nviol < 50; it++) {
		struct fz_fd *f = &z->fds[fz_rand(z, FZ_FDS)];

		if (fz_rand(z, 16) == 0)
			fill_stream(z->scratch, FZ_SCRATCH,
				    splitmix64(&z->rng));
		switch (fz_rand(z, 10)) {
		case 0: case 1: case 2: case 3:
			fz_ioctl(z, f);
			break;
		case 4: case 5:
			fz_write(z, f);
			break;
		case 6: case 7:
			fz_mmap(z, f);
			break;
		case 8:
			fz_remap(z);
			break;
		default:
			fz_misc(z, f);
			break;
		}
	}
	TH_LOG("%u ioctls, %u writes, %u mmaps, %u remaps, %u misc",
	       z->ops[0], z->ops[1], z->ops[2], z->ops[3], z->ops[4]);
	TH_LOG("succeeded: %u attaches, %u mmaps, %u releases, %u records",
	       z->attaches, z->maps_ok, z->releases, z->records);
	for (unsigned int i = 0; i < z->nviol && i < 8; i++)
		TH_LOG("violation: %s", z->viol[i]);
	EXPECT_EQ(0, z->nviol);
	/* The storm reached past the first checks. */
	EXPECT_LT(0, z->attaches);
	EXPECT_LT(0, z->maps_ok);
	EXPECT_LT(0, z->releases);
	EXPECT_LT(0, z->records);

	/* Everything let go: every fd, every mapping. */
	for (unsigned int i = 0; i < FZ_FDS; i++)
		fz_close(&z->fds[i]);
	for (unsigned int i = 0; i < FZ_MAPS; i++) {
		if (z->maps[i].addr)
			munmap(z->maps[i].addr, z->maps[i].len);
		z->maps[i].addr = NULL;
	}
	ASSERT_EQ(0, evring_nl_open(&self->nl));
	for (unsigned int p = 0; p < FZ_PARTS; p++)
		fz_check_ring(_metadata, self->nl, p);
	EXPECT_EQ(0, kernel_taint() & ~self->taint & BAD_TAINTS);
}

/*
 * Consumers racing for one partition: two threads attach, map, release and
 * detach (or just close) as fast as they can while a third writes.  At no
 * instant may both hold the partition, and afterwards the ring is intact.
 */
#define RACE_ITERS	1500

struct race {
	int holders;		/* threads that believe they are attached */
	int stop;
	unsigned int nviol;
	char viol[4][160];
	unsigned int won[2], busy[2];
};

struct race_thread {
	struct race *r;
	unsigned int id;
	uint64_t rng;
};

#define RACE_VIOL(r, fmt, ...) do {					\
	unsigned int __i = __atomic_fetch_add(&(r)->nviol, 1,		\
					      __ATOMIC_RELAXED);	\
	if (__i < 4)							\
		snprintf((r)->viol[__i], sizeof((r)->viol[0]), fmt,	\
			 ##__VA_ARGS__);				\
} while (0)

static void race_once(struct race_thread *t)
{
	struct race *r = t->r;
	struct evring_attach at = { .partition = 0 };
	struct evring_layout lay;
	void *view = MAP_FAILED;
	int fd = open(EVRING_DEV_PATH, O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		RACE_VIOL(r, "open: %s", strerror(errno));
		return;
	}
	if (ioctl(fd, EVRING_IOC_ATTACH, &at)) {
		if (errno != EBUSY)
			RACE_VIOL(r, "ATTACH: %s", strerror(errno));
		r->busy[t->id]++;
		close(fd);
		return;
	}
	if (__atomic_add_fetch(&r->holders, 1, __ATOMIC_ACQ_REL) != 1)
		RACE_VIOL(r, "two consumers attached to one partition");
	r->won[t->id]++;
	if (!ioctl(fd, EVRING_IOC_LAYOUT, &lay))
		view = mmap(NULL, lay.prod_size, PROT_READ, MAP_SHARED, fd,
			    lay.prod_off);
	if (view != MAP_FAILED) {
		const struct evring_prod_page *pp = view;
		const uint8_t *data = (const uint8_t *)view + lay.data_off;
		uint64_t pos = __atomic_load_n(&pp->release_pos,
					       __ATOMIC_ACQUIRE);
		uint64_t end = __atomic_load_n(&pp->prod_pos,
					       __ATOMIC_ACQUIRE);
		struct evring_release rel;

		/* Walk a few records and release them. */
		for (uint64_t n = splitmix64(&t->rng) % 8; n && pos < end; n--)
			pos += EVRING_REC_SIZE(((const struct evring_rec *)
				(data + (pos & (lay.data_size - 1))))->len);
		rel = (struct evring_release){ .pos = pos };
		if (ioctl(fd, EVRING_IOC_RELEASE, &rel))
			RACE_VIOL(r, "RELEASE %llu in [.., %llu]: %s",
				  (unsigned long long)pos,
				  (unsigned long long)end, strerror(errno));
	} else {
		RACE_VIOL(r, "LAYOUT/mmap: %s", strerror(errno));
	}
	/*
	 * Let go, one of three ways; holders drops just before the step that
	 * ends the attachment, so the other thread cannot win before it.
	 */
	switch (splitmix64(&t->rng) % 3) {
	case 0:		/* DETACH, then clean up */
		__atomic_sub_fetch(&r->holders, 1, __ATOMIC_ACQ_REL);
		if (ioctl(fd, EVRING_IOC_DETACH))
			RACE_VIOL(r, "DETACH: %s", strerror(errno));
		if (view != MAP_FAILED)
			munmap(view, lay.prod_size);
		close(fd);
		break;
	case 1:		/* unmap, then the close detaches */
		if (view != MAP_FAILED)
			munmap(view, lay.prod_size);
		__atomic_sub_fetch(&r->holders, 1, __ATOMIC_ACQ_REL);
		close(fd);
		break;
	default:	/* close first: the munmap drops the last reference */
		if (view == MAP_FAILED)
			__atomic_sub_fetch(&r->holders, 1, __ATOMIC_ACQ_REL);
		close(fd);
		if (view != MAP_FAILED) {
			__atomic_sub_fetch(&r->holders, 1, __ATOMIC_ACQ_REL);
			munmap(view, lay.prod_size);
		}
		break;
	}
}

static void *race_fn(void *arg)
{
	struct race_thread *t = arg;

	for (unsigned int i = 0; i < RACE_ITERS && t->r->nviol < 4; i++)
		race_once(t);
	return NULL;
}

static void *race_writer_fn(void *arg)
{
	struct race *r = arg;
	uint8_t buf[FZ_MAXREC];
	uint64_t rng = 7;
	int fd = writer_open(O_NONBLOCK, EVRING_KEY_PARTITION, 0);

	if (fd < 0) {
		RACE_VIOL(r, "writer open: %s", strerror(-fd));
		return NULL;
	}
	memset(buf, 'r', sizeof(buf));
	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		size_t len = 1 + splitmix64(&rng) % FZ_MAXREC;

		if (write(fd, buf, len) < 0 && errno != EAGAIN) {
			RACE_VIOL(r, "write: %s", strerror(errno));
			break;
		}
	}
	close(fd);
	return NULL;
}

TEST_F_TIMEOUT(fuzz, racing_consumers_never_share_a_partition, 150)
{
	struct race r = { 0 };
	struct race_thread t[2];
	pthread_t th[2], wr;
	uint64_t seed = test_seed();

	NEED_MODULE();
	TH_LOG("seed %#llx (EVRING_SEED to replay)", (unsigned long long)seed);
	ASSERT_EQ(0, pthread_create(&wr, NULL, race_writer_fn, &r));
	for (unsigned int i = 0; i < 2; i++) {
		t[i] = (struct race_thread){ .r = &r, .id = i,
					     .rng = seed + i };
		ASSERT_EQ(0, pthread_create(&th[i], NULL, race_fn, &t[i]));
	}
	for (unsigned int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	__atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
	pthread_join(wr, NULL);

	TH_LOG("attached %u + %u times, EBUSY %u + %u times", r.won[0],
	       r.won[1], r.busy[0], r.busy[1]);
	for (unsigned int i = 0; i < r.nviol && i < 4; i++)
		TH_LOG("violation: %s", r.viol[i]);
	EXPECT_EQ(0, r.nviol);
	EXPECT_LT(0, r.won[0] + r.won[1]);

	ASSERT_EQ(0, evring_nl_open(&self->nl));
	for (unsigned int p = 0; p < FZ_PARTS; p++)
		fz_check_ring(_metadata, self->nl, p);
	EXPECT_EQ(0, kernel_taint() & ~self->taint & BAD_TAINTS);
}

TEST_HARNESS_MAIN
