// SPDX-License-Identifier: GPL-2.0-only
/*
 * source_bpf: see source_bpf.h.  The parts, in order: the BPF file system
 * and the pinned objects (load or re-attach), the ring (our own mapping of
 * the BPF ringbuf, released only after commit), resuming from the spool,
 * the loss accounting, shedding, and the live settings.
 *
 * The ringbuf as mapped here (the kernel's layout, kernel/bpf/ringbuf.c):
 *
 *	offset 0		consumer page: consumer_pos (we write it)
 *	offset page		producer page: producer_pos (kernel writes)
 *	offset 2 * page		data, ring_size bytes, mapped twice back to
 *				back so that a sample that wraps is contiguous
 *
 * Each sample: a u32 length (bit 31 busy: reserved, not yet submitted;
 * bit 30 discarded), a u32 page offset, then the sample, the whole rounded
 * up to 8 bytes.  Positions are free-running byte counts.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>
#include <linux/magic.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "capture.h"
#include "evring_capture.skel.h"
#include "log.h"
#include "source_bpf.h"

#define BPF_TICK_MS		100	/* stats, loss ranges, shedding */
#define BPF_RESTAGE_MS		1	/* take more while a commit is pending... */
#define BPF_RESTAGE_FILL	8	/* ...and the ring is 1/8 full or more */
#define BPF_UNSHED_TICKS	10	/* calm ticks before one capture returns */
#define RB_BUSY			(1u << 31)
#define RB_DISCARD		(1u << 30)
#define RB_HDR			8
#define BPF_EVENT_MAX		sizeof(struct evring_bpf_exec)
#define BPF_REASON_DROP		"bpf_ringbuf_full"
#define BPF_REASON_SHED		"bpf_shed"

#define CFG_BASE_DROPS		EVRING_BPF_CFG_BASE_DROPS
#define CFG_BASE_SHED		EVRING_BPF_CFG_BASE_SHED

_Static_assert(CFG_BASE_DROPS + EVRING_BPF_NR_CAPTURES <= CFG_BASE_SHED &&
	       CFG_BASE_SHED + EVRING_BPF_NR_CAPTURES <= EVRING_BPF_CFG_NR,
	       "room for the bases");

/* Each program, the capture it feeds. */
static const struct bpf_hook {
	const char *prog;
	unsigned int capture;
} hooks[] = {
	{ "evring_exec", EVRING_BPF_EXEC },
	{ "evring_exit", EVRING_BPF_EXIT },
	{ "evring_connect", EVRING_BPF_CONNECT },
	{ "evring_accept", EVRING_BPF_ACCEPT },
	{ "evring_accept4", EVRING_BPF_ACCEPT },
	{ "evring_open", EVRING_BPF_OPEN },
	{ "evring_openat", EVRING_BPF_OPEN },
	{ "evring_openat2", EVRING_BPF_OPEN },
};

#define NR_HOOKS (sizeof(hooks) / sizeof(hooks[0]))

/* Pin names of the maps, as capture.h lists them. */
static const struct bpf_pin {
	const char *map;
	const char *pin;
} pins[] = {
	{ "evring_ring", "ring" },
	{ "evring_stats", "stats" },
	{ "evring_config", "config" },
	{ "evring_uids", "filter_uid" },
	{ "evring_cgroups", "filter_cgroup" },
	{ "evring_prefix", "open_prefix" },
};

static const char *const capture_names[] = EVRING_BPF_CAPTURE_NAMES;

struct bpf_cap {
	struct drain_stream st;
	struct source_bpf *b;
	unsigned int id;
	unsigned int hooks;		/* programs attached to its hooks */
	uint8_t *buf;			/* staged records, ring layout */
	size_t cap;
	struct evring_bpf_stats k;	/* kernel totals, at the last tick */
	uint64_t base_drops;		/* kernel totals when the epoch began */
	uint64_t base_shed;
	uint64_t acc_drops;		/* of this epoch, given seq ranges */
	uint64_t acc_shed;
};

struct source_bpf {
	struct loop *loop;
	struct drain *drain;
	struct evring_capture *skel;
	struct bpf_link *links[NR_HOOKS];	/* attached here, unpinned */
	char pin[CONFIG_PATH_MAX];
	int lock_fd;			/* the pin directory, flock()ed */
	int ring_fd, stats_fd, config_fd, uids_fd, cgroups_fd, prefix_fd;

	uint64_t *cons_pos;		/* consumer page, read-write */
	const uint64_t *prod_pos;	/* producer page and data, read-only */
	const uint8_t *data;
	size_t page;
	size_t ring_size;
	size_t map_len;

	uint64_t epoch;
	uint64_t read_pos;		/* next sample to look at */
	uint64_t released;		/* what *cons_pos says */
	uint64_t bad;			/* samples that made no sense, skipped */
	bool paused;
	bool watched;			/* ring fd registered with the loop */
	bool quiet;			/* ... but no events asked for */
	uint64_t tick;			/* timers, or 0 */
	uint64_t pump;
	uint64_t pump_at;
	int ncpus;
	struct evring_bpf_stats *percpu;

	struct config_bpf_ids shed_order;
	uint32_t shed_pct;
	unsigned int nshed;		/* shed_order's first nshed are shed */
	unsigned int calm;		/* ticks below the low mark */
	uint64_t drops_seen;		/* all captures' drops, last tick */

	struct bpf_cap caps[EVRING_BPF_NR_CAPTURES];
};

static void bpf_fail(struct source_bpf *b, int err);

/* --- small things ------------------------------------------------------ */

static void pin_path(const struct source_bpf *b, const char *name, char *buf,
		     size_t len)
{
	snprintf(buf, len, "%s/%s", b->pin, name);
}

static int cfg_get(int fd, uint32_t key, uint64_t *v)
{
	return bpf_map_lookup_elem(fd, &key, v) ? -errno : 0;
}

static int cfg_set(int fd, uint32_t key, uint64_t v)
{
	return bpf_map_update_elem(fd, &key, &v, BPF_ANY) ? -errno : 0;
}

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

/* libbpf's warnings go to the log, one line each; its debug chatter not. */
static int bpf_print(enum libbpf_print_level level, const char *fmt,
		     va_list ap)
{
	char line[512];
	size_t n;

	if (level == LIBBPF_DEBUG)
		return 0;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n && line[n - 1] == '\n')
		line[--n] = '\0';
	if (n)
		log_warn("libbpf: %s", line);
	return 0;
}

/* Sum the per-CPU stats of every capture into caps[].k. */
static int bpf_read_stats(struct source_bpf *b)
{
	for (uint32_t i = 0; i < EVRING_BPF_NR_CAPTURES; i++) {
		struct evring_bpf_stats sum = { 0 };

		if (bpf_map_lookup_elem(b->stats_fd, &i, b->percpu))
			return -errno;
		for (int c = 0; c < b->ncpus; c++) {
			sum.events += b->percpu[c].events;
			sum.drops += b->percpu[c].drops;
			sum.shed += b->percpu[c].shed;
			sum.filtered += b->percpu[c].filtered;
		}
		b->caps[i].k = sum;
	}
	return 0;
}

/* --- the file systems ----------------------------------------------------- */

/*
 * The pin directory on a BPF file system (mounting one on /sys/fs/bpf if
 * nothing is there, as bpftool does), created if missing and locked.
 */
static int bpf_prepare_pin(struct source_bpf *b, char *err, size_t errlen)
{
	char parent[CONFIG_PATH_MAX], *slash;
	struct statfs sf;

	snprintf(parent, sizeof(parent), "%s", b->pin);
	slash = strrchr(parent, '/');
	if (!slash || slash == parent) {
		snprintf(err, errlen, "bpf.pin_path '%s' must be a directory below a BPF file system",
			 b->pin);
		return -EOPNOTSUPP;
	}
	*slash = '\0';
	if ((statfs(parent, &sf) || sf.f_type != BPF_FS_MAGIC) &&
	    !strcmp(parent, "/sys/fs/bpf"))
		mount("bpf", parent, "bpf", 0, "mode=0700");
	if (statfs(parent, &sf) || sf.f_type != BPF_FS_MAGIC) {
		snprintf(err, errlen, "'%s' is not a BPF file system (mount -t bpf bpf %s)",
			 parent, parent);
		return -EOPNOTSUPP;
	}
	if (mkdir(b->pin, 0700) && errno != EEXIST) {
		snprintf(err, errlen, "cannot create '%s': %s", b->pin,
			 strerror(errno));
		return errno == EACCES || errno == EPERM ? -EOPNOTSUPP : -errno;
	}
	b->lock_fd = open(b->pin, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (b->lock_fd < 0) {
		snprintf(err, errlen, "cannot open '%s': %s", b->pin,
			 strerror(errno));
		return -errno;
	}
	if (flock(b->lock_fd, LOCK_EX | LOCK_NB)) {
		snprintf(err, errlen, "'%s' is in use by another evringd",
			 b->pin);
		return -EBUSY;
	}
	return 0;
}

/* Where libbpf looks for tracepoints: tracefs, mounted if nowhere. */
static const char *tracefs(void)
{
	if (!access("/sys/kernel/debug/tracing/events", F_OK))
		return "/sys/kernel/debug/tracing";
	if (!access("/sys/kernel/tracing/events", F_OK))
		return "/sys/kernel/tracing";
	if (!mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, NULL))
		return "/sys/kernel/tracing";
	return NULL;
}

/* Does the kernel have the tracepoint of section "tp/CATEGORY/NAME"? */
static bool hook_present(const char *tfs, const char *section)
{
	char path[256];

	if (!tfs || strncmp(section, "tp/", 3))
		return false;
	snprintf(path, sizeof(path), "%s/events/%s/id", tfs, section + 3);
	return !access(path, R_OK);
}

/* --- loading, or re-attaching to what is pinned ----------------------------- */

/*
 * What is pinned already: the ring's size (0: no ring) and the layout the
 * config map records.  -EPROTO for objects of another layout.
 */
static int bpf_inspect_pins(struct source_bpf *b, uint32_t *ring_size,
			    char *err, size_t errlen)
{
	struct bpf_map_info info;
	uint32_t len = sizeof(info);
	char path[CONFIG_PATH_MAX + 32];
	uint64_t layout = 0;
	int fd;

	*ring_size = 0;
	pin_path(b, "config", path, sizeof(path));
	fd = bpf_obj_get(path);
	if (fd >= 0) {
		cfg_get(fd, EVRING_BPF_CFG_LAYOUT, &layout);
		close(fd);
		if (layout && layout != EVRING_BPF_LAYOUT) {
			snprintf(err, errlen, "the objects pinned in '%s' are of layout %llu, this evringd's are %d: remove them (rm -r %s) to start over",
				 b->pin, (unsigned long long)layout,
				 EVRING_BPF_LAYOUT, b->pin);
			return -EPROTO;
		}
	}
	pin_path(b, "ring", path, sizeof(path));
	fd = bpf_obj_get(path);
	if (fd < 0)
		return 0;
	memset(&info, 0, sizeof(info));
	if (!bpf_obj_get_info_by_fd(fd, &info, &len))
		*ring_size = info.max_entries;
	close(fd);
	return 0;
}

/*
 * Open the skeleton with every map pinned (libbpf reuses what is pinned,
 * creates and pins the rest) and with only the programs to load that
 * have a hook here and no pinned link yet.
 */
static int bpf_load(struct source_bpf *b, const struct evd_config *c,
		    char *err, size_t errlen)
{
	char path[CONFIG_PATH_MAX + 32];
	const char *tfs = tracefs();
	uint32_t pinned_size;
	struct bpf_map *map;
	int ret;

	ret = bpf_inspect_pins(b, &pinned_size, err, errlen);
	if (ret)
		return ret;
	b->skel = evring_capture__open();
	if (!b->skel) {
		ret = errno ? -errno : -ENOMEM;
		snprintf(err, errlen, "cannot open the BPF object: %s",
			 strerror(-ret));
		return ret;
	}
	for (size_t i = 0; i < sizeof(pins) / sizeof(pins[0]); i++) {
		map = bpf_object__find_map_by_name(b->skel->obj, pins[i].map);
		pin_path(b, pins[i].pin, path, sizeof(path));
		if (!map || bpf_map__set_pin_path(map, path))
			return -ENOMEM;
	}
	b->ring_size = pinned_size ? pinned_size : c->bpf_ring_size;
	if (pinned_size && pinned_size != c->bpf_ring_size)
		log_warn("bpf: the pinned ring keeps its %u bytes (bpf.ring_size is %u): remove '%s' to resize it",
			 pinned_size, c->bpf_ring_size, b->pin);
	bpf_map__set_max_entries(b->skel->maps.evring_ring, b->ring_size);

	for (size_t i = 0; i < NR_HOOKS; i++) {
		struct bpf_program *p =
			bpf_object__find_program_by_name(b->skel->obj,
							 hooks[i].prog);
		const char *sec;
		bool load = false;

		if (!p)
			continue;
		sec = bpf_program__section_name(p);
		pin_path(b, "link_", path, sizeof(path));
		strncat(path, hooks[i].prog, sizeof(path) - strlen(path) - 1);
		if (!access(path, F_OK)) {
			b->caps[hooks[i].capture].hooks++;
		} else if (!hook_present(tfs, sec)) {
			log_info("bpf: capture '%s': the kernel has no tracepoint %s%s, skipped",
				 capture_names[hooks[i].capture], sec + 3,
				 tfs ? "" : " (tracefs is not mounted)");
		} else {
			load = true;
		}
		bpf_program__set_autoload(p, load);
	}
	ret = evring_capture__load(b->skel);
	if (ret == -EPERM || ret == -EACCES) {
		snprintf(err, errlen, "not allowed to load BPF programs (%s): evringd needs CAP_BPF and CAP_PERFMON, or root",
			 strerror(-ret));
		return -EOPNOTSUPP;
	}
	if (ret == -EINVAL && pinned_size) {
		snprintf(err, errlen, "the maps pinned in '%s' do not match this evringd's (rm -r %s to start over)",
			 b->pin, b->pin);
		return -EPROTO;
	}
	if (ret) {
		snprintf(err, errlen, "cannot load the BPF programs: %s",
			 strerror(-ret));
		return ret;
	}
	b->ring_fd = bpf_map__fd(b->skel->maps.evring_ring);
	b->stats_fd = bpf_map__fd(b->skel->maps.evring_stats);
	b->config_fd = bpf_map__fd(b->skel->maps.evring_config);
	b->uids_fd = bpf_map__fd(b->skel->maps.evring_uids);
	b->cgroups_fd = bpf_map__fd(b->skel->maps.evring_cgroups);
	b->prefix_fd = bpf_map__fd(b->skel->maps.evring_prefix);
	return 0;
}

/* Attach what was loaded and pin each link, so that it outlives us. */
static void bpf_attach(struct source_bpf *b)
{
	char path[CONFIG_PATH_MAX + 32];

	for (size_t i = 0; i < NR_HOOKS; i++) {
		struct bpf_program *p =
			bpf_object__find_program_by_name(b->skel->obj,
							 hooks[i].prog);
		struct bpf_link *link;
		int ret;

		if (!p || !bpf_program__autoload(p))
			continue;
		link = bpf_program__attach(p);
		if (!link) {
			log_warn("bpf: capture '%s': cannot attach %s: %s, skipped",
				 capture_names[hooks[i].capture],
				 bpf_program__section_name(p) + 3,
				 strerror(errno));
			continue;
		}
		b->caps[hooks[i].capture].hooks++;
		pin_path(b, "link_", path, sizeof(path));
		strncat(path, hooks[i].prog, sizeof(path) - strlen(path) - 1);
		ret = bpf_link__pin(link, path);
		if (ret) {
			/* Attached for as long as we run, then. */
			log_warn("bpf: cannot pin '%s': %s: capture '%s' stops with evringd",
				 path, strerror(-ret),
				 capture_names[hooks[i].capture]);
			b->links[i] = link;
			continue;
		}
		/* The pin holds the link now; our fd may go. */
		bpf_link__destroy(link);
	}
}

/* --- the ring ------------------------------------------------------------- */

static int bpf_map_ring(struct source_bpf *b)
{
	void *cons, *prod;

	b->page = sysconf(_SC_PAGESIZE);
	cons = mmap(NULL, b->page, PROT_READ | PROT_WRITE, MAP_SHARED,
		    b->ring_fd, 0);
	if (cons == MAP_FAILED)
		return -errno;
	b->cons_pos = cons;
	b->map_len = b->page + 2 * b->ring_size;
	prod = mmap(NULL, b->map_len, PROT_READ, MAP_SHARED, b->ring_fd,
		    b->page);
	if (prod == MAP_FAILED)
		return -errno;
	b->prod_pos = prod;
	b->data = (const uint8_t *)prod + b->page;
	return 0;
}

static uint64_t bpf_prod(const struct source_bpf *b)
{
	/* Pairs with the kernel's store-release in bpf_ringbuf_reserve(). */
	return __atomic_load_n(b->prod_pos, __ATOMIC_ACQUIRE);
}

/* Everything before @pos is durable (or was never an event): free it. */
static void bpf_release(struct source_bpf *b, uint64_t pos)
{
	if (pos <= b->released)
		return;
	b->released = pos;
	/* Pairs with the kernel's load-acquire of consumer_pos. */
	__atomic_store_n(b->cons_pos, pos, __ATOMIC_RELEASE);
}

/*
 * The sample at @pos: its header word (load-acquire: pairs with the
 * kernel's store-release at submit) and its size in the ring.
 */
static uint32_t bpf_sample(const struct source_bpf *b, uint64_t pos,
			   const struct evring_bpf_hdr **ev, uint64_t *size)
{
	const uint8_t *p = b->data + (pos & (b->ring_size - 1));
	uint32_t hlen = __atomic_load_n((const uint32_t *)p, __ATOMIC_ACQUIRE);
	uint32_t len = hlen & ~(RB_BUSY | RB_DISCARD);

	*ev = (const void *)(p + RB_HDR);
	*size = (len + RB_HDR + 7) & ~7ull;
	return hlen;
}

static bool bpf_staged(const struct source_bpf *b)
{
	for (unsigned int i = 0; i < EVRING_BPF_NR_CAPTURES; i++)
		if (b->caps[i].st.staged_count)
			return true;
	return false;
}

static uint64_t bpf_next_seq(const struct drain_stream *st)
{
	return (st->staged_count ? st->staged_last_seq : st->last_seq) + 1;
}

/* May @k stage one more record of @len payload bytes? */
static bool bpf_room(const struct bpf_cap *k, size_t len)
{
	uint64_t size = EVRING_REC_SIZE(len);

	return k->st.staged_len + size <= k->cap &&
	       drain_has_room(k->b->drain, 1, size);
}

/* Append one record, header and payload, to @k's staged run. */
static void bpf_stage_rec(struct bpf_cap *k, const void *payload,
			  uint32_t len, uint64_t ts_ns, uint32_t pid,
			  uint32_t uid)
{
	struct drain_stream *st = &k->st;
	struct evring_rec *rec = (void *)(k->buf + st->staged_len);
	uint64_t size = EVRING_REC_SIZE(len);

	rec->len = len;
	rec->flags = 0;
	rec->seq = bpf_next_seq(st);
	rec->ts_ns = ts_ns;
	rec->pid = pid;
	rec->uid = uid;
	memcpy(rec + 1, payload, len);
	memset((uint8_t *)(rec + 1) + len, 0, size - sizeof(*rec) - len);
	st->staged = k->buf;
	st->staged_len += size;
	st->staged_count++;
	st->staged_last_seq = rec->seq;
	st->staged_end = k->b->read_pos;
}

/* --- loss accounting -------------------------------------------------------- */

static uint64_t pending_drops(const struct bpf_cap *k)
{
	uint64_t total = k->k.drops - k->base_drops;

	return total > k->acc_drops ? total - k->acc_drops : 0;
}

static uint64_t pending_shed(const struct bpf_cap *k)
{
	uint64_t total = k->k.shed - k->base_shed;

	return total > k->acc_shed ? total - k->acc_shed : 0;
}

/*
 * Give the events @k's programs dropped or shed since the last time a run
 * of sequence numbers, as a loss range for the next commit, followed by a
 * loss record that makes it visible in the stream.  Only between runs: a
 * range must directly follow what is committed, and the record after it
 * is what moves the checkpoint past it.  One range per commit.
 */
static void bpf_place_loss(struct bpf_cap *k)
{
	struct drain_stream *st = &k->st;
	struct evring_bpf_loss rec = { 0 };
	uint64_t n, first;
	const char *reason;

	if (st->staged_count || st->nloss == DRAIN_LOSS_MAX)
		return;
	n = pending_drops(k);
	reason = BPF_REASON_DROP;
	rec.reason = EVRING_BPF_LOSS_DROP;
	if (!n) {
		n = pending_shed(k);
		reason = BPF_REASON_SHED;
		rec.reason = EVRING_BPF_LOSS_SHED;
	}
	if (!n || !bpf_room(k, sizeof(rec)))
		return;
	first = st->last_seq + 1;
	if (drain_stream_loss(st, first, first + n - 1, reason))
		return;
	if (rec.reason == EVRING_BPF_LOSS_DROP)
		k->acc_drops += n;
	else
		k->acc_shed += n;
	rec.hdr.capture = k->id;
	rec.hdr.kind = EVRING_BPF_KIND_LOSS;
	rec.hdr.size = sizeof(rec);
	rec.first_seq = first;
	rec.last_seq = first + n - 1;
	/* Staged after the range: its seq is last_seq + 1. */
	st->last_seq = rec.last_seq;
	bpf_stage_rec(k, &rec, sizeof(rec), clock_ns(CLOCK_REALTIME), 0, 0);
}

/* --- staging --------------------------------------------------------------- */

/*
 * Take what the ring holds, in ring order, onto each capture's staged
 * run, within the drain's bounds.  Nothing is released here.
 */
static int bpf_stage(struct source_bpf *b)
{
	uint64_t prod = bpf_prod(b), size;
	uint64_t to_real = clock_ns(CLOCK_REALTIME) - clock_ns(CLOCK_BOOTTIME);
	const struct evring_bpf_hdr *ev;
	int staged = 0;

	if (b->paused)
		return 0;
	while (b->read_pos < prod) {
		uint32_t hlen = bpf_sample(b, b->read_pos, &ev, &size);
		uint32_t len = hlen & ~(RB_BUSY | RB_DISCARD);
		struct bpf_cap *k;

		if (hlen & RB_BUSY)
			break;		/* reserved, not yet submitted */
		if (hlen & RB_DISCARD) {
			b->read_pos += size;
			continue;
		}
		if (len < sizeof(*ev) || ev->capture >= EVRING_BPF_NR_CAPTURES ||
		    ev->size < sizeof(*ev) || ev->size > len) {
			if (!b->bad++)
				log_warn("bpf: skipping a malformed sample at ring position %llu",
					 (unsigned long long)b->read_pos);
			b->read_pos += size;
			continue;
		}
		k = &b->caps[ev->capture];
		bpf_place_loss(k);
		if (!bpf_room(k, ev->size))
			break;
		b->read_pos += size;
		bpf_stage_rec(k, ev, ev->size, ev->boot_ns + to_real, ev->pid,
			      ev->uid);
		staged++;
	}
	return staged;
}

/*
 * Watch the ring fd only when nothing is staged (the kernel wakes a reader
 * only when it has caught up); while a commit is pending, what arrives
 * waits for it, unless the ring is filling: then poll every
 * BPF_RESTAGE_MS, so that it drains at the rate the spool commits.
 */
static void bpf_arm(struct source_bpf *b);

static void bpf_pump(struct source_bpf *b)
{
	int ret;

	if (!b->paused) {
		for (unsigned int i = 0; i < EVRING_BPF_NR_CAPTURES; i++)
			bpf_place_loss(&b->caps[i]);
		bpf_stage(b);
		/* Only skipped samples since the last release: free them. */
		if (!bpf_staged(b))
			bpf_release(b, b->read_pos);
	}
	/* A full spool only pauses us (bpf_pause); its I/O errors are fatal. */
	ret = drain_kick(b->drain);
	if (ret == -EIO) {
		bpf_fail(b, ret);
		return;
	}
	bpf_arm(b);
}

static void bpf_on_pump(struct loop *l, uint64_t id, void *arg)
{
	struct source_bpf *b = arg;

	b->pump = 0;
	bpf_pump(b);
}

/* Pump within @ms (sooner if already due sooner). */
static void bpf_pump_in(struct source_bpf *b, uint64_t ms)
{
	uint64_t at = loop_now_ms() + ms;

	if (b->pump) {
		if (b->pump_at <= at)
			return;
		loop_cancel_timer(b->loop, b->pump);
		b->pump = 0;
	}
	if (!loop_add_timer(b->loop, ms, 0, bpf_on_pump, b, &b->pump))
		b->pump_at = at;
	else
		b->pump = 0;
}

static void bpf_arm(struct source_bpf *b)
{
	bool quiet = b->paused || bpf_staged(b);

	if (quiet != b->quiet &&
	    !loop_mod_fd(b->loop, b->ring_fd, quiet ? 0 : LOOP_IN))
		b->quiet = quiet;
	if (!b->paused && bpf_staged(b) &&
	    bpf_prod(b) - b->released >= b->ring_size / BPF_RESTAGE_FILL)
		bpf_pump_in(b, BPF_RESTAGE_MS);
}

static void bpf_on_ready(struct loop *l, int fd, uint32_t events, void *arg)
{
	bpf_pump(arg);
}

static void bpf_committed(struct drain_stream *st, uint64_t end,
			  uint32_t count)
{
	struct bpf_cap *k = st->owner;

	bpf_release(k->b, end);
	/* Not from here: the drain is still walking its streams. */
	bpf_pump_in(k->b, 0);
}

static void bpf_pause(struct drain_stream *st, bool paused)
{
	struct bpf_cap *k = st->owner;

	if (k->b->paused == paused)
		return;
	k->b->paused = paused;
	bpf_arm(k->b);
}

static const struct drain_stream_ops bpf_ops = {
	.committed = bpf_committed,
	.pause = bpf_pause,
};

static void bpf_fail(struct source_bpf *b, int err)
{
	log_error("bpf source: %s: stopping", strerror(-err));
	loop_stop(b->loop);
}

/* --- shedding ------------------------------------------------------------- */

static int bpf_write_shed(struct source_bpf *b)
{
	uint64_t mask = 0;

	for (unsigned int i = 0; i < b->nshed; i++)
		mask |= 1ull << b->shed_order.id[i];
	return cfg_set(b->config_fd, EVRING_BPF_CFG_SHED_AUTO, mask);
}

/*
 * One tick's decision: under pressure (the ring at shed_pct, or new drops)
 * shed the next capture of the order; after BPF_UNSHED_TICKS ticks below
 * half of shed_pct, bring back the last one shed.
 */
static void bpf_shed(struct source_bpf *b)
{
	uint64_t fill = bpf_prod(b) - b->released, drops = 0;
	unsigned int pct = fill * 100 / b->ring_size;
	bool pressure;

	for (unsigned int i = 0; i < EVRING_BPF_NR_CAPTURES; i++)
		drops += b->caps[i].k.drops;
	pressure = pct >= b->shed_pct || drops > b->drops_seen;
	b->drops_seen = drops;
	if (pressure) {
		b->calm = 0;
		if (b->nshed == b->shed_order.n)
			return;
		b->nshed++;
		if (!bpf_write_shed(b))
			log_warn("bpf: ring %u%% full%s: shedding capture '%s'",
				 pct, drops ? ", events dropped" : "",
				 capture_names[b->shed_order.id[b->nshed - 1]]);
	} else if (b->nshed && pct < b->shed_pct / 2) {
		if (++b->calm < BPF_UNSHED_TICKS)
			return;
		b->calm = 0;
		b->nshed--;
		if (!bpf_write_shed(b))
			log_info("bpf: ring %u%% full: capture '%s' is no longer shed",
				 pct, capture_names[b->shed_order.id[b->nshed]]);
	} else {
		b->calm = 0;
	}
}

static void bpf_on_tick(struct loop *l, uint64_t id, void *arg)
{
	struct source_bpf *b = arg;
	int ret = bpf_read_stats(b);

	if (ret) {
		bpf_fail(b, ret);
		return;
	}
	bpf_shed(b);
	bpf_pump(b);
}

/* --- resuming -------------------------------------------------------------- */

struct ledger_sum {
	struct source_bpf *b;
	uint64_t drops[EVRING_BPF_NR_CAPTURES];
	uint64_t shed[EVRING_BPF_NR_CAPTURES];
};

static int bpf_ledger_row(uint64_t id, const struct spool_loss *l, void *arg)
{
	struct ledger_sum *s = arg;
	uint64_t n = l->last_seq - l->first_seq + 1;

	if (l->source != BATCH_SRC_BPF || l->epoch != s->b->epoch ||
	    l->partition >= EVRING_BPF_NR_CAPTURES)
		return 0;
	if (!strcmp(l->reason, BPF_REASON_DROP))
		s->drops[l->partition] += n;
	else if (!strcmp(l->reason, BPF_REASON_SHED))
		s->shed[l->partition] += n;
	return 0;
}

/*
 * Begin a new epoch of the pinned objects: from now on, losses count from
 * the kernel's totals of this moment.
 */
static int bpf_new_epoch(struct source_bpf *b)
{
	uint64_t epoch = 0;
	int ret;

	while (!epoch)
		if (getrandom(&epoch, sizeof(epoch), 0) != sizeof(epoch))
			epoch = 0;
	ret = bpf_read_stats(b);
	for (uint32_t i = 0; !ret && i < EVRING_BPF_NR_CAPTURES; i++) {
		ret = cfg_set(b->config_fd, CFG_BASE_DROPS + i,
			      b->caps[i].k.drops);
		if (!ret)
			ret = cfg_set(b->config_fd, CFG_BASE_SHED + i,
				      b->caps[i].k.shed);
	}
	if (!ret)
		ret = cfg_set(b->config_fd, EVRING_BPF_CFG_EPOCH, epoch);
	if (!ret)
		b->epoch = epoch;
	return ret;
}

/* Skip the samples in [read_pos, to): they are in the spool already. */
static int bpf_skip_to(struct source_bpf *b, uint64_t to)
{
	const struct evring_bpf_hdr *ev;
	uint64_t size;

	while (b->read_pos < to) {
		uint32_t hlen = bpf_sample(b, b->read_pos, &ev, &size);

		if (hlen & RB_BUSY)
			return -EPROTO;
		b->read_pos += size;
	}
	return b->read_pos == to ? 0 : -EPROTO;
}

/*
 * Line the captures up with the spool (see source_bpf.h): same epoch, go
 * on after the checkpoints, skipping what was committed but not released;
 * anything else, a new epoch.
 */
static int bpf_resume(struct source_bpf *b, char *err, size_t errlen)
{
	struct spool *s = drain_spool(b->drain);
	struct spool_checkpoint cp[EVRING_BPF_NR_CAPTURES];
	bool has[EVRING_BPF_NR_CAPTURES], any = false;
	uint64_t cons = __atomic_load_n(b->cons_pos, __ATOMIC_ACQUIRE);
	uint64_t prod = bpf_prod(b), pos = 0, layout = 0;
	struct ledger_sum sum = { .b = b };
	const char *why = NULL;
	int ret;

	ret = cfg_get(b->config_fd, EVRING_BPF_CFG_EPOCH, &b->epoch);
	if (!ret)
		ret = cfg_get(b->config_fd, EVRING_BPF_CFG_LAYOUT, &layout);
	if (ret)
		return ret;
	for (uint32_t i = 0; i < EVRING_BPF_NR_CAPTURES; i++) {
		ret = spool_get_checkpoint(s, BATCH_SRC_BPF, i, &cp[i]);
		if (ret && ret != -ENOENT)
			return ret;
		has[i] = !ret;
		if (has[i] && b->epoch && cp[i].epoch == b->epoch) {
			any = true;
			if (cp[i].position > pos)
				pos = cp[i].position;
		}
	}
	if (!b->epoch || !layout)
		why = "BPF objects created";
	else if (!any && cons)
		why = "the spool has no record of this BPF ring";
	else if (any && (pos > prod || cons > pos))
		why = "the BPF ring does not continue the spool's";
	b->read_pos = cons;
	b->released = cons;
	if (!why && pos > cons && bpf_skip_to(b, pos))
		why = "the BPF ring's samples do not match the spool's checkpoint";
	if (why) {
		b->read_pos = cons;
		ret = bpf_new_epoch(b);
		if (!ret)
			ret = cfg_set(b->config_fd, EVRING_BPF_CFG_LAYOUT,
				      EVRING_BPF_LAYOUT);
		if (ret) {
			snprintf(err, errlen, "cannot start a BPF epoch: %s",
				 strerror(-ret));
			return ret;
		}
		log_info("bpf: %s: epoch %016llx", why,
			 (unsigned long long)b->epoch);
	} else {
		bpf_release(b, b->read_pos);
	}

	ret = spool_foreach_loss(s, 0, bpf_ledger_row, &sum);
	if (ret)
		return ret;
	for (uint32_t i = 0; i < EVRING_BPF_NR_CAPTURES; i++) {
		struct bpf_cap *k = &b->caps[i];
		struct drain_stream *st = &k->st;

		cfg_get(b->config_fd, CFG_BASE_DROPS + i, &k->base_drops);
		cfg_get(b->config_fd, CFG_BASE_SHED + i, &k->base_shed);
		k->acc_drops = sum.drops[i];
		k->acc_shed = sum.shed[i];
		st->epoch = b->epoch;
		if (has[i] && cp[i].epoch == b->epoch) {
			st->last_seq = cp[i].last_seq;
			st->position = cp[i].position;
		} else if (has[i]) {
			st->epoch = cp[i].epoch;
			st->last_seq = cp[i].last_seq;
			drain_stream_epoch(st, b->epoch,
					   why ? why : "a new BPF epoch");
		}
	}
	return bpf_read_stats(b);
}

/* --- live settings ---------------------------------------------------------- */

/* Where cgroup v2 is mounted (/sys/fs/cgroup, or .../unified on hybrid). */
static void cgroup2_root(char *buf, size_t len)
{
	char line[4096], dev[64], dir[4096], type[64];
	FILE *f = fopen("/proc/self/mounts", "re");

	snprintf(buf, len, "/sys/fs/cgroup");
	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%63s %4095s %63s", dev, dir, type) == 3 &&
		    !strcmp(type, "cgroup2")) {
			snprintf(buf, len, "%s", dir);
			break;
		}
	}
	if (f)
		fclose(f);
}

/* Make hash map @fd hold exactly the @n keys at @keys (of @ksize bytes). */
static int bpf_sync_set(int fd, const void *keys, unsigned int n,
			size_t ksize)
{
	uint8_t one = 1, key[8], next[8];
	const uint8_t *k = keys;
	bool first = true;

	for (unsigned int i = 0; i < n; i++)
		if (bpf_map_update_elem(fd, k + i * ksize, &one, BPF_ANY))
			return -errno;
	while (!bpf_map_get_next_key(fd, first ? NULL : key, next)) {
		bool keep = false;

		for (unsigned int i = 0; i < n && !keep; i++)
			keep = !memcmp(next, k + i * ksize, ksize);
		if (!keep && !bpf_map_delete_elem(fd, next))
			continue;	/* start over from the same key */
		memcpy(key, next, ksize);
		first = false;
	}
	return errno == ENOENT ? 0 : -errno;
}

int source_bpf_reconfigure(struct source_bpf *b, const struct evd_config *c,
			   char *err, size_t errlen)
{
	uint64_t cgroups[CONFIG_BPF_LIST_MAX];
	char cgroot[CONFIG_PATH_MAX];
	unsigned int ncg = 0;
	uint64_t filters = 0;
	int ret = 0;

	for (uint32_t i = 0; !ret && i < EVRING_BPF_PREFIXES; i++) {
		struct evring_bpf_prefix p = { 0 };

		if (i < c->bpf_open_prefixes.n) {
			p.len = strlen(c->bpf_open_prefixes.path[i]);
			memcpy(p.path, c->bpf_open_prefixes.path[i], p.len);
		}
		if (bpf_map_update_elem(b->prefix_fd, &i, &p, BPF_ANY))
			ret = -errno;
	}
	if (c->bpf_cgroups.n)
		cgroup2_root(cgroot, sizeof(cgroot));
	for (unsigned int i = 0; i < c->bpf_cgroups.n; i++) {
		char path[2 * CONFIG_PATH_MAX];
		struct stat sb;

		/* A cgroup's id is the inode number of its directory. */
		snprintf(path, sizeof(path), "%s%s", cgroot,
			 c->bpf_cgroups.path[i]);
		if (stat(path, &sb)) {
			log_warn("bpf: cgroup '%s' not found (%s): the filter does not match it",
				 c->bpf_cgroups.path[i], strerror(errno));
			continue;
		}
		cgroups[ncg++] = sb.st_ino;
	}
	if (!ret)
		ret = bpf_sync_set(b->uids_fd, c->bpf_uids.id, c->bpf_uids.n,
				   sizeof(uint32_t));
	if (!ret)
		ret = bpf_sync_set(b->cgroups_fd, cgroups, ncg,
				   sizeof(uint64_t));
	if (c->bpf_uids.n)
		filters |= EVRING_BPF_FILTER_UID;
	if (c->bpf_cgroups.n)
		filters |= EVRING_BPF_FILTER_CGROUP;
	if (c->bpf_open_prefixes.n)
		filters |= EVRING_BPF_FILTER_PREFIX;
	if (!ret)
		ret = cfg_set(b->config_fd, EVRING_BPF_CFG_FILTERS, filters);
	if (!ret)
		ret = cfg_set(b->config_fd, EVRING_BPF_CFG_CAPTURES,
			      c->bpf_captures);
	if (ret) {
		snprintf(err, errlen, "cannot update the BPF config maps: %s",
			 strerror(-ret));
		return ret;
	}
	b->shed_order = c->bpf_shed;
	b->shed_pct = c->bpf_shed_fill_pct;
	if (b->nshed > b->shed_order.n)
		b->nshed = b->shed_order.n;
	return bpf_write_shed(b);
}

/* --- open and close ----------------------------------------------------------- */

int source_bpf_open(struct loop *l, struct drain *d,
		    const struct evd_config *c, struct source_bpf **out,
		    char *err, size_t errlen)
{
	struct source_bpf *b;
	unsigned int hooked = 0;
	int ret;

	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->loop = l;
	b->drain = d;
	b->lock_fd = -1;
	b->ring_fd = -1;
	b->quiet = true;
	snprintf(b->pin, sizeof(b->pin), "%s", c->bpf_pin_path);
	libbpf_set_print(bpf_print);
	b->ncpus = libbpf_num_possible_cpus();
	b->percpu = calloc(b->ncpus > 0 ? b->ncpus : 1, sizeof(*b->percpu));
	if (b->ncpus <= 0 || !b->percpu) {
		ret = b->ncpus <= 0 ? b->ncpus : -ENOMEM;
		goto fail;
	}
	for (unsigned int i = 0; i < EVRING_BPF_NR_CAPTURES; i++) {
		struct bpf_cap *k = &b->caps[i];

		k->b = b;
		k->id = i;
		k->st.source = BATCH_SRC_BPF;
		k->st.partition = i;
		k->st.ops = &bpf_ops;
		k->st.owner = k;
		/* One commit's worth, plus the largest record and a loss record. */
		k->cap = c->drain_batch_bytes + EVRING_REC_SIZE(BPF_EVENT_MAX) +
			 EVRING_REC_SIZE(sizeof(struct evring_bpf_loss));
		k->buf = malloc(k->cap);
		if (!k->buf) {
			ret = -ENOMEM;
			goto fail;
		}
	}
	err[0] = '\0';
	ret = bpf_prepare_pin(b, err, errlen);
	if (!ret)
		ret = bpf_load(b, c, err, errlen);
	if (ret)
		goto fail;
	/* Settings first, so that nothing is captured before they apply. */
	ret = cfg_set(b->config_fd, EVRING_BPF_CFG_SELF, getpid());
	if (!ret)
		ret = source_bpf_reconfigure(b, c, err, errlen);
	if (ret)
		goto fail;
	bpf_attach(b);
	ret = bpf_map_ring(b);
	if (ret) {
		snprintf(err, errlen, "cannot map the BPF ring: %s",
			 strerror(-ret));
		goto fail;
	}
	ret = bpf_resume(b, err, errlen);
	if (ret)
		goto fail;
	for (unsigned int i = 0; i < EVRING_BPF_NR_CAPTURES; i++) {
		drain_add_stream(d, &b->caps[i].st);
		hooked += b->caps[i].hooks;
	}
	if (!hooked)
		log_warn("bpf: no capture could attach to this kernel");
	ret = loop_add_fd(l, b->ring_fd, LOOP_IN, bpf_on_ready, b);
	if (!ret) {
		b->watched = true;
		b->quiet = false;
		ret = loop_add_timer(l, BPF_TICK_MS, BPF_TICK_MS, bpf_on_tick,
				     b, &b->tick);
	}
	if (ret)
		goto fail;
	*out = b;
	return 0;
fail:
	if (!err[0])
		snprintf(err, errlen, "%s", strerror(-ret));
	source_bpf_close(b);
	return ret;
}

void source_bpf_close(struct source_bpf *b)
{
	if (!b)
		return;
	/* Our pid may go to another process: stop exempting it. */
	if (b->watched)
		cfg_set(b->config_fd, EVRING_BPF_CFG_SELF, 0);
	if (b->tick)
		loop_cancel_timer(b->loop, b->tick);
	if (b->pump)
		loop_cancel_timer(b->loop, b->pump);
	if (b->watched)
		loop_del_fd(b->loop, b->ring_fd);
	if (b->prod_pos)
		munmap((void *)b->prod_pos, b->map_len);
	if (b->cons_pos)
		munmap(b->cons_pos, b->page);
	for (size_t i = 0; i < NR_HOOKS; i++)
		bpf_link__destroy(b->links[i]);
	evring_capture__destroy(b->skel);
	if (b->lock_fd >= 0)
		close(b->lock_fd);
	for (unsigned int i = 0; i < EVRING_BPF_NR_CAPTURES; i++)
		free(b->caps[i].buf);
	free(b->percpu);
	free(b);
}

int source_bpf_stage_all(struct source_bpf *b)
{
	uint32_t before = 0, after = 0;
	int ret = bpf_read_stats(b);

	if (ret)
		return ret;
	for (unsigned int i = 0; i < EVRING_BPF_NR_CAPTURES; i++)
		before += b->caps[i].st.staged_count;
	for (unsigned int i = 0; i < EVRING_BPF_NR_CAPTURES; i++)
		bpf_place_loss(&b->caps[i]);
	bpf_stage(b);
	for (unsigned int i = 0; i < EVRING_BPF_NR_CAPTURES; i++)
		after += b->caps[i].st.staged_count;
	return after - before;
}

unsigned int source_bpf_status(struct source_bpf *b,
			       struct control_part_status *rows,
			       unsigned int max)
{
	uint64_t prod = bpf_prod(b);
	unsigned int i;

	bpf_read_stats(b);
	for (i = 0; i < EVRING_BPF_NR_CAPTURES && i < max; i++) {
		struct bpf_cap *k = &b->caps[i];
		struct control_part_status *r = &rows[i];

		snprintf(r->source, sizeof(r->source), "bpf");
		snprintf(r->capture, sizeof(r->capture), "%s",
			 capture_names[i]);
		r->partition = i;
		r->epoch = k->st.epoch;
		r->ring_size = b->ring_size;
		r->ring_fill = prod - b->released;
		r->read_pos = b->read_pos;
		r->release_pos = b->released;
		r->last_seq = k->st.last_seq;
		/* The kernel's totals, as bpftool shows them. */
		r->events = k->k.events;
		r->drops = k->k.drops;
		r->shed = k->k.shed;
	}
	return i;
}
