// SPDX-License-Identifier: GPL-2.0-only
/*
 * control: the control socket server, the jansson adapter of the daemon.
 * See control.h for the contract and docs/OPERATING.md for the protocol.
 *
 * A client is a small state machine driven by the loop:
 *
 *	reading  --line complete-->  answer()  --response queued-->  writing
 *	writing  --response sent-->  reading (next buffered line first)
 *	any      --EOF, error, over-long line, idle, refused-->  closed
 *
 * While a response is pending the client is watched for LOOP_OUT only, so
 * its requests wait in the kernel's socket buffer, not in ours: per client
 * we hold at most one request line (CONTROL_LINE_MAX) and one response.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "control.h"
#include "failpoint.h"

#define ACCEPT_BURST		16	/* accepts per listener wake-up */
#define ACCEPT_PAUSE_MS		100	/* after EMFILE/ENFILE */
#define RATE_SAMPLE_MS		1000
#define RATE_SAMPLES		(CONTROL_RATE_WINDOW_S + 1)
#define PEER_GROUPS_MAX		65536	/* NGROUPS_MAX */

struct client {
	struct control *ctl;
	int fd;
	uid_t uid;
	gid_t gid;
	gid_t *groups;			/* supplementary, from SO_PEERGROUPS */
	unsigned int nr_groups;
	char in[CONTROL_LINE_MAX];	/* at most one request line */
	size_t in_len;
	char *out;			/* the pending response, or NULL */
	size_t out_len, out_off;
	bool eof;			/* the peer will send nothing more */
	bool closing;			/* close once out is sent */
	uint64_t active_ms;		/* last whole request or response progress */
	struct client *next;
};

struct rate_sample {
	uint64_t ms;			/* loop_now_ms() */
	struct control_counters c;
};

struct control {
	struct loop *loop;
	int fd;				/* the listener */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	dev_t dev;			/* the socket file we made, */
	ino_t ino;			/* to unlink only our own */
	const struct control_ops *ops;
	void *arg;
	char host_id[CONFIG_HOST_ID_MAX + 1];
	uid_t allow_uid[CONFIG_ALLOW_MAX];
	unsigned int nr_allow_uid;
	gid_t allow_gid[CONFIG_ALLOW_MAX];
	unsigned int nr_allow_gid;

	struct client *clients;
	unsigned int nr_clients;
	unsigned int idle_ms;
	uint64_t sweep_timer;
	uint64_t rate_timer;
	uint64_t resume_timer;		/* 0: accepting */

	struct rate_sample rate[RATE_SAMPLES];	/* ring, oldest at rate_head */
	unsigned int rate_head, nr_rate;
};

static void client_close(struct client *cl);
static void client_pump(struct client *cl);

/* --- access ----------------------------------------------------------- */

static bool allowed(const struct control *ctl, uid_t uid, gid_t gid,
		    const gid_t *groups, unsigned int nr_groups)
{
	for (unsigned int i = 0; i < ctl->nr_allow_uid; i++)
		if (ctl->allow_uid[i] == uid)
			return true;
	for (unsigned int i = 0; i < ctl->nr_allow_gid; i++) {
		if (ctl->allow_gid[i] == gid)
			return true;
		for (unsigned int g = 0; g < nr_groups; g++)
			if (ctl->allow_gid[i] == groups[g])
				return true;
	}
	return false;
}

/* The peer's supplementary groups; *groups NULL when it has none. */
static int peer_groups(int fd, gid_t **groups, unsigned int *nr)
{
	socklen_t len = 64 * sizeof(gid_t);
	gid_t *g = NULL;

	for (;;) {
		gid_t *ng;

		if (len > PEER_GROUPS_MAX * sizeof(gid_t)) {
			free(g);
			return -E2BIG;
		}
		ng = realloc(g, len ? len : sizeof(gid_t));
		if (!ng) {
			free(g);
			return -ENOMEM;
		}
		g = ng;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) == 0)
			break;
		if (errno != ERANGE) {
			int err = -errno;

			free(g);
			return err;
		}
	}
	if (len == 0) {
		free(g);
		g = NULL;
	}
	*groups = g;
	*nr = len / sizeof(gid_t);
	return 0;
}

/* --- JSON helpers ----------------------------------------------------- */

/* jansson integers are signed 64-bit; no counter of ours gets near that. */
static json_t *ju64(uint64_t v)
{
	return json_integer(v > INT64_MAX ? INT64_MAX : (json_int_t)v);
}

/* Epochs are random u64s: a fixed-width hex string keeps every bit. */
static json_t *jepoch(uint64_t epoch)
{
	char buf[17];

	snprintf(buf, sizeof(buf), "%016llx", (unsigned long long)epoch);
	return json_string(buf);
}

static json_t *jpct(uint64_t part, uint64_t whole)
{
	if (!whole)
		return json_real(0.0);
	return json_real((double)(part * 1000 / whole) / 10.0);
}

static json_t *jtime(uint64_t ts_ns)
{
	time_t s = (time_t)(ts_ns / 1000000000ull);
	char buf[64];
	struct tm tm;

	if (!gmtime_r(&s, &tm))
		return json_null();
	snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec,
		 (unsigned int)(ts_ns % 1000000000ull / 1000000));
	return json_string(buf);
}

/* A NUL-terminated copy of a fixed-size name field, valid UTF-8 or "?". */
static json_t *jname(const char *s, size_t size)
{
	json_t *j = json_stringn(s, strnlen(s, size));

	return j ? j : json_string("?");
}

static json_t *error_response(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static json_t *error_response(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/*
	 * Messages quote what a client sent, cut to a length: that may split
	 * a UTF-8 sequence, which jansson refuses.  Keep them ASCII.
	 */
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	return json_pack("{s:b,s:s?}", "ok", 0, "error", msg);
}

static json_t *ok_response(const char *cmd)
{
	return json_pack("{s:b,s:s}", "ok", 1, "cmd", cmd);
}

/* --- commands --------------------------------------------------------- */

static const char *state_name(enum control_state s)
{
	switch (s) {
	case CONTROL_STATE_STARTING:	return "starting";
	case CONTROL_STATE_DRAINING:	return "draining";
	case CONTROL_STATE_SPOOL_FULL:	return "spool_full";
	case CONTROL_STATE_STOPPING:	return "stopping";
	}
	return "unknown";
}

static json_t *part_json(const struct control_part_status *p)
{
	json_t *j = json_pack("{s:o,s:I,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:I}",
			      "source", jname(p->source, sizeof(p->source)),
			      "partition", (json_int_t)p->partition,
			      "epoch", jepoch(p->epoch),
			      "ring_fill", ju64(p->ring_fill),
			      "ring_size", ju64(p->ring_size),
			      "fill_pct", jpct(p->ring_fill, p->ring_size),
			      "read_pos", ju64(p->read_pos),
			      "release_pos", ju64(p->release_pos),
			      "spool_batches", ju64(p->spool_batches),
			      "spool_records", ju64(p->spool_records),
			      "last_seq", ju64(p->last_seq),
			      "writers_blocked", (json_int_t)p->writers_blocked);

	/* A BPF capture also says what its programs counted. */
	if (j && p->capture[0]) {
		json_object_set_new(j, "capture",
				    jname(p->capture, sizeof(p->capture)));
		json_object_set_new(j, "events", ju64(p->events));
		json_object_set_new(j, "drops", ju64(p->drops));
		json_object_set_new(j, "shed", ju64(p->shed));
	}
	return j;
}

/* One region's shipping state; docs/OPERATING.md lists the fields. */
static json_t *region_json(const struct ship_region_status *r)
{
	json_t *j = json_object();

	if (!j)
		return NULL;
	json_object_set_new(j, "name", jname(r->name, sizeof(r->name)));
	json_object_set_new(j, "connected", json_boolean(r->connected));
	json_object_set_new(j, "durable", json_boolean(r->durable));
	json_object_set_new(j, "replicas", json_integer(r->replicas));
	json_object_set_new(j, "parked", json_boolean(r->parked));
	json_object_set_new(j, "breaker", json_string(r->breaker ?
						      r->breaker : "closed"));
	json_object_set_new(j, "breaker_opened", ju64(r->breaker_opened));
	json_object_set_new(j, "window", json_integer(r->window));
	json_object_set_new(j, "inflight", json_integer(r->inflight));
	json_object_set_new(j, "lag_batches", ju64(r->lag_batches));
	json_object_set_new(j, "lag_events", ju64(r->lag_events));
	json_object_set_new(j, "lag_ms", ju64(r->lag_ms));
	json_object_set_new(j, "shipped_batches", ju64(r->shipped_batches));
	json_object_set_new(j, "shipped_events", ju64(r->shipped_events));
	json_object_set_new(j, "shipped_bytes", ju64(r->shipped_bytes));
	json_object_set_new(j, "retries", ju64(r->retries));
	json_object_set_new(j, "duplicates", ju64(r->duplicates));
	json_object_set_new(j, "reconciles", ju64(r->reconciles));
	json_object_set_new(j, "dead_lettered", ju64(r->dead_lettered));
	json_object_set_new(j, "gaps", ju64(r->gaps));
	json_object_set_new(j, "ack_p50_us", ju64(r->ack_p50_us));
	json_object_set_new(j, "ack_p99_us", ju64(r->ack_p99_us));
	json_object_set_new(j, "home_partitions",
			    json_integer(r->home_partitions));
	json_object_set_new(j, "last_error",
			    jname(r->last_error, sizeof(r->last_error)));
	return j;
}

static json_t *cmd_status(struct control *ctl, json_t *req)
{
	struct control_status *st;
	json_t *res, *parts, *regions;
	int err;

	if (!ctl->ops->status)
		return error_response("status: not available");
	st = calloc(1, sizeof(*st));
	if (!st)
		return error_response("status: %s", strerror(ENOMEM));
	err = ctl->ops->status(ctl->arg, st);
	if (err < 0) {
		free(st);
		return error_response("status: %s", strerror(-err));
	}
	parts = json_array();
	for (unsigned int i = 0; i < st->nr_parts && i < CONTROL_PARTS_MAX;
	     i++)
		json_array_append_new(parts, part_json(&st->parts[i]));
	regions = json_array();
	for (unsigned int i = 0; i < st->nr_regions && i < CONFIG_REGIONS_MAX;
	     i++)
		json_array_append_new(regions, region_json(&st->regions[i]));
	res = ok_response("status");
	json_object_set_new(res, "host", json_string(ctl->host_id));
	json_object_set_new(res, "pid", json_integer(getpid()));
	json_object_set_new(res, "state", json_string(state_name(st->state)));
	json_object_set_new(res, "uptime_ms", ju64(st->uptime_ms));
	json_object_set_new(res, "partitions", parts);
	json_object_set_new(res, "regions", regions);
	free(st);
	return res;
}

/* Sample the daemon's counters into the rate ring. */
static void rate_sample(struct control *ctl)
{
	struct rate_sample s = { .ms = loop_now_ms() };
	unsigned int slot;

	if (!ctl->ops->counters || ctl->ops->counters(ctl->arg, &s.c) < 0)
		return;
	slot = (ctl->rate_head + ctl->nr_rate) % RATE_SAMPLES;
	if (ctl->nr_rate == RATE_SAMPLES) {
		slot = ctl->rate_head;
		ctl->rate_head = (ctl->rate_head + 1) % RATE_SAMPLES;
	} else {
		ctl->nr_rate++;
	}
	ctl->rate[slot] = s;
}

static void on_rate_timer(struct loop *l, uint64_t id, void *arg)
{
	rate_sample(arg);
}

/*
 * Rates between the oldest sample no older than the window and a sample
 * taken now; null until two samples are at least 100 ms apart.
 */
static void add_rates(struct control *ctl, json_t *res)
{
	uint64_t window = CONTROL_RATE_WINDOW_S * 1000ull + RATE_SAMPLE_MS / 2;
	struct rate_sample now = { .ms = loop_now_ms() };
	const struct rate_sample *from = NULL;

	if (ctl->ops->counters && ctl->ops->counters(ctl->arg, &now.c) == 0) {
		for (unsigned int i = 0; i < ctl->nr_rate; i++) {
			const struct rate_sample *s =
				&ctl->rate[(ctl->rate_head + i) % RATE_SAMPLES];

			if (now.ms - s->ms <= window) {
				from = s;
				break;
			}
		}
	}
	if (from && now.ms - from->ms >= 100 &&
	    now.c.records_in >= from->c.records_in &&
	    now.c.bytes_in >= from->c.bytes_in) {
		double dt = (double)(now.ms - from->ms) / 1000.0;

		json_object_set_new(res, "ingest_records_per_s",
			json_real((double)(now.c.records_in -
					   from->c.records_in) / dt));
		json_object_set_new(res, "ingest_bytes_per_s",
			json_real((double)(now.c.bytes_in -
					   from->c.bytes_in) / dt));
		json_object_set_new(res, "rate_window_ms",
				    ju64(now.ms - from->ms));
	} else {
		json_object_set_new(res, "ingest_records_per_s", json_null());
		json_object_set_new(res, "ingest_bytes_per_s", json_null());
		json_object_set_new(res, "rate_window_ms", json_null());
	}
}

static json_t *cmd_spool(struct control *ctl, json_t *req)
{
	struct control_spool *sp;
	json_t *res;
	int err;

	if (!ctl->ops->spool)
		return error_response("spool: not available");
	sp = calloc(1, sizeof(*sp));
	if (!sp)
		return error_response("spool: %s", strerror(ENOMEM));
	err = ctl->ops->spool(ctl->arg, sp);
	if (err < 0) {
		free(sp);
		return error_response("spool: %s", strerror(-err));
	}
	res = ok_response("spool");
	json_object_set_new(res, "path", jname(sp->path, sizeof(sp->path)));
	json_object_set_new(res, "bytes", ju64(sp->bytes));
	json_object_set_new(res, "max_bytes", ju64(sp->max_bytes));
	json_object_set_new(res, "fill_pct", jpct(sp->bytes, sp->max_bytes));
	json_object_set_new(res, "batches", ju64(sp->batches));
	json_object_set_new(res, "records", ju64(sp->records));
	json_object_set_new(res, "oldest_age_ms", sp->oldest_age_ms < 0 ?
			    json_null() : json_integer(sp->oldest_age_ms));
	add_rates(ctl, res);
	free(sp);
	return res;
}

/* The newest @limit ledger rows, in a ring. */
struct ledger_keep {
	struct control_loss *rows;
	unsigned int limit;
	uint64_t total;
};

static int ledger_emit(const struct control_loss *loss, void *arg)
{
	struct ledger_keep *k = arg;

	k->rows[k->total % k->limit] = *loss;
	k->total++;
	return 0;
}

static json_t *loss_json(const struct control_loss *x)
{
	return json_pack("{s:o,s:I,s:o,s:o,s:o,s:o,s:o,s:o,s:o}",
			 "source", jname(x->source, sizeof(x->source)),
			 "partition", (json_int_t)x->partition,
			 "epoch", jepoch(x->epoch),
			 "first_seq", ju64(x->first_seq),
			 "last_seq", ju64(x->last_seq),
			 "count", ju64(x->last_seq >= x->first_seq ?
				       x->last_seq - x->first_seq + 1 : 0),
			 "reason", jname(x->reason, sizeof(x->reason)),
			 "ts_ns", ju64(x->ts_ns),
			 "time", jtime(x->ts_ns));
}

static json_t *cmd_ledger(struct control *ctl, json_t *req)
{
	struct ledger_keep k = { .limit = CONTROL_LEDGER_DEFAULT };
	json_t *limit = json_object_get(req, "limit");
	json_t *res, *rows;
	uint64_t first, n;
	int err;

	if (limit) {
		json_int_t v = json_is_integer(limit) ?
			       json_integer_value(limit) : 0;

		if (v < 1 || v > CONTROL_LEDGER_MAX)
			return error_response("'limit' must be an integer in 1..%d",
					      CONTROL_LEDGER_MAX);
		k.limit = (unsigned int)v;
	}
	if (!ctl->ops->ledger)
		return error_response("ledger: not available");
	k.rows = calloc(k.limit, sizeof(*k.rows));
	if (!k.rows)
		return error_response("ledger: %s", strerror(ENOMEM));
	err = ctl->ops->ledger(ctl->arg, ledger_emit, &k);
	if (err < 0) {
		free(k.rows);
		return error_response("ledger: %s", strerror(-err));
	}
	n = k.total < k.limit ? k.total : k.limit;
	first = k.total - n;
	rows = json_array();
	for (uint64_t i = first; i < k.total; i++)
		json_array_append_new(rows, loss_json(&k.rows[i % k.limit]));
	res = ok_response("ledger");
	json_object_set_new(res, "total", ju64(k.total));
	json_object_set_new(res, "truncated", json_boolean(k.total > n));
	json_object_set_new(res, "losses", rows);
	free(k.rows);
	return res;
}

/* --- dead letters ----------------------------------------------------- */

static json_t *dead_json(const struct control_dead *d)
{
	json_t *j = json_object();

	if (!j)
		return NULL;
	json_object_set_new(j, "id", ju64(d->id));
	json_object_set_new(j, "region", jname(d->region, sizeof(d->region)));
	json_object_set_new(j, "batch_id", ju64(d->batch_id));
	json_object_set_new(j, "source", jname(d->source, sizeof(d->source)));
	json_object_set_new(j, "partition", json_integer(d->partition));
	json_object_set_new(j, "epoch", jepoch(d->epoch));
	json_object_set_new(j, "first_seq", ju64(d->first_seq));
	json_object_set_new(j, "last_seq", ju64(d->count ?
					d->first_seq + d->count - 1 : 0));
	json_object_set_new(j, "count", json_integer(d->count));
	json_object_set_new(j, "bytes", ju64(d->bytes));
	json_object_set_new(j, "spooled_ns", ju64(d->spooled_ns));
	json_object_set_new(j, "spooled", jtime(d->spooled_ns));
	json_object_set_new(j, "reason", jname(d->reason, sizeof(d->reason)));
	json_object_set_new(j, "attempts", json_integer(d->attempts));
	json_object_set_new(j, "at_ns", ju64(d->at_ns));
	json_object_set_new(j, "time", jtime(d->at_ns));
	return j;
}

struct dlq_keep {
	struct control_dead *rows;
	uint64_t total;
};

static int dlq_emit(const struct control_dead *d, void *arg)
{
	struct dlq_keep *k = arg;

	if (k->total < CONTROL_DLQ_MAX)
		k->rows[k->total] = *d;
	k->total++;
	return 0;
}

static json_t *cmd_dlq_list(struct control *ctl, json_t *req)
{
	struct dlq_keep k = { 0 };
	json_t *res, *rows;
	uint64_t n;
	int err;

	if (!ctl->ops->dlq_list)
		return error_response("dlq_list: not available");
	k.rows = calloc(CONTROL_DLQ_MAX, sizeof(*k.rows));
	if (!k.rows)
		return error_response("dlq_list: %s", strerror(ENOMEM));
	err = ctl->ops->dlq_list(ctl->arg, dlq_emit, &k);
	if (err < 0) {
		free(k.rows);
		return error_response("dlq_list: %s", strerror(-err));
	}
	n = k.total < CONTROL_DLQ_MAX ? k.total : CONTROL_DLQ_MAX;
	rows = json_array();
	for (uint64_t i = 0; i < n; i++)
		json_array_append_new(rows, dead_json(&k.rows[i]));
	res = ok_response("dlq_list");
	json_object_set_new(res, "total", ju64(k.total));
	json_object_set_new(res, "truncated", json_boolean(k.total > n));
	json_object_set_new(res, "dead_letters", rows);
	free(k.rows);
	return res;
}

/* The request's "id": 1 and up.  NULL, or the error response. */
static json_t *dlq_id(json_t *req, uint64_t *id)
{
	json_t *v = json_object_get(req, "id");

	if (!v)
		return error_response("missing 'id'");
	if (!json_is_integer(v) || json_integer_value(v) < 1)
		return error_response("'id' must be a positive integer");
	*id = (uint64_t)json_integer_value(v);
	return NULL;
}

static json_t *dlq_error(const char *cmd, uint64_t id, int err)
{
	unsigned long long n = id;

	switch (err) {
	case -ENOENT:
		return error_response("no dead letter %llu", n);
	case -EALREADY:
		return error_response("dead letter %llu is already being replayed",
				      n);
	case -EBUSY:
		return error_response("dead letter %llu is being published right now: try again once it settled",
				      n);
	case -ESRCH:
		return error_response("dead letter %llu: its region is no longer configured",
				      n);
	}
	return error_response("%s: %s", cmd, strerror(-err));
}

static json_t *cmd_dlq_show(struct control *ctl, json_t *req)
{
	struct control_dead *d;
	json_t *res, *j;
	uint64_t id;
	int err;

	res = dlq_id(req, &id);
	if (res)
		return res;
	if (!ctl->ops->dlq_show)
		return error_response("dlq_show: not available");
	d = calloc(1, sizeof(*d));
	if (!d)
		return error_response("dlq_show: %s", strerror(ENOMEM));
	err = ctl->ops->dlq_show(ctl->arg, id, d);
	if (err < 0) {
		free(d);
		return dlq_error("dlq_show", id, err);
	}
	res = ok_response("dlq_show");
	j = dead_json(d);
	json_object_set_new(j, "decoded_records", d->decoded < 0 ?
			    json_null() : json_integer(d->decoded));
	if (d->decoded < 0)
		json_object_set_new(j, "decode_error",
				    jname(d->decode_error,
					  sizeof(d->decode_error)));
	json_object_set_new(res, "dead_letter", j);
	free(d);
	return res;
}

static json_t *dlq_act(struct control *ctl, json_t *req, const char *cmd,
		       int (*op)(void *arg, uint64_t id))
{
	json_t *res;
	uint64_t id;
	int err;

	res = dlq_id(req, &id);
	if (res)
		return res;
	if (!op)
		return error_response("%s: not available", cmd);
	err = op(ctl->arg, id);
	if (err < 0)
		return dlq_error(cmd, id, err);
	res = ok_response(cmd);
	json_object_set_new(res, "id", ju64(id));
	return res;
}

static json_t *cmd_dlq_replay(struct control *ctl, json_t *req)
{
	return dlq_act(ctl, req, "dlq_replay", ctl->ops->dlq_replay);
}

static json_t *cmd_dlq_purge(struct control *ctl, json_t *req)
{
	return dlq_act(ctl, req, "dlq_purge", ctl->ops->dlq_purge);
}

static json_t *cmd_ping(struct control *ctl, json_t *req)
{
	json_t *res = ok_response("ping");

	json_object_set_new(res, "pid", json_integer(getpid()));
	json_object_set_new(res, "host", json_string(ctl->host_id));
	return res;
}

/* A string field of the request.  NULL, or the error response. */
static json_t *req_str(json_t *req, const char *key, const char **out)
{
	json_t *v = json_object_get(req, key);

	if (!v)
		return error_response("missing '%s'", key);
	if (!json_is_string(v))
		return error_response("'%s' must be a string", key);
	*out = json_string_value(v);
	return NULL;
}

/* Arm one failpoint (failpoint.h): its hits under the previous action. */
static json_t *cmd_failpoint(struct control *ctl, json_t *req)
{
	char why[FAILPOINT_WHY_MAX], text[FAILPOINT_ACTION_MAX];
	const char *name, *action;
	struct failpoint_action a;
	enum failpoint_id id;
	uint64_t hits;
	json_t *res;

	res = req_str(req, "name", &name);
	if (!res)
		res = req_str(req, "action", &action);
	if (res)
		return res;
	if (failpoint_set(name, action, &hits, why, sizeof(why)))
		return error_response("%s", why);
	failpoint_lookup(name, &id);
	failpoint_get(id, &a, &(uint64_t){ 0 });
	failpoint_format(&a, text, sizeof(text));
	res = ok_response("failpoint");
	json_object_set_new(res, "name", json_string(name));
	json_object_set_new(res, "action", json_string(text));
	json_object_set_new(res, "hits", ju64(hits));
	return res;
}

static json_t *cmd_failpoint_list(struct control *ctl, json_t *req)
{
	json_t *res = ok_response("failpoint_list"), *rows = json_array();

	for (unsigned int i = 0; i < FP_NR; i++) {
		char text[FAILPOINT_ACTION_MAX];
		struct failpoint_action a;
		uint64_t hits;

		failpoint_get(i, &a, &hits);
		failpoint_format(&a, text, sizeof(text));
		json_array_append_new(rows, json_pack("{s:s,s:s,s:o}",
				      "name", failpoint_name(i),
				      "action", text, "hits", ju64(hits)));
	}
	json_object_set_new(res, "failpoints", rows);
	return res;
}

static const struct command {
	const char *name;
	json_t *(*fn)(struct control *ctl, json_t *req);
	const char *fields[3];		/* accepted besides "cmd" */
} commands[] = {
	{ "status", cmd_status, { NULL } },
	{ "spool", cmd_spool, { NULL } },
	{ "ledger", cmd_ledger, { "limit", NULL } },
	{ "ping", cmd_ping, { NULL } },
	{ "dlq_list", cmd_dlq_list, { NULL } },
	{ "dlq_show", cmd_dlq_show, { "id", NULL } },
	{ "dlq_replay", cmd_dlq_replay, { "id", NULL } },
	{ "dlq_purge", cmd_dlq_purge, { "id", NULL } },
	{ "failpoint", cmd_failpoint, { "name", "action", NULL } },
	{ "failpoint_list", cmd_failpoint_list, { NULL } },
};

static bool field_ok(const struct command *c, const char *key)
{
	if (!strcmp(key, "cmd"))
		return true;
	for (size_t i = 0; c->fields[i]; i++)
		if (!strcmp(key, c->fields[i]))
			return true;
	return false;
}

/* The response to one request line; never NULL unless out of memory. */
static json_t *answer(struct control *ctl, const char *line, size_t len)
{
	const struct command *c = NULL;
	json_error_t jerr;
	const char *name, *key;
	json_t *req, *cmd, *res, *v;

	if (len == 0)
		return error_response("empty request");
	req = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
			 &jerr);
	if (!req)
		return error_response("invalid JSON at column %d: %s",
				      jerr.column, jerr.text);
	if (!json_is_object(req)) {
		json_decref(req);
		return error_response("request must be a JSON object");
	}
	cmd = json_object_get(req, "cmd");
	if (!cmd || !json_is_string(cmd)) {
		json_decref(req);
		return error_response(cmd ? "'cmd' must be a string" :
					    "missing 'cmd'");
	}
	name = json_string_value(cmd);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(name, commands[i].name))
			c = &commands[i];
	if (!c) {
		res = error_response("unknown cmd '%.64s' (expected status, spool, ledger, ping, dlq_list, dlq_show, dlq_replay, dlq_purge, failpoint or failpoint_list)",
				     name);
		json_decref(req);
		return res;
	}
	json_object_foreach(req, key, v) {
		if (!field_ok(c, key)) {
			res = error_response("unknown field '%.64s' for cmd '%s'",
					     key, c->name);
			json_decref(req);
			return res;
		}
	}
	res = c->fn(ctl, req);
	json_decref(req);
	return res;
}

/* --- clients ---------------------------------------------------------- */

/* Queue @res (consumed) as the client's response line. */
static void queue_response(struct client *cl, json_t *res)
{
	char *s = res ? json_dumps(res, JSON_COMPACT) : NULL;
	size_t n;

	json_decref(res);
	if (!s) {
		/* Out of memory: nothing sensible to say, drop the client. */
		cl->closing = true;
		return;
	}
	n = strlen(s);
	s[n] = '\n';	/* over the NUL: the line is the n + 1 bytes */
	cl->out = s;
	cl->out_len = n + 1;
	cl->out_off = 0;
}

/* Send what the socket takes; 0 when all is sent, -EAGAIN, or -errno. */
static int flush_out(struct client *cl)
{
	while (cl->out && cl->out_off < cl->out_len) {
		ssize_t n = send(cl->fd, cl->out + cl->out_off,
				 cl->out_len - cl->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? -EAGAIN : -errno;
		}
		cl->out_off += n;
		cl->active_ms = loop_now_ms();
	}
	free(cl->out);
	cl->out = NULL;
	return 0;
}

/* Answer one complete line out of cl->in, if there is one. */
static bool take_line(struct client *cl)
{
	char *nl = memchr(cl->in, '\n', cl->in_len);
	size_t len, used;

	if (nl) {
		len = nl - cl->in;
		used = len + 1;
	} else if (cl->eof && cl->in_len) {
		len = used = cl->in_len;	/* a last line with no '\n' */
	} else if (cl->in_len == sizeof(cl->in)) {
		queue_response(cl, error_response(
			"request line too long (max %d bytes)",
			CONTROL_LINE_MAX));
		cl->closing = true;
		cl->in_len = 0;
		return true;
	} else {
		return false;
	}
	if (len && cl->in[len - 1] == '\r')
		len--;
	queue_response(cl, answer(cl->ctl, cl->in, len));
	memmove(cl->in, cl->in + used, cl->in_len - used);
	cl->in_len -= used;
	cl->active_ms = loop_now_ms();
	return true;
}

/*
 * Move the client forward as far as it goes without blocking: send the
 * pending response, answer buffered lines one at a time, then choose what
 * to wait for.  May close (free) the client.
 */
static void client_pump(struct client *cl)
{
	for (;;) {
		int err = flush_out(cl);

		if (err == -EAGAIN) {
			loop_mod_fd(cl->ctl->loop, cl->fd, LOOP_OUT);
			return;
		}
		if (err < 0 || cl->closing) {
			client_close(cl);
			return;
		}
		if (!take_line(cl))
			break;
	}
	if (cl->eof) {
		client_close(cl);
		return;
	}
	loop_mod_fd(cl->ctl->loop, cl->fd, LOOP_IN);
}

static void on_client(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct client *cl = arg;

	if (events & LOOP_IN && !cl->out) {
		ssize_t n = recv(fd, cl->in + cl->in_len,
				 sizeof(cl->in) - cl->in_len, MSG_DONTWAIT);

		if (n > 0) {
			/* Not activity yet: a line trickled in byte by byte
			 * must not hold a client slot past the idle time. */
			cl->in_len += n;
		} else if (n == 0) {
			cl->eof = true;
		} else if (errno != EAGAIN && errno != EINTR) {
			client_close(cl);
			return;
		}
	} else if (events & (LOOP_ERR | LOOP_HUP) && !(events & LOOP_OUT)) {
		client_close(cl);
		return;
	}
	client_pump(cl);
}

static void client_close(struct client *cl)
{
	struct control *ctl = cl->ctl;

	for (struct client **p = &ctl->clients; *p; p = &(*p)->next) {
		if (*p == cl) {
			*p = cl->next;
			break;
		}
	}
	ctl->nr_clients--;
	loop_del_fd(ctl->loop, cl->fd);
	close(cl->fd);
	free(cl->out);
	free(cl->groups);
	free(cl);
}

/* Tell a peer we will not serve it, in one line, and hang up. */
static void refuse(int fd, json_t *res)
{
	char *s = res ? json_dumps(res, JSON_COMPACT) : NULL;

	json_decref(res);
	if (s) {
		size_t n = strlen(s);

		s[n] = '\n';	/* over the NUL: we send n + 1 bytes */
		send(fd, s, n + 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		free(s);
	}
	close(fd);
}

static void admit(struct control *ctl, int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct client *cl;
	gid_t *groups = NULL;
	unsigned int nr_groups = 0;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
	    peer_groups(fd, &groups, &nr_groups) < 0) {
		refuse(fd, error_response("cannot read peer credentials"));
		return;
	}
	if (!allowed(ctl, cred.uid, cred.gid, groups, nr_groups)) {
		free(groups);
		refuse(fd, error_response("permission denied: uid %u is not in control.allow_uid and no group of it is in control.allow_gid",
					  (unsigned int)cred.uid));
		return;
	}
	if (ctl->nr_clients >= CONTROL_CLIENTS_MAX) {
		free(groups);
		refuse(fd, error_response("too many clients (max %d)",
					  CONTROL_CLIENTS_MAX));
		return;
	}
	cl = calloc(1, sizeof(*cl));
	if (!cl || loop_add_fd(ctl->loop, fd, LOOP_IN, on_client, cl) < 0) {
		free(cl);
		free(groups);
		refuse(fd, error_response("out of resources"));
		return;
	}
	cl->ctl = ctl;
	cl->fd = fd;
	cl->uid = cred.uid;
	cl->gid = cred.gid;
	cl->groups = groups;
	cl->nr_groups = nr_groups;
	cl->active_ms = loop_now_ms();
	cl->next = ctl->clients;
	ctl->clients = cl;
	ctl->nr_clients++;
}

static void on_resume(struct loop *l, uint64_t id, void *arg)
{
	struct control *ctl = arg;

	ctl->resume_timer = 0;
	loop_mod_fd(l, ctl->fd, LOOP_IN);
}

static void on_listener(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct control *ctl = arg;

	for (int i = 0; i < ACCEPT_BURST; i++) {
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (cfd >= 0) {
			admit(ctl, cfd);
			continue;
		}
		if ((errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
		     errno == ENOMEM) && !ctl->resume_timer) {
			/* Level-triggered: pause instead of spinning. */
			loop_mod_fd(l, fd, 0);
			loop_add_timer(l, ACCEPT_PAUSE_MS, 0, on_resume, ctl,
				       &ctl->resume_timer);
		}
		return;		/* EAGAIN, ECONNABORTED, ... */
	}
}

static void on_sweep(struct loop *l, uint64_t id, void *arg)
{
	struct control *ctl = arg;
	uint64_t now = loop_now_ms();
	struct client *cl = ctl->clients, *next;

	for (; cl; cl = next) {
		next = cl->next;
		if (now - cl->active_ms >= ctl->idle_ms)
			client_close(cl);
	}
}

/* (Re)start the idle sweep: a quarter of the timeout, at most 1 s. */
static int arm_sweep(struct control *ctl)
{
	uint64_t period = ctl->idle_ms / 4;

	if (period == 0)
		period = 1;
	if (period > 1000)
		period = 1000;
	if (ctl->sweep_timer)
		loop_cancel_timer(ctl->loop, ctl->sweep_timer);
	ctl->sweep_timer = 0;
	return loop_add_timer(ctl->loop, period, period, on_sweep, ctl,
			      &ctl->sweep_timer);
}

/* --- the listener ----------------------------------------------------- */

/* mkdir -p the directory part of @path, new directories 0755. */
static int make_parent(const char *path)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	for (char *p = dir + 1; ; p++) {
		if (*p == '/' || *p == '\0') {
			char saved = *p;

			*p = '\0';
			if (mkdir(dir, 0755) < 0 && errno != EEXIST)
				return -errno;
			*p = saved;
			if (!saved)
				break;
		}
	}
	return 0;
}

/*
 * Clear the way for bind(): a socket file nobody listens on is a dead
 * daemon's and goes; a live one is -EADDRINUSE; anything else -EEXIST.
 */
static int clear_stale(const struct sockaddr_un *sa)
{
	struct stat st;
	int fd, err;

	if (lstat(sa->sun_path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	err = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0 ?
	      -EADDRINUSE : (errno == ECONNREFUSED ? 0 : -errno);
	close(fd);
	if (!err && unlink(sa->sun_path) < 0 && errno != ENOENT)
		err = -errno;
	return err;
}

static void copy_allow(struct control *ctl, const struct evd_config *c)
{
	ctl->nr_allow_uid = c->nr_allow_uid;
	memcpy(ctl->allow_uid, c->allow_uid, sizeof(ctl->allow_uid));
	ctl->nr_allow_gid = c->nr_allow_gid;
	memcpy(ctl->allow_gid, c->allow_gid, sizeof(ctl->allow_gid));
}

static int listen_on(struct control *ctl, const struct evd_config *c)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int err;

	memcpy(sa.sun_path, ctl->path, sizeof(sa.sun_path));
	err = make_parent(ctl->path);
	if (!err)
		err = clear_stale(&sa);
	if (err)
		return err;
	ctl->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
			 0);
	if (ctl->fd < 0)
		return -errno;
	/* Nobody can connect before listen(), so chmod after bind is safe. */
	if (bind(ctl->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	if (chmod(ctl->path, 0660) < 0 ||
	    (c->nr_allow_gid && chown(ctl->path, -1, c->allow_gid[0]) < 0) ||
	    stat(ctl->path, &st) < 0) {
		err = -errno;
		unlink(ctl->path);
		return err;
	}
	ctl->dev = st.st_dev;
	ctl->ino = st.st_ino;
	if (listen(ctl->fd, CONTROL_CLIENTS_MAX) < 0) {
		err = -errno;
		unlink(ctl->path);
		return err;
	}
	return 0;
}

int control_open(struct loop *l, const char *path, const struct evd_config *c,
		 const struct control_ops *ops, void *arg,
		 struct control **out)
{
	struct control *ctl;
	int err;

	if (!path)
		path = c->control_socket;
	if (!path[0] || path[0] != '/')
		return -EINVAL;
	if (strlen(path) >= sizeof(ctl->path))
		return -ENAMETOOLONG;
	ctl = calloc(1, sizeof(*ctl));
	if (!ctl)
		return -ENOMEM;
	ctl->loop = l;
	ctl->fd = -1;
	ctl->ops = ops;
	ctl->arg = arg;
	ctl->idle_ms = CONTROL_IDLE_MS;
	snprintf(ctl->path, sizeof(ctl->path), "%s", path);
	snprintf(ctl->host_id, sizeof(ctl->host_id), "%s", c->host_id);
	copy_allow(ctl, c);

	err = listen_on(ctl, c);
	if (!err)
		err = loop_add_fd(l, ctl->fd, LOOP_IN, on_listener, ctl);
	if (!err)
		err = arm_sweep(ctl);
	if (!err)
		err = loop_add_timer(l, RATE_SAMPLE_MS, RATE_SAMPLE_MS,
				     on_rate_timer, ctl, &ctl->rate_timer);
	if (err) {
		control_close(ctl);
		return err;
	}
	rate_sample(ctl);
	*out = ctl;
	return 0;
}

void control_close(struct control *ctl)
{
	struct stat st;

	if (!ctl)
		return;
	while (ctl->clients)
		client_close(ctl->clients);
	if (ctl->sweep_timer)
		loop_cancel_timer(ctl->loop, ctl->sweep_timer);
	if (ctl->rate_timer)
		loop_cancel_timer(ctl->loop, ctl->rate_timer);
	if (ctl->resume_timer)
		loop_cancel_timer(ctl->loop, ctl->resume_timer);
	if (ctl->fd >= 0) {
		loop_del_fd(ctl->loop, ctl->fd);
		close(ctl->fd);
		/* Only our own file: a newer daemon may have replaced it. */
		if (ctl->ino && stat(ctl->path, &st) == 0 &&
		    st.st_dev == ctl->dev && st.st_ino == ctl->ino)
			unlink(ctl->path);
	}
	free(ctl);
}

int control_reconfigure(struct control *ctl, const struct evd_config *c)
{
	struct client *cl, *next;

	copy_allow(ctl, c);
	for (cl = ctl->clients; cl; cl = next) {
		next = cl->next;
		if (!allowed(ctl, cl->uid, cl->gid, cl->groups, cl->nr_groups))
			client_close(cl);
	}
	return 0;
}

unsigned int control_nr_clients(const struct control *ctl)
{
	return ctl->nr_clients;
}

void control_set_idle_ms(struct control *ctl, unsigned int ms)
{
	ctl->idle_ms = ms;
	arm_sweep(ctl);
}
