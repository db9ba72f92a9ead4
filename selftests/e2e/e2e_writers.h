/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * e2e_writers.h: the events the end-to-end tests write and the record of
 * every attempt.  Included by e2e.h.
 *
 * An event carries its writer and counter and a pattern derived from both
 * (struct e2e_ev), so a record damaged, mixed up or truncated on the way
 * is caught.  Writers run in child processes (e2e_spawn) and mark each
 * event in shared memory (struct e2e_track) before the call that sends it
 * (SENT: outcome unknown) and after (ACKED: write(2) returned, or a socket
 * ACK covered it; FAILED: the call said no).
 */
#ifndef EVRING_E2E_WRITERS_H
#define EVRING_E2E_WRITERS_H

/* --- events ------------------------------------------------------------- */

/* The head of every test event; a pattern of (writer, counter) follows. */
struct e2e_ev {
	uint32_t magic;
	uint32_t writer;
	uint64_t counter;
	uint32_t len;		/* the whole payload */
	uint32_t pad;
};

_Static_assert(sizeof(struct e2e_ev) == E2E_EV_MIN, "e2e_ev layout");

static inline uint8_t e2e_ev_byte(uint32_t writer, uint64_t counter,
				  uint32_t i)
{
	return (uint8_t)(writer * 31 + counter * 7 + i * 13 + (i >> 8));
}

/* A length from @lo to @hi that varies with the counter. */
static inline uint32_t e2e_ev_len(uint32_t writer, uint64_t counter,
				  uint32_t lo, uint32_t hi)
{
	if (lo < E2E_EV_MIN)
		lo = E2E_EV_MIN;
	return hi <= lo ? lo : lo + (uint32_t)((counter * 2654435761u + writer) %
					      (hi - lo + 1));
}

/* Build event (@writer, @counter) of @len >= E2E_EV_MIN bytes in @buf. */
static inline void e2e_ev_make(void *buf, uint32_t writer, uint64_t counter,
			       uint32_t len)
{
	struct e2e_ev *ev = buf;
	uint8_t *b = buf;

	ev->magic = E2E_EV_MAGIC;
	ev->writer = writer;
	ev->counter = counter;
	ev->len = len;
	ev->pad = 0;
	for (uint32_t i = E2E_EV_MIN; i < len; i++)
		b[i] = e2e_ev_byte(writer, counter, i);
}

/* Is @p (@len bytes) an intact test event?  0 (and who wrote it) or -EBADMSG. */
static inline int e2e_ev_parse(const void *p, uint32_t len, uint32_t *writer,
			       uint64_t *counter)
{
	struct e2e_ev ev;
	const uint8_t *b = p;

	if (len < E2E_EV_MIN)
		return -EBADMSG;
	memcpy(&ev, p, sizeof(ev));
	if (ev.magic != E2E_EV_MAGIC || ev.len != len || ev.pad)
		return -EBADMSG;
	for (uint32_t i = E2E_EV_MIN; i < len; i++)
		if (b[i] != e2e_ev_byte(ev.writer, ev.counter, i))
			return -EBADMSG;
	*writer = ev.writer;
	*counter = ev.counter;
	return 0;
}

/* --- what the writers attempted (shared memory) ------------------------ */

enum e2e_state {
	E2E_NONE = 0,		/* never attempted */
	E2E_SENT,		/* attempted; outcome unknown */
	E2E_ACKED,		/* acknowledged: must be spooled exactly once */
	E2E_FAILED,		/* the call said no: must not be spooled */
};

struct e2e_writer_info {
	uint64_t next;			/* counters attempted: 0 .. next-1 */
	uint64_t acked;			/* how many are E2E_ACKED */
	uint64_t progress_ms;		/* last time a call returned */
	uint64_t reconnects;		/* socket writers */
	int32_t error;			/* a fatal -errno the writer hit */
	int32_t in_call;		/* inside write/send/sync now */
	pid_t pid;
};

struct e2e_track {
	volatile int stop;		/* writers: finish the current call, exit */
	unsigned int nwriters;
	uint64_t cap;			/* counters per writer */
	size_t size;
	struct e2e_writer_info w[E2E_WRITERS_MAX];
	uint8_t state[];		/* [writer * cap + counter] */
};

static inline struct e2e_track *e2e_track_new(unsigned int nwriters,
					      uint64_t cap)
{
	size_t size = sizeof(struct e2e_track) + (size_t)nwriters * cap;
	struct e2e_track *t;

	if (nwriters > E2E_WRITERS_MAX)
		return NULL;
	t = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		 -1, 0);
	if (t == MAP_FAILED)
		return NULL;
	t->nwriters = nwriters;
	t->cap = cap;
	t->size = size;
	return t;
}

static inline void e2e_track_free(struct e2e_track *t)
{
	if (t)
		munmap(t, t->size);
}

static inline uint8_t *e2e_state(struct e2e_track *t, uint32_t w, uint64_t c)
{
	return &t->state[(size_t)w * t->cap + c];
}

static inline void e2e_mark(struct e2e_track *t, uint32_t w, uint64_t c,
			    enum e2e_state s)
{
	uint8_t *p = e2e_state(t, w, c);

	if (s == E2E_ACKED && *p != E2E_ACKED)
		t->w[w].acked++;
	*p = s;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/* --- device writers ----------------------------------------------------- */

struct e2e_dev_writer {
	struct e2e_track *t;
	uint32_t id;
	int partition;		/* pinned with EVRING_KEY_PARTITION; -1: tgid */
	uint64_t count;		/* stop after this many events; 0: at t->stop */
	unsigned int rate;	/* mean events/s; 0: as fast as the ring takes */
	bool batch;		/* use EVRING_IOC_WRITE_BATCH some of the time */
	uint32_t len_lo, len_hi;
	uint64_t seed;
};

/*
 * A child's body: write numbered events to /dev/evring, bursts of random
 * size, write(2) or WRITE_BATCH, marking each event SENT before the call
 * and ACKED (or FAILED) by what the call returned.  Exits 0, or 1 after an
 * unexpected error (recorded in w[id].error).
 */
static inline int e2e_dev_writer_main(void *arg)
{
	struct e2e_dev_writer *o = arg;
	struct e2e_track *t = o->t;
	struct e2e_writer_info *wi = &t->w[o->id];
	uint32_t hi = o->len_hi ? o->len_hi : 120;
	static uint8_t bufs[64][4096];
	struct evring_iovec iov[64];
	uint64_t seed = o->seed, start = e2e_now_ms();
	int fd;

	wi->pid = getpid();
	if (hi > sizeof(bufs[0]))
		hi = sizeof(bufs[0]);
	fd = open(EVRING_DEV_PATH, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		wi->error = -errno;
		return 1;
	}
	if (o->partition >= 0) {
		struct evring_key k = {
			.key = (uint64_t)o->partition,
			.mode = EVRING_KEY_PARTITION,
		};

		if (ioctl(fd, EVRING_IOC_SET_KEY, &k)) {
			wi->error = -errno;
			return 1;
		}
	}
	while (!t->stop && (!o->count || wi->next < o->count)) {
		uint64_t r = e2e_rand(&seed);
		unsigned int burst = r % 10 ? 1 + r % 8 : 32 + r % 200;

		while (burst && !t->stop && (!o->count || wi->next < o->count)) {
			unsigned int n = o->batch && (r >> 32) % 2 ?
					 (burst < 64 ? burst : 64) : 1;
			uint64_t c0 = wi->next;
			ssize_t ret;

			if (o->count && n > o->count - c0)
				n = o->count - c0;
			if (c0 + n > t->cap) {
				wi->error = -ENOSPC;
				return 1;
			}
			for (unsigned int i = 0; i < n; i++) {
				uint32_t len = e2e_ev_len(o->id, c0 + i,
							  o->len_lo, hi);

				e2e_ev_make(bufs[i], o->id, c0 + i, len);
				iov[i] = (struct evring_iovec){
					.base = (uintptr_t)bufs[i],
					.len = len,
				};
				e2e_mark(t, o->id, c0 + i, E2E_SENT);
			}
			wi->next = c0 + n;
			wi->in_call = 1;
			if (n == 1) {
				ret = write(fd, bufs[0], iov[0].len);
				ret = ret == (ssize_t)iov[0].len ? 1 :
				      ret < 0 ? -errno : -EIO;
			} else {
				struct evring_batch b = {
					.records = (uintptr_t)iov,
					.count = n,
				};

				ret = ioctl(fd, EVRING_IOC_WRITE_BATCH, &b);
				ret = ret < 0 ? -errno : ret;
			}
			wi->in_call = 0;
			wi->progress_ms = e2e_now_ms();
			for (unsigned int i = 0; i < n; i++)
				e2e_mark(t, o->id, c0 + i,
					 (ssize_t)i < ret ? E2E_ACKED : E2E_FAILED);
			if (ret <= 0) {
				wi->error = ret ? (int)ret : -EIO;
				return 1;
			}
			burst -= n < burst ? n : burst;
		}
		if (o->rate) {
			uint64_t due = start + wi->next * 1000 / o->rate;
			uint64_t now = e2e_now_ms();

			if (due > now)
				e2e_sleep_ms(due - now > 200 ? 200 : due - now);
		}
	}
	close(fd);
	return 0;
}

/* --- socket writers ----------------------------------------------------- */

struct e2e_sock_writer {
	struct e2e_track *t;
	uint32_t id;
	const char *path;	/* the ingest socket */
	uint64_t count;		/* stop after this many events; 0: at t->stop */
	unsigned int rate;	/* mean events/s; 0: as fast as acks come */
	unsigned int burst;	/* most events between syncs (default 32) */
	uint32_t len_lo, len_hi;
	uint64_t seed;
};

/* Mark the events of the connection that began at @c0 that @w acked. */
static inline void e2e_sock_acked(struct e2e_track *t, uint32_t id,
				  uint64_t c0, const struct evring_writer *w)
{
	uint64_t n = evring_writer_acked(w);

	for (uint64_t c = c0; c < c0 + n; c++)
		if (*e2e_state(t, id, c) != E2E_ACKED)
			e2e_mark(t, id, c, E2E_ACKED);
}

/*
 * A child's body: send numbered events over the ingest socket with
 * libevring (a writer whose device path does not exist), a burst at a
 * time, then evring_writer_sync(); every event an ACK covers is ACKED,
 * the rest of a connection that broke stay SENT (unknown).  After a
 * broken connection it connects again (a new writer) and goes on with
 * new counters.  Exits 0, or 1 on an unexpected error (w[id].error).
 */
static inline int e2e_sock_writer_main(void *arg)
{
	struct e2e_sock_writer *o = arg;
	struct e2e_track *t = o->t;
	struct e2e_writer_info *wi = &t->w[o->id];
	uint32_t hi = o->len_hi ? o->len_hi : 120;
	unsigned int most = o->burst ? o->burst : 32;
	uint64_t seed = o->seed, start = e2e_now_ms(), c0 = 0;
	struct evring_writer *w = NULL;
	static uint8_t buf[1 << 16];
	int ret;

	wi->pid = getpid();
	if (hi > sizeof(buf))
		hi = sizeof(buf);
	while (!t->stop && (!o->count || wi->next < o->count)) {
		unsigned int burst = 1 + e2e_rand(&seed) % most;

		if (!w) {
			ret = evring_writer_open("/nonexistent/evring", o->path,
						 &w);
			if (ret == -ENOENT || ret == -ECONNREFUSED ||
			    ret == -EAGAIN) {
				e2e_sleep_ms(2);
				continue;
			}
			if (ret) {
				wi->error = ret;
				return 1;
			}
			if (evring_writer_is_device(w)) {
				wi->error = -EPROTO;
				return 1;
			}
			c0 = wi->next;
			wi->reconnects++;
		}
		ret = 0;
		for (unsigned int i = 0; i < burst && !ret; i++) {
			uint64_t c = wi->next;
			uint32_t len = e2e_ev_len(o->id, c, o->len_lo, hi);

			if (o->count && c >= o->count)
				break;
			if (c >= t->cap) {
				wi->error = -ENOSPC;
				return 1;
			}
			e2e_ev_make(buf, o->id, c, len);
			e2e_mark(t, o->id, c, E2E_SENT);
			wi->next = c + 1;
			wi->in_call = 1;
			ret = evring_writer_write(w, buf, len);
			wi->in_call = 0;
		}
		if (!ret) {
			wi->in_call = 1;
			ret = evring_writer_sync(w, 60000);
			wi->in_call = 0;
		}
		wi->progress_ms = e2e_now_ms();
		e2e_sock_acked(t, o->id, c0, w);
		if (ret == -EPIPE || ret == -ECONNRESET || ret == -ENOTCONN) {
			evring_writer_close(w);
			w = NULL;
			continue;
		}
		if (ret) {
			wi->error = ret;
			return 1;
		}
		if (o->rate) {
			uint64_t due = start + wi->next * 1000 / o->rate;
			uint64_t now = e2e_now_ms();

			if (due > now)
				e2e_sleep_ms(due - now > 200 ? 200 : due - now);
		}
	}
	evring_writer_close(w);
	return 0;
}

#endif /* EVRING_E2E_WRITERS_H */
