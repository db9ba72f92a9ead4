/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * spool: the host's durable store of batches, on SQLite (WAL).  This is the
 * first durable hop: a record is released from its ring only after the
 * spool_commit() that holds it returned 0.  spool.c is the only file of the
 * daemon that sees SQLite; its schema is documented in docs/FORMAT.md.
 *
 *	struct spool *s;
 *	char err[256];
 *	spool_open(&(struct spool_opts){ .path = p, .max_bytes = m },
 *		   &s, err, sizeof(err));
 *	spool_get_checkpoint(s, source, partition, &cp);	where to resume
 *	loop:
 *		spool_commit(s, appends, n, loss, nloss, notes, nnotes);
 *		... release the ring up to appends[n - 1].position ...
 *	spool_foreach_batch(s, after_id, cb, arg);		a reader
 *	spool_trim(s, upto_id);
 *	spool_close(s);
 *
 * The shipper (schema 2, bottom of this file) walks rows per partition with
 * spool_foreach_row(), fetches bodies with spool_get_batch(), and moves its
 * cursors and trims what every region has with spool_ship_commit().
 *
 * One writer at a time: a second read-write spool_open() of the same file
 * is -EBUSY, from another process or from the same one (use spool_reopen()
 * to start over in place).  Any number of read-only opens may run beside
 * it; a read-only spool's checkpoints and stats are those of the moment it
 * was opened, while its foreach walks read the file as it is now.  A struct
 * spool is not thread-safe: one thread uses it at a time.
 *
 * Every function returns 0 or -errno; out-parameters are written only on
 * success.  A failed call leaves a human-readable detail in
 * spool_strerror().  Errnos and what they mean for the caller:
 *
 *	EDQUOT		the batches would take the spool over opts.max_bytes;
 *			nothing written; retry after spool_trim() or a
 *			spool_ship_commit() that trims (backpressure)
 *	EFBIG		the batches alone exceed opts.max_bytes: never fits
 *	ENOSPC		the file system is full.  Fatal for this spool object:
 *			every later write returns ENOSPC again; reads still
 *			work; spool_reopen() once space was freed (a second
 *			spool_open() of the same file would be EBUSY)
 *	EIO		SQLite reported an I/O error or a commit failed.
 *			Fatal, and spool_reopen() refuses too ("fsync after an
 *			fsync error can succeed with the data gone"): stop,
 *			let an operator look, restart the process
 *	EEXIST		commit: a batch overlaps what the spool already holds
 *			for its (source, partition, epoch): it would double
 *			records.  Nothing written
 *	EINVAL		bad argument, or a batch that leaves a gap after its
 *			partition's checkpoint in the same epoch which no loss
 *			entry of the same call covers, or a cursor that would
 *			move backwards.  Nothing written
 *	ENOENT		the checkpoint, batch or dead letter asked for does
 *			not exist (any more)
 *	EBADMSG		an appended batch fails batch_peek() (nothing
 *			written); at open: the file is an evring spool but
 *			corrupt (quick_check); SQLite finding corruption during
 *			a write: fatal like EIO
 *	EMEDIUMTYPE	open: not an SQLite database, or an SQLite database
 *			that is not an evring spool (application_id)
 *	EPROTONOSUPPORT	open: spool schema newer than this program
 *	EPERM		open: the existing file is group or world writable
 *	EBUSY		open: another process has the spool open for writing
 *	EROFS		write on a read-only spool, or read-only open of a
 *			spool whose schema needs migrating
 */
#ifndef EVRINGD_SPOOL_H
#define EVRINGD_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* PRAGMA application_id of every evring spool: "EVRG". */
#define SPOOL_APPLICATION_ID	0x45565247
/* PRAGMA user_version this program writes. */
#define SPOOL_SCHEMA_VERSION	2
/* Longest loss reason / note text accepted, bytes. */
#define SPOOL_TEXT_MAX		256

struct spool;

enum spool_sync {
	/* synchronous=FULL: a commit that returned 0 survives power loss. */
	SPOOL_SYNC_FULL = 0,
	/*
	 * synchronous=NORMAL: may lose the last commits on power loss (never
	 * on a process crash); the ring has released them by then.  For
	 * benchmarks and hosts that accept it.
	 */
	SPOOL_SYNC_NORMAL = 1,
};

struct spool_opts {
	const char *path;	/* created with mode 0600 when missing */
	enum spool_sync sync;	/* 0 = SPOOL_SYNC_FULL */
	uint64_t max_bytes;	/* bound on the sum of batch bytes; 0: none */
	bool read_only;		/* inspect only (evringctl); never creates */
};

/* Where a (source, partition) stands: the last batch spooled for it. */
struct spool_checkpoint {
	uint64_t epoch;
	uint64_t position;	/* source position after that batch */
	uint64_t last_seq;	/* seq of its last record */
};

/* One batch to spool. */
struct spool_append {
	const void *batch;	/* encoded by batch_encode() */
	size_t len;
	uint64_t position;	/* checkpoint position after this batch */
};

/* A range of lost records, for the ledger. */
struct spool_loss {
	unsigned int source;
	uint32_t partition;
	uint64_t epoch;
	uint64_t first_seq;	/* <= last_seq */
	uint64_t last_seq;
	uint64_t at_ns;		/* CLOCK_REALTIME; 0 on commit: now */
	const char *reason;	/* 1..SPOOL_TEXT_MAX bytes */
};

/* A journal note, e.g. an epoch change of a partition. */
struct spool_note {
	uint64_t at_ns;		/* CLOCK_REALTIME; 0 on commit: now */
	unsigned int source;
	uint32_t partition;
	uint64_t old_epoch;
	uint64_t new_epoch;
	const char *text;	/* NULL or up to SPOOL_TEXT_MAX bytes */
};

struct spool_stats {
	uint64_t batches;	/* rows in the spool now */
	uint64_t records;
	uint64_t bytes;		/* sum of encoded batch sizes */
	uint64_t max_bytes;	/* 0: no bound */
	uint64_t first_id;	/* oldest batch id; 0 when empty */
	uint64_t last_id;	/* newest batch id ever assigned; 0: never */
	uint64_t oldest_ns;	/* created_ns of the oldest batch; 0: empty */
	uint64_t newest_ns;	/* created_ns of the newest batch; 0: empty */
	uint64_t file_bytes;	/* database + WAL on disk */
	unsigned int nparts;	/* see spool_part_stats() */
	/*
	 * Dead letters (schema 2).  Their bodies are on disk (in file_bytes)
	 * but outside bytes and max_bytes: a poison batch must never stop
	 * the drain; an operator replays or purges them.
	 */
	uint64_t dead_letters;
	uint64_t dead_bytes;	/* sum of their batch bytes */
};

/* Per (source, partition) that has a checkpoint. */
struct spool_part_stats {
	unsigned int source;
	uint32_t partition;
	uint64_t batches;	/* in the spool now */
	uint64_t records;
	uint64_t bytes;
	struct spool_checkpoint cp;
};

/*
 * Open (creating when missing, unless read-only) the spool at o->path and
 * bring its schema to SPOOL_SCHEMA_VERSION.  Never modifies a file that is
 * not an evring spool or that fails PRAGMA quick_check, and never wipes
 * anything.  On failure *@out is untouched and @err (when non-NULL) holds
 * a one-line reason naming the path.
 */
int spool_open(const struct spool_opts *o, struct spool **out,
	       char *err, size_t errlen);

/*
 * Open @s's file again in place, as spool_open() would (same options, all
 * checks), keeping the writer lock throughout.  This is how a spool failed
 * with ENOSPC resumes once space was freed; a spool failed with anything
 * else is refused with its errno (restart the process).  On failure @s is
 * unchanged and @err says why.
 */
int spool_reopen(struct spool *s, char *err, size_t errlen);

/* Close; accepts NULL. */
void spool_close(struct spool *s);

/* Detail of the last failure on @s, "" when none.  Valid until next call. */
const char *spool_strerror(const struct spool *s);

/* The checkpoint of (@source, @partition), or -ENOENT when it has none. */
int spool_get_checkpoint(struct spool *s, unsigned int source,
			 uint32_t partition, struct spool_checkpoint *out);

/*
 * One transaction, all or nothing: insert the @n batches in order (ids
 * ascending), move each one's (source, partition) checkpoint to (its
 * epoch, a->position, its last seq), and insert the @nloss ledger rows and
 * @nnotes notes.  When it returns 0 all of it is durable (per opts.sync);
 * on any error none of it is visible, now or after a crash.
 *
 * Within one epoch a partition's batches must continue its checkpoint:
 * first_seq == last_seq + 1, or a loss entry of this call covers the gap
 * (EINVAL otherwise); overlapping seqs are EEXIST.  A batch of another
 * epoch starts a new run.  n, nloss and nnotes may each be 0.
 */
int spool_commit(struct spool *s, const struct spool_append *a,
		 unsigned int n, const struct spool_loss *loss,
		 unsigned int nloss, const struct spool_note *notes,
		 unsigned int nnotes);

/*
 * Change the bound on the sum of batch bytes (spool.max_bytes is live on
 * SIGHUP).  Lowering it below what the spool holds evicts nothing: commits
 * get -EDQUOT until trims bring the spool under it.
 */
void spool_set_max_bytes(struct spool *s, uint64_t max_bytes);

/* Totals, from memory (no query), plus the file size. */
int spool_stats(struct spool *s, struct spool_stats *out);

/* The @i-th (0 .. nparts - 1, by source then partition); -ENOENT beyond. */
int spool_part_stats(struct spool *s, unsigned int i,
		     struct spool_part_stats *out);

/*
 * Call @cb for every batch with id > @after_id, in id order, streaming (one
 * batch in memory at a time).  @body is valid only during the call.  A
 * non-zero return from @cb stops the walk and is returned; 0 after the last
 * batch.  @cb must not call other spool functions on @s.
 */
int spool_foreach_batch(struct spool *s, uint64_t after_id,
			int (*cb)(uint64_t id, const void *body, size_t len,
				  void *arg),
			void *arg);

/* The same for ledger rows, id > @after_id; l->reason valid during cb. */
int spool_foreach_loss(struct spool *s, uint64_t after_id,
		       int (*cb)(uint64_t id, const struct spool_loss *l,
				 void *arg),
		       void *arg);

/* The same for notes, id > @after_id; n->text valid during cb. */
int spool_foreach_note(struct spool *s, uint64_t after_id,
		       int (*cb)(uint64_t id, const struct spool_note *n,
				 void *arg),
		       void *arg);

/*
 * Delete every batch with id <= @upto_id in one transaction (checkpoints,
 * ledger and notes stay).  Ids are never reused, so later batches keep
 * ascending ids even when the spool becomes empty.
 */
int spool_trim(struct spool *s, uint64_t upto_id);


/*
 * Shipping (schema 2).  A cursor per (region, source, partition) says which
 * spooled batch of that partition was last delivered to that region; it
 * only moves forward.  The shipper deletes rows no region still needs in
 * the same transaction that moves cursors, so that after a crash at any
 * instant a partition's remaining rows start right after its least
 * advanced cursor: never a cursor moved without its trim, never a trim
 * without its cursor.  Dead letters are batches a region refused for good;
 * each keeps a copy of its batch (row fields and body) until an operator
 * replays or purges it.  Dead letters take disk space but do not count
 * toward opts.max_bytes (see struct spool_stats): dead-lettering a batch
 * never makes the drain wait.
 *
 * A region name is 1..SPOOL_REGION_MAX bytes of [A-Za-z0-9_-]; anything
 * else is -EINVAL.  Reads (cursors, rows, bodies, dead letters) work on a
 * read-only spool; writes there are -EROFS.
 */
#define SPOOL_REGION_MAX	64	/* region name bytes, without the NUL */

struct spool_cursor {
	char region[SPOOL_REGION_MAX + 1];
	unsigned int source;
	uint32_t partition;
	uint64_t batch_id;	/* last batch of the partition delivered */
	uint64_t epoch;		/* that batch's epoch ... */
	uint64_t last_seq;	/* ... and last record seq */
	uint64_t stream_seq;	/* its sequence in the region's stream */
	uint64_t updated_ns;	/* CLOCK_REALTIME; 0 on commit: now */
};

/* Delete the partition's batches with id <= upto_id. */
struct spool_trim_part {
	unsigned int source;
	uint32_t partition;
	uint64_t upto_id;
};

/* What a batch row is, without its body. */
struct spool_batch_row {
	uint64_t id;
	unsigned int source;
	uint32_t partition;
	uint64_t epoch;
	uint64_t first_seq;
	uint32_t count;
	uint64_t bytes;
	uint64_t created_ns;
};

struct spool_dead {
	uint64_t id;		/* dead-letter id, never reused */
	char region[SPOOL_REGION_MAX + 1];
	struct spool_batch_row batch;	/* the batch as it was spooled */
	char reason[SPOOL_TEXT_MAX + 1];
	uint32_t attempts;
	uint64_t at_ns;
};

/*
 * One transaction (BEGIN IMMEDIATE ... COMMIT, errors as for spool_commit):
 * upsert the @nc cursors in order and delete each of the @nt partitions'
 * batches with id <= its upto_id; the stats follow exactly and the bytes
 * freed let an EDQUOT commit through again.  -EINVAL, nothing written,
 * when a cursor would move backwards (batch_id lower than stored, or than
 * an earlier cursor of the same call: "cursor for region 'a' kmod-3 would
 * move back from 17 to 12"), points past the last batch id ever assigned,
 * or has a bad region name or source.  An equal batch_id is allowed (e.g.
 * a new stream_seq).  nc and nt may each be 0.
 */
int spool_ship_commit(struct spool *s, const struct spool_cursor *c,
		      unsigned int nc, const struct spool_trim_part *t,
		      unsigned int nt);

/*
 * Every stored cursor, by region, source, partition; @c valid during the
 * call.  A non-zero return from @cb stops the walk and is returned.
 */
int spool_foreach_cursor(struct spool *s,
			 int (*cb)(const struct spool_cursor *c, void *arg),
			 void *arg);

/*
 * Batch rows with id > @after_id, in id order, at most @max (0: all);
 * @source/@partition filter when @one_part (an index walk, cheap).  Bodies
 * are not read.  A non-zero return from @cb stops the walk and is
 * returned.  @cb may call spool_get_batch() on @s, nothing else.
 */
int spool_foreach_row(struct spool *s, uint64_t after_id, bool one_part,
		      unsigned int source, uint32_t partition,
		      unsigned int max,
		      int (*cb)(const struct spool_batch_row *r, void *arg),
		      void *arg);

/*
 * The body of batch @id: a malloc'ed copy in *@body (free()), *@len bytes,
 * and its row in *@row (when non-NULL).  @body and @len may both be NULL
 * to read the row only.  -ENOENT when the spool no longer holds it.
 */
int spool_get_batch(struct spool *s, uint64_t id, void **body, size_t *len,
		    struct spool_batch_row *row);

/*
 * Dead-letter batch @batch_id for @region with @reason (1..SPOOL_TEXT_MAX
 * bytes): copies the batch's row and body into the dead-letter table in
 * one statement of one transaction (at_ns: now) and returns the new
 * dead-letter id in *@dead_id.  The batch row itself stays: the shipper
 * trims it through its cursors.  -ENOENT when the batch is gone.
 */
int spool_dead_add(struct spool *s, uint64_t batch_id, const char *region,
		   const char *reason, uint32_t attempts, uint64_t *dead_id);
/* Every dead letter, by id; as spool_foreach_cursor(). */
int spool_foreach_dead(struct spool *s,
		       int (*cb)(const struct spool_dead *d, void *arg),
		       void *arg);
/*
 * One dead letter into *@d (when non-NULL) and (when @body non-NULL) a
 * malloc'ed copy of its batch, *@len bytes.  -ENOENT when none.
 */
int spool_dead_get(struct spool *s, uint64_t dead_id, struct spool_dead *d,
		   void **body, size_t *len);
/* Remove one dead letter (after replay or purge); -ENOENT when none. */
int spool_dead_delete(struct spool *s, uint64_t dead_id);

#endif /* EVRINGD_SPOOL_H */
