/*
 * store_persist.c — the store's side of the persistence seam (persist.h): opening the backend,
 * the replay sink that rebuilds the indexes from the file, and the hooks the backend calls
 * (relocate a version during compaction, visit live records, read the clock).
 */
#include <string.h>

#include "base/alloc.h"
#include "store/store_internal.h"

static feox_err replay_put(void *ctx, const void *key, uint32_t key_len, const void *value,
                           uint32_t value_len, uint32_t tag, uint64_t ts_ns, uint64_t expires_at_ns,
                           uint64_t location)
{
    if (key_len == 0 || key_len > FEOX_MAX_KEY_SIZE || value_len > FEOX_MAX_VALUE_SIZE)
        return feox_fail(FEOX_ERR_CORRUPT, "replayed record has an invalid size");
    feox_record *r = feox_record_new(value, value_len, tag, ts_ns, expires_at_ns, value == NULL);
    if (!r)
        return feox_fail(FEOX_ERR_NOMEM, "allocation failed");
    r->location = location;
    return feox_store_replay_put(ctx, key, key_len, r);
}

static feox_err replay_delete(void *ctx, const void *key, uint32_t key_len, uint64_t ts_ns)
{
    (void)ts_ns;
    if (key_len == 0 || key_len > FEOX_MAX_KEY_SIZE)
        return feox_fail(FEOX_ERR_CORRUPT, "replayed delete has an invalid key size");
    return feox_store_replay_delete(ctx, key, key_len);
}

static bool relocate(void *ctx, const void *key, uint32_t key_len, uint64_t old_location,
                     uint64_t new_location)
{
    feox_store *s = ctx;
    uint64_t hash = feox_hash_key(&s->hash, key, key_len);
    feox_shard *shard = feox_hash_shard(&s->hash, hash);
    pthread_mutex_lock(&shard->lock);
    feox_entry *e = feox_hash_lookup(&s->hash, hash, key, key_len);
    feox_record *r = e ? ck_pr_load_ptr(&e->current) : NULL;
    bool moved = r && ck_pr_cas_64(&r->location, old_location, new_location);
    pthread_mutex_unlock(&shard->lock);
    return moved;
}

/* Return once every write that had appended to the backend before the call has published its
 * version. A write appends and publishes under its key's shard lock (store_write.c), so taking
 * and releasing each shard lock once is enough: a write still between its append and its publish
 * holds that lock until it has published. */
static void wait_for_appended_writes(feox_store *s)
{
    for (unsigned i = 0; i < feox_hash_shard_count(&s->hash); i++) {
        pthread_mutex_lock(&s->hash.shards[i].lock);
        pthread_mutex_unlock(&s->hash.shards[i].lock);
    }
}

static feox_err for_each_live(void *ctx,
                              int (*fn)(void *fn_ctx, const feox_entry *e, const feox_record *r),
                              void *fn_ctx)
{
    feox_store *s = ctx;
    /* Compaction relies on this: without it, a version appended before its rewrite began but
     * published after the scan passed the key would be in neither part of the rewrite. */
    wait_for_appended_writes(s);
    feox_cursor *c;
    feox_err err = feox_cursor_open(s, &c);
    if (err)
        return err;
    err = feox_cursor_seek(c, FEOX_SEEK_FIRST, NULL, 0);
    feox_entry *copy = NULL;
    size_t copy_cap = 0;
    while (!err && feox_cursor_valid(c)) {
        size_t key_len;
        const void *key = feox_cursor_key(c, &key_len);
        /* The callback gets a private entry copy: the live one may be freed under it. */
        if (!copy || key_len > copy_cap) {
            feox_entry_free(copy);
            copy = feox_entry_new(key, key_len, 0);
            copy_cap = copy ? key_len : 0;
            if (!copy) {
                err = feox_fail(FEOX_ERR_NOMEM, "allocation failed");
                break;
            }
        }
        memcpy(copy->key, key, key_len);
        copy->key_len = (uint32_t)key_len;
        /* The cursor's current version is referenced (see cursor.c); reach it via its value. */
        size_t value_len = 0;
        const void *value = feox_cursor_value(c, &value_len);
        const feox_record *r =
            (const feox_record *)((const char *)value - offsetof(feox_record, value));
        if (fn(fn_ctx, copy, r))
            break;
        err = feox_cursor_next(c);
    }
    feox_entry_free(copy);
    feox_cursor_close(c);
    return err;
}

static uint64_t hook_now(void *ctx)
{
    return feox_store_now(ctx);
}

feox_err feox_store_attach_backend(feox_store *s)
{
    feox_store_hooks hooks = {
        .ctx = s, .relocate = relocate, .for_each_live = for_each_live, .now_ns = hook_now};
    feox_err err = feox_backend_open_file(&s->cfg, &hooks, &s->backend);
    if (err)
        return err;
    feox_replay_sink sink = {.ctx = s, .put = replay_put, .del = replay_delete};
    s->replaying = true;
    err = s->backend->ops->replay(s->backend, &sink);
    s->replaying = false;
    if (err) {
        s->backend->ops->close(s->backend);
        s->backend = NULL;
        /* The indexes may hold part of the file: the caller destroys the whole store. */
    }
    return err;
}
