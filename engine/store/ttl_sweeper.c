/*
 * ttl_sweeper.c — active expiry: keeps each shard's expiry heap in step with the versions
 * (feox_ttl_track), removes expired keys in heap order (feox_ttl_sweep, run by the maintenance
 * thread with a budget per shard; feox_ttl_remove_expired, run by feox_len so its count is exact:
 * it pops every expired item, so its cost is the number of keys that expired since the last
 * sweep, never the size of the table).
 *
 * A heap item names (key, expires_at, ts) of the version that carried the expiry; it is current
 * while the key's version still has that expiry and timestamp. Work per sweep is bounded per
 * shard, so a shard lock is never held for long, and a sweep never scans the table.
 */
#include "store/store_internal.h"

/* Prune a shard's heap when stale items exceed this factor of its keys with a TTL. */
#define TTL_PRUNE_FACTOR 2
#define TTL_PRUNE_SLACK 64

typedef struct item_check {
    feox_store *store;
} item_check;

/* The entry whose current version the item describes, or NULL (shard lock held). */
static feox_entry *item_owner(feox_store *s, const feox_ttl_item *item)
{
    uint64_t hash = feox_hash_key(&s->hash, item->key, item->key_len);
    feox_entry *e = feox_hash_lookup(&s->hash, hash, item->key, item->key_len);
    if (!e)
        return NULL;
    const feox_record *r = ck_pr_load_ptr(&e->current);
    if (!r || r->expires_at_ns != item->expires_at_ns || r->ts_ns != item->ts_ns)
        return NULL;
    return e;
}

static bool item_is_current(void *ctx, const feox_ttl_item *item)
{
    return item_owner(((item_check *)ctx)->store, item) != NULL;
}

feox_err feox_ttl_track(feox_store *s, feox_shard *shard, const feox_entry *e,
                        const feox_record *old_version, const feox_record *new_version)
{
    (void)old_version;
    if (!new_version->expires_at_ns)
        return FEOX_OK;
    if (shard->ttl.len > TTL_PRUNE_FACTOR * shard->ttl_keys + TTL_PRUNE_SLACK) {
        item_check check = {.store = s};
        feox_ttl_heap_prune(&shard->ttl, item_is_current, &check);
    }
    return feox_ttl_heap_push(&shard->ttl, new_version->expires_at_ns, new_version->ts_ns, e->key,
                              e->key_len);
}

/* Pop the shard's expired items (at most budget), removing the keys they still describe, and
 * count them in stat. The count is added before the shard lock is released, so anyone who takes
 * that lock afterwards (feox_len, and so feox_get_stats) sees every removal counted. */
static uint64_t sweep_shard(feox_store *s, feox_shard *shard, uint64_t now, size_t budget,
                            feox_stat_id stat)
{
    uint64_t removed = 0;
    pthread_mutex_lock(&shard->lock);
    for (size_t n = 0; n < budget; n++) {
        const feox_ttl_item *top = feox_ttl_heap_top(&shard->ttl);
        if (!top || top->expires_at_ns >= now)
            break;
        feox_entry *e = item_owner(s, top);
        /* Expiry is stored in the version itself, so no delete record is needed: a replay
         * drops the expired version on its own. */
        if (e && feox_store_remove_entry(s, shard, e, false, 0, NULL) == FEOX_OK)
            removed++;
        feox_ttl_heap_pop(&shard->ttl);
    }
    feox_stat_add(s->stats, stat, removed);
    pthread_mutex_unlock(&shard->lock);
    return removed;
}

void feox_ttl_sweep(feox_store *s, size_t max_per_shard)
{
    for (unsigned i = 0; i < feox_hash_shard_count(&s->hash); i++)
        sweep_shard(s, &s->hash.shards[i], feox_store_now(s), max_per_shard,
                    FEOX_STAT_TTL_EXPIRED_ACTIVE);
    feox_stat_inc(s->stats, FEOX_STAT_TTL_SWEEPER_RUNS);
}

void feox_ttl_remove_expired(feox_store *s, uint64_t now_ns)
{
    for (unsigned i = 0; i < feox_hash_shard_count(&s->hash); i++)
        sweep_shard(s, &s->hash.shards[i], now_ns, SIZE_MAX, FEOX_STAT_TTL_EXPIRED_LAZY);
}
