/*
 * value_eviction.c — larger than memory: in persistent mode with max_memory, a write that would go
 * over the budget first makes room by dropping the resident bytes of versions that are already in
 * the store file. Such a version is replaced by a cold copy (same timestamp, expiry, tag and
 * location, no value bytes); reads bring the bytes back through the backend's value cache. Keys,
 * index and per-record metadata always stay resident.
 *
 * A clock hand walks the key space (the ordered index) round-robin from where the previous
 * eviction stopped, so every resident value gets its turn. The writer that needs room holds its own
 * key's shard lock; other shards are only try-locked (a busy shard is skipped), so eviction never
 * waits on a lock while holding one and cannot deadlock. One thread evicts at a time.
 */
#include <string.h>

#include "base/alloc.h"
#include "store/store_internal.h"

#define EVICT_BATCH 64
/* Values this small cost little next to their record header: not worth a disk read later. */
#define EVICT_MIN_VALUE_BYTES 32

typedef struct evict_batch {
    uint8_t *keys;
    size_t used, cap;
    size_t offsets[EVICT_BATCH];
    uint32_t lens[EVICT_BATCH];
    size_t count;
} evict_batch;

/* Copy up to EVICT_BATCH keys after the hand into the batch; false at the end of the index. */
static bool collect_keys(feox_store *s, evict_batch *b)
{
    feox_entry *entries[EVICT_BATCH];
    b->count = 0;
    b->used = 0;
    feox_epoch_enter();
    size_t n = s->evict_hand_len ? feox_ordered_index_scan(s->ordered, FEOX_SCAN_GT, s->evict_hand,
                                                           s->evict_hand_len, entries, EVICT_BATCH)
                                 : feox_ordered_index_scan(s->ordered, FEOX_SCAN_FIRST, NULL, 0,
                                                           entries, EVICT_BATCH);
    for (size_t i = 0; i < n; i++) {
        uint32_t len = entries[i]->key_len;
        if (!b->keys || b->used + len > b->cap) {
            size_t cap = (b->cap ? b->cap : 4096);
            while (cap < b->used + len)
                cap *= 2;
            uint8_t *keys = feox_mem_realloc(b->keys, cap);
            if (!keys)
                break;
            b->keys = keys;
            b->cap = cap;
        }
        memcpy(b->keys + b->used, entries[i]->key, len);
        b->offsets[b->count] = b->used;
        b->lens[b->count++] = len;
        b->used += len;
    }
    feox_epoch_exit();
    return n == EVICT_BATCH;
}

/* Make key's current version cold if it is resident and in the file; returns bytes freed. The
 * entry the caller is writing is left alone: its version is about to be replaced (and retired by
 * the writer), and the room it frees is already counted in the writer's reservation. */
static uint64_t evict_one(feox_store *s, const void *key, uint32_t key_len, feox_shard *held,
                          const feox_entry *writing)
{
    uint64_t hash = feox_hash_key(&s->hash, key, key_len);
    feox_shard *shard = feox_hash_shard(&s->hash, hash);
    if (shard != held && pthread_mutex_trylock(&shard->lock) != 0)
        return 0;
    uint64_t freed = 0;
    feox_entry *e = feox_hash_lookup(&s->hash, hash, key, key_len);
    if (e == writing)
        e = NULL;
    /* Relaxed loads: every writer of current and location holds this shard's lock. */
    feox_record *r = e ? atomic_load_explicit(&e->current, memory_order_relaxed) : NULL;
    uint64_t location = r ? feox_record_location(r) : 0;
    if (r && !(r->flags & FEOX_RECORD_COLD) && location != 0 &&
        r->value_len >= EVICT_MIN_VALUE_BYTES) {
        feox_record *cold =
            feox_record_new(NULL, r->value_len, r->tag, r->ts_ns, feox_record_expires_at(r),
                            FEOX_RECORD_COLD | s->location_flag);
        if (cold) {
            feox_record_set_location(cold, location);
            freed = feox_record_footprint(r->value_len, r->flags) -
                    feox_record_footprint(r->value_len, cold->flags);
            /* Same version, fewer bytes: readers see either copy (release publish). */
            atomic_store_explicit(&e->current, cold, memory_order_release);
            feox_record_retire(r);
            feox_memory_reserve(s, -(int64_t)freed, false);
        }
    }
    if (shard != held)
        pthread_mutex_unlock(&shard->lock);
    return freed;
}

uint64_t feox_evict_values(feox_store *s, uint64_t wanted, feox_shard *held,
                           const feox_entry *writing)
{
    if (!s->storage || !wanted)
        return 0;
    pthread_mutex_lock(&s->evict_lock);
    evict_batch batch = {0};
    uint64_t freed = 0;
    bool wrapped = false;
    while (freed < wanted) {
        bool more = collect_keys(s, &batch);
        for (size_t i = 0; i < batch.count && freed < wanted; i++) {
            freed += evict_one(s, batch.keys + batch.offsets[i], batch.lens[i], held, writing);
            /* Advance the hand past this key. */
            if (batch.lens[i] > s->evict_hand_cap) {
                uint8_t *hand = feox_mem_realloc(s->evict_hand, batch.lens[i]);
                if (!hand)
                    break;
                s->evict_hand = hand;
                s->evict_hand_cap = batch.lens[i];
            }
            memcpy(s->evict_hand, batch.keys + batch.offsets[i], batch.lens[i]);
            s->evict_hand_len = batch.lens[i];
        }
        if (!more) {
            /* End of the key space: start over from the first key, at most once per call. */
            s->evict_hand_len = 0;
            if (wrapped)
                break;
            wrapped = true;
        }
    }
    feox_mem_free(batch.keys);
    pthread_mutex_unlock(&s->evict_lock);
    return freed;
}
