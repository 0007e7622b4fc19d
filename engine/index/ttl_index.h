/*
 * ttl_index.h — the expiry queue of one hash shard: a binary min-heap of (expires_at, version
 * timestamp, key copy), so the sweeper finds expired keys without scanning the table.
 *
 * Invariant (kept by store.c under the shard lock): every current version with an expiry has one
 * item (key, expires_at, ts) in its shard's heap. Items whose version was since replaced or
 * deleted are stale; they are dropped when they reach the top, or by feox_ttl_heap_prune when
 * stale items outnumber live ones, so the heap stays within a constant factor of the keys with
 * a TTL. Not thread-safe: the owner holds the shard lock.
 */
#ifndef FEOX_TTL_INDEX_H
#define FEOX_TTL_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "feox.h"

typedef struct feox_ttl_item {
    uint64_t expires_at_ns;
    uint64_t ts_ns;    /* timestamp of the version that carried this expiry */
    uint8_t *key;      /* owned copy */
    uint32_t key_len;
} feox_ttl_item;

typedef struct feox_ttl_heap {
    feox_ttl_item *items;
    size_t len, cap;
} feox_ttl_heap;

void feox_ttl_heap_init(feox_ttl_heap *h);
void feox_ttl_heap_destroy(feox_ttl_heap *h);
/* Add an item (copies the key). Errors: NOMEM (heap unchanged). */
feox_err feox_ttl_heap_push(feox_ttl_heap *h, uint64_t expires_at_ns, uint64_t ts_ns,
                            const void *key, size_t key_len);
/* The item with the earliest expiry, or NULL if empty. */
const feox_ttl_item *feox_ttl_heap_top(const feox_ttl_heap *h);
/* Remove the top item (frees its key). */
void feox_ttl_heap_pop(feox_ttl_heap *h);
/* Drop every item for which is_current(ctx, item) is false, then restore heap order. */
void feox_ttl_heap_prune(feox_ttl_heap *h, bool (*is_current)(void *ctx, const feox_ttl_item *),
                         void *ctx);
#endif
