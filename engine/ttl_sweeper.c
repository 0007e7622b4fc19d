/*
 * ttl_sweeper.c — active expiry: keeps each shard's expiry heap in step with the versions
 * (feox_ttl_track), removes expired keys in heap order (feox_ttl_sweep, run by the maintenance
 * thread), and counts expired-but-not-yet-swept keys so feox_len is exact.
 *
 * A heap item names (key, expires_at, ts) of the version that carried the expiry; it is current
 * while the key's version still has that expiry and timestamp. Work per sweep is bounded per
 * shard, so a shard lock is never held for long, and a sweep never scans the table.
 */
#include "store_internal.h"

/* Prune a shard's heap when stale items exceed this factor of its keys with a TTL. */
#define TTL_PRUNE_FACTOR 2
#define TTL_PRUNE_SLACK 64

typedef struct item_check {
    feox_store *store;
    uint64_t now_ns;
    uint64_t count;
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

void feox_ttl_sweep(feox_store *s, size_t max_per_shard)
{
    uint64_t removed = 0;
    for (unsigned i = 0; i < feox_hash_shard_count(&s->hash); i++) {
        feox_shard *shard = &s->hash.shards[i];
        uint64_t now = feox_store_now(s);
        pthread_mutex_lock(&shard->lock);
        for (size_t n = 0; n < max_per_shard; n++) {
            const feox_ttl_item *top = feox_ttl_heap_top(&shard->ttl);
            if (!top || top->expires_at_ns >= now)
                break;
            feox_entry *e = item_owner(s, top);
            /* Expiry is stored in the version itself, so no delete record is needed: a replay
             * drops the expired version on its own. */
            if (e && feox_store_remove_entry(s, shard, e, false, 0) == FEOX_OK)
                removed++;
            feox_ttl_heap_pop(&shard->ttl);
        }
        pthread_mutex_unlock(&shard->lock);
    }
    feox_stat_add(s->stats, FEOX_STAT_TTL_EXPIRED_ACTIVE, removed);
    feox_stat_inc(s->stats, FEOX_STAT_TTL_SWEEPER_RUNS);
}

static void count_if_current(void *ctx, const feox_ttl_item *item)
{
    item_check *check = ctx;
    if (item_owner(check->store, item))
        check->count++;
}

uint64_t feox_count_expired_unswept(feox_store *s, uint64_t now_ns)
{
    item_check check = {.store = s, .now_ns = now_ns};
    for (unsigned i = 0; i < feox_hash_shard_count(&s->hash); i++) {
        feox_shard *shard = &s->hash.shards[i];
        pthread_mutex_lock(&shard->lock);
        feox_ttl_heap_visit_expired(&shard->ttl, now_ns, count_if_current, &check);
        pthread_mutex_unlock(&shard->lock);
    }
    return check.count;
}
