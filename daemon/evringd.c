// SPDX-License-Identifier: GPL-2.0-only
/*
 * evringd: drains the evring rings (and the ingest socket) into the SQLite
 * spool, releasing records only once they are durable there.
 *
 *	evringd [-c FILE] [--set SECTION.KEY=VALUE]...
 *
 * Runs in the foreground (systemd Type=notify).  SIGTERM/SIGINT: commit
 * what was taken and exit 0; what is still in the rings stays there for the
 * next start.  SIGHUP: reload the configuration file; live keys apply at
 * once, a change to any other key is refused with a log line.  Exits 1 when
 * it cannot start, or when the spool failed under it.
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
#include "log.h"
#include "loop.h"
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

static const struct control_ops evd_control_ops = {
	.status = evd_status,
	.spool = evd_spool,
	.counters = evd_counters,
	.ledger = evd_ledger,
};

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
	ret = control_open(e->loop, NULL, &e->cfg, &evd_control_ops, e,
			   &e->control);
	if (ret) {
		log_error("cannot open control socket '%s': %s",
			  e->cfg.control_socket, strerror(-ret));
		return ret;
	}
	if (loop_add_signal(e->loop, SIGTERM, evd_on_term, e) ||
	    loop_add_signal(e->loop, SIGINT, evd_on_term, e) ||
	    loop_add_signal(e->loop, SIGHUP, evd_on_hup, e))
		return -EINVAL;
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
	source_sock_close(e->sock);
	source_bpf_close(e->bpf);
	source_kmod_close(e->kmod);
	if (e->drain)
		e->spool = drain_spool(e->drain);
	drain_free(e->drain);
	loop_free(e->loop);
	spool_close(e->spool);
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
	signal(SIGPIPE, SIG_IGN);

	ret = evd_start(&e);
	if (!ret) {
		log_info("draining into '%s' (synchronous=%s)", e.cfg.spool_path,
			 config_sync_name(e.cfg.spool_synchronous));
		sd_notify(0, "READY=1");
		ret = loop_run(e.loop);
		if (!ret && !e.stopping)
			ret = -EIO;	/* a module stopped the loop: fatal */
		if (!ret)
			ret = evd_drain_out(&e);
	}
	evd_stop(&e);
	return ret ? 1 : 0;
}
