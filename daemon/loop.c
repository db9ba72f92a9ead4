// SPDX-License-Identifier: GPL-2.0-only
/*
 * loop: epoll, a sorted timer list and one signalfd.  See loop.h for the
 * contract.
 *
 * fds: each registration is a struct loop_fd that epoll carries as
 * data.ptr, found again by fd through a table indexed by fd.  Removing one
 * marks it dead and parks it on a list freed after the current batch of
 * events, so an event already collected for it is skipped instead of
 * touching freed memory or a newer registration of the same fd number.
 *
 * timers: a list sorted by (deadline, id).  A daemon has tens of timers,
 * so insertion and cancellation by walking it beat a heap on simplicity.
 * Times are kept in ns so that "never early" holds exactly; epoll_wait()
 * gets the distance to the first deadline rounded up to whole ms.
 */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "loop.h"

_Static_assert(LOOP_IN == EPOLLIN && LOOP_OUT == EPOLLOUT &&
	       LOOP_ERR == EPOLLERR && LOOP_HUP == EPOLLHUP,
	       "LOOP_* bits are the epoll bits");

#define LOOP_BATCH	64		/* events per epoll_wait() */
#define NS_PER_MS	1000000ull
#define LOOP_MS_MAX	(UINT64_MAX / NS_PER_MS / 4)

struct loop_fd {
	int fd;
	uint32_t events;
	loop_fd_cb cb;
	void *arg;
	bool dead;
	struct loop_fd *next_dead;
};

struct loop_timer {
	uint64_t id;
	uint64_t deadline_ns;
	uint64_t period_ns;		/* 0: one-shot */
	loop_timer_cb cb;
	void *arg;
	struct loop_timer *next;
};

struct loop_sig {
	loop_signal_cb cb;
	void *arg;
	bool blocked_by_us;		/* unblock it again on removal */
};

struct loop {
	int epfd;
	bool stop;

	struct loop_fd **fds;		/* indexed by fd, NULL: unregistered */
	size_t nr_fds;			/* slots in fds */
	struct loop_fd *dead;		/* removed, freed after the batch */

	struct loop_timer *timers;	/* sorted by (deadline_ns, id) */
	uint64_t next_timer_id;

	int sigfd;			/* -1 until the first signal */
	sigset_t sigmask;		/* what sigfd reads */
	struct loop_sig sigs[_NSIG];
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t loop_now_ms(void)
{
	return now_ns() / NS_PER_MS;
}

int loop_new(struct loop **out)
{
	struct loop *l = calloc(1, sizeof(*l));

	if (!l)
		return -ENOMEM;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		int err = -errno;

		free(l);
		return err;
	}
	l->sigfd = -1;
	l->next_timer_id = 1;
	sigemptyset(&l->sigmask);
	*out = l;
	return 0;
}

static void free_dead(struct loop *l)
{
	while (l->dead) {
		struct loop_fd *e = l->dead;

		l->dead = e->next_dead;
		free(e);
	}
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
	for (int s = 1; s < _NSIG; s++)
		if (l->sigs[s].cb)
			loop_del_signal(l, s);
	for (size_t i = 0; i < l->nr_fds; i++)
		free(l->fds[i]);
	free(l->fds);
	free_dead(l);
	while (l->timers) {
		struct loop_timer *t = l->timers;

		l->timers = t->next;
		free(t);
	}
	if (l->sigfd >= 0)
		close(l->sigfd);
	close(l->epfd);
	free(l);
}

/* --- fds -------------------------------------------------------------- */

static bool events_ok(uint32_t events)
{
	return !(events & ~(LOOP_IN | LOOP_OUT));
}

static struct loop_fd *find_fd(const struct loop *l, int fd)
{
	if (fd < 0 || (size_t)fd >= l->nr_fds)
		return NULL;
	return l->fds[fd];
}

/* Make l->fds[fd] addressable. */
static int grow_fds(struct loop *l, int fd)
{
	size_t n = l->nr_fds ? l->nr_fds : 64;
	struct loop_fd **fds;

	if ((size_t)fd < l->nr_fds)
		return 0;
	while (n <= (size_t)fd)
		n *= 2;
	fds = realloc(l->fds, n * sizeof(*fds));
	if (!fds)
		return -ENOMEM;
	memset(fds + l->nr_fds, 0, (n - l->nr_fds) * sizeof(*fds));
	l->fds = fds;
	l->nr_fds = n;
	return 0;
}

int loop_add_fd(struct loop *l, int fd, uint32_t events, loop_fd_cb cb,
		void *arg)
{
	struct epoll_event ev = { .events = events };
	struct loop_fd *e;
	int err;

	if (fd < 0 || !cb || !events_ok(events))
		return -EINVAL;
	if (find_fd(l, fd))
		return -EEXIST;
	err = grow_fds(l, fd);
	if (err)
		return err;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->fd = fd;
	e->events = events;
	e->cb = cb;
	e->arg = arg;
	ev.data.ptr = e;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		err = -errno;
		free(e);
		return err;
	}
	l->fds[fd] = e;
	return 0;
}

int loop_mod_fd(struct loop *l, int fd, uint32_t events)
{
	struct loop_fd *e = find_fd(l, fd);
	struct epoll_event ev = { .events = events };

	if (!events_ok(events))
		return -EINVAL;
	if (!e)
		return -ENOENT;
	if (e->events == events)
		return 0;
	ev.data.ptr = e;
	if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
		return -errno;
	e->events = events;
	return 0;
}

int loop_del_fd(struct loop *l, int fd)
{
	struct loop_fd *e = find_fd(l, fd);

	if (!e)
		return -ENOENT;
	/*
	 * EBADF/ENOENT: the caller closed the fd first; epoll dropped it
	 * already unless a dup was open, which is the caller's bug.
	 */
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
	l->fds[fd] = NULL;
	e->dead = true;
	e->next_dead = l->dead;
	l->dead = e;
	return 0;
}

/* --- timers ----------------------------------------------------------- */

static void insert_timer(struct loop *l, struct loop_timer *t)
{
	struct loop_timer **p = &l->timers;

	while (*p && ((*p)->deadline_ns < t->deadline_ns ||
		      ((*p)->deadline_ns == t->deadline_ns && (*p)->id < t->id)))
		p = &(*p)->next;
	t->next = *p;
	*p = t;
}

int loop_add_timer(struct loop *l, uint64_t after_ms, uint64_t period_ms,
		   loop_timer_cb cb, void *arg, uint64_t *id)
{
	struct loop_timer *t;

	if (!cb || after_ms > LOOP_MS_MAX || period_ms > LOOP_MS_MAX)
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->id = l->next_timer_id++;
	t->deadline_ns = now_ns() + after_ms * NS_PER_MS;
	t->period_ns = period_ms * NS_PER_MS;
	t->cb = cb;
	t->arg = arg;
	insert_timer(l, t);
	if (id)
		*id = t->id;
	return 0;
}

int loop_cancel_timer(struct loop *l, uint64_t id)
{
	for (struct loop_timer **p = &l->timers; *p; p = &(*p)->next) {
		struct loop_timer *t = *p;

		if (t->id == id) {
			*p = t->next;
			free(t);
			return 0;
		}
	}
	return -ENOENT;
}

/* ms until the first deadline, rounded up; -1 when there is no timer. */
static int next_timeout(const struct loop *l)
{
	uint64_t now, ms;

	if (!l->timers)
		return -1;
	now = now_ns();
	if (l->timers->deadline_ns <= now)
		return 0;
	ms = (l->timers->deadline_ns - now + NS_PER_MS - 1) / NS_PER_MS;
	return ms > INT_MAX ? INT_MAX : (int)ms;
}

/*
 * Fire every timer due now that existed before this pass.  The list head
 * is re-read after each callback, which may have added or cancelled any
 * timer; a timer added during the pass has an id >= @limit and a deadline
 * >= @now, so it sorts after every older due timer and stops the walk.
 */
static void run_timers(struct loop *l)
{
	uint64_t now = now_ns(), limit = l->next_timer_id;

	while (l->timers && l->timers->deadline_ns <= now &&
	       l->timers->id < limit) {
		struct loop_timer *t = l->timers;
		uint64_t id = t->id;

		l->timers = t->next;
		if (t->period_ns) {
			t->deadline_ns += t->period_ns;
			if (t->deadline_ns <= now)	/* fell behind: skip */
				t->deadline_ns = now + t->period_ns;
			insert_timer(l, t);
			t->cb(l, id, t->arg);	/* may cancel t */
		} else {
			loop_timer_cb cb = t->cb;
			void *arg = t->arg;

			free(t);
			cb(l, id, arg);
		}
	}
}

/* --- signals ---------------------------------------------------------- */

static void on_signalfd(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct signalfd_siginfo si[16];
	ssize_t n = read(fd, si, sizeof(si));

	if (n <= 0)
		return;		/* EAGAIN: another reader; nothing to do */
	for (size_t i = 0; i < (size_t)n / sizeof(si[0]); i++) {
		int s = (int)si[i].ssi_signo;

		/* A callback may have removed a signal further down. */
		if (s > 0 && s < _NSIG && l->sigs[s].cb)
			l->sigs[s].cb(l, s, l->sigs[s].arg);
	}
}

int loop_add_signal(struct loop *l, int signo, loop_signal_cb cb, void *arg)
{
	sigset_t one, old, mask;
	int fd, err;

	if (signo <= 0 || signo >= _NSIG || signo == SIGKILL ||
	    signo == SIGSTOP || !cb)
		return -EINVAL;
	if (l->sigs[signo].cb)
		return -EEXIST;
	sigemptyset(&one);
	sigaddset(&one, signo);
	mask = l->sigmask;
	sigaddset(&mask, signo);
	fd = signalfd(l->sigfd, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (l->sigfd < 0) {
		err = loop_add_fd(l, fd, LOOP_IN, on_signalfd, NULL);
		if (err) {
			close(fd);
			return err;
		}
		l->sigfd = fd;
	}
	err = pthread_sigmask(SIG_BLOCK, &one, &old);
	if (err) {
		signalfd(l->sigfd, &l->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
		return -err;
	}
	l->sigmask = mask;
	l->sigs[signo] = (struct loop_sig){
		.cb = cb, .arg = arg,
		.blocked_by_us = !sigismember(&old, signo),
	};
	return 0;
}

int loop_del_signal(struct loop *l, int signo)
{
	struct timespec zero = { 0, 0 };
	sigset_t one;

	if (signo <= 0 || signo >= _NSIG)
		return -EINVAL;
	if (!l->sigs[signo].cb)
		return -ENOENT;
	sigdelset(&l->sigmask, signo);
	signalfd(l->sigfd, &l->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
	sigemptyset(&one);
	sigaddset(&one, signo);
	if (l->sigs[signo].blocked_by_us) {
		/* Discard what is pending so unblocking cannot deliver it. */
		while (sigtimedwait(&one, NULL, &zero) == signo)
			;
		pthread_sigmask(SIG_UNBLOCK, &one, NULL);
	}
	l->sigs[signo] = (struct loop_sig){ 0 };
	return 0;
}

/* --- run -------------------------------------------------------------- */

int loop_run(struct loop *l)
{
	struct epoll_event evs[LOOP_BATCH];

	l->stop = false;
	while (!l->stop) {
		int n = epoll_wait(l->epfd, evs, LOOP_BATCH, next_timeout(l));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (int i = 0; i < n; i++) {
			struct loop_fd *e = evs[i].data.ptr;

			if (e->dead)
				continue;
			e->cb(l, e->fd, evs[i].events, e->arg);
		}
		free_dead(l);
		run_timers(l);
		free_dead(l);
	}
	return 0;
}

void loop_stop(struct loop *l)
{
	l->stop = true;
}
