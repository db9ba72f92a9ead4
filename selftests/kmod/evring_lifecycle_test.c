// SPDX-License-Identifier: GPL-2.0-only
/*
 * evring.ko's life: loading with bad and boundary parameters, load/unload
 * cycles, and unloading while something still holds the module (an open
 * fd, a mapping that outlived its fd, a writer asleep on a full ring, a
 * netlink client).
 *
 * Unload attempts that must fail call delete_module(O_NONBLOCK) directly:
 * 6.1's kernel/module/main.c answers EWOULDBLOCK when the module's
 * refcount is not zero (every open /dev/evring file holds one, through
 * fops->owner), and the caller is not made to wait.
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
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include "evring.h"
#include "evring_module.h"
#include "evring_test_util.h"

/* EXPECT_EQ(0, u64) compares an int with an unsigned value, as meant. */
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

#define SMALL		"partitions=2 ring_size=16384 max_record=1024"
#define MUST_MS		10000

/* One unload attempt that does not wait: 0 or -errno. */
static int try_unload(void)
{
	return syscall(SYS_delete_module, "evring", O_NONBLOCK) ? -errno : 0;
}

static int module_loaded(void)
{
	struct stat st;

	return stat("/sys/module/evring", &st) == 0;
}

static int dev_exists(void)
{
	struct stat st;

	return stat(EVRING_DEV_PATH, &st) == 0;
}

/* The kernel log from here on: /dev/kmsg positioned at its end, or -1. */
static int kmsg_open(void)
{
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd >= 0)
		lseek(fd, 0, SEEK_END);
	return fd;
}

/* Append every kernel log record since kmsg_open() to @buf. */
static void kmsg_read(int fd, char *buf, size_t size)
{
	size_t used = strlen(buf);

	while (used + 1 < size) {
		ssize_t n = read(fd, buf + used, size - used - 1);

		if (n < 0 && errno == EPIPE)
			continue;	/* overwritten records: skip ahead */
		if (n <= 0)
			break;
		used += n;
		buf[used] = '\0';
	}
}

/* A writer fd for @part; -errno on failure. */
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

FIXTURE(life) {
	char skip[128];
};

FIXTURE_SETUP(life)
{
	int fd = open(evring_ko_path(), O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		snprintf(self->skip, sizeof(self->skip), "no module at '%s'",
			 evring_ko_path());
		return;
	}
	close(fd);
	if (getuid() != 0) {
		snprintf(self->skip, sizeof(self->skip),
			 "loading modules needs root");
		return;
	}
	/* Every test starts from an unloaded module. */
	ASSERT_EQ(0, evring_module_unload());
}

FIXTURE_TEARDOWN(life)
{
	evt_reap_all();
	if (!self->skip[0])
		unload_after(_metadata);
}

#define NEED_MODULE() do {						\
	if (self->skip[0])						\
		SKIP(return, "%s", self->skip);				\
} while (0)

/* --- parameters -------------------------------------------------------- */

TEST_F_TIMEOUT(life, load_with_a_parameter_out_of_bounds_is_einval_and_logged, 120)
{
	static const struct {
		const char *params;
		const char *name;	/* the log line must name it */
	} bad[] = {
		{ "ring_size=100000", "ring_size" },	/* not a power of two */
		{ "ring_size=0", "ring_size" },
		{ "ring_size=8192", "ring_size" },	/* under 16 KiB */
		{ "ring_size=2147483648", "ring_size" },	/* over 1 GiB */
		{ "partitions=0", "partitions" },
		{ "partitions=65", "partitions" },
		{ "partitions=-1", "partitions" },	/* no wrap to 2^32-1 */
		{ "max_record=0", "max_record" },
		/* KMOD.md: max_record <= ring_size/4 - 32 */
		{ "ring_size=16384 max_record=4065", "max_record" },
		{ "ring_size=16384 max_record=4097", "max_record" },
		{ "fsync_timeout_ms=0", "fsync_timeout_ms" },
		{ "fsync_timeout_ms=3600001", "fsync_timeout_ms" },
		{ "highwater_pct=0", "highwater_pct" },
		{ "highwater_pct=101", "highwater_pct" },
	};
	static char log[65536];
	int kmsg = kmsg_open();

	NEED_MODULE();
	if (kmsg < 0)
		TH_LOG("no /dev/kmsg (%s): log lines not checked",
		       strerror(errno));
	for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int ret;

		log[0] = '\0';
		if (kmsg >= 0)
			kmsg_read(kmsg, log, sizeof(log));	/* skip old */
		log[0] = '\0';
		ret = evring_module_load(bad[i].params);
		EXPECT_EQ(-EINVAL, ret) {
			TH_LOG("'%s' loaded or failed otherwise: %s",
			       bad[i].params, strerror(-ret));
		}
		EXPECT_FALSE(module_loaded());
		EXPECT_FALSE(dev_exists());
		if (kmsg >= 0) {
			kmsg_read(kmsg, log, sizeof(log));
			EXPECT_NE(NULL, strstr(log, bad[i].name)) {
				TH_LOG("'%s': no log line naming '%s':\n%s",
				       bad[i].params, bad[i].name, log);
			}
		}
		/* A failed load left nothing registered behind. */
		ASSERT_EQ(0, evring_module_unload());
		ASSERT_EQ(0, evring_module_load(SMALL));
		ASSERT_EQ(0, evring_module_unload());
	}
	if (kmsg >= 0)
		close(kmsg);
}

TEST_F(life, load_at_every_bound_succeeds_and_info_reports_it)
{
	static const struct {
		const char *params;
		uint32_t parts, ring, max;
	} good[] = {
		{ "partitions=1 ring_size=16384 max_record=1 "
		  "fsync_timeout_ms=1 highwater_pct=1", 1, 16384, 1 },
		{ "partitions=64 ring_size=16384 max_record=4064 "
		  "fsync_timeout_ms=3600000 highwater_pct=100", 64, 16384, 4064 },
		{ "partitions=2 ring_size=4194304 max_record=1048544",
		  2, 4u << 20, 1048544 },		/* ring/4 - 32 */
		{ "", 4, 1u << 20, 65536 },		/* the defaults */
	};

	NEED_MODULE();
	for (unsigned int i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct evring_info info;
		int ret = evring_module_load(good[i].params), fd;

		ASSERT_EQ(0, ret) {
			TH_LOG("'%s' rejected", good[i].params);
		}
		fd = open(EVRING_DEV_PATH, O_WRONLY | O_CLOEXEC);
		ASSERT_LE(0, fd);
		EVT_POISON(info);
		ASSERT_EQ(0, ioctl(fd, EVRING_IOC_INFO, &info));
		EXPECT_EQ(EVRING_UAPI_VERSION, info.version);
		EXPECT_EQ(good[i].parts, info.nr_partitions);
		EXPECT_EQ(good[i].ring, info.ring_size);
		EXPECT_EQ(good[i].max, info.max_record);
		EXPECT_NE(0, info.epoch);
		EXPECT_GT(info.nr_partitions, info.partition);
		EXPECT_EQ(0, info.pad);
		close(fd);
		ASSERT_EQ(0, evring_module_unload());
	}
}

/* --- load/unload cycles ------------------------------------------------ */

TEST_F_TIMEOUT(life, reload_cycles_get_new_epochs_and_restart_seq_at_one, 120)
{
	enum { CYCLES = 20 };
	uint64_t epochs[CYCLES];

	NEED_MODULE();
	for (unsigned int i = 0; i < CYCLES; i++) {
		struct evring_consumer *c = NULL;
		const struct evring_rec *r;
		struct evring_config cfg;
		struct evring_info info;
		struct evring_nl *nl = NULL;
		char msg[32];
		uint64_t t0, t1;
		int fd, len;

		ASSERT_EQ(0, evring_module_load(SMALL));
		ASSERT_TRUE(dev_exists());
		fd = writer_open(1, 0);
		ASSERT_LE(0, fd);
		EVT_POISON(info);
		ASSERT_EQ(0, ioctl(fd, EVRING_IOC_INFO, &info));
		ASSERT_NE(0, info.epoch);
		EXPECT_EQ(EVRING_UAPI_VERSION, info.version);
		EXPECT_EQ(1, info.partition);
		epochs[i] = info.epoch;
		for (unsigned int j = 0; j < i; j++) {
			ASSERT_NE(epochs[j], epochs[i]) {
				TH_LOG("cycle %u repeats the epoch of cycle %u",
				       i, j);
			}
		}

		len = snprintf(msg, sizeof(msg), "cycle %u", i);
		t0 = evt_now_ns(CLOCK_REALTIME);
		ASSERT_EQ(len, write(fd, msg, len));
		t1 = evt_now_ns(CLOCK_REALTIME);
		ASSERT_EQ(0, evring_consumer_open(NULL, 1, &c));
		EXPECT_EQ(info.epoch, evring_consumer_layout(c)->epoch);
		r = evring_consumer_next(c);
		ASSERT_NE(NULL, r);
		EXPECT_EQ(1, r->seq);
		EXPECT_EQ(len, r->len);
		EXPECT_EQ(0, memcmp(r + 1, msg, len));
		EXPECT_EQ((uint32_t)getpid(), r->pid);
		EXPECT_EQ(getuid(), r->uid);
		EXPECT_LE(t0, r->ts_ns);
		EXPECT_GE(t1, r->ts_ns);
		EXPECT_EQ(NULL, evring_consumer_next(c));

		/* The netlink family came back with the module. */
		ASSERT_EQ(0, evring_nl_open(&nl));
		EVT_POISON(cfg);
		ASSERT_EQ(0, evring_nl_get_config(nl, &cfg));
		EXPECT_EQ(info.epoch, cfg.epoch);
		evring_nl_close(nl);

		evring_consumer_close(c);
		close(fd);
		ASSERT_EQ(0, try_unload());
		EXPECT_FALSE(module_loaded());
		EXPECT_FALSE(dev_exists());
		nl = (struct evring_nl *)0x1;
		EXPECT_EQ(-ENOENT, evring_nl_open(&nl));
	}
}

/* --- unloading while the module is in use ------------------------------ */

TEST_F(life, unload_fails_while_a_writer_fd_is_open_and_succeeds_after_close)
{
	int fd;

	NEED_MODULE();
	ASSERT_EQ(0, evring_module_load(SMALL));
	fd = writer_open(0, 0);
	ASSERT_LE(0, fd);
	ASSERT_EQ(3, write(fd, "one", 3));
	EXPECT_EQ(-EWOULDBLOCK, try_unload());
	/* Still fully there. */
	EXPECT_TRUE(module_loaded());
	EXPECT_TRUE(dev_exists());
	EXPECT_EQ(3, write(fd, "two", 3));
	close(fd);
	EXPECT_EQ(0, try_unload());
	EXPECT_FALSE(module_loaded());
}

TEST_F(life, unload_fails_while_a_consumer_fd_is_attached_and_succeeds_after_close)
{
	struct evring_attach at = { .partition = 1 };
	int fd;

	NEED_MODULE();
	ASSERT_EQ(0, evring_module_load(SMALL));
	fd = open(EVRING_DEV_PATH, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ioctl(fd, EVRING_IOC_ATTACH, &at));
	EXPECT_EQ(-EWOULDBLOCK, try_unload());
	EXPECT_TRUE(module_loaded());
	close(fd);
	EXPECT_EQ(0, try_unload());
	EXPECT_FALSE(module_loaded());
}

/* Attach to partition 0, map what @which asks for, close the fd. */
struct kept_map {
	struct evring_layout lay;
	void *cons, *prod;
};

static int map_and_close(struct kept_map *m, int cons, int prod)
{
	struct evring_attach at = { .partition = 0 };
	int fd = open(EVRING_DEV_PATH, O_RDWR | O_CLOEXEC), ret = 0;

	m->cons = m->prod = MAP_FAILED;
	if (fd < 0)
		return -errno;
	memset(&m->lay, 0xa5, sizeof(m->lay));
	if (ioctl(fd, EVRING_IOC_ATTACH, &at) ||
	    ioctl(fd, EVRING_IOC_LAYOUT, &m->lay))
		ret = -errno;
	if (!ret && cons) {
		m->cons = mmap(NULL, m->lay.cons_size, PROT_READ | PROT_WRITE,
			       MAP_SHARED, fd, m->lay.cons_off);
		if (m->cons == MAP_FAILED)
			ret = -errno;
	}
	if (!ret && prod) {
		m->prod = mmap(NULL, m->lay.prod_size, PROT_READ, MAP_SHARED,
			       fd, m->lay.prod_off);
		if (m->prod == MAP_FAILED)
			ret = -errno;
	}
	close(fd);
	return ret;
}

TEST_F(life, unload_fails_while_the_ring_stays_mapped_after_close_and_succeeds_after_munmap)
{
	const struct evring_prod_page *pp;
	struct kept_map m;
	int fd;

	NEED_MODULE();
	/* Both mappings kept: either one holds the module. */
	ASSERT_EQ(0, evring_module_load(SMALL));
	ASSERT_EQ(0, map_and_close(&m, 1, 1));
	EXPECT_EQ(-EWOULDBLOCK, try_unload());

	/* The mapping is live, not a snapshot: a new record shows in it. */
	pp = m.prod;
	EXPECT_EQ(m.lay.epoch, pp->epoch);
	EXPECT_EQ(0, pp->partition);
	EXPECT_EQ(16384, pp->data_size);
	fd = writer_open(0, 0);
	ASSERT_LE(0, fd);
	ASSERT_EQ(5, write(fd, "alive", 5));
	close(fd);
	EXPECT_EQ(EVRING_REC_SIZE(5),
		  __atomic_load_n(&pp->prod_pos, __ATOMIC_ACQUIRE));
	EXPECT_EQ(0, memcmp((const char *)m.prod + m.lay.data_off +
			    sizeof(struct evring_rec), "alive", 5));

	ASSERT_EQ(0, munmap(m.cons, m.lay.cons_size));
	EXPECT_EQ(-EWOULDBLOCK, try_unload());
	ASSERT_EQ(0, munmap(m.prod, m.lay.prod_size));
	EXPECT_EQ(0, try_unload());
	EXPECT_FALSE(module_loaded());

	/* The consumer page alone holds it too. */
	ASSERT_EQ(0, evring_module_load(SMALL));
	ASSERT_EQ(0, map_and_close(&m, 1, 0));
	EXPECT_EQ(-EWOULDBLOCK, try_unload());
	ASSERT_EQ(0, munmap(m.cons, m.lay.cons_size));
	EXPECT_EQ(0, try_unload());
	EXPECT_FALSE(module_loaded());
}

TEST_F(life, a_mapping_that_outlives_its_fd_keeps_the_partition_attached)
{
	struct evring_attach at = { .partition = 0 };
	struct evring_part_stats st;
	struct evring_nl *nl = NULL;
	struct kept_map m;
	int fd;

	NEED_MODULE();
	ASSERT_EQ(0, evring_module_load(SMALL));
	ASSERT_EQ(0, map_and_close(&m, 0, 1));
	ASSERT_EQ(0, evring_nl_open(&nl));
	EVT_POISON(st);
	ASSERT_EQ(0, evring_nl_stats(nl, 0, &st));
	EXPECT_EQ(1, st.consumer);
	EXPECT_EQ((uint32_t)getpid(), st.consumer_pid);

	fd = open(EVRING_DEV_PATH, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd);
	EXPECT_EQ(-1, ioctl(fd, EVRING_IOC_ATTACH, &at));
	EXPECT_EQ(EBUSY, errno);
	ASSERT_EQ(0, munmap(m.prod, m.lay.prod_size));
	EXPECT_EQ(0, ioctl(fd, EVRING_IOC_ATTACH, &at));
	close(fd);
	EVT_POISON(st);
	ASSERT_EQ(0, evring_nl_stats(nl, 0, &st));
	EXPECT_EQ(0, st.consumer);
	EXPECT_EQ(0, st.consumer_pid);
	evring_nl_close(nl);
}

/* Child: one blocking write into partition 0 (full: it sleeps). */
static int sleeper(void *arg)
{
	static char buf[1024];
	int fd = writer_open(0, 0);

	if (fd < 0)
		return 10;
	return write(fd, buf, sizeof(buf)) == sizeof(buf) ? 0 : 11;
}

TEST_F(life, unload_fails_while_a_writer_sleeps_and_succeeds_after_it_is_killed)
{
	static char buf[1024];
	pid_t pid;
	int fd;

	NEED_MODULE();
	ASSERT_EQ(0, evring_module_load(SMALL));
	fd = writer_open(0, O_NONBLOCK);
	ASSERT_LE(0, fd);
	while (write(fd, buf, sizeof(buf)) == sizeof(buf))
		;
	ASSERT_EQ(EAGAIN, errno);
	close(fd);

	pid = evt_spawn(sleeper, NULL);
	ASSERT_LT(0, pid);
	ASSERT_TRUE(evt_wait_asleep(pid, 0, MUST_MS));
	EXPECT_EQ(-EWOULDBLOCK, try_unload());
	EXPECT_EQ(256 + SIGKILL, evt_kill(pid));
	EXPECT_EQ(0, try_unload());
	EXPECT_FALSE(module_loaded());
}

struct hammer {
	struct evring_nl *nl;
	volatile int stop;
	int ret;		/* the error that ended it */
	unsigned long calls;
};

static void *hammer_fn(void *arg)
{
	struct hammer *h = arg;
	struct evring_part_stats st[4];
	unsigned int n;

	while (!h->stop) {
		h->ret = h->calls & 1 ?
			 evring_nl_stats_all(h->nl, st, 4, &n) :
			 evring_nl_stats(h->nl, (h->calls >> 1) & 1, st);
		if (h->ret)
			break;
		h->calls++;
	}
	return NULL;
}

TEST_F(life, unload_with_netlink_clients_busy_succeeds)
{
	struct evring_nl *mon = NULL;
	struct evring_notice n;
	struct hammer h = { 0 };
	pthread_t th;

	NEED_MODULE();
	ASSERT_EQ(0, evring_module_load(SMALL));
	ASSERT_EQ(0, evring_nl_open(&mon));
	ASSERT_EQ(0, evring_nl_subscribe(mon));
	ASSERT_EQ(0, evring_nl_open(&h.nl));
	ASSERT_EQ(0, pthread_create(&th, NULL, hammer_fn, &h));
	while (__atomic_load_n(&h.calls, __ATOMIC_RELAXED) < 20 && !h.ret)
		evt_sleep_ms(1);

	/* A dump in flight may hold the module for an instant: retried. */
	EXPECT_EQ(0, evring_module_unload());
	EXPECT_FALSE(module_loaded());
	h.stop = 1;
	pthread_join(th, NULL);
	TH_LOG("%lu requests, ended with %d", h.calls, h.ret);
	EXPECT_LE(20, h.calls);
	EXPECT_EQ(0, evring_nl_next_notice(mon, 200, &n));
	evring_nl_close(h.nl);
	evring_nl_close(mon);

	/* And it comes back. */
	ASSERT_EQ(0, evring_module_load(SMALL));
	ASSERT_EQ(0, evring_nl_open(&mon));
	evring_nl_close(mon);
}

TEST_HARNESS_MAIN
