/*
 * storage_sqlite_internal.h — the "sqlite" backend's state and the helpers its files share
 * (storage_sqlite_sql.c: statements, errors, values; storage_sqlite.c: the methods and
 * transactions; storage_sqlite_check.c: check()).
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
    FEOX_SQ_LOAD,           /* every row of _data */
    FEOX_SQ_FIND,           /* one row of _data by key */
    FEOX_SQ_PUT,            /* INSERT OR REPLACE into _data */
    FEOX_SQ_DEL,            /* DELETE from _data by key */
    FEOX_SQ_LOG,            /* append a feed row */
    FEOX_SQ_FEED,           /* feed rows after a seq, joined with _data */
    FEOX_SQ_LOG_DROP_AFTER, /* delete feed rows after a seq */
    FEOX_SQ_LOG_TRIM,       /* delete feed rows up to a seq */
    FEOX_SQ_SET_MIN,        /* set min_seq */
    FEOX_SQ_EXPIRED,        /* keys of expired rows, through the expiry index */
    FEOX_SQ_COUNT
} feox_sq_id;

#define FEOX_SQ_MAX_MARKS 64

/* The transaction's feed state when a savepoint began (restored by rollback_to). */
typedef struct feox_sq_mark {
    uint64_t txn_last;
    uint64_t txn_changes;
    bool txn_logging;
} feox_sq_mark;

typedef struct feox_sqlite_backend {
    feox_storage base; /* first: a feox_storage * is a feox_sqlite_backend * */
    feox_sqlite_table *t;
    sqlite3 *db;
    char *schema, *table; /* copies */
    sqlite3_stmt *stmts[FEOX_SQ_COUNT];
    feox_storage_host host;
    feox_sqlite_write_mode mode;
    uint64_t pending_limit, feed_limit;
    bool encoding_known, text_as_text; /* TEXT values stored as TEXT: a UTF-8 database */

    /* Coherence: what the store's indexes hold. */
    bool loaded;        /* false: only a load brings them up to date */
    uint64_t cache_seq; /* the table's seq the indexes reflect */
    unsigned last_dv;   /* SQLITE_FCNTL_DATA_VERSION when cache_seq was known current */
    uint64_t last_min_seq; /* the feed's min_seq then (valid with last_dv) */

    /* The open transaction (begin .. commit/rollback). */
    bool in_txn;
    uint64_t txn_base;    /* the table's seq at begin */
    uint64_t txn_min_seq; /* min_seq at begin */
    uint64_t txn_last;    /* seq of the transaction's last change written to the tables */
    uint64_t txn_changes; /* changes written to the tables */
    bool txn_logging;     /* false once the transaction outgrew the feed */
    feox_pending pending; /* buffered changes not yet written */
    feox_sq_mark marks[FEOX_SQ_MAX_MARKS];
    size_t nmarks;
    bool txn_swept; /* the commit's bounded expiry sweep has run (once per transaction) */

    /* Larger than memory (max_memory): the store may drop the bytes of a version with a
     * location and read them back by key (read_value). A pending version has location 0 (its
     * bytes are only in memory) and gets its seq once written (host.relocate, flush_pending). */
    bool relocate;            /* max_memory is set (and the host can relocate) */
    uint64_t resident_budget; /* load: value bytes kept in memory, the rest sent cold; 0 = all */

    /* Expiry (storage_sqlite_expiry.c). */
    uint64_t sweep_limit;  /* rows a commit removes at most (0: none) */

    /* Counters (get_stats). */
    uint64_t rows_read, bytes_read, rows_written, bytes_written, flushes, syncs;
    uint64_t loaded_rows, load_ns, slow_refreshes, feed_rows, swept_rows;
} feox_sqlite_backend;

feox_err feox_sq_stmt(feox_sqlite_backend *b, feox_sq_id id, sqlite3_stmt **out);
/* Record a failed SQL call (rc) in t->errcode / t->errmsg and map it to a feox_err. */
feox_err feox_sq_sql_error(feox_sqlite_backend *b, int rc, const char *what);
/* Record a failure that is not SQLite's (errcode stays SQLITE_OK) and return err. */
feox_err feox_sq_fail(feox_sqlite_backend *b, feox_err err, const char *what);
void feox_sq_clear_error(feox_sqlite_backend *b);
/* The table's current seq and min_seq (FORMAT if the meta table says another format). */
feox_err feox_sq_read_seq(feox_sqlite_backend *b, uint64_t *cur, uint64_t *min_seq);
/* The bytes a value column reads back as (num holds INTEGER/REAL); data never NULL. */
void feox_sq_column_value(sqlite3_stmt *s, int col, unsigned char num[8], const void **data,
                          uint32_t *len);
/* The little-endian u64 at p (8 bytes: an INTEGER or REAL record value). */
uint64_t feox_sq_get_u64(const void *p);
/* Learn once whether the database is UTF-8 (text_as_text). */
feox_err feox_sq_learn_encoding(feox_sqlite_backend *b);
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
/* The keys of up to want (at most FEOX_SQ_SWEEP_BATCH) rows expired at now (expires < now), in
 * expiry order, through the expiry index (made first if the table has none). */
feox_err feox_sq_expired_keys(feox_sqlite_backend *b, uint64_t now, uint32_t want,
                              feox_sq_keys *out);
/* feox_storage_methods.check (storage_sqlite_check.c). */
feox_err feox_sq_check(feox_storage *st, char *detail, size_t detail_len);

#endif
