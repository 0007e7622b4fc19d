/*
 * storage_sqlite.c — the "sqlite" storage backend: the feox_storage_methods that keep a table's
 * records in its shadow tables (layout, transactions and coherence: storage_sqlite.h), and the
 * transaction calls the virtual table makes. Statements are prepared on first use and run nested
 * on the table's own connection (storage_sqlite_sql.c). check() is in storage_sqlite_check.c.
 */
#include <math.h>
#include <string.h>

#include "feox_ext.h"
#include "storage_sqlite_internal.h"

SQLITE_EXTENSION_INIT3

#define DEFAULT_PENDING_LIMIT (32u * 1024u * 1024u)
#define DEFAULT_FEED_LIMIT 65536u
#define TRIM_MIN_BATCH 4096u
#define DEFAULT_SWEEP_LIMIT 64u
#define MIN_PENDING_LIMIT (64u * 1024u)

/* Step a statement that returns no row, then reset it. Its callers bind every parameter that
 * changed (PUT and LOG skip what is still bound: storage_sqlite_internal.h), so the bindings are
 * left as they are (clearing them costs a call per statement). */
static feox_err run(feox_sqlite_backend *b, sqlite3_stmt *s, const char *what)
{
    int rc = sqlite3_step(s);
    feox_err err = rc == SQLITE_DONE ? FEOX_OK : feox_sq_sql_error(b, rc, what);
    sqlite3_reset(s);
    return err;
}

/* ---- values: record bytes <-> the value column (the rules are in storage_sqlite.h) ---------- */

static int bind_value(sqlite3_stmt *s, int i, uint32_t tag, const void *value, uint32_t len,
                      bool text_ok)
{
    if (tag == FEOX_TAG_INTEGER && len == 8) {
        return sqlite3_bind_int64(s, i, (sqlite3_int64)feox_sq_get_u64(value));
    }
    if (tag == FEOX_TAG_REAL && len == 8) {
        uint64_t bits = feox_sq_get_u64(value);
        double d;
        memcpy(&d, &bits, sizeof d);
        if (isfinite(d) && !(d == 0.0 && signbit(d))) { /* NaN would become NULL, -0.0 0.0 */
            return sqlite3_bind_double(s, i, d);
        }
    } else if (tag == FEOX_TAG_TEXT && text_ok && (len == 0 || memchr(value, 0, len) == NULL)) {
        return sqlite3_bind_text64(s, i, len ? value : "", len, SQLITE_STATIC, SQLITE_UTF8);
    } else if (tag == FEOX_TAG_NULL && len == 0) {
        return sqlite3_bind_null(s, i);
    }
    if (len == 0) {
        return sqlite3_bind_zeroblob(s, i, 0);
    }
    return sqlite3_bind_blob64(s, i, value, len, SQLITE_STATIC);
}

/* ---- the table's seq and data version -------------------------------------------------------- */

/* Bind ?1 key, ?2 value, ?3 tag (unless *tag_known says it is bound), ?4 ts and ?6 seq of PUT
 * or OVERWRITE. */
static void bind_row(feox_sqlite_backend *b, sqlite3_stmt *s, bool *tag_known, uint32_t *bound_tag,
                     const void *key, uint32_t key_len, const void *value, uint32_t value_len,
                     uint32_t tag, uint64_t ts_ns, uint64_t seq)
{
    sqlite3_bind_blob64(s, 1, key, key_len, SQLITE_STATIC);
    bind_value(s, 2, tag, value, value_len, b->text_as_text);
    if (!*tag_known || *bound_tag != tag) { /* most writes repeat the last tag */
        *tag_known = sqlite3_bind_int64(s, 3, (sqlite3_int64)tag) == SQLITE_OK;
        *bound_tag = tag;
    }
    sqlite3_bind_int64(s, 4, (sqlite3_int64)ts_ns);
    sqlite3_bind_int64(s, 6, (sqlite3_int64)seq);
}

/* Write a row: an UPDATE in place where the row is expected (had_row: see feox_pending_entry)
 * and neither it nor the new version has an expiry; else, or if that found no such row, INSERT
 * OR REPLACE. The hint decides only which statement runs first: either way the row is right. */
static feox_err write_row(feox_sqlite_backend *b, const void *key, uint32_t key_len,
                          const void *value, uint32_t value_len, uint32_t tag, uint64_t ts_ns,
                          uint64_t expires_at_ns, uint64_t seq, bool had_row)
{
    sqlite3_stmt *s;
    feox_err err = feox_sq_learn_encoding(b);
    if (err != FEOX_OK) {
        return err;
    }
    feox_sq_expiry_lower(b, expires_at_ns);
    b->rows_written++;
    b->bytes_written += key_len + value_len;
    if (had_row && expires_at_ns == 0) {
        err = feox_sq_stmt(b, FEOX_SQ_OVERWRITE, &s);
        if (err != FEOX_OK) {
            return err;
        }
        bind_row(b, s, &b->overwrite_tag_known, &b->overwrite_tag, key, key_len, value,
                 value_len, tag, ts_ns, seq);
        err = run(b, s, "writing a record");
        if (err != FEOX_OK || sqlite3_changes(b->db) != 0) {
            return err;
        }
    }
    err = feox_sq_stmt(b, FEOX_SQ_PUT, &s);
    if (err != FEOX_OK) {
        return err;
    }
    bind_row(b, s, &b->put_tag_known, &b->put_tag, key, key_len, value, value_len, tag, ts_ns, seq);
    if (expires_at_ns != 0) {
        sqlite3_bind_int64(s, 5, (sqlite3_int64)expires_at_ns);
        b->put_expires_set = true;
    } else if (b->put_expires_set) {
        b->put_expires_set = sqlite3_bind_null(s, 5) != SQLITE_OK;
    }
    return run(b, s, "writing a record");
}

static feox_err delete_row(feox_sqlite_backend *b, const void *key, uint32_t key_len)
{
    sqlite3_stmt *s;
    feox_err err = feox_sq_stmt(b, FEOX_SQ_DEL, &s);
    if (err != FEOX_OK) {
        return err;
    }
    sqlite3_bind_blob64(s, 1, key, key_len, SQLITE_STATIC);
    b->rows_written++;
    return run(b, s, "deleting a record");
}

static feox_err run_seq(feox_sqlite_backend *b, feox_sq_id id, uint64_t seq, const char *what)
{
    sqlite3_stmt *s;
    feox_err err = feox_sq_stmt(b, id, &s);
    if (err != FEOX_OK) {
        return err;
    }
    sqlite3_bind_int64(s, 1, (sqlite3_int64)seq);
    return run(b, s, what);
}

/* A transaction with more changes than the feed keeps writes no feed rows: drop its own. */
static feox_err stop_logging(feox_sqlite_backend *b)
{
    feox_err err = run_seq(b, FEOX_SQ_LOG_DROP_AFTER, b->txn_base, "dropping feed rows");
    if (err == FEOX_OK) {
        b->txn_logging = false;
    }
    return err;
}

/* One change (a write, or a delete with value NULL) at the transaction's next seq (had_row: see
 * write_row). */
static feox_err emit_change(feox_sqlite_backend *b, const void *key, uint32_t key_len,
                            const void *value, uint32_t value_len, uint32_t tag, uint64_t ts_ns,
                            uint64_t expires_at_ns, bool is_delete, bool had_row)
{
    uint64_t seq = b->txn_last + 1;
    feox_err err = is_delete ? delete_row(b, key, key_len)
                             : write_row(b, key, key_len, value, value_len, tag, ts_ns,
                                         expires_at_ns, seq, had_row);
    if (err == FEOX_OK && b->txn_logging) {
        sqlite3_stmt *s;
        err = feox_sq_stmt(b, FEOX_SQ_LOG, &s);
        if (err == FEOX_OK) {
            sqlite3_bind_int64(s, 1, (sqlite3_int64)seq);
            sqlite3_bind_blob64(s, 2, key, key_len, SQLITE_STATIC);
            if (is_delete) {
                sqlite3_bind_int64(s, 3, (sqlite3_int64)ts_ns);
                b->log_ts_set = true;
            } else if (b->log_ts_set) {
                b->log_ts_set = sqlite3_bind_null(s, 3) != SQLITE_OK;
            }
            err = run(b, s, "writing the change feed");
        }
    }
    if (err != FEOX_OK) {
        return err;
    }
    b->txn_last = seq;
    b->txn_changes++;
    if (b->txn_logging && b->txn_changes > b->feed_limit) {
        return stop_logging(b);
    }
    return FEOX_OK;
}

/* Write the pending map to the tables in key order and empty it. On failure the map is kept
 * (the caller's transaction fails and SQLite rolls the tables back). */
static feox_err flush_pending(feox_sqlite_backend *b)
{
    feox_pending *p = &b->pending;
    if (p->n == 0) {
        return FEOX_OK;
    }
    /* One change (an autocommit write): nothing to sort */
    const feox_pending_entry *only = &p->entries[0];
    const feox_pending_entry **order = p->n == 1 ? &only : feox_pending_sorted(p);
    if (order == NULL) {
        return feox_sq_sql_error(b, SQLITE_NOMEM, "writing pending records");
    }
    feox_err err = FEOX_OK;
    if (b->txn_logging && b->txn_changes + p->n > b->feed_limit) {
        err = stop_logging(b); /* known in advance: write no feed rows at all */
    }
    for (size_t i = 0; i < p->n && err == FEOX_OK; i++) {
        const feox_pending_entry *e = order[i];
        err = emit_change(b, e->bytes, e->key_len, e->bytes + e->key_len, e->value_len, e->tag,
                          e->ts_ns, e->expires_at_ns, e->is_delete, e->had_row);
        if (err == FEOX_OK && b->relocate && !e->is_delete) {
            /* In the table now: the store may drop its bytes (no engine lock is held here:
             * change() leaves the flush to feox_sqlite_storage_settle when relocating). */
            (void)b->host.relocate(b->host.ctx, e->bytes, e->key_len, 0, b->txn_last);
        }
    }
    if (order != &only) {
        sqlite3_free(order);
    }
    if (err == FEOX_OK) {
        feox_pending_clear(p);
        b->flushes++;
    }
    return err;
}

/* ---- the methods ----------------------------------------------------------------------------- */

static feox_sqlite_backend *backend_of(feox_storage *st)
{
    return (feox_sqlite_backend *)st;
}

static void lock(feox_sqlite_backend *b)
{
    sqlite3_mutex_enter(sqlite3_db_mutex(b->db));
    b->calls++;
}

static void unlock(feox_sqlite_backend *b)
{
    sqlite3_mutex_leave(sqlite3_db_mutex(b->db));
}

/* lock()/unlock() for a method: a call the engine makes. */
static void method_enter(feox_sqlite_backend *b)
{
    lock(b);
    b->engine_calls++;
}

static void method_leave(feox_sqlite_backend *b)
{
    b->engine_calls--;
    unlock(b);
}

static feox_err sq_open(const feox_storage_methods *methods, const feox_config *cfg,
                        const feox_storage_host *host, feox_storage **out)
{
    feox_sqlite_table *t = cfg != NULL ? cfg->storage_arg : NULL;
    if (out == NULL || t == NULL || t->db == NULL || t->schema == NULL || t->table == NULL ||
        (t->write_mode != FEOX_SQLITE_WRITE_BUFFERED &&
         t->write_mode != FEOX_SQLITE_WRITE_THROUGH)) {
        return FEOX_ERR_INVALID_ARGUMENT;
    }
    if (t->backend != NULL) {
        return FEOX_ERR_INVALID_ARGUMENT; /* one open backend per argument */
    }
    feox_sqlite_backend *b = sqlite3_malloc64(sizeof *b);
    if (b == NULL) {
        return FEOX_ERR_NOMEM;
    }
    memset(b, 0, sizeof *b);
    b->base.methods = methods;
    b->t = t;
    b->db = t->db;
    b->schema = sqlite3_mprintf("%s", t->schema);
    b->table = sqlite3_mprintf("%s", t->table);
    if (b->schema == NULL || b->table == NULL) {
        sqlite3_free(b->schema);
        sqlite3_free(b->table);
        sqlite3_free(b);
        return FEOX_ERR_NOMEM;
    }
    b->dv_schema = sqlite3_stricmp(b->schema, "main") == 0 ? NULL : b->schema;
    if (host != NULL) {
        b->host = *host;
    }
    b->mode = t->write_mode;
    b->pending_limit = t->pending_limit ? t->pending_limit : DEFAULT_PENDING_LIMIT;
    b->feed_limit = t->feed_limit ? t->feed_limit : DEFAULT_FEED_LIMIT;
    b->sweep_limit = t->no_commit_sweep ? 0 : t->sweep_limit ? t->sweep_limit : DEFAULT_SWEEP_LIMIT;
    if (cfg->max_memory != 0) {
        /* Larger than memory: half of the budget for values at load (as the log backend), and
         * a pending map that holds at most a quarter of it. */
        b->relocate = b->host.relocate != NULL;
        b->resident_budget = cfg->max_memory / 2;
        if (t->pending_limit == 0) {
            uint64_t quarter = cfg->max_memory / 4;
            b->pending_limit = quarter < MIN_PENDING_LIMIT  ? MIN_PENDING_LIMIT
                               : quarter > b->pending_limit ? b->pending_limit
                                                            : quarter;
        }
    }
    t->errcode = SQLITE_OK;
    t->errmsg[0] = '\0';
    t->backend = b;
    *out = &b->base;
    return FEOX_OK;
}

static feox_err sq_load(feox_storage *st, void *txn, const feox_storage_sink *sink)
{
    (void)txn;
    feox_sqlite_backend *b = backend_of(st);
    if (sink == NULL) {
        return FEOX_ERR_INVALID_ARGUMENT;
    }
    method_enter(b);
    feox_sq_clear_error(b);
    feox_sq_expiry_unknown(b);
    b->loaded_file = feox_sq_database_file(b);
    b->in_memory_image = feox_sq_is_memory_image(b);
    b->loaded_image = feox_sq_database_image(b);
    feox_err err = feox_sq_lazy_load(b, sink);
    method_leave(b);
    return err;
}

/* A write or delete: into the pending map (buffered) or the tables (write-through). replaced:
 * the key's version the store replaced (NULL: none), for the hint of write_row. */
static feox_err change(feox_sqlite_backend *b, const void *key, uint32_t key_len, const void *value,
                       uint32_t value_len, uint32_t tag, uint64_t ts_ns, uint64_t expires_at_ns,
                       bool is_delete, const feox_storage_record *replaced, uint64_t *location)
{
    bool had_row = replaced != NULL && replaced->expires_at_ns == 0;
    if (!b->in_txn) {
        return feox_sq_fail(b, FEOX_ERR_INVALID_ARGUMENT,
                            "write outside a transaction (feox_sqlite_storage_begin)");
    }
    feox_err err;
    if (b->mode == FEOX_SQLITE_WRITE_THROUGH) {
        err = emit_change(b, key, key_len, value, value_len, tag, ts_ns, expires_at_ns, is_delete,
                          had_row);
        if (location != NULL) {
            *location = b->txn_last;
        }
        return err;
    }
    if (!feox_pending_put(&b->pending, key, key_len, value, value_len, tag, ts_ns, expires_at_ns,
                          is_delete, had_row)) {
        return feox_sq_sql_error(b, SQLITE_NOMEM, "keeping a pending record");
    }
    if (location != NULL) {
        *location = feox_sq_pending_location(b);
    }
    if (b->pending.bytes > b->pending_limit && !b->relocate) {
        return flush_pending(b); /* relocating: feox_sqlite_storage_settle, outside the lock */
    }
    return FEOX_OK;
}

static feox_err sq_write(feox_storage *st, void *txn, const feox_storage_record *rec,
                         const feox_storage_record *replaced, uint64_t *location, uint64_t *seq)
{
    (void)txn;
    feox_sqlite_backend *b = backend_of(st);
    if (rec == NULL || rec->key == NULL || rec->value == NULL) {
        return FEOX_ERR_INVALID_ARGUMENT;
    }
    method_enter(b);
    feox_sq_clear_error(b);
    feox_err err = change(b, rec->key, rec->key_len, rec->value, rec->value_len, rec->tag,
                          rec->ts_ns, rec->expires_at_ns, false, replaced, location);
    method_leave(b);
    if (seq != NULL) {
        *seq = 0; /* durability is the host's commit */
    }
    return err;
}

static feox_err sq_erase(feox_storage *st, void *txn, const void *key, uint32_t key_len,
                         uint64_t ts_ns, const feox_storage_record *replaced, uint64_t *seq)
{
    (void)txn;
    feox_sqlite_backend *b = backend_of(st);
    if (key == NULL) {
        return FEOX_ERR_INVALID_ARGUMENT;
    }
    method_enter(b);
    feox_sq_clear_error(b);
    feox_err err = change(b, key, key_len, NULL, 0, 0, ts_ns, 0, true, replaced, NULL);
    method_leave(b);
    if (seq != NULL) {
        *seq = 0;
    }
    return err;
}

/* Look key up: the pending map first (if pending_too), then the data table. *found false: no
 * current version. On success with found, rec points into the pending entry or the statement
 * (reset it after). */
static feox_err lookup(feox_sqlite_backend *b, const void *key, uint32_t key_len, bool pending_too,
                       unsigned char num[8], feox_storage_record *rec, bool *found,
                       sqlite3_stmt **held)
{
    *held = NULL;
    const feox_pending_entry *e = pending_too ? feox_pending_get(&b->pending, key, key_len) : NULL;
    if (e != NULL) {
        *found = !e->is_delete;
        feox_storage_record r = {
            e->bytes, e->key_len, e->bytes + e->key_len, e->value_len,
            e->tag,   e->ts_ns,   e->expires_at_ns,      feox_sq_pending_location(b)};
        *rec = r;
        return FEOX_OK;
    }
    sqlite3_stmt *s;
    feox_err err = feox_sq_stmt(b, FEOX_SQ_FIND, &s);
    if (err != FEOX_OK) {
        return err;
    }
    sqlite3_bind_blob64(s, 1, key, key_len, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    b->rows_read++;
    if (rc == SQLITE_ROW) {
        err = feox_sq_column_record(b, s, 0, key, key_len, num, rec);
        if (err != FEOX_OK) {
            sqlite3_reset(s);
            return err;
        }
        b->bytes_read += rec->value_len;
        *found = true;
        *held = s;
        return FEOX_OK;
    }
    err = rc == SQLITE_DONE ? FEOX_OK : feox_sq_sql_error(b, rc, "reading a record");
    sqlite3_reset(s);
    *found = false;
    return err;
}

static void release_held(sqlite3_stmt *held)
{
    if (held != NULL) {
        sqlite3_reset(held);
        sqlite3_clear_bindings(held);
    }
}

static feox_err sq_find(feox_storage *st, void *txn, const void *key, uint32_t key_len,
                        const feox_storage_sink *sink)
{
    (void)txn;
    feox_sqlite_backend *b = backend_of(st);
    if (key == NULL || sink == NULL) {
        return FEOX_ERR_INVALID_ARGUMENT;
    }
    method_enter(b);
    feox_sq_clear_error(b);
    if (feox_pending_get(&b->pending, key, key_len) == NULL &&
        feox_sq_lazy_covers(b, key, key_len)) {
        /* The store asks only for keys its cache does not hold, and the cache holds every row
         * of this key's range (storage_sqlite_load.c): not found, without SQL. */
        feox_err err = sink->del(sink->ctx, key, key_len, 0);
        method_leave(b);
        return err;
    }
    unsigned char num[8];
    feox_storage_record rec;
    bool found = false;
    sqlite3_stmt *held;
    int limit = feox_sq_lift_length_limit(b);
    feox_err err = lookup(b, key, key_len, true, num, &rec, &found, &held);
    if (err == FEOX_OK) {
        err = found ? sink->put(sink->ctx, &rec) : sink->del(sink->ctx, key, key_len, 0);
    }
    release_held(held);
    feox_sq_restore_length_limit(b, limit);
    method_leave(b);
    return err;
}

static feox_err sq_read_value(feox_storage *st, void *txn, const void *key, uint32_t key_len,
                              uint64_t location, void *buf, uint32_t value_len)
{
    (void)txn;
    (void)location; /* rows are found by key */
    feox_sqlite_backend *b = backend_of(st);
    if (key == NULL || (buf == NULL && value_len != 0)) {
        return FEOX_ERR_INVALID_ARGUMENT;
    }
    method_enter(b);
    feox_sq_clear_error(b);
    unsigned char num[8];
    feox_storage_record rec;
    bool found = false;
    sqlite3_stmt *held;
    /* A cold version is never a pending one (pending versions have location 0 and are never
     * evicted while max_memory relocates them): its bytes are the table's row, also when the
     * key has a newer pending change (a reader still holding the older version). Read inside
     * the caller's transaction: from xColumn the statement's read transaction is open and the
     * cache was brought to its snapshot at xFilter. */
    int limit = feox_sq_lift_length_limit(b);
    feox_err err = lookup(b, key, key_len, !b->relocate, num, &rec, &found, &held);
    if (err == FEOX_OK && (!found || rec.value_len != value_len)) {
        err = feox_sq_fail(b, FEOX_ERR_CORRUPT,
                           found ? "a value's length differs from the cached record's"
                                 : "a cached record has no row");
    } else if (err == FEOX_OK && value_len != 0) {
        memcpy(buf, rec.value, value_len);
    }
    release_held(held);
    feox_sq_restore_length_limit(b, limit);
    method_leave(b);
    return err;
}

/* Apply the feed rows after b->cache_seq to sink. */
static feox_err apply_feed(feox_sqlite_backend *b, const feox_storage_sink *sink)
{
    sqlite3_stmt *s;
    feox_err err = feox_sq_stmt(b, FEOX_SQ_FEED, &s);
    if (err != FEOX_OK) {
        return err;
    }
    sqlite3_bind_int64(s, 1, (sqlite3_int64)b->cache_seq);
    int rc, limit = feox_sq_lift_length_limit(b);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        sqlite3_int64 log_seq = sqlite3_column_int64(s, 0);
        if (sqlite3_column_type(s, 1) != SQLITE_BLOB) {
            /* Only a hand edit makes it: as bytes it would name another key (or none). */
            char what[160];
            sqlite3_snprintf((int)sizeof what, what,
                             "a row of %s_log is damaged: a key that is not a BLOB", b->table);
            err = feox_sq_fail(b, FEOX_ERR_CORRUPT, what);
            break;
        }
        uint32_t key_len;
        const void *key = feox_sq_column_key(s, 1, &key_len);
        b->feed_rows++;
        if (sqlite3_column_type(s, 7) == SQLITE_NULL) {
            err = sink->del(sink->ctx, key, key_len, (uint64_t)sqlite3_column_int64(s, 2));
        } else if (sqlite3_column_int64(s, 7) > log_seq) {
            continue; /* a later feed row of this key sends its current version */
        } else {
            unsigned char num[8];
            feox_storage_record rec;
            err = feox_sq_column_record(b, s, 3, key, key_len, num, &rec);
            if (err != FEOX_OK) {
                break;
            }
            feox_sq_expiry_lower(b, rec.expires_at_ns); /* another's row in the index */
            err = sink->put(sink->ctx, &rec);
        }
        if (err != FEOX_OK) {
            break;
        }
    }
    if (err == FEOX_OK && rc != SQLITE_DONE) {
        err = feox_sq_sql_error(b, rc, "reading the change feed");
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    feox_sq_restore_length_limit(b, limit);
    return err;
}

/* The change feed part of refresh (outside a transaction). */
static feox_err refresh_feed(feox_sqlite_backend *b, const feox_storage_sink *sink)
{
    if (!b->loaded) {
        return FEOX_ERR_STALE;
    }
    if (feox_sq_database_image(b) != b->loaded_image) {
        feox_sq_expiry_unknown(b);
        b->loaded = false; /* another database under the table (deserialized): reload */
        return FEOX_ERR_STALE;
    }
    unsigned dv = feox_sq_data_version(b);
    /* The version is current only while a transaction is open on the schema. */
    if (dv == b->last_dv && sqlite3_txn_state(b->db, b->schema) > SQLITE_TXN_NONE) {
        b->current_at_call = b->calls;
        return FEOX_OK;
    }
    b->slow_refreshes++;
    feox_sq_clear_error(b);
    uint64_t cur, min_seq;
    int cookie = b->loaded_cookie;
    feox_err err = feox_sq_read_seq(b, &cur, &min_seq);
    if (err == FEOX_OK) {
        err = feox_sq_read_cookie(b, &cookie); /* after the seq: a change between is seen */
    }
    if (err != FEOX_OK) {
        return err;
    }
    if (cookie != b->loaded_cookie) {
        feox_sq_expiry_unknown(b);
        b->loaded = false; /* the schema changed: the shadow tables may be another table's */
        return FEOX_ERR_STALE;
    }
    if (cur != b->cache_seq) {
        if (cur < b->cache_seq) {
            feox_sq_expiry_unknown(b);
            b->loaded = false; /* the table went back (restored?): only a reload is sound */
            return FEOX_ERR_STALE;
        }
        /* The feed no longer reaches back to the cache: compare what the cache holds with the
         * table instead of reloading it all (storage_sqlite_load.c); else apply the feed. */
        if (b->cache_seq < min_seq) {
            feox_sq_expiry_unknown(b); /* rows are compared, not listed change by change */
            err = feox_sq_lazy_resync(b, sink);
        } else {
            err = apply_feed(b, sink);
        }
        if (err != FEOX_OK) {
            /* The store holds part of the feed: only a reload is sound now. */
            b->loaded = false;
            return err;
        }
        b->cache_seq = cur;
    }
    b->last_dv = dv;
    b->last_min_seq = min_seq;
    return FEOX_OK;
}

bool feox_sqlite_storage_current(feox_sqlite_table *t)
{
    /* No lock(): the caller runs inside a call of SQLite's, under the connection's mutex, which
     * is the lock (and sqlite3_file_control takes it again). */
    feox_sqlite_backend *b = t->backend;
    if (b == NULL || !b->loaded || !b->lazy.complete || b->lazy.want) {
        return false; /* a reload, or rows still to load: refresh() does that */
    }
    /* In a write transaction the cache is current since begin; else the caller's transaction
     * on the schema makes the version current (refresh_feed says why that is enough). */
    return (b->in_txn || feox_sq_data_version(b) == b->last_dv) &&
           feox_sq_database_image(b) == b->loaded_image;
}

static feox_err refresh_locked(feox_sqlite_backend *b, const feox_storage_sink *sink)
{
    /* In a transaction the cache is current since begin (only this connection writes until
     * commit); the lazy load may still have a range to load (storage_sqlite_load.c). */
    feox_err err = b->in_txn ? FEOX_OK : refresh_feed(b, sink);
    return err == FEOX_OK ? feox_sq_lazy_step(b, sink) : err;
}

static feox_err sq_refresh(feox_storage *st, void *txn, const feox_storage_sink *sink)
{
    (void)txn;
    feox_sqlite_backend *b = backend_of(st);
    if (sink == NULL) {
        return FEOX_ERR_INVALID_ARGUMENT;
    }
    method_enter(b);
    feox_err err = refresh_locked(b, sink);
    method_leave(b);
    return err;
}

static void sq_get_stats(feox_storage *st, feox_stats *out)
{
    feox_sqlite_backend *b = backend_of(st);
    if (out == NULL) {
        return;
    }
    method_enter(b);
    out->disk_reads += b->rows_read;
    out->disk_bytes_read += b->bytes_read;
    out->disk_writes += b->rows_written;
    out->disk_bytes_written += b->bytes_written;
    out->flushes += b->flushes;
    out->recovered_records += b->loaded_rows;
    out->recovery_ns += b->load_ns;
    out->ttl_expired_active += b->swept_rows;
    method_leave(b);
}

static feox_err sq_close(feox_storage *st)
{
    feox_sqlite_backend *b = backend_of(st);
    if (b == NULL) {
        return FEOX_OK;
    }
    method_enter(b);
    for (int i = 0; i < FEOX_SQ_COUNT; i++) {
        sqlite3_finalize(b->stmts[i]);
    }
    feox_pending_free(&b->pending);
    feox_sq_lazy_forget(b, true);
    if (b->t->backend == b) {
        b->t->backend = NULL;
    }
    method_leave(b);
    sqlite3_free(b->schema);
    sqlite3_free(b->table);
    sqlite3_free(b);
    return FEOX_OK;
}

static const feox_storage_methods sqlite_methods = {
    .version = FEOX_STORAGE_VERSION,
    .name = "sqlite",
    /* VALUES_BY_KEY: rows are read by key; a version's seq (its location) is kept only with
     * max_memory, to relocate written-out pending versions (storage_sqlite_load.c compares the
     * other versions by their contents). */
    .caps = FEOX_STORAGE_HOST_TXN | FEOX_STORAGE_SELF_COMPACT | FEOX_STORAGE_INDEX_CACHE |
            FEOX_STORAGE_VALUES_BY_KEY,
    .open = sq_open,
    .load = sq_load,
    .write = sq_write,
    .erase = sq_erase,
    .find = sq_find,
    .read_value = sq_read_value,
    .refresh = sq_refresh,
    .check = feox_sq_check,
    .get_stats = sq_get_stats,
    .close = sq_close,
};

const feox_storage_methods *feox_sqlite_storage(void)
{
    return &sqlite_methods;
}

feox_err feox_sqlite_storage_check_tables(feox_sqlite_table *t, char *detail, size_t detail_len)
{
    feox_config cfg;
    feox_config_init(&cfg);
    cfg.storage_arg = t;
    feox_storage *st = NULL;
    feox_err err = sq_open(&sqlite_methods, &cfg, NULL, &st);
    if (err == FEOX_OK) {
        err = feox_sq_check(st, detail, detail_len);
        (void)sq_close(st);
    }
    return err;
}

feox_err feox_sqlite_storage_renamed(feox_sqlite_table *t, const char *new_table)
{
    feox_sqlite_backend *b = t != NULL ? t->backend : NULL;
    if (b == NULL || new_table == NULL) {
        return FEOX_ERR_INVALID_ARGUMENT;
    }
    lock(b);
    feox_sq_clear_error(b);
    char *copy = sqlite3_mprintf("%s", new_table);
    feox_err err = FEOX_ERR_NOMEM;
    if (copy != NULL) {
        for (int i = 0; i < FEOX_SQ_COUNT; i++) {
            sqlite3_finalize(b->stmts[i]); /* they name the old tables */
            b->stmts[i] = NULL;
        }
        feox_sq_lazy_forget(b, false);
        feox_sq_expiry_unknown(b);
        sqlite3_free(b->table);
        b->table = copy;
        err = FEOX_OK;
    }
    unlock(b);
    return err;
}

/* ---- transactions ---------------------------------------------------------------------------- */

/* The open backend of t, locked; NULL if none. */
static feox_sqlite_backend *enter(feox_sqlite_table *t)
{
    feox_sqlite_backend *b = t != NULL ? t->backend : NULL;
    if (b != NULL) {
        lock(b);
        feox_sq_clear_error(b);
    }
    return b;
}

static void reset_txn(feox_sqlite_backend *b)
{
    feox_pending_clear(&b->pending);
    b->in_txn = false;
    b->nmarks = 0;
}

bool feox_sqlite_storage_in_engine_call(const feox_sqlite_table *t)
{
    return t != NULL && t->backend != NULL && t->backend->engine_calls != 0;
}

feox_err feox_sqlite_storage_lock_for_write(feox_sqlite_table *t)
{
    feox_sqlite_backend *b = enter(t);
    if (b == NULL) {
        return FEOX_ERR_INVALID_ARGUMENT;
    }
    sqlite3_stmt *s;
    feox_err err = feox_sq_stmt(b, FEOX_SQ_WRITE_LOCK, &s);
    if (err == FEOX_OK) {
        err = run(b, s, "taking the write lock");
    }
    unlock(b);
    return err;
}

/* The transaction's state at begin: the table is at seq cur, its feed keeps changes > min_seq. */
static void start_txn(feox_sqlite_backend *b, uint64_t cur, uint64_t min_seq)
{
    b->in_txn = true;
    b->txn_base = b->txn_last = cur;
    b->txn_min_seq = min_seq;
    b->txn_changes = 0;
    b->txn_logging = true;
    b->nmarks = 0;
    b->txn_swept = false;
}

/* begin(), trusting a refresh that was the backend's previous call (see
 * feox_sqlite_storage_begin_refreshed) if refreshed. */
static feox_err begin_txn(feox_sqlite_table *t, bool refreshed)
{
    feox_sqlite_backend *b = enter(t);
    if (b == NULL) {
        return FEOX_ERR_INVALID_ARGUMENT;
    }
    feox_err err = FEOX_OK;
    uint64_t cur = 0, min_seq = 0;
    if (b->in_txn) {
        err = feox_sq_fail(b, FEOX_ERR_INVALID_ARGUMENT, "a transaction is already open");
    } else if (!b->loaded) {
        err = feox_sq_fail(b, FEOX_ERR_STALE, "the cache is not loaded");
    } else if ((refreshed && b->current_at_call != 0 && b->current_at_call + 1 == b->calls) ||
               (sqlite3_txn_state(b->db, b->schema) > SQLITE_TXN_NONE &&
                feox_sq_data_version(b) == b->last_dv)) {
        /* Nothing was committed since cache_seq was known current (the version is current:
         * a transaction is open), so the seq and min_seq are still what was seen then. */
        cur = b->cache_seq;
        min_seq = b->last_min_seq;
    } else {
        err = feox_sq_read_seq(b, &cur, &min_seq);
        if (err == FEOX_OK && cur != b->cache_seq) {
            err = feox_sq_fail(b, FEOX_ERR_STALE, "the cache is behind the table (refresh first)");
        }
    }
    if (err == FEOX_OK) {
        start_txn(b, cur, min_seq);
    }
    unlock(b);
    return err;
}

bool feox_sqlite_storage_begin_if_current(feox_sqlite_table *t)
{
    feox_sqlite_backend *b = t != NULL ? t->backend : NULL;
    if (b == NULL) {
        return false;
    }
    lock(b);
    /* What refresh_feed and begin_txn check, less sqlite3_txn_state (see the header) */
    bool current = !b->in_txn && b->loaded && b->lazy.complete && !b->lazy.want &&
                   feox_sq_data_version(b) == b->last_dv &&
                   feox_sq_database_image(b) == b->loaded_image;
    if (current) {
        feox_sq_clear_error(b);
        start_txn(b, b->cache_seq, b->last_min_seq);
    }
    unlock(b);
    return current;
}

feox_err feox_sqlite_storage_begin(feox_sqlite_table *t)
{
    return begin_txn(t, false);
}

feox_err feox_sqlite_storage_begin_refreshed(feox_sqlite_table *t)
{
    return begin_txn(t, true);
}

/* After the transaction's last change: make the feed say what it did, and keep it bounded. */
static feox_err finish_feed(feox_sqlite_backend *b)
{
    if (b->txn_changes == 0) {
        return FEOX_OK;
    }
    if (!b->txn_logging) {
        /* Too many changes for the feed: every older cache reloads. */
        feox_err err = run_seq(b, FEOX_SQ_LOG_TRIM, b->txn_last, "trimming the change feed");
        err = err == FEOX_OK ? run_seq(b, FEOX_SQ_SET_MIN, b->txn_last, "setting min_seq") : err;
        if (err == FEOX_OK) {
            b->txn_min_seq = b->txn_last;
        }
        return err;
    }
    uint64_t held = b->txn_last - b->txn_min_seq;
    if (held <= b->feed_limit) {
        return FEOX_OK;
    }
    uint64_t batch = b->txn_changes * 4 > TRIM_MIN_BATCH ? b->txn_changes * 4 : TRIM_MIN_BATCH;
    uint64_t new_min = b->txn_last - b->feed_limit * 3 / 4;
    if (new_min > b->txn_min_seq + batch) {
        new_min = b->txn_min_seq + batch;
    }
    feox_err err = run_seq(b, FEOX_SQ_LOG_TRIM, new_min, "trimming the change feed");
    err = err == FEOX_OK ? run_seq(b, FEOX_SQ_SET_MIN, new_min, "setting min_seq") : err;
    if (err == FEOX_OK) {
        b->txn_min_seq = new_min;
    }
    return err;
}

/* Remove up to limit (0 = every) rows expired now, each a delete of the transaction with its
 * feed row, so every other cache drops it too (storage_sqlite_expiry.c says when and why). */
static feox_err sweep(feox_sqlite_backend *b, uint64_t limit, uint64_t *removed)
{
    uint64_t now = feox_sq_now(b);
    feox_sq_keys k;
    memset(&k, 0, sizeof k);
    feox_err err = FEOX_OK;
    int64_t next = INT64_MAX;
    *removed = 0;
    while (err == FEOX_OK && (limit == 0 || *removed < limit)) {
        uint64_t left = limit == 0 ? FEOX_SQ_SWEEP_BATCH : limit - *removed;
        uint32_t want = left < FEOX_SQ_SWEEP_BATCH ? (uint32_t)left : FEOX_SQ_SWEEP_BATCH;
        /* listed first, deleted after: never while the statement reads the table */
        err = feox_sq_expired_keys(b, now, want, &k, &next);
        for (size_t i = 0; i < k.n && err == FEOX_OK; i++) {
            err = emit_change(b, k.bytes + k.at[i], k.len[i], NULL, 0, 0, now, 0, true, false);
            if (err == FEOX_OK) {
                (*removed)++;
                b->swept_rows++;
            }
        }
        if (k.n < want) {
            break; /* nothing more has expired */
        }
    }
    sqlite3_free(k.bytes);
    if (err == FEOX_OK) {
        /* What is left in the index expires at next at the earliest (expiry.c) */
        b->expiry_known = true;
        b->next_expiry = next;
    }
    return err;
}

/* sqlite3_deserialize put another database file under the table while its transaction was
 * open: SQLite dropped what the transaction wrote with the old file, and what it still holds
 * (pending changes, their seqs) would land in a database it never saw. Refused with
 * SQLITE_ABORT (the user rolls back; the cache is reloaded), never written. */
static feox_err refuse_if_file_replaced(feox_sqlite_backend *b)
{
    if ((b->pending.n == 0 && b->txn_changes == 0) || feox_sq_database_file(b) == b->loaded_file) {
        return FEOX_OK;
    }
    b->loaded = false;
    feox_err err = feox_sq_fail(b, FEOX_ERR_IO,
                                "the database was replaced (sqlite3_deserialize) during the"
                                " transaction: roll it back");
    b->t->errcode = SQLITE_ABORT;
    return err;
}

/* What is pending to the tables, then (commit) the bounded expiry sweep, then the feed's end
 * (after the sweep: its deletes are changes of the transaction like any other). *swept (if not
 * NULL): the rows the sweep removed. */
static feox_err sync_locked(feox_sqlite_backend *b, bool commit, uint64_t *swept)
{
    feox_err err = FEOX_OK;
    uint64_t removed = 0;
    if (b->in_txn) {
        err = refuse_if_file_replaced(b);
        err = err == FEOX_OK ? flush_pending(b) : err;
        /* Only a transaction that changed the table pays for the sweep, once (a COMMIT retried
         * after BUSY calls xSync again). */
        if (err == FEOX_OK && commit && !b->txn_swept && b->txn_changes != 0 &&
            b->sweep_limit != 0) {
            b->txn_swept = true;
            if (feox_sq_expiry_due(b)) {
                b->sweep_seeks++;
                err = sweep(b, b->sweep_limit, &removed);
            } else {
                b->sweep_skips++; /* nothing in the index has expired yet */
            }
            if (err != FEOX_OK && removed == 0 &&
                sqlite3_txn_state(b->db, b->schema) == SQLITE_TXN_WRITE) {
                /* Nothing removed yet (e.g. the expiry index could not be made): the user's
                 * transaction commits without it; the next one tries again. Not if the failure
                 * ended the transaction (an I/O error, even in the seek's SELECT, or an interrupt
                 * makes SQLite roll it all back): the commit must fail, or what follows would
                 * run, and commit, in a transaction of its own. */
                feox_sq_clear_error(b);
                err = FEOX_OK;
            }
        }
        if (err == FEOX_OK) {
            err = finish_feed(b);
        }
        b->syncs++;
    }
    if (swept != NULL) {
        *swept = removed;
    }
    return err;
}

feox_err feox_sqlite_storage_settle(feox_sqlite_table *t)
{
    if (t != NULL && t->backend != NULL && !t->backend->relocate) {
        return FEOX_OK; /* write() wrote a full map out itself (relocate is set at open) */
    }
    feox_sqlite_backend *b = enter(t);
    if (b == NULL) {
        return FEOX_ERR_INVALID_ARGUMENT;
    }
    feox_err err = FEOX_OK;
    if (b->in_txn && b->pending.bytes > b->pending_limit) {
        err = flush_pending(b);
    }
    unlock(b);
    return err;
}

static feox_err sync_table(feox_sqlite_table *t, bool commit, uint64_t *swept)
{
    if (swept != NULL) {
        *swept = 0;
    }
    feox_sqlite_backend *b = enter(t);
    if (b == NULL) {
        return FEOX_ERR_INVALID_ARGUMENT;
    }
    feox_err err = sync_locked(b, commit, swept);
    unlock(b);
    return err;
}

feox_err feox_sqlite_storage_sync(feox_sqlite_table *t)
{
    return sync_table(t, false, NULL);
}

feox_err feox_sqlite_storage_sync_commit(feox_sqlite_table *t, uint64_t *swept)
{
    return sync_table(t, true, swept);
}

feox_err feox_sqlite_storage_sweep(feox_sqlite_table *t, uint64_t limit, uint64_t *removed)
{
    *removed = 0;
    feox_sqlite_backend *b = enter(t);
    if (b == NULL) {
        return FEOX_ERR_INVALID_ARGUMENT;
    }
    feox_err err = FEOX_OK;
    if (!b->in_txn) {
        err = feox_sq_fail(b, FEOX_ERR_INVALID_ARGUMENT,
                           "sweep outside a transaction (feox_sqlite_storage_begin)");
    } else {
        err = flush_pending(b);
    }
    if (err == FEOX_OK) {
        err = sweep(b, limit, removed);
    }
    unlock(b);
    return err;
}

void feox_sqlite_storage_commit(feox_sqlite_table *t)
{
    feox_sqlite_backend *b = enter(t);
    if (b == NULL) {
        return;
    }
    if (b->in_txn && b->txn_changes != 0) {
        b->cache_seq = b->txn_last;
        b->last_min_seq = b->txn_min_seq;
        /* Our own commit moves the version (the pager counts it before xCommit); had it not
         * moved yet, the next refresh would read the seq once and find it equal. No other
         * commit can be folded in: the pager learns of those only when a transaction starts. */
        b->last_dv = feox_sq_data_version(b);
        if (feox_sq_database_file(b) == b->loaded_file) {
            b->loaded_image = feox_sq_database_image(b); /* an image grown by this commit */
        }
    }
    reset_txn(b);
    unlock(b);
}

void feox_sqlite_storage_rollback(feox_sqlite_table *t)
{
    feox_sqlite_backend *b = enter(t);
    if (b == NULL) {
        return;
    }
    reset_txn(b);              /* SQLite has restored the tables; cache_seq never moved */
    feox_sq_expiry_unknown(b); /* rows a sweep removed may be back */
    unlock(b);
}

feox_err feox_sqlite_storage_savepoint(feox_sqlite_table *t, int level)
{
    feox_sqlite_backend *b = enter(t);
    if (b == NULL || level < 0) {
        if (b != NULL) {
            unlock(b);
        }
        return FEOX_ERR_INVALID_ARGUMENT;
    }
    feox_err err = FEOX_OK;
    if (b->in_txn) {
        /* Written now, before SQLite opens savepoint level, so it is outside of it. */
        err = refuse_if_file_replaced(b);
        err = err == FEOX_OK ? flush_pending(b) : err;
        if (err == FEOX_OK && (size_t)level >= FEOX_SQ_MAX_MARKS) {
            err = feox_sq_fail(b, FEOX_ERR_INVALID_ARGUMENT, "too many nested savepoints");
        }
        if (err == FEOX_OK) {
            feox_sq_mark mark = {b->txn_last, b->txn_changes, b->txn_logging};
            for (size_t i = b->nmarks; i <= (size_t)level; i++) {
                b->marks[i] = mark; /* levels skipped get the same state */
            }
            b->marks[level] = mark;
            b->nmarks = (size_t)level + 1;
        }
    }
    unlock(b);
    return err;
}

void feox_sqlite_storage_rollback_to(feox_sqlite_table *t, int level)
{
    feox_sqlite_backend *b = enter(t);
    if (b == NULL) {
        return;
    }
    if (b->in_txn) {
        /* Everything before savepoint level reached the tables when it began, and SQLite has
         * rolled those back to it: what is pending came later. */
        feox_pending_clear(&b->pending);
        feox_sq_expiry_unknown(b); /* rows a sweep removed may be back */
        if (level >= 0 && (size_t)level < b->nmarks) {
            b->txn_last = b->marks[level].txn_last;
            b->txn_changes = b->marks[level].txn_changes;
            b->txn_logging = b->marks[level].txn_logging;
        } else if (level < 0) {
            b->txn_last = b->txn_base;
            b->txn_changes = 0;
            b->txn_logging = true;
            b->nmarks = 0;
        }
    }
    unlock(b);
}
