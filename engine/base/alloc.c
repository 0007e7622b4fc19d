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

/* Before the bytes of a large allocation: the length of its own mapping, 0 if it came from
 * alloc_fn. 64 bytes: an array in a mapping starts on a cache line; one from alloc_fn keeps
 * alloc_fn's alignment. */
#define LARGE_HEADER 64

#define HUGE_PAGE ((size_t)2 << 20)

/* Bytes of the large allocations that are mappings of their own now (feox_mem_large_mapped). */
static _Atomic size_t large_mapped_bytes;

size_t feox_mem_large_mapped(void)
{
    return atomic_load_explicit(&large_mapped_bytes, memory_order_relaxed);
}

char *feox_mem_map_huge(size_t bytes)
{
    size_t span = bytes + HUGE_PAGE;
    char *p = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    char *start = (char *)(((uintptr_t)p + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
    if (start > p)
        munmap(p, (size_t)(start - p));
    if (start + bytes < p + span)
        munmap(start + bytes, (size_t)(p + span - (start + bytes)));
    (void)madvise(start, bytes, MADV_HUGEPAGE); /* a hint: without it, 4 KiB pages */
    return start;
}

/* A mapping of bytes (a multiple of 4 KiB) with 4 KiB pages: only the pages touched are faulted
 * in (and zeroed), where a huge page zeroes 2 MiB at its first touch. */
static char *map_plain(size_t bytes)
{
    char *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* A large allocation (see alloc.h); a mapping of its own from min bytes on. */
static void *alloc_large_from(size_t size, size_t min)
{
    if (size > SIZE_MAX - LARGE_HEADER - FEOX_LARGE_MIN - HUGE_PAGE)
        return NULL;
    char *p;
    size_t mapped = 0;
    if (LARGE_MAPPED && feox_mem_is_default() && size >= min) {
        mapped = (size + LARGE_HEADER + 4095) & ~(size_t)4095;
        p = size >= FEOX_LARGE_MIN ? feox_mem_map_huge(mapped) : map_plain(mapped);
        if (!p)
            return NULL;
        atomic_fetch_add_explicit(&large_mapped_bytes, mapped, memory_order_relaxed);
    } else {
        p = alloc_fn(size + LARGE_HEADER);
        if (!p)
            return NULL;
    }
    memcpy(p, &mapped, sizeof mapped);
    return p + LARGE_HEADER;
}

void *feox_mem_alloc_large(size_t size)
{
    return alloc_large_from(size, FEOX_LARGE_MIN);
}

/* p (from alloc_large_from) zero-filled. */
static void *zeroed(void *p, size_t size)
{
    size_t mapped = 0;
    if (p)
        memcpy(&mapped, (char *)p - LARGE_HEADER, sizeof mapped);
    if (p && !mapped) /* a fresh mapping is zero already: not one page touched here */
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

bool feox_mem_prefault_large(void *ptr, size_t from, size_t to)
{
#ifdef MADV_POPULATE_WRITE
    if (!ptr || from >= to)
        return false;
    char *p = (char *)ptr - LARGE_HEADER;
    size_t mapped;
    memcpy(&mapped, p, sizeof mapped);
    if (!mapped || to > mapped - LARGE_HEADER)
        return false; /* from the allocator (or past the end) */
    size_t first = (LARGE_HEADER + from) & ~(size_t)4095;
    size_t end = (LARGE_HEADER + to + 4095) & ~(size_t)4095; /* (mapped is whole pages) */
    return madvise(p + first, end - first, MADV_POPULATE_WRITE) == 0;
#else
    (void)ptr;
    (void)from;
    (void)to;
    return false;
#endif
}

void feox_mem_free_large(void *ptr)
{
    if (!ptr)
        return;
    char *p = (char *)ptr - LARGE_HEADER;
    size_t mapped;
    memcpy(&mapped, p, sizeof mapped);
    if (mapped) {
        atomic_fetch_sub_explicit(&large_mapped_bytes, mapped, memory_order_relaxed);
        munmap(p, mapped);
    } else {
        free_fn(p);
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
