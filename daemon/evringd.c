// SPDX-License-Identifier: GPL-2.0-only
/*
 * evringd: drains the evring rings (and the ingest socket) into the SQLite
 * spool, releasing records only once they are durable there, and ships the
 * spooled batches to the configured regions (NATS JetStream).
 *
 *	evringd [-c FILE] [--set SECTION.KEY=VALUE]...
 *
 * Runs in the foreground (systemd Type=notify).  SIGTERM/SIGINT: commit
 * what was taken and exit 0; what is still in the rings stays there for the
 * next start.  SIGHUP: reload the configuration file; live keys apply at
 * once, a change to any other key is refused with a log line.  Exits 1 when
 * it cannot start, or when the spool failed under it.
 *
 * $EVRING_FAILPOINTS arms failpoints at start (daemon/failpoint.h; for
 * drills): a bad list is refused like a bad configuration.
 *
 * Order: spool, loop, drain, shipper (kicked after every commit), sources,
 * /metrics (ship.metrics_listen), control socket; stopped in reverse, the
 * shipper before the spool closes.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>
#include "config.h"
#include "control.h"
#include "drain.h"
#include "batch.h"
#include "failpoint.h"
#include "log.h"
#include "loop.h"
#include "metrics_http.h"
#include "ship.h"
#include "source_bpf.h"
#include "source_kmod.h"
#include "source_sock.h"
#include "spool.h"

#define EVD_SETS_MAX 64

struct evd {
	struct evd_config cfg;
	const char *cfg_path;		/* NULL: defaults only */
	const char *sets[EVD_SETS_MAX];	/* --set overrides, re-applied on HUP */
	unsigned int nsets;
	struct loop *loop;
	struct spool *spool;
	struct drain *drain;
	struct ship *ship;
	struct metrics_http *metrics;
	struct source_kmod *kmod;
	struct source_sock *sock;
	struct source_bpf *bpf;
	struct control *control;
	uint64_t started_ms;
	bool stopping;
};

/* Defaults, the file, then every --set; err holds the first problem. */
static int evd_config(struct evd *e, struct evd_config *c, char *err,
		      size_t errlen)
{
	int ret = config_load(c, e->cfg_path, err, errlen);

	for (unsigned int i = 0; !ret && i < e->nsets; i++) {
		char key[128];
		const char *eq = strchr(e->sets[i], '=');

		if (!eq || (size_t)(eq - e->sets[i]) >= sizeof(key)) {
			snprintf(err, errlen, "--set: expected SECTION.KEY=VALUE, got '%s'",
				 e->sets[i]);
			return -EINVAL;
		}
		snprintf(key, sizeof(key), "%.*s", (int)(eq - e->sets[i]),
			 e->sets[i]);
		ret = config_set(c, key, eq + 1, err, errlen);
	}
	return ret;
}

static void evd_on_term(struct loop *l, int signo, void *arg)
{
	struct evd *e = arg;

	log_info("%s: committing what was taken, then exiting",
		 strsignal(signo));
	e->stopping = true;
	sd_notify(0, "STOPPING=1");
	loop_stop(l);
}

static void evd_on_hup(struct loop *l, int signo, void *arg)
{
	struct evd *e = arg;
	struct evd_config fresh;
	char err[512], keys[512];

	if (evd_config(e, &fresh, err, sizeof(err)) ||
	    config_reload_diff(&e->cfg, &fresh, err, sizeof(err))) {
		log_error("reload refused, configuration unchanged: %s", err);
		return;
	}
	if (!config_changed_keys(&e->cfg, &fresh, keys, sizeof(keys))) {
		log_info("reload: nothing changed");
		return;
	}
	e->cfg = fresh;
	drain_reconfigure(e->drain, &e->cfg);
	ship_reconfigure(e->ship, &e->cfg);
	control_reconfigure(e->control, &e->cfg);
	if (e->bpf && source_bpf_reconfigure(e->bpf, &e->cfg, err, sizeof(err)))
		log_error("reload: bpf source: %s", err);
	log_info("reload: applied %s", keys);
}

/* --- control socket callbacks ----------------------------------------- */

static const char *source_name(unsigned int source)
{
	switch (source) {
	case BATCH_SRC_KMOD: return "device";
	case BATCH_SRC_SOCKET: return "socket";
	case BATCH_SRC_BPF: return "bpf";
	default: return "unknown";
	}
}

/* Every region's shipping state, in configuration order. */
static void evd_regions(struct evd *e, struct ship_region_status *out,
			unsigned int *n)
{
	unsigned int nr = ship_nregions(e->ship);

	*n = 0;
	for (unsigned int i = 0; i < nr && i < CONFIG_REGIONS_MAX; i++)
		if (!ship_region_status(e->ship, i, &out[*n]))
			(*n)++;
}

static int evd_status(void *arg, struct control_status *out)
{
	struct evd *e = arg;
	struct spool *s = drain_spool(e->drain);
	struct spool_stats ss;
	unsigned int n = 0;

	out->state = e->stopping ? CONTROL_STATE_STOPPING :
		     drain_state(e->drain);
	out->uptime_ms = loop_now_ms() - e->started_ms;
	if (e->kmod)
		n += source_kmod_status(e->kmod, out->parts, CONTROL_PARTS_MAX);
	if (e->sock)
		n += source_sock_status(e->sock, out->parts + n,
					CONTROL_PARTS_MAX - n);
	if (e->bpf)
		n += source_bpf_status(e->bpf, out->parts + n,
				       CONTROL_PARTS_MAX - n);
	out->nr_parts = n;
	evd_regions(e, out->regions, &out->nr_regions);
	if (spool_stats(s, &ss))
		return 0;
	for (unsigned int i = 0; i < ss.nparts; i++) {
		struct spool_part_stats ps;

		if (spool_part_stats(s, i, &ps))
			break;
		for (unsigned int j = 0; j < n; j++) {
			struct control_part_status *r = &out->parts[j];

			if (r->partition == ps.partition &&
			    !strcmp(r->source, source_name(ps.source))) {
				r->spool_batches = ps.batches;
				r->spool_records = ps.records;
			}
		}
	}
	return 0;
}

static int evd_spool(void *arg, struct control_spool *out)
{
	struct evd *e = arg;
	struct spool_stats ss;
	int ret = spool_stats(drain_spool(e->drain), &ss);

	if (ret)
		return ret;
	snprintf(out->path, sizeof(out->path), "%s", e->cfg.spool_path);
	out->bytes = ss.file_bytes;
	out->max_bytes = ss.max_bytes;
	out->batches = ss.batches;
	out->records = ss.records;
	out->oldest_age_ms = -1;
	if (ss.oldest_ns) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		out->oldest_age_ms = ((int64_t)ts.tv_sec * 1000000000 +
				      ts.tv_nsec - (int64_t)ss.oldest_ns) / 1000000;
	}
	return 0;
}

static int evd_counters(void *arg, struct control_counters *out)
{
	struct evd *e = arg;

	drain_counters(e->drain, out);
	return 0;
}

struct evd_ledger_walk {
	control_emit_fn emit;
	void *arg;
};

static int evd_ledger_row(uint64_t id, const struct spool_loss *l, void *arg)
{
	struct evd_ledger_walk *w = arg;
	struct control_loss cl = {
		.partition = l->partition,
		.epoch = l->epoch,
		.first_seq = l->first_seq,
		.last_seq = l->last_seq,
		.ts_ns = l->at_ns,
	};

	snprintf(cl.source, sizeof(cl.source), "%s", source_name(l->source));
	snprintf(cl.reason, sizeof(cl.reason), "%s", l->reason);
	return w->emit(&cl, w->arg);
}

static int evd_ledger(void *arg, control_emit_fn emit, void *emit_arg)
{
	struct evd *e = arg;
	struct evd_ledger_walk w = { emit, emit_arg };

	return spool_foreach_loss(drain_spool(e->drain), 0, evd_ledger_row, &w);
}

/* --- dead letters ------------------------------------------------------ */

static void evd_dead(const struct spool_dead *sd, struct control_dead *out)
{
	out->id = sd->id;
	snprintf(out->region, sizeof(out->region), "%s", sd->region);
	out->batch_id = sd->batch.id;
	snprintf(out->source, sizeof(out->source), "%s",
		 source_name(sd->batch.source));
	out->partition = sd->batch.partition;
	out->epoch = sd->batch.epoch;
	out->first_seq = sd->batch.first_seq;
	out->count = sd->batch.count;
	out->bytes = sd->batch.bytes;
	out->spooled_ns = sd->batch.created_ns;
	snprintf(out->reason, sizeof(out->reason), "%s", sd->reason);
	out->attempts = sd->attempts;
	out->at_ns = sd->at_ns;
}

struct evd_dead_walk {
	control_dead_fn emit;
	void *arg;
};

static int evd_dead_row(const struct spool_dead *sd, void *arg)
{
	struct evd_dead_walk *w = arg;
	struct control_dead cd = { 0 };

	evd_dead(sd, &cd);
	return w->emit(&cd, w->arg);
}

static int evd_dlq_list(void *arg, control_dead_fn emit, void *emit_arg)
{
	struct evd *e = arg;
	struct evd_dead_walk w = { emit, emit_arg };

	return spool_foreach_dead(drain_spool(e->drain), evd_dead_row, &w);
}

/* The dead letter and its stored copy, decoded to count its records. */
static int evd_dlq_show(void *arg, uint64_t id, struct control_dead *out)
{
	struct evd *e = arg;
	struct spool_dead sd;
	struct batch_view v;
	void *body = NULL;
	size_t len = 0;
	int ret;

	ret = spool_dead_get(drain_spool(e->drain), id, &sd, &body, &len);
	if (ret)
		return ret;
	evd_dead(&sd, out);
	ret = batch_decode(body, len, &v);
	if (ret) {
		out->decoded = -1;
		snprintf(out->decode_error, sizeof(out->decode_error), "%s",
			 strerror(-ret));
	} else {
		out->decoded = v.meta.count;
		batch_view_release(&v);
	}
	free(body);
	return 0;
}

static int evd_dlq_replay(void *arg, uint64_t id)
{
	struct evd *e = arg;

	return ship_dlq_replay(e->ship, id);
}

static int evd_dlq_purge(void *arg, uint64_t id)
{
	struct evd *e = arg;

	return ship_dlq_purge(e->ship, id);
}

static const struct control_ops evd_control_ops = {
	.status = evd_status,
	.spool = evd_spool,
	.counters = evd_counters,
	.ledger = evd_ledger,
	.dlq_list = evd_dlq_list,
	.dlq_show = evd_dlq_show,
	.dlq_replay = evd_dlq_replay,
	.dlq_purge = evd_dlq_purge,
};

/* --- shipping and /metrics ---------------------------------------------- */

static void evd_on_commit(void *arg)
{
	struct evd *e = arg;

	ship_kick(e->ship);
}

static int evd_metrics(void *arg, struct metrics_state *out)
{
	struct evd *e = arg;
	struct spool *s = drain_spool(e->drain);
	struct control_counters cc = { 0 };
	struct spool_stats ss;
	int ret;

	drain_counters(e->drain, &cc);
	out->records_spooled = cc.records_in;
	out->batches_spooled = cc.batches_in;
	out->bytes_spooled = cc.bytes_in;
	ret = spool_stats(s, &ss);
	if (ret)
		return ret;
	out->spool_bytes = ss.file_bytes;
	out->spool_max_bytes = ss.max_bytes;
	for (unsigned int i = 0; i < ss.nparts && i < METRICS_PARTS_MAX; i++) {
		struct metrics_part *p = &out->parts[out->nr_parts];
		struct spool_part_stats ps;

		if (spool_part_stats(s, i, &ps))
			break;
		snprintf(p->source, sizeof(p->source), "%s",
			 source_name(ps.source));
		p->partition = ps.partition;
		p->batches = ps.batches;
		p->records = ps.records;
		p->bytes = ps.bytes;
		out->nr_parts++;
	}
	evd_regions(e, out->regions, &out->nr_regions);
	ship_latency(e->ship, &out->latency);
	return 0;
}

/* --- start and stop ---------------------------------------------------- */

static int evd_start(struct evd *e)
{
	struct spool_opts so = {
		.path = e->cfg.spool_path,
		.sync = e->cfg.spool_synchronous == CONFIG_SYNC_NORMAL ?
			SPOOL_SYNC_NORMAL : SPOOL_SYNC_FULL,
		.max_bytes = e->cfg.spool_max_bytes,
	};
	char err[512] = "";
	int ret;

	ret = spool_open(&so, &e->spool, err, sizeof(err));
	if (ret) {
		log_error("cannot open spool: %s", err);
		return ret;
	}
	ret = loop_new(&e->loop);
	if (!ret)
		ret = drain_new(e->loop, e->spool, &e->cfg, &e->drain);
	if (ret) {
		log_error("cannot start: %s", strerror(-ret));
		return ret;
	}
	e->started_ms = loop_now_ms();
	/*
	 * Before the shipper: its libnats threads must inherit the blocked
	 * mask, or a SIGHUP landing on one of them would kill the daemon.
	 */
	if (loop_add_signal(e->loop, SIGTERM, evd_on_term, e) ||
	    loop_add_signal(e->loop, SIGINT, evd_on_term, e) ||
	    loop_add_signal(e->loop, SIGHUP, evd_on_hup, e)) {
		log_error("cannot start: cannot take signals through the loop");
		return -EINVAL;
	}
	err[0] = '\0';
	ret = ship_new(e->loop, e->spool, &e->cfg, &e->ship, err, sizeof(err));
	if (ret) {
		log_error("cannot start shipping: %s",
			  err[0] ? err : strerror(-ret));
		return ret;
	}
	drain_set_on_commit(e->drain, evd_on_commit, e);
	if (e->cfg.source_device[0]) {
		ret = source_kmod_open(e->loop, e->drain, e->cfg.source_device,
				       &e->kmod, err, sizeof(err));
		if (ret == -ENOENT) {
			log_info("'%s' is absent (module not loaded): device source off",
				 e->cfg.source_device);
		} else if (ret) {
			log_error("device source: %s", err);
			return ret;
		}
	}
	if (e->cfg.source_socket[0]) {
		ret = source_sock_open(e->loop, e->drain, &e->cfg, &e->sock,
				       err, sizeof(err));
		if (ret) {
			log_error("socket source: %s", err[0] ? err : strerror(-ret));
			return ret;
		}
	}
	if (e->cfg.bpf_enable) {
		/* Kernel capture is an addition: without BPF, run without it. */
		ret = source_bpf_open(e->loop, e->drain, &e->cfg, &e->bpf, err,
				      sizeof(err));
		if (ret == -EOPNOTSUPP || ret == -EPROTO) {
			log_warn("bpf source off: %s", err);
		} else if (ret) {
			log_error("bpf source: %s", err);
			return ret;
		}
	}
	if (e->cfg.ship_metrics_listen[0]) {
		ret = metrics_http_open(e->loop, e->cfg.ship_metrics_listen,
					evd_metrics, e, &e->metrics, err,
					sizeof(err));
		if (ret) {
			log_error("%s", err);
			return ret;
		}
	}
	ret = control_open(e->loop, NULL, &e->cfg, &evd_control_ops, e,
			   &e->control);
	if (ret) {
		log_error("cannot open control socket '%s': %s",
			  e->cfg.control_socket, strerror(-ret));
		return ret;
	}
	/* Commit the start's notes (epoch changes) before taking records. */
	return drain_flush(e->drain) == -EIO ? -EIO : 0;
}

#define EVD_STOP_DRAIN_MS 2000

/*
 * After SIGTERM: commit what was taken, then keep taking and committing
 * what the rings hold until they are empty or EVD_STOP_DRAIN_MS passed.
 * Whatever is left stays unreleased in the rings for the next start.
 */
static int evd_drain_out(struct evd *e)
{
	uint64_t deadline = loop_now_ms() + EVD_STOP_DRAIN_MS;
	int staged;

	do {
		if (drain_flush(e->drain))
			return drain_state(e->drain) == CONTROL_STATE_SPOOL_FULL ?
			       0 : -EIO;
		staged = e->kmod ? source_kmod_stage_all(e->kmod) : 0;
		if (staged >= 0 && e->bpf) {
			int more = source_bpf_stage_all(e->bpf);

			staged = more < 0 ? more : staged + more;
		}
		if (staged < 0)
			return staged;
	} while (staged > 0 && loop_now_ms() < deadline);
	return drain_flush(e->drain) == -EIO ? -EIO : 0;
}

static void evd_stop(struct evd *e)
{
	control_close(e->control);
	metrics_http_close(e->metrics);
	source_sock_close(e->sock);
	source_bpf_close(e->bpf);
	source_kmod_close(e->kmod);
	if (e->drain)
		e->spool = drain_spool(e->drain);
	/* In-flight publishes are reconciled at the next start. */
	ship_free(e->ship);
	drain_free(e->drain);
	loop_free(e->loop);
	spool_close(e->spool);
}

/* Arm the failpoints $EVRING_FAILPOINTS names (drills); say which. */
static int evd_failpoints(char *err, size_t errlen)
{
	const char *spec = getenv(FAILPOINT_ENV);
	int ret = failpoint_set_spec(spec, err, errlen);

	if (!ret && spec && spec[0])
		log_warn("failpoints armed from " FAILPOINT_ENV ": %s", spec);
	return ret;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: evringd [-c FILE] [--set SECTION.KEY=VALUE]...\n"
		   "  -c, --config FILE   configuration (default %s if present)\n"
		   "  --set KEY=VALUE     override one key, e.g. --set spool.path=/var/lib/evring/spool.db\n",
		CONFIG_DEFAULT_PATH);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "set", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	static struct evd e;
	char err[512];
	int opt, ret;

	while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			e.cfg_path = optarg;
			break;
		case 's':
			if (e.nsets == EVD_SETS_MAX) {
				fprintf(stderr, "evringd: more than %d --set\n",
					EVD_SETS_MAX);
				return 2;
			}
			e.sets[e.nsets++] = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (!e.cfg_path && !access(CONFIG_DEFAULT_PATH, F_OK))
		e.cfg_path = CONFIG_DEFAULT_PATH;
	if (evd_config(&e, &e.cfg, err, sizeof(err))) {
		log_error("bad configuration: %s", err);
		return 1;
	}
	if (evd_failpoints(err, sizeof(err))) {
		log_error("bad " FAILPOINT_ENV ": %s", err);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);

	ret = evd_start(&e);
	if (!ret) {
		log_info("draining into '%s' (synchronous=%s)", e.cfg.spool_path,
			 config_sync_name(e.cfg.spool_synchronous));
		sd_notify(0, "READY=1");
		ret = loop_run(e.loop);
		if (!ret && !e.stopping)
			ret = -EIO;	/* a module stopped the loop: fatal */
		/* What is committed from here on ships at the next start. */
		drain_set_on_commit(e.drain, NULL, NULL);
		if (!ret)
			ret = evd_drain_out(&e);
	}
	evd_stop(&e);
	return ret ? 1 : 0;
}
