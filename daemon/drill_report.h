/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * drill_report: a drill's figures, verdict and files.  It takes what the
 * runner gathered — the checker fed with every region's stream
 * (drill_check.h), the status samples taken every 250 ms while the drill
 * ran, and what the injectors did (drill_inject.h) — and derives:
 *
 *	written, acknowledged, delivered per region, success rate (ok /
 *	acknowledged in the worst view), lost (prefix/middle/postfix),
 *	duplicated, unexpected, p50/p99/max latency (sent -> stored);
 *	per fault: time to detect (fault on -> first sample with the
 *	region's breaker not closed, its connection down or its retries
 *	growing, or its lag over the SLA), time to fail over (failover mode: fault on -> the first
 *	sample after the region's partitions moved in which another region
 *	shipped more), time to recover (fault off -> the first second from
 *	which every later second's p99, by send time, is within the SLA up
 *	to the end of the traffic; seconds inside another fault's window
 *	are that fault's and do not count); backlog drained.
 *
 *	verdict: PASS when nothing acknowledged is lost, nothing duplicated,
 *	nothing unexpected, every fault recovered within
 *	sla.recover_within_s, evringd never died outside a fault that kills
 *	it, and the drill was not aborted; FAIL otherwise; INTERRUPTED.
 *
 * Files in the drill's directory: report.json (everything, series
 * included), series.tsv (per second, the columns tools/drill-plot reads),
 * samples.tsv (the raw 250 ms samples), faults.tsv (start_s end_s name),
 * curves.svg (tools/drill-plot).  Per-second columns: p50_ms/p99_ms the
 * worst view's latency of canaries sent that second (0: none delivered),
 * throughput canaries first stored that second (mean over views),
 * backlog from evringd's status (replicate: the largest region lag;
 * failover: the sum), breaker_rN the worst state seen that second (0
 * closed, 1 half-open, 2 open), carried over while evringd is down.
 */
#ifndef EVRINGD_DRILL_REPORT_H
#define EVRINGD_DRILL_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "drill_check.h"
#include "drill_inject.h"
#include "drill_scenario.h"

/* One `status` of evringd. */
struct drill_sample {
	int64_t t_ms;			/* from the drill's start */
	bool up;			/* evringd answered */
	uint8_t breaker[DRILL_REGIONS_MAX];	/* 0 closed 1 half 2 open */
	bool connected[DRILL_REGIONS_MAX];
	uint32_t home[DRILL_REGIONS_MAX];	/* failover: partitions */
	uint64_t lag_events[DRILL_REGIONS_MAX];
	uint64_t lag_ms[DRILL_REGIONS_MAX];
	uint64_t shipped[DRILL_REGIONS_MAX];	/* events */
	uint64_t retries[DRILL_REGIONS_MAX];
};

/* A growing array of samples. */
struct drill_series {
	struct drill_sample *v;
	size_t n, cap;
};

int drill_series_add(struct drill_series *s, const struct drill_sample *x);
void drill_series_free(struct drill_series *s);

/* The backlog of a sample as the mode counts it. */
uint64_t drill_sample_backlog(const struct drill_sample *x,
			      enum drill_mode mode, unsigned int nregions);
/* The largest lag_ms over the regions: the live latency the SLA watches. */
uint64_t drill_sample_lag_ms(const struct drill_sample *x,
			     unsigned int nregions);

/* What the runner knows besides the checker and the samples. */
struct drill_run_info {
	const struct drill_scenario *s;
	const char *dir;
	const char *plot;		/* tools/drill-plot */
	bool short_run;
	uint64_t drill_id;
	uint64_t start_ns;		/* CLOCK_REALTIME at t = 0 */
	int64_t traffic_end_ms;		/* writers stopped */
	int64_t drained_ms;		/* backlog 0 after the traffic; -1 never */
	int64_t end_ms;			/* streams read */
	bool aborted, interrupted;
	char abort_reason[200];
	char read_error[300];		/* "" when every stream was read */
	unsigned int daemon_crashes;
	uint64_t region_canaries[DRILL_REGIONS_MAX];	/* messages, dups too */
	uint64_t region_foreign[DRILL_REGIONS_MAX];	/* not our canaries */
	uint64_t writer_reconnects;
	uint64_t writer_errors;
	const char *path;		/* "device" / "socket": what was used */
	struct drill_fault_log faults[DRILL_FAULTS_MAX];
};

/* Per fault. -1: does not apply or did not happen. */
struct drill_fault_fig {
	int64_t detect_ms;
	int64_t failover_ms;
	int64_t recover_ms;		/* -1 also: never recovered */
	bool recovered;			/* within recover_within_s */
	bool applies_recover;
};

struct drill_figures {
	struct drill_counts worst;	/* the view with most trouble */
	struct drill_counts view[DRILL_REGIONS_MAX];
	unsigned int nviews;
	struct drill_latency lat;	/* worst view's p50/p99/max */
	double success_pct;
	uint64_t worst_p99_outside_ms;	/* per-second p99 outside faults */
	struct drill_fault_fig fault[DRILL_FAULTS_MAX];
	bool drained;
	int64_t drain_ms;		/* traffic end -> backlog 0 */
	int64_t backlog_zero_ms;	/* last fault end -> backlog 0; -1 */
	bool passed;
	char verdict[512];		/* "drill NAME: PASS (...)" */
};

/* Compute everything. -ENOMEM. */
int drill_report_figures(const struct drill_check *ck,
			 const struct drill_series *ser,
			 const struct drill_run_info *ri,
			 struct drill_figures *out);

/*
 * Write report.json, series.tsv, samples.tsv, faults.tsv and run the plot
 * (curves.svg); print the figures table, the files and the verdict line
 * to stdout.  0, or -errno with err (the verdict is printed anyway).
 */
int drill_report_write(const struct drill_check *ck,
		       const struct drill_series *ser,
		       const struct drill_run_info *ri,
		       const struct drill_figures *fig, char *err,
		       size_t errlen);

#endif /* EVRINGD_DRILL_REPORT_H */
