/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * source_kmod: the /dev/evring rings as a source.  One drain stream per
 * partition; records are staged straight from the mapped ring (no copy)
 * and released only after the drain committed them.
 *
 * At start each partition resumes from its spool checkpoint: in the same
 * epoch, records the spool already holds are skipped and released (no
 * duplicate after a crash between commit and release); in a new epoch (the
 * module was reloaded) the stream starts over and the change is noted.  A
 * sequence gap - records released by someone else, or a spool that lost
 * commits - is never hidden: it becomes a loss range in the ledger and in
 * the next batch.
 */
#ifndef EVRINGD_SOURCE_KMOD_H
#define EVRINGD_SOURCE_KMOD_H

#include "control.h"
#include "drain.h"
#include "loop.h"

struct source_kmod;

/* -ENOENT when the device does not exist (module not loaded). */
int source_kmod_open(struct loop *l, struct drain *d, const char *device,
		     struct source_kmod **out, char *err, size_t errlen);
void source_kmod_close(struct source_kmod *k);

/*
 * Stage what every ring holds now, within the drain's bounds (for a clean
 * stop).  Returns the number of records staged, or -errno.
 */
int source_kmod_stage_all(struct source_kmod *k);

/* Append one status row per partition; returns how many were added. */
unsigned int source_kmod_status(struct source_kmod *k,
				struct control_part_status *rows,
				unsigned int max);

#endif /* EVRINGD_SOURCE_KMOD_H */
