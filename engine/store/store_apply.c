/*
 * store_apply.c — changing the indexes: publishing a new version of a key (with its backend
 * write), removing a key's entry (with its backend erase), applying what a backend sends (load,
 * refresh, find), and keeping each shard's TTL heap in step with the versions. Every function
 * runs with the key's shard lock held; these are the only writers of entry->current besides
 * value eviction (which swaps a version for its cold copy) and relocation (which moves a
 * version's location).
 *
 * Publishing follows these steps (store_write.c decides step 1):
 *   2. reserve memory (max_memory), create the entry if the key is new, queue the expiry;
 *   3. link a new entry into both indexes with current = NULL (readers treat it as absent);
 *   4. write the version to the backend (with one) — an error here undoes steps 2-3;
 *   5. publish: store-release entry->current = new version, retire the old version. If the old
 *      version is a loaded key's first one, sharing its entry's allocation, a standalone entry
 *      showing that same version first takes the entry's place in both indexes (invisible to
 *      readers) and the shared one is retired; the new version is published in the standalone
 *      one (record.h says what a reader still holding the retired entry sees).
 * So a failure at any step leaves the store as it was, and a reader sees either the old version
 * or the new one, never a half-built one.
 * Orders: entry->current and record->location are read relaxed here, since every writer of
 * them holds the key's shard lock, as the caller does; the lock orders those accesses. Only the
 * publish is a release store (lock-free readers pair with it: feox_entry_live).
 */
#include <string.h>

#include "store/store_internal.h"

/* Prune a shard's heap when stale items exceed this factor of its keys with a TTL. */
#define TTL_PRUNE_FACTOR 2
#define TTL_PRUNE_SLACK 64

/* Changes published by this thread; a cursor refreshes its batch when it sees this move, so a
 * thread always reads its own writes (cursor.c). */
_Thread_local uint64_t feox_thread_write_count;

/* A TTL heap item names (key, expires_at, ts) of the version that carried the expiry; it is
 * current while the key's version still has that expiry and timestamp. */
feox_entry *feox_ttl_item_owner(feox_store *s, const feox_ttl_item *item)
{
    uint64_t hash = feox_hash_key(&s->hash, item->key, item->key_len);
    feox_entry *e = feox_hash_lookup(&s->hash, hash, item->key, item->key_len);
    if (!e)
        return NULL;
    const feox_record *r = atomic_load_explicit(&e->current, memory_order_relaxed);
    if (!r || feox_record_expires_at(r) != item->expires_at_ns || r->ts_ns != item->ts_ns)
        return NULL;
    return e;
}

static bool item_is_current(void *ctx, const feox_ttl_item *item)
{
    return feox_ttl_item_owner(ctx, item) != NULL;
}

/* Queue the expiry of a new version in its shard's heap. */
static feox_err ttl_track(feox_store *s, feox_shard *shard, const feox_entry *e,
                          const feox_record *new_version)
{
    if (!feox_record_expires_at(new_version))
        return FEOX_OK;
    if (shard->ttl.len > TTL_PRUNE_FACTOR * shard->ttl_keys + TTL_PRUNE_SLACK)
        feox_ttl_heap_prune(&shard->ttl, item_is_current, s);
    return feox_ttl_heap_push(&shard->ttl, feox_record_expires_at(new_version), new_version->ts_ns,
                              e->key, e->key_len);
}

/* Memory a version takes in place of another (none for a new key, which adds its entry). A
 * replaced first version shared with its entry goes with that entry (swap_out_shared_entry),
 * which a standalone entry of the same footprint replaces: the same sum as any other version. */
static int64_t footprint_delta(const feox_record *new_version, const feox_record *old_version,
                               const feox_entry *e, size_t key_len)
{
    int64_t delta = (int64_t)feox_record_footprint(new_version->value_len, new_version->flags);
    if (old_version)
        delta -= (int64_t)feox_record_footprint(old_version->value_len, old_version->flags);
    bool new_entry = e == NULL;
    if (new_entry)
        delta += (int64_t)(feox_entry_footprint(key_len) + FEOX_INDEX_BYTES_PER_KEY);
    return delta;
}

/* A standalone entry for e's key, to take the place of e when its shared first version is
 * replaced (NULL if e shares none, else on NOMEM; not yet published). */
static feox_err standalone_entry_for(const feox_entry *e, feox_entry **out)
{
    *out = NULL;
    if (!e || !feox_entry_shared_version(e))
        return FEOX_OK;
    feox_entry *fresh = feox_entry_new(e->key, e->key_len, feox_entry_hash(e));
    if (fresh && !feox_hash_slot_fits(fresh)) {
        feox_entry_free(fresh);
        fresh = NULL;
    }
    if (!fresh)
        return FEOX_ERR_NOMEM;
    *out = fresh;
    return FEOX_OK;
}

/* Put fresh in the place of e in both indexes, still showing e's version (so nothing a reader
 * sees changes here: the publish that follows is the write's one visible step), and retire e.
 * e keeps its version for the readers that still hold it: they see the key as it was when the
 * swap took it out of the indexes, which is an instant before the publish (record.h). */
static void swap_out_shared_entry(feox_store *s, feox_entry *e, feox_entry *fresh)
{
    feox_record *current = atomic_load_explicit(&e->current, memory_order_relaxed);
    atomic_init(&fresh->current, current); /* unpublished: the swaps below publish it */
    feox_hash_replace(&s->hash, fresh);
    feox_ordered_index_replace(s->ordered, e, fresh);
    feox_entry_retire(e);
}

static void unlink_unpublished_entry(feox_store *s, feox_entry *e, bool in_ordered)
{
    feox_hash_remove(&s->hash, e);
    if (in_ordered)
        feox_ordered_index_remove(s->ordered, e);
    /* Readers may have seen it (with current == NULL): free it only after a grace period. */
    feox_entry_retire(e);
}

/* A version as the backend sees it (value NULL if cold). */
static void storage_record_of(const void *key, size_t key_len, const feox_record *r,
                              feox_storage_record *out)
{
    uint64_t location = feox_record_location(r);
    *out = (feox_storage_record){.key = key,
                                 .key_len = (uint32_t)key_len,
                                 .value = (r->flags & FEOX_RECORD_COLD) ? NULL : r->value,
                                 .value_len = r->value_len,
                                 .tag = r->tag,
                                 .ts_ns = r->ts_ns,
                                 .expires_at_ns = feox_record_expires_at(r),
                                 .location = location};
}

static feox_err storage_write(feox_store *s, const void *key, size_t key_len,
                              feox_record *new_version, const feox_apply *how, uint64_t *seq)
{
    feox_storage_record rec, old;
    storage_record_of(key, key_len, new_version, &rec);
    if (how->replaced)
        storage_record_of(key, key_len, how->replaced, &old);
    uint64_t location = rec.location;
    feox_err err = s->storage->methods->write(s->storage, how->txn, &rec,
                                              how->replaced ? &old : NULL, &location, seq);
    /* Not published yet: the release store of the publish carries it to readers. */
    feox_record_set_location(new_version, location);
    return err;
}

feox_err feox_publish_version(feox_store *s, feox_shard *shard, feox_entry **entry,
                              const void *key, size_t key_len, uint64_t hash,
                              feox_record *new_version, const feox_apply *how, uint64_t *seq)
{
    feox_entry *e = *entry;
    feox_record *old_version = e ? atomic_load_explicit(&e->current, memory_order_relaxed) : NULL;
    bool new_entry = e == NULL;
    int64_t delta = footprint_delta(new_version, old_version, e, key_len);
    bool reserved = feox_memory_reserve(s, delta, how->enforce || how->make_room);
    if (!reserved && s->storage) {
        /* With a backend: values already stored there can leave memory to make room. */
        uint64_t need =
            atomic_load_explicit(&s->memory_used, memory_order_relaxed) + (uint64_t)delta;
        uint64_t over = need > s->cfg.max_memory ? need - s->cfg.max_memory : 0;
        /* Free a little more than needed so the next writes do not evict one value each. */
        feox_evict_values(s, over + s->cfg.max_memory / 64, shard, e);
        reserved = feox_memory_reserve(s, delta, true);
    }
    if (!reserved && how->make_room)
        reserved = feox_memory_reserve(s, delta, false); /* over the budget rather than lost */
    if (!reserved) {
        feox_stat_inc(s->stats, FEOX_STAT_OUT_OF_MEMORY);
        return feox_fail(FEOX_ERR_OUT_OF_MEMORY, "max_memory of %llu bytes reached",
                         (unsigned long long)s->cfg.max_memory);
    }
    feox_entry *fresh = NULL; /* takes e's place if e shares its allocation with old_version */
    feox_err err = standalone_entry_for(e, &fresh);
    if (err)
        goto undo_memory;
    if (new_entry) {
        e = feox_entry_new(key, key_len, hash);
        if (!e) {
            err = FEOX_ERR_NOMEM;
            goto undo_memory;
        }
    }
    err = ttl_track(s, shard, e, new_version);
    if (err)
        goto undo_entry;
    if (new_entry) {
        err = feox_hash_insert(&s->hash, e);
        if (err)
            goto undo_entry;
        err = feox_ordered_index_insert(s->ordered, e);
        if (err) {
            feox_hash_remove(&s->hash, e);
            feox_entry_retire(e);
            e = NULL;
            goto undo_memory;
        }
    }
    if (s->storage && how->to_storage) {
        err = storage_write(s, key, key_len, new_version, how, seq);
        if (err) {
            if (new_entry)
                unlink_unpublished_entry(s, e, true);
            goto undo_memory;
        }
    }
    if (fresh) {
        swap_out_shared_entry(s, e, fresh);
        e = fresh;
        fresh = NULL;
    }
    /* Release: a reader that loads this pointer (acquire) sees the fully built version. */
    atomic_store_explicit(&e->current, new_version, memory_order_release);
    feox_thread_write_count++;
    if (new_entry)
        feox_shard_count_add(&shard->keys, 1);
    if (feox_record_expires_at(new_version)) {
        feox_shard_count_add(&shard->ttl_keys, 1);
    }
    if (old_version) {
        if (feox_record_expires_at(old_version)) {
            feox_shard_count_add(&shard->ttl_keys, -1);
        }
        feox_record_retire(old_version);
    }
    *entry = e;
    return FEOX_OK;

undo_entry:
    if (new_entry && e)
        feox_entry_free(e);
undo_memory:
    if (fresh)
        feox_entry_free(fresh);
    feox_memory_reserve(s, -delta, false);
    if (err == FEOX_ERR_NOMEM)
        feox_set_error_detail("allocation failed");
    return err;
}

feox_err feox_store_remove_entry(feox_store *s, feox_shard *shard, feox_entry *e,
                                 const feox_apply *how, uint64_t ts_ns, uint64_t *seq)
{
    feox_record *old_version = atomic_load_explicit(&e->current, memory_order_relaxed);
    if (how && how->to_storage && s->storage) {
        feox_storage_record old;
        storage_record_of(e->key, e->key_len, how->replaced ? how->replaced : old_version, &old);
        feox_err err = s->storage->methods->erase(s->storage, how->txn, e->key, e->key_len,
                                                  ts_ns, &old, seq);
        if (err)
            return err;
    }
    feox_hash_remove(&s->hash, e);
    feox_ordered_index_remove(s->ordered, e);
    /* Relaxed: NULL publishes nothing to read; the old version stays valid for a reader that
     * still sees it until the epoch frees it. */
    atomic_store_explicit(&e->current, NULL, memory_order_relaxed);
    feox_thread_write_count++;
    feox_shard_count_add(&shard->keys, -1);
    /* An entry sharing its allocation with a version still holds it (record.h): counted below. */
    int64_t freed = (int64_t)(feox_entry_footprint(e->key_len) + FEOX_INDEX_BYTES_PER_KEY);
    if (old_version) {
        if (feox_record_expires_at(old_version)) {
            feox_shard_count_add(&shard->ttl_keys, -1);
        }
        freed += (int64_t)feox_record_footprint(old_version->value_len, old_version->flags);
        feox_record_retire(old_version);
    }
    feox_entry_retire(e);
    feox_memory_reserve(s, -freed, false);
    return FEOX_OK;
}

feox_err feox_apply_put(feox_store *s, feox_shard *shard, uint64_t hash, const void *key,
                        size_t key_len, feox_record *r)
{
    feox_entry *e = feox_hash_lookup(&s->hash, hash, key, key_len);
    if (feox_record_expired(r, feox_store_now(s))) {
        if (e)
            feox_store_remove_entry(s, shard, e, NULL, 0, NULL);
        feox_record_free(r);
        return FEOX_OK;
    }
    static const feox_apply index_only = {.to_storage = false, .enforce = false, .make_room = true};
    uint64_t seq = 0;
    feox_err err = feox_publish_version(s, shard, &e, key, key_len, hash, r, &index_only, &seq);
    if (err)
        feox_record_free(r);
    return err;
}

void feox_apply_delete(feox_store *s, feox_shard *shard, uint64_t hash, const void *key,
                       size_t key_len)
{
    feox_entry *e = feox_hash_lookup(&s->hash, hash, key, key_len);
    if (e)
        feox_store_remove_entry(s, shard, e, NULL, 0, NULL);
}
