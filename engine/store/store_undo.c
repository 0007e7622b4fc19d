/*
 * store_undo.c — undoing a sync=full write the backend cancelled. A write publishes its version
 * under the key's shard lock, releases the lock and only then waits for the fsync (so writers of
 * other keys share it: group commit). If that write fails, the log backend cancels the records
 * it carried (feox_storage.h: wait_durable answers DISK_FULL or IO) and the store takes the
 * write back here: the key gets back the version it had before, so the failed write has no
 * effect (readers may have seen it meanwhile, as they see every write before its fsync).
 *
 * Between publish and answer each write is a feox_durable_wait on its writer's stack, listed in
 * its key's shard. A later write of the same key supersedes the earlier one (superseded_by):
 *   - the earlier one cancelled, the later still waiting: the later one inherits the version to
 *     put back (its own "before" was the cancelled version), and decides;
 *   - the later one answered with success: the earlier one has nothing to undo
 *     (superseded_durably);
 *   - the later one cancelled first: it puts back the earlier one's version, which is the key's
 *     latest write again.
 * So the key ends at the last version no cancelled write made. A write is put back only while
 * the key still shows it (the TTL sweeper may have removed an expired one meanwhile; eviction
 * swaps it for its cold copy, same timestamp and location).
 * Lock: the key's shard lock guards shard->durable_waits and the fields of every wait listed
 * there (other writers' stacks); feox_durable_wait_end takes it with no other lock held.
 */
#include "store/store_internal.h"

bool feox_store_waits_durable(const feox_store *s)
{
    return s->storage && s->storage->methods->wait_durable && s->cfg.sync == FEOX_SYNC_FULL;
}

static bool same_key(const feox_durable_wait *a, const feox_durable_wait *b)
{
    return a->hash == b->hash && a->key_len == b->key_len &&
           memcmp(a->key, b->key, a->key_len) == 0;
}

void feox_durable_wait_begin(feox_shard *shard, feox_durable_wait *w, const void *key,
                             size_t key_len, uint64_t hash, feox_record *before, feox_entry *entry)
{
    feox_record *after = entry ? atomic_load_explicit(&entry->current, memory_order_relaxed) : NULL;
    if (after)
        feox_record_ref(after); /* current, under the lock: reachable */
    *w = (feox_durable_wait){
        .key = key, .key_len = key_len, .hash = hash, .before = before, .after = after};
    for (feox_durable_wait *o = shard->durable_waits; o; o = o->next)
        if (!o->superseded_by && !o->superseded_durably && same_key(o, w))
            o->superseded_by = w;
    w->next = shard->durable_waits;
    shard->durable_waits = w;
}

static void unlist(feox_shard *shard, const feox_durable_wait *w)
{
    feox_durable_wait *prev = NULL, *o = shard->durable_waits;
    while (o != w) {
        prev = o;
        o = o->next;
    }
    if (prev)
        prev->next = w->next;
    else
        shard->durable_waits = w->next;
}

/* Point the waits w superseded at by instead (NULL: they are the key's latest again), or mark
 * them superseded durably. */
static void hand_over(feox_shard *shard, const feox_durable_wait *w, feox_durable_wait *by,
                      bool durably)
{
    for (feox_durable_wait *o = shard->durable_waits; o; o = o->next) {
        if (o->superseded_by != w)
            continue;
        o->superseded_by = by;
        if (durably)
            o->superseded_durably = true;
    }
}

/* Whether current is the version after (or its cold copy); for a delete, whether the key is
 * still absent. */
static bool still_shows(const feox_record *current, const feox_record *after)
{
    if (!after)
        return current == NULL;
    return current &&
           (current == after || (current->ts_ns == after->ts_ns &&
                                 feox_record_location(current) == feox_record_location(after)));
}

/* Put before back as the key's version (NULL: remove the key), in memory only: the backend
 * holds it already. On NOMEM the key keeps the cancelled version until it is written again
 * (the file does not have it: a reopen shows the version before). */
static void put_back(feox_store *s, feox_shard *shard, const feox_durable_wait *w)
{
    feox_entry *e = feox_hash_lookup(&s->hash, w->hash, w->key, w->key_len);
    feox_record *current = e ? atomic_load_explicit(&e->current, memory_order_relaxed) : NULL;
    if (!still_shows(current, w->after))
        return;
    if (!w->before) {
        if (e)
            feox_store_remove_entry(s, shard, e, NULL, 0, NULL);
        return;
    }
    const feox_record *b = w->before;
    bool cold = b->flags & FEOX_RECORD_COLD;
    feox_record *copy = feox_record_new(
        cold ? NULL : b->value, b->value_len, b->tag, b->ts_ns, feox_record_expires_at(b),
        b->flags & (FEOX_RECORD_COLD | FEOX_RECORD_LOCATED | FEOX_RECORD_STORED));
    if (!copy)
        return;
    feox_record_set_location(copy, feox_record_location(b));
    static const feox_apply index_only = {.to_storage = false, .enforce = false, .make_room = true};
    uint64_t seq = 0;
    if (feox_publish_version(s, shard, &e, w->key, w->key_len, w->hash, copy, &index_only, &seq))
        feox_record_free(copy);
}

void feox_durable_wait_end(feox_store *s, feox_shard *shard, feox_durable_wait *w, feox_err err)
{
    bool cancelled = err == FEOX_ERR_DISK_FULL || err == FEOX_ERR_IO;
    feox_record *drop = NULL;
    pthread_mutex_lock(&shard->lock);
    unlist(shard, w);
    if (!cancelled || w->superseded_durably) {
        hand_over(shard, w, NULL, true);
    } else if (w->superseded_by) {
        feox_durable_wait *later = w->superseded_by;
        drop = later->before; /* this write's version, cancelled */
        later->before = w->before;
        w->before = NULL;
        hand_over(shard, w, later, false);
    } else {
        put_back(s, shard, w);
        hand_over(shard, w, NULL, false);
    }
    pthread_mutex_unlock(&shard->lock);
    if (drop)
        feox_record_unref(drop);
    if (w->before)
        feox_record_unref(w->before);
    if (w->after)
        feox_record_unref(w->after);
}
