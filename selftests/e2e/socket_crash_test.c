// SPDX-License-Identifier: GPL-2.0-only
/*
 * socket_crash_test: the ingest socket through the same crash loop as the
 * device.  Writers send numbered events with libevring over the socket and
 * sync; evringd is killed with SIGKILL at random instants and restarted;
 * writers whose connection broke connect again and go on with new
 * numbers.  In the end every event an ACK covered is in the spool exactly
 * once, every event whose outcome never came back is there at most once,
 * nothing else is, and the socket's sequence numbers run gap-free from 1
 * in one epoch across every restart.
 *
 * Needs no module (the device source is off); runs on the host or in the
 * VM.  Knobs: EVRING_E2E_SEED, EVRING_E2E_SOCK_KILLS (default 100),
 * EVRING_E2E_KILL_MS (default 300), EVRING_E2E_RATE (events/s per writer,
 * default 400), EVRING_E2E_WRITERS (default 4).
 */
#include "e2e.h"
#include "kselftest_harness.h"

FIXTURE(sock) {
	struct e2e_env e;
	struct e2e_track *t;
};

FIXTURE_SETUP(sock)
{
	ASSERT_EQ(0, e2e_env_init(&self->e, "sock"));
}

FIXTURE_TEARDOWN(sock)
{
	if (self->t)
		self->t->stop = 1;
	if (self->e.pid > 0)
		e2e_daemon_kill(&self->e, SIGKILL);
	e2e_reap_all();
	e2e_env_fini(&self->e);
	e2e_track_free(self->t);
}

TEST_F_TIMEOUT(sock, kill9_loop_socket_acked_events_spooled_exactly_once, 600)
{
	static const char *const recs[] = { "1", "3", "16", "4096" };
	static const char *const ms[] = { "0", "0", "1", "5" };
	uint64_t kills = e2e_env_u64("EVRING_E2E_SOCK_KILLS", 100);
	uint64_t kill_ms = e2e_env_u64("EVRING_E2E_KILL_MS", 300);
	unsigned int rate = e2e_env_u64("EVRING_E2E_RATE", 400);
	unsigned int nw = e2e_env_u64("EVRING_E2E_WRITERS", 4);
	uint64_t seed = e2e_seed(), rng = seed, t0 = e2e_now_ms();
	uint64_t reconnects = 0, epoch;
	struct e2e_faults f = { 0 };
	struct e2e_sock_writer wo[E2E_WRITERS_MAX];
	struct e2e_seq_verdict sv;
	struct e2e_verdict v;
	struct e2e_spool sp = { 0 };
	size_t created = 0;

	e2e_msg("seed %" PRIu64 " (EVRING_E2E_SEED to replay), %" PRIu64
	       " kills, %u writers at %u events/s", seed, kills, nw, rate);
	ASSERT_LE(nw, (unsigned int)E2E_WRITERS_MAX);
	self->t = e2e_track_new(nw, 1u << 20);
	ASSERT_NE(NULL, self->t);
	for (unsigned int i = 0; i < nw; i++) {
		wo[i] = (struct e2e_sock_writer){
			.t = self->t, .id = i, .path = self->e.ingest,
			.rate = rate, .len_lo = 24, .len_hi = 300,
			.seed = seed + i,
		};
		ASSERT_LT(0, e2e_spawn(e2e_sock_writer_main, &wo[i]));
	}

	for (uint64_t k = 0; k < kills; k++) {
		char s_recs[40], s_ms[40];
		const char *sets[] = {
			"sources.device=", s_recs, s_ms,
			e2e_rand(&rng) % 4 ? "spool.synchronous=full" :
					     "spool.synchronous=normal",
			NULL,
		};
		int ret;

		snprintf(s_recs, sizeof(s_recs), "drain.batch_records=%s",
			 recs[e2e_rand(&rng) % 4]);
		snprintf(s_ms, sizeof(s_ms), "drain.batch_ms=%s",
			 ms[e2e_rand(&rng) % 4]);
		ret = e2e_fault_round(&self->e, sets, &rng, kill_ms, &f);
		ASSERT_EQ(0, ret) TH_LOG("round %" PRIu64 ": evringd ended with %d by itself; log %s",
					 k, ret, self->e.log);
		for (unsigned int i = 0; i < nw; i++) {
			ASSERT_EQ(0, self->t->w[i].error) TH_LOG("writer %u", i);
		}
		if (e2e_rand(&rng) % 8 == 0)
			e2e_sleep_ms(e2e_rand_range(&rng, 50, 400));
	}
	e2e_print_faults("socket", &f, e2e_now_ms() - t0);
	EXPECT_LT(0u, f.at_commit) TH_LOG("no kill landed on a commit");

	self->t->stop = 1;
	ASSERT_EQ(0, e2e_daemon_up(&self->e, (const char *[]){
		"sources.device=", NULL }, 30000));
	for (unsigned int i = 0; i < nw; i++) {
		ASSERT_EQ(0, e2e_wait(self->t->w[i].pid, 60000));
		reconnects += self->t->w[i].reconnects;
	}
	ASSERT_EQ(0, e2e_wait_drained(&self->e, "socket", 60000));
	ASSERT_EQ(0, e2e_daemon_stop(&self->e));
	EXPECT_FALSE(e2e_log_has(&self->e, "<3>"));

	ASSERT_EQ(0, e2e_spool_read(&sp, self->e.spool)) TH_LOG("%s", sp.why);
	e2e_check_seqs(&sp, &sv);
	ASSERT_EQ(0, e2e_check_writers(&sp, self->t, true, &v));
	e2e_print_verdict("socket crash loop", &v, &sv);
	for (size_t i = 0; i < sp.nnotes; i++)
		created += !strcmp(sp.notes[i].text, "socket source created");
	e2e_msg("%" PRIu64 " batches, %zu events, %" PRIu64 " connections, %zu notes (%zu 'socket source created'), %" PRIu64 " ms",
	       sp.batches, sp.n, reconnects, sp.nnotes, created,
	       e2e_now_ms() - t0);
	EXPECT_EQ(0u, sp.bad_batches) TH_LOG("%s", sp.why);
	EXPECT_EQ(0u, sp.bad_events) TH_LOG("%s", sp.why);
	EXPECT_EQ(0u, v.lost);
	EXPECT_EQ(0u, v.doubled);
	EXPECT_EQ(0u, v.unexpected);
	EXPECT_EQ(0u, v.disordered);
	EXPECT_EQ(0u, v.wrong_pid);
	EXPECT_LT(1000u, v.acked);
	/* One epoch, seqs 1..N without a hole, nothing in the ledger. */
	EXPECT_EQ(1u, sv.runs);
	EXPECT_EQ(0u, sv.dups);
	EXPECT_EQ(0u, sv.gaps);
	EXPECT_EQ(0u, sv.covered);
	EXPECT_EQ(0u, sp.nloss);
	ASSERT_LT(0u, sp.n);
	epoch = sp.recs[0].epoch;
	ASSERT_LT(0u, sp.nnotes);
	/* The epoch the records carry is the one the last creation noted. */
	EXPECT_EQ(epoch, sp.notes[sp.nnotes - 1].n.new_epoch);
	EXPECT_EQ((unsigned int)BATCH_SRC_SOCKET, sp.notes[sp.nnotes - 1].n.source);
	e2e_spool_free(&sp);
}

TEST_HARNESS_MAIN
