// SPDX-License-Identifier: GPL-2.0-only
/*
 * consume: `evringctl consume` (contract in consume.h, manual in
 * docs/OPERATING.md, "Reading a region's stream").
 *
 * Reads each named region's stream with js_read_stream(), in stream order,
 * region after region, into one verifier: with one region that checks the
 * region; with several it is the union check of failover mode.  Every
 * message is either a batch (decoded with batch_decode(), which checks
 * the checksum and every record) or a dead-letter marker (header
 * Evring-Dead-Letter, the range in the Evring-* headers).  What cannot be
 * decoded is "corrupt": reported with its stream sequence and the verdict
 * is FAIL, but the walk goes on so one bad message does not hide others.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "batch.h"
#include "config.h"
#include "consume.h"
#include "jetstream.h"
#include "verify.h"

#define EXIT_FAIL		1
#define EXIT_USAGE		2
#define CONSUME_TIMEOUT_MS	5000	/* each request of the walk */
#define CONSUME_REGIONS_MAX	CONFIG_REGIONS_MAX
#define CONSUME_EXPECT_MAX	1024
#define ISSUES_SHOWN		100	/* findings printed; the rest counted */

static const char *const source_names[] = {
	[BATCH_SRC_KMOD] = "kmod",
	[BATCH_SRC_SOCKET] = "socket",
	[BATCH_SRC_BPF] = "bpf",
};

static const char *source_name(unsigned int s)
{
	return s <= BATCH_SRC_MAX ? source_names[s] : "?";
}

/* "kmod", "socket" or "bpf" (as headers carry it). */
static int parse_source_name(const char *s, unsigned int *out)
{
	for (unsigned int i = 0; i <= BATCH_SRC_MAX; i++) {
		if (!strcmp(s, source_names[i])) {
			*out = i;
			return 0;
		}
	}
	return -EINVAL;
}

/* "kmod", "socket", "bpf" or the number. */
static int parse_source(const char *s, unsigned int *out)
{
	if (!parse_source_name(s, out))
		return 0;
	for (unsigned int i = 0; i <= BATCH_SRC_MAX; i++) {
		if (s[0] == '0' + (int)i && !s[1]) {
			*out = i;
			return 0;
		}
	}
	return -EINVAL;
}

/* Checked unsigned parse of all of @s in @base, into [min, max]. */
static int parse_u64(const char *s, int base, uint64_t min, uint64_t max,
		     uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!s[0] || s[0] == '-' || s[0] == '+' || s[0] == ' ')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, base);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

struct expect {
	char host[BATCH_HOST_ID_MAX + 1];
	unsigned int source;
	uint32_t partition;
	uint64_t epoch, first, last;
};

/* HOST/SOURCE-PART/EPOCH/FIRST-LAST, EPOCH in hex as printed. */
static int parse_expect(const char *arg, struct expect *e)
{
	char buf[256], *host, *sp, *epoch, *range, *dash;
	uint64_t v;

	if (strlen(arg) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, arg);
	host = buf;
	sp = strchr(host, '/');
	if (!sp)
		return -EINVAL;
	*sp++ = '\0';
	epoch = strchr(sp, '/');
	if (!epoch)
		return -EINVAL;
	*epoch++ = '\0';
	range = strchr(epoch, '/');
	if (!range)
		return -EINVAL;
	*range++ = '\0';
	if (!host[0] || strlen(host) > BATCH_HOST_ID_MAX)
		return -EINVAL;
	strcpy(e->host, host);
	dash = strrchr(sp, '-');
	if (!dash)
		return -EINVAL;
	*dash++ = '\0';
	if (parse_source(sp, &e->source) ||
	    parse_u64(dash, 10, 0, UINT32_MAX, &v))
		return -EINVAL;
	e->partition = v;
	if (!strncmp(epoch, "0x", 2))
		epoch += 2;
	if (parse_u64(epoch, 16, 0, UINT64_MAX, &e->epoch))
		return -EINVAL;
	dash = strchr(range, '-');
	if (!dash)
		return -EINVAL;
	*dash++ = '\0';
	if (parse_u64(range, 10, 1, UINT64_MAX, &e->first) ||
	    parse_u64(dash, 10, e->first, UINT64_MAX, &e->last))
		return -EINVAL;
	return 0;
}

struct consume {
	struct verify *v;
	bool json;
	const char *region;		/* being read */
	uint64_t corrupt;
	int err;			/* -errno that stopped the walk */
	struct batch_loss *loss;	/* scratch, BATCH_LOSS_MAX entries */
};

static void epoch_hex(uint64_t epoch, char buf[17])
{
	snprintf(buf, 17, "%016" PRIx64, epoch);
}

/* Standard base64 with padding; @out holds 4 * ((len + 2) / 3) + 1. */
static void base64(const unsigned char *in, size_t len, char *out)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i, o = 0;

	for (i = 0; i + 2 < len; i += 3) {
		uint32_t n = in[i] << 16 | in[i + 1] << 8 | in[i + 2];

		out[o++] = tab[n >> 18 & 63];
		out[o++] = tab[n >> 12 & 63];
		out[o++] = tab[n >> 6 & 63];
		out[o++] = tab[n & 63];
	}
	if (i < len) {
		uint32_t n = in[i] << 16 | (i + 1 < len ? in[i + 1] << 8 : 0);

		out[o++] = tab[n >> 18 & 63];
		out[o++] = tab[n >> 12 & 63];
		out[o++] = i + 1 < len ? tab[n >> 6 & 63] : '=';
		out[o++] = '=';
	}
	out[o] = '\0';
}

/* Print @o as one compact line and drop it. */
static int print_line(json_t *o)
{
	int ret = 0;

	if (!o)
		return -ENOMEM;
	if (json_dumpf(o, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER) ||
	    putchar('\n') == EOF)
		ret = -EIO;
	json_decref(o);
	return ret;
}

static int print_event(struct consume *c, const struct js_stored *m,
		       const struct batch_meta *meta,
		       const struct evring_rec *r, const void *payload)
{
	char epoch[17];
	json_t *o, *data = NULL;

	epoch_hex(meta->epoch, epoch);
	o = json_pack("{s:s, s:I, s:s, s:s, s:I, s:s, s:I, s:I, s:I, s:I, s:I}",
		      "region", c->region,
		      "stream_seq", (json_int_t)m->stream_seq,
		      "host", meta->host_id,
		      "source", source_name(meta->source),
		      "partition", (json_int_t)meta->partition,
		      "epoch", epoch,
		      "seq", (json_int_t)r->seq,
		      "ts_ns", (json_int_t)r->ts_ns,
		      "pid", (json_int_t)r->pid,
		      "uid", (json_int_t)r->uid,
		      "len", (json_int_t)r->len);
	if (!o)
		return -ENOMEM;
	/* Text when it is valid UTF-8 without NULs, else base64. */
	if (!memchr(payload, '\0', r->len))
		data = json_stringn(payload, r->len);
	if (data) {
		json_object_set_new(o, "data", data);
	} else {
		char *b64 = malloc(4 * ((r->len + 2) / 3) + 1);

		if (!b64) {
			json_decref(o);
			return -ENOMEM;
		}
		base64(payload, r->len, b64);
		json_object_set_new(o, "data_b64", json_string(b64));
		free(b64);
	}
	return print_line(o);
}

static void corrupt(struct consume *c, const struct js_stored *m,
		    const char *what)
{
	c->corrupt++;
	fprintf(stderr,
		"consume: region '%s' stream seq %" PRIu64 ": corrupt %s\n",
		c->region, m->stream_seq, what);
}

/* What a dead-letter marker's headers say. */
struct marker {
	const char *host;
	unsigned int source;
	uint64_t partition, epoch, first, count;
};

/*
 * The value of header @name, an unsigned decimal in [min, max]; -EINVAL
 * with @what saying which header is missing or bad.
 */
static int marker_u64(const char *name, const char *val, uint64_t min,
		      uint64_t max, uint64_t *out, char *what, size_t len)
{
	if (!val) {
		snprintf(what, len, "missing %s header", name);
		return -EINVAL;
	}
	if (parse_u64(val, 10, min, max, out)) {
		snprintf(what, len, "bad %s '%.64s'", name, val);
		return -EINVAL;
	}
	return 0;
}

/*
 * The range a marker names, from its Evring-* headers as daemon/ship.c
 * sends them (docs/FORMAT.md, "Dead-letter markers"); -EINVAL with @what
 * naming the first missing or bad header.
 */
static int marker_parse(const struct js_stored *m, struct marker *k,
			char *what, size_t len)
{
	size_t n;
	int ret;

	if (!m->host) {
		snprintf(what, len, "missing %s header", JS_HDR_HOST);
		return -EINVAL;
	}
	n = strnlen(m->host, BATCH_HOST_ID_MAX + 1);
	if (!n || n > BATCH_HOST_ID_MAX) {
		snprintf(what, len, "bad %s '%.64s'", JS_HDR_HOST, m->host);
		return -EINVAL;
	}
	if (!m->source) {
		snprintf(what, len, "missing %s header", JS_HDR_SOURCE);
		return -EINVAL;
	}
	if (parse_source_name(m->source, &k->source)) {
		snprintf(what, len, "bad %s '%.64s'", JS_HDR_SOURCE,
			 m->source);
		return -EINVAL;
	}
	ret = marker_u64(JS_HDR_PARTITION, m->partition, 0, UINT32_MAX,
			 &k->partition, what, len);
	if (!ret)
		ret = marker_u64(JS_HDR_EPOCH, m->epoch, 0, UINT64_MAX,
				 &k->epoch, what, len);
	if (!ret)
		ret = marker_u64(JS_HDR_FIRST_SEQ, m->first_seq, 1, UINT64_MAX,
				 &k->first, what, len);
	if (!ret)
		ret = marker_u64(JS_HDR_COUNT, m->count, 1, UINT32_MAX,
				 &k->count, what, len);
	if (ret)
		return ret;
	if (k->first + (k->count - 1) < k->first) {
		snprintf(what, len, "%s %" PRIu64 " and %s %" PRIu64
			 " wrap around", JS_HDR_FIRST_SEQ, k->first,
			 JS_HDR_COUNT, k->count);
		return -EINVAL;
	}
	k->host = m->host;
	return 0;
}

/*
 * A dead-letter marker: header Evring-Dead-Letter (the reason) and the
 * range in the headers every message carries (Evring-Host, -Source,
 * -Partition, -Epoch in decimal, -First-Seq, -Count); the body, empty, is
 * not read.  A missing or bad header makes the marker corrupt.
 */
static int on_marker(struct consume *c, const struct js_stored *m)
{
	const char *reason = m->dead_letter;
	struct marker k;
	char why[128], what[160];
	int ret;

	if (marker_parse(m, &k, why, sizeof(why))) {
		snprintf(what, sizeof(what), "dead-letter marker: %s", why);
		corrupt(c, m, what);
		return 0;
	}
	if (!reason[0])
		reason = "unspecified";
	ret = verify_add_dead_marker(c->v, c->region, m->stream_seq, k.host,
				     k.source, k.partition, k.epoch, k.first,
				     k.count, reason);
	if (ret == -EINVAL) {
		corrupt(c, m, "dead-letter marker: bad host or range");
		ret = 0;
	} else if (!ret && c->json) {
		char ep[17];

		epoch_hex(k.epoch, ep);
		ret = print_line(json_pack(
			"{s:s, s:I, s:s, s:s, s:s, s:I, s:s, s:I, s:I}",
			"region", c->region,
			"stream_seq", (json_int_t)m->stream_seq,
			"dead_letter", reason, "host", k.host,
			"source", source_name(k.source),
			"partition", (json_int_t)k.partition, "epoch", ep,
			"first_seq", (json_int_t)k.first,
			"count", (json_int_t)k.count));
	}
	return ret;
}

static int on_batch(struct consume *c, const struct js_stored *m)
{
	struct batch_view view;
	struct batch_iter it;
	struct evring_rec r;
	const void *payload;
	char what[64];
	int ret;

	ret = batch_decode(m->data, m->len, &view);
	if (ret) {
		snprintf(what, sizeof(what), "batch: %s", strerror(-ret));
		corrupt(c, m, what);
		return ret == -ENOMEM ? ret : 0;
	}
	for (unsigned int i = 0; i < view.nloss; i++) {
		ret = batch_view_loss(&view, i, &c->loss[i]);
		if (ret)
			goto out;
	}
	ret = verify_add_batch(c->v, c->region, m->stream_seq, &view.meta,
			       c->loss, view.nloss);
	if (ret)
		goto out;
	if (!c->json)
		goto out;
	batch_iter_init(&it, &view);
	while ((ret = batch_iter_next(&it, &r, &payload)) > 0) {
		ret = print_event(c, m, &view.meta, &r, payload);
		if (ret)
			goto out;
	}
out:
	batch_view_release(&view);
	return ret;
}

static int on_message(const struct js_stored *m, void *arg)
{
	struct consume *c = arg;
	int ret;

	ret = m->dead_letter ? on_marker(c, m) : on_batch(c, m);
	if (ret) {
		c->err = ret;
		return 1;	/* ours, not the walk's */
	}
	return 0;
}

static int print_issue(const struct verify_issue *is, void *arg)
{
	unsigned int *shown = arg;
	const struct verify_part *p = is->part;

	if ((*shown)++ >= ISSUES_SHOWN)
		return 0;
	fprintf(stderr, "consume: %s %s/%s-%" PRIu32 "/%016" PRIx64
		" seqs %" PRIu64 "-%" PRIu64,
		verify_kind_name(is->kind), p->host, source_name(p->source),
		p->partition, p->epoch, is->first, is->last);
	if (is->region)
		fprintf(stderr, " (region '%s' stream seq %" PRIu64 ")",
			is->region, is->stream_seq);
	if (is->reason)
		fprintf(stderr, ": %s", is->reason);
	fputc('\n', stderr);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: evringctl consume --region NAME [--region NAME ...]\n"
		"                         [--config FILE] [--from SEQ]\n"
		"                         [--format json|none]\n"
		"                         [--expect HOST/SOURCE-PART/EPOCH/FIRST-LAST ...]\n"
		"\n"
		"Reads the regions' streams, prints every event as a JSON line and\n"
		"checks that every record is there exactly once (several regions:\n"
		"once across all of them).  Exit 0: verdict ok; 1: FAIL; 2: cannot\n"
		"start.\n"
		"\n"
		"  -r, --region NAME  a [region NAME] of the config file\n"
		"  -c, --config FILE  evringd's config (default %s)\n"
		"  -f, --from SEQ     start at this stream sequence (default 1)\n"
		"  -F, --format FMT   json (default): one line per event; none\n"
		"  -e, --expect R     records the writers were told were accepted:\n"
		"                     HOST/SOURCE-PART/EPOCH/FIRST-LAST, SOURCE kmod,\n"
		"                     socket or bpf, EPOCH in hex\n"
		"  -h, --help         this text\n",
		CONFIG_DEFAULT_PATH);
}

static int die_usage(const char *fmt, const char *arg)
{
	fprintf(stderr, "consume: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\ntry 'evringctl consume --help'\n");
	return EXIT_USAGE;
}

static void link_opts(const struct config_region *r, struct js_link_opts *o)
{
	*o = (struct js_link_opts){
		.region = r->name,
		.urls = r->urls,
		.creds = r->creds,
		.tls_ca = r->tls_ca,
		.tls_cert = r->tls_cert,
		.tls_key = r->tls_key,
		.stream = r->stream,
		.subject_prefix = r->subject_prefix,
		.replicas = r->replicas ? r->replicas : 1,
		.create_stream = false,	/* a reader never creates */
		.dupe_window_ms = r->dupe_window_ms,
		.timeout_ms = CONSUME_TIMEOUT_MS,
		.max_pending = 1,
	};
}

struct consume_args {
	const char *config;
	const char *region[CONSUME_REGIONS_MAX];
	unsigned int nregions;
	uint64_t from;
	bool json;
	struct expect *expect;
	unsigned int nexpect;
};

static int parse_args(int argc, char **argv, struct consume_args *a)
{
	static const struct option opts[] = {
		{ "region", required_argument, NULL, 'r' },
		{ "config", required_argument, NULL, 'c' },
		{ "from", required_argument, NULL, 'f' },
		{ "format", required_argument, NULL, 'F' },
		{ "expect", required_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	optind = 0;	/* evringctl may have run getopt already */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+r:c:f:F:e:h", opts,
				  NULL)) != -1) {
		switch (opt) {
		case 'r':
			if (a->nregions == CONSUME_REGIONS_MAX)
				return die_usage("too many --region (max %s)",
						 "8");
			for (unsigned int i = 0; i < a->nregions; i++)
				if (!strcmp(a->region[i], optarg))
					return die_usage("--region '%s' given twice",
							 optarg);
			a->region[a->nregions++] = optarg;
			break;
		case 'c':
			a->config = optarg;
			break;
		case 'f':
			if (parse_u64(optarg, 10, 1, UINT64_MAX, &a->from))
				return die_usage("bad --from '%s' (a stream sequence, >= 1)",
						 optarg);
			break;
		case 'F':
			if (!strcmp(optarg, "json"))
				a->json = true;
			else if (!strcmp(optarg, "none"))
				a->json = false;
			else
				return die_usage("bad --format '%s' (json or none)",
						 optarg);
			break;
		case 'e':
			if (a->nexpect == CONSUME_EXPECT_MAX)
				return die_usage("too many --expect (max %s)",
						 "1024");
			if (parse_expect(optarg, &a->expect[a->nexpect]))
				return die_usage("bad --expect '%s' (HOST/SOURCE-PART/EPOCH/FIRST-LAST)",
						 optarg);
			a->nexpect++;
			break;
		case 'h':
			usage(stdout);
			return -1;
		default:
			return die_usage("bad option or missing value near '%s'",
					 argv[optind - 1]);
		}
	}
	if (optind < argc)
		return die_usage("unexpected argument '%s'", argv[optind]);
	if (!a->nregions)
		return die_usage("--region is required%s", "");
	return 0;
}

/* Read every region into @c; 0, or the exit status on failure. */
static int read_regions(struct consume *c, const struct evd_config *cfg,
			const struct consume_args *a)
{
	const struct config_region *reg[CONSUME_REGIONS_MAX];
	char err[512];
	int ret;

	for (unsigned int i = 0; i < a->nregions; i++) {
		reg[i] = NULL;
		for (unsigned int j = 0; j < cfg->nr_regions; j++)
			if (!strcmp(cfg->region[j].name, a->region[i]))
				reg[i] = &cfg->region[j];
		if (!reg[i]) {
			fprintf(stderr, "consume: no region '%s' in %s\n",
				a->region[i], a->config);
			return EXIT_USAGE;
		}
	}
	for (unsigned int i = 0; i < a->nregions; i++) {
		struct js_link_opts o;

		link_opts(reg[i], &o);
		c->region = reg[i]->name;
		err[0] = '\0';
		ret = js_read_stream(&o, a->from, on_message, c, err,
				     sizeof(err));
		if (ret == 1 && c->err) {
			fprintf(stderr, "consume: region '%s': %s\n",
				c->region, strerror(-c->err));
			return EXIT_USAGE;
		}
		if (ret) {
			fprintf(stderr, "consume: region '%s': %s\n",
				c->region, err[0] ? err : strerror(-ret));
			return EXIT_USAGE;
		}
	}
	return 0;
}

int consume_main(int argc, char **argv)
{
	struct consume_args a = {
		.config = CONFIG_DEFAULT_PATH,
		.from = 1,
		.json = true,
	};
	struct consume c = { 0 };
	struct evd_config *cfg = NULL;
	struct verify_report r;
	unsigned int shown = 0;
	char err[512];
	bool ok;
	int ret;

	a.expect = calloc(CONSUME_EXPECT_MAX, sizeof(*a.expect));
	c.loss = calloc(BATCH_LOSS_MAX, sizeof(*c.loss));
	cfg = malloc(sizeof(*cfg));
	if (!a.expect || !c.loss || !cfg) {
		fprintf(stderr, "consume: %s\n", strerror(ENOMEM));
		ret = EXIT_USAGE;
		goto out;
	}
	ret = parse_args(argc, argv, &a);
	if (ret) {
		ret = ret < 0 ? 0 : ret;	/* --help */
		goto out;
	}
	if (config_load(cfg, a.config, err, sizeof(err)) < 0) {
		fprintf(stderr, "consume: %s\n", err);
		ret = EXIT_USAGE;
		goto out;
	}
	ret = verify_new(&c.v);
	for (unsigned int i = 0; !ret && i < a.nexpect; i++) {
		const struct expect *e = &a.expect[i];

		ret = verify_expect(c.v, e->host, e->source, e->partition,
				    e->epoch, e->first, e->last);
	}
	if (ret) {
		fprintf(stderr, "consume: %s\n", strerror(-ret));
		ret = EXIT_USAGE;
		goto out;
	}
	c.json = a.json;
	ret = read_regions(&c, cfg, &a);
	if (fflush(stdout) && !ret) {
		fprintf(stderr, "consume: cannot write output: %s\n",
			strerror(errno));
		ret = EXIT_USAGE;
	}
	if (ret)
		goto out;
	ret = verify_report(c.v, &r);
	if (!ret)
		ret = verify_foreach_issue(c.v, print_issue, &shown);
	if (ret) {
		fprintf(stderr, "consume: %s\n", strerror(-ret));
		ret = EXIT_USAGE;
		goto out;
	}
	if (shown > ISSUES_SHOWN)
		fprintf(stderr, "consume: ... and %u more findings\n",
			shown - ISSUES_SHOWN);
	if (c.corrupt)
		fprintf(stderr, "consume: %" PRIu64 " corrupt message(s)\n",
			c.corrupt);
	ok = verify_ok(c.v) && !c.corrupt;
	fprintf(stderr,
		"consume: %" PRIu64 " events in %" PRIu64
		" batches from %u region(s); duplicates %" PRIu64
		"; gaps %" PRIu64 " (explained %" PRIu64
		"); dead-lettered %" PRIu64 "; verdict %s\n",
		r.total.records, r.total.batches, a.nregions,
		r.total.duplicates, r.total.gaps, r.total.gaps_explained,
		r.total.dead_lettered, ok ? "ok" : "FAIL");
	ret = ok ? 0 : EXIT_FAIL;
out:
	verify_free(c.v);
	free(cfg);
	free(c.loss);
	free(a.expect);
	return ret;
}
