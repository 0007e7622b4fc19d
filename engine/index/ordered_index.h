/*
 * ordered_index.h — the ordered index: every live feox_entry in memcmp key order (a B+tree).
 *
 * Contract
 *   - Writers: feox_ordered_index_insert / _remove may run concurrently from many threads; the
 *     caller holds the key's hash-shard lock, so two writers never work on the same key at once.
 *     Writers to different keys do not serialize on one global lock.
 *   - Readers: feox_ordered_index_scan never takes a lock and never blocks a writer; it must run
 *     inside an epoch section (epoch.h), and the entries it returns stay valid until that section
 *     ends. Nodes are reclaimed through the epoch.
 *   - Entries are not owned: remove unlinks, the caller retires the entry.
 */
#ifndef FEOX_ORDERED_INDEX_H
#define FEOX_ORDERED_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/slab.h"
#include "feox.h"
#include "index/record.h"

typedef struct feox_ordered_index feox_ordered_index;

typedef enum feox_scan_from {
    FEOX_SCAN_FIRST, /* ascending from the smallest key (bound ignored) */
    FEOX_SCAN_LAST,  /* descending from the largest key (bound ignored) */
    FEOX_SCAN_GE,    /* ascending from the first key >= bound */
    FEOX_SCAN_GT,    /* ascending from the first key > bound */
    FEOX_SCAN_LE,    /* descending from the last key <= bound */
    FEOX_SCAN_LT     /* descending from the last key < bound */
} feox_scan_from;

feox_err feox_ordered_index_create(feox_ordered_index **out);
/* Free every node (no concurrent users allowed; entries are not freed). */
void feox_ordered_index_destroy(feox_ordered_index *idx);
/* The same, showing every entry to visit (in key order, a leaf's entries before its node goes):
 * a walk of the entries that reads only the leaves, which a bulk build laid out one after
 * another. */
void feox_ordered_index_destroy_visiting(feox_ordered_index *idx,
                                         void (*visit)(void *ctx, feox_entry *e), void *ctx);

/* Build the index from n entries in strictly ascending key order, in one pass (leaves filled
 * full, then each inner level, filled to FEOX_OI_NODE_CAP - 4). The index must be empty and have no
 * concurrent user (a store's first load, before the store is handed out). Errors: NOMEM (index
 * unchanged, still empty). */
feox_err feox_ordered_index_build(feox_ordered_index *idx, feox_entry *const *sorted, size_t n);

/* Add an entry whose key is not in the index. Errors: NOMEM (index unchanged). */
feox_err feox_ordered_index_insert(feox_ordered_index *idx, feox_entry *e);
/* Add n entries in strictly ascending key order, none of whose keys is in the index: the same as
 * n inserts, but one descent per leaf they go to (a run of keys past the largest one fills the
 * rightmost leaf, which splits near its end, and so on). Errors: NOMEM, with the first
 * *inserted entries in the index and the others not. */
feox_err feox_ordered_index_insert_sorted(feox_ordered_index *idx, feox_entry *const *sorted,
                                          size_t n, size_t *inserted);
/* The same, with the nodes its splits make taken from slabs's slab when slabs is not NULL (a bulk
 * load's filler, used by this thread alone; slab.h): a node goes back to its slab when retired. */
feox_err feox_ordered_index_insert_sorted_from(feox_ordered_index *idx, feox_entry *const *sorted,
                                               size_t n, size_t *inserted, feox_slab_filler *slabs);
/* Remove an entry that is in the index. */
void feox_ordered_index_remove(feox_ordered_index *idx, feox_entry *e);
/* Put fresh, an entry with the same key bytes, in the place of old, which is in the index: one
 * slot of its leaf changes under the leaf's lock (no allocation, the tree's shape and keys stay).
 * A concurrent scan returns one of the two. False (index unchanged) if old is not in it. */
bool feox_ordered_index_replace(feox_ordered_index *idx, feox_entry *old, feox_entry *fresh);

/* Copy into out[0..max) up to max entries in scan order starting at the bound; returns how many.
 * Keys come out strictly ascending (FIRST/GE/GT) or strictly descending (LAST/LE/LT). A batch is
 * not a snapshot, but every entry returned was in the index at some instant during the call and
 * an entry in the index for the whole call in the scanned range is never skipped. Inside an
 * epoch section. */
size_t feox_ordered_index_scan(feox_ordered_index *idx, feox_scan_from from, const void *bound,
                               size_t bound_len, feox_entry **out, size_t max);

/* Number of entries (exact when no writer is running). */
uint64_t feox_ordered_index_count(const feox_ordered_index *idx);

/* Structural self-check for feox_check and tests (no concurrent writers): keys strictly ascending,
 * node invariants hold. Returns 0 if fine, else writes a description into detail. */
int feox_ordered_index_verify(feox_ordered_index *idx, char *detail, size_t detail_len);

#endif
