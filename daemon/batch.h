/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * batch: the unit evringd spools and later ships.  The byte layout is
 * specified in docs/FORMAT.md; this header is its C interface.
 *
 *	void *buf; size_t len;
 *	batch_encode(&meta, recs, recs_len, loss, nloss, BATCH_COMP_ZSTD,
 *		     &buf, &len);			buf: malloc'ed, free()
 *	...
 *	struct batch_view v;
 *	batch_decode(buf, len, &v);			buf must outlive v
 *	struct batch_iter it;
 *	struct evring_rec rec; const void *payload;
 *	batch_iter_init(&it, &v);
 *	while ((err = batch_iter_next(&it, &rec, &payload)) > 0)
 *		use rec.seq, rec.len bytes at payload;
 *	batch_view_release(&v);
 *
 * A batch holds @count records of one (source, partition, epoch), with
 * consecutive sequence numbers from @first_seq, each laid out exactly as in
 * the ring (struct evring_rec, payload, padding to EVRING_REC_ALIGN), so the
 * device source encodes straight from a contiguous run of its mapped ring.
 * It may also carry loss entries: ranges of records known to be lost.
 *
 * Every function returns 0 or -errno; out-parameters are written only on
 * success.  Errors:
 *	EINVAL		encode: inconsistent input (see batch_encode)
 *	EMSGSIZE	encode: the batch would exceed BATCH_BODY_MAX
 *	EBADMSG		decode: the bytes are not an intact, consistent batch
 *	EPROTONOSUPPORT	decode: an intact batch that uses a version,
 *			compression or flag this reader does not know
 *	ENOMEM
 */
#ifndef EVRINGD_BATCH_H
#define EVRINGD_BATCH_H

#include <stddef.h>
#include <stdint.h>
#include <linux/evring.h>

#define BATCH_MAGIC		"EVB1"	/* 4 bytes, no NUL on the wire */
#define BATCH_VERSION		1
#define BATCH_HDR_LEN		96	/* version 1's header, bytes */

/* Where the records came from. */
enum batch_source {
	BATCH_SRC_KMOD = 0,	/* /dev/evring rings */
	BATCH_SRC_SOCKET = 1,	/* the ingest socket */
	BATCH_SRC_BPF = 2,	/* BPF ring buffer */
	BATCH_SRC_MAX = 2,
};

enum batch_compression {
	BATCH_COMP_NONE = 0,
	BATCH_COMP_ZSTD = 1,
};

#define BATCH_F_LOSS		(1u << 0)	/* a loss section follows */
#define BATCH_F_KNOWN		BATCH_F_LOSS

#define BATCH_HOST_ID_MAX	32	/* bytes on the wire, NUL-padded */
#define BATCH_REASON_MAX	32	/* bytes on the wire, NUL-padded */
#define BATCH_LOSS_SIZE		64	/* one loss entry on the wire */
#define BATCH_LOSS_MAX		1024	/* loss entries in one batch */
#define BATCH_BODY_MAX		(64u << 20)	/* raw body bytes */
#define BATCH_RECORD_MAX	(16u << 20)	/* payload bytes of a record */
#define BATCH_ZSTD_LEVEL	3

/*
 * What a batch is about.  host_id: 1..BATCH_HOST_ID_MAX characters from
 * [A-Za-z0-9._:-] (it names the host in message ids "host/partition/seq"),
 * NUL-terminated here.
 */
struct batch_meta {
	unsigned int source;		/* enum batch_source */
	uint32_t partition;
	uint64_t epoch;
	uint64_t first_seq;		/* seq of the first record */
	uint32_t count;			/* records */
	char host_id[BATCH_HOST_ID_MAX + 1];
};

/*
 * A range of records known to be lost, [first_seq, last_seq], in any
 * (source, partition, epoch) - not necessarily the batch's own.  reason:
 * 1..BATCH_REASON_MAX printable ASCII characters, NUL-terminated here.
 */
struct batch_loss {
	unsigned int source;
	uint32_t partition;
	uint64_t epoch;
	uint64_t first_seq;
	uint64_t last_seq;
	char reason[BATCH_REASON_MAX + 1];
};

/*
 * A decoded, fully validated batch.  Its pointers point into the buffer
 * given to batch_decode() (uncompressed batch) or into memory the view owns
 * (compressed batch): keep that buffer alive and unchanged, and release the
 * view, until the view is no longer used.
 */
struct batch_view {
	struct batch_meta meta;
	uint32_t flags;			/* BATCH_F_* */
	unsigned int compression;	/* as stored */
	size_t stored_len;		/* body bytes in the encoded batch */
	size_t raw_len;			/* body bytes after decompression */
	const void *records;		/* meta.count records ... */
	size_t records_len;		/* ... in this many bytes */
	unsigned int nloss;		/* loss entries, see batch_view_loss */
	const void *loss_raw;		/* private */
	void *owned;			/* private: decompressed body */
};

/* A cursor over a view's records.  Private fields. */
struct batch_iter {
	const unsigned char *p;
	const unsigned char *end;
	uint32_t left;
};

/*
 * Encode @count = m->count records (the @len bytes at @records) and @nloss
 * loss entries into a new malloc'ed batch, *@out of *@out_len bytes; free
 * it with free().  @compression BATCH_COMP_ZSTD compresses the body, and
 * the batch is stored uncompressed when that does not make it smaller.
 *
 * -EINVAL (nothing allocated) unless: the source, compression and host id
 * are valid; @records holds exactly m->count records whose total size is
 * @len; each record's len is <= BATCH_RECORD_MAX; their seqs run
 * consecutively from m->first_seq (first_seq >= 1); count >= 1 or
 * nloss >= 1; every loss entry has a valid source, first_seq <= last_seq
 * and a valid reason.  -EMSGSIZE when the body exceeds BATCH_BODY_MAX or
 * nloss exceeds BATCH_LOSS_MAX.
 */
int batch_encode(const struct batch_meta *m, const void *records, size_t len,
		 const struct batch_loss *loss, unsigned int nloss,
		 int compression, void **out, size_t *out_len);

/*
 * Validate the @len bytes at @buf as a whole batch and describe it in @v:
 * magic, version, header length, every length against @len and the limits,
 * the checksum, decompression to exactly the announced size, every record
 * (bounds, len, consecutive seqs, count) and every loss entry.  On any
 * failure @v is untouched and nothing is allocated.
 */
int batch_decode(const void *buf, size_t len, struct batch_view *v);

/*
 * Cheaper than batch_decode for a batch this process encoded: validates the
 * header, the lengths and the checksum, and fills @m, but neither
 * decompresses nor walks the records.  Errors as batch_decode.
 */
int batch_peek(const void *buf, size_t len, struct batch_meta *m);

/* Frees what the view owns and clears it; accepts NULL and a cleared view. */
void batch_view_release(struct batch_view *v);

/* Loss entry @i of a decoded view: 0, or -ENOENT when i >= v->nloss. */
int batch_view_loss(const struct batch_view *v, unsigned int i,
		    struct batch_loss *out);

/* Start iterating over a decoded view's records. */
void batch_iter_init(struct batch_iter *it, const struct batch_view *v);

/*
 * The next record: copies its header to *@rec (so the body need not be
 * aligned) and points *@payload at its rec->len payload bytes.  Returns 1
 * when it produced a record, 0 after the last one, -EBADMSG when the next
 * record would cross the end of the body (never after batch_decode).
 */
int batch_iter_next(struct batch_iter *it, struct evring_rec *rec,
		    const void **payload);

#endif /* EVRINGD_BATCH_H */
