// SPDX-License-Identifier: GPL-2.0-only
/*
 * bad_input_test: evringd against files and peers that are wrong.
 *
 *  - A spool that is damaged (a garbled page, truncated), foreign (another
 *    program's SQLite database) or not a database at all: evringd exits 1
 *    with a message naming the file and the problem, and the file is byte
 *    for byte what it was.  A bit flipped inside a spooled batch is not
 *    SQLite's to find: the batch checksum catches it when the batch is read.
 *  - A configuration file with an unknown key or a bad value: exit 1 with
 *    FILE:LINE, and no spool is created.
 *  - Garbage on the control socket: error replies, the connection (where
 *    the protocol says so) and the daemon keep working and draining.
 *  - Garbage on the ingest socket: the offending client gets
 *    EVRING_SOCK_ERROR with the errno and is closed; every other client's
 *    events are all spooled.
 *
 * No module needed (the device source is off); runs on the host or in the
 * VM.  EVRING_E2E_SEED replays the random choices.
 */
#include <sqlite3.h>
#include "e2e.h"
#include "kselftest_harness.h"

FIXTURE(bad) {
	struct e2e_env e;
	struct e2e_track *t;
};

FIXTURE_SETUP(bad)
{
	ASSERT_EQ(0, e2e_env_init(&self->e, "bad"));
}

FIXTURE_TEARDOWN(bad)
{
	if (self->t)
		self->t->stop = 1;
	if (self->e.pid > 0)
		e2e_daemon_kill(&self->e, SIGKILL);
	e2e_reap_all();
	e2e_env_fini(&self->e);
	e2e_track_free(self->t);
}

static const char *const no_device[] = { "sources.device=", NULL };

/*
 * Start evringd on @e and wait for it to exit by itself (it must refuse to
 * start).  Returns its exit status, or -ETIMEDOUT.
 */
static int daemon_refuses(struct e2e_env *e, const char *const *sets)
{
	int ret = e2e_daemon_start(e, sets ? sets : no_device);

	if (ret)
		return ret;
	ret = e2e_wait(e->pid, 30000);
	if (ret == -ETIMEDOUT)
		return ret;
	e->pid = 0;
	e->last_status = ret;
	return ret;
}

/* Fill @e's spool through the socket with @n events; a clean stop. */
static int make_spool(struct e2e_env *e, struct e2e_track *t, uint64_t n)
{
	struct evring_writer *w;
	uint8_t buf[512];
	int ret = e2e_daemon_up(e, no_device, 30000);

	if (ret)
		return ret;
	ret = evring_writer_open("/nonexistent/evring", e->ingest, &w);
	if (ret)
		return ret;
	t->w[0].pid = getpid();
	for (uint64_t c = 0; c < n && !ret; c++) {
		uint32_t len = e2e_ev_len(0, c, 24, sizeof(buf));

		e2e_ev_make(buf, 0, c, len);
		e2e_mark(t, 0, c, E2E_SENT);
		ret = evring_writer_write(w, buf, len);
		t->w[0].next = c + 1;
		if (!ret && (c % 50 == 49 || c + 1 == n))
			ret = evring_writer_sync(w, 30000);
		if (!ret)
			e2e_sock_acked(t, 0, 0, w);
	}
	evring_writer_close(w);
	if (ret)
		return ret;
	return e2e_daemon_stop(e) ? -EIO : 0;
}

/* The SQLite page size of the file in @buf (header bytes 16..17). */
static size_t page_size(const uint8_t *buf)
{
	size_t ps = (size_t)buf[16] << 8 | buf[17];

	return ps == 1 ? 65536 : ps;
}

/*
 * The first b-tree page at or after the middle of the file: its first byte
 * is a b-tree page type (overflow and freelist pages start with a page
 * number, whose top byte is 0 in a file this small).
 */
static long middle_btree_page(const uint8_t *buf, size_t len)
{
	size_t ps = page_size(buf), npages = len / ps;

	for (size_t i = npages / 2; i < npages; i++) {
		uint8_t type = buf[i * ps];

		if (i && (type == 0x02 || type == 0x05 || type == 0x0a ||
			  type == 0x0d))
			return (long)i;
	}
	return -1;
}

static bool file_is(const char *path, const void *want, size_t len)
{
	size_t have;
	char *buf = e2e_slurp(path, &have);
	bool same = buf && have == len && !memcmp(buf, want, len);

	free(buf);
	return same;
}

/* The daemon's log must name @path and say @what. */
#define ASSERT_LOG_SAYS(e, path, what) do {				\
	char *log_ = e2e_slurp((e)->log, NULL);				\
	bool ok_ = log_ && strstr(log_, (path)) &&			\
		    strstr(log_, (what));				\
	if (!ok_)							\
		TH_LOG("log does not name '%s' with '%s':\n%s", (path),	\
		       (what), log_ ? log_ : "(none)");			\
	free(log_);							\
	ASSERT_TRUE(ok_);						\
} while (0)

TEST_F_TIMEOUT(bad, corrupt_spool_page_exits_1_naming_the_path_and_stays_byte_identical, 120)
{
	char wal[160];
	uint8_t *orig;
	size_t len, ps;
	long page;

	self->t = e2e_track_new(1, 1u << 16);
	ASSERT_NE(NULL, self->t);
	ASSERT_EQ(0, make_spool(&self->e, self->t, 3000));
	snprintf(wal, sizeof(wal), "%s-wal", self->e.spool);
	ASSERT_NE(0, access(wal, F_OK)) TH_LOG("a clean stop leaves no WAL");

	orig = (uint8_t *)e2e_slurp(self->e.spool, &len);
	ASSERT_NE(NULL, orig);
	ps = page_size(orig);
	page = middle_btree_page(orig, len);
	ASSERT_LT(0, page) TH_LOG("no b-tree page past the middle of %zu bytes", len);
	e2e_msg("spool of %zu bytes, %zu pages of %zu; garbling page %ld",
		len, len / ps, ps, page + 1);
	/* An impossible page type, then 0xa5 over the cell pointers. */
	memset(orig + page * ps, 0xa5, ps < 512 ? ps : 512);
	ASSERT_EQ(0, e2e_write_file(self->e.spool, orig, len, 0600));

	ASSERT_EQ(1, daemon_refuses(&self->e, NULL));
	ASSERT_LOG_SAYS(&self->e, self->e.spool, "corrupt spool");
	EXPECT_TRUE(file_is(self->e.spool, orig, len));
	free(orig);
}

TEST_F_TIMEOUT(bad, truncated_spool_exits_1_naming_the_path_and_stays_byte_identical, 120)
{
	uint8_t *orig;
	size_t len, ps;

	self->t = e2e_track_new(1, 1u << 16);
	ASSERT_NE(NULL, self->t);
	ASSERT_EQ(0, make_spool(&self->e, self->t, 3000));
	orig = (uint8_t *)e2e_slurp(self->e.spool, &len);
	ASSERT_NE(NULL, orig);
	ps = page_size(orig);
	len = len / ps / 2 * ps;
	ASSERT_EQ(0, truncate(self->e.spool, len));

	ASSERT_EQ(1, daemon_refuses(&self->e, NULL));
	/* Found before quick_check runs, by SQLite itself. */
	ASSERT_LOG_SAYS(&self->e, self->e.spool,
			"database disk image is malformed");
	EXPECT_TRUE(file_is(self->e.spool, orig, len));
	free(orig);
}

/* Where the batch magic first occurs at or after @from, or -1. */
static long find_magic(const uint8_t *buf, size_t len, size_t from)
{
	for (size_t i = from; i + 4 <= len; i++)
		if (!memcmp(buf + i, BATCH_MAGIC, 4))
			return (long)i;
	return -1;
}

TEST_F_TIMEOUT(bad, bitflip_in_a_spooled_batch_is_caught_by_its_checksum_on_read, 120)
{
	struct e2e_spool sp = { 0 };
	struct e2e_verdict v;
	uint8_t *buf;
	size_t len;
	long at;

	self->t = e2e_track_new(1, 1u << 16);
	ASSERT_NE(NULL, self->t);
	ASSERT_EQ(0, make_spool(&self->e, self->t, 3000));
	buf = (uint8_t *)e2e_slurp(self->e.spool, &len);
	ASSERT_NE(NULL, buf);
	at = find_magic(buf, len, len / 2);
	ASSERT_LT(0, at);
	/* Inside the first record header of that batch. */
	buf[at + BATCH_HDR_LEN + 9] ^= 0x10;
	ASSERT_EQ(0, e2e_write_file(self->e.spool, buf, len, 0600));
	free(buf);

	/* SQLite's structure is intact: the daemon starts and runs. */
	ASSERT_EQ(0, e2e_daemon_up(&self->e, no_device, 30000));
	ASSERT_EQ(0, e2e_daemon_stop(&self->e));

	ASSERT_EQ(0, e2e_spool_read(&sp, self->e.spool));
	e2e_msg("%s", sp.why);
	EXPECT_EQ(1u, sp.bad_batches);
	EXPECT_NE(NULL, strstr(sp.why, strerror(EBADMSG)));
	EXPECT_EQ(0u, sp.bad_events);
	ASSERT_EQ(0, e2e_check_writers(&sp, self->t, true, &v));
	/* The flipped batch's events are the only ones missing. */
	EXPECT_LT(0u, v.lost);
	EXPECT_EQ(3000u, v.acked + v.lost);
	EXPECT_EQ(0u, v.doubled + v.unexpected + v.disordered);
	e2e_spool_free(&sp);
}

TEST_F_TIMEOUT(bad, foreign_sqlite_file_exits_1_not_an_evring_spool_and_stays_identical, 60)
{
	sqlite3 *db;
	char *orig;
	size_t len;

	ASSERT_EQ(SQLITE_OK, sqlite3_open(self->e.spool, &db));
	ASSERT_EQ(SQLITE_OK, sqlite3_exec(db,
		"CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER);"
		"INSERT INTO accounts VALUES (1, 100), (2, 250);",
		NULL, NULL, NULL));
	sqlite3_close(db);
	chmod(self->e.spool, 0600);
	orig = e2e_slurp(self->e.spool, &len);
	ASSERT_NE(NULL, orig);

	ASSERT_EQ(1, daemon_refuses(&self->e, NULL));
	ASSERT_LOG_SAYS(&self->e, self->e.spool, "is not an evring spool");
	EXPECT_TRUE(file_is(self->e.spool, orig, len));
	free(orig);
}

TEST_F_TIMEOUT(bad, non_sqlite_file_exits_1_not_an_sqlite_database_and_stays_identical, 60)
{
	char text[8192];

	for (size_t i = 0; i < sizeof(text); i++)
		text[i] = "payment 42 settled\n"[i % 19];
	ASSERT_EQ(0, e2e_write_file(self->e.spool, text, sizeof(text), 0600));

	ASSERT_EQ(1, daemon_refuses(&self->e, NULL));
	ASSERT_LOG_SAYS(&self->e, self->e.spool,
			"is not an evring spool: not an SQLite database");
	EXPECT_TRUE(file_is(self->e.spool, text, sizeof(text)));
}

/* Write @conf as the config file; evringd must exit 1 saying @want. */
static int config_refused(struct e2e_env *e, const char *conf,
			  const char *const *sets, const char *want,
			  char *log, size_t loglen)
{
	char *l;
	int ret;

	truncate(e->log, 0);
	ret = e2e_write_file(e->conf, conf, strlen(conf), 0600);
	if (ret)
		return ret;
	ret = daemon_refuses(e, sets);
	l = e2e_slurp(e->log, NULL);
	snprintf(log, loglen, "%s", l ? l : "");
	free(l);
	if (ret != 1)
		return ret < 0 ? ret : -ECHILD;
	return strstr(log, want) ? 0 : -ENOMSG;
}

TEST_F_TIMEOUT(bad, config_unknown_key_exits_1_with_file_line_and_creates_no_spool, 60)
{
	char want[256], log[4096];

	snprintf(want, sizeof(want),
		 "bad configuration: %s:3: unknown key 'max_byte' in [spool]",
		 self->e.conf);
	ASSERT_EQ(0, config_refused(&self->e,
		"# evringd\n[spool]\nmax_byte = 1M\n", NULL, want, log,
		sizeof(log))) TH_LOG("want '%s', log:\n%s", want, log);

	snprintf(want, sizeof(want),
		 "bad configuration: %s:2: unknown section [sourcs]",
		 self->e.conf);
	ASSERT_EQ(0, config_refused(&self->e, "\n[sourcs]\ndevice =\n", NULL,
				    want, log, sizeof(log)))
		TH_LOG("want '%s', log:\n%s", want, log);

	ASSERT_EQ(0, config_refused(&self->e, "",
		(const char *[]){ "sources.device=", "spool.paht=/tmp/x", NULL },
		"bad configuration: --set: unknown key 'spool.paht'", log,
		sizeof(log))) TH_LOG("log:\n%s", log);
	EXPECT_NE(0, access(self->e.spool, F_OK));
	EXPECT_NE(0, access(self->e.ctl, F_OK));
}

TEST_F_TIMEOUT(bad, config_bad_value_exits_1_with_file_line_and_creates_no_spool, 60)
{
	static const struct {
		const char *conf;
		const char *want;	/* after "FILE:" */
	} cases[] = {
		{ "[spool]\nmax_bytes = 1GB\n",
		  "2: bad value '1GB' for spool.max_bytes: bad size suffix 'GB' (use K, M, G or T)" },
		{ "[drain]\nbatch_ms = 5\nbatch_records = 0\n",
		  "3: bad value '0' for drain.batch_records: out of range (1..1048576)" },
		{ "[spool]\nsynchronous = off\n",
		  "2: bad value 'off' for spool.synchronous: expected 'full' or 'normal'" },
		{ "[spool]\nmax_bytes = 512K\n",
		  "2: bad value '512K' for spool.max_bytes" },
		{ "[drain]\nbatch_ms = 1\nbatch_ms = 2\n",
		  "3: duplicate key 'batch_ms' in [drain] (first set on line 2)" },
	};
	char want[512], log[4096];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(want, sizeof(want), "bad configuration: %s:%s",
			 self->e.conf, cases[i].want);
		ASSERT_EQ(0, config_refused(&self->e, cases[i].conf, NULL,
					    want, log, sizeof(log)))
			TH_LOG("case %zu: want '%s', log:\n%s", i, want, log);
	}
	ASSERT_EQ(0, config_refused(&self->e, "",
		(const char *[]){ "sources.device=", "drain.batch_ms=-1", NULL },
		"bad configuration: --set: bad value '-1' for drain.batch_ms",
		log, sizeof(log))) TH_LOG("log:\n%s", log);
	EXPECT_NE(0, access(self->e.spool, F_OK));
}

/* --- the control socket ------------------------------------------------- */

static int ctl_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 10 };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		close(fd);
		return -errno;
	}
	return fd;
}

/*
 * Send @len bytes, read one response line into @out.  Returns the line's
 * length, 0 when the daemon closed instead of answering, or -errno.
 */
static ssize_t ctl_exchange(int fd, const void *req, size_t len, char *out,
			    size_t outlen)
{
	size_t have = 0;

	if (len && send(fd, req, len, MSG_NOSIGNAL) != (ssize_t)len)
		return -errno;
	while (have < outlen - 1) {
		ssize_t n = recv(fd, out + have, 1, 0);

		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		if (out[have++] == '\n')
			break;
	}
	out[have] = '\0';
	return have;
}

/* ctl_exchange() of a NUL-terminated request. */
static ssize_t ctl_req(int fd, const char *req, char *out, size_t outlen)
{
	return ctl_exchange(fd, req, strlen(req), out, outlen);
}

/* @line must be {"ok":false,"error":"<starts with @prefix>..."}. */
static bool is_error(const char *line, const char *prefix)
{
	json_t *j = json_loads(line, JSON_DISABLE_EOF_CHECK, NULL);
	bool ok = j && json_is_false(json_object_get(j, "ok")) &&
		  !strncmp(e2e_jstr(j, "error"), prefix, strlen(prefix));

	json_decref(j);
	return ok;
}

static bool is_ok(const char *line, const char *cmd)
{
	json_t *j = json_loads(line, JSON_DISABLE_EOF_CHECK, NULL);
	bool ok = j && json_is_true(json_object_get(j, "ok")) &&
		  !strcmp(e2e_jstr(j, "cmd"), cmd);

	json_decref(j);
	return ok;
}

/* Send @n events over the ingest socket as writer @id and sync them. */
static int send_events(struct e2e_env *e, struct e2e_track *t, uint32_t id,
		       uint64_t n)
{
	struct evring_writer *w;
	uint64_t c0 = t->w[id].next;
	uint8_t buf[256];
	int ret = evring_writer_open("/nonexistent/evring", e->ingest, &w);

	if (ret)
		return ret;
	t->w[id].pid = getpid();
	for (uint64_t c = c0; c < c0 + n && !ret; c++) {
		uint32_t len = e2e_ev_len(id, c, 24, sizeof(buf));

		e2e_ev_make(buf, id, c, len);
		e2e_mark(t, id, c, E2E_SENT);
		t->w[id].next = c + 1;
		ret = evring_writer_write(w, buf, len);
	}
	if (!ret)
		ret = evring_writer_sync(w, 30000);
	e2e_sock_acked(t, id, c0, w);
	evring_writer_close(w);
	return ret;
}

TEST_F_TIMEOUT(bad, control_garbage_gets_error_replies_and_the_daemon_keeps_draining, 120)
{
	const char *const ctl_argv[] = { E2E_EVRINGCTL, "--socket",
					 self->e.ctl, "--json", "status",
					 NULL };
	char line[8192], path[160], *out;
	static char big[10240];
	uint8_t bin[300];
	struct e2e_spool sp = { 0 };
	struct e2e_seq_verdict sv;
	struct e2e_verdict v;
	int fd, hold;
	ssize_t ret;

	self->t = e2e_track_new(1, 1u << 16);
	ASSERT_NE(NULL, self->t);
	ASSERT_EQ(0, e2e_daemon_up(&self->e, no_device, 30000));
	ASSERT_EQ(0, send_events(&self->e, self->t, 0, 100));

	/* A client holding half a line must not stall anyone. */
	hold = ctl_connect(self->e.ctl);
	ASSERT_LE(0, hold);
	ASSERT_EQ(5, send(hold, "{\"cmd", 5, MSG_NOSIGNAL));

	fd = ctl_connect(self->e.ctl);
	ASSERT_LE(0, fd);
	ASSERT_LT(0, ctl_req(fd, "this is not json\n", line, sizeof(line)));
	EXPECT_TRUE(is_error(line, "invalid JSON at column ")) TH_LOG("%s", line);
	ASSERT_LT(0, ctl_req(fd, "[1,2]\n", line, sizeof(line)));
	EXPECT_TRUE(is_error(line, "request must be a JSON object")) TH_LOG("%s", line);
	ASSERT_LT(0, ctl_req(fd, "{\"cmd\":7}\n", line, sizeof(line)));
	EXPECT_TRUE(is_error(line, "'cmd' must be a string")) TH_LOG("%s", line);
	ASSERT_LT(0, ctl_req(fd, "{\"cmd\":\"nope\"}\n", line, sizeof(line)));
	EXPECT_TRUE(is_error(line, "unknown cmd 'nope' (expected status, spool, ledger, ping, dlq_list, dlq_show, dlq_replay, dlq_purge, failpoint or failpoint_list)"))
		TH_LOG("%s", line);
	ASSERT_LT(0, ctl_req(fd, "{\"cmd\":\"status\",\"x\":1}\n", line, sizeof(line)));
	EXPECT_TRUE(is_error(line, "unknown field 'x' for cmd 'status'")) TH_LOG("%s", line);
	ASSERT_LT(0, ctl_req(fd, "{\"cmd\":\"ledger\",\"limit\":0}\n", line, sizeof(line)));
	EXPECT_TRUE(is_error(line, "'limit' must be an integer in 1..1000")) TH_LOG("%s", line);
	ASSERT_LT(0, ctl_req(fd, "\r\n", line, sizeof(line)));
	EXPECT_TRUE(is_error(line, "empty request")) TH_LOG("%s", line);
	/* Binary: every byte value but '\n', NUL first. */
	for (size_t i = 0, b = 0; i < sizeof(bin) - 1; i++, b++)
		bin[i] = (uint8_t)(b % 256 == '\n' ? ++b : b);
	bin[sizeof(bin) - 1] = '\n';
	ASSERT_LT(0, ctl_exchange(fd, bin, sizeof(bin), line, sizeof(line)));
	EXPECT_TRUE(is_error(line, "invalid JSON at column ")) TH_LOG("%s", line);
	/* The same connection still answers. */
	ASSERT_LT(0, ctl_req(fd, "{\"cmd\":\"ping\"}\n", line, sizeof(line)));
	EXPECT_TRUE(is_ok(line, "ping")) TH_LOG("%s", line);
	close(fd);

	/* 10 KB without a newline: an error line, then the daemon hangs up. */
	fd = ctl_connect(self->e.ctl);
	ASSERT_LE(0, fd);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\n';
	ASSERT_LT(0, ctl_exchange(fd, big, sizeof(big), line, sizeof(line)));
	EXPECT_TRUE(is_error(line, "request line too long (max 4096 bytes)")) TH_LOG("%s", line);
	ret = ctl_exchange(fd, NULL, 0, line, sizeof(line));
	/* Closed: EOF, or a reset because our rest was never read. */
	EXPECT_TRUE(ret == 0 || ret == -ECONNRESET) TH_LOG("%zd %s", ret, line);
	close(fd);

	/* evringctl still works; the daemon still drains. */
	snprintf(path, sizeof(path), "%s/ctl.out", self->e.dir);
	ASSERT_EQ(0, e2e_run(ctl_argv, path, NULL, 30000));
	out = e2e_slurp(path, NULL);
	ASSERT_NE(NULL, out);
	EXPECT_TRUE(is_ok(out, "status")) TH_LOG("%s", out);
	free(out);
	ASSERT_EQ(0, send_events(&self->e, self->t, 0, 100));
	close(hold);
	ASSERT_EQ(0, e2e_daemon_stop(&self->e));

	ASSERT_EQ(0, e2e_spool_read(&sp, self->e.spool));
	e2e_check_seqs(&sp, &sv);
	ASSERT_EQ(0, e2e_check_writers(&sp, self->t, true, &v));
	e2e_print_verdict("control garbage", &v, &sv);
	EXPECT_EQ(200u, v.acked);
	EXPECT_EQ(0u, v.lost + v.doubled + v.unexpected + v.disordered);
	EXPECT_EQ(0u, sv.gaps + sv.dups);
	e2e_spool_free(&sp);
}

TEST_F_TIMEOUT(bad, control_long_non_ascii_cmd_gets_an_error_reply_not_a_hangup, 60)
{
	char req[256], line[1024];
	int fd;

	/* 63 ASCII bytes, then two-byte characters: byte 64 splits one. */
	snprintf(req, sizeof(req), "{\"cmd\":\"%.63s\xc3\xa9\xc3\xa9\"}\n",
		 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	ASSERT_EQ(0, e2e_daemon_up(&self->e, no_device, 30000));
	fd = ctl_connect(self->e.ctl);
	ASSERT_LE(0, fd);
	ASSERT_LT(0, ctl_req(fd, req, line, sizeof(line)))
		TH_LOG("the daemon hung up without an answer");
	EXPECT_TRUE(is_error(line, "unknown cmd 'aaa")) TH_LOG("%s", line);
	ASSERT_LT(0, ctl_req(fd, "{\"cmd\":\"ping\"}\n", line, sizeof(line)));
	EXPECT_TRUE(is_ok(line, "ping")) TH_LOG("%s", line);
	close(fd);
}

/* --- the ingest socket -------------------------------------------------- */

static int ingest_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 10 };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		close(fd);
		return -errno;
	}
	return fd;
}

/*
 * Read replies until an ERROR, the end of the connection or an ACK of at
 * least @want; *@r is the last reply.  1: a reply, 0: the daemon closed,
 * -errno.
 */
static int ingest_reply(int fd, uint64_t want, struct evring_sock_reply *r)
{
	for (;;) {
		ssize_t n = recv(fd, r, sizeof(*r), 0);

		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		if (n != sizeof(*r))
			return -EPROTO;
		if (r->type != EVRING_SOCK_ACK || r->acked >= want)
			return 1;
	}
}

TEST_F_TIMEOUT(bad, ingest_oversize_event_gets_emsgsize_and_other_clients_all_spool, 120)
{
	const char *const sets[] = { "sources.device=",
				     "sources.socket_max_event=1K", NULL };
	struct e2e_sock_writer good = {
		.burst = 16, .len_lo = 24, .len_hi = 1024, .count = 3000,
	};
	struct evring_sock_reply r;
	struct e2e_spool sp = { 0 };
	struct e2e_seq_verdict sv;
	struct e2e_verdict v;
	uint8_t buf[2048];
	int fd;

	self->t = e2e_track_new(2, 1u << 16);
	ASSERT_NE(NULL, self->t);
	ASSERT_EQ(0, e2e_daemon_up(&self->e, sets, 30000));
	good.t = self->t;
	good.id = 0;
	good.path = self->e.ingest;
	good.seed = e2e_seed();
	ASSERT_LT(0, e2e_spawn(e2e_sock_writer_main, &good));

	/* Five good events, the last of the largest size: all acked. */
	self->t->w[1].pid = getpid();
	fd = ingest_connect(self->e.ingest);
	ASSERT_LE(0, fd);
	for (uint64_t c = 0; c < 5; c++) {
		uint32_t len = c == 4 ? 1024 : e2e_ev_len(1, c, 24, 1024);

		e2e_ev_make(buf, 1, c, len);
		e2e_mark(self->t, 1, c, E2E_SENT);
		self->t->w[1].next = c + 1;
		ASSERT_EQ((ssize_t)len, send(fd, buf, len, MSG_NOSIGNAL));
	}
	ASSERT_EQ(1, ingest_reply(fd, 5, &r));
	ASSERT_EQ((uint32_t)EVRING_SOCK_ACK, r.type);
	ASSERT_EQ(5u, r.acked);
	for (uint64_t c = 0; c < 5; c++)
		e2e_mark(self->t, 1, c, E2E_ACKED);

	/* One byte too many: ERROR EMSGSIZE carrying the acked count, EOF. */
	e2e_ev_make(buf, 1, 5, 1025);
	e2e_mark(self->t, 1, 5, E2E_SENT);
	self->t->w[1].next = 6;
	ASSERT_EQ(1025, send(fd, buf, 1025, MSG_NOSIGNAL));
	ASSERT_EQ(1, ingest_reply(fd, UINT64_MAX, &r));
	EXPECT_EQ((uint32_t)EVRING_SOCK_ERROR, r.type);
	EXPECT_EQ((uint32_t)EMSGSIZE, r.error);
	EXPECT_EQ(5u, r.acked);
	EXPECT_EQ(0, ingest_reply(fd, UINT64_MAX, &r));
	e2e_mark(self->t, 1, 5, E2E_FAILED);
	errno = 0;
	EXPECT_EQ(-1, send(fd, buf, 100, MSG_NOSIGNAL));
	EXPECT_EQ(EPIPE, errno);
	close(fd);

	/* The good client went on undisturbed. */
	ASSERT_EQ(0, e2e_wait(self->t->w[0].pid, 60000));
	ASSERT_EQ(0, self->t->w[0].error);
	ASSERT_EQ(0, e2e_wait_drained(&self->e, "socket", 30000));
	ASSERT_EQ(0, e2e_daemon_stop(&self->e));

	ASSERT_EQ(0, e2e_spool_read(&sp, self->e.spool));
	e2e_check_seqs(&sp, &sv);
	ASSERT_EQ(0, e2e_check_writers(&sp, self->t, true, &v));
	e2e_print_verdict("oversize event", &v, &sv);
	EXPECT_EQ(3005u, v.acked);
	EXPECT_EQ(0u, v.lost + v.doubled + v.unexpected + v.disordered);
	EXPECT_EQ(0u, v.unknown_in + v.unknown_out);
	EXPECT_EQ(0u, sv.gaps + sv.dups);
	e2e_spool_free(&sp);
}

TEST_F_TIMEOUT(bad, ingest_zero_length_event_gets_an_error_reply_not_a_silent_close, 60)
{
	struct evring_sock_reply r;
	int fd;

	ASSERT_EQ(0, e2e_daemon_up(&self->e, no_device, 30000));
	fd = ingest_connect(self->e.ingest);
	ASSERT_LE(0, fd);
	ASSERT_EQ(5, send(fd, "first", 5, MSG_NOSIGNAL));
	ASSERT_EQ(1, ingest_reply(fd, 1, &r));
	ASSERT_EQ(1u, r.acked);
	ASSERT_EQ(0, send(fd, "", 0, MSG_NOSIGNAL));
	/* The contract: 1 .. socket_max_event bytes, else an ERROR. */
	ASSERT_EQ(1, ingest_reply(fd, UINT64_MAX, &r))
		TH_LOG("the daemon closed the connection without an ERROR");
	EXPECT_EQ((uint32_t)EVRING_SOCK_ERROR, r.type);
	EXPECT_EQ((uint32_t)EINVAL, r.error);
	EXPECT_EQ(1u, r.acked);
	close(fd);
}

TEST_HARNESS_MAIN
