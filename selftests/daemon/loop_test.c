// SPDX-License-Identifier: GPL-2.0-only
/*
 * loop_test: daemon/loop.c against the contract in daemon/loop.h: fd
 * callbacks, timer order, never-early and cancellation, signal delivery
 * through signalfd, and re-entrancy (removing fds and timers from inside
 * callbacks, stale events after a removal).
 *
 * Every test runs the loop on the test's own thread with a guard timer
 * that stops it, so a bug shows up as a failed assertion, not a hang.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "loop.h"
#include "kselftest_harness.h"

#define GUARD_MS	2000

struct rec {
	struct loop *l;
	int log[64];		/* what fired, in order */
	int n;
	int stop_after;		/* loop_stop() once n reaches it; 0: never */
	uint64_t ids[8];
	int fds[4];
	uint64_t t0_ms;
	uint64_t fired_ms[8];
	int bad;		/* calls inside callbacks that failed */
};

static void note(struct rec *r, int what)
{
	if (r->n < (int)(sizeof(r->log) / sizeof(r->log[0])))
		r->log[r->n] = what;
	r->n++;
	if (r->stop_after && r->n >= r->stop_after)
		loop_stop(r->l);
}

static void on_guard(struct loop *l, uint64_t id, void *arg)
{
	loop_stop(l);
}

static void guard(struct loop *l)
{
	loop_add_timer(l, GUARD_MS, 0, on_guard, NULL, NULL);
}

static void pipe_ok(int p[2])
{
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		abort();
}

static void drain(int fd)
{
	char buf[64];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

FIXTURE(loop) {
	struct loop *l;
	struct rec r;
};

FIXTURE_SETUP(loop)
{
	ASSERT_EQ(0, loop_new(&self->l));
	memset(&self->r, 0, sizeof(self->r));
	self->r.l = self->l;
	guard(self->l);
}

FIXTURE_TEARDOWN(loop)
{
	loop_free(self->l);
}

/* --- fds -------------------------------------------------------------- */

static void on_read(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct rec *r = arg;

	drain(fd);
	note(r, fd);
}

TEST_F(loop, fd_callback_runs_once_per_readiness_with_the_fd_and_arg)
{
	int p[2];

	pipe_ok(p);
	ASSERT_EQ(0, loop_add_fd(self->l, p[0], LOOP_IN, on_read, &self->r));
	ASSERT_EQ(1, write(p[1], "x", 1));
	self->r.stop_after = 1;
	ASSERT_EQ(0, loop_run(self->l));
	ASSERT_EQ(1, self->r.n);
	ASSERT_EQ(p[0], self->r.log[0]);
	close(p[0]);
	close(p[1]);
}

static void on_events(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct rec *r = arg;

	note(r, (int)events);
	loop_stop(l);
}

TEST_F(loop, writable_fd_reports_loop_out_and_mod_fd_switches_to_loop_in)
{
	int p[2];

	pipe_ok(p);
	ASSERT_EQ(0, loop_add_fd(self->l, p[1], LOOP_OUT, on_events,
				 &self->r));
	ASSERT_EQ(0, loop_run(self->l));
	ASSERT_EQ(1, self->r.n);
	ASSERT_EQ(LOOP_OUT, (unsigned int)self->r.log[0]);

	ASSERT_EQ(0, loop_add_fd(self->l, p[0], 0, on_events, &self->r));
	ASSERT_EQ(0, loop_mod_fd(self->l, p[1], 0));
	ASSERT_EQ(0, loop_mod_fd(self->l, p[0], LOOP_IN));
	ASSERT_EQ(1, write(p[1], "x", 1));
	ASSERT_EQ(0, loop_run(self->l));
	ASSERT_EQ(2, self->r.n);
	ASSERT_EQ(LOOP_IN, (unsigned int)self->r.log[1]);
	close(p[0]);
	close(p[1]);
}

TEST_F(loop, hung_up_pipe_reports_loop_hup)
{
	int p[2];

	pipe_ok(p);
	ASSERT_EQ(0, loop_add_fd(self->l, p[0], LOOP_IN, on_events,
				 &self->r));
	close(p[1]);
	ASSERT_EQ(0, loop_run(self->l));
	ASSERT_EQ(1, self->r.n);
	ASSERT_TRUE(!!(self->r.log[0] & (int)LOOP_HUP));
	close(p[0]);
}

TEST_F(loop, fd_registration_errors_are_exact)
{
	char path[] = "/tmp/loop_test.XXXXXX";
	int p[2], file;

	pipe_ok(p);
	ASSERT_EQ(0, loop_add_fd(self->l, p[0], LOOP_IN, on_read, NULL));
	ASSERT_EQ(-EEXIST, loop_add_fd(self->l, p[0], LOOP_IN, on_read, NULL));
	ASSERT_EQ(-EINVAL, loop_add_fd(self->l, p[1], LOOP_HUP, on_read,
				       NULL));
	ASSERT_EQ(-EINVAL, loop_add_fd(self->l, p[1], LOOP_IN, NULL, NULL));
	ASSERT_EQ(-EINVAL, loop_add_fd(self->l, -1, LOOP_IN, on_read, NULL));
	ASSERT_EQ(-EBADF, loop_add_fd(self->l, 999, LOOP_IN, on_read, NULL));
	ASSERT_EQ(-ENOENT, loop_mod_fd(self->l, p[1], LOOP_IN));
	ASSERT_EQ(-EINVAL, loop_mod_fd(self->l, p[0], 0x8000));
	ASSERT_EQ(-ENOENT, loop_del_fd(self->l, p[1]));
	ASSERT_EQ(-ENOENT, loop_del_fd(self->l, 100000));

	file = mkstemp(path);
	ASSERT_GE(file, 0);
	unlink(path);
	ASSERT_EQ(-EPERM, loop_add_fd(self->l, file, LOOP_IN, on_read, NULL));
	/* A failed add leaves nothing behind. */
	ASSERT_EQ(-ENOENT, loop_del_fd(self->l, file));

	ASSERT_EQ(0, loop_del_fd(self->l, p[0]));
	ASSERT_EQ(-ENOENT, loop_del_fd(self->l, p[0]));
	ASSERT_EQ(0, loop_add_fd(self->l, p[0], LOOP_IN, on_read, NULL));
	close(file);
	close(p[0]);
	close(p[1]);
}

/* Both pipes are readable in the same batch; whichever runs first removes
 * (and closes) both, so exactly one callback may run. */
static void on_read_remove_all(struct loop *l, int fd, uint32_t events,
			       void *arg)
{
	struct rec *r = arg;

	note(r, fd);
	for (int i = 0; i < 2; i++) {
		if (r->fds[i] < 0)
			continue;
		r->bad += loop_del_fd(l, r->fds[i]) != 0;
		close(r->fds[i]);
		r->fds[i] = -1;
	}
}

static void on_stop_timer(struct loop *l, uint64_t id, void *arg)
{
	loop_stop(l);
}

TEST_F(loop, removing_fds_inside_a_callback_stops_their_pending_events)
{
	int a[2], b[2];

	pipe_ok(a);
	pipe_ok(b);
	self->r.fds[0] = a[0];
	self->r.fds[1] = b[0];
	ASSERT_EQ(0, loop_add_fd(self->l, a[0], LOOP_IN, on_read_remove_all,
				 &self->r));
	ASSERT_EQ(0, loop_add_fd(self->l, b[0], LOOP_IN, on_read_remove_all,
				 &self->r));
	ASSERT_EQ(1, write(a[1], "x", 1));
	ASSERT_EQ(1, write(b[1], "x", 1));
	ASSERT_EQ(0, loop_add_timer(self->l, 50, 0, on_stop_timer, NULL,
				    NULL));
	ASSERT_EQ(0, loop_run(self->l));
	ASSERT_EQ(1, self->r.n);
	ASSERT_EQ(0, self->r.bad);
	close(a[1]);
	close(b[1]);
}

/*
 * The first callback to run removes and closes the other pipe, then opens
 * a new (idle) pipe that takes the freed fd number and registers it with
 * on_never.  The other pipe's event, already collected, must not reach
 * the new registration.
 */
static void on_never(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct rec *r = arg;

	note(r, 1000 + fd);
}

static void on_read_replace_other(struct loop *l, int fd, uint32_t events,
				  void *arg)
{
	struct rec *r = arg;
	int other = fd == r->fds[0] ? 1 : 0, np[2];

	note(r, fd);
	drain(fd);
	if (r->fds[other] < 0)
		return;
	loop_del_fd(l, r->fds[other]);
	close(r->fds[other]);
	pipe_ok(np);
	/* np[0] reuses the lowest free number: the fd just closed. */
	r->fds[2] = np[0];
	r->fds[3] = np[1];
	r->fds[other] = -1;
	loop_add_fd(l, np[0], LOOP_IN, on_never, r);
}

TEST_F(loop, stale_event_never_reaches_a_new_registration_of_the_same_fd)
{
	int a[2], b[2];

	pipe_ok(a);
	pipe_ok(b);
	self->r.fds[0] = a[0];
	self->r.fds[1] = b[0];
	ASSERT_EQ(0, loop_add_fd(self->l, a[0], LOOP_IN, on_read_replace_other,
				 &self->r));
	ASSERT_EQ(0, loop_add_fd(self->l, b[0], LOOP_IN, on_read_replace_other,
				 &self->r));
	ASSERT_EQ(1, write(a[1], "x", 1));
	ASSERT_EQ(1, write(b[1], "x", 1));
	ASSERT_EQ(0, loop_add_timer(self->l, 50, 0, on_stop_timer, NULL,
				    NULL));
	ASSERT_EQ(0, loop_run(self->l));
	ASSERT_EQ(1, self->r.n);
	ASSERT_TRUE(self->r.fds[2] == a[0] || self->r.fds[2] == b[0]);
	close(self->r.fds[2]);
	close(self->r.fds[3]);
	close(self->r.fds[0] >= 0 ? self->r.fds[0] : self->r.fds[1]);
	close(a[1]);
	close(b[1]);
}

static void on_read_remove_self(struct loop *l, int fd, uint32_t events,
				void *arg)
{
	struct rec *r = arg;

	note(r, fd);
	/* Not drained: a level-triggered fd would fire again if still in. */
	r->bad += loop_del_fd(l, fd) != 0;
	close(fd);
}

TEST_F(loop, removing_the_running_fd_in_its_callback_is_safe_and_final)
{
	int p[2];

	pipe_ok(p);
	ASSERT_EQ(0, loop_add_fd(self->l, p[0], LOOP_IN, on_read_remove_self,
				 &self->r));
	ASSERT_EQ(3, write(p[1], "xyz", 3));
	ASSERT_EQ(0, loop_add_timer(self->l, 50, 0, on_stop_timer, NULL,
				    NULL));
	ASSERT_EQ(0, loop_run(self->l));
	ASSERT_EQ(1, self->r.n);
	ASSERT_EQ(0, self->r.bad);
	close(p[1]);
}

/* --- timers ----------------------------------------------------------- */

static void on_timer(struct loop *l, uint64_t id, void *arg)
{
	struct rec *r = arg;

	if (r->n < 8)
		r->fired_ms[r->n] = loop_now_ms() - r->t0_ms;
	note(r, (int)id);
}

TEST_F(loop, timers_fire_in_deadline_order_ties_in_order_added)
{
	uint64_t t30, t10a, t20, t10b, t0;

	self->r.stop_after = 5;
	ASSERT_EQ(0, loop_add_timer(self->l, 30, 0, on_timer, &self->r, &t30));
	ASSERT_EQ(0, loop_add_timer(self->l, 10, 0, on_timer, &self->r,
				    &t10a));
	ASSERT_EQ(0, loop_add_timer(self->l, 20, 0, on_timer, &self->r, &t20));
	ASSERT_EQ(0, loop_add_timer(self->l, 10, 0, on_timer, &self->r,
				    &t10b));
	ASSERT_EQ(0, loop_add_timer(self->l, 0, 0, on_timer, &self->r, &t0));
	ASSERT_NE(0, (int)t30);
	ASSERT_EQ(0, loop_run(self->l));
	ASSERT_EQ(5, self->r.n);
	EXPECT_EQ((int)t0, self->r.log[0]);
	EXPECT_EQ((int)t10a, self->r.log[1]);
	EXPECT_EQ((int)t10b, self->r.log[2]);
	EXPECT_EQ((int)t20, self->r.log[3]);
	EXPECT_EQ((int)t30, self->r.log[4]);
}

TEST_F(loop, timer_never_fires_before_its_deadline)
{
	uint64_t start;
	struct timespec a, b;

	clock_gettime(CLOCK_MONOTONIC, &a);
	start = loop_now_ms();
	self->r.t0_ms = start;
	self->r.stop_after = 1;
	ASSERT_EQ(0, loop_add_timer(self->l, 25, 0, on_timer, &self->r, NULL));
	ASSERT_EQ(0, loop_run(self->l));
	clock_gettime(CLOCK_MONOTONIC, &b);
	ASSERT_EQ(1, self->r.n);
	ASSERT_GE((b.tv_sec - a.tv_sec) * 1000000000ll +
		  (b.tv_nsec - a.tv_nsec), 25000000ll);
}

TEST_F(loop, cancelled_timer_never_fires_and_cancel_is_exact)
{
	uint64_t keep, gone;

	self->r.stop_after = 1;
	ASSERT_EQ(0, loop_add_timer(self->l, 10, 0, on_timer, &self->r,
				    &gone));
	ASSERT_EQ(0, loop_add_timer(self->l, 30, 0, on_timer, &self->r,
				    &keep));
	ASSERT_EQ(0, loop_cancel_timer(self->l, gone));
	ASSERT_EQ(-ENOENT, loop_cancel_timer(self->l, gone));
	ASSERT_EQ(-ENOENT, loop_cancel_timer(self->l, 0));
	ASSERT_EQ(0, loop_run(self->l));
	ASSERT_EQ(1, self->r.n);
	ASSERT_EQ((int)keep, self->r.log[0]);
	/* A one-shot timer is gone once it fired. */
	ASSERT_EQ(-ENOENT, loop_cancel_timer(self->l, keep));
	ASSERT_EQ(-EINVAL, loop_add_timer(self->l, 0, 0, NULL, NULL, NULL));
	ASSERT_EQ(-EINVAL, loop_add_timer(self->l, UINT64_MAX, 0, on_timer,
					  NULL, NULL));
}

static void on_periodic(struct loop *l, uint64_t id, void *arg)
{
	struct rec *r = arg;

	note(r, (int)id);
	if (r->n == 3) {
		r->bad += loop_cancel_timer(l, id) != 0;
		loop_add_timer(l, 50, 0, on_stop_timer, NULL, NULL);
	}
}

TEST_F(loop, periodic_timer_repeats_until_it_cancels_itself)
{
	uint64_t id;

	ASSERT_EQ(0, loop_add_timer(self->l, 5, 5, on_periodic, &self->r,
				    &id));
	ASSERT_EQ(0, loop_run(self->l));
	ASSERT_EQ(3, self->r.n);
	ASSERT_EQ(0, self->r.bad);
	ASSERT_EQ(-ENOENT, loop_cancel_timer(self->l, id));
}

static void on_cancel_next(struct loop *l, uint64_t id, void *arg)
{
	struct rec *r = arg;

	note(r, (int)id);
	loop_cancel_timer(l, r->ids[1]);
	loop_add_timer(l, 30, 0, on_stop_timer, NULL, NULL);
}

TEST_F(loop, timer_cancelled_by_an_earlier_one_due_in_the_same_pass_is_skipped)
{
	ASSERT_EQ(0, loop_add_timer(self->l, 10, 0, on_cancel_next, &self->r,
				    &self->r.ids[0]));
	ASSERT_EQ(0, loop_add_timer(self->l, 10, 0, on_timer, &self->r,
				    &self->r.ids[1]));
	ASSERT_EQ(0, loop_run(self->l));
	ASSERT_EQ(1, self->r.n);
	ASSERT_EQ((int)self->r.ids[0], self->r.log[0]);
}

static void on_respin(struct loop *l, uint64_t id, void *arg)
{
	struct rec *r = arg;

	r->ids[0]++;
	loop_add_timer(l, 0, 0, on_respin, r, NULL);
}

TEST_F(loop, zero_ms_timer_readding_itself_does_not_starve_fds)
{
	int p[2];

	pipe_ok(p);
	self->r.stop_after = 1;
	ASSERT_EQ(0, loop_add_fd(self->l, p[0], LOOP_IN, on_read, &self->r));
	ASSERT_EQ(0, loop_add_timer(self->l, 0, 0, on_respin, &self->r, NULL));
	ASSERT_EQ(1, write(p[1], "x", 1));
	ASSERT_EQ(0, loop_run(self->l));
	ASSERT_EQ(1, self->r.n);
	ASSERT_EQ(p[0], self->r.log[0]);
	/* It ran once per pass, not in a tight loop inside one pass. */
	ASSERT_LE(self->r.ids[0], 3u);
	close(p[0]);
	close(p[1]);
}

TEST_F(loop, run_returns_after_stop_and_can_run_again)
{
	self->r.stop_after = 1;
	ASSERT_EQ(0, loop_add_timer(self->l, 1, 0, on_timer, &self->r, NULL));
	ASSERT_EQ(0, loop_run(self->l));
	ASSERT_EQ(1, self->r.n);
	self->r.stop_after = 2;
	ASSERT_EQ(0, loop_add_timer(self->l, 1, 0, on_timer, &self->r, NULL));
	ASSERT_EQ(0, loop_run(self->l));
	ASSERT_EQ(2, self->r.n);
}

/* --- signals ---------------------------------------------------------- */

static void on_signal(struct loop *l, int signo, void *arg)
{
	struct rec *r = arg;

	note(r, signo);
	loop_stop(l);
}

static int is_blocked(int signo)
{
	sigset_t cur;

	sigprocmask(SIG_BLOCK, NULL, &cur);
	return sigismember(&cur, signo);
}

TEST_F(loop, signal_is_delivered_through_the_loop_and_blocked_until_free)
{
	ASSERT_EQ(0, is_blocked(SIGUSR1));
	ASSERT_EQ(0, loop_add_signal(self->l, SIGUSR1, on_signal, &self->r));
	ASSERT_EQ(1, is_blocked(SIGUSR1));
	/* Blocked: this would kill the process if it were not. */
	ASSERT_EQ(0, kill(getpid(), SIGUSR1));
	ASSERT_EQ(0, loop_run(self->l));
	ASSERT_EQ(1, self->r.n);
	ASSERT_EQ(SIGUSR1, self->r.log[0]);
	loop_free(self->l);
	self->l = NULL;
	ASSERT_EQ(0, is_blocked(SIGUSR1));
	ASSERT_EQ(0, loop_new(&self->l));
}

static void on_note_signal(struct loop *l, int signo, void *arg)
{
	note(arg, signo);
}

TEST_F(loop, two_signals_reach_their_own_callbacks_in_one_signalfd)
{
	self->r.stop_after = 2;
	ASSERT_EQ(0, loop_add_signal(self->l, SIGUSR1, on_note_signal,
				     &self->r));
	ASSERT_EQ(0, loop_add_signal(self->l, SIGUSR2, on_note_signal,
				     &self->r));
	ASSERT_EQ(0, kill(getpid(), SIGUSR2));
	ASSERT_EQ(0, kill(getpid(), SIGUSR1));
	ASSERT_EQ(0, loop_run(self->l));
	ASSERT_EQ(2, self->r.n);
	/* signalfd reports pending standard signals lowest number first. */
	ASSERT_EQ(SIGUSR1, self->r.log[0]);
	ASSERT_EQ(SIGUSR2, self->r.log[1]);
}

TEST_F(loop, signal_registration_errors_are_exact)
{
	ASSERT_EQ(-EINVAL, loop_add_signal(self->l, SIGKILL, on_signal, NULL));
	ASSERT_EQ(-EINVAL, loop_add_signal(self->l, SIGSTOP, on_signal, NULL));
	ASSERT_EQ(-EINVAL, loop_add_signal(self->l, 0, on_signal, NULL));
	ASSERT_EQ(-EINVAL, loop_add_signal(self->l, _NSIG, on_signal, NULL));
	ASSERT_EQ(-EINVAL, loop_add_signal(self->l, SIGHUP, NULL, NULL));
	ASSERT_EQ(0, loop_add_signal(self->l, SIGHUP, on_signal, NULL));
	ASSERT_EQ(-EEXIST, loop_add_signal(self->l, SIGHUP, on_signal, NULL));
	ASSERT_EQ(0, loop_del_signal(self->l, SIGHUP));
	ASSERT_EQ(-ENOENT, loop_del_signal(self->l, SIGHUP));
	ASSERT_EQ(0, is_blocked(SIGHUP));
}

TEST_F(loop, removed_signal_is_unblocked_and_its_pending_instance_discarded)
{
	struct sigaction sa = { .sa_handler = SIG_DFL }, old;

	ASSERT_EQ(0, loop_add_signal(self->l, SIGUSR1, on_signal, &self->r));
	ASSERT_EQ(0, kill(getpid(), SIGUSR1));
	/* Pending now; removal must not let it kill us on unblock. */
	ASSERT_EQ(0, sigaction(SIGUSR1, &sa, &old));
	ASSERT_EQ(0, loop_del_signal(self->l, SIGUSR1));
	ASSERT_EQ(0, is_blocked(SIGUSR1));
	ASSERT_EQ(0, self->r.n);
}

TEST(loop_free_accepts_null)
{
	loop_free(NULL);
}

TEST_HARNESS_MAIN
