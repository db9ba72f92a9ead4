// SPDX-License-Identifier: GPL-2.0-only
/*
 * batch: encode and decode the batch format of docs/FORMAT.md.
 *
 * The header is read and written field by field at fixed offsets in
 * little-endian, never through a C struct, so compiler layout cannot change
 * the format.  Records are copied verbatim: the ring writes them in the
 * host's byte order, which the format fixes as little-endian (see the
 * assertion below).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define XXH_STATIC_LINKING_ONLY	/* XXH64_state_t on the stack */
#include <xxhash.h>
#include <zstd.h>

#include "batch.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
	       "records are copied verbatim from the ring into a little-endian format");
_Static_assert(sizeof(struct evring_rec) == 32, "record header is 32 bytes");

/* Header offsets, version 1 (docs/FORMAT.md, "Header"). */
enum {
	OFF_MAGIC = 0,		/* 4 */
	OFF_VERSION = 4,	/* u16 */
	OFF_HDR_LEN = 6,	/* u16 */
	OFF_SOURCE = 8,		/* u8 */
	OFF_COMPRESSION = 9,	/* u8 */
	OFF_NLOSS = 10,		/* u16 */
	OFF_FLAGS = 12,		/* u32 */
	OFF_PARTITION = 16,	/* u32 */
	OFF_COUNT = 20,		/* u32 */
	OFF_EPOCH = 24,		/* u64 */
	OFF_FIRST_SEQ = 32,	/* u64 */
	OFF_STORED_LEN = 40,	/* u32 */
	OFF_RAW_LEN = 44,	/* u32 */
	OFF_RECORDS_LEN = 48,	/* u32 */
	OFF_RESERVED = 52,	/* u32, written 0, ignored */
	OFF_CHECKSUM = 56,	/* u64 */
	OFF_HOST_ID = 64,	/* BATCH_HOST_ID_MAX bytes */
};
_Static_assert(OFF_HOST_ID + BATCH_HOST_ID_MAX == BATCH_HDR_LEN, "header size");

/* Loss entry offsets. */
enum {
	LOFF_SOURCE = 0,	/* u32 */
	LOFF_PARTITION = 4,	/* u32 */
	LOFF_EPOCH = 8,		/* u64 */
	LOFF_FIRST_SEQ = 16,	/* u64 */
	LOFF_LAST_SEQ = 24,	/* u64 */
	LOFF_REASON = 32,	/* BATCH_REASON_MAX bytes */
};
_Static_assert(LOFF_REASON + BATCH_REASON_MAX == BATCH_LOSS_SIZE, "loss size");

static void put16(unsigned char *p, uint16_t v)
{
	p[0] = v;
	p[1] = v >> 8;
}

static void put32(unsigned char *p, uint32_t v)
{
	put16(p, v);
	put16(p + 2, v >> 16);
}

static void put64(unsigned char *p, uint64_t v)
{
	put32(p, v);
	put32(p + 4, v >> 32);
}

static uint16_t get16(const unsigned char *p)
{
	return p[0] | (uint16_t)p[1] << 8;
}

static uint32_t get32(const unsigned char *p)
{
	return get16(p) | (uint32_t)get16(p + 2) << 16;
}

static uint64_t get64(const unsigned char *p)
{
	return get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* The header as parsed, before the body is looked at. */
struct hdr {
	struct batch_meta meta;
	unsigned int compression;
	unsigned int nloss;
	uint32_t flags;
	size_t hdr_len;
	size_t stored_len;
	size_t raw_len;
	size_t records_len;
	const unsigned char *body;
};

static bool host_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
	       c == '-';
}

static bool reason_char_ok(char c)
{
	return c >= 0x20 && c <= 0x7e;
}

/*
 * Is the @max-byte field at @p a canonical NUL-padded text: 1..@max
 * characters all accepted by @ok, then only NULs?
 */
static bool padded_text_ok(const char *p, size_t max, bool (*ok)(char))
{
	size_t n = strnlen(p, max);

	if (!n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!ok(p[i]))
			return false;
	for (size_t i = n; i < max; i++)
		if (p[i])
			return false;
	return true;
}

/* Is @s (NUL-terminated within @max + 1 bytes) a valid text field? */
static bool text_ok(const char *s, size_t max, bool (*ok)(char))
{
	size_t n = strnlen(s, max + 1);

	if (!n || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!ok(s[i]))
			return false;
	return true;
}

/*
 * Walk @count records in the @len bytes at @p: each header within bounds,
 * len <= BATCH_RECORD_MAX, padded size within bounds, seq == first_seq + i,
 * and the last record ending exactly at @len.  Guarantees that an iterator
 * over these bytes cannot step out of them.
 */
static bool records_ok(const unsigned char *p, size_t len, uint64_t first_seq,
		       uint32_t count)
{
	size_t off = 0;

	for (uint32_t i = 0; i < count; i++) {
		struct evring_rec r;
		uint64_t sz;

		if (len - off < sizeof(r))
			return false;
		memcpy(&r, p + off, sizeof(r));
		if (r.len > BATCH_RECORD_MAX || r.seq != first_seq + i)
			return false;
		sz = EVRING_REC_SIZE(r.len);
		if (sz > len - off)
			return false;
		off += sz;
	}
	return off == len;
}

/* Is loss entry @l acceptable (source known, range ordered, reason)? */
static bool loss_ok(const struct batch_loss *l)
{
	return l->source <= BATCH_SRC_MAX && l->first_seq <= l->last_seq &&
	       text_ok(l->reason, BATCH_REASON_MAX, reason_char_ok);
}

static void loss_put(unsigned char *p, const struct batch_loss *l)
{
	memset(p, 0, BATCH_LOSS_SIZE);
	put32(p + LOFF_SOURCE, l->source);
	put32(p + LOFF_PARTITION, l->partition);
	put64(p + LOFF_EPOCH, l->epoch);
	put64(p + LOFF_FIRST_SEQ, l->first_seq);
	put64(p + LOFF_LAST_SEQ, l->last_seq);
	memcpy(p + LOFF_REASON, l->reason, strlen(l->reason));
}

static void loss_get(const unsigned char *p, struct batch_loss *l)
{
	memset(l, 0, sizeof(*l));
	l->source = get32(p + LOFF_SOURCE);
	l->partition = get32(p + LOFF_PARTITION);
	l->epoch = get64(p + LOFF_EPOCH);
	l->first_seq = get64(p + LOFF_FIRST_SEQ);
	l->last_seq = get64(p + LOFF_LAST_SEQ);
	memcpy(l->reason, p + LOFF_REASON, BATCH_REASON_MAX);
}

/*
 * xxh64 (seed 0) of the @hdr_len header bytes at @h with the checksum field
 * taken as zero, followed by the @body_len stored body bytes.
 */
static uint64_t checksum(const unsigned char *h, size_t hdr_len,
			 const unsigned char *body, size_t body_len)
{
	static const unsigned char zero[8];
	XXH64_state_t st;

	XXH64_reset(&st, 0);
	XXH64_update(&st, h, OFF_CHECKSUM);
	XXH64_update(&st, zero, sizeof(zero));
	XXH64_update(&st, h + OFF_CHECKSUM + 8, hdr_len - OFF_CHECKSUM - 8);
	XXH64_update(&st, body, body_len);
	return XXH64_digest(&st);
}

/* A compression context per thread, kept: creating one costs ~1 MiB. */
static __thread ZSTD_CCtx *zcctx;

/*
 * Compress the @raw_len bytes at @raw into @dst (capacity @cap).  Returns
 * the compressed size, or 0 when compression failed or did not shrink the
 * body (the caller then stores it raw).
 */
static size_t compress_body(void *dst, size_t cap, const void *raw,
			    size_t raw_len)
{
	size_t n;

	if (!zcctx)
		zcctx = ZSTD_createCCtx();
	if (!zcctx)
		return 0;
	n = ZSTD_compressCCtx(zcctx, dst, cap, raw, raw_len, BATCH_ZSTD_LEVEL);
	if (ZSTD_isError(n) || n >= raw_len)
		return 0;
	return n;
}

/* Validate batch_encode's arguments: 0, -EINVAL or -EMSGSIZE. */
static int encode_check(const struct batch_meta *m, const void *records,
			size_t len, const struct batch_loss *loss,
			unsigned int nloss, int compression)
{
	if (!m || m->source > BATCH_SRC_MAX || !m->first_seq ||
	    (compression != BATCH_COMP_NONE && compression != BATCH_COMP_ZSTD) ||
	    !text_ok(m->host_id, BATCH_HOST_ID_MAX, host_char_ok) ||
	    (!records && len) || (!loss && nloss) || (!m->count && !nloss) ||
	    m->first_seq + m->count < m->first_seq)
		return -EINVAL;
	if (nloss > BATCH_LOSS_MAX ||
	    len > BATCH_BODY_MAX - (size_t)nloss * BATCH_LOSS_SIZE)
		return -EMSGSIZE;
	if (!records_ok(records, len, m->first_seq, m->count))
		return -EINVAL;
	for (unsigned int i = 0; i < nloss; i++)
		if (!loss_ok(&loss[i]))
			return -EINVAL;
	return 0;
}

/* Write the version 1 header of @h into @p, checksum field zero. */
static void header_put(unsigned char *p, const struct hdr *h)
{
	memset(p, 0, BATCH_HDR_LEN);
	memcpy(p + OFF_MAGIC, BATCH_MAGIC, 4);
	put16(p + OFF_VERSION, BATCH_VERSION);
	put16(p + OFF_HDR_LEN, BATCH_HDR_LEN);
	p[OFF_SOURCE] = h->meta.source;
	p[OFF_COMPRESSION] = h->compression;
	put16(p + OFF_NLOSS, h->nloss);
	put32(p + OFF_FLAGS, h->flags);
	put32(p + OFF_PARTITION, h->meta.partition);
	put32(p + OFF_COUNT, h->meta.count);
	put64(p + OFF_EPOCH, h->meta.epoch);
	put64(p + OFF_FIRST_SEQ, h->meta.first_seq);
	put32(p + OFF_STORED_LEN, h->stored_len);
	put32(p + OFF_RAW_LEN, h->raw_len);
	put32(p + OFF_RECORDS_LEN, h->records_len);
	memcpy(p + OFF_HOST_ID, h->meta.host_id, strlen(h->meta.host_id));
}

/*
 * Guarantees: on 0, *out is a complete batch that batch_decode() accepts
 * and that describes exactly @m, the records and the loss entries; on an
 * error nothing was allocated and *out, *out_len are untouched.
 */
int batch_encode(const struct batch_meta *m, const void *records, size_t len,
		 const struct batch_loss *loss, unsigned int nloss,
		 int compression, void **out, size_t *out_len)
{
	struct hdr h = { .flags = nloss ? BATCH_F_LOSS : 0 };
	size_t raw_len = len + (size_t)nloss * BATCH_LOSS_SIZE;
	unsigned char *buf, *raw = NULL, *shrunk;
	size_t cap, clen = 0;
	int err;

	err = encode_check(m, records, len, loss, nloss, compression);
	if (err)
		return err;

	cap = raw_len;
	if (compression == BATCH_COMP_ZSTD)
		cap = ZSTD_compressBound(raw_len);
	buf = malloc(BATCH_HDR_LEN + cap);
	if (!buf)
		return -ENOMEM;

	/* The raw body: in place when stored raw, else a scratch buffer. */
	raw = buf + BATCH_HDR_LEN;
	if (compression == BATCH_COMP_ZSTD) {
		raw = malloc(raw_len ? raw_len : 1);
		if (!raw) {
			free(buf);
			return -ENOMEM;
		}
	}
	if (len)
		memcpy(raw, records, len);
	for (unsigned int i = 0; i < nloss; i++)
		loss_put(raw + len + (size_t)i * BATCH_LOSS_SIZE, &loss[i]);

	if (compression == BATCH_COMP_ZSTD) {
		clen = compress_body(buf + BATCH_HDR_LEN, cap, raw, raw_len);
		if (!clen)
			memcpy(buf + BATCH_HDR_LEN, raw, raw_len);
		free(raw);
	}

	h.meta = *m;
	h.compression = clen ? BATCH_COMP_ZSTD : BATCH_COMP_NONE;
	h.nloss = nloss;
	h.stored_len = clen ? clen : raw_len;
	h.raw_len = raw_len;
	h.records_len = len;
	header_put(buf, &h);
	put64(buf + OFF_CHECKSUM,
	      checksum(buf, BATCH_HDR_LEN, buf + BATCH_HDR_LEN, h.stored_len));

	shrunk = realloc(buf, BATCH_HDR_LEN + h.stored_len);
	if (shrunk)
		buf = shrunk;
	*out = buf;
	*out_len = BATCH_HDR_LEN + h.stored_len;
	return 0;
}

/*
 * Parse and validate the header of the @len bytes at @buf, including the
 * checksum over header and stored body; nothing of the body beyond the
 * checksum.  Guarantees on 0: every length in @h is consistent with @len
 * and the limits, and the bytes are the ones that were written.
 */
static int header_get(const unsigned char *buf, size_t len, struct hdr *h)
{
	memset(h, 0, sizeof(*h));
	if (!buf || len < OFF_SOURCE || memcmp(buf, BATCH_MAGIC, 4))
		return -EBADMSG;
	if (get16(buf + OFF_VERSION) != BATCH_VERSION)
		return -EPROTONOSUPPORT;
	h->hdr_len = get16(buf + OFF_HDR_LEN);
	if (h->hdr_len < BATCH_HDR_LEN || h->hdr_len % 8 || h->hdr_len > len)
		return -EBADMSG;

	h->meta.source = buf[OFF_SOURCE];
	h->compression = buf[OFF_COMPRESSION];
	h->nloss = get16(buf + OFF_NLOSS);
	h->flags = get32(buf + OFF_FLAGS);
	h->meta.partition = get32(buf + OFF_PARTITION);
	h->meta.count = get32(buf + OFF_COUNT);
	h->meta.epoch = get64(buf + OFF_EPOCH);
	h->meta.first_seq = get64(buf + OFF_FIRST_SEQ);
	h->stored_len = get32(buf + OFF_STORED_LEN);
	h->raw_len = get32(buf + OFF_RAW_LEN);
	h->records_len = get32(buf + OFF_RECORDS_LEN);
	memcpy(h->meta.host_id, buf + OFF_HOST_ID, BATCH_HOST_ID_MAX);
	h->body = buf + h->hdr_len;

	if (h->stored_len != len - h->hdr_len || h->raw_len > BATCH_BODY_MAX ||
	    h->records_len % EVRING_REC_ALIGN ||
	    h->raw_len != h->records_len + (size_t)h->nloss * BATCH_LOSS_SIZE)
		return -EBADMSG;
	if (checksum(buf, h->hdr_len, h->body, h->stored_len) !=
	    get64(buf + OFF_CHECKSUM))
		return -EBADMSG;

	/* Intact from here on: what is unknown is newer, not damaged. */
	if (h->compression > BATCH_COMP_ZSTD || h->flags & ~BATCH_F_KNOWN ||
	    h->meta.source > BATCH_SRC_MAX)
		return -EPROTONOSUPPORT;
	if (!!(h->flags & BATCH_F_LOSS) != !!h->nloss ||
	    h->nloss > BATCH_LOSS_MAX || (!h->meta.count && !h->nloss) ||
	    !h->meta.first_seq || h->meta.first_seq + h->meta.count <
	    h->meta.first_seq ||
	    (h->compression == BATCH_COMP_NONE && h->stored_len != h->raw_len) ||
	    !padded_text_ok((const char *)buf + OFF_HOST_ID, BATCH_HOST_ID_MAX,
			    host_char_ok))
		return -EBADMSG;
	return 0;
}

int batch_peek(const void *buf, size_t len, struct batch_meta *m)
{
	struct hdr h;
	int err;

	err = header_get(buf, len, &h);
	if (err)
		return err;
	*m = h.meta;
	return 0;
}

/*
 * Decompress the stored body of @h into a new buffer of exactly raw_len
 * bytes.  -EBADMSG unless the body is one zstd frame that announces and
 * yields exactly raw_len bytes.
 */
static int decompress_body(const struct hdr *h, void **out)
{
	unsigned long long fsz;
	size_t n;
	void *raw;

	fsz = ZSTD_getFrameContentSize(h->body, h->stored_len);
	if (fsz != h->raw_len ||
	    ZSTD_findFrameCompressedSize(h->body, h->stored_len) !=
	    h->stored_len)
		return -EBADMSG;
	raw = malloc(h->raw_len ? h->raw_len : 1);
	if (!raw)
		return -ENOMEM;
	n = ZSTD_decompress(raw, h->raw_len, h->body, h->stored_len);
	if (ZSTD_isError(n) || n != h->raw_len) {
		free(raw);
		return -EBADMSG;
	}
	*out = raw;
	return 0;
}

/*
 * Guarantees: on 0 every record and loss entry of @v has been checked, so
 * the iterator and batch_view_loss() cannot fail on it; on an error @v is
 * untouched and nothing stays allocated.
 */
int batch_decode(const void *buf, size_t len, struct batch_view *v)
{
	const unsigned char *raw;
	void *owned = NULL;
	struct hdr h;
	int err;

	err = header_get(buf, len, &h);
	if (err)
		return err;
	raw = h.body;
	if (h.compression == BATCH_COMP_ZSTD) {
		err = decompress_body(&h, &owned);
		if (err)
			return err;
		raw = owned;
	}

	err = -EBADMSG;
	if (!records_ok(raw, h.records_len, h.meta.first_seq, h.meta.count))
		goto fail;
	for (unsigned int i = 0; i < h.nloss; i++) {
		const unsigned char *p = raw + h.records_len +
					 (size_t)i * BATCH_LOSS_SIZE;
		struct batch_loss l;

		loss_get(p, &l);
		if (l.first_seq > l.last_seq ||
		    !padded_text_ok((const char *)p + LOFF_REASON,
				    BATCH_REASON_MAX, reason_char_ok))
			goto fail;
		if (l.source > BATCH_SRC_MAX) {
			err = -EPROTONOSUPPORT;
			goto fail;
		}
	}

	memset(v, 0, sizeof(*v));
	v->meta = h.meta;
	v->flags = h.flags;
	v->compression = h.compression;
	v->stored_len = h.stored_len;
	v->raw_len = h.raw_len;
	v->records = raw;
	v->records_len = h.records_len;
	v->nloss = h.nloss;
	v->loss_raw = raw + h.records_len;
	v->owned = owned;
	return 0;
fail:
	free(owned);
	return err;
}

void batch_view_release(struct batch_view *v)
{
	if (!v)
		return;
	free(v->owned);
	memset(v, 0, sizeof(*v));
}

int batch_view_loss(const struct batch_view *v, unsigned int i,
		    struct batch_loss *out)
{
	if (i >= v->nloss)
		return -ENOENT;
	loss_get((const unsigned char *)v->loss_raw +
		 (size_t)i * BATCH_LOSS_SIZE, out);
	return 0;
}

void batch_iter_init(struct batch_iter *it, const struct batch_view *v)
{
	it->p = v->records;
	it->end = it->p + v->records_len;
	it->left = v->meta.count;
}

/* Guarantees: never reads outside [p, end), whatever the bytes say. */
int batch_iter_next(struct batch_iter *it, struct evring_rec *rec,
		    const void **payload)
{
	struct evring_rec r;
	size_t room;

	if (!it->left)
		return 0;
	room = it->end - it->p;
	if (room < sizeof(r))
		return -EBADMSG;
	memcpy(&r, it->p, sizeof(r));
	if (r.len > BATCH_RECORD_MAX || EVRING_REC_SIZE(r.len) > room)
		return -EBADMSG;
	*rec = r;
	*payload = it->p + sizeof(r);
	it->p += EVRING_REC_SIZE(r.len);
	it->left--;
	return 1;
}
