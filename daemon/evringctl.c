// SPDX-License-Identifier: GPL-2.0-only
/*
 * evringctl: the operator's CLI for a running evringd, over its control
 * socket (daemon/control.h, docs/OPERATING.md).
 *
 *	evringctl [--socket PATH] [--json] status|spool|ledger|ping
 *	evringctl [--socket PATH] [--json] dlq list|show ID|replay ID|purge ID --yes
 *	evringctl [--socket PATH] [--json] failpoint list|NAME ACTION
 *	evringctl consume ...		(daemon/consume.h: reads regions back)
 *	evringctl drill ...		(daemon/drill_run.h: fault drills)
 *
 * One request, one response line.  Human tables by default; --json prints
 * the daemon's response line as is, for scripts.  Exit status: 0 the
 * daemon answered ok, 1 any error (cannot connect, the daemon said no, a
 * garbled answer), 2 a usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "config.h"
#include "consume.h"
#include "control.h"
#include "drill_run.h"

#define EXIT_USAGE		2
#define RESPONSE_MAX		(16u << 20)	/* bytes of one response line */
#define DEFAULT_TIMEOUT_MS	10000

static const char *prog = "evringctl";

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s [--socket PATH] [--json] [--timeout MS] COMMAND\n"
		"\n"
		"commands:\n"
		"  status            rings per source and partition, daemon state\n"
		"  spool             spool size, depth and ingest rate\n"
		"  ledger            loss ranges, the newest --limit N (default %d,\n"
		"                    max %d)\n"
		"  ping              is evringd alive?\n"
		"  dlq list          dead letters: batches a region refused for good\n"
		"  dlq show ID       one dead letter, its stored batch decoded\n"
		"  dlq replay ID     send it through the normal path again; it leaves\n"
		"                    the table once its region acknowledged it\n"
		"  dlq purge ID --yes  delete it unsent\n"
		"  failpoint list    every failpoint: its action and hits (drills)\n"
		"  failpoint NAME ACTION  arm one: off, crash, pause:MS or error,\n"
		"                    optionally @N (from the Nth hit on)\n"
		"  consume ...       read regions' streams back and verify them\n"
		"                    (evringctl consume --help)\n"
		"  drill ...         run a fault drill: regions, faults, verdict\n"
		"                    (evringctl drill --help)\n"
		"\n"
		"options:\n"
		"  -s, --socket PATH  control socket (default %s)\n"
		"  -j, --json         print the daemon's JSON response line\n"
		"  -t, --timeout MS   give up after MS milliseconds (default %d)\n"
		"  -n, --limit N      ledger rows\n"
		"  -y, --yes          confirm 'dlq purge'\n"
		"  -h, --help         this text\n",
		prog, CONTROL_LEDGER_DEFAULT, CONTROL_LEDGER_MAX,
		CONFIG_DEFAULT_CONTROL_SOCKET, DEFAULT_TIMEOUT_MS);
}

static int die_usage(const char *fmt, const char *arg)
{
	fprintf(stderr, "%s: ", prog);
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\ntry '%s --help'\n", prog);
	return EXIT_USAGE;
}

/* Checked decimal parse into [min, max]. */
static bool parse_uint(const char *s, unsigned long min, unsigned long max,
		       unsigned long *out)
{
	unsigned long v;
	char *end;

	if (!s[0] || s[0] < '0' || s[0] > '9')
		return false;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

/* --- talking to the daemon ------------------------------------------- */

static int64_t ms_left(const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)(deadline->tv_sec - now.tv_sec) * 1000 +
	       (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

static int wait_fd(int fd, short events, const struct timespec *deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	int64_t left = ms_left(deadline);
	int n;

	if (left <= 0)
		return -ETIMEDOUT;
	n = poll(&p, 1, left > 60000 ? 60000 : (int)left);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	return n == 0 ? (ms_left(deadline) <= 0 ? -ETIMEDOUT : 0) : 1;
}

/*
 * Send @req (one line) to the daemon at @path and read one response line
 * into *@out (malloc'd, NUL-terminated, without the '\n').
 */
static int exchange(const char *path, const char *req, unsigned int timeout_ms,
		    char **out, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = strlen(req), off = 0, cap = 4096, have = 0;
	struct timespec deadline;
	char *buf = NULL, *nl;
	int fd, ret;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "socket path '%s' is too long", path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot create a socket: %s",
			 strerror(-ret));
		return ret;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		ret = -errno;
		snprintf(err, errlen,
			 "cannot connect to '%s': %s (is evringd running?)",
			 path, strerror(-ret));
		goto out;
	}
	while (off < len) {
		ssize_t n = send(fd, req + off, len - off, MSG_NOSIGNAL);

		if (n >= 0) {
			off += n;
			continue;
		}
		if (errno == EAGAIN) {
			ret = wait_fd(fd, POLLOUT, &deadline);
			if (ret >= 0)
				continue;
		} else if (errno == EINTR) {
			continue;
		} else {
			ret = -errno;
		}
		/* The daemon may have refused us with a line: read it. */
		if (ret == -EPIPE || ret == -ECONNRESET)
			break;
		snprintf(err, errlen, "cannot send to '%s': %s", path,
			 strerror(-ret));
		goto out;
	}
	buf = malloc(cap);
	if (!buf) {
		ret = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (;;) {
		ssize_t n;

		if (have == cap - 1) {
			char *nb;

			if (cap >= RESPONSE_MAX) {
				ret = -EMSGSIZE;
				snprintf(err, errlen,
					 "response longer than %u bytes",
					 RESPONSE_MAX);
				goto out;
			}
			nb = realloc(buf, cap * 2);
			if (!nb) {
				ret = -ENOMEM;
				snprintf(err, errlen, "out of memory");
				goto out;
			}
			buf = nb;
			cap *= 2;
		}
		n = recv(fd, buf + have, cap - 1 - have, 0);
		if (n > 0) {
			buf[have + n] = '\0';
			nl = memchr(buf + have, '\n', n);
			have += n;
			if (nl) {
				*nl = '\0';
				break;
			}
			continue;
		}
		if (n == 0) {
			ret = -ECONNRESET;
			snprintf(err, errlen,
				 "evringd closed the connection without an answer");
			goto out;
		}
		if (errno == EAGAIN) {
			ret = wait_fd(fd, POLLIN, &deadline);
			if (ret >= 0)
				continue;
		} else if (errno == EINTR) {
			continue;
		} else {
			ret = -errno;
		}
		snprintf(err, errlen, ret == -ETIMEDOUT ?
			 "no answer from '%s' within the timeout" :
			 "cannot read from '%s': %s", path, strerror(-ret));
		goto out;
	}
	*out = buf;
	buf = NULL;
	ret = 0;
out:
	free(buf);
	close(fd);
	return ret;
}

/* --- human output ---------------------------------------------------- */

static json_int_t jint(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

static const char *jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "-";
}

/* 1536 -> "1.5K": sizes in powers of 1024, like the config file. */
static const char *human_size(double v, char *buf, size_t len)
{
	static const char units[] = " KMGTP";
	int u = 0;

	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%.0f", v);
	else
		snprintf(buf, len, "%.1f%c", v, units[u]);
	return buf;
}

static const char *human_ms(json_int_t ms, char *buf, size_t len)
{
	json_int_t s = ms / 1000;

	if (ms < 60000)
		snprintf(buf, len, "%.1fs", (double)ms / 1000);
	else if (s < 3600)
		snprintf(buf, len, "%lldm%02llds", (long long)(s / 60),
			 (long long)(s % 60));
	else if (s < 86400)
		snprintf(buf, len, "%lldh%02lldm%02llds",
			 (long long)(s / 3600), (long long)(s / 60 % 60),
			 (long long)(s % 60));
	else
		snprintf(buf, len, "%lldd%02lldh%02lldm",
			 (long long)(s / 86400), (long long)(s / 3600 % 24),
			 (long long)(s / 60 % 60));
	return buf;
}

/* The BPF captures among the partitions, with what their programs counted. */
static void show_captures(json_t *parts)
{
	json_t *p;
	size_t i;
	bool head = false;

	json_array_foreach(parts, i, p) {
		if (!json_is_string(json_object_get(p, "capture")))
			continue;
		if (!head)
			printf("\n%-8s %4s %14s %12s %12s %7s\n", "CAPTURE",
			       "PART", "EVENTS", "DROPS", "SHED", "FILL");
		head = true;
		printf("%-8s %4lld %14lld %12lld %12lld %6.1f%%\n",
		       jstr(p, "capture"), (long long)jint(p, "partition"),
		       (long long)jint(p, "events"), (long long)jint(p, "drops"),
		       (long long)jint(p, "shed"),
		       json_number_value(json_object_get(p, "fill_pct")));
	}
}

/* "R3", or "NOT DURABLE (R1)": an ack that a server crash can undo. */
static const char *durability(json_t *g, char *buf, size_t len)
{
	long long r = (long long)jint(g, "replicas");

	if (json_is_true(json_object_get(g, "durable")))
		snprintf(buf, len, "R%lld", r);
	else
		snprintf(buf, len, "NOT DURABLE (R%lld)", r);
	return buf;
}

/* The regions spooled batches ship to, then what needs the operator. */
static void show_regions(json_t *regions)
{
	bool weak = false;
	char b1[32], b2[32];
	json_t *g;
	size_t i;

	if (!json_array_size(regions))
		return;
	printf("\n%-12s %-9s %-16s %-9s %6s %8s %10s %9s %14s %8s %6s %s\n",
	       "REGION", "CONNECTED", "DURABLE", "BREAKER", "WINDOW",
	       "INFLIGHT", "LAG_EVENTS", "LAG", "SHIPPED_EVENTS", "RETRIES",
	       "DEAD", "LAST_ERROR");
	json_array_foreach(regions, i, g) {
		const char *e = jstr(g, "last_error");

		weak |= !json_is_true(json_object_get(g, "durable"));
		printf("%-12s %-9s %-16s %-9s %6lld %8lld %10lld %9s %14lld %8lld %6lld %s\n",
		       jstr(g, "name"),
		       json_is_true(json_object_get(g, "connected")) ?
		       "yes" : "no", durability(g, b1, sizeof(b1)),
		       jstr(g, "breaker"), (long long)jint(g, "window"),
		       (long long)jint(g, "inflight"),
		       (long long)jint(g, "lag_events"),
		       human_ms(jint(g, "lag_ms"), b2, sizeof(b2)),
		       (long long)jint(g, "shipped_events"),
		       (long long)jint(g, "retries"),
		       (long long)jint(g, "dead_lettered"), e[0] ? e : "-");
	}
	json_array_foreach(regions, i, g)
		if (json_is_true(json_object_get(g, "parked")))
			printf("region %s is PARKED: it lags beyond ship.lag_limit_s and the spool no longer keeps batches for it\n",
			       jstr(g, "name"));
	if (weak)
		printf("NOT DURABLE: a stream with fewer than 3 replicas; JetStream acknowledges before it fsyncs, so a server crash can lose acknowledged batches\n");
}

static void show_status(json_t *r)
{
	json_t *parts = json_object_get(r, "partitions"), *p;
	char b1[32], b2[32], b3[32];
	size_t i;

	printf("host %s  pid %lld  state %s  uptime %s\n\n", jstr(r, "host"),
	       (long long)jint(r, "pid"), jstr(r, "state"),
	       human_ms(jint(r, "uptime_ms"), b1, sizeof(b1)));
	if (!json_array_size(parts)) {
		printf("no sources attached\n");
		show_regions(json_object_get(r, "regions"));
		return;
	}
	printf("%-8s %4s %-16s %15s %7s %12s %12s %8s %10s %12s %7s\n",
	       "SOURCE", "PART", "EPOCH", "FILL", "RING", "READ_POS",
	       "RELEASE_POS", "BATCHES", "RECORDS", "LAST_SEQ", "BLOCKED");
	json_array_foreach(parts, i, p) {
		snprintf(b3, sizeof(b3), "%s %5.1f%%",
			 human_size((double)jint(p, "ring_fill"), b1,
				    sizeof(b1)),
			 json_number_value(json_object_get(p, "fill_pct")));
		printf("%-8s %4lld %-16s %15s %7s %12lld %12lld %8lld %10lld %12lld %7lld\n",
		       jstr(p, "source"), (long long)jint(p, "partition"),
		       jstr(p, "epoch"), b3,
		       human_size((double)jint(p, "ring_size"), b2,
				  sizeof(b2)),
		       (long long)jint(p, "read_pos"),
		       (long long)jint(p, "release_pos"),
		       (long long)jint(p, "spool_batches"),
		       (long long)jint(p, "spool_records"),
		       (long long)jint(p, "last_seq"),
		       (long long)jint(p, "writers_blocked"));
	}
	show_captures(parts);
	show_regions(json_object_get(r, "regions"));
}

static void show_spool(json_t *r)
{
	json_t *age = json_object_get(r, "oldest_age_ms");
	json_t *eps = json_object_get(r, "ingest_records_per_s");
	char b1[32], b2[32];

	printf("path          %s\n", jstr(r, "path"));
	printf("size          %s of %s (%.1f%%)\n",
	       human_size((double)jint(r, "bytes"), b1, sizeof(b1)),
	       human_size((double)jint(r, "max_bytes"), b2, sizeof(b2)),
	       json_number_value(json_object_get(r, "fill_pct")));
	printf("batches       %lld\n", (long long)jint(r, "batches"));
	printf("records       %lld\n", (long long)jint(r, "records"));
	printf("oldest batch  %s\n", json_is_integer(age) ?
	       human_ms(json_integer_value(age), b1, sizeof(b1)) : "-");
	if (json_is_number(eps))
		printf("ingest rate   %.1f events/s, %s/s (over %s)\n",
		       json_number_value(eps),
		       human_size(json_number_value(json_object_get(r,
					"ingest_bytes_per_s")), b1, sizeof(b1)),
		       human_ms(jint(r, "rate_window_ms"), b2, sizeof(b2)));
	else
		printf("ingest rate   -\n");
}

static void show_ledger(json_t *r)
{
	json_t *rows = json_object_get(r, "losses"), *x;
	size_t i;

	if (!json_array_size(rows)) {
		printf("no losses recorded\n");
		return;
	}
	printf("%-24s %-8s %4s %-16s %12s %12s %10s %s\n", "TIME", "SOURCE",
	       "PART", "EPOCH", "FIRST_SEQ", "LAST_SEQ", "COUNT", "REASON");
	json_array_foreach(rows, i, x)
		printf("%-24s %-8s %4lld %-16s %12lld %12lld %10lld %s\n",
		       jstr(x, "time"), jstr(x, "source"),
		       (long long)jint(x, "partition"), jstr(x, "epoch"),
		       (long long)jint(x, "first_seq"),
		       (long long)jint(x, "last_seq"),
		       (long long)jint(x, "count"), jstr(x, "reason"));
	if (json_is_true(json_object_get(r, "truncated")))
		printf("(%zu newest of %lld ranges shown; use --limit)\n",
		       json_array_size(rows), (long long)jint(r, "total"));
}

static void show_dlq_list(json_t *r)
{
	json_t *rows = json_object_get(r, "dead_letters"), *x;
	char b1[32];
	size_t i;

	if (!json_array_size(rows)) {
		printf("no dead letters\n");
		return;
	}
	printf("%6s %-12s %-8s %4s %-16s %12s %8s %8s %8s %-24s %s\n", "ID",
	       "REGION", "SOURCE", "PART", "EPOCH", "FIRST_SEQ", "COUNT",
	       "SIZE", "ATTEMPTS", "TIME", "REASON");
	json_array_foreach(rows, i, x)
		printf("%6lld %-12s %-8s %4lld %-16s %12lld %8lld %8s %8lld %-24s %s\n",
		       (long long)jint(x, "id"), jstr(x, "region"),
		       jstr(x, "source"), (long long)jint(x, "partition"),
		       jstr(x, "epoch"), (long long)jint(x, "first_seq"),
		       (long long)jint(x, "count"),
		       human_size((double)jint(x, "bytes"), b1, sizeof(b1)),
		       (long long)jint(x, "attempts"), jstr(x, "time"),
		       jstr(x, "reason"));
	if (json_is_true(json_object_get(r, "truncated")))
		printf("(first %zu of %lld dead letters shown)\n",
		       json_array_size(rows), (long long)jint(r, "total"));
}

static void show_dlq_show(json_t *r)
{
	json_t *d = json_object_get(r, "dead_letter");
	json_t *dec = json_object_get(d, "decoded_records");
	char b1[32];

	printf("dead letter    %lld\n", (long long)jint(d, "id"));
	printf("region         %s\n", jstr(d, "region"));
	printf("batch          %lld (%s partition %lld, epoch %s)\n",
	       (long long)jint(d, "batch_id"), jstr(d, "source"),
	       (long long)jint(d, "partition"), jstr(d, "epoch"));
	printf("sequences      %lld..%lld (%lld records)\n",
	       (long long)jint(d, "first_seq"), (long long)jint(d, "last_seq"),
	       (long long)jint(d, "count"));
	if (json_is_integer(dec))
		printf("decoded        %lld records\n",
		       (long long)json_integer_value(dec));
	else
		printf("decoded        no: %s\n", jstr(d, "decode_error"));
	printf("size           %s\n",
	       human_size((double)jint(d, "bytes"), b1, sizeof(b1)));
	printf("spooled        %s\n", jstr(d, "spooled"));
	printf("dead-lettered  %s, after %lld attempts\n", jstr(d, "time"),
	       (long long)jint(d, "attempts"));
	printf("reason         %s\n", jstr(d, "reason"));
}

static void show_dlq_replay(json_t *r)
{
	printf("dead letter %lld: replay started; it leaves the dead-letter table once its region acknowledged it\n",
	       (long long)jint(r, "id"));
}

static void show_dlq_purge(json_t *r)
{
	printf("dead letter %lld purged\n", (long long)jint(r, "id"));
}

static void show_failpoint(json_t *r)
{
	printf("failpoint %s: %s (the previous action was hit %lld times)\n",
	       jstr(r, "name"), jstr(r, "action"), (long long)jint(r, "hits"));
}

static void show_failpoint_list(json_t *r)
{
	json_t *rows = json_object_get(r, "failpoints"), *x;
	size_t i;

	printf("%-20s %-24s %s\n", "FAILPOINT", "ACTION", "HITS");
	json_array_foreach(rows, i, x)
		printf("%-20s %-24s %lld\n", jstr(x, "name"), jstr(x, "action"),
		       (long long)jint(x, "hits"));
}

static void show_ping(json_t *r)
{
	printf("evringd pid %lld on host %s is alive\n",
	       (long long)jint(r, "pid"), jstr(r, "host"));
}

static const struct {
	const char *name;		/* on the command line */
	const char *cmd;		/* on the wire */
	bool id;			/* takes a dead-letter ID */
	void (*show)(json_t *r);
} cmds[] = {
	{ "status", "status", false, show_status },
	{ "spool", "spool", false, show_spool },
	{ "ledger", "ledger", false, show_ledger },
	{ "ping", "ping", false, show_ping },
	{ "dlq list", "dlq_list", false, show_dlq_list },
	{ "dlq show", "dlq_show", true, show_dlq_show },
	{ "dlq replay", "dlq_replay", true, show_dlq_replay },
	{ "dlq purge", "dlq_purge", true, show_dlq_purge },
	{ "failpoint list", "failpoint_list", false, show_failpoint_list },
	{ "failpoint set", "failpoint", false, show_failpoint },
};

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "timeout", required_argument, NULL, 't' },
		{ "limit", required_argument, NULL, 'n' },
		{ "yes", no_argument, NULL, 'y' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = CONFIG_DEFAULT_CONTROL_SOCKET;
	unsigned long timeout_ms = DEFAULT_TIMEOUT_MS, limit = 0, id = 0;
	bool json = false, yes = false;
	char req[128], err[512], name[32], *line = NULL, *dyn = NULL;
	const char *fp_name = NULL, *fp_action = NULL;
	json_t *res;
	json_error_t jerr;
	int c, cmd = -1, rc, words;

	/* consume parses its own options: it is a program of its own. */
	if (argc >= 2 && !strcmp(argv[1], "consume"))
		return consume_main(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "drill"))
		return drill_main(argc - 1, argv + 1);
	while ((c = getopt_long(argc, argv, "s:jt:n:yh", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			path = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 't':
			if (!parse_uint(optarg, 1, 3600000, &timeout_ms))
				return die_usage("bad --timeout '%s' (1..3600000 ms)",
						 optarg);
			break;
		case 'n':
			if (!parse_uint(optarg, 1, CONTROL_LEDGER_MAX, &limit))
				return die_usage("bad --limit '%s' (1..1000)",
						 optarg);
			break;
		case 'y':
			yes = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			fprintf(stderr, "try '%s --help'\n", prog);
			return EXIT_USAGE;
		}
	}
	if (optind == argc)
		return die_usage("%s", "missing COMMAND");
	/*
	 * "dlq" and "failpoint" take a subcommand: the command is the first
	 * two words; "failpoint NAME ACTION" is "failpoint set".
	 */
	words = strcmp(argv[optind], "dlq") &&
		strcmp(argv[optind], "failpoint") ? 1 : 2;
	if (words == 2 && optind + 1 == argc)
		return die_usage("%s", strcmp(argv[optind], "dlq") ?
				 "missing failpoint NAME ACTION, or list" :
				 "missing dlq subcommand (list, show, replay or purge)");
	snprintf(name, sizeof(name), "%.15s%s%.15s", argv[optind],
		 words == 2 ? " " : "", words == 2 ? argv[optind + 1] : "");
	if (!strcmp(argv[optind], "failpoint") &&
	    strcmp(argv[optind + 1], "list")) {
		if (optind + 2 == argc)
			return die_usage("'failpoint %s' needs an ACTION (off, crash, pause:MS or error)",
					 argv[optind + 1]);
		fp_name = argv[optind + 1];
		fp_action = argv[optind + 2];
		snprintf(name, sizeof(name), "failpoint set");
		optind++;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(name, cmds[i].name))
			cmd = (int)i;
	if (cmd < 0)
		return die_usage(words == 2 ? "unknown dlq subcommand '%s'" :
				 "unknown command '%s'",
				 argv[optind + words - 1]);
	optind += words;
	if (cmds[cmd].id) {
		if (optind == argc)
			return die_usage("'%s' needs a dead-letter ID", name);
		if (!parse_uint(argv[optind], 1, INT64_MAX, &id))
			return die_usage("bad dead-letter ID '%s' (a positive integer)",
					 argv[optind]);
		optind++;
	}
	if (optind != argc)
		return die_usage("too many arguments, starting at '%s'",
				 argv[optind]);
	if (limit && strcmp(cmds[cmd].name, "ledger"))
		return die_usage("--limit applies to 'ledger' only%s", "");
	if (yes && strcmp(cmds[cmd].name, "dlq purge"))
		return die_usage("--yes applies to 'dlq purge' only%s", "");
	if (!strcmp(cmds[cmd].name, "dlq purge") && !yes) {
		/* Nothing leaves the dead-letter table without a word. */
		fprintf(stderr, "%s: refusing to purge dead letter %lu without --yes\n",
			prog, id);
		return EXIT_USAGE;
	}

	if (fp_name) {
		json_t *j = json_pack("{s:s,s:s,s:s}", "cmd", "failpoint",
				      "name", fp_name, "action", fp_action);

		dyn = j ? json_dumps(j, JSON_COMPACT) : NULL;
		json_decref(j);
		if (!dyn)
			return die_usage("%s", "failpoint NAME and ACTION must be UTF-8 text");
	} else if (limit)
		snprintf(req, sizeof(req), "{\"cmd\":\"ledger\",\"limit\":%lu}\n",
			 limit);
	else if (cmds[cmd].id)
		snprintf(req, sizeof(req), "{\"cmd\":\"%s\",\"id\":%lu}\n",
			 cmds[cmd].cmd, id);
	else
		snprintf(req, sizeof(req), "{\"cmd\":\"%s\"}\n", cmds[cmd].cmd);
	if (dyn) {
		char *full = malloc(strlen(dyn) + 2);

		if (!full) {
			free(dyn);
			fprintf(stderr, "%s: out of memory\n", prog);
			return 1;
		}
		sprintf(full, "%s\n", dyn);
		free(dyn);
		dyn = full;
	}
	rc = exchange(path, dyn ? dyn : req, timeout_ms, &line, err,
		      sizeof(err));
	free(dyn);
	if (rc < 0) {
		fprintf(stderr, "%s: %s\n", prog, err);
		return 1;
	}
	res = json_loads(line, 0, &jerr);
	if (!json_is_object(res)) {
		fprintf(stderr, "%s: garbled answer from evringd: %s\n", prog,
			res ? "not a JSON object" : jerr.text);
		json_decref(res);
		free(line);
		return 1;
	}
	rc = json_is_true(json_object_get(res, "ok")) ? 0 : 1;
	if (json)
		printf("%s\n", line);
	else if (rc)
		fprintf(stderr, "%s: evringd: %s\n", prog, jstr(res, "error"));
	else
		cmds[cmd].show(res);
	if (json && rc)
		fprintf(stderr, "%s: evringd: %s\n", prog, jstr(res, "error"));
	json_decref(res);
	free(line);
	return fflush(stdout) == 0 && !ferror(stdout) ? rc : 1;
}
