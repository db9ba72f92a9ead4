/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * verify: the stream verifier.  Pure (no I/O): fed what one or more
 * regions' streams hold, it says per (host, source, partition, epoch)
 * which sequence numbers were delivered once, which more than once, which
 * are missing and whether a missing range is explained.
 *
 *	struct verify *v;
 *	verify_new(&v);
 *	verify_expect(v, "web-01", BATCH_SRC_KMOD, 0, epoch, 1, 1000);	optional
 *	for every message of every stream, in stream order:
 *		verify_add_batch(v, region, stream_seq, &view.meta, loss, nloss);
 *	   or	verify_add_dead_marker(v, region, stream_seq, host, source,
 *				       partition, epoch, first_seq, count, reason);
 *	verify_report(v, &r);
 *	verify_foreach_issue(v, cb, arg);	what exactly is wrong, in order
 *	verify_ok(v);
 *	verify_free(v);
 *
 * Feeding several regions' streams into one verifier is the union check of
 * failover mode: every record must be in exactly one of them.  Feed one
 * stream per verifier to check a replicated region on its own.
 *
 * What is classified, per partition (host, source, partition, epoch):
 *  - seen: records delivered at least once.
 *  - duplicates: every extra copy of a record, in one stream or across
 *    streams (a seq seen three times counts 2).
 *  - gaps: the ranges missing between the lowest and the highest seq seen,
 *    plus every missing part of an expected range (verify_expect: what the
 *    writers were told was accepted).  Each maximal missing range is split
 *    by its explanation, in this order:
 *	ledger	a loss entry carried in any batch of the same host says the
 *		records were lost before spooling (the ledger)
 *	dead	a dead-letter marker covers them: the batch was refused by
 *		the region and waits in the dead-letter table
 *	lost	unexplained, inside an expected range
 *	gap	unexplained, not inside an expected range
 *  - reorders: within one stream and partition, newly seen records that
 *    arrive after that stream already delivered a higher seq (extra copies
 *    count as duplicates only); records covered by a dead-letter marker
 *    (from any stream, before or after) do not count: a replay arrives
 *    late on purpose.
 *  - dead_lettered: records covered by dead-letter markers; dead_replayed:
 *    of those, the ones delivered (the replay filled the marker's range).
 *
 * verify_ok(): no duplicate, no unexplained gap (gap or lost), no reorder.
 *
 * Seqs are stored as sorted disjoint intervals, so the cost follows the
 * number of batches and holes, not of records.  Every function returns 0
 * or -errno; out-parameters are written only on success.  An add that
 * fails with -EINVAL (checked first) changes nothing; after -ENOMEM the
 * verifier may hold part of that add: report nothing from it, free it.
 * Not thread-safe.
 */
#ifndef EVRINGD_VERIFY_H
#define EVRINGD_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "batch.h"

#define VERIFY_REGION_MAX	64	/* region name bytes, without the NUL */

struct verify;

/* Counters, for the whole verifier or one partition. */
struct verify_counts {
	uint64_t batches;		/* batches added (with records or not) */
	uint64_t records;		/* records added, copies included */
	uint64_t unique;		/* distinct records seen */
	uint64_t duplicates;		/* extra copies */
	uint64_t dup_batches;		/* batches with at least one copy */
	uint64_t markers;		/* dead-letter markers added */
	uint64_t gaps;			/* missing ranges, every kind */
	uint64_t gaps_explained;	/* of those, ledger + dead */
	uint64_t gaps_ledger, gaps_ledger_records;
	uint64_t gaps_dead, gaps_dead_records;
	uint64_t gaps_unexplained, gaps_unexplained_records;	/* gap + lost */
	uint64_t lost;			/* expected records missing, unexplained */
	uint64_t reordered;		/* records delivered out of order */
	uint64_t dead_lettered;		/* records covered by markers */
	uint64_t dead_replayed;		/* of those, delivered */
};

struct verify_report {
	struct verify_counts total;
	unsigned int nparts;		/* partitions, for verify_part() */
	unsigned int nregions;		/* distinct regions added */
};

struct verify_part {
	char host[BATCH_HOST_ID_MAX + 1];
	unsigned int source;
	uint32_t partition;
	uint64_t epoch;
	uint64_t first_seen, last_seen;	/* 0, 0 when nothing seen */
	struct verify_counts c;
};

enum verify_kind {
	VERIFY_DUPLICATE,	/* [first, last] delivered again */
	VERIFY_REORDER,		/* [first, last] delivered out of order */
	VERIFY_GAP,		/* missing, unexplained */
	VERIFY_LOST,		/* missing, expected, unexplained */
	VERIFY_GAP_LEDGER,	/* missing, in the ledger */
	VERIFY_GAP_DEAD,	/* missing, dead-lettered */
};

/*
 * One finding.  @region and @stream_seq name the message that showed it
 * (DUPLICATE, REORDER: the later copy) or the marker (GAP_DEAD); NULL/0
 * otherwise.  @reason: GAP_LEDGER's loss reason or GAP_DEAD's marker
 * reason, else NULL.  Pointers are valid during the callback only.
 */
struct verify_issue {
	enum verify_kind kind;
	const struct verify_part *part;
	uint64_t first, last;
	const char *region;
	uint64_t stream_seq;
	const char *reason;
};

int verify_new(struct verify **out);
/* Accepts NULL. */
void verify_free(struct verify *v);

/*
 * One batch of @region's stream at @stream_seq: the records of @m
 * ([first_seq, first_seq + count - 1], none when count is 0) and its
 * @nloss loss entries, which name ranges of @m->host_id's partitions.
 * Batches of one region must be added in stream order.  -EINVAL: empty or
 * over-long region or host, first_seq 0 with records, a range that wraps,
 * a loss entry with first_seq > last_seq or no reason.
 */
int verify_add_batch(struct verify *v, const char *region,
		     uint64_t stream_seq, const struct batch_meta *m,
		     const struct batch_loss *loss, unsigned int nloss);

/*
 * A dead-letter marker of @region's stream: [first_seq, first_seq + count
 * - 1] of the partition was dead-lettered for @reason.  -EINVAL: count 0,
 * first_seq 0, a range that wraps, empty region, host or reason.
 */
int verify_add_dead_marker(struct verify *v, const char *region,
			   uint64_t stream_seq, const char *host,
			   unsigned int source, uint32_t partition,
			   uint64_t epoch, uint64_t first_seq, uint64_t count,
			   const char *reason);

/*
 * The partition's records [first_seq, last_seq] were acknowledged to
 * their writers: each must be seen, or be explained.  -EINVAL: first_seq
 * 0 or > last_seq, bad host.
 */
int verify_expect(struct verify *v, const char *host, unsigned int source,
		  uint32_t partition, uint64_t epoch, uint64_t first_seq,
		  uint64_t last_seq);

/* Totals of everything added so far. */
int verify_report(struct verify *v, struct verify_report *out);

/*
 * Partition @i (0 .. nparts - 1), in (host, source, partition, epoch)
 * order; -ENOENT past the end.
 */
int verify_part(struct verify *v, unsigned int i, struct verify_part *out);

/*
 * Every finding, partition by partition, then by kind (duplicates,
 * reorders, then missing ranges in seq order).  A non-zero return of @cb
 * stops the walk and is returned.
 */
int verify_foreach_issue(struct verify *v,
			 int (*cb)(const struct verify_issue *is, void *arg),
			 void *arg);

/* No duplicates, no unexplained gaps, nothing expected missing, in order. */
bool verify_ok(struct verify *v);

/* "duplicate", "reorder", "gap", "lost", "ledger", "dead-letter". */
const char *verify_kind_name(enum verify_kind k);

#endif /* EVRINGD_VERIFY_H */
