/*
 * feox_ext.h — declarations shared by the files of the SQLite extension (ext/). Not installed.
 *
 * Files and their jobs, low to high: a file uses only files above it in this list, so no two
 * files depend on each other (make layers checks it):
 *   ext_api.c      the one definition of sqlite3_api (SQLITE_EXTENSION_INIT1)
 *   value_codec.c  SQL value <-> engine bytes + record tag; key canonicalisation; error mapping
 *   byte_arena.c   the bytes a transaction holds until it ends (journal, pending map)
 *   options.c      CREATE VIRTUAL TABLE options, and where a table's data lives
 *   storage_sqlite*.c  the "sqlite" storage backend: records in shadow tables (storage_sqlite.h)
 *   plan.c         xBestIndex and the plan encoding that xFilter decodes
 *   registry.c     what the extension keeps with each open store (in the engine's registry)
 *   txn_journal.c  the undo journal behind transactions and savepoints
 *   connection.c   per-connection state: live vtabs (for the functions) and store attachments
 *   file_actions.c DROP/RENAME/CREATE file changes held until SQLite's transaction is decided
 *   connection_actions.c  a connection settles its pending file actions (lookup, last release)
 *   logical_clock.c clock='log': the logical clock in <t>_meta, its command rows, automatic ts
 *   db_mode.c      database mode: a table's records in shadow tables, its per-connection cache
 *                  and the transaction wiring (FEOX_DB_MODE=0 leaves it out; see its header)
 *   vtab_store.c   the store check every use of a table starts with; the table's error messages
 *   cursor.c       xOpen/xFilter/xNext/xEof/xColumn/xClose
 *   update.c       xUpdate (INSERT / UPDATE / DELETE with SQL conflict semantics)
 *   functions.c    feox_incr, feox_cas, feox_patch, feox_stats, feox_flush, feox_check,
 *                  feox_compact, feox_sweep
 *   json_function.c  feox_json_patch(doc, patch): the pure JSON Patch SQL function
 *   vtab.c         the module: create/connect/destroy/rename and the transaction methods
 *   feox_ext.c     sqlite3_feox_init: registers the module and the SQL functions
 *
 * Every file includes <sqlite3ext.h> only; ext_api.c holds SQLITE_EXTENSION_INIT1, the others
 * SQLITE_EXTENSION_INIT3 (both are no-ops when built with -DSQLITE_CORE). The engine is reached
 * only through feox.h.
 */
#ifndef FEOX_EXT_H
#define FEOX_EXT_H

#include <sqlite3ext.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "byte_arena.h"
#include "feox.h"

/* ---- value tags (value_codec.c) ---------------------------------------------------------------
 * The SQL type of a value is kept in the engine record's tag:
 *   0 FEOX_TAG_RAW      written by a non-SQL user of the engine: shown as BLOB
 *   1 FEOX_TAG_INTEGER  8 bytes, little-endian two's-complement i64 (the engine's counter format)
 *   2 FEOX_TAG_REAL     8 bytes, little-endian IEEE-754 double
 *   3 FEOX_TAG_TEXT     the UTF-8 bytes, no terminator
 *   4 FEOX_TAG_BLOB     the bytes
 *   5 FEOX_TAG_NULL     zero bytes
 * A value whose tag and length disagree (INTEGER/REAL not 8 bytes) is shown as BLOB. */
enum feox_value_tag {
    FEOX_TAG_RAW = 0,
    FEOX_TAG_INTEGER = 1,
    FEOX_TAG_REAL = 2,
    FEOX_TAG_TEXT = 3,
    FEOX_TAG_BLOB = 4,
    FEOX_TAG_NULL = 5
};

typedef enum feox_keytype { FEOX_KEYTYPE_TEXT = 0, FEOX_KEYTYPE_BLOB = 1 } feox_keytype;

/* An SQL value encoded for the engine. data points into the sqlite3_value or into num; it is
 * valid while the sqlite3_value is (and is never NULL, even for zero bytes). */
typedef struct feox_encoded {
    uint32_t tag;
    const void *data;
    size_t len;
    unsigned char num[8];
} feox_encoded;

void feox_encode_value(sqlite3_value *v, feox_encoded *out);
void feox_result_value(sqlite3_context *ctx, uint32_t tag, const void *data, size_t len);
/* The same for a version held by a handle, without copying TEXT and BLOB bytes: SQLite gets
 * another handle on the version and releases it when it is done with the value. */
void feox_result_value_handle(sqlite3_context *ctx, feox_value *v);
bool feox_decode_i64(uint32_t tag, const void *data, size_t len, int64_t *out);
/* The double held by the 8 bytes of a REAL value (FEOX_TAG_REAL, len 8). */
double feox_decode_real(const void *data);
void feox_put_i64(unsigned char out[8], int64_t v);

/* Canonical key of v for the table's key type (text: numbers become their text; blob: bytes).
 * Returns false for NULL. The pointer is valid while v is unchanged; never NULL. */
bool feox_key_from_value(feox_keytype keytype, sqlite3_value *v, const void **key, size_t *len);

/* *utf8: whether the text encoding of db's schema is UTF-8, so that SQLite's BINARY order of TEXT
 * is the memcmp order of UTF-8 bytes and TEXT keeps its bytes when stored. SQLite's code of a
 * failed PRAGMA encoding (*utf8 false then). */
int feox_text_is_utf8(sqlite3 *db, const char *schema, bool *utf8);

/* A whole number from an INTEGER, an integral REAL or numeric TEXT (ttl, ts, delta). */
bool feox_whole_number(sqlite3_value *v, sqlite3_int64 *out);

/* The SQLite result code for an engine error. */
int feox_err_to_sqlite(feox_err err);
/* The code a failed SQLite call on db reports, rc being what the call returned: with its extended
 * part (SQLITE_BUSY_SNAPSHOT, SQLITE_IOERR_FSYNC, SQLITE_READONLY_DBMOVED...), which
 * sqlite3_step, sqlite3_prepare, sqlite3_exec and sqlite3_errcode leave out unless the host turned
 * extended result codes on; rc itself when the connection's code is another call's (rc from
 * elsewhere: SQLITE_NOMEM of a failed mprintf). Compare the result with (rc & 0xff) == X. */
int feox_sqlite_failure(sqlite3 *db, int rc);
/* "feox: <table>: <cause>[: <detail>]" (sqlite3_mprintf'd; NULL on OOM). Call right after the
 * failing engine call (the detail is per thread and per call). */
char *feox_err_message(const char *table, feox_err err);

/* ---- options (options.c) --------------------------------------------------------------------- */

/* Bits of feox_options.given, in the order options.c lists the names. */
enum feox_option_bit {
    FEOX_OPTION_PATH = 1u << 0,
    FEOX_OPTION_MAX_MEMORY = 1u << 1,
    FEOX_OPTION_SYNC = 1u << 2,
    FEOX_OPTION_KEYTYPE = 1u << 3,
    FEOX_OPTION_TTL_SWEEP_INTERVAL = 1u << 4,
    FEOX_OPTION_FLUSH_INTERVAL = 1u << 5,
    FEOX_OPTION_CLOCK = 1u << 6
};

typedef struct feox_options {
    char *path;          /* as given (dequoted), NULL if absent */
    uint64_t max_memory; /* 0 = unlimited */
    feox_sync_mode sync;
    feox_keytype keytype;
    bool ttl_sweep_set;
    uint32_t ttl_sweep_interval_ms; /* 0 with ttl_sweep_set = sweeper off */
    uint32_t flush_interval_ms;
    bool clock_log; /* clock='log': the deterministic mode (logical_clock.c) */
    unsigned given; /* FEOX_OPTION_* bits: the options the statement named */
    /* Not an option: where the table's data lives once its first resolve has decided it (a
     * previous-release table stays in its file; a database-mode table stays in the database,
     * whatever files appear later). Set by xCreate/xConnect; pinned = false: decide. */
    bool pinned;
    int pinned_kind; /* feox_location_kind */
} feox_options;

/* Parse argv[3..] of xCreate/xConnect (argv[2] is the table, named in errors). On error returns
 * SQLITE_ERROR with *err (mprintf'd), e.g. "feox: kv: unknown option 'colour'". */
int feox_options_parse(int argc, const char *const *argv, feox_options *out, char **err);
void feox_options_free(feox_options *o);

/* Database mode (db_mode.c, the "sqlite" backend): on by default. Built with -DFEOX_DB_MODE=0 it
 * is left out, and a table without path in a file database keeps its default store file, as the
 * previous release did. */
#ifndef FEOX_DB_MODE
#define FEOX_DB_MODE 1
#endif

/* Where a table's data lives. kind FILE: file_path is the absolute store file. kind SHARED_MEMORY:
 * memory only, shared by this process's connections to one database (share_key names it: the
 * database file, or a memdb VFS database "/name", options.c).
 * kind PRIVATE_MEMORY: memory only, private to this connection. kind DATABASE: records in shadow
 * tables of the table's own database, cached per connection (db_mode.c); no share key. */
typedef enum feox_location_kind {
    FEOX_LOC_FILE,
    FEOX_LOC_SHARED_MEMORY,
    FEOX_LOC_PRIVATE_MEMORY,
    FEOX_LOC_DATABASE
} feox_location_kind;

typedef struct feox_location {
    feox_location_kind kind;
    char *file_path;   /* FILE */
    char *share_key;   /* FILE and SHARED_MEMORY: names the store (attachments; memory: the
                        * engine's share key) */
    bool default_path; /* FILE chosen as <db>-<table>.feox (renamed with the table) */
    char *owner;       /* feox_store_owner(db_file, table): recorded in a file this table creates */
    char *db_file;     /* the database file ("" for an in-memory or temporary database) */
    bool previous_release; /* FILE: a table without path whose records are in its default file
                              (created before database mode; it keeps using the file) */
} feox_location;

int feox_location_resolve(sqlite3 *db, const char *schema, const char *table, const feox_options *o,
                          feox_location *out, char **err);
/* Is schema of db a database file (not :memory:, a temporary database, or one deserialized into
 * memory)? */
bool feox_is_file_database(sqlite3 *db, const char *schema);
/* Is schema a memdb VFS database that other connections of the process open by its name
 * (file:/name?vfs=memdb), rather than an image given to sqlite3_deserialize? Its new tables keep
 * their records in the database, as in a file. With SQLite newer than 3.40, which names no memdb
 * database, it may run a statement of its own (options.c says which). */
bool feox_is_shared_memdb(sqlite3 *db, const char *schema);
/* Is schema an in-memory image of its own: a memdb VFS database given to sqlite3_deserialize (or
 * restored into memory), not one opened by name? Its tables' caches check, statement by
 * statement, that it is still the image they loaded. */
bool feox_is_memory_image(sqlite3 *db, const char *schema);
void feox_location_free(feox_location *loc);
/* The default store file for (db file, table): "<dbfile>-<encoded table>.feox" (mprintf'd). */
char *feox_default_store_path(const char *db_file, const char *table);
/* The owner string of (db file, table); the format is written next to its code (options.c). */
char *feox_store_owner(const char *db_file, const char *table);
/* NULL if the two tables' options agree on everything a shared store depends on, else the first
 * difference, e.g. "sync='full' (this table says sync='off')" (mprintf'd). */
char *feox_options_conflict(const feox_options *open, const feox_options *wanted);

/* ---- registry (registry.c) ------------------------------------------------------------------- */

typedef struct feox_entry_ref feox_entry_ref;
struct feox_entry_ref {
    feox_store *store;
    char *file_path; /* NULL for memory stores */
};

/* Open (or share: the engine returns the instance open at the path or share key, and its entry
 * is in the instance's slot) the store at loc for table. create: xCreate (a missing file is
 * created and *created says so); otherwise a missing file is an error ("store file '...' does not
 * exist"). A shared store opened with different options fails, naming the option. A store this
 * process inherited through fork() is never handed out: the file is opened again.
 * The returned reference is released with feox_registry_release. On error returns an SQLite code
 * and *err. */
int feox_registry_acquire(const feox_location *loc, const feox_options *o, const char *table,
                          bool create, bool *created, feox_entry_ref **out, char **err);
/* An entry with no store (store NULL), not shared: a table whose store file is missing can
 * still be connected, so that DROP TABLE works; every other use reports the missing file. */
feox_entry_ref *feox_registry_placeholder(void);
void feox_registry_retain(feox_entry_ref *e);
void feox_registry_release(feox_entry_ref *e);
int feox_registry_refs(feox_entry_ref *e);
bool feox_registry_is_dropped(feox_entry_ref *e);
/* The open entry of a store file (not retained; compare only), or NULL. */
feox_entry_ref *feox_registry_find_file(const char *path);
/* A committed DROP of a memory store: remove its share key (a new CREATE gets a new store); if
 * others than the caller (caller_refs references) still hold it, empty it. */
void feox_registry_forget(feox_entry_ref *e, int caller_refs);
/* A committed DROP of owner's table stored in path: remove the file (feox_remove_store_file with
 * flags) unless another table of this process has it open; if only other connections of the same
 * table hold it, empty it, forget its name and remove the file with the last reference. */
void feox_registry_drop_file(const char *path, const char *owner, unsigned flags);
/* Re-key entry e to new_key (RENAME of a shared memory store: feox_set_share_key; a file store
 * keeps its path, a private store has no key). */
int feox_registry_rekey(feox_entry_ref *e, const char *new_key);
/* Move the file store of e from its path to to_path (RENAME of a default-path table, or its
 * reversal): close the store, rename the file (feox_rename_store_file; the file must record
 * file_owner, or none, and keeps recording file_owner: the owner changes only once the RENAME
 * has committed, feox_registry_set_file_owner), reopen it at the new path (its new name) and
 * list to_owner instead of from_owner among its tables. Only when the caller holds every
 * reference (caller_refs), else SQLITE_BUSY. On failure the store is reopened where it was. */
int feox_registry_move(feox_entry_ref *e, const char *table, const char *to_path,
                       const char *from_owner, const char *to_owner, const char *file_owner,
                       int caller_refs, char **err);
/* Move a store file nobody in this process has open, recording file_owner (or none, with
 * FEOX_FILE_ALLOW_UNOWNED in flags), to `to` (which must not exist); it keeps its owner. */
feox_err feox_registry_move_closed(const char *from, const char *to, const char *file_owner,
                                   unsigned flags);
/* Record to_owner as the owner of the store file at path (feox_set_owner), only if it records
 * expect_hash (or none, with FEOX_FILE_ALLOW_UNOWNED); the open store is used, else the file is
 * opened for it (LOCKED if another process holds it). The entry lists to_owner instead of
 * from_owner (NULL: no change). FEOX_OK if it records to_owner already. */
feox_err feox_registry_set_file_owner(const char *path, uint64_t expect_hash,
                                      const char *from_owner, const char *to_owner, unsigned flags);
/* True if e's store was inherited through fork() (this process may not use it). */
bool feox_registry_is_inherited(feox_entry_ref *e);

/* ---- pending file actions (file_actions.c) --------------------------------------------------- */

typedef struct feox_conn feox_conn;

/* DROP, RENAME and CREATE change files only once SQLite's transaction is decided. Each records
 * an action here; feox_actions_settle decides them from the schema (see file_actions.c). */
int feox_actions_add_drop(feox_conn *c, const char *schema, const char *table,
                          const feox_location *loc, feox_entry_ref *held);
int feox_actions_add_create(feox_conn *c, const char *schema, const char *table,
                            const feox_location *loc);
/* file_owner: the owner the table's file records (it keeps it until the RENAME is decided). */
int feox_actions_add_rename(feox_conn *c, const char *schema, const char *table,
                            const char *new_table, const feox_location *from,
                            const feox_location *to, const char *file_owner, bool moved);
/* Settle what can be decided now, as seen from connection c (NULL: none). */
void feox_actions_settle(feox_conn *c);
/* xCreate, or xRename of renaming to, (schema, table) on c with its file at file_path (NULL:
 * none; renaming NULL for xCreate): settle what this name and file depend on first; SQLITE_ERROR
 * with *err if that cannot be decided yet (dropped or renamed in the still open transaction). */
int feox_actions_before_name(feox_conn *c, const char *schema, const char *table,
                             const char *file_path, const char *renaming, char **err);
/* c is closing (SQLite rolled back its open transaction): settle its actions for good. */
void feox_actions_connection_closed(feox_conn *c);
/* DROP of (schema, table) on c: a CREATE of it still pending is superseded (the DROP decides). */
void feox_actions_forget_create(feox_conn *c, const char *schema, const char *table);
/* RENAME of (schema, table) on c: a CREATE of it still pending now concerns the new name (and the
 * moved file). */
int feox_actions_retarget_create(feox_conn *c, const char *schema, const char *table,
                                 const char *new_table, const feox_location *to, bool moved);
/* True if a connection other than c has a DROP or RENAME of table in the database file of
 * (db, schema) pending (made, maybe committed, not settled yet): c's schema may no longer show
 * that table. */
bool feox_actions_unnamed_elsewhere(feox_conn *c, sqlite3 *db, const char *schema,
                                    const char *table);
/* True if a pending RENAME of another connection moved path away (a reader must wait). */
bool feox_actions_path_moving(const char *path);
/* The owner the file of (schema, table) records while a RENAME to that name is pending on c (the
 * owner of the table's name before the transaction), mprintf'd, or NULL if none is pending. */
char *feox_actions_pending_owner(feox_conn *c, const char *schema, const char *table);
/* xConnect of a table in its default file (loc), whose database is a file: crash recovery.
 *   file missing: a feox store "<db>-*.feox" in the database's directory that records this table
 *     as owner, that no open holds, no pending action concerns and no table of the committed
 *     schema uses is renamed back to loc's path (a crash between a RENAME and its COMMIT);
 *   file present (call after it is open): if it records as owner no table of the committed
 *     schema (a crash after a RENAME's COMMIT, before the owner was changed), this table adopts
 *     it (feox_set_owner), so that its DROP removes it.
 * Never touches a file that does not verify as a feox store with the expected owner. */
void feox_actions_recover_missing(const char *table, const feox_location *loc);
void feox_actions_adopt(const char *table, const feox_location *loc);

/* ---- undo journal (txn_journal.c) ------------------------------------------------------------ */

typedef struct feox_journal_entry {
    unsigned char *key;
    size_t key_len;
    bool existed; /* false: the key was absent; undo deletes it */
    unsigned char *value;
    size_t value_len;
    uint32_t tag;
    uint64_t timestamp_ns;
    uint64_t expires_at_ns;
} feox_journal_entry;

/* Bytes of key and old value the journal holds without an allocation (see feox_journal). */
#define FEOX_JOURNAL_INLINE_BYTES 256

typedef struct feox_journal {
    /* Entry i is entries[i]; while entries is NULL the journal holds at most one entry, in
     * first. One entry's bytes may sit in inline_bytes. So a transaction of one small write (an
     * autocommit statement) allocates nothing (txn_journal.c). */
    feox_journal_entry *entries;
    size_t n, cap;
    feox_journal_entry first;
    bool inline_used;
    unsigned char inline_bytes[FEOX_JOURNAL_INLINE_BYTES];
    feox_arena arena; /* the other entries' keys and old values, kept between transactions */
    size_t *marks;    /* marks[i] = journal length when savepoint i began */
    int n_marks, cap_marks;
    /* Added to the flags of every undo write: FEOX_WRITE_INDEX_ONLY in database mode, where
     * SQLite has already restored the records and only the cache is put back. */
    unsigned undo_flags;
} feox_journal;

/* Record the state a write has just replaced: old, the reference it returned through
 * feox_write_opts.replaced (NULL: the key was absent), which this releases. If the journal
 * cannot grow, the write is undone at once and SQLITE_NOMEM returned. */
int feox_journal_replaced(feox_journal *j, feox_store *store, const void *key, size_t key_len,
                          feox_value *old);
/* Record a known state: existed=false (absent; info NULL) or the old value and its info. */
int feox_journal_add(feox_journal *j, const void *key, size_t key_len, bool existed,
                     const void *value, size_t value_len, const feox_record_info *info);
/* Forget entries above n without undoing them (the change they guarded did not happen). */
void feox_journal_truncate(feox_journal *j, size_t n);
/* Undo entries above n, newest first. On an engine error it stops and keeps the entry that failed
 * and every older one, so a later call can finish the undo; returns that error. */
feox_err feox_journal_undo_to(feox_journal *j, feox_store *store, size_t n);
void feox_journal_savepoint(feox_journal *j, int level);
void feox_journal_release(feox_journal *j, int level);
feox_err feox_journal_rollback_to(feox_journal *j, feox_store *store, int level);
/* Forget every entry and savepoint (the end of a transaction); a small entry array, the savepoint
 * marks and some arena blocks are kept for the next one. */
void feox_journal_clear(feox_journal *j);
/* Forget everything and free it all (the vtab goes). */
void feox_journal_free(feox_journal *j);

/* ---- the virtual table object (vtab.c) ------------------------------------------------------- */

typedef struct feox_attachment feox_attachment;
typedef struct feox_db_state feox_db_state;

typedef struct feox_vtab {
    sqlite3_vtab base;
    sqlite3 *db;
    feox_conn *conn;
    char *schema;
    char *name;
    char *label; /* how messages name the table: "kv", or "aux.kv" outside the main schema */
    feox_options options;
    /* Text keys in a UTF-16 database: SQLite orders them by their UTF-16 bytes, the table's
     * indexes by their UTF-8 bytes, so plans leave ranges and ORDER BY key to SQLite (plan.c). */
    bool key_order_differs;
    feox_entry_ref *entry; /* the store is entry->store (it changes when RENAME moves a file) */
    bool in_txn;           /* between xBegin and xCommit/xRollback */
    feox_journal journal;
    bool undo_pending; /* a ROLLBACK could not finish (no memory): the journal still holds
                          what it must undo; the next use of the table finishes it first */
    char *open_error;  /* the store could not be opened (its file is missing): why */
    /* "PRAGMA query_only", prepared on first use by a function that writes, and its answer
     * (valid until the statement is expired: functions.c); finalized in vtab_free */
    sqlite3_stmt *query_only_stmt;
    bool query_only_known, query_only_on;
    /* Database mode: the private store's backend state (db_mode.c); NULL in the other modes. */
    feox_db_state *dbs;
    /* clock='log': the logical clock (logical_clock.c); NULL in the default mode */
    struct feox_lclock *lclock;
    struct feox_vtab *next_in_conn;
    /* a closed cursor kept for the next xOpen (cursor.c), so a point SELECT allocates none;
     * freed with the table (feox_vt_free_spare_cursor) */
    struct feox_vt_cursor *spare_cursor;
    /* Database mode while the cache is still loading: rows the table may hold (the cache's count
     * is lower), so that plans are costed for the table, not for the part loaded yet (plan.c);
     * 0 once the cache is complete (db_mode.c). */
    uint64_t rows_hint;
    /* SQL functions running on the table (functions.c). SQL a function runs (a savepoint, the
     * enlisting INSERT, a refresh) may find the schema changed by another connection and reload
     * it, which disconnects the table: while pinned, xDisconnect only marks it disconnected and
     * takes it off the connection's list, and the function's unpin frees it. */
    int fn_pins;
    bool disconnected;
} feox_vtab;

/* The store check and the error messages of a table (vtab_store.c). */

/* Replace the vtab's error message with an mprintf'd one. */
void feox_vtab_set_error(feox_vtab *vt, const char *fmt, ...);
/* SQLITE_OK if the table has an open store and no unfinished rollback. Otherwise sets an error
 * and returns the code of what happened: SQLITE_CANTOPEN after a RENAME that moved the store file
 * but could not reopen it; a store that could not be opened again (missing file, fork()) gives the
 * open's code (CANTOPEN for a missing or locked file, CORRUPT, NOTADB, NOMEM); a pending rollback
 * is finished first, and if it still cannot, its engine error's code (NOMEM, IOERR, ...). */
int feox_vtab_check_store(feox_vtab *vt);
/* The same from xFilter (a statement's transaction is open on the table's schema: the coherence
 * check is feox_db_refresh_read). */
int feox_vtab_check_store_to_read(feox_vtab *vt);
/* The same without the coherence check, for a caller that enlists the table in a write
 * transaction next (a writing function in database mode: feox_db_fn_begin), whose xBegin makes
 * the check with the transaction open (the check here would cost a read of its own). */
int feox_vtab_check_store_without_refresh(feox_vtab *vt);
/* The table's problems, as feox_check(tab) returns them and PRAGMA integrity_check prints them:
 * the store check (without the coherence check: it reads the shadow tables itself), the engine's
 * check of the store and, in database mode, the comparison of the cache with <t>_data; a
 * database-mode table whose cache could not be opened gets the shadow tables' own check
 * (feox_db_check_tables). *report: NULL when there are none, else what was found (mprintf'd).
 * Returns SQLITE_OK, or the code of a check that could not run, with the table's error message
 * set (SQLITE_NOMEM when the report could not be allocated). */
int feox_vtab_check_table(feox_vtab *vt, char **report);
/* Set "feox: <table>: <engine error>" and return the SQLite code. */
int feox_vtab_engine_error(feox_vtab *vt, feox_err err);
/* A write to a table whose store file this process may only read (registry.c opened it
 * read_only): SQLITE_READONLY, the message naming the table and the file (FEOX_READ_ONLY_CAUSE).
 * what: "" for a write, else what was refused and why ("cannot drop the table: "). */
int feox_vtab_read_only_error(feox_vtab *vt, const char *what);

/* The module (vtab.c): sqlite3_module, and after it xIntegrity when the headers predate SQLite
 * 3.44, which added it (module version 4). Registered as &feox_module.module. */
typedef struct feox_module_v4 {
    sqlite3_module module;
#if SQLITE_VERSION_NUMBER < 3044000
    int (*xIntegrity)(sqlite3_vtab *tab, const char *schema, const char *name, int flags,
                      char **problems);
#endif
} feox_module_v4;
extern const feox_module_v4 feox_module;

/* Methods implemented outside vtab.c. */
int feox_vt_best_index(sqlite3_vtab *tab, sqlite3_index_info *info);
int feox_vt_open(sqlite3_vtab *tab, sqlite3_vtab_cursor **out);
int feox_vt_close(sqlite3_vtab_cursor *cur);
/* Free the cursor a table keeps for its next xOpen (vtab_free). */
void feox_vt_free_spare_cursor(feox_vtab *vt);
int feox_vt_filter(sqlite3_vtab_cursor *cur, int idx_num, const char *idx_str, int argc,
                   sqlite3_value **argv);
int feox_vt_next(sqlite3_vtab_cursor *cur);
int feox_vt_eof(sqlite3_vtab_cursor *cur);
int feox_vt_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx, int col);
int feox_vt_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *rowid);
int feox_vt_update(sqlite3_vtab *tab, int argc, sqlite3_value **argv, sqlite3_int64 *rowid);

/* Column numbers of the declared schema. */
enum feox_column { FEOX_COL_KEY = 0, FEOX_COL_VALUE, FEOX_COL_TTL, FEOX_COL_TS };

/* Plan encoding shared by plan.c (writes) and cursor.c (reads); see plan.c for the layout. */
typedef enum feox_plan_kind {
    FEOX_PLAN_SCAN = 0,  /* whole ordered index */
    FEOX_PLAN_RANGE = 1, /* ordered index between the tightest bounds */
    FEOX_PLAN_EQ = 2,    /* one hash lookup */
    FEOX_PLAN_IN = 3     /* hash lookups over a sorted, de-duplicated IN list */
} feox_plan_kind;

typedef enum feox_plan_op {
    FEOX_OP_END = 0,
    FEOX_OP_EQ = 1,
    FEOX_OP_IN = 2,
    FEOX_OP_GT = 3,
    FEOX_OP_GE = 4,
    FEOX_OP_LT = 5,
    FEOX_OP_LE = 6,
    FEOX_OP_LIMIT = 7,
    FEOX_OP_OFFSET = 8,
    FEOX_OP_LIMIT_HINT = 9 /* LIMIT consumed but left to SQLite (see plan.c) */
} feox_plan_op;

#define FEOX_PLAN_KIND_MASK 0x3
#define FEOX_PLAN_DESC 0x4
#define FEOX_PLAN_OP_SHIFT 3
#define FEOX_PLAN_OP_BITS 4
#define FEOX_PLAN_MAX_ARGS 6
/* A scan (SCAN or RANGE) of a statement that uses no value column: rows without values. */
#define FEOX_PLAN_NO_VALUE (1 << (FEOX_PLAN_OP_SHIFT + FEOX_PLAN_OP_BITS * FEOX_PLAN_MAX_ARGS))

/* ---- per-connection state (connection.c) ----------------------------------------------------- */

/* Find or create the connection state of db (one per connection, shared by reloads). */
feox_conn *feox_conn_get(sqlite3 *db);
void feox_conn_retain(feox_conn *c);
/* Drop one reference (feox_conn_release does, in connection_actions.c). If it was the last, the
 * state leaves the process's list, forgets its handle and releases its attachments, and this
 * returns true: the caller settles the connection's pending actions, then calls feox_conn_free. */
bool feox_conn_unref(feox_conn *c);
void feox_conn_free(feox_conn *c);
void feox_conn_add_vtab(feox_conn *c, feox_vtab *vt);
void feox_conn_remove_vtab(feox_conn *c, feox_vtab *vt);
/* The newest vtab of this connection named (schema or any schema, table), or NULL (no side
 * effects; feox_conn_find_vtab settles pending actions first). */
feox_vtab *feox_conn_lookup_vtab(feox_conn *c, const char *schema, const char *table);
/* The connection keeps one reference on every store its tables used (until close or DROP), so a
 * schema reset that disconnects before reconnecting never loses a memory store. Returns the entry
 * for (schema, table) if attached and its location key matches, else NULL. */
feox_entry_ref *feox_conn_attached(feox_conn *c, const char *schema, const char *table,
                                   const char *share_key);
int feox_conn_attach(feox_conn *c, const char *schema, const char *table, const char *share_key,
                     feox_entry_ref *e);
void feox_conn_detach(feox_conn *c, const char *schema, const char *table);
/* Release every attachment of entry e (it was dropped by another connection). */
void feox_conn_detach_entry(feox_conn *c, feox_entry_ref *e);
void feox_conn_rename(feox_conn *c, const char *schema, const char *table, const char *new_table,
                      const char *new_share_key);
/* How many references this connection holds on e (its vtabs and its attachment). */
int feox_conn_entry_refs(feox_conn *c, feox_entry_ref *e);
/* A number naming the connection state, unique in the process and never reused (0 for NULL). */
uint64_t feox_conn_id(feox_conn *c);
/* The connection's database handle (NULL once it is closing). */
sqlite3 *feox_conn_db(feox_conn *c);
/* The store attached for (schema, table), or NULL (no side effects). */
feox_entry_ref *feox_conn_attachment_entry(feox_conn *c, const char *schema, const char *table);

/* ---- a connection's pending file actions (connection_actions.c) ------------------------------ */

/* Drop one reference; the last one settles the connection's pending file actions for good
 * (feox_actions_connection_closed) and frees the state. NULL: nothing. */
void feox_conn_release(feox_conn *c);
/* The newest vtab of this connection named (schema or any schema, table), or NULL; settles the
 * connection's pending file actions first. */
feox_vtab *feox_conn_find_vtab(feox_conn *c, const char *schema, const char *table);

/* ---- clock='log' (logical_clock.c; the mode is described there) ----------------------------- */

typedef struct feox_lclock feox_lclock;

/* xCreate/xConnect, once the table's location kind is known: for clock='log', refuse a table
 * that is not in database mode (path=, memory) or whose name is a column's, and set vt->lclock.
 * SQLITE_OK and nothing set in the default mode. On error *err (mprintf'd). */
int feox_lclock_open(feox_vtab *vt, int location_kind, char **err);
void feox_lclock_close(feox_vtab *vt);
/* The store's clock (db_mode.c's open): cfg->clock reads vt's logical clock (clock='log'). */
void feox_lclock_configure(feox_vtab *vt, feox_config *cfg);
/* The schema to declare (mprintf'd): clock='log' adds the HIDDEN command column named like the
 * table. */
char *feox_lclock_schema(feox_vtab *vt);
/* The coherence check (after db_mode.c's): the cached clock is what <t>_meta holds. */
int feox_lclock_sync(feox_vtab *vt);
/* xRollback / xRollbackTo: SQLite restored <t>_meta; the next use reads it again. */
void feox_lclock_forget(feox_vtab *vt);
/* xCommit: after a 'sweep', the cache lets go of the records expired at the clock. */
void feox_lclock_committed(feox_vtab *vt);
/* xUpdate of an INSERT whose command column (argv[6]) is not NULL: 'clock' or 'sweep' (call
 * feox_db_sync first: a sweep works on the shadow table). Sets the vtab's error. */
int feox_lclock_command(feox_vtab *vt, sqlite3_value **argv);
/* clock='log': SQLITE_ERROR (and the vtab's error) if a ttl is given before the clock was set. */
int feox_lclock_need_now(feox_vtab *vt);
/* clock='log': the automatic ts of a write to a key whose live record has timestamp live_ts (0:
 * none), max(clock, live_ts + 1) (>= 1); *ts = 0 in the default mode (the engine draws it). The
 * caller reads the live record (update.c: its engine errors are reported as the backend's, by
 * db_mode.c, which this file may not call: db_mode.c configures the store's clock from here). */
int feox_lclock_auto_ts(feox_vtab *vt, uint64_t live_ts, uint64_t *ts);

/* ---- database mode (db_mode.c) --------------------------------------------------------------
 * Every function is a no-op returning SQLITE_OK for a vtab that is not in database mode (dbs NULL),
 * so the module calls them unconditionally. Errors set vt->base.zErrMsg and return SQLite's own
 * code (BUSY, LOCKED, READONLY, ... as the nested SQL reported it). */

/* xCreate/xConnect of a table at loc (kind DATABASE): xCreate creates the shadow tables (one nested
 * exec, inside the user's transaction); then a private store over them is opened for this vtab
 * (vt->entry, not shared, not attached) and vt->dbs set. On error *err (mprintf'd). */
int feox_db_open(feox_vtab *vt, bool is_create, char **err);
/* Set the vtab's error for engine error e and return the SQLite code: in database mode as the
 * backend reported it if it failed (SQLite's code and its message naming the table:
 * SQLITE_CORRUPT, SQLITE_IOERR_READ, ...; taken, so reported once), else as
 * feox_table_engine_error. For the read paths (cursor.c), the writes (update.c) and the functions
 * (functions.c). */
int feox_db_engine_error(feox_vtab *vt, feox_err e);
/* xConnect of a table whose shadow tables are damaged (SQLITE_CORRUPT, FORMAT, NOTADB; ERROR: one
 * dropped or recreated with other columns by hand) does not fail: the table connects without a
 * cache (vt->open_error says why), so that DROP TABLE and feox_check work; feox_db_reopen (every
 * other use, vtab_store.c) tries to open it again. */
int feox_db_reopen(feox_vtab *vt);
/* Close the private store (xDisconnect; the shadow tables stay). */
void feox_db_close(feox_vtab *vt);
/* xDestroy: drop the shadow tables (inside the user's transaction) and close the store. */
int feox_db_destroy(feox_vtab *vt);
/* xDestroy of a table without path taken for a previous release's (no <t>_data): drop the
 * <t>_log and <t>_meta a table in the database left if its <t>_data was dropped by hand (only
 * when <t>_meta holds feox's format row: CREATE makes the two together or not at all). */
int feox_db_drop_leftovers(feox_vtab *vt);
/* xRename: rename the shadow tables to new_name's and reopen the store under that name. */
int feox_db_rename(feox_vtab *vt, const char *new_name);
/* The coherence check (xFilter, functions): bring the cache up to what the database holds. */
int feox_db_refresh(feox_vtab *vt);
/* The same from xFilter, where SQLite holds a transaction on the table's schema: when nothing
 * changed, one sqlite3_file_control and no more (feox_sqlite_storage_current). */
int feox_db_refresh_read(feox_vtab *vt);
/* A range or full scan (cursor.c) is about to read [lo, hi] (NULL: unbounded; inclusive): the
 * cache loads every row of it first, if it has not yet (the lazy load, db_mode.c). */
int feox_db_need_range(feox_vtab *vt, const void *lo, size_t lo_len, const void *hi, size_t hi_len);
/* feox_stats: append the cache's load state as JSON members (",\"cache_complete\":..."). */
void feox_db_stats(feox_vtab *vt, sqlite3_str *out);
/* The transaction methods' database-mode part (vtab.c calls them around the journal). */
int feox_db_begin(feox_vtab *vt);
int feox_db_sync(feox_vtab *vt);
void feox_db_commit(feox_vtab *vt);
/* false: the engine is inside a call to the table's backend (SQLite rolls back from inside one of
 * its statements): the cache is left as it is, to be undone at the table's next use, and then
 * feox_db_finish_rollback. */
bool feox_db_rollback(feox_vtab *vt);
void feox_db_finish_rollback(feox_vtab *vt);
int feox_db_savepoint(feox_vtab *vt, int level);
void feox_db_rollback_to(feox_vtab *vt, int level);
/* After xUpdate's write (no engine lock held): let the backend write out a full pending map. */
int feox_db_settle(feox_vtab *vt);
/* A writing SQL function on a database-mode table: open "SAVEPOINT feox_fn" and enlist the table
 * in it (a cached "UPDATE ... SET key=key WHERE 0": xBegin, the check, the backend's begin), so
 * the function's writes join the user's transaction (or form their own, in autocommit).
 * feox_db_fn_end releases it (in autocommit: commits); if that fails, it rolls the savepoint back
 * and returns SQLite's code with *err (mprintf'd). On error neither leaves the savepoint open,
 * nor, for a call made in autocommit, its transaction (a commit that failed in xSync, or a
 * SAVEPOINT stopped by SQLITE_INTERRUPT after it opened, is rolled back). */
int feox_db_fn_begin(feox_vtab *vt, char **err);
int feox_db_fn_end(feox_vtab *vt, char **err);
/* feox_sweep(tab): remove expired records inside the current write transaction (at most limit;
 * 0 = all); *removed says how many. */
int feox_db_sweep(feox_vtab *vt, uint64_t limit, uint64_t *removed);
/* feox_check's part for a database-mode table: the cache holds exactly the live rows of
 * <t>_data (compared in one read transaction, after the coherence check). *report: NULL when
 * they agree, else the differences (mprintf'd, at most 10). */
int feox_db_check(feox_vtab *vt, char **report);
/* feox_check of a table whose cache could not be opened or could not catch up: the shadow
 * tables' own check. why is the code that stopped the cache (its message the vtab's error). A
 * code that says nothing of what the tables hold (SQLITE_BUSY, an I/O error, SQLITE_NOMEM: the
 * check could not run either) is returned as it is; else *report is what the check found, or
 * else why's message (mprintf'd). */
int feox_db_check_tables(feox_vtab *vt, int why, char **report);
/* xShadowName. */
int feox_db_shadow_name(const char *suffix);

/* ---- entry point (feox_ext.c) ---------------------------------------------------------------- */

int sqlite3_feox_init(sqlite3 *db, char **pzErrMsg, const sqlite3_api_routines *pApi);

/* ---- functions (functions.c) ----------------------------------------------------------------- */

int feox_register_functions(sqlite3 *db, feox_conn *conn);

/* ---- feox_json_patch(doc, patch) (json_function.c) ------------------------------------------ */

int feox_register_json_function(sqlite3 *db);

/* ---- values, timestamps and table-named messages (value_codec.c) ----------------------------
 * Declared after feox_vtab because the error helpers take one. */

/* A counter's current value: INTEGER (or an 8-byte BLOB/raw value, the engine's counter format)
 * as is, and a REAL that holds a whole number in the i64 range as that number (some bindings send
 * every number as REAL). False for anything else, a fractional REAL included. */
bool feox_decode_counter(uint32_t tag, const void *data, size_t len, int64_t *out);
/* The tag of the SQL type feox_result_value shows a stored value as (RAW, and INTEGER/REAL that
 * are not 8 bytes, are shown as BLOB). */
uint32_t feox_shown_tag(uint32_t tag, size_t len);
/* An empty TEXT value: what the shell's CSV import writes for an empty field (ttl/ts = NULL). */
bool feox_is_empty_text(sqlite3_value *v);
/* A record's timestamp as SQL shows it: a u64 above INT64_MAX (only the C API can write one)
 * is shown as INT64_MAX, never as a negative number. */
sqlite3_int64 feox_ts_for_sql(uint64_t ts_ns);

/* Messages name a table as "kv" when it is in main and as "aux.kv" in any other schema:
 * "feox: <table>: <cause>" (sqlite3_mprintf'd; NULL on OOM). */
char *feox_table_vmessage(const char *schema, const char *table, const char *fmt, va_list ap);
char *feox_table_message(const char *schema, const char *table, const char *fmt, ...);
/* Replace the vtab's error message with "feox: <table>: <cause>". */
void feox_table_error(feox_vtab *vt, const char *fmt, ...);
/* feox_err_message naming the schema; an OLDER_TIMESTAMP says its cause once (the detail). */
char *feox_table_err_message(const char *schema, const char *table, feox_err err);
/* What follows "the store file '<path>' is read-only" in the message of a refused write
 * (FEOX_ERR_READ_ONLY: registry.c opens a store read-only only when this process may not write
 * its file). */
#define FEOX_READ_ONLY_CAUSE "(this process may not write it): the table can be read, not written"
/* Set feox_table_err_message as the vtab's error and return the SQLite code. */
int feox_table_engine_error(feox_vtab *vt, feox_err err);

#endif /* FEOX_EXT_H */
