/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * ship_policy: the decisions of shipping, as pure functions of their inputs
 * (time is passed in, randomness is passed in), so each is tested alone:
 * retry backoff with full jitter, a retry budget (token bucket), a circuit
 * breaker, an adaptive in-flight window (AIMD) and weighted rendezvous
 * hashing for home regions.  No I/O, no clock, no allocation.
 */
#ifndef EVRINGD_SHIP_POLICY_H
#define EVRINGD_SHIP_POLICY_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Exponential backoff with full jitter: a uniformly random delay in
 * [0, min(cap_ms, base_ms * 2^attempt)], drawn from @rnd (any 64-bit random
 * value) as rnd % (bound + 1).  attempt 0 is the first retry.  Never
 * overflows, for any attempt and base; cap_ms or base_ms 0 gives 0.
 */
uint64_t backoff_full_jitter(uint64_t base_ms, uint64_t cap_ms,
			     unsigned int attempt, uint64_t rnd);

/*
 * A token bucket: @rate_per_s tokens a second, at most @burst saved; it
 * starts full.  Elapsed time refills it (elapsed_ms * rate / 1000, capped at
 * burst); a clock that goes backwards adds nothing and rebases last_ms, so
 * tokens accrue again from the earlier time.
 */
struct token_bucket {
	double rate_per_s;	/* 0: unlimited (take always succeeds) */
	double burst;
	double tokens;
	uint64_t last_ms;
};
void token_bucket_init(struct token_bucket *b, double rate_per_s,
		       double burst, uint64_t now_ms);
/* Take one token: true, or false (and nothing taken) when empty. */
bool token_bucket_take(struct token_bucket *b, uint64_t now_ms);
/*
 * Milliseconds until one token is available (0: now, or rate 0):
 * ceil((1 - tokens) * 1000 / rate), rounded up further if needed so that
 * token_bucket_take() at now_ms + the result succeeds.  Changes nothing.
 */
uint64_t token_bucket_wait_ms(const struct token_bucket *b, uint64_t now_ms);

enum breaker_state {
	BREAKER_CLOSED = 0,	/* traffic flows */
	BREAKER_OPEN,		/* nothing is sent until open_ms passed */
	BREAKER_HALF_OPEN,	/* up to probes requests are let through */
};

/*
 * The breaker opens after @failures consecutive failures (a success resets
 * the count), or after @slow_acks consecutive acks slower than
 * max(latency_floor_us, latency_factor x normal_us), normal_us being an
 * EWMA (alpha 1/8) of the latencies of the non-slow acks seen while closed,
 * seeded by the first.  failures 0, or latency_factor or slow_acks 0,
 * disables that trigger; probes 0 counts as 1.
 */
struct breaker_opts {
	unsigned int failures;		/* consecutive failures that open it */
	unsigned int latency_factor;	/* open when an ack takes more than
					 * factor x the normal latency ... */
	unsigned int slow_acks;		/* ... this many times in a row */
	uint64_t latency_floor_us;	/* never "slow" below this */
	uint64_t open_ms;		/* open -> half-open after this */
	unsigned int probes;		/* requests allowed while half-open */
};

struct breaker {
	struct breaker_opts o;
	enum breaker_state state;
	unsigned int fails;		/* consecutive */
	unsigned int slow;		/* consecutive slow acks */
	unsigned int probes_out;	/* half-open: in flight */
	uint64_t opened_ms;
	uint64_t normal_us;		/* EWMA of ack latency while closed */
	bool seeded;			/* normal_us holds a measurement */
	uint64_t transitions;		/* times it opened */
	char why[96];			/* why it last opened ("" never) */
};
void breaker_init(struct breaker *b, const struct breaker_opts *o);
/*
 * May a request be sent now?  Moves open -> half-open when open_ms passed;
 * in half-open, true at most o.probes times until results come back (the
 * caller must report each allowed request's outcome).
 */
bool breaker_allow(struct breaker *b, uint64_t now_ms);
/*
 * An acknowledged request and its latency.  Closed: counts toward (or
 * resets) the slow run, resets the failure count, feeds normal_us when not
 * slow; it opens the breaker with why "acks 12x slower than normal (123 ms
 * vs 10 ms)".  Half-open: closes it (counts reset, normal_us kept).  Open:
 * a late result, ignored.
 */
void breaker_success(struct breaker *b, uint64_t latency_us, uint64_t now_ms);
/*
 * A failed request (transient or ambiguous); @why (may be NULL) for status.
 * Closed: the o.failures-th in a row opens it with why "5 consecutive
 * failures: <why>".  Half-open: opens it again at @now_ms with why "probe
 * failed: <why>".  Open: a late result, ignored.
 */
void breaker_failure(struct breaker *b, const char *why, uint64_t now_ms);
const char *breaker_state_name(enum breaker_state s);

/*
 * AIMD in-flight window: starts at @min; +1 after `window` on-time acks
 * (additive increase), halved on an error or an ack slower than @slow_us
 * (multiplicative decrease, at most once per @cool_ms, so the failures of
 * one window cut it once; a clock gone backwards allows a cut), always
 * within [min, max].  min 0 counts as 1, max below min as min; slow_us 0:
 * no ack is slow.
 */
struct aimd {
	unsigned int min, max;
	unsigned int window;
	unsigned int acked;		/* on-time acks toward the next +1 */
	uint64_t slow_us;
	uint64_t cool_ms;
	uint64_t last_cut_ms;
	bool cut;			/* last_cut_ms is valid */
};
void aimd_init(struct aimd *w, unsigned int min, unsigned int max,
	       uint64_t slow_us, uint64_t cool_ms);
void aimd_ack(struct aimd *w, uint64_t latency_us, uint64_t now_ms);
void aimd_error(struct aimd *w, uint64_t now_ms);

/*
 * Weighted rendezvous (highest random weight) hashing: rank @n regions for
 * @key (e.g. "kmod-3"), best first, into @order (n entries, indexes into
 * @names).  A region's score is -weight / ln(h) with h = hash(key, name) in
 * (0, 1), so each region owns a share of keys proportional to its weight
 * and removing one moves only its own keys.  Ties rank by index, so weight
 * 0 (score 0) ranks after every positive weight.  The hash is stable
 * across builds and hosts (every daemon agrees on homes): FNV-1a 64 over
 * key, a 0 byte and name, then the splitmix64 finaliser; its top 52 bits
 * u give h = (2u + 1) / 2^53.  O(n^2) hashes: n is a handful of regions.
 */
void rendezvous_rank(const char *key, const char *const *names,
		     const unsigned int *weights, unsigned int n,
		     unsigned int *order);
/* The score rendezvous_rank() sorts by (no libm: ln is computed here). */
double rendezvous_score(const char *key, const char *name,
			unsigned int weight);

#endif /* EVRINGD_SHIP_POLICY_H */
