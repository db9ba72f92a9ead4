// SPDX-License-Identifier: GPL-2.0-only
/*
 * scenario_test: daemon/drill_scenario.c against daemon/drill_scenario.h
 * and docs/DRILLS.md: the defaults, a file that sets every key, every
 * rejection (exact errno and message), the shipped drills/NAME.ini (each one
 * parses and its short version still fits), the shortening and the
 * traffic shapes.
 *
 * Every failing load is made on a poisoned struct, which must come back
 * byte for byte unchanged.  Run from the repository root.
 */
#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "drill_scenario.h"
#include "kselftest_harness.h"

/* The harness compares with ==: literals against unsigned fields. */
#pragma GCC diagnostic ignored "-Wsign-compare"

FIXTURE(sc) {
	char dir[64];
	char path[128];
	char err[512];
	struct drill_scenario s, poison;
};

FIXTURE_SETUP(sc)
{
	strcpy(self->dir, "/tmp/drill_scenario_test.XXXXXX");
	ASSERT_NE(NULL, mkdtemp(self->dir));
	snprintf(self->path, sizeof(self->path), "%s/d.ini", self->dir);
	memset(&self->poison, 0xa5, sizeof(self->poison));
	self->s = self->poison;
}

FIXTURE_TEARDOWN(sc)
{
	unlink(self->path);
	rmdir(self->dir);
}

static int load_text(FIXTURE_DATA(sc) *self, const char *text)
{
	FILE *f = fopen(self->path, "we");

	if (!f || fputs(text, f) < 0 || fclose(f))
		abort();
	return drill_scenario_load(&self->s, self->path, self->err,
				   sizeof(self->err));
}

/* A minimal valid head: [drill] with name and duration. */
#define HEAD "[drill]\nname = t\nduration_s = 60\n"
/* ... and one valid fault after it. */
#define FAULT "[fault f]\nkind = region-kill\ntarget = r1\nat_s = 1\nfor_s = 2\n"

/* The load of @text fails with -EINVAL and exactly "PATH:@msg". */
#define ASSERT_REJECTS(text, msg) do { \
	char _want[700]; \
	self->s = self->poison; \
	ASSERT_EQ(-EINVAL, load_text(self, text)); \
	snprintf(_want, sizeof(_want), "%s:%s", self->path, msg); \
	ASSERT_STREQ(_want, self->err); \
	ASSERT_EQ(0, memcmp(&self->s, &self->poison, sizeof(self->s))); \
} while (0)

TEST_F(sc, minimal_file_gets_the_documented_defaults)
{
	ASSERT_EQ(0, load_text(self, HEAD FAULT)) TH_LOG("%s", self->err);
	EXPECT_STREQ("t", self->s.name);
	EXPECT_STREQ("", self->s.description);
	EXPECT_EQ(60000, self->s.duration_ms);
	EXPECT_EQ(10000, self->s.check_duration_ms);
	EXPECT_EQ(DRILL_REPLICATE, self->s.mode);
	EXPECT_EQ(2, self->s.regions);
	EXPECT_EQ(1000, self->s.traffic.rate);
	EXPECT_EQ(128, self->s.traffic.size);
	EXPECT_EQ(1, self->s.traffic.writers);
	EXPECT_EQ(DRILL_STEADY, self->s.traffic.shape);
	EXPECT_EQ(DRILL_PATH_DEVICE, self->s.traffic.path);
	EXPECT_EQ(1000, self->s.sla.latency_ms);
	EXPECT_EQ(30000, self->s.sla.abort_after_ms);
	EXPECT_EQ(5000, self->s.sla.recover_within_ms);
	ASSERT_EQ(1, self->s.nr_faults);
	EXPECT_STREQ("f", self->s.fault[0].name);
	EXPECT_EQ(DRILL_REGION_KILL, self->s.fault[0].kind);
	EXPECT_EQ(0, self->s.fault[0].target_region);
	EXPECT_EQ(1000, self->s.fault[0].at_ms);
	EXPECT_EQ(2000, self->s.fault[0].for_ms);
	EXPECT_EQ(4, self->s.fault[0].line);
}

TEST_F(sc, short_drill_defaults_check_duration_to_its_duration)
{
	ASSERT_EQ(0, load_text(self, "[drill]\nname = t\nduration_s = 4.5\n"
				     FAULT));
	EXPECT_EQ(4500, self->s.check_duration_ms);
}

TEST_F(sc, full_file_sets_every_key)
{
	ASSERT_EQ(0, load_text(self,
		"; a comment\n"
		"[drill]\nname = full-1\ndescription = every key, set\n"
		"duration_s = 120.25\ncheck_duration_s = 20\nmode = failover\n"
		"regions = 3\n"
		"[traffic]\nrate = 5000\nsize = 1024\nwriters = 8\n"
		"shape = ramp\nrate_from = 100\npath = socket\n"
		"[sla]\nlatency_ms = 250\nabort_after_s = 0\n"
		"recover_within_s = 2.5\n"
		"[fault slow]\nkind = region-slow\ntarget = r3\nat_s = 0\n"
		"for_s = 10\nlatency_ms = 100\njitter_ms = 10\nloss_pct = 5\n"
		"rate_kbit = 512\n"
		"[fault flap]\nkind = region-flap\ntarget = r2\nat_s = 1\n"
		"for_s = 9\nperiod_s = 0.5\n"
		"[fault kill]\nkind = daemon-kill\nat_s = 20\nfor_s = 30\n"
		"every_s = 3\n"
		"[fault full]\nkind = spool-full\ntarget = evringd\nat_s = 60\n"
		"for_s = 5\nfs_size = 16M\n"
		"[fault fp]\nkind = failpoint\nname = drain.after_commit\n"
		"at_s = 70\nfor_s = 1\n"
		"[fault p]\nkind = region-partition\ntarget = r1\nat_s = 1\nfor_s = 1\n"
		"[fault o]\nkind = region-oneway\ntarget = r1\nat_s = 3\nfor_s = 1\n"
		"[fault z]\nkind = region-pause\ntarget = r1\nat_s = 5\nfor_s = 1\n"))
		TH_LOG("%s", self->err);
	const struct drill_scenario *s = &self->s;
	EXPECT_STREQ("full-1", s->name);
	EXPECT_STREQ("every key, set", s->description);
	EXPECT_EQ(120250, s->duration_ms);
	EXPECT_EQ(20000, s->check_duration_ms);
	EXPECT_EQ(DRILL_FAILOVER, s->mode);
	EXPECT_EQ(3, s->regions);
	EXPECT_EQ(5000, s->traffic.rate);
	EXPECT_EQ(1024, s->traffic.size);
	EXPECT_EQ(8, s->traffic.writers);
	EXPECT_EQ(DRILL_RAMP, s->traffic.shape);
	EXPECT_EQ(100, s->traffic.rate_from);
	EXPECT_EQ(DRILL_PATH_SOCKET, s->traffic.path);
	EXPECT_EQ(250, s->sla.latency_ms);
	EXPECT_EQ(0, s->sla.abort_after_ms);
	EXPECT_EQ(2500, s->sla.recover_within_ms);
	ASSERT_EQ(8, s->nr_faults);
	EXPECT_EQ(DRILL_REGION_SLOW, s->fault[0].kind);
	EXPECT_EQ(2, s->fault[0].target_region);
	EXPECT_EQ(100, s->fault[0].latency_ms);
	EXPECT_EQ(10, s->fault[0].jitter_ms);
	EXPECT_EQ(5, s->fault[0].loss_pct);
	EXPECT_EQ(512, s->fault[0].rate_kbit);
	EXPECT_EQ(DRILL_REGION_FLAP, s->fault[1].kind);
	EXPECT_EQ(500, s->fault[1].period_ms);
	EXPECT_EQ(DRILL_DAEMON_KILL, s->fault[2].kind);
	EXPECT_STREQ("evringd", s->fault[2].target);
	EXPECT_EQ(-1, s->fault[2].target_region);
	EXPECT_EQ(3000, s->fault[2].every_ms);
	EXPECT_EQ(DRILL_SPOOL_FULL, s->fault[3].kind);
	EXPECT_EQ(16ull << 20, s->fault[3].fs_size);
	EXPECT_EQ(DRILL_FAILPOINT, s->fault[4].kind);
	EXPECT_STREQ("drain.after_commit", s->fault[4].failpoint);
	EXPECT_EQ(DRILL_REGION_PARTITION, s->fault[5].kind);
	EXPECT_EQ(DRILL_REGION_ONEWAY, s->fault[6].kind);
	EXPECT_EQ(DRILL_REGION_PAUSE, s->fault[7].kind);
	EXPECT_EQ(64ull << 20, s->fault[0].fs_size);	/* default, unused */
}

TEST_F(sc, missing_file_is_enoent_naming_it)
{
	char want[256];

	ASSERT_EQ(-ENOENT, drill_scenario_load(&self->s, "/nonexistent/d.ini",
					       self->err, sizeof(self->err)));
	EXPECT_STREQ("cannot open '/nonexistent/d.ini': No such file or directory",
		     self->err);
	ASSERT_EQ(-EISDIR, drill_scenario_load(&self->s, self->dir, self->err,
					       sizeof(self->err)));
	snprintf(want, sizeof(want), "cannot open '%s': Is a directory",
		 self->dir);
	EXPECT_STREQ(want, self->err);
	EXPECT_EQ(0, memcmp(&self->s, &self->poison, sizeof(self->s)));
}

TEST_F(sc, syntax_errors_are_rejected_with_their_line)
{
	ASSERT_REJECTS("[drill]\nname = t\n[bogus]\n", "3: unknown section [bogus]");
	ASSERT_REJECTS("[drill]\nnme = t\n", "2: unknown key 'nme' in [drill]");
	ASSERT_REJECTS("[fault x]\nlatency = 1\n",
		       "2: unknown key 'latency' in [fault x]");
	ASSERT_REJECTS("name = t\n", "1: key 'name' outside a [section]");
	ASSERT_REJECTS("[drill]\nname t\n",
		       "2: syntax error (expected 'key = value' or '[section]')");
	ASSERT_REJECTS("[drill]\nname = a\nname = b\n",
		       "3: duplicate key 'name' in [drill] (first set on line 2)");
	ASSERT_REJECTS(HEAD "[fault f]\nat_s = 1\nat_s = 2\n",
		       "6: duplicate key 'at_s' in [fault f] (first set on line 5)");
	ASSERT_REJECTS(HEAD FAULT "[fault f]\n",
		       "9: duplicate fault 'f' (first defined on line 4)");
	ASSERT_REJECTS("[fault a.b]\n",
		       "1: bad fault name 'a.b': only letters, digits, '_' and '-' allowed");
	ASSERT_REJECTS("[fault]\n", "1: bad fault name '': must be 1..64 characters");
}

TEST_F(sc, over_long_line_and_nul_byte_are_rejected)
{
	char text[400];

	snprintf(text, sizeof(text), "[drill]\ndescription = %0250d\n", 0);
	ASSERT_REJECTS(text, "2: line too long (max 198 characters)");
	{
		static const char nul[] = "[drill]\nname = a\0b\n";
		FILE *f = fopen(self->path, "we");

		ASSERT_NE(NULL, f);
		ASSERT_EQ(1, fwrite(nul, sizeof(nul) - 1, 1, f));
		ASSERT_EQ(0, fclose(f));
		ASSERT_EQ(-EINVAL, drill_scenario_load(&self->s, self->path,
						       self->err,
						       sizeof(self->err)));
		EXPECT_EQ(0, strcmp(strchr(self->err, ':'), ":2: NUL byte in line"));
	}
}

TEST_F(sc, too_many_faults_is_rejected)
{
	char text[4096];
	int n = snprintf(text, sizeof(text), "%s", HEAD);

	for (int i = 0; i <= DRILL_FAULTS_MAX; i++)
		n += snprintf(text + n, sizeof(text) - n, "[fault f%d]\n", i);
	ASSERT_REJECTS(text, "20: too many faults (max 16)");
}

TEST_F(sc, bad_values_are_rejected_with_the_reason)
{
	ASSERT_REJECTS("[drill]\nname = a b\n",
		       "2: bad value 'a b' for drill.name: only letters, digits, '_' and '-' allowed");
	ASSERT_REJECTS("[drill]\nduration_s = ten\n",
		       "2: bad value 'ten' for drill.duration_s: not a number of seconds");
	ASSERT_REJECTS("[drill]\nduration_s = 1.2345\n",
		       "2: bad value '1.2345' for drill.duration_s: more than 3 decimals (milliseconds)");
	ASSERT_REJECTS("[drill]\nduration_s = 1.\n",
		       "2: bad value '1.' for drill.duration_s: not a number of seconds");
	ASSERT_REJECTS("[drill]\nduration_s = 0.5\n",
		       "2: bad value '0.5' for drill.duration_s: out of range (1..86400 s)");
	ASSERT_REJECTS("[drill]\nduration_s = 99999999999\n",
		       "2: bad value '99999999999' for drill.duration_s: number too large");
	ASSERT_REJECTS("[drill]\nmode = both\n",
		       "2: bad value 'both' for drill.mode: expected 'replicate' or 'failover'");
	ASSERT_REJECTS("[drill]\nregions = 9\n",
		       "2: bad value '9' for drill.regions: out of range (1..8)");
	ASSERT_REJECTS("[drill]\nregions = -1\n",
		       "2: bad value '-1' for drill.regions: not a number");
	ASSERT_REJECTS("[traffic]\nrate = 0\n",
		       "2: bad value '0' for traffic.rate: out of range (1..1000000)");
	ASSERT_REJECTS("[traffic]\nsize = 40\n",
		       "2: bad value '40' for traffic.size: out of range (48..65536)");
	ASSERT_REJECTS("[traffic]\nwriters = 65\n",
		       "2: bad value '65' for traffic.writers: out of range (1..64)");
	ASSERT_REJECTS("[traffic]\nshape = square\n",
		       "2: bad value 'square' for traffic.shape: expected 'steady', 'ramp' or 'burst'");
	ASSERT_REJECTS("[traffic]\npath = pipe\n",
		       "2: bad value 'pipe' for traffic.path: expected 'device' or 'socket'");
	ASSERT_REJECTS("[traffic]\nrate = 1k\n",
		       "2: bad value '1k' for traffic.rate: not a number");
	ASSERT_REJECTS("[sla]\nlatency_ms = 0\n",
		       "2: bad value '0' for sla.latency_ms: out of range (1..3600000)");
	ASSERT_REJECTS("[sla]\nrecover_within_s = 0\n",
		       "2: bad value '0' for sla.recover_within_s: out of range (0.001..3600 s)");
	ASSERT_REJECTS("[fault f]\nkind = region-explode\n",
		       "2: bad value 'region-explode' for fault.f.kind: expected region-kill, region-pause, region-partition, region-oneway, region-slow, region-flap, daemon-kill, spool-full or failpoint");
	ASSERT_REJECTS("[fault f]\ntarget = r9\n",
		       "2: bad value 'r9' for fault.f.target: expected r1..r8 or 'evringd'");
	ASSERT_REJECTS("[fault f]\nfor_s = 0\n",
		       "2: bad value '0' for fault.f.for_s: out of range (0.001..86400 s)");
	ASSERT_REJECTS("[fault f]\nloss_pct = 101\n",
		       "2: bad value '101' for fault.f.loss_pct: out of range (0..100)");
	ASSERT_REJECTS("[fault f]\nfs_size = 512K\n",
		       "2: bad value '512K' for fault.f.fs_size: out of range (1M..4G)");
	ASSERT_REJECTS("[fault f]\nfs_size = 8Q\n",
		       "2: bad value '8Q' for fault.f.fs_size: bad size suffix 'Q' (use K, M or G)");
	ASSERT_REJECTS("[fault f]\nname = ship.somewhere\n",
		       "2: bad value 'ship.somewhere' for fault.f.name: unknown failpoint (see drill_failpoints in docs/DRILLS.md)");
	ASSERT_REJECTS("[drill]\ndescription = tab\there\n",
		       "2: bad value 'tab\there' for drill.description: not printable text");
}

TEST_F(sc, drill_rules_are_checked_after_the_file)
{
	ASSERT_REJECTS("[drill]\nduration_s = 60\n" FAULT, " drill.name is required");
	ASSERT_REJECTS("[drill]\nname = t\n" FAULT, " drill.duration_s is required");
	ASSERT_REJECTS(HEAD,
		       " no [fault NAME] section (a drill injects at least one fault)");
	ASSERT_REJECTS(HEAD "check_duration_s = 61\n" FAULT,
		       " drill.check_duration_s (61) is longer than drill.duration_s (60)");
	ASSERT_REJECTS(HEAD "mode = failover\nregions = 1\n" FAULT,
		       " drill.mode failover needs at least 2 regions");
	ASSERT_REJECTS(HEAD "[traffic]\nrate_from = 5\n" FAULT,
		       "5: traffic.rate_from applies to shape ramp only");
	ASSERT_REJECTS(HEAD "[traffic]\nshape = ramp\n" FAULT,
		       " traffic.shape ramp needs traffic.rate_from");
	ASSERT_REJECTS(HEAD "[traffic]\nburst_s = 1\n" FAULT,
		       "5: traffic.burst_s applies to shape burst only");
	ASSERT_REJECTS(HEAD "[traffic]\nshape = steady\nburst_every_s = 1\n" FAULT,
		       "6: traffic.burst_every_s applies to shape burst only");
	ASSERT_REJECTS(HEAD "[traffic]\nshape = burst\nburst_s = 1\n" FAULT,
		       " traffic.shape burst needs traffic.burst_s and traffic.burst_every_s");
	ASSERT_REJECTS(HEAD "[traffic]\nshape = burst\nburst_s = 5\nburst_every_s = 5\n" FAULT,
		       " traffic.burst_s (5) must be shorter than traffic.burst_every_s (5)");
}

TEST_F(sc, fault_rules_are_checked_with_the_line_at_fault)
{
	ASSERT_REJECTS(HEAD "[fault f]\nat_s = 1\nfor_s = 1\n",
		       "4: fault 'f' has no kind");
	ASSERT_REJECTS(HEAD "[fault f]\nkind = region-kill\nfor_s = 1\n",
		       "4: fault 'f' has no at_s");
	ASSERT_REJECTS(HEAD "[fault f]\nkind = region-kill\nat_s = 1\n",
		       "4: fault 'f' has no for_s");
	ASSERT_REJECTS(HEAD "[fault f]\nkind = region-kill\nat_s = 1\nfor_s = 1\n",
		       "4: fault 'f' has no target");
	ASSERT_REJECTS(HEAD FAULT "period_s = 0.5\n",
		       "9: fault 'f': key 'period_s' does not apply to kind 'region-kill'");
	ASSERT_REJECTS(HEAD "[fault f]\nlatency_ms = 5\nkind = daemon-kill\nat_s = 1\nfor_s = 1\nevery_s = 1\n",
		       "5: fault 'f': key 'latency_ms' does not apply to kind 'daemon-kill'");
	ASSERT_REJECTS(HEAD "[fault f]\nkind = region-pause\ntarget = evringd\nat_s = 1\nfor_s = 1\n",
		       "6: fault 'f': kind 'region-pause' targets a region (r1..r2), not 'evringd'");
	ASSERT_REJECTS(HEAD "[fault f]\nkind = daemon-kill\ntarget = r1\nat_s = 1\nfor_s = 1\nevery_s = 1\n",
		       "6: fault 'f': kind 'daemon-kill' targets evringd, not 'r1'");
	ASSERT_REJECTS(HEAD "[fault f]\nkind = region-kill\ntarget = r3\nat_s = 1\nfor_s = 1\n",
		       "6: fault 'f': unknown target 'r3' (regions are r1..r2, or evringd)");
	ASSERT_REJECTS(HEAD "[fault f]\nkind = region-kill\ntarget = r1\nat_s = 50\nfor_s = 10.5\n",
		       "8: fault 'f' ends at 60.5 s, after drill.duration_s (60 s)");
	ASSERT_REJECTS(HEAD "[fault f]\nkind = region-slow\ntarget = r1\nat_s = 1\nfor_s = 1\njitter_ms = 0\n",
		       "4: fault 'f': region-slow needs latency_ms, loss_pct or rate_kbit");
	ASSERT_REJECTS(HEAD "[fault f]\nkind = region-slow\ntarget = r1\nat_s = 1\nfor_s = 1\nlatency_ms = 20\njitter_ms = 50\n",
		       "10: fault 'f': jitter_ms (50) is greater than latency_ms (20)");
	ASSERT_REJECTS(HEAD "[fault f]\nkind = region-flap\ntarget = r1\nat_s = 1\nfor_s = 10\n",
		       "4: fault 'f': region-flap needs period_s");
	ASSERT_REJECTS(HEAD "[fault f]\nkind = region-flap\ntarget = r1\nat_s = 1\nfor_s = 10\nperiod_s = 10\n",
		       "9: fault 'f': period_s (10 s) must be shorter than for_s (10 s)");
	ASSERT_REJECTS(HEAD "[fault f]\nkind = daemon-kill\nat_s = 1\nfor_s = 10\n",
		       "4: fault 'f': daemon-kill needs every_s");
	ASSERT_REJECTS(HEAD "[fault f]\nkind = daemon-kill\nat_s = 1\nfor_s = 10\nevery_s = 20\n",
		       "8: fault 'f': every_s (20 s) is longer than for_s (10 s)");
	ASSERT_REJECTS(HEAD "[fault f]\nkind = failpoint\nat_s = 1\nfor_s = 10\n",
		       "4: fault 'f': failpoint needs name");
	ASSERT_REJECTS(HEAD FAULT "[fault g]\nkind = region-partition\ntarget = r1\nat_s = 2.999\nfor_s = 1\n",
		       "9: fault 'g' overlaps fault 'f' on target 'r1'");
}

TEST_F(sc, faults_back_to_back_or_on_other_targets_do_not_overlap)
{
	ASSERT_EQ(0, load_text(self, HEAD FAULT
		"[fault g]\nkind = region-partition\ntarget = r1\nat_s = 3\nfor_s = 1\n"
		"[fault h]\nkind = region-pause\ntarget = r2\nat_s = 1\nfor_s = 5\n"
		"[fault k]\nkind = daemon-kill\nat_s = 1\nfor_s = 5\nevery_s = 1\n"))
		TH_LOG("%s", self->err);
	EXPECT_EQ(4, self->s.nr_faults);
}

TEST_F(sc, short_err_buffer_is_truncated_not_overrun)
{
	char small[8];

	memset(small, 'x', sizeof(small));
	ASSERT_EQ(0, (load_text(self, HEAD), 0));
	ASSERT_EQ(-EINVAL, drill_scenario_load(&self->s, self->path, small,
					       sizeof(small)));
	EXPECT_EQ('\0', small[7]);
}

/* The drills the project ships, by name: a missing one fails. */
static const char *const shipped[] = {
	"region-outage", "region-pause", "region-partition", "region-slow",
	"region-flap", "daemon-kill-loop", "spool-disk-full",
	"burst-beyond-ship-rate", "outage-plus-daemon-crash",
};

TEST_F(sc, every_shipped_drill_parses_and_its_short_run_fits)
{
	unsigned int kinds = 0;
	glob_t g;

	for (size_t i = 0; i < sizeof(shipped) / sizeof(shipped[0]); i++) {
		struct drill_scenario s, sh;
		char path[128];

		snprintf(path, sizeof(path), "drills/%s.ini", shipped[i]);
		ASSERT_EQ(0, drill_scenario_load(&s, path, self->err,
						 sizeof(self->err)))
			TH_LOG("%s", self->err);
		EXPECT_STREQ(shipped[i], s.name);
		EXPECT_NE(0, s.description[0]);
		EXPECT_LT(s.check_duration_ms, s.duration_ms);
		EXPECT_GE(s.duration_ms, 30000) TH_LOG("%s", path);
		EXPECT_LE(s.check_duration_ms, 15000) TH_LOG("%s", path);
		drill_scenario_shorten(&s, &sh);
		EXPECT_EQ(s.check_duration_ms, sh.duration_ms);
		for (unsigned int f = 0; f < sh.nr_faults; f++) {
			EXPECT_LE(sh.fault[f].at_ms + sh.fault[f].for_ms,
				  sh.duration_ms);
			/* a short run still leaves time to recover */
			EXPECT_LE(sh.fault[f].at_ms + sh.fault[f].for_ms +
					  2000, sh.duration_ms) TH_LOG("%s", path);
			kinds |= 1u << s.fault[f].kind;
		}
	}
	/* Between them the drills use every kind of fault. */
	EXPECT_EQ((1u << DRILL_NR_FAULT_KINDS) - 1, kinds);
	/* And drills/ holds nothing else. */
	ASSERT_EQ(0, glob("drills/*.ini", 0, NULL, &g));
	EXPECT_EQ(sizeof(shipped) / sizeof(shipped[0]), g.gl_pathc);
	globfree(&g);
}

TEST(shorten_scales_the_schedule_and_keeps_the_sla)
{
	struct drill_scenario s = { 0 }, o;

	s.duration_ms = 60000;
	s.check_duration_ms = 12000;
	s.sla.latency_ms = 500;
	s.sla.recover_within_ms = 5000;
	s.traffic.rate = 10000;
	s.traffic.shape = DRILL_BURST;
	s.traffic.burst_ms = 3000;
	s.traffic.burst_every_ms = 15000;
	s.nr_faults = 2;
	s.fault[0].at_ms = 15000;
	s.fault[0].for_ms = 20000;
	s.fault[1].at_ms = 40000;
	s.fault[1].for_ms = 1;		/* stays at least 1 ms */
	s.fault[1].every_ms = 5000;
	drill_scenario_shorten(&s, &o);
	EXPECT_EQ(12000, o.duration_ms);
	EXPECT_EQ(3000, o.fault[0].at_ms);
	EXPECT_EQ(4000, o.fault[0].for_ms);
	EXPECT_EQ(8000, o.fault[1].at_ms);
	EXPECT_EQ(1, o.fault[1].for_ms);
	EXPECT_EQ(1000, o.fault[1].every_ms);
	EXPECT_EQ(600, o.traffic.burst_ms);
	EXPECT_EQ(3000, o.traffic.burst_every_ms);
	EXPECT_EQ(500, o.sla.latency_ms);
	EXPECT_EQ(5000, o.sla.recover_within_ms);
	EXPECT_EQ(10000, o.traffic.rate);
	drill_scenario_shorten(&s, &s);		/* in place */
	EXPECT_EQ(0, memcmp(&s, &o, sizeof(s)));
}

TEST(traffic_shapes_give_the_rate_over_time)
{
	struct drill_traffic t = { .rate = 1000, .shape = DRILL_STEADY };

	EXPECT_EQ(1000, drill_traffic_rate(&t, 0, 10000));
	EXPECT_EQ(1000, drill_traffic_rate(&t, 9999, 10000));
	t.shape = DRILL_RAMP;
	t.rate_from = 100;
	EXPECT_EQ(100, drill_traffic_rate(&t, 0, 10000));
	EXPECT_EQ(550, drill_traffic_rate(&t, 5000, 10000));
	EXPECT_EQ(1000, drill_traffic_rate(&t, 10000, 10000));
	t.rate_from = 2000;			/* ramps down too */
	EXPECT_EQ(1500, drill_traffic_rate(&t, 5000, 10000));
	t.shape = DRILL_BURST;
	t.burst_ms = 3000;
	t.burst_every_ms = 15000;
	EXPECT_EQ(10000, drill_traffic_rate(&t, 0, 60000));
	EXPECT_EQ(10000, drill_traffic_rate(&t, 2999, 60000));
	EXPECT_EQ(1000, drill_traffic_rate(&t, 3000, 60000));
	EXPECT_EQ(10000, drill_traffic_rate(&t, 15000, 60000));
	EXPECT_EQ(1000, drill_traffic_rate(&t, 29999, 60000));
}

TEST(names_round_trip)
{
	EXPECT_STREQ("region-oneway", drill_fault_kind_name(DRILL_REGION_ONEWAY));
	EXPECT_STREQ("failpoint", drill_fault_kind_name(DRILL_FAILPOINT));
	EXPECT_STREQ("failover", drill_mode_name(DRILL_FAILOVER));
	EXPECT_STREQ("burst", drill_shape_name(DRILL_BURST));
	EXPECT_STREQ("socket", drill_path_name(DRILL_PATH_SOCKET));
	EXPECT_STREQ("ship.after_publish", drill_failpoints[2]);
}

TEST_HARNESS_MAIN
