// SPDX-License-Identifier: GPL-2.0-only
/*
 * faultproxy_test: tools/faultproxy (build/bin/faultproxy) in front of an
 * echo server on loopback: it adds at least the latency it says each way,
 * keeps a megabyte intact and in order under jitter, holds everything in
 * blackhole mode and resumes after it, paces to its rate, resets what it
 * is told to, and refuses bad arguments with one exact line and exit 2.
 *
 * Lower bounds on time are functional checks (the proxy holds data at
 * least that long), not performance ones.  Run from the repository root.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"

/* The harness compares with ==: literals against unsigned values. */
#pragma GCC diagnostic ignored "-Wsign-compare"

#define PROXY	"build/bin/faultproxy"

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* --- an echo server, one thread per connection ------------------------ */

static void *echo_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[65536];
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0)
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(fd, buf + off, (size_t)(n - off));

			if (w <= 0)
				goto out;
			off += w;
		}
out:
	close(fd);
	return NULL;
}

static void *echo_accept(void *arg)
{
	int lfd = (int)(intptr_t)arg, fd;
	pthread_t t;

	while ((fd = accept(lfd, NULL, NULL)) >= 0) {
		if (pthread_create(&t, NULL, echo_conn, (void *)(intptr_t)fd))
			close(fd);
		else
			pthread_detach(t);
	}
	return NULL;
}

/* A listening echo server on 127.0.0.1; its port. */
static int echo_start(int *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	pthread_t t;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, 16) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0 ||
	    pthread_create(&t, NULL, echo_accept, (void *)(intptr_t)fd))
		return -1;
	pthread_detach(t);
	*port = ntohs(sa.sin_port);
	return fd;
}

/* --- the proxy -------------------------------------------------------- */

/*
 * Run the proxy with @args (NULL-terminated, after -l and -u); *port gets
 * its listening port from its first line.  Its pid, or -1.
 */
static pid_t proxy_start(int echo_port, const char *const *args, int *port)
{
	char up[32], line[128];
	const char *argv[32];
	int p[2], n = 0;
	size_t len = 0;
	pid_t pid;

	snprintf(up, sizeof(up), "127.0.0.1:%d", echo_port);
	argv[n++] = PROXY;
	argv[n++] = "-l";
	argv[n++] = "127.0.0.1:0";
	argv[n++] = "-u";
	argv[n++] = up;
	while (args && *args && n < 30)
		argv[n++] = *args++;
	argv[n] = NULL;
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		execv(PROXY, (char **)argv);
		_exit(127);
	}
	close(p[1]);
	while (len < sizeof(line) - 1) {
		struct pollfd pf = { .fd = p[0], .events = POLLIN };
		ssize_t r;

		if (poll(&pf, 1, 5000) != 1)
			break;
		r = read(p[0], line + len, 1);
		if (r != 1)
			break;
		if (line[len++] == '\n')
			break;
	}
	line[len] = '\0';
	close(p[0]);
	if (sscanf(line, "faultproxy: listening on 127.0.0.1:%d", port) != 1) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return -1;
	}
	return pid;
}

static int tcp_connect(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -1;
	return fd;
}

/* One command on the control socket at @path; its answer in @out. */
static int control(const char *path, const char *cmd, char *out, size_t len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t got = 0;
	int fd;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    write(fd, cmd, strlen(cmd)) != (ssize_t)strlen(cmd) ||
	    write(fd, "\n", 1) != 1)
		return -1;
	while (got < len - 1) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&pf, 1, 5000) != 1)
			break;
		r = read(fd, out + got, len - 1 - got);
		if (r <= 0)
			break;
		got += (size_t)r;
		if (out[got - 1] == '\n')
			break;
	}
	close(fd);
	out[got] = '\0';
	if (got && out[got - 1] == '\n')
		out[got - 1] = '\0';
	return 0;
}

/* Read exactly @len bytes within @ms; bytes read. */
static size_t read_full(int fd, void *buf, size_t len, int ms)
{
	size_t got = 0;

	while (got < len) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&pf, 1, ms) != 1)
			break;
		r = read(fd, (char *)buf + got, len - got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	return got;
}

struct sender {
	int fd;
	const unsigned char *buf;
	size_t len;
};

static void *send_all(void *arg)
{
	struct sender *s = arg;

	for (size_t off = 0; off < s->len;) {
		ssize_t w = write(s->fd, s->buf + off, s->len - off);

		if (w <= 0)
			break;
		off += (size_t)w;
	}
	return NULL;
}

FIXTURE(px) {
	int echo_fd, echo_port, port;
	pid_t pid;
	char dir[64], ctl[128];
};

FIXTURE_SETUP(px)
{
	ASSERT_EQ(0, access(PROXY, X_OK)) TH_LOG("%s not built (make userspace)", PROXY);
	strcpy(self->dir, "/tmp/faultproxy_test.XXXXXX");
	ASSERT_NE(NULL, mkdtemp(self->dir));
	snprintf(self->ctl, sizeof(self->ctl), "%s/ctl.sock", self->dir);
	self->echo_fd = echo_start(&self->echo_port);
	ASSERT_LE(0, self->echo_fd);
	self->pid = -1;
	signal(SIGPIPE, SIG_IGN);
}

FIXTURE_TEARDOWN(px)
{
	if (self->pid > 0) {
		kill(self->pid, SIGTERM);
		waitpid(self->pid, NULL, 0);
	}
	unlink(self->ctl);
	rmdir(self->dir);
	close(self->echo_fd);
}

#define START(...) do { \
	const char *const _a[] = { "--control", self->ctl, __VA_ARGS__, NULL }; \
	self->pid = proxy_start(self->echo_port, _a, &self->port); \
	ASSERT_LT(0, self->pid); \
} while (0)

TEST_F(px, latency_100ms_delays_a_round_trip_at_least_200ms)
{
	uint64_t t0, t1;
	char b = 'x';
	int fd;

	START("--latency-ms", "100");
	fd = tcp_connect(self->port);
	ASSERT_LE(0, fd);
	t0 = now_ms();
	ASSERT_EQ(1, write(fd, &b, 1));
	ASSERT_EQ(1, read_full(fd, &b, 1, 5000));
	t1 = now_ms();
	EXPECT_EQ('x', b);
	EXPECT_GE(t1 - t0, 200);
	close(fd);
}

TEST_F(px, one_megabyte_arrives_intact_and_in_order_under_jitter)
{
	const size_t len = 1 << 20;
	unsigned char *out = malloc(len), *in = malloc(len);
	struct sender s;
	pthread_t t;
	int fd;

	ASSERT_NE(NULL, out);
	ASSERT_NE(NULL, in);
	srandom(42);
	for (size_t i = 0; i < len; i++)
		out[i] = (unsigned char)random();
	START("--latency-ms", "20", "--jitter-ms", "15");
	fd = tcp_connect(self->port);
	ASSERT_LE(0, fd);
	s = (struct sender){ fd, out, len };
	ASSERT_EQ(0, pthread_create(&t, NULL, send_all, &s));
	EXPECT_EQ(len, read_full(fd, in, len, 10000));
	pthread_join(t, NULL);
	EXPECT_EQ(0, memcmp(out, in, len));
	close(fd);
	free(out);
	free(in);
}

TEST_F(px, blackhole_holds_everything_and_off_resumes)
{
	char ans[256], buf[16];
	int fd;

	START("--latency-ms", "0");
	fd = tcp_connect(self->port);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, control(self->ctl, "blackhole on", ans, sizeof(ans)));
	EXPECT_STREQ("ok", ans);
	ASSERT_EQ(10, write(fd, "0123456789", 10));
	EXPECT_EQ(0, read_full(fd, buf, 10, 500));	/* the read times out */
	ASSERT_EQ(0, control(self->ctl, "show", ans, sizeof(ans)));
	EXPECT_STREQ("latency_ms=0 jitter_ms=0 rate_kbit=0 drop_pct=0 blackhole=on connections=1",
		     ans);
	ASSERT_EQ(0, control(self->ctl, "blackhole off", ans, sizeof(ans)));
	EXPECT_STREQ("ok", ans);
	ASSERT_EQ(10, read_full(fd, buf, 10, 5000));
	EXPECT_EQ(0, memcmp(buf, "0123456789", 10));
	close(fd);
}

TEST_F(px, latency_set_live_applies_to_new_data)
{
	uint64_t t0;
	char ans[64], b = 'y';
	int fd;

	START("--latency-ms", "0");
	fd = tcp_connect(self->port);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, control(self->ctl, "set latency_ms 150", ans, sizeof(ans)));
	EXPECT_STREQ("ok", ans);
	t0 = now_ms();
	ASSERT_EQ(1, write(fd, &b, 1));
	ASSERT_EQ(1, read_full(fd, &b, 1, 5000));
	EXPECT_GE(now_ms() - t0, 300);
	close(fd);
}

TEST_F(px, rate_limit_1024kbit_takes_256k_at_least_1500ms)
{
	const size_t len = 256 << 10;
	unsigned char *out = malloc(len), *in = malloc(len);
	struct sender s;
	uint64_t t0;
	pthread_t t;
	int fd;

	ASSERT_NE(NULL, out);
	ASSERT_NE(NULL, in);
	for (size_t i = 0; i < len; i++)
		out[i] = (unsigned char)(i * 7);
	START("--rate-kbit", "1024");
	fd = tcp_connect(self->port);
	ASSERT_LE(0, fd);
	t0 = now_ms();
	s = (struct sender){ fd, out, len };
	ASSERT_EQ(0, pthread_create(&t, NULL, send_all, &s));
	EXPECT_EQ(len, read_full(fd, in, len, 20000));
	EXPECT_GE(now_ms() - t0, 1500);
	pthread_join(t, NULL);
	EXPECT_EQ(0, memcmp(out, in, len));
	close(fd);
	free(out);
	free(in);
}

/* The peer of a reset connection sees ECONNRESET (or, at worst, EOF). */
static int reset_seen(int fd)
{
	struct pollfd pf = { .fd = fd, .events = POLLIN };
	char b;

	if (poll(&pf, 1, 5000) != 1)
		return 0;
	return read(fd, &b, 1) < 0 ? errno == ECONNRESET : 1;
}

TEST_F(px, drop_pct_100_resets_new_connections)
{
	int fd;

	START("--drop-pct", "100");
	fd = tcp_connect(self->port);
	ASSERT_LE(0, fd);
	EXPECT_TRUE(reset_seen(fd));
	close(fd);
}

TEST_F(px, reset_and_drop_pct_reset_open_connections)
{
	char ans[64], b = 'z';
	int fd;

	START("--latency-ms", "0");
	fd = tcp_connect(self->port);
	ASSERT_LE(0, fd);
	ASSERT_EQ(1, write(fd, &b, 1));
	ASSERT_EQ(1, read_full(fd, &b, 1, 5000));	/* established */
	ASSERT_EQ(0, control(self->ctl, "reset", ans, sizeof(ans)));
	EXPECT_STREQ("ok", ans);
	EXPECT_TRUE(reset_seen(fd));
	close(fd);
	fd = tcp_connect(self->port);
	ASSERT_LE(0, fd);
	ASSERT_EQ(1, write(fd, &b, 1));
	ASSERT_EQ(1, read_full(fd, &b, 1, 5000));
	ASSERT_EQ(0, control(self->ctl, "set drop_pct 100", ans, sizeof(ans)));
	EXPECT_TRUE(reset_seen(fd));
	close(fd);
}

TEST_F(px, bad_control_commands_get_an_error_line)
{
	char ans[256];

	START("--latency-ms", "0");
	ASSERT_EQ(0, control(self->ctl, "set latency_ms 60001", ans, sizeof(ans)));
	EXPECT_STREQ("error: bad value '60001' for latency_ms (0..60000)", ans);
	ASSERT_EQ(0, control(self->ctl, "set colour blue", ans, sizeof(ans)));
	EXPECT_STREQ("error: unknown setting 'colour'", ans);
	ASSERT_EQ(0, control(self->ctl, "set latency_ms", ans, sizeof(ans)));
	EXPECT_STREQ("error: expected 'set NAME VALUE'", ans);
	ASSERT_EQ(0, control(self->ctl, "blackhole maybe", ans, sizeof(ans)));
	EXPECT_STREQ("error: unknown command 'blackhole maybe'", ans);
	ASSERT_EQ(0, control(self->ctl, "set rate_kbit 64", ans, sizeof(ans)));
	ASSERT_EQ(0, control(self->ctl, "show", ans, sizeof(ans)));
	EXPECT_STREQ("latency_ms=0 jitter_ms=0 rate_kbit=64 drop_pct=0 blackhole=off connections=0",
		     ans);
}

TEST_F(px, refused_upstream_closes_the_client)
{
	const char *const args[] = { NULL };
	char b;
	int fd, port, dead;

	/* An upstream port nobody listens on: the echo's, closed. */
	dead = self->echo_port;
	close(self->echo_fd);
	self->echo_fd = -1;
	self->pid = proxy_start(dead, args, &port);
	ASSERT_LT(0, self->pid);
	fd = tcp_connect(port);
	ASSERT_LE(0, fd);
	EXPECT_EQ(1, read_full(fd, &b, 1, 5000) == 0);
	close(fd);
}

/* Run the proxy with @argv; its exit status and stderr's first line. */
static int run_bad(const char *const *argv, char *err, size_t len)
{
	int p[2], st;
	ssize_t n;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		dup2(p[1], 2);
		execv(PROXY, (char **)argv);
		_exit(127);
	}
	close(p[1]);
	n = read_full(p[0], err, len - 1, 5000);
	close(p[0]);
	err[n > 0 ? n : 0] = '\0';
	if (n > 0 && err[n - 1] == '\n')
		err[n - 1] = '\0';
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

TEST(bad_arguments_are_one_exact_line_and_exit_2)
{
	static const struct {
		const char *argv[10];
		const char *msg;
	} bad[] = {
		{ { PROXY, NULL }, "faultproxy: -l ADDR:PORT is required" },
		{ { PROXY, "-l", "127.0.0.1:0", NULL },
		  "faultproxy: -u HOST:PORT is required" },
		{ { PROXY, "-l", "127.0.0.1:0", "-u", "127.0.0.1:1", "--latency-ms", "x", NULL },
		  "faultproxy: bad value 'x' for --latency-ms: not a number" },
		{ { PROXY, "-l", "127.0.0.1:0", "-u", "127.0.0.1:1", "--latency-ms", "60001", NULL },
		  "faultproxy: bad value '60001' for --latency-ms: out of range (0..60000)" },
		{ { PROXY, "-l", "127.0.0.1:0", "-u", "127.0.0.1:1", "--drop-pct", "-1", NULL },
		  "faultproxy: bad value '-1' for --drop-pct: not a number" },
		{ { PROXY, "-l", "127.0.0.1:0", "-u", "127.0.0.1:1", "--rate-kbit", "99999999999", NULL },
		  "faultproxy: bad value '99999999999' for --rate-kbit: out of range (0..10000000)" },
		{ { PROXY, "-l", "127.0.0.1:0", "-u", "127.0.0.1:1", "--latency-ms", "10", "--jitter-ms", "20", NULL },
		  "faultproxy: --jitter-ms (20) is greater than --latency-ms (10)" },
		{ { PROXY, "-l", "localhost:80", "-u", "127.0.0.1:1", NULL },
		  "faultproxy: bad address 'localhost:80' for -l: expected IPV4:PORT or [IPV6]:PORT" },
		{ { PROXY, "-l", "127.0.0.1", "-u", "127.0.0.1:1", NULL },
		  "faultproxy: bad address '127.0.0.1' for -l: expected IPV4:PORT or [IPV6]:PORT" },
		{ { PROXY, "-l", "127.0.0.1:0", "-u", "127.0.0.1:70000", NULL },
		  "faultproxy: bad address '127.0.0.1:70000' for -u: expected HOST:PORT or [IPV6]:PORT" },
		{ { PROXY, "-l", "127.0.0.1:0", "-u", "127.0.0.1:1", "--bogus", NULL },
		  "faultproxy: unknown option '--bogus'" },
		{ { PROXY, "-l", "127.0.0.1:0", "-u", "127.0.0.1:1", "--latency-ms", NULL },
		  "faultproxy: option '--latency-ms' needs a value" },
		{ { PROXY, "-l", "127.0.0.1:0", "-u", "127.0.0.1:1", "extra", NULL },
		  "faultproxy: unexpected argument 'extra'" },
		{ { PROXY, "-l", "127.0.0.1:0", "-u", "127.0.0.1:1", "--control", "", NULL },
		  "faultproxy: bad value '' for --control: must be 1..107 characters" },
	};
	char err[512];

	ASSERT_EQ(0, access(PROXY, X_OK)) TH_LOG("%s not built (make userspace)", PROXY);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		EXPECT_EQ(2, run_bad(bad[i].argv, err, sizeof(err)))
			TH_LOG("%s", bad[i].msg);
		EXPECT_STREQ(bad[i].msg, err);
	}
}

TEST_HARNESS_MAIN
