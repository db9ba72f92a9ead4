/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * loop: evringd's one event loop (epoll), in the style of Redis' ae and
 * OpenBSD ntpd.  Every subsystem registers its fds, timers and signals here;
 * nothing else in the daemon calls epoll_wait().
 *
 *	struct loop *l;
 *	loop_new(&l);
 *	loop_add_fd(l, fd, LOOP_IN, on_readable, ctx);
 *	loop_add_timer(l, 5, 0, on_flush, ctx, &id);	one-shot, 5 ms
 *	loop_add_timer(l, 1000, 1000, on_tick, ctx, NULL);	periodic
 *	loop_add_signal(l, SIGTERM, on_term, ctx);	on_term calls loop_stop()
 *	loop_run(l);					until loop_stop()
 *	loop_free(l);
 *
 * Guarantees:
 *  - One thread: every callback runs on the thread inside loop_run(), one at
 *    a time.  The loop is not thread-safe; other threads talk to it over an
 *    fd (a pipe or eventfd registered here).
 *  - Re-entrancy: from inside any callback it is safe to add, modify and
 *    remove fds, timers and signals, including removing the fd or timer
 *    whose callback is running, and to call loop_stop().  Once loop_del_fd()
 *    returns, that registration's callback is never called again, even for
 *    events already collected in the same epoll_wait() batch; the caller
 *    may close the fd right away.
 *  - Timers run on CLOCK_MONOTONIC with millisecond resolution, never early.
 *    Due timers fire in deadline order, ties in the order they were added.
 *    A timer added from a callback fires no sooner than the next pass of
 *    the loop, so a 0 ms timer re-adding itself cannot starve fds.  A
 *    periodic timer that fell behind (a long callback) fires once, then
 *    keeps its period from now: missed periods are skipped, not bunched.
 *  - Signals arrive through one signalfd: loop_add_signal() blocks the
 *    signal in the calling thread (call it before creating threads, which
 *    inherit the mask) and loop_free() restores the signals it blocked.
 *
 * Functions return 0 or -errno; out-parameters are written only on success;
 * loop_free() accepts NULL.
 */
#ifndef EVRINGD_LOOP_H
#define EVRINGD_LOOP_H

#include <stdint.h>

struct loop;

/* fd events: the same bits as EPOLLIN/EPOLLOUT/EPOLLERR/EPOLLHUP. */
#define LOOP_IN		0x001u	/* readable (or a listening socket ready) */
#define LOOP_OUT	0x004u	/* writable */
#define LOOP_ERR	0x008u	/* reported only, never requested */
#define LOOP_HUP	0x010u	/* reported only, never requested */

/* @events: the LOOP_* bits that are ready (ERR/HUP whatever was asked). */
typedef void (*loop_fd_cb)(struct loop *l, int fd, uint32_t events,
			   void *arg);
/* @id: the timer's id, as loop_add_timer() returned it. */
typedef void (*loop_timer_cb)(struct loop *l, uint64_t id, void *arg);
typedef void (*loop_signal_cb)(struct loop *l, int signo, void *arg);

int loop_new(struct loop **out);
/* Closes the loop's own fds only (epoll, signalfd); never the caller's. */
void loop_free(struct loop *l);

/*
 * Watch @fd for @events (LOOP_IN and/or LOOP_OUT; 0 registers it quiet).
 * Level-triggered.  -EEXIST when @fd is already registered, -EINVAL for
 * bad @events or fd, or what epoll_ctl() says (-EPERM: a regular file).
 */
int loop_add_fd(struct loop *l, int fd, uint32_t events, loop_fd_cb cb,
		void *arg);
/* Change the events watched on @fd; -ENOENT when it is not registered. */
int loop_mod_fd(struct loop *l, int fd, uint32_t events);
/* Stop watching @fd (call before close()); -ENOENT when not registered. */
int loop_del_fd(struct loop *l, int fd);

/*
 * Call @cb @after_ms from now, then every @period_ms (0: once).  *@id
 * (may be NULL) names the timer for loop_cancel_timer(); ids are never
 * reused and never 0.  A one-shot timer is gone by the time its callback
 * runs; a periodic one may cancel itself from its callback.
 */
int loop_add_timer(struct loop *l, uint64_t after_ms, uint64_t period_ms,
		   loop_timer_cb cb, void *arg, uint64_t *id);
/* -ENOENT when @id is not pending (already fired or cancelled). */
int loop_cancel_timer(struct loop *l, uint64_t id);

/*
 * Deliver @signo through the loop: blocks it in the calling thread and
 * adds it to the loop's signalfd.  -EEXIST when already registered,
 * -EINVAL for SIGKILL/SIGSTOP or an invalid number.
 */
int loop_add_signal(struct loop *l, int signo, loop_signal_cb cb, void *arg);
/* Unregister and unblock @signo (pending instances are discarded first). */
int loop_del_signal(struct loop *l, int signo);

/*
 * Dispatch until loop_stop(): returns 0 after the pass in which it was
 * called, or -errno when epoll_wait() fails with anything but EINTR.
 * May be called again after it returns.
 */
int loop_run(struct loop *l);
void loop_stop(struct loop *l);

/* CLOCK_MONOTONIC now, in ms: the clock timers run on. */
uint64_t loop_now_ms(void);

#endif /* EVRINGD_LOOP_H */
