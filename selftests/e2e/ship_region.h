/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * ship_region.h: a shipping region for the end-to-end tests in the VM, and
 * our own reading of what its stream holds.
 *
 *	struct sr_cluster c;
 *	sr_cluster_init(&c, dir, 3, 4222);	configs under DIR/nats
 *	sr_cluster_start(&c, 120000);		nats-server x3 on 127.0.0.1,
 *						waited for a JetStream meta
 *						leader all agree on
 *	... c.urls is the region's "urls" ...
 *	sr_cluster_kill(&c);			SIGKILL all; start again on
 *						the same stores
 *
 *	sr_count_file(&cnt, track, "consume.json", "e2e", "kmod", nparts);
 *	sr_judge(&cnt, track, &v);		every acked event exactly once
 *	sr_count_free(&cnt);
 *
 * The servers are our children: node k (0-based) listens on PORT + k,
 * routes on PORT + 2000 + k, monitoring on PORT + 4000 + k; 3 nodes form
 * one cluster (streams up to R3), 1 node is a lone JetStream server (R1).
 * $NATS_SERVER overrides /usr/sbin/nats-server.  Helpers return 0 or
 * -errno and never use the harness's ASSERTs.
 */
#ifndef EVRING_E2E_SHIP_REGION_H
#define EVRING_E2E_SHIP_REGION_H

#include <arpa/inet.h>
#include <netinet/in.h>

#include "e2e.h"

#define SR_NODES_MAX	3

/* --- the region: nats-server processes on loopback ---------------------- */

struct sr_cluster {
	char dir[160];			/* store dirs, configs, logs */
	unsigned int nodes;		/* 1 or 3 */
	unsigned int port;		/* client port of node 0 */
	pid_t pid[SR_NODES_MAX];
	char urls[256];
};

static inline const char *sr_nats_server(void)
{
	return e2e_bin("NATS_SERVER", "/usr/sbin/nats-server");
}

/* Node @k's config: JetStream in DIR/nK, and with 3 nodes a cluster. */
static inline int sr_node_conf(const struct sr_cluster *c, unsigned int k)
{
	char path[200], buf[2048];
	int n;

	snprintf(path, sizeof(path), "%s/n%u", c->dir, k + 1);
	if (mkdir(path, 0700) && errno != EEXIST)
		return -errno;
	n = snprintf(buf, sizeof(buf),
		     "server_name: n%u\n"
		     "listen: 127.0.0.1:%u\n"
		     "http: 127.0.0.1:%u\n"
		     "jetstream {\n"
		     "\tstore_dir: \"%s\"\n"
		     "\tmax_memory_store: 64MB\n"
		     "\tmax_file_store: 256MB\n"
		     "}\n",
		     k + 1, c->port + k, c->port + 4000 + k, path);
	if (c->nodes > 1)
		n += snprintf(buf + n, sizeof(buf) - n,
			      "cluster {\n"
			      "\tname: evr\n"
			      "\tlisten: 127.0.0.1:%u\n"
			      "\troutes: [ nats://127.0.0.1:%u, nats://127.0.0.1:%u, nats://127.0.0.1:%u ]\n"
			      "}\n",
			      c->port + 2000 + k, c->port + 2000,
			      c->port + 2001, c->port + 2002);
	snprintf(path, sizeof(path), "%s/n%u.conf", c->dir, k + 1);
	return e2e_write_file(path, buf, n, 0600);
}

static inline int sr_cluster_init(struct sr_cluster *c, const char *parent,
			   unsigned int nodes, unsigned int port)
{
	size_t n = 0;

	memset(c, 0, sizeof(*c));
	if (nodes != 1 && nodes != SR_NODES_MAX)
		return -EINVAL;
	c->nodes = nodes;
	c->port = port;
	snprintf(c->dir, sizeof(c->dir), "%s/nats", parent);
	if (mkdir(c->dir, 0700))
		return -errno;
	for (unsigned int k = 0; k < nodes; k++) {
		int ret = sr_node_conf(c, k);

		if (ret)
			return ret;
		n += snprintf(c->urls + n, sizeof(c->urls) - n, "%snats://127.0.0.1:%u",
			      k ? "," : "", port + k);
	}
	return 0;
}

/* Start node @k (a child of ours, its output in DIR/nK.log). */
static inline int sr_node_start(struct sr_cluster *c, unsigned int k)
{
	char conf[200], log[200];
	pid_t pid;

	snprintf(conf, sizeof(conf), "%s/n%u.conf", c->dir, k + 1);
	snprintf(log, sizeof(log), "%s/n%u.log", c->dir, k + 1);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);

		if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(127);
		execl(sr_nats_server(), "nats-server", "-c", conf, (char *)NULL);
		_exit(127);
	}
	c->pid[k] = pid;
	return 0;
}

/*
 * GET http://127.0.0.1:@port@path, the body parsed as JSON into *@out.
 * 0, -errno, -EBADMSG (not JSON).
 */
static inline int sr_http_json(unsigned int port, const char *path, json_t **out)
{
	struct sockaddr_in sa = {
		.sin_family = AF_INET,
		.sin_port = htons(port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	struct timeval tv = { .tv_sec = 2 };
	static char buf[1 << 16];
	char req[256];
	size_t have = 0;
	char *body;
	json_t *j;
	int fd, ret = 0;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n",
		 path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    send(fd, req, strlen(req), MSG_NOSIGNAL) < 0) {
		ret = -errno;
		goto out;
	}
	for (;;) {
		ssize_t n = recv(fd, buf + have, sizeof(buf) - 1 - have, 0);

		if (n < 0) {
			ret = errno == EAGAIN ? -ETIMEDOUT : -errno;
			goto out;
		}
		if (n == 0)
			break;
		have += n;
		if (have == sizeof(buf) - 1) {
			ret = -EMSGSIZE;
			goto out;
		}
	}
	buf[have] = '\0';
	body = strstr(buf, "\r\n\r\n");
	j = body ? json_loads(body + 4, 0, NULL) : NULL;
	if (!j)
		ret = -EBADMSG;
	else
		*out = j;
out:
	close(fd);
	return ret;
}

/* Node @k's JetStream meta leader ("" for a single node that is up). */
static inline int sr_meta_leader(const struct sr_cluster *c, unsigned int k,
			  char *out, size_t len)
{
	json_t *j = NULL, *meta;
	int ret = sr_http_json(c->port + 4000 + k, "/jsz", &j);

	if (ret)
		return ret;
	meta = json_object_get(j, "meta_cluster");
	if (c->nodes == 1 && !json_object_get(j, "config"))
		ret = -EAGAIN;		/* JetStream not enabled yet */
	else if (c->nodes > 1 && !*e2e_jstr(meta, "leader"))
		ret = -EAGAIN;
	else
		snprintf(out, len, "%s", c->nodes > 1 ? e2e_jstr(meta, "leader") : "");
	json_decref(j);
	return ret;
}

/*
 * Wait until every server answers and they all name the same JetStream
 * meta leader.  0, -ECHILD (a server exited), -ETIMEDOUT.
 */
static inline int sr_cluster_wait(struct sr_cluster *c, int timeout_ms)
{
	uint64_t end = e2e_now_ms() + timeout_ms;

	do {
		char first[64] = "", l[64];
		unsigned int k;

		for (k = 0; k < c->nodes; k++) {
			if (c->pid[k] <= 0 || waitpid(c->pid[k], NULL, WNOHANG))
				return -ECHILD;
			if (sr_meta_leader(c, k, l, sizeof(l)) ||
			    (k && strcmp(l, first)))
				break;
			snprintf(first, sizeof(first), "%s", l);
		}
		if (k == c->nodes)
			return 0;
		e2e_sleep_ms(100);
	} while (e2e_now_ms() < end);
	return -ETIMEDOUT;
}

/* Start every server and wait for the cluster; 0 or -errno. */
static inline int sr_cluster_start(struct sr_cluster *c, int timeout_ms)
{
	for (unsigned int k = 0; k < c->nodes; k++) {
		int ret = sr_node_start(c, k);

		if (ret)
			return ret;
	}
	return sr_cluster_wait(c, timeout_ms);
}

/* SIGKILL every server and reap it. */
static inline void sr_cluster_kill(struct sr_cluster *c)
{
	for (unsigned int k = 0; k < c->nodes; k++)
		if (c->pid[k] > 0)
			kill(c->pid[k], SIGKILL);
	for (unsigned int k = 0; k < c->nodes; k++) {
		if (c->pid[k] > 0)
			e2e_wait(c->pid[k], 30000);
		c->pid[k] = 0;
	}
}

/* The servers' logs' tails to stderr, for a failure. */
static inline void sr_cluster_log_tail(const struct sr_cluster *c)
{
	for (unsigned int k = 0; k < c->nodes; k++) {
		char path[200], *log;
		size_t len;

		snprintf(path, sizeof(path), "%s/n%u.log", c->dir, k + 1);
		log = e2e_slurp(path, &len);
		fprintf(stderr, "# nats n%u log tail:\n%s\n", k + 1,
			log ? log + (len > 1500 ? len - 1500 : 0) : "(none)");
		free(log);
	}
}

/* --- reading a stream back: consume's JSON lines ----------------------- */

static inline int sr_b64(int ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	return ch == '+' ? 62 : ch == '/' ? 63 : -1;
}

/* Standard base64 with padding into @out (@max bytes); the length or -EBADMSG. */
static inline long sr_b64_decode(const char *s, uint8_t *out, size_t max)
{
	size_t len = strlen(s), n = 0;

	if (len % 4)
		return -EBADMSG;
	for (size_t i = 0; i < len; i += 4) {
		int v[4], pad = 0;
		uint32_t x;

		for (int j = 0; j < 4; j++) {
			if (s[i + j] == '=' && i + 4 == len && j >= 2) {
				v[j] = 0;
				pad++;
				continue;
			}
			v[j] = sr_b64(s[i + j]);
			if (pad || v[j] < 0)
				return -EBADMSG;
		}
		x = (uint32_t)v[0] << 18 | v[1] << 12 | v[2] << 6 | v[3];
		if (n + 3 - pad > max)
			return -EMSGSIZE;
		out[n++] = x >> 16;
		if (pad < 2)
			out[n++] = x >> 8;
		if (pad < 1)
			out[n++] = x;
	}
	return (long)n;
}

/* Our own count of consume's JSON lines. */
struct sr_count {
	const char *host;		/* every event's host, source, and */
	const char *source;		/* partition: writer % nparts */
	unsigned int nparts;
	uint8_t *copies;		/* [writer * cap + counter], saturating */
	uint64_t cap;
	unsigned int nwriters;
	uint64_t lines;
	uint64_t events;		/* event lines */
	uint64_t markers;		/* dead-letter markers */
	uint64_t bad;			/* not JSON, or a payload not intact */
	uint64_t foreign;		/* intact, but no writer of ours */
	uint64_t misplaced;		/* wrong host, source, partition or pid */
	uint64_t per_part[EVRING_PARTITIONS_MAX];
	uint64_t stream_seq_max;
	char why[256];			/* the first problem */
};

static inline void sr_count_line(struct sr_count *c, const struct e2e_track *t,
			  const char *line, size_t len)
{
	static uint8_t payload[4096];
	json_t *o = json_loadb(line, len, 0, NULL), *data;
	uint64_t part, ctr;
	uint32_t w;
	long n;

	c->lines++;
	if (!o) {
		if (!c->bad++)
			snprintf(c->why, sizeof(c->why), "line %" PRIu64 ": not JSON",
				 c->lines);
		return;
	}
	if (e2e_jint(o, "stream_seq") > c->stream_seq_max)
		c->stream_seq_max = e2e_jint(o, "stream_seq");
	if (json_object_get(o, "dead_letter")) {
		c->markers++;
		goto out;
	}
	c->events++;
	data = json_object_get(o, "data");
	if (data) {
		n = json_string_length(data);
		if (n > (long)sizeof(payload))
			n = -EMSGSIZE;
		else
			memcpy(payload, json_string_value(data), n);
	} else {
		n = sr_b64_decode(e2e_jstr(o, "data_b64"), payload,
				  sizeof(payload));
	}
	if (n < 0 || (uint64_t)n != e2e_jint(o, "len") ||
	    e2e_ev_parse(payload, n, &w, &ctr)) {
		if (!c->bad++)
			snprintf(c->why, sizeof(c->why),
				 "stream seq %" PRIu64 " seq %" PRIu64 ": payload not an intact test event",
				 e2e_jint(o, "stream_seq"), e2e_jint(o, "seq"));
		goto out;
	}
	if (w >= c->nwriters || ctr >= c->cap) {
		c->foreign++;
		goto out;
	}
	part = e2e_jint(o, "partition");
	if (strcmp(e2e_jstr(o, "host"), c->host) ||
	    strcmp(e2e_jstr(o, "source"), c->source) || part != w % c->nparts ||
	    e2e_jint(o, "pid") != (uint64_t)t->w[w].pid) {
		if (!c->misplaced++)
			snprintf(c->why, sizeof(c->why),
				 "event %u/%" PRIu64 ": host '%s' source '%s' partition %" PRIu64
				 " pid %" PRIu64 ", expected '%s' '%s' %u %d",
				 w, ctr, e2e_jstr(o, "host"), e2e_jstr(o, "source"),
				 part, e2e_jint(o, "pid"), c->host, c->source,
				 w % c->nparts,
				 (int)t->w[w].pid);
	}
	if (part < EVRING_PARTITIONS_MAX)
		c->per_part[part]++;
	if (c->copies[(size_t)w * c->cap + ctr] < 255)
		c->copies[(size_t)w * c->cap + ctr]++;
out:
	json_decref(o);
}

/*
 * Count every line of the file @path (consume's --format json output):
 * writer w's events must come from @host, @source ("kmod", "socket") and
 * partition w % @nparts.  0 or -errno; sr_count_free() it.
 */
static inline int sr_count_file(struct sr_count *c, const struct e2e_track *t,
				const char *path, const char *host,
				const char *source, unsigned int nparts)
{
	size_t len;
	char *text = e2e_slurp(path, &len), *p, *nl;

	if (!text)
		return errno ? -errno : -ENOMEM;
	memset(c, 0, sizeof(*c));
	c->host = host;
	c->source = source;
	c->nparts = nparts ? nparts : 1;
	c->nwriters = t->nwriters;
	c->cap = t->cap;
	c->copies = calloc((size_t)c->nwriters * c->cap + 1, 1);
	if (!c->copies) {
		free(text);
		return -ENOMEM;
	}
	for (p = text; p < text + len; p = nl + 1) {
		nl = memchr(p, '\n', text + len - p);
		if (!nl)
			nl = text + len;
		if (nl > p)
			sr_count_line(c, t, p, nl - p);
	}
	free(text);
	return 0;
}

/* The judgement of a count against the writers' track. */
struct sr_verdict {
	uint64_t acked;			/* acknowledged to a writer */
	uint64_t once;			/* of those, in the stream exactly once */
	uint64_t lost;			/* acked, missing */
	uint64_t doubled;		/* in the stream more than once */
	uint64_t unexpected;		/* present, but failed or never sent */
	uint64_t unknown;		/* outcome unknown (writers are never killed) */
	char why[200];
};

static inline void sr_judge(const struct sr_count *c, const struct e2e_track *t,
		     struct sr_verdict *v)
{
	memset(v, 0, sizeof(*v));
	for (uint32_t w = 0; w < t->nwriters; w++) {
		for (uint64_t ctr = 0; ctr < t->cap; ctr++) {
			uint8_t n = c->copies[(size_t)w * c->cap + ctr];
			uint8_t st = *e2e_state((struct e2e_track *)t, w, ctr);

			if (n > 1) {
				v->doubled++;
				e2e_why(v->why, sizeof(v->why),
					"event %u/%" PRIu64 " in the stream %u times",
					w, ctr, n);
			}
			switch (st) {
			case E2E_ACKED:
				v->acked++;
				v->once += n == 1;
				if (!n) {
					v->lost++;
					e2e_why(v->why, sizeof(v->why),
						"acked event %u/%" PRIu64 " not in the stream",
						w, ctr);
				}
				break;
			case E2E_SENT:
				v->unknown++;
				break;
			default:
				if (n) {
					v->unexpected++;
					e2e_why(v->why, sizeof(v->why),
						"event %u/%" PRIu64 " in the stream but %s",
						w, ctr, st == E2E_FAILED ?
						"its write failed" : "never written");
				}
			}
		}
	}
}

static inline void sr_count_free(struct sr_count *c)
{
	free(c->copies);
	memset(c, 0, sizeof(*c));
}

#endif /* EVRING_E2E_SHIP_REGION_H */
