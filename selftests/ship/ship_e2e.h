/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * ship_e2e.h: what the end-to-end shipping tests share.  They run the real
 * build/bin/evringd on the host with only the ingest socket (the e2e
 * helpers of selftests/e2e/e2e.h: writers, the daemon, its control
 * socket), ship to regions made by tools/regions (regions.h), and
 * judge the outcome twice, by reading every region's stream back:
 *  - `evringctl consume --config F --region R... --expect HOST/socket-0/
 *    EPOCH/1-LAST` must exit 0 (every record once, no unexplained gap);
 *  - our own count: every stored batch decoded, every event parsed back
 *    to its (writer, counter); every event a writer saw acknowledged is
 *    there exactly once (per region in replicate mode, across the regions
 *    in failover mode), an unacknowledged one at most once, nothing else.
 *
 *	struct ship_env s;
 *	ship_env_init(&s, "tag", 2);			regions a (1), b (2) up
 *	ship_conf(&s, "replicate", ship_keys, region_keys);	the config file
 *	ship_daemon_up(&s, NULL);
 *	ship_writers_start(&s, nwriters, rate);
 *	... faults (regions.h, e2e_daemon_kill) ...
 *	ship_writers_stop(&s);
 *	ship_wait_shipped(&s, 60000, &range);		everything delivered
 *	ship_judge(&s, true, &range, &v);		both checks
 *	ship_env_fini(&s);				daemon, writers, regions
 */
#ifndef EVRING_SHIP_E2E_H
#define EVRING_SHIP_E2E_H

#include "../e2e/e2e.h"
#include "regions.h"
#include "jetstream.h"

#define SHIP_STREAM		"EVRING"
#define SHIP_PREFIX		"evring"
#define SHIP_HOST		"e2e"
#define SHIP_REGIONS_MAX	2
#define SHIP_TRACK_CAP		(1u << 17)	/* events per writer */

static const char *const ship_region_name[SHIP_REGIONS_MAX] = { "a", "b" };

struct ship_env {
	struct e2e_env e;
	struct e2e_track *t;
	unsigned int nregions;
	char urls[SHIP_REGIONS_MAX][256];
	struct e2e_sock_writer wo[E2E_WRITERS_MAX];
};

/* What a partition holds, from evringd's status: for --expect. */
struct ship_range {
	char epoch[20];			/* as the status prints it (hex) */
	uint64_t epoch_n;
	uint64_t last_seq;
};

/* Our own count of one or more streams. */
struct ship_count {
	uint8_t *copies;		/* [writer * cap + counter], saturating */
	uint64_t cap;
	unsigned int nwriters;
	uint64_t messages;		/* stream messages read */
	uint64_t markers;		/* dead-letter markers among them */
	uint64_t batches;		/* decoded batches */
	uint64_t records;		/* records in them */
	uint64_t foreign;		/* records that are not test events */
	uint64_t bad;			/* messages that did not decode */
	char why[200];			/* the first bad one */
};

/* The judgement of one count against the writers' track. */
struct ship_verdict {
	uint64_t acked;			/* events acknowledged to writers */
	uint64_t present;		/* distinct events found */
	uint64_t lost;			/* acked, missing */
	uint64_t doubled;		/* found more than once */
	uint64_t unexpected;		/* found, never attempted or refused */
	uint64_t unknown_kept;		/* sent, outcome unknown, found once */
	char why[200];			/* the first problem */
};

/* --- regions and the environment ---------------------------------------- */

/*
 * A private directory and @nregions regions (a: index 1, b: index 2), each
 * a 3-node cluster; anything left by an earlier run is removed first.
 * Servers take $EVRING_REGION_MAX_PAYLOAD as it is set now.  0 or -errno
 * (a region that did not come up: -EIO, the script said why).
 */
static inline int ship_env_init(struct ship_env *s, const char *tag,
				unsigned int nregions)
{
	char t[48];
	int ret;

	memset(s, 0, sizeof(*s));
	snprintf(t, sizeof(t), "ship-%s", tag);
	ret = e2e_env_init(&s->e, t);
	if (ret)
		return ret;
	if (nregions > SHIP_REGIONS_MAX)
		return -EINVAL;
	s->nregions = nregions;
	ret = regions_lock();
	if (ret)
		return ret;
	if (regions_down_all())
		return -EIO;
	for (unsigned int i = 0; i < nregions; i++) {
		if (regions_up(ship_region_name[i], i + 1) ||
		    regions_urls(ship_region_name[i], s->urls[i],
				 sizeof(s->urls[i])))
			return -EIO;
	}
	s->t = e2e_track_new(E2E_WRITERS_MAX, SHIP_TRACK_CAP);
	return s->t ? 0 : -ENOMEM;
}

/* Writers stopped and reaped, the daemon killed, the regions removed. */
static inline void ship_env_fini(struct ship_env *s)
{
	if (s->t)
		s->t->stop = 1;
	if (s->e.pid > 0)
		e2e_daemon_kill(&s->e, SIGKILL);
	e2e_reap_all();
	e2e_env_fini(&s->e);
	e2e_track_free(s->t);
	s->t = NULL;
	regions_run(NULL, 0, 30, "cont", "a");
	regions_down_all();
}

/*
 * Write the daemon's config file: [ship] with mode @mode, short deadlines
 * and @ship_keys (newline-separated "key = value" lines, may be NULL), no
 * /metrics listener; one [region NAME] per region with its URLs, stream
 * EVRING, prefix evring, R3, and @region_keys (the same for every region,
 * may be NULL).  The daemon and `evringctl consume --config` both read it.
 */
static inline int ship_conf(struct ship_env *s, const char *mode,
			    const char *ship_keys, const char *region_keys)
{
	char buf[8192];
	size_t n = 0;

	n += snprintf(buf + n, sizeof(buf) - n,
		      "[host]\nid = " SHIP_HOST "\n\n"
		      "[ship]\nmode = %s\npublish_timeout_ms = 1000\n"
		      "breaker_open_ms = 1000\nfailback_hold_ms = 2000\n"
		      "backoff_base_ms = 50\nbackoff_cap_ms = 500\n"
		      "metrics_listen =\n%s%s\n",
		      mode, ship_keys ? ship_keys : "",
		      ship_keys && *ship_keys ? "\n" : "");
	for (unsigned int i = 0; i < s->nregions && n < sizeof(buf); i++)
		n += snprintf(buf + n, sizeof(buf) - n,
			      "[region %s]\nurls = %s\nstream = " SHIP_STREAM
			      "\nsubject_prefix = " SHIP_PREFIX
			      "\nreplicas = 3\n%s%s\n",
			      ship_region_name[i], s->urls[i],
			      region_keys ? region_keys : "",
			      region_keys && *region_keys ? "\n" : "");
	if (n >= sizeof(buf))
		return -E2BIG;
	return e2e_write_file(s->e.conf, buf, n, 0600);
}

/* evringd with the socket source only, plus @sets; waits until ready. */
static inline int ship_daemon_up(struct ship_env *s, const char *const *sets)
{
	const char *all[E2E_SETS_MAX + 1];
	unsigned int n = 0;

	all[n++] = "sources.device=";
	all[n++] = "drain.batch_ms=2";
	for (unsigned int i = 0; sets && sets[i] && n < E2E_SETS_MAX; i++)
		all[n++] = sets[i];
	all[n] = NULL;
	return e2e_daemon_up(&s->e, all, 30000);
}

/* @n socket writers (ids 0..n-1), @rate events/s each, 24..200 bytes. */
static inline int ship_writers_start(struct ship_env *s, unsigned int n,
				     unsigned int rate, uint64_t seed)
{
	if (n > E2E_WRITERS_MAX)
		return -EINVAL;
	s->t->nwriters = n;
	for (unsigned int i = 0; i < n; i++) {
		pid_t pid;

		s->wo[i] = (struct e2e_sock_writer){
			.t = s->t, .id = i, .path = s->e.ingest, .rate = rate,
			.burst = 16, .len_lo = 24, .len_hi = 200,
			.seed = seed + i,
		};
		pid = e2e_spawn(e2e_sock_writer_main, &s->wo[i]);
		if (pid < 0)
			return pid;
	}
	return 0;
}

/*
 * Stop the writers (each finishes its current call; evringd must be up
 * for a sync to come back) and reap them.  0, or the first writer's
 * -errno / exit status.
 */
static inline int ship_writers_stop(struct ship_env *s)
{
	int ret = 0;

	s->t->stop = 1;
	for (unsigned int i = 0; i < s->t->nwriters; i++) {
		int r;

		if (!s->t->w[i].pid)
			continue;
		r = e2e_wait(s->t->w[i].pid, 90000);
		if (r && !ret)
			ret = r;
		if (s->t->w[i].error && !ret)
			ret = s->t->w[i].error;
	}
	return ret;
}

static inline uint64_t ship_acked(const struct ship_env *s)
{
	uint64_t n = 0;

	for (unsigned int i = 0; i < s->t->nwriters; i++)
		n += s->t->w[i].acked;
	return n;
}

/* --- evringd's view ------------------------------------------------------ */

/* Region @name's object in a status response (borrowed), or NULL. */
static inline json_t *ship_status_region(json_t *st, const char *name)
{
	json_t *r;
	size_t i;

	json_array_foreach(json_object_get(st, "regions"), i, r)
		if (!strcmp(e2e_jstr(r, "name"), name))
			return r;
	return NULL;
}

/* Region @name's string field @key from a fresh status, into @out. */
static inline int ship_region_str(struct ship_env *s, const char *name,
				  const char *key, char *out, size_t len)
{
	json_t *st = NULL, *r;
	int ret = e2e_status(&s->e, &st);

	if (ret)
		return ret;
	r = ship_status_region(st, name);
	if (r)
		snprintf(out, len, "%s", e2e_jstr(r, key));
	json_decref(st);
	return r ? 0 : -ENOENT;
}

/* Region @name's numeric field @key from a fresh status. */
static inline int ship_region_u64(struct ship_env *s, const char *name,
				  const char *key, uint64_t *out)
{
	json_t *st = NULL, *r;
	int ret = e2e_status(&s->e, &st);

	if (ret)
		return ret;
	r = ship_status_region(st, name);
	if (r)
		*out = e2e_jint(r, key);
	json_decref(st);
	return r ? 0 : -ENOENT;
}

/*
 * Poll the status until region @name's @key is @want (a string field).
 * 0, -ETIMEDOUT, -ECHILD (the daemon died).
 */
static inline int ship_wait_region(struct ship_env *s, const char *name,
				   const char *key, const char *want,
				   int timeout_ms)
{
	uint64_t end = e2e_now_ms() + timeout_ms;
	char v[64];

	do {
		if (e2e_daemon_gone(&s->e))
			return -ECHILD;
		if (!ship_region_str(s, name, key, v, sizeof(v)) &&
		    !strcmp(v, want))
			return 0;
		e2e_sleep_ms(50);
	} while (e2e_now_ms() < end);
	return -ETIMEDOUT;
}

/*
 * Is everything the writers gave delivered?  The socket partition is
 * drained (nothing staged) and every region has no lag and nothing in
 * flight.  When so and @r is not NULL, the socket partition's epoch and
 * last seq go to *@r.
 */
static inline bool ship_status_shipped(json_t *st, struct ship_range *r)
{
	json_t *p, *g, *sock = NULL;
	size_t i;

	if (!e2e_status_drained(st, "socket"))
		return false;
	json_array_foreach(json_object_get(st, "regions"), i, g) {
		if (e2e_jint(g, "lag_batches") || e2e_jint(g, "inflight"))
			return false;
	}
	json_array_foreach(json_object_get(st, "partitions"), i, p) {
		if (!strcmp(e2e_jstr(p, "source"), "socket"))
			sock = p;
	}
	if (!sock)
		return false;
	if (r) {
		snprintf(r->epoch, sizeof(r->epoch), "%s", e2e_jstr(sock, "epoch"));
		r->epoch_n = strtoull(r->epoch, NULL, 16);
		r->last_seq = e2e_jint(sock, "last_seq");
	}
	return true;
}

/* Poll until ship_status_shipped().  0, -ETIMEDOUT, -ECHILD. */
static inline int ship_wait_shipped(struct ship_env *s, int timeout_ms,
				    struct ship_range *r)
{
	uint64_t end = e2e_now_ms() + timeout_ms;

	do {
		json_t *st = NULL;
		bool done;

		if (e2e_daemon_gone(&s->e))
			return -ECHILD;
		if (e2e_status(&s->e, &st)) {
			e2e_sleep_ms(50);
			continue;
		}
		done = ship_status_shipped(st, r);
		json_decref(st);
		if (done)
			return 0;
		e2e_sleep_ms(100);
	} while (e2e_now_ms() < end);
	return -ETIMEDOUT;
}

/* The status's regions, one "# " line each, for a failure. */
static inline void ship_print_status(struct ship_env *s)
{
	json_t *st = NULL, *g, *p;
	size_t i;

	if (e2e_status(&s->e, &st)) {
		e2e_msg("(no status)");
		return;
	}
	json_array_foreach(json_object_get(st, "partitions"), i, p)
		e2e_msg("partition %s-%" PRIu64 ": epoch %s last_seq %" PRIu64
			" ring_fill %" PRIu64 " spool_batches %" PRIu64,
			e2e_jstr(p, "source"), e2e_jint(p, "partition"),
			e2e_jstr(p, "epoch"), e2e_jint(p, "last_seq"),
			e2e_jint(p, "ring_fill"), e2e_jint(p, "spool_batches"));
	json_array_foreach(json_object_get(st, "regions"), i, g)
		e2e_msg("region %s: connected %d breaker %s opened %" PRIu64
			" lag %" PRIu64 " inflight %" PRIu64 " shipped %" PRIu64
			" retries %" PRIu64 " dups %" PRIu64 " reconciles %" PRIu64
			" dead %" PRIu64 " home %" PRIu64 " last_error '%s'",
			e2e_jstr(g, "name"),
			json_is_true(json_object_get(g, "connected")),
			e2e_jstr(g, "breaker"), e2e_jint(g, "breaker_opened"),
			e2e_jint(g, "lag_batches"), e2e_jint(g, "inflight"),
			e2e_jint(g, "shipped_batches"), e2e_jint(g, "retries"),
			e2e_jint(g, "duplicates"), e2e_jint(g, "reconciles"),
			e2e_jint(g, "dead_lettered"),
			e2e_jint(g, "home_partitions"),
			e2e_jstr(g, "last_error"));
	json_decref(st);
}

/*
 * Run `evringctl --socket CTL --json ARGS...` (NULL-terminated), its one
 * line parsed into *@out (may stay NULL).  Returns its exit status or
 * -errno.
 */
static inline int ship_evringctl(struct ship_env *s, json_t **out,
				 const char *const *args)
{
	const char *argv[16];
	char path[160], *text;
	unsigned int n = 0;
	int ret;

	argv[n++] = E2E_EVRINGCTL;
	argv[n++] = "--socket";
	argv[n++] = s->e.ctl;
	argv[n++] = "--json";
	for (; *args && n < 15; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	snprintf(path, sizeof(path), "%s/evringctl.out", s->e.dir);
	ret = e2e_run(argv, path, NULL, 30000);
	if (ret < 0)
		return ret;
	text = e2e_slurp(path, NULL);
	*out = text && *text ? json_loads(text, JSON_DISABLE_EOF_CHECK, NULL) :
	       NULL;
	free(text);
	return ret;
}

/* --- reading the streams back -------------------------------------------- */

/*
 * `evringctl consume --config CONF --region R... --format none --expect
 * e2e/socket-0/EPOCH/1-LAST` over the regions whose bit is set in @mask.
 * Returns its exit status (0: the verifier is content) or -errno; on
 * anything but 0 its stderr's tail goes to ours.
 */
static inline int ship_consume(struct ship_env *s, unsigned int mask,
			       const struct ship_range *r)
{
	const char *argv[24];
	char expect[128], out[160], err[160], *text;
	unsigned int n = 0;
	int ret;

	argv[n++] = E2E_EVRINGCTL;
	argv[n++] = "consume";
	argv[n++] = "--config";
	argv[n++] = s->e.conf;
	for (unsigned int i = 0; i < s->nregions; i++) {
		if (!(mask & (1u << i)))
			continue;
		argv[n++] = "--region";
		argv[n++] = ship_region_name[i];
	}
	argv[n++] = "--format";
	argv[n++] = "none";
	if (r && r->last_seq) {
		snprintf(expect, sizeof(expect), SHIP_HOST "/socket-0/%s/1-%" PRIu64,
			 r->epoch, r->last_seq);
		argv[n++] = "--expect";
		argv[n++] = expect;
	}
	argv[n] = NULL;
	snprintf(out, sizeof(out), "%s/consume.out", s->e.dir);
	snprintf(err, sizeof(err), "%s/consume.err", s->e.dir);
	ret = e2e_run(argv, out, err, 120000);
	text = e2e_slurp(err, NULL);
	if (text) {
		size_t len = strlen(text);
		char *last;

		while (len && text[len - 1] == '\n')
			text[--len] = '\0';
		last = strrchr(text, '\n');
		e2e_msg("consume%s%s: %s", mask & 1 ? " a" : "",
			mask & 2 ? " b" : "", last ? last + 1 : text);
		if (ret)
			fprintf(stderr, "# consume stderr:\n%s\n",
				len > 4000 ? text + len - 4000 : text);
	}
	free(text);
	return ret;
}

/*
 * An incompressible test event (a batch holding one stays big after
 * zstd): the e2e_ev head with SHIP_BLOB_MAGIC, then bytes of a PRNG
 * seeded by (writer, counter).
 */
#define SHIP_BLOB_MAGIC	0x426c6f62u	/* "bolB" */

static inline void ship_blob_make(void *buf, uint32_t writer,
				  uint64_t counter, uint32_t len)
{
	struct e2e_ev *ev = buf;
	uint64_t st = (uint64_t)writer << 32 ^ counter;
	uint8_t *b = buf;

	ev->magic = SHIP_BLOB_MAGIC;
	ev->writer = writer;
	ev->counter = counter;
	ev->len = len;
	ev->pad = 0;
	for (uint32_t i = E2E_EV_MIN; i < len; i++)
		b[i] = (uint8_t)e2e_rand(&st);
}

static inline int ship_blob_parse(const void *p, uint32_t len,
				  uint32_t *writer, uint64_t *counter)
{
	struct e2e_ev ev;
	const uint8_t *b = p;
	uint64_t st;

	if (len < E2E_EV_MIN)
		return -EBADMSG;
	memcpy(&ev, p, sizeof(ev));
	if (ev.magic != SHIP_BLOB_MAGIC || ev.len != len || ev.pad)
		return -EBADMSG;
	st = (uint64_t)ev.writer << 32 ^ ev.counter;
	for (uint32_t i = E2E_EV_MIN; i < len; i++)
		if (b[i] != (uint8_t)e2e_rand(&st))
			return -EBADMSG;
	*writer = ev.writer;
	*counter = ev.counter;
	return 0;
}

static inline void ship_count_free(struct ship_count *c)
{
	free(c->copies);
	memset(c, 0, sizeof(*c));
}

static inline int ship_count_cb(const struct js_stored *m, void *arg)
{
	struct ship_count *c = arg;
	struct batch_view v;
	struct batch_iter it;
	struct evring_rec rec;
	const void *payload;
	int ret;

	c->messages++;
	if (m->dead_letter) {
		c->markers++;
		return 0;
	}
	ret = batch_decode(m->data, m->len, &v);
	if (ret) {
		if (!c->bad++)
			snprintf(c->why, sizeof(c->why),
				 "stream seq %" PRIu64 " (%s): %s",
				 m->stream_seq, m->msg_id, strerror(-ret));
		return 0;
	}
	c->batches++;
	batch_iter_init(&it, &v);
	while ((ret = batch_iter_next(&it, &rec, &payload)) > 0) {
		uint32_t w;
		uint64_t ctr;

		c->records++;
		if ((e2e_ev_parse(payload, rec.len, &w, &ctr) &&
		     ship_blob_parse(payload, rec.len, &w, &ctr)) ||
		    w >= c->nwriters || ctr >= c->cap) {
			c->foreign++;
			continue;
		}
		if (c->copies[(size_t)w * c->cap + ctr] < 255)
			c->copies[(size_t)w * c->cap + ctr]++;
	}
	batch_view_release(&v);
	if (ret < 0 && !c->bad++)
		snprintf(c->why, sizeof(c->why), "stream seq %" PRIu64
			 ": record walk: %s", m->stream_seq, strerror(-ret));
	return 0;
}

/*
 * Add what region @i's stream holds to @c (initialised for @s's writers
 * on first use).  0 or -errno (err printed).
 */
static inline int ship_count_region(struct ship_env *s, unsigned int i,
				    struct ship_count *c)
{
	struct js_link_opts o = {
		.region = ship_region_name[i],
		.urls = s->urls[i],
		.stream = SHIP_STREAM,
		.subject_prefix = SHIP_PREFIX,
		.replicas = 3,
		.timeout_ms = 5000,
		.max_pending = 64,
	};
	char err[256] = "";
	int ret;

	if (!c->copies) {
		c->nwriters = s->t->nwriters;
		c->cap = s->t->cap;
		c->copies = calloc((size_t)c->nwriters * c->cap + 1, 1);
		if (!c->copies)
			return -ENOMEM;
	}
	ret = js_read_stream(&o, 1, ship_count_cb, c, err, sizeof(err));
	if (ret)
		e2e_msg("reading region %s: %s (%d)", ship_region_name[i], err, ret);
	return ret;
}

/*
 * Judge @c against the writers' track: every ACKED event exactly once, a
 * SENT one (outcome unknown) at most once, nothing else present.
 */
static inline void ship_judge_count(struct ship_env *s,
				    const struct ship_count *c,
				    struct ship_verdict *v)
{
	struct e2e_track *t = s->t;

	memset(v, 0, sizeof(*v));
	for (unsigned int w = 0; w < t->nwriters; w++) {
		for (uint64_t ctr = 0; ctr < t->w[w].next && ctr < t->cap; ctr++) {
			uint8_t st = *e2e_state(t, w, ctr);
			uint8_t n = c->copies ? c->copies[(size_t)w * c->cap + ctr] : 0;

			if (st == E2E_ACKED)
				v->acked++;
			if (n)
				v->present++;
			if (n > 1) {
				v->doubled++;
				if (!v->why[0])
					snprintf(v->why, sizeof(v->why),
						 "event %u/%" PRIu64 " found %u times",
						 w, ctr, n);
			}
			if (st == E2E_ACKED && !n) {
				v->lost++;
				if (!v->why[0])
					snprintf(v->why, sizeof(v->why),
						 "acked event %u/%" PRIu64 " missing",
						 w, ctr);
			}
			if (st == E2E_SENT && n == 1)
				v->unknown_kept++;
			if ((st == E2E_NONE || st == E2E_FAILED) && n) {
				v->unexpected++;
				if (!v->why[0])
					snprintf(v->why, sizeof(v->why),
						 "event %u/%" PRIu64 " (state %u) found",
						 w, ctr, st);
			}
		}
		/* Counters never attempted must not be there at all. */
		for (uint64_t ctr = t->w[w].next; ctr < t->cap && c->copies; ctr++)
			if (c->copies[(size_t)w * c->cap + ctr])
				v->unexpected++;
	}
}

/* Count the regions in @mask and judge them together: failed checks. */
static inline int ship_judge_mask(struct ship_env *s, unsigned int mask)
{
	struct ship_count c = { 0 };
	struct ship_verdict v;
	char names[16] = "";
	int failed = 0;

	for (unsigned int i = 0; i < s->nregions; i++) {
		if (!(mask & (1u << i)))
			continue;
		strcat(names, names[0] ? "+" : "");
		strcat(names, ship_region_name[i]);
		if (ship_count_region(s, i, &c))
			failed++;
	}
	ship_judge_count(s, &c, &v);
	e2e_msg("own count of %s: %" PRIu64 " messages (%" PRIu64
		" markers, %" PRIu64 " bad), %" PRIu64 " records (%" PRIu64
		" foreign); %" PRIu64 " acked: %" PRIu64 " lost, %" PRIu64
		" doubled, %" PRIu64 " unexpected, %" PRIu64
		" unacked kept%s%s", names, c.messages, c.markers, c.bad,
		c.records, c.foreign, v.acked, v.lost, v.doubled,
		v.unexpected, v.unknown_kept, v.why[0] ? "; first: " : "",
		v.why);
	if (c.bad)
		e2e_msg("bad message: %s", c.why);
	if (v.lost || v.doubled || v.unexpected || c.bad || c.foreign ||
	    !v.acked)
		failed++;
	ship_count_free(&c);
	return failed;
}

/*
 * Both checks (evringctl consume and our own count) over the regions in
 * @mask taken together (failover: the union) or, with @each, over every
 * region in @mask on its own (replicate).  Prints what it found; returns
 * the number of failed checks (0: all good).
 */
static inline int ship_judge(struct ship_env *s, unsigned int mask, bool each,
			     const struct ship_range *r)
{
	int failed = 0;

	if (!each)
		return !!ship_consume(s, mask, r) + ship_judge_mask(s, mask);
	for (unsigned int i = 0; i < s->nregions; i++) {
		if (!(mask & (1u << i)))
			continue;
		failed += !!ship_consume(s, 1u << i, r);
		failed += ship_judge_mask(s, 1u << i);
	}
	return failed;
}

/* Messages region @name's stream holds now (asked inside its namespace). */
static inline int ship_stream_msgs(const char *name, uint64_t *n)
{
	static char out[REGIONS_OUT_MAX];
	json_t *j, *state;
	int ret;

	ret = regions_jsapi(name, "STREAM.INFO." SHIP_STREAM, NULL, out,
			    sizeof(out));
	if (ret)
		return ret < 0 ? ret : -EIO;
	j = json_loads(out, 0, NULL);
	if (!j)
		return -EBADMSG;
	state = json_object_get(j, "state");
	ret = state ? 0 : -ENOENT;
	if (state)
		*n = e2e_jint(state, "messages");
	json_decref(j);
	return ret;
}

#endif /* EVRING_SHIP_E2E_H */
