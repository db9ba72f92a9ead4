// SPDX-License-Identifier: GPL-2.0-only
/*
 * drill_check: the canary classifier (drill_check.h).
 *
 * State, per writer: attempted and acked as interval sets; per (region,
 * writer): the sequences delivered at least once and those delivered more
 * than once, as interval sets, and a count of messages.  Classes are set
 * algebra on these at query time (counts()), so feeding stays a binary
 * search and, in order, an append.  Latency and the per-second series are
 * histograms (hist_*) kept per region; a failover view sums them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "drill_check.h"

/* --- interval sets ---------------------------------------------------- */

struct iv {
	uint64_t lo, hi;	/* [lo, hi) */
};

/* Sorted, disjoint, never adjacent (touching intervals are merged). */
struct ivset {
	struct iv *v;
	size_t n, cap;
};

static void ivset_release(struct ivset *s)
{
	free(s->v);
	memset(s, 0, sizeof(*s));
}

/* Index of the first interval with hi >= x (n when none). */
static size_t ivset_find(const struct ivset *s, uint64_t x)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->v[mid].hi < x)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static bool ivset_contains(const struct ivset *s, uint64_t x)
{
	size_t i = ivset_find(s, x + 1);	/* first with hi > x */

	return i < s->n && s->v[i].lo <= x;
}

/* Add [lo, hi), lo < hi.  0 or -ENOMEM (the set unchanged). */
static int ivset_add(struct ivset *s, uint64_t lo, uint64_t hi)
{
	size_t i, k;

	if (s->n && s->v[s->n - 1].hi == lo) {		/* in order: extend */
		s->v[s->n - 1].hi = hi;
		return 0;
	}
	i = s->n && s->v[s->n - 1].hi < lo ? s->n : ivset_find(s, lo);
	if (i == s->n || s->v[i].lo > hi) {		/* a new interval */
		if (s->n == s->cap) {
			size_t cap = s->cap ? s->cap * 2 : 8;
			struct iv *v = realloc(s->v, cap * sizeof(*v));

			if (!v)
				return -ENOMEM;
			s->v = v;
			s->cap = cap;
		}
		memmove(&s->v[i + 1], &s->v[i], (s->n - i) * sizeof(*s->v));
		s->v[i] = (struct iv){ lo, hi };
		s->n++;
		return 0;
	}
	/* Merge every interval from i that overlaps or touches [lo, hi). */
	if (s->v[i].lo < lo)
		lo = s->v[i].lo;
	for (k = i; k < s->n && s->v[k].lo <= hi; k++)
		if (s->v[k].hi > hi)
			hi = s->v[k].hi;
	s->v[i] = (struct iv){ lo, hi };
	memmove(&s->v[i + 1], &s->v[k], (s->n - k) * sizeof(*s->v));
	s->n -= k - i - 1;
	return 0;
}

static uint64_t ivset_count(const struct ivset *s)
{
	uint64_t n = 0;

	for (size_t i = 0; i < s->n; i++)
		n += s->v[i].hi - s->v[i].lo;
	return n;
}

/* Members of @s in [lo, hi). */
static uint64_t ivset_count_range(const struct ivset *s, uint64_t lo,
				  uint64_t hi)
{
	uint64_t n = 0;

	for (size_t i = ivset_find(s, lo + 1); i < s->n && s->v[i].lo < hi; i++) {
		uint64_t a = s->v[i].lo > lo ? s->v[i].lo : lo;
		uint64_t b = s->v[i].hi < hi ? s->v[i].hi : hi;

		if (a < b)
			n += b - a;
	}
	return n;
}

enum ivop { IV_UNION, IV_INTER, IV_DIFF };

/*
 * *out = @a op @b (out must be empty and distinct from both): a sweep
 * over the boundaries of both, emitting where membership changes.
 */
static int ivset_combine(const struct ivset *a, const struct ivset *b,
			 enum ivop op, struct ivset *out)
{
	size_t i = 0, j = 0, na = 2 * a->n, nb = 2 * b->n;
	bool ina = false, inb = false, in = false;
	uint64_t start = 0;

	while (i < na || j < nb) {
		uint64_t xa = i < na ? (i & 1 ? a->v[i / 2].hi : a->v[i / 2].lo) : 0;
		uint64_t xb = j < nb ? (j & 1 ? b->v[j / 2].hi : b->v[j / 2].lo) : 0;
		uint64_t x;
		bool now;

		if (i < na && (j >= nb || xa <= xb))
			x = xa;
		else
			x = xb;
		if (i < na && xa == x)
			ina = !(i++ & 1);
		if (j < nb && xb == x)
			inb = !(j++ & 1);
		now = op == IV_UNION ? ina || inb :
		      op == IV_INTER ? ina && inb : ina && !inb;
		if (now && !in)
			start = x;
		if (!now && in && ivset_add(out, start, x) < 0)
			return -ENOMEM;
		in = now;
	}
	return 0;
}

/* *a = *a op *b. */
static int ivset_apply(struct ivset *a, const struct ivset *b, enum ivop op)
{
	struct ivset r = { 0 };

	if (ivset_combine(a, b, op, &r) < 0) {
		ivset_release(&r);
		return -ENOMEM;
	}
	ivset_release(a);
	*a = r;
	return 0;
}

/* --- latency histograms ----------------------------------------------- */

/*
 * Microseconds: exact below 64, then 32 bins per power of two up to 2^40
 * us (12 days; longer clamps into the last bin).
 */
#define HIST_EXACT	64
#define HIST_SUB	32
#define HIST_TOP	40
#define HIST_BINS	(HIST_EXACT + (HIST_TOP - 6 + 1) * HIST_SUB)

static unsigned int hist_bin(uint64_t us)
{
	unsigned int e;

	if (us < HIST_EXACT)
		return (unsigned int)us;
	e = 63 - (unsigned int)__builtin_clzll(us);	/* >= 6 */
	if (e > HIST_TOP)
		return HIST_BINS - 1;
	return HIST_EXACT + (e - 6) * HIST_SUB +
	       (unsigned int)((us >> (e - 5)) & (HIST_SUB - 1));
}

/* The middle of bin @b. */
static uint64_t hist_value(unsigned int b)
{
	unsigned int e, sub;
	uint64_t lo;

	if (b < HIST_EXACT)
		return b;
	e = (b - HIST_EXACT) / HIST_SUB + 6;
	sub = (b - HIST_EXACT) % HIST_SUB;
	lo = (1ull << e) + ((uint64_t)sub << (e - 5));
	return lo + (1ull << (e - 5)) / 2;
}

struct hist {
	uint64_t count, max;
	uint32_t bin[HIST_BINS];	/* saturating: a bin never wraps */
};

static void hist_add(struct hist *h, uint64_t us)
{
	uint32_t *b = &h->bin[hist_bin(us)];

	if (*b != UINT32_MAX)
		(*b)++;
	h->count++;
	if (us > h->max)
		h->max = us;
}

/* Sum of @n histograms (NULL ones skipped) into @out's percentiles. */
static void hist_summary(const struct hist *const *hs, unsigned int n,
			 struct drill_latency *out)
{
	uint64_t count = 0, max = 0, r50, r99, seen = 0;
	struct drill_latency l = { 0 };

	for (unsigned int i = 0; i < n; i++) {
		if (!hs[i])
			continue;
		count += hs[i]->count;
		if (hs[i]->max > max)
			max = hs[i]->max;
	}
	l.count = count;
	l.max_us = max;
	if (count) {
		r50 = (count * 50 + 99) / 100;	/* nearest rank */
		r99 = (count * 99 + 99) / 100;
		for (unsigned int b = 0; b < HIST_BINS && seen < r99; b++) {
			uint64_t c = 0;

			for (unsigned int i = 0; i < n; i++)
				c += hs[i] ? hs[i]->bin[b] : 0;
			if (seen < r50 && seen + c >= r50)
				l.p50_us = hist_value(b);
			if (seen + c >= r99)
				l.p99_us = hist_value(b);
			seen += c;
		}
		if (l.p50_us > max)
			l.p50_us = max;
		if (l.p99_us > max)
			l.p99_us = max;
	}
	*out = l;
}

/* --- the checker ------------------------------------------------------ */

struct writer {
	struct ivset attempted, acked;
};

/* What region r holds of writer w. */
struct held {
	struct ivset once, twice;	/* delivered >= 1, >= 2 times */
	uint64_t deliveries;
};

struct region {
	struct held *held;		/* [nr_writers] */
	uint64_t stray;			/* deliveries from unknown writers */
	struct hist total;
	struct hist **sec_lat;		/* [seconds], allocated on use */
	uint64_t *sec_delivered;	/* [seconds] */
};

struct drill_check {
	enum drill_mode mode;
	unsigned int nr_regions, nr_writers;
	uint64_t drill_id, start_ns;
	uint32_t seconds;
	struct writer *w;
	struct region r[DRILL_REGIONS_MAX];
	uint64_t *sec_sent, *sec_acked;
	uint64_t foreign, other_drills;
};

int drill_check_new(enum drill_mode mode, unsigned int nr_regions,
		    unsigned int nr_writers, uint64_t drill_id,
		    uint64_t start_ns, uint32_t seconds,
		    struct drill_check **out)
{
	struct drill_check *ck;

	if ((mode != DRILL_REPLICATE && mode != DRILL_FAILOVER) ||
	    nr_regions < 1 || nr_regions > DRILL_REGIONS_MAX ||
	    nr_writers < 1 || nr_writers > DRILL_CHECK_WRITERS_MAX ||
	    seconds < 1 || seconds > DRILL_CHECK_SECONDS_MAX)
		return -EINVAL;
	ck = calloc(1, sizeof(*ck));
	if (!ck)
		return -ENOMEM;
	ck->mode = mode;
	ck->nr_regions = nr_regions;
	ck->nr_writers = nr_writers;
	ck->drill_id = drill_id;
	ck->start_ns = start_ns;
	ck->seconds = seconds;
	ck->w = calloc(nr_writers, sizeof(*ck->w));
	ck->sec_sent = calloc(seconds, sizeof(uint64_t));
	ck->sec_acked = calloc(seconds, sizeof(uint64_t));
	if (!ck->w || !ck->sec_sent || !ck->sec_acked)
		goto nomem;
	for (unsigned int r = 0; r < nr_regions; r++) {
		ck->r[r].held = calloc(nr_writers, sizeof(struct held));
		ck->r[r].sec_lat = calloc(seconds, sizeof(struct hist *));
		ck->r[r].sec_delivered = calloc(seconds, sizeof(uint64_t));
		if (!ck->r[r].held || !ck->r[r].sec_lat ||
		    !ck->r[r].sec_delivered)
			goto nomem;
	}
	*out = ck;
	return 0;
nomem:
	drill_check_free(ck);
	return -ENOMEM;
}

void drill_check_free(struct drill_check *ck)
{
	if (!ck)
		return;
	for (unsigned int r = 0; r < ck->nr_regions; r++) {
		struct region *rg = &ck->r[r];

		for (unsigned int w = 0; rg->held && w < ck->nr_writers; w++) {
			ivset_release(&rg->held[w].once);
			ivset_release(&rg->held[w].twice);
		}
		for (uint32_t s = 0; rg->sec_lat && s < ck->seconds; s++)
			free(rg->sec_lat[s]);
		free(rg->held);
		free(rg->sec_lat);
		free(rg->sec_delivered);
	}
	for (unsigned int w = 0; ck->w && w < ck->nr_writers; w++) {
		ivset_release(&ck->w[w].attempted);
		ivset_release(&ck->w[w].acked);
	}
	free(ck->w);
	free(ck->sec_sent);
	free(ck->sec_acked);
	free(ck);
}

/* The series' second of wall time @ns. */
static uint32_t second_of(const struct drill_check *ck, uint64_t ns)
{
	uint64_t s = ns > ck->start_ns ? (ns - ck->start_ns) / 1000000000ull : 0;

	return s < ck->seconds ? (uint32_t)s : ck->seconds - 1;
}

int drill_check_attempt(struct drill_check *ck, unsigned int writer,
			uint64_t seq, uint64_t sent_ns)
{
	int err;

	if (writer >= ck->nr_writers || seq == UINT64_MAX)
		return -EINVAL;
	err = ivset_add(&ck->w[writer].attempted, seq, seq + 1);
	if (!err)
		ck->sec_sent[second_of(ck, sent_ns)]++;
	return err;
}

int drill_check_ack(struct drill_check *ck, unsigned int writer,
		    uint64_t first, uint64_t last, uint64_t ack_ns)
{
	int err;

	if (writer >= ck->nr_writers || last == UINT64_MAX || first > last)
		return -EINVAL;
	err = ivset_add(&ck->w[writer].acked, first, last + 1);
	if (!err)
		ck->sec_acked[second_of(ck, ack_ns)] += last - first + 1;
	return err;
}

int drill_check_deliver(struct drill_check *ck, unsigned int region,
			const struct drill_canary *c, uint64_t stored_ns)
{
	struct region *rg;
	struct held *h;
	uint32_t sec;
	int err;

	if (region >= ck->nr_regions || c->seq == UINT64_MAX)
		return -EINVAL;
	if (c->drill_id != ck->drill_id) {
		ck->other_drills++;
		return -ESRCH;
	}
	rg = &ck->r[region];
	if (c->writer >= ck->nr_writers) {
		rg->stray++;
		return 0;
	}
	h = &rg->held[c->writer];
	if (ivset_contains(&h->once, c->seq)) {
		err = ivset_add(&h->twice, c->seq, c->seq + 1);
		if (!err)
			h->deliveries++;
		return err;
	}
	sec = second_of(ck, c->sent_ns);
	if (!rg->sec_lat[sec]) {
		rg->sec_lat[sec] = calloc(1, sizeof(struct hist));
		if (!rg->sec_lat[sec])
			return -ENOMEM;
	}
	err = ivset_add(&h->once, c->seq, c->seq + 1);
	if (err)
		return err;
	h->deliveries++;
	hist_add(&rg->total, stored_ns > c->sent_ns ?
			     (stored_ns - c->sent_ns) / 1000 : 0);
	hist_add(rg->sec_lat[sec], stored_ns > c->sent_ns ?
				   (stored_ns - c->sent_ns) / 1000 : 0);
	rg->sec_delivered[second_of(ck, stored_ns)]++;
	return 0;
}

int drill_check_payload(struct drill_check *ck, unsigned int region,
			const void *data, size_t len, uint64_t stored_ns)
{
	struct drill_canary c;

	if (region >= ck->nr_regions)
		return -EINVAL;
	if (drill_canary_decode(data, len, &c) < 0) {
		ck->foreign++;
		return -EBADMSG;
	}
	return drill_check_deliver(ck, region, &c, stored_ns);
}

void drill_check_ignored(const struct drill_check *ck, uint64_t *foreign,
			 uint64_t *other_drills)
{
	*foreign = ck->foreign;
	*other_drills = ck->other_drills;
}

unsigned int drill_check_nr_views(const struct drill_check *ck)
{
	return ck->mode == DRILL_REPLICATE ? ck->nr_regions : 1;
}

/* The regions of @view: [*first, *end). */
static void view_regions(const struct drill_check *ck, unsigned int view,
			 unsigned int *first, unsigned int *end)
{
	*first = ck->mode == DRILL_REPLICATE ? view : 0;
	*end = ck->mode == DRILL_REPLICATE ? view + 1 : ck->nr_regions;
}

/*
 * What @view holds of writer @w: @d delivered, @dup delivered more than
 * once (in failover mode also: by two regions).  Both start empty.
 */
static int view_held(const struct drill_check *ck, unsigned int view,
		     unsigned int w, struct ivset *d, struct ivset *dup,
		     uint64_t *deliveries)
{
	unsigned int first, end;
	struct ivset both = { 0 };
	int err = 0;

	view_regions(ck, view, &first, &end);
	*deliveries = 0;
	for (unsigned int r = first; !err && r < end; r++) {
		const struct held *h = &ck->r[r].held[w];

		*deliveries += h->deliveries;
		err = ivset_combine(d, &h->once, IV_INTER, &both);
		if (!err)
			err = ivset_apply(dup, &both, IV_UNION);
		if (!err)
			err = ivset_apply(dup, &h->twice, IV_UNION);
		if (!err)
			err = ivset_apply(d, &h->once, IV_UNION);
		ivset_release(&both);
	}
	return err;
}

/* Classes of writer @w in @view, added to *c. */
static int count_writer(const struct drill_check *ck, unsigned int view,
			unsigned int w, struct drill_counts *c)
{
	const struct writer *wr = &ck->w[w];
	struct ivset a = { 0 }, d = { 0 }, dup = { 0 }, t = { 0 }, u = { 0 };
	uint64_t deliveries, n;
	int err;

	/* a: attempted (acked included); d, dup: what the view holds. */
	err = ivset_combine(&wr->attempted, &wr->acked, IV_UNION, &a);
	if (!err)
		err = view_held(ck, view, w, &d, &dup, &deliveries);
	if (err)
		goto out;
	c->attempted += ivset_count(&a);
	c->acked += ivset_count(&wr->acked);
	c->delivered += ivset_count(&d);
	c->deliveries += deliveries;

	/* unexpected: d - a */
	err = ivset_combine(&d, &a, IV_DIFF, &t);
	if (err)
		goto out;
	c->unexpected += ivset_count(&t);
	ivset_release(&t);
	/* duplicated: a & dup */
	err = ivset_combine(&a, &dup, IV_INTER, &t);
	if (err)
		goto out;
	c->duplicated += ivset_count(&t);
	ivset_release(&t);
	/* ok: acked & d - dup; recovered: (a - acked) & d - dup */
	err = ivset_combine(&d, &dup, IV_DIFF, &u);		/* once only */
	if (!err)
		err = ivset_combine(&u, &wr->acked, IV_INTER, &t);
	if (err)
		goto out;
	c->ok += ivset_count(&t);
	n = ivset_count(&t);
	ivset_release(&t);
	err = ivset_combine(&u, &a, IV_INTER, &t);
	if (err)
		goto out;
	c->recovered += ivset_count(&t) - n;
	ivset_release(&t);
	ivset_release(&u);
	/* unknown: a - acked - d */
	err = ivset_combine(&a, &wr->acked, IV_DIFF, &u);
	if (!err)
		err = ivset_combine(&u, &d, IV_DIFF, &t);
	if (err)
		goto out;
	c->unknown += ivset_count(&t);
	ivset_release(&t);
	ivset_release(&u);
	/* lost: acked - d, split around the writer's delivered seqs (d & a) */
	err = ivset_combine(&wr->acked, &d, IV_DIFF, &t);
	if (!err)
		err = ivset_combine(&d, &a, IV_INTER, &u);
	if (err)
		goto out;
	n = ivset_count(&t);
	c->lost += n;
	if (!u.n) {
		c->lost_postfix += n;
	} else {
		uint64_t lo = u.v[0].lo, hi = u.v[u.n - 1].hi;
		uint64_t pre = ivset_count_range(&t, 0, lo);
		uint64_t post = ivset_count_range(&t, hi, UINT64_MAX);

		c->lost_prefix += pre;
		c->lost_postfix += post;
		c->lost_middle += n - pre - post;
	}
out:
	ivset_release(&a);
	ivset_release(&d);
	ivset_release(&dup);
	ivset_release(&t);
	ivset_release(&u);
	return err;
}

int drill_check_counts(const struct drill_check *ck, unsigned int view,
		       int writer, struct drill_counts *out)
{
	struct drill_counts c = { 0 };
	unsigned int first, end;
	int err = 0;

	if (view >= drill_check_nr_views(ck) ||
	    (writer >= 0 && (unsigned int)writer >= ck->nr_writers))
		return -EINVAL;
	if (writer >= 0)
		err = count_writer(ck, view, (unsigned int)writer, &c);
	for (unsigned int w = 0; writer < 0 && !err && w < ck->nr_writers; w++)
		err = count_writer(ck, view, w, &c);
	if (err)
		return err;
	if (writer < 0) {
		view_regions(ck, view, &first, &end);
		for (unsigned int r = first; r < end; r++) {
			c.unexpected += ck->r[r].stray;
			c.deliveries += ck->r[r].stray;
		}
	}
	*out = c;
	return 0;
}

int drill_check_latency(const struct drill_check *ck, unsigned int view,
			struct drill_latency *out)
{
	const struct hist *hs[DRILL_REGIONS_MAX];
	unsigned int first, end;

	if (view >= drill_check_nr_views(ck))
		return -EINVAL;
	view_regions(ck, view, &first, &end);
	for (unsigned int r = first; r < end; r++)
		hs[r - first] = &ck->r[r].total;
	hist_summary(hs, end - first, out);
	return 0;
}

int drill_check_second(const struct drill_check *ck, unsigned int view,
		       uint32_t second, struct drill_second *out)
{
	const struct hist *hs[DRILL_REGIONS_MAX];
	struct drill_second s = { 0 };
	unsigned int first, end;

	if (view >= drill_check_nr_views(ck))
		return -EINVAL;
	if (second >= ck->seconds)
		return -ERANGE;
	view_regions(ck, view, &first, &end);
	for (unsigned int r = first; r < end; r++) {
		hs[r - first] = ck->r[r].sec_lat[second];
		s.delivered += ck->r[r].sec_delivered[second];
	}
	hist_summary(hs, end - first, &s.lat);
	s.sent = ck->sec_sent[second];
	s.acked = ck->sec_acked[second];
	*out = s;
	return 0;
}

int drill_check_lost(const struct drill_check *ck, unsigned int view,
		     unsigned int writer, uint64_t (*ranges)[2], size_t max,
		     size_t *nr_ranges)
{
	struct ivset d = { 0 }, dup = { 0 }, lost = { 0 };
	uint64_t deliveries;
	int err;

	if (view >= drill_check_nr_views(ck) || writer >= ck->nr_writers)
		return -EINVAL;
	err = view_held(ck, view, writer, &d, &dup, &deliveries);
	if (!err)
		err = ivset_combine(&ck->w[writer].acked, &d, IV_DIFF, &lost);
	if (!err) {
		for (size_t i = 0; i < lost.n && i < max; i++) {
			ranges[i][0] = lost.v[i].lo;
			ranges[i][1] = lost.v[i].hi - 1;
		}
		*nr_ranges = lost.n;
	}
	ivset_release(&d);
	ivset_release(&dup);
	ivset_release(&lost);
	return err;
}

bool drill_check_passed(const struct drill_check *ck)
{
	for (unsigned int v = 0; v < drill_check_nr_views(ck); v++) {
		struct drill_counts c;

		if (drill_check_counts(ck, v, -1, &c) < 0 || c.lost ||
		    c.duplicated || c.unexpected)
			return false;
	}
	return true;
}
