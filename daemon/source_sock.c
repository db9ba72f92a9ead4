// SPDX-License-Identifier: GPL-2.0-only
/* source_sock: see source_sock.h. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <evring_socket.h>
#include "log.h"
#include "source_sock.h"

#define SOCK_READ_BURST	64	/* messages from one client per callback */

struct sock_client {
	struct source_sock *s;
	int fd;
	pid_t pid;
	uid_t uid;
	uint64_t staged;	/* events in the current staged run */
	uint64_t acked;		/* events acknowledged durable */
	bool ack_pending;	/* the last ACK could not be sent yet */
	struct sock_client *next;
};

struct source_sock {
	struct loop *loop;
	struct drain *drain;
	struct drain_stream st;
	int lfd;
	char path[CONFIG_SUN_PATH_MAX];
	uint32_t max_event;
	uint32_t max_clients;
	unsigned int nclients;
	struct sock_client *clients;
	bool paused;
	uint8_t *buf;		/* staged records, ring layout */
	size_t cap;
};

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

static uint32_t client_events(const struct sock_client *c)
{
	return (c->ack_pending ? LOOP_OUT : 0) |
	       (c->s->paused ? 0 : LOOP_IN);
}

static void client_close(struct sock_client *c)
{
	struct sock_client **pp = &c->s->clients;

	while (*pp != c)
		pp = &(*pp)->next;
	*pp = c->next;
	loop_del_fd(c->s->loop, c->fd);
	close(c->fd);
	c->s->nclients--;
	free(c);
}

/* Tell a client why it is being dropped, then drop it. */
static void client_reject(struct sock_client *c, int err)
{
	struct evring_sock_reply r = {
		.type = EVRING_SOCK_ERROR,
		.error = err,
		.acked = c->acked,
	};

	send(c->fd, &r, sizeof(r), MSG_DONTWAIT | MSG_NOSIGNAL);
	client_close(c);
}

/* Send the cumulative ACK; retried on LOOP_OUT when the client is slow. */
static int client_ack(struct sock_client *c)
{
	struct evring_sock_reply r = {
		.type = EVRING_SOCK_ACK,
		.acked = c->acked,
	};

	if (send(c->fd, &r, sizeof(r), MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
		if (errno != EAGAIN)
			return -errno;
		c->ack_pending = true;
	} else {
		c->ack_pending = false;
	}
	/* A paused source's clients are out of the loop (sock_pause). */
	return c->s->paused ? 0 : loop_mod_fd(c->s->loop, c->fd,
						  client_events(c));
}

/* After recv() returned 0: end of file, or an empty message? */
static bool client_hung_up(const struct sock_client *c)
{
	struct pollfd pfd = { .fd = c->fd, .events = POLLRDHUP };

	return poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLRDHUP | POLLHUP));
}

/*
 * Receive one event straight into the staging buffer behind its header.
 * Returns 1 when staged, 0 when there is nothing (or no room) now, or
 * -errno for a client to drop (-EPIPE: it hung up).
 */
static int client_take(struct sock_client *c)
{
	struct source_sock *s = c->s;
	struct drain_stream *st = &s->st;
	size_t off = st->staged_len;
	struct evring_rec *rec = (void *)(s->buf + off);
	ssize_t n;

	if (off + EVRING_REC_SIZE((uint64_t)s->max_event + 1) > s->cap ||
	    !drain_has_room(s->drain, 1, EVRING_REC_SIZE(s->max_event)))
		return 0;
	n = recv(c->fd, rec + 1, s->max_event + 1, MSG_DONTWAIT | MSG_TRUNC);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	if (n == 0)
		return client_hung_up(c) ? -EPIPE : -EINVAL;	/* empty event */
	if ((size_t)n > s->max_event)
		return -EMSGSIZE;
	memset((uint8_t *)(rec + 1) + n, 0, EVRING_REC_SIZE(n) - sizeof(*rec) - n);
	rec->len = n;
	rec->flags = 0;
	rec->seq = (st->staged_count ? st->staged_last_seq : st->last_seq) + 1;
	rec->ts_ns = realtime_ns();
	rec->pid = c->pid;
	rec->uid = c->uid;
	st->staged = s->buf;
	st->staged_len += EVRING_REC_SIZE(n);
	st->staged_count++;
	st->staged_last_seq = rec->seq;
	st->staged_end = rec->seq;	/* the socket's position is its seq */
	drain_staged(s->drain, 1, EVRING_REC_SIZE(n));
	c->staged++;
	return 1;
}

static void client_on_event(struct loop *l, int fd, uint32_t events,
			    void *arg)
{
	struct sock_client *c = arg;
	struct source_sock *s = c->s;
	int ret = 0, i;

	if ((events & LOOP_OUT) && client_ack(c)) {
		client_close(c);
		return;
	}
	if (!(events & (LOOP_IN | LOOP_HUP | LOOP_ERR)) || s->paused)
		return;
	for (i = 0; i < SOCK_READ_BURST; i++) {
		ret = client_take(c);
		if (ret <= 0)
			break;
	}
	if (ret == -EPIPE)
		client_close(c);
	else if (ret < 0)
		client_reject(c, -ret);
	if (drain_kick(s->drain) == -EIO)
		loop_stop(l);
}

static void sock_on_accept(struct loop *l, int fd, uint32_t events,
			   void *arg)
{
	struct source_sock *s = arg;
	struct sock_client *c;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int cfd;

	cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (cfd < 0)
		return;
	if (s->nclients >= s->max_clients) {
		struct evring_sock_reply r = {
			.type = EVRING_SOCK_ERROR,
			.error = EUSERS,
		};

		send(cfd, &r, sizeof(r), MSG_DONTWAIT | MSG_NOSIGNAL);
		close(cfd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c || getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len))
		goto drop;
	c->s = s;
	c->fd = cfd;
	c->pid = cred.pid;
	c->uid = cred.uid;
	if (!s->paused &&
	    loop_add_fd(l, cfd, client_events(c), client_on_event, c))
		goto drop;
	c->next = s->clients;
	s->clients = c;
	s->nclients++;
	return;
drop:
	free(c);
	close(cfd);
}

static void sock_committed(struct drain_stream *st, uint64_t end,
			   uint32_t count)
{
	struct source_sock *s = st->owner;
	struct sock_client *c, *next;

	for (c = s->clients; c; c = next) {
		next = c->next;
		if (!c->staged)
			continue;
		c->acked += c->staged;
		c->staged = 0;
		if (client_ack(c))
			client_close(c);
	}
}

/*
 * While paused, clients are taken out of the loop altogether: epoll reports
 * a hang-up even for an fd registered with no events, and a paused source
 * must not read, so it would spin.  Their queued events wait in the socket.
 */
static void sock_pause(struct drain_stream *st, bool paused)
{
	struct source_sock *s = st->owner;
	struct sock_client *c, *next;

	s->paused = paused;
	for (c = s->clients; c; c = next) {
		next = c->next;
		if (paused) {
			loop_del_fd(s->loop, c->fd);
		} else if (loop_add_fd(s->loop, c->fd, client_events(c),
				       client_on_event, c)) {
			client_close(c);
		}
	}
}

static const struct drain_stream_ops sock_ops = {
	.committed = sock_committed,
	.pause = sock_pause,
};

/* Bind @path, replacing a stale socket file nobody listens on. */
static int sock_listen(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[CONFIG_SUN_PATH_MAX], *slash;
	int fd, ret;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = 0;
		mkdir(dir, 0755);
	}
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (!connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		close(fd);
		snprintf(err, errlen, "ingest socket '%s' is in use by another process", path);
		return -EADDRINUSE;
	}
	close(fd);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	unlink(path);
	/* Any local process may send events, as to /dev/log. */
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    chmod(path, 0666) || listen(fd, 128)) {
		ret = -errno;
		snprintf(err, errlen, "cannot listen on '%s': %s", path,
			 strerror(errno));
		close(fd);
		return ret;
	}
	return fd;
}

int source_sock_open(struct loop *l, struct drain *d,
		     const struct evd_config *c, struct source_sock **out,
		     char *err, size_t errlen)
{
	struct spool_checkpoint cp;
	struct source_sock *s;
	int ret;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->loop = l;
	s->drain = d;
	s->lfd = -1;
	s->max_event = c->socket_max_event;
	s->max_clients = c->socket_max_clients;
	snprintf(s->path, sizeof(s->path), "%s", c->source_socket);
	/* One commit's worth, plus the largest event that may end it. */
	s->cap = c->drain_batch_bytes + EVRING_REC_SIZE((uint64_t)s->max_event + 1);
	s->buf = malloc(s->cap);
	if (!s->buf) {
		ret = -ENOMEM;
		goto fail;
	}
	s->st.source = BATCH_SRC_SOCKET;
	s->st.partition = 0;
	s->st.ops = &sock_ops;
	s->st.owner = s;

	ret = spool_get_checkpoint(drain_spool(d), BATCH_SRC_SOCKET, 0, &cp);
	if (!ret) {
		s->st.epoch = cp.epoch;
		s->st.last_seq = cp.last_seq;
		s->st.position = cp.position;
	} else if (ret == -ENOENT) {
		uint64_t epoch = 0;

		while (!epoch)
			if (getrandom(&epoch, sizeof(epoch), 0) != sizeof(epoch))
				epoch = 0;
		drain_stream_epoch(&s->st, epoch, "socket source created");
	} else {
		snprintf(err, errlen, "cannot read the socket checkpoint: %s",
			 strerror(-ret));
		goto fail;
	}

	ret = sock_listen(s->path, err, errlen);
	if (ret < 0)
		goto fail;
	s->lfd = ret;
	ret = loop_add_fd(l, s->lfd, LOOP_IN, sock_on_accept, s);
	if (ret)
		goto fail;
	drain_add_stream(d, &s->st);
	*out = s;
	return 0;
fail:
	source_sock_close(s);
	return ret;
}

void source_sock_close(struct source_sock *s)
{
	if (!s)
		return;
	while (s->clients)
		client_close(s->clients);
	if (s->lfd >= 0) {
		loop_del_fd(s->loop, s->lfd);
		close(s->lfd);
		unlink(s->path);
	}
	free(s->buf);
	free(s);
}

unsigned int source_sock_status(struct source_sock *s,
				struct control_part_status *rows,
				unsigned int max)
{
	if (!max)
		return 0;
	snprintf(rows->source, sizeof(rows->source), "socket");
	rows->partition = 0;
	rows->epoch = s->st.epoch;
	rows->ring_fill = s->st.staged_len;
	rows->ring_size = s->cap;
	rows->read_pos = s->st.staged_count ? s->st.staged_end : s->st.position;
	rows->release_pos = s->st.position;
	rows->last_seq = s->st.last_seq;
	return 1;
}
