// SPDX-License-Identifier: GPL-2.0-only
/*
 * ship: the shipping engine (ship.h; the design and its guarantees are in
 * docs/SHIPPING.md).  Everything here runs on the event loop's thread; the
 * network work is jetstream.c's.
 *
 * The state is a matrix: one struct ship_region per configured region, one
 * struct ship_part per spool (source, partition), and in each part one
 * struct ship_rp per region.  An rp moves through
 *
 *	NEED_RECONCILE -> RECONCILING -(LAST answered)-> IDLE
 *	IDLE -(publish)-> INFLIGHT -(ack)-> IDLE
 *	                           -(wrong last)-> NEED_RECONCILE
 *	                           -(ambiguous)-> BACKOFF -> NEED_RECONCILE
 *	                           -(transient, permanent)-> BACKOFF -> IDLE
 *
 * and nothing is published to an rp that is not IDLE.  A cursor only moves
 * forward: on an acknowledgement, or when a reconcile finds the stream
 * already holding a later batch of the partition (adoption).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include "batch.h"
#include "failpoint.h"
#include "jetstream.h"
#include "log.h"
#include "ship.h"
#include "ship_policy.h"

#define SHIP_TICK_MS		20	/* cursor commits, backoffs, routing */
#define SHIP_SLOW_CHECK_MS	1000	/* parking */
#define SHIP_LAT_RING		256	/* recent ack latencies per region */
#define SHIP_TAG_PART_BITS	24	/* tag = serial << 24 | part index */
#define SHIP_TAG_REGION		((1u << SHIP_TAG_PART_BITS) - 1)
#define SHIP_MAX_PARTS		(SHIP_TAG_REGION - 1)
#define SHIP_POLL_BATCH		256	/* results handled per wakeup */
#define SHIP_BREAKER_FLOOR_US	50000	/* an ack is never "slow" below */

enum rp_state {
	RP_NEED_RECONCILE = 0,
	RP_RECONCILING,
	RP_IDLE,
	RP_INFLIGHT,
	RP_BACKOFF,
};

enum pub_kind {
	PUB_BATCH,
	PUB_MARKER,	/* dead-letter marker of rp->row */
	PUB_REPLAY,	/* a dead letter sent again */
};

/* A dead letter queued for replay by ship_dlq_replay(). */
struct ship_replay {
	uint64_t dead_id;
	unsigned int region;
	unsigned int part;
	struct spool_batch_row row;
	char msg_id[JS_MSGID_MAX];
	void *body;
	size_t len;
	bool inflight;
	struct ship_replay *next;
};

/* A batch by what identifies it in a stream and in the spool. */
struct ship_suspect {
	bool set;
	struct spool_batch_row row;
	struct spool_batch_row last;	/* its last row (== row: alone) */
	uint64_t expect;		/* the last subject seq it expected */
};

/* One (region, partition). */
struct ship_rp {
	struct spool_cursor cur;	/* region name filled in */
	bool dirty;			/* cur not yet committed */
	uint64_t lss;			/* the subject's last sequence */
	enum rp_state state;
	enum rp_state after;		/* BACKOFF: the state after it */
	uint64_t until_ms;		/* BACKOFF: until then */
	bool stale;			/* reconnected meanwhile: reconcile */
	unsigned int fails;		/* consecutive failures: backoff */
	unsigned int perm;		/* permanent failures of this batch */
	/* INFLIGHT / RECONCILING */
	uint64_t tag;
	enum pub_kind kind;
	struct spool_batch_row row;	/* batch in flight or dead-lettered */
	/* PUB_BATCH in flight: the message's last row (== row: alone) */
	struct spool_batch_row last;
	unsigned int nrows;		/* spooled rows in it */
	uint64_t mcount, mbytes;	/* its records, body bytes */
	bool nomerge;			/* a merge from row was refused */
	struct ship_replay *replay;	/* PUB_REPLAY */
	bool deleting;			/* RECONCILING: a DELETE, not LAST */
	/* dead letter pending: its marker is the next thing sent */
	bool dead_pending;
	uint64_t dead_id;
	char dead_reason[SPOOL_TEXT_MAX + 1];
	/*
	 * A publish of unknown outcome: it may still land while the
	 * subject's last sequence is the one it expected (suspect_prune).
	 */
	struct ship_suspect suspect;
	/* the last replay stored here: (epoch, first_seq) at stream seq */
	uint64_t replayed_seq, replayed_epoch, replayed_first;
	/* nothing after @empty_after as of the spool's @empty_last id */
	uint64_t empty_after, empty_last;
	uint64_t gap_logged;		/* row id whose gap was logged */
	/* lag: the spool's rows in (trimmed, lag_at] (done, not yet trimmed) */
	uint64_t lag_at, done_b, done_e;
};

struct ship_part {
	unsigned int source;
	uint32_t partition;
	char token[24];			/* "kmod-3" */
	unsigned int rank[CONFIG_REGIONS_MAX];	/* failover: best first */
	unsigned int route;		/* failover: the region that sends */
	uint64_t trimmed;		/* rows <= this are gone */
	struct ship_rp rp[CONFIG_REGIONS_MAX];
};

struct ship_region {
	struct ship *sh;
	unsigned int idx;
	char name[CONFIG_REGION_NAME_MAX + 1];
	char prefix[CONFIG_SUBJECT_PREFIX_MAX + 1];
	char stream[CONFIG_STREAM_MAX + 1];
	unsigned int weight;
	struct js_link *link;
	int fd;
	bool connected, ensured, durable;
	unsigned int replicas;
	int64_t max_payload;
	bool ensure_pending, ensure_probe;
	uint64_t ensure_tag;
	uint64_t ensure_at_ms;		/* retry a failed ENSURE then */
	unsigned int ensure_fails;
	struct breaker br;
	enum breaker_state br_logged;
	struct aimd win;
	struct token_bucket retry, rate;
	unsigned int inflight;		/* publishes */
	bool parked;
	uint64_t healthy_since;		/* 0: not healthy */
	uint64_t unhealthy_since;	/* 0: healthy */
	uint64_t lat_ring[SHIP_LAT_RING];
	unsigned int lat_n, lat_pos;
	uint64_t shipped_batches, shipped_events, shipped_bytes;
	uint64_t retries, duplicates, reconciles, dead_lettered, gaps;
	char last_error[200];
};

/* The live [ship] keys. */
struct ship_params {
	uint32_t publish_timeout_ms;
	uint32_t backoff_base_ms, backoff_cap_ms;
	uint32_t dead_letter_after;
	uint32_t lag_limit_s;
	uint32_t failback_hold_ms;
	uint64_t max_message;		/* a merged batch's raw bytes */
};

struct ship {
	struct loop *loop;
	struct spool *spool;
	char host[CONFIG_HOST_ID_MAX + 1];
	enum config_ship_mode mode;
	struct ship_params p;
	unsigned int nreg;
	struct ship_region reg[CONFIG_REGIONS_MAX];
	const char *names[CONFIG_REGIONS_MAX];
	unsigned int weights[CONFIG_REGIONS_MAX];
	struct ship_part **parts;
	unsigned int nparts, parts_cap;
	unsigned int spool_nparts;	/* spool_stats().nparts last seen */
	uint64_t tick;
	uint64_t serial;
	uint64_t rnd;
	uint64_t slow_check_ms;
	bool pumping;
	int spool_err;			/* last spool failure logged */
	struct ship_replay *replays;
	uint64_t lat_count[SHIP_LAT_BUCKETS];
	uint64_t lat_sum_us, lat_n;
};

static const uint64_t lat_bounds_us[SHIP_LAT_BUCKETS] = {
	1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000, 500000,
	1000000, 2000000, 5000000, 10000000, 30000000, 60000000, UINT64_MAX,
};

static const char *const source_names[] = {
	[BATCH_SRC_KMOD] = "kmod",
	[BATCH_SRC_SOCKET] = "socket",
	[BATCH_SRC_BPF] = "bpf",
};

static void ship_pump(struct ship *sh);

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

/* xorshift64*: jitter only, never security. */
static uint64_t ship_random(struct ship *sh)
{
	sh->rnd ^= sh->rnd >> 12;
	sh->rnd ^= sh->rnd << 25;
	sh->rnd ^= sh->rnd >> 27;
	return sh->rnd * 0x2545f4914f6cdd1dull;
}

static uint64_t row_last_seq(const struct spool_batch_row *r)
{
	return r->first_seq + (r->count ? r->count - 1 : 0);
}

static const char *src_name(unsigned int source)
{
	return source <= BATCH_SRC_MAX ? source_names[source] : "unknown";
}

static void region_error(struct ship_region *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void region_error(struct ship_region *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->last_error, sizeof(r->last_error), fmt, ap);
	va_end(ap);
}

/* One log line per breaker state change, with the reason it opened. */
static void region_breaker_note(struct ship_region *r)
{
	if (r->br.state == r->br_logged)
		return;
	switch (r->br.state) {
	case BREAKER_OPEN:
		log_warn("region \"%s\": breaker open: %s", r->name, r->br.why);
		break;
	case BREAKER_HALF_OPEN:
		log_info("region \"%s\": breaker half-open: probing", r->name);
		break;
	case BREAKER_CLOSED:
		log_info("region \"%s\": breaker closed", r->name);
		break;
	}
	r->br_logged = r->br.state;
}

static void region_failure(struct ship_region *r, const char *why,
			   uint64_t now)
{
	enum breaker_state was = r->br.state;

	breaker_failure(&r->br, why, now);
	if (was != BREAKER_OPEN && r->br.state == BREAKER_OPEN) {
		/*
		 * Check the stream (ENSURE) before anything else is sent: it
		 * may be gone (deleted by an operator), and publishes that
		 * took every half-open probe would never recreate it.
		 */
		r->ensured = false;
		r->ensure_at_ms = 0;
	}
	region_breaker_note(r);
}

static void region_success(struct ship_region *r, uint64_t latency_us,
			   uint64_t now)
{
	breaker_success(&r->br, latency_us, now);
	region_breaker_note(r);
}

static bool region_healthy(const struct ship_region *r)
{
	return r->connected && r->ensured && r->br.state == BREAKER_CLOSED;
}

static uint64_t ship_backoff(struct ship *sh, unsigned int attempt)
{
	return backoff_full_jitter(sh->p.backoff_base_ms, sh->p.backoff_cap_ms,
				   attempt, ship_random(sh));
}

static void rp_backoff(struct ship *sh, struct ship_rp *rp,
		       enum rp_state after, uint64_t now)
{
	rp->state = RP_BACKOFF;
	rp->after = after;
	rp->until_ms = now + ship_backoff(sh, rp->fails ? rp->fails - 1 : 0);
}

/* --- partitions ------------------------------------------------------ */

static int part_find(const struct ship *sh, unsigned int source,
		     uint32_t partition)
{
	for (unsigned int i = 0; i < sh->nparts; i++)
		if (sh->parts[i]->source == source &&
		    sh->parts[i]->partition == partition)
			return i;
	return -1;
}

/* The part of (@source, @partition), created (NEED_RECONCILE) if new. */
static struct ship_part *part_get(struct ship *sh, unsigned int source,
				  uint32_t partition)
{
	struct ship_part *p;
	int i = part_find(sh, source, partition);

	if (i >= 0)
		return sh->parts[i];
	if (sh->nparts >= SHIP_MAX_PARTS)
		return NULL;
	if (sh->nparts == sh->parts_cap) {
		unsigned int cap = sh->parts_cap ? sh->parts_cap * 2 : 16;
		struct ship_part **n = realloc(sh->parts, cap * sizeof(*n));

		if (!n)
			return NULL;
		sh->parts = n;
		sh->parts_cap = cap;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->source = source;
	p->partition = partition;
	snprintf(p->token, sizeof(p->token), "%s-%" PRIu32, src_name(source),
		 partition);
	rendezvous_rank(p->token, sh->names, sh->weights, sh->nreg, p->rank);
	p->route = p->rank[0];
	for (unsigned int r = 0; r < sh->nreg; r++) {
		struct ship_rp *rp = &p->rp[r];

		snprintf(rp->cur.region, sizeof(rp->cur.region), "%s",
			 sh->reg[r].name);
		rp->cur.source = source;
		rp->cur.partition = partition;
		rp->state = RP_NEED_RECONCILE;
		rp->empty_after = UINT64_MAX;
	}
	sh->parts[sh->nparts++] = p;
	return p;
}

/* Pick up partitions the spool learnt about since the last look. */
static void parts_refresh(struct ship *sh)
{
	struct spool_stats st;

	if (spool_stats(sh->spool, &st) || st.nparts == sh->spool_nparts)
		return;
	for (unsigned int i = 0; i < st.nparts; i++) {
		struct spool_part_stats ps;

		if (spool_part_stats(sh->spool, i, &ps))
			break;
		if (!part_get(sh, ps.source, ps.partition)) {
			log_error("ship: out of memory for partition %s-%" PRIu32,
				  src_name(ps.source), ps.partition);
			return;
		}
	}
	sh->spool_nparts = st.nparts;
}

/* Failover: the partition's global position, max over regions. */
static uint64_t part_global(const struct ship *sh, const struct ship_part *p)
{
	uint64_t g = 0;

	for (unsigned int r = 0; r < sh->nreg; r++)
		if (p->rp[r].cur.batch_id > g)
			g = p->rp[r].cur.batch_id;
	return g;
}

/*
 * A publish of the partition is out somewhere.  A dead-letter marker that
 * is only owed (its region down) does not hold the partition: the marker
 * stays owed to that region, the batches move on (part_after).
 */
static bool part_busy(const struct ship *sh, const struct ship_part *p)
{
	for (unsigned int r = 0; r < sh->nreg; r++)
		if (p->rp[r].state == RP_INFLIGHT)
			return true;
	return false;
}

/*
 * Failover: the route sends the first row after this, G or a batch some
 * region dead-lettered and still owes the marker of, whichever is later:
 * that batch is in the dead-letter table and must not reach a stream too.
 */
static uint64_t part_after(const struct ship *sh, const struct ship_part *p)
{
	uint64_t after = part_global(sh, p);

	for (unsigned int r = 0; r < sh->nreg; r++)
		if (p->rp[r].dead_pending && p->rp[r].row.id > after)
			after = p->rp[r].row.id;
	return after;
}

struct row_find {
	bool found;
	struct spool_batch_row row;
	uint64_t epoch, first_seq;	/* rp_settle: what it looks for */
};

static int row_first_cb(const struct spool_batch_row *r, void *arg)
{
	struct row_find *f = arg;

	f->row = *r;
	f->found = true;
	return 1;
}

static void ship_spool_error(struct ship *sh, int err, const char *what)
{
	if (sh->spool_err == err)
		return;
	sh->spool_err = err;
	log_error("ship: %s: %s (%s)", what, strerror(-err),
		  spool_strerror(sh->spool));
}

/*
 * The partition's first row with id > @after: 1 and *@row, 0 when there
 * is none (cached per rp until the spool grows), or -errno.
 */
static int rp_next_row(struct ship *sh, struct ship_part *p,
		       struct ship_rp *rp, uint64_t after,
		       struct spool_batch_row *row)
{
	struct spool_stats st;
	struct row_find f = { 0 };
	int ret;

	ret = spool_stats(sh->spool, &st);
	if (ret)
		return ret;
	if (rp->empty_after == after && rp->empty_last == st.last_id)
		return 0;
	ret = spool_foreach_row(sh->spool, after, true, p->source,
				p->partition, 1, row_first_cb, &f);
	if (ret < 0) {
		ship_spool_error(sh, ret, "reading the spool's rows");
		return ret;
	}
	if (!f.found) {
		rp->empty_after = after;
		rp->empty_last = st.last_id;
		return 0;
	}
	*row = f.row;
	return 1;
}

/* --- publishing ------------------------------------------------------ */

struct ship_msg {
	char subject[JS_SUBJECT_MAX];
	char msg_id[JS_MSGID_MAX];
	char v_part[16], v_epoch[24], v_first[24], v_count[16];
	char reason[SPOOL_TEXT_MAX + 1];
	struct js_req req;
};

static void msg_id_of(const struct ship *sh, const struct ship_part *p,
		      const struct spool_batch_row *row, bool dead,
		      char *out, size_t outlen)
{
	snprintf(out, outlen, "%s/%s/%" PRIu64 "/%" PRIu64 "%s", sh->host,
		 p->token, row->epoch, row->first_seq, dead ? "/dead" : "");
}

static void subject_of(const struct ship *sh, const struct ship_region *r,
		       const struct ship_part *p, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s.%s.%s", r->prefix, sh->host, p->token);
}

/* Fill @m for @row of @p at @r; @reason non-NULL: a dead-letter marker. */
static void msg_build(const struct ship *sh, const struct ship_region *r,
		      const struct ship_part *p, struct ship_rp *rp,
		      const struct spool_batch_row *row, const char *reason,
		      struct ship_msg *m)
{
	struct js_req *q = &m->req;

	memset(m, 0, sizeof(*m));
	subject_of(sh, r, p, m->subject, sizeof(m->subject));
	msg_id_of(sh, p, row, reason != NULL, m->msg_id, sizeof(m->msg_id));
	snprintf(m->v_part, sizeof(m->v_part), "%" PRIu32, p->partition);
	snprintf(m->v_epoch, sizeof(m->v_epoch), "%" PRIu64, row->epoch);
	snprintf(m->v_first, sizeof(m->v_first), "%" PRIu64, row->first_seq);
	snprintf(m->v_count, sizeof(m->v_count), "%" PRIu32, row->count);
	q->op = JS_OP_PUBLISH;
	memcpy(q->subject, m->subject, sizeof(q->subject));
	memcpy(q->msg_id, m->msg_id, sizeof(q->msg_id));
	q->expect_last_subject_seq = rp->lss;
	q->hdr_name[0] = JS_HDR_HOST;
	q->hdr_value[0] = sh->host;
	q->hdr_name[1] = JS_HDR_SOURCE;
	q->hdr_value[1] = src_name(p->source);
	q->hdr_name[2] = JS_HDR_PARTITION;
	q->hdr_value[2] = m->v_part;
	q->hdr_name[3] = JS_HDR_EPOCH;
	q->hdr_value[3] = m->v_epoch;
	q->hdr_name[4] = JS_HDR_FIRST_SEQ;
	q->hdr_value[4] = m->v_first;
	q->hdr_name[5] = JS_HDR_COUNT;
	q->hdr_value[5] = m->v_count;
	q->hdr_name[6] = JS_HDR_FORMAT;
	q->hdr_value[6] = BATCH_MAGIC;
	q->nhdr = 7;
	if (reason) {
		/* A header value is one line of printable ASCII. */
		bool blank = true;
		size_t i;

		snprintf(m->reason, sizeof(m->reason), "%s", reason);
		for (i = 0; m->reason[i]; i++) {
			if (m->reason[i] < 0x20 || m->reason[i] > 0x7e)
				m->reason[i] = ' ';
			if (m->reason[i] != ' ')
				blank = false;
		}
		/* jetstream.c refuses a blank header value. */
		if (blank)
			snprintf(m->reason, sizeof(m->reason), "unspecified");
		q->hdr_name[7] = JS_HDR_DEAD_LETTER;
		q->hdr_value[7] = m->reason;
		q->nhdr = 8;
	}
}

/* Bytes the server counts against max_payload: headers and body. */
static uint64_t msg_wire_size(const struct ship_msg *m, size_t body_len)
{
	const struct js_req *q = &m->req;
	/* "NATS/1.0\r\n", the final "\r\n", Nats-Msg-Id and the expected
	 * last subject sequence (20 digits at most). */
	uint64_t n = 10 + 2 + strlen("Nats-Msg-Id: \r\n") + strlen(q->msg_id) +
		     strlen("Nats-Expected-Last-Subject-Sequence: \r\n") + 20;

	for (unsigned int i = 0; i < q->nhdr; i++)
		n += strlen(q->hdr_name[i]) + 4 + strlen(q->hdr_value[i]);
	return n + body_len;
}

/*
 * The gates every publish passes, in order: the window, the link's bound,
 * the retry budget (for a retry), the rate limit and last the breaker (in
 * half-open, an allowed request is a probe whose outcome must be
 * reported).  true: send now (tokens taken); false and *@wait_ms: when a
 * token is due (0: wait for an event).
 */
static bool region_gate(struct ship *sh, struct ship_region *r, bool retry,
			uint64_t now, uint64_t *wait_ms)
{
	*wait_ms = 0;
	if (r->inflight >= r->win.window)
		return false;
	if (js_link_inflight(r->link) >= (size_t)r->win.max + 8)
		return false;
	if (retry && token_bucket_wait_ms(&r->retry, now)) {
		*wait_ms = token_bucket_wait_ms(&r->retry, now);
		return false;
	}
	if (token_bucket_wait_ms(&r->rate, now)) {
		*wait_ms = token_bucket_wait_ms(&r->rate, now);
		return false;
	}
	if (!breaker_allow(&r->br, now)) {
		region_breaker_note(r);
		return false;
	}
	region_breaker_note(r);
	if (retry)
		token_bucket_take(&r->retry, now);
	token_bucket_take(&r->rate, now);
	return true;
}

static uint64_t ship_tag(struct ship *sh, unsigned int part)
{
	return ++sh->serial << SHIP_TAG_PART_BITS | part;
}

static void rp_dead_letter(struct ship *sh, struct ship_region *r,
			   struct ship_part *p, struct ship_rp *rp,
			   const struct spool_batch_row *row,
			   const char *reason);

/* A permanent failure of rp->row (sent or found too big to send). */
static void rp_permanent(struct ship *sh, struct ship_region *r,
			 struct ship_part *p, struct ship_rp *rp,
			 const struct spool_batch_row *row, const char *detail,
			 uint64_t now)
{
	rp->perm++;
	rp->fails++;
	region_error(r, "%s: %s", p->token, detail);
	if (rp->perm >= sh->p.dead_letter_after) {
		rp_dead_letter(sh, r, p, rp, row, detail);
		rp->state = RP_IDLE;
		return;
	}
	rp_backoff(sh, rp, RP_IDLE, now);
}

struct dead_find {
	const char *region;
	uint64_t batch_id;
	uint64_t dead_id;
};

static int dead_find_cb(const struct spool_dead *d, void *arg)
{
	struct dead_find *f = arg;

	if (d->batch.id != f->batch_id || strcmp(d->region, f->region))
		return 0;
	f->dead_id = d->id;
	return 1;
}

/*
 * Give up on @row at @r: copy it into the dead-letter table (once, also
 * across restarts) and make its marker the next thing @rp sends.
 */
static void rp_dead_letter(struct ship *sh, struct ship_region *r,
			   struct ship_part *p, struct ship_rp *rp,
			   const struct spool_batch_row *row,
			   const char *reason)
{
	struct dead_find f = { .region = r->name, .batch_id = row->id };
	uint64_t dead_id = 0;
	int ret;

	ret = spool_foreach_dead(sh->spool, dead_find_cb, &f);
	if (ret == 1) {
		dead_id = f.dead_id;
	} else {
		ret = spool_dead_add(sh->spool, row->id, r->name, reason,
				     rp->perm, &dead_id);
		if (ret) {
			/* Keep retrying the batch; nothing is skipped. */
			ship_spool_error(sh, ret, "adding a dead letter");
			return;
		}
	}
	log_error("region \"%s\": batch %s epoch %" PRIu64 " seqs %" PRIu64
		  "..%" PRIu64 " dead-lettered (id %" PRIu64
		  ") after %u attempts: %s", r->name, p->token, row->epoch,
		  row->first_seq, row_last_seq(row), dead_id, rp->perm, reason);
	rp->dead_pending = true;
	rp->dead_id = dead_id;
	rp->row = *row;
	snprintf(rp->dead_reason, sizeof(rp->dead_reason), "%s", reason);
	rp->perm = 0;
	rp->fails = 0;
	r->dead_lettered++;
}

/* The cursor of @rp is now @row, stored at @stream_seq. */
static void rp_advance(struct ship_rp *rp, const struct spool_batch_row *row,
		       uint64_t stream_seq)
{
	if (row->id <= rp->cur.batch_id)
		return;
	rp->cur.batch_id = row->id;
	rp->cur.epoch = row->epoch;
	rp->cur.last_seq = row_last_seq(row);
	rp->cur.stream_seq = stream_seq;
	rp->dirty = true;
}

/* --- coalescing ------------------------------------------------------ */

/*
 * A partition's rows waiting behind an idle (region, partition) go out as
 * one message: decoded, their records concatenated, every loss entry
 * carried, encoded once (zstd).  The message is still one EVB1 batch, named
 * by its first row (message id, Evring-First-Seq) and counting all its
 * records (Evring-Count), so consumers see one batch.  Only whole rows of
 * one epoch with contiguous seqs and records (not loss-only rows) are
 * merged; a dead-letter marker or a replay is always sent alone, before
 * any batch (rp_pump), so no merge spans them.
 */
#define SHIP_MERGE_ROWS		1024	/* spooled rows in one message */

struct ship_merged {
	void *body;			/* malloc'ed encoded batch */
	size_t len;
	struct spool_batch_row last;	/* the last row it holds */
	unsigned int nrows;
	uint64_t count;			/* records */
};

struct merge_walk {
	struct spool_batch_row *rows;
	unsigned int n;
	uint64_t bytes, budget;		/* stored bytes: sum, bound */
};

static int merge_walk_cb(const struct spool_batch_row *r, void *arg)
{
	struct merge_walk *w = arg;
	const struct spool_batch_row *prev = &w->rows[w->n - 1];

	if (w->n >= SHIP_MERGE_ROWS || !r->count || r->epoch != prev->epoch ||
	    r->first_seq != row_last_seq(prev) + 1 ||
	    w->bytes + r->bytes > w->budget)
		return 1;
	w->rows[w->n++] = *r;
	w->bytes += r->bytes;
	return 0;
}

struct merge_buf {
	unsigned char *rec;		/* records, concatenated */
	size_t rec_len, rec_cap;
	struct batch_loss *loss;	/* BATCH_LOSS_MAX entries */
	unsigned int nloss;
	uint64_t count;
	struct batch_meta meta;		/* of the first row */
	/* per row taken: records, loss entries and count up to its end */
	size_t *rec_end;
	unsigned int *loss_end;
	uint64_t *count_end;
};

/*
 * Append spooled row @row to @b: 0; -EMSGSIZE when it does not fit
 * @raw_max raw bytes or the loss entries bound; -EBADMSG when its body is
 * not the batch its row says; -errno.
 */
static int merge_add(struct ship *sh, struct merge_buf *b, unsigned int i,
		     const struct spool_batch_row *row, uint64_t raw_max)
{
	struct batch_view v;
	void *body = NULL;
	size_t len = 0;
	int ret;

	ret = spool_get_batch(sh->spool, row->id, &body, &len, NULL);
	if (ret)
		return ret;
	ret = batch_decode(body, len, &v);
	if (ret)
		goto out;
	ret = -EBADMSG;
	if (v.meta.source != row->source || v.meta.partition != row->partition ||
	    v.meta.epoch != row->epoch || v.meta.first_seq != row->first_seq ||
	    v.meta.count != row->count || (i && strcmp(v.meta.host_id,
						       b->meta.host_id)))
		goto release;
	ret = -EMSGSIZE;
	if (b->nloss + v.nloss > BATCH_LOSS_MAX ||
	    BATCH_HDR_LEN + b->rec_len + v.records_len +
	    (uint64_t)(b->nloss + v.nloss) * BATCH_LOSS_SIZE > raw_max)
		goto release;
	if (b->rec_len + v.records_len > b->rec_cap) {
		size_t cap = (b->rec_len + v.records_len) * 2;
		unsigned char *n = realloc(b->rec, cap);

		ret = -ENOMEM;
		if (!n)
			goto release;
		b->rec = n;
		b->rec_cap = cap;
	}
	memcpy(b->rec + b->rec_len, v.records, v.records_len);
	b->rec_len += v.records_len;
	for (unsigned int k = 0; k < v.nloss; k++)
		batch_view_loss(&v, k, &b->loss[b->nloss++]);
	if (!i)
		b->meta = v.meta;
	b->count += v.meta.count;
	b->rec_end[i] = b->rec_len;
	b->loss_end[i] = b->nloss;
	b->count_end[i] = b->count;
	ret = 0;
release:
	batch_view_release(&v);
out:
	free(body);
	return ret;
}

/* The first @n rows of @b as one zstd batch of @m's message size. */
static int merge_encode(const struct merge_buf *b, unsigned int n,
			struct ship_msg *m, void **out, size_t *out_len)
{
	struct batch_meta meta = b->meta;

	meta.count = b->count_end[n - 1];
	snprintf(m->v_count, sizeof(m->v_count), "%" PRIu64,
		 b->count_end[n - 1]);
	return batch_encode(&meta, b->rec, b->rec_end[n - 1], b->loss,
			    b->loss_end[n - 1], BATCH_COMP_ZSTD, out, out_len);
}

/*
 * Coalesce the rows waiting after @first (which @m names) into one batch
 * of at most ship.max_message raw bytes whose message, headers included,
 * fits the region's max_payload.  1 and *@out (m's Evring-Count set to the
 * merged count); 0: send @first alone, byte for byte as spooled (nothing
 * waits behind it, or it cannot be merged); -errno.
 */
static int rp_merge(struct ship *sh, struct ship_region *r,
		    struct ship_part *p, const struct spool_batch_row *first,
		    struct ship_msg *m, struct ship_merged *out)
{
	struct merge_walk w = { .n = 1, .bytes = first->bytes };
	struct merge_buf b = { 0 };
	uint64_t hdr = msg_wire_size(m, 0) + 16;	/* a longer count */
	uint64_t raw_max = sh->p.max_message;
	unsigned int n = 0;
	void *enc = NULL;
	size_t enc_len = 0;
	int ret;

	if (!first->count)
		return 0;
	w.budget = r->max_payload <= 0 ? UINT64_MAX :
		   (uint64_t)r->max_payload > hdr ?
		   (uint64_t)r->max_payload - hdr : 0;
	if (raw_max > BATCH_BODY_MAX)
		raw_max = BATCH_BODY_MAX;
	w.rows = malloc(SHIP_MERGE_ROWS * sizeof(*w.rows));
	if (!w.rows)
		return -ENOMEM;
	w.rows[0] = *first;
	ret = spool_foreach_row(sh->spool, first->id, true, p->source,
				p->partition, SHIP_MERGE_ROWS - 1, merge_walk_cb,
				&w);
	if (ret >= 0)
		ret = 0;	/* 1: the walk stopped at a row not taken */
	if (ret < 0 || w.n < 2)
		goto out;
	b.loss = malloc(BATCH_LOSS_MAX * sizeof(*b.loss));
	b.rec_end = malloc(w.n * sizeof(*b.rec_end));
	b.loss_end = malloc(w.n * sizeof(*b.loss_end));
	b.count_end = malloc(w.n * sizeof(*b.count_end));
	ret = -ENOMEM;
	if (!b.loss || !b.rec_end || !b.loss_end || !b.count_end)
		goto out;
	/* Take rows while they fit; a row that cannot be read ends it. */
	for (n = 0; n < w.n; n++)
		if (merge_add(sh, &b, n, &w.rows[n], raw_max))
			break;
	/* zstd of the whole is about the sum of the parts: check, shrink. */
	while (n >= 2) {
		ret = merge_encode(&b, n, m, &enc, &enc_len);
		if (ret)
			goto out;
		if (r->max_payload <= 0 ||
		    msg_wire_size(m, enc_len) <= (uint64_t)r->max_payload)
			break;
		free(enc);
		enc = NULL;
		n /= 2;
	}
	ret = 0;
	if (n < 2 || !enc)
		goto out;
	out->body = enc;
	out->len = enc_len;
	out->last = w.rows[n - 1];
	out->nrows = n;
	out->count = b.count_end[n - 1];
	enc = NULL;
	ret = 1;
out:
	if (ret != 1)	/* alone: the count of @first */
		snprintf(m->v_count, sizeof(m->v_count), "%" PRIu32,
			 first->count);
	free(enc);
	free(b.rec);
	free(b.loss);
	free(b.rec_end);
	free(b.loss_end);
	free(b.count_end);
	free(w.rows);
	return ret;
}

/*
 * Submit one publish for @rp: the batch @row (body from the spool), its
 * dead-letter marker, or a replay.  Returns true when submitted.
 */
static bool rp_publish(struct ship *sh, struct ship_region *r,
		       unsigned int pi, struct ship_rp *rp, enum pub_kind kind, const struct spool_batch_row *row,
		       struct ship_replay *rep, uint64_t now)
{
	struct ship_msg m;
	struct ship_merged mg = { .nrows = 1 };
	void *body = NULL;
	size_t len = 0;
	struct ship_part *p = sh->parts[pi];
	uint64_t wait_ms, size;
	bool retry = rp->fails || rp->perm;
	int ret;

	msg_build(sh, r, p, rp, row, kind == PUB_MARKER ? rp->dead_reason :
		  NULL, &m);
	if (kind == PUB_BATCH) {
		size = msg_wire_size(&m, row->bytes);
		if (r->max_payload > 0 && size > (uint64_t)r->max_payload) {
			char why[JS_DETAIL_MAX];

			snprintf(why, sizeof(why),
				 "batch of %" PRIu64 " bytes (with headers) "
				 "over the region's max_payload of %" PRId64,
				 size, r->max_payload);
			rp_permanent(sh, r, p, rp, row, why, now);
			return false;
		}
	}
	if (!region_gate(sh, r, retry, now, &wait_ms)) {
		if (wait_ms) {
			rp->state = RP_BACKOFF;
			rp->after = RP_IDLE;
			rp->until_ms = now + wait_ms;
		}
		return false;
	}
	if (kind == PUB_BATCH && !rp->perm && !rp->nomerge &&
	    rp_merge(sh, r, p, row, &m, &mg) == 1) {
		body = mg.body;
		len = mg.len;
		m.req.data = body;
		m.req.len = len;
	} else if (kind == PUB_BATCH) {
		struct spool_batch_row got;

		ret = spool_get_batch(sh->spool, row->id, &body, &len, &got);
		if (ret) {
			ship_spool_error(sh, ret, "reading a batch");
			/* A half-open breaker let a probe through: report. */
			if (r->br.state != BREAKER_CLOSED)
				region_success(r, 0, now);
			return false;
		}
		m.req.data = body;
		m.req.len = len;
	} else if (kind == PUB_REPLAY) {
		m.req.data = rep->body;
		m.req.len = rep->len;
	}
	m.req.tag = ship_tag(sh, pi);
	if (kind == PUB_BATCH)
		failpoint(FP_SHIP_BEFORE_PUBLISH);
	ret = js_link_submit(r->link, &m.req);
	free(body);
	if (ret) {
		region_error(r, "submit: %s", strerror(-ret));
		region_failure(r, "cannot submit", now);
		rp->fails++;
		rp_backoff(sh, rp, RP_IDLE, now);
		return false;
	}
	if (retry)
		r->retries++;
	rp->tag = m.req.tag;
	rp->kind = kind;
	if (kind == PUB_BATCH) {
		rp->row = *row;
		rp->last = mg.nrows > 1 ? mg.last : *row;
		rp->nrows = mg.nrows;
		rp->mcount = mg.nrows > 1 ? mg.count : row->count;
		rp->mbytes = len;
	}
	rp->replay = rep;
	if (rep)
		rep->inflight = true;
	rp->state = RP_INFLIGHT;
	r->inflight++;
	return true;
}

static struct ship_replay *replay_for(struct ship *sh, unsigned int r,
				      unsigned int part)
{
	for (struct ship_replay *x = sh->replays; x; x = x->next)
		if (x->region == r && x->part == part && !x->inflight)
			return x;
	return NULL;
}

static void replay_drop(struct ship *sh, struct ship_replay *rep)
{
	for (struct ship_replay **pp = &sh->replays; *pp; pp = &(*pp)->next)
		if (*pp == rep) {
			*pp = rep->next;
			free(rep->body);
			free(rep);
			return;
		}
}

/* --- reconciling ----------------------------------------------------- */

static void rp_reconcile(struct ship *sh, struct ship_region *r,
			 struct ship_part *p, unsigned int pi,
			 struct ship_rp *rp, uint64_t now)
{
	struct js_req q = { .op = JS_OP_LAST };
	int ret;

	subject_of(sh, r, p, q.subject, sizeof(q.subject));
	q.tag = ship_tag(sh, pi);
	ret = js_link_submit(r->link, &q);
	if (ret) {
		rp->fails++;
		rp_backoff(sh, rp, RP_NEED_RECONCILE, now);
		return;
	}
	r->reconciles++;
	rp->tag = q.tag;
	rp->deleting = false;
	rp->stale = false;
	rp->state = RP_RECONCILING;
}

static void rp_delete(struct ship *sh, struct ship_region *r,
		      unsigned int pi, struct ship_rp *rp, uint64_t seq,
		      uint64_t now)
{
	struct js_req q = { .op = JS_OP_DELETE, .seq = seq };

	q.tag = ship_tag(sh, pi);
	if (js_link_submit(r->link, &q)) {
		rp->fails++;
		rp_backoff(sh, rp, RP_NEED_RECONCILE, now);
		return;
	}
	rp->tag = q.tag;
	rp->deleting = true;
	rp->state = RP_RECONCILING;
}

/*
 * Parse "<host>/<token>/<epoch>/<first_seq>[/dead]" of this host and
 * partition.  false: not one of ours.
 */
static bool msg_id_parse(const struct ship *sh, const struct ship_part *p,
			 const char *id, uint64_t *epoch, uint64_t *first_seq)
{
	size_t hl = strlen(sh->host), tl = strlen(p->token);
	const char *s;
	char *end;

	if (strncmp(id, sh->host, hl) || id[hl] != '/')
		return false;
	s = id + hl + 1;
	if (strncmp(s, p->token, tl) || s[tl] != '/')
		return false;
	s += tl + 1;
	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	*epoch = strtoull(s, &end, 10);
	if (errno || *end != '/' || end[1] < '0' || end[1] > '9')
		return false;
	*first_seq = strtoull(end + 1, &end, 10);
	if (errno)
		return false;
	return !*end || !strcmp(end, "/dead");
}

struct span_find {
	uint64_t epoch, first_seq, end;	/* the message: seqs first..end */
	uint64_t count;			/* its records, 0: unknown */
	bool found, past;		/* past: a row crosses start or end */
	struct spool_batch_row first, last;
};

static int span_find_cb(const struct spool_batch_row *r, void *arg)
{
	struct span_find *f = arg;

	if (!f->count) {	/* one row: the one that starts there */
		if (r->epoch != f->epoch || r->first_seq != f->first_seq)
			return 0;
		f->found = true;
		f->first = f->last = *r;
		return 1;
	}
	if (r->epoch != f->epoch || row_last_seq(r) < f->first_seq)
		return 0;	/* another epoch, or before the message */
	if (r->first_seq > f->end)
		return 1;	/* after it */
	if (r->first_seq < f->first_seq || row_last_seq(r) > f->end) {
		f->past = true;	/* a row across its start or end */
		return 1;
	}
	if (!f->found)
		f->first = *r;
	f->found = true;
	f->last = *r;
	return row_last_seq(r) == f->end;
}

/*
 * A stored message starts at (@epoch, @first_seq) and holds @count records
 * (0: unknown, then it is the one row that starts there): find the rows
 * after @rp's cursor that it holds, whole (messages hold whole rows; the
 * cursor normally sits at a message's end, but may have been restored to
 * an older one).  1 and *@first, *@last: the first such row and the one
 * whose last seq is first_seq + count - 1; 0: it holds none of them;
 * -errno.  A message that does not end with a row (never sent so) is
 * logged, and only the whole rows before the break are reported.
 */
static int rp_span_find(struct ship *sh, struct ship_region *r,
			struct ship_part *p, struct ship_rp *rp,
			uint64_t epoch, uint64_t first_seq, uint64_t count,
			struct spool_batch_row *first,
			struct spool_batch_row *last)
{
	struct span_find f = {
		.epoch = epoch, .first_seq = first_seq, .count = count,
		.end = count ? first_seq + count - 1 : 0,
	};
	int ret;

	ret = spool_foreach_row(sh->spool, rp->cur.batch_id, true, p->source,
				p->partition, 0, span_find_cb, &f);
	if (ret < 0)
		return ret;
	if (count && (f.past || (f.found && row_last_seq(&f.last) != f.end)))
		log_error("region \"%s\": %s: stored message epoch %" PRIu64
			  " seqs %" PRIu64 "..%" PRIu64 " does not end with a "
			  "spooled row; %s", r->name, p->token, epoch,
			  first_seq, f.end, f.found ?
			  "taking the whole rows before the break" :
			  "taking none");
	if (!f.found)
		return 0;
	if (count && f.first.first_seq != first_seq &&
	    (rp->cur.epoch != epoch ||
	     rp->cur.last_seq + 1 != f.first.first_seq)) {
		/*
		 * Its first rows are neither here nor this region's: they
		 * were trimmed (failover: another region has them), so its
		 * first row's id is at most the partition's trim point.
		 */
		f.first.id = p->trimmed;
		f.first.first_seq = first_seq;
	}
	*first = f.first;
	*last = f.last;
	return 1;
}

/*
 * After a reconcile learnt the subject's last sequence: a publish of
 * unknown outcome can still land only while that is the sequence it
 * expected; once the subject moved past it (or it was found, which moved
 * it), it is forgotten.  Until then a reconcile that finds it recognises
 * it even when its rows were trimmed meanwhile.
 */
static void suspect_prune(struct ship_rp *rp)
{
	if (rp->suspect.set && rp->suspect.expect != rp->lss)
		rp->suspect.set = false;
}

/* A replay of (@epoch, @first_seq) is stored here at @seq. */
static void rp_replayed_at(struct ship_rp *rp, uint64_t epoch,
			   uint64_t first_seq, uint64_t seq)
{
	rp->replayed_seq = seq;
	rp->replayed_epoch = epoch;
	rp->replayed_first = first_seq;
}

/* "<...>/dead": a dead-letter marker's message id. */
static bool msg_id_is_marker(const char *id)
{
	size_t n = strlen(id);

	return n > 5 && !strcmp(id + n - 5, "/dead");
}

/*
 * The last message is the replay of a dead letter: one queued for this
 * (region, partition) whose outcome was unknown (it is delivered: the
 * dead letter leaves the table), or the last one delivered here.  Either
 * way it is the replay's delivery, never a stray copy of the batch (the
 * batch's row may still be spooled): the cursor stays.  true: it was.
 */
static bool rp_replay_landed(struct ship *sh, struct ship_region *r,
			     unsigned int pi, struct ship_rp *rp,
			     const char *msg_id, uint64_t epoch,
			     uint64_t first_seq, uint64_t seq)
{
	for (struct ship_replay *x = sh->replays; x; x = x->next) {
		if (x->region != r->idx || x->part != pi || x->inflight ||
		    strcmp(x->msg_id, msg_id))
			continue;
		if (!spool_dead_delete(sh->spool, x->dead_id))
			log_info("region \"%s\": dead letter %" PRIu64
				 " replayed", r->name, x->dead_id);
		replay_drop(sh, x);
		rp_replayed_at(rp, epoch, first_seq, seq);
		return true;
	}
	return rp->replayed_seq == seq && rp->replayed_epoch == epoch &&
	       rp->replayed_first == first_seq;
}

/*
 * The last message is a dead-letter marker of (@epoch, @first_seq) at
 * @seq.  The one this rp still owes: it is there, the cursor moves past
 * its batch and it is not sent again.  Another (e.g. from before a
 * restart): its batch is adopted when still spooled after the cursor.  A
 * marker is never deleted as a stray: it copies no batch.
 */
static void rp_marker_found(struct ship *sh, struct ship_region *r,
			    struct ship_part *p, struct ship_rp *rp,
			    uint64_t epoch, uint64_t first_seq, uint64_t seq,
			    uint64_t now)
{
	struct spool_batch_row first, last;
	int ret;

	if (rp->dead_pending && rp->row.epoch == epoch &&
	    rp->row.first_seq == first_seq) {
		rp_advance(rp, &rp->row, seq);
		rp->dead_pending = false;
		return;
	}
	/* a marker names one row */
	ret = rp_span_find(sh, r, p, rp, epoch, first_seq, 0, &first, &last);
	if (ret < 0) {
		ship_spool_error(sh, ret, "reconciling with the spool");
		rp->fails++;
		rp_backoff(sh, rp, RP_NEED_RECONCILE, now);
		return;
	}
	if (ret > 0)
		rp_advance(rp, &first, seq);
}

/*
 * The stream's last message on the subject is (@epoch, @first_seq) with
 * @count records (several rows when merged) at @seq.  Decide what this
 * region holds: adopt its last row as the cursor, keep the cursor, or
 * (failover) delete a stray copy when another region has any of its rows.
 * Returns true when a DELETE was submitted.
 */
static bool rp_settle(struct ship *sh, struct ship_region *r,
		      struct ship_part *p, unsigned int pi,
		      struct ship_rp *rp, uint64_t epoch, uint64_t first_seq,
		      uint64_t count, uint64_t seq, uint64_t now)
{
	struct row_find f = { .epoch = epoch, .first_seq = first_seq };
	struct spool_batch_row first;	/* f.row: the last row it holds */
	int ret;

	ret = rp_span_find(sh, r, p, rp, epoch, first_seq, count, &first,
			   &f.row);
	f.found = ret > 0;
	if (ret < 0) {
		ship_spool_error(sh, ret, "reconciling with the spool");
		rp->fails++;
		rp_backoff(sh, rp, RP_NEED_RECONCILE, now);
		return false;
	}
	if (!f.found && rp->suspect.set &&
	    rp->suspect.row.epoch == epoch &&
	    rp->suspect.row.first_seq == first_seq &&
	    rp->suspect.row.id > rp->cur.batch_id) {
		/* Trimmed meanwhile, but we know which batch it was. */
		first = f.row = rp->suspect.row;
		if (count && row_last_seq(&rp->suspect.last) ==
			     first_seq + count - 1)
			f.row = rp->suspect.last;
		f.found = true;
	}
	/* The suspect is kept or forgotten after the reconcile (prune). */
	if (!f.found)
		return false;	/* ours already, or trimmed: keep */
	if (sh->mode == CONFIG_SHIP_FAILOVER) {
		for (unsigned int o = 0; o < sh->nreg; o++) {
			const struct ship_rp *x = &p->rp[o];

			if (o == r->idx)
				continue;
			/*
			 * A marker still owed (or in flight) claims its own
			 * batch only: its region sends nothing past it.
			 */
			if (x->cur.batch_id >= first.id ||
			    (x->state == RP_INFLIGHT && x->kind == PUB_BATCH &&
			     x->row.id <= f.row.id) ||
			    (x->dead_pending && x->row.id >= first.id &&
			     x->row.id <= f.row.id)) {
				/* Another region has it: a stray copy. */
				log_warn("region \"%s\": %s: deleting stray "
					 "copy of epoch %" PRIu64 " seq %" PRIu64
					 " (stream seq %" PRIu64
					 "), region \"%s\" has it",
					 r->name, p->token, epoch, first_seq,
					 seq, sh->reg[o].name);
				rp->suspect.set = true;
				rp->suspect.row = first;
				rp->suspect.last = f.row;
				/* found again while the DELETE is unknown */
				rp->suspect.expect = seq;
				rp_delete(sh, r, pi, rp, seq, now);
				return true;
			}
		}
	}
	rp_advance(rp, &f.row, seq);
	return false;
}

static void rp_last_result(struct ship *sh, struct ship_region *r,
			   struct ship_part *p, unsigned int pi,
			   struct ship_rp *rp, const struct js_result *res,
			   uint64_t now)
{
	uint64_t epoch, first_seq;

	switch (res->cls) {
	case JS_NOT_FOUND:
		rp->lss = 0;
		break;
	case JS_OK:
		rp->lss = res->stream_seq;
		if (!msg_id_parse(sh, p, res->msg_id, &epoch, &first_seq)) {
			log_warn("region \"%s\": %s: last message (stream seq %"
				 PRIu64 ", id \"%s\") is not evring's; "
				 "continuing after it", r->name, p->token,
				 res->stream_seq, res->msg_id);
			break;
		}
		/* A replay's delivery is never a stray, nor a marker. */
		if (rp_replay_landed(sh, r, pi, rp, res->msg_id, epoch,
				     first_seq, res->stream_seq))
			break;
		if (msg_id_is_marker(res->msg_id)) {
			rp_marker_found(sh, r, p, rp, epoch, first_seq,
					res->stream_seq, now);
			if (rp->state == RP_BACKOFF)
				return;
			break;
		}
		if (rp_settle(sh, r, p, pi, rp, epoch, first_seq, res->count,
			      res->stream_seq, now))
			return;		/* DELETE submitted */
		if (rp->state == RP_BACKOFF)
			return;
		break;
	case JS_TRANSIENT:
	case JS_AMBIGUOUS:
	default:
		region_error(r, "%s: reconcile: %s", p->token, res->detail);
		if (res->cls != JS_PERMANENT)
			region_failure(r, res->detail, now);
		rp->fails++;
		rp_backoff(sh, rp, RP_NEED_RECONCILE, now);
		return;
	}
	suspect_prune(rp);
	/* Its marker (or a later batch) is there: not sent again. */
	if (rp->dead_pending && rp->cur.batch_id >= rp->row.id)
		rp->dead_pending = false;
	rp->fails = 0;
	rp->state = rp->stale ? RP_NEED_RECONCILE : RP_IDLE;
	rp->empty_after = UINT64_MAX;
}

static void rp_delete_result(struct ship *sh, struct ship_region *r,
			     struct ship_part *p, struct ship_rp *rp,
			     const struct js_result *res, uint64_t now)
{
	if (res->cls == JS_OK || res->cls == JS_NOT_FOUND) {
		rp->state = RP_NEED_RECONCILE;	/* look again */
		return;
	}
	region_error(r, "%s: delete stray: %s", p->token, res->detail);
	if (res->cls != JS_PERMANENT)
		region_failure(r, res->detail, now);
	rp->fails++;
	rp_backoff(sh, rp, RP_NEED_RECONCILE, now);
}

/* --- results --------------------------------------------------------- */

static void latency_note(struct ship *sh, struct ship_region *r,
			 const struct spool_batch_row *row,
			 uint64_t ack_us)
{
	uint64_t now = realtime_ns(), us;
	unsigned int b;

	r->lat_ring[r->lat_pos] = ack_us;
	r->lat_pos = (r->lat_pos + 1) % SHIP_LAT_RING;
	if (r->lat_n < SHIP_LAT_RING)
		r->lat_n++;
	us = now > row->created_ns ? (now - row->created_ns) / 1000 : 0;
	for (b = 0; us > lat_bounds_us[b]; b++)
		;
	sh->lat_count[b]++;
	sh->lat_sum_us += us;
	sh->lat_n++;
}

static void rp_publish_result(struct ship *sh, struct ship_region *r,
			      struct ship_part *p, struct ship_rp *rp,
			      const struct js_result *res, uint64_t now)
{
	enum pub_kind kind = rp->kind;
	struct ship_replay *rep = rp->replay;

	r->inflight--;
	rp->replay = NULL;
	if (rep)
		rep->inflight = false;
	switch (res->cls) {
	case JS_OK:
	case JS_DUPLICATE:
		if (res->cls == JS_DUPLICATE && kind == PUB_BATCH) {
			/*
			 * An earlier attempt with this message id is stored,
			 * maybe holding other rows than this one (rows are
			 * regrouped between attempts): the stream says which.
			 */
			r->duplicates++;
			region_success(r, res->latency_us, now);
			rp->state = RP_NEED_RECONCILE;
			break;
		}
		/* Stored in the region; the cursor moves at the next tick. */
		if (kind == PUB_BATCH)
			failpoint(FP_SHIP_AFTER_PUBLISH);
		rp->lss = res->stream_seq;
		rp->fails = 0;
		rp->suspect.set = false;
		aimd_ack(&r->win, res->latency_us, now);
		region_success(r, res->latency_us, now);
		if (res->cls == JS_DUPLICATE)
			r->duplicates++;
		if (kind == PUB_REPLAY) {
			int ret = spool_dead_delete(sh->spool, rep->dead_id);

			if (ret && ret != -ENOENT)
				ship_spool_error(sh, ret,
						 "deleting a replayed dead letter");
			else
				log_info("region \"%s\": dead letter %" PRIu64
					 " replayed", r->name, rep->dead_id);
			rp_replayed_at(rp, rep->row.epoch, rep->row.first_seq,
				       res->stream_seq);
			replay_drop(sh, rep);
		} else {
			if (kind == PUB_MARKER)
				rp->dead_pending = false;
			else
				latency_note(sh, r, &rp->row, res->latency_us);
			rp_advance(rp, kind == PUB_BATCH ? &rp->last :
				   &rp->row, res->stream_seq);
			rp->perm = 0;
			r->shipped_batches += kind == PUB_BATCH ? rp->nrows : 0;
			r->shipped_events += kind == PUB_BATCH ? rp->mcount : 0;
			r->shipped_bytes += kind == PUB_BATCH ? rp->mbytes : 0;
		}
		rp->state = rp->stale ? RP_NEED_RECONCILE : RP_IDLE;
		break;
	case JS_WRONG_LAST:
		region_success(r, res->latency_us, now);
		region_error(r, "%s: %s", p->token, res->detail);
		rp->state = RP_NEED_RECONCILE;
		break;
	case JS_AMBIGUOUS:
		region_error(r, "%s: %s", p->token, res->detail);
		region_failure(r, res->detail, now);
		aimd_error(&r->win, now);
		if (kind != PUB_REPLAY) {
			rp->suspect.set = true;
			rp->suspect.row = rp->row;
			rp->suspect.last = kind == PUB_BATCH ? rp->last :
					   rp->row;
			rp->suspect.expect = rp->lss;	/* it was sent with */
		}
		rp->fails++;
		rp_backoff(sh, rp, RP_NEED_RECONCILE, now);
		break;
	case JS_PERMANENT:
		region_success(r, res->latency_us, now);
		if (kind == PUB_REPLAY) {
			log_error("region \"%s\": replay of dead letter %" PRIu64
				  " refused: %s", r->name, rep->dead_id,
				  res->detail);
			region_error(r, "replay: %s", res->detail);
			replay_drop(sh, rep);
			rp->state = RP_IDLE;
		} else if (kind == PUB_MARKER) {
			log_error("region \"%s\": %s: dead-letter marker refused "
				  "(%s); moving past the batch anyway",
				  r->name, p->token, res->detail);
			rp->dead_pending = false;
			rp_advance(rp, &rp->row, rp->cur.stream_seq);
			rp->state = RP_IDLE;
		} else if (rp->nrows > 1) {
			/* Not held against a row: its rows go alone now. */
			log_warn("region \"%s\": %s: merged message refused (%s); "
				 "sending its rows one by one", r->name,
				 p->token, res->detail);
			region_error(r, "%s: %s", p->token, res->detail);
			rp->nomerge = true;
			rp->state = RP_IDLE;
		} else {
			rp_permanent(sh, r, p, rp, &rp->row, res->detail, now);
		}
		if (rp->stale && rp->state == RP_IDLE)
			rp->state = RP_NEED_RECONCILE;
		break;
	case JS_TRANSIENT:
	default:
		region_error(r, "%s: %s", p->token, res->detail);
		region_failure(r, res->detail, now);
		aimd_error(&r->win, now);
		rp->fails++;
		rp_backoff(sh, rp, rp->stale ? RP_NEED_RECONCILE : RP_IDLE,
			   now);
		break;
	}
	rp->stale = false;
}

static void region_ensure(struct ship *sh, struct ship_region *r, bool probe)
{
	struct js_req q = { .op = JS_OP_ENSURE };

	if (r->ensure_pending)
		return;
	q.tag = ship_tag(sh, SHIP_TAG_REGION);
	if (js_link_submit(r->link, &q)) {
		/*
		 * A probe the breaker let through must report, or the
		 * breaker stays half-open with no probe left, for good.
		 */
		if (probe)
			region_failure(r, "cannot submit a probe",
				       loop_now_ms());
		return;
	}
	r->ensure_pending = true;
	r->ensure_probe = probe;
	r->ensure_tag = q.tag;
}

static void region_ensure_result(struct ship *sh, struct ship_region *r,
				 const struct js_result *res, uint64_t now)
{
	bool probe = r->ensure_probe;

	r->ensure_pending = false;
	r->ensure_probe = false;
	if (res->cls != JS_OK) {
		region_error(r, "stream \"%s\": %s", r->stream, res->detail);
		if (!r->ensure_fails++)
			log_warn("region \"%s\": stream \"%s\" not ready: %s",
				 r->name, r->stream, res->detail);
		if (probe || (r->connected && res->cls != JS_PERMANENT))
			region_failure(r, res->detail, now);
		r->ensure_at_ms = now + ship_backoff(sh, r->ensure_fails - 1);
		return;
	}
	if (!r->ensured || r->replicas != res->replicas ||
	    r->max_payload != res->max_payload) {
		if (res->durable)
			log_info("region \"%s\": stream \"%s\" %s, %u replicas, "
				 "max_payload %" PRId64, r->name, r->stream,
				 res->created ? "created" : "ready",
				 res->replicas, res->max_payload);
		else
			log_warn("region \"%s\": stream \"%s\" %s, %u replicas, "
				 "max_payload %" PRId64 ": NOT DURABLE (fewer "
				 "than 3 replicas; acknowledged writes can be "
				 "lost on a server crash)", r->name, r->stream,
				 res->created ? "created" : "ready",
				 res->replicas, res->max_payload);
	}
	r->ensured = true;
	r->ensure_fails = 0;
	r->replicas = res->replicas;
	r->durable = res->durable;
	r->max_payload = res->max_payload;
	if (r->br.state != BREAKER_CLOSED)
		region_success(r, res->latency_us, now);
}

/* Every rp of @r reconciles before its next publish. */
static void region_reset_rps(struct ship *sh, struct ship_region *r)
{
	for (unsigned int i = 0; i < sh->nparts; i++) {
		struct ship_rp *rp = &sh->parts[i]->rp[r->idx];

		switch (rp->state) {
		case RP_IDLE:
			rp->state = RP_NEED_RECONCILE;
			break;
		case RP_BACKOFF:
			rp->after = RP_NEED_RECONCILE;
			break;
		case RP_INFLIGHT:
		case RP_RECONCILING:
			rp->stale = true;
			break;
		case RP_NEED_RECONCILE:
			break;
		}
	}
}

static void region_state_result(struct ship *sh, struct ship_region *r,
				const struct js_result *res, uint64_t now)
{
	if (res->connected == r->connected)
		return;
	r->connected = res->connected;
	r->ensured = false;
	if (r->connected) {
		log_info("region \"%s\": connected", r->name);
		region_reset_rps(sh, r);
		r->ensure_at_ms = 0;
		region_ensure(sh, r, false);
	} else {
		log_warn("region \"%s\": disconnected%s%s", r->name,
			 res->detail[0] ? ": " : "", res->detail);
		region_error(r, "disconnected%s%s", res->detail[0] ? ": " : "",
			     res->detail);
		region_failure(r, "disconnected", now);
		region_reset_rps(sh, r);
	}
}

static void region_result(struct ship *sh, struct ship_region *r,
			  const struct js_result *res, uint64_t now)
{
	unsigned int pi = res->tag & SHIP_TAG_REGION;
	struct ship_part *p;
	struct ship_rp *rp;

	if (res->op == JS_OP_STATE) {
		region_state_result(sh, r, res, now);
		return;
	}
	if (res->op == JS_OP_ENSURE) {
		if (r->ensure_pending && res->tag == r->ensure_tag)
			region_ensure_result(sh, r, res, now);
		return;
	}
	if (pi >= sh->nparts)
		return;
	p = sh->parts[pi];
	rp = &p->rp[r->idx];
	if (rp->tag != res->tag)
		return;		/* not what this rp waits for */
	switch (res->op) {
	case JS_OP_PUBLISH:
		if (rp->state == RP_INFLIGHT)
			rp_publish_result(sh, r, p, rp, res, now);
		break;
	case JS_OP_LAST:
		if (rp->state == RP_RECONCILING && !rp->deleting)
			rp_last_result(sh, r, p, pi, rp, res, now);
		break;
	case JS_OP_DELETE:
		if (rp->state == RP_RECONCILING && rp->deleting)
			rp_delete_result(sh, r, p, rp, res, now);
		break;
	default:
		break;
	}
}

static void on_link(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct ship_region *r = arg;
	struct js_result res;

	for (int n = 0; n < SHIP_POLL_BATCH; n++) {
		if (js_link_poll(r->link, &res))
			break;
		region_result(r->sh, r, &res, loop_now_ms());
	}
	ship_pump(r->sh);
}

/* --- dispatch -------------------------------------------------------- */

/* Replicate: a parked region that continues after trimmed rows. */
static void rp_check_gap(struct ship_region *r, struct ship_part *p,
			 struct ship_rp *rp,
			 const struct spool_batch_row *row)
{
	if (!rp->cur.batch_id || row->epoch != rp->cur.epoch ||
	    row->first_seq == rp->cur.last_seq + 1 ||
	    rp->gap_logged == row->id)
		return;
	rp->gap_logged = row->id;
	r->gaps++;
	log_error("region \"%s\": %s epoch %" PRIu64 " seqs %" PRIu64 "..%"
		  PRIu64 " were trimmed while the region was parked: they "
		  "never reach it", r->name, p->token, row->epoch,
		  rp->cur.last_seq + 1, row->first_seq - 1);
}

static void rp_pump(struct ship *sh, struct ship_region *r, unsigned int pi,
		    uint64_t now)
{
	struct ship_part *p = sh->parts[pi];
	struct ship_rp *rp = &p->rp[r->idx];
	struct spool_batch_row row;
	struct ship_replay *rep;
	uint64_t after;

	if (rp->state == RP_BACKOFF) {
		if (now < rp->until_ms)
			return;
		rp->state = rp->after;
	}
	if (!r->connected || !r->ensured)
		return;
	if (rp->state == RP_NEED_RECONCILE) {
		rp_reconcile(sh, r, p, pi, rp, now);
		return;
	}
	if (rp->state != RP_IDLE)
		return;
	if (rp->dead_pending) {
		rp_publish(sh, r, pi, rp, PUB_MARKER, &rp->row, NULL, now);
		return;
	}
	rep = replay_for(sh, r->idx, pi);
	if (rep) {
		rp_publish(sh, r, pi, rp, PUB_REPLAY, &rep->row, rep, now);
		return;
	}
	if (sh->mode == CONFIG_SHIP_FAILOVER) {
		if (p->route != r->idx)
			return;
		after = part_after(sh, p);
	} else {
		after = rp->cur.batch_id;
	}
	if (rp_next_row(sh, p, rp, after, &row) <= 0)
		return;
	if (sh->mode == CONFIG_SHIP_REPLICATE)
		rp_check_gap(r, p, rp, &row);
	if (rp->row.id != row.id) {
		rp->perm = 0;	/* a new batch: its own attempts */
		rp->nomerge = false;
		rp->row = row;
	}
	rp_publish(sh, r, pi, rp, PUB_BATCH, &row, NULL, now);
}

/* A region without traffic whose breaker is not closed gets a probe. */
static void region_probe(struct ship *sh, struct ship_region *r,
			 uint64_t now)
{
	if (r->ensure_pending)
		return;
	if (!r->ensured) {
		/* connecting ensures at once; this retries failed ones */
		if (r->connected && now >= r->ensure_at_ms)
			region_ensure(sh, r, false);
		return;
	}
	if (r->br.state == BREAKER_CLOSED || r->inflight)
		return;
	if (breaker_allow(&r->br, now))
		region_ensure(sh, r, true);
	region_breaker_note(r);
}

static void ship_pump(struct ship *sh)
{
	uint64_t now = loop_now_ms();

	if (sh->pumping)
		return;
	sh->pumping = true;
	parts_refresh(sh);
	for (unsigned int i = 0; i < sh->nreg; i++) {
		struct ship_region *r = &sh->reg[i];

		for (unsigned int pi = 0; pi < sh->nparts; pi++)
			rp_pump(sh, r, pi, now);
		region_probe(sh, r, now);
	}
	sh->pumping = false;
}

/* --- routing, parking, commits --------------------------------------- */

static void region_health_update(struct ship *sh, uint64_t now)
{
	for (unsigned int i = 0; i < sh->nreg; i++) {
		struct ship_region *r = &sh->reg[i];

		if (region_healthy(r)) {
			if (!r->healthy_since)
				r->healthy_since = now;
			r->unhealthy_since = 0;
		} else {
			if (!r->unhealthy_since)
				r->unhealthy_since = now;
			r->healthy_since = 0;
		}
	}
}

/* May the partitions of @r leave it?  (Open, or unhealthy for long.) */
static bool region_down(const struct ship *sh, const struct ship_region *r,
			uint64_t now)
{
	if (region_healthy(r))
		return false;
	if (r->br.state != BREAKER_CLOSED)
		return true;
	return r->unhealthy_since &&
	       now - r->unhealthy_since >= sh->p.publish_timeout_ms;
}

static void route_partitions(struct ship *sh, uint64_t now)
{
	for (unsigned int pi = 0; pi < sh->nparts; pi++) {
		struct ship_part *p = sh->parts[pi];
		struct ship_region *home = &sh->reg[p->rank[0]];
		unsigned int to = p->route;

		if (p->route != home->idx && home->healthy_since &&
		    now - home->healthy_since >= sh->p.failback_hold_ms) {
			to = home->idx;
		} else if (region_down(sh, &sh->reg[p->route], now)) {
			for (unsigned int k = 0; k < sh->nreg; k++)
				if (region_healthy(&sh->reg[p->rank[k]])) {
					to = p->rank[k];
					break;
				}
		}
		if (to == p->route || part_busy(sh, p))
			continue;
		log_warn("ship: %s moves from region \"%s\" to \"%s\"%s",
			 p->token, sh->reg[p->route].name, sh->reg[to].name,
			 to == home->idx ? " (home)" : "");
		p->route = to;
		{
			struct ship_rp *rp = &p->rp[to];

			if (rp->state == RP_IDLE)
				rp->state = RP_NEED_RECONCILE;
			else if (rp->state == RP_BACKOFF)
				rp->after = RP_NEED_RECONCILE;
			else if (rp->state == RP_RECONCILING)
				rp->stale = true;
		}
	}
}

/* Replicate: park regions whose oldest undelivered batch is too old. */
static void park_check(struct ship *sh, uint64_t now)
{
	uint64_t limit_ns = (uint64_t)sh->p.lag_limit_s * 1000000000u;
	uint64_t wall = realtime_ns();

	if (sh->mode != CONFIG_SHIP_REPLICATE)
		return;
	for (unsigned int i = 0; i < sh->nreg; i++) {
		struct ship_region *r = &sh->reg[i];
		uint64_t oldest = 0;

		if (region_healthy(r) || !sh->p.lag_limit_s) {
			if (r->parked)
				log_warn("region \"%s\": unparked; it resumes "
					 "from its cursor", r->name);
			r->parked = false;
			continue;
		}
		if (r->parked)
			continue;
		for (unsigned int pi = 0; pi < sh->nparts; pi++) {
			struct ship_part *p = sh->parts[pi];
			struct row_find f = { 0 };

			if (spool_foreach_row(sh->spool, p->rp[i].cur.batch_id,
					      true, p->source, p->partition, 1,
					      row_first_cb, &f) < 0 || !f.found)
				continue;
			if (!oldest || f.row.created_ns < oldest)
				oldest = f.row.created_ns;
		}
		if (oldest && wall > oldest && wall - oldest > limit_ns) {
			r->parked = true;
			log_error("region \"%s\": PARKED: undelivered for more "
				  "than %" PRIu32 " s; the spool no longer "
				  "keeps batches for it, and what is trimmed "
				  "meanwhile never reaches it", r->name,
				  sh->p.lag_limit_s);
		}
	}
}

/* --- lag, kept incrementally (status must not walk the backlog) ----- */

/* Where the lag of region @r for @p counts from: its cursor, or G. */
static uint64_t lag_pos(const struct ship *sh, const struct ship_part *p,
			unsigned int r)
{
	return sh->mode == CONFIG_SHIP_FAILOVER ? part_global(sh, p) :
	       p->rp[r].cur.batch_id;
}

struct range_walk {
	uint64_t hi, b, e;
};

static int range_cb(const struct spool_batch_row *r, void *arg)
{
	struct range_walk *w = arg;

	if (r->id > w->hi)
		return 1;
	w->b++;
	w->e += r->count;
	return 0;
}

/* Rows and events of @p the spool holds in (@lo, @hi]. */
static int part_range(const struct ship *sh, const struct ship_part *p,
		      uint64_t lo, uint64_t hi, uint64_t *b, uint64_t *e)
{
	struct range_walk w = { .hi = hi };
	int ret = 0;

	if (lo < hi)
		ret = spool_foreach_row(sh->spool, lo, true, p->source,
					p->partition, 0, range_cb, &w);
	if (ret < 0)
		return ret;
	*b = w.b;
	*e = w.e;
	return 0;
}

/* Rows and events the spool holds of @p (its stats, from memory). */
static void part_rows(const struct ship *sh, const struct ship_part *p,
		      uint64_t *b, uint64_t *e)
{
	struct spool_part_stats ps;

	*b = *e = 0;
	for (unsigned int i = 0; !spool_part_stats(sh->spool, i, &ps); i++)
		if (ps.source == p->source && ps.partition == p->partition) {
			*b = ps.batches;
			*e = ps.records;
			return;
		}
}

/* Count the rows each region got of @p since the last call. */
static void lag_sync(struct ship *sh, struct ship_part *p)
{
	for (unsigned int r = 0; r < sh->nreg; r++) {
		struct ship_rp *rp = &p->rp[r];
		uint64_t pos = lag_pos(sh, p, r), b, e;
		uint64_t lo = rp->lag_at > p->trimmed ? rp->lag_at : p->trimmed;

		if (pos <= rp->lag_at || part_range(sh, p, lo, pos, &b, &e))
			continue;
		rp->done_b += b;
		rp->done_e += e;
		rp->lag_at = pos;
	}
}

/* @p was trimmed up to @upto, which removed @b rows of @e events. */
static void lag_trimmed(struct ship *sh, struct ship_part *p, uint64_t upto,
			uint64_t b, uint64_t e)
{
	for (unsigned int r = 0; r < sh->nreg; r++) {
		struct ship_rp *rp = &p->rp[r];

		if (rp->lag_at < upto) {
			/* parked: what it had is gone, and more */
			rp->done_b = rp->done_e = 0;
			continue;
		}
		rp->done_b -= b < rp->done_b ? b : rp->done_b;
		rp->done_e -= e < rp->done_e ? e : rp->done_e;
	}
}

/* Commit the dirty cursors and the trims they allow, in one transaction. */
static void ship_commit(struct ship *sh)
{
	uint64_t (*rows)[2] = NULL;	/* per trim: rows, events before */
	struct spool_cursor *c = NULL;
	struct spool_trim_part *t = NULL;
	unsigned int nc = 0, nt = 0;
	int ret;

	if (!sh->nparts)
		return;
	c = calloc((size_t)sh->nparts * sh->nreg, sizeof(*c));
	t = calloc(sh->nparts, sizeof(*t));
	rows = calloc(sh->nparts, sizeof(*rows));
	if (!c || !t || !rows)
		goto out;
	for (unsigned int pi = 0; pi < sh->nparts; pi++) {
		struct ship_part *p = sh->parts[pi];
		uint64_t upto = UINT64_MAX;
		bool any = false;

		lag_sync(sh, p);
		for (unsigned int r = 0; r < sh->nreg; r++)
			if (p->rp[r].dirty) {
				c[nc] = p->rp[r].cur;
				c[nc++].updated_ns = 0;
			}
		if (sh->mode == CONFIG_SHIP_FAILOVER) {
			upto = part_global(sh, p);
			any = true;
		} else {
			for (unsigned int r = 0; r < sh->nreg; r++) {
				if (sh->reg[r].parked)
					continue;
				any = true;
				if (p->rp[r].cur.batch_id < upto)
					upto = p->rp[r].cur.batch_id;
			}
		}
		if (any && upto > p->trimmed) {
			part_rows(sh, p, &rows[nt][0], &rows[nt][1]);
			t[nt].source = p->source;
			t[nt].partition = p->partition;
			t[nt++].upto_id = upto;
		}
	}
	if (!nc && !nt)
		goto out;
	ret = spool_ship_commit(sh->spool, c, nc, t, nt);
	if (ret) {
		ship_spool_error(sh, ret, "committing cursors");
		goto out;
	}
	/* Cursors and trims are one transaction: right after it. */
	if (nc)
		failpoint(FP_SHIP_AFTER_CURSOR);
	sh->spool_err = 0;
	for (unsigned int pi = 0, k = 0; pi < sh->nparts; pi++) {
		struct ship_part *p = sh->parts[pi];

		for (unsigned int r = 0; r < sh->nreg; r++)
			p->rp[r].dirty = false;
		if (k < nt && t[k].source == p->source &&
		    t[k].partition == p->partition) {
			uint64_t b, e;

			part_rows(sh, p, &b, &e);
			lag_trimmed(sh, p, t[k].upto_id, rows[k][0] - b,
				    rows[k][1] - e);
			p->trimmed = t[k++].upto_id;
		}
	}
out:
	free(rows);
	free(c);
	free(t);
}

static void on_tick(struct loop *l, uint64_t id, void *arg)
{
	struct ship *sh = arg;
	uint64_t now = loop_now_ms();

	region_health_update(sh, now);
	if (sh->mode == CONFIG_SHIP_FAILOVER)
		route_partitions(sh, now);
	if (now - sh->slow_check_ms >= SHIP_SLOW_CHECK_MS) {
		sh->slow_check_ms = now;
		park_check(sh, now);
	}
	ship_pump(sh);
	ship_commit(sh);
}

/* --- lifecycle ------------------------------------------------------- */

static void region_params(struct ship_region *r, const struct evd_config *c,
			  bool init)
{
	struct breaker_opts bo = {
		.failures = c->ship_breaker_failures,
		.latency_factor = c->ship_breaker_latency_factor,
		.slow_acks = c->ship_breaker_slow_acks,
		.latency_floor_us = SHIP_BREAKER_FLOOR_US,
		.open_ms = c->ship_breaker_open_ms,
		.probes = c->ship_breaker_probes,
	};
	uint64_t now = loop_now_ms();
	uint64_t slow_us = (uint64_t)c->ship_publish_timeout_ms * 1000 / 4;

	if (init) {
		breaker_init(&r->br, &bo);
		aimd_init(&r->win, c->ship_window_min, c->ship_window_max,
			  slow_us, c->ship_publish_timeout_ms);
	} else {
		r->br.o = bo;
		r->win.min = c->ship_window_min ? c->ship_window_min : 1;
		r->win.max = c->ship_window_max < r->win.min ? r->win.min :
			     c->ship_window_max;
		if (r->win.window < r->win.min)
			r->win.window = r->win.min;
		if (r->win.window > r->win.max)
			r->win.window = r->win.max;
		r->win.slow_us = slow_us;
		r->win.cool_ms = c->ship_publish_timeout_ms;
	}
	token_bucket_init(&r->retry, c->ship_retry_rate,
			  c->ship_retry_burst ? c->ship_retry_burst : 1, now);
	token_bucket_init(&r->rate, c->ship_rate_limit,
			  c->ship_rate_limit ? c->ship_rate_limit : 1, now);
}

static void ship_params_set(struct ship *sh, const struct evd_config *c)
{
	sh->p.publish_timeout_ms = c->ship_publish_timeout_ms;
	sh->p.backoff_base_ms = c->ship_backoff_base_ms;
	sh->p.backoff_cap_ms = c->ship_backoff_cap_ms;
	sh->p.dead_letter_after = c->ship_dead_letter_after ?
				  c->ship_dead_letter_after : 1;
	sh->p.lag_limit_s = c->ship_lag_limit_s;
	sh->p.failback_hold_ms = c->ship_failback_hold_ms;
	sh->p.max_message = c->ship_max_message;
}

static int cursor_load_cb(const struct spool_cursor *c, void *arg)
{
	struct ship *sh = arg;
	struct ship_part *p;

	for (unsigned int r = 0; r < sh->nreg; r++) {
		if (strcmp(sh->reg[r].name, c->region))
			continue;
		p = part_get(sh, c->source, c->partition);
		if (!p)
			return -ENOMEM;
		p->rp[r].cur = *c;
		return 0;
	}
	return 0;	/* a region no longer configured */
}

static int region_open(struct ship *sh, struct ship_region *r,
		       const struct config_region *cr,
		       const struct evd_config *c, char *err, size_t errlen)
{
	struct js_link_opts o = {
		.region = cr->name,
		.urls = cr->urls,
		.creds = cr->creds,
		.tls_ca = cr->tls_ca,
		.tls_cert = cr->tls_cert,
		.tls_key = cr->tls_key,
		.stream = cr->stream,
		.subject_prefix = cr->subject_prefix,
		.replicas = cr->replicas,
		.create_stream = cr->create_stream,
		.dupe_window_ms = cr->dupe_window_ms,
		.timeout_ms = c->ship_publish_timeout_ms,
		.max_pending = (size_t)c->ship_window_max + 64,
	};
	int ret;

	ret = js_link_open(&o, &r->link, err, errlen);
	if (ret)
		return ret;
	r->fd = js_link_fd(r->link);
	ret = loop_add_fd(sh->loop, r->fd, LOOP_IN, on_link, r);
	if (ret) {
		snprintf(err, errlen, "region \"%s\": cannot watch its link: %s",
			 cr->name, strerror(-ret));
		js_link_close(r->link);
		r->link = NULL;
		return ret;
	}
	region_ensure(sh, r, false);
	return 0;
}

int ship_new(struct loop *l, struct spool *s, const struct evd_config *c,
	     struct ship **out, char *err, size_t errlen)
{
	struct ship *sh;
	int ret;

	if (c->nr_regions > CONFIG_REGIONS_MAX || !c->host_id[0] ||
	    strchr(c->host_id, '/')) {
		snprintf(err, errlen, "ship: bad regions or host id \"%s\"",
			 c->host_id);
		return -EINVAL;
	}
	sh = calloc(1, sizeof(*sh));
	if (!sh)
		return -ENOMEM;
	sh->loop = l;
	sh->spool = s;
	snprintf(sh->host, sizeof(sh->host), "%s", c->host_id);
	sh->mode = c->ship_mode;
	ship_params_set(sh, c);
	if (getrandom(&sh->rnd, sizeof(sh->rnd), 0) != sizeof(sh->rnd))
		sh->rnd = realtime_ns();
	sh->rnd |= 1;
	sh->nreg = c->nr_regions;
	for (unsigned int i = 0; i < sh->nreg; i++) {
		struct ship_region *r = &sh->reg[i];
		const struct config_region *cr = &c->region[i];

		r->sh = sh;
		r->idx = i;
		r->fd = -1;
		snprintf(r->name, sizeof(r->name), "%s", cr->name);
		snprintf(r->prefix, sizeof(r->prefix), "%s", cr->subject_prefix);
		snprintf(r->stream, sizeof(r->stream), "%s", cr->stream);
		r->weight = cr->weight;
		sh->names[i] = r->name;
		sh->weights[i] = cr->weight;
		region_params(r, c, true);
		r->br_logged = BREAKER_CLOSED;
	}
	if (!sh->nreg) {
		*out = sh;
		return 0;
	}
	ret = spool_foreach_cursor(s, cursor_load_cb, sh);
	if (ret < 0) {
		snprintf(err, errlen, "ship: cannot load cursors: %s (%s)",
			 strerror(-ret), spool_strerror(s));
		goto fail;
	}
	parts_refresh(sh);
	for (unsigned int i = 0; i < sh->nreg; i++) {
		ret = region_open(sh, &sh->reg[i], &c->region[i], c, err,
				  errlen);
		if (ret)
			goto fail;
	}
	ret = loop_add_timer(l, SHIP_TICK_MS, SHIP_TICK_MS, on_tick, sh,
			     &sh->tick);
	if (ret) {
		snprintf(err, errlen, "ship: cannot add its timer: %s",
			 strerror(-ret));
		goto fail;
	}
	*out = sh;
	return 0;
fail:
	ship_free(sh);
	return ret;
}

/*
 * Commit what was acknowledged; in-flight publishes are abandoned and
 * reconciled at the next start.
 */
void ship_free(struct ship *sh)
{
	if (!sh)
		return;
	if (sh->nreg)
		ship_commit(sh);
	if (sh->tick)
		loop_cancel_timer(sh->loop, sh->tick);
	for (unsigned int i = 0; i < sh->nreg; i++) {
		struct ship_region *r = &sh->reg[i];

		if (r->fd >= 0)
			loop_del_fd(sh->loop, r->fd);
		js_link_close(r->link);
	}
	while (sh->replays)
		replay_drop(sh, sh->replays);
	for (unsigned int i = 0; i < sh->nparts; i++)
		free(sh->parts[i]);
	free(sh->parts);
	free(sh);
}

void ship_kick(struct ship *sh)
{
	if (sh && sh->nreg)
		ship_pump(sh);
}

void ship_reconfigure(struct ship *sh, const struct evd_config *c)
{
	if (!sh)
		return;
	ship_params_set(sh, c);
	for (unsigned int i = 0; i < sh->nreg; i++)
		region_params(&sh->reg[i], c, false);
}

/* --- status ---------------------------------------------------------- */

unsigned int ship_nregions(const struct ship *sh)
{
	return sh ? sh->nreg : 0;
}

struct lag_walk {
	uint64_t batches, events, oldest_ns;
};

/*
 * Add @p's lag at region @i to @w: the spool's rows of @p minus those
 * counted done (and those done since the last commit, a short walk), and
 * the age of its first row after the region's position.
 */
static void lag_add(const struct ship *sh, const struct ship_part *p,
		    unsigned int i, struct lag_walk *w)
{
	const struct ship_rp *rp = &p->rp[i];
	uint64_t pos = lag_pos(sh, p, i), b = 0, e = 0, nb, ne;
	uint64_t lo = rp->lag_at > p->trimmed ? rp->lag_at : p->trimmed;
	struct row_find f = { 0 };

	if (pos > rp->lag_at && part_range(sh, p, lo, pos, &b, &e))
		return;
	part_rows(sh, p, &nb, &ne);
	b += rp->done_b;
	e += rp->done_e;
	w->batches += nb > b ? nb - b : 0;
	w->events += ne > e ? ne - e : 0;
	if (spool_foreach_row(sh->spool, pos > p->trimmed ? pos : p->trimmed,
			      true, p->source, p->partition, 1, row_first_cb,
			      &f) < 0 || !f.found)
		return;
	if (!w->oldest_ns || f.row.created_ns < w->oldest_ns)
		w->oldest_ns = f.row.created_ns;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int ship_region_status(const struct ship *sh, unsigned int i,
		       struct ship_region_status *out)
{
	const struct ship_region *r;
	struct ship_region_status st;
	struct lag_walk w = { 0 };
	uint64_t sorted[SHIP_LAT_RING];
	uint64_t wall = realtime_ns();

	if (!sh || i >= sh->nreg)
		return -ENOENT;
	r = &sh->reg[i];
	memset(&st, 0, sizeof(st));
	snprintf(st.name, sizeof(st.name), "%s", r->name);
	st.connected = r->connected;
	st.durable = r->ensured && r->durable;
	st.parked = r->parked;
	st.replicas = r->replicas;
	st.breaker = breaker_state_name(r->br.state);
	st.breaker_opened = r->br.transitions;
	st.window = r->win.window;
	st.inflight = r->inflight;
	for (unsigned int pi = 0; pi < sh->nparts; pi++) {
		const struct ship_part *p = sh->parts[pi];

		if (sh->mode == CONFIG_SHIP_FAILOVER) {
			if (p->route != i)
				continue;
			st.home_partitions++;
		}
		lag_add(sh, p, i, &w);
	}
	st.lag_batches = w.batches;
	st.lag_events = w.events;
	st.lag_ms = w.oldest_ns && wall > w.oldest_ns ?
		    (wall - w.oldest_ns) / 1000000 : 0;
	st.shipped_batches = r->shipped_batches;
	st.shipped_events = r->shipped_events;
	st.shipped_bytes = r->shipped_bytes;
	st.retries = r->retries;
	st.duplicates = r->duplicates;
	st.reconciles = r->reconciles;
	st.dead_lettered = r->dead_lettered;
	st.gaps = r->gaps;
	if (r->lat_n) {
		memcpy(sorted, r->lat_ring, r->lat_n * sizeof(sorted[0]));
		qsort(sorted, r->lat_n, sizeof(sorted[0]), cmp_u64);
		st.ack_p50_us = sorted[(r->lat_n - 1) / 2];
		st.ack_p99_us = sorted[(r->lat_n - 1) * 99 / 100];
	}
	snprintf(st.last_error, sizeof(st.last_error), "%s", r->last_error);
	*out = st;
	return 0;
}

void ship_latency(const struct ship *sh, struct ship_latency *out)
{
	uint64_t acc = 0;

	memset(out, 0, sizeof(*out));
	for (unsigned int b = 0; b < SHIP_LAT_BUCKETS; b++) {
		out->le_us[b] = lat_bounds_us[b];
		if (sh)
			acc += sh->lat_count[b];
		out->count[b] = acc;
	}
	if (sh) {
		out->sum_us = sh->lat_sum_us;
		out->n = sh->lat_n;
	}
}

/* --- dead letters ---------------------------------------------------- */

int ship_dlq_replay(struct ship *sh, uint64_t dead_id)
{
	struct ship_replay *rep;
	struct spool_dead d;
	struct ship_part *p;
	void *body = NULL;
	size_t len = 0;
	int ret, region = -1;

	if (!sh)
		return -ENOENT;
	for (rep = sh->replays; rep; rep = rep->next)
		if (rep->dead_id == dead_id)
			return -EALREADY;
	ret = spool_dead_get(sh->spool, dead_id, &d, &body, &len);
	if (ret)
		return ret;
	p = part_get(sh, d.batch.source, d.batch.partition);
	if (!p) {
		free(body);
		return -ENOMEM;
	}
	if (sh->mode == CONFIG_SHIP_FAILOVER) {
		region = p->route;
	} else {
		for (unsigned int i = 0; i < sh->nreg; i++)
			if (!strcmp(sh->reg[i].name, d.region))
				region = i;
	}
	if (region < 0) {
		free(body);
		return -ESRCH;	/* its region is no longer configured */
	}
	rep = calloc(1, sizeof(*rep));
	if (!rep) {
		free(body);
		return -ENOMEM;
	}
	rep->dead_id = dead_id;
	rep->region = region;
	rep->part = part_find(sh, p->source, p->partition);
	rep->row = d.batch;
	msg_id_of(sh, p, &d.batch, false, rep->msg_id, sizeof(rep->msg_id));
	rep->body = body;
	rep->len = len;
	rep->next = sh->replays;
	sh->replays = rep;
	log_info("region \"%s\": replaying dead letter %" PRIu64 " (%s epoch %"
		 PRIu64 " seq %" PRIu64 ")", sh->reg[region].name, dead_id,
		 p->token, d.batch.epoch, d.batch.first_seq);
	ship_pump(sh);
	return 0;
}

int ship_dlq_purge(struct ship *sh, uint64_t dead_id)
{
	if (!sh)
		return -ENOENT;
	for (struct ship_replay *x = sh->replays; x; x = x->next)
		if (x->dead_id == dead_id) {
			if (x->inflight)
				return -EBUSY;
			replay_drop(sh, x);
			break;
		}
	return spool_dead_delete(sh->spool, dead_id);
}
