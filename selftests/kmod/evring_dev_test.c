// SPDX-License-Identifier: GPL-2.0-only
/*
 * evring_dev_test: the /dev/evring interface of evring.ko, against the
 * contract in uapi/linux/evring.h and the behaviour in docs/KMOD.md.
 *
 * Every test loads the module with the parameters it needs (fixture setup)
 * and unloads it again (teardown); an unload that fails there means a
 * reference leaked and fails the test.  The interface under test is driven
 * with raw syscalls; the ring is read through a raw mmap of the published
 * layout (struct cons below), never through libevring, so a bug in the
 * library cannot hide one in the module.  libevring is used only for the
 * netlink wake-up counter.
 *
 * Fixtures:
 *	defaults	module loaded with no parameters: 4 partitions, 1 MiB
 *			rings, 64 KiB records; errno paths and semantics that do
 *			not depend on the ring's geometry
 *	ring		variants small/mid/big: records, layout, wrap, release,
 *			backpressure, poll, signals, fsync, consumer death
 *	fsync_timeout	fsync_timeout_ms=300
 *
 * Run as root, with $EVRING_KO naming the module (selftests/kmod/run).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <linux/capability.h>
#include <linux/evring.h>

#include "evring.h"
#include "kselftest_harness.h"
#include "evring_module.h"
#include "evring_test_util.h"

#define DEFAULT_PARTITIONS	4u
#define DEFAULT_RING_SIZE	(1u << 20)
#define DEFAULT_MAX_RECORD	65536u
#define POISON64		0xa5a5a5a5a5a5a5a5ull
#define NOBODY			65534

/* ------------------------------------------------------------------ */
/* Mappings of the device, remembered so that teardown can drop them:
 * a mapping holds the file, and the file holds the module.
 */

#define MAX_MAPS 32
static struct {
	void *addr;
	size_t len;
} maps[MAX_MAPS];

static void *map(int fd, size_t len, int prot, int flags, __u64 off)
{
	void *p = mmap(NULL, len, prot, flags, fd, (off_t)off);

	if (p == MAP_FAILED)
		return p;
	for (int i = 0; i < MAX_MAPS; i++) {
		if (!maps[i].addr) {
			maps[i].addr = p;
			maps[i].len = len;
			break;
		}
	}
	return p;
}

static void unmap(void *p, size_t len)
{
	for (int i = 0; i < MAX_MAPS; i++)
		if (maps[i].addr == p)
			maps[i].addr = NULL;
	munmap(p, len);
}

static void unmap_all(void)
{
	for (int i = 0; i < MAX_MAPS; i++) {
		if (maps[i].addr)
			munmap(maps[i].addr, maps[i].len);
		maps[i].addr = NULL;
	}
}

/* ------------------------------------------------------------------ */
/* Syscall wrappers: the result, or -errno. */

static long xioctl(int fd, unsigned long cmd, void *arg)
{
	long ret = ioctl(fd, cmd, arg);

	return ret < 0 ? -errno : ret;
}

static long xwrite(int fd, const void *buf, size_t len)
{
	ssize_t ret = write(fd, buf, len);

	return ret < 0 ? -errno : ret;
}

static int xfsync(int fd)
{
	return fsync(fd) ? -errno : 0;
}

static int dev_open(int flags)
{
	int fd = open(EVRING_DEV_PATH, flags | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

static long set_key(int fd, __u32 mode, __u64 key, __u32 pad)
{
	struct evring_key k = { .key = key, .mode = mode, .pad = pad };

	return xioctl(fd, EVRING_IOC_SET_KEY, &k);
}

/* A writer fd whose records go to @part; -errno on failure. */
static int writer_open(unsigned int part, int flags)
{
	int fd = dev_open(O_WRONLY | flags);
	long ret;

	if (fd < 0)
		return fd;
	ret = set_key(fd, EVRING_KEY_PARTITION, part, 0);
	if (ret) {
		close(fd);
		return (int)ret;
	}
	return fd;
}

static long get_info(int fd, struct evring_info *in)
{
	return xioctl(fd, EVRING_IOC_INFO, in);
}

static long attach(int fd, __u32 part, __u32 flags)
{
	struct evring_attach at = { .partition = part, .flags = flags };

	return xioctl(fd, EVRING_IOC_ATTACH, &at);
}

static long release_at(int fd, __u64 pos)
{
	struct evring_release rel = { .pos = pos };

	return xioctl(fd, EVRING_IOC_RELEASE, &rel);
}

static long batch(int fd, struct evring_iovec *iov, __u32 count, __u32 flags)
{
	struct evring_batch b = {
		.records = (__u64)(uintptr_t)iov,
		.count = count,
		.flags = flags,
	};

	return xioctl(fd, EVRING_IOC_WRITE_BATCH, &b);
}

static short poll_now(int fd, short events)
{
	struct pollfd pfd = { .fd = fd, .events = events };

	if (poll(&pfd, 1, 0) < 0)
		return -1;
	return pfd.revents;
}

/* ------------------------------------------------------------------ */
/* Payloads: record number @tag has a pattern no other record shares. */

static unsigned char pat(unsigned int tag, size_t i)
{
	return (unsigned char)(tag * 131u + i * 7u + (i >> 8) * 13u + 1u);
}

static void fill(void *buf, size_t len, unsigned int tag)
{
	unsigned char *p = buf;

	for (size_t i = 0; i < len; i++)
		p[i] = pat(tag, i);
}

/* Index of the first wrong payload byte of @r, or -1 when all are right. */
static long payload_mismatch(const struct evring_rec *r, unsigned int tag)
{
	const unsigned char *p = (const unsigned char *)(r + 1);

	for (size_t i = 0; i < r->len; i++)
		if (p[i] != pat(tag, i))
			return (long)i;
	return -1;
}

/* The zero page: never mapped, hidden from the compiler's null checks. */
static const void *volatile null_page;

/* A buffer of @len bytes of @tag's pattern; freed by the test's exit. */
static void *pattern(size_t len, unsigned int tag)
{
	void *p = malloc(len ? len : 1);

	if (p)
		fill(p, len, tag);
	return p;
}

/*
 * Two pages, the second PROT_NONE: a pointer into the second faults, a
 * buffer that ends in it faults half way through the copy.
 */
static unsigned char *fault_pages(void)
{
	long pg = sysconf(_SC_PAGESIZE);
	unsigned char *p = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	memset(p, 0x5a, pg);
	if (mprotect(p + pg, pg, PROT_NONE))
		return NULL;
	return p;
}

/* ------------------------------------------------------------------ */
/* A consumer that reads the ring through raw mmap of the published layout. */

struct cons {
	int fd;
	struct evring_layout lay;
	struct evring_cons_page *cp;
	const struct evring_prod_page *pp;
	const unsigned char *data;
	__u64 pos;		/* next record to take */
};

/* Attach to @part and map it; c->pos starts at the kernel's read_pos. */
static int cons_open(struct cons *c, unsigned int part)
{
	void *m;
	long ret;

	memset(c, 0, sizeof(*c));
	c->fd = dev_open(O_RDWR);
	if (c->fd < 0)
		return c->fd;
	ret = attach(c->fd, part, 0);
	if (!ret)
		ret = xioctl(c->fd, EVRING_IOC_LAYOUT, &c->lay);
	if (ret)
		goto fail;
	m = map(c->fd, c->lay.cons_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		c->lay.cons_off);
	if (m == MAP_FAILED) {
		ret = -errno;
		goto fail;
	}
	c->cp = m;
	m = map(c->fd, c->lay.prod_size, PROT_READ, MAP_SHARED,
		c->lay.prod_off);
	if (m == MAP_FAILED) {
		ret = -errno;
		unmap(c->cp, c->lay.cons_size);
		goto fail;
	}
	c->pp = m;
	c->data = (const unsigned char *)m + c->lay.data_off;
	c->pos = __atomic_load_n(&c->cp->read_pos, __ATOMIC_ACQUIRE);
	return 0;
fail:
	close(c->fd);
	c->fd = -1;
	return (int)ret;
}

static void cons_close(struct cons *c)
{
	if (c->fd < 0)
		return;
	unmap(c->cp, c->lay.cons_size);
	unmap((void *)c->pp, c->lay.prod_size);
	close(c->fd);
	c->fd = -1;
}

static __u64 prod_pos(const struct cons *c)
{
	/* Pairs with the kernel's store-release of prod_pos. */
	return __atomic_load_n(&c->pp->prod_pos, __ATOMIC_ACQUIRE);
}

static __u64 rel_pos(const struct cons *c)
{
	/* Pairs with the kernel's store-release of release_pos. */
	return __atomic_load_n(&c->pp->release_pos, __ATOMIC_ACQUIRE);
}

/* The record at c->pos, or NULL when none is committed there yet. */
static const struct evring_rec *cons_peek(const struct cons *c)
{
	if (c->pos >= prod_pos(c))
		return NULL;
	return (const void *)(c->data + (c->pos & (c->lay.data_size - 1)));
}

static const struct evring_rec *cons_next(struct cons *c)
{
	const struct evring_rec *r = cons_peek(c);

	if (r)
		c->pos += EVRING_REC_SIZE(r->len);
	return r;
}

/* Publish c->pos as read_pos. */
static void cons_mark_read(struct cons *c)
{
	__atomic_store_n(&c->cp->read_pos, c->pos, __ATOMIC_RELEASE);
}

/* Take every committed record and release them all. */
static long cons_drain(struct cons *c)
{
	while (cons_next(c))
		;
	cons_mark_read(c);
	return release_at(c->fd, c->pos);
}

/*
 * Take the next record and check it is sequence @seq, @len bytes of
 * pattern @tag, written by @pid.
 */
static const struct evring_rec *
expect_rec(struct __test_metadata *_metadata, struct cons *c, __u64 seq,
	   __u32 len, unsigned int tag, pid_t pid)
{
	__u64 pos = c->pos;
	const struct evring_rec *r = cons_next(c);

	ASSERT_NE(NULL, r) TH_LOG("no record seq %llu at pos %llu (prod %llu)",
				  (unsigned long long)seq,
				  (unsigned long long)pos,
				  (unsigned long long)prod_pos(c));
	ASSERT_EQ(0ull, pos % EVRING_REC_ALIGN);
	ASSERT_EQ(seq, r->seq) TH_LOG("at pos %llu", (unsigned long long)pos);
	ASSERT_EQ(len, r->len) TH_LOG("seq %llu", (unsigned long long)seq);
	ASSERT_EQ(0u, r->flags);
	ASSERT_EQ((__u32)pid, r->pid);
	ASSERT_EQ(-1, payload_mismatch(r, tag))
		TH_LOG("seq %llu payload differs", (unsigned long long)seq);
	return r;
}

/* ------------------------------------------------------------------ */
/* Fixture plumbing. */

/* Set up as root with the module file present, else skip. */
static void load_module(struct __test_metadata *_metadata, const char *params)
{
	int ret;

	/*
	 * The 6.1 harness runs the test body even after SKIP() in setup, so
	 * end the test process here with the harness's skip status.
	 */
	if (geteuid() != 0)
		SKIP(_exit(255), "needs root to load evring.ko");
	if (access(evring_ko_path(), R_OK))
		SKIP(_exit(255), "no module at %s (set EVRING_KO)",
		     evring_ko_path());
	ret = evring_module_load(params);
	ASSERT_EQ(0, ret) TH_LOG("loading evring.ko \"%s\": %s", params,
				 strerror(-ret));
}

static struct evring_nl *test_nl;

/*
 * Undo what a test left: children, mappings, fds; then unload.  A module
 * that will not unload now has leaked a reference.
 */
static void unload_module(struct __test_metadata *_metadata)
{
	int ret;

	signal(SIGALRM, SIG_IGN);
	evt_reap_all();
	unmap_all();
	evring_nl_close(test_nl);
	test_nl = NULL;
	syscall(SYS_close_range, 3, ~0u, 0);
	ret = evring_module_unload();
	EXPECT_EQ(0, ret) TH_LOG("unloading evring: %s", strerror(-ret));
}

static void module_info(struct __test_metadata *_metadata,
			struct evring_info *in)
{
	int fd = dev_open(O_WRONLY);

	ASSERT_LE(0, fd) TH_LOG("open %s: %s", EVRING_DEV_PATH,
				strerror(-fd));
	ASSERT_EQ(0, get_info(fd, in));
	close(fd);
}

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
	alarms++;
}

/* One SIGALRM after @ms, handled by on_alarm with @sa_flags. */
static void alarm_in(int ms, int sa_flags)
{
	struct sigaction sa = { .sa_handler = on_alarm, .sa_flags = sa_flags };
	struct itimerval it = {
		.it_value = { .tv_sec = ms / 1000,
			      .tv_usec = (ms % 1000) * 1000 },
	};

	sigemptyset(&sa.sa_mask);
	alarms = 0;
	sigaction(SIGALRM, &sa, NULL);
	setitimer(ITIMER_REAL, &it, NULL);
}

/* Wait up to @ms for one byte on @fd: 1 when it came, 0 otherwise. */
static int wait_byte(int fd, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char b;

	if (poll(&pfd, 1, ms) != 1)
		return 0;
	return read(fd, &b, 1) == 1;
}

/* ================================================================== */
/* defaults: the module loaded with no parameters. */

FIXTURE(defaults) {
	struct evring_info info;
};

FIXTURE_SETUP(defaults)
{
	load_module(_metadata, "");
	module_info(_metadata, &self->info);
}

FIXTURE_TEARDOWN(defaults)
{
	unload_module(_metadata);
}

TEST_F(defaults, info_reports_version_and_default_parameters)
{
	const int modes[] = { O_WRONLY, O_RDWR };

	for (int i = 0; i < 2; i++) {
		struct evring_info in;
		int fd = dev_open(modes[i]);

		ASSERT_LE(0, fd);
		EVT_POISON(in);
		ASSERT_EQ(0, get_info(fd, &in));
		EXPECT_EQ((__u32)EVRING_UAPI_VERSION, in.version);
		EXPECT_EQ(DEFAULT_PARTITIONS, in.nr_partitions);
		EXPECT_EQ(DEFAULT_RING_SIZE, in.ring_size);
		EXPECT_EQ(DEFAULT_MAX_RECORD, in.max_record);
		EXPECT_NE(0ull, in.epoch);
		EXPECT_NE(POISON64, in.epoch);
		EXPECT_GT(DEFAULT_PARTITIONS, in.partition);
		EXPECT_EQ(0u, in.pad);
		close(fd);
	}
}

TEST_F(defaults, epoch_is_nonzero_and_changes_on_every_load)
{
	struct evring_info a, b, c;

	a = self->info;
	ASSERT_EQ(0, evring_module_load(""));
	module_info(_metadata, &b);
	ASSERT_EQ(0, evring_module_load(""));
	module_info(_metadata, &c);
	EXPECT_NE(0ull, a.epoch);
	EXPECT_NE(0ull, b.epoch);
	EXPECT_NE(0ull, c.epoch);
	EXPECT_NE(a.epoch, b.epoch);
	EXPECT_NE(b.epoch, c.epoch);
	EXPECT_NE(a.epoch, c.epoch);
}

TEST_F(defaults, write_of_zero_bytes_fails_einval)
{
	struct cons c;
	int w = writer_open(0, 0);
	char buf[8] = { 0 };

	ASSERT_LE(0, w);
	ASSERT_EQ(0, cons_open(&c, 0));
	EXPECT_EQ(-EINVAL, xwrite(w, buf, 0));
	EXPECT_EQ(0ull, prod_pos(&c));
	/* The next real record is still the first. */
	ASSERT_EQ(8, xwrite(w, buf, 8));
	EXPECT_EQ(1ull, cons_next(&c)->seq);
}

TEST_F(defaults, write_over_max_record_fails_emsgsize)
{
	__u32 max = self->info.max_record;
	unsigned char *buf = pattern(max + 4096, 1);
	struct cons c;
	int w = writer_open(0, 0);

	ASSERT_LE(0, w);
	ASSERT_EQ(0, cons_open(&c, 0));
	EXPECT_EQ(-EMSGSIZE, xwrite(w, buf, max + 1));
	EXPECT_EQ(-EMSGSIZE, xwrite(w, buf, max + 4096));
	EXPECT_EQ(0ull, prod_pos(&c));
}

TEST_F(defaults, write_of_exactly_max_record_commits_one_record)
{
	__u32 max = self->info.max_record;
	unsigned char *buf = pattern(max, 7);
	struct cons c;
	int w = writer_open(1, 0);

	ASSERT_LE(0, w);
	ASSERT_EQ(0, cons_open(&c, 1));
	ASSERT_EQ((long)max, xwrite(w, buf, max));
	expect_rec(_metadata, &c, 1, max, 7, getpid());
	EXPECT_EQ(EVRING_REC_SIZE(max), prod_pos(&c));
	EXPECT_EQ(NULL, cons_peek(&c));
}

TEST_F(defaults, write_from_bad_pointer_fails_efault_and_commits_nothing)
{
	long pg = sysconf(_SC_PAGESIZE);
	unsigned char *fp = fault_pages();
	unsigned char *buf = pattern(64, 1);
	struct cons c;
	int w = writer_open(2, 0);
	__u64 before;

	ASSERT_NE(NULL, fp);
	ASSERT_LE(0, w);
	ASSERT_EQ(0, cons_open(&c, 2));
	ASSERT_EQ(64, xwrite(w, buf, 64));
	before = prod_pos(&c);

	/* Wholly unreadable, and readable for 100 bytes then unreadable. */
	EXPECT_EQ(-EFAULT, xwrite(w, fp + pg, 16));
	EXPECT_EQ(-EFAULT, xwrite(w, fp + pg - 100, 200));
	EXPECT_EQ(-EFAULT, xwrite(w, null_page, 16));
	EXPECT_EQ(before, prod_pos(&c));

	/* No sequence number was spent on the failed writes. */
	fill(buf, 64, 2);
	ASSERT_EQ(64, xwrite(w, buf, 64));
	expect_rec(_metadata, &c, 1, 64, 1, getpid());
	expect_rec(_metadata, &c, 2, 64, 2, getpid());
	EXPECT_EQ(NULL, cons_peek(&c));
}

TEST_F(defaults, write_and_batch_on_a_consumer_fd_fail_einval)
{
	unsigned char buf[16] = { 1 };
	struct evring_iovec iov = { .base = (uintptr_t)buf, .len = 16 };
	struct cons c;

	ASSERT_EQ(0, cons_open(&c, 0));
	EXPECT_EQ(-EINVAL, xwrite(c.fd, buf, 16));
	EXPECT_EQ(-EINVAL, batch(c.fd, &iov, 1, 0));
	EXPECT_EQ(0ull, prod_pos(&c));
}

TEST_F(defaults, read_on_the_device_fails_einval)
{
	char buf[64];
	struct cons c;
	int fd = dev_open(O_RDWR);

	ASSERT_LE(0, fd);
	errno = 0;
	EXPECT_EQ(-1, read(fd, buf, sizeof(buf)));
	EXPECT_EQ(EINVAL, errno);
	ASSERT_EQ(0, cons_open(&c, 0));
	errno = 0;
	EXPECT_EQ(-1, read(c.fd, buf, sizeof(buf)));
	EXPECT_EQ(EINVAL, errno);
}

TEST_F(defaults, set_key_with_unknown_mode_fails_einval)
{
	struct evring_info in;
	int w = dev_open(O_WRONLY);

	ASSERT_LE(0, w);
	ASSERT_EQ(0, set_key(w, EVRING_KEY_PARTITION, 3, 0));
	EXPECT_EQ(-EINVAL, set_key(w, 3, 0, 0));
	EXPECT_EQ(-EINVAL, set_key(w, 0x80000000u, 0, 0));
	EXPECT_EQ(-EINVAL, set_key(w, ~0u, 1, 0));
	/* A rejected key leaves the partition as it was. */
	EVT_POISON(in);
	ASSERT_EQ(0, get_info(w, &in));
	EXPECT_EQ(3u, in.partition);
}

TEST_F(defaults, set_key_with_nonzero_pad_fails_einval)
{
	struct evring_info in;
	int w = dev_open(O_WRONLY);

	ASSERT_LE(0, w);
	ASSERT_EQ(0, set_key(w, EVRING_KEY_PARTITION, 2, 0));
	EXPECT_EQ(-EINVAL, set_key(w, EVRING_KEY_PARTITION, 1, 1));
	EXPECT_EQ(-EINVAL, set_key(w, EVRING_KEY_HASH, 1, 0x80000000u));
	EXPECT_EQ(-EINVAL, set_key(w, EVRING_KEY_TGID, 0, ~0u));
	EVT_POISON(in);
	ASSERT_EQ(0, get_info(w, &in));
	EXPECT_EQ(2u, in.partition);
}

TEST_F(defaults, set_key_partition_out_of_range_fails_einval)
{
	__u32 n = self->info.nr_partitions;
	struct evring_info in;
	int w = dev_open(O_WRONLY);

	ASSERT_LE(0, w);
	ASSERT_EQ(0, set_key(w, EVRING_KEY_PARTITION, 1, 0));
	EXPECT_EQ(-EINVAL, set_key(w, EVRING_KEY_PARTITION, n, 0));
	EXPECT_EQ(-EINVAL, set_key(w, EVRING_KEY_PARTITION, EVRING_PARTITIONS_MAX, 0));
	/* The key is 64 bits: a partition number in the high half is out too. */
	EXPECT_EQ(-EINVAL, set_key(w, EVRING_KEY_PARTITION, 1ull << 32, 0));
	EXPECT_EQ(-EINVAL, set_key(w, EVRING_KEY_PARTITION, ~0ull, 0));
	EVT_POISON(in);
	ASSERT_EQ(0, get_info(w, &in));
	EXPECT_EQ(1u, in.partition);
}

TEST_F(defaults, set_key_partition_pins_records_to_that_partition)
{
	__u32 n = self->info.nr_partitions;
	unsigned char buf[40];
	struct cons c[DEFAULT_PARTITIONS];
	int w = dev_open(O_WRONLY);

	ASSERT_LE(0, w);
	ASSERT_EQ(DEFAULT_PARTITIONS, n);
	for (__u32 p = 0; p < n; p++) {
		ASSERT_EQ(0, cons_open(&c[p], p));
	}

	for (__u32 p = 0; p < n; p++) {
		struct evring_info in;
		__u64 before[DEFAULT_PARTITIONS];

		ASSERT_EQ(0, set_key(w, EVRING_KEY_PARTITION, p, 0));
		EVT_POISON(in);
		ASSERT_EQ(0, get_info(w, &in));
		EXPECT_EQ(p, in.partition);
		for (__u32 q = 0; q < n; q++)
			before[q] = prod_pos(&c[q]);
		fill(buf, sizeof(buf), p);
		ASSERT_EQ((long)sizeof(buf), xwrite(w, buf, sizeof(buf)));
		for (__u32 q = 0; q < n; q++) {
			EXPECT_EQ(before[q] + (q == p ? EVRING_REC_SIZE(sizeof(buf)) : 0),
				  prod_pos(&c[q])) TH_LOG("pinned to %u, partition %u", p, q);
		}
		expect_rec(_metadata, &c[p], 1, sizeof(buf), p, getpid());
	}
}

TEST_F(defaults, set_key_hash_sends_equal_keys_to_one_partition)
{
	__u32 n = self->info.nr_partitions;
	struct cons c[DEFAULT_PARTITIONS];
	unsigned char buf[24];
	unsigned int seen = 0;
	__u64 seq[DEFAULT_PARTITIONS] = { 0 };
	int w1 = dev_open(O_WRONLY), w2 = dev_open(O_WRONLY);

	ASSERT_LE(0, w1);
	ASSERT_LE(0, w2);
	for (__u32 p = 0; p < n; p++) {
		ASSERT_EQ(0, cons_open(&c[p], p));
	}

	for (unsigned int i = 0; i < 64; i++) {
		/* Small keys, and keys far beyond nr_partitions. */
		__u64 key = i < 32 ? i : ((__u64)i << 40) ^ 0x9e3779b97f4a7c15ull;
		struct evring_info a, b;

		ASSERT_EQ(0, set_key(w1, EVRING_KEY_HASH, key, 0));
		ASSERT_EQ(0, set_key(w2, EVRING_KEY_HASH, key, 0));
		EVT_POISON(a);
		EVT_POISON(b);
		ASSERT_EQ(0, get_info(w1, &a));
		ASSERT_EQ(0, get_info(w2, &b));
		ASSERT_GT(n, a.partition);
		EXPECT_EQ(a.partition, b.partition)
			TH_LOG("key %llx", (unsigned long long)key);
		seen |= 1u << a.partition;

		/* The record lands where INFO said. */
		fill(buf, sizeof(buf), i);
		ASSERT_EQ((long)sizeof(buf), xwrite(w1, buf, sizeof(buf)));
		expect_rec(_metadata, &c[a.partition], ++seq[a.partition],
			   sizeof(buf), i, getpid());
	}
	/* 64 keys all hashing into one of 4 partitions is no hash. */
	EXPECT_LE(2, __builtin_popcount(seen));
}

TEST_F(defaults, set_key_tgid_restores_the_default_partition)
{
	__u32 n = self->info.nr_partitions;
	struct evring_info in;
	unsigned char buf[8] = { 0 };
	struct cons c;
	__u32 dflt;
	int w = dev_open(O_WRONLY);

	ASSERT_LE(0, w);
	EVT_POISON(in);
	ASSERT_EQ(0, get_info(w, &in));
	dflt = in.partition;
	for (__u32 p = 0; p < n; p++) {
		ASSERT_EQ(0, set_key(w, EVRING_KEY_PARTITION, p, 0));
		ASSERT_EQ(0, set_key(w, EVRING_KEY_TGID, 0, 0));
		EVT_POISON(in);
		ASSERT_EQ(0, get_info(w, &in));
		EXPECT_EQ(dflt, in.partition);
	}
	ASSERT_EQ(0, set_key(w, EVRING_KEY_HASH, 12345, 0));
	ASSERT_EQ(0, set_key(w, EVRING_KEY_TGID, 0, 0));
	ASSERT_EQ(0, cons_open(&c, dflt));
	ASSERT_EQ(8, xwrite(w, buf, 8));
	EXPECT_EQ(EVRING_REC_SIZE(8), prod_pos(&c));
}

struct info_from_thread {
	struct evring_info in;
	long ret;
	pid_t tid;
};

static void *thread_info(void *arg)
{
	struct info_from_thread *t = arg;
	int fd = dev_open(O_WRONLY);

	t->tid = (pid_t)syscall(SYS_gettid);
	t->ret = fd < 0 ? fd : get_info(fd, &t->in);
	if (fd >= 0)
		close(fd);
	return NULL;
}

TEST_F(defaults, default_partition_is_the_same_for_every_fd_of_a_process)
{
	const int modes[] = { O_WRONLY, O_RDWR, O_WRONLY | O_NONBLOCK, O_WRONLY };
	struct info_from_thread t;
	struct evring_info in;
	pthread_t th;
	__u32 part = ~0u;

	for (int i = 0; i < 4; i++) {
		int fd = dev_open(modes[i]);

		ASSERT_LE(0, fd);
		EVT_POISON(in);
		ASSERT_EQ(0, get_info(fd, &in));
		if (i == 0)
			part = in.partition;
		EXPECT_EQ(part, in.partition);
	}
	/* A thread is the same process: same tgid, same partition. */
	EVT_POISON(t.in);
	ASSERT_EQ(0, pthread_create(&th, NULL, thread_info, &t));
	ASSERT_EQ(0, pthread_join(th, NULL));
	ASSERT_EQ(0, t.ret);
	ASSERT_NE(getpid(), t.tid);
	EXPECT_EQ(part, t.in.partition);
}

/* Child: report the default partition through the exit status, then write
 * one record there.
 */
static int child_write_default(void *arg)
{
	struct evring_info in;
	int fd = dev_open(O_WRONLY);
	unsigned char buf[16];

	if (fd < 0 || get_info(fd, &in))
		return 200;
	fill(buf, sizeof(buf), (unsigned int)getpid());
	if (xwrite(fd, buf, sizeof(buf)) != sizeof(buf))
		return 201;
	return (int)in.partition;
}

TEST_F(defaults, default_partition_follows_the_writing_process)
{
	__u32 n = self->info.nr_partitions;
	struct cons c[DEFAULT_PARTITIONS];
	pid_t pids[16];
	int parts[16];
	unsigned int seen = 0;

	for (__u32 p = 0; p < n; p++) {
		ASSERT_EQ(0, cons_open(&c[p], p));
	}
	for (int i = 0; i < 16; i++) {
		pids[i] = evt_spawn(child_write_default, NULL);
		ASSERT_LT(0, pids[i]);
		parts[i] = evt_wait(pids[i], 10000);
		ASSERT_GT((int)n, parts[i]) TH_LOG("child status %d", parts[i]);
		ASSERT_LE(0, parts[i]);
		seen |= 1u << parts[i];
	}
	/* Each child's record is in the partition INFO told it. */
	for (__u32 p = 0; p < n; p++) {
		const struct evring_rec *r;

		while ((r = cons_next(&c[p]))) {
			int i;

			for (i = 0; i < 16 && (__u32)pids[i] != r->pid; i++)
				;
			ASSERT_GT(16, i) TH_LOG("record from unknown pid %u", r->pid);
			EXPECT_EQ(parts[i], (int)p);
			EXPECT_EQ(-1, payload_mismatch(r, (unsigned int)pids[i]));
			pids[i] = -1;
		}
	}
	for (int i = 0; i < 16; i++) {
		EXPECT_EQ(-1, pids[i]) TH_LOG("child %d's record is missing", i);
	}
	/* 16 processes all on one of 4 partitions: tgid is not hashed. */
	EXPECT_LE(2, __builtin_popcount(seen));
}

struct thread_write {
	int fd;
	long ret;
	pid_t tid;
};

static void *thread_write(void *arg)
{
	struct thread_write *t = arg;
	unsigned char buf[32];

	t->tid = (pid_t)syscall(SYS_gettid);
	fill(buf, sizeof(buf), 5);
	t->ret = xwrite(t->fd, buf, sizeof(buf));
	return NULL;
}

TEST_F(defaults, record_pid_is_the_tgid_even_from_a_thread)
{
	struct thread_write t = { .fd = writer_open(3, 0) };
	struct cons c;
	pthread_t th;

	ASSERT_LE(0, t.fd);
	ASSERT_EQ(0, cons_open(&c, 3));
	ASSERT_EQ(0, pthread_create(&th, NULL, thread_write, &t));
	ASSERT_EQ(0, pthread_join(th, NULL));
	ASSERT_EQ(32, t.ret);
	ASSERT_NE(getpid(), t.tid);
	expect_rec(_metadata, &c, 1, 32, 5, getpid());
}

/* Child: real uid 4321, effective uid still 0; write one record to 1. */
static int child_write_as_ruid(void *arg)
{
	unsigned char buf[16];
	int fd;

	if (setresuid(4321, 0, 0))
		return 100;
	fd = writer_open(1, 0);
	if (fd < 0)
		return 101;
	fill(buf, sizeof(buf), 9);
	return xwrite(fd, buf, sizeof(buf)) == sizeof(buf) ? 0 : 102;
}

TEST_F(defaults, record_uid_is_the_writers_real_uid)
{
	const struct evring_rec *r;
	struct cons c;
	pid_t pid;

	ASSERT_EQ(0, cons_open(&c, 1));
	pid = evt_spawn(child_write_as_ruid, NULL);
	ASSERT_LT(0, pid);
	ASSERT_EQ(0, evt_wait(pid, 10000));
	r = expect_rec(_metadata, &c, 1, 16, 9, pid);
	EXPECT_EQ(4321u, r->uid);
}

/* Child: become nobody entirely, then open and write as a plain user. */
static int child_write_as_nobody(void *arg)
{
	unsigned char buf[16];
	int fd;

	if (setresgid(NOBODY, NOBODY, NOBODY) ||
	    setresuid(NOBODY, NOBODY, NOBODY))
		return 100;
	fd = writer_open(2, 0);
	if (fd < 0) {
		fprintf(stderr, "# nobody cannot open %s: %s\n",
			EVRING_DEV_PATH, strerror(-fd));
		return 101;
	}
	fill(buf, sizeof(buf), 11);
	if (xwrite(fd, buf, sizeof(buf)) != sizeof(buf))
		return 102;
	return 0;
}

TEST_F(defaults, unprivileged_user_can_write_and_is_recorded)
{
	const struct evring_rec *r;
	struct cons c;
	pid_t pid;

	ASSERT_EQ(0, cons_open(&c, 2));
	pid = evt_spawn(child_write_as_nobody, NULL);
	ASSERT_LT(0, pid);
	ASSERT_EQ(0, evt_wait(pid, 10000));
	r = expect_rec(_metadata, &c, 1, 16, 11, pid);
	EXPECT_EQ((__u32)NOBODY, r->uid);
}

/* Grandchild: pid 1 of a new pid namespace; writes one record to 3. */
static int write_as_pid_1(void)
{
	unsigned char buf[16];
	int fd;

	if (getpid() != 1)
		return 110;
	fd = writer_open(3, 0);
	if (fd < 0)
		return 111;
	fill(buf, sizeof(buf), 12);
	return xwrite(fd, buf, sizeof(buf)) == sizeof(buf) ? 0 : 112;
}

/* Child: start the grandchild in a new pid namespace, report its pid. */
static int child_write_from_pid_ns(void *arg)
{
	int *pipe_w = arg, status;
	pid_t gc;

	if (unshare(CLONE_NEWPID))
		return 100;
	gc = fork();
	if (gc < 0)
		return 101;
	if (gc == 0)
		_exit(write_as_pid_1());
	if (write(*pipe_w, &gc, sizeof(gc)) != sizeof(gc))
		return 102;
	if (waitpid(gc, &status, 0) != gc)
		return 103;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 104;
}

TEST_F(defaults, record_pid_is_the_tgid_in_the_initial_pid_namespace)
{
	struct cons c;
	pid_t pid, gc = 0;
	int fds[2];

	ASSERT_EQ(0, cons_open(&c, 3));
	ASSERT_EQ(0, pipe2(fds, O_CLOEXEC));
	pid = evt_spawn(child_write_from_pid_ns, &fds[1]);
	ASSERT_LT(0, pid);
	ASSERT_EQ(0, evt_wait(pid, 10000));
	ASSERT_EQ((ssize_t)sizeof(gc), read(fds[0], &gc, sizeof(gc)));
	/* It saw itself as pid 1; the record names it as everyone else does. */
	ASSERT_LT(1, gc);
	expect_rec(_metadata, &c, 1, 16, 12, gc);
}

/*
 * Child: uid 4242, then uid 0 of its own user namespace; writes one record
 * to partition 3.  When no user namespace can be made here, sends the
 * errno down the pipe and exits 77.
 */
static int child_write_from_user_ns(void *arg)
{
	static const char map[] = "0 4242 1";
	int *pipe_w = arg, fd, err;
	unsigned char buf[16];

	if (setgroups(0, NULL) || setresgid(4242, 4242, 4242) ||
	    setresuid(4242, 4242, 4242))
		return 100;
	/* Changing uid made us undumpable: /proc/self would be root's. */
	if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0))
		return 101;
	if (unshare(CLONE_NEWUSER)) {
		err = errno;
		return write(*pipe_w, &err, sizeof(err)) == sizeof(err) ? 77 : 102;
	}
	fd = open("/proc/self/uid_map", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, map, strlen(map)) != (ssize_t)strlen(map))
		return 103;
	close(fd);
	if (getuid() != 0)
		return 104;
	fd = writer_open(3, 0);
	if (fd < 0)
		return 105;
	fill(buf, sizeof(buf), 13);
	return xwrite(fd, buf, sizeof(buf)) == sizeof(buf) ? 0 : 106;
}

TEST_F(defaults, record_uid_is_the_uid_in_the_initial_user_namespace)
{
	const struct evring_rec *r;
	struct cons c;
	int fds[2], ret, err = 0;
	pid_t pid;

	ASSERT_EQ(0, cons_open(&c, 3));
	ASSERT_EQ(0, pipe2(fds, O_CLOEXEC));
	pid = evt_spawn(child_write_from_user_ns, &fds[1]);
	ASSERT_LT(0, pid);
	ret = evt_wait(pid, 10000);
	if (ret == 77) {
		ASSERT_EQ((ssize_t)sizeof(err), read(fds[0], &err, sizeof(err)));
		SKIP(return, "cannot create a user namespace here (%s)",
		     strerror(err));
	}
	ASSERT_EQ(0, ret);
	/* It saw itself as uid 0; the record names the uid it really is. */
	r = expect_rec(_metadata, &c, 1, 16, 13, pid);
	EXPECT_EQ(4242u, r->uid);
}

TEST_F(defaults, batch_with_zero_count_fails_einval)
{
	unsigned char buf[8] = { 0 };
	struct evring_iovec iov = { .base = (uintptr_t)buf, .len = 8 };
	struct cons c;
	int w = writer_open(0, 0);

	ASSERT_LE(0, w);
	ASSERT_EQ(0, cons_open(&c, 0));
	EXPECT_EQ(-EINVAL, batch(w, &iov, 0, 0));
	EXPECT_EQ(0ull, prod_pos(&c));
}

TEST_F(defaults, batch_over_batch_max_fails_e2big)
{
	unsigned char buf[8] = { 0 };
	struct evring_iovec *iov = calloc(EVRING_BATCH_MAX + 1, sizeof(*iov));
	struct cons c;
	int w = writer_open(0, 0);

	ASSERT_NE(NULL, iov);
	ASSERT_LE(0, w);
	ASSERT_EQ(0, cons_open(&c, 0));
	for (int i = 0; i <= EVRING_BATCH_MAX; i++)
		iov[i] = (struct evring_iovec){ .base = (uintptr_t)buf, .len = 8 };
	EXPECT_EQ(-E2BIG, batch(w, iov, EVRING_BATCH_MAX + 1, 0));
	EXPECT_EQ(-E2BIG, batch(w, iov, ~0u, 0));
	EXPECT_EQ(0ull, prod_pos(&c));
}

TEST_F(defaults, batch_of_batch_max_records_commits_them_all)
{
	unsigned char buf[8] = { 0 };
	struct evring_iovec *iov = calloc(EVRING_BATCH_MAX, sizeof(*iov));
	struct cons c;
	int w = writer_open(0, 0);

	ASSERT_NE(NULL, iov);
	ASSERT_LE(0, w);
	ASSERT_EQ(0, cons_open(&c, 0));
	for (int i = 0; i < EVRING_BATCH_MAX; i++)
		iov[i] = (struct evring_iovec){ .base = (uintptr_t)buf, .len = 8 };
	EXPECT_EQ(EVRING_BATCH_MAX, batch(w, iov, EVRING_BATCH_MAX, 0));
	EXPECT_EQ(EVRING_BATCH_MAX * EVRING_REC_SIZE(8), prod_pos(&c));
}

TEST_F(defaults, batch_with_nonzero_flags_fails_einval)
{
	unsigned char buf[8] = { 0 };
	struct evring_iovec iov = { .base = (uintptr_t)buf, .len = 8 };
	struct cons c;
	int w = writer_open(0, 0);

	ASSERT_LE(0, w);
	ASSERT_EQ(0, cons_open(&c, 0));
	EXPECT_EQ(-EINVAL, batch(w, &iov, 1, 1));
	EXPECT_EQ(-EINVAL, batch(w, &iov, 1, 0x80000000u));
	EXPECT_EQ(0ull, prod_pos(&c));
}

TEST_F(defaults, batch_with_bad_records_pointer_fails_efault)
{
	long pg = sysconf(_SC_PAGESIZE);
	unsigned char *fp = fault_pages();
	struct cons c;
	int w = writer_open(0, 0);

	ASSERT_NE(NULL, fp);
	ASSERT_LE(0, w);
	ASSERT_EQ(0, cons_open(&c, 0));
	EXPECT_EQ(-EFAULT, batch(w, (void *)(fp + pg), 1, 0));
	EXPECT_EQ(-EFAULT, batch(w, (void *)(fp + pg), 3, 0));
	EXPECT_EQ(-EFAULT, batch(w, NULL, 2, 0));
	EXPECT_EQ(0ull, prod_pos(&c));
}

/* The ways one record of a batch can be unwritable, with the errno each gives. */
enum bad_kind { BAD_EMPTY, BAD_TOO_BIG, BAD_POINTER, BAD_PAD, BAD_KINDS };

static const char *const bad_name[BAD_KINDS] = {
	"zero length", "max_record + 1", "unreadable base", "nonzero pad",
};

static const int bad_errno[BAD_KINDS] = { EINVAL, EMSGSIZE, EFAULT, EINVAL };

static void make_bad(struct evring_iovec *iov, enum bad_kind k, __u32 max,
		     unsigned char *fault_page)
{
	switch (k) {
	case BAD_EMPTY:
		iov->len = 0;
		break;
	case BAD_TOO_BIG:
		iov->len = max + 1;
		break;
	case BAD_POINTER:
		iov->base = (uintptr_t)fault_page;
		break;
	default:
		iov->pad = 1;
		break;
	}
}

TEST_F(defaults, batch_whose_first_record_is_bad_fails_and_writes_nothing)
{
	long pg = sysconf(_SC_PAGESIZE);
	__u32 max = self->info.max_record;
	unsigned char *fp = fault_pages();
	unsigned char *buf = pattern(max + 1, 3);
	struct evring_iovec iov[3];
	struct cons c;
	int w = writer_open(0, 0);

	ASSERT_NE(NULL, fp);
	ASSERT_LE(0, w);
	ASSERT_EQ(0, cons_open(&c, 0));
	for (int k = 0; k < BAD_KINDS; k++) {
		for (int i = 0; i < 3; i++)
			iov[i] = (struct evring_iovec){ .base = (uintptr_t)buf,
							.len = 16 };
		make_bad(&iov[0], k, max, fp + pg);
		EXPECT_EQ(-bad_errno[k], batch(w, iov, 3, 0))
			TH_LOG("first record: %s", bad_name[k]);
		EXPECT_EQ(0ull, prod_pos(&c)) TH_LOG("first record: %s", bad_name[k]);
	}
	ASSERT_EQ(16, xwrite(w, buf, 16));
	expect_rec(_metadata, &c, 1, 16, 3, getpid());
}

TEST_F(defaults, batch_stops_at_a_bad_third_record_and_commits_exactly_two)
{
	long pg = sysconf(_SC_PAGESIZE);
	__u32 max = self->info.max_record;
	unsigned char *fp = fault_pages();
	unsigned char *a = pattern(max + 1, 20), *b = pattern(max + 1, 21);
	struct evring_iovec iov[5];
	struct cons c;
	__u64 seq = 0;
	int w = writer_open(1, 0);

	ASSERT_NE(NULL, fp);
	ASSERT_LE(0, w);
	ASSERT_EQ(0, cons_open(&c, 1));
	for (int k = 0; k < BAD_KINDS; k++) {
		__u64 before = prod_pos(&c);

		iov[0] = (struct evring_iovec){ .base = (uintptr_t)a, .len = 13 };
		iov[1] = (struct evring_iovec){ .base = (uintptr_t)b, .len = 100 };
		for (int i = 2; i < 5; i++)
			iov[i] = (struct evring_iovec){ .base = (uintptr_t)a,
							.len = 8 };
		make_bad(&iov[2], k, max, fp + pg);
		EXPECT_EQ(2, batch(w, iov, 5, 0)) TH_LOG("third record: %s",
							 bad_name[k]);
		EXPECT_EQ(before + EVRING_REC_SIZE(13) + EVRING_REC_SIZE(100),
			  prod_pos(&c)) TH_LOG("third record: %s", bad_name[k]);
		expect_rec(_metadata, &c, ++seq, 13, 20, getpid());
		expect_rec(_metadata, &c, ++seq, 100, 21, getpid());
		EXPECT_EQ(NULL, cons_peek(&c));
	}
}

TEST_F(defaults, batch_of_100_commits_100_contiguous_records)
{
	struct evring_iovec iov[100];
	unsigned char *bufs[100];
	struct cons c;
	int w = writer_open(2, 0);

	ASSERT_LE(0, w);
	ASSERT_EQ(0, cons_open(&c, 2));
	for (int i = 0; i < 100; i++) {
		__u32 len = 1 + (i * 37) % 500;

		bufs[i] = pattern(len, 100 + i);
		ASSERT_NE(NULL, bufs[i]);
		iov[i] = (struct evring_iovec){ .base = (uintptr_t)bufs[i],
						.len = len };
	}
	ASSERT_EQ(100, batch(w, iov, 100, 0));
	for (int i = 0; i < 100; i++) {
		expect_rec(_metadata, &c, i + 1, iov[i].len, 100 + i, getpid());
	}
	EXPECT_EQ(NULL, cons_peek(&c));
}

TEST_F(defaults, unknown_ioctl_fails_enotty)
{
	const unsigned long cmds[] = {
		_IO(EVRING_IOC_MAGIC, 0x7f),
		_IO(EVRING_IOC_MAGIC, 0x03),
		_IOR(EVRING_IOC_MAGIC, 0x00, __u64),	/* INFO, wrong size */
		_IOR(EVRING_IOC_MAGIC, 0x01, struct evring_key), /* wrong dir */
		_IOWR(EVRING_IOC_MAGIC, 0x10, struct evring_attach),
		_IOW(EVRING_IOC_MAGIC, 0x12, struct evring_layout),
		TCGETS,
		_IO('X', 0x00),
	};
	static __u64 arg[512];
	struct cons c;
	int w = dev_open(O_WRONLY);

	ASSERT_LE(0, w);
	ASSERT_EQ(0, cons_open(&c, 0));
	for (unsigned int i = 0; i < ARRAY_SIZE(cmds); i++) {
		EXPECT_EQ(-ENOTTY, xioctl(w, cmds[i], arg))
			TH_LOG("writer fd, cmd %#lx", cmds[i]);
		EXPECT_EQ(-ENOTTY, xioctl(c.fd, cmds[i], arg))
			TH_LOG("consumer fd, cmd %#lx", cmds[i]);
	}
}

TEST_F(defaults, ioctl_with_unreadable_argument_fails_efault)
{
	long pg = sysconf(_SC_PAGESIZE);
	unsigned char *fp = fault_pages();
	void *bad;
	struct cons c;
	int w = dev_open(O_WRONLY), r = dev_open(O_RDWR);

	ASSERT_NE(NULL, fp);
	bad = fp + pg;
	ASSERT_LE(0, w);
	ASSERT_LE(0, r);
	EXPECT_EQ(-EFAULT, xioctl(w, EVRING_IOC_INFO, bad));
	EXPECT_EQ(-EFAULT, xioctl(w, EVRING_IOC_SET_KEY, bad));
	EXPECT_EQ(-EFAULT, xioctl(w, EVRING_IOC_WRITE_BATCH, bad));
	EXPECT_EQ(-EFAULT, xioctl(r, EVRING_IOC_ATTACH, bad));
	/* The failed ATTACH left nothing attached, anywhere. */
	EXPECT_EQ(0, attach(r, 0, 0));
	EXPECT_EQ(-EFAULT, xioctl(r, EVRING_IOC_LAYOUT, bad));
	EXPECT_EQ(-EFAULT, xioctl(r, EVRING_IOC_RELEASE, bad));
	close(r);
	ASSERT_EQ(0, cons_open(&c, 0));
}

/* Child: without CAP_SYS_ADMIN from the start, open and attach. */
static int child_attach_without_cap(void *arg)
{
	int fd;
	long ret;

	if (evt_drop_cap(CAP_SYS_ADMIN))
		return 100;
	fd = dev_open(O_RDWR);
	if (fd < 0)
		return 101;
	ret = attach(fd, 0, 0);
	if (ret != -EPERM) {
		fprintf(stderr, "# attach without CAP_SYS_ADMIN: %ld\n", ret);
		return 102;
	}
	return 0;
}

TEST_F(defaults, attach_without_cap_sys_admin_fails_eperm)
{
	struct cons c;
	pid_t pid = evt_spawn(child_attach_without_cap, NULL);

	ASSERT_LT(0, pid);
	EXPECT_EQ(0, evt_wait(pid, 10000));
	/* The refused attach did not take the partition. */
	ASSERT_EQ(0, cons_open(&c, 0));
}

/* Child: a plain user (the node is world-writable) tries to attach. */
static int child_attach_as_nobody(void *arg)
{
	int fd;
	long ret;

	if (setresgid(NOBODY, NOBODY, NOBODY) ||
	    setresuid(NOBODY, NOBODY, NOBODY))
		return 100;
	fd = dev_open(O_RDWR);
	if (fd < 0) {
		fprintf(stderr, "# nobody cannot open O_RDWR: %s\n",
			strerror(-fd));
		return 101;
	}
	ret = attach(fd, 0, 0);
	if (ret != -EPERM) {
		fprintf(stderr, "# attach as nobody: %ld\n", ret);
		return 102;
	}
	return 0;
}

TEST_F(defaults, attach_by_unprivileged_user_fails_eperm)
{
	struct cons c;
	pid_t pid = evt_spawn(child_attach_as_nobody, NULL);

	ASSERT_LT(0, pid);
	EXPECT_EQ(0, evt_wait(pid, 10000));
	ASSERT_EQ(0, cons_open(&c, 0));
}

/* Child: open as root, become nobody, then attach with root's fd. */
static int child_attach_after_setuid(void *arg)
{
	int fd = dev_open(O_RDWR);
	long ret;

	if (fd < 0)
		return 101;
	if (setresgid(NOBODY, NOBODY, NOBODY) ||
	    setresuid(NOBODY, NOBODY, NOBODY))
		return 100;
	ret = attach(fd, 0, 0);
	if (ret != -EPERM) {
		fprintf(stderr, "# attach after setresuid: %ld\n", ret);
		return 102;
	}
	return 0;
}

TEST_F(defaults, attach_checks_the_callers_capability_not_the_openers)
{
	struct cons c;
	pid_t pid = evt_spawn(child_attach_after_setuid, NULL);

	ASSERT_LT(0, pid);
	EXPECT_EQ(0, evt_wait(pid, 10000));
	ASSERT_EQ(0, cons_open(&c, 0));
}

TEST_F(defaults, second_consumer_of_a_partition_fails_ebusy)
{
	struct cons c;
	int fd = dev_open(O_RDWR);

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, cons_open(&c, 1));
	EXPECT_EQ(-EBUSY, attach(fd, 1, 0));
	/* The same fd may still take a free partition. */
	EXPECT_EQ(0, attach(fd, 2, 0));
}

TEST_F(defaults, attaching_an_attached_fd_again_fails_ebusy)
{
	int fd = dev_open(O_RDWR), other = dev_open(O_RDWR);

	ASSERT_LE(0, fd);
	ASSERT_LE(0, other);
	ASSERT_EQ(0, attach(fd, 0, 0));
	EXPECT_EQ(-EBUSY, attach(fd, 0, 0));
	EXPECT_EQ(-EBUSY, attach(fd, 1, 0));
	/* The refused attach did not take partition 1. */
	EXPECT_EQ(0, attach(other, 1, 0));
}

TEST_F(defaults, attach_to_bad_partition_fails_einval)
{
	__u32 n = self->info.nr_partitions;
	int fd = dev_open(O_RDWR);

	ASSERT_LE(0, fd);
	EXPECT_EQ(-EINVAL, attach(fd, n, 0));
	EXPECT_EQ(-EINVAL, attach(fd, EVRING_PARTITIONS_MAX, 0));
	EXPECT_EQ(-EINVAL, attach(fd, ~0u, 0));
	/* Still unattached: a good attach works. */
	EXPECT_EQ(0, attach(fd, n - 1, 0));
}

TEST_F(defaults, attach_with_nonzero_flags_fails_einval)
{
	int fd = dev_open(O_RDWR);

	ASSERT_LE(0, fd);
	EXPECT_EQ(-EINVAL, attach(fd, 0, 1));
	EXPECT_EQ(-EINVAL, attach(fd, 0, 0x80000000u));
	EXPECT_EQ(0, attach(fd, 0, 0));
}

TEST_F(defaults, attach_on_fd_not_open_for_reading_and_writing_fails_einval)
{
	int wo = dev_open(O_WRONLY), ro = dev_open(O_RDONLY);
	int rw = dev_open(O_RDWR);

	ASSERT_LE(0, wo);
	ASSERT_LE(0, ro);
	ASSERT_LE(0, rw);
	EXPECT_EQ(-EINVAL, attach(wo, 0, 0));
	EXPECT_EQ(-EINVAL, attach(ro, 0, 0));
	EXPECT_EQ(0, attach(rw, 0, 0));
}

TEST_F(defaults, layout_release_detach_on_unattached_fd_fail_einval)
{
	const int modes[] = { O_RDWR, O_WRONLY };

	for (int i = 0; i < 2; i++) {
		struct evring_layout lay;
		int fd = dev_open(modes[i]);

		ASSERT_LE(0, fd);
		EXPECT_EQ(-EINVAL, xioctl(fd, EVRING_IOC_LAYOUT, &lay));
		EXPECT_EQ(-EINVAL, release_at(fd, 0));
		EXPECT_EQ(-EINVAL, xioctl(fd, EVRING_IOC_DETACH, NULL));
		close(fd);
	}
}

TEST_F(defaults, detach_frees_the_partition_and_keeps_its_positions)
{
	struct evring_layout lay;
	unsigned char buf[24];
	struct cons c, d;
	int w = writer_open(0, 0), fd = dev_open(O_RDWR);
	__u64 mid;

	ASSERT_LE(0, w);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, cons_open(&c, 0));
	for (int i = 0; i < 3; i++) {
		fill(buf, sizeof(buf), i);
		ASSERT_EQ(24, xwrite(w, buf, sizeof(buf)));
	}
	expect_rec(_metadata, &c, 1, 24, 0, getpid());
	mid = c.pos;
	ASSERT_EQ(0, release_at(c.fd, mid));
	expect_rec(_metadata, &c, 2, 24, 1, getpid());
	cons_mark_read(&c);

	ASSERT_EQ(0, xioctl(c.fd, EVRING_IOC_DETACH, NULL));
	EXPECT_EQ(-EINVAL, xioctl(c.fd, EVRING_IOC_LAYOUT, &lay));
	EXPECT_EQ(-EINVAL, release_at(c.fd, c.pos));
	EXPECT_EQ(-EINVAL, xioctl(c.fd, EVRING_IOC_DETACH, NULL));
	/* A detached fd cannot map the ring any more. */
	EXPECT_EQ(MAP_FAILED, map(c.fd, c.lay.cons_size, PROT_READ, MAP_SHARED,
				  c.lay.cons_off));
	EXPECT_EQ(EPERM, errno);
	EXPECT_EQ(mid, rel_pos(&c));
	cons_close(&c);

	/* A new consumer starts at what was released, not at what was read. */
	ASSERT_EQ(0, cons_open(&d, 0));
	EXPECT_EQ(mid, d.cp->read_pos);
	EXPECT_EQ(mid, rel_pos(&d));
	EXPECT_EQ(3 * EVRING_REC_SIZE(24), prod_pos(&d));
	expect_rec(_metadata, &d, 2, 24, 1, getpid());
	expect_rec(_metadata, &d, 3, 24, 2, getpid());

	/* Closing frees the partition too. */
	cons_close(&d);
	EXPECT_EQ(0, attach(fd, 0, 0));
}

TEST_F(defaults, mmap_of_unattached_fd_fails_eperm)
{
	long pg = sysconf(_SC_PAGESIZE);
	int fd = dev_open(O_RDWR);

	ASSERT_LE(0, fd);
	EXPECT_EQ(MAP_FAILED, map(fd, pg, PROT_READ | PROT_WRITE, MAP_SHARED, 0));
	EXPECT_EQ(EPERM, errno);
	EXPECT_EQ(MAP_FAILED, map(fd, pg, PROT_READ, MAP_SHARED, pg));
	EXPECT_EQ(EPERM, errno);
}

/* Attach @fd to @part and fetch the layout. */
static void attach_layout(struct __test_metadata *_metadata, int fd,
			  __u32 part, struct evring_layout *lay)
{
	ASSERT_EQ(0, attach(fd, part, 0));
	EVT_POISON(*lay);
	ASSERT_EQ(0, xioctl(fd, EVRING_IOC_LAYOUT, lay));
}

TEST_F(defaults, writable_mmap_of_producer_and_data_pages_fails_eperm)
{
	struct evring_layout lay;
	int fd = dev_open(O_RDWR);

	ASSERT_LE(0, fd);
	attach_layout(_metadata, fd, 0, &lay);
	EXPECT_EQ(MAP_FAILED, map(fd, lay.prod_size, PROT_READ | PROT_WRITE,
				  MAP_SHARED, lay.prod_off));
	EXPECT_EQ(EPERM, errno);
	EXPECT_EQ(MAP_FAILED, map(fd, lay.prod_size, PROT_WRITE, MAP_SHARED,
				  lay.prod_off));
	EXPECT_EQ(EPERM, errno);
}

TEST_F(defaults, consumer_page_maps_read_write_and_is_shared)
{
	struct evring_layout lay;
	struct evring_cons_page *rw;
	const struct evring_cons_page *ro;
	int fd = dev_open(O_RDWR);

	ASSERT_LE(0, fd);
	attach_layout(_metadata, fd, 0, &lay);
	rw = map(fd, lay.cons_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		 lay.cons_off);
	ASSERT_NE(MAP_FAILED, rw) TH_LOG("mmap consumer page: %s",
					 strerror(errno));
	ro = map(fd, lay.cons_size, PROT_READ, MAP_SHARED, lay.cons_off);
	ASSERT_NE(MAP_FAILED, ro);
	EXPECT_EQ(0ull, rw->read_pos);
	/* Both mappings are the kernel's one page. */
	__atomic_store_n(&rw->read_pos, 0x1234000ull, __ATOMIC_RELEASE);
	EXPECT_EQ(0x1234000ull, __atomic_load_n(&ro->read_pos, __ATOMIC_ACQUIRE));
	__atomic_store_n(&rw->read_pos, 0ull, __ATOMIC_RELEASE);
}

TEST_F(defaults, mprotect_writable_of_producer_mapping_fails_eacces)
{
	long pg = sysconf(_SC_PAGESIZE);
	struct evring_layout lay;
	unsigned char *p;
	int fd = dev_open(O_RDWR);

	ASSERT_LE(0, fd);
	attach_layout(_metadata, fd, 0, &lay);
	p = map(fd, lay.prod_size, PROT_READ, MAP_SHARED, lay.prod_off);
	ASSERT_NE(MAP_FAILED, p) TH_LOG("mmap producer: %s", strerror(errno));
	errno = 0;
	EXPECT_EQ(-1, mprotect(p, lay.prod_size, PROT_READ | PROT_WRITE));
	EXPECT_EQ(EACCES, errno);
	errno = 0;
	EXPECT_EQ(-1, mprotect(p, pg, PROT_READ | PROT_WRITE));
	EXPECT_EQ(EACCES, errno);
	errno = 0;
	EXPECT_EQ(-1, mprotect(p + lay.data_off, pg, PROT_WRITE));
	EXPECT_EQ(EACCES, errno);
}

TEST_F(defaults, mmap_at_bad_offset_fails_einval)
{
	long pg = sysconf(_SC_PAGESIZE);
	struct evring_layout lay;
	__u64 offs[3];
	int fd = dev_open(O_RDWR);

	ASSERT_LE(0, fd);
	attach_layout(_metadata, fd, 0, &lay);
	/* Just past the end of the last region, further out, far out. */
	offs[0] = lay.prod_off + lay.prod_size;
	if (lay.cons_off + lay.cons_size > offs[0])
		offs[0] = lay.cons_off + lay.cons_size;
	offs[1] = offs[0] + 16 * pg;
	offs[2] = 1ull << 40;
	for (int i = 0; i < 3; i++) {
		EXPECT_EQ(MAP_FAILED, map(fd, pg, PROT_READ, MAP_SHARED, offs[i]))
			TH_LOG("offset %#llx", (unsigned long long)offs[i]);
		EXPECT_EQ(EINVAL, errno);
	}
}

TEST_F(defaults, mmap_beyond_the_published_size_fails_einval)
{
	long pg = sysconf(_SC_PAGESIZE);
	struct evring_layout lay;
	int fd = dev_open(O_RDWR);

	ASSERT_LE(0, fd);
	attach_layout(_metadata, fd, 0, &lay);
	/* The whole producer region and a page more; the doubled data area
	 * and a page more.
	 */
	EXPECT_EQ(MAP_FAILED, map(fd, lay.prod_size + pg, PROT_READ, MAP_SHARED,
				  lay.prod_off));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(MAP_FAILED, map(fd, 2 * lay.data_size + pg, PROT_READ,
				  MAP_SHARED, lay.prod_off + lay.data_off));
	EXPECT_EQ(EINVAL, errno);
	/* The published sizes themselves map. */
	EXPECT_NE(MAP_FAILED, map(fd, lay.prod_size, PROT_READ, MAP_SHARED,
				  lay.prod_off));
	EXPECT_NE(MAP_FAILED, map(fd, lay.cons_size, PROT_READ | PROT_WRITE,
				  MAP_SHARED, lay.cons_off));
}

TEST_F(defaults, private_mmap_fails_einval)
{
	struct evring_layout lay;
	int fd = dev_open(O_RDWR);

	ASSERT_LE(0, fd);
	attach_layout(_metadata, fd, 0, &lay);
	EXPECT_EQ(MAP_FAILED, map(fd, lay.cons_size, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE, lay.cons_off));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(MAP_FAILED, map(fd, lay.cons_size, PROT_READ, MAP_PRIVATE,
				  lay.cons_off));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(MAP_FAILED, map(fd, lay.prod_size, PROT_READ, MAP_PRIVATE,
				  lay.prod_off));
	EXPECT_EQ(EINVAL, errno);
}

/* Three records of 10, 20 and 30 bytes; @b receives the four boundaries. */
static void three_records(struct __test_metadata *_metadata, int w,
			  struct cons *c, __u64 b[4])
{
	unsigned char buf[30] = { 0 };

	b[0] = c->pos;
	for (int i = 0; i < 3; i++) {
		ASSERT_EQ(10 * (i + 1), xwrite(w, buf, 10 * (i + 1)));
		b[i + 1] = b[i] + EVRING_REC_SIZE(10 * (i + 1));
	}
	ASSERT_EQ(b[3], prod_pos(c));
}

TEST_F(defaults, release_beyond_prod_pos_fails_einval)
{
	struct cons c;
	__u64 b[4];
	int w = writer_open(0, 0);

	ASSERT_LE(0, w);
	ASSERT_EQ(0, cons_open(&c, 0));
	three_records(_metadata, w, &c, b);
	EXPECT_EQ(-EINVAL, release_at(c.fd, b[3] + 8));
	EXPECT_EQ(-EINVAL, release_at(c.fd, b[3] + EVRING_REC_SIZE(8)));
	EXPECT_EQ(-EINVAL, release_at(c.fd, b[3] + self->info.ring_size));
	EXPECT_EQ(-EINVAL, release_at(c.fd, ~0ull & ~7ull));
	EXPECT_EQ(0ull, rel_pos(&c));
}

TEST_F(defaults, release_below_release_pos_fails_einval)
{
	struct cons c;
	__u64 b[4];
	int w = writer_open(0, 0);

	ASSERT_LE(0, w);
	ASSERT_EQ(0, cons_open(&c, 0));
	three_records(_metadata, w, &c, b);
	ASSERT_EQ(0, release_at(c.fd, b[2]));
	EXPECT_EQ(-EINVAL, release_at(c.fd, b[1]));
	EXPECT_EQ(-EINVAL, release_at(c.fd, b[0]));
	EXPECT_EQ(b[2], rel_pos(&c));
}

TEST_F(defaults, release_off_a_record_boundary_fails_einval)
{
	struct cons c;
	__u64 b[4];
	int w = writer_open(0, 0);

	ASSERT_LE(0, w);
	ASSERT_EQ(0, cons_open(&c, 0));
	three_records(_metadata, w, &c, b);
	EXPECT_EQ(-EINVAL, release_at(c.fd, 4));
	EXPECT_EQ(-EINVAL, release_at(c.fd, b[1] - 8));
	EXPECT_EQ(-EINVAL, release_at(c.fd, b[1] + 8));
	EXPECT_EQ(-EINVAL, release_at(c.fd, b[2] + 3));
	EXPECT_EQ(-EINVAL, release_at(c.fd, b[3] - 8));
	EXPECT_EQ(0ull, rel_pos(&c));
	/* From a later release position, mid-record is still refused. */
	ASSERT_EQ(0, release_at(c.fd, b[1]));
	EXPECT_EQ(-EINVAL, release_at(c.fd, b[2] + 8));
	EXPECT_EQ(b[1], rel_pos(&c));
}

TEST_F(defaults, release_advances_release_pos_in_the_producer_page)
{
	struct cons c;
	__u64 b[4];
	int w = writer_open(0, 0);

	ASSERT_LE(0, w);
	ASSERT_EQ(0, cons_open(&c, 0));
	three_records(_metadata, w, &c, b);
	EXPECT_EQ(0, release_at(c.fd, b[0]));	/* empty release */
	EXPECT_EQ(b[0], rel_pos(&c));
	EXPECT_EQ(0, release_at(c.fd, b[1]));
	EXPECT_EQ(b[1], rel_pos(&c));
	EXPECT_EQ(0, release_at(c.fd, b[1]));	/* again: no-op */
	EXPECT_EQ(b[1], rel_pos(&c));
	EXPECT_EQ(0, release_at(c.fd, b[3]));
	EXPECT_EQ(b[3], rel_pos(&c));
	EXPECT_EQ(b[3], prod_pos(&c));
	/* read_pos belongs to the consumer: release does not move it. */
	EXPECT_EQ(0ull, c.cp->read_pos);
}

TEST_F(defaults, fsync_returns_at_once_when_nothing_is_unreleased)
{
	unsigned char buf[16] = { 0 };
	struct cons c;
	__u64 t0;
	int w = writer_open(0, 0);

	ASSERT_LE(0, w);
	/* Nothing written, and no consumer at all. */
	t0 = evt_now_ns(CLOCK_MONOTONIC);
	EXPECT_EQ(0, xfsync(w));
	EXPECT_EQ(0, fdatasync(w));
	EXPECT_GT(2000000000ull, evt_now_ns(CLOCK_MONOTONIC) - t0);

	/* Written and released. */
	ASSERT_EQ(0, cons_open(&c, 0));
	ASSERT_EQ(16, xwrite(w, buf, 16));
	ASSERT_EQ(0, cons_drain(&c));
	t0 = evt_now_ns(CLOCK_MONOTONIC);
	EXPECT_EQ(0, xfsync(w));
	EXPECT_GT(2000000000ull, evt_now_ns(CLOCK_MONOTONIC) - t0);
}

TEST_F(defaults, fsync_interrupted_by_signal_fails_eintr)
{
	unsigned char buf[16] = { 0 };
	__u64 t0, dt;
	int w = writer_open(0, 0);
	int ret;

	ASSERT_LE(0, w);
	ASSERT_EQ(16, xwrite(w, buf, 16));
	alarm_in(200, 0);
	t0 = evt_now_ns(CLOCK_MONOTONIC);
	ret = xfsync(w);
	dt = evt_now_ns(CLOCK_MONOTONIC) - t0;
	EXPECT_EQ(-EINTR, ret);
	EXPECT_EQ(1, alarms);
	EXPECT_LE(150000000ull, dt);
	EXPECT_GT(10000000000ull, dt);
}

/* ------------------------------------------------------------------ */
/* Consumer wake-ups, counted by EVRING_A_WAKEUPS. */

struct poller {
	int fd;
	short events;
	int timeout_ms;
};

/* Child: poll once; exit 0 when @events came, 1 on timeout, 2 otherwise. */
static int child_poll(void *arg)
{
	struct poller *p = arg;
	struct pollfd pfd = { .fd = p->fd, .events = p->events };
	int n = poll(&pfd, 1, p->timeout_ms);

	if (n == 0)
		return 1;
	return n == 1 && (pfd.revents & p->events) ? 0 : 2;
}

static __u64 wakeups(struct __test_metadata *_metadata, unsigned int part)
{
	struct evring_part_stats st;
	int ret;

	if (!test_nl) {
		ret = evring_nl_open(&test_nl);
		ASSERT_EQ(0, ret) TH_LOG("evring_nl_open: %s", strerror(-ret));
	}
	memset(&st, 0xa5, sizeof(st));
	ret = evring_nl_stats(test_nl, part, &st);
	ASSERT_EQ(0, ret) TH_LOG("evring_nl_stats: %s", strerror(-ret));
	ASSERT_EQ(part, st.partition);
	ASSERT_NE(POISON64, st.wakeups);
	return st.wakeups;
}

/* Start a child polling @fd for @events and wait until it sleeps in poll. */
static pid_t sleeping_poller(struct __test_metadata *_metadata, int fd,
			     short events)
{
	struct poller p = { .fd = fd, .events = events, .timeout_ms = 20000 };
	pid_t pid = evt_spawn(child_poll, &p);

	ASSERT_LT(0, pid);
	ASSERT_EQ(1, evt_wait_asleep(pid, 0, 5000));
	/* Asleep could still be on the way in; give it time to get there. */
	evt_sleep_ms(100);
	ASSERT_EQ(-ETIMEDOUT, evt_wait(pid, 0)) TH_LOG("poller returned early");
	return pid;
}

/*
 * A child asleep in poll for POLLPRI on the consumer fd: it never gets it,
 * so it stays on the consumer's wait queue through every wake-up and each
 * one the module makes is counted.
 */
static pid_t watcher(struct __test_metadata *_metadata, int fd)
{
	return sleeping_poller(_metadata, fd, POLLPRI);
}

TEST_F(defaults, batch_wakes_a_polling_consumer_exactly_once)
{
	struct evring_iovec iov[100];
	unsigned char buf[48];
	struct cons c;
	__u64 before;
	pid_t pid, watch;
	int w = writer_open(3, 0);

	ASSERT_LE(0, w);
	ASSERT_EQ(0, cons_open(&c, 3));
	for (int i = 0; i < 100; i++)
		iov[i] = (struct evring_iovec){ .base = (uintptr_t)buf,
						.len = sizeof(buf) };
	fill(buf, sizeof(buf), 77);
	before = wakeups(_metadata, 3);
	watch = watcher(_metadata, c.fd);
	pid = sleeping_poller(_metadata, c.fd, POLLIN);
	ASSERT_EQ(100, batch(w, iov, 100, 0));
	EXPECT_EQ(0, evt_wait(pid, 10000));
	EXPECT_EQ(before + 1, wakeups(_metadata, 3));
	/* The one wake-up delivered all 100. */
	for (int i = 0; i < 100; i++) {
		expect_rec(_metadata, &c, i + 1, sizeof(buf), 77, getpid());
	}
	EXPECT_EQ(NULL, cons_peek(&c));

	/* Not marked read yet: another batch behind it wakes nobody. */
	ASSERT_EQ(100, batch(w, iov, 100, 0));
	EXPECT_EQ(before + 1, wakeups(_metadata, 3));
	/* Caught up: the next batch wakes it once more. */
	while (cons_next(&c))
		;
	cons_mark_read(&c);
	ASSERT_EQ(100, batch(w, iov, 100, 0));
	EXPECT_EQ(before + 2, wakeups(_metadata, 3));
	EXPECT_EQ(-ETIMEDOUT, evt_wait(watch, 0));
}

TEST_F(defaults, writes_behind_an_unread_record_do_not_wake_the_consumer)
{
	unsigned char buf[16] = { 0 };
	struct cons c;
	__u64 before;
	pid_t watch;
	int w = writer_open(3, 0);

	ASSERT_LE(0, w);
	ASSERT_EQ(0, cons_open(&c, 3));
	before = wakeups(_metadata, 3);
	watch = watcher(_metadata, c.fd);
	for (int i = 0; i < 100; i++) {
		ASSERT_EQ(16, xwrite(w, buf, 16));
	}
	/* Only the first record found the consumer caught up. */
	EXPECT_EQ(before + 1, wakeups(_metadata, 3));

	/* Read but not yet released is caught up: the next record wakes. */
	while (cons_next(&c))
		;
	cons_mark_read(&c);
	for (int i = 0; i < 10; i++) {
		ASSERT_EQ(16, xwrite(w, buf, 16));
	}
	EXPECT_EQ(before + 2, wakeups(_metadata, 3));
	EXPECT_EQ(-ETIMEDOUT, evt_wait(watch, 0));
}

/* ================================================================== */
/* ring: geometry-dependent behaviour, for three ring shapes. */

FIXTURE(ring) {
	struct evring_info info;
	__u32 part;		/* the partition under test: the last one */
};

FIXTURE_VARIANT(ring) {
	const char *params;
	__u32 partitions, ring_size, max_record;
};

FIXTURE_VARIANT_ADD(ring, small) {
	.params = "partitions=2 ring_size=16384 max_record=1024",
	.partitions = 2, .ring_size = 16384, .max_record = 1024,
};

FIXTURE_VARIANT_ADD(ring, mid) {
	.params = "partitions=4 ring_size=65536 max_record=4096",
	.partitions = 4, .ring_size = 65536, .max_record = 4096,
};

FIXTURE_VARIANT_ADD(ring, big) {
	.params = "partitions=3 ring_size=1048576 max_record=65536",
	.partitions = 3, .ring_size = 1048576, .max_record = 65536,
};

FIXTURE_SETUP(ring)
{
	load_module(_metadata, variant->params);
	module_info(_metadata, &self->info);
	ASSERT_EQ(variant->partitions, self->info.nr_partitions);
	ASSERT_EQ(variant->ring_size, self->info.ring_size);
	ASSERT_EQ(variant->max_record, self->info.max_record);
	self->part = self->info.nr_partitions - 1;
}

FIXTURE_TEARDOWN(ring)
{
	unload_module(_metadata);
}

TEST_F(ring, records_carry_gap_free_seq_len_pid_uid_and_commit_time)
{
	const __u32 max = self->info.max_record;
	const __u32 lens[] = { 1, 2, 7, 8, 9, 31, 32, 33, 255, max, max - 1,
			       max / 2 + 3, 100, 4093 % max + 1 };
	const int nlens = ARRAY_SIZE(lens);
	unsigned char *buf = malloc(max);
	struct cons c;
	int w = writer_open(self->part, 0);
	__u64 total = 0;

	ASSERT_NE(NULL, buf);
	ASSERT_LE(0, w);
	ASSERT_EQ(0, cons_open(&c, self->part));
	/* Enough records to go round the ring at least once. */
	for (unsigned int i = 0; i < 4 * nlens || total < 2ull * self->info.ring_size;
	     i++) {
		__u32 len = lens[i % nlens];
		const struct evring_rec *r;
		__u64 t0, t1;

		fill(buf, len, i);
		t0 = evt_now_ns(CLOCK_REALTIME);
		ASSERT_EQ((long)len, xwrite(w, buf, len)) TH_LOG("record %u", i);
		t1 = evt_now_ns(CLOCK_REALTIME);
		r = expect_rec(_metadata, &c, i + 1, len, i, getpid());
		EXPECT_EQ((__u32)getuid(), r->uid);
		EXPECT_LE(t0, r->ts_ns) TH_LOG("seq %u", i + 1);
		EXPECT_GE(t1, r->ts_ns) TH_LOG("seq %u", i + 1);
		EXPECT_EQ(NULL, cons_peek(&c));
		EXPECT_EQ(c.pos, prod_pos(&c));
		ASSERT_EQ(0, release_at(c.fd, c.pos));
		total += EVRING_REC_SIZE(len);
	}
}

TEST_F(ring, layout_matches_info_and_the_producer_page)
{
	long pg = sysconf(_SC_PAGESIZE);
	struct evring_layout lay, again;
	const struct evring_prod_page *pp;
	struct evring_cons_page *cp;
	unsigned char buf[20] = { 0 };
	int fd = dev_open(O_RDWR), w = writer_open(self->part, 0);

	ASSERT_LE(0, fd);
	ASSERT_LE(0, w);
	attach_layout(_metadata, fd, self->part, &lay);
	EXPECT_EQ(self->info.epoch, lay.epoch);
	EXPECT_EQ(self->part, lay.partition);
	EXPECT_EQ(self->info.max_record, lay.max_record);
	EXPECT_EQ((__u64)self->info.ring_size, lay.data_size);
	EXPECT_EQ(0ull, lay.cons_off % pg);
	EXPECT_EQ(0ull, lay.prod_off % pg);
	EXPECT_EQ(0ull, lay.data_off % pg);
	EXPECT_EQ(0ull, lay.cons_size % pg);
	EXPECT_LE(sizeof(struct evring_cons_page), lay.cons_size);
	EXPECT_LE(sizeof(struct evring_prod_page), lay.data_off);
	EXPECT_EQ(lay.data_off + 2 * lay.data_size, lay.prod_size);
	/* The two regions do not overlap. */
	EXPECT_TRUE(lay.cons_off + lay.cons_size <= lay.prod_off ||
		    lay.prod_off + lay.prod_size <= lay.cons_off);

	cp = map(fd, lay.cons_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		 lay.cons_off);
	ASSERT_NE(MAP_FAILED, cp);
	pp = map(fd, lay.prod_size, PROT_READ, MAP_SHARED, lay.prod_off);
	ASSERT_NE(MAP_FAILED, pp) TH_LOG("mmap producer: %s", strerror(errno));
	EXPECT_EQ(lay.epoch, pp->epoch);
	EXPECT_EQ(self->part, pp->partition);
	EXPECT_EQ(lay.data_size, (__u64)pp->data_size);
	EXPECT_EQ(0ull, pp->prod_pos);
	EXPECT_EQ(0ull, pp->release_pos);
	EXPECT_EQ(0ull, cp->read_pos);

	ASSERT_EQ(20, xwrite(w, buf, 20));
	EXPECT_EQ(EVRING_REC_SIZE(20),
		  __atomic_load_n(&pp->prod_pos, __ATOMIC_ACQUIRE));
	/* The layout is stable. */
	EVT_POISON(again);
	ASSERT_EQ(0, xioctl(fd, EVRING_IOC_LAYOUT, &again));
	EXPECT_EQ(0, memcmp(&lay, &again, sizeof(lay)));
}

TEST_F(ring, data_area_is_mapped_twice_back_to_back)
{
	const __u32 max = self->info.max_record;
	unsigned char *buf = pattern(max, 1);
	struct cons c;
	__u64 ds, nonzero = 0;
	int w = writer_open(self->part, O_NONBLOCK);
	unsigned int n = 0;

	ASSERT_NE(NULL, buf);
	ASSERT_LE(0, w);
	ASSERT_EQ(0, cons_open(&c, self->part));
	ds = c.lay.data_size;
	/* Fill, drain, fill again: every byte of the area gets written. */
	for (int round = 0; round < 2; round++) {
		long ret;

		while ((ret = xwrite(w, buf, max - (n++ % 5))) > 0)
			;
		ASSERT_EQ(-EAGAIN, ret);
		ASSERT_EQ(0, cons_drain(&c));
	}
	for (__u64 i = 0; i < ds; i++) {
		ASSERT_EQ(c.data[i], c.data[ds + i]) TH_LOG("offset %llu",
							    (unsigned long long)i);
		nonzero += c.data[i] != 0;
	}
	/* Not trivially equal: records are there. */
	EXPECT_LT(ds / 2, nonzero);
}

TEST_F(ring, records_wrapping_the_ring_end_stay_contiguous_and_intact)
{
	const __u32 max = self->info.max_record;
	const __u64 ds = self->info.ring_size;
	const __u32 lens[] = { max, max - 5, max / 3 + 1, 3, max / 2 - 7, 61 };
	unsigned char *buf = malloc(max);
	struct cons c;
	__u64 seq = 0, wrapped = 0;
	int w = writer_open(self->part, 0);

	ASSERT_NE(NULL, buf);
	ASSERT_LE(0, w);
	ASSERT_EQ(0, cons_open(&c, self->part));
	/* Three laps; a writer and a consumer taking turns. */
	while (c.pos < 3 * ds) {
		__u32 len = lens[seq % 6];

		fill(buf, len, (unsigned int)seq);
		ASSERT_EQ((long)len, xwrite(w, buf, len));
		if ((c.pos & (ds - 1)) + EVRING_REC_SIZE(len) > ds)
			wrapped++;
		expect_rec(_metadata, &c, seq + 1, len, (unsigned int)seq,
			   getpid());
		seq++;
		cons_mark_read(&c);
		ASSERT_EQ(0, release_at(c.fd, c.pos));
	}
	/* The property was exercised: some records straddled the end. */
	EXPECT_LE(2ull, wrapped);
}

/* Child: attach to @part, read half the records, release a quarter, tell
 * the parent and wait to be killed.
 */
struct half_reader {
	unsigned int part, n;
	int pipe_w;
};

static int child_read_half(void *arg)
{
	struct half_reader *h = arg;
	struct cons c;
	__u64 quarter = 0;

	if (cons_open(&c, h->part))
		return 100;
	for (unsigned int i = 0; i < h->n / 2; i++) {
		const struct evring_rec *r = cons_next(&c);

		if (!r || r->seq != i + 1)
			return 101;
		if (i + 1 == h->n / 4)
			quarter = c.pos;
	}
	cons_mark_read(&c);
	if (release_at(c.fd, quarter))
		return 102;
	if (write(h->pipe_w, "r", 1) != 1)
		return 103;
	for (;;)
		pause();
}

TEST_F_TIMEOUT(ring, kill9_of_consumer_loses_nothing_unreleased, 60)
{
	const unsigned int n = 200, len = 24;
	struct half_reader h = { .part = self->part, .n = n };
	unsigned char buf[24];
	struct cons c;
	int fds[2];
	pid_t pid;
	int w = writer_open(self->part, 0);

	ASSERT_LE(0, w);
	ASSERT_GE(self->info.ring_size, n * EVRING_REC_SIZE(len));
	for (unsigned int i = 0; i < n; i++) {
		fill(buf, len, i);
		ASSERT_EQ((long)len, xwrite(w, buf, len));
	}
	ASSERT_EQ(0, pipe2(fds, O_CLOEXEC));
	h.pipe_w = fds[1];
	pid = evt_spawn(child_read_half, &h);
	ASSERT_LT(0, pid);
	ASSERT_EQ(1, wait_byte(fds[0], 10000))
		TH_LOG("consumer child ended with %d", evt_wait(pid, 0));
	ASSERT_EQ(256 + SIGKILL, evt_kill(pid));

	/* The partition is free again, and resumes at the release point. */
	ASSERT_EQ(0, cons_open(&c, self->part));
	EXPECT_EQ(n / 4 * EVRING_REC_SIZE(len), rel_pos(&c));
	EXPECT_EQ(rel_pos(&c), c.cp->read_pos);
	EXPECT_EQ(n * EVRING_REC_SIZE(len), prod_pos(&c));
	for (unsigned int i = n / 4; i < n; i++) {
		expect_rec(_metadata, &c, i + 1, len, i, getpid());
	}
	EXPECT_EQ(NULL, cons_peek(&c));
}

/*
 * Fill @c's partition through the non-blocking writer @w until not one more
 * byte fits: two 1-byte records (40 bytes each) first, max_record records
 * while they fit, then one record sized to the remainder.  Returns the
 * number of records.
 */
static unsigned int fill_ring(struct __test_metadata *_metadata, int w,
			      struct cons *c, __u32 max)
{
	const __u64 size = c->lay.data_size;
	unsigned char *buf = pattern(max, 0);
	unsigned int n = 0;
	__u64 used = prod_pos(c) - rel_pos(c);

	ASSERT_NE(NULL, buf);
	for (int i = 0; i < 2; i++) {
		ASSERT_EQ(1, xwrite(w, buf, 1));
		used += EVRING_REC_SIZE(1);
		n++;
	}
	while (used + EVRING_REC_SIZE(max) <= size) {
		ASSERT_EQ((long)max, xwrite(w, buf, max));
		used += EVRING_REC_SIZE(max);
		n++;
	}
	/* Not even the smallest record would fit into less than this. */
	if (size - used >= EVRING_REC_SIZE(1)) {
		__u32 len = (__u32)(size - used - sizeof(struct evring_rec));

		ASSERT_EQ((long)len, xwrite(w, buf, len));
		used += EVRING_REC_SIZE(len);
		n++;
	}
	ASSERT_EQ(prod_pos(c) - rel_pos(c), used);
	free(buf);
	return n;
}

TEST_F(ring, ring_takes_records_until_exactly_full_then_eagain)
{
	const __u32 max = self->info.max_record;
	unsigned char *buf = pattern(max, 0);
	struct cons c;
	int w = writer_open(self->part, O_NONBLOCK);

	ASSERT_LE(0, w);
	ASSERT_EQ(0, cons_open(&c, self->part));
	fill_ring(_metadata, w, &c, max);
	EXPECT_EQ(c.lay.data_size, prod_pos(&c));
	EXPECT_EQ(-EAGAIN, xwrite(w, buf, 1));
	EXPECT_EQ(-EAGAIN, xwrite(w, buf, max));
	EXPECT_EQ(c.lay.data_size, prod_pos(&c));

	/* Releasing the 40-byte first record makes room for 8 bytes only. */
	ASSERT_NE(NULL, cons_next(&c));
	ASSERT_EQ(0, release_at(c.fd, c.pos));
	EXPECT_EQ(-EAGAIN, xwrite(w, buf, 9));
	EXPECT_EQ(8, xwrite(w, buf, 8));
	EXPECT_EQ(-EAGAIN, xwrite(w, buf, 1));
}

TEST_F(ring, nonblocking_writer_gets_eagain_while_full_then_succeeds)
{
	const __u32 max = self->info.max_record;
	unsigned char *buf = pattern(max, 0);
	struct evring_iovec iov = { .base = (uintptr_t)buf, .len = 8 };
	struct cons c;
	__u64 full;
	int w = writer_open(self->part, 0);
	int nb = writer_open(self->part, O_NONBLOCK);

	ASSERT_LE(0, w);
	ASSERT_LE(0, nb);
	ASSERT_EQ(0, cons_open(&c, self->part));
	fill_ring(_metadata, nb, &c, max);
	full = prod_pos(&c);
	EXPECT_EQ(-EAGAIN, xwrite(nb, buf, 8));
	EXPECT_EQ(-EAGAIN, batch(nb, &iov, 1, 0));
	/* O_NONBLOCK set after open counts too. */
	ASSERT_EQ(0, fcntl(w, F_SETFL, O_NONBLOCK));
	EXPECT_EQ(-EAGAIN, xwrite(w, buf, 8));
	EXPECT_EQ(full, prod_pos(&c));

	ASSERT_EQ(0, cons_drain(&c));
	EXPECT_EQ((long)max, xwrite(w, buf, max));
	EXPECT_EQ(1, batch(nb, &iov, 1, 0));
}

TEST_F(ring, nonblocking_batch_into_a_filling_ring_returns_the_count_written)
{
	const __u32 max = self->info.max_record;
	const __u32 fits = self->info.ring_size / EVRING_REC_SIZE(max);
	unsigned char *buf = pattern(max, 4);
	struct evring_iovec iov[64];
	struct cons c;
	int w = writer_open(self->part, O_NONBLOCK);

	ASSERT_LE(0, w);
	ASSERT_GT(64u, fits + 5);
	ASSERT_EQ(0, cons_open(&c, self->part));
	for (int i = 0; i < 64; i++)
		iov[i] = (struct evring_iovec){ .base = (uintptr_t)buf, .len = max };
	EXPECT_EQ((long)fits, batch(w, iov, fits + 5, 0));
	EXPECT_EQ(fits * EVRING_REC_SIZE(max), prod_pos(&c));
	EXPECT_EQ(-EAGAIN, batch(w, iov, 5, 0));
	for (__u32 i = 0; i < fits; i++) {
		expect_rec(_metadata, &c, i + 1, max, 4, getpid());
	}
}

struct blocked_writer {
	unsigned int part;
	__u32 len;
	int sa_flags;		/* SIGALRM handler flags; -1: no handler */
};

/*
 * Child: write one record of @len bytes to @part on a blocking fd.  Exit 0
 * when the write returned len (and, with a handler, the alarm fired once),
 * else a code naming what went wrong.
 */
static int child_blocked_write(void *arg)
{
	struct blocked_writer *b = arg;
	unsigned char *buf = pattern(b->len, 99);
	int fd = writer_open(b->part, 0);
	long ret;

	if (!buf || fd < 0)
		return 100;
	if (b->sa_flags >= 0)
		alarm_in(100, b->sa_flags);
	ret = xwrite(fd, buf, b->len);
	if (ret != (long)b->len) {
		fprintf(stderr, "# blocked write returned %ld\n", ret);
		return 101;
	}
	if (b->sa_flags >= 0 && alarms != 1)
		return 102;
	return 0;
}

/* Assert @pid is still running and asleep. */
static void expect_blocked(struct __test_metadata *_metadata, pid_t pid)
{
	ASSERT_EQ(1, evt_wait_asleep(pid, 0, 5000));
	evt_sleep_ms(200);
	ASSERT_EQ(-ETIMEDOUT, evt_wait(pid, 0)) TH_LOG("it returned");
	ASSERT_EQ('S', evt_task_state(pid, 0));
}

TEST_F(ring, blocking_writer_sleeps_while_full_until_enough_is_released)
{
	const __u32 max = self->info.max_record;
	struct blocked_writer small = { .part = self->part, .len = 8,
					.sa_flags = -1 };
	struct blocked_writer big = { .part = self->part, .len = max,
				      .sa_flags = -1 };
	struct cons c;
	unsigned int n;
	__u64 full;
	pid_t p1, p2;
	int nb = writer_open(self->part, O_NONBLOCK);

	ASSERT_LE(0, nb);
	ASSERT_EQ(0, cons_open(&c, self->part));
	n = fill_ring(_metadata, nb, &c, max);
	full = prod_pos(&c);
	ASSERT_EQ(c.lay.data_size, full);

	/* Wants 40 bytes; releasing the first 40-byte record is exactly enough. */
	p1 = evt_spawn(child_blocked_write, &small);
	ASSERT_LT(0, p1);
	expect_blocked(_metadata, p1);
	EXPECT_EQ(full, prod_pos(&c));
	ASSERT_NE(NULL, cons_next(&c));
	ASSERT_EQ(0, release_at(c.fd, c.pos));
	ASSERT_EQ(0, evt_wait(p1, 10000));
	EXPECT_EQ(full + EVRING_REC_SIZE(8), prod_pos(&c));

	/* Wants a max_record record: 40 bytes freed is not enough ... */
	p2 = evt_spawn(child_blocked_write, &big);
	ASSERT_LT(0, p2);
	expect_blocked(_metadata, p2);
	ASSERT_NE(NULL, cons_next(&c));
	ASSERT_EQ(0, release_at(c.fd, c.pos));
	expect_blocked(_metadata, p2);
	EXPECT_EQ(full + EVRING_REC_SIZE(8), prod_pos(&c));

	/* ... one max_record record more is. */
	ASSERT_NE(NULL, cons_next(&c));
	ASSERT_EQ(0, release_at(c.fd, c.pos));
	ASSERT_EQ(0, evt_wait(p2, 10000));
	EXPECT_EQ(full + EVRING_REC_SIZE(8) + EVRING_REC_SIZE(max), prod_pos(&c));
	while (c.pos < full) {
		ASSERT_NE(NULL, cons_next(&c));
	}
	expect_rec(_metadata, &c, n + 1, 8, 99, p1);
	expect_rec(_metadata, &c, n + 2, max, 99, p2);
	EXPECT_EQ(NULL, cons_peek(&c));
}

TEST_F(ring, full_partition_never_blocks_a_writer_of_another_partition)
{
	const __u32 max = self->info.max_record;
	struct blocked_writer b = { .part = self->part, .len = 64, .sa_flags = -1 };
	struct blocked_writer o = { .part = 0, .len = max, .sa_flags = -1 };
	struct cons c, other;
	pid_t blocked, pid;
	int nb = writer_open(self->part, O_NONBLOCK);
	int ow = writer_open(0, 0);

	ASSERT_LE(0, nb);
	ASSERT_LE(0, ow);
	ASSERT_NE(0u, self->part);
	ASSERT_EQ(0, cons_open(&c, self->part));
	ASSERT_EQ(0, cons_open(&other, 0));
	fill_ring(_metadata, nb, &c, max);
	/* A writer asleep on the full partition, holding whatever it holds. */
	blocked = evt_spawn(child_blocked_write, &b);
	ASSERT_LT(0, blocked);
	expect_blocked(_metadata, blocked);

	EXPECT_EQ(POLLOUT, poll_now(ow, POLLOUT) & POLLOUT);
	for (int i = 0; i < 3; i++) {
		pid = evt_spawn(child_blocked_write, &o);
		ASSERT_LT(0, pid);
		EXPECT_EQ(0, evt_wait(pid, 10000)) TH_LOG("writer %d of partition 0", i);
		expect_rec(_metadata, &other, i + 1, max, 99, pid);
		ASSERT_EQ(0, release_at(other.fd, other.pos));
	}
	EXPECT_EQ(-ETIMEDOUT, evt_wait(blocked, 0));
}

TEST_F(ring, writer_pollout_absent_while_full_present_after_release)
{
	const __u32 max = self->info.max_record;
	unsigned char *buf = pattern(max, 0);
	struct cons c;
	pid_t pid;
	int w = writer_open(self->part, O_NONBLOCK);
	__u64 used = 0;

	ASSERT_LE(0, w);
	ASSERT_EQ(0, cons_open(&c, self->part));
	EXPECT_EQ(POLLOUT, poll_now(w, POLLOUT));
	while (used + 2 * EVRING_REC_SIZE(max) <= c.lay.data_size) {
		ASSERT_EQ((long)max, xwrite(w, buf, max));
		used += EVRING_REC_SIZE(max);
	}
	/* Exactly one more max_record record fits: still writable. */
	EXPECT_EQ(POLLOUT, poll_now(w, POLLOUT));
	ASSERT_EQ((long)max, xwrite(w, buf, max));
	/* A small record would fit, a max_record one would not: not writable. */
	EXPECT_EQ(0, poll_now(w, POLLOUT));
	ASSERT_EQ(1, xwrite(w, buf, 1));
	EXPECT_EQ(0, poll_now(w, POLLOUT));

	/* A writer asleep in poll is woken by the release that makes room. */
	pid = sleeping_poller(_metadata, w, POLLOUT);
	ASSERT_NE(NULL, cons_next(&c));
	ASSERT_EQ(0, release_at(c.fd, c.pos));
	EXPECT_EQ(0, evt_wait(pid, 10000));
	EXPECT_EQ(POLLOUT, poll_now(w, POLLOUT));
}

TEST_F(ring, consumer_pollin_absent_when_caught_up_present_after_write)
{
	unsigned char buf[32] = { 0 };
	struct cons c;
	pid_t pid;
	int w = writer_open(self->part, 0);

	ASSERT_LE(0, w);
	ASSERT_EQ(0, cons_open(&c, self->part));
	EXPECT_EQ(0, poll_now(c.fd, POLLIN));
	ASSERT_EQ(32, xwrite(w, buf, 32));
	EXPECT_EQ(POLLIN, poll_now(c.fd, POLLIN) & POLLIN);
	/* Taken but not yet marked read: still readable. */
	ASSERT_NE(NULL, cons_next(&c));
	EXPECT_EQ(POLLIN, poll_now(c.fd, POLLIN) & POLLIN);
	cons_mark_read(&c);
	EXPECT_EQ(0, poll_now(c.fd, POLLIN));
	/* Release is not required to be caught up. */
	EXPECT_EQ(0ull, rel_pos(&c));

	pid = sleeping_poller(_metadata, c.fd, POLLIN);
	ASSERT_EQ(32, xwrite(w, buf, 32));
	EXPECT_EQ(0, evt_wait(pid, 10000));
	EXPECT_EQ(POLLIN, poll_now(c.fd, POLLIN) & POLLIN);
}

TEST_F(ring, blocked_write_interrupted_by_signal_fails_eintr_and_commits_nothing)
{
	const __u32 max = self->info.max_record;
	unsigned char *buf = pattern(max, 8);
	struct cons c;
	unsigned int n;
	__u64 full, t0, dt;
	long ret;
	int nb = writer_open(self->part, O_NONBLOCK);
	int w = writer_open(self->part, 0);

	ASSERT_LE(0, nb);
	ASSERT_LE(0, w);
	ASSERT_EQ(0, cons_open(&c, self->part));
	n = fill_ring(_metadata, nb, &c, max);
	full = prod_pos(&c);

	alarm_in(200, 0);
	t0 = evt_now_ns(CLOCK_MONOTONIC);
	ret = xwrite(w, buf, max);
	dt = evt_now_ns(CLOCK_MONOTONIC) - t0;
	EXPECT_EQ(-EINTR, ret);
	EXPECT_EQ(1, alarms);
	EXPECT_LE(150000000ull, dt);
	EXPECT_EQ(full, prod_pos(&c));

	/* No sequence number was spent on the interrupted write. */
	ASSERT_EQ(0, cons_drain(&c));
	ASSERT_EQ((long)max, xwrite(w, buf, max));
	expect_rec(_metadata, &c, n + 1, max, 8, getpid());
}

TEST_F(ring, blocked_write_under_sa_restart_completes_once_after_release)
{
	const __u32 max = self->info.max_record;
	struct blocked_writer b = { .part = self->part, .len = max,
				    .sa_flags = SA_RESTART };
	struct cons c;
	unsigned int n;
	__u64 full;
	pid_t pid;
	int nb = writer_open(self->part, O_NONBLOCK);

	ASSERT_LE(0, nb);
	ASSERT_EQ(0, cons_open(&c, self->part));
	n = fill_ring(_metadata, nb, &c, max);
	full = prod_pos(&c);
	pid = evt_spawn(child_blocked_write, &b);
	ASSERT_LT(0, pid);
	/* The alarm fires at 100 ms; the write restarts and sleeps again. */
	evt_sleep_ms(300);
	expect_blocked(_metadata, pid);
	EXPECT_EQ(full, prod_pos(&c));

	ASSERT_EQ(0, cons_drain(&c));
	ASSERT_EQ(0, evt_wait(pid, 10000));
	/* Exactly one record: the restart did not commit twice. */
	EXPECT_EQ(full + EVRING_REC_SIZE(max), prod_pos(&c));
	expect_rec(_metadata, &c, n + 1, max, 99, pid);
	EXPECT_EQ(NULL, cons_peek(&c));
}

struct batch_writer {
	unsigned int part;
	__u32 len, count;
};

/* Child: one blocking WRITE_BATCH of @count records; 0 when all went in. */
static int child_big_batch(void *arg)
{
	struct batch_writer *b = arg;
	struct evring_iovec *iov = calloc(b->count, sizeof(*iov));
	unsigned char *buf = pattern(b->len, 33);
	int fd = writer_open(b->part, 0);
	long ret;

	if (!iov || !buf || fd < 0)
		return 100;
	for (__u32 i = 0; i < b->count; i++)
		iov[i] = (struct evring_iovec){ .base = (uintptr_t)buf,
						.len = b->len };
	ret = batch(fd, iov, b->count, 0);
	if (ret != (long)b->count) {
		fprintf(stderr, "# batch of %u returned %ld\n", b->count, ret);
		return 101;
	}
	return 0;
}

/*
 * A batch three times the ring has to sleep for room mid-way, holding
 * records the consumer has not been told about: it must wake the consumer
 * before it sleeps, or both sleep for ever.
 */
TEST_F_TIMEOUT(ring, batch_that_sleeps_for_room_wakes_the_consumer_first, 60)
{
	const __u32 max = self->info.max_record;
	const __u32 fits = self->info.ring_size / EVRING_REC_SIZE(max);
	struct batch_writer b = { .part = self->part, .len = max,
				  .count = 3 * fits + 1 };
	struct cons c;
	pid_t pid, poller;
	__u32 got = 0;

	ASSERT_GE((__u32)EVRING_BATCH_MAX, b.count);
	ASSERT_EQ(0, cons_open(&c, self->part));
	/* The consumer is asleep before the batch starts ... */
	poller = sleeping_poller(_metadata, c.fd, POLLIN);
	pid = evt_spawn(child_big_batch, &b);
	ASSERT_LT(0, pid);
	/* ... and nothing is released until it has been woken. */
	EXPECT_EQ(0, evt_wait(poller, 10000))
		TH_LOG("the batch went to sleep without waking the consumer");
	expect_blocked(_metadata, pid);
	EXPECT_EQ(fits * EVRING_REC_SIZE(max), prod_pos(&c));

	while (got < b.count) {
		struct pollfd pfd = { .fd = c.fd, .events = POLLIN };

		ASSERT_EQ(1, poll(&pfd, 1, 10000))
			TH_LOG("consumer not woken after %u of %u records",
			       got, b.count);
		while (cons_peek(&c)) {
			expect_rec(_metadata, &c, got + 1, max, 33, pid);
			got++;
		}
		cons_mark_read(&c);
		ASSERT_EQ(0, release_at(c.fd, c.pos));
	}
	EXPECT_EQ(0, evt_wait(pid, 10000));
	EXPECT_EQ(NULL, cons_peek(&c));
}

TEST_F(ring, kill9_of_a_blocked_writer_commits_nothing)
{
	const __u32 max = self->info.max_record;
	struct blocked_writer b = { .part = self->part, .len = max, .sa_flags = -1 };
	unsigned char buf[8] = { 0 };
	struct cons c;
	unsigned int n;
	__u64 full;
	pid_t pid;
	int nb = writer_open(self->part, O_NONBLOCK);

	ASSERT_LE(0, nb);
	ASSERT_EQ(0, cons_open(&c, self->part));
	n = fill_ring(_metadata, nb, &c, max);
	full = prod_pos(&c);
	pid = evt_spawn(child_blocked_write, &b);
	ASSERT_LT(0, pid);
	expect_blocked(_metadata, pid);
	ASSERT_EQ(256 + SIGKILL, evt_kill(pid));
	EXPECT_EQ(full, prod_pos(&c));

	ASSERT_EQ(0, cons_drain(&c));
	EXPECT_EQ(full, prod_pos(&c));
	fill(buf, 8, 6);
	ASSERT_EQ(8, xwrite(nb, buf, 8));
	expect_rec(_metadata, &c, n + 1, 8, 6, getpid());
}

/* Child: write three records to @part (and one to @part2 unless it is
 * @part), tell the parent, then fsync.  Exits 0 when fsync returned 0.
 */
struct fsync_writer {
	unsigned int part, part2;
	int pipe_w;
};

static int child_write_fsync(void *arg)
{
	struct fsync_writer *f = arg;
	unsigned char buf[40];
	int fd = writer_open(f->part, 0);
	int ret;

	if (fd < 0)
		return 100;
	for (int i = 0; i < 3; i++) {
		fill(buf, sizeof(buf), 50 + i);
		if (xwrite(fd, buf, sizeof(buf)) != sizeof(buf))
			return 101;
	}
	if (f->part2 != f->part) {
		if (set_key(fd, EVRING_KEY_PARTITION, f->part2, 0))
			return 102;
		if (xwrite(fd, buf, sizeof(buf)) != sizeof(buf))
			return 103;
	}
	if (write(f->pipe_w, "w", 1) != 1)
		return 104;
	ret = xfsync(fd);
	if (ret) {
		fprintf(stderr, "# fsync: %s\n", strerror(-ret));
		return 105;
	}
	return 0;
}

TEST_F(ring, fsync_blocks_until_release_passes_the_fds_last_record)
{
	struct fsync_writer f = { .part = self->part, .part2 = self->part };
	unsigned char buf[16] = { 0 };
	struct cons c;
	__u64 b[3];
	int fds[2];
	pid_t pid;
	int w = writer_open(self->part, 0);

	ASSERT_LE(0, w);
	ASSERT_EQ(0, cons_open(&c, self->part));
	ASSERT_EQ(0, pipe2(fds, O_CLOEXEC));
	f.pipe_w = fds[1];
	pid = evt_spawn(child_write_fsync, &f);
	ASSERT_LT(0, pid);
	ASSERT_EQ(1, wait_byte(fds[0], 10000));
	/* Someone else's record after the child's must not matter. */
	ASSERT_EQ(16, xwrite(w, buf, 16));
	for (int i = 0; i < 3; i++) {
		expect_rec(_metadata, &c, i + 1, 40, 50 + i, pid);
		b[i] = c.pos;
	}
	expect_blocked(_metadata, pid);

	ASSERT_EQ(0, release_at(c.fd, b[1]));
	expect_blocked(_metadata, pid);
	ASSERT_EQ(0, release_at(c.fd, b[2]));
	EXPECT_EQ(0, evt_wait(pid, 10000));
}

TEST_F(ring, fsync_waits_for_every_partition_the_fd_wrote)
{
	struct fsync_writer f = { .part = 0, .part2 = self->part };
	struct cons c0, c1;
	int fds[2];
	pid_t pid;

	ASSERT_NE(0u, self->part);
	ASSERT_EQ(0, cons_open(&c0, 0));
	ASSERT_EQ(0, cons_open(&c1, self->part));
	ASSERT_EQ(0, pipe2(fds, O_CLOEXEC));
	f.pipe_w = fds[1];
	pid = evt_spawn(child_write_fsync, &f);
	ASSERT_LT(0, pid);
	ASSERT_EQ(1, wait_byte(fds[0], 10000));
	EXPECT_EQ(3 * EVRING_REC_SIZE(40), prod_pos(&c0));
	EXPECT_EQ(EVRING_REC_SIZE(40), prod_pos(&c1));
	expect_blocked(_metadata, pid);

	ASSERT_EQ(0, cons_drain(&c1));
	expect_blocked(_metadata, pid);
	ASSERT_EQ(0, cons_drain(&c0));
	EXPECT_EQ(0, evt_wait(pid, 10000));
}

/* ================================================================== */
/* fsync_timeout: fsync gives up after fsync_timeout_ms. */

FIXTURE(fsync_timeout) {
	int unused;
};

FIXTURE_SETUP(fsync_timeout)
{
	load_module(_metadata, "fsync_timeout_ms=300");
}

FIXTURE_TEARDOWN(fsync_timeout)
{
	unload_module(_metadata);
}

TEST_F(fsync_timeout, fsync_without_release_fails_etimedout_after_the_timeout)
{
	unsigned char buf[16] = { 0 };
	struct cons c = { .fd = -1 };
	int w = writer_open(1, 0);

	ASSERT_LE(0, w);
	ASSERT_EQ(16, xwrite(w, buf, 16));
	/* No consumer at all; then a consumer that reads but never releases. */
	for (int round = 0; round < 3; round++) {
		__u64 t0, dt;
		int ret;

		if (round == 2) {
			ASSERT_EQ(0, cons_open(&c, 1));
			ASSERT_NE(NULL, cons_next(&c));
			cons_mark_read(&c);
		}
		t0 = evt_now_ns(CLOCK_MONOTONIC);
		ret = round == 1 ? (fdatasync(w) ? -errno : 0) : xfsync(w);
		dt = evt_now_ns(CLOCK_MONOTONIC) - t0;
		EXPECT_EQ(-ETIMEDOUT, ret) TH_LOG("round %d", round);
		EXPECT_LE(250000000ull, dt) TH_LOG("round %d", round);
		EXPECT_GT(10000000000ull, dt) TH_LOG("round %d", round);
	}
	/* And once released, it succeeds. */
	ASSERT_EQ(0, release_at(c.fd, c.pos));
	EXPECT_EQ(0, xfsync(w));
}

/* ================================================================== */
/* Module parameters: out of bounds refuses to load. */

TEST(module_load_rejects_out_of_bounds_parameters)
{
	static const char *const bad[] = {
		"partitions=0",
		"partitions=65",
		"ring_size=12288",		/* not a power of two */
		"ring_size=8192",		/* under 16 KiB */
		"ring_size=2147483648",		/* over 1 GiB */
		"ring_size=131072",		/* < 4 x a default max_record */
		"max_record=0",
		"ring_size=16384 max_record=4065",
		"fsync_timeout_ms=0",
		"fsync_timeout_ms=3600001",
		"highwater_pct=0",
		"highwater_pct=101",
	};
	static const char upper[] = "partitions=64 ring_size=16384 "
		"max_record=4064 fsync_timeout_ms=3600000 highwater_pct=100";
	static const char lower[] = "partitions=1 max_record=1 fsync_timeout_ms=1 highwater_pct=1";
	struct evring_info in;
	int ret;

	if (geteuid() != 0)
		SKIP(return, "needs root to load evring.ko");
	if (access(evring_ko_path(), R_OK))
		SKIP(return, "no module at %s (set EVRING_KO)", evring_ko_path());

	for (unsigned int i = 0; i < ARRAY_SIZE(bad); i++) {
		ret = evring_module_load(bad[i]);
		EXPECT_EQ(-EINVAL, ret) TH_LOG("\"%s\" gave %s", bad[i],
					       strerror(-ret));
	}
	/* The bounds themselves are accepted. */
	ret = evring_module_load(upper);
	ASSERT_EQ(0, ret) TH_LOG("upper bounds: %s", strerror(-ret));
	module_info(_metadata, &in);
	EXPECT_EQ(64u, in.nr_partitions);
	EXPECT_EQ(16384u, in.ring_size);
	EXPECT_EQ(4064u, in.max_record);
	ret = evring_module_load(lower);
	ASSERT_EQ(0, ret) TH_LOG("lower bounds: %s", strerror(-ret));
	module_info(_metadata, &in);
	EXPECT_EQ(1u, in.nr_partitions);
	EXPECT_EQ(1u, in.max_record);
	EXPECT_EQ(0u, in.partition);
	EXPECT_EQ(0, evring_module_unload());
}

TEST_HARNESS_MAIN
