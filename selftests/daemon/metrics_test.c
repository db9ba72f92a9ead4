// SPDX-License-Identifier: GPL-2.0-only
/*
 * metrics_test: the /metrics endpoint (daemon/metrics_http.c), against
 * daemon/metrics_http.h and docs/OPERATING.md.
 *
 * The renderer is checked byte for byte on a fixed state.  The server runs
 * on a real loop in a second thread, listening on 127.0.0.1 on a port of
 * this test's range (14600-14699), and the test thread speaks raw HTTP/1.1
 * to it over TCP, so what is checked is what Prometheus would read.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loop.h"
#include "metrics_http.h"
#include "kselftest_harness.h"

#define PORT_FIRST	14600
#define PORT_LAST	14699
#define IO_TIMEOUT_S	5

/* --- a fixed state ------------------------------------------------------ */

static void fixed_state(struct metrics_state *st)
{
	memset(st, 0, sizeof(*st));
	st->records_spooled = 1000;
	st->batches_spooled = 10;
	st->bytes_spooled = 64000;
	st->spool_bytes = 1 << 20;
	st->spool_max_bytes = 1 << 30;
	st->nr_parts = 1;
	st->parts[0] = (struct metrics_part){
		.source = "device", .partition = 3, .batches = 2,
		.records = 200, .bytes = 12800,
	};
	st->nr_regions = 2;
	st->regions[0] = (struct ship_region_status){
		.name = "a", .connected = true, .durable = true,
		.replicas = 3, .breaker = "closed", .window = 8,
		.inflight = 2, .lag_batches = 1, .lag_events = 100,
		.lag_ms = 1500, .shipped_batches = 9, .shipped_events = 900,
		.shipped_bytes = 57600, .retries = 4, .duplicates = 1,
		.reconciles = 2, .dead_lettered = 0, .breaker_opened = 1,
	};
	st->regions[1] = (struct ship_region_status){
		.name = "b", .connected = false, .durable = false,
		.replicas = 1, .parked = true, .breaker = "open",
		.window = 1, .lag_batches = 10, .lag_events = 1000,
		.lag_ms = 60000, .retries = 30, .dead_lettered = 2,
		.gaps = 1, .breaker_opened = 3,
	};
	st->latency.le_us[0] = 1000;
	st->latency.le_us[1] = 10000;
	st->latency.le_us[2] = 250000;
	st->latency.le_us[3] = UINT64_MAX;
	st->latency.count[0] = 5;
	st->latency.count[1] = 8;
	st->latency.count[2] = 9;
	st->latency.count[3] = 9;
	st->latency.sum_us = 123450;
	st->latency.n = 9;
}

static const char expected[] =
	"# HELP evring_records_spooled_total Events made durable in the spool since evringd started.\n"
	"# TYPE evring_records_spooled_total counter\n"
	"evring_records_spooled_total 1000\n"
	"# HELP evring_batches_spooled_total Batches committed to the spool since evringd started.\n"
	"# TYPE evring_batches_spooled_total counter\n"
	"evring_batches_spooled_total 10\n"
	"# HELP evring_bytes_spooled_total Event bytes (ring layout) made durable in the spool since evringd started.\n"
	"# TYPE evring_bytes_spooled_total counter\n"
	"evring_bytes_spooled_total 64000\n"
	"# HELP evring_spool_size_bytes Size of the spool on disk, database and WAL.\n"
	"# TYPE evring_spool_size_bytes gauge\n"
	"evring_spool_size_bytes 1048576\n"
	"# HELP evring_spool_max_bytes The spool's bound on batch bytes (spool.max_bytes); 0: none.\n"
	"# TYPE evring_spool_max_bytes gauge\n"
	"evring_spool_max_bytes 1073741824\n"
	"# HELP evring_spool_partition_batches Batches of the partition held in the spool.\n"
	"# TYPE evring_spool_partition_batches gauge\n"
	"evring_spool_partition_batches{source=\"device\",partition=\"3\"} 2\n"
	"# HELP evring_spool_partition_records Events of the partition held in the spool.\n"
	"# TYPE evring_spool_partition_records gauge\n"
	"evring_spool_partition_records{source=\"device\",partition=\"3\"} 200\n"
	"# HELP evring_spool_partition_bytes Encoded batch bytes of the partition held in the spool.\n"
	"# TYPE evring_spool_partition_bytes gauge\n"
	"evring_spool_partition_bytes{source=\"device\",partition=\"3\"} 12800\n"
	"# HELP evring_ship_batches_total Batches the region acknowledged (duplicates included).\n"
	"# TYPE evring_ship_batches_total counter\n"
	"evring_ship_batches_total{region=\"a\"} 9\n"
	"evring_ship_batches_total{region=\"b\"} 0\n"
	"# HELP evring_ship_events_total Events in the batches the region acknowledged.\n"
	"# TYPE evring_ship_events_total counter\n"
	"evring_ship_events_total{region=\"a\"} 900\n"
	"evring_ship_events_total{region=\"b\"} 0\n"
	"# HELP evring_ship_bytes_total Encoded batch bytes the region acknowledged.\n"
	"# TYPE evring_ship_bytes_total counter\n"
	"evring_ship_bytes_total{region=\"a\"} 57600\n"
	"evring_ship_bytes_total{region=\"b\"} 0\n"
	"# HELP evring_ship_retries_total Publishes sent again after a transient or ambiguous failure.\n"
	"# TYPE evring_ship_retries_total counter\n"
	"evring_ship_retries_total{region=\"a\"} 4\n"
	"evring_ship_retries_total{region=\"b\"} 30\n"
	"# HELP evring_ship_duplicates_total Acknowledgements that said the stream already held the batch.\n"
	"# TYPE evring_ship_duplicates_total counter\n"
	"evring_ship_duplicates_total{region=\"a\"} 1\n"
	"evring_ship_duplicates_total{region=\"b\"} 0\n"
	"# HELP evring_ship_reconciles_total Times the stream was asked what it holds after an ambiguous outcome.\n"
	"# TYPE evring_ship_reconciles_total counter\n"
	"evring_ship_reconciles_total{region=\"a\"} 2\n"
	"evring_ship_reconciles_total{region=\"b\"} 0\n"
	"# HELP evring_ship_dead_letters_total Batches the region refused for good, moved to the dead-letter table.\n"
	"# TYPE evring_ship_dead_letters_total counter\n"
	"evring_ship_dead_letters_total{region=\"a\"} 0\n"
	"evring_ship_dead_letters_total{region=\"b\"} 2\n"
	"# HELP evring_ship_gaps_total Times a parked region's cursor continued past batches trimmed without it (they never reach it).\n"
	"# TYPE evring_ship_gaps_total counter\n"
	"evring_ship_gaps_total{region=\"a\"} 0\n"
	"evring_ship_gaps_total{region=\"b\"} 1\n"
	"# HELP evring_ship_breaker_opened_total Times the region's circuit breaker opened.\n"
	"# TYPE evring_ship_breaker_opened_total counter\n"
	"evring_ship_breaker_opened_total{region=\"a\"} 1\n"
	"evring_ship_breaker_opened_total{region=\"b\"} 3\n"
	"# HELP evring_ship_lag_events Spooled events not yet delivered to the region.\n"
	"# TYPE evring_ship_lag_events gauge\n"
	"evring_ship_lag_events{region=\"a\"} 100\n"
	"evring_ship_lag_events{region=\"b\"} 1000\n"
	"# HELP evring_ship_lag_batches Spooled batches not yet delivered to the region.\n"
	"# TYPE evring_ship_lag_batches gauge\n"
	"evring_ship_lag_batches{region=\"a\"} 1\n"
	"evring_ship_lag_batches{region=\"b\"} 10\n"
	"# HELP evring_ship_lag_seconds Age of the oldest batch not yet delivered to the region.\n"
	"# TYPE evring_ship_lag_seconds gauge\n"
	"evring_ship_lag_seconds{region=\"a\"} 1.5\n"
	"evring_ship_lag_seconds{region=\"b\"} 60\n"
	"# HELP evring_ship_window The region's adaptive in-flight window (AIMD), in batches.\n"
	"# TYPE evring_ship_window gauge\n"
	"evring_ship_window{region=\"a\"} 8\n"
	"evring_ship_window{region=\"b\"} 1\n"
	"# HELP evring_ship_inflight Batches published to the region and not yet acknowledged.\n"
	"# TYPE evring_ship_inflight gauge\n"
	"evring_ship_inflight{region=\"a\"} 2\n"
	"evring_ship_inflight{region=\"b\"} 0\n"
	"# HELP evring_ship_breaker_state The region's circuit breaker: 0 closed, 1 half-open, 2 open.\n"
	"# TYPE evring_ship_breaker_state gauge\n"
	"evring_ship_breaker_state{region=\"a\"} 0\n"
	"evring_ship_breaker_state{region=\"b\"} 2\n"
	"# HELP evring_ship_region_connected 1 when connected to the region's servers.\n"
	"# TYPE evring_ship_region_connected gauge\n"
	"evring_ship_region_connected{region=\"a\"} 1\n"
	"evring_ship_region_connected{region=\"b\"} 0\n"
	"# HELP evring_ship_region_durable 1 when the region's stream is replicated (R3 or more); 0: an acknowledgement does not survive a server crash.\n"
	"# TYPE evring_ship_region_durable gauge\n"
	"evring_ship_region_durable{region=\"a\"} 1\n"
	"evring_ship_region_durable{region=\"b\"} 0\n"
	"# HELP evring_ship_region_replicas Replicas of the region's stream.\n"
	"# TYPE evring_ship_region_replicas gauge\n"
	"evring_ship_region_replicas{region=\"a\"} 3\n"
	"evring_ship_region_replicas{region=\"b\"} 1\n"
	"# HELP evring_ship_region_parked 1 when the region lags beyond ship.lag_limit_s and no longer holds back spool trims.\n"
	"# TYPE evring_ship_region_parked gauge\n"
	"evring_ship_region_parked{region=\"a\"} 0\n"
	"evring_ship_region_parked{region=\"b\"} 1\n"
	"# HELP evring_ship_latency_seconds From a batch's commit to the spool to its acknowledgement by a region, over every region.\n"
	"# TYPE evring_ship_latency_seconds histogram\n"
	"evring_ship_latency_seconds_bucket{le=\"0.001\"} 5\n"
	"evring_ship_latency_seconds_bucket{le=\"0.01\"} 8\n"
	"evring_ship_latency_seconds_bucket{le=\"0.25\"} 9\n"
	"evring_ship_latency_seconds_bucket{le=\"+Inf\"} 9\n"
	"evring_ship_latency_seconds_sum 0.12345\n"
	"evring_ship_latency_seconds_count 9\n";

/* Every family the endpoint exports, with its type. */
static const char *const families[][2] = {
	{ "evring_records_spooled_total", "counter" },
	{ "evring_batches_spooled_total", "counter" },
	{ "evring_bytes_spooled_total", "counter" },
	{ "evring_spool_size_bytes", "gauge" },
	{ "evring_spool_max_bytes", "gauge" },
	{ "evring_spool_partition_batches", "gauge" },
	{ "evring_spool_partition_records", "gauge" },
	{ "evring_spool_partition_bytes", "gauge" },
	{ "evring_ship_batches_total", "counter" },
	{ "evring_ship_events_total", "counter" },
	{ "evring_ship_bytes_total", "counter" },
	{ "evring_ship_retries_total", "counter" },
	{ "evring_ship_duplicates_total", "counter" },
	{ "evring_ship_reconciles_total", "counter" },
	{ "evring_ship_dead_letters_total", "counter" },
	{ "evring_ship_gaps_total", "counter" },
	{ "evring_ship_breaker_opened_total", "counter" },
	{ "evring_ship_lag_events", "gauge" },
	{ "evring_ship_lag_batches", "gauge" },
	{ "evring_ship_lag_seconds", "gauge" },
	{ "evring_ship_window", "gauge" },
	{ "evring_ship_inflight", "gauge" },
	{ "evring_ship_breaker_state", "gauge" },
	{ "evring_ship_region_connected", "gauge" },
	{ "evring_ship_region_durable", "gauge" },
	{ "evring_ship_region_replicas", "gauge" },
	{ "evring_ship_region_parked", "gauge" },
	{ "evring_ship_latency_seconds", "histogram" },
};
#define NR_FAMILIES (sizeof(families) / sizeof(families[0]))

/* --- the renderer ------------------------------------------------------ */

TEST(renderer_output_for_a_fixed_state_is_exactly_the_expected_text)
{
	struct metrics_state *st = malloc(sizeof(*st));
	char *text = (void *)1;
	size_t len = 0;

	ASSERT_NE(NULL, st);
	fixed_state(st);
	ASSERT_EQ(0, metrics_render(st, &text, &len));
	ASSERT_EQ(strlen(text), len);
	ASSERT_STREQ(expected, text);
	free(text);
	free(st);
}

TEST(renderer_without_regions_still_names_every_family_without_samples)
{
	struct metrics_state *st = calloc(1, sizeof(*st));
	char *text, want[256];
	size_t len;

	ASSERT_NE(NULL, st);
	ASSERT_EQ(0, metrics_render(st, &text, &len));
	for (size_t i = 0; i < NR_FAMILIES; i++) {
		snprintf(want, sizeof(want), "# TYPE %s %s\n", families[i][0],
			 families[i][1]);
		ASSERT_NE(NULL, strstr(text, want)) TH_LOG("no '%s'", want);
	}
	ASSERT_EQ(NULL, strstr(text, "region=\""));
	ASSERT_EQ(NULL, strstr(text, "_bucket"));
	ASSERT_NE(NULL, strstr(text, "\nevring_records_spooled_total 0\n"));
	free(text);
	free(st);
}

TEST(renderer_escapes_label_values)
{
	struct metrics_state *st = calloc(1, sizeof(*st));
	char *text;
	size_t len;

	ASSERT_NE(NULL, st);
	st->nr_parts = 1;
	strcpy(st->parts[0].source, "a\"b\\c\nd");
	ASSERT_EQ(0, metrics_render(st, &text, &len));
	ASSERT_NE(NULL, strstr(text,
		"evring_spool_partition_batches{source=\"a\\\"b\\\\c\\nd\",partition=\"0\"} 0\n"));
	free(text);
	free(st);
}

TEST(renderer_histogram_without_an_inf_bucket_gets_one_from_the_count)
{
	struct metrics_state *st = calloc(1, sizeof(*st));
	char *text;
	size_t len;

	ASSERT_NE(NULL, st);
	st->nr_regions = 1;
	strcpy(st->regions[0].name, "a");
	st->latency.le_us[0] = 2000000;
	st->latency.count[0] = 3;
	st->latency.n = 4;
	st->latency.sum_us = 7000001;
	ASSERT_EQ(0, metrics_render(st, &text, &len));
	ASSERT_NE(NULL, strstr(text,
		"evring_ship_latency_seconds_bucket{le=\"2\"} 3\n"
		"evring_ship_latency_seconds_bucket{le=\"+Inf\"} 4\n"
		"evring_ship_latency_seconds_sum 7.000001\n"
		"evring_ship_latency_seconds_count 4\n"));
	free(text);
	free(st);
}

/* --- the server -------------------------------------------------------- */

struct server {
	struct loop *l;
	struct metrics_http *m;
	int stop_rd, stop_wr;
	pthread_t thread;
	bool running;
	int collect_err;		/* atomic: returned by collect */
	unsigned int collects;		/* atomic */
};

static int collect(void *arg, struct metrics_state *out)
{
	struct server *s = arg;
	int err = __atomic_load_n(&s->collect_err, __ATOMIC_SEQ_CST);

	__atomic_add_fetch(&s->collects, 1, __ATOMIC_SEQ_CST);
	if (err)
		return err;
	fixed_state(out);
	return 0;
}

static void on_stop(struct loop *l, int fd, uint32_t events, void *arg)
{
	loop_stop(l);
}

static void *loop_thread(void *arg)
{
	struct server *s = arg;

	loop_run(s->l);
	return NULL;
}

/* Open on the first free port of the range, from a pid-chosen start. */
static int open_in_range(struct server *s, char *listen, size_t len,
			 char *err, size_t errlen)
{
	unsigned int n = PORT_LAST - PORT_FIRST + 1;
	unsigned int start = (unsigned int)getpid() % n;
	int ret = -EADDRINUSE;

	for (unsigned int i = 0; i < n && ret == -EADDRINUSE; i++) {
		snprintf(listen, len, "127.0.0.1:%u",
			 PORT_FIRST + (start + i) % n);
		ret = metrics_http_open(s->l, listen, collect, s, &s->m, err,
					errlen);
	}
	return ret;
}

FIXTURE(srv) {
	struct server s;
	char listen[64];
	unsigned int port;
};

FIXTURE_SETUP(srv)
{
	char err[256];
	int p[2];

	memset(&self->s, 0, sizeof(self->s));
	ASSERT_EQ(0, loop_new(&self->s.l));
	ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
	self->s.stop_rd = p[0];
	self->s.stop_wr = p[1];
	ASSERT_EQ(0, loop_add_fd(self->s.l, p[0], LOOP_IN, on_stop, NULL));
	ASSERT_EQ(0, open_in_range(&self->s, self->listen,
				   sizeof(self->listen), err, sizeof(err)))
		TH_LOG("%s", err);
	self->port = metrics_http_port(self->s.m);
	ASSERT_GE(self->port, (unsigned int)PORT_FIRST);
	ASSERT_LE(self->port, (unsigned int)PORT_LAST);
	ASSERT_EQ(0, pthread_create(&self->s.thread, NULL, loop_thread,
				    &self->s));
	self->s.running = true;
}

FIXTURE_TEARDOWN(srv)
{
	if (self->s.running) {
		if (write(self->s.stop_wr, "", 1) != 1)
			abort();
		pthread_join(self->s.thread, NULL);
	}
	metrics_http_close(self->s.m);
	loop_free(self->s.l);
	close(self->s.stop_rd);
	close(self->s.stop_wr);
}

static int tcp_connect(unsigned int port)
{
	struct sockaddr_in sa = {
		.sin_family = AF_INET,
		.sin_port = htons(port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	struct timeval tv = { .tv_sec = IO_TIMEOUT_S };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

/*
 * Send @req as is and read until the server closes: the whole response,
 * NUL-terminated, in @out.  Its length, or -errno.
 */
static ssize_t http(unsigned int port, const char *req, char *out,
		    size_t len)
{
	size_t got = 0;
	ssize_t n;
	int fd = tcp_connect(port);

	if (fd < 0)
		return fd;
	if (send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req)) {
		close(fd);
		return -EIO;
	}
	while (got < len - 1 && (n = recv(fd, out + got, len - 1 - got, 0)) > 0)
		got += n;
	out[got] = '\0';
	close(fd);
	return n < 0 ? -errno : (ssize_t)got;
}

/* The body after the blank line, or NULL. */
static const char *body_of(const char *resp)
{
	const char *p = strstr(resp, "\r\n\r\n");

	return p ? p + 4 : NULL;
}

/* Whether the header block has @line (e.g. "Allow: GET, HEAD"). */
static bool has_header(const char *resp, const char *line)
{
	const char *end = strstr(resp, "\r\n\r\n");
	char want[256];
	const char *p;

	snprintf(want, sizeof(want), "\r\n%s\r\n", line);
	p = strstr(resp, want);
	return p && end && p < end;
}

#define GET_METRICS "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"

TEST_F(srv, get_metrics_is_200_text_0_0_4_with_help_type_and_values)
{
	static char resp[1 << 16];
	char want[256];
	const char *body;

	ASSERT_LT(0, http(self->port, GET_METRICS, resp, sizeof(resp)));
	ASSERT_EQ(0, strncmp(resp, "HTTP/1.1 200 OK\r\n", 17)) TH_LOG("%s", resp);
	ASSERT_TRUE(has_header(resp, "Content-Type: text/plain; version=0.0.4; charset=utf-8"));
	body = body_of(resp);
	ASSERT_NE(NULL, body);
	for (size_t i = 0; i < NR_FAMILIES; i++) {
		snprintf(want, sizeof(want), "# HELP %s ", families[i][0]);
		ASSERT_NE(NULL, strstr(body, want)) TH_LOG("no '%s'", want);
		snprintf(want, sizeof(want), "# TYPE %s %s\n", families[i][0],
			 families[i][1]);
		ASSERT_NE(NULL, strstr(body, want)) TH_LOG("no '%s'", want);
	}
	for (const char *const *v = (const char *const[]){
		"\nevring_records_spooled_total 1000\n",
		"\nevring_batches_spooled_total 10\n",
		"\nevring_ship_batches_total{region=\"a\"} 9\n",
		"\nevring_ship_events_total{region=\"a\"} 900\n",
		"\nevring_ship_bytes_total{region=\"a\"} 57600\n",
		"\nevring_ship_retries_total{region=\"b\"} 30\n",
		"\nevring_ship_duplicates_total{region=\"a\"} 1\n",
		"\nevring_ship_dead_letters_total{region=\"b\"} 2\n",
		"\nevring_ship_lag_events{region=\"b\"} 1000\n",
		"\nevring_ship_lag_seconds{region=\"a\"} 1.5\n",
		"\nevring_ship_window{region=\"a\"} 8\n",
		"\nevring_ship_inflight{region=\"a\"} 2\n",
		"\nevring_ship_breaker_state{region=\"b\"} 2\n",
		"\nevring_ship_region_durable{region=\"b\"} 0\n",
		"\nevring_spool_partition_records{source=\"device\",partition=\"3\"} 200\n",
		"\nevring_ship_latency_seconds_bucket{le=\"+Inf\"} 9\n",
		"\nevring_ship_latency_seconds_count 9\n",
		NULL }; *v; v++) {
		ASSERT_NE(NULL, strstr(body, *v)) TH_LOG("no '%s'", *v + 1);
	}
	ASSERT_STREQ(expected, body);
}

TEST_F(srv, head_metrics_is_200_with_headers_only)
{
	char resp[8192];
	const char *body;

	ASSERT_LT(0, http(self->port,
			  "HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
			  resp, sizeof(resp)));
	ASSERT_EQ(0, strncmp(resp, "HTTP/1.1 200 OK\r\n", 17)) TH_LOG("%s", resp);
	ASSERT_TRUE(has_header(resp, "Content-Type: text/plain; version=0.0.4; charset=utf-8"));
	body = body_of(resp);
	ASSERT_NE(NULL, body);
	ASSERT_STREQ("", body);
}

TEST_F(srv, two_requests_on_one_kept_alive_connection_are_both_answered)
{
	static char resp[1 << 17];
	size_t got = 0;
	const char *second;
	ssize_t n;
	int fd = tcp_connect(self->port);

	ASSERT_LE(0, fd);
	ASSERT_LT(0, send(fd, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 34,
			  MSG_NOSIGNAL));
	ASSERT_LT(0, send(fd, GET_METRICS, strlen(GET_METRICS), MSG_NOSIGNAL));
	while (got < sizeof(resp) - 1 &&
	       (n = recv(fd, resp + got, sizeof(resp) - 1 - got, 0)) > 0)
		got += n;
	resp[got] = '\0';
	close(fd);
	second = strstr(resp + 1, "HTTP/1.1 200 OK\r\n");
	ASSERT_EQ(0, strncmp(resp, "HTTP/1.1 200 OK\r\n", 17));
	ASSERT_NE(NULL, second);
	ASSERT_EQ(2u, __atomic_load_n(&self->s.collects, __ATOMIC_SEQ_CST));
}

TEST_F(srv, any_other_path_is_404)
{
	static const char *const paths[] = {
		"/", "/metrics/", "/metricsx", "/metrics/x", "/favicon.ico",
		"/METRICS",
	};
	char req[256], resp[8192];

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		snprintf(req, sizeof(req),
			 "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
			 paths[i]);
		ASSERT_LT(0, http(self->port, req, resp, sizeof(resp)));
		ASSERT_EQ(0, strncmp(resp, "HTTP/1.1 404 Not Found\r\n", 24))
			TH_LOG("%s: %s", paths[i], resp);
		ASSERT_STREQ("not found\n", body_of(resp));
	}
	ASSERT_EQ(0u, __atomic_load_n(&self->s.collects, __ATOMIC_SEQ_CST));
}

TEST_F(srv, other_methods_are_405_with_allow_get_head)
{
	static const char *const reqs[] = {
		"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
		"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
		"PUT /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
		"DELETE /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"OPTIONS /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
	};
	char resp[8192];

	for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		ASSERT_LT(0, http(self->port, reqs[i], resp, sizeof(resp)));
		ASSERT_EQ(0, strncmp(resp, "HTTP/1.1 405 Method Not Allowed\r\n",
				     33)) TH_LOG("%s", resp);
		ASSERT_TRUE(has_header(resp, "Allow: GET, HEAD"));
		ASSERT_STREQ("method not allowed\n", body_of(resp));
	}
	ASSERT_EQ(0u, __atomic_load_n(&self->s.collects, __ATOMIC_SEQ_CST));
}

TEST_F(srv, failing_collect_is_500)
{
	char resp[8192];

	__atomic_store_n(&self->s.collect_err, -EIO, __ATOMIC_SEQ_CST);
	ASSERT_LT(0, http(self->port, GET_METRICS, resp, sizeof(resp)));
	ASSERT_EQ(0, strncmp(resp, "HTTP/1.1 500 Internal Server Error\r\n",
			     36)) TH_LOG("%s", resp);
	ASSERT_STREQ("cannot collect metrics\n", body_of(resp));
}

TEST_F(srv, second_server_on_the_same_port_fails_with_the_exact_error)
{
	struct metrics_http *m2 = (void *)1;
	char err[256], want[256], resp[1 << 16];

	ASSERT_EQ(-EADDRINUSE, metrics_http_open(self->s.l, self->listen,
						 collect, &self->s, &m2, err,
						 sizeof(err)));
	ASSERT_EQ((void *)1, m2);
	snprintf(want, sizeof(want),
		 "cannot listen on 127.0.0.1:%u for /metrics: Address already in use",
		 self->port);
	ASSERT_STREQ(want, err);
	/* The first one still serves. */
	ASSERT_LT(0, http(self->port, GET_METRICS, resp, sizeof(resp)));
	ASSERT_EQ(0, strncmp(resp, "HTTP/1.1 200 OK\r\n", 17));
}

TEST_F(srv, idle_connections_do_not_block_a_scrape)
{
	static char resp[1 << 16];
	int idle[4];

	for (int i = 0; i < 4; i++) {
		idle[i] = tcp_connect(self->port);
		ASSERT_LE(0, idle[i]);
	}
	ASSERT_LT(0, http(self->port, GET_METRICS, resp, sizeof(resp)));
	ASSERT_EQ(0, strncmp(resp, "HTTP/1.1 200 OK\r\n", 17));
	for (int i = 0; i < 4; i++)
		close(idle[i]);
}

/* --- opening ----------------------------------------------------------- */

TEST(bad_listen_addresses_are_einval_saying_so)
{
	static const char *const bad[] = {
		"", "127.0.0.1", "127.0.0.1:", ":9464", "localhost:9464",
		"127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:94x",
		"[::1]9464", "[::1:9464", "1.2.3:9464", "[127.0.0.1]:9464",
	};
	struct metrics_http *m = (void *)1;
	struct loop *l;
	char err[256], want[256];

	ASSERT_EQ(0, loop_new(&l));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ASSERT_EQ(-EINVAL, metrics_http_open(l, bad[i], collect, NULL,
						     &m, err, sizeof(err)))
			TH_LOG("'%s' accepted", bad[i]);
		snprintf(want, sizeof(want),
			 "bad ship.metrics_listen '%s': expected ADDR:PORT or [ADDR6]:PORT, numeric",
			 bad[i]);
		ASSERT_STREQ(want, err);
		ASSERT_EQ((void *)1, m);
	}
	loop_free(l);
}

TEST(address_not_on_this_host_is_eaddrnotavail)
{
	struct metrics_http *m = (void *)1;
	struct loop *l;
	char err[256];

	ASSERT_EQ(0, loop_new(&l));
	/* TEST-NET-1: never assigned to a local interface. */
	ASSERT_EQ(-EADDRNOTAVAIL, metrics_http_open(l, "192.0.2.1:14699",
						    collect, NULL, &m, err,
						    sizeof(err)));
	ASSERT_STREQ("cannot listen on 192.0.2.1:14699 for /metrics: Cannot assign requested address",
		     err);
	ASSERT_EQ((void *)1, m);
	loop_free(l);
}

TEST(close_accepts_null)
{
	metrics_http_close(NULL);
}

TEST_HARNESS_MAIN
