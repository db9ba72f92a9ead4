/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * source_bpf: kernel events captured by the programs of bpf/ (process exec
 * and exit, TCP connect and accept, opens under configured paths) as a
 * source.  This is the only file of the daemon that sees libbpf.
 *
 *	source_bpf_open(loop, drain, &cfg, &b, err, sizeof(err));
 *	... the loop runs: events are spooled like any other ...
 *	source_bpf_reconfigure(b, &cfg, err, sizeof(err));	on SIGHUP
 *	source_bpf_stage_all(b);				at stop
 *	source_bpf_close(b);
 *
 * Each capture is one drain stream, (BATCH_SRC_BPF, partition = capture
 * id), with a gap-free sequence.  Guarantees:
 *
 *  - The maps and each program's link are pinned under bpf.pin_path and
 *    outlive evringd: the programs keep capturing while it is down (into
 *    the ring, then counting drops), and the next evringd re-attaches to
 *    the same ring and links.  A hook the kernel lacks is skipped with a
 *    log line, not a failure.
 *  - Nothing leaves the ring before it is durable: evringd reads the BPF
 *    ringbuf through its own mapping and moves the consumer position only
 *    after the drain committed the records, so a crash at any instant
 *    loses nothing the ring held, and a record committed but not yet
 *    released is skipped, not doubled, on restart (the spool checkpoint
 *    holds the ring position).
 *  - Every event the programs could not deliver is accounted: the per-CPU
 *    drop and shed counts of the stats map become loss ranges in the
 *    ledger (reasons "bpf_ringbuf_full", "bpf_shed"), each range a run of
 *    sequence numbers reserved for the lost events and followed at once
 *    by a loss record in the stream (struct evring_bpf_loss), so that
 *    events spooled + events in loss ranges = events that passed the
 *    filters, exactly.  The ledger is the memory of what was accounted:
 *    counts that grew while evringd was down are accounted at its start.
 *  - The sequence restarts in a new epoch (with a note) only when the
 *    spool cannot continue the ring's: the pinned objects were created
 *    anew (reboot, removed pins), or the spool does not know this ring.
 *  - Under pressure (ring fill at bpf.shed_fill_pct, or any drop) the
 *    captures listed in bpf.shed are shed one by one, each tick, through
 *    the config map; they come back one by one once the ring is calm.
 *
 * Errors of source_bpf_open(): -EOPNOTSUPP when BPF cannot be used here
 * (no privilege, no BPF file system, no ring buffer support), -EPROTO when
 * the pinned objects are not this version's or make no sense, -EBUSY when
 * another evringd uses the pin path; err says which.
 */
#ifndef EVRINGD_SOURCE_BPF_H
#define EVRINGD_SOURCE_BPF_H

#include "config.h"
#include "control.h"
#include "drain.h"
#include "loop.h"

struct source_bpf;

int source_bpf_open(struct loop *l, struct drain *d,
		    const struct evd_config *c, struct source_bpf **out,
		    char *err, size_t errlen);
void source_bpf_close(struct source_bpf *b);

/* Apply the live bpf.* keys (captures, filters, shedding). */
int source_bpf_reconfigure(struct source_bpf *b, const struct evd_config *c,
			   char *err, size_t errlen);

/*
 * Stage what the ring holds now, and the pending loss ranges, within the
 * drain's bounds (for a clean stop).  Returns how many records were
 * staged, or -errno.
 */
int source_bpf_stage_all(struct source_bpf *b);

/* Append one status row per capture; returns how many were added. */
unsigned int source_bpf_status(struct source_bpf *b,
			       struct control_part_status *rows,
			       unsigned int max);

#endif /* EVRINGD_SOURCE_BPF_H */
