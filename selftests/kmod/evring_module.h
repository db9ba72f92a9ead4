/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Loading and unloading evring.ko from a test, with the parameters the test
 * wants.  The module path comes from $EVRING_KO (the Makefile sets it to the
 * freshly built evring.ko); tests run as root inside the VM.
 */
#ifndef EVRING_SELFTEST_MODULE_H
#define EVRING_SELFTEST_MODULE_H

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static inline const char *evring_ko_path(void)
{
	const char *p = getenv("EVRING_KO");

	return p && *p ? p : "evring.ko";
}

/* Unload evring if loaded; waits out a module still being released. */
static inline int evring_module_unload(void)
{
	for (int i = 0; i < 200; i++) {
		if (syscall(SYS_delete_module, "evring", O_NONBLOCK) == 0)
			return 0;
		if (errno == ENOENT)
			return 0;
		if (errno != EAGAIN && errno != EBUSY)
			return -errno;
		nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 },
			  NULL);
	}
	return -EBUSY;
}

/*
 * (Re)load evring.ko with @params ("partitions=2 ring_size=65536", or "")
 * and wait for /dev/evring.  Returns 0 or -errno from finit_module.
 */
static inline int evring_module_load(const char *params)
{
	int fd, ret;

	ret = evring_module_unload();
	if (ret)
		return ret;
	fd = open(evring_ko_path(), O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = syscall(SYS_finit_module, fd, params ? params : "", 0);
	ret = ret ? -errno : 0;
	close(fd);
	if (ret)
		return ret;
	for (int i = 0; i < 500; i++) {
		struct stat st;

		if (stat("/dev/evring", &st) == 0)
			return 0;
		nanosleep(&(struct timespec){ .tv_nsec = 2 * 1000 * 1000 },
			  NULL);
	}
	return -ENODEV;
}

#endif /* EVRING_SELFTEST_MODULE_H */
