// SPDX-License-Identifier: GPL-2.0-only
/*
 * evring-write: write events through libevring (the device when present,
 * evringd's ingest socket otherwise), then wait until they are durable.
 *
 *	evring-write [-d DEVICE] [-S SOCKET] [-n COUNT] [--no-sync] TEXT
 *
 * Writes TEXT COUNT times (each a separate event, "TEXT #i" when COUNT > 1)
 * and syncs: exit 0 means every event is durable downstream.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "evring.h"

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "no-sync", no_argument, NULL, 'N' },
		{ 0 }
	};
	const char *dev = NULL, *sock = NULL;
	unsigned long count = 1;
	struct evring_writer *w;
	bool sync = true;
	char *end, buf[4096];
	int opt, ret;

	while ((opt = getopt_long(argc, argv, "d:S:n:", opts, NULL)) != -1) {
		switch (opt) {
		case 'd': dev = optarg; break;
		case 'S': sock = optarg; break;
		case 'N': sync = false; break;
		case 'n':
			errno = 0;
			count = strtoul(optarg, &end, 10);
			if (errno || *end || !count || *optarg == '-')
				goto usage;
			break;
		default:
			goto usage;
		}
	}
	if (optind + 1 != argc)
		goto usage;
	ret = evring_writer_open(dev, sock, &w);
	if (ret) {
		fprintf(stderr, "evring-write: no device and no socket to write to: %s\n",
			strerror(-ret));
		return 1;
	}
	for (unsigned long i = 1; i <= count && !ret; i++) {
		int n = count == 1 ? snprintf(buf, sizeof(buf), "%s", argv[optind]) :
			snprintf(buf, sizeof(buf), "%s #%lu", argv[optind], i);

		ret = evring_writer_write(w, buf, n < (int)sizeof(buf) ? n : (int)sizeof(buf) - 1);
	}
	if (!ret && sync)
		ret = evring_writer_sync(w, 30000);
	if (ret)
		fprintf(stderr, "evring-write: %s: %s\n", sync ? "write or sync failed" : "write failed",
			strerror(-ret));
	evring_writer_close(w);
	return ret ? 1 : 0;
usage:
	fprintf(stderr, "usage: evring-write [-d DEVICE] [-S SOCKET] [-n COUNT] [--no-sync] TEXT\n");
	return 2;
}
