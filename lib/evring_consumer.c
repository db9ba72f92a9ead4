// SPDX-License-Identifier: GPL-2.0-only
/*
 * The consumer side of one evring partition: attach, map, take records in
 * order, release them once durable.
 *
 * Memory ordering: prod_pos and release_pos are published by the kernel
 * with release stores; we read them with acquire loads.  read_pos is ours,
 * published with a release store so the kernel's wake-up decision sees it.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include "evring.h"

struct evring_consumer {
	int fd;
	struct evring_layout lay;
	struct evring_cons_page *cons;		/* mapped read-write */
	void *prod_map;				/* producer page + data x2 */
	const struct evring_prod_page *prod;
	const uint8_t *data;
	uint64_t pos;				/* next record to take */
	uint64_t prod_seen;			/* last prod_pos loaded */
};

static uint64_t load_acquire(const __u64 *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

int evring_consumer_open(const char *dev, unsigned int partition,
			 struct evring_consumer **out)
{
	struct evring_attach a = { .partition = partition };
	struct evring_consumer *c;
	int ret;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->cons = MAP_FAILED;
	c->prod_map = MAP_FAILED;
	c->fd = open(dev ? dev : EVRING_DEV_PATH, O_RDWR | O_CLOEXEC);
	if (c->fd < 0)
		goto fail;
	if (ioctl(c->fd, EVRING_IOC_ATTACH, &a) ||
	    ioctl(c->fd, EVRING_IOC_LAYOUT, &c->lay))
		goto fail;
	c->cons = mmap(NULL, c->lay.cons_size, PROT_READ | PROT_WRITE,
		       MAP_SHARED, c->fd, c->lay.cons_off);
	if (c->cons == MAP_FAILED)
		goto fail;
	c->prod_map = mmap(NULL, c->lay.prod_size, PROT_READ, MAP_SHARED,
			   c->fd, c->lay.prod_off);
	if (c->prod_map == MAP_FAILED)
		goto fail;
	c->prod = c->prod_map;
	c->data = (const uint8_t *)c->prod_map + c->lay.data_off;
	/* The kernel set read_pos to release_pos when we attached. */
	c->pos = load_acquire(&c->cons->read_pos);
	c->prod_seen = c->pos;
	*out = c;
	return 0;
fail:
	ret = -errno;
	evring_consumer_close(c);
	return ret;
}

void evring_consumer_close(struct evring_consumer *c)
{
	if (!c)
		return;
	if (c->prod_map != MAP_FAILED)
		munmap(c->prod_map, c->lay.prod_size);
	if (c->cons != MAP_FAILED)
		munmap(c->cons, c->lay.cons_size);
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

int evring_consumer_fd(const struct evring_consumer *c)
{
	return c->fd;
}

const struct evring_layout *evring_consumer_layout(const struct evring_consumer *c)
{
	return &c->lay;
}

const void *evring_consumer_at(const struct evring_consumer *c, uint64_t pos)
{
	return c->data + (pos & (c->lay.data_size - 1));
}

const struct evring_rec *evring_consumer_peek(struct evring_consumer *c)
{
	if (c->pos == c->prod_seen) {
		/* Pairs with the kernel's smp_store_release() of prod_pos. */
		c->prod_seen = load_acquire(&c->prod->prod_pos);
		if (c->pos == c->prod_seen)
			return NULL;
	}
	return evring_consumer_at(c, c->pos);
}

const struct evring_rec *evring_consumer_next(struct evring_consumer *c)
{
	const struct evring_rec *rec = evring_consumer_peek(c);

	if (rec)
		c->pos += EVRING_REC_SIZE(rec->len);
	return rec;
}

uint64_t evring_consumer_pos(const struct evring_consumer *c)
{
	return c->pos;
}

uint64_t evring_consumer_prod_pos(const struct evring_consumer *c)
{
	return load_acquire(&c->prod->prod_pos);
}

uint64_t evring_consumer_release_pos(const struct evring_consumer *c)
{
	return load_acquire(&c->prod->release_pos);
}

void evring_consumer_mark_read(struct evring_consumer *c)
{
	/* Pairs with the smp_mb() before the kernel reads read_pos. */
	__atomic_store_n(&c->cons->read_pos, c->pos, __ATOMIC_RELEASE);
}

int evring_consumer_release(struct evring_consumer *c, uint64_t pos)
{
	struct evring_release r = { .pos = pos };

	return ioctl(c->fd, EVRING_IOC_RELEASE, &r) ? -errno : 0;
}

int evring_consumer_wait(struct evring_consumer *c, int timeout_ms)
{
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
	int n;

	evring_consumer_mark_read(c);
	do
		n = poll(&pfd, 1, timeout_ms);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n > 0;
}
