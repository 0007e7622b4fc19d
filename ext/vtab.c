/*
 * vtab.c — the feox virtual-table module: lifecycle (create, connect, drop, rename) and the
 * transaction methods. Planning is in plan.c, scanning in cursor.c, writing in update.c, the
 * store check every use of a table starts with in vtab_store.c.
 *
 * What a user types:
 *   CREATE VIRTUAL TABLE kv USING feox;                            -- options: see options.c
 *   CREATE VIRTUAL TABLE kv USING feox(path='data.feox', max_memory='512MB', keytype=blob);
 *
 * The schema SQLite sees:
 *   CREATE TABLE x(key TEXT PRIMARY KEY NOT NULL, value, ttl INTEGER, ts INTEGER)
 *   WITHOUT ROWID
 *   (key BLOB with keytype=blob; clock='log' adds a HIDDEN command column named like the
 *   table: logical_clock.c)
 *     key    the record's key, TEXT or BLOB per keytype; other types are converted; NULL = error
 *     value  any SQL type; comes back with the type it went in with (record tag, feox_ext.h)
 *     ttl    remaining whole seconds until expiry, or NULL; writable (NULL/0 = none)
 *     ts     the record's timestamp, ns since the Unix epoch; writable (strictly newer wins)
 *
 * Not eponymous (xCreate != xConnect). Constraint support is on: xUpdate returns
 * SQLITE_CONSTRAINT before changing anything, so OR IGNORE / FAIL / ABORT / ROLLBACK work.
 * The table is not INNOCUOUS: it reads and writes process memory and files.
 *
 * Store sharing, DROP and RENAME: see registry.c and file_actions.c. xCreate creates a missing
 * store file (a CREATE that rolls back removes it again); xConnect never creates one: a table
 * whose file is missing connects without a store, every use reports "store file '...' does not
 * exist", and DROP TABLE still works. DROP TABLE only releases the store; the file is removed once
 * the DROP is known to be committed, only through the engine (exactly the files it created,
 * verified as this table's), and never while another table shows the data. ALTER TABLE RENAME of
 * a table in its default file "<db>-<table>.feox" renames that file at once (renamed back if the
 * transaction rolls back), so the file name always follows the table; it fails with SQLITE_BUSY
 * while another connection has the store open. An explicit path is kept as is. The file's
 * recorded owner follows the table once the RENAME has committed. xConnect of a default-file
 * table recovers what a crash during a RENAME left (file_actions.c, "Crash safety").
 *
 * A table with a file is SQLITE_VTAB_DIRECTONLY: triggers and views (which may come from a schema
 * someone else wrote) cannot use it. Tables in the database and memory tables are
 * SQLITE_VTAB_INNOCUOUS (their writes stay in the database or in memory), usable from triggers
 * and views also with PRAGMA trusted_schema=OFF. A store inherited through fork() is never used:
 * the first use in the child opens the file again, or fails saying that the parent process holds
 * it.
 *
 * Database mode (a table without path in a file database, db_mode.c): the records are in shadow
 * tables, created, dropped and renamed inside the user's transaction; no file and no pending file
 * action is involved. The transaction methods call db_mode.c around the journal (see its header
 * for the hook order and the cache/feed/rollback rules).
 *
 * PRAGMA integrity_check and quick_check (SQLite 3.44 and newer call xIntegrity, module version
 * 4) report what feox_check(tab) reports: the engine's check (index consistency, record checksums
 * of a store file) and, in database mode, the cache compared with <table>_data.
 *
 * A store file this process may not write (its permissions, a read-only mount) is opened
 * read-only (registry.c): the table reads; xBegin refuses every write statement and xDestroy the
 * DROP with SQLITE_READONLY, naming the file; the functions that write get the engine's
 * FEOX_ERR_READ_ONLY, reported the same way.
 *
 * Transactions: xBegin starts an undo journal (txn_journal.c); xCommit forgets it; xRollback,
 * xRollbackTo apply it. Nothing is buffered: a change is in the store as soon as xUpdate returns.
 * If an undo cannot finish (the engine is out of memory), what is left stays in the journal and
 * the next use of the table through this connection finishes it first.
 */
#include <stddef.h>
#include <string.h>

#include "feox_ext.h"

SQLITE_EXTENSION_INIT3

static void vtab_free(feox_vtab *vt)
{
    if (vt == NULL) {
        return;
    }
    feox_vt_free_spare_cursor(vt);
    feox_journal_free(&vt->journal);
    sqlite3_finalize(vt->query_only_stmt);
    feox_db_close(vt); /* database mode: closes the private store (vt->entry) */
    feox_lclock_close(vt);
    if (vt->conn != NULL) {
        feox_conn_remove_vtab(vt->conn, vt);
        feox_conn_release(vt->conn);
    }
    feox_registry_release(vt->entry);
    feox_options_free(&vt->options);
    sqlite3_free(vt->open_error);
    sqlite3_free(vt->schema);
    sqlite3_free(vt->name);
    sqlite3_free(vt->label);
    sqlite3_free(vt->base.zErrMsg);
    sqlite3_free(vt);
}

/* "kv" for a table of the main schema, "aux.kv" for one of another schema (messages). */
static char *table_label(const char *schema, const char *name)
{
    return sqlite3_stricmp(schema, "main") == 0 ? sqlite3_mprintf("%s", name)
                                                : sqlite3_mprintf("%s.%s", schema, name);
}

/* Find or open the store of vt at loc for this connection (xCreate: *created says whether this
 * call created the file). */
static int attach_store(feox_vtab *vt, feox_conn *conn, const feox_location *loc, bool is_create,
                        bool *created, char **err)
{
    feox_entry_ref *attached = feox_conn_attached(conn, vt->schema, vt->name, loc->share_key);
    if (attached != NULL && feox_registry_is_inherited(attached)) {
        feox_conn_detach_entry(conn, attached); /* fork(): this process opens its own */
        attached = NULL;
    }
    if (attached != NULL && is_create && loc->kind == FEOX_LOC_PRIVATE_MEMORY) {
        /* A new table starts empty: the store kept under its name belongs to an in-memory
         * database detached before (another one is now attached under the same name). */
        feox_conn_detach_entry(conn, attached);
        attached = NULL;
    }
    if (attached != NULL) {
        feox_registry_retain(attached);
        vt->entry = attached;
        return SQLITE_OK;
    }
    if (!is_create && loc->kind == FEOX_LOC_FILE && feox_actions_path_moving(loc->file_path)) {
        *err = sqlite3_mprintf("feox: %s: the store file '%s' is being renamed by a transaction "
                               "of another connection; try again",
                               vt->name, loc->file_path);
        return SQLITE_BUSY;
    }
    bool recoverable = !is_create && loc->kind == FEOX_LOC_FILE && loc->default_path &&
                       loc->db_file != NULL && loc->db_file[0] != '\0';
    feox_file_info info;
    if (recoverable && feox_store_file_info(loc->file_path, &info) == FEOX_ERR_NOT_FOUND) {
        feox_actions_recover_missing(vt->name, loc); /* a crash inside a RENAME's transaction */
    }
    int rc =
        feox_registry_acquire(loc, &vt->options, vt->label, is_create, created, &vt->entry, err);
    if (recoverable && rc == SQLITE_OK) {
        feox_actions_adopt(vt->name, loc); /* a crash after a RENAME's COMMIT */
    }
    bool file = !is_create && rc != SQLITE_OK && loc->kind == FEOX_LOC_FILE;
    bool missing = file && rc == SQLITE_CANTOPEN &&
                   feox_store_file_info(loc->file_path, &info) == FEOX_ERR_NOT_FOUND;
    bool conflict = file && rc == SQLITE_ERROR && feox_registry_find_file(loc->file_path) != NULL;
    bool damaged = file && ((rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB);
    if (missing || conflict || damaged) {
        /* Connect without a store, so that DROP TABLE still works; every use says why, and
         * tries again (the file may be back or repaired, the other table gone). Never
         * attached. */
        vt->entry = feox_registry_placeholder();
        vt->open_error = *err;
        *err = NULL;
        return vt->entry != NULL ? SQLITE_OK : SQLITE_NOMEM;
    }
    if (rc == SQLITE_OK) {
        rc = feox_conn_attach(conn, vt->schema, vt->name, loc->share_key, vt->entry);
    }
    return rc;
}

/* xCreate and xConnect: parse the options, find or open the store, declare the schema. */
static int feox_init_vtab(sqlite3 *db, void *aux, int argc, const char *const *argv,
                          sqlite3_vtab **out, char **err, bool is_create)
{
    feox_conn *conn = aux;
    feox_location loc;
    feox_vtab *vt = NULL;
    bool created = false;
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
    vt->label = table_label(argv[1], argv[2]);
    if (vt->schema == NULL || vt->name == NULL || vt->label == NULL) {
        rc = SQLITE_NOMEM;
        goto cleanup;
    }
    rc = feox_options_parse(argc, argv, &vt->options, err);
    if (rc != SQLITE_OK) {
        goto cleanup;
    }
    if (vt->options.keytype == FEOX_KEYTYPE_TEXT) {
        /* if the encoding cannot be asked (no memory, an authorizer that denies the PRAGMA),
         * "it differs" is the answer that keeps results right: slower plans, the same rows */
        bool utf8;
        vt->key_order_differs = feox_text_is_utf8(db, vt->schema, &utf8) != SQLITE_OK || !utf8;
    }
    if (is_create &&
        (feox_is_file_database(db, vt->schema) || feox_is_shared_memdb(db, vt->schema))) {
        /* a new table without path in a file database, or in a memdb database that other
         * connections open by its name, goes into the database (options.c) */
        vt->options.pinned = true;
        vt->options.pinned_kind = (int)FEOX_LOC_DATABASE;
    }
    rc = feox_location_resolve(db, vt->schema, vt->name, &vt->options, &loc, err);
    if (rc != SQLITE_OK) {
        goto cleanup;
    }
    vt->options.pinned = true; /* a file appearing later never moves the table (options.c) */
    vt->options.pinned_kind = (int)loc.kind;
    if (is_create) {
        rc = feox_actions_before_name(conn, vt->schema, vt->name, loc.file_path, NULL, err);
        if (rc != SQLITE_OK) {
            goto cleanup;
        }
    }
    feox_actions_settle(conn);
    rc = feox_lclock_open(vt, (int)loc.kind, err); /* clock='log' (logical_clock.c) */
    if (rc != SQLITE_OK) {
        goto cleanup;
    }
    if (loc.kind == FEOX_LOC_DATABASE) {
        vt->conn = conn; /* not retained yet: vtab_free must not release it on failure */
        rc = feox_db_open(vt, is_create, err); /* db_mode.c: shadow tables + private cache */
        if (rc == SQLITE_OK && is_create) {
            /* SQLite counts a table it has just created as part of the transaction: no xBegin
             * comes before the next xUpdate, xSync or xCommit. Begin here. */
            rc = feox_db_begin(vt);
            vt->in_txn = rc == SQLITE_OK;
            if (rc != SQLITE_OK && vt->base.zErrMsg != NULL) {
                *err = sqlite3_mprintf("%s", vt->base.zErrMsg);
            }
        }
        vt->conn = NULL;
    } else {
        rc = attach_store(vt, conn, &loc, is_create, &created, err);
    }
    if (rc != SQLITE_OK) {
        goto cleanup;
    }
    char *schema = feox_lclock_schema(vt); /* clock='log' adds its HIDDEN command column */
    rc = schema == NULL ? SQLITE_NOMEM : sqlite3_declare_vtab(db, schema);
    sqlite3_free(schema);
    if (rc != SQLITE_OK) {
        *err = sqlite3_mprintf("feox: %s: cannot %s the table: %s", vt->label,
                               is_create ? "create" : "connect", sqlite3_errmsg(db));
        goto cleanup;
    }
    rc = sqlite3_vtab_config(db, SQLITE_VTAB_CONSTRAINT_SUPPORT, 1);
    if (rc == SQLITE_OK) {
        /* A table with a file may not be used from triggers and views: a schema someone else
         * wrote could otherwise make this process write or create files. A table in the
         * database writes only its shadow tables, a memory table only memory: innocuous (as
         * FTS5 is), so triggers and views may use them with trusted_schema=OFF. */
        rc = sqlite3_vtab_config(db, loc.kind == FEOX_LOC_FILE ? SQLITE_VTAB_DIRECTONLY
                                                               : SQLITE_VTAB_INNOCUOUS);
    }
    if (rc != SQLITE_OK) {
        goto cleanup;
    }
    if (created) {
        /* a rolled-back CREATE removes the file it made (NOMEM: the file stays, harmless) */
        (void)feox_actions_add_create(conn, vt->schema, vt->name, &loc);
    }
    feox_conn_retain(conn);
    vt->conn = conn;
    feox_conn_add_vtab(conn, vt);
    *out = &vt->base;
    vt = NULL;
cleanup:
    if (vt != NULL && vt->entry != NULL && vt->open_error == NULL && vt->dbs == NULL) {
        feox_conn_detach(conn, vt->schema, vt->name);
    }
    vtab_free(vt);
    if (rc != SQLITE_OK && created) {
        (void)feox_remove_store_file(loc.file_path, loc.owner, 0); /* the file this call made */
    }
    feox_location_free(&loc);
    return rc;
}

/* xCreate: CREATE VIRTUAL TABLE (creates the store file if missing). */
static int feox_vt_create(sqlite3 *db, void *aux, int argc, const char *const *argv,
                          sqlite3_vtab **out, char **err)
{
    return feox_init_vtab(db, aux, argc, argv, out, err, true);
}

/* xConnect: an existing table is used by this connection (its store file must exist). */
static int feox_vt_connect(sqlite3 *db, void *aux, int argc, const char *const *argv,
                           sqlite3_vtab **out, char **err)
{
    return feox_init_vtab(db, aux, argc, argv, out, err, false);
}

/* xDisconnect: this connection's vtab object goes away; the store stays attached, unless the
 * table was dropped (then this connection lets go of the store too). */
static int feox_vt_disconnect(sqlite3_vtab *tab)
{
    feox_vtab *vt = (feox_vtab *)tab;
    if (vt->fn_pins > 0) {
        /* a SQL function is using it (functions.c calls xDisconnect again when it lets go) */
        if (vt->conn != NULL) {
            feox_conn_remove_vtab(vt->conn, vt);
        }
        vt->disconnected = true;
        return SQLITE_OK;
    }
    if (vt->entry != NULL && vt->conn != NULL && feox_registry_is_dropped(vt->entry)) {
        feox_conn_detach_entry(vt->conn, vt->entry);
    }
    vtab_free(vt);
    return SQLITE_OK;
}

/* True if vt's store is a file this process may only read (registry.c opened it read-only). */
static bool store_read_only(const feox_vtab *vt)
{
    return vt->dbs == NULL && vt->entry != NULL && feox_store_read_only(vt->entry->store);
}

/* xDestroy: DROP TABLE, inside SQLite's transaction. The store is only released here (a memory
 * store is kept by the pending action); its file goes once the DROP is known to be committed
 * (file_actions.c). A table whose store file this process may only read cannot be dropped (its
 * file could not be removed): SQLITE_READONLY, and SQLite undoes the schema change, as it
 * refuses DROP TABLE in a read-only database. */
static int feox_vt_destroy(sqlite3_vtab *tab)
{
    feox_vtab *vt = (feox_vtab *)tab;
    feox_location loc;
    char *err = NULL;
    if (store_read_only(vt)) {
        return feox_vtab_read_only_error(vt, "cannot drop the table: ");
    }
    if (vt->dbs != NULL) {
        int rc = feox_db_destroy(vt); /* drops the shadow tables in the user's transaction */
        if (rc == SQLITE_OK) {
            vtab_free(vt);
        }
        return rc;
    }
    int rc = feox_location_resolve(vt->db, vt->schema, vt->name, &vt->options, &loc, &err);
    sqlite3_free(err);
    if (rc == SQLITE_OK && loc.kind == FEOX_LOC_FILE && loc.default_path) {
        rc = feox_db_drop_leftovers(vt); /* <t>_data dropped by hand: its <t>_log, <t>_meta */
        if (rc != SQLITE_OK) {
            feox_location_free(&loc);
            return rc;
        }
    }
    if (rc == SQLITE_OK) {
        feox_entry_ref *held = loc.kind == FEOX_LOC_FILE ? NULL : vt->entry;
        feox_actions_forget_create(vt->conn, vt->schema, vt->name);
        rc = feox_actions_add_drop(vt->conn, vt->schema, vt->name, &loc, held);
        feox_location_free(&loc);
    }
    if (rc != SQLITE_OK) {
        return rc; /* out of memory: the DROP fails and nothing changed */
    }
    feox_conn_detach(vt->conn, vt->schema, vt->name);
    vtab_free(vt);
    return SQLITE_OK;
}

/* xRename: ALTER TABLE ... RENAME TO new_name, inside SQLite's transaction. A table in its
 * default file moves the file at once (the new name must find it in this very statement); the
 * pending action moves it back if the transaction rolls back (file_actions.c). */
static int feox_vt_rename(sqlite3_vtab *tab, const char *new_name)
{
    feox_vtab *vt = (feox_vtab *)tab;
    feox_location from, to;
    char *err = NULL;
    bool moved = false;
    char *pending_owner = NULL;
    const char *file_owner = NULL;
    char *name = sqlite3_mprintf("%s", new_name);
    int rc = name ? SQLITE_OK : SQLITE_NOMEM;
    memset(&from, 0, sizeof from);
    memset(&to, 0, sizeof to);
    if (rc == SQLITE_OK && vt->dbs != NULL) {
        rc = feox_db_rename(vt, new_name); /* the shadow tables, in the user's transaction */
        goto renamed;
    }
    if (rc == SQLITE_OK) {
        rc = feox_location_resolve(vt->db, vt->schema, vt->name, &vt->options, &from, &err);
    }
    if (rc == SQLITE_OK) {
        rc = feox_location_resolve(vt->db, vt->schema, new_name, &vt->options, &to, &err);
    }
    if (rc == SQLITE_OK) {
        rc = feox_actions_before_name(vt->conn, vt->schema, new_name,
                                      to.kind == FEOX_LOC_FILE ? to.file_path : NULL, vt->name,
                                      &err);
    }
    /* The file keeps the owner it had before the transaction until the RENAME has committed
     * (then file_actions.c records the new one): a crash in between leaves a file that the old
     * name's xConnect recognises as its own and takes back. */
    pending_owner =
        rc == SQLITE_OK ? feox_actions_pending_owner(vt->conn, vt->schema, vt->name) : NULL;
    file_owner = pending_owner != NULL ? pending_owner : from.owner;
    if (rc == SQLITE_OK && from.kind == FEOX_LOC_FILE && from.default_path &&
        strcmp(from.file_path, to.file_path) != 0) {
        int mine = feox_conn_entry_refs(vt->conn, vt->entry);
        rc = feox_registry_move(vt->entry, vt->label, to.file_path, from.owner, to.owner,
                                file_owner, mine, &err);
        moved = rc == SQLITE_OK;
    } else if (rc == SQLITE_OK && to.share_key != NULL) {
        rc = feox_registry_rekey(vt->entry, to.share_key);
    }
    if (rc == SQLITE_OK) {
        (void)feox_actions_retarget_create(vt->conn, vt->schema, vt->name, new_name, &to, moved);
        rc = feox_actions_add_rename(vt->conn, vt->schema, vt->name, new_name, &from, &to,
                                     file_owner, moved);
        if (rc != SQLITE_OK && moved) {
            /* cannot record how to undo it: undo it now */
            char *undo_err = NULL;
            (void)feox_registry_move(vt->entry, new_name, from.file_path, to.owner, from.owner,
                                     file_owner, feox_conn_entry_refs(vt->conn, vt->entry),
                                     &undo_err);
            sqlite3_free(undo_err);
        }
    }
renamed:
    if (rc == SQLITE_OK) {
        feox_conn_rename(vt->conn, vt->schema, vt->name, new_name, to.share_key);
        char *label = table_label(vt->schema, new_name);
        if (label != NULL) { /* out of memory: messages keep the old name */
            sqlite3_free(vt->label);
            vt->label = label;
        }
        sqlite3_free(vt->name);
        vt->name = name;
        name = NULL;
    } else if (err != NULL) {
        feox_vtab_set_error(vt, "%s", err);
    }
    sqlite3_free(err);
    sqlite3_free(name);
    sqlite3_free(pending_owner);
    feox_location_free(&from);
    feox_location_free(&to);
    return rc;
}

/* xBegin: a write transaction starts; start an empty undo journal. A table whose store file this
 * process may only read refuses it, as SQLite refuses a write to a read-only database: the
 * statement fails before it changes anything (SQLITE_READONLY). */
static int feox_vt_begin(sqlite3_vtab *tab)
{
    feox_vtab *vt = (feox_vtab *)tab;
    feox_actions_settle(vt->conn);
    if (store_read_only(vt)) {
        return feox_vtab_read_only_error(vt, "");
    }
    if (vt->undo_pending) {
        int rc = feox_vtab_check_store(vt);
        if (rc != SQLITE_OK) {
            return rc;
        }
    }
    int rc = feox_db_begin(vt); /* database mode: the coherence check, the backend's begin */
    if (rc != SQLITE_OK) {
        return rc;
    }
    feox_journal_clear(&vt->journal);
    vt->in_txn = true;
    return SQLITE_OK;
}

/* xSync: database mode writes what is pending; otherwise nothing to prepare (durability follows
 * the table's sync option). */
static int feox_vt_sync(sqlite3_vtab *tab)
{
    return feox_db_sync((feox_vtab *)tab);
}

/* xCommit: the changes stay; forget the journal. */
static int feox_vt_commit(sqlite3_vtab *tab)
{
    feox_vtab *vt = (feox_vtab *)tab;
    feox_db_commit(vt);
    feox_lclock_committed(vt); /* clock='log': what a 'sweep' removed leaves the cache */
    feox_journal_clear(&vt->journal);
    vt->in_txn = false;
    return SQLITE_OK;
}

/* xRollback: undo every change of the transaction, newest first (database mode: SQLite has
 * restored the shadow tables; the backend drops what is pending and the journal puts the cache
 * back with FEOX_WRITE_INDEX_ONLY writes). */
static int feox_vt_rollback(sqlite3_vtab *tab)
{
    feox_vtab *vt = (feox_vtab *)tab;
    bool engine_free = feox_db_rollback(vt);
    feox_lclock_forget(vt); /* clock='log': read the restored clock again */
    if (vt->entry == NULL || vt->entry->store == NULL) {
        feox_journal_clear(&vt->journal);
        vt->in_txn = false;
        vt->undo_pending = false;
        /* Database mode without a cache (feox_db_rollback may just have dropped it): the next
         * use loads it, inside its statement's transaction. Not here: SQLite has ended the
         * transaction, so reading the shadow tables would open a read transaction that nothing
         * ends, and the connection's next statements would read that snapshot and fail a write
         * with SQLITE_BUSY at once. */
        return vt->dbs != NULL ? SQLITE_OK : feox_vtab_check_store(vt);
    }
    if (!engine_free) {
        /* SQLite rolls back from inside a statement the table's backend runs for the engine (an
         * I/O error in a find under a key's shard lock): undoing now would wait for that lock
         * forever. The engine call fails and returns; the table's next use undoes it all
         * (feox_vtab_check_store), before anything reads the cache. */
        vt->in_txn = false;
        vt->undo_pending = true;
        return SQLITE_OK;
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
    int rc = feox_db_savepoint((feox_vtab *)tab, level); /* database mode: pending writes first */
    feox_journal_savepoint(&((feox_vtab *)tab)->journal, level);
    return rc;
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
    feox_db_rollback_to(vt, level); /* database mode: the backend drops what is pending */
    feox_lclock_forget(vt);         /* clock='log': read the restored clock again */
    if (vt->dbs != NULL && vt->entry != NULL && vt->entry->store == NULL) {
        return SQLITE_OK; /* database mode without a cache: the next use loads it */
    }
    int rc = feox_vtab_check_store(vt);
    if (rc != SQLITE_OK) {
        return rc;
    }
    feox_err e = feox_journal_rollback_to(&vt->journal, vt->entry->store, level);
    return e == FEOX_OK ? SQLITE_OK : feox_vtab_engine_error(vt, e);
}

/* xShadowName (database mode): the shadow tables "<table>_<suffix>" the backend keeps. */
static int feox_vt_shadow_name(const char *suffix)
{
    return feox_db_shadow_name(suffix);
}

/* xIntegrity (SQLite 3.44+, PRAGMA integrity_check / quick_check, both run the whole check): a
 * problem, or a check that could not run, becomes one line of the pragma's output naming the
 * table; only running out of memory fails the pragma. */
static int feox_vt_integrity(sqlite3_vtab *tab, const char *schema, const char *name, int flags,
                             char **problems)
{
    (void)flags;
    feox_vtab *vt = (feox_vtab *)tab;
    char *report = NULL;
    int rc = feox_vtab_check_table(vt, &report);
    if (rc == SQLITE_NOMEM) {
        return rc;
    }
    bool found = rc != SQLITE_OK || report != NULL;
    if (rc != SQLITE_OK) {
        *problems = sqlite3_mprintf("feox table %s.%s could not be checked: %s", schema, name,
                                    vt->base.zErrMsg ? vt->base.zErrMsg : sqlite3_errstr(rc));
    } else if (report != NULL) {
        *problems = sqlite3_mprintf("feox table %s.%s: %s", schema, name, report);
    }
    sqlite3_free(report);
    sqlite3_free(vt->base.zErrMsg); /* said in the pragma's output, not for a later statement */
    vt->base.zErrMsg = NULL;
    return found && *problems == NULL ? SQLITE_NOMEM : SQLITE_OK;
}

/* Module version 4 (SQLite 3.44) adds xIntegrity after xShadowName. Built against older headers,
 * the module is their sqlite3_module followed by that method: the same layout. An older SQLite
 * reads no further than the methods it knows. */
#if SQLITE_VERSION_NUMBER < 3044000
_Static_assert(offsetof(feox_module_v4, xIntegrity) == sizeof(sqlite3_module),
               "xIntegrity must follow sqlite3_module's last method");
#endif

const feox_module_v4 feox_module = {
    .module = {
        /* iVersion    */ 4,
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
        /* xShadowName */ FEOX_DB_MODE ? feox_vt_shadow_name : NULL,
#if SQLITE_VERSION_NUMBER >= 3044000
        /* xIntegrity  */ feox_vt_integrity,
#endif
    },
#if SQLITE_VERSION_NUMBER < 3044000
    .xIntegrity = feox_vt_integrity,
#endif
};
