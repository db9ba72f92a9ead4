/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * drill_scenario: a fault drill's scenario, one INI file (parsed by
 * libinih, like daemon/config.c): the canary traffic, the SLA and the
 * fault schedule.  docs/DRILLS.md lists every key; drills/ ships the
 * scenarios `evringctl drill` and `make check` run.
 *
 *	struct drill_scenario s;
 *	if (drill_scenario_load(&s, path, err, sizeof(err)) < 0)
 *		die("%s", err);
 *	if (short_run)
 *		drill_scenario_shorten(&s, &s);		check_duration_s
 *	rate = drill_traffic_rate(&s.traffic, t_ms, s.duration_ms);
 *
 * Guarantees:
 *  - A struct drill_scenario is plain data (no pointers): copy it by
 *    assignment, nothing to free.  Strings are zero-padded.
 *  - Times are read as seconds with at most three decimals ("1.5") and
 *    kept in milliseconds; every number by checked parsing, within the
 *    bounds below; enums by name.
 *  - Faults are kept in file order.  Regions are named r1..rN (N =
 *    drill.regions); a fault's target is one of them or "evringd", and
 *    target_region is its index (-1 for evringd).
 *  - *s is written only on success; on failure err holds one line.  Per
 *    line, as config.h's messages:
 *	FILE:LINE: unknown section [x]
 *	FILE:LINE: unknown key 'x' in [section]
 *	FILE:LINE: key 'x' outside a [section]
 *	FILE:LINE: bad value 'v' for section.key: why
 *	FILE:LINE: duplicate key 'x' in [section] (first set on line N)
 *	FILE:LINE: syntax error (expected 'key = value' or '[section]')
 *	FILE:LINE: line too long (max 198 characters)
 *	FILE:LINE: NUL byte in line
 *	FILE:LINE: bad fault name 'x': why
 *	FILE:LINE: duplicate fault 'a' (first defined on line N)
 *	FILE:LINE: too many faults (max 16)
 *    (a fault's keys are named fault.NAME.key, its section [fault NAME]);
 *    then the rules between keys, checked after the whole file, with the
 *    line of the key (or section header) at fault:
 *	FILE: drill.name is required
 *	FILE: drill.duration_s is required
 *	FILE: no [fault NAME] section (a drill injects at least one fault)
 *	FILE: drill.check_duration_s (20) is longer than drill.duration_s (10)
 *	FILE: drill.mode failover needs at least 2 regions
 *	FILE:LINE: traffic.rate_from applies to shape ramp only
 *	FILE: traffic.shape ramp needs traffic.rate_from
 *	FILE:LINE: traffic.burst_s applies to shape burst only (burst_every_s too)
 *	FILE: traffic.shape burst needs traffic.burst_s and traffic.burst_every_s
 *	FILE: traffic.burst_s (5) must be shorter than traffic.burst_every_s (5)
 *	FILE:LINE: fault 'f' has no kind
 *	FILE:LINE: fault 'f' has no at_s	(for_s; target for region kinds)
 *	FILE:LINE: fault 'f': key 'period_s' does not apply to kind 'region-kill'
 *	FILE:LINE: fault 'f': kind 'region-kill' targets a region (r1..r2), not 'evringd'
 *	FILE:LINE: fault 'f': kind 'daemon-kill' targets evringd, not 'r1'
 *	FILE:LINE: fault 'f': unknown target 'r3' (regions are r1..r2, or evringd)
 *	FILE:LINE: fault 'f' ends at 12.5 s, after drill.duration_s (10 s)
 *	FILE:LINE: fault 'f': region-slow needs latency_ms, loss_pct or rate_kbit
 *	FILE:LINE: fault 'f': jitter_ms (50) is greater than latency_ms (20)
 *	FILE:LINE: fault 'f': region-flap needs period_s
 *	FILE:LINE: fault 'f': period_s (10 s) must be shorter than for_s (10 s)
 *	FILE:LINE: fault 'f': daemon-kill needs every_s
 *	FILE:LINE: fault 'f': every_s (20 s) is longer than for_s (10 s)
 *	FILE:LINE: fault 'f': failpoint needs name
 *	FILE:LINE: fault 'b' overlaps fault 'a' on target 'r1'
 *    A target left out is evringd (kinds that act on evringd).
 *    "cannot open 'p': why" when the file cannot be opened.
 *  - The module never prints.
 */
#ifndef EVRINGD_DRILL_SCENARIO_H
#define EVRINGD_DRILL_SCENARIO_H

#include <stddef.h>
#include <stdint.h>

#define DRILL_NAME_MAX		64	/* drill and fault names, [A-Za-z0-9_-] */
#define DRILL_DESC_MAX		160	/* drill.description */
#define DRILL_FAULTS_MAX	16
#define DRILL_REGIONS_MAX	8	/* as CONFIG_REGIONS_MAX */
#define DRILL_TARGET_MAX	16	/* "r8", "evringd" */
#define DRILL_FAILPOINT_MAX	64
#define DRILL_CANARY_SIZE_MIN	48	/* drill_canary.h: the header */

/* Bounds, inclusive. */
#define DRILL_DURATION_MS_MAX	86400000u	/* 1 day */
#define DRILL_RATE_MAX		1000000u	/* events/s */
#define DRILL_SIZE_MAX		65536u		/* evringd's socket_max_event */
#define DRILL_WRITERS_MAX	64u
#define DRILL_SLA_LATENCY_MS_MAX 3600000u
#define DRILL_SLOW_LATENCY_MS_MAX 60000u
#define DRILL_RATE_KBIT_MAX	10000000u	/* 10 Gbit/s */
#define DRILL_FS_SIZE_MIN	(1ull << 20)	/* spool-full: 1M */
#define DRILL_FS_SIZE_MAX	(4ull << 30)	/* 4G */

enum drill_mode {
	DRILL_REPLICATE,	/* every region holds every canary, once */
	DRILL_FAILOVER,		/* one region (any) holds each canary, once */
};

enum drill_shape {
	DRILL_STEADY,		/* rate */
	DRILL_RAMP,		/* rate_from to rate, linearly over duration */
	DRILL_BURST,		/* rate, x10 for burst_s every burst_every_s */
};

enum drill_path {
	DRILL_PATH_DEVICE,	/* /dev/evring (evring_write) */
	DRILL_PATH_SOCKET,	/* evringd's ingest socket */
};

enum drill_fault_kind {
	DRILL_REGION_KILL,	/* SIGKILL the region's servers; restart after */
	DRILL_REGION_PAUSE,	/* SIGSTOP, then SIGCONT */
	DRILL_REGION_PARTITION,	/* nftables: drop both ways */
	DRILL_REGION_ONEWAY,	/* nftables: drop evringd -> region only */
	DRILL_REGION_SLOW,	/* netem (or faultproxy): latency, loss, rate */
	DRILL_REGION_FLAP,	/* partition on/off every period_s / 2 */
	DRILL_DAEMON_KILL,	/* kill -9 evringd every every_s, restart it */
	DRILL_SPOOL_FULL,	/* the spool's small filesystem filled up */
	DRILL_FAILPOINT,	/* evringd dies at a named instant */
	DRILL_NR_FAULT_KINDS
};

/* Every time is in milliseconds; a key not used by the kind is 0. */
struct drill_fault {
	char name[DRILL_NAME_MAX + 1];
	enum drill_fault_kind kind;
	uint32_t at_ms;			/* from the drill's start */
	uint32_t for_ms;		/* > 0 */
	char target[DRILL_TARGET_MAX];	/* "r1".."r8" or "evringd" */
	int target_region;		/* 0-based, -1: evringd */
	uint32_t latency_ms;		/* region-slow */
	uint32_t jitter_ms;		/* region-slow, <= latency_ms */
	uint32_t loss_pct;		/* region-slow, 0..100 */
	uint32_t rate_kbit;		/* region-slow, 0: no limit */
	uint32_t period_ms;		/* region-flap: one down+up cycle */
	uint32_t every_ms;		/* daemon-kill: between kills */
	uint64_t fs_size;		/* spool-full: the filesystem, 64M */
	char failpoint[DRILL_FAILPOINT_MAX + 1];	/* failpoint */
	int line;			/* of its [fault NAME] header */
};

struct drill_traffic {
	uint32_t rate;			/* events/s, 1000 */
	uint32_t size;			/* bytes per event, 128 */
	uint32_t writers;		/* 1 */
	enum drill_shape shape;		/* steady */
	uint32_t rate_from;		/* ramp: the starting rate */
	uint32_t burst_ms;		/* burst: length of each burst */
	uint32_t burst_every_ms;	/* burst: one burst per period */
	enum drill_path path;		/* device */
};

struct drill_sla {
	uint32_t latency_ms;		/* 1000: end-to-end bound (p99) */
	uint32_t abort_after_ms;	/* 30000: breached this long, abort; 0 never */
	uint32_t recover_within_ms;	/* 5000: back under after a fault */
};

struct drill_scenario {
	/* [drill] */
	char name[DRILL_NAME_MAX + 1];
	char description[DRILL_DESC_MAX + 1];	/* "" */
	uint32_t duration_ms;
	uint32_t check_duration_ms;	/* default min(duration, 10 s) */
	enum drill_mode mode;		/* replicate */
	uint32_t regions;		/* 2 */

	struct drill_traffic traffic;
	struct drill_sla sla;

	unsigned int nr_faults;
	struct drill_fault fault[DRILL_FAULTS_MAX];
};

/*
 * *s = the scenario at @path.  -ENOENT/-EACCES/-EISDIR...: cannot open
 * ("cannot open 'p': why"); -EINVAL: anything in it is wrong.
 */
int drill_scenario_load(struct drill_scenario *s, const char *path,
			char *err, size_t errlen);

/*
 * The make-check version of @in into *@out (may be @in): duration_ms
 * becomes check_duration_ms and every time of the schedule (at, for,
 * period, every, burst) is scaled by check/duration, to the millisecond,
 * at least 1 ms where it was not 0.  The SLA and the rates are kept.
 */
void drill_scenario_shorten(const struct drill_scenario *in,
			    struct drill_scenario *out);

/*
 * The canary rate, events/s, at @t_ms into a drill of @duration_ms: the
 * shape applied (a ramp is linear from rate_from at 0 to rate at the
 * end; a burst runs at 10 x rate during [k * every, k * every + burst)).
 */
uint32_t drill_traffic_rate(const struct drill_traffic *t, uint64_t t_ms,
			    uint64_t duration_ms);

/* "region-kill", ...; "replicate"/"failover"; "steady"...; "device"... */
const char *drill_fault_kind_name(enum drill_fault_kind k);
const char *drill_mode_name(enum drill_mode m);
const char *drill_shape_name(enum drill_shape s);
const char *drill_path_name(enum drill_path p);

/*
 * The failpoints evringd knows (the names failpoint faults may use),
 * NULL-terminated.
 */
extern const char *const drill_failpoints[];

#endif /* EVRINGD_DRILL_SCENARIO_H */
