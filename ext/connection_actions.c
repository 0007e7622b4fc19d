/*
 * connection_actions.c — where a connection meets its pending file actions: feox_conn_find_vtab
 * (the SQL functions start there: a good moment to settle them, and to notice a table that
 * another connection dropped or renamed) and feox_conn_release (the last reference settles them
 * for good). Above connection.c (the connection's state) and file_actions.c, which uses that
 * state.
 */
#include <stdint.h>
#include <string.h>

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
    return vt->dbs == NULL && ((vt->entry != NULL && feox_registry_is_dropped(vt->entry)) ||
                               feox_actions_unnamed_elsewhere(c, vt->db, vt->schema, vt->name));
}

/* Run "<prefix>SELECT 1 FROM schema.table WHERE 0" (NULL: it could not be prepared). */
static sqlite3_stmt *prepare_on_table(sqlite3 *db, const char *prefix, const char *schema,
                                      const char *table)
{
    char *sql = sqlite3_mprintf("%sSELECT 1 FROM \"%w\".\"%w\" WHERE 0", prefix, schema, table);
    sqlite3_stmt *stmt = NULL;
    if (sql != NULL && sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK) {
        stmt = NULL;
    }
    sqlite3_free(sql);
    return stmt;
}

/* Is vt the object SQLite now uses for its table? The plan of a scan names it: EXPLAIN shows
 * the VOpen's argument as "vtab:<address>" (SQLite's printf, as sqlite3_mprintf's %p). */
static bool in_use_by_sqlite(feox_vtab *vt)
{
    char *mine = sqlite3_mprintf("vtab:%p", (void *)&vt->base);
    sqlite3_stmt *plan = prepare_on_table(vt->db, "EXPLAIN ", vt->schema, vt->name);
    bool found = false;
    while (mine != NULL && plan != NULL && !found && sqlite3_step(plan) == SQLITE_ROW) {
        const char *p4 = (const char *)sqlite3_column_text(plan, 5); /* addr, opcode, p1-p3, p4 */
        found = p4 != NULL && strcmp(p4, mine) == 0;
    }
    sqlite3_finalize(plan);
    sqlite3_free(mine);
    return found;
}

/* Let SQLite compare the schema this connection holds with the database's: a statement naming
 * the table does, reloads the schema on a change and connects a table of that name if there is
 * one again (the newest vtab then). The vtab to use after that, or NULL. The old vtab is not
 * always gone from the connection's list: a prepared statement that named it keeps it connected
 * after the reload, so it is used only if SQLite still uses it (the change was not committed,
 * or this connection's read transaction does not see it). */
static feox_vtab *verify_schema(feox_conn *c, feox_vtab *old, const char *schema, const char *table)
{
    uintptr_t old_address = (uintptr_t)old; /* old may be freed by the step (disconnected) */
    sqlite3_stmt *stmt = prepare_on_table(old->db, "", old->schema, old->name);
    if (stmt != NULL) {
        (void)sqlite3_step(stmt); /* no such table, BUSY...: the caller connects by name */
    }
    sqlite3_finalize(stmt);
    feox_vtab *vt = feox_conn_lookup_vtab(c, schema, table);
    return (uintptr_t)vt != old_address || (vt != NULL && in_use_by_sqlite(vt)) ? vt : NULL;
}

feox_vtab *feox_conn_find_vtab(feox_conn *c, const char *schema, const char *table)
{
    feox_actions_settle(c); /* the SQL functions start here: a good moment to settle */
    feox_vtab *vt = feox_conn_lookup_vtab(c, schema, table);
    if (vt != NULL && may_be_stale(c, vt)) {
        vt = verify_schema(c, vt, schema, table);
    }
    return vt;
}
