// SPDX-License-Identifier: GPL-2.0-only
/*
 * backpressure_test: a spool that cannot take more stops draining, never
 * evicts, never drops, and every blocked state unblocks.
 *
 *  - spool.max_bytes reached: evringd says spool_full, the rings fill,
 *    writers block in the kernel; freeing room (a trim, as the shipper will
 *    do, or a fresh spool with a bigger bound) lets everything flow, and
 *    every event ends up in exactly one of the spools.
 *  - The file system full: the same, and draining resumes by itself once
 *    space is freed.
 *  - A backlog (the rings filled while evringd was down) is committed in
 *    batches within the drain.* bounds, and a backlog bigger than the
 *    spool's bound fills the spool and waits instead of failing.
 *  - While paused, a client hanging up does not make evringd spin, and a
 *    SIGHUP that raises spool.max_bytes (a live key) resumes draining.
 *
 * Tests that need the module SKIP outside the VM; the tmpfs ones need root.
 */
#include <sys/mount.h>
#include "e2e.h"
#include "kselftest_harness.h"

FIXTURE(bp) {
	struct e2e_env e;
	struct e2e_track *t;
	char small[160];	/* a tmpfs mounted here, or "" */
};

FIXTURE_SETUP(bp)
{
	ASSERT_EQ(0, e2e_env_init(&self->e, "bp"));
}

FIXTURE_TEARDOWN(bp)
{
	if (self->t)
		self->t->stop = 1;
	if (self->e.pid > 0)
		e2e_daemon_kill(&self->e, SIGKILL);
	e2e_reap_all();
	if (self->small[0])
		umount2(self->small, MNT_DETACH);
	e2e_env_fini(&self->e);
	evring_module_unload();
	e2e_track_free(self->t);
}

/* Wait until the kernel reports at least one writer asleep for space. */
static long wait_blocked(unsigned int ms)
{
	uint64_t end = e2e_now_ms() + ms;
	long n;

	do {
		n = e2e_writers_blocked();
		if (n != 0)
			return n;
		e2e_sleep_ms(20);
	} while (e2e_now_ms() < end);
	return 0;
}

/* Writers blocked according to evringd's own status, summed. */
static long status_blocked(struct e2e_env *e)
{
	json_t *st = NULL, *p;
	long n = 0;
	size_t i;

	if (e2e_status(e, &st))
		return -1;
	json_array_foreach(json_object_get(st, "partitions"), i, p)
		n += e2e_jint(p, "writers_blocked");
	json_decref(st);
	return n;
}

/* Is any writer still short of its count? */
static bool writers_unfinished(const struct e2e_track *t,
			       const struct e2e_dev_writer *wo, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		if (t->w[i].next < wo[i].count || t->w[i].in_call)
			return true;
	return false;
}

/* Delete every batch of the spool at @path, as a shipper would. */
static int trim_all(const char *path, uint64_t *upto)
{
	struct spool_opts o = { .path = path };
	struct spool_stats st;
	struct spool *s;
	char err[512];
	int ret = spool_open(&o, &s, err, sizeof(err));

	if (ret)
		return ret;
	ret = spool_stats(s, &st);
	if (!ret)
		ret = spool_trim(s, st.last_id);
	if (!ret)
		*upto = st.last_id;
	spool_close(s);
	return ret;
}

/* Start @n device writers of @count events each, partition i % @nparts. */
static int start_dev_writers(struct e2e_track *t, struct e2e_dev_writer *wo,
			     unsigned int n, unsigned int nparts,
			     uint64_t count, uint32_t lo, uint32_t hi,
			     uint64_t seed)
{
	for (unsigned int i = 0; i < n; i++) {
		wo[i] = (struct e2e_dev_writer){
			.t = t, .id = i, .partition = i % nparts,
			.count = count, .batch = i % 2, .len_lo = lo,
			.len_hi = hi, .seed = seed + i,
		};
		if (e2e_spawn(e2e_dev_writer_main, &wo[i]) < 0)
			return -errno;
	}
	return 0;
}

static int wait_writers(struct e2e_track *t, unsigned int n, int ms)
{
	for (unsigned int i = 0; i < n; i++) {
		int ret = e2e_wait(t->w[i].pid, ms);

		if (ret)
			return ret;
	}
	return 0;
}

/* Every event exactly once, every partition's seqs gap-free, nothing lost. */
#define EXPECT_EXACTLY_ONCE(what, sp, t, nparts) do {			\
	struct e2e_seq_verdict sv_;					\
	struct e2e_verdict v_;						\
	e2e_check_seqs((sp), &sv_);					\
	ASSERT_EQ(0, e2e_check_writers((sp), (t), true, &v_));		\
	e2e_print_verdict((what), &v_, &sv_);				\
	EXPECT_EQ(0u, (sp)->bad_batches + (sp)->bad_events);		\
	EXPECT_EQ(0u, v_.lost);						\
	EXPECT_EQ(0u, v_.doubled);					\
	EXPECT_EQ(0u, v_.unexpected);					\
	EXPECT_EQ(0u, v_.disordered);					\
	EXPECT_EQ(0u, v_.unknown_in + v_.unknown_out);			\
	EXPECT_EQ((unsigned int)(nparts), sv_.runs);			\
	EXPECT_EQ(0u, sv_.dups + sv_.gaps);				\
} while (0)

/*
 * Two writers overfill a 1M spool through two 16K rings; evringd must say
 * spool_full and the writers must end up asleep in the kernel.
 */
static const char *const full_sets[] = {
	"sources.socket=", "spool.max_bytes=1M", NULL,
};

#define FILL_UNTIL_BLOCKED(self, wo) do {				\
	json_t *st_ = NULL;						\
	E2E_LOAD_OR_SKIP("partitions=2 ring_size=16384 max_record=2048"); \
	(self)->t = e2e_track_new(2, 1u << 16);				\
	ASSERT_NE(NULL, (self)->t);					\
	ASSERT_EQ(0, e2e_daemon_up(&(self)->e, full_sets, 30000));	\
	ASSERT_EQ(0, start_dev_writers((self)->t, (wo), 2, 2, 1400,	\
				       400, 700, e2e_seed()));		\
	ASSERT_EQ(0, e2e_wait_state(&(self)->e, "spool_full", 120000));	\
	ASSERT_LT(0, wait_blocked(10000));				\
	ASSERT_LT(0, status_blocked(&(self)->e));			\
	e2e_sleep_ms(500);						\
	ASSERT_TRUE(writers_unfinished((self)->t, (wo), 2));		\
	ASSERT_EQ(0, e2e_status(&(self)->e, &st_));			\
	EXPECT_STREQ("spool_full", e2e_jstr(st_, "state"));		\
	json_decref(st_);						\
} while (0)

TEST_F_TIMEOUT(bp, spool_full_blocks_writers_then_trim_lets_everything_flow, 300)
{
	struct e2e_dev_writer wo[2];
	struct e2e_spool sp = { 0 };
	uint64_t upto, held;

	FILL_UNTIL_BLOCKED(self, wo);
	e2e_msg("spool_full with %ld writers blocked; writers at %" PRIu64 " and %" PRIu64,
		e2e_writers_blocked(), self->t->w[0].next, self->t->w[1].next);
	ASSERT_EQ(0, e2e_daemon_stop(&self->e));
	ASSERT_EQ(0, e2e_spool_read(&sp, self->e.spool)) TH_LOG("%s", sp.why);
	held = sp.n;
	ASSERT_EQ(0, trim_all(self->e.spool, &upto));
	e2e_msg("the full spool held %" PRIu64 " events in %" PRIu64 " batches; trimmed up to id %" PRIu64,
		held, sp.batches, upto);

	ASSERT_EQ(0, e2e_daemon_up(&self->e, full_sets, 30000));
	ASSERT_EQ(0, wait_writers(self->t, 2, 120000));
	ASSERT_EQ(0, e2e_wait_drained(&self->e, "device", 60000));
	ASSERT_EQ(0, e2e_daemon_stop(&self->e));
	ASSERT_EQ(0, e2e_spool_read(&sp, self->e.spool)) TH_LOG("%s", sp.why);
	e2e_msg("after the trim: %zu more events", sp.n - held);
	EXPECT_LT(held, sp.n);
	EXPECT_EXACTLY_ONCE("spool full, trim", &sp, self->t, 2);
	EXPECT_EQ(0u, sp.nloss);
	EXPECT_EQ(2800u, sp.n);
	e2e_spool_free(&sp);
}

TEST_F_TIMEOUT(bp, spool_full_then_fresh_spool_with_bigger_bound_lets_everything_flow, 300)
{
	const char *const big[] = { "sources.socket=", "spool.max_bytes=64M",
				    NULL };
	struct e2e_dev_writer wo[2];
	struct e2e_spool sp = { 0 };
	uint64_t last[2] = { 0, 0 };
	char aside[192];
	size_t held;

	FILL_UNTIL_BLOCKED(self, wo);
	ASSERT_EQ(0, e2e_daemon_stop(&self->e));
	snprintf(aside, sizeof(aside), "%s/full-spool.db", self->e.dir);
	ASSERT_EQ(0, rename(self->e.spool, aside));
	ASSERT_EQ(0, e2e_spool_read(&sp, aside)) TH_LOG("%s", sp.why);
	held = sp.n;
	for (size_t i = 0; i < sp.n; i++)
		if (sp.recs[i].seq > last[sp.recs[i].partition])
			last[sp.recs[i].partition] = sp.recs[i].seq;
	ASSERT_EQ(0u, sp.nloss);

	ASSERT_EQ(0, e2e_daemon_up(&self->e, big, 30000));
	ASSERT_EQ(0, wait_writers(self->t, 2, 120000));
	ASSERT_EQ(0, e2e_wait_drained(&self->e, "device", 60000));
	ASSERT_EQ(0, e2e_daemon_stop(&self->e));
	ASSERT_EQ(0, e2e_spool_read(&sp, self->e.spool)) TH_LOG("%s", sp.why);
	e2e_msg("moved aside %zu events (last seqs %" PRIu64 ", %" PRIu64 "), the new spool took %zu",
		held, last[0], last[1], sp.n - held);
	EXPECT_EXACTLY_ONCE("spool full, new spool", &sp, self->t, 2);
	EXPECT_EQ(2800u, sp.n);
	/*
	 * The new spool never saw what the old one holds: it reports exactly
	 * those seqs as released unspooled, one range per partition.
	 */
	EXPECT_EQ(2u, sp.nloss);
	for (uint32_t p = 0; p < 2; p++) {
		bool found = false;

		for (size_t i = 0; i < sp.nloss; i++) {
			const struct spool_loss *l = &sp.loss[i].l;

			if (l->partition != p)
				continue;
			found = true;
			EXPECT_EQ((unsigned int)BATCH_SRC_KMOD, l->source);
			EXPECT_EQ(1u, l->first_seq);
			EXPECT_EQ(last[p], l->last_seq);
			EXPECT_STREQ("released unspooled", sp.loss[i].reason);
		}
		EXPECT_TRUE(found) TH_LOG("no ledger row for partition %u", p);
	}
	e2e_spool_free(&sp);
}

/* Fill the file system at @dir with ballast; returns the bytes written. */
static long fill_fs(const char *path)
{
	static char buf[65536];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	long total = 0;
	ssize_t n;

	if (fd < 0)
		return -errno;
	memset(buf, 0xba, sizeof(buf));
	for (size_t chunk = sizeof(buf); chunk; chunk /= 2)
		while ((n = write(fd, buf, chunk)) > 0)
			total += n;
	close(fd);
	return total;
}

TEST_F_TIMEOUT(bp, full_disk_stops_draining_then_resumes_by_itself_when_space_is_freed, 300)
{
	char spool[192], ballast[192], s_path[224];
	const char *sets[] = { "sources.socket=", s_path, NULL };
	struct e2e_dev_writer wo[2];
	struct e2e_spool sp = { 0 };
	long filled;

	if (geteuid())
		SKIP(return, "needs root to mount a tmpfs");
	E2E_LOAD_OR_SKIP("partitions=2 ring_size=16384 max_record=2048");
	snprintf(self->small, sizeof(self->small), "%s/small", self->e.dir);
	ASSERT_EQ(0, mkdir(self->small, 0700));
	ASSERT_EQ(0, mount("tmpfs", self->small, "tmpfs", 0, "size=2m,mode=0700"))
		TH_LOG("mount: %s", strerror(errno));
	snprintf(spool, sizeof(spool), "%s/spool.db", self->small);
	snprintf(ballast, sizeof(ballast), "%s/ballast", self->small);
	snprintf(s_path, sizeof(s_path), "spool.path=%s", spool);
	self->t = e2e_track_new(2, 1u << 16);
	ASSERT_NE(NULL, self->t);

	ASSERT_EQ(0, e2e_daemon_up(&self->e, sets, 30000));
	filled = fill_fs(ballast);
	ASSERT_LT(0, filled);
	e2e_msg("ballast: %ld bytes", filled);
	ASSERT_EQ(0, start_dev_writers(self->t, wo, 2, 2, 1000, 300, 600,
				       e2e_seed()));
	ASSERT_EQ(0, e2e_wait_state(&self->e, "spool_full", 120000))
		TH_LOG("evringd status %d", self->e.last_status);
	ASSERT_LT(0, wait_blocked(10000));
	e2e_sleep_ms(500);
	ASSERT_TRUE(writers_unfinished(self->t, wo, 2));
	ASSERT_TRUE(e2e_log_has(&self->e, "file system full"));
	e2e_msg("spool_full on a full disk, writers at %" PRIu64 " and %" PRIu64,
		self->t->w[0].next, self->t->w[1].next);

	/* Free the space: nothing else is done, draining must resume. */
	ASSERT_EQ(0, unlink(ballast));
	ASSERT_EQ(0, wait_writers(self->t, 2, 120000));
	ASSERT_EQ(0, e2e_wait_drained(&self->e, "device", 60000));
	ASSERT_TRUE(e2e_log_has(&self->e, "draining resumes"));
	ASSERT_EQ(0, e2e_daemon_stop(&self->e));
	ASSERT_EQ(0, e2e_spool_read(&sp, spool)) TH_LOG("%s", sp.why);
	EXPECT_EXACTLY_ONCE("full disk", &sp, self->t, 2);
	EXPECT_EQ(2000u, sp.n);
	EXPECT_EQ(0u, sp.nloss);
	e2e_spool_free(&sp);
}

TEST_F_TIMEOUT(bp, backlog_is_committed_in_batches_within_the_drain_bounds, 300)
{
	const char *const sets[] = { "sources.socket=",
				     "drain.batch_records=50",
				     "drain.batch_bytes=16K", NULL };
	struct e2e_dev_writer wo[2];
	struct e2e_spool sp = { 0 };

	E2E_LOAD_OR_SKIP("partitions=2 ring_size=262144 max_record=4096");
	self->t = e2e_track_new(2, 1u << 16);
	ASSERT_NE(NULL, self->t);
	/* evringd is down: the backlog waits in the rings. */
	ASSERT_EQ(0, start_dev_writers(self->t, wo, 2, 2, 600, 200, 400,
				       e2e_seed()));
	ASSERT_EQ(0, wait_writers(self->t, 2, 60000));

	ASSERT_EQ(0, e2e_daemon_up(&self->e, sets, 30000));
	ASSERT_EQ(0, e2e_wait_drained(&self->e, "device", 60000));
	ASSERT_EQ(0, e2e_daemon_stop(&self->e));
	ASSERT_EQ(0, e2e_spool_read(&sp, self->e.spool)) TH_LOG("%s", sp.why);
	e2e_msg("%" PRIu64 " batches, the largest of %u records (bound 50)",
		sp.batches, sp.max_count);
	EXPECT_EXACTLY_ONCE("backlog", &sp, self->t, 2);
	EXPECT_LE(sp.max_count, 50u);
	e2e_spool_free(&sp);
}

TEST_F_TIMEOUT(bp, backlog_bigger_than_the_spool_bound_fills_it_and_waits, 300)
{
	struct e2e_dev_writer wo[2];
	struct e2e_spool sp = { 0 };
	struct e2e_seq_verdict sv;
	json_t *st = NULL;

	E2E_LOAD_OR_SKIP("partitions=2 ring_size=1048576 max_record=65536");
	self->t = e2e_track_new(2, 1u << 16);
	ASSERT_NE(NULL, self->t);
	/* 2 x ~880K waiting in the rings, for a spool of 1M. */
	ASSERT_EQ(0, start_dev_writers(self->t, wo, 2, 2, 900, 900, 1000,
				       e2e_seed()));
	ASSERT_EQ(0, wait_writers(self->t, 2, 60000));

	ASSERT_EQ(0, e2e_daemon_up(&self->e, full_sets, 30000));
	EXPECT_EQ(0, e2e_wait_state(&self->e, "spool_full", 60000))
		TH_LOG("evringd ended with %d", self->e.last_status);
	if (self->e.pid <= 0) {
		char *log = e2e_slurp(self->e.log, NULL);

		TH_LOG("evringd exited with %d:\n%s", self->e.last_status,
		       log ? log : "");
		free(log);
	}
	ASSERT_LT(0, self->e.pid) TH_LOG("evringd must wait, not exit");
	ASSERT_EQ(0, e2e_status(&self->e, &st));
	EXPECT_STREQ("spool_full", e2e_jstr(st, "state"));
	json_decref(st);
	ASSERT_EQ(0, e2e_daemon_stop(&self->e));
	ASSERT_EQ(0, e2e_spool_read(&sp, self->e.spool)) TH_LOG("%s", sp.why);
	e2e_check_seqs(&sp, &sv);
	e2e_msg("the 1M spool took %zu of 1800 events in %" PRIu64 " batches",
		sp.n, sp.batches);
	EXPECT_LT(0u, sp.n);
	EXPECT_EQ(0u, sv.dups + sv.gaps);
	e2e_spool_free(&sp);
}

TEST_F_TIMEOUT(bp, paused_drain_does_not_spin_when_a_client_hangs_up, 120)
{
	const char *const sets[] = { "sources.device=", "spool.max_bytes=1M",
				     NULL };
	struct e2e_sock_writer wo = {
		.burst = 64, .len_lo = 900, .len_hi = 1000,
	};
	long t0, t1;

	self->t = e2e_track_new(1, 1u << 16);
	ASSERT_NE(NULL, self->t);
	ASSERT_EQ(0, e2e_daemon_up(&self->e, sets, 30000));
	wo.t = self->t;
	wo.path = self->e.ingest;
	wo.seed = e2e_seed();
	ASSERT_LT(0, e2e_spawn(e2e_sock_writer_main, &wo));
	ASSERT_EQ(0, e2e_wait_state(&self->e, "spool_full", 60000));

	/* The client goes away while its connection is not being read. */
	kill(self->t->w[0].pid, SIGKILL);
	ASSERT_EQ(256 + SIGKILL, e2e_wait(self->t->w[0].pid, 10000));
	e2e_sleep_ms(200);
	t0 = e2e_cpu_ticks(self->e.pid);
	e2e_sleep_ms(2000);
	t1 = e2e_cpu_ticks(self->e.pid);
	ASSERT_LE(0, t0);
	e2e_msg("evringd used %ld ticks of %ld in 2 s while paused",
		t1 - t0, 2 * sysconf(_SC_CLK_TCK));
	/* Idle it retries every 200 ms; spinning burns the whole 2 s. */
	EXPECT_LT(t1 - t0, sysconf(_SC_CLK_TCK) / 2);
	ASSERT_EQ(0, e2e_daemon_stop(&self->e));
}

TEST_F_TIMEOUT(bp, sighup_raising_spool_max_bytes_resumes_draining, 120)
{
	const char *const sets[] = { "sources.device=", NULL };
	const char *small = "[spool]\nmax_bytes = 1M\n";
	const char *bigger = "[spool]\nmax_bytes = 64M\n";
	struct e2e_sock_writer wo = {
		.burst = 64, .len_lo = 900, .len_hi = 1000, .count = 1500,
	};
	struct e2e_spool sp = { 0 };

	self->t = e2e_track_new(1, 1u << 16);
	ASSERT_NE(NULL, self->t);
	ASSERT_EQ(0, e2e_write_file(self->e.conf, small, strlen(small), 0600));
	ASSERT_EQ(0, e2e_daemon_up(&self->e, sets, 30000));
	wo.t = self->t;
	wo.path = self->e.ingest;
	wo.seed = e2e_seed();
	ASSERT_LT(0, e2e_spawn(e2e_sock_writer_main, &wo));
	ASSERT_EQ(0, e2e_wait_state(&self->e, "spool_full", 60000));

	ASSERT_EQ(0, e2e_write_file(self->e.conf, bigger, strlen(bigger), 0600));
	ASSERT_EQ(0, kill(self->e.pid, SIGHUP));
	e2e_sleep_ms(500);
	EXPECT_TRUE(e2e_log_has(&self->e, "reload: applied spool.max_bytes"));
	EXPECT_EQ(0, e2e_wait_state(&self->e, "draining", 10000))
		TH_LOG("still spool_full after a reload to 64M");
	EXPECT_EQ(0, e2e_wait(self->t->w[0].pid, 30000));
	ASSERT_EQ(0, e2e_daemon_stop(&self->e));
	ASSERT_EQ(0, e2e_spool_read(&sp, self->e.spool));
	EXPECT_EQ(1500u, sp.n);
	e2e_spool_free(&sp);
}

TEST_HARNESS_MAIN
