// SPDX-License-Identifier: GPL-2.0-only
/*
 * ship_policy_test: the pure shipping decisions of daemon/ship_policy.h.
 *
 * Time and randomness are inputs, so every test is a fixed script: a table
 * of steps (what happens, when, and the state expected after it), or a
 * fixed xorshift sequence for the distribution properties.  Nothing here
 * sleeps or reads a clock.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ship_policy.h"

/* EXPECT_EQ(0, u64) compares an int with an unsigned value, as meant. */
#pragma GCC diagnostic ignored "-Wsign-compare"
/* Step tables leave trailing "not checked" fields out, as 0. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
/* OPTS() gives defaults that a variant overrides by naming them again. */
#pragma GCC diagnostic ignored "-Woverride-init"
#include "kselftest_harness.h"

/* A fixed pseudo-random sequence (xorshift64). */
static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static double rel_err(double a, double b)
{
	double d = a > b ? a - b : b - a;

	return d / (b > 0 ? b : -b);
}

/* ---- backoff_full_jitter ---- */

static const struct {
	uint64_t base, cap;
	unsigned int attempt;
	uint64_t bound;		/* min(cap, base << attempt) */
} backoff_cases[] = {
	{ 100, 10000, 0, 100 },
	{ 100, 10000, 3, 800 },
	{ 100, 10000, 6, 6400 },
	{ 100, 10000, 7, 10000 },	/* 12800 > cap */
	{ 100, 10000, 63, 10000 },
	{ 100, 10000, 64, 10000 },
	{ 100, 10000, 1000, 10000 },
	{ 3, 100, 5, 96 },
	{ 1, UINT64_MAX, 63, 1ull << 63 },
	{ 1, UINT64_MAX, 64, UINT64_MAX },
	{ 2, UINT64_MAX, 63, UINT64_MAX },	/* 2 << 63 overflows */
	{ UINT64_MAX - 1, UINT64_MAX, 0, UINT64_MAX - 1 },
	{ UINT64_MAX - 1, UINT64_MAX, 1, UINT64_MAX },
	{ UINT64_MAX, UINT64_MAX, 1000, UINT64_MAX },
	{ UINT64_MAX, 5, 0, 5 },
	{ 0, 1000, 5, 0 },
	{ 100, 0, 0, 0 },		/* cap 0: always 0 */
	{ 100, 0, 1000, 0 },
};

TEST(backoff_stays_within_min_of_cap_and_base_shifted_by_attempt)
{
	for (unsigned int i = 0; i < ARRAY_SIZE(backoff_cases); i++) {
		uint64_t base = backoff_cases[i].base, cap = backoff_cases[i].cap;
		unsigned int a = backoff_cases[i].attempt;
		uint64_t bound = backoff_cases[i].bound, s = 88172645463325252ull;

		ASSERT_EQ(0, backoff_full_jitter(base, cap, a, 0))
			TH_LOG("case %u: rnd 0", i);
		ASSERT_EQ(bound == UINT64_MAX ? UINT64_MAX :
			  UINT64_MAX % (bound + 1),
			  backoff_full_jitter(base, cap, a, UINT64_MAX))
			TH_LOG("case %u: rnd UINT64_MAX", i);
		/* The bound itself is reached, and nothing above it. */
		ASSERT_EQ(bound, backoff_full_jitter(base, cap, a, bound))
			TH_LOG("case %u: rnd == bound", i);
		if (bound < UINT64_MAX)
			ASSERT_EQ(0, backoff_full_jitter(base, cap, a, bound + 1))
				TH_LOG("case %u: rnd == bound + 1", i);
		for (int j = 0; j < 1000; j++) {
			uint64_t rnd = xorshift(&s);

			ASSERT_EQ(bound == UINT64_MAX ? rnd : rnd % (bound + 1),
				  backoff_full_jitter(base, cap, a, rnd))
				TH_LOG("case %u: rnd %llu", i,
				       (unsigned long long)rnd);
		}
	}
}

TEST(backoff_doubles_per_attempt_until_the_cap_then_stays)
{
	for (unsigned int a = 0; a <= 1000; a++) {
		uint64_t expect = a < 10 ? 100ull << a : 60000;

		ASSERT_EQ(expect, backoff_full_jitter(100, 60000, a, expect))
			TH_LOG("attempt %u", a);
		ASSERT_EQ(0, backoff_full_jitter(100, 60000, a, expect + 1))
			TH_LOG("attempt %u", a);
	}
}

TEST(backoff_draws_are_uniform_mean_near_half_the_bound)
{
	uint64_t s = 0x2545f4914f6cdd1dull, sum = 0, lo = 0, hi = 0;
	const uint64_t bound = 1000;	/* base 125 << 3 */
	const int draws = 10000;

	for (int i = 0; i < draws; i++) {
		uint64_t d = backoff_full_jitter(125, 5000, 3, xorshift(&s));

		ASSERT_LE(d, bound);
		sum += d;
		lo += d < bound / 10;
		hi += d > bound - bound / 10;
	}
	/* Mean within 10% of bound / 2; both ends are drawn. */
	ASSERT_GE(sum / draws, 450);
	ASSERT_LE(sum / draws, 550);
	ASSERT_GT(lo, draws / 20);
	ASSERT_GT(hi, draws / 20);
}

/* ---- token bucket ---- */

enum { TAKE, WAIT };

struct tb_step {
	int op;
	uint64_t now;
	uint64_t expect;	/* TAKE: 1 taken, 0 refused; WAIT: ms */
};

FIXTURE(bucket) {
	struct token_bucket b;
};

FIXTURE_VARIANT(bucket) {
	double rate, burst;
	uint64_t start;
	const struct tb_step *steps;
	unsigned int n;
};

#define STEPS(...) \
	.steps = (const struct tb_step[]){ __VA_ARGS__ }, \
	.n = sizeof((const struct tb_step[]){ __VA_ARGS__ }) / \
	     sizeof(struct tb_step)

/* It starts full: burst takes at once, then waits 1000 / rate. */
FIXTURE_VARIANT_ADD(bucket, starts_full_then_refills_at_rate) {
	.rate = 4, .burst = 2, .start = 1000,
	STEPS({ WAIT, 1000, 0 }, { TAKE, 1000, 1 }, { TAKE, 1000, 1 },
	      { TAKE, 1000, 0 }, { WAIT, 1000, 250 }, { WAIT, 1100, 150 },
	      { TAKE, 1249, 0 }, { WAIT, 1249, 1 }, { TAKE, 1250, 1 },
	      { TAKE, 1250, 0 }, { WAIT, 1250, 250 }, { TAKE, 1375, 0 },
	      { WAIT, 1375, 125 }, { TAKE, 1500, 1 }),
};

/* A long idle period saves at most burst tokens. */
FIXTURE_VARIANT_ADD(bucket, idle_refill_is_capped_at_burst) {
	.rate = 1000, .burst = 3, .start = 0,
	STEPS({ TAKE, 0, 1 }, { TAKE, 0, 1 }, { TAKE, 0, 1 }, { TAKE, 0, 0 },
	      { TAKE, 1000000, 1 }, { TAKE, 1000000, 1 },
	      { TAKE, 1000000, 1 }, { TAKE, 1000000, 0 },
	      { WAIT, 1000000, 1 }),
};

/* ceil((1 - tokens) * 1000 / rate) for a fractional level. */
FIXTURE_VARIANT_ADD(bucket, wait_rounds_a_fractional_deficit_up) {
	.rate = 3, .burst = 1, .start = 0,
	STEPS({ TAKE, 0, 1 }, { WAIT, 0, 334 }, { TAKE, 333, 0 },
	      { WAIT, 333, 1 }, { TAKE, 334, 1 }, { WAIT, 334, 334 }),
};

/* Ten refills of 0.1 sum to 0.9999999999999999: still a whole token. */
FIXTURE_VARIANT_ADD(bucket, refills_in_small_steps_add_up_to_a_token) {
	.rate = 10, .burst = 1, .start = 0,
	STEPS({ TAKE, 0, 1 }, { TAKE, 10, 0 }, { TAKE, 20, 0 },
	      { TAKE, 30, 0 }, { TAKE, 40, 0 }, { TAKE, 50, 0 },
	      { TAKE, 60, 0 }, { TAKE, 70, 0 }, { TAKE, 80, 0 },
	      { TAKE, 90, 0 }, { WAIT, 90, 10 }, { WAIT, 99, 1 },
	      { TAKE, 100, 1 }, { WAIT, 100, 100 }),
};

/* rate 0 is unlimited: take always succeeds, never a wait. */
FIXTURE_VARIANT_ADD(bucket, rate_zero_is_unlimited) {
	.rate = 0, .burst = 0, .start = 5,
	STEPS({ TAKE, 5, 1 }, { TAKE, 5, 1 }, { TAKE, 5, 1 }, { TAKE, 0, 1 },
	      { WAIT, 5, 0 }, { WAIT, 0, 0 }),
};

/* Backwards: no tokens (no underflow into a huge elapsed); rebased. */
FIXTURE_VARIANT_ADD(bucket, clock_backwards_adds_nothing_and_rebases) {
	.rate = 1000, .burst = 2, .start = 10000,
	STEPS({ TAKE, 10000, 1 }, { TAKE, 10000, 1 }, { TAKE, 10000, 0 },
	      { WAIT, 9000, 1 }, { TAKE, 9000, 0 }, { TAKE, 9000, 0 },
	      { WAIT, 9000, 1 }, { TAKE, 9001, 1 }, { TAKE, 9001, 0 },
	      { TAKE, 9002, 1 }),
};

/* A burst below one token never yields one. */
FIXTURE_VARIANT_ADD(bucket, burst_below_one_never_grants) {
	.rate = 10, .burst = 0.5, .start = 0,
	STEPS({ TAKE, 0, 0 }, { TAKE, 100000, 0 },
	      { WAIT, 100000, UINT64_MAX }),
};

FIXTURE_SETUP(bucket)
{
	token_bucket_init(&self->b, variant->rate, variant->burst,
			  variant->start);
}

FIXTURE_TEARDOWN(bucket)
{
}

TEST_F(bucket, steps)
{
	for (unsigned int i = 0; i < variant->n; i++) {
		const struct tb_step *st = &variant->steps[i];

		if (st->op == TAKE) {
			ASSERT_EQ(st->expect, token_bucket_take(&self->b, st->now))
				TH_LOG("step %u: take at %llu", i,
				       (unsigned long long)st->now);
		} else {
			struct token_bucket before = self->b;

			ASSERT_EQ(st->expect,
				  token_bucket_wait_ms(&self->b, st->now))
				TH_LOG("step %u: wait at %llu", i,
				       (unsigned long long)st->now);
			ASSERT_EQ(0, memcmp(&before, &self->b, sizeof(before)))
				TH_LOG("step %u: wait changed the bucket", i);
		}
	}
}

/*
 * For any rate and burst: a take at now + wait_ms succeeds, and one a
 * millisecond earlier fails, every time round, from any fractional level.
 */
TEST(bucket_wait_is_exactly_when_take_succeeds)
{
	static const double rates[] = { 0.5, 1, 3, 7, 10, 33.3, 999, 1000,
					12345 };
	static const double bursts[] = { 1, 2.5, 10 };

	for (unsigned int r = 0; r < ARRAY_SIZE(rates); r++) {
		for (unsigned int k = 0; k < ARRAY_SIZE(bursts); k++) {
			struct token_bucket b;
			uint64_t now = 12345, s = r * 31 + k + 1;

			token_bucket_init(&b, rates[r], bursts[k], now);
			while (token_bucket_take(&b, now))
				;
			for (int i = 0; i < 100; i++) {
				uint64_t w = token_bucket_wait_ms(&b, now);

				ASSERT_GT(w, 0);
				ASSERT_FALSE(token_bucket_take(&b, now + w - 1))
					TH_LOG("rate %g burst %g round %d: early",
					       rates[r], bursts[k], i);
				ASSERT_TRUE(token_bucket_take(&b, now + w))
					TH_LOG("rate %g burst %g round %d: late",
					       rates[r], bursts[k], i);
				now += w;
				/* Sometimes drain again, sometimes wait on. */
				if (xorshift(&s) & 1)
					while (token_bucket_take(&b, now))
						;
				else if (token_bucket_wait_ms(&b, now) == 0)
					while (token_bucket_take(&b, now))
						;
			}
		}
	}
}

/* ---- breaker ---- */

enum { ALLOW, ACK, FAIL };

struct br_step {
	int op;
	uint64_t now;
	uint64_t lat_us;	/* ACK */
	int allowed;		/* ALLOW: expected answer */
	enum breaker_state state;	/* after the step */
	uint64_t normal_us;	/* after the step; 0: not checked */
};

FIXTURE(breaker) {
	struct breaker b;
};

FIXTURE_VARIANT(breaker) {
	struct breaker_opts o;
	const struct br_step *steps;
	unsigned int n;
	uint64_t transitions;	/* at the end */
	const char *why;	/* at the end */
};

#define BSTEPS(...) \
	.steps = (const struct br_step[]){ __VA_ARGS__ }, \
	.n = sizeof((const struct br_step[]){ __VA_ARGS__ }) / \
	     sizeof(struct br_step)

#define OPTS(...) .o = { .failures = 3, .latency_factor = 4, .slow_acks = 3, \
			 .latency_floor_us = 1000, .open_ms = 1000, \
			 .probes = 1, __VA_ARGS__ }

#define C	BREAKER_CLOSED
#define O	BREAKER_OPEN
#define H	BREAKER_HALF_OPEN

FIXTURE_VARIANT_ADD(breaker, n_consecutive_failures_open_it) {
	OPTS(),
	BSTEPS({ ALLOW, 0, 0, 1, C }, { FAIL, 1, 0, 0, C },
	       { FAIL, 2, 0, 0, C }, { FAIL, 3, 0, 0, O },
	       { ALLOW, 3, 0, 0, O }, { ALLOW, 1002, 0, 0, O }),
	.transitions = 1,
	.why = "3 consecutive failures: timeout",
};

FIXTURE_VARIANT_ADD(breaker, a_success_resets_the_failure_count) {
	OPTS(),
	BSTEPS({ FAIL, 1, 0, 0, C }, { FAIL, 2, 0, 0, C },
	       { ACK, 3, 5000, 0, C }, { FAIL, 4, 0, 0, C },
	       { FAIL, 5, 0, 0, C }, { ACK, 6, 5000, 0, C },
	       { FAIL, 7, 0, 0, C }, { FAIL, 8, 0, 0, C },
	       { FAIL, 9, 0, 0, O }),
	.transitions = 1,
	.why = "3 consecutive failures: timeout",
};

FIXTURE_VARIANT_ADD(breaker, open_turns_half_open_after_open_ms) {
	OPTS(.probes = 2),
	BSTEPS({ FAIL, 100, 0, 0, C }, { FAIL, 100, 0, 0, C },
	       { FAIL, 100, 0, 0, O }, { ALLOW, 500, 0, 0, O },
	       { ALLOW, 1099, 0, 0, O }, { ALLOW, 1100, 0, 1, H },
	       { ALLOW, 1100, 0, 1, H }, { ALLOW, 1101, 0, 0, H },
	       { ALLOW, 5000, 0, 0, H }),
	.transitions = 1,
	.why = "3 consecutive failures: timeout",
};

/* A probe's success closes it and it stays closed under failures < n. */
FIXTURE_VARIANT_ADD(breaker, half_open_success_closes_with_counts_reset) {
	OPTS(),
	BSTEPS({ FAIL, 0, 0, 0, C }, { FAIL, 0, 0, 0, C },
	       { FAIL, 0, 0, 0, O }, { ALLOW, 1000, 0, 1, H },
	       { ACK, 1010, 9000, 0, C }, { ALLOW, 1011, 0, 1, C },
	       { ALLOW, 1011, 0, 1, C }, { FAIL, 1012, 0, 0, C },
	       { FAIL, 1013, 0, 0, C }, { FAIL, 1014, 0, 0, O }),
	.transitions = 2,
	.why = "3 consecutive failures: timeout",
};

/* A probe's failure reopens it at that moment, for open_ms again. */
FIXTURE_VARIANT_ADD(breaker, half_open_failure_reopens_at_now) {
	OPTS(),
	BSTEPS({ FAIL, 0, 0, 0, C }, { FAIL, 0, 0, 0, C },
	       { FAIL, 0, 0, 0, O }, { ALLOW, 1500, 0, 1, H },
	       { FAIL, 1700, 0, 0, O }, { ALLOW, 2699, 0, 0, O },
	       { ALLOW, 2700, 0, 1, H }),
	.transitions = 2,
	.why = "probe failed: timeout",
};

FIXTURE_VARIANT_ADD(breaker, half_open_lets_through_probes_then_again_after_reopen) {
	OPTS(.probes = 3),
	BSTEPS({ FAIL, 0, 0, 0, C }, { FAIL, 0, 0, 0, C },
	       { FAIL, 0, 0, 0, O }, { ALLOW, 1000, 0, 1, H },
	       { ALLOW, 1000, 0, 1, H }, { ALLOW, 1000, 0, 1, H },
	       { ALLOW, 1000, 0, 0, H }, { FAIL, 1001, 0, 0, O },
	       { ALLOW, 2001, 0, 1, H }, { ALLOW, 2001, 0, 1, H },
	       { ALLOW, 2001, 0, 1, H }, { ALLOW, 2001, 0, 0, H }),
	.transitions = 2,
	.why = "probe failed: timeout",
};

FIXTURE_VARIANT_ADD(breaker, probes_zero_counts_as_one) {
	OPTS(.probes = 0),
	BSTEPS({ FAIL, 0, 0, 0, C }, { FAIL, 0, 0, 0, C },
	       { FAIL, 0, 0, 0, O }, { ALLOW, 1000, 0, 1, H },
	       { ALLOW, 1000, 0, 0, H }),
	.transitions = 1,
	.why = "3 consecutive failures: timeout",
};

/* Results of requests sent before it opened change nothing. */
FIXTURE_VARIANT_ADD(breaker, late_results_while_open_are_ignored) {
	OPTS(),
	BSTEPS({ FAIL, 0, 0, 0, C }, { FAIL, 0, 0, 0, C },
	       { FAIL, 10, 0, 0, O }, { ACK, 20, 1000, 0, O },
	       { FAIL, 500, 0, 0, O }, { ACK, 600, 1000, 0, O },
	       { ALLOW, 1009, 0, 0, O }, { ALLOW, 1010, 0, 1, H }),
	.transitions = 1,
	.why = "3 consecutive failures: timeout",
};

/* A clock before opened_ms must not wrap into "open_ms has passed". */
FIXTURE_VARIANT_ADD(breaker, clock_before_opened_ms_keeps_it_open) {
	OPTS(),
	BSTEPS({ FAIL, 5000, 0, 0, C }, { FAIL, 5000, 0, 0, C },
	       { FAIL, 5000, 0, 0, O }, { ALLOW, 0, 0, 0, O },
	       { ALLOW, 4999, 0, 0, O }, { ALLOW, 6000, 0, 1, H }),
	.transitions = 1,
	.why = "3 consecutive failures: timeout",
};

FIXTURE_VARIANT_ADD(breaker, failures_zero_never_opens_on_failures) {
	OPTS(.failures = 0),
	BSTEPS({ FAIL, 0, 0, 0, C }, { FAIL, 0, 0, 0, C },
	       { FAIL, 0, 0, 0, C }, { FAIL, 0, 0, 0, C },
	       { FAIL, 0, 0, 0, C }, { ALLOW, 0, 0, 1, C }),
	.transitions = 0,
	.why = "",
};

/*
 * The first ack seeds normal_us; then normal += (lat - normal) / 8 for each
 * ack that is not slow; slow acks are not averaged in.
 */
FIXTURE_VARIANT_ADD(breaker, normal_latency_is_an_ewma_of_non_slow_acks) {
	OPTS(),
	BSTEPS({ ACK, 0, 8000, 0, C, 8000 }, { ACK, 1, 16000, 0, C, 9000 },
	       { ACK, 2, 1000, 0, C, 8000 }, { ACK, 3, 8007, 0, C, 8000 },
	       { ACK, 4, 40000, 0, C, 8000 },	/* slow: 40000 > 32000 */
	       { ACK, 5, 32000, 0, C, 11000 }),	/* not slow: not > */
	.transitions = 0,
	.why = "",
};

/* slow_acks acks in a row above factor x normal open it. */
FIXTURE_VARIANT_ADD(breaker, consecutive_slow_acks_open_it) {
	OPTS(),
	BSTEPS({ ACK, 0, 10000, 0, C, 10000 }, { ACK, 1, 10000, 0, C },
	       { ACK, 2, 50000, 0, C, 10000 }, { ACK, 3, 50000, 0, C },
	       { ACK, 4, 10000, 0, C, 10000 },	/* breaks the run */
	       { ACK, 5, 50000, 0, C }, { ACK, 6, 50000, 0, C },
	       { ACK, 7, 123000, 0, O }, { ALLOW, 8, 0, 0, O }),
	.transitions = 1,
	.why = "acks 12x slower than normal (123 ms vs 10 ms)",
};

/* Below the floor an ack is never slow, however fast normal is. */
FIXTURE_VARIANT_ADD(breaker, latency_floor_bounds_slowness_from_below) {
	OPTS(.slow_acks = 1, .latency_floor_us = 5000),
	BSTEPS({ ACK, 0, 100, 0, C, 100 }, { ACK, 1, 4000, 0, C, 587 },
	       { ACK, 2, 5000, 0, C, 1138 }, { ACK, 3, 5001, 0, O }),
	.transitions = 1,
	.why = "acks 4x slower than normal (5 ms vs 1 ms)",
};

FIXTURE_VARIANT_ADD(breaker, sub_millisecond_normal_is_shown_in_us) {
	OPTS(.slow_acks = 2, .latency_floor_us = 0),
	BSTEPS({ ACK, 0, 400, 0, C, 400 }, { ACK, 1, 90000, 0, C, 400 },
	       { ACK, 2, 90000, 0, O }),
	.transitions = 1,
	.why = "acks 225x slower than normal (90 ms vs 400 us)",
};

/* Failures are not acks: they neither break nor extend a slow run. */
FIXTURE_VARIANT_ADD(breaker, slow_acks_count_across_failures_and_reset_them) {
	OPTS(.failures = 2, .slow_acks = 2),
	BSTEPS({ ACK, 0, 10000, 0, C }, { FAIL, 1, 0, 0, C },
	       { ACK, 2, 90000, 0, C }, { FAIL, 3, 0, 0, C },
	       { ACK, 4, 90000, 0, O }),
	.transitions = 1,
	.why = "acks 9x slower than normal (90 ms vs 10 ms)",
};

/* normal_us survives an opening: the next slow run is judged against it. */
FIXTURE_VARIANT_ADD(breaker, normal_latency_is_kept_across_half_open) {
	OPTS(.slow_acks = 1),
	BSTEPS({ ACK, 0, 10000, 0, C, 10000 }, { FAIL, 1, 0, 0, C },
	       { FAIL, 2, 0, 0, C }, { FAIL, 3, 0, 0, O, 10000 },
	       { ALLOW, 1003, 0, 1, H },
	       { ACK, 1004, 900000, 0, C, 10000 },	/* probe: not averaged */
	       { ACK, 1005, 40000, 0, C, 13750 },
	       { ACK, 1006, 60000, 0, O }),
	.transitions = 2,
	.why = "acks 4x slower than normal (60 ms vs 14 ms)",
};

FIXTURE_VARIANT_ADD(breaker, factor_zero_never_opens_on_latency) {
	OPTS(.latency_factor = 0, .slow_acks = 1),
	BSTEPS({ ACK, 0, 10, 0, C }, { ACK, 1, 10000000, 0, C },
	       { ACK, 2, 10000000, 0, C }),
	.transitions = 0,
	.why = "",
};

FIXTURE_SETUP(breaker)
{
	memset(&self->b, 0xa5, sizeof(self->b));	/* init writes all */
	breaker_init(&self->b, &variant->o);
}

FIXTURE_TEARDOWN(breaker)
{
}

TEST_F(breaker, steps)
{
	ASSERT_EQ(BREAKER_CLOSED, self->b.state);
	ASSERT_EQ(0, self->b.transitions);
	ASSERT_STREQ("", self->b.why);
	for (unsigned int i = 0; i < variant->n; i++) {
		const struct br_step *st = &variant->steps[i];

		switch (st->op) {
		case ALLOW:
			ASSERT_EQ(st->allowed, breaker_allow(&self->b, st->now))
				TH_LOG("step %u: allow at %llu", i,
				       (unsigned long long)st->now);
			break;
		case ACK:
			breaker_success(&self->b, st->lat_us, st->now);
			break;
		case FAIL:
			breaker_failure(&self->b, "timeout", st->now);
			break;
		}
		ASSERT_STREQ(breaker_state_name(st->state),
			     breaker_state_name(self->b.state))
			TH_LOG("step %u", i);
		if (st->normal_us)
			ASSERT_EQ(st->normal_us, self->b.normal_us)
				TH_LOG("step %u", i);
	}
	ASSERT_EQ(variant->transitions, self->b.transitions);
	ASSERT_STREQ(variant->why, self->b.why);
}

TEST(breaker_state_names)
{
	ASSERT_STREQ("closed", breaker_state_name(BREAKER_CLOSED));
	ASSERT_STREQ("open", breaker_state_name(BREAKER_OPEN));
	ASSERT_STREQ("half-open", breaker_state_name(BREAKER_HALF_OPEN));
}

TEST(breaker_long_reason_is_truncated_and_terminated)
{
	struct breaker_opts o = { .failures = 1, .open_ms = 10, .probes = 1 };
	const char *prefix = "1 consecutive failures: ";
	struct breaker b;
	char why[300];

	memset(why, 'x', sizeof(why) - 1);
	why[sizeof(why) - 1] = 0;
	breaker_init(&b, &o);
	breaker_failure(&b, why, 0);
	ASSERT_EQ(BREAKER_OPEN, b.state);
	ASSERT_EQ(sizeof(b.why) - 1, strlen(b.why));
	ASSERT_EQ(0, strncmp(b.why, prefix, strlen(prefix)));

	/* No reason given: still a readable one. */
	breaker_init(&b, &o);
	breaker_failure(&b, NULL, 0);
	ASSERT_STREQ("1 consecutive failures: unknown error", b.why);
}

/* ---- AIMD ---- */

enum { ON_TIME, SLOW, ERR };

struct aimd_step {
	int op;
	uint64_t now;
	unsigned int repeat;	/* 0 counts as 1 */
	unsigned int window;	/* after the step(s) */
};

FIXTURE(aimd) {
	struct aimd w;
};

FIXTURE_VARIANT(aimd) {
	unsigned int min, max;
	uint64_t cool_ms;
	const struct aimd_step *steps;
	unsigned int n;
};

#define ASTEPS(...) \
	.steps = (const struct aimd_step[]){ __VA_ARGS__ }, \
	.n = sizeof((const struct aimd_step[]){ __VA_ARGS__ }) / \
	     sizeof(struct aimd_step)

#define SLOW_US	50000

/* +1 after `window` on-time acks: 1 ack at 1, 2 at 2, 3 at 3; max holds. */
FIXTURE_VARIANT_ADD(aimd, additive_increase_per_window_up_to_max) {
	.min = 1, .max = 4, .cool_ms = 100,
	ASTEPS({ ON_TIME, 0, 1, 2 }, { ON_TIME, 0, 1, 2 }, { ON_TIME, 0, 1, 3 },
	       { ON_TIME, 0, 2, 3 }, { ON_TIME, 0, 1, 4 },
	       { ON_TIME, 0, 100, 4 }),
};

FIXTURE_VARIANT_ADD(aimd, starts_at_min) {
	.min = 5, .max = 10, .cool_ms = 100,
	ASTEPS({ ON_TIME, 0, 4, 5 }, { ON_TIME, 0, 1, 6 }),
};

/* 1+2+...+7 = 28 acks from 1 to 8; then halves, never below min. */
FIXTURE_VARIANT_ADD(aimd, error_halves_once_per_cool_period_down_to_min) {
	.min = 1, .max = 16, .cool_ms = 100,
	ASTEPS({ ON_TIME, 0, 28, 8 }, { ERR, 1000, 1, 4 },
	       { ERR, 1099, 1, 4 }, { ERR, 1100, 1, 2 }, { ERR, 1200, 1, 1 },
	       { ERR, 1300, 1, 1 }),
};

/* Many failures of one in-flight window: one cut. */
FIXTURE_VARIANT_ADD(aimd, burst_of_failures_from_one_window_cuts_once) {
	.min = 1, .max = 16, .cool_ms = 100,
	ASTEPS({ ON_TIME, 0, 28, 8 }, { ERR, 500, 8, 4 },
	       { SLOW, 550, 8, 4 }, { ERR, 599, 8, 4 }, { SLOW, 600, 1, 2 }),
};

/* An ack slower than slow_us is a cut; exactly slow_us is on time. */
FIXTURE_VARIANT_ADD(aimd, slow_ack_halves_and_slow_us_itself_is_on_time) {
	.min = 2, .max = 16, .cool_ms = 0,
	ASTEPS({ ON_TIME, 0, 2 + 3 + 4 + 5 + 6 + 7, 8 },
	       { SLOW, 1, 1, 4 }, { SLOW, 1, 1, 2 }, { SLOW, 1, 1, 2 }),
};

FIXTURE_VARIANT_ADD(aimd, halving_stops_at_min) {
	.min = 3, .max = 16, .cool_ms = 0,
	ASTEPS({ ON_TIME, 0, 3 + 4, 5 }, { ERR, 1, 1, 3 }, { ERR, 2, 1, 3 }),
};

/* Progress toward the next +1 is lost on a cut; slow acks add none. */
FIXTURE_VARIANT_ADD(aimd, cut_resets_progress_and_slow_acks_do_not_count) {
	.min = 1, .max = 16, .cool_ms = 100,
	ASTEPS({ ON_TIME, 0, 1 + 2 + 3, 4 }, { ON_TIME, 0, 3, 4 },
	       { ERR, 10, 1, 2 }, { ON_TIME, 11, 1, 2 },
	       { SLOW, 12, 5, 2 },	/* in cool: neither cut nor +1 */
	       { ON_TIME, 13, 1, 3 }),
};

/* A clock gone backwards does not suppress cuts forever. */
FIXTURE_VARIANT_ADD(aimd, clock_backwards_allows_a_cut) {
	.min = 1, .max = 16, .cool_ms = 1000,
	ASTEPS({ ON_TIME, 0, 28, 8 }, { ERR, 50000, 1, 4 },
	       { ERR, 10, 1, 2 }, { ERR, 11, 1, 2 }),
};

/* min 0 would stop shipping: it counts as 1; max below min is min. */
FIXTURE_VARIANT_ADD(aimd, min_zero_is_one_and_max_below_min_is_min) {
	.min = 0, .max = 0, .cool_ms = 0,
	ASTEPS({ ON_TIME, 0, 0, 1 }, { ON_TIME, 0, 10, 1 }, { ERR, 0, 1, 1 }),
};

FIXTURE_SETUP(aimd)
{
	memset(&self->w, 0xa5, sizeof(self->w));	/* init writes all */
	aimd_init(&self->w, variant->min, variant->max, SLOW_US,
		  variant->cool_ms);
}

FIXTURE_TEARDOWN(aimd)
{
}

TEST_F(aimd, steps)
{
	ASSERT_EQ(variant->min ? variant->min : 1, self->w.window);
	for (unsigned int i = 0; i < variant->n; i++) {
		const struct aimd_step *st = &variant->steps[i];

		for (unsigned int r = 0; r < (st->repeat ? st->repeat : 1); r++) {
			switch (st->op) {
			case ON_TIME:
				aimd_ack(&self->w, SLOW_US, st->now);
				break;
			case SLOW:
				aimd_ack(&self->w, SLOW_US + 1, st->now);
				break;
			case ERR:
				aimd_error(&self->w, st->now);
				break;
			}
			ASSERT_GE(self->w.window, self->w.min);
			ASSERT_LE(self->w.window, self->w.max);
		}
		ASSERT_EQ(st->window, self->w.window) TH_LOG("step %u", i);
	}
}

/* ---- rendezvous ---- */

/*
 * The hash as ship_policy.h documents it, written again here: FNV-1a 64
 * over key, 0, name; splitmix64's finaliser.
 */
static uint64_t doc_hash(const char *key, const char *name)
{
	unsigned char buf[256];
	size_t kl = strlen(key), nl = strlen(name);
	uint64_t h = 0xcbf29ce484222325ull;

	memcpy(buf, key, kl);
	buf[kl] = 0;
	memcpy(buf + kl + 1, name, nl);
	for (size_t i = 0; i < kl + 1 + nl; i++) {
		h ^= buf[i];
		h *= 0x100000001b3ull;
	}
	h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
	h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
	return h ^ (h >> 31);
}

/*
 * Pinned values: every daemon must agree on homes, so the hash can never
 * change.  score is -1 / ln(h), computed with libm's log() when pinned.
 */
static const struct {
	const char *key, *name;
	uint64_t hash;
	double score;
} golden[] = {
	{ "kmod-0", "eu-west", 0x13575cc51c716852ull, 0.38715619506005222 },
	{ "kmod-0", "us-east", 0x17f407615627fb4eull, 0.42210586166900815 },
	{ "kmod-0", "ap-south", 0xebebf5392b262e16ull, 12.243284433936507 },
	{ "kmod-0", "", 0x7f432477ae623038ull, 1.4307639138689932 },
	{ "kmod-3", "eu-west", 0xd4345ab9970b3d24ull, 5.3297242419195809 },
	{ "kmod-3", "us-east", 0x513b4754517348f3ull, 0.87117603099237262 },
	{ "kmod-3", "ap-south", 0x219e3bdb95bebff4ull, 0.49258346469941466 },
	{ "bpf-1", "eu-west", 0x12d52aec2af76b1full, 0.38320291974874221 },
	{ "bpf-1", "us-east", 0x4698e52e97962c21ull, 0.77628523472181132 },
	{ "bpf-1", "ap-south", 0xcfe19f43d74dd0c5ull, 4.8028426960824655 },
	{ "sock-0", "eu-west", 0xb8ad6c662eb52be5ull, 3.0621612525077824 },
	{ "sock-0", "us-east", 0x676476a100e3ce5cull, 1.1029667479459371 },
	{ "", "eu-west", 0xd6ebe3bf72040ae5ull, 5.7173940066040903 },
	{ "", "", 0x25fc6dd36ce04b20ull, 0.52412043212388715 },
};

TEST(rendezvous_hash_and_score_are_pinned)
{
	for (unsigned int i = 0; i < ARRAY_SIZE(golden); i++) {
		const char *k = golden[i].key, *n = golden[i].name;

		ASSERT_EQ(golden[i].hash, doc_hash(k, n)) TH_LOG("case %u", i);
		ASSERT_LT(rel_err(rendezvous_score(k, n, 1), golden[i].score),
			  1e-14) TH_LOG("case %u", i);
		ASSERT_LT(rel_err(rendezvous_score(k, n, 3),
				  3 * golden[i].score), 1e-14)
			TH_LOG("case %u", i);
		ASSERT_TRUE(rendezvous_score(k, n, 0) == 0);
	}
	/* The 0 byte separates key from name: "ab"+"c" is not "a"+"bc". */
	ASSERT_NE(doc_hash("ab", "c"), doc_hash("a", "bc"));
	ASSERT_TRUE(rendezvous_score("ab", "c", 1) !=
		    rendezvous_score("a", "bc", 1));
	/* Pinned order: kmod-3 lives in eu-west, then us-east, ap-south. */
	{
		const char *names[] = { "us-east", "ap-south", "eu-west" };
		unsigned int w[] = { 1, 1, 1 }, order[3];

		rendezvous_rank("kmod-3", names, w, 3, order);
		ASSERT_EQ(2, order[0]);
		ASSERT_EQ(0, order[1]);
		ASSERT_EQ(1, order[2]);
	}
}

static const char *const regions[] = {
	"eu-west", "us-east", "ap-south", "eu-north", "sa-east",
};

static void key_name(char *buf, size_t len, unsigned int i)
{
	snprintf(buf, len, "kmod-%u", i);
}

TEST(rendezvous_ranks_every_region_once_best_score_first)
{
	unsigned int w[] = { 1, 2, 1, 5, 1 }, order[5], again[5];
	char key[32];

	for (unsigned int k = 0; k < 2000; k++) {
		unsigned int seen = 0;

		key_name(key, sizeof(key), k);
		memset(order, 0xa5, sizeof(order));
		rendezvous_rank(key, regions, w, 5, order);
		rendezvous_rank(key, regions, w, 5, again);
		ASSERT_EQ(0, memcmp(order, again, sizeof(order)));
		for (unsigned int i = 0; i < 5; i++) {
			ASSERT_LT(order[i], 5);
			ASSERT_FALSE(seen & 1u << order[i]);
			seen |= 1u << order[i];
			if (i)
				ASSERT_TRUE(rendezvous_score(key,
						regions[order[i - 1]],
						w[order[i - 1]]) >=
					    rendezvous_score(key,
						regions[order[i]],
						w[order[i]]));
		}
		ASSERT_EQ(0x1f, seen);
	}
}

/* The order does not depend on the order regions are listed in. */
TEST(rendezvous_choice_is_independent_of_listing_order)
{
	const char *rev[5];
	unsigned int w[] = { 1, 1, 1, 1, 1 }, a[5], b[5];
	char key[32];

	for (unsigned int i = 0; i < 5; i++)
		rev[i] = regions[4 - i];
	for (unsigned int k = 0; k < 2000; k++) {
		key_name(key, sizeof(key), k);
		rendezvous_rank(key, regions, w, 5, a);
		rendezvous_rank(key, rev, w, 5, b);
		for (unsigned int i = 0; i < 5; i++)
			ASSERT_EQ(a[i], 4 - b[i]);
	}
}

/*
 * Removing a region moves only the keys it was top for; every other
 * region keeps its relative order for every key.
 */
TEST(rendezvous_removing_a_region_moves_only_its_keys)
{
	unsigned int w[] = { 1, 2, 1, 3, 1 }, full[5], part[4];
	unsigned int moved = 0;
	char key[32];

	for (unsigned int gone = 0; gone < 5; gone++) {
		const char *names[4];
		unsigned int pw[4], map[4], n = 0;

		for (unsigned int i = 0; i < 5; i++) {
			if (i == gone)
				continue;
			names[n] = regions[i];
			pw[n] = w[i];
			map[n++] = i;
		}
		for (unsigned int k = 0; k < 2000; k++) {
			unsigned int j = 0;

			key_name(key, sizeof(key), k);
			rendezvous_rank(key, regions, w, 5, full);
			rendezvous_rank(key, names, pw, 4, part);
			if (full[0] == gone)
				moved++;
			else
				ASSERT_EQ(full[0], map[part[0]])
					TH_LOG("key %s, %s removed", key,
					       regions[gone]);
			for (unsigned int i = 0; i < 5; i++)
				if (full[i] != gone)
					ASSERT_EQ(full[i], map[part[j++]]);
		}
	}
	/* The property was exercised: each region tops some keys. */
	ASSERT_GT(moved, 1000);
}

/* Also when the last of n is dropped by passing n - 1. */
TEST(rendezvous_passing_n_minus_1_drops_the_last_region)
{
	unsigned int w[] = { 1, 1, 1, 1, 1 }, full[5], part[4], had = 0;
	char key[32];

	for (unsigned int k = 0; k < 2000; k++) {
		key_name(key, sizeof(key), k);
		rendezvous_rank(key, regions, w, 5, full);
		rendezvous_rank(key, regions, w, 4, part);
		if (full[0] == 4) {
			had++;
			ASSERT_EQ(full[1], part[0]);
		} else {
			ASSERT_EQ(full[0], part[0]);
		}
	}
	ASSERT_GT(had, 300);
	ASSERT_LT(had, 500);
}

static unsigned int top_share(const unsigned int *w, unsigned int keys,
			      unsigned int region)
{
	const char *names[] = { "eu-west", "us-east" };
	unsigned int order[2], wins = 0;
	char key[32];

	for (unsigned int k = 0; k < keys; k++) {
		key_name(key, sizeof(key), k);
		rendezvous_rank(key, names, w, 2, order);
		wins += order[0] == region;
	}
	return wins;
}

TEST(rendezvous_weight_3_wins_three_quarters_of_keys)
{
	unsigned int w[] = { 1, 3 }, wins = top_share(w, 20000, 1);

	ASSERT_GE(wins, 14000);
	ASSERT_LE(wins, 16000);
}

TEST(rendezvous_equal_weights_split_evenly)
{
	unsigned int w[] = { 7, 7 }, wins = top_share(w, 20000, 0);

	ASSERT_GE(wins, 9000);
	ASSERT_LE(wins, 11000);
}

TEST(rendezvous_weight_zero_ranks_after_every_positive_weight)
{
	unsigned int w[] = { 0, 1, 0, 2, 1 }, zero[] = { 0, 0, 0, 0, 0 };
	unsigned int order[5];
	char key[32];

	for (unsigned int k = 0; k < 2000; k++) {
		key_name(key, sizeof(key), k);
		rendezvous_rank(key, regions, w, 5, order);
		ASSERT_NE(0, w[order[0]]);
		ASSERT_NE(0, w[order[1]]);
		ASSERT_NE(0, w[order[2]]);
		/* Zero-weight regions tie at score 0: by index. */
		ASSERT_EQ(0, order[3]);
		ASSERT_EQ(2, order[4]);
		rendezvous_rank(key, regions, zero, 5, order);
		for (unsigned int i = 0; i < 5; i++)
			ASSERT_EQ(i, order[i]);
	}
}

TEST(rendezvous_ties_rank_by_index)
{
	const char *same[] = { "eu-west", "eu-west", "eu-west" };
	unsigned int w[] = { 2, 2, 2 }, order[3];

	rendezvous_rank("kmod-1", same, w, 3, order);
	ASSERT_EQ(0, order[0]);
	ASSERT_EQ(1, order[1]);
	ASSERT_EQ(2, order[2]);
}

TEST(rendezvous_zero_and_one_region)
{
	unsigned int w[] = { 1 }, order[1] = { 0xa5a5a5a5 };

	rendezvous_rank("kmod-1", regions, w, 0, order);
	ASSERT_EQ(0xa5a5a5a5, order[0]);	/* nothing written */
	rendezvous_rank("kmod-1", regions, w, 1, order);
	ASSERT_EQ(0, order[0]);
}

TEST_HARNESS_MAIN
