/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * evring: the contract between evring.ko, its consumers (evringd) and writers.
 *
 * Writers (any user that may open /dev/evring for writing):
 *
 *	fd = open("/dev/evring", O_WRONLY | O_CLOEXEC);
 *	write(fd, event, len);			one record, atomic
 *	ioctl(fd, EVRING_IOC_WRITE_BATCH, &b);	many records, each atomic
 *	ioctl(fd, EVRING_IOC_SET_KEY, &k);	choose the partition
 *	fsync(fd);				wait until released downstream
 *
 * A consumer (CAP_SYS_ADMIN, one per partition):
 *
 *	fd = open("/dev/evring", O_RDWR | O_CLOEXEC);
 *	ioctl(fd, EVRING_IOC_ATTACH, &(struct evring_attach){ .partition = p });
 *	ioctl(fd, EVRING_IOC_LAYOUT, &lay);
 *	cons = mmap(NULL, lay.cons_size, PROT_READ | PROT_WRITE, MAP_SHARED,
 *		    fd, lay.cons_off);
 *	prod = mmap(NULL, lay.prod_size, PROT_READ, MAP_SHARED, fd, lay.prod_off);
 *	loop:
 *		end = load_acquire(&prod_page->prod_pos);
 *		for (pos = cons_page->read_pos; pos < end; pos += rec_size)
 *			take the record at data + (pos & (lay.data_size - 1));
 *		store_release(&cons_page->read_pos, end);
 *		... make the records durable ...
 *		ioctl(fd, EVRING_IOC_RELEASE, &(struct evring_release){ .pos = end });
 *		poll(fd, POLLIN) when pos == end;
 *
 * The ring, per partition (one page each for consumer and producer):
 *
 *	 mmap offset                  contents                        access
 *	 cons_off  = 0               +--------------------------+
 *	                             | struct evring_cons_page  |   read/write
 *	 prod_off  = PAGE_SIZE       +--------------------------+
 *	                             | struct evring_prod_page  |   read-only
 *	 prod_off + data_off         +--------------------------+
 *	                             | data pages               |   read-only
 *	                             +--------------------------+
 *	                             | the same data pages again|   read-only
 *	                             +--------------------------+
 *
 * The data pages are mapped twice back to back, so a record that wraps the
 * end of the ring is still contiguous in memory: a consumer never copies to
 * reassemble one.  Positions are free-running __u64 byte counts; the offset
 * of position pos in the data area is pos & (data_size - 1).
 *
 * Positions, always read_pos <= prod_pos and release_pos <= prod_pos:
 *	prod_pos	end of the last committed record (kernel writes)
 *	read_pos	what the consumer has taken (consumer writes, advisory:
 *			the kernel uses it only to decide when to wake it)
 *	release_pos	what is durable downstream (kernel writes, on
 *			EVRING_IOC_RELEASE); only release frees space, and a
 *			consumer that attaches starts with read_pos = release_pos
 *
 * Each record is a struct evring_rec followed by len payload bytes, padded to
 * EVRING_REC_ALIGN.  seq is gap-free per partition from 1; epoch changes on
 * each module load, so (epoch, partition, seq) names a record uniquely.
 */
#ifndef _UAPI_LINUX_EVRING_H
#define _UAPI_LINUX_EVRING_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define EVRING_DEV_PATH		"/dev/evring"
#define EVRING_UAPI_VERSION	1

#define EVRING_REC_ALIGN	8
#define EVRING_BATCH_MAX	1024	/* records in one EVRING_IOC_WRITE_BATCH */
#define EVRING_PARTITIONS_MAX	64

/* The header of every record in the data area. */
struct evring_rec {
	__u32 len;		/* payload bytes that follow this header */
	__u32 flags;		/* reserved, 0 */
	__u64 seq;		/* per partition, gap-free, first record is 1 */
	__u64 ts_ns;		/* CLOCK_REALTIME, one value per write call */
	__u32 pid;		/* writer's tgid, in the initial pid namespace */
	__u32 uid;		/* writer's real uid, in the initial user ns */
};

/* Bytes a record with len payload bytes occupies in the ring. */
#define EVRING_REC_SIZE(len) \
	(((__u64)sizeof(struct evring_rec) + (len) + EVRING_REC_ALIGN - 1) & \
	 ~(__u64)(EVRING_REC_ALIGN - 1))

/* Consumer page: the only page userspace may write. */
struct evring_cons_page {
	__u64 read_pos;
};

/* Producer page: written by the kernel only. */
struct evring_prod_page {
	__u64 prod_pos;		/* store-release by the kernel */
	__u64 release_pos;	/* store-release by the kernel */
	__u64 epoch;		/* random, non-zero, fixed per module load */
	__u32 partition;
	__u32 data_size;	/* power of two */
};

/* EVRING_IOC_INFO: what any opener may know. */
struct evring_info {
	__u32 version;		/* EVRING_UAPI_VERSION */
	__u32 nr_partitions;
	__u32 ring_size;	/* data bytes per partition, power of two */
	__u32 max_record;	/* payload bytes */
	__u64 epoch;
	__u32 partition;	/* where this fd's next record goes */
	__u32 pad;		/* written as 0 */
};

/* EVRING_IOC_SET_KEY: pin this fd's records to one partition. */
#define EVRING_KEY_HASH		0	/* partition = hash(key) */
#define EVRING_KEY_PARTITION	1	/* partition = key, < nr_partitions */
#define EVRING_KEY_TGID		2	/* back to the default: hash(tgid) */
struct evring_key {
	__u64 key;
	__u32 mode;		/* EVRING_KEY_* */
	__u32 pad;		/* must be 0 */
};

/* EVRING_IOC_WRITE_BATCH: records[i] is one record of records[i].len bytes. */
struct evring_iovec {
	__u64 base;		/* user pointer */
	__u32 len;
	__u32 pad;		/* must be 0 */
};

struct evring_batch {
	__u64 records;		/* user pointer to struct evring_iovec[count] */
	__u32 count;		/* 1 .. EVRING_BATCH_MAX */
	__u32 flags;		/* must be 0 */
};

/* EVRING_IOC_ATTACH: become the consumer of one partition. */
struct evring_attach {
	__u32 partition;
	__u32 flags;		/* must be 0 */
};

/* EVRING_IOC_LAYOUT: where to map the attached partition. */
struct evring_layout {
	__u64 epoch;
	__u64 cons_off;		/* mmap offset of the consumer page */
	__u64 cons_size;
	__u64 prod_off;		/* mmap offset of producer page + data */
	__u64 prod_size;	/* producer page + data mapped twice */
	__u64 data_off;		/* data area, from the start of prod_off */
	__u64 data_size;	/* power of two */
	__u32 partition;
	__u32 max_record;
};

/* EVRING_IOC_RELEASE: everything before pos is durable downstream. */
struct evring_release {
	__u64 pos;		/* a record boundary in [release_pos, prod_pos] */
};

#define EVRING_IOC_MAGIC	0xE7
#define EVRING_IOC_INFO		_IOR(EVRING_IOC_MAGIC, 0x00, struct evring_info)
#define EVRING_IOC_SET_KEY	_IOW(EVRING_IOC_MAGIC, 0x01, struct evring_key)
#define EVRING_IOC_WRITE_BATCH	_IOW(EVRING_IOC_MAGIC, 0x02, struct evring_batch)
#define EVRING_IOC_ATTACH	_IOW(EVRING_IOC_MAGIC, 0x10, struct evring_attach)
#define EVRING_IOC_DETACH	_IO(EVRING_IOC_MAGIC, 0x11)
#define EVRING_IOC_LAYOUT	_IOR(EVRING_IOC_MAGIC, 0x12, struct evring_layout)
#define EVRING_IOC_RELEASE	_IOW(EVRING_IOC_MAGIC, 0x13, struct evring_release)

/*
 * Errors, by path:
 *	write, WRITE_BATCH: EINVAL zero length or bad flags/pad, EMSGSIZE over
 *		max_record, E2BIG count over EVRING_BATCH_MAX, EFAULT bad pointer,
 *		EAGAIN partition full on an O_NONBLOCK fd, EINTR/restart on a
 *		signal while blocked (no partial record, ever), EINVAL on a
 *		consumer fd.  WRITE_BATCH returns how many records it wrote; it
 *		fails only when the first one cannot be written.
 *	fsync: ETIMEDOUT when not released within fsync_timeout_ms.
 *	ATTACH: EPERM without CAP_SYS_ADMIN, EBUSY partition has a consumer
 *		or this fd is attached, EINVAL bad partition/flags or an fd not
 *		open for reading and writing.
 *	LAYOUT, RELEASE, DETACH: EINVAL when not attached; RELEASE: EINVAL for
 *		a position outside [release_pos, prod_pos] or not on a record
 *		boundary.
 *	mmap: EPERM on an fd that is not attached or for a writable mapping
 *		of producer/data pages, EINVAL for a bad offset/size or a
 *		private mapping.
 *	any other ioctl: ENOTTY.
 */

/* Generic netlink family: statistics, settings and notifications. */
#define EVRING_GENL_NAME	"evring"
#define EVRING_GENL_VERSION	1
#define EVRING_GENL_MCGRP	"notify"

enum {
	EVRING_CMD_UNSPEC,
	EVRING_CMD_GET_STATS,	/* doit with EVRING_A_PARTITION, or dump */
	EVRING_CMD_GET_CONFIG,
	EVRING_CMD_SET_CONFIG,	/* CAP_NET_ADMIN */
	EVRING_CMD_HIGHWATER,	/* notification: fill crossed the mark */
	EVRING_CMD_ATTACHED,	/* notification: a consumer attached */
	EVRING_CMD_DETACHED,	/* notification: a consumer went away */
	__EVRING_CMD_MAX,
};

#define EVRING_CMD_MAX (__EVRING_CMD_MAX - 1)

enum {
	EVRING_A_UNSPEC,
	EVRING_A_PAD,
	EVRING_A_PARTITION,		/* u32 */
	EVRING_A_EPOCH,			/* u64 */
	EVRING_A_RING_SIZE,		/* u32 */
	EVRING_A_PRODUCED,		/* u64 records committed */
	EVRING_A_PRODUCED_BYTES,	/* u64 payload bytes committed */
	EVRING_A_RELEASED,		/* u64 records released */
	EVRING_A_PROD_POS,		/* u64 */
	EVRING_A_RELEASE_POS,		/* u64 */
	EVRING_A_FILL,			/* u32 bytes in use */
	EVRING_A_FILL_HWM,		/* u32 highest fill seen */
	EVRING_A_WRITERS_BLOCKED,	/* u32 writers asleep for space now */
	EVRING_A_BLOCKS,		/* u64 times a writer slept for space */
	EVRING_A_EAGAINS,		/* u64 EAGAIN returned for space */
	EVRING_A_FSYNC_WAITS,		/* u64 fsync calls that waited */
	EVRING_A_FSYNC_TIMEOUTS,	/* u64 fsync calls that timed out */
	EVRING_A_WAKEUPS,		/* u64 consumer wake-ups */
	EVRING_A_CONSUMER,		/* u32 1 when a consumer is attached */
	EVRING_A_CONSUMER_PID,		/* u32 its tgid, 0 when none */
	EVRING_A_NR_PARTITIONS,		/* u32 config */
	EVRING_A_MAX_RECORD,		/* u32 config */
	EVRING_A_HIGHWATER_PCT,		/* u32 config, settable, 1..100 */
	EVRING_A_FSYNC_TIMEOUT_MS,	/* u32 config, settable, 1..3600000 */
	__EVRING_A_MAX,
};

#define EVRING_A_MAX (__EVRING_A_MAX - 1)

#endif /* _UAPI_LINUX_EVRING_H */
