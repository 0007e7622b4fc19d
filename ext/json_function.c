/*
 * json_function.c — feox_json_patch(doc, patch): RFC 6902 JSON Patch as a pure SQL function.
 *
 *   UPDATE kv SET value = feox_json_patch(value, '[{"op":"add","path":"/n","value":1}]')
 *    WHERE key = 'doc:1';
 *   SELECT feox_json_patch('{"a":1}', '[{"op":"replace","path":"/a","value":2}]');  -- {"a":2}
 *
 * The DML form of feox_patch(tab, key, patch): it touches no table, so the UPDATE around it is
 * what writes, and a statement replicator (rqlite) replicates that UPDATE like any other; the
 * result depends on its arguments only (registered SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS, so
 * it may also appear in indexes, CHECK constraints, triggers and views). It is the engine's
 * patch (feox_json_patch_document in feox.h): the same operations, all or nothing, and numbers
 * the patch does not touch keep their exact text.
 *
 *   doc, patch   TEXT (other types are read as their text; a BLOB as its bytes)
 *   result       the patched document as TEXT, compact; NULL if doc or patch is NULL
 *   errors       SQLITE_ERROR "feox_json_patch: <why>": doc or patch not valid JSON, patch not an
 *                array, an operation that fails (a "test" that does not hold included), e.g.
 *                "feox_json_patch: operation 0 (test): value at /a differs"; so an UPDATE with a
 *                failing patch changes nothing. SQLITE_NOMEM when out of memory.
 */
#include "feox_ext.h"

SQLITE_EXTENSION_INIT3

/* feox_json_patch(doc, patch) */
static void fn_json_patch(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    if (sqlite3_value_type(argv[0]) == SQLITE_NULL || sqlite3_value_type(argv[1]) == SQLITE_NULL) {
        return; /* NULL, as SQL functions answer a NULL argument */
    }
    const char *doc = (const char *)sqlite3_value_text(argv[0]);
    size_t doc_len = (size_t)sqlite3_value_bytes(argv[0]);
    const char *patch = (const char *)sqlite3_value_text(argv[1]);
    size_t patch_len = (size_t)sqlite3_value_bytes(argv[1]);
    /* Reading argv[1] never moves argv[0]'s text (distinct values): doc stays valid. */
    if (doc == NULL || patch == NULL) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    char *result = NULL;
    size_t result_len = 0;
    feox_err e = feox_json_patch_document(doc, doc_len, patch, patch_len, &result, &result_len);
    if (e != FEOX_OK) {
        char *msg = sqlite3_mprintf(
            "feox_json_patch: %s", feox_error_detail()[0] ? feox_error_detail() : feox_strerror(e));
        if (msg == NULL || e == FEOX_ERR_NOMEM) {
            sqlite3_free(msg);
            sqlite3_result_error_nomem(ctx);
            return;
        }
        sqlite3_result_error(ctx, msg, -1);
        sqlite3_result_error_code(ctx,
                                  e == FEOX_ERR_JSON_PATCH ? SQLITE_ERROR : feox_err_to_sqlite(e));
        sqlite3_free(msg);
        return;
    }
    sqlite3_result_text64(ctx, result, result_len, SQLITE_TRANSIENT, SQLITE_UTF8);
    feox_free(result);
}

int feox_register_json_function(sqlite3 *db)
{
    return sqlite3_create_function_v2(db, "feox_json_patch", 2,
                                      SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS, NULL,
                                      fn_json_patch, NULL, NULL, NULL);
}
