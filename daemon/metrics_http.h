/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * metrics_http: the Prometheus /metrics endpoint (ship.metrics_listen), the
 * libmicrohttpd adapter of the daemon: no other file sees <microhttpd.h>.
 *
 *	metrics_http_open(loop, "127.0.0.1:9464", collect, arg, &m,
 *			  err, sizeof(err));
 *	...	GET /metrics -> collect(arg, &state) -> metrics_render()
 *	metrics_http_close(m);
 *
 * Two halves, tested apart (selftests/daemon/metrics_test.c):
 *  - metrics_render() is pure: a struct metrics_state in, the text
 *    exposition format 0.0.4 out.  The daemon's state reaches it only
 *    through that struct, filled by the collect callback.
 *  - the HTTP server runs inside the daemon's loop, with no thread of its
 *    own: libmicrohttpd in external epoll mode (MHD_USE_EPOLL), its epoll
 *    fd registered with loop_add_fd(), MHD_run() when it is readable and a
 *    loop timer armed from MHD_get_timeout().  So collect() runs on the
 *    loop's thread, like every other callback of the daemon.
 *
 * Guarantees:
 *  - GET (and HEAD) /metrics: 200, Content-Type "text/plain;
 *    version=0.0.4; charset=utf-8"; any other path 404; any other method
 *    on /metrics 405 with "Allow: GET, HEAD"; a failing collect() 500.
 *  - Bounds: at most METRICS_HTTP_CONNECTIONS connections at once (more
 *    are closed at accept), each closed after METRICS_HTTP_IDLE_S idle
 *    seconds; a request's headers are bounded by libmicrohttpd's
 *    per-connection memory pool.  No request body is read.
 *  - Every exported family has # HELP and # TYPE lines, also with no
 *    region configured (then without samples), so dashboards see the
 *    names.
 *  - The module never prints.
 */
#ifndef EVRINGD_METRICS_HTTP_H
#define EVRINGD_METRICS_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "loop.h"
#include "ship.h"

#define METRICS_HTTP_CONNECTIONS	16
#define METRICS_HTTP_IDLE_S		10
#define METRICS_PARTS_MAX		256	/* spool partitions exported */
#define METRICS_SOURCE_MAX		16	/* "device", "socket", "bpf" */

/* One spooled (source, partition): what it holds in the spool now. */
struct metrics_part {
	char source[METRICS_SOURCE_MAX];
	uint32_t partition;
	uint64_t batches;
	uint64_t records;
	uint64_t bytes;
};

/* Everything /metrics exports, as of one collect() call. */
struct metrics_state {
	/* counters, since the daemon started */
	uint64_t records_spooled;
	uint64_t batches_spooled;
	uint64_t bytes_spooled;		/* payload bytes */
	/* gauges of the spool now */
	uint64_t spool_bytes;		/* database + WAL on disk */
	uint64_t spool_max_bytes;	/* 0: no bound */
	unsigned int nr_parts;		/* <= METRICS_PARTS_MAX */
	struct metrics_part parts[METRICS_PARTS_MAX];
	/* per region (ship_region_status()), <= CONFIG_REGIONS_MAX */
	unsigned int nr_regions;
	struct ship_region_status regions[CONFIG_REGIONS_MAX];
	/* end-to-end latency (ship_latency()); exported when nr_regions */
	struct ship_latency latency;
};

/* Fill @out (zeroed by the caller): 0 or -errno (the request gets 500). */
typedef int (*metrics_collect_fn)(void *arg, struct metrics_state *out);

/*
 * Render @st as Prometheus text exposition format 0.0.4 into a malloc'ed,
 * NUL-terminated *@text of *@len bytes (free() it).  Pure: the same state
 * gives the same bytes.  0 or -ENOMEM.
 */
int metrics_render(const struct metrics_state *st, char **text,
		   size_t *len);

struct metrics_http;

/*
 * Listen on @listen ("ADDR:PORT", "[ADDR6]:PORT"; numeric) and serve
 * /metrics from @l.  On failure *@out is untouched and @err holds one
 * line, e.g. "cannot listen on 127.0.0.1:9464 for /metrics: Address
 * already in use" (-EADDRINUSE), or "bad ship.metrics_listen 'x': ..."
 * (-EINVAL).
 */
int metrics_http_open(struct loop *l, const char *listen,
		      metrics_collect_fn collect, void *arg,
		      struct metrics_http **out, char *err, size_t errlen);
/* Stop serving: closes every connection and the listener; accepts NULL. */
void metrics_http_close(struct metrics_http *m);

/* The port actually bound (for @listen with port 0, in tests). */
unsigned int metrics_http_port(const struct metrics_http *m);

#endif /* EVRINGD_METRICS_HTTP_H */
