// SPDX-License-Identifier: GPL-2.0-only
/*
 * epoch_test: evringd across a module reload and across another consumer.
 *
 *  - The module is reloaded while evringd is down (a new ring epoch): the
 *    spool then holds both epochs, each partition's seqs run from 1 again
 *    in the new one, the change is a note, and nothing is reported lost.
 *  - Records released by another consumer while evringd was down (the
 *    operator ran evring-cat) are never hidden: they are exactly one loss
 *    range in the ledger, as `evringctl --json ledger` shows.
 *
 * Needs root and a loadable evring.ko: run inside the VM.
 */
#include "e2e.h"
#include "kselftest_harness.h"

#define PARAMS "partitions=2 ring_size=65536 max_record=4096"

FIXTURE(epoch) {
	struct e2e_env e;
	struct e2e_track *t;
};

FIXTURE_SETUP(epoch)
{
	if (geteuid())
		SKIP(return, "needs root (run inside the VM: selftests/e2e/run)");
	ASSERT_EQ(0, e2e_env_init(&self->e, "epoch"));
}

FIXTURE_TEARDOWN(epoch)
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

static const char *const no_socket[] = { "sources.socket=", NULL };

/* Writer @id writes @count events into @partition and exits; wait for it. */
static int write_events(struct e2e_track *t, uint32_t id, int partition,
			uint64_t count)
{
	struct e2e_dev_writer o = {
		.t = t, .id = id, .partition = partition, .count = count,
		.batch = id % 2, .len_lo = 24, .len_hi = 100, .seed = id,
	};
	pid_t pid = e2e_spawn(e2e_dev_writer_main, &o);

	if (pid < 0)
		return pid;
	return e2e_wait(pid, 60000);
}

static uint64_t module_epoch(void)
{
	struct evring_part_stats st[EVRING_PARTITIONS_MAX];
	unsigned int n;

	if (e2e_kstats(st, EVRING_PARTITIONS_MAX, &n) || !n)
		return 0;
	return st[0].epoch;
}

TEST_F_TIMEOUT(epoch, module_reload_starts_a_new_epoch_noted_with_seqs_from_1_and_no_loss, 180)
{
	struct e2e_spool sp = { 0 };
	struct e2e_seq_verdict sv;
	struct e2e_verdict v;
	uint64_t e1, e2;
	json_t *st = NULL, *p;
	size_t i;

	E2E_LOAD_OR_SKIP(PARAMS);
	self->t = e2e_track_new(4, 1u << 16);
	ASSERT_NE(NULL, self->t);
	e1 = module_epoch();
	ASSERT_NE(0u, e1);

	ASSERT_EQ(0, e2e_daemon_up(&self->e, no_socket, 30000));
	ASSERT_EQ(0, write_events(self->t, 0, 0, 500));
	ASSERT_EQ(0, write_events(self->t, 1, 1, 300));
	ASSERT_EQ(0, e2e_wait_drained(&self->e, "device", 30000));
	ASSERT_EQ(0, e2e_daemon_stop(&self->e));

	/* Reload while evringd is down, then write into the new rings. */
	ASSERT_EQ(0, evring_module_load(PARAMS));
	e2 = module_epoch();
	ASSERT_NE(0u, e2);
	ASSERT_NE(e1, e2);
	ASSERT_EQ(0, write_events(self->t, 2, 0, 200));
	ASSERT_EQ(0, write_events(self->t, 3, 1, 400));

	ASSERT_EQ(0, e2e_daemon_up(&self->e, no_socket, 30000));
	ASSERT_EQ(0, e2e_wait_drained(&self->e, "device", 30000));
	ASSERT_EQ(0, e2e_status(&self->e, &st));
	json_array_foreach(json_object_get(st, "partitions"), i, p) {
		char hex[17];

		snprintf(hex, sizeof(hex), "%016" PRIx64, e2);
		EXPECT_STREQ(hex, e2e_jstr(p, "epoch"));
	}
	json_decref(st);
	ASSERT_EQ(0, e2e_daemon_stop(&self->e));

	ASSERT_EQ(0, e2e_spool_read(&sp, self->e.spool)) TH_LOG("%s", sp.why);
	e2e_check_seqs(&sp, &sv);
	ASSERT_EQ(0, e2e_check_writers(&sp, self->t, false, &v));
	e2e_print_verdict("module reload", &v, &sv);
	EXPECT_EQ(1400u, v.acked);
	EXPECT_EQ(0u, v.lost + v.doubled + v.unexpected + v.disordered);
	/* Two partitions x two epochs, each from seq 1 without a hole. */
	EXPECT_EQ(4u, sv.runs);
	EXPECT_EQ(0u, sv.dups + sv.gaps + sv.covered);
	EXPECT_EQ(700u, e2e_count(&sp, BATCH_SRC_KMOD, 0));
	EXPECT_EQ(700u, e2e_count(&sp, BATCH_SRC_KMOD, 1));
	for (i = 0; i < sp.n; i++)
		if (sp.recs[i].epoch != e1 && sp.recs[i].epoch != e2)
			break;
	EXPECT_EQ(sp.n, i) TH_LOG("a record of an epoch never loaded");
	/* The change is noted once per partition; nothing is lost. */
	EXPECT_EQ(2u, sp.nnotes);
	for (i = 0; i < sp.nnotes; i++) {
		const struct spool_note *n = &sp.notes[i].n;

		EXPECT_EQ((unsigned int)BATCH_SRC_KMOD, n->source);
		EXPECT_EQ(i, n->partition);
		EXPECT_EQ(e1, n->old_epoch);
		EXPECT_EQ(e2, n->new_epoch);
		EXPECT_STREQ("module reloaded: a new ring epoch",
			     sp.notes[i].text);
	}
	EXPECT_EQ(0u, sp.nloss);
	EXPECT_EQ(0u, sp.batch_loss);
	e2e_spool_free(&sp);
}

/* "partition 0: N records, seq A..B" from evring-cat's stderr. */
static int cat_range(const char *path, uint64_t *n, uint64_t *a, uint64_t *b)
{
	char *out = e2e_slurp(path, NULL);
	const char *line = out ? strstr(out, "partition 0: ") : NULL;
	int ret = line && sscanf(line, "partition 0: %" SCNu64 " records, seq %"
				 SCNu64 "..%" SCNu64, n, a, b) == 3 ? 0 : -EBADMSG;

	free(out);
	return ret;
}

TEST_F_TIMEOUT(epoch, records_released_by_another_consumer_are_one_exact_loss_range, 180)
{
	char err_path[160], out_path[160], *out;
	const char *cat_argv[] = { E2E_EVRING_CAT, "-p", "0", "-n", "20", "-q",
				   NULL };
	const char *ctl_argv[] = { E2E_EVRINGCTL, "--socket", self->e.ctl,
				   "--json", "ledger", NULL };
	struct e2e_spool sp = { 0 };
	struct e2e_seq_verdict sv;
	struct e2e_verdict v;
	uint64_t n, a, b, epoch;
	json_t *j, *losses, *l;
	char hex[17];

	E2E_LOAD_OR_SKIP(PARAMS);
	self->t = e2e_track_new(3, 1u << 16);
	ASSERT_NE(NULL, self->t);
	epoch = module_epoch();
	snprintf(hex, sizeof(hex), "%016" PRIx64, epoch);
	snprintf(err_path, sizeof(err_path), "%s/cat.err", self->e.dir);
	snprintf(out_path, sizeof(out_path), "%s/ctl.out", self->e.dir);

	ASSERT_EQ(0, e2e_daemon_up(&self->e, no_socket, 30000));
	ASSERT_EQ(0, write_events(self->t, 0, 0, 100));
	ASSERT_EQ(0, e2e_wait_drained(&self->e, "device", 30000));
	ASSERT_EQ(0, e2e_daemon_stop(&self->e));

	/* While evringd is down, another consumer takes some and releases. */
	ASSERT_EQ(0, write_events(self->t, 1, 0, 50));
	ASSERT_EQ(0, e2e_run(cat_argv, NULL, err_path, 30000));
	ASSERT_EQ(0, cat_range(err_path, &n, &a, &b));
	e2e_msg("evring-cat -n 20 took %" PRIu64 " records, seq %" PRIu64 "..%" PRIu64,
		n, a, b);
	ASSERT_EQ(101u, a);
	ASSERT_EQ(n, b - a + 1);
	ASSERT_LE(20u, n);
	/* Writer 1's counters c are seqs 101 + c: those are gone. */
	for (uint64_t s = a; s <= b; s++)
		e2e_mark(self->t, 1, s - 101, E2E_FAILED);
	ASSERT_EQ(0, write_events(self->t, 2, 0, 30));

	ASSERT_EQ(0, e2e_daemon_up(&self->e, no_socket, 30000));
	ASSERT_EQ(0, e2e_wait_drained(&self->e, "device", 30000));
	ASSERT_EQ(0, e2e_run(ctl_argv, out_path, NULL, 30000));
	out = e2e_slurp(out_path, NULL);
	ASSERT_NE(NULL, out);
	j = json_loads(out, JSON_DISABLE_EOF_CHECK, NULL);
	ASSERT_NE(NULL, j) TH_LOG("%s", out);
	free(out);
	EXPECT_TRUE(json_is_true(json_object_get(j, "ok")));
	EXPECT_EQ(1u, e2e_jint(j, "total"));
	losses = json_object_get(j, "losses");
	ASSERT_EQ(1u, json_array_size(losses));
	l = json_array_get(losses, 0);
	EXPECT_STREQ("device", e2e_jstr(l, "source"));
	EXPECT_EQ(0u, e2e_jint(l, "partition"));
	EXPECT_STREQ(hex, e2e_jstr(l, "epoch"));
	EXPECT_EQ(a, e2e_jint(l, "first_seq"));
	EXPECT_EQ(b, e2e_jint(l, "last_seq"));
	EXPECT_EQ(n, e2e_jint(l, "count"));
	EXPECT_STREQ("released unspooled", e2e_jstr(l, "reason"));
	json_decref(j);
	ASSERT_EQ(0, e2e_daemon_stop(&self->e));

	ASSERT_EQ(0, e2e_spool_read(&sp, self->e.spool)) TH_LOG("%s", sp.why);
	e2e_check_seqs(&sp, &sv);
	ASSERT_EQ(0, e2e_check_writers(&sp, self->t, false, &v));
	e2e_print_verdict("another consumer", &v, &sv);
	EXPECT_EQ(180u - n, v.acked);
	EXPECT_EQ(0u, v.lost + v.doubled + v.unexpected + v.disordered);
	/* The hole is exactly the ledger's range, nowhere else. */
	EXPECT_EQ(1u, sv.runs);
	EXPECT_EQ(0u, sv.dups + sv.gaps);
	EXPECT_EQ(n, sv.covered);
	ASSERT_EQ(1u, sp.nloss);
	EXPECT_EQ(a, sp.loss[0].l.first_seq);
	EXPECT_EQ(b, sp.loss[0].l.last_seq);
	EXPECT_EQ(epoch, sp.loss[0].l.epoch);
	/* ... and the batch after the hole carries it too. */
	EXPECT_EQ(1u, sp.batch_loss);
	e2e_spool_free(&sp);
}

TEST_F_TIMEOUT(epoch, evring_cat_n_releases_exactly_n_records, 60)
{
	const char *cat_argv[] = { E2E_EVRING_CAT, "-p", "0", "-n", "20", "-q",
				   NULL };
	struct evring_part_stats st[EVRING_PARTITIONS_MAX];
	unsigned int n;

	E2E_LOAD_OR_SKIP(PARAMS);
	self->t = e2e_track_new(1, 1u << 16);
	ASSERT_NE(NULL, self->t);
	ASSERT_EQ(0, write_events(self->t, 0, 0, 50));
	ASSERT_EQ(0, e2e_run(cat_argv, NULL, NULL, 30000));
	ASSERT_EQ(0, e2e_kstats(st, EVRING_PARTITIONS_MAX, &n));
	ASSERT_EQ(50u, st[0].produced);
	/* "exit after COUNT records": the other 30 must stay for evringd. */
	EXPECT_EQ(20u, st[0].released);
}

TEST_HARNESS_MAIN
