// SPDX-License-Identifier: GPL-2.0-only
/*
 * verify_test: the stream verifier (daemon/verify.h).
 *
 * Most cases are one table: a script of what streams hold (batches with
 * their loss entries, dead-letter markers, expected ranges) and the
 * counters and verdict the verifier must give for it.  The tests after
 * the table check the findings themselves (kind, range, which message),
 * that the verdict does not depend on the order regions are fed in, every
 * rejection, and a million records.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "verify.h"
#include "kselftest_harness.h"

#define HOST	"web-01"
#define EPOCH	0x8000000000000001ull	/* >= 2^63 on purpose */
#define POISON64 0xa5a5a5a5a5a5a5a5ull

enum op_kind {
	OP_END = 0,
	OP_BATCH,	/* region, part, epoch, first, n records; loss */
	OP_DEAD,	/* region, part, epoch, first, n: a marker */
	OP_EXPECT,	/* part, epoch, first, n */
};

struct op {
	enum op_kind kind;
	const char *region;
	uint32_t part;
	uint64_t epoch;
	uint64_t first, n;
	/* OP_BATCH: one loss entry of the same host when loss_n > 0 */
	uint32_t loss_part;
	uint64_t loss_first, loss_n;
};

/* What the table checks; every other counter is checked elsewhere. */
struct want {
	uint64_t records, unique, duplicates, dup_batches;
	uint64_t gaps, gaps_explained, gaps_unexplained;
	uint64_t ledger_records, dead_records, lost, reordered;
	uint64_t dead_lettered, dead_replayed;
	unsigned int nparts;
	bool ok;
};

#define B(r, f, n)		{ OP_BATCH, r, 0, EPOCH, f, n, 0, 0, 0 }
#define BP(r, p, e, f, n)	{ OP_BATCH, r, p, e, f, n, 0, 0, 0 }
#define BL(r, f, n, lf, ln)	{ OP_BATCH, r, 0, EPOCH, f, n, 0, lf, ln }
#define DEAD(r, f, n)		{ OP_DEAD, r, 0, EPOCH, f, n, 0, 0, 0 }
#define END			{ OP_END, NULL, 0, 0, 0, 0, 0, 0, 0 }
#define EXPECT(f, n)		{ OP_EXPECT, NULL, 0, EPOCH, f, n, 0, 0, 0 }

/* Feed @ops; stream sequences count per region from 1. */
static int run_ops(struct verify *v, const struct op *ops)
{
	uint64_t sseq_a = 0, sseq_b = 0;

	for (const struct op *o = ops; o->kind != OP_END; o++) {
		uint64_t *sseq = o->region && !strcmp(o->region, "b") ?
				 &sseq_b : &sseq_a;
		struct batch_meta m = {
			.source = BATCH_SRC_SOCKET,
			.partition = o->part,
			.epoch = o->epoch,
			.first_seq = o->first,
			.count = o->n,
		};
		struct batch_loss l = {
			.source = BATCH_SRC_SOCKET,
			.partition = o->loss_part,
			.epoch = o->epoch,
			.first_seq = o->loss_first,
			.last_seq = o->loss_first + o->loss_n - 1,
			.reason = "ring_overrun",
		};
		int ret = 0;

		strcpy(m.host_id, HOST);
		switch (o->kind) {
		case OP_BATCH:
			ret = verify_add_batch(v, o->region, ++*sseq, &m, &l,
					       o->loss_n ? 1 : 0);
			break;
		case OP_DEAD:
			ret = verify_add_dead_marker(v, o->region, ++*sseq,
						     HOST, BATCH_SRC_SOCKET,
						     o->part, o->epoch,
						     o->first, o->n,
						     "max_payload");
			break;
		case OP_EXPECT:
			ret = verify_expect(v, HOST, BATCH_SRC_SOCKET, o->part,
					    o->epoch, o->first,
					    o->first + o->n - 1);
			break;
		case OP_END:
			break;
		}
		if (ret)
			return ret;
	}
	return 0;
}

FIXTURE(table) {
	struct verify *v;
};

FIXTURE_VARIANT(table) {
	const struct op *ops;
	struct want want;
};

FIXTURE_SETUP(table)
{
	ASSERT_EQ(0, verify_new(&self->v));
}

FIXTURE_TEARDOWN(table)
{
	verify_free(self->v);
}

/* 1..300 in three batches, in order: all once. */
FIXTURE_VARIANT_ADD(table, clean_run) {
	.ops = (const struct op[]){
		B("a", 1, 100), B("a", 101, 100), B("a", 201, 100), END },
	.want = { .records = 300, .unique = 300, .nparts = 1, .ok = true },
};

/* The second copy of 101..200 in the same stream. */
FIXTURE_VARIANT_ADD(table, duplicate_within_one_stream) {
	.ops = (const struct op[]){
		B("a", 1, 100), B("a", 101, 100), B("a", 101, 100),
		B("a", 201, 100), END },
	.want = { .records = 400, .unique = 300, .duplicates = 100,
		  .dup_batches = 1, .nparts = 1, .ok = false },
};

/* Union (failover) check: 101..200 reached both regions. */
FIXTURE_VARIANT_ADD(table, duplicate_across_regions_in_union) {
	.ops = (const struct op[]){
		B("a", 1, 100), B("a", 101, 100),
		B("b", 101, 100), B("b", 201, 100), END },
	.want = { .records = 400, .unique = 300, .duplicates = 100,
		  .dup_batches = 1, .nparts = 1, .ok = false },
};

/* Failover without a double: each batch in exactly one region. */
FIXTURE_VARIANT_ADD(table, failover_union_clean) {
	.ops = (const struct op[]){
		B("a", 1, 100), B("b", 101, 100), B("a", 201, 100), END },
	.want = { .records = 300, .unique = 300, .nparts = 1, .ok = true },
};

/* 101..200 never arrived and nothing says why. */
FIXTURE_VARIANT_ADD(table, gap_unexplained) {
	.ops = (const struct op[]){
		B("a", 1, 100), B("a", 201, 100), END },
	.want = { .records = 200, .unique = 200, .gaps = 1,
		  .gaps_unexplained = 1, .nparts = 1, .ok = false },
};

/* A loss entry (the ledger) carried by the next batch covers the hole. */
FIXTURE_VARIANT_ADD(table, gap_explained_by_loss_entry) {
	.ops = (const struct op[]){
		B("a", 1, 100), BL("a", 201, 100, 101, 100), END },
	.want = { .records = 200, .unique = 200, .gaps = 1,
		  .gaps_explained = 1, .ledger_records = 100, .nparts = 1,
		  .ok = true },
};

/* The ledger covers only part of the hole: the rest is a gap. */
FIXTURE_VARIANT_ADD(table, gap_partly_explained_by_loss_entry) {
	.ops = (const struct op[]){
		B("a", 1, 100), BL("a", 201, 100, 101, 60), END },
	.want = { .records = 200, .unique = 200, .gaps = 2,
		  .gaps_explained = 1, .gaps_unexplained = 1,
		  .ledger_records = 60, .nparts = 1, .ok = false },
};

/* A loss-only batch (no records) is enough. */
FIXTURE_VARIANT_ADD(table, gap_explained_by_loss_only_batch) {
	.ops = (const struct op[]){
		B("a", 1, 100), BL("a", 0, 0, 101, 100), B("a", 201, 100),
		END },
	.want = { .records = 200, .unique = 200, .gaps = 1,
		  .gaps_explained = 1, .ledger_records = 100, .nparts = 1,
		  .ok = true },
};

/* 101..200 was refused by the region: its marker explains the hole. */
FIXTURE_VARIANT_ADD(table, gap_explained_by_dead_marker) {
	.ops = (const struct op[]){
		B("a", 1, 100), DEAD("a", 101, 100), B("a", 201, 100), END },
	.want = { .records = 200, .unique = 200, .gaps = 1,
		  .gaps_explained = 1, .dead_records = 100,
		  .dead_lettered = 100, .nparts = 1, .ok = true },
};

/* The replay arrives after 201..300: late, but fills the marker. */
FIXTURE_VARIANT_ADD(table, replay_fills_marker) {
	.ops = (const struct op[]){
		B("a", 1, 100), DEAD("a", 101, 100), B("a", 201, 100),
		B("a", 101, 100), END },
	.want = { .records = 300, .unique = 300, .dead_lettered = 100,
		  .dead_replayed = 100, .nparts = 1, .ok = true },
};

/* Failover: the marker in one region, the replay in the other. */
FIXTURE_VARIANT_ADD(table, replay_in_other_region_fills_marker) {
	.ops = (const struct op[]){
		B("b", 1, 100), B("b", 201, 100), B("b", 101, 100),
		B("a", 301, 100), DEAD("a", 101, 100), END },
	.want = { .records = 400, .unique = 400, .dead_lettered = 100,
		  .dead_replayed = 100, .nparts = 1, .ok = true },
};

/* Late without a marker: out of order in its stream. */
FIXTURE_VARIANT_ADD(table, batch_out_of_order) {
	.ops = (const struct op[]){
		B("a", 1, 100), B("a", 201, 100), B("a", 101, 100), END },
	.want = { .records = 300, .unique = 300, .reordered = 100,
		  .nparts = 1, .ok = false },
};

/* The writers were told 1..300; 1..50 never made it. */
FIXTURE_VARIANT_ADD(table, expected_missing_at_start) {
	.ops = (const struct op[]){
		EXPECT(1, 300), B("a", 51, 150), B("a", 201, 100), END },
	.want = { .records = 250, .unique = 250, .gaps = 1,
		  .gaps_unexplained = 1, .lost = 50, .nparts = 1,
		  .ok = false },
};

FIXTURE_VARIANT_ADD(table, expected_missing_in_middle) {
	.ops = (const struct op[]){
		EXPECT(1, 300), B("a", 1, 100), B("a", 151, 150), END },
	.want = { .records = 250, .unique = 250, .gaps = 1,
		  .gaps_unexplained = 1, .lost = 50, .nparts = 1,
		  .ok = false },
};

FIXTURE_VARIANT_ADD(table, expected_missing_at_end) {
	.ops = (const struct op[]){
		EXPECT(1, 300), B("a", 1, 100), B("a", 101, 100), END },
	.want = { .records = 200, .unique = 200, .gaps = 1,
		  .gaps_unexplained = 1, .lost = 100, .nparts = 1,
		  .ok = false },
};

/* Expected and nothing at all arrived. */
FIXTURE_VARIANT_ADD(table, expected_nothing_seen) {
	.ops = (const struct op[]){ EXPECT(1, 10), END },
	.want = { .gaps = 1, .gaps_unexplained = 1, .lost = 10,
		  .nparts = 1, .ok = false },
};

/* Expected, all delivered (more than expected is fine). */
FIXTURE_VARIANT_ADD(table, expected_all_seen) {
	.ops = (const struct op[]){
		EXPECT(1, 200), B("a", 1, 150), B("a", 151, 100), END },
	.want = { .records = 250, .unique = 250, .nparts = 1, .ok = true },
};

/* An expected tail that is dead-lettered is explained, not lost. */
FIXTURE_VARIANT_ADD(table, expected_tail_dead_lettered) {
	.ops = (const struct op[]){
		EXPECT(1, 200), B("a", 1, 100), DEAD("a", 101, 100), END },
	.want = { .records = 100, .unique = 100, .gaps = 1,
		  .gaps_explained = 1, .dead_records = 100,
		  .dead_lettered = 100, .nparts = 1, .ok = true },
};

/* 51..150 overlaps 1..100 by 50 records: a partial duplicate. */
FIXTURE_VARIANT_ADD(table, overlapping_batches_partial_duplicate) {
	.ops = (const struct op[]){
		B("a", 1, 100), B("a", 51, 100), B("a", 151, 50), END },
	.want = { .records = 250, .unique = 200, .duplicates = 50,
		  .dup_batches = 1, .nparts = 1, .ok = false },
};

/* A batch spanning two earlier ones and the hole between them. */
FIXTURE_VARIANT_ADD(table, batch_over_hole_and_copies) {
	.ops = (const struct op[]){
		B("a", 1, 10), B("a", 21, 10), B("b", 5, 20), END },
	.want = { .records = 40, .unique = 30, .duplicates = 10,
		  .dup_batches = 1, .nparts = 1, .ok = false },
};

/* Same seqs in two epochs and two partitions are different records. */
FIXTURE_VARIANT_ADD(table, epochs_and_partitions_independent) {
	.ops = (const struct op[]){
		BP("a", 0, 1, 1, 100), BP("a", 0, 2, 1, 100),
		BP("a", 1, 1, 1, 100), BP("a", 0, 1, 101, 100),
		BP("a", 0, 2, 101, 100), END },
	.want = { .records = 500, .unique = 500, .nparts = 3, .ok = true },
};

/* A hole in one epoch does not leak into another. */
FIXTURE_VARIANT_ADD(table, gap_in_one_epoch_only) {
	.ops = (const struct op[]){
		BP("a", 0, 1, 1, 10), BP("a", 0, 2, 1, 10),
		BP("a", 0, 2, 21, 10), BP("a", 0, 1, 11, 10), END },
	.want = { .records = 40, .unique = 40, .gaps = 1,
		  .gaps_unexplained = 1, .nparts = 2, .ok = false },
};

TEST_F(table, verdict)
{
	const struct want *w = &variant->want;
	struct verify_report r;

	ASSERT_EQ(0, run_ops(self->v, variant->ops));
	memset(&r, 0xa5, sizeof(r));
	ASSERT_EQ(0, verify_report(self->v, &r));
	EXPECT_EQ(w->records, r.total.records);
	EXPECT_EQ(w->unique, r.total.unique);
	EXPECT_EQ(w->duplicates, r.total.duplicates);
	EXPECT_EQ(w->dup_batches, r.total.dup_batches);
	EXPECT_EQ(w->gaps, r.total.gaps);
	EXPECT_EQ(w->gaps_explained, r.total.gaps_explained);
	EXPECT_EQ(w->gaps_unexplained, r.total.gaps_unexplained);
	EXPECT_EQ(w->ledger_records, r.total.gaps_ledger_records);
	EXPECT_EQ(w->dead_records, r.total.gaps_dead_records);
	EXPECT_EQ(w->lost, r.total.lost);
	EXPECT_EQ(w->reordered, r.total.reordered);
	EXPECT_EQ(w->dead_lettered, r.total.dead_lettered);
	EXPECT_EQ(w->dead_replayed, r.total.dead_replayed);
	EXPECT_EQ(w->nparts, r.nparts);
	EXPECT_EQ(r.total.gaps, r.total.gaps_explained +
				r.total.gaps_unexplained);
	EXPECT_EQ(w->ok, verify_ok(self->v));
}

/* --- findings -------------------------------------------------------- */

struct found {
	int n;
	struct {
		enum verify_kind kind;
		uint64_t first, last, stream_seq;
		char region[VERIFY_REGION_MAX + 1];
		char reason[64];
		uint32_t partition;
	} is[16];
};

static int collect(const struct verify_issue *is, void *arg)
{
	struct found *f = arg;

	if (f->n == 16)
		return -E2BIG;
	f->is[f->n].kind = is->kind;
	f->is[f->n].first = is->first;
	f->is[f->n].last = is->last;
	f->is[f->n].stream_seq = is->stream_seq;
	f->is[f->n].partition = is->part->partition;
	snprintf(f->is[f->n].region, sizeof(f->is[f->n].region), "%s",
		 is->region ? is->region : "");
	snprintf(f->is[f->n].reason, sizeof(f->is[f->n].reason), "%s",
		 is->reason ? is->reason : "");
	f->n++;
	return 0;
}

#define ASSERT_ISSUE(f, i, k, a, b, reg, sseq, why) do {		\
	ASSERT_EQ((int)(k), (int)(f).is[i].kind);					\
	ASSERT_EQ((uint64_t)(a), (f).is[i].first);			\
	ASSERT_EQ((uint64_t)(b), (f).is[i].last);			\
	ASSERT_STREQ(reg, (f).is[i].region);				\
	ASSERT_EQ((uint64_t)(sseq), (f).is[i].stream_seq);		\
	ASSERT_STREQ(why, (f).is[i].reason);				\
} while (0)

/*
 * Every kind of finding, with its range and the message that showed it:
 * duplicates name the later copy, missing ranges come in seq order split
 * by their explanation.
 */
TEST(findings_name_range_and_message)
{
	const struct op ops[] = {
		EXPECT(1, 120),
		B("a", 1, 10),		/* a#1 */
		B("a", 5, 10),		/* a#2: 5..10 again; 11..14 new */
		BL("a", 31, 10, 21, 5),	/* a#3: ledger 21..25 */
		DEAD("a", 41, 10),	/* a#4 */
		B("a", 61, 10),		/* a#5 */
		B("a", 56, 2),		/* a#6: late, not a replay */
		B("b", 61, 1),		/* b#1: a copy across regions */
		END,
	};
	struct verify *v;
	struct found f = { .n = 0 };

	ASSERT_EQ(0, verify_new(&v));
	ASSERT_EQ(0, run_ops(v, ops));
	ASSERT_EQ(0, verify_foreach_issue(v, collect, &f));
	ASSERT_EQ(10, f.n);
	ASSERT_ISSUE(f, 0, VERIFY_DUPLICATE, 5, 10, "a", 2, "");
	ASSERT_ISSUE(f, 1, VERIFY_DUPLICATE, 61, 61, "b", 1, "");
	ASSERT_ISSUE(f, 2, VERIFY_REORDER, 56, 57, "a", 6, "");
	ASSERT_ISSUE(f, 3, VERIFY_LOST, 15, 20, "", 0, "");
	ASSERT_ISSUE(f, 4, VERIFY_GAP_LEDGER, 21, 25, "", 0, "ring_overrun");
	ASSERT_ISSUE(f, 5, VERIFY_LOST, 26, 30, "", 0, "");
	ASSERT_ISSUE(f, 6, VERIFY_GAP_DEAD, 41, 50, "a", 4, "max_payload");
	ASSERT_ISSUE(f, 7, VERIFY_LOST, 51, 55, "", 0, "");
	ASSERT_ISSUE(f, 8, VERIFY_LOST, 58, 60, "", 0, "");
	ASSERT_ISSUE(f, 9, VERIFY_LOST, 71, 120, "", 0, "");
	verify_free(v);
}

/* Without an expected range a hole is a "gap"; past the last seq nothing. */
TEST(unexpected_hole_is_gap_not_lost)
{
	const struct op ops[] = { B("a", 1, 10), B("a", 21, 10), END };
	struct verify *v;
	struct found f = { .n = 0 };

	ASSERT_EQ(0, verify_new(&v));
	ASSERT_EQ(0, run_ops(v, ops));
	ASSERT_EQ(0, verify_foreach_issue(v, collect, &f));
	ASSERT_EQ(1, f.n);
	ASSERT_ISSUE(f, 0, VERIFY_GAP, 11, 20, "", 0, "");
	verify_free(v);
}

/* A non-zero return of the callback stops the walk and is returned. */
TEST(foreach_issue_stops_on_callback_error)
{
	const struct op ops[] = {
		B("a", 1, 10), B("a", 21, 10), B("a", 41, 10), END };
	struct verify *v;
	struct found f = { .n = 16 };	/* collect() says -E2BIG at once */

	ASSERT_EQ(0, verify_new(&v));
	ASSERT_EQ(0, run_ops(v, ops));
	ASSERT_EQ(-E2BIG, verify_foreach_issue(v, collect, &f));
	verify_free(v);
}

/* Per partition, in key order; -ENOENT past the end. */
TEST(parts_in_key_order_with_their_counts)
{
	const struct op ops[] = {
		BP("a", 7, 2, 1, 10), BP("a", 3, 9, 1, 5),
		BP("a", 3, 9, 11, 5), BP("a", 3, 1, 4, 2), END };
	struct verify_part p;
	struct verify *v;

	ASSERT_EQ(0, verify_new(&v));
	ASSERT_EQ(0, run_ops(v, ops));
	memset(&p, 0xa5, sizeof(p));
	ASSERT_EQ(0, verify_part(v, 0, &p));
	ASSERT_STREQ(HOST, p.host);
	ASSERT_EQ((unsigned int)BATCH_SRC_SOCKET, p.source);
	ASSERT_EQ(3ull, p.partition);
	ASSERT_EQ(1ull, p.epoch);
	ASSERT_EQ(4ull, p.first_seen);
	ASSERT_EQ(5ull, p.last_seen);
	ASSERT_EQ(0, verify_part(v, 1, &p));
	ASSERT_EQ(3ull, p.partition);
	ASSERT_EQ(9ull, p.epoch);
	ASSERT_EQ(2ull, p.c.batches);
	ASSERT_EQ(10ull, p.c.unique);
	ASSERT_EQ(1ull, p.c.gaps);
	ASSERT_EQ(5ull, p.c.gaps_unexplained_records);
	ASSERT_EQ(0, verify_part(v, 2, &p));
	ASSERT_EQ(7ull, p.partition);
	ASSERT_EQ(0ull, p.c.gaps);
	memset(&p, 0xa5, sizeof(p));
	ASSERT_EQ(-ENOENT, verify_part(v, 3, &p));
	ASSERT_EQ(POISON64, p.epoch);
	verify_free(v);
}

/*
 * Union mode: the verdict and totals do not depend on which region is
 * read first (the replay is in b, its marker in a).
 */
TEST(union_verdict_independent_of_region_order)
{
	const struct op a_first[] = {
		B("a", 1, 100), DEAD("a", 101, 100), B("a", 201, 100),
		B("b", 301, 100), B("b", 101, 100), B("b", 150, 1), END };
	const struct op b_first[] = {
		B("b", 301, 100), B("b", 101, 100), B("b", 150, 1),
		B("a", 1, 100), DEAD("a", 101, 100), B("a", 201, 100), END };
	struct verify_report ra, rb;
	struct verify *v;

	ASSERT_EQ(0, verify_new(&v));
	ASSERT_EQ(0, run_ops(v, a_first));
	ASSERT_EQ(0, verify_report(v, &ra));
	ASSERT_FALSE(verify_ok(v));
	verify_free(v);
	ASSERT_EQ(0, verify_new(&v));
	ASSERT_EQ(0, run_ops(v, b_first));
	ASSERT_EQ(0, verify_report(v, &rb));
	ASSERT_FALSE(verify_ok(v));
	verify_free(v);
	ASSERT_EQ(0, memcmp(&ra.total, &rb.total, sizeof(ra.total)));
	ASSERT_EQ(1ull, ra.total.duplicates);
	ASSERT_EQ(0ull, ra.total.reordered);
	ASSERT_EQ(100ull, ra.total.dead_replayed);
	ASSERT_EQ(2ull, ra.nregions);
}

/* A loss entry may name another partition of the same host. */
TEST(loss_entry_explains_other_partition)
{
	const struct op ops[] = {
		BP("a", 1, EPOCH, 1, 10), BP("a", 1, EPOCH, 31, 10),
		{ OP_BATCH, "a", 0, EPOCH, 1, 5, 1, 11, 20 },
		END };
	struct verify *v;
	struct verify_report r;

	ASSERT_EQ(0, verify_new(&v));
	ASSERT_EQ(0, run_ops(v, ops));
	ASSERT_EQ(0, verify_report(v, &r));
	ASSERT_EQ(2ull, r.nparts);
	ASSERT_EQ(1ull, r.total.gaps_ledger);
	ASSERT_EQ(20ull, r.total.gaps_ledger_records);
	ASSERT_TRUE(verify_ok(v));
	verify_free(v);
}

/* --- rejections ------------------------------------------------------ */

TEST(rejects_bad_arguments_and_changes_nothing)
{
	struct batch_meta m = {
		.source = BATCH_SRC_KMOD, .epoch = 1, .first_seq = 1,
		.count = 10, .host_id = HOST,
	};
	struct batch_loss l = {
		.source = BATCH_SRC_KMOD, .epoch = 1, .first_seq = 5,
		.last_seq = 4, .reason = "x",
	};
	char long_region[VERIFY_REGION_MAX + 2];
	struct verify_report r;
	struct verify *v;

	memset(long_region, 'r', sizeof(long_region) - 1);
	long_region[sizeof(long_region) - 1] = '\0';
	ASSERT_EQ(0, verify_new(&v));
	EXPECT_EQ(-EINVAL, verify_add_batch(v, NULL, 1, &m, NULL, 0));
	EXPECT_EQ(-EINVAL, verify_add_batch(v, "", 1, &m, NULL, 0));
	EXPECT_EQ(-EINVAL, verify_add_batch(v, long_region, 1, &m, NULL, 0));
	EXPECT_EQ(-EINVAL, verify_add_batch(v, "a", 1, NULL, NULL, 0));
	EXPECT_EQ(-EINVAL, verify_add_batch(v, "a", 1, &m, NULL, 1));
	/* loss entry with first > last */
	EXPECT_EQ(-EINVAL, verify_add_batch(v, "a", 1, &m, &l, 1));
	l.last_seq = 6;
	l.reason[0] = '\0';
	EXPECT_EQ(-EINVAL, verify_add_batch(v, "a", 1, &m, &l, 1));
	m.first_seq = 0;
	EXPECT_EQ(-EINVAL, verify_add_batch(v, "a", 1, &m, NULL, 0));
	m.first_seq = UINT64_MAX - 8;	/* + 10 records wraps */
	EXPECT_EQ(-EINVAL, verify_add_batch(v, "a", 1, &m, NULL, 0));
	m.first_seq = UINT64_MAX - 9;	/* ends at UINT64_MAX: fine */
	m.host_id[0] = '\0';
	EXPECT_EQ(-EINVAL, verify_add_batch(v, "a", 1, &m, NULL, 0));
	EXPECT_EQ(-EINVAL, verify_add_dead_marker(v, "a", 1, HOST, 0, 0, 1,
						  1, 0, "why"));
	EXPECT_EQ(-EINVAL, verify_add_dead_marker(v, "a", 1, HOST, 0, 0, 1,
						  0, 1, "why"));
	EXPECT_EQ(-EINVAL, verify_add_dead_marker(v, "a", 1, HOST, 0, 0, 1,
						  UINT64_MAX, 2, "why"));
	EXPECT_EQ(-EINVAL, verify_add_dead_marker(v, "a", 1, HOST, 0, 0, 1,
						  1, 1, ""));
	EXPECT_EQ(-EINVAL, verify_add_dead_marker(v, "a", 1, HOST, 0, 0, 1,
						  1, 1, NULL));
	EXPECT_EQ(-EINVAL, verify_add_dead_marker(v, "", 1, HOST, 0, 0, 1,
						  1, 1, "why"));
	EXPECT_EQ(-EINVAL, verify_add_dead_marker(v, "a", 1,
						  "a-host-name-longer-than-32-bytesx",
						  0, 0, 1, 1, 1, "why"));
	EXPECT_EQ(-EINVAL, verify_expect(v, HOST, 0, 0, 1, 0, 5));
	EXPECT_EQ(-EINVAL, verify_expect(v, HOST, 0, 0, 1, 6, 5));
	EXPECT_EQ(-EINVAL, verify_expect(v, NULL, 0, 0, 1, 1, 5));
	EXPECT_EQ(-EINVAL, verify_report(v, NULL));
	EXPECT_EQ(-EINVAL, verify_foreach_issue(v, NULL, NULL));
	ASSERT_EQ(0, verify_report(v, &r));
	ASSERT_EQ(0ull, r.nparts);
	ASSERT_EQ(0ull, r.nregions);
	ASSERT_EQ(0ull, r.total.batches);
	ASSERT_TRUE(verify_ok(v));
	verify_free(v);
	verify_free(NULL);
}

/* The top of the seq space: no wrap in the interval arithmetic. */
TEST(seqs_up_to_uint64_max)
{
	struct batch_meta m = {
		.source = BATCH_SRC_KMOD, .epoch = 1, .host_id = HOST,
		.first_seq = UINT64_MAX - 9, .count = 10,
	};
	struct verify_report r;
	struct verify *v;

	ASSERT_EQ(0, verify_new(&v));
	ASSERT_EQ(0, verify_add_batch(v, "a", 1, &m, NULL, 0));
	m.first_seq = UINT64_MAX - 29;
	ASSERT_EQ(0, verify_add_batch(v, "a", 2, &m, NULL, 0));
	m.first_seq = UINT64_MAX - 4;
	m.count = 5;
	ASSERT_EQ(0, verify_add_batch(v, "b", 1, &m, NULL, 0));
	ASSERT_EQ(0, verify_report(v, &r));
	ASSERT_EQ(20ull, r.total.unique);
	ASSERT_EQ(5ull, r.total.duplicates);
	ASSERT_EQ(10ull, r.total.reordered);
	ASSERT_EQ(1ull, r.total.gaps);
	ASSERT_EQ(10ull, r.total.gaps_unexplained_records);
	verify_free(v);
}

/*
 * 10^6 records in 1000 batches, with one duplicate and one hole: the
 * interval design keeps this to a handful of intervals.  No timing is
 * asserted; a bit-per-seq design would show here as memory and time.
 */
TEST(million_records_in_thousand_batches)
{
	struct batch_meta m = {
		.source = BATCH_SRC_KMOD, .partition = 2, .epoch = EPOCH,
		.count = 1000, .host_id = HOST,
	};
	struct verify_report r;
	struct verify *v;

	ASSERT_EQ(0, verify_new(&v));
	ASSERT_EQ(0, verify_expect(v, HOST, BATCH_SRC_KMOD, 2, EPOCH, 1,
				   1000000));
	for (uint64_t b = 0; b < 1000; b++) {
		if (b == 500)
			continue;		/* a hole of 1000 */
		m.first_seq = b * 1000 + 1;
		ASSERT_EQ(0, verify_add_batch(v, "a", b + 1, &m, NULL, 0));
	}
	m.first_seq = 999001;			/* the last batch again */
	ASSERT_EQ(0, verify_add_batch(v, "b", 1, &m, NULL, 0));
	ASSERT_EQ(0, verify_report(v, &r));
	ASSERT_EQ(1000000ull, r.total.records);
	ASSERT_EQ(999000ull, r.total.unique);
	ASSERT_EQ(1000ull, r.total.duplicates);
	ASSERT_EQ(1000ull, r.total.lost);
	ASSERT_EQ(1ull, r.total.gaps);
	ASSERT_FALSE(verify_ok(v));
	verify_free(v);
}

TEST(kind_names)
{
	ASSERT_STREQ("duplicate", verify_kind_name(VERIFY_DUPLICATE));
	ASSERT_STREQ("reorder", verify_kind_name(VERIFY_REORDER));
	ASSERT_STREQ("gap", verify_kind_name(VERIFY_GAP));
	ASSERT_STREQ("lost", verify_kind_name(VERIFY_LOST));
	ASSERT_STREQ("ledger", verify_kind_name(VERIFY_GAP_LEDGER));
	ASSERT_STREQ("dead-letter", verify_kind_name(VERIFY_GAP_DEAD));
}

TEST_HARNESS_MAIN
