/*
 * store_storage.c — the store's side of the storage seam (feox_storage.h): choosing, opening and
 * loading the backend; the sinks that apply what a backend sends (load, refresh, find on a
 * miss); reading cold values back; feox_refresh; and the host calls a backend makes (relocate
 * a version, visit the live records, read the clock).
 */
#include <string.h>

#include "base/alloc.h"
#include "store/store_internal.h"

#define LIVE_BATCH 64

/* ---- applying what the backend sends ---- */

static feox_record *record_of(const feox_store *s, const feox_storage_record *rec)
{
    feox_record *r =
        feox_record_new(rec->value, rec->value_len, rec->tag, rec->ts_ns, rec->expires_at_ns,
                        s->location_flag | (rec->value == NULL ? FEOX_RECORD_COLD : 0));
    if (r) /* not published yet: the publish's release store carries it */
        feox_record_set_location(r, rec->location);
    return r;
}

static feox_err check_record(const feox_storage_record *rec)
{
    if (!rec || !rec->key || rec->key_len == 0 || rec->key_len > FEOX_MAX_KEY_SIZE ||
        rec->value_len > FEOX_MAX_VALUE_SIZE)
        return feox_fail(FEOX_ERR_CORRUPT, "the backend sent a record with an invalid size");
    return FEOX_OK;
}

/* load and refresh: the record replaces what the store holds for its key. */
static feox_err sink_put(void *ctx, const feox_storage_record *rec)
{
    feox_store *s = ctx;
    feox_err err = check_record(rec);
    if (err)
        return err;
    feox_record *r = record_of(s, rec);
    if (!r)
        return feox_fail(FEOX_ERR_NOMEM, "allocation failed");
    uint64_t hash = feox_hash_key(&s->hash, rec->key, rec->key_len);
    feox_shard *shard = feox_hash_shard(&s->hash, hash);
    pthread_mutex_lock(&shard->lock);
    err = feox_apply_put(s, shard, hash, rec->key, rec->key_len, r);
    pthread_mutex_unlock(&shard->lock);
    return err;
}

static feox_err sink_del(void *ctx, const void *key, uint32_t key_len, uint64_t ts_ns)
{
    feox_store *s = ctx;
    (void)ts_ns;
    if (!key || key_len == 0 || key_len > FEOX_MAX_KEY_SIZE)
        return feox_fail(FEOX_ERR_CORRUPT, "the backend sent a delete with an invalid key size");
    uint64_t hash = feox_hash_key(&s->hash, key, key_len);
    feox_shard *shard = feox_hash_shard(&s->hash, hash);
    pthread_mutex_lock(&shard->lock);
    feox_apply_delete(s, shard, hash, key, key_len);
    pthread_mutex_unlock(&shard->lock);
    return FEOX_OK;
}

/* refresh (and the full reload it may ask for): the same sink, plus put_ordered, whose versions
 * a run (store_load.c) holds until a put or del comes, apply_ordered, or the backend returns.
 * Once the backend expects at least PIPE_MIN_RECORDS more (a whole table's rest coming), the run
 * goes to a worker thread (store_load_pipe.c) that builds and links the versions while the
 * backend reads its next ones; drained at the same points. Not with max_memory (the run takes
 * nothing there). */
#define PIPE_MIN_RECORDS 16384 /* ~10 ms of rows on one thread; a thread costs ~0.1 ms */

typedef struct refresh_sink {
    feox_store *store;
    feox_put_run run;
    feox_load_pipe *pipe; /* NULL: the run is applied on this thread */
} refresh_sink;

/* What the run holds (and the pipe, if any, has queued) applied now. */
static feox_err refresh_apply_ordered(void *ctx)
{
    refresh_sink *r = ctx;
    return r->pipe ? feox_load_pipe_drain(r->pipe) : feox_put_run_apply(&r->run);
}

static feox_err refresh_put_ordered(void *ctx, const feox_storage_record *rec)
{
    refresh_sink *r = ctx;
    if (r->pipe)
        return feox_load_pipe_put(r->pipe, rec);
    bool taken;
    feox_err err = feox_put_run_add(&r->run, rec, &taken);
    return err || taken ? err : sink_put(r->store, rec);
}

static void refresh_expect(void *ctx, uint64_t records)
{
    refresh_sink *r = ctx;
    feox_put_run_expect(&r->run, records);
    if (!r->pipe && records >= PIPE_MIN_RECORDS && !r->store->cfg.max_memory)
        r->pipe = feox_load_pipe_start(&r->run, sink_put, r->store); /* NULL: stays here */
}

static feox_err refresh_put(void *ctx, const feox_storage_record *rec)
{
    refresh_sink *r = ctx;
    feox_err err = refresh_apply_ordered(r);
    return err ? err : sink_put(r->store, rec);
}

static feox_err refresh_del(void *ctx, const void *key, uint32_t key_len, uint64_t ts_ns)
{
    refresh_sink *r = ctx;
    feox_err err = refresh_apply_ordered(r);
    return err ? err : sink_del(r->store, key, key_len, ts_ns);
}

/* The backend returned: the pipe's worker ended, the run applied and freed. */
static feox_err refresh_finish(refresh_sink *r)
{
    feox_err err = feox_load_pipe_stop(r->pipe);
    r->pipe = NULL;
    feox_err run_err = feox_put_run_finish(&r->run);
    return err ? err : run_err;
}

/* find: the key's shard lock is held by the caller; a version fills the index only where it
 * holds nothing for the key (the index is authoritative for what it holds). */
typedef struct find_ctx {
    feox_store *store;
    feox_shard *shard;
    uint64_t hash;
    const void *key;
    size_t key_len;
} find_ctx;

static feox_err find_put(void *ctx, const feox_storage_record *rec)
{
    find_ctx *f = ctx;
    feox_err err = check_record(rec);
    if (err)
        return err;
    if (rec->key_len != f->key_len || memcmp(rec->key, f->key, f->key_len) != 0)
        return feox_fail(FEOX_ERR_CORRUPT, "find() sent a record of another key");
    if (feox_hash_lookup(&f->store->hash, f->hash, f->key, f->key_len))
        return FEOX_OK;
    feox_record *r = record_of(f->store, rec);
    if (!r)
        return feox_fail(FEOX_ERR_NOMEM, "allocation failed");
    return feox_apply_put(f->store, f->shard, f->hash, f->key, f->key_len, r);
}

static feox_err find_del(void *ctx, const void *key, uint32_t key_len, uint64_t ts_ns)
{
    (void)ctx;
    (void)key;
    (void)key_len;
    (void)ts_ns;
    return FEOX_OK; /* not in the backend either */
}

feox_err feox_store_find_locked(feox_store *s, void *txn, feox_shard *shard, uint64_t hash,
                                const void *key, size_t key_len)
{
    if (!(s->storage_caps & FEOX_STORAGE_INDEX_CACHE) || !s->storage->methods->find ||
        feox_hash_lookup(&s->hash, hash, key, key_len))
        return FEOX_OK;
    find_ctx f = {s, shard, hash, key, key_len};
    feox_storage_sink sink = {.ctx = &f, .put = find_put, .del = find_del};
    return s->storage->methods->find(s->storage, txn, key, (uint32_t)key_len, &sink);
}

feox_err feox_store_find(feox_store *s, void *txn, const void *key, size_t key_len)
{
    uint64_t hash = feox_hash_key(&s->hash, key, key_len);
    feox_shard *shard = feox_hash_shard(&s->hash, hash);
    pthread_mutex_lock(&shard->lock);
    feox_err err = feox_store_find_locked(s, txn, shard, hash, key, key_len);
    pthread_mutex_unlock(&shard->lock);
    return err;
}

/* ---- live versions ---- */

feox_record *feox_store_live_version(feox_store *s, const void *key, size_t key_len)
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

/* ---- cold values ---- */

feox_err feox_record_materialize(feox_store *s, const void *key, size_t key_len, feox_record *r,
                                 feox_record **out)
{
    if (!(r->flags & FEOX_RECORD_COLD)) {
        *out = r;
        return FEOX_OK;
    }
    if (!s->storage)
        return feox_fail(FEOX_ERR_CORRUPT, "cold value in a memory-only store");
    /* A resident, unindexed copy; value NULL leaves the bytes for read_value to fill. */
    feox_record *copy = feox_record_new(NULL, r->value_len, r->tag, r->ts_ns,
                                        feox_record_expires_at(r), s->location_flag);
    if (!copy)
        return feox_fail(FEOX_ERR_NOMEM, "allocation failed");
    const feox_storage_methods *m = s->storage->methods;
    /* Relaxed: a location publishes nothing; the backend orders its own files (for the log,
     * compaction relocates before it closes the old file under fd_lock, so a read that failed
     * on the closed file then loads the new location). */
    uint64_t location = feox_record_location(r);
    feox_err err = m->read_value(s->storage, NULL, key, (uint32_t)key_len, location, copy->value,
                                 r->value_len);
    if (err == FEOX_ERR_CORRUPT) {
        uint64_t moved_to = feox_record_location(r);
        if (moved_to != location) {
            /* A compaction moved the version between our load and the read: read it again. */
            location = moved_to;
            err = m->read_value(s->storage, NULL, key, (uint32_t)key_len, location, copy->value,
                                r->value_len);
        }
    }
    feox_record_set_location(copy, location); /* unpublished */
    if (err) {
        feox_record_free(copy);
        return err;
    }
    *out = copy;
    return FEOX_OK;
}

/* ---- the host calls ---- */

static bool relocate(void *ctx, const void *key, uint32_t key_len, uint64_t old_location,
                     uint64_t new_location)
{
    feox_store *s = ctx;
    uint64_t hash = feox_hash_key(&s->hash, key, key_len);
    feox_shard *shard = feox_hash_shard(&s->hash, hash);
    pthread_mutex_lock(&shard->lock);
    feox_entry *e = feox_hash_lookup(&s->hash, hash, key, key_len);
    /* Relaxed load: every writer of current holds this lock. The CAS is acq_rel like the
     * full-barrier Concurrency Kit CAS it replaced; the lock already orders it with every other
     * writer, and cold reads need nothing from it (feox_record_materialize). */
    feox_record *r = e ? atomic_load_explicit(&e->current, memory_order_relaxed) : NULL;
    _Atomic uint64_t *location = r ? feox_record_location_word(r) : NULL;
    bool moved = location && atomic_compare_exchange_strong_explicit(
                                 location, &old_location, new_location, memory_order_acq_rel,
                                 memory_order_relaxed);
    pthread_mutex_unlock(&shard->lock);
    return moved;
}

/* Return once every write that had called the backend before the call has published its
 * version. A write calls the backend and publishes under its key's shard lock
 * (store_apply.c), so taking and releasing each shard lock once is enough: a write still
 * between the two holds that lock until it has published. */
static void wait_for_stored_writes(feox_store *s)
{
    for (unsigned i = 0; i < feox_hash_shard_count(&s->hash); i++) {
        pthread_mutex_lock(&s->hash.shards[i].lock);
        pthread_mutex_unlock(&s->hash.shards[i].lock);
    }
}

/* A growable byte buffer for the live walk's key copies. */
typedef struct key_buffer {
    uint8_t *data;
    size_t len, cap;
} key_buffer;

static bool key_buffer_add(key_buffer *b, const void *key, size_t len)
{
    if (b->len + len > b->cap || !b->data) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + len)
            cap *= 2;
        uint8_t *data = feox_mem_realloc(b->data, cap);
        if (!data)
            return false;
        b->data = data;
        b->cap = cap;
    }
    memcpy(b->data + b->len, key, len);
    b->len += len;
    return true;
}

/* One batch of the live walk: up to LIVE_BATCH live versions after `bound`, each referenced,
 * with a copy of its key; `bound` becomes the last key scanned. Inside one epoch section. */
typedef struct live_batch {
    feox_record *versions[LIVE_BATCH];
    size_t key_at[LIVE_BATCH];
    uint32_t key_len[LIVE_BATCH];
    size_t count;
    key_buffer keys;
    key_buffer bound;
    bool first, more;
} live_batch;

static feox_err fill_live_batch(feox_store *s, live_batch *b)
{
    feox_entry *entries[LIVE_BATCH];
    feox_err err = FEOX_OK;
    uint64_t now = 0;
    b->count = 0;
    b->keys.len = 0;
    feox_epoch_enter();
    size_t n = feox_ordered_index_scan(s->ordered, b->first ? FEOX_SCAN_FIRST : FEOX_SCAN_GT,
                                       b->bound.data, b->bound.len, entries, LIVE_BATCH);
    for (size_t i = 0; i < n && !err; i++) {
        feox_record *r = feox_entry_live(s, entries[i], &now);
        if (!r)
            continue;
        b->key_at[b->count] = b->keys.len;
        b->key_len[b->count] = entries[i]->key_len;
        if (!key_buffer_add(&b->keys, entries[i]->key, entries[i]->key_len)) {
            err = feox_fail(FEOX_ERR_NOMEM, "allocation failed");
            break;
        }
        feox_record_ref(r);
        b->versions[b->count++] = r;
    }
    if (!err && n) {
        b->bound.len = 0;
        if (!key_buffer_add(&b->bound, entries[n - 1]->key, entries[n - 1]->key_len))
            err = feox_fail(FEOX_ERR_NOMEM, "allocation failed");
    }
    feox_epoch_exit();
    b->first = false;
    b->more = n == LIVE_BATCH;
    return err;
}

/* Walks the ordered index itself (not the public cursor), and never reads a cold value back:
 * the backend gets value NULL for it. */
static feox_err for_each_live(void *ctx, int (*fn)(void *fn_ctx, const feox_storage_record *rec),
                              void *fn_ctx)
{
    feox_store *s = ctx;
    /* The log backend starts its compactor as soon as its replay ends, while the store still
     * builds its indexes (store_load.c): a walk then would see none or part of the keys. */
    if (!atomic_load_explicit(&s->indexes_complete, memory_order_acquire))
        return feox_fail(FEOX_ERR_STALE,
                         "the store is still loading: its indexes are not complete");
    /* Log compaction relies on this: without it, a version written before its rewrite began but
     * published after the walk passed the key would be in neither part of the rewrite. */
    wait_for_stored_writes(s);
    live_batch b;
    memset(&b, 0, sizeof b);
    b.first = true;
    feox_err err = FEOX_OK;
    bool stop = false;
    do {
        err = fill_live_batch(s, &b);
        for (size_t i = 0; i < b.count; i++) {
            if (!err && !stop) {
                const feox_record *r = b.versions[i];
                feox_storage_record rec = {.key = b.keys.data + b.key_at[i],
                                           .key_len = b.key_len[i],
                                           .value = (r->flags & FEOX_RECORD_COLD) ? NULL : r->value,
                                           .value_len = r->value_len,
                                           .tag = r->tag,
                                           .ts_ns = r->ts_ns,
                                           .expires_at_ns = feox_record_expires_at(r),
                                           .location = feox_record_location(r)};
                stop = fn(fn_ctx, &rec) != 0;
            }
            feox_record_unref(b.versions[i]);
        }
    } while (!err && !stop && b.more);
    feox_mem_free(b.keys.data);
    feox_mem_free(b.bound.data);
    return err;
}

static uint64_t host_now(void *ctx)
{
    return feox_store_now(ctx);
}

static feox_err loaded_totals(void *ctx, uint64_t *records, uint64_t *key_value_bytes)
{
    feox_store *s = ctx;
    if (!atomic_load_explicit(&s->indexes_complete, memory_order_acquire))
        return feox_fail(FEOX_ERR_STALE, "the store is still loading");
    *records = s->loaded_records;
    *key_value_bytes = s->loaded_key_value_bytes;
    return FEOX_OK;
}

/* ---- open and load ---- */

feox_err feox_store_attach_storage(feox_store *s)
{
    const feox_storage_methods *m = s->cfg.storage;
    if (!m)
        m = feox_storage_find("log");
    if (!m || m->version < 1 || m->version > FEOX_STORAGE_VERSION || !m->open || !m->load)
        return feox_fail(FEOX_ERR_INVALID_ARGUMENT, "the storage backend '%s' cannot be used",
                         m && m->name ? m->name : "?");
    feox_storage_host host = {.ctx = s,
                              .relocate = relocate,
                              .for_each_live = for_each_live,
                              .now_ns = host_now,
                              .loaded_totals = loaded_totals};
    feox_storage *st = NULL;
    feox_err err = m->open(m, &s->cfg, &host, &st);
    if (err)
        return err;
    s->storage = st;
    s->storage_caps = m->caps;
    /* A backend that finds values by key needs the word only to relocate for value eviction. */
    bool by_key = (m->caps & FEOX_STORAGE_INDEX_CACHE) && (m->caps & FEOX_STORAGE_VALUES_BY_KEY);
    s->location_flag = by_key && !s->cfg.max_memory ? 0 : FEOX_RECORD_LOCATED;
    /* store_load.c: nobody else uses the store yet; it sets indexes_complete once they are (on
     * a background thread when the file's index snapshot answers point reads meanwhile). */
    err = feox_store_first_load(s, st);
    if (err) {
        m->close(st);
        s->storage = NULL;
        /* The indexes may hold part of what was loaded: the caller destroys the whole store. */
    }
    return err;
}

/* ---- feox_refresh ---- */

/* Remove every key from the indexes (a full reload follows): one pass in key order. */
static feox_err clear_indexes(feox_store *s)
{
    key_buffer keys = {0}, bound = {0};
    feox_err err = FEOX_OK;
    bool first = true;
    size_t n;
    do {
        feox_entry *entries[LIVE_BATCH];
        size_t at[LIVE_BATCH];
        uint32_t len[LIVE_BATCH];
        keys.len = 0;
        feox_epoch_enter();
        n = feox_ordered_index_scan(s->ordered, first ? FEOX_SCAN_FIRST : FEOX_SCAN_GT,
                                    bound.data, bound.len, entries, LIVE_BATCH);
        for (size_t i = 0; i < n && !err; i++) {
            at[i] = keys.len;
            len[i] = entries[i]->key_len;
            if (!key_buffer_add(&keys, entries[i]->key, entries[i]->key_len))
                err = feox_fail(FEOX_ERR_NOMEM, "allocation failed");
        }
        feox_epoch_exit();
        first = false;
        for (size_t i = 0; i < n && !err; i++) {
            const void *key = keys.data + at[i];
            uint64_t hash = feox_hash_key(&s->hash, key, len[i]);
            feox_shard *shard = feox_hash_shard(&s->hash, hash);
            pthread_mutex_lock(&shard->lock);
            feox_apply_delete(s, shard, hash, key, len[i]);
            pthread_mutex_unlock(&shard->lock);
        }
        if (!err && n) {
            bound.len = 0;
            if (!key_buffer_add(&bound, keys.data + at[n - 1], len[n - 1]))
                err = feox_fail(FEOX_ERR_NOMEM, "allocation failed");
        }
    } while (!err && n == LIVE_BATCH);
    feox_mem_free(keys.data);
    feox_mem_free(bound.data);
    return err;
}

feox_err feox_refresh(feox_store *s, void *txn)
{
    feox_clear_error_detail();
    if (!s)
        return feox_fail(FEOX_ERR_INVALID_ARGUMENT, "store is NULL");
    if (feox_store_inherited(s))
        return feox_store_forked_error(s);
    if (!s->storage || !s->storage->methods->refresh)
        return FEOX_OK;
    refresh_sink r = {.store = s, .run = {.store = s}};
    feox_storage_sink sink = {.ctx = &r,
                              .put = refresh_put,
                              .del = refresh_del,
                              .put_ordered = refresh_put_ordered,
                              .apply_ordered = refresh_apply_ordered,
                              .expect = refresh_expect};
    feox_err err = s->storage->methods->refresh(s->storage, txn, &sink);
    feox_err run_err = refresh_finish(&r);
    if (err != FEOX_ERR_STALE)
        return err ? err : run_err;
    feox_clear_error_detail();
    err = clear_indexes(s);
    if (!err)
        err = s->storage->methods->load(s->storage, txn, &sink);
    run_err = refresh_finish(&r);
    return err ? err : run_err;
}
