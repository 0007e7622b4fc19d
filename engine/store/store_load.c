/*
 * store_load.c — loading in bulk: a store's first load from its backend (feox_open), as one
 * pass, and (at the end) a run of versions a backend sends in key order to a live store
 * (feox_refresh's put_ordered), applied in batches.
 *
 * The store is not yet handed out while it loads (create_store returns it only afterwards; no
 * maintenance thread runs yet), so this thread is its only user. The load therefore:
 *   - finds a key's earlier record with a private table of (32 hash bits, item) pairs, which
 *     compares stored hash bits and reads an entry only when they are equal, instead of probing
 *     the hash index (every probe of ck_hs reads an entry); the table is sized from the file's
 *     size and grows from its own hash bits;
 *   - makes each put's version and an entry for its key when the record comes (together, one
 *     allocation, for values up to EMBED_MAX_VALUE bytes, and not with max_memory) and
 *     applies the put LOOKAHEAD records later, its table slot prefetched meanwhile: the table is
 *     larger than the cache, so a slot read on the spot is a miss per record (a delete or an
 *     expired put first applies what is queued, so file order holds; the entry of a key seen
 *     before goes unused);
 *   - frees a version a later record replaces at once (nobody can hold it), keeps the entry of
 *     a key a later record deletes (or whose put has expired) as a tombstone with current NULL,
 *     which a later put of the key reuses, and frees the tombstones at the end;
 *   - when the backend is done, knows the live key count: sizes the hash index for it once
 *     (no growth) and fills it a shard at a time (the entries grouped by shard in the key
 *     table's memory, which is already touched), without comparisons (every key is unique),
 *     sorts the live keys
 *     (radix sort on their first 8 bytes, runs of equal heads by comparison) and builds the
 *     ordered index from them in one pass (feox_ordered_index_build), instead of a million
 *     random inserts; with PARALLEL_MIN_KEYS keys or more, a helper thread sorts and builds the
 *     ordered index while this one fills the hash index (both only read the entries, which
 *     are complete before the helper starts; the helper is joined before the store is used);
 *   - takes those blocks from slabs once the store's bulk loads have made FEOX_SLAB_MIN_BLOCKS
 *     (base/slab.h: 2 MiB mappings with huge pages asked for, bump-allocated, ~100 page faults
 *     for 1M keys instead of ~47,000; a small store's stay with malloc), reuses at once the
 *     block of an entry it drops (a replaced key, a tombstone), and parks its last slab in the
 *     store for the next bulk load (a refresh's run) to go on filling;
 *   - adds the accounted memory once at the end, reads the clock only for records with an
 *     expiry, and pushes a TTL heap item only for those.
 * A refresh (and the full reload it may ask for) runs on a live store: what it sends goes
 * through store_storage.c's locked sink, or, for versions in key order, through the run below.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/alloc.h"
#include "base/thread.h"
#include "storage/log/log_snapshot.h"
#include "storage/log/log_storage.h"
#include "store/store_internal.h"

#define SLOT_EMPTY UINT32_MAX

typedef struct load_slot {
    uint32_t hash; /* the key hash's top 32 bits: the slot position and the first comparison */
    uint32_t item; /* index into load_state.entries, SLOT_EMPTY if free */
} load_slot;

typedef struct load_state {
    feox_store *store;
    feox_entry **entries; /* every key seen, in first-seen order (current NULL: not live) */
    uint64_t *heads;      /* their keys' first 8 bytes (head_of), read when the key was hot */
    size_t count, cap;
    load_slot *slots; /* open addressing, linear probing, at most 3/4 full */
    size_t slot_mask;
    int64_t memory;        /* accounted bytes, added to the store at the end */
    uint64_t live_kv_bytes; /* key + value bytes of the current versions (host.loaded_totals) */
    feox_slab_filler slab; /* where new keys' blocks come from (parked in the store at the end) */
    uint64_t made;         /* blocks made so far (slabs from FEOX_SLAB_MIN_BLOCKS on) */
    /* Puts wait here for LOOKAHEAD more records, their table slot prefetched, and are applied
     * in file order (drain_queue). */
    struct queued_put {
        feox_entry *e; /* the key's entry if it is new (it may share v's allocation) */
        feox_record *v;
    } queue[16];
    unsigned queue_head, queued;
} load_state;

#define LOOKAHEAD 16

/* The first 8 key bytes, big-endian, zero-padded: integer order = memcmp order. */
static uint64_t head_of(const feox_entry *e)
{
    uint8_t bytes[8] = {0};
    memcpy(bytes, e->key, e->key_len < 8 ? e->key_len : 8);
    uint64_t w;
    memcpy(&w, bytes, 8);
    return __builtin_bswap64(w);
}

static feox_err check_record(const feox_storage_record *rec)
{
    if (!rec || !rec->key || rec->key_len == 0 || rec->key_len > FEOX_MAX_KEY_SIZE ||
        rec->value_len > FEOX_MAX_VALUE_SIZE)
        return feox_fail(FEOX_ERR_CORRUPT, "the backend sent a record with an invalid size");
    return FEOX_OK;
}

/* entry->current during the load: relaxed, as this thread is the only user (the store reaches
 * other threads later through pthread_create or the caller's own synchronisation, both of which
 * order these stores before any reader's loads). */
static feox_record *current_of(const feox_entry *e)
{
    return atomic_load_explicit(&e->current, memory_order_relaxed);
}

static void set_current(feox_entry *e, feox_record *r)
{
    atomic_store_explicit(&e->current, r, memory_order_relaxed);
}

/* A loaded version has a location (it comes from the backend: a word, or FEOX_RECORD_STORED set
 * with it); cold if no bytes came. */
static unsigned record_flags(const feox_store *s, const feox_storage_record *rec)
{
    return s->location_flag | (rec->value == NULL ? FEOX_RECORD_COLD : 0);
}

static int64_t version_bytes(const feox_record *r)
{
    return (int64_t)feox_record_footprint(r->value_len, r->flags);
}

/* ---- the key table ---- */

static bool slots_resize(load_state *ls, size_t size)
{
    load_slot *slots = feox_mem_alloc_large(size * sizeof *slots);
    if (!slots)
        return false;
    for (size_t i = 0; i < size; i++)
        slots[i].item = SLOT_EMPTY;
    size_t mask = size - 1;
    if (ls->slots) {
        for (size_t i = 0; i <= ls->slot_mask; i++) {
            if (ls->slots[i].item == SLOT_EMPTY)
                continue;
            size_t at = ls->slots[i].hash & mask;
            while (slots[at].item != SLOT_EMPTY)
                at = (at + 1) & mask;
            slots[at] = ls->slots[i];
        }
        feox_mem_free_large(ls->slots);
    }
    ls->slots = slots;
    ls->slot_mask = mask;
    return true;
}

/* The slot of key: its item, or the free slot where it goes. */
static load_slot *slot_of(load_state *ls, uint64_t hash, const void *key, uint32_t key_len)
{
    uint32_t top = (uint32_t)(hash >> 32);
    size_t at = top & ls->slot_mask;
    for (;;) {
        load_slot *slot = &ls->slots[at];
        if (slot->item == SLOT_EMPTY)
            return slot;
        if (slot->hash == top) {
            const feox_entry *e = ls->entries[slot->item];
            if (e->key_len == key_len && memcmp(e->key, key, key_len) == 0)
                return slot;
        }
        at = (at + 1) & ls->slot_mask;
    }
}

/* The slot of key, with room for one more key (NULL: no memory for the table). */
static load_slot *claim_slot(load_state *ls, uint64_t hash, const void *key, uint32_t key_len)
{
    if (ls->count + 1 > (ls->slot_mask + 1) / 4 * 3) {
        if (ls->count >= SLOT_EMPTY - 1 || !slots_resize(ls, (ls->slot_mask + 1) * 2))
            return NULL;
    }
    if (ls->count == ls->cap) {
        size_t cap = ls->cap * 2;
        feox_entry **grown = feox_mem_alloc_large(cap * sizeof *grown);
        uint64_t *grown_heads = feox_mem_alloc_large(cap * sizeof *grown_heads);
        if (!grown || !grown_heads) {
            feox_mem_free_large(grown);
            feox_mem_free_large(grown_heads);
            return NULL;
        }
        memcpy(grown, ls->entries, ls->count * sizeof *grown);
        memcpy(grown_heads, ls->heads, ls->count * sizeof *grown_heads);
        feox_mem_free_large(ls->entries);
        feox_mem_free_large(ls->heads);
        ls->entries = grown;
        ls->heads = grown_heads;
        ls->cap = cap;
    }
    return slot_of(ls, hash, key, key_len);
}

/* Remember a new key's entry in its (free) slot. */
static void add_entry(load_state *ls, load_slot *slot, feox_entry *e)
{
    ls->memory += (int64_t)(feox_entry_footprint(e->key_len) + FEOX_INDEX_BYTES_PER_KEY);
    slot->hash = (uint32_t)(feox_entry_hash(e) >> 32);
    slot->item = (uint32_t)ls->count;
    ls->heads[ls->count] = head_of(e);
    ls->entries[ls->count++] = e;
}

/* ---- the sink ---- */

/* The key has no live version any more (its entry stays, a tombstone). */
static void end_version(load_state *ls, feox_entry *e)
{
    feox_record *old = current_of(e);
    if (!old)
        return;
    if (feox_record_expires_at(old)) {
        feox_shard *shard = feox_hash_shard(&ls->store->hash, feox_entry_hash(e));
        feox_shard_count_add(&shard->ttl_keys, -1);
    }
    if (old != feox_entry_shared_version(e)) /* else allocated, and counted, until e goes */
        ls->memory -= version_bytes(old);
    ls->live_kv_bytes -= e->key_len + old->value_len;
    set_current(e, NULL);
    feox_record_unref(old);
}

/* A new key's first version shares one allocation with its entry up to this many value bytes.
 * A write that replaces that version on a live store gives the key a standalone entry and
 * retires the shared block (store_apply.c), so nothing stays behind an overwritten key; during
 * the load a later version of the key replaces its whole entry (drop_owner). Measured at 500K
 * records: sharing up to 256 bytes made open 10-15% and close 35% faster (one allocation and
 * one free per key instead of two). Not with max_memory, whose eviction must free a value's
 * bytes (and swaps a version, not an entry). */
#define EMBED_MAX_VALUE 256
_Static_assert((FEOX_RECORD_HEADER + EMBED_MAX_VALUE + 7 + 16) / 8 <= FEOX_ENTRY_MAX_EMBED_UNITS,
               "an entry reaches back to a shared first version");

/* Free an entry the load replaces, with its version and the first version it shares its
 * allocation with (counted until now). */
static void drop_owner(load_state *ls, feox_entry *e)
{
    const feox_record *shared = feox_entry_shared_version(e);
    if (shared)
        ls->memory -= version_bytes(shared);
    end_version(ls, e); /* subtracts the current version unless it is the shared one */
    feox_entry_free_to(e, &ls->slab); /* a slab block nobody else saw is used again */
}

/* Apply a queued put: its entry becomes the key's. If the key has one already, the new entry
 * takes its place and the old one goes with its versions: a first version it shares its
 * allocation with would otherwise stay allocated for as long as the key lives. On failure the put
 * is freed. */
static feox_err apply_queued(load_state *ls, feox_entry *e, feox_record *v)
{
    load_slot *slot = claim_slot(ls, feox_entry_hash(e), e->key, e->key_len);
    if (!slot) {
        feox_record_unref(v);
        feox_entry_free(e);
        return feox_fail(FEOX_ERR_NOMEM, "allocation failed");
    }
    if (slot->item == SLOT_EMPTY) {
        add_entry(ls, slot, e);
    } else { /* same key, same entry footprint: the count of entries stays */
        drop_owner(ls, ls->entries[slot->item]);
        ls->entries[slot->item] = e;
    }
    ls->memory += version_bytes(v);
    ls->live_kv_bytes += e->key_len + v->value_len;
    set_current(e, v);
    return FEOX_OK;
}

/* Apply every queued put, oldest first. */
static feox_err drain_queue(load_state *ls)
{
    feox_err err = FEOX_OK;
    while (ls->queued) {
        struct queued_put q = ls->queue[ls->queue_head];
        ls->queue_head = (ls->queue_head + 1) % LOOKAHEAD;
        ls->queued--;
        if (err) { /* after a failure the rest is only freed */
            feox_record_unref(q.v);
            feox_entry_free(q.e);
        } else {
            err = apply_queued(ls, q.e, q.v);
        }
    }
    return err;
}

/* The put's TTL heap item and count (the heap holds items, not entries: any order is fine). */
static feox_err track_expiry(load_state *ls, uint64_t hash, const feox_storage_record *rec)
{
    if (!rec->expires_at_ns)
        return FEOX_OK;
    feox_shard *shard = feox_hash_shard(&ls->store->hash, hash);
    feox_err err =
        feox_ttl_heap_push(&shard->ttl, rec->expires_at_ns, rec->ts_ns, rec->key, rec->key_len);
    if (err)
        return feox_fail(err, "allocation failed");
    feox_shard_count_add(&shard->ttl_keys, 1);
    return FEOX_OK;
}

/* A new version and an entry for its key (store_internal.h): one block of the load's slab if
 * the value is small enough to share it (and max_memory, which evicts values, is off), else two. */
feox_entry *feox_loaded_put_new(const feox_store *s, feox_slab_filler *slab, uint64_t hash,
                                const feox_storage_record *rec, feox_record **v)
{
    if (!s->cfg.max_memory && rec->value_len <= EMBED_MAX_VALUE)
        return feox_entry_new_with_record(slab, rec->key, rec->key_len, hash, rec->value,
                                          rec->value_len, rec->tag, rec->ts_ns, rec->expires_at_ns,
                                          record_flags(s, rec), v);
    feox_entry *e = feox_entry_new(rec->key, rec->key_len, hash);
    *v = e ? feox_record_new(rec->value, rec->value_len, rec->tag, rec->ts_ns, rec->expires_at_ns,
                             record_flags(s, rec))
           : NULL;
    if (!*v && e) {
        feox_entry_free(e);
        e = NULL;
    }
    return e;
}

/* The filler to take a bulk load's next block from: slab once the store's bulk loads have made
 * FEOX_SLAB_MIN_BLOCKS blocks, counting the `made` of the load under way; NULL (malloc) before. */
static feox_slab_filler *slab_for(const feox_store *s, feox_slab_filler *slab, uint64_t *made)
{
    (*made)++;
    if (slab->slab)
        return slab;
    uint64_t before = atomic_load_explicit(&s->bulk_blocks, memory_order_relaxed);
    return before + *made > FEOX_SLAB_MIN_BLOCKS ? slab : NULL;
}

/* A put: its version and entry made now, its table slot prefetched, applied LOOKAHEAD records
 * later, when that slot is in cache (the entry goes unused if the key has one already). */
static feox_err queue_put(load_state *ls, uint64_t hash, const feox_storage_record *rec)
{
    feox_record *v;
    feox_entry *e =
        feox_loaded_put_new(ls->store, slab_for(ls->store, &ls->slab, &ls->made), hash, rec, &v);
    if (!e)
        return feox_fail(FEOX_ERR_NOMEM, "allocation failed");
    feox_record_set_location(v, rec->location);
    feox_err err = track_expiry(ls, hash, rec);
    if (err) {
        feox_record_unref(v);
        feox_entry_free(e);
        return err;
    }
    __builtin_prefetch(&ls->slots[(uint32_t)(hash >> 32) & ls->slot_mask]);
    if (ls->queued == LOOKAHEAD) {
        struct queued_put q = ls->queue[ls->queue_head];
        ls->queue_head = (ls->queue_head + 1) % LOOKAHEAD;
        ls->queued--;
        err = apply_queued(ls, q.e, q.v);
        if (err) {
            feox_record_unref(v);
            feox_entry_free(e);
            return err;
        }
    }
    ls->queue[(ls->queue_head + ls->queued) % LOOKAHEAD] = (struct queued_put){e, v};
    ls->queued++;
    return FEOX_OK;
}

static feox_err load_put(void *ctx, const feox_storage_record *rec)
{
    load_state *ls = ctx;
    feox_store *s = ls->store;
    feox_err err = check_record(rec);
    if (err)
        return err;
    if (__builtin_expect(atomic_load_explicit(&s->load_cancel, memory_order_relaxed), 0))
        return feox_fail(FEOX_ERR_CLOSED, "store '%s' was closed while it loaded", s->path);
    uint64_t hash = feox_hash_key(&s->hash, rec->key, rec->key_len);
    bool expired = rec->expires_at_ns && feox_store_now(s) > rec->expires_at_ns;
    if (!expired)
        return queue_put(ls, hash, rec);
    /* An expired put ends the key, in file order with what is queued: apply that first. */
    err = drain_queue(ls);
    if (err)
        return err;
    load_slot *slot = slot_of(ls, hash, rec->key, rec->key_len); /* always a free slot */
    if (slot->item != SLOT_EMPTY)
        end_version(ls, ls->entries[slot->item]);
    return FEOX_OK;
}

static feox_err load_del(void *ctx, const void *key, uint32_t key_len, uint64_t ts_ns)
{
    load_state *ls = ctx;
    (void)ts_ns;
    if (!key || key_len == 0 || key_len > FEOX_MAX_KEY_SIZE)
        return feox_fail(FEOX_ERR_CORRUPT, "the backend sent a delete with an invalid key size");
    feox_err err = drain_queue(ls);
    if (err)
        return err;
    uint64_t hash = feox_hash_key(&ls->store->hash, key, key_len);
    load_slot *slot = slot_of(ls, hash, key, key_len); /* the table always has a free slot */
    if (slot->item != SLOT_EMPTY) /* only a key seen before has a version to end */
        end_version(ls, ls->entries[slot->item]);
    return FEOX_OK;
}

/* ---- sorting the loaded keys ---- */

typedef struct sort_item {
    uint64_t head; /* head_of the entry */
    feox_entry *e;
} sort_item;

static int compare_items(const void *a, const void *b)
{
    const feox_entry *x = ((const sort_item *)a)->e, *y = ((const sort_item *)b)->e;
    return feox_key_compare(x->key, x->key_len, y->key, y->key_len);
}

/* LSD radix sort on head, 8 bits a pass (passes where every item has the same byte skipped),
 * then each run of equal heads sorted by the whole key. */
static feox_err sort_items(sort_item *items, size_t n)
{
    sort_item *tmp = feox_mem_alloc_large(n * sizeof *tmp);
    size_t(*counts)[256] = feox_mem_calloc(8, sizeof *counts);
    if (!tmp || !counts) {
        feox_mem_free_large(tmp);
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
    feox_mem_free_large(tmp);
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

/* ---- the end of the load ---- */

/* Free every entry of the load, live or not (a failed load: the indexes hold none of them). */
static void drop_entries(load_state *ls)
{
    for (size_t i = 0; i < ls->count; i++) {
        feox_record *r = current_of(ls->entries[i]);
        if (r)
            feox_record_unref(r);
        feox_entry_free(ls->entries[i]);
    }
    ls->count = 0;
}

#define PREFETCH_AHEAD 8

/* The entries grouped by hash shard (a counting sort: one pass to count, one to place, no
 * scratch array), into by_shard, which has room for live pointers. */
static feox_err group_by_shard(const feox_store *s, feox_entry **entries, size_t live,
                               feox_entry **by_shard)
{
    unsigned shards = feox_hash_shard_count(&s->hash);
    size_t *at = feox_mem_calloc(shards, sizeof *at);
    if (!at)
        return FEOX_ERR_NOMEM;
    for (size_t i = 0; i < live; i++)
        at[feox_hash_shard(&s->hash, feox_entry_hash(entries[i])) - s->hash.shards]++;
    size_t sum = 0;
    for (unsigned i = 0; i < shards; i++) {
        size_t n = at[i];
        at[i] = sum;
        sum += n;
    }
    for (size_t i = 0; i < live; i++)
        by_shard[at[feox_hash_shard(&s->hash, feox_entry_hash(entries[i])) - s->hash.shards]++] =
            entries[i];
    feox_mem_free(at);
    return FEOX_OK;
}

/* Fill the hash index a shard at a time: each shard's map (1/64 of the index, a few hundred KiB
 * at 1M keys) stays in cache while it fills. The next entries are prefetched (their addresses
 * are random in that order). */
static feox_err fill_hash(feox_store *s, feox_entry **by_shard, size_t live, size_t *inserted)
{
    for (size_t i = 0; i < live; i++) {
        if (i + PREFETCH_AHEAD < live)
            __builtin_prefetch(by_shard[i + PREFETCH_AHEAD]);
        feox_entry *e = by_shard[i];
        if (feox_hash_insert(&s->hash, e) != FEOX_OK)
            return FEOX_ERR_NOMEM;
        feox_shard_count_add(&feox_hash_shard(&s->hash, feox_entry_hash(e))->keys, 1);
        (*inserted)++;
    }
    return FEOX_OK;
}

/* Loads of at least this many keys build the ordered index on a second thread while this one
 * fills the hash index (the two only read the entries). */
#define PARALLEL_MIN_KEYS 8192

typedef struct ordered_job {
    feox_store *store;
    feox_entry *const *entries; /* the live entries (only read: the other thread reads them too) */
    const uint64_t *heads;      /* and their heads */
    sort_item *by_key;          /* room for live items; the entries in key order at the end */
    size_t live;
    feox_err err;
} ordered_job;

/* The live entries sorted by key and the ordered index built from them. The sorted pointers
 * are packed into the front of by_key (pointer i over the first half of item i / 2, already
 * read), so the entry list stays unchanged for the thread that fills the hash index meanwhile. */
static void *build_ordered(void *arg)
{
    ordered_job *job = arg;
    for (size_t i = 0; i < job->live; i++)
        job->by_key[i] = (sort_item){job->heads[i], job->entries[i]};
    job->err = sort_items(job->by_key, job->live);
    if (job->err)
        return NULL;
    char *packed = (char *)job->by_key;
    for (size_t i = 0; i < job->live; i++) {
        feox_entry *e = job->by_key[i].e;
        memcpy(packed + i * sizeof e, &e, sizeof e);
    }
    job->err =
        feox_ordered_index_build(job->store->ordered, (feox_entry *const *)packed, job->live);
    return NULL;
}

/* Keep the live entries (tombstones freed), fill the hash index, build the ordered index. Both
 * sort orders are taken from the entries in creation order, which is their address order; the
 * ordered index's (heads read, sort, build) starts at once on a second thread for a large load,
 * while this one groups the entries by shard and fills the hash index, so the two take about as
 * long. On failure, the entries the hash index holds stay with the store (which is then
 * destroyed: the ordered index is freed without reading its entries, store.c) and the others are
 * freed here. */
static feox_err finish_load(load_state *ls)
{
    feox_store *s = ls->store;
    size_t live = 0;
    for (size_t i = 0; i < ls->count; i++) {
        feox_entry *e = ls->entries[i];
        if (current_of(e)) {
            ls->heads[live] = ls->heads[i];
            ls->entries[live++] = e;
        } else {
            ls->memory -= (int64_t)(feox_entry_footprint(e->key_len) + FEOX_INDEX_BYTES_PER_KEY);
            drop_owner(ls, e);
        }
    }
    ls->count = live;
    s->loaded_records = live;
    s->loaded_key_value_bytes = ls->live_kv_bytes;
    if (live == 0)
        return FEOX_OK;
    uint64_t want = live > s->cfg.initial_capacity ? live : s->cfg.initial_capacity;
    sort_item *by_key = feox_mem_alloc_large(live * sizeof *by_key);
    if (!by_key) {
        drop_entries(ls);
        return feox_fail(FEOX_ERR_NOMEM, "allocation failed");
    }
    ordered_job job = {
        .store = s, .entries = ls->entries, .heads = ls->heads, .by_key = by_key, .live = live};
    pthread_t helper;
    bool parallel =
        live >= PARALLEL_MIN_KEYS && feox_thread_start(&helper, build_ordered, &job) == 0;
    if (!parallel)
        build_ordered(&job);
    /* The key table is done with, and already in memory: its slots (at least 4/3 as many as
     * keys, 8 bytes each) hold the entries grouped by shard. */
    _Static_assert(sizeof(load_slot) == sizeof(feox_entry *), "a slot holds an entry pointer");
    feox_entry **by_shard = (feox_entry **)ls->slots;
    feox_err err = feox_hash_index_reserve(&s->hash, want);
    if (!err)
        err = group_by_shard(s, ls->entries, live, by_shard);
    size_t inserted = 0;
    if (!err)
        err = fill_hash(s, by_shard, live, &inserted);
    else
        by_shard = ls->entries; /* none inserted: the list to free below */
    if (parallel)
        pthread_join(helper, NULL);
    if (!err)
        err = job.err; /* every entry is in the hash index: they go with the store */
    else {
        size_t left = 0;
        for (size_t i = inserted; i < live; i++)
            ls->entries[left++] = by_shard[i];
        ls->count = left;
        drop_entries(ls);
    }
    feox_mem_free_large(by_key);
    return err ? feox_fail(err, "allocation failed") : FEOX_OK;
}

/* Slots for the key table at the start: room, at 3/4 full, for the store file's size over 128
 * bytes a record (a guess that errs low for small records; the table doubles when it is 3/4
 * full), within [8192, 2^22] (at most 32 MiB, freed at the end of the load). Each slot is a page
 * fault's worth of memory to touch (~10 us per 4 KiB page on a VM): a table twice this size cost
 * 4096 more faults at 1M records. Only for the log backend, whose file is s->path. */
static size_t initial_slots(const feox_store *s)
{
    size_t slots = 8192;
    struct stat st;
    if (s->cfg.storage || !s->path || stat(s->path, &st) != 0 || st.st_size <= 0)
        return slots;
    uint64_t guess = (uint64_t)st.st_size / 128;
    while (slots < ((size_t)1 << 22) && slots / 4 * 3 < guess)
        slots *= 2;
    return slots;
}

static feox_err load_now(feox_store *s, feox_storage *st)
{
    /* The entry list is as large as the key table holds at 3/4 full (the same guess): with huge
     * pages (feox_mem_alloc_large), not ~2,000 page faults for 8 MB at 1M keys. */
    size_t slots = initial_slots(s);
    load_state ls = {.store = s, .cap = slots / 4 * 3};
    ls.entries = feox_mem_alloc_large(ls.cap * sizeof *ls.entries);
    ls.heads = feox_mem_alloc_large(ls.cap * sizeof *ls.heads);
    if (!ls.entries || !ls.heads || !slots_resize(&ls, slots)) {
        feox_mem_free_large(ls.entries);
        feox_mem_free_large(ls.heads);
        return feox_fail(FEOX_ERR_NOMEM, "allocation failed");
    }
    feox_storage_sink sink = {.ctx = &ls, .put = load_put, .del = load_del};
    feox_err err = st->methods->load(st, NULL, &sink);
    if (!err)
        err = drain_queue(&ls);
    else
        (void)drain_queue(&ls); /* applied, so the cleanup below finds them */
    if (!err)
        err = finish_load(&ls);
    else
        drop_entries(&ls);
    feox_mem_free_large(ls.slots);
    /* the store has no parked slab yet: the next bulk load (a refresh) goes on with this one */
    atomic_store_explicit(&s->parked_slab, feox_slab_park(&ls.slab), memory_order_release);
    atomic_fetch_add_explicit(&s->bulk_blocks, ls.made, memory_order_relaxed);
    feox_memory_reserve(s, ls.memory, false);
    feox_mem_free_large(ls.entries);
    feox_mem_free_large(ls.heads);
    return err;
}

/* ---- the first load, on a background thread when an index snapshot answers meanwhile ----
 *
 * A store file that ends in an index snapshot (storage/log/log_snapshot.h) opens at once: the
 * load below runs on a thread of its own, and until it is over
 *   - a point read (store_read.c) is answered from the snapshot (feox_store_snapshot_find):
 *     nothing can have changed since it was written, since every write waits for the load;
 *   - every other call waits for it (feox_store_loaded: writes, cursors, len, stats, check,
 *     flush, compaction; the TTL sweeper and eviction, which only writes trigger, too), and
 *     after a failed load gets its error, naming the store;
 *   - the backend's threads get no walk of the indexes (indexes_complete is set at the end);
 *   - close cancels it (the sink fails at its next record) and joins it; the snapshot then stays
 *     in the file for the next open.
 * At the end, with every point read of the snapshot finished (snapshot_lock write-held), the
 * snapshot is freed and, if the load succeeded, cut off the file; then load_state is set.
 * A fork() child never waits for or touches it: every call of an inherited store fails first. */

void (*feox_background_load_hook)(feox_store *s);
void (*feox_load_wait_hook)(feox_store *s);

/* The load's end: no point read uses the snapshot from here on. */
static feox_err end_snapshot(feox_store *s, feox_err err)
{
    pthread_rwlock_wrlock(&s->snapshot_lock);
    s->snapshot_active = false;
    pthread_rwlock_unlock(&s->snapshot_lock);
    feox_err cut = feox_log_snapshot_release(s->storage, err == FEOX_OK);
    if (!err && cut)
        err = cut;
    if (!err) /* the backend's threads may walk the indexes from now on */
        atomic_store_explicit(&s->indexes_complete, true, memory_order_release);
    return err;
}

static void *background_load(void *arg)
{
    feox_store *s = arg;
    if (feox_background_load_hook)
        feox_background_load_hook(s);
    feox_clear_error_detail();
    feox_err err = load_now(s, s->storage);
    err = end_snapshot(s, err);
    pthread_mutex_lock(&s->load_lock);
    if (err) {
        s->load_err = err;
        snprintf(s->load_detail, sizeof s->load_detail, "%s", feox_error_detail());
    }
    atomic_store_explicit(&s->load_state, err ? FEOX_LOAD_FAILED : FEOX_LOAD_DONE,
                          memory_order_release);
    pthread_cond_broadcast(&s->load_done);
    pthread_mutex_unlock(&s->load_lock);
    return NULL;
}

feox_err feox_store_first_load(feox_store *s, feox_storage *st)
{
    if (st->methods != &feox_log_storage_methods || !feox_log_snapshot_open(st)) {
        feox_err err = load_now(s, st);
        if (!err)
            atomic_store_explicit(&s->indexes_complete, true, memory_order_release);
        return err;
    }
    s->snapshot_keys = feox_log_snapshot_keys(st);
    s->snapshot_active = true;
    atomic_store_explicit(&s->load_state, FEOX_LOAD_RUNNING, memory_order_relaxed);
    /* The store is handed out only after this returns: the thread's start publishes it. */
    if (feox_thread_start(&s->load_thread, background_load, s) == 0) {
        s->load_thread_started = true;
        return FEOX_OK;
    }
    atomic_store_explicit(&s->load_state, FEOX_LOAD_DONE, memory_order_relaxed);
    return end_snapshot(s, load_now(s, st)); /* no thread: load here, as without a snapshot */
}

feox_err feox_store_wait_load(feox_store *s)
{
    if (feox_load_wait_hook &&
        atomic_load_explicit(&s->load_state, memory_order_acquire) == FEOX_LOAD_RUNNING)
        feox_load_wait_hook(s);
    pthread_mutex_lock(&s->load_lock);
    while (atomic_load_explicit(&s->load_state, memory_order_acquire) == FEOX_LOAD_RUNNING)
        pthread_cond_wait(&s->load_done, &s->load_lock);
    feox_err err = s->load_err;
    pthread_mutex_unlock(&s->load_lock);
    if (err)
        return feox_fail(err, "store '%s' could not be loaded: %s", s->path, s->load_detail);
    return FEOX_OK;
}

void feox_store_stop_load(feox_store *s)
{
    if (!s->load_thread_started)
        return;
    atomic_store_explicit(&s->load_cancel, true, memory_order_relaxed);
    if (feox_load_wait_hook &&
        atomic_load_explicit(&s->load_state, memory_order_acquire) == FEOX_LOAD_RUNNING)
        feox_load_wait_hook(s);
    pthread_join(s->load_thread, NULL);
    s->load_thread_started = false;
}

/* What the snapshot answered for one key: a fresh resident version, or none. */
typedef struct snapshot_answer {
    feox_record *version;
} snapshot_answer;

static feox_err answer_put(void *ctx, const feox_storage_record *rec)
{
    snapshot_answer *a = ctx;
    a->version =
        feox_record_new(rec->value, rec->value_len, rec->tag, rec->ts_ns, rec->expires_at_ns, 0);
    return a->version ? FEOX_OK : feox_fail(FEOX_ERR_NOMEM, "allocation failed");
}

static feox_err answer_del(void *ctx, const void *key, uint32_t key_len, uint64_t ts_ns)
{
    (void)ctx;
    (void)key;
    (void)key_len;
    (void)ts_ns;
    return FEOX_OK;
}

feox_err feox_store_snapshot_find(feox_store *s, const void *key, size_t key_len, feox_record **out,
                                  bool *served)
{
    *served = false;
    snapshot_answer a = {NULL};
    feox_storage_sink sink = {.ctx = &a, .put = answer_put, .del = answer_del};
    feox_err err = FEOX_ERR_STALE;
    pthread_rwlock_rdlock(&s->snapshot_lock);
    if (s->snapshot_active)
        err = feox_log_snapshot_find(s->storage, key, (uint32_t)key_len, &sink);
    pthread_rwlock_unlock(&s->snapshot_lock);
    if (err == FEOX_ERR_STALE) { /* over, or the snapshot cannot answer: the indexes will */
        feox_clear_error_detail();
        return feox_store_wait_load(s);
    }
    if (err)
        return err;
    feox_record *r = a.version;
    if (r && feox_record_expires_at(r) && feox_store_now(s) > feox_record_expires_at(r)) {
        feox_stat_inc(s->stats, FEOX_STAT_TTL_EXPIRED_LAZY);
        feox_record_free(r);
        r = NULL;
    }
    feox_stat_inc(s->stats, FEOX_STAT_GETS);
    if (!r)
        feox_stat_inc(s->stats, FEOX_STAT_GET_MISSES);
    atomic_fetch_add_explicit(&s->snapshot_reads, 1, memory_order_relaxed);
    /* As a version the index held: valid until the caller's section ends (retired in it), and a
     * handle (get_ref) takes its own reference. */
    feox_epoch_enter();
    if (r)
        feox_record_retire(r);
    *out = r;
    *served = true;
    return FEOX_OK;
}

/* ---- a run of versions in ascending key order, into a live store ----
 *
 * The backend sends a chunk of its records in key order (put_ordered: feox_refresh's sink). The
 * run makes each version with its entry at once (feox_loaded_put_new: one allocation for a small
 * value, as the first load) and holds up to FEOX_PUT_RUN_MAX of them; then it applies them
 * together with every shard lock held (in shard order, as feox_check), so no writer changes
 * either index meanwhile while readers go on without a lock:
 *   - a key above the ordered index's largest key is absent from both indexes (a writer links a
 *     new entry into both under its shard lock, and none runs), so it takes no hash lookup; a
 *     key at or below it is looked up, and an existing key gets the version through
 *     feox_apply_put (as the locked sink: a standalone copy, the held entry freed);
 *   - the absent keys are linked into the hash index (current NULL: absent to readers), then
 *     into the ordered index in one pass (feox_ordered_index_insert_sorted_from: one descent
 *     per leaf, the rightmost leaf for a run past the largest key; its new nodes from the run's
 *     slab once its entries come from one), then published (release store);
 *   - the memory they take is accounted once, and each expiry queued in its shard's heap.
 * With max_memory (whose eviction must free a value's bytes on its own) and for a put already
 * expired (it removes its key), the caller applies the record through the locked sink instead. */

static int entry_compare(const feox_entry *a, const feox_entry *b)
{
    return feox_key_compare(a->key, a->key_len, b->key, b->key_len);
}

static void lock_all_shards(feox_store *s)
{
    for (unsigned i = 0; i < feox_hash_shard_count(&s->hash); i++)
        pthread_mutex_lock(&s->hash.shards[i].lock);
}

static void unlock_all_shards(feox_store *s)
{
    for (unsigned i = feox_hash_shard_count(&s->hash); i-- > 0;)
        pthread_mutex_unlock(&s->hash.shards[i].lock);
}

/* The ordered index's largest entry, or NULL (every shard lock held: nobody can remove it). */
static feox_entry *largest_entry(feox_store *s)
{
    feox_entry *last = NULL;
    feox_epoch_enter();
    if (feox_ordered_index_scan(s->ordered, FEOX_SCAN_LAST, NULL, 0, &last, 1) == 0)
        last = NULL;
    feox_epoch_exit();
    return last;
}

/* A held version for a key the store already has: applied as the locked sink would, from a
 * standalone copy (the held entry, and the version sharing its allocation, are freed). */
static feox_err apply_to_existing(feox_put_run *run, feox_entry *e, feox_record *v)
{
    feox_store *s = run->store;
    feox_record *copy =
        feox_record_new((v->flags & FEOX_RECORD_COLD) ? NULL : v->value, v->value_len, v->tag,
                        v->ts_ns, feox_record_expires_at(v), v->flags);
    feox_err err = FEOX_OK;
    if (!copy) {
        err = feox_fail(FEOX_ERR_NOMEM, "allocation failed");
    } else {
        feox_record_set_location(copy, feox_record_location(v));
        uint64_t hash = feox_entry_hash(e);
        err = feox_apply_put(s, feox_hash_shard(&s->hash, hash), hash, e->key, e->key_len, copy);
    }
    feox_record_unref(v);
    feox_entry_free_to(e, &run->slab); /* never published: its block is used again */
    return err;
}

/* Link the absent keys' entries (ascending) into both indexes and publish them; on failure the
 * ones not linked are freed (or retired, if readers may have seen them). */
static feox_err link_absent(feox_store *s, feox_entry **entries, feox_record **versions, size_t n,
                            feox_slab_filler *slabs)
{
    feox_err err = FEOX_OK;
    size_t hashed = 0;
    for (; hashed < n; hashed++) {
        feox_entry *e = entries[hashed];
        const feox_record *v = versions[hashed];
        feox_shard *shard = feox_hash_shard(&s->hash, feox_entry_hash(e));
        if (feox_record_expires_at(v))
            err = feox_ttl_heap_push(&shard->ttl, feox_record_expires_at(v), v->ts_ns, e->key,
                                     e->key_len);
        if (!err)
            err = feox_hash_insert(&s->hash, e);
        if (err)
            break;
    }
    size_t ordered = 0;
    if (hashed) {
        feox_err ordered_err =
            feox_ordered_index_insert_sorted_from(s->ordered, entries, hashed, &ordered, slabs);
        if (!err)
            err = ordered_err;
    }
    int64_t memory = 0;
    for (size_t i = 0; i < ordered; i++) {
        feox_entry *e = entries[i];
        feox_record *v = versions[i];
        feox_shard *shard = feox_hash_shard(&s->hash, feox_entry_hash(e));
        /* Release: a reader that loads this pointer (acquire) sees the fully built version. */
        atomic_store_explicit(&e->current, v, memory_order_release);
        feox_shard_count_add(&shard->keys, 1);
        if (feox_record_expires_at(v))
            feox_shard_count_add(&shard->ttl_keys, 1);
        memory += (int64_t)(feox_entry_footprint(e->key_len) + FEOX_INDEX_BYTES_PER_KEY) +
                  version_bytes(v);
    }
    feox_thread_write_count += ordered;
    feox_memory_reserve(s, memory, false);
    for (size_t i = ordered; i < n; i++) {
        feox_record_unref(versions[i]);
        if (i < hashed) { /* in the hash index with current NULL: readers may hold it */
            feox_hash_remove(&s->hash, entries[i]);
            feox_entry_retire(entries[i]);
        } else {
            feox_entry_free(entries[i]);
        }
    }
    return err ? feox_fail(err, "allocation failed") : FEOX_OK;
}

feox_err feox_put_run_apply(feox_put_run *run)
{
    size_t n = run->count;
    if (n == 0)
        return FEOX_OK;
    run->count = 0;
    feox_store *s = run->store;
    lock_all_shards(s);
    const feox_entry *largest = largest_entry(s);
    bool above = largest == NULL;
    feox_err err = FEOX_OK;
    size_t absent = 0; /* the held entries of absent keys, moved to the front, still ascending */
    for (size_t i = 0; i < n; i++) {
        feox_entry *e = run->entries[i];
        feox_record *v = run->versions[i];
        bool beyond = above; /* beyond the largest key: absent from both indexes */
        if (!above) {
            int c = entry_compare(e, largest);
            beyond = c > 0;
            /* Every later key is above largest: it is not read again, as the write of its own key
             * (c == 0) may retire it (an expired put removes it;
             * a loaded entry is swapped out: store_apply.c). */
            above = c >= 0;
        }
        if (beyond || !feox_hash_lookup(&s->hash, feox_entry_hash(e), e->key, e->key_len)) {
            run->entries[absent] = e;
            run->versions[absent++] = v;
            continue;
        }
        feox_err put_err = apply_to_existing(run, e, v);
        if (!err)
            err = put_err;
    }
    /* The ordered index's new nodes come from the run's slab once its entries do. */
    feox_slab_filler *slabs = run->slab.slab ? &run->slab : NULL;
    feox_err link_err = link_absent(s, run->entries, run->versions, absent, slabs);
    unlock_all_shards(s);
    return err ? err : link_err;
}

feox_err feox_put_run_add(feox_put_run *run, const feox_storage_record *rec, bool *taken)
{
    feox_store *s = run->store;
    *taken = false;
    feox_err err = check_record(rec);
    if (err)
        return err;
    if (s->cfg.max_memory || (rec->expires_at_ns && feox_store_now(s) > rec->expires_at_ns))
        return feox_put_run_apply(run); /* the caller applies rec: in order after the run */
    if (!run->entries) {
        run->entries = feox_mem_alloc(FEOX_PUT_RUN_MAX * sizeof *run->entries);
        run->versions = feox_mem_alloc(FEOX_PUT_RUN_MAX * sizeof *run->versions);
        if (!run->entries || !run->versions) {
            feox_mem_free(run->entries);
            feox_mem_free(run->versions);
            run->entries = NULL;
            run->versions = NULL;
            return FEOX_OK; /* the caller applies rec alone */
        }
    }
    if (run->count == FEOX_PUT_RUN_MAX ||
        (run->count && feox_key_compare(rec->key, rec->key_len, run->entries[run->count - 1]->key,
                                        run->entries[run->count - 1]->key_len) <= 0)) {
        err = feox_put_run_apply(run); /* full, or out of order: the run so far first */
        if (err)
            return err;
    }
    uint64_t hash = feox_hash_key(&s->hash, rec->key, rec->key_len);
    if (!run->slab_taken) { /* go on filling the slab the last bulk load parked, if any */
        feox_slab_resume(&run->slab,
                         atomic_exchange_explicit(&s->parked_slab, NULL, memory_order_acquire));
        run->slab_taken = true;
    }
    feox_record *v;
    feox_entry *e = feox_loaded_put_new(s, slab_for(s, &run->slab, &run->made), hash, rec, &v);
    if (!e)
        return feox_fail(FEOX_ERR_NOMEM, "allocation failed");
    feox_record_set_location(v, rec->location);
    run->entries[run->count] = e;
    run->versions[run->count++] = v;
    *taken = true;
    return FEOX_OK;
}

feox_err feox_put_run_finish(feox_put_run *run)
{
    feox_err err = feox_put_run_apply(run);
    feox_mem_free(run->entries);
    feox_mem_free(run->versions);
    run->entries = NULL;
    run->versions = NULL;
    atomic_fetch_add_explicit(&run->store->bulk_blocks, run->made, memory_order_relaxed);
    run->made = 0;
    if (run->slab_taken) { /* park the slab for the next run (or seal it: one is parked) */
        feox_slab *mine = feox_slab_park(&run->slab);
        feox_slab *none = NULL;
        if (!atomic_compare_exchange_strong_explicit(&run->store->parked_slab, &none, mine,
                                                     memory_order_acq_rel, memory_order_relaxed))
            feox_slab_seal_parked(mine);
        run->slab_taken = false;
    }
    return err;
}

void feox_put_run_expect(feox_put_run *run, uint64_t more)
{
    (void)feox_hash_index_expect(&run->store->hash, more); /* no memory: they grow as before */
}
