// SPDX-License-Identifier: GPL-2.0-only
/*
 * failpoint_test: evringd's failpoints (daemon/failpoint.h).
 *
 * The parser against every form it accepts (and the canonical text it
 * gives back) and every form it refuses, with the exact message; the
 * EVRING_FAILPOINTS list, all or nothing; hit counting and the "@N"
 * threshold; each action firing: "error" returns -EIO, "crash" kills the
 * process by SIGKILL exactly at the hit (in a child), "pause" sleeps and
 * returns (only its hit is checked, never its duration).  The names are
 * the ones daemon/drill_scenario.c gives drills.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "drill_scenario.h"
#include "failpoint.h"

/* EXPECT_EQ(99, kind) compares an int with an enum, as meant. */
#pragma GCC diagnostic ignored "-Wsign-compare"
#include "kselftest_harness.h"

#define ACTIONS "(expected off, crash, pause:MS or error, optionally followed by @N)"
#define NAMES "(expected drain.before_commit, drain.after_commit, ship.before_publish, ship.after_publish or ship.after_cursor)"

static uint64_t hits_of(enum failpoint_id id)
{
	struct failpoint_action a;
	uint64_t hits;

	failpoint_get(id, &a, &hits);
	return hits;
}

TEST(names_are_the_drills_names_and_look_up_both_ways)
{
	unsigned int n = 0;

	for (unsigned int i = 0; drill_failpoints[i]; i++) {
		enum failpoint_id id = FP_NR;

		ASSERT_EQ(0, failpoint_lookup(drill_failpoints[i], &id))
			TH_LOG("drill failpoint '%s' unknown to evringd",
			       drill_failpoints[i]);
		EXPECT_STREQ(drill_failpoints[i], failpoint_name(id));
		n++;
	}
	EXPECT_EQ(FP_NR, n);
	EXPECT_STREQ("drain.before_commit", failpoint_name(FP_DRAIN_BEFORE_COMMIT));
	EXPECT_STREQ("drain.after_commit", failpoint_name(FP_DRAIN_AFTER_COMMIT));
	EXPECT_STREQ("ship.before_publish", failpoint_name(FP_SHIP_BEFORE_PUBLISH));
	EXPECT_STREQ("ship.after_publish", failpoint_name(FP_SHIP_AFTER_PUBLISH));
	EXPECT_STREQ("ship.after_cursor", failpoint_name(FP_SHIP_AFTER_CURSOR));
	EXPECT_EQ(NULL, failpoint_name(FP_NR));
	EXPECT_EQ(-ENOENT, failpoint_lookup("drain", &(enum failpoint_id){ 0 }));
	EXPECT_EQ(-ENOENT, failpoint_lookup("Drain.after_commit",
					    &(enum failpoint_id){ 0 }));
	EXPECT_EQ(-ENOENT, failpoint_lookup("", &(enum failpoint_id){ 0 }));
}

static const struct {
	enum failpoint_id id;
	const char *text;
	enum failpoint_kind kind;
	uint32_t pause_ms, after;
	const char *canonical;
} valid[] = {
	{ FP_DRAIN_AFTER_COMMIT, "off", FAILPOINT_OFF, 0, 1, "off" },
	{ FP_DRAIN_AFTER_COMMIT, "crash", FAILPOINT_CRASH, 0, 1, "crash" },
	{ FP_DRAIN_AFTER_COMMIT, "crash@1", FAILPOINT_CRASH, 0, 1, "crash" },
	{ FP_DRAIN_AFTER_COMMIT, "crash@3", FAILPOINT_CRASH, 0, 3, "crash@3" },
	{ FP_SHIP_AFTER_PUBLISH, "crash@007", FAILPOINT_CRASH, 0, 7, "crash@7" },
	{ FP_SHIP_AFTER_CURSOR, "crash@1000000000", FAILPOINT_CRASH, 0,
	  1000000000, "crash@1000000000" },
	{ FP_SHIP_BEFORE_PUBLISH, "pause:1", FAILPOINT_PAUSE, 1, 1, "pause:1" },
	{ FP_SHIP_BEFORE_PUBLISH, "pause:60000", FAILPOINT_PAUSE, 60000, 1,
	  "pause:60000" },
	{ FP_DRAIN_BEFORE_COMMIT, "pause:250@2", FAILPOINT_PAUSE, 250, 2,
	  "pause:250@2" },
	{ FP_DRAIN_BEFORE_COMMIT, "error", FAILPOINT_ERROR, 0, 1, "error" },
	{ FP_DRAIN_BEFORE_COMMIT, "error@5", FAILPOINT_ERROR, 0, 5, "error@5" },
};

TEST(every_valid_action_parses_and_prints_canonically)
{
	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		struct failpoint_action a = {
			.kind = 99, .pause_ms = 99, .after = 99,
		};
		char why[FAILPOINT_WHY_MAX] = "", text[FAILPOINT_ACTION_MAX];

		ASSERT_EQ(0, failpoint_parse(valid[i].id, valid[i].text, &a,
					     why, sizeof(why)))
			TH_LOG("'%s': %s", valid[i].text, why);
		EXPECT_EQ(valid[i].kind, a.kind) TH_LOG("'%s'", valid[i].text);
		if (valid[i].kind == FAILPOINT_PAUSE)
			EXPECT_EQ(valid[i].pause_ms, a.pause_ms);
		EXPECT_EQ(valid[i].after, a.after) TH_LOG("'%s'", valid[i].text);
		failpoint_format(&a, text, sizeof(text));
		EXPECT_STREQ(valid[i].canonical, text);
	}
}

static const struct {
	enum failpoint_id id;
	const char *text;
	const char *why;
} invalid[] = {
	{ FP_DRAIN_AFTER_COMMIT, "",
	  "failpoint 'drain.after_commit': empty action " ACTIONS },
	{ FP_DRAIN_AFTER_COMMIT, NULL,
	  "failpoint 'drain.after_commit': empty action " ACTIONS },
	{ FP_DRAIN_AFTER_COMMIT, "boom",
	  "failpoint 'drain.after_commit': unknown action 'boom' " ACTIONS },
	{ FP_DRAIN_AFTER_COMMIT, "CRASH",
	  "failpoint 'drain.after_commit': unknown action 'CRASH' " ACTIONS },
	{ FP_DRAIN_AFTER_COMMIT, "crash ",
	  "failpoint 'drain.after_commit': unknown action 'crash ' " ACTIONS },
	{ FP_DRAIN_AFTER_COMMIT, "crash:5",
	  "failpoint 'drain.after_commit': unknown action 'crash:5' " ACTIONS },
	{ FP_DRAIN_AFTER_COMMIT, "@3",
	  "failpoint 'drain.after_commit': unknown action '' " ACTIONS },
	{ FP_DRAIN_AFTER_COMMIT, "a-very-long-action-name-that-goes-on",
	  "failpoint 'drain.after_commit': unknown action 'a-very-long-action-name-that-goes-on' " ACTIONS },
	{ FP_SHIP_AFTER_PUBLISH, "pause",
	  "failpoint 'ship.after_publish': pause needs a duration: 'pause:MS', MS 1..60000" },
	{ FP_SHIP_AFTER_PUBLISH, "pause@2",
	  "failpoint 'ship.after_publish': pause needs a duration: 'pause:MS', MS 1..60000" },
	{ FP_SHIP_AFTER_PUBLISH, "pause:",
	  "failpoint 'ship.after_publish': bad pause '' (1..60000 ms)" },
	{ FP_SHIP_AFTER_PUBLISH, "pause:0",
	  "failpoint 'ship.after_publish': bad pause '0' (1..60000 ms)" },
	{ FP_SHIP_AFTER_PUBLISH, "pause:60001",
	  "failpoint 'ship.after_publish': bad pause '60001' (1..60000 ms)" },
	{ FP_SHIP_AFTER_PUBLISH, "pause:-5",
	  "failpoint 'ship.after_publish': bad pause '-5' (1..60000 ms)" },
	{ FP_SHIP_AFTER_PUBLISH, "pause:+5",
	  "failpoint 'ship.after_publish': bad pause '+5' (1..60000 ms)" },
	{ FP_SHIP_AFTER_PUBLISH, "pause:1s",
	  "failpoint 'ship.after_publish': bad pause '1s' (1..60000 ms)" },
	{ FP_SHIP_AFTER_PUBLISH, "pause:99999999999999999999",
	  "failpoint 'ship.after_publish': bad pause '99999999999999999999' (1..60000 ms)" },
	{ FP_DRAIN_AFTER_COMMIT, "error",
	  "failpoint 'drain.after_commit': action 'error' applies only to drain.before_commit (the spool commit); use crash or pause" },
	{ FP_SHIP_BEFORE_PUBLISH, "error@2",
	  "failpoint 'ship.before_publish': action 'error' applies only to drain.before_commit (the spool commit); use crash or pause" },
	{ FP_SHIP_AFTER_PUBLISH, "error",
	  "failpoint 'ship.after_publish': action 'error' applies only to drain.before_commit (the spool commit); use crash or pause" },
	{ FP_SHIP_AFTER_CURSOR, "error",
	  "failpoint 'ship.after_cursor': action 'error' applies only to drain.before_commit (the spool commit); use crash or pause" },
	{ FP_SHIP_AFTER_CURSOR, "off@2",
	  "failpoint 'ship.after_cursor': 'off' takes no count" },
	{ FP_SHIP_AFTER_CURSOR, "crash@",
	  "failpoint 'ship.after_cursor': bad count '' (1..1000000000: act from the Nth hit on)" },
	{ FP_SHIP_AFTER_CURSOR, "crash@0",
	  "failpoint 'ship.after_cursor': bad count '0' (1..1000000000: act from the Nth hit on)" },
	{ FP_SHIP_AFTER_CURSOR, "crash@1000000001",
	  "failpoint 'ship.after_cursor': bad count '1000000001' (1..1000000000: act from the Nth hit on)" },
	{ FP_SHIP_AFTER_CURSOR, "crash@-1",
	  "failpoint 'ship.after_cursor': bad count '-1' (1..1000000000: act from the Nth hit on)" },
	{ FP_SHIP_AFTER_CURSOR, "crash@3x",
	  "failpoint 'ship.after_cursor': bad count '3x' (1..1000000000: act from the Nth hit on)" },
	{ FP_SHIP_AFTER_CURSOR, "crash@3@4",
	  "failpoint 'ship.after_cursor': bad count '3@4' (1..1000000000: act from the Nth hit on)" },
	{ FP_DRAIN_BEFORE_COMMIT, "pause:10@0",
	  "failpoint 'drain.before_commit': bad count '0' (1..1000000000: act from the Nth hit on)" },
};

TEST(every_invalid_action_is_refused_with_its_exact_message)
{
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		struct failpoint_action a = {
			.kind = 99, .pause_ms = 99, .after = 99,
		};
		char why[FAILPOINT_WHY_MAX] = "";

		EXPECT_EQ(-EINVAL, failpoint_parse(invalid[i].id,
						   invalid[i].text, &a, why,
						   sizeof(why)))
			TH_LOG("'%s' accepted", invalid[i].text);
		EXPECT_STREQ(invalid[i].why, why);
		/* Out-parameters are written only on success. */
		EXPECT_EQ(99, a.kind);
		EXPECT_EQ(99u, a.after);
	}
}

TEST(set_names_the_unknown_failpoint_and_changes_nothing)
{
	char why[FAILPOINT_WHY_MAX] = "";
	uint64_t hits = 77;

	failpoint_reset();
	EXPECT_EQ(-EINVAL, failpoint_set("drain.commit", "crash", &hits, why,
					 sizeof(why)));
	EXPECT_STREQ("unknown failpoint 'drain.commit' " NAMES, why);
	EXPECT_EQ(77u, hits);
	EXPECT_EQ(-EINVAL, failpoint_set("drain.after_commit", "explode",
					 &hits, why, sizeof(why)));
	EXPECT_STREQ("failpoint 'drain.after_commit': unknown action 'explode' " ACTIONS,
		     why);
	EXPECT_EQ(77u, hits);
	EXPECT_FALSE(failpoints_armed);
	EXPECT_EQ(0, failpoint(FP_DRAIN_AFTER_COMMIT));
}

static const struct {
	const char *spec;
	const char *why;
} bad_specs[] = {
	{ ",", "empty entry (expected name=action[,name=action...])" },
	{ "drain.after_commit=crash,", "empty entry (expected name=action[,name=action...])" },
	{ ",drain.after_commit=crash", "empty entry (expected name=action[,name=action...])" },
	{ "drain.after_commit=crash,,ship.after_cursor=crash",
	  "empty entry (expected name=action[,name=action...])" },
	{ "drain.after_commit", "'drain.after_commit' is not name=action" },
	{ "drain.after_commit:crash", "'drain.after_commit:crash' is not name=action" },
	{ "=crash", "unknown failpoint '' " NAMES },
	{ "ship.publish=crash", "unknown failpoint 'ship.publish' " NAMES },
	{ " drain.after_commit=crash", "unknown failpoint ' drain.after_commit' " NAMES },
	{ "drain.after_commit=", "failpoint 'drain.after_commit': empty action " ACTIONS },
	{ "drain.after_commit=crash=2",
	  "failpoint 'drain.after_commit': unknown action 'crash=2' " ACTIONS },
	{ "ship.after_publish=crash,ship.after_cursor=error",
	  "failpoint 'ship.after_cursor': action 'error' applies only to drain.before_commit (the spool commit); use crash or pause" },
	{ "drain.after_commit=crash,drain.after_commit=off",
	  "failpoint 'drain.after_commit' given twice" },
	{ "ship.before_publish=pause:10,ship.after_publish=crash@0",
	  "failpoint 'ship.after_publish': bad count '0' (1..1000000000: act from the Nth hit on)" },
};

TEST(bad_lists_are_refused_with_their_exact_message_and_arm_nothing)
{
	char big[FAILPOINT_SPEC_MAX + 2];

	for (size_t i = 0; i < sizeof(bad_specs) / sizeof(bad_specs[0]); i++) {
		char why[FAILPOINT_WHY_MAX] = "";

		failpoint_reset();
		EXPECT_EQ(-EINVAL, failpoint_set_spec(bad_specs[i].spec, why,
						      sizeof(why)))
			TH_LOG("'%s' accepted", bad_specs[i].spec);
		EXPECT_STREQ(bad_specs[i].why, why) TH_LOG("'%s'", bad_specs[i].spec);
		/* All or nothing: an earlier good entry is not armed either. */
		EXPECT_FALSE(failpoints_armed) TH_LOG("'%s'", bad_specs[i].spec);
		for (unsigned int id = 0; id < FP_NR; id++) {
			struct failpoint_action a;
			uint64_t hits;

			failpoint_get(id, &a, &hits);
			EXPECT_EQ(FAILPOINT_OFF, a.kind);
		}
	}
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	{
		char why[FAILPOINT_WHY_MAX] = "";

		EXPECT_EQ(-EINVAL, failpoint_set_spec(big, why, sizeof(why)));
		EXPECT_STREQ("longer than 1024 bytes", why);
	}
}

TEST(a_good_list_arms_each_named_failpoint_and_nothing_else)
{
	char why[FAILPOINT_WHY_MAX] = "", text[FAILPOINT_ACTION_MAX];
	struct failpoint_action a;
	uint64_t hits;

	failpoint_reset();
	EXPECT_EQ(0, failpoint_set_spec(NULL, why, sizeof(why)));
	EXPECT_EQ(0, failpoint_set_spec("", why, sizeof(why)));
	EXPECT_FALSE(failpoints_armed);
	ASSERT_EQ(0, failpoint_set_spec("ship.after_publish=crash@2,drain.before_commit=error,ship.before_publish=pause:5",
					why, sizeof(why))) TH_LOG("%s", why);
	EXPECT_TRUE(failpoints_armed);
	failpoint_get(FP_SHIP_AFTER_PUBLISH, &a, &hits);
	failpoint_format(&a, text, sizeof(text));
	EXPECT_STREQ("crash@2", text);
	failpoint_get(FP_DRAIN_BEFORE_COMMIT, &a, &hits);
	failpoint_format(&a, text, sizeof(text));
	EXPECT_STREQ("error", text);
	failpoint_get(FP_SHIP_BEFORE_PUBLISH, &a, &hits);
	failpoint_format(&a, text, sizeof(text));
	EXPECT_STREQ("pause:5", text);
	failpoint_get(FP_DRAIN_AFTER_COMMIT, &a, &hits);
	EXPECT_EQ(FAILPOINT_OFF, a.kind);
	failpoint_get(FP_SHIP_AFTER_CURSOR, &a, &hits);
	EXPECT_EQ(FAILPOINT_OFF, a.kind);
	failpoint_reset();
	EXPECT_FALSE(failpoints_armed);
}

TEST(hits_count_only_while_armed_and_arming_returns_the_previous_count)
{
	char why[FAILPOINT_WHY_MAX] = "";
	uint64_t hits = 99;

	failpoint_reset();
	for (int i = 0; i < 5; i++)
		EXPECT_EQ(0, failpoint(FP_SHIP_AFTER_CURSOR));
	EXPECT_EQ(0u, hits_of(FP_SHIP_AFTER_CURSOR));

	/* crash@100 never reaches its threshold here: only counts. */
	ASSERT_EQ(0, failpoint_set("ship.after_cursor", "crash@100", &hits,
				   why, sizeof(why))) TH_LOG("%s", why);
	EXPECT_EQ(0u, hits);
	EXPECT_TRUE(failpoints_armed);
	for (int i = 0; i < 7; i++)
		EXPECT_EQ(0, failpoint(FP_SHIP_AFTER_CURSOR));
	/* Another failpoint's hits are not counted while it is off. */
	EXPECT_EQ(0, failpoint(FP_DRAIN_AFTER_COMMIT));
	EXPECT_EQ(7u, hits_of(FP_SHIP_AFTER_CURSOR));
	EXPECT_EQ(0u, hits_of(FP_DRAIN_AFTER_COMMIT));

	ASSERT_EQ(0, failpoint_set("ship.after_cursor", "crash@200", &hits,
				   why, sizeof(why)));
	EXPECT_EQ(7u, hits);
	EXPECT_EQ(0u, hits_of(FP_SHIP_AFTER_CURSOR));
	EXPECT_EQ(0, failpoint(FP_SHIP_AFTER_CURSOR));
	ASSERT_EQ(0, failpoint_set("ship.after_cursor", "off", &hits, why,
				   sizeof(why)));
	EXPECT_EQ(1u, hits);
	EXPECT_FALSE(failpoints_armed);
	EXPECT_EQ(0, failpoint(FP_SHIP_AFTER_CURSOR));
	EXPECT_EQ(0u, hits_of(FP_SHIP_AFTER_CURSOR));
}

TEST(error_fails_from_the_nth_hit_on_with_eio)
{
	char why[FAILPOINT_WHY_MAX] = "";
	uint64_t hits;

	failpoint_reset();
	ASSERT_EQ(0, failpoint_set("drain.before_commit", "error@3", &hits,
				   why, sizeof(why))) TH_LOG("%s", why);
	EXPECT_EQ(0, failpoint(FP_DRAIN_BEFORE_COMMIT));
	EXPECT_EQ(0, failpoint(FP_DRAIN_BEFORE_COMMIT));
	EXPECT_EQ(-EIO, failpoint(FP_DRAIN_BEFORE_COMMIT));
	EXPECT_EQ(-EIO, failpoint(FP_DRAIN_BEFORE_COMMIT));
	EXPECT_EQ(4u, hits_of(FP_DRAIN_BEFORE_COMMIT));
	failpoint_reset();
	EXPECT_EQ(0, failpoint(FP_DRAIN_BEFORE_COMMIT));
}

TEST(pause_returns_zero_and_counts_each_hit)
{
	char why[FAILPOINT_WHY_MAX] = "";
	uint64_t hits;

	failpoint_reset();
	ASSERT_EQ(0, failpoint_set("ship.before_publish", "pause:1@2", &hits,
				   why, sizeof(why))) TH_LOG("%s", why);
	for (int i = 0; i < 4; i++)
		EXPECT_EQ(0, failpoint(FP_SHIP_BEFORE_PUBLISH));
	EXPECT_EQ(4u, hits_of(FP_SHIP_BEFORE_PUBLISH));
	/* errno survives a pause (the hooks sit between syscalls). */
	errno = EAGAIN;
	EXPECT_EQ(0, failpoint(FP_SHIP_BEFORE_PUBLISH));
	EXPECT_EQ(EAGAIN, errno);
	failpoint_reset();
}

/*
 * In a child: arm crash@3, hit twice (reporting each over a pipe), then a
 * third time.  The parent sees exactly two reports and a SIGKILL death.
 */
TEST(crash_kills_by_sigkill_exactly_at_the_nth_hit)
{
	int fds[2], status;
	char buf[16];
	ssize_t n, got = 0;
	pid_t pid;

	ASSERT_EQ(0, pipe(fds));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		char why[FAILPOINT_WHY_MAX];
		uint64_t hits;

		close(fds[0]);
		if (failpoint_set("drain.after_commit", "crash@3", &hits, why,
				  sizeof(why)))
			_exit(2);
		for (int i = 0; i < 3; i++) {
			failpoint(FP_DRAIN_AFTER_COMMIT);
			if (write(fds[1], "h", 1) != 1)
				_exit(3);
		}
		_exit(0);	/* not reached */
	}
	close(fds[1]);
	while ((n = read(fds[0], buf, sizeof(buf))) > 0)
		got += n;
	close(fds[0]);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFSIGNALED(status)) TH_LOG("child exited %d",
						 WEXITSTATUS(status));
	EXPECT_EQ(SIGKILL, WTERMSIG(status));
	EXPECT_EQ(2, got);
}

TEST_HARNESS_MAIN
