/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * jetstream: the adapter to libnats (the only file of evring that includes
 * <nats/nats.h>).  One struct js_link is one region: a NATS connection, a
 * JetStream context and one stream.  The caller (daemon/ship.c, on the
 * event loop's thread) never blocks on the network: it submits requests and
 * later polls results; the link's own thread does the blocking calls and
 * libnats' threads deliver publish acknowledgements.
 *
 *	struct js_link *l;
 *	js_link_open(&opts, &l, err, sizeof(err));	never blocks; connects
 *							in the background
 *	loop_add_fd(loop, js_link_fd(l), LOOP_IN, on_ready, ...);
 *	js_link_submit(l, &(struct js_req){ .op = JS_OP_ENSURE, .tag = 1 });
 *	on_ready:
 *		while (js_link_poll(l, &res) == 0)
 *			handle res (res.tag says which request);
 *	js_link_close(l);
 *
 * Guarantees:
 *  - Every submitted request produces exactly one result, in no particular
 *    order, unless the link is closed first.  Publishes may be in flight
 *    together; ENSURE, LAST and DELETE run one at a time, in order, on the
 *    link's thread.
 *  - Every request has a deadline (opts.timeout_ms): a publish with no
 *    acknowledgement by then is reported JS_AMBIGUOUS ("no acknowledgement
 *    within N ms"), even when the TCP connection looks alive.  A late
 *    acknowledgement after that is dropped (the caller reconciles with
 *    JS_OP_LAST anyway).
 *  - Connection changes are results too: op JS_OP_STATE with .connected
 *    (only changes are reported; the first one says how the background
 *    connect went).  While not connected, every request is answered at
 *    once JS_TRANSIENT "not connected": nothing was sent.
 *  - js_link_close() returns with no callback left running on the link;
 *    it may wait up to opts.timeout_ms for a blocked network call.
 *  - js_link_fd() is readable (level) while results are pending.
 *  - Thread-safe only as described: submit/poll/close from one thread.
 */
#ifndef EVRINGD_JETSTREAM_H
#define EVRINGD_JETSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JS_NAME_MAX	64	/* region, stream names */
#define JS_SUBJECT_MAX	256
#define JS_MSGID_MAX	128
#define JS_DETAIL_MAX	200

/* Headers evring puts on every batch message (docs/FORMAT.md). */
#define JS_HDR_HOST		"Evring-Host"
#define JS_HDR_SOURCE		"Evring-Source"		/* kmod|socket|bpf */
#define JS_HDR_PARTITION	"Evring-Partition"	/* decimal */
#define JS_HDR_EPOCH		"Evring-Epoch"		/* unsigned decimal */
#define JS_HDR_FIRST_SEQ	"Evring-First-Seq"	/* decimal */
#define JS_HDR_COUNT		"Evring-Count"		/* decimal */
#define JS_HDR_FORMAT		"Evring-Format"		/* "EVB1" */
#define JS_HDR_DEAD_LETTER	"Evring-Dead-Letter"	/* on a marker: reason */

struct js_link_opts {
	const char *region;		/* for log lines and results */
	const char *urls;		/* "nats://h:p,nats://h:p" */
	const char *creds;		/* NULL/"": none */
	const char *tls_ca;		/* NULL/"": no TLS unless the URL says */
	const char *tls_cert;
	const char *tls_key;
	const char *stream;		/* e.g. "EVRING" */
	const char *subject_prefix;	/* the stream holds "<prefix>.>" */
	unsigned int replicas;		/* when creating the stream: 1..5 */
	bool create_stream;		/* create it when missing */
	uint64_t dupe_window_ms;	/* when creating; 0: server default */
	unsigned int timeout_ms;	/* every request's deadline */
	size_t max_pending;		/* publishes in flight, bound */
};

enum js_op {
	JS_OP_STATE = 0,	/* result only: connection up or down */
	JS_OP_ENSURE,		/* check (or create) the stream */
	JS_OP_PUBLISH,		/* one message */
	JS_OP_LAST,		/* last message on a subject */
	JS_OP_DELETE,		/* delete one stream sequence */
};

/*
 * What a failure means for the caller; js_classify() holds the table.
 *	JS_OK		done
 *	JS_DUPLICATE	publish: the stream already held this message id;
 *			success (res.stream_seq is the stored copy's)
 *	JS_WRONG_LAST	publish: the subject's last sequence is not the one
 *			expected: someone (maybe our earlier, unacknowledged
 *			publish) wrote there; reconcile with JS_OP_LAST
 *	JS_AMBIGUOUS	publish: may or may not be stored (deadline passed,
 *			connection broke after sending); reconcile first
 *	JS_TRANSIENT	not done; retry later (no responders, not connected,
 *			cluster has no leader, request timeout of ENSURE/LAST)
 *	JS_PERMANENT	retrying the same request cannot succeed (payload
 *			over the server maximum, permission denied, stream
 *			missing and not creatable, bad subject)
 *	JS_NOT_FOUND	LAST: the subject holds no message; DELETE: no such
 *			sequence (both are answers, not failures)
 */
enum js_class {
	JS_OK = 0,
	JS_DUPLICATE,
	JS_WRONG_LAST,
	JS_AMBIGUOUS,
	JS_TRANSIENT,
	JS_PERMANENT,
	JS_NOT_FOUND,
};

struct js_req {
	enum js_op op;
	uint64_t tag;			/* echoed in the result */
	/* PUBLISH, LAST */
	char subject[JS_SUBJECT_MAX];
	/* PUBLISH: the adapter copies data and headers at submit */
	const void *data;
	size_t len;
	char msg_id[JS_MSGID_MAX];	/* Nats-Msg-Id */
	/*
	 * Nats-Expected-Last-Subject-Sequence, always sent: 0 means "the
	 * subject must hold no message yet".
	 */
	uint64_t expect_last_subject_seq;
	/*
	 * Extra headers, name: value; a value is one line and not blank
	 * (-EINVAL otherwise: libnats would read a blank value back wrong).
	 */
	unsigned int nhdr;
	const char *hdr_name[8];
	const char *hdr_value[8];
	/* DELETE */
	uint64_t seq;
};

struct js_result {
	enum js_op op;
	uint64_t tag;
	enum js_class cls;
	int nats_status;		/* natsStatus, for the log */
	int js_code;			/* jsErrCode (10071 ...), 0: none */
	char detail[JS_DETAIL_MAX];	/* one line, "" when OK */
	uint64_t latency_us;		/* submit to result */
	/* STATE */
	bool connected;
	/* ENSURE */
	unsigned int replicas;		/* of the stream as it is */
	bool created;
	bool durable;			/* replicas >= 3: see docs/SHIPPING.md */
	int64_t max_payload;		/* the server's, bytes */
	uint64_t dupe_window_ms;	/* the stream's */
	/* PUBLISH (OK, DUPLICATE), LAST (OK): the stored message's sequence */
	uint64_t stream_seq;
	/* LAST (OK): the stored message's Nats-Msg-Id, "" when it has none */
	char msg_id[JS_MSGID_MAX];
	/*
	 * LAST (OK): the stored message's Evring-Count header (records in
	 * it, possibly of several spooled batches); 0 when it has none or
	 * it is not a decimal number in 1..2^32-1.
	 */
	uint64_t count;
};

struct js_link;

/* -EINVAL (bad options, err says which), -ENOMEM. Never blocks. */
int js_link_open(const struct js_link_opts *o, struct js_link **out,
		 char *err, size_t errlen);
/* Abandons in-flight requests (no results); accepts NULL. */
void js_link_close(struct js_link *l);
int js_link_fd(const struct js_link *l);
/*
 * 0; -EINVAL: a malformed request (subject, message id, header); -EAGAIN
 * when opts.max_pending requests are in flight.
 */
int js_link_submit(struct js_link *l, const struct js_req *r);
/* 0 and *out, or -EAGAIN when nothing is pending. */
int js_link_poll(struct js_link *l, struct js_result *out);
/* Publishes submitted and not yet answered. */
size_t js_link_inflight(const struct js_link *l);

/* The classification table: natsStatus and jsErrCode -> class. */
enum js_class js_classify(enum js_op op, int nats_status, int js_code);
const char *js_class_name(enum js_class c);

/*
 * Read a stream for the verifier (evringctl consume): call @cb for every
 * message with stream sequence >= @from_seq (1: all), in order, until the
 * last one that existed when the call began.  Blocking; its own
 * connection.  @cb's pointers are valid during the call only; a non-zero
 * return stops the walk and is returned.  -ENOENT: no such stream;
 * -ETIMEDOUT / -ECONNREFUSED: region unreachable (err says).
 */
struct js_stored {
	uint64_t stream_seq;
	const char *subject;
	const char *msg_id;		/* "" when none */
	/*
	 * The Evring-* headers, as sent (unparsed: the reader checks them);
	 * NULL when the message does not carry the header, "" when its
	 * value is empty.
	 */
	const char *dead_letter;	/* JS_HDR_DEAD_LETTER */
	const char *host;		/* JS_HDR_HOST */
	const char *source;		/* JS_HDR_SOURCE */
	const char *partition;		/* JS_HDR_PARTITION */
	const char *epoch;		/* JS_HDR_EPOCH */
	const char *first_seq;		/* JS_HDR_FIRST_SEQ */
	const char *count;		/* JS_HDR_COUNT */
	const void *data;
	size_t len;
	uint64_t stored_ns;		/* server timestamp */
};
int js_read_stream(const struct js_link_opts *o, uint64_t from_seq,
		   int (*cb)(const struct js_stored *m, void *arg), void *arg,
		   char *err, size_t errlen);

#endif /* EVRINGD_JETSTREAM_H */
