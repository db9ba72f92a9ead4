/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * drill_canary: the payload of a drill's canary event.  Canaries travel
 * the same path as real events (the device or the ingest socket, the
 * spool, the regions' streams) and are told apart downstream by their
 * header, so a drill can run beside production traffic.
 *
 * Layout (little-endian, docs/DRILLS.md):
 *
 *	off  size
 *	  0     5  magic "EVRC1"
 *	  5     3  zero
 *	  8     8  drill id (printed as 16 hex digits)
 *	 16     4  writer
 *	 20     4  length of the whole payload (the drill's traffic.size)
 *	 24     8  sequence, per writer, from 0
 *	 32     8  sent_ns, CLOCK_REALTIME (compared with a stream's stored
 *		   time, which is the server's wall clock)
 *	 40     8  XXH64 of bytes [48, length) seeded with the XXH64
 *		   (seed 0) of bytes [0, 40)
 *	 48   ...  padding: byte i is 'a' + i % 26
 *
 * Guarantees:
 *  - drill_canary_encode() fills exactly @len bytes (48..16M).
 *  - drill_canary_decode() accepts only what encode produced: any other
 *    payload (too short, another magic, a length that is not the
 *    payload's, a non-zero reserved byte, a wrong hash) is -EBADMSG, so a
 *    real event is never taken for a canary; *out is written only on
 *    success.
 */
#ifndef EVRINGD_DRILL_CANARY_H
#define EVRINGD_DRILL_CANARY_H

#include <stddef.h>
#include <stdint.h>

#define DRILL_CANARY_MAGIC	"EVRC1"
#define DRILL_CANARY_HDR	48		/* bytes */
#define DRILL_CANARY_MAX	(16u << 20)
#define DRILL_ID_HEX		16		/* digits, without the NUL */

struct drill_canary {
	uint64_t drill_id;
	uint32_t writer;
	uint64_t seq;
	uint64_t sent_ns;
};

/* -EINVAL when @len is outside 48..16M; else 0 with @buf filled. */
int drill_canary_encode(const struct drill_canary *c, void *buf, size_t len);

/* 0 and *out, or -EBADMSG: not a canary. */
int drill_canary_decode(const void *buf, size_t len, struct drill_canary *out);

/* @id as 16 lowercase hex digits and a NUL. */
void drill_id_format(uint64_t id, char buf[DRILL_ID_HEX + 1]);

/* Exactly 16 hex digits (either case), or -EINVAL. */
int drill_id_parse(const char *s, uint64_t *id);

#endif /* EVRINGD_DRILL_CANARY_H */
