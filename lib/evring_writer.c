// SPDX-License-Identifier: GPL-2.0-only
/*
 * The application side: write events to /dev/evring, or to evringd's ingest
 * socket where the module is not loaded.
 *
 * On the socket, every sent event is counted; the daemon acknowledges events
 * cumulatively once they are durable, and evring_writer_sync() waits until
 * the count acknowledged reaches the count sent.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include "evring.h"
#include <evring_socket.h>

struct evring_writer {
	int fd;
	int is_device;
	uint64_t sent;		/* socket: events sent */
	uint64_t acked;		/* socket: events acknowledged durable */
	int error;		/* socket: the daemon's ERROR, or 0 */
};

static int connect_socket(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	return fd;
}

int evring_writer_open(const char *dev, const char *sock,
		       struct evring_writer **out)
{
	struct evring_writer *w = calloc(1, sizeof(*w));
	int fd;

	if (!w)
		return -ENOMEM;
	fd = open(dev ? dev : EVRING_DEV_PATH, O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		w->is_device = 1;
	} else {
		fd = connect_socket(sock ? sock : EVRING_SOCK_PATH);
		if (fd < 0) {
			free(w);
			return fd;
		}
	}
	w->fd = fd;
	*out = w;
	return 0;
}

void evring_writer_close(struct evring_writer *w)
{
	if (!w)
		return;
	close(w->fd);
	free(w);
}

int evring_writer_is_device(const struct evring_writer *w)
{
	return w->is_device;
}

uint64_t evring_writer_acked(const struct evring_writer *w)
{
	return w->acked;
}

/*
 * Read whatever replies are queued (waiting up to @timeout_ms for the
 * first when @timeout_ms != 0).  Returns 0, or -errno when the daemon
 * reported an error or went away.
 */
static int read_replies(struct evring_writer *w, int timeout_ms)
{
	struct evring_sock_reply r;
	ssize_t n;

	for (;;) {
		struct pollfd pfd = { .fd = w->fd, .events = POLLIN };
		int ready = poll(&pfd, 1, timeout_ms);

		if (ready < 0 && errno == EINTR)
			continue;
		if (ready < 0)
			return -errno;
		if (!ready)
			return 0;
		n = recv(w->fd, &r, sizeof(r), MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		if (n < 0)
			return -errno;
		if (n == 0)
			return w->error ? -w->error : -ECONNRESET;
		if (n != sizeof(r))
			return -EPROTO;
		if (r.type == EVRING_SOCK_ERROR)
			w->error = r.error ? r.error : EPROTO;
		else if (r.type == EVRING_SOCK_ACK && r.acked > w->acked)
			w->acked = r.acked;
		timeout_ms = 0;
	}
}

int evring_writer_write(struct evring_writer *w, const void *buf, size_t len)
{
	int ret;

	if (w->is_device)
		return write(w->fd, buf, len) < 0 ? -errno : 0;
	if (w->error)
		return -w->error;
	if (!len)
		return -EINVAL;
	if (send(w->fd, buf, len, MSG_NOSIGNAL) < 0)
		return -errno;
	w->sent++;
	/* Keep the reply direction drained; acks are cumulative. */
	ret = read_replies(w, 0);
	return ret == -ECONNRESET ? 0 : ret;
}

int evring_writer_write_batch(struct evring_writer *w,
			      const struct iovec *events, unsigned int n)
{
	unsigned int done = 0;
	int ret = 0;

	if (w->is_device) {
		struct evring_iovec iov[64];

		while (done < n) {
			struct evring_batch b = { .records = (uintptr_t)iov };
			unsigned int i;

			b.count = n - done < 64 ? n - done : 64;
			for (i = 0; i < b.count; i++)
				iov[i] = (struct evring_iovec){
					.base = (uintptr_t)events[done + i].iov_base,
					.len = events[done + i].iov_len,
				};
			ret = ioctl(w->fd, EVRING_IOC_WRITE_BATCH, &b);
			if (ret < 0) {
				ret = -errno;
				break;
			}
			done += ret;
			if ((unsigned int)ret < b.count)
				break;
		}
	} else {
		for (; done < n; done++) {
			ret = evring_writer_write(w, events[done].iov_base,
						  events[done].iov_len);
			if (ret)
				break;
		}
	}
	if (done)
		return done;
	return ret < 0 ? ret : -EIO;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int evring_writer_sync(struct evring_writer *w, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	int ret;

	if (w->is_device)
		return fsync(w->fd) ? -errno : 0;
	while (w->acked < w->sent) {
		int64_t left = timeout_ms < 0 ? -1 : deadline - now_ms();

		if (timeout_ms >= 0 && left <= 0)
			return -ETIMEDOUT;
		ret = read_replies(w, (int)left);
		if (ret)
			return ret;
	}
	return 0;
}
