/*
 * connection_actions.c — where a connection meets its pending file actions: feox_conn_find_vtab
 * (the SQL functions start there: a good moment to settle them, and to notice a table that
 * another connection dropped or renamed) and feox_conn_release (the last reference settles them
 * for good). Above connection.c (the connection's state) and
 * file_actions.c, which uses that state.
 */
#include "feox_ext.h"

SQLITE_EXTENSION_INIT3

void feox_conn_release(feox_conn *c)
{
    if (c == NULL || !feox_conn_unref(c)) {
        return;
    }
    /* SQLite has rolled back by now and every store of this connection is released: what its
     * DROP / RENAME / CREATE left pending is decided from the committed schema. */
    feox_actions_connection_closed(c);
    feox_conn_free(c);
}

/* A memory or store-file table that another connection of this process dropped or renamed
 * (pending or settled): this connection's schema may be out of date. SQLite notices a schema
 * change only when a statement names a table, and a "SELECT feox_incr(...)" names none. (In
 * database mode the call's own SQL on the shadow tables notices it: functions.c.) */
static bool may_be_stale(feox_conn *c, feox_vtab *vt)
{
    if (vt->dbs != NULL) {
        return false;
    }
    const char *db_file = sqlite3_db_filename(vt->db, vt->schema);
    return (vt->entry != NULL && feox_registry_is_dropped(vt->entry)) ||
           (db_file != NULL && feox_actions_unnamed_elsewhere(c, db_file, vt->name));
}

/* Let SQLite compare the schema this connection holds with the database's: a statement naming
 * the table does, and on a change reloads the schema (and connects a table of that name if one
 * exists again). True if the schema then shows the table. (The old vtab may stay on the
 * connection's list after the reload: a prepared statement that named it keeps it connected.) */
static bool verify_schema(sqlite3 *db, const char *schema, const char *table)
{
    char *sql = sqlite3_mprintf("SELECT 1 FROM \"%w\".\"%w\" WHERE 0", schema, table);
    sqlite3_stmt *stmt = NULL;
    if (sql != NULL && sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) == SQLITE_OK) {
        (void)sqlite3_step(stmt); /* no such table, BUSY...: the caller connects by name */
    }
    sqlite3_finalize(stmt);
    sqlite3_free(sql);
    return sqlite3_table_column_metadata(db, schema, table, NULL, NULL, NULL, NULL, NULL, NULL) ==
           SQLITE_OK;
}

feox_vtab *feox_conn_find_vtab(feox_conn *c, const char *schema, const char *table)
{
    feox_actions_settle(c); /* the SQL functions start here: a good moment to settle */
    feox_vtab *vt = feox_conn_lookup_vtab(c, schema, table);
    if (vt != NULL && may_be_stale(c, vt)) {
        bool shown = verify_schema(vt->db, vt->schema, vt->name);
        vt = shown ? feox_conn_lookup_vtab(c, schema, table) : NULL;
    }
    return vt;
}
