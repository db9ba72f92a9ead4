// SPDX-License-Identifier: GPL-2.0-only
/* source_kmod: see source_kmod.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include "evring.h"
#include "log.h"
#include "source_kmod.h"

struct kmod_part {
	struct drain_stream st;
	struct source_kmod *k;
	struct evring_consumer *c;
	uint64_t stage_start;		/* position of the first staged record */
	bool paused;
};

struct source_kmod {
	struct loop *loop;
	struct drain *drain;
	struct evring_nl *nl;		/* for writers_blocked; may be NULL */
	unsigned int nparts;
	struct kmod_part parts[EVRING_PARTITIONS_MAX];
};

static void kmod_fail(struct kmod_part *p, int err);

/*
 * Take what the ring holds, within the drain's bounds, onto the stream's
 * staged run.  A sequence gap ends the run: the record after it starts
 * the next commit, carrying the loss range.
 */
static int kmod_stage(struct kmod_part *p)
{
	struct drain_stream *st = &p->st;
	const struct evring_rec *rec;

	while ((rec = evring_consumer_peek(p->c))) {
		uint64_t size = EVRING_REC_SIZE(rec->len);
		uint64_t want = (st->staged_count ? st->staged_last_seq :
				 st->last_seq) + 1;

		if (rec->seq != want) {
			if (st->staged_count)
				break;	/* commit the run before the gap */
			if (rec->seq < want)
				return -EPROTO;	/* the ring went backwards */
			log_warn("device partition %u: records %llu..%llu of epoch %016llx were never spooled (released by another consumer, or lost by the spool)",
				 st->partition, (unsigned long long)want,
				 (unsigned long long)rec->seq - 1,
				 (unsigned long long)st->epoch);
			if (drain_stream_loss(st, want, rec->seq - 1,
					      "released unspooled"))
				break;
			st->last_seq = rec->seq - 1;
		}
		if (!drain_has_room(p->k->drain, 1, size))
			break;
		if (!st->staged_count) {
			p->stage_start = evring_consumer_pos(p->c);
			st->staged = evring_consumer_at(p->c, p->stage_start);
		}
		evring_consumer_next(p->c);
		st->staged_len += size;
		st->staged_count++;
		st->staged_last_seq = rec->seq;
		st->staged_end = evring_consumer_pos(p->c);
		drain_staged(p->k->drain, 1, size);
	}
	evring_consumer_mark_read(p->c);
	return 0;
}

static void kmod_on_ready(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct kmod_part *p = arg;
	int ret = kmod_stage(p);

	if (!ret)
		ret = drain_kick(p->k->drain);
	if (ret)
		kmod_fail(p, ret);
}

static void kmod_committed(struct drain_stream *st, uint64_t end,
			   uint32_t count)
{
	struct kmod_part *p = st->owner;
	int ret = evring_consumer_release(p->c, end);

	if (ret)
		kmod_fail(p, ret);
}

static void kmod_pause(struct drain_stream *st, bool paused)
{
	struct kmod_part *p = st->owner;

	p->paused = paused;
	loop_mod_fd(p->k->loop, evring_consumer_fd(p->c), paused ? 0 : LOOP_IN);
}

static const struct drain_stream_ops kmod_ops = {
	.committed = kmod_committed,
	.pause = kmod_pause,
};

/* Failing here means evringd can no longer vouch for what it releases. */
static void kmod_fail(struct kmod_part *p, int err)
{
	log_error("device partition %u: %s: stopping", p->st.partition,
		  strerror(-err));
	loop_stop(p->k->loop);
}

/*
 * Line the stream up with the spool's checkpoint (see source_kmod.h).
 * Records in [release_pos, checkpoint) are in the spool already: skip and
 * release them.
 */
static int kmod_resume(struct kmod_part *p, struct spool *s, char *err,
		       size_t errlen)
{
	const struct evring_layout *lay = evring_consumer_layout(p->c);
	struct drain_stream *st = &p->st;
	struct spool_checkpoint cp;
	const struct evring_rec *rec;
	int ret;

	ret = spool_get_checkpoint(s, BATCH_SRC_KMOD, st->partition, &cp);
	if (ret == -ENOENT) {
		st->epoch = lay->epoch;
		return 0;
	}
	if (ret)
		return ret;
	if (cp.epoch != lay->epoch) {
		st->epoch = cp.epoch;
		st->last_seq = cp.last_seq;
		drain_stream_epoch(st, lay->epoch,
				   "module reloaded: a new ring epoch");
		log_info("device partition %u: new epoch %016llx (spool had %016llx up to seq %llu)",
			 st->partition, (unsigned long long)lay->epoch,
			 (unsigned long long)cp.epoch,
			 (unsigned long long)cp.last_seq);
		return 0;
	}
	st->epoch = cp.epoch;
	st->last_seq = cp.last_seq;
	st->position = cp.position;
	if (cp.position > evring_consumer_prod_pos(p->c)) {
		snprintf(err, errlen, "device partition %u: spool checkpoint %llu is beyond the ring (%llu): the spool is not this ring's",
			 st->partition, (unsigned long long)cp.position,
			 (unsigned long long)evring_consumer_prod_pos(p->c));
		return -EPROTO;
	}
	/*
	 * A checkpoint below the release position means the spool lost
	 * commits the ring had released: kmod_stage() records the gap.
	 */
	if (cp.position <= evring_consumer_pos(p->c))
		return 0;
	while (evring_consumer_pos(p->c) < cp.position &&
	       (rec = evring_consumer_next(p->c))) {
		if (rec->seq > cp.last_seq)
			break;
	}
	if (evring_consumer_pos(p->c) != cp.position) {
		snprintf(err, errlen, "device partition %u: spool checkpoint (position %llu, seq %llu) does not match the ring's records",
			 st->partition, (unsigned long long)cp.position,
			 (unsigned long long)cp.last_seq);
		return -EPROTO;
	}
	return evring_consumer_release(p->c, cp.position);
}

int source_kmod_open(struct loop *l, struct drain *d, const char *device,
		     struct source_kmod **out, char *err, size_t errlen)
{
	struct evring_info info;
	struct source_kmod *k;
	unsigned int i;
	int fd, ret;

	fd = open(device, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot open '%s': %s", device,
			 strerror(errno));
		return ret;
	}
	ret = ioctl(fd, EVRING_IOC_INFO, &info) ? -errno : 0;
	close(fd);
	if (ret) {
		snprintf(err, errlen, "'%s' is not an evring device: %s",
			 device, strerror(-ret));
		return ret;
	}
	k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->loop = l;
	k->drain = d;
	if (evring_nl_open(&k->nl))
		k->nl = NULL;	/* status then lacks writers_blocked */

	for (i = 0; i < info.nr_partitions; i++) {
		struct kmod_part *p = &k->parts[i];

		p->k = k;
		p->st.source = BATCH_SRC_KMOD;
		p->st.partition = i;
		p->st.ops = &kmod_ops;
		p->st.owner = p;
		ret = evring_consumer_open(device, i, &p->c);
		if (ret) {
			snprintf(err, errlen, "cannot attach to partition %u of '%s': %s%s",
				 i, device, strerror(-ret),
				 ret == -EBUSY ? " (another consumer is attached)" : "");
			goto fail;
		}
		k->nparts++;
		err[0] = 0;
		ret = kmod_resume(p, drain_spool(d), err, errlen);
		if (ret) {
			if (!err[0])
				snprintf(err, errlen, "device partition %u: cannot resume: %s",
					 i, strerror(-ret));
			goto fail;
		}
		drain_add_stream(d, &p->st);
		ret = loop_add_fd(l, evring_consumer_fd(p->c), LOOP_IN,
				  kmod_on_ready, p);
		if (ret)
			goto fail;
	}
	*out = k;
	return 0;
fail:
	source_kmod_close(k);
	return ret;
}

int source_kmod_stage_all(struct source_kmod *k)
{
	int staged = 0;

	for (unsigned int i = 0; i < k->nparts; i++) {
		struct kmod_part *p = &k->parts[i];
		uint32_t before = p->st.staged_count;
		int ret = kmod_stage(p);

		if (ret)
			return ret;
		staged += p->st.staged_count - before;
	}
	return staged;
}

void source_kmod_close(struct source_kmod *k)
{
	if (!k)
		return;
	for (unsigned int i = 0; i < k->nparts; i++) {
		loop_del_fd(k->loop, evring_consumer_fd(k->parts[i].c));
		evring_consumer_close(k->parts[i].c);
	}
	evring_nl_close(k->nl);
	free(k);
}

unsigned int source_kmod_status(struct source_kmod *k,
				struct control_part_status *rows,
				unsigned int max)
{
	unsigned int i;

	for (i = 0; i < k->nparts && i < max; i++) {
		struct kmod_part *p = &k->parts[i];
		struct control_part_status *r = &rows[i];
		struct evring_part_stats ks;

		snprintf(r->source, sizeof(r->source), "device");
		r->partition = p->st.partition;
		r->epoch = p->st.epoch;
		r->ring_size = evring_consumer_layout(p->c)->data_size;
		r->read_pos = evring_consumer_pos(p->c);
		r->release_pos = evring_consumer_release_pos(p->c);
		r->ring_fill = evring_consumer_prod_pos(p->c) - r->release_pos;
		r->last_seq = p->st.last_seq;
		if (k->nl && !evring_nl_stats(k->nl, i, &ks))
			r->writers_blocked = ks.writers_blocked;
	}
	return i;
}
