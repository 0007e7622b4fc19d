/*
 * ttl_sweeper.c — active expiry: removes expired keys in the order of each shard's expiry heap
 * (which store_apply.c keeps in step with the versions): feox_ttl_sweep, run by the maintenance
 * thread with a budget per shard; feox_ttl_remove_expired, run by feox_len so its count is exact
 * (it pops every expired item, so its cost is the number of keys that expired since the last
 * sweep, never the size of the table).
 *
 * A heap item is current while its key's version still has the item's expiry and timestamp
 * (feox_ttl_item_owner). Work per sweep is bounded per shard, so a shard lock is never held for
 * long, and a sweep never scans the table.
 */
#include "store/store_internal.h"

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
        feox_entry *e = feox_ttl_item_owner(s, top);
        /* Expiry is stored in the version itself, so no delete record is needed: a replay
         * drops the expired version on its own. */
        if (e && feox_store_remove_entry(s, shard, e, NULL, 0, NULL) == FEOX_OK)
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
