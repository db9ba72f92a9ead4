/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * e2e_verdict.h: read a whole spool back through the spool API and judge
 * it.  Included by e2e.h.
 *
 *	struct e2e_spool sp = { 0 };
 *	e2e_spool_read(&sp, path);		appends; may be called per spool
 *	e2e_check_seqs(&sp, &sv);		per (source, partition, epoch)
 *	e2e_check_writers(&sp, track, true, &v);
 *	e2e_print_verdict("what", &v, &sv);
 *	e2e_spool_free(&sp);
 *
 * The verdict classifies every event a writer attempted, as Jepsen's
 * checkers do: acked must be in the spool exactly once, unknown at most
 * once, failed or never-sent never; a writer's events keep their order.
 */
#ifndef EVRING_E2E_VERDICT_H
#define EVRING_E2E_VERDICT_H

/* --- reading the spool back --------------------------------------------- */

struct e2e_rec {
	uint64_t epoch;
	uint64_t seq;
	uint64_t counter;
	uint64_t batch_id;
	uint32_t partition;
	uint32_t writer;	/* E2E_NO_WRITER: not a test event */
	uint32_t pid;
	uint16_t source;
	uint16_t spool;		/* which e2e_spool_read() call found it */
};

struct e2e_loss {
	struct spool_loss l;
	char reason[SPOOL_TEXT_MAX + 1];
};

struct e2e_note {
	struct spool_note n;
	char text[SPOOL_TEXT_MAX + 1];
};

struct e2e_spool {
	struct e2e_rec *recs;
	size_t n, cap;
	struct e2e_loss *loss;
	size_t nloss;
	struct e2e_note *notes;
	size_t nnotes;
	unsigned int nspools;
	uint64_t batches;
	uint64_t bad_batches;	/* batch_decode() refused them */
	uint64_t bad_events;	/* records whose payload is damaged */
	uint64_t batch_loss;	/* loss entries carried in batches */
	uint64_t last_id;
	uint32_t max_count;	/* the largest batch */
	char why[256];		/* the first problem seen */
};

static inline void e2e_spool_free(struct e2e_spool *sp)
{
	free(sp->recs);
	free(sp->loss);
	free(sp->notes);
	memset(sp, 0, sizeof(*sp));
}

struct e2e_walk {
	struct e2e_spool *sp;
	unsigned int index;
};

static inline int e2e_batch_cb(uint64_t id, const void *body, size_t len,
			       void *arg)
{
	struct e2e_walk *w = arg;
	struct e2e_spool *sp = w->sp;
	struct batch_view v;
	struct batch_iter it;
	struct evring_rec rec;
	const void *payload;
	int ret;

	sp->batches++;
	sp->last_id = id;
	ret = batch_decode(body, len, &v);
	if (ret) {
		if (!sp->bad_batches++)
			snprintf(sp->why, sizeof(sp->why),
				 "batch %" PRIu64 ": batch_decode: %s", id,
				 strerror(-ret));
		return 0;
	}
	if (v.meta.count > sp->max_count)
		sp->max_count = v.meta.count;
	sp->batch_loss += v.nloss;
	if (sp->n + v.meta.count > sp->cap) {
		size_t cap = sp->cap ? sp->cap : 65536;
		struct e2e_rec *r;

		while (cap < sp->n + v.meta.count)
			cap *= 2;
		r = realloc(sp->recs, cap * sizeof(*r));
		if (!r) {
			batch_view_release(&v);
			return -ENOMEM;
		}
		sp->recs = r;
		sp->cap = cap;
	}
	batch_iter_init(&it, &v);
	while ((ret = batch_iter_next(&it, &rec, &payload)) > 0) {
		struct e2e_rec *r = &sp->recs[sp->n++];

		*r = (struct e2e_rec){
			.epoch = v.meta.epoch,
			.seq = rec.seq,
			.batch_id = id,
			.partition = v.meta.partition,
			.pid = rec.pid,
			.source = v.meta.source,
			.spool = w->index,
		};
		if (e2e_ev_parse(payload, rec.len, &r->writer, &r->counter)) {
			r->writer = E2E_NO_WRITER;
			if (!sp->bad_events++ && !sp->why[0])
				snprintf(sp->why, sizeof(sp->why),
					 "batch %" PRIu64 " seq %" PRIu64 ": not an intact test event (len %u)",
					 id, (uint64_t)rec.seq, rec.len);
		}
	}
	batch_view_release(&v);
	return ret < 0 ? ret : 0;
}

static inline int e2e_loss_cb(uint64_t id, const struct spool_loss *l,
			      void *arg)
{
	struct e2e_spool *sp = arg;
	struct e2e_loss *x = realloc(sp->loss, (sp->nloss + 1) * sizeof(*x));

	if (!x)
		return -ENOMEM;
	sp->loss = x;
	x = &sp->loss[sp->nloss++];
	x->l = *l;
	snprintf(x->reason, sizeof(x->reason), "%s", l->reason ? l->reason : "");
	x->l.reason = NULL;
	return 0;
}

static inline int e2e_note_cb(uint64_t id, const struct spool_note *n,
			      void *arg)
{
	struct e2e_spool *sp = arg;
	struct e2e_note *x = realloc(sp->notes, (sp->nnotes + 1) * sizeof(*x));

	if (!x)
		return -ENOMEM;
	sp->notes = x;
	x = &sp->notes[sp->nnotes++];
	x->n = *n;
	snprintf(x->text, sizeof(x->text), "%s", n->text ? n->text : "");
	x->n.text = NULL;
	return 0;
}

/*
 * Append every batch (decoded record by record), ledger row and note of
 * the spool at @path to @sp, through a read-only spool_open().  Records
 * found are tagged with the number of this call (sp->nspools, from 0).
 */
static inline int e2e_spool_read(struct e2e_spool *sp, const char *path)
{
	struct spool_opts o = { .path = path, .read_only = true };
	struct e2e_walk w = { .sp = sp, .index = sp->nspools };
	struct spool *s;
	char err[512];
	int ret;

	ret = spool_open(&o, &s, err, sizeof(err));
	if (ret) {
		snprintf(sp->why, sizeof(sp->why), "spool_open: %s", err);
		return ret;
	}
	ret = spool_foreach_batch(s, 0, e2e_batch_cb, &w);
	if (!ret)
		ret = spool_foreach_loss(s, 0, e2e_loss_cb, sp);
	if (!ret)
		ret = spool_foreach_note(s, 0, e2e_note_cb, sp);
	spool_close(s);
	sp->nspools++;
	return ret;
}

/* Records of (@source, @partition) in @sp. */
static inline uint64_t e2e_count(const struct e2e_spool *sp,
				 unsigned int source, uint32_t partition)
{
	uint64_t n = 0;

	for (size_t i = 0; i < sp->n; i++)
		n += sp->recs[i].source == source &&
		     sp->recs[i].partition == partition;
	return n;
}

static inline int e2e_cmp_seq(const void *a, const void *b)
{
	const struct e2e_rec *x = a, *y = b;

	if (x->source != y->source)
		return x->source < y->source ? -1 : 1;
	if (x->partition != y->partition)
		return x->partition < y->partition ? -1 : 1;
	if (x->epoch != y->epoch)
		return x->epoch < y->epoch ? -1 : 1;
	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	return 0;
}

/* Spool order: the order records were committed, spool by spool. */
static inline int e2e_cmp_spool_order(const void *a, const void *b)
{
	const struct e2e_rec *x = a, *y = b;

	if (x->spool != y->spool)
		return x->spool < y->spool ? -1 : 1;
	if (x->batch_id != y->batch_id)
		return x->batch_id < y->batch_id ? -1 : 1;
	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	return 0;
}

/* Is [first, last] of (source, partition, epoch) a ledger row of @sp? */
static inline bool e2e_loss_is(const struct e2e_spool *sp, unsigned int source,
			       uint32_t partition, uint64_t epoch,
			       uint64_t first, uint64_t last)
{
	for (size_t i = 0; i < sp->nloss; i++) {
		const struct spool_loss *l = &sp->loss[i].l;

		if (l->source == source && l->partition == partition &&
		    l->epoch == epoch && l->first_seq == first &&
		    l->last_seq == last)
			return true;
	}
	return false;
}

/* What e2e_check_seqs() found. */
struct e2e_seq_verdict {
	unsigned int runs;	/* (source, partition, epoch) with records */
	uint64_t dups;		/* the same seq twice */
	uint64_t gaps;		/* seqs missing, not covered by the ledger */
	uint64_t covered;	/* seqs missing, exactly a ledger row */
	char why[256];
};

/*
 * Per (source, partition, epoch): seqs run 1, 2, 3, ... with no seq twice;
 * a run of missing seqs counts as covered when it is exactly a ledger row
 * of @sp (as released-unspooled losses are), as a gap otherwise.  Sorts
 * sp->recs.
 */
static inline void e2e_check_seqs(struct e2e_spool *sp,
				  struct e2e_seq_verdict *v)
{
	memset(v, 0, sizeof(*v));
	qsort(sp->recs, sp->n, sizeof(*sp->recs), e2e_cmp_seq);
	for (size_t i = 0; i < sp->n; i++) {
		const struct e2e_rec *r = &sp->recs[i];
		const struct e2e_rec *p = i ? &sp->recs[i - 1] : NULL;
		uint64_t want = 1;

		if (p && p->source == r->source &&
		    p->partition == r->partition && p->epoch == r->epoch)
			want = p->seq + 1;
		else
			v->runs++;
		if (r->seq == want)
			continue;
		if (r->seq < want) {
			if (!v->dups++ && !v->why[0])
				snprintf(v->why, sizeof(v->why),
					 "source %u partition %u epoch %016" PRIx64 ": seq %" PRIu64 " twice",
					 r->source, r->partition, r->epoch,
					 r->seq);
			continue;
		}
		if (e2e_loss_is(sp, r->source, r->partition, r->epoch, want,
				r->seq - 1)) {
			v->covered += r->seq - want;
			continue;
		}
		if (!v->gaps && !v->why[0])
			snprintf(v->why, sizeof(v->why),
				 "source %u partition %u epoch %016" PRIx64 ": seqs %" PRIu64 "..%" PRIu64 " missing",
				 r->source, r->partition, r->epoch, want,
				 r->seq - 1);
		v->gaps += r->seq - want;
	}
}

/* The classification of every attempted event (see the head comment). */
struct e2e_verdict {
	uint64_t acked;		/* acked and spooled exactly once */
	uint64_t lost;		/* acked, not in the spool */
	uint64_t doubled;	/* in the spool more than once */
	uint64_t unexpected;	/* spooled but failed, never sent, or foreign */
	uint64_t unknown_in;	/* outcome unknown, spooled once */
	uint64_t unknown_out;	/* outcome unknown, not spooled */
	uint64_t disordered;	/* a writer's events out of order */
	uint64_t wrong_pid;	/* rec.pid is not the writer's pid */
	char why[256];
};

static inline void e2e_why(char *why, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static inline void e2e_why(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (why[0])
		return;
	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
}

/*
 * Judge @sp against what @t says was attempted.  @check_pid: rec.pid must
 * be the writer's pid (a single-process writer).  Sorts sp->recs.
 */
static inline int e2e_check_writers(struct e2e_spool *sp,
				    const struct e2e_track *t, bool check_pid,
				    struct e2e_verdict *v)
{
	uint64_t last[E2E_WRITERS_MAX];
	size_t cells = (size_t)t->nwriters * t->cap;
	uint8_t *seen = calloc(cells ? cells : 1, 1);

	memset(v, 0, sizeof(*v));
	if (!seen)
		return -ENOMEM;
	memset(last, 0xff, sizeof(last));
	qsort(sp->recs, sp->n, sizeof(*sp->recs), e2e_cmp_spool_order);
	for (size_t i = 0; i < sp->n; i++) {
		const struct e2e_rec *r = &sp->recs[i];
		uint8_t *s;

		if (r->writer >= t->nwriters || r->counter >= t->cap) {
			v->unexpected++;
			e2e_why(v->why, sizeof(v->why),
				"partition %u seq %" PRIu64 ": not from a test writer",
				r->partition, r->seq);
			continue;
		}
		s = &seen[(size_t)r->writer * t->cap + r->counter];
		if (*s < 255)
			(*s)++;
		if (last[r->writer] != UINT64_MAX && r->counter <= last[r->writer]) {
			v->disordered++;
			e2e_why(v->why, sizeof(v->why),
				"writer %u: counter %" PRIu64 " spooled after %" PRIu64,
				r->writer, r->counter, last[r->writer]);
		}
		last[r->writer] = r->counter;
		if (check_pid && r->pid != (uint32_t)t->w[r->writer].pid) {
			v->wrong_pid++;
			e2e_why(v->why, sizeof(v->why),
				"writer %u counter %" PRIu64 ": pid %u, expected %d",
				r->writer, r->counter, r->pid,
				(int)t->w[r->writer].pid);
		}
	}
	for (uint32_t w = 0; w < t->nwriters; w++) {
		for (uint64_t c = 0; c < t->cap; c++) {
			uint8_t n = seen[(size_t)w * t->cap + c];
			uint8_t st = t->state[(size_t)w * t->cap + c];

			if (n > 1) {
				v->doubled++;
				e2e_why(v->why, sizeof(v->why),
					"writer %u counter %" PRIu64 ": spooled %u times",
					w, c, n);
			}
			switch (st) {
			case E2E_ACKED:
				if (n)
					v->acked++;
				else
					v->lost++;
				if (!n)
					e2e_why(v->why, sizeof(v->why),
						"writer %u counter %" PRIu64 ": acked, not spooled",
						w, c);
				break;
			case E2E_SENT:
				if (n)
					v->unknown_in++;
				else
					v->unknown_out++;
				break;
			default:
				if (n) {
					v->unexpected++;
					e2e_why(v->why, sizeof(v->why),
						"writer %u counter %" PRIu64 ": spooled but %s",
						w, c, st == E2E_FAILED ?
						"its write failed" : "never written");
				}
			}
		}
	}
	free(seen);
	return 0;
}

/* The whole verdict on one line, for the log. */
static inline void e2e_print_verdict(const char *what,
				     const struct e2e_verdict *v,
				     const struct e2e_seq_verdict *s)
{
	e2e_msg("%s: acked %" PRIu64 " lost %" PRIu64 " doubled %" PRIu64
	       " unexpected %" PRIu64 " unknown %" PRIu64 " (spooled %" PRIu64
	       ", not %" PRIu64 ") disordered %" PRIu64 " wrong_pid %" PRIu64
	       "; seq runs %u dups %" PRIu64 " gaps %" PRIu64 " covered %" PRIu64
	       "%s%s%s%s",
	       what, v->acked, v->lost, v->doubled, v->unexpected,
	       v->unknown_in + v->unknown_out, v->unknown_in, v->unknown_out,
	       v->disordered, v->wrong_pid, s->runs, s->dups, s->gaps,
	       s->covered, v->why[0] ? "; " : "", v->why,
	       s->why[0] ? "; " : "", s->why);
}

#endif /* EVRING_E2E_VERDICT_H */
