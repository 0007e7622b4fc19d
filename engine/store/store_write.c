/*
 * store_write.c — every operation that changes a key: insert (FEOX_WRITE_IF_ABSENT too), delete,
 * update_ttl (0 removes the TTL), atomic_increment, compare_and_swap, json_patch.
 *
 * Each write runs under the key's shard lock and follows the same steps (publish_version):
 *   1. validate everything and decide timestamp, expiry and tag (nothing changed yet);
 *   2. reserve memory (max_memory), create the entry if the key is new, queue the expiry;
 *   3. link a new entry into both indexes with current = NULL (readers treat it as absent);
 *   4. append the version to the backend (persistent mode) — an error here undoes steps 2-3;
 *   5. publish: store-release entry->current = new version, retire the old version.
 * So a failure at any step leaves the store as it was, and a reader sees either the old version
 * or the new one, never a half-built one.
 */
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/helpers.h"
#include "json/json_patch.h"
#include "store/store_internal.h"

#define NS_PER_SEC 1000000000ull

/* Changes published by this thread; a cursor refreshes its batch when it sees this move, so a
 * thread always reads its own writes (cursor.c). */
_Thread_local uint64_t feox_thread_write_count;

/* Pick the version timestamp: explicit ones must be strictly newer than the live version; the
 * automatic one is the clock, bumped past the current version's timestamp if needed. */
static feox_err choose_timestamp(feox_store *s, const feox_write_opts *opts,
                                 const feox_record *current, const feox_record *live,
                                 uint64_t now_ns, uint64_t *ts)
{
    uint64_t explicit_ts = opts ? opts->timestamp_ns : 0;
    if (explicit_ts) {
        bool restoring = opts->flags & FEOX_WRITE_RESTORE;
        if (live && explicit_ts <= live->ts_ns && !restoring) {
            feox_stat_inc(s->stats, FEOX_STAT_OLDER_TIMESTAMP);
            return feox_fail(FEOX_ERR_OLDER_TIMESTAMP,
                             "timestamp %llu is not newer than the record's %llu",
                             (unsigned long long)explicit_ts, (unsigned long long)live->ts_ns);
        }
        *ts = explicit_ts;
        return FEOX_OK;
    }
    uint64_t ts_ns = now_ns ? now_ns : 1;
    if (current && ts_ns <= current->ts_ns) {
        if (current->ts_ns == UINT64_MAX) {
            feox_stat_inc(s->stats, FEOX_STAT_OLDER_TIMESTAMP);
            return feox_fail(FEOX_ERR_OLDER_TIMESTAMP,
                             "the record's timestamp is the largest possible");
        }
        ts_ns = current->ts_ns + 1;
    }
    if (opts && (opts->flags & FEOX_WRITE_TS_INT64) && ts_ns > (uint64_t)INT64_MAX) {
        feox_stat_inc(s->stats, FEOX_STAT_OLDER_TIMESTAMP);
        return feox_fail(FEOX_ERR_OLDER_TIMESTAMP,
                         "ts %llu is the largest timestamp; an automatic timestamp cannot be newer",
                         (unsigned long long)(current ? current->ts_ns : now_ns));
    }
    *ts = ts_ns;
    return FEOX_OK;
}

/* Expiry of the new version; keep_by_default: incr/cas/patch keep the TTL unless told. */
static uint64_t choose_expiry(const feox_write_opts *opts, const feox_record *live, uint64_t now_ns,
                              bool keep_by_default)
{
    uint32_t flags = opts ? opts->flags : 0;
    if (flags & FEOX_WRITE_EXPIRES_AT)
        return opts->expires_at_ns;
    if (flags & FEOX_WRITE_TTL)
        return opts->ttl_secs ? feox_sat_add_u64(now_ns, opts->ttl_secs > UINT64_MAX / NS_PER_SEC
                                                             ? UINT64_MAX
                                                             : opts->ttl_secs * NS_PER_SEC)
                              : 0;
    if ((flags & FEOX_WRITE_KEEP_TTL) || keep_by_default)
        return live ? live->expires_at_ns : 0;
    return 0;
}

static feox_err check_value(const void *value, size_t value_len)
{
    if (!value && value_len)
        return feox_fail(FEOX_ERR_INVALID_ARGUMENT, "value is NULL but value_len is %zu",
                         value_len);
    if (value_len > FEOX_MAX_VALUE_SIZE)
        return feox_fail(FEOX_ERR_INVALID_VALUE, "value of %zu bytes exceeds %u", value_len,
                         FEOX_MAX_VALUE_SIZE);
    return FEOX_OK;
}

static int64_t footprint_delta(const feox_record *new_version, const feox_record *old_version,
                               bool new_entry, size_t key_len)
{
    int64_t delta = (int64_t)feox_record_footprint(new_version->value_len,
                                                   new_version->flags & FEOX_RECORD_COLD);
    if (old_version)
        delta -= (int64_t)feox_record_footprint(old_version->value_len,
                                                old_version->flags & FEOX_RECORD_COLD);
    if (new_entry)
        delta += (int64_t)(feox_entry_footprint(key_len) + FEOX_INDEX_BYTES_PER_KEY);
    return delta;
}

static void unlink_unpublished_entry(feox_store *s, feox_entry *e, bool in_ordered)
{
    feox_hash_remove(&s->hash, e);
    if (in_ordered)
        feox_ordered_index_remove(s->ordered, e);
    /* Readers may have seen it (with current == NULL): free it only after a grace period. */
    feox_entry_retire(e);
}

/* Steps 2-5 above. *entry is the key's entry or NULL (then one is created and returned).
 * On success the new version belongs to the index; on failure the caller still owns it. */
static feox_err publish_version(feox_store *s, feox_shard *shard, feox_entry **entry,
                                const void *key, size_t key_len, uint64_t hash,
                                feox_record *new_version, uint64_t *seq)
{
    feox_entry *e = *entry;
    feox_record *old_version = e ? ck_pr_load_ptr(&e->current) : NULL;
    bool new_entry = e == NULL;
    int64_t delta = footprint_delta(new_version, old_version, new_entry, key_len);
    bool reserved = feox_memory_reserve(s, delta, !s->replaying);
    if (!reserved && s->backend) {
        /* Persistent mode: values already in the file can leave memory to make room. */
        uint64_t need = ck_pr_load_64(&s->memory_used) + (uint64_t)delta;
        uint64_t over = need > s->cfg.max_memory ? need - s->cfg.max_memory : 0;
        /* Free a little more than needed so the next writes do not evict one value each. */
        feox_evict_values(s, over + s->cfg.max_memory / 64, shard);
        reserved = feox_memory_reserve(s, delta, true);
    }
    if (!reserved) {
        feox_stat_inc(s->stats, FEOX_STAT_OUT_OF_MEMORY);
        return feox_fail(FEOX_ERR_OUT_OF_MEMORY, "max_memory of %llu bytes reached",
                         (unsigned long long)s->cfg.max_memory);
    }
    feox_err err = FEOX_OK;
    if (new_entry) {
        e = feox_entry_new(key, key_len, hash);
        if (!e) {
            err = FEOX_ERR_NOMEM;
            goto undo_memory;
        }
    }
    err = feox_ttl_track(s, shard, e, old_version, new_version);
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
    if (s->backend && !s->replaying) {
        err = s->backend->ops->append_put(s->backend, key, (uint32_t)key_len, new_version,
                                          &new_version->location, seq);
        if (err) {
            if (new_entry)
                unlink_unpublished_entry(s, e, true);
            goto undo_memory;
        }
    }
    /* Release: a reader that loads this pointer sees the fully built version. */
    FEOX_TSAN_RELEASE(new_version);
    ck_pr_fence_store();
    ck_pr_store_ptr(&e->current, new_version);
    feox_thread_write_count++;
    if (new_entry)
        feox_shard_count_add(&shard->keys, 1);
    if (new_version->expires_at_ns) {
        feox_shard_count_add(&shard->ttl_keys, 1);
    }
    if (old_version) {
        if (old_version->expires_at_ns) {
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
    feox_memory_reserve(s, -delta, false);
    if (err == FEOX_ERR_NOMEM)
        feox_set_error_detail("allocation failed");
    return err;
}

feox_err feox_store_remove_entry(feox_store *s, feox_shard *shard, feox_entry *e, bool log_delete,
                                 uint64_t ts_ns, uint64_t *seq)
{
    if (log_delete && s->backend && !s->replaying) {
        feox_err err = s->backend->ops->append_delete(s->backend, e->key, e->key_len, ts_ns, seq);
        if (err)
            return err;
    }
    feox_record *old_version = ck_pr_load_ptr(&e->current);
    feox_hash_remove(&s->hash, e);
    feox_ordered_index_remove(s->ordered, e);
    ck_pr_store_ptr(&e->current, NULL);
    feox_thread_write_count++;
    feox_shard_count_add(&shard->keys, -1);
    int64_t freed = (int64_t)(feox_entry_footprint(e->key_len) + FEOX_INDEX_BYTES_PER_KEY);
    if (old_version) {
        if (old_version->expires_at_ns) {
            feox_shard_count_add(&shard->ttl_keys, -1);
        }
        freed += (int64_t)feox_record_footprint(old_version->value_len,
                                                old_version->flags & FEOX_RECORD_COLD);
        feox_record_retire(old_version);
    }
    feox_entry_retire(e);
    feox_memory_reserve(s, -freed, false);
    return FEOX_OK;
}

/* State of a key seen under its shard lock. */
typedef struct key_state {
    uint64_t hash;
    feox_shard *shard;
    feox_entry *entry;    /* NULL if absent */
    feox_record *current; /* entry's version, expired or not */
    feox_record *live;    /* current if not expired, else NULL */
    uint64_t now_ns;
} key_state;

static void lock_key(feox_store *s, const void *key, size_t key_len, key_state *k)
{
    k->hash = feox_hash_key(&s->hash, key, key_len);
    k->shard = feox_hash_shard(&s->hash, k->hash);
    pthread_mutex_lock(&k->shard->lock);
    k->entry = feox_hash_lookup(&s->hash, k->hash, key, key_len);
    k->current = k->entry ? ck_pr_load_ptr(&k->entry->current) : NULL;
    k->now_ns = feox_store_now(s);
    k->live = k->current && !feox_record_expired(k->current, k->now_ns) ? k->current : NULL;
    if (k->current && !k->live)
        feox_stat_inc(s->stats, FEOX_STAT_TTL_EXPIRED_LAZY);
}

/* The common start of every write: argument checks, then the key's lock and its state. */
static feox_err begin_write(feox_store *s, const void *key, size_t key_len, key_state *k)
{
    if (!s)
        return feox_fail(FEOX_ERR_INVALID_ARGUMENT, "store is NULL");
    if (feox_store_inherited(s))
        return feox_store_forked_error(s);
    feox_err err = feox_check_key(key, key_len);
    if (err)
        return err;
    lock_key(s, key, key_len, k);
    return FEOX_OK;
}

/* Unlock, then wait for durability in sync=full mode (never while holding the lock, so
 * concurrent writers can join the same group commit). */
static feox_err unlock_key(feox_store *s, key_state *k, feox_err err, uint64_t seq)
{
    pthread_mutex_unlock(&k->shard->lock);
    if (!err && seq && s->backend && s->cfg.sync == FEOX_SYNC_FULL)
        err = s->backend->ops->wait_durable(s->backend, seq);
    return err;
}

/* Build and publish a version of key with the given value (the common tail of every write). */
static feox_err write_version(feox_store *s, key_state *k, const void *key, size_t key_len,
                              const void *value, size_t value_len, uint32_t tag, uint64_t ts_ns,
                              uint64_t expires_at_ns, uint64_t *seq)
{
    feox_record *r = feox_record_new(value, value_len, tag, ts_ns, expires_at_ns, false);
    if (!r)
        return feox_fail(FEOX_ERR_NOMEM, "allocation failed");
    feox_err err = publish_version(s, k->shard, &k->entry, key, key_len, k->hash, r, seq);
    if (err)
        feox_record_free(r);
    return err;
}

/* Resident bytes of the live version (reads a cold value back from the backend). */
static feox_err live_value(feox_store *s, feox_record *live, feox_record **resident)
{
    feox_record_ref(live);
    feox_err err = feox_record_materialize(s, live, resident);
    if (err || *resident != live)
        feox_record_unref(live);
    return err;
}

feox_err feox_insert(feox_store *s, const void *key, size_t key_len, const void *value,
                     size_t value_len, const feox_write_opts *opts, bool *created)
{
    feox_clear_error_detail();
    key_state k;
    feox_err err = check_value(value, value_len);
    if (!err)
        err = begin_write(s, key, key_len, &k);
    if (err)
        return err;
    uint64_t seq = 0, ts = 0;
    if (opts && (opts->flags & FEOX_WRITE_IF_ABSENT) && k.live) {
        err = feox_fail(FEOX_ERR_KEY_EXISTS, "key already exists");
        goto out;
    }
    err = choose_timestamp(s, opts, k.current, k.live, k.now_ns, &ts);
    if (err)
        goto out;
    bool was_live = k.live != NULL;
    err = write_version(s, &k, key, key_len, value, value_len, opts ? opts->tag : 0, ts,
                        choose_expiry(opts, k.live, k.now_ns, false), &seq);
    if (!err) {
        feox_stat_inc(s->stats, was_live ? FEOX_STAT_UPDATES : FEOX_STAT_INSERTS);
        if (created)
            *created = !was_live;
    }
out:
    return unlock_key(s, &k, err, seq);
}

feox_err feox_delete(feox_store *s, const void *key, size_t key_len, const feox_write_opts *opts)
{
    feox_clear_error_detail();
    key_state k;
    feox_err err = begin_write(s, key, key_len, &k);
    if (err)
        return err;
    uint64_t ts = 0, seq = 0;
    if (!k.live) {
        if (k.entry) /* expired: reclaim it now; its expiry already keeps it dead on disk */
            feox_store_remove_entry(s, k.shard, k.entry, false, 0, NULL);
        err = feox_fail(FEOX_ERR_KEY_NOT_FOUND, "key not found");
        goto out;
    }
    err = choose_timestamp(s, opts, k.current, k.live, k.now_ns, &ts);
    if (!err)
        err = feox_store_remove_entry(s, k.shard, k.entry, true, ts, &seq);
    if (!err)
        feox_stat_inc(s->stats, FEOX_STAT_DELETES);
out:
    return unlock_key(s, &k, err, seq);
}

feox_err feox_update_ttl(feox_store *s, const void *key, size_t key_len, uint64_t ttl_secs)
{
    feox_clear_error_detail();
    key_state k;
    feox_err err = begin_write(s, key, key_len, &k);
    if (err)
        return err;
    uint64_t ts = 0, seq = 0;
    if (!k.live) {
        err = feox_fail(FEOX_ERR_KEY_NOT_FOUND, "key not found");
        goto out;
    }
    err = choose_timestamp(s, NULL, k.current, k.live, k.now_ns, &ts);
    if (err)
        goto out;
    feox_record *resident = NULL;
    err = live_value(s, k.live, &resident);
    if (err)
        goto out;
    feox_write_opts ttl = {.flags = FEOX_WRITE_TTL, .ttl_secs = ttl_secs};
    err = write_version(s, &k, key, key_len, resident->value, resident->value_len, k.live->tag, ts,
                        choose_expiry(&ttl, k.live, k.now_ns, false), &seq);
    feox_record_unref(resident);
out:
    return unlock_key(s, &k, err, seq);
}

feox_err feox_atomic_increment(feox_store *s, const void *key, size_t key_len, int64_t delta,
                               const feox_write_opts *opts, int64_t *result)
{
    feox_clear_error_detail();
    key_state k;
    feox_err err = begin_write(s, key, key_len, &k);
    if (err)
        return err;
    uint64_t ts = 0, seq = 0;
    int64_t value = delta;
    if (k.live) {
        if (k.live->value_len != 8) {
            err = feox_fail(FEOX_ERR_INVALID_OPERATION, "value is %u bytes, a counter is 8",
                            k.live->value_len);
            goto out;
        }
        feox_record *resident;
        err = live_value(s, k.live, &resident);
        if (err)
            goto out;
        uint64_t u = feox_get_le64(resident->value);
        feox_record_unref(resident);
        value = feox_sat_add_i64((int64_t)u, delta);
    }
    err = choose_timestamp(s, opts, k.current, k.live, k.now_ns, &ts);
    if (err)
        goto out;
    uint8_t le[8];
    feox_put_le64(le, (uint64_t)value);
    uint32_t tag = opts && (opts->flags & FEOX_WRITE_TAG) ? opts->tag : k.live ? k.live->tag : 0;
    bool was_live = k.live != NULL;
    err = write_version(s, &k, key, key_len, le, 8, tag, ts,
                        choose_expiry(opts, k.live, k.now_ns, true), &seq);
    if (!err) {
        feox_stat_inc(s->stats, FEOX_STAT_INCREMENTS);
        feox_stat_inc(s->stats, was_live ? FEOX_STAT_UPDATES : FEOX_STAT_INSERTS);
        if (result)
            *result = value;
    }
out:
    return unlock_key(s, &k, err, seq);
}

feox_err feox_compare_and_swap(feox_store *s, const void *key, size_t key_len, const void *expected,
                               size_t expected_len, const void *new_value, size_t new_len,
                               const feox_write_opts *opts, bool *swapped)
{
    feox_clear_error_detail();
    if (swapped)
        *swapped = false;
    key_state k;
    feox_err err = check_value(new_value, new_len);
    if (!err && !expected && expected_len)
        err = feox_fail(FEOX_ERR_INVALID_ARGUMENT, "expected is NULL but expected_len is %zu",
                        expected_len);
    if (!err)
        err = begin_write(s, key, key_len, &k);
    if (err)
        return err;
    uint64_t ts = 0, seq = 0;
    bool match = false;
    if (k.live && k.live->value_len == expected_len &&
        (!(opts && (opts->flags & FEOX_WRITE_MATCH_TAG)) || k.live->tag == opts->expected_tag)) {
        feox_record *resident;
        err = live_value(s, k.live, &resident);
        if (err)
            goto out;
        match = expected_len == 0 || memcmp(resident->value, expected, expected_len) == 0;
        feox_record_unref(resident);
    }
    if (!match) {
        feox_stat_inc(s->stats, FEOX_STAT_CAS_FAILURE);
        goto out;
    }
    err = choose_timestamp(s, opts, k.current, k.live, k.now_ns, &ts);
    if (err)
        goto out;
    uint32_t tag = opts && (opts->flags & FEOX_WRITE_TAG) ? opts->tag : k.live->tag;
    err = write_version(s, &k, key, key_len, new_value, new_len, tag, ts,
                        choose_expiry(opts, k.live, k.now_ns, true), &seq);
    if (!err) {
        feox_stat_inc(s->stats, FEOX_STAT_CAS_SUCCESS);
        feox_stat_inc(s->stats, FEOX_STAT_UPDATES);
        if (swapped)
            *swapped = true;
    }
out:
    return unlock_key(s, &k, err, seq);
}

/* Read the live version of key with a reference (lock-free). */
static feox_record *read_live(feox_store *s, const void *key, size_t key_len)
{
    uint64_t hash = feox_hash_key(&s->hash, key, key_len), now = 0;
    feox_epoch_enter();
    feox_entry *e = feox_hash_lookup(&s->hash, hash, key, key_len);
    feox_record *r = e ? feox_entry_live(s, e, &now) : NULL;
    if (r)
        feox_record_ref(r);
    feox_epoch_exit();
    return r;
}

/* Publish a patched document if the key still holds `base`; *raced = true if it changed. */
static feox_err publish_patched(feox_store *s, const void *key, size_t key_len,
                                const feox_record *base, const char *doc, size_t doc_len,
                                const feox_write_opts *opts, bool *raced)
{
    key_state k;
    lock_key(s, key, key_len, &k);
    uint64_t ts = 0, seq = 0;
    feox_err err = FEOX_OK;
    *raced = k.live != base;
    if (*raced) {
        if (!k.live)
            err = feox_fail(FEOX_ERR_KEY_NOT_FOUND, "key not found");
        goto out;
    }
    err = choose_timestamp(s, opts, k.current, k.live, k.now_ns, &ts);
    if (err)
        goto out;
    uint32_t tag = opts && (opts->flags & FEOX_WRITE_TAG) ? opts->tag : k.live->tag;
    err = write_version(s, &k, key, key_len, doc, doc_len, tag, ts,
                        choose_expiry(opts, k.live, k.now_ns, true), &seq);
    if (!err)
        feox_stat_inc(s->stats, FEOX_STAT_UPDATES);
out:
    if (*raced && !k.live)
        *raced = false; /* deleted meanwhile: report KEY_NOT_FOUND, do not retry */
    return unlock_key(s, &k, err, seq);
}

feox_err feox_json_patch(feox_store *s, const void *key, size_t key_len, const char *patch,
                         size_t patch_len, const feox_write_opts *opts, char **result,
                         size_t *result_len)
{
    feox_clear_error_detail();
    if (!s || !patch)
        return feox_fail(FEOX_ERR_INVALID_ARGUMENT, "store or patch is NULL");
    if (feox_store_inherited(s))
        return feox_store_forked_error(s);
    feox_err err = feox_check_key(key, key_len);
    if (err)
        return err;
    /* Optimistic: patch outside any lock, publish only if the value is still the one patched
     * (pointer identity is safe: the reference we hold keeps that version from being reused). */
    for (;;) {
        feox_record *base = read_live(s, key, key_len);
        if (!base) {
            feox_stat_inc(s->stats, FEOX_STAT_JSON_PATCH_FAILURES);
            return feox_fail(FEOX_ERR_KEY_NOT_FOUND, "key not found");
        }
        feox_record *resident;
        err = feox_record_materialize(s, base, &resident);
        if (err) {
            feox_record_unref(base);
            return err;
        }
        char *doc = NULL;
        size_t doc_len = 0;
        char message[256] = "";
        err = feox_json_patch_apply((const char *)resident->value, resident->value_len, patch,
                                    patch_len, &doc, &doc_len, message, sizeof message);
        if (resident != base)
            feox_record_unref(resident);
        if (err == FEOX_OK && doc_len > FEOX_MAX_VALUE_SIZE)
            err = feox_fail(FEOX_ERR_INVALID_VALUE, "patched document of %zu bytes exceeds %u",
                            doc_len, FEOX_MAX_VALUE_SIZE);
        else if (err)
            feox_set_error_detail("%s", message[0] ? message : feox_strerror(err));
        bool raced = false;
        if (!err)
            err = publish_patched(s, key, key_len, base, doc, doc_len, opts, &raced);
        feox_record_unref(base);
        if (raced) {
            feox_mem_free(doc);
            continue;
        }
        if (err) {
            feox_mem_free(doc);
            feox_stat_inc(s->stats, FEOX_STAT_JSON_PATCH_FAILURES);
            return err;
        }
        feox_stat_inc(s->stats, FEOX_STAT_JSON_PATCHES);
        if (result) {
            *result = doc;
            if (result_len)
                *result_len = doc_len;
        } else {
            feox_mem_free(doc);
        }
        return FEOX_OK;
    }
}

feox_err feox_store_replay_put(feox_store *s, const void *key, size_t key_len, feox_record *r)
{
    key_state k;
    lock_key(s, key, key_len, &k);
    feox_err err = FEOX_OK;
    if (feox_record_expired(r, k.now_ns)) {
        if (k.entry)
            feox_store_remove_entry(s, k.shard, k.entry, false, 0, NULL);
        feox_record_free(r);
    } else {
        uint64_t seq = 0;
        err = publish_version(s, k.shard, &k.entry, key, key_len, k.hash, r, &seq);
        if (err)
            feox_record_free(r);
    }
    pthread_mutex_unlock(&k.shard->lock);
    return err;
}

feox_err feox_store_replay_delete(feox_store *s, const void *key, size_t key_len)
{
    key_state k;
    lock_key(s, key, key_len, &k);
    if (k.entry)
        feox_store_remove_entry(s, k.shard, k.entry, false, 0, NULL);
    pthread_mutex_unlock(&k.shard->lock);
    return FEOX_OK;
}
