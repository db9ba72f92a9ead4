// SPDX-License-Identifier: GPL-2.0-only
/*
 * check_test: daemon/drill_check.c against daemon/drill_check.h: a table
 * of histories (what writers attempted and had acknowledged, what each
 * region delivered, how many times and in which order), each with the
 * classes it must give in every view, covering every class and every
 * lost split in both modes; then the payload filter, latency percentiles,
 * the per-second series, lost ranges, millions of canaries, and every
 * rejected argument.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "drill_check.h"
#include "kselftest_harness.h"

/* The harness compares with ==: literals against unsigned fields. */
#pragma GCC diagnostic ignored "-Wsign-compare"
/* Table rows leave the classes they expect to be 0 out. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#define ID	0x5eed5eed5eed5eedull
#define T0	1700000000000000000ull		/* the drill's start, ns */
#define MS	1000000ull

/* One step of a history. */
struct op {
	char what;		/* 'a'ttempt, ac'k', 'd'eliver, 'r': deliver in
				 * reverse order; 0 ends the list */
	unsigned int w;		/* writer */
	uint64_t lo, hi;	/* sequences, inclusive */
	unsigned int region;	/* 'd', 'r' */
};

struct want {
	uint64_t ok, lost, pre, mid, post, dup, rec, unk, unexp;
};

struct hcase {
	const char *name;
	enum drill_mode mode;
	unsigned int regions, writers;
	struct op ops[8];
	struct want v[2];	/* per view */
	int passed;
};

#define A(w, lo, hi)		{ 'a', w, lo, hi, 0 }
#define K(w, lo, hi)		{ 'k', w, lo, hi, 0 }
#define AK(w, lo, hi)		A(w, lo, hi), K(w, lo, hi)
#define D(r, w, lo, hi)		{ 'd', w, lo, hi, r }
#define R(r, w, lo, hi)		{ 'r', w, lo, hi, r }

static const struct hcase cases[] = {
	{ "all_ok", DRILL_REPLICATE, 1, 1,
	  { AK(0, 0, 99), D(0, 0, 0, 99) }, { { .ok = 100 } }, 1 },
	{ "lost_prefix", DRILL_REPLICATE, 1, 1,
	  { AK(0, 0, 99), D(0, 0, 10, 99) },
	  { { .ok = 90, .lost = 10, .pre = 10 } }, 0 },
	{ "lost_middle", DRILL_REPLICATE, 1, 1,
	  { AK(0, 0, 99), D(0, 0, 0, 39), D(0, 0, 60, 99) },
	  { { .ok = 80, .lost = 20, .mid = 20 } }, 0 },
	{ "lost_postfix", DRILL_REPLICATE, 1, 1,
	  { AK(0, 0, 99), D(0, 0, 0, 89) },
	  { { .ok = 90, .lost = 10, .post = 10 } }, 0 },
	{ "nothing_delivered_is_all_postfix", DRILL_REPLICATE, 1, 1,
	  { AK(0, 0, 99) }, { { .lost = 100, .post = 100 } }, 0 },
	{ "lost_in_every_split", DRILL_REPLICATE, 1, 1,
	  { AK(0, 0, 99), D(0, 0, 5, 9), D(0, 0, 20, 29), D(0, 0, 50, 59) },
	  { { .ok = 25, .lost = 75, .pre = 5, .mid = 30, .post = 40 } }, 0 },
	{ "delivered_twice_is_duplicated", DRILL_REPLICATE, 1, 1,
	  { AK(0, 0, 99), D(0, 0, 0, 99), D(0, 0, 40, 49) },
	  { { .ok = 90, .dup = 10 } }, 0 },
	{ "delivered_never_attempted_is_unexpected", DRILL_REPLICATE, 1, 1,
	  { AK(0, 0, 9), D(0, 0, 0, 19) }, { { .ok = 10, .unexp = 10 } }, 0 },
	{ "unacked_delivered_is_recovered", DRILL_REPLICATE, 1, 1,
	  { A(0, 0, 99), K(0, 0, 49), D(0, 0, 0, 99) },
	  { { .ok = 50, .rec = 50 } }, 1 },
	{ "unacked_not_delivered_is_unknown", DRILL_REPLICATE, 1, 1,
	  { A(0, 0, 99), K(0, 0, 49), D(0, 0, 0, 49) },
	  { { .ok = 50, .unk = 50 } }, 1 },
	{ "unacked_delivered_twice_is_duplicated", DRILL_REPLICATE, 1, 1,
	  { A(0, 0, 9), D(0, 0, 0, 9), D(0, 0, 0, 9) }, { { .dup = 10 } }, 0 },
	{ "acked_counts_as_attempted", DRILL_REPLICATE, 1, 1,
	  { K(0, 0, 9), D(0, 0, 0, 9) }, { { .ok = 10 } }, 1 },
	{ "out_of_order_delivery_is_still_ok", DRILL_REPLICATE, 1, 1,
	  { AK(0, 0, 999), R(0, 0, 500, 999), R(0, 0, 0, 499) },
	  { { .ok = 1000 } }, 1 },
	{ "replicate_needs_every_region", DRILL_REPLICATE, 2, 1,
	  { AK(0, 0, 99), D(0, 0, 0, 99), D(1, 0, 0, 89) },
	  { { .ok = 100 }, { .ok = 90, .lost = 10, .post = 10 } }, 0 },
	{ "replicate_once_per_region_is_not_duplicated", DRILL_REPLICATE, 2, 1,
	  { AK(0, 0, 99), D(0, 0, 0, 99), D(1, 0, 0, 99) },
	  { { .ok = 100 }, { .ok = 100 } }, 1 },
	{ "replicate_duplicate_in_one_region", DRILL_REPLICATE, 2, 1,
	  { AK(0, 0, 99), D(0, 0, 0, 99), D(1, 0, 0, 99), D(1, 0, 7, 7) },
	  { { .ok = 100 }, { .ok = 99, .dup = 1 } }, 0 },
	{ "failover_split_across_regions_is_ok", DRILL_FAILOVER, 2, 1,
	  { AK(0, 0, 99), D(0, 0, 0, 49), D(1, 0, 50, 99) },
	  { { .ok = 100 } }, 1 },
	{ "failover_in_two_regions_is_duplicated", DRILL_FAILOVER, 2, 1,
	  { AK(0, 0, 99), D(0, 0, 0, 59), D(1, 0, 50, 99) },
	  { { .ok = 90, .dup = 10 } }, 0 },
	{ "failover_gap_between_regions_is_lost_middle", DRILL_FAILOVER, 2, 1,
	  { AK(0, 0, 99), D(0, 0, 0, 39), D(1, 0, 50, 99) },
	  { { .ok = 90, .lost = 10, .mid = 10 } }, 0 },
	{ "failover_twice_in_one_region_is_duplicated", DRILL_FAILOVER, 2, 1,
	  { AK(0, 0, 99), D(0, 0, 0, 99), D(0, 0, 0, 0) },
	  { { .ok = 99, .dup = 1 } }, 0 },
	{ "writers_are_split_separately", DRILL_REPLICATE, 1, 2,
	  { AK(0, 0, 99), AK(1, 0, 99), D(0, 0, 10, 99), D(0, 1, 0, 89) },
	  { { .ok = 180, .lost = 20, .pre = 10, .post = 10 } }, 0 },
};

static void feed(struct __test_metadata *_metadata, struct drill_check *ck,
		 const struct op *o)
{
	for (; o->what; o++) {
		switch (o->what) {
		case 'a':
			for (uint64_t s = o->lo; s <= o->hi; s++)
				ASSERT_EQ(0, drill_check_attempt(ck, o->w, s, T0));
			break;
		case 'k':
			ASSERT_EQ(0, drill_check_ack(ck, o->w, o->lo, o->hi, T0));
			break;
		case 'd':
		case 'r':
			for (uint64_t i = 0; i <= o->hi - o->lo; i++) {
				struct drill_canary c = {
					.drill_id = ID, .writer = o->w,
					.seq = o->what == 'd' ? o->lo + i : o->hi - i,
					.sent_ns = T0,
				};

				ASSERT_EQ(0, drill_check_deliver(ck, o->region,
								 &c, T0 + MS));
			}
			break;
		}
	}
}

TEST(every_class_and_split_from_a_table_of_histories)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct hcase *h = &cases[i];
		struct drill_check *ck;

		ASSERT_EQ(0, drill_check_new(h->mode, h->regions, h->writers, ID,
					     T0, 10, &ck));
		feed(_metadata, ck, h->ops);
		ASSERT_EQ(h->mode == DRILL_REPLICATE ? h->regions : 1,
			  drill_check_nr_views(ck));
		for (unsigned int v = 0; v < drill_check_nr_views(ck); v++) {
			const struct want *w = &h->v[v];
			struct drill_counts c;

			memset(&c, 0xa5, sizeof(c));
			ASSERT_EQ(0, drill_check_counts(ck, v, -1, &c));
			EXPECT_EQ(w->ok, c.ok) TH_LOG("%s view %u ok", h->name, v);
			EXPECT_EQ(w->lost, c.lost) TH_LOG("%s view %u lost", h->name, v);
			EXPECT_EQ(w->pre, c.lost_prefix) TH_LOG("%s prefix", h->name);
			EXPECT_EQ(w->mid, c.lost_middle) TH_LOG("%s middle", h->name);
			EXPECT_EQ(w->post, c.lost_postfix) TH_LOG("%s postfix", h->name);
			EXPECT_EQ(w->dup, c.duplicated) TH_LOG("%s duplicated", h->name);
			EXPECT_EQ(w->rec, c.recovered) TH_LOG("%s recovered", h->name);
			EXPECT_EQ(w->unk, c.unknown) TH_LOG("%s unknown", h->name);
			EXPECT_EQ(w->unexp, c.unexpected) TH_LOG("%s unexpected", h->name);
			/* The classes partition what was attempted. */
			EXPECT_EQ(c.attempted, c.ok + c.lost + c.duplicated +
					       c.recovered + c.unknown)
				TH_LOG("%s partition", h->name);
		}
		EXPECT_EQ(h->passed, drill_check_passed(ck)) TH_LOG("%s", h->name);
		drill_check_free(ck);
	}
}

TEST(per_writer_counts_add_up_to_the_total)
{
	static const struct op ops[] = {
		AK(0, 0, 99), AK(1, 0, 49), A(1, 50, 59), D(0, 0, 10, 99),
		D(0, 1, 0, 54), { 0 }
	};
	struct drill_counts c0, c1, all;
	struct drill_check *ck;

	ASSERT_EQ(0, drill_check_new(DRILL_REPLICATE, 1, 2, ID, T0, 10, &ck));
	feed(_metadata, ck, ops);
	ASSERT_EQ(0, drill_check_counts(ck, 0, 0, &c0));
	ASSERT_EQ(0, drill_check_counts(ck, 0, 1, &c1));
	ASSERT_EQ(0, drill_check_counts(ck, 0, -1, &all));
	EXPECT_EQ(100, c0.attempted);
	EXPECT_EQ(10, c0.lost_prefix);
	EXPECT_EQ(60, c1.attempted);
	EXPECT_EQ(50, c1.acked);
	EXPECT_EQ(50, c1.ok);
	EXPECT_EQ(5, c1.recovered);
	EXPECT_EQ(5, c1.unknown);
	EXPECT_EQ(c0.ok + c1.ok, all.ok);
	EXPECT_EQ(c0.attempted + c1.attempted, all.attempted);
	EXPECT_EQ(145, all.delivered);
	EXPECT_EQ(145, all.deliveries);
	drill_check_free(ck);
}

TEST(payloads_that_are_not_this_drills_canaries_are_ignored_and_counted)
{
	struct drill_canary c = { .drill_id = ID, .writer = 0, .seq = 3,
				  .sent_ns = T0 };
	unsigned char buf[128];
	uint64_t foreign = 9, other = 9;
	struct drill_counts n;
	struct drill_check *ck;

	ASSERT_EQ(0, drill_check_new(DRILL_REPLICATE, 1, 1, ID, T0, 10, &ck));
	ASSERT_EQ(0, drill_check_ack(ck, 0, 3, 3, T0));
	ASSERT_EQ(-EBADMSG, drill_check_payload(ck, 0, "{\"user\":1}", 10, T0));
	c.drill_id = ID + 1;
	ASSERT_EQ(0, drill_canary_encode(&c, buf, sizeof(buf)));
	ASSERT_EQ(-ESRCH, drill_check_payload(ck, 0, buf, sizeof(buf), T0));
	c.drill_id = ID;
	ASSERT_EQ(0, drill_canary_encode(&c, buf, sizeof(buf)));
	ASSERT_EQ(0, drill_check_payload(ck, 0, buf, sizeof(buf), T0));
	/* A writer the drill does not have: unexpected. */
	c.writer = 5;
	ASSERT_EQ(0, drill_canary_encode(&c, buf, sizeof(buf)));
	ASSERT_EQ(0, drill_check_payload(ck, 0, buf, sizeof(buf), T0));
	drill_check_ignored(ck, &foreign, &other);
	EXPECT_EQ(1, foreign);
	EXPECT_EQ(1, other);
	ASSERT_EQ(0, drill_check_counts(ck, 0, -1, &n));
	EXPECT_EQ(1, n.ok);
	EXPECT_EQ(1, n.unexpected);
	EXPECT_EQ(2, n.deliveries);
	ASSERT_EQ(0, drill_check_counts(ck, 0, 0, &n));
	EXPECT_EQ(0, n.unexpected);	/* only in the total */
	EXPECT_FALSE(drill_check_passed(ck));
	drill_check_free(ck);
}

TEST(latency_percentiles_are_nearest_rank_within_3_percent)
{
	struct drill_check *ck;
	struct drill_latency l;

	ASSERT_EQ(0, drill_check_new(DRILL_REPLICATE, 1, 1, ID, T0, 10, &ck));
	/* Latencies 1..100 us: exact below 64 us. */
	for (uint64_t s = 1; s <= 100; s++) {
		struct drill_canary c = { ID, 0, s, T0 };

		ASSERT_EQ(0, drill_check_ack(ck, 0, s, s, T0));
		ASSERT_EQ(0, drill_check_deliver(ck, 0, &c, T0 + s * 1000));
	}
	memset(&l, 0xa5, sizeof(l));
	ASSERT_EQ(0, drill_check_latency(ck, 0, &l));
	EXPECT_EQ(100, l.count);
	EXPECT_EQ(50, l.p50_us);
	EXPECT_EQ(99, l.p99_us);
	EXPECT_EQ(100, l.max_us);
	/* One slow canary, 2.5 s: max exact, p99 unmoved. */
	{
		struct drill_canary c = { ID, 0, 1000, T0 };

		ASSERT_EQ(0, drill_check_deliver(ck, 0, &c, T0 + 2500 * MS));
	}
	ASSERT_EQ(0, drill_check_latency(ck, 0, &l));
	EXPECT_EQ(2500000, l.max_us);
	EXPECT_EQ(101, l.p99_us);	/* rank 100 of 101: the middle of 100's bin */
	/* A stored time before the send time (clock skew) counts as 0. */
	{
		struct drill_canary c = { ID, 0, 1001, T0 + 5 * MS };

		ASSERT_EQ(0, drill_check_deliver(ck, 0, &c, T0));
	}
	ASSERT_EQ(0, drill_check_latency(ck, 0, &l));
	EXPECT_EQ(102, l.count);
	drill_check_free(ck);
}

TEST(large_latencies_stay_within_3_percent)
{
	static const uint64_t us[] = { 64, 1000, 123457, 2000000, 987654321 };

	for (size_t i = 0; i < sizeof(us) / sizeof(us[0]); i++) {
		struct drill_canary c = { ID, 0, 0, T0 };
		struct drill_check *ck;
		struct drill_latency l;

		ASSERT_EQ(0, drill_check_new(DRILL_REPLICATE, 1, 1, ID, T0, 10, &ck));
		ASSERT_EQ(0, drill_check_deliver(ck, 0, &c, T0 + us[i] * 1000));
		ASSERT_EQ(0, drill_check_latency(ck, 0, &l));
		EXPECT_EQ(us[i], l.max_us);
		EXPECT_LE(l.p50_us, us[i]);
		EXPECT_GE(l.p50_us, us[i] - us[i] / 32) TH_LOG("%llu us",
							       (unsigned long long)us[i]);
		drill_check_free(ck);
	}
}

TEST(failover_view_merges_both_regions_latency)
{
	struct drill_check *ck;
	struct drill_latency l;

	ASSERT_EQ(0, drill_check_new(DRILL_FAILOVER, 2, 1, ID, T0, 10, &ck));
	for (uint64_t s = 0; s < 10; s++) {
		struct drill_canary c = { ID, 0, s, T0 };

		ASSERT_EQ(0, drill_check_deliver(ck, s & 1, &c,
						 T0 + (s + 1) * 1000));
	}
	ASSERT_EQ(0, drill_check_latency(ck, 0, &l));
	EXPECT_EQ(10, l.count);
	EXPECT_EQ(5, l.p50_us);
	EXPECT_EQ(10, l.max_us);
	EXPECT_EQ(-EINVAL, drill_check_latency(ck, 1, &l));
	drill_check_free(ck);
}

TEST(per_second_series_bucket_by_send_ack_and_stored_time)
{
	struct drill_check *ck;
	struct drill_second s;

	ASSERT_EQ(0, drill_check_new(DRILL_REPLICATE, 2, 1, ID, T0, 5, &ck));
	for (uint64_t q = 0; q < 30; q++) {
		/* 10 canaries sent in each of seconds 0, 1, 2 */
		uint64_t sent = T0 + (q / 10) * 1000 * MS + q * MS;
		struct drill_canary c = { ID, 0, q, sent };

		ASSERT_EQ(0, drill_check_attempt(ck, 0, q, sent));
		/* stored 1.5 s later in region 0, 20 ms later in region 1 */
		ASSERT_EQ(0, drill_check_deliver(ck, 0, &c, sent + 1500 * MS));
		ASSERT_EQ(0, drill_check_deliver(ck, 1, &c, sent + 20 * MS));
	}
	ASSERT_EQ(0, drill_check_ack(ck, 0, 0, 29, T0 + 4 * 1000 * MS));
	/* Before the start and long after the end: first and last second. */
	ASSERT_EQ(0, drill_check_attempt(ck, 0, 30, T0 - 7 * MS));
	ASSERT_EQ(0, drill_check_attempt(ck, 0, 31, T0 + 3600 * 1000 * MS));

	memset(&s, 0xa5, sizeof(s));
	ASSERT_EQ(0, drill_check_second(ck, 0, 0, &s));
	EXPECT_EQ(11, s.sent);
	EXPECT_EQ(0, s.acked);
	EXPECT_EQ(0, s.delivered);	/* region 0 stores 1.5 s later */
	EXPECT_EQ(10, s.lat.count);
	EXPECT_GE(s.lat.p50_us, 1500000 - 1500000 / 32);
	ASSERT_EQ(0, drill_check_second(ck, 0, 1, &s));
	EXPECT_EQ(10, s.delivered);	/* q 0..9: stored at 1.5..1.509 s */
	ASSERT_EQ(0, drill_check_second(ck, 1, 0, &s));
	EXPECT_EQ(10, s.delivered);
	EXPECT_EQ(20000, s.lat.max_us);
	ASSERT_EQ(0, drill_check_second(ck, 1, 4, &s));
	EXPECT_EQ(1, s.sent);
	EXPECT_EQ(30, s.acked);
	EXPECT_EQ(0, s.lat.count);
	EXPECT_EQ(0, s.lat.p99_us);
	EXPECT_EQ(-ERANGE, drill_check_second(ck, 0, 5, &s));
	EXPECT_EQ(-EINVAL, drill_check_second(ck, 2, 0, &s));
	drill_check_free(ck);
}

TEST(lost_ranges_are_listed_in_order)
{
	static const struct op ops[] = {
		AK(0, 0, 99), D(0, 0, 5, 9), D(0, 0, 20, 29), D(0, 0, 50, 59),
		{ 0 }
	};
	uint64_t r[2][2] = { { 7, 7 }, { 7, 7 } };
	struct drill_check *ck;
	size_t n = 99;

	ASSERT_EQ(0, drill_check_new(DRILL_REPLICATE, 1, 1, ID, T0, 10, &ck));
	feed(_metadata, ck, ops);
	ASSERT_EQ(0, drill_check_lost(ck, 0, 0, r, 2, &n));
	EXPECT_EQ(4, n);
	EXPECT_EQ(0, r[0][0]);
	EXPECT_EQ(4, r[0][1]);
	EXPECT_EQ(10, r[1][0]);
	EXPECT_EQ(19, r[1][1]);
	EXPECT_EQ(-EINVAL, drill_check_lost(ck, 0, 1, r, 2, &n));
	drill_check_free(ck);
}

TEST(millions_of_canaries_take_a_few_intervals)
{
	const uint64_t N = 5000000;
	struct drill_check *ck;
	struct drill_counts c;

	ASSERT_EQ(0, drill_check_new(DRILL_FAILOVER, 2, 1, ID, T0, 60, &ck));
	for (uint64_t s = 0; s < N; s++) {
		struct drill_canary cn = { ID, 0, s, T0 + s * 1000 };

		ASSERT_EQ(0, drill_check_attempt(ck, 0, s, cn.sent_ns));
		if (s % 1000 == 999)
			ASSERT_EQ(0, drill_check_ack(ck, 0, s - 999, s, cn.sent_ns));
		/* every 100,000th lost; the rest alternate region per 50,000 */
		if (s % 100000 == 77)
			continue;
		ASSERT_EQ(0, drill_check_deliver(ck, (s / 50000) & 1, &cn,
						 cn.sent_ns + 3 * MS));
	}
	ASSERT_EQ(0, drill_check_counts(ck, 0, -1, &c));
	EXPECT_EQ(N, c.attempted);
	EXPECT_EQ(N, c.acked);
	EXPECT_EQ(N - 50, c.ok);
	EXPECT_EQ(50, c.lost);
	EXPECT_EQ(50, c.lost_middle);
	EXPECT_EQ(0, c.duplicated);
	drill_check_free(ck);
}

TEST(bad_arguments_are_einval)
{
	struct drill_canary c = { ID, 0, UINT64_MAX, T0 };
	struct drill_check *ck = (void *)0xa5;
	struct drill_counts n;

	EXPECT_EQ(-EINVAL, drill_check_new(DRILL_REPLICATE, 0, 1, ID, T0, 1, &ck));
	EXPECT_EQ(-EINVAL, drill_check_new(DRILL_REPLICATE, 9, 1, ID, T0, 1, &ck));
	EXPECT_EQ(-EINVAL, drill_check_new(DRILL_REPLICATE, 1, 0, ID, T0, 1, &ck));
	EXPECT_EQ(-EINVAL, drill_check_new(DRILL_REPLICATE, 1, 4097, ID, T0, 1, &ck));
	EXPECT_EQ(-EINVAL, drill_check_new(DRILL_REPLICATE, 1, 1, ID, T0, 0, &ck));
	EXPECT_EQ(-EINVAL, drill_check_new(7, 1, 1, ID, T0, 1, &ck));
	EXPECT_EQ((void *)0xa5, ck);
	ASSERT_EQ(0, drill_check_new(DRILL_REPLICATE, 2, 2, ID, T0, 1, &ck));
	EXPECT_EQ(-EINVAL, drill_check_attempt(ck, 2, 0, T0));
	EXPECT_EQ(-EINVAL, drill_check_attempt(ck, 0, UINT64_MAX, T0));
	EXPECT_EQ(-EINVAL, drill_check_ack(ck, 0, 5, 4, T0));
	EXPECT_EQ(-EINVAL, drill_check_ack(ck, 2, 0, 0, T0));
	EXPECT_EQ(-EINVAL, drill_check_ack(ck, 0, 0, UINT64_MAX, T0));
	EXPECT_EQ(-EINVAL, drill_check_deliver(ck, 0, &c, T0));
	c.seq = 0;
	EXPECT_EQ(-EINVAL, drill_check_deliver(ck, 2, &c, T0));
	EXPECT_EQ(-EINVAL, drill_check_payload(ck, 2, "x", 1, T0));
	EXPECT_EQ(-EINVAL, drill_check_counts(ck, 2, -1, &n));
	EXPECT_EQ(-EINVAL, drill_check_counts(ck, 0, 2, &n));
	drill_check_free(ck);
	drill_check_free(NULL);
}

TEST_HARNESS_MAIN
