// SPDX-License-Identifier: GPL-2.0-only
/*
 * scenarios_test: the real runner, `build/bin/evringctl drill`, on every
 * shipped scenario and on its own guarantees.
 *
 *  - scenario.<drill>: `evringctl drill drills/<drill>.ini --short`
 *    exits 0 and its report.json says: result pass, nothing acknowledged
 *    lost and nothing duplicated in any view (each region's stream in
 *    replicate mode, all of them together in failover mode; the streams'
 *    own message counts agree), every fault applied, removed and
 *    recovered from within the scenario's sla.recover_within_s; and the
 *    drill left nothing behind.
 *  - runner.*: SIGINT while a partition is on exits 2 and leaves no
 *    namespace, link, nftables table, process or mount; after a SIGKILL of
 *    the runner while the spool's filesystem is full, `--cleanup DIR`
 *    removes everything; a bad scenario file exits 2 with the parser's
 *    line; an SLA no region can meet aborts the drill (exit 1, result
 *    aborted, the fault removed before its end).
 *
 * "Left nothing behind": none of the drill's own things (its regions'
 * state directories, live processes whose command line names its
 * directory or that its cleanup journal lists with the same start time,
 * mounts under it), no nftables table evr_cut in the host's namespace,
 * and, when the regions lock is free (no other drill or shipping test is
 * mid-run; always so under `make check`), no namespace or link evr-* at
 * all.
 *
 * Run as root from the repository root (netns, nftables, tmpfs); SKIPs
 * when not root or nats-server, nft or the built binaries are missing.
 * Each drill's directory is /tmp/evring-scenarios-test.XXXXXX/out, kept
 * when its test fails.  EVRING_DRILL_ONLY=SUBSTRING runs only the tests
 * whose name has it (the rest SKIP).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "kselftest_harness.h"

/* The harness compares with ==: literals against unsigned values. */
#pragma GCC diagnostic ignored "-Wsign-compare"

#define EVRINGCTL	"build/bin/evringctl"
#define REGIONS_LOCK	"/tmp/evring-regions.lock"
#define NFT_TABLE	"evr_cut"	/* tools/regions' partition table */
/*
 * Bounds, generous: a drill first waits for the regions lock, which
 * another drill or shipping test on the machine may hold for minutes
 * (under `make check` nobody does).
 */
#define RUN_TIMEOUT_S	300		/* one short drill, lock wait included */
#define FAULT_WAIT_S	300		/* the same until its fault is on */
#define STOP_WAIT_S	60		/* an interrupted runner's cleanup */
#define LOCK_WAIT_S	30		/* the leftovers check's turn */
#define TEST_TIMEOUT_S	(RUN_TIMEOUT_S + LOCK_WAIT_S + 2 * STOP_WAIT_S)

/* One drill run: its scratch directory, output and process. */
struct run {
	char tmp[64];		/* /tmp/evring-scenarios-test.XXXXXX */
	char out[128];		/* tmp/out: the drill's DIR */
	char log[128];		/* tmp/run.log: its stdout and stderr */
	pid_t pid;		/* running, not yet reaped; 0: none */
	uint64_t t0_ms;		/* the test's start, for its time */
	bool ran;		/* evringctl was started */
};

static const char *missing_prereq(void)
{
	if (geteuid())
		return "needs root (netns, nftables, tmpfs)";
	if (access("/usr/sbin/nats-server", X_OK))
		return "no /usr/sbin/nats-server";
	if (access("/usr/sbin/nft", X_OK))
		return "no /usr/sbin/nft";
	if (access(EVRINGCTL, X_OK) || access("build/bin/evringd", X_OK) ||
	    access("build/bin/faultproxy", X_OK))
		return "build/bin/evringctl, evringd or faultproxy missing (make userspace)";
	if (access("tools/regions", X_OK) || access("drills", R_OK))
		return "tools/regions or drills/ not found (run from the repository root)";
	return NULL;
}

/* EVRING_DRILL_ONLY set and not in @name: this test is not wanted. */
static bool not_selected(const char *name)
{
	const char *only = getenv("EVRING_DRILL_ONLY");

	return only && *only && !strstr(name, only);
}

/*
 * First in every test body: this harness runs the body even after a SKIP
 * in the setup.
 */
#define SKIP_UNLESS_READY(name) do { \
	const char *__why = missing_prereq(); \
	if (__why) \
		SKIP(return, "%s", __why); \
	if (not_selected(name)) \
		SKIP(return, "not in EVRING_DRILL_ONLY"); \
} while (0)

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static int run_init(struct run *r)
{
	snprintf(r->tmp, sizeof(r->tmp), "/tmp/evring-scenarios-test.XXXXXX");
	if (!mkdtemp(r->tmp))
		return -errno;
	snprintf(r->out, sizeof(r->out), "%s/out", r->tmp);
	snprintf(r->log, sizeof(r->log), "%s/run.log", r->tmp);
	r->pid = 0;
	r->t0_ms = now_ms();
	return 0;
}

static int write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");

	if (!f)
		return -errno;
	fputs(text, f);
	return fclose(f) ? -errno : 0;
}

/* The whole of a small file, NUL-terminated, into @buf. */
static int read_file(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

/*
 * Start `evringctl ARGS...` (NULL-terminated), stdout and stderr into
 * r->log (appended), stdin from /dev/null.  0 or -errno.
 */
static int run_spawnv(struct run *r, const char *const *args)
{
	const char *argv[16];
	int n = 0;
	pid_t pid;

	argv[n++] = EVRINGCTL;
	while (*args && n < 15)
		argv[n++] = *args++;
	argv[n] = NULL;
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int fd = open(r->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
			      0644);
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

		if (fd < 0 || null < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0 ||
		    dup2(null, 0) < 0)
			_exit(127);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	r->pid = pid;
	r->ran = true;
	return 0;
}

#define run_spawn(r, ...) \
	run_spawnv(r, (const char *const[]){ __VA_ARGS__, NULL })

/*
 * Wait at most @timeout_s for the runner: its exit status (0..255), 256 +
 * a signal, -ETIMEDOUT (still running, left for run_stop()) or -errno.
 */
static int run_wait(struct run *r, int timeout_s)
{
	uint64_t end = now_ms() + (uint64_t)timeout_s * 1000;
	int status;

	if (r->pid <= 0)
		return -ECHILD;
	for (;;) {
		pid_t w = waitpid(r->pid, &status, WNOHANG);

		if (w == r->pid)
			break;
		if (w < 0 && errno != EINTR)
			return -errno;
		if (now_ms() > end)
			return -ETIMEDOUT;
		sleep_ms(100);
	}
	r->pid = 0;
	return WIFEXITED(status) ? WEXITSTATUS(status) :
	       256 + WTERMSIG(status);
}

/* Run `evringctl ARGS...` to its end: run_wait()'s answer. */
#define run_evringctl(r, timeout_s, ...) \
	({ int __ret = run_spawn(r, __VA_ARGS__); \
	   __ret ? __ret : run_wait(r, timeout_s); })

/* Is the runner still running (not exited, or exited and not reaped)? */
static bool run_alive(struct run *r)
{
	int status;

	if (r->pid <= 0)
		return false;
	if (waitpid(r->pid, &status, WNOHANG) == r->pid) {
		r->pid = 0;
		return false;
	}
	return true;
}

/* The runner's output, each line as a TAP diagnostic. */
static void run_show(const struct run *r)
{
	char line[512];
	FILE *f = fopen(r->log, "re");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		fprintf(stderr, "#   %s", line);
	fclose(f);
}

/* Does the runner's output hold @what? */
static bool run_said(const struct run *r, const char *what)
{
	static char buf[1 << 16];

	return !read_file(r->log, buf, sizeof(buf)) && strstr(buf, what);
}

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

/*
 * Teardown: a runner still going gets SIGINT (its own cleanup), then
 * SIGKILL; after a failure a journal left behind is replayed with
 * --cleanup and the scratch directory is kept, else it goes.
 */
static void run_stop(struct run *r, const char *name, bool passed)
{
	char journal[160];

	if (run_alive(r)) {
		kill(r->pid, SIGINT);
		if (run_wait(r, STOP_WAIT_S) == -ETIMEDOUT) {
			kill(r->pid, SIGKILL);
			run_wait(r, 10);
		}
	}
	if (!r->tmp[0])
		return;
	if (r->ran)
		fprintf(stderr, "# %s: %.1f s\n", name,
			(now_ms() - r->t0_ms) / 1000.0);
	snprintf(journal, sizeof(journal), "%s/cleanup.journal", r->out);
	if (!passed && !access(journal, F_OK)) {
		struct run c = *r;

		snprintf(c.log, sizeof(c.log), "%s/teardown-cleanup.log",
			 r->tmp);
		run_evringctl(&c, STOP_WAIT_S, "drill", "--cleanup", r->out);
	}
	if (passed)
		nftw(r->tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	else
		fprintf(stderr, "# kept %s\n", r->tmp);
}

/* --- what a drill may leave behind --------------------------------------- */

/* Field 22 of /proc/@pid/stat (start time), 0 when gone or a zombie. */
static uint64_t proc_start(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long v = 0;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (read_file(path, buf, sizeof(buf)))
		return 0;
	p = strrchr(buf, ')');
	if (!p || p[1] != ' ' || p[2] == 'Z' || p[2] == 'X')
		return 0;
	for (int field = 2; p && field < 22; field++)
		p = strchr(p + 1, ' ');
	if (!p || sscanf(p + 1, "%llu", &v) != 1)
		return 0;
	return v;
}

struct found {
	unsigned int n;
	char what[4096];	/* the first FOUND_NAMED, "; "-separated */
};

#define FOUND_NAMED	32

static void __attribute__((format(printf, 2, 3)))
found(struct found *f, const char *fmt, ...)
{
	size_t have = strlen(f->what);
	va_list ap;

	if (f->n++ < FOUND_NAMED && have + 2 < sizeof(f->what)) {
		if (have)
			strcat(f->what, "; ");
		have = strlen(f->what);
		va_start(ap, fmt);
		vsnprintf(f->what + have, sizeof(f->what) - have, fmt, ap);
		va_end(ap);
	}
}

/* Entries of @dir whose names start with @prefix. */
static void found_names(struct found *f, const char *dir, const char *prefix,
			const char *kind)
{
	struct dirent *d;
	DIR *dp = opendir(dir);

	if (!dp)
		return;
	while ((d = readdir(dp)))
		if (!strncmp(d->d_name, prefix, strlen(prefix)))
			found(f, "%s %s", kind, d->d_name);
	closedir(dp);
}

/* Live processes whose command line names @dir (not this one). */
static void found_procs(struct found *f, const char *dir)
{
	struct dirent *d;
	DIR *dp = opendir("/proc");

	if (!dp)
		return;
	while ((d = readdir(dp))) {
		char path[300], buf[8192], comm[64] = "";
		pid_t pid = (pid_t)strtol(d->d_name, NULL, 10);
		ssize_t n;
		int fd;

		if (pid <= 0 || pid == getpid() || !proc_start(pid))
			continue;
		snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		for (ssize_t i = 0; i < n; i++)
			if (!buf[i])
				buf[i] = ' ';
		buf[n] = '\0';
		if (!strstr(buf, dir))
			continue;
		snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
		read_file(path, comm, sizeof(comm));
		comm[strcspn(comm, "\n")] = '\0';
		found(f, "process %d (%s)", (int)pid, comm);
	}
	closedir(dp);
}

/* Processes the journal lists that still run (same pid, same start). */
static void found_journal(struct found *f, const char *out)
{
	char path[200], line[512];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/cleanup.journal", out);
	fp = fopen(path, "re");
	if (!fp)
		return;
	while (fgets(line, sizeof(line), fp)) {
		unsigned long long st;
		char what[32];
		int pid;

		if (sscanf(line, "pid %d %llu %31s", &pid, &st, what) == 3 &&
		    pid > 1 && st && proc_start(pid) == st)
			found(f, "journaled %s %d", what, pid);
	}
	fclose(fp);
}

/* Mount points under @dir. */
static void found_mounts(struct found *f, const char *dir)
{
	char line[1024], mnt[512];
	FILE *fp = fopen("/proc/self/mountinfo", "re");

	if (!fp)
		return;
	while (fgets(line, sizeof(line), fp))
		if (sscanf(line, "%*s %*s %*s %*s %511s", mnt) == 1 &&
		    !strncmp(mnt, dir, strlen(dir)))
			found(f, "mount %s", mnt);
	fclose(fp);
}

/* An nftables table named NFT_TABLE in the host's namespace. */
static void found_nft(struct found *f)
{
	char line[256];
	FILE *p = popen("nft list tables 2>/dev/null", "re");

	if (!p)
		return;
	while (fgets(line, sizeof(line), p))
		if (strstr(line, " " NFT_TABLE))
			found(f, "host nft %s", strtok(line, "\n"));
	pclose(p);
}

/*
 * Everything listed in the head comment that a drill in @r->out could
 * have left, into @f.  What is the drill's own is always looked for: its
 * regions' state directories (tools/regions removes one only after its
 * namespace and link are gone), processes naming its directory or listed
 * in its journal, mounts under it, and the host's nftables.  Every evr-*
 * namespace and link is counted too when @global and the regions lock is
 * free within LOCK_WAIT_S (no region user is mid-run then); *@checked
 * says whether that happened.  0 or -errno.
 */
static int leftovers(const struct run *r, bool global, struct found *f,
		     bool *checked)
{
	uint64_t end = now_ms() + LOCK_WAIT_S * 1000;
	char rdir[160];
	int fd = -1;

	memset(f, 0, sizeof(*f));
	*checked = false;
	if (global) {
		fd = open(REGIONS_LOCK, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0)
			return -errno;
		while (!(*checked = !flock(fd, LOCK_EX | LOCK_NB)) &&
		       now_ms() < end)
			sleep_ms(100);
	}
	if (*checked) {
		found_names(f, "/run/netns", "evr-", "netns");
		found_names(f, "/sys/class/net", "evr", "link");
	}
	snprintf(rdir, sizeof(rdir), "%s/regions", r->out);
	found_names(f, rdir, "r", "region state");
	found_nft(f);
	found_procs(f, r->out);
	found_journal(f, r->out);
	found_mounts(f, r->tmp);
	if (fd >= 0)
		close(fd);
	return 0;
}

/*
 * Assert that the drill left nothing behind; say so when other region
 * users kept the namespace count out.
 */
#define EXPECT_NOTHING_LEFT(r) do { \
	struct found __f; \
	bool __all; \
	ASSERT_EQ(0, leftovers(r, true, &__f, &__all)); \
	EXPECT_EQ(0, __f.n) TH_LOG("left behind: %s", __f.what); \
	if (!__all) \
		fprintf(stderr, "# regions lock busy for %d s (another region user): evr-* namespaces and links not counted\n", \
			LOCK_WAIT_S); \
} while (0)

/* --- report.json ---------------------------------------------------------- */

/* @o.@key as an integer; -1 when missing or null. */
static json_int_t jint(const json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_integer(v) ? json_integer_value(v) : -1;
}

static const char *jstr(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "(none)";
}

static json_t *load_report(const struct run *r, char *err, size_t len)
{
	char path[200];
	json_error_t je;
	json_t *j;

	snprintf(path, sizeof(path), "%s/report.json", r->out);
	j = json_load_file(path, 0, &je);
	if (!j)
		snprintf(err, len, "%s: %s", path, je.text);
	return j;
}

/* --- the shipped scenarios --------------------------------------------- */

/* drills/NAME.ini, every one of them: shipped_are_all_tested checks. */
static const char *const shipped[] = {
	"burst-beyond-ship-rate", "daemon-kill-loop",
	"outage-plus-daemon-crash", "region-flap", "region-outage",
	"region-partition", "region-pause", "region-slow", "spool-disk-full",
};

FIXTURE(scenario) {
	struct run r;
};

FIXTURE_VARIANT(scenario) {
	unsigned int i;		/* in shipped[] */
};

FIXTURE_VARIANT_ADD(scenario, burst_beyond_ship_rate) { .i = 0 };
FIXTURE_VARIANT_ADD(scenario, daemon_kill_loop) { .i = 1 };
FIXTURE_VARIANT_ADD(scenario, outage_plus_daemon_crash) { .i = 2 };
FIXTURE_VARIANT_ADD(scenario, region_flap) { .i = 3 };
FIXTURE_VARIANT_ADD(scenario, region_outage) { .i = 4 };
FIXTURE_VARIANT_ADD(scenario, region_partition) { .i = 5 };
FIXTURE_VARIANT_ADD(scenario, region_pause) { .i = 6 };
FIXTURE_VARIANT_ADD(scenario, region_slow) { .i = 7 };
FIXTURE_VARIANT_ADD(scenario, spool_disk_full) { .i = 8 };

FIXTURE_SETUP(scenario)
{
	ASSERT_EQ(0, run_init(&self->r));
}

FIXTURE_TEARDOWN(scenario)
{
	run_stop(&self->r, shipped[variant->i], _metadata->passed);
}

/*
 * The verdict and the figures behind it: pass; nothing acknowledged lost,
 * doubled or unexpected in any view; each view's deliveries are the
 * streams' canary messages (replicate: region by region; failover: all
 * together), so no stream holds a canary twice; every fault applied,
 * removed and recovered from within the bound.
 */
static void check_passed(struct __test_metadata *_metadata, json_t *j,
			 const char *name)
{
	json_t *fig = json_object_get(j, "figures");
	json_t *views = json_object_get(j, "views");
	json_t *streams = json_object_get(j, "region_streams");
	json_t *faults = json_object_get(j, "faults");
	json_t *v, *sla = json_object_get(j, "sla");
	json_int_t bound = jint(sla, "recover_within_ms"), sum = 0;
	bool failover = !strcmp(jstr(j, "mode"), "failover");
	char want[160];
	size_t i;

	snprintf(want, sizeof(want), "drill %s: PASS", name);
	EXPECT_STREQ("pass", jstr(j, "result"));
	EXPECT_EQ(0, strncmp(jstr(j, "verdict"), want, strlen(want)))
		TH_LOG("verdict: %s", jstr(j, "verdict"));
	ASSERT_TRUE(json_is_object(fig));
	EXPECT_LT(0, jint(fig, "acknowledged"));
	EXPECT_EQ(0, jint(fig, "lost"));
	EXPECT_EQ(0, jint(fig, "duplicated"));
	EXPECT_EQ(0, jint(fig, "unexpected"));
	EXPECT_EQ(0, jint(fig, "evringd_unexpected_deaths"));
	ASSERT_TRUE(json_is_array(views));
	ASSERT_TRUE(json_is_array(streams));
	ASSERT_EQ(failover ? 1 : json_array_size(streams),
		  json_array_size(views));
	json_array_foreach(views, i, v) {
		EXPECT_EQ(0, jint(v, "lost")) TH_LOG("view %s", jstr(v, "view"));
		EXPECT_EQ(0, jint(v, "duplicated")) TH_LOG("view %s", jstr(v, "view"));
		EXPECT_EQ(0, jint(v, "unexpected")) TH_LOG("view %s", jstr(v, "view"));
		EXPECT_EQ(jint(v, "delivered"), jint(v, "deliveries"))
			TH_LOG("view %s", jstr(v, "view"));
		EXPECT_LT(0, jint(v, "delivered")) TH_LOG("view %s", jstr(v, "view"));
		if (!failover)
			EXPECT_EQ(jint(v, "deliveries"),
				  jint(json_array_get(streams, i), "canary_messages"))
				TH_LOG("stream %s", jstr(json_array_get(streams, i), "name"));
	}
	json_array_foreach(streams, i, v)
		sum += jint(v, "canary_messages");
	if (failover)
		EXPECT_EQ(jint(json_array_get(views, 0), "deliveries"), sum);
	ASSERT_TRUE(json_is_array(faults));
	ASSERT_LT(0, json_array_size(faults));
	ASSERT_LT(0, bound);
	json_array_foreach(faults, i, v) {
		const char *f = jstr(v, "name");

		EXPECT_LE(0, jint(v, "applied_ms")) TH_LOG("fault %s never applied", f);
		EXPECT_LE(0, jint(v, "removed_ms")) TH_LOG("fault %s never removed", f);
		EXPECT_LE(0, jint(v, "recover_ms")) TH_LOG("fault %s: never recovered", f);
		EXPECT_GE(bound, jint(v, "recover_ms")) TH_LOG("fault %s", f);
		EXPECT_TRUE(json_is_true(json_object_get(v, "recovered_in_time")))
			TH_LOG("fault %s", f);
	}
}

TEST_F_TIMEOUT(scenario, short_run_passes_loses_nothing_doubles_nothing_recovers_in_time, TEST_TIMEOUT_S)
{
	char ini[128], err[300];
	json_t *j;
	int rc;

	SKIP_UNLESS_READY(shipped[variant->i]);

	snprintf(ini, sizeof(ini), "drills/%s.ini", shipped[variant->i]);
	rc = run_evringctl(&self->r, RUN_TIMEOUT_S, "drill", ini, "--short",
			   "--out", self->r.out);
	run_show(&self->r);
	ASSERT_EQ(0, rc);
	j = load_report(&self->r, err, sizeof(err));
	ASSERT_NE(NULL, j) TH_LOG("%s", err);
	EXPECT_TRUE(json_is_true(json_object_get(j, "short")));
	check_passed(_metadata, j, shipped[variant->i]);
	json_decref(j);
	EXPECT_NOTHING_LEFT(&self->r);
}

/* --- the runner's own guarantees ----------------------------------------- */

FIXTURE(runner) {
	struct run r;
};

FIXTURE_SETUP(runner)
{
	ASSERT_EQ(0, run_init(&self->r));
}

FIXTURE_TEARDOWN(runner)
{
	run_stop(&self->r, _metadata->name, _metadata->passed);
}

TEST_F(runner, shipped_are_all_tested)
{
	unsigned int seen = 0, n = sizeof(shipped) / sizeof(shipped[0]);
	struct dirent *d;
	DIR *dp;

	SKIP_UNLESS_READY(_metadata->name);

	dp = opendir("drills");
	ASSERT_NE(NULL, dp);
	while ((d = readdir(dp))) {
		size_t len = strlen(d->d_name);
		bool known = false;

		if (len < 5 || strcmp(d->d_name + len - 4, ".ini"))
			continue;
		for (unsigned int i = 0; i < n; i++)
			known |= strlen(shipped[i]) == len - 4 &&
				 !strncmp(shipped[i], d->d_name, len - 4);
		EXPECT_TRUE(known) TH_LOG("drills/%s has no test here", d->d_name);
		seen++;
	}
	closedir(dp);
	EXPECT_EQ(n, seen);
}

/* The runner's output, exactly; and it made no directory. */
static void expect_refused(struct __test_metadata *_metadata, struct run *r,
			   const char *ini, const char *want)
{
	char got[1024];

	unlink(r->log);
	EXPECT_EQ(2, run_evringctl(r, 30, "drill", ini, "--short", "--out",
				   r->out));
	ASSERT_EQ(0, read_file(r->log, got, sizeof(got)));
	EXPECT_STREQ(want, got);
	EXPECT_EQ(-1, access(r->out, F_OK));
}

TEST_F(runner, bad_scenario_exits_2_with_the_parsers_line)
{
	char ini[160], want[400];

	SKIP_UNLESS_READY(_metadata->name);

	snprintf(ini, sizeof(ini), "%s/bad-value.ini", self->r.tmp);
	ASSERT_EQ(0, write_file(ini, "[drill]\nname = bad\nduration_s = 10\n\n"
				     "[traffic]\nrate = 0\n"));
	snprintf(want, sizeof(want),
		 "drill: %s:6: bad value '0' for traffic.rate: out of range (1..1000000)\n",
		 ini);
	expect_refused(_metadata, &self->r, ini, want);

	snprintf(ini, sizeof(ini), "%s/no-fault.ini", self->r.tmp);
	ASSERT_EQ(0, write_file(ini, "[drill]\nname = nofault\nduration_s = 10\n"));
	snprintf(want, sizeof(want),
		 "drill: %s: no [fault NAME] section (a drill injects at least one fault)\n",
		 ini);
	expect_refused(_metadata, &self->r, ini, want);

	snprintf(ini, sizeof(ini), "%s/missing.ini", self->r.tmp);
	snprintf(want, sizeof(want),
		 "drill: cannot open '%s': No such file or directory\n", ini);
	expect_refused(_metadata, &self->r, ini, want);
}

/* Is region @name cut off (tools/regions' nftables table in its netns)? */
static bool partitioned(const char *name)
{
	char cmd[200];

	snprintf(cmd, sizeof(cmd),
		 "ip netns exec evr-%s nft list table inet " NFT_TABLE
		 " >/dev/null 2>&1", name);
	return system(cmd) == 0;
}

TEST_F_TIMEOUT(runner, sigint_during_a_partition_exits_2_and_leaves_nothing, TEST_TIMEOUT_S)
{
	uint64_t end = now_ms() + FAULT_WAIT_S * 1000;
	char err[300];
	json_t *j;
	int rc;

	SKIP_UNLESS_READY(_metadata->name);

	ASSERT_EQ(0, run_spawn(&self->r, "drill", "drills/region-partition.ini",
			       "--short", "--out", self->r.out));
	/* Our drill's traffic is on (so the lock and r1 are ours), then r1's cut. */
	while (!(run_said(&self->r, "traffic on") && partitioned("r1"))) {
		ASSERT_TRUE(run_alive(&self->r)) run_show(&self->r);
		ASSERT_GT(end, now_ms()) run_show(&self->r);
		sleep_ms(100);
	}
	ASSERT_EQ(0, kill(self->r.pid, SIGINT));
	rc = run_wait(&self->r, STOP_WAIT_S);
	run_show(&self->r);
	EXPECT_EQ(2, rc);
	EXPECT_TRUE(run_said(&self->r, "interrupted at t="));
	j = load_report(&self->r, err, sizeof(err));
	ASSERT_NE(NULL, j) TH_LOG("%s", err);
	EXPECT_STREQ("interrupted", jstr(j, "result"));
	json_decref(j);
	EXPECT_NOTHING_LEFT(&self->r);
}

/* The path of the spool filler the journal names, once it exists. */
static bool filler_made(const struct run *r)
{
	char path[200], line[512];
	bool made = false;
	FILE *fp;

	snprintf(path, sizeof(path), "%s/cleanup.journal", r->out);
	fp = fopen(path, "re");
	if (!fp)
		return false;
	while (fgets(line, sizeof(line), fp))
		if (!strncmp(line, "filler ", 7)) {
			line[strcspn(line, "\n")] = '\0';
			made = !access(line + 7, F_OK);
		}
	fclose(fp);
	return made;
}

TEST_F_TIMEOUT(runner, sigkill_mid_fault_then_cleanup_removes_everything, TEST_TIMEOUT_S)
{
	uint64_t end = now_ms() + FAULT_WAIT_S * 1000;
	struct found f;
	bool all;

	SKIP_UNLESS_READY(_metadata->name);

	ASSERT_EQ(0, run_spawn(&self->r, "drill", "drills/spool-disk-full.ini",
			       "--short", "--out", self->r.out));
	/* The spool's tmpfs is full: the fault is on. */
	while (!(run_said(&self->r, "traffic on") && filler_made(&self->r))) {
		ASSERT_TRUE(run_alive(&self->r)) run_show(&self->r);
		ASSERT_GT(end, now_ms()) run_show(&self->r);
		sleep_ms(100);
	}
	ASSERT_EQ(0, kill(self->r.pid, SIGKILL));
	ASSERT_EQ(256 + SIGKILL, run_wait(&self->r, 10));
	run_show(&self->r);
	/* Its writers, evringd, regions and tmpfs outlive it ... */
	ASSERT_EQ(0, leftovers(&self->r, false, &f, &all));
	EXPECT_LT(3, f.n) TH_LOG("left: %s", f.what);
	EXPECT_NE(NULL, strstr(f.what, "region state r1")) TH_LOG("left: %s", f.what);
	EXPECT_NE(NULL, strstr(f.what, "mount ")) TH_LOG("left: %s", f.what);
	/* ... until the journal is replayed. */
	unlink(self->r.log);
	EXPECT_EQ(0, run_evringctl(&self->r, STOP_WAIT_S, "drill", "--cleanup",
				   self->r.out));
	run_show(&self->r);
	EXPECT_NOTHING_LEFT(&self->r);
}

/*
 * Test only: one region frozen from t = 1 s with a 1 ms SLA; the SLA
 * watch aborts after 2 s of breach, long before the fault would end.
 */
static const char abort_ini[] =
	"[drill]\n"
	"name = abort-sla\n"
	"description = test only: an SLA no region meets, aborted after 2 s\n"
	"duration_s = 30\n"
	"mode = replicate\n"
	"regions = 1\n"
	"[traffic]\n"
	"rate = 2000\n"
	"writers = 1\n"
	"path = socket\n"
	"[sla]\n"
	"latency_ms = 1\n"
	"abort_after_s = 2\n"
	"recover_within_s = 5\n"
	"[fault freeze]\n"
	"kind = region-pause\n"
	"target = r1\n"
	"at_s = 1\n"
	"for_s = 28\n";

TEST_F_TIMEOUT(runner, sla_breach_aborts_exit_1_and_removes_the_fault, TEST_TIMEOUT_S)
{
	char ini[160], err[300], log[1 << 15], path[200];
	json_t *j, *fault;
	int rc;

	SKIP_UNLESS_READY(_metadata->name);

	snprintf(ini, sizeof(ini), "%s/abort-sla.ini", self->r.tmp);
	ASSERT_EQ(0, write_file(ini, abort_ini));
	rc = run_evringctl(&self->r, RUN_TIMEOUT_S, "drill", ini, "--out",
			   self->r.out);
	run_show(&self->r);
	EXPECT_EQ(1, rc);
	j = load_report(&self->r, err, sizeof(err));
	ASSERT_NE(NULL, j) TH_LOG("%s", err);
	EXPECT_STREQ("aborted", jstr(j, "result"));
	EXPECT_NE(NULL, strstr(jstr(j, "verdict"), "drill abort-sla: FAIL"))
		TH_LOG("verdict: %s", jstr(j, "verdict"));
	EXPECT_NE(NULL, strstr(jstr(j, "abort_reason"), "over the SLA (1 ms)"))
		TH_LOG("abort_reason: %s", jstr(j, "abort_reason"));
	EXPECT_GT(jint(j, "duration_ms"), jint(j, "traffic_end_ms"));
	fault = json_array_get(json_object_get(j, "faults"), 0);
	EXPECT_LE(0, jint(fault, "applied_ms"));
	EXPECT_LE(0, jint(fault, "removed_ms"));
	EXPECT_GT(jint(fault, "at_ms") + jint(fault, "for_ms"),
		  jint(fault, "removed_ms"));
	json_decref(j);
	/* The region was continued, by a command that worked. */
	snprintf(path, sizeof(path), "%s/inject.log", self->r.out);
	ASSERT_EQ(0, read_file(path, log, sizeof(log)));
	EXPECT_NE(NULL, strstr(log, "fault 'freeze' (region-pause) off at")) TH_LOG("%s", log);
	EXPECT_NE(NULL, strstr(log, "regions cont r1: done, status 0")) TH_LOG("%s", log);
	EXPECT_NOTHING_LEFT(&self->r);
}

TEST_HARNESS_MAIN
