// SPDX-License-Identifier: GPL-2.0-only
/*
 * device_crash_test: evringd draining /dev/evring is killed with SIGKILL
 * at random instants, over and over, while writers keep writing; the
 * spool must end up holding every event a write(2) acknowledged exactly
 * once, with gap-free sequences and no ledger entry (nothing was lost, so
 * nothing may be reported lost either).  And fsync(2) on a writer fd means
 * durable: events it confirmed are in the spool even when the daemon dies
 * the instant it returns.
 *
 * Needs root and a loadable evring.ko ($EVRING_KO): run inside the VM
 * (selftests/e2e/run).  Knobs, all optional:
 *	EVRING_E2E_SEED		the PRNG seed (printed by every test)
 *	EVRING_E2E_KILLS	kill -9 rounds of the crash loop (default 200)
 *	EVRING_E2E_KILL_MS	longest a daemon lives in a round (default 300)
 *	EVRING_E2E_RATE		events/s per writer (default 400)
 *	EVRING_E2E_WRITERS	writer processes (default 4)
 *	EVRING_E2E_FSYNC_ROUNDS	rounds of the fsync test (default 8)
 */
#include "e2e.h"
#include "kselftest_harness.h"

FIXTURE(dev) {
	struct e2e_env e;
	struct e2e_track *t;
};

FIXTURE_SETUP(dev)
{
	if (geteuid())
		SKIP(return, "needs root (run inside the VM: selftests/e2e/run)");
	ASSERT_EQ(0, e2e_env_init(&self->e, "dev"));
}

FIXTURE_TEARDOWN(dev)
{
	if (self->t)
		self->t->stop = 1;
	if (self->e.pid > 0)
		e2e_daemon_kill(&self->e, SIGKILL);
	e2e_reap_all();
	e2e_env_fini(&self->e);
	evring_module_unload();
	e2e_track_free(self->t);
}

/*
 * Per partition: the kernel's produced count and epoch; *@blocks: times a
 * writer slept for ring space, over all.  -EBUSY while anything is
 * unreleased.
 */
static int kernel_stats(uint64_t *produced, uint64_t *epoch, uint64_t *blocks,
			unsigned int nparts)
{
	struct evring_part_stats st[EVRING_PARTITIONS_MAX];
	unsigned int n;
	int ret = e2e_kstats(st, EVRING_PARTITIONS_MAX, &n);

	if (ret)
		return ret;
	if (n != nparts)
		return -EPROTO;
	*blocks = 0;
	for (unsigned int i = 0; i < n; i++) {
		produced[st[i].partition] = st[i].produced;
		epoch[st[i].partition] = st[i].epoch;
		*blocks += st[i].blocks;
		if (st[i].released != st[i].produced)
			return -EBUSY;
	}
	return 0;
}

TEST_F_TIMEOUT(dev, kill9_loop_device_loses_nothing_and_doubles_nothing, 900)
{
	static const char *const recs[] = { "1", "2", "7", "64", "4096" };
	static const char *const ms[] = { "0", "0", "1", "5" };
	uint64_t kills = e2e_env_u64("EVRING_E2E_KILLS", 200);
	uint64_t kill_ms = e2e_env_u64("EVRING_E2E_KILL_MS", 300);
	unsigned int rate = e2e_env_u64("EVRING_E2E_RATE", 400);
	unsigned int nw = e2e_env_u64("EVRING_E2E_WRITERS", 4);
	uint64_t seed = e2e_seed(), rng = seed, t0 = e2e_now_ms();
	uint64_t produced[4], epoch[4], blocks;
	struct e2e_dev_writer wo[E2E_WRITERS_MAX];
	struct e2e_faults f = { 0 };
	struct e2e_seq_verdict sv;
	struct e2e_verdict v;
	struct e2e_spool sp = { 0 };
	const unsigned int nparts = 4;

	e2e_msg("seed %" PRIu64 " (EVRING_E2E_SEED to replay), %" PRIu64
		" kills, %u writers at %u events/s", seed, kills, nw, rate);
	ASSERT_LE(nw, (unsigned int)E2E_WRITERS_MAX);
	/* Small rings: bursts and restarts fill them, writers block. */
	E2E_LOAD_OR_SKIP("partitions=4 ring_size=16384 max_record=1024");
	self->t = e2e_track_new(nw, 1u << 20);
	ASSERT_NE(NULL, self->t);
	for (unsigned int i = 0; i < nw; i++) {
		wo[i] = (struct e2e_dev_writer){
			.t = self->t, .id = i, .partition = i % nparts,
			.rate = rate, .batch = i % 2, .len_lo = 24,
			.len_hi = 200, .seed = seed + i,
		};
		ASSERT_LT(0, e2e_spawn(e2e_dev_writer_main, &wo[i]));
	}

	for (uint64_t k = 0; k < kills; k++) {
		char s_recs[40], s_ms[40];
		const char *sets[] = {
			"sources.socket=", s_recs, s_ms,
			e2e_rand(&rng) % 4 ? "spool.synchronous=full" :
					     "spool.synchronous=normal",
			NULL,
		};
		int ret;

		snprintf(s_recs, sizeof(s_recs), "drain.batch_records=%s",
			 recs[e2e_rand(&rng) % 5]);
		snprintf(s_ms, sizeof(s_ms), "drain.batch_ms=%s",
			 ms[e2e_rand(&rng) % 4]);
		ret = e2e_fault_round(&self->e, sets, &rng, kill_ms, &f);
		ASSERT_EQ(0, ret) TH_LOG("round %" PRIu64 ": evringd ended with %d by itself; log %s",
					 k, ret, self->e.log);
		for (unsigned int i = 0; i < nw; i++) {
			ASSERT_EQ(0, self->t->w[i].error) TH_LOG("writer %u", i);
		}
		/* Sometimes stay down a while: rings fill, writers block. */
		if (e2e_rand(&rng) % 8 == 0)
			e2e_sleep_ms(e2e_rand_range(&rng, 50, 400));
	}
	e2e_print_faults("device", &f, e2e_now_ms() - t0);
	EXPECT_LT(0u, f.at_commit) TH_LOG("no kill landed on a commit");

	/* Heal: stop the writers, let one daemon drain everything. */
	self->t->stop = 1;
	ASSERT_EQ(0, e2e_daemon_up(&self->e, (const char *[]){
		"sources.socket=", NULL }, 30000));
	for (unsigned int i = 0; i < nw; i++) {
		ASSERT_EQ(0, e2e_wait(self->t->w[i].pid, 60000));
	}
	ASSERT_EQ(0, e2e_wait_drained(&self->e, "device", 60000));
	ASSERT_EQ(0, kernel_stats(produced, epoch, &blocks, nparts));
	ASSERT_EQ(0, e2e_daemon_stop(&self->e));
	EXPECT_FALSE(e2e_log_has(&self->e, "<3>"));

	ASSERT_EQ(0, e2e_spool_read(&sp, self->e.spool)) TH_LOG("%s", sp.why);
	e2e_check_seqs(&sp, &sv);
	ASSERT_EQ(0, e2e_check_writers(&sp, self->t, true, &v));
	e2e_print_verdict("device crash loop", &v, &sv);
	e2e_msg("%" PRIu64 " batches, largest %u records, %zu events, writers slept for space %" PRIu64 " times, %" PRIu64 " ms",
		sp.batches, sp.max_count, sp.n, blocks, e2e_now_ms() - t0);
	EXPECT_LT(0u, blocks) TH_LOG("no writer ever blocked: the rings never filled");
	EXPECT_EQ(0u, sp.bad_batches) TH_LOG("%s", sp.why);
	EXPECT_EQ(0u, sp.bad_events) TH_LOG("%s", sp.why);
	EXPECT_EQ(0u, v.lost);
	EXPECT_EQ(0u, v.doubled);
	EXPECT_EQ(0u, v.unexpected);
	EXPECT_EQ(0u, v.disordered);
	EXPECT_EQ(0u, v.wrong_pid);
	/* Writers were never killed: every attempt has an outcome. */
	EXPECT_EQ(0u, v.unknown_in + v.unknown_out);
	EXPECT_EQ(nparts, sv.runs);
	EXPECT_EQ(0u, sv.dups);
	EXPECT_EQ(0u, sv.gaps);
	EXPECT_EQ(0u, sv.covered);
	EXPECT_EQ(0u, sp.nloss);
	EXPECT_EQ(0u, sp.batch_loss);
	EXPECT_EQ(0u, sp.nnotes);
	for (unsigned int p = 0; p < nparts; p++) {
		EXPECT_EQ(produced[p], e2e_count(&sp, BATCH_SRC_KMOD, p))
			TH_LOG("partition %u", p);
	}
	for (size_t i = 0; i < sp.n; i++)
		if (sp.recs[i].epoch != epoch[sp.recs[i].partition]) {
			EXPECT_EQ(epoch[sp.recs[i].partition], sp.recs[i].epoch);
			break;
		}
	EXPECT_LT(1000u, v.acked);
	e2e_spool_free(&sp);
}

TEST_F_TIMEOUT(dev, fsync_confirmed_events_survive_immediate_kill9, 300)
{
	static const char *const ms[] = { "0", "20", "200" };
	uint64_t rounds = e2e_env_u64("EVRING_E2E_FSYNC_ROUNDS", 8);
	uint64_t seed = e2e_seed(), rng = seed;
	uint8_t buf[512];
	struct e2e_seq_verdict sv;
	struct e2e_verdict v;
	uint64_t c = 0;
	int fd;

	e2e_msg("seed %" PRIu64 ", %" PRIu64 " rounds", seed, rounds);
	E2E_LOAD_OR_SKIP("partitions=2 ring_size=65536 max_record=4096");
	self->t = e2e_track_new(1, 1u << 20);
	ASSERT_NE(NULL, self->t);
	self->t->w[0].pid = getpid();
	fd = open(EVRING_DEV_PATH, O_WRONLY | O_CLOEXEC);
	ASSERT_LE(0, fd);

	for (uint64_t r = 0; r < rounds; r++) {
		char s_ms[40];
		const char *sets[] = { "sources.socket=", s_ms,
				       "drain.batch_records=100000", NULL };
		uint64_t n = e2e_rand_range(&rng, 1, 400), t_fsync;
		struct e2e_spool sp = { 0 };

		snprintf(s_ms, sizeof(s_ms), "drain.batch_ms=%s",
			 ms[r % 3]);
		ASSERT_EQ(0, e2e_daemon_up(&self->e, sets, 30000));
		for (uint64_t i = 0; i < n; i++, c++) {
			uint32_t len = e2e_ev_len(0, c, 24, sizeof(buf));

			e2e_ev_make(buf, 0, c, len);
			e2e_mark(self->t, 0, c, E2E_SENT);
			ASSERT_EQ((ssize_t)len, write(fd, buf, len));
			e2e_mark(self->t, 0, c, E2E_ACKED);
		}
		self->t->w[0].next = c;
		t_fsync = e2e_now_ms();
		ASSERT_EQ(0, fsync(fd));
		/* The instant fsync returns. */
		kill(self->e.pid, SIGKILL);
		t_fsync = e2e_now_ms() - t_fsync;
		ASSERT_EQ(256 + SIGKILL, e2e_daemon_kill(&self->e, SIGKILL));

		/* Without restarting: everything fsync confirmed is there. */
		ASSERT_EQ(0, e2e_spool_read(&sp, self->e.spool)) TH_LOG("%s", sp.why);
		ASSERT_EQ(0, e2e_check_writers(&sp, self->t, true, &v));
		e2e_msg("round %" PRIu64 ": batch_ms %s, %" PRIu64 " events, fsync took %" PRIu64
		       " ms; spool holds %" PRIu64 " of %" PRIu64 " acked",
		       r, ms[r % 3], n, t_fsync, v.acked, c);
		EXPECT_EQ(0u, v.lost) TH_LOG("%s", v.why);
		EXPECT_EQ(0u, v.doubled) TH_LOG("%s", v.why);
		EXPECT_EQ(0u, v.unexpected) TH_LOG("%s", v.why);
		EXPECT_EQ(c, v.acked);
		e2e_spool_free(&sp);
		ASSERT_EQ(0u, v.lost);
	}

	/* Finally a clean drain: sequences gap-free, nothing lost. */
	{
		struct e2e_spool sp = { 0 };

		ASSERT_EQ(0, e2e_daemon_up(&self->e, (const char *[]){
			"sources.socket=", NULL }, 30000));
		ASSERT_EQ(0, e2e_wait_drained(&self->e, "device", 30000));
		ASSERT_EQ(0, e2e_daemon_stop(&self->e));
		ASSERT_EQ(0, e2e_spool_read(&sp, self->e.spool));
		e2e_check_seqs(&sp, &sv);
		ASSERT_EQ(0, e2e_check_writers(&sp, self->t, true, &v));
		e2e_print_verdict("fsync kill9", &v, &sv);
		EXPECT_EQ(c, v.acked);
		EXPECT_EQ(0u, v.lost + v.doubled + v.unexpected + v.disordered);
		EXPECT_EQ(0u, sv.dups + sv.gaps + sv.covered);
		EXPECT_EQ(0u, sp.nloss);
		e2e_spool_free(&sp);
	}
	close(fd);
}

struct fsync_child {
	struct e2e_track *t;
	uint64_t n;
	volatile int64_t result;	/* fsync's -errno, or 1 while inside */
	volatile uint64_t returned_ms;
};

static int fsync_child_main(void *arg)
{
	struct fsync_child *fc = arg;
	uint8_t buf[256];
	int fd = open(EVRING_DEV_PATH, O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		return 1;
	fc->t->w[0].pid = getpid();
	for (uint64_t c = 0; c < fc->n; c++) {
		uint32_t len = e2e_ev_len(0, c, 24, sizeof(buf));

		e2e_ev_make(buf, 0, c, len);
		e2e_mark(fc->t, 0, c, E2E_SENT);
		fc->t->w[0].next = c + 1;
		if (write(fd, buf, len) != (ssize_t)len)
			return 2;
		e2e_mark(fc->t, 0, c, E2E_ACKED);
	}
	fc->result = 1;
	fc->result = fsync(fd) ? -errno : 0;
	fc->returned_ms = e2e_now_ms();
	close(fd);
	return 0;
}

TEST_F_TIMEOUT(dev, fsync_waiting_through_a_daemon_crash_returns_only_once_the_next_one_spooled, 120)
{
	const char *const slow[] = { "sources.socket=", "drain.batch_ms=60000",
				     "drain.batch_records=1000000", NULL };
	struct fsync_child *fc;
	struct e2e_spool sp = { 0 };
	struct e2e_seq_verdict sv;
	struct e2e_verdict v;
	uint64_t t_up;
	pid_t pid;

	E2E_LOAD_OR_SKIP("partitions=2 ring_size=65536 max_record=4096");
	self->t = e2e_track_new(1, 1u << 16);
	ASSERT_NE(NULL, self->t);
	fc = mmap(NULL, sizeof(*fc), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, fc);
	fc->t = self->t;
	fc->n = 300;

	/* A daemon that takes the records but would commit only in 60 s. */
	ASSERT_EQ(0, e2e_daemon_up(&self->e, slow, 30000));
	pid = e2e_spawn(fsync_child_main, fc);
	ASSERT_LT(0, pid);
	for (int i = 0; i < 1000 && fc->result != 1; i++)
		e2e_sleep_ms(10);
	ASSERT_EQ(1, fc->result);
	e2e_sleep_ms(300);
	ASSERT_EQ(256 + SIGKILL, e2e_daemon_kill(&self->e, SIGKILL));
	/* The consumer is gone, nothing was spooled: fsync must keep waiting. */
	e2e_sleep_ms(1000);
	EXPECT_EQ(1, fc->result) TH_LOG("fsync returned %" PRId64 " with nothing spooled",
					 (int64_t)fc->result);

	t_up = e2e_now_ms();
	ASSERT_EQ(0, e2e_daemon_up(&self->e, (const char *[]){
		"sources.socket=", NULL }, 30000));
	ASSERT_EQ(0, e2e_wait(pid, 30000));
	EXPECT_EQ(0, fc->result);
	EXPECT_LE(t_up, fc->returned_ms);
	ASSERT_EQ(0, e2e_daemon_stop(&self->e));
	ASSERT_EQ(0, e2e_spool_read(&sp, self->e.spool)) TH_LOG("%s", sp.why);
	e2e_check_seqs(&sp, &sv);
	ASSERT_EQ(0, e2e_check_writers(&sp, self->t, true, &v));
	e2e_print_verdict("fsync through a crash", &v, &sv);
	EXPECT_EQ(300u, v.acked);
	EXPECT_EQ(0u, v.lost + v.doubled + v.unexpected + v.disordered);
	EXPECT_EQ(0u, sv.dups + sv.gaps + sv.covered);
	e2e_spool_free(&sp);
	munmap(fc, sizeof(*fc));
}

/* Writers @first, @first + 1 write @count events each to partitions 0, 1. */
static int write_phase(struct e2e_track *t, uint32_t first, uint64_t count)
{
	struct e2e_dev_writer o[2];
	pid_t pid[2];

	for (uint32_t i = 0; i < 2; i++) {
		o[i] = (struct e2e_dev_writer){
			.t = t, .id = first + i, .partition = i, .count = count,
			.batch = i, .len_lo = 24, .len_hi = 100,
			.seed = first + i,
		};
		pid[i] = e2e_spawn(e2e_dev_writer_main, &o[i]);
		if (pid[i] < 0)
			return pid[i];
	}
	for (uint32_t i = 0; i < 2; i++) {
		int ret = e2e_wait(pid[i], 60000);

		if (ret)
			return ret;
	}
	return 0;
}

TEST_F_TIMEOUT(dev, lost_wal_commits_become_exact_loss_ranges_and_nothing_doubles, 180)
{
	const char *const sets[] = { "sources.socket=", NULL };
	struct e2e_spool sp = { 0 };
	struct e2e_seq_verdict sv;
	struct e2e_verdict v;
	char path[160];

	E2E_LOAD_OR_SKIP("partitions=2 ring_size=65536 max_record=4096");
	self->t = e2e_track_new(6, 1u << 16);
	ASSERT_NE(NULL, self->t);

	/* Phase 1, stopped cleanly: in the database file itself. */
	ASSERT_EQ(0, e2e_daemon_up(&self->e, sets, 30000));
	ASSERT_EQ(0, write_phase(self->t, 0, 400));
	ASSERT_EQ(0, e2e_wait_drained(&self->e, "device", 30000));
	ASSERT_EQ(0, e2e_daemon_stop(&self->e));

	/* Phase 2: committed, released, then its WAL is lost. */
	ASSERT_EQ(0, e2e_daemon_up(&self->e, sets, 30000));
	ASSERT_EQ(0, write_phase(self->t, 2, 300));
	ASSERT_EQ(0, e2e_wait_drained(&self->e, "device", 30000));
	ASSERT_EQ(256 + SIGKILL, e2e_daemon_kill(&self->e, SIGKILL));
	snprintf(path, sizeof(path), "%s-wal", self->e.spool);
	ASSERT_EQ(0, unlink(path));
	snprintf(path, sizeof(path), "%s-shm", self->e.spool);
	unlink(path);

	/* Phase 3 waits in the rings; the daemon must notice the hole. */
	ASSERT_EQ(0, write_phase(self->t, 4, 200));
	ASSERT_EQ(0, e2e_daemon_up(&self->e, sets, 30000));
	ASSERT_EQ(0, e2e_wait_drained(&self->e, "device", 30000));
	ASSERT_EQ(0, e2e_daemon_stop(&self->e));

	ASSERT_EQ(0, e2e_spool_read(&sp, self->e.spool)) TH_LOG("%s", sp.why);
	e2e_check_seqs(&sp, &sv);
	ASSERT_EQ(0, e2e_check_writers(&sp, self->t, true, &v));
	e2e_print_verdict("lost WAL", &v, &sv);
	e2e_msg("%zu ledger rows", sp.nloss);
	for (size_t i = 0; i < sp.nloss; i++)
		e2e_msg("ledger: partition %u seqs %" PRIu64 "..%" PRIu64 " '%s'",
			sp.loss[i].l.partition, sp.loss[i].l.first_seq,
			sp.loss[i].l.last_seq, sp.loss[i].reason);
	/* What the lost WAL held is missing, and exactly that is reported. */
	EXPECT_LT(0u, v.lost);
	EXPECT_EQ(v.lost, sv.covered);
	EXPECT_EQ(0u, sv.gaps + sv.dups);
	EXPECT_EQ(0u, v.doubled + v.unexpected + v.disordered);
	EXPECT_EQ(1800u, v.acked + v.lost);
	EXPECT_LE(v.lost, 600u) TH_LOG("only phase 2 was in the lost WAL");
	EXPECT_EQ(2u, sp.nloss);
	e2e_spool_free(&sp);
}

TEST_HARNESS_MAIN
