/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * libevring: the userspace side of evring.ko for consumers and operators.
 *
 * Every function returns 0 (or a count) on success and -errno on failure;
 * out-parameters are written only on success; _close/_free accept NULL.
 */
#ifndef EVRING_LIB_H
#define EVRING_LIB_H

#include <stdint.h>
#include <linux/evring.h>

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
/* Returns 1 with *out filled, 0 on timeout (@timeout_ms, -1 forever). */
int evring_nl_next_notice(struct evring_nl *nl, int timeout_ms,
			  struct evring_notice *out);

#endif /* EVRING_LIB_H */
