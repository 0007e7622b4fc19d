/*
 * db_mode.c — database mode: a feox table's records live in shadow tables of the database the
 * table is in, and each connection keeps its own cache of them (the engine's hash and ordered
 * indexes), kept coherent by the "sqlite" storage backend (storage_sqlite.h).
 *
 * When: a table without path in a file database, main or attached (options.c, kind DATABASE),
 * unless it is a previous-release table that keeps its store file. path='file' is the store-file
 * mode, path=':memory:' and in-memory/temporary databases are memory only: none of those come
 * here. Built only with FEOX_DB_MODE=1 (feox_ext.h); otherwise every function below is a no-op
 * and feox_db_open fails.
 *
 * The cache. Every vtab (one connection x one table) opens its own private feox_store with
 * storage = the sqlite backend and storage_arg = {db, schema, table} (vt->dbs->t): memory indexes
 * over the shadow tables, never shared through the registry, never attached to the connection.
 * So a connection sees its own uncommitted writes (they are in its cache, and in its pending map
 * or its write transaction), and another connection sees them only once they are committed and
 * its next statement has refreshed (isolation: read committed across connections; within one
 * statement a WAL reader keeps the snapshot its read transaction saw, and a connection inside
 * BEGIN keeps its snapshot, since the check below only moves when SQLite's data version does).
 *
 * Hook order (SQLite 3.40.1, verified by the prototype, in-database-prototype.md Q5):
 *   autocommit write        xBegin -> xUpdate... -> xSync -> xCommit   (or xRollback on error)
 *   in BEGIN, multi-row     xSavepoint(n) -> xUpdate... -> [xRollbackTo(n)] -> xRelease(n)
 *   SAVEPOINT / ROLLBACK TO / RELEASE   xSavepoint / xRollbackTo / xRelease
 *   ROLLBACK                xRollback (SQLite has already restored the shadow tables; a nested
 *                           read there runs in a new read transaction)
 *   a read                  xOpen -> xFilter -> xNext... (a read transaction is open)
 *   a function in SELECT f()  no transaction at all: it enlists (below)
 *
 * What each hook does here (vtab.c calls these around the undo journal):
 *   xBegin       feox_refresh (the coherence check: the backend compares
 *                SQLITE_FCNTL_DATA_VERSION with what it saw last, ~30-60 ns when nothing
 *                changed; else it applies the change feed, compares the cache with the table
 *                when the feed no longer reaches back far enough, or asks for a full reload
 *                with FEOX_ERR_STALE when the table's seq went back), then the backend's begin;
 *                when the cache is complete and the data version unchanged, only the backend's
 *                begin with that one check (feox_sqlite_storage_begin_if_current: no engine
 *                call). The undo journal starts empty.
 *   xUpdate      the engine writes the cache and calls the backend's write/erase, which keeps
 *                the change pending (buffered) or writes it through; the journal records the
 *                old state first (update.c). Then feox_db_settle: a pending map grown past its
 *                limit is written out (with max_memory, only there: see below).
 *   xSync        the backend writes what is pending (in key order) and trims its feed.
 *   xCommit      the backend notes the new seq; the journal is forgotten.
 *   xRollback    the backend drops what is pending; the journal restores the cache, newest
 *                first, with FEOX_WRITE_INDEX_ONLY | FEOX_WRITE_RESTORE writes (the records are
 *                already restored by SQLite: the cache is put back to match, the backend is not
 *                written). Never "mark stale and refresh": the feed lists what others committed,
 *                not what SQLite undid here.
 *   xSavepoint   the backend writes what is pending first (so SQLite's savepoint, opened after
 *                xSavepoint returns, covers only what comes later); the journal marks the level.
 *   xRollbackTo  the backend drops what is pending; the journal undoes to the level's mark
 *                (INDEX_ONLY, as for xRollback).
 *   xRelease     the journal forgets the levels.
 *   xFilter      feox_db_refresh_read: SQLite holds a transaction on the schema, so one
 *                SQLITE_FCNTL_DATA_VERSION call equal to what the backend saw last (and a complete
 *                cache) says nothing changed, without the lock, the engine or sqlite3_txn_state
 *                (feox_sqlite_storage_current); else feox_refresh. The cache loads
 *                lazily (storage_sqlite_load.c): each refresh of a partial cache loads one more
 *                chunk of <t>_data in key order, a point read of a key it does not hold yet
 *                reads that row by key, and a range or full scan first loads every row of its
 *                range (feox_db_need_range, from cursor.c). So the first statement of a new
 *                connection answers at once, whatever the table's size.
 *   xCreate      the shadow tables are created by one nested exec (inside the user's
 *                transaction: a ROLLBACK removes them). xDestroy drops them, xRename renames
 *                them, the same way. No file is ever touched in this mode.
 *   functions    feox_incr/cas/patch/sweep: "SAVEPOINT feox_fn" and, unless the table is in
 *                the transaction already, "INSERT INTO "schema"."table"(key) SELECT 0 WHERE 0",
 *                which makes SQLite call xBegin (and the check) inside a write transaction
 *                (in autocommit the table runs the call's own transaction itself instead:
 *                begin_own_txn takes the write lock and calls its xBegin, fn_end its xSync,
 *                RELEASE, xCommit or, on any failure, ROLLBACK and xRollback); the
 *                function's writes then join the user's transaction (BEGIN ... ROLLBACK undoes
 *                them), and "RELEASE feox_fn" ends the savepoint (a failing call changed
 *                nothing; a failing RELEASE is rolled back to the savepoint). In autocommit
 *                the savepoint is the call's own transaction: the call commits atomically with
 *                the shadow tables when the function returns (a later failure of the same
 *                statement does not undo it). Called by a running INSERT/UPDATE/DELETE, where
 *                SQLite refuses a savepoint, the call just enlists: its changes belong to that
 *                statement's transaction and are undone if the statement fails. The INSERT is
 *                prepared each time: a cached statement naming the table would keep SQLite
 *                from ever disconnecting it. On dqlite's VFS a call that would be its own
 *                transaction is refused (refuse_own_commit_on_dqlite: dqlite does not
 *                replicate a commit made inside a SELECT, and 1.11 aborts the node on the next
 *                write); inside BEGIN ... COMMIT or a write statement it works as above.
 *
 * feox_check: besides the engine's and the backend's own checks, the cache is compared with
 * <t>_data row by row in one read transaction (feox_db_check).
 *
 * TTL: no thread writes to the database (the store's sweeper is off; a HOST_TXN backend starts
 * none). Reads hide expired records. Every committing write transaction on the table removes up
 * to 64 expired rows at xSync (storage_sqlite_expiry.c: one index seek when none has expired),
 * and feox_sweep(tab) removes every one, inside a write transaction (the user's, or the call's
 * own); each removal has its feed row, so other caches drop the record too, and the cache here
 * lets go of its expired records at once (feox_len). The pages they held are reused by later
 * writes, and given back to the file system by VACUUM (or auto_vacuum), as for any table.
 *
 * Larger than memory (max_memory): keys and metadata stay in the cache, values may stay only in
 * <t>_data and are read back by key (the backend's read_value, in the caller's transaction).
 * The engine's value eviction drops the bytes of versions that have a location; the backend
 * gives one only to versions that are in the table: rows it loads (those past half the budget
 * are loaded cold), written-out pending changes (relocated to their seq when the pending map is
 * written: at xSync, xSavepoint, or feox_db_settle after an xUpdate, never inside the engine's
 * write, which holds a key lock), and versions the journal puts back after a rollback
 * (FEOX_STORAGE_LOCATION_BY_KEY: SQLite restored them in the table). A change still pending has
 * location 0 and keeps its bytes; with max_memory the pending map holds at most a quarter of
 * the budget. What the feed brings and what a rollback restores makes room the same way
 * (evicting), and is never refused for memory.
 *
 * Errors: the backend leaves SQLite's own extended code and a message naming the table in
 * t.errcode / t.errmsg (BUSY and LOCKED as SQLite reported them, after busy_timeout); they are
 * returned as they are. A read-only connection never reaches a write: SQLite refuses INSERT /
 * UPDATE / DELETE itself, and the functions' enlistment fails with SQLITE_READONLY.
 */
#include <string.h>

#include "feox_ext.h"

#if FEOX_DB_MODE
#include "storage_sqlite.h"
#endif

SQLITE_EXTENSION_INIT3

#if FEOX_DB_MODE

struct feox_db_state {
    feox_sqlite_table t; /* the backend's argument: stays in place while the store is open */
    char *table;         /* t.table: the name the store was opened under */
    /* the functions' statements (feox_db_fn_begin), prepared on first use */
    sqlite3_stmt *sp_open, *sp_release, *sp_undo;
    bool fn_savepoint; /* feox_db_fn_begin opened "SAVEPOINT feox_fn" (fn_end releases it) */
    bool fn_own_txn;   /* ... in autocommit: the savepoint is the call's own transaction */
    /* ... and the table runs it itself (begin_own_txn): SQLite does not know the table is in
     * it, so fn_end calls xSync, xCommit or xRollback on it as SQLite would have */
    bool fn_by_hand;
    /* on_dqlite's answer, once known: a schema's VFS is dqlite's from its open on (an ATTACH
     * under the same name connects the table anew; sqlite3_deserialize can only move it to
     * memdb, after which a cached "dqlite" refuses more than it must, never less) */
    bool vfs_known, vfs_is_dqlite;
    /* The cache was loaded inside a transaction (BEGIN): the shadow tables may hold what the
     * transaction wrote to them by hand (a repair of damage, with writable_schema or defensive
     * off), which a rollback takes back, so a rollback drops the cache and the next use loads
     * it again. (The table's own writes need no reload: the journal undoes them.) */
    bool loaded_in_txn;
};

/* Set the vtab's error from the backend (SQLite's own code and message) if it has one, else from
 * the engine error e; return the SQLite code. */
static int db_error(feox_vtab *vt, feox_err e)
{
    feox_sqlite_table *t = &vt->dbs->t;
    sqlite3_free(vt->base.zErrMsg);
    if (t->errcode != SQLITE_OK) {
        vt->base.zErrMsg = sqlite3_mprintf("%s", t->errmsg);
        return t->errcode;
    }
    vt->base.zErrMsg = feox_table_err_message(vt->schema, vt->name, e);
    return feox_err_to_sqlite(e);
}

int feox_db_engine_error(feox_vtab *vt, feox_err e)
{
    if (vt->dbs == NULL) {
        return feox_table_engine_error(vt, e);
    }
    int rc = db_error(vt, e);
    feox_sqlite_table *t = &vt->dbs->t;
    t->errcode = SQLITE_OK; /* reported: a later engine error is not taken for this one */
    t->errmsg[0] = '\0';
    return rc;
}

static feox_store *db_store(feox_vtab *vt)
{
    return vt->dbs != NULL && vt->entry != NULL ? vt->entry->store : NULL;
}

/* While the cache loads, plans are costed for the whole table (vt->rows_hint, plan.c): its seq
 * counts every change ever made, so it is at least its row count (more after updates and
 * deletes, which only makes a scan look dearer than a lookup). */
static void update_rows_hint(feox_vtab *vt)
{
    feox_sqlite_load_info info;
    feox_sqlite_storage_load_info(&vt->dbs->t, &info);
    vt->rows_hint = info.complete ? 0 : info.table_seq;
}

/* An open that failed because of what the shadow tables hold (a damaged row, a layout this
 * release does not know, a damaged database page) or of what the schema holds in their place (a
 * shadow table dropped or recreated with other columns by hand: SQLITE_ERROR, "no such table"),
 * not because of the moment (BUSY, NOMEM). */
static bool damaged(int rc)
{
    int primary = rc & 0xff;
    return primary == SQLITE_CORRUPT || primary == SQLITE_FORMAT || primary == SQLITE_NOTADB ||
           primary == SQLITE_ERROR;
}

/* Open the private store over the shadow tables of vt->schema.table_name (load included). */
static int open_store(feox_vtab *vt, feox_db_state *s, const char *table_name, char **err)
{
    feox_config cfg;
    feox_store *store = NULL;
    s->table = sqlite3_mprintf("%s", table_name);
    if (s->table == NULL) {
        return SQLITE_NOMEM;
    }
    s->t.db = vt->db;
    s->t.schema = vt->schema;
    s->t.table = s->table;
    feox_config_init(&cfg);
    cfg.max_memory = vt->options.max_memory;
    cfg.disable_ttl_sweeper = true; /* no thread writes to the database */
    cfg.disable_compaction = true;
    cfg.storage = feox_sqlite_storage();
    cfg.storage_arg = &s->t;
    feox_lclock_configure(vt, &cfg);           /* clock='log': "now" is the logical clock */
    s->t.no_commit_sweep = vt->lclock != NULL; /* and expired rows leave only by 'sweep' */
    feox_err e = feox_open(&cfg, &store);
    if (e != FEOX_OK) {
        *err = s->t.errcode != SQLITE_OK ? sqlite3_mprintf("%s", s->t.errmsg)
                                         : feox_table_err_message(vt->schema, table_name, e);
        int rc = s->t.errcode != SQLITE_OK ? s->t.errcode : feox_err_to_sqlite(e);
        sqlite3_free(s->table);
        s->table = NULL;
        return rc;
    }
    vt->entry = feox_registry_placeholder(); /* private: not listed, not attached */
    if (vt->entry == NULL) {
        (void)feox_close(store);
        sqlite3_free(s->table);
        s->table = NULL;
        return SQLITE_NOMEM;
    }
    vt->entry->store = store; /* its last release closes it */
    s->loaded_in_txn = !sqlite3_get_autocommit(vt->db);
    update_rows_hint(vt);
    return SQLITE_OK;
}

/* Close the private store (the shadow tables stay). */
static void close_store(feox_vtab *vt)
{
    feox_registry_release(vt->entry);
    vt->entry = NULL;
    sqlite3_free(vt->dbs->table);
    vt->dbs->table = NULL;
}

/* Connect the table without a cache: vt->entry becomes a private placeholder and why (owned)
 * says why; every use reports it and opens the store again (vtab_store.c). A store the table
 * has is closed only once the placeholder exists. false (why freed, nothing changed): out of
 * memory. */
static bool connect_without_cache(feox_vtab *vt, char *why)
{
    feox_entry_ref *placeholder = why != NULL ? feox_registry_placeholder() : NULL;
    if (placeholder == NULL) {
        sqlite3_free(why);
        return false;
    }
    if (vt->entry != NULL) {
        close_store(vt);
    }
    vt->entry = placeholder;
    sqlite3_free(vt->open_error);
    vt->open_error = why;
    return true;
}

/* Is SQLite connecting the table inside BEGIN, while it prepares a statement, before that
 * statement has touched the table's database? Reading the shadow tables now would open the
 * transaction's read transaction ahead of the statement's own lock, and SQLite does not wait
 * (busy_timeout) for a write lock that a transaction already reading asks for: the first write
 * of `BEGIN; UPDATE kv ...` would fail with SQLITE_BUSY at once while another connection writes,
 * where the same statement on a native table waits. Then the table connects without its cache,
 * and the first use opens it (vtab_store.c), inside the statement's transaction: under the write
 * lock for a write (xBegin comes first), under a read transaction for a read (xFilter). */
static bool before_the_statements_lock(feox_vtab *vt)
{
    return !sqlite3_get_autocommit(vt->db) &&
           sqlite3_txn_state(vt->db, vt->schema) == SQLITE_TXN_NONE;
}

int feox_db_open(feox_vtab *vt, bool is_create, char **err)
{
    feox_db_state *s = sqlite3_malloc(sizeof *s);
    if (s == NULL) {
        return SQLITE_NOMEM;
    }
    memset(s, 0, sizeof *s);
    if (is_create) {
        char *msg = NULL;
        int rc = feox_sqlite_storage_create(vt->db, vt->schema, vt->name, &msg);
        if (rc != SQLITE_OK) {
            *err = msg != NULL ? sqlite3_mprintf("%s", msg)
                               : sqlite3_mprintf("feox: %s: cannot create the shadow tables: %s",
                                                 vt->label, sqlite3_errstr(rc));
            sqlite3_free(msg);
            sqlite3_free(s);
            return rc;
        }
    }
    vt->dbs = s;
    vt->journal.undo_flags = FEOX_WRITE_INDEX_ONLY;
    if (!is_create && before_the_statements_lock(vt)) {
        char *why =
            sqlite3_mprintf("feox: %s: the cache opens at the table's first use", vt->label);
        if (why != NULL && connect_without_cache(vt, why)) {
            return SQLITE_OK;
        }
        vt->dbs = NULL;
        sqlite3_free(s);
        return SQLITE_NOMEM;
    }
    int rc = open_store(vt, s, vt->name, err);
    if (rc != SQLITE_OK && !is_create && damaged(rc)) {
        /* Connect without a cache, so that DROP TABLE and feox_check still work; every other
         * use says why, and tries again (the damage may have been repaired). */
        bool connected = connect_without_cache(vt, *err);
        *err = NULL;
        if (connected) {
            return SQLITE_OK;
        }
        rc = SQLITE_NOMEM;
    }
    if (rc != SQLITE_OK) {
        vt->dbs = NULL;
        sqlite3_free(s);
        return rc;
    }
    return SQLITE_OK;
}

int feox_db_reopen(feox_vtab *vt)
{
    feox_db_state *s = vt->dbs;
    feox_entry_ref *placeholder = vt->entry;
    char *err = NULL;
    vt->entry = NULL;
    int rc = open_store(vt, s, vt->name, &err);
    if (rc != SQLITE_OK) {
        vt->entry = placeholder;
        sqlite3_free(vt->base.zErrMsg);
        vt->base.zErrMsg = err != NULL ? err : sqlite3_mprintf("%s", sqlite3_errstr(rc));
        return rc;
    }
    feox_registry_release(placeholder);
    sqlite3_free(vt->open_error);
    vt->open_error = NULL;
    if (vt->in_txn) {
        /* repaired inside a write transaction: the backend joins it */
        feox_err e = feox_sqlite_storage_begin(&s->t);
        if (e != FEOX_OK) {
            return db_error(vt, e);
        }
    }
    return SQLITE_OK;
}

void feox_db_close(feox_vtab *vt)
{
    feox_db_state *s = vt->dbs;
    if (s == NULL) {
        return;
    }
    sqlite3_finalize(s->sp_open);
    sqlite3_finalize(s->sp_release);
    sqlite3_finalize(s->sp_undo);
    close_store(vt); /* the backend finalizes its own statements */
    sqlite3_free(s);
    vt->dbs = NULL;
}

int feox_db_destroy(feox_vtab *vt)
{
    if (vt->dbs == NULL) {
        return SQLITE_OK;
    }
    char *msg = NULL;
    if (vt->in_txn) {
        /* what is pending goes to the tables first: if the DROP fails (or is rolled back),
         * the table keeps this transaction's changes */
        feox_err e = feox_sqlite_storage_sync(&vt->dbs->t);
        if (e != FEOX_OK) {
            return db_error(vt, e);
        }
    }
    feox_db_close(vt); /* no statement of ours may hold the tables while they are dropped */
    int rc = feox_sqlite_storage_drop(vt->db, vt->schema, vt->name, &msg);
    if (rc != SQLITE_OK) {
        sqlite3_free(vt->base.zErrMsg);
        vt->base.zErrMsg = msg != NULL ? sqlite3_mprintf("%s", msg) : NULL;
        sqlite3_free(msg);
        /* The DROP fails and the table stays: open its cache again (it loads what this
         * transaction wrote) and rejoin the transaction. */
        char *err = NULL;
        if (feox_db_open(vt, false, &err) != SQLITE_OK) {
            vt->open_error = err; /* every use reports it (vtab_store.c) */
        } else if (vt->in_txn) {
            (void)feox_sqlite_storage_begin(&vt->dbs->t);
        }
        return rc;
    }
    return SQLITE_OK;
}

int feox_db_drop_leftovers(feox_vtab *vt)
{
    char *sql = sqlite3_mprintf("SELECT 1 FROM \"%w\".sqlite_schema WHERE type = 'table' AND"
                                " name = '%q_meta'",
                                vt->schema, vt->name);
    if (sql == NULL) {
        return SQLITE_NOMEM;
    }
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(vt->db, sql, -1, &s, NULL);
    sqlite3_free(sql);
    bool exists = rc == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW;
    sqlite3_finalize(s);
    if (!exists) {
        return rc == SQLITE_OK ? SQLITE_OK : feox_sqlite_failure(vt->db, rc);
    }
    sql = sqlite3_mprintf("SELECT 1 FROM \"%w\".\"%w_meta\" WHERE name = 'format'", vt->schema,
                          vt->name);
    if (sql == NULL) {
        return SQLITE_NOMEM;
    }
    s = NULL;
    bool ours =
        sqlite3_prepare_v2(vt->db, sql, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW;
    sqlite3_finalize(s);
    sqlite3_free(sql);
    if (!ours) {
        return SQLITE_OK; /* not feox's: left as it is */
    }
    sql = sqlite3_mprintf("DROP TABLE IF EXISTS \"%w\".\"%w_log\";"
                          "DROP TABLE IF EXISTS \"%w\".\"%w_meta\";",
                          vt->schema, vt->name, vt->schema, vt->name);
    if (sql == NULL) {
        return SQLITE_NOMEM;
    }
    char *msg = NULL;
    rc = sqlite3_exec(vt->db, sql, NULL, NULL, &msg);
    sqlite3_free(sql);
    if (rc != SQLITE_OK) {
        rc = feox_sqlite_failure(vt->db, rc);
        sqlite3_free(vt->base.zErrMsg);
        vt->base.zErrMsg = sqlite3_mprintf("feox: %s: dropping the shadow tables: %s", vt->label,
                                           msg != NULL ? msg : sqlite3_errstr(rc));
    }
    sqlite3_free(msg);
    return rc;
}

int feox_db_rename(feox_vtab *vt, const char *new_name)
{
    feox_db_state *s = vt->dbs;
    if (s == NULL) {
        return SQLITE_OK;
    }
    char *msg = NULL;
    char *err = NULL;
    int rc = SQLITE_OK;
    if (vt->in_txn) {
        /* what is pending goes to the tables under their old names first */
        feox_err e = feox_sqlite_storage_sync(&s->t);
        if (e != FEOX_OK) {
            return db_error(vt, e);
        }
    }
    rc = feox_sqlite_storage_rename(vt->db, vt->schema, vt->name, new_name, &msg);
    if (rc != SQLITE_OK) {
        sqlite3_free(vt->base.zErrMsg);
        vt->base.zErrMsg = msg != NULL ? sqlite3_mprintf("%s", msg) : NULL;
        sqlite3_free(msg);
        return rc;
    }
    /* The open backend follows the new name (its cache, pending changes and transaction stay);
     * a ROLLBACK makes SQLite reconnect the table under its old name. */
    char *copy = sqlite3_mprintf("%s", new_name);
    if (copy != NULL && feox_sqlite_storage_renamed(&s->t, new_name) == FEOX_OK) {
        sqlite3_free(s->table);
        s->table = copy;
        s->t.table = copy;
        return SQLITE_OK;
    }
    sqlite3_free(copy);
    /* Else open the cache again under the new name (it loads what this transaction wrote). */
    close_store(vt);
    rc = open_store(vt, s, new_name, &err);
    if (rc == SQLITE_OK && vt->in_txn) {
        feox_err e = feox_sqlite_storage_begin(&s->t);
        rc = e == FEOX_OK ? SQLITE_OK : db_error(vt, e);
    } else if (rc != SQLITE_OK) {
        sqlite3_free(vt->base.zErrMsg);
        vt->base.zErrMsg = err;
        /* SQLite rolls the statement back (the old names return): the old cache comes back */
        char *err2 = NULL;
        if (open_store(vt, s, vt->name, &err2) != SQLITE_OK) {
            vt->open_error = err2;
        }
    }
    return rc;
}

int feox_db_refresh(feox_vtab *vt)
{
    feox_store *store = db_store(vt);
    if (store == NULL) {
        return SQLITE_OK;
    }
    feox_err e = feox_refresh(store, &vt->dbs->t);
    if (vt->rows_hint != 0) {
        update_rows_hint(vt); /* 0 once complete: the cache's count is the table's */
    }
    /* clock='log': the logical clock of what the cache now shows (logical_clock.c) */
    return e == FEOX_OK ? feox_lclock_sync(vt) : db_error(vt, e);
}

/* The cache holds every row and is current: inside the statement's transaction one call says
 * so (storage_sqlite.h). The logical clock and a cache still loading (rows_hint != 0) always
 * take the whole refresh. */
static bool complete_and_current(feox_vtab *vt)
{
    return vt->dbs != NULL && vt->lclock == NULL && vt->rows_hint == 0 &&
           feox_sqlite_storage_current(&vt->dbs->t);
}

int feox_db_refresh_read(feox_vtab *vt)
{
    return complete_and_current(vt) ? SQLITE_OK : feox_db_refresh(vt);
}

int feox_db_need_range(feox_vtab *vt, const void *lo, size_t lo_len, const void *hi, size_t hi_len)
{
    feox_store *store = db_store(vt);
    if (store == NULL) {
        return SQLITE_OK;
    }
    if (complete_and_current(vt)) {
        return SQLITE_OK; /* xFilter's check just said so */
    }
    feox_err e = feox_sqlite_storage_want(&vt->dbs->t, lo, (uint32_t)lo_len, hi, (uint32_t)hi_len);
    if (e == FEOX_OK) {
        e = feox_refresh(store, &vt->dbs->t); /* loads it (storage_sqlite_load.c) */
    }
    if (vt->rows_hint != 0) {
        update_rows_hint(vt);
    }
    return e == FEOX_OK ? feox_lclock_sync(vt) : db_error(vt, e);
}

void feox_db_stats(feox_vtab *vt, sqlite3_str *out)
{
    if (db_store(vt) == NULL) {
        return;
    }
    feox_sqlite_load_info info;
    feox_sqlite_storage_load_info(&vt->dbs->t, &info);
    sqlite3_str_appendf(out,
                        ",\"cache_complete\":%s,\"cache_loaded_rows\":%llu,"
                        "\"cache_load_chunks\":%llu,\"cache_load_ranges\":%llu,"
                        "\"cache_reloads\":%llu,\"cache_resyncs\":%llu,"
                        "\"cache_resync_rows\":%llu,\"cache_finds\":%llu,"
                        "\"cache_finds_local\":%llu",
                        info.complete ? "true" : "false", (unsigned long long)info.rows,
                        (unsigned long long)info.chunks, (unsigned long long)info.ranges,
                        (unsigned long long)info.reloads, (unsigned long long)info.resyncs,
                        (unsigned long long)info.resync_rows, (unsigned long long)info.finds_sql,
                        (unsigned long long)info.finds_local);
}

int feox_db_begin(feox_vtab *vt)
{
    feox_store *store = db_store(vt);
    if (store == NULL) {
        return SQLITE_OK;
    }
    /* Nothing changed since the cache was last current (one data version check, storage_sqlite.h);
     * the logical clock, a cache still loading and a fork()ed child take the whole refresh. */
    if (vt->lclock == NULL && vt->rows_hint == 0 && !feox_store_is_inherited(store) &&
        feox_sqlite_storage_begin_if_current(&vt->dbs->t)) {
        return SQLITE_OK;
    }
    int rc = feox_db_refresh(vt);
    if (rc != SQLITE_OK) {
        return rc;
    }
    feox_err e = feox_sqlite_storage_begin_refreshed(&vt->dbs->t); /* right after the refresh */
    return e == FEOX_OK ? SQLITE_OK : db_error(vt, e);
}

int feox_db_sync(feox_vtab *vt)
{
    feox_store *store = db_store(vt);
    if (store == NULL) {
        return SQLITE_OK;
    }
    uint64_t swept = 0;
    feox_err e = feox_sqlite_storage_sync_commit(&vt->dbs->t, &swept);
    if (e != FEOX_OK) {
        return db_error(vt, e);
    }
    if (swept != 0) {
        /* the cache lets go of its expired records too (they read as absent already; a
         * rollback after this needs nothing back) */
        (void)feox_len(store, 0);
    }
    return SQLITE_OK;
}

void feox_db_commit(feox_vtab *vt)
{
    if (db_store(vt) != NULL) {
        feox_sqlite_storage_commit(&vt->dbs->t);
        vt->dbs->loaded_in_txn = false;
    }
}

/* After a rollback: a cache loaded inside the transaction goes; the table stays connected
 * without one until its next use opens it again (the journal's entries were for it). A rollback
 * in autocommit ends one statement's own transaction (or a function call's), which held no hand
 * edit of the shadow tables: a cache loaded in an earlier transaction stays (a transaction that
 * only read the table ended without an xCommit to clear the flag), its writes undone by the
 * journal. */
static void drop_cache_loaded_in_txn(feox_vtab *vt)
{
    feox_db_state *s = vt->dbs;
    if (!s->loaded_in_txn) {
        return;
    }
    if (sqlite3_get_autocommit(vt->db)) {
        s->loaded_in_txn = false;
        return;
    }
    char *why = sqlite3_mprintf("feox: %s: the cache is loaded again after a rollback", vt->label);
    if (!connect_without_cache(vt, why)) {
        return; /* out of memory: keep the cache (its keys' own writes are still undone) */
    }
    feox_journal_clear(&vt->journal);
    s->loaded_in_txn = false;
}

bool feox_db_rollback(feox_vtab *vt)
{
    if (db_store(vt) == NULL) {
        return true;
    }
    feox_sqlite_storage_rollback(&vt->dbs->t);
    if (feox_sqlite_storage_in_engine_call(&vt->dbs->t)) {
        return false; /* the engine holds the store: feox_db_finish_rollback at its next use */
    }
    drop_cache_loaded_in_txn(vt);
    return true;
}

void feox_db_finish_rollback(feox_vtab *vt)
{
    if (db_store(vt) != NULL) {
        drop_cache_loaded_in_txn(vt);
    }
}

int feox_db_savepoint(feox_vtab *vt, int level)
{
    if (db_store(vt) == NULL) {
        return SQLITE_OK;
    }
    feox_err e = feox_sqlite_storage_savepoint(&vt->dbs->t, level);
    return e == FEOX_OK ? SQLITE_OK : db_error(vt, e);
}

void feox_db_rollback_to(feox_vtab *vt, int level)
{
    if (db_store(vt) != NULL) {
        feox_sqlite_storage_rollback_to(&vt->dbs->t, level);
        drop_cache_loaded_in_txn(vt);
    }
}

int feox_db_settle(feox_vtab *vt)
{
    if (db_store(vt) == NULL) {
        return SQLITE_OK;
    }
    feox_err e = feox_sqlite_storage_settle(&vt->dbs->t);
    return e == FEOX_OK ? SQLITE_OK : db_error(vt, e);
}

/* Step a cached statement (prepared on first use) to its end. A failure is SQLite's extended code:
 * a RELEASE that commits fails as a native COMMIT does (SQLITE_IOERR_FSYNC, not SQLITE_IOERR). */
static int run_cached(sqlite3 *db, sqlite3_stmt **stmt, const char *sql)
{
    if (*stmt == NULL) {
        int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, stmt, NULL);
        if (rc != SQLITE_OK) {
            return feox_sqlite_failure(db, rc);
        }
    }
    int rc = sqlite3_step(*stmt);
    rc = rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : feox_sqlite_failure(db, rc);
    sqlite3_reset(*stmt);
    return rc;
}

/* Open "SAVEPOINT feox_fn". SQLite refuses a savepoint while a write statement is running
 * (SQLITE_BUSY, "cannot open savepoint - SQL statements in progress"): a function called by
 * an INSERT, UPDATE or DELETE. That statement has its write transaction open already, and the
 * function's changes belong to it: then no savepoint is opened (*opened false) and SQLITE_OK.
 * Only that plain SQLITE_BUSY: an extended one (BUSY_SNAPSHOT, BUSY_RECOVERY) is another
 * situation, and the call fails with it. */
static int open_savepoint(feox_vtab *vt, bool *opened)
{
    int rc = run_cached(vt->db, &vt->dbs->sp_open, "SAVEPOINT feox_fn");
    *opened = rc == SQLITE_OK;
    return rc == SQLITE_BUSY ? SQLITE_OK : rc;
}

/* True if the table's database is served by dqlite's VFS. dqlite (the C library, and go-dqlite
 * which uses it) registers one VFS per node named "dqlite-<n>" (src/config.c, 1.11 to 1.18). */
static bool on_dqlite(feox_vtab *vt)
{
    feox_db_state *s = vt->dbs;
    if (!s->vfs_known) {
        sqlite3_vfs *vfs = NULL;
        int rc = sqlite3_file_control(vt->db, vt->schema, SQLITE_FCNTL_VFS_POINTER, &vfs);
        s->vfs_is_dqlite = rc == SQLITE_OK && vfs != NULL && vfs->zName != NULL &&
                           strncmp(vfs->zName, "dqlite", 6) == 0;
        s->vfs_known = rc == SQLITE_OK;
    }
    return s->vfs_is_dqlite;
}

/* dqlite replicates a write only when its leader stepped the statement that committed it
 * (EXEC); a statement it treats as a read (QUERY: any SELECT) is stepped outside that, and
 * a function committing its own transaction there leaves frames dqlite never replicates: the
 * next write aborts the node (1.11.1: vfsFileShmLock: Assertion 'wal->n_tx == 0'). So, on
 * dqlite, a call that would be its own transaction (autocommit, and the savepoint opened: no
 * write statement is running) is refused before it changes anything. Inside BEGIN ... COMMIT
 * it joins the user's transaction, which dqlite commits and replicates; called by a running
 * INSERT/UPDATE/DELETE it joins that statement's. Plain SQLite never comes here. */
static int refuse_own_commit_on_dqlite(feox_vtab *vt, char **err)
{
    feox_db_state *s = vt->dbs;
    (void)run_cached(vt->db, &s->sp_release, "RELEASE feox_fn"); /* nothing done: no write */
    s->fn_savepoint = false;
    s->fn_own_txn = false;
    *err = feox_table_message(
        vt->schema, vt->name,
        "a writing function needs an explicit transaction under dqlite (BEGIN; SELECT ...; "
        "COMMIT): committing inside a bare SELECT is not replicated; or use the DML form, e.g. "
        "UPDATE %s SET value = value + ? WHERE key = ?",
        vt->name);
    return SQLITE_ERROR;
}

/* The call's own transaction is still open after its ROLLBACK failed too: the connection is
 * interrupted (sqlite3_interrupt fails every statement it starts until the calling statement
 * ends; a progress handler, as statement timeouts use, may keep returning nonzero). No SQL can
 * end the transaction now, and for SQLITE_INTERRUPT SQLite leaves a read statement's transaction
 * open when the statement stops; for SQLITE_IOERR it rolls it back then without running a
 * statement (sqlite3VdbeHalt), so the call fails with that code (a progress handler still
 * returning nonzero then reports SQLITE_INTERRUPT, after the rollback). SQLite does that only
 * for a statement that reads a database (`SELECT feox_incr('kv', key, 1) FROM kv`, not a bare
 * `SELECT feox_incr(...)`, README). */
static int own_txn_left_open(feox_vtab *vt, char **err)
{
    const char *why = *err != NULL ? *err : "interrupted";
    const char *tail = "; the call's own transaction is rolled back when the statement stops";
    char *msg = strncmp(why, "feox: ", 6) == 0
                    ? sqlite3_mprintf("%s%s", why, tail)
                    : feox_table_message(vt->schema, vt->name, "%s%s", why, tail);
    sqlite3_free(*err);
    *err = msg;
    return SQLITE_IOERR;
}

/* A function call failed with "SAVEPOINT feox_fn" open: roll the savepoint back and release it.
 * If the call was its own transaction (opened in autocommit), make sure that transaction ends
 * too: a commit that failed in xSync (SQLITE_INTERRUPT from a progress handler or
 * sqlite3_interrupt, an I/O error, a full disk, while the shadow tables are written) leaves SQLite
 * without the savepoint but with the transaction still open, and every later write of the
 * connection would then go into a transaction nobody commits. ROLLBACK ends it (xRollback puts
 * the cache back). Returns the code the call fails with: rc, or SQLITE_IOERR if not even
 * ROLLBACK could run (own_txn_left_open), with *err (the call's message) replaced. */
static int undo_fn_savepoint(feox_vtab *vt, int rc, char **err)
{
    feox_db_state *s = vt->dbs;
    (void)run_cached(vt->db, &s->sp_undo, "ROLLBACK TO feox_fn");
    (void)run_cached(vt->db, &s->sp_release, "RELEASE feox_fn");
    if (s->fn_own_txn && sqlite3_get_autocommit(vt->db) == 0) {
        (void)sqlite3_exec(vt->db, "ROLLBACK", NULL, NULL, NULL);
    }
    if (s->fn_by_hand) {
        /* SQLite rolled the shadow tables back without telling the table: undo the cache */
        (void)vt->base.pModule->xRollback(&vt->base);
    }
    bool left_open = s->fn_own_txn && sqlite3_get_autocommit(vt->db) == 0;
    s->fn_savepoint = false;
    s->fn_own_txn = false;
    s->fn_by_hand = false;
    return left_open ? own_txn_left_open(vt, err) : rc;
}

/* The message a transaction method of the table left (SQLite would have taken it from the vtab
 * the same way), or rc's own; the vtab keeps none. */
static char *take_vtab_message(feox_vtab *vt, int rc)
{
    char *msg = vt->base.zErrMsg != NULL ? sqlite3_mprintf("%s", vt->base.zErrMsg)
                                         : sqlite3_mprintf("%s", sqlite3_errstr(rc));
    sqlite3_free(vt->base.zErrMsg);
    vt->base.zErrMsg = NULL;
    return msg;
}

/* The call is its own transaction (autocommit, "SAVEPOINT feox_fn" opened) and the table is not
 * in one: the table begins it by calling its own xBegin, and feox_db_fn_end syncs, releases and
 * commits (or rolls back) itself. Enlisting through SQL instead prepares a statement naming the
 * table on every call (a cached one would keep SQLite from disconnecting the table), which
 * costs more than a quarter of an autocommit feox_incr (callgrind: 20K of 79K Ir). Nothing else
 * runs in that transaction: SQLite never calls the table's transaction methods for it. */
static int begin_own_txn(feox_vtab *vt, char **err)
{
    feox_err e = feox_sqlite_storage_lock_for_write(&vt->dbs->t);
    int rc = e == FEOX_OK ? vt->base.pModule->xBegin(&vt->base) : db_error(vt, e);
    if (rc != SQLITE_OK) {
        *err = take_vtab_message(vt, rc);
        return undo_fn_savepoint(vt, rc, err); /* xBegin failed: nothing to roll back in it */
    }
    vt->dbs->fn_by_hand = true;
    return SQLITE_OK;
}

/* The end of a call begun by begin_own_txn: xSync (the shadow tables are written inside the
 * savepoint), "RELEASE feox_fn" (commits), xCommit; on any failure everything is rolled back
 * (undo_fn_savepoint: the tables by SQLite, the cache by xRollback) and the error returned. */
static int end_own_txn(feox_vtab *vt, char **err)
{
    feox_db_state *s = vt->dbs;
    int rc = vt->base.pModule->xSync(&vt->base);
    if (rc != SQLITE_OK) {
        *err = take_vtab_message(vt, rc);
        return undo_fn_savepoint(vt, rc, err);
    }
    rc = run_cached(vt->db, &s->sp_release, "RELEASE feox_fn");
    if (rc != SQLITE_OK) {
        *err = sqlite3_mprintf("%s", sqlite3_errmsg(vt->db));
        return undo_fn_savepoint(vt, rc, err);
    }
    s->fn_savepoint = false;
    s->fn_own_txn = false;
    s->fn_by_hand = false;
    (void)vt->base.pModule->xCommit(&vt->base);
    return SQLITE_OK;
}

int feox_db_fn_begin(feox_vtab *vt, char **err)
{
    feox_db_state *s = vt->dbs;
    if (s == NULL) {
        return SQLITE_OK;
    }
    bool autocommit = sqlite3_get_autocommit(vt->db) != 0;
    int rc = open_savepoint(vt, &s->fn_savepoint);
    s->fn_own_txn = autocommit && s->fn_savepoint;
    if (rc != SQLITE_OK) {
        /* e.g. SQLITE_INTERRUPT from a progress handler, which may stop the statement after it
         * opened the savepoint (and, in autocommit, the transaction): undo whatever it did */
        *err = sqlite3_mprintf("%s", sqlite3_errmsg(vt->db));
        s->fn_own_txn = autocommit;
        return undo_fn_savepoint(vt, rc, err);
    }
    if (s->fn_savepoint && autocommit && on_dqlite(vt)) {
        return refuse_own_commit_on_dqlite(vt, err);
    }
    if (s->fn_own_txn && !vt->in_txn) {
        return begin_own_txn(vt, err);
    }
    if (!vt->in_txn) {
        /* Not cached: a prepared statement that names the table holds its vtab, and SQLite then
         * never disconnects it (sqlite3_close fails with unfinalized statements). Once the
         * table is in the transaction, later calls need no enlistment (SQLite calls xSavepoint
         * for the savepoint itself). Nested in a running write statement, this joins that
         * statement's transaction (SQLite commits it when the outer statement ends). An INSERT
         * that inserts nothing, not an UPDATE: both make SQLite call xBegin, but a virtual
         * table's UPDATE also plans a scan (xBestIndex) and opens an ephemeral table, and costs
         * a third more per autocommit feox_incr (callgrind: 91.8K -> 73.9K Ir per call). */
        char *sql = sqlite3_mprintf("INSERT INTO \"%w\".\"%w\"(key) SELECT 0 WHERE 0", vt->schema,
                                    vt->name);
        sqlite3_stmt *enlist = NULL;
        rc = sql == NULL ? SQLITE_NOMEM : sqlite3_prepare_v2(vt->db, sql, -1, &enlist, NULL);
        sqlite3_free(sql);
        if (rc == SQLITE_OK) {
            rc = sqlite3_step(enlist);
            rc = rc == SQLITE_DONE ? SQLITE_OK : sqlite3_extended_errcode(vt->db);
        }
        if (rc != SQLITE_OK) {
            *err = sqlite3_mprintf("%s", sqlite3_errmsg(vt->db));
        }
        sqlite3_finalize(enlist);
        if (rc != SQLITE_OK && s->fn_savepoint) {
            rc = undo_fn_savepoint(vt, rc, err);
        }
    }
    return rc;
}

int feox_db_fn_end(feox_vtab *vt, char **err)
{
    feox_db_state *s = vt->dbs;
    if (s != NULL && !s->fn_savepoint) {
        /* no savepoint: the running write statement decides; a full pending map is written
         * out, as after an xUpdate (no xSavepoint comes between such calls) */
        int rc = feox_db_settle(vt);
        if (rc != SQLITE_OK) {
            *err = sqlite3_mprintf("%s", vt->base.zErrMsg != NULL ? vt->base.zErrMsg : "");
        }
        return rc;
    }
    if (s == NULL) {
        return SQLITE_OK;
    }
    if (s->fn_by_hand) {
        return end_own_txn(vt, err);
    }
    s->fn_savepoint = false;
    /* In autocommit this commits: xSync, xCommit. */
    int rc = run_cached(vt->db, &s->sp_release, "RELEASE feox_fn");
    if (rc != SQLITE_OK) {
        /* e.g. BUSY taking the lock to commit in rollback-journal mode: the transaction stays
         * open; undo the call's changes (xRollbackTo puts the cache back) and end it */
        *err = sqlite3_mprintf("%s", sqlite3_errmsg(vt->db));
        rc = undo_fn_savepoint(vt, rc, err);
    }
    s->fn_own_txn = false;
    return rc;
}

int feox_db_sweep(feox_vtab *vt, uint64_t limit, uint64_t *removed)
{
    feox_store *store = db_store(vt);
    *removed = 0;
    if (store == NULL) {
        return SQLITE_OK;
    }
    /* Through the backend: each row goes with a feed row, so other caches drop it too. */
    feox_err e = feox_sqlite_storage_sweep(&vt->dbs->t, limit, removed);
    if (e != FEOX_OK) {
        return db_error(vt, e);
    }
    (void)feox_len(store, 0); /* the cache lets go of its expired records too */
    return SQLITE_OK;
}

/* The bytes the engine holds for a value the backend stored as column col of stmt (its layout:
 * INTEGER and REAL as 8 bytes little-endian, TEXT and BLOB as their bytes, NULL as none). */
static const void *stored_value(sqlite3_stmt *stmt, int col, unsigned char num[8], size_t *len)
{
    switch (sqlite3_column_type(stmt, col)) {
    case SQLITE_INTEGER: feox_put_i64(num, sqlite3_column_int64(stmt, col)); break;
    case SQLITE_FLOAT: {
        double d = sqlite3_column_double(stmt, col);
        int64_t bits;
        memcpy(&bits, &d, sizeof bits);
        feox_put_i64(num, bits);
        break;
    }
    case SQLITE_NULL: *len = 0; return "";
    default: {
        const void *p = sqlite3_column_blob(stmt, col);
        *len = (size_t)sqlite3_column_bytes(stmt, col);
        return p != NULL ? p : "";
    }
    }
    *len = 8;
    return num;
}

/* Compare one cache record with one row; append a line to out if they differ. Fails only if the
 * record's value, out of memory (max_memory), cannot be read back. */
static feox_err compare_record(sqlite3_str *out, feox_cursor *cur, sqlite3_stmt *stmt,
                               int *problems)
{
    size_t klen, vlen, slen;
    unsigned char num[8];
    const void *key = feox_cursor_key(cur, &klen);
    const void *value;
    feox_err e = feox_cursor_read_value(cur, &value, &vlen);
    if (e != FEOX_OK) {
        return e;
    }
    const void *stored = stored_value(stmt, 1, num, &slen);
    feox_record_info info;
    feox_cursor_info(cur, &info);
    uint64_t ts = (uint64_t)sqlite3_column_int64(stmt, 3);
    uint64_t expires =
        sqlite3_column_type(stmt, 4) == SQLITE_NULL ? 0 : (uint64_t)sqlite3_column_int64(stmt, 4);
    if (vlen != slen || memcmp(value, stored, vlen) != 0 ||
        info.tag != (uint32_t)sqlite3_column_int64(stmt, 2) || info.timestamp_ns != ts ||
        info.expires_at_ns != expires) {
        sqlite3_str_appendf(out, "%scache and shadow table differ at key x'",
                            *problems ? "\n" : "");
        for (size_t i = 0; i < klen && i < 64; i++) {
            sqlite3_str_appendf(out, "%02x", ((const unsigned char *)key)[i]);
        }
        sqlite3_str_appendf(out, "' (value, tag, ts or expiry)");
        (*problems)++;
    }
    return FEOX_OK;
}

/* A record near its expiry may be hidden by one side and not yet by the other: skip it. */
static bool near_expiry(uint64_t expires, uint64_t now)
{
    return expires != 0 && expires <= now + 1000000000ull;
}

/* The read of <t>_data that feox_check compares the cache with failed (step): SQLite's code and
 * message (an I/O error is not a difference to report). */
static int scan_failed(feox_vtab *vt, int step)
{
    int rc = feox_sqlite_failure(vt->db, step);
    feox_table_error(vt, "checking: %s", sqlite3_errmsg(vt->db));
    return rc;
}

static int check_cache_against_table(feox_vtab *vt, char **report)
{
    feox_store *store = db_store(vt);
    *report = NULL;
    if (store == NULL) {
        return SQLITE_OK;
    }
    feox_db_state *s = vt->dbs;
    bool opened = false;
    int rc = open_savepoint(vt, &opened); /* keeps one read transaction open for the check */
    if (rc != SQLITE_OK) {
        return rc;
    }
    if (vt->in_txn) {
        feox_err e = feox_sqlite_storage_sync(&s->t); /* the tables catch up with the cache */
        rc = e == FEOX_OK ? SQLITE_OK : db_error(vt, e);
    }
    char *sql = sqlite3_mprintf("SELECT key, value, tag, ts, expires FROM \"%w\".\"%w_data\" "
                                "ORDER BY key",
                                vt->schema, vt->name);
    sqlite3_stmt *stmt = NULL;
    feox_cursor *cur = NULL;
    sqlite3_str *out = sqlite3_str_new(vt->db);
    int problems = 0;
    if (rc == SQLITE_OK) {
        rc = sql == NULL ? SQLITE_NOMEM : sqlite3_prepare_v2(vt->db, sql, -1, &stmt, NULL);
        rc = rc == SQLITE_OK || sql == NULL ? rc : scan_failed(vt, rc);
    }
    int step = rc == SQLITE_OK ? sqlite3_step(stmt) : SQLITE_ERROR;
    if (rc == SQLITE_OK && step != SQLITE_ROW && step != SQLITE_DONE) {
        rc = scan_failed(vt, step);
    }
    if (rc == SQLITE_OK) {
        /* the read transaction is open now: the check below sees what this snapshot holds
         * (the whole table: the lazy load finishes first) */
        feox_err e = feox_sqlite_storage_want(&s->t, NULL, 0, NULL, 0);
        if (e == FEOX_OK) {
            e = feox_refresh(store, &s->t);
        }
        if (e == FEOX_OK) {
            e = feox_cursor_open(store, &cur);
        }
        uint64_t now = feox_now_ns(store);
        if (e == FEOX_OK) {
            e = feox_cursor_seek(cur, FEOX_SEEK_FIRST, NULL, 0);
        }
        while (e == FEOX_OK && problems < 10) {
            bool have_row = step == SQLITE_ROW;
            bool have_rec = feox_cursor_valid(cur);
            if (!have_row && !have_rec) {
                break;
            }
            int cmp = 0;
            if (have_row && have_rec) {
                size_t klen;
                const void *key = feox_cursor_key(cur, &klen);
                size_t rlen = (size_t)sqlite3_column_bytes(stmt, 0);
                const void *rkey = sqlite3_column_blob(stmt, 0);
                int c = memcmp(key, rkey != NULL ? rkey : "", klen < rlen ? klen : rlen);
                cmp = c != 0 ? c : (klen < rlen ? -1 : klen > rlen ? 1 : 0);
            } else {
                cmp = have_rec ? -1 : 1;
            }
            if (cmp == 0) {
                e = compare_record(out, cur, stmt, &problems);
            } else if (cmp < 0) {
                feox_record_info info;
                feox_cursor_info(cur, &info);
                if (!near_expiry(info.expires_at_ns, now)) {
                    sqlite3_str_appendf(out, "%sa key of the cache is not in %s_data",
                                        problems ? "\n" : "", vt->name);
                    problems++;
                }
            } else {
                uint64_t exp = sqlite3_column_type(stmt, 4) == SQLITE_NULL
                                   ? 0
                                   : (uint64_t)sqlite3_column_int64(stmt, 4);
                if ((exp == 0 || exp > now) && !near_expiry(exp, now)) {
                    sqlite3_str_appendf(out, "%sa live row of %s_data is not in the cache",
                                        problems ? "\n" : "", vt->name);
                    problems++;
                }
            }
            if (e == FEOX_OK && cmp <= 0) {
                e = feox_cursor_next(cur);
            }
            if (e == FEOX_OK && cmp >= 0) {
                step = sqlite3_step(stmt);
                if (step != SQLITE_ROW && step != SQLITE_DONE) {
                    rc = scan_failed(vt, step);
                    break;
                }
            }
        }
        if (rc == SQLITE_OK && e != FEOX_OK) {
            rc = db_error(vt, e);
        }
    }
    feox_cursor_close(cur);
    sqlite3_finalize(stmt);
    sqlite3_free(sql);
    if (opened) {
        (void)run_cached(vt->db, &s->sp_release, "RELEASE feox_fn");
    }
    char *text = sqlite3_str_finish(out);
    if (rc == SQLITE_OK && problems > 0) {
        *report = text;
    } else {
        sqlite3_free(text);
    }
    return rc;
}

int feox_db_check(feox_vtab *vt, char **report)
{
    /* Every value is compared, one over a lowered SQLITE_LIMIT_LENGTH too, as the backend's own
     * reads do (storage_sqlite_sql.c). */
    int limit = sqlite3_limit(vt->db, SQLITE_LIMIT_LENGTH, -1);
    if (limit < (int)FEOX_MAX_VALUE_SIZE) {
        sqlite3_limit(vt->db, SQLITE_LIMIT_LENGTH, (int)FEOX_MAX_VALUE_SIZE);
    }
    int rc = check_cache_against_table(vt, report);
    if (limit < (int)FEOX_MAX_VALUE_SIZE) {
        sqlite3_limit(vt->db, SQLITE_LIMIT_LENGTH, limit);
    }
    return rc;
}

int feox_db_check_tables(feox_vtab *vt, int why, char **report)
{
    char detail[1024];
    feox_sqlite_table t;
    memset(&t, 0, sizeof t);
    t.db = vt->db;
    t.schema = vt->schema;
    t.table = vt->name;
    *report = NULL;
    if (!damaged(why)) {
        return why; /* the moment, not the tables (an I/O error rolled SQLite's transaction back) */
    }
    char *said = vt->base.zErrMsg != NULL ? sqlite3_mprintf("%s", vt->base.zErrMsg)
                                          : sqlite3_mprintf("%s", vt->open_error != NULL
                                                                      ? vt->open_error
                                                                      : sqlite3_errstr(why));
    if (said == NULL) {
        return SQLITE_NOMEM;
    }
    feox_err e = feox_sqlite_storage_check_tables(&t, detail, sizeof detail);
    if (e == FEOX_ERR_CORRUPT || (e == FEOX_ERR_FORMAT && detail[0] != '\0')) {
        sqlite3_free(said);
        *report = sqlite3_mprintf("%s", detail);
        return *report != NULL ? SQLITE_OK : SQLITE_NOMEM;
    }
    if (e != FEOX_OK) {
        sqlite3_free(said);
        sqlite3_free(vt->base.zErrMsg);
        vt->base.zErrMsg = t.errcode != SQLITE_OK ? sqlite3_mprintf("%s", t.errmsg)
                                                  : feox_table_err_message(vt->schema, vt->name, e);
        return t.errcode != SQLITE_OK ? t.errcode : feox_err_to_sqlite(e);
    }
    /* the tables pass their own check: what stopped the cache is the problem to report */
    *report = said;
    return SQLITE_OK;
}

int feox_db_shadow_name(const char *suffix)
{
    return feox_sqlite_storage_shadow_name(suffix);
}

#else /* !FEOX_DB_MODE: no table is ever in database mode */
int feox_db_engine_error(feox_vtab *vt, feox_err e)
{
    return feox_table_engine_error(vt, e);
}

int feox_db_open(feox_vtab *vt, bool is_create, char **err)
{
    (void)is_create;
    *err = sqlite3_mprintf("feox: %s: this build keeps no records in the database "
                           "(FEOX_DB_MODE=0)",
                           vt->label);
    return SQLITE_ERROR;
}
void feox_db_close(feox_vtab *vt)
{
    (void)vt;
}
int feox_db_destroy(feox_vtab *vt)
{
    (void)vt;
    return SQLITE_OK;
}
int feox_db_drop_leftovers(feox_vtab *vt)
{
    (void)vt;
    return SQLITE_OK;
}
int feox_db_rename(feox_vtab *vt, const char *new_name)
{
    (void)vt;
    (void)new_name;
    return SQLITE_OK;
}
int feox_db_refresh(feox_vtab *vt)
{
    (void)vt;
    return SQLITE_OK;
}
int feox_db_refresh_read(feox_vtab *vt)
{
    (void)vt;
    return SQLITE_OK;
}
int feox_db_need_range(feox_vtab *vt, const void *lo, size_t lo_len, const void *hi, size_t hi_len)
{
    (void)vt;
    (void)lo;
    (void)lo_len;
    (void)hi;
    (void)hi_len;
    return SQLITE_OK;
}
void feox_db_stats(feox_vtab *vt, sqlite3_str *out)
{
    (void)vt;
    (void)out;
}
int feox_db_begin(feox_vtab *vt)
{
    (void)vt;
    return SQLITE_OK;
}
int feox_db_sync(feox_vtab *vt)
{
    (void)vt;
    return SQLITE_OK;
}
void feox_db_commit(feox_vtab *vt)
{
    (void)vt;
}
bool feox_db_rollback(feox_vtab *vt)
{
    (void)vt;
    return true;
}
void feox_db_finish_rollback(feox_vtab *vt)
{
    (void)vt;
}
int feox_db_savepoint(feox_vtab *vt, int level)
{
    (void)vt;
    (void)level;
    return SQLITE_OK;
}
void feox_db_rollback_to(feox_vtab *vt, int level)
{
    (void)vt;
    (void)level;
}
int feox_db_settle(feox_vtab *vt)
{
    (void)vt;
    return SQLITE_OK;
}
int feox_db_fn_begin(feox_vtab *vt, char **err)
{
    (void)vt;
    (void)err;
    return SQLITE_OK;
}
int feox_db_fn_end(feox_vtab *vt, char **err)
{
    (void)vt;
    (void)err;
    return SQLITE_OK;
}
int feox_db_sweep(feox_vtab *vt, uint64_t limit, uint64_t *removed)
{
    (void)vt;
    (void)limit;
    *removed = 0;
    return SQLITE_OK;
}
int feox_db_check(feox_vtab *vt, char **report)
{
    (void)vt;
    *report = NULL;
    return SQLITE_OK;
}
int feox_db_reopen(feox_vtab *vt)
{
    (void)vt;
    return SQLITE_OK;
}
int feox_db_check_tables(feox_vtab *vt, int why, char **report)
{
    (void)vt;
    *report = NULL;
    return why;
}
int feox_db_shadow_name(const char *suffix)
{
    (void)suffix;
    return 0;
}

#endif
