// SPDX-License-Identifier: GPL-2.0-only
/*
 * Ring memory: allocation, the double mapping of the data pages, and the
 * consumer's mmap of it.
 */
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/version.h>
#include <linux/vmalloc.h>
#include "evring.h"

#define EVRING_META_PAGES 2	/* consumer page, producer page */

/*
 * Allocate a partition's ring of @ring_size data bytes.  The kernel sees it
 * through one vmap, laid out exactly as userspace maps it:
 *
 *	+-----------+-----------+-------------------+-------------------+
 *	| consumer  | producer  | data pages 0..n-1 | data pages 0..n-1 |
 *	| page (rw) | page (ro) |                   | (the same pages)  |
 *	+-----------+-----------+-------------------+-------------------+
 *	0           PAGE_SIZE   2 * PAGE_SIZE
 *
 * so a record that crosses the end of the data pages is contiguous both for
 * the writer copying it in and for the consumer reading it.
 */
int evring_part_init(struct evring_part *p, u32 index, u32 ring_size)
{
	unsigned int nr_data = ring_size >> PAGE_SHIFT;
	unsigned int nr_pages = EVRING_META_PAGES + nr_data;
	unsigned int i;

	p->index = index;
	p->mask = ring_size - 1;
	p->next_seq = 1;
	p->hw_armed = true;
	mutex_init(&p->write_lock);
	mutex_init(&p->cons_lock);
	init_waitqueue_head(&p->space_wq);
	init_waitqueue_head(&p->data_wq);

	p->pages = kvcalloc(nr_pages + nr_data, sizeof(*p->pages), GFP_KERNEL);
	if (!p->pages)
		return -ENOMEM;
	for (i = 0; i < nr_pages; i++) {
		p->pages[i] = alloc_page(GFP_KERNEL | __GFP_ZERO);
		if (!p->pages[i])
			goto free_pages;
		p->nr_pages = i + 1;
		if (i >= EVRING_META_PAGES)
			p->pages[nr_data + i] = p->pages[i];
	}
	p->area = vmap(p->pages, nr_pages + nr_data, VM_MAP | VM_USERMAP,
		       PAGE_KERNEL);
	if (!p->area)
		goto free_pages;

	p->cons = p->area;
	p->prod = p->area + PAGE_SIZE;
	p->data = p->area + EVRING_META_PAGES * PAGE_SIZE;
	p->prod->epoch = evring_epoch;
	p->prod->partition = index;
	p->prod->data_size = ring_size;
	return 0;

free_pages:
	for (i = 0; i < p->nr_pages; i++)
		__free_page(p->pages[i]);
	kvfree(p->pages);
	p->pages = NULL;
	return -ENOMEM;
}

/* Undo evring_part_init(); safe on a partition whose init failed. */
void evring_part_release(struct evring_part *p)
{
	unsigned int i;

	if (!p->pages)
		return;
	vunmap(p->area);
	for (i = 0; i < p->nr_pages; i++)
		__free_page(p->pages[i]);
	kvfree(p->pages);
	p->pages = NULL;
}

/* Bytes committed and not yet released. */
u64 evring_fill(struct evring_part *p)
{
	u64 release, prod;

	/* Pairs with smp_store_release() in evring_ioc_release(). */
	release = smp_load_acquire(&p->prod->release_pos);
	/* Pairs with smp_store_release() in evring_run_publish(). */
	prod = smp_load_acquire(&p->prod->prod_pos);
	return prod - release;
}

/* Whether @bytes more fit before the release position. */
bool evring_fits(struct evring_part *p, u64 bytes)
{
	return evring_fill(p) + bytes <= p->mask + 1;
}

void evring_layout(struct evring_part *p, struct evring_layout *lay)
{
	u64 size = p->mask + 1;

	memset(lay, 0, sizeof(*lay));
	lay->epoch = evring_epoch;
	lay->cons_off = 0;
	lay->cons_size = PAGE_SIZE;
	lay->prod_off = PAGE_SIZE;
	lay->prod_size = PAGE_SIZE + 2 * size;
	lay->data_off = PAGE_SIZE;
	lay->data_size = size;
	lay->partition = p->index;
	lay->max_record = evring_params.max_record;
}

/*
 * checkpatch flags the version test below: it is deliberate, so that the
 * module also builds for a newer running kernel where vm_flags became
 * read-only (6.3) when the host can load modules itself.
 */
static void evring_vma_deny_write(struct vm_area_struct *vma)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
	vm_flags_clear(vma, VM_MAYWRITE);
#else
	vma->vm_flags &= ~VM_MAYWRITE;
#endif
}

/*
 * Map part of the ring into the consumer.  Only the consumer page may be
 * writable; everything else is mapped read-only and can never be made
 * writable by mprotect (VM_MAYWRITE is cleared).
 */
int evring_mmap(struct evring_part *p, struct vm_area_struct *vma)
{
	unsigned long len = vma->vm_end - vma->vm_start;
	unsigned long total = (EVRING_META_PAGES * PAGE_SIZE) + 2 * (p->mask + 1);
	unsigned long off;

	if (!(vma->vm_flags & VM_SHARED))
		return -EINVAL;
	if (vma->vm_pgoff >= (total >> PAGE_SHIFT))
		return -EINVAL;
	off = vma->vm_pgoff << PAGE_SHIFT;
	if (len > total - off)
		return -EINVAL;
	if (vma->vm_flags & VM_WRITE) {
		if (off != 0 || len != PAGE_SIZE)
			return -EPERM;
	} else {
		evring_vma_deny_write(vma);
	}
	return remap_vmalloc_range(vma, p->area, vma->vm_pgoff);
}
