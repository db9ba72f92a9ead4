/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The event both writers of `make bench-ship` send (bench/ship_bench.c's
 * evring writers, bench/ship_direct.c): a fixed head, then pseudo-random
 * base64 characters up to the event size (6 bits of entropy a byte, so
 * that evring's zstd-compressed batches gain little from compression: real
 * events compress better, a padding of one letter would compress ~50x).
 * The head is written in host byte order; the reader runs on the same
 * machine.  Also what else both use: the pacing, and the list of
 * server URLs for libnats.  Header-only.
 */
#ifndef EVRING_BENCH_SHIP_EVENT_H
#define EVRING_BENCH_SHIP_EVENT_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nats/nats.h>

struct ship_event {
	uint32_t writer;	/* the writer's id, 0.. */
	uint32_t pad;		/* zero */
	uint64_t counter;	/* 1.. per writer */
	uint64_t sent_ns;	/* CLOCK_REALTIME when handed to the transport */
};

static inline uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

/* Event @counter of writer @writer, @size >= sizeof(head) bytes, into @buf. */
static inline void ship_event_fill(void *buf, unsigned int size,
				   uint32_t writer, uint64_t counter)
{
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	struct ship_event ev = { .writer = writer, .counter = counter };
	uint64_t x = ((uint64_t)writer << 40) ^ counter ^ 0x9e3779b97f4a7c15ull;
	unsigned char *p = buf;

	for (unsigned int i = sizeof(ev); i < size; i++) {
		if ((i - sizeof(ev)) % 10 == 0) {	/* xorshift64: 60 bits */
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
		}
		p[i] = b64[(x >> ((i - sizeof(ev)) % 10 * 6)) & 63];
	}
	ev.sent_ns = realtime_ns();
	memcpy(buf, &ev, sizeof(ev));
}

#define SHIP_PACE_TICK_NS	1000000u	/* 1 ms */

/*
 * Paced sending at @rate events/s from CLOCK_MONOTONIC @t0: before event
 * @i (0-based), sleep until the 1 ms tick at or after its due time, so
 * that events go out in small bursts, one sleep per tick, never early.
 */
static inline void pace(uint64_t t0, uint64_t i, unsigned int rate)
{
	uint64_t due = t0 + i * 1000000000ull / rate, now;
	struct timespec ts, mono;

	clock_gettime(CLOCK_MONOTONIC, &mono);
	now = (uint64_t)mono.tv_sec * 1000000000u + mono.tv_nsec;
	if (due <= now)
		return;
	due = t0 + (due - t0 + SHIP_PACE_TICK_NS - 1) / SHIP_PACE_TICK_NS *
		   SHIP_PACE_TICK_NS;
	ts.tv_sec = due / 1000000000u;
	ts.tv_nsec = due % 1000000000u;
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

#define SHIP_URLS_MAX	8

/*
 * "u1,u2,u3" into @no: libnats 3.4's natsOptions_SetURL() takes one URL
 * only (a list fails with "no server available"), SetServers an array.
 */
static inline natsStatus ship_set_urls(natsOptions *no, const char *urls)
{
	const char *v[SHIP_URLS_MAX];
	char *copy = strdup(urls), *save = NULL, *tok;
	int n = 0;
	natsStatus s;

	if (!copy)
		return NATS_NO_MEMORY;
	for (tok = strtok_r(copy, ",", &save); tok && n < SHIP_URLS_MAX;
	     tok = strtok_r(NULL, ",", &save))
		v[n++] = tok;
	s = n ? natsOptions_SetServers(no, v, n) : NATS_INVALID_ARG;
	free(copy);
	return s;
}

#endif /* EVRING_BENCH_SHIP_EVENT_H */
