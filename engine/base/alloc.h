/*
 * alloc.h — the engine's allocation functions. Every engine allocation (and cJSON's, once
 * feox_alloc_init_cjson has run) goes through them, so tests can make the Nth allocation fail
 * (feox_set_allocator in feox.h).
 */
#ifndef FEOX_ALLOC_H
#define FEOX_ALLOC_H

#include <stdbool.h>
#include <stddef.h>

void *feox_mem_alloc(size_t size);
void *feox_mem_calloc(size_t count, size_t size);
void *feox_mem_realloc(void *ptr, size_t size);
void feox_mem_free(void *ptr);
char *feox_mem_strndup(const char *s, size_t len);
/* a followed by b in a new string (NULL if the allocation fails). */
char *feox_mem_concat(const char *a, const char *b);
/* True while no allocator from feox_set_allocator is in place (malloc and free are used). */
bool feox_mem_is_default(void);

/* Settling: a thread that frees much memory other threads allocated (the reaper, giving back a
 * closed store's million small blocks; a store's maintenance thread, reclaiming what writers
 * deleted or replaced) makes the allocator finish that work as it goes, so the
 * next thread to allocate there does not pay for all of it at once. glibc keeps freed blocks of
 * up to 128 bytes in per-arena fast bins without merging them; the first request of 1 KiB or
 * more in that arena (a store's open) merges every one of them under the arena's lock: ~50 ms of
 * the allocating thread's CPU for 1M keys written through the API. While settling, one free in
 * FEOX_SETTLE_EVERY first moves its block to a 1 KiB-class request in the block's own arena
 * (realloc: a thread's malloc would serve its own arena), which merges the fast blocks freed
 * since the last time while they are still in cache, holding the arena's lock for a short while
 * each time. Standard calls only: with another malloc (LD_PRELOAD) it is one realloc per
 * FEOX_SETTLE_EVERY frees; with an allocator from feox_set_allocator, nothing. */
#define FEOX_SETTLE_EVERY 1024
void feox_mem_settle_begin(void); /* this thread settles its frees from now on */
void feox_mem_settle_end(void);

/* Scratch arrays of many MiB that live for one operation (a store's load, its close). With the
 * default allocator, one of at least FEOX_LARGE_MIN bytes is its own mapping, its bytes from a
 * 2 MiB boundary (its header in a 4 KiB page of its own just before it: writing the header does
 * not fault in and zero the array's first huge page), with transparent huge pages asked for
 * (madvise): first-touch page faults are most of
 * the cost of fresh memory (about 10 us per 4 KiB page on a VM, 512 times fewer faults with 2 MiB
 * pages) and a randomly probed table misses the TLB far less. With an allocator from
 * feox_set_allocator, under AddressSanitizer (LeakSanitizer scans it then), or smaller, it comes
 * from feox_mem_alloc. Free with feox_mem_free_large only. */
#define FEOX_LARGE_MIN ((size_t)4 << 20)
void *feox_mem_alloc_large(size_t size);
/* bytes (a multiple of 4 KiB) in a mapping of their own from a 2 MiB boundary, huge pages asked
 * for (a mapping that starts mid huge page would take 4 KiB pages up to the first boundary, ~256
 * faults on average at each end instead of one); munmap it. NULL if it cannot be had. Not
 * through feox_set_allocator's functions: callers check feox_mem_is_default first. */
char *feox_mem_map_huge(size_t bytes);
/* The same, zero-filled (a fresh mapping already is). */
void *feox_mem_calloc_large(size_t size);
void feox_mem_free_large(void *ptr);
/* Scratch that an operation must keep out of the malloc heap, whatever its size (a close after
 * many writes: glibc's first requests of 1 KiB or more after many small frees merge its fast
 * bins and sort up to 10,000 freed blocks each before they are served, 16 ms of the closing
 * thread's CPU in the bench's close of 1M keys; a free that leaves 64 KiB or more free merges
 * too): as feox_mem_alloc_large, a mapping of its own at any size with the default allocator,
 * with 4 KiB pages below FEOX_LARGE_MIN (only the pages touched are faulted in). Free with
 * feox_mem_free_large; feox_mem_prefault_large works on it. */
void *feox_mem_alloc_scratch(size_t size);
void *feox_mem_calloc_scratch(size_t size); /* zero-filled */
/* Fault in bytes [from, to) of a large allocation now (the pages they touch), in one call
 * (MADV_POPULATE_WRITE, Linux 5.14 on), for an array about to be written whole: its first
 * touches would otherwise fault page by page (~10 us each on a VM), and a 2 MiB range whose page
 * table is left from an earlier mapping takes 4 KiB pages, 512 faults. Threads may fault in parts
 * of one array at once. False if nothing was done (memory from feox_mem_alloc, a range past the
 * end, or a kernel that does not know the call): the first touches fault the pages in. */
bool feox_mem_prefault_large(void *ptr, size_t from, size_t to);
/* The same for bytes [ptr, ptr + bytes) of any writable memory (a block of feox_mem_alloc: the
 * pages it lies on are faulted in, their bytes left as they are, its neighbours' too): for a
 * block that may have pages never touched yet (a buffer grown by realloc, written only in
 * part). False if nothing was done. */
bool feox_mem_prefault(void *ptr, size_t bytes);
/* Give back now the pages wholly inside bytes [from, to) of a large allocation (madvise
 * MADV_DONTNEED; they read as zero afterwards), for an array done with part by part: the kernel
 * hands the next pages anyone asks for (the page cache of a write that follows) from the pages
 * freed last, and on this virtual machine memory it just gave back costs ~0.05 ms per MiB to
 * hand out again against ~0.6-1.6 ms for memory new to it (the host backs that lazily). True if
 * pages were given back; false for memory from feox_mem_alloc or a range past the end. */
bool feox_mem_release_large(void *ptr, size_t from, size_t to);
/* Bytes of the large allocations that are mappings of their own now (the allocator's statistics,
 * mallinfo2, do not see them; memory measurements add them). */
size_t feox_mem_large_mapped(void);

/* Point cJSON's hooks at the engine allocator (idempotent; called by json_patch). */
void feox_alloc_init_cjson(void);

#endif
