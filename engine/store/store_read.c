/*
 * store_read.c — the lock-free point reads: get, get_into (copy into the caller's buffer), get_ref
 * (zero-copy handles), get_size, contains, get_ttl. With an INDEX_CACHE backend a key the index
 * does not hold is first looked up in the backend (feox_store_find, store_storage.c). While a
 * store file's first load runs in the background, the file's index snapshot answers instead
 * (feox_store_snapshot_find, store_load.c): the only calls that do not wait for the load.
 *
 * A read hashes the key, enters an epoch section, probes the hash index (once, unless an
 * INDEX_CACHE backend must be asked for a key it does not hold), loads entry->current with
 * acquire semantics, checks expiry, and either copies what it needs or takes a reference on
 * the version before leaving the section. It never takes a lock and never blocks a writer.
 * A zero-copy handle (feox_value) is the version itself with one reference held.
 */
#include <string.h>

#include "base/alloc.h"
#include "store/store_internal.h"

#define NS_PER_SEC 1000000000ull

/* Enter an epoch section and find the live version of key (*out NULL if none, counted as a
 * miss); the version stays valid until the section ends. With an INDEX_CACHE backend a key the
 * index does not hold may be in the backend: it is asked (find(), which inserts what it has)
 * outside the section, then the index again; the common case probes the index once. On error
 * no section is open. */
static feox_err enter_find_live(feox_store *s, const void *key, size_t key_len, feox_record **out)
{
    if (__builtin_expect(
            atomic_load_explicit(&s->load_state, memory_order_acquire) != FEOX_LOAD_DONE, 0)) {
        /* Still loading: the index snapshot answers (store_load.c), or this waited. */
        bool served;
        feox_err err = feox_store_snapshot_find(s, key, key_len, out, &served);
        if (err || served)
            return err;
    }
    uint64_t hash = feox_hash_key(&s->hash, key, key_len), now = 0;
    feox_epoch_enter();
    feox_entry *e = feox_hash_lookup(&s->hash, hash, key, key_len);
    if (__builtin_expect(!e && (s->storage_caps & FEOX_STORAGE_INDEX_CACHE), 0)) {
        feox_epoch_exit();
        feox_err err = feox_store_find(s, NULL, key, key_len);
        if (err)
            return err;
        feox_epoch_enter();
        e = feox_hash_lookup(&s->hash, hash, key, key_len);
    }
    feox_record *r = e ? feox_entry_live(s, e, &now) : NULL;
    if (!r && e && now) /* a version exists but the clock had to be read: it expired */
        feox_stat_inc(s->stats, FEOX_STAT_TTL_EXPIRED_LAZY);
    feox_stat_inc(s->stats, FEOX_STAT_GETS);
    if (!r)
        feox_stat_inc(s->stats, FEOX_STAT_GET_MISSES);
    *out = r;
    return FEOX_OK;
}

static feox_err check_read_args(feox_store *s, const void *key, size_t key_len, const void *out)
{
    feox_clear_error_detail();
    if (!s || !out)
        return feox_fail(FEOX_ERR_INVALID_ARGUMENT, "store or output pointer is NULL");
    if (feox_store_inherited(s))
        return feox_store_forked_error(s);
    return feox_check_key(key, key_len);
}

static void fill_info(const feox_record *r, feox_record_info *info)
{
    info->value_len = r->value_len;
    info->tag = r->tag;
    info->timestamp_ns = r->ts_ns;
    info->expires_at_ns = feox_record_expires_at(r);
}

/* A zero-copy handle's holder reads the value later (SQLite copies it out of the handle after
 * more of its own work): start loading the value's cache lines past the header's, which the
 * read just brought in, so that they arrive meanwhile instead of one after the other then. The
 * first few lines only: a longer copy runs into the hardware's own stream prefetch. */
#define PREFETCH_VALUE_LINES 4

static inline void prefetch_value(const feox_record *r)
{
    uintptr_t line = ((uintptr_t)r & ~(uintptr_t)63) + 64;
    uintptr_t end = (uintptr_t)r->value + r->value_len;
    for (int i = 0; i < PREFETCH_VALUE_LINES && line < end; i++, line += 64)
        __builtin_prefetch((const void *)line, 0, 3);
}

feox_err feox_get_ref(feox_store *s, const void *key, size_t key_len, feox_value **out)
{
    feox_err err = check_read_args(s, key, key_len, out);
    if (err)
        return err;
    feox_record *r;
    err = enter_find_live(s, key, key_len, &r);
    if (err)
        return err;
    if (r) {
        if (__builtin_expect(!(r->flags & FEOX_RECORD_COLD), 1))
            prefetch_value(r); /* before the reference's locked add, which orders loads */
        feox_record_ref(r);
    }
    feox_epoch_exit();
    if (!r)
        return feox_fail(FEOX_ERR_KEY_NOT_FOUND, "key not found");
    if (__builtin_expect(!(r->flags & FEOX_RECORD_COLD), 1)) {
        *out = (feox_value *)r; /* resident: the handle is the version itself */
        return FEOX_OK;
    }
    feox_record *resident = NULL;
    err = feox_record_materialize(s, key, key_len, r, &resident);
    feox_record_unref(r); /* a cold version's handle is its resident copy */
    if (err)
        return err;
    *out = (feox_value *)resident;
    return FEOX_OK;
}

const void *feox_value_data(const feox_value *v)
{
    return ((const feox_record *)v)->value;
}

size_t feox_value_size(const feox_value *v)
{
    return ((const feox_record *)v)->value_len;
}

uint32_t feox_value_tag(const feox_value *v)
{
    return ((const feox_record *)v)->tag;
}

void feox_value_info(const feox_value *v, feox_record_info *info)
{
    fill_info((const feox_record *)v, info);
}

void feox_value_release(feox_value *v)
{
    if (v)
        feox_record_unref((feox_record *)v);
}

feox_value *feox_value_retain(feox_value *v)
{
    feox_record_ref((feox_record *)v);
    return v;
}

void feox_value_release_data(const void *data)
{
    /* feox_value_data is the record's value member. */
    feox_record_unref((feox_record *)((uintptr_t)data - FEOX_RECORD_HEADER));
}

/* Hand the live version of key to copy(): a resident one inside the epoch section, with no
 * reference taken (its cache line stays shared between the cores reading a hot key), a cold one
 * after reading it back from the backend. copy() returns false on allocation failure. */
static inline feox_err copy_live(feox_store *s, const void *key, size_t key_len,
                                 bool (*copy)(const feox_record *r, void *ctx), void *ctx)
{
    feox_record *r;
    feox_err err = enter_find_live(s, key, key_len, &r);
    if (err)
        return err;
    bool cold = r && (r->flags & FEOX_RECORD_COLD);
    bool copied = r && !cold ? copy(r, ctx) : true;
    if (cold)
        feox_record_ref(r);
    feox_epoch_exit();
    if (!r)
        return feox_fail(FEOX_ERR_KEY_NOT_FOUND, "key not found");
    if (cold) {
        feox_record *resident = NULL;
        err = feox_record_materialize(s, key, key_len, r, &resident);
        feox_record_unref(r);
        if (err)
            return err;
        copied = copy(resident, ctx);
        feox_record_unref(resident);
    }
    return copied ? FEOX_OK : feox_fail(FEOX_ERR_NOMEM, "allocation failed");
}

typedef struct copy_target {
    void *buf; /* feox_get: allocated by copy_to_new; feox_get_into: the caller's */
    size_t cap;
    size_t *value_len;
    feox_record_info *info;
} copy_target;

/* feox_get_into: what the caller's buffer holds of r, and r's full length. */
static bool copy_to_buffer(const feox_record *r, void *ctx)
{
    copy_target *t = ctx;
    size_t n = r->value_len;
    if (n && t->cap)
        memcpy(t->buf, r->value, n < t->cap ? n : t->cap);
    *t->value_len = n;
    if (t->info)
        fill_info(r, t->info);
    return true;
}

/* feox_get: a new allocation holding r's value. */
static bool copy_to_new(const feox_record *r, void *ctx)
{
    copy_target *t = ctx;
    size_t n = r->value_len;
    t->buf = feox_mem_alloc(n ? n : 1);
    if (!t->buf)
        return false;
    t->cap = n;
    return copy_to_buffer(r, t);
}

feox_err feox_get(feox_store *s, const void *key, size_t key_len, void **value, size_t *value_len,
                  feox_record_info *info)
{
    feox_err err = check_read_args(s, key, key_len, value);
    if (!err && !value_len)
        err = feox_fail(FEOX_ERR_INVALID_ARGUMENT, "value_len is NULL");
    if (err)
        return err;
    size_t n = 0;
    copy_target t = {NULL, 0, &n, info};
    err = copy_live(s, key, key_len, copy_to_new, &t);
    if (err)
        return err; /* nothing was allocated */
    *value = t.buf;
    *value_len = n;
    return FEOX_OK;
}

feox_err feox_get_size(feox_store *s, const void *key, size_t key_len, size_t *value_len)
{
    feox_err err = check_read_args(s, key, key_len, value_len);
    if (err)
        return err;
    feox_record *r;
    err = enter_find_live(s, key, key_len, &r);
    if (err)
        return err;
    if (r)
        *value_len = r->value_len;
    feox_epoch_exit();
    return r ? FEOX_OK : feox_fail(FEOX_ERR_KEY_NOT_FOUND, "key not found");
}

bool feox_contains(feox_store *s, const void *key, size_t key_len)
{
    feox_record *r;
    if (!s || feox_store_inherited(s) || feox_check_key(key, key_len) != FEOX_OK ||
        enter_find_live(s, key, key_len, &r) != FEOX_OK) {
        feox_clear_error_detail();
        return false;
    }
    feox_epoch_exit();
    return r != NULL;
}

feox_err feox_get_ttl(feox_store *s, const void *key, size_t key_len, uint64_t *ttl_secs,
                      bool *has_ttl)
{
    feox_err err = check_read_args(s, key, key_len, ttl_secs);
    if (!err && !has_ttl)
        err = feox_fail(FEOX_ERR_INVALID_ARGUMENT, "has_ttl is NULL");
    if (err)
        return err;
    feox_record *r;
    err = enter_find_live(s, key, key_len, &r);
    if (err)
        return err;
    uint64_t expires_at = r ? feox_record_expires_at(r) : 0;
    feox_epoch_exit();
    if (!r)
        return feox_fail(FEOX_ERR_KEY_NOT_FOUND, "key not found");
    *has_ttl = expires_at != 0;
    *ttl_secs = 0;
    if (*has_ttl) {
        uint64_t now = feox_store_now(s);
        *ttl_secs = expires_at > now ? (expires_at - now) / NS_PER_SEC : 0;
    }
    return FEOX_OK;
}

feox_err feox_get_into(feox_store *s, const void *key, size_t key_len, void *buf, size_t cap,
                       size_t *value_len, feox_record_info *info)
{
    feox_err err = check_read_args(s, key, key_len, value_len);
    if (!err && !buf && cap)
        err = feox_fail(FEOX_ERR_INVALID_ARGUMENT, "buffer is NULL and its capacity is not 0");
    if (err)
        return err;
    copy_target t = {buf, cap, value_len, info};
    return copy_live(s, key, key_len, copy_to_buffer, &t);
}
