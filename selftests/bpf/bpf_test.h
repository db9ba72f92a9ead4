/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * bpf_test.h: what the BPF capture tests share.  They run the real
 * build/bin/evringd ($EVRINGD overrides) with the BPF source on, each on
 * its own private directory, spool and pin path, and judge only what the
 * spool holds afterwards (read back through the spool and batch API) or
 * what bpftool shows.
 *
 *	struct bt_env e;
 *	bt_prereq(why, sizeof(why));		root, bpffs, tracefs, ringbuf
 *	bt_env_init(&e, "tag");			/tmp dir, pin path, open prefix
 *	bt_daemon_up(&e, sets, 30000);		evringd, ready
 *	... do things ...
 *	bt_wait(&e, pred, arg, ms);		until the spool satisfies pred
 *	bt_env_fini(&e);			kill evringd, unpin, rm
 *
 * Helpers return 0 or -errno and never use the harness's ASSERTs.
 */
#ifndef EVRING_BPF_TEST_H
#define EVRING_BPF_TEST_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/magic.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <jansson.h>

#include "batch.h"
#include "capture.h"
#include "spool.h"

#define BT_SETS_MAX	24
#define BT_PAYLOAD_MAX	1024

static inline uint64_t bt_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void bt_sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static inline bool bt_in_vm(void)
{
	return getenv("EVRING_IN_VM") != NULL;
}

/* --- prerequisites ------------------------------------------------------ */

static inline bool bt_is_fs(const char *path, long magic)
{
	struct statfs sf;

	return !statfs(path, &sf) && sf.f_type == magic;
}

/*
 * Can BPF capture run here?  Mounts bpffs and tracefs where missing (as
 * root).  0, or -errno with the reason in @why.
 */
static inline int bt_prereq(char *why, size_t len)
{
	LIBBPF_OPTS(bpf_map_create_opts, o);
	int fd;

	if (geteuid() != 0) {
		snprintf(why, len, "BPF capture needs root");
		return -EPERM;
	}
	if (!bt_is_fs("/sys/fs/bpf", BPF_FS_MAGIC) &&
	    mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700")) {
		snprintf(why, len, "no BPF file system on /sys/fs/bpf: %s",
			 strerror(errno));
		return -EOPNOTSUPP;
	}
	if (access("/sys/kernel/tracing/events", F_OK) &&
	    access("/sys/kernel/debug/tracing/events", F_OK) &&
	    mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, NULL)) {
		snprintf(why, len, "no tracefs: %s", strerror(errno));
		return -EOPNOTSUPP;
	}
	if (access("/sys/kernel/btf/vmlinux", R_OK)) {
		snprintf(why, len, "the kernel has no BTF (/sys/kernel/btf/vmlinux)");
		return -EOPNOTSUPP;
	}
	fd = bpf_map_create(BPF_MAP_TYPE_RINGBUF, "probe", 0, 0, 4096, &o);
	if (fd < 0) {
		snprintf(why, len, "no BPF ring buffers here: %s",
			 strerror(errno));
		return -EOPNOTSUPP;
	}
	close(fd);
	return 0;
}

/* --- the environment and the daemon -------------------------------------- */

struct bt_env {
	char dir[64];
	char spool[128];
	char ctl[128];
	char log[128];
	char pin[128];
	char prefix[128];	/* bpf.open_prefixes: dir/watched/ */
	char conf[128];		/* when set: -c conf, and no prefix override */
	pid_t pid;
	int last_status;
};

static inline int bt_rm_cb(const char *path, const struct stat *st, int flag,
			   struct FTW *ftw)
{
	return remove(path) && errno != ENOENT ? -1 : 0;
}

static inline int bt_env_init(struct bt_env *e, const char *tag)
{
	static unsigned int n;

	memset(e, 0, sizeof(*e));
	snprintf(e->dir, sizeof(e->dir), "/tmp/evring-bpf-%s.XXXXXX", tag);
	if (!mkdtemp(e->dir))
		return -errno;
	snprintf(e->spool, sizeof(e->spool), "%s/spool.db", e->dir);
	snprintf(e->ctl, sizeof(e->ctl), "%s/ctl.sock", e->dir);
	snprintf(e->log, sizeof(e->log), "%s/evringd.log", e->dir);
	snprintf(e->prefix, sizeof(e->prefix), "%s/watched/", e->dir);
	snprintf(e->pin, sizeof(e->pin), "/sys/fs/bpf/evring-test-%d-%u",
		 (int)getpid(), n++);
	if (mkdir(e->prefix, 0755))
		return -errno;
	return 0;
}

/* Remove the pins (which detaches the programs) and the directory. */
static inline void bt_unpin(const char *pin)
{
	nftw(pin, bt_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static inline bool bt_daemon_gone(struct bt_env *e)
{
	int status;

	if (e->pid <= 0)
		return true;
	if (waitpid(e->pid, &status, WNOHANG) != e->pid)
		return false;
	e->last_status = WIFEXITED(status) ? WEXITSTATUS(status) :
			 256 + WTERMSIG(status);
	e->pid = 0;
	return true;
}

/* Send @sig and reap; returns the exit status (256 + signal if killed). */
static inline int bt_daemon_kill(struct bt_env *e, int sig)
{
	uint64_t end = bt_now_ms() + 60000;

	if (e->pid <= 0)
		return e->last_status;
	kill(e->pid, sig);
	while (!bt_daemon_gone(e)) {
		if (bt_now_ms() > end) {
			kill(e->pid, SIGKILL);
			end = UINT64_MAX;
		}
		bt_sleep_ms(5);
	}
	return e->last_status;
}

static inline void bt_env_fini(struct bt_env *e)
{
	if (e->pid > 0)
		bt_daemon_kill(e, SIGKILL);
	if (e->pin[0])
		bt_unpin(e->pin);
	if (!e->dir[0])
		return;
	if (getenv("EVRING_BPF_KEEP"))
		fprintf(stderr, "# kept %s\n", e->dir);
	else
		nftw(e->dir, bt_rm_cb, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

static inline const char *bt_evringd(void)
{
	const char *p = getenv("EVRINGD");

	return p && *p ? p : "build/bin/evringd";
}

/*
 * Start evringd on @e: its spool, control socket, the BPF source on with
 * @e's pin path and open prefix (unless e->conf names a configuration
 * file, which then decides), no device or socket source; then @sets
 * ("section.key=value", NULL-terminated, may be NULL), which win.  Output
 * appends to e->log.
 */
static inline int bt_daemon_start(struct bt_env *e, const char *const *sets)
{
	static char base[8][200];
	const char *argv[6 + 2 * (8 + BT_SETS_MAX)];
	unsigned int n = 0, nb = 0;
	pid_t pid;

	snprintf(base[nb++], sizeof(base[0]), "spool.path=%s", e->spool);
	snprintf(base[nb++], sizeof(base[0]), "control.socket=%s", e->ctl);
	snprintf(base[nb++], sizeof(base[0]), "sources.device=");
	snprintf(base[nb++], sizeof(base[0]), "sources.socket=");
	snprintf(base[nb++], sizeof(base[0]), "host.id=bpftest");
	snprintf(base[nb++], sizeof(base[0]), "bpf.enable=yes");
	snprintf(base[nb++], sizeof(base[0]), "ship.metrics_listen=");
	snprintf(base[nb++], sizeof(base[0]), "bpf.pin_path=%s", e->pin);
	if (!e->conf[0])
		snprintf(base[nb++], sizeof(base[0]), "bpf.open_prefixes=%s",
			 e->prefix);
	argv[n++] = bt_evringd();
	if (e->conf[0]) {
		argv[n++] = "-c";
		argv[n++] = e->conf;
	}
	for (unsigned int i = 0; i < nb; i++) {
		argv[n++] = "--set";
		argv[n++] = base[i];
	}
	for (unsigned int i = 0; sets && sets[i] && i < BT_SETS_MAX; i++) {
		argv[n++] = "--set";
		argv[n++] = sets[i];
	}
	argv[n] = NULL;
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int fd = open(e->log, O_WRONLY | O_CREAT | O_APPEND, 0600);

		if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(127);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	e->pid = pid;
	return 0;
}

/* One request to the control socket, its one-line JSON answer in *@out. */
static inline int bt_ctl(const struct bt_env *e, const char *req,
			 json_t **out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 5 };
	char buf[65536];
	size_t have = 0;
	int fd, ret = 0;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", e->ctl);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    send(fd, req, strlen(req), MSG_NOSIGNAL) < 0 ||
	    send(fd, "\n", 1, MSG_NOSIGNAL) < 0) {
		ret = -errno;
		goto out;
	}
	while (!memchr(buf, '\n', have) && have < sizeof(buf) - 1) {
		ssize_t n = recv(fd, buf + have, sizeof(buf) - 1 - have, 0);

		if (n <= 0) {
			ret = n ? -errno : -ECONNRESET;
			goto out;
		}
		have += n;
	}
	buf[have] = '\0';
	*out = json_loads(buf, JSON_DISABLE_EOF_CHECK, NULL);
	if (!*out)
		ret = -EBADMSG;
out:
	close(fd);
	return ret;
}

static inline void bt_log_tail(const struct bt_env *e)
{
	char buf[4096];
	ssize_t n;
	off_t size;
	int fd = open(e->log, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return;
	size = lseek(fd, 0, SEEK_END);
	lseek(fd, size > (off_t)sizeof(buf) - 1 ? size - (off_t)sizeof(buf) + 1 : 0,
	      SEEK_SET);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n > 0) {
		buf[n] = '\0';
		fprintf(stderr, "# evringd log tail (%s):\n%s\n", e->log, buf);
	}
}

/* Start evringd and wait until it answers a ping. */
static inline int bt_daemon_up(struct bt_env *e, const char *const *sets,
			       int timeout_ms)
{
	uint64_t end = bt_now_ms() + timeout_ms;
	int ret = bt_daemon_start(e, sets);

	while (!ret) {
		json_t *j = NULL;

		if (bt_daemon_gone(e)) {
			ret = -ECHILD;
			break;
		}
		if (!bt_ctl(e, "{\"cmd\":\"ping\"}", &j)) {
			bool ok = json_is_true(json_object_get(j, "ok"));

			json_decref(j);
			if (ok)
				return 0;
		}
		if (bt_now_ms() > end)
			ret = -ETIMEDOUT;
		bt_sleep_ms(10);
	}
	fprintf(stderr, "# evringd did not come up: %s (status %d)\n",
		strerror(-ret), e->last_status);
	bt_log_tail(e);
	return ret;
}

/* Does the daemon's log contain @needle? */
static inline bool bt_log_has(const struct bt_env *e, const char *needle)
{
	char buf[65536];
	ssize_t n;
	int fd = open(e->log, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return strstr(buf, needle) != NULL;
}

/* --- the spool, read back -------------------------------------------------- */

struct bt_rec {
	uint32_t capture;	/* partition */
	uint64_t epoch;
	struct evring_rec rec;
	union {
		struct evring_bpf_hdr hdr;
		struct evring_bpf_exec exec;
		struct evring_bpf_exit exit;
		struct evring_bpf_conn conn;
		struct evring_bpf_open open;
		struct evring_bpf_loss loss;
		uint8_t bytes[BT_PAYLOAD_MAX];
	} ev;			/* zero past rec.len */
};

struct bt_loss {
	uint32_t capture;
	uint64_t epoch;
	uint64_t first_seq;
	uint64_t last_seq;
	char reason[64];
};

struct bt_spool {
	struct bt_rec *recs;	/* in spool order */
	size_t n, cap;
	struct bt_loss *loss;
	size_t nloss, lcap;
	unsigned int notes;	/* journal notes about BPF streams */
};

static inline void bt_spool_free(struct bt_spool *sp)
{
	free(sp->recs);
	free(sp->loss);
	memset(sp, 0, sizeof(*sp));
}

static inline int bt_batch_cb(uint64_t id, const void *body, size_t len,
			      void *arg)
{
	struct bt_spool *sp = arg;
	struct batch_view v;
	struct batch_iter it;
	struct evring_rec rec;
	const void *payload;
	int ret;

	ret = batch_decode(body, len, &v);
	if (ret)
		return ret;
	if (v.meta.source != BATCH_SRC_BPF)
		goto out;
	batch_iter_init(&it, &v);
	while ((ret = batch_iter_next(&it, &rec, &payload)) > 0) {
		struct bt_rec *r;

		if (sp->n == sp->cap) {
			size_t cap = sp->cap ? 2 * sp->cap : 1024;
			void *p = realloc(sp->recs, cap * sizeof(*sp->recs));

			if (!p) {
				ret = -ENOMEM;
				break;
			}
			sp->recs = p;
			sp->cap = cap;
		}
		r = &sp->recs[sp->n++];
		memset(r, 0, sizeof(*r));
		r->capture = v.meta.partition;
		r->epoch = v.meta.epoch;
		r->rec = rec;
		memcpy(r->ev.bytes, payload,
		       rec.len < BT_PAYLOAD_MAX ? rec.len : BT_PAYLOAD_MAX);
	}
out:
	batch_view_release(&v);
	return ret < 0 ? ret : 0;
}

static inline int bt_loss_cb(uint64_t id, const struct spool_loss *l,
			     void *arg)
{
	struct bt_spool *sp = arg;
	struct bt_loss *x;

	if (l->source != BATCH_SRC_BPF)
		return 0;
	if (sp->nloss == sp->lcap) {
		size_t cap = sp->lcap ? 2 * sp->lcap : 64;
		void *p = realloc(sp->loss, cap * sizeof(*sp->loss));

		if (!p)
			return -ENOMEM;
		sp->loss = p;
		sp->lcap = cap;
	}
	x = &sp->loss[sp->nloss++];
	x->capture = l->partition;
	x->epoch = l->epoch;
	x->first_seq = l->first_seq;
	x->last_seq = l->last_seq;
	snprintf(x->reason, sizeof(x->reason), "%s", l->reason);
	return 0;
}

static inline int bt_note_cb(uint64_t id, const struct spool_note *n,
			     void *arg)
{
	struct bt_spool *sp = arg;

	if (n->source == BATCH_SRC_BPF)
		sp->notes++;
	return 0;
}

/* Everything of source BPF the spool at @path holds now. */
static inline int bt_spool_read(const char *path, struct bt_spool *sp)
{
	struct spool_opts o = { .path = path, .read_only = true };
	struct spool *s;
	int ret;

	memset(sp, 0, sizeof(*sp));
	ret = spool_open(&o, &s, NULL, 0);
	if (ret)
		return ret;
	ret = spool_foreach_batch(s, 0, bt_batch_cb, sp);
	if (!ret)
		ret = spool_foreach_loss(s, 0, bt_loss_cb, sp);
	if (!ret)
		ret = spool_foreach_note(s, 0, bt_note_cb, sp);
	spool_close(s);
	if (ret)
		bt_spool_free(sp);
	return ret;
}

/* Until @pred(spool, arg) is true, or @ms passed: 0 or -ETIMEDOUT. */
static inline int bt_wait(const struct bt_env *e,
			  bool (*pred)(const struct bt_spool *, void *),
			  void *arg, unsigned int ms)
{
	uint64_t end = bt_now_ms() + ms;

	for (;;) {
		struct bt_spool sp;
		bool ok = false;

		if (!bt_spool_read(e->spool, &sp)) {
			ok = pred(&sp, arg);
			bt_spool_free(&sp);
		}
		if (ok)
			return 0;
		if (bt_now_ms() > end)
			return -ETIMEDOUT;
		bt_sleep_ms(20);
	}
}

/* Sum of the ledger's ranges of @capture with @reason (NULL: any). */
static inline uint64_t bt_lost(const struct bt_spool *sp, uint32_t capture,
			       const char *reason)
{
	uint64_t n = 0;

	for (size_t i = 0; i < sp->nloss; i++)
		if (sp->loss[i].capture == capture &&
		    (!reason || !strcmp(sp->loss[i].reason, reason)))
			n += sp->loss[i].last_seq - sp->loss[i].first_seq + 1;
	return n;
}

/*
 * Are @capture's sequence numbers, per epoch, 1, 2, 3, ... with every hole
 * exactly a ledger range, each followed by its loss record?  Returns the
 * number of problems, printing the first few.
 */
static inline unsigned int bt_check_seq(const struct bt_spool *sp,
					uint32_t capture)
{
	uint64_t epoch = 0, want = 1;
	unsigned int bad = 0;

	for (size_t i = 0; i < sp->n; i++) {
		const struct bt_rec *r = &sp->recs[i];

		if (r->capture != capture)
			continue;
		if (r->epoch != epoch) {
			epoch = r->epoch;
			want = 1;
		}
		while (r->rec.seq > want) {
			bool covered = false;

			for (size_t j = 0; j < sp->nloss; j++) {
				const struct bt_loss *l = &sp->loss[j];

				if (l->capture == capture && l->epoch == epoch &&
				    l->first_seq == want &&
				    l->last_seq < r->rec.seq) {
					covered = true;
					want = l->last_seq + 1;
					break;
				}
			}
			if (!covered)
				break;
		}
		if (r->rec.seq != want) {
			if (bad++ < 5)
				fprintf(stderr, "# capture %u epoch %016llx: seq %llu where %llu was due\n",
					capture, (unsigned long long)epoch,
					(unsigned long long)r->rec.seq,
					(unsigned long long)want);
		}
		if (r->ev.hdr.kind == EVRING_BPF_KIND_LOSS &&
		    r->ev.loss.last_seq + 1 != r->rec.seq && bad++ < 5)
			fprintf(stderr, "# capture %u: loss record %llu does not follow its range\n",
				capture, (unsigned long long)r->rec.seq);
		want = r->rec.seq + 1;
	}
	return bad;
}

/* The kernel's totals of @capture, from the pinned stats map. */
static inline int bt_kstats(const struct bt_env *e, uint32_t capture,
			    struct evring_bpf_stats *out)
{
	char path[200];
	int ncpus = libbpf_num_possible_cpus(), fd, ret = 0;
	struct evring_bpf_stats *v;

	snprintf(path, sizeof(path), "%s/stats", e->pin);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -errno;
	v = calloc(ncpus, sizeof(*v));
	if (!v || bpf_map_lookup_elem(fd, &capture, v)) {
		ret = v ? -errno : -ENOMEM;
	} else {
		memset(out, 0, sizeof(*out));
		for (int c = 0; c < ncpus; c++) {
			out->events += v[c].events;
			out->drops += v[c].drops;
			out->shed += v[c].shed;
			out->filtered += v[c].filtered;
		}
	}
	free(v);
	close(fd);
	return ret;
}

/* Set one key of the pinned config map. */
static inline int bt_cfg_set(const struct bt_env *e, uint32_t key,
			     uint64_t value)
{
	char path[200];
	int fd, ret;

	snprintf(path, sizeof(path), "%s/config", e->pin);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -errno;
	ret = bpf_map_update_elem(fd, &key, &value, BPF_ANY) ? -errno : 0;
	close(fd);
	return ret;
}

/* Run a shell command line, its stdout into *@out (malloc'ed). */
static inline int bt_sh(const char *cmd, char **out)
{
	size_t cap = 65536, have = 0;
	char *buf = malloc(cap);
	FILE *f = popen(cmd, "r");
	int status;

	if (!buf || !f) {
		free(buf);
		if (f)
			pclose(f);
		return -ENOMEM;
	}
	while (have < cap - 1) {
		size_t n = fread(buf + have, 1, cap - 1 - have, f);

		if (!n)
			break;
		have += n;
	}
	buf[have] = '\0';
	status = pclose(f);
	*out = buf;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -ECHILD;
}

#endif /* EVRING_BPF_TEST_H */
