// SPDX-License-Identifier: GPL-2.0-only
/*
 * Producers: write(2), EVRING_IOC_WRITE_BATCH, partition choice and fsync.
 *
 * A record is copied from userspace straight into the ring, beyond
 * prod_pos, under the partition's write_lock; only when the copy succeeded
 * is the header filled and prod_pos moved past it.  A fault, a signal or a
 * full ring therefore never leaves a partial record, and sequence numbers
 * are handed out only to records that are committed.
 */
#include <linux/cred.h>
#include <linux/hash.h>
#include <linux/jiffies.h>
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/timekeeping.h>
#include <linux/uaccess.h>
#include "evring.h"

struct evring_part *evring_file_part(struct evring_file *ef)
{
	int fixed = READ_ONCE(ef->fixed_part);
	u32 h;

	if (fixed >= 0)
		return &evring_parts[fixed];
	h = hash_32((u32)task_tgid_nr(current), 32);
	return &evring_parts[reciprocal_scale(h, evring_params.partitions)];
}

long evring_ioc_set_key(struct evring_file *ef, void __user *arg)
{
	struct evring_key k;
	u32 h;

	if (copy_from_user(&k, arg, sizeof(k)))
		return -EFAULT;
	if (k.pad)
		return -EINVAL;
	switch (k.mode) {
	case EVRING_KEY_HASH:
		h = hash_64(k.key, 32);
		WRITE_ONCE(ef->fixed_part,
			   reciprocal_scale(h, evring_params.partitions));
		return 0;
	case EVRING_KEY_PARTITION:
		if (k.key >= evring_params.partitions)
			return -EINVAL;
		WRITE_ONCE(ef->fixed_part, (int)k.key);
		return 0;
	case EVRING_KEY_TGID:
		WRITE_ONCE(ef->fixed_part, -1);
		return 0;
	default:
		return -EINVAL;
	}
}

/*
 * Wake the consumer if it has caught up to somewhere in [from, prod_pos):
 * it may be asleep in poll having seen none of these records.  A consumer
 * still behind @from will find them without being woken, so a busy consumer
 * is woken once per batch rather than once per record.
 */
static void evring_wake_consumer(struct evring_part *p, u64 from)
{
	u64 read;

	/*
	 * Pairs with the smp_mb() in evring_consumer_poll(): either we see
	 * the consumer's read_pos, or it sees our prod_pos.
	 */
	smp_mb();
	read = READ_ONCE(p->cons->read_pos);
	if (read < from || read >= READ_ONCE(p->prod->prod_pos))
		return;
	if (wq_has_sleeper(&p->data_wq)) {
		atomic64_inc(&p->wakeups);
		wake_up_interruptible(&p->data_wq);
	}
}

/*
 * A run of records one producer copies in under write_lock.  Records are
 * copied beyond prod_pos and become visible together when the run is
 * published, so a batch costs one publish, one timestamp and one wake-up
 * check rather than one per record.
 */
struct evring_run {
	struct evring_part *p;
	struct evring_file *ef;
	u64 from;		/* prod_pos when the run began: wake point */
	u64 pos;		/* end of the records copied so far */
	u64 room;		/* free bytes after @pos, as last computed */
	u64 records, bytes;	/* copied and not yet published */
	u64 ts_ns;
	u32 pid, uid;
	bool locked, nonblock, crossed;
};

static void evring_run_init(struct evring_run *run, struct evring_part *p,
			    struct file *file)
{
	memset(run, 0, sizeof(*run));
	run->p = p;
	run->ef = file->private_data;
	run->nonblock = file->f_flags & O_NONBLOCK;
	run->from = U64_MAX;
	run->pid = task_tgid_nr(current);
	run->uid = from_kuid_munged(&init_user_ns, current_uid());
}

/* Make the copied records visible; account them; watch the high-water. */
static void evring_run_publish(struct evring_run *run)
{
	struct evring_part *p = run->p;
	u64 fill, mark;

	lockdep_assert_held(&p->write_lock);
	if (!run->records)
		return;
	/* Pairs with smp_load_acquire() in consumers and evring_fill(). */
	smp_store_release(&p->prod->prod_pos, run->pos);
	WRITE_ONCE(run->ef->written_to[p->index], run->pos);
	p->produced += run->records;
	p->produced_bytes += run->bytes;
	run->records = 0;
	run->bytes = 0;

	fill = evring_fill(p);
	if (fill > p->fill_hwm)
		WRITE_ONCE(p->fill_hwm, fill);
	mark = (u64)(p->mask + 1) * READ_ONCE(evring_params.highwater_pct);
	if (!p->hw_armed && fill * 100 * 2 < mark) {
		p->hw_armed = true;
	} else if (p->hw_armed && fill * 100 >= mark) {
		p->hw_armed = false;
		run->crossed = true;
	}
}

static void evring_run_room(struct evring_run *run)
{
	struct evring_part *p = run->p;
	u64 release;

	/* Pairs with smp_store_release() in evring_ioc_release(). */
	release = smp_load_acquire(&p->prod->release_pos);
	run->room = p->mask + 1 - (run->pos - release);
}

/* Publish, unlock, then wake the consumer and announce a crossing. */
static void evring_run_unlock(struct evring_run *run)
{
	struct evring_part *p = run->p;

	if (!run->locked)
		return;
	evring_run_publish(run);
	mutex_unlock(&p->write_lock);
	run->locked = false;
	evring_wake_consumer(p, run->from);
	if (run->crossed)
		evring_notify_highwater(p, evring_fill(p));
	run->crossed = false;
}

/*
 * Hold write_lock with room for @size more bytes, sleeping while the
 * partition is full.  What the run copied so far is published, and the
 * consumer woken, before sleeping: it could be asleep waiting for them.
 */
static int evring_run_reserve(struct evring_run *run, u64 size)
{
	struct evring_part *p = run->p;
	int ret;

	for (;;) {
		if (!run->locked) {
			if (mutex_lock_interruptible(&p->write_lock))
				return -ERESTARTSYS;
			run->locked = true;
			run->ts_ns = ktime_get_real_ns();
			run->pos = p->prod->prod_pos;
			if (run->from == U64_MAX)
				run->from = run->pos;
			evring_run_room(run);
		}
		if (run->room >= size)
			return 0;
		evring_run_room(run);
		if (run->room >= size)
			return 0;
		evring_run_unlock(run);
		if (run->nonblock) {
			atomic64_inc(&p->eagains);
			return -EAGAIN;
		}
		atomic64_inc(&p->blocks);
		atomic_inc(&p->writers_blocked);
		ret = wait_event_interruptible(p->space_wq,
					       evring_fits(p, size));
		atomic_dec(&p->writers_blocked);
		if (ret)
			return ret;
	}
}

/*
 * Copy one record of @len bytes from @buf in at the run's position; room
 * was reserved.  On a fault nothing of it becomes visible, and its
 * sequence number is not consumed.
 */
static int evring_run_copy(struct evring_run *run, const char __user *buf,
			   u32 len)
{
	struct evring_part *p = run->p;
	u64 size = EVRING_REC_SIZE(len);
	struct evring_rec *rec = (void *)(p->data + (run->pos & p->mask));

	lockdep_assert_held(&p->write_lock);
	if (copy_from_user(rec + 1, buf, len))
		return -EFAULT;
	memset((u8 *)(rec + 1) + len, 0, size - sizeof(*rec) - len);
	rec->len = len;
	rec->flags = 0;
	rec->seq = p->next_seq++;
	rec->ts_ns = run->ts_ns;
	rec->pid = run->pid;
	rec->uid = run->uid;
	run->pos += size;
	run->room -= size;
	run->records++;
	run->bytes += len;
	return 0;
}

static int evring_check_len(u64 len)
{
	if (!len)
		return -EINVAL;
	if (len > evring_params.max_record)
		return -EMSGSIZE;
	return 0;
}

ssize_t evring_write(struct file *file, const char __user *buf, size_t len,
		     loff_t *ppos)
{
	struct evring_file *ef = file->private_data;
	struct evring_run run;
	int ret;

	if (READ_ONCE(ef->attached))
		return -EINVAL;
	ret = evring_check_len(len);
	if (ret)
		return ret;
	evring_run_init(&run, evring_file_part(ef), file);
	ret = evring_run_reserve(&run, EVRING_REC_SIZE(len));
	if (!ret)
		ret = evring_run_copy(&run, buf, len);
	evring_run_unlock(&run);
	return ret ? ret : len;
}

#define EVRING_IOV_CHUNK 32

/*
 * Write @b.count records, in order, into the file's partition; each record
 * is atomic, the batch is not.  Returns the number written, or an error if
 * the first one could not be: a later failure ends the batch early and the
 * caller learns of it on its next call, as with sendmmsg(2).
 */
long evring_ioc_write_batch(struct file *file, void __user *arg)
{
	struct evring_file *ef = file->private_data;
	struct evring_iovec iov[EVRING_IOV_CHUNK];
	struct evring_iovec __user *uiov;
	struct evring_batch b;
	struct evring_run run;
	u32 done = 0, i;
	int ret = 0;

	if (READ_ONCE(ef->attached))
		return -EINVAL;
	if (copy_from_user(&b, arg, sizeof(b)))
		return -EFAULT;
	if (b.flags || !b.count)
		return -EINVAL;
	if (b.count > EVRING_BATCH_MAX)
		return -E2BIG;
	uiov = u64_to_user_ptr(b.records);
	evring_run_init(&run, evring_file_part(ef), file);

	while (done < b.count && !ret) {
		u32 n = min_t(u32, b.count - done, EVRING_IOV_CHUNK);

		if (copy_from_user(iov, uiov + done, n * sizeof(iov[0]))) {
			ret = -EFAULT;
			break;
		}
		for (i = 0; i < n; i++) {
			ret = iov[i].pad ? -EINVAL : evring_check_len(iov[i].len);
			if (!ret)
				ret = evring_run_reserve(&run,
							 EVRING_REC_SIZE(iov[i].len));
			if (!ret)
				ret = evring_run_copy(&run,
						      u64_to_user_ptr(iov[i].base),
						      iov[i].len);
			if (ret)
				break;
			done++;
		}
	}
	evring_run_unlock(&run);
	return done ? done : ret;
}

static bool evring_released_past(struct evring_part *p, u64 pos)
{
	/* Pairs with smp_store_release() in evring_ioc_release(). */
	return smp_load_acquire(&p->prod->release_pos) >= pos;
}

/*
 * Wait until everything this file wrote has been released downstream, in
 * every partition it wrote to, within one fsync_timeout_ms deadline.
 */
int evring_fsync(struct file *file, loff_t start, loff_t end, int datasync)
{
	struct evring_file *ef = file->private_data;
	unsigned long timeout;
	long left;
	u32 i;

	timeout = msecs_to_jiffies(READ_ONCE(evring_params.fsync_timeout_ms));
	left = timeout;
	for (i = 0; i < evring_params.partitions; i++) {
		struct evring_part *p = &evring_parts[i];
		u64 want = READ_ONCE(ef->written_to[i]);

		if (evring_released_past(p, want))
			continue;
		atomic64_inc(&p->fsync_waits);
		left = wait_event_interruptible_timeout(p->space_wq,
							evring_released_past(p, want),
							left);
		if (left < 0)
			return left;
		if (!left) {
			atomic64_inc(&p->fsync_timeouts);
			return -ETIMEDOUT;
		}
	}
	return 0;
}
