/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * evring.ko internals: shared by main.c (device, parameters), ring.c (ring
 * memory and mmap), write.c (producers), consumer.c and netlink.c.
 */
#ifndef EVRING_KMOD_H
#define EVRING_KMOD_H

#include <linux/atomic.h>
#include <linux/fs.h>
#include <linux/mm_types.h>
#include <linux/mutex.h>
#include <linux/types.h>
#include <linux/wait.h>
#include <linux/evring.h>

/* Settings; fixed ones are set at load, the rest may change through netlink. */
struct evring_params {
	u32 partitions;
	u32 ring_size;
	u32 max_record;
	u32 fsync_timeout_ms;	/* READ_ONCE/WRITE_ONCE, netlink-settable */
	u32 highwater_pct;	/* READ_ONCE/WRITE_ONCE, netlink-settable */
};

/*
 * One partition: a single-consumer ring.
 *
 * Positions are free-running byte counts.  prod_pos only moves under
 * @write_lock, release_pos only under @cons_lock; both are published in the
 * producer page with a release store and read elsewhere with an acquire
 * load, so no path needs both locks.
 */
struct evring_part {
	u32 index;
	u64 mask;				/* ring_size - 1 */

	struct page **pages;			/* meta pages, data, data again */
	unsigned int nr_pages;			/* distinct pages allocated */
	void *area;				/* vmap of @pages */
	struct evring_cons_page *cons;		/* area + 0: userspace-writable */
	struct evring_prod_page *prod;		/* area + PAGE_SIZE */
	u8 *data;				/* area + 2 * PAGE_SIZE, twice */

	struct mutex write_lock;		/* serialises producers */
	u64 next_seq;				/* guarded by write_lock */
	bool hw_armed;				/* guarded by write_lock */

	struct mutex cons_lock;			/* attach, detach, release */
	struct file *consumer;			/* guarded by cons_lock */
	pid_t consumer_pid;			/* guarded by cons_lock */

	wait_queue_head_t space_wq;		/* writers, fsync: release moved */
	wait_queue_head_t data_wq;		/* consumer: records committed */

	/* Statistics: written under the lock named, read locklessly. */
	u64 produced, produced_bytes;		/* write_lock */
	u64 released;				/* cons_lock */
	u32 fill_hwm;				/* write_lock */
	atomic_t writers_blocked;
	atomic64_t blocks, eagains, fsync_waits, fsync_timeouts, wakeups;
};

/* Per open file. */
struct evring_file {
	/*
	 * The partition this file consumes, or NULL: set by cmpxchg on
	 * attach, cleared by xchg on detach; the partition's own consumer
	 * field, under its cons_lock, is the authority.
	 */
	struct evring_part *attached;
	/* Partition chosen by EVRING_IOC_SET_KEY, or -1 for hash(tgid). */
	int fixed_part;				/* READ_ONCE/WRITE_ONCE */
	/*
	 * End position of this file's last record per partition; written
	 * under that partition's write_lock, read locklessly by fsync.
	 */
	u64 written_to[EVRING_PARTITIONS_MAX];
};

extern struct evring_params evring_params;
extern struct evring_part *evring_parts;
extern u64 evring_epoch;

/* ring.c */
int evring_part_init(struct evring_part *p, u32 index, u32 ring_size);
void evring_part_release(struct evring_part *p);
u64 evring_fill(struct evring_part *p);
bool evring_fits(struct evring_part *p, u64 bytes);
int evring_mmap(struct evring_part *p, struct vm_area_struct *vma);
void evring_layout(struct evring_part *p, struct evring_layout *lay);

/* write.c */
struct evring_part *evring_file_part(struct evring_file *ef);
ssize_t evring_write(struct file *file, const char __user *buf, size_t len,
		     loff_t *ppos);
long evring_ioc_write_batch(struct file *file, void __user *arg);
long evring_ioc_set_key(struct evring_file *ef, void __user *arg);
int evring_fsync(struct file *file, loff_t start, loff_t end, int datasync);

/* consumer.c */
long evring_ioc_attach(struct file *file, void __user *arg);
long evring_ioc_detach(struct file *file);
long evring_ioc_layout(struct evring_file *ef, void __user *arg);
long evring_ioc_release(struct file *file, void __user *arg);
void evring_consumer_gone(struct file *file);

/* netlink.c */
int evring_genl_init(void);
void evring_genl_exit(void);
void evring_notify_highwater(struct evring_part *p, u32 fill);
void evring_notify_consumer(struct evring_part *p, u8 cmd, pid_t pid);

#endif /* EVRING_KMOD_H */
