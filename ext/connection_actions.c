/*
 * connection_actions.c — where a connection meets its pending file actions: feox_conn_find_vtab
 * (the SQL functions start there: a good moment to settle them) and feox_conn_release (the last
 * reference settles them for good). Above connection.c (the connection's state) and
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

feox_vtab *feox_conn_find_vtab(feox_conn *c, const char *schema, const char *table)
{
    feox_actions_settle(c); /* the SQL functions start here: a good moment to settle */
    return feox_conn_lookup_vtab(c, schema, table);
}
