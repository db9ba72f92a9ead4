// SPDX-License-Identifier: GPL-2.0-only
/*
 * metrics_http: Prometheus /metrics over libmicrohttpd, inside the daemon's
 * loop.  See metrics_http.h for the contract.
 *
 * libmicrohttpd runs in "external epoll" mode: it keeps its own epoll set
 * (the listener and every connection, edge-triggered) whose fd we watch
 * level-triggered in our loop; whenever that fd is readable, or the timeout
 * it asked for passed, MHD_run() does all the work that is ready without
 * blocking, and we re-arm the timer from MHD_get_timeout().  The listening
 * socket is ours (so a bind failure comes back with its errno): MHD gets a
 * dup of it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "metrics_http.h"

#define CONTENT_TYPE	"text/plain; version=0.0.4; charset=utf-8"
#define LISTEN_BACKLOG	16

/* --- the renderer ------------------------------------------------------ */

struct mbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void mb_printf(struct mbuf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void mb_printf(struct mbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	for (;;) {
		size_t room = b->cap - b->len;

		va_start(ap, fmt);
		n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			return;
		}
		if ((size_t)n < room) {
			b->len += n;
			return;
		}
		size_t cap = b->cap ? b->cap : 4096;

		while (cap - b->len <= (size_t)n)
			cap *= 2;
		char *np = realloc(b->p, cap);

		if (!np) {
			b->oom = true;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
}

/* "1.5" for 1500000 us: exact decimal seconds, no trailing zeros. */
static const char *fmt_seconds(uint64_t v, uint64_t per_s, char *buf,
			       size_t len)
{
	uint64_t whole = v / per_s, frac = v % per_s;
	int digits = per_s == 1000 ? 3 : 6;

	if (!frac) {
		snprintf(buf, len, "%llu", (unsigned long long)whole);
		return buf;
	}
	while (frac % 10 == 0) {
		frac /= 10;
		digits--;
	}
	snprintf(buf, len, "%llu.%0*llu", (unsigned long long)whole, digits,
		 (unsigned long long)frac);
	return buf;
}

/* A label value: backslash, double quote and newline escaped. */
static void mb_label(struct mbuf *b, const char *s, size_t size)
{
	for (size_t i = 0; i < size && s[i]; i++) {
		switch (s[i]) {
		case '\\': mb_printf(b, "\\\\"); break;
		case '"': mb_printf(b, "\\\""); break;
		case '\n': mb_printf(b, "\\n"); break;
		default: mb_printf(b, "%c", s[i]);
		}
	}
}

static void family(struct mbuf *b, const char *name, const char *type,
		   const char *help)
{
	mb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void scalar(struct mbuf *b, const char *name, const char *type,
		   const char *help, uint64_t v)
{
	family(b, name, type, help);
	mb_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

enum part_metric { PM_BATCHES, PM_RECORDS, PM_BYTES, PM_NR };

static const struct {
	const char *name, *help;
} part_metrics[PM_NR] = {
	[PM_BATCHES] = { "evring_spool_partition_batches",
			 "Batches of the partition held in the spool." },
	[PM_RECORDS] = { "evring_spool_partition_records",
			 "Events of the partition held in the spool." },
	[PM_BYTES] = { "evring_spool_partition_bytes",
		       "Encoded batch bytes of the partition held in the spool." },
};

static uint64_t part_value(const struct metrics_part *p, enum part_metric m)
{
	switch (m) {
	case PM_BATCHES: return p->batches;
	case PM_RECORDS: return p->records;
	default: return p->bytes;
	}
}

enum region_metric {
	RM_BATCHES, RM_EVENTS, RM_BYTES, RM_RETRIES, RM_DUPLICATES,
	RM_RECONCILES, RM_DEAD, RM_GAPS, RM_BREAKER_OPENED,
	RM_LAG_EVENTS, RM_LAG_BATCHES, RM_LAG_SECONDS, RM_WINDOW,
	RM_INFLIGHT, RM_BREAKER, RM_CONNECTED, RM_DURABLE, RM_REPLICAS,
	RM_PARKED, RM_NR
};

static const struct {
	const char *name, *type, *help;
	bool ms;			/* value in ms, exported in seconds */
} region_metrics[RM_NR] = {
	[RM_BATCHES] = { "evring_ship_batches_total", "counter",
		"Batches the region acknowledged (duplicates included)." },
	[RM_EVENTS] = { "evring_ship_events_total", "counter",
		"Events in the batches the region acknowledged." },
	[RM_BYTES] = { "evring_ship_bytes_total", "counter",
		"Encoded batch bytes the region acknowledged." },
	[RM_RETRIES] = { "evring_ship_retries_total", "counter",
		"Publishes sent again after a transient or ambiguous failure." },
	[RM_DUPLICATES] = { "evring_ship_duplicates_total", "counter",
		"Acknowledgements that said the stream already held the batch." },
	[RM_RECONCILES] = { "evring_ship_reconciles_total", "counter",
		"Times the stream was asked what it holds after an ambiguous outcome." },
	[RM_DEAD] = { "evring_ship_dead_letters_total", "counter",
		"Batches the region refused for good, moved to the dead-letter table." },
	[RM_GAPS] = { "evring_ship_gaps_total", "counter",
		"Times a parked region's cursor continued past batches trimmed without it (they never reach it)." },
	[RM_BREAKER_OPENED] = { "evring_ship_breaker_opened_total", "counter",
		"Times the region's circuit breaker opened." },
	[RM_LAG_EVENTS] = { "evring_ship_lag_events", "gauge",
		"Spooled events not yet delivered to the region." },
	[RM_LAG_BATCHES] = { "evring_ship_lag_batches", "gauge",
		"Spooled batches not yet delivered to the region." },
	[RM_LAG_SECONDS] = { "evring_ship_lag_seconds", "gauge",
		"Age of the oldest batch not yet delivered to the region.", true },
	[RM_WINDOW] = { "evring_ship_window", "gauge",
		"The region's adaptive in-flight window (AIMD), in batches." },
	[RM_INFLIGHT] = { "evring_ship_inflight", "gauge",
		"Batches published to the region and not yet acknowledged." },
	[RM_BREAKER] = { "evring_ship_breaker_state", "gauge",
		"The region's circuit breaker: 0 closed, 1 half-open, 2 open." },
	[RM_CONNECTED] = { "evring_ship_region_connected", "gauge",
		"1 when connected to the region's servers." },
	[RM_DURABLE] = { "evring_ship_region_durable", "gauge",
		"1 when the region's stream is replicated (R3 or more); 0: an acknowledgement does not survive a server crash." },
	[RM_REPLICAS] = { "evring_ship_region_replicas", "gauge",
		"Replicas of the region's stream." },
	[RM_PARKED] = { "evring_ship_region_parked", "gauge",
		"1 when the region lags beyond ship.lag_limit_s and no longer holds back spool trims." },
};

static uint64_t breaker_value(const char *name)
{
	if (!name || !strcmp(name, "closed"))
		return 0;
	if (!strcmp(name, "half-open"))
		return 1;
	return 2;
}

static uint64_t region_value(const struct ship_region_status *r,
			     enum region_metric m)
{
	switch (m) {
	case RM_BATCHES: return r->shipped_batches;
	case RM_EVENTS: return r->shipped_events;
	case RM_BYTES: return r->shipped_bytes;
	case RM_RETRIES: return r->retries;
	case RM_DUPLICATES: return r->duplicates;
	case RM_RECONCILES: return r->reconciles;
	case RM_DEAD: return r->dead_lettered;
	case RM_GAPS: return r->gaps;
	case RM_BREAKER_OPENED: return r->breaker_opened;
	case RM_LAG_EVENTS: return r->lag_events;
	case RM_LAG_BATCHES: return r->lag_batches;
	case RM_LAG_SECONDS: return r->lag_ms;
	case RM_WINDOW: return r->window;
	case RM_INFLIGHT: return r->inflight;
	case RM_BREAKER: return breaker_value(r->breaker);
	case RM_CONNECTED: return r->connected;
	case RM_DURABLE: return r->durable;
	case RM_REPLICAS: return r->replicas;
	case RM_PARKED: return r->parked;
	default: return 0;
	}
}

static void render_latency(struct mbuf *b, const struct metrics_state *st)
{
	static const char name[] = "evring_ship_latency_seconds";
	const struct ship_latency *h = &st->latency;
	bool inf = false;
	char buf[48];

	family(b, name, "histogram",
	       "From a batch's commit to the spool to its acknowledgement by a region, over every region.");
	if (!st->nr_regions)
		return;
	for (unsigned int i = 0; i < SHIP_LAT_BUCKETS && !inf; i++) {
		if (!h->le_us[i])
			continue;	/* an unused bucket */
		inf = h->le_us[i] == UINT64_MAX;
		mb_printf(b, "%s_bucket{le=\"%s\"} %llu\n", name,
			  inf ? "+Inf" : fmt_seconds(h->le_us[i], 1000000,
						     buf, sizeof(buf)),
			  (unsigned long long)h->count[i]);
	}
	if (!inf)
		mb_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name,
			  (unsigned long long)h->n);
	mb_printf(b, "%s_sum %s\n", name,
		  fmt_seconds(h->sum_us, 1000000, buf, sizeof(buf)));
	mb_printf(b, "%s_count %llu\n", name, (unsigned long long)h->n);
}

int metrics_render(const struct metrics_state *st, char **text, size_t *len)
{
	unsigned int nparts = st->nr_parts < METRICS_PARTS_MAX ?
			      st->nr_parts : METRICS_PARTS_MAX;
	unsigned int nregions = st->nr_regions < CONFIG_REGIONS_MAX ?
				st->nr_regions : CONFIG_REGIONS_MAX;
	struct mbuf b = { 0 };
	char buf[48];

	scalar(&b, "evring_records_spooled_total", "counter",
	       "Events made durable in the spool since evringd started.",
	       st->records_spooled);
	scalar(&b, "evring_batches_spooled_total", "counter",
	       "Batches committed to the spool since evringd started.",
	       st->batches_spooled);
	scalar(&b, "evring_bytes_spooled_total", "counter",
	       "Event bytes (ring layout) made durable in the spool since evringd started.",
	       st->bytes_spooled);
	scalar(&b, "evring_spool_size_bytes", "gauge",
	       "Size of the spool on disk, database and WAL.", st->spool_bytes);
	scalar(&b, "evring_spool_max_bytes", "gauge",
	       "The spool's bound on batch bytes (spool.max_bytes); 0: none.",
	       st->spool_max_bytes);
	for (unsigned int m = 0; m < PM_NR; m++) {
		family(&b, part_metrics[m].name, "gauge", part_metrics[m].help);
		for (unsigned int i = 0; i < nparts; i++) {
			const struct metrics_part *p = &st->parts[i];

			mb_printf(&b, "%s{source=\"", part_metrics[m].name);
			mb_label(&b, p->source, sizeof(p->source));
			mb_printf(&b, "\",partition=\"%u\"} %llu\n",
				  p->partition,
				  (unsigned long long)part_value(p, m));
		}
	}
	for (unsigned int m = 0; m < RM_NR; m++) {
		family(&b, region_metrics[m].name, region_metrics[m].type,
		       region_metrics[m].help);
		for (unsigned int i = 0; i < nregions; i++) {
			const struct ship_region_status *r = &st->regions[i];
			uint64_t v = region_value(r, m);

			mb_printf(&b, "%s{region=\"", region_metrics[m].name);
			mb_label(&b, r->name, sizeof(r->name));
			if (region_metrics[m].ms)
				mb_printf(&b, "\"} %s\n",
					  fmt_seconds(v, 1000, buf,
						      sizeof(buf)));
			else
				mb_printf(&b, "\"} %llu\n",
					  (unsigned long long)v);
		}
	}
	render_latency(&b, st);
	if (b.oom) {
		free(b.p);
		return -ENOMEM;
	}
	*text = b.p;
	*len = b.len;
	return 0;
}

/* --- the HTTP server --------------------------------------------------- */

struct metrics_http {
	struct loop *loop;
	struct MHD_Daemon *mhd;
	int epoll_fd;			/* MHD's own, watched by the loop */
	uint64_t timer;			/* MHD_get_timeout(), or 0 */
	metrics_collect_fn collect;
	void *arg;
	unsigned int port;
};

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned int code,
			     const char *body, const char *allow)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(strlen(body), (void *)body,
					    MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
				"text/plain; charset=utf-8");
	if (allow)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
	ret = MHD_queue_response(conn, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result reply_metrics(struct metrics_http *m,
				     struct MHD_Connection *conn)
{
	struct metrics_state *st = calloc(1, sizeof(*st));
	struct MHD_Response *r;
	enum MHD_Result ret;
	char *text = NULL;
	size_t len = 0;
	int err;

	err = st ? m->collect(m->arg, st) : -ENOMEM;
	if (!err)
		err = metrics_render(st, &text, &len);
	free(st);
	if (err)
		return reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
			     "cannot collect metrics\n", NULL);
	r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, CONTENT_TYPE);
	ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

/*
 * GET and HEAD are answered once the request is complete (libmicrohttpd
 * calls us first with the headers, then once more): a response queued
 * earlier would close the connection, and scrapers keep theirs alive.  A
 * body sent with them is discarded as it arrives, never stored.  Any
 * other method is answered at once, its body unread (the connection is
 * then closed).
 */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
				  const char *url, const char *method,
				  const char *version, const char *upload,
				  size_t *upload_size, void **req_cls)
{
	static int seen;
	bool get = !strcmp(method, MHD_HTTP_METHOD_GET) ||
		   !strcmp(method, MHD_HTTP_METHOD_HEAD);

	if (get && !*req_cls) {
		*req_cls = &seen;
		return MHD_YES;
	}
	if (get && *upload_size) {
		*upload_size = 0;
		return MHD_YES;
	}
	if (strcmp(url, "/metrics"))
		return reply(conn, MHD_HTTP_NOT_FOUND, "not found\n", NULL);
	if (!get)
		return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
			     "method not allowed\n", "GET, HEAD");
	return reply_metrics(cls, conn);
}

static void on_timer(struct loop *l, uint64_t id, void *arg);

/* Do what is ready, then ask libmicrohttpd when to look again. */
static void mh_run(struct metrics_http *m)
{
	MHD_UNSIGNED_LONG_LONG ms;

	MHD_run(m->mhd);
	if (m->timer)
		loop_cancel_timer(m->loop, m->timer);
	m->timer = 0;
	if (MHD_get_timeout(m->mhd, &ms) == MHD_YES &&
	    loop_add_timer(m->loop, ms, 0, on_timer, m, &m->timer))
		m->timer = 0;
}

static void on_timer(struct loop *l, uint64_t id, void *arg)
{
	struct metrics_http *m = arg;

	m->timer = 0;
	mh_run(m);
}

static void on_epoll(struct loop *l, int fd, uint32_t events, void *arg)
{
	mh_run(arg);
}

/* "1.2.3.4:80" or "[::1]:80" into @sa; -EINVAL when it is neither. */
static int parse_listen(const char *s, struct sockaddr_storage *sa,
			socklen_t *salen)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *colon, *h = s;
	size_t hlen;
	unsigned long port;
	char *end;

	if (s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (!rb || rb[1] != ':')
			return -EINVAL;
		h = s + 1;
		hlen = rb - h;
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		hlen = colon - s;
	}
	if (!hlen || hlen >= sizeof(host) || colon[1] < '0' || colon[1] > '9')
		return -EINVAL;
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno || *end || port > 65535)
		return -EINVAL;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	memset(sa, 0, sizeof(*sa));
	if (s[0] != '[') {
		struct sockaddr_in *in = (struct sockaddr_in *)sa;

		in->sin_family = AF_INET;
		in->sin_port = htons(port);
		*salen = sizeof(*in);
		return inet_pton(AF_INET, host, &in->sin_addr) == 1 ?
		       0 : -EINVAL;
	}
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;

	in6->sin6_family = AF_INET6;
	in6->sin6_port = htons(port);
	*salen = sizeof(*in6);
	return inet_pton(AF_INET6, host, &in6->sin6_addr) == 1 ? 0 : -EINVAL;
}

/* Our listening socket: *fd and the port it got. */
static int listen_socket(const struct sockaddr_storage *sa, socklen_t salen,
			 int *fd, unsigned int *port)
{
	struct sockaddr_storage got;
	socklen_t glen = sizeof(got);
	int one = 1, s, err;

	s = socket(sa->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		   0);
	if (s < 0)
		return -errno;
	/* Rebind past TIME_WAIT after a restart; never a shared port. */
	if (setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(s, (const struct sockaddr *)sa, salen) < 0 ||
	    listen(s, LISTEN_BACKLOG) < 0 ||
	    getsockname(s, (struct sockaddr *)&got, &glen) < 0) {
		err = -errno;
		close(s);
		return err;
	}
	*port = ntohs(got.ss_family == AF_INET6 ?
		      ((struct sockaddr_in6 *)&got)->sin6_port :
		      ((struct sockaddr_in *)&got)->sin_port);
	*fd = s;
	return 0;
}

/* Hand a dup of @fd to libmicrohttpd, which closes it when it stops. */
static int mh_start(struct metrics_http *m, int fd)
{
	const union MHD_DaemonInfo *di;
	int mfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);

	if (mfd < 0)
		return -errno;
	m->mhd = MHD_start_daemon(MHD_USE_EPOLL, 0, NULL, NULL, on_request, m,
				  MHD_OPTION_LISTEN_SOCKET, mfd,
				  MHD_OPTION_CONNECTION_LIMIT,
				  (unsigned int)METRICS_HTTP_CONNECTIONS,
				  MHD_OPTION_CONNECTION_TIMEOUT,
				  (unsigned int)METRICS_HTTP_IDLE_S,
				  MHD_OPTION_END);
	/*
	 * On failure the dup may or may not have been closed by it: leave it
	 * (one fd, on a path that stops the daemon) rather than risk closing
	 * someone else's.
	 */
	if (!m->mhd)
		return -ENOMEM;
	di = MHD_get_daemon_info(m->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	if (!di || di->epoll_fd < 0)
		return -EOPNOTSUPP;
	m->epoll_fd = di->epoll_fd;
	return loop_add_fd(m->loop, m->epoll_fd, LOOP_IN, on_epoll, m);
}

int metrics_http_open(struct loop *l, const char *listen,
		      metrics_collect_fn collect, void *arg,
		      struct metrics_http **out, char *err, size_t errlen)
{
	struct sockaddr_storage sa;
	struct metrics_http *m;
	socklen_t salen;
	int fd = -1, ret;

	if (parse_listen(listen, &sa, &salen)) {
		snprintf(err, errlen,
			 "bad ship.metrics_listen '%s': expected ADDR:PORT or [ADDR6]:PORT, numeric",
			 listen);
		return -EINVAL;
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		snprintf(err, errlen, "cannot serve /metrics: %s",
			 strerror(ENOMEM));
		return -ENOMEM;
	}
	m->loop = l;
	m->epoll_fd = -1;
	m->collect = collect;
	m->arg = arg;
	ret = listen_socket(&sa, salen, &fd, &m->port);
	if (ret) {
		snprintf(err, errlen, "cannot listen on %s for /metrics: %s",
			 listen, strerror(-ret));
		free(m);
		return ret;
	}
	ret = mh_start(m, fd);
	close(fd);
	if (ret) {
		snprintf(err, errlen, "cannot serve /metrics on %s: %s",
			 listen, strerror(-ret));
		metrics_http_close(m);
		return ret;
	}
	mh_run(m);
	*out = m;
	return 0;
}

void metrics_http_close(struct metrics_http *m)
{
	if (!m)
		return;
	if (m->timer)
		loop_cancel_timer(m->loop, m->timer);
	if (m->epoll_fd >= 0)
		loop_del_fd(m->loop, m->epoll_fd);
	if (m->mhd)
		MHD_stop_daemon(m->mhd);
	free(m);
}

unsigned int metrics_http_port(const struct metrics_http *m)
{
	return m->port;
}
