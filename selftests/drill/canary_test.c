// SPDX-License-Identifier: GPL-2.0-only
/*
 * canary_test: daemon/drill_canary.c against daemon/drill_canary.h and the
 * layout in docs/DRILLS.md: a round trip at every size class, the exact
 * bytes of the header, and every payload that is not a canary (truncated,
 * padded, foreign, one bit flipped anywhere) refused with -EBADMSG and the
 * output left alone.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "drill_canary.h"
#include "kselftest_harness.h"

/* The harness compares with ==: literals against unsigned fields. */
#pragma GCC diagnostic ignored "-Wsign-compare"

static const struct drill_canary C = {
	.drill_id = 0x0123456789abcdefull,
	.writer = 7,
	.seq = 0x1122334455667788ull,
	.sent_ns = 1700000000123456789ull,
};

static const struct drill_canary POISON = {
	0xa5a5a5a5a5a5a5a5ull, 0xa5a5a5a5, 0xa5a5a5a5a5a5a5a5ull,
	0xa5a5a5a5a5a5a5a5ull
};

TEST(round_trip_at_every_size)
{
	static const size_t sizes[] = { 48, 49, 128, 1000, 65536, 16u << 20 };

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		unsigned char *buf = malloc(sizes[i]);
		struct drill_canary out = POISON;

		ASSERT_NE(NULL, buf);
		ASSERT_EQ(0, drill_canary_encode(&C, buf, sizes[i]));
		ASSERT_EQ(0, drill_canary_decode(buf, sizes[i], &out));
		EXPECT_EQ(C.drill_id, out.drill_id);
		EXPECT_EQ(C.writer, out.writer);
		EXPECT_EQ(C.seq, out.seq);
		EXPECT_EQ(C.sent_ns, out.sent_ns);
		free(buf);
	}
}

TEST(header_bytes_are_the_documented_layout)
{
	unsigned char b[64];

	ASSERT_EQ(0, drill_canary_encode(&C, b, sizeof(b)));
	EXPECT_EQ(0, memcmp(b, "EVRC1\0\0\0", 8));
	EXPECT_EQ(0, memcmp(b + 8, "\xef\xcd\xab\x89\x67\x45\x23\x01", 8));
	EXPECT_EQ(0, memcmp(b + 16, "\x07\0\0\0", 4));
	EXPECT_EQ(0, memcmp(b + 20, "\x40\0\0\0", 4));
	EXPECT_EQ(0, memcmp(b + 24, "\x88\x77\x66\x55\x44\x33\x22\x11", 8));
	EXPECT_EQ('a' + 48 % 26, b[48]);
	EXPECT_EQ('a' + 63 % 26, b[63]);
}

TEST(encode_refuses_sizes_outside_the_bounds)
{
	unsigned char b[48];

	EXPECT_EQ(-EINVAL, drill_canary_encode(&C, b, 47));
	EXPECT_EQ(-EINVAL, drill_canary_encode(&C, b, 0));
	EXPECT_EQ(-EINVAL, drill_canary_encode(&C, b, (16u << 20) + 1));
}

TEST(truncated_and_extended_payloads_are_ebadmsg)
{
	unsigned char b[256];
	struct drill_canary out = POISON;

	ASSERT_EQ(0, drill_canary_encode(&C, b, 128));
	for (size_t n = 0; n < 128; n++) {
		ASSERT_EQ(-EBADMSG, drill_canary_decode(b, n, &out))
			TH_LOG("len %zu", n);
	}
	ASSERT_EQ(-EBADMSG, drill_canary_decode(b, 129, &out));
	EXPECT_EQ(0, memcmp(&out, &POISON, sizeof(out)));
}

TEST(every_flipped_bit_is_ebadmsg)
{
	unsigned char b[100];
	struct drill_canary out = POISON;

	ASSERT_EQ(0, drill_canary_encode(&C, b, sizeof(b)));
	for (size_t i = 0; i < sizeof(b) * 8; i++) {
		b[i / 8] ^= 1u << (i % 8);
		ASSERT_EQ(-EBADMSG, drill_canary_decode(b, sizeof(b), &out))
			TH_LOG("bit %zu", i);
		b[i / 8] ^= 1u << (i % 8);
	}
	EXPECT_EQ(0, memcmp(&out, &POISON, sizeof(out)));
	ASSERT_EQ(0, drill_canary_decode(b, sizeof(b), &out));
}

TEST(real_events_are_not_canaries)
{
	static const char json[] =
		"{\"event\":\"login\",\"user\":\"alice\",\"ts\":1700000000,\"pad\":\"xxxxxxxx\"}";
	unsigned char zeros[128] = { 0 }, b[128];
	struct drill_canary out = POISON;

	EXPECT_EQ(-EBADMSG, drill_canary_decode(json, sizeof(json) - 1, &out));
	EXPECT_EQ(-EBADMSG, drill_canary_decode(zeros, sizeof(zeros), &out));
	/* The magic alone does not make a canary. */
	memcpy(b, zeros, sizeof(b));
	memcpy(b, "EVRC1", 5);
	b[20] = sizeof(b);
	EXPECT_EQ(-EBADMSG, drill_canary_decode(b, sizeof(b), &out));
	/* Another version of the format is not this one. */
	ASSERT_EQ(0, drill_canary_encode(&C, b, sizeof(b)));
	b[4] = '2';
	EXPECT_EQ(-EBADMSG, drill_canary_decode(b, sizeof(b), &out));
	EXPECT_EQ(0, memcmp(&out, &POISON, sizeof(out)));
}

TEST(drill_id_prints_and_parses_as_16_hex_digits)
{
	char buf[DRILL_ID_HEX + 1];
	uint64_t id = 0xa5;

	drill_id_format(0x00ab00000000cdefull, buf);
	EXPECT_STREQ("00ab00000000cdef", buf);
	ASSERT_EQ(0, drill_id_parse("00AB00000000cdef", &id));
	EXPECT_EQ(0x00ab00000000cdefull, id);
	id = 0xa5;
	EXPECT_EQ(-EINVAL, drill_id_parse("00ab00000000cde", &id));
	EXPECT_EQ(-EINVAL, drill_id_parse("00ab00000000cdef0", &id));
	EXPECT_EQ(-EINVAL, drill_id_parse("00ab00000000cdeg", &id));
	EXPECT_EQ(-EINVAL, drill_id_parse("", &id));
	EXPECT_EQ(0xa5, id);
}

TEST_HARNESS_MAIN
