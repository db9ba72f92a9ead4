/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * drain: group commit from the sources into the spool.
 *
 * Every (source, partition) is a struct drain_stream.  A source stages
 * records in its stream - contiguous bytes laid out as in the ring, which
 * must stay valid and unchanged until committed - and calls drain_kick().
 * The drain commits every stream's staged records, loss ranges and notes in
 * ONE spool transaction, with each stream's checkpoint, as soon as a bound
 * is reached (drain.batch_records, drain.batch_bytes) or drain.batch_ms
 * after the first record was staged.  Only after that transaction returned
 * does it call each stream's committed(), where the source releases its
 * ring or acknowledges its clients: nothing is released before it is
 * durable.
 *
 * When the spool is full (its configured bound, or the disk) the drain
 * pauses every stream (the sources stop taking records, so rings fill and
 * writers block) and retries every DRAIN_RETRY_MS; it never evicts
 * anything.  Room comes back when the shipper trims what every region has
 * (spool_ship_commit()), so draining resumes at most DRAIN_RETRY_MS after
 * that trim.
 *
 * With regions configured, one commit's records stay within
 * ship.max_message less the batch header and loss section, so that each
 * of its batches fits one JetStream message.  An I/O error from
 * the spool is fatal: drain_kick() and drain_flush() return -EIO and the
 * caller must stop without releasing anything more.
 */
#ifndef EVRINGD_DRAIN_H
#define EVRINGD_DRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "batch.h"
#include "config.h"
#include "control.h"
#include "loop.h"
#include "spool.h"

#define DRAIN_LOSS_MAX	8	/* loss ranges staged per stream */
#define DRAIN_RETRY_MS	200	/* while the spool is full */

struct drain;
struct drain_stream;

struct drain_stream_ops {
	/* The staged records are durable; staging is already cleared. */
	void (*committed)(struct drain_stream *st, uint64_t end_position,
			  uint32_t count);
	/* Stop taking records (paused) or take them again (!paused). */
	void (*pause)(struct drain_stream *st, bool paused);
};

struct drain_stream {
	unsigned int source;		/* BATCH_SRC_* */
	uint32_t partition;
	const struct drain_stream_ops *ops;
	void *owner;			/* the source's own state */

	/* Spooled: as of the last commit (from the checkpoint at start). */
	uint64_t epoch;
	uint64_t last_seq;
	uint64_t position;

	/* Staged by the source since the last commit. */
	const void *staged;		/* records, ring layout */
	size_t staged_len;
	uint32_t staged_count;
	uint64_t staged_end;		/* source position after them */
	uint64_t staged_last_seq;
	struct batch_loss loss[DRAIN_LOSS_MAX];
	unsigned int nloss;
	bool has_note;
	struct spool_note note;
	char note_text[SPOOL_TEXT_MAX];

	struct drain_stream *next;	/* private */
};

int drain_new(struct loop *l, struct spool *s, const struct evd_config *c,
	      struct drain **out);
void drain_free(struct drain *d);

/* Register a stream; it must outlive the drain. */
void drain_add_stream(struct drain *d, struct drain_stream *st);

/* May a source stage @records more records of @bytes more bytes now? */
bool drain_has_room(const struct drain *d, uint32_t records, size_t bytes);

/* A source staged @records more records of @bytes: counts toward the bounds. */
void drain_staged(struct drain *d, uint32_t records, size_t bytes);

/*
 * Staging changed: commit now when a bound is reached, else make sure a
 * commit happens within batch_ms.  0, or a fatal -errno (-EIO).
 */
int drain_kick(struct drain *d);

/* Commit whatever is staged now.  0, -EDQUOT/-ENOSPC (paused), -EIO. */
int drain_flush(struct drain *d);

/* Record a range of lost sequence numbers on @st, for the next commit. */
int drain_stream_loss(struct drain_stream *st, uint64_t first_seq,
		      uint64_t last_seq, const char *reason);

/* Record an epoch change on @st, for the next commit. */
void drain_stream_epoch(struct drain_stream *st, uint64_t new_epoch,
			const char *why);

/*
 * Call @cb(@arg) after every commit that added batches to the spool (on
 * the loop's thread, after the sources were told); NULL: none.  evringd
 * kicks the shipper from here.
 */
void drain_set_on_commit(struct drain *d, void (*cb)(void *arg), void *arg);

/* Adopt the live drain.* keys (and ship.max_message) after SIGHUP. */
void drain_reconfigure(struct drain *d, const struct evd_config *c);

enum control_state drain_state(const struct drain *d);
void drain_counters(const struct drain *d, struct control_counters *out);

/* The spool the drain writes (it may have been reopened after ENOSPC). */
struct spool *drain_spool(const struct drain *d);

/* The first stream, then ->next: for status. */
struct drain_stream *drain_streams(const struct drain *d);

#endif /* EVRINGD_DRAIN_H */
