/*
 * slab.c — slabs for the blocks of a bulk load (see slab.h): mapping, bump allocation, the live
 * count with its filler bias, sealing, and release.
 */
#include "base/slab.h"

#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

#include "base/alloc.h"

#ifdef FEOX_SLAB_POISON
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
/* Under ASan a slab comes from malloc too: LeakSanitizer scans malloc'd memory but not a
 * mapping of ours, so pointers kept in slab blocks (the epoch's retire list runs through them)
 * would otherwise leave what they point at looking leaked, and a slab never released would go
 * unreported. */
#define FROM_ALLOCATOR_ALWAYS 1
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#define FROM_ALLOCATOR_ALWAYS 0
#endif

/* Carried by the live count while a filler fills the slab (or it is parked): the count cannot
 * reach zero before the filler adds its allocations and drops the bias (seal). */
#define FILLER_BIAS ((uint64_t)1 << 62)

/* At the start of the slab's aligned region, a cache line of its own (frees write it). */
struct feox_slab {
    _Atomic uint64_t live;
    void *from_allocator; /* what feox_mem_free takes back, NULL for a mapping of our own */
    size_t taken;         /* bytes mapped or taken from the allocator */
    char *parked_next;    /* a parked slab: where its filler stopped, and what it allocated */
    uint64_t parked_allocated;
};

#define HEADER_BYTES 64
_Static_assert(sizeof(struct feox_slab) <= HEADER_BYTES, "the slab header fits its line");
_Static_assert(FEOX_SLAB_BYTES == (size_t)2 << 20, "feox_mem_map_huge aligns to 2 MiB");

static _Atomic size_t mapped_bytes;

size_t feox_slab_mapped_bytes(void)
{
    return atomic_load_explicit(&mapped_bytes, memory_order_relaxed);
}

static bool slabs_mapped(void)
{
    return feox_mem_is_default() && !FROM_ALLOCATOR_ALWAYS;
}

size_t feox_slab_bytes_each(void)
{
    return slabs_mapped() ? FEOX_SLAB_BYTES : 2 * FEOX_SLAB_BYTES;
}

static feox_slab *slab_of(const void *block)
{
    return (feox_slab *)((uintptr_t)block & ~(uintptr_t)(FEOX_SLAB_BYTES - 1));
}

static feox_slab *slab_new(void)
{
    char *start;
    void *from_allocator = NULL;
    size_t taken = feox_slab_bytes_each();
    if (slabs_mapped()) {
        start = feox_mem_map_huge(FEOX_SLAB_BYTES); /* a slab's alignment is its size */
    } else {
        from_allocator = feox_mem_alloc(taken);
        start = from_allocator ? (char *)(((uintptr_t)from_allocator + FEOX_SLAB_BYTES - 1) &
                                          ~(uintptr_t)(FEOX_SLAB_BYTES - 1))
                               : NULL;
    }
    if (!start)
        return NULL;
    feox_slab *slab = (feox_slab *)start;
    atomic_init(&slab->live, FILLER_BIAS);
    slab->from_allocator = from_allocator;
    slab->taken = taken;
    slab->parked_next = NULL;
    slab->parked_allocated = 0;
    POISON(start + HEADER_BYTES, FEOX_SLAB_BYTES - HEADER_BYTES);
    atomic_fetch_add_explicit(&mapped_bytes, taken, memory_order_relaxed);
    return slab;
}

static void slab_release(feox_slab *slab)
{
    atomic_fetch_sub_explicit(&mapped_bytes, slab->taken, memory_order_relaxed);
    UNPOISON(slab, FEOX_SLAB_BYTES); /* the shadow would outlive the mapping */
    if (slab->from_allocator)
        feox_mem_free(slab->from_allocator);
    else
        munmap(slab, FEOX_SLAB_BYTES);
}

/* Drop n from the live count; the last drop releases the slab. */
static void slab_drop(feox_slab *slab, uint64_t n)
{
    /* Release our accesses to the blocks; the last dropper acquires them all before unmapping. */
    if (atomic_fetch_sub_explicit(&slab->live, n, memory_order_acq_rel) == n)
        slab_release(slab);
}

void feox_slab_free(void *block, size_t size)
{
    POISON(block, size);
    (void)size;
    slab_drop(slab_of(block), 1);
}

void feox_slab_free_many(void *block, size_t n)
{
    if (n)
        slab_drop(slab_of(block), n);
}

/* The filler is done with its slab: its allocations join the count, the bias goes. */
static void seal_slab(feox_slab *slab, uint64_t allocated)
{
    slab_drop(slab, FILLER_BIAS - allocated);
}

void *feox_slab_alloc(feox_slab_filler *f, size_t size)
{
    size = (size + 7) & ~(size_t)7;
    void **head = &f->recycled[size / 8];
    if (*head) {
        void *block = *head;
        *head = *(void **)block;
        return block;
    }
    if (!f->slab || (size_t)(f->end - f->next) < size) {
        feox_slab *slab = slab_new();
        if (!slab)
            return NULL;
        if (f->slab)
            seal_slab(f->slab, f->allocated);
        f->slab = slab;
        f->next = (char *)slab + HEADER_BYTES;
        f->end = (char *)slab + FEOX_SLAB_BYTES;
        f->allocated = 0;
    }
    void *block = f->next;
    f->next += size;
    f->allocated++;
    UNPOISON(block, size);
    return block;
}

void feox_slab_recycle(feox_slab_filler *f, void *block, size_t size)
{
    size = (size + 7) & ~(size_t)7;
    *(void **)block = f->recycled[size / 8];
    f->recycled[size / 8] = block;
}

static void free_recycled(feox_slab_filler *f)
{
    for (size_t i = 0; i < sizeof f->recycled / sizeof f->recycled[0]; i++) {
        while (f->recycled[i]) {
            void *block = f->recycled[i];
            f->recycled[i] = *(void **)block;
            feox_slab_free(block, i * 8);
        }
    }
}

void feox_slab_filler_seal(feox_slab_filler *f)
{
    free_recycled(f);
    if (f->slab)
        seal_slab(f->slab, f->allocated);
    memset(f, 0, sizeof *f);
}

feox_slab *feox_slab_park(feox_slab_filler *f)
{
    free_recycled(f);
    feox_slab *slab = f->slab;
    if (slab) {
        slab->parked_next = f->next;
        slab->parked_allocated = f->allocated;
    }
    memset(f, 0, sizeof *f);
    return slab;
}

void feox_slab_resume(feox_slab_filler *f, feox_slab *parked)
{
    if (!parked)
        return;
    f->slab = parked;
    f->next = parked->parked_next;
    f->end = (char *)parked + FEOX_SLAB_BYTES;
    f->allocated = parked->parked_allocated;
}

void feox_slab_seal_parked(feox_slab *parked)
{
    if (parked)
        seal_slab(parked, parked->parked_allocated);
}
