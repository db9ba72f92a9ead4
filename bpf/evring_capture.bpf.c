// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * evring_capture: the kernel events evringd spools, captured from stable
 * tracepoints only (no kprobes, no trampolines), so that one CO-RE object
 * loads on every kernel with BTF and bpf_loop() (5.17 on), including those
 * that lock fentry and kprobes away.  Layouts, maps and settings:
 * capture.h; for operators, docs/BPF.md.
 *
 * Every program is the same recipe: is the capture enabled and does the
 * task pass the filters (wanted), is it being shed, reserve, fill, submit.
 * Each outcome is counted per CPU in the stats map, so that events written
 * + dropped + shed is exactly what passed the filters; the ring never
 * blocks a tracepoint.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "capture.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_INET		2
#define AF_INET6	10
#define SOCK_STREAM	1
#define IPPROTO_TCP	6
#define IPPROTO_MPTCP	262
#define S_IFMT		00170000
#define S_IFSOCK	0140000
#define PF_KTHREAD	0x00200000

/* Path building: the scratch buffer, and how far up the tree we walk. */
#define PBUF		4096
#define NAME_MAX	255
#define PATH_DEPTH	48

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);	/* bpf.ring_size, set before load */
} evring_ring SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, EVRING_BPF_NR_CAPTURES);
	__type(key, __u32);
	__type(value, struct evring_bpf_stats);
} evring_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, EVRING_BPF_CFG_NR);
	__type(key, __u32);
	__type(value, __u64);
} evring_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, EVRING_BPF_FILTER_IDS_MAX);
	__type(key, __u32);
	__type(value, __u8);
} evring_uids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, EVRING_BPF_FILTER_IDS_MAX);
	__type(key, __u64);
	__type(value, __u8);
} evring_cgroups SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, EVRING_BPF_PREFIXES);
	__type(key, __u32);
	__type(value, struct evring_bpf_prefix);
} evring_prefix SEC(".maps");

/*
 * Processes whose exit was reported, so that it is reported once: every
 * thread of an exit_group() may find the process without live threads.
 * Keyed by tgid and start time, which no later process shares.
 */
struct exited_key {
	__u32 tgid;
	__u32 pad;
	__u64 start_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct exited_key);
	__type(value, __u8);
} evring_exited SEC(".maps");

/*
 * Where an open's path is assembled, right to left, and the state of that
 * walk: kept in a map value, not on the stack, because bpf_loop() callbacks
 * carry it from one step to the next.  The kernel pointers are plain
 * numbers here; they are only ever dereferenced by bpf_probe_read_kernel().
 */
struct scratch {
	__u64 dentry;
	__u64 vfsmnt;
	__u64 mnt;
	__u64 mnt_parent;
	__u64 root_dentry;	/* the task's root (chroot), where paths start */
	__u64 root_mnt;
	__u32 off;		/* the path is buf[off .. PBUF) */
	__u32 end;		/* WALK_* */
	__u32 match;		/* an open_prefix matched */
	__u32 pad;
	char buf[PBUF + NAME_MAX + 1];
};

#define WALK_ROOT	1	/* reached the task's root, or the tree's */
#define WALK_CUT	2	/* too long or too deep: only the leaf end */

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} evring_scratch SEC(".maps");

static __always_inline __u64 cfg(__u32 key)
{
	__u64 *v = bpf_map_lookup_elem(&evring_config, &key);

	return v ? *v : 0;
}

/* Is the task's cgroup, or one of its ancestors, in filter_cgroup? */
static __always_inline bool cgroup_listed(void)
{
	for (int level = 0; level < EVRING_BPF_CGROUP_DEPTH; level++) {
		__u64 id = bpf_get_current_ancestor_cgroup_id(level);

		if (!id)
			break;
		if (bpf_map_lookup_elem(&evring_cgroups, &id))
			return true;
	}
	return false;
}

/*
 * Is @cap enabled, the current task not evringd, and does it pass the uid
 * and cgroup filters?  A task the filters reject is counted as filtered.
 */
static __always_inline bool wanted(__u32 cap, __u64 pid_tgid, __u32 uid,
				   struct evring_bpf_stats **stp)
{
	struct evring_bpf_stats *st;
	__u64 filters;

	if (!(cfg(EVRING_BPF_CFG_CAPTURES) & (1ull << cap)))
		return false;
	if ((pid_tgid >> 32) == cfg(EVRING_BPF_CFG_SELF))
		return false;
	st = bpf_map_lookup_elem(&evring_stats, &cap);
	if (!st)
		return false;
	*stp = st;
	filters = cfg(EVRING_BPF_CFG_FILTERS);
	if (((filters & EVRING_BPF_FILTER_UID) &&
	     !bpf_map_lookup_elem(&evring_uids, &uid)) ||
	    ((filters & EVRING_BPF_FILTER_CGROUP) && !cgroup_listed())) {
		__sync_fetch_and_add(&st->filtered, 1);
		return false;
	}
	return true;
}

/* A slot in the ring for one event, or NULL with the reason counted. */
static __always_inline void *reserve(__u32 cap, __u32 size,
				     struct evring_bpf_stats *st)
{
	void *e;

	if ((cfg(EVRING_BPF_CFG_SHED) | cfg(EVRING_BPF_CFG_SHED_AUTO)) &
	    (1ull << cap)) {
		__sync_fetch_and_add(&st->shed, 1);
		return NULL;
	}
	e = bpf_ringbuf_reserve(&evring_ring, size, 0);
	if (!e) {
		__sync_fetch_and_add(&st->drops, 1);
		return NULL;
	}
	__sync_fetch_and_add(&st->events, 1);
	return e;
}

static __always_inline void fill_hdr(struct evring_bpf_hdr *h, __u32 cap,
				     __u32 size, __u64 pid_tgid, __u64 uid_gid)
{
	h->capture = cap;
	h->kind = EVRING_BPF_KIND_EVENT;
	h->size = size;
	h->pid = pid_tgid >> 32;
	h->tid = (__u32)pid_tgid;
	h->uid = (__u32)uid_gid;
	h->gid = uid_gid >> 32;
	h->pad = 0;
	h->boot_ns = bpf_ktime_get_boot_ns();
	h->cgroup_id = bpf_get_current_cgroup_id();
	__builtin_memset(h->comm, 0, sizeof(h->comm));
	bpf_get_current_comm(h->comm, sizeof(h->comm));
}

/* --- exec and exit --------------------------------------------------------- */

SEC("tp/sched/sched_process_exec")
int evring_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	__u64 id = bpf_get_current_pid_tgid(), ug = bpf_get_current_uid_gid();
	struct task_struct *task = (void *)bpf_get_current_task();
	struct evring_bpf_stats *st;
	struct evring_bpf_exec *e;
	__u64 start, end, len;
	__u32 flags = 0;

	if (!wanted(EVRING_BPF_EXEC, id, (__u32)ug, &st))
		return 0;
	e = reserve(EVRING_BPF_EXEC, sizeof(*e), st);
	if (!e)
		return 0;
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	__builtin_memset(e->filename, 0, sizeof(e->filename));
	bpf_probe_read_kernel_str(e->filename, sizeof(e->filename),
				  (void *)ctx + (ctx->__data_loc_filename & 0xffff));
	/* The new program's argv, which exec has just copied to its stack. */
	start = BPF_CORE_READ(task, mm, arg_start);
	end = BPF_CORE_READ(task, mm, arg_end);
	len = end > start ? end - start : 0;
	if (len > EVRING_BPF_ARGS_MAX) {
		len = EVRING_BPF_ARGS_MAX;
		flags |= EVRING_BPF_F_TRUNCATED;
	}
	if (len && bpf_probe_read_user(e->args, len, (void *)start))
		len = 0;
	e->args_len = len;
	e->flags = flags;
	e->pad = 0;
	fill_hdr(&e->hdr, EVRING_BPF_EXEC,
		 __builtin_offsetof(struct evring_bpf_exec, args) + len, id, ug);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/*
 * Called for every exiting thread.  The process has exited once no thread
 * is live (signal->live reached 0 in do_exit); the threads of an
 * exit_group() die together and several may see that, so the first one to
 * claim the process in evring_exited reports it.
 */
SEC("tp/sched/sched_process_exit")
int evring_exit(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid(), ug = bpf_get_current_uid_gid();
	struct task_struct *task = (void *)bpf_get_current_task();
	struct exited_key key = { .tgid = id >> 32 };
	struct evring_bpf_stats *st;
	struct evring_bpf_exit *e;
	__u8 one = 1;

	if (BPF_CORE_READ(task, flags) & PF_KTHREAD)
		return 0;
	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;
	if (!wanted(EVRING_BPF_EXIT, id, (__u32)ug, &st))
		return 0;
	key.start_ns = BPF_CORE_READ(task, group_leader, start_time);
	if (bpf_map_update_elem(&evring_exited, &key, &one, BPF_NOEXIST))
		return 0;
	e = reserve(EVRING_BPF_EXIT, sizeof(*e), st);
	if (!e)
		return 0;
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->exit_code = BPF_CORE_READ(task, exit_code);
	fill_hdr(&e->hdr, EVRING_BPF_EXIT, sizeof(*e), id, ug);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* --- sockets ----------------------------------------------------------------- */

/* The file behind the current task's @fd, or NULL. */
static __always_inline struct file *fd_file(struct task_struct *task, long fd)
{
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds, *f = NULL;

	if (fd < 0 || fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	return f;
}

/* The TCP (or MPTCP) sock behind @fd, or NULL. */
static __always_inline struct sock *fd_tcp_sock(struct task_struct *task,
						long fd)
{
	struct file *f = fd_file(task, fd);
	struct socket *sock;
	struct sock *sk;
	__u16 family, proto;

	if (!f || (BPF_CORE_READ(f, f_inode, i_mode) & S_IFMT) != S_IFSOCK)
		return NULL;
	sock = BPF_CORE_READ(f, private_data);
	sk = BPF_CORE_READ(sock, sk);
	if (!sk || BPF_CORE_READ(sk, sk_type) != SOCK_STREAM)
		return NULL;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	proto = BPF_CORE_READ(sk, sk_protocol);
	if ((family != AF_INET && family != AF_INET6) ||
	    (proto != IPPROTO_TCP && proto != IPPROTO_MPTCP))
		return NULL;
	return sk;
}

/* One connect or accept on the current task's @fd, which returned @ret. */
static __always_inline int conn_event(__u32 cap, long fd, long ret)
{
	__u64 id = bpf_get_current_pid_tgid(), ug = bpf_get_current_uid_gid();
	struct task_struct *task = (void *)bpf_get_current_task();
	struct evring_bpf_stats *st;
	struct evring_bpf_conn *e;
	struct sock *sk;

	if (!wanted(cap, id, (__u32)ug, &st))
		return 0;
	sk = fd_tcp_sock(task, fd);
	if (!sk)
		return 0;
	e = reserve(cap, sizeof(*e), st);
	if (!e)
		return 0;
	__builtin_memset(e->laddr, 0, sizeof(e->laddr));
	__builtin_memset(e->raddr, 0, sizeof(e->raddr));
	e->ret = ret;
	e->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	e->protocol = BPF_CORE_READ(sk, sk_protocol);
	e->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	e->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	e->pad = 0;
	/* READ_INTO copies sizeof(*dst): give it the field's type. */
	if (e->family == AF_INET) {
		BPF_CORE_READ_INTO((__be32 *)e->laddr, sk,
				   __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO((__be32 *)e->raddr, sk,
				   __sk_common.skc_daddr);
	} else {
		BPF_CORE_READ_INTO((struct in6_addr *)e->laddr, sk,
				   __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO((struct in6_addr *)e->raddr, sk,
				   __sk_common.skc_v6_daddr);
	}
	fill_hdr(&e->hdr, cap, sizeof(*e), id, ug);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* The syscall's first argument, from the registers saved at entry. */
static __always_inline long syscall_arg1(void)
{
	struct pt_regs *regs = (void *)bpf_task_pt_regs(bpf_get_current_task_btf());

	return PT_REGS_PARM1_CORE_SYSCALL(regs);
}

/* Every connect on a TCP socket, whatever it returned (-EINPROGRESS...). */
SEC("tp/syscalls/sys_exit_connect")
int evring_connect(struct trace_event_raw_sys_exit *ctx)
{
	return conn_event(EVRING_BPF_CONNECT, syscall_arg1(), ctx->ret);
}

SEC("tp/syscalls/sys_exit_accept4")
int evring_accept4(struct trace_event_raw_sys_exit *ctx)
{
	return ctx->ret < 0 ? 0 : conn_event(EVRING_BPF_ACCEPT, ctx->ret, ctx->ret);
}

SEC("tp/syscalls/sys_exit_accept")
int evring_accept(struct trace_event_raw_sys_exit *ctx)
{
	return ctx->ret < 0 ? 0 : conn_event(EVRING_BPF_ACCEPT, ctx->ret, ctx->ret);
}

/* --- opens ------------------------------------------------------------------- */

static __always_inline struct scratch *scratch(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&evring_scratch, &zero);
}

/* One step up the tree: prepend a name, or cross from a mount to its parent. */
static long walk_step(__u32 i, void *unused)
{
	struct scratch *s = scratch();
	struct dentry *dentry, *root, *parent;
	struct mount *mnt, *up;
	struct vfsmount *vfsmnt;
	struct qstr name;
	__u32 off, len;

	if (!s)
		return 1;
	/* Plain loads first: BPF_CORE_READ() relocates all of its argument. */
	dentry = (void *)s->dentry;
	vfsmnt = (void *)s->vfsmnt;
	mnt = (void *)s->mnt;
	up = (void *)s->mnt_parent;
	if ((__u64)dentry == s->root_dentry && (__u64)vfsmnt == s->root_mnt) {
		s->end = WALK_ROOT;
		return 1;
	}
	root = BPF_CORE_READ(vfsmnt, mnt_root);
	parent = BPF_CORE_READ(dentry, d_parent);
	if (dentry == root || dentry == parent) {
		if (dentry != root || mnt == up) {
			s->end = WALK_ROOT;
			return 1;
		}
		/* The root of a mount: go on from its mount point. */
		s->dentry = (__u64)BPF_CORE_READ(mnt, mnt_mountpoint);
		s->mnt = (__u64)up;
		s->mnt_parent = (__u64)BPF_CORE_READ(up, mnt_parent);
		s->vfsmnt = (__u64)up + bpf_core_field_offset(struct mount, mnt);
		return 0;
	}
	name = BPF_CORE_READ(dentry, d_name);
	len = name.len;
	off = s->off;
	if (len > NAME_MAX || off > PBUF || len + 1 > off) {
		s->end = WALK_CUT;
		return 1;
	}
	off -= len;
	bpf_probe_read_kernel(&s->buf[off & (PBUF - 1)], len & NAME_MAX,
			      name.name);
	off -= 1;
	s->buf[off & (PBUF - 1)] = '/';
	s->off = off;
	s->dentry = (__u64)parent;
	return 0;
}

/*
 * Assemble @f's path as @task sees it (from its root, as d_path() does),
 * right-aligned in s->buf[s->off .. PBUF).  Returns 1 when it was cut
 * (longer than PBUF or deeper than PATH_DEPTH): then only its leaf end is
 * there.
 */
static __always_inline int build_path(struct scratch *s, struct file *f,
				      struct task_struct *task)
{
	struct vfsmount *vfsmnt = BPF_CORE_READ(f, f_path.mnt);
	struct mount *mnt = (void *)vfsmnt -
			    bpf_core_field_offset(struct mount, mnt);
	struct fs_struct *fs = BPF_CORE_READ(task, fs);

	s->dentry = (__u64)BPF_CORE_READ(f, f_path.dentry);
	s->vfsmnt = (__u64)vfsmnt;
	s->mnt = (__u64)mnt;
	s->mnt_parent = (__u64)BPF_CORE_READ(mnt, mnt_parent);
	s->root_dentry = (__u64)BPF_CORE_READ(fs, root.dentry);
	s->root_mnt = (__u64)BPF_CORE_READ(fs, root.mnt);
	s->off = PBUF;
	s->end = 0;
	bpf_loop(PATH_DEPTH, walk_step, NULL, 0);
	if (s->off == PBUF) {
		s->off = PBUF - 1;
		s->buf[PBUF - 1] = '/';
	}
	return s->end != WALK_ROOT;
}

/* Does the path start with open_prefix[i]?  Stops the loop when it does. */
static long prefix_step(__u32 i, void *unused)
{
	struct evring_bpf_prefix *p = bpf_map_lookup_elem(&evring_prefix, &i);
	struct scratch *s = scratch();
	__u32 n, off;

	if (!s || !p)
		return 1;
	n = p->len;
	off = s->off;
	if (!n || n > EVRING_BPF_PREFIX_MAX || off > PBUF || n > PBUF - off)
		return 0;
	for (__u32 j = 0; j < EVRING_BPF_PREFIX_MAX && j < n; j++)
		if (s->buf[(off + j) & (PBUF - 1)] != p->path[j])
			return 0;
	s->match = 1;
	return 1;
}

static __always_inline bool path_listed(struct scratch *s)
{
	s->match = 0;
	bpf_loop(EVRING_BPF_PREFIXES, prefix_step, NULL, 0);
	return s->match;
}

static __always_inline int open_event(long fd)
{
	__u64 id = bpf_get_current_pid_tgid(), ug = bpf_get_current_uid_gid();
	struct task_struct *task = (void *)bpf_get_current_task();
	struct evring_bpf_stats *st;
	struct evring_bpf_open *e;
	struct scratch *s;
	struct file *f;
	__u32 off, len;
	int cut;

	if (fd < 0 || !wanted(EVRING_BPF_OPEN, id, (__u32)ug, &st))
		return 0;
	f = fd_file(task, fd);
	s = scratch();
	if (!f || !s)
		return 0;
	cut = build_path(s, f, task);
	if ((cfg(EVRING_BPF_CFG_FILTERS) & EVRING_BPF_FILTER_PREFIX) &&
	    (cut || !path_listed(s))) {
		__sync_fetch_and_add(&st->filtered, 1);
		return 0;
	}
	e = reserve(EVRING_BPF_OPEN, sizeof(*e), st);
	if (!e)
		return 0;
	off = s->off;
	len = off < PBUF ? PBUF - off : 0;
	e->path_flags = cut ? EVRING_BPF_F_TRUNCATED : 0;
	if (len > EVRING_BPF_PATH_MAX - 1) {
		e->path_flags = EVRING_BPF_F_TRUNCATED;
		len = EVRING_BPF_PATH_MAX - 1;
	}
	/* Keep the mask: the verifier must see len < EVRING_BPF_PATH_MAX. */
	barrier_var(len);
	len &= EVRING_BPF_PATH_MAX - 1;
	bpf_probe_read_kernel(e->path, len, &s->buf[off & (PBUF - 1)]);
	e->path[len] = 0;
	e->path_len = len;
	e->fd = fd;
	e->flags = BPF_CORE_READ(f, f_flags);
	fill_hdr(&e->hdr, EVRING_BPF_OPEN,
		 __builtin_offsetof(struct evring_bpf_open, path) + len + 1,
		 id, ug);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tp/syscalls/sys_exit_openat")
int evring_openat(struct trace_event_raw_sys_exit *ctx)
{
	return open_event(ctx->ret);
}

SEC("tp/syscalls/sys_exit_open")
int evring_open(struct trace_event_raw_sys_exit *ctx)
{
	return open_event(ctx->ret);
}

SEC("tp/syscalls/sys_exit_openat2")
int evring_openat2(struct trace_event_raw_sys_exit *ctx)
{
	return open_event(ctx->ret);
}
