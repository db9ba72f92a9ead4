/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * nats_server.h: a real single nats-server process for the shipping
 * selftests (jetstream_test, ship_test, consume_test, failpoint_e2e_test).
 *
 *	struct nats_srv s;
 *
 *	nats_srv_init(&s, dir, "n1", port);	conf, log and store in dir
 *	nats_srv_write_conf(&s, "n1", 0, NULL);	or s.conf[0] = '\0': flags
 *	nats_srv_start(&s);			accepting on 127.0.0.1:port
 *	...
 *	nats_srv_kill(&s);			gone and reaped
 *
 * The binary is $NATS_SERVER, else /usr/sbin/nats-server.  A server runs
 * JetStream with its store in s->store, listens on 127.0.0.1:s->port only
 * and writes its stdout and stderr to s->log (appended).  With a config
 * file (s->conf) the file says all of that; without one (s->conf empty)
 * the command line does: -js -a 127.0.0.1 -p PORT -sd STORE.
 *
 * Guarantees: nats_srv_start() returns 0 only once the port accepts a
 * connection, and leaves no process behind when it fails (s->pid 0); a
 * started server dies with the test process (PR_SET_PDEATHSIG) even when
 * the test never reaches its teardown; nats_srv_stop()/nats_srv_kill()
 * reap it, so no zombie or listener outlives the call.  Waits are bounded
 * (NATS_SRV_START_MS) and never asserted on.
 *
 * Ports are the caller's: each test file keeps its own range, and
 * nats_port_free() picks a port of that range nobody listens on.
 * What can fail returns 0 (or the port) or -errno.
 */
#ifndef EVRING_SHIP_NATS_SERVER_H
#define EVRING_SHIP_NATS_SERVER_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#define NATS_SRV_BIN		"/usr/sbin/nats-server"
#define NATS_SRV_START_MS	10000	/* a server not accepting by then failed */

struct nats_srv {
	pid_t pid;		/* the running server, 0: none */
	int port;		/* client port on 127.0.0.1 */
	char conf[PATH_MAX];	/* config file; "": command line flags only */
	char store[PATH_MAX];	/* JetStream store directory */
	char log[PATH_MAX];	/* the server's stdout and stderr */
};

/* $NATS_SERVER when set and not empty, else NATS_SRV_BIN. */
static inline const char *nats_server_bin(void)
{
	const char *bin = getenv("NATS_SERVER");

	return bin && *bin ? bin : NATS_SRV_BIN;
}

/*
 * Connect to 127.0.0.1:@port and hang up: 0 when something accepts, else
 * the -errno of socket() or connect() (-ECONNREFUSED: nobody listens).
 */
static inline int nats_port_connect(int port)
{
	struct sockaddr_in a = {
		.sin_family = AF_INET,
		.sin_port = htons(port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int ret;

	if (fd < 0)
		return -errno;
	ret = connect(fd, (struct sockaddr *)&a, sizeof(a)) ? -errno : 0;
	close(fd);
	return ret;
}

/* Whether something on 127.0.0.1:@port accepts connections. */
static inline bool nats_port_open(int port)
{
	return nats_port_connect(port) == 0;
}

/*
 * A port of [@lo, @hi] that nobody on 127.0.0.1 listens on (connect
 * refused), trying @lo + @from % (@hi - @lo + 1) first and going on in
 * order, wrapping: the port, or -EADDRINUSE when all of them answer.
 * @from spreads concurrent processes over the range (getpid(), or 0 for
 * the first free one).
 */
static inline int nats_port_free(int lo, int hi, unsigned int from)
{
	unsigned int n = hi - lo + 1;

	for (unsigned int i = 0; i < n; i++) {
		int port = lo + (int)((from + i) % n);

		if (nats_port_connect(port) == -ECONNREFUSED)
			return port;
	}
	return -EADDRINUSE;
}

/*
 * Name the files of server @name in directory @dir, which the caller
 * makes: config @dir/@name.conf, log @dir/@name.log, store @dir/@name;
 * set the port and no process.  A caller may then change any path.
 */
static inline void nats_srv_init(struct nats_srv *s, const char *dir,
				 const char *name, int port)
{
	s->pid = 0;
	s->port = port;
	snprintf(s->conf, sizeof(s->conf), "%s/%s.conf", dir, name);
	snprintf(s->store, sizeof(s->store), "%s/%s", dir, name);
	snprintf(s->log, sizeof(s->log), "%s/%s.log", dir, name);
}

/*
 * Write s->conf (replacing it): server_name @name, listen on
 * 127.0.0.1:s->port, JetStream in s->store, max_payload @max_payload
 * when not 0, then @extra verbatim when not NULL (a cluster block, ...).
 * 0 or -errno.
 */
static inline int nats_srv_write_conf(const struct nats_srv *s,
				      const char *name, int max_payload,
				      const char *extra)
{
	FILE *f = fopen(s->conf, "w");

	if (!f)
		return -errno;
	fprintf(f, "server_name: %s\nlisten: 127.0.0.1:%d\n", name, s->port);
	fprintf(f, "jetstream {\n  store_dir: \"%s\"\n}\n", s->store);
	if (max_payload)
		fprintf(f, "max_payload: %d\n", max_payload);
	if (extra)
		fputs(extra, f);
	return fclose(f) ? -errno : 0;
}

/*
 * Send @sig to the server (SIGCONT first, in case it is stopped) and
 * reap it; s->pid is 0 after.  A server not running: nothing.
 */
static inline void nats_srv_stop(struct nats_srv *s, int sig)
{
	if (s->pid <= 0)
		return;
	kill(s->pid, SIGCONT);
	kill(s->pid, sig);
	waitpid(s->pid, NULL, 0);
	s->pid = 0;
}

/* SIGKILL and reap: no flush, no goodbye, as a crash. */
static inline void nats_srv_kill(struct nats_srv *s)
{
	nats_srv_stop(s, SIGKILL);
}

static inline uint64_t nats_srv_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Start the server described by @s (see the head comment) and wait until
 * 127.0.0.1:s->port accepts: 0 with s->pid set, or -ENOENT (no binary),
 * -errno of fork(), -ECHILD (it exited: its log says why), -ETIMEDOUT (not
 * accepting after NATS_SRV_START_MS; killed).  s->pid is 0 on failure.
 */
static inline int nats_srv_start(struct nats_srv *s)
{
	const char *bin = nats_server_bin();
	struct timespec tick = { 0, 20 * 1000 * 1000 };
	char port[16];
	uint64_t end;
	pid_t pid;

	if (access(bin, X_OK))
		return -ENOENT;
	snprintf(port, sizeof(port), "%d", s->port);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int fd = open(s->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
			      0600);

		/* dies with the test, even when setup fails half way */
		if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0 ||
		    prctl(PR_SET_PDEATHSIG, SIGKILL))
			_exit(127);
		if (s->conf[0])
			execl(bin, "nats-server", "-c", s->conf, (char *)NULL);
		else
			execl(bin, "nats-server", "-js", "-a", "127.0.0.1",
			      "-p", port, "-sd", s->store, (char *)NULL);
		_exit(127);
	}
	s->pid = pid;
	end = nats_srv_now_ms() + NATS_SRV_START_MS;
	while (!nats_port_open(s->port)) {
		if (waitpid(pid, NULL, WNOHANG) == pid) {
			s->pid = 0;
			return -ECHILD;
		}
		if (nats_srv_now_ms() > end) {
			nats_srv_kill(s);
			return -ETIMEDOUT;
		}
		nanosleep(&tick, NULL);
	}
	return 0;
}

#endif /* EVRING_SHIP_NATS_SERVER_H */
