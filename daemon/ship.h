/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * ship: delivers spooled batches to the configured regions (docs/SHIPPING.md).
 * Runs on the event loop's thread and shares the drain's struct spool; the
 * network work happens in jetstream.c's threads.
 *
 *	ship_new(loop, spool, &cfg, &sh, err, sizeof(err));	0 regions: a
 *								no-op shipper
 *	drain commits  -> ship_kick(sh)		new batches to look at
 *	SIGHUP         -> ship_reconfigure(sh, &cfg)
 *	SIGTERM        -> ship_free(sh)		in-flight publishes are
 *						reconciled at the next start
 *
 * Per (region, partition) one message is in flight at a time: one spooled
 * batch, or several waiting ones merged into one batch (docs/SHIPPING.md,
 * "Coalescing"), published with message id
 * "<host>/<source>-<partition>/<epoch>/<first_seq>" of its first row and the
 * expected last subject sequence of the region's stream, so the stream
 * refuses anything that would double or reorder a partition; across
 * partitions a region has up to its AIMD window of messages in flight.
 * After an ambiguous outcome (deadline, broken connection, wrong last
 * sequence) nothing more is sent to that partition until the stream was
 * asked what it holds (JS_OP_LAST); in failover mode a copy found there
 * of a batch another region holds is deleted.  Cursors move in the spool
 * only contiguously and in the transaction that trims what no region
 * needs; nothing but an acknowledgement, a reconcile or an acknowledged
 * dead-letter marker moves one.  Regions are "durable" only with >= 3
 * stream replicas (JetStream acknowledges before it fsyncs).
 */
#ifndef EVRINGD_SHIP_H
#define EVRINGD_SHIP_H

#include <stdbool.h>
#include <stdint.h>
#include "config.h"
#include "loop.h"
#include "spool.h"

struct ship;

int ship_new(struct loop *l, struct spool *s, const struct evd_config *c,
	     struct ship **out, char *err, size_t errlen);
void ship_free(struct ship *sh);
/* New batches were committed to the spool. */
void ship_kick(struct ship *sh);
/* Live keys of [ship] changed (regions themselves are fixed). */
void ship_reconfigure(struct ship *sh, const struct evd_config *c);

/* Per region, for evringctl status and /metrics. */
struct ship_region_status {
	char name[SPOOL_REGION_MAX + 1];
	bool connected;
	bool durable;			/* stream replicated (>= 3) */
	bool parked;			/* replicate mode: beyond lag_limit */
	unsigned int replicas;
	const char *breaker;		/* "closed" / "open" / "half-open" */
	uint64_t breaker_opened;	/* times */
	unsigned int window;		/* AIMD */
	unsigned int inflight;
	uint64_t lag_batches;		/* spooled, not yet delivered here */
	uint64_t lag_events;
	uint64_t lag_ms;		/* age of the oldest undelivered batch */
	uint64_t shipped_batches;
	uint64_t shipped_events;
	uint64_t shipped_bytes;
	uint64_t retries;
	uint64_t duplicates;		/* acks that said "duplicate" */
	uint64_t reconciles;
	uint64_t dead_lettered;
	uint64_t gaps;			/* parked: continued after a trim */
	uint64_t ack_p50_us, ack_p99_us;	/* recent window */
	unsigned int home_partitions;	/* failover: partitions routed here */
	char last_error[200];
};

/* How many regions are configured. */
unsigned int ship_nregions(const struct ship *sh);
int ship_region_status(const struct ship *sh, unsigned int i,
		       struct ship_region_status *out);

/*
 * Dead letters: replay sends the batch back through the normal path (to
 * its region, or in failover mode to its partition's current region) and
 * removes it from the table once delivered; purge removes it unsent.
 * -ENOENT: no such dead letter; replay: -EALREADY when already queued,
 * -ESRCH when its region is no longer configured; purge: -EBUSY while its
 * replay is in flight.
 */
int ship_dlq_replay(struct ship *sh, uint64_t dead_id);
int ship_dlq_purge(struct ship *sh, uint64_t dead_id);

/*
 * Spool-to-region latency histogram (a batch's created_ns in the spool ->
 * acknowledged by a region; every region's acks), for /metrics: cumulative
 * counts per bucket bound in us.
 */
#define SHIP_LAT_BUCKETS	16
struct ship_latency {
	uint64_t le_us[SHIP_LAT_BUCKETS];	/* last is UINT64_MAX (+Inf) */
	uint64_t count[SHIP_LAT_BUCKETS];
	uint64_t sum_us;
	uint64_t n;
};
void ship_latency(const struct ship *sh, struct ship_latency *out);

#endif /* EVRINGD_SHIP_H */
