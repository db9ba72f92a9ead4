// SPDX-License-Identifier: GPL-2.0-only
/*
 * jetstream: evringd's only libnats adapter (contract in jetstream.h).
 *
 * One link has three kinds of threads working for it:
 *
 *	caller (event loop)	submit: validates, builds the natsMsg (copies
 *				data and headers), queues; poll: pops results
 *	link->req_thread	connects (in the background: RetryOnFailedConnect,
 *				reconnect forever), then runs ENSURE, LAST and
 *				DELETE one at a time, in order, with jsOptions.Wait
 *				= timeout_ms
 *	link->pub_thread	sends queued publishes (js_PublishMsgAsync, which
 *				may block in a socket write, bounded by the write
 *				deadline) and sweeps deadlines: a publish not
 *				answered within timeout_ms of its submit becomes
 *				JS_AMBIGUOUS
 *	libnats' threads	connection callbacks (JS_OP_STATE) and publish
 *				acknowledgements (ack_handler)
 *
 * Every node is in exactly one list at a time, all guarded by l->mu:
 * ctlq (ENSURE/LAST/DELETE waiting), pubq (publishes waiting to be sent),
 * sent (publishes handed to libnats, awaiting an ack), results (done,
 * waiting for js_link_poll).  Whoever moves a node out of pubq/sent into
 * results reports it, so every request is reported exactly once; an ack
 * for a node no longer in sent (the deadline sweep reported it) is dropped.
 * An ack is matched to its node by the natsMsg pointer libnats hands back:
 * the message stays alive (owned by libnats) until the ack handler
 * destroys it, so no other in-flight message can have that address.
 *
 * libnats callbacks carry the link's id, not its address: they look the
 * link up in a global registry under js_reg_mu and use it only while
 * holding that lock.  js_link_close() first removes the link from the
 * registry, so no callback touches it after that, even one libnats runs
 * late.  Lock order: js_reg_mu, then l->mu; libnats is never called with
 * either held (its callbacks take them).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <nats/nats.h>

#include "jetstream.h"

#define HDR_MSG_ID		"Nats-Msg-Id"
#define HDR_EXPECT_SUBJ_SEQ	"Nats-Expected-Last-Subject-Sequence"
#define RECONNECT_WAIT_MS	250
#define PING_INTERVAL_MS	2000
#define MAX_PINGS_OUT		2
#define PREFIX_MAX		(JS_SUBJECT_MAX / 2)
#define NHDR_MAX		8

/* --- the classification table ---------------------------------------- */

#define ANY	(-1)

struct js_class_row {
	int op;			/* enum js_op or ANY */
	int status;		/* natsStatus or ANY */
	int code;		/* jsErrCode or ANY */
	enum js_class cls;
};

/* First matching row wins; the last row matches everything. */
static const struct js_class_row js_class_table[] = {
	/* success, whatever else is set */
	{ ANY, NATS_OK, ANY, JS_OK },
	/* expected last subject sequence did not match: reconcile */
	{ JS_OP_PUBLISH, ANY, JSStreamWrongLastSequenceErr, JS_WRONG_LAST },
	/* LAST: the subject holds no message (an answer) */
	{ JS_OP_LAST, ANY, JSNoMessageFoundErr, JS_NOT_FOUND },
	/* DELETE: "no message found" / "stream store EOF": no such sequence */
	{ JS_OP_DELETE, ANY, JSStreamMsgDeleteFailed, JS_NOT_FOUND },
	{ JS_OP_DELETE, ANY, JSNoMessageFoundErr, JS_NOT_FOUND },
	{ JS_OP_DELETE, ANY, JSSequenceNotFoundErr, JS_NOT_FOUND },
	/* stream missing: ENSURE creates it first when allowed, so here final */
	{ ANY, ANY, JSStreamNotFoundErr, JS_PERMANENT },
	/* cluster without leader or quorum, stream moving: wait for it */
	{ ANY, ANY, JSClusterNoPeersErr, JS_TRANSIENT },
	{ ANY, ANY, JSClusterNotAvailErr, JS_TRANSIENT },
	{ ANY, ANY, JSClusterNotLeaderErr, JS_TRANSIENT },
	{ ANY, ANY, JSClusterNotAssignedErr, JS_TRANSIENT },
	{ ANY, ANY, JSClusterIncompleteErr, JS_TRANSIENT },
	{ ANY, ANY, JSRaftGeneralErr, JS_TRANSIENT },
	{ ANY, ANY, JSStreamOfflineErr, JS_TRANSIENT },
	/* server out of room: may clear when consumers catch up */
	{ ANY, ANY, JSInsufficientResourcesErr, JS_TRANSIENT },
	{ ANY, ANY, JSStorageResourcesExceededErr, JS_TRANSIENT },
	{ ANY, ANY, JSStreamStoreFailedErr, JS_TRANSIENT },
	{ ANY, ANY, JSStreamLimitsErr, JS_TRANSIENT },
	/* message over the stream's max_msg_size: never fits */
	{ ANY, ANY, JSStreamMessageExceedsMaximumErr, JS_PERMANENT },
	/* the stream cannot be made as configured */
	{ ANY, ANY, JSStreamReplicasNotSupportedErr, JS_PERMANENT },
	{ ANY, ANY, JSStreamInvalidConfig, JS_PERMANENT },
	{ ANY, ANY, JSStreamSubjectOverlapErr, JS_PERMANENT },
	{ ANY, ANY, JSStreamNameExistErr, JS_PERMANENT },
	{ ANY, ANY, JSMaximumStreamsLimitErr, JS_PERMANENT },
	{ ANY, ANY, JSStreamSealedErr, JS_PERMANENT },
	{ ANY, ANY, JSStreamNotMatchErr, JS_PERMANENT },
	/* JetStream off for the server or account: an operator must act */
	{ ANY, ANY, JSNotEnabledErr, JS_PERMANENT },
	{ ANY, ANY, JSNotEnabledForAccountErr, JS_PERMANENT },
	/* publish: no acknowledgement by the deadline, maybe stored */
	{ JS_OP_PUBLISH, NATS_TIMEOUT, ANY, JS_AMBIGUOUS },
	/* request without answer by the deadline: nothing changed, retry */
	{ ANY, NATS_TIMEOUT, ANY, JS_TRANSIENT },
	/* nobody listens (no stream on the subject, JetStream down): not stored */
	{ ANY, NATS_NO_RESPONDERS, ANY, JS_TRANSIENT },
	/* not connected when asked: nothing was sent */
	{ ANY, NATS_NOT_YET_CONNECTED, ANY, JS_TRANSIENT },
	{ ANY, NATS_CONNECTION_CLOSED, ANY, JS_TRANSIENT },
	{ ANY, NATS_NO_SERVER, ANY, JS_TRANSIENT },
	/* reconnect buffer full: not sent */
	{ ANY, NATS_INSUFFICIENT_BUFFER, ANY, JS_TRANSIENT },
	/* publish: the connection broke while sending: may have left */
	{ JS_OP_PUBLISH, NATS_CONNECTION_DISCONNECTED, ANY, JS_AMBIGUOUS },
	{ JS_OP_PUBLISH, NATS_IO_ERROR, ANY, JS_AMBIGUOUS },
	{ JS_OP_PUBLISH, NATS_STALE_CONNECTION, ANY, JS_AMBIGUOUS },
	/* requests: broken connection, nothing changed by a read; retry */
	{ ANY, NATS_CONNECTION_DISCONNECTED, ANY, JS_TRANSIENT },
	{ ANY, NATS_IO_ERROR, ANY, JS_TRANSIENT },
	{ ANY, NATS_STALE_CONNECTION, ANY, JS_TRANSIENT },
	/* payload over the server's max_payload: never fits */
	{ ANY, NATS_MAX_PAYLOAD, ANY, JS_PERMANENT },
	/* permissions violation, bad credentials: an operator must act */
	{ ANY, NATS_NOT_PERMITTED, ANY, JS_PERMANENT },
	{ ANY, NATS_CONNECTION_AUTH_FAILED, ANY, JS_PERMANENT },
	/* bad subject or argument: the same request fails again */
	{ ANY, NATS_INVALID_SUBJECT, ANY, JS_PERMANENT },
	{ ANY, NATS_INVALID_ARG, ANY, JS_PERMANENT },
	/* our side short of memory, draining: retry */
	{ ANY, NATS_NO_MEMORY, ANY, JS_TRANSIENT },
	{ ANY, NATS_DRAINING, ANY, JS_TRANSIENT },
	/* publish: the server answered with another error: not stored */
	{ JS_OP_PUBLISH, NATS_ERR, ANY, JS_TRANSIENT },
	/* publish: anything else after submission: outcome unknown */
	{ JS_OP_PUBLISH, ANY, ANY, JS_AMBIGUOUS },
	/* anything else: retry, the caller's budget bounds it */
	{ ANY, ANY, ANY, JS_TRANSIENT },
};

enum js_class js_classify(enum js_op op, int nats_status, int js_code)
{
	size_t i;

	for (i = 0; i < sizeof(js_class_table) / sizeof(js_class_table[0]); i++) {
		const struct js_class_row *r = &js_class_table[i];

		if ((r->op == ANY || r->op == (int)op) &&
		    (r->status == ANY || r->status == nats_status) &&
		    (r->code == ANY || r->code == js_code))
			return r->cls;
	}
	return JS_TRANSIENT;	/* not reached: the last row matches */
}

const char *js_class_name(enum js_class c)
{
	static const char *const names[] = {
		[JS_OK] = "ok",
		[JS_DUPLICATE] = "duplicate",
		[JS_WRONG_LAST] = "wrong-last",
		[JS_AMBIGUOUS] = "ambiguous",
		[JS_TRANSIENT] = "transient",
		[JS_PERMANENT] = "permanent",
		[JS_NOT_FOUND] = "not-found",
	};

	if ((unsigned int)c >= sizeof(names) / sizeof(names[0]))
		return "unknown";
	return names[c];
}

/* --- the link ---------------------------------------------------------- */

struct js_node {
	struct js_node *next;
	natsMsg *msg;		/* PUBLISH: ours in pubq, libnats' once sent */
	char subject[JS_SUBJECT_MAX];
	uint64_t seq;		/* DELETE */
	uint64_t t0_us;		/* submit */
	uint64_t deadline_us;
	struct js_result res;	/* .op and .tag set at submit */
};

struct js_list {
	struct js_node *head, *tail;
	size_t n;
};

struct js_link {
	uint64_t id;			/* registry key, never reused */
	struct js_link *reg_next;	/* js_reg_mu */

	/* immutable after open */
	char region[JS_NAME_MAX];
	char stream[JS_NAME_MAX];
	char prefix[PREFIX_MAX];
	unsigned int replicas;
	bool create_stream;
	uint64_t dupe_window_ms;
	unsigned int timeout_ms;
	size_t max_pending;
	natsOptions *nopts;
	int efd;

	pthread_mutex_t mu;
	pthread_cond_t req_cond;	/* ctlq or stop changed */
	pthread_cond_t pub_cond;	/* pubq, sent or stop changed */
	/* guarded by mu */
	bool stop;
	natsConnection *nc;		/* set once by req_thread */
	jsCtx *js;
	bool connected;			/* as the last callback said */
	int last_state;			/* reported: -1 none yet, 0, 1 */
	bool state_lost;		/* a STATE node could not be allocated */
	bool cb_seen;			/* a connection callback ran */
	bool signalled;			/* efd holds a count */
	struct js_list ctlq, pubq, sent, results;

	pthread_t req_thread, pub_thread;
	bool req_started, pub_started;
};

static pthread_mutex_t js_reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct js_link *js_reg;		/* js_reg_mu */
static uint64_t js_reg_next_id = 1;	/* js_reg_mu */

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void list_push(struct js_list *q, struct js_node *n)
{
	n->next = NULL;
	if (q->tail)
		q->tail->next = n;
	else
		q->head = n;
	q->tail = n;
	q->n++;
}

static struct js_node *list_pop(struct js_list *q)
{
	struct js_node *n = q->head;

	if (!n)
		return NULL;
	q->head = n->next;
	if (!q->head)
		q->tail = NULL;
	q->n--;
	n->next = NULL;
	return n;
}

/* Remove and return the node holding @msg, or NULL. */
static struct js_node *list_take_msg(struct js_list *q, const natsMsg *msg)
{
	struct js_node *n, *prev = NULL;

	for (n = q->head; n; prev = n, n = n->next) {
		if (n->msg != msg)
			continue;
		if (prev)
			prev->next = n->next;
		else
			q->head = n->next;
		if (q->tail == n)
			q->tail = prev;
		q->n--;
		n->next = NULL;
		return n;
	}
	return NULL;
}

static void set_detail(struct js_result *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void set_detail(struct js_result *r, const char *fmt, ...)
{
	va_list ap;
	char *p;

	va_start(ap, fmt);
	vsnprintf(r->detail, sizeof(r->detail), fmt, ap);
	va_end(ap);
	/* one line */
	for (p = r->detail; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
}

/*
 * libnats' last error of this thread without its "(file.c:123): " prefix,
 * or the status' generic text.
 */
static const char *nats_text(natsStatus s)
{
	const char *t = nats_GetLastError(NULL);
	const char *p;

	if (!t || !*t)
		return natsStatus_GetText(s);
	if (*t == '(' && (p = strstr(t, "): ")))
		t = p + 3;
	return t;
}

/* Queue a finished node for js_link_poll(); l->mu held. */
static void report_locked(struct js_link *l, struct js_node *n)
{
	static const uint64_t one = 1;

	n->res.latency_us = n->t0_us ? now_us() - n->t0_us : 0;
	list_push(&l->results, n);
	if (!l->signalled) {
		/* an eventfd write of 1 cannot fail short of overflow */
		if (write(l->efd, &one, sizeof(one)) == sizeof(one))
			l->signalled = true;
	}
}

/* Report @connected if it differs from the last STATE reported; l->mu held. */
static void post_state_locked(struct js_link *l, bool connected, int status,
			      const char *detail)
{
	static const uint64_t one = 1;
	struct js_node *n;

	l->connected = connected;
	if (l->last_state == (int)connected)
		return;
	l->last_state = connected;
	n = calloc(1, sizeof(*n));
	if (!n) {
		/* js_link_poll() makes the STATE from l->connected */
		l->state_lost = true;
		if (!l->signalled &&
		    write(l->efd, &one, sizeof(one)) == sizeof(one))
			l->signalled = true;
		return;
	}
	n->res.op = JS_OP_STATE;
	n->res.connected = connected;
	n->res.nats_status = status;
	n->res.cls = connected ? JS_OK : JS_TRANSIENT;
	if (detail)
		set_detail(&n->res, "%s", detail);
	report_locked(l, n);
}

/* The registered link with @id, with js_reg_mu held; NULL: gone. */
static struct js_link *reg_find(uint64_t id)
{
	struct js_link *l;

	for (l = js_reg; l; l = l->reg_next)
		if (l->id == id)
			return l;
	return NULL;
}

static void reg_state_cb(void *closure, bool connected, int status,
			 const char *detail)
{
	struct js_link *l;

	pthread_mutex_lock(&js_reg_mu);
	l = reg_find((uintptr_t)closure);
	if (l) {
		pthread_mutex_lock(&l->mu);
		l->cb_seen = true;
		post_state_locked(l, connected, status, detail);
		pthread_mutex_unlock(&l->mu);
	}
	pthread_mutex_unlock(&js_reg_mu);
}

static void on_connected(natsConnection *nc, void *closure)
{
	reg_state_cb(closure, true, NATS_OK, NULL);
}

static void on_disconnected(natsConnection *nc, void *closure)
{
	reg_state_cb(closure, false, NATS_CONNECTION_DISCONNECTED,
		     "disconnected");
}

static void on_closed(natsConnection *nc, void *closure)
{
	reg_state_cb(closure, false, NATS_CONNECTION_CLOSED,
		     "connection closed");
}

/*
 * libnats' answer to one async publish (an ack, an error reply, or its own
 * MaxWait timeout).  Always destroys @msg: libnats hands it back to us.
 */
static void ack_handler(jsCtx *js, natsMsg *msg, jsPubAck *pa,
			jsPubAckErr *pae, void *closure)
{
	struct js_link *l;
	struct js_node *n = NULL;

	pthread_mutex_lock(&js_reg_mu);
	l = reg_find((uintptr_t)closure);
	if (l) {
		pthread_mutex_lock(&l->mu);
		n = list_take_msg(&l->sent, msg);
		if (n) {
			struct js_result *r = &n->res;

			if (pa) {
				r->cls = pa->Duplicate ? JS_DUPLICATE : JS_OK;
				r->stream_seq = pa->Sequence;
			} else if (pae) {
				r->nats_status = pae->Err;
				r->js_code = pae->ErrCode;
				r->cls = js_classify(JS_OP_PUBLISH, pae->Err,
						     pae->ErrCode);
				if (pae->Err == NATS_TIMEOUT)
					set_detail(r, "no acknowledgement within %u ms",
						   l->timeout_ms);
				else
					set_detail(r, "%s", pae->ErrText ? pae->ErrText :
						   natsStatus_GetText(pae->Err));
			} else {
				r->nats_status = NATS_ERR;
				r->cls = JS_AMBIGUOUS;
				set_detail(r, "acknowledgement without a result");
			}
			n->msg = NULL;
			report_locked(l, n);
			pthread_cond_signal(&l->pub_cond);
		}
		pthread_mutex_unlock(&l->mu);
	}
	pthread_mutex_unlock(&js_reg_mu);
	natsMsg_Destroy(msg);
}

/* --- the publish thread -------------------------------------------------- */

/* Report every publish whose deadline passed as JS_AMBIGUOUS; l->mu held. */
static void sweep_locked(struct js_link *l, uint64_t now)
{
	struct js_list *qs[] = { &l->pubq, &l->sent };
	size_t i;

	for (i = 0; i < 2; i++) {
		struct js_list keep = { 0 };
		struct js_node *n;

		while ((n = list_pop(qs[i]))) {
			if (n->deadline_us > now) {
				list_push(&keep, n);
				continue;
			}
			/* queued: never sent, ours to free; sent: libnats' */
			if (qs[i] == &l->pubq)
				natsMsg_Destroy(n->msg);
			n->msg = NULL;
			n->res.nats_status = NATS_TIMEOUT;
			n->res.cls = js_classify(JS_OP_PUBLISH, NATS_TIMEOUT, 0);
			set_detail(&n->res, "no acknowledgement within %u ms",
				   l->timeout_ms);
			report_locked(l, n);
		}
		*qs[i] = keep;
	}
}

static uint64_t next_deadline_locked(const struct js_link *l)
{
	uint64_t d = UINT64_MAX;
	const struct js_node *n;

	/* both lists are in submit order, so in deadline order */
	if ((n = l->pubq.head) && n->deadline_us < d)
		d = n->deadline_us;
	if ((n = l->sent.head) && n->deadline_us < d)
		d = n->deadline_us;
	return d;
}

static void cond_wait_until(pthread_cond_t *c, pthread_mutex_t *mu,
			    uint64_t deadline_us)
{
	struct timespec ts;

	if (deadline_us == UINT64_MAX) {
		pthread_cond_wait(c, mu);
		return;
	}
	ts.tv_sec = deadline_us / 1000000;
	ts.tv_nsec = (deadline_us % 1000000) * 1000;
	pthread_cond_timedwait(c, mu, &ts);
}

/* Send @n (just moved to sent); called and returns with l->mu held. */
static void send_one_locked(struct js_link *l, struct js_node *n)
{
	natsMsg *msg = n->msg;
	jsCtx *js = l->js;
	jsPubOptions po;
	natsStatus s;

	jsPubOptions_Init(&po);
	/*
	 * Our sweep reports the deadline; libnats' own timeout, later, only
	 * makes it forget the message (its timer may fire a little early).
	 */
	po.MaxWait = 2 * (int64_t)l->timeout_ms;
	pthread_mutex_unlock(&l->mu);
	s = js_PublishMsgAsync(js, &msg, &po);
	pthread_mutex_lock(&l->mu);
	if (s == NATS_OK)
		return;		/* libnats owns msg; the ack handler reports */
	/* libnats did not take it: still ours; report unless swept */
	n = list_take_msg(&l->sent, msg);
	if (n) {
		n->msg = NULL;
		n->res.nats_status = s;
		n->res.cls = js_classify(JS_OP_PUBLISH, s, 0);
		set_detail(&n->res, "publish failed: %s", nats_text(s));
		report_locked(l, n);
	}
	natsMsg_Destroy(msg);
}

static void *pub_main(void *arg)
{
	struct js_link *l = arg;
	struct js_node *n;

	pthread_mutex_lock(&l->mu);
	while (!l->stop) {
		sweep_locked(l, now_us());
		n = list_pop(&l->pubq);
		if (!n) {
			cond_wait_until(&l->pub_cond, &l->mu,
					next_deadline_locked(l));
			continue;
		}
		if (!l->js || !l->connected) {
			natsMsg_Destroy(n->msg);
			n->msg = NULL;
			n->res.nats_status = NATS_NOT_YET_CONNECTED;
			n->res.cls = js_classify(JS_OP_PUBLISH,
						 NATS_NOT_YET_CONNECTED, 0);
			set_detail(&n->res, "not connected");
			report_locked(l, n);
			continue;
		}
		list_push(&l->sent, n);
		send_one_locked(l, n);
	}
	pthread_mutex_unlock(&l->mu);
	return NULL;
}

/* --- the request thread ------------------------------------------------ */

static void fail_req(struct js_result *r, enum js_op op, natsStatus s,
		     jsErrCode code, const char *what)
{
	r->nats_status = s;
	r->js_code = code;
	r->cls = js_classify(op, s, code);
	if (code)
		set_detail(r, "%s: %s (error %d)", what, nats_text(s), code);
	else
		set_detail(r, "%s: %s", what, nats_text(s));
}

static bool stream_has_subjects(const jsStreamConfig *c, const char *want)
{
	int i;

	for (i = 0; i < c->SubjectsLen; i++)
		if (!strcmp(c->Subjects[i], want) || !strcmp(c->Subjects[i], ">"))
			return true;
	return false;
}

static void do_ensure(struct js_link *l, natsConnection *nc, jsCtx *js,
		      jsOptions *jo, struct js_result *r)
{
	char subj[JS_SUBJECT_MAX];
	const char *subjects[1] = { subj };
	jsStreamInfo *si = NULL;
	jsStreamConfig sc;
	jsErrCode code = 0;
	natsStatus s;

	snprintf(subj, sizeof(subj), "%s.>", l->prefix);
	s = js_GetStreamInfo(&si, js, l->stream, jo, &code);
	if (s == NATS_NOT_FOUND && code == JSStreamNotFoundErr && l->create_stream) {
		jsStreamConfig_Init(&sc);
		sc.Name = l->stream;
		sc.Subjects = subjects;
		sc.SubjectsLen = 1;
		sc.Storage = js_FileStorage;
		sc.Replicas = l->replicas;
		sc.Duplicates = (int64_t)l->dupe_window_ms * 1000000;
		code = 0;
		s = js_AddStream(&si, js, &sc, jo, &code);
		if (s == NATS_OK) {
			r->created = true;
		} else if (code == JSStreamNameExistErr) {
			/* someone else created it meanwhile: look again */
			code = 0;
			s = js_GetStreamInfo(&si, js, l->stream, jo, &code);
		}
		if (s != NATS_OK) {
			snprintf(subj, sizeof(subj), "cannot create stream '%s'",
				 l->stream);
			fail_req(r, JS_OP_ENSURE, s, code, subj);
			return;
		}
	} else if (s != NATS_OK) {
		snprintf(subj, sizeof(subj), "cannot look up stream '%s'", l->stream);
		fail_req(r, JS_OP_ENSURE, s, code, subj);
		return;
	}
	if (!stream_has_subjects(si->Config, subj)) {
		r->nats_status = NATS_ERR;
		r->cls = JS_PERMANENT;
		set_detail(r, "stream '%s' exists but does not hold '%s'",
			   l->stream, subj);
		jsStreamInfo_Destroy(si);
		return;
	}
	r->cls = JS_OK;
	r->replicas = si->Config->Replicas > 0 ? si->Config->Replicas : 1;
	r->durable = r->replicas >= 3;
	r->dupe_window_ms = si->Config->Duplicates / 1000000;
	r->max_payload = natsConnection_GetMaxPayload(nc);
	jsStreamInfo_Destroy(si);
}

static void do_last(struct js_link *l, jsCtx *js, jsOptions *jo,
		    struct js_node *n)
{
	struct js_result *r = &n->res;
	const char *id = NULL;
	jsErrCode code = 0;
	natsMsg *m = NULL;
	natsStatus s;

	s = js_GetLastMsg(&m, js, l->stream, n->subject, jo, &code);
	if (s != NATS_OK) {
		fail_req(r, JS_OP_LAST, s, code, "cannot get last message");
		if (r->cls == JS_NOT_FOUND)
			set_detail(r, "no message on '%s'", n->subject);
		return;
	}
	r->cls = JS_OK;
	r->stream_seq = natsMsg_GetSequence(m);
	if (natsMsgHeader_Get(m, HDR_MSG_ID, &id) == NATS_OK && id)
		snprintf(r->msg_id, sizeof(r->msg_id), "%s", id);
	id = NULL;
	if (natsMsgHeader_Get(m, JS_HDR_COUNT, &id) == NATS_OK && id &&
	    *id >= '0' && *id <= '9') {
		char *end;
		unsigned long long c;

		errno = 0;
		c = strtoull(id, &end, 10);
		if (!errno && !*end && c <= UINT32_MAX)
			r->count = c;
	}
	natsMsg_Destroy(m);
}

static void do_delete(struct js_link *l, jsCtx *js, jsOptions *jo,
		      struct js_node *n)
{
	struct js_result *r = &n->res;
	jsErrCode code = 0;
	natsStatus s;

	s = js_DeleteMsg(js, l->stream, n->seq, jo, &code);
	if (s != NATS_OK) {
		fail_req(r, JS_OP_DELETE, s, code, "cannot delete message");
		return;
	}
	r->cls = JS_OK;
	r->stream_seq = n->seq;
}

/*
 * Create the connection: RetryOnFailedConnect makes natsConnection_Connect
 * return NATS_NOT_YET_CONNECTED and keep trying in the background; other
 * failures (no usable URL, TLS setup) are retried here every second.
 */
static void req_connect(struct js_link *l)
{
	natsConnection *nc = NULL;
	jsCtx *js = NULL;
	jsOptions jo;
	natsStatus s;
	char detail[JS_DETAIL_MAX];

	for (;;) {
		s = natsConnection_Connect(&nc, l->nopts);
		if (s == NATS_OK || s == NATS_NOT_YET_CONNECTED)
			break;
		snprintf(detail, sizeof(detail), "cannot connect: %s",
			 nats_text(s));
		pthread_mutex_lock(&l->mu);
		post_state_locked(l, false, s, detail);
		if (!l->stop)
			cond_wait_until(&l->req_cond, &l->mu, now_us() + 1000000);
		if (l->stop) {
			pthread_mutex_unlock(&l->mu);
			return;
		}
		pthread_mutex_unlock(&l->mu);
	}
	jsOptions_Init(&jo);
	jo.Wait = l->timeout_ms;
	jo.PublishAsync.AckHandler = ack_handler;
	jo.PublishAsync.AckHandlerClosure = (void *)(uintptr_t)l->id;
	jo.PublishAsync.MaxPending = 0;	/* bounded by max_pending here */
	if (natsConnection_JetStream(&js, nc, &jo) != NATS_OK)
		js = NULL;

	pthread_mutex_lock(&l->mu);
	l->nc = nc;
	l->js = js;
	/* a callback that already ran knows better than our return code */
	if (!js)
		post_state_locked(l, false, NATS_NO_MEMORY,
				  "cannot make a JetStream context");
	else if (!l->cb_seen)
		post_state_locked(l, s == NATS_OK, s,
				  s == NATS_OK ? NULL : "not connected yet");
	pthread_cond_signal(&l->pub_cond);
	pthread_mutex_unlock(&l->mu);
}

static void *req_main(void *arg)
{
	struct js_link *l = arg;
	struct js_node *n;
	natsConnection *nc;
	jsCtx *js;
	jsOptions jo;
	bool connected;

	req_connect(l);
	jsOptions_Init(&jo);
	jo.Wait = l->timeout_ms;

	pthread_mutex_lock(&l->mu);
	for (;;) {
		while (!l->stop && !l->ctlq.head)
			pthread_cond_wait(&l->req_cond, &l->mu);
		if (l->stop)
			break;
		n = list_pop(&l->ctlq);
		nc = l->nc;
		js = l->js;
		connected = l->connected;
		pthread_mutex_unlock(&l->mu);

		if (!js || !connected) {
			n->res.nats_status = NATS_NOT_YET_CONNECTED;
			n->res.cls = js_classify(n->res.op, NATS_NOT_YET_CONNECTED, 0);
			set_detail(&n->res, "not connected");
		} else if (n->res.op == JS_OP_ENSURE) {
			do_ensure(l, nc, js, &jo, &n->res);
		} else if (n->res.op == JS_OP_LAST) {
			do_last(l, js, &jo, n);
		} else {
			do_delete(l, js, &jo, n);
		}

		pthread_mutex_lock(&l->mu);
		report_locked(l, n);
	}
	pthread_mutex_unlock(&l->mu);
	return NULL;
}

/* --- options ------------------------------------------------------------ */

static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static bool empty(const char *s)
{
	return !s || !*s;
}

/* A stream name: 1..JS_NAME_MAX-1 of [A-Za-z0-9_-]. */
static bool valid_stream(const char *s)
{
	size_t n = strlen(s);

	if (!n || n >= JS_NAME_MAX)
		return false;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		      "0123456789_-") == n;
}

/* Subject tokens: non-empty, no wildcards, no whitespace. */
static bool valid_subject(const char *s, size_t max)
{
	size_t n = strnlen(s, max);
	size_t i;

	if (!n || n >= max || s[0] == '.' || s[n - 1] == '.')
		return false;
	for (i = 0; i < n; i++) {
		unsigned char c = s[i];

		if (c <= ' ' || c >= 0x7f || c == '*' || c == '>')
			return false;
		if (c == '.' && s[i + 1] == '.')
			return false;
	}
	return true;
}

static int check_opts(const struct js_link_opts *o, char *err, size_t errlen)
{
	if (!o)
		return fail(err, errlen, "jetstream: no options");
	if (empty(o->urls))
		return fail(err, errlen, "jetstream: no server URLs");
	if (empty(o->stream) || !valid_stream(o->stream))
		return fail(err, errlen, "jetstream: bad stream name '%s' (1..%d of A-Z a-z 0-9 _ -)",
			    o->stream ? o->stream : "", JS_NAME_MAX - 1);
	if (empty(o->subject_prefix) || !valid_subject(o->subject_prefix, PREFIX_MAX))
		return fail(err, errlen, "jetstream: bad subject prefix '%s' (tokens without wildcards, at most %d bytes)",
			    o->subject_prefix ? o->subject_prefix : "",
			    PREFIX_MAX - 1);
	if (o->region && strlen(o->region) >= JS_NAME_MAX)
		return fail(err, errlen, "jetstream: region name longer than %d bytes",
			    JS_NAME_MAX - 1);
	if (o->replicas < 1 || o->replicas > 5)
		return fail(err, errlen, "jetstream: replicas %u out of range 1..5",
			    o->replicas);
	if (o->timeout_ms < 1 || o->timeout_ms > 600000)
		return fail(err, errlen, "jetstream: timeout %u ms out of range 1..600000",
			    o->timeout_ms);
	if (o->max_pending < 1 || o->max_pending > 65536)
		return fail(err, errlen, "jetstream: max_pending %zu out of range 1..65536",
			    o->max_pending);
	if (o->dupe_window_ms > INT64_MAX / 1000000)
		return fail(err, errlen, "jetstream: duplicate window %" PRIu64 " ms too long",
			    o->dupe_window_ms);
	if (empty(o->tls_cert) != empty(o->tls_key))
		return fail(err, errlen, "jetstream: tls_cert and tls_key go together");
	return 0;
}

static int nats_fail(char *err, size_t errlen, const char *what, natsStatus s)
{
	if (s == NATS_NO_MEMORY)
		return -ENOMEM;
	return fail(err, errlen, "jetstream: %s: %s", what, nats_text(s));
}

#define URLS_MAX	16

/* "u1,u2, u3" -> natsOptions_SetServers (SetURL takes one URL only). */
static int set_servers(natsOptions *no, const char *urls, char *err,
		       size_t errlen)
{
	const char *v[URLS_MAX];
	char *copy, *tok, *save = NULL;
	natsStatus s;
	int n = 0, ret = 0;

	copy = strdup(urls);
	if (!copy)
		return -ENOMEM;
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		size_t len;

		while (*tok == ' ' || *tok == '\t')
			tok++;
		len = strlen(tok);
		while (len && (tok[len - 1] == ' ' || tok[len - 1] == '\t'))
			tok[--len] = 0;
		if (!len)
			continue;
		if (n == URLS_MAX) {
			ret = fail(err, errlen, "jetstream: more than %d server URLs",
				   URLS_MAX);
			goto out;
		}
		v[n++] = tok;
	}
	if (!n) {
		ret = fail(err, errlen, "jetstream: no server URLs");
		goto out;
	}
	s = natsOptions_SetServers(no, v, n);
	if (s != NATS_OK)
		ret = nats_fail(err, errlen, "bad server URLs", s);
out:
	free(copy);
	return ret;
}

/* natsOptions for @o; @background: retry and reconnect forever. */
static int make_nopts(const struct js_link_opts *o, bool background,
		      void *closure, natsOptions **out, char *err, size_t errlen)
{
	natsOptions *no = NULL;
	natsStatus s;
	int ret;

	s = natsOptions_Create(&no);
	if (s != NATS_OK)
		return nats_fail(err, errlen, "cannot create options", s);
	ret = set_servers(no, o->urls, err, errlen);
	if (ret)
		goto out_free;
	s = natsOptions_SetTimeout(no, o->timeout_ms);
	if (s == NATS_OK)
		s = natsOptions_SetName(no, "evringd");
	if (s == NATS_OK)
		s = natsOptions_SetPingInterval(no, PING_INTERVAL_MS);
	if (s == NATS_OK)
		s = natsOptions_SetMaxPingsOut(no, MAX_PINGS_OUT);
	/* a stopped peer must not block the publish thread for ever */
	if (s == NATS_OK)
		s = natsOptions_SetWriteDeadline(no, o->timeout_ms);
	if (s == NATS_OK && background) {
		s = natsOptions_SetMaxReconnect(no, -1);
		if (s == NATS_OK)
			s = natsOptions_SetReconnectWait(no, RECONNECT_WAIT_MS);
		if (s == NATS_OK)
			s = natsOptions_SetRetryOnFailedConnect(no, true, on_connected,
								closure);
		if (s == NATS_OK)
			s = natsOptions_SetDisconnectedCB(no, on_disconnected, closure);
		if (s == NATS_OK)
			s = natsOptions_SetReconnectedCB(no, on_connected, closure);
		if (s == NATS_OK)
			s = natsOptions_SetClosedCB(no, on_closed, closure);
	} else if (s == NATS_OK) {
		s = natsOptions_SetAllowReconnect(no, false);
	}
	if (s != NATS_OK) {
		ret = nats_fail(err, errlen, "cannot set options", s);
		goto out_free;
	}
	if (!empty(o->creds)) {
		s = natsOptions_SetUserCredentialsFromFiles(no, o->creds, NULL);
		if (s != NATS_OK) {
			ret = nats_fail(err, errlen, "bad credentials file", s);
			goto out_free;
		}
	}
	if (!empty(o->tls_ca)) {
		s = natsOptions_SetSecure(no, true);
		if (s == NATS_OK)
			s = natsOptions_LoadCATrustedCertificates(no, o->tls_ca);
		if (s != NATS_OK) {
			ret = nats_fail(err, errlen, "bad TLS CA file", s);
			goto out_free;
		}
	}
	if (!empty(o->tls_cert)) {
		s = natsOptions_LoadCertificatesChain(no, o->tls_cert, o->tls_key);
		if (s != NATS_OK) {
			ret = nats_fail(err, errlen, "bad TLS certificate or key", s);
			goto out_free;
		}
	}
	*out = no;
	return 0;

out_free:
	natsOptions_Destroy(no);
	return ret;
}

/* --- the public functions ---------------------------------------------- */

int js_link_open(const struct js_link_opts *o, struct js_link **out,
		 char *err, size_t errlen)
{
	pthread_condattr_t ca;
	struct js_link *l;
	int ret;

	ret = check_opts(o, err, errlen);
	if (ret)
		return ret;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	snprintf(l->region, sizeof(l->region), "%s", o->region ? o->region : "");
	snprintf(l->stream, sizeof(l->stream), "%s", o->stream);
	snprintf(l->prefix, sizeof(l->prefix), "%s", o->subject_prefix);
	l->replicas = o->replicas;
	l->create_stream = o->create_stream;
	l->dupe_window_ms = o->dupe_window_ms;
	l->timeout_ms = o->timeout_ms;
	l->max_pending = o->max_pending;
	l->last_state = -1;
	l->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (l->efd < 0) {
		ret = -errno;
		free(l);
		return ret;
	}
	pthread_mutex_init(&l->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->req_cond, &ca);
	pthread_cond_init(&l->pub_cond, &ca);
	pthread_condattr_destroy(&ca);

	pthread_mutex_lock(&js_reg_mu);
	l->id = js_reg_next_id++;
	pthread_mutex_unlock(&js_reg_mu);

	ret = make_nopts(o, true, (void *)(uintptr_t)l->id, &l->nopts, err, errlen);
	if (ret)
		goto out_free;

	pthread_mutex_lock(&js_reg_mu);
	l->reg_next = js_reg;
	js_reg = l;
	pthread_mutex_unlock(&js_reg_mu);

	ret = -pthread_create(&l->req_thread, NULL, req_main, l);
	if (ret)
		goto out_close;
	l->req_started = true;
	ret = -pthread_create(&l->pub_thread, NULL, pub_main, l);
	if (ret)
		goto out_close;
	l->pub_started = true;
	*out = l;
	return 0;

out_close:
	js_link_close(l);
	return ret;
out_free:
	pthread_cond_destroy(&l->req_cond);
	pthread_cond_destroy(&l->pub_cond);
	pthread_mutex_destroy(&l->mu);
	close(l->efd);
	free(l);
	return ret;
}

static void free_list(struct js_list *q, bool own_msgs)
{
	struct js_node *n;

	while ((n = list_pop(q))) {
		if (own_msgs)
			natsMsg_Destroy(n->msg);
		free(n);
	}
}

void js_link_close(struct js_link *l)
{
	struct js_link **pp;
	natsConnection *nc;

	if (!l)
		return;
	/* from here on no libnats callback touches l */
	pthread_mutex_lock(&js_reg_mu);
	for (pp = &js_reg; *pp; pp = &(*pp)->reg_next) {
		if (*pp == l) {
			*pp = l->reg_next;
			break;
		}
	}
	pthread_mutex_unlock(&js_reg_mu);

	pthread_mutex_lock(&l->mu);
	l->stop = true;
	nc = l->nc;
	pthread_cond_broadcast(&l->req_cond);
	pthread_cond_broadcast(&l->pub_cond);
	pthread_mutex_unlock(&l->mu);
	/* wakes a request or publish blocked on the network */
	if (nc)
		natsConnection_Close(nc);
	if (l->req_started)
		pthread_join(l->req_thread, NULL);
	if (l->pub_started)
		pthread_join(l->pub_thread, NULL);

	/* the threads are gone: l is ours alone */
	if (l->nc)
		natsConnection_Close(l->nc);
	jsCtx_Destroy(l->js);		/* frees the messages it still holds */
	natsConnection_Destroy(l->nc);
	natsOptions_Destroy(l->nopts);
	free_list(&l->ctlq, false);
	free_list(&l->pubq, true);
	free_list(&l->sent, false);	/* their messages were libnats' */
	free_list(&l->results, false);
	pthread_cond_destroy(&l->req_cond);
	pthread_cond_destroy(&l->pub_cond);
	pthread_mutex_destroy(&l->mu);
	close(l->efd);
	free(l);
}

int js_link_fd(const struct js_link *l)
{
	return l->efd;
}

size_t js_link_inflight(const struct js_link *l)
{
	struct js_link *m = (struct js_link *)l;
	size_t n;

	pthread_mutex_lock(&m->mu);
	n = m->pubq.n + m->sent.n;
	pthread_mutex_unlock(&m->mu);
	return n;
}

/*
 * A value must hold something besides blanks: libnats 3.4.1 reads an
 * empty (or blank) value back as the next header's line, so that header
 * would be lost on the reading side.
 */
static bool valid_header(const char *name, const char *value)
{
	bool blank = true;
	size_t i;

	if (empty(name) || !value)
		return false;
	for (i = 0; name[i]; i++)
		if ((unsigned char)name[i] <= ' ' || name[i] == ':' ||
		    (unsigned char)name[i] >= 0x7f)
			return false;
	for (i = 0; value[i]; i++) {
		if (value[i] == '\r' || value[i] == '\n')
			return false;
		if (value[i] != ' ' && value[i] != '\t')
			blank = false;
	}
	return !blank;
}

/* The natsMsg of a PUBLISH request, headers included. */
static int build_msg(const struct js_req *r, natsMsg **out)
{
	char num[24];
	natsMsg *m = NULL;
	natsStatus s;
	unsigned int i;

	s = natsMsg_Create(&m, r->subject, NULL, r->data, (int)r->len);
	if (s == NATS_OK && r->msg_id[0])
		s = natsMsgHeader_Set(m, HDR_MSG_ID, r->msg_id);
	/* always: "0" means the subject must hold no message yet */
	snprintf(num, sizeof(num), "%" PRIu64, r->expect_last_subject_seq);
	if (s == NATS_OK)
		s = natsMsgHeader_Set(m, HDR_EXPECT_SUBJ_SEQ, num);
	for (i = 0; s == NATS_OK && i < r->nhdr; i++)
		s = natsMsgHeader_Add(m, r->hdr_name[i], r->hdr_value[i]);
	if (s != NATS_OK) {
		natsMsg_Destroy(m);
		return s == NATS_NO_MEMORY ? -ENOMEM : -EINVAL;
	}
	*out = m;
	return 0;
}

static int check_req(const struct js_req *r)
{
	unsigned int i;

	switch (r->op) {
	case JS_OP_ENSURE:
	case JS_OP_DELETE:
		return 0;
	case JS_OP_LAST:
	case JS_OP_PUBLISH:
		break;
	default:
		return -EINVAL;
	}
	if (!valid_subject(r->subject, sizeof(r->subject)))
		return -EINVAL;
	if (r->op == JS_OP_LAST)
		return 0;
	if ((!r->data && r->len) || r->len > INT_MAX || r->nhdr > NHDR_MAX ||
	    strnlen(r->msg_id, sizeof(r->msg_id)) == sizeof(r->msg_id) ||
	    strpbrk(r->msg_id, "\r\n"))
		return -EINVAL;
	for (i = 0; i < r->nhdr; i++)
		if (!valid_header(r->hdr_name[i], r->hdr_value[i]))
			return -EINVAL;
	return 0;
}

int js_link_submit(struct js_link *l, const struct js_req *r)
{
	struct js_node *n;
	natsMsg *msg = NULL;
	int ret;

	ret = check_req(r);
	if (ret)
		return ret;
	pthread_mutex_lock(&l->mu);
	if (r->op == JS_OP_PUBLISH ?
	    l->pubq.n + l->sent.n >= l->max_pending :
	    l->ctlq.n >= l->max_pending) {
		pthread_mutex_unlock(&l->mu);
		return -EAGAIN;
	}
	pthread_mutex_unlock(&l->mu);

	n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	if (r->op == JS_OP_PUBLISH) {
		ret = build_msg(r, &msg);
		if (ret) {
			free(n);
			return ret;
		}
	}
	n->msg = msg;
	memcpy(n->subject, r->subject, sizeof(n->subject));
	n->seq = r->seq;
	n->t0_us = now_us();
	n->deadline_us = n->t0_us + (uint64_t)l->timeout_ms * 1000;
	n->res.op = r->op;
	n->res.tag = r->tag;

	pthread_mutex_lock(&l->mu);
	if (r->op == JS_OP_PUBLISH) {
		list_push(&l->pubq, n);
		pthread_cond_signal(&l->pub_cond);
	} else {
		list_push(&l->ctlq, n);
		pthread_cond_signal(&l->req_cond);
	}
	pthread_mutex_unlock(&l->mu);
	return 0;
}

int js_link_poll(struct js_link *l, struct js_result *out)
{
	struct js_result state = { .op = JS_OP_STATE };
	struct js_node *n;
	bool lost = false;
	uint64_t v;

	pthread_mutex_lock(&l->mu);
	n = list_pop(&l->results);
	if (!n && l->state_lost) {
		/* a STATE node could not be allocated: say how it is now */
		l->state_lost = false;
		lost = true;
		state.connected = l->connected;
		state.cls = l->connected ? JS_OK : JS_TRANSIENT;
	}
	if (!l->results.head && !l->state_lost && l->signalled) {
		/* drain the eventfd: not readable until the next result */
		if (read(l->efd, &v, sizeof(v)) == sizeof(v) || errno == EAGAIN)
			l->signalled = false;
	}
	pthread_mutex_unlock(&l->mu);
	if (lost) {
		*out = state;
		return 0;
	}
	if (!n)
		return -EAGAIN;
	*out = n->res;
	free(n);
	return 0;
}

/* --- reading a stream -------------------------------------------------- */

static int read_errno(natsStatus s)
{
	switch (s) {
	case NATS_TIMEOUT:
	case NATS_NO_RESPONDERS:
		return -ETIMEDOUT;
	case NATS_NO_SERVER:
	case NATS_NOT_YET_CONNECTED:
	case NATS_CONNECTION_CLOSED:
	case NATS_CONNECTION_DISCONNECTED:
	case NATS_IO_ERROR:
		return -ECONNREFUSED;
	case NATS_NO_MEMORY:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

static int read_fail(char *err, size_t errlen, natsStatus s, jsErrCode code,
		     const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int read_fail(char *err, size_t errlen, natsStatus s, jsErrCode code,
		     const char *fmt, ...)
{
	const char *text = nats_text(s);
	char what[JS_DETAIL_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (err && errlen)
		snprintf(err, errlen, "%s: %s", what, text);
	if (err && errlen && code) {
		size_t n = strlen(err);

		snprintf(err + n, errlen - n, " (error %d)", code);
	}
	if (code == JSStreamNotFoundErr)
		return -ENOENT;
	return read_errno(s);
}

/*
 * @name's (first) value on @msg, valid while @msg lives: NULL when the
 * header is absent, "" when its value is empty.
 */
static const char *msg_header(natsMsg *msg, const char *name)
{
	const char *v = NULL;

	if (natsMsgHeader_Get(msg, name, &v) != NATS_OK)
		return NULL;
	return v ? v : "";
}

int js_read_stream(const struct js_link_opts *o, uint64_t from_seq,
		   int (*cb)(const struct js_stored *m, void *arg), void *arg,
		   char *err, size_t errlen)
{
	natsConnection *nc = NULL;
	natsOptions *no = NULL;
	jsStreamInfo *si = NULL;
	jsCtx *js = NULL;
	jsErrCode code = 0;
	uint64_t seq, last;
	jsOptions jo;
	natsStatus s;
	int ret;

	ret = check_opts(o, err, errlen);
	if (ret)
		return ret;
	ret = make_nopts(o, false, NULL, &no, err, errlen);
	if (ret)
		return ret;
	s = natsConnection_Connect(&nc, no);
	if (s != NATS_OK) {
		ret = read_fail(err, errlen, s, 0, "cannot connect to '%s'", o->urls);
		goto out;
	}
	jsOptions_Init(&jo);
	jo.Wait = o->timeout_ms;
	s = natsConnection_JetStream(&js, nc, &jo);
	if (s != NATS_OK) {
		ret = read_fail(err, errlen, s, 0, "cannot use JetStream");
		goto out;
	}
	s = js_GetStreamInfo(&si, js, o->stream, &jo, &code);
	if (s != NATS_OK) {
		ret = read_fail(err, errlen, s, code, "cannot look up stream '%s'",
				o->stream);
		goto out;
	}
	seq = from_seq > si->State.FirstSeq ? from_seq : si->State.FirstSeq;
	if (!seq)
		seq = 1;
	last = si->State.LastSeq;
	jsStreamInfo_Destroy(si);

	for (; seq <= last; seq++) {
		struct js_stored m = { .stream_seq = seq, .msg_id = "" };
		const char *v;
		natsMsg *msg = NULL;

		code = 0;
		s = js_GetMsg(&msg, js, o->stream, seq, &jo, &code);
		if (s == NATS_NOT_FOUND && code == JSNoMessageFoundErr)
			continue;	/* deleted */
		if (s != NATS_OK) {
			ret = read_fail(err, errlen, s, code,
					"cannot read message %" PRIu64 " of stream '%s'",
					seq, o->stream);
			goto out;
		}
		m.subject = natsMsg_GetSubject(msg);
		v = msg_header(msg, HDR_MSG_ID);
		if (v)
			m.msg_id = v;
		m.dead_letter = msg_header(msg, JS_HDR_DEAD_LETTER);
		m.host = msg_header(msg, JS_HDR_HOST);
		m.source = msg_header(msg, JS_HDR_SOURCE);
		m.partition = msg_header(msg, JS_HDR_PARTITION);
		m.epoch = msg_header(msg, JS_HDR_EPOCH);
		m.first_seq = msg_header(msg, JS_HDR_FIRST_SEQ);
		m.count = msg_header(msg, JS_HDR_COUNT);
		m.data = natsMsg_GetData(msg);
		m.len = natsMsg_GetDataLength(msg);
		m.stored_ns = natsMsg_GetTime(msg);
		ret = cb(&m, arg);
		natsMsg_Destroy(msg);
		if (ret)
			goto out;
	}
	ret = 0;
out:
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	natsOptions_Destroy(no);
	return ret;
}
