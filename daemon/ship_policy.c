// SPDX-License-Identifier: GPL-2.0-only
/*
 * ship_policy: backoff, retry budget, circuit breaker, AIMD window and
 * rendezvous hashing as pure functions (see ship_policy.h).
 *
 * Nothing here reads a clock, allocates or does I/O, and nothing links
 * libm: the one logarithm rendezvous hashing needs is computed below.
 */
#include <stdio.h>
#include <string.h>

#include "ship_policy.h"

uint64_t backoff_full_jitter(uint64_t base_ms, uint64_t cap_ms,
			     unsigned int attempt, uint64_t rnd)
{
	uint64_t bound;

	/* base << attempt <= cap iff base <= cap >> attempt: no overflow. */
	if (attempt >= 64 || base_ms > cap_ms >> attempt)
		bound = cap_ms;
	else
		bound = base_ms << attempt;
	if (bound == UINT64_MAX)
		return rnd;
	return rnd % (bound + 1);
}

/*
 * Refills are sums of fractions such as 249 x 0.004: a token that is short
 * by rounding noise alone counts as whole, so that take and wait_ms agree
 * with exact arithmetic.
 */
#define BUCKET_EPS	1e-10

/*
 * Tokens @b would hold at @t, counting from @since (last_ms, or an earlier
 * time when the clock went backwards, which adds nothing).
 */
static double bucket_level(const struct token_bucket *b, uint64_t since,
			   uint64_t t)
{
	double level = b->tokens;

	if (t > since)
		level += (double)(t - since) * b->rate_per_s / 1000.0;
	return level < b->burst ? level : b->burst;
}

static bool bucket_has_one(double level)
{
	return level + BUCKET_EPS >= 1;
}

void token_bucket_init(struct token_bucket *b, double rate_per_s,
		       double burst, uint64_t now_ms)
{
	b->rate_per_s = rate_per_s > 0 ? rate_per_s : 0;
	b->burst = burst > 0 ? burst : 0;
	b->tokens = b->burst;
	b->last_ms = now_ms;
}

bool token_bucket_take(struct token_bucket *b, uint64_t now_ms)
{
	if (b->rate_per_s <= 0)
		return true;
	b->tokens = bucket_level(b, b->last_ms, now_ms);
	b->last_ms = now_ms;
	if (!bucket_has_one(b->tokens))
		return false;
	b->tokens = b->tokens > 1 ? b->tokens - 1 : 0;
	return true;
}

uint64_t token_bucket_wait_ms(const struct token_bucket *b, uint64_t now_ms)
{
	/* As take would: a clock gone backwards rebases to now_ms. */
	uint64_t since = now_ms < b->last_ms ? now_ms : b->last_ms;
	double level, need;
	uint64_t wait;

	if (b->rate_per_s <= 0)
		return 0;
	level = bucket_level(b, since, now_ms);
	if (bucket_has_one(level))
		return 0;
	if (!bucket_has_one(b->burst))
		return UINT64_MAX;	/* never: the bucket cannot hold one */
	need = (1 - level) * 1000.0 / b->rate_per_s;
	if (need >= 1e18)
		return UINT64_MAX;
	/* ceil(need), but 1.0000000000000009 is 1 ... */
	wait = (uint64_t)need;
	if (need - (double)wait > 1e-6)
		wait++;
	/* ... and never a millisecond early: take at now + wait succeeds. */
	while (!bucket_has_one(bucket_level(b, since, now_ms + wait)))
		wait++;
	return wait;
}

void breaker_init(struct breaker *b, const struct breaker_opts *o)
{
	memset(b, 0, sizeof(*b));
	b->o = *o;
	if (!b->o.probes)
		b->o.probes = 1;
	b->state = BREAKER_CLOSED;
}

static void breaker_open(struct breaker *b, uint64_t now_ms)
{
	b->state = BREAKER_OPEN;
	b->opened_ms = now_ms;
	b->transitions++;
	b->fails = 0;
	b->slow = 0;
	b->probes_out = 0;
}

bool breaker_allow(struct breaker *b, uint64_t now_ms)
{
	switch (b->state) {
	case BREAKER_CLOSED:
		return true;
	case BREAKER_OPEN:
		if (now_ms < b->opened_ms || now_ms - b->opened_ms < b->o.open_ms)
			return false;
		b->state = BREAKER_HALF_OPEN;
		b->probes_out = 0;
		/* fall through */
	case BREAKER_HALF_OPEN:
		if (b->probes_out >= b->o.probes)
			return false;
		b->probes_out++;
		return true;
	}
	return false;
}

/* Print a latency for humans: whole milliseconds, or microseconds below 1. */
static int fmt_latency(char *buf, size_t len, uint64_t us)
{
	if (us < 1000)
		return snprintf(buf, len, "%llu us", (unsigned long long)us);
	return snprintf(buf, len, "%llu ms",
			(unsigned long long)((us + 500) / 1000));
}

/* The latency above which a closed breaker's ack is slow (UINT64_MAX: never). */
static uint64_t breaker_slow_limit(const struct breaker *b)
{
	uint64_t scaled;

	if (!b->seeded || !b->o.latency_factor || !b->o.slow_acks)
		return UINT64_MAX;
	if (b->normal_us > UINT64_MAX / b->o.latency_factor)
		return UINT64_MAX;
	scaled = b->normal_us * b->o.latency_factor;
	return scaled > b->o.latency_floor_us ? scaled : b->o.latency_floor_us;
}

void breaker_success(struct breaker *b, uint64_t latency_us, uint64_t now_ms)
{
	char lat[32], normal[32];

	switch (b->state) {
	case BREAKER_OPEN:
		return;
	case BREAKER_HALF_OPEN:
		b->state = BREAKER_CLOSED;
		b->fails = 0;
		b->slow = 0;
		b->probes_out = 0;
		return;
	case BREAKER_CLOSED:
		break;
	}

	b->fails = 0;
	if (latency_us > breaker_slow_limit(b)) {
		if (++b->slow < b->o.slow_acks)
			return;
		fmt_latency(lat, sizeof(lat), latency_us);
		fmt_latency(normal, sizeof(normal), b->normal_us);
		snprintf(b->why, sizeof(b->why),
			 "acks %llux slower than normal (%s vs %s)",
			 (unsigned long long)(latency_us /
					      (b->normal_us ? b->normal_us : 1)),
			 lat, normal);
		breaker_open(b, now_ms);
		return;
	}
	b->slow = 0;
	if (!b->seeded) {
		b->normal_us = latency_us;
		b->seeded = true;
	} else if (latency_us >= b->normal_us) {
		b->normal_us += (latency_us - b->normal_us) / 8;
	} else {
		b->normal_us -= (b->normal_us - latency_us) / 8;
	}
}

void breaker_failure(struct breaker *b, const char *why, uint64_t now_ms)
{
	if (!why)
		why = "unknown error";
	switch (b->state) {
	case BREAKER_OPEN:
		return;
	case BREAKER_HALF_OPEN:
		snprintf(b->why, sizeof(b->why), "probe failed: %s", why);
		breaker_open(b, now_ms);
		return;
	case BREAKER_CLOSED:
		break;
	}
	b->fails++;
	if (!b->o.failures || b->fails < b->o.failures)
		return;
	snprintf(b->why, sizeof(b->why), "%u consecutive failures: %s",
		 b->fails, why);
	breaker_open(b, now_ms);
}

const char *breaker_state_name(enum breaker_state s)
{
	switch (s) {
	case BREAKER_CLOSED:
		return "closed";
	case BREAKER_OPEN:
		return "open";
	case BREAKER_HALF_OPEN:
		return "half-open";
	}
	return "unknown";
}

void aimd_init(struct aimd *w, unsigned int min, unsigned int max,
	       uint64_t slow_us, uint64_t cool_ms)
{
	memset(w, 0, sizeof(*w));
	w->min = min ? min : 1;
	w->max = max > w->min ? max : w->min;
	w->window = w->min;
	w->slow_us = slow_us;
	w->cool_ms = cool_ms;
}

/* Halve the window unless it was cut less than cool_ms ago. */
static void aimd_cut(struct aimd *w, uint64_t now_ms)
{
	if (w->cut && now_ms >= w->last_cut_ms &&
	    now_ms - w->last_cut_ms < w->cool_ms)
		return;
	w->window = w->window / 2 > w->min ? w->window / 2 : w->min;
	w->acked = 0;
	w->last_cut_ms = now_ms;
	w->cut = true;
}

void aimd_ack(struct aimd *w, uint64_t latency_us, uint64_t now_ms)
{
	if (w->slow_us && latency_us > w->slow_us) {
		aimd_cut(w, now_ms);
		return;
	}
	if (++w->acked < w->window)
		return;
	w->acked = 0;
	if (w->window < w->max)
		w->window++;
}

void aimd_error(struct aimd *w, uint64_t now_ms)
{
	aimd_cut(w, now_ms);
}

/* FNV-1a 64 over key, a 0 byte and name; then splitmix64's finaliser. */
static uint64_t rendezvous_hash(const char *key, const char *name)
{
	uint64_t h = 0xcbf29ce484222325ull;
	const unsigned char *p;

	for (p = (const unsigned char *)key; *p; p++)
		h = (h ^ *p) * 0x100000001b3ull;
	h *= 0x100000001b3ull;		/* the 0 byte: h ^ 0 == h */
	for (p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 0x100000001b3ull;
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebull;
	h ^= h >> 31;
	return h;
}

/*
 * ln(n / 2^53) for odd n < 2^53, i.e. for h in (0, 1), to about 1 ulp.
 * n = m * 2^k with m in [sqrt(1/2), sqrt(2)) (exact: a power-of-two scale),
 * ln m = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.172, whose odd series
 * is below 1e-17 after 11 terms; m - 1 is exact there, so h near 1 keeps
 * its precision.
 */
static double ln_unit(uint64_t n)
{
	static const double ln2 = 0.693147180559945309417232121458176568;
	int k = 63 - __builtin_clzll(n);
	double m = (double)n / (double)(1ull << k);
	double s, s2, term, sum;

	if (m > 1.41421356237309504880) {
		m /= 2;
		k++;
	}
	s = (m - 1) / (m + 1);
	s2 = s * s;
	term = s;
	sum = 0;
	for (int i = 1; i <= 23; i += 2) {
		sum += term / i;
		term *= s2;
	}
	return 2 * sum + (k - 53) * ln2;
}

double rendezvous_score(const char *key, const char *name,
			unsigned int weight)
{
	uint64_t u = rendezvous_hash(key, name) >> 12;	/* 52 bits */

	if (!weight)
		return 0;
	/* h = (2u + 1) / 2^53 is never 0 or 1, so ln(h) < 0 and finite. */
	return -(double)weight / ln_unit(2 * u + 1);
}

void rendezvous_rank(const char *key, const char *const *names,
		     const unsigned int *weights, unsigned int n,
		     unsigned int *order)
{
	/* Insertion sort, strict comparison: stable, so ties rank by index. */
	for (unsigned int i = 0; i < n; i++) {
		double s = rendezvous_score(key, names[i], weights[i]);
		unsigned int j = i;

		while (j > 0 && rendezvous_score(key, names[order[j - 1]],
						 weights[order[j - 1]]) < s) {
			order[j] = order[j - 1];
			j--;
		}
		order[j] = i;
	}
}
