/*
 * ordered_index_node.h — private to the ordered index: the B+tree node layout and the key helpers
 * shared by ordered_index.c (insert, remove, scan) and ordered_index_verify.c (the structural
 * check). The layout and the concurrency rules are described at the top of ordered_index.c.
 */
#ifndef FEOX_ORDERED_INDEX_NODE_H
#define FEOX_ORDERED_INDEX_NODE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/epoch.h"
#include "index/ordered_index.h"
#include "index/record.h"

/* Slots per node: 32 keys, so leaves of 432 B and inner nodes of 696 B (perf-reliability A.5;
 * 4-byte heads). */
#define FEOX_OI_NODE_CAP 32
#define FEOX_OI_PREFIX_MAX 16
#define FEOX_OI_PREFIX_WORDS (FEOX_OI_PREFIX_MAX / 8)
/* Deeper than any tree this index can build (height grows only when a full root splits). */
#define FEOX_OI_MAX_DEPTH 64
#define FEOX_OI_COUNT_STRIPES 64

#define VERSION_OBSOLETE 1u
#define VERSION_LOCKED 2u

typedef struct separator {
    feox_retire_link retire;
    uint32_t len;
    uint8_t key[];
} separator;

typedef struct node {
    _Atomic uint64_t version;
    _Atomic uint32_t count;
    _Atomic uint32_t prefix_len;
    _Atomic uint64_t prefix_words[FEOX_OI_PREFIX_WORDS];
    uint32_t is_leaf; /* immutable after publication */
    uint16_t bytes;
    uint16_t in_slab; /* a block of a slab (a bulk build's node), not a malloc'd one */
    feox_retire_link retire;
    _Atomic uint32_t heads[FEOX_OI_NODE_CAP];
} node;

typedef struct leaf_node {
    node hdr;
    _Atomic(feox_entry *) entries[FEOX_OI_NODE_CAP];
} leaf_node;

typedef struct inner_node {
    node hdr;
    _Atomic(separator *) seps[FEOX_OI_NODE_CAP];
    _Atomic(node *) children[FEOX_OI_NODE_CAP + 1];
} inner_node;

/* Padded to a cache line each (not _Alignas: the engine allocator only promises malloc's
 * alignment). */
typedef struct count_stripe {
    _Atomic int64_t value;
    char pad[64 - sizeof(int64_t)];
} count_stripe;

struct feox_ordered_index {
    _Atomic(node *) root;
    count_stripe counts[FEOX_OI_COUNT_STRIPES];
};

_Static_assert(sizeof(leaf_node) == 432 && sizeof(inner_node) == 696, "the sizes said above");

#define AS_LEAF(n) ((leaf_node *)(n))
#define AS_INNER(n) ((inner_node *)(n))

/* ---- keys and heads -------------------------------------------------------------------------- */

/* The 4 bytes of key at offset, big-endian, zero-padded past the end. */
static inline uint32_t key_head(const uint8_t *key, size_t len, size_t offset)
{
    if (offset + 4 <= len) {
        uint32_t w;
        memcpy(&w, key + offset, 4);
        return __builtin_bswap32(w);
    }
    uint32_t h = 0;
    for (size_t i = 0; i < 4; i++)
        h = (h << 8) | (offset + i < len ? key[offset + i] : 0u);
    return h;
}

static inline size_t common_prefix(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen, i = 0;
    while (i < n && a[i] == b[i])
        i++;
    return i;
}

/* The key of slot i, or NULL when a torn optimistic read finds an empty slot. */
static inline const uint8_t *slot_key(const node *n, uint32_t i, size_t *len)
{
    *len = 0;
    if (n->is_leaf) {
        feox_entry *e = atomic_load_explicit(&AS_LEAF(n)->entries[i], memory_order_acquire);
        if (!e)
            return NULL;
        *len = e->key_len;
        return e->key;
    }
    separator *s = atomic_load_explicit(&AS_INNER(n)->seps[i], memory_order_acquire);
    if (!s)
        return NULL;
    *len = s->len;
    return s->key;
}

static inline uint32_t load_prefix(const node *n, uint8_t prefix[FEOX_OI_PREFIX_MAX])
{
    uint32_t plen = atomic_load_explicit(&n->prefix_len, memory_order_relaxed);
    for (int w = 0; w < FEOX_OI_PREFIX_WORDS; w++) {
        uint64_t word =
            __builtin_bswap64(atomic_load_explicit(&n->prefix_words[w], memory_order_relaxed));
        memcpy(prefix + 8 * w, &word, 8);
    }
    return plen > FEOX_OI_PREFIX_MAX ? FEOX_OI_PREFIX_MAX : plen;
}

#endif
