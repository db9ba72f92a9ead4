// SPDX-License-Identifier: GPL-2.0-only
/*
 * drain: group commit of every source's staged records into the spool, and
 * the only place that decides when records may be released.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "drain.h"
#include "failpoint.h"
#include "log.h"

struct drain {
	struct loop *loop;
	struct spool *spool;
	char host_id[BATCH_HOST_ID_MAX + 1];
	uint32_t max_records;
	uint64_t max_bytes;
	uint32_t batch_ms;

	struct drain_stream *streams;
	unsigned int nstreams;
	uint32_t staged_records;	/* over every stream */
	uint64_t staged_bytes;
	uint64_t timer;			/* pending commit or retry, or 0 */
	bool paused;
	int full_err;			/* -EDQUOT or -ENOSPC while paused;
					 * -EAGAIN: reopened after ENOSPC,
					 * commit at the next retry */
	uint64_t records_in, bytes_in, batches_in;
	void (*on_commit)(void *arg);
	void *on_commit_arg;
};

static int drain_commit(struct drain *d);

int drain_new(struct loop *l, struct spool *s, const struct evd_config *c,
	      struct drain **out)
{
	struct drain *d;

	if (strlen(c->host_id) > BATCH_HOST_ID_MAX)
		return -ENAMETOOLONG;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->loop = l;
	d->spool = s;
	snprintf(d->host_id, sizeof(d->host_id), "%s", c->host_id);
	drain_reconfigure(d, c);
	*out = d;
	return 0;
}

void drain_free(struct drain *d)
{
	if (!d)
		return;
	if (d->timer)
		loop_cancel_timer(d->loop, d->timer);
	free(d);
}

/* What a batch adds to its records: header and a full loss section. */
#define DRAIN_BATCH_OVERHEAD	(BATCH_HDR_LEN + DRAIN_LOSS_MAX * BATCH_LOSS_SIZE)

/*
 * A commit never exceeds a quarter of the spool's bound (so it can always
 * fit once the spool drains) nor half a batch body: whatever the bounds
 * configured, no commit can fail for its size alone.  When shipping, each
 * encoded batch also fits ship.max_message (one batch is one message); a
 * single record larger than that still goes alone, and the shipper
 * dead-letters it with the reason.
 */
void drain_reconfigure(struct drain *d, const struct evd_config *c)
{
	uint64_t cap = c->spool_max_bytes / 4;

	if (cap > BATCH_BODY_MAX / 2)
		cap = BATCH_BODY_MAX / 2;
	if (c->nr_regions) {
		uint64_t msg = c->ship_max_message > DRAIN_BATCH_OVERHEAD ?
			       c->ship_max_message - DRAIN_BATCH_OVERHEAD : 1;

		if (cap > msg)
			cap = msg;
	}
	spool_set_max_bytes(d->spool, c->spool_max_bytes);
	d->max_records = c->drain_batch_records;
	d->max_bytes = c->drain_batch_bytes < cap ? c->drain_batch_bytes : cap;
	d->batch_ms = c->drain_batch_ms;
}

void drain_set_on_commit(struct drain *d, void (*cb)(void *arg), void *arg)
{
	d->on_commit = cb;
	d->on_commit_arg = arg;
}

void drain_add_stream(struct drain *d, struct drain_stream *st)
{
	struct drain_stream **pp = &d->streams;

	while (*pp)
		pp = &(*pp)->next;
	st->next = NULL;
	*pp = st;
	d->nstreams++;
}

struct drain_stream *drain_streams(const struct drain *d)
{
	return d->streams;
}

struct spool *drain_spool(const struct drain *d)
{
	return d->spool;
}

bool drain_has_room(const struct drain *d, uint32_t records, size_t bytes)
{
	if (d->paused)
		return false;
	/* Always room for one record in an empty commit. */
	if (!d->staged_records)
		return true;
	return d->staged_records + records <= d->max_records &&
	       d->staged_bytes + bytes <= d->max_bytes;
}

void drain_staged(struct drain *d, uint32_t records, size_t bytes)
{
	d->staged_records += records;
	d->staged_bytes += bytes;
}

int drain_stream_loss(struct drain_stream *st, uint64_t first_seq,
		      uint64_t last_seq, const char *reason)
{
	struct batch_loss *l;

	if (st->nloss == DRAIN_LOSS_MAX)
		return -ENOSPC;
	l = &st->loss[st->nloss++];
	memset(l, 0, sizeof(*l));
	l->source = st->source;
	l->partition = st->partition;
	l->epoch = st->epoch;
	l->first_seq = first_seq;
	l->last_seq = last_seq;
	snprintf(l->reason, sizeof(l->reason), "%s", reason);
	return 0;
}

void drain_stream_epoch(struct drain_stream *st, uint64_t new_epoch,
			const char *why)
{
	snprintf(st->note_text, sizeof(st->note_text), "%s", why);
	st->note = (struct spool_note){
		.source = st->source,
		.partition = st->partition,
		.old_epoch = st->epoch,
		.new_epoch = new_epoch,
		.text = st->note_text,
	};
	st->has_note = true;
	st->epoch = new_epoch;
	st->last_seq = 0;
}

static void drain_pause(struct drain *d, bool paused)
{
	struct drain_stream *st;

	if (d->paused == paused)
		return;
	d->paused = paused;
	for (st = d->streams; st; st = st->next)
		st->ops->pause(st, paused);
}

static void drain_on_timer(struct loop *l, uint64_t id, void *arg)
{
	struct drain *d = arg;
	int ret;

	d->timer = 0;
	ret = drain_commit(d);
	if (ret == -EIO) {
		log_error("stopping: the spool can no longer be trusted");
		loop_stop(l);
	}
}

static void drain_arm(struct drain *d, uint64_t ms)
{
	if (d->timer)
		return;
	if (loop_add_timer(d->loop, ms, 0, drain_on_timer, d, &d->timer))
		d->timer = 0;
}

static void drain_tally(struct drain *d)
{
	struct drain_stream *st;

	d->staged_records = 0;
	d->staged_bytes = 0;
	for (st = d->streams; st; st = st->next) {
		d->staged_records += st->staged_count;
		d->staged_bytes += st->staged_len;
	}
}

int drain_kick(struct drain *d)
{
	bool pending = false;
	struct drain_stream *st;

	drain_tally(d);
	for (st = d->streams; st; st = st->next)
		pending |= st->staged_count || st->nloss || st->has_note;
	if (!pending || d->paused)
		return 0;
	if (!d->batch_ms || d->staged_records >= d->max_records ||
	    d->staged_bytes >= d->max_bytes)
		return drain_commit(d);
	drain_arm(d, d->batch_ms);
	return 0;
}

int drain_flush(struct drain *d)
{
	drain_tally(d);
	return drain_commit(d);
}

/* Reopen the spool after ENOSPC: the handle refuses writes until then. */
static int drain_reopen(struct drain *d)
{
	char err[512];
	int ret = spool_reopen(d->spool, err, sizeof(err));

	if (ret)
		log_error("cannot reopen spool: %s", err);
	return ret;
}

struct drain_txn {
	struct spool_append *app;
	void **bufs;
	struct spool_loss *loss;
	struct spool_note *notes;
	unsigned int n, nloss, nnotes;
};

static void drain_txn_free(struct drain_txn *t)
{
	for (unsigned int i = 0; i < t->n; i++)
		free(t->bufs[i]);
	free(t->app);
	free(t->bufs);
	free(t->loss);
	free(t->notes);
}

/* Encode every stream's staged records into the transaction. */
static int drain_txn_build(struct drain *d, struct drain_txn *t)
{
	unsigned int cap = d->nstreams ? d->nstreams : 1;
	struct drain_stream *st;
	int ret;

	memset(t, 0, sizeof(*t));
	t->app = calloc(cap, sizeof(*t->app));
	t->bufs = calloc(cap, sizeof(*t->bufs));
	t->loss = calloc(cap * DRAIN_LOSS_MAX, sizeof(*t->loss));
	t->notes = calloc(cap, sizeof(*t->notes));
	if (!t->app || !t->bufs || !t->loss || !t->notes)
		return -ENOMEM;

	for (st = d->streams; st; st = st->next) {
		if (st->has_note)
			t->notes[t->nnotes++] = st->note;
		for (unsigned int i = 0; i < st->nloss; i++)
			t->loss[t->nloss++] = (struct spool_loss){
				.source = st->loss[i].source,
				.partition = st->loss[i].partition,
				.epoch = st->loss[i].epoch,
				.first_seq = st->loss[i].first_seq,
				.last_seq = st->loss[i].last_seq,
				.reason = st->loss[i].reason,
			};
		if (!st->staged_count)
			continue;
		struct batch_meta m = {
			.source = st->source,
			.partition = st->partition,
			.epoch = st->epoch,
			.first_seq = ((const struct evring_rec *)st->staged)->seq,
			.count = st->staged_count,
		};
		unsigned int i = t->n;
		size_t len;

		memcpy(m.host_id, d->host_id, sizeof(m.host_id));
		ret = batch_encode(&m, st->staged, st->staged_len, st->loss,
				   st->nloss, BATCH_COMP_NONE, &t->bufs[i], &len);
		if (ret)
			return ret;
		t->app[i] = (struct spool_append){
			.batch = t->bufs[i],
			.len = len,
			.position = st->staged_end,
		};
		t->n++;
	}
	return 0;
}

/* The transaction is durable: move every stream on, then tell its source. */
static void drain_committed(struct drain *d)
{
	struct drain_stream *st;

	for (st = d->streams; st; st = st->next) {
		uint32_t count = st->staged_count;
		uint64_t end = st->staged_end;

		if (count) {
			st->last_seq = st->staged_last_seq;
			st->position = end;
			d->records_in += count;
			d->bytes_in += st->staged_len;
		}
		st->staged = NULL;
		st->staged_len = 0;
		st->staged_count = 0;
		st->nloss = 0;
		st->has_note = false;
		if (count)
			st->ops->committed(st, end, count);
	}
	d->staged_records = 0;
	d->staged_bytes = 0;
}

static int drain_commit(struct drain *d)
{
	unsigned int added = 0;
	struct drain_txn t;
	int ret, injected = 0;

	if (d->timer) {
		loop_cancel_timer(d->loop, d->timer);
		d->timer = 0;
	}
	if (d->full_err == -ENOSPC) {
		/*
		 * Reopen now, commit at the next retry: in between, the
		 * shipper's trims go through the fresh handle (a commit that
		 * hits ENOSPC again would fail it for them too).
		 */
		if (!drain_reopen(d))
			d->full_err = -EAGAIN;
		goto full;
	}
	ret = drain_txn_build(d, &t);
	if (!ret && (t.n || t.nloss || t.nnotes)) {
		/* "error": as if the disk failed under the commit. */
		ret = failpoint(FP_DRAIN_BEFORE_COMMIT);
		injected = ret;
		if (!ret)
			ret = spool_commit(d->spool, t.app, t.n, t.loss,
					   t.nloss, t.notes, t.nnotes);
		/* Durable, nothing released or acknowledged yet. */
		if (!ret)
			failpoint(FP_DRAIN_AFTER_COMMIT);
	}
	if (!ret)
		added = t.n;
	drain_txn_free(&t);
	if (!ret) {
		if (d->paused)
			log_info("spool has room again: draining resumes");
		d->full_err = 0;
		d->batches_in += added;
		drain_pause(d, false);
		drain_committed(d);
		if (added && d->on_commit)
			d->on_commit(d->on_commit_arg);
		return 0;
	}
	if (ret == -EDQUOT || ret == -ENOSPC) {
		if (!d->paused)
			log_error("spool full (%s): draining stops, writers will block; nothing is dropped",
				  ret == -EDQUOT ? "spool.max_bytes reached" :
				  "file system full");
		d->full_err = ret;
		goto full;
	}
	log_error("spool commit failed: %s (%s)", strerror(-ret),
		  injected ? "failpoint drain.before_commit" :
		  spool_strerror(d->spool));
	return -EIO;
full:
	drain_pause(d, true);
	drain_arm(d, DRAIN_RETRY_MS);
	return d->full_err == -EAGAIN ? -ENOSPC : d->full_err;
}

enum control_state drain_state(const struct drain *d)
{
	return d->paused ? CONTROL_STATE_SPOOL_FULL : CONTROL_STATE_DRAINING;
}

void drain_counters(const struct drain *d, struct control_counters *out)
{
	out->records_in = d->records_in;
	out->bytes_in = d->bytes_in;
	out->batches_in = d->batches_in;
}
