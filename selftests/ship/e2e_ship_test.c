// SPDX-License-Identifier: GPL-2.0-only
/*
 * e2e_ship_test: evringd ships to two real regions (tools/regions:
 * a at 10.77.1.2, b at 10.77.2.2, each a 3-node JetStream cluster in its
 * own network namespace, R3 streams) while socket writers keep sending,
 * and the regions fail the ways issue 6 lists: a whole region killed and
 * brought back (failover, failback), its stream leader SIGSTOPped (the
 * breaker), cut off by nftables for longer than the duplicate window with
 * publishes in flight, evringd itself killed with SIGKILL, and a poison
 * batch too big for a region (dead-letter table, replay after the fix).
 *
 * Every test ends by reading every stream back twice (ship_e2e.h): with
 * `evringctl consume` (exit 0: every record once, no unexplained gap,
 * the whole socket partition expected) and with our own count: every
 * event a writer saw acknowledged exactly once, per region in replicate
 * mode and across both in failover mode.
 *
 * Run as root from the repository root (netns, nftables); SKIPs when not
 * root or nats-server / nft is missing.  EVRING_E2E_SEED replays the
 * random parts; EVRING_E2E_KEEP keeps the test's directory;
 * EVRING_SHIP_ONLY=SUBSTRING runs only the tests whose name has it (the
 * rest SKIP).
 */
#include "ship_e2e.h"
#include "kselftest_harness.h"

#define RATE		150	/* events/s per writer */
#define BOTH		3u	/* region mask a+b */

static const char *missing_prereq(void)
{
	if (geteuid())
		return "needs root (netns, veth, nftables)";
	if (access("/usr/sbin/nats-server", X_OK))
		return "no /usr/sbin/nats-server";
	if (access("/usr/sbin/nft", X_OK))
		return "no /usr/sbin/nft";
	if (access(E2E_EVRINGD, X_OK) || access(E2E_EVRINGCTL, X_OK))
		return "build/bin/evringd or evringctl missing (make userspace)";
	return NULL;
}

/* Wait until region @name's stream holds more than @than messages. */
static int wait_msgs_above(const char *name, uint64_t than, int timeout_ms,
			   uint64_t *now)
{
	uint64_t end = e2e_now_ms() + timeout_ms, n = 0;

	do {
		if (!ship_stream_msgs(name, &n) && n > than) {
			if (now)
				*now = n;
			return 0;
		}
		e2e_sleep_ms(100);
	} while (e2e_now_ms() < end);
	if (now)
		*now = n;
	return -ETIMEDOUT;
}

static uint64_t msgs(const char *name)
{
	uint64_t n = 0;

	ship_stream_msgs(name, &n);
	return n;
}

FIXTURE(ship)
{
	struct ship_env s;
	uint64_t seed;
};

FIXTURE_SETUP(ship)
{
}

/*
 * Every test starts here (not in the setup: this harness runs the body
 * even after a SKIP in the setup): prerequisites, the seed, regions a and
 * b up, a private directory.
 */
#define SHIP_START() do { \
	const char *why = missing_prereq(); \
	const char *only = getenv("EVRING_SHIP_ONLY"); \
	if (why) \
		SKIP(return, "%s", why); \
	if (only && !strstr(_metadata->name, only)) \
		SKIP(return, "not selected by EVRING_SHIP_ONLY"); \
	self->seed = e2e_seed(); \
	e2e_msg("seed %" PRIu64 " (EVRING_E2E_SEED to replay)", self->seed); \
	ASSERT_EQ(0, ship_env_init(&self->s, "ship", 2)); \
} while (0)

FIXTURE_TEARDOWN(ship)
{
	if (!self->s.e.dir[0])
		return;
	if (self->s.e.pid > 0 && getenv("EVRING_E2E_KEEP"))
		e2e_log_tail(&self->s.e, 3000);
	ship_env_fini(&self->s);
}

/*
 * failover: the socket partition's home region is killed whole; its
 * partition moves to the other region (nothing lost, nothing doubled
 * across the move); once the home is back and healthy for the hold time,
 * new batches go home again.
 */
TEST_F_TIMEOUT(ship, failover_kill_home_region_moves_and_fails_back_exactly_once, 120)
{
	struct ship_env *s = &self->s;
	struct ship_range r;
	const char *home, *other;
	uint64_t n, h0, o0, o1;
	int ret;

	SHIP_START();

	ASSERT_EQ(0, ship_conf(s, "failover", "breaker_failures = 2", NULL));
	ASSERT_EQ(0, ship_daemon_up(s, NULL));
	ASSERT_EQ(0, ship_writers_start(s, 2, RATE, self->seed));

	/* Which region is home?  The first to hold anything. */
	home = NULL;
	for (uint64_t end = e2e_now_ms() + 20000; !home && e2e_now_ms() < end;
	     e2e_sleep_ms(100)) {
		if (msgs("a"))
			home = "a";
		else if (msgs("b"))
			home = "b";
	}
	ASSERT_NE(NULL, home) {
		ship_print_status(s);
	}
	other = strcmp(home, "a") ? "a" : "b";
	e2e_sleep_ms(500);
	EXPECT_EQ(0u, msgs(other)) TH_LOG("failover: both regions took batches");
	e2e_msg("home region %s; killing it", home);

	ASSERT_EQ(0, regions_kill(home));
	ret = wait_msgs_above(other, 0, 20000, &o0);
	ASSERT_EQ(0, ret) {
		ship_print_status(s);
	}
	/* The partition lives on the other region while home is down. */
	ASSERT_EQ(0, wait_msgs_above(other, o0 + 5, 10000, &o0));
	e2e_msg("region %s took over (%" PRIu64 " messages)", other, o0);

	ASSERT_EQ(0, regions_start(home));
	h0 = msgs(home);
	/* Failback: after failback_hold_ms (2 s) of health, home again. */
	ret = wait_msgs_above(home, h0 + 3, 30000, &n);
	ASSERT_EQ(0, ret) {
		ship_print_status(s);
	}
	e2e_msg("failback to %s: %" PRIu64 " -> %" PRIu64 " messages", home, h0, n);
	e2e_sleep_ms(500);
	o0 = msgs(other);
	h0 = msgs(home);
	e2e_sleep_ms(1500);
	o1 = msgs(other);
	EXPECT_EQ(o0, o1) TH_LOG("region %s still takes batches after failback", other);
	EXPECT_LT(h0, msgs(home));

	ASSERT_EQ(0, ship_writers_stop(s));
	ASSERT_EQ(0, ship_wait_shipped(s, 60000, &r)) {
		ship_print_status(s);
	}
	ship_print_status(s);
	EXPECT_EQ(0, e2e_daemon_stop(&s->e)) TH_LOG("evringd did not exit 0 on SIGTERM");
	e2e_msg("%" PRIu64 " events acked, socket-0 epoch %s seqs 1-%" PRIu64,
		ship_acked(s), r.epoch, r.last_seq);
	EXPECT_EQ(0, ship_judge(s, BOTH, false, &r));
}

/*
 * A stream leader stops answering (SIGSTOP): publishes miss their
 * deadlines, the region's breaker opens while the other region goes on;
 * after SIGCONT it closes again and both streams hold everything once.
 */
TEST_F_TIMEOUT(ship, sigstop_leader_opens_breaker_and_recovers_exactly_once, 120)
{
	struct ship_env *s = &self->s;
	struct ship_range r;
	char leader[64];
	uint64_t b0, opened = 0;
	int ret;

	SHIP_START();

	ASSERT_EQ(0, ship_conf(s, "replicate", "breaker_failures = 2", NULL));
	ASSERT_EQ(0, ship_daemon_up(s, NULL));
	ASSERT_EQ(0, ship_writers_start(s, 2, RATE, self->seed));
	ASSERT_EQ(0, wait_msgs_above("a", 0, 20000, NULL)) {
		ship_print_status(s);
	}
	ASSERT_EQ(0, regions_stop_leader("a", SHIP_STREAM, leader, sizeof(leader)));
	e2e_msg("stopped %s, the leader of a's stream", leader);
	ret = ship_wait_region(s, "a", "breaker", "open", 30000);
	EXPECT_EQ(0, ret) {
		ship_print_status(s);
	}
	/* A stalled region does not stall the other. */
	b0 = msgs("b");
	EXPECT_EQ(0, wait_msgs_above("b", b0 + 3, 10000, NULL));

	ASSERT_EQ(0, regions_cont("a"));
	ASSERT_EQ(0, ship_wait_region(s, "a", "breaker", "closed", 30000)) {
		ship_print_status(s);
	}
	EXPECT_EQ(0, ship_region_u64(s, "a", "breaker_opened", &opened));
	EXPECT_LE(1u, opened);
	e2e_sleep_ms(1000);

	ASSERT_EQ(0, ship_writers_stop(s));
	ASSERT_EQ(0, ship_wait_shipped(s, 60000, &r)) {
		ship_print_status(s);
	}
	ship_print_status(s);
	EXPECT_EQ(0, e2e_daemon_stop(&s->e)) TH_LOG("evringd did not exit 0 on SIGTERM");
	EXPECT_EQ(0, ship_judge(s, BOTH, true, &r));
}

/*
 * Region a cut off by nftables for 5 s, longer than its stream's 2 s
 * duplicate window, with publishes in flight: the stream's de-duplication
 * cannot help once the window passed; the expected-last-sequence checks
 * and reconciliation must.  Both streams hold everything once.
 */
TEST_F_TIMEOUT(ship, partition_longer_than_dupe_window_still_exactly_once, 120)
{
	struct ship_env *s = &self->s;
	struct ship_range r;
	uint64_t a0, b0;

	SHIP_START();

	ASSERT_EQ(0, ship_conf(s, "replicate", NULL, "dupe_window_ms = 2000"));
	ASSERT_EQ(0, ship_daemon_up(s, NULL));
	ASSERT_EQ(0, ship_writers_start(s, 2, RATE, self->seed));
	ASSERT_EQ(0, wait_msgs_above("a", 3, 20000, NULL)) {
		ship_print_status(s);
	}
	ASSERT_EQ(0, regions_partition("a"));
	a0 = msgs("a");
	b0 = msgs("b");
	e2e_msg("region a cut off at %" PRIu64 " messages", a0);
	e2e_sleep_ms(5000);
	/* b went on; a took nothing from the host meanwhile. */
	EXPECT_LT(b0 + 3, msgs("b"));
	ASSERT_EQ(0, regions_heal("a"));
	ASSERT_EQ(0, wait_msgs_above("a", msgs("a"), 30000, NULL)) {
		ship_print_status(s);
	}
	e2e_sleep_ms(1000);

	ASSERT_EQ(0, ship_writers_stop(s));
	ASSERT_EQ(0, ship_wait_shipped(s, 60000, &r)) {
		ship_print_status(s);
	}
	ship_print_status(s);
	EXPECT_EQ(0, e2e_daemon_stop(&s->e)) TH_LOG("evringd did not exit 0 on SIGTERM");
	EXPECT_EQ(0, ship_judge(s, BOTH, true, &r));
}

/*
 * evringd killed with SIGKILL three times while publishing to both
 * regions, restarted each time: whatever was in flight is reconciled at
 * the next start, and each stream holds everything once.
 */
TEST_F_TIMEOUT(ship, kill9_evringd_while_publishing_exactly_once_after_restart, 120)
{
	struct ship_env *s = &self->s;
	struct ship_range r;
	uint64_t rng;

	SHIP_START();
	rng = self->seed;

	ASSERT_EQ(0, ship_conf(s, "replicate", NULL, NULL));
	ASSERT_EQ(0, ship_daemon_up(s, NULL));
	ASSERT_EQ(0, ship_writers_start(s, 2, 2 * RATE, self->seed));
	ASSERT_EQ(0, wait_msgs_above("a", 0, 20000, NULL));
	for (int k = 0; k < 3; k++) {
		unsigned int ms = e2e_rand_range(&rng, 300, 1500);
		uint64_t a = msgs("a"), b = msgs("b");

		e2e_sleep_ms(ms);
		EXPECT_EQ(256 + SIGKILL, e2e_daemon_kill(&s->e, SIGKILL));
		e2e_msg("kill %d after %u ms (a %" PRIu64 ", b %" PRIu64
			" messages before)", k + 1, ms, a, b);
		ASSERT_EQ(0, ship_daemon_up(s, NULL));
		for (unsigned int i = 0; i < s->t->nwriters; i++)
			ASSERT_EQ(0, s->t->w[i].error);
	}
	e2e_sleep_ms(1000);

	ASSERT_EQ(0, ship_writers_stop(s));
	ASSERT_EQ(0, ship_wait_shipped(s, 60000, &r)) {
		ship_print_status(s);
	}
	ship_print_status(s);
	EXPECT_EQ(0, e2e_daemon_stop(&s->e)) TH_LOG("evringd did not exit 0 on SIGTERM");
	EXPECT_EQ(0, ship_judge(s, BOTH, true, &r));
}

/* --- the poison batch --------------------------------------------------- */

/* Send @n events (blobs of @blob_len when non-zero) as writer @w, then sync. */
static int send_events(struct ship_env *s, struct evring_writer *ew,
		       uint32_t w, unsigned int n, uint32_t blob_len)
{
	static uint8_t buf[65536];
	struct e2e_track *t = s->t;
	uint64_t c0 = t->w[w].next;
	int ret = 0;

	for (unsigned int i = 0; i < n && !ret; i++) {
		uint64_t c = t->w[w].next++;
		uint32_t len = blob_len ? blob_len : e2e_ev_len(w, c, 24, 100);

		if (blob_len)
			ship_blob_make(buf, w, c, len);
		else
			e2e_ev_make(buf, w, c, len);
		e2e_mark(t, w, c, E2E_SENT);
		ret = evring_writer_write(ew, buf, len);
	}
	if (!ret)
		ret = evring_writer_sync(ew, 30000);
	if (!ret)
		for (uint64_t c = c0; c < t->w[w].next; c++)
			e2e_mark(t, w, c, E2E_ACKED);
	return ret;
}

/*
 * @n small events, 10 to a sync: each sync is a commit of its own, so
 * every batch stays under the poisoned region's 4 KiB.
 */
static int send_small(struct ship_env *s, struct evring_writer *ew,
		      unsigned int n)
{
	int ret = 0;

	for (unsigned int i = 0; i < n && !ret; i += 10)
		ret = send_events(s, ew, 0, n - i < 10 ? n - i : 10, 0);
	return ret;
}

/* The dead letters evringctl lists (new reference), or NULL. */
static json_t *dlq_list(struct ship_env *s)
{
	json_t *j = NULL, *rows;

	if (ship_evringctl(s, &j, (const char *[]){ "dlq", "list", NULL })) {
		json_decref(j);
		return NULL;
	}
	rows = json_incref(json_object_get(j, "dead_letters"));
	json_decref(j);
	return rows;
}

/*
 * One event bigger than region a's max_payload (4 KiB): a refuses its
 * batch for good, the batch goes to the dead-letter table with the reason
 * (after dead_letter_after attempts) and a dead-letter marker keeps a's
 * stream explained; b takes everything.  With a's max_payload raised, an
 * operator's `evringctl dlq replay ID` delivers it and both streams hold
 * everything once.
 */
TEST_F_TIMEOUT(ship, poison_batch_dead_letters_then_replays_after_fix, 120)
{
	struct ship_env *s = &self->s;
	struct evring_writer *ew = NULL;
	struct ship_range r;
	json_t *rows = NULL, *d;
	char id[32];
	int ret;

	SHIP_START();

	setenv("EVRING_REGION_MAX_PAYLOAD", "4096", 1);
	ret = regions_restart("a");
	unsetenv("EVRING_REGION_MAX_PAYLOAD");
	ASSERT_EQ(0, ret);
	ASSERT_EQ(0, ship_conf(s, "replicate", "dead_letter_after = 2", NULL));
	ASSERT_EQ(0, ship_daemon_up(s, NULL));
	s->t->nwriters = 2;	/* 0: ordinary events, 1: blobs */
	ASSERT_EQ(0, evring_writer_open("/nonexistent/evring", s->e.ingest, &ew));
	ASSERT_EQ(0, send_small(s, ew, 40));
	ASSERT_EQ(0, wait_msgs_above("a", 0, 20000, NULL)) {
		ship_print_status(s);
	}
	ASSERT_EQ(0, send_events(s, ew, 1, 1, 8000));
	e2e_sleep_ms(50);
	ASSERT_EQ(0, send_small(s, ew, 40));

	/* The poison batch lands in the dead-letter table, with its reason. */
	for (uint64_t end = e2e_now_ms() + 30000; e2e_now_ms() < end;
	     e2e_sleep_ms(200)) {
		json_decref(rows);
		rows = dlq_list(s);
		if (json_array_size(rows))
			break;
	}
	ASSERT_EQ(1u, json_array_size(rows)) {
		ship_print_status(s);
	}
	d = json_array_get(rows, 0);
	e2e_msg("dead letter %" PRIu64 ": region %s, seqs %" PRIu64 "-%" PRIu64
		", %" PRIu64 " bytes, %" PRIu64 " attempts, reason '%s'",
		e2e_jint(d, "id"), e2e_jstr(d, "region"), e2e_jint(d, "first_seq"),
		e2e_jint(d, "last_seq"), e2e_jint(d, "bytes"),
		e2e_jint(d, "attempts"), e2e_jstr(d, "reason"));
	EXPECT_STREQ("a", e2e_jstr(d, "region"));
	EXPECT_STREQ("socket", e2e_jstr(d, "source"));
	EXPECT_NE(0u, strlen(e2e_jstr(d, "reason")));
	EXPECT_NE(NULL, strcasestr(e2e_jstr(d, "reason"), "payload"));
	EXPECT_LT(4096u, e2e_jint(d, "bytes"));
	snprintf(id, sizeof(id), "%" PRIu64, e2e_jint(d, "id"));
	json_decref(rows);
	rows = NULL;

	/* Events after the poison still flow to a. */
	ASSERT_EQ(0, send_small(s, ew, 40));
	ASSERT_EQ(0, ship_wait_shipped(s, 30000, &r)) {
		ship_print_status(s);
	}
	/* a's stream is explained (marker), b holds everything. */
	EXPECT_EQ(0, ship_consume(s, 1, &r));
	EXPECT_EQ(0, ship_judge(s, 2, true, &r));

	/* The fix: a's servers take 1 MiB again; the operator replays. */
	ASSERT_EQ(0, regions_restart("a"));
	ret = ship_evringctl(s, &d, (const char *[]){ "dlq", "replay", id, NULL });
	EXPECT_EQ(0, ret) TH_LOG("dlq replay %s: %s", id, d ? json_dumps(d, 0) : "(no output)");
	json_decref(d);
	for (uint64_t end = e2e_now_ms() + 30000; e2e_now_ms() < end;
	     e2e_sleep_ms(200)) {
		json_decref(rows);
		rows = dlq_list(s);
		if (rows && !json_array_size(rows))
			break;
	}
	EXPECT_EQ(0u, json_array_size(rows));
	json_decref(rows);

	ASSERT_EQ(0, send_small(s, ew, 20));
	evring_writer_close(ew);
	ASSERT_EQ(0, ship_wait_shipped(s, 60000, &r)) {
		ship_print_status(s);
	}
	ship_print_status(s);
	EXPECT_EQ(0, e2e_daemon_stop(&s->e)) TH_LOG("evringd did not exit 0 on SIGTERM");
	EXPECT_EQ(0, ship_judge(s, BOTH, true, &r));
}

TEST_HARNESS_MAIN
