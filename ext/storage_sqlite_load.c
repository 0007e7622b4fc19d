/*
 * storage_sqlite_load.c — the "sqlite" backend's lazy load: a connection's cache of <t>_data is
 * filled a chunk at a time, in key order, instead of all at once when the table is opened (about
 * 1 s per million rows), so the first statement is answered at once.
 *
 * State (feox_sq_lazy). The cache is "complete" (it holds every row: a key it does not hold does
 * not exist), or "partial" with a frontier F (it holds every row whose key is <= F; nothing is
 * known of the others, no frontier: nothing is known at all).
 *   load()     (open, and a full reload after FEOX_ERR_STALE: the store has emptied the cache)
 *              the cache starts partial with no frontier, at the table's current seq, and loads
 *              its first chunk: a table of at most one chunk is complete at once.
 *   refresh()  after the change feed is applied, outside a transaction, one more chunk: the rows
 *              after F, in key order, at most chunk_rows of them and for at most CHUNK_NS; F
 *              becomes the last key read, or the cache complete when the table has no more.
 *   find()     a miss below or at F (or anywhere once complete) is "not found" without SQL;
 *              otherwise the row is read by key (storage_sqlite.c), and the store keeps it.
 *   want()     a scan of [lo, hi] needs every row of it: the next refresh loads them all, in a
 *              transaction too (the rows of keys with a pending change are skipped: the cache
 *              holds this connection's newer version). If lo <= F (or lo is unbounded), F
 *              moves to hi (the cache is complete when hi is unbounded); else the range is
 *              loaded without moving F (nothing records it: a later scan loads it again).
 *
 * Why this is sound. Write C for the table's seq the cache reflects (cache_seq). The invariant:
 *   (I) for every key the cache holds, it holds the key's version at C (or this connection's
 *       own uncommitted one); every row with a key <= F at C is held (all rows when complete).
 * The cache may hold keys above F (found by find(), or sent by the feed): (I) says nothing of
 * the keys above F that it does not hold, and find() asks the table for them.
 *   - The feed (C -> C') sends each changed key's row at C' (put) or its absence (del), whether
 *     or not the key was loaded: a put of a key above F adds a row that is current (harmless),
 *     a del of a key never loaded removes nothing. Unchanged keys keep their version: (I) holds
 *     at C'. This is the "feed entry for a key not yet loaded" case.
 *   - A chunk is read at a snapshot S. Inside a read or write transaction (xFilter, xBegin,
 *     a function's enlistment: the usual case) S is the snapshot the feed was just read at, so
 *     S = C and each row put is the key's version at C. Without one (a function called with no
 *     transaction open) the chunk's own statement may see a later snapshot S > C, never an
 *     earlier one (a connection's snapshots only move forward): a row put is then a key's
 *     version at S, newer than C, and a key deleted in (C, S] is not loaded. Every such key has
 *     a feed row in (C, S], which the next refresh replays from C, and the feed sends each key's
 *     row as it is then (or its absence): the cache is back to (I) at the new seq. Reading
 *     ahead of C therefore only shows some rows early, never loses or resurrects one. A chunk
 *     read at a snapshot older than C would be wrong (a key deleted in between would come
 *     back), and cannot happen.
 *   - A key inserted (by anyone) with a key <= F after the chunk that moved F comes through the
 *     feed (a put adds it) or this connection's own write: (I) keeps "every row <= F is held".
 *   - In a transaction, a chunk of a wanted range reads the transaction's own view, where its
 *     flushed changes are already in the table (and in the cache: the same versions) and its
 *     pending ones are skipped. On ROLLBACK SQLite restores the tables and the undo journal
 *     restores every key this connection wrote (with the version it had before, which the write
 *     looked up first: find() before a write); the rows loaded for keys it did not write are
 *     their committed versions at C. So F stays true after a rollback.
 *   - A full reload (FEOX_ERR_STALE: the feed no longer reaches back to C) empties the cache and
 *     calls load(): partial again with no frontier, at the current seq.
 * A miss answered without SQL is therefore right at C, as a complete cache's would be.
 *
 * Cost. A chunk's rows go to the store's put_ordered (they come in key order): the store makes
 * each row's version and entry at once (one allocation) and links them in batches, without a
 * hash lookup for keys past the largest it holds and with one ordered-index descent per leaf
 * (store_load.c's run); the first chunk at open goes through the store's bulk first load. Chunks
 * are bounded by rows (chunk_rows, 8192 by default) and by time (CHUNK_NS, checked every 256 rows),
 * so no statement of a warming connection waits long; a scan that needs the whole table loads what
 * is left in one go, announced with sink->expect: the store then builds and links the rows on a
 * worker thread of its own while this thread steps SQLite (store_load_pipe.c; the connection is
 * used by this thread only, the worker never calls the backend), and applies what it holds
 * before apply_ordered returns, so the frontier moves only over rows the cache holds.
 * Measured at 1M rows of 16 + 100 bytes (perf, 2 cores): this thread's part of a full load is
 * mostly SQLite's (~260 ms of stepping the statement and reading its columns, ~110 of them in
 * pread of 4 KiB pages; SQLite's mmap was slower here), the hash index's sizing at expect
 * ~15-60 ms (its maps' first touch), the batch copy ~35 ms; the worker's is the hash index's
 * inserts (a cache miss each), the ordered index's leaves and the slabs' first touch (on this
 * VM fresh memory costs ~1.6 ms per MiB in huge pages, far more in 4 KiB pages). Tried and
 * dropped (no gain the bench could see): the 64 hash maps carved from one huge-page region at
 * expect, and an ordered-index seek instead of a hash lookup for keys below the cache's next one.
 */
#include <string.h>
#include <time.h>

#include "feox_ext.h"
#include "storage_sqlite_internal.h"

SQLITE_EXTENSION_INIT3

#define DEFAULT_CHUNK_ROWS 8192u
#define CHUNK_NS 3000000u /* 3 ms */
#define CLOCK_EVERY 256u

static uint64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t feox_sq_chunk_ns = CHUNK_NS;

/* When a chunk starting now must stop (never, with feox_sq_chunk_ns at UINT64_MAX). */
static uint64_t chunk_deadline(void)
{
    uint64_t now = monotonic_ns();
    return feox_sq_chunk_ns > UINT64_MAX - now ? UINT64_MAX : now + feox_sq_chunk_ns;
}

static uint64_t chunk_rows_of(const feox_sqlite_backend *b)
{
    return b->t->load_chunk_rows != 0 ? b->t->load_chunk_rows : DEFAULT_CHUNK_ROWS;
}

/* ---- keys ------------------------------------------------------------------------------------ */

static bool key_set(feox_sq_key *k, const void *data, uint32_t len)
{
    if (k->data == NULL || k->cap < len + 1) {
        uint32_t cap = len + 1 < 64 ? 64 : len + 1;
        unsigned char *grown = sqlite3_realloc64(k->data, cap);
        if (grown == NULL) {
            return false;
        }
        k->data = grown;
        k->cap = cap;
    }
    if (len != 0) {
        memcpy(k->data, data, len);
    }
    k->data[len] = 0; /* key||0x00 is ready to bind (successor) */
    k->len = len;
    return true;
}

static void key_free(feox_sq_key *k)
{
    sqlite3_free(k->data);
    memset(k, 0, sizeof *k);
}

/* memcmp order, a shorter prefix first: the engine's order and SQLite's for BLOBs. */
static int key_cmp(const void *a, uint32_t alen, const void *b, uint32_t blen)
{
    int r = memcmp(a, b, alen < blen ? alen : blen);
    return r != 0 ? r : alen < blen ? -1 : alen > blen ? 1 : 0;
}

/* ---- reading rows ---------------------------------------------------------------------------- */

/* A key's first 8 bytes, big-endian, zero-padded: integer order is the keys' order. */
static uint64_t head_of(const void *key, uint32_t key_len)
{
    unsigned char b[8] = {0};
    memcpy(b, key, key_len < 8 ? key_len : 8);
    uint64_t h = 0;
    for (int i = 0; i < 8; i++) {
        h = h << 8 | b[i];
    }
    return h;
}

static const char *const FROM_SQL =
    "SELECT key, value, tag, ts, expires, seq FROM \"%w\".\"%w_data\""
    " WHERE key >= ?1 ORDER BY key LIMIT ?2";
static const char *const RANGE_SQL = "SELECT key, value, tag, ts, expires, seq"
                                     " FROM \"%w\".\"%w_data\""
                                     " WHERE key >= ?1 AND key <= ?2 ORDER BY key LIMIT ?3";

static feox_err prepare(feox_sqlite_backend *b, sqlite3_stmt **stmt, const char *text)
{
    if (*stmt != NULL) {
        return FEOX_OK;
    }
    char *sql = sqlite3_mprintf(text, b->schema, b->table);
    if (sql == NULL) {
        return feox_sq_sql_error(b, SQLITE_NOMEM, "preparing a statement");
    }
    int rc = sqlite3_prepare_v3(b->db, sql, -1, SQLITE_PREPARE_PERSISTENT, stmt, NULL);
    sqlite3_free(sql);
    return rc == SQLITE_OK ? FEOX_OK : feox_sq_sql_error(b, rc, "preparing a statement");
}

/* Every key of <t>_data is a BLOB, and the chunks read keys >= x'' only: SQLite sorts every other
 * type (INTEGER, REAL, TEXT) before BLOBs, so a row a hand edit gave such a key would be missed
 * by every read, silently. One seek of the primary key, at each (re)load and resync: such a row
 * is refused as damaged, as an empty key is. */
static feox_err refuse_keys_not_blobs(feox_sqlite_backend *b)
{
    char *sql = sqlite3_mprintf("SELECT 1 FROM \"%w\".\"%w_data\" WHERE key < x'' LIMIT 1",
                                b->schema, b->table);
    if (sql == NULL) {
        return feox_sq_sql_error(b, SQLITE_NOMEM, "loading the records");
    }
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(b->db, sql, -1, &s, NULL);
    sqlite3_free(sql);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(s);
    }
    sqlite3_finalize(s);
    if (rc == SQLITE_DONE) {
        return FEOX_OK;
    }
    if (rc != SQLITE_ROW) {
        return feox_sq_sql_error(b, rc, "loading the records");
    }
    char what[160];
    sqlite3_snprintf((int)sizeof what, what,
                     "a row of %s_data is damaged: a key that is not a BLOB", b->table);
    return feox_sq_fail(b, FEOX_ERR_CORRUPT, what);
}

/* Larger than memory: once the values loaded pass resident_budget (max_memory / 2), the rest are
 * sent without their bytes (cold: the store reads them back by key when asked). Counted from
 * the start of each load, over its chunks, ranges and comparisons. */
static void keep_or_leave_cold(feox_sqlite_backend *b, feox_storage_record *rec)
{
    if (b->resident_budget == 0 || rec->value_len == 0 || rec->location == 0) {
        return;
    }
    if (b->lazy.resident + rec->value_len > b->resident_budget) {
        rec->value = NULL;
    } else {
        b->lazy.resident += rec->value_len;
    }
}

/* A chunk: the rows with lo <= key (<= hi if hi), in key order, at most max_rows of them (0: no
 * limit) and, with a deadline, until it passes; each to sink->put_ordered (or put), but for keys
 * with a pending change, and applied before the call returns. lo_after: lo is exclusive
 * (key > lo). *last: the last key read (len 0: none); *exhausted: every row of the range was
 * read. */
static feox_err load_rows(feox_sqlite_backend *b, const feox_storage_sink *sink,
                          const feox_sq_key *lo, bool lo_after, const feox_sq_key *hi,
                          uint64_t max_rows, uint64_t deadline, feox_sq_key *last, bool *exhausted)
{
    feox_sq_lazy *z = &b->lazy;
    sqlite3_stmt *s;
    feox_err err =
        hi != NULL ? prepare(b, &z->range_stmt, RANGE_SQL) : prepare(b, &z->from_stmt, FROM_SQL);
    if (err != FEOX_OK) {
        return err;
    }
    s = hi != NULL ? z->range_stmt : z->from_stmt;
    if (lo != NULL) {
        /* key > lo is key >= lo||0x00, the smallest key after lo (key_set keeps that byte) */
        sqlite3_bind_blob64(s, 1, lo->data, lo->len + (lo_after ? 1 : 0), SQLITE_STATIC);
    } else {
        sqlite3_bind_zeroblob(s, 1, 0); /* x'': before every key */
    }
    if (hi != NULL) {
        sqlite3_bind_blob64(s, 2, hi->data, hi->len, SQLITE_STATIC);
    }
    sqlite3_bind_int64(s, hi != NULL ? 3 : 2, max_rows != 0 ? (sqlite3_int64)max_rows : -1);
    uint64_t rows = 0, started = monotonic_ns();
    bool pending = b->in_txn && b->pending.n != 0;
    /* The rows come in key order: the store may apply them in batches (put_ordered). */
    feox_err (*put)(void *, const feox_storage_record *) =
        sink->put_ordered != NULL ? sink->put_ordered : sink->put;
    int rc, limit = feox_sq_lift_length_limit(b); /* values over it load too */
    last->len = 0;
    *exhausted = false;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        uint32_t key_len;
        const void *key = feox_sq_column_key(s, 0, &key_len);
        if (z->load_rows++ == 0) {
            z->first_head = head_of(key, key_len);
        }
        rows++;
        if (!pending || feox_pending_get(&b->pending, key, key_len) == NULL) {
            unsigned char num[8];
            feox_storage_record rec;
            err = feox_sq_column_record(b, s, 1, key, key_len, num, &rec);
            if (err != FEOX_OK) {
                break;
            }
            z->load_bytes += key_len + (uint64_t)rec.value_len;
            keep_or_leave_cold(b, &rec);
            err = put(sink->ctx, &rec);
            if (err != FEOX_OK) {
                break;
            }
        }
        if (deadline != 0 && rows % CLOCK_EVERY == 0 && monotonic_ns() > deadline) {
            if (!key_set(last, key, key_len)) {
                err = feox_sq_sql_error(b, SQLITE_NOMEM, "loading the records");
            }
            break; /* not exhausted: the next chunk goes on after last */
        }
        if (max_rows != 0 && rows == max_rows && !key_set(last, key, key_len)) {
            err = feox_sq_sql_error(b, SQLITE_NOMEM, "loading the records");
            break;
        }
    }
    if (err == FEOX_OK && rc != SQLITE_ROW) {
        if (rc == SQLITE_DONE) {
            *exhausted = max_rows == 0 || rows < max_rows;
        } else {
            err = feox_sq_sql_error(b, rc, "loading the records");
        }
    }
    if (sink->put_ordered != NULL && sink->apply_ordered != NULL) {
        /* The rows the store holds back reach it now: before the caller counts them as loaded,
         * and while the backend's lock still orders them before any later refresh's. */
        feox_err applied = sink->apply_ordered(sink->ctx);
        err = err != FEOX_OK ? err : applied;
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    feox_sq_restore_length_limit(b, limit);
    z->rows += rows;
    b->loaded_rows += rows;
    b->load_ns += monotonic_ns() - started;
    return err;
}

/* ---- the frontier ---------------------------------------------------------------------------- */

/* The database's size in bytes at this snapshot (0 if unknown). */
static uint64_t database_bytes(const feox_sqlite_backend *b)
{
    char *sql = sqlite3_mprintf("SELECT page_count * page_size FROM pragma_page_count(%Q),"
                                " pragma_page_size(%Q)",
                                b->schema, b->schema);
    sqlite3_stmt *s = NULL;
    uint64_t bytes = 0;
    if (sql != NULL && sqlite3_prepare_v2(b->db, sql, -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW && sqlite3_column_int64(s, 0) > 0) {
        bytes = (uint64_t)sqlite3_column_int64(s, 0);
    }
    sqlite3_finalize(s);
    sqlite3_free(sql);
    return bytes;
}

/* About how many rows follow the frontier, for the store to size its hash index at once (a
 * million rows grow it by doubling in ~15% of the load's time); too many costs 16 bytes of index
 * a row, too few only the growth. The rows so far covered the key space from the first key to
 * the frontier: spread alike over the rest (hashes, UUIDs, random ids) they say how many are
 * left. Keys that are not (counters, a shared prefix) make that far too high, so two bounds: the
 * table's seq (one per committed change: no more rows than that) and the database's size over
 * half the bytes of a row so far. 0: no idea. */
static uint64_t expected_rows(const feox_sqlite_backend *b)
{
    const feox_sq_lazy *z = &b->lazy;
    if (!z->started || z->load_rows == 0) {
        return 0;
    }
    uint64_t bound = b->cache_seq > z->load_rows ? b->cache_seq - z->load_rows : 0;
    uint64_t row_bytes = z->load_bytes / z->load_rows / 2 + 1;
    uint64_t by_size = database_bytes(b) / row_bytes;
    bound = by_size < bound ? by_size : bound;
    uint64_t frontier = head_of(z->frontier.data, z->frontier.len);
    double covered = (double)(frontier - z->first_head);
    if (covered < 1.0) {
        return bound;
    }
    double guess = (double)z->load_rows * (double)(UINT64_MAX - frontier) / covered * 1.125;
    return guess < (double)bound ? (uint64_t)guess : bound;
}

/* Load up to max_rows rows after the frontier (0: all, through hi if given); move it. */
static feox_err advance(feox_sqlite_backend *b, const feox_storage_sink *sink,
                        const feox_sq_key *hi, uint64_t max_rows, uint64_t deadline)
{
    feox_sq_lazy *z = &b->lazy;
    bool exhausted = false;
    if (hi == NULL && max_rows == 0 && sink->expect != NULL) {
        uint64_t expected = expected_rows(b); /* the rest of the table comes now */
        if (expected != 0) {
            sink->expect(sink->ctx, expected);
        }
    }
    feox_err err = load_rows(b, sink, z->started ? &z->frontier : NULL, true, hi, max_rows,
                             deadline, &z->scratch, &exhausted);
    if (err != FEOX_OK) {
        return err; /* the frontier stays: what was loaded is current, only not recorded */
    }
    z->chunks++;
    if (exhausted && hi == NULL) {
        z->complete = true;
        key_free(&z->frontier);
        z->started = false;
    } else if (exhausted) {
        if (!key_set(&z->frontier, hi->data, hi->len)) {
            return feox_sq_sql_error(b, SQLITE_NOMEM, "loading the records");
        }
        z->started = true;
    } else if (z->scratch.len != 0) {
        feox_sq_key swap = z->frontier;
        z->frontier = z->scratch;
        z->scratch = swap;
        z->started = true;
    }
    return FEOX_OK;
}

/* Is key <= the frontier? */
static bool below_frontier(const feox_sq_lazy *z, const void *key, uint32_t key_len)
{
    return z->started && key_cmp(key, key_len, z->frontier.data, z->frontier.len) <= 0;
}

/* Load every row of the wanted range. */
static feox_err load_wanted(feox_sqlite_backend *b, const feox_storage_sink *sink)
{
    feox_sq_lazy *z = &b->lazy;
    const feox_sq_key *lo = z->want_has_lo ? &z->want_lo : NULL;
    const feox_sq_key *hi = z->want_has_hi ? &z->want_hi : NULL;
    z->want = false;
    if (hi != NULL && below_frontier(z, hi->data, hi->len)) {
        return FEOX_OK; /* loaded already */
    }
    z->ranges++;
    if (lo == NULL || below_frontier(z, lo->data, lo->len) || hi == NULL) {
        /* next to the frontier (or to the end of the table: as costly as the rest): move it */
        return advance(b, sink, hi, 0, 0);
    }
    bool exhausted;
    return load_rows(b, sink, lo, false, hi, 0, 0, &z->scratch, &exhausted);
}

/* ---- the feed overflowed: compare instead of reloading --------------------------------------
 * When the cache is older than what the feed keeps (another connection committed more changes
 * than feed_limit in one transaction, or so many that the oldest were trimmed), the store would
 * empty the cache and load the table again. Instead the cache's records (host.for_each_live, in
 * key order) are compared with the rows of the range the cache holds for sure (all of them once
 * complete, those <= F while partial), at the snapshot just read: a row that differs from the
 * cached version is sent, a cached key with no row is deleted, a row the cache lacks is sent, and
 * a cached key above F (found or fed earlier, unverified now) is dropped (find() reads it again
 * when asked). "Differs": with max_memory the store keeps each version's location, the seq of the
 * row it was loaded from, and a row whose seq differs is sent. Every change has its own seq,
 * never reused within the table's history (a table that went back, cur < cache_seq, still
 * reloads), so an equal seq is the same version; a version this connection wrote carries
 * txn_base + 1 or its own seq as location, which no other version of the key can have, and a
 * version restored by a rollback carries 0, never a seq: at worst a row is sent again. Without
 * max_memory the store keeps no location (FEOX_STORAGE_VALUES_BY_KEY: 8 bytes a key), so a row
 * is compared by what a version is: its value bytes, tag, ts and expiry; equal in all of them, the
 * cached version is the row's, whatever seq wrote it (a cold version, never compared, is sent).
 * Only what differs is allocated: at 1M rows this is a scan of the table and of the cache. The
 * snapshot argument of the top of this file holds as for a chunk. */

typedef struct resync_state {
    feox_sqlite_backend *b;
    const feox_storage_sink *sink;
    sqlite3_stmt *s; /* the rows of the range the cache holds, in key order (NULL: none) */
    bool row;        /* s is on a row */
    feox_err err;
    int limit; /* the connection's SQLITE_LIMIT_LENGTH (lifted meanwhile) */
} resync_state;

static void resync_step(resync_state *r)
{
    int rc = sqlite3_step(r->s);
    r->row = rc == SQLITE_ROW;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        r->err = feox_sq_sql_error(r->b, rc, "comparing the cache with the records");
    }
}

/* Is the current row the version rec is (see above)? */
static bool resync_same_version(resync_state *r, const feox_storage_record *rec)
{
    if (r->b->relocate) { /* max_memory: locations are seqs */
        return (uint64_t)sqlite3_column_int64(r->s, 5) == rec->location;
    }
    if (rec->value == NULL) {
        return false;
    }
    uint32_t key_len;
    const void *key = feox_sq_column_key(r->s, 0, &key_len);
    unsigned char num[8];
    feox_storage_record row;
    if (feox_sq_column_record(r->b, r->s, 1, key, key_len, num, &row) != FEOX_OK) {
        return false; /* resync_send_row reports the damaged row */
    }
    return row.value_len == rec->value_len && row.tag == rec->tag && row.ts_ns == rec->ts_ns &&
           row.expires_at_ns == rec->expires_at_ns &&
           (rec->value_len == 0 || memcmp(row.value, rec->value, rec->value_len) == 0);
}

/* Send the current row, and step. */
static void resync_send_row(resync_state *r)
{
    uint32_t key_len;
    const void *key = feox_sq_column_key(r->s, 0, &key_len);
    unsigned char num[8];
    feox_storage_record rec;
    r->err = feox_sq_column_record(r->b, r->s, 1, key, key_len, num, &rec);
    if (r->err != FEOX_OK) {
        return;
    }
    keep_or_leave_cold(r->b, &rec);
    r->err = r->sink->put(r->sink->ctx, &rec);
    r->b->lazy.resync_rows++;
    if (r->err == FEOX_OK) {
        resync_step(r);
    }
}

static int resync_visit(void *ctx, const feox_storage_record *rec)
{
    resync_state *r = ctx;
    feox_sq_lazy *z = &r->b->lazy;
    uint32_t key_len = 0;
    int c = 1;
    while (r->err == FEOX_OK && r->row) { /* rows before this key: the cache lacks them */
        const void *key = feox_sq_column_key(r->s, 0, &key_len);
        c = key_cmp(key, key_len, rec->key, rec->key_len);
        if (c >= 0) {
            break;
        }
        resync_send_row(r);
    }
    if (r->err != FEOX_OK) {
        return 1;
    }
    bool held_for_sure = z->complete || below_frontier(z, rec->key, rec->key_len);
    if (held_for_sure && r->row && c == 0) {
        if (!resync_same_version(r, rec)) {
            resync_send_row(r); /* changed */
        } else {
            resync_step(r); /* the same version */
        }
    } else {
        /* no row (deleted), or above the frontier (dropped: find() asks again) */
        r->err = r->sink->del(r->sink->ctx, rec->key, rec->key_len, 0);
        z->resync_rows++;
    }
    return r->err != FEOX_OK;
}

feox_err feox_sq_lazy_resync(feox_sqlite_backend *b, const feox_storage_sink *sink)
{
    feox_sq_lazy *z = &b->lazy;
    if (b->host.for_each_live == NULL) {
        return FEOX_ERR_STALE; /* a host without the walk: reload */
    }
    resync_state r = {b, sink, NULL, false, FEOX_OK, 0};
    uint64_t started = monotonic_ns();
    r.err = refuse_keys_not_blobs(b);
    if (r.err != FEOX_OK) {
        return r.err;
    }
    if (z->complete || z->started) {
        r.err = z->complete ? prepare(b, &z->from_stmt, FROM_SQL)
                            : prepare(b, &z->range_stmt, RANGE_SQL);
        if (r.err != FEOX_OK) {
            return r.err;
        }
        r.s = z->complete ? z->from_stmt : z->range_stmt;
        sqlite3_bind_zeroblob(r.s, 1, 0);
        if (z->complete) {
            sqlite3_bind_int64(r.s, 2, -1);
        } else {
            sqlite3_bind_blob64(r.s, 2, z->frontier.data, z->frontier.len, SQLITE_STATIC);
            sqlite3_bind_int64(r.s, 3, -1);
        }
        r.limit = feox_sq_lift_length_limit(b);
        resync_step(&r);
    }
    feox_err err = r.err;
    if (err == FEOX_OK) {
        err = b->host.for_each_live(b->host.ctx, resync_visit, &r);
    }
    if (err == FEOX_OK) {
        err = r.err;
    }
    while (err == FEOX_OK && r.row) { /* rows after the cache's last key */
        resync_send_row(&r);
        err = r.err;
    }
    if (r.s != NULL) {
        sqlite3_reset(r.s);
        sqlite3_clear_bindings(r.s);
        feox_sq_restore_length_limit(b, r.limit);
    }
    z->resyncs++;
    b->load_ns += monotonic_ns() - started;
    return err;
}

/* ---- the backend's calls --------------------------------------------------------------------- */

/* Send the pending map's entries to sink (own uncommitted changes over the tables). */
static feox_err send_pending(feox_sqlite_backend *b, const feox_storage_sink *sink)
{
    for (size_t i = 0; i < b->pending.n; i++) {
        const feox_pending_entry *e = &b->pending.entries[i];
        feox_err err;
        if (e->is_delete) {
            err = sink->del(sink->ctx, e->bytes, e->key_len, e->ts_ns);
        } else {
            feox_storage_record rec = {
                e->bytes, e->key_len, e->bytes + e->key_len, e->value_len,
                e->tag,   e->ts_ns,   e->expires_at_ns,      feox_sq_pending_location(b)};
            err = sink->put(sink->ctx, &rec);
        }
        if (err != FEOX_OK) {
            return err;
        }
    }
    return FEOX_OK;
}

feox_err feox_sq_lazy_load(feox_sqlite_backend *b, const feox_storage_sink *sink)
{
    feox_sq_lazy *z = &b->lazy;
    uint64_t cur, min_seq;
    /* The version and the cookie first, the seq next: a commit between them only costs a slow
     * refresh (a reload) later. */
    unsigned dv = feox_sq_data_version(b);
    feox_err err = feox_sq_read_cookie(b, &b->loaded_cookie);
    if (err == FEOX_OK) {
        err = feox_sq_read_seq(b, &cur, &min_seq);
    }
    if (err == FEOX_OK) {
        err = refuse_keys_not_blobs(b);
    }
    if (err != FEOX_OK) {
        return err;
    }
    if (z->loads++ != 0) {
        z->reloads++;
    }
    b->loaded = false;
    z->complete = false;
    z->started = false;
    z->resident = 0;
    z->load_rows = z->load_bytes = 0;
    b->cache_seq = b->in_txn ? b->txn_base : cur;
    b->last_dv = dv;
    b->last_min_seq = min_seq;
    /* The first chunk: the load at open goes through the store's bulk path. */
    err = advance(b, sink, NULL, chunk_rows_of(b), chunk_deadline());
    if (err == FEOX_OK && z->want) {
        err = load_wanted(b, sink);
    }
    if (err == FEOX_OK && b->in_txn) {
        err = send_pending(b, sink);
    }
    if (err != FEOX_OK) {
        return err;
    }
    b->loaded = true;
    return FEOX_OK;
}

feox_err feox_sq_lazy_step(feox_sqlite_backend *b, const feox_storage_sink *sink)
{
    feox_sq_lazy *z = &b->lazy;
    if (!b->loaded || z->complete) {
        z->want = false;
        return FEOX_OK;
    }
    feox_err err = FEOX_OK;
    if (z->want) {
        err = load_wanted(b, sink);
    } else if (!b->in_txn) {
        err = advance(b, sink, NULL, chunk_rows_of(b), chunk_deadline());
    }
    if (err != FEOX_OK) {
        /* rows of the chunk may be in the cache beyond what the seq says: only a reload is
         * sound now (the next refresh asks for it) */
        b->loaded = false;
    }
    return err;
}

bool feox_sq_lazy_covers(feox_sqlite_backend *b, const void *key, uint32_t key_len)
{
    feox_sq_lazy *z = &b->lazy;
    bool covered = b->loaded && (z->complete || below_frontier(z, key, key_len));
    if (covered) {
        z->finds_local++;
    } else {
        z->finds_sql++;
    }
    return covered;
}

void feox_sq_lazy_forget(feox_sqlite_backend *b, bool free_all)
{
    feox_sq_lazy *z = &b->lazy;
    sqlite3_finalize(z->from_stmt);
    sqlite3_finalize(z->range_stmt);
    z->from_stmt = z->range_stmt = NULL;
    if (free_all) {
        key_free(&z->frontier);
        key_free(&z->want_lo);
        key_free(&z->want_hi);
        key_free(&z->scratch);
        z->started = false;
    }
}

/* ---- public ---------------------------------------------------------------------------------- */

feox_err feox_sqlite_storage_want(feox_sqlite_table *t, const void *lo, uint32_t lo_len,
                                  const void *hi, uint32_t hi_len)
{
    feox_sqlite_backend *b = t != NULL ? t->backend : NULL;
    if (b == NULL) {
        return FEOX_ERR_INVALID_ARGUMENT;
    }
    sqlite3_mutex_enter(sqlite3_db_mutex(b->db));
    feox_sq_lazy *z = &b->lazy;
    feox_err err = FEOX_OK;
    /* Not loaded (after a failure): the next refresh reloads, and load() loads the range too. */
    if (!(b->loaded && z->complete)) {
        z->want_has_lo = lo != NULL;
        z->want_has_hi = hi != NULL;
        if ((lo != NULL && !key_set(&z->want_lo, lo, lo_len)) ||
            (hi != NULL && !key_set(&z->want_hi, hi, hi_len))) {
            err = FEOX_ERR_NOMEM;
        } else {
            z->want = true;
        }
    }
    sqlite3_mutex_leave(sqlite3_db_mutex(b->db));
    return err;
}

void feox_sqlite_storage_load_info(feox_sqlite_table *t, feox_sqlite_load_info *out)
{
    memset(out, 0, sizeof *out);
    feox_sqlite_backend *b = t != NULL ? t->backend : NULL;
    if (b == NULL) {
        return;
    }
    sqlite3_mutex_enter(sqlite3_db_mutex(b->db));
    const feox_sq_lazy *z = &b->lazy;
    out->complete = b->loaded && z->complete;
    out->table_seq = b->cache_seq;
    out->rows = z->rows;
    out->chunks = z->chunks;
    out->ranges = z->ranges;
    out->reloads = z->reloads;
    out->resyncs = z->resyncs;
    out->resync_rows = z->resync_rows;
    out->finds_sql = z->finds_sql;
    out->finds_local = z->finds_local;
    sqlite3_mutex_leave(sqlite3_db_mutex(b->db));
}
