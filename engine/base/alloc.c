/*
 * alloc.c — the engine allocator indirection (see alloc.h) and the public feox_set_allocator.
 */
#include "base/alloc.h"

#include <cjson/cJSON.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "base/slab.h"
#include "feox.h"

static void *(*alloc_fn)(size_t) = malloc;
static void *(*realloc_fn)(void *, size_t) = realloc;
static void (*free_fn)(void *) = free;

void feox_set_allocator(void *(*m)(size_t), void *(*r)(void *, size_t), void (*f)(void *))
{
    alloc_fn = m ? m : malloc;
    realloc_fn = r ? r : realloc;
    free_fn = f ? f : free;
    feox_alloc_init_cjson();
}

bool feox_mem_is_default(void)
{
    return alloc_fn == malloc;
}

void *feox_mem_alloc(size_t size)
{
    return alloc_fn(size ? size : 1);
}

void *feox_mem_calloc(size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size)
        return NULL;
    size_t bytes = count * size;
    void *p = alloc_fn(bytes ? bytes : 1);
    if (p)
        memset(p, 0, bytes);
    return p;
}

void *feox_mem_realloc(void *ptr, size_t size)
{
    return realloc_fn(ptr, size ? size : 1);
}

/* Settling (alloc.h). The global count keeps the check off other threads' frees: one relaxed
 * load of a word that only changes when a settling thread starts or stops. */
#define SETTLE_BYTES 1024 /* past glibc's small bins: a request that merges the fast bins first */
static _Atomic unsigned settling_threads;
static _Thread_local unsigned settle_countdown; /* frees to the next settle; 0: not settling */

void feox_mem_settle_begin(void)
{
    if (settle_countdown)
        return;
    settle_countdown = FEOX_SETTLE_EVERY;
    atomic_fetch_add_explicit(&settling_threads, 1, memory_order_relaxed);
}

void feox_mem_settle_end(void)
{
    if (!settle_countdown)
        return;
    settle_countdown = 0;
    atomic_fetch_sub_explicit(&settling_threads, 1, memory_order_relaxed);
}

/* The block to free in place of ptr: every FEOX_SETTLE_EVERY frees of a settling thread, ptr
 * moved by realloc to a request glibc serves only after merging its arena's fast bins (ptr's own
 * arena: realloc works in the arena of the block). A realloc that fails leaves ptr as it was. */
static void *settle(void *ptr)
{
    if (--settle_countdown)
        return ptr;
    settle_countdown = FEOX_SETTLE_EVERY;
    if (!feox_mem_is_default())
        return ptr; /* not malloc's block: the allocator's own business */
    void *moved = realloc(ptr, SETTLE_BYTES);
    if (!moved)
        return ptr; /* ptr's block as it was: freed as it is */
    return moved;
}

void feox_mem_free(void *ptr)
{
    if (!ptr)
        return;
    if (atomic_load_explicit(&settling_threads, memory_order_relaxed) && settle_countdown)
        ptr = settle(ptr);
    free_fn(ptr);
}

char *feox_mem_strndup(const char *s, size_t len)
{
    char *p = alloc_fn(len + 1);
    if (p) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

char *feox_mem_concat(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *p = alloc_fn(la + lb + 1);
    if (p) {
        memcpy(p, a, la);
        memcpy(p + la, b, lb + 1);
    }
    return p;
}

#ifdef FEOX_SLAB_POISON
/* Under AddressSanitizer a large allocation comes from the allocator, as a slab does (slab.h):
 * LeakSanitizer scans malloc'd memory, not a mapping of ours, and the hash index's maps, carved
 * from one, hold the only pointers to some entries. */
#define LARGE_MAPPED 0
#else
#define LARGE_MAPPED 1
#endif

/* Before the bytes of a large allocation: the length of its own mapping (0 if it came from
 * alloc_fn), then how far before the bytes the mapping starts. 64 bytes: an array in a mapping
 * starts on a cache line; one from alloc_fn keeps alloc_fn's alignment. */
#define LARGE_HEADER 64

typedef struct large_header {
    size_t mapped; /* bytes of the mapping; 0: from alloc_fn */
    size_t lead;   /* from the mapping's start to the array's first byte */
} large_header;
_Static_assert(sizeof(large_header) <= LARGE_HEADER, "the header fits");

/* A huge-page array's header page: the 4 KiB page before its first 2 MiB boundary, a small page
 * of its own (the range below the boundary is less than a huge page), so writing the header
 * faults in 4 KiB, not the array's first huge page (2 MiB zeroed on the allocating thread, ~3 ms
 * for memory new to this virtual machine, before the threads that fault the array in parallel,
 * or write it, start). */
#define HEADER_PAGE ((size_t)4096)

#define HUGE_PAGE ((size_t)2 << 20)

/* Bytes of the large allocations that are mappings of their own now (feox_mem_large_mapped). */
static _Atomic size_t large_mapped_bytes;

size_t feox_mem_large_mapped(void)
{
    return atomic_load_explicit(&large_mapped_bytes, memory_order_relaxed);
}

/* lead + bytes mapped so that lead bytes come before a 2 MiB boundary and bytes from it, huge
 * pages asked for on those; the boundary, or NULL. */
static char *map_huge_after(size_t lead, size_t bytes)
{
    size_t span = lead + bytes + HUGE_PAGE;
    char *p = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    char *start = (char *)(((uintptr_t)p + lead + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
    if (start - lead > p)
        munmap(p, (size_t)(start - lead - p));
    if (start + bytes < p + span)
        munmap(start + bytes, (size_t)(p + span - (start + bytes)));
    (void)madvise(start, bytes, MADV_HUGEPAGE); /* a hint: without it, 4 KiB pages */
    return start;
}

char *feox_mem_map_huge(size_t bytes)
{
    return map_huge_after(0, bytes);
}

/* A mapping of bytes (a multiple of 4 KiB) with 4 KiB pages: only the pages touched are faulted
 * in (and zeroed), where a huge page zeroes 2 MiB at its first touch. */
static char *map_plain(size_t bytes)
{
    char *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* A large allocation (see alloc.h); a mapping of its own from min bytes on: from FEOX_LARGE_MIN
 * on, its bytes from a 2 MiB boundary with the header page before it, else the header then its
 * bytes in 4 KiB pages. */
static void *alloc_large_from(size_t size, size_t min)
{
    if (size > SIZE_MAX - LARGE_HEADER - FEOX_LARGE_MIN - HUGE_PAGE - HEADER_PAGE)
        return NULL;
    char *p;
    large_header h = {0, LARGE_HEADER};
    if (LARGE_MAPPED && feox_mem_is_default() && size >= min) {
        if (size >= FEOX_LARGE_MIN) {
            size_t bytes = (size + 4095) & ~(size_t)4095;
            char *start = map_huge_after(HEADER_PAGE, bytes);
            if (!start)
                return NULL;
            h = (large_header){HEADER_PAGE + bytes, HEADER_PAGE};
            p = start - LARGE_HEADER;
        } else {
            h.mapped = (size + LARGE_HEADER + 4095) & ~(size_t)4095;
            p = map_plain(h.mapped);
            if (!p)
                return NULL;
        }
        atomic_fetch_add_explicit(&large_mapped_bytes, h.mapped, memory_order_relaxed);
    } else {
        p = alloc_fn(size + LARGE_HEADER);
        if (!p)
            return NULL;
    }
    memcpy(p, &h, sizeof h);
    return p + LARGE_HEADER;
}

/* ptr's header (ptr from alloc_large_from). */
static large_header header_of(const void *ptr)
{
    large_header h;
    memcpy(&h, (const char *)ptr - LARGE_HEADER, sizeof h);
    return h;
}

void *feox_mem_alloc_large(size_t size)
{
    return alloc_large_from(size, FEOX_LARGE_MIN);
}

/* p (from alloc_large_from) zero-filled. */
static void *zeroed(void *p, size_t size)
{
    if (p && !header_of(p).mapped) /* a fresh mapping is zero already: not one page touched */
        memset(p, 0, size);
    return p;
}

void *feox_mem_calloc_large(size_t size)
{
    return zeroed(alloc_large_from(size, FEOX_LARGE_MIN), size);
}

void *feox_mem_alloc_scratch(size_t size)
{
    return alloc_large_from(size, 0);
}

void *feox_mem_calloc_scratch(size_t size)
{
    return zeroed(alloc_large_from(size, 0), size);
}

/* Whether bytes [from, to) of ptr (from alloc_large_from) lie in a mapping of its own (*h: its
 * header); false for an empty range, memory from alloc_fn, or a range past the end. */
static bool mapped_range(const void *ptr, size_t from, size_t to, large_header *h)
{
    if (!ptr || from >= to)
        return false;
    *h = header_of(ptr);
    return h->mapped && to <= h->mapped - h->lead;
}

bool feox_mem_prefault_large(void *ptr, size_t from, size_t to)
{
#ifdef MADV_POPULATE_WRITE
    large_header h;
    if (!mapped_range(ptr, from, to, &h))
        return false;
    char *base = (char *)ptr - h.lead;
    size_t first = (h.lead + from) & ~(size_t)4095;
    size_t end = (h.lead + to + 4095) & ~(size_t)4095; /* (mapped is whole pages) */
    return madvise(base + first, end - first, MADV_POPULATE_WRITE) == 0;
#else
    (void)ptr;
    (void)from;
    (void)to;
    return false;
#endif
}

bool feox_mem_prefault(void *ptr, size_t bytes)
{
#ifdef MADV_POPULATE_WRITE
    if (!ptr || !bytes)
        return false;
    uintptr_t first = (uintptr_t)ptr & ~(uintptr_t)4095;
    uintptr_t end = ((uintptr_t)ptr + bytes + 4095) & ~(uintptr_t)4095;
    return madvise((void *)first, end - first, MADV_POPULATE_WRITE) == 0;
#else
    (void)ptr;
    (void)bytes;
    return false;
#endif
}

bool feox_mem_release_large(void *ptr, size_t from, size_t to)
{
    large_header h;
    if (!mapped_range(ptr, from, to, &h))
        return false;
    char *base = (char *)ptr - h.lead;
    size_t first = (h.lead + from + 4095) & ~(size_t)4095;
    size_t end = (h.lead + to) & ~(size_t)4095;
    if (first < HEADER_PAGE && h.lead == LARGE_HEADER)
        first = HEADER_PAGE; /* (a small array's header is in its first page) */
    return first < end && madvise(base + first, end - first, MADV_DONTNEED) == 0;
}

void feox_mem_free_large(void *ptr)
{
    if (!ptr)
        return;
    large_header h = header_of(ptr);
    if (h.mapped) {
        atomic_fetch_sub_explicit(&large_mapped_bytes, h.mapped, memory_order_relaxed);
        munmap((char *)ptr - h.lead, h.mapped);
    } else {
        free_fn((char *)ptr - LARGE_HEADER);
    }
}

static void *cjson_malloc(size_t size)
{
    return alloc_fn(size ? size : 1);
}
static void cjson_free(void *ptr)
{
    feox_mem_free(ptr);
}

void feox_alloc_init_cjson(void)
{
    /* cJSON_InitHooks falls back to realloc-less mode when malloc/free are not the libc ones. */
    cJSON_Hooks hooks = {cjson_malloc, cjson_free};
    cJSON_InitHooks(&hooks);
}

void feox_free(void *ptr)
{
    feox_mem_free(ptr);
}
