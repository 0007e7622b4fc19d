/*
 * storage_sqlite_schema.c — the DDL of the "sqlite" backend's shadow tables: create, drop and
 * rename them (each in one sqlite3_exec, inside the caller's transaction) and the xShadowName
 * predicate. The layout is written down once, in storage_sqlite.h.
 */
#include <string.h>

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
 * <sqlite's message>". */
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
    if (rc != SQLITE_OK && errmsg != NULL) {
        *errmsg = sqlite3_mprintf("feox: %s: %s: %s", table, what,
                                  cause != NULL ? cause : sqlite3_errstr(rc));
    }
    sqlite3_free(cause);
    return rc;
}

int feox_sqlite_storage_create(sqlite3 *db, const char *schema, const char *table, char **errmsg)
{
    char *sql = sqlite3_mprintf(
        "CREATE TABLE \"%w\".\"%w_data\"(key BLOB PRIMARY KEY, value, tag INTEGER NOT NULL,"
        " ts INTEGER NOT NULL, expires INTEGER, seq INTEGER NOT NULL) WITHOUT ROWID;"
        "CREATE TABLE \"%w\".\"%w_log\"(seq INTEGER PRIMARY KEY, key BLOB NOT NULL, ts INTEGER);"
        "CREATE TABLE \"%w\".\"%w_meta\"(name TEXT PRIMARY KEY, value) WITHOUT ROWID;"
        "INSERT INTO \"%w\".\"%w_meta\"(name, value) VALUES('format', %d), ('min_seq', 0);",
        schema, table, schema, table, schema, table, schema, table, FEOX_SQLITE_FORMAT);
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
