/*
 * ttl_index.c — per-shard min-heap of expiry instants (see ttl_index.h).
 */
#include "index/ttl_index.h"

#include <string.h>

#include "base/alloc.h"

void feox_ttl_heap_init(feox_ttl_heap *h)
{
    memset(h, 0, sizeof *h);
}

void feox_ttl_heap_destroy(feox_ttl_heap *h)
{
    for (size_t i = 0; i < h->len; i++)
        feox_mem_free(h->items[i].key);
    feox_mem_free(h->items);
    memset(h, 0, sizeof *h);
}

static bool earlier(const feox_ttl_item *a, const feox_ttl_item *b)
{
    return a->expires_at_ns < b->expires_at_ns;
}

static void swap_items(feox_ttl_item *a, feox_ttl_item *b)
{
    feox_ttl_item t = *a;
    *a = *b;
    *b = t;
}

static void sift_up(feox_ttl_heap *h, size_t i)
{
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!earlier(&h->items[i], &h->items[parent]))
            break;
        swap_items(&h->items[i], &h->items[parent]);
        i = parent;
    }
}

static void sift_down(feox_ttl_heap *h, size_t i)
{
    for (;;) {
        size_t left = 2 * i + 1, right = left + 1, least = i;
        if (left < h->len && earlier(&h->items[left], &h->items[least]))
            least = left;
        if (right < h->len && earlier(&h->items[right], &h->items[least]))
            least = right;
        if (least == i)
            return;
        swap_items(&h->items[i], &h->items[least]);
        i = least;
    }
}

feox_err feox_ttl_heap_push(feox_ttl_heap *h, uint64_t expires_at_ns, uint64_t ts_ns,
                            const void *key, size_t key_len)
{
    if (h->len == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        feox_ttl_item *items = feox_mem_realloc(h->items, cap * sizeof *items);
        if (!items)
            return FEOX_ERR_NOMEM;
        h->items = items;
        h->cap = cap;
    }
    uint8_t *copy = feox_mem_alloc(key_len);
    if (!copy)
        return FEOX_ERR_NOMEM;
    memcpy(copy, key, key_len);
    h->items[h->len] = (feox_ttl_item){
        .expires_at_ns = expires_at_ns, .ts_ns = ts_ns, .key = copy, .key_len = (uint32_t)key_len};
    sift_up(h, h->len++);
    return FEOX_OK;
}

const feox_ttl_item *feox_ttl_heap_top(const feox_ttl_heap *h)
{
    return h->len ? &h->items[0] : NULL;
}

void feox_ttl_heap_pop(feox_ttl_heap *h)
{
    if (!h->len)
        return;
    feox_mem_free(h->items[0].key);
    h->items[0] = h->items[--h->len];
    sift_down(h, 0);
}

void feox_ttl_heap_prune(feox_ttl_heap *h, bool (*is_current)(void *ctx, const feox_ttl_item *),
                         void *ctx)
{
    size_t kept = 0;
    for (size_t i = 0; i < h->len; i++) {
        if (is_current(ctx, &h->items[i]))
            h->items[kept++] = h->items[i];
        else
            feox_mem_free(h->items[i].key);
    }
    h->len = kept;
    for (size_t i = h->len / 2; i-- > 0;)
        sift_down(h, i);
}
