/*
 * ordered_index_verify.c — feox_ordered_index_verify: the structural self-check of the ordered
 * index (node layout in ordered_index.c / ordered_index_node.h). Run with no concurrent writers.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "index/ordered_index.h"
#include "index/ordered_index_node.h"

typedef struct verify_state {
    char *detail;
    size_t detail_len;
    uint64_t entries;
    int leaf_depth;
    bool empty_leaf;
} verify_state;

static int verify_fail(verify_state *st, const char *what, const node *n)
{
    if (st->detail && st->detail_len)
        snprintf(st->detail, st->detail_len, "ordered index: %s (node %p)", what, (const void *)n);
    return 1;
}

/* Every key of n within [low, high) (NULL = unbounded), sorted, heads and prefix right. */
static int verify_node(verify_state *st, const node *n, int depth, const uint8_t *low,
                       size_t low_len, const uint8_t *high, size_t high_len)
{
    uint64_t version = atomic_load_explicit(&n->version, memory_order_relaxed);
    if (version & (VERSION_LOCKED | VERSION_OBSOLETE))
        return verify_fail(st, "node locked or obsolete", n);
    uint32_t count = atomic_load_explicit(&n->count, memory_order_relaxed);
    if (count > FEOX_OI_NODE_CAP)
        return verify_fail(st, "count above capacity", n);
    uint8_t prefix[FEOX_OI_PREFIX_MAX];
    uint32_t plen = load_prefix(n, prefix);
    const uint8_t *prev = NULL;
    size_t prev_len = 0;
    for (uint32_t i = 0; i < count; i++) {
        size_t klen;
        const uint8_t *k = slot_key(n, i, &klen);
        if (!k)
            return verify_fail(st, "empty slot below count", n);
        if (prev && feox_key_compare(prev, prev_len, k, klen) >= 0)
            return verify_fail(st, "keys not strictly ascending", n);
        if (low && feox_key_compare(k, klen, low, low_len) < 0)
            return verify_fail(st, "key below the node's lower separator", n);
        if (high && feox_key_compare(k, klen, high, high_len) >= 0)
            return verify_fail(st, "key at or above the node's upper separator", n);
        if (klen < plen || memcmp(k, prefix, plen) != 0)
            return verify_fail(st, "key does not share the node prefix", n);
        if (atomic_load_explicit(&n->heads[i], memory_order_relaxed) != key_head(k, klen, plen))
            return verify_fail(st, "stale key head", n);
        prev = k;
        prev_len = klen;
    }
    if (n->is_leaf) {
        if (st->leaf_depth < 0)
            st->leaf_depth = depth;
        else if (st->leaf_depth != depth)
            return verify_fail(st, "leaves at different depths", n);
        if (count == 0)
            st->empty_leaf = true;
        st->entries += count;
        return 0;
    }
    if (depth >= FEOX_OI_MAX_DEPTH)
        return verify_fail(st, "tree deeper than the maximum depth", n);
    const inner_node *in = AS_INNER(n);
    for (uint32_t i = 0; i <= count; i++) {
        const node *child = atomic_load_explicit(&in->children[i], memory_order_relaxed);
        if (!child)
            return verify_fail(st, "missing child", n);
        const uint8_t *clow = low, *chigh = high;
        size_t clow_len = low_len, chigh_len = high_len;
        if (i > 0)
            clow = slot_key(n, i - 1, &clow_len);
        if (i < count)
            chigh = slot_key(n, i, &chigh_len);
        if (verify_node(st, child, depth + 1, clow, clow_len, chigh, chigh_len))
            return 1;
    }
    return 0;
}

int feox_ordered_index_verify(feox_ordered_index *idx, char *detail, size_t detail_len)
{
    verify_state st = {detail, detail_len, 0, -1, false};
    const node *root = atomic_load_explicit(&idx->root, memory_order_acquire);
    if (verify_node(&st, root, 0, NULL, 0, NULL, 0))
        return 1;
    if (st.entries != feox_ordered_index_count(idx))
        return verify_fail(&st, "entry count differs from the index count", root);
    /* Emptied leaves are unlinked; one may remain only as the last leaf of an empty index. */
    if (st.empty_leaf && st.entries != 0)
        return verify_fail(&st, "an empty leaf is still linked", root);
    return 0;
}
