/*
 * store_load.c — a store's first load from its backend (feox_open), as one bulk pass.
 *
 * The store is not yet handed out while it loads (create_store returns it only afterwards; no
 * maintenance thread runs yet), so this thread is its only user. The load therefore:
 *   - takes no shard lock and retires nothing through the epoch: a version a later record
 *     replaces, and the entry of a key a later record deletes, are freed at once;
 *   - puts new keys into the hash index only, and remembers them in creation order; when the
 *     backend is done, the live ones are sorted (a radix sort on the first 8 key bytes, then
 *     runs of equal heads by comparison) and the ordered index is built from them in one pass
 *     (feox_ordered_index_build), instead of a million random inserts;
 *   - adds the accounted memory once at the end, reads the clock only for records with an
 *     expiry, and pushes a TTL heap item only for those.
 * A refresh that asks for a full reload (feox_refresh) runs on a live store and goes through
 * store_storage.c's locked sink instead.
 */
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "store/store_internal.h"

typedef struct load_state {
    feox_store *store;
    feox_entry **entries; /* every entry created by the load, in creation order */
    size_t count, cap;
    int64_t memory; /* accounted bytes, added to the store at the end */
} load_state;

static feox_err check_record(const feox_storage_record *rec)
{
    if (!rec || !rec->key || rec->key_len == 0 || rec->key_len > FEOX_MAX_KEY_SIZE ||
        rec->value_len > FEOX_MAX_VALUE_SIZE)
        return feox_fail(FEOX_ERR_CORRUPT, "the backend sent a record with an invalid size");
    return FEOX_OK;
}

static int64_t version_bytes(const feox_record *r)
{
    return (int64_t)feox_record_footprint(r->value_len, r->flags & FEOX_RECORD_COLD);
}

/* Remove the key's entry from the hash index (it stays in ls->entries, dead, until the end). */
static void load_remove(load_state *ls, feox_shard *shard, feox_entry *e)
{
    feox_record *old = e->current;
    feox_hash_remove(&ls->store->hash, e);
    e->current = NULL;
    feox_shard_count_add(&shard->keys, -1);
    ls->memory -= (int64_t)(feox_entry_footprint(e->key_len) + FEOX_INDEX_BYTES_PER_KEY);
    if (old) {
        if (old->expires_at_ns)
            feox_shard_count_add(&shard->ttl_keys, -1);
        ls->memory -= version_bytes(old);
        feox_record_unref(old);
    }
}

static feox_err remember(load_state *ls, feox_entry *e)
{
    if (ls->count == ls->cap) {
        size_t cap = ls->cap ? ls->cap * 2 : 4096;
        feox_entry **grown = feox_mem_realloc(ls->entries, cap * sizeof *grown);
        if (!grown)
            return FEOX_ERR_NOMEM;
        ls->entries = grown;
        ls->cap = cap;
    }
    ls->entries[ls->count++] = e;
    return FEOX_OK;
}

static feox_err load_put(void *ctx, const feox_storage_record *rec)
{
    load_state *ls = ctx;
    feox_store *s = ls->store;
    feox_err err = check_record(rec);
    if (err)
        return err;
    uint64_t hash = feox_hash_key(&s->hash, rec->key, rec->key_len);
    feox_shard *shard = feox_hash_shard(&s->hash, hash);
    feox_entry *e = feox_hash_lookup(&s->hash, hash, rec->key, rec->key_len);
    if (rec->expires_at_ns && feox_store_now(s) > rec->expires_at_ns) {
        if (e)
            load_remove(ls, shard, e); /* an expired put ends the key */
        return FEOX_OK;
    }
    feox_record *r = feox_record_new(rec->value, rec->value_len, rec->tag, rec->ts_ns,
                                     rec->expires_at_ns, rec->value == NULL);
    if (!r)
        return feox_fail(FEOX_ERR_NOMEM, "allocation failed");
    r->location = rec->location;
    if (rec->expires_at_ns) {
        err = feox_ttl_heap_push(&shard->ttl, rec->expires_at_ns, rec->ts_ns, rec->key,
                                 rec->key_len);
        if (err) {
            feox_record_free(r);
            return feox_fail(err, "allocation failed");
        }
    }
    if (e) {
        /* A later record of a key: the earlier version goes at once (nobody can hold it). */
        feox_record *old = e->current;
        if (old->expires_at_ns)
            feox_shard_count_add(&shard->ttl_keys, -1);
        ls->memory += version_bytes(r) - version_bytes(old);
        feox_record_unref(old);
    } else {
        e = feox_entry_new(rec->key, rec->key_len, hash);
        if (!e || remember(ls, e) != FEOX_OK) {
            feox_entry_free(e);
            feox_record_free(r);
            return feox_fail(FEOX_ERR_NOMEM, "allocation failed");
        }
        if (feox_hash_insert(&s->hash, e) != FEOX_OK) {
            ls->count--;
            feox_entry_free(e);
            feox_record_free(r);
            return feox_fail(FEOX_ERR_NOMEM, "allocation failed");
        }
        feox_shard_count_add(&shard->keys, 1);
        ls->memory += (int64_t)(feox_entry_footprint(rec->key_len) + FEOX_INDEX_BYTES_PER_KEY) +
                      version_bytes(r);
    }
    if (rec->expires_at_ns)
        feox_shard_count_add(&shard->ttl_keys, 1);
    e->current = r;
    return FEOX_OK;
}

static feox_err load_del(void *ctx, const void *key, uint32_t key_len, uint64_t ts_ns)
{
    load_state *ls = ctx;
    (void)ts_ns;
    if (!key || key_len == 0 || key_len > FEOX_MAX_KEY_SIZE)
        return feox_fail(FEOX_ERR_CORRUPT, "the backend sent a delete with an invalid key size");
    uint64_t hash = feox_hash_key(&ls->store->hash, key, key_len);
    feox_entry *e = feox_hash_lookup(&ls->store->hash, hash, key, key_len);
    if (e)
        load_remove(ls, feox_hash_shard(&ls->store->hash, hash), e);
    return FEOX_OK;
}

/* ---- sorting the loaded keys ---- */

typedef struct sort_item {
    uint64_t head; /* the first 8 key bytes, big-endian, zero-padded: integer order = memcmp */
    feox_entry *e;
} sort_item;

static uint64_t head_of(const feox_entry *e)
{
    uint8_t bytes[8] = {0};
    memcpy(bytes, e->key, e->key_len < 8 ? e->key_len : 8);
    uint64_t w;
    memcpy(&w, bytes, 8);
    return __builtin_bswap64(w);
}

static int compare_items(const void *a, const void *b)
{
    const feox_entry *x = ((const sort_item *)a)->e, *y = ((const sort_item *)b)->e;
    return feox_key_compare(x->key, x->key_len, y->key, y->key_len);
}

/* LSD radix sort on head, 8 bits a pass (passes where every item has the same byte skipped),
 * then each run of equal heads sorted by the whole key. */
static feox_err sort_items(sort_item *items, size_t n)
{
    sort_item *tmp = feox_mem_alloc(n * sizeof *tmp);
    size_t(*counts)[256] = feox_mem_calloc(8, sizeof *counts);
    if (!tmp || !counts) {
        feox_mem_free(tmp);
        feox_mem_free(counts);
        return FEOX_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++)
        for (int d = 0; d < 8; d++)
            counts[d][(items[i].head >> (8 * d)) & 0xff]++;
    sort_item *from = items, *to = tmp;
    for (int d = 0; d < 8; d++) {
        if (counts[d][(items[0].head >> (8 * d)) & 0xff] == n)
            continue; /* one byte value for all: order unchanged */
        size_t at[256], sum = 0;
        for (int v = 0; v < 256; v++) {
            at[v] = sum;
            sum += counts[d][v];
        }
        for (size_t i = 0; i < n; i++)
            to[at[(from[i].head >> (8 * d)) & 0xff]++] = from[i];
        sort_item *swap = from;
        from = to;
        to = swap;
    }
    if (from != items)
        memcpy(items, from, n * sizeof *items);
    feox_mem_free(tmp);
    feox_mem_free(counts);
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && items[j].head == items[i].head)
            j++;
        if (j - i > 1)
            qsort(items + i, j - i, sizeof *items, compare_items);
        i = j;
    }
    return FEOX_OK;
}

/* Free the dead entries, sort the live ones and build the ordered index from them. */
static feox_err finish_load(load_state *ls)
{
    feox_store *s = ls->store;
    size_t live = 0;
    for (size_t i = 0; i < ls->count; i++) {
        if (ls->entries[i]->current)
            ls->entries[live++] = ls->entries[i];
        else
            feox_entry_free(ls->entries[i]);
    }
    ls->count = live;
    if (live == 0)
        return FEOX_OK;
    sort_item *items = feox_mem_alloc(live * sizeof *items);
    feox_err err = FEOX_ERR_NOMEM;
    if (items) {
        for (size_t i = 0; i < live; i++)
            items[i] = (sort_item){head_of(ls->entries[i]), ls->entries[i]};
        err = sort_items(items, live);
    }
    if (!err) {
        for (size_t i = 0; i < live; i++)
            ls->entries[i] = items[i].e;
        err = feox_ordered_index_build(s->ordered, ls->entries, live);
    }
    feox_mem_free(items);
    return err ? feox_fail(err, "allocation failed") : FEOX_OK;
}

feox_err feox_store_first_load(feox_store *s, feox_storage *st)
{
    load_state ls = {.store = s};
    feox_storage_sink sink = {.ctx = &ls, .put = load_put, .del = load_del};
    feox_err err = st->methods->load(st, NULL, &sink);
    if (!err)
        err = finish_load(&ls);
    else
        for (size_t i = 0; i < ls.count; i++) /* dead ones; live ones go with the hash index */
            if (!ls.entries[i]->current)
                feox_entry_free(ls.entries[i]);
    feox_memory_reserve(s, ls.memory, false);
    feox_mem_free(ls.entries);
    return err;
}
