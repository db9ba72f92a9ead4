// SPDX-License-Identifier: GPL-2.0-only
/*
 * drill_run: `evringctl drill` — setup, canary writers, the fault schedule,
 * sampling, the SLA watch, drain, reading the regions back, the report.
 * See drill_run.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "batch.h"
#include "drill_canary.h"
#include "drill_check.h"
#include "drill_inject.h"
#include "drill_report.h"
#include "drill_run.h"
#include "drill_scenario.h"
#include "evring.h"
#include "jetstream.h"

#define EXIT_FAIL		1
#define EXIT_NORUN		2
#define TICK_MS			50
#define SAMPLE_MS		250
#define STATUS_TIMEOUT_MS	1000
#define READY_TIMEOUT_MS	30000
#define CONNECT_TIMEOUT_MS	30000
#define WRITER_BURST_MAX	1024
#define WRITER_SYNC_MS		1000
#define READ_RETRY_MS		30000
#define STREAM			"EVRING"
#define PREFIX			"evring"
#define HOST_ID			"drill"
#define DEVICE			"/dev/evring"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	stop_requested = sig;
}

static void __attribute__((format(printf, 3, 4)))
sfmt(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* --- writers ----------------------------------------------------------------- */

/* One record of a writer's log (DIR/writer-N.log), host byte order. */
enum wrec_kind { WREC_ATTEMPT = 1, WREC_ACK, WREC_RECONNECT, WREC_ERROR };

struct wrec {
	uint32_t kind;
	int32_t err;			/* WREC_ERROR: -errno */
	uint64_t first, last;		/* sequences, inclusive */
	uint64_t ns;			/* CLOCK_REALTIME */
};

struct writer {
	unsigned int id;
	pid_t pid;
	char log[PATH_MAX];
};

struct writer_args {
	const struct drill_scenario *s;
	unsigned int id;
	uint64_t drill_id;
	int64_t t0_ms;			/* CLOCK_MONOTONIC at t = 0 */
	const char *dev;		/* "/nonexistent" for the socket */
	const char *sock;
	int fd;				/* the log */
};

static volatile sig_atomic_t writer_stop;

static void writer_on_signal(int sig)
{
	writer_stop = 1;
}

static void wlog(int fd, uint32_t kind, uint64_t first, uint64_t last,
		 int err)
{
	struct wrec r = {
		.kind = kind, .err = err, .first = first, .last = last,
		.ns = drill_wall_ns(),
	};

	if (write(fd, &r, sizeof(r)) != sizeof(r))
		_exit(3);
}

/* Log what @w acknowledged beyond *acked (sequences from @c0). */
static void writer_acks(const struct writer_args *a, struct evring_writer *w,
			uint64_t c0, uint64_t sent, uint64_t *acked)
{
	uint64_t n = evring_writer_is_device(w) ? sent : evring_writer_acked(w);

	if (n > *acked) {
		wlog(a->fd, WREC_ACK, c0 + *acked, c0 + n - 1, 0);
		*acked = n;
	}
}

/*
 * The body of writer process @a->id: canaries at its share of the rate,
 * bursts of what is due, each followed by a sync; reconnects when evringd
 * went away.  Catch-up after an outage is bounded to one second's worth:
 * what falls behind further is never attempted.
 */
static int writer_main(const struct writer_args *a)
{
	const struct drill_scenario *s = a->s;
	struct sigaction sa = { .sa_handler = writer_on_signal };
	struct evring_writer *w = NULL;
	uint64_t seq = 0, c0 = 0, sent = 0, acked = 0;
	int64_t last = 0;
	double due = 0;
	bool first = true;
	uint8_t *buf = malloc(s->traffic.size);

	if (!buf)
		return 1;
	sigaction(SIGTERM, &sa, NULL);	/* no SA_RESTART: a blocked send ends */
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	while (!writer_stop) {
		int64_t now = drill_now_ms() - a->t0_ms;
		double rate, cap;
		uint64_t n, k;
		int ret = 0;

		if (now >= (int64_t)s->duration_ms)
			break;
		rate = (double)drill_traffic_rate(&s->traffic, now,
						  s->duration_ms) /
		       s->traffic.writers;
		due += rate * (double)(now - last) / 1000.0;
		last = now;
		cap = rate > 1 ? rate : 1;
		if (due > cap)
			due = cap;
		if (!w) {
			ret = evring_writer_open(a->dev, a->sock, &w);
			if (ret) {
				sleep_ms(10);
				continue;
			}
			c0 = seq;
			sent = acked = 0;
			if (!first)
				wlog(a->fd, WREC_RECONNECT, seq, seq, 0);
			first = false;
		}
		n = (uint64_t)due;
		if (!n) {
			sleep_ms(rate > 0 ? (unsigned int)(1000.0 / rate) + 1 > 20 ?
				 20 : (unsigned int)(1000.0 / rate) + 1 : 20);
			continue;
		}
		if (n > WRITER_BURST_MAX)
			n = WRITER_BURST_MAX;
		due -= (double)n;
		wlog(a->fd, WREC_ATTEMPT, seq, seq + n - 1, 0);
		for (k = 0; k < n && !ret; k++) {
			struct drill_canary c = {
				.drill_id = a->drill_id, .writer = a->id,
				.seq = seq + k, .sent_ns = drill_wall_ns(),
			};

			drill_canary_encode(&c, buf, s->traffic.size);
			ret = evring_writer_write(w, buf, s->traffic.size);
			if (!ret)
				sent++;
		}
		seq += n;
		if (!ret)
			ret = evring_writer_sync(w, WRITER_SYNC_MS);
		if (!ret || ret == -ETIMEDOUT || !evring_writer_is_device(w))
			writer_acks(a, w, c0, ret ? 0 : sent, &acked);
		if (ret == -ETIMEDOUT)
			continue;
		if (ret) {
			if (ret != -ECONNRESET && ret != -EPIPE &&
			    ret != -ENOTCONN && ret != -EINTR)
				wlog(a->fd, WREC_ERROR, seq, seq, ret);
			evring_writer_close(w);
			w = NULL;
			/* A new connection: what was sent and not acked
			 * stays unknown; the next ones get new sequences. */
			seq = seq > c0 + sent ? seq : c0 + sent;
		}
	}
	if (w) {
		/* The last acknowledgements. */
		int ret = evring_writer_sync(w, 2000);

		if (!ret || !evring_writer_is_device(w))
			writer_acks(a, w, c0, ret ? 0 : sent, &acked);
		evring_writer_close(w);
	}
	free(buf);
	return 0;
}

static int writers_start(const struct drill_scenario *s, const char *dir,
			 uint64_t drill_id, int64_t t0, const char *dev,
			 const char *sock, struct writer *wr,
			 struct drill_inject *inj)
{
	for (unsigned int i = 0; i < s->traffic.writers; i++) {
		struct writer_args a = {
			.s = s, .id = i, .drill_id = drill_id, .t0_ms = t0,
			.dev = dev, .sock = sock,
		};
		pid_t pid;

		wr[i].id = i;
		sfmt(wr[i].log, sizeof(wr[i].log), "%s/writer-%u.log", dir, i);
		a.fd = open(wr[i].log, O_WRONLY | O_CREAT | O_TRUNC |
			    O_APPEND | O_CLOEXEC, 0644);
		if (a.fd < 0)
			return -errno;
		fflush(NULL);
		pid = fork();
		if (pid < 0) {
			close(a.fd);
			return -errno;
		}
		if (pid == 0) {
			setpgid(0, 0);
			drill_inject_forked(inj);
			_exit(writer_main(&a));
		}
		close(a.fd);
		wr[i].pid = pid;
		drill_inject_track(inj, pid, "writer");
	}
	return 0;
}

/* SIGTERM the writers, wait for them (bounded), then SIGKILL. */
static void writers_stop(struct writer *wr, unsigned int n)
{
	int64_t end = drill_now_ms() + 10000;

	for (unsigned int i = 0; i < n; i++)
		if (wr[i].pid > 0)
			kill(wr[i].pid, SIGTERM);
	for (unsigned int i = 0; i < n; i++) {
		while (wr[i].pid > 0) {
			pid_t r = waitpid(wr[i].pid, NULL, WNOHANG);

			if (r == wr[i].pid || (r < 0 && errno == ECHILD)) {
				wr[i].pid = 0;
				break;
			}
			if (drill_now_ms() > end) {
				kill(wr[i].pid, SIGKILL);
				waitpid(wr[i].pid, NULL, 0);
				wr[i].pid = 0;
				break;
			}
			sleep_ms(10);
		}
	}
}

/* Feed the writers' logs into the checker. */
static int writers_feed(struct drill_check *ck, const struct writer *wr,
			unsigned int n, struct drill_run_info *ri)
{
	for (unsigned int i = 0; i < n; i++) {
		FILE *f = fopen(wr[i].log, "re");
		struct wrec r;
		int ret = 0;

		if (!f)
			return -errno;
		while (!ret && fread(&r, sizeof(r), 1, f) == 1) {
			switch (r.kind) {
			case WREC_ATTEMPT:
				for (uint64_t q = r.first; !ret && q <= r.last; q++)
					ret = drill_check_attempt(ck, i, q, r.ns);
				break;
			case WREC_ACK:
				ret = drill_check_ack(ck, i, r.first, r.last,
						      r.ns);
				break;
			case WREC_RECONNECT:
				ri->writer_reconnects++;
				break;
			case WREC_ERROR:
				ri->writer_errors++;
				break;
			}
		}
		fclose(f);
		if (ret)
			return ret;
	}
	return 0;
}

/* --- evringd's config and status -------------------------------------------- */

static int write_config(const struct drill_scenario *s,
			struct drill_inject *inj, bool device)
{
	bool target[DRILL_REGIONS_MAX] = { false }, any = false;
	FILE *f = fopen(drill_inject_conf(inj), "we");

	if (!f)
		return -errno;
	for (unsigned int i = 0; i < s->nr_faults; i++)
		if (s->fault[i].target_region >= 0) {
			target[s->fault[i].target_region] = true;
			any = true;
		}
	fprintf(f, "# written by evringctl drill for '%s'\n"
		"[host]\nid = " HOST_ID "\n\n"
		"[spool]\npath = %s/spool.db\n\n"
		"[sources]\ndevice = %s\nsocket = %s\n\n"
		"[control]\nsocket = %s\n\n"
		"[ship]\nmode = %s\npublish_timeout_ms = 1000\n"
		"breaker_open_ms = 1000\nfailback_hold_ms = 3000\n"
		"backoff_base_ms = 50\nbackoff_cap_ms = 500\n"
		"metrics_listen =\n",
		s->name, drill_inject_spool_dir(inj), device ? DEVICE : "",
		drill_inject_ingest(inj), drill_inject_ctl(inj),
		drill_mode_name(s->mode));
	for (unsigned int r = 0; r < s->regions; r++) {
		fprintf(f, "\n[region r%u]\nurls = %s\nstream = " STREAM
			"\nsubject_prefix = " PREFIX "\nreplicas = 3\n", r + 1,
			drill_inject_urls(inj, r));
		/*
		 * Failover on the socket: one partition, whose home the
		 * rendezvous picks.  Weight 0 elsewhere makes the faulted
		 * region its home, so the fault has something to move.
		 */
		if (s->mode == DRILL_FAILOVER && !device && any)
			fprintf(f, "weight = %u\n", target[r] ? 100 : 0);
	}
	if (ferror(f) | fclose(f))
		return -EIO;
	return 0;
}

static uint8_t breaker_code(const char *b)
{
	if (!b || !strcmp(b, "closed"))
		return 0;
	return strcmp(b, "open") ? 1 : 2;
}

/* One status sample; x->up false when evringd did not answer. */
static void take_sample(struct drill_inject *inj, unsigned int nregions,
			int64_t t, struct drill_sample *x)
{
	json_t *j = NULL, *regs, *g;
	size_t i;

	memset(x, 0, sizeof(*x));
	x->t_ms = t;
	if (!drill_inject_daemon_up(inj) ||
	    drill_ctl(drill_inject_ctl(inj), "{\"cmd\":\"status\"}",
		      STATUS_TIMEOUT_MS, &j))
		return;
	regs = json_object_get(j, "regions");
	if (!json_is_true(json_object_get(j, "ok")) || !json_is_array(regs)) {
		json_decref(j);
		return;
	}
	x->up = true;
	json_array_foreach(regs, i, g) {
		if (i >= nregions)
			break;
		x->breaker[i] = breaker_code(json_string_value(
			json_object_get(g, "breaker")));
		x->connected[i] = json_is_true(json_object_get(g, "connected"));
#define JU(k) ((uint64_t)json_integer_value(json_object_get(g, k)))
		x->home[i] = (uint32_t)JU("home_partitions");
		x->lag_events[i] = JU("lag_events");
		x->lag_ms[i] = JU("lag_ms");
		x->shipped[i] = JU("shipped_events");
		x->retries[i] = JU("retries");
#undef JU
	}
	json_decref(j);
}

/* Wait until evringd says every region is connected. */
static int wait_connected(struct drill_inject *inj, unsigned int nregions)
{
	int64_t end = drill_now_ms() + CONNECT_TIMEOUT_MS;

	while (drill_now_ms() < end && !stop_requested) {
		struct drill_sample x;
		unsigned int up = 0;

		take_sample(inj, nregions, 0, &x);
		for (unsigned int r = 0; x.up && r < nregions; r++)
			up += x.connected[r];
		if (up == nregions)
			return 0;
		sleep_ms(100);
	}
	return -ETIMEDOUT;
}

/* --- reading the regions back -------------------------------------------- */

struct reader {
	struct drill_check *ck;
	struct drill_run_info *ri;
	unsigned int region;
	uint64_t next;			/* stream sequence to read next */
	int err;
};

static int on_stored(const struct js_stored *m, void *arg)
{
	struct reader *rd = arg;
	struct batch_view v;
	struct batch_iter it;
	struct evring_rec rec;
	const void *payload;
	int ret;

	rd->next = m->stream_seq + 1;
	if (m->dead_letter)
		return 0;
	if (batch_decode(m->data, m->len, &v)) {
		rd->ri->region_foreign[rd->region]++;
		return 0;
	}
	batch_iter_init(&it, &v);
	while ((ret = batch_iter_next(&it, &rec, &payload)) > 0) {
		ret = drill_check_payload(rd->ck, rd->region, payload, rec.len,
					  m->stored_ns);
		if (!ret) {
			rd->ri->region_canaries[rd->region]++;
		} else if (ret == -EBADMSG || ret == -ESRCH) {
			rd->ri->region_foreign[rd->region]++;
		} else {
			rd->err = ret;
			batch_view_release(&v);
			return 1;
		}
	}
	batch_view_release(&v);
	return 0;
}

static void read_regions(struct drill_inject *inj, struct drill_check *ck,
			 struct drill_run_info *ri)
{
	for (unsigned int r = 0; r < ri->s->regions; r++) {
		char name[8], err[256] = "";
		struct reader rd = { .ck = ck, .ri = ri, .region = r, .next = 1 };
		int64_t end = drill_now_ms() + READ_RETRY_MS;
		struct js_link_opts o = {
			.region = name,
			.urls = drill_inject_direct_urls(inj, r),
			.stream = STREAM,
			.subject_prefix = PREFIX,
			.replicas = 3,
			.create_stream = false,
			.timeout_ms = 5000,
			.max_pending = 1,
		};
		int ret;

		sfmt(name, sizeof(name), "r%u", r + 1);
		/*
		 * A region just restarted may not have elected its stream
		 * leader yet: retry, from where the last attempt stopped.
		 */
		for (;;) {
			err[0] = '\0';
			ret = js_read_stream(&o, rd.next, on_stored, &rd, err,
					     sizeof(err));
			if (!ret || (ret == 1 && rd.err) ||
			    drill_now_ms() >= end || stop_requested)
				break;
			sleep_ms(500);
		}
		if (ret == 1 && rd.err)
			sfmt(err, sizeof(err), "%s", strerror(-rd.err));
		if (ret)
			sfmt(ri->read_error + strlen(ri->read_error),
			     sizeof(ri->read_error) - strlen(ri->read_error),
			     "%sr%u: %s", ri->read_error[0] ? "; " : "", r + 1,
			     err[0] ? err : strerror(-ret));
	}
}

/* --- the run ----------------------------------------------------------------- */

struct drill_opts {
	const char *scenario;
	const char *out;
	const char *cleanup;
	bool short_run, keep;
	const char *sets[DRILL_SETS_MAX + 1];
	unsigned int nsets;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: evringctl drill SCENARIO.ini [--short] [--out DIR] [--keep]\n"
		"                       [--set SECTION.KEY=VALUE]...\n"
		"       evringctl drill --cleanup DIR [--keep]\n"
		"\n"
		"Runs a fault drill (docs/DRILLS.md): local regions, evringd, canary\n"
		"writers, the scenario's faults; prints the figures and the verdict.\n"
		"Needs root.  Exit 0: PASS; 1: FAIL (or aborted); 2: could not run.\n"
		"\n"
		"  -S, --short        the make-check version (drill.check_duration_s)\n"
		"  -o, --out DIR      where everything goes (default\n"
		"                     /tmp/evring-drill-NAME-YYYYmmdd-HHMMSS)\n"
		"  -k, --keep         leave the regions and evringd up at the end\n"
		"                     (faults removed); later: --cleanup DIR\n"
		"  -s, --set K=V      an evringd setting over the drill's config\n"
		"                     (e.g. ship.breaker_failures=1000), repeatable\n"
		"  -C, --cleanup DIR  remove what a drill in DIR left behind\n"
		"  -h, --help         this text\n");
}

static int parse_args(int argc, char **argv, struct drill_opts *o)
{
	static const struct option opts[] = {
		{ "short", no_argument, NULL, 'S' },
		{ "out", required_argument, NULL, 'o' },
		{ "keep", no_argument, NULL, 'k' },
		{ "set", required_argument, NULL, 's' },
		{ "cleanup", required_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "So:ks:C:h", opts, NULL)) != -1) {
		switch (c) {
		case 'S':
			o->short_run = true;
			break;
		case 'o':
			o->out = optarg;
			break;
		case 'k':
			o->keep = true;
			break;
		case 's':
			if (o->nsets == DRILL_SETS_MAX || !strchr(optarg, '=')) {
				fprintf(stderr, "drill: bad --set '%s' (SECTION.KEY=VALUE, at most %d)\n",
					optarg, DRILL_SETS_MAX);
				return EXIT_NORUN;
			}
			o->sets[o->nsets++] = optarg;
			break;
		case 'C':
			o->cleanup = optarg;
			break;
		case 'h':
			usage(stdout);
			return -1;
		default:
			fprintf(stderr, "try 'evringctl drill --help'\n");
			return EXIT_NORUN;
		}
	}
	if (o->cleanup) {
		if (optind != argc) {
			fprintf(stderr, "drill: --cleanup takes no scenario\n");
			return EXIT_NORUN;
		}
		return 0;
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "drill: %s\ntry 'evringctl drill --help'\n",
			optind == argc ? "missing SCENARIO.ini" :
			"one scenario at a time");
		return EXIT_NORUN;
	}
	o->scenario = argv[optind];
	return 0;
}

static int make_dir(const struct drill_scenario *s, const char *out,
		    char *dir, size_t len)
{
	char probe[PATH_MAX + 32];

	if (out) {
		sfmt(dir, len, "%s", out);
	} else {
		time_t now = time(NULL);
		struct tm tm;
		char stamp[32];

		localtime_r(&now, &tm);
		strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
		sfmt(dir, len, "/tmp/evring-drill-%s-%s", s->name, stamp);
	}
	if (mkdir(dir, 0755) && errno != EEXIST) {
		fprintf(stderr, "drill: cannot create '%s': %s\n", dir,
			strerror(errno));
		return -errno;
	}
	/* evringd wants absolute paths (its spool lives here). */
	if (dir[0] != '/') {
		char abs[PATH_MAX];

		if (!realpath(dir, abs) || strlen(abs) >= len) {
			fprintf(stderr, "drill: cannot resolve '%s': %s\n",
				dir, errno ? strerror(errno) : "too long");
			return -EINVAL;
		}
		sfmt(dir, len, "%s", abs);
	}
	sfmt(probe, sizeof(probe), "%s/cleanup.journal", dir);
	if (!access(probe, F_OK)) {
		fprintf(stderr, "drill: '%s' holds an earlier drill (run --cleanup on it, or choose another --out)\n",
			dir);
		return -EEXIST;
	}
	return 0;
}

/* Has the backlog the mode requires reached 0 (and the ingest)? */
static bool drained(const struct drill_sample *x,
		    const struct drill_scenario *s)
{
	return x->up && !drill_sample_backlog(x, s->mode, s->regions);
}

int drill_main(int argc, char **argv)
{
	struct drill_opts o = { 0 };
	struct drill_scenario s;
	struct drill_paths paths;
	struct drill_inject *inj = NULL;
	struct drill_check *ck = NULL;
	struct drill_series ser = { 0 };
	struct drill_run_info ri;
	struct drill_figures fig;
	struct writer wr[DRILL_WRITERS_MAX];
	struct sigaction sa = { .sa_handler = on_signal };
	char dir[PATH_MAX], err[512];
	int64_t t0, t = 0, next_sample = 0, breach_since = -1;
	bool device;
	int ret, rc = EXIT_NORUN;

	ret = parse_args(argc, argv, &o);
	if (ret)
		return ret < 0 ? 0 : ret;
	if (o.cleanup) {
		ret = drill_cleanup_dir_locked(o.cleanup, o.keep, err,
					       sizeof(err));
		if (ret)
			fprintf(stderr, "drill: cleanup: %s\n", err);
		return ret ? EXIT_FAIL : 0;
	}
	if (drill_scenario_load(&s, o.scenario, err, sizeof(err))) {
		fprintf(stderr, "drill: %s\n", err);
		return EXIT_NORUN;
	}
	if (o.short_run)
		drill_scenario_shorten(&s, &s);
	if (geteuid()) {
		fprintf(stderr, "drill: needs root (network namespaces, nftables, mounts)\n");
		return EXIT_NORUN;
	}
	if (drill_paths_find(&paths, err, sizeof(err))) {
		fprintf(stderr, "drill: %s\n", err);
		return EXIT_NORUN;
	}
	if (make_dir(&s, o.out, dir, sizeof(dir)))
		return EXIT_NORUN;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	memset(&ri, 0, sizeof(ri));
	memset(wr, 0, sizeof(wr));
	ri.s = &s;
	ri.dir = dir;
	ri.plot = paths.plot;
	ri.short_run = o.short_run;
	ri.drained_ms = -1;
	device = s.traffic.path == DRILL_PATH_DEVICE && !access(DEVICE, W_OK);
	ri.path = device ? "device" : s.traffic.path == DRILL_PATH_DEVICE ?
		  "socket (no " DEVICE ")" : "socket";
	if (getrandom(&ri.drill_id, sizeof(ri.drill_id), 0) !=
	    sizeof(ri.drill_id))
		ri.drill_id = drill_wall_ns() ^ ((uint64_t)getpid() << 32);

	o.sets[o.nsets] = NULL;
	printf("drill %s: setting up in %s (%u regions, %s)\n", s.name, dir,
	       s.regions, ri.path);
	fflush(stdout);
	ret = drill_inject_new(&s, dir, &paths, o.sets, &inj, err,
			       sizeof(err));
	if (ret) {
		fprintf(stderr, "drill: %s\n", err);
		return EXIT_NORUN;
	}
	ret = drill_inject_setup(inj, err, sizeof(err));
	if (!ret && write_config(&s, inj, device)) {
		sfmt(err, sizeof(err), "cannot write %s", drill_inject_conf(inj));
		ret = -EIO;
	}
	if (!ret)
		ret = drill_inject_daemon_start(inj, READY_TIMEOUT_MS, err,
						sizeof(err));
	if (!ret && wait_connected(inj, s.regions)) {
		sfmt(err, sizeof(err),
		     "evringd did not connect to every region within %d s (see %s/evringd.log)",
		     CONNECT_TIMEOUT_MS / 1000, dir);
		ret = -ETIMEDOUT;
	}
	if (!ret && stop_requested) {
		sfmt(err, sizeof(err), "interrupted during setup");
		ret = -EINTR;
	}
	if (ret) {
		fprintf(stderr, "drill: %s\n", err);
		drill_inject_free(inj, false);
		return EXIT_NORUN;
	}

	/* t = 0: the traffic starts. */
	t0 = drill_now_ms();
	ri.start_ns = drill_wall_ns();
	ret = drill_check_new(s.mode, s.regions, s.traffic.writers,
			      ri.drill_id, ri.start_ns,
			      s.duration_ms / 1000 + 600, &ck);
	if (!ret)
		ret = writers_start(&s, dir, ri.drill_id, t0,
				    device ? DEVICE : "/nonexistent/evring",
				    drill_inject_ingest(inj), wr, inj);
	if (ret) {
		fprintf(stderr, "drill: cannot start the writers: %s\n",
			strerror(-ret));
		writers_stop(wr, s.traffic.writers);
		drill_inject_free(inj, false);
		drill_check_free(ck);
		return EXIT_NORUN;
	}
	printf("drill %s: traffic on for %.1f s, %u fault(s)\n", s.name,
	       s.duration_ms / 1000.0, s.nr_faults);
	fflush(stdout);

	while (!stop_requested && !ri.aborted) {
		t = drill_now_ms() - t0;
		if (t >= (int64_t)s.duration_ms)
			break;
		drill_inject_tick(inj, t);
		if (t >= next_sample) {
			struct drill_sample x;

			take_sample(inj, s.regions, t, &x);
			drill_series_add(&ser, &x);
			next_sample = t + SAMPLE_MS;
			if (x.up && drill_sample_lag_ms(&x, s.regions) >
				    s.sla.latency_ms) {
				if (breach_since < 0)
					breach_since = t;
			} else if (x.up) {
				breach_since = -1;
			}
			if (breach_since >= 0 && s.sla.abort_after_ms &&
			    t - breach_since > (int64_t)s.sla.abort_after_ms) {
				ri.aborted = true;
				sfmt(ri.abort_reason, sizeof(ri.abort_reason),
				     "region lag over the SLA (%u ms) for %.1f s since t=%.1f s",
				     s.sla.latency_ms,
				     (t - breach_since) / 1000.0,
				     breach_since / 1000.0);
			}
		}
		sleep_ms(TICK_MS);
	}
	ri.interrupted = stop_requested != 0;
	ri.traffic_end_ms = drill_now_ms() - t0;
	writers_stop(wr, s.traffic.writers);
	drill_inject_end_all(inj, drill_now_ms() - t0);
	for (unsigned int i = 0; i < s.nr_faults; i++)
		drill_inject_fault_log(inj, i, &ri.faults[i]);
	if (ri.interrupted)
		printf("drill %s: interrupted at t=%.1f s; faults removed\n",
		       s.name, ri.traffic_end_ms / 1000.0);
	else
		printf("drill %s: traffic off at t=%.1f s; faults removed, draining\n",
		       s.name, ri.traffic_end_ms / 1000.0);
	fflush(stdout);

	/* Drain, bounded: everything acknowledged in every region it needs. */
	if (!ri.interrupted) {
		int64_t end = drill_now_ms() + (o.short_run ? 30000 : 60000);
		unsigned int zeros = 0;

		while (drill_now_ms() < end && !stop_requested) {
			struct drill_sample x;

			t = drill_now_ms() - t0;
			drill_inject_tick(inj, t);
			take_sample(inj, s.regions, t, &x);
			drill_series_add(&ser, &x);
			zeros = drained(&x, &s) ? zeros + 1 : 0;
			if (zeros == 1)
				ri.drained_ms = t;
			if (zeros >= 3)
				break;
			sleep_ms(SAMPLE_MS);
		}
		if (zeros < 3)
			ri.drained_ms = -1;
		ri.interrupted = stop_requested != 0;
	}
	ri.daemon_crashes = drill_inject_daemon_crashes(inj);

	if (!ri.interrupted) {
		ret = writers_feed(ck, wr, s.traffic.writers, &ri);
		if (ret)
			sfmt(ri.read_error, sizeof(ri.read_error),
			     "writer logs: %s", strerror(-ret));
		else
			read_regions(inj, ck, &ri);
	}
	ri.end_ms = drill_now_ms() - t0;
	ret = drill_report_figures(ck, &ser, &ri, &fig);
	if (!ret) {
		if (drill_report_write(ck, &ser, &ri, &fig, err, sizeof(err)))
			fprintf(stderr, "drill: %s\n", err);
		rc = ri.interrupted ? EXIT_NORUN : fig.passed ? 0 : EXIT_FAIL;
	} else {
		fprintf(stderr, "drill: cannot compute the figures: %s\n",
			strerror(-ret));
	}
	drill_inject_free(inj, o.keep);
	if (o.keep)
		printf("drill %s: regions and evringd left up (evringctl --socket %s/control.sock status); remove with: evringctl drill --cleanup %s\n",
		       s.name, dir, dir);
	drill_series_free(&ser);
	drill_check_free(ck);
	return rc;
}
