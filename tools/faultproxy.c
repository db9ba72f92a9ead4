// SPDX-License-Identifier: GPL-2.0-only
/*
 * faultproxy - a TCP proxy that degrades the link on purpose, for fault
 * drills where the kernel has no netem (docs/DRILLS.md).
 *
 *	faultproxy -l ADDR:PORT -u HOST:PORT [--latency-ms N] [--jitter-ms N]
 *		   [--rate-kbit N] [--drop-pct N] [--control PATH]
 *
 * Every connection accepted on -l is forwarded to -u.  Data is held for
 * the latency (+- the jitter, uniformly) in each direction, delivered in
 * order (a chunk never overtakes the one before it), and paced by a token
 * bucket per direction when a rate is set (1 kbit = 1000 bit).  With a
 * drop percentage, that share of new connections is reset at accept.
 *
 * The control socket (a unix stream socket at PATH) takes one command per
 * line and answers "ok" or "error: why", each on one line:
 *	set latency_ms N | set jitter_ms N | set rate_kbit N (0: no limit)
 *	set drop_pct N		also resets that share of open connections
 *	blackhole on|off	forward nothing (data is held, and reading stops
 *				when 4 MiB are held per direction: a link that
 *				carries nothing, which TCP rides out); off
 *				resumes where it stopped
 *	reset			reset every open connection
 *	show			"latency_ms=N jitter_ms=N rate_kbit=N drop_pct=N
 *				blackhole=on|off connections=N"
 *
 * Once listening it prints "faultproxy: listening on ADDR:PORT" (the port
 * the kernel chose when PORT is 0) on stdout.  Bad arguments: one line on
 * stderr, exit 2; a socket that cannot be set up: exit 1; SIGINT/SIGTERM:
 * exit 0, the control socket removed.  One process, one epoll loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#define HOLD_MAX	(4u << 20)	/* bytes held per direction */
#define CHUNK_MAX	65536
#define CTL_LINE_MAX	256
#define LATENCY_MAX	60000u		/* ms */
#define RATE_KBIT_MAX	10000000u

struct settings {
	unsigned int latency_ms, jitter_ms, rate_kbit, drop_pct;
	bool blackhole;
};

static struct settings set;

enum kind { K_LISTEN, K_CTL_LISTEN, K_CTL, K_SIG, K_CLIENT, K_UPSTREAM };

struct tag {
	enum kind kind;
	void *p;
};

struct chunk {
	struct chunk *next;
	uint64_t due_ns;
	size_t len, off;
	unsigned char data[];
};

/* One direction of a connection: bytes read from @from, written to @to. */
struct dir {
	int *from, *to;
	struct chunk *head, *tail;
	size_t held;
	bool eof, shut;
	double tokens;
	uint64_t refill_ns;
};

struct conn {
	struct conn *next, **pprev;
	int cfd, ufd;
	bool connected, dead;
	struct dir up, down;	/* client -> upstream, upstream -> client */
	uint32_t cmask, umask;	/* registered epoll events */
	struct tag ctag, utag;
};

struct ctl {
	int fd;
	char buf[CTL_LINE_MAX];
	size_t len;
	struct tag tag;
};

static int ep;
static struct conn *conns;
static unsigned int nr_conns;
static struct addrinfo *upstream;

static void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die_usage(const char *fmt, ...)
{
	va_list ap;

	fputs("faultproxy: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Digits only, 0..@max; -EINVAL (not a number) or -ERANGE. */
static int parse_uint(const char *v, unsigned int max, unsigned int *out)
{
	unsigned long long n = 0;

	if (!*v)
		return -EINVAL;
	for (const char *p = v; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		n = n * 10 + (unsigned int)(*p - '0');
		if (n > max)
			return -ERANGE;
	}
	*out = (unsigned int)n;
	return 0;
}

static void opt_uint(const char *opt, const char *v, unsigned int max,
		     unsigned int *out)
{
	int err = parse_uint(v, max, out);

	if (err == -EINVAL)
		die_usage("bad value '%s' for %s: not a number", v, opt);
	if (err)
		die_usage("bad value '%s' for %s: out of range (0..%u)", v, opt,
			  max);
}

/* "HOST:PORT" or "[V6]:PORT" into an address list; @numeric: no DNS. */
static int resolve(const char *v, bool numeric, struct addrinfo **out)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV };
	char host[256], *colon;
	unsigned int port;
	size_t hl;

	colon = strrchr(v, ':');
	if (!colon || colon == v || parse_uint(colon + 1, 65535, &port) < 0)
		return -EINVAL;
	hl = (size_t)(colon - v);
	if (v[0] == '[') {
		if (v[hl - 1] != ']' || hl < 3)
			return -EINVAL;
		v++;
		hl -= 2;
	}
	if (hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, v, hl);
	host[hl] = '\0';
	if (numeric)
		hints.ai_flags |= AI_NUMERICHOST | AI_PASSIVE;
	return getaddrinfo(host, colon + 1, &hints, out) ? -EINVAL : 0;
}

/* --- epoll bookkeeping ------------------------------------------------ */

static void ep_set(int fd, struct tag *t, uint32_t *cur, uint32_t want)
{
	struct epoll_event ev = { .events = want, .data.ptr = t };

	if (*cur == want)
		return;
	if (epoll_ctl(ep, *cur ? (want ? EPOLL_CTL_MOD : EPOLL_CTL_DEL) :
			  EPOLL_CTL_ADD, fd, &ev) == 0)
		*cur = want;
}

static void ep_add(int fd, enum kind k, void *p, struct tag *t)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = t };

	t->kind = k;
	t->p = p;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
		perror("faultproxy: epoll_ctl");
		exit(1);
	}
}

/* --- connections ------------------------------------------------------ */

static void dir_free(struct dir *d)
{
	while (d->head) {
		struct chunk *c = d->head;

		d->head = c->next;
		free(c);
	}
	d->tail = NULL;
	d->held = 0;
}

/* Close @c's sockets; @rst: with a reset (SO_LINGER 0), not a FIN. */
static void conn_close(struct conn *c, bool rst)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	if (rst) {
		setsockopt(c->cfd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		setsockopt(c->ufd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	close(c->cfd);
	close(c->ufd);
	dir_free(&c->up);
	dir_free(&c->down);
	*c->pprev = c->next;
	if (c->next)
		c->next->pprev = c->pprev;
	nr_conns--;
	free(c);
}

static void conn_accept(int lfd)
{
	struct conn *c;
	int cfd, ufd;

	cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (cfd < 0)
		return;
	if (set.drop_pct && (unsigned int)(random() % 100) < set.drop_pct) {
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };

		setsockopt(cfd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(cfd);
		return;
	}
	ufd = socket(upstream->ai_family,
		     SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	c = calloc(1, sizeof(*c));
	if (ufd < 0 || !c ||
	    (connect(ufd, upstream->ai_addr, upstream->ai_addrlen) < 0 &&
	     errno != EINPROGRESS)) {
		close(cfd);
		if (ufd >= 0)
			close(ufd);
		free(c);
		return;
	}
	c->cfd = cfd;
	c->ufd = ufd;
	c->up = (struct dir){ .from = &c->cfd, .to = &c->ufd };
	c->down = (struct dir){ .from = &c->ufd, .to = &c->cfd };
	c->up.refill_ns = c->down.refill_ns = now_ns();
	c->ctag = (struct tag){ K_CLIENT, c };
	c->utag = (struct tag){ K_UPSTREAM, c };
	c->next = conns;
	c->pprev = &conns;
	if (conns)
		conns->pprev = &c->next;
	conns = c;
	nr_conns++;
}

/* Read what @d's source has into a new chunk; false: the connection died. */
static bool dir_read(struct dir *d, uint64_t now)
{
	struct chunk *ch = malloc(sizeof(*ch) + CHUNK_MAX);
	uint64_t delay;
	ssize_t n;

	if (!ch)
		return true;	/* try again later */
	n = read(*d->from, ch->data, CHUNK_MAX);
	if (n <= 0) {
		free(ch);
		if (n == 0) {
			d->eof = true;
			return true;
		}
		return errno == EAGAIN || errno == EINTR;
	}
	delay = set.latency_ms * 1000000ull;
	if (set.jitter_ms) {
		int64_t j = (int64_t)(random() % (2 * set.jitter_ms + 1)) -
			    (int64_t)set.jitter_ms;

		delay = (int64_t)delay + j * 1000000 > 0 ?
				(uint64_t)((int64_t)delay + j * 1000000) : 0;
	}
	ch->next = NULL;
	ch->len = (size_t)n;
	ch->off = 0;
	ch->due_ns = now + delay;
	if (d->tail && d->tail->due_ns > ch->due_ns)	/* stay in order */
		ch->due_ns = d->tail->due_ns;
	if (d->tail)
		d->tail->next = ch;
	else
		d->head = ch;
	d->tail = ch;
	d->held += (size_t)n;
	return true;
}

static double rate_bps(void)
{
	return set.rate_kbit * 1000.0 / 8;
}

static void refill(struct dir *d, uint64_t now)
{
	double r = rate_bps(), cap = r / 50 > 1500 ? r / 50 : 1500;

	d->tokens += (double)(now - d->refill_ns) / 1e9 * r;
	if (d->tokens > cap)
		d->tokens = cap;
	d->refill_ns = now;
}

/*
 * Write what is due of @d; *wait_ns lowered to when more will be.  false:
 * the connection died.  *blocked: the destination is full.
 */
static bool dir_write(struct dir *d, uint64_t now, uint64_t *wait_ns,
		      bool *blocked)
{
	*blocked = false;
	if (set.rate_kbit)
		refill(d, now);
	else
		d->refill_ns = now;
	while (d->head && !set.blackhole) {
		struct chunk *ch = d->head;
		size_t want = ch->len - ch->off;
		ssize_t n;

		if (ch->due_ns > now) {
			if (ch->due_ns - now < *wait_ns)
				*wait_ns = ch->due_ns - now;
			break;
		}
		if (set.rate_kbit) {
			if (d->tokens < 1) {
				uint64_t w = (uint64_t)((1500 - d->tokens) /
							rate_bps() * 1e9);

				if (w < *wait_ns)
					*wait_ns = w;
				break;
			}
			if ((double)want > d->tokens)
				want = (size_t)d->tokens;
		}
		n = write(*d->to, ch->data + ch->off, want);
		if (n < 0) {
			if (errno == EAGAIN) {
				*blocked = true;
				break;
			}
			return errno == EINTR;
		}
		if (set.rate_kbit)
			d->tokens -= (double)n;
		ch->off += (size_t)n;
		d->held -= (size_t)n;
		if (ch->off == ch->len) {
			d->head = ch->next;
			if (!d->head)
				d->tail = NULL;
			free(ch);
		}
	}
	if (!d->head && d->eof && !d->shut) {
		shutdown(*d->to, SHUT_WR);
		d->shut = true;
	}
	return true;
}

/* Move what can move on @c; re-arm its epoll interest. */
static void conn_pump(struct conn *c, uint64_t now, uint64_t *wait_ns)
{
	bool ublocked = false, cblocked = false;
	uint32_t cm = 0, um = 0;

	if (!c->connected) {
		struct sockaddr_storage peer;
		socklen_t l = sizeof(int), pl = sizeof(peer);
		int e = 0;

		getsockopt(c->ufd, SOL_SOCKET, SO_ERROR, &e, &l);
		if (e && e != EINPROGRESS && e != EALREADY) {
			conn_close(c, true);
			return;
		}
		if (getpeername(c->ufd, (struct sockaddr *)&peer, &pl) == 0)
			c->connected = true;
	}
	if (c->connected &&
	    (!dir_write(&c->up, now, wait_ns, &ublocked) ||
	     !dir_write(&c->down, now, wait_ns, &cblocked))) {
		conn_close(c, true);
		return;
	}
	if (c->up.shut && c->down.shut) {
		conn_close(c, false);
		return;
	}
	if (!c->up.eof && c->up.held < HOLD_MAX)
		cm |= EPOLLIN;
	if (c->connected && !c->down.eof && c->down.held < HOLD_MAX)
		um |= EPOLLIN;
	if (!c->connected || ublocked)
		um |= EPOLLOUT;
	if (cblocked)
		cm |= EPOLLOUT;
	ep_set(c->cfd, &c->ctag, &c->cmask, cm);
	ep_set(c->ufd, &c->utag, &c->umask, um);
}

/* --- control ---------------------------------------------------------- */

static void ctl_reply(struct ctl *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void ctl_reply(struct ctl *t, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	if (send(t->fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		return;		/* a control client that does not read: its loss */
}

static void reset_share(unsigned int pct)
{
	struct conn *c = conns, *next;

	for (; c; c = next) {
		next = c->next;
		if ((unsigned int)(random() % 100) < pct)
			conn_close(c, true);
	}
}

static void ctl_command(struct ctl *t, char *line)
{
	static const struct {
		const char *name;
		unsigned int *v;
		unsigned int max;
	} vars[] = {
		{ "latency_ms", &set.latency_ms, LATENCY_MAX },
		{ "jitter_ms", &set.jitter_ms, LATENCY_MAX },
		{ "rate_kbit", &set.rate_kbit, RATE_KBIT_MAX },
		{ "drop_pct", &set.drop_pct, 100 },
	};
	char *arg;

	if (!strncmp(line, "set ", 4)) {
		char *name = line + 4;
		unsigned int v;

		arg = strchr(name, ' ');
		if (!arg) {
			ctl_reply(t, "error: expected 'set NAME VALUE'");
			return;
		}
		*arg++ = '\0';
		for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
			if (strcmp(name, vars[i].name))
				continue;
			if (parse_uint(arg, vars[i].max, &v) < 0) {
				ctl_reply(t, "error: bad value '%s' for %s (0..%u)",
					  arg, name, vars[i].max);
				return;
			}
			*vars[i].v = v;
			if (vars[i].v == &set.drop_pct)
				reset_share(v);
			ctl_reply(t, "ok");
			return;
		}
		ctl_reply(t, "error: unknown setting '%s'", name);
	} else if (!strcmp(line, "blackhole on") || !strcmp(line, "blackhole off")) {
		set.blackhole = line[11] == 'n';
		ctl_reply(t, "ok");
	} else if (!strcmp(line, "reset")) {
		reset_share(100);
		ctl_reply(t, "ok");
	} else if (!strcmp(line, "show")) {
		ctl_reply(t, "latency_ms=%u jitter_ms=%u rate_kbit=%u drop_pct=%u blackhole=%s connections=%u",
			  set.latency_ms, set.jitter_ms, set.rate_kbit,
			  set.drop_pct, set.blackhole ? "on" : "off", nr_conns);
	} else {
		ctl_reply(t, "error: unknown command '%s'", line);
	}
}

static void ctl_read(struct ctl *t)
{
	ssize_t n = read(t->fd, t->buf + t->len, sizeof(t->buf) - t->len);
	char *nl;

	if (n <= 0) {
		if (n < 0 && errno == EAGAIN)
			return;
		close(t->fd);
		free(t);
		return;
	}
	t->len += (size_t)n;
	while ((nl = memchr(t->buf, '\n', t->len))) {
		size_t used = (size_t)(nl - t->buf) + 1;

		*nl = '\0';
		if (nl > t->buf && nl[-1] == '\r')
			nl[-1] = '\0';
		ctl_command(t, t->buf);
		memmove(t->buf, t->buf + used, t->len - used);
		t->len -= used;
	}
	if (t->len == sizeof(t->buf)) {
		ctl_reply(t, "error: line too long (max %d bytes)", CTL_LINE_MAX - 1);
		close(t->fd);
		free(t);
	}
}

static int listen_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, 16) < 0) {
		fprintf(stderr, "faultproxy: cannot listen on '%s': %s\n", path,
			strerror(errno));
		exit(1);
	}
	return fd;
}

/* --- main ------------------------------------------------------------- */

static const char usage[] =
	"usage: faultproxy -l ADDR:PORT -u HOST:PORT [--latency-ms N] [--jitter-ms N]\n"
	"                  [--rate-kbit N] [--drop-pct N] [--control PATH]\n";

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "upstream", required_argument, NULL, 'u' },
		{ "latency-ms", required_argument, NULL, 'L' },
		{ "jitter-ms", required_argument, NULL, 'J' },
		{ "rate-kbit", required_argument, NULL, 'R' },
		{ "drop-pct", required_argument, NULL, 'D' },
		{ "control", required_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *laddr = NULL, *uaddr = NULL, *ctl_path = NULL;
	struct tag ltag, ctltag, sigtag;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct addrinfo *lai;
	int lfd, cfd = -1, sfd, o, one = 1;
	char host[INET6_ADDRSTRLEN], port[8];
	sigset_t mask;

	opterr = 0;
	while ((o = getopt_long(argc, argv, ":l:u:h", opts, NULL)) != -1) {
		switch (o) {
		case 'l': laddr = optarg; break;
		case 'u': uaddr = optarg; break;
		case 'L': opt_uint("--latency-ms", optarg, LATENCY_MAX, &set.latency_ms); break;
		case 'J': opt_uint("--jitter-ms", optarg, LATENCY_MAX, &set.jitter_ms); break;
		case 'R': opt_uint("--rate-kbit", optarg, RATE_KBIT_MAX, &set.rate_kbit); break;
		case 'D': opt_uint("--drop-pct", optarg, 100, &set.drop_pct); break;
		case 'C': ctl_path = optarg; break;
		case 'h': fputs(usage, stdout); return 0;
		case ':': die_usage("option '%s' needs a value", argv[optind - 1]);
		default: die_usage("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		die_usage("unexpected argument '%s'", argv[optind]);
	if (!laddr)
		die_usage("-l ADDR:PORT is required");
	if (!uaddr)
		die_usage("-u HOST:PORT is required");
	if (set.jitter_ms > set.latency_ms)
		die_usage("--jitter-ms (%u) is greater than --latency-ms (%u)",
			  set.jitter_ms, set.latency_ms);
	if (ctl_path && (!*ctl_path ||
			 strlen(ctl_path) >= sizeof(((struct sockaddr_un *)0)->sun_path)))
		die_usage("bad value '%s' for --control: must be 1..%zu characters",
			  ctl_path, sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
	if (resolve(laddr, true, &lai) < 0)
		die_usage("bad address '%s' for -l: expected IPV4:PORT or [IPV6]:PORT",
			  laddr);
	if (resolve(uaddr, false, &upstream) < 0)
		die_usage("bad address '%s' for -u: expected HOST:PORT or [IPV6]:PORT",
			  uaddr);

	srandom((unsigned int)now_ns());
	signal(SIGPIPE, SIG_IGN);
	ep = epoll_create1(EPOLL_CLOEXEC);
	lfd = socket(lai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (ep < 0 || lfd < 0 ||
	    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(lfd, lai->ai_addr, lai->ai_addrlen) < 0 || listen(lfd, 128) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&ss, &sl) < 0) {
		fprintf(stderr, "faultproxy: cannot listen on '%s': %s\n", laddr,
			strerror(errno));
		return 1;
	}
	freeaddrinfo(lai);
	ep_add(lfd, K_LISTEN, NULL, &ltag);
	if (ctl_path) {
		cfd = listen_unix(ctl_path);
		ep_add(cfd, K_CTL_LISTEN, NULL, &ctltag);
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	ep_add(sfd, K_SIG, NULL, &sigtag);

	getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), port,
		    sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV);
	printf(ss.ss_family == AF_INET6 ? "faultproxy: listening on [%s]:%s\n" :
					  "faultproxy: listening on %s:%s\n",
	       host, port);
	fflush(stdout);

	for (;;) {
		struct epoll_event evs[64];
		uint64_t wait_ns = UINT64_MAX, now;
		struct ctl *ctls[64];
		unsigned int nr_ctls = 0;
		int n, timeout;

		now = now_ns();
		for (struct conn *c = conns, *next; c; c = next) {
			next = c->next;
			conn_pump(c, now, &wait_ns);
		}
		timeout = wait_ns == UINT64_MAX ? -1 :
			  (int)((wait_ns + 999999) / 1000000);
		n = epoll_wait(ep, evs, 64, timeout);
		if (n < 0 && errno != EINTR) {
			perror("faultproxy: epoll_wait");
			return 1;
		}
		for (int i = 0; i < n; i++) {
			struct tag *t = evs[i].data.ptr;

			switch (t->kind) {
			case K_LISTEN:
				conn_accept(lfd);
				break;
			case K_CTL_LISTEN: {
				struct ctl *ct = calloc(1, sizeof(*ct));
				int fd = accept4(cfd, NULL, NULL,
						 SOCK_NONBLOCK | SOCK_CLOEXEC);

				if (!ct || fd < 0) {
					free(ct);
					if (fd >= 0)
						close(fd);
					break;
				}
				ct->fd = fd;
				ep_add(fd, K_CTL, ct, &ct->tag);
				break;
			}
			case K_CTL:
				/*
				 * After this batch: a command may close
				 * connections whose tags are still in evs.
				 */
				ctls[nr_ctls++] = t->p;
				break;
			case K_SIG:
				if (ctl_path)
					unlink(ctl_path);
				return 0;
			case K_CLIENT:
			case K_UPSTREAM:
				break;		/* read below, pumped next round */
			}
		}
		for (unsigned int i = 0; i < nr_ctls; i++)
			ctl_read(ctls[i]);
		/* Readable sockets: read each once per round. */
		now = now_ns();
		for (struct conn *c = conns, *next; c; c = next) {
			bool ok = true;

			next = c->next;
			if ((c->cmask & EPOLLIN) && c->up.held < HOLD_MAX)
				ok = dir_read(&c->up, now);
			if (ok && c->connected && (c->umask & EPOLLIN) &&
			    c->down.held < HOLD_MAX)
				ok = dir_read(&c->down, now);
			if (!ok)
				conn_close(c, true);
		}
	}
}
