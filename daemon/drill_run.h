/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * drill_run: `evringctl drill`, the runner of a fault drill
 * (docs/DRILLS.md, "Running drills").
 *
 *	evringctl drill SCENARIO.ini [--short] [--out DIR] [--keep]
 *			[--set SECTION.KEY=VALUE]...
 *	evringctl drill --cleanup DIR [--keep]
 *
 * Brings up the scenario's regions and evringd (drill_inject.h), runs
 * traffic.writers writer processes sending canaries (drill_canary.h)
 * through lib/evring_writer.c at drill_traffic_rate(), applies the fault
 * schedule, samples evringd's status every 250 ms, aborts when the live
 * latency (the largest region lag) stays over the SLA for
 * sla.abort_after_s, then stops the traffic, removes every fault, waits
 * (bounded) for the backlog to drain, reads every region's stream into
 * the checker (drill_check.h) and reports (drill_report.h).
 *
 * Guarantees:
 *  - Every fault is removed and everything the drill made is taken down
 *    at the end, on SIGINT/SIGTERM, and on any error after setup began;
 *    a runner that died is cleaned up by --cleanup DIR (the journal).
 *    --keep leaves the regions and evringd up (faults removed).
 *  - A canary counts as acknowledged when the path's promise came back:
 *    the socket's cumulative ACK, or fsync(2) on the device.  A writer
 *    outlives evringd restarts: it reconnects and goes on with new
 *    sequences; what was not acknowledged is never sent again (a resend
 *    would be a real duplicate downstream), it stays "unknown" or
 *    "recovered".
 *  - Exit status: 0 PASS, 1 FAIL (also aborted), 2 could not run (usage,
 *    scenario, setup, interrupted).
 */
#ifndef EVRINGD_DRILL_RUN_H
#define EVRINGD_DRILL_RUN_H

/* argv[0] is "drill"; returns the exit status. */
int drill_main(int argc, char **argv);

#endif /* EVRINGD_DRILL_RUN_H */
