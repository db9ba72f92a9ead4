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
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
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
	ASSERT_EQ(CONFIG_SHIP_REPLICATE, (int)c->ship_mode);
	ASSERT_EQ(1ull << 20, c->ship_max_message);
	ASSERT_EQ(2000u, c->ship_publish_timeout_ms);
	ASSERT_EQ(100u, c->ship_backoff_base_ms);
	ASSERT_EQ(10000u, c->ship_backoff_cap_ms);
	ASSERT_EQ(20u, c->ship_retry_rate);
	ASSERT_EQ(40u, c->ship_retry_burst);
	ASSERT_EQ(5u, c->ship_dead_letter_after);
	ASSERT_EQ(5u, c->ship_breaker_failures);
	ASSERT_EQ(20u, c->ship_breaker_latency_factor);
	ASSERT_EQ(5u, c->ship_breaker_slow_acks);
	ASSERT_EQ(2000u, c->ship_breaker_open_ms);
	ASSERT_EQ(1u, c->ship_breaker_probes);
	ASSERT_EQ(1u, c->ship_window_min);
	ASSERT_EQ(64u, c->ship_window_max);
	ASSERT_EQ(0u, c->ship_rate_limit);
	ASSERT_EQ(0u, c->ship_lag_limit_s);
	ASSERT_EQ(10000u, c->ship_failback_hold_ms);
	ASSERT_STREQ("127.0.0.1:9464", c->ship_metrics_listen);
	/* No region: nothing is shipped; the unused slots are all zero. */
	ASSERT_EQ(0u, c->nr_regions);
	for (size_t i = 0; i < sizeof(c->region); i++)
		ASSERT_EQ(0, ((const char *)c->region)[i]);
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
	static const char *const ship[][2] = {
		{ "ship.max_message", "2M" },
		{ "ship.publish_timeout_ms", "500" },
		{ "ship.backoff_base_ms", "5" },
		{ "ship.backoff_cap_ms", "50" },
		{ "ship.retry_rate", "0" },
		{ "ship.retry_burst", "1" },
		{ "ship.dead_letter_after", "2" },
		{ "ship.breaker_failures", "3" },
		{ "ship.breaker_latency_factor", "4" },
		{ "ship.breaker_slow_acks", "6" },
		{ "ship.breaker_open_ms", "10" },
		{ "ship.breaker_probes", "2" },
		{ "ship.window_min", "2" },
		{ "ship.window_max", "3" },
		{ "ship.rate_limit", "7" },
		{ "ship.lag_limit_s", "60" },
		{ "ship.failback_hold_ms", "0" },
	};
	struct evd_config old, new;
	char keys[1024];

	config_init(&old);
	new = old;
	for (size_t i = 0; i < sizeof(ship) / sizeof(ship[0]); i++)
		ASSERT_EQ(0, config_set(&new, ship[i][0], ship[i][1],
					self->err, sizeof(self->err))) {
			TH_LOG("%s", self->err);
		}
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
	ASSERT_EQ(29, config_changed_keys(&old, &new, keys, sizeof(keys)));
	ASSERT_STREQ("spool.max_bytes drain.batch_records drain.batch_bytes "
		     "drain.batch_ms control.allow_uid control.allow_gid "
		     "bpf.captures bpf.open_prefixes bpf.uids bpf.cgroups "
		     "bpf.shed bpf.shed_fill_pct ship.max_message "
		     "ship.publish_timeout_ms ship.backoff_base_ms "
		     "ship.backoff_cap_ms ship.retry_rate ship.retry_burst "
		     "ship.dead_letter_after ship.breaker_failures "
		     "ship.breaker_latency_factor ship.breaker_slow_acks "
		     "ship.breaker_open_ms ship.breaker_probes "
		     "ship.window_min ship.window_max ship.rate_limit "
		     "ship.lag_limit_s ship.failback_hold_ms", keys);
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
		{ "ship.mode", "failover" },
		{ "ship.metrics_listen", "" },
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

/* --- [ship] and [region NAME] ----------------------------------------- */

TEST_F(cfg, full_ship_file_sets_every_key)
{
	const struct config_region *a, *b;

	ASSERT_EQ(0, load_text(self,
		"[host]\n"
		"id = web-01\n"
		"[ship]\n"
		"mode = failover\n"
		"max_message = 4M\n"
		"publish_timeout_ms = 100\n"
		"backoff_base_ms = 60000\n"
		"backoff_cap_ms = 60000\n"
		"retry_rate = 100000\n"
		"retry_burst = 100000\n"
		"dead_letter_after = 1000\n"
		"breaker_failures = 1\n"
		"breaker_latency_factor = 2\n"
		"breaker_slow_acks = 1000\n"
		"breaker_open_ms = 10\n"
		"breaker_probes = 64\n"
		"window_min = 1024\n"
		"window_max = 1024\n"
		"rate_limit = 1000000\n"
		"lag_limit_s = 31536000\n"
		"failback_hold_ms = 3600000\n"
		"metrics_listen = [::1]:65535\n"
		"[region eu-west_1]\n"
		"urls = nats://n1.example:4222 , tls://10.0.0.2:4443,nats://[fe80::1]:1\n"
		"stream = EV_RING-2\n"
		"subject_prefix = corp.evring\n"
		"replicas = 5\n"
		"create_stream = no\n"
		"dupe_window_ms = 86400000\n"
		"weight = 0\n"
		"creds = /etc/evring/eu.creds\n"
		"tls_ca = /etc/evring/ca.pem\n"
		"tls_cert = /etc/evring/cert.pem\n"
		"tls_key = /etc/evring/key.pem\n"
		"[spool]\n"
		"[region b]\n"
		"urls = nats://b:4222\n"));
	ASSERT_EQ(CONFIG_SHIP_FAILOVER, (int)self->c.ship_mode);
	ASSERT_STREQ("failover", config_ship_mode_name(self->c.ship_mode));
	ASSERT_EQ(4ull << 20, self->c.ship_max_message);
	ASSERT_EQ(100u, self->c.ship_publish_timeout_ms);
	ASSERT_EQ(60000u, self->c.ship_backoff_base_ms);
	ASSERT_EQ(60000u, self->c.ship_backoff_cap_ms);
	ASSERT_EQ(100000u, self->c.ship_retry_rate);
	ASSERT_EQ(100000u, self->c.ship_retry_burst);
	ASSERT_EQ(1000u, self->c.ship_dead_letter_after);
	ASSERT_EQ(1u, self->c.ship_breaker_failures);
	ASSERT_EQ(2u, self->c.ship_breaker_latency_factor);
	ASSERT_EQ(1000u, self->c.ship_breaker_slow_acks);
	ASSERT_EQ(10u, self->c.ship_breaker_open_ms);
	ASSERT_EQ(64u, self->c.ship_breaker_probes);
	ASSERT_EQ(1024u, self->c.ship_window_min);
	ASSERT_EQ(1024u, self->c.ship_window_max);
	ASSERT_EQ(1000000u, self->c.ship_rate_limit);
	ASSERT_EQ(31536000u, self->c.ship_lag_limit_s);
	ASSERT_EQ(3600000u, self->c.ship_failback_hold_ms);
	ASSERT_STREQ("[::1]:65535", self->c.ship_metrics_listen);
	ASSERT_EQ(2u, self->c.nr_regions);
	a = &self->c.region[0];
	ASSERT_STREQ("eu-west_1", a->name);
	/* Spaces around the commas go: the list libnats takes. */
	ASSERT_STREQ("nats://n1.example:4222,tls://10.0.0.2:4443,nats://[fe80::1]:1",
		     a->urls);
	ASSERT_STREQ("EV_RING-2", a->stream);
	ASSERT_STREQ("corp.evring", a->subject_prefix);
	ASSERT_EQ(5u, a->replicas);
	ASSERT_EQ(0u, a->create_stream);
	ASSERT_EQ(86400000ull, a->dupe_window_ms);
	ASSERT_EQ(0u, a->weight);
	ASSERT_STREQ("/etc/evring/eu.creds", a->creds);
	ASSERT_STREQ("/etc/evring/ca.pem", a->tls_ca);
	ASSERT_STREQ("/etc/evring/cert.pem", a->tls_cert);
	ASSERT_STREQ("/etc/evring/key.pem", a->tls_key);
	/* A region's defaults. */
	b = &self->c.region[1];
	ASSERT_STREQ("b", b->name);
	ASSERT_STREQ("nats://b:4222", b->urls);
	ASSERT_STREQ("EVRING", b->stream);
	ASSERT_STREQ("evring", b->subject_prefix);
	ASSERT_EQ(3u, b->replicas);
	ASSERT_EQ(1u, b->create_stream);
	ASSERT_EQ(120000ull, b->dupe_window_ms);
	ASSERT_EQ(100u, b->weight);
	ASSERT_STREQ("", b->creds);
	ASSERT_STREQ("", b->tls_ca);
	ASSERT_STREQ("", b->tls_cert);
	ASSERT_STREQ("", b->tls_key);
	/* Unused slots stay zero: configs compare bytewise. */
	for (size_t i = 0; i < sizeof(self->c.region[2]); i++)
		ASSERT_EQ(0, ((const char *)&self->c.region[2])[i]);
}

TEST_F(cfg, region_limits_are_inclusive)
{
	char text[1024], name[CONFIG_REGION_NAME_MAX + 1];
	int n = 0;

	/* A 64-character name: longer than libinih keeps of a section. */
	memset(name, 'r', CONFIG_REGION_NAME_MAX);
	name[CONFIG_REGION_NAME_MAX] = '\0';
	n += snprintf(text + n, sizeof(text) - n,
		      "[ship]\nmax_message = 4K\nmetrics_listen =\n"
		      "[region %s]\nurls = nats://a:1\nweight = 10000\n"
		      "replicas = 1\ndupe_window_ms = 1000\n", name);
	for (int i = 1; i < CONFIG_REGIONS_MAX; i++)
		n += snprintf(text + n, sizeof(text) - n,
			      "[region r%d]\nurls = tls://h%d:65535\n", i, i);
	ASSERT_EQ(0, load_text(self, text)) {
		TH_LOG("%s", self->err);
	}
	ASSERT_EQ(4096u, self->c.ship_max_message);
	ASSERT_STREQ("", self->c.ship_metrics_listen);
	ASSERT_EQ((unsigned int)CONFIG_REGIONS_MAX, self->c.nr_regions);
	ASSERT_STREQ(name, self->c.region[0].name);
	ASSERT_EQ(10000u, self->c.region[0].weight);
	ASSERT_EQ(1u, self->c.region[0].replicas);
	ASSERT_EQ(1000ull, self->c.region[0].dupe_window_ms);
	ASSERT_STREQ("r7", self->c.region[7].name);
	ASSERT_STREQ("tls://h7:65535", self->c.region[7].urls);
	ASSERT_EQ(0, load_text(self, "[ship]\nmax_message = 64M\n"));
	ASSERT_EQ(64ull << 20, self->c.ship_max_message);
}

TEST_F(cfg, bad_ship_mode_is_rejected)
{
	ASSERT_REJECTS("[ship]\nmode = both\n",
		       "2: bad value 'both' for ship.mode: expected 'replicate' or 'failover'");
}

TEST_F(cfg, every_ship_bound_is_enforced)
{
	static const struct {
		const char *key, *value, *range;
	} bad[] = {
		{ "max_message", "4095", "4K..64M" },
		{ "max_message", "65M", "4K..64M" },
		{ "publish_timeout_ms", "99", "100..600000" },
		{ "publish_timeout_ms", "600001", "100..600000" },
		{ "backoff_base_ms", "0", "1..60000" },
		{ "backoff_base_ms", "60001", "1..60000" },
		{ "backoff_cap_ms", "0", "1..3600000" },
		{ "backoff_cap_ms", "3600001", "1..3600000" },
		{ "retry_rate", "100001", "0..100000" },
		{ "retry_burst", "0", "1..100000" },
		{ "retry_burst", "100001", "1..100000" },
		{ "dead_letter_after", "0", "1..1000" },
		{ "dead_letter_after", "1001", "1..1000" },
		{ "breaker_failures", "0", "1..1000" },
		{ "breaker_failures", "1001", "1..1000" },
		{ "breaker_latency_factor", "1", "2..1000" },
		{ "breaker_latency_factor", "1001", "2..1000" },
		{ "breaker_slow_acks", "0", "1..1000" },
		{ "breaker_slow_acks", "1001", "1..1000" },
		{ "breaker_open_ms", "9", "10..600000" },
		{ "breaker_open_ms", "600001", "10..600000" },
		{ "breaker_probes", "0", "1..64" },
		{ "breaker_probes", "65", "1..64" },
		{ "window_min", "0", "1..1024" },
		{ "window_min", "1025", "1..1024" },
		{ "window_max", "0", "1..1024" },
		{ "window_max", "1025", "1..1024" },
		{ "rate_limit", "1000001", "0..1000000" },
		{ "lag_limit_s", "31536001", "0..31536000" },
		{ "failback_hold_ms", "3600001", "0..3600000" },
	};
	char text[256], want[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "[ship]\n%s = %s\n", bad[i].key,
			 bad[i].value);
		snprintf(want, sizeof(want),
			 "2: bad value '%s' for ship.%s: out of range (%s)",
			 bad[i].value, bad[i].key, bad[i].range);
		ASSERT_REJECTS(text, want);
	}
	ASSERT_REJECTS("[ship]\nretry_rate = 1s\n",
		       "2: bad value '1s' for ship.retry_rate: not a number");
	ASSERT_REJECTS("[ship]\nmax_message = 1MB\n",
		       "2: bad value '1MB' for ship.max_message: bad size suffix 'MB' (use K, M, G or T)");
}

TEST_F(cfg, every_region_bound_is_enforced)
{
	ASSERT_REJECTS("[region a]\nurls = nats://a:1\nreplicas = 0\n",
		       "3: bad value '0' for region.a.replicas: out of range (1..5)");
	ASSERT_REJECTS("[region a]\nurls = nats://a:1\nreplicas = 6\n",
		       "3: bad value '6' for region.a.replicas: out of range (1..5)");
	ASSERT_REJECTS("[region a]\ndupe_window_ms = 999\n",
		       "2: bad value '999' for region.a.dupe_window_ms: out of range (1000..86400000)");
	ASSERT_REJECTS("[region a]\ndupe_window_ms = 86400001\n",
		       "2: bad value '86400001' for region.a.dupe_window_ms: out of range (1000..86400000)");
	ASSERT_REJECTS("[region a]\nweight = 10001\n",
		       "2: bad value '10001' for region.a.weight: out of range (0..10000)");
	ASSERT_REJECTS("[region a]\ncreate_stream = true\n",
		       "2: bad value 'true' for region.a.create_stream: expected 'yes' or 'no'");
	ASSERT_REJECTS("[region a]\ncreds = a.creds\n",
		       "2: bad value 'a.creds' for region.a.creds: must be an absolute path");
	ASSERT_REJECTS("[region a]\ntls_ca = ca.pem\n",
		       "2: bad value 'ca.pem' for region.a.tls_ca: must be an absolute path");
	ASSERT_REJECTS("[region a]\ntls_cert = c.pem\n",
		       "2: bad value 'c.pem' for region.a.tls_cert: must be an absolute path");
	ASSERT_REJECTS("[region a]\ntls_key = k.pem\n",
		       "2: bad value 'k.pem' for region.a.tls_key: must be an absolute path");
	ASSERT_REJECTS("[region a]\nstream = EV.RING\n",
		       "2: bad value 'EV.RING' for region.a.stream: only letters, digits, '_' and '-' allowed");
	ASSERT_REJECTS("[region a]\nstream =\n",
		       "2: bad value '' for region.a.stream: must be 1..64 characters");
	ASSERT_REJECTS("[region a]\nstream = S0123456789012345678901234567890123456789012345678901234567890123\n",
		       "2: bad value 'S0123456789012345678901234567890123456789012345678901234567890123' for region.a.stream: must be 1..64 characters");
	ASSERT_REJECTS("[region a]\nsubject_prefix = evring.*\n",
		       "2: bad value 'evring.*' for region.a.subject_prefix: only letters, digits, '_', '-' and '.' between tokens allowed");
	ASSERT_REJECTS("[region a]\nsubject_prefix = evring.>\n",
		       "2: bad value 'evring.>' for region.a.subject_prefix: only letters, digits, '_', '-' and '.' between tokens allowed");
	ASSERT_REJECTS("[region a]\nsubject_prefix = .evring\n",
		       "2: bad value '.evring' for region.a.subject_prefix: empty subject token (a '.' at either end or '..')");
	ASSERT_REJECTS("[region a]\nsubject_prefix = a..b\n",
		       "2: bad value 'a..b' for region.a.subject_prefix: empty subject token (a '.' at either end or '..')");
	ASSERT_REJECTS("[region a]\nsubject_prefix = evring.\n",
		       "2: bad value 'evring.' for region.a.subject_prefix: empty subject token (a '.' at either end or '..')");
	ASSERT_REJECTS("[region a]\nsubject_prefix =\n",
		       "2: bad value '' for region.a.subject_prefix: must be 1..128 characters");
}

TEST_F(cfg, backoff_base_above_cap_is_rejected_naming_both)
{
	ASSERT_REJECTS("[ship]\nbackoff_cap_ms = 50\n",
		       " ship.backoff_base_ms (100) is greater than ship.backoff_cap_ms (50)");
	ASSERT_REJECTS("[ship]\nbackoff_base_ms = 20000\n",
		       " ship.backoff_base_ms (20000) is greater than ship.backoff_cap_ms (10000)");
	ASSERT_EQ(0, load_text(self, "[ship]\nbackoff_base_ms = 50\nbackoff_cap_ms = 50\n"));
}

TEST_F(cfg, window_min_above_max_is_rejected_naming_both)
{
	ASSERT_REJECTS("[ship]\nwindow_min = 65\n",
		       " ship.window_min (65) is greater than ship.window_max (64)");
	ASSERT_REJECTS("[ship]\nwindow_max = 4\nwindow_min = 5\n",
		       " ship.window_min (5) is greater than ship.window_max (4)");
}

TEST_F(cfg, bad_urls_are_rejected_naming_the_url)
{
	static const char *const bad[][2] = {
		{ "http://a:4222", "'http://a:4222' is not a nats:// or tls:// URL" },
		{ "nats://", "'nats://' is not a nats:// or tls:// URL" },
		{ "a:4222", "'a:4222' is not a nats:// or tls:// URL" },
		{ "nats://a", "'nats://a' needs a port 1..65535 ('scheme://host:port')" },
		{ "nats://a:", "'nats://a:' needs a port 1..65535 ('scheme://host:port')" },
		{ "nats://a:0", "'nats://a:0' needs a port 1..65535 ('scheme://host:port')" },
		{ "nats://a:65536", "'nats://a:65536' needs a port 1..65535 ('scheme://host:port')" },
		{ "nats://a:42x", "'nats://a:42x' needs a port 1..65535 ('scheme://host:port')" },
		{ "nats://:4222", "'nats://:4222' has a bad host" },
		{ "nats://a..b:4222", "'nats://a..b:4222' has a bad host" },
		{ "nats://u@a:4222", "'nats://u@a:4222' has a bad host" },
		{ "nats://a/x:4222", "'nats://a/x:4222' has a bad host" },
		{ "nats://::1:4222", "'nats://::1:4222' has a bad host" },
		{ "nats://[zz]:4222", "'nats://[zz]:4222' has a bad host" },
		{ "nats://a:1,,nats://b:2", "empty entry in the list" },
		{ "nats://a:1,", "empty entry in the list" },
		{ ",nats://a:1", "empty entry in the list" },
		{ "nats://a:1 nats://b:2", "separate the URLs with commas" },
	};
	char text[256], want[400];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "[region a]\nurls = %s\n",
			 bad[i][0]);
		snprintf(want, sizeof(want),
			 "2: bad value '%s' for region.a.urls: %s", bad[i][0],
			 bad[i][1]);
		ASSERT_REJECTS(text, want);
	}
	ASSERT_REJECTS("[region a]\nurls =\n",
		       "2: bad value '' for region.a.urls: must not be empty");
}

TEST_F(cfg, urls_hold_at_most_1024_characters)
{
	char v[1200], err[1400];
	size_t n = 0;

	/* 1024 exactly: 59 URLs of 16 characters and a comma, one of 21. */
	config_init(&self->c);
	for (int i = 0; i < 59; i++)
		n += (size_t)snprintf(v + n, sizeof(v) - n,
				      "nats://h%03d:4222,", i);
	snprintf(v + n, sizeof(v) - n, "nats://h00000000:4222");
	ASSERT_EQ(1024u, strlen(v));
	ASSERT_EQ(0, config_set(&self->c, "region.a.urls", v, self->err,
				sizeof(self->err))) {
		TH_LOG("%s", self->err);
	}
	ASSERT_STREQ(v, self->c.region[0].urls);
	strcat(v, "2");
	self->poison = self->c;
	ASSERT_EQ(-EINVAL, config_set(&self->c, "region.a.urls", v, err,
				      sizeof(err)));
	ASSERT_NE(NULL, strstr(err, "for region.a.urls: longer than 1024 characters"));
	ASSERT_EQ(0, memcmp(&self->c, &self->poison, sizeof(self->c)));
}

TEST_F(cfg, bad_metrics_listen_is_rejected)
{
	ASSERT_REJECTS("[ship]\nmetrics_listen = localhost:9464\n",
		       "2: bad value 'localhost:9464' for ship.metrics_listen: 'localhost' is not an IPv4 address (names are not resolved; use [..] for IPv6)");
	ASSERT_REJECTS("[ship]\nmetrics_listen = 127.0.0.1\n",
		       "2: bad value '127.0.0.1' for ship.metrics_listen: expected HOST:PORT with a port 1..65535");
	ASSERT_REJECTS("[ship]\nmetrics_listen = 127.0.0.1:0\n",
		       "2: bad value '127.0.0.1:0' for ship.metrics_listen: expected HOST:PORT with a port 1..65535");
	ASSERT_REJECTS("[ship]\nmetrics_listen = :9464\n",
		       "2: bad value ':9464' for ship.metrics_listen: expected an IPv4 address or [IPv6 address] before the port");
	ASSERT_REJECTS("[ship]\nmetrics_listen = ::1:9464\n",
		       "2: bad value '::1:9464' for ship.metrics_listen: '::1' is not an IPv4 address (names are not resolved; use [..] for IPv6)");
	ASSERT_REJECTS("[ship]\nmetrics_listen = [::g]:9464\n",
		       "2: bad value '[::g]:9464' for ship.metrics_listen: '[::g]' is not an [IPv6 address]");
	ASSERT_REJECTS("[ship]\nmetrics_listen = [::1]:99999\n",
		       "2: bad value '[::1]:99999' for ship.metrics_listen: expected HOST:PORT with a port 1..65535");
}

TEST_F(cfg, listen_address_becomes_a_socket_address)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	struct in6_addr lo6 = IN6ADDR_LOOPBACK_INIT;
	socklen_t len = 0;
	char why[128];

	ASSERT_EQ(0, config_listen_addr("127.0.0.1:9464", &ss, &len, why,
					sizeof(why)));
	ASSERT_EQ(sizeof(*s4), len);
	ASSERT_EQ(AF_INET, s4->sin_family);
	ASSERT_EQ(9464, ntohs(s4->sin_port));
	ASSERT_EQ(htonl(INADDR_LOOPBACK), s4->sin_addr.s_addr);
	ASSERT_EQ(0, config_listen_addr("[::1]:1", &ss, &len, why,
					sizeof(why)));
	ASSERT_EQ(sizeof(*s6), len);
	ASSERT_EQ(AF_INET6, s6->sin6_family);
	ASSERT_EQ(1, ntohs(s6->sin6_port));
	ASSERT_EQ(0, memcmp(&lo6, &s6->sin6_addr, sizeof(lo6)));
	/* Out-parameters only on success. */
	len = 7;
	ASSERT_EQ(-EINVAL, config_listen_addr("1.2.3:80", &ss, &len, why,
					      sizeof(why)));
	ASSERT_EQ(7u, len);
}

TEST_F(cfg, bad_region_names_are_rejected_at_the_header)
{
	char text[128], want[200];

	ASSERT_REJECTS("[ship]\n[region a.b]\nurls = nats://a:1\n",
		       "2: bad region name 'a.b': only letters, digits, '_' and '-' allowed");
	ASSERT_REJECTS("[region eu west]\n",
		       "1: bad region name 'eu west': only letters, digits, '_' and '-' allowed");
	ASSERT_REJECTS("[region]\n",
		       "1: bad region name '': must be 1..64 characters");
	snprintf(text, sizeof(text), "[region %065d]\n", 0);
	snprintf(want, sizeof(want),
		 "1: bad region name '%065d': must be 1..64 characters", 0);
	ASSERT_REJECTS(text, want);
	/* "region" must be followed by a space and the name. */
	ASSERT_REJECTS("[regions a]\n", "1: unknown section [regions a]");
}

TEST_F(cfg, more_than_eight_regions_are_rejected)
{
	char text[1024];
	int n = 0;

	for (int i = 0; i <= CONFIG_REGIONS_MAX; i++)
		n += snprintf(text + n, sizeof(text) - n,
			      "[region r%d]\nurls = nats://h:1\n", i);
	ASSERT_REJECTS(text, "17: too many regions (max 8)");
}

TEST_F(cfg, duplicate_region_is_rejected_naming_the_first)
{
	ASSERT_REJECTS("[ship]\n[region a]\nurls = nats://a:1\n[region b]\n"
		       "urls = nats://b:1\n[region a]\n",
		       "6: duplicate region 'a' (first defined on line 2)");
}

TEST_F(cfg, region_without_urls_is_rejected_after_the_file)
{
	ASSERT_REJECTS("[region a]\nurls = nats://a:1\n[region x]\nstream = X\n",
		       " region 'x' has no urls");
	/* An empty section is a region too. */
	ASSERT_REJECTS("[region y]\n", " region 'y' has no urls");
}

TEST_F(cfg, tls_cert_and_key_go_together)
{
	ASSERT_REJECTS("[region a]\nurls = tls://a:1\ntls_cert = /c.pem\n",
		       " region 'a' sets tls_cert without tls_key (set both or neither)");
	ASSERT_REJECTS("[region a]\nurls = tls://a:1\ntls_key = /k.pem\n",
		       " region 'a' sets tls_key without tls_cert (set both or neither)");
}

TEST_F(cfg, dotted_host_id_is_rejected_only_with_regions)
{
	ASSERT_REJECTS("[host]\nid = a.b\n[region a]\nurls = nats://a:1\n",
		       " host.id 'a.b' cannot contain '.' when regions are configured (it is a NATS subject token)");
	ASSERT_EQ(0, load_text(self, "[host]\nid = a.b\n"));
	ASSERT_STREQ("a.b", self->c.host_id);
}

TEST_F(cfg, unknown_and_duplicate_keys_in_a_region_name_it)
{
	ASSERT_REJECTS("[region x]\nurls = nats://a:1\nsubject = s\n",
		       "3: unknown key 'subject' in [region x]");
	ASSERT_REJECTS("[region x]\nurls = nats://a:1\n[region y]\n"
		       "urls = nats://b:1\nurls = nats://c:1\n",
		       "5: duplicate key 'urls' in [region y] (first set on line 4)");
	/* A [ship] key is unknown in a region, and the other way round. */
	ASSERT_REJECTS("[region x]\nmode = failover\n",
		       "2: unknown key 'mode' in [region x]");
	ASSERT_REJECTS("[ship]\nurls = nats://a:1\n",
		       "2: unknown key 'urls' in [ship]");
	/* An indented line continues the key, as libinih sees it. */
	ASSERT_REJECTS("[region x]\nurls = nats://a:1\n  [region y]\n",
		       "3: duplicate key 'urls' in [region x] (first set on line 2)");
}

TEST_F(cfg, set_takes_ship_and_region_keys)
{
	config_init(&self->c);
	ASSERT_EQ(0, config_set(&self->c, "ship.mode", "failover", self->err,
				sizeof(self->err)));
	ASSERT_EQ(CONFIG_SHIP_FAILOVER, (int)self->c.ship_mode);
	ASSERT_EQ(0, config_set(&self->c, "ship.max_message", "64K",
				self->err, sizeof(self->err)));
	ASSERT_EQ(64u << 10, self->c.ship_max_message);
	ASSERT_EQ(0, config_set(&self->c, "host.id", "h1", self->err,
				sizeof(self->err)));
	/* A new region, urls first. */
	ASSERT_EQ(0, config_set(&self->c, "region.a.urls", "nats://a:1",
				self->err, sizeof(self->err)));
	ASSERT_EQ(0, config_set(&self->c, "region.a.weight", "7", self->err,
				sizeof(self->err)));
	ASSERT_EQ(0, config_set(&self->c, "region.b-2.urls",
				"tls://b:2, tls://c:3", self->err,
				sizeof(self->err)));
	ASSERT_EQ(2u, self->c.nr_regions);
	ASSERT_STREQ("a", self->c.region[0].name);
	ASSERT_EQ(7u, self->c.region[0].weight);
	ASSERT_STREQ("EVRING", self->c.region[0].stream);
	ASSERT_STREQ("b-2", self->c.region[1].name);
	ASSERT_STREQ("tls://b:2,tls://c:3", self->c.region[1].urls);
	/* An existing region's key is replaced. */
	ASSERT_EQ(0, config_set(&self->c, "region.a.urls", "nats://z:9",
				self->err, sizeof(self->err)));
	ASSERT_EQ(2u, self->c.nr_regions);
	ASSERT_STREQ("nats://z:9", self->c.region[0].urls);
}

TEST_F(cfg, set_rejects_bad_ship_and_region_keys_exactly)
{
	static const char *const bad[][3] = {
		{ "ship.mode", "x",
		  "--set: bad value 'x' for ship.mode: expected 'replicate' or 'failover'" },
		{ "ship.nope", "1", "--set: unknown key 'ship.nope'" },
		{ "region.urls", "nats://a:1", "--set: unknown key 'region.urls'" },
		{ "region.a", "nats://a:1", "--set: unknown key 'region.a'" },
		{ "region.a.nope", "1", "--set: unknown key 'region.a.nope'" },
		{ "region.a b.urls", "nats://a:1",
		  "--set: bad region name 'a b': only letters, digits, '_' and '-' allowed" },
		{ "region.a.b.urls", "nats://a:1",
		  "--set: bad region name 'a.b': only letters, digits, '_' and '-' allowed" },
		{ "region..urls", "nats://a:1",
		  "--set: bad region name '': must be 1..64 characters" },
		{ "region.r0123456789012345678901234567890123456789012345678901234567890123456789.urls",
		  "nats://a:1",
		  "--set: bad region name 'r0123456789012345678901234567890123456789012345678901234567890123456789': must be 1..64 characters" },
		{ "region.a.urls", "nats://a",
		  "--set: bad value 'nats://a' for region.a.urls: 'nats://a' needs a port 1..65535 ('scheme://host:port')" },
		{ "region.new.stream", "S", "--set: region 'new' has no urls" },
		{ "ship.backoff_cap_ms", "99",
		  "--set: ship.backoff_base_ms (100) is greater than ship.backoff_cap_ms (99)" },
		{ "ship.window_max", "1", "--set: ship.window_min (2) is greater than ship.window_max (1)" },
		{ "host.id", "a.b",
		  "--set: host.id 'a.b' cannot contain '.' when regions are configured (it is a NATS subject token)" },
		{ "region.r.tls_key", "/k.pem",
		  "--set: region 'r' sets tls_key without tls_cert (set both or neither)" },
	};
	char name[80];

	config_init(&self->c);
	ASSERT_EQ(0, config_set(&self->c, "host.id", "h", self->err,
				sizeof(self->err)));
	ASSERT_EQ(0, config_set(&self->c, "ship.window_min", "2", self->err,
				sizeof(self->err)));
	ASSERT_EQ(0, config_set(&self->c, "region.r.urls", "nats://r:1",
				self->err, sizeof(self->err)));
	self->poison = self->c;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ASSERT_EQ(-EINVAL, config_set(&self->c, bad[i][0], bad[i][1],
					      self->err, sizeof(self->err)));
		ASSERT_STREQ(bad[i][2], self->err);
		ASSERT_EQ(0, memcmp(&self->c, &self->poison, sizeof(self->c)));
	}
	for (int i = 1; i < CONFIG_REGIONS_MAX; i++) {
		snprintf(name, sizeof(name), "region.r%d.urls", i);
		ASSERT_EQ(0, config_set(&self->c, name, "nats://r:1",
					self->err, sizeof(self->err)));
	}
	self->poison = self->c;
	ASSERT_EQ(-EINVAL, config_set(&self->c, "region.nine.urls",
				      "nats://r:1", self->err,
				      sizeof(self->err)));
	ASSERT_STREQ("--set: too many regions (max 8)", self->err);
	ASSERT_EQ(0, memcmp(&self->c, &self->poison, sizeof(self->c)));
}

/* A config with regions a and b, for the reload tests. */
static void two_regions(struct __test_metadata *_metadata,
			struct evd_config *c)
{
	char err[256];

	config_init(c);
	ASSERT_EQ(0, config_set(c, "host.id", "h", err, sizeof(err)));
	ASSERT_EQ(0, config_set(c, "region.a.urls", "nats://a:1", err,
				sizeof(err)));
	ASSERT_EQ(0, config_set(c, "region.b.urls", "nats://b:1", err,
				sizeof(err)));
}

TEST_F(cfg, reload_keeps_regions_fixed_and_ship_tuning_live)
{
	static const char *const fixed[][3] = {
		{ "region.a.urls", "nats://a:2", "region.a.urls" },
		{ "region.b.stream", "OTHER", "region.b.stream" },
		{ "region.a.subject_prefix", "x", "region.a.subject_prefix" },
		{ "region.a.replicas", "1", "region.a.replicas" },
		{ "region.a.create_stream", "no", "region.a.create_stream" },
		{ "region.a.dupe_window_ms", "1000", "region.a.dupe_window_ms" },
		{ "region.a.weight", "1", "region.a.weight" },
		{ "region.a.creds", "/c", "region.a.creds" },
		{ "region.a.tls_ca", "/ca", "region.a.tls_ca" },
		{ "region.c.urls", "nats://c:1", "region.c" },
	};
	struct evd_config old, new;
	char want[256], keys[256];

	two_regions(_metadata, &old);
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		new = old;
		ASSERT_EQ(0, config_set(&new, fixed[i][0], fixed[i][1],
					self->err, sizeof(self->err)));
		ASSERT_EQ(0, config_set(&new, "ship.backoff_base_ms", "7",
					self->err, sizeof(self->err)));
		ASSERT_EQ(-EBUSY, config_reload_diff(&old, &new, self->err,
						     sizeof(self->err)));
		snprintf(want, sizeof(want),
			 "%s cannot change while running (restart evringd to apply it)",
			 fixed[i][2]);
		ASSERT_STREQ(want, self->err);
		ASSERT_EQ(2, config_changed_keys(&old, &new, keys,
						 sizeof(keys)));
		snprintf(want, sizeof(want), "ship.backoff_base_ms %s",
			 fixed[i][2]);
		ASSERT_STREQ(want, keys);
	}
	/* ship.backoff_base_ms alone is live. */
	new = old;
	ASSERT_EQ(0, config_set(&new, "ship.backoff_base_ms", "7", self->err,
				sizeof(self->err)));
	ASSERT_EQ(0, config_reload_diff(&old, &new, self->err,
					sizeof(self->err)));
	ASSERT_EQ(7u, new.ship_backoff_base_ms);
	/* A region removed, and the same regions in another order. */
	two_regions(_metadata, &new);
	new.nr_regions = 1;
	memset(&new.region[1], 0, sizeof(new.region[1]));
	ASSERT_EQ(-EBUSY, config_reload_diff(&old, &new, self->err,
					     sizeof(self->err)));
	ASSERT_STREQ("region.b cannot change while running (restart evringd to apply it)",
		     self->err);
	new = old;
	new.region[0] = old.region[1];
	new.region[1] = old.region[0];
	ASSERT_EQ(-EBUSY, config_reload_diff(&old, &new, self->err,
					     sizeof(self->err)));
	ASSERT_STREQ("region.b cannot change while running (restart evringd to apply it)",
		     self->err);
	ASSERT_EQ(2, config_changed_keys(&old, &new, keys, sizeof(keys)));
	ASSERT_STREQ("region.b region.a", keys);
	/* The same file again: nothing changed. */
	two_regions(_metadata, &new);
	ASSERT_EQ(0, config_reload_diff(&old, &new, self->err,
					sizeof(self->err)));
	ASSERT_EQ(0, memcmp(&old, &new, sizeof(old)));
}

/*
 * The example's [region a] and [region b], uncommented too, load: two
 * regions, as documented.
 */
TEST_F(cfg, example_regions_load)
{
	char text[32768], out[40000] = "[host]\nid = example-host\n";
	size_t used = strlen(out), n;
	FILE *f = fopen(EXAMPLE_REL, "re");

	ASSERT_NE(NULL, f) {
		TH_LOG("run from the repository root (%s not found)",
		       EXAMPLE_REL);
	}
	n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	fclose(f);
	for (char *p = text, *nl; *p; p = nl + 1) {
		nl = strchrnul(p, '\n');
		if (p[0] == '#' && p[1] != ' ' && p[1] != '#' && p[1] &&
		    (strchr(p, '=') < nl || !strncmp(p, "#[region ", 9)) &&
		    !memchr(p, '<', nl - p))
			used += snprintf(out + used, sizeof(out) - used,
					 "%.*s\n", (int)(nl - p - 1), p + 1);
		else if (p[0] == '[')
			used += snprintf(out + used, sizeof(out) - used,
					 "%.*s\n", (int)(nl - p), p);
		ASSERT_LT(used, sizeof(out));
		if (!*nl)
			break;
	}
	ASSERT_EQ(0, load_text(self, out)) {
		TH_LOG("%s", self->err);
	}
	ASSERT_EQ(2u, self->c.nr_regions);
	ASSERT_STREQ("a", self->c.region[0].name);
	ASSERT_STREQ("b", self->c.region[1].name);
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
		"mode", "max_message", "publish_timeout_ms",
		"backoff_base_ms", "backoff_cap_ms", "retry_rate",
		"retry_burst", "dead_letter_after", "breaker_failures",
		"breaker_latency_factor", "breaker_slow_acks",
		"breaker_open_ms", "breaker_probes", "window_min",
		"window_max", "rate_limit", "lag_limit_s",
		"failback_hold_ms", "metrics_listen", "urls", "stream",
		"subject_prefix", "replicas", "create_stream",
		"dupe_window_ms", "weight", "creds", "tls_ca", "tls_cert",
		"tls_key",
	};
	struct evd_config defaults;
	char line[512], text[32768], out[32768] = "";
	size_t used = 0, n;
	bool regions = false;
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
		/* The example regions, last, are not defaults. */
		regions |= !strncmp(p, "#[region ", 9);
		if (!regions && p[0] == '#' && p[1] != ' ' && p[1] != '#' &&
		    p[1] && strchr(p, '='))
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
