// SPDX-License-Identifier: GPL-2.0-only
/*
 * ship_device_test: the whole path, end to end, on the real kernel module:
 * writer processes -> /dev/evring -> evringd (device source) -> SQLite
 * spool -> region "a", a NATS JetStream stream on a 3-node cluster of real
 * nats-server processes on 127.0.0.1 inside the VM (R3: the stream is
 * "durable").  Faults:
 *  - evringd is killed with SIGKILL over and over, mostly the moment its
 *    status shows a publish in flight, and restarted each time;
 *  - every server of the region is killed with SIGKILL while the writers
 *    go on (the spool absorbs it), then restarted.
 * Each test ends when `evringctl --json status` shows the device drained
 * and region "a" with nothing lagging or in flight, and is judged twice
 * over the stream: `evringctl consume --config F --region a --expect
 * e2e/kmod-P/EPOCH/1-LAST ...` must exit 0 (every record once, gap-free),
 * and our own count of its `--format json` output: every event parsed
 * back to (writer, counter) from its payload; every event a writer's
 * write(2) acknowledged is there exactly once, nothing else is, from the
 * right pid and partition, and each partition holds exactly what the
 * kernel says was produced into it.
 *
 * R3 rather than R1, measured under TCG (2 vCPUs): the cluster forms in
 * 1-10 s, comes back from a whole-region SIGKILL in 5-8 s and acks in
 * 20-140 ms (p50), so the binary takes ~70 s.  evringd batches up to
 * 200 ms (drain.batch_ms) to keep the stream's message count, and the
 * time to ship a backlog, small.
 *
 * Needs root, a loadable evring.ko ($EVRING_KO) and /usr/sbin/nats-server
 * ($NATS_SERVER): run inside the VM (selftests/e2e/run), where the guest
 * sees the host's nats-server through the shared root and its /tmp (the
 * JetStream store) is its own.  Knobs, all optional:
 *	EVRING_E2E_SEED		the PRNG seed (printed by every test)
 *	EVRING_E2E_KILLS	kill -9 rounds of evringd (default 10)
 *	EVRING_E2E_RATE		events/s per writer (default 150)
 *	EVRING_E2E_WRITERS	writer processes (default 4)
 *	EVRING_E2E_OUTAGE_MS	how long the region stays down (default 6000)
 *	EVRING_E2E_NATS_NODES	servers in the region: 3 (R3) or 1 (R1)
 *	EVRING_E2E_NATS_PORT	first client port (default 4222; routes
 *				+2000, monitoring +4000)
 */
#include "e2e.h"
#include "ship_region.h"
#include "kselftest_harness.h"

#define SD_PARTS	4
#define SD_TRACK_CAP	(1u << 18)	/* events per writer */
#define SD_HOST		"e2e"		/* e2e_daemon_start()'s host.id */
#define SD_REGION	"a"
#define SD_MODULE	"partitions=4 ring_size=65536 max_record=1024"

/*
 * The daemon's config file (the --set lines of e2e_daemon_start() add the
 * spool, sockets and host.id): short deadlines and backoffs so faults
 * heal within the test, no /metrics listener, region "a" on @c's servers
 * with one replica per server.  `evringctl consume --config` reads it too.
 */
static int sd_write_conf(const struct e2e_env *e, const struct sr_cluster *c)
{
	char buf[2048];
	int n;

	n = snprintf(buf, sizeof(buf),
		     "[ship]\n"
		     "mode = replicate\n"
		     "publish_timeout_ms = 1500\n"
		     "backoff_base_ms = 20\n"
		     "backoff_cap_ms = 500\n"
		     "breaker_open_ms = 500\n"
		     "metrics_listen =\n"
		     "\n"
		     "[region " SD_REGION "]\n"
		     "urls = %s\n"
		     "stream = EVRING\n"
		     "subject_prefix = evring\n"
		     "replicas = %u\n",
		     c->urls, c->nodes);
	return e2e_write_file(e->conf, buf, n, 0600);
}

/* --- writers: numbered events to /dev/evring, fsync now and then -------- */

/* Beside the track, in shared memory too. */
struct sd_shared {
	uint64_t fsyncs[E2E_WRITERS_MAX];	/* fsync(2)s that returned 0 */
};

struct sd_writer {
	struct e2e_track *t;
	struct sd_shared *sh;
	uint32_t id;
	unsigned int partition;
	unsigned int rate;		/* mean events/s */
	bool batch;			/* EVRING_IOC_WRITE_BATCH for bursts */
	uint64_t seed;
};

/*
 * Send events c0 .. c0 + n - 1 of @o in one call (write(2) for one,
 * WRITE_BATCH for more), marking them SENT before and ACKED or FAILED by
 * what the call returned.  0 or -errno.
 */
static int sd_write_burst(struct sd_writer *o, int fd, uint64_t c0,
			  unsigned int n)
{
	static uint8_t bufs[16][256];
	struct evring_iovec iov[16];
	struct e2e_writer_info *wi = &o->t->w[o->id];
	ssize_t ret;

	for (unsigned int i = 0; i < n; i++) {
		uint32_t len = e2e_ev_len(o->id, c0 + i, 24, sizeof(bufs[0]));

		e2e_ev_make(bufs[i], o->id, c0 + i, len);
		iov[i] = (struct evring_iovec){ .base = (uintptr_t)bufs[i],
						.len = len };
		e2e_mark(o->t, o->id, c0 + i, E2E_SENT);
	}
	wi->next = c0 + n;
	wi->in_call = 1;
	if (n == 1) {
		ret = write(fd, bufs[0], iov[0].len);
		ret = ret == (ssize_t)iov[0].len ? 1 : ret < 0 ? -errno : -EIO;
	} else {
		struct evring_batch b = { .records = (uintptr_t)iov, .count = n };

		ret = ioctl(fd, EVRING_IOC_WRITE_BATCH, &b);
		ret = ret < 0 ? -errno : ret;
	}
	wi->in_call = 0;
	wi->progress_ms = e2e_now_ms();
	for (unsigned int i = 0; i < n; i++)
		e2e_mark(o->t, o->id, c0 + i,
			 (ssize_t)i < ret ? E2E_ACKED : E2E_FAILED);
	if (ret < (ssize_t)n)
		return ret < 0 ? (int)ret : -EIO;
	return 0;
}

/*
 * A child's body: bursts of 1..16 numbered events at about o->rate a
 * second to partition o->partition, an fsync(2) every 64 events or so and
 * one at the end (each waits until evringd spooled them, across its
 * restarts).  Exits 0, or 1 with w[id].error set.
 */
static int sd_writer_main(void *arg)
{
	struct sd_writer *o = arg;
	struct e2e_track *t = o->t;
	struct e2e_writer_info *wi = &t->w[o->id];
	struct evring_key k = { .key = o->partition,
				.mode = EVRING_KEY_PARTITION };
	uint64_t seed = o->seed, start = e2e_now_ms(), unsynced = 0;
	int fd, ret = 0;

	wi->pid = getpid();
	fd = open(EVRING_DEV_PATH, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || ioctl(fd, EVRING_IOC_SET_KEY, &k)) {
		wi->error = -errno;
		return 1;
	}
	while (!t->stop && !ret) {
		unsigned int burst = 1 + e2e_rand(&seed) % 16;

		if (wi->next + burst > t->cap) {
			ret = -ENOSPC;
			break;
		}
		if (o->batch) {
			ret = sd_write_burst(o, fd, wi->next, burst);
		} else {
			for (unsigned int i = 0; i < burst && !ret; i++)
				ret = sd_write_burst(o, fd, wi->next, 1);
		}
		unsynced += burst;
		if (!ret && unsynced >= 64) {
			ret = fsync(fd) ? -errno : 0;
			o->sh->fsyncs[o->id] += !ret;
			unsynced = 0;
		}
		if (o->rate) {
			uint64_t due = start + wi->next * 1000 / o->rate;
			uint64_t now = e2e_now_ms();

			if (due > now)
				e2e_sleep_ms(due - now > 200 ? 200 : due - now);
		}
	}
	if (!ret) {
		ret = fsync(fd) ? -errno : 0;
		o->sh->fsyncs[o->id] += !ret;
	}
	close(fd);
	wi->error = ret;
	return ret ? 1 : 0;
}

/* --- evringd's view --------------------------------------------------- */

/* Region "a" in a status response (borrowed), or NULL. */
static json_t *sd_region(json_t *st)
{
	json_t *r;
	size_t i;

	json_array_foreach(json_object_get(st, "regions"), i, r)
		if (!strcmp(e2e_jstr(r, "name"), SD_REGION))
			return r;
	return NULL;
}

/* A status straight from the control socket (cheap: no evringctl). */
static json_t *sd_status_quick(struct e2e_env *e)
{
	json_t *st = NULL;

	if (e2e_ctl(e->ctl, "{\"cmd\":\"status\"}", &st, 5000))
		return NULL;
	if (!json_is_true(json_object_get(st, "ok"))) {
		json_decref(st);
		return NULL;
	}
	return st;
}

/* Region "a"'s numeric @key now; -ENOENT without the region. */
static int sd_region_u64(struct e2e_env *e, const char *key, uint64_t *out)
{
	json_t *st = sd_status_quick(e), *r;

	if (!st)
		return -EIO;
	r = sd_region(st);
	if (r)
		*out = e2e_jint(r, key);
	json_decref(st);
	return r ? 0 : -ENOENT;
}

/* Region "a"'s counters of one daemon's life, as its status last showed. */
struct sd_life {
	uint64_t shipped_batches;
	uint64_t reconciles;
	uint64_t duplicates;
	uint64_t retries;
};

/*
 * Poll until region "a" has a publish in flight; true when seen.  *@life:
 * the region's counters in the last status seen.
 */
static bool sd_wait_inflight(struct e2e_env *e, int timeout_ms,
			     struct sd_life *life)
{
	uint64_t end = e2e_now_ms() + timeout_ms;

	do {
		json_t *st = sd_status_quick(e), *g = st ? sd_region(st) : NULL;
		bool busy = g && e2e_jint(g, "inflight");

		if (g)
			*life = (struct sd_life){
				.shipped_batches = e2e_jint(g, "shipped_batches"),
				.reconciles = e2e_jint(g, "reconciles"),
				.duplicates = e2e_jint(g, "duplicates"),
				.retries = e2e_jint(g, "retries"),
			};
		json_decref(st);
		if (busy)
			return true;
		e2e_sleep_ms(2);
	} while (e2e_now_ms() < end);
	return false;
}

/* A device partition's range, for consume --expect. */
struct sd_range {
	char epoch[20];
	uint64_t last_seq;
};

/*
 * Everything in: the device drained, region "a" with no lag and nothing
 * in flight.  When so, each device partition's epoch and last seq go to
 * @r (indexed by partition).
 */
static bool sd_status_shipped(json_t *st, struct sd_range *r)
{
	json_t *g = sd_region(st), *p;
	size_t i;

	if (!g || !e2e_status_drained(st, "device") ||
	    e2e_jint(g, "lag_batches") || e2e_jint(g, "lag_events") ||
	    e2e_jint(g, "inflight"))
		return false;
	json_array_foreach(json_object_get(st, "partitions"), i, p) {
		uint64_t part = e2e_jint(p, "partition");

		if (strcmp(e2e_jstr(p, "source"), "device") || part >= SD_PARTS)
			continue;
		snprintf(r[part].epoch, sizeof(r[part].epoch), "%s",
			 e2e_jstr(p, "epoch"));
		r[part].last_seq = e2e_jint(p, "last_seq");
	}
	return true;
}

/*
 * Poll `evringctl --json status` until sd_status_shipped(); the last
 * status goes to *@last (json_decref() it).  0, -ETIMEDOUT, -ECHILD.
 */
static int sd_wait_shipped(struct e2e_env *e, int timeout_ms,
			   struct sd_range *r, json_t **last)
{
	uint64_t end = e2e_now_ms() + timeout_ms;

	do {
		json_t *st = NULL;

		if (e2e_daemon_gone(e))
			return -ECHILD;
		if (e2e_status(e, &st)) {
			e2e_sleep_ms(50);
			continue;
		}
		if (sd_status_shipped(st, r)) {
			*last = st;
			return 0;
		}
		json_decref(*last);
		*last = st;
		e2e_sleep_ms(100);
	} while (e2e_now_ms() < end);
	return -ETIMEDOUT;
}

static void sd_print_region(const char *what, json_t *st)
{
	json_t *g = sd_region(st);

	if (!g) {
		e2e_msg("%s: no region '" SD_REGION "' in the status", what);
		return;
	}
	e2e_msg("%s: region " SD_REGION " connected %d durable %d (R%" PRIu64
		") breaker %s (opened %" PRIu64 ") window %" PRIu64
		" inflight %" PRIu64 " lag %" PRIu64 " batches / %" PRIu64
		" events; shipped %" PRIu64 " batches / %" PRIu64
		" events; retries %" PRIu64 " duplicates %" PRIu64
		" reconciles %" PRIu64 " dead-lettered %" PRIu64
		" ack p50 %" PRIu64 " us p99 %" PRIu64 " us; last_error '%s'",
		what, json_is_true(json_object_get(g, "connected")),
		json_is_true(json_object_get(g, "durable")),
		e2e_jint(g, "replicas"), e2e_jstr(g, "breaker"),
		e2e_jint(g, "breaker_opened"), e2e_jint(g, "window"),
		e2e_jint(g, "inflight"), e2e_jint(g, "lag_batches"),
		e2e_jint(g, "lag_events"), e2e_jint(g, "shipped_batches"),
		e2e_jint(g, "shipped_events"), e2e_jint(g, "retries"),
		e2e_jint(g, "duplicates"), e2e_jint(g, "reconciles"),
		e2e_jint(g, "dead_lettered"), e2e_jint(g, "ack_p50_us"),
		e2e_jint(g, "ack_p99_us"), e2e_jstr(g, "last_error"));
}

/* Per partition, the kernel's produced count; -EBUSY while unreleased. */
static int sd_produced(uint64_t *produced)
{
	struct evring_part_stats st[EVRING_PARTITIONS_MAX];
	unsigned int n;
	int ret = e2e_kstats(st, EVRING_PARTITIONS_MAX, &n);

	if (ret)
		return ret;
	if (n != SD_PARTS)
		return -EPROTO;
	for (unsigned int i = 0; i < n; i++) {
		if (st[i].released != st[i].produced)
			return -EBUSY;
		produced[st[i].partition] = st[i].produced;
	}
	return 0;
}

/* --- reading the stream back ------------------------------------------- */

/*
 * `evringctl consume --config CONF --region a --format json --expect
 * e2e/kmod-P/EPOCH/1-LAST ...` into DIR/consume.json; its summary line is
 * printed, all of its stderr when it fails.  Its exit status or -errno.
 */
static int sd_consume(struct e2e_env *e, const struct sd_range *r,
		      char *out, size_t outlen)
{
	const char *argv[12 + 2 * SD_PARTS];
	char expect[SD_PARTS][96], err[160], *text;
	unsigned int n = 0;
	int ret;

	argv[n++] = E2E_EVRINGCTL;
	argv[n++] = "consume";
	argv[n++] = "--config";
	argv[n++] = e->conf;
	argv[n++] = "--region";
	argv[n++] = SD_REGION;
	argv[n++] = "--format";
	argv[n++] = "json";
	for (unsigned int p = 0; p < SD_PARTS; p++) {
		if (!r[p].last_seq)
			continue;
		snprintf(expect[p], sizeof(expect[p]),
			 SD_HOST "/kmod-%u/%s/1-%" PRIu64, p, r[p].epoch,
			 r[p].last_seq);
		argv[n++] = "--expect";
		argv[n++] = expect[p];
	}
	argv[n] = NULL;
	snprintf(out, outlen, "%s/consume.json", e->dir);
	snprintf(err, sizeof(err), "%s/consume.err", e->dir);
	ret = e2e_run(argv, out, err, 180000);
	text = e2e_slurp(err, NULL);
	if (text) {
		size_t len = strlen(text);
		char *last;

		while (len && text[len - 1] == '\n')
			text[--len] = '\0';
		last = strrchr(text, '\n');
		e2e_msg("evringctl consume --region " SD_REGION " (exit %d): %s",
			ret, last ? last + 1 : text);
		if (ret)
			fprintf(stderr, "# consume stderr:\n%s\n",
				len > 4000 ? text + len - 4000 : text);
	}
	free(text);
	return ret;
}

/* --- the tests ---------------------------------------------------------- */

FIXTURE(ship) {
	struct e2e_env e;
	struct e2e_track *t;
	struct sd_shared *sh;
	struct sr_cluster nats;
	struct sd_writer wo[E2E_WRITERS_MAX];
	unsigned int nwriters;
	uint64_t seed, rng;
};

FIXTURE_SETUP(ship)
{
	unsigned int nodes = e2e_env_u64("EVRING_E2E_NATS_NODES", 3);
	unsigned int port = e2e_env_u64("EVRING_E2E_NATS_PORT", 4222);
	uint64_t t0;
	int ret;

	if (geteuid())
		SKIP(return, "needs root (run inside the VM: selftests/e2e/run)");
	ASSERT_EQ(0, access(sr_nats_server(), X_OK))
		TH_LOG("no nats-server at %s (tools/deps installs it)",
		       sr_nats_server());
	ASSERT_EQ(0, e2e_env_init(&self->e, "ship"));
	E2E_LOAD_OR_SKIP(SD_MODULE);

	self->seed = e2e_seed();
	self->rng = self->seed;
	self->nwriters = e2e_env_u64("EVRING_E2E_WRITERS", 4);
	ASSERT_LE(self->nwriters, (unsigned int)E2E_WRITERS_MAX);
	ASSERT_LT(0u, self->nwriters);
	self->t = e2e_track_new(self->nwriters, SD_TRACK_CAP);
	ASSERT_NE(NULL, self->t);
	self->sh = mmap(NULL, sizeof(*self->sh), PROT_READ | PROT_WRITE,
			MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->sh);

	ASSERT_EQ(0, sr_cluster_init(&self->nats, self->e.dir, nodes, port));
	t0 = e2e_now_ms();
	ret = sr_cluster_start(&self->nats, 120000);
	if (ret)
		sr_cluster_log_tail(&self->nats);
	ASSERT_EQ(0, ret) TH_LOG("nats cluster did not come up: %s", strerror(-ret));
	e2e_msg("seed %" PRIu64 " (EVRING_E2E_SEED to replay); region " SD_REGION
		": %u nats-server(s) on 127.0.0.1:%u.. ready in %" PRIu64 " ms",
		self->seed, nodes, port, e2e_now_ms() - t0);
	ASSERT_EQ(0, sd_write_conf(&self->e, &self->nats));
}

FIXTURE_TEARDOWN(ship)
{
	if (self->t)
		self->t->stop = 1;
	if (self->e.pid > 0)
		e2e_daemon_kill(&self->e, SIGKILL);
	e2e_reap_all();
	sr_cluster_kill(&self->nats);
	e2e_env_fini(&self->e);
	evring_module_unload();
	e2e_track_free(self->t);
	if (self->sh && self->sh != MAP_FAILED)
		munmap(self->sh, sizeof(*self->sh));
}

/*
 * The device only.  Batches of up to 200 ms: under TCG an R3 ack takes
 * ~100 ms and a partition has one batch in flight at a time, so 5 ms
 * batches would pile up a backlog that each test then waits out.
 */
static const char *const sd_sets[] = { "sources.socket=", "drain.batch_ms=200",
				       NULL };

static int sd_writers_start(FIXTURE_DATA(ship) *self, unsigned int rate)
{
	for (unsigned int i = 0; i < self->nwriters; i++) {
		pid_t pid;

		self->wo[i] = (struct sd_writer){
			.t = self->t, .sh = self->sh, .id = i,
			.partition = i % SD_PARTS, .rate = rate,
			.batch = i % 2, .seed = self->seed + i,
		};
		pid = e2e_spawn(sd_writer_main, &self->wo[i]);
		if (pid < 0)
			return pid;
	}
	return 0;
}

/*
 * Stop the writers (evringd must be up: each finishes its call and its
 * last fsync) and reap them; 0 or the first writer's -errno / status.
 */
static int sd_writers_stop(FIXTURE_DATA(ship) *self)
{
	int ret = 0;

	self->t->stop = 1;
	for (unsigned int i = 0; i < self->nwriters; i++) {
		int r;

		if (!self->t->w[i].pid)
			continue;
		r = e2e_wait(self->t->w[i].pid, 120000);
		e2e_forget(self->t->w[i].pid);
		if (r && !ret)
			ret = r;
		if (self->t->w[i].error && !ret)
			ret = self->t->w[i].error;
	}
	return ret;
}

/*
 * The end of every test: writers stopped, everything shipped, evringd
 * stopped cleanly, then the stream judged by consume and by our count.
 */
static void sd_finish(struct __test_metadata *_metadata,
		      FIXTURE_DATA(ship) *self, const char *what, uint64_t t0)
{
	struct sd_range r[SD_PARTS] = { 0 };
	uint64_t produced[SD_PARTS] = { 0 }, fsyncs = 0, sent = 0, t1;
	struct sr_count c;
	struct sr_verdict v;
	json_t *st = NULL;
	char out[160];
	int ret;

	ret = sd_writers_stop(self);
	ASSERT_EQ(0, ret) TH_LOG("a writer failed: %s", strerror(ret < 0 ? -ret : EIO));
	for (unsigned int i = 0; i < self->nwriters; i++) {
		fsyncs += self->sh->fsyncs[i];
		sent += self->t->w[i].next;
	}
	t1 = e2e_now_ms();
	ret = sd_wait_shipped(&self->e, 120000, r, &st);
	if (st)
		sd_print_region(ret ? "not shipped" : "shipped", st);
	json_decref(st);
	if (ret) {
		e2e_log_tail(&self->e, 3000);
		sr_cluster_log_tail(&self->nats);
	}
	ASSERT_EQ(0, ret) TH_LOG("status never showed region " SD_REGION " caught up: %s",
				 strerror(-ret));
	e2e_msg("%s: caught up %" PRIu64 " ms after the writers stopped",
		what, e2e_now_ms() - t1);
	ASSERT_EQ(0, sd_produced(produced));
	ASSERT_EQ(0, e2e_daemon_stop(&self->e)) TH_LOG("evringd's SIGTERM exit status");

	/* The verifier the project ships... */
	EXPECT_EQ(0, sd_consume(&self->e, r, out, sizeof(out)));

	/* ... and our own count of what it printed. */
	ret = sr_count_file(&c, self->t, out, SD_HOST, "kmod", SD_PARTS);
	ASSERT_EQ(0, ret) TH_LOG("reading %s: %s", out, strerror(-ret));
	sr_judge(&c, self->t, &v);
	e2e_msg("%s: %" PRIu64 " events written by %u writers (%" PRIu64
		" fsyncs) in %" PRIu64 " ms; stream holds %" PRIu64
		" messages, %" PRIu64 " events (%" PRIu64 " markers, %" PRIu64
		" bad, %" PRIu64 " foreign, %" PRIu64 " misplaced); acked %" PRIu64
		": exactly once %" PRIu64 ", lost %" PRIu64 ", doubled %" PRIu64
		", unexpected %" PRIu64 ", unknown %" PRIu64 "%s%s%s%s",
		what, sent, self->nwriters, fsyncs, t1 - t0, c.stream_seq_max,
		c.events, c.markers, c.bad, c.foreign, c.misplaced, v.acked,
		v.once, v.lost, v.doubled, v.unexpected, v.unknown,
		v.why[0] ? "; " : "", v.why, c.why[0] ? "; " : "", c.why);
	EXPECT_EQ(0u, c.bad);
	EXPECT_EQ(0u, c.foreign);
	EXPECT_EQ(0u, c.misplaced);
	EXPECT_EQ(0u, c.markers) TH_LOG("nothing may be dead-lettered");
	EXPECT_EQ(0u, v.lost);
	EXPECT_EQ(0u, v.doubled);
	EXPECT_EQ(0u, v.unexpected);
	/* Writers are never killed: every attempt has an outcome. */
	EXPECT_EQ(0u, v.unknown);
	EXPECT_EQ(v.acked, v.once);
	EXPECT_EQ(sent, v.acked);
	EXPECT_EQ(v.acked, c.events);
	for (unsigned int p = 0; p < SD_PARTS; p++) {
		EXPECT_EQ(produced[p], c.per_part[p]) TH_LOG("partition %u", p);
		EXPECT_EQ(produced[p], r[p].last_seq) TH_LOG("partition %u", p);
	}
	sr_count_free(&c);
}

/* What the kill loop did. */
struct sd_kills {
	uint64_t rounds;
	uint64_t at_start;	/* before it answered a ping */
	uint64_t in_flight;	/* the moment status showed a publish in flight */
	uint64_t idle;		/* no publish seen in flight in time */
	uint64_t down_ms;	/* time with no evringd at all */
	struct sd_life sum;	/* over the lives seen in flight */
};

/*
 * One round: start evringd and SIGKILL it, either during its start (the
 * stream check, the reconcile of what was in flight) or, after it lived a
 * while, the moment its status shows a publish in flight.  0 when it
 * ended by our hand, else its unexpected status or -errno.
 */
static int sd_kill_round(struct e2e_env *e, uint64_t *rng, struct sd_kills *k)
{
	unsigned int how = e2e_rand(rng) % 6;
	int ret, status;

	k->rounds++;
	ret = e2e_daemon_start(e, sd_sets);
	if (ret)
		return ret;
	if (how == 0) {
		e2e_sleep_ms(e2e_rand_range(rng, 0, 600));
		k->at_start++;
	} else if (!e2e_daemon_wait_ready(e, 60000)) {
		struct sd_life life = { 0 };

		e2e_sleep_ms(e2e_rand_range(rng, 200, 1500));
		if (sd_wait_inflight(e, 5000, &life)) {
			k->in_flight++;
			k->sum.shipped_batches += life.shipped_batches;
			k->sum.reconciles += life.reconciles;
			k->sum.duplicates += life.duplicates;
			k->sum.retries += life.retries;
			if (how == 1)
				e2e_sleep_us(e2e_rand_range(rng, 0, 20000));
		} else {
			k->idle++;
		}
	}
	status = e2e_daemon_kill(e, SIGKILL);
	if (status == 256 + SIGKILL)
		return 0;
	e2e_log_tail(e, 3000);
	return status ? status : -ECHILD;
}

TEST_F_TIMEOUT(ship, kill9_evringd_while_publishing_ships_every_device_event_exactly_once, 600)
{
	uint64_t kills = e2e_env_u64("EVRING_E2E_KILLS", 10);
	unsigned int rate = e2e_env_u64("EVRING_E2E_RATE", 150);
	uint64_t t0 = e2e_now_ms(), shipped = 0;
	struct sd_kills k = { 0 };

	e2e_msg("%" PRIu64 " kills of evringd, %u writers at %u events/s",
		kills, self->nwriters, rate);
	/* The first daemon creates the stream; wait until it ships. */
	ASSERT_EQ(0, e2e_daemon_up(&self->e, sd_sets, 60000));
	ASSERT_EQ(0, sd_writers_start(self, rate));
	for (int i = 0; i < 600 && !shipped; i++) {
		sd_region_u64(&self->e, "shipped_events", &shipped);
		e2e_sleep_ms(100);
	}
	ASSERT_LT(0u, shipped) TH_LOG("nothing shipped in 60 s");
	ASSERT_EQ(256 + SIGKILL, e2e_daemon_kill(&self->e, SIGKILL));

	for (uint64_t i = 0; i < kills; i++) {
		uint64_t down;
		int ret = sd_kill_round(&self->e, &self->rng, &k);

		ASSERT_EQ(0, ret) TH_LOG("round %" PRIu64 ": evringd ended with %d by itself; log %s",
					 i, ret, self->e.log);
		for (unsigned int j = 0; j < self->nwriters; j++) {
			ASSERT_EQ(0, self->t->w[j].error) TH_LOG("writer %u", j);
		}
		/* Sometimes stay down a while: rings fill, fsync waits. */
		down = e2e_rand(&self->rng) % 3 ? 0 :
		       e2e_rand_range(&self->rng, 100, 1000);
		e2e_sleep_ms(down);
		k.down_ms += down;
	}
	e2e_msg("kill -9 of evringd: %" PRIu64 " rounds: %" PRIu64
		" while starting, %" PRIu64 " with a publish in flight, %" PRIu64
		" with none seen; down %" PRIu64 " ms between rounds; those"
		" lives shipped %" PRIu64 " batches, reconciled %" PRIu64
		" times, %" PRIu64 " acks said duplicate, %" PRIu64 " retries",
		k.rounds, k.at_start, k.in_flight, k.idle, k.down_ms,
		k.sum.shipped_batches, k.sum.reconciles, k.sum.duplicates,
		k.sum.retries);
	EXPECT_LT(0u, k.in_flight) TH_LOG("no kill landed on a publish in flight");

	/* Heal: one daemon lives to the end. */
	ASSERT_EQ(0, e2e_daemon_up(&self->e, sd_sets, 60000));
	sd_finish(_metadata, self, "evringd kill -9", t0);
}

TEST_F_TIMEOUT(ship, region_outage_is_absorbed_by_the_spool_then_shipped_exactly_once, 600)
{
	uint64_t outage = e2e_env_u64("EVRING_E2E_OUTAGE_MS", 6000);
	unsigned int rate = e2e_env_u64("EVRING_E2E_RATE", 150);
	uint64_t t0 = e2e_now_ms(), shipped = 0, lag_max = 0, t_up;
	uint64_t end, polls = 0, disconnected = 0;
	int ret;

	e2e_msg("region down %" PRIu64 " ms, %u writers at %u events/s",
		outage, self->nwriters, rate);
	ASSERT_EQ(0, e2e_daemon_up(&self->e, sd_sets, 60000));
	ASSERT_EQ(0, sd_writers_start(self, rate));
	for (int i = 0; i < 600 && !shipped; i++) {
		sd_region_u64(&self->e, "shipped_events", &shipped);
		e2e_sleep_ms(100);
	}
	ASSERT_LT(0u, shipped) TH_LOG("nothing shipped in 60 s");
	e2e_sleep_ms(1000);

	/* Every server of the region dies; the writers go on. */
	sr_cluster_kill(&self->nats);
	end = e2e_now_ms() + outage;
	while (e2e_now_ms() < end) {
		json_t *st = sd_status_quick(&self->e), *g;

		ASSERT_FALSE(e2e_daemon_gone(&self->e))
			TH_LOG("evringd died during the outage (status %d)",
			       self->e.last_status);
		g = st ? sd_region(st) : NULL;
		if (g) {
			polls++;
			disconnected += !json_is_true(json_object_get(g, "connected"));
			if (e2e_jint(g, "lag_events") > lag_max)
				lag_max = e2e_jint(g, "lag_events");
		}
		json_decref(st);
		e2e_sleep_ms(200);
	}
	for (unsigned int j = 0; j < self->nwriters; j++) {
		ASSERT_EQ(0, self->t->w[j].error) TH_LOG("writer %u", j);
	}
	e2e_msg("outage: %" PRIu64 " of %" PRIu64 " polls saw the region disconnected; lag grew to %" PRIu64 " events",
		disconnected, polls, lag_max);
	EXPECT_LT(0u, disconnected);
	EXPECT_LT(0u, lag_max) TH_LOG("the spool should have held the writers' events");

	/* The servers come back on their stores; the writers still go on. */
	t_up = e2e_now_ms();
	ret = sr_cluster_start(&self->nats, 120000);
	if (ret)
		sr_cluster_log_tail(&self->nats);
	ASSERT_EQ(0, ret) TH_LOG("nats cluster did not come back: %s", strerror(-ret));
	e2e_msg("region back in %" PRIu64 " ms", e2e_now_ms() - t_up);
	e2e_sleep_ms(1000);
	ASSERT_FALSE(e2e_daemon_gone(&self->e));
	sd_finish(_metadata, self, "region outage", t0);
}

TEST_HARNESS_MAIN
