/*
 * slab.h — slabs: regions of FEOX_SLAB_BYTES (2 MiB, aligned to their size) that the blocks a
 * bulk load makes (a loaded key's first version with its entry) are bump-allocated from: no
 * allocator header, no rounding beyond 8 bytes, and with the default allocator a mapping of its
 * own with transparent huge pages asked for (madvise), so a load of 1M keys takes ~100 page
 * faults instead of ~50,000 and a close unmaps instead of calling free() per key.
 *
 * A block's slab is found from its address (the slab header sits at the start of the aligned
 * region). Each slab counts its live blocks (atomic: a block may be freed by any thread); while
 * a filler (one bulk operation, single-threaded) fills it, the count also carries a bias, so an
 * allocation costs no atomic: the filler settles the bias when it seals the slab (done with
 * it), and the slab is released when it is sealed and its last block is freed. Blocks are never
 * reused once freed to the slab; a filler takes back the blocks its own operation frees before
 * they were published (feox_slab_recycle) for its next allocations of the same size.
 *
 * With an allocator from feox_set_allocator, a slab is one allocation of 2 * FEOX_SLAB_BYTES
 * from it (aligned inside), so a test that fails the Nth allocation fails a slab too, and
 * LeakSanitizer sees a slab that is never released. Under AddressSanitizer, slabs always come
 * from the allocator (LeakSanitizer scans them: the epoch's retire list runs through blocks),
 * and a slab's unused bytes and freed blocks are poisoned: a use after free inside a slab is
 * reported as it is for malloc'd memory (and blocks are never reused, so there is no quarantine
 * to outlive).
 */
#ifndef FEOX_SLAB_H
#define FEOX_SLAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FEOX_SLAB_BYTES ((size_t)2 << 20)
/* A store's bulk loads take blocks from slabs once they have made this many blocks (the earlier
 * ones from malloc): a slab is 2 MiB of memory once its huge page is touched, which a store of a
 * few keys (a small table's cache) should not pay. */
#define FEOX_SLAB_MIN_BLOCKS 8192
/* The largest block a slab holds; larger ones are the caller's to malloc. */
#define FEOX_SLAB_MAX_BLOCK 1024

#if defined(__SANITIZE_ADDRESS__)
#define FEOX_SLAB_POISON 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FEOX_SLAB_POISON 1
#endif
#endif

typedef struct feox_slab feox_slab;

/* One bulk operation's slab being filled. Zero-initialized: no slab yet. */
typedef struct feox_slab_filler {
    feox_slab *slab;
    char *next, *end;
    uint64_t allocated; /* blocks bump-allocated from slab so far */
    /* Blocks given back before they were published, by size / 8, linked through their first
     * word; still counted live in their slabs. */
    void *recycled[FEOX_SLAB_MAX_BLOCK / 8 + 1];
} feox_slab_filler;

/* size (at most FEOX_SLAB_MAX_BLOCK) bytes, 8-byte aligned, from f's slab (a new slab when it
 * is full). NULL if no slab can be had. */
void *feox_slab_alloc(feox_slab_filler *f, size_t size);
/* Give a block of size bytes that f allocated and nobody else has seen back to f. */
void feox_slab_recycle(feox_slab_filler *f, void *block, size_t size);
/* Done filling: recycled blocks are freed and the slab sealed (f is zeroed). */
void feox_slab_filler_seal(feox_slab_filler *f);
/* Hand f's slab over for a later filler (f is zeroed): the slab keeps its place and count.
 * feox_slab_resume takes it back into a zeroed filler. */
feox_slab *feox_slab_park(feox_slab_filler *f);
void feox_slab_resume(feox_slab_filler *f, feox_slab *parked);
/* Seal a parked slab (NULL: nothing). */
void feox_slab_seal_parked(feox_slab *parked);

/* Free n blocks of the slab that holds block (all of them in that slab; size is that of block,
 * for poisoning, and only read for n == 1). The slab goes when it is sealed and empty. */
void feox_slab_free(void *block, size_t size);
void feox_slab_free_many(void *block, size_t n);

/* Bytes that slabs map (or take from the allocator) in this process now, and what one new slab
 * takes (FEOX_SLAB_BYTES mapped; twice that from an allocator, to align it). */
size_t feox_slab_mapped_bytes(void);
size_t feox_slab_bytes_each(void);

#endif
