// SPDX-License-Identifier: GPL-2.0-only
/*
 * drill_canary: encode and recognise canary payloads (drill_canary.h).
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <xxhash.h>

#include "drill_canary.h"

static void put32(unsigned char *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, sizeof(v));
}

static void put64(unsigned char *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, sizeof(v));
}

static uint32_t get32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static uint64_t get64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

/* The padding's XXH64, seeded with that of the header's first 40 bytes. */
static uint64_t canary_hash(const unsigned char *p, size_t len)
{
	return XXH64(p + DRILL_CANARY_HDR, len - DRILL_CANARY_HDR,
		     XXH64(p, 40, 0));
}

int drill_canary_encode(const struct drill_canary *c, void *buf, size_t len)
{
	unsigned char *p = buf;
	if (len < DRILL_CANARY_HDR || len > DRILL_CANARY_MAX)
		return -EINVAL;
	memcpy(p, DRILL_CANARY_MAGIC, 5);
	memset(p + 5, 0, 3);
	put64(p + 8, c->drill_id);
	put32(p + 16, c->writer);
	put32(p + 20, (uint32_t)len);
	put64(p + 24, c->seq);
	put64(p + 32, c->sent_ns);
	for (size_t i = DRILL_CANARY_HDR; i < len; i++)
		p[i] = (unsigned char)('a' + i % 26);
	put64(p + 40, canary_hash(p, len));
	return 0;
}

int drill_canary_decode(const void *buf, size_t len, struct drill_canary *out)
{
	static const unsigned char zero[3];
	const unsigned char *p = buf;

	if (len < DRILL_CANARY_HDR || len > DRILL_CANARY_MAX ||
	    memcmp(p, DRILL_CANARY_MAGIC, 5) || memcmp(p + 5, zero, 3) ||
	    get32(p + 20) != len)
		return -EBADMSG;
	if (canary_hash(p, len) != get64(p + 40))
		return -EBADMSG;
	out->drill_id = get64(p + 8);
	out->writer = get32(p + 16);
	out->seq = get64(p + 24);
	out->sent_ns = get64(p + 32);
	return 0;
}

void drill_id_format(uint64_t id, char buf[DRILL_ID_HEX + 1])
{
	snprintf(buf, DRILL_ID_HEX + 1, "%016llx", (unsigned long long)id);
}

int drill_id_parse(const char *s, uint64_t *id)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < DRILL_ID_HEX; i++) {
		char ch = s[i];
		unsigned int d;

		if (ch >= '0' && ch <= '9')
			d = (unsigned int)(ch - '0');
		else if (ch >= 'a' && ch <= 'f')
			d = (unsigned int)(ch - 'a' + 10);
		else if (ch >= 'A' && ch <= 'F')
			d = (unsigned int)(ch - 'A' + 10);
		else
			return -EINVAL;
		v = v << 4 | d;
	}
	if (s[i])
		return -EINVAL;
	*id = v;
	return 0;
}
