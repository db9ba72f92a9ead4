// SPDX-License-Identifier: GPL-2.0-only
/*
 * config_test: daemon/config.c against daemon/config.h and the key list in
 * docs/OPERATING.md: the defaults, a full file, every rejection (exact errno
 * and "FILE:LINE: ..." message), --set overrides, the SIGHUP reload rule,
 * and that daemon/evringd.conf.example documents every key with its
 * default.
 *
 * Every failing call is made on a poisoned struct, which must come back
 * byte for byte unchanged (out-parameters are written only on success).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "kselftest_harness.h"

#define EXAMPLE_REL	"daemon/evringd.conf.example"

FIXTURE(cfg) {
	char dir[64];
	char path[128];
	char err[512];
	struct evd_config c, poison;
};

FIXTURE_SETUP(cfg)
{
	strcpy(self->dir, "/tmp/config_test.XXXXXX");
	ASSERT_NE(NULL, mkdtemp(self->dir));
	snprintf(self->path, sizeof(self->path), "%s/evringd.conf", self->dir);
	memset(&self->poison, 0xa5, sizeof(self->poison));
	self->c = self->poison;
	memset(self->err, 0, sizeof(self->err));
}

FIXTURE_TEARDOWN(cfg)
{
	unlink(self->path);
	rmdir(self->dir);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");

	if (!f || fputs(text, f) < 0 || fclose(f))
		abort();
}

/* Load @text; the result and err are in self. */
static int load_text(FIXTURE_DATA(cfg) *self, const char *text)
{
	write_file(self->path, text);
	return config_load(&self->c, self->path, self->err,
			   sizeof(self->err));
}

/* Expect the load of @text to fail with -EINVAL and exactly "PATH:@msg". */
#define ASSERT_REJECTS(text, msg) do { \
	char _want[700]; \
	ASSERT_EQ(-EINVAL, load_text(self, text)); \
	snprintf(_want, sizeof(_want), "%s:%s", self->path, msg); \
	ASSERT_STREQ(_want, self->err); \
	ASSERT_EQ(0, memcmp(&self->c, &self->poison, sizeof(self->c))); \
} while (0)

/* --- defaults --------------------------------------------------------- */

static void assert_defaults(struct __test_metadata *_metadata,
			    const struct evd_config *c)
{
	char host[256] = "";

	gethostname(host, sizeof(host) - 1);
	ASSERT_EQ(0, strncmp(c->host_id, host, CONFIG_HOST_ID_MAX));
	ASSERT_STREQ("/var/lib/evring/spool.db", c->spool_path);
	ASSERT_EQ(CONFIG_SYNC_FULL, (int)c->spool_synchronous);
	ASSERT_EQ(1ull << 30, c->spool_max_bytes);
	ASSERT_EQ(4096u, c->drain_batch_records);
	ASSERT_EQ(4ull << 20, c->drain_batch_bytes);
	ASSERT_EQ(5u, c->drain_batch_ms);
	ASSERT_STREQ("/dev/evring", c->source_device);
	ASSERT_STREQ("/run/evring/ingest.sock", c->source_socket);
	ASSERT_EQ(256u, c->socket_max_clients);
	ASSERT_EQ(65536u, c->socket_max_event);
	ASSERT_STREQ("/run/evring/control.sock", c->control_socket);
	ASSERT_EQ(geteuid() == 0 ? 1u : 2u, c->nr_allow_uid);
	ASSERT_EQ(0u, c->allow_uid[0]);
	ASSERT_EQ(geteuid(), c->allow_uid[c->nr_allow_uid - 1]);
	ASSERT_EQ(0u, c->nr_allow_gid);
	ASSERT_EQ(0u, c->bpf_enable);
	ASSERT_EQ(0x1fu, c->bpf_captures);
	ASSERT_EQ(4u << 20, c->bpf_ring_size);
	ASSERT_STREQ("/sys/fs/bpf/evring", c->bpf_pin_path);
	ASSERT_EQ(1u, c->bpf_open_prefixes.n);
	ASSERT_STREQ("/etc/", c->bpf_open_prefixes.path[0]);
	ASSERT_EQ(0u, c->bpf_uids.n);
	ASSERT_EQ(0u, c->bpf_cgroups.n);
	/* open, connect, accept: capture ids 4, 2, 3. */
	ASSERT_EQ(3u, c->bpf_shed.n);
	ASSERT_EQ(4u, c->bpf_shed.id[0]);
	ASSERT_EQ(2u, c->bpf_shed.id[1]);
	ASSERT_EQ(3u, c->bpf_shed.id[2]);
	ASSERT_EQ(50u, c->bpf_shed_fill_pct);
}

TEST_F(cfg, init_gives_the_documented_defaults)
{
	config_init(&self->c);
	assert_defaults(_metadata, &self->c);
}

TEST_F(cfg, no_file_means_the_defaults)
{
	ASSERT_EQ(0, config_load(&self->c, NULL, self->err,
				 sizeof(self->err)));
	assert_defaults(_metadata, &self->c);
}

TEST_F(cfg, empty_file_and_comments_mean_the_defaults)
{
	ASSERT_EQ(0, load_text(self, "; nothing\n# here\n\n[spool]\n"));
	assert_defaults(_metadata, &self->c);
}

/* --- a full file ------------------------------------------------------ */

TEST_F(cfg, full_file_sets_every_key)
{
	ASSERT_EQ(0, load_text(self,
		"[host]\n"
		"id = web-01.example\n"
		"[spool]\n"
		"path = /srv/evring/spool.db\n"
		"synchronous = normal\n"
		"max_bytes = 20G\n"
		"[drain]\n"
		"batch_records = 100\n"
		"batch_bytes = 512K\n"
		"batch_ms = 0   ; commit as soon as drained\n"
		"[sources]\n"
		"device =\n"
		"socket = /run/x/in.sock\n"
		"socket_max_clients = 4096\n"
		"socket_max_event = 1m\n"
		"[control]\n"
		"socket = /run/x/ctl.sock\n"
		"allow_uid = 0, 1000 1001,root\n"
		"allow_gid = 4242\n"
		"[bpf]\n"
		"enable = yes\n"
		"captures = exec, open\n"
		"ring_size = 64K\n"
		"pin_path = /sys/fs/bpf/other\n"
		"open_prefixes = /etc/ssh/ /srv/data,/etc/ssh/\n"
		"uids = 0 1000\n"
		"cgroups = /system.slice/a.service\n"
		"shed = accept open\n"
		"shed_fill_pct = 90\n"));
	ASSERT_STREQ("web-01.example", self->c.host_id);
	ASSERT_STREQ("/srv/evring/spool.db", self->c.spool_path);
	ASSERT_EQ(CONFIG_SYNC_NORMAL, (int)self->c.spool_synchronous);
	ASSERT_EQ(20ull << 30, self->c.spool_max_bytes);
	ASSERT_EQ(100u, self->c.drain_batch_records);
	ASSERT_EQ(512ull << 10, self->c.drain_batch_bytes);
	ASSERT_EQ(0u, self->c.drain_batch_ms);
	ASSERT_STREQ("", self->c.source_device);
	ASSERT_STREQ("/run/x/in.sock", self->c.source_socket);
	ASSERT_EQ(4096u, self->c.socket_max_clients);
	ASSERT_EQ(1u << 20, self->c.socket_max_event);
	ASSERT_STREQ("/run/x/ctl.sock", self->c.control_socket);
	/* "root" is uid 0 again: duplicates fold. */
	ASSERT_EQ(3u, self->c.nr_allow_uid);
	ASSERT_EQ(0u, self->c.allow_uid[0]);
	ASSERT_EQ(1000u, self->c.allow_uid[1]);
	ASSERT_EQ(1001u, self->c.allow_uid[2]);
	ASSERT_EQ(1u, self->c.nr_allow_gid);
	ASSERT_EQ(4242u, self->c.allow_gid[0]);
	ASSERT_EQ(1u, self->c.bpf_enable);
	ASSERT_EQ((1u << 0) | (1u << 4), self->c.bpf_captures);
	ASSERT_EQ(64u << 10, self->c.bpf_ring_size);
	ASSERT_STREQ("/sys/fs/bpf/other", self->c.bpf_pin_path);
	/* Duplicates fold; entries past n stay zero. */
	ASSERT_EQ(2u, self->c.bpf_open_prefixes.n);
	ASSERT_STREQ("/etc/ssh/", self->c.bpf_open_prefixes.path[0]);
	ASSERT_STREQ("/srv/data", self->c.bpf_open_prefixes.path[1]);
	ASSERT_STREQ("", self->c.bpf_open_prefixes.path[2]);
	ASSERT_EQ(2u, self->c.bpf_uids.n);
	ASSERT_EQ(1000u, self->c.bpf_uids.id[1]);
	ASSERT_EQ(1u, self->c.bpf_cgroups.n);
	ASSERT_STREQ("/system.slice/a.service", self->c.bpf_cgroups.path[0]);
	ASSERT_EQ(2u, self->c.bpf_shed.n);
	ASSERT_EQ(3u, self->c.bpf_shed.id[0]);
	ASSERT_EQ(4u, self->c.bpf_shed.id[1]);
	ASSERT_EQ(90u, self->c.bpf_shed_fill_pct);
	ASSERT_TRUE(config_allows(&self->c, 1001, 5));
	ASSERT_TRUE(config_allows(&self->c, 5, 4242));
	ASSERT_FALSE(config_allows(&self->c, 5, 5));
}

TEST_F(cfg, size_suffixes_are_powers_of_1024_and_bounds_are_inclusive)
{
	ASSERT_EQ(0, load_text(self, "[spool]\nmax_bytes = 1M\n"
				     "[drain]\nbatch_bytes = 4096\n"
				     "batch_records = 1048576\n"
				     "batch_ms = 60000\n"));
	ASSERT_EQ(1ull << 20, self->c.spool_max_bytes);
	ASSERT_EQ(4096u, self->c.drain_batch_bytes);
	ASSERT_EQ(1048576u, self->c.drain_batch_records);
	ASSERT_EQ(60000u, self->c.drain_batch_ms);
	ASSERT_EQ(0, load_text(self, "[spool]\nmax_bytes = 1024T\n"
				     "[drain]\nbatch_bytes = 256M\n"));
	ASSERT_EQ(1ull << 50, self->c.spool_max_bytes);
	ASSERT_EQ(256ull << 20, self->c.drain_batch_bytes);
}

TEST_F(cfg, empty_list_allows_nobody_by_uid)
{
	ASSERT_EQ(0, load_text(self, "[control]\nallow_uid =\n"));
	ASSERT_EQ(0u, self->c.nr_allow_uid);
	ASSERT_FALSE(config_allows(&self->c, 0, 0));
}

TEST_F(cfg, empty_bpf_lists_mean_no_capture_no_filter_and_no_shedding)
{
	ASSERT_EQ(0, load_text(self, "[bpf]\ncaptures =\nopen_prefixes =\n"
				     "shed =\nring_size = 4K\n"));
	ASSERT_EQ(0u, self->c.bpf_captures);
	ASSERT_EQ(0u, self->c.bpf_open_prefixes.n);
	ASSERT_EQ(0u, self->c.bpf_shed.n);
	ASSERT_EQ(4096u, self->c.bpf_ring_size);
}

/* --- rejections ------------------------------------------------------- */

TEST_F(cfg, bad_bpf_values_are_rejected_with_the_reason)
{
	char text[600], want[600];
	int n;

	ASSERT_REJECTS("[bpf]\nenable = on\n",
		       "2: bad value 'on' for bpf.enable: expected 'yes' or 'no'");
	ASSERT_REJECTS("[bpf]\ncaptures = exec, fork\n",
		       "2: bad value 'exec, fork' for bpf.captures: unknown capture 'fork' (expected exec, exit, connect, accept or open)");
	ASSERT_REJECTS("[bpf]\nshed = open Exec\n",
		       "2: bad value 'open Exec' for bpf.shed: unknown capture 'Exec' (expected exec, exit, connect, accept or open)");
	ASSERT_REJECTS("[bpf]\nring_size = 96K\n",
		       "2: bad value '96K' for bpf.ring_size: not a power of two");
	ASSERT_REJECTS("[bpf]\nring_size = 2K\n",
		       "2: bad value '2K' for bpf.ring_size: out of range (4K..1G)");
	ASSERT_REJECTS("[bpf]\nring_size = 2G\n",
		       "2: bad value '2G' for bpf.ring_size: out of range (4K..1G)");
	ASSERT_REJECTS("[bpf]\npin_path = evring\n",
		       "2: bad value 'evring' for bpf.pin_path: must be an absolute path");
	ASSERT_REJECTS("[bpf]\nopen_prefixes = /etc/ etc/\n",
		       "2: bad value '/etc/ etc/' for bpf.open_prefixes: 'etc/' is not an absolute path");
	ASSERT_REJECTS("[bpf]\ncgroups = system.slice\n",
		       "2: bad value 'system.slice' for bpf.cgroups: 'system.slice' is not an absolute path");
	ASSERT_REJECTS("[bpf]\nuids = nobody-xyz-none\n",
		       "2: bad value 'nobody-xyz-none' for bpf.uids: unknown user 'nobody-xyz-none'");
	ASSERT_REJECTS("[bpf]\nshed_fill_pct = 0\n",
		       "2: bad value '0' for bpf.shed_fill_pct: out of range (1..100)");
	ASSERT_REJECTS("[bpf]\nshed_fill_pct = 101\n",
		       "2: bad value '101' for bpf.shed_fill_pct: out of range (1..100)");
	snprintf(text, sizeof(text), "[bpf]\nopen_prefixes = /%0124d\n", 0);
	snprintf(want, sizeof(want),
		 "2: bad value '/%0124d' for bpf.open_prefixes: '/%0124d' is longer than 124 characters",
		 0, 0);
	ASSERT_REJECTS(text, want);
	n = snprintf(text, sizeof(text), "[bpf]\nopen_prefixes =");
	for (int i = 0; i <= CONFIG_BPF_LIST_MAX; i++)
		n += snprintf(text + n, sizeof(text) - n, " /p%d", i);
	snprintf(text + n, sizeof(text) - n, "\n");
	ASSERT_EQ(-EINVAL, load_text(self, text));
	ASSERT_NE(NULL, strstr(self->err, "too many entries (max 8)"));
}

TEST_F(cfg, missing_file_is_enoent_naming_it)
{
	char want[300];

	ASSERT_EQ(-ENOENT, config_load(&self->c, self->path, self->err,
				       sizeof(self->err)));
	snprintf(want, sizeof(want), "cannot open '%s': %s", self->path,
		 strerror(ENOENT));
	ASSERT_STREQ(want, self->err);
	ASSERT_EQ(0, memcmp(&self->c, &self->poison, sizeof(self->c)));
}

TEST_F(cfg, directory_is_eisdir)
{
	ASSERT_EQ(-EISDIR, config_load(&self->c, self->dir, self->err,
				       sizeof(self->err)));
	ASSERT_NE(NULL, strstr(self->err, "Is a directory"));
}

TEST_F(cfg, unknown_section_is_rejected_at_its_header_line)
{
	ASSERT_REJECTS("[spool]\npath = /a\n\n[sourcs]\n",
		       "4: unknown section [sourcs]");
}

TEST_F(cfg, unknown_key_is_rejected_with_file_line_and_section)
{
	ASSERT_REJECTS("[spool]\npath = /a\nmax_byte = 1G\n",
		       "3: unknown key 'max_byte' in [spool]");
	/* A key valid in another section is still unknown here. */
	ASSERT_REJECTS("[drain]\npath = /a\n",
		       "2: unknown key 'path' in [drain]");
}

TEST_F(cfg, key_before_any_section_is_rejected)
{
	ASSERT_REJECTS("path = /a\n", "1: key 'path' outside a [section]");
}

TEST_F(cfg, bad_number_is_rejected_with_the_reason)
{
	ASSERT_REJECTS("[drain]\nbatch_records = lots\n",
		       "2: bad value 'lots' for drain.batch_records: not a number");
	ASSERT_REJECTS("[drain]\nbatch_records = -1\n",
		       "2: bad value '-1' for drain.batch_records: not a number");
	ASSERT_REJECTS("[drain]\nbatch_records = 0x10\n",
		       "2: bad value '0x10' for drain.batch_records: not a number");
	ASSERT_REJECTS("[drain]\nbatch_records = 12 ms\n",
		       "2: bad value '12 ms' for drain.batch_records: not a number");
	ASSERT_REJECTS("[drain]\nbatch_records = 4K\n",
		       "2: bad value '4K' for drain.batch_records: not a number");
	ASSERT_REJECTS("[drain]\nbatch_records =\n",
		       "2: bad value '' for drain.batch_records: not a number");
	ASSERT_REJECTS("[drain]\nbatch_records = 99999999999999999999999\n",
		       "2: bad value '99999999999999999999999' for drain.batch_records: number too large");
}

TEST_F(cfg, out_of_range_number_is_rejected_with_the_bounds)
{
	ASSERT_REJECTS("[drain]\nbatch_records = 0\n",
		       "2: bad value '0' for drain.batch_records: out of range (1..1048576)");
	ASSERT_REJECTS("[drain]\nbatch_ms = 60001\n",
		       "2: bad value '60001' for drain.batch_ms: out of range (0..60000)");
	ASSERT_REJECTS("[sources]\nsocket_max_clients = 4097\n",
		       "2: bad value '4097' for sources.socket_max_clients: out of range (1..4096)");
	ASSERT_REJECTS("[spool]\nmax_bytes = 1023K\n",
		       "2: bad value '1023K' for spool.max_bytes: out of range (1M..1P)");
	ASSERT_REJECTS("[drain]\nbatch_bytes = 257M\n",
		       "2: bad value '257M' for drain.batch_bytes: out of range (4K..256M)");
	ASSERT_REJECTS("[sources]\nsocket_max_event = 17M\n",
		       "2: bad value '17M' for sources.socket_max_event: out of range (1..16M)");
}

TEST_F(cfg, bad_size_suffix_is_rejected)
{
	ASSERT_REJECTS("[spool]\nmax_bytes = 1GB\n",
		       "2: bad value '1GB' for spool.max_bytes: bad size suffix 'GB' (use K, M, G or T)");
	ASSERT_REJECTS("[spool]\nmax_bytes = 5X\n",
		       "2: bad value '5X' for spool.max_bytes: bad size suffix 'X' (use K, M, G or T)");
	ASSERT_REJECTS("[spool]\nmax_bytes = 99999999999T\n",
		       "2: bad value '99999999999T' for spool.max_bytes: number too large");
}

TEST_F(cfg, bad_enum_value_is_rejected_naming_the_choices)
{
	ASSERT_REJECTS("[spool]\nsynchronous = off\n",
		       "2: bad value 'off' for spool.synchronous: expected 'full' or 'normal'");
	ASSERT_REJECTS("[spool]\nsynchronous = FULL\n",
		       "2: bad value 'FULL' for spool.synchronous: expected 'full' or 'normal'");
}

TEST_F(cfg, bad_paths_are_rejected)
{
	char text[400], want[400];

	ASSERT_REJECTS("[spool]\npath = spool.db\n",
		       "2: bad value 'spool.db' for spool.path: must be an absolute path");
	ASSERT_REJECTS("[spool]\npath =\n",
		       "2: bad value '' for spool.path: must not be empty");
	ASSERT_REJECTS("[control]\nsocket =\n",
		       "2: bad value '' for control.socket: must not be empty");
	snprintf(text, sizeof(text), "[control]\nsocket = /%0108d\n", 0);
	snprintf(want, sizeof(want),
		 "2: bad value '/%0108d' for control.socket: longer than 107 characters",
		 0);
	ASSERT_REJECTS(text, want);
}

TEST_F(cfg, bad_host_id_is_rejected)
{
	ASSERT_REJECTS("[host]\nid = a/b\n",
		       "2: bad value 'a/b' for host.id: only letters, digits, '.', '_' and '-' allowed");
	ASSERT_REJECTS("[host]\nid =\n",
		       "2: bad value '' for host.id: must be 1..32 characters");
}

TEST_F(cfg, bad_id_lists_are_rejected)
{
	char text[400];
	int n;

	ASSERT_REJECTS("[control]\nallow_uid = 0, no-such-user-xyz\n",
		       "2: bad value '0, no-such-user-xyz' for control.allow_uid: unknown user 'no-such-user-xyz'");
	ASSERT_REJECTS("[control]\nallow_gid = no-such-group-xyz\n",
		       "2: bad value 'no-such-group-xyz' for control.allow_gid: unknown group 'no-such-group-xyz'");
	ASSERT_REJECTS("[control]\nallow_uid = 4294967295\n",
		       "2: bad value '4294967295' for control.allow_uid: uid 4294967295 is out of range");
	ASSERT_REJECTS("[control]\nallow_uid = 12abc\n",
		       "2: bad value '12abc' for control.allow_uid: '12abc' is not a number or a name");
	n = snprintf(text, sizeof(text), "[control]\nallow_uid =");
	for (int i = 0; i <= CONFIG_ALLOW_MAX; i++)
		n += snprintf(text + n, sizeof(text) - n, " %d", i);
	snprintf(text + n, sizeof(text) - n, "\n");
	ASSERT_EQ(-EINVAL, load_text(self, text));
	ASSERT_NE(NULL, strstr(self->err, ":2: bad value '0 1 2"));
	ASSERT_NE(NULL, strstr(self->err, "too many entries (max 32)"));
}

TEST_F(cfg, duplicate_key_is_rejected_naming_the_first_line)
{
	ASSERT_REJECTS("[drain]\nbatch_ms = 1\n[spool]\n[drain]\nbatch_ms = 2\n",
		       "5: duplicate key 'batch_ms' in [drain] (first set on line 2)");
	/* A continuation line is the same key again. */
	ASSERT_REJECTS("[spool]\npath = /a\n  /b\n",
		       "3: duplicate key 'path' in [spool] (first set on line 2)");
}

TEST_F(cfg, syntax_error_is_rejected_with_its_line)
{
	ASSERT_REJECTS("[spool]\npath /a\n",
		       "2: syntax error (expected 'key = value' or '[section]')");
	ASSERT_REJECTS("[spool\n",
		       "1: syntax error (expected 'key = value' or '[section]')");
}

TEST_F(cfg, over_long_line_is_rejected_not_split)
{
	char text[600];

	snprintf(text, sizeof(text), "[spool]\npath = /%0300d\n", 0);
	ASSERT_REJECTS(text, "2: line too long (max 198 characters)");
}

TEST_F(cfg, nul_byte_is_rejected_not_truncated)
{
	int fd;

	fd = open(self->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ASSERT_GE(fd, 0);
	ASSERT_EQ(25, write(fd, "[spool]\npath = /a\0/b\n[x]\n", 25));
	close(fd);
	ASSERT_EQ(-EINVAL, config_load(&self->c, self->path, self->err,
				       sizeof(self->err)));
	ASSERT_NE(NULL, strstr(self->err, ":2: NUL byte in line"));
}

TEST_F(cfg, first_error_wins_and_nothing_is_applied)
{
	ASSERT_REJECTS("[drain]\nbatch_ms = 7\nbatch_records = x\nbatch_bytes = y\n",
		       "3: bad value 'x' for drain.batch_records: not a number");
}

TEST_F(cfg, short_err_buffer_is_truncated_not_overrun)
{
	char small[8];

	memset(small, 'z', sizeof(small));
	write_file(self->path, "[nope]\n");
	ASSERT_EQ(-EINVAL, config_load(&self->c, self->path, small, 6));
	ASSERT_EQ('\0', small[5]);
	ASSERT_EQ('z', small[6]);
}

/* --- --set ------------------------------------------------------------ */

TEST_F(cfg, set_overrides_one_key_validated_like_the_file)
{
	config_init(&self->c);
	ASSERT_EQ(0, config_set(&self->c, "spool.path", "/x/spool.db",
				self->err, sizeof(self->err)));
	ASSERT_STREQ("/x/spool.db", self->c.spool_path);
	ASSERT_EQ(0, config_set(&self->c, "drain.batch_bytes", "64K",
				self->err, sizeof(self->err)));
	ASSERT_EQ(64u << 10, self->c.drain_batch_bytes);
	ASSERT_EQ(0, config_set(&self->c, "sources.device", "", self->err,
				sizeof(self->err)));
	ASSERT_STREQ("", self->c.source_device);
	/* Lists are replaced, not appended to. */
	ASSERT_EQ(0, config_set(&self->c, "control.allow_uid", "7,8",
				self->err, sizeof(self->err)));
	ASSERT_EQ(2u, self->c.nr_allow_uid);
	ASSERT_EQ(7u, self->c.allow_uid[0]);
	ASSERT_EQ(8u, self->c.allow_uid[1]);
}

TEST_F(cfg, set_rejections_are_exact_and_leave_the_config_alone)
{
	ASSERT_EQ(-EINVAL, config_set(&self->c, "spool.nope", "1", self->err,
				      sizeof(self->err)));
	ASSERT_STREQ("--set: unknown key 'spool.nope'", self->err);
	ASSERT_EQ(-EINVAL, config_set(&self->c, "path", "/x", self->err,
				      sizeof(self->err)));
	ASSERT_STREQ("--set: unknown key 'path'", self->err);
	ASSERT_EQ(-EINVAL, config_set(&self->c, "drain.batch_ms", "1s",
				      self->err, sizeof(self->err)));
	ASSERT_STREQ("--set: bad value '1s' for drain.batch_ms: not a number",
		     self->err);
	ASSERT_EQ(-EINVAL, config_set(&self->c, "spool.synchronous", "off",
				      self->err, sizeof(self->err)));
	ASSERT_STREQ("--set: bad value 'off' for spool.synchronous: expected 'full' or 'normal'",
		     self->err);
	ASSERT_EQ(0, memcmp(&self->c, &self->poison, sizeof(self->c)));
}

/* --- reload ----------------------------------------------------------- */

TEST_F(cfg, reload_may_change_every_live_key)
{
	struct evd_config old, new;
	char keys[256];

	config_init(&old);
	new = old;
	ASSERT_EQ(0, config_set(&new, "spool.max_bytes", "2G", self->err,
				sizeof(self->err)));
	ASSERT_EQ(0, config_set(&new, "drain.batch_records", "10", self->err,
				sizeof(self->err)));
	ASSERT_EQ(0, config_set(&new, "drain.batch_bytes", "8M", self->err,
				sizeof(self->err)));
	ASSERT_EQ(0, config_set(&new, "drain.batch_ms", "50", self->err,
				sizeof(self->err)));
	ASSERT_EQ(0, config_set(&new, "control.allow_uid", "0 42", self->err,
				sizeof(self->err)));
	ASSERT_EQ(0, config_set(&new, "control.allow_gid", "43", self->err,
				sizeof(self->err)));
	ASSERT_EQ(0, config_set(&new, "bpf.captures", "exec", self->err,
				sizeof(self->err)));
	ASSERT_EQ(0, config_set(&new, "bpf.open_prefixes", "/srv/", self->err,
				sizeof(self->err)));
	ASSERT_EQ(0, config_set(&new, "bpf.uids", "1000", self->err,
				sizeof(self->err)));
	ASSERT_EQ(0, config_set(&new, "bpf.cgroups", "/a.slice", self->err,
				sizeof(self->err)));
	ASSERT_EQ(0, config_set(&new, "bpf.shed", "open", self->err,
				sizeof(self->err)));
	ASSERT_EQ(0, config_set(&new, "bpf.shed_fill_pct", "80", self->err,
				sizeof(self->err)));
	ASSERT_EQ(0, config_reload_diff(&old, &new, self->err,
					sizeof(self->err)));
	ASSERT_EQ(12, config_changed_keys(&old, &new, keys, sizeof(keys)));
	ASSERT_STREQ("spool.max_bytes drain.batch_records drain.batch_bytes "
		     "drain.batch_ms control.allow_uid control.allow_gid "
		     "bpf.captures bpf.open_prefixes bpf.uids bpf.cgroups "
		     "bpf.shed bpf.shed_fill_pct", keys);
	ASSERT_STREQ(CONFIG_LIVE_KEYS, keys);
	ASSERT_EQ(0, config_changed_keys(&old, &old, keys, sizeof(keys)));
	ASSERT_STREQ("", keys);
}

TEST_F(cfg, reload_touching_a_fixed_key_is_ebusy_naming_it)
{
	static const char *const fixed[][2] = {
		{ "host.id", "other" },
		{ "spool.path", "/elsewhere.db" },
		{ "spool.synchronous", "normal" },
		{ "sources.device", "" },
		{ "sources.socket", "/run/y.sock" },
		{ "sources.socket_max_clients", "7" },
		{ "sources.socket_max_event", "1K" },
		{ "control.socket", "/run/z.sock" },
		{ "bpf.enable", "yes" },
		{ "bpf.ring_size", "8M" },
		{ "bpf.pin_path", "/sys/fs/bpf/x" },
	};
	struct evd_config old, new;
	char want[256];

	config_init(&old);
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		new = old;
		ASSERT_EQ(0, config_set(&new, fixed[i][0], fixed[i][1],
					self->err, sizeof(self->err)));
		/* Along with a live change, which does not excuse it. */
		new.drain_batch_ms = 9;
		ASSERT_EQ(-EBUSY, config_reload_diff(&old, &new, self->err,
						     sizeof(self->err)));
		snprintf(want, sizeof(want),
			 "%s cannot change while running (restart evringd to apply it)",
			 fixed[i][0]);
		ASSERT_STREQ(want, self->err);
	}
}

/* --- the example file ------------------------------------------------- */

/*
 * Every "#key = value" line in the example, uncommented, must load; the
 * result must equal the defaults (values in <angle brackets> describe a
 * computed default and are skipped), and every key must appear.
 */
TEST_F(cfg, example_file_documents_every_key_with_its_default)
{
	static const char *const all[] = {
		"id", "path", "synchronous", "max_bytes", "batch_records",
		"batch_bytes", "batch_ms", "device", "socket",
		"socket_max_clients", "socket_max_event", "allow_uid",
		"allow_gid", "enable", "captures", "ring_size", "pin_path",
		"open_prefixes", "uids", "cgroups", "shed", "shed_fill_pct",
	};
	struct evd_config defaults;
	char line[512], text[16384], out[16384] = "";
	size_t used = 0, n;
	FILE *f = fopen(EXAMPLE_REL, "re");

	if (!f)
		SKIP(return, "run from the repository root (%s not found)",
		     EXAMPLE_REL);
	n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	fclose(f);
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		char needle[64];

		snprintf(needle, sizeof(needle), "\n#%s =", all[i]);
		EXPECT_NE(NULL, strstr(text, needle)) {
			TH_LOG("key '%s' is not documented", all[i]);
		}
	}
	for (char *p = text, *nl; *p; p = nl + 1) {
		nl = strchrnul(p, '\n');
		snprintf(line, sizeof(line), "%.*s", (int)(nl - p), p);
		p = line;
		if (p[0] == '#' && p[1] != ' ' && p[1] != '#' && p[1] &&
		    strchr(p, '='))
			p++;
		if (!strchr(p, '<'))
			used += snprintf(out + used, sizeof(out) - used,
					 "%s\n", p);
		ASSERT_LT(used, sizeof(out));
		if (!*nl)
			break;
	}
	ASSERT_EQ(0, load_text(self, out)) {
		TH_LOG("%s", self->err);
	}
	config_init(&defaults);
	/* allow_uid's default depends on who runs: compare the rest. */
	self->c.nr_allow_uid = defaults.nr_allow_uid;
	memcpy(self->c.allow_uid, defaults.allow_uid,
	       sizeof(defaults.allow_uid));
	ASSERT_EQ(0, config_changed_keys(&defaults, &self->c, line,
					 sizeof(line))) {
		TH_LOG("differs from the defaults: %s", line);
	}
}

TEST_HARNESS_MAIN
