// SPDX-License-Identifier: GPL-2.0-only
/*
 * evring-stat: read evring.ko's statistics and settings over generic
 * netlink, change a setting, or watch the notify group.
 *
 *	evring-stat			one line per partition
 *	evring-stat config		the settings
 *	evring-stat set highwater_pct=N fsync_timeout_ms=N
 *	evring-stat watch [SECONDS]	print notifications as they come
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "evring.h"

static int parse_u32(const char *s, uint32_t *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v > UINT32_MAX || *s == '-')
		return -EINVAL;
	*out = v;
	return 0;
}

static const char *pidstr(uint32_t pid)
{
	static char buf[32];

	snprintf(buf, sizeof(buf), "pid %u", pid);
	return buf;
}

static int show_stats(struct evring_nl *nl)
{
	struct evring_part_stats s[EVRING_PARTITIONS_MAX];
	unsigned int n, i;
	int ret = evring_nl_stats_all(nl, s, EVRING_PARTITIONS_MAX, &n);

	if (ret)
		return ret;
	printf("%-4s %10s %12s %10s %9s %9s %7s %8s %8s %8s %8s %s\n", "part",
	       "produced", "bytes", "released", "fill", "fill_hwm", "blocked",
	       "blocks", "eagains", "fsyncs", "wakeups", "consumer");
	for (i = 0; i < n && i < EVRING_PARTITIONS_MAX; i++)
		printf("%-4u %10" PRIu64 " %12" PRIu64 " %10" PRIu64
		       " %9u %9u %7u %8" PRIu64 " %8" PRIu64 " %8" PRIu64
		       " %8" PRIu64 " %s\n",
		       s[i].partition, s[i].produced, s[i].produced_bytes,
		       s[i].released, s[i].fill, s[i].fill_hwm,
		       s[i].writers_blocked, s[i].blocks, s[i].eagains,
		       s[i].fsync_waits, s[i].wakeups,
		       s[i].consumer ? pidstr(s[i].consumer_pid) : "none");
	return 0;
}

static int show_config(struct evring_nl *nl)
{
	struct evring_config c;
	int ret = evring_nl_get_config(nl, &c);

	if (ret)
		return ret;
	printf("epoch %016" PRIx64 "\npartitions %u\nring_size %u\n"
	       "max_record %u\nhighwater_pct %u\nfsync_timeout_ms %u\n",
	       c.epoch, c.nr_partitions, c.ring_size, c.max_record,
	       c.highwater_pct, c.fsync_timeout_ms);
	return 0;
}

static int set_config(struct evring_nl *nl, int argc, char **argv)
{
	uint32_t pct = 0, tmo = 0;

	for (int i = 0; i < argc; i++) {
		char *eq = strchr(argv[i], '=');
		uint32_t *dst = NULL;

		if (eq && !strncmp(argv[i], "highwater_pct=", eq - argv[i] + 1))
			dst = &pct;
		else if (eq && !strncmp(argv[i], "fsync_timeout_ms=",
					eq - argv[i] + 1))
			dst = &tmo;
		if (!dst || parse_u32(eq + 1, dst) || !*dst) {
			fprintf(stderr, "evring-stat: bad setting '%s'\n",
				argv[i]);
			return -EINVAL;
		}
	}
	return evring_nl_set_config(nl, pct, tmo);
}

static int watch(struct evring_nl *nl, int seconds)
{
	static const char *const names[] = {
		[EVRING_CMD_HIGHWATER] = "highwater",
		[EVRING_CMD_ATTACHED] = "attached",
		[EVRING_CMD_DETACHED] = "detached",
	};
	struct evring_notice n;
	int ret = evring_nl_subscribe(nl);

	while (!ret) {
		ret = evring_nl_next_notice(nl, seconds ? seconds * 1000 : -1, &n);
		if (ret <= 0)
			break;
		printf("%s partition %u", n.cmd <= EVRING_CMD_DETACHED &&
		       names[n.cmd] ? names[n.cmd] : "unknown", n.partition);
		if (n.cmd == EVRING_CMD_HIGHWATER)
			printf(" fill %u of %u\n", n.fill, n.ring_size);
		else
			printf(" pid %u\n", n.pid);
		fflush(stdout);
		ret = 0;
	}
	return ret < 0 ? ret : 0;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "stats";
	struct evring_nl *nl;
	uint32_t secs = 0;
	int ret;

	ret = evring_nl_open(&nl);
	if (ret) {
		fprintf(stderr, "evring-stat: cannot reach evring over netlink: %s%s\n",
			strerror(-ret), ret == -ENOENT ? " (module not loaded?)" : "");
		return 1;
	}
	if (!strcmp(cmd, "stats"))
		ret = show_stats(nl);
	else if (!strcmp(cmd, "config"))
		ret = show_config(nl);
	else if (!strcmp(cmd, "set") && argc > 2)
		ret = set_config(nl, argc - 2, argv + 2);
	else if (!strcmp(cmd, "watch") &&
		 (argc < 3 || !parse_u32(argv[2], &secs)))
		ret = watch(nl, secs);
	else {
		fprintf(stderr, "usage: evring-stat [stats | config | set KEY=N... | watch [SECONDS]]\n");
		ret = -EINVAL;
	}
	if (ret && ret != -EINVAL)
		fprintf(stderr, "evring-stat: '%s' failed: %s\n", cmd,
			strerror(-ret));
	evring_nl_close(nl);
	return ret ? 1 : 0;
}
