// SPDX-License-Identifier: GPL-2.0-only
/*
 * The consumer side: attach, layout, release, detach.
 *
 * One consumer per partition.  The consumer takes records by advancing
 * read_pos in its page; it frees space only through EVRING_IOC_RELEASE,
 * once the records are durable downstream.  A consumer that attaches
 * restarts at release_pos, so whatever a dead one took but did not release
 * is delivered again rather than lost.
 */
#include <linux/capability.h>
#include <linux/sched.h>
#include <linux/uaccess.h>
#include "evring.h"

long evring_ioc_attach(struct file *file, void __user *arg)
{
	struct evring_file *ef = file->private_data;
	struct evring_attach a;
	struct evring_part *p;
	pid_t pid = task_tgid_nr(current);

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if ((file->f_mode & (FMODE_READ | FMODE_WRITE)) !=
	    (FMODE_READ | FMODE_WRITE))
		return -EINVAL;
	if (copy_from_user(&a, arg, sizeof(a)))
		return -EFAULT;
	if (a.flags || a.partition >= evring_params.partitions)
		return -EINVAL;
	p = &evring_parts[a.partition];

	mutex_lock(&p->cons_lock);
	if (p->consumer || cmpxchg(&ef->attached, NULL, p)) {
		mutex_unlock(&p->cons_lock);
		return -EBUSY;
	}
	p->consumer = file;
	p->consumer_pid = pid;
	WRITE_ONCE(p->cons->read_pos, p->prod->release_pos);
	mutex_unlock(&p->cons_lock);

	evring_notify_consumer(p, EVRING_CMD_ATTACHED, pid);
	return 0;
}

long evring_ioc_detach(struct file *file)
{
	struct evring_file *ef = file->private_data;
	struct evring_part *p = xchg(&ef->attached, NULL);
	pid_t pid;

	if (!p)
		return -EINVAL;
	mutex_lock(&p->cons_lock);
	WARN_ON_ONCE(p->consumer != file);
	p->consumer = NULL;
	pid = p->consumer_pid;
	p->consumer_pid = 0;
	mutex_unlock(&p->cons_lock);

	evring_notify_consumer(p, EVRING_CMD_DETACHED, pid);
	return 0;
}

/* The file is going away: a consumer detaches, its records stay. */
void evring_consumer_gone(struct file *file)
{
	evring_ioc_detach(file);
}

long evring_ioc_layout(struct evring_file *ef, void __user *arg)
{
	struct evring_part *p = READ_ONCE(ef->attached);
	struct evring_layout lay;

	if (!p)
		return -EINVAL;
	evring_layout(p, &lay);
	if (copy_to_user(arg, &lay, sizeof(lay)))
		return -EFAULT;
	return 0;
}

/*
 * Count the records in [from, to); -EINVAL unless @to is a record boundary.
 * The headers are the kernel's own (userspace maps them read-only).
 */
static int evring_count_records(struct evring_part *p, u64 from, u64 to,
				u64 *count)
{
	u64 n = 0;

	while (from < to) {
		const struct evring_rec *rec =
			(const void *)(p->data + (from & p->mask));

		from += EVRING_REC_SIZE(rec->len);
		n++;
	}
	if (from != to)
		return -EINVAL;
	*count = n;
	return 0;
}

long evring_ioc_release(struct file *file, void __user *arg)
{
	struct evring_file *ef = file->private_data;
	struct evring_part *p = READ_ONCE(ef->attached);
	struct evring_release r;
	u64 release, prod, n;
	int ret;

	if (!p)
		return -EINVAL;
	if (copy_from_user(&r, arg, sizeof(r)))
		return -EFAULT;

	mutex_lock(&p->cons_lock);
	ret = -EINVAL;
	if (p->consumer != file)
		goto unlock;
	release = p->prod->release_pos;
	/* Pairs with smp_store_release() in evring_run_publish(). */
	prod = smp_load_acquire(&p->prod->prod_pos);
	if (r.pos < release || r.pos > prod)
		goto unlock;
	ret = evring_count_records(p, release, r.pos, &n);
	if (ret)
		goto unlock;
	/* Pairs with smp_load_acquire() in evring_fill() and fsync. */
	smp_store_release(&p->prod->release_pos, r.pos);
	p->released += n;
unlock:
	mutex_unlock(&p->cons_lock);
	if (!ret && wq_has_sleeper(&p->space_wq))
		wake_up_interruptible_all(&p->space_wq);
	return ret;
}
