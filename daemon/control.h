/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * control: the operator's control socket (server side).  A Unix stream
 * socket speaking one JSON object per line; evringctl is its client and
 * docs/OPERATING.md its reference.
 *
 *	request:  {"cmd":"status"}            {"cmd":"spool"}
 *	          {"cmd":"ledger","limit":100} {"cmd":"ping"}
 *	          {"cmd":"dlq_list"}           {"cmd":"dlq_show","id":3}
 *	          {"cmd":"dlq_replay","id":3}  {"cmd":"dlq_purge","id":3}
 *	          {"cmd":"failpoint","name":"drain.after_commit","action":"crash"}
 *	          {"cmd":"failpoint_list"}
 *	response: {"ok":true,"cmd":"status",...}
 *	          {"ok":false,"error":"unknown cmd 'x'"}
 *
 * failpoint and failpoint_list arm and list failpoint.h's failpoints (they
 * are process-wide, not daemon state: no callback).
 *
 * Dead letters leave their table only through dlq_replay (once the region
 * acknowledged the batch) or dlq_purge, each naming one id: there is no
 * wildcard.  evringctl also asks the operator for --yes before a purge.
 *
 * The daemon's state reaches this module through struct control_ops, typed
 * callbacks that fill the plain structs below; jansson stays inside
 * control.c.  Every callback runs on the loop's thread, inside the loop
 * callback that read the request.
 *
 * Guarantees:
 *  - Access: the socket file is mode 0660 (group: the first allow_gid, if
 *    any) in a parent directory created (0755) when missing; then each
 *    peer's SO_PEERCRED uid, gid and SO_PEERGROUPS are checked against
 *    control.allow_uid / allow_gid.  A refused peer gets one error line and
 *    is closed.
 *  - Bounds: a request line is at most CONTROL_LINE_MAX bytes (a longer one
 *    gets an error line and the connection is closed); at most
 *    CONTROL_CLIENTS_MAX clients at once (one more gets an error line and
 *    is closed); a client that neither completes a request line nor takes
 *    response bytes for CONTROL_IDLE_MS is closed (so a line trickled in
 *    byte by byte cannot hold a slot); one request is served at a time
 *    per client (the next is not read until the response is written), so a
 *    client that does not read cannot make us buffer more than one response.
 *  - Garbage (not JSON, not an object, no or unknown "cmd", wrong types,
 *    unknown fields) gets {"ok":false,"error":...} and the connection stays
 *    usable; no client can crash the server or stall the others.
 *  - The module never prints.
 */
#ifndef EVRINGD_CONTROL_H
#define EVRINGD_CONTROL_H

#include <stdint.h>

#include "config.h"
#include "loop.h"
#include "ship.h"
#include "spool.h"

#define CONTROL_LINE_MAX	4096	/* request bytes, including '\n' */
#define CONTROL_CLIENTS_MAX	64
#define CONTROL_IDLE_MS		30000
#define CONTROL_NAME_MAX	32	/* source names and loss reasons */
#define CONTROL_PARTS_MAX	256	/* status rows */
#define CONTROL_LEDGER_DEFAULT	100	/* ledger rows when no "limit" */
#define CONTROL_LEDGER_MAX	1000	/* the largest "limit" accepted */
#define CONTROL_RATE_WINDOW_S	10	/* ingest rate: events/s over this */
#define CONTROL_DLQ_MAX		1000	/* dead letters in one dlq_list */

struct control;

/* Daemon-wide state, as "state" in the status response. */
enum control_state {
	CONTROL_STATE_STARTING,		/* "starting" */
	CONTROL_STATE_DRAINING,		/* "draining" */
	CONTROL_STATE_SPOOL_FULL,	/* "spool_full": draining stopped */
	CONTROL_STATE_STOPPING,		/* "stopping" */
};

/* One ring: a partition of a source. */
struct control_part_status {
	char source[CONTROL_NAME_MAX];	/* "device", "socket", "bpf", ... */
	uint32_t partition;
	uint64_t epoch;			/* 0 when the source has none */
	uint64_t ring_fill;		/* bytes in use */
	uint64_t ring_size;		/* bytes */
	uint64_t read_pos;
	uint64_t release_pos;
	uint64_t spool_batches;		/* in the spool, not yet shipped */
	uint64_t spool_records;
	uint64_t last_seq;		/* last sequence spooled */
	uint32_t writers_blocked;	/* writers asleep for ring space now */
	/* A BPF capture ("bpf", partition = capture id); capture "" otherwise. */
	char capture[CONTROL_NAME_MAX];	/* "exec", "open", ... */
	uint64_t events;		/* written to the ring by its programs */
	uint64_t drops;			/* lost because the ring was full */
	uint64_t shed;			/* lost because it was being shed */
};

struct control_status {
	enum control_state state;
	uint64_t uptime_ms;
	unsigned int nr_parts;		/* <= CONTROL_PARTS_MAX */
	struct control_part_status parts[CONTROL_PARTS_MAX];
	/* Shipping: one entry per configured region (ship_region_status()). */
	unsigned int nr_regions;	/* <= CONFIG_REGIONS_MAX */
	struct ship_region_status regions[CONFIG_REGIONS_MAX];
};

struct control_spool {
	char path[CONFIG_PATH_MAX];
	uint64_t bytes;			/* on disk, database + WAL */
	uint64_t max_bytes;
	uint64_t batches;
	uint64_t records;
	int64_t oldest_age_ms;		/* age of the oldest batch, -1: empty */
};

/*
 * Cumulative since the daemon started, never decreasing; control.c samples
 * them every second to report ingest rates over CONTROL_RATE_WINDOW_S.
 */
struct control_counters {
	uint64_t records_in;		/* events spooled */
	uint64_t bytes_in;		/* payload bytes spooled */
	uint64_t batches_in;		/* batches spooled */
};

/* One range of sequence numbers known lost, from the loss ledger. */
struct control_loss {
	char source[CONTROL_NAME_MAX];
	uint32_t partition;
	uint64_t epoch;
	uint64_t first_seq;
	uint64_t last_seq;		/* inclusive */
	char reason[CONTROL_NAME_MAX];	/* e.g. "epoch_change", "crc" */
	uint64_t ts_ns;			/* CLOCK_REALTIME when recorded */
};

/* A ledger row sink: returns 0, or -errno to make the walk stop. */
typedef int (*control_emit_fn)(const struct control_loss *loss, void *arg);

/* One dead letter: a batch a region refused for good, and why. */
struct control_dead {
	uint64_t id;			/* dead-letter id */
	char region[SPOOL_REGION_MAX + 1];
	uint64_t batch_id;		/* the spool's id of the batch */
	char source[CONTROL_NAME_MAX];	/* "device", "socket", "bpf" */
	uint32_t partition;
	uint64_t epoch;
	uint64_t first_seq;
	uint32_t count;			/* records, as spooled */
	uint64_t bytes;			/* encoded batch bytes */
	uint64_t spooled_ns;		/* CLOCK_REALTIME when spooled */
	char reason[SPOOL_TEXT_MAX + 1];
	uint32_t attempts;
	uint64_t at_ns;			/* CLOCK_REALTIME when dead-lettered */
	/* dlq_show only: the stored copy decoded. */
	int64_t decoded;		/* records in it; -1: it does not decode */
	char decode_error[64];		/* why not, when decoded < 0 */
};

/* A dead-letter sink: returns 0, or -errno to make the walk stop. */
typedef int (*control_dead_fn)(const struct control_dead *d, void *arg);

/*
 * All return 0 or -errno; a failure becomes {"ok":false,"error":
 * "<cmd>: <strerror>"}, except -ENOENT from a dlq_* op, which is "no dead
 * letter <id>".  @out arrives zeroed.  Any op may be NULL: its command
 * then answers "not available".
 */
struct control_ops {
	int (*status)(void *arg, struct control_status *out);
	int (*spool)(void *arg, struct control_spool *out);
	int (*counters)(void *arg, struct control_counters *out);
	/* Every range, oldest first; control.c keeps the newest "limit". */
	int (*ledger)(void *arg, control_emit_fn emit, void *emit_arg);
	/* Every dead letter, by id; control.c keeps the first CONTROL_DLQ_MAX. */
	int (*dlq_list)(void *arg, control_dead_fn emit, void *emit_arg);
	/* Dead letter @id, with its stored copy decoded. */
	int (*dlq_show)(void *arg, uint64_t id, struct control_dead *out);
	/* Send it through the normal path again (ship_dlq_replay()). */
	int (*dlq_replay)(void *arg, uint64_t id);
	/* Remove it unsent (ship_dlq_purge()). */
	int (*dlq_purge)(void *arg, uint64_t id);
};

/*
 * Listen on @path (NULL: c->control_socket) and serve it from @l with
 * @ops(@arg).  @c's allow lists are copied.  An existing socket file is
 * replaced when nothing listens on it (a crashed daemon's); -EADDRINUSE
 * when something does, -EEXIST when @path is not a socket.
 */
int control_open(struct loop *l, const char *path, const struct evd_config *c,
		 const struct control_ops *ops, void *arg,
		 struct control **out);
/* Close every client and the listener, unlink the socket file if ours. */
void control_close(struct control *ctl);

/*
 * Adopt @c's allow lists (the live control.* keys, after SIGHUP): clients
 * that are no longer allowed are closed at once.
 */
int control_reconfigure(struct control *ctl, const struct evd_config *c);

/* Clients connected now. */
unsigned int control_nr_clients(const struct control *ctl);

/* For tests: the idle timeout, in ms (default CONTROL_IDLE_MS). */
void control_set_idle_ms(struct control *ctl, unsigned int ms);

#endif /* EVRINGD_CONTROL_H */
