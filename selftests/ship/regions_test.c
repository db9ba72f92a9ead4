// SPDX-License-Identifier: GPL-2.0-only
/*
 * regions_test: the test regions (tools/regions) and their fault
 * injectors really do what the shipping tests rely on.  Each test brings
 * up region "rt" (index 9: 10.77.9.2) as a 3-node JetStream cluster in its
 * own network namespace and judges it from the host, as evringd sees it:
 * TCP connects bounded by 1 s, the JetStream API, /proc.
 *
 * Run as root from the repository root (netns, veth, nftables); SKIPs
 * when not root or when nats-server or nft is missing.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "regions.h"
#include "kselftest_harness.h"

#define RT		"rt"
#define RT_INDEX	9
#define RT_ADDR		"10.77.9.2"
#define PROBE_MS	1000

static const char *missing_prereq(void)
{
	if (geteuid())
		return "needs root (netns, veth, nftables)";
	if (access("/usr/sbin/nats-server", X_OK) &&
	    access(getenv("NATS_SERVER") ? getenv("NATS_SERVER") : "", X_OK))
		return "no /usr/sbin/nats-server";
	if (access("/usr/sbin/nft", X_OK))
		return "no /usr/sbin/nft";
	if (access(regions_script(), X_OK))
		return "tools/regions not found (run from the repository root)";
	return NULL;
}

/* The first line a server sends (INFO {...}), from @port of @addr. */
static int server_info(const char *addr, unsigned int port, char *out,
		       size_t len)
{
	struct sockaddr_in sa = {
		.sin_family = AF_INET,
		.sin_port = htons(port),
	};
	struct timeval tv = { .tv_sec = 2 };
	size_t have = 0;
	int fd, ret = 0;

	inet_pton(AF_INET, addr, &sa.sin_addr);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		ret = -errno;
		goto out;
	}
	while (have + 1 < len && !memchr(out, '\n', have)) {
		ssize_t n = recv(fd, out + have, len - 1 - have, 0);

		if (n <= 0) {
			ret = n ? -errno : -ECONNRESET;
			goto out;
		}
		have += n;
	}
	out[have] = '\0';
out:
	close(fd);
	return ret;
}

/* How many of rt's three servers are stopped (state T); which one last. */
static int count_stopped(unsigned int *which)
{
	int n = 0;

	for (unsigned int k = 1; k <= 3; k++) {
		pid_t pid;

		if (regions_pid(RT, k, &pid))
			continue;
		if (regions_proc_state(pid) == 'T') {
			n++;
			*which = k;
		}
	}
	return n;
}

FIXTURE(region)
{
	char urls[256];
};

FIXTURE_SETUP(region)
{
	const char *why = missing_prereq();

	/* This harness runs the body after a SKIP here: fail it instead. */
	ASSERT_EQ(NULL, why) TH_LOG("cannot test regions: %s", why);
	ASSERT_EQ(0, regions_lock());
	ASSERT_EQ(0, regions_down_all());
	ASSERT_EQ(0, regions_up(RT, RT_INDEX));
	ASSERT_EQ(0, regions_urls(RT, self->urls, sizeof(self->urls)));
}

FIXTURE_TEARDOWN(region)
{
	if (!missing_prereq())
		EXPECT_EQ(0, regions_down_all());
}

TEST_F(region, up_is_reachable_from_the_host_with_jetstream)
{
	char info[4096];

	EXPECT_STREQ("nats://10.77.9.2:4222,nats://10.77.9.2:4223,"
		     "nats://10.77.9.2:4224", self->urls);
	for (unsigned int port = 4222; port <= 4224; port++) {
		ASSERT_EQ(0, regions_tcp_probe(RT_ADDR, port, PROBE_MS));
		ASSERT_EQ(0, server_info(RT_ADDR, port, info, sizeof(info)));
		EXPECT_EQ(0, strncmp(info, "INFO {", 6));
		EXPECT_NE(NULL, strstr(info, "\"jetstream\":true"));
	}
	ASSERT_EQ(0, regions_jsapi(RT, "INFO", NULL, info, sizeof(info)));
	EXPECT_NE(NULL, strstr(info, "account_info_response")) TH_LOG("%s", info);
	EXPECT_EQ(NULL, strstr(info, "\"error\"")) TH_LOG("%s", info);
	/* Idempotent: up again is a no-op on a running region. */
	EXPECT_EQ(0, regions_up(RT, RT_INDEX));
}

TEST_F(region, partition_times_out_connects_and_heal_restores_them)
{
	char out[4096];

	ASSERT_EQ(0, regions_tcp_probe(RT_ADDR, 4222, PROBE_MS));
	ASSERT_EQ(0, regions_partition(RT));
	ASSERT_EQ(0, regions_partition(RT));	/* idempotent */
	for (unsigned int port = 4222; port <= 4224; port++)
		EXPECT_EQ(-ETIMEDOUT, regions_tcp_probe(RT_ADDR, port, PROBE_MS));
	EXPECT_EQ(-ETIMEDOUT, regions_tcp_probe(RT_ADDR, 8222, PROBE_MS));
	/* Cut off from the host, the cluster itself goes on. */
	ASSERT_EQ(0, regions_jsapi(RT, "INFO", NULL, out, sizeof(out)));
	EXPECT_NE(NULL, strstr(out, "account_info_response"));
	ASSERT_EQ(0, regions_heal(RT));
	EXPECT_EQ(0, regions_tcp_probe(RT_ADDR, 4222, PROBE_MS));
	EXPECT_EQ(0, regions_heal(RT));		/* idempotent */
	EXPECT_EQ(0, regions_tcp_probe(RT_ADDR, 4224, PROBE_MS));
}

TEST_F(region, oneway_cuts_time_out_connects_in_either_direction)
{
	ASSERT_EQ(0, regions_oneway(RT, "in"));
	EXPECT_EQ(-ETIMEDOUT, regions_tcp_probe(RT_ADDR, 4222, PROBE_MS));
	ASSERT_EQ(0, regions_heal(RT));
	EXPECT_EQ(0, regions_tcp_probe(RT_ADDR, 4222, PROBE_MS));
	ASSERT_EQ(0, regions_oneway(RT, "out"));
	EXPECT_EQ(-ETIMEDOUT, regions_tcp_probe(RT_ADDR, 4222, PROBE_MS));
	ASSERT_EQ(0, regions_heal(RT));
	EXPECT_EQ(0, regions_tcp_probe(RT_ADDR, 4222, PROBE_MS));
	EXPECT_EQ(2, regions_oneway(RT, "sideways"));
}

TEST_F(region, kill_refuses_connects_and_start_brings_back_the_stores)
{
	char out[8192];
	pid_t pid;

	ASSERT_EQ(0, regions_jsapi(RT, "STREAM.CREATE.KEEP",
				   "{\"name\":\"KEEP\",\"subjects\":[\"keep.>\"],"
				   "\"num_replicas\":3,\"storage\":\"file\"}",
				   out, sizeof(out)));
	ASSERT_NE(NULL, strstr(out, "\"did_create\":true")) TH_LOG("%s", out);
	ASSERT_EQ(0, regions_kill(RT));
	for (unsigned int port = 4222; port <= 4224; port++)
		EXPECT_EQ(-ECONNREFUSED, regions_tcp_probe(RT_ADDR, port, PROBE_MS));
	for (unsigned int k = 1; k <= 3; k++)
		EXPECT_EQ(-ESRCH, regions_pid(RT, k, &pid));
	EXPECT_EQ(0, regions_kill(RT));		/* idempotent */

	ASSERT_EQ(0, regions_start(RT));
	for (unsigned int port = 4222; port <= 4224; port++)
		EXPECT_EQ(0, regions_tcp_probe(RT_ADDR, port, PROBE_MS));
	ASSERT_EQ(0, regions_jsapi(RT, "STREAM.INFO.KEEP", NULL, out, sizeof(out)));
	EXPECT_NE(NULL, strstr(out, "stream_info_response")) TH_LOG("%s", out);
	EXPECT_NE(NULL, strstr(out, "\"num_replicas\":3")) TH_LOG("%s", out);
	EXPECT_EQ(NULL, strstr(out, "\"error\"")) TH_LOG("%s", out);
}

TEST_F(region, stop_leader_stops_exactly_the_stream_leader)
{
	char out[8192], leader[64], name[64];
	unsigned int which = 0;

	ASSERT_EQ(0, regions_jsapi(RT, "STREAM.CREATE.LEAD",
				   "{\"name\":\"LEAD\",\"subjects\":[\"lead.>\"],"
				   "\"num_replicas\":3,\"storage\":\"file\"}",
				   out, sizeof(out)));
	ASSERT_EQ(0, regions_leader(RT, "LEAD", leader, sizeof(leader)));
	ASSERT_EQ(0, count_stopped(&which));
	ASSERT_EQ(0, regions_stop_leader(RT, "LEAD", name, sizeof(name)));
	EXPECT_STREQ(leader, name);
	ASSERT_EQ(1, count_stopped(&which));
	snprintf(out, sizeof(out), RT "-%u", which);
	EXPECT_STREQ(name, out);
	/*
	 * The rest elect a new leader and serve the stream (the election, and
	 * the meta leader's when the stopped server held both, can outlast
	 * one round of the tool's tries on a busy host: allow a few).
	 */
	for (int tries = 0;; tries++) {
		int rc = regions_jsapi(RT, "STREAM.INFO.LEAD", NULL, out,
				       sizeof(out));

		if (!rc || tries == 3)
			ASSERT_EQ(0, rc);
		if (!rc)
			break;
	}
	EXPECT_NE(NULL, strstr(out, "stream_info_response")) TH_LOG("%s", out);
	ASSERT_EQ(0, regions_cont(RT));
	EXPECT_EQ(0, count_stopped(&which));
}

TEST_F(region, max_payload_option_reaches_the_servers_and_restart_changes_it)
{
	char info[4096];

	ASSERT_EQ(0, server_info(RT_ADDR, 4222, info, sizeof(info)));
	EXPECT_NE(NULL, strstr(info, "\"max_payload\":1048576")) TH_LOG("%s", info);
	setenv("EVRING_REGION_MAX_PAYLOAD", "4096", 1);
	ASSERT_EQ(0, regions_restart(RT));
	unsetenv("EVRING_REGION_MAX_PAYLOAD");
	for (unsigned int port = 4222; port <= 4224; port++) {
		ASSERT_EQ(0, server_info(RT_ADDR, port, info, sizeof(info)));
		EXPECT_NE(NULL, strstr(info, "\"max_payload\":4096")) TH_LOG("%s", info);
	}
	ASSERT_EQ(0, regions_restart(RT));
	ASSERT_EQ(0, server_info(RT_ADDR, 4223, info, sizeof(info)));
	EXPECT_NE(NULL, strstr(info, "\"max_payload\":1048576")) TH_LOG("%s", info);
}

TEST_F(region, bad_arguments_are_refused)
{
	char out[256];

	EXPECT_EQ(2, regions_run(NULL, 0, 10, "up", "Bad_Name", "3"));
	EXPECT_EQ(2, regions_run(NULL, 0, 10, "up", "x", "0"));
	EXPECT_EQ(2, regions_run(NULL, 0, 10, "up", "x", "10"));
	EXPECT_EQ(2, regions_run(NULL, 0, 10, "frobnicate"));
	/* Index 9 is rt's. */
	EXPECT_EQ(1, regions_run(NULL, 0, 10, "up", "rt2", "9"));
	EXPECT_EQ(1, regions_urls("nosuch", out, sizeof(out)));
	EXPECT_EQ(1, regions_kill("nosuch"));
}

TEST_F(region, down_all_leaves_no_namespace_link_or_server)
{
	unsigned int nn = 99, nl = 99, ns = 99, which = 0;
	char out[4096], name[64];
	struct stat st;

	ASSERT_EQ(0, regions_leftovers(&nn, &nl, &ns));
	EXPECT_EQ(1u, nn);
	EXPECT_EQ(1u, nl);
	EXPECT_EQ(3u, ns);
	ASSERT_EQ(0, regions_up("rt2", 8));
	ASSERT_EQ(0, regions_jsapi(RT, "STREAM.CREATE.GONE",
				   "{\"name\":\"GONE\",\"subjects\":[\"gone.>\"],"
				   "\"num_replicas\":3}", out, sizeof(out)));
	/* Leave every kind of injected fault in place. */
	ASSERT_EQ(0, regions_stop_leader(RT, "GONE", name, sizeof(name)));
	ASSERT_EQ(1, count_stopped(&which));
	ASSERT_EQ(0, regions_partition("rt2"));
	ASSERT_EQ(0, regions_leftovers(&nn, &nl, &ns));
	EXPECT_EQ(2u, nn);
	EXPECT_EQ(6u, ns);

	ASSERT_EQ(0, regions_down_all());
	ASSERT_EQ(0, regions_leftovers(&nn, &nl, &ns));
	EXPECT_EQ(0u, nn);
	EXPECT_EQ(0u, nl);
	EXPECT_EQ(0u, ns);
	snprintf(out, sizeof(out), "%s/" RT, regions_dir());
	EXPECT_EQ(-1, stat(out, &st));
	EXPECT_EQ(0, regions_down_all());	/* idempotent */
}

TEST_F(region, down_removes_one_region_and_keeps_the_other)
{
	unsigned int nn, nl, ns;

	ASSERT_EQ(0, regions_up("rt2", 8));
	ASSERT_EQ(0, regions_down("rt2"));
	ASSERT_EQ(0, regions_leftovers(&nn, &nl, &ns));
	EXPECT_EQ(1u, nn);
	EXPECT_EQ(1u, nl);
	EXPECT_EQ(3u, ns);
	EXPECT_EQ(0, regions_tcp_probe(RT_ADDR, 4222, PROBE_MS));
	EXPECT_EQ(0, regions_down("rt2"));	/* idempotent */
}

TEST_HARNESS_MAIN
