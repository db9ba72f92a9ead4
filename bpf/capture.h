/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR BSD-2-Clause */
/*
 * capture.h: what the BPF capture programs (evring_capture.bpf.c) and
 * evringd (daemon/source_bpf.c) agree on, and what a consumer of the
 * spooled events decodes.  docs/BPF.md describes it for operators.
 *
 * The programs write one event per ringbuf sample: a struct
 * evring_bpf_hdr followed by the capture's fields (struct evring_bpf_exec,
 * ...).  evringd spools each event as one record of source BATCH_SRC_BPF,
 * partition = the capture id, payload = the event's first hdr.size bytes
 * (the unused tail of its last string field cut off).
 *
 * Maps, pinned under bpf.pin_path (default /sys/fs/bpf/evring) as:
 *	ring		evring_ring: RINGBUF, every capture's events
 *	stats		evring_stats: PERCPU_ARRAY[capture] of evring_bpf_stats
 *	config		evring_config: ARRAY[enum evring_bpf_cfg] of __u64
 *	filter_uid	evring_uids: HASH uid -> 1 (EVRING_BPF_FILTER_UID)
 *	filter_cgroup	evring_cgroups: HASH cgroup id -> 1 (..._FILTER_CGROUP)
 *	open_prefix	evring_prefix: ARRAY[EVRING_BPF_PREFIXES] of evring_bpf_prefix
 * and each program's link as link_<program> (the programs are evring_exec,
 * evring_exit, evring_connect, evring_accept, evring_accept4, evring_open,
 * evring_openat, evring_openat2).
 *
 * Only <linux/types.h> types; every struct is a multiple of 8 bytes with
 * explicit padding, written as 0.
 */
#ifndef EVRING_BPF_CAPTURE_H
#define EVRING_BPF_CAPTURE_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Bumped on any incompatible change to the maps or the event layouts. */
#define EVRING_BPF_LAYOUT	1

/* The captures; each is a partition of source BATCH_SRC_BPF. */
enum evring_bpf_capture {
	EVRING_BPF_EXEC = 0,	/* a process executed a program */
	EVRING_BPF_EXIT = 1,	/* the last thread of a process exited */
	EVRING_BPF_CONNECT = 2,	/* connect(2) on a TCP socket returned */
	EVRING_BPF_ACCEPT = 3,	/* accept(2)/accept4(2) returned a TCP socket */
	EVRING_BPF_OPEN = 4,	/* open/openat/openat2 opened a file */
	EVRING_BPF_NR_CAPTURES = 5,
};

/* Names, as in bpf.captures and docs; index = enum evring_bpf_capture. */
#define EVRING_BPF_CAPTURE_NAMES { "exec", "exit", "connect", "accept", "open" }

/* What a record of a capture's partition is (struct evring_bpf_hdr.kind). */
enum evring_bpf_kind {
	EVRING_BPF_KIND_EVENT = 0,	/* captured by a program */
	EVRING_BPF_KIND_LOSS = 1,	/* evringd: struct evring_bpf_loss */
};

/* --- events -------------------------------------------------------------- */

#define EVRING_BPF_COMM_LEN	16
#define EVRING_BPF_FILENAME_MAX	256	/* exec: the path given to execve */
#define EVRING_BPF_ARGS_MAX	256	/* exec: argv, NUL-separated */
#define EVRING_BPF_PATH_MAX	256	/* open: the resolved path */

/* Every event starts with this. */
struct evring_bpf_hdr {
	__u8 capture;		/* enum evring_bpf_capture */
	__u8 kind;		/* enum evring_bpf_kind */
	__u16 size;		/* bytes of the event, this header included */
	__u32 pid;		/* tgid, in the initial pid namespace */
	__u32 tid;
	__u32 uid;		/* real uid, in the initial user namespace */
	__u32 gid;
	__u32 pad;
	__u64 boot_ns;		/* CLOCK_BOOTTIME when captured */
	__u64 cgroup_id;	/* cgroup v2 id (the inode of its directory) */
	char comm[EVRING_BPF_COMM_LEN];	/* NUL-terminated */
};

/* EVRING_BPF_EXEC: sched_process_exec; the comm is the new program's. */
struct evring_bpf_exec {
	struct evring_bpf_hdr hdr;
	__u32 ppid;		/* tgid of the parent */
	__u32 args_len;		/* bytes in args */
	__u32 flags;		/* EVRING_BPF_F_* */
	__u32 pad;
	char filename[EVRING_BPF_FILENAME_MAX];	/* NUL-terminated */
	char args[EVRING_BPF_ARGS_MAX];	/* argv[0]\0argv[1]\0... */
};

/* EVRING_BPF_EXIT: sched_process_exit of the last live thread. */
struct evring_bpf_exit {
	struct evring_bpf_hdr hdr;
	__u32 ppid;
	__u32 exit_code;	/* as wait(2)'s status: WEXITSTATUS, WTERMSIG */
};

/* EVRING_BPF_CONNECT and EVRING_BPF_ACCEPT: the socket as the kernel has it. */
struct evring_bpf_conn {
	struct evring_bpf_hdr hdr;
	__s32 ret;		/* connect: 0 or -errno (-EINPROGRESS); accept: fd */
	__u16 family;		/* AF_INET or AF_INET6 */
	__u16 protocol;		/* IPPROTO_TCP or IPPROTO_MPTCP */
	__u16 lport;		/* local port, host byte order */
	__u16 rport;		/* remote port, host byte order */
	__u32 pad;
	__u8 laddr[16];		/* network byte order; AF_INET: first 4 bytes */
	__u8 raddr[16];
};

/* EVRING_BPF_OPEN: a successful open of a path under a configured prefix. */
struct evring_bpf_open {
	struct evring_bpf_hdr hdr;
	__s32 fd;
	__u32 flags;		/* the file's f_flags (O_*) */
	__u32 path_len;		/* bytes in path, without the NUL */
	__u32 path_flags;	/* EVRING_BPF_F_* */
	char path[EVRING_BPF_PATH_MAX];	/* from the task's root, NUL-terminated */
};

/* exec flags, open path_flags */
#define EVRING_BPF_F_TRUNCATED	(1u << 0)	/* args or path cut short */

/*
 * EVRING_BPF_KIND_LOSS: written by evringd, not by a program, right after a
 * range of sequence numbers it reserved for events the kernel could not
 * deliver.  The same range is in the loss ledger (reason "bpf_ringbuf_full"
 * or "bpf_shed"); this record makes it visible in the stream at once.
 */
struct evring_bpf_loss {
	struct evring_bpf_hdr hdr;	/* capture, kind; pid, uid... 0 */
	__u64 first_seq;	/* the range, inclusive */
	__u64 last_seq;
	__u32 reason;		/* EVRING_BPF_LOSS_* */
	__u32 pad;
};

enum evring_bpf_loss_reason {
	EVRING_BPF_LOSS_DROP = 1,	/* the ring was full: reserve failed */
	EVRING_BPF_LOSS_SHED = 2,	/* the capture was being shed */
};

/* --- stats ----------------------------------------------------------------- */

/* Per CPU, per capture; only ever increased.  Sum over CPUs for a total. */
struct evring_bpf_stats {
	__u64 events;		/* written to the ring */
	__u64 drops;		/* reserve failed: the ring was full */
	__u64 shed;		/* not written: the capture was being shed */
	__u64 filtered;		/* matched no filter (uid, cgroup, prefix) */
};

/* --- config ---------------------------------------------------------------- */

/* Keys of the config map; each value is a __u64. */
enum evring_bpf_cfg {
	EVRING_BPF_CFG_CAPTURES = 0,	/* bit (1 << capture): enabled */
	EVRING_BPF_CFG_SHED = 1,	/* bit (1 << capture): shed (operator) */
	EVRING_BPF_CFG_SHED_AUTO = 2,	/* the same, set by evringd */
	EVRING_BPF_CFG_FILTERS = 3,	/* EVRING_BPF_FILTER_* */
	EVRING_BPF_CFG_SELF = 4,	/* a tgid never captured (evringd) */
	EVRING_BPF_CFG_EPOCH = 5,	/* random, fixed when the maps were created */
	EVRING_BPF_CFG_LAYOUT = 6,	/* EVRING_BPF_LAYOUT of the programs */
	/* evringd's: the stats' drops and shed when the epoch began. */
	EVRING_BPF_CFG_BASE_DROPS = 8,	/* + capture */
	EVRING_BPF_CFG_BASE_SHED = 16,	/* + capture */
	EVRING_BPF_CFG_NR = 24,
};

#define EVRING_BPF_FILTER_UID		(1u << 0)	/* uid must be in filter_uid */
#define EVRING_BPF_FILTER_CGROUP	(1u << 1)	/* cgroup or an ancestor in filter_cgroup */
#define EVRING_BPF_FILTER_PREFIX	(1u << 2)	/* open: path under an open_prefix */

#define EVRING_BPF_FILTER_IDS_MAX	64	/* entries of filter_uid, filter_cgroup */
#define EVRING_BPF_PREFIXES		8	/* entries of open_prefix */
#define EVRING_BPF_PREFIX_MAX		124	/* bytes of one prefix */
#define EVRING_BPF_CGROUP_DEPTH		16	/* ancestors checked */

struct evring_bpf_prefix {
	__u32 len;		/* 0: unused entry */
	char path[EVRING_BPF_PREFIX_MAX];	/* not NUL-terminated */
};

/* Ring sizes bpf.ring_size accepts (a power of two, page multiple). */
#define EVRING_BPF_RING_MIN	(4u << 10)
#define EVRING_BPF_RING_MAX	(1u << 30)

#endif /* EVRING_BPF_CAPTURE_H */
