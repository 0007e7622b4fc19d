/*
 * storage_sqlite.h — the "sqlite" storage backend: a feox table's records kept in shadow tables of
 * the SQLite database the table lives in (engine/feox_storage.h is the seam it plugs into).
 *
 * Layout (format 1). For a virtual table T in schema S, created by feox_sqlite_storage_create():
 *
 *   "S"."T_data"(key BLOB PRIMARY KEY, value, tag INTEGER NOT NULL, ts INTEGER NOT NULL,
 *                expires INTEGER, seq INTEGER NOT NULL) WITHOUT ROWID
 *       One row per live record (a delete removes the row: no tombstones here).
 *       key      the engine key bytes, always a BLOB.
 *       value    the value in its own SQL type, so `.dump`, the shell and other tools show it:
 *                  tag 1 INTEGER, 8 bytes     -> INTEGER
 *                  tag 2 REAL, 8 bytes        -> REAL if finite and not -0.0 (else BLOB, 8 bytes)
 *                  tag 3 TEXT without a NUL   -> TEXT (the bytes as given; else BLOB; always
 *                                                BLOB in a UTF-16 database, which would convert)
 *                  tag 5 NULL, 0 bytes        -> NULL
 *                  anything else              -> BLOB (x'' for zero bytes)
 *                The column has no declared type (BLOB affinity: SQLite never converts it), and
 *                every choice above reads back to the same bytes: INTEGER and REAL as 8 bytes
 *                little-endian, TEXT and BLOB as their bytes, NULL as zero bytes. So a `.dump`
 *                reloaded into a fresh database brings back every record exactly.
 *       tag      the engine tag (u32; value_codec.c: 0 raw, 1 integer, 2 real, 3 text, 4 blob,
 *                5 null).
 *       ts       the record's timestamp in ns (u64 stored as its two's-complement i64).
 *       expires  absolute expiry in ns, NULL = none.
 *       seq      the feed position of the write that made this version.
 *
 *   "S"."T_data_expires" ON T_data(expires) WHERE expires IS NOT NULL
 *       The rows with an expiry, by expiry: a commit finds the expired ones with one index seek
 *       (none while nothing in it can have expired: storage_sqlite_expiry.c), and rows without
 *       a TTL cost nothing in it. Found by its table and definition, not by its name: a renamed
 *       table keeps its index's first name (SQLite has no ALTER INDEX, and xRename may not drop
 *       one), and a new table whose name is taken gets "_2", "_3"... after it. Tables made
 *       before it existed (same format) get it from their first committing write transaction
 *       (storage_sqlite_expiry.c).
 *
 *   "S"."T_log"(seq INTEGER PRIMARY KEY, key BLOB NOT NULL, ts INTEGER)
 *       The change feed, append only: one row per write (ts NULL) or delete (ts = its time).
 *       Every write and delete takes the next seq (seq is per change, not per transaction:
 *       the log's rowid must be unique, and appending at the end of a rowid B-tree is the
 *       cheapest insert SQLite has). A transaction's changes are seq txn_base+1 .. txn_base+k
 *       where txn_base is the current seq when it began.
 *
 *   "S"."T_meta"(name TEXT PRIMARY KEY, value) WITHOUT ROWID
 *       ('format', 1)      this layout
 *       ('min_seq', n)     the feed no longer holds changes <= n: a cache older than n reloads.
 *
 *   The current seq of the table = max(max(T_log.seq), min_seq). No row is written per commit
 *   besides the feed rows; T_meta is written only when the feed is trimmed.
 *
 *   Feed size (SELF_COMPACT: nobody else reclaims it). A transaction with more than feed_limit
 *   changes writes no feed rows at all (it removes those it wrote and sets min_seq to its last
 *   seq): every other cache then reloads, which is cheaper than replaying that many changes.
 *   Otherwise, once the feed holds more than feed_limit rows, a commit removes the oldest ones
 *   (at most max(4 * its own changes, 4096) per commit) down to 3/4 of the limit.
 *
 * Why a log table and not an index on T_data(seq), and why buffered by default: measured with
 * tests/bench/storage_sqlite/ (SQLite 3.40.1, WAL, synchronous=NORMAL, 16 B random keys, 100 B
 * values, one transaction; a shared 2-vCPU VM, load 3-5, so +-30%; three runs of 1M, medians of
 * 3 each):
 *                                         100k rows      1M rows (run 1 / 2 / 3)
 *   native (k, v) WITHOUT ROWID           1.00           1.00 / 1.00 / 1.00
 *   native, 6 columns + index(seq)        1.70           1.44 / 1.99 / 1.90
 *   native, 6 columns + log table         1.39           0.99 / 1.65 / 1.50
 *   backend write-through, feed rows      1.38           1.38 / 1.77 / 1.15
 *   backend buffered, feed rows           1.41           1.03 / 1.43 / 0.96
 *   backend write-through, bulk (no feed) 1.31           0.95 / 1.57 / 1.09
 *   backend buffered, bulk (no feed)      1.17           0.87 / 1.22 / 0.85
 * (a 6-column native table alone was 0.89-1.58x the 2-column one in the same runs). The index
 * costs a random B-tree insert per write, the log an append. Buffered writes go in key order and
 * win at 1M (where the tree outgrows the CPU caches); at 100k the two are even. A bulk
 * transaction (more changes than feed_limit, default 65536) writes no feed rows, so 1M inserts
 * in one transaction take the last line. Autocommit single-row writes (alternating blocks,
 * checkpoints between them): buffered 1.05x, write-through 1.01x a native INSERT OR REPLACE.
 * Refresh when nothing changed: 53-115 ns (the FCNTL call, sqlite3_txn_state and the mutex).
 *
 * Transactions (the host's: FEOX_STORAGE_HOST_TXN). The virtual table calls, on the connection
 * the backend was opened with:
 *   xBegin       feox_refresh(store, ...) first (brings the cache to the table's current seq),
 *                then feox_sqlite_storage_begin(t); or, when the cache is complete and nothing
 *                changed, feox_sqlite_storage_begin_if_current(t) alone. Writes (write/erase)
 *                are refused outside begin..commit/rollback.
 *   xSync        feox_sqlite_storage_sync_commit(t): writes what is still pending, removes up to
 *                sweep_limit expired rows (storage_sqlite_expiry.c; skipped while nothing can
 *                have expired), trims the feed.
 *   xCommit      feox_sqlite_storage_commit(t): the cache is now at the transaction's last seq.
 *   xRollback    feox_sqlite_storage_rollback(t): pending changes dropped (SQLite restores the
 *                tables; the vtab restores the indexes with FEOX_WRITE_INDEX_ONLY writes).
 *   xSavepoint(N)   feox_sqlite_storage_savepoint(t, N): writes what is pending, so that
 *                   SQLite's savepoint N (opened after xSavepoint returns) covers only what
 *                   comes later.
 *   xRollbackTo(N)  feox_sqlite_storage_rollback_to(t, N): drops what is pending; everything
 *                   written before savepoint N is already in the tables and SQLite has rolled
 *                   those back to N itself.
 *   xRelease(N)  nothing.
 * Buffered mode (the default, as FTS5 does): write() and erase() keep the change in a per-
 * transaction pending map (a later change of the same key replaces it); sync, savepoint and a
 * pending map larger than pending_limit write the map to the tables in key order. Write-through
 * mode runs the INSERT/DELETE at once. Both keep the same tables.
 *
 * Larger than memory (the store's max_memory set). The store may drop the bytes of a version
 * that has a location and read them back with read_value(), which reads the table's row by key
 * (never the pending map: a version still pending has location 0, so the store keeps its bytes;
 * when the map is written out each version is moved to its seq with host->relocate). Since
 * relocate takes the key's lock in the store, write() then never writes the map out itself (it
 * runs under such a lock): the vtab calls feox_sqlite_storage_settle() after each write
 * instead. load() sends values in full up to max_memory / 2 and the rest cold (value NULL, by
 * key), and pending_limit defaults to max_memory / 4 (at least 64 KiB, at most 32 MiB).
 * Without max_memory nothing needs a version's seq back: the backend says
 * FEOX_STORAGE_VALUES_BY_KEY, and the store keeps no location word (8 bytes a cached key).
 *
 * Coherence (refresh): SQLITE_FCNTL_DATA_VERSION compared with the value seen at the last load,
 * refresh or commit (no SQL when it is unchanged and a read or write transaction is open); else
 * the current seq is read: unchanged -> remember the version; the table's seq went back ->
 * FEOX_ERR_STALE (the store reloads); the cache older than min_seq -> the cache is compared with
 * the table in key order and what differs goes to the sink (storage_sqlite_load.c); else every
 * feed row after the cache's seq goes to the sink (put with the data row if it is that row's
 * latest write, del if the key has no row). Then, while the cache is partial, one more chunk
 * of the lazy load (below). Inside begin..commit the feed is not read (the cache is current and
 * only this connection can write); a range a scan asked for is still loaded.
 *
 * Errors. SQL failures become feox_err: SQLITE_BUSY and SQLITE_LOCKED -> FEOX_ERR_LOCKED,
 * SQLITE_NOMEM -> FEOX_ERR_NOMEM, SQLITE_FULL -> FEOX_ERR_DISK_FULL, SQLITE_CORRUPT and
 * SQLITE_NOTADB -> FEOX_ERR_CORRUPT, anything else -> FEOX_ERR_IO. The SQLite extended code and
 * a message naming the table are left in t->errcode / t->errmsg (the engine's
 * feox_error_detail() is engine-internal), so the vtab can return SQLite's own code and message;
 * both are cleared at the start of every backend call that runs SQL.
 *
 * Threads: every method takes the connection's mutex (sqlite3_db_mutex), as SQLite's own calls
 * do, so the backend is as thread-safe as its connection. One backend per connection and table:
 * its cache state (the seq it reflects, the pending map) is that connection's.
 *
 * SQLITE_DBCONFIG_DEFENSIVE makes shadow tables read-only to SQL that is not nested in a virtual
 * table method (or xSync). The backend's statements are prepared on first use and re-prepared by
 * SQLite after a schema change, both at the time they run: so every call that writes must come
 * from inside a vtab method (xUpdate, xSync, xSavepoint, a function's enlisting statement), as it
 * will. Tests calling the methods directly leave DEFENSIVE off.
 */
#ifndef FEOX_STORAGE_SQLITE_H
#define FEOX_STORAGE_SQLITE_H

#include <sqlite3ext.h>
#include <stdbool.h>
#include <stdint.h>

#include "feox_storage.h"

/* How write() and erase() reach the tables. */
typedef enum feox_sqlite_write_mode {
    FEOX_SQLITE_WRITE_BUFFERED = 0, /* pending map, written in key order at sync (default) */
    FEOX_SQLITE_WRITE_THROUGH = 1   /* a nested INSERT OR REPLACE / DELETE per call */
} feox_sqlite_write_mode;

/* The backend's argument (feox_config.storage_arg), owned by the virtual table; it must stay
 * valid and in place while the store is open. */
typedef struct feox_sqlite_table {
    /* Set by the caller before feox_open. */
    sqlite3 *db;        /* the connection: every statement runs on it */
    const char *schema; /* "main", "temp" or an attached database's name */
    const char *table;  /* the virtual table's name; the shadow tables are <table>_data, ... */
    feox_sqlite_write_mode write_mode;
    uint64_t pending_limit;   /* buffered: bytes held before an early write; 0 = 32 MiB */
    uint64_t feed_limit;      /* changes the feed keeps; 0 = 65536 */
    uint64_t sweep_limit;     /* expired rows a commit removes at most; 0 = 64 */
    bool no_commit_sweep;     /* commits remove none (clock='log': only an explicit sweep does) */
    uint64_t load_chunk_rows; /* lazy load: rows per chunk; 0 = 8192 (storage_sqlite_load.c) */

    /* Set by the backend. */
    struct feox_sqlite_backend *backend; /* the open backend (NULL when none is open) */
    int errcode;      /* extended SQLite code of the last failed statement, SQLITE_OK if none */
    char errmsg[256]; /* "feox: <table>: <what>: <sqlite3_errmsg>" for it, "" if none */
} feox_sqlite_table;

/* The backend: name "sqlite", caps HOST_TXN | SELF_COMPACT | INDEX_CACHE (find and read_value
 * read one row by key; values need not be held in memory: see "Larger than memory" above).
 * open() does not touch the database: statements are prepared on first use. */
const feox_storage_methods *feox_sqlite_storage(void);

/* The backend's check() of t's shadow tables without a store (t as for feox_open, no backend
 * open on it): for a table whose cache could not be loaded. FEOX_ERR_CORRUPT with the problems in
 * detail, FEOX_ERR_FORMAT (said in detail too) for a layout this release does not know, or the
 * error of the SQL that failed (t->errcode). */
feox_err feox_sqlite_storage_check_tables(feox_sqlite_table *t, char *detail, size_t detail_len);

/* The coherence check of a statement that reads the table (xFilter), where SQLite holds a
 * transaction on t->schema (so SQLITE_FCNTL_DATA_VERSION is current) and the connection's mutex:
 * true if feox_refresh() would change nothing, i.e. the cache is complete and, outside a write
 * transaction, the data version is the one it was last brought up to date at. One
 * sqlite3_file_control, no SQL. False: call feox_refresh(). */
bool feox_sqlite_storage_current(feox_sqlite_table *t);

/* ---- transactions: called from the vtab's transaction methods (see the top of this file) ----
 * Each returns FEOX_OK or the error of the SQL that failed (t->errcode says which). */
/* Take the write lock of the table's database in the open transaction (a statement that writes
 * nothing, run through SQLite's busy handler), as a write statement does before its xBegin: a
 * caller that begins the table's transaction itself calls it before feox_sqlite_storage_begin
 * so the coherence check runs under the lock (in WAL, reading first and writing later would
 * fail with SQLITE_BUSY_SNAPSHOT whenever another connection committed in between). */
feox_err feox_sqlite_storage_lock_for_write(feox_sqlite_table *t);
feox_err feox_sqlite_storage_begin(feox_sqlite_table *t);
/* feox_sqlite_storage_begin for xBegin, which has just called feox_refresh() on the store, and
 * where the statement's transaction stays open from that refresh to this call (SQLite holds it
 * and the connection's mutex): if the refresh found the cache current inside that transaction
 * and no other backend call came between, the version is not checked again (one
 * sqlite3_txn_state and one SQLITE_FCNTL_DATA_VERSION less per write transaction). Only for
 * that caller: after a refresh in a transaction that has since ended, another connection may
 * have committed, which feox_sqlite_storage_begin finds and this would not. */
feox_err feox_sqlite_storage_begin_refreshed(feox_sqlite_table *t);
/* xBegin's common case, instead of feox_refresh() + feox_sqlite_storage_begin_refreshed(): if the
 * cache is complete (nothing left to load, no range wanted), loaded from this database, and the
 * data version is the one it was last brought up to date at, begin the transaction and return
 * true; else do nothing and return false. Only for xBegin, where SQLite has opened the
 * statement's write transaction on t->schema (OP_Transaction runs before OP_VBegin, and a
 * function's own transaction takes the write lock first), so SQLITE_FCNTL_DATA_VERSION is
 * current without asking sqlite3_txn_state. One sqlite3_file_control and the connection's mutex:
 * no SQL and no engine call (callgrind: ~0.7K of ~1.1K instructions per write transaction). */
bool feox_sqlite_storage_begin_if_current(feox_sqlite_table *t);
feox_err feox_sqlite_storage_sync(feox_sqlite_table *t);
/* After a write through the store returned (no engine lock held): write the pending map out if it
 * holds more than pending_limit. With max_memory, write() leaves that to this call, since
 * writing it out lets the store drop those values (host relocate, under the keys' locks). */
feox_err feox_sqlite_storage_settle(feox_sqlite_table *t);
/* xSync of a committing transaction: feox_sqlite_storage_sync, plus, once per transaction and
 * only if it changed the table, the removal of up to sweep_limit expired rows (*swept: how
 * many; the caller's cache should let go of its expired records too). */
feox_err feox_sqlite_storage_sync_commit(feox_sqlite_table *t, uint64_t *swept);
/* Inside begin..commit: remove up to limit (0 = every) expired rows, with their feed rows. */
feox_err feox_sqlite_storage_sweep(feox_sqlite_table *t, uint64_t limit, uint64_t *removed);
/* Commits' sweeps since open: how many sought the expiry index, how many skipped it because
 * nothing in it could have expired yet (storage_sqlite_expiry.c); zeros when none is open. */
void feox_sqlite_storage_sweep_counts(feox_sqlite_table *t, uint64_t *seeks, uint64_t *skips);
void feox_sqlite_storage_commit(feox_sqlite_table *t);
void feox_sqlite_storage_rollback(feox_sqlite_table *t);
/* True while the engine is inside a call to t's backend (a find, a load, a refresh): the engine
 * may hold its locks and the store is in use, so a rollback that SQLite runs from inside one of
 * the backend's statements (an I/O error there rolls back everything) must leave the cache's
 * undo for later. */
bool feox_sqlite_storage_in_engine_call(const feox_sqlite_table *t);
feox_err feox_sqlite_storage_savepoint(feox_sqlite_table *t, int level);
void feox_sqlite_storage_rollback_to(feox_sqlite_table *t, int level);

/* ---- the lazy load (storage_sqlite_load.c, where the design and its argument are) ----
 * The cache starts partial: load() loads one chunk of <t>_data in key order, and each refresh
 * outside a transaction one more, until it is complete. A key the cache does not hold is looked
 * up with find() meanwhile (point reads and writes work at once); a miss is answered without
 * SQL where the cache is known to hold every row (below the loaded frontier, or everywhere once
 * complete). A scan must ask for its range first: feox_sqlite_storage_want(t, lo, hi) (NULL:
 * unbounded; both inclusive) makes the next feox_refresh() load every row of it. */
feox_err feox_sqlite_storage_want(feox_sqlite_table *t, const void *lo, uint32_t lo_len,
                                  const void *hi, uint32_t hi_len);
/* A chunk's time budget in ns (3 ms; a chunk also stops at load_chunk_rows). For tests that count
 * the load's I/O operations: UINT64_MAX leaves chunks bounded by rows only, so every run reads the
 * same pages (under load, or ASan, a 3 ms chunk holds fewer rows). Set before any load. */
extern uint64_t feox_sq_chunk_ns;

typedef struct feox_sqlite_load_info {
    bool complete;        /* every row is in the cache */
    uint64_t table_seq;   /* the table's seq the cache reflects: changes ever made, an upper
                           * bound of its rows for costing plans while partial */
    uint64_t rows;        /* rows loaded (chunks and ranges, since open) */
    uint64_t chunks;      /* chunks loaded (refreshes that advanced the frontier) */
    uint64_t ranges;      /* ranges loaded for scans */
    uint64_t reloads;     /* full reloads (load() after the first) */
    uint64_t resyncs;     /* feed overflows resolved by comparing the cache with the table */
    uint64_t resync_rows; /* rows (and deletes) those sent: what differed */
    uint64_t finds_sql;   /* misses looked up in <t>_data */
    uint64_t finds_local; /* misses answered "not found" without SQL */
} feox_sqlite_load_info;

/* The lazy load's state and counters (all zero when no backend is open). */
void feox_sqlite_storage_load_info(feox_sqlite_table *t, feox_sqlite_load_info *out);

/* ---- shadow-table DDL (storage_sqlite_schema.c): called from xCreate / xDestroy / xRename,
 * inside the user's transaction, so a ROLLBACK undoes them. Each runs ONE sqlite3_exec (dqlite
 * misbehaved with several). Return an SQLite code; on failure *errmsg (may be NULL) receives a
 * sqlite3_malloc'd message naming the table. ---- */
int feox_sqlite_storage_create(sqlite3 *db, const char *schema, const char *table, char **errmsg);
int feox_sqlite_storage_drop(sqlite3 *db, const char *schema, const char *table, char **errmsg);
int feox_sqlite_storage_rename(sqlite3 *db, const char *schema, const char *from, const char *to,
                               char **errmsg);
/* After feox_sqlite_storage_rename() in xRename: the open backend names new_table's shadow
 * tables from now on (its prepared statements are dropped; the name is copied). If the user's
 * transaction rolls back, SQLite reconnects the virtual table under its old name. */
feox_err feox_sqlite_storage_renamed(feox_sqlite_table *t, const char *new_table);
/* The name of <table>_data's expiry index in *name (sqlite3_free it; NULL if there is none and
 * create is false). With create, a table made without it (the first layout) gets it, under a
 * free name: only inside a write transaction. */
int feox_sqlite_storage_expiry_index(sqlite3 *db, const char *schema, const char *table,
                                     bool create, char **name, char **errmsg);
/* xShadowName: 1 if suffix (the part after "<table>_") names one of the shadow tables. */
int feox_sqlite_storage_shadow_name(const char *suffix);

/* The layout version recorded in <table>_meta ('format'). */
#define FEOX_SQLITE_FORMAT 1

#endif
