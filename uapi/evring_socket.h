/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * The ingest socket: the contract between libevring and evringd where the
 * module is not loaded.  AF_UNIX SOCK_SEQPACKET, default path below.
 *
 * Client to daemon: every message is one event, 1 .. socket_max_event bytes
 * (evringd's configuration; 65536 by default).  The daemon gives it the same
 * struct evring_rec as a device record: its own partition of the socket
 * source, a gap-free sequence, the receive time, and the pid and uid from
 * the connection's peer credentials.
 *
 * Daemon to client: struct evring_sock_reply messages.  An ACK carries the
 * number of this connection's events that are durable in the spool,
 * cumulatively, so the daemon may coalesce acks; an event is accepted only
 * once an ACK covers it.  An ERROR names the reason (an errno) and is
 * followed by the daemon closing the connection; events before it that an
 * ACK covered stay accepted.
 */
#ifndef _UAPI_EVRING_SOCKET_H
#define _UAPI_EVRING_SOCKET_H

#include <linux/types.h>

#define EVRING_SOCK_PATH	"/run/evring/ingest.sock"

#define EVRING_SOCK_ACK		1
#define EVRING_SOCK_ERROR	2

struct evring_sock_reply {
	__u32 type;		/* EVRING_SOCK_ACK or EVRING_SOCK_ERROR */
	__u32 error;		/* ERROR: a positive errno (EMSGSIZE, EINVAL, ...) */
	__u64 acked;		/* events of this connection durable so far */
};

#endif /* _UAPI_EVRING_SOCKET_H */
