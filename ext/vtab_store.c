/*
 * vtab_store.c — what every use of a table starts with, and how it reports an error:
 * feox_vtab_check_store (open again a store that was missing or inherited through fork(), finish
 * a rollback that could not finish, and in database mode bring the cache up to date), the
 * report of a table's problems (feox_vtab_check_table: feox_check and PRAGMA integrity_check) and
 * the table's error messages (feox_vtab_set_error, feox_vtab_engine_error,
 * feox_vtab_read_only_error). Below vtab.c (the
 * module) and the files of its methods (cursor.c, update.c) and of the SQL functions
 * (functions.c), which all call it.
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

/* Open the vtab's store again: it was inherited through fork() (the registry already skips the
 * inherited instance), or the table was connected without one (its file was missing, or another
 * table had it open with other options) and the cause may be gone now. */
static int reopen_store(feox_vtab *vt)
{
    feox_location loc;
    feox_entry_ref *fresh = NULL;
    char *err = NULL;
    int rc = feox_location_resolve(vt->db, vt->schema, vt->name, &vt->options, &loc, &err);
    feox_file_info info;
    if (rc == SQLITE_OK && loc.kind == FEOX_LOC_FILE && loc.default_path &&
        loc.db_file[0] != '\0' &&
        feox_store_file_info(loc.file_path, &info) == FEOX_ERR_NOT_FOUND) {
        feox_actions_recover_missing(vt->name, &loc); /* as in xConnect (file_actions.c) */
    }
    if (rc == SQLITE_OK) {
        rc = feox_registry_acquire(&loc, &vt->options, vt->label, false, NULL, &fresh, &err);
    }
    if (rc != SQLITE_OK) {
        feox_vtab_set_error(vt, "%s", err ? err : sqlite3_errstr(rc));
        sqlite3_free(err);
        feox_location_free(&loc);
        /* What the open said (CANTOPEN: missing or locked; CORRUPT, NOTADB, NOMEM...); a plain
         * refusal (another table has the store open with other options) is an open that failed. */
        return rc == SQLITE_ERROR ? SQLITE_CANTOPEN : rc;
    }
    feox_entry_ref *old = vt->entry;
    feox_conn_detach_entry(vt->conn, old);
    (void)feox_conn_attach(vt->conn, vt->schema, vt->name, loc.share_key, fresh);
    vt->entry = fresh;
    feox_registry_release(old);
    feox_journal_clear(&vt->journal); /* undo entries of an inherited store were the parent's */
    vt->undo_pending = false;
    sqlite3_free(vt->open_error);
    vt->open_error = NULL;
    feox_location_free(&loc);
    return SQLITE_OK;
}

/* What check_store does in database mode once the store is there. */
typedef enum check_refresh {
    REFRESH,      /* feox_db_refresh */
    REFRESH_READ, /* feox_db_refresh_read (xFilter) */
    NO_REFRESH    /* none: the caller's xBegin makes it, or the caller reads the shadow tables */
} check_refresh;

static int check_store(feox_vtab *vt, check_refresh refresh);

int feox_vtab_check_store(feox_vtab *vt)
{
    return check_store(vt, REFRESH);
}

int feox_vtab_check_store_to_read(feox_vtab *vt)
{
    return check_store(vt, REFRESH_READ);
}

int feox_vtab_check_store_without_refresh(feox_vtab *vt)
{
    return check_store(vt, NO_REFRESH);
}

static int check_store(feox_vtab *vt, check_refresh refresh)
{
    feox_actions_settle(vt->conn);
    if (vt->entry != NULL && vt->entry->store == NULL && vt->open_error != NULL) {
        /* connected without a store: try again */
        int rc = vt->dbs != NULL ? feox_db_reopen(vt) : reopen_store(vt);
        if (rc != SQLITE_OK) {
            return rc;
        }
    }
    if (vt->entry != NULL && vt->entry->store != NULL) {
        if (vt->dbs == NULL && feox_registry_is_inherited(vt->entry)) {
            int rc = reopen_store(vt);
            if (rc != SQLITE_OK) {
                return rc;
            }
        }
        if (vt->undo_pending) {
            feox_err e = feox_journal_undo_to(&vt->journal, vt->entry->store, 0);
            if (e != FEOX_OK) {
                return feox_vtab_engine_error(vt, e);
            }
            feox_journal_clear(&vt->journal);
            vt->undo_pending = false;
            feox_db_finish_rollback(vt); /* a cache loaded in the undone transaction goes */
            if (vt->entry->store == NULL) {
                return check_store(vt, refresh); /* and is loaded again */
            }
        }
        /* Database mode: the coherence check (db_mode.c; a no-op in the other modes, and inside
         * this connection's own write transaction). */
        return refresh == REFRESH_READ ? feox_db_refresh_read(vt)
               : refresh == REFRESH    ? feox_db_refresh(vt)
                                       : SQLITE_OK;
    }
    if (vt->open_error != NULL) {
        feox_vtab_set_error(vt, "%s", vt->open_error);
    } else {
        feox_vtab_set_error(vt,
                            "feox: %s: the store is not open (it could not be reopened after "
                            "RENAME)",
                            vt->label);
    }
    return SQLITE_CANTOPEN;
}

/* Does the store file of vt, a table with a store file and no store, not exist? (Removed or moved
 * outside feox; for a table without path, also its shadow table <t>_data dropped.) */
static bool store_file_missing(feox_vtab *vt)
{
    feox_location loc;
    feox_file_info info;
    char *err = NULL;
    memset(&loc, 0, sizeof loc);
    bool missing = vt->dbs == NULL && vt->entry != NULL && vt->entry->store == NULL &&
                   feox_location_resolve(vt->db, vt->schema, vt->name, &vt->options, &loc,
                                         &err) == SQLITE_OK &&
                   loc.kind == FEOX_LOC_FILE &&
                   feox_store_file_info(loc.file_path, &info) == FEOX_ERR_NOT_FOUND;
    sqlite3_free(err);
    feox_location_free(&loc);
    return missing;
}

int feox_vtab_check_table(feox_vtab *vt, char **report)
{
    *report = NULL;
    /* no refresh: the check reads the shadow tables itself, and a damaged row would make the
     * refresh fail before the check can name it (a no-op outside database mode) */
    int rc = check_store(vt, NO_REFRESH);
    if (rc != SQLITE_OK) {
        bool no_cache = vt->dbs != NULL && vt->entry != NULL && vt->entry->store == NULL;
        /* database mode, the cache could not be opened (damaged shadow tables): say what */
        if (no_cache) {
            return feox_db_check_tables(vt, rc, report);
        }
        if (rc == SQLITE_CANTOPEN && store_file_missing(vt)) {
            /* what is missing is the finding (check_store said which file) */
            *report = sqlite3_mprintf("%s", vt->base.zErrMsg != NULL ? vt->base.zErrMsg
                                                                     : sqlite3_errstr(rc));
            return *report != NULL ? SQLITE_OK : SQLITE_NOMEM;
        }
        return rc;
    }
    feox_err e = feox_check(vt->entry->store);
    if (e == FEOX_ERR_CORRUPT) {
        const char *detail = feox_error_detail();
        *report = sqlite3_mprintf("%s", detail[0] ? detail : "corrupt");
        return *report != NULL ? SQLITE_OK : SQLITE_NOMEM;
    }
    if (e != FEOX_OK && vt->dbs != NULL) {
        /* the cache could not catch up (a shadow table dropped or damaged since it loaded): the
         * tables' own check names the table and the cause, as for a cache never opened, where
         * the engine's error would only say "I/O error"; an I/O error itself is the answer */
        return feox_db_check_tables(vt, feox_db_engine_error(vt, e), report);
    }
    return e == FEOX_OK ? feox_db_check(vt, report) : feox_vtab_engine_error(vt, e);
}

int feox_vtab_read_only_error(feox_vtab *vt, const char *what)
{
    const char *file = vt->entry != NULL ? vt->entry->file_path : NULL;
    feox_table_error(vt, "%sthe store file '%s' is read-only %s", what, file ? file : "?",
                     FEOX_READ_ONLY_CAUSE);
    return SQLITE_READONLY;
}

int feox_vtab_engine_error(feox_vtab *vt, feox_err err)
{
    sqlite3_free(vt->base.zErrMsg);
    vt->base.zErrMsg = feox_table_err_message(vt->schema, vt->name, err);
    return feox_err_to_sqlite(err);
}
