/*
 * feox_ext.c — the extension's entry point: sqlite3_feox_init registers the "feox" virtual-table
 * module and the feox_* SQL functions on one connection (feox_json_patch included).
 *
 *   sqlite3> .load ./feox
 *   sqlite3> CREATE VIRTUAL TABLE kv USING feox;
 *
 * Loadable build (build/feox.so): SQLite is provided by the host, reached through sqlite3_api.
 * Static build (-DSQLITE_CORE): call sqlite3_feox_init(db, &err, NULL) directly, or
 * sqlite3_auto_extension((void (*)(void))sqlite3_feox_init) once per process.
 */
#include "feox_ext.h"
#include "storage_sqlite.h"

/* sqlite3_api is defined in ext_api.c (the lowest file of ext/); SQLITE_EXTENSION_INIT2 sets it. */
SQLITE_EXTENSION_INIT3

static void conn_destroy(void *p)
{
    feox_conn_release(p);
}

#ifdef _WIN32
__declspec(dllexport)
#endif
    int sqlite3_feox_init(sqlite3 *db, char **pzErrMsg, const sqlite3_api_routines *pApi)
{
    int rc;
    SQLITE_EXTENSION_INIT2(pApi);
    feox_conn *conn = feox_conn_get(db);
    if (conn == NULL) {
        return SQLITE_NOMEM;
    }
    /* The "sqlite" backend (tables in the database) is known to the engine by name, as any
     * backend registered through feox_storage.h; a name already taken by another backend of the
     * host only means the engine's lookup by name finds that one (db_mode.c uses ours directly). */
    (void)feox_storage_register(feox_sqlite_storage());
    feox_conn_retain(conn); /* the module's reference: released by conn_destroy, even on error */
    rc = sqlite3_create_module_v2(db, "feox", &feox_module.module, conn, conn_destroy);
    if (rc == SQLITE_OK) {
        rc = feox_register_functions(db, conn);
    }
    if (rc == SQLITE_OK) {
        rc = feox_register_json_function(db);
    }
    if (rc != SQLITE_OK && pzErrMsg != NULL) {
        *pzErrMsg = sqlite3_mprintf("feox: cannot register: %s", sqlite3_errstr(rc));
    }
    feox_conn_release(conn);
    return rc;
}
