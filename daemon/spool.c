// SPDX-License-Identifier: GPL-2.0-only
/*
 * spool: evringd's durable store, the daemon's only SQLite adapter.
 *
 * The file is an SQLite database in WAL mode whose schema is in
 * migrations[] below and in docs/FORMAT.md.  What this file guarantees:
 *
 *  - One spool_commit() is one BEGIN IMMEDIATE ... COMMIT: its batches,
 *    their checkpoints, ledger rows and notes become visible (and durable,
 *    with synchronous=FULL) together or not at all, whatever instant the
 *    process dies at.
 *  - A partition's checkpoint and its batches cannot disagree, and within
 *    an epoch its batches never overlap and never leave an unexplained gap:
 *    commits are checked against the checkpoints before anything is written.
 *  - The first I/O error, full disk or failed COMMIT poisons the object:
 *    later writes are refused with the same errno (an fsync that failed once
 *    may "succeed" later with the data gone).  Reopening starts afresh from
 *    what is on disk.
 *  - A file that is not ours, or is ours but damaged, is reported and left
 *    byte for byte as it was: nothing is written before it is identified
 *    and checked.
 *  - One spool_ship_commit() moves cursors and deletes the rows they
 *    release in one transaction; a cursor never moves back.  After a crash
 *    a partition's rows start right after its least advanced cursor.
 *  - The hot counters (spool_stats) live in memory: loaded once at open,
 *    updated only after a COMMIT succeeded.  Every trim, whole-spool or
 *    per partition, goes through trim_rows()/trim_apply(), so they stay
 *    exact (and EDQUOT lifts) whichever path deleted the rows.
 *
 * Unsigned 64-bit values are stored as SQLite INTEGERs with the same bits
 * (so an epoch >= 2^63 reads back negative in the sqlite3 shell).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "batch.h"
#include "spool.h"

#define MSG_MAX		256

/*
 * Schema steps: migrations[i] takes user_version i to i + 1, in one
 * transaction with the version bump.  A step is never edited once
 * released; a new version is one more entry.
 */
static const char *const migrations[] = {
	/* 0 -> 1 */
	"CREATE TABLE batches ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"	/* spool order, never reused */
	"  source INTEGER NOT NULL,"
	"  partition INTEGER NOT NULL,"
	"  epoch INTEGER NOT NULL,"
	"  first_seq INTEGER NOT NULL,"
	"  count INTEGER NOT NULL,"
	"  bytes INTEGER NOT NULL,"
	"  created_ns INTEGER NOT NULL,"
	"  body BLOB NOT NULL);"
	"CREATE UNIQUE INDEX batches_seq ON batches"
	"  (source, partition, epoch, first_seq) WHERE count > 0;"
	"CREATE TABLE checkpoints ("
	"  source INTEGER NOT NULL,"
	"  partition INTEGER NOT NULL,"
	"  epoch INTEGER NOT NULL,"
	"  position INTEGER NOT NULL,"
	"  last_seq INTEGER NOT NULL,"
	"  updated_ns INTEGER NOT NULL,"
	"  PRIMARY KEY (source, partition)) WITHOUT ROWID;"
	"CREATE TABLE ledger ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  source INTEGER NOT NULL,"
	"  partition INTEGER NOT NULL,"
	"  epoch INTEGER NOT NULL,"
	"  first_seq INTEGER NOT NULL,"
	"  last_seq INTEGER NOT NULL,"
	"  reason TEXT NOT NULL,"
	"  at_ns INTEGER NOT NULL);"
	"CREATE TABLE notes ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  at_ns INTEGER NOT NULL,"
	"  source INTEGER NOT NULL,"
	"  partition INTEGER NOT NULL,"
	"  old_epoch INTEGER NOT NULL,"
	"  new_epoch INTEGER NOT NULL,"
	"  text TEXT);",
	/* 1 -> 2: shipping */
	"CREATE INDEX batches_part ON batches (source, partition, id);"
	"CREATE TABLE cursors ("
	"  region TEXT NOT NULL,"
	"  source INTEGER NOT NULL,"
	"  partition INTEGER NOT NULL,"
	"  batch_id INTEGER NOT NULL,"
	"  epoch INTEGER NOT NULL,"
	"  last_seq INTEGER NOT NULL,"
	"  stream_seq INTEGER NOT NULL,"
	"  updated_ns INTEGER NOT NULL,"
	"  PRIMARY KEY (region, source, partition)) WITHOUT ROWID;"
	"CREATE TABLE dead_letters ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  region TEXT NOT NULL,"
	"  source INTEGER NOT NULL,"
	"  partition INTEGER NOT NULL,"
	"  epoch INTEGER NOT NULL,"
	"  first_seq INTEGER NOT NULL,"
	"  count INTEGER NOT NULL,"
	"  bytes INTEGER NOT NULL,"
	"  created_ns INTEGER NOT NULL,"
	"  batch_id INTEGER NOT NULL,"	/* batches.id it was copied from */
	"  reason TEXT NOT NULL,"
	"  attempts INTEGER NOT NULL,"
	"  at_ns INTEGER NOT NULL,"
	"  body BLOB NOT NULL);",
};
#define NR_MIGRATIONS	(sizeof(migrations) / sizeof(migrations[0]))
_Static_assert(NR_MIGRATIONS == SPOOL_SCHEMA_VERSION,
	       "one migration step per schema version");

/* Statements prepared at open, kept for the spool's life. */
enum {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_INS_BATCH,
	ST_UPS_CP,
	ST_INS_LOSS,
	ST_INS_NOTE,
	ST_SEL_BATCHES,
	ST_SEL_LOSS,
	ST_SEL_NOTES,
	ST_TRIM_SUM,
	ST_TRIM_DEL,
	ST_TRIM_PART_SUM,
	ST_TRIM_PART_DEL,
	ST_OLDEST,
	ST_NEWEST,
	ST_SEL_CURSOR,
	ST_UPS_CURSOR,
	ST_SEL_CURSORS,
	ST_SEL_ROWS,
	ST_SEL_PART_ROWS,
	ST_GET_BATCH,
	ST_INS_DEAD,
	ST_SEL_DEAD,
	ST_GET_DEAD,
	ST_DEL_DEAD,
	ST_MAX,
};

/* The columns of a batch row, as read by read_row(). */
#define ROW_COLS "id, source, partition, epoch, first_seq, count, bytes," \
		 " created_ns"
/* A dead letter's columns: its batch row (as ROW_COLS) starts at 2. */
#define DEAD_COLS "id, region, batch_id, source, partition, epoch," \
		  " first_seq, count, bytes, created_ns, reason, attempts," \
		  " at_ns"

static const char *const stmt_sql[ST_MAX] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_INS_BATCH] =
		"INSERT INTO batches (source, partition, epoch, first_seq,"
		" count, bytes, created_ns, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
	[ST_UPS_CP] =
		"INSERT INTO checkpoints (source, partition, epoch, position,"
		" last_seq, updated_ns) VALUES (?, ?, ?, ?, ?, ?)"
		" ON CONFLICT (source, partition) DO UPDATE SET"
		" epoch = excluded.epoch, position = excluded.position,"
		" last_seq = excluded.last_seq, updated_ns = excluded.updated_ns",
	[ST_INS_LOSS] =
		"INSERT INTO ledger (source, partition, epoch, first_seq,"
		" last_seq, reason, at_ns) VALUES (?, ?, ?, ?, ?, ?, ?)",
	[ST_INS_NOTE] =
		"INSERT INTO notes (at_ns, source, partition, old_epoch,"
		" new_epoch, text) VALUES (?, ?, ?, ?, ?, ?)",
	[ST_SEL_BATCHES] =
		"SELECT id, body FROM batches WHERE id > ? ORDER BY id",
	[ST_SEL_LOSS] =
		"SELECT id, source, partition, epoch, first_seq, last_seq,"
		" reason, at_ns FROM ledger WHERE id > ? ORDER BY id",
	[ST_SEL_NOTES] =
		"SELECT id, at_ns, source, partition, old_epoch, new_epoch,"
		" text FROM notes WHERE id > ? ORDER BY id",
	/* The trim pairs share ?1 = upto_id and the row layout. */
	[ST_TRIM_SUM] =
		"SELECT source, partition, count(*), sum(count), sum(bytes)"
		" FROM batches WHERE id <= ?1 GROUP BY source, partition",
	[ST_TRIM_DEL] = "DELETE FROM batches WHERE id <= ?1",
	[ST_TRIM_PART_SUM] =
		"SELECT source, partition, count(*), sum(count), sum(bytes)"
		" FROM batches WHERE source = ?2 AND partition = ?3"
		" AND id <= ?1 GROUP BY source, partition",
	[ST_TRIM_PART_DEL] =
		"DELETE FROM batches WHERE source = ?2 AND partition = ?3"
		" AND id <= ?1",
	[ST_OLDEST] =
		"SELECT id, created_ns FROM batches ORDER BY id LIMIT 1",
	[ST_NEWEST] =
		"SELECT created_ns FROM batches ORDER BY id DESC LIMIT 1",
	[ST_SEL_CURSOR] =
		"SELECT batch_id FROM cursors"
		" WHERE region = ? AND source = ? AND partition = ?",
	[ST_UPS_CURSOR] =
		"INSERT INTO cursors (region, source, partition, batch_id,"
		" epoch, last_seq, stream_seq, updated_ns)"
		" VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
		" ON CONFLICT (region, source, partition) DO UPDATE SET"
		" batch_id = excluded.batch_id, epoch = excluded.epoch,"
		" last_seq = excluded.last_seq,"
		" stream_seq = excluded.stream_seq,"
		" updated_ns = excluded.updated_ns",
	[ST_SEL_CURSORS] =
		"SELECT region, source, partition, batch_id, epoch, last_seq,"
		" stream_seq, updated_ns FROM cursors"
		" ORDER BY region, source, partition",
	/* ?1 after_id, ?2 limit (-1: none), ?3 ?4 the partition */
	[ST_SEL_ROWS] =
		"SELECT " ROW_COLS " FROM batches WHERE id > ?1"
		" ORDER BY id LIMIT ?2",
	[ST_SEL_PART_ROWS] =
		"SELECT " ROW_COLS " FROM batches"
		" WHERE source = ?3 AND partition = ?4 AND id > ?1"
		" ORDER BY id LIMIT ?2",
	[ST_GET_BATCH] =
		"SELECT " ROW_COLS ", body FROM batches WHERE id = ?",
	/* One statement: the row and its body are copied together. */
	[ST_INS_DEAD] =
		"INSERT INTO dead_letters (region, source, partition, epoch,"
		" first_seq, count, bytes, created_ns, batch_id, reason,"
		" attempts, at_ns, body)"
		" SELECT ?2, source, partition, epoch, first_seq, count, bytes,"
		" created_ns, id, ?3, ?4, ?5, body FROM batches WHERE id = ?1"
		" RETURNING id, bytes",
	[ST_SEL_DEAD] =
		"SELECT " DEAD_COLS " FROM dead_letters WHERE id > ?"
		" ORDER BY id",
	[ST_GET_DEAD] =
		"SELECT " DEAD_COLS ", body FROM dead_letters WHERE id = ?",
	[ST_DEL_DEAD] =
		"DELETE FROM dead_letters WHERE id = ? RETURNING bytes",
};

/* What the spool holds for one (source, partition); sorted by key. */
struct part {
	uint64_t key;			/* source << 32 | partition */
	int has_cp;
	struct spool_checkpoint cp;
	uint64_t batches;
	uint64_t records;
	uint64_t bytes;
};

struct spool {
	sqlite3 *db;
	sqlite3_stmt *st[ST_MAX];
	char *path;
	int lock_fd;			/* flock(LOCK_EX) for writers; -1 */
	int read_only;
	enum spool_sync sync;
	int failed;			/* sticky -errno, see file head */
	uint64_t max_bytes;

	/* In-memory mirror of the tables, see spool_stats. */
	uint64_t batches;
	uint64_t records;
	uint64_t bytes;
	uint64_t first_id;
	uint64_t last_id;
	uint64_t oldest_ns;
	uint64_t newest_ns;
	struct part *parts;
	unsigned int nparts;
	unsigned int parts_cap;
	uint64_t dead_letters;
	uint64_t dead_bytes;

	char msg[MSG_MAX];		/* spool_strerror */
	char fail_msg[MSG_MAX];		/* why @failed was set */
};

static uint64_t part_key(unsigned int source, uint32_t partition)
{
	return (uint64_t)source << 32 | partition;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

/* Record a human-readable reason in s->msg and return @err. */
static int __attribute__((format(printf, 3, 4)))
fail(struct spool *s, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->msg, sizeof(s->msg), fmt, ap);
	va_end(ap);
	return err;
}

/* The errno for an SQLite result code (extended codes are on). */
static int rc_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_IOERR:
	case SQLITE_CANTOPEN:
	case SQLITE_PROTOCOL:
		return rc == SQLITE_IOERR_NOMEM ? -ENOMEM : -EIO;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return -EBADMSG;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_TOOBIG:
		return -EMSGSIZE;
	case SQLITE_CONSTRAINT:
		return rc == SQLITE_CONSTRAINT_UNIQUE ||
		       rc == SQLITE_CONSTRAINT_PRIMARYKEY ? -EEXIST : -EINVAL;
	default:
		return -EIO;
	}
}

/*
 * Is the failure @rc one after which this object must not write again?
 * Disk full, any I/O error, corruption, and a database that changed under
 * us: the state on disk is no longer known.
 */
static int rc_fatal(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_FULL:
	case SQLITE_IOERR:
	case SQLITE_CANTOPEN:
	case SQLITE_PROTOCOL:
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
	case SQLITE_READONLY:
		return 1;
	default:
		return 0;
	}
}

/* Map @rc to an errno, with "@what: sqlite's message" as the reason. */
static int db_fail(struct spool *s, int rc, const char *what)
{
	return fail(s, rc_errno(rc), "%s '%s': %s", what, s->path,
		    sqlite3_errmsg(s->db));
}

/*
 * After a failed write transaction: roll back what is left of it and,
 * when @rc (or the rollback) says the disk can no longer be trusted, poison
 * the object.  Returns the errno for @rc with the reason in s->msg.
 */
static int write_fail(struct spool *s, int rc, const char *what)
{
	int err = db_fail(s, rc, what);

	if (!sqlite3_get_autocommit(s->db)) {
		int rrc;

		sqlite3_reset(s->st[ST_ROLLBACK]);
		rrc = sqlite3_step(s->st[ST_ROLLBACK]);
		sqlite3_reset(s->st[ST_ROLLBACK]);
		if (rrc != SQLITE_DONE && !rc_fatal(rc))
			err = -EIO;
		if (rrc != SQLITE_DONE)
			rc = SQLITE_IOERR;	/* state unknown: poison */
	}
	if (rc_fatal(rc)) {
		s->failed = err;
		snprintf(s->fail_msg, sizeof(s->fail_msg), "%s", s->msg);
	}
	return err;
}

/* Step a statement that returns no rows, and reset it. */
static int step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static void bind_u64(sqlite3_stmt *st, int i, uint64_t v)
{
	sqlite3_bind_int64(st, i, (sqlite3_int64)v);
}

static uint64_t col_u64(sqlite3_stmt *st, int i)
{
	return (uint64_t)sqlite3_column_int64(st, i);
}

/* --- write transactions ---------------------------------------------- */

/* May @s write?  0, or the errno with the reason in s->msg. */
static int may_write(struct spool *s)
{
	if (s->read_only)
		return fail(s, -EROFS, "spool '%s' is open read-only", s->path);
	if (s->failed)
		return fail(s, s->failed, "spool refuses writes after: %s",
			    s->fail_msg);
	return 0;
}

static int txn_begin(struct spool *s, const char *what)
{
	int rc = step_done(s->st[ST_BEGIN]);

	return rc == SQLITE_OK ? 0 : write_fail(s, rc, what);
}

/*
 * COMMIT the open transaction.  Whatever a failed COMMIT said, the file's
 * state is unknown afterwards: the object is poisoned (EIO at least).
 */
static int txn_commit(struct spool *s, const char *what)
{
	int rc = step_done(s->st[ST_COMMIT]);
	int err;

	if (rc == SQLITE_OK)
		return 0;
	err = write_fail(s, rc, what);
	if (!s->failed) {
		s->failed = err = -EIO;
		snprintf(s->fail_msg, sizeof(s->fail_msg), "%s", s->msg);
	}
	return err;
}

/*
 * Roll back the open transaction after a rejection (@err, its reason in
 * s->msg) found inside it; returns @err.  A failed ROLLBACK leaves the
 * file's state unknown: poisoned with EIO.
 */
static int txn_abort(struct spool *s, int err)
{
	char msg[MSG_MAX];
	int rc;

	memcpy(msg, s->msg, sizeof(msg));
	rc = step_done(s->st[ST_ROLLBACK]);
	if (rc == SQLITE_OK) {
		memcpy(s->msg, msg, sizeof(msg));
		return err;
	}
	db_fail(s, rc, "cannot roll back spool");
	s->failed = -EIO;
	snprintf(s->fail_msg, sizeof(s->fail_msg), "%s", s->msg);
	return -EIO;
}

/* --- parts: the sorted in-memory table ------------------------------- */

/* Index of @key in s->parts, or where it would be inserted (-(i) - 1). */
static long part_find(const struct spool *s, uint64_t key)
{
	unsigned int lo = 0, hi = s->nparts;

	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;

		if (s->parts[mid].key == key)
			return mid;
		if (s->parts[mid].key < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -(long)lo - 1;
}

/* Make room for @more parts, so that part_get() cannot fail after it. */
static int parts_reserve(struct spool *s, unsigned int more)
{
	unsigned int cap = s->parts_cap;
	struct part *p;

	if (s->nparts + more <= cap)
		return 0;
	while (cap < s->nparts + more)
		cap = cap ? cap * 2 : 16;
	p = realloc(s->parts, cap * sizeof(*p));
	if (!p)
		return -ENOMEM;
	s->parts = p;
	s->parts_cap = cap;
	return 0;
}

/* The part of @key, inserted zeroed when missing; room must be reserved. */
static struct part *part_get(struct spool *s, uint64_t key)
{
	long i = part_find(s, key);
	struct part *p;

	if (i >= 0)
		return &s->parts[i];
	i = -i - 1;
	p = &s->parts[i];
	memmove(p + 1, p, (s->nparts - i) * sizeof(*p));
	memset(p, 0, sizeof(*p));
	p->key = key;
	s->nparts++;
	return p;
}

/* --- open ------------------------------------------------------------ */

/*
 * Make sure o->path is a regular file we may use, creating it 0600 (and
 * making its directory entry durable) when missing; for a writer, take
 * the exclusive lock that keeps a second writer out.
 */
static int prepare_file(struct spool *s, const struct spool_opts *o)
{
	struct stat st;
	int fd;

	if (stat(o->path, &st) && errno == ENOENT && !o->read_only) {
		char *dir, *slash;
		int dfd;

		fd = open(o->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 && errno != EEXIST)
			return fail(s, -errno, "cannot create spool '%s': %m",
				    o->path);
		if (fd >= 0) {
			fsync(fd);
			close(fd);
			dir = strdup(o->path);
			if (!dir)
				return -ENOMEM;
			slash = strrchr(dir, '/');
			if (slash)
				*(slash == dir ? slash + 1 : slash) = '\0';
			dfd = open(slash ? dir : ".",
				   O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			free(dir);
			if (dfd >= 0) {
				fsync(dfd);
				close(dfd);
			}
		}
	}
	if (stat(o->path, &st))
		return fail(s, -errno, "cannot open spool '%s': %m", o->path);
	if (!S_ISREG(st.st_mode))
		return fail(s, -EINVAL, "spool '%s' is not a regular file",
			    o->path);
	if (o->read_only)
		return 0;
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		return fail(s, -EPERM,
			    "spool '%s' is group or world writable (mode %04o)",
			    o->path, st.st_mode & 07777);

	/*
	 * flock and SQLite's POSIX locks are independent on Linux.  This fd
	 * stays open until after sqlite3_close(): closing any fd of the file
	 * would drop the process's POSIX locks.
	 */
	s->lock_fd = open(o->path, O_RDONLY | O_CLOEXEC);
	if (s->lock_fd < 0)
		return fail(s, -errno, "cannot open spool '%s': %m", o->path);
	if (flock(s->lock_fd, LOCK_EX | LOCK_NB))
		return fail(s, errno == EWOULDBLOCK ? -EBUSY : -errno,
			    "spool '%s' is in use by another process",
			    o->path);
	return 0;
}

/* Run one statement returning at most one integer into *@v. */
static int query_u64(struct spool *s, const char *sql, uint64_t *v)
{
	sqlite3_stmt *st;
	int rc;

	rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*v = col_u64(st, 0);
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		*v = 0;
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	return rc;
}

enum kind { KIND_NEW, KIND_OURS, KIND_FOREIGN };

/*
 * What the file is, reading only: an empty database (a spool never
 * initialised, e.g. killed while being created), an evring spool, or
 * something else.  *@version: its user_version.
 */
static int identify(struct spool *s, enum kind *kind, uint64_t *version)
{
	uint64_t app, objects;
	int rc;

	rc = query_u64(s, "PRAGMA application_id", &app);
	if (rc == SQLITE_OK)
		rc = query_u64(s, "PRAGMA user_version", version);
	if (rc == SQLITE_OK)
		rc = query_u64(s, "SELECT count(*) FROM sqlite_schema",
			       &objects);
	if ((rc & 0xff) == SQLITE_NOTADB)
		return fail(s, -EMEDIUMTYPE,
			    "'%s' is not an evring spool: not an SQLite database",
			    s->path);
	if (rc != SQLITE_OK)
		return db_fail(s, rc, "cannot read spool");

	if ((uint32_t)app == SPOOL_APPLICATION_ID)
		*kind = KIND_OURS;
	else if (!app && !*version && !objects)
		*kind = KIND_NEW;
	else
		return fail(s, -EMEDIUMTYPE,
			    "'%s' is not an evring spool: application_id 0x%08x, expected 0x%08x",
			    s->path, (uint32_t)app, SPOOL_APPLICATION_ID);
	return 0;
}

/*
 * PRAGMA quick_check: every page, cell and index entry is well-formed.
 * A damaged spool is reported (first problem quoted), never repaired.
 */
static int check_integrity(struct spool *s)
{
	sqlite3_stmt *st;
	int rc, err = 0;

	rc = sqlite3_prepare_v2(s->db, "PRAGMA quick_check(1)", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return db_fail(s, rc, "corrupt spool");
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const char *r = (const char *)sqlite3_column_text(st, 0);

		if (!r || strcmp(r, "ok"))
			err = fail(s, -EBADMSG,
				   "corrupt spool '%s': quick_check: %s",
				   s->path, r ? r : "(null)");
	} else {
		err = db_fail(s, rc, "corrupt spool");
		if (err == -EIO || err == -EBADMSG)
			err = -EBADMSG;
	}
	sqlite3_finalize(st);
	return err;
}

/* Connection settings; the journal mode is persistent in the file. */
static int configure(struct spool *s, const struct spool_opts *o)
{
	const char *sync = o->sync == SPOOL_SYNC_NORMAL ?
			   "PRAGMA synchronous = NORMAL" :
			   "PRAGMA synchronous = FULL";
	sqlite3_stmt *st;
	int rc;

	rc = sqlite3_exec(s->db,
			  "PRAGMA trusted_schema = OFF;"
			  "PRAGMA cell_size_check = ON;"
			  "PRAGMA journal_size_limit = 67108864;", NULL, NULL,
			  NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(s->db, sync, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return db_fail(s, rc, "cannot configure spool");
	if (o->read_only)
		return 0;

	rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st,
				NULL);
	if (rc != SQLITE_OK)
		return db_fail(s, rc, "cannot set WAL mode on spool");
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW &&
	    strcmp((const char *)sqlite3_column_text(st, 0), "wal")) {
		sqlite3_finalize(st);
		return fail(s, -EIO, "cannot set WAL mode on spool '%s'",
			    s->path);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return db_fail(s, rc, "cannot set WAL mode on spool");
	return 0;
}

/*
 * Bring the schema from @from to SPOOL_SCHEMA_VERSION, one transaction per
 * step, each setting user_version (and application_id) with its tables: a
 * crash leaves the file at a whole version.
 */
static int migrate(struct spool *s, uint64_t from)
{
	char sql[96];
	int rc;

	for (uint64_t v = from; v < NR_MIGRATIONS; v++) {
		rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(s->db, migrations[v], NULL, NULL,
					  NULL);
		snprintf(sql, sizeof(sql),
			 "PRAGMA user_version = %u; PRAGMA application_id = %d",
			 (unsigned int)v + 1, SPOOL_APPLICATION_ID);
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
		if (rc != SQLITE_OK) {
			int err = db_fail(s, rc, "cannot migrate spool");

			if (!sqlite3_get_autocommit(s->db))
				sqlite3_exec(s->db, "ROLLBACK", NULL, NULL,
					     NULL);
			return err;
		}
	}
	return 0;
}

/* Fill the in-memory mirror from the tables (once, at open). */
static int load_state(struct spool *s)
{
	static const char *const sql[] = {
		"SELECT source, partition, epoch, position, last_seq"
		" FROM checkpoints",
		"SELECT source, partition, count(*), sum(count), sum(bytes)"
		" FROM batches GROUP BY source, partition",
	};
	sqlite3_stmt *st;
	int rc;

	for (unsigned int q = 0; q < 2; q++) {
		rc = sqlite3_prepare_v2(s->db, sql[q], -1, &st, NULL);
		if (rc != SQLITE_OK)
			return db_fail(s, rc, "cannot read spool");
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			struct part *p;

			if (parts_reserve(s, 1)) {
				sqlite3_finalize(st);
				return -ENOMEM;
			}
			p = part_get(s, part_key(sqlite3_column_int64(st, 0),
						 sqlite3_column_int64(st, 1)));
			if (q == 0) {
				p->has_cp = 1;
				p->cp.epoch = col_u64(st, 2);
				p->cp.position = col_u64(st, 3);
				p->cp.last_seq = col_u64(st, 4);
				continue;
			}
			p->batches = col_u64(st, 2);
			p->records = col_u64(st, 3);
			p->bytes = col_u64(st, 4);
			s->batches += p->batches;
			s->records += p->records;
			s->bytes += p->bytes;
		}
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE)
			return db_fail(s, rc, "cannot read spool");
	}

	rc = query_u64(s, "SELECT seq FROM sqlite_sequence"
		       " WHERE name = 'batches'", &s->last_id);
	if (rc == SQLITE_OK)
		rc = query_u64(s, "SELECT created_ns FROM batches"
			       " ORDER BY id DESC LIMIT 1", &s->newest_ns);
	if (rc == SQLITE_OK)
		rc = query_u64(s, "SELECT id FROM batches ORDER BY id LIMIT 1",
			       &s->first_id);
	if (rc == SQLITE_OK)
		rc = query_u64(s, "SELECT created_ns FROM batches"
			       " ORDER BY id LIMIT 1", &s->oldest_ns);
	if (rc == SQLITE_OK)
		rc = query_u64(s, "SELECT count(*) FROM dead_letters",
			       &s->dead_letters);
	if (rc == SQLITE_OK)
		rc = query_u64(s, "SELECT sum(bytes) FROM dead_letters",
			       &s->dead_bytes);
	if (rc != SQLITE_OK)
		return db_fail(s, rc, "cannot read spool");
	return 0;
}

/*
 * Open and vet the database: identify it, check it, configure, migrate,
 * prepare, load.  The order is the guarantee that nothing is written to a
 * file before it is known to be an intact evring spool (or an empty one).
 */
static int open_db(struct spool *s, const struct spool_opts *o)
{
	int flags = o->read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
	uint64_t version = 0;
	enum kind kind = KIND_FOREIGN;
	int rc, err;

	rc = sqlite3_open_v2(o->path, &s->db, flags | SQLITE_OPEN_NOMUTEX,
			     NULL);
	if (rc != SQLITE_OK) {
		if (!s->db)
			return fail(s, -ENOMEM, "cannot open spool '%s'",
				    o->path);
		return db_fail(s, rc, "cannot open spool");
	}
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, 5000);

	err = identify(s, &kind, &version);
	if (err)
		return err;
	if (kind == KIND_OURS && version > SPOOL_SCHEMA_VERSION)
		return fail(s, -EPROTONOSUPPORT,
			    "spool '%s' has schema version %llu, newer than this program's %d",
			    o->path, (unsigned long long)version,
			    SPOOL_SCHEMA_VERSION);
	if (kind == KIND_OURS) {
		err = check_integrity(s);
		if (err)
			return err;
	}
	if (o->read_only && version < SPOOL_SCHEMA_VERSION)
		return fail(s, -EROFS,
			    "spool '%s' needs schema version %d (has %llu): open it read-write once",
			    o->path, SPOOL_SCHEMA_VERSION,
			    (unsigned long long)version);

	err = configure(s, o);
	if (!err && !o->read_only)
		err = migrate(s, version);
	if (err)
		return err;

	for (int i = 0; i < ST_MAX; i++) {
		rc = sqlite3_prepare_v3(s->db, stmt_sql[i], -1,
					SQLITE_PREPARE_PERSISTENT, &s->st[i],
					NULL);
		if (rc != SQLITE_OK)
			return db_fail(s, rc, "cannot prepare spool");
	}
	return load_state(s);
}

/* A closed spool object for @o: nothing opened yet. */
static struct spool *spool_new(const struct spool_opts *o)
{
	struct spool *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->lock_fd = -1;
	s->read_only = o->read_only;
	s->sync = o->sync;
	s->max_bytes = o->max_bytes;
	s->path = strdup(o->path);
	if (!s->path) {
		free(s);
		return NULL;
	}
	return s;
}

static void set_err(char *err, size_t errlen, const struct spool *s, int ret)
{
	if (err && errlen)
		snprintf(err, errlen, "%s", *s->msg ? s->msg : strerror(-ret));
}

int spool_open(const struct spool_opts *o, struct spool **out, char *err,
	       size_t errlen)
{
	struct spool *s;
	int ret;

	if (!o || !o->path || !*o->path || !out) {
		if (err && errlen)
			snprintf(err, errlen, "spool: no path given");
		return -EINVAL;
	}
	s = spool_new(o);
	if (!s)
		return -ENOMEM;
	ret = prepare_file(s, o);
	if (!ret)
		ret = open_db(s, o);
	if (ret) {
		set_err(err, errlen, s, ret);
		spool_close(s);
		return ret;
	}
	s->msg[0] = '\0';
	*out = s;
	return 0;
}

/*
 * Guarantees: on 0, @s is a fresh connection (as after spool_open, with
 * the same options and the same writer lock, which is never let go); on an
 * error @s is unchanged.  A spool failed by anything but ENOSPC stays
 * failed: after an I/O error only a new process should trust the file.
 */
int spool_reopen(struct spool *s, char *err, size_t errlen)
{
	struct spool_opts o = {
		.path = s->path,
		.sync = s->sync,
		.max_bytes = s->max_bytes,
		.read_only = s->read_only,
	};
	struct spool *n, tmp;
	int ret;

	if (s->failed && s->failed != -ENOSPC) {
		ret = fail(s, s->failed, "spool refuses to reopen after: %s",
			   s->fail_msg);
		set_err(err, errlen, s, ret);
		return ret;
	}
	n = spool_new(&o);
	if (!n)
		return -ENOMEM;
	ret = open_db(n, &o);
	if (ret) {
		set_err(err, errlen, n, ret);
		spool_close(n);
		return ret;
	}
	/* Swap everything but the lock, then close the old connection. */
	tmp = *s;
	*s = *n;
	*n = tmp;
	s->lock_fd = n->lock_fd;
	n->lock_fd = -1;
	s->msg[0] = '\0';
	spool_close(n);
	return 0;
}

void spool_close(struct spool *s)
{
	if (!s)
		return;
	for (int i = 0; i < ST_MAX; i++)
		sqlite3_finalize(s->st[i]);
	sqlite3_close_v2(s->db);
	/* Only now: see prepare_file(). */
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	free(s->parts);
	free(s->path);
	free(s);
}

const char *spool_strerror(const struct spool *s)
{
	return s ? s->msg : "";
}

int spool_get_checkpoint(struct spool *s, unsigned int source,
			 uint32_t partition, struct spool_checkpoint *out)
{
	long i = part_find(s, part_key(source, partition));

	if (i < 0 || !s->parts[i].has_cp)
		return -ENOENT;
	*out = s->parts[i].cp;
	return 0;
}

/* --- commit ---------------------------------------------------------- */

/* A partition's checkpoint as the commit being checked would leave it. */
struct tentative {
	uint64_t key;
	int has_cp;
	struct spool_checkpoint cp;
	int is_new;			/* not yet in s->parts */
};

/* Does a loss entry of this call cover [first, last] of @key in @epoch? */
static int gap_covered(const struct spool_loss *loss, unsigned int nloss,
		       uint64_t key, uint64_t epoch, uint64_t first,
		       uint64_t last)
{
	for (unsigned int i = 0; i < nloss; i++)
		if (part_key(loss[i].source, loss[i].partition) == key &&
		    loss[i].epoch == epoch && loss[i].first_seq <= first &&
		    loss[i].last_seq >= last)
			return 1;
	return 0;
}

static int text_len_ok(const char *t, int required)
{
	if (!t)
		return !required;
	return strnlen(t, SPOOL_TEXT_MAX + 1) <= SPOOL_TEXT_MAX &&
	       (!required || *t);
}

/*
 * Check a commit against the limits and the checkpoints before anything is
 * written: fills @meta (one per append) and @tent (one per partition
 * touched, *@ntent of them), and *@sum with the bytes to add.
 */
static int commit_check(struct spool *s, const struct spool_append *a,
			unsigned int n, const struct spool_loss *loss,
			unsigned int nloss, const struct spool_note *notes,
			unsigned int nnotes, struct batch_meta *meta,
			struct tentative *tent, unsigned int *ntent,
			uint64_t *sum)
{
	unsigned int nt = 0;
	uint64_t bytes = 0;
	int err;

	if ((n && !a) || (nloss && !loss) || (nnotes && !notes))
		return fail(s, -EINVAL, "commit: missing array");
	for (unsigned int i = 0; i < nloss; i++)
		if (loss[i].source > BATCH_SRC_MAX ||
		    loss[i].first_seq > loss[i].last_seq ||
		    !text_len_ok(loss[i].reason, 1))
			return fail(s, -EINVAL, "commit: bad loss entry %u", i);
	for (unsigned int i = 0; i < nnotes; i++)
		if (notes[i].source > BATCH_SRC_MAX ||
		    !text_len_ok(notes[i].text, 0))
			return fail(s, -EINVAL, "commit: bad note %u", i);

	for (unsigned int i = 0; i < n; i++) {
		struct batch_meta *m = &meta[i];
		struct tentative *t = NULL;
		uint64_t key;
		long pi;

		err = batch_peek(a[i].batch, a[i].len, m);
		if (err)
			return fail(s, err, "commit: batch %u is not intact", i);
		bytes += a[i].len;

		key = part_key(m->source, m->partition);
		for (unsigned int j = 0; j < nt && !t; j++)
			if (tent[j].key == key)
				t = &tent[j];
		if (!t) {
			t = &tent[nt++];
			memset(t, 0, sizeof(*t));
			t->key = key;
			pi = part_find(s, key);
			t->is_new = pi < 0;
			if (pi >= 0) {
				t->has_cp = s->parts[pi].has_cp;
				t->cp = s->parts[pi].cp;
			}
		}
		if (t->has_cp && t->cp.epoch == m->epoch) {
			if (m->first_seq <= t->cp.last_seq)
				return fail(s, -EEXIST,
					    "commit: batch %u (source %u partition %u seq %llu) overlaps the spool (last seq %llu)",
					    i, m->source, m->partition,
					    (unsigned long long)m->first_seq,
					    (unsigned long long)t->cp.last_seq);
			if (m->first_seq > t->cp.last_seq + 1 &&
			    !gap_covered(loss, nloss, key, m->epoch,
					 t->cp.last_seq + 1, m->first_seq - 1))
				return fail(s, -EINVAL,
					    "commit: batch %u (source %u partition %u seq %llu) leaves a gap after seq %llu",
					    i, m->source, m->partition,
					    (unsigned long long)m->first_seq,
					    (unsigned long long)t->cp.last_seq);
		}
		t->has_cp = 1;
		t->cp.epoch = m->epoch;
		t->cp.position = a[i].position;
		t->cp.last_seq = m->first_seq + m->count - 1;
	}

	if (s->max_bytes && bytes > s->max_bytes)
		return fail(s, -EFBIG,
			    "commit: %llu bytes can never fit a spool of %llu",
			    (unsigned long long)bytes,
			    (unsigned long long)s->max_bytes);
	if (s->max_bytes && s->bytes + bytes > s->max_bytes)
		return fail(s, -EDQUOT,
			    "spool full: %llu + %llu bytes over the bound of %llu",
			    (unsigned long long)s->bytes,
			    (unsigned long long)bytes,
			    (unsigned long long)s->max_bytes);
	*ntent = nt;
	*sum = bytes;
	return 0;
}

/* Write everything of one commit inside the open transaction. */
static int commit_write(struct spool *s, const struct spool_append *a,
			unsigned int n, const struct batch_meta *meta,
			const struct tentative *tent, unsigned int nt,
			const struct spool_loss *loss, unsigned int nloss,
			const struct spool_note *notes, unsigned int nnotes,
			uint64_t now)
{
	sqlite3_stmt *st;
	int rc;

	for (unsigned int i = 0; i < n; i++) {
		st = s->st[ST_INS_BATCH];
		bind_u64(st, 1, meta[i].source);
		bind_u64(st, 2, meta[i].partition);
		bind_u64(st, 3, meta[i].epoch);
		bind_u64(st, 4, meta[i].first_seq);
		bind_u64(st, 5, meta[i].count);
		bind_u64(st, 6, a[i].len);
		bind_u64(st, 7, now);
		sqlite3_bind_blob64(st, 8, a[i].batch, a[i].len, SQLITE_STATIC);
		rc = step_done(st);
		sqlite3_clear_bindings(st);
		if (rc != SQLITE_OK)
			return rc;
	}
	for (unsigned int i = 0; i < nt; i++) {
		st = s->st[ST_UPS_CP];
		bind_u64(st, 1, tent[i].key >> 32);
		bind_u64(st, 2, (uint32_t)tent[i].key);
		bind_u64(st, 3, tent[i].cp.epoch);
		bind_u64(st, 4, tent[i].cp.position);
		bind_u64(st, 5, tent[i].cp.last_seq);
		bind_u64(st, 6, now);
		rc = step_done(st);
		if (rc != SQLITE_OK)
			return rc;
	}
	for (unsigned int i = 0; i < nloss; i++) {
		st = s->st[ST_INS_LOSS];
		bind_u64(st, 1, loss[i].source);
		bind_u64(st, 2, loss[i].partition);
		bind_u64(st, 3, loss[i].epoch);
		bind_u64(st, 4, loss[i].first_seq);
		bind_u64(st, 5, loss[i].last_seq);
		sqlite3_bind_text(st, 6, loss[i].reason, -1, SQLITE_STATIC);
		bind_u64(st, 7, loss[i].at_ns ? loss[i].at_ns : now);
		rc = step_done(st);
		sqlite3_clear_bindings(st);
		if (rc != SQLITE_OK)
			return rc;
	}
	for (unsigned int i = 0; i < nnotes; i++) {
		st = s->st[ST_INS_NOTE];
		bind_u64(st, 1, notes[i].at_ns ? notes[i].at_ns : now);
		bind_u64(st, 2, notes[i].source);
		bind_u64(st, 3, notes[i].partition);
		bind_u64(st, 4, notes[i].old_epoch);
		bind_u64(st, 5, notes[i].new_epoch);
		if (notes[i].text)
			sqlite3_bind_text(st, 6, notes[i].text, -1,
					  SQLITE_STATIC);
		else
			sqlite3_bind_null(st, 6);
		rc = step_done(st);
		sqlite3_clear_bindings(st);
		if (rc != SQLITE_OK)
			return rc;
	}
	return SQLITE_OK;
}

/* Mirror a committed call in memory; room for new parts was reserved. */
static void commit_apply(struct spool *s, const struct spool_append *a,
			 unsigned int n, const struct batch_meta *meta,
			 const struct tentative *tent, unsigned int nt,
			 uint64_t sum, uint64_t now)
{
	uint64_t last_id = (uint64_t)sqlite3_last_insert_rowid(s->db);

	for (unsigned int i = 0; i < nt; i++) {
		struct part *p = part_get(s, tent[i].key);

		p->has_cp = 1;
		p->cp = tent[i].cp;
	}
	for (unsigned int i = 0; i < n; i++) {
		struct part *p = part_get(s, part_key(meta[i].source,
						      meta[i].partition));

		p->batches++;
		p->records += meta[i].count;
		p->bytes += a[i].len;
		s->records += meta[i].count;
	}
	if (!n)
		return;
	if (!s->batches) {
		s->first_id = last_id - n + 1;
		s->oldest_ns = now;
	}
	s->batches += n;
	s->bytes += sum;
	s->last_id = last_id;
	s->newest_ns = now;
}

/*
 * Guarantees: see spool.h.  The checks run before BEGIN, so a rejected
 * call costs no I/O; the in-memory mirror changes only after COMMIT
 * returned SQLITE_OK, and cannot fail then (memory reserved before).
 */
int spool_commit(struct spool *s, const struct spool_append *a,
		 unsigned int n, const struct spool_loss *loss,
		 unsigned int nloss, const struct spool_note *notes,
		 unsigned int nnotes)
{
	struct tentative *tent = NULL;
	struct batch_meta *meta = NULL;
	unsigned int nt = 0, nnew = 0;
	uint64_t sum = 0, now;
	int rc, err;

	err = may_write(s);
	if (err)
		return err;
	if (!n && !nloss && !nnotes)
		return 0;

	if (n) {
		meta = calloc(n, sizeof(*meta));
		tent = calloc(n, sizeof(*tent));
		if (!meta || !tent) {
			err = -ENOMEM;
			goto out;
		}
	}
	err = commit_check(s, a, n, loss, nloss, notes, nnotes, meta, tent,
			   &nt, &sum);
	if (err)
		goto out;
	for (unsigned int i = 0; i < nt; i++)
		nnew += tent[i].is_new;
	err = parts_reserve(s, nnew);
	if (err)
		goto out;

	now = now_ns();
	err = txn_begin(s, "cannot begin a commit to spool");
	if (err)
		goto out;
	rc = commit_write(s, a, n, meta, tent, nt, loss, nloss, notes, nnotes,
			  now);
	if (rc != SQLITE_OK) {
		err = write_fail(s, rc, "cannot write to spool");
		goto out;
	}
	err = txn_commit(s, "cannot commit to spool");
	if (err)
		goto out;
	commit_apply(s, a, n, meta, tent, nt, sum, now);
	s->msg[0] = '\0';
out:
	free(meta);
	free(tent);
	return err;
}

/* --- reading --------------------------------------------------------- */

void spool_set_max_bytes(struct spool *s, uint64_t max_bytes)
{
	s->max_bytes = max_bytes;
}

int spool_stats(struct spool *s, struct spool_stats *out)
{
	struct spool_stats st = {
		.batches = s->batches,
		.records = s->records,
		.bytes = s->bytes,
		.max_bytes = s->max_bytes,
		.first_id = s->batches ? s->first_id : 0,
		.last_id = s->last_id,
		.oldest_ns = s->batches ? s->oldest_ns : 0,
		.newest_ns = s->batches ? s->newest_ns : 0,
		.nparts = s->nparts,
		.dead_letters = s->dead_letters,
		.dead_bytes = s->dead_bytes,
	};
	char wal[PATH_MAX];
	struct stat sb;

	if (stat(s->path, &sb))
		return fail(s, -errno, "cannot stat spool '%s': %m", s->path);
	st.file_bytes = sb.st_size;
	if ((size_t)snprintf(wal, sizeof(wal), "%s-wal", s->path) < sizeof(wal) &&
	    !stat(wal, &sb))
		st.file_bytes += sb.st_size;
	*out = st;
	return 0;
}

int spool_part_stats(struct spool *s, unsigned int i,
		     struct spool_part_stats *out)
{
	const struct part *p;

	if (i >= s->nparts)
		return -ENOENT;
	p = &s->parts[i];
	*out = (struct spool_part_stats){
		.source = p->key >> 32,
		.partition = (uint32_t)p->key,
		.batches = p->batches,
		.records = p->records,
		.bytes = p->bytes,
		.cp = p->cp,
	};
	return 0;
}

/*
 * Step the bound statement @st row by row, calling @row for each; a
 * non-zero return from @row stops and is returned.  One row in memory;
 * @st is reset on every way out.
 */
static int walk_stmt(struct spool *s, sqlite3_stmt *st,
		     int (*row)(sqlite3_stmt *st, void *cb, void *arg),
		     void *cb, void *arg)
{
	int rc, ret = 0;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		ret = row(st, cb, arg);
		if (ret)
			break;
	}
	if (!ret && rc != SQLITE_DONE)
		ret = db_fail(s, rc, "cannot read spool");
	sqlite3_reset(st);
	return ret;
}

/* walk_stmt() over the rows of @st with id > @after_id (its ?1). */
static int walk_after(struct spool *s, sqlite3_stmt *st, uint64_t after_id,
		      int (*row)(sqlite3_stmt *st, void *cb, void *arg),
		      void *cb, void *arg)
{
	if (after_id >= INT64_MAX)	/* ids are positive SQLite integers */
		return 0;
	sqlite3_reset(st);
	bind_u64(st, 1, after_id);
	return walk_stmt(s, st, row, cb, arg);
}

typedef int (*batch_cb)(uint64_t, const void *, size_t, void *);
typedef int (*loss_cb)(uint64_t, const struct spool_loss *, void *);
typedef int (*note_cb)(uint64_t, const struct spool_note *, void *);
typedef int (*cursor_cb)(const struct spool_cursor *, void *);
typedef int (*row_cb)(const struct spool_batch_row *, void *);
typedef int (*dead_cb)(const struct spool_dead *, void *);

static const char *col_text(sqlite3_stmt *st, int i)
{
	const char *t = (const char *)sqlite3_column_text(st, i);

	return t ? t : "";
}

/* Columns @c .. @c + 7 of @st, laid out as ROW_COLS. */
static void read_row(sqlite3_stmt *st, int c, struct spool_batch_row *r)
{
	*r = (struct spool_batch_row){
		.id = col_u64(st, c),
		.source = sqlite3_column_int64(st, c + 1),
		.partition = sqlite3_column_int64(st, c + 2),
		.epoch = col_u64(st, c + 3),
		.first_seq = col_u64(st, c + 4),
		.count = sqlite3_column_int64(st, c + 5),
		.bytes = col_u64(st, c + 6),
		.created_ns = col_u64(st, c + 7),
	};
}

/* Columns laid out as DEAD_COLS. */
static void read_dead(sqlite3_stmt *st, struct spool_dead *d)
{
	memset(d, 0, sizeof(*d));
	d->id = col_u64(st, 0);
	snprintf(d->region, sizeof(d->region), "%s", col_text(st, 1));
	read_row(st, 2, &d->batch);
	snprintf(d->reason, sizeof(d->reason), "%s", col_text(st, 10));
	d->attempts = sqlite3_column_int64(st, 11);
	d->at_ns = col_u64(st, 12);
}

/* A malloc'ed copy of blob column @c into *@body, *@len. */
static int copy_blob(sqlite3_stmt *st, int c, void **body, size_t *len)
{
	const void *b = sqlite3_column_blob(st, c);
	size_t n = sqlite3_column_bytes(st, c);
	void *p = malloc(n ? n : 1);

	if (!p)
		return -ENOMEM;
	if (n)
		memcpy(p, b, n);
	*body = p;
	*len = n;
	return 0;
}

static int batch_row(sqlite3_stmt *st, void *cb, void *arg)
{
	const void *body = sqlite3_column_blob(st, 1);
	size_t len = sqlite3_column_bytes(st, 1);

	return ((batch_cb)cb)(col_u64(st, 0), body, len, arg);
}

static int loss_row(sqlite3_stmt *st, void *cb, void *arg)
{
	struct spool_loss l = {
		.source = sqlite3_column_int64(st, 1),
		.partition = sqlite3_column_int64(st, 2),
		.epoch = col_u64(st, 3),
		.first_seq = col_u64(st, 4),
		.last_seq = col_u64(st, 5),
		.reason = (const char *)sqlite3_column_text(st, 6),
		.at_ns = col_u64(st, 7),
	};

	return ((loss_cb)cb)(col_u64(st, 0), &l, arg);
}

static int note_row(sqlite3_stmt *st, void *cb, void *arg)
{
	struct spool_note n = {
		.at_ns = col_u64(st, 1),
		.source = sqlite3_column_int64(st, 2),
		.partition = sqlite3_column_int64(st, 3),
		.old_epoch = col_u64(st, 4),
		.new_epoch = col_u64(st, 5),
		.text = (const char *)sqlite3_column_text(st, 6),
	};

	return ((note_cb)cb)(col_u64(st, 0), &n, arg);
}

static int cursor_row(sqlite3_stmt *st, void *cb, void *arg)
{
	struct spool_cursor c = {
		.source = sqlite3_column_int64(st, 1),
		.partition = sqlite3_column_int64(st, 2),
		.batch_id = col_u64(st, 3),
		.epoch = col_u64(st, 4),
		.last_seq = col_u64(st, 5),
		.stream_seq = col_u64(st, 6),
		.updated_ns = col_u64(st, 7),
	};

	snprintf(c.region, sizeof(c.region), "%s", col_text(st, 0));
	return ((cursor_cb)cb)(&c, arg);
}

static int row_row(sqlite3_stmt *st, void *cb, void *arg)
{
	struct spool_batch_row r;

	read_row(st, 0, &r);
	return ((row_cb)cb)(&r, arg);
}

static int dead_row(sqlite3_stmt *st, void *cb, void *arg)
{
	struct spool_dead d;

	read_dead(st, &d);
	return ((dead_cb)cb)(&d, arg);
}

int spool_foreach_batch(struct spool *s, uint64_t after_id,
			int (*cb)(uint64_t id, const void *body, size_t len,
				  void *arg),
			void *arg)
{
	return walk_after(s, s->st[ST_SEL_BATCHES], after_id, batch_row,
			  (void *)cb, arg);
}

int spool_foreach_loss(struct spool *s, uint64_t after_id,
		       int (*cb)(uint64_t id, const struct spool_loss *l,
				 void *arg),
		       void *arg)
{
	return walk_after(s, s->st[ST_SEL_LOSS], after_id, loss_row,
			  (void *)cb, arg);
}

int spool_foreach_note(struct spool *s, uint64_t after_id,
		       int (*cb)(uint64_t id, const struct spool_note *n,
				 void *arg),
		       void *arg)
{
	return walk_after(s, s->st[ST_SEL_NOTES], after_id, note_row,
			  (void *)cb, arg);
}

int spool_foreach_cursor(struct spool *s,
			 int (*cb)(const struct spool_cursor *c, void *arg),
			 void *arg)
{
	sqlite3_stmt *st = s->st[ST_SEL_CURSORS];

	sqlite3_reset(st);
	return walk_stmt(s, st, cursor_row, (void *)cb, arg);
}

/*
 * With @one_part the walk runs down the batches_part index from
 * (source, partition, after_id): its cost is the rows it returns.
 */
int spool_foreach_row(struct spool *s, uint64_t after_id, bool one_part,
		      unsigned int source, uint32_t partition,
		      unsigned int max,
		      int (*cb)(const struct spool_batch_row *r, void *arg),
		      void *arg)
{
	sqlite3_stmt *st = s->st[one_part ? ST_SEL_PART_ROWS : ST_SEL_ROWS];

	if (after_id >= INT64_MAX)
		return 0;
	sqlite3_reset(st);
	bind_u64(st, 1, after_id);
	sqlite3_bind_int64(st, 2, max ? (sqlite3_int64)max : -1);
	if (one_part) {
		bind_u64(st, 3, source);
		bind_u64(st, 4, partition);
	}
	return walk_stmt(s, st, row_row, (void *)cb, arg);
}

int spool_get_batch(struct spool *s, uint64_t id, void **body, size_t *len,
		    struct spool_batch_row *row)
{
	sqlite3_stmt *st = s->st[ST_GET_BATCH];
	struct spool_batch_row r;
	void *b = NULL;
	size_t n = 0;
	int rc, err = 0;

	if (!body != !len)
		return fail(s, -EINVAL, "get batch: body and len go together");
	if (!id || id > INT64_MAX)
		return fail(s, -ENOENT, "spool holds no batch %llu",
			    (unsigned long long)id);
	sqlite3_reset(st);
	bind_u64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		read_row(st, 0, &r);
		if (body)
			err = copy_blob(st, 8, &b, &n);
	} else if (rc == SQLITE_DONE) {
		err = fail(s, -ENOENT, "spool holds no batch %llu",
			   (unsigned long long)id);
	} else {
		err = db_fail(s, rc, "cannot read spool");
	}
	sqlite3_reset(st);
	if (err)
		return err;
	if (body) {
		*body = b;
		*len = n;
	}
	if (row)
		*row = r;
	return 0;
}

/* --- trim ------------------------------------------------------------ */

/* What a trim takes away from one part. */
struct trim_delta {
	uint64_t key;
	uint64_t batches;
	uint64_t records;
	uint64_t bytes;
};

/* What the trims of one transaction take away, until it commits. */
struct trim_set {
	struct trim_delta *d;
	unsigned int n;
	unsigned int cap;
	int have_ends;		/* trim_ends() ran: the three below are set */
	uint64_t first_id;	/* the oldest row left; 0: none */
	uint64_t oldest_ns;
	uint64_t newest_ns;	/* a partition's trim may take the newest */
};

/*
 * Inside a write transaction: delete the batches with id <= @upto_id, of
 * every part (@one false) or of part @key only, adding to @ts what goes.
 * Returns an SQLite result code.
 */
static int trim_rows(struct spool *s, bool one, uint64_t key,
		     uint64_t upto_id, struct trim_set *ts)
{
	sqlite3_stmt *st = s->st[one ? ST_TRIM_PART_SUM : ST_TRIM_SUM];
	struct trim_delta *nd;
	int rc;

	if (upto_id > INT64_MAX)	/* ids are positive SQLite integers */
		upto_id = INT64_MAX;
	sqlite3_reset(st);
	bind_u64(st, 1, upto_id);
	if (one) {
		bind_u64(st, 2, key >> 32);
		bind_u64(st, 3, (uint32_t)key);
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (ts->n == ts->cap) {
			unsigned int cap = ts->cap ? ts->cap * 2 : 8;

			nd = realloc(ts->d, cap * sizeof(*nd));
			if (!nd) {
				rc = SQLITE_NOMEM;
				break;
			}
			ts->d = nd;
			ts->cap = cap;
		}
		ts->d[ts->n++] = (struct trim_delta){
			.key = part_key(sqlite3_column_int64(st, 0),
					sqlite3_column_int64(st, 1)),
			.batches = col_u64(st, 2),
			.records = col_u64(st, 3),
			.bytes = col_u64(st, 4),
		};
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return rc;

	st = s->st[one ? ST_TRIM_PART_DEL : ST_TRIM_DEL];
	bind_u64(st, 1, upto_id);
	if (one) {
		bind_u64(st, 2, key >> 32);
		bind_u64(st, 3, (uint32_t)key);
	}
	return step_done(st);
}

/* Inside the transaction, after its trims: the oldest and newest rows. */
static int trim_ends(struct spool *s, struct trim_set *ts)
{
	sqlite3_stmt *st = s->st[ST_OLDEST];
	int rc;

	ts->first_id = 0;
	ts->oldest_ns = 0;
	ts->newest_ns = 0;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		ts->first_id = col_u64(st, 0);
		ts->oldest_ns = col_u64(st, 1);
	}
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return rc;
	st = s->st[ST_NEWEST];
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		ts->newest_ns = col_u64(st, 0);
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return rc;
	ts->have_ends = 1;
	return SQLITE_OK;
}

/* Mirror committed trims in memory; cannot fail. */
static void trim_apply(struct spool *s, const struct trim_set *ts)
{
	for (unsigned int i = 0; i < ts->n; i++) {
		const struct trim_delta *d = &ts->d[i];
		long pi = part_find(s, d->key);

		if (pi >= 0) {
			s->parts[pi].batches -= d->batches;
			s->parts[pi].records -= d->records;
			s->parts[pi].bytes -= d->bytes;
		}
		s->batches -= d->batches;
		s->records -= d->records;
		s->bytes -= d->bytes;
	}
	if (ts->have_ends) {
		s->first_id = ts->first_id;
		s->oldest_ns = ts->oldest_ns;
		s->newest_ns = ts->newest_ns;
	}
}

/*
 * Guarantees: the delete and the new oldest row are one transaction; the
 * in-memory mirror changes only after it committed.
 */
int spool_trim(struct spool *s, uint64_t upto_id)
{
	struct trim_set ts = { 0 };
	int rc, err;

	err = may_write(s);
	if (err)
		return err;
	if (!s->batches || upto_id < s->first_id)
		return 0;

	err = txn_begin(s, "cannot begin a trim of spool");
	if (err)
		return err;
	rc = trim_rows(s, false, 0, upto_id, &ts);
	if (rc == SQLITE_OK)
		rc = trim_ends(s, &ts);
	if (rc != SQLITE_OK) {
		err = write_fail(s, rc, "cannot trim spool");
		goto out;
	}
	err = txn_commit(s, "cannot commit a trim of spool");
	if (err)
		goto out;
	trim_apply(s, &ts);
	s->msg[0] = '\0';
out:
	free(ts.d);
	return err;
}

/* --- shipping: cursors and per-partition trims ----------------------- */

static const char *src_name(unsigned int source)
{
	static const char *const names[] = {
		[BATCH_SRC_KMOD] = "kmod",
		[BATCH_SRC_SOCKET] = "socket",
		[BATCH_SRC_BPF] = "bpf",
	};

	return source <= BATCH_SRC_MAX ? names[source] : "?";
}

/* 1..SPOOL_REGION_MAX bytes of [A-Za-z0-9_-]. */
static int region_ok(const char *r)
{
	size_t n;

	if (!r)
		return 0;
	n = strnlen(r, SPOOL_REGION_MAX + 1);
	return n && n <= SPOOL_REGION_MAX &&
	       strspn(r, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
			 "abcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

static int bad_region(struct spool *s, const char *what, const char *r)
{
	return fail(s, -EINVAL,
		    "%s: bad region name '%.*s' (1..%d of [A-Za-z0-9_-])",
		    what, r ? SPOOL_REGION_MAX : 0, r ? r : "",
		    SPOOL_REGION_MAX);
}

/* Everything of a ship commit that can be checked before BEGIN. */
static int ship_check(struct spool *s, const struct spool_cursor *c,
		      unsigned int nc, const struct spool_trim_part *t,
		      unsigned int nt)
{
	if ((nc && !c) || (nt && !t))
		return fail(s, -EINVAL, "ship commit: missing array");
	for (unsigned int i = 0; i < nc; i++) {
		if (!region_ok(c[i].region))
			return bad_region(s, "ship commit", c[i].region);
		if (c[i].source > BATCH_SRC_MAX)
			return fail(s, -EINVAL,
				    "ship commit: cursor %u has unknown source %u",
				    i, c[i].source);
		if (c[i].batch_id > s->last_id)
			return fail(s, -EINVAL,
				    "cursor for region '%s' %s-%u would move to %llu, past the last batch %llu",
				    c[i].region, src_name(c[i].source),
				    c[i].partition,
				    (unsigned long long)c[i].batch_id,
				    (unsigned long long)s->last_id);
	}
	for (unsigned int i = 0; i < nt; i++)
		if (t[i].source > BATCH_SRC_MAX)
			return fail(s, -EINVAL,
				    "ship commit: trim %u has unknown source %u",
				    i, t[i].source);
	return 0;
}

/*
 * Inside the transaction: the stored batch_id of @c's cursor into *@was
 * (*@found 0 when it has none).  Returns an SQLite result code.
 */
static int cursor_get(struct spool *s, const struct spool_cursor *c,
		      int *found, uint64_t *was)
{
	sqlite3_stmt *st = s->st[ST_SEL_CURSOR];
	int rc;

	sqlite3_bind_text(st, 1, c->region, -1, SQLITE_STATIC);
	bind_u64(st, 2, c->source);
	bind_u64(st, 3, c->partition);
	rc = sqlite3_step(st);
	*found = rc == SQLITE_ROW;
	if (rc == SQLITE_ROW)
		*was = col_u64(st, 0);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int cursor_put(struct spool *s, const struct spool_cursor *c,
		      uint64_t now)
{
	sqlite3_stmt *st = s->st[ST_UPS_CURSOR];
	int rc;

	sqlite3_bind_text(st, 1, c->region, -1, SQLITE_STATIC);
	bind_u64(st, 2, c->source);
	bind_u64(st, 3, c->partition);
	bind_u64(st, 4, c->batch_id);
	bind_u64(st, 5, c->epoch);
	bind_u64(st, 6, c->last_seq);
	bind_u64(st, 7, c->stream_seq);
	bind_u64(st, 8, c->updated_ns ? c->updated_ns : now);
	rc = step_done(st);
	sqlite3_clear_bindings(st);
	return rc;
}

/*
 * Guarantees: see spool.h.  Cursors are checked against what is stored
 * inside the transaction, each before it is written, so a later cursor of
 * the same call is checked against an earlier one; a rejection rolls the
 * whole call back.  Trims share spool_trim()'s path, so the in-memory
 * mirror (and with it EDQUOT) follows only after COMMIT succeeded.
 */
int spool_ship_commit(struct spool *s, const struct spool_cursor *c,
		      unsigned int nc, const struct spool_trim_part *t,
		      unsigned int nt)
{
	struct trim_set ts = { 0 };
	int rc = SQLITE_OK, err;
	uint64_t now;

	err = may_write(s);
	if (!err)
		err = ship_check(s, c, nc, t, nt);
	if (err)
		return err;
	if (!nc && !nt)
		return 0;

	now = now_ns();
	err = txn_begin(s, "cannot begin a ship commit to spool");
	if (err)
		return err;
	for (unsigned int i = 0; i < nc && rc == SQLITE_OK; i++) {
		uint64_t was = 0;
		int found;

		rc = cursor_get(s, &c[i], &found, &was);
		if (rc == SQLITE_OK && found && c[i].batch_id < was) {
			err = txn_abort(s, fail(s, -EINVAL,
				"cursor for region '%s' %s-%u would move back from %llu to %llu",
				c[i].region, src_name(c[i].source),
				c[i].partition, (unsigned long long)was,
				(unsigned long long)c[i].batch_id));
			goto out;
		}
		if (rc == SQLITE_OK)
			rc = cursor_put(s, &c[i], now);
	}
	for (unsigned int i = 0; i < nt && rc == SQLITE_OK; i++) {
		uint64_t key = part_key(t[i].source, t[i].partition);
		long pi = part_find(s, key);

		/* Nothing of the part is spooled, or nothing that old. */
		if (pi < 0 || !s->parts[pi].batches ||
		    t[i].upto_id < s->first_id)
			continue;
		rc = trim_rows(s, true, key, t[i].upto_id, &ts);
	}
	if (rc == SQLITE_OK && ts.n)
		rc = trim_ends(s, &ts);
	if (rc != SQLITE_OK) {
		err = write_fail(s, rc, "cannot write to spool");
		goto out;
	}
	err = txn_commit(s, "cannot commit to spool");
	if (err)
		goto out;
	trim_apply(s, &ts);
	s->msg[0] = '\0';
out:
	free(ts.d);
	return err;
}

/* --- dead letters ---------------------------------------------------- */

/*
 * Guarantees: the row fields and the body are copied by one INSERT ...
 * SELECT in one transaction; the batch itself is not touched.
 */
int spool_dead_add(struct spool *s, uint64_t batch_id, const char *region,
		   const char *reason, uint32_t attempts, uint64_t *dead_id)
{
	sqlite3_stmt *st = s->st[ST_INS_DEAD];
	uint64_t id = 0, bytes = 0;
	int rc, err, found = 0;

	err = may_write(s);
	if (err)
		return err;
	if (!region_ok(region))
		return bad_region(s, "dead letter", region);
	if (!text_len_ok(reason, 1))
		return fail(s, -EINVAL, "dead letter: reason must be 1..%d bytes",
			    SPOOL_TEXT_MAX);
	if (!dead_id)
		return fail(s, -EINVAL, "dead letter: no place for its id");
	if (!batch_id || batch_id > INT64_MAX)
		return fail(s, -ENOENT, "spool holds no batch %llu",
			    (unsigned long long)batch_id);

	err = txn_begin(s, "cannot begin a dead letter in spool");
	if (err)
		return err;
	bind_u64(st, 1, batch_id);
	sqlite3_bind_text(st, 2, region, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, reason, -1, SQLITE_STATIC);
	bind_u64(st, 4, attempts);
	bind_u64(st, 5, now_ns());
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		id = col_u64(st, 0);
		bytes = col_u64(st, 1);
		found = 1;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE)
		return write_fail(s, rc, "cannot write a dead letter to spool");
	if (!found)
		return txn_abort(s, fail(s, -ENOENT, "spool holds no batch %llu",
					 (unsigned long long)batch_id));
	err = txn_commit(s, "cannot commit a dead letter to spool");
	if (err)
		return err;
	s->dead_letters++;
	s->dead_bytes += bytes;
	s->msg[0] = '\0';
	*dead_id = id;
	return 0;
}

int spool_foreach_dead(struct spool *s,
		       int (*cb)(const struct spool_dead *d, void *arg),
		       void *arg)
{
	return walk_after(s, s->st[ST_SEL_DEAD], 0, dead_row, (void *)cb,
			  arg);
}

int spool_dead_get(struct spool *s, uint64_t dead_id, struct spool_dead *d,
		   void **body, size_t *len)
{
	sqlite3_stmt *st = s->st[ST_GET_DEAD];
	struct spool_dead got;
	void *b = NULL;
	size_t n = 0;
	int rc, err = 0;

	if (!body != !len)
		return fail(s, -EINVAL, "dead letter: body and len go together");
	if (!dead_id || dead_id > INT64_MAX)
		return fail(s, -ENOENT, "spool holds no dead letter %llu",
			    (unsigned long long)dead_id);
	sqlite3_reset(st);
	bind_u64(st, 1, dead_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		read_dead(st, &got);
		if (body)
			err = copy_blob(st, 13, &b, &n);
	} else if (rc == SQLITE_DONE) {
		err = fail(s, -ENOENT, "spool holds no dead letter %llu",
			   (unsigned long long)dead_id);
	} else {
		err = db_fail(s, rc, "cannot read spool");
	}
	sqlite3_reset(st);
	if (err)
		return err;
	if (d)
		*d = got;
	if (body) {
		*body = b;
		*len = n;
	}
	return 0;
}

int spool_dead_delete(struct spool *s, uint64_t dead_id)
{
	sqlite3_stmt *st = s->st[ST_DEL_DEAD];
	uint64_t bytes = 0;
	int rc, err, found = 0;

	err = may_write(s);
	if (err)
		return err;
	if (!dead_id || dead_id > INT64_MAX)
		return fail(s, -ENOENT, "spool holds no dead letter %llu",
			    (unsigned long long)dead_id);

	err = txn_begin(s, "cannot begin a dead-letter delete in spool");
	if (err)
		return err;
	bind_u64(st, 1, dead_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		bytes = col_u64(st, 0);
		found = 1;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return write_fail(s, rc, "cannot delete a dead letter from spool");
	if (!found)
		return txn_abort(s, fail(s, -ENOENT,
					 "spool holds no dead letter %llu",
					 (unsigned long long)dead_id));
	err = txn_commit(s, "cannot commit a dead-letter delete to spool");
	if (err)
		return err;
	s->dead_letters--;
	s->dead_bytes -= bytes;
	s->msg[0] = '\0';
	return 0;
}
