/*
 * store_write.c — every operation that changes a key: insert (FEOX_WRITE_IF_ABSENT too), delete,
 * update_ttl (0 removes the TTL), atomic_increment, compare_and_swap, json_patch.
 *
 * Each write runs under the key's shard lock: step 1, validate everything and decide timestamp,
 * expiry and tag (nothing changed yet), is here; steps 2-5 (memory, indexes, the backend's
 * write, publish) are feox_publish_version in store_apply.c. With an INDEX_CACHE backend a key
 * the index does not hold is first looked up in the backend (find), under the same lock.
 * opts->txn goes to the backend; opts->replaced receives the live version the write replaced;
 * FEOX_WRITE_INDEX_ONLY changes the indexes without calling the backend. With sync=full a write
 * waits for its fsync after releasing the lock (unlock_key); a write the backend cancelled is
 * undone before it returns its error (store_undo.c). A store opened read_only refuses every
 * write first (writable), whatever its arguments.
 */
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/helpers.h"
#include "json/json_patch.h"
#include "store/store_internal.h"

#define NS_PER_SEC 1000000000ull

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
        return live ? feox_record_expires_at(live) : 0;
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

/* State of a key seen under its shard lock. */
typedef struct key_state {
    uint64_t hash;
    feox_shard *shard;
    feox_entry *entry;    /* NULL if absent */
    feox_record *current; /* entry's version, expired or not */
    feox_record *live;    /* current if not expired, else NULL */
    uint64_t now_ns;
    feox_apply how;       /* how the change reaches the backend */
    feox_value **replaced; /* opts->replaced */
    const void *key;
    size_t key_len;
    /* sync=full: current, referenced, to put back if the backend cancels the write (NULL:
     * none, or no wait); unlock_key consumes it. */
    feox_record *before;
} key_state;

/* Lock key and read its state (asking an INDEX_CACHE backend first if the index lacks it). On
 * error the lock is released. */
static feox_err lock_key(feox_store *s, const void *key, size_t key_len,
                         const feox_write_opts *opts, key_state *k)
{
    uint32_t flags = opts ? opts->flags : 0;
    bool index_only = flags & FEOX_WRITE_INDEX_ONLY;
    /* With a backend, an INDEX_ONLY write puts back what the host already restored there: it
     * makes room like any write but is never refused for memory. */
    bool restoring = index_only && s->storage;
    k->how = (feox_apply){.to_storage = !index_only,
                          .enforce = !restoring,
                          .make_room = restoring,
                          .txn = opts ? opts->txn : NULL};
    k->replaced = opts ? opts->replaced : NULL;
    if (k->replaced)
        *k->replaced = NULL;
    k->hash = feox_hash_key(&s->hash, key, key_len);
    k->shard = feox_hash_shard(&s->hash, k->hash);
    pthread_mutex_lock(&k->shard->lock);
    if (k->how.to_storage && (s->storage_caps & FEOX_STORAGE_INDEX_CACHE)) {
        feox_err err = feox_store_find_locked(s, k->how.txn, k->shard, k->hash, key, key_len);
        if (err) {
            pthread_mutex_unlock(&k->shard->lock);
            return err;
        }
    }
    k->entry = feox_hash_lookup(&s->hash, k->hash, key, key_len);
    /* Relaxed: every writer of current holds the shard lock taken above. */
    k->current = k->entry ? atomic_load_explicit(&k->entry->current, memory_order_relaxed) : NULL;
    k->now_ns = feox_store_now(s);
    k->live = k->current && !feox_record_expired(k->current, k->now_ns) ? k->current : NULL;
    if (k->current && !k->live)
        feox_stat_inc(s->stats, FEOX_STAT_TTL_EXPIRED_LAZY);
    k->how.replaced = k->live;
    k->key = key;
    k->key_len = key_len;
    /* Referenced before the write retires it (store_undo.c puts it back if need be). */
    k->before = NULL;
    if (k->current && k->how.to_storage && feox_store_waits_durable(s)) {
        feox_record_ref(k->current);
        k->before = k->current;
    }
    return FEOX_OK;
}

/* Resident bytes of the live version (reads a cold value back from the backend). */
static feox_err live_value(feox_store *s, const void *key, size_t key_len, feox_record *live,
                           feox_record **resident)
{
    feox_record_ref(live);
    feox_err err = feox_record_materialize(s, key, key_len, live, resident);
    if (err || *resident != live)
        feox_record_unref(live);
    return err;
}

/* opts->replaced: a resident, referenced copy of the live version about to be replaced (read
 * back from the backend if cold), kept until the write succeeds (keep_replaced). */
static feox_err hold_replaced(feox_store *s, const void *key, size_t key_len, key_state *k,
                              feox_record **held)
{
    *held = NULL;
    if (!k->replaced || !k->live)
        return FEOX_OK;
    return live_value(s, key, key_len, k->live, held);
}

/* Hand the held version to the caller if the write succeeded, else drop it. */
static void keep_replaced(key_state *k, feox_err err, feox_record *held)
{
    if (!held)
        return;
    if (err == FEOX_OK && k->replaced)
        *k->replaced = (feox_value *)held;
    else
        feox_record_unref(held);
}

/* Whether s takes writes at all: not NULL, not inherited through fork(), not read_only. Checked
 * first by every write, before its arguments. */
static feox_err writable(const feox_store *s)
{
    if (!s)
        return feox_fail(FEOX_ERR_INVALID_ARGUMENT, "store is NULL");
    if (feox_store_inherited(s))
        return feox_store_forked_error(s);
    if (s->cfg.read_only)
        return feox_store_read_only_error(s);
    return FEOX_OK;
}

/* The common start of every write: argument checks, then the key's lock and its state. */
static feox_err begin_write(feox_store *s, const void *key, size_t key_len,
                            const feox_write_opts *opts, key_state *k)
{
    feox_err err = writable(s);
    if (err)
        return err;
    err = feox_store_loaded(s);
    if (!err)
        err = feox_check_key(key, key_len);
    if (err)
        return err;
    return lock_key(s, key, key_len, opts, k);
}

/* Unlock, then wait for durability in sync=full mode (never while holding the lock, so
 * concurrent writers can join the same group commit). A write whose record the backend
 * cancelled (its group commit failed) is undone before its error is returned (store_undo.c). */
static feox_err unlock_key(feox_store *s, key_state *k, feox_err err, uint64_t seq)
{
    if (err || !seq || !feox_store_waits_durable(s)) {
        pthread_mutex_unlock(&k->shard->lock);
        if (k->before)
            feox_record_unref(k->before);
        return err;
    }
    feox_durable_wait wait;
    feox_durable_wait_begin(k->shard, &wait, k->key, k->key_len, k->hash, k->before, k->entry);
    pthread_mutex_unlock(&k->shard->lock);
    err = s->storage->methods->wait_durable(s->storage, seq);
    feox_durable_wait_end(s, k->shard, &wait, err);
    return err;
}

/* Build and publish a version of key with the given value (the common tail of every write). */
static feox_err write_version(feox_store *s, key_state *k, const void *key, size_t key_len,
                              const void *value, size_t value_len, uint32_t tag, uint64_t ts_ns,
                              uint64_t expires_at_ns, uint64_t *seq)
{
    feox_record *r = feox_record_new(value, value_len, tag, ts_ns, expires_at_ns, s->location_flag);
    if (!r)
        return feox_fail(FEOX_ERR_NOMEM, "allocation failed");
    /* INDEX_ONLY with an INDEX_CACHE backend: the host restored this version in the backend,
     * which finds values by key; FEOX_STORAGE_LOCATION_BY_KEY lets it leave memory like any
     * stored version (unpublished: the publish's release store carries it). */
    if (!k->how.to_storage && (s->storage_caps & FEOX_STORAGE_INDEX_CACHE))
        feox_record_set_location(r, FEOX_STORAGE_LOCATION_BY_KEY);
    feox_err err =
        feox_publish_version(s, k->shard, &k->entry, key, key_len, k->hash, r, &k->how, seq);
    if (err)
        feox_record_free(r);
    return err;
}

/* Write value as key's next version for the writes that change a value (increment, compare and
 * swap, patch): the timestamp opts asks for (or the clock's), opts' tag with FEOX_WRITE_TAG (else
 * the live version's), and the expiry opts asks for (else the live version's TTL is kept). */
static feox_err write_changed_value(feox_store *s, key_state *k, const void *key, size_t key_len,
                                    const void *value, size_t value_len,
                                    const feox_write_opts *opts, uint64_t *seq)
{
    uint64_t ts = 0;
    feox_err err = choose_timestamp(s, opts, k->current, k->live, k->now_ns, &ts);
    if (err)
        return err;
    uint32_t tag = opts && (opts->flags & FEOX_WRITE_TAG) ? opts->tag : k->live ? k->live->tag : 0;
    return write_version(s, k, key, key_len, value, value_len, tag, ts,
                         choose_expiry(opts, k->live, k->now_ns, true), seq);
}

feox_err feox_insert(feox_store *s, const void *key, size_t key_len, const void *value,
                     size_t value_len, const feox_write_opts *opts, bool *created)
{
    feox_clear_error_detail();
    key_state k;
    feox_err err = writable(s);
    if (!err)
        err = check_value(value, value_len);
    if (!err)
        err = begin_write(s, key, key_len, opts, &k);
    if (err)
        return err;
    uint64_t seq = 0, ts = 0;
    feox_record *held = NULL;
    if (opts && (opts->flags & FEOX_WRITE_IF_ABSENT) && k.live) {
        err = feox_fail(FEOX_ERR_KEY_EXISTS, "key already exists");
        goto out;
    }
    err = choose_timestamp(s, opts, k.current, k.live, k.now_ns, &ts);
    if (!err)
        err = hold_replaced(s, key, key_len, &k, &held);
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
    err = unlock_key(s, &k, err, seq);
    keep_replaced(&k, err, held);
    return err;
}

feox_err feox_delete(feox_store *s, const void *key, size_t key_len, const feox_write_opts *opts)
{
    feox_clear_error_detail();
    key_state k;
    feox_err err = begin_write(s, key, key_len, opts, &k);
    if (err)
        return err;
    uint64_t ts = 0, seq = 0;
    feox_record *held = NULL;
    if (!k.live) {
        if (k.entry) /* expired: reclaim it now; its expiry already keeps it dead on disk */
            feox_store_remove_entry(s, k.shard, k.entry, NULL, 0, NULL);
        err = feox_fail(FEOX_ERR_KEY_NOT_FOUND, "key not found");
        goto out;
    }
    err = choose_timestamp(s, opts, k.current, k.live, k.now_ns, &ts);
    if (!err)
        err = hold_replaced(s, key, key_len, &k, &held);
    if (!err)
        err = feox_store_remove_entry(s, k.shard, k.entry, &k.how, ts, &seq);
    if (!err) {
        k.entry = NULL; /* retired: the key is absent now */
        feox_stat_inc(s->stats, FEOX_STAT_DELETES);
    }
out:
    err = unlock_key(s, &k, err, seq);
    keep_replaced(&k, err, held);
    return err;
}

feox_err feox_update_ttl(feox_store *s, const void *key, size_t key_len, uint64_t ttl_secs,
                         const feox_write_opts *opts)
{
    feox_clear_error_detail();
    key_state k;
    feox_err err = begin_write(s, key, key_len, opts, &k);
    if (err)
        return err;
    uint64_t ts = 0, seq = 0;
    feox_record *held = NULL;
    if (!k.live) {
        err = feox_fail(FEOX_ERR_KEY_NOT_FOUND, "key not found");
        goto out;
    }
    err = choose_timestamp(s, NULL, k.current, k.live, k.now_ns, &ts);
    if (err)
        goto out;
    feox_record *resident = NULL;
    err = live_value(s, key, key_len, k.live, &resident);
    if (err)
        goto out;
    if (k.replaced) {
        feox_record_ref(resident); /* the live version's bytes: what the caller gets back */
        held = resident;
    }
    feox_write_opts ttl = {.flags = FEOX_WRITE_TTL, .ttl_secs = ttl_secs};
    err = write_version(s, &k, key, key_len, resident->value, resident->value_len, k.live->tag, ts,
                        choose_expiry(&ttl, k.live, k.now_ns, false), &seq);
    feox_record_unref(resident);
out:
    err = unlock_key(s, &k, err, seq);
    keep_replaced(&k, err, held);
    return err;
}

feox_err feox_atomic_increment(feox_store *s, const void *key, size_t key_len, int64_t delta,
                               const feox_write_opts *opts, int64_t *result)
{
    feox_clear_error_detail();
    key_state k;
    feox_err err = begin_write(s, key, key_len, opts, &k);
    if (err)
        return err;
    uint64_t seq = 0;
    feox_record *held = NULL;
    int64_t value = delta;
    if (k.live) {
        if (k.live->value_len != 8) {
            err = feox_fail(FEOX_ERR_INVALID_OPERATION, "value is %u bytes, a counter is 8",
                            k.live->value_len);
            goto out;
        }
        feox_record *resident;
        err = live_value(s, key, key_len, k.live, &resident);
        if (err)
            goto out;
        uint64_t u = feox_get_le64(resident->value);
        if (k.replaced)
            held = resident; /* the caller's reference on the replaced version */
        else
            feox_record_unref(resident);
        value = feox_sat_add_i64((int64_t)u, delta);
    }
    uint8_t le[8];
    feox_put_le64(le, (uint64_t)value);
    bool was_live = k.live != NULL;
    err = write_changed_value(s, &k, key, key_len, le, 8, opts, &seq);
    if (!err) {
        feox_stat_inc(s->stats, FEOX_STAT_INCREMENTS);
        feox_stat_inc(s->stats, was_live ? FEOX_STAT_UPDATES : FEOX_STAT_INSERTS);
        if (result)
            *result = value;
    }
out:
    err = unlock_key(s, &k, err, seq);
    keep_replaced(&k, err, held);
    return err;
}

feox_err feox_compare_and_swap(feox_store *s, const void *key, size_t key_len, const void *expected,
                               size_t expected_len, const void *new_value, size_t new_len,
                               const feox_write_opts *opts, bool *swapped)
{
    feox_clear_error_detail();
    if (swapped)
        *swapped = false;
    key_state k;
    feox_err err = writable(s);
    if (!err)
        err = check_value(new_value, new_len);
    if (!err && !expected && expected_len)
        err = feox_fail(FEOX_ERR_INVALID_ARGUMENT, "expected is NULL but expected_len is %zu",
                        expected_len);
    if (!err)
        err = begin_write(s, key, key_len, opts, &k);
    if (err)
        return err;
    uint64_t seq = 0;
    feox_record *held = NULL;
    bool match = false;
    if (k.live && k.live->value_len == expected_len &&
        (!(opts && (opts->flags & FEOX_WRITE_MATCH_TAG)) || k.live->tag == opts->expected_tag)) {
        feox_record *resident;
        err = live_value(s, key, key_len, k.live, &resident);
        if (err)
            goto out;
        match = expected_len == 0 || memcmp(resident->value, expected, expected_len) == 0;
        if (match && k.replaced)
            held = resident; /* the caller's reference on the replaced version */
        else
            feox_record_unref(resident);
    }
    if (!match) {
        feox_stat_inc(s->stats, FEOX_STAT_CAS_FAILURE);
        goto out;
    }
    err = write_changed_value(s, &k, key, key_len, new_value, new_len, opts, &seq);
    if (!err) {
        feox_stat_inc(s->stats, FEOX_STAT_CAS_SUCCESS);
        feox_stat_inc(s->stats, FEOX_STAT_UPDATES);
        if (swapped)
            *swapped = true;
    }
out:
    err = unlock_key(s, &k, err, seq);
    keep_replaced(&k, err, held);
    return err;
}

/* Publish a patched document if the key still holds `base` (whose bytes are `resident`);
 * *raced = true if it changed. */
static feox_err publish_patched(feox_store *s, const void *key, size_t key_len,
                                const feox_record *base, feox_record *resident, const char *doc,
                                size_t doc_len, const feox_write_opts *opts, bool *raced)
{
    key_state k;
    feox_err err = lock_key(s, key, key_len, opts, &k);
    if (err)
        return err;
    uint64_t seq = 0;
    *raced = k.live != base;
    if (*raced) {
        if (!k.live)
            err = feox_fail(FEOX_ERR_KEY_NOT_FOUND, "key not found");
        goto out;
    }
    err = write_changed_value(s, &k, key, key_len, doc, doc_len, opts, &seq);
    if (!err)
        feox_stat_inc(s->stats, FEOX_STAT_UPDATES);
out:
    if (*raced && !k.live)
        *raced = false; /* deleted meanwhile: report KEY_NOT_FOUND, do not retry */
    err = unlock_key(s, &k, err, seq);
    if (!err && !*raced && k.replaced) {
        feox_record_ref(resident);
        *k.replaced = (feox_value *)resident;
    }
    return err;
}

/* FEOX_WRITE_MATCH_TAG of a patch: the version about to be patched (and, as publish_patched
 * replaces only that version, the one replaced) must have the expected tag. */
static feox_err check_patched_tag(const feox_record *base, const feox_write_opts *opts)
{
    if (!opts || !(opts->flags & FEOX_WRITE_MATCH_TAG) || base->tag == opts->expected_tag)
        return FEOX_OK;
    return feox_fail(FEOX_ERR_TAG_MISMATCH, "value's tag is %u, expected %u", base->tag,
                     opts->expected_tag);
}

feox_err feox_json_patch(feox_store *s, const void *key, size_t key_len, const char *patch,
                         size_t patch_len, const feox_write_opts *opts, char **result,
                         size_t *result_len)
{
    feox_clear_error_detail();
    feox_err err = writable(s);
    if (err)
        return err;
    if (!patch)
        return feox_fail(FEOX_ERR_INVALID_ARGUMENT, "patch is NULL");
    err = feox_store_loaded(s);
    if (!err)
        err = feox_check_key(key, key_len);
    if (err)
        return err;
    if (s->storage_caps & FEOX_STORAGE_INDEX_CACHE) {
        err = feox_store_find(s, opts ? opts->txn : NULL, key, key_len);
        if (err)
            return err;
    }
    /* Optimistic: patch outside any lock, publish only if the value is still the one patched
     * (pointer identity is safe: the reference we hold keeps that version from being reused). */
    for (;;) {
        feox_record *base = feox_store_live_version(s, key, key_len);
        if (!base) {
            feox_stat_inc(s->stats, FEOX_STAT_JSON_PATCH_FAILURES);
            return feox_fail(FEOX_ERR_KEY_NOT_FOUND, "key not found");
        }
        err = check_patched_tag(base, opts);
        if (err) {
            feox_record_unref(base);
            feox_stat_inc(s->stats, FEOX_STAT_JSON_PATCH_FAILURES);
            return err;
        }
        feox_record *resident;
        err = feox_record_materialize(s, key, key_len, base, &resident);
        if (err) {
            feox_record_unref(base);
            return err;
        }
        char *doc = NULL;
        size_t doc_len = 0;
        char message[256] = "";
        err = feox_json_patch_apply((const char *)resident->value, resident->value_len, patch,
                                    patch_len, &doc, &doc_len, message, sizeof message);
        if (err == FEOX_OK && doc_len > FEOX_MAX_VALUE_SIZE)
            err = feox_fail(FEOX_ERR_INVALID_VALUE, "patched document of %zu bytes exceeds %u",
                            doc_len, FEOX_MAX_VALUE_SIZE);
        else if (err)
            feox_set_error_detail("%s", message[0] ? message : feox_strerror(err));
        bool raced = false;
        if (!err)
            err = publish_patched(s, key, key_len, base, resident, doc, doc_len, opts, &raced);
        if (resident != base)
            feox_record_unref(resident);
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
