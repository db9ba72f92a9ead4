// SPDX-License-Identifier: GPL-2.0-only
/*
 * consume_test: `evringctl consume` (daemon/consume.h, docs/OPERATING.md
 * "Reading a region's stream") against a real nats-server.
 *
 * Each test starts its own `nats-server -js` on 127.0.0.1 (ports 14500..
 * 14598; 14599 is the "dead" region, where nothing listens), makes its
 * streams and publishes batches made with batch_encode() through the
 * daemon's own adapter (js_link_open, JS_OP_ENSURE, JS_OP_PUBLISH), then
 * runs build/bin/evringctl ($EVRINGCTL overrides) against a config file
 * and checks its stdout lines, its last stderr line and its exit status.
 * Scratch files live under /tmp/verify-consume/.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/evring.h>

#include "batch.h"
#include "jetstream.h"
#include "kselftest_harness.h"
#include "nats_server.h"

#define NATS_SERVER	"/usr/sbin/nats-server"
#define SCRATCH		"/tmp/verify-consume"
#define PORT_BASE	14500
#define PORT_DEAD	14599
#define HOST		"web-01"
#define EPOCH		0x8000000000000001ull
#define EPOCH_HEX	"8000000000000001"
#define PART		3
#define OUT_MAX		(1u << 20)

/* --- a nats-server of our own ---------------------------------------- */

/* A port of ours nothing listens on: one per test process. */
static int pick_port(void)
{
	return nats_port_free(PORT_BASE, PORT_BASE + 97, getpid());
}

/* `nats-server -js` on @port, its store and log in @dir: its pid or -errno. */
static pid_t nats_start(const char *dir, int port)
{
	struct nats_srv s;
	int ret;

	nats_srv_init(&s, dir, "nats", port);
	snprintf(s.store, sizeof(s.store), "%s/js", dir);
	s.conf[0] = '\0';		/* command line flags only */
	ret = nats_srv_start(&s);
	return ret ? ret : s.pid;
}

/* --- publishing with the daemon's adapter ---------------------------- */

static int wait_result(struct js_link *l, uint64_t tag, struct js_result *res)
{
	/* Bounded: 200 x 50 ms of nothing pending. */
	for (int i = 0; i < 200;) {
		struct pollfd p = { .fd = js_link_fd(l), .events = POLLIN };

		while (js_link_poll(l, res) == 0)
			if (res->op != JS_OP_STATE && res->tag == tag)
				return 0;
		if (poll(&p, 1, 50) == 0)
			i++;
	}
	return -ETIMEDOUT;
}

static int link_open(int port, const char *stream, const char *prefix,
		     struct js_link **out)
{
	char urls[64], err[256];
	struct js_link_opts o = {
		.region = "test",
		.urls = urls,
		.stream = stream,
		.subject_prefix = prefix,
		.replicas = 1,
		.create_stream = true,
		.timeout_ms = 5000,
		.max_pending = 16,
	};
	struct js_req req = { .op = JS_OP_ENSURE, .tag = 1 };
	struct js_result res;
	int ret;

	snprintf(urls, sizeof(urls), "nats://127.0.0.1:%d", port);
	ret = js_link_open(&o, out, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "js_link_open: %s\n", err);
		return ret;
	}
	ret = js_link_submit(*out, &req);
	if (!ret)
		ret = wait_result(*out, 1, &res);
	if (!ret && res.cls != JS_OK) {
		fprintf(stderr, "ensure: %s %s\n", js_class_name(res.cls),
			res.detail);
		ret = -EIO;
	}
	return ret;
}

/* One stream's publisher: the link and the last seq of our subject. */
struct pub {
	struct js_link *l;
	const char *prefix;
	uint64_t last;		/* stream seq of the subject's last message */
	uint64_t tag;
};

/* Publish @req on "<prefix>.HOST.PART"; returns the stream seq. */
static int publish_req(struct pub *p, struct js_req *req, uint64_t *stream_seq)
{
	struct js_result res;
	int ret;

	req->op = JS_OP_PUBLISH;
	req->tag = ++p->tag + 100;
	req->expect_last_subject_seq = p->last;
	snprintf(req->subject, sizeof(req->subject), "%s.%s.%d", p->prefix,
		 HOST, PART);
	ret = js_link_submit(p->l, req);
	if (!ret)
		ret = wait_result(p->l, req->tag, &res);
	if (ret)
		return ret;
	if (res.cls != JS_OK) {
		fprintf(stderr, "publish %s: %s %s\n", req->msg_id,
			js_class_name(res.cls), res.detail);
		return -EIO;
	}
	p->last = res.stream_seq;
	if (stream_seq)
		*stream_seq = res.stream_seq;
	return 0;
}

/* Publish @len bytes at @data with @msg_id: a batch (or junk). */
static int publish(struct pub *p, const char *msg_id, const void *data,
		   size_t len, uint64_t *stream_seq)
{
	struct js_req req = {
		.data = data,
		.len = len,
		.nhdr = 2,
		.hdr_name = { JS_HDR_HOST, JS_HDR_FORMAT },
		.hdr_value = { HOST, "EVB1" },
	};

	snprintf(req.msg_id, sizeof(req.msg_id), "%s", msg_id);
	return publish_req(p, &req, stream_seq);
}

/*
 * A dead-letter marker for [first, first + count) of HOST/socket-PART/
 * EPOCH, as daemon/ship.c (msg_build) publishes it: empty body, message
 * id "HOST/socket-PART/EPOCH/FIRST/dead" with EPOCH in decimal, the
 * Evring-* headers and Evring-Dead-Letter: @reason.  @bad_name, when
 * set, names a header that is left out (@bad_value NULL) or sent with
 * @bad_value instead.
 */
static int pub_marker(struct pub *p, uint64_t first, uint32_t count,
		      const char *reason, const char *bad_name,
		      const char *bad_value)
{
	char part[16], epoch[24], fs[24], cnt[16];
	struct js_req req = {
		.data = "",
		.len = 0,
		.hdr_name = { JS_HDR_HOST, JS_HDR_SOURCE, JS_HDR_PARTITION,
			      JS_HDR_EPOCH, JS_HDR_FIRST_SEQ, JS_HDR_COUNT,
			      JS_HDR_FORMAT, JS_HDR_DEAD_LETTER },
		.hdr_value = { HOST, "socket", part, epoch, fs, cnt, "EVB1",
			       reason },
	};
	unsigned int n = 0;

	snprintf(part, sizeof(part), "%d", PART);
	snprintf(epoch, sizeof(epoch), "%" PRIu64, (uint64_t)EPOCH);
	snprintf(fs, sizeof(fs), "%" PRIu64, first);
	snprintf(cnt, sizeof(cnt), "%" PRIu32, count);
	/* a bad marker gets an id of its own, or the stream drops it */
	snprintf(req.msg_id, sizeof(req.msg_id), "%s/socket-%d/%s/%s/dead",
		 HOST, PART, epoch, fs);
	if (bad_name)
		snprintf(req.msg_id + strlen(req.msg_id),
			 sizeof(req.msg_id) - strlen(req.msg_id), "/%s=%s",
			 bad_name, bad_value ? bad_value : "(none)");
	for (unsigned int i = 0; i < 8; i++) {
		const char *v = req.hdr_value[i];

		if (bad_name && !strcmp(bad_name, req.hdr_name[i])) {
			if (!bad_value)
				continue;
			v = bad_value;
		}
		req.hdr_name[n] = req.hdr_name[i];
		req.hdr_value[n++] = v;
	}
	req.nhdr = n;
	return publish_req(p, &req, NULL);
}

/*
 * A batch of HOST/socket-PART/EPOCH [first, first + count) whose record
 * payloads are "event <seq>", with one loss entry when @loss_n > 0.
 */
static void *mk_batch(uint64_t first, uint32_t count, uint64_t loss_first,
		      uint64_t loss_n, size_t *len)
{
	struct batch_meta m = {
		.source = BATCH_SRC_SOCKET, .partition = PART, .epoch = EPOCH,
		.first_seq = first, .count = count, .host_id = HOST,
	};
	struct batch_loss l = {
		.source = BATCH_SRC_SOCKET, .partition = PART, .epoch = EPOCH,
		.first_seq = loss_first, .last_seq = loss_first + loss_n - 1,
		.reason = "epoch_change",
	};
	unsigned char *recs = calloc(count ? count : 1, EVRING_REC_SIZE(32));
	size_t off = 0;
	void *out = NULL;

	if (!recs)
		return NULL;
	for (uint32_t i = 0; i < count; i++) {
		struct evring_rec r = {
			.seq = first + i,
			.ts_ns = 1700000000000000000ull + first + i,
			.pid = 4242,
			.uid = 1000,
		};
		char text[32];

		r.len = snprintf(text, sizeof(text), "event %llu", r.seq);
		memcpy(recs + off, &r, sizeof(r));
		memcpy(recs + off + sizeof(r), text, r.len);
		off += EVRING_REC_SIZE(r.len);
	}
	if (batch_encode(&m, recs, off, &l, loss_n ? 1 : 0, BATCH_COMP_ZSTD,
			 &out, len))
		out = NULL;
	free(recs);
	return out;
}

static int pub_batch(struct pub *p, uint64_t first, uint32_t count,
		     uint64_t loss_first, uint64_t loss_n, const char *id_sfx)
{
	char id[JS_MSGID_MAX];
	size_t len;
	void *b = mk_batch(first, count, loss_first, loss_n, &len);
	int ret;

	if (!b)
		return -ENOMEM;
	snprintf(id, sizeof(id), "%s/socket-%d/%s/%" PRIu64 "%s", HOST, PART,
		 EPOCH_HEX, first, id_sfx);
	ret = publish(p, id, b, len, NULL);
	free(b);
	return ret;
}

/* --- running evringctl consume --------------------------------------- */

/* build/bin/evringctl next to this binary's build/selftests/ship/. */
static const char *evringctl_path(void)
{
	static char path[PATH_MAX];
	char self[PATH_MAX];
	ssize_t n;

	if (getenv("EVRINGCTL"))
		return getenv("EVRINGCTL");
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0)
		return NULL;
	self[n] = '\0';
	*strrchr(self, '/') = '\0';
	snprintf(path, sizeof(path), "%s/../../bin/evringctl", self);
	return path;
}

struct run {
	int status;			/* exit status, or -1: killed */
	char out[OUT_MAX];		/* stdout */
	char err[64 << 10];		/* stderr */
	char last[512];			/* stderr's last line */
	int lines;			/* stdout lines */
};

static void slurp(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? 0 : read(fd, buf, len - 1);

	buf[n > 0 ? n : 0] = '\0';
	if (fd >= 0)
		close(fd);
}

/* Run `evringctl consume ARGS...` (NULL-terminated). */
static int run_consume(const char *dir, struct run *r, ...)
{
	char outp[PATH_MAX], errp[PATH_MAX];
	const char *argv[32] = { evringctl_path(), "consume" };
	int argc = 2, wst;
	va_list ap;
	pid_t pid;
	char *nl;

	va_start(ap, r);
	while (argc < 31 && (argv[argc] = va_arg(ap, const char *)))
		argc++;
	va_end(ap);
	argv[argc] = NULL;
	snprintf(outp, sizeof(outp), "%s/stdout", dir);
	snprintf(errp, sizeof(errp), "%s/stderr", dir);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int o = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int e = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
			_exit(127);
		execv(argv[0], (char **)argv);
		_exit(127);
	}
	if (waitpid(pid, &wst, 0) != pid)
		return -errno;
	r->status = WIFEXITED(wst) ? WEXITSTATUS(wst) : -1;
	slurp(outp, r->out, sizeof(r->out));
	slurp(errp, r->err, sizeof(r->err));
	r->lines = 0;
	for (const char *p = r->out; (p = strchr(p, '\n')); p++)
		r->lines++;
	r->last[0] = '\0';
	nl = r->err + strlen(r->err);
	if (nl > r->err && nl[-1] == '\n')
		*--nl = '\0';
	nl = strrchr(r->err, '\n');
	snprintf(r->last, sizeof(r->last), "%s", nl ? nl + 1 : r->err);
	return 0;
}

/* --- the fixture ----------------------------------------------------- */

FIXTURE(consume) {
	char dir[PATH_MAX];
	char conf[PATH_MAX];
	int port;
	pid_t nats;
	struct pub a, b;
	struct run *r;
};

FIXTURE_SETUP(consume)
{
	char urls[64];
	FILE *f;

	ASSERT_EQ(0, access(NATS_SERVER, X_OK)) TH_LOG("no %s", NATS_SERVER);
	ASSERT_EQ(0, access(evringctl_path(), X_OK))
		TH_LOG("evringctl not built: %s", evringctl_path());
	mkdir(SCRATCH, 0700);
	snprintf(self->dir, sizeof(self->dir), SCRATCH "/consume.%d",
		 getpid());
	ASSERT_EQ(0, mkdir(self->dir, 0700));
	self->port = pick_port();
	ASSERT_LT(0, self->port);
	self->nats = nats_start(self->dir, self->port);
	ASSERT_LT(0, self->nats) TH_LOG("nats-server: %s",
					strerror(-self->nats));
	self->r = calloc(1, sizeof(*self->r));
	ASSERT_NE(NULL, self->r);

	snprintf(urls, sizeof(urls), "nats://127.0.0.1:%d", self->port);
	snprintf(self->conf, sizeof(self->conf), "%s/evringd.conf",
		 self->dir);
	f = fopen(self->conf, "w");
	ASSERT_NE(NULL, f);
	fprintf(f, "[host]\nid = consume-test\n\n"
		"[region a]\nurls = %s\nstream = EVA\nsubject_prefix = eva\n"
		"replicas = 1\n\n"
		"[region b]\nurls = %s\nstream = EVB\nsubject_prefix = evb\n"
		"replicas = 1\n\n"
		"[region dead]\nurls = nats://127.0.0.1:%d\nstream = EVA\n"
		"subject_prefix = eva\nreplicas = 1\n",
		urls, urls, PORT_DEAD);
	ASSERT_EQ(0, fclose(f));

	self->a.prefix = "eva";
	self->b.prefix = "evb";
	ASSERT_EQ(0, link_open(self->port, "EVA", "eva", &self->a.l));
	ASSERT_EQ(0, link_open(self->port, "EVB", "evb", &self->b.l));
}

FIXTURE_TEARDOWN(consume)
{
	char cmd[PATH_MAX + 16];

	js_link_close(self->a.l);
	js_link_close(self->b.l);
	if (self->nats > 0) {
		kill(self->nats, SIGTERM);
		waitpid(self->nats, NULL, 0);
	}
	free(self->r);
	if (self->dir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", self->dir);
		if (system(cmd))
			TH_LOG("cannot remove %s", self->dir);
	}
}

#define CONSUME(...) \
	ASSERT_EQ(0, run_consume(self->dir, self->r, "--config", self->conf, \
				 __VA_ARGS__, (const char *)NULL))

/* --- tests ----------------------------------------------------------- */

TEST_F(consume, clean_stream_prints_every_event_and_verdict_ok)
{
	const char *first =
		"{\"region\":\"a\",\"stream_seq\":1,\"host\":\"web-01\","
		"\"source\":\"socket\",\"partition\":3,"
		"\"epoch\":\"8000000000000001\",\"seq\":1,"
		"\"ts_ns\":1700000000000000001,\"pid\":4242,\"uid\":1000,"
		"\"len\":7,\"data\":\"event 1\"}\n";

	ASSERT_EQ(0, pub_batch(&self->a, 1, 10, 0, 0, ""));
	ASSERT_EQ(0, pub_batch(&self->a, 11, 10, 0, 0, ""));
	ASSERT_EQ(0, pub_batch(&self->a, 21, 10, 0, 0, ""));
	CONSUME("--region", "a");
	ASSERT_EQ(0, self->r->status) TH_LOG("%s", self->r->err);
	ASSERT_EQ(30, self->r->lines);
	ASSERT_EQ(0, strncmp(first, self->r->out, strlen(first)))
		TH_LOG("%.300s", self->r->out);
	ASSERT_NE(NULL, strstr(self->r->out,
		"\"stream_seq\":3,\"host\":\"web-01\",\"source\":\"socket\","
		"\"partition\":3,\"epoch\":\"8000000000000001\",\"seq\":30,"));
	ASSERT_STREQ("consume: 30 events in 3 batches from 1 region(s); "
		     "duplicates 0; gaps 0 (explained 0); dead-lettered 0; "
		     "verdict ok", self->r->last);

	/* --format none: the verdict only. */
	CONSUME("--region", "a", "--format", "none");
	ASSERT_EQ(0, self->r->status);
	ASSERT_EQ(0, self->r->lines);
	ASSERT_STREQ("", self->r->out);

	/* --from: stream seqs 2.. only. */
	CONSUME("--region", "a", "--from", "2");
	ASSERT_EQ(0, self->r->status);
	ASSERT_EQ(20, self->r->lines);
}

TEST_F(consume, same_batch_twice_is_duplicates_and_fail)
{
	ASSERT_EQ(0, pub_batch(&self->a, 1, 10, 0, 0, ""));
	ASSERT_EQ(0, pub_batch(&self->a, 11, 10, 0, 0, ""));
	/* another message id, so JetStream keeps both */
	ASSERT_EQ(0, pub_batch(&self->a, 11, 10, 0, 0, "/again"));
	CONSUME("--region", "a", "--format", "none");
	ASSERT_EQ(1, self->r->status);
	ASSERT_STREQ("consume: 30 events in 3 batches from 1 region(s); "
		     "duplicates 10; gaps 0 (explained 0); dead-lettered 0; "
		     "verdict FAIL", self->r->last);
	ASSERT_NE(NULL, strstr(self->r->err,
		"consume: duplicate web-01/socket-3/8000000000000001 seqs "
		"11-20 (region 'a' stream seq 3)\n")) TH_LOG("%s", self->r->err);
}

TEST_F(consume, missing_range_is_a_gap_and_fail)
{
	ASSERT_EQ(0, pub_batch(&self->a, 1, 10, 0, 0, ""));
	ASSERT_EQ(0, pub_batch(&self->a, 21, 10, 0, 0, ""));
	CONSUME("--region", "a", "--format", "none");
	ASSERT_EQ(1, self->r->status);
	ASSERT_STREQ("consume: 20 events in 2 batches from 1 region(s); "
		     "duplicates 0; gaps 1 (explained 0); dead-lettered 0; "
		     "verdict FAIL", self->r->last);
	ASSERT_NE(NULL, strstr(self->r->err,
		"consume: gap web-01/socket-3/8000000000000001 seqs 11-20\n"));
}

TEST_F(consume, gap_in_the_ledger_is_explained_and_ok)
{
	ASSERT_EQ(0, pub_batch(&self->a, 1, 10, 0, 0, ""));
	ASSERT_EQ(0, pub_batch(&self->a, 21, 10, 11, 10, ""));
	CONSUME("--region", "a", "--format", "none");
	ASSERT_EQ(0, self->r->status) TH_LOG("%s", self->r->err);
	ASSERT_STREQ("consume: 20 events in 2 batches from 1 region(s); "
		     "duplicates 0; gaps 1 (explained 1); dead-lettered 0; "
		     "verdict ok", self->r->last);
	ASSERT_NE(NULL, strstr(self->r->err,
		"consume: ledger web-01/socket-3/8000000000000001 seqs 11-20: "
		"epoch_change\n"));
}

TEST_F(consume, dead_letter_marker_explains_its_range)
{
	ASSERT_EQ(0, pub_batch(&self->a, 1, 10, 0, 0, ""));
	ASSERT_EQ(0, pub_marker(&self->a, 11, 10, "max_payload", NULL, NULL));
	ASSERT_EQ(0, pub_batch(&self->a, 21, 10, 0, 0, ""));
	CONSUME("--region", "a");
	ASSERT_EQ(0, self->r->status) TH_LOG("%s", self->r->err);
	ASSERT_EQ(21, self->r->lines);
	ASSERT_NE(NULL, strstr(self->r->out,
		"\n{\"region\":\"a\",\"stream_seq\":2,"
		"\"dead_letter\":\"max_payload\",\"host\":\"web-01\","
		"\"source\":\"socket\",\"partition\":3,"
		"\"epoch\":\"8000000000000001\",\"first_seq\":11,"
		"\"count\":10}\n")) TH_LOG("%.3000s", self->r->out);
	ASSERT_STREQ("consume: 20 events in 2 batches from 1 region(s); "
		     "duplicates 0; gaps 1 (explained 1); dead-lettered 10; "
		     "verdict ok", self->r->last);

	/* The replay arrives late and fills the marker's range. */
	ASSERT_EQ(0, pub_batch(&self->a, 11, 10, 0, 0, ""));
	CONSUME("--region", "a", "--format", "none");
	ASSERT_EQ(0, self->r->status) TH_LOG("%s", self->r->err);
	ASSERT_STREQ("consume: 30 events in 3 batches from 1 region(s); "
		     "duplicates 0; gaps 0 (explained 0); dead-lettered 10; "
		     "verdict ok", self->r->last);
}

TEST_F(consume, corrupt_body_is_reported_with_its_stream_seq)
{
	static const char junk[] = "garbage, not a batch";
	void *b;
	size_t len;

	ASSERT_EQ(0, pub_batch(&self->a, 1, 10, 0, 0, ""));
	ASSERT_EQ(0, publish(&self->a, "junk", junk, sizeof(junk), NULL));
	/* a real batch with one payload bit flipped: the checksum fails */
	b = mk_batch(11, 10, 0, 0, &len);
	ASSERT_NE(NULL, b);
	((unsigned char *)b)[len - 3] ^= 0x10;
	ASSERT_EQ(0, publish(&self->a, "flipped", b, len, NULL));
	free(b);
	ASSERT_EQ(0, pub_batch(&self->a, 11, 10, 0, 0, ""));
	CONSUME("--region", "a", "--format", "none");
	ASSERT_EQ(1, self->r->status);
	ASSERT_NE(NULL, strstr(self->r->err,
		"consume: region 'a' stream seq 2: corrupt batch: Bad message\n"))
		TH_LOG("%s", self->r->err);
	ASSERT_NE(NULL, strstr(self->r->err,
		"consume: region 'a' stream seq 3: corrupt batch: Bad message\n"));
	ASSERT_NE(NULL, strstr(self->r->err, "consume: 2 corrupt message(s)\n"));
	ASSERT_STREQ("consume: 20 events in 2 batches from 1 region(s); "
		     "duplicates 0; gaps 0 (explained 0); dead-lettered 0; "
		     "verdict FAIL", self->r->last);
}

/*
 * A marker whose headers do not name a range is corrupt: reported with
 * its stream seq and the first header at fault; its range stays a gap.
 */
TEST_F(consume, corrupt_marker_headers_fail)
{
	static const struct {
		const char *name, *value, *what;
	} bad[] = {
		{ JS_HDR_HOST, NULL, "missing Evring-Host header" },
		{ JS_HDR_HOST, "a-host-id-longer-than-32-characters",
		  "bad Evring-Host 'a-host-id-longer-than-32-characters'" },
		{ JS_HDR_SOURCE, NULL, "missing Evring-Source header" },
		{ JS_HDR_SOURCE, "1", "bad Evring-Source '1'" },
		{ JS_HDR_PARTITION, NULL, "missing Evring-Partition header" },
		{ JS_HDR_PARTITION, "4294967296",
		  "bad Evring-Partition '4294967296'" },
		{ JS_HDR_EPOCH, NULL, "missing Evring-Epoch header" },
		/* hex, as an old marker's JSON body had it */
		{ JS_HDR_EPOCH, "0x8000000000000001",
		  "bad Evring-Epoch '0x8000000000000001'" },
		{ JS_HDR_EPOCH, "18446744073709551616",
		  "bad Evring-Epoch '18446744073709551616'" },
		{ JS_HDR_FIRST_SEQ, NULL, "missing Evring-First-Seq header" },
		{ JS_HDR_FIRST_SEQ, "0", "bad Evring-First-Seq '0'" },
		{ JS_HDR_FIRST_SEQ, "-11", "bad Evring-First-Seq '-11'" },
		{ JS_HDR_COUNT, NULL, "missing Evring-Count header" },
		{ JS_HDR_COUNT, "0", "bad Evring-Count '0'" },
		{ JS_HDR_COUNT, "ten", "bad Evring-Count 'ten'" },
		{ JS_HDR_FIRST_SEQ, "18446744073709551615",
		  "Evring-First-Seq 18446744073709551615 and Evring-Count 10 "
		  "wrap around" },
	};
	const unsigned int n = sizeof(bad) / sizeof(bad[0]);
	char want[256], last[128];

	ASSERT_EQ(0, pub_batch(&self->a, 1, 10, 0, 0, ""));
	for (unsigned int i = 0; i < n; i++) {
		ASSERT_EQ(0, pub_marker(&self->a, 11, 10, "why", bad[i].name,
					bad[i].value));
	}
	ASSERT_EQ(0, pub_batch(&self->a, 21, 10, 0, 0, ""));
	CONSUME("--region", "a");
	ASSERT_EQ(1, self->r->status);
	ASSERT_EQ(20, self->r->lines) TH_LOG("%.2000s", self->r->out);
	for (unsigned int i = 0; i < n; i++) {
		snprintf(want, sizeof(want),
			 "consume: region 'a' stream seq %u: corrupt "
			 "dead-letter marker: %s\n", i + 2, bad[i].what);
		EXPECT_NE(NULL, strstr(self->r->err, want))
			TH_LOG("case %u: want %s in %s", i, want, self->r->err);
	}
	snprintf(last, sizeof(last), "consume: %u corrupt message(s)\n", n);
	ASSERT_NE(NULL, strstr(self->r->err, last)) TH_LOG("%s", self->r->err);
	ASSERT_NE(NULL, strstr(self->r->err,
		"consume: gap web-01/socket-3/8000000000000001 seqs 11-20\n"));
	ASSERT_STREQ("consume: 20 events in 2 batches from 1 region(s); "
		     "duplicates 0; gaps 1 (explained 0); dead-lettered 0; "
		     "verdict FAIL", self->r->last);
}

/*
 * A blank header value cannot be sent (libnats 3.4.1 would read it back
 * as the next header's line): the adapter refuses it, nothing is stored.
 */
TEST_F(consume, blank_marker_header_is_refused_at_submit)
{
	ASSERT_EQ(-EINVAL, pub_marker(&self->a, 11, 10, "", NULL, NULL));
	ASSERT_EQ(-EINVAL, pub_marker(&self->a, 11, 10, " \t", NULL, NULL));
	ASSERT_EQ(-EINVAL, pub_marker(&self->a, 11, 10, "why", JS_HDR_HOST,
				      ""));
	ASSERT_EQ(0u, self->a.last);
	CONSUME("--region", "a");
	ASSERT_EQ(0, self->r->status) TH_LOG("%s", self->r->err);
	ASSERT_EQ(0, self->r->lines);
}

TEST_F(consume, union_of_regions_each_batch_once)
{
	ASSERT_EQ(0, pub_batch(&self->a, 1, 10, 0, 0, ""));
	ASSERT_EQ(0, pub_batch(&self->b, 11, 10, 0, 0, ""));
	ASSERT_EQ(0, pub_batch(&self->a, 21, 10, 0, 0, ""));
	CONSUME("--region", "a", "--region", "b");
	ASSERT_EQ(0, self->r->status) TH_LOG("%s", self->r->err);
	ASSERT_EQ(30, self->r->lines);
	ASSERT_NE(NULL, strstr(self->r->out, "{\"region\":\"b\",\"stream_seq\":1,"));
	ASSERT_STREQ("consume: 30 events in 3 batches from 2 region(s); "
		     "duplicates 0; gaps 0 (explained 0); dead-lettered 0; "
		     "verdict ok", self->r->last);

	/* Each region alone has a gap. */
	CONSUME("--region", "a", "--format", "none");
	ASSERT_EQ(1, self->r->status);

	/* The same batch in both regions is a duplicate of the union. */
	ASSERT_EQ(0, pub_batch(&self->b, 21, 10, 0, 0, ""));
	CONSUME("--region", "a", "--region", "b", "--format", "none");
	ASSERT_EQ(1, self->r->status);
	ASSERT_STREQ("consume: 40 events in 4 batches from 2 region(s); "
		     "duplicates 10; gaps 0 (explained 0); dead-lettered 0; "
		     "verdict FAIL", self->r->last);
	ASSERT_NE(NULL, strstr(self->r->err,
		"seqs 21-30 (region 'b' stream seq 2)\n"));
}

TEST_F(consume, expect_finds_what_never_arrived)
{
	ASSERT_EQ(0, pub_batch(&self->a, 1, 10, 0, 0, ""));
	CONSUME("--region", "a", "--format", "none",
		"--expect", "web-01/socket-3/8000000000000001/1-10");
	ASSERT_EQ(0, self->r->status) TH_LOG("%s", self->r->err);
	CONSUME("--region", "a", "--format", "none",
		"--expect", "web-01/socket-3/8000000000000001/1-15");
	ASSERT_EQ(1, self->r->status);
	ASSERT_NE(NULL, strstr(self->r->err,
		"consume: lost web-01/socket-3/8000000000000001 seqs 11-15\n"));
	ASSERT_STREQ("consume: 10 events in 1 batches from 1 region(s); "
		     "duplicates 0; gaps 1 (explained 0); dead-lettered 0; "
		     "verdict FAIL", self->r->last);
}

TEST_F(consume, binary_payload_is_base64)
{
	struct batch_meta m = {
		.source = BATCH_SRC_SOCKET, .partition = PART, .epoch = EPOCH,
		.first_seq = 1, .count = 2, .host_id = HOST,
	};
	unsigned char recs[2 * EVRING_REC_SIZE(8)] = { 0 };
	struct evring_rec r = { .len = 4, .seq = 1 };
	void *b;
	size_t len;

	memcpy(recs, &r, sizeof(r));
	memcpy(recs + sizeof(r), "a\0bc", 4);		/* a NUL */
	r.seq = 2;
	r.len = 3;
	memcpy(recs + EVRING_REC_SIZE(4), &r, sizeof(r));
	memcpy(recs + EVRING_REC_SIZE(4) + sizeof(r), "\xff\xfe\x41", 3);
	ASSERT_EQ(0, batch_encode(&m, recs, EVRING_REC_SIZE(4) +
				  EVRING_REC_SIZE(3), NULL, 0,
				  BATCH_COMP_NONE, &b, &len));
	ASSERT_EQ(0, publish(&self->a, "bin", b, len, NULL));
	free(b);
	CONSUME("--region", "a");
	ASSERT_EQ(0, self->r->status) TH_LOG("%s", self->r->err);
	ASSERT_NE(NULL, strstr(self->r->out, "\"len\":4,\"data_b64\":\"YQBiYw==\"}\n"))
		TH_LOG("%s", self->r->out);
	ASSERT_NE(NULL, strstr(self->r->out, "\"len\":3,\"data_b64\":\"//5B\"}\n"));
}

/* The example of docs/OPERATING.md, "Reading a region's stream", exactly. */
TEST_F(consume, operating_md_example_is_what_it_prints)
{
	ASSERT_EQ(0, pub_batch(&self->a, 1, 10, 0, 0, ""));
	ASSERT_EQ(0, pub_batch(&self->a, 11, 10, 0, 0, ""));
	ASSERT_EQ(0, pub_batch(&self->a, 11, 10, 0, 0, "/again"));
	ASSERT_EQ(0, pub_batch(&self->a, 21, 10, 0, 0, ""));
	ASSERT_EQ(0, pub_batch(&self->a, 46, 5, 41, 5, ""));
	ASSERT_EQ(0, pub_marker(&self->a, 51, 10, "max_payload", NULL, NULL));
	ASSERT_EQ(0, pub_batch(&self->a, 61, 10, 0, 0, ""));
	ASSERT_EQ(0, publish(&self->a, "junk", "junk", 4, NULL));
	CONSUME("--region", "a", "--format", "none");
	ASSERT_EQ(1, self->r->status);
	ASSERT_STREQ(
"consume: region 'a' stream seq 8: corrupt batch: Bad message\n"
"consume: duplicate web-01/socket-3/8000000000000001 seqs 11-20 (region 'a' stream seq 3)\n"
"consume: gap web-01/socket-3/8000000000000001 seqs 31-40\n"
"consume: ledger web-01/socket-3/8000000000000001 seqs 41-45: epoch_change\n"
"consume: dead-letter web-01/socket-3/8000000000000001 seqs 51-60 (region 'a' stream seq 6): max_payload\n"
"consume: 1 corrupt message(s)\n"
"consume: 55 events in 6 batches from 1 region(s); duplicates 10; gaps 3 (explained 2); dead-lettered 10; verdict FAIL",
		self->r->err);
}

TEST_F(consume, unknown_region_is_exit_2)
{
	char want[PATH_MAX + 64];

	CONSUME("--region", "a", "--region", "x");
	ASSERT_EQ(2, self->r->status);
	snprintf(want, sizeof(want), "consume: no region 'x' in %s",
		 self->conf);
	ASSERT_STREQ(want, self->r->last);
	ASSERT_STREQ("", self->r->out);
}

TEST_F(consume, unreachable_region_is_exit_2_with_the_error)
{
	char want[128];

	ASSERT_EQ(-ECONNREFUSED, nats_port_connect(PORT_DEAD));
	CONSUME("--region", "dead");
	ASSERT_EQ(2, self->r->status);
	snprintf(want, sizeof(want),
		 "consume: region 'dead': cannot connect to 'nats://127.0.0.1:%d': ",
		 PORT_DEAD);
	ASSERT_EQ(0, strncmp(want, self->r->last, strlen(want)))
		TH_LOG("%s", self->r->last);
}

TEST_F(consume, missing_stream_is_exit_2)
{
	FILE *f = fopen(self->conf, "a");

	ASSERT_NE(NULL, f);
	fprintf(f, "\n[region nostream]\nurls = nats://127.0.0.1:%d\n"
		"stream = NOPE\nsubject_prefix = nope\nreplicas = 1\n",
		self->port);
	ASSERT_EQ(0, fclose(f));
	CONSUME("--region", "nostream");
	ASSERT_EQ(2, self->r->status);
	ASSERT_EQ(0, strncmp("consume: region 'nostream': cannot look up stream 'NOPE': ",
			     self->r->last, 58)) TH_LOG("%s", self->r->last);
}

TEST_F(consume, usage_errors_are_exit_2)
{
	CONSUME("--region", "a", "--format", "xml");
	ASSERT_EQ(2, self->r->status);
	ASSERT_NE(NULL, strstr(self->r->err,
		"consume: bad --format 'xml' (json or none)\n"));
	CONSUME("--region", "a", "--expect", "web-01/socket-3/zz/1-5");
	ASSERT_EQ(2, self->r->status);
	ASSERT_NE(NULL, strstr(self->r->err,
		"consume: bad --expect 'web-01/socket-3/zz/1-5' "
		"(HOST/SOURCE-PART/EPOCH/FIRST-LAST)\n"));
	CONSUME("--region", "a", "--from", "0");
	ASSERT_EQ(2, self->r->status);
	CONSUME("--format", "json");
	ASSERT_EQ(2, self->r->status);
	ASSERT_NE(NULL, strstr(self->r->err, "consume: --region is required\n"));
	ASSERT_EQ(0, run_consume(self->dir, self->r, "--config",
				 "/nonexistent/evringd.conf", "--region", "a",
				 (const char *)NULL));
	ASSERT_EQ(2, self->r->status);
	ASSERT_EQ(0, strncmp("consume: cannot open '/nonexistent/evringd.conf'",
			     self->r->last, 48)) TH_LOG("%s", self->r->last);
}

TEST_HARNESS_MAIN
