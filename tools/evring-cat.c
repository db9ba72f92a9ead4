// SPDX-License-Identifier: GPL-2.0-only
/*
 * evring-cat: a minimal consumer.  Attaches to partitions of /dev/evring,
 * prints every record and releases it once printed.  Needs CAP_SYS_ADMIN.
 *
 *	evring-cat [-p PARTITION]... [-n COUNT] [-t IDLE_MS] [-q]
 *
 * -p	partitions to drain (default: all)
 * -n	exit after COUNT records
 * -t	exit after IDLE_MS without a record (default: run until killed)
 * -q	print only the per-partition summary at exit
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include "evring.h"

struct part {
	struct evring_consumer *c;
	unsigned int index;
	uint64_t records, first_seq, last_seq;
};

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static void print_record(const struct part *p, const struct evring_rec *r)
{
	const unsigned char *d = (const void *)(r + 1);

	printf("p%u seq=%" PRIu64 " pid=%u uid=%u ts=%" PRIu64 " len=%u ",
	       p->index, (uint64_t)r->seq, r->pid, r->uid, (uint64_t)r->ts_ns,
	       r->len);
	for (uint32_t i = 0; i < r->len; i++) {
		if (d[i] >= 0x20 && d[i] < 0x7f && d[i] != '\\')
			putchar(d[i]);
		else if (d[i] != '\n' || i + 1 != r->len)
			printf("\\x%02x", d[i]);
	}
	putchar('\n');
}

/*
 * Take what is there, up to @max records, print it, release it.  Returns
 * the records taken.
 */
static long drain(struct part *p, bool quiet, unsigned long max)
{
	const struct evring_rec *r;
	unsigned long n = 0;
	int ret;

	while (n < max && (r = evring_consumer_next(p->c))) {
		if (!p->records)
			p->first_seq = r->seq;
		p->last_seq = r->seq;
		p->records++;
		if (!quiet)
			print_record(p, r);
		n++;
	}
	if (!n)
		return 0;
	fflush(stdout);
	ret = evring_consumer_release(p->c, evring_consumer_pos(p->c));
	return ret ? ret : (long)n;
}

int main(int argc, char **argv)
{
	struct part parts[EVRING_PARTITIONS_MAX];
	struct pollfd pfd[EVRING_PARTITIONS_MAX];
	unsigned long want[EVRING_PARTITIONS_MAX], v, count = ULONG_MAX;
	unsigned int nwant = 0, n = 0, i;
	long idle_ms = -1, total = 0;
	bool quiet = false;
	int opt, ret = 0;

	while ((opt = getopt(argc, argv, "p:n:t:q")) != -1) {
		switch (opt) {
		case 'p':
			if (nwant == EVRING_PARTITIONS_MAX ||
			    parse_uint(optarg, EVRING_PARTITIONS_MAX - 1, &v))
				goto usage;
			want[nwant++] = v;
			break;
		case 'n':
			if (parse_uint(optarg, ULONG_MAX, &count))
				goto usage;
			break;
		case 't':
			if (parse_uint(optarg, INT_MAX, &v))
				goto usage;
			idle_ms = v;
			break;
		case 'q':
			quiet = true;
			break;
		default:
			goto usage;
		}
	}
	if (!nwant) {
		struct evring_info info;
		int fd = open(EVRING_DEV_PATH, O_RDONLY | O_CLOEXEC);

		if (fd < 0 || ioctl(fd, EVRING_IOC_INFO, &info)) {
			fprintf(stderr, "evring-cat: cannot query '%s': %s\n",
				EVRING_DEV_PATH, strerror(errno));
			return 1;
		}
		close(fd);
		for (i = 0; i < info.nr_partitions; i++)
			want[nwant++] = i;
	}
	for (i = 0; i < nwant; i++, n++) {
		memset(&parts[n], 0, sizeof(parts[n]));
		parts[n].index = want[i];
		ret = evring_consumer_open(NULL, want[i], &parts[n].c);
		if (ret) {
			fprintf(stderr, "evring-cat: cannot attach to partition %lu: %s\n",
				want[i], strerror(-ret));
			goto out;
		}
		pfd[n] = (struct pollfd){ .fd = evring_consumer_fd(parts[n].c),
					  .events = POLLIN };
	}
	while ((unsigned long)total < count) {
		long got = 0;

		for (i = 0; i < n; i++) {
			long r = drain(&parts[i], quiet, count - total - got);

			if (r < 0) {
				fprintf(stderr, "evring-cat: release failed: %s\n",
					strerror(-r));
				ret = r;
				goto out;
			}
			got += r;
			evring_consumer_mark_read(parts[i].c);
		}
		total += got;
		if (got || (unsigned long)total >= count)
			continue;
		ret = poll(pfd, n, idle_ms);
		if (ret == 0)
			break;
		if (ret < 0 && errno != EINTR) {
			ret = -errno;
			goto out;
		}
		ret = 0;
	}
out:
	for (i = 0; i < n; i++) {
		fprintf(stderr, "partition %u: %" PRIu64 " records, seq %" PRIu64
			"..%" PRIu64 "\n", parts[i].index, parts[i].records,
			parts[i].first_seq, parts[i].last_seq);
		evring_consumer_close(parts[i].c);
	}
	return ret ? 1 : 0;
usage:
	fprintf(stderr, "usage: evring-cat [-p PARTITION]... [-n COUNT] [-t IDLE_MS] [-q]\n");
	return 2;
}
