/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * drill_inject: what `evringctl drill` starts and breaks, and how it puts
 * everything back.  It owns the regions (tools/regions: 3-node JetStream
 * clusters in network namespaces), evringd (started, supervised,
 * restarted), the fault proxies and the spool's small filesystem, and it
 * applies the scenario's fault schedule (docs/DRILLS.md, "Running
 * drills"):
 *
 *	region-kill	  regions kill rN / regions start rN
 *	region-pause	  regions stop rN (SIGSTOP every server) / cont rN
 *	region-partition  regions partition rN / heal rN (nftables)
 *	region-oneway	  regions oneway rN in / heal rN
 *	region-flap	  partition / heal every period_s / 2
 *	region-slow	  regions slow rN (netem, both ends of the veth) when
 *			  the kernel has sch_netem; else the region's URLs
 *			  point at three tools/faultproxy processes from the
 *			  start, and the fault sets their latency, jitter,
 *			  rate and drop share over their control sockets
 *	daemon-kill	  SIGKILL evringd every every_s, restart it at once
 *	spool-full	  the spool on a tmpfs of fs_size; a filler file
 *			  takes all its free space for the window
 *	failpoint	  evringctl failpoint NAME crash; evringd dies at
 *			  that instant and is restarted (an evringd without
 *			  failpoints: SIGKILL instead, said in the note)
 *
 *	drill_inject_new(&s, dir, &paths, sets, &inj, err, len);
 *	drill_inject_setup(inj, err, len);	lock, regions, proxies, spool
 *	write the config with drill_inject_urls(), then
 *	drill_inject_daemon_start(inj, err, len);
 *	every tick:  drill_inject_tick(inj, t_ms);
 *	at the end:  drill_inject_end_all(inj, t_ms);
 *		     drill_inject_free(inj, keep);
 *
 * Guarantees:
 *  - Everything made is written to DIR/cleanup.journal (fsync'd) before
 *    it is made, so drill_cleanup_dir(DIR) (`evringctl drill --cleanup
 *    DIR`) can remove it after a crashed runner: every region healed,
 *    continued, unshaped and taken down, every process it started (by pid
 *    and start time, so a reused pid is never killed) killed, the tmpfs
 *    unmounted.  drill_inject_free() runs the same replay.
 *  - Region commands run as child jobs, one at a time per target and in
 *    order, so the tick never waits on a region that is starting; a job
 *    that fails is logged to DIR/inject.log and counted in the fault's
 *    note.
 *  - The machine-wide regions lock (/tmp/evring-regions.lock, the one
 *    selftests/ship takes) is held from setup to free: drills and the
 *    shipping tests never tear down each other's regions.
 *  - Children run in their own process groups: a terminal's ^C reaches
 *    the runner only, which removes the faults in order.
 */
#ifndef EVRINGD_DRILL_INJECT_H
#define EVRINGD_DRILL_INJECT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "drill_scenario.h"

#define DRILL_URLS_MAX		256
#define DRILL_NOTE_MAX		160
#define DRILL_SETS_MAX		32

/* The programs a drill runs. */
struct drill_paths {
	char evringd[PATH_MAX];		/* $EVRINGD, or beside evringctl */
	char evringctl[PATH_MAX];	/* this program */
	char faultproxy[PATH_MAX];	/* beside evringctl */
	char regions[PATH_MAX];		/* $EVRING_REGIONS, or tools/regions */
	char plot[PATH_MAX];		/* $EVRING_DRILL_PLOT, or tools/drill-plot */
};

/*
 * Find them: the binaries next to /proc/self/exe, the scripts in the
 * source tree's tools/ (the binary's ../../tools) unless the environment
 * names them.  -ENOENT with err naming the missing one.
 */
int drill_paths_find(struct drill_paths *p, char *err, size_t errlen);

/* What the injectors did to one fault, for the report. */
struct drill_fault_log {
	int64_t start_ms;		/* applied; -1: never */
	int64_t end_ms;			/* removed; -1: not yet */
	unsigned int kills;		/* evringd deaths in the window */
	unsigned int job_failures;	/* commands that failed */
	char note[DRILL_NOTE_MAX];	/* how it was injected */
};

struct drill_inject;

/*
 * For scenario @s, in directory @dir (exists), evringd run with @sets
 * ("SECTION.KEY=VALUE", NULL-terminated, may be NULL) after -c.  Opens
 * the journal.  -errno with err.
 */
int drill_inject_new(const struct drill_scenario *s, const char *dir,
		     const struct drill_paths *paths, const char *const *sets,
		     struct drill_inject **out, char *err, size_t errlen);

/*
 * Take the regions lock, clear any regions left over, bring up r1..rN,
 * decide netem or proxies for region-slow targets (and start the
 * proxies), make the spool directory DIR/spool (a tmpfs of fs_size for a
 * spool-full drill).  -errno with err.
 */
int drill_inject_setup(struct drill_inject *inj, char *err, size_t errlen);

/* Region @i's URLs for evringd (the proxies, if any) and direct ones. */
const char *drill_inject_urls(const struct drill_inject *inj, unsigned int i);
const char *drill_inject_direct_urls(const struct drill_inject *inj,
				     unsigned int i);
/* DIR/spool, DIR/control.sock, DIR/ingest.sock, DIR/evringd.conf */
const char *drill_inject_spool_dir(const struct drill_inject *inj);
const char *drill_inject_ctl(const struct drill_inject *inj);
const char *drill_inject_ingest(const struct drill_inject *inj);
const char *drill_inject_conf(const struct drill_inject *inj);

/*
 * Start evringd with DIR/evringd.conf and wait (up to @timeout_ms) until it
 * answers a ping.  -ETIMEDOUT, -ECHILD (it exited: err has its log's
 * last line).
 */
int drill_inject_daemon_start(struct drill_inject *inj, int timeout_ms,
			      char *err, size_t errlen);
/* Is evringd running (started and not reaped)? */
bool drill_inject_daemon_up(const struct drill_inject *inj);
/* Deaths nobody caused (outside daemon-kill and failpoint windows). */
unsigned int drill_inject_daemon_crashes(const struct drill_inject *inj);

/* Remember a process of the drill (the writers) for cleanup. */
void drill_inject_track(struct drill_inject *inj, pid_t pid,
			const char *what);

/*
 * Apply the schedule up to @t_ms from the drill's start: faults that
 * begin or end, flaps, kills; reap jobs; restart evringd when it died.
 */
void drill_inject_tick(struct drill_inject *inj, int64_t t_ms);

/*
 * End every fault still on (at @t_ms) and wait, bounded, for the jobs;
 * make sure evringd runs.  After an interruption too.
 */
void drill_inject_end_all(struct drill_inject *inj, int64_t t_ms);

/* Is fault @i applied right now? */
bool drill_inject_active(const struct drill_inject *inj, unsigned int i);
void drill_inject_fault_log(const struct drill_inject *inj, unsigned int i,
			    struct drill_fault_log *out);

/*
 * Remove everything (the journal replayed), unless @keep: then the
 * faults are removed but the regions, proxies and evringd stay up for a
 * look (`evringctl drill --cleanup DIR` later).  Accepts NULL.
 */
void drill_inject_free(struct drill_inject *inj, bool keep);

/* In a child forked from the runner that will not exec: drop the lock. */
void drill_inject_forked(struct drill_inject *inj);

/* Replay DIR/cleanup.journal; 0, or -errno with err (what stayed). */
int drill_cleanup_dir(const char *dir, bool keep, char *err, size_t errlen);
/*
 * The same under the machine-wide regions lock (what `--cleanup` runs): it
 * waits for a running drill or shipping test rather than tear its regions
 * down.  Not from a process that holds the lock already.
 */
int drill_cleanup_dir_locked(const char *dir, bool keep, char *err,
			     size_t errlen);

/*
 * One request line to evringd's control socket @path, one response line,
 * parsed into *@out (json_decref it).  0, -errno, -EBADMSG.
 */
int drill_ctl(const char *path, const char *req, int timeout_ms,
	      json_t **out);

/* Monotonic and wall clocks. */
int64_t drill_now_ms(void);
uint64_t drill_wall_ns(void);

#endif /* EVRINGD_DRILL_INJECT_H */
