// SPDX-License-Identifier: GPL-2.0-only
/*
 * ship_direct: the peer of evring in `make bench-ship`, what an application
 * would do without evring: one writer process publishing each event as its
 * own JetStream message, with libnats' asynchronous publish, until the
 * stream has acknowledged every one (js_PublishAsyncComplete).
 *
 *	ship_direct -u URLS -s SUBJECT -n COUNT [-z SIZE] [-r RATE] [-p PENDING]
 *		    [-i ID] [-t TIMEOUT_S] [-A FILE]
 *
 *	-u	server URLs, "nats://127.0.0.1:14400[,...]"
 *	-s	the subject (the stream must already hold it)
 *	-n	events to publish
 *	-z	bytes per event (>= 24; default 128)
 *	-r	events per second, paced in 1 ms steps (0, the default: as fast
 *		as the acknowledgements allow)
 *	-p	js PublishAsync.MaxPending: publishes in flight (default 4096)
 *	-i	this writer's id, carried in every event
 *	-A	write each event's acknowledgement latency (CLOCK_REALTIME
 *		at the acknowledgement minus the event's sent_ns, in ns, as
 *		native uint64_t, in acknowledgement order) into FILE
 *
 * Every event is filled by ship_event_fill() (bench/ship_event.h): the
 * writer's id, its counter from 1 and CLOCK_REALTIME at the moment it is
 * handed to libnats, then pseudo-random base64 characters.
 *
 * The caller's protocol, over stdin and stdout: once connected it prints
 * "ready"; it starts when stdin reaches end of file (the caller closes its
 * pipe to start every writer at once); at the end it prints
 *	done SENT FAILED END_NS
 * (END_NS: CLOCK_MONOTONIC when the last acknowledgement arrived; FAILED:
 * publishes the stream refused or that timed out) and exits 0 only when
 * every event was acknowledged.  Errors: one line on stderr, exit 1.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nats/nats.h>

/* This program uses only some of the shared helpers. */
#include "bench_util.h"
#include "ship_event.h"

static atomic_uint_fast64_t failed;
static char first_error[256];
static uint64_t *ack_lat;		/* -A: one per event */
static atomic_uint_fast64_t nack_lat;
static unsigned int ack_cap;

/*
 * libnats' thread, once per publish: an acknowledgement (its latency is
 * kept for -A), or a publish the stream refused or that timed out.
 */
static void on_pub_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae,
		       void *closure)
{
	uint64_t now = realtime_ns();
	struct ship_event ev;

	if (pa && ack_lat && natsMsg_GetDataLength(msg) >= (int)sizeof(ev)) {
		uint64_t i = atomic_fetch_add(&nack_lat, 1);

		memcpy(&ev, natsMsg_GetData(msg), sizeof(ev));
		if (i < ack_cap)
			ack_lat[i] = now > ev.sent_ns ? now - ev.sent_ns : 0;
	} else if (!pa && atomic_fetch_add(&failed, 1) == 0) {
		snprintf(first_error, sizeof(first_error), "%s (status %d, js %d)",
			 pae && pae->ErrText ? pae->ErrText :
			 natsStatus_GetText(pae ? pae->Err : NATS_ERR),
			 pae ? (int)pae->Err : -1, pae ? (int)pae->ErrCode : 0);
	}
	natsMsg_Destroy(msg);
}

/* -A: the latencies into @path; 0 or -errno. */
static int write_ack_lat(const char *path)
{
	uint64_t n = atomic_load(&nack_lat);
	FILE *f = fopen(path, "we");
	int ret = 0;

	if (!f)
		return -errno;
	if (n > ack_cap)
		n = ack_cap;
	if (fwrite(ack_lat, sizeof(*ack_lat), n, f) != n)
		ret = -EIO;
	if (fclose(f) && !ret)
		ret = -errno;
	return ret;
}

/* Block until the caller closes our stdin. */
static void wait_start(void)
{
	char c;

	while (read(STDIN_FILENO, &c, 1) > 0 || errno == EINTR)
		;
}

int main(int argc, char **argv)
{
	const char *urls = NULL, *subject = NULL, *ack_path = NULL;
	unsigned int count = 0, size = 128, rate = 0, pending = 4096, id = 0,
		     timeout_s = 600;
	natsConnection *nc = NULL;
	natsOptions *no = NULL;
	jsCtx *js = NULL;
	jsOptions jo;
	jsPubOptions po;
	natsStatus s;
	char *buf;
	uint64_t t0, end_ns;
	int ch;

	while ((ch = getopt(argc, argv, "u:s:n:z:r:p:i:t:A:")) != -1) {
		switch (ch) {
		case 'u': urls = optarg; break;
		case 's': subject = optarg; break;
		case 'A': ack_path = optarg; break;
		case 'n':
			if (parse_uint(optarg, 1000000000, &count) || !count)
				goto usage;
			break;
		case 'z':
			if (parse_uint(optarg, 1 << 20, &size) ||
			    size < sizeof(struct ship_event))
				goto usage;
			break;
		case 'r':
			if (parse_uint(optarg, 100000000, &rate))
				goto usage;
			break;
		case 'p':
			if (parse_uint(optarg, 1 << 20, &pending) || !pending)
				goto usage;
			break;
		case 'i':
			if (parse_uint(optarg, 1 << 20, &id))
				goto usage;
			break;
		case 't':
			if (parse_uint(optarg, 86400, &timeout_s) || !timeout_s)
				goto usage;
			break;
		default:
			goto usage;
		}
	}
	if (optind != argc || !urls || !subject || !count)
		goto usage;
	buf = malloc(size);
	if (!buf)
		return 1;
	if (ack_path) {
		ack_cap = count;
		ack_lat = calloc(count, sizeof(*ack_lat));
		if (!ack_lat)
			return 1;
	}

	s = natsOptions_Create(&no);
	if (s == NATS_OK)
		s = ship_set_urls(no, urls);
	if (s == NATS_OK)
		s = natsConnection_Connect(&nc, no);
	if (s != NATS_OK) {
		fprintf(stderr, "ship_direct: cannot connect to '%s': %s\n", urls,
			natsStatus_GetText(s));
		return 1;
	}
	jsOptions_Init(&jo);
	jo.PublishAsync.MaxPending = pending;
	jo.PublishAsync.AckHandler = on_pub_ack;
	jo.PublishAsync.StallWait = 60000;
	s = natsConnection_JetStream(&js, nc, &jo);
	if (s != NATS_OK) {
		fprintf(stderr, "ship_direct: no JetStream context: %s\n",
			natsStatus_GetText(s));
		return 1;
	}
	jsPubOptions_Init(&po);
	printf("ready\n");
	fflush(stdout);
	wait_start();

	t0 = now_ns();
	for (unsigned int c = 1; c <= count; c++) {
		if (rate)
			pace(t0, c - 1, rate);
		ship_event_fill(buf, size, id, c);
		s = js_PublishAsync(js, subject, buf, size, &po);
		if (s != NATS_OK) {
			fprintf(stderr, "ship_direct: publish %u failed: %s\n", c,
				natsStatus_GetText(s));
			return 1;
		}
	}
	po.MaxWait = (int64_t)timeout_s * 1000;
	s = js_PublishAsyncComplete(js, &po);
	end_ns = now_ns();
	if (s != NATS_OK) {
		fprintf(stderr, "ship_direct: not every publish was acknowledged within %u s: %s\n",
			timeout_s, natsStatus_GetText(s));
		return 1;
	}
	if (ack_path && write_ack_lat(ack_path)) {
		fprintf(stderr, "ship_direct: cannot write '%s'\n", ack_path);
		return 1;
	}
	printf("done %u %" PRIuFAST64 " %" PRIu64 "\n", count, atomic_load(&failed),
	       end_ns);
	fflush(stdout);
	if (atomic_load(&failed))
		fprintf(stderr, "ship_direct: %" PRIuFAST64 " publishes failed, the first: %s\n",
			atomic_load(&failed), first_error);
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	natsOptions_Destroy(no);
	free(buf);
	return atomic_load(&failed) ? 1 : 0;
usage:
	fprintf(stderr, "usage: ship_direct -u URLS -s SUBJECT -n COUNT [-z SIZE] [-r RATE] [-p PENDING] [-i ID] [-t TIMEOUT_S] [-A FILE]\n");
	return 2;
}
