/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * source_sock: the ingest socket (uapi/evring_socket.h) as a source, for
 * hosts and containers without the module.  One drain stream (socket,
 * partition 0) whose epoch is chosen once and kept in the spool, so its
 * sequence numbers stay gap-free across daemon restarts.
 *
 * Each message is one event; the daemon gives it the ring's record header
 * (seq, receive time, the peer's pid and uid) in a staging buffer, and
 * acknowledges a client's events only once the drain committed them.  When
 * staging is full or the spool is, clients are not read: their sends block.
 */
#ifndef EVRINGD_SOURCE_SOCK_H
#define EVRINGD_SOURCE_SOCK_H

#include "config.h"
#include "control.h"
#include "drain.h"
#include "loop.h"

struct source_sock;

int source_sock_open(struct loop *l, struct drain *d,
		     const struct evd_config *c, struct source_sock **out,
		     char *err, size_t errlen);
void source_sock_close(struct source_sock *s);

unsigned int source_sock_status(struct source_sock *s,
				struct control_part_status *rows,
				unsigned int max);

#endif /* EVRINGD_SOURCE_SOCK_H */
