/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * libevring: the userspace side of evring.ko for consumers and operators.
 *
 * Every function returns 0 (or a count) on success and -errno on failure;
 * out-parameters are written only on success; _close/_free accept NULL.
 */
#ifndef EVRING_LIB_H
#define EVRING_LIB_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <linux/evring.h>

/* --- writer: evring_writer.c ----------------------------------------- */

/*
 * A writer uses /dev/evring when it can be opened and the ingest socket
 * otherwise, so an application need not care where it runs.
 */
struct evring_writer;

/* @dev, @sock: NULL for the defaults (EVRING_DEV_PATH, EVRING_SOCK_PATH). */
int evring_writer_open(const char *dev, const char *sock,
		       struct evring_writer **out);
void evring_writer_close(struct evring_writer *w);

/* 1 when writing to the device, 0 when to the socket. */
int evring_writer_is_device(const struct evring_writer *w);

/* One event; blocks under backpressure.  Returns 0. */
int evring_writer_write(struct evring_writer *w, const void *buf, size_t len);

/*
 * Several events, in order, each atomic; returns how many were written,
 * or -errno when the first could not be.
 */
int evring_writer_write_batch(struct evring_writer *w,
			      const struct iovec *events, unsigned int n);

/*
 * Wait until every event written so far is durable: fsync(2) on the
 * device; on the socket, until the daemon's acks cover them all.
 * -ETIMEDOUT after @timeout_ms (socket; the device has its own timeout),
 * -ECONNRESET when the daemon went away before acknowledging them.
 */
int evring_writer_sync(struct evring_writer *w, int timeout_ms);

/* Events the daemon has acknowledged as durable (socket only). */
uint64_t evring_writer_acked(const struct evring_writer *w);

/* --- consumer: evring_consumer.c ------------------------------------- */

struct evring_consumer;

/*
 * Attach to @partition of the device at @dev (NULL: EVRING_DEV_PATH) and map
 * its ring.  The read position starts at the kernel's release position.
 */
int evring_consumer_open(const char *dev, unsigned int partition,
			 struct evring_consumer **out);
void evring_consumer_close(struct evring_consumer *c);

int evring_consumer_fd(const struct evring_consumer *c);
const struct evring_layout *evring_consumer_layout(const struct evring_consumer *c);

/*
 * The next committed record at the consumer's position, or NULL when there
 * is none yet.  Advances the position past the record; the record stays valid
 * until it is released.  The returned pointer is contiguous even across the
 * wrap point.
 */
const struct evring_rec *evring_consumer_next(struct evring_consumer *c);

/* The record at the consumer's position without taking it, or NULL. */
const struct evring_rec *evring_consumer_peek(struct evring_consumer *c);

/*
 * The ring bytes at position @pos, which must lie in [release_pos,
 * prod_pos]; up to data_size bytes from there are contiguous.
 */
const void *evring_consumer_at(const struct evring_consumer *c, uint64_t pos);

/* Position after the last record evring_consumer_next() returned. */
uint64_t evring_consumer_pos(const struct evring_consumer *c);

/* The kernel's producer and release positions (acquire loads). */
uint64_t evring_consumer_prod_pos(const struct evring_consumer *c);
uint64_t evring_consumer_release_pos(const struct evring_consumer *c);

/* Publish the consumer's position as read_pos (a release store). */
void evring_consumer_mark_read(struct evring_consumer *c);

/* Everything before @pos is durable: free its space, wake writers. */
int evring_consumer_release(struct evring_consumer *c, uint64_t pos);

/*
 * Mark read, then sleep until a record is committed past the position or
 * @timeout_ms passes (-1: forever).  Returns 1 when records are ready, 0 on
 * timeout.
 */
int evring_consumer_wait(struct evring_consumer *c, int timeout_ms);

/* --- generic netlink: evring_nl.c (the libmnl adapter) --------------- */

struct evring_nl;

struct evring_part_stats {
	uint32_t partition;
	uint32_t ring_size;
	uint64_t epoch;
	uint64_t produced;
	uint64_t produced_bytes;
	uint64_t released;
	uint64_t prod_pos;
	uint64_t release_pos;
	uint32_t fill;
	uint32_t fill_hwm;
	uint32_t writers_blocked;
	uint32_t consumer;
	uint32_t consumer_pid;
	uint64_t blocks;
	uint64_t eagains;
	uint64_t fsync_waits;
	uint64_t fsync_timeouts;
	uint64_t wakeups;
};

struct evring_config {
	uint64_t epoch;
	uint32_t nr_partitions;
	uint32_t ring_size;
	uint32_t max_record;
	uint32_t highwater_pct;
	uint32_t fsync_timeout_ms;
};

/* A notification from the "notify" multicast group. */
struct evring_notice {
	uint32_t cmd;		/* EVRING_CMD_HIGHWATER / _ATTACHED / _DETACHED */
	uint32_t partition;
	uint32_t fill;		/* HIGHWATER */
	uint32_t ring_size;	/* HIGHWATER */
	uint32_t pid;		/* ATTACHED / DETACHED: the consumer's tgid */
};

/* Resolve the family; -ENOENT when the module is not loaded. */
int evring_nl_open(struct evring_nl **out);
void evring_nl_close(struct evring_nl *nl);

int evring_nl_stats(struct evring_nl *nl, unsigned int partition,
		    struct evring_part_stats *out);
/* Dump every partition into @out[0..max); *n is how many there are. */
int evring_nl_stats_all(struct evring_nl *nl, struct evring_part_stats *out,
			unsigned int max, unsigned int *n);
int evring_nl_get_config(struct evring_nl *nl, struct evring_config *out);
/* Set the settable fields; 0 leaves a field unchanged. */
int evring_nl_set_config(struct evring_nl *nl, uint32_t highwater_pct,
			 uint32_t fsync_timeout_ms);

/* Join the notify group; then read with evring_nl_next_notice(). */
int evring_nl_subscribe(struct evring_nl *nl);
/*
 * Returns 1 with *out filled, 0 on timeout (@timeout_ms, -1 forever),
 * -EINVAL before evring_nl_subscribe().  Requests on the same handle do not
 * disturb queued notices.
 */
int evring_nl_next_notice(struct evring_nl *nl, int timeout_ms,
			  struct evring_notice *out);

#endif /* EVRING_LIB_H */
