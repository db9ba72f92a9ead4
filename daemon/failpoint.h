/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * failpoint: named instants in evringd where a drill can make the daemon
 * crash, stall or see a failed disk - the instants a signal from outside
 * cannot hit on purpose (between a commit and the release it allows,
 * between a publish and the cursor move it allows).
 *
 *	drain.before_commit   records staged, before the spool transaction
 *	drain.after_commit    the spool transaction committed, before any
 *	                      ring release or socket ACK
 *	ship.before_publish   a batch about to be submitted to a region
 *	ship.after_publish    a region acknowledged a batch, before the
 *	                      cursor move is committed to the spool
 *	ship.after_cursor     cursors (and the trims they allow, one
 *	                      transaction) committed
 *
 * Actions, each optionally followed by "@N" (act from the Nth hit after
 * arming on; before that a hit is only counted):
 *
 *	off          disarm; the hit count restarts at 0
 *	crash        raise(SIGKILL): the daemon dies exactly there
 *	pause:MS     sleep MS (1..60000) ms on the loop's thread
 *	error        the spool commit fails with -EIO, as if the disk had
 *	             (drain.before_commit only: evringd then stops, exit 1)
 *
 * Armed at start from EVRING_FAILPOINTS="name=action[,name=action...]"
 * (evringd: a bad list is "bad EVRING_FAILPOINTS: <why>", exit 1) and live
 * through the control socket ({"cmd":"failpoint","name":..,"action":..},
 * evringctl failpoint NAME ACTION | list).  docs/OPERATING.md, section
 * "Failpoints", is the operator's reference; daemon/drill_scenario.c's
 * drill_failpoints[] lists the same names.
 *
 * Guarantees:
 *  - Always compiled in.  Cost when nothing is armed: one load of a global
 *    flag and one predictable (not taken) branch per hook; no call, no
 *    counting.
 *  - A hit is counted only while its failpoint is armed; arming (any
 *    action, "off" included) returns the count of the previous arming and
 *    starts a new one at 0.
 *  - Parsing is all or nothing: a bad list or action arms nothing and says
 *    why in one line, quoting what was given.
 *  - Loop thread only: hooks, arming and reading happen on evringd's event
 *    loop thread (not thread-safe otherwise).
 */
#ifndef EVRINGD_FAILPOINT_H
#define EVRINGD_FAILPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FAILPOINT_ENV		"EVRING_FAILPOINTS"
#define FAILPOINT_PAUSE_MAX	60000		/* ms */
#define FAILPOINT_AFTER_MAX	1000000000u	/* the N of "@N" */
#define FAILPOINT_SPEC_MAX	1024		/* bytes of one EVRING_FAILPOINTS */
#define FAILPOINT_ACTION_MAX	32		/* "pause:60000@1000000000" + NUL */
#define FAILPOINT_WHY_MAX	256		/* room for any message */

enum failpoint_id {
	FP_DRAIN_BEFORE_COMMIT,
	FP_DRAIN_AFTER_COMMIT,
	FP_SHIP_BEFORE_PUBLISH,
	FP_SHIP_AFTER_PUBLISH,
	FP_SHIP_AFTER_CURSOR,
	FP_NR,
};

enum failpoint_kind {
	FAILPOINT_OFF,
	FAILPOINT_CRASH,
	FAILPOINT_PAUSE,
	FAILPOINT_ERROR,
};

struct failpoint_action {
	enum failpoint_kind kind;
	uint32_t pause_ms;		/* FAILPOINT_PAUSE: 1..60000 */
	uint32_t after;			/* act from this hit on: 1..AFTER_MAX */
};

/* Is any failpoint armed?  Read by the hooks; written by failpoint.c. */
extern bool failpoints_armed;

/* The slow path of failpoint(): count the hit, act.  0 or -EIO. */
int failpoint_hit(enum failpoint_id id);

/*
 * The hook.  Returns 0, or -EIO where the armed action is "error" (the
 * caller fails its spool call with it).  "crash" does not return; "pause"
 * returns 0 after the sleep.
 */
static inline int failpoint(enum failpoint_id id)
{
	if (__builtin_expect(__atomic_load_n(&failpoints_armed,
					     __ATOMIC_RELAXED), 0))
		return failpoint_hit(id);
	return 0;
}

/* "drain.before_commit" ...; NULL for an id out of range. */
const char *failpoint_name(enum failpoint_id id);

/* The id of @name; -ENOENT when there is none. */
int failpoint_lookup(const char *name, enum failpoint_id *out);

/*
 * Parse @text as an action for @id.  0, or -EINVAL with the reason in
 * @why (quoting @text, naming the failpoint).
 */
int failpoint_parse(enum failpoint_id id, const char *text,
		    struct failpoint_action *out, char *why, size_t len);

/* The canonical text of @a ("off", "crash@3", "pause:250"). */
void failpoint_format(const struct failpoint_action *a, char *buf,
		      size_t len);

/*
 * Arm failpoint @name with @action (text).  *@hits: the count of the
 * previous arming.  0, or -EINVAL with the reason in @why (nothing
 * changed).
 */
int failpoint_set(const char *name, const char *action, uint64_t *hits,
		  char *why, size_t len);

/*
 * Arm from an EVRING_FAILPOINTS list, "name=action[,name=action...]"; an
 * empty or NULL @spec arms nothing.  0, or -EINVAL with the reason in @why
 * (nothing armed).
 */
int failpoint_set_spec(const char *spec, char *why, size_t len);

/* What @id is armed with now, and its hits under that action. */
void failpoint_get(enum failpoint_id id, struct failpoint_action *a,
		   uint64_t *hits);

/* Everything off, every count 0 (for tests). */
void failpoint_reset(void);

#endif /* EVRINGD_FAILPOINT_H */
