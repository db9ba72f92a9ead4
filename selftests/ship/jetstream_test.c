// SPDX-License-Identifier: GPL-2.0-only
/*
 * jetstream_test: the libnats adapter (daemon/jetstream.h) against real
 * nats-server processes (/usr/sbin/nats-server, $NATS_SERVER overrides).
 *
 * Every test gets a fresh directory /tmp/jstest-<pid> holding the servers'
 * config files, logs and JetStream stores; servers listen on 127.0.0.1
 * ports 14200-14299 (this file's range), die with the test process
 * (PR_SET_PDEATHSIG) and are killed and reaped in teardown.  Faults are
 * real: SIGSTOP/SIGCONT of the server, SIGKILL and a restart on the same
 * port and store, a URL nobody listens on, a server with a small
 * max_payload, a 3-node cluster.
 *
 * Nothing asserts on elapsed time: waits have generous deadlines and only
 * fail the test when a result never comes.
 *
 * The classification test names natsStatus values through <nats/status.h>
 * (the enum only; no libnats call is made from here).
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nats/status.h>

#include "jetstream.h"
#include "kselftest_harness.h"
#include "nats_server.h"

#define PORT_MAIN	14200
#define PORT_SMALL	14201	/* max_payload: 4096 */
#define PORT_DEAD	14202	/* nobody listens */
#define PORT_CLUSTER	14210	/* clients 14210..14212 */
#define PORT_ROUTE	14220	/* routes 14220..14222 */
#define STREAM		"EVT"
#define PREFIX		"evt"
#define TIMEOUT_MS	1000
#define WAIT_MS		15000	/* a result that never comes fails after this */
#define POISON64	0xa5a5a5a5a5a5a5a5ull

/* --- servers ------------------------------------------------------------ */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static void test_dir(char *buf, size_t len)
{
	snprintf(buf, len, "/tmp/jstest-%d", (int)getpid());
}

/*
 * Write the config of server @name listening on @port, with its store in
 * the test directory; @max_payload 0: default; @route_port 0: no cluster,
 * else a cluster "c" of the three nodes at PORT_ROUTE..+2.
 */
static int srv_config(struct nats_srv *s, const char *name, int port,
		      int max_payload, int route_port)
{
	char dir[PATH_MAX], cluster[256] = "";
	int n;

	test_dir(dir, sizeof(dir));
	mkdir(dir, 0700);
	nats_srv_init(s, dir, name, port);
	if (route_port) {
		n = snprintf(cluster, sizeof(cluster), "cluster {\n  name: c\n"
			     "  listen: 127.0.0.1:%d\n  routes: [\n", route_port);
		for (int i = 0; i < 3; i++)
			if (PORT_ROUTE + i != route_port)
				n += snprintf(cluster + n, sizeof(cluster) - n,
					      "    nats-route://127.0.0.1:%d\n",
					      PORT_ROUTE + i);
		snprintf(cluster + n, sizeof(cluster) - n, "  ]\n}\n");
	}
	return nats_srv_write_conf(s, name, max_payload, cluster);
}

static void rm_test_dir(void)
{
	char cmd[PATH_MAX + 16], dir[PATH_MAX];

	test_dir(dir, sizeof(dir));
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd))
		fprintf(stderr, "# cannot remove %s\n", dir);
}

/* --- the link ------------------------------------------------------------ */

static void default_opts(struct js_link_opts *o, char *urls, size_t len, int port)
{
	snprintf(urls, len, "nats://127.0.0.1:%d", port);
	*o = (struct js_link_opts){
		.region = "test",
		.urls = urls,
		.stream = STREAM,
		.subject_prefix = PREFIX,
		.replicas = 1,
		.create_stream = true,
		.dupe_window_ms = 60000,
		.timeout_ms = TIMEOUT_MS,
		.max_pending = 64,
	};
}

static int last_state = -1;	/* last STATE seen by a helper, not yet consumed */

/* The next result within @ms: 0 or -ETIMEDOUT. */
static int next_result(struct js_link *l, struct js_result *r, int ms)
{
	struct pollfd p = { .fd = js_link_fd(l), .events = POLLIN };
	uint64_t end = now_ms() + ms;

	for (;;) {
		int64_t left;

		memset(r, 0xa5, sizeof(*r));
		if (js_link_poll(l, r) == 0)
			return 0;
		left = (int64_t)(end - now_ms());
		if (left <= 0)
			return -ETIMEDOUT;
		poll(&p, 1, left);
	}
}

/* The result of request @tag; STATE results met on the way are noted. */
static int wait_tag(struct js_link *l, uint64_t tag, struct js_result *r)
{
	for (;;) {
		int ret = next_result(l, r, WAIT_MS);

		if (ret)
			return ret;
		if (r->op == JS_OP_STATE) {
			last_state = r->connected;
			continue;
		}
		if (r->tag != tag)
			return -EPROTO;
		return 0;
	}
}

/* Wait until a STATE with @connected was reported: 0 or -ETIMEDOUT. */
static int wait_state(struct js_link *l, bool connected)
{
	struct js_result r;
	uint64_t end = now_ms() + WAIT_MS;

	while (last_state != (int)connected) {
		int64_t left = (int64_t)(end - now_ms());

		if (left <= 0 || next_result(l, &r, left))
			return -ETIMEDOUT;
		if (r.op != JS_OP_STATE)
			return -EPROTO;		/* nothing else is pending */
		last_state = r.connected;
	}
	last_state = -1;
	return 0;
}

static uint64_t next_tag = 100;

static int request(struct js_link *l, struct js_req *q, struct js_result *r)
{
	int ret;

	q->tag = next_tag++;
	ret = js_link_submit(l, q);
	return ret ? ret : wait_tag(l, q->tag, r);
}

static int ensure(struct js_link *l, struct js_result *r)
{
	struct js_req q = { .op = JS_OP_ENSURE };

	return request(l, &q, r);
}

static int publish(struct js_link *l, const char *subj, const char *id,
		   uint64_t expect, const void *data, size_t len,
		   struct js_result *r)
{
	struct js_req q = {
		.op = JS_OP_PUBLISH,
		.data = data,
		.len = len,
		.expect_last_subject_seq = expect,
	};

	snprintf(q.subject, sizeof(q.subject), "%s", subj);
	snprintf(q.msg_id, sizeof(q.msg_id), "%s", id);
	return request(l, &q, r);
}

static int last(struct js_link *l, const char *subj, struct js_result *r)
{
	struct js_req q = { .op = JS_OP_LAST };

	snprintf(q.subject, sizeof(q.subject), "%s", subj);
	return request(l, &q, r);
}

static int delete(struct js_link *l, uint64_t seq, struct js_result *r)
{
	struct js_req q = { .op = JS_OP_DELETE, .seq = seq };

	return request(l, &q, r);
}

/* ENSURE until it is not TRANSIENT (a cluster electing its leaders). */
static int ensure_retry(struct js_link *l, struct js_result *r, int ms)
{
	uint64_t end = now_ms() + ms;
	int ret;

	for (;;) {
		ret = ensure(l, r);
		if (ret || r->cls != JS_TRANSIENT || now_ms() > end)
			return ret;
		sleep_ms(200);
	}
}

struct seen {
	int n;
	uint64_t seq[8];
	char subj[8][64], id[8][64], data[8][16];
	int dead[8];
	uint64_t ns[8];
};

/* js_read_stream() callback: note what was read, stop after 8 (-E2BIG). */
static int note_cb(const struct js_stored *m, void *arg)
{
	struct seen *s = arg;

	if (s->n >= 8)
		return -E2BIG;
	s->seq[s->n] = m->stream_seq;
	snprintf(s->subj[s->n], 64, "%s", m->subject);
	snprintf(s->id[s->n], 64, "%s", m->msg_id);
	snprintf(s->data[s->n], 16, "%.*s", (int)m->len, (const char *)m->data);
	s->dead[s->n] = m->dead_letter ? (int)strlen(m->dead_letter) : -1;
	s->ns[s->n] = m->stored_ns;
	s->n++;
	return 0;
}

static int none_cb(const struct js_stored *m, void *arg)
{
	return 0;
}

/* --- the fixture: one server, one link ---------------------------------- */

FIXTURE(js) {
	struct nats_srv srv;
	struct js_link *l;
	struct js_link_opts o;
	char urls[128];
	char err[256];
};

FIXTURE_SETUP(js)
{
	last_state = -1;
	ASSERT_EQ(0, srv_config(&self->srv, "n1", PORT_MAIN, 0, 0));
	ASSERT_EQ(0, nats_srv_start(&self->srv));
	default_opts(&self->o, self->urls, sizeof(self->urls), PORT_MAIN);
	ASSERT_EQ(0, js_link_open(&self->o, &self->l, self->err,
				  sizeof(self->err))) TH_LOG("%s", self->err);
	ASSERT_EQ(0, wait_state(self->l, true));
}

FIXTURE_TEARDOWN(js)
{
	js_link_close(self->l);
	nats_srv_kill(&self->srv);
	rm_test_dir();
}

TEST_F(js, ensure_creates_r1_stream_then_finds_it)
{
	struct js_result r;

	ASSERT_EQ(0, ensure(self->l, &r));
	ASSERT_EQ(JS_OK, (int)r.cls) TH_LOG("%s", r.detail);
	EXPECT_EQ(JS_OP_ENSURE, (int)r.op);
	EXPECT_TRUE(r.created);
	EXPECT_EQ(1u, r.replicas);
	EXPECT_FALSE(r.durable);
	EXPECT_EQ(1048576, r.max_payload);
	EXPECT_EQ(60000u, r.dupe_window_ms);
	EXPECT_STREQ("", r.detail);

	ASSERT_EQ(0, ensure(self->l, &r));
	ASSERT_EQ(JS_OK, (int)r.cls) TH_LOG("%s", r.detail);
	EXPECT_FALSE(r.created);
	EXPECT_EQ(1u, r.replicas);
	EXPECT_FALSE(r.durable);
	EXPECT_EQ(60000u, r.dupe_window_ms);
}

TEST_F(js, ensure_missing_stream_without_create_is_permanent)
{
	struct js_link *l2;
	struct js_result r;

	self->o.create_stream = false;
	self->o.stream = "NOPE";
	ASSERT_EQ(0, js_link_open(&self->o, &l2, self->err, sizeof(self->err)));
	ASSERT_EQ(0, wait_state(l2, true));
	ASSERT_EQ(0, ensure(l2, &r));
	EXPECT_EQ(JS_PERMANENT, (int)r.cls);
	EXPECT_EQ(10059, r.js_code);
	EXPECT_STREQ("cannot look up stream 'NOPE': Not Found (error 10059)", r.detail);
	js_link_close(l2);
}

TEST_F(js, publish_returns_stream_seq_per_subject_expectations)
{
	struct js_result r;

	ASSERT_EQ(0, ensure(self->l, &r));
	ASSERT_EQ(JS_OK, (int)r.cls);
	ASSERT_EQ(0, publish(self->l, "evt.h.kmod-0", "h/kmod-0/1/1", 0, "a", 1, &r));
	ASSERT_EQ(JS_OK, (int)r.cls) TH_LOG("%s", r.detail);
	EXPECT_EQ(JS_OP_PUBLISH, (int)r.op);
	EXPECT_EQ(1u, r.stream_seq);
	EXPECT_EQ(0, r.js_code);
	ASSERT_EQ(0, publish(self->l, "evt.h.kmod-1", "h/kmod-1/1/1", 0, "b", 1, &r));
	ASSERT_EQ(JS_OK, (int)r.cls) TH_LOG("%s", r.detail);
	EXPECT_EQ(2u, r.stream_seq);
	ASSERT_EQ(0, publish(self->l, "evt.h.kmod-0", "h/kmod-0/1/2", 1, "c", 1, &r));
	ASSERT_EQ(JS_OK, (int)r.cls) TH_LOG("%s", r.detail);
	EXPECT_EQ(3u, r.stream_seq);
	EXPECT_EQ(0u, js_link_inflight(self->l));
}

TEST_F(js, same_msg_id_is_duplicate_with_first_seq)
{
	struct js_result r;

	ASSERT_EQ(0, ensure(self->l, &r));
	ASSERT_EQ(0, publish(self->l, "evt.h.kmod-0", "h/kmod-0/1/1", 0, "a", 1, &r));
	ASSERT_EQ(JS_OK, (int)r.cls) TH_LOG("%s", r.detail);
	ASSERT_EQ(0, publish(self->l, "evt.h.kmod-1", "h/kmod-1/1/1", 0, "b", 1, &r));
	ASSERT_EQ(JS_OK, (int)r.cls);
	/* the id check comes first: the stale expectation does not matter */
	ASSERT_EQ(0, publish(self->l, "evt.h.kmod-0", "h/kmod-0/1/1", 0, "a", 1, &r));
	EXPECT_EQ(JS_DUPLICATE, (int)r.cls) TH_LOG("%s", r.detail);
	EXPECT_EQ(1u, r.stream_seq);
}

TEST_F(js, wrong_expected_last_subject_seq_is_wrong_last)
{
	struct js_result r;

	ASSERT_EQ(0, ensure(self->l, &r));
	ASSERT_EQ(0, publish(self->l, "evt.h.kmod-0", "id1", 0, "a", 1, &r));
	ASSERT_EQ(JS_OK, (int)r.cls);
	ASSERT_EQ(0, publish(self->l, "evt.h.kmod-0", "id2", 7, "b", 1, &r));
	EXPECT_EQ(JS_WRONG_LAST, (int)r.cls);
	EXPECT_EQ(10071, r.js_code);
	EXPECT_STREQ("wrong last sequence: 1", r.detail);
	EXPECT_EQ(0u, js_link_inflight(self->l));
}

/* nats-server 2.9.10 honours "Nats-Expected-Last-Subject-Sequence: 0". */
TEST_F(js, expected_zero_on_non_empty_subject_is_wrong_last)
{
	struct js_result r;

	ASSERT_EQ(0, ensure(self->l, &r));
	ASSERT_EQ(0, publish(self->l, "evt.h.kmod-0", "id1", 0, "a", 1, &r));
	ASSERT_EQ(JS_OK, (int)r.cls);
	ASSERT_EQ(0, publish(self->l, "evt.h.kmod-0", "id2", 0, "b", 1, &r));
	EXPECT_EQ(JS_WRONG_LAST, (int)r.cls);
	EXPECT_EQ(10071, r.js_code);
	/* another subject is still empty */
	ASSERT_EQ(0, publish(self->l, "evt.h.kmod-1", "id3", 0, "c", 1, &r));
	EXPECT_EQ(JS_OK, (int)r.cls);
	EXPECT_EQ(2u, r.stream_seq);
}

TEST_F(js, last_reports_not_found_then_seq_and_msg_id)
{
	struct js_result r;

	ASSERT_EQ(0, ensure(self->l, &r));
	ASSERT_EQ(0, last(self->l, "evt.h.kmod-0", &r));
	EXPECT_EQ(JS_NOT_FOUND, (int)r.cls);
	EXPECT_EQ(JS_OP_LAST, (int)r.op);
	EXPECT_EQ(10037, r.js_code);
	EXPECT_STREQ("no message on 'evt.h.kmod-0'", r.detail);

	ASSERT_EQ(0, publish(self->l, "evt.h.kmod-1", "other", 0, "x", 1, &r));
	ASSERT_EQ(0, publish(self->l, "evt.h.kmod-0", "h/kmod-0/5/1", 0, "a", 1, &r));
	ASSERT_EQ(0, publish(self->l, "evt.h.kmod-0", "h/kmod-0/5/9", 2, "b", 1, &r));
	ASSERT_EQ(JS_OK, (int)r.cls);
	ASSERT_EQ(0, publish(self->l, "evt.h.kmod-1", "other2", 1, "x", 1, &r));
	ASSERT_EQ(0, last(self->l, "evt.h.kmod-0", &r));
	ASSERT_EQ(JS_OK, (int)r.cls) TH_LOG("%s", r.detail);
	EXPECT_EQ(3u, r.stream_seq);
	EXPECT_STREQ("h/kmod-0/5/9", r.msg_id);

	/* a message without an id */
	ASSERT_EQ(0, publish(self->l, "evt.h.bpf-2", "", 0, "x", 1, &r));
	ASSERT_EQ(JS_OK, (int)r.cls);
	ASSERT_EQ(0, last(self->l, "evt.h.bpf-2", &r));
	ASSERT_EQ(JS_OK, (int)r.cls);
	EXPECT_EQ(5u, r.stream_seq);
	EXPECT_STREQ("", r.msg_id);
}

TEST_F(js, delete_works_then_not_found)
{
	struct js_result r;

	ASSERT_EQ(0, ensure(self->l, &r));
	ASSERT_EQ(0, publish(self->l, "evt.h.kmod-0", "id1", 0, "a", 1, &r));
	ASSERT_EQ(0, publish(self->l, "evt.h.kmod-0", "id2", 1, "b", 1, &r));
	ASSERT_EQ(JS_OK, (int)r.cls);
	ASSERT_EQ(0, delete(self->l, 1, &r));
	EXPECT_EQ(JS_OK, (int)r.cls) TH_LOG("%s", r.detail);
	EXPECT_EQ(JS_OP_DELETE, (int)r.op);
	EXPECT_EQ(1u, r.stream_seq);
	ASSERT_EQ(0, last(self->l, "evt.h.kmod-0", &r));
	EXPECT_EQ(JS_OK, (int)r.cls);
	EXPECT_EQ(2u, r.stream_seq);
	EXPECT_STREQ("id2", r.msg_id);
	/* deleted already (now below the first sequence), and never there */
	ASSERT_EQ(0, delete(self->l, 1, &r));
	EXPECT_EQ(JS_NOT_FOUND, (int)r.cls) TH_LOG("%s", r.detail);
	EXPECT_EQ(10057, r.js_code);
	ASSERT_EQ(0, delete(self->l, 99, &r));
	EXPECT_EQ(JS_NOT_FOUND, (int)r.cls) TH_LOG("%s", r.detail);
	EXPECT_EQ(10057, r.js_code);
}

/*
 * What nats-server 2.9.10 does, and ship.c must know: deleting the last
 * message of a subject that holds older ones makes the stream forget the
 * subject's last sequence: LAST says not found and an expected 0 is
 * accepted.  So never DELETE a subject's last message.  (A server that
 * fixes this fails here: then update docs/FORMAT.md and ship.c's notes.)
 */
TEST_F(js, deleting_subjects_last_message_forgets_the_subject_on_2_9)
{
	struct js_result r;

	ASSERT_EQ(0, ensure(self->l, &r));
	ASSERT_EQ(0, publish(self->l, "evt.h.kmod-0", "id1", 0, "a", 1, &r));
	ASSERT_EQ(0, publish(self->l, "evt.h.kmod-0", "id2", 1, "b", 1, &r));
	ASSERT_EQ(0, delete(self->l, 2, &r));
	ASSERT_EQ(JS_OK, (int)r.cls);
	ASSERT_EQ(0, last(self->l, "evt.h.kmod-0", &r));
	EXPECT_EQ(JS_NOT_FOUND, (int)r.cls);
	ASSERT_EQ(0, publish(self->l, "evt.h.kmod-0", "id3", 1, "c", 1, &r));
	EXPECT_EQ(JS_WRONG_LAST, (int)r.cls);
	EXPECT_STREQ("wrong last sequence: 0", r.detail);
	ASSERT_EQ(0, publish(self->l, "evt.h.kmod-0", "id3", 0, "c", 1, &r));
	EXPECT_EQ(JS_OK, (int)r.cls);
	EXPECT_EQ(3u, r.stream_seq);
}

TEST_F(js, headers_are_stored_and_read_back_in_order_skipping_deleted)
{
	static const char *const srcs[] = { "kmod", "socket", "bpf" };
	struct js_result r;
	struct js_req q;
	char err[256];
	struct seen seen = { 0 };

	ASSERT_EQ(0, ensure(self->l, &r));
	for (int i = 0; i < 3; i++) {
		char id[64], subj[64], part[8];

		snprintf(subj, sizeof(subj), "evt.h.%s-%d", srcs[i], i);
		snprintf(id, sizeof(id), "h/%s-%d/7/1", srcs[i], i);
		snprintf(part, sizeof(part), "%d", i);
		q = (struct js_req){
			.op = JS_OP_PUBLISH, .data = srcs[i],
			.len = strlen(srcs[i]), .nhdr = 3,
			.hdr_name = { JS_HDR_SOURCE, JS_HDR_PARTITION, JS_HDR_FORMAT },
			.hdr_value = { srcs[i], part, "EVB1" },
		};
		snprintf(q.subject, sizeof(q.subject), "%s", subj);
		snprintf(q.msg_id, sizeof(q.msg_id), "%s", id);
		ASSERT_EQ(0, request(self->l, &q, &r));
		ASSERT_EQ(JS_OK, (int)r.cls) TH_LOG("%s", r.detail);
	}
	/* a dead-letter marker: empty body */
	q = (struct js_req){
		.op = JS_OP_PUBLISH, .subject = "evt.h.kmod-0",
		.msg_id = "h/kmod-0/7/9/dead", .expect_last_subject_seq = 1,
		.nhdr = 1, .hdr_name = { JS_HDR_DEAD_LETTER },
		.hdr_value = { "payload too large" },
	};
	ASSERT_EQ(0, request(self->l, &q, &r));
	ASSERT_EQ(JS_OK, (int)r.cls) TH_LOG("%s", r.detail);
	EXPECT_EQ(4u, r.stream_seq);
	ASSERT_EQ(0, publish(self->l, "evt.h.kmod-0", "h/kmod-0/7/10", 4, "five", 4, &r));
	ASSERT_EQ(JS_OK, (int)r.cls);
	ASSERT_EQ(0, delete(self->l, 2, &r));
	ASSERT_EQ(JS_OK, (int)r.cls);

	ASSERT_EQ(0, js_read_stream(&self->o, 1, note_cb, &seen, err, sizeof(err)))
		TH_LOG("%s", err);
	ASSERT_EQ(4, seen.n);
	EXPECT_EQ(1u, seen.seq[0]);
	EXPECT_EQ(3u, seen.seq[1]);
	EXPECT_EQ(4u, seen.seq[2]);
	EXPECT_EQ(5u, seen.seq[3]);
	EXPECT_STREQ("evt.h.kmod-0", seen.subj[0]);
	EXPECT_STREQ("h/kmod-0/7/1", seen.id[0]);
	EXPECT_STREQ("kmod", seen.data[0]);
	EXPECT_EQ(-1, seen.dead[0]);
	EXPECT_STREQ("evt.h.bpf-2", seen.subj[1]);
	EXPECT_STREQ("h/bpf-2/7/1", seen.id[1]);
	EXPECT_STREQ("bpf", seen.data[1]);
	EXPECT_STREQ("h/kmod-0/7/9/dead", seen.id[2]);
	EXPECT_EQ((int)strlen("payload too large"), seen.dead[2]);
	EXPECT_STREQ("", seen.data[2]);
	EXPECT_STREQ("five", seen.data[3]);
	for (int i = 0; i < 4; i++) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		EXPECT_LT(seen.ns[i], (uint64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
		EXPECT_GT(seen.ns[i], (uint64_t)(ts.tv_sec - 3600) * 1000000000);
	}

	/* from a later sequence, and a callback that stops the walk */
	memset(&seen, 0, sizeof(seen));
	ASSERT_EQ(0, js_read_stream(&self->o, 4, note_cb, &seen, err, sizeof(err)));
	ASSERT_EQ(2, seen.n);
	EXPECT_EQ(4u, seen.seq[0]);
	EXPECT_EQ(5u, seen.seq[1]);
	memset(&seen, 0, sizeof(seen));
	seen.n = 7;
	EXPECT_EQ(-E2BIG, js_read_stream(&self->o, 1, note_cb, &seen, err, sizeof(err)));
	EXPECT_EQ(8, seen.n);
}

TEST_F(js, read_stream_missing_stream_is_enoent)
{
	char err[256];

	self->o.stream = "NOPE";
	EXPECT_EQ(-ENOENT, js_read_stream(&self->o, 1, none_cb, NULL, err, sizeof(err)));
	EXPECT_STREQ("cannot look up stream 'NOPE': Not Found (error 10059)", err);
}

TEST_F(js, sigstop_publish_is_ambiguous_then_sigcont_recovers)
{
	struct js_result r;
	struct js_req q = {
		.op = JS_OP_PUBLISH, .subject = "evt.h.kmod-0",
		.msg_id = "h/kmod-0/1/1", .data = "a", .len = 1,
	};
	uint64_t end;
	js_link_close(self->l);
	self->o.max_pending = 1;
	self->o.timeout_ms = 500;
	ASSERT_EQ(0, js_link_open(&self->o, &self->l, self->err, sizeof(self->err)));
	ASSERT_EQ(0, wait_state(self->l, true));
	ASSERT_EQ(0, ensure(self->l, &r));
	ASSERT_EQ(JS_OK, (int)r.cls);

	ASSERT_EQ(0, kill(self->srv.pid, SIGSTOP));
	q.tag = 1;
	ASSERT_EQ(0, js_link_submit(self->l, &q));
	/* max_pending publishes in flight: the next is refused */
	q.tag = 2;
	EXPECT_EQ(-EAGAIN, js_link_submit(self->l, &q));
	EXPECT_EQ(1u, js_link_inflight(self->l));
	ASSERT_EQ(0, wait_tag(self->l, 1, &r));
	EXPECT_EQ(JS_AMBIGUOUS, (int)r.cls);
	EXPECT_EQ(NATS_TIMEOUT, r.nats_status);
	EXPECT_STREQ("no acknowledgement within 500 ms", r.detail);
	EXPECT_GE(r.latency_us, 500000u);
	EXPECT_EQ(0u, js_link_inflight(self->l));

	ASSERT_EQ(0, kill(self->srv.pid, SIGCONT));
	/* reconcile as ship.c does: ask, then publish after what is there */
	end = now_ms() + WAIT_MS;
	for (;;) {
		uint64_t expect;

		ASSERT_EQ(0, last(self->l, "evt.h.kmod-0", &r));
		if (r.cls == JS_TRANSIENT && now_ms() < end) {
			sleep_ms(100);
			continue;
		}
		ASSERT_TRUE(r.cls == JS_OK || r.cls == JS_NOT_FOUND)
			TH_LOG("%s: %s", js_class_name(r.cls), r.detail);
		if (r.cls == JS_OK)	/* the paused server stored it after all */
			EXPECT_STREQ("h/kmod-0/1/1", r.msg_id);
		expect = r.cls == JS_OK ? r.stream_seq : 0;
		ASSERT_EQ(0, publish(self->l, "evt.h.kmod-0", "h/kmod-0/1/2",
				     expect, "b", 1, &r));
		if (r.cls == JS_TRANSIENT && now_ms() < end) {
			sleep_ms(100);
			continue;
		}
		ASSERT_EQ(JS_OK, (int)r.cls) TH_LOG("%s", r.detail);
		EXPECT_EQ(expect + 1, r.stream_seq);
		break;
	}
}

TEST_F(js, killed_server_reports_down_then_up_on_restart)
{
	struct js_result r;
	uint64_t end;

	ASSERT_EQ(0, ensure(self->l, &r));
	ASSERT_EQ(0, publish(self->l, "evt.h.kmod-0", "id1", 0, "a", 1, &r));
	ASSERT_EQ(JS_OK, (int)r.cls);

	kill(self->srv.pid, SIGKILL);
	waitpid(self->srv.pid, NULL, 0);
	self->srv.pid = 0;
	ASSERT_EQ(0, wait_state(self->l, false));
	/* while down nothing is sent: retry later */
	ASSERT_EQ(0, publish(self->l, "evt.h.kmod-0", "id2", 1, "b", 1, &r));
	EXPECT_EQ(JS_TRANSIENT, (int)r.cls);
	EXPECT_EQ(NATS_NOT_YET_CONNECTED, r.nats_status);
	EXPECT_STREQ("not connected", r.detail);
	ASSERT_EQ(0, ensure(self->l, &r));
	EXPECT_EQ(JS_TRANSIENT, (int)r.cls);

	ASSERT_EQ(0, nats_srv_start(&self->srv));
	ASSERT_EQ(0, wait_state(self->l, true));
	end = now_ms() + WAIT_MS;
	do {	/* the restarted server may need a moment for its streams */
		ASSERT_EQ(0, publish(self->l, "evt.h.kmod-0", "id2", 1, "b", 1, &r));
	} while (r.cls == JS_TRANSIENT && now_ms() < end && (sleep_ms(100), 1));
	ASSERT_EQ(JS_OK, (int)r.cls) TH_LOG("%s", r.detail);
	EXPECT_EQ(2u, r.stream_seq);
	ASSERT_EQ(0, ensure(self->l, &r));
	EXPECT_EQ(JS_OK, (int)r.cls);
	EXPECT_FALSE(r.created);
}

TEST_F(js, fd_is_readable_exactly_while_results_are_pending)
{
	struct pollfd p = { .fd = js_link_fd(self->l), .events = POLLIN };
	struct js_result r;
	struct js_req q = { .op = JS_OP_ENSURE };

	EXPECT_EQ(0, poll(&p, 1, 0));
	EXPECT_EQ(-EAGAIN, js_link_poll(self->l, &r));
	for (q.tag = 1; q.tag <= 3; q.tag++)
		ASSERT_EQ(0, js_link_submit(self->l, &q));
	/* ENSUREs run in order */
	for (q.tag = 1; q.tag <= 3; q.tag++) {
		ASSERT_EQ(1, poll(&p, 1, WAIT_MS));
		ASSERT_EQ(0, js_link_poll(self->l, &r));
		EXPECT_EQ(q.tag, r.tag);
		EXPECT_EQ(JS_OK, (int)r.cls);
	}
	EXPECT_EQ(0, poll(&p, 1, 0));
	EXPECT_EQ(-EAGAIN, js_link_poll(self->l, &r));
}

TEST_F(js, submit_rejects_bad_requests)
{
	struct js_req q = {
		.op = JS_OP_PUBLISH, .subject = "evt.h.kmod-0", .data = "a", .len = 1,
	};
	struct js_req b;

	b = q; b.subject[0] = 0;
	EXPECT_EQ(-EINVAL, js_link_submit(self->l, &b));
	b = q; strcpy(b.subject, "evt..x");
	EXPECT_EQ(-EINVAL, js_link_submit(self->l, &b));
	b = q; strcpy(b.subject, "evt.*");
	EXPECT_EQ(-EINVAL, js_link_submit(self->l, &b));
	b = q; strcpy(b.subject, "evt.a b");
	EXPECT_EQ(-EINVAL, js_link_submit(self->l, &b));
	b = q; memset(b.subject, 'a', sizeof(b.subject));
	EXPECT_EQ(-EINVAL, js_link_submit(self->l, &b));
	b = q; b.op = 99;
	EXPECT_EQ(-EINVAL, js_link_submit(self->l, &b));
	b = q; b.data = NULL;
	EXPECT_EQ(-EINVAL, js_link_submit(self->l, &b));
	b = q; b.nhdr = 9;
	EXPECT_EQ(-EINVAL, js_link_submit(self->l, &b));
	b = q; b.nhdr = 1; b.hdr_name[0] = "A:B"; b.hdr_value[0] = "v";
	EXPECT_EQ(-EINVAL, js_link_submit(self->l, &b));
	b = q; b.nhdr = 1; b.hdr_name[0] = "A"; b.hdr_value[0] = "v\r\nX: y";
	EXPECT_EQ(-EINVAL, js_link_submit(self->l, &b));
	b = q; b.nhdr = 1; b.hdr_name[0] = NULL; b.hdr_value[0] = "v";
	EXPECT_EQ(-EINVAL, js_link_submit(self->l, &b));
	b = q; strcpy(b.msg_id, "a\nb");
	EXPECT_EQ(-EINVAL, js_link_submit(self->l, &b));
	b = q; b.op = JS_OP_LAST; b.subject[0] = 0;
	EXPECT_EQ(-EINVAL, js_link_submit(self->l, &b));
	EXPECT_EQ(0u, js_link_inflight(self->l));
}

TEST_F(js, close_with_everything_in_flight)
{
	struct js_req q = {
		.op = JS_OP_PUBLISH, .subject = "evt.h.kmod-0", .data = "a", .len = 1,
	};
	struct js_result r;

	ASSERT_EQ(0, ensure(self->l, &r));
	ASSERT_EQ(0, kill(self->srv.pid, SIGSTOP));
	for (int i = 0; i < 10; i++) {
		snprintf(q.msg_id, sizeof(q.msg_id), "id%d", i);
		ASSERT_EQ(0, js_link_submit(self->l, &q));
	}
	q.op = JS_OP_LAST;
	ASSERT_EQ(0, js_link_submit(self->l, &q));
	q.op = JS_OP_ENSURE;
	ASSERT_EQ(0, js_link_submit(self->l, &q));
	js_link_close(self->l);
	self->l = NULL;
	ASSERT_EQ(0, kill(self->srv.pid, SIGCONT));
	js_link_close(NULL);
}

TEST(payload_over_max_payload_is_permanent)
{
	struct js_link_opts o;
	struct js_link *l = NULL;
	struct js_result r;
	struct nats_srv s = { 0 };
	char urls[64], err[256];
	static char big[5000];

	ASSERT_EQ(0, srv_config(&s, "small", PORT_SMALL, 4096, 0));
	ASSERT_EQ(0, nats_srv_start(&s));
	default_opts(&o, urls, sizeof(urls), PORT_SMALL);
	ASSERT_EQ(0, js_link_open(&o, &l, err, sizeof(err)));
	ASSERT_EQ(0, wait_state(l, true));
	ASSERT_EQ(0, ensure(l, &r));
	ASSERT_EQ(JS_OK, (int)r.cls);
	EXPECT_EQ(4096, r.max_payload);
	ASSERT_EQ(0, publish(l, "evt.h.kmod-0", "big", 0, big, sizeof(big), &r));
	EXPECT_EQ(JS_PERMANENT, (int)r.cls) TH_LOG("%s", r.detail);
	EXPECT_EQ(NATS_MAX_PAYLOAD, r.nats_status);
	/* the connection is still good */
	ASSERT_EQ(0, publish(l, "evt.h.kmod-0", "small", 0, big, 100, &r));
	EXPECT_EQ(JS_OK, (int)r.cls) TH_LOG("%s", r.detail);
	js_link_close(l);
	nats_srv_kill(&s);
	rm_test_dir();
}

TEST(open_on_dead_url_returns_at_once_and_reports_down)
{
	struct js_link_opts o;
	struct js_link *l = NULL;
	struct js_result r;
	char urls[64], err[256];

	ASSERT_FALSE(nats_port_open(PORT_DEAD));
	default_opts(&o, urls, sizeof(urls), PORT_DEAD);
	ASSERT_EQ(0, js_link_open(&o, &l, err, sizeof(err)));
	ASSERT_EQ(0, wait_state(l, false));
	ASSERT_EQ(0, ensure(l, &r));
	EXPECT_EQ(JS_TRANSIENT, (int)r.cls);
	EXPECT_STREQ("not connected", r.detail);
	ASSERT_EQ(0, publish(l, "evt.h.kmod-0", "x", 0, "a", 1, &r));
	EXPECT_EQ(JS_TRANSIENT, (int)r.cls);
	ASSERT_EQ(0, last(l, "evt.h.kmod-0", &r));
	EXPECT_EQ(JS_TRANSIENT, (int)r.cls);
	js_link_close(l);

	EXPECT_EQ(-ECONNREFUSED, js_read_stream(&o, 1, none_cb, NULL, err, sizeof(err)));
	EXPECT_EQ(0, strncmp(err, "cannot connect to 'nats://127.0.0.1:14202': ",
			     strlen("cannot connect to 'nats://127.0.0.1:14202': ")))
		TH_LOG("%s", err);
}

TEST(bad_options_are_einval_with_the_reason)
{
	static const struct {
		const char *field, *value;
		unsigned long num;
		const char *msg;
	} cases[] = {
		{ "urls", "", 0, "jetstream: no server URLs" },
		{ "urls", " , ,", 0, "jetstream: no server URLs" },
		{ "stream", "", 0, "jetstream: bad stream name '' (1..63 of A-Z a-z 0-9 _ -)" },
		{ "stream", "A.B", 0, "jetstream: bad stream name 'A.B' (1..63 of A-Z a-z 0-9 _ -)" },
		{ "stream", "A B", 0, "jetstream: bad stream name 'A B' (1..63 of A-Z a-z 0-9 _ -)" },
		{ "prefix", "", 0, "jetstream: bad subject prefix '' (tokens without wildcards, at most 127 bytes)" },
		{ "prefix", "evt.>", 0, "jetstream: bad subject prefix 'evt.>' (tokens without wildcards, at most 127 bytes)" },
		{ "prefix", "evt.*.x", 0, "jetstream: bad subject prefix 'evt.*.x' (tokens without wildcards, at most 127 bytes)" },
		{ "prefix", ".evt", 0, "jetstream: bad subject prefix '.evt' (tokens without wildcards, at most 127 bytes)" },
		{ "prefix", "evt..x", 0, "jetstream: bad subject prefix 'evt..x' (tokens without wildcards, at most 127 bytes)" },
		{ "replicas", NULL, 0, "jetstream: replicas 0 out of range 1..5" },
		{ "replicas", NULL, 6, "jetstream: replicas 6 out of range 1..5" },
		{ "timeout", NULL, 0, "jetstream: timeout 0 ms out of range 1..600000" },
		{ "max_pending", NULL, 0, "jetstream: max_pending 0 out of range 1..65536" },
		{ "tls_cert", "/nonexistent.pem", 0, "jetstream: tls_cert and tls_key go together" },
	};
	struct js_link *l;
	char urls[64], err[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct js_link_opts o;

		default_opts(&o, urls, sizeof(urls), PORT_DEAD);
		if (!strcmp(cases[i].field, "urls"))
			o.urls = cases[i].value;
		else if (!strcmp(cases[i].field, "stream"))
			o.stream = cases[i].value;
		else if (!strcmp(cases[i].field, "prefix"))
			o.subject_prefix = cases[i].value;
		else if (!strcmp(cases[i].field, "replicas"))
			o.replicas = cases[i].num;
		else if (!strcmp(cases[i].field, "timeout"))
			o.timeout_ms = cases[i].num;
		else if (!strcmp(cases[i].field, "max_pending"))
			o.max_pending = cases[i].num;
		else if (!strcmp(cases[i].field, "tls_cert"))
			o.tls_cert = cases[i].value;
		l = (struct js_link *)POISON64;
		err[0] = 0;
		EXPECT_EQ(-EINVAL, js_link_open(&o, &l, err, sizeof(err)))
			TH_LOG("case %zu", i);
		EXPECT_STREQ(cases[i].msg, err);
		EXPECT_EQ((struct js_link *)POISON64, l);
	}
	{
		struct js_link_opts o;
		const char *pfx = "jetstream: bad TLS CA file: ";

		default_opts(&o, urls, sizeof(urls), PORT_DEAD);
		o.tls_ca = "/nonexistent/ca.pem";
		EXPECT_EQ(-EINVAL, js_link_open(&o, &l, err, sizeof(err)));
		EXPECT_EQ(0, strncmp(err, pfx, strlen(pfx))) TH_LOG("%s", err);
	}
	EXPECT_EQ(-EINVAL, js_link_open(NULL, &l, err, sizeof(err)));
	EXPECT_STREQ("jetstream: no options", err);
}

TEST(classification_table)
{
	static const struct {
		enum js_op op;
		int status, code;
		enum js_class cls;
	} rows[] = {
		{ JS_OP_PUBLISH, NATS_OK, 0, JS_OK },
		{ JS_OP_ENSURE, NATS_OK, 0, JS_OK },
		{ JS_OP_PUBLISH, NATS_ERR, 10071, JS_WRONG_LAST },
		{ JS_OP_LAST, NATS_NOT_FOUND, 10037, JS_NOT_FOUND },
		{ JS_OP_DELETE, NATS_ERR, 10057, JS_NOT_FOUND },
		{ JS_OP_DELETE, NATS_NOT_FOUND, 10037, JS_NOT_FOUND },
		{ JS_OP_DELETE, NATS_ERR, 10043, JS_NOT_FOUND },
		{ JS_OP_ENSURE, NATS_NOT_FOUND, 10059, JS_PERMANENT },
		{ JS_OP_LAST, NATS_NOT_FOUND, 10059, JS_PERMANENT },
		{ JS_OP_DELETE, NATS_NOT_FOUND, 10059, JS_PERMANENT },
		{ JS_OP_ENSURE, NATS_ERR, 10005, JS_TRANSIENT },
		{ JS_OP_ENSURE, NATS_ERR, 10008, JS_TRANSIENT },
		{ JS_OP_LAST, NATS_ERR, 10009, JS_TRANSIENT },
		{ JS_OP_PUBLISH, NATS_ERR, 10118, JS_TRANSIENT },
		{ JS_OP_PUBLISH, NATS_ERR, 10077, JS_TRANSIENT },
		{ JS_OP_PUBLISH, NATS_ERR, 10047, JS_TRANSIENT },
		{ JS_OP_PUBLISH, NATS_ERR, 10054, JS_PERMANENT },
		{ JS_OP_ENSURE, NATS_ERR, 10074, JS_PERMANENT },
		{ JS_OP_ENSURE, NATS_ERR, 10065, JS_PERMANENT },
		{ JS_OP_ENSURE, NATS_ERR, 10076, JS_PERMANENT },
		{ JS_OP_PUBLISH, NATS_TIMEOUT, 0, JS_AMBIGUOUS },
		{ JS_OP_ENSURE, NATS_TIMEOUT, 0, JS_TRANSIENT },
		{ JS_OP_LAST, NATS_TIMEOUT, 0, JS_TRANSIENT },
		{ JS_OP_DELETE, NATS_TIMEOUT, 0, JS_TRANSIENT },
		{ JS_OP_PUBLISH, NATS_NO_RESPONDERS, 0, JS_TRANSIENT },
		{ JS_OP_ENSURE, NATS_NO_RESPONDERS, 0, JS_TRANSIENT },
		{ JS_OP_PUBLISH, NATS_NOT_YET_CONNECTED, 0, JS_TRANSIENT },
		{ JS_OP_LAST, NATS_NOT_YET_CONNECTED, 0, JS_TRANSIENT },
		{ JS_OP_PUBLISH, NATS_CONNECTION_CLOSED, 0, JS_TRANSIENT },
		{ JS_OP_PUBLISH, NATS_INSUFFICIENT_BUFFER, 0, JS_TRANSIENT },
		{ JS_OP_PUBLISH, NATS_CONNECTION_DISCONNECTED, 0, JS_AMBIGUOUS },
		{ JS_OP_PUBLISH, NATS_IO_ERROR, 0, JS_AMBIGUOUS },
		{ JS_OP_PUBLISH, NATS_STALE_CONNECTION, 0, JS_AMBIGUOUS },
		{ JS_OP_LAST, NATS_CONNECTION_DISCONNECTED, 0, JS_TRANSIENT },
		{ JS_OP_ENSURE, NATS_IO_ERROR, 0, JS_TRANSIENT },
		{ JS_OP_PUBLISH, NATS_MAX_PAYLOAD, 0, JS_PERMANENT },
		{ JS_OP_PUBLISH, NATS_NOT_PERMITTED, 0, JS_PERMANENT },
		{ JS_OP_ENSURE, NATS_NOT_PERMITTED, 0, JS_PERMANENT },
		{ JS_OP_PUBLISH, NATS_CONNECTION_AUTH_FAILED, 0, JS_PERMANENT },
		{ JS_OP_PUBLISH, NATS_INVALID_SUBJECT, 0, JS_PERMANENT },
		{ JS_OP_PUBLISH, NATS_NO_MEMORY, 0, JS_TRANSIENT },
		{ JS_OP_PUBLISH, NATS_ERR, 19999, JS_TRANSIENT },
		{ JS_OP_PUBLISH, NATS_SSL_ERROR, 0, JS_AMBIGUOUS },
		{ JS_OP_ENSURE, NATS_SSL_ERROR, 0, JS_TRANSIENT },
		{ JS_OP_ENSURE, NATS_ERR, 19999, JS_TRANSIENT },
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		EXPECT_EQ(rows[i].cls, js_classify(rows[i].op, rows[i].status,
						   rows[i].code)) {
			TH_LOG("row %zu: op %d status %d code %d", i, rows[i].op,
			       rows[i].status, rows[i].code);
		}
	}

	EXPECT_STREQ("ok", js_class_name(JS_OK));
	EXPECT_STREQ("duplicate", js_class_name(JS_DUPLICATE));
	EXPECT_STREQ("wrong-last", js_class_name(JS_WRONG_LAST));
	EXPECT_STREQ("ambiguous", js_class_name(JS_AMBIGUOUS));
	EXPECT_STREQ("transient", js_class_name(JS_TRANSIENT));
	EXPECT_STREQ("permanent", js_class_name(JS_PERMANENT));
	EXPECT_STREQ("not-found", js_class_name(JS_NOT_FOUND));
	EXPECT_STREQ("unknown", js_class_name(99));
}

FIXTURE(cluster) {
	struct nats_srv s[3];
	struct js_link *l;
};

FIXTURE_SETUP(cluster)
{
	char name[8];

	for (int i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "c%d", i);
		ASSERT_EQ(0, srv_config(&self->s[i], name, PORT_CLUSTER + i, 0,
					PORT_ROUTE + i));
	}
	for (int i = 0; i < 3; i++)
		ASSERT_EQ(0, nats_srv_start(&self->s[i]));
}

FIXTURE_TEARDOWN(cluster)
{
	js_link_close(self->l);
	for (int i = 0; i < 3; i++)
		nats_srv_kill(&self->s[i]);
	rm_test_dir();
}

TEST_F_TIMEOUT(cluster, r3_stream_on_three_nodes_is_durable, 90)
{
	struct js_link_opts o;
	struct js_result r;
	char urls[128], err[256];

	default_opts(&o, urls, sizeof(urls), PORT_CLUSTER);
	snprintf(urls, sizeof(urls), "nats://127.0.0.1:%d,nats://127.0.0.1:%d,"
		 "nats://127.0.0.1:%d", PORT_CLUSTER, PORT_CLUSTER + 1,
		 PORT_CLUSTER + 2);
	o.replicas = 3;
	ASSERT_EQ(0, js_link_open(&o, &self->l, err, sizeof(err)));
	ASSERT_EQ(0, wait_state(self->l, true));
	/* until the meta leader is elected ENSURE is transient */
	ASSERT_EQ(0, ensure_retry(self->l, &r, 20000));
	ASSERT_EQ(JS_OK, (int)r.cls) TH_LOG("%s", r.detail);
	EXPECT_TRUE(r.created);
	EXPECT_EQ(3u, r.replicas);
	EXPECT_TRUE(r.durable);
	ASSERT_EQ(0, publish(self->l, "evt.h.kmod-0", "id1", 0, "a", 1, &r));
	if (r.cls == JS_TRANSIENT) {	/* the stream's own leader election */
		sleep_ms(1000);
		ASSERT_EQ(0, publish(self->l, "evt.h.kmod-0", "id1", 0, "a", 1, &r));
	}
	EXPECT_EQ(JS_OK, (int)r.cls) TH_LOG("%s", r.detail);
	EXPECT_EQ(1u, r.stream_seq);
	/* the expected-0 check holds on a clustered stream too */
	ASSERT_EQ(0, publish(self->l, "evt.h.kmod-0", "id2", 0, "b", 1, &r));
	EXPECT_EQ(JS_WRONG_LAST, (int)r.cls) TH_LOG("%s", r.detail);
	EXPECT_EQ(10071, r.js_code);
}

TEST_HARNESS_MAIN
