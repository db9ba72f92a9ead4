// SPDX-License-Identifier: GPL-2.0-only
/*
 * The "evring" generic netlink family: GET_STATS (doit and dump),
 * GET_CONFIG, SET_CONFIG and the "notify" multicast group.
 *
 * The success paths go through libevring's evring_nl_* (the libmnl
 * adapter), as the daemon and evringctl do.  The rejection paths go through
 * raw_* below, requests built by hand with libmnl on a socket with
 * NETLINK_EXT_ACK set, so that each test sees the exact error code and the
 * extack message and attribute offset the kernel sent with it.
 *
 * Every test loads the module with LOAD_PARAMS and unloads it afterwards,
 * so all counters start at zero.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <libmnl/libmnl.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>

#include "evring.h"
#include "evring_module.h"
#include "evring_test_util.h"

/*
 * EXPECT_EQ(0, u64_field) compares an int with an unsigned value; the
 * harness prints both sides with their own signedness, so the comparison
 * is what is meant.
 */
#pragma GCC diagnostic ignored "-Wsign-compare"
#include "kselftest_harness.h"

/*
 * Unload after a test.  A test that stopped at a failed ASSERT may have left
 * fds or mappings open in this process, and they hold the module: then the
 * unload is only attempted (the next setup's load retries it once this
 * process is gone), so that one failure is not reported twice.
 */
static void unload_after(struct __test_metadata *_metadata)
{
	int ret = evring_module_unload();

	if (_metadata->passed)
		EXPECT_EQ(0, ret);
}

#define NR_PARTS	3
#define RING		65536u
#define MAXREC		4096u
#define HW_PCT		50u
#define FSYNC_MS	1234u
#define LOAD_PARAMS	"partitions=3 ring_size=65536 max_record=4096 " \
			"highwater_pct=50 fsync_timeout_ms=1234"

/* How long to wait for something that must happen (TCG is slow). */
#define MUST_MS		10000
/* How long to listen for something that must not happen. */
#define MUSTNT_MS	500

/* --- raw generic netlink, for the exact errno and extack ------------- */

struct raw_nl {
	struct mnl_socket *sk;
	unsigned int seq;
	uint16_t family;
};

struct raw_result {
	int error;		/* from NLMSG_ERROR: 0 (ack) or -errno */
	unsigned int replies;	/* data messages before the ack */
	char extack[256];	/* NLMSGERR_ATTR_MSG, "" when absent */
	int bad_attr;		/* NLMSGERR_ATTR_OFFS, -1 when absent */
	int miss_type;		/* NLMSGERR_ATTR_MISS_TYPE, -1 when absent */
};

struct raw_attr {
	uint16_t type;
	uint32_t value;
};

typedef void (*raw_data_cb)(const struct nlmsghdr *nlh, void *arg);

static int raw_extack_cb(const struct nlattr *a, void *data)
{
	struct raw_result *res = data;

	switch (mnl_attr_get_type(a)) {
	case NLMSGERR_ATTR_MSG:
		if (!mnl_attr_validate(a, MNL_TYPE_NUL_STRING))
			snprintf(res->extack, sizeof(res->extack), "%s",
				 mnl_attr_get_str(a));
		break;
	case NLMSGERR_ATTR_OFFS:
		if (!mnl_attr_validate(a, MNL_TYPE_U32))
			res->bad_attr = mnl_attr_get_u32(a);
		break;
	case NLMSGERR_ATTR_MISS_TYPE:
		if (!mnl_attr_validate(a, MNL_TYPE_U32))
			res->miss_type = mnl_attr_get_u32(a);
		break;
	}
	return MNL_CB_OK;
}

/*
 * Send @req and read until its NLMSG_ERROR (ack or error) or NLMSG_DONE,
 * handing data messages to @cb.  Returns 0 with @res filled, or -errno when
 * the socket itself failed.
 */
static int raw_xfer(struct raw_nl *r, struct nlmsghdr *req, raw_data_cb cb,
		    void *arg, struct raw_result *res)
{
	static char buf[65536];

	memset(res, 0, sizeof(*res));
	res->bad_attr = -1;
	res->miss_type = -1;
	req->nlmsg_seq = ++r->seq;
	if (mnl_socket_sendto(r->sk, req, req->nlmsg_len) < 0)
		return -errno;
	for (;;) {
		const struct nlmsghdr *nlh;
		int n = mnl_socket_recvfrom(r->sk, buf, sizeof(buf));

		if (n < 0)
			return -errno;
		for (nlh = (void *)buf; mnl_nlmsg_ok(nlh, n);
		     nlh = mnl_nlmsg_next(nlh, &n)) {
			if (nlh->nlmsg_seq != r->seq)
				continue;
			if (nlh->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e =
					mnl_nlmsg_get_payload(nlh);
				unsigned int off = sizeof(*e);

				res->error = e->error;
				if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
					off += e->msg.nlmsg_len -
					       sizeof(struct nlmsghdr);
				if (nlh->nlmsg_flags & NLM_F_ACK_TLVS)
					mnl_attr_parse(nlh, off, raw_extack_cb,
						       res);
				return 0;
			}
			if (nlh->nlmsg_type == NLMSG_DONE) {
				res->error = *(const int *)
					mnl_nlmsg_get_payload(nlh);
				return 0;
			}
			res->replies++;
			if (cb)
				cb(nlh, arg);
		}
	}
}

static void raw_family_cb(const struct nlmsghdr *nlh, void *arg)
{
	const struct nlattr *a;

	mnl_attr_for_each(a, nlh, sizeof(struct genlmsghdr))
		if (mnl_attr_get_type(a) == CTRL_ATTR_FAMILY_ID)
			*(uint16_t *)arg = mnl_attr_get_u16(a);
}

static void raw_close(struct raw_nl *r)
{
	if (r->sk)
		mnl_socket_close(r->sk);
	r->sk = NULL;
}

/* Open a NETLINK_GENERIC socket with extended acks and resolve "evring". */
static int raw_open(struct raw_nl *r)
{
	char buf[256];
	struct raw_result res;
	struct genlmsghdr *g;
	struct nlmsghdr *nlh;
	int one = 1, ret;

	memset(r, 0, sizeof(*r));
	r->sk = mnl_socket_open(NETLINK_GENERIC);
	if (!r->sk)
		return -errno;
	if (mnl_socket_setsockopt(r->sk, NETLINK_EXT_ACK, &one, sizeof(one)) ||
	    mnl_socket_setsockopt(r->sk, NETLINK_CAP_ACK, &one, sizeof(one)) ||
	    mnl_socket_bind(r->sk, 0, MNL_SOCKET_AUTOPID)) {
		ret = -errno;
		goto fail;
	}
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = GENL_ID_CTRL;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	g = mnl_nlmsg_put_extra_header(nlh, sizeof(*g));
	g->cmd = CTRL_CMD_GETFAMILY;
	g->version = 1;
	mnl_attr_put_strz(nlh, CTRL_ATTR_FAMILY_NAME, EVRING_GENL_NAME);
	ret = raw_xfer(r, nlh, raw_family_cb, &r->family, &res);
	if (!ret)
		ret = res.error;
	if (!ret && !r->family)
		ret = -ENOENT;
	if (ret)
		goto fail;
	return 0;
fail:
	raw_close(r);
	return ret;
}

/*
 * One evring request with u32 attributes @a[0..n); @offs[i] receives the
 * offset of attribute i from the start of the message (what
 * NLMSGERR_ATTR_OFFS names).
 */
static int raw_evring(struct raw_nl *r, uint8_t cmd, const struct raw_attr *a,
		      unsigned int n, int *offs, struct raw_result *res)
{
	char buf[512];
	struct genlmsghdr *g;
	struct nlmsghdr *nlh;

	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = r->family;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	g = mnl_nlmsg_put_extra_header(nlh, sizeof(*g));
	g->cmd = cmd;
	g->version = EVRING_GENL_VERSION;
	for (unsigned int i = 0; i < n; i++) {
		if (offs)
			offs[i] = (char *)mnl_nlmsg_get_payload_tail(nlh) -
				  (char *)nlh;
		mnl_attr_put_u32(nlh, a[i].type, a[i].value);
	}
	return raw_xfer(r, nlh, NULL, NULL, res);
}

/* --- device helpers ---------------------------------------------------- */

/* A writer fd whose records go to @part; -errno on failure. */
static int writer_open(unsigned int part, int flags)
{
	struct evring_key k = { .key = part, .mode = EVRING_KEY_PARTITION };
	int fd = open(EVRING_DEV_PATH, O_WRONLY | O_CLOEXEC | flags);

	if (fd < 0)
		return -errno;
	if (ioctl(fd, EVRING_IOC_SET_KEY, &k)) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

/* Write @n records of @len bytes each; 0 or -errno of the first failure. */
static int write_n(int fd, unsigned int n, unsigned int len)
{
	static char payload[MAXREC];

	memset(payload, 'e', sizeof(payload));
	for (unsigned int i = 0; i < n; i++) {
		ssize_t w = write(fd, payload, len);

		if (w < 0)
			return -errno;
		if ((size_t)w != len)
			return -EIO;
	}
	return 0;
}

/* Take every committed record; returns how many. */
static unsigned int consume_all(struct evring_consumer *c)
{
	unsigned int n = 0;

	while (evring_consumer_next(c))
		n++;
	return n;
}

/* Take every committed record and release them all. */
static int drain_release(struct evring_consumer *c)
{
	consume_all(c);
	evring_consumer_mark_read(c);
	return evring_consumer_release(c, evring_consumer_pos(c));
}

static uint64_t info_epoch(void)
{
	struct evring_info info;
	int fd = open(EVRING_DEV_PATH, O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	EVT_POISON(info);
	if (ioctl(fd, EVRING_IOC_INFO, &info))
		info.epoch = 0;
	close(fd);
	return info.epoch;
}

static uint64_t ms_since(uint64_t start_ns)
{
	return (evt_now_ns(CLOCK_MONOTONIC) - start_ns) / 1000000;
}

/* --- the fixture ------------------------------------------------------- */

FIXTURE(nl) {
	struct evring_nl *nl;	/* requests */
	struct evring_nl *mon;	/* notifications only: see the last test */
	struct raw_nl raw;
	char skip[128];
};

FIXTURE_SETUP(nl)
{
	int ret = evring_module_load(LOAD_PARAMS);

	if (ret == -ENOENT || ret == -EPERM) {
		snprintf(self->skip, sizeof(self->skip),
			 "cannot load '%s': %s", evring_ko_path(),
			 strerror(-ret));
		return;
	}
	ASSERT_EQ(0, ret);
	ASSERT_EQ(0, evring_nl_open(&self->nl));
	ASSERT_EQ(0, evring_nl_open(&self->mon));
	ASSERT_EQ(0, raw_open(&self->raw));
}

FIXTURE_TEARDOWN(nl)
{
	evt_reap_all();
	raw_close(&self->raw);
	evring_nl_close(self->mon);
	evring_nl_close(self->nl);
	if (!self->skip[0])
		unload_after(_metadata);
}

#define NEED_MODULE() do {						\
	if (self->skip[0])						\
		SKIP(return, "%s", self->skip);				\
} while (0)

/* Read partition @p's statistics into @st (poisoned first). */
#define STATS(p, st) do {						\
	EVT_POISON(st);							\
	ASSERT_EQ(0, evring_nl_stats(self->nl, (p), &(st)));		\
	ASSERT_EQ((p), (st).partition);					\
} while (0)

/* The next notification must be @cmd for partition @part. */
#define ASSERT_NOTICE(cmd_, part_, n) do {				\
	EVT_POISON(n);							\
	ASSERT_EQ(1, evring_nl_next_notice(self->mon, MUST_MS, &(n)));	\
	ASSERT_EQ((cmd_), (n).cmd);					\
	ASSERT_EQ((part_), (n).partition);				\
} while (0)

#define ASSERT_NO_NOTICE() do {						\
	struct evring_notice __n;					\
	int __r = evring_nl_next_notice(self->mon, MUSTNT_MS, &__n);	\
	if (__r == 1)							\
		TH_LOG("unexpected notice cmd %u partition %u fill %u",	\
		       __n.cmd, __n.partition, __n.fill);		\
	ASSERT_EQ(0, __r);						\
} while (0)

/* --- family and config ------------------------------------------------- */

TEST_F(nl, family_resolves_and_get_config_reports_load_parameters)
{
	struct evring_part_stats st;
	struct evring_config cfg;
	uint64_t epoch;

	NEED_MODULE();
	epoch = info_epoch();
	ASSERT_NE(0, epoch);

	EVT_POISON(cfg);
	ASSERT_EQ(0, evring_nl_get_config(self->nl, &cfg));
	EXPECT_EQ(NR_PARTS, cfg.nr_partitions);
	EXPECT_EQ(RING, cfg.ring_size);
	EXPECT_EQ(MAXREC, cfg.max_record);
	EXPECT_EQ(HW_PCT, cfg.highwater_pct);
	EXPECT_EQ(FSYNC_MS, cfg.fsync_timeout_ms);
	EXPECT_EQ(epoch, cfg.epoch);

	for (unsigned int p = 0; p < NR_PARTS; p++) {
		STATS(p, st);
		EXPECT_EQ(epoch, st.epoch);
		EXPECT_EQ(RING, st.ring_size);
	}
}

TEST_F(nl, family_is_gone_after_unload)
{
	struct evring_nl *nl = (struct evring_nl *)0x1;

	NEED_MODULE();
	ASSERT_EQ(0, evring_module_unload());
	EXPECT_EQ(-ENOENT, evring_nl_open(&nl));
	EXPECT_EQ((uintptr_t)0x1, (uintptr_t)nl);
	ASSERT_EQ(0, evring_module_load(LOAD_PARAMS));
}

/* --- GET_STATS --------------------------------------------------------- */

TEST_F(nl, get_stats_counts_records_and_bytes_of_one_partition_only)
{
	const unsigned int part = 1, k = 37, len = 100;
	const uint64_t pos = (uint64_t)k * EVRING_REC_SIZE(len);
	struct evring_part_stats st, all[NR_PARTS + 1];
	unsigned int n = 0xa5a5;
	int fd;

	NEED_MODULE();
	fd = writer_open(part, 0);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, write_n(fd, k, len));

	STATS(part, st);
	EXPECT_EQ(k, st.produced);
	EXPECT_EQ((uint64_t)k * len, st.produced_bytes);
	EXPECT_EQ(pos, st.prod_pos);
	EXPECT_EQ(0, st.release_pos);
	EXPECT_EQ(0, st.released);
	EXPECT_EQ(st.prod_pos - st.release_pos, st.fill);
	EXPECT_LE(st.fill, st.fill_hwm);
	EXPECT_EQ(0, st.consumer);
	EXPECT_EQ(0, st.consumer_pid);
	EXPECT_EQ(0, st.writers_blocked);
	EXPECT_EQ(0, st.blocks);
	EXPECT_EQ(0, st.eagains);

	/* The dump: one entry per partition, the others untouched. */
	memset(all, 0xa5, sizeof(all));
	ASSERT_EQ(0, evring_nl_stats_all(self->nl, all, NR_PARTS + 1, &n));
	ASSERT_EQ(NR_PARTS, n);
	for (unsigned int i = 0; i < NR_PARTS; i++) {
		const struct evring_part_stats *s = &all[i];

		ASSERT_GT(NR_PARTS, s->partition);
		for (unsigned int j = 0; j < i; j++) {
			ASSERT_NE(all[j].partition, s->partition);
		}
		EXPECT_EQ(RING, s->ring_size);
		if (s->partition == part) {
			EXPECT_EQ(k, s->produced);
			EXPECT_EQ(pos, s->prod_pos);
			EXPECT_EQ(pos, s->fill);
			continue;
		}
		EXPECT_EQ(0, s->produced);
		EXPECT_EQ(0, s->produced_bytes);
		EXPECT_EQ(0, s->prod_pos);
		EXPECT_EQ(0, s->release_pos);
		EXPECT_EQ(0, s->fill);
		EXPECT_EQ(0, s->fill_hwm);
		EXPECT_EQ(0, s->consumer);
		EXPECT_EQ(0, s->wakeups);
	}
	/* The adapter writes only out[0..max) and still counts them all. */
	memset(all, 0xa5, sizeof(all));
	n = 0;
	ASSERT_EQ(0, evring_nl_stats_all(self->nl, all, 1, &n));
	EXPECT_EQ(NR_PARTS, n);
	EXPECT_EQ(0xa5a5a5a5u, all[1].partition);
	close(fd);
}

TEST_F(nl, get_stats_follows_release_and_consumer_attachment)
{
	const unsigned int part = 2, k = 20, len = 333, keep = 6;
	const uint64_t rs = EVRING_REC_SIZE(len);
	struct evring_consumer *c = NULL;
	struct evring_part_stats st;
	int fd;

	NEED_MODULE();
	fd = writer_open(part, 0);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, write_n(fd, k, len));

	ASSERT_EQ(0, evring_consumer_open(NULL, part, &c));
	STATS(part, st);
	EXPECT_EQ(1, st.consumer);
	EXPECT_EQ((uint32_t)getpid(), st.consumer_pid);
	EXPECT_EQ(0, st.released);

	ASSERT_EQ(k, consume_all(c));
	ASSERT_EQ(0, evring_consumer_release(c, (k - keep) * rs));
	STATS(part, st);
	EXPECT_EQ(k, st.produced);
	EXPECT_EQ(k - keep, st.released);
	EXPECT_EQ((k - keep) * rs, st.release_pos);
	EXPECT_EQ(k * rs, st.prod_pos);
	EXPECT_EQ(keep * rs, st.fill);
	EXPECT_EQ(k * rs, st.fill_hwm);		/* the high mark stays */

	ASSERT_EQ(0, evring_consumer_release(c, k * rs));
	STATS(part, st);
	EXPECT_EQ(k, st.released);
	EXPECT_EQ(0, st.fill);
	EXPECT_EQ(k * rs, st.fill_hwm);

	evring_consumer_close(c);
	STATS(part, st);
	EXPECT_EQ(0, st.consumer);
	EXPECT_EQ(0, st.consumer_pid);
	EXPECT_EQ(k, st.released);		/* detaching keeps positions */
	EXPECT_EQ(k * rs, st.release_pos);
	close(fd);
}

TEST_F(nl, eagains_counts_each_nonblocking_write_refused_for_space)
{
	const unsigned int part = 0, extra = 4;
	struct evring_iovec iov;
	struct evring_batch b;
	struct evring_part_stats st;
	static char buf[MAXREC];
	unsigned int ok = 0;
	ssize_t w;
	int fd;

	NEED_MODULE();
	fd = writer_open(part, O_NONBLOCK);
	ASSERT_LE(0, fd);
	while ((w = write(fd, buf, MAXREC)) == MAXREC) {
		ASSERT_GT(RING / EVRING_REC_SIZE(MAXREC) + 1, ++ok);
	}
	ASSERT_EQ(-1, w);
	ASSERT_EQ(EAGAIN, errno);
	EXPECT_EQ(RING / EVRING_REC_SIZE(MAXREC), ok);
	for (unsigned int i = 0; i < extra; i++) {
		ASSERT_EQ(-1, write(fd, buf, MAXREC));
		ASSERT_EQ(EAGAIN, errno);
	}
	iov = (struct evring_iovec){ .base = (uintptr_t)buf, .len = MAXREC };
	b = (struct evring_batch){ .records = (uintptr_t)&iov, .count = 1 };
	ASSERT_EQ(-1, ioctl(fd, EVRING_IOC_WRITE_BATCH, &b));
	ASSERT_EQ(EAGAIN, errno);

	STATS(part, st);
	EXPECT_EQ(1 + extra + 1, st.eagains);
	EXPECT_EQ(ok, st.produced);
	EXPECT_EQ(0, st.blocks);
	EXPECT_EQ(0, st.writers_blocked);
	for (unsigned int p = 1; p < NR_PARTS; p++) {
		STATS(p, st);
		EXPECT_EQ(0, st.eagains);
	}
	close(fd);
}

/* Child: one blocking write of MAXREC bytes into partition *arg. */
static int blocked_writer(void *arg)
{
	static char buf[MAXREC];
	int fd = writer_open(*(unsigned int *)arg, 0);

	if (fd < 0)
		return 10;
	if (write(fd, buf, MAXREC) != MAXREC)
		return 11;
	return 0;
}

/* Poll @part's statistics until writers_blocked == @want; 0 or -1. */
static int wait_writers_blocked(struct evring_nl *nl, unsigned int part,
				uint32_t want, struct evring_part_stats *st)
{
	for (int t = 0; t < MUST_MS; t += 5) {
		if (evring_nl_stats(nl, part, st))
			return -1;
		if (st->writers_blocked == want)
			return 0;
		evt_sleep_ms(5);
	}
	return -1;
}

TEST_F_TIMEOUT(nl, writers_asleep_on_a_full_ring_show_in_writers_blocked, 60)
{
	unsigned int part = 1, produced;
	struct evring_consumer *c = NULL;
	struct evring_part_stats st;
	static char buf[MAXREC];
	pid_t a, b;
	int fd;

	NEED_MODULE();
	fd = writer_open(part, O_NONBLOCK);
	ASSERT_LE(0, fd);
	while (write(fd, buf, MAXREC) == MAXREC)
		;
	ASSERT_EQ(EAGAIN, errno);
	STATS(part, st);
	produced = st.produced;
	EXPECT_EQ(0, st.writers_blocked);
	EXPECT_EQ(0, st.blocks);

	a = evt_spawn(blocked_writer, &part);
	ASSERT_LT(0, a);
	ASSERT_EQ(0, wait_writers_blocked(self->nl, part, 1, &st));
	b = evt_spawn(blocked_writer, &part);
	ASSERT_LT(0, b);
	ASSERT_EQ(0, wait_writers_blocked(self->nl, part, 2, &st));
	EXPECT_EQ(2, st.blocks);
	EXPECT_EQ(produced, st.produced);
	EXPECT_EQ(-ETIMEDOUT, evt_wait(a, 0));
	EXPECT_EQ(-ETIMEDOUT, evt_wait(b, 0));

	/* A sleeper killed leaves the count, not a record. */
	EXPECT_EQ(256 + SIGKILL, evt_kill(b));
	ASSERT_EQ(0, wait_writers_blocked(self->nl, part, 1, &st));
	EXPECT_EQ(produced, st.produced);

	/* Releasing everything lets the other one finish. */
	ASSERT_EQ(0, evring_consumer_open(NULL, part, &c));
	ASSERT_EQ(0, drain_release(c));
	EXPECT_EQ(0, evt_wait(a, MUST_MS));
	STATS(part, st);
	EXPECT_EQ(0, st.writers_blocked);
	EXPECT_EQ(2, st.blocks);
	EXPECT_EQ(produced + 1, st.produced);
	evring_consumer_close(c);
	close(fd);
}

struct fsync_job {
	int fd;
	int ret;	/* 0 or errno */
	uint64_t ms;
};

static void *fsync_thread(void *arg)
{
	struct fsync_job *j = arg;
	uint64_t t0 = evt_now_ns(CLOCK_MONOTONIC);

	j->ret = fsync(j->fd) ? errno : 0;
	j->ms = ms_since(t0);
	return NULL;
}

TEST_F_TIMEOUT(nl, fsync_waits_and_timeouts_are_counted, 60)
{
	const unsigned int part = 2;
	struct evring_part_stats st, all[NR_PARTS];
	struct evring_consumer *c = NULL;
	struct fsync_job job;
	pthread_t th;
	unsigned int n;
	uint64_t t0;
	int fd, idle;

	NEED_MODULE();
	/* An fd that wrote nothing does not wait. */
	idle = writer_open(part, 0);
	ASSERT_LE(0, idle);
	ASSERT_EQ(0, fsync(idle));

	fd = writer_open(part, 0);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, write_n(fd, 1, 10));
	t0 = evt_now_ns(CLOCK_MONOTONIC);
	ASSERT_EQ(-1, fsync(fd));
	ASSERT_EQ(ETIMEDOUT, errno);
	EXPECT_LE(FSYNC_MS - 10, ms_since(t0));
	EXPECT_GT(4 * FSYNC_MS, ms_since(t0));
	STATS(part, st);
	EXPECT_EQ(1, st.fsync_waits);
	EXPECT_EQ(1, st.fsync_timeouts);

	/* A waiter woken by the release returns 0: a wait, no timeout. */
	job = (struct fsync_job){ .fd = fd, .ret = -1 };
	ASSERT_EQ(0, pthread_create(&th, NULL, fsync_thread, &job));
	evt_sleep_ms(200);
	ASSERT_EQ(0, evring_consumer_open(NULL, part, &c));
	ASSERT_EQ(0, drain_release(c));
	ASSERT_EQ(0, pthread_join(th, NULL));
	EXPECT_EQ(0, job.ret);
	EXPECT_GT(FSYNC_MS, job.ms);
	STATS(part, st);
	EXPECT_EQ(2, st.fsync_waits);
	EXPECT_EQ(1, st.fsync_timeouts);

	memset(all, 0xa5, sizeof(all));
	ASSERT_EQ(0, evring_nl_stats_all(self->nl, all, NR_PARTS, &n));
	ASSERT_EQ(NR_PARTS, n);
	for (unsigned int i = 0; i < NR_PARTS; i++) {
		if (all[i].partition == part)
			continue;
		EXPECT_EQ(0, all[i].fsync_waits);
		EXPECT_EQ(0, all[i].fsync_timeouts);
	}
	evring_consumer_close(c);
	close(fd);
	close(idle);
}

struct waiter {
	struct evring_consumer *c;
	pid_t tid;		/* written before the wait, read after join */
	volatile int started;
	int ret;
};

static void *wait_thread(void *arg)
{
	struct waiter *w = arg;

	w->tid = gettid();
	__atomic_store_n(&w->started, 1, __ATOMIC_RELEASE);
	w->ret = evring_consumer_wait(w->c, MUST_MS);
	return NULL;
}

/* Run a consumer wait in a thread; returns once that thread is asleep. */
static int start_waiter(struct waiter *w, pthread_t *th)
{
	w->started = 0;
	w->ret = -1;
	if (pthread_create(th, NULL, wait_thread, w))
		return -1;
	while (!__atomic_load_n(&w->started, __ATOMIC_ACQUIRE))
		evt_sleep_ms(1);
	return evt_wait_asleep(getpid(), w->tid, MUST_MS) ? 0 : -1;
}

TEST_F_TIMEOUT(nl, one_wakeup_per_batch_or_run_of_writes_while_the_consumer_sleeps, 60)
{
	const unsigned int part = 0, nb = 100, len = 16;
	static struct evring_iovec iov[100];
	static char payload[16];
	struct evring_consumer *c = NULL;
	struct evring_part_stats st;
	struct evring_batch b;
	struct waiter w;
	pthread_t th;
	int fd;

	NEED_MODULE();
	for (unsigned int i = 0; i < nb; i++)
		iov[i] = (struct evring_iovec){ .base = (uintptr_t)payload,
						.len = len };
	b = (struct evring_batch){ .records = (uintptr_t)iov, .count = nb };
	fd = writer_open(part, 0);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, evring_consumer_open(NULL, part, &c));
	STATS(part, st);
	EXPECT_EQ(0, st.wakeups);

	for (unsigned int round = 1; round <= 2; round++) {
		w = (struct waiter){ .c = c };
		ASSERT_EQ(0, start_waiter(&w, &th));
		ASSERT_EQ(nb, ioctl(fd, EVRING_IOC_WRITE_BATCH, &b));
		ASSERT_EQ(0, pthread_join(th, NULL));
		ASSERT_EQ(1, w.ret);
		STATS(part, st);
		EXPECT_EQ(round, st.wakeups);

		/* Not caught up: single records wake nobody. */
		ASSERT_EQ(0, write_n(fd, 50, len));
		STATS(part, st);
		EXPECT_EQ(round, st.wakeups);
		EXPECT_EQ(round * (nb + 50), st.produced);

		ASSERT_EQ(nb + 50, consume_all(c));
		ASSERT_EQ(0, evring_consumer_release(c, evring_consumer_pos(c)));
	}

	/* 100 single writes against a sleeping consumer: only the first,
	 * the one past read_pos, wakes it.
	 */
	w = (struct waiter){ .c = c };
	ASSERT_EQ(0, start_waiter(&w, &th));
	ASSERT_EQ(0, write_n(fd, nb, len));
	ASSERT_EQ(0, pthread_join(th, NULL));
	ASSERT_EQ(1, w.ret);
	STATS(part, st);
	EXPECT_EQ(3, st.wakeups);
	evring_consumer_close(c);
	close(fd);
}

TEST_F(nl, get_stats_without_a_valid_partition_is_einval_with_extack)
{
	static const uint32_t bad[] = { NR_PARTS, NR_PARTS + 1,
					EVRING_PARTITIONS_MAX, UINT32_MAX };
	struct raw_attr a = { EVRING_A_PARTITION, 0 };
	struct evring_part_stats st;
	struct raw_result res;
	int off;

	NEED_MODULE();
	/* The raw path can succeed: a partition in range gets one reply. */
	a.value = NR_PARTS - 1;
	ASSERT_EQ(0, raw_evring(&self->raw, EVRING_CMD_GET_STATS, &a, 1, &off,
				&res));
	EXPECT_EQ(0, res.error);
	EXPECT_EQ(1, res.replies);

	for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		a.value = bad[i];
		ASSERT_EQ(0, raw_evring(&self->raw, EVRING_CMD_GET_STATS, &a,
					1, &off, &res));
		TH_LOG("partition %u: error %d, extack '%s'", bad[i],
		       res.error, res.extack);
		EXPECT_EQ(-EINVAL, res.error);
		EXPECT_EQ(0, res.replies);
		EXPECT_NE(0, res.extack[0]);
		EXPECT_EQ(off, res.bad_attr);
	}

	/* No partition at all: the missing attribute is named. */
	ASSERT_EQ(0, raw_evring(&self->raw, EVRING_CMD_GET_STATS, NULL, 0,
				NULL, &res));
	EXPECT_EQ(-EINVAL, res.error);
	EXPECT_EQ(0, res.replies);
	EXPECT_EQ(EVRING_A_PARTITION, res.miss_type);

	/* Through the library: the same errno, the output untouched. */
	EVT_POISON(st);
	EXPECT_EQ(-EINVAL, evring_nl_stats(self->nl, NR_PARTS, &st));
	EXPECT_EQ(0xa5a5a5a5u, st.partition);
	EXPECT_EQ(0xa5a5a5a5a5a5a5a5ull, st.produced);
}

/* --- SET_CONFIG -------------------------------------------------------- */

TEST_F_TIMEOUT(nl, set_config_changes_highwater_and_fsync_timeout, 60)
{
	const unsigned int part = 1, len = 1000;
	const uint32_t new_pct = 10, new_ms = 150;
	struct evring_config cfg, cfg0;
	struct evring_notice n;
	uint64_t t0, ms;
	int fd;

	NEED_MODULE();
	EVT_POISON(cfg0);
	ASSERT_EQ(0, evring_nl_get_config(self->nl, &cfg0));
	ASSERT_EQ(0, evring_nl_set_config(self->nl, new_pct, new_ms));
	EVT_POISON(cfg);
	ASSERT_EQ(0, evring_nl_get_config(self->nl, &cfg));
	EXPECT_EQ(new_pct, cfg.highwater_pct);
	EXPECT_EQ(new_ms, cfg.fsync_timeout_ms);
	EXPECT_EQ(cfg0.epoch, cfg.epoch);
	EXPECT_EQ(cfg0.nr_partitions, cfg.nr_partitions);
	EXPECT_EQ(cfg0.ring_size, cfg.ring_size);
	EXPECT_EQ(cfg0.max_record, cfg.max_record);

	/* fsync gives up after the new timeout, well before the old one. */
	fd = writer_open(part, 0);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, evring_nl_subscribe(self->mon));
	ASSERT_EQ(0, write_n(fd, 1, len));
	t0 = evt_now_ns(CLOCK_MONOTONIC);
	ASSERT_EQ(-1, fsync(fd));
	ASSERT_EQ(ETIMEDOUT, errno);
	ms = ms_since(t0);
	EXPECT_LE(new_ms - 10, ms);
	EXPECT_GT(FSYNC_MS - 200, ms);

	/* The new high-water mark (10% of 64 KiB) is the one in force. */
	ASSERT_EQ(0, write_n(fd, 7, len));	/* 8 KiB: over 10% */
	ASSERT_NOTICE(EVRING_CMD_HIGHWATER, part, n);
	EXPECT_LE(RING * new_pct / 100, n.fill);
	EXPECT_GE(8 * EVRING_REC_SIZE(len), n.fill);

	/* 0 leaves a field alone. */
	ASSERT_EQ(0, evring_nl_set_config(self->nl, 0, 2000));
	EVT_POISON(cfg);
	ASSERT_EQ(0, evring_nl_get_config(self->nl, &cfg));
	EXPECT_EQ(new_pct, cfg.highwater_pct);
	EXPECT_EQ(2000, cfg.fsync_timeout_ms);
	close(fd);
}

TEST_F(nl, set_config_out_of_range_is_erange_with_extack_and_changes_nothing)
{
	static const struct raw_attr bad[] = {
		{ EVRING_A_HIGHWATER_PCT, 0 },
		{ EVRING_A_HIGHWATER_PCT, 101 },
		{ EVRING_A_HIGHWATER_PCT, UINT32_MAX },
		{ EVRING_A_FSYNC_TIMEOUT_MS, 0 },
		{ EVRING_A_FSYNC_TIMEOUT_MS, 3600001 },
	};
	struct raw_attr both[2];
	struct evring_config cfg;
	struct raw_result res;
	int offs[2];

	NEED_MODULE();
	for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ASSERT_EQ(0, raw_evring(&self->raw, EVRING_CMD_SET_CONFIG,
					&bad[i], 1, offs, &res));
		TH_LOG("attr %u = %u: error %d, extack '%s', offset %d",
		       bad[i].type, bad[i].value, res.error, res.extack,
		       res.bad_attr);
		EXPECT_EQ(-ERANGE, res.error);
		EXPECT_NE(0, res.extack[0]);
		EXPECT_EQ(offs[0], res.bad_attr);
	}

	/* Nothing to set is an error too, not a silent no-op. */
	ASSERT_EQ(0, raw_evring(&self->raw, EVRING_CMD_SET_CONFIG, NULL, 0,
				NULL, &res));
	EXPECT_EQ(-EINVAL, res.error);
	EXPECT_NE(0, res.extack[0]);

	/* A valid value next to an invalid one is not applied either. */
	both[0] = (struct raw_attr){ EVRING_A_HIGHWATER_PCT, 60 };
	both[1] = (struct raw_attr){ EVRING_A_FSYNC_TIMEOUT_MS, 0 };
	ASSERT_EQ(0, raw_evring(&self->raw, EVRING_CMD_SET_CONFIG, both, 2,
				offs, &res));
	EXPECT_EQ(-ERANGE, res.error);
	EXPECT_EQ(offs[1], res.bad_attr);

	EVT_POISON(cfg);
	ASSERT_EQ(0, evring_nl_get_config(self->nl, &cfg));
	EXPECT_EQ(HW_PCT, cfg.highwater_pct);
	EXPECT_EQ(FSYNC_MS, cfg.fsync_timeout_ms);

	/* The bounds themselves are accepted. */
	both[0] = (struct raw_attr){ EVRING_A_HIGHWATER_PCT, 1 };
	both[1] = (struct raw_attr){ EVRING_A_FSYNC_TIMEOUT_MS, 1 };
	ASSERT_EQ(0, raw_evring(&self->raw, EVRING_CMD_SET_CONFIG, both, 2,
				NULL, &res));
	EXPECT_EQ(0, res.error);
	both[0].value = 100;
	both[1].value = 3600000;
	ASSERT_EQ(0, raw_evring(&self->raw, EVRING_CMD_SET_CONFIG, both, 2,
				NULL, &res));
	EXPECT_EQ(0, res.error);
	EVT_POISON(cfg);
	ASSERT_EQ(0, evring_nl_get_config(self->nl, &cfg));
	EXPECT_EQ(100, cfg.highwater_pct);
	EXPECT_EQ(3600000, cfg.fsync_timeout_ms);
}

/* What a child without CAP_NET_ADMIN saw; filled in by eperm_child(). */
struct eperm_report {
	int drop;		/* evt_drop_cap() */
	int get;		/* evring_nl_get_config() */
	int set;		/* evring_nl_set_config() */
	int raw;		/* raw SET_CONFIG's error */
	uint32_t pct;		/* what GET_CONFIG said */
};

static int eperm_child(void *arg)
{
	struct eperm_report *r = arg;
	struct evring_config cfg = { 0 };
	struct evring_nl *nl = NULL;
	struct raw_attr a = { EVRING_A_HIGHWATER_PCT, 77 };
	struct raw_result res = { .error = 1 };
	struct raw_nl raw;

	r->drop = evt_drop_cap(CAP_NET_ADMIN);
	/* Open after dropping: netlink checks the socket opener too. */
	if (evring_nl_open(&nl) || raw_open(&raw))
		return 20;
	r->get = evring_nl_get_config(nl, &cfg);
	r->pct = cfg.highwater_pct;
	r->set = evring_nl_set_config(nl, 77, 77);
	if (raw_evring(&raw, EVRING_CMD_SET_CONFIG, &a, 1, NULL, &res))
		return 21;
	r->raw = res.error;
	raw_close(&raw);
	evring_nl_close(nl);
	return 0;
}

TEST_F(nl, set_config_without_cap_net_admin_is_eperm)
{
	struct eperm_report *r;
	struct evring_config cfg;
	pid_t pid;

	NEED_MODULE();
	r = mmap(NULL, sizeof(*r), PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, r);
	memset(r, 0x5a, sizeof(*r));
	pid = evt_spawn(eperm_child, r);
	ASSERT_LT(0, pid);
	ASSERT_EQ(0, evt_wait(pid, MUST_MS));
	EXPECT_EQ(0, r->drop);
	EXPECT_EQ(0, r->get);		/* reading needs no privilege */
	EXPECT_EQ(HW_PCT, r->pct);
	EXPECT_EQ(-EPERM, r->set);
	EXPECT_EQ(-EPERM, r->raw);

	EVT_POISON(cfg);
	ASSERT_EQ(0, evring_nl_get_config(self->nl, &cfg));
	EXPECT_EQ(HW_PCT, cfg.highwater_pct);
	EXPECT_EQ(FSYNC_MS, cfg.fsync_timeout_ms);
	munmap(r, sizeof(*r));
}

/* --- notifications ----------------------------------------------------- */

/* Child: attach to partition *arg, wait for a byte on fd 'in', close. */
struct attach_job {
	unsigned int part;
	int go[2];		/* parent writes a byte: detach now */
};

static int attach_child(void *arg)
{
	struct attach_job *j = arg;
	struct evring_consumer *c = NULL;
	char x;

	close(j->go[1]);
	if (evring_consumer_open(NULL, j->part, &c))
		return 30;
	if (read(j->go[0], &x, 1) != 1)
		return 31;
	evring_consumer_close(c);
	return 0;
}

TEST_F(nl, notify_reports_attach_and_detach_with_partition_and_pid)
{
	struct attach_job j = { .part = 2 };
	struct evring_notice n;
	struct evring_attach at = { .partition = 1 };
	pid_t pid;
	int fd;

	NEED_MODULE();
	ASSERT_EQ(0, evring_nl_subscribe(self->mon));

	/* Another process attaches, then closes. */
	ASSERT_EQ(0, pipe(j.go));
	pid = evt_spawn(attach_child, &j);
	ASSERT_LT(0, pid);
	close(j.go[0]);
	ASSERT_NOTICE(EVRING_CMD_ATTACHED, 2, n);
	EXPECT_EQ((uint32_t)pid, n.pid);
	ASSERT_EQ(1, write(j.go[1], "x", 1));
	ASSERT_NOTICE(EVRING_CMD_DETACHED, 2, n);
	EXPECT_EQ((uint32_t)pid, n.pid);
	EXPECT_EQ(0, evt_wait(pid, MUST_MS));
	close(j.go[1]);

	/* This process attaches and detaches with the ioctl. */
	fd = open(EVRING_DEV_PATH, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ioctl(fd, EVRING_IOC_ATTACH, &at));
	ASSERT_NOTICE(EVRING_CMD_ATTACHED, 1, n);
	EXPECT_EQ((uint32_t)getpid(), n.pid);
	ASSERT_EQ(0, ioctl(fd, EVRING_IOC_DETACH));
	ASSERT_NOTICE(EVRING_CMD_DETACHED, 1, n);
	EXPECT_EQ((uint32_t)getpid(), n.pid);
	close(fd);			/* detached already: nothing more */
	ASSERT_NO_NOTICE();
}

TEST_F_TIMEOUT(nl, notify_highwater_once_per_crossing_rearmed_below_half, 60)
{
	/* 992 payload bytes are exactly 1 KiB in the ring. */
	const unsigned int part = 0, len = 992, rs = EVRING_REC_SIZE(992);
	const uint32_t mark = RING * HW_PCT / 100;	/* 32 KiB */
	struct evring_consumer *c = NULL;
	struct evring_part_stats st;
	struct evring_notice n;
	int fd;

	NEED_MODULE();
	ASSERT_EQ(1024, rs);
	ASSERT_EQ(0, evring_nl_subscribe(self->mon));
	fd = writer_open(part, 0);
	ASSERT_LE(0, fd);

	/* 40 records, one at a time: the mark is crossed once. */
	ASSERT_EQ(0, write_n(fd, 40, len));
	ASSERT_NOTICE(EVRING_CMD_HIGHWATER, part, n);
	EXPECT_LE(mark, n.fill);
	EXPECT_GE(40 * rs, n.fill);
	EXPECT_EQ(RING, n.ring_size);
	ASSERT_NO_NOTICE();

	/* Down to 10 KiB, below half the mark: re-armed. */
	ASSERT_EQ(0, evring_consumer_open(NULL, part, &c));
	ASSERT_NOTICE(EVRING_CMD_ATTACHED, part, n);
	ASSERT_EQ(40, consume_all(c));
	ASSERT_EQ(0, evring_consumer_release(c, 30 * rs));
	STATS(part, st);
	ASSERT_EQ(10 * rs, st.fill);
	ASSERT_NO_NOTICE();
	ASSERT_EQ(0, write_n(fd, 30, len));
	ASSERT_NOTICE(EVRING_CMD_HIGHWATER, part, n);
	EXPECT_LE(mark, n.fill);
	EXPECT_GE(40 * rs, n.fill);
	ASSERT_NO_NOTICE();

	/* Down to 20 KiB, not below half the mark: still disarmed. */
	ASSERT_EQ(30, consume_all(c));
	ASSERT_EQ(0, evring_consumer_release(c, 50 * rs));
	STATS(part, st);
	ASSERT_EQ(20 * rs, st.fill);
	ASSERT_EQ(0, write_n(fd, 20, len));
	STATS(part, st);
	ASSERT_EQ(40 * rs, st.fill);
	ASSERT_NO_NOTICE();

	evring_consumer_close(c);
	ASSERT_NOTICE(EVRING_CMD_DETACHED, part, n);
	EXPECT_EQ((uint32_t)getpid(), n.pid);
	ASSERT_NO_NOTICE();
	close(fd);
}

/*
 * One handle for both: a daemon subscribes and keeps asking for statistics
 * on the same handle.  A notice already queued when a request goes out must
 * neither be taken for the reply nor be lost.
 */
TEST_F(nl, a_subscribed_handle_answers_requests_and_keeps_its_notices)
{
	struct evring_consumer *c = NULL;
	struct evring_part_stats st;
	struct evring_config cfg;
	struct evring_notice n;
	int ret;

	NEED_MODULE();
	ASSERT_EQ(0, evring_nl_subscribe(self->nl));
	ASSERT_EQ(0, evring_consumer_open(NULL, 1, &c));	/* ATTACHED queued */

	EVT_POISON(st);
	ret = evring_nl_stats(self->nl, 0, &st);
	EXPECT_EQ(0, ret);
	if (!ret)
		EXPECT_EQ(0, st.partition);
	EVT_POISON(cfg);
	ret = evring_nl_get_config(self->nl, &cfg);
	EXPECT_EQ(0, ret);
	if (!ret)
		EXPECT_EQ(RING, cfg.ring_size);

	EVT_POISON(n);
	EXPECT_EQ(1, evring_nl_next_notice(self->nl, MUST_MS, &n));
	EXPECT_EQ(EVRING_CMD_ATTACHED, n.cmd);
	EXPECT_EQ(1, n.partition);
	evring_consumer_close(c);
}

TEST_HARNESS_MAIN
