/*
 * vtab.c — the feox virtual-table module: lifecycle (create, connect, drop, rename) and the
 * transaction methods. Planning is in plan.c, scanning in cursor.c, writing in update.c.
 *
 * What a user types:
 *   CREATE VIRTUAL TABLE kv USING feox;                            -- options: see options.c
 *   CREATE VIRTUAL TABLE kv USING feox(path='data.feox', max_memory='512MB', keytype=blob);
 *
 * The schema SQLite sees:
 *   CREATE TABLE x(key TEXT PRIMARY KEY, value, ttl INTEGER, ts INTEGER) WITHOUT ROWID
 *   (key BLOB with keytype=blob)
 *     key    the record's key, TEXT or BLOB per keytype; other types are converted; NULL = error
 *     value  any SQL type; comes back with the type it went in with (record tag, feox_ext.h)
 *     ttl    remaining whole seconds until expiry, or NULL; writable (NULL/0 = none)
 *     ts     the record's timestamp, ns since the Unix epoch; writable (strictly newer wins)
 *
 * Not eponymous (xCreate != xConnect). Constraint support is on: xUpdate returns
 * SQLITE_CONSTRAINT before changing anything, so OR IGNORE / FAIL / ABORT / ROLLBACK work.
 * The table is not INNOCUOUS: it reads and writes process memory and files.
 *
 * Store sharing, DROP and RENAME: see registry.c and connection.c. DROP TABLE removes the store's
 * files (if another connection still has the store open: empties it, and the files go when that
 * connection lets go). ALTER TABLE RENAME of a table that lives in the default file
 * "<db>-<table>.feox" renames that file (and its sidecars) to the new table's name, so the file
 * name always follows the table; it fails with SQLITE_BUSY while another connection has the store
 * open. An explicit path is kept as is.
 *
 * Transactions: xBegin starts an undo journal (txn_journal.c); xCommit forgets it; xRollback,
 * xRollbackTo apply it. Nothing is buffered: a change is in the store as soon as xUpdate returns.
 * If an undo cannot finish (the engine is out of memory), what is left stays in the journal and
 * the next use of the table through this connection finishes it first.
 */
#include <stdarg.h>
#include <string.h>

#include "feox_ext.h"

SQLITE_EXTENSION_INIT3

void feox_vtab_set_error(feox_vtab *vt, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sqlite3_free(vt->base.zErrMsg);
    vt->base.zErrMsg = sqlite3_vmprintf(fmt, ap);
    va_end(ap);
}

int feox_vtab_check_store(feox_vtab *vt)
{
    if (vt->entry != NULL && vt->entry->store != NULL) {
        if (!vt->undo_pending) {
            return SQLITE_OK;
        }
        feox_err e = feox_journal_undo_to(&vt->journal, vt->entry->store, 0);
        if (e != FEOX_OK) {
            return feox_vtab_engine_error(vt, e);
        }
        feox_journal_clear(&vt->journal);
        vt->undo_pending = false;
        return SQLITE_OK;
    }
    feox_vtab_set_error(vt,
                        "feox: %s: the store is not open (it could not be reopened after "
                        "RENAME)",
                        vt->name);
    return SQLITE_CANTOPEN;
}

int feox_vtab_engine_error(feox_vtab *vt, feox_err err)
{
    sqlite3_free(vt->base.zErrMsg);
    vt->base.zErrMsg = feox_err_message(vt->name, err);
    return feox_err_to_sqlite(err);
}

static void vtab_free(feox_vtab *vt)
{
    if (vt == NULL) {
        return;
    }
    feox_journal_clear(&vt->journal);
    if (vt->conn != NULL) {
        feox_conn_remove_vtab(vt->conn, vt);
        feox_conn_release(vt->conn);
    }
    feox_registry_release(vt->entry);
    feox_options_free(&vt->options);
    sqlite3_free(vt->schema);
    sqlite3_free(vt->name);
    sqlite3_free(vt->base.zErrMsg);
    sqlite3_free(vt);
}

/* xCreate and xConnect: parse the options, find or open the store, declare the schema. */
static int feox_init_vtab(sqlite3 *db, void *aux, int argc, const char *const *argv,
                          sqlite3_vtab **out, char **err, bool is_create)
{
    feox_conn *conn = aux;
    feox_location loc;
    feox_vtab *vt = NULL;
    int rc = SQLITE_OK;
    memset(&loc, 0, sizeof loc);

    vt = sqlite3_malloc(sizeof *vt);
    if (vt == NULL) {
        return SQLITE_NOMEM;
    }
    memset(vt, 0, sizeof *vt);
    vt->db = db;
    vt->schema = sqlite3_mprintf("%s", argv[1]);
    vt->name = sqlite3_mprintf("%s", argv[2]);
    if (vt->schema == NULL || vt->name == NULL) {
        rc = SQLITE_NOMEM;
        goto cleanup;
    }
    rc = feox_options_parse(argc, argv, &vt->options, err);
    if (rc != SQLITE_OK) {
        goto cleanup;
    }
    rc = feox_location_resolve(db, vt->schema, vt->name, &vt->options, &loc, err);
    if (rc != SQLITE_OK) {
        goto cleanup;
    }
    feox_entry_ref *attached = feox_conn_attached(conn, vt->schema, vt->name, loc.share_key);
    if (attached != NULL) {
        feox_registry_retain(attached);
        vt->entry = attached;
    } else {
        rc = feox_registry_acquire(&loc, &vt->options, vt->name, &vt->entry, err);
        if (rc != SQLITE_OK) {
            goto cleanup;
        }
        rc = feox_conn_attach(conn, vt->schema, vt->name, loc.share_key, vt->entry);
        if (rc != SQLITE_OK) {
            goto cleanup;
        }
    }
    rc = sqlite3_declare_vtab(db, vt->options.keytype == FEOX_KEYTYPE_BLOB
                                      ? "CREATE TABLE x(key BLOB PRIMARY KEY NOT NULL, value, "
                                        "ttl INTEGER, ts INTEGER) WITHOUT ROWID"
                                      : "CREATE TABLE x(key TEXT PRIMARY KEY NOT NULL, value, "
                                        "ttl INTEGER, ts INTEGER) WITHOUT ROWID");
    if (rc != SQLITE_OK) {
        *err = sqlite3_mprintf("feox: %s: cannot %s the table: %s", vt->name,
                               is_create ? "create" : "connect", sqlite3_errmsg(db));
        goto cleanup;
    }
    rc = sqlite3_vtab_config(db, SQLITE_VTAB_CONSTRAINT_SUPPORT, 1);
    if (rc != SQLITE_OK) {
        goto cleanup;
    }
    feox_conn_retain(conn);
    vt->conn = conn;
    feox_conn_add_vtab(conn, vt);
    *out = &vt->base;
    vt = NULL;
cleanup:
    feox_location_free(&loc);
    vtab_free(vt);
    return rc;
}

/* xCreate: CREATE VIRTUAL TABLE (creates the store file if missing). */
static int feox_vt_create(sqlite3 *db, void *aux, int argc, const char *const *argv,
                          sqlite3_vtab **out, char **err)
{
    return feox_init_vtab(db, aux, argc, argv, out, err, true);
}

/* xConnect: an existing table is used by this connection. */
static int feox_vt_connect(sqlite3 *db, void *aux, int argc, const char *const *argv,
                           sqlite3_vtab **out, char **err)
{
    return feox_init_vtab(db, aux, argc, argv, out, err, false);
}

/* xDisconnect: this connection's vtab object goes away; the store stays attached, unless another
 * connection dropped the table (then this connection lets go of the store too). */
static int feox_vt_disconnect(sqlite3_vtab *tab)
{
    feox_vtab *vt = (feox_vtab *)tab;
    if (vt->entry != NULL && vt->conn != NULL && feox_registry_is_dropped(vt->entry)) {
        feox_conn_detach_entry(vt->conn, vt->entry);
    }
    vtab_free(vt);
    return SQLITE_OK;
}

/* xDestroy: DROP TABLE. Forget the store's name, remove its files, release it. */
static int feox_vt_destroy(sqlite3_vtab *tab)
{
    feox_vtab *vt = (feox_vtab *)tab;
    feox_registry_drop(vt->entry, feox_conn_entry_refs(vt->conn, vt->entry));
    feox_conn_detach(vt->conn, vt->schema, vt->name);
    vtab_free(vt);
    return SQLITE_OK;
}

/* xRename: ALTER TABLE ... RENAME TO new_name. */
static int feox_vt_rename(sqlite3_vtab *tab, const char *new_name)
{
    feox_vtab *vt = (feox_vtab *)tab;
    feox_location loc;
    char *err = NULL;
    char *name = sqlite3_mprintf("%s", new_name);
    int rc = name ? SQLITE_OK : SQLITE_NOMEM;
    memset(&loc, 0, sizeof loc);
    if (rc == SQLITE_OK) {
        rc = feox_location_resolve(vt->db, vt->schema, new_name, &vt->options, &loc, &err);
    }
    if (rc == SQLITE_OK) {
        int mine = feox_conn_entry_refs(vt->conn, vt->entry);
        rc = feox_registry_rename(vt->entry, vt->name, &loc, &vt->options, mine, &err);
    }
    if (rc == SQLITE_OK) {
        feox_conn_rename(vt->conn, vt->schema, vt->name, new_name, loc.share_key);
        sqlite3_free(vt->name);
        vt->name = name;
        name = NULL;
    } else if (err != NULL) {
        feox_vtab_set_error(vt, "%s", err);
    }
    sqlite3_free(err);
    sqlite3_free(name);
    feox_location_free(&loc);
    return rc;
}

/* xBegin: a write transaction starts; start an empty undo journal. */
static int feox_vt_begin(sqlite3_vtab *tab)
{
    feox_vtab *vt = (feox_vtab *)tab;
    if (vt->undo_pending) {
        int rc = feox_vtab_check_store(vt);
        if (rc != SQLITE_OK) {
            return rc;
        }
    }
    feox_journal_clear(&vt->journal);
    vt->in_txn = true;
    return SQLITE_OK;
}

/* xSync: nothing to prepare; durability follows the table's sync option. */
static int feox_vt_sync(sqlite3_vtab *tab)
{
    (void)tab;
    return SQLITE_OK;
}

/* xCommit: the changes stay; forget the journal. */
static int feox_vt_commit(sqlite3_vtab *tab)
{
    feox_vtab *vt = (feox_vtab *)tab;
    feox_journal_clear(&vt->journal);
    vt->in_txn = false;
    return SQLITE_OK;
}

/* xRollback: undo every change of the transaction, newest first. */
static int feox_vt_rollback(sqlite3_vtab *tab)
{
    feox_vtab *vt = (feox_vtab *)tab;
    if (vt->entry == NULL || vt->entry->store == NULL) {
        feox_journal_clear(&vt->journal);
        vt->in_txn = false;
        vt->undo_pending = false;
        return feox_vtab_check_store(vt);
    }
    /* The journal also holds whatever an earlier rollback left pending: undo it all. */
    feox_err e = feox_journal_undo_to(&vt->journal, vt->entry->store, 0);
    vt->in_txn = false;
    if (e != FEOX_OK) {
        /* SQLite ends the transaction whatever xRollback returns: keep what is left to undo and
         * finish it before this table is used again (feox_vtab_check_store). */
        vt->undo_pending = true;
        return feox_vtab_engine_error(vt, e);
    }
    feox_journal_clear(&vt->journal);
    vt->undo_pending = false;
    return SQLITE_OK;
}

/* xSavepoint: savepoint level begins here. */
static int feox_vt_savepoint(sqlite3_vtab *tab, int level)
{
    feox_journal_savepoint(&((feox_vtab *)tab)->journal, level);
    return SQLITE_OK;
}

/* xRelease: savepoint levels >= level end (their changes stay). */
static int feox_vt_release(sqlite3_vtab *tab, int level)
{
    feox_journal_release(&((feox_vtab *)tab)->journal, level);
    return SQLITE_OK;
}

/* xRollbackTo: undo the changes made since savepoint level began (-1: since the start). */
static int feox_vt_rollback_to(sqlite3_vtab *tab, int level)
{
    feox_vtab *vt = (feox_vtab *)tab;
    if (feox_vtab_check_store(vt) != SQLITE_OK) {
        return SQLITE_CANTOPEN;
    }
    feox_err e = feox_journal_rollback_to(&vt->journal, vt->entry->store, level);
    return e == FEOX_OK ? SQLITE_OK : feox_vtab_engine_error(vt, e);
}

sqlite3_module feox_module = {
    /* iVersion    */ 2,
    /* xCreate     */ feox_vt_create,
    /* xConnect    */ feox_vt_connect,
    /* xBestIndex  */ feox_vt_best_index,
    /* xDisconnect */ feox_vt_disconnect,
    /* xDestroy    */ feox_vt_destroy,
    /* xOpen       */ feox_vt_open,
    /* xClose      */ feox_vt_close,
    /* xFilter     */ feox_vt_filter,
    /* xNext       */ feox_vt_next,
    /* xEof        */ feox_vt_eof,
    /* xColumn     */ feox_vt_column,
    /* xRowid      */ feox_vt_rowid,
    /* xUpdate     */ feox_vt_update,
    /* xBegin      */ feox_vt_begin,
    /* xSync       */ feox_vt_sync,
    /* xCommit     */ feox_vt_commit,
    /* xRollback   */ feox_vt_rollback,
    /* xFindMethod */ NULL,
    /* xRename     */ feox_vt_rename,
    /* xSavepoint  */ feox_vt_savepoint,
    /* xRelease    */ feox_vt_release,
    /* xRollbackTo */ feox_vt_rollback_to,
    /* xShadowName */ NULL,
};
