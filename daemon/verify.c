// SPDX-License-Identifier: GPL-2.0-only
/*
 * verify: the stream verifier (see verify.h for the contract).
 *
 * Every set of seqs is a struct ivset: sorted, disjoint, non-adjacent
 * closed intervals.  Streams are read in order, so nearly every add
 * extends the last interval; holes cost one interval each.  What depends
 * on everything (gaps, their explanations, which reorders a replay
 * excuses) is computed when asked, from the sets, so the order in which
 * regions and markers arrive does not change the verdict.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "verify.h"

/* --- interval sets --------------------------------------------------- */

struct iv {
	uint64_t a, b;		/* [a, b], a <= b */
};

struct ivset {
	struct iv *v;
	size_t n, cap;
};

static void ivset_release(struct ivset *s)
{
	free(s->v);
	memset(s, 0, sizeof(*s));
}

static int grow(void **p, size_t *cap, size_t need, size_t size)
{
	size_t ncap;
	void *np;

	if (need <= *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 4;
	while (ncap < need)
		ncap *= 2;
	np = realloc(*p, ncap * size);
	if (!np)
		return -ENOMEM;
	*p = np;
	*cap = ncap;
	return 0;
}

/* Index of the first interval with b >= x (s->n when none). */
static size_t ivset_find(const struct ivset *s, uint64_t x)
{
	size_t lo = 0, hi = s->n;

	/* The common case: at or past the last interval. */
	if (s->n && s->v[s->n - 1].b < x)
		return s->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->v[mid].b < x)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Add [a, b], merging with overlapping and adjacent intervals. */
static int ivset_add(struct ivset *s, uint64_t a, uint64_t b)
{
	size_t i, j;
	uint64_t na = a, nb = b;

	i = ivset_find(s, a ? a - 1 : 0);
	j = i;
	while (j < s->n && (s->v[j].a <= b ||
			    (b != UINT64_MAX && s->v[j].a == b + 1))) {
		if (s->v[j].a < na)
			na = s->v[j].a;
		if (s->v[j].b > nb)
			nb = s->v[j].b;
		j++;
	}
	if (i == j) {
		if (grow((void **)&s->v, &s->cap, s->n + 1, sizeof(*s->v)))
			return -ENOMEM;
		memmove(s->v + i + 1, s->v + i, (s->n - i) * sizeof(*s->v));
		s->n++;
	} else if (j - i > 1) {
		memmove(s->v + i + 1, s->v + j, (s->n - j) * sizeof(*s->v));
		s->n -= j - i - 1;
	}
	s->v[i] = (struct iv){ na, nb };
	return 0;
}

static uint64_t ivset_total(const struct ivset *s)
{
	uint64_t t = 0;

	for (size_t i = 0; i < s->n; i++)
		t += s->v[i].b - s->v[i].a + 1;
	return t;
}

/*
 * A walk over [a, b] in maximal pieces that are wholly inside or wholly
 * outside a set, in order.
 */
struct ivwalk {
	const struct ivset *s;
	size_t i;
	uint64_t cur, end;
	bool done;
};

static void ivwalk_init(struct ivwalk *w, const struct ivset *s, uint64_t a,
			uint64_t b)
{
	w->s = s;
	w->i = ivset_find(s, a);
	w->cur = a;
	w->end = b;
	w->done = a > b;
}

static bool ivwalk_next(struct ivwalk *w, bool *in, uint64_t *x, uint64_t *y)
{
	const struct ivset *s = w->s;
	uint64_t e;

	if (w->done)
		return false;
	if (w->i < s->n && s->v[w->i].a <= w->cur) {
		*in = true;
		e = s->v[w->i].b < w->end ? s->v[w->i].b : w->end;
		w->i++;
	} else {
		*in = false;
		e = w->i < s->n && s->v[w->i].a - 1 < w->end ?
			s->v[w->i].a - 1 : w->end;
	}
	*x = w->cur;
	*y = e;
	if (e == w->end)
		w->done = true;
	else
		w->cur = e + 1;
	return true;
}

/* --- the verifier ---------------------------------------------------- */

/* A range one message showed: a duplicate or a reorder. */
struct event {
	uint64_t first, last;
	unsigned int region;
	uint64_t stream_seq;
};

/* A range with a reason: a loss entry or a dead-letter marker. */
struct note {
	uint64_t first, last;
	unsigned int region;		/* markers */
	uint64_t stream_seq;		/* markers */
	char *reason;
};

/* Per (region, partition): how far that stream went. */
struct stream_pos {
	unsigned int region;
	uint64_t max_seq;
};

struct vpart {
	struct verify_part pub;		/* key; counters set at add time */
	struct ivset seen, ledger, dead, expect;
	struct event *dups, *reorders;
	size_t ndups, cap_dups, nreorders, cap_reorders;
	struct note *losses, *markers;
	size_t nlosses, cap_losses, nmarkers, cap_markers;
	struct stream_pos *streams;
	size_t nstreams, cap_streams;
};

struct verify {
	struct vpart **parts;		/* sorted by key */
	size_t nparts, cap_parts;
	char **regions;
	size_t nregions, cap_regions;
};

int verify_new(struct verify **out)
{
	struct verify *v = calloc(1, sizeof(*v));

	if (!v)
		return -ENOMEM;
	*out = v;
	return 0;
}

static void vpart_free(struct vpart *p)
{
	ivset_release(&p->seen);
	ivset_release(&p->ledger);
	ivset_release(&p->dead);
	ivset_release(&p->expect);
	free(p->dups);
	free(p->reorders);
	for (size_t i = 0; i < p->nlosses; i++)
		free(p->losses[i].reason);
	for (size_t i = 0; i < p->nmarkers; i++)
		free(p->markers[i].reason);
	free(p->losses);
	free(p->markers);
	free(p->streams);
	free(p);
}

void verify_free(struct verify *v)
{
	if (!v)
		return;
	for (size_t i = 0; i < v->nparts; i++)
		vpart_free(v->parts[i]);
	for (size_t i = 0; i < v->nregions; i++)
		free(v->regions[i]);
	free(v->parts);
	free(v->regions);
	free(v);
}

static bool valid_host(const char *host)
{
	size_t n;

	if (!host)
		return false;
	n = strnlen(host, BATCH_HOST_ID_MAX + 1);
	return n >= 1 && n <= BATCH_HOST_ID_MAX;
}

static bool valid_region(const char *region)
{
	size_t n;

	if (!region)
		return false;
	n = strnlen(region, VERIFY_REGION_MAX + 1);
	return n >= 1 && n <= VERIFY_REGION_MAX;
}

/* [first, first + count - 1] does not wrap; count >= 1. */
static bool valid_range(uint64_t first, uint64_t count)
{
	return first >= 1 && count >= 1 && first - 1 <= UINT64_MAX - count;
}

static int region_index(struct verify *v, const char *name, unsigned int *out)
{
	char *copy;

	for (size_t i = 0; i < v->nregions; i++) {
		if (!strcmp(v->regions[i], name)) {
			*out = i;
			return 0;
		}
	}
	if (grow((void **)&v->regions, &v->cap_regions, v->nregions + 1,
		 sizeof(*v->regions)))
		return -ENOMEM;
	copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	v->regions[v->nregions] = copy;
	*out = v->nregions++;
	return 0;
}

static int key_cmp(const struct verify_part *p, const char *host,
		   unsigned int source, uint32_t partition, uint64_t epoch)
{
	int c = strcmp(p->host, host);

	if (c)
		return c;
	if (p->source != source)
		return p->source < source ? -1 : 1;
	if (p->partition != partition)
		return p->partition < partition ? -1 : 1;
	if (p->epoch != epoch)
		return p->epoch < epoch ? -1 : 1;
	return 0;
}

/* The partition of the key, created when missing. */
static int part_get(struct verify *v, const char *host, unsigned int source,
		    uint32_t partition, uint64_t epoch, struct vpart **out)
{
	size_t lo = 0, hi = v->nparts;
	struct vpart *p;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = key_cmp(&v->parts[mid]->pub, host, source, partition,
				epoch);

		if (!c) {
			*out = v->parts[mid];
			return 0;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (grow((void **)&v->parts, &v->cap_parts, v->nparts + 1,
		 sizeof(*v->parts)))
		return -ENOMEM;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	strcpy(p->pub.host, host);
	p->pub.source = source;
	p->pub.partition = partition;
	p->pub.epoch = epoch;
	memmove(v->parts + lo + 1, v->parts + lo,
		(v->nparts - lo) * sizeof(*v->parts));
	v->parts[lo] = p;
	v->nparts++;
	*out = p;
	return 0;
}

static int event_add(struct event **ev, size_t *n, size_t *cap,
		     uint64_t first, uint64_t last, unsigned int region,
		     uint64_t stream_seq)
{
	if (grow((void **)ev, cap, *n + 1, sizeof(**ev)))
		return -ENOMEM;
	(*ev)[(*n)++] = (struct event){ first, last, region, stream_seq };
	return 0;
}

static int note_add(struct note **nt, size_t *n, size_t *cap, uint64_t first,
		    uint64_t last, unsigned int region, uint64_t stream_seq,
		    const char *reason)
{
	char *copy;

	/* A loss entry carried again, or a marker seen in two streams. */
	for (size_t i = *n; i-- > 0 && i + 8 >= *n;)
		if ((*nt)[i].first == first && (*nt)[i].last == last &&
		    !strcmp((*nt)[i].reason, reason))
			return 0;
	if (grow((void **)nt, cap, *n + 1, sizeof(**nt)))
		return -ENOMEM;
	copy = strdup(reason);
	if (!copy)
		return -ENOMEM;
	(*nt)[(*n)++] = (struct note){ first, last, region, stream_seq, copy };
	return 0;
}

static struct stream_pos *stream_get(struct vpart *p, unsigned int region)
{
	for (size_t i = 0; i < p->nstreams; i++)
		if (p->streams[i].region == region)
			return &p->streams[i];
	if (grow((void **)&p->streams, &p->cap_streams, p->nstreams + 1,
		 sizeof(*p->streams)))
		return NULL;
	p->streams[p->nstreams] = (struct stream_pos){ region, 0 };
	return &p->streams[p->nstreams++];
}

/* The records [first, last] of @p delivered by @region at @stream_seq. */
static int part_deliver(struct vpart *p, unsigned int region,
			uint64_t stream_seq, uint64_t first, uint64_t last)
{
	struct stream_pos *sp = stream_get(p, region);
	bool in, dup = false;
	struct ivwalk w;
	uint64_t x, y;
	int ret;

	if (!sp)
		return -ENOMEM;
	ivwalk_init(&w, &p->seen, first, last);
	while (ivwalk_next(&w, &in, &x, &y)) {
		if (in) {
			ret = event_add(&p->dups, &p->ndups, &p->cap_dups, x, y,
					region, stream_seq);
			p->pub.c.duplicates += y - x + 1;
			dup = true;
		} else if (x <= sp->max_seq) {
			/* new records behind what this stream delivered */
			ret = event_add(&p->reorders, &p->nreorders,
					&p->cap_reorders, x, y, region,
					stream_seq);
		} else {
			ret = 0;
		}
		if (ret)
			return ret;
	}
	ret = ivset_add(&p->seen, first, last);
	if (ret)
		return ret;
	if (dup)
		p->pub.c.dup_batches++;
	if (last > sp->max_seq)
		sp->max_seq = last;
	return 0;
}

int verify_add_batch(struct verify *v, const char *region,
		     uint64_t stream_seq, const struct batch_meta *m,
		     const struct batch_loss *loss, unsigned int nloss)
{
	unsigned int ri;
	struct vpart *p;
	int ret;

	if (!v || !m || !valid_region(region) || !valid_host(m->host_id) ||
	    (nloss && !loss))
		return -EINVAL;
	if (m->count && !valid_range(m->first_seq, m->count))
		return -EINVAL;
	for (unsigned int i = 0; i < nloss; i++)
		if (loss[i].first_seq > loss[i].last_seq || !loss[i].reason[0])
			return -EINVAL;
	ret = region_index(v, region, &ri);
	if (ret)
		return ret;
	ret = part_get(v, m->host_id, m->source, m->partition, m->epoch, &p);
	if (ret)
		return ret;
	if (m->count) {
		ret = part_deliver(p, ri, stream_seq, m->first_seq,
				   m->first_seq + (m->count - 1));
		if (ret)
			return ret;
	}
	p->pub.c.batches++;
	p->pub.c.records += m->count;
	for (unsigned int i = 0; i < nloss; i++) {
		const struct batch_loss *l = &loss[i];
		struct vpart *lp;

		ret = part_get(v, m->host_id, l->source, l->partition,
			       l->epoch, &lp);
		if (!ret)
			ret = ivset_add(&lp->ledger, l->first_seq, l->last_seq);
		if (!ret)
			ret = note_add(&lp->losses, &lp->nlosses,
				       &lp->cap_losses, l->first_seq,
				       l->last_seq, 0, 0, l->reason);
		if (ret)
			return ret;
	}
	return 0;
}

int verify_add_dead_marker(struct verify *v, const char *region,
			   uint64_t stream_seq, const char *host,
			   unsigned int source, uint32_t partition,
			   uint64_t epoch, uint64_t first_seq, uint64_t count,
			   const char *reason)
{
	uint64_t last = first_seq + (count - 1);
	unsigned int ri;
	struct vpart *p;
	int ret;

	if (!v || !valid_region(region) || !valid_host(host) || !reason ||
	    !reason[0] || !valid_range(first_seq, count))
		return -EINVAL;
	ret = region_index(v, region, &ri);
	if (!ret)
		ret = part_get(v, host, source, partition, epoch, &p);
	if (!ret)
		ret = ivset_add(&p->dead, first_seq, last);
	if (!ret)
		ret = note_add(&p->markers, &p->nmarkers, &p->cap_markers,
			       first_seq, last, ri, stream_seq, reason);
	if (ret)
		return ret;
	p->pub.c.markers++;
	return 0;
}

int verify_expect(struct verify *v, const char *host, unsigned int source,
		  uint32_t partition, uint64_t epoch, uint64_t first_seq,
		  uint64_t last_seq)
{
	struct vpart *p;
	int ret;

	if (!v || !valid_host(host) || !first_seq || first_seq > last_seq)
		return -EINVAL;
	ret = part_get(v, host, source, partition, epoch, &p);
	if (!ret)
		ret = ivset_add(&p->expect, first_seq, last_seq);
	return ret;
}

/* --- classification -------------------------------------------------- */

/* The note whose range holds @x (the latest such), or NULL. */
static const struct note *note_at(const struct note *nt, size_t n, uint64_t x)
{
	for (size_t i = n; i-- > 0;)
		if (nt[i].first <= x && x <= nt[i].last)
			return &nt[i];
	return NULL;
}

struct walk_ctx {
	struct verify *v;
	struct verify_part *pub;	/* counters being computed */
	int (*cb)(const struct verify_issue *is, void *arg);
	void *arg;
};

static int emit(struct walk_ctx *w, enum verify_kind kind, uint64_t first,
		uint64_t last, int region, uint64_t stream_seq,
		const char *reason)
{
	struct verify_issue is = {
		.kind = kind,
		.part = w->pub,
		.first = first,
		.last = last,
		.region = region >= 0 ? w->v->regions[region] : NULL,
		.stream_seq = stream_seq,
		.reason = reason,
	};

	return w->cb ? w->cb(&is, w->arg) : 0;
}

/* One missing piece [x, y] that no loss entry covers. */
static int classify_unledgered(struct walk_ctx *w, const struct vpart *p,
			       uint64_t x, uint64_t y)
{
	struct verify_counts *c = &w->pub->c;
	struct ivwalk dw, ew;
	uint64_t a, b, e, f;
	bool in, ein;
	int ret;

	ivwalk_init(&dw, &p->dead, x, y);
	while (ivwalk_next(&dw, &in, &a, &b)) {
		if (in) {
			const struct note *m = note_at(p->markers,
						       p->nmarkers, a);

			c->gaps++;
			c->gaps_explained++;
			c->gaps_dead++;
			c->gaps_dead_records += b - a + 1;
			ret = emit(w, VERIFY_GAP_DEAD, a, b,
				   m ? (int)m->region : -1,
				   m ? m->stream_seq : 0, m ? m->reason : NULL);
			if (ret)
				return ret;
			continue;
		}
		ivwalk_init(&ew, &p->expect, a, b);
		while (ivwalk_next(&ew, &ein, &e, &f)) {
			c->gaps++;
			c->gaps_unexplained++;
			c->gaps_unexplained_records += f - e + 1;
			if (ein)
				c->lost += f - e + 1;
			ret = emit(w, ein ? VERIFY_LOST : VERIFY_GAP, e, f, -1,
				   0, NULL);
			if (ret)
				return ret;
		}
	}
	return 0;
}

/* The missing pieces of [a, b] (a range of the universe), in order. */
static int classify_range(struct walk_ctx *w, const struct vpart *p,
			  uint64_t a, uint64_t b)
{
	struct verify_counts *c = &w->pub->c;
	struct ivwalk sw, lw;
	uint64_t x, y, e, f;
	bool in, lin;
	int ret;

	ivwalk_init(&sw, &p->seen, a, b);
	while (ivwalk_next(&sw, &in, &x, &y)) {
		if (in)
			continue;
		ivwalk_init(&lw, &p->ledger, x, y);
		while (ivwalk_next(&lw, &lin, &e, &f)) {
			if (!lin) {
				ret = classify_unledgered(w, p, e, f);
			} else {
				const struct note *l = note_at(p->losses,
							       p->nlosses, e);

				c->gaps++;
				c->gaps_explained++;
				c->gaps_ledger++;
				c->gaps_ledger_records += f - e + 1;
				ret = emit(w, VERIFY_GAP_LEDGER, e, f, -1, 0,
					   l ? l->reason : NULL);
			}
			if (ret)
				return ret;
		}
	}
	return 0;
}

/*
 * Compute @p's derived counters into *@pub (a copy of p->pub) and, when
 * w->cb is set, report every finding.
 */
static int part_walk(struct walk_ctx *w, const struct vpart *p,
		     struct verify_part *pub)
{
	struct verify_counts *c = &pub->c;
	struct ivset universe = { 0 };
	struct ivwalk iw;
	uint64_t x, y;
	bool in;
	int ret = 0;

	*pub = p->pub;
	w->pub = pub;
	c->unique = ivset_total(&p->seen);
	c->dead_lettered = ivset_total(&p->dead);
	if (p->seen.n) {
		pub->first_seen = p->seen.v[0].a;
		pub->last_seen = p->seen.v[p->seen.n - 1].b;
	}
	for (size_t i = 0; i < p->dead.n; i++) {
		ivwalk_init(&iw, &p->seen, p->dead.v[i].a, p->dead.v[i].b);
		while (ivwalk_next(&iw, &in, &x, &y))
			if (in)
				c->dead_replayed += y - x + 1;
	}
	for (size_t i = 0; i < p->ndups && !ret; i++)
		ret = emit(w, VERIFY_DUPLICATE, p->dups[i].first,
			   p->dups[i].last, p->dups[i].region,
			   p->dups[i].stream_seq, NULL);
	for (size_t i = 0; i < p->nreorders && !ret; i++) {
		const struct event *ev = &p->reorders[i];

		ivwalk_init(&iw, &p->dead, ev->first, ev->last);
		while (!ret && ivwalk_next(&iw, &in, &x, &y)) {
			if (in)
				continue;
			c->reordered += y - x + 1;
			ret = emit(w, VERIFY_REORDER, x, y, ev->region,
				   ev->stream_seq, NULL);
		}
	}
	if (ret)
		return ret;

	for (size_t i = 0; i < p->expect.n; i++)
		if (ivset_add(&universe, p->expect.v[i].a, p->expect.v[i].b))
			goto nomem;
	if (p->seen.n && ivset_add(&universe, pub->first_seen, pub->last_seen))
		goto nomem;
	for (size_t i = 0; i < universe.n && !ret; i++)
		ret = classify_range(w, p, universe.v[i].a, universe.v[i].b);
	ivset_release(&universe);
	return ret;
nomem:
	ivset_release(&universe);
	return -ENOMEM;
}

static void counts_add(struct verify_counts *t, const struct verify_counts *c)
{
	t->batches += c->batches;
	t->records += c->records;
	t->unique += c->unique;
	t->duplicates += c->duplicates;
	t->dup_batches += c->dup_batches;
	t->markers += c->markers;
	t->gaps += c->gaps;
	t->gaps_explained += c->gaps_explained;
	t->gaps_ledger += c->gaps_ledger;
	t->gaps_ledger_records += c->gaps_ledger_records;
	t->gaps_dead += c->gaps_dead;
	t->gaps_dead_records += c->gaps_dead_records;
	t->gaps_unexplained += c->gaps_unexplained;
	t->gaps_unexplained_records += c->gaps_unexplained_records;
	t->lost += c->lost;
	t->reordered += c->reordered;
	t->dead_lettered += c->dead_lettered;
	t->dead_replayed += c->dead_replayed;
}

int verify_report(struct verify *v, struct verify_report *out)
{
	struct walk_ctx w = { .v = v };
	struct verify_report r = { 0 };
	struct verify_part pub;
	int ret;

	if (!v || !out)
		return -EINVAL;
	for (size_t i = 0; i < v->nparts; i++) {
		ret = part_walk(&w, v->parts[i], &pub);
		if (ret)
			return ret;
		counts_add(&r.total, &pub.c);
	}
	r.nparts = v->nparts;
	r.nregions = v->nregions;
	*out = r;
	return 0;
}

int verify_part(struct verify *v, unsigned int i, struct verify_part *out)
{
	struct walk_ctx w = { .v = v };
	struct verify_part pub;
	int ret;

	if (!v || !out)
		return -EINVAL;
	if (i >= v->nparts)
		return -ENOENT;
	ret = part_walk(&w, v->parts[i], &pub);
	if (ret)
		return ret;
	*out = pub;
	return 0;
}

int verify_foreach_issue(struct verify *v,
			 int (*cb)(const struct verify_issue *is, void *arg),
			 void *arg)
{
	struct walk_ctx w = { .v = v, .cb = cb, .arg = arg };
	struct verify_part pub;
	int ret;

	if (!v || !cb)
		return -EINVAL;
	for (size_t i = 0; i < v->nparts; i++) {
		ret = part_walk(&w, v->parts[i], &pub);
		if (ret)
			return ret;
	}
	return 0;
}

bool verify_ok(struct verify *v)
{
	struct verify_report r;

	if (verify_report(v, &r))
		return false;
	return !r.total.duplicates && !r.total.gaps_unexplained &&
	       !r.total.reordered;
}

const char *verify_kind_name(enum verify_kind k)
{
	switch (k) {
	case VERIFY_DUPLICATE:
		return "duplicate";
	case VERIFY_REORDER:
		return "reorder";
	case VERIFY_GAP:
		return "gap";
	case VERIFY_LOST:
		return "lost";
	case VERIFY_GAP_LEDGER:
		return "ledger";
	case VERIFY_GAP_DEAD:
		return "dead-letter";
	}
	return "?";
}
