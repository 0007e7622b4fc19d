/*
 * storage_sqlite_expiry.c — TTL without a background writer: the "sqlite" backend removes
 * expired rows from <table>_data inside a write transaction, never on its own.
 *
 * When. At xSync of a committing transaction that changed the table (feox_sqlite_storage_
 * sync_commit), once per transaction, at most sweep_limit rows (64 by default); and on demand,
 * every expired row, for feox_sweep (feox_sqlite_storage_sweep). xSync rather than the first
 * write, because there:
 *   - only a transaction that commits pays: one rolled back never swept;
 *   - the pending map has just been written, so the SQL sees the transaction's final rows (a row
 *     it rewrote with a later expiry is not touched, one it wrote already expired is);
 *   - no engine lock is held (the first write runs inside the store's write, under a shard
 *     lock), so the vtab can let its cache drop the expired records right after;
 *   - SQLITE_DBCONFIG_DEFENSIVE allows writing shadow tables in xSync, as for the pending map.
 * A read-only connection never gets there: SQLite calls xSync only on a table in a write
 * transaction, which xBegin opened, which a read-only connection never does.
 *
 * How. This file lists the expired keys (feox_sq_expired_keys); storage_sqlite.c removes each as
 * a delete of the transaction (the same path as erase()): the row goes, a feed
 * row (ts = the sweep's now) tells every other cache to drop the key at its next refresh, and
 * all of it commits with the user's transaction. If the commit fails after xSync and the
 * transaction rolls back, SQLite puts the rows and the feed back; the caches only let go of
 * records that had expired, which read as absent either way, so nothing needs undoing in them.
 *
 * Cost when nothing has expired: usually nothing. The sweep's statement walks the index in
 * expiry order one row past the expired ones, so it also learns the earliest expiry left in it
 * (next_expiry; INT64_MAX when no row has one). Until the clock passes it no row can have expired
 * and commits skip the seek (with no row to expire, without reading the clock either). What can
 * put an earlier expiry into the index lowers it first:
 *   - this connection's writes (write_row: every row it writes with an expiry);
 *   - other connections' and processes' commits, which this connection applies from the feed
 *     before it may write (begin refuses a cache behind the table; apply_feed lowers it for each
 *     row it sends with an expiry);
 * and what cannot be followed row by row makes it unknown, so that the next commit seeks: a fresh
 * open, a (re)load, a resync after the feed overflowed, a rename, and any rollback or rollback to
 * a savepoint (SQLite puts back rows a sweep had removed). Another connection's sweep only
 * removes rows, so next_expiry stays a lower bound.
 * When it seeks, one seek of the partial index <table>_data_expires (rows without a TTL are not
 * in it); the statement names the index (INDEXED BY), so it can never turn into a scan of the
 * table. The index is looked up by its table once per open backend
 * (feox_sqlite_storage_expiry_index); a table made before it existed gets it at its first sweep,
 * inside that write transaction (a schema change: other connections reconnect and reload once).
 * Expired means expires < now, as for the engine (a record is expired when now > expires_at).
 */
#include <string.h>
#include <time.h>

#include "feox_ext.h"
#include "storage_sqlite_internal.h"

SQLITE_EXTENSION_INIT3

/* Prepare the statement listing expired keys (once per open backend: a rename drops it), making
 * the expiry index first if the table has none. */
static feox_err ensure_index(feox_sqlite_backend *b)
{
    if (b->stmts[FEOX_SQ_EXPIRED] != NULL) {
        return FEOX_OK;
    }
    char *name = NULL, *msg = NULL;
    int rc = feox_sqlite_storage_expiry_index(b->db, b->schema, b->table, true, &name, &msg);
    sqlite3_free(msg);
    if (rc != SQLITE_OK) {
        return feox_sq_sql_error(b, rc, "making the expiry index");
    }
    /* INDEXED BY: never a scan of the table (the prepare fails if the index is gone). Every
     * row in expiry order: the caller stops at the first one not expired (its expiry is the
     * next one) or after LIMIT ?1 rows. expires >= 0: an expiry past INT64_MAX ns (a ttl
     * beyond the year 2262) is stored as a negative i64 and never expires, so it is not listed
     * (the comparison implies the index's "expires IS NOT NULL": SQLite uses it). */
    char *sql = sqlite3_mprintf("SELECT key, expires FROM \"%w\".\"%w_data\" INDEXED BY \"%w\""
                                " WHERE expires >= 0 ORDER BY expires LIMIT ?1",
                                b->schema, b->table, name);
    sqlite3_free(name);
    rc = sql == NULL ? SQLITE_NOMEM
                     : sqlite3_prepare_v3(b->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                                          &b->stmts[FEOX_SQ_EXPIRED], NULL);
    sqlite3_free(sql);
    return rc == SQLITE_OK ? FEOX_OK : feox_sq_sql_error(b, rc, "preparing the expiry sweep");
}

uint64_t feox_sq_now(feox_sqlite_backend *b)
{
    if (b->host.now_ns != NULL) {
        return b->host.now_ns(b->host.ctx);
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int64_t feox_sq_expiry_time(uint64_t now)
{
    return now > INT64_MAX ? INT64_MAX : (int64_t)now;
}

bool feox_sq_expiry_due(feox_sqlite_backend *b)
{
    if (!b->expiry_known) {
        return true;
    }
    return b->next_expiry != INT64_MAX && b->next_expiry < feox_sq_expiry_time(feox_sq_now(b));
}

static bool key_list_add(feox_sq_keys *k, const void *key, uint32_t len)
{
    if (k->used + len > k->cap || k->bytes == NULL) {
        size_t cap = k->cap ? k->cap : 4096;
        while (cap < k->used + len) {
            cap *= 2;
        }
        unsigned char *grown = sqlite3_realloc64(k->bytes, cap);
        if (grown == NULL) {
            return false;
        }
        k->bytes = grown;
        k->cap = cap;
    }
    if (len != 0) {
        memcpy(k->bytes + k->used, key, len);
    }
    k->at[k->n] = k->used;
    k->len[k->n++] = len;
    k->used += len;
    return true;
}

feox_err feox_sq_expired_keys(feox_sqlite_backend *b, uint64_t now, uint32_t want, feox_sq_keys *k,
                              int64_t *next)
{
    *next = INT64_MAX;
    k->n = 0;
    k->used = 0;
    if (want > FEOX_SQ_SWEEP_BATCH) {
        want = FEOX_SQ_SWEEP_BATCH;
    }
    feox_err err = ensure_index(b);
    sqlite3_stmt *s;
    if (err == FEOX_OK) {
        err = feox_sq_stmt(b, FEOX_SQ_EXPIRED, &s);
    }
    if (err != FEOX_OK) {
        return err;
    }
    int64_t at = feox_sq_expiry_time(now);
    sqlite3_bind_int64(s, 1, (sqlite3_int64)want + 1); /* one more: the next expiry */
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        int64_t expires = sqlite3_column_int64(s, 1);
        if (expires >= at || k->n == want) {
            *next = expires; /* not expired, or beyond this batch */
            rc = SQLITE_DONE;
            break;
        }
        const void *key = sqlite3_column_blob(s, 0);
        if (!key_list_add(k, key != NULL ? key : "", (uint32_t)sqlite3_column_bytes(s, 0))) {
            err = feox_sq_sql_error(b, SQLITE_NOMEM, "listing expired records");
            break;
        }
    }
    if (err == FEOX_OK && rc != SQLITE_DONE) {
        err = feox_sq_sql_error(b, rc, "listing expired records");
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return err;
}

void feox_sqlite_storage_sweep_counts(feox_sqlite_table *t, uint64_t *seeks, uint64_t *skips)
{
    feox_sqlite_backend *b = t != NULL ? t->backend : NULL;
    *seeks = *skips = 0;
    if (b != NULL) {
        sqlite3_mutex_enter(sqlite3_db_mutex(b->db));
        *seeks = b->sweep_seeks;
        *skips = b->sweep_skips;
        sqlite3_mutex_leave(sqlite3_db_mutex(b->db));
    }
}
