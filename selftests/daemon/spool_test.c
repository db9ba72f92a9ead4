// SPDX-License-Identifier: GPL-2.0-only
/*
 * spool_test: the spool (daemon/spool.h) against its contract and the
 * schema in docs/FORMAT.md.
 *
 * Every test works in a fresh directory under /tmp.  Files that are not
 * spools (foreign SQLite databases, a newer schema, a trigger that makes a
 * commit fail at its last statement) are made with the sqlite3 shell, so
 * that this test, like the daemon, never sees SQLite's API; tests that need
 * it SKIP when the shell is missing.  The full-disk test mounts a 1 MiB
 * tmpfs in a private mount namespace (SKIP when it cannot).  The crash test
 * SIGKILLs a committing child at random instants and checks the spool after
 * each kill; its seed is logged so a failure can be replayed
 * (SPOOL_TEST_SEED=n).
 *
 * Run as root for the full-disk test; everything else runs as any user.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/evring.h>

#include "batch.h"
#include "spool.h"
#include "kselftest_harness.h"

#define SRC		BATCH_SRC_KMOD
#define EPOCH		0x8000000000000001ull	/* >= 2^63 on purpose */
#define POISON64	0xa5a5a5a5a5a5a5a5ull

/* --- helpers --------------------------------------------------------- */

/* Payload byte j of record @seq of (@partition, @epoch). */
static unsigned char pbyte(uint32_t partition, uint64_t epoch, uint64_t seq,
			   uint32_t j)
{
	return (partition * 131 + epoch * 7 + seq * 31 + j) & 0xff;
}

/*
 * An encoded batch of @count records from @first of (@src, @part, @epoch),
 * each with @plen payload bytes (or a varying length when @plen < 0).
 * *@rec_bytes (when non-NULL): the bytes of the records, the ring position
 * they advance.
 */
static void *mk_batch(unsigned int src, uint32_t part, uint64_t epoch,
		      uint64_t first, uint32_t count, int plen, size_t *len,
		      size_t *rec_bytes)
{
	struct batch_meta m = {
		.source = src, .partition = part, .epoch = epoch,
		.first_seq = first, .count = count,
	};
	size_t cap = 0, off = 0;
	unsigned char *recs;
	void *out = NULL;

	for (uint32_t i = 0; i < count; i++)
		cap += EVRING_REC_SIZE(plen < 0 ? (first + i) % 97 : (uint64_t)plen);
	recs = calloc(1, cap ? cap : 1);
	if (!recs)
		return NULL;
	for (uint32_t i = 0; i < count; i++) {
		struct evring_rec r = {
			.len = plen < 0 ? (first + i) % 97 : (uint64_t)plen,
			.seq = first + i,
			.ts_ns = 1,
		};

		memcpy(recs + off, &r, sizeof(r));
		for (uint32_t j = 0; j < r.len; j++)
			recs[off + sizeof(r) + j] = pbyte(part, epoch, r.seq, j);
		off += EVRING_REC_SIZE(r.len);
	}
	strcpy(m.host_id, "test-host");
	if (batch_encode(&m, recs, off, NULL, 0, BATCH_COMP_NONE, &out, len))
		out = NULL;
	free(recs);
	if (rec_bytes)
		*rec_bytes = off;
	return out;
}

/* Commit one batch of (SRC, @part, @epoch) [first, first + count). */
static int commit1(struct spool *s, uint32_t part, uint64_t epoch,
		   uint64_t first, uint32_t count, uint64_t position)
{
	struct spool_append a = { .position = position };
	int ret;

	a.batch = mk_batch(SRC, part, epoch, first, count, 16, &a.len, NULL);
	if (!a.batch)
		return -ENOMEM;
	ret = spool_commit(s, &a, 1, NULL, 0, NULL, 0);
	free((void *)a.batch);
	return ret;
}

static int open_spool(const char *path, uint64_t max_bytes, int read_only,
		      struct spool **s, char *err, size_t errlen)
{
	struct spool_opts o = {
		.path = path,
		.max_bytes = max_bytes,
		.read_only = read_only,
	};

	return spool_open(&o, s, err, errlen);
}

/* What a walk over the batches saw. */
struct walk {
	uint64_t n;
	uint64_t records;
	uint64_t last_id;
	int in_order;
	int intact;
	int stop_at;		/* return 7 at the n-th batch; 0: never */
};

static int walk_cb(uint64_t id, const void *body, size_t len, void *arg)
{
	struct walk *w = arg;
	struct batch_meta m;

	if (id <= w->last_id)
		w->in_order = 0;
	if (batch_peek(body, len, &m))
		w->intact = 0;
	else
		w->records += m.count;
	w->last_id = id;
	w->n++;
	return w->stop_at && w->n == (uint64_t)w->stop_at ? 7 : 0;
}

static struct walk walk(struct spool *s, uint64_t after)
{
	struct walk w = { .in_order = 1, .intact = 1, .last_id = after };

	if (spool_foreach_batch(s, after, walk_cb, &w))
		w.intact = 0;
	return w;
}

static int count_cb_loss(uint64_t id, const struct spool_loss *l, void *arg)
{
	(*(uint64_t *)arg)++;
	return 0;
}

static int count_cb_note(uint64_t id, const struct spool_note *n, void *arg)
{
	(*(uint64_t *)arg)++;
	return 0;
}

static uint64_t nloss(struct spool *s)
{
	uint64_t n = 0;

	return spool_foreach_loss(s, 0, count_cb_loss, &n) ? ~0ull : n;
}

static uint64_t nnotes(struct spool *s)
{
	uint64_t n = 0;

	return spool_foreach_note(s, 0, count_cb_note, &n) ? ~0ull : n;
}

/* The whole file, malloc'ed; NULL when it cannot be read. */
static unsigned char *slurp(const char *path, size_t *len)
{
	struct stat st;
	unsigned char *b;
	FILE *f = fopen(path, "rb");

	if (!f)
		return NULL;
	if (fstat(fileno(f), &st)) {
		fclose(f);
		return NULL;
	}
	b = malloc(st.st_size + 1);
	if (b && fread(b, 1, st.st_size, f) != (size_t)st.st_size) {
		free(b);
		b = NULL;
	}
	fclose(f);
	*len = st.st_size;
	return b;
}

static int have_sqlite3_shell(void)
{
	return !system("sqlite3 -version >/dev/null 2>&1");
}

/* Run @sql on @path with the sqlite3 shell; its exit status. */
static int shell(const char *path, const char *sql)
{
	pid_t pid = fork();
	int st;

	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		dup2(fd, 1);
		execlp("sqlite3", "sqlite3", "-batch", path, sql, (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &st, 0) < 0)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3];
}

FIXTURE(spool) {
	char dir[64];
	char path[192];
	char mnt[128];
	int mounted;
	struct spool *s;
	char err[256];
};

FIXTURE_SETUP(spool)
{
	strcpy(self->dir, "/tmp/spool_test.XXXXXX");
	ASSERT_NE(NULL, mkdtemp(self->dir));
	snprintf(self->path, sizeof(self->path), "%s/spool.db", self->dir);
}

FIXTURE_TEARDOWN(spool)
{
	char cmd[160];

	spool_close(self->s);
	if (self->mounted)
		umount2(self->mnt, MNT_DETACH);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", self->dir);
	if (system(cmd))
		TH_LOG("cannot remove %s", self->dir);
}

/* --- create, reopen, refuse ----------------------------------------- */

TEST_F(spool, create_makes_a_0600_wal_file_with_user_version_and_application_id)
{
	char wal[224];
	unsigned char *h;
	struct stat st;
	size_t len;

	umask(0);			/* 0600 must not depend on the umask */
	ASSERT_EQ(0, open_spool(self->path, 0, 0, &self->s, self->err,
				sizeof(self->err)));
	ASSERT_EQ(0, stat(self->path, &st));
	EXPECT_EQ(0600u, st.st_mode & 07777);
	ASSERT_EQ(0, commit1(self->s, 0, EPOCH, 1, 10, 100));
	snprintf(wal, sizeof(wal), "%s-wal", self->path);
	ASSERT_EQ(0, stat(wal, &st));	/* WAL mode: the commit is there */
	EXPECT_EQ(0600u, st.st_mode & 07777);
	spool_close(self->s);
	self->s = NULL;

	h = slurp(self->path, &len);
	ASSERT_NE(NULL, h);
	ASSERT_GE(len, 100u);
	EXPECT_EQ(0, memcmp(h, "SQLite format 3", 16));
	EXPECT_EQ(2, h[18]);		/* WAL: file format write version */
	EXPECT_EQ(2, h[19]);		/* WAL: file format read version */
	EXPECT_EQ((uint32_t)SPOOL_SCHEMA_VERSION, be32(h + 60));
	EXPECT_EQ((uint32_t)SPOOL_APPLICATION_ID, be32(h + 68));
	free(h);
}

TEST_F(spool, reopen_keeps_batches_checkpoints_ledger_and_notes)
{
	struct spool_loss l = {
		.source = SRC, .partition = 1, .epoch = 5, .first_seq = 3,
		.last_seq = 9, .reason = "module reloaded",
	};
	struct spool_note n = {
		.source = SRC, .partition = 1, .old_epoch = 5,
		.new_epoch = EPOCH, .text = "epoch change",
	};
	struct spool_append a[2] = { { .position = 111 }, { .position = 222 } };
	struct spool_checkpoint cp;
	struct walk w;

	ASSERT_EQ(0, open_spool(self->path, 0, 0, &self->s, self->err,
				sizeof(self->err)));
	a[0].batch = mk_batch(SRC, 0, EPOCH, 1, 10, 8, &a[0].len, NULL);
	a[1].batch = mk_batch(SRC, 1, EPOCH, 1, 4, 8, &a[1].len, NULL);
	ASSERT_EQ(0, spool_commit(self->s, a, 2, &l, 1, &n, 1));
	ASSERT_EQ(0, commit1(self->s, 0, EPOCH, 11, 5, 333));
	spool_close(self->s);
	self->s = NULL;

	ASSERT_EQ(0, open_spool(self->path, 0, 0, &self->s, self->err,
				sizeof(self->err))) TH_LOG("%s", self->err);
	ASSERT_EQ(0, spool_get_checkpoint(self->s, SRC, 0, &cp));
	EXPECT_EQ(EPOCH, cp.epoch);
	EXPECT_EQ(333u, cp.position);
	EXPECT_EQ(15u, cp.last_seq);
	ASSERT_EQ(0, spool_get_checkpoint(self->s, SRC, 1, &cp));
	EXPECT_EQ(222u, cp.position);
	EXPECT_EQ(4u, cp.last_seq);
	w = walk(self->s, 0);
	EXPECT_EQ(3u, w.n);
	EXPECT_EQ(19u, w.records);
	EXPECT_TRUE(w.in_order);
	EXPECT_TRUE(w.intact);
	EXPECT_EQ(1u, nloss(self->s));
	EXPECT_EQ(1u, nnotes(self->s));
	free((void *)a[0].batch);
	free((void *)a[1].batch);
}

struct got_loss {
	uint64_t id;
	struct spool_loss l;
	char reason[SPOOL_TEXT_MAX + 1];
};

static int get_loss_cb(uint64_t id, const struct spool_loss *l, void *arg)
{
	struct got_loss *g = arg;

	g->id = id;
	g->l = *l;
	snprintf(g->reason, sizeof(g->reason), "%s", l->reason);
	return 1;
}

struct got_note {
	uint64_t id;
	struct spool_note n;
	char text[SPOOL_TEXT_MAX + 1];
	int null_text;
};

static int get_note_cb(uint64_t id, const struct spool_note *n, void *arg)
{
	struct got_note *g = arg;

	g->id = id;
	g->n = *n;
	g->null_text = !n->text;
	snprintf(g->text, sizeof(g->text), "%s", n->text ? n->text : "");
	return 1;
}

TEST_F(spool, ledger_and_notes_read_back_every_field_and_at_ns_defaults_to_now)
{
	struct spool_loss l = {
		.source = BATCH_SRC_BPF, .partition = 9, .epoch = EPOCH,
		.first_seq = 100, .last_seq = UINT64_MAX - 1,
		.reason = "bpf ringbuf full",
	};
	struct spool_note n[2] = {
		{ .at_ns = 1234, .source = BATCH_SRC_SOCKET, .partition = 2,
		  .old_epoch = 1, .new_epoch = UINT64_MAX, .text = "x" },
		{ .source = SRC, .partition = 3 },	/* text NULL */
	};
	struct got_loss gl;
	struct got_note gn;
	struct timespec ts;
	uint64_t before;

	clock_gettime(CLOCK_REALTIME, &ts);
	before = ts.tv_sec * 1000000000ull + ts.tv_nsec;
	ASSERT_EQ(0, open_spool(self->path, 0, 0, &self->s, self->err,
				sizeof(self->err)));
	ASSERT_EQ(0, spool_commit(self->s, NULL, 0, &l, 1, n, 2));

	ASSERT_EQ(1, spool_foreach_loss(self->s, 0, get_loss_cb, &gl));
	EXPECT_EQ(1u, gl.id);
	EXPECT_EQ((unsigned int)BATCH_SRC_BPF, gl.l.source);
	EXPECT_EQ(9u, gl.l.partition);
	EXPECT_EQ(EPOCH, gl.l.epoch);
	EXPECT_EQ(100u, gl.l.first_seq);
	EXPECT_EQ(UINT64_MAX - 1, gl.l.last_seq);
	EXPECT_STREQ("bpf ringbuf full", gl.reason);
	EXPECT_GE(gl.l.at_ns, before);

	ASSERT_EQ(1, spool_foreach_note(self->s, 0, get_note_cb, &gn));
	EXPECT_EQ(1234u, gn.n.at_ns);
	EXPECT_EQ((unsigned int)BATCH_SRC_SOCKET, gn.n.source);
	EXPECT_EQ(2u, gn.n.partition);
	EXPECT_EQ(1u, gn.n.old_epoch);
	EXPECT_EQ(UINT64_MAX, gn.n.new_epoch);
	EXPECT_STREQ("x", gn.text);
	ASSERT_EQ(1, spool_foreach_note(self->s, gn.id, get_note_cb, &gn));
	EXPECT_EQ(3u, gn.n.partition);
	EXPECT_TRUE(gn.null_text);
	EXPECT_GE(gn.n.at_ns, before);
	EXPECT_EQ(0, spool_foreach_note(self->s, gn.id, get_note_cb, &gn));
}

TEST_F(spool, group_or_world_writable_spool_is_eperm)
{
	const mode_t bad[] = { 0620, 0602, 0666 };
	struct spool *s = (struct spool *)0x1;
	int fd;

	ASSERT_EQ(0, open_spool(self->path, 0, 0, &self->s, self->err,
				sizeof(self->err)));
	spool_close(self->s);
	self->s = NULL;
	for (unsigned int i = 0; i < 3; i++) {
		ASSERT_EQ(0, chmod(self->path, bad[i]));
		EXPECT_EQ(-EPERM, open_spool(self->path, 0, 0, &s, self->err,
					     sizeof(self->err)));
		EXPECT_EQ((struct spool *)0x1, s);
		EXPECT_NE(NULL, strstr(self->err, "writable"))
			TH_LOG("%s", self->err);
	}
	/* A new file refused the same way, before SQLite ever sees it. */
	unlink(self->path);
	fd = open(self->path, O_CREAT | O_WRONLY, 0666);
	ASSERT_GE(fd, 0);
	fchmod(fd, 0666);
	close(fd);
	EXPECT_EQ(-EPERM, open_spool(self->path, 0, 0, &s, self->err,
				     sizeof(self->err)));
}

TEST_F(spool, second_writer_is_ebusy_while_readers_share_and_cannot_write)
{
	struct spool *w2 = NULL, *r = NULL;
	struct spool_stats st;

	ASSERT_EQ(0, open_spool(self->path, 0, 0, &self->s, self->err,
				sizeof(self->err)));
	ASSERT_EQ(0, commit1(self->s, 0, EPOCH, 1, 3, 0));
	EXPECT_EQ(-EBUSY, open_spool(self->path, 0, 0, &w2, self->err,
				     sizeof(self->err)));
	EXPECT_NE(NULL, strstr(self->err, "in use")) TH_LOG("%s", self->err);
	ASSERT_EQ(0, open_spool(self->path, 0, 1, &r, self->err,
				sizeof(self->err))) TH_LOG("%s", self->err);
	EXPECT_EQ(0, spool_stats(r, &st));
	EXPECT_EQ(1u, st.batches);
	EXPECT_EQ(-EROFS, commit1(r, 0, EPOCH, 4, 3, 0));
	EXPECT_EQ(-EROFS, spool_trim(r, 100));
	/* The writer goes on beside the reader. */
	EXPECT_EQ(0, commit1(self->s, 0, EPOCH, 4, 3, 0));
	spool_close(r);
	spool_close(self->s);
	self->s = NULL;
	ASSERT_EQ(0, open_spool(self->path, 0, 0, &w2, self->err,
				sizeof(self->err)));
	spool_close(w2);
}

TEST_F(spool, read_only_open_of_a_missing_spool_is_enoent_and_creates_nothing)
{
	struct spool *s = (struct spool *)0x1;
	struct stat st;

	EXPECT_EQ(-ENOENT, open_spool(self->path, 0, 1, &s, self->err,
				      sizeof(self->err)));
	EXPECT_EQ((struct spool *)0x1, s);
	EXPECT_EQ(-1, stat(self->path, &st));
}

TEST_F(spool, empty_file_left_by_a_crash_during_create_becomes_a_spool)
{
	int fd = open(self->path, O_CREAT | O_WRONLY, 0600);

	ASSERT_GE(fd, 0);
	close(fd);
	ASSERT_EQ(0, open_spool(self->path, 0, 0, &self->s, self->err,
				sizeof(self->err))) TH_LOG("%s", self->err);
	EXPECT_EQ(0, commit1(self->s, 0, EPOCH, 1, 1, 0));
}

TEST_F(spool, checkpoint_of_an_unknown_partition_is_enoent_out_untouched)
{
	struct spool_checkpoint cp;

	ASSERT_EQ(0, open_spool(self->path, 0, 0, &self->s, self->err,
				sizeof(self->err)));
	ASSERT_EQ(0, commit1(self->s, 0, EPOCH, 1, 1, 0));
	memset(&cp, 0xa5, sizeof(cp));
	EXPECT_EQ(-ENOENT, spool_get_checkpoint(self->s, SRC, 1, &cp));
	EXPECT_EQ(-ENOENT, spool_get_checkpoint(self->s, BATCH_SRC_BPF, 0,
						&cp));
	EXPECT_EQ(POISON64, cp.epoch);
	EXPECT_EQ(POISON64, cp.last_seq);
}

/* --- files that are not (intact) spools ------------------------------ */

/* Opening @path must fail with @err, mention @what, leave it unchanged. */
static int refused_untouched(const char *path, int err, const char *what,
			     char *msg, size_t msglen)
{
	char side[160];
	unsigned char *before, *after;
	size_t lb, la;
	struct spool *s = (struct spool *)0x1;
	struct stat st;
	int ret, bad = 0;

	before = slurp(path, &lb);
	if (!before)
		return 100;
	ret = open_spool(path, 0, 0, &s, msg, msglen);
	after = slurp(path, &la);
	if (ret != err)
		bad = 1;
	else if (s != (struct spool *)0x1)
		bad = 2;
	else if (!strstr(msg, what) || !strstr(msg, path))
		bad = 3;
	else if (!after || la != lb || memcmp(before, after, lb))
		bad = 4;
	snprintf(side, sizeof(side), "%s-wal", path);
	if (!bad && !stat(side, &st) && st.st_size)
		bad = 5;
	free(before);
	free(after);
	return bad;
}

TEST_F(spool, foreign_sqlite_files_are_emediumtype_and_left_byte_for_byte)
{
	if (!have_sqlite3_shell())
		SKIP(return, "sqlite3 shell not installed");
	/* An ordinary database: application_id 0, some tables. */
	ASSERT_EQ(0, shell(self->path,
			   "CREATE TABLE batches (x); INSERT INTO batches"
			   " VALUES (1); PRAGMA user_version = 1;"));
	EXPECT_EQ(0, refused_untouched(self->path, -EMEDIUMTYPE,
				       "is not an evring spool", self->err,
				       sizeof(self->err)))
		TH_LOG("%s", self->err);
	/* Another application's, even with no tables yet. */
	unlink(self->path);
	ASSERT_EQ(0, shell(self->path, "PRAGMA application_id = 7;"
			   " PRAGMA journal_mode = WAL;"));
	EXPECT_EQ(0, refused_untouched(self->path, -EMEDIUMTYPE,
				       "application_id 0x00000007", self->err,
				       sizeof(self->err)))
		TH_LOG("%s", self->err);
}

TEST_F(spool, non_sqlite_file_is_emediumtype_and_left_unchanged)
{
	FILE *f = fopen(self->path, "w");

	ASSERT_NE(NULL, f);
	for (int i = 0; i < 1000; i++)
		fputs("this is a log file, not a database\n", f);
	fclose(f);
	chmod(self->path, 0600);
	EXPECT_EQ(0, refused_untouched(self->path, -EMEDIUMTYPE,
				       "not an SQLite database", self->err,
				       sizeof(self->err)))
		TH_LOG("%s", self->err);
}

TEST_F(spool, schema_newer_than_this_program_is_eprotonosupport_untouched)
{
	char sql[64];

	if (!have_sqlite3_shell())
		SKIP(return, "sqlite3 shell not installed");
	ASSERT_EQ(0, open_spool(self->path, 0, 0, &self->s, self->err,
				sizeof(self->err)));
	ASSERT_EQ(0, commit1(self->s, 0, EPOCH, 1, 1, 0));
	spool_close(self->s);
	self->s = NULL;
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d;",
		 SPOOL_SCHEMA_VERSION + 1);
	ASSERT_EQ(0, shell(self->path, sql));
	EXPECT_EQ(0, refused_untouched(self->path, -EPROTONOSUPPORT,
				       "newer than this program", self->err,
				       sizeof(self->err)))
		TH_LOG("%s", self->err);
}

TEST_F(spool, corrupt_spool_is_ebadmsg_reported_as_corrupt_and_not_wiped)
{
	unsigned char garbage[4096];
	struct stat st;
	int fd;

	ASSERT_EQ(0, open_spool(self->path, 0, 0, &self->s, self->err,
				sizeof(self->err)));
	for (uint64_t seq = 1; seq <= 2000; seq += 20)
		ASSERT_EQ(0, commit1(self->s, seq % 4, EPOCH, seq / 4 + 1, 5,
				     seq));
	spool_close(self->s);		/* checkpoints the WAL into the file */
	self->s = NULL;

	/* Valid header page, garbage pages in the middle. */
	ASSERT_EQ(0, stat(self->path, &st));
	ASSERT_GE(st.st_size, 16 * 4096);
	memset(garbage, 0x5a, sizeof(garbage));
	fd = open(self->path, O_WRONLY);
	ASSERT_GE(fd, 0);
	for (off_t pg = st.st_size / 4096 / 2; pg < st.st_size / 4096 / 2 + 3;
	     pg++)
		ASSERT_EQ((ssize_t)sizeof(garbage),
			  pwrite(fd, garbage, sizeof(garbage), pg * 4096));
	close(fd);

	EXPECT_EQ(0, refused_untouched(self->path, -EBADMSG, "corrupt spool",
				       self->err, sizeof(self->err)))
		TH_LOG("%s", self->err);
	/* And again: refusing it did not "repair" anything. */
	EXPECT_EQ(0, refused_untouched(self->path, -EBADMSG, "corrupt spool",
				       self->err, sizeof(self->err)));
}

/* --- commit: all or nothing, continuity, bounds ---------------------- */

/* The visible state that a failed commit must not change. */
struct snap {
	struct spool_stats st;
	uint64_t loss, notes, walked;
	int cp1;			/* partition 1 has a checkpoint */
	struct spool_checkpoint cp0;
};

static struct snap snap(struct spool *s)
{
	struct snap n;
	struct spool_checkpoint cp;

	struct spool_stats st;

	memset(&n, 0, sizeof(n));
	spool_stats(s, &st);
	/* Field by field: padding is not part of the value. */
	n.st.batches = st.batches;
	n.st.records = st.records;
	n.st.bytes = st.bytes;
	n.st.max_bytes = st.max_bytes;
	n.st.first_id = st.first_id;
	n.st.last_id = st.last_id;
	n.st.oldest_ns = st.oldest_ns;
	n.st.newest_ns = st.newest_ns;
	n.st.nparts = st.nparts;
	n.loss = nloss(s);
	n.notes = nnotes(s);
	n.walked = walk(s, 0).n;
	n.cp1 = !spool_get_checkpoint(s, SRC, 1, &cp);
	spool_get_checkpoint(s, SRC, 0, &n.cp0);
	return n;
}

static int snap_equal(const struct snap *a, const struct snap *b)
{
	return a->st.batches == b->st.batches &&
	       a->st.records == b->st.records && a->st.bytes == b->st.bytes &&
	       a->st.first_id == b->st.first_id &&
	       a->st.last_id == b->st.last_id &&
	       a->st.oldest_ns == b->st.oldest_ns &&
	       a->st.newest_ns == b->st.newest_ns &&
	       a->st.nparts == b->st.nparts && a->loss == b->loss &&
	       a->notes == b->notes && a->walked == b->walked &&
	       a->cp1 == b->cp1 && a->cp0.epoch == b->cp0.epoch &&
	       a->cp0.position == b->cp0.position &&
	       a->cp0.last_seq == b->cp0.last_seq;
}

/*
 * A call with two batches (partitions 0 and 1), a ledger row and a note;
 * @extra batches may be appended.  Returns spool_commit's result.
 */
static int big_commit(struct spool *s, uint64_t p0_epoch, uint64_t p0_first,
		      const struct spool_append *extra, unsigned int nextra)
{
	struct spool_append a[4] = { { .position = 1 }, { .position = 2 } };
	struct spool_loss l = {
		.source = SRC, .partition = 0, .epoch = 77, .first_seq = 1,
		.last_seq = 2, .reason = "test",
	};
	struct spool_note n = { .source = SRC, .text = "test" };
	int ret;

	a[0].batch = mk_batch(SRC, 1, EPOCH, 1, 5, 8, &a[0].len, NULL);
	a[1].batch = mk_batch(SRC, 0, p0_epoch, p0_first, 5, 8, &a[1].len,
			      NULL);
	for (unsigned int i = 0; i < nextra; i++)
		a[2 + i] = extra[i];
	ret = spool_commit(s, a, 2 + nextra, &l, 1, &n, 1);
	free((void *)a[0].batch);
	free((void *)a[1].batch);
	return ret;
}

TEST_F(spool, commit_failing_at_its_last_statement_leaves_nothing_of_the_call)
{
	struct snap before, after;

	if (!have_sqlite3_shell())
		SKIP(return, "sqlite3 shell not installed");
	ASSERT_EQ(0, open_spool(self->path, 0, 0, &self->s, self->err,
				sizeof(self->err)));
	ASSERT_EQ(0, commit1(self->s, 0, EPOCH, 1, 10, 0));
	spool_close(self->s);
	self->s = NULL;
	/* Notes are written last: fail there, after everything else. */
	ASSERT_EQ(0, shell(self->path,
			   "CREATE TRIGGER fail BEFORE INSERT ON notes"
			   " BEGIN SELECT RAISE(ABORT, 'injected'); END;"));
	ASSERT_EQ(0, open_spool(self->path, 0, 0, &self->s, self->err,
				sizeof(self->err)));
	before = snap(self->s);

	EXPECT_EQ(-EINVAL, big_commit(self->s, EPOCH, 11, NULL, 0));
	EXPECT_NE(NULL, strstr(spool_strerror(self->s), "injected"));
	after = snap(self->s);
	EXPECT_TRUE(snap_equal(&before, &after));
	EXPECT_FALSE(after.cp1);
	EXPECT_EQ(10u, after.cp0.last_seq);

	/* Not after a reopen either: nothing reached the file. */
	spool_close(self->s);
	self->s = NULL;
	ASSERT_EQ(0, shell(self->path, "DROP TRIGGER fail;"));
	ASSERT_EQ(0, open_spool(self->path, 0, 0, &self->s, self->err,
				sizeof(self->err)));
	after = snap(self->s);
	EXPECT_TRUE(snap_equal(&before, &after));
	/* The same call now succeeds: the failure left no trace in memory. */
	EXPECT_EQ(0, big_commit(self->s, EPOCH, 11, NULL, 0));
	after = snap(self->s);
	EXPECT_EQ(before.st.batches + 2, after.st.batches);
	EXPECT_TRUE(after.cp1);
	EXPECT_EQ(15u, after.cp0.last_seq);
	EXPECT_EQ(1u, after.loss);
	EXPECT_EQ(1u, after.notes);
}

TEST_F(spool, commit_hitting_the_unique_index_midway_is_eexist_and_writes_nothing)
{
	struct spool_append x = { .position = 3 };
	struct snap before, after;

	ASSERT_EQ(0, open_spool(self->path, 0, 0, &self->s, self->err,
				sizeof(self->err)));
	ASSERT_EQ(0, commit1(self->s, 0, EPOCH, 1, 10, 0));
	before = snap(self->s);
	/*
	 * Partition 0 moves to epoch 9, then back to EPOCH from seq 1: each
	 * step looks like a new epoch run to the checks, but the last batch
	 * repeats one the spool holds, which only the index can see.
	 */
	x.batch = mk_batch(SRC, 0, EPOCH, 1, 5, 8, &x.len, NULL);
	EXPECT_EQ(-EEXIST, big_commit(self->s, 9, 1, &x, 1));
	after = snap(self->s);
	EXPECT_TRUE(snap_equal(&before, &after));
	spool_close(self->s);
	self->s = NULL;
	ASSERT_EQ(0, open_spool(self->path, 0, 0, &self->s, self->err,
				sizeof(self->err)));
	after = snap(self->s);
	EXPECT_TRUE(snap_equal(&before, &after));
	free((void *)x.batch);
}

TEST_F(spool, overlap_is_eexist_gap_is_einval_unless_a_loss_entry_covers_it)
{
	struct spool_loss l = {
		.source = SRC, .partition = 0, .epoch = EPOCH, .first_seq = 11,
		.last_seq = 19, .reason = "dropped",
	};
	struct spool_append a = { .position = 9 };
	struct spool_checkpoint cp;

	ASSERT_EQ(0, open_spool(self->path, 0, 0, &self->s, self->err,
				sizeof(self->err)));
	ASSERT_EQ(0, commit1(self->s, 0, EPOCH, 1, 10, 0));
	EXPECT_EQ(-EEXIST, commit1(self->s, 0, EPOCH, 10, 5, 0));
	EXPECT_EQ(-EEXIST, commit1(self->s, 0, EPOCH, 1, 1, 0));
	EXPECT_EQ(-EINVAL, commit1(self->s, 0, EPOCH, 12, 5, 0));
	EXPECT_NE(NULL, strstr(spool_strerror(self->s), "gap"));

	a.batch = mk_batch(SRC, 0, EPOCH, 20, 5, 8, &a.len, NULL);
	l.first_seq = 12;		/* does not cover 11 */
	EXPECT_EQ(-EINVAL, spool_commit(self->s, &a, 1, &l, 1, NULL, 0));
	l.first_seq = 11;
	l.epoch = EPOCH + 1;		/* another epoch */
	EXPECT_EQ(-EINVAL, spool_commit(self->s, &a, 1, &l, 1, NULL, 0));
	l.epoch = EPOCH;
	EXPECT_EQ(0, spool_commit(self->s, &a, 1, &l, 1, NULL, 0));
	ASSERT_EQ(0, spool_get_checkpoint(self->s, SRC, 0, &cp));
	EXPECT_EQ(24u, cp.last_seq);

	/* Two batches of one call must chain too. */
	EXPECT_EQ(0, commit1(self->s, 0, EPOCH + 1, 1, 3, 0)); /* new epoch */
	EXPECT_EQ(-EINVAL, commit1(self->s, 0, EPOCH + 1, 5, 3, 0));
	ASSERT_EQ(0, spool_get_checkpoint(self->s, SRC, 0, &cp));
	EXPECT_EQ(EPOCH + 1, cp.epoch);
	EXPECT_EQ(3u, cp.last_seq);
	free((void *)a.batch);
}

TEST_F(spool, bad_arguments_are_rejected_with_exact_errno_and_write_nothing)
{
	struct spool_append a = { .position = 1 };
	struct spool_loss l = {
		.source = SRC, .epoch = 1, .first_seq = 5, .last_seq = 4,
		.reason = "r",
	};
	struct spool_note n = { .source = SRC };
	char longtext[SPOOL_TEXT_MAX + 2];
	struct snap before, after;

	memset(longtext, 'x', sizeof(longtext) - 1);
	longtext[sizeof(longtext) - 1] = '\0';
	ASSERT_EQ(0, open_spool(self->path, 0, 0, &self->s, self->err,
				sizeof(self->err)));
	ASSERT_EQ(0, commit1(self->s, 0, EPOCH, 1, 10, 0));
	before = snap(self->s);

	a.batch = mk_batch(SRC, 2, EPOCH, 1, 5, 8, &a.len, NULL);
	((unsigned char *)a.batch)[a.len - 1] ^= 1;	/* damaged */
	EXPECT_EQ(-EBADMSG, spool_commit(self->s, &a, 1, NULL, 0, NULL, 0));
	EXPECT_NE(NULL, strstr(spool_strerror(self->s), "not intact"));
	((unsigned char *)a.batch)[a.len - 1] ^= 1;

	EXPECT_EQ(-EINVAL, spool_commit(self->s, NULL, 1, NULL, 0, NULL, 0));
	EXPECT_EQ(-EINVAL, spool_commit(self->s, NULL, 0, NULL, 1, NULL, 0));
	EXPECT_EQ(-EINVAL, spool_commit(self->s, NULL, 0, &l, 1, NULL, 0));
	l.last_seq = 6;
	l.reason = NULL;
	EXPECT_EQ(-EINVAL, spool_commit(self->s, NULL, 0, &l, 1, NULL, 0));
	l.reason = "";
	EXPECT_EQ(-EINVAL, spool_commit(self->s, NULL, 0, &l, 1, NULL, 0));
	l.reason = longtext;
	EXPECT_EQ(-EINVAL, spool_commit(self->s, NULL, 0, &l, 1, NULL, 0));
	l.reason = "r";
	l.source = BATCH_SRC_MAX + 1;
	EXPECT_EQ(-EINVAL, spool_commit(self->s, NULL, 0, &l, 1, NULL, 0));
	n.text = longtext;
	EXPECT_EQ(-EINVAL, spool_commit(self->s, NULL, 0, NULL, 0, &n, 1));
	EXPECT_EQ(0, spool_commit(self->s, NULL, 0, NULL, 0, NULL, 0));
	after = snap(self->s);
	EXPECT_TRUE(snap_equal(&before, &after));
	free((void *)a.batch);
}

TEST_F(spool, max_bytes_is_edquot_writing_nothing_and_accepts_again_after_trim)
{
	struct spool_append a = { 0 };
	struct spool_stats st;
	struct snap before, after;
	struct walk w;
	size_t len;
	void *one = mk_batch(SRC, 0, EPOCH, 1, 10, 100, &len, NULL);

	ASSERT_NE(NULL, one);
	free(one);
	/* Room for exactly three batches of this size. */
	ASSERT_EQ(0, open_spool(self->path, 3 * len, 0, &self->s, self->err,
				sizeof(self->err)));
	for (int i = 0; i < 3; i++) {
		a.batch = mk_batch(SRC, 0, EPOCH, 1 + 10 * i, 10, 100, &a.len,
				   NULL);
		ASSERT_EQ(0, spool_commit(self->s, &a, 1, NULL, 0, NULL, 0));
		free((void *)a.batch);
	}
	before = snap(self->s);
	EXPECT_EQ(3 * len, before.st.bytes);
	EXPECT_EQ(3 * len, before.st.max_bytes);

	a.batch = mk_batch(SRC, 0, EPOCH, 31, 10, 100, &a.len, NULL);
	EXPECT_EQ(-EDQUOT, spool_commit(self->s, &a, 1, NULL, 0, NULL, 0));
	after = snap(self->s);
	EXPECT_TRUE(snap_equal(&before, &after));
	/* Reopening does not lift the bound: it is on the sum on disk. */
	spool_close(self->s);
	self->s = NULL;
	ASSERT_EQ(0, open_spool(self->path, 3 * len, 0, &self->s, self->err,
				sizeof(self->err)));
	EXPECT_EQ(-EDQUOT, spool_commit(self->s, &a, 1, NULL, 0, NULL, 0));

	ASSERT_EQ(0, spool_stats(self->s, &st));
	EXPECT_EQ(0, spool_trim(self->s, st.first_id));
	EXPECT_EQ(0, spool_commit(self->s, &a, 1, NULL, 0, NULL, 0));
	w = walk(self->s, 0);
	EXPECT_EQ(3u, w.n);
	EXPECT_EQ(30u, w.records);
	free((void *)a.batch);

	/* Larger than the bound itself: can never fit. */
	a.batch = mk_batch(SRC, 0, EPOCH, 41, 40, 100, &a.len, NULL);
	EXPECT_EQ(-EFBIG, spool_commit(self->s, &a, 1, NULL, 0, NULL, 0));
	free((void *)a.batch);
}

TEST_F(spool, trim_deletes_up_to_the_id_and_ids_never_go_back_even_when_empty)
{
	struct spool_stats st;
	struct walk w;

	ASSERT_EQ(0, open_spool(self->path, 0, 0, &self->s, self->err,
				sizeof(self->err)));
	for (int i = 0; i < 10; i++)
		ASSERT_EQ(0, commit1(self->s, i % 2, EPOCH, 1 + 5 * (i / 2), 5,
				     i));
	EXPECT_EQ(0, spool_trim(self->s, 4));
	w = walk(self->s, 0);
	EXPECT_EQ(6u, w.n);
	ASSERT_EQ(0, spool_stats(self->s, &st));
	EXPECT_EQ(5u, st.first_id);
	EXPECT_EQ(10u, st.last_id);
	EXPECT_EQ(6u, st.batches);
	EXPECT_EQ(30u, st.records);
	EXPECT_EQ(0, spool_trim(self->s, 2));		/* nothing left there */
	EXPECT_EQ(0, spool_trim(self->s, UINT64_MAX));
	ASSERT_EQ(0, spool_stats(self->s, &st));
	EXPECT_EQ(0u, st.batches);
	EXPECT_EQ(0u, st.bytes);
	EXPECT_EQ(0u, st.first_id);
	EXPECT_EQ(0u, st.oldest_ns);
	EXPECT_EQ(10u, st.last_id);

	spool_close(self->s);
	self->s = NULL;
	ASSERT_EQ(0, open_spool(self->path, 0, 0, &self->s, self->err,
				sizeof(self->err)));
	ASSERT_EQ(0, commit1(self->s, 0, EPOCH, 26, 5, 99));
	ASSERT_EQ(0, spool_stats(self->s, &st));
	EXPECT_EQ(11u, st.first_id);
	EXPECT_EQ(11u, st.last_id);
	w = walk(self->s, 10);
	EXPECT_EQ(1u, w.n);
	EXPECT_EQ(11u, w.last_id);
}

/* Every field of the in-memory stats equals what reopening computes. */
static int stats_equal(struct spool *a, struct spool *b)
{
	struct spool_stats sa, sb;
	struct spool_part_stats pa, pb;

	if (spool_stats(a, &sa) || spool_stats(b, &sb))
		return 0;
	if (sa.batches != sb.batches || sa.records != sb.records ||
	    sa.bytes != sb.bytes || sa.max_bytes != sb.max_bytes ||
	    sa.first_id != sb.first_id || sa.last_id != sb.last_id ||
	    sa.oldest_ns != sb.oldest_ns || sa.newest_ns != sb.newest_ns ||
	    sa.nparts != sb.nparts)
		return 0;
	for (unsigned int i = 0; i < sa.nparts; i++) {
		if (spool_part_stats(a, i, &pa) || spool_part_stats(b, i, &pb))
			return 0;
		if (memcmp(&pa, &pb, sizeof(pa)))
			return 0;
	}
	return spool_part_stats(a, sa.nparts, &pa) == -ENOENT;
}

TEST_F(spool, stats_kept_in_memory_match_the_tables_after_commits_and_trims)
{
	struct spool_part_stats ps;
	struct spool_stats st;
	struct spool *r;

	ASSERT_EQ(0, open_spool(self->path, 1 << 20, 0, &self->s, self->err,
				sizeof(self->err)));
	ASSERT_EQ(0, spool_stats(self->s, &st));
	EXPECT_EQ(0u, st.batches);
	EXPECT_EQ(0u, st.nparts);
	EXPECT_GT(st.file_bytes, 0u);
	for (int i = 0; i < 30; i++)
		ASSERT_EQ(0, commit1(self->s, i % 3, EPOCH, 1 + 4 * (i / 3), 4,
				     i));
	ASSERT_EQ(0, open_spool(self->path, 1 << 20, 1, &r, self->err,
				sizeof(self->err)));
	EXPECT_TRUE(stats_equal(self->s, r));
	spool_close(r);

	ASSERT_EQ(0, spool_trim(self->s, 7));
	ASSERT_EQ(0, open_spool(self->path, 1 << 20, 1, &r, self->err,
				sizeof(self->err)));
	EXPECT_TRUE(stats_equal(self->s, r));
	spool_close(r);

	ASSERT_EQ(0, spool_stats(self->s, &st));
	EXPECT_EQ(23u, st.batches);
	EXPECT_EQ(92u, st.records);
	EXPECT_EQ(3u, st.nparts);
	EXPECT_LE(st.oldest_ns, st.newest_ns);
	ASSERT_EQ(0, spool_part_stats(self->s, 1, &ps));
	EXPECT_EQ(1u, ps.partition);
	EXPECT_EQ(40u, ps.cp.last_seq);
	EXPECT_EQ(28u, ps.cp.position);
	EXPECT_EQ(-ENOENT, spool_part_stats(self->s, 3, &ps));
}

/* --- streaming ------------------------------------------------------- */

TEST_F_TIMEOUT(spool, foreach_streams_in_id_order_with_bounded_memory, 120)
{
	enum { BATCHES = 4000, PER_CALL = 400, PAYLOAD = 8000 };
	struct spool_append *a = calloc(PER_CALL, sizeof(*a));
	struct spool_stats st;
	struct walk w;
	int status;
	pid_t pid;

	ASSERT_NE(NULL, a);
	ASSERT_EQ(0, open_spool(self->path, 0, 0, &self->s, self->err,
				sizeof(self->err)));
	for (int c = 0; c < BATCHES / PER_CALL; c++) {
		for (int i = 0; i < PER_CALL; i++) {
			int b = c * PER_CALL + i;

			a[i].batch = mk_batch(SRC, b % 4, EPOCH, 1 + b / 4, 1,
					      PAYLOAD, &a[i].len, NULL);
			ASSERT_NE(NULL, a[i].batch);
		}
		ASSERT_EQ(0, spool_commit(self->s, a, PER_CALL, NULL, 0, NULL,
					  0));
		for (int i = 0; i < PER_CALL; i++)
			free((void *)a[i].batch);
	}
	free(a);
	ASSERT_EQ(0, spool_stats(self->s, &st));
	ASSERT_GT(st.bytes, 30u << 20);
	spool_close(self->s);
	self->s = NULL;

	/* A fresh process, so that its peak RSS is the walk's alone. */
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		struct rusage ru0, ru1;
		struct spool *s;

		if (open_spool(self->path, 0, 1, &s, NULL, 0))
			_exit(10);
		getrusage(RUSAGE_SELF, &ru0);
		w = walk(s, 0);
		getrusage(RUSAGE_SELF, &ru1);
		if (w.n != BATCHES || w.records != BATCHES || !w.in_order ||
		    !w.intact)
			_exit(11);
		/* 30+ MiB walked; growth stays around SQLite's page cache. */
		if (ru1.ru_maxrss - ru0.ru_maxrss > 8 * 1024)
			_exit(12);
		w = walk(s, 3990);
		if (w.n != 10 || w.last_id != BATCHES)
			_exit(13);
		spool_close(s);
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
}

TEST_F(spool, foreach_stops_when_the_callback_returns_nonzero_and_returns_it)
{
	struct walk w = { .in_order = 1, .intact = 1, .stop_at = 3 };

	ASSERT_EQ(0, open_spool(self->path, 0, 0, &self->s, self->err,
				sizeof(self->err)));
	for (int i = 0; i < 10; i++)
		ASSERT_EQ(0, commit1(self->s, 0, EPOCH, 1 + i, 1, 0));
	EXPECT_EQ(7, spool_foreach_batch(self->s, 0, walk_cb, &w));
	EXPECT_EQ(3u, w.n);
	EXPECT_EQ(3u, w.last_id);
	/* The statement was reset: a new walk starts over. */
	w = walk(self->s, 0);
	EXPECT_EQ(10u, w.n);
	/* And the spool still writes. */
	EXPECT_EQ(0, commit1(self->s, 0, EPOCH, 11, 1, 0));
}

/* --- faults ---------------------------------------------------------- */

TEST_F_TIMEOUT(spool, full_disk_is_enospc_then_writes_stay_refused_and_commits_survive, 60)
{
	static const char ballast_bytes[128 << 10];
	struct spool_checkpoint cp;
	struct spool_stats st;
	struct walk w;
	uint64_t committed = 0, seq = 1;
	char ballast[224];
	int ret = 0, fd;

	snprintf(self->mnt, sizeof(self->mnt), "%s/mnt", self->dir);
	ASSERT_EQ(0, mkdir(self->mnt, 0700));
	if (unshare(CLONE_NEWNS) == 0)
		mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
	if (mount("tmpfs", self->mnt, "tmpfs", 0, "size=1m,mode=0700"))
		SKIP(return, "cannot mount a tmpfs: %s", strerror(errno));
	self->mounted = 1;
	snprintf(self->path, sizeof(self->path), "%s/spool.db", self->mnt);
	/* 128 KiB that the test can free later. */
	snprintf(ballast, sizeof(ballast), "%s/ballast", self->mnt);
	fd = open(ballast, O_CREAT | O_WRONLY, 0600);
	ASSERT_GE(fd, 0);
	ASSERT_EQ((ssize_t)sizeof(ballast_bytes),
		  write(fd, ballast_bytes, sizeof(ballast_bytes)));
	close(fd);

	ASSERT_EQ(0, open_spool(self->path, 0, 0, &self->s, self->err,
				sizeof(self->err))) TH_LOG("%s", self->err);
	while (committed < 1000) {
		ret = commit1(self->s, 0, EPOCH, seq, 20, seq);
		if (ret)
			break;
		seq += 20;
		committed++;
	}
	EXPECT_EQ(-ENOSPC, ret) TH_LOG("%s", spool_strerror(self->s));
	EXPECT_GT(committed, 20u);
	TH_LOG("%llu commits fit", (unsigned long long)committed);
	/* Sticky: no later write goes through, even a tiny one. */
	EXPECT_EQ(-ENOSPC, commit1(self->s, 1, EPOCH, 1, 1, 0));
	EXPECT_EQ(-ENOSPC, spool_trim(self->s, 1));
	/* Reads still work and show exactly what was committed. */
	w = walk(self->s, 0);
	EXPECT_EQ(committed, w.n);
	ASSERT_EQ(0, spool_stats(self->s, &st));
	EXPECT_EQ(committed, st.batches);
	/* Reopening in place works on the full disk; writing still fails. */
	ASSERT_EQ(0, spool_reopen(self->s, self->err, sizeof(self->err)))
		TH_LOG("%s", self->err);
	EXPECT_EQ(-ENOSPC, commit1(self->s, 0, EPOCH, seq, 100, seq));
	spool_close(self->s);
	self->s = NULL;

	/* A new process would find everything committed, and only that. */
	ASSERT_EQ(0, open_spool(self->path, 0, 0, &self->s, self->err,
				sizeof(self->err))) TH_LOG("%s", self->err);
	w = walk(self->s, 0);
	EXPECT_EQ(committed, w.n);
	EXPECT_EQ(committed * 20, w.records);
	EXPECT_TRUE(w.intact);
	EXPECT_TRUE(w.in_order);
	ASSERT_EQ(0, spool_get_checkpoint(self->s, SRC, 0, &cp));
	EXPECT_EQ(seq - 1, cp.last_seq);
	EXPECT_EQ(-ENOSPC, commit1(self->s, 0, EPOCH, seq, 100, seq));

	/* Space freed: the same object resumes after spool_reopen(). */
	ASSERT_EQ(0, unlink(ballast));
	EXPECT_EQ(-ENOSPC, commit1(self->s, 0, EPOCH, seq, 10, seq));
	ASSERT_EQ(0, spool_reopen(self->s, self->err, sizeof(self->err)))
		TH_LOG("%s", self->err);
	EXPECT_EQ(0, commit1(self->s, 0, EPOCH, seq, 10, seq))
		TH_LOG("%s", spool_strerror(self->s));
	w = walk(self->s, 0);
	EXPECT_EQ(committed + 1, w.n);
}

/* --- kill -9 --------------------------------------------------------- */

#define CRASH_PARTS	4
#define CRASH_EPOCH0	1000

/* What the child reports after each successful commit. */
struct ack {
	uint32_t partition;
	uint32_t pad;
	uint64_t epoch;
	uint64_t last_seq;
};

/*
 * The child: commit forever, 1..4 batches per call over CRASH_PARTS
 * partitions, continuing each partition's checkpoint; now and then move a
 * partition to a new epoch with a ledger row and a note in the same call.
 * Report each commit on @ackfd only after spool_commit() returned 0.
 */
static void __attribute__((noreturn)) crash_child(const char *path,
						  int ackfd, unsigned int seed)
{
	struct spool_opts o = { .path = path };
	struct spool_checkpoint cp[CRASH_PARTS];
	struct spool_append a[4];
	struct spool_loss loss[4];
	struct spool_note notes[4];
	struct ack acks[4];
	struct spool *s;

	srand(seed);
	if (spool_open(&o, &s, NULL, 0))
		_exit(10);
	for (uint32_t p = 0; p < CRASH_PARTS; p++)
		if (spool_get_checkpoint(s, SRC, p, &cp[p]))
			cp[p] = (struct spool_checkpoint){ .epoch = CRASH_EPOCH0 };

	for (;;) {
		unsigned int n = 1 + rand() % 4, nl = 0;

		for (unsigned int i = 0; i < n; i++) {
			uint32_t p = rand() % CRASH_PARTS;
			uint32_t count = 1 + rand() % 40;
			size_t rb;

			if (cp[p].last_seq && rand() % 100 == 0) {
				loss[nl] = (struct spool_loss){
					.source = SRC, .partition = p,
					.epoch = cp[p].epoch,
					.first_seq = cp[p].last_seq + 1,
					.last_seq = cp[p].last_seq + 5,
					.reason = "epoch change",
				};
				notes[nl] = (struct spool_note){
					.source = SRC, .partition = p,
					.old_epoch = cp[p].epoch,
					.new_epoch = cp[p].epoch + 1,
				};
				nl++;
				cp[p] = (struct spool_checkpoint){
					.epoch = cp[p].epoch + 1,
				};
			}
			a[i].batch = mk_batch(SRC, p, cp[p].epoch,
					      cp[p].last_seq + 1, count, -1,
					      &a[i].len, &rb);
			if (!a[i].batch)
				_exit(12);
			cp[p].last_seq += count;
			cp[p].position += rb;
			a[i].position = cp[p].position;
			acks[i] = (struct ack){ .partition = p,
						.epoch = cp[p].epoch,
						.last_seq = cp[p].last_seq };
		}
		if (spool_commit(s, a, n, loss, nl, notes, nl))
			_exit(11);
		if (write(ackfd, acks, n * sizeof(acks[0])) < 0)
			_exit(13);
		for (unsigned int i = 0; i < n; i++)
			free((void *)a[i].batch);
	}
}

/* What the parent knows of one partition; the epochs it has seen. */
struct crash_part {
	uint64_t epochs[1024];
	uint64_t max_seq[1024];		/* per epoch, highest seq spooled */
	unsigned int nepochs;
	uint64_t epoch, last_seq, position;
	int seen;
};

struct crash_check {
	struct crash_part part[CRASH_PARTS];
	uint64_t batches, records, transitions;
	const char *bad;		/* first violation */
	uint64_t bad_id;
};

static int crash_bad(struct crash_check *c, uint64_t id, const char *why)
{
	if (!c->bad) {
		c->bad = why;
		c->bad_id = id;
	}
	return 1;
}

/* Check one batch against the partition's history so far. */
static int crash_batch_cb(uint64_t id, const void *body, size_t len,
			  void *arg)
{
	struct crash_check *c = arg;
	struct batch_view v;
	struct batch_iter it;
	struct evring_rec rec;
	const void *payload;
	struct crash_part *p;
	int ret;

	if (batch_decode(body, len, &v))
		return crash_bad(c, id, "batch does not decode");
	if (v.meta.partition >= CRASH_PARTS) {
		batch_view_release(&v);
		return crash_bad(c, id, "unknown partition");
	}
	p = &c->part[v.meta.partition];
	if (!p->seen || v.meta.epoch != p->epoch) {
		/* A new run: first seq 1, an epoch never seen before. */
		for (unsigned int i = 0; i < p->nepochs; i++)
			if (p->epochs[i] == v.meta.epoch) {
				batch_view_release(&v);
				return crash_bad(c, id, "epoch run resumed");
			}
		if (v.meta.first_seq != 1 || p->nepochs == 1024) {
			batch_view_release(&v);
			return crash_bad(c, id, "epoch run not from seq 1");
		}
		if (p->seen)
			c->transitions++;
		p->epochs[p->nepochs++] = v.meta.epoch;
		p->seen = 1;
		p->epoch = v.meta.epoch;
		p->last_seq = 0;
		p->position = 0;
	}
	if (v.meta.first_seq != p->last_seq + 1) {
		batch_view_release(&v);
		return crash_bad(c, id, "gap or double in seqs");
	}
	batch_iter_init(&it, &v);
	while ((ret = batch_iter_next(&it, &rec, &payload)) == 1)
		for (uint32_t j = 0; j < rec.len; j++)
			if (((const unsigned char *)payload)[j] !=
			    pbyte(v.meta.partition, v.meta.epoch, rec.seq, j)) {
				batch_view_release(&v);
				return crash_bad(c, id, "payload differs");
			}
	p->last_seq += v.meta.count;
	p->max_seq[p->nepochs - 1] = p->last_seq;
	p->position += v.records_len;
	c->batches++;
	c->records += v.meta.count;
	batch_view_release(&v);
	return 0;
}

/* Was the acknowledged commit @a spooled? */
static int ack_durable(const struct crash_check *c, const struct ack *a)
{
	const struct crash_part *p = &c->part[a->partition];

	for (unsigned int i = 0; i < p->nepochs; i++)
		if (p->epochs[i] == a->epoch)
			return a->last_seq <= p->max_seq[i];
	return 0;
}

/* Read every ack the pipe holds (non-blocking) into the array. */
static void read_acks(int fd, struct ack **acks, size_t *n, size_t *cap)
{
	struct ack buf[256];
	ssize_t r;

	while ((r = read(fd, buf, sizeof(buf))) > 0) {
		size_t k = r / sizeof(buf[0]);

		if (*n + k > *cap) {
			*cap = (*n + k) * 2;
			*acks = realloc(*acks, *cap * sizeof(**acks));
		}
		memcpy(*acks + *n, buf, k * sizeof(buf[0]));
		*n += k;
	}
}

TEST_F_TIMEOUT(spool, kill9_at_random_instants_loses_no_acked_commit_and_doubles_nothing, 600)
{
	const char *env = getenv("SPOOL_TEST_SEED");
	unsigned int seed = env ? strtoul(env, NULL, 0) : (unsigned int)time(NULL);
	struct ack *acks = NULL;
	size_t nacks = 0, cap = 0;
	uint64_t prev_records = 0, commits_seen = 0;
	int pfd[2];

	TH_LOG("seed %u", seed);
	srand(seed);
	ASSERT_EQ(0, pipe2(pfd, O_CLOEXEC));
	ASSERT_EQ(0, fcntl(pfd[0], F_SETFL, O_NONBLOCK));

	for (int iter = 0; iter < 30; iter++) {
		struct crash_check c;
		struct spool_stats st;
		struct spool_checkpoint cp;
		uint64_t dead_ms = iter == 0 ? rand() % 5 : 5 + rand() % 150;
		unsigned int child_seed = rand();
		struct timespec t0, t;
		int status;
		pid_t pid;

		pid = fork();
		ASSERT_GE(pid, 0);
		if (pid == 0) {
			close(pfd[0]);
			crash_child(self->path, pfd[1], child_seed);
		}
		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (;;) {
			struct pollfd pf = { .fd = pfd[0], .events = POLLIN };
			uint64_t el;

			clock_gettime(CLOCK_MONOTONIC, &t);
			el = (t.tv_sec - t0.tv_sec) * 1000 +
			     (t.tv_nsec - t0.tv_nsec) / 1000000;
			if (el >= dead_ms)
				break;
			poll(&pf, 1, dead_ms - el);
			read_acks(pfd[0], &acks, &nacks, &cap);
		}
		ASSERT_EQ(0, kill(pid, SIGKILL));
		ASSERT_EQ(pid, waitpid(pid, &status, 0));
		ASSERT_TRUE(WIFSIGNALED(status))
			TH_LOG("iteration %d: child exited with %d", iter,
			       WEXITSTATUS(status));
		read_acks(pfd[0], &acks, &nacks, &cap);

		/* The spool opens, passes quick_check, and is consistent. */
		ASSERT_EQ(0, open_spool(self->path, 0, 0, &self->s, self->err,
					sizeof(self->err)))
			TH_LOG("iteration %d: %s", iter, self->err);
		memset(&c, 0, sizeof(c));
		ASSERT_EQ(0, spool_foreach_batch(self->s, 0, crash_batch_cb,
						 &c))
			TH_LOG("iteration %d: batch %llu: %s", iter,
			       (unsigned long long)c.bad_id, c.bad);
		for (uint32_t p = 0; p < CRASH_PARTS; p++) {
			if (!c.part[p].seen) {
				EXPECT_EQ(-ENOENT, spool_get_checkpoint(
					self->s, SRC, p, &cp));
				continue;
			}
			ASSERT_EQ(0, spool_get_checkpoint(self->s, SRC, p, &cp));
			EXPECT_EQ(c.part[p].epoch, cp.epoch);
			EXPECT_EQ(c.part[p].last_seq, cp.last_seq);
			EXPECT_EQ(c.part[p].position, cp.position);
		}
		/* Ledger, notes and batches moved together. */
		EXPECT_EQ(c.transitions, nloss(self->s));
		EXPECT_EQ(c.transitions, nnotes(self->s));
		ASSERT_EQ(0, spool_stats(self->s, &st));
		EXPECT_EQ(c.batches, st.batches);
		EXPECT_EQ(c.records, st.records);
		/* Nothing acknowledged is missing; nothing went backwards. */
		for (size_t i = 0; i < nacks; i++) {
			ASSERT_TRUE(ack_durable(&c, &acks[i]))
				TH_LOG("iteration %d: ack %zu (partition %u epoch %llu seq %llu) lost",
				       iter, i, acks[i].partition,
				       (unsigned long long)acks[i].epoch,
				       (unsigned long long)acks[i].last_seq);
		}
		EXPECT_GE(c.records, prev_records);
		prev_records = c.records;
		commits_seen = nacks;
		spool_close(self->s);
		self->s = NULL;
	}
	TH_LOG("%zu acknowledged commits, %llu records spooled", nacks,
	       (unsigned long long)prev_records);
	EXPECT_GT(commits_seen, 30u);
	close(pfd[0]);
	close(pfd[1]);
	free(acks);
}

/* --- schema 2: migration --------------------------------------------- */

/* Schema version 1 exactly as released (migrations[0] of spool.c). */
static const char v1_schema[] =
	"CREATE TABLE batches ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
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
	"  text TEXT);";

/*
 * A version-1 spool made by the sqlite3 shell, not by this program: three
 * batches of (SRC, 0, 5) seqs 1..15 and the checkpoint after them, plus
 * @extra SQL.  0 or the shell's exit status.
 */
static int make_v1_spool(const char *path, const char *extra)
{
	static const char hexd[] = "0123456789abcdef";
	size_t cap = 1 << 16, off = 0;
	char *sql = malloc(cap);
	int ret;

	if (!sql)
		return -1;
	off += snprintf(sql + off, cap - off,
			"PRAGMA journal_mode = WAL; BEGIN; %s"
			" PRAGMA user_version = 1; PRAGMA application_id = %d;",
			v1_schema, SPOOL_APPLICATION_ID);
	for (int i = 0; i < 3; i++) {
		size_t len;
		unsigned char *b = mk_batch(SRC, 0, 5, 1 + 5 * i, 5, 8, &len,
					    NULL);

		if (!b || off + 2 * len + 256 > cap) {
			free(b);
			free(sql);
			return -1;
		}
		off += snprintf(sql + off, cap - off,
				"INSERT INTO batches (source, partition, epoch,"
				" first_seq, count, bytes, created_ns, body)"
				" VALUES (%d, 0, 5, %d, 5, %zu, %d, X'",
				SRC, 1 + 5 * i, len, 1000 + i);
		for (size_t j = 0; j < len; j++) {
			sql[off++] = hexd[b[j] >> 4];
			sql[off++] = hexd[b[j] & 15];
		}
		off += snprintf(sql + off, cap - off, "');");
		free(b);
	}
	snprintf(sql + off, cap - off,
		 "INSERT INTO checkpoints VALUES (%d, 0, 5, 777, 15, 1);"
		 " %s COMMIT;", SRC, extra ? extra : "");
	ret = shell(path, sql);
	free(sql);
	chmod(path, 0600);
	return ret;
}

/* user_version from the file header (the WAL checkpointed into it). */
static int file_version(const char *path)
{
	size_t len;
	unsigned char *h = slurp(path, &len);
	int v = h && len >= 100 ? (int)be32(h + 60) : -1;

	free(h);
	return v;
}

static int count_cursor_cb(const struct spool_cursor *c, void *arg)
{
	(*(uint64_t *)arg)++;
	return 0;
}

static uint64_t ncursors(struct spool *s)
{
	uint64_t n = 0;

	return spool_foreach_cursor(s, count_cursor_cb, &n) ? ~0ull : n;
}

TEST_F(spool, schema_1_spool_migrates_to_2_keeping_batches_and_checkpoints)
{
	struct spool_cursor c = { .region = "a", .source = SRC, .batch_id = 2 };
	struct spool_trim_part t = { .source = SRC, .upto_id = 2 };
	struct spool *r = (struct spool *)0x1;
	unsigned char *before, *after;
	struct spool_checkpoint cp;
	struct spool_stats st;
	size_t lb, la;
	struct walk w;

	if (!have_sqlite3_shell())
		SKIP(return, "sqlite3 shell not installed");
	ASSERT_EQ(0, make_v1_spool(self->path, NULL));
	ASSERT_EQ(1, file_version(self->path));

	/* A reader never migrates: EROFS, and the file is left as it was. */
	before = slurp(self->path, &lb);
	ASSERT_NE(NULL, before);
	EXPECT_EQ(-EROFS, open_spool(self->path, 0, 1, &r, self->err,
				     sizeof(self->err)));
	EXPECT_EQ((struct spool *)0x1, r);
	EXPECT_NE(NULL, strstr(self->err, "needs schema version 2 (has 1)"))
		TH_LOG("%s", self->err);
	after = slurp(self->path, &la);
	ASSERT_NE(NULL, after);
	EXPECT_EQ(lb, la);
	EXPECT_EQ(0, memcmp(before, after, lb));
	free(before);
	free(after);

	ASSERT_EQ(0, open_spool(self->path, 0, 0, &self->s, self->err,
				sizeof(self->err))) TH_LOG("%s", self->err);
	w = walk(self->s, 0);
	EXPECT_EQ(3u, w.n);
	EXPECT_EQ(15u, w.records);
	EXPECT_TRUE(w.intact);
	EXPECT_TRUE(w.in_order);
	ASSERT_EQ(0, spool_get_checkpoint(self->s, SRC, 0, &cp));
	EXPECT_EQ(5u, cp.epoch);
	EXPECT_EQ(777u, cp.position);
	EXPECT_EQ(15u, cp.last_seq);
	ASSERT_EQ(0, spool_stats(self->s, &st));
	EXPECT_EQ(3u, st.batches);
	EXPECT_EQ(1u, st.first_id);
	EXPECT_EQ(3u, st.last_id);
	EXPECT_EQ(1000u, st.oldest_ns);
	EXPECT_EQ(0u, st.dead_letters);
	EXPECT_EQ(0u, ncursors(self->s));
	/* The new tables work, and the drain goes on where it was. */
	EXPECT_EQ(0, spool_ship_commit(self->s, &c, 1, &t, 1))
		TH_LOG("%s", spool_strerror(self->s));
	EXPECT_EQ(0, commit1(self->s, 0, 5, 16, 5, 800));
	w = walk(self->s, 0);
	EXPECT_EQ(2u, w.n);
	EXPECT_EQ(4u, w.last_id);		/* ids go on: 3, 4 */
	spool_close(self->s);
	self->s = NULL;
	EXPECT_EQ(SPOOL_SCHEMA_VERSION, file_version(self->path));
	EXPECT_EQ(2, SPOOL_SCHEMA_VERSION);

	/* Now a reader opens it, and sees the cursor. */
	ASSERT_EQ(0, open_spool(self->path, 0, 1, &r, self->err,
				sizeof(self->err))) TH_LOG("%s", self->err);
	EXPECT_EQ(1u, ncursors(r));
	spool_close(r);
}

TEST_F(spool, migration_failing_midway_leaves_the_file_at_schema_1)
{
	struct walk w;

	if (!have_sqlite3_shell())
		SKIP(return, "sqlite3 shell not installed");
	/* A table in the way of step 1 -> 2: its CREATE fails. */
	ASSERT_EQ(0, make_v1_spool(self->path,
				   "CREATE TABLE dead_letters (x);"));
	EXPECT_EQ(-EIO, open_spool(self->path, 0, 0, &self->s, self->err,
				   sizeof(self->err)));
	EXPECT_EQ(NULL, self->s);
	EXPECT_NE(NULL, strstr(self->err, "cannot migrate spool"))
		TH_LOG("%s", self->err);
	EXPECT_EQ(1, file_version(self->path));
	/* The half-made step is gone with its transaction. */
	ASSERT_EQ(0, shell(self->path, "DROP TABLE dead_letters;"));
	ASSERT_EQ(0, open_spool(self->path, 0, 0, &self->s, self->err,
				sizeof(self->err))) TH_LOG("%s", self->err);
	w = walk(self->s, 0);
	EXPECT_EQ(3u, w.n);
	EXPECT_EQ(0u, ncursors(self->s));
}

/* --- schema 2: cursors ----------------------------------------------- */

/* Commit one batch of (@src, @part, EPOCH) [first, first + count). */
static int commit_src(struct spool *s, unsigned int src, uint32_t part,
		      uint64_t first, uint32_t count)
{
	struct spool_append a = { .position = first + count };
	int ret;

	a.batch = mk_batch(src, part, EPOCH, first, count, 16, &a.len, NULL);
	if (!a.batch)
		return -ENOMEM;
	ret = spool_commit(s, &a, 1, NULL, 0, NULL, 0);
	free((void *)a.batch);
	return ret;
}

struct cursors {
	struct spool_cursor c[16];
	unsigned int n;
	int stop_at;		/* return 9 at the n-th cursor; 0: never */
};

static int get_cursor_cb(const struct spool_cursor *c, void *arg)
{
	struct cursors *cs = arg;

	if (cs->n < 16)
		cs->c[cs->n] = *c;
	cs->n++;
	return cs->stop_at && cs->n == (unsigned int)cs->stop_at ? 9 : 0;
}

static struct cursors cursors(struct spool *s)
{
	struct cursors cs;

	memset(&cs, 0, sizeof(cs));
	if (spool_foreach_cursor(s, get_cursor_cb, &cs))
		cs.n = ~0u;
	return cs;
}

static struct spool_cursor cursor(const char *region, unsigned int src,
				  uint32_t part, uint64_t batch_id)
{
	struct spool_cursor c = {
		.source = src, .partition = part, .batch_id = batch_id,
		.epoch = EPOCH, .last_seq = batch_id * 10,
		.stream_seq = batch_id + 1000,
	};

	snprintf(c.region, sizeof(c.region), "%s", region);
	return c;
}

TEST_F(spool, cursors_upsert_and_read_back_ordered_by_region_source_partition)
{
	struct spool_cursor c[5] = {
		cursor("west", SRC, 2, 3),
		cursor("east", BATCH_SRC_BPF, 0, 4),
		cursor("east", SRC, 7, 5),
		cursor("east", SRC, 2, 6),
		cursor("East", SRC, 9, 1),	/* 'E' < 'e': bytewise */
	};
	const char *order[5][2] = {
		{ "East", "9" }, { "east", "2" }, { "east", "7" },
		{ "east", "bpf" }, { "west", "2" },
	};
	struct spool *r;
	struct cursors cs;
	struct timespec ts;
	uint64_t before;

	clock_gettime(CLOCK_REALTIME, &ts);
	before = ts.tv_sec * 1000000000ull + ts.tv_nsec;
	ASSERT_EQ(0, open_spool(self->path, 0, 0, &self->s, self->err,
				sizeof(self->err)));
	for (uint32_t i = 0; i < 8; i++)
		ASSERT_EQ(0, commit1(self->s, i, EPOCH, 1, 1, 0));
	c[2].updated_ns = 4242;
	ASSERT_EQ(0, spool_ship_commit(self->s, c, 5, NULL, 0))
		TH_LOG("%s", spool_strerror(self->s));
	cs = cursors(self->s);
	ASSERT_EQ(5u, cs.n);
	for (unsigned int i = 0; i < 5; i++) {
		const struct spool_cursor *g = &cs.c[i];

		EXPECT_STREQ(order[i][0], g->region);
		if (!strcmp(order[i][1], "bpf")) {
			EXPECT_EQ((unsigned int)BATCH_SRC_BPF, g->source);
			EXPECT_EQ(0u, g->partition);
		} else {
			EXPECT_EQ((unsigned int)SRC, g->source);
			EXPECT_EQ(strtoul(order[i][1], NULL, 10), g->partition);
		}
		EXPECT_EQ(EPOCH, g->epoch);
		EXPECT_EQ(g->batch_id * 10, g->last_seq);
		EXPECT_EQ(g->batch_id + 1000, g->stream_seq);
		if (g->batch_id == 5) {
			EXPECT_EQ(4242u, g->updated_ns);
		} else {
			EXPECT_GE(g->updated_ns, before);
		}
	}
	/* Upsert: the same key moves on; an equal batch_id is allowed. */
	c[0].batch_id = 8;
	c[1].stream_seq = 77;
	ASSERT_EQ(0, spool_ship_commit(self->s, c, 2, NULL, 0));
	cs = cursors(self->s);
	ASSERT_EQ(5u, cs.n);
	EXPECT_EQ(8u, cs.c[4].batch_id);
	EXPECT_EQ(4u, cs.c[3].batch_id);
	EXPECT_EQ(77u, cs.c[3].stream_seq);
	/* A non-zero return stops the walk and is returned. */
	memset(&cs, 0, sizeof(cs));
	cs.stop_at = 2;
	EXPECT_EQ(9, spool_foreach_cursor(self->s, get_cursor_cb, &cs));
	EXPECT_EQ(2u, cs.n);
	/* Nothing to do is 0. */
	EXPECT_EQ(0, spool_ship_commit(self->s, NULL, 0, NULL, 0));

	/* Durable, and readable by a reader that cannot write them. */
	spool_close(self->s);
	self->s = NULL;
	ASSERT_EQ(0, open_spool(self->path, 0, 1, &r, self->err,
				sizeof(self->err)));
	cs = cursors(r);
	ASSERT_EQ(5u, cs.n);
	EXPECT_EQ(8u, cs.c[4].batch_id);
	EXPECT_EQ(-EROFS, spool_ship_commit(r, c, 1, NULL, 0));
	EXPECT_EQ(-EROFS, spool_ship_commit(r, NULL, 0, NULL, 0));
	spool_close(r);
}

/* The rows of (@src, @part) left in the spool. */
static uint64_t part_rows(struct spool *s, unsigned int src, uint32_t part);

TEST_F(spool, backwards_cursor_is_einval_with_the_detail_and_writes_nothing)
{
	struct spool_cursor c[3];
	struct spool_trim_part t = { .source = SRC, .partition = 3,
				     .upto_id = 12 };
	char name[SPOOL_REGION_MAX + 2];
	struct snap before, after;
	struct cursors cs;

	ASSERT_EQ(0, open_spool(self->path, 0, 0, &self->s, self->err,
				sizeof(self->err)));
	for (uint32_t i = 0; i < 20; i++)
		ASSERT_EQ(0, commit1(self->s, 3, EPOCH, 1 + i, 1, 0));
	c[0] = cursor("a", SRC, 3, 17);
	ASSERT_EQ(0, spool_ship_commit(self->s, c, 1, NULL, 0));
	before = snap(self->s);

	/* b's cursor and the trim come first or after: none of it lands. */
	c[0] = cursor("b", SRC, 3, 15);
	c[1] = cursor("a", SRC, 3, 12);
	EXPECT_EQ(-EINVAL, spool_ship_commit(self->s, c, 2, &t, 1));
	EXPECT_STREQ("cursor for region 'a' kmod-3 would move back from 17 to 12",
		     spool_strerror(self->s));
	after = snap(self->s);
	EXPECT_TRUE(snap_equal(&before, &after));
	EXPECT_EQ(20u, part_rows(self->s, SRC, 3));
	cs = cursors(self->s);
	ASSERT_EQ(1u, cs.n);
	EXPECT_STREQ("a", cs.c[0].region);
	EXPECT_EQ(17u, cs.c[0].batch_id);

	/* Backwards within one call, against the call's own cursor. */
	c[0] = cursor("a", SRC, 3, 19);
	c[1] = cursor("a", SRC, 3, 18);
	EXPECT_EQ(-EINVAL, spool_ship_commit(self->s, c, 2, NULL, 0));
	EXPECT_STREQ("cursor for region 'a' kmod-3 would move back from 19 to 18",
		     spool_strerror(self->s));
	cs = cursors(self->s);
	EXPECT_EQ(17u, cs.c[0].batch_id);

	/* Past every batch ever spooled. */
	c[0] = cursor("a", BATCH_SRC_BPF, 3, 21);
	EXPECT_EQ(-EINVAL, spool_ship_commit(self->s, c, 1, NULL, 0));
	EXPECT_STREQ("cursor for region 'a' bpf-3 would move to 21, past the last batch 20",
		     spool_strerror(self->s));

	/* Names: 1..64 of [A-Za-z0-9_-]. */
	memset(name, 'x', sizeof(name));
	name[SPOOL_REGION_MAX] = '\0';
	c[0] = cursor("", SRC, 3, 18);
	memcpy(c[0].region, name, SPOOL_REGION_MAX + 1);
	EXPECT_EQ(0, spool_ship_commit(self->s, c, 1, NULL, 0));
	memset(c[0].region, 'x', sizeof(c[0].region));	/* no NUL */
	EXPECT_EQ(-EINVAL, spool_ship_commit(self->s, c, 1, NULL, 0));
	EXPECT_NE(NULL, strstr(spool_strerror(self->s), "bad region name"));
	{
		static const char *const bad[] = {
			"", "a.b", "a b", "a/b", "\xc3\xa9", "a'",
		};

		for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			c[0] = cursor(bad[i], SRC, 3, 18);
			EXPECT_EQ(-EINVAL, spool_ship_commit(self->s, c, 1,
							     NULL, 0))
				TH_LOG("region '%s'", bad[i]);
		}
	}
	c[0] = cursor("Zone_9-b", BATCH_SRC_MAX + 1, 3, 18);
	EXPECT_EQ(-EINVAL, spool_ship_commit(self->s, c, 1, NULL, 0));
	t.source = BATCH_SRC_MAX + 1;
	EXPECT_EQ(-EINVAL, spool_ship_commit(self->s, NULL, 0, &t, 1));
	EXPECT_EQ(-EINVAL, spool_ship_commit(self->s, NULL, 1, NULL, 0));
	EXPECT_EQ(-EINVAL, spool_ship_commit(self->s, NULL, 0, NULL, 1));
	after = snap(self->s);
	EXPECT_TRUE(snap_equal(&before, &after));
	EXPECT_EQ(2u, cursors(self->s).n);
	/* And the spool still writes. */
	c[0] = cursor("Zone_9-b", SRC, 3, 20);
	EXPECT_EQ(0, spool_ship_commit(self->s, c, 1, NULL, 0));
	EXPECT_EQ(0, commit1(self->s, 3, EPOCH, 21, 1, 0));
}

/* --- schema 2: rows, trims per partition ----------------------------- */

/* Field by field: padding is not part of the value. */
static int row_equal(const struct spool_batch_row *a,
		     const struct spool_batch_row *b)
{
	return a->id == b->id && a->source == b->source &&
	       a->partition == b->partition && a->epoch == b->epoch &&
	       a->first_seq == b->first_seq && a->count == b->count &&
	       a->bytes == b->bytes && a->created_ns == b->created_ns;
}

struct rows {
	struct spool_batch_row r[64];
	unsigned int n;
	int in_order;
	uint64_t last_id;
	int stop_at;		/* return 5 at the n-th row; 0: never */
	struct spool *fetch;	/* when set: spool_get_batch() each row */
	int fetched_ok;
};

static int rows_cb(const struct spool_batch_row *r, void *arg)
{
	struct rows *rs = arg;

	if (r->id <= rs->last_id)
		rs->in_order = 0;
	rs->last_id = r->id;
	if (rs->n < 64)
		rs->r[rs->n] = *r;
	rs->n++;
	if (rs->fetch) {
		struct spool_batch_row g;
		struct batch_meta m;
		void *body;
		size_t len;

		if (spool_get_batch(rs->fetch, r->id, &body, &len, &g) ||
		    len != r->bytes || batch_peek(body, len, &m) ||
		    m.first_seq != r->first_seq || !row_equal(&g, r))
			rs->fetched_ok = 0;
		free(body);
	}
	return rs->stop_at && rs->n == (unsigned int)rs->stop_at ? 5 : 0;
}

static struct rows rows(struct spool *s, uint64_t after, int one,
			unsigned int src, uint32_t part, unsigned int max)
{
	struct rows rs;

	memset(&rs, 0, sizeof(rs));
	rs.in_order = 1;
	rs.last_id = after;
	if (spool_foreach_row(s, after, one, src, part, max, rows_cb, &rs))
		rs.n = ~0u;
	return rs;
}

static uint64_t part_rows(struct spool *s, unsigned int src, uint32_t part)
{
	return rows(s, 0, 1, src, part, 0).n;
}

/* Run @sql with the sqlite3 shell; up to @n '|'-separated numbers. */
static int shell_nums(const char *path, const char *sql, uint64_t *v,
		      int n)
{
	char out[256], *p = out, *end;
	int pfd[2], st;
	ssize_t len = 0, r;
	pid_t pid;

	if (pipe(pfd))
		return -1;
	pid = fork();
	if (pid == 0) {
		dup2(pfd[1], 1);
		close(pfd[0]);
		execlp("sqlite3", "sqlite3", "-batch", path, sql, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	while (len < (ssize_t)sizeof(out) - 1 &&
	       (r = read(pfd[0], out + len, sizeof(out) - 1 - len)) > 0)
		len += r;
	close(pfd[0]);
	out[len] = '\0';
	if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) ||
	    WEXITSTATUS(st))
		return -1;
	for (int i = 0; i < n; i++) {
		v[i] = strtoull(p, &end, 10);	/* "" (NULL sum): 0 */
		p = *end == '|' ? end + 1 : end;
	}
	return 0;
}

/* spool_stats and every spool_part_stats equal SQL sums over the file. */
static int stats_match_sql(struct spool *s, const char *path)
{
	struct spool_part_stats ps;
	struct spool_stats st;
	uint64_t v[5] = { 0 };
	char sql[256];

	if (spool_stats(s, &st) ||
	    shell_nums(path, "SELECT count(*), sum(count), sum(bytes),"
		       " min(id), (SELECT created_ns FROM batches"
		       " ORDER BY id LIMIT 1) FROM batches", v, 5))
		return 0;
	if (st.batches != v[0] || st.records != v[1] || st.bytes != v[2] ||
	    st.first_id != v[3] || st.oldest_ns != v[4])
		return 0;
	if (shell_nums(path, "SELECT created_ns FROM batches"
		       " ORDER BY id DESC LIMIT 1", v, 1) ||
	    st.newest_ns != v[0])
		return 0;
	for (unsigned int i = 0; i < st.nparts; i++) {
		if (spool_part_stats(s, i, &ps))
			return 0;
		snprintf(sql, sizeof(sql),
			 "SELECT count(*), sum(count), sum(bytes) FROM batches"
			 " WHERE source = %u AND partition = %u", ps.source,
			 ps.partition);
		if (shell_nums(path, sql, v, 3) || ps.batches != v[0] ||
		    ps.records != v[1] || ps.bytes != v[2])
			return 0;
	}
	if (shell_nums(path, "SELECT count(*), sum(bytes) FROM dead_letters",
		       v, 2))
		return 0;
	return st.dead_letters == v[0] && st.dead_bytes == v[1];
}

/* And what a fresh read-only open computes from the tables. */
static int stats_match_reopen(struct spool *s, const char *path)
{
	struct spool_stats sa, sb;
	struct spool *r;
	int ok;

	if (open_spool(path, 0, 1, &r, NULL, 0))
		return 0;
	spool_set_max_bytes(r, spool_stats(s, &sa) ? 0 : sa.max_bytes);
	ok = stats_equal(s, r) && !spool_stats(s, &sa) &&
	     !spool_stats(r, &sb) && sa.dead_letters == sb.dead_letters &&
	     sa.dead_bytes == sb.dead_bytes;
	spool_close(r);
	return ok;
}

TEST_F(spool, ship_commit_trims_only_its_partitions_and_stats_stay_exact)
{
	struct spool_trim_part t[4];
	struct spool_cursor c;
	struct spool_stats st;
	uint64_t newest;
	struct rows rs;

	if (!have_sqlite3_shell())
		SKIP(return, "sqlite3 shell not installed");
	ASSERT_EQ(0, open_spool(self->path, 0, 0, &self->s, self->err,
				sizeof(self->err)));
	/* ids 1..40: partitions 0..2 of SRC round robin, and socket-1. */
	for (int i = 0; i < 40; i++) {
		unsigned int src = i % 4 == 3 ? BATCH_SRC_SOCKET : SRC;

		ASSERT_EQ(0, commit_src(self->s, src, src == SRC ? i % 4 : 1,
					1 + (src == SRC ? 2 : 3) * (i / 4),
					src == SRC ? 2 : 3));
	}
	ASSERT_TRUE(stats_match_sql(self->s, self->path));

	/* kmod-1 up to id 22 (its rows 2, 6, .., 22: six of them). */
	c = cursor("a", SRC, 1, 22);
	t[0] = (struct spool_trim_part){ .source = SRC, .partition = 1,
					 .upto_id = 22 };
	ASSERT_EQ(0, spool_ship_commit(self->s, &c, 1, t, 1));
	EXPECT_EQ(4u, part_rows(self->s, SRC, 1));
	rs = rows(self->s, 0, 1, SRC, 1, 0);
	EXPECT_EQ(26u, rs.r[0].id);
	EXPECT_EQ(10u, part_rows(self->s, SRC, 0));
	EXPECT_EQ(10u, part_rows(self->s, SRC, 2));
	EXPECT_EQ(10u, part_rows(self->s, BATCH_SRC_SOCKET, 1));
	ASSERT_EQ(0, spool_stats(self->s, &st));
	EXPECT_EQ(34u, st.batches);
	EXPECT_EQ(1u, st.first_id);		/* kmod-0 still holds id 1 */
	EXPECT_TRUE(stats_match_sql(self->s, self->path));
	EXPECT_TRUE(stats_match_reopen(self->s, self->path));

	/*
	 * Several in one call: the oldest partition (first_id moves), the
	 * same partition twice, one with nothing that old, one unknown,
	 * and socket-1 (same partition number as kmod-1).
	 */
	t[0] = (struct spool_trim_part){ .source = SRC, .partition = 0,
					 .upto_id = 9 };
	t[1] = (struct spool_trim_part){ .source = SRC, .partition = 0,
					 .upto_id = 13 };
	t[2] = (struct spool_trim_part){ .source = SRC, .partition = 9,
					 .upto_id = 40 };
	t[3] = (struct spool_trim_part){ .source = BATCH_SRC_SOCKET,
					 .partition = 1, .upto_id = 8 };
	ASSERT_EQ(0, spool_ship_commit(self->s, NULL, 0, t, 4));
	EXPECT_EQ(6u, part_rows(self->s, SRC, 0));
	EXPECT_EQ(4u, part_rows(self->s, SRC, 1));
	EXPECT_EQ(10u, part_rows(self->s, SRC, 2));
	EXPECT_EQ(8u, part_rows(self->s, BATCH_SRC_SOCKET, 1));
	ASSERT_EQ(0, spool_stats(self->s, &st));
	EXPECT_EQ(28u, st.batches);
	EXPECT_EQ(3u, st.first_id);		/* kmod-2's first */
	EXPECT_TRUE(stats_match_sql(self->s, self->path));
	EXPECT_TRUE(stats_match_reopen(self->s, self->path));

	/* The partition holding the newest row: newest_ns moves back. */
	ASSERT_EQ(0, spool_stats(self->s, &st));
	newest = st.newest_ns;
	t[0] = (struct spool_trim_part){ .source = BATCH_SRC_SOCKET,
					 .partition = 1, .upto_id = 40 };
	ASSERT_EQ(0, spool_ship_commit(self->s, NULL, 0, t, 1));
	ASSERT_EQ(0, spool_stats(self->s, &st));
	EXPECT_EQ(20u, st.batches);
	EXPECT_LT(st.newest_ns, newest);
	EXPECT_TRUE(stats_match_sql(self->s, self->path));
	EXPECT_TRUE(stats_match_reopen(self->s, self->path));

	/* Everything of every partition: empty, ids still go on. */
	for (unsigned int p = 0; p < 3; p++)
		t[p] = (struct spool_trim_part){ .source = SRC, .partition = p,
						 .upto_id = UINT64_MAX };
	t[3].upto_id = UINT64_MAX;
	ASSERT_EQ(0, spool_ship_commit(self->s, NULL, 0, t, 4));
	ASSERT_EQ(0, spool_stats(self->s, &st));
	EXPECT_EQ(0u, st.batches);
	EXPECT_EQ(0u, st.bytes);
	EXPECT_EQ(0u, st.first_id);
	EXPECT_EQ(0u, st.oldest_ns);
	EXPECT_EQ(40u, st.last_id);
	EXPECT_TRUE(stats_match_sql(self->s, self->path));
	EXPECT_TRUE(stats_match_reopen(self->s, self->path));
	ASSERT_EQ(0, commit_src(self->s, SRC, 0, 21, 2));
	ASSERT_EQ(0, spool_stats(self->s, &st));
	EXPECT_EQ(41u, st.first_id);
	EXPECT_TRUE(stats_match_sql(self->s, self->path));
}

TEST_F(spool, ship_commit_trim_frees_room_after_edquot_but_cursors_alone_do_not)
{
	struct spool_trim_part t = { .source = SRC, .partition = 0 };
	struct spool_cursor c;
	struct spool_stats st;
	uint64_t dead;
	size_t len;
	void *one = mk_batch(SRC, 0, EPOCH, 1, 10, 16, &len, NULL);

	ASSERT_NE(NULL, one);
	free(one);
	ASSERT_EQ(0, open_spool(self->path, 3 * len, 0, &self->s, self->err,
				sizeof(self->err)));
	ASSERT_EQ(0, commit_src(self->s, SRC, 0, 1, 10));
	ASSERT_EQ(0, commit_src(self->s, SRC, 1, 1, 10));
	ASSERT_EQ(0, commit_src(self->s, SRC, 0, 11, 10));
	EXPECT_EQ(-EDQUOT, commit_src(self->s, SRC, 1, 11, 10));

	c = cursor("a", SRC, 0, 3);
	ASSERT_EQ(0, spool_ship_commit(self->s, &c, 1, NULL, 0));
	EXPECT_EQ(-EDQUOT, commit_src(self->s, SRC, 1, 11, 10));
	/* A dead letter holds a copy, yet is outside the bound. */
	ASSERT_EQ(0, spool_dead_add(self->s, 2, "a", "test", 1, &dead));
	t.upto_id = 1;
	ASSERT_EQ(0, spool_ship_commit(self->s, NULL, 0, &t, 1));
	ASSERT_EQ(0, spool_stats(self->s, &st));
	EXPECT_EQ(2 * len, st.bytes);
	EXPECT_EQ(len, st.dead_bytes);
	EXPECT_EQ(0, commit_src(self->s, SRC, 1, 11, 10))
		TH_LOG("%s", spool_strerror(self->s));
	EXPECT_EQ(-EDQUOT, commit_src(self->s, SRC, 1, 21, 10));
	/* Another partition's trim frees room too. */
	t.partition = 1;
	t.upto_id = 2;
	ASSERT_EQ(0, spool_ship_commit(self->s, NULL, 0, &t, 1));
	EXPECT_EQ(0, commit_src(self->s, SRC, 1, 21, 10));
}

TEST_F(spool, foreach_row_filters_bounds_stops_and_reads_no_body)
{
	struct spool_batch_row r;
	struct rows rs;
	void *body;
	size_t len;

	ASSERT_EQ(0, open_spool(self->path, 0, 0, &self->s, self->err,
				sizeof(self->err)));
	EXPECT_EQ(0u, rows(self->s, 0, 0, 0, 0, 0).n);
	/* ids 1..30: kmod-0, kmod-1, socket-0 in turn. */
	for (int i = 0; i < 30; i++)
		ASSERT_EQ(0, commit_src(self->s,
					i % 3 == 2 ? BATCH_SRC_SOCKET : SRC,
					i % 3 == 1, 1 + 4 * (i / 3), 4));

	rs = rows(self->s, 0, 0, 0, 0, 0);
	EXPECT_EQ(30u, rs.n);
	EXPECT_TRUE(rs.in_order);
	EXPECT_EQ(30u, rs.last_id);
	rs = rows(self->s, 0, 1, SRC, 1, 0);
	ASSERT_EQ(10u, rs.n);
	EXPECT_TRUE(rs.in_order);
	for (unsigned int i = 0; i < 10; i++) {
		EXPECT_EQ(2 + 3 * i, rs.r[i].id);
		EXPECT_EQ((unsigned int)SRC, rs.r[i].source);
		EXPECT_EQ(1u, rs.r[i].partition);
		EXPECT_EQ(EPOCH, rs.r[i].epoch);
		EXPECT_EQ(1 + 4 * i, rs.r[i].first_seq);
		EXPECT_EQ(4u, rs.r[i].count);
	}
	rs = rows(self->s, 0, 1, BATCH_SRC_SOCKET, 0, 0);
	EXPECT_EQ(10u, rs.n);
	EXPECT_EQ(3u, rs.r[0].id);
	EXPECT_EQ(0u, rows(self->s, 0, 1, BATCH_SRC_SOCKET, 1, 0).n);
	/* after_id and max, with and without the filter. */
	rs = rows(self->s, 14, 1, SRC, 1, 3);
	ASSERT_EQ(3u, rs.n);
	EXPECT_EQ(17u, rs.r[0].id);
	EXPECT_EQ(23u, rs.r[2].id);
	rs = rows(self->s, 28, 0, 0, 0, 5);
	EXPECT_EQ(2u, rs.n);
	EXPECT_EQ(29u, rs.r[0].id);
	EXPECT_EQ(0u, rows(self->s, 30, 0, 0, 0, 0).n);
	EXPECT_EQ(0u, rows(self->s, UINT64_MAX, 0, 0, 0, 0).n);
	/* bytes and created_ns are the body's and the commit's. */
	ASSERT_EQ(0, spool_get_batch(self->s, 5, &body, &len, &r));
	rs = rows(self->s, 4, 0, 0, 0, 1);
	ASSERT_EQ(1u, rs.n);
	EXPECT_EQ(len, rs.r[0].bytes);
	EXPECT_TRUE(row_equal(&r, &rs.r[0]));
	EXPECT_GT(r.created_ns, 0u);
	free(body);

	/* A non-zero return stops the walk and is returned. */
	memset(&rs, 0, sizeof(rs));
	rs.stop_at = 4;
	EXPECT_EQ(5, spool_foreach_row(self->s, 0, 1, SRC, 0, 0, rows_cb,
				       &rs));
	EXPECT_EQ(4u, rs.n);
	EXPECT_EQ(10u, rs.last_id);
	/* The callback may fetch bodies. */
	memset(&rs, 0, sizeof(rs));
	rs.fetch = self->s;
	rs.fetched_ok = 1;
	EXPECT_EQ(0, spool_foreach_row(self->s, 0, 0, 0, 0, 0, rows_cb, &rs));
	EXPECT_EQ(30u, rs.n);
	EXPECT_TRUE(rs.fetched_ok);
	/* The statement was reset: the spool still writes. */
	EXPECT_EQ(0, commit_src(self->s, SRC, 0, 41, 1));
}

TEST_F(spool, get_batch_returns_the_committed_bytes_and_enoent_once_trimmed)
{
	struct spool_append a = { .position = 5 };
	struct spool_batch_row r;
	struct spool *ro;
	void *body = (void *)0x1;
	size_t len = 12345;
	struct spool_trim_part t = { .source = SRC, .partition = 4,
				     .upto_id = 1 };

	ASSERT_EQ(0, open_spool(self->path, 0, 0, &self->s, self->err,
				sizeof(self->err)));
	a.batch = mk_batch(SRC, 4, EPOCH, 1, 7, -1, &a.len, NULL);
	ASSERT_NE(NULL, a.batch);
	ASSERT_EQ(0, spool_commit(self->s, &a, 1, NULL, 0, NULL, 0));
	ASSERT_EQ(0, commit1(self->s, 4, EPOCH, 8, 1, 6));

	memset(&r, 0xa5, sizeof(r));
	ASSERT_EQ(0, spool_get_batch(self->s, 1, &body, &len, &r));
	ASSERT_EQ(a.len, len);
	EXPECT_EQ(0, memcmp(a.batch, body, len));
	EXPECT_EQ(1u, r.id);
	EXPECT_EQ((unsigned int)SRC, r.source);
	EXPECT_EQ(4u, r.partition);
	EXPECT_EQ(EPOCH, r.epoch);
	EXPECT_EQ(1u, r.first_seq);
	EXPECT_EQ(7u, r.count);
	EXPECT_EQ(a.len, r.bytes);
	free(body);
	/* The row alone; no row at all. */
	memset(&r, 0xa5, sizeof(r));
	ASSERT_EQ(0, spool_get_batch(self->s, 2, NULL, NULL, &r));
	EXPECT_EQ(8u, r.first_seq);
	ASSERT_EQ(0, spool_get_batch(self->s, 2, &body, &len, NULL));
	free(body);
	EXPECT_EQ(-EINVAL, spool_get_batch(self->s, 2, &body, NULL, NULL));
	EXPECT_EQ(-EINVAL, spool_get_batch(self->s, 2, NULL, &len, NULL));

	/* A reader reads bodies too. */
	ASSERT_EQ(0, open_spool(self->path, 0, 1, &ro, self->err,
				sizeof(self->err)));
	ASSERT_EQ(0, spool_get_batch(ro, 1, &body, &len, NULL));
	EXPECT_EQ(0, memcmp(a.batch, body, len));
	free(body);

	ASSERT_EQ(0, spool_ship_commit(self->s, NULL, 0, &t, 1));
	body = (void *)0x1;
	len = 12345;
	memset(&r, 0xa5, sizeof(r));
	EXPECT_EQ(-ENOENT, spool_get_batch(self->s, 1, &body, &len, &r));
	EXPECT_STREQ("spool holds no batch 1", spool_strerror(self->s));
	EXPECT_EQ(-ENOENT, spool_get_batch(ro, 1, &body, &len, &r));
	EXPECT_EQ(-ENOENT, spool_get_batch(self->s, 0, &body, &len, &r));
	EXPECT_EQ(-ENOENT, spool_get_batch(self->s, 3, &body, &len, &r));
	EXPECT_EQ(-ENOENT, spool_get_batch(self->s, UINT64_MAX, &body, &len,
					   &r));
	EXPECT_EQ((void *)0x1, body);
	EXPECT_EQ(12345u, len);
	EXPECT_EQ(POISON64, r.epoch);
	EXPECT_EQ(0, spool_get_batch(self->s, 2, NULL, NULL, NULL));
	spool_close(ro);
	free((void *)a.batch);
}

/* --- schema 2: dead letters ------------------------------------------ */

struct deads {
	struct spool_dead d[8];
	unsigned int n;
};

static int deads_cb(const struct spool_dead *d, void *arg)
{
	struct deads *ds = arg;

	if (ds->n < 8)
		ds->d[ds->n] = *d;
	ds->n++;
	return 0;
}

static struct deads deads(struct spool *s)
{
	struct deads ds;

	memset(&ds, 0, sizeof(ds));
	if (spool_foreach_dead(s, deads_cb, &ds))
		ds.n = ~0u;
	return ds;
}

TEST_F(spool, dead_letters_copy_row_and_body_and_have_enoent_and_einval_paths)
{
	char longtext[SPOOL_TEXT_MAX + 2];
	struct spool_batch_row row;
	struct spool_stats st;
	struct spool_dead d;
	struct deads ds;
	struct timespec ts;
	struct spool *ro;
	void *body, *orig;
	size_t len, olen;
	uint64_t id = POISON64, before;
	struct spool_trim_part t = { .source = SRC, .partition = 1,
				     .upto_id = 3 };

	memset(longtext, 'r', sizeof(longtext) - 1);
	longtext[sizeof(longtext) - 1] = '\0';
	clock_gettime(CLOCK_REALTIME, &ts);
	before = ts.tv_sec * 1000000000ull + ts.tv_nsec;
	ASSERT_EQ(0, open_spool(self->path, 0, 0, &self->s, self->err,
				sizeof(self->err)));
	for (int i = 0; i < 4; i++)
		ASSERT_EQ(0, commit1(self->s, 1, EPOCH, 1 + 3 * i, 3, 0));

	ASSERT_EQ(0, spool_dead_add(self->s, 2, "eu-west_1", "payload too big",
				    7, &id)) TH_LOG("%s", spool_strerror(self->s));
	EXPECT_EQ(1u, id);
	ASSERT_EQ(0, spool_dead_add(self->s, 4, "us", longtext + 1, 1, &id));
	EXPECT_EQ(2u, id);
	/* The batch itself stays. */
	ASSERT_EQ(0, spool_get_batch(self->s, 2, &orig, &olen, &row));
	ASSERT_EQ(0, spool_stats(self->s, &st));
	EXPECT_EQ(4u, st.batches);
	EXPECT_EQ(2u, st.dead_letters);

	memset(&d, 0xa5, sizeof(d));
	ASSERT_EQ(0, spool_dead_get(self->s, 1, &d, &body, &len));
	EXPECT_EQ(1u, d.id);
	EXPECT_STREQ("eu-west_1", d.region);
	EXPECT_TRUE(row_equal(&row, &d.batch));
	EXPECT_STREQ("payload too big", d.reason);
	EXPECT_EQ(7u, d.attempts);
	EXPECT_GE(d.at_ns, before);
	ASSERT_EQ(olen, len);
	EXPECT_EQ(0, memcmp(orig, body, len));
	EXPECT_EQ(2 * len, st.dead_bytes);	/* two batches alike */
	free(body);
	free(orig);

	ds = deads(self->s);
	ASSERT_EQ(2u, ds.n);
	EXPECT_EQ(1u, ds.d[0].id);
	EXPECT_EQ(2u, ds.d[1].id);
	EXPECT_STREQ("us", ds.d[1].region);
	EXPECT_EQ(4u, ds.d[1].batch.id);
	EXPECT_EQ(10u, ds.d[1].batch.first_seq);
	EXPECT_STREQ(longtext + 1, ds.d[1].reason);

	/* Gone batches and unknown dead letters: ENOENT, outs untouched. */
	ASSERT_EQ(0, spool_ship_commit(self->s, NULL, 0, &t, 1));
	id = POISON64;
	EXPECT_EQ(-ENOENT, spool_dead_add(self->s, 2, "a", "r", 1, &id));
	EXPECT_STREQ("spool holds no batch 2", spool_strerror(self->s));
	EXPECT_EQ(-ENOENT, spool_dead_add(self->s, 0, "a", "r", 1, &id));
	EXPECT_EQ(-ENOENT, spool_dead_add(self->s, 99, "a", "r", 1, &id));
	EXPECT_EQ(POISON64, id);
	memset(&d, 0xa5, sizeof(d));
	body = (void *)0x1;
	EXPECT_EQ(-ENOENT, spool_dead_get(self->s, 3, &d, &body, &len));
	EXPECT_STREQ("spool holds no dead letter 3", spool_strerror(self->s));
	EXPECT_EQ(-ENOENT, spool_dead_get(self->s, 0, &d, &body, &len));
	EXPECT_EQ(POISON64, d.id);
	EXPECT_EQ((void *)0x1, body);
	EXPECT_EQ(-ENOENT, spool_dead_delete(self->s, 3));
	EXPECT_EQ(-ENOENT, spool_dead_delete(self->s, 0));
	/* Bad names, reasons and arguments: EINVAL. */
	EXPECT_EQ(-EINVAL, spool_dead_add(self->s, 4, "a.b", "r", 1, &id));
	EXPECT_STREQ("dead letter: bad region name 'a.b' (1..64 of [A-Za-z0-9_-])",
		     spool_strerror(self->s));
	EXPECT_EQ(-EINVAL, spool_dead_add(self->s, 4, "", "r", 1, &id));
	EXPECT_EQ(-EINVAL, spool_dead_add(self->s, 4, NULL, "r", 1, &id));
	EXPECT_EQ(-EINVAL, spool_dead_add(self->s, 4, "a", "", 1, &id));
	EXPECT_EQ(-EINVAL, spool_dead_add(self->s, 4, "a", NULL, 1, &id));
	EXPECT_EQ(-EINVAL, spool_dead_add(self->s, 4, "a", longtext, 1, &id));
	EXPECT_EQ(-EINVAL, spool_dead_add(self->s, 4, "a", "r", 1, NULL));
	EXPECT_EQ(-EINVAL, spool_dead_get(self->s, 1, &d, &body, NULL));
	EXPECT_EQ(POISON64, id);
	EXPECT_EQ(2u, deads(self->s).n);
	/* The dead letter outlives its batch. */
	ASSERT_EQ(0, spool_dead_get(self->s, 1, NULL, &body, &len));
	EXPECT_EQ(olen, len);
	free(body);

	/* A reader lists and reads; it cannot add or delete. */
	ASSERT_EQ(0, open_spool(self->path, 0, 1, &ro, self->err,
				sizeof(self->err)));
	EXPECT_EQ(2u, deads(ro).n);
	ASSERT_EQ(0, spool_dead_get(ro, 2, &d, NULL, NULL));
	EXPECT_EQ(4u, d.batch.id);
	EXPECT_EQ(-EROFS, spool_dead_add(ro, 4, "a", "r", 1, &id));
	EXPECT_EQ(-EROFS, spool_dead_delete(ro, 1));
	ASSERT_EQ(0, spool_stats(ro, &st));
	EXPECT_EQ(2u, st.dead_letters);
	spool_close(ro);

	/* Delete; ids are never reused. */
	ASSERT_EQ(0, spool_dead_delete(self->s, 2));
	EXPECT_EQ(-ENOENT, spool_dead_delete(self->s, 2));
	EXPECT_EQ(-ENOENT, spool_dead_get(self->s, 2, NULL, NULL, NULL));
	ASSERT_EQ(0, spool_dead_add(self->s, 4, "us", "again", 2, &id));
	EXPECT_EQ(3u, id);
	ds = deads(self->s);
	ASSERT_EQ(2u, ds.n);
	EXPECT_EQ(1u, ds.d[0].id);
	EXPECT_EQ(3u, ds.d[1].id);
	ASSERT_EQ(0, spool_stats(self->s, &st));
	EXPECT_EQ(2u, st.dead_letters);
	EXPECT_EQ(2 * olen, st.dead_bytes);
	EXPECT_TRUE(stats_match_reopen(self->s, self->path));
	ASSERT_EQ(0, spool_dead_delete(self->s, 1));
	ASSERT_EQ(0, spool_dead_delete(self->s, 3));
	ASSERT_EQ(0, spool_stats(self->s, &st));
	EXPECT_EQ(0u, st.dead_letters);
	EXPECT_EQ(0u, st.dead_bytes);
	EXPECT_EQ(0u, deads(self->s).n);
	EXPECT_TRUE(stats_match_reopen(self->s, self->path));
}

/* --- schema 2: kill -9 during ship commits --------------------------- */

#define SHIP_PARTS	3
#define SHIP_REGIONS	2

static const char *const ship_region[SHIP_REGIONS] = { "east", "west" };

/* What the child reports after each ship commit returned 0. */
struct ship_ack {
	uint32_t region;
	uint32_t partition;
	uint64_t batch_id;
};

/* The lowest cursor of each partition over the regions; 0: none. */
static void ship_min(const struct spool_cursor cur[SHIP_REGIONS][SHIP_PARTS],
		     uint32_t p, uint64_t *id, uint64_t *seq)
{
	*id = UINT64_MAX;
	*seq = 0;
	for (int r = 0; r < SHIP_REGIONS; r++)
		if (cur[r][p].batch_id < *id) {
			*id = cur[r][p].batch_id;
			*seq = cur[r][p].last_seq;
		}
}

struct ship_load {
	struct spool_cursor cur[SHIP_REGIONS][SHIP_PARTS];
	int bad;
};

static int ship_load_cb(const struct spool_cursor *c, void *arg)
{
	struct ship_load *l = arg;

	for (int r = 0; r < SHIP_REGIONS; r++)
		if (!strcmp(c->region, ship_region[r]) && c->source == SRC &&
		    c->partition < SHIP_PARTS) {
			l->cur[r][c->partition] = *c;
			return 0;
		}
	l->bad = 1;
	return 0;
}

/*
 * The child: a drain and a shipper in one loop.  Commit a batch to a
 * random partition (an EDQUOT is fine: the spool is small); then move one
 * or both regions' cursors of a random partition over the next 1..4 rows
 * and, in the same ship commit, trim the partition up to its lowest
 * cursor.  Report each cursor moved on @ackfd after the commit returned.
 */
static void __attribute__((noreturn)) ship_child(const char *path, int ackfd,
						 unsigned int seed)
{
	struct spool_opts o = { .path = path, .max_bytes = 48 << 10 };
	struct spool_checkpoint cp[SHIP_PARTS];
	struct ship_load l;
	struct spool *s;

	srand(seed);
	if (spool_open(&o, &s, NULL, 0))
		_exit(10);
	for (uint32_t p = 0; p < SHIP_PARTS; p++)
		if (spool_get_checkpoint(s, SRC, p, &cp[p]))
			cp[p] = (struct spool_checkpoint){ .epoch = EPOCH };
	memset(&l, 0, sizeof(l));
	if (spool_foreach_cursor(s, ship_load_cb, &l) || l.bad)
		_exit(11);

	for (;;) {
		uint32_t p = rand() % SHIP_PARTS, count = 1 + rand() % 40;
		struct spool_cursor c[SHIP_REGIONS];
		struct ship_ack acks[SHIP_REGIONS];
		struct spool_trim_part t = { .source = SRC };
		struct spool_append a = { 0 };
		uint64_t old_min, new_min, seq;
		unsigned int nc = 0;
		int ret;

		a.batch = mk_batch(SRC, p, cp[p].epoch, cp[p].last_seq + 1,
				   count, -1, &a.len, NULL);
		a.position = cp[p].position + 1;
		ret = spool_commit(s, &a, 1, NULL, 0, NULL, 0);
		free((void *)a.batch);
		if (ret && ret != -EDQUOT)
			_exit(12);
		if (!ret) {
			cp[p].last_seq += count;
			cp[p].position++;
		}

		p = rand() % SHIP_PARTS;
		t.partition = p;
		ship_min(l.cur, p, &old_min, &seq);
		for (int r = 0; r < SHIP_REGIONS; r++) {
			struct rows rs;

			if (rand() % 2 && !(r == SHIP_REGIONS - 1 && !nc))
				continue;
			rs = rows(s, l.cur[r][p].batch_id, 1, SRC, p,
				  1 + rand() % 4);
			if (rs.n == ~0u)
				_exit(13);
			if (!rs.n)
				continue;
			c[nc] = l.cur[r][p];
			snprintf(c[nc].region, sizeof(c[nc].region), "%s",
				 ship_region[r]);
			c[nc].source = SRC;
			c[nc].partition = p;
			c[nc].batch_id = rs.r[rs.n - 1].id;
			c[nc].epoch = rs.r[rs.n - 1].epoch;
			c[nc].last_seq = rs.r[rs.n - 1].first_seq +
					 rs.r[rs.n - 1].count - 1;
			c[nc].stream_seq++;
			c[nc].updated_ns = 0;
			acks[nc] = (struct ship_ack){ .region = r,
						      .partition = p,
						      .batch_id = c[nc].batch_id };
			nc++;
		}
		if (!nc)
			continue;
		{
			struct spool_cursor next[SHIP_REGIONS][SHIP_PARTS];

			memcpy(next, l.cur, sizeof(next));
			for (unsigned int i = 0; i < nc; i++)
				next[acks[i].region][p] = c[i];
			ship_min(next, p, &new_min, &seq);
			t.upto_id = new_min;
			if (spool_ship_commit(s, c, nc, &t,
					      new_min > old_min ? 1 : 0))
				_exit(14);
			memcpy(l.cur, next, sizeof(next));
		}
		if (write(ackfd, acks, nc * sizeof(acks[0])) < 0)
			_exit(15);
	}
}

static void read_ship_acks(int fd, struct ship_ack **acks, size_t *n,
			   size_t *cap)
{
	struct ship_ack buf[256];
	ssize_t r;

	while ((r = read(fd, buf, sizeof(buf))) > 0) {
		size_t k = r / sizeof(buf[0]);

		if (*n + k > *cap) {
			*cap = (*n + k) * 2;
			*acks = realloc(*acks, *cap * sizeof(**acks));
		}
		memcpy(*acks + *n, buf, k * sizeof(buf[0]));
		*n += k;
	}
}

/*
 * After a kill: a partition's rows start right after its lowest cursor
 * (nothing at or below it is left: the trim came with the cursor; nothing
 * above it is missing: no trim came without one), run gap-free to its
 * checkpoint, and every cursor above the lowest still names its row.
 * Returns NULL or what is wrong.
 */
static const char *ship_verify(struct spool *s, const struct ship_load *l,
			       uint64_t *trimmed)
{
	struct spool_stats st;
	uint64_t batches = 0, records = 0, bytes = 0;

	for (uint32_t p = 0; p < SHIP_PARTS; p++) {
		struct spool_checkpoint cp = { 0 };
		struct spool_part_stats ps;
		uint64_t min_id, min_seq, seq, pb = 0, pr = 0, py = 0;
		uint64_t after = 0;
		struct rows rs;

		ship_min(l->cur, p, &min_id, &min_seq);
		spool_get_checkpoint(s, SRC, p, &cp);
		seq = min_seq;
		do {
			rs = rows(s, after, 1, SRC, p, 64);
			if (rs.n == ~0u)
				return "foreach_row failed";
			for (unsigned int i = 0; i < rs.n; i++) {
				/* A cursor moved without its trim. */
				if (rs.r[i].id <= min_id)
					return "row at or below the lowest cursor";
				/* A trim without its cursor (or a gap). */
				if (rs.r[i].first_seq != seq + 1)
					return "rows miss seqs after the lowest cursor";
				seq += rs.r[i].count;
				pb++;
				pr += rs.r[i].count;
				py += rs.r[i].bytes;
			}
			after = rs.last_id;
		} while (rs.n == 64);
		if (seq != cp.last_seq)
			return "rows do not reach the checkpoint";
		for (int r = 0; r < SHIP_REGIONS; r++) {
			const struct spool_cursor *c = &l->cur[r][p];
			struct spool_batch_row row;
			int ret;

			if (c->last_seq > cp.last_seq)
				return "cursor past the checkpoint";
			ret = spool_get_batch(s, c->batch_id, NULL, NULL, &row);
			if (c->batch_id == min_id && ret != -ENOENT &&
			    c->batch_id)
				return "the lowest cursor's row was not trimmed";
			if (c->batch_id > min_id &&
			    (ret || row.partition != p ||
			     row.first_seq + row.count - 1 != c->last_seq))
				return "a cursor does not name its row";
		}
		for (unsigned int i = 0; !spool_part_stats(s, i, &ps); i++)
			if (ps.source == SRC && ps.partition == p &&
			    (ps.batches != pb || ps.records != pr ||
			     ps.bytes != py))
				return "partition stats differ from the rows";
		batches += pb;
		records += pr;
		bytes += py;
		*trimmed += min_seq;
	}
	if (spool_stats(s, &st) || st.batches != batches ||
	    st.records != records || st.bytes != bytes)
		return "stats differ from the rows";
	return NULL;
}

TEST_F_TIMEOUT(spool, kill9_during_ship_commits_never_moves_a_cursor_without_its_trim, 300)
{
	const char *env = getenv("SPOOL_TEST_SEED");
	unsigned int seed = env ? strtoul(env, NULL, 0) : (unsigned int)time(NULL);
	struct ship_ack *acks = NULL;
	size_t nacks = 0, cap = 0;
	uint64_t trimmed = 0;
	int pfd[2];

	TH_LOG("seed %u", seed);
	srand(seed);
	ASSERT_EQ(0, pipe2(pfd, O_CLOEXEC));
	ASSERT_EQ(0, fcntl(pfd[0], F_SETFL, O_NONBLOCK));

	for (int iter = 0; iter < 25; iter++) {
		uint64_t dead_ms = iter == 0 ? rand() % 5 : 5 + rand() % 150;
		unsigned int child_seed = rand();
		struct timespec t0, t;
		struct ship_load l;
		const char *bad;
		int status;
		pid_t pid;

		pid = fork();
		ASSERT_GE(pid, 0);
		if (pid == 0) {
			close(pfd[0]);
			ship_child(self->path, pfd[1], child_seed);
		}
		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (;;) {
			struct pollfd pf = { .fd = pfd[0], .events = POLLIN };
			uint64_t el;

			clock_gettime(CLOCK_MONOTONIC, &t);
			el = (t.tv_sec - t0.tv_sec) * 1000 +
			     (t.tv_nsec - t0.tv_nsec) / 1000000;
			if (el >= dead_ms)
				break;
			poll(&pf, 1, dead_ms - el);
			read_ship_acks(pfd[0], &acks, &nacks, &cap);
		}
		ASSERT_EQ(0, kill(pid, SIGKILL));
		ASSERT_EQ(pid, waitpid(pid, &status, 0));
		ASSERT_TRUE(WIFSIGNALED(status))
			TH_LOG("iteration %d: child exited with %d", iter,
			       WEXITSTATUS(status));
		read_ship_acks(pfd[0], &acks, &nacks, &cap);

		ASSERT_EQ(0, open_spool(self->path, 48 << 10, 0, &self->s,
					self->err, sizeof(self->err)))
			TH_LOG("iteration %d: %s", iter, self->err);
		memset(&l, 0, sizeof(l));
		ASSERT_EQ(0, spool_foreach_cursor(self->s, ship_load_cb, &l));
		ASSERT_FALSE(l.bad);
		trimmed = 0;
		bad = ship_verify(self->s, &l, &trimmed);
		ASSERT_EQ(NULL, bad) TH_LOG("iteration %d: %s", iter, bad);
		/* Every acknowledged cursor move is durable. */
		for (size_t i = 0; i < nacks; i++) {
			ASSERT_GE(l.cur[acks[i].region][acks[i].partition].batch_id,
				  acks[i].batch_id)
				TH_LOG("iteration %d: ack %zu lost", iter, i);
		}
		spool_close(self->s);
		self->s = NULL;
	}
	TH_LOG("%zu cursor moves acknowledged, %llu records shipped and trimmed",
	       nacks, (unsigned long long)trimmed);
	EXPECT_GT(nacks, 30u);
	EXPECT_GT(trimmed, 0u);
	close(pfd[0]);
	close(pfd[1]);
	free(acks);
}

TEST_HARNESS_MAIN
