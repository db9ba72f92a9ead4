/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Small helpers shared by the evring kmod selftests: poisoning output
 * structs, dropping a capability, running a function in a child process and
 * looking at how that child is doing.
 *
 * Children started with evt_spawn() are remembered so that a fixture's
 * teardown can evt_reap_all() them: a child blocked in the device holds a
 * reference on the module, which must go before the module can unload.
 */
#ifndef EVRING_TEST_UTIL_H
#define EVRING_TEST_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/capability.h>

/* Fill an output struct with 0xa5 so that a field the kernel left unwritten
 * shows up as 0xa5a5... instead of a plausible zero.
 */
#define EVT_POISON(x) memset(&(x), 0xa5, sizeof(x))

static inline uint64_t evt_now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static inline void evt_sleep_ms(unsigned int ms)
{
	struct timespec ts = {
		.tv_sec = ms / 1000,
		.tv_nsec = (long)(ms % 1000) * 1000000L,
	};

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* Drop @cap from the effective, permitted and inheritable sets of the
 * calling thread.  Returns 0 or -errno.
 */
static inline int evt_drop_cap(int cap)
{
	struct __user_cap_header_struct hdr = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
	uint32_t bit = 1u << (cap % 32);

	if (syscall(SYS_capget, &hdr, data))
		return -errno;
	data[cap / 32].effective &= ~bit;
	data[cap / 32].permitted &= ~bit;
	data[cap / 32].inheritable &= ~bit;
	if (syscall(SYS_capset, &hdr, data))
		return -errno;
	return 0;
}

#define EVT_MAX_CHILDREN 64
static pid_t evt_children[EVT_MAX_CHILDREN];

static inline void evt_forget(pid_t pid)
{
	for (int i = 0; i < EVT_MAX_CHILDREN; i++)
		if (evt_children[i] == pid)
			evt_children[i] = 0;
}

/*
 * Run @fn(@arg) in a child process that exits with its return value (keep
 * it in 0..254; 255 is the harness's "skip").  The child must not use the
 * harness's ASSERT/EXPECT macros.  Returns the pid or -errno.
 */
static inline pid_t evt_spawn(int (*fn)(void *), void *arg)
{
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0)
		_exit(fn(arg));
	for (int i = 0; i < EVT_MAX_CHILDREN; i++) {
		if (!evt_children[i]) {
			evt_children[i] = pid;
			break;
		}
	}
	return pid;
}

/*
 * Wait up to @timeout_ms for @pid to end.  Returns its exit status
 * (0..255), 256 + the signal that killed it, or -ETIMEDOUT while it is
 * still running (it is left running).
 */
static inline int evt_wait(pid_t pid, int timeout_ms)
{
	uint64_t end = evt_now_ns(CLOCK_MONOTONIC) +
		       (uint64_t)timeout_ms * 1000000ull;
	int status;

	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid) {
			evt_forget(pid);
			if (WIFEXITED(status))
				return WEXITSTATUS(status);
			return 256 + WTERMSIG(status);
		}
		if (r < 0)
			return -errno;
		if (evt_now_ns(CLOCK_MONOTONIC) >= end)
			return -ETIMEDOUT;
		evt_sleep_ms(2);
	}
}

/* SIGKILL @pid and wait for it.  Returns what evt_wait() returns. */
static inline int evt_kill(pid_t pid)
{
	kill(pid, SIGKILL);
	return evt_wait(pid, 30000);
}

/* SIGKILL and reap every child evt_spawn() started that is still around. */
static inline void evt_reap_all(void)
{
	for (int i = 0; i < EVT_MAX_CHILDREN; i++)
		if (evt_children[i] > 0)
			evt_kill(evt_children[i]);
}

/*
 * The scheduler state letter of a task ('R', 'S', 'D', 'T', 'Z', ...) from
 * /proc/@pid/task/@tid/stat, or 0 when it cannot be read.  @tid 0 means the
 * process's main thread.
 */
static inline char evt_task_state(pid_t pid, pid_t tid)
{
	char path[64], buf[512], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid,
		 (int)(tid ? tid : pid));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* "pid (comm) S ...": comm may hold spaces and parentheses. */
	p = strrchr(buf, ')');
	if (!p || p[1] != ' ')
		return 0;
	return p[2];
}

/*
 * Wait up to @timeout_ms for task @pid/@tid to be asleep ('S').  Returns 1
 * when it is, 0 otherwise.
 */
static inline int evt_wait_asleep(pid_t pid, pid_t tid, int timeout_ms)
{
	for (int t = 0; t <= timeout_ms; t += 5) {
		if (evt_task_state(pid, tid) == 'S')
			return 1;
		evt_sleep_ms(5);
	}
	return 0;
}

#endif /* EVRING_TEST_UTIL_H */
