// SPDX-License-Identifier: GPL-2.0-only
/*
 * batch_test: the batch format of docs/FORMAT.md, through daemon/batch.h.
 *
 * The layout checks read the encoded bytes at the offsets FORMAT.md gives
 * and recompute the checksum with libxxhash directly, so the document, not
 * only the round trip, is what is tested.  Tests that need an intact batch
 * with inconsistent content edit one and reseal its checksum.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>
#include <linux/evring.h>

#include "batch.h"
#include "kselftest_harness.h"

#define POISON	0xa5

/* Payload length of record @i: 0..49 bytes, so padding varies. */
static uint32_t plen(uint32_t i)
{
	return (i * 7) % 50;
}

/*
 * Lay out @count records from @first_seq at @buf as the ring does; record
 * i has plen(i) payload bytes (or @fixed when non-zero), byte j being
 * (seq * 31 + j) & 0xff, or pseudo-random when @noise.  Returns the bytes.
 */
static size_t lay_records(void *buf, uint64_t first_seq, uint32_t count,
			  uint32_t fixed, int noise)
{
	unsigned char *p = buf;
	uint64_t rnd = first_seq * 0x9e3779b97f4a7c15ull + 1;
	size_t off = 0;

	for (uint32_t i = 0; i < count; i++) {
		struct evring_rec r = {
			.len = fixed ? fixed : plen(i),
			.seq = first_seq + i,
			.ts_ns = 1700000000000000000ull + i,
			.pid = 1000 + i,
			.uid = 0,
		};

		memset(p + off, 0, EVRING_REC_SIZE(r.len));
		memcpy(p + off, &r, sizeof(r));
		for (uint32_t j = 0; j < r.len; j++) {
			rnd ^= rnd << 13;
			rnd ^= rnd >> 7;
			rnd ^= rnd << 17;
			p[off + sizeof(r) + j] =
				noise ? rnd : (r.seq * 31 + j) & 0xff;
		}
		off += EVRING_REC_SIZE(r.len);
	}
	return off;
}

static struct batch_meta meta(uint64_t first_seq, uint32_t count)
{
	struct batch_meta m = {
		.source = BATCH_SRC_KMOD,
		.partition = 3,
		.epoch = 0xfedcba9876543210ull,
		.first_seq = first_seq,
		.count = count,
	};

	strcpy(m.host_id, "host-1.example");
	return m;
}

static struct batch_loss loss_entry(uint64_t first, uint64_t last,
				    const char *reason)
{
	struct batch_loss l = {
		.source = BATCH_SRC_BPF,
		.partition = 7,
		.epoch = 42,
		.first_seq = first,
		.last_seq = last,
	};

	snprintf(l.reason, sizeof(l.reason), "%s", reason);
	return l;
}

static uint64_t le64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint32_t le32(const unsigned char *p)
{
	return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = v >> (8 * i);
}

static void put_le64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = v >> (8 * i);
}

/* The checksum exactly as FORMAT.md defines it. */
static uint64_t doc_checksum(const unsigned char *b, size_t len)
{
	unsigned char *copy = malloc(len);
	uint64_t h;

	/* Header with the checksum field zeroed, then the stored body. */
	memcpy(copy, b, len);
	memset(copy + 56, 0, 8);
	h = XXH64(copy, len, 0);
	free(copy);
	return h;
}

/* Make an edited batch intact again: recompute and store its checksum. */
static void reseal(unsigned char *b, size_t len)
{
	put_le64(b + 56, doc_checksum(b, len));
}

/* Decode must fail with @err and leave the poisoned view untouched. */
static int decode_fails(const void *buf, size_t len, int err)
{
	struct batch_view v, poison;
	int ret;

	memset(&v, POISON, sizeof(v));
	memcpy(&poison, &v, sizeof(v));
	ret = batch_decode(buf, len, &v);
	if (ret != err)
		return ret ? ret : 1;
	return memcmp(&v, &poison, sizeof(v)) ? 2 : 0;
}

FIXTURE(codec) {
	unsigned char recs[64 * 1024];
	size_t recs_len;
};

FIXTURE_VARIANT(codec) {
	int compression;
	int noise;		/* incompressible payloads ... */
	uint32_t count;		/* ... in this many records ... */
	uint32_t fixed;		/* ... of this size (0: varying) */
};

FIXTURE_VARIANT_ADD(codec, none) {
	.compression = BATCH_COMP_NONE,
	.count = 200,
};

FIXTURE_VARIANT_ADD(codec, zstd) {
	.compression = BATCH_COMP_ZSTD,
	.count = 200,
};

/* zstd asked for, but it cannot shrink random bytes: stored raw. */
FIXTURE_VARIANT_ADD(codec, zstd_incompressible) {
	.compression = BATCH_COMP_ZSTD,
	.noise = 1,
	.count = 2,
	.fixed = 8000,
};

FIXTURE_SETUP(codec)
{
	self->recs_len = lay_records(self->recs, 100, variant->count,
				     variant->fixed, variant->noise);
}

FIXTURE_TEARDOWN(codec)
{
}

TEST_F(codec, round_trip_preserves_meta_every_record_and_every_loss_entry)
{
	struct batch_meta m = meta(100, variant->count);
	struct batch_loss loss[2] = {
		loss_entry(5, 9, "epoch change"),
		loss_entry(1, 1, "x"),
	};
	struct batch_view v;
	struct batch_iter it;
	struct evring_rec rec;
	struct batch_loss got;
	const void *payload;
	const unsigned char *src = self->recs;
	uint32_t n = 0;
	size_t len, off = 0;
	void *buf;
	int ret;

	strcpy(loss[1].reason, "0123456789abcdef0123456789abcdef");
	ASSERT_EQ(0, batch_encode(&m, self->recs, self->recs_len, loss, 2,
				  variant->compression, &buf, &len));
	ASSERT_EQ(0, batch_decode(buf, len, &v));
	EXPECT_EQ(m.source, v.meta.source);
	EXPECT_EQ(m.partition, v.meta.partition);
	EXPECT_EQ(m.epoch, v.meta.epoch);
	EXPECT_EQ(m.first_seq, v.meta.first_seq);
	EXPECT_EQ(m.count, v.meta.count);
	EXPECT_STREQ(m.host_id, v.meta.host_id);
	EXPECT_EQ(BATCH_F_LOSS, v.flags);
	EXPECT_EQ(self->recs_len, v.records_len);
	EXPECT_EQ(self->recs_len + 2 * BATCH_LOSS_SIZE, v.raw_len);
	EXPECT_EQ(BATCH_HDR_LEN + v.stored_len, len);
	if (variant->compression == BATCH_COMP_ZSTD && !variant->noise) {
		EXPECT_EQ((unsigned int)BATCH_COMP_ZSTD, v.compression);
		EXPECT_LT(v.stored_len, v.raw_len);
	} else {
		/* Not asked, or did not help: stored raw. */
		EXPECT_EQ((unsigned int)BATCH_COMP_NONE, v.compression);
		EXPECT_EQ(v.raw_len, v.stored_len);
	}
	EXPECT_EQ(0, memcmp(v.records, self->recs, self->recs_len));

	batch_iter_init(&it, &v);
	while ((ret = batch_iter_next(&it, &rec, &payload)) == 1) {
		struct evring_rec want;

		memcpy(&want, src + off, sizeof(want));
		ASSERT_EQ(100 + n, rec.seq);
		ASSERT_EQ(want.len, rec.len);
		ASSERT_EQ(want.ts_ns, rec.ts_ns);
		ASSERT_EQ(want.pid, rec.pid);
		ASSERT_EQ(0, memcmp(payload, src + off + sizeof(want),
				    rec.len));
		off += EVRING_REC_SIZE(rec.len);
		n++;
	}
	EXPECT_EQ(0, ret);
	EXPECT_EQ(variant->count, n);
	EXPECT_EQ(0, batch_iter_next(&it, &rec, &payload));

	ASSERT_EQ(2u, v.nloss);
	ASSERT_EQ(0, batch_view_loss(&v, 0, &got));
	EXPECT_EQ(0, memcmp(&loss[0], &got, sizeof(got)));
	ASSERT_EQ(0, batch_view_loss(&v, 1, &got));
	EXPECT_EQ(0, memcmp(&loss[1], &got, sizeof(got)));
	EXPECT_EQ(-ENOENT, batch_view_loss(&v, 2, &got));

	batch_view_release(&v);
	EXPECT_EQ(NULL, v.owned);
	batch_view_release(&v);		/* a released view: no-op */
	batch_view_release(NULL);
	free(buf);
}

TEST_F(codec, any_flipped_body_bit_is_ebadmsg)
{
	struct batch_meta m = meta(100, variant->count);
	size_t len, bits;
	unsigned char *b;

	ASSERT_EQ(0, batch_encode(&m, self->recs, self->recs_len, NULL, 0,
				  variant->compression, (void **)&b, &len));
	/* Every bit of the first 512 body bytes, then a stride. */
	bits = (len - BATCH_HDR_LEN) * 8;
	for (size_t bit = 0; bit < bits; bit += bit < 4096 ? 1 : 61) {
		unsigned char *p = b + BATCH_HDR_LEN + bit / 8;

		*p ^= 1u << (bit % 8);
		ASSERT_EQ(0, decode_fails(b, len, -EBADMSG))
			TH_LOG("body bit %zu", bit);
		*p ^= 1u << (bit % 8);
	}
	free(b);
}

TEST_F(codec, every_truncation_and_any_trailing_byte_is_ebadmsg)
{
	struct batch_meta m = meta(100, variant->count);
	unsigned char *b, *longer;
	size_t len;

	ASSERT_EQ(0, batch_encode(&m, self->recs, self->recs_len, NULL, 0,
				  variant->compression, (void **)&b, &len));
	for (size_t l = 0; l < len; l++) {
		ASSERT_EQ(0, decode_fails(b, l, -EBADMSG)) TH_LOG("len %zu", l);
	}
	longer = malloc(len + 8);
	memcpy(longer, b, len);
	memset(longer + len, 0, 8);
	EXPECT_EQ(0, decode_fails(longer, len + 1, -EBADMSG));
	EXPECT_EQ(0, decode_fails(longer, len + 8, -EBADMSG));
	free(longer);
	free(b);
}

/* A small uncompressed batch for the header tests. */
static unsigned char *small_batch(size_t *len, const struct batch_loss *loss,
				  unsigned int nloss)
{
	static unsigned char recs[4096];
	struct batch_meta m = meta(7, 5);
	size_t rl = lay_records(recs, 7, 5, 0, 0);
	void *b;

	if (batch_encode(&m, recs, rl, loss, nloss, BATCH_COMP_NONE, &b, len))
		return NULL;
	return b;
}

TEST(header_layout_is_as_documented_with_xxh64_over_header_and_body)
{
	struct batch_loss l = loss_entry(3, 4, "ring reset");
	size_t len, rl = 0;
	unsigned char *b = small_batch(&len, &l, 1);

	ASSERT_NE(NULL, b);
	for (uint32_t i = 0; i < 5; i++)
		rl += EVRING_REC_SIZE(plen(i));
	EXPECT_EQ(0, memcmp(b, "EVB1", 4));
	EXPECT_EQ(1, b[4] | b[5] << 8);			/* version */
	EXPECT_EQ(96, b[6] | b[7] << 8);		/* header length */
	EXPECT_EQ(BATCH_SRC_KMOD, b[8]);		/* source */
	EXPECT_EQ(BATCH_COMP_NONE, b[9]);		/* compression */
	EXPECT_EQ(1, b[10] | b[11] << 8);		/* loss entries */
	EXPECT_EQ(BATCH_F_LOSS, le32(b + 12));		/* flags */
	EXPECT_EQ(3u, le32(b + 16));			/* partition */
	EXPECT_EQ(5u, le32(b + 20));			/* count */
	EXPECT_EQ(0xfedcba9876543210ull, le64(b + 24));	/* epoch */
	EXPECT_EQ(7u, le64(b + 32));			/* first seq */
	EXPECT_EQ(len - 96, le32(b + 40));		/* stored length */
	EXPECT_EQ(rl + 64, le32(b + 44));		/* raw length */
	EXPECT_EQ(rl, le32(b + 48));			/* records length */
	EXPECT_EQ(0u, le32(b + 52));			/* reserved */
	EXPECT_EQ(doc_checksum(b, len), le64(b + 56));	/* checksum */
	EXPECT_EQ(0, memcmp(b + 64, "host-1.example", 15));
	for (int i = 64 + 14; i < 96; i++) {
		EXPECT_EQ(0, b[i]);
	}
	/* Body: the records verbatim, then the loss entry. */
	EXPECT_EQ(7u, le64(b + 96 + 8));			/* first rec seq */
	EXPECT_EQ((uint32_t)BATCH_SRC_BPF, le32(b + 96 + rl));
	EXPECT_EQ(7u, le32(b + 96 + rl + 4));
	EXPECT_EQ(42u, le64(b + 96 + rl + 8));
	EXPECT_EQ(3u, le64(b + 96 + rl + 16));
	EXPECT_EQ(4u, le64(b + 96 + rl + 24));
	EXPECT_EQ(0, memcmp(b + 96 + rl + 32, "ring reset", 11));
	free(b);
}

TEST(any_flipped_header_bit_is_rejected_version_bits_as_eprotonosupport)
{
	size_t len;
	unsigned char *b = small_batch(&len, NULL, 0);

	ASSERT_NE(NULL, b);
	for (unsigned int bit = 0; bit < BATCH_HDR_LEN * 8; bit++) {
		unsigned int byte = bit / 8;
		int want = byte == 4 || byte == 5 ? -EPROTONOSUPPORT : -EBADMSG;

		b[byte] ^= 1u << (bit % 8);
		ASSERT_EQ(0, decode_fails(b, len, want)) TH_LOG("bit %u", bit);
		b[byte] ^= 1u << (bit % 8);
	}
	{
		struct batch_view v;

		ASSERT_EQ(0, batch_decode(b, len, &v));	/* restored */
		batch_view_release(&v);
	}
	free(b);
}

TEST(bad_magic_is_ebadmsg_even_when_resealed)
{
	size_t len;
	unsigned char *b = small_batch(&len, NULL, 0);

	ASSERT_NE(NULL, b);
	memcpy(b, "EVB2", 4);
	reseal(b, len);
	EXPECT_EQ(0, decode_fails(b, len, -EBADMSG));
	memcpy(b, "evb1", 4);
	reseal(b, len);
	EXPECT_EQ(0, decode_fails(b, len, -EBADMSG));
	free(b);
}

TEST(unknown_version_is_eprotonosupport)
{
	size_t len;
	unsigned char *b = small_batch(&len, NULL, 0);

	ASSERT_NE(NULL, b);
	b[4] = 2;
	reseal(b, len);
	EXPECT_EQ(0, decode_fails(b, len, -EPROTONOSUPPORT));
	b[4] = 0;
	reseal(b, len);
	EXPECT_EQ(0, decode_fails(b, len, -EPROTONOSUPPORT));
	free(b);
}

TEST(header_length_short_unaligned_or_past_the_end_is_ebadmsg)
{
	const unsigned int bad[] = { 0, 8, 88, 95, 97, 100, 1000, 0xffff };
	size_t len;
	unsigned char *b = small_batch(&len, NULL, 0);

	ASSERT_NE(NULL, b);
	for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		b[6] = bad[i];
		b[7] = bad[i] >> 8;
		reseal(b, len);
		EXPECT_EQ(0, decode_fails(b, len, -EBADMSG))
			TH_LOG("hdr_len %u", bad[i]);
	}
	free(b);
}

TEST(a_longer_header_from_a_newer_writer_is_accepted_and_skipped)
{
	size_t len;
	unsigned char *b = small_batch(&len, NULL, 0);
	unsigned char *g = malloc(len + 16);
	struct batch_view v;

	ASSERT_NE(NULL, b);
	memcpy(g, b, 96);
	memset(g + 96, 0x77, 16);		/* fields v1 does not know */
	memcpy(g + 112, b + 96, len - 96);
	g[6] = 112;
	reseal(g, len + 16);
	ASSERT_EQ(0, batch_decode(g, len + 16, &v));
	EXPECT_EQ(5u, v.meta.count);
	EXPECT_EQ(g + 112, (const unsigned char *)v.records);
	batch_view_release(&v);
	free(g);
	free(b);
}

TEST(intact_but_inconsistent_content_is_ebadmsg)
{
	struct batch_loss l = loss_entry(3, 4, "r");
	size_t len;
	unsigned char *orig = small_batch(&len, &l, 1);
	unsigned char *b = malloc(len);
	size_t rl = le32(orig + 48);

	ASSERT_NE(NULL, orig);
#define EDIT_EXPECT(what, err, edit) do { \
		memcpy(b, orig, len); \
		edit; \
		reseal(b, len); \
		EXPECT_EQ(0, decode_fails(b, len, err)) TH_LOG("%s", what); \
	} while (0)
	EDIT_EXPECT("count + 1", -EBADMSG, put_le32(b + 20, 6));
	EDIT_EXPECT("count - 1", -EBADMSG, put_le32(b + 20, 4));
	EDIT_EXPECT("count 0", -EBADMSG, put_le32(b + 20, 0));
	EDIT_EXPECT("first_seq - 1", -EBADMSG, put_le64(b + 32, 6));
	EDIT_EXPECT("first_seq 0", -EBADMSG, put_le64(b + 32, 0));
	EDIT_EXPECT("record seq gap", -EBADMSG,
		    put_le64(b + 96 + EVRING_REC_SIZE(plen(0)) + 8, 9));
	EDIT_EXPECT("record len past the end", -EBADMSG,
		    put_le32(b + 96, 4000));
	EDIT_EXPECT("record len over BATCH_RECORD_MAX", -EBADMSG,
		    put_le32(b + 96, BATCH_RECORD_MAX + 1));
	EDIT_EXPECT("records_len short", -EBADMSG,
		    put_le32(b + 48, rl - 8));
	EDIT_EXPECT("records_len unaligned", -EBADMSG,
		    put_le32(b + 48, rl + 1));
	EDIT_EXPECT("raw_len != stored_len, uncompressed", -EBADMSG,
		    put_le32(b + 44, rl + 128));
	EDIT_EXPECT("stored_len", -EBADMSG, put_le32(b + 40, len - 96 - 8));
	EDIT_EXPECT("nloss without its bytes", -EBADMSG, b[10] = 2);
	EDIT_EXPECT("loss flag without entries", -EBADMSG,
		    (b[10] = 0, put_le32(b + 44, rl), put_le32(b + 40, rl)));
	EDIT_EXPECT("loss entries without the flag", -EBADMSG,
		    put_le32(b + 12, 0));
	EDIT_EXPECT("loss first_seq > last_seq", -EBADMSG,
		    put_le64(b + 96 + rl + 16, 5));
	EDIT_EXPECT("loss reason empty", -EBADMSG, b[96 + rl + 32] = 0);
	EDIT_EXPECT("loss reason control char", -EBADMSG,
		    b[96 + rl + 32] = '\n');
	EDIT_EXPECT("loss reason not NUL-padded", -EBADMSG,
		    b[96 + rl + 63] = 'z');
	EDIT_EXPECT("host id empty", -EBADMSG, memset(b + 64, 0, 32));
	EDIT_EXPECT("host id with '/'", -EBADMSG, b[64] = '/');
	EDIT_EXPECT("host id not NUL-padded", -EBADMSG, b[95] = 'a');
	/* Intact and consistent, but newer than this reader. */
	EDIT_EXPECT("compression 2", -EPROTONOSUPPORT, b[9] = 2);
	EDIT_EXPECT("flag bit 1", -EPROTONOSUPPORT,
		    put_le32(b + 12, BATCH_F_LOSS | 2));
	EDIT_EXPECT("source 3", -EPROTONOSUPPORT, b[8] = 3);
	EDIT_EXPECT("loss source 3", -EPROTONOSUPPORT,
		    put_le32(b + 96 + rl, 3));
#undef EDIT_EXPECT
	free(b);
	free(orig);
}

TEST(zstd_body_that_lies_about_its_size_is_ebadmsg)
{
	static unsigned char recs[16384];
	struct batch_meta m = meta(1, 100);
	size_t rl = lay_records(recs, 1, 100, 64, 0), len;
	unsigned char *b, *t;

	ASSERT_EQ(0, batch_encode(&m, recs, rl, NULL, 0, BATCH_COMP_ZSTD,
				  (void **)&b, &len));
	ASSERT_EQ(BATCH_COMP_ZSTD, b[9]);
	/* Header says a larger raw body than the frame holds. */
	put_le32(b + 44, rl + 8);
	put_le32(b + 48, rl + 8);
	reseal(b, len);
	EXPECT_EQ(0, decode_fails(b, len, -EBADMSG));
	put_le32(b + 44, rl);
	put_le32(b + 48, rl);
	/* A second frame glued after the first. */
	t = malloc(len + 16);
	memcpy(t, b, len);
	memcpy(t + len, b + 96, 16);
	put_le32(t + 40, len + 16 - 96);
	reseal(t, len + 16);
	EXPECT_EQ(0, decode_fails(t, len + 16, -EBADMSG));
	/* Not a zstd frame at all. */
	memset(b + 96, 0x42, len - 96);
	reseal(b, len);
	EXPECT_EQ(0, decode_fails(b, len, -EBADMSG));
	free(t);
	free(b);
}

/* Encode must fail with @err and leave out/out_len untouched. */
static int encode_fails(const struct batch_meta *m, const void *recs,
			size_t len, const struct batch_loss *loss,
			unsigned int nloss, int comp, int err)
{
	void *out = (void *)0x1;
	size_t out_len = 7;
	int ret = batch_encode(m, recs, len, loss, nloss, comp, &out, &out_len);

	if (ret != err) {
		if (!ret)
			free(out);
		return ret ? ret : 1;
	}
	return out != (void *)0x1 || out_len != 7 ? 2 : 0;
}

TEST(encode_rejects_inconsistent_records_with_einval)
{
	static unsigned char recs[8192];
	size_t rl = lay_records(recs, 10, 20, 0, 0);
	struct batch_meta m = meta(10, 20);
	unsigned char save[8];
	size_t rec2 = EVRING_REC_SIZE(plen(0)) + EVRING_REC_SIZE(plen(1));

	m.count = 21;
	EXPECT_EQ(0, encode_fails(&m, recs, rl, NULL, 0, 0, -EINVAL));
	m.count = 19;
	EXPECT_EQ(0, encode_fails(&m, recs, rl, NULL, 0, 0, -EINVAL));
	m = meta(11, 20);		/* records start at 10 */
	EXPECT_EQ(0, encode_fails(&m, recs, rl, NULL, 0, 0, -EINVAL));
	m = meta(10, 20);
	EXPECT_EQ(0, encode_fails(&m, recs, rl - 8, NULL, 0, 0, -EINVAL));
	EXPECT_EQ(0, encode_fails(&m, recs, rl + 8, NULL, 0, 0, -EINVAL));
	EXPECT_EQ(0, encode_fails(&m, NULL, rl, NULL, 0, 0, -EINVAL));

	memcpy(save, recs + rec2 + 8, 8);	/* third record's seq */
	put_le64(recs + rec2 + 8, 13);
	EXPECT_EQ(0, encode_fails(&m, recs, rl, NULL, 0, 0, -EINVAL));
	memcpy(recs + rec2 + 8, save, 8);
	{
		size_t len;
		void *b;

		ASSERT_EQ(0, batch_encode(&m, recs, rl, NULL, 0, 0, &b, &len));
		free(b);	/* restored: accepted */
	}

	put_le32(recs, BATCH_RECORD_MAX + 1);
	EXPECT_EQ(0, encode_fails(&m, recs, rl, NULL, 0, 0, -EINVAL));
	put_le32(recs, 0xffffffffu);
	EXPECT_EQ(0, encode_fails(&m, recs, rl, NULL, 0, 0, -EINVAL));
}

TEST(encode_rejects_bad_meta_and_loss_entries_with_exact_errno)
{
	static unsigned char recs[1024];
	size_t rl = lay_records(recs, 1, 3, 0, 0);
	struct batch_meta m = meta(1, 3), bad;
	struct batch_loss l = loss_entry(1, 2, "r"), lb;
	struct batch_loss *many = calloc(BATCH_LOSS_MAX + 1, sizeof(*many));

	bad = m, bad.source = BATCH_SRC_MAX + 1;
	EXPECT_EQ(0, encode_fails(&bad, recs, rl, NULL, 0, 0, -EINVAL));
	bad = m, bad.first_seq = 0;
	EXPECT_EQ(0, encode_fails(&bad, recs, rl, NULL, 0, 0, -EINVAL));
	bad = m, bad.host_id[0] = '\0';
	EXPECT_EQ(0, encode_fails(&bad, recs, rl, NULL, 0, 0, -EINVAL));
	bad = m, strcpy(bad.host_id, "a/b");
	EXPECT_EQ(0, encode_fails(&bad, recs, rl, NULL, 0, 0, -EINVAL));
	bad = m, strcpy(bad.host_id, "with space");
	EXPECT_EQ(0, encode_fails(&bad, recs, rl, NULL, 0, 0, -EINVAL));
	bad = m, memset(bad.host_id, 'h', sizeof(bad.host_id));
	EXPECT_EQ(0, encode_fails(&bad, recs, rl, NULL, 0, 0, -EINVAL));
	EXPECT_EQ(0, encode_fails(&m, recs, rl, NULL, 0, 2, -EINVAL));
	EXPECT_EQ(0, encode_fails(&m, recs, rl, NULL, 0, -1, -EINVAL));
	EXPECT_EQ(0, encode_fails(NULL, recs, rl, NULL, 0, 0, -EINVAL));
	bad = m, bad.count = 0;		/* nothing at all */
	EXPECT_EQ(0, encode_fails(&bad, NULL, 0, NULL, 0, 0, -EINVAL));
	EXPECT_EQ(0, encode_fails(&m, recs, rl, NULL, 1, 0, -EINVAL));

	lb = l, lb.first_seq = 3;
	EXPECT_EQ(0, encode_fails(&m, recs, rl, &lb, 1, 0, -EINVAL));
	lb = l, lb.reason[0] = '\0';
	EXPECT_EQ(0, encode_fails(&m, recs, rl, &lb, 1, 0, -EINVAL));
	lb = l, strcpy(lb.reason, "tab\there");
	EXPECT_EQ(0, encode_fails(&m, recs, rl, &lb, 1, 0, -EINVAL));
	lb = l, memset(lb.reason, 'r', sizeof(lb.reason));
	EXPECT_EQ(0, encode_fails(&m, recs, rl, &lb, 1, 0, -EINVAL));
	lb = l, lb.source = BATCH_SRC_MAX + 1;
	EXPECT_EQ(0, encode_fails(&m, recs, rl, &lb, 1, 0, -EINVAL));

	for (int i = 0; i <= BATCH_LOSS_MAX; i++)
		many[i] = l;
	EXPECT_EQ(0, encode_fails(&m, recs, rl, many, BATCH_LOSS_MAX + 1, 0,
				  -EMSGSIZE));
	EXPECT_EQ(0, encode_fails(&m, recs, BATCH_BODY_MAX + 8, NULL, 0, 0,
				  -EMSGSIZE));
	free(many);
}

TEST(a_batch_of_only_loss_entries_round_trips)
{
	struct batch_meta m = meta(50, 0);
	struct batch_loss l = loss_entry(10, 49, "module reloaded");
	struct batch_loss got;
	struct batch_view v;
	struct batch_iter it;
	struct evring_rec rec;
	const void *payload;
	size_t len;
	void *b;

	ASSERT_EQ(0, batch_encode(&m, NULL, 0, &l, 1, BATCH_COMP_ZSTD, &b,
				  &len));
	ASSERT_EQ(0, batch_decode(b, len, &v));
	EXPECT_EQ(0u, v.meta.count);
	EXPECT_EQ(0u, v.records_len);
	batch_iter_init(&it, &v);
	EXPECT_EQ(0, batch_iter_next(&it, &rec, &payload));
	ASSERT_EQ(0, batch_view_loss(&v, 0, &got));
	EXPECT_STREQ("module reloaded", got.reason);
	batch_view_release(&v);
	free(b);
}

TEST(peek_reads_the_header_and_rejects_what_decode_rejects)
{
	struct batch_meta m, poison;
	size_t len;
	unsigned char *b = small_batch(&len, NULL, 0);

	ASSERT_NE(NULL, b);
	ASSERT_EQ(0, batch_peek(b, len, &m));
	EXPECT_EQ(7u, m.first_seq);
	EXPECT_EQ(5u, m.count);
	EXPECT_EQ(3u, m.partition);
	EXPECT_STREQ("host-1.example", m.host_id);

	memset(&m, POISON, sizeof(m));
	poison = m;
	b[len - 1] ^= 1;
	EXPECT_EQ(-EBADMSG, batch_peek(b, len, &m));
	EXPECT_EQ(-EBADMSG, batch_peek(b, len - 1, &m));
	b[4] = 9;
	EXPECT_EQ(-EPROTONOSUPPORT, batch_peek(b, len, &m));
	EXPECT_EQ(0, memcmp(&m, &poison, sizeof(m)));
	free(b);
}

TEST(iterator_stops_with_ebadmsg_instead_of_reading_out_of_bounds)
{
	static unsigned char recs[1024];
	size_t rl = lay_records(recs, 1, 3, 0, 0);
	struct batch_view v = { .meta.count = 3, .records = recs };
	struct batch_iter it;
	struct evring_rec rec;
	const void *payload;

	v.records_len = rl - 8;		/* last record cut short */
	batch_iter_init(&it, &v);
	EXPECT_EQ(1, batch_iter_next(&it, &rec, &payload));
	EXPECT_EQ(1, batch_iter_next(&it, &rec, &payload));
	EXPECT_EQ(-EBADMSG, batch_iter_next(&it, &rec, &payload));

	v.records_len = 20;		/* not even a header */
	batch_iter_init(&it, &v);
	EXPECT_EQ(-EBADMSG, batch_iter_next(&it, &rec, &payload));
}

TEST(a_contiguous_ring_run_of_max_size_records_encodes)
{
	/* The device source hands the mapped ring run straight in. */
	size_t n = 3, rl = n * EVRING_REC_SIZE(BATCH_RECORD_MAX);
	unsigned char *recs = calloc(1, rl);
	struct batch_meta m = meta(1, n);
	struct batch_view v;
	size_t len;
	void *b;

	ASSERT_NE(NULL, recs);
	lay_records(recs, 1, n, BATCH_RECORD_MAX, 0);
	ASSERT_EQ(0, batch_encode(&m, recs, rl, NULL, 0, BATCH_COMP_ZSTD, &b,
				  &len));
	EXPECT_LT(len, rl);
	ASSERT_EQ(0, batch_decode(b, len, &v));
	EXPECT_EQ(0, memcmp(v.records, recs, rl));
	batch_view_release(&v);
	free(b);
	free(recs);
}

TEST_HARNESS_MAIN
