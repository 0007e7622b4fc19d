/*
 * storage_sqlite_internal.h — the "sqlite" backend's state and the helpers its files share
 * (storage_sqlite_sql.c: statements, errors, values; storage_sqlite.c: the methods and
 * transactions; storage_sqlite_check.c: check(); storage_sqlite_load.c: the lazy load).
 */
#ifndef FEOX_STORAGE_SQLITE_INTERNAL_H
#define FEOX_STORAGE_SQLITE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "storage_sqlite.h"
#include "storage_sqlite_pending.h"

/* The cached statements (texts in storage_sqlite.c). */
typedef enum feox_sq_id {
    FEOX_SQ_SEQ,            /* current seq, min_seq, format */
    FEOX_SQ_FIND,           /* one row of _data by key */
    FEOX_SQ_PUT,            /* INSERT OR REPLACE into _data */
    FEOX_SQ_OVERWRITE,      /* UPDATE of a _data row without an expiry, to one without */
    FEOX_SQ_DEL,            /* DELETE from _data by key */
    FEOX_SQ_LOG,            /* append a feed row */
    FEOX_SQ_FEED,           /* feed rows after a seq, joined with _data */
    FEOX_SQ_LOG_DROP_AFTER, /* delete feed rows after a seq */
    FEOX_SQ_LOG_TRIM,       /* delete feed rows up to a seq */
    FEOX_SQ_SET_MIN,        /* set min_seq */
    FEOX_SQ_EXPIRED,        /* keys of expired rows, through the expiry index */
    FEOX_SQ_WRITE_LOCK,     /* no-op DELETE on _meta: takes the database's write lock */
    FEOX_SQ_COOKIE,         /* the schema's schema_version (its schema cookie) */
    FEOX_SQ_COUNT
} feox_sq_id;

#define FEOX_SQ_MAX_MARKS 64

/* The transaction's feed state when a savepoint began (restored by rollback_to). */
typedef struct feox_sq_mark {
    uint64_t txn_last;
    uint64_t txn_changes;
    bool txn_logging;
} feox_sq_mark;

/* A key copy that keeps its capacity (storage_sqlite_load.c). One byte more than len is always
 * allocated, so that key||0x00, the smallest key after it, can be bound without a copy. */
typedef struct feox_sq_key {
    unsigned char *data;
    uint32_t len, cap;
} feox_sq_key;

/* The lazy load (storage_sqlite_load.c): which rows of <t>_data the cache holds for sure. */
typedef struct feox_sq_lazy {
    bool complete;        /* every row: a miss is "not found" without SQL */
    bool started;         /* frontier is set (false: no row loaded yet) */
    feox_sq_key frontier; /* every row with key <= frontier is in the cache */
    /* what the next refresh must load in full (feox_sqlite_storage_want) */
    bool want, want_has_lo, want_has_hi;
    feox_sq_key want_lo, want_hi;
    feox_sq_key scratch; /* the last key of a chunk */
    uint64_t resident;   /* value bytes sent in full since the load began (resident_budget) */
    /* since the load began: rows read, their key and value bytes, and the first key's first 8
     * bytes (expected_rows) */
    uint64_t load_rows, load_bytes;
    uint64_t first_head;
    sqlite3_stmt *from_stmt, *range_stmt; /* rows from a key on / in an interval, in key order */
    /* counters (feox_sqlite_storage_load_info) */
    uint64_t rows, chunks, ranges, reloads, loads, finds_sql, finds_local;
    uint64_t resyncs, resync_rows; /* feed overflows resolved by comparing; rows sent by them */
} feox_sq_lazy;

typedef struct feox_sqlite_backend {
    feox_storage base; /* first: a feox_storage * is a feox_sqlite_backend * */
    feox_sqlite_table *t;
    sqlite3 *db;
    char *schema, *table; /* copies */
    /* schema as sqlite3_file_control wants it: NULL for "main" (index 0, no lookup by name) */
    const char *dv_schema;
    sqlite3_stmt *stmts[FEOX_SQ_COUNT];
    feox_storage_host host;
    feox_sqlite_write_mode mode;
    uint64_t pending_limit, feed_limit;
    bool encoding_known, text_as_text; /* TEXT values stored as TEXT: a UTF-8 database */
    /* What PUT and LOG hold bound from their last run (run() keeps bindings), so an unchanged
     * parameter is not bound again: forgotten when the statement is prepared (its parameters
     * are all NULL then: feox_sq_stmt). */
    bool put_tag_known; /* PUT's ?3 is put_tag */
    uint32_t put_tag;
    bool overwrite_tag_known; /* OVERWRITE's ?3 is overwrite_tag */
    uint32_t overwrite_tag;
    bool put_expires_set; /* PUT's ?5 holds an expiry (else NULL) */
    bool log_ts_set;      /* LOG's ?3 holds a time (else NULL) */

    /* Coherence: what the store's indexes hold. */
    bool loaded;           /* false: only a load brings them up to date */
    uint64_t cache_seq;    /* the table's seq the indexes reflect */
    unsigned last_dv;      /* SQLITE_FCNTL_DATA_VERSION when cache_seq was known current */
    uint64_t last_min_seq; /* the feed's min_seq then (valid with last_dv) */
    /* Backend calls so far (each lock() counts one), and the call at which a refresh last
     * found the cache current inside an open transaction: a begin that is the very next call
     * (xBegin refreshes, then begins, under the connection's mutex) need not check again. */
    uint64_t calls, current_at_call;
    /* Depth of the engine's calls into this backend (its methods: find, load, refresh, ...).
     * The engine may hold its own locks meanwhile (a find runs under the key's shard lock), and
     * an I/O error in a statement a method runs makes SQLite roll the whole transaction back
     * from inside that statement: the table's xRollback then defers what needs the engine
     * (feox_sqlite_storage_in_engine_call). */
    unsigned engine_calls;
    /* What the indexes were loaded from (storage_sqlite_sql.c). sqlite3_deserialize puts an
     * in-memory image under a table whose vtab stays connected (a cached statement keeps it
     * while the schema cookie matches): the image's seq says nothing about this cache, and its
     * data version may even be equal, so another file or image means a reload. loaded_file is
     * the file (a transaction open across a swap is refused); loaded_image also tells one
     * in-memory image from the next (its buffer, which moves when it grows: a reload then). */
    const void *loaded_file, *loaded_image;
    /* The schema cookie read before the load. A prepared statement keeps a vtab connected after
     * another connection dropped its table, or dropped it and created another of that name: the
     * backend's statements are prepared again for the new shadow tables, whose seq may equal the
     * cache's. Another cookie at a refresh means a reload (or "no such table"). */
    int loaded_cookie;
    bool in_memory_image; /* at the load: the schema is an in-memory image (the memdb VFS) */

    /* The open transaction (begin .. commit/rollback). */
    bool in_txn;
    uint64_t txn_base;    /* the table's seq at begin */
    uint64_t txn_min_seq; /* min_seq at begin */
    uint64_t txn_last;    /* seq of the transaction's last change written to the tables */
    uint64_t txn_changes; /* changes written to the tables */
    bool txn_logging;     /* false once the transaction outgrew the feed */
    feox_pending pending; /* buffered changes not yet written */
    size_t nmarks;        /* of marks (at the end of the struct) */
    bool txn_swept;       /* the commit's bounded expiry sweep has run (once per transaction) */

    /* Larger than memory (max_memory): the store may drop the bytes of a version with a
     * location and read them back by key (read_value). A pending version has location 0 (its
     * bytes are only in memory) and gets its seq once written (host.relocate, flush_pending). */
    bool relocate;            /* max_memory is set (and the host can relocate) */
    uint64_t resident_budget; /* load: value bytes kept in memory, the rest sent cold; 0 = all */

    /* Expiry (storage_sqlite_expiry.c). */
    uint64_t sweep_limit; /* rows a commit removes at most (0: none) */
    /* The earliest expires the expiry index can hold, when expiry_known (INT64_MAX: no row of
     * it can ever expire): a commit's sweep seeks the index only once now passes it. */
    bool expiry_known;
    int64_t next_expiry;
    uint64_t sweep_seeks, sweep_skips; /* commit sweeps that sought the index / skipped it */

    feox_sq_lazy lazy;

    /* Counters (get_stats). */
    uint64_t rows_read, bytes_read, rows_written, bytes_written, flushes, syncs;
    uint64_t loaded_rows, load_ns, slow_refreshes, feed_rows, swept_rows;

    /* Last: 1.5 KiB that only savepoints touch, kept apart from the fields every statement's
     * check reads (loaded, last_dv, in_txn, lazy: feox_sqlite_storage_current). */
    feox_sq_mark marks[FEOX_SQ_MAX_MARKS];
} feox_sqlite_backend;

/* The location of a version still in the pending map: 0 (only in memory: never evicted) when the
 * store may drop values (relocated to its seq once written), else any non-zero value. */
static inline uint64_t feox_sq_pending_location(const feox_sqlite_backend *b)
{
    return b->relocate ? 0 : b->txn_base + 1;
}

feox_err feox_sq_stmt(feox_sqlite_backend *b, feox_sq_id id, sqlite3_stmt **out);
/* Record a failed SQL call (rc) in t->errcode / t->errmsg and map it to a feox_err. */
feox_err feox_sq_sql_error(feox_sqlite_backend *b, int rc, const char *what);
/* Record a failure that is not SQLite's and return err. Damaged shadow tables (CORRUPT, FORMAT)
 * also set errcode (SQLITE_CORRUPT, SQLITE_NOTADB), so the user sees this message naming the
 * damage; other failures leave it SQLITE_OK (STALE, for one, is handled inside feox). */
feox_err feox_sq_fail(feox_sqlite_backend *b, feox_err err, const char *what);
void feox_sq_clear_error(feox_sqlite_backend *b);
/* The table's current seq and min_seq (FORMAT if the meta table says another format). */
feox_err feox_sq_read_seq(feox_sqlite_backend *b, uint64_t *cur, uint64_t *min_seq);
/* The schema's schema cookie (PRAGMA schema_version). */
feox_err feox_sq_read_cookie(feox_sqlite_backend *b, int *cookie);
/* The bytes a value column's value reads back as (num holds INTEGER/REAL); data never NULL. */
void feox_sq_value_bytes(sqlite3_value *v, unsigned char num[8], const void **data, uint32_t *len);
/* The key in column col of s's row (its bytes, never NULL: x'' for an empty or NULL key), with one
 * sqlite3_column_* call (each takes the connection's mutex). */
const void *feox_sq_column_key(sqlite3_stmt *s, int col, uint32_t *len);
/* The little-endian u64 at p (8 bytes: an INTEGER or REAL record value). */
uint64_t feox_sq_get_u64(const void *p);
/* SQLITE_LIMIT_LENGTH lowered below a stored value (sqlite3_limit): a backend read of values (a
 * chunk, the feed, a resync, a find, a cold value read back, check) lifts the limit to
 * FEOX_MAX_VALUE_SIZE while it runs, so a value over the connection's own limit does not fail
 * the statement, and with it every other row and every statement on the table. The cache holds
 * such a value as any other: handing it to SQLite (xColumn's sqlite3_result_*) is what fails,
 * with SQLITE_TOOBIG, as reading the native row does. feox_sq_lift_length_limit returns the
 * connection's limit, which feox_sq_restore_length_limit puts back (a nested call finds it
 * lifted and leaves it). */
int feox_sq_lift_length_limit(feox_sqlite_backend *b);
void feox_sq_restore_length_limit(feox_sqlite_backend *b, int limit);
/* Learn once whether the database is UTF-8 (text_as_text). */
feox_err feox_sq_learn_encoding(feox_sqlite_backend *b);
/* rec from the columns value, tag, ts, expires, seq starting at col (key given).
 * FEOX_ERR_CORRUPT, naming <table>_data, for a row no write makes (a hand edit): an empty or
 * too long key, a too long value. */
feox_err feox_sq_column_record(feox_sqlite_backend *b, sqlite3_stmt *s, int col, const void *key,
                               uint32_t key_len, unsigned char num[8], feox_storage_record *rec);
/* SQLITE_FCNTL_DATA_VERSION of the backend's schema. */
unsigned feox_sq_data_version(feox_sqlite_backend *b);
/* The schema's database file now (the pager's name pointer): compared with loaded_file. */
const void *feox_sq_database_file(feox_sqlite_backend *b);
/* The file's name pointer, or for an in-memory image (in_memory_image) its buffer: compared
 * with loaded_image. */
const void *feox_sq_database_image(feox_sqlite_backend *b);
/* Whether the schema is an in-memory image now (its VFS is "memdb"). */
bool feox_sq_is_memory_image(feox_sqlite_backend *b);
/* ---- expiry (storage_sqlite_expiry.c) ---- */

#define FEOX_SQ_SWEEP_BATCH 256u

/* Keys copied out of a statement (up to FEOX_SQ_SWEEP_BATCH). */
typedef struct feox_sq_keys {
    unsigned char *bytes; /* sqlite3_malloc'd; sqlite3_free it when done */
    size_t used, cap;
    size_t at[FEOX_SQ_SWEEP_BATCH];
    uint32_t len[FEOX_SQ_SWEEP_BATCH];
    size_t n;
} feox_sq_keys;

/* The store's clock (the host's now_ns), or the real time without a host. */
uint64_t feox_sq_now(feox_sqlite_backend *b);
/* now as the expires column compares it (an i64, clamped). */
int64_t feox_sq_expiry_time(uint64_t now);
/* The keys of up to want (at most FEOX_SQ_SWEEP_BATCH) rows expired at now (expires < now), in
 * expiry order, through the expiry index (made first if the table has none); *next: the
 * earliest expires of the index's rows after them (INT64_MAX if none). */
feox_err feox_sq_expired_keys(feox_sqlite_backend *b, uint64_t now, uint32_t want,
                              feox_sq_keys *out, int64_t *next);
/* A row with this expiry (0: none) may now be in the index: a later sweep must not skip it. */
static inline void feox_sq_expiry_lower(feox_sqlite_backend *b, uint64_t expires_at_ns)
{
    int64_t e = (int64_t)expires_at_ns; /* as the column holds it (negative: never expires) */
    if (expires_at_ns != 0 && e >= 0 && e < b->next_expiry) {
        b->next_expiry = e;
    }
}
/* Anything may be in the index now (a reload, a resync, a rollback): the next sweep seeks. */
static inline void feox_sq_expiry_unknown(feox_sqlite_backend *b)
{
    b->expiry_known = false;
}
/* true when a commit's sweep must seek the index (false: nothing in it can have expired yet;
 * the clock is read only when a row of it has an expiry). */
bool feox_sq_expiry_due(feox_sqlite_backend *b);
/* feox_storage_methods.check (storage_sqlite_check.c). */
feox_err feox_sq_check(feox_storage *st, char *detail, size_t detail_len);

/* ---- the lazy load (storage_sqlite_load.c) ----
 * load(): the cache restarts empty at the table's current seq and loads its first chunk. */
feox_err feox_sq_lazy_load(feox_sqlite_backend *b, const feox_storage_sink *sink);
/* The end of refresh(), after the feed: a wanted range in full, else (outside a transaction) one
 * more chunk while the cache is partial. */
feox_err feox_sq_lazy_step(feox_sqlite_backend *b, const feox_storage_sink *sink);
/* refresh() when the feed no longer reaches back to cache_seq (it is older than min_seq): bring
 * the cache to the table by comparing them in key order (only what differs is sent; FEOX_ERR_STALE
 * when the store offers no live walk: then the store reloads). */
feox_err feox_sq_lazy_resync(feox_sqlite_backend *b, const feox_storage_sink *sink);
/* find(): true if the cache is known to hold every row of key (a miss means "not found"). */
bool feox_sq_lazy_covers(feox_sqlite_backend *b, const void *key, uint32_t key_len);
/* Finalize the lazy load's statements (rename, close); free its buffers too with free_all. */
void feox_sq_lazy_forget(feox_sqlite_backend *b, bool free_all);

#endif
