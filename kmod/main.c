// SPDX-License-Identifier: GPL-2.0-only
/*
 * evring.ko: the event ring device.
 *
 * Applications write events to /dev/evring; each write(2) is one record in
 * a per-partition ring that a privileged consumer (evringd) maps and drains.
 * A full ring blocks the writer, and fsync(2) waits until what the writer
 * wrote is durable downstream.  uapi/linux/evring.h is the contract and
 * shows the userspace call sequence; docs/KMOD.md describes the behaviour.
 *
 * This file: module parameters, the misc device and its file operations.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/poll.h>
#include <linux/random.h>
#include <linux/sizes.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include "evring.h"

struct evring_params evring_params = {
	.partitions = 4,
	.ring_size = 1 << 20,
	.max_record = 64 << 10,
	.fsync_timeout_ms = 30000,
	.highwater_pct = 80,
};

struct evring_part *evring_parts;
u64 evring_epoch;

module_param_named(partitions, evring_params.partitions, uint, 0444);
MODULE_PARM_DESC(partitions, "number of partitions (1..64, default 4)");
module_param_named(ring_size, evring_params.ring_size, uint, 0444);
MODULE_PARM_DESC(ring_size, "data bytes per partition (power of two, default 1 MiB)");
module_param_named(max_record, evring_params.max_record, uint, 0444);
MODULE_PARM_DESC(max_record, "largest record payload in bytes (default 64 KiB)");
module_param_named(fsync_timeout_ms, evring_params.fsync_timeout_ms, uint, 0444);
MODULE_PARM_DESC(fsync_timeout_ms, "fsync gives ETIMEDOUT after this (default 30000)");
module_param_named(highwater_pct, evring_params.highwater_pct, uint, 0444);
MODULE_PARM_DESC(highwater_pct, "fill level announced over netlink (1..100, default 80)");

#define EVRING_RING_MIN		SZ_16K
#define EVRING_RING_MAX		SZ_1G
#define EVRING_TIMEOUT_MAX	3600000U

/* Reject parameters that would make a ring unusable; name the culprit. */
static int evring_check_params(const struct evring_params *pr)
{
	const char *bad = NULL;

	if (pr->partitions < 1 || pr->partitions > EVRING_PARTITIONS_MAX)
		bad = "partitions";
	else if (!is_power_of_2(pr->ring_size) ||
		 pr->ring_size < EVRING_RING_MIN ||
		 pr->ring_size > EVRING_RING_MAX ||
		 pr->ring_size < PAGE_SIZE)
		bad = "ring_size";
	else if (pr->max_record < 1 ||
		 4 * EVRING_REC_SIZE((u64)pr->max_record) > pr->ring_size)
		bad = "max_record";
	else if (pr->fsync_timeout_ms < 1 ||
		 pr->fsync_timeout_ms > EVRING_TIMEOUT_MAX)
		bad = "fsync_timeout_ms";
	else if (pr->highwater_pct < 1 || pr->highwater_pct > 100)
		bad = "highwater_pct";
	if (!bad)
		return 0;
	pr_err("invalid parameter %s (see modinfo evring)\n", bad);
	return -EINVAL;
}

static int evring_open(struct inode *inode, struct file *file)
{
	struct evring_file *ef = kzalloc(sizeof(*ef), GFP_KERNEL);

	if (!ef)
		return -ENOMEM;
	ef->fixed_part = -1;
	file->private_data = ef;
	return nonseekable_open(inode, file);
}

static int evring_release(struct inode *inode, struct file *file)
{
	struct evring_file *ef = file->private_data;

	evring_consumer_gone(file);
	kfree(ef);
	return 0;
}

static long evring_ioc_info(struct evring_file *ef, void __user *arg)
{
	struct evring_info info = {
		.version = EVRING_UAPI_VERSION,
		.nr_partitions = evring_params.partitions,
		.ring_size = evring_params.ring_size,
		.max_record = evring_params.max_record,
		.epoch = evring_epoch,
		.partition = evring_file_part(ef)->index,
	};

	if (copy_to_user(arg, &info, sizeof(info)))
		return -EFAULT;
	return 0;
}

static long evring_ioctl(struct file *file, unsigned int cmd,
			 unsigned long arg)
{
	struct evring_file *ef = file->private_data;
	void __user *uarg = (void __user *)arg;

	switch (cmd) {
	case EVRING_IOC_INFO:
		return evring_ioc_info(ef, uarg);
	case EVRING_IOC_SET_KEY:
		return evring_ioc_set_key(ef, uarg);
	case EVRING_IOC_WRITE_BATCH:
		return evring_ioc_write_batch(file, uarg);
	case EVRING_IOC_ATTACH:
		return evring_ioc_attach(file, uarg);
	case EVRING_IOC_DETACH:
		return evring_ioc_detach(file);
	case EVRING_IOC_LAYOUT:
		return evring_ioc_layout(ef, uarg);
	case EVRING_IOC_RELEASE:
		return evring_ioc_release(file, uarg);
	default:
		return -ENOTTY;
	}
}

/*
 * A consumer fd is readable when records are committed past its read_pos;
 * a writer fd is writable when a record of max_record bytes fits.
 */
static __poll_t evring_poll(struct file *file, poll_table *wait)
{
	struct evring_file *ef = file->private_data;
	struct evring_part *p = READ_ONCE(ef->attached);

	if (p) {
		u64 prod;

		poll_wait(file, &p->data_wq, wait);
		/* Pairs with the smp_mb() in evring_wake_consumer(). */
		smp_mb();
		/* Pairs with smp_store_release() in evring_run_publish(). */
		prod = smp_load_acquire(&p->prod->prod_pos);
		if (READ_ONCE(p->cons->read_pos) != prod)
			return EPOLLIN | EPOLLRDNORM;
		return 0;
	}
	p = evring_file_part(ef);
	poll_wait(file, &p->space_wq, wait);
	if (evring_fits(p, EVRING_REC_SIZE(evring_params.max_record)))
		return EPOLLOUT | EPOLLWRNORM;
	return 0;
}

static int evring_file_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct evring_file *ef = file->private_data;
	struct evring_part *p = READ_ONCE(ef->attached);

	if (!p)
		return -EPERM;
	return evring_mmap(p, vma);
}

static const struct file_operations evring_fops = {
	.owner = THIS_MODULE,
	.open = evring_open,
	.release = evring_release,
	.write = evring_write,
	.unlocked_ioctl = evring_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.poll = evring_poll,
	.mmap = evring_file_mmap,
	.fsync = evring_fsync,
};

static struct miscdevice evring_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "evring",
	.fops = &evring_fops,
	.mode = 0666,
};

static void evring_parts_free(u32 n)
{
	while (n--)
		evring_part_release(&evring_parts[n]);
	kfree(evring_parts);
	evring_parts = NULL;
}

static int __init evring_init(void)
{
	u32 i;
	int ret;

	ret = evring_check_params(&evring_params);
	if (ret)
		return ret;
	do {
		evring_epoch = get_random_u64();
	} while (!evring_epoch);

	evring_parts = kcalloc(evring_params.partitions, sizeof(*evring_parts),
			       GFP_KERNEL);
	if (!evring_parts)
		return -ENOMEM;
	for (i = 0; i < evring_params.partitions; i++) {
		ret = evring_part_init(&evring_parts[i], i,
				       evring_params.ring_size);
		if (ret)
			goto free_parts;
	}

	ret = evring_genl_init();
	if (ret)
		goto free_parts;
	ret = misc_register(&evring_misc);
	if (ret)
		goto unregister_genl;
	return 0;

unregister_genl:
	evring_genl_exit();
free_parts:
	/* evring_part_release() is safe on a partition that failed init. */
	evring_parts_free(min(i + 1, evring_params.partitions));
	return ret;
}

static void __exit evring_exit(void)
{
	misc_deregister(&evring_misc);
	evring_genl_exit();
	evring_parts_free(evring_params.partitions);
}

module_init(evring_init);
module_exit(evring_exit);
MODULE_DESCRIPTION("evring: event rings with backpressure, shared by mmap");
MODULE_LICENSE("GPL");
