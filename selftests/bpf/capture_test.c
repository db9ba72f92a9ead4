// SPDX-License-Identifier: GPL-2.0-only
/*
 * capture_test: the BPF capture shim end to end.  Each test starts the
 * real evringd with the BPF source on its own pin path, makes the kernel
 * events happen (exec, exit, TCP connect and accept, opens), and judges
 * what the spool holds, the kernel's counters and what bpftool shows.
 *
 * Needs root, a BPF file system, tracefs and kernel BTF; SKIPs with the
 * reason without them.  Runs on the host and, through tools/vm-run, on
 * the VM's 6.1 kernel (EVRING_IN_VM: smaller floods).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <sys/utsname.h>
#include <bpf/libbpf.h>

#include "bpf_test.h"
#include "config.h"
#include "drain.h"
#include "loop.h"
#include "source_bpf.h"
#include "evring_capture.skel.h"
#include "kselftest_harness.h"

#define UP_MS		30000
#define SEEN_MS		20000

FIXTURE(cap) {
	struct bt_env e;
	char why[256];
	bool skip;
};

FIXTURE_SETUP(cap)
{
	self->skip = bt_prereq(self->why, sizeof(self->why)) != 0;
	if (!self->skip)
		ASSERT_EQ(0, bt_env_init(&self->e, "cap"));
}

FIXTURE_TEARDOWN(cap)
{
	if (!self->skip) {
		if (_metadata->passed == 0 || getenv("EVRING_BPF_LOG"))
			bt_log_tail(&self->e);
		bt_env_fini(&self->e);
	}
}

#define NEED_BPF() do { \
	if (self->skip) \
		SKIP(return, "%s", self->why); \
} while (0)

/* This process's comm, as the kernel reports it. */
static void my_comm(char *comm)
{
	int fd = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? 0 : read(fd, comm, EVRING_BPF_COMM_LEN);

	if (fd >= 0)
		close(fd);
	if (n > 0 && comm[n - 1] == '\n')
		n--;
	comm[n > 0 ? n : 0] = '\0';
}

/* --- finding events ----------------------------------------------------------- */

struct want {
	uint32_t capture;
	pid_t pid;			/* hdr.pid, or 0: any */
	const char *path;		/* open: the path, or NULL */
	uint16_t lport, rport;		/* connect/accept: 0 any */
	const struct bt_rec *found;	/* copied out by the predicate */
	struct bt_rec copy;
};

static bool matches(const struct bt_rec *r, const struct want *w)
{
	if (r->capture != w->capture || r->ev.hdr.kind != EVRING_BPF_KIND_EVENT)
		return false;
	if (w->pid && r->ev.hdr.pid != (uint32_t)w->pid)
		return false;
	if (w->path && strcmp(r->ev.open.path, w->path))
		return false;
	if (w->lport && r->ev.conn.lport != w->lport)
		return false;
	if (w->rport && r->ev.conn.rport != w->rport)
		return false;
	return true;
}

static bool seen(const struct bt_spool *sp, void *arg)
{
	struct want *w = arg;

	for (size_t i = 0; i < sp->n; i++) {
		if (matches(&sp->recs[i], w)) {
			w->copy = sp->recs[i];
			w->found = &w->copy;
			return true;
		}
	}
	return false;
}

static size_t count(const struct bt_spool *sp, const struct want *w)
{
	size_t n = 0;

	for (size_t i = 0; i < sp->n; i++)
		n += matches(&sp->recs[i], w);
	return n;
}

/* --- the programs on this kernel ------------------------------------------------ */

TEST(programs_pass_the_verifier_and_attach_on_this_kernel)
{
	struct evring_capture *skel;
	struct bpf_program *p;
	struct utsname u;
	char why[256];
	int n = 0;

	if (bt_prereq(why, sizeof(why)))
		SKIP(return, "%s", why);
	uname(&u);
	skel = evring_capture__open_and_load();
	ASSERT_NE(NULL, skel) {
		TH_LOG("the verifier of %s refused a program: %s", u.release,
		       strerror(errno));
	}
	bpf_object__for_each_program(p, skel->obj) {
		struct bpf_link *link;

		EXPECT_LE(0, bpf_program__fd(p));
		link = bpf_program__attach(p);
		EXPECT_NE(NULL, link) {
			TH_LOG("%s: cannot attach to %s: %s",
			       bpf_program__name(p),
			       bpf_program__section_name(p), strerror(errno));
		}
		bpf_link__destroy(link);
		n++;
	}
	EXPECT_EQ(8, n);
	TH_LOG("%d programs loaded and attached on %s", n, u.release);
	evring_capture__destroy(skel);
}

/* --- exec and exit ---------------------------------------------------------------- */

TEST_F(cap, exec_of_a_known_argv_is_captured_with_pid_ppid_uid_comm_filename)
{
	const char *const sets[] = { "bpf.captures=exec exit", NULL };
	static const char args[] = "/bin/true\0evring-bpf-arg-1\0second arg";
	struct want ex = { .capture = EVRING_BPF_EXEC };
	struct want ez = { .capture = EVRING_BPF_EXIT };
	struct timespec t0, t1;
	int status;
	pid_t pid;

	NEED_BPF();
	ASSERT_EQ(0, bt_daemon_up(&self->e, sets, UP_MS));
	clock_gettime(CLOCK_REALTIME, &t0);
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		execl("/bin/true", "/bin/true", "evring-bpf-arg-1",
		      "second arg", (char *)NULL);
		_exit(127);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_EQ(0, status);
	clock_gettime(CLOCK_REALTIME, &t1);
	ex.pid = ez.pid = pid;
	ASSERT_EQ(0, bt_wait(&self->e, seen, &ex, SEEN_MS));
	ASSERT_EQ(0, bt_wait(&self->e, seen, &ez, SEEN_MS));

	EXPECT_EQ(EVRING_BPF_EXEC, ex.copy.ev.hdr.capture);
	EXPECT_EQ((uint32_t)pid, ex.copy.ev.hdr.pid);
	EXPECT_EQ((uint32_t)pid, ex.copy.ev.hdr.tid);
	EXPECT_EQ((uint32_t)getpid(), ex.copy.ev.exec.ppid);
	EXPECT_EQ(0u, ex.copy.ev.hdr.uid);
	EXPECT_STREQ("true", ex.copy.ev.hdr.comm);
	EXPECT_STREQ("/bin/true", ex.copy.ev.exec.filename);
	EXPECT_EQ(sizeof(args), ex.copy.ev.exec.args_len);
	EXPECT_EQ(0, memcmp(args, ex.copy.ev.exec.args, sizeof(args)));
	EXPECT_EQ(0u, ex.copy.ev.exec.flags);
	/* The record header carries the same pid and uid, and its time. */
	EXPECT_EQ((uint32_t)pid, ex.copy.rec.pid);
	EXPECT_EQ(0u, ex.copy.rec.uid);
	EXPECT_EQ(ex.copy.ev.hdr.size, ex.copy.rec.len);
	EXPECT_LE((uint64_t)t0.tv_sec * 1000000000 + t0.tv_nsec - 50000000,
		  ex.copy.rec.ts_ns);
	EXPECT_GE((uint64_t)t1.tv_sec * 1000000000 + t1.tv_nsec + 50000000,
		  ex.copy.rec.ts_ns);
	/* And it exited, status 0. */
	EXPECT_EQ((uint32_t)getpid(), ez.copy.ev.exit.ppid);
	EXPECT_EQ(0u, ez.copy.ev.exit.exit_code);
	EXPECT_STREQ("true", ez.copy.ev.hdr.comm);
}

static void *idle_thread(void *arg)
{
	pause();
	return NULL;
}

TEST_F(cap, exit_is_captured_once_per_process_with_its_wait_status)
{
	const char *const sets[] = { "bpf.captures=exit", NULL };
	struct want w[3] = {
		{ .capture = EVRING_BPF_EXIT }, { .capture = EVRING_BPF_EXIT },
		{ .capture = EVRING_BPF_EXIT },
	};
	int status[3];
	pid_t pid[3];
	struct bt_spool sp;

	NEED_BPF();
	ASSERT_EQ(0, bt_daemon_up(&self->e, sets, UP_MS));
	for (int i = 0; i < 3; i++) {
		pid[i] = fork();
		ASSERT_LE(0, pid[i]);
		if (pid[i] == 0) {
			pthread_t t;

			if (i == 0)
				_exit(7);
			if (i == 1)
				raise(SIGKILL);
			/* Four threads die together in exit_group(). */
			for (int j = 0; j < 3; j++)
				pthread_create(&t, NULL, idle_thread, NULL);
			exit(3);
		}
		ASSERT_EQ(pid[i], waitpid(pid[i], &status[i], 0));
		w[i].pid = pid[i];
	}
	for (int i = 0; i < 3; i++) {
		ASSERT_EQ(0, bt_wait(&self->e, seen, &w[i], SEEN_MS));
		EXPECT_EQ((uint32_t)status[i], w[i].copy.ev.exit.exit_code);
		EXPECT_EQ((uint32_t)getpid(), w[i].copy.ev.exit.ppid);
	}
	status[0] = w[0].copy.ev.exit.exit_code;
	status[1] = w[1].copy.ev.exit.exit_code;
	status[2] = w[2].copy.ev.exit.exit_code;
	EXPECT_TRUE(WIFEXITED(status[0]));
	EXPECT_EQ(7, WEXITSTATUS(status[0]));
	EXPECT_TRUE(WIFSIGNALED(status[1]));
	EXPECT_EQ(SIGKILL, WTERMSIG(status[1]));
	EXPECT_EQ(3, WEXITSTATUS(status[2]));
	/* Once each, the threaded one too. */
	bt_sleep_ms(300);
	ASSERT_EQ(0, bt_spool_read(self->e.spool, &sp));
	for (int i = 0; i < 3; i++)
		EXPECT_EQ(1u, count(&sp, &w[i]));
	bt_spool_free(&sp);
}

/* --- TCP ---------------------------------------------------------------------- */

/*
 * Connect a client to a listener on @addr (loopback), accept it; the
 * ports and the accepted fd come back.  0, or -errno (-EAFNOSUPPORT: no
 * such loopback here).
 */
static int tcp_pair(int family, uint16_t *lport, uint16_t *cport, int *afd)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t len = family == AF_INET ? sizeof(struct sockaddr_in) :
			sizeof(struct sockaddr_in6);
	int l, c, a, one = 1;

	ss.ss_family = family;
	if (family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else
		((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
	l = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0)
		return -EAFNOSUPPORT;
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(l, (struct sockaddr *)&ss, len) || listen(l, 4) ||
	    getsockname(l, (struct sockaddr *)&ss, &len)) {
		close(l);
		return -EAFNOSUPPORT;
	}
	*lport = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port :
		       ((struct sockaddr_in6 *)&ss)->sin6_port);
	c = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&ss, len))
		return -errno;
	a = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (a < 0 || getsockname(c, (struct sockaddr *)&ss, &len))
		return -errno;
	*cport = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port :
		       ((struct sockaddr_in6 *)&ss)->sin6_port);
	*afd = a;
	return 0;
}

TEST_F(cap, loopback_tcp_connect_and_accept_are_captured_with_addresses_and_ports)
{
	const char *const sets[] = { "bpf.captures=connect accept", NULL };
	static const uint8_t v4[16] = { 127, 0, 0, 1 };
	static const uint8_t v6[16] = { [15] = 1 };
	char comm[EVRING_BPF_COMM_LEN];

	NEED_BPF();
	my_comm(comm);
	ASSERT_EQ(0, bt_daemon_up(&self->e, sets, UP_MS));
	for (int family = AF_INET; family; family = family == AF_INET ? AF_INET6 : 0) {
		struct want c = { .capture = EVRING_BPF_CONNECT, .pid = getpid() };
		struct want a = { .capture = EVRING_BPF_ACCEPT, .pid = getpid() };
		const uint8_t *addr = family == AF_INET ? v4 : v6;
		uint16_t lport = 0, cport = 0;
		int afd = -1, ret;

		ret = tcp_pair(family, &lport, &cport, &afd);
		if (family == AF_INET6 && ret == -EAFNOSUPPORT) {
			TH_LOG("no IPv6 loopback here: IPv4 only");
			break;
		}
		ASSERT_EQ(0, ret);
		c.lport = cport;
		c.rport = lport;
		a.lport = lport;
		a.rport = cport;
		ASSERT_EQ(0, bt_wait(&self->e, seen, &c, SEEN_MS));
		ASSERT_EQ(0, bt_wait(&self->e, seen, &a, SEEN_MS));
		EXPECT_EQ(family, c.copy.ev.conn.family);
		EXPECT_EQ(IPPROTO_TCP, c.copy.ev.conn.protocol);
		EXPECT_EQ(0, c.copy.ev.conn.ret);
		EXPECT_EQ(0, memcmp(addr, c.copy.ev.conn.laddr, 16));
		EXPECT_EQ(0, memcmp(addr, c.copy.ev.conn.raddr, 16));
		EXPECT_STREQ(comm, c.copy.ev.hdr.comm);
		EXPECT_EQ(family, a.copy.ev.conn.family);
		EXPECT_EQ(afd, a.copy.ev.conn.ret);
		EXPECT_EQ(0, memcmp(addr, a.copy.ev.conn.laddr, 16));
		EXPECT_EQ(0, memcmp(addr, a.copy.ev.conn.raddr, 16));
		EXPECT_STREQ(comm, a.copy.ev.hdr.comm);
	}
}

/* --- opens -------------------------------------------------------------------- */

static int touch(const char *dir, const char *name, int flags)
{
	char path[300];
	int fd;

	snprintf(path, sizeof(path), "%s%s", dir, name);
	fd = open(path, flags | O_CLOEXEC, 0644);
	return fd < 0 ? -errno : fd;
}

TEST_F(cap, opens_under_a_prefix_are_captured_by_resolved_path_and_no_others)
{
	const char *const sets[] = { "bpf.captures=open", NULL };
	struct want a = { .capture = EVRING_BPF_OPEN };
	struct want b = { .capture = EVRING_BPF_OPEN };
	struct want d = { .capture = EVRING_BPF_OPEN };
	char pa[200], pb[200], pd[200], top[200], link1[300], link2[300];
	struct want out = { .capture = EVRING_BPF_OPEN };
	struct evring_bpf_stats ks;
	struct bt_spool sp;
	char cwd[4096];
	int fa, fb, fd, dfd;

	NEED_BPF();
	ASSERT_EQ(0, bt_daemon_up(&self->e, sets, UP_MS));
	snprintf(top, sizeof(top), "%s/", self->e.dir);
	snprintf(pa, sizeof(pa), "%sa.txt", self->e.prefix);
	snprintf(pb, sizeof(pb), "%sb.txt", self->e.prefix);
	snprintf(pd, sizeof(pd), "%sd.txt", self->e.prefix);
	/* Outside: a file beside the prefix, and a link in it leading out. */
	ASSERT_LE(0, fd = touch(top, "outside.txt", O_WRONLY | O_CREAT));
	close(fd);
	snprintf(link1, sizeof(link1), "%slink-out", self->e.prefix);
	ASSERT_EQ(0, symlink("../outside.txt", link1));
	ASSERT_LE(0, fd = touch(self->e.prefix, "link-out", O_RDONLY));
	close(fd);
	/* Inside: absolute, relative to the cwd, through a link from outside. */
	ASSERT_LE(0, fa = touch(self->e.prefix, "a.txt", O_WRONLY | O_CREAT));
	ASSERT_NE(NULL, getcwd(cwd, sizeof(cwd)));
	ASSERT_EQ(0, chdir(self->e.prefix));
	fb = open("b.txt", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	ASSERT_EQ(0, chdir(cwd));
	ASSERT_LE(0, fb);
	ASSERT_LE(0, fd = touch(self->e.prefix, "d.txt", O_WRONLY | O_CREAT));
	close(fd);
	snprintf(link2, sizeof(link2), "%slink-in", top);
	ASSERT_EQ(0, symlink(pd, link2));
	dfd = open(self->e.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ASSERT_LE(0, dfd);
	fd = openat(dfd, "link-in", O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, fd);

	a.pid = b.pid = d.pid = getpid();
	a.path = pa;
	b.path = pb;
	d.path = pd;
	ASSERT_EQ(0, bt_wait(&self->e, seen, &a, SEEN_MS));
	ASSERT_EQ(0, bt_wait(&self->e, seen, &b, SEEN_MS));
	/* d.txt twice: created, then opened through the link. */
	ASSERT_EQ(0, bt_wait(&self->e, seen, &d, SEEN_MS));
	EXPECT_EQ(fa, a.copy.ev.open.fd);
	EXPECT_EQ(O_WRONLY, (int)(a.copy.ev.open.flags & O_ACCMODE));
	EXPECT_EQ(strlen(pa), a.copy.ev.open.path_len);
	EXPECT_EQ(0u, a.copy.ev.open.path_flags);
	EXPECT_EQ(fb, b.copy.ev.open.fd);
	EXPECT_EQ(O_RDWR, (int)(b.copy.ev.open.flags & O_ACCMODE));
	bt_sleep_ms(200);
	ASSERT_EQ(0, bt_spool_read(self->e.spool, &sp));
	EXPECT_EQ(2u, count(&sp, &d));
	/* Nothing outside the prefix, though the link was inside. */
	for (size_t i = 0; i < sp.n; i++) {
		const struct bt_rec *r = &sp.recs[i];

		if (!matches(r, &out))
			continue;
		EXPECT_EQ(0, strncmp(r->ev.open.path, self->e.prefix,
				     strlen(self->e.prefix))) {
			TH_LOG("captured outside the prefix: %s",
			       r->ev.open.path);
		}
	}
	bt_spool_free(&sp);
	ASSERT_EQ(0, bt_kstats(&self->e, EVRING_BPF_OPEN, &ks));
	EXPECT_LE(2u, ks.filtered);
	close(fa);
	close(fb);
	close(fd);
	close(dfd);
}

TEST_F(cap, uid_filter_keeps_only_the_listed_uids)
{
	const char *const sets[] = { "bpf.captures=open", "bpf.uids=0", NULL };
	struct want root = { .capture = EVRING_BPF_OPEN };
	struct want nobody = { .capture = EVRING_BPF_OPEN };
	char pr[200], pn[200];
	struct bt_spool sp;
	int fd, status;
	pid_t pid;

	NEED_BPF();
	snprintf(pn, sizeof(pn), "%snobody.txt", self->e.prefix);
	snprintf(pr, sizeof(pr), "%sroot.txt", self->e.prefix);
	ASSERT_LE(0, fd = touch(self->e.prefix, "nobody.txt", O_WRONLY | O_CREAT));
	close(fd);
	chmod(self->e.dir, 0755);
	ASSERT_EQ(0, bt_daemon_up(&self->e, sets, UP_MS));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		if (setresgid(65534, 65534, 65534) ||
		    setresuid(65534, 65534, 65534))
			_exit(2);
		_exit(open(pn, O_RDONLY | O_CLOEXEC) < 0 ? 3 : 0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_EQ(0, status);
	ASSERT_LE(0, fd = touch(self->e.prefix, "root.txt", O_WRONLY | O_CREAT));
	close(fd);
	root.path = pr;
	ASSERT_EQ(0, bt_wait(&self->e, seen, &root, SEEN_MS));
	EXPECT_EQ(0u, root.copy.ev.hdr.uid);
	nobody.path = pn;
	ASSERT_EQ(0, bt_spool_read(self->e.spool, &sp));
	EXPECT_EQ(0u, count(&sp, &nobody));
	bt_spool_free(&sp);
}

/* Where cgroup v2 is mounted, or "" when it is not. */
static void cgroup2_root(char *buf, size_t len)
{
	char line[4096], dev[64], dir[4096], type[64];
	FILE *f = fopen("/proc/self/mounts", "re");

	buf[0] = '\0';
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "%63s %4095s %63s", dev, dir, type) == 3 &&
		    !strcmp(type, "cgroup2")) {
			snprintf(buf, len, "%s", dir);
			break;
		}
	if (f)
		fclose(f);
}

TEST_F(cap, cgroup_filter_keeps_only_tasks_in_the_listed_cgroup_or_below)
{
	char root[4096], cg[4300], sub[4400], procs[4500], set[200];
	const char *const sets[] = { "bpf.captures=open", set, NULL };
	struct want in = { .capture = EVRING_BPF_OPEN };
	struct want out = { .capture = EVRING_BPF_OPEN };
	char pin_[200], pout[200], name[64], mnt[200] = "";
	struct bt_spool sp;
	int fd, status, p[2];
	pid_t pid;
	char go;

	NEED_BPF();
	cgroup2_root(root, sizeof(root));
	if (!root[0]) {
		/* Mount it (the VM has none); evringd finds it the same way. */
		snprintf(mnt, sizeof(mnt), "%s/cgroup2", self->e.dir);
		if (mkdir(mnt, 0755) || mount("none", mnt, "cgroup2", 0, NULL))
			SKIP(return, "no cgroup v2 here: %s", strerror(errno));
		snprintf(root, sizeof(root), "%s", mnt);
	}
	snprintf(name, sizeof(name), "/evring-test-%d", (int)getpid());
	snprintf(cg, sizeof(cg), "%s%s", root, name);
	snprintf(sub, sizeof(sub), "%s/below", cg);
	if (mkdir(cg, 0755) || mkdir(sub, 0755))
		SKIP(return, "cannot create a cgroup under '%s': %s", root,
		     strerror(errno));
	snprintf(set, sizeof(set), "bpf.cgroups=%s", name);
	snprintf(pin_, sizeof(pin_), "%sin-cgroup", self->e.prefix);
	snprintf(pout, sizeof(pout), "%sout-of-cgroup", self->e.prefix);
	ASSERT_EQ(0, bt_daemon_up(&self->e, sets, UP_MS));
	ASSERT_EQ(0, pipe(p));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		/* Wait to be moved into the child cgroup, then open. */
		if (read(p[0], &go, 1) != 1)
			_exit(2);
		fd = open(pin_, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		_exit(fd < 0 ? 3 : 0);
	}
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", sub);
	fd = open(procs, O_WRONLY | O_CLOEXEC);
	ASSERT_LE(0, fd);
	ASSERT_LT(0, dprintf(fd, "%d\n", (int)pid));
	close(fd);
	ASSERT_EQ(1, write(p[1], "g", 1));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_EQ(0, status);
	rmdir(sub);
	rmdir(cg);
	if (mnt[0])
		umount2(mnt, MNT_DETACH);
	ASSERT_LE(0, fd = open(pout, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
	close(fd);
	in.path = pin_;
	ASSERT_EQ(0, bt_wait(&self->e, seen, &in, SEEN_MS));
	EXPECT_EQ((uint32_t)pid, in.copy.ev.hdr.pid);
	/* The out-of-cgroup open came after: it would be there by now. */
	bt_sleep_ms(300);
	out.path = pout;
	ASSERT_EQ(0, bt_spool_read(self->e.spool, &sp));
	EXPECT_EQ(0u, count(&sp, &out));
	bt_spool_free(&sp);
}

TEST_F(cap, sighup_applies_new_open_prefixes_to_the_running_programs)
{
	const char *const sets[] = { "bpf.captures=open", NULL };
	char a[200], b[200], text[600];
	struct want w = { .capture = EVRING_BPF_OPEN };
	struct bt_spool sp;
	int fd;

	NEED_BPF();
	snprintf(self->e.conf, sizeof(self->e.conf), "%s/evringd.conf",
		 self->e.dir);
	snprintf(a, sizeof(a), "%sa-", self->e.prefix);
	snprintf(b, sizeof(b), "%sb-", self->e.prefix);
	snprintf(text, sizeof(text), "[bpf]\nopen_prefixes = %s\n", a);
	fd = open(self->e.conf, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ASSERT_LE(0, fd);
	ASSERT_EQ((ssize_t)strlen(text), write(fd, text, strlen(text)));
	close(fd);
	ASSERT_EQ(0, bt_daemon_up(&self->e, sets, UP_MS));
	ASSERT_LE(0, fd = touch(self->e.prefix, "b-1", O_WRONLY | O_CREAT));
	close(fd);
	ASSERT_LE(0, fd = touch(self->e.prefix, "a-1", O_WRONLY | O_CREAT));
	close(fd);
	snprintf(text, sizeof(text), "%sa-1", self->e.prefix);
	w.path = text;
	ASSERT_EQ(0, bt_wait(&self->e, seen, &w, SEEN_MS));

	snprintf(text, sizeof(text), "[bpf]\nopen_prefixes = %s\n", b);
	fd = open(self->e.conf, O_WRONLY | O_TRUNC | O_CLOEXEC);
	ASSERT_LE(0, fd);
	ASSERT_EQ((ssize_t)strlen(text), write(fd, text, strlen(text)));
	close(fd);
	ASSERT_EQ(0, kill(self->e.pid, SIGHUP));
	for (int i = 0; i < 500 && !bt_log_has(&self->e, "reload: applied bpf.open_prefixes"); i++)
		bt_sleep_ms(10);
	ASSERT_TRUE(bt_log_has(&self->e, "reload: applied bpf.open_prefixes"));
	ASSERT_LE(0, fd = touch(self->e.prefix, "a-2", O_WRONLY | O_CREAT));
	close(fd);
	ASSERT_LE(0, fd = touch(self->e.prefix, "b-2", O_WRONLY | O_CREAT));
	close(fd);
	snprintf(text, sizeof(text), "%sb-2", self->e.prefix);
	ASSERT_EQ(0, bt_wait(&self->e, seen, &w, SEEN_MS));
	/* b-1 before the reload, a-2 after it: neither. */
	ASSERT_EQ(0, bt_spool_read(self->e.spool, &sp));
	snprintf(text, sizeof(text), "%sb-1", self->e.prefix);
	EXPECT_EQ(0u, count(&sp, &w));
	snprintf(text, sizeof(text), "%sa-2", self->e.prefix);
	EXPECT_EQ(0u, count(&sp, &w));
	bt_spool_free(&sp);
}

/* --- floods: every event is spooled or accounted ---------------------------------- */

struct flood {
	uint32_t capture;
	pid_t pid;
	const char *path;
	uint64_t n;		/* generated */
	uint64_t spooled, dropped, shed;
};

static bool flood_done(const struct bt_spool *sp, void *arg)
{
	struct flood *f = arg;
	struct want w = { .capture = f->capture, .pid = f->pid, .path = f->path };

	f->spooled = count(sp, &w);
	f->dropped = bt_lost(sp, f->capture, "bpf_ringbuf_full");
	f->shed = bt_lost(sp, f->capture, "bpf_shed");
	return f->spooled + f->dropped + f->shed >= f->n;
}

/*
 * Open @path as fast as one process can, in a child, at least @n times
 * and for at least @ms; how many times comes back through *@rfd.
 */
static pid_t open_flood(const char *path, uint64_t n, unsigned int ms,
			int *rfd)
{
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC))
		return -errno;
	pid = fork();
	if (pid == 0) {
		uint64_t end = bt_now_ms() + ms, i;

		for (i = 0; i < n || bt_now_ms() < end; i++) {
			int fd = open(path, O_RDONLY | O_CLOEXEC);

			if (fd < 0)
				_exit(1);
			close(fd);
		}
		_exit(write(p[1], &i, sizeof(i)) == sizeof(i) ? 0 : 2);
	}
	close(p[1]);
	*rfd = p[0];
	return pid;
}

static void flood_and_account(struct __test_metadata *_metadata,
			      struct bt_env *e, const char *const *sets,
			      bool expect_shed)
{
	struct flood f = { .capture = EVRING_BPF_OPEN };
	struct evring_bpf_stats ks;
	char path[200];
	struct bt_spool sp;
	int fd, rfd = -1, status;

	snprintf(path, sizeof(path), "%sflood", e->prefix);
	ASSERT_LE(0, fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
	close(fd);
	ASSERT_EQ(0, bt_daemon_up(e, sets, UP_MS));
	f.path = path;
	/* Long enough for the daemon's ticks to see the pressure. */
	f.pid = open_flood(path, bt_in_vm() ? 5000 : 50000, 1500, &rfd);
	ASSERT_LT(0, f.pid);
	ASSERT_EQ(f.pid, waitpid(f.pid, &status, 0));
	ASSERT_EQ(0, status);
	ASSERT_EQ((ssize_t)sizeof(f.n), read(rfd, &f.n, sizeof(f.n)));
	close(rfd);
	ASSERT_EQ(0, bt_wait(e, flood_done, &f, 60000)) {
		TH_LOG("generated %llu: spooled %llu, dropped %llu, shed %llu",
		       (unsigned long long)f.n,
		       (unsigned long long)f.spooled,
		       (unsigned long long)f.dropped,
		       (unsigned long long)f.shed);
	}
	TH_LOG("generated %llu: spooled %llu + dropped %llu + shed %llu",
	       (unsigned long long)f.n, (unsigned long long)f.spooled,
	       (unsigned long long)f.dropped, (unsigned long long)f.shed);
	/* Exactly: nothing counted twice, nothing missing. */
	EXPECT_EQ(f.n, f.spooled + f.dropped + f.shed);
	EXPECT_LT(0u, f.dropped);
	if (expect_shed) {
		EXPECT_LT(0u, f.shed);
	} else {
		EXPECT_EQ(0u, f.shed);
	}
	/* The kernel's own counts say the same. */
	ASSERT_EQ(0, bt_kstats(e, EVRING_BPF_OPEN, &ks));
	EXPECT_EQ(f.spooled, ks.events);
	EXPECT_EQ(f.dropped, ks.drops);
	EXPECT_EQ(f.shed, ks.shed);
	/* And the stream is gap-free but for the ledger's ranges. */
	ASSERT_EQ(0, bt_spool_read(e->spool, &sp));
	EXPECT_EQ(0u, bt_check_seq(&sp, EVRING_BPF_OPEN));
	bt_spool_free(&sp);
}

TEST_F_TIMEOUT(cap, tiny_ring_flood_spooled_plus_dropped_equals_generated, 180)
{
	const char *const sets[] = {
		"bpf.captures=open", "bpf.ring_size=4K", "bpf.shed=", NULL
	};

	NEED_BPF();
	flood_and_account(_metadata, &self->e, sets, false);
}

TEST_F_TIMEOUT(cap, tiny_ring_flood_with_shedding_spooled_plus_dropped_plus_shed_equals_generated, 180)
{
	const char *const sets[] = {
		"bpf.captures=open", "bpf.ring_size=4K", "bpf.shed=open",
		"bpf.shed_fill_pct=10", NULL
	};

	NEED_BPF();
	flood_and_account(_metadata, &self->e, sets, true);
}

/* --- bpftool ------------------------------------------------------------------ */

static json_t *bpftool_json(struct __test_metadata *_metadata,
			    const char *fmt, ...)
{
	char cmd[600], *out = NULL;
	json_t *j;
	va_list ap;
	int ret;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	ret = bt_sh(cmd, &out);
	EXPECT_EQ(0, ret) {
		TH_LOG("'%s' failed: %s", cmd, out ? out : "");
	}
	j = out ? json_loads(out, 0, NULL) : NULL;
	EXPECT_NE(NULL, j) {
		TH_LOG("'%s' printed no JSON: %s", cmd, out ? out : "");
	}
	free(out);
	return j;
}

static bool shed_twenty(const struct bt_spool *sp, void *arg)
{
	return bt_lost(sp, EVRING_BPF_OPEN, "bpf_shed") >= 20;
}

TEST_F(cap, pinned_maps_and_links_are_visible_and_tunable_with_bpftool)
{
	static const struct { const char *pin, *name, *type; } maps[] = {
		{ "ring", "evring_ring", "ringbuf" },
		{ "stats", "evring_stats", "percpu_array" },
		{ "config", "evring_config", "array" },
		{ "filter_uid", "evring_uids", "hash" },
		{ "filter_cgroup", "evring_cgroups", "hash" },
		{ "open_prefix", "evring_prefix", "array" },
	};
	static const char *const progs[] = {
		"evring_exec", "evring_exit", "evring_connect", "evring_accept",
		"evring_accept4", "evring_open", "evring_openat",
		"evring_openat2",
	};
	const char *const sets[] = { "bpf.captures=open", NULL };
	struct want w = { .capture = EVRING_BPF_OPEN };
	char path[200], cmd[400], *out = NULL;
	struct evring_bpf_stats ks;
	struct bt_spool sp;
	json_t *j;
	int fd;

	NEED_BPF();
	if (access("/usr/sbin/bpftool", X_OK))
		SKIP(return, "bpftool is not installed");
	ASSERT_EQ(0, bt_daemon_up(&self->e, sets, UP_MS));
	for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
		j = bpftool_json(_metadata, "bpftool -j map show pinned %s/%s",
				 self->e.pin, maps[i].pin);
		ASSERT_NE(NULL, j);
		EXPECT_STREQ(maps[i].name,
			     json_string_value(json_object_get(j, "name")));
		EXPECT_STREQ(maps[i].type,
			     json_string_value(json_object_get(j, "type")));
		if (!strcmp(maps[i].pin, "ring"))
			EXPECT_EQ(4 << 20, json_integer_value(
					json_object_get(j, "max_entries")));
		json_decref(j);
	}
	for (size_t i = 0; i < sizeof(progs) / sizeof(progs[0]); i++) {
		json_t *p;

		j = bpftool_json(_metadata, "bpftool -j link show pinned %s/link_%s",
				 self->e.pin, progs[i]);
		ASSERT_NE(NULL, j);
		p = bpftool_json(_metadata, "bpftool -j prog show id %lld",
				 (long long)json_integer_value(
					json_object_get(j, "prog_id")));
		ASSERT_NE(NULL, p);
		EXPECT_STREQ(progs[i],
			     json_string_value(json_object_get(p, "name")));
		EXPECT_STREQ("tracepoint",
			     json_string_value(json_object_get(p, "type")));
		json_decref(p);
		json_decref(j);
	}
	/* The documented dump: one value per CPU, by field name. */
	snprintf(cmd, sizeof(cmd), "bpftool map dump pinned %s/stats",
		 self->e.pin);
	ASSERT_EQ(0, bt_sh(cmd, &out));
	EXPECT_NE(NULL, strstr(out, "\"events\"")) {
		TH_LOG("%s", out);
	}
	EXPECT_NE(NULL, strstr(out, "\"drops\""));
	free(out);

	/*
	 * The documented tuning: shed the open capture (config key 1, bit 4),
	 * open 20 files: all counted as shed and in the ledger, none
	 * spooled; clear it, and the next open is captured.
	 */
	snprintf(cmd, sizeof(cmd),
		 "bpftool map update pinned %s/config key 1 0 0 0 value 16 0 0 0 0 0 0 0",
		 self->e.pin);
	ASSERT_EQ(0, bt_sh(cmd, &out));
	free(out);
	snprintf(path, sizeof(path), "%sshed-me", self->e.prefix);
	for (int i = 0; i < 20; i++) {
		ASSERT_LE(0, fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
		close(fd);
	}
	snprintf(cmd, sizeof(cmd),
		 "bpftool map update pinned %s/config key 1 0 0 0 value 0 0 0 0 0 0 0 0",
		 self->e.pin);
	ASSERT_EQ(0, bt_sh(cmd, &out));
	free(out);
	snprintf(path, sizeof(path), "%skeep-me", self->e.prefix);
	ASSERT_LE(0, fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
	close(fd);
	w.path = path;
	ASSERT_EQ(0, bt_wait(&self->e, seen, &w, SEEN_MS));
	ASSERT_EQ(0, bt_kstats(&self->e, EVRING_BPF_OPEN, &ks));
	EXPECT_EQ(20u, ks.shed);
	/* The ledger learns of them at evringd's next tick. */
	ASSERT_EQ(0, bt_wait(&self->e, shed_twenty, NULL, SEEN_MS));
	ASSERT_EQ(0, bt_spool_read(self->e.spool, &sp));
	snprintf(path, sizeof(path), "%sshed-me", self->e.prefix);
	w.path = path;
	EXPECT_EQ(0u, count(&sp, &w));
	EXPECT_EQ(20u, bt_lost(&sp, EVRING_BPF_OPEN, "bpf_shed"));
	EXPECT_EQ(0u, bt_check_seq(&sp, EVRING_BPF_OPEN));
	bt_spool_free(&sp);
}

/* --- restarts ----------------------------------------------------------------- */

struct gen {
	char dir[160];
	uint64_t n;
	unsigned int us;	/* between opens */
};

/* Open DIR/f-000000, f-000001, ... in order, one every @us. */
static pid_t open_series(const struct gen *g)
{
	pid_t pid = fork();

	if (pid == 0) {
		char path[200];

		for (uint64_t i = 0; i < g->n; i++) {
			int fd;

			snprintf(path, sizeof(path), "%sf-%06llu", g->dir,
				 (unsigned long long)i);
			fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
			if (fd < 0)
				_exit(1);
			close(fd);
			usleep(g->us);
		}
		_exit(0);
	}
	return pid;
}

struct series {
	const struct gen *g;
	pid_t pid;
	uint64_t spooled, lost, doubled;
	uint8_t *seen;
};

static bool series_done(const struct bt_spool *sp, void *arg)
{
	struct series *s = arg;
	size_t plen = strlen(s->g->dir);

	memset(s->seen, 0, s->g->n);
	s->spooled = s->doubled = 0;
	for (size_t i = 0; i < sp->n; i++) {
		const struct bt_rec *r = &sp->recs[i];
		unsigned long long idx;

		if (r->capture != EVRING_BPF_OPEN ||
		    r->ev.hdr.kind != EVRING_BPF_KIND_EVENT ||
		    r->ev.hdr.pid != (uint32_t)s->pid ||
		    strncmp(r->ev.open.path, s->g->dir, plen) ||
		    sscanf(r->ev.open.path + plen, "f-%llu", &idx) != 1 ||
		    idx >= s->g->n)
			continue;
		if (s->seen[idx]++)
			s->doubled++;
		else
			s->spooled++;
	}
	s->lost = bt_lost(sp, EVRING_BPF_OPEN, NULL);
	return s->spooled + s->lost >= s->g->n;
}

/*
 * Open files in a series while evringd is killed with SIGKILL three times
 * and stopped once; then every file is spooled once or accounted in the
 * ledger, the stream is gap-free but for the ledger's ranges, and it is
 * one epoch throughout.
 */
static void restart_series(struct __test_metadata *_metadata,
			   struct bt_env *e, const char *const *sets,
			   uint64_t n, unsigned int us, bool expect_loss)
{
	struct gen g = { .n = n, .us = us };
	struct series s = { .g = &g };
	struct bt_spool sp;
	uint64_t epoch = 0;
	int status, kills = 0;

	snprintf(g.dir, sizeof(g.dir), "%s", e->prefix);
	s.seen = calloc(g.n, 1);
	ASSERT_NE(NULL, s.seen);
	ASSERT_EQ(0, bt_daemon_up(e, sets, UP_MS));
	s.pid = open_series(&g);
	ASSERT_LT(0, s.pid);
	while (waitpid(s.pid, &status, WNOHANG) == 0) {
		bt_sleep_ms(bt_in_vm() ? 400 : 150);
		if (kills == 4)
			continue;
		bt_daemon_kill(e, kills == 2 ? SIGTERM : SIGKILL);
		kills++;
		bt_sleep_ms(bt_in_vm() ? 300 : 100);	/* down a while */
		ASSERT_EQ(0, bt_daemon_up(e, sets, UP_MS));
	}
	ASSERT_EQ(0, status);
	TH_LOG("evringd stopped %d times during the run", kills);
	EXPECT_LE(2, kills);
	ASSERT_EQ(0, bt_wait(e, series_done, &s, 60000)) {
		TH_LOG("generated %llu: spooled %llu, lost %llu",
		       (unsigned long long)g.n,
		       (unsigned long long)s.spooled,
		       (unsigned long long)s.lost);
	}
	TH_LOG("generated %llu: spooled %llu, in the ledger %llu, doubled %llu",
	       (unsigned long long)g.n, (unsigned long long)s.spooled,
	       (unsigned long long)s.lost, (unsigned long long)s.doubled);
	EXPECT_EQ(g.n, s.spooled + s.lost);
	EXPECT_EQ(0u, s.doubled);
	if (expect_loss) {
		EXPECT_LT(0u, s.lost);
	} else {
		EXPECT_EQ(0u, s.lost);
	}
	ASSERT_EQ(0, bt_spool_read(e->spool, &sp));
	EXPECT_EQ(0u, bt_check_seq(&sp, EVRING_BPF_OPEN));
	/* One epoch throughout: every restart continued the same stream. */
	for (size_t i = 0; i < sp.n; i++) {
		if (!epoch)
			epoch = sp.recs[i].epoch;
		EXPECT_EQ(epoch, sp.recs[i].epoch);
	}
	EXPECT_EQ(0u, sp.notes);
	bt_spool_free(&sp);
	free(s.seen);
}

TEST_F_TIMEOUT(cap, evringd_killed_mid_stream_resumes_from_the_pinned_ring_losing_nothing, 300)
{
	const char *const sets[] = { "bpf.captures=open", NULL };

	NEED_BPF();
	/* Long enough for several restarts, which are slow in the VM. */
	restart_series(_metadata, &self->e, sets, bt_in_vm() ? 1000 : 6000,
		       bt_in_vm() ? 20000 : 200, false);
}

TEST_F_TIMEOUT(cap, ring_overflowing_while_evringd_is_down_is_explained_by_the_ledger, 300)
{
	const char *const sets[] = {
		"bpf.captures=open", "bpf.ring_size=16K", "bpf.shed=", NULL
	};

	NEED_BPF();
	restart_series(_metadata, &self->e, sets, bt_in_vm() ? 3000 : 20000,
		       bt_in_vm() ? 2000 : 20, true);
}

TEST_F(cap, a_new_spool_on_existing_pins_starts_a_new_epoch)
{
	const char *const sets[] = { "bpf.captures=open", NULL };
	struct want w1 = { .capture = EVRING_BPF_OPEN };
	struct want w2 = { .capture = EVRING_BPF_OPEN };
	char p1[200], p2[200];
	int fd;

	NEED_BPF();
	snprintf(p1, sizeof(p1), "%sone", self->e.prefix);
	snprintf(p2, sizeof(p2), "%stwo", self->e.prefix);
	ASSERT_EQ(0, bt_daemon_up(&self->e, sets, UP_MS));
	ASSERT_LE(0, fd = open(p1, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
	close(fd);
	w1.path = p1;
	ASSERT_EQ(0, bt_wait(&self->e, seen, &w1, SEEN_MS));
	ASSERT_EQ(0, bt_daemon_kill(&self->e, SIGTERM));
	snprintf(self->e.spool, sizeof(self->e.spool), "%s/spool2.db",
		 self->e.dir);
	ASSERT_EQ(0, bt_daemon_up(&self->e, sets, UP_MS));
	ASSERT_LE(0, fd = open(p2, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
	close(fd);
	w2.path = p2;
	ASSERT_EQ(0, bt_wait(&self->e, seen, &w2, SEEN_MS));
	EXPECT_NE(w1.copy.epoch, w2.copy.epoch);
	EXPECT_EQ(1u, w2.copy.rec.seq);
	EXPECT_TRUE(bt_log_has(&self->e, "the spool has no record of this BPF ring"));
}

/* --- where BPF cannot run ------------------------------------------------------- */

TEST_F(cap, pin_path_off_a_bpf_file_system_leaves_evringd_running_without_the_source)
{
	char set[200];
	const char *const sets[] = { set, NULL };
	json_t *st = NULL, *parts;

	NEED_BPF();
	snprintf(set, sizeof(set), "bpf.pin_path=%s/evring", self->e.dir);
	ASSERT_EQ(0, bt_daemon_up(&self->e, sets, UP_MS));
	EXPECT_TRUE(bt_log_has(&self->e, "bpf source off"));
	EXPECT_TRUE(bt_log_has(&self->e, "is not a BPF file system"));
	ASSERT_EQ(0, bt_ctl(&self->e, "{\"cmd\":\"status\"}", &st));
	parts = json_object_get(st, "partitions");
	EXPECT_EQ(0u, json_array_size(parts));
	json_decref(st);
	self->e.pin[0] = '\0';	/* nothing pinned */
}

/* The errnos of source_bpf_open(), in process. */
struct inproc {
	struct loop *loop;
	struct spool *spool;
	struct drain *drain;
	struct evd_config cfg;
};

static int inproc_new(struct inproc *p, const struct bt_env *e,
		      const char *pin)
{
	struct spool_opts so = { .path = e->spool };
	int ret;

	memset(p, 0, sizeof(*p));
	config_init(&p->cfg);
	p->cfg.bpf_enable = 1;
	snprintf(p->cfg.bpf_pin_path, sizeof(p->cfg.bpf_pin_path), "%s", pin);
	ret = spool_open(&so, &p->spool, NULL, 0);
	if (!ret)
		ret = loop_new(&p->loop);
	if (!ret)
		ret = drain_new(p->loop, p->spool, &p->cfg, &p->drain);
	return ret;
}

static void inproc_free(struct inproc *p)
{
	drain_free(p->drain);
	loop_free(p->loop);
	spool_close(p->spool);
}

TEST_F(cap, open_errnos_eopnotsupp_off_bpffs_ebusy_when_in_use_eproto_for_another_layout)
{
	struct source_bpf *b1 = NULL, *b2 = NULL;
	struct inproc p;
	char err[512], pin[200];
	uint64_t layout = 99;
	uint32_t key = EVRING_BPF_CFG_LAYOUT;
	int fd;

	NEED_BPF();
	/* Off a BPF file system: -EOPNOTSUPP, nothing pinned. */
	snprintf(pin, sizeof(pin), "%s/evring", self->e.dir);
	ASSERT_EQ(0, inproc_new(&p, &self->e, pin));
	EXPECT_EQ(-EOPNOTSUPP, source_bpf_open(p.loop, p.drain, &p.cfg, &b1,
					      err, sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "is not a BPF file system")) {
		TH_LOG("%s", err);
	}
	EXPECT_EQ(NULL, b1);
	inproc_free(&p);

	/* In use by another: -EBUSY. */
	ASSERT_EQ(0, inproc_new(&p, &self->e, self->e.pin));
	ASSERT_EQ(0, source_bpf_open(p.loop, p.drain, &p.cfg, &b1, err,
				     sizeof(err))) {
		TH_LOG("%s", err);
	}
	EXPECT_EQ(-EBUSY, source_bpf_open(p.loop, p.drain, &p.cfg, &b2, err,
					  sizeof(err)));
	EXPECT_EQ(NULL, b2);
	source_bpf_close(b1);
	b1 = NULL;

	/* Pinned objects of another layout: -EPROTO, and they stay. */
	snprintf(pin, sizeof(pin), "%s/config", self->e.pin);
	fd = bpf_obj_get(pin);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, bpf_map_update_elem(fd, &key, &layout, BPF_ANY));
	close(fd);
	EXPECT_EQ(-EPROTO, source_bpf_open(p.loop, p.drain, &p.cfg, &b1, err,
					   sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "layout 99")) {
		TH_LOG("%s", err);
	}
	EXPECT_EQ(0, access(pin, F_OK));
	inproc_free(&p);
}

TEST_HARNESS_MAIN
