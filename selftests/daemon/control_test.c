// SPDX-License-Identifier: GPL-2.0-only
/*
 * control_test: the control socket (daemon/control.c) and its client
 * evringctl, against daemon/control.h and docs/OPERATING.md.
 *
 * The server runs on a loop in a second thread with fake ops returning
 * fixed structs; the test thread is the client.  The loop is not
 * thread-safe, so everything the test does to the server (reconfigure,
 * idle timeout, fake errors) goes through in_loop(), which runs a function
 * on the loop's thread and waits for it.
 *
 * Access tests fork a child that drops to uid 65534 (and chosen groups)
 * before connecting; they need root and SKIP without it.  The evringctl
 * tests run build/bin/evringctl ($EVRINGCTL overrides) and SKIP when it is
 * not built.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "config.h"
#include "control.h"
#include "loop.h"
#include "kselftest_harness.h"

#define NOBODY		65534
#define EPOCH0		0xdeadbeefcafef00dull
#define IO_TIMEOUT_S	5

/* --- fake daemon state ------------------------------------------------ */

struct fake {
	int status_err;			/* returned by status when set */
	unsigned int nr_losses;
	uint64_t t0_ms;			/* counters: 1000 records/s since */
	bool no_regions;		/* status: shipping not configured */
	unsigned int nr_dead;		/* 0: the two of fake_dead() */
	int dlq_err;			/* returned by replay/purge when set */
	uint64_t replayed, purged;	/* the last id each was called with */
	unsigned int dlq_calls;		/* replay and purge calls */
};

static int fake_status(void *arg, struct control_status *out)
{
	struct fake *f = arg;

	if (f->status_err)
		return f->status_err;
	out->state = CONTROL_STATE_DRAINING;
	out->uptime_ms = 3723000;	/* 1h02m03s */
	out->nr_parts = 2;
	out->parts[0] = (struct control_part_status){
		.source = "device", .partition = 0, .epoch = EPOCH0,
		.ring_fill = 262144, .ring_size = 1 << 20,
		.read_pos = 10000, .release_pos = 9000, .spool_batches = 3,
		.spool_records = 300, .last_seq = 777, .writers_blocked = 2,
	};
	out->parts[1] = (struct control_part_status){
		.source = "socket", .partition = 1, .epoch = 1,
		.ring_fill = 0, .ring_size = 65536, .read_pos = 5,
		.release_pos = 5, .spool_batches = 0, .spool_records = 0,
		.last_seq = 12, .writers_blocked = 0,
	};
	if (f->no_regions)
		return 0;
	out->nr_regions = 2;
	out->regions[0] = (struct ship_region_status){
		.name = "us-east", .connected = true, .durable = true,
		.replicas = 3, .breaker = "closed", .breaker_opened = 1,
		.window = 8, .inflight = 2, .lag_batches = 1,
		.lag_events = 100, .lag_ms = 1500, .shipped_batches = 9,
		.shipped_events = 900, .shipped_bytes = 57600, .retries = 4,
		.duplicates = 1, .reconciles = 2, .dead_lettered = 0,
		.ack_p50_us = 800, .ack_p99_us = 4000, .home_partitions = 3,
	};
	out->regions[1] = (struct ship_region_status){
		.name = "eu-west", .connected = false, .durable = false,
		.replicas = 1, .parked = true, .breaker = "open",
		.breaker_opened = 3, .window = 1, .lag_batches = 10,
		.lag_events = 1000, .lag_ms = 61000, .retries = 30,
		.dead_lettered = 2, .gaps = 1,
		.last_error = "publish deadline exceeded",
	};
	return 0;
}

static int fake_spool(void *arg, struct control_spool *out)
{
	strcpy(out->path, "/var/lib/evring/spool.db");
	out->bytes = 512ull << 20;
	out->max_bytes = 1ull << 30;
	out->batches = 10;
	out->records = 1000;
	out->oldest_age_ms = 2500;
	return 0;
}

static int fake_counters(void *arg, struct control_counters *out)
{
	struct fake *f = arg;
	uint64_t ms = loop_now_ms() - f->t0_ms;

	out->records_in = ms;		/* 1000/s */
	out->bytes_in = ms * 100;	/* 100000 B/s */
	return 0;
}

static int fake_ledger(void *arg, control_emit_fn emit, void *emit_arg)
{
	struct fake *f = arg;

	for (unsigned int i = 0; i < f->nr_losses; i++) {
		struct control_loss x = {
			.source = "device", .partition = i % 4, .epoch = EPOCH0,
			.first_seq = i * 10ull + 1, .last_seq = i * 10ull + 5,
			.reason = "epoch_change",
			.ts_ns = 1700000000123456789ull + i * 1000000000ull,
		};
		int err = emit(&x, emit_arg);

		if (err)
			return err;
	}
	return 0;
}

/* Dead letter @id: 3 (decodes), 7 (does not), or with nr_dead 1..n. */
static bool fake_dead(const struct fake *f, uint64_t id,
		      struct control_dead *d)
{
	if (f->nr_dead ? id < 1 || id > f->nr_dead : id != 3 && id != 7)
		return false;
	*d = (struct control_dead){
		.id = id, .region = "eu-west", .batch_id = 40 + id,
		.source = "device", .partition = 1, .epoch = EPOCH0,
		.first_seq = 100 * id, .count = 50, .bytes = 3300,
		.spooled_ns = 1700000000123456789ull,
		.reason = "maximum payload exceeded", .attempts = 5,
		.at_ns = 1700000060000000000ull,
	};
	return true;
}

static int fake_dlq_list(void *arg, control_dead_fn emit, void *emit_arg)
{
	struct fake *f = arg;
	struct control_dead d;
	uint64_t n = f->nr_dead ? f->nr_dead : 7;

	for (uint64_t id = 1; id <= n; id++) {
		int err;

		if (!fake_dead(f, id, &d))
			continue;
		err = emit(&d, emit_arg);
		if (err)
			return err;
	}
	return 0;
}

static int fake_dlq_show(void *arg, uint64_t id, struct control_dead *out)
{
	struct fake *f = arg;

	if (!fake_dead(f, id, out))
		return -ENOENT;
	out->decoded = id == 7 ? -1 : 50;
	if (id == 7)
		strcpy(out->decode_error, "Bad message");
	return 0;
}

static int fake_dlq_replay(void *arg, uint64_t id)
{
	struct fake *f = arg;
	struct control_dead d;

	f->dlq_calls++;
	if (f->dlq_err)
		return f->dlq_err;
	if (!fake_dead(f, id, &d))
		return -ENOENT;
	f->replayed = id;
	return 0;
}

static int fake_dlq_purge(void *arg, uint64_t id)
{
	struct fake *f = arg;
	struct control_dead d;

	f->dlq_calls++;
	if (f->dlq_err)
		return f->dlq_err;
	if (!fake_dead(f, id, &d))
		return -ENOENT;
	f->purged = id;
	return 0;
}

static const struct control_ops fake_ops = {
	.status = fake_status,
	.spool = fake_spool,
	.counters = fake_counters,
	.ledger = fake_ledger,
	.dlq_list = fake_dlq_list,
	.dlq_show = fake_dlq_show,
	.dlq_replay = fake_dlq_replay,
	.dlq_purge = fake_dlq_purge,
};

/* --- the loop thread and calls into it -------------------------------- */

struct call {
	void (*fn)(void *self, void *arg);
	void *self, *arg;
};

struct server {
	struct loop *l;
	struct control *ctl;
	struct fake fake;
	struct evd_config cfg;
	int call_rd, call_wr;		/* struct call * over a pipe */
	int done_rd, done_wr;
	pthread_t thread;
	bool running;
};

static void on_call(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct server *s = arg;
	struct call *c;

	if (read(fd, &c, sizeof(c)) != sizeof(c))
		return;
	c->fn(s, c->arg);
	if (write(s->done_wr, "", 1) != 1)
		abort();
}

static void *loop_thread(void *arg)
{
	struct server *s = arg;

	loop_run(s->l);
	return NULL;
}

/* Run fn(server, arg) on the loop's thread; returns when it has run. */
static void in_loop(struct server *s, void (*fn)(void *, void *), void *arg)
{
	struct call c = { .fn = fn, .self = s, .arg = arg }, *p = &c;
	char b;

	if (write(s->call_wr, &p, sizeof(p)) != sizeof(p) ||
	    read(s->done_rd, &b, 1) != 1)
		abort();
}

static void do_stop(void *self, void *arg)
{
	struct server *s = self;

	loop_stop(s->l);
}

static void do_reconfigure(void *self, void *arg)
{
	struct server *s = self;

	control_reconfigure(s->ctl, arg);
}

static void do_idle(void *self, void *arg)
{
	struct server *s = self;

	control_set_idle_ms(s->ctl, *(unsigned int *)arg);
}

static void do_status_err(void *self, void *arg)
{
	struct server *s = self;

	s->fake.status_err = *(int *)arg;
}

static void do_losses(void *self, void *arg)
{
	struct server *s = self;

	s->fake.nr_losses = *(unsigned int *)arg;
}

/* Copy the fake's state out (arg: struct fake *). */
static void do_fake_get(void *self, void *arg)
{
	struct server *s = self;

	*(struct fake *)arg = s->fake;
}

static void do_no_regions(void *self, void *arg)
{
	struct server *s = self;

	s->fake.no_regions = true;
}

static void do_nr_dead(void *self, void *arg)
{
	struct server *s = self;

	s->fake.nr_dead = *(unsigned int *)arg;
}

static void do_dlq_err(void *self, void *arg)
{
	struct server *s = self;

	s->fake.dlq_err = *(int *)arg;
}

static void do_count(void *self, void *arg)
{
	struct server *s = self;

	*(unsigned int *)arg = control_nr_clients(s->ctl);
}

/* --- client side ------------------------------------------------------ */

struct conn {
	int fd;
	size_t len;
	char buf[1 << 20];
};

static struct conn *conn_open(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = IO_TIMEOUT_S };
	struct conn *c = calloc(1, sizeof(*c));

	if (!c)
		abort();
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		abort();
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		free(c);
		return NULL;
	}
	return c;
}

static void conn_close(struct conn *c)
{
	if (!c)
		return;
	close(c->fd);
	free(c);
}

static int conn_send(struct conn *c, const char *s, size_t n)
{
	size_t off = 0;

	while (off < n) {
		ssize_t w = send(c->fd, s + off, n - off, MSG_NOSIGNAL);

		if (w < 0)
			return -errno;
		off += w;
	}
	return 0;
}

/*
 * The next response line into @out (NUL-terminated, no '\n'): its length,
 * 0 at EOF, -errno on error (-EAGAIN: timeout).
 */
static ssize_t conn_line(struct conn *c, char *out, size_t outlen)
{
	for (;;) {
		char *nl = memchr(c->buf, '\n', c->len);
		ssize_t n;

		if (nl) {
			size_t l = nl - c->buf;

			if (l >= outlen)
				return -EMSGSIZE;
			memcpy(out, c->buf, l);
			out[l] = '\0';
			memmove(c->buf, nl + 1, c->len - l - 1);
			c->len -= l + 1;
			return l ? (ssize_t)l : -EBADMSG;
		}
		if (c->len == sizeof(c->buf))
			return -EMSGSIZE;
		n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
		if (n == 0)
			return 0;
		if (n < 0)
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
		c->len += n;
	}
}

/* After the last line: 0 when the server closed (EOF or reset). */
static int conn_closed(struct conn *c)
{
	char b[64];
	ssize_t n = recv(c->fd, b, sizeof(b), 0);

	if (n == 0 || (n < 0 && errno == ECONNRESET))
		return 0;
	return n < 0 ? -errno : -EBADMSG;
}

/* Send @req (a line) and parse the one response line; NULL on failure. */
static json_t *request(struct conn *c, const char *req)
{
	static char line[1 << 20];
	json_error_t jerr;

	if (conn_send(c, req, strlen(req)) < 0 ||
	    conn_line(c, line, sizeof(line)) <= 0)
		return NULL;
	return json_loads(line, 0, &jerr);
}

static const char *jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "(none)";
}

static long long jint(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	return json_is_integer(v) ? json_integer_value(v) : -999999;
}

static int jok(json_t *o)
{
	return json_is_true(json_object_get(o, "ok"));
}

/* --- fixture ---------------------------------------------------------- */

FIXTURE(ctl) {
	char dir[64];
	char path[160];
	struct server s;
};

static int server_start(struct __test_metadata *_metadata,
			FIXTURE_DATA(ctl) *self)
{
	struct server *s = &self->s;
	int p[2], q[2];

	ASSERT_EQ(0, loop_new(&s->l));
	ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
	ASSERT_EQ(0, pipe2(q, O_CLOEXEC));
	s->call_rd = p[0];
	s->call_wr = p[1];
	s->done_rd = q[0];
	s->done_wr = q[1];
	ASSERT_EQ(0, loop_add_fd(s->l, s->call_rd, LOOP_IN, on_call, s));
	s->fake.t0_ms = loop_now_ms();
	ASSERT_EQ(0, control_open(s->l, self->path, &s->cfg, &fake_ops,
				  &s->fake, &s->ctl));
	ASSERT_EQ(0, pthread_create(&s->thread, NULL, loop_thread, s));
	s->running = true;
	return 0;
}

FIXTURE_SETUP(ctl)
{
	strcpy(self->dir, "/tmp/control_test.XXXXXX");
	ASSERT_NE(NULL, mkdtemp(self->dir));
	/* Let the uid-65534 children reach the socket's directory. */
	ASSERT_EQ(0, chmod(self->dir, 0755));
	snprintf(self->path, sizeof(self->path), "%s/run/evring/control.sock",
		 self->dir);
	memset(&self->s, 0, sizeof(self->s));
	config_init(&self->s.cfg);
	server_start(_metadata, self);
}

FIXTURE_TEARDOWN(ctl)
{
	char cmd[128];

	if (self->s.running) {
		in_loop(&self->s, do_stop, NULL);
		pthread_join(self->s.thread, NULL);
	}
	control_close(self->s.ctl);
	loop_free(self->s.l);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", self->dir);
	if (system(cmd))
		TH_LOG("cannot remove %s", self->dir);
}

/* --- the commands ----------------------------------------------------- */

TEST_F(ctl, socket_file_is_0660_in_a_created_parent_directory)
{
	struct stat st;
	char parent[200];

	ASSERT_EQ(0, stat(self->path, &st));
	ASSERT_TRUE(S_ISSOCK(st.st_mode));
	ASSERT_EQ(0660, (int)(st.st_mode & 07777));
	snprintf(parent, sizeof(parent), "%s/run/evring", self->dir);
	ASSERT_EQ(0, stat(parent, &st));
	ASSERT_EQ(0755, (int)(st.st_mode & 07777));
}

TEST_F(ctl, status_reports_every_field_of_every_partition)
{
	struct conn *c = conn_open(self->path);
	json_t *r, *parts, *p;

	ASSERT_NE(NULL, c);
	r = request(c, "{\"cmd\":\"status\"}\n");
	ASSERT_NE(NULL, r);
	ASSERT_TRUE(jok(r));
	ASSERT_STREQ("status", jstr(r, "cmd"));
	ASSERT_STREQ(self->s.cfg.host_id, jstr(r, "host"));
	ASSERT_EQ(getpid(), jint(r, "pid"));
	ASSERT_STREQ("draining", jstr(r, "state"));
	ASSERT_EQ(3723000, jint(r, "uptime_ms"));
	parts = json_object_get(r, "partitions");
	ASSERT_EQ(2u, json_array_size(parts));
	p = json_array_get(parts, 0);
	ASSERT_STREQ("device", jstr(p, "source"));
	ASSERT_EQ(0, jint(p, "partition"));
	ASSERT_STREQ("deadbeefcafef00d", jstr(p, "epoch"));
	ASSERT_EQ(262144, jint(p, "ring_fill"));
	ASSERT_EQ(1 << 20, jint(p, "ring_size"));
	ASSERT_EQ(25.0, json_real_value(json_object_get(p, "fill_pct")));
	ASSERT_EQ(10000, jint(p, "read_pos"));
	ASSERT_EQ(9000, jint(p, "release_pos"));
	ASSERT_EQ(3, jint(p, "spool_batches"));
	ASSERT_EQ(300, jint(p, "spool_records"));
	ASSERT_EQ(777, jint(p, "last_seq"));
	ASSERT_EQ(2, jint(p, "writers_blocked"));
	p = json_array_get(parts, 1);
	ASSERT_STREQ("socket", jstr(p, "source"));
	ASSERT_EQ(1, jint(p, "partition"));
	ASSERT_STREQ("0000000000000001", jstr(p, "epoch"));
	ASSERT_EQ(12, jint(p, "last_seq"));
	ASSERT_EQ(12u, json_object_size(p));
	json_decref(r);
	conn_close(c);
}

TEST_F(ctl, spool_reports_size_fill_depth_age_and_ingest_rate)
{
	struct conn *c = conn_open(self->path);
	double eps, bps;
	json_t *r;

	ASSERT_NE(NULL, c);
	/* Two rate samples a second apart, at least. */
	usleep(1300 * 1000);
	r = request(c, "{\"cmd\":\"spool\"}\n");
	ASSERT_NE(NULL, r);
	ASSERT_TRUE(jok(r));
	ASSERT_STREQ("spool", jstr(r, "cmd"));
	ASSERT_STREQ("/var/lib/evring/spool.db", jstr(r, "path"));
	ASSERT_EQ(512ll << 20, jint(r, "bytes"));
	ASSERT_EQ(1ll << 30, jint(r, "max_bytes"));
	ASSERT_EQ(50.0, json_real_value(json_object_get(r, "fill_pct")));
	ASSERT_EQ(10, jint(r, "batches"));
	ASSERT_EQ(1000, jint(r, "records"));
	ASSERT_EQ(2500, jint(r, "oldest_age_ms"));
	eps = json_real_value(json_object_get(r, "ingest_records_per_s"));
	bps = json_real_value(json_object_get(r, "ingest_bytes_per_s"));
	ASSERT_GT(eps, 900.0);
	ASSERT_LT(eps, 1100.0);
	ASSERT_GT(bps, 90000.0);
	ASSERT_LT(bps, 110000.0);
	ASSERT_GE(jint(r, "rate_window_ms"), 1000);
	ASSERT_LE(jint(r, "rate_window_ms"), CONTROL_RATE_WINDOW_S * 1000 + 500);
	json_decref(r);
	conn_close(c);
}

TEST_F(ctl, ledger_returns_loss_ranges_oldest_first)
{
	struct conn *c = conn_open(self->path);
	unsigned int n = 3;
	json_t *r, *rows, *x;

	ASSERT_NE(NULL, c);
	r = request(c, "{\"cmd\":\"ledger\"}\n");
	ASSERT_TRUE(jok(r));
	ASSERT_EQ(0, jint(r, "total"));
	ASSERT_EQ(0u, json_array_size(json_object_get(r, "losses")));
	json_decref(r);

	in_loop(&self->s, do_losses, &n);
	r = request(c, "{\"cmd\":\"ledger\"}\n");
	ASSERT_NE(NULL, r);
	ASSERT_TRUE(jok(r));
	ASSERT_EQ(3, jint(r, "total"));
	ASSERT_TRUE(json_is_false(json_object_get(r, "truncated")));
	rows = json_object_get(r, "losses");
	ASSERT_EQ(3u, json_array_size(rows));
	x = json_array_get(rows, 0);
	ASSERT_STREQ("device", jstr(x, "source"));
	ASSERT_EQ(0, jint(x, "partition"));
	ASSERT_STREQ("deadbeefcafef00d", jstr(x, "epoch"));
	ASSERT_EQ(1, jint(x, "first_seq"));
	ASSERT_EQ(5, jint(x, "last_seq"));
	ASSERT_EQ(5, jint(x, "count"));
	ASSERT_STREQ("epoch_change", jstr(x, "reason"));
	ASSERT_EQ(1700000000123456789ll, jint(x, "ts_ns"));
	ASSERT_STREQ("2023-11-14T22:13:20.123Z", jstr(x, "time"));
	x = json_array_get(rows, 2);
	ASSERT_EQ(21, jint(x, "first_seq"));
	json_decref(r);
	conn_close(c);
}

TEST_F(ctl, ledger_limit_keeps_the_newest_rows_and_says_truncated)
{
	struct conn *c = conn_open(self->path);
	unsigned int n = 1500;
	json_t *r, *rows;

	ASSERT_NE(NULL, c);
	in_loop(&self->s, do_losses, &n);
	r = request(c, "{\"cmd\":\"ledger\",\"limit\":2}\n");
	ASSERT_TRUE(jok(r));
	ASSERT_EQ(1500, jint(r, "total"));
	ASSERT_TRUE(json_is_true(json_object_get(r, "truncated")));
	rows = json_object_get(r, "losses");
	ASSERT_EQ(2u, json_array_size(rows));
	ASSERT_EQ(14981, jint(json_array_get(rows, 0), "first_seq"));
	ASSERT_EQ(14991, jint(json_array_get(rows, 1), "first_seq"));
	json_decref(r);
	r = request(c, "{\"cmd\":\"ledger\"}\n");
	ASSERT_EQ((size_t)CONTROL_LEDGER_DEFAULT,
		  json_array_size(json_object_get(r, "losses")));
	json_decref(r);
	r = request(c, "{\"cmd\":\"ledger\",\"limit\":1000}\n");
	ASSERT_EQ((size_t)CONTROL_LEDGER_MAX,
		  json_array_size(json_object_get(r, "losses")));
	json_decref(r);
	conn_close(c);
}

TEST_F(ctl, ping_answers_with_pid_and_host)
{
	struct conn *c = conn_open(self->path);
	json_t *r;

	ASSERT_NE(NULL, c);
	r = request(c, "{\"cmd\":\"ping\"}\n");
	ASSERT_TRUE(jok(r));
	ASSERT_STREQ("ping", jstr(r, "cmd"));
	ASSERT_EQ(getpid(), jint(r, "pid"));
	json_decref(r);
	conn_close(c);
}

TEST_F(ctl, pipelined_requests_are_answered_in_order)
{
	struct conn *c = conn_open(self->path);
	char line[4096];

	ASSERT_NE(NULL, c);
	ASSERT_EQ(0, conn_send(c, "{\"cmd\":\"ping\"}\n{\"cmd\":\"spool\"}\r\n"
				  "{\"cmd\":\"status\"}\n", 50));
	ASSERT_GT(conn_line(c, line, sizeof(line)), 0);
	ASSERT_NE(NULL, strstr(line, "\"cmd\":\"ping\""));
	ASSERT_GT(conn_line(c, line, sizeof(line)), 0);
	ASSERT_NE(NULL, strstr(line, "\"cmd\":\"spool\""));
	ASSERT_GT(conn_line(c, line, sizeof(line)), 0);
	ASSERT_NE(NULL, strstr(line, "\"cmd\":\"status\""));
	conn_close(c);
}

TEST_F(ctl, op_failure_becomes_an_error_response)
{
	struct conn *c = conn_open(self->path);
	int err = -EIO;
	json_t *r;

	ASSERT_NE(NULL, c);
	in_loop(&self->s, do_status_err, &err);
	r = request(c, "{\"cmd\":\"status\"}\n");
	ASSERT_FALSE(jok(r));
	ASSERT_STREQ("status: Input/output error", jstr(r, "error"));
	json_decref(r);
	conn_close(c);
}

/* --- regions and dead letters ------------------------------------------ */

TEST_F(ctl, status_reports_every_field_of_every_region)
{
	struct conn *c = conn_open(self->path);
	json_t *r, *regions, *g;

	ASSERT_NE(NULL, c);
	r = request(c, "{\"cmd\":\"status\"}\n");
	ASSERT_TRUE(jok(r));
	regions = json_object_get(r, "regions");
	ASSERT_EQ(2u, json_array_size(regions));
	g = json_array_get(regions, 0);
	ASSERT_STREQ("us-east", jstr(g, "name"));
	ASSERT_TRUE(json_is_true(json_object_get(g, "connected")));
	ASSERT_TRUE(json_is_true(json_object_get(g, "durable")));
	ASSERT_EQ(3, jint(g, "replicas"));
	ASSERT_TRUE(json_is_false(json_object_get(g, "parked")));
	ASSERT_STREQ("closed", jstr(g, "breaker"));
	ASSERT_EQ(1, jint(g, "breaker_opened"));
	ASSERT_EQ(8, jint(g, "window"));
	ASSERT_EQ(2, jint(g, "inflight"));
	ASSERT_EQ(1, jint(g, "lag_batches"));
	ASSERT_EQ(100, jint(g, "lag_events"));
	ASSERT_EQ(1500, jint(g, "lag_ms"));
	ASSERT_EQ(9, jint(g, "shipped_batches"));
	ASSERT_EQ(900, jint(g, "shipped_events"));
	ASSERT_EQ(57600, jint(g, "shipped_bytes"));
	ASSERT_EQ(4, jint(g, "retries"));
	ASSERT_EQ(1, jint(g, "duplicates"));
	ASSERT_EQ(2, jint(g, "reconciles"));
	ASSERT_EQ(0, jint(g, "dead_lettered"));
	ASSERT_EQ(800, jint(g, "ack_p50_us"));
	ASSERT_EQ(4000, jint(g, "ack_p99_us"));
	ASSERT_EQ(3, jint(g, "home_partitions"));
	ASSERT_STREQ("", jstr(g, "last_error"));
	ASSERT_EQ(0, jint(g, "gaps"));
	ASSERT_EQ(24u, json_object_size(g));
	g = json_array_get(regions, 1);
	ASSERT_STREQ("eu-west", jstr(g, "name"));
	ASSERT_TRUE(json_is_false(json_object_get(g, "connected")));
	ASSERT_TRUE(json_is_false(json_object_get(g, "durable")));
	ASSERT_EQ(1, jint(g, "replicas"));
	ASSERT_TRUE(json_is_true(json_object_get(g, "parked")));
	ASSERT_STREQ("open", jstr(g, "breaker"));
	ASSERT_EQ(2, jint(g, "dead_lettered"));
	ASSERT_EQ(1, jint(g, "gaps"));
	ASSERT_STREQ("publish deadline exceeded", jstr(g, "last_error"));
	json_decref(r);
	conn_close(c);
}

TEST_F(ctl, status_without_regions_has_an_empty_regions_array)
{
	struct conn *c = conn_open(self->path);
	json_t *r, *regions;

	ASSERT_NE(NULL, c);
	in_loop(&self->s, do_no_regions, NULL);
	r = request(c, "{\"cmd\":\"status\"}\n");
	ASSERT_TRUE(jok(r));
	regions = json_object_get(r, "regions");
	ASSERT_TRUE(json_is_array(regions));
	ASSERT_EQ(0u, json_array_size(regions));
	json_decref(r);
	conn_close(c);
}

TEST_F(ctl, dlq_list_returns_every_dead_letter_by_id)
{
	struct conn *c = conn_open(self->path);
	json_t *r, *rows, *x;

	ASSERT_NE(NULL, c);
	r = request(c, "{\"cmd\":\"dlq_list\"}\n");
	ASSERT_NE(NULL, r);
	ASSERT_TRUE(jok(r));
	ASSERT_STREQ("dlq_list", jstr(r, "cmd"));
	ASSERT_EQ(2, jint(r, "total"));
	ASSERT_TRUE(json_is_false(json_object_get(r, "truncated")));
	rows = json_object_get(r, "dead_letters");
	ASSERT_EQ(2u, json_array_size(rows));
	x = json_array_get(rows, 0);
	ASSERT_EQ(3, jint(x, "id"));
	ASSERT_STREQ("eu-west", jstr(x, "region"));
	ASSERT_EQ(43, jint(x, "batch_id"));
	ASSERT_STREQ("device", jstr(x, "source"));
	ASSERT_EQ(1, jint(x, "partition"));
	ASSERT_STREQ("deadbeefcafef00d", jstr(x, "epoch"));
	ASSERT_EQ(300, jint(x, "first_seq"));
	ASSERT_EQ(349, jint(x, "last_seq"));
	ASSERT_EQ(50, jint(x, "count"));
	ASSERT_EQ(3300, jint(x, "bytes"));
	ASSERT_EQ(1700000000123456789ll, jint(x, "spooled_ns"));
	ASSERT_STREQ("2023-11-14T22:13:20.123Z", jstr(x, "spooled"));
	ASSERT_STREQ("maximum payload exceeded", jstr(x, "reason"));
	ASSERT_EQ(5, jint(x, "attempts"));
	ASSERT_EQ(1700000060000000000ll, jint(x, "at_ns"));
	ASSERT_STREQ("2023-11-14T22:14:20.000Z", jstr(x, "time"));
	ASSERT_EQ(16u, json_object_size(x));
	ASSERT_EQ(7, jint(json_array_get(rows, 1), "id"));
	json_decref(r);
	conn_close(c);
}

TEST_F(ctl, dlq_list_keeps_the_first_1000_and_says_truncated)
{
	struct conn *c = conn_open(self->path);
	unsigned int n = 1500;
	json_t *r, *rows;

	ASSERT_NE(NULL, c);
	in_loop(&self->s, do_nr_dead, &n);
	r = request(c, "{\"cmd\":\"dlq_list\"}\n");
	ASSERT_TRUE(jok(r));
	ASSERT_EQ(1500, jint(r, "total"));
	ASSERT_TRUE(json_is_true(json_object_get(r, "truncated")));
	rows = json_object_get(r, "dead_letters");
	ASSERT_EQ((size_t)CONTROL_DLQ_MAX, json_array_size(rows));
	ASSERT_EQ(1, jint(json_array_get(rows, 0), "id"));
	ASSERT_EQ(1000, jint(json_array_get(rows, 999), "id"));
	json_decref(r);
	conn_close(c);
}

TEST_F(ctl, dlq_show_returns_the_metadata_and_the_decoded_record_count)
{
	struct conn *c = conn_open(self->path);
	json_t *r, *d;

	ASSERT_NE(NULL, c);
	r = request(c, "{\"cmd\":\"dlq_show\",\"id\":3}\n");
	ASSERT_TRUE(jok(r));
	ASSERT_STREQ("dlq_show", jstr(r, "cmd"));
	d = json_object_get(r, "dead_letter");
	ASSERT_EQ(3, jint(d, "id"));
	ASSERT_EQ(43, jint(d, "batch_id"));
	ASSERT_EQ(50, jint(d, "count"));
	ASSERT_EQ(50, jint(d, "decoded_records"));
	ASSERT_EQ(NULL, json_object_get(d, "decode_error"));
	ASSERT_STREQ("maximum payload exceeded", jstr(d, "reason"));
	ASSERT_EQ(17u, json_object_size(d));
	json_decref(r);

	/* A stored copy that does not decode says why. */
	r = request(c, "{\"cmd\":\"dlq_show\",\"id\":7}\n");
	ASSERT_TRUE(jok(r));
	d = json_object_get(r, "dead_letter");
	ASSERT_TRUE(json_is_null(json_object_get(d, "decoded_records")));
	ASSERT_STREQ("Bad message", jstr(d, "decode_error"));
	json_decref(r);
	conn_close(c);
}

TEST_F(ctl, dlq_replay_and_purge_act_on_exactly_the_id_named)
{
	struct conn *c = conn_open(self->path);
	struct fake f;
	json_t *r;

	ASSERT_NE(NULL, c);
	r = request(c, "{\"cmd\":\"dlq_replay\",\"id\":7}\n");
	ASSERT_TRUE(jok(r));
	ASSERT_STREQ("dlq_replay", jstr(r, "cmd"));
	ASSERT_EQ(7, jint(r, "id"));
	ASSERT_EQ(3u, json_object_size(r));
	json_decref(r);
	r = request(c, "{\"cmd\":\"dlq_purge\",\"id\":3}\n");
	ASSERT_TRUE(jok(r));
	ASSERT_STREQ("dlq_purge", jstr(r, "cmd"));
	ASSERT_EQ(3, jint(r, "id"));
	json_decref(r);
	in_loop(&self->s, do_fake_get, &f);
	ASSERT_EQ(7u, f.replayed);
	ASSERT_EQ(3u, f.purged);
	ASSERT_EQ(2u, f.dlq_calls);
	conn_close(c);
}

TEST_F(ctl, dlq_rejections_get_exact_errors_and_touch_nothing)
{
	static const char *const cases[][2] = {
		{ "{\"cmd\":\"dlq_show\"}", "missing 'id'" },
		{ "{\"cmd\":\"dlq_replay\"}", "missing 'id'" },
		{ "{\"cmd\":\"dlq_purge\"}", "missing 'id'" },
		{ "{\"cmd\":\"dlq_purge\",\"id\":0}", "'id' must be a positive integer" },
		{ "{\"cmd\":\"dlq_purge\",\"id\":-1}", "'id' must be a positive integer" },
		{ "{\"cmd\":\"dlq_purge\",\"id\":\"3\"}", "'id' must be a positive integer" },
		{ "{\"cmd\":\"dlq_purge\",\"id\":3.0}", "'id' must be a positive integer" },
		{ "{\"cmd\":\"dlq_replay\",\"id\":true}", "'id' must be a positive integer" },
		{ "{\"cmd\":\"dlq_replay\",\"id\":null}", "'id' must be a positive integer" },
		{ "{\"cmd\":\"dlq_replay\",\"id\":[3]}", "'id' must be a positive integer" },
		{ "{\"cmd\":\"dlq_show\",\"id\":3,\"yes\":true}", "unknown field 'yes' for cmd 'dlq_show'" },
		{ "{\"cmd\":\"dlq_list\",\"id\":3}", "unknown field 'id' for cmd 'dlq_list'" },
		{ "{\"cmd\":\"dlq_purge\",\"id\":3,\"all\":true}", "unknown field 'all' for cmd 'dlq_purge'" },
		{ "{\"cmd\":\"dlq_show\",\"id\":42}", "no dead letter 42" },
		{ "{\"cmd\":\"dlq_replay\",\"id\":42}", "no dead letter 42" },
		{ "{\"cmd\":\"dlq_purge\",\"id\":42}", "no dead letter 42" },
		{ "{\"cmd\":\"dlq_purge\",\"id\":9223372036854775807}", "no dead letter 9223372036854775807" },
		{ "{\"cmd\":\"dlq\"}", "unknown cmd 'dlq' (expected status, spool, ledger, ping, dlq_list, dlq_show, dlq_replay, dlq_purge, failpoint or failpoint_list)" },
	};
	struct conn *c = conn_open(self->path);
	char req[256];
	struct fake f;
	json_t *r;

	ASSERT_NE(NULL, c);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(req, sizeof(req), "%s\n", cases[i][0]);
		r = request(c, req);
		ASSERT_NE(NULL, r) TH_LOG("no response to '%s'", cases[i][0]);
		ASSERT_FALSE(jok(r));
		ASSERT_STREQ(cases[i][1], jstr(r, "error"));
		ASSERT_EQ(2u, json_object_size(r));
		json_decref(r);
	}
	in_loop(&self->s, do_fake_get, &f);
	ASSERT_EQ(0u, f.replayed);
	ASSERT_EQ(0u, f.purged);
	r = request(c, "{\"cmd\":\"ping\"}\n");
	ASSERT_TRUE(jok(r));
	json_decref(r);
	conn_close(c);
}

TEST_F(ctl, dlq_op_failures_become_exact_error_responses)
{
	static const struct {
		int err;
		const char *replay, *purge;
	} cases[] = {
		{ -EALREADY, "dead letter 3 is already being replayed",
		  "dead letter 3 is already being replayed" },
		{ -EBUSY, "dead letter 3 is being published right now: try again once it settled",
		  "dead letter 3 is being published right now: try again once it settled" },
		{ -ESRCH, "dead letter 3: its region is no longer configured",
		  "dead letter 3: its region is no longer configured" },
		{ -EIO, "dlq_replay: Input/output error",
		  "dlq_purge: Input/output error" },
	};
	struct conn *c = conn_open(self->path);
	json_t *r;

	ASSERT_NE(NULL, c);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int err = cases[i].err;

		in_loop(&self->s, do_dlq_err, &err);
		r = request(c, "{\"cmd\":\"dlq_replay\",\"id\":3}\n");
		ASSERT_FALSE(jok(r));
		ASSERT_STREQ(cases[i].replay, jstr(r, "error"));
		json_decref(r);
		r = request(c, "{\"cmd\":\"dlq_purge\",\"id\":3}\n");
		ASSERT_FALSE(jok(r));
		ASSERT_STREQ(cases[i].purge, jstr(r, "error"));
		json_decref(r);
	}
	conn_close(c);
}

/* --- failpoints --------------------------------------------------------- */

TEST_F(ctl, failpoint_arms_live_and_answers_the_previous_hits)
{
	struct conn *c = conn_open(self->path);
	json_t *r, *rows, *x;
	size_t i;

	ASSERT_NE(NULL, c);
	r = request(c, "{\"cmd\":\"failpoint\",\"name\":\"ship.after_publish\",\"action\":\"crash@0003\"}\n");
	ASSERT_TRUE(jok(r)) TH_LOG("%s", jstr(r, "error"));
	ASSERT_STREQ("failpoint", jstr(r, "cmd"));
	ASSERT_STREQ("ship.after_publish", jstr(r, "name"));
	ASSERT_STREQ("crash@3", jstr(r, "action"));
	ASSERT_EQ(0, jint(r, "hits"));
	json_decref(r);
	r = request(c, "{\"cmd\":\"failpoint_list\"}\n");
	ASSERT_TRUE(jok(r));
	rows = json_object_get(r, "failpoints");
	ASSERT_EQ(5u, json_array_size(rows));
	json_array_foreach(rows, i, x) {
		static const char *const names[] = {
			"drain.before_commit", "drain.after_commit",
			"ship.before_publish", "ship.after_publish",
			"ship.after_cursor",
		};

		ASSERT_STREQ(names[i], jstr(x, "name"));
		ASSERT_STREQ(i == 3 ? "crash@3" : "off", jstr(x, "action"));
		ASSERT_EQ(0, jint(x, "hits"));
	}
	json_decref(r);
	r = request(c, "{\"cmd\":\"failpoint\",\"name\":\"ship.after_publish\",\"action\":\"off\"}\n");
	ASSERT_TRUE(jok(r));
	ASSERT_STREQ("off", jstr(r, "action"));
	json_decref(r);
	conn_close(c);
}

TEST_F(ctl, failpoint_rejections_get_exact_errors_and_arm_nothing)
{
	static const char *const cases[][2] = {
		{ "{\"cmd\":\"failpoint\"}", "missing 'name'" },
		{ "{\"cmd\":\"failpoint\",\"name\":\"drain.after_commit\"}", "missing 'action'" },
		{ "{\"cmd\":\"failpoint\",\"action\":\"crash\"}", "missing 'name'" },
		{ "{\"cmd\":\"failpoint\",\"name\":3,\"action\":\"crash\"}", "'name' must be a string" },
		{ "{\"cmd\":\"failpoint\",\"name\":\"drain.after_commit\",\"action\":null}", "'action' must be a string" },
		{ "{\"cmd\":\"failpoint\",\"name\":\"drain.commit\",\"action\":\"crash\"}",
		  "unknown failpoint 'drain.commit' (expected drain.before_commit, drain.after_commit, ship.before_publish, ship.after_publish or ship.after_cursor)" },
		{ "{\"cmd\":\"failpoint\",\"name\":\"drain.after_commit\",\"action\":\"error\"}",
		  "failpoint 'drain.after_commit': action 'error' applies only to drain.before_commit (the spool commit); use crash or pause" },
		{ "{\"cmd\":\"failpoint\",\"name\":\"ship.before_publish\",\"action\":\"pause:0\"}",
		  "failpoint 'ship.before_publish': bad pause '0' (1..60000 ms)" },
		{ "{\"cmd\":\"failpoint\",\"name\":\"ship.before_publish\",\"action\":\"crash\",\"x\":1}",
		  "unknown field 'x' for cmd 'failpoint'" },
		{ "{\"cmd\":\"failpoint_list\",\"name\":\"x\"}",
		  "unknown field 'name' for cmd 'failpoint_list'" },
	};
	struct conn *c = conn_open(self->path);
	char req[512];
	json_t *r, *rows, *x;
	size_t i;

	ASSERT_NE(NULL, c);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(req, sizeof(req), "%s\n", cases[i][0]);
		r = request(c, req);
		ASSERT_NE(NULL, r) TH_LOG("no response to '%s'", cases[i][0]);
		ASSERT_FALSE(jok(r));
		ASSERT_STREQ(cases[i][1], jstr(r, "error"));
		json_decref(r);
	}
	r = request(c, "{\"cmd\":\"failpoint_list\"}\n");
	ASSERT_TRUE(jok(r));
	rows = json_object_get(r, "failpoints");
	json_array_foreach(rows, i, x)
		ASSERT_STREQ("off", jstr(x, "action"));
	json_decref(r);
	conn_close(c);
}

/* --- garbage ---------------------------------------------------------- */

TEST_F(ctl, garbage_gets_an_exact_error_and_the_connection_keeps_serving)
{
	static const char *const cases[][2] = {
		{ "hello", "invalid JSON at column 5: invalid token near 'hello'" },
		{ "{\"cmd\":", "invalid JSON at column 7: unexpected token near end of file" },
		{ "[]", "request must be a JSON object" },
		{ "42", "request must be a JSON object" },
		{ "\"status\"", "request must be a JSON object" },
		{ "{}", "missing 'cmd'" },
		{ "{\"cmd\":5}", "'cmd' must be a string" },
		{ "{\"cmd\":null}", "'cmd' must be a string" },
		{ "{\"cmd\":\"reboot\"}", "unknown cmd 'reboot' (expected status, spool, ledger, ping, dlq_list, dlq_show, dlq_replay, dlq_purge, failpoint or failpoint_list)" },
		{ "{\"cmd\":\"status\",\"x\":1}", "unknown field 'x' for cmd 'status'" },
		{ "{\"cmd\":\"ping\",\"limit\":1}", "unknown field 'limit' for cmd 'ping'" },
		{ "{\"cmd\":\"ledger\",\"limit\":\"3\"}", "'limit' must be an integer in 1..1000" },
		{ "{\"cmd\":\"ledger\",\"limit\":0}", "'limit' must be an integer in 1..1000" },
		{ "{\"cmd\":\"ledger\",\"limit\":1001}", "'limit' must be an integer in 1..1000" },
		{ "{\"cmd\":\"ledger\",\"limit\":2.5}", "'limit' must be an integer in 1..1000" },
		{ "{\"cmd\":\"ping\",\"cmd\":\"status\"}", "invalid JSON at column 19: duplicate object key near '\"cmd\"'" },
		{ "", "empty request" },
	};
	struct conn *c = conn_open(self->path);
	char req[256];
	json_t *r;

	ASSERT_NE(NULL, c);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(req, sizeof(req), "%s\n", cases[i][0]);
		r = request(c, req);
		ASSERT_NE(NULL, r) {
			TH_LOG("no response to '%s'", cases[i][0]);
		}
		ASSERT_FALSE(jok(r));
		ASSERT_STREQ(cases[i][1], jstr(r, "error"));
		ASSERT_EQ(2u, json_object_size(r));
		json_decref(r);
		r = request(c, "{\"cmd\":\"ping\"}\n");
		ASSERT_TRUE(jok(r)) {
			TH_LOG("connection unusable after '%s'", cases[i][0]);
		}
		json_decref(r);
	}
	conn_close(c);
}

TEST_F(ctl, binary_junk_is_an_error_not_a_crash)
{
	struct conn *c = conn_open(self->path);
	char junk[1000];
	json_t *r;

	ASSERT_NE(NULL, c);
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)(i * 131 + 7);
	for (size_t i = 0; i < sizeof(junk); i++)
		if (junk[i] == '\n')
			junk[i] = 0;
	junk[sizeof(junk) - 1] = '\n';
	ASSERT_EQ(0, conn_send(c, junk, sizeof(junk)));
	r = request(c, "{\"cmd\":\"ping\"}\n");
	ASSERT_NE(NULL, r);
	ASSERT_FALSE(jok(r));		/* the junk line's answer */
	json_decref(r);
	r = request(c, "{\"cmd\":\"ping\"}\n");
	ASSERT_TRUE(jok(r));
	json_decref(r);
	conn_close(c);
}

TEST_F(ctl, garbage_and_a_half_line_from_one_client_do_not_stall_another)
{
	struct conn *bad = conn_open(self->path), *good;
	json_t *r;

	ASSERT_NE(NULL, bad);
	ASSERT_EQ(0, conn_send(bad, "not json\n{\"cmd\":\"pi", 20));
	good = conn_open(self->path);
	ASSERT_NE(NULL, good);
	r = request(good, "{\"cmd\":\"status\"}\n");
	ASSERT_TRUE(jok(r));
	json_decref(r);
	r = request(bad, "ng\"}\n");	/* completes the half line */
	ASSERT_FALSE(jok(r));		/* but first: "not json" */
	json_decref(r);
	conn_close(bad);
	conn_close(good);
}

TEST_F(ctl, over_long_line_gets_an_error_then_the_connection_is_closed)
{
	struct conn *c = conn_open(self->path), *other;
	static char big[5000];
	char line[4096];
	json_t *r;

	ASSERT_NE(NULL, c);
	memset(big, 'a', sizeof(big));
	ASSERT_EQ(0, conn_send(c, big, sizeof(big)));
	ASSERT_GT(conn_line(c, line, sizeof(line)), 0);
	ASSERT_STREQ("{\"ok\":false,\"error\":\"request line too long (max 4096 bytes)\"}",
		     line);
	ASSERT_EQ(0, conn_closed(c));
	conn_close(c);

	other = conn_open(self->path);
	ASSERT_NE(NULL, other);
	r = request(other, "{\"cmd\":\"ping\"}\n");
	ASSERT_TRUE(jok(r));
	json_decref(r);
	conn_close(other);
}

TEST_F(ctl, line_of_exactly_4096_bytes_is_accepted)
{
	struct conn *c = conn_open(self->path);
	static char req[CONTROL_LINE_MAX + 1];
	json_t *r;

	ASSERT_NE(NULL, c);
	memset(req, ' ', CONTROL_LINE_MAX);
	memcpy(req, "{\"cmd\":\"ping\"", 13);
	req[CONTROL_LINE_MAX - 2] = '}';
	req[CONTROL_LINE_MAX - 1] = '\n';
	r = request(c, req);
	ASSERT_NE(NULL, r);
	ASSERT_TRUE(jok(r));
	json_decref(r);
	conn_close(c);
}

TEST_F(ctl, last_line_without_newline_is_answered_at_eof)
{
	struct conn *c = conn_open(self->path);
	char line[4096];

	ASSERT_NE(NULL, c);
	ASSERT_EQ(0, conn_send(c, "{\"cmd\":\"ping\"}", 14));
	ASSERT_EQ(0, shutdown(c->fd, SHUT_WR));
	ASSERT_GT(conn_line(c, line, sizeof(line)), 0);
	ASSERT_NE(NULL, strstr(line, "\"ok\":true"));
	ASSERT_EQ(0, conn_closed(c));
	conn_close(c);
}

TEST_F(ctl, client_that_never_reads_does_not_stall_others)
{
	struct conn *hog = conn_open(self->path), *c;
	const char *ping = "{\"cmd\":\"status\"}\n";
	size_t sent = 0;
	json_t *r;

	ASSERT_NE(NULL, hog);
	fcntl(hog->fd, F_SETFL, O_NONBLOCK);
	/* Until both socket buffers are full: the server stopped reading. */
	for (int i = 0; i < 200000; i++) {
		if (send(hog->fd, ping, strlen(ping), MSG_NOSIGNAL) < 0)
			break;
		sent++;
	}
	ASSERT_LT(sent, 200000u);
	c = conn_open(self->path);
	ASSERT_NE(NULL, c);
	r = request(c, "{\"cmd\":\"ping\"}\n");
	ASSERT_TRUE(jok(r));
	json_decref(r);
	conn_close(c);
	conn_close(hog);
}

/* --- limits ----------------------------------------------------------- */

TEST_F(ctl, sixty_fifth_client_is_refused_while_64_are_served)
{
	struct conn *c[CONTROL_CLIENTS_MAX + 1] = { 0 }, *late = NULL;
	char line[4096];
	json_t *r;

	for (int i = 0; i < CONTROL_CLIENTS_MAX; i++) {
		c[i] = conn_open(self->path);
		ASSERT_NE(NULL, c[i]);
		r = request(c[i], "{\"cmd\":\"ping\"}\n");
		ASSERT_TRUE(jok(r));
		json_decref(r);
	}
	c[CONTROL_CLIENTS_MAX] = conn_open(self->path);
	ASSERT_NE(NULL, c[CONTROL_CLIENTS_MAX]);
	ASSERT_GT(conn_line(c[CONTROL_CLIENTS_MAX], line, sizeof(line)), 0);
	ASSERT_STREQ("{\"ok\":false,\"error\":\"too many clients (max 64)\"}",
		     line);
	ASSERT_EQ(0, conn_closed(c[CONTROL_CLIENTS_MAX]));

	/* The 64 are still served. */
	r = request(c[0], "{\"cmd\":\"ping\"}\n");
	ASSERT_TRUE(jok(r));
	json_decref(r);

	/* One leaves, one more may come. */
	conn_close(c[5]);
	c[5] = NULL;
	for (int tries = 0; tries < 100 && !late; tries++) {
		late = conn_open(self->path);
		r = late ? request(late, "{\"cmd\":\"ping\"}\n") : NULL;
		if (!jok(r)) {
			conn_close(late);
			late = NULL;
			usleep(10000);
		}
		json_decref(r);
	}
	ASSERT_NE(NULL, late);
	conn_close(late);
	for (int i = 0; i <= CONTROL_CLIENTS_MAX; i++)
		conn_close(c[i]);
}

TEST_F(ctl, idle_client_is_closed_after_the_timeout_and_a_busy_one_is_not)
{
	unsigned int idle = 300, n = 0;
	struct conn *quiet, *busy;
	struct timespec a, b;
	long long ms;
	json_t *r;

	in_loop(&self->s, do_idle, &idle);
	quiet = conn_open(self->path);
	busy = conn_open(self->path);
	ASSERT_NE(NULL, quiet);
	ASSERT_NE(NULL, busy);
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < 8; i++) {
		usleep(100 * 1000);
		r = request(busy, "{\"cmd\":\"ping\"}\n");
		ASSERT_TRUE(jok(r));
		json_decref(r);
	}
	ASSERT_EQ(0, conn_closed(quiet));
	clock_gettime(CLOCK_MONOTONIC, &b);
	ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
	ASSERT_GE(ms, 300);
	in_loop(&self->s, do_count, &n);
	ASSERT_EQ(1u, n);
	conn_close(quiet);
	conn_close(busy);
}

TEST_F(ctl, line_trickled_in_byte_by_byte_does_not_keep_a_client_alive)
{
	unsigned int idle = 300;
	struct conn *c;
	int closed = -1;

	in_loop(&self->s, do_idle, &idle);
	c = conn_open(self->path);
	ASSERT_NE(NULL, c);
	/* A byte every 50 ms for up to 3 s, never a whole line. */
	for (int i = 0; i < 60 && closed; i++) {
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };

		if (send(c->fd, " ", 1, MSG_NOSIGNAL) < 0) {
			closed = errno == EPIPE ? 0 : -errno;
			break;
		}
		if (poll(&pfd, 1, 50) == 1)
			closed = conn_closed(c);
	}
	ASSERT_EQ(0, closed);
	conn_close(c);
}

/* --- access ----------------------------------------------------------- */

/*
 * In a child that runs as @uid/@gid with @groups: connect, send a ping,
 * report "CONNECT <errno>" or the answer line followed by " EOF" when the
 * server then closed.  Returns what the child reported.
 */
static int as_user(const char *path, uid_t uid, gid_t gid,
		   const gid_t *groups, int ngroups, char *out, size_t len)
{
	int p[2], st;
	ssize_t n, got = 0;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		struct pollfd pfd = { .events = POLLIN };
		char line[4096];
		struct conn *c;
		int w;

		close(p[0]);
		if (setgroups(ngroups, groups) || setresgid(gid, gid, gid) ||
		    setresuid(uid, uid, uid))
			_exit(3);
		c = conn_open(path);
		if (!c) {
			w = dprintf(p[1], "CONNECT %d", errno);
			_exit(w > 0 ? 0 : 4);
		}
		/*
		 * A refused peer may be closed before it gets to send: the
		 * send then fails (EPIPE) but the refusal is still there to
		 * be read.
		 */
		conn_send(c, "{\"cmd\":\"ping\"}\n", 15);
		if (conn_line(c, line, sizeof(line)) <= 0)
			_exit(5);
		/* A served client stays open: wait for EOF 1 s at most. */
		pfd.fd = c->fd;
		w = dprintf(p[1], "%s%s", line,
			    poll(&pfd, 1, 1000) == 1 && conn_closed(c) == 0 ?
			    " EOF" : "");
		_exit(w > 0 ? 0 : 6);
	}
	close(p[1]);
	while (got < (ssize_t)len - 1 &&
	       (n = read(p[0], out + got, len - 1 - got)) > 0)
		got += n;
	out[got] = '\0';
	close(p[0]);
	if (waitpid(pid, &st, 0) != pid)
		return -ECHILD;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

TEST_F(ctl, socket_mode_keeps_out_users_outside_owner_and_group)
{
	char out[4096];

	if (geteuid() != 0)
		SKIP(return, "needs root to run a child as uid %d", NOBODY);
	ASSERT_EQ(0, as_user(self->path, NOBODY, NOBODY, NULL, 0, out,
			     sizeof(out)));
	ASSERT_STREQ("CONNECT 13", out);	/* EACCES */
}

TEST_F(ctl, peer_not_in_allow_uid_is_refused_with_one_line_and_closed)
{
	char out[4096];

	if (geteuid() != 0)
		SKIP(return, "needs root to run a child as uid %d", NOBODY);
	/* Past the file mode, so that SO_PEERCRED is what refuses. */
	ASSERT_EQ(0, chmod(self->path, 0666));
	ASSERT_EQ(0, as_user(self->path, NOBODY, NOBODY, NULL, 0, out,
			     sizeof(out)));
	ASSERT_STREQ("{\"ok\":false,\"error\":\"permission denied: uid 65534 is not in control.allow_uid and no group of it is in control.allow_gid\"} EOF",
		     out);
}

TEST_F(ctl, allow_uid_and_allow_gid_admit_by_uid_primary_or_supplementary_group)
{
	struct evd_config c = self->s.cfg;
	gid_t extra = 4243;
	char out[4096];

	if (geteuid() != 0)
		SKIP(return, "needs root to run a child as uid %d", NOBODY);
	ASSERT_EQ(0, chmod(self->path, 0666));
	c.nr_allow_gid = 1;
	c.allow_gid[0] = 4243;
	in_loop(&self->s, do_reconfigure, &c);
	/* Primary group. */
	ASSERT_EQ(0, as_user(self->path, NOBODY, 4243, NULL, 0, out,
			     sizeof(out)));
	ASSERT_NE(NULL, strstr(out, "\"ok\":true")) TH_LOG("%s", out);
	/* Supplementary group. */
	ASSERT_EQ(0, as_user(self->path, NOBODY, NOBODY, &extra, 1, out,
			     sizeof(out)));
	ASSERT_NE(NULL, strstr(out, "\"ok\":true")) TH_LOG("%s", out);
	/* By uid. */
	c.nr_allow_gid = 0;
	c.allow_uid[c.nr_allow_uid++] = NOBODY;
	in_loop(&self->s, do_reconfigure, &c);
	ASSERT_EQ(0, as_user(self->path, NOBODY, NOBODY, NULL, 0, out,
			     sizeof(out)));
	ASSERT_NE(NULL, strstr(out, "\"ok\":true")) TH_LOG("%s", out);
}

TEST_F(ctl, reconfigure_closes_clients_no_longer_allowed)
{
	struct evd_config c = self->s.cfg;
	struct conn *conn = conn_open(self->path);
	unsigned int n = 0;
	json_t *r;

	ASSERT_NE(NULL, conn);
	r = request(conn, "{\"cmd\":\"ping\"}\n");
	ASSERT_TRUE(jok(r));
	json_decref(r);
	c.nr_allow_uid = 1;
	c.allow_uid[0] = 12345;		/* not us */
	in_loop(&self->s, do_reconfigure, &c);
	ASSERT_EQ(0, conn_closed(conn));
	in_loop(&self->s, do_count, &n);
	ASSERT_EQ(0u, n);
	conn_close(conn);
}

/* --- opening ---------------------------------------------------------- */

FIXTURE(open) {
	char dir[64];
	char path[160];
	struct loop *l;
	struct evd_config cfg;
	struct fake fake;
};

FIXTURE_SETUP(open)
{
	strcpy(self->dir, "/tmp/control_test.XXXXXX");
	ASSERT_NE(NULL, mkdtemp(self->dir));
	snprintf(self->path, sizeof(self->path), "%s/ctl.sock", self->dir);
	ASSERT_EQ(0, loop_new(&self->l));
	config_init(&self->cfg);
}

FIXTURE_TEARDOWN(open)
{
	char cmd[128];

	loop_free(self->l);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", self->dir);
	if (system(cmd))
		TH_LOG("cannot remove %s", self->dir);
}

TEST_F(open, live_socket_is_eaddrinuse_and_close_unlinks_only_our_file)
{
	struct control *a = (void *)1, *b = (void *)1;
	struct stat st;

	ASSERT_EQ(0, control_open(self->l, self->path, &self->cfg, &fake_ops,
				  &self->fake, &a));
	ASSERT_EQ(-EADDRINUSE, control_open(self->l, self->path, &self->cfg,
					    &fake_ops, &self->fake, &b));
	ASSERT_EQ((void *)1, b);
	ASSERT_EQ(0, stat(self->path, &st));
	control_close(a);
	ASSERT_EQ(-1, stat(self->path, &st));
	ASSERT_EQ(ENOENT, errno);
}

TEST_F(open, stale_socket_file_is_replaced)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct control *ctl;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	strcpy(sa.sun_path, self->path);
	ASSERT_EQ(0, bind(fd, (struct sockaddr *)&sa, sizeof(sa)));
	close(fd);	/* a dead daemon's socket: bound, nobody listening */
	ASSERT_EQ(0, control_open(self->l, self->path, &self->cfg, &fake_ops,
				  &self->fake, &ctl));
	control_close(ctl);
}

TEST_F(open, non_socket_file_in_the_way_is_eexist_and_left_alone)
{
	struct control *ctl;
	struct stat st;
	int fd = open(self->path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);

	ASSERT_GE(fd, 0);
	close(fd);
	ASSERT_EQ(-EEXIST, control_open(self->l, self->path, &self->cfg,
					&fake_ops, &self->fake, &ctl));
	ASSERT_EQ(0, stat(self->path, &st));
	ASSERT_TRUE(S_ISREG(st.st_mode));
}

TEST_F(open, bad_paths_are_rejected)
{
	struct control *ctl;
	char longp[200];

	memset(longp, 'a', sizeof(longp));
	longp[0] = '/';
	longp[sizeof(longp) - 1] = '\0';
	ASSERT_EQ(-EINVAL, control_open(self->l, "rel.sock", &self->cfg,
					&fake_ops, &self->fake, &ctl));
	ASSERT_EQ(-EINVAL, control_open(self->l, "", &self->cfg, &fake_ops,
					&self->fake, &ctl));
	ASSERT_EQ(-ENAMETOOLONG, control_open(self->l, longp, &self->cfg,
					      &fake_ops, &self->fake, &ctl));
}

TEST_F(open, socket_group_is_the_first_allow_gid)
{
	struct control *ctl;
	struct stat st;

	if (geteuid() != 0)
		SKIP(return, "needs root to chown");
	self->cfg.nr_allow_gid = 2;
	self->cfg.allow_gid[0] = 4242;
	self->cfg.allow_gid[1] = 4243;
	ASSERT_EQ(0, control_open(self->l, self->path, &self->cfg, &fake_ops,
				  &self->fake, &ctl));
	ASSERT_EQ(0, stat(self->path, &st));
	ASSERT_EQ(4242u, st.st_gid);
	ASSERT_EQ(0660, (int)(st.st_mode & 07777));
	control_close(ctl);
}

TEST(control_close_accepts_null)
{
	control_close(NULL);
}

/* --- evringctl -------------------------------------------------------- */

/* build/bin/evringctl next to this binary's build/selftests/daemon/. */
static const char *evringctl_path(void)
{
	static char path[PATH_MAX + 32];
	char self[PATH_MAX];
	ssize_t n;
	char *slash;

	if (getenv("EVRINGCTL"))
		return getenv("EVRINGCTL");
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0)
		return NULL;
	self[n] = '\0';
	slash = strrchr(self, '/');
	if (!slash)
		return NULL;
	*slash = '\0';
	snprintf(path, sizeof(path), "%s/../../bin/evringctl", self);
	return access(path, X_OK) == 0 ? path : NULL;
}

/* Run evringctl @args; its stdout (and stderr, merged) into @out. */
static int run_ctl(const char *args, char *out, size_t len)
{
	const char *bin = evringctl_path();
	char cmd[1024];
	size_t got = 0, n;
	FILE *p;
	int st;

	snprintf(cmd, sizeof(cmd), "%s %s 2>&1", bin, args);
	p = popen(cmd, "re");
	if (!p)
		return -errno;
	while (got < len - 1 && (n = fread(out + got, 1, len - 1 - got, p)))
		got += n;
	out[got] = '\0';
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

#define NEED_EVRINGCTL() do { \
	if (!evringctl_path()) \
		SKIP(return, "evringctl not built (build/bin/evringctl; or set $EVRINGCTL)"); \
} while (0)

TEST_F(ctl, evringctl_json_prints_the_one_response_line)
{
	static const char *const cmds[] = { "status", "spool", "ledger", "ping" };
	char args[256], out[65536];
	json_error_t jerr;
	json_t *r;

	NEED_EVRINGCTL();
	for (size_t i = 0; i < 4; i++) {
		snprintf(args, sizeof(args), "--socket %s --json %s",
			 self->path, cmds[i]);
		ASSERT_EQ(0, run_ctl(args, out, sizeof(out))) TH_LOG("%s", out);
		ASSERT_NE(NULL, strchr(out, '\n'));
		ASSERT_EQ('\0', strchr(out, '\n')[1]);	/* one line */
		r = json_loads(out, 0, &jerr);
		ASSERT_NE(NULL, r) TH_LOG("%s: %s", cmds[i], jerr.text);
		ASSERT_TRUE(jok(r));
		ASSERT_STREQ(cmds[i], jstr(r, "cmd"));
		json_decref(r);
	}
}

TEST_F(ctl, evringctl_human_output_shows_the_fields)
{
	char args[256], out[65536];
	unsigned int n = 2;

	NEED_EVRINGCTL();
	snprintf(args, sizeof(args), "--socket %s status", self->path);
	ASSERT_EQ(0, run_ctl(args, out, sizeof(out))) TH_LOG("%s", out);
	TH_LOG("\n%s", out);
	for (const char *const *w = (const char *const[]){
		"state draining", "uptime 1h02m03s", "SOURCE", "PART", "EPOCH",
		"FILL", "RING", "READ_POS", "RELEASE_POS", "BATCHES",
		"RECORDS", "LAST_SEQ", "BLOCKED", "device", "socket",
		"deadbeefcafef00d", "256.0K  25.0%", "1.0M", "10000", "9000",
		"777", NULL }; *w; w++) {
		ASSERT_NE(NULL, strstr(out, *w)) TH_LOG("no '%s'", *w);
	}

	snprintf(args, sizeof(args), "--socket %s spool", self->path);
	ASSERT_EQ(0, run_ctl(args, out, sizeof(out))) TH_LOG("%s", out);
	TH_LOG("\n%s", out);
	for (const char *const *w = (const char *const[]){
		"/var/lib/evring/spool.db", "512.0M of 1.0G (50.0%)",
		"batches       10", "records       1000",
		"oldest batch  2.5s", "ingest rate", NULL }; *w; w++) {
		ASSERT_NE(NULL, strstr(out, *w)) TH_LOG("no '%s'", *w);
	}

	in_loop(&self->s, do_losses, &n);
	snprintf(args, sizeof(args), "--socket %s ledger --limit 1", self->path);
	ASSERT_EQ(0, run_ctl(args, out, sizeof(out))) TH_LOG("%s", out);
	TH_LOG("\n%s", out);
	for (const char *const *w = (const char *const[]){
		"TIME", "FIRST_SEQ", "REASON", "2023-11-14T22:13:21.123Z",
		"epoch_change", "11", "15",
		"(1 newest of 2 ranges shown; use --limit)", NULL }; *w; w++) {
		ASSERT_NE(NULL, strstr(out, *w)) TH_LOG("no '%s'", *w);
	}

	snprintf(args, sizeof(args), "--socket %s ping", self->path);
	ASSERT_EQ(0, run_ctl(args, out, sizeof(out))) TH_LOG("%s", out);
	ASSERT_NE(NULL, strstr(out, "is alive"));
}

TEST_F(ctl, evringctl_daemon_error_is_exit_1_with_the_message)
{
	char args[256], out[4096];
	int err = -EIO;

	NEED_EVRINGCTL();
	in_loop(&self->s, do_status_err, &err);
	snprintf(args, sizeof(args), "--socket %s status", self->path);
	ASSERT_EQ(1, run_ctl(args, out, sizeof(out)));
	ASSERT_STREQ("evringctl: evringd: status: Input/output error\n", out);
}

TEST_F(ctl, evringctl_cannot_connect_is_exit_1_saying_why)
{
	char args[256], out[4096], want[512];

	NEED_EVRINGCTL();
	snprintf(args, sizeof(args), "--socket %s/nope.sock ping", self->dir);
	ASSERT_EQ(1, run_ctl(args, out, sizeof(out)));
	snprintf(want, sizeof(want),
		 "evringctl: cannot connect to '%s/nope.sock': No such file or directory (is evringd running?)\n",
		 self->dir);
	ASSERT_STREQ(want, out);
}

TEST_F(ctl, evringctl_usage_errors_are_exit_2)
{
	char out[4096];

	NEED_EVRINGCTL();
	ASSERT_EQ(2, run_ctl("", out, sizeof(out)));
	ASSERT_NE(NULL, strstr(out, "missing COMMAND"));
	ASSERT_EQ(2, run_ctl("frobnicate", out, sizeof(out)));
	ASSERT_NE(NULL, strstr(out, "unknown command 'frobnicate'"));
	ASSERT_EQ(2, run_ctl("status extra", out, sizeof(out)));
	ASSERT_EQ(2, run_ctl("--limit 0 ledger", out, sizeof(out)));
	ASSERT_EQ(2, run_ctl("--limit 5 status", out, sizeof(out)));
	ASSERT_EQ(2, run_ctl("--timeout x ping", out, sizeof(out)));
	ASSERT_EQ(2, run_ctl("--bogus ping", out, sizeof(out)));
	ASSERT_EQ(0, run_ctl("--help", out, sizeof(out)));
}

TEST_F(ctl, evringctl_failpoint_sets_lists_and_refuses)
{
	char args[512], out[65536];

	NEED_EVRINGCTL();
	snprintf(args, sizeof(args), "--socket %s failpoint drain.after_commit pause:20@2",
		 self->path);
	ASSERT_EQ(0, run_ctl(args, out, sizeof(out))) TH_LOG("%s", out);
	ASSERT_STREQ("failpoint drain.after_commit: pause:20@2 (the previous action was hit 0 times)\n",
		     out);
	snprintf(args, sizeof(args), "--socket %s failpoint list", self->path);
	ASSERT_EQ(0, run_ctl(args, out, sizeof(out))) TH_LOG("%s", out);
	TH_LOG("\n%s", out);
	ASSERT_STREQ("FAILPOINT            ACTION                   HITS\n"
		     "drain.before_commit  off                      0\n"
		     "drain.after_commit   pause:20@2               0\n"
		     "ship.before_publish  off                      0\n"
		     "ship.after_publish   off                      0\n"
		     "ship.after_cursor    off                      0\n", out);
	snprintf(args, sizeof(args), "--socket %s --json failpoint ship.after_cursor crash",
		 self->path);
	ASSERT_EQ(0, run_ctl(args, out, sizeof(out))) TH_LOG("%s", out);
	ASSERT_STREQ("{\"ok\":true,\"cmd\":\"failpoint\",\"name\":\"ship.after_cursor\",\"action\":\"crash\",\"hits\":0}\n",
		     out);
	snprintf(args, sizeof(args), "--socket %s failpoint ship.after_cursor error",
		 self->path);
	ASSERT_EQ(1, run_ctl(args, out, sizeof(out)));
	ASSERT_STREQ("evringctl: evringd: failpoint 'ship.after_cursor': action 'error' applies only to drain.before_commit (the spool commit); use crash or pause\n",
		     out);
	snprintf(args, sizeof(args), "--socket %s failpoint 'a\"b' crash",
		 self->path);
	ASSERT_EQ(1, run_ctl(args, out, sizeof(out)));
	ASSERT_STREQ("evringctl: evringd: unknown failpoint 'a\"b' (expected drain.before_commit, drain.after_commit, ship.before_publish, ship.after_publish or ship.after_cursor)\n",
		     out);
	ASSERT_EQ(2, run_ctl("failpoint", out, sizeof(out)));
	ASSERT_NE(NULL, strstr(out, "missing failpoint NAME ACTION, or list"));
	ASSERT_EQ(2, run_ctl("failpoint drain.after_commit", out, sizeof(out)));
	ASSERT_NE(NULL, strstr(out, "'failpoint drain.after_commit' needs an ACTION (off, crash, pause:MS or error)"));
	ASSERT_EQ(2, run_ctl("failpoint list extra", out, sizeof(out)));
	ASSERT_NE(NULL, strstr(out, "too many arguments, starting at 'extra'"));
	ASSERT_EQ(2, run_ctl("failpoint a b c", out, sizeof(out)));
	ASSERT_NE(NULL, strstr(out, "too many arguments, starting at 'c'"));
}

TEST_F(ctl, evringctl_status_shows_regions_and_says_not_durable)
{
	char args[256], out[65536];

	NEED_EVRINGCTL();
	snprintf(args, sizeof(args), "--socket %s status", self->path);
	ASSERT_EQ(0, run_ctl(args, out, sizeof(out))) TH_LOG("%s", out);
	TH_LOG("\n%s", out);
	for (const char *const *w = (const char *const[]){
		"REGION", "CONNECTED", "DURABLE", "BREAKER", "WINDOW",
		"INFLIGHT", "LAG_EVENTS", "LAG", "SHIPPED_EVENTS", "RETRIES",
		"DEAD", "LAST_ERROR",
		"us-east      yes       R3               closed",
		"eu-west      no        NOT DURABLE (R1) open",
		"1.5s", "1m01s", "publish deadline exceeded",
		"region eu-west is PARKED",
		"NOT DURABLE: a stream with fewer than 3 replicas", NULL };
	     *w; w++) {
		ASSERT_NE(NULL, strstr(out, *w)) TH_LOG("no '%s'", *w);
	}
}

TEST_F(ctl, evringctl_dlq_list_show_replay_and_purge)
{
	char args[256], out[65536];
	json_error_t jerr;
	struct fake f;
	json_t *r;

	NEED_EVRINGCTL();
	snprintf(args, sizeof(args), "--socket %s dlq list", self->path);
	ASSERT_EQ(0, run_ctl(args, out, sizeof(out))) TH_LOG("%s", out);
	TH_LOG("\n%s", out);
	for (const char *const *w = (const char *const[]){
		"ID", "REGION", "FIRST_SEQ", "ATTEMPTS", "REASON", "eu-west",
		"maximum payload exceeded", "2023-11-14T22:14:20.000Z",
		"3.2K", NULL }; *w; w++) {
		ASSERT_NE(NULL, strstr(out, *w)) TH_LOG("no '%s'", *w);
	}

	snprintf(args, sizeof(args), "--socket %s dlq list --json", self->path);
	ASSERT_EQ(0, run_ctl(args, out, sizeof(out))) TH_LOG("%s", out);
	r = json_loads(out, 0, &jerr);
	ASSERT_NE(NULL, r) TH_LOG("%s", jerr.text);
	ASSERT_STREQ("dlq_list", jstr(r, "cmd"));
	ASSERT_EQ(2u, json_array_size(json_object_get(r, "dead_letters")));
	json_decref(r);

	snprintf(args, sizeof(args), "--socket %s dlq show 3", self->path);
	ASSERT_EQ(0, run_ctl(args, out, sizeof(out))) TH_LOG("%s", out);
	TH_LOG("\n%s", out);
	for (const char *const *w = (const char *const[]){
		"dead letter    3\n", "region         eu-west\n",
		"batch          43 (device partition 1, epoch deadbeefcafef00d)\n",
		"sequences      300..349 (50 records)\n",
		"decoded        50 records\n",
		"dead-lettered  2023-11-14T22:14:20.000Z, after 5 attempts\n",
		"reason         maximum payload exceeded\n", NULL }; *w; w++) {
		ASSERT_NE(NULL, strstr(out, *w)) TH_LOG("no '%s'", *w);
	}
	snprintf(args, sizeof(args), "--socket %s dlq show 7", self->path);
	ASSERT_EQ(0, run_ctl(args, out, sizeof(out))) TH_LOG("%s", out);
	ASSERT_NE(NULL, strstr(out, "decoded        no: Bad message\n"));

	snprintf(args, sizeof(args), "--socket %s dlq replay 7", self->path);
	ASSERT_EQ(0, run_ctl(args, out, sizeof(out))) TH_LOG("%s", out);
	ASSERT_STREQ("dead letter 7: replay started; it leaves the dead-letter table once its region acknowledged it\n",
		     out);

	/* No --yes: refused before anything is sent. */
	snprintf(args, sizeof(args), "--socket %s dlq purge 3", self->path);
	ASSERT_EQ(2, run_ctl(args, out, sizeof(out)));
	ASSERT_STREQ("evringctl: refusing to purge dead letter 3 without --yes\n",
		     out);
	in_loop(&self->s, do_fake_get, &f);
	ASSERT_EQ(0u, f.purged);
	ASSERT_EQ(1u, f.dlq_calls);	/* the replay */

	snprintf(args, sizeof(args), "--socket %s dlq purge 3 --yes", self->path);
	ASSERT_EQ(0, run_ctl(args, out, sizeof(out))) TH_LOG("%s", out);
	ASSERT_STREQ("dead letter 3 purged\n", out);
	in_loop(&self->s, do_fake_get, &f);
	ASSERT_EQ(3u, f.purged);
	ASSERT_EQ(7u, f.replayed);
}

TEST_F(ctl, evringctl_dlq_unknown_id_is_exit_1_saying_so)
{
	static const char *const sub[] = { "show 42", "replay 42",
					   "purge 42 --yes" };
	char args[256], out[4096];

	NEED_EVRINGCTL();
	for (size_t i = 0; i < 3; i++) {
		snprintf(args, sizeof(args), "--socket %s dlq %s", self->path,
			 sub[i]);
		ASSERT_EQ(1, run_ctl(args, out, sizeof(out))) TH_LOG("%s", out);
		ASSERT_STREQ("evringctl: evringd: no dead letter 42\n", out);
	}
}

TEST_F(ctl, evringctl_dlq_usage_errors_are_exit_2)
{
	static const char *const cases[][2] = {
		{ "dlq", "missing dlq subcommand (list, show, replay or purge)" },
		{ "dlq frob", "unknown dlq subcommand 'frob'" },
		{ "dlq show", "'dlq show' needs a dead-letter ID" },
		{ "dlq replay x", "bad dead-letter ID 'x' (a positive integer)" },
		{ "dlq purge 0 --yes", "bad dead-letter ID '0' (a positive integer)" },
		{ "dlq show 3 4", "too many arguments, starting at '4'" },
		{ "dlq list 3", "too many arguments, starting at '3'" },
		{ "--yes dlq show 3", "--yes applies to 'dlq purge' only" },
		{ "--yes status", "--yes applies to 'dlq purge' only" },
		{ "--limit 3 dlq list", "--limit applies to 'ledger' only" },
	};
	char args[256], out[4096], want[256];
	struct fake f;

	NEED_EVRINGCTL();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(args, sizeof(args), "--socket %s %s", self->path,
			 cases[i][0]);
		ASSERT_EQ(2, run_ctl(args, out, sizeof(out))) TH_LOG("%s", out);
		snprintf(want, sizeof(want),
			 "evringctl: %s\ntry 'evringctl --help'\n", cases[i][1]);
		ASSERT_STREQ(want, out);
	}
	in_loop(&self->s, do_fake_get, &f);
	ASSERT_EQ(0u, f.dlq_calls);
}

TEST_HARNESS_MAIN
