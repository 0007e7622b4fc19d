/*
 * storage_sqlite_schema.c — the DDL of the "sqlite" backend's shadow tables: create, drop and
 * rename them (each in one sqlite3_exec, inside the caller's transaction) and the xShadowName
 * predicate. The layout is written down once, in storage_sqlite.h.
 */
#include <stdbool.h>
#include <string.h>

#include "feox_ext.h"
#include "storage_sqlite.h"

SQLITE_EXTENSION_INIT3

static const char *const shadow_suffixes[] = {"data", "log", "meta"};

int feox_sqlite_storage_shadow_name(const char *suffix)
{
    if (suffix == NULL) {
        return 0;
    }
    for (size_t i = 0; i < sizeof shadow_suffixes / sizeof shadow_suffixes[0]; i++) {
        if (sqlite3_stricmp(suffix, shadow_suffixes[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Run sql (freed here; NULL = out of memory) and report a failure as "feox: <table>: <what>:
 * <sqlite's message>", with SQLite's extended code (SQLITE_IOERR_WRITE, not SQLITE_IOERR). */
static int exec_owned(sqlite3 *db, char *sql, const char *table, const char *what, char **errmsg)
{
    if (errmsg != NULL) {
        *errmsg = NULL;
    }
    if (sql == NULL) {
        return SQLITE_NOMEM;
    }
    char *cause = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &cause);
    sqlite3_free(sql);
    if (rc != SQLITE_OK) {
        rc = feox_sqlite_failure(db, rc);
    }
    if (rc != SQLITE_OK && errmsg != NULL) {
        *errmsg = sqlite3_mprintf("feox: %s: %s: %s", table, what,
                                  cause != NULL ? cause : sqlite3_errstr(rc));
    }
    sqlite3_free(cause);
    return rc;
}

/* A name for the expiry index of table that no object of schema has: "<table>_data_expires",
 * else with "_2", "_3", ... after it (a renamed table keeps its index's first name). NULL on out
 * of memory or error (*rc says which). */
static char *free_index_name(sqlite3 *db, const char *schema, const char *table, int *rc)
{
    char *sql = sqlite3_mprintf("SELECT 1 FROM \"%w\".sqlite_schema WHERE name = ?1 COLLATE NOCASE",
                                schema);
    sqlite3_stmt *s = NULL;
    *rc = sql == NULL ? SQLITE_NOMEM : sqlite3_prepare_v2(db, sql, -1, &s, NULL);
    sqlite3_free(sql);
    char *name = NULL;
    for (int n = 1; *rc == SQLITE_OK && n < 1000; n++) {
        name = n == 1 ? sqlite3_mprintf("%s_data_expires", table)
                      : sqlite3_mprintf("%s_data_expires_%d", table, n);
        if (name == NULL) {
            *rc = SQLITE_NOMEM;
            break;
        }
        sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
        int step = sqlite3_step(s);
        sqlite3_reset(s);
        if (step == SQLITE_DONE) {
            break; /* free */
        }
        sqlite3_free(name);
        name = NULL;
        *rc = step == SQLITE_ROW ? SQLITE_OK : feox_sqlite_failure(db, step);
    }
    sqlite3_finalize(s);
    if (name == NULL && *rc == SQLITE_OK) {
        *rc = SQLITE_ERROR;
    }
    return name;
}

static const char index_tail[] = "(expires) WHERE expires IS NOT NULL";

int feox_sqlite_storage_expiry_index(sqlite3 *db, const char *schema, const char *table,
                                     bool create, char **name, char **errmsg)
{
    *name = NULL;
    if (errmsg != NULL) {
        *errmsg = NULL;
    }
    /* SQLite keeps an index's tbl_name (and its SQL) in step with renames of its table. */
    char *sql = sqlite3_mprintf("SELECT name FROM \"%w\".sqlite_schema WHERE type = 'index'"
                                " AND tbl_name = ?1 COLLATE NOCASE AND sql LIKE '%%' || ?2",
                                schema);
    char *data = sqlite3_mprintf("%s_data", table);
    sqlite3_stmt *s = NULL;
    int rc = sql == NULL || data == NULL ? SQLITE_NOMEM
                                         : sqlite3_prepare_v2(db, sql, -1, &s, NULL);
    sqlite3_free(sql);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(s, 1, data, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, index_tail, -1, SQLITE_STATIC);
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            *name = sqlite3_mprintf("%s", (const char *)sqlite3_column_text(s, 0));
            rc = *name == NULL ? SQLITE_NOMEM : SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            rc = SQLITE_OK;
        }
    }
    if (rc != SQLITE_OK) {
        rc = feox_sqlite_failure(db, rc);
    }
    sqlite3_finalize(s);
    if (rc == SQLITE_OK && *name == NULL && create) {
        char *fresh = free_index_name(db, schema, table, &rc);
        if (fresh != NULL) {
            rc = exec_owned(db, sqlite3_mprintf("CREATE INDEX \"%w\".\"%w\" ON \"%w\"%s", schema,
                                            fresh, data, index_tail),
                            table, "making the expiry index", errmsg);
            if (rc == SQLITE_OK) {
                *name = fresh;
            } else {
                sqlite3_free(fresh);
            }
        }
    }
    sqlite3_free(data);
    if (rc != SQLITE_OK && errmsg != NULL && *errmsg == NULL) {
        *errmsg = sqlite3_mprintf("feox: %s: finding the expiry index: %s", table,
                                  sqlite3_errmsg(db));
    }
    return rc;
}

int feox_sqlite_storage_create(sqlite3 *db, const char *schema, const char *table, char **errmsg)
{
    int rc;
    char *index = free_index_name(db, schema, table, &rc);
    if (index == NULL) {
        if (errmsg != NULL) {
            *errmsg = sqlite3_mprintf("feox: %s: creating the shadow tables: %s", table,
                                      sqlite3_errstr(rc));
        }
        return rc;
    }
    char *sql = sqlite3_mprintf(
        "CREATE TABLE \"%w\".\"%w_data\"(key BLOB PRIMARY KEY, value, tag INTEGER NOT NULL,"
        " ts INTEGER NOT NULL, expires INTEGER, seq INTEGER NOT NULL) WITHOUT ROWID;"
        "CREATE TABLE \"%w\".\"%w_log\"(seq INTEGER PRIMARY KEY, key BLOB NOT NULL, ts INTEGER);"
        "CREATE TABLE \"%w\".\"%w_meta\"(name TEXT PRIMARY KEY, value) WITHOUT ROWID;"
        "INSERT INTO \"%w\".\"%w_meta\"(name, value) VALUES('format', %d), ('min_seq', 0);"
        "CREATE INDEX \"%w\".\"%w\" ON \"%w_data\"%s;",
        schema, table, schema, table, schema, table, schema, table, FEOX_SQLITE_FORMAT, schema,
        index, table, index_tail);
    sqlite3_free(index);
    return exec_owned(db, sql, table, "creating the shadow tables", errmsg);
}

int feox_sqlite_storage_drop(sqlite3 *db, const char *schema, const char *table, char **errmsg)
{
    char *sql = sqlite3_mprintf("DROP TABLE IF EXISTS \"%w\".\"%w_data\";"
                                "DROP TABLE IF EXISTS \"%w\".\"%w_log\";"
                                "DROP TABLE IF EXISTS \"%w\".\"%w_meta\";",
                                schema, table, schema, table, schema, table);
    return exec_owned(db, sql, table, "dropping the shadow tables", errmsg);
}

int feox_sqlite_storage_rename(sqlite3 *db, const char *schema, const char *from, const char *to,
                               char **errmsg)
{
    char *sql = sqlite3_mprintf("ALTER TABLE \"%w\".\"%w_data\" RENAME TO \"%w_data\";"
                                "ALTER TABLE \"%w\".\"%w_log\" RENAME TO \"%w_log\";"
                                "ALTER TABLE \"%w\".\"%w_meta\" RENAME TO \"%w_meta\";",
                                schema, from, to, schema, from, to, schema, from, to);
    return exec_owned(db, sql, from, "renaming the shadow tables", errmsg);
}
