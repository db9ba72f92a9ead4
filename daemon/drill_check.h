/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * drill_check: a drill's verdict on its canaries, the way Jepsen's queue
 * checker does it.  The writer side says, per writer, which sequences were
 * attempted and which acknowledged (the write returned, the socket acked,
 * fsync returned: whatever the path promises); the read side feeds every
 * region's stream back, decoded; then each attempted canary falls in one
 * class, per view:
 *
 *	ok		acknowledged, delivered exactly once
 *	lost		acknowledged, never delivered; split per writer into
 *			lost-prefix (before the writer's first delivered
 *			sequence), lost-middle and lost-postfix (after its
 *			last); a writer with nothing delivered has all its
 *			lost canaries in lost-postfix
 *	duplicated	delivered more than once
 *	recovered	attempted, not acknowledged, delivered once (fine: the
 *			writer could not know)
 *	unknown		attempted, not acknowledged, not delivered
 *
 * and, beside them, unexpected: delivered but never attempted (including
 * writers the check does not know).  A view is one region in replicate
 * mode (every region must hold every canary once: nr_views = regions) and
 * all regions together in failover mode (one view: a canary held by two
 * regions, or twice by one, is duplicated).
 *
 *	drill_check_new(DRILL_REPLICATE, 2, writers, id, start_ns, secs, &ck);
 *	writer:  drill_check_attempt(ck, w, seq, sent_ns);
 *		 drill_check_ack(ck, w, first, last, ack_ns);
 *	reader:  drill_check_payload(ck, region, data, len, stored_ns);
 *	verdict: drill_check_passed(ck), drill_check_counts(), _latency(),
 *		 _second() for the curves, _lost() for the report.
 *
 * Guarantees:
 *  - Memory is per run of consecutive sequences, not per canary: sets are
 *    sorted arrays of [lo, hi) intervals, and a writer's sequences arrive
 *    mostly in order, so millions of canaries take a few intervals.
 *  - Latency is stored_ns - sent_ns (0 when the clocks say negative) of
 *    each canary's first delivery in a region, in a log-linear histogram
 *    of microseconds: exact below 64 us, within 1/32 (3 %) above; max is
 *    exact.  Percentiles are the nearest rank.
 *  - Per-second series over [start_ns, start_ns + seconds): sent and
 *    latency by the canary's send time, acked by ack time, delivered by
 *    the stream's stored time; times before start count in second 0,
 *    after the end in the last second.
 *  - Query functions write their out-parameters only on success and never
 *    change what they report on: call them any number of times, also
 *    while feeding continues.
 */
#ifndef EVRINGD_DRILL_CHECK_H
#define EVRINGD_DRILL_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "drill_canary.h"
#include "drill_scenario.h"

#define DRILL_CHECK_WRITERS_MAX	4096u
#define DRILL_CHECK_SECONDS_MAX	(7u * 86400)

struct drill_check;

struct drill_counts {
	uint64_t attempted;		/* acked counts as attempted too */
	uint64_t acked;
	uint64_t delivered;		/* distinct canaries in the view */
	uint64_t deliveries;		/* messages, duplicates included */
	uint64_t ok;
	uint64_t lost;			/* = prefix + middle + postfix */
	uint64_t lost_prefix;
	uint64_t lost_middle;
	uint64_t lost_postfix;
	uint64_t duplicated;		/* attempted, delivered > once */
	uint64_t recovered;
	uint64_t unknown;
	uint64_t unexpected;		/* distinct (writer, seq) not attempted */
};

struct drill_latency {
	uint64_t count;
	uint64_t p50_us;
	uint64_t p99_us;
	uint64_t max_us;
};

struct drill_second {
	uint64_t sent;			/* attempted during this second */
	uint64_t acked;
	uint64_t delivered;		/* first deliveries stored this second */
	struct drill_latency lat;	/* of canaries sent this second */
};

/*
 * A checker for @nr_regions (1..8) regions and @nr_writers (1..4096)
 * writers of drill @drill_id, whose series start at @start_ns
 * (CLOCK_REALTIME) and last @seconds (1..7 days).  -EINVAL, -ENOMEM.
 */
int drill_check_new(enum drill_mode mode, unsigned int nr_regions,
		    unsigned int nr_writers, uint64_t drill_id,
		    uint64_t start_ns, uint32_t seconds,
		    struct drill_check **out);
void drill_check_free(struct drill_check *ck);

/*
 * Writer side.  -EINVAL: writer out of range, seq UINT64_MAX or
 * first > last; -ENOMEM.
 */
int drill_check_attempt(struct drill_check *ck, unsigned int writer,
			uint64_t seq, uint64_t sent_ns);
int drill_check_ack(struct drill_check *ck, unsigned int writer,
		    uint64_t first, uint64_t last, uint64_t ack_ns);

/*
 * Read side: one message of region @region's stream.  0: counted;
 * -EBADMSG: not a canary, -ESRCH: another drill's canary (both ignored
 * and counted, see drill_check_ignored()); -EINVAL: region out of range;
 * -ENOMEM.
 */
int drill_check_payload(struct drill_check *ck, unsigned int region,
			const void *data, size_t len, uint64_t stored_ns);
/* The same with the canary already decoded. */
int drill_check_deliver(struct drill_check *ck, unsigned int region,
			const struct drill_canary *c, uint64_t stored_ns);

/* Messages ignored: not canaries, and other drills' canaries. */
void drill_check_ignored(const struct drill_check *ck, uint64_t *foreign,
			 uint64_t *other_drills);

/* Regions in replicate mode, 1 in failover mode. */
unsigned int drill_check_nr_views(const struct drill_check *ck);

/*
 * The classes of @view, for @writer or summed over all (@writer < 0, which
 * also counts deliveries from writers out of range as unexpected).
 * -EINVAL: view or writer out of range; -ENOMEM.
 */
int drill_check_counts(const struct drill_check *ck, unsigned int view,
		       int writer, struct drill_counts *out);

/* Latency of @view's deliveries over the whole run.  -EINVAL. */
int drill_check_latency(const struct drill_check *ck, unsigned int view,
			struct drill_latency *out);

/* Second @second (0-based) of @view.  -EINVAL, -ERANGE past the end. */
int drill_check_second(const struct drill_check *ck, unsigned int view,
		       uint32_t second, struct drill_second *out);

/*
 * @writer's lost canaries in @view as inclusive ranges [first, last], in
 * order: up to @max into @ranges, *nr_ranges the total (may exceed @max).
 * -EINVAL, -ENOMEM.
 */
int drill_check_lost(const struct drill_check *ck, unsigned int view,
		     unsigned int writer, uint64_t (*ranges)[2], size_t max,
		     size_t *nr_ranges);

/*
 * Nothing acknowledged lost, nothing duplicated, nothing unexpected, in
 * any view.  false also when a count could not be made (-ENOMEM).
 */
bool drill_check_passed(const struct drill_check *ck);

#endif /* EVRINGD_DRILL_CHECK_H */
