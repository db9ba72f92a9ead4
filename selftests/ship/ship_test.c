// SPDX-License-Identifier: GPL-2.0-only
/*
 * ship_test: the shipping engine (daemon/ship.h, docs/SHIPPING.md) against
 * real single-node nats-server processes on 127.0.0.1 (ports 14300-14399;
 * $NATS_SERVER overrides /usr/sbin/nats-server), a real spool in
 * /tmp/ship-test-<pid> and the daemon's event loop.
 *
 * Every test commits batches with spool_commit() (some while the loop
 * runs, as the drain would), runs the loop until a condition holds or a
 * bound passes, then reads every stream back with js_read_stream() and
 * decodes each batch with batch_decode(): per partition every record seq
 * must be present exactly once (over the union of the streams in failover
 * mode), in order within each subject.  Streams are R1 (replicas = 1), so
 * the regions are reported not durable, as they are.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/evring.h>

#include "batch.h"
#include "config.h"
#include "jetstream.h"
#include "loop.h"
#include "ship.h"
#include "ship_policy.h"
#include "spool.h"
#include "kselftest_harness.h"
#include "nats_server.h"

#define HOST		"test-host"
#define EPOCH		0x8000000000000007ull
#define NPARTS		4u
#define MAX_BATCHES	400
#define STREAM		"EVRING"
#define PREFIX		"evt"

/* --- nats-server ------------------------------------------------------ */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static void test_dir(char *buf, size_t len)
{
	snprintf(buf, len, "/tmp/ship-test-%d", (int)getpid());
}

/* Server @name on @port, its store in the test directory. */
static int srv_config(struct nats_srv *s, const char *name, int port,
		      int max_payload)
{
	char dir[PATH_MAX];

	test_dir(dir, sizeof(dir));
	mkdir(dir, 0700);
	nats_srv_init(s, dir, name, port);
	return nats_srv_write_conf(s, name, max_payload, NULL);
}

/* --- the environment of one test ----------------------------------------- */

struct sent {
	uint64_t id;		/* spool batch id */
	uint32_t part;
	uint64_t first;
	uint32_t count;
};

struct env {
	char dir[PATH_MAX];
	char spool_path[PATH_MAX];
	struct spool *spool;
	struct loop *loop;
	struct ship *ship;
	struct evd_config cfg;
	struct nats_srv srv[2];
	unsigned int nsrv;
	/* batches committed */
	struct sent sent[MAX_BATCHES];
	unsigned int nsent;
	uint64_t next_seq[NPARTS];
	uint64_t position[NPARTS];
	unsigned int big_at;	/* 1-based index of a poison batch, 0: none */
	bool one_part;		/* every batch to partition 0 */
	uint32_t plen;		/* record payload bytes, 0: 24 */
	/* committing while the loop runs */
	unsigned int feed_to;	/* commit until nsent == feed_to */
	uint64_t feed_timer;
};

static struct env *env_new(void)
{
	struct env *e = calloc(1, sizeof(*e));
	char cmd[PATH_MAX + 32];

	if (!e)
		return NULL;
	test_dir(e->dir, sizeof(e->dir));
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
	if (system(cmd))
		return NULL;
	mkdir(e->dir, 0700);
	snprintf(e->spool_path, sizeof(e->spool_path), "%s/spool.db", e->dir);
	for (unsigned int i = 0; i < NPARTS; i++)
		e->next_seq[i] = 1;
	return e;
}

static void env_free(struct env *e)
{
	char cmd[PATH_MAX + 32];

	if (!e)
		return;
	ship_free(e->ship);
	for (unsigned int i = 0; i < 2; i++)
		nats_srv_kill(&e->srv[i]);
	spool_close(e->spool);
	loop_free(e->loop);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
	if (system(cmd))
		fprintf(stderr, "# cannot remove %s\n", e->dir);
	free(e);
}

static int env_open_spool(struct env *e)
{
	struct spool_opts o = { .path = e->spool_path };
	char err[256];
	int ret = spool_open(&o, &e->spool, err, sizeof(err));

	if (ret)
		fprintf(stderr, "# %s\n", err);
	return ret;
}

/* The config of @n regions "a", "b" on the servers' ports. */
static void env_config(struct env *e, unsigned int n, int port0, int port1,
		       enum config_ship_mode mode)
{
	struct evd_config *c = &e->cfg;
	int ports[2] = { port0, port1 };

	config_init(c);
	snprintf(c->host_id, sizeof(c->host_id), "%s", HOST);
	c->ship_mode = mode;
	c->ship_publish_timeout_ms = 500;
	c->ship_backoff_base_ms = 20;
	c->ship_backoff_cap_ms = 200;
	c->ship_retry_rate = 0;
	c->ship_retry_burst = 40;
	c->ship_dead_letter_after = 3;
	c->ship_breaker_failures = 3;
	c->ship_breaker_open_ms = 500;
	c->ship_breaker_probes = 1;
	c->ship_window_min = 4;
	c->ship_window_max = 16;
	c->ship_rate_limit = 0;
	c->ship_lag_limit_s = 0;
	c->ship_failback_hold_ms = 1000;
	c->nr_regions = n;
	for (unsigned int i = 0; i < n; i++) {
		struct config_region *r = &c->region[i];

		memset(r, 0, sizeof(*r));
		snprintf(r->name, sizeof(r->name), "%c", 'a' + i);
		snprintf(r->urls, sizeof(r->urls), "nats://127.0.0.1:%d",
			 ports[i]);
		snprintf(r->stream, sizeof(r->stream), STREAM);
		snprintf(r->subject_prefix, sizeof(r->subject_prefix), PREFIX);
		r->replicas = 1;
		r->create_stream = 1;
		r->dupe_window_ms = 120000;
		r->weight = 100;
	}
}

static int env_ship(struct env *e)
{
	char err[256] = "";
	int ret = ship_new(e->loop, e->spool, &e->cfg, &e->ship, err,
			   sizeof(err));

	if (ret)
		fprintf(stderr, "# ship_new: %s\n", err);
	return ret;
}

/* Commit the next batch: partition nsent % NPARTS, 3 records (or 1 big). */
static int commit_next(struct env *e)
{
	unsigned int k = e->nsent;
	uint32_t part = e->one_part ? 0 : k % NPARTS;
	bool big = e->big_at == k + 1;
	uint32_t count = big ? 1 : 3;
	uint32_t plen = big ? 8000 : e->plen ? e->plen : 24;
	struct batch_meta m = {
		.source = BATCH_SRC_SOCKET, .partition = part, .epoch = EPOCH,
		.first_seq = e->next_seq[part], .count = count,
	};
	size_t cap = count * EVRING_REC_SIZE(plen), off = 0;
	unsigned char *recs = calloc(1, cap);
	struct spool_append a = { 0 };
	struct spool_stats st;
	void *out = NULL;
	size_t len;
	int ret;

	if (!recs || k >= MAX_BATCHES)
		return -ENOMEM;
	for (uint32_t i = 0; i < count; i++) {
		struct evring_rec r = {
			.len = plen, .seq = m.first_seq + i, .ts_ns = 1,
		};

		memcpy(recs + off, &r, sizeof(r));
		/* incompressible (a merge is zstd-encoded) */
		for (uint32_t j = 0; j < plen; j++) {
			uint64_t x = (r.seq << 32 | j) * 0x9e3779b97f4a7c15ull;

			x ^= x >> 31;
			x *= 0xbf58476d1ce4e5b9ull;
			recs[off + sizeof(r) + j] = x >> 56;
		}
		off += EVRING_REC_SIZE(plen);
	}
	strcpy(m.host_id, HOST);
	ret = batch_encode(&m, recs, off, NULL, 0, BATCH_COMP_NONE, &out, &len);
	free(recs);
	if (ret)
		return ret;
	e->position[part] += off;
	a.batch = out;
	a.len = len;
	a.position = e->position[part];
	ret = spool_commit(e->spool, &a, 1, NULL, 0, NULL, 0);
	free(out);
	if (ret)
		return ret;
	ret = spool_stats(e->spool, &st);
	if (ret)
		return ret;
	e->sent[k] = (struct sent){ st.last_id, part, m.first_seq, count };
	e->next_seq[part] += count;
	e->nsent++;
	return 0;
}

static int commit_n(struct env *e, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		int ret = commit_next(e);

		if (ret)
			return ret;
	}
	return 0;
}

/* While the loop runs: one batch every 5 ms until feed_to, as the drain. */
static void feed_cb(struct loop *l, uint64_t id, void *arg)
{
	struct env *e = arg;

	if (e->nsent >= e->feed_to)
		return;
	if (commit_next(e) == 0)
		ship_kick(e->ship);
}

static void env_feed(struct env *e, unsigned int to)
{
	e->feed_to = to;
	if (!e->feed_timer)
		loop_add_timer(e->loop, 5, 5, feed_cb, e, &e->feed_timer);
}

/* The last spooled batch id of @part, 0: none. */
static uint64_t last_id_of(const struct env *e, uint32_t part)
{
	uint64_t id = 0;

	for (unsigned int i = 0; i < e->nsent; i++)
		if (e->sent[i].part == part)
			id = e->sent[i].id;
	return id;
}

struct cur_walk {
	const char *region;
	uint64_t id[NPARTS];
	uint64_t last_seq[NPARTS];
	uint64_t stream_seq[NPARTS];
};

static int cur_cb(const struct spool_cursor *c, void *arg)
{
	struct cur_walk *w = arg;

	if (!strcmp(c->region, w->region) && c->partition < NPARTS &&
	    c->source == BATCH_SRC_SOCKET) {
		w->id[c->partition] = c->batch_id;
		w->last_seq[c->partition] = c->last_seq;
		w->stream_seq[c->partition] = c->stream_seq;
	}
	return 0;
}

/* Region @name's committed cursors equal the last batch of every part. */
static bool cursors_done(struct env *e, const char *name)
{
	struct cur_walk w = { .region = name };

	if (spool_foreach_cursor(e->spool, cur_cb, &w) < 0)
		return false;
	for (uint32_t p = 0; p < NPARTS; p++)
		if (w.id[p] != last_id_of(e, p))
			return false;
	return true;
}

/* Failover: the max over regions of the committed cursors is the last. */
static bool global_done(struct env *e)
{
	struct cur_walk a = { .region = "a" }, b = { .region = "b" };

	if (spool_foreach_cursor(e->spool, cur_cb, &a) < 0 ||
	    spool_foreach_cursor(e->spool, cur_cb, &b) < 0)
		return false;
	for (uint32_t p = 0; p < NPARTS; p++) {
		uint64_t g = a.id[p] > b.id[p] ? a.id[p] : b.id[p];

		if (g != last_id_of(e, p))
			return false;
	}
	return true;
}

struct run {
	struct env *e;
	bool (*cond)(struct env *e, void *arg);
	void *arg;
	uint64_t end;
	bool met;
};

static void run_cb(struct loop *l, uint64_t id, void *arg)
{
	struct run *r = arg;

	if (r->cond(r->e, r->arg)) {
		r->met = true;
		loop_stop(l);
	} else if (now_ms() >= r->end) {
		loop_stop(l);
	}
}

/* Run the loop until @cond holds (true) or @ms passed (false). */
static bool run_until(struct env *e, bool (*cond)(struct env *, void *),
		      void *arg, unsigned int ms)
{
	struct run r = { e, cond, arg, now_ms() + ms, false };
	uint64_t id;

	if (loop_add_timer(e->loop, 10, 10, run_cb, &r, &id))
		return false;
	loop_run(e->loop);
	loop_cancel_timer(e->loop, id);
	return r.met;
}

static bool all_delivered(struct env *e, void *arg)
{
	const char *regions = arg ? arg : "a";

	if (e->nsent < e->feed_to)
		return false;
	for (const char *c = regions; *c; c++) {
		char name[2] = { *c, 0 };

		if (!cursors_done(e, name))
			return false;
	}
	return true;
}

static bool failover_delivered(struct env *e, void *arg)
{
	return e->nsent >= e->feed_to && global_done(e);
}

static struct ship_region_status region_st(struct env *e, unsigned int i)
{
	struct ship_region_status st;

	memset(&st, 0xa5, sizeof(st));
	if (ship_region_status(e->ship, i, &st))
		memset(&st, 0, sizeof(st));
	return st;
}

static bool shipped_at_least(struct env *e, void *arg)
{
	return region_st(e, 0).shipped_batches >= (uint64_t)(uintptr_t)arg;
}

static bool breaker_is(struct env *e, void *arg)
{
	struct ship_region_status st = region_st(e, 0);

	return st.breaker && !strcmp(st.breaker, arg);
}

/* --- reading streams back ---------------------------------------------- */

struct check {
	unsigned int seen[NPARTS][1024];	/* per record seq: copies */
	uint64_t last_seq_in[2][NPARTS];	/* per stream: order */
	unsigned int stream;
	unsigned int out_of_order;
	unsigned int bad;			/* undecodable, foreign */
	unsigned int markers;
	char marker_reason[256];
	char marker_id[JS_MSGID_MAX];
	uint64_t messages;
	uint64_t merged;			/* holding > 3 records */
	size_t max_len;				/* longest body */
	size_t max_raw;				/* largest raw batch */
};

static int check_cb(const struct js_stored *m, void *arg)
{
	struct check *c = arg;
	struct batch_view v;
	char want[JS_SUBJECT_MAX];

	c->messages++;
	if (m->len > c->max_len)
		c->max_len = m->len;
	if (m->dead_letter) {
		c->markers++;
		snprintf(c->marker_reason, sizeof(c->marker_reason), "%s",
			 m->dead_letter);
		snprintf(c->marker_id, sizeof(c->marker_id), "%s", m->msg_id);
		return 0;
	}
	if (batch_decode(m->data, m->len, &v)) {
		c->bad++;
		return 0;
	}
	snprintf(want, sizeof(want), PREFIX "." HOST ".socket-%" PRIu32,
		 v.meta.partition);
	if (v.meta.partition >= NPARTS || strcmp(want, m->subject) ||
	    v.meta.first_seq + v.meta.count > 1024) {
		c->bad++;
	} else {
		uint64_t *last = &c->last_seq_in[c->stream][v.meta.partition];

		if (v.meta.first_seq <= *last)
			c->out_of_order++;
		*last = v.meta.first_seq + v.meta.count - 1;
		c->merged += v.meta.count > 3;
		if (BATCH_HDR_LEN + v.raw_len > c->max_raw)
			c->max_raw = BATCH_HDR_LEN + v.raw_len;
		for (uint32_t i = 0; i < v.meta.count; i++)
			c->seen[v.meta.partition][v.meta.first_seq + i]++;
	}
	batch_view_release(&v);
	return 0;
}

static int read_stream(struct env *e, unsigned int region, struct check *c)
{
	struct config_region *r = &e->cfg.region[region];
	struct js_link_opts o = {
		.region = r->name, .urls = r->urls, .stream = r->stream,
		.subject_prefix = r->subject_prefix, .replicas = 1,
		.timeout_ms = 2000, .max_pending = 16,
	};
	char err[256] = "";
	int ret;

	c->stream = region;
	ret = js_read_stream(&o, 1, check_cb, c, err, sizeof(err));
	if (ret)
		fprintf(stderr, "# js_read_stream %s: %s\n", r->name, err);
	return ret;
}

/* Every committed record seen exactly once; returns the number of faults. */
static unsigned int check_exactly_once(struct env *e, struct check *c)
{
	unsigned int faults = c->out_of_order + c->bad;

	for (uint32_t p = 0; p < NPARTS; p++)
		for (uint64_t s = 1; s < 1024; s++) {
			unsigned int want = s < e->next_seq[p] ? 1 : 0;

			if (c->seen[p][s] != want) {
				if (faults < 10)
					fprintf(stderr, "# part %u seq %" PRIu64
						": %u copies\n", p, s,
						c->seen[p][s]);
				faults++;
			}
		}
	if (faults)
		fprintf(stderr, "# %u faults (%u out of order, %u bad)\n",
			faults, c->out_of_order, c->bad);
	return faults;
}

static struct env *setup(struct __test_metadata *_metadata, unsigned int n,
			 int port0, int port1, enum config_ship_mode mode,
			 int max_payload)
{
	struct env *e = env_new();

	if (!e)
		return NULL;
	env_config(e, n, port0, port1, mode);
	if (loop_new(&e->loop) || env_open_spool(e)) {
		env_free(e);
		return NULL;
	}
	for (unsigned int i = 0; i < n; i++) {
		char name[8];

		snprintf(name, sizeof(name), "n%c", 'a' + i);
		if (srv_config(&e->srv[i], name, i ? port1 : port0,
			       max_payload) || nats_srv_start(&e->srv[i])) {
			env_free(e);
			return NULL;
		}
	}
	e->nsrv = n;
	return e;
}

/* --- tests -------------------------------------------------------------- */

TEST(hundred_batches_four_partitions_exactly_once_then_trimmed)
{
	struct env *e = setup(_metadata, 1, 14300, 0, CONFIG_SHIP_REPLICATE, 0);
	struct ship_region_status st;
	struct spool_stats ss;
	struct check *c = calloc(1, sizeof(*c));
	struct cur_walk w = { .region = "a" };

	ASSERT_NE(NULL, e);
	ASSERT_NE(NULL, c);
	ASSERT_EQ(0, commit_n(e, 50));
	ASSERT_EQ(0, env_ship(e));
	env_feed(e, 100);
	ASSERT_TRUE(run_until(e, all_delivered, NULL, 15000));

	/* cursors equal the last batch of each partition, rows trimmed */
	ASSERT_EQ(0, spool_foreach_cursor(e->spool, cur_cb, &w));
	for (uint32_t p = 0; p < NPARTS; p++) {
		EXPECT_EQ(last_id_of(e, p), w.id[p]);
		EXPECT_EQ(e->next_seq[p] - 1, w.last_seq[p]);
		EXPECT_LT(0u, w.stream_seq[p]);
	}
	ASSERT_EQ(0, spool_stats(e->spool, &ss));
	EXPECT_EQ(0u, ss.batches);

	st = region_st(e, 0);
	EXPECT_STREQ("a", st.name);
	EXPECT_TRUE(st.connected);
	EXPECT_FALSE(st.durable);	/* R1 */
	EXPECT_EQ(1u, st.replicas);
	EXPECT_STREQ("closed", st.breaker);
	EXPECT_EQ(100u, st.shipped_batches);
	EXPECT_EQ(300u, st.shipped_events);
	EXPECT_EQ(0u, st.lag_batches);
	EXPECT_EQ(0u, st.dead_lettered);
	EXPECT_GE(st.ack_p99_us, st.ack_p50_us);
	EXPECT_EQ(0, ship_region_status(e->ship, 1, &st) == -ENOENT ? 0 : 1);
	{
		struct ship_latency lat;

		/* one per message; the backlog of 50 went out merged */
		ship_latency(e->ship, &lat);
		ASSERT_EQ(0, read_stream(e, 0, c));
		EXPECT_EQ(c->messages, lat.n);
		EXPECT_EQ(c->messages, lat.count[SHIP_LAT_BUCKETS - 1]);
		EXPECT_EQ(UINT64_MAX, lat.le_us[SHIP_LAT_BUCKETS - 1]);
	}
	EXPECT_GT(100u, c->messages);
	EXPECT_LT(0u, c->merged);
	EXPECT_EQ(0u, check_exactly_once(e, c));
	free(c);
	env_free(e);
}

TEST(server_killed_mid_stream_and_restarted_exactly_once)
{
	struct env *e = setup(_metadata, 1, 14301, 0, CONFIG_SHIP_REPLICATE, 0);
	struct check *c = calloc(1, sizeof(*c));

	ASSERT_NE(NULL, e);
	ASSERT_NE(NULL, c);
	ASSERT_EQ(0, env_ship(e));
	env_feed(e, 200);
	ASSERT_TRUE(run_until(e, shipped_at_least, (void *)40, 10000));
	nats_srv_kill(&e->srv[0]);
	run_until(e, shipped_at_least, (void *)100000, 1000);
	EXPECT_FALSE(region_st(e, 0).connected);
	ASSERT_EQ(0, nats_srv_start(&e->srv[0]));
	ASSERT_TRUE(run_until(e, all_delivered, NULL, 15000));
	EXPECT_GT(region_st(e, 0).reconciles, NPARTS);

	ASSERT_EQ(0, read_stream(e, 0, c));
	EXPECT_EQ(0u, check_exactly_once(e, c));
	free(c);
	env_free(e);
}

TEST(sigstop_opens_breaker_sigcont_closes_it_exactly_once)
{
	struct env *e = setup(_metadata, 1, 14302, 0, CONFIG_SHIP_REPLICATE, 0);
	struct check *c = calloc(1, sizeof(*c));
	struct ship_region_status st;

	ASSERT_NE(NULL, e);
	ASSERT_NE(NULL, c);
	ASSERT_EQ(0, env_ship(e));
	env_feed(e, 150);
	ASSERT_TRUE(run_until(e, shipped_at_least, (void *)30, 10000));
	kill(e->srv[0].pid, SIGSTOP);
	ASSERT_TRUE(run_until(e, breaker_is, "open", 10000));
	st = region_st(e, 0);
	EXPECT_GE(st.breaker_opened, 1u);
	EXPECT_NE(0, st.last_error[0]);
	kill(e->srv[0].pid, SIGCONT);
	ASSERT_TRUE(run_until(e, all_delivered, NULL, 15000));
	ASSERT_TRUE(run_until(e, breaker_is, "closed", 5000));

	ASSERT_EQ(0, read_stream(e, 0, c));
	EXPECT_EQ(0u, check_exactly_once(e, c));
	free(c);
	env_free(e);
}

TEST(restart_with_publishes_in_flight_reconciles_exactly_once)
{
	struct env *e = setup(_metadata, 1, 14303, 0, CONFIG_SHIP_REPLICATE, 0);
	struct check *c = calloc(1, sizeof(*c));

	ASSERT_NE(NULL, e);
	ASSERT_NE(NULL, c);
	e->cfg.ship_window_min = 16;
	ASSERT_EQ(0, commit_n(e, 200));
	e->feed_to = 200;
	for (int round = 0; round < 3; round++) {
		uint64_t want = 20 + 10 * round;

		ASSERT_EQ(0, env_ship(e));
		run_until(e, shipped_at_least, (void *)(uintptr_t)want, 10000);
		/* evringd exits: whatever is in flight is abandoned */
		ship_free(e->ship);
		e->ship = NULL;
		ASSERT_EQ(0, commit_n(e, 20));
		e->feed_to += 20;
	}
	ASSERT_EQ(0, env_ship(e));
	ASSERT_TRUE(run_until(e, all_delivered, NULL, 15000));
	EXPECT_GE(region_st(e, 0).reconciles, NPARTS);

	ASSERT_EQ(0, read_stream(e, 0, c));
	EXPECT_EQ(0u, check_exactly_once(e, c));
	free(c);
	env_free(e);
}

TEST(cursor_rolled_back_in_spool_is_adopted_without_duplicates)
{
	/* region b never answers: rows stay in the spool for the reconcile */
	struct env *e = setup(_metadata, 1, 14304, 0, CONFIG_SHIP_REPLICATE, 0);
	struct check *c = calloc(1, sizeof(*c));
	struct cur_walk w = { .region = "a" }, before = { .region = "a" };
	struct ship_region_status st;
	char cmd[PATH_MAX + 256];

	ASSERT_NE(NULL, e);
	ASSERT_NE(NULL, c);
	env_config(e, 2, 14304, 14305, CONFIG_SHIP_REPLICATE);
	ASSERT_EQ(0, commit_n(e, 40));
	e->feed_to = 40;
	ASSERT_EQ(0, env_ship(e));
	ASSERT_TRUE(run_until(e, all_delivered, "a", 10000));
	ship_free(e->ship);
	e->ship = NULL;
	ASSERT_EQ(0, spool_foreach_cursor(e->spool, cur_cb, &before));

	/* roll a's cursors back to the 2nd batch of each partition */
	spool_close(e->spool);
	e->spool = NULL;
	snprintf(cmd, sizeof(cmd),
		 "sqlite3 '%s' \"UPDATE cursors SET batch_id = %" PRIu64
		 ", last_seq = 6, stream_seq = 2 WHERE region = 'a' AND"
		 " partition = 0; UPDATE cursors SET batch_id = 0, epoch = 0,"
		 " last_seq = 0, stream_seq = 0 WHERE region = 'a' AND"
		 " partition = 1;\"", e->spool_path, e->sent[4].id);
	ASSERT_EQ(0, system(cmd));
	ASSERT_EQ(0, env_open_spool(e));
	ASSERT_EQ(0, spool_foreach_cursor(e->spool, cur_cb, &w));
	ASSERT_EQ(e->sent[4].id, w.id[0]);
	ASSERT_EQ(0u, w.id[1]);

	ASSERT_EQ(0, env_ship(e));
	ASSERT_TRUE(run_until(e, all_delivered, "a", 10000));
	st = region_st(e, 0);
	EXPECT_EQ(0u, st.shipped_batches);	/* nothing sent again */
	EXPECT_GE(st.reconciles, NPARTS);
	memset(&w, 0, sizeof(w));
	w.region = "a";
	ASSERT_EQ(0, spool_foreach_cursor(e->spool, cur_cb, &w));
	for (uint32_t p = 0; p < NPARTS; p++) {
		EXPECT_EQ(before.id[p], w.id[p]);
		EXPECT_EQ(before.last_seq[p], w.last_seq[p]);
		EXPECT_EQ(before.stream_seq[p], w.stream_seq[p]);
	}

	/* and new batches continue the subjects */
	env_feed(e, 60);
	ASSERT_TRUE(run_until(e, all_delivered, "a", 10000));
	ASSERT_EQ(0, read_stream(e, 0, c));
	EXPECT_GE(60u, c->messages);	/* the first 40 merged */
	EXPECT_EQ(0u, check_exactly_once(e, c));
	free(c);
	env_free(e);
}

struct dead_walk {
	unsigned int n;
	struct spool_dead d;
};

static int dead_cb(const struct spool_dead *d, void *arg)
{
	struct dead_walk *w = arg;

	w->n++;
	w->d = *d;
	return 0;
}

static bool no_dead(struct env *e, void *arg)
{
	struct dead_walk w = { 0 };

	return spool_foreach_dead(e->spool, dead_cb, &w) == 0 && !w.n;
}

TEST(poison_batch_dead_lettered_later_batches_flow_then_replayed)
{
	struct env *e = setup(_metadata, 1, 14306, 0, CONFIG_SHIP_REPLICATE,
			      4096);
	struct check *c = calloc(1, sizeof(*c));
	struct dead_walk dw = { 0 };
	struct ship_region_status st;
	unsigned int poison;

	ASSERT_NE(NULL, e);
	ASSERT_NE(NULL, c);
	e->big_at = 10;		/* partition 1 */
	poison = e->big_at - 1;
	ASSERT_EQ(0, commit_n(e, 40));
	e->feed_to = 40;
	ASSERT_EQ(0, env_ship(e));
	ASSERT_TRUE(run_until(e, all_delivered, NULL, 10000));

	ASSERT_EQ(0, spool_foreach_dead(e->spool, dead_cb, &dw));
	ASSERT_EQ(1u, dw.n);
	EXPECT_STREQ("a", dw.d.region);
	EXPECT_EQ(e->sent[poison].id, dw.d.batch.id);
	EXPECT_EQ(e->sent[poison].first, dw.d.batch.first_seq);
	EXPECT_EQ(3u, dw.d.attempts);
	EXPECT_NE(NULL, strstr(dw.d.reason, "max_payload of 4096"));
	st = region_st(e, 0);
	EXPECT_EQ(1u, st.dead_lettered);
	EXPECT_EQ(39u, st.shipped_batches);

	/* the marker is in the stream, the batch is not */
	ASSERT_EQ(0, read_stream(e, 0, c));
	EXPECT_EQ(1u, c->markers);
	EXPECT_NE(NULL, strstr(c->marker_reason, "max_payload"));
	{
		char want[JS_MSGID_MAX];

		snprintf(want, sizeof(want), HOST "/socket-1/%" PRIu64 "/%"
			 PRIu64 "/dead", (uint64_t)EPOCH,
			 e->sent[poison].first);
		EXPECT_STREQ(want, c->marker_id);
	}
	EXPECT_EQ(0u, c->seen[1][e->sent[poison].first]);
	EXPECT_EQ(1u, c->seen[1][e->sent[poison].first + 1]);

	/* the fix: a bigger max_payload; then the operator replays */
	nats_srv_kill(&e->srv[0]);
	ASSERT_EQ(0, srv_config(&e->srv[0], "na", 14306, 65536));
	ASSERT_EQ(0, nats_srv_start(&e->srv[0]));
	EXPECT_EQ(-ENOENT, ship_dlq_replay(e->ship, dw.d.id + 100));
	ASSERT_EQ(0, ship_dlq_replay(e->ship, dw.d.id));
	EXPECT_EQ(-EALREADY, ship_dlq_replay(e->ship, dw.d.id));
	ASSERT_TRUE(run_until(e, no_dead, NULL, 10000));

	memset(c, 0, sizeof(*c));
	ASSERT_EQ(0, read_stream(e, 0, c));
	EXPECT_EQ(1u, c->markers);
	/* every record exactly once; the replayed batch came last */
	c->out_of_order = 0;
	EXPECT_EQ(0u, check_exactly_once(e, c));
	EXPECT_EQ(-ENOENT, ship_dlq_purge(e->ship, dw.d.id));
	free(c);
	env_free(e);
}

TEST(two_regions_replicate_both_streams_complete)
{
	struct env *e = setup(_metadata, 2, 14307, 14308,
			      CONFIG_SHIP_REPLICATE, 0);
	struct check *c = calloc(1, sizeof(*c));
	struct spool_stats ss;

	ASSERT_NE(NULL, e);
	ASSERT_NE(NULL, c);
	ASSERT_EQ(0, env_ship(e));
	env_feed(e, 100);
	ASSERT_TRUE(run_until(e, all_delivered, "ab", 15000));
	ASSERT_EQ(0, spool_stats(e->spool, &ss));
	EXPECT_EQ(0u, ss.batches);
	for (unsigned int r = 0; r < 2; r++) {
		memset(c, 0, sizeof(*c));
		ASSERT_EQ(0, read_stream(e, r, c));
		/* Rows waiting together may travel merged. */
		EXPECT_GE(100u, c->messages);
		EXPECT_LT(0u, c->messages);
		EXPECT_EQ(0u, check_exactly_once(e, c));
		EXPECT_EQ(100u, region_st(e, r).shipped_batches);
	}
	free(c);
	env_free(e);
}

/* Partitions whose home (rendezvous rank 0) is region @home. */
static unsigned int homed_at(unsigned int home)
{
	const char *names[2] = { "a", "b" };
	unsigned int weights[2] = { 100, 100 }, order[2], n = 0;

	for (uint32_t p = 0; p < NPARTS; p++) {
		char key[32];

		snprintf(key, sizeof(key), "socket-%u", p);
		rendezvous_rank(key, names, weights, 2, order);
		n += order[0] == home;
	}
	return n;
}

static bool failed_back(struct env *e, void *arg)
{
	return region_st(e, 0).home_partitions == homed_at(0) &&
	       region_st(e, 1).home_partitions == homed_at(1) &&
	       failover_delivered(e, NULL);
}

static bool b_shipped_more(struct env *e, void *arg)
{
	return region_st(e, 1).shipped_batches >= *(uint64_t *)arg + 20;
}

static bool moved_off_a(struct env *e, void *arg)
{
	return region_st(e, 0).home_partitions == 0 &&
	       region_st(e, 1).home_partitions == NPARTS;
}

TEST(failover_kill_home_moves_then_fails_back_nothing_lost_or_doubled)
{
	struct env *e = setup(_metadata, 2, 14309, 14310, CONFIG_SHIP_FAILOVER,
			      0);
	struct check *c = calloc(1, sizeof(*c));
	uint64_t b_before;
	struct ship_region_status st;

	ASSERT_NE(NULL, e);
	ASSERT_NE(NULL, c);
	ASSERT_LT(0u, homed_at(0));	/* else the test proves nothing */
	ASSERT_EQ(0, env_ship(e));
	env_feed(e, 300);
	ASSERT_TRUE(run_until(e, shipped_at_least, (void *)30, 10000));
	nats_srv_kill(&e->srv[0]);
	ASSERT_TRUE(run_until(e, moved_off_a, NULL, 8000));
	/* b now ships a's partitions too, while a is down */
	b_before = region_st(e, 1).shipped_batches;
	ASSERT_TRUE(run_until(e, b_shipped_more, &b_before, 5000));
	st = region_st(e, 0);
	EXPECT_FALSE(st.connected);
	ASSERT_EQ(0, nats_srv_start(&e->srv[0]));
	ASSERT_TRUE(run_until(e, failed_back, NULL, 15000));

	for (unsigned int r = 0; r < 2; r++)
		ASSERT_EQ(0, read_stream(e, r, c));
	EXPECT_EQ(0u, check_exactly_once(e, c));
	EXPECT_LT(0u, region_st(e, 1).shipped_batches);
	free(c);
	env_free(e);
}

/*
 * A paused home region keeps the publishes that timed out in its socket
 * buffer; its partitions move, region b delivers those batches, and after
 * SIGCONT region a stores its copies too (their expected last sequences
 * still match).  Reconciling finds them and deletes them: the union of
 * both streams holds every record once.
 */
TEST(failover_sigstop_home_stray_copies_deleted_nothing_doubled)
{
	struct env *e = setup(_metadata, 2, 14311, 14312, CONFIG_SHIP_FAILOVER,
			      0);
	struct check *c = calloc(1, sizeof(*c));

	ASSERT_NE(NULL, e);
	ASSERT_NE(NULL, c);
	ASSERT_LT(0u, homed_at(0));
	ASSERT_EQ(0, env_ship(e));
	env_feed(e, 300);
	ASSERT_TRUE(run_until(e, shipped_at_least, (void *)30, 10000));
	kill(e->srv[0].pid, SIGSTOP);
	ASSERT_TRUE(run_until(e, moved_off_a, NULL, 8000));
	EXPECT_STRNE("closed", region_st(e, 0).breaker);
	kill(e->srv[0].pid, SIGCONT);
	ASSERT_TRUE(run_until(e, failed_back, NULL, 15000));

	for (unsigned int r = 0; r < 2; r++)
		ASSERT_EQ(0, read_stream(e, r, c));
	EXPECT_EQ(0u, check_exactly_once(e, c));
	free(c);
	env_free(e);
}

TEST(no_regions_is_a_noop_shipper)
{
	struct env *e = env_new();
	struct ship_region_status st;

	ASSERT_NE(NULL, e);
	ASSERT_EQ(0, loop_new(&e->loop));
	ASSERT_EQ(0, env_open_spool(e));
	env_config(e, 0, 0, 0, CONFIG_SHIP_REPLICATE);
	ASSERT_EQ(0, env_ship(e));
	EXPECT_EQ(0u, ship_nregions(e->ship));
	EXPECT_EQ(-ENOENT, ship_region_status(e->ship, 0, &st));
	ship_kick(e->ship);
	EXPECT_EQ(-ENOENT, ship_dlq_purge(e->ship, 1));
	env_free(e);
}

/* --- adversarial review: ports 14800-14899 ----------------------------- */

#define WIDE_PARTS	160u
#define WIDE_SEQS	8u

/* Commit one 1-record batch of socket partition @part, record seq @seq. */
static int commit_wide(struct env *e, uint32_t part, uint64_t seq)
{
	struct batch_meta m = {
		.source = BATCH_SRC_SOCKET, .partition = part, .epoch = EPOCH,
		.first_seq = seq, .count = 1,
	};
	unsigned char rec[EVRING_REC_SIZE(8)] = { 0 };
	struct evring_rec r = { .len = 8, .seq = seq, .ts_ns = 1 };
	struct spool_append a = { 0 };
	void *out = NULL;
	size_t len;
	int ret;

	memcpy(rec, &r, sizeof(r));
	strcpy(m.host_id, HOST);
	ret = batch_encode(&m, rec, sizeof(rec), NULL, 0, BATCH_COMP_NONE,
			   &out, &len);
	if (ret)
		return ret;
	a.batch = out;
	a.len = len;
	a.position = seq * sizeof(rec);
	ret = spool_commit(e->spool, &a, 1, NULL, 0, NULL, 0);
	free(out);
	return ret;
}

/* Round @round (seq @round + 1) of every wide partition. */
static int commit_wide_round(struct env *e, unsigned int nparts,
			     unsigned int round)
{
	for (uint32_t p = 0; p < nparts; p++) {
		int ret = commit_wide(e, p, round + 1);

		if (ret)
			return ret;
	}
	return 0;
}

static bool spool_empty(struct env *e, void *arg)
{
	struct spool_stats st;

	return spool_stats(e->spool, &st) == 0 && st.batches == 0;
}

struct wide_check {
	unsigned int seen[WIDE_PARTS][WIDE_SEQS];
	unsigned int bad, markers;
	uint64_t messages;
};

static int wide_cb(const struct js_stored *m, void *arg)
{
	struct wide_check *c = arg;
	struct batch_view v;

	c->messages++;
	if (m->dead_letter) {
		c->markers++;
		return 0;
	}
	if (batch_decode(m->data, m->len, &v)) {
		c->bad++;
		return 0;
	}
	if (v.meta.partition >= WIDE_PARTS || v.meta.count != 1 ||
	    v.meta.first_seq >= WIDE_SEQS)
		c->bad++;
	else
		c->seen[v.meta.partition][v.meta.first_seq]++;
	batch_view_release(&v);
	return 0;
}

/* Region @region's stream holds seqs 1..@rounds of @nparts exactly once. */
static unsigned int wide_faults(struct env *e, unsigned int region,
				unsigned int nparts, unsigned int rounds,
				struct wide_check *c)
{
	struct config_region *r = &e->cfg.region[region];
	struct js_link_opts o = {
		.region = r->name, .urls = r->urls, .stream = r->stream,
		.subject_prefix = r->subject_prefix, .replicas = 1,
		.timeout_ms = 2000, .max_pending = 16,
	};
	char err[256] = "";
	unsigned int faults;

	memset(c, 0, sizeof(*c));
	if (js_read_stream(&o, 1, wide_cb, c, err, sizeof(err))) {
		fprintf(stderr, "# js_read_stream %s: %s\n", r->name, err);
		return 1;
	}
	faults = c->bad;
	for (uint32_t p = 0; p < nparts; p++)
		for (uint64_t s = 1; s <= rounds; s++)
			if (c->seen[p][s] != 1) {
				if (faults < 10)
					fprintf(stderr, "# part %u seq %" PRIu64
						": %u copies\n", p, s,
						c->seen[p][s]);
				faults++;
			}
	return faults;
}

/* tools/faultproxy on 127.0.0.1:@port to @upstream, control socket. */
struct proxy {
	pid_t pid;
	char ctl[PATH_MAX];
};

static int proxy_start(struct env *e, struct proxy *px, int port,
		       int upstream)
{
	char self[PATH_MAX], bin[PATH_MAX + 32], l[32], u[32];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	uint64_t end = now_ms() + 5000;
	char *slash;

	if (n <= 0)
		return -errno;
	self[n] = 0;
	/* build/selftests/ship/ship_test -> build/bin/faultproxy */
	for (int i = 0; i < 3 && (slash = strrchr(self, '/')); i++)
		*slash = 0;
	snprintf(bin, sizeof(bin), "%s/bin/faultproxy", self);
	if (getenv("FAULTPROXY"))
		snprintf(bin, sizeof(bin), "%s", getenv("FAULTPROXY"));
	if (access(bin, X_OK)) {
		fprintf(stderr, "# %s: not built (make %s)\n", bin, bin);
		return -ENOENT;
	}
	snprintf(px->ctl, sizeof(px->ctl), "%s/proxy-%d.sock", e->dir, port);
	snprintf(l, sizeof(l), "127.0.0.1:%d", port);
	snprintf(u, sizeof(u), "127.0.0.1:%d", upstream);
	px->pid = fork();
	if (px->pid < 0)
		return -errno;
	if (px->pid == 0) {
		int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fd >= 0)
			dup2(fd, 1);
		execl(bin, "faultproxy", "-l", l, "-u", u, "--control",
		      px->ctl, (char *)NULL);
		_exit(127);
	}
	while (!nats_port_open(port) || access(px->ctl, F_OK)) {
		if (now_ms() > end)
			return -ETIMEDOUT;
		sleep_ms(10);
	}
	return 0;
}

static int proxy_cmd(struct proxy *px, const char *cmd)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	char buf[128] = "";
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ssize_t n;

	if (fd < 0)
		return -errno;
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", px->ctl);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) ||
	    write(fd, cmd, strlen(cmd)) != (ssize_t)strlen(cmd)) {
		close(fd);
		return -EIO;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 2 && !strncmp(buf, "ok", 2) ? 0 : -EIO;
}

static void proxy_kill(struct proxy *px)
{
	if (px->pid <= 0)
		return;
	kill(px->pid, SIGKILL);
	waitpid(px->pid, NULL, 0);
	px->pid = 0;
}

static bool reconnected(struct env *e, void *arg)
{
	return region_st(e, 0).connected;
}

static bool disconnected_open(struct env *e, void *arg)
{
	struct ship_region_status st = region_st(e, 0);

	return !st.connected && st.breaker && !strcmp(st.breaker, "open");
}

static bool never(struct env *e, void *arg)
{
	return false;
}

/*
 * The breaker's probe is an ENSURE; when the link's request queue is full
 * of reconciles (many partitions, a slow link) its submit fails.  The
 * probe must not be lost: a half-open breaker whose probe never reports
 * lets nothing through again, ever.
 */
TEST(breaker_probe_survives_a_full_request_queue)
{
	struct env *e = setup(_metadata, 1, 14800, 0, CONFIG_SHIP_REPLICATE, 0);
	struct wide_check *c = calloc(1, sizeof(*c));
	struct proxy px = { 0 };

	ASSERT_NE(NULL, e);
	ASSERT_NE(NULL, c);
	ASSERT_EQ(0, proxy_start(e, &px, 14801, 14800));
	env_config(e, 1, 14801, 0, CONFIG_SHIP_REPLICATE);
	e->cfg.ship_window_min = 1;
	e->cfg.ship_window_max = 8;	/* the link's queues hold 72 */
	e->cfg.ship_breaker_failures = 1;
	e->cfg.ship_breaker_open_ms = 200;
	ASSERT_EQ(0, commit_wide_round(e, WIDE_PARTS, 0));
	ASSERT_EQ(0, env_ship(e));
	ASSERT_TRUE(run_until(e, spool_empty, NULL, 20000));

	/* the region goes away: the breaker opens */
	nats_srv_kill(&e->srv[0]);
	ASSERT_TRUE(run_until(e, disconnected_open, NULL, 10000));
	run_until(e, never, NULL, 300);		/* past breaker_open_ms */
	/* it comes back over a slow link: 160 reconciles queue up */
	ASSERT_EQ(0, proxy_cmd(&px, "set latency_ms 40\n"));
	ASSERT_EQ(0, nats_srv_start(&e->srv[0]));
	ASSERT_TRUE(run_until(e, reconnected, NULL, 10000));
	run_until(e, never, NULL, 1500);
	ASSERT_EQ(0, proxy_cmd(&px, "set latency_ms 0\n"));

	/* new batches must flow once the reconciles are through */
	ASSERT_EQ(0, commit_wide_round(e, WIDE_PARTS, 1));
	ship_kick(e->ship);
	EXPECT_TRUE(run_until(e, spool_empty, NULL, 20000));
	EXPECT_STREQ("closed", region_st(e, 0).breaker);
	EXPECT_EQ(0u, wide_faults(e, 0, WIDE_PARTS, 2, c));
	proxy_kill(&px);
	free(c);
	env_free(e);
}

/*
 * Status with a big backlog: lag is kept incrementally, not walked.  The
 * time one ship_region_status() call takes is printed (no assertion on
 * it: perf is for benchmarks); the counts are checked exactly as rows are
 * added and delivered.
 */
#define BIG_ROWS	100000u
#define BIG_PARTS	64u

static int commit_big(struct env *e, unsigned int rows, unsigned int nparts,
		      uint64_t *seq)
{
	struct spool_append *a = calloc(1000, sizeof(*a));
	void **bufs = calloc(1000, sizeof(*bufs));
	int ret = 0;

	if (!a || !bufs)
		return -ENOMEM;
	for (unsigned int done = 0; done < rows && !ret;) {
		unsigned int n = rows - done < 1000 ? rows - done : 1000;

		for (unsigned int i = 0; i < n && !ret; i++) {
			uint32_t part = (done + i) % nparts;
			struct batch_meta m = {
				.source = BATCH_SRC_SOCKET, .partition = part,
				.epoch = EPOCH, .first_seq = seq[part],
				.count = 2,
			};
			unsigned char rec[2 * EVRING_REC_SIZE(8)] = { 0 };
			struct evring_rec r = { .len = 8, .ts_ns = 1 };
			size_t len;

			r.seq = seq[part];
			memcpy(rec, &r, sizeof(r));
			r.seq++;
			memcpy(rec + EVRING_REC_SIZE(8), &r, sizeof(r));
			strcpy(m.host_id, HOST);
			ret = batch_encode(&m, rec, sizeof(rec), NULL, 0,
					   BATCH_COMP_NONE, &bufs[i], &len);
			a[i].batch = bufs[i];
			a[i].len = len;
			seq[part] += 2;
			a[i].position = seq[part];
		}
		if (!ret)
			ret = spool_commit(e->spool, a, n, NULL, 0, NULL, 0);
		for (unsigned int i = 0; i < n; i++) {
			free(bufs[i]);
			bufs[i] = NULL;
		}
		done += n;
	}
	free(a);
	free(bufs);
	return ret;
}

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static bool lag_is(struct env *e, void *arg)
{
	struct ship_region_status st = region_st(e, 0);

	return st.lag_batches == *(uint64_t *)arg;
}

TEST(status_with_100k_backlog_is_incremental_and_exact)
{
	/* the region is down: nothing ships */
	struct env *e = setup(_metadata, 1, 14803, 0, CONFIG_SHIP_REPLICATE, 0);
	uint64_t seq[BIG_PARTS], t0, t1, want;
	struct ship_region_status st;

	ASSERT_NE(NULL, e);
	for (unsigned int i = 0; i < BIG_PARTS; i++)
		seq[i] = 1;
	nats_srv_kill(&e->srv[0]);
	ASSERT_EQ(0, commit_big(e, BIG_ROWS, BIG_PARTS, seq));
	ASSERT_EQ(0, env_ship(e));
	run_until(e, never, NULL, 50);
	t0 = mono_us();
	ASSERT_EQ(0, ship_region_status(e->ship, 0, &st));
	t1 = mono_us();
	fprintf(stderr, "# ship_region_status with %u rows in %u partitions:"
		" %" PRIu64 " us\n", BIG_ROWS, BIG_PARTS, t1 - t0);
	EXPECT_EQ(BIG_ROWS, st.lag_batches);
	EXPECT_EQ(2u * BIG_ROWS, st.lag_events);
	EXPECT_LT(0u, st.lag_ms);
	t0 = mono_us();
	for (int i = 0; i < 10; i++)
		ASSERT_EQ(0, ship_region_status(e->ship, 0, &st));
	t1 = mono_us();
	fprintf(stderr, "# and then: %" PRIu64 " us a call\n", (t1 - t0) / 10);

	/* rows added while running are counted */
	ASSERT_EQ(0, commit_big(e, 1000, BIG_PARTS, seq));
	ship_kick(e->ship);
	want = BIG_ROWS + 1000;
	ASSERT_EQ(0, ship_region_status(e->ship, 0, &st));
	EXPECT_EQ(want, st.lag_batches);
	EXPECT_EQ(2 * want, st.lag_events);

	/* the region comes up: it all ships, lag goes to 0 */
	ASSERT_EQ(0, nats_srv_start(&e->srv[0]));
	want = 0;
	ASSERT_TRUE(run_until(e, lag_is, &want, 60000));
	ASSERT_TRUE(run_until(e, spool_empty, NULL, 5000));
	st = region_st(e, 0);
	EXPECT_EQ(0u, st.lag_events);
	EXPECT_EQ(0u, st.lag_ms);
	EXPECT_EQ(BIG_ROWS + 1000, st.shipped_batches);
	env_free(e);
}

/*
 * A JetStream API request over the plain NATS protocol (what an operator's
 * "nats stream rm" does); *@ok when the reply says "success":true.
 */
static int js_api(int port, const char *subject, bool *ok)
{
	struct sockaddr_in a = {
		.sin_family = AF_INET,
		.sin_port = htons(port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	char buf[8192], cmd[512];
	size_t have = 0;
	uint64_t end = now_ms() + 5000;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return -ECONNREFUSED;
	}
	snprintf(cmd, sizeof(cmd), "CONNECT {\"verbose\":false}\r\n"
		 "SUB _INBOX.review 1\r\nPUB %s _INBOX.review 0\r\n\r\n",
		 subject);
	if (write(fd, cmd, strlen(cmd)) != (ssize_t)strlen(cmd)) {
		close(fd);
		return -EIO;
	}
	while (now_ms() < end && have < sizeof(buf) - 1) {
		ssize_t n = read(fd, buf + have, sizeof(buf) - 1 - have);

		if (n <= 0)
			break;
		have += n;
		buf[have] = 0;
		if (strstr(buf, "MSG _INBOX.review") && strstr(buf, "}\r\n"))
			break;
	}
	close(fd);
	buf[have] = 0;
	*ok = strstr(buf, "\"success\":true") != NULL;
	return strstr(buf, "MSG _INBOX.review") ? 0 : -ETIMEDOUT;
}

/*
 * An operator deletes the region's stream while evringd runs; ENSURE
 * creates it again (create_stream).  The cursors then point past an empty
 * stream: the engine must neither stall (its expected last sequences are
 * the old stream's) nor skip a batch the spool still holds for the
 * region.  What the deleted stream held is gone with it: the engine does
 * not rewind cursors (docs/SHIPPING.md).
 */
TEST(stream_deleted_while_running_is_recreated_and_nothing_held_is_lost)
{
	struct env *e = setup(_metadata, 1, 14804, 0, CONFIG_SHIP_REPLICATE, 0);
	struct check *c = calloc(1, sizeof(*c));
	bool ok = false;

	ASSERT_NE(NULL, e);
	ASSERT_NE(NULL, c);
	ASSERT_EQ(0, commit_n(e, 40));
	e->feed_to = 40;
	ASSERT_EQ(0, env_ship(e));
	ASSERT_TRUE(run_until(e, all_delivered, NULL, 10000));

	ASSERT_EQ(0, js_api(14804, "$JS.API.STREAM.DELETE." STREAM, &ok));
	ASSERT_TRUE(ok);
	/* the spool keeps growing meanwhile */
	env_feed(e, 80);
	ASSERT_TRUE(run_until(e, all_delivered, NULL, 20000));

	ASSERT_EQ(0, read_stream(e, 0, c));
	/* batches 41..80 exactly once; 1..40 went with the old stream */
	for (uint32_t p = 0; p < NPARTS; p++)
		for (uint64_t s = 1; s < e->next_seq[p]; s++)
			EXPECT_EQ(s < e->next_seq[p] - 30 ? 0u : 1u,
				  c->seen[p][s]);
	EXPECT_EQ(0u, c->out_of_order);
	EXPECT_GE(40u, c->messages);	/* some merged */
	EXPECT_LT(0u, c->messages);
	free(c);
	env_free(e);
}

static bool reconnected_b(struct env *e, void *arg)
{
	struct ship_region_status st = region_st(e, 1);

	return st.connected && !st.parked;
}

static bool b_parked(struct env *e, void *arg)
{
	return region_st(e, 1).parked;
}

static bool lags_are(struct env *e, void *arg)
{
	const uint64_t *want = arg;

	return region_st(e, 0).lag_batches == want[0] &&
	       region_st(e, 1).lag_batches == want[1];
}

/* Lag stays exact across acks, a parked region's trims and its return. */
TEST(lag_exact_across_trims_parking_and_return)
{
	struct env *e = setup(_metadata, 2, 14805, 14806,
			      CONFIG_SHIP_REPLICATE, 0);
	struct ship_region_status a, b;
	uint64_t want[2];

	ASSERT_NE(NULL, e);
	nats_srv_kill(&e->srv[1]);		/* b is down */
	ASSERT_EQ(0, commit_n(e, 40));
	e->feed_to = 40;
	ASSERT_EQ(0, env_ship(e));
	ASSERT_TRUE(run_until(e, all_delivered, "a", 10000));
	run_until(e, never, NULL, 100);	/* a commit or two */
	a = region_st(e, 0);
	b = region_st(e, 1);
	EXPECT_EQ(0u, a.lag_batches);
	EXPECT_EQ(0u, a.lag_events);
	EXPECT_EQ(40u, b.lag_batches);
	EXPECT_EQ(120u, b.lag_events);
	EXPECT_LT(0u, b.lag_ms);

	/* b parks: its rows are trimmed; what is gone is no lag */
	e->cfg.ship_lag_limit_s = 1;
	ship_reconfigure(e->ship, &e->cfg);
	ASSERT_TRUE(run_until(e, b_parked, NULL, 5000));
	ASSERT_TRUE(run_until(e, spool_empty, NULL, 5000));
	want[0] = want[1] = 0;
	EXPECT_TRUE(run_until(e, lags_are, want, 1000));
	/* b returns: unparked, it gets what is spooled from now on */
	ASSERT_EQ(0, nats_srv_start(&e->srv[1]));
	ASSERT_TRUE(run_until(e, reconnected_b, NULL, 10000));
	env_feed(e, 60);
	ASSERT_TRUE(run_until(e, all_delivered, "ab", 10000));
	EXPECT_TRUE(run_until(e, lags_are, want, 1000));
	b = region_st(e, 1);
	EXPECT_FALSE(b.parked);
	EXPECT_EQ(20u, b.shipped_batches);
	env_free(e);
}

/* --- review faults: ports 14900-14949 --------------------------------- */

/* A partition whose home (rendezvous rank 0) is region @home, -1: none. */
static int part_homed_at(unsigned int home)
{
	const char *names[2] = { "a", "b" };
	unsigned int weights[2] = { 100, 100 }, order[2];

	for (uint32_t p = 0; p < NPARTS; p++) {
		char key[32];

		snprintf(key, sizeof(key), "socket-%u", p);
		rendezvous_rank(key, names, weights, 2, order);
		if (order[0] == home)
			return p;
	}
	return -1;
}

/* Commit up to and including a poison (too big) batch in @part. */
static int commit_poison_in(struct env *e, uint32_t part)
{
	while (e->nsent % NPARTS != part) {
		int ret = commit_next(e);

		if (ret)
			return ret;
	}
	e->big_at = e->nsent + 1;
	return commit_next(e);
}

/* Restart server @i with max_payload @mp. */
static int srv_restart_payload(struct env *e, unsigned int i, int port,
			       int mp)
{
	nats_srv_kill(&e->srv[i]);
	return srv_config(&e->srv[i], i ? "nb" : "na", port, mp) ?:
	       nats_srv_start(&e->srv[i]);
}

/* Every record once, but @n_poison poison batches (1 record) never. */
static unsigned int faults_but_poison(struct env *e, struct check *c,
				      const unsigned int *poison,
				      unsigned int n_poison)
{
	unsigned int faults = 0;

	for (unsigned int i = 0; i < n_poison; i++) {
		const struct sent *s = &e->sent[poison[i]];

		if (c->seen[s->part][s->first]) {
			fprintf(stderr, "# poison part %u seq %" PRIu64
				": %u copies\n", s->part, s->first,
				c->seen[s->part][s->first]);
			faults++;
		}
		c->seen[s->part][s->first] = 1;
	}
	return faults + check_exactly_once(e, c);
}

static bool marker_unknown(struct env *e, void *arg)
{
	struct ship_region_status st = region_st(e, 0);

	return st.dead_lettered == 1 && st.last_error[0] &&
	       !strstr(st.last_error, "max_payload");
}

/*
 * The marker's acknowledgement is lost (the link holds it past the
 * deadline); the reconcile finds the marker in the stream.  It must not
 * be sent again: with a de-duplication window shorter than the outage a
 * second copy would be stored.
 */
TEST(marker_ack_lost_reconcile_finds_it_sent_once)
{
	struct env *e = setup(_metadata, 1, 14900, 0, CONFIG_SHIP_REPLICATE,
			      4096);
	struct check *c = calloc(1, sizeof(*c));
	struct proxy px = { 0 };
	unsigned int poison;

	ASSERT_NE(NULL, e);
	ASSERT_NE(NULL, c);
	ASSERT_EQ(0, proxy_start(e, &px, 14901, 14900));
	env_config(e, 1, 14901, 0, CONFIG_SHIP_REPLICATE);
	e->cfg.region[0].dupe_window_ms = 200;
	ASSERT_EQ(0, commit_n(e, 8));
	e->feed_to = 8;
	ASSERT_EQ(0, env_ship(e));
	ASSERT_TRUE(run_until(e, all_delivered, NULL, 10000));

	/* the marker goes out over a link slower than the deadline */
	ASSERT_EQ(0, proxy_cmd(&px, "set latency_ms 800\n"));
	ASSERT_EQ(0, commit_poison_in(e, 0));
	poison = e->nsent - 1;
	e->feed_to = e->nsent;
	ship_kick(e->ship);
	ASSERT_TRUE(run_until(e, marker_unknown, NULL, 5000));
	ASSERT_EQ(0, proxy_cmd(&px, "set latency_ms 0\n"));
	ASSERT_TRUE(run_until(e, all_delivered, NULL, 10000));
	run_until(e, never, NULL, 1500);	/* a second marker would go */

	ASSERT_EQ(0, read_stream(e, 0, c));
	EXPECT_EQ(1u, c->markers);
	EXPECT_EQ(0u, region_st(e, 0).duplicates);
	EXPECT_EQ(1u, region_st(e, 0).dead_lettered);
	EXPECT_EQ(0u, faults_but_poison(e, c, &poison, 1));
	proxy_kill(&px);
	free(c);
	env_free(e);
}

static bool a_recovered(struct env *e, void *arg)
{
	struct ship_region_status st = region_st(e, 0);

	return st.connected && !strcmp(st.breaker, "closed");
}

/* The number of connections tools/faultproxy @px holds, -errno. */
static int proxy_conns(struct proxy *px)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	char buf[256] = "", *c;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ssize_t n;

	if (fd < 0)
		return -errno;
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", px->ctl);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) ||
	    write(fd, "show\n", 5) != 5) {
		close(fd);
		return -EIO;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = 0;
	c = strstr(buf, "connections=");
	return c ? atoi(c + strlen("connections=")) : -EIO;
}

/*
 * Region a is reached over two proxies (two URLs of one server).  The one
 * carrying the connection goes dark and holds the publishes in flight;
 * the partitions move to b, which delivers those batches.  libnats drops
 * the stale connection and reconnects over the other proxy: the
 * reconciles there do not see the held publishes, which land in a's
 * stream only when the dark proxy lets them through, afterwards.  The
 * reconcile at failback must still recognise them as stray copies (the
 * subject's last sequence never moved past the one they expected)
 * although their rows were trimmed.
 */
TEST(failover_publish_landing_after_a_reconcile_is_still_a_stray)
{
	struct env *e = setup(_metadata, 2, 14910, 14912, CONFIG_SHIP_FAILOVER,
			      0);
	struct check *c = calloc(1, sizeof(*c));
	struct proxy px[2] = { 0 }, *dark;

	ASSERT_NE(NULL, e);
	ASSERT_NE(NULL, c);
	ASSERT_LT(0u, homed_at(0));
	ASSERT_EQ(0, proxy_start(e, &px[0], 14911, 14910));
	ASSERT_EQ(0, proxy_start(e, &px[1], 14913, 14910));
	env_config(e, 2, 14911, 14912, CONFIG_SHIP_FAILOVER);
	snprintf(e->cfg.region[0].urls, sizeof(e->cfg.region[0].urls),
		 "nats://127.0.0.1:14911,nats://127.0.0.1:14913");
	e->cfg.ship_failback_hold_ms = 600000;
	ASSERT_EQ(0, env_ship(e));
	env_feed(e, 240);
	ASSERT_TRUE(run_until(e, shipped_at_least, (void *)20, 10000));
	dark = proxy_conns(&px[0]) > 0 ? &px[0] : &px[1];
	ASSERT_LT(0, proxy_conns(dark));
	ASSERT_EQ(0, proxy_cmd(dark, "blackhole on\n"));
	ASSERT_TRUE(run_until(e, moved_off_a, NULL, 8000));
	/* a reconnects over the other proxy and reconciles everything */
	ASSERT_TRUE(run_until(e, a_recovered, NULL, 20000));
	ASSERT_TRUE(run_until(e, failover_delivered, NULL, 10000));
	run_until(e, never, NULL, 300);		/* trimmed */
	/* the held publishes land in a; then the partitions fail back */
	ASSERT_EQ(0, proxy_cmd(dark, "blackhole off\n"));
	run_until(e, never, NULL, 500);
	e->cfg.ship_failback_hold_ms = 100;
	ship_reconfigure(e->ship, &e->cfg);
	ASSERT_TRUE(run_until(e, failed_back, NULL, 15000));
	run_until(e, never, NULL, 300);

	for (unsigned int r = 0; r < 2; r++)
		ASSERT_EQ(0, read_stream(e, r, c));
	EXPECT_EQ(0u, check_exactly_once(e, c));
	proxy_kill(&px[0]);
	proxy_kill(&px[1]);
	free(c);
	env_free(e);
}

static bool dead_pending_moved(struct env *e, void *arg)
{
	return region_st(e, 0).dead_lettered == 1 &&
	       region_st(e, 0).home_partitions == 0;
}

/*
 * Region a dead-letters a batch (too big for a) and goes dark before its
 * marker is acknowledged.  The partition must not stay pinned to a: its
 * later batches go to b (never the dead-lettered one: it is in the
 * dead-letter table), and the marker is sent to a, once, when a returns.
 */
TEST(failover_marker_owed_to_a_dark_region_does_not_pin_the_partition)
{
	struct env *e = setup(_metadata, 2, 14920, 14922, CONFIG_SHIP_FAILOVER,
			      0);
	struct check *c = calloc(1, sizeof(*c)), *ca = calloc(1, sizeof(*c));
	struct dead_walk dw = { 0 };
	struct proxy px = { 0 };
	int part = part_homed_at(0);
	unsigned int poison;

	ASSERT_NE(NULL, e);
	ASSERT_NE(NULL, c);
	ASSERT_NE(NULL, ca);
	ASSERT_LE(0, part);
	ASSERT_EQ(0, srv_restart_payload(e, 0, 14920, 4096));
	ASSERT_EQ(0, proxy_start(e, &px, 14921, 14920));
	env_config(e, 2, 14921, 14922, CONFIG_SHIP_FAILOVER);
	ASSERT_EQ(0, commit_n(e, 8));
	e->feed_to = 8;
	ASSERT_EQ(0, env_ship(e));
	ASSERT_TRUE(run_until(e, failover_delivered, NULL, 10000));

	ASSERT_EQ(0, proxy_cmd(&px, "blackhole on\n"));
	ASSERT_EQ(0, commit_poison_in(e, part));
	poison = e->nsent - 1;
	ship_kick(e->ship);
	ASSERT_TRUE(run_until(e, dead_pending_moved, NULL, 8000));
	/* later batches of the partition reach b meanwhile */
	ASSERT_EQ(0, commit_n(e, 8));
	e->feed_to = e->nsent;
	ship_kick(e->ship);
	ASSERT_TRUE(run_until(e, failover_delivered, NULL, 8000));

	/* a returns: the marker reaches it, the partitions fail back */
	ASSERT_EQ(0, proxy_cmd(&px, "blackhole off\n"));
	ASSERT_TRUE(run_until(e, failed_back, NULL, 20000));
	run_until(e, never, NULL, 500);

	ASSERT_EQ(0, read_stream(e, 0, ca));
	EXPECT_EQ(1u, ca->markers);
	ASSERT_EQ(0, read_stream(e, 1, c));
	EXPECT_EQ(0u, c->markers);
	/* union of both streams */
	for (uint32_t p = 0; p < NPARTS; p++)
		for (unsigned int s = 0; s < 1024; s++)
			c->seen[p][s] += ca->seen[p][s];
	c->out_of_order += ca->out_of_order;
	c->bad += ca->bad;
	EXPECT_EQ(0u, faults_but_poison(e, c, &poison, 1));
	ASSERT_EQ(0, spool_foreach_dead(e->spool, dead_cb, &dw));
	EXPECT_EQ(1u, dw.n);
	EXPECT_EQ(e->sent[poison].id, dw.d.batch.id);
	proxy_kill(&px);
	free(ca);
	free(c);
	env_free(e);
}

/*
 * As above, but the operator replays the dead letter while a is dark: it
 * goes to b, over a link that holds it past the deadline.  The batch's
 * row is still spooled (nothing came after it), and a still owes the
 * marker of that very batch; the reconcile at b must take what it finds
 * as the replay's delivery, never delete it as a stray copy (the dead
 * letter is gone from the table by then: that would lose the batch).
 */
TEST(failover_replay_of_unknown_outcome_is_never_deleted_as_a_stray)
{
	struct env *e = setup(_metadata, 2, 14930, 14932, CONFIG_SHIP_FAILOVER,
			      0);
	struct check *c = calloc(1, sizeof(*c));
	struct dead_walk dw = { 0 };
	struct proxy pa = { 0 }, pb = { 0 };
	int part = part_homed_at(0);

	ASSERT_NE(NULL, e);
	ASSERT_NE(NULL, c);
	ASSERT_LE(0, part);
	ASSERT_EQ(0, srv_restart_payload(e, 0, 14930, 4096));
	ASSERT_EQ(0, proxy_start(e, &pa, 14931, 14930));
	ASSERT_EQ(0, proxy_start(e, &pb, 14933, 14932));
	env_config(e, 2, 14931, 14933, CONFIG_SHIP_FAILOVER);
	ASSERT_EQ(0, commit_n(e, 8));
	e->feed_to = 8;
	ASSERT_EQ(0, env_ship(e));
	ASSERT_TRUE(run_until(e, failover_delivered, NULL, 10000));

	ASSERT_EQ(0, proxy_cmd(&pa, "blackhole on\n"));
	ASSERT_EQ(0, commit_poison_in(e, part));
	e->feed_to = e->nsent;
	ship_kick(e->ship);
	ASSERT_TRUE(run_until(e, dead_pending_moved, NULL, 8000));
	ASSERT_EQ(0, spool_foreach_dead(e->spool, dead_cb, &dw));
	ASSERT_EQ(1u, dw.n);

	/* the replay goes to b (the route); its outcome is unknown */
	ASSERT_EQ(0, proxy_cmd(&pb, "set latency_ms 1500\n"));
	ASSERT_EQ(0, ship_dlq_replay(e->ship, dw.d.id));
	run_until(e, never, NULL, 700);
	ASSERT_EQ(0, proxy_cmd(&pb, "set latency_ms 0\n"));
	ASSERT_TRUE(run_until(e, no_dead, NULL, 10000));
	run_until(e, never, NULL, 1000);

	/* a returns: its marker, the failback */
	ASSERT_EQ(0, proxy_cmd(&pa, "blackhole off\n"));
	ASSERT_TRUE(run_until(e, failed_back, NULL, 20000));
	run_until(e, never, NULL, 500);

	for (unsigned int r = 0; r < 2; r++)
		ASSERT_EQ(0, read_stream(e, r, c));
	EXPECT_EQ(1u, c->markers);
	/* the replayed batch came after the marker in no stream's order */
	c->out_of_order = 0;
	EXPECT_EQ(0u, check_exactly_once(e, c));
	proxy_kill(&pa);
	proxy_kill(&pb);
	free(c);
	env_free(e);
}

/* --- coalescing: ports 14950-14999 -------------------------------------- */

static bool inflight_now(struct env *e, void *arg)
{
	return region_st(e, 0).inflight > 0;
}

static bool has_error(struct env *e, void *arg)
{
	return region_st(e, 0).last_error[0] != 0;
}

static bool reconciling(struct env *e, void *arg)
{
	return region_st(e, 0).reconciles >= 1;
}

/* Shipped at least @arg rows, and a publish is out right now. */
static bool shipped_and_inflight(struct env *e, void *arg)
{
	struct ship_region_status st = region_st(e, 0);

	return st.shipped_batches >= (uint64_t)(uintptr_t)arg && st.inflight;
}

/*
 * One partition, 200 spooled rows waiting: one message in flight per
 * partition, each holding the rows that wait behind it (one EVB1 batch
 * named by its first row), not one row per acknowledgement.
 */
TEST(backlog_of_200_rows_on_one_partition_goes_in_few_messages_exactly_once)
{
	struct env *e = setup(_metadata, 1, 14950, 0, CONFIG_SHIP_REPLICATE,
			      65536);
	struct check *c = calloc(1, sizeof(*c));
	struct ship_region_status st;
	struct spool_stats ss;

	ASSERT_NE(NULL, e);
	ASSERT_NE(NULL, c);
	e->one_part = true;
	ASSERT_EQ(0, commit_n(e, 200));
	e->feed_to = 200;
	ASSERT_EQ(0, env_ship(e));
	/* and more while it ships, one row every 5 ms */
	env_feed(e, 260);
	ASSERT_TRUE(run_until(e, all_delivered, NULL, 15000));
	ASSERT_EQ(0, spool_stats(e->spool, &ss));
	EXPECT_EQ(0u, ss.batches);
	st = region_st(e, 0);
	EXPECT_EQ(260u, st.shipped_batches);	/* rows, not messages */
	EXPECT_EQ(780u, st.shipped_events);
	EXPECT_EQ(0u, st.duplicates);
	EXPECT_STREQ("", st.last_error);

	ASSERT_EQ(0, read_stream(e, 0, c));
	fprintf(stderr, "# 260 rows in %" PRIu64 " messages (%" PRIu64
		" merged)\n", c->messages, c->merged);
	EXPECT_GT(200u, c->messages);
	EXPECT_LT(0u, c->merged);
	EXPECT_EQ(0u, c->markers);
	EXPECT_EQ(0u, check_exactly_once(e, c));	/* and in order */
	free(c);
	env_free(e);
}

/*
 * Rows of ~2.3 KB: a merged message stays within the server's max_payload
 * (64 KiB, headers included) and, with a smaller ship.max_message, within
 * that many raw bytes; nothing is refused for its size.
 */
TEST(merged_messages_fit_max_payload_and_max_message)
{
	struct env *e = setup(_metadata, 1, 14951, 0, CONFIG_SHIP_REPLICATE,
			      65536);
	struct check *c = calloc(1, sizeof(*c));
	struct ship_region_status st;

	ASSERT_NE(NULL, e);
	ASSERT_NE(NULL, c);
	e->one_part = true;
	e->plen = 700;		/* 3 records: 2208 bytes + header */
	ASSERT_EQ(0, commit_n(e, 200));
	e->feed_to = 200;
	ASSERT_EQ(0, env_ship(e));
	ASSERT_TRUE(run_until(e, all_delivered, NULL, 15000));
	st = region_st(e, 0);
	EXPECT_STREQ("", st.last_error);
	EXPECT_EQ(0u, st.dead_lettered);
	ASSERT_EQ(0, read_stream(e, 0, c));
	fprintf(stderr, "# max_payload 64 KiB: %" PRIu64 " messages, longest "
		"body %zu bytes\n", c->messages, c->max_len);
	EXPECT_GE(65536u, c->max_len);
	EXPECT_LT(32768u, c->max_len);	/* merged up to the bound */
	EXPECT_LE(200u * 2304 / 65536, c->messages);
	EXPECT_GT(200u, c->messages);
	EXPECT_LT(0u, c->merged);
	EXPECT_EQ(0u, check_exactly_once(e, c));
	ship_free(e->ship);
	e->ship = NULL;

	/* ship.max_message 16 KiB: at most 7 rows' records in a message */
	nats_srv_kill(&e->srv[0]);
	ASSERT_EQ(0, srv_config(&e->srv[0], "nb", 14952, 0));
	ASSERT_EQ(0, nats_srv_start(&e->srv[0]));
	env_config(e, 1, 14952, 0, CONFIG_SHIP_REPLICATE);
	e->cfg.ship_max_message = 16384;
	ASSERT_EQ(0, commit_n(e, 100));
	e->feed_to = 300;
	ASSERT_EQ(0, env_ship(e));
	ASSERT_TRUE(run_until(e, all_delivered, NULL, 15000));
	memset(c, 0, sizeof(*c));
	ASSERT_EQ(0, read_stream(e, 0, c));
	fprintf(stderr, "# max_message 16 KiB: %" PRIu64 " messages of the "
		"last 100 rows, largest raw batch %zu bytes\n", c->messages,
		c->max_raw);
	EXPECT_GE(16384u, c->max_raw);
	EXPECT_LE(100u / 7, c->messages);
	EXPECT_GT(100u, c->messages);
	EXPECT_STREQ("", region_st(e, 0).last_error);
	/* the first 200 rows went to the other server's stream */
	for (uint64_t s = 1; s < e->next_seq[0]; s++)
		EXPECT_EQ(s <= 600 ? 0u : 1u, c->seen[0][s]);
	EXPECT_EQ(0u, c->out_of_order + c->bad);
	free(c);
	env_free(e);
}

TEST(server_killed_mid_merged_publish_and_restarted_exactly_once)
{
	struct env *e = setup(_metadata, 1, 14953, 0, CONFIG_SHIP_REPLICATE,
			      65536);
	struct check *c = calloc(1, sizeof(*c));

	ASSERT_NE(NULL, e);
	ASSERT_NE(NULL, c);
	e->one_part = true;
	e->plen = 700;
	ASSERT_EQ(0, commit_n(e, 200));
	e->feed_to = 200;
	ASSERT_EQ(0, env_ship(e));
	env_feed(e, 300);
	for (unsigned int round = 0; round < 2; round++) {
		uintptr_t want = 40 + 100 * round;

		ASSERT_TRUE(run_until(e, shipped_and_inflight, (void *)want,
				      10000));
		nats_srv_kill(&e->srv[0]);
		run_until(e, never, NULL, 700);
		EXPECT_FALSE(region_st(e, 0).connected);
		ASSERT_EQ(0, nats_srv_start(&e->srv[0]));
	}
	ASSERT_TRUE(run_until(e, all_delivered, NULL, 20000));
	EXPECT_LE(3u, region_st(e, 0).reconciles);

	ASSERT_EQ(0, read_stream(e, 0, c));
	EXPECT_GT(300u, c->messages);
	EXPECT_LT(0u, c->merged);
	EXPECT_EQ(0u, check_exactly_once(e, c));
	free(c);
	env_free(e);
}

/*
 * Row A is published alone and held in a proxy (unknown outcome); evringd
 * restarts through another, slow proxy with rows B..D spooled too.  Its
 * reconcile finds nothing (A is still held), then A lands, then the
 * regrouped A..D arrives with the same message id: "duplicate", while the
 * stream holds only A.  Trusting that acknowledgement would skip B..D;
 * the shipper asks the stream instead, adopts A and sends B..D.
 */
TEST(duplicate_ack_of_a_regrouped_message_is_reconciled_exactly_once)
{
	struct env *e = setup(_metadata, 1, 14954, 0, CONFIG_SHIP_REPLICATE, 0);
	struct check *c = calloc(1, sizeof(*c));
	struct proxy p1 = { 0 }, p2 = { 0 };
	struct ship_region_status st;

	ASSERT_NE(NULL, e);
	ASSERT_NE(NULL, c);
	ASSERT_EQ(0, proxy_start(e, &p1, 14955, 14954));
	ASSERT_EQ(0, proxy_start(e, &p2, 14956, 14954));
	e->one_part = true;

	/* A alone through p1; held there once it is sent */
	env_config(e, 1, 14955, 0, CONFIG_SHIP_REPLICATE);
	e->cfg.ship_publish_timeout_ms = 1000;
	ASSERT_EQ(0, proxy_cmd(&p1, "set latency_ms 300\n"));
	ASSERT_EQ(0, commit_n(e, 1));
	e->feed_to = 1;
	ASSERT_EQ(0, env_ship(e));
	ASSERT_TRUE(run_until(e, inflight_now, NULL, 10000));
	ASSERT_EQ(0, proxy_cmd(&p1, "blackhole on\n"));	/* within 300 ms */
	ASSERT_TRUE(run_until(e, has_error, NULL, 5000));
	EXPECT_NE(NULL, strstr(region_st(e, 0).last_error,
			       "no acknowledgement"));
	ship_free(e->ship);
	e->ship = NULL;

	/*
	 * B..D, and a restart through p2 at 500 ms each way: the reconcile
	 * reaches the server 500 ms after it is sent, the merged A..D 1.5 s
	 * after; A is let go at 1 s, in the middle.
	 */
	ASSERT_EQ(0, commit_n(e, 3));
	e->feed_to = 4;
	env_config(e, 1, 14956, 0, CONFIG_SHIP_REPLICATE);
	e->cfg.ship_publish_timeout_ms = 5000;
	ASSERT_EQ(0, proxy_cmd(&p2, "set latency_ms 500\n"));
	ASSERT_EQ(0, env_ship(e));
	ASSERT_TRUE(run_until(e, reconciling, NULL, 15000));
	run_until(e, never, NULL, 1000);
	ASSERT_EQ(0, proxy_cmd(&p1, "blackhole off\n"));
	ASSERT_TRUE(run_until(e, all_delivered, NULL, 20000));
	st = region_st(e, 0);
	EXPECT_EQ(1u, st.duplicates);	/* else the scenario did not happen */
	EXPECT_LE(2u, st.reconciles);

	ASSERT_EQ(0, read_stream(e, 0, c));
	EXPECT_EQ(2u, c->messages);	/* A, then B..D */
	EXPECT_EQ(1u, c->merged);
	EXPECT_EQ(0u, check_exactly_once(e, c));
	proxy_kill(&p1);
	proxy_kill(&p2);
	free(c);
	env_free(e);
}

/*
 * Rows of ~39 KB with a max_payload of 64 KiB: no two fit one message, so
 * each goes alone, byte for byte, and none is lost or sent empty.
 */
TEST(rows_too_big_to_merge_go_alone_intact)
{
	struct env *e = setup(_metadata, 1, 14959, 0, CONFIG_SHIP_REPLICATE,
			      65536);
	struct check *c = calloc(1, sizeof(*c));

	ASSERT_NE(NULL, e);
	ASSERT_NE(NULL, c);
	e->one_part = true;
	e->plen = 13000;
	ASSERT_EQ(0, commit_n(e, 20));
	e->feed_to = 20;
	ASSERT_EQ(0, env_ship(e));
	ASSERT_TRUE(run_until(e, all_delivered, NULL, 15000));
	EXPECT_STREQ("", region_st(e, 0).last_error);
	ASSERT_EQ(0, read_stream(e, 0, c));
	EXPECT_EQ(20u, c->messages);
	EXPECT_EQ(0u, c->merged);
	EXPECT_EQ(0u, check_exactly_once(e, c));
	free(c);
	env_free(e);
}

/* Where socket-0 is at home (rendezvous rank 0). */
static unsigned int part0_home(void)
{
	const char *names[2] = { "a", "b" };
	unsigned int weights[2] = { 100, 100 }, order[2];

	rendezvous_rank("socket-0", names, weights, 2, order);
	return order[0];
}

static bool part0_moved(struct env *e, void *arg)
{
	return region_st(e, 1 - part0_home()).home_partitions == 1;
}

static bool part0_back(struct env *e, void *arg)
{
	return region_st(e, part0_home()).home_partitions == 1 &&
	       failover_delivered(e, NULL);
}

/*
 * Failover with merged messages: 50 rows go to the paused home region as
 * one merged publish, which times out in its socket buffer; the partition
 * moves, the other region delivers those rows, the home stores its copy
 * after SIGCONT, finds it as a stray (another region has its rows, which
 * may be trimmed by then) and deletes it.  The union holds every record
 * once.
 */
TEST(failover_with_merged_messages_union_exactly_once)
{
	struct env *e = setup(_metadata, 2, 14957, 14958, CONFIG_SHIP_FAILOVER,
			      0);
	struct check *c = calloc(1, sizeof(*c));
	unsigned int home = part0_home();

	ASSERT_NE(NULL, e);
	ASSERT_NE(NULL, c);
	e->one_part = true;
	ASSERT_EQ(0, commit_n(e, 100));
	e->feed_to = 100;
	ASSERT_EQ(0, env_ship(e));
	ASSERT_TRUE(run_until(e, failover_delivered, NULL, 10000));
	/* home paused; the 50 rows waiting go to it as one merged publish */
	kill(e->srv[home].pid, SIGSTOP);
	ASSERT_EQ(0, commit_n(e, 50));
	e->feed_to = 150;
	ship_kick(e->ship);
	ASSERT_TRUE(run_until(e, part0_moved, NULL, 8000));
	/* the other region delivers them; then home stores its copy */
	ASSERT_TRUE(run_until(e, failover_delivered, NULL, 10000));
	kill(e->srv[home].pid, SIGCONT);
	env_feed(e, 300);
	ASSERT_TRUE(run_until(e, part0_back, NULL, 20000));

	for (unsigned int r = 0; r < 2; r++)
		ASSERT_EQ(0, read_stream(e, r, c));
	fprintf(stderr, "# 300 rows in %" PRIu64 " messages over both "
		"streams (%" PRIu64 " merged)\n", c->messages, c->merged);
	EXPECT_LE(2u, c->merged);
	EXPECT_GT(300u, c->messages);
	EXPECT_EQ(0u, check_exactly_once(e, c));
	free(c);
	env_free(e);
}

TEST_HARNESS_MAIN
