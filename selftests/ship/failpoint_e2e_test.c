// SPDX-License-Identifier: GPL-2.0-only
/*
 * failpoint_e2e_test: evringd's failpoints (daemon/failpoint.h) in the
 * real daemon, at the instants a signal cannot hit on purpose, each with
 * the invariant it must keep:
 *
 *  - drain.after_commit=crash: evringd dies by SIGKILL with a commit
 *    durable and its ACK unsent; after a restart every acknowledged event
 *    is in the spool exactly once, the crash commit's events (never
 *    acknowledged) at most once, and the socket's seqs run gap-free.
 *  - drain.before_commit=error: evringd stops, exit 1, saying EIO; nothing
 *    acknowledged is lost after a restart and the failed commit's events
 *    were never acknowledged.
 *  - ship.after_publish=crash (armed from EVRING_FAILPOINTS): the region
 *    stored a batch whose cursor never reached the spool; after a restart
 *    `evringctl consume --region a` exits 0: reconcile found the batch,
 *    nothing is in the stream twice, everything acknowledged is there.
 *  - every failpoint armed live over the control socket fires in the
 *    running daemon (hits), and `evringctl failpoint list` shows it.
 *
 * Runs on the host: build/bin/evringd with only the ingest socket (the
 * e2e helpers of selftests/e2e/e2e.h), a spool under /tmp, and for the
 * ship.* failpoints a real single-node nats-server -js on 127.0.0.1 (ports
 * 14700-14799; $NATS_SERVER overrides /usr/sbin/nats-server), R1 stream.
 */
#include "../e2e/e2e.h"
#include "kselftest_harness.h"
#include "nats_server.h"

#define FP_PORT_LO	14700
#define FP_PORT_HI	14799
#define FP_WRITERS	2
#define FP_RATE		400		/* events/s per writer */
#define FP_CAP		(1u << 16)	/* events per writer */

/* --- nats-server -------------------------------------------------------- */

/*
 * A JetStream server on the first free port of our range, its store and
 * log in @dir.  0 (@s running, *@port set) or -errno.
 */
static int nats_start(const char *dir, struct nats_srv *s, int *port)
{
	int p = nats_port_free(FP_PORT_LO, FP_PORT_HI, 0);
	int ret;

	if (p < 0)
		return p;
	nats_srv_init(s, dir, "nats", p);
	snprintf(s->store, sizeof(s->store), "%s/js", dir);
	ret = nats_srv_write_conf(s, "fp", 0, NULL) ?: nats_srv_start(s);
	if (ret)
		return ret;
	*port = p;
	return 0;
}

/* --- the fixture -------------------------------------------------------- */

FIXTURE(fp) {
	struct e2e_env e;
	struct e2e_track *t;
	struct e2e_sock_writer wo[FP_WRITERS];
	struct nats_srv nats;
	int port;
};

FIXTURE_SETUP(fp)
{
	ASSERT_EQ(0, e2e_env_init(&self->e, "fp"));
	unsetenv("EVRING_FAILPOINTS");
	self->t = e2e_track_new(FP_WRITERS, FP_CAP);
	ASSERT_NE(NULL, self->t);
}

FIXTURE_TEARDOWN(fp)
{
	if (self->t)
		self->t->stop = 1;
	if (self->e.pid > 0)
		e2e_daemon_kill(&self->e, SIGKILL);
	e2e_reap_all();
	nats_srv_kill(&self->nats);
	e2e_env_fini(&self->e);
	e2e_track_free(self->t);
}

/* Socket only, commits every few ms so that a crash finds one. */
static const char *const base_sets[] = {
	"sources.device=", "drain.batch_ms=5", NULL,
};

static int writers_start(struct e2e_track *t, struct e2e_sock_writer *wo,
			 const char *path)
{
	for (unsigned int i = 0; i < FP_WRITERS; i++) {
		wo[i] = (struct e2e_sock_writer){
			.t = t, .id = i, .path = path, .rate = FP_RATE,
			.len_lo = 24, .len_hi = 200, .seed = 1000 + i,
		};
		if (e2e_spawn(e2e_sock_writer_main, &wo[i]) < 0)
			return -errno;
	}
	return 0;
}

static uint64_t acked_total(const struct e2e_track *t)
{
	uint64_t n = 0;

	for (unsigned int i = 0; i < t->nwriters; i++)
		n += t->w[i].acked;
	return n;
}

/* Until the writers together saw @more events acked than now. */
static int wait_acked_more(const struct e2e_track *t, uint64_t more,
			   int timeout_ms)
{
	uint64_t want = acked_total(t) + more;
	uint64_t end = e2e_now_ms() + timeout_ms;

	while (acked_total(t) < want) {
		if (e2e_now_ms() > end)
			return -ETIMEDOUT;
		e2e_sleep_ms(10);
	}
	return 0;
}

/* Stop the writers and wait for them: 0, or the first bad exit. */
static int writers_stop(struct e2e_track *t)
{
	t->stop = 1;
	for (unsigned int i = 0; i < t->nwriters; i++) {
		int ret = e2e_wait(t->w[i].pid, 60000);

		if (ret)
			return ret;
		if (t->w[i].error)
			return t->w[i].error;
	}
	return 0;
}

/*
 * `evringctl --socket CTL [--json] failpoint ARGS...`: its exit status;
 * its stdout in @out (may be NULL).
 */
static int ctl_failpoint(struct e2e_env *e, bool json, const char *a1,
			 const char *a2, char *out, size_t len)
{
	const char *argv[8] = { E2E_EVRINGCTL, "--socket", e->ctl };
	char path[160], *text;
	unsigned int n = 3;
	int ret;

	if (json)
		argv[n++] = "--json";
	argv[n++] = "failpoint";
	argv[n++] = a1;
	argv[n++] = a2;
	argv[n] = NULL;
	snprintf(path, sizeof(path), "%s/failpoint.out", e->dir);
	ret = e2e_run(argv, path, NULL, 30000);
	if (out) {
		text = e2e_slurp(path, NULL);
		snprintf(out, len, "%s", text ? text : "");
		free(text);
	}
	return ret;
}

/* The hits `evringctl --json failpoint list` reports for @name; -errno. */
static int64_t fp_hits(struct e2e_env *e, const char *name, char *action,
		       size_t alen)
{
	char out[4096];
	json_t *j, *x;
	int64_t hits = -ENOENT;
	size_t i;

	if (ctl_failpoint(e, true, "list", NULL, out, sizeof(out)))
		return -EIO;
	j = json_loads(out, JSON_DISABLE_EOF_CHECK, NULL);
	if (!j)
		return -EBADMSG;
	json_array_foreach(json_object_get(j, "failpoints"), i, x) {
		if (strcmp(e2e_jstr(x, "name"), name))
			continue;
		hits = (int64_t)e2e_jint(x, "hits");
		if (action)
			snprintf(action, alen, "%s", e2e_jstr(x, "action"));
	}
	json_decref(j);
	return hits;
}

/* Wait up to @ms for the daemon to end by itself: its status, or -ETIMEDOUT. */
static int daemon_wait_end(struct e2e_env *e, int ms)
{
	int ret = e2e_wait(e->pid, ms);

	if (ret >= 0) {
		e->last_status = ret;
		e->pid = 0;
	}
	return ret;
}

/* --- drain.* ----------------------------------------------------------- */

TEST_F_TIMEOUT(fp, drain_after_commit_crash_leaves_commit_unacked_and_spooled_once, 120)
{
	struct e2e_seq_verdict sv;
	struct e2e_spool sp = { 0 };
	struct e2e_verdict v;
	char out[512];
	int st;

	ASSERT_EQ(0, e2e_daemon_up(&self->e, base_sets, 30000));
	ASSERT_EQ(0, writers_start(self->t, self->wo, self->e.ingest));
	ASSERT_EQ(0, wait_acked_more(self->t, 200, 30000));

	/* Live, as the drill runner arms it. */
	ASSERT_EQ(0, ctl_failpoint(&self->e, false, "drain.after_commit",
				   "crash", out, sizeof(out))) TH_LOG("%s", out);
	ASSERT_STREQ("failpoint drain.after_commit: crash (the previous action was hit 0 times)\n",
		     out);
	st = daemon_wait_end(&self->e, 30000);
	ASSERT_EQ(256 + SIGKILL, st) TH_LOG("evringd ended with %d", st);
	ASSERT_TRUE(e2e_log_has(&self->e, "failpoint drain.after_commit: crash (hit 1)"));

	/* Failpoints do not outlive the process: this start runs clean. */
	ASSERT_EQ(0, e2e_daemon_up(&self->e, base_sets, 30000));
	ASSERT_EQ(0, wait_acked_more(self->t, 200, 30000));
	ASSERT_EQ(0, writers_stop(self->t));
	ASSERT_EQ(0, e2e_wait_drained(&self->e, "socket", 30000));
	ASSERT_EQ(0, e2e_daemon_stop(&self->e));

	ASSERT_EQ(0, e2e_spool_read(&sp, self->e.spool)) TH_LOG("%s", sp.why);
	e2e_check_seqs(&sp, &sv);
	ASSERT_EQ(0, e2e_check_writers(&sp, self->t, true, &v));
	e2e_print_verdict("drain.after_commit crash", &v, &sv);
	EXPECT_EQ(0u, sp.bad_batches) TH_LOG("%s", sp.why);
	EXPECT_EQ(0u, sp.bad_events) TH_LOG("%s", sp.why);
	EXPECT_EQ(0u, v.lost);
	EXPECT_EQ(0u, v.doubled);
	EXPECT_EQ(0u, v.unexpected);
	EXPECT_EQ(0u, v.disordered);
	EXPECT_LT(400u, v.acked);
	/* The crash commit: durable, never acknowledged. */
	EXPECT_LE(1u, v.unknown_in);
	EXPECT_EQ(1u, sv.runs);
	EXPECT_EQ(0u, sv.dups);
	EXPECT_EQ(0u, sv.gaps);
	EXPECT_EQ(0u, sp.nloss);
	e2e_spool_free(&sp);
}

TEST_F_TIMEOUT(fp, drain_before_commit_error_exits_1_with_eio_and_loses_nothing_acked, 120)
{
	struct e2e_seq_verdict sv;
	struct e2e_spool sp = { 0 };
	struct e2e_verdict v;
	char out[512];
	int st;

	ASSERT_EQ(0, e2e_daemon_up(&self->e, base_sets, 30000));
	ASSERT_EQ(0, writers_start(self->t, self->wo, self->e.ingest));
	ASSERT_EQ(0, wait_acked_more(self->t, 200, 30000));

	ASSERT_EQ(0, ctl_failpoint(&self->e, true, "drain.before_commit",
				   "error", out, sizeof(out))) TH_LOG("%s", out);
	ASSERT_STREQ("{\"ok\":true,\"cmd\":\"failpoint\",\"name\":\"drain.before_commit\",\"action\":\"error\",\"hits\":0}\n",
		     out);
	st = daemon_wait_end(&self->e, 30000);
	ASSERT_EQ(1, st) TH_LOG("evringd ended with %d", st);
	EXPECT_TRUE(e2e_log_has(&self->e, "failpoint drain.before_commit: failing the spool call with EIO (hit 1)"));
	EXPECT_TRUE(e2e_log_has(&self->e, "<3>evringd: spool commit failed: Input/output error (failpoint drain.before_commit)"));

	ASSERT_EQ(0, e2e_daemon_up(&self->e, base_sets, 30000));
	ASSERT_EQ(0, wait_acked_more(self->t, 200, 30000));
	ASSERT_EQ(0, writers_stop(self->t));
	ASSERT_EQ(0, e2e_wait_drained(&self->e, "socket", 30000));
	ASSERT_EQ(0, e2e_daemon_stop(&self->e));

	ASSERT_EQ(0, e2e_spool_read(&sp, self->e.spool)) TH_LOG("%s", sp.why);
	e2e_check_seqs(&sp, &sv);
	ASSERT_EQ(0, e2e_check_writers(&sp, self->t, true, &v));
	e2e_print_verdict("drain.before_commit error", &v, &sv);
	EXPECT_EQ(0u, v.lost);
	EXPECT_EQ(0u, v.doubled);
	EXPECT_EQ(0u, v.unexpected);
	EXPECT_EQ(0u, v.disordered);
	EXPECT_LT(400u, v.acked);
	/* The failed commit's events: never acknowledged, never spooled. */
	EXPECT_LE(1u, v.unknown_out);
	EXPECT_EQ(1u, sv.runs);
	EXPECT_EQ(0u, sv.dups);
	EXPECT_EQ(0u, sv.gaps);
	e2e_spool_free(&sp);
}

TEST_F(fp, bad_evring_failpoints_is_exit_1_with_the_reason)
{
	static const struct {
		const char *spec, *line;
	} cases[] = {
		{ "drain.after_commit=boom",
		  "<3>evringd: bad EVRING_FAILPOINTS: failpoint 'drain.after_commit': unknown action 'boom' (expected off, crash, pause:MS or error, optionally followed by @N)" },
		{ "ship.after_publish=error",
		  "<3>evringd: bad EVRING_FAILPOINTS: failpoint 'ship.after_publish': action 'error' applies only to drain.before_commit (the spool commit); use crash or pause" },
		{ "nope=crash",
		  "<3>evringd: bad EVRING_FAILPOINTS: unknown failpoint 'nope' (expected drain.before_commit, drain.after_commit, ship.before_publish, ship.after_publish or ship.after_cursor)" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int st;

		setenv("EVRING_FAILPOINTS", cases[i].spec, 1);
		ASSERT_EQ(0, e2e_daemon_start(&self->e, base_sets));
		unsetenv("EVRING_FAILPOINTS");
		st = daemon_wait_end(&self->e, 30000);
		ASSERT_EQ(1, st) TH_LOG("'%s': evringd ended with %d",
					cases[i].spec, st);
		ASSERT_TRUE(e2e_log_has(&self->e, cases[i].line))
			TH_LOG("'%s'", cases[i].spec);
	}
}

/* --- ship.* ------------------------------------------------------------ */

/*
 * The config file: region "a" on our server, R1, with the shortest
 * duplicate window, so that after a pause longer than it only reconcile
 * (not the stream's Nats-Msg-Id de-duplication) keeps a batch single.
 */
static int write_region_conf(struct e2e_env *e, int port)
{
	char text[512];

	snprintf(text, sizeof(text),
		 "[ship]\npublish_timeout_ms = 1000\nbackoff_base_ms = 20\nbackoff_cap_ms = 200\n"
		 "\n[region a]\nurls = nats://127.0.0.1:%d\nreplicas = 1\n"
		 "dupe_window_ms = 1000\n",
		 port);
	return e2e_write_file(e->conf, text, strlen(text), 0600);
}

/* Is everything spooled delivered to region a?  Then its epoch, last seq. */
static bool shipped(json_t *st, char *epoch, size_t elen, uint64_t *last)
{
	json_t *p, *g, *sock = NULL;
	size_t i;

	if (!e2e_status_drained(st, "socket"))
		return false;
	json_array_foreach(json_object_get(st, "regions"), i, g)
		if (e2e_jint(g, "lag_batches") || e2e_jint(g, "inflight") ||
		    !json_is_true(json_object_get(g, "connected")))
			return false;
	json_array_foreach(json_object_get(st, "partitions"), i, p)
		if (!strcmp(e2e_jstr(p, "source"), "socket"))
			sock = p;
	if (!sock)
		return false;
	snprintf(epoch, elen, "%s", e2e_jstr(sock, "epoch"));
	*last = e2e_jint(sock, "last_seq");
	return true;
}

static int wait_shipped(struct e2e_env *e, char *epoch, size_t elen,
			uint64_t *last, int timeout_ms)
{
	uint64_t end = e2e_now_ms() + timeout_ms;

	do {
		json_t *st = NULL;
		bool done;

		if (e2e_daemon_gone(e))
			return -ECHILD;
		if (e2e_status(e, &st)) {
			e2e_sleep_ms(50);
			continue;
		}
		done = shipped(st, epoch, elen, last);
		json_decref(st);
		if (done)
			return 0;
		e2e_sleep_ms(100);
	} while (e2e_now_ms() < end);
	return -ETIMEDOUT;
}

/* `evringctl consume --config F --region a [--expect ...]`: exit status. */
static int consume(struct e2e_env *e, const char *expect)
{
	const char *argv[12] = {
		E2E_EVRINGCTL, "consume", "--config", e->conf, "--region", "a",
		"--format", "none",
	};
	char out[160], err[160];
	unsigned int n = 8;
	int ret;

	if (expect) {
		argv[n++] = "--expect";
		argv[n++] = expect;
	}
	argv[n] = NULL;
	snprintf(out, sizeof(out), "%s/consume.out", e->dir);
	snprintf(err, sizeof(err), "%s/consume.err", e->dir);
	ret = e2e_run(argv, out, err, 60000);
	if (ret) {
		char *text = e2e_slurp(err, NULL);

		fprintf(stderr, "# consume exit %d:\n%s\n", ret,
			text ? text : "");
		free(text);
	}
	return ret;
}

TEST_F_TIMEOUT(fp, ship_after_publish_crash_then_restart_reconciles_without_duplicates, 180)
{
	char action[64], epoch[40], expect[128];
	uint64_t last = 0;
	int ret, st;

	ret = nats_start(self->e.dir, &self->nats, &self->port);
	ASSERT_EQ(0, ret) TH_LOG("nats-server: %s", strerror(-ret));
	ASSERT_EQ(0, write_region_conf(&self->e, self->port));

	/* Armed from the environment, at start. */
	setenv("EVRING_FAILPOINTS", "ship.after_publish=crash", 1);
	ret = e2e_daemon_up(&self->e, base_sets, 30000);
	unsetenv("EVRING_FAILPOINTS");
	ASSERT_EQ(0, ret);
	ASSERT_TRUE(e2e_log_has(&self->e, "failpoints armed from EVRING_FAILPOINTS: ship.after_publish=crash"));
	ASSERT_EQ(0, fp_hits(&self->e, "ship.after_publish", action,
			     sizeof(action)));
	ASSERT_STREQ("crash", action);

	/* The first batch acknowledged by region a kills it. */
	ASSERT_EQ(0, writers_start(self->t, self->wo, self->e.ingest));
	st = daemon_wait_end(&self->e, 30000);
	ASSERT_EQ(256 + SIGKILL, st) TH_LOG("evringd ended with %d", st);
	ASSERT_TRUE(e2e_log_has(&self->e, "failpoint ship.after_publish: crash (hit 1)"));

	/* Past the duplicate window: a re-publish would now be stored. */
	e2e_sleep_ms(1500);

	/* Restart clean; watch the other ship hooks fire meanwhile. */
	ASSERT_EQ(0, e2e_daemon_up(&self->e, base_sets, 30000));
	ASSERT_EQ(0, ctl_failpoint(&self->e, false, "ship.before_publish",
				   "pause:1", NULL, 0));
	ASSERT_EQ(0, ctl_failpoint(&self->e, false, "ship.after_cursor",
				   "pause:1", NULL, 0));
	ASSERT_EQ(0, wait_acked_more(self->t, 300, 30000));
	ASSERT_EQ(0, writers_stop(self->t));
	ASSERT_EQ(0, wait_shipped(&self->e, epoch, sizeof(epoch), &last,
				  60000));
	EXPECT_LT(0, fp_hits(&self->e, "ship.before_publish", NULL, 0));
	EXPECT_LT(0, fp_hits(&self->e, "ship.after_cursor", NULL, 0));
	{
		json_t *st = NULL, *g;

		ASSERT_EQ(0, e2e_status(&self->e, &st));
		g = json_array_get(json_object_get(st, "regions"), 0);
		e2e_msg("region a: shipped %" PRIu64 " batches, %" PRIu64
			" duplicates, %" PRIu64 " reconciles",
			e2e_jint(g, "shipped_batches"),
			e2e_jint(g, "duplicates"), e2e_jint(g, "reconciles"));
		/* Reconcile adopted the stored batch: nothing re-sent. */
		EXPECT_EQ(0u, e2e_jint(g, "duplicates"));
		json_decref(st);
	}
	ASSERT_EQ(0, e2e_daemon_stop(&self->e));

	/* The stream: every record once, 1..last all there. */
	snprintf(expect, sizeof(expect), "e2e/socket-0/%s/1-%" PRIu64, epoch,
		 last);
	e2e_msg("region a should hold %s", expect);
	EXPECT_EQ(0, consume(&self->e, NULL));
	EXPECT_EQ(0, consume(&self->e, expect));

	/*
	 * Shipped batches are trimmed from the spool, so the stream is the
	 * judge: with 1..last there once, every acknowledged event (spooled,
	 * so within 1..last) was delivered once.
	 */
	EXPECT_LE(acked_total(self->t), last);
}

/* --- live arming -------------------------------------------------------- */

TEST_F_TIMEOUT(fp, failpoints_armed_live_fire_and_list_shows_them, 120)
{
	char out[4096], action[64];
	int64_t hits;

	ASSERT_EQ(0, e2e_daemon_up(&self->e, base_sets, 30000));
	ASSERT_EQ(0, ctl_failpoint(&self->e, false, "list", NULL, out,
				   sizeof(out)));
	ASSERT_STREQ("FAILPOINT            ACTION                   HITS\n"
		     "drain.before_commit  off                      0\n"
		     "drain.after_commit   off                      0\n"
		     "ship.before_publish  off                      0\n"
		     "ship.after_publish   off                      0\n"
		     "ship.after_cursor    off                      0\n", out);

	ASSERT_EQ(0, ctl_failpoint(&self->e, false, "drain.before_commit",
				   "pause:1", NULL, 0));
	ASSERT_EQ(0, ctl_failpoint(&self->e, false, "drain.after_commit",
				   "crash@1000000", NULL, 0));
	ASSERT_EQ(0, writers_start(self->t, self->wo, self->e.ingest));
	ASSERT_EQ(0, wait_acked_more(self->t, 200, 30000));

	hits = fp_hits(&self->e, "drain.before_commit", action, sizeof(action));
	EXPECT_LT(0, hits);
	EXPECT_STREQ("pause:1", action);
	hits = fp_hits(&self->e, "drain.after_commit", action, sizeof(action));
	EXPECT_LT(0, hits);
	EXPECT_STREQ("crash@1000000", action);

	/* Off: the answer says how often the action was reached. */
	ASSERT_EQ(0, ctl_failpoint(&self->e, true, "drain.after_commit", "off",
				   out, sizeof(out)));
	{
		json_t *j = json_loads(out, JSON_DISABLE_EOF_CHECK, NULL);

		ASSERT_NE(NULL, j) TH_LOG("%s", out);
		EXPECT_TRUE(json_is_true(json_object_get(j, "ok")));
		EXPECT_STREQ("off", e2e_jstr(j, "action"));
		EXPECT_LE((uint64_t)hits, e2e_jint(j, "hits"));
		json_decref(j);
	}
	EXPECT_EQ(0, fp_hits(&self->e, "drain.after_commit", action,
			     sizeof(action)));
	EXPECT_STREQ("off", action);

	/* A refusal leaves the daemon and its failpoints as they were. */
	EXPECT_EQ(1, ctl_failpoint(&self->e, false, "drain.after_commit",
				   "error", NULL, 0));
	EXPECT_EQ(1, ctl_failpoint(&self->e, false, "drain.commit", "crash",
				   NULL, 0));
	ASSERT_EQ(0, ctl_failpoint(&self->e, false, "drain.before_commit",
				   "off", NULL, 0));
	ASSERT_EQ(0, writers_stop(self->t));
	ASSERT_EQ(0, e2e_wait_drained(&self->e, "socket", 30000));
	ASSERT_EQ(0, e2e_daemon_stop(&self->e));
	EXPECT_FALSE(e2e_log_has(&self->e, "<3>"));
}

TEST_HARNESS_MAIN
