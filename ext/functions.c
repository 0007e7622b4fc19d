/*
 * functions.c — the SQL functions of the extension.
 *
 *   feox_incr(tab, key, delta [, ttl])        -> the new INTEGER value
 *   feox_cas(tab, key, expected, new [, ttl]) -> 1 if this call swapped, else 0
 *   feox_patch(tab, key, patch [, ttl])       -> the patched JSON document (TEXT)
 *   feox_stats(tab)                           -> JSON object: len, memory_usage, max_memory and
 *                                                every counter of feox_stats
 *   feox_flush(tab)                           -> 1 once everything is durable
 *   feox_check(tab)                           -> 'ok', or the problems found (database mode:
 *                                                also where the cache and <t>_data differ)
 *   feox_compact(tab)                         -> 1 once the store file holds only live data
 *   feox_sweep(tab)                           -> how many expired records were removed
 *
 * tab names a feox table of this connection: 'kv' or 'schema.kv', each part bare or quoted as in
 * SQL ('"we""ird".kv', 'main.[x.y]'; see parse_table_name). If the table was not used yet
 * by this connection, a no-op "SELECT 1 FROM tab WHERE 0" makes SQLite connect it. If a
 * transaction is open and the table has not joined it, a writing function first runs the no-op
 * "UPDATE tab SET key=key WHERE 0", which makes SQLite call xBegin, so the function's changes are
 * undo-journalled like any UPDATE and follow ROLLBACK / ROLLBACK TO. In autocommit mode the change
 * is applied directly (it is atomic in the store; a later failure of the same statement does not
 * undo it). A table in database mode (db_mode.c) instead runs every writing call inside
 * "SAVEPOINT feox_fn" with the table enlisted in it (feox_db_fn_begin / feox_db_fn_end, around
 * the call: run_write): its changes are written to the shadow tables in the user's transaction,
 * or, in autocommit, committed together when the call returns.
 *
 * TTL: incr, cas and patch keep the record's expiry unless a ttl argument is given (NULL = keep,
 * 0 = remove, > 0 = seconds from now). Keys follow the table's key type (value_codec.c).
 * incr works on INTEGER values, on REAL values that hold a whole number (some bindings send every
 * number as REAL) and on 8-byte BLOBs (the engine's counter format), and stores an INTEGER; a
 * fractional REAL is an error, for the value and for the delta alike. It saturates at the i64
 * limits. An INTEGER is incremented by the engine's atomic increment; a REAL or an 8-byte BLOB is
 * converted by compare-and-swap; a missing key is created with insert-if-absent (retrying if
 * another writer wins), so concurrent calls never lose an update. cas compares SQL type (record
 * tag) and bytes: INTEGER 5 matches INTEGER 5, not TEXT '5' and not REAL 5.0. patch reads a TEXT
 * or BLOB value as the JSON document (the engine's feox_json_patch, which keeps the tag, told to
 * patch only a value of the tag looked at: a writer in between makes it look again); an
 * INTEGER or REAL is the JSON number its SQL text spells, patched here and swapped in as TEXT by
 * compare-and-swap (as the DML form feox_json_patch(value, patch) would store it); NULL is an
 * error.
 *
 * Read-only: incr, cas, patch, sweep and compact change the store, so on a connection that may not
 * write the table's database (mode=ro, a read-only file, PRAGMA query_only) they fail with
 * SQLITE_READONLY and SQLite's own "attempt to write a readonly database", as an INSERT does,
 * before touching anything. stats, flush and check stay allowed.
 *
 * clock='log' (logical_clock.c): incr, cas, patch and sweep are refused with a message naming the
 * DML forms; in a SELECT, a statement replicator would not replicate them.
 *
 * Timestamps: the writes draw automatic timestamps with FEOX_WRITE_TS_INT64, so ts never passes
 * INT64_MAX (SQL's integer range); a record already at that ts makes the write an error.
 *
 * Registered with SQLITE_UTF8 | SQLITE_DIRECTONLY (they have side effects: not usable from
 * views/triggers of an untrusted schema), never SQLITE_DETERMINISTIC.
 */
#include <string.h>

#include "feox_ext.h"

SQLITE_EXTENSION_INIT3

static void fn_error(sqlite3_context *ctx, int rc, char *msg)
{
    sqlite3_result_error(ctx, msg ? msg : "feox: out of memory", -1);
    sqlite3_result_error_code(ctx, msg ? rc : SQLITE_NOMEM);
    sqlite3_free(msg);
}

static void fn_engine_error(sqlite3_context *ctx, feox_vtab *vt, feox_err e)
{
    /* The functions never give an explicit ts: OLDER_TIMESTAMP means the record's ts is already
     * the largest an automatic one may take, an error rather than a conflict (as in xUpdate). */
    if (vt->dbs != NULL && e != FEOX_ERR_OLDER_TIMESTAMP) {
        /* the backend's own code and message; fn_error takes (frees) the message */
        int rc = feox_db_engine_error(vt, e);
        fn_error(ctx, rc, vt->base.zErrMsg);
        vt->base.zErrMsg = NULL;
        return;
    }
    int rc = e == FEOX_ERR_OLDER_TIMESTAMP ? SQLITE_ERROR : feox_err_to_sqlite(e);
    fn_error(ctx, rc, feox_table_err_message(vt->schema, vt->name, e));
}

/* Run sql (a no-op statement naming the table) to make SQLite connect the table and, for a
 * write, call xBegin on it when a transaction is open. */
static int touch_table(sqlite3 *db, const char *schema, const char *table, bool write, char **err)
{
    const char *fmt_q =
        write ? "UPDATE \"%w\".\"%w\" SET key=key WHERE 0" : "SELECT 1 FROM \"%w\".\"%w\" WHERE 0";
    const char *fmt_u =
        write ? "UPDATE \"%w\" SET key=key WHERE 0" : "SELECT 1 FROM \"%w\" WHERE 0";
    char *sql = schema ? sqlite3_mprintf(fmt_q, schema, table) : sqlite3_mprintf(fmt_u, table);
    sqlite3_stmt *stmt = NULL;
    int rc;
    if (sql == NULL) {
        return SQLITE_NOMEM;
    }
    rc = sqlite3_prepare_v2(db, sql, -1, &stmt, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(stmt);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    if (rc != SQLITE_OK) {
        rc = feox_sqlite_failure(db, rc); /* SQLITE_BUSY_SNAPSHOT as a native write says */
        *err = sqlite3_mprintf("%s", sqlite3_errmsg(db));
    }
    sqlite3_finalize(stmt);
    sqlite3_free(sql);
    return rc;
}

/* Connect the table a call names (SQLite connects it while it prepares the touch). A write inside
 * BEGIN touches it with a write, so that the transaction takes the write lock first, waiting
 * out busy_timeout as a native write would: a read first would open the transaction's read
 * transaction, and SQLite then refuses the write lock at once while another connection holds it
 * (db_mode.c connects such a table without reading it). Where the write is refused (a read-only
 * database, query_only), a read touch connects it and may_write says why, as for any write. */
static int connect_table(sqlite3 *db, const char *schema, const char *table, bool write, char **err)
{
    if (write && !sqlite3_get_autocommit(db)) {
        int rc = touch_table(db, schema, table, true, err);
        if ((rc & 0xff) != SQLITE_READONLY) {
            return rc;
        }
        sqlite3_free(*err);
        *err = NULL;
    }
    return touch_table(db, schema, table, false, err);
}

/* "PRAGMA query_only" run once, for when the cached statement below cannot be prepared. */
static int query_only_uncached(sqlite3 *db, bool *on)
{
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2(db, "PRAGMA query_only", -1, &stmt, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(stmt);
        *on = rc == SQLITE_ROW && sqlite3_column_int(stmt, 0) != 0;
        rc = rc == SQLITE_ROW ? SQLITE_OK : feox_sqlite_failure(db, rc);
    }
    sqlite3_finalize(stmt);
    return rc;
}

/* Is PRAGMA query_only on? SQLite has no C API for it. A flag pragma sets its flag when it is
 * prepared, and when it runs it expires every prepared statement of the connection (OP_Expire;
 * SQLite 3.40.1, checked by tests/python/test_readonly.py). So each vtab keeps the answer of one
 * "PRAGMA query_only" and a sentinel statement, "SELECT 1", prepared with it: the answer holds
 * until sqlite3_expired() says the sentinel was expired, and then both are made again. (A PRAGMA
 * statement bakes the value in when prepared and expires itself after every run, so it cannot
 * be the sentinel. The sentinel reads no table: "SELECT * FROM pragma_query_only" did, and after
 * sqlite3_deserialize SQLite 3.40.1 prepared it again against its eponymous table's freed
 * schema, a crash: tests/python/test_deserialize.py.) Cost: about 0.03 us per call instead of
 * 1-2 us for a prepare and step per statement run. The sentinel is finalized in xDisconnect,
 * which SQLite runs before sqlite3_close checks for unfinalized statements. (A "PRAGMA
 * query_only = 1" prepared and never run sets the flag without expiring anything: feox sees it
 * once something expires the statements; an INSERT is refused at once.) */
/* Can this host say whether a statement was expired? sqlite3_expired() is deprecated: a host built
 * with SQLITE_OMIT_DEPRECATED (better-sqlite3 is) leaves it out of the extension API table, and
 * calling it there jumps to NULL. Without it the flag is read again on every call (~1 us). */
static bool can_tell_expired(void)
{
#ifdef SQLITE_CORE
    return true;
#else
    return sqlite3_api->expired != NULL;
#endif
}

static int query_only(feox_vtab *vt, sqlite3 *db, bool *on)
{
    if (vt->query_only_stmt != NULL && vt->query_only_known && can_tell_expired() &&
        !sqlite3_expired(vt->query_only_stmt)) {
        *on = vt->query_only_on;
        return SQLITE_OK;
    }
    vt->query_only_known = false;
    sqlite3_finalize(vt->query_only_stmt);
    vt->query_only_stmt = NULL;
    int rc = query_only_uncached(db, on);
    if (rc == SQLITE_OK && can_tell_expired() &&
        sqlite3_prepare_v3(db, "SELECT 1", -1, SQLITE_PREPARE_PERSISTENT, &vt->query_only_stmt,
                           NULL) == SQLITE_OK) {
        vt->query_only_known = true; /* else asked again next time */
        vt->query_only_on = *on;
    }
    return rc;
}

/* May this connection write vt's store? Not when its database is read-only (mode=ro, the shell's
 * -readonly, a file it may not write) or PRAGMA query_only is on: then it reports SQLITE_READONLY
 * with SQLite's own message, exactly as an INSERT into the table would. */
static bool may_write(sqlite3_context *ctx, sqlite3 *db, feox_vtab *vt)
{
    bool on = sqlite3_db_readonly(db, vt->schema) == 1;
    if (!on) {
        int rc = query_only(vt, db, &on);
        if (rc != SQLITE_OK) {
            fn_error(ctx, rc, sqlite3_mprintf("%s", sqlite3_errmsg(db)));
            return false;
        }
    }
    if (on) {
        fn_error(ctx, SQLITE_READONLY, sqlite3_mprintf("attempt to write a readonly database"));
        return false;
    }
    return true;
}

/* The table found by name, pinned (feox_vtab.fn_pins): SQL the call runs may reload the schema
 * and disconnect it, and it must stay allocated until the call lets go of it (unpin). */
static feox_vtab *find_pinned(feox_conn *conn, const char *schema, const char *table)
{
    feox_vtab *vt = feox_conn_find_vtab(conn, schema, table);
    if (vt != NULL) {
        vt->fn_pins++;
    }
    return vt;
}

/* The call is done with vt: if the schema was reloaded meanwhile, SQLite has disconnected it,
 * and xDisconnect (vtab.c) left the freeing to this last unpin. */
static void unpin(feox_vtab *vt)
{
    if (vt != NULL && --vt->fn_pins == 0 && vt->disconnected) {
        (void)vt->base.pModule->xDisconnect(&vt->base);
    }
}

/* ---- the table-name argument ------------------------------------------------------------------
 * It reads as SQL names do: [schema.]table, each part bare or quoted ("...", [...] or `...`; a
 * doubled " or ` inside stands for one). A bare part before the table is a schema only if the
 * connection has a database of that name (sqlite3_txn_state knows it without running SQL): so
 * 'main.kv' and 'aux.kv' keep meaning what they mean in SQL, whatever tables exist, and a table
 * whose name has a dot is reached by its bare name when no schema has the name before the dot
 * (always as '"x.y"' or 'main."x.y"'). Each dot is tried in turn, for a schema whose name has a
 * dot ('a.b.kv' is schema "a.b" when there is no schema "a"); a bare table part runs to the end
 * ('main.x.y' is table "x.y" of main). */

/* A name split into its parts (schema NULL when none was given). A plain name ('kv', the common
 * case) is the argument's own text: nothing is copied. */
typedef struct table_name {
    char *schema;      /* sqlite3_malloc'd */
    const char *table; /* the argument's text, or owned_table */
    char *owned_table; /* sqlite3_malloc'd, or NULL */
} table_name;

static void table_name_free(table_name *n)
{
    sqlite3_free(n->schema);
    sqlite3_free(n->owned_table);
}

static char closing_quote(char open)
{
    return open == '"' ? '"' : open == '`' ? '`' : open == '[' ? ']' : '\0';
}

/* The quoted part at *p (which starts with a quote), unquoted; *p moves past it. NULL with *bad
 * set if it has no closing quote, NULL alone when out of memory. */
static char *unquote_part(const char **p, bool *bad)
{
    char close = closing_quote(**p);
    const char *s = *p + 1;
    char *out = sqlite3_malloc64(strlen(s) + 1);
    size_t n = 0;
    if (out == NULL) {
        return NULL;
    }
    for (;; s++) {
        if (*s == '\0') {
            sqlite3_free(out);
            *bad = true;
            return NULL;
        }
        if (*s == close) {
            if (close == ']' || s[1] != close) {
                break;
            }
            s++; /* a doubled quote */
        }
        out[n++] = *s;
    }
    out[n] = '\0';
    *p = s + 1;
    return out;
}

/* The table part after a schema's dot at p, which must end the text: quoted, or bare to the end
 * (not empty: "main." is no name). */
static char *table_part(const char *p, bool *bad)
{
    if (*p == '\0') {
        *bad = true;
        return NULL;
    }
    if (closing_quote(*p) == '\0') {
        return sqlite3_mprintf("%s", p);
    }
    char *part = unquote_part(&p, bad);
    if (part != NULL && *p != '\0') {
        sqlite3_free(part);
        *bad = true;
        return NULL;
    }
    return part;
}

/* Is there a database of this name in the connection (main, temp or attached)? */
static bool is_schema(sqlite3 *db, const char *name, size_t len)
{
    char *schema = sqlite3_mprintf("%.*s", (int)len, name);
    bool found = schema != NULL && sqlite3_txn_state(db, schema) >= 0;
    sqlite3_free(schema);
    return found;
}

/* A bare first part: the schema is the text before the first dot that ends a schema's name. */
static void split_bare(sqlite3 *db, const char *full, table_name *n, bool *bad)
{
    for (const char *dot = strchr(full, '.'); dot != NULL; dot = strchr(dot + 1, '.')) {
        if (is_schema(db, full, (size_t)(dot - full))) {
            n->schema = sqlite3_mprintf("%.*s", (int)(dot - full), full);
            n->table = n->owned_table = n->schema != NULL ? table_part(dot + 1, bad) : NULL;
            return;
        }
    }
    n->table = full;
}

/* Split the argument full into n. SQLITE_OK, SQLITE_ERROR for a malformed name (an unclosed
 * quote, text after a quoted table) or SQLITE_NOMEM. */
static int parse_table_name(sqlite3 *db, const char *full, table_name *n)
{
    bool bad = false;
    n->schema = n->owned_table = NULL;
    n->table = NULL;
    if (closing_quote(*full) == '\0') {
        split_bare(db, full, n, &bad);
    } else {
        const char *p = full;
        char *first = unquote_part(&p, &bad);
        if (first != NULL && *p == '\0') {
            n->table = n->owned_table = first;
        } else if (first != NULL && *p == '.') {
            n->schema = first;
            n->table = n->owned_table = table_part(p + 1, &bad);
        } else {
            sqlite3_free(first);
            bad = bad || first != NULL;
        }
    }
    if (n->table == NULL) {
        table_name_free(n);
        n->schema = n->owned_table = NULL;
        return bad ? SQLITE_ERROR : SQLITE_NOMEM;
    }
    return SQLITE_OK;
}

/* The name as SQLite's messages show it, "table" or "schema.table" (unquoted), is printed with
 * "%s%s%s" and these three arguments: shown_schema(n), shown_dot(n), n->table. */
static const char *shown_schema(const table_name *n)
{
    return n->schema != NULL ? n->schema : "";
}

static const char *shown_dot(const table_name *n)
{
    return n->schema != NULL ? "." : "";
}

/* A table in the database could not be brought up to date (feox_vtab_check_store) or join the
 * call's transaction (feox_db_fn_begin): say why. If its shadow tables are gone because another
 * connection dropped the table, SQLite's own words for the table (checked only here, on the error
 * path): "no such table: kv", not the shadow table the failing statement named. */
static void report_table_error(sqlite3_context *ctx, sqlite3 *db, const table_name *n, int rc,
                               const char *err)
{
    char *touch_err = NULL;
    if (rc == SQLITE_ERROR && err != NULL && strstr(err, "no such table") != NULL &&
        touch_table(db, n->schema, n->table, false, &touch_err) != SQLITE_OK && touch_err != NULL &&
        strncmp(touch_err, "no such table", 13) == 0) {
        fn_error(ctx, SQLITE_ERROR,
                 sqlite3_mprintf("feox: no such table: %s%s%s", shown_schema(n), shown_dot(n),
                                 n->table));
    } else {
        fn_error(ctx, rc, sqlite3_mprintf("%s", err ? err : sqlite3_errstr(rc)));
    }
    sqlite3_free(touch_err);
}

/* Attempts at resolving a table whose schema keeps being reloaded under the call. */
#define RESOLVE_ATTEMPTS 3

/* What a function does with the table it names (resolve_table). */
typedef enum resolve_use {
    USE_READ,  /* reads the cache: brought up to date first (database mode) */
    USE_WRITE, /* changes the store: the table joins an open transaction */
    USE_CHECK  /* feox_check: its store check is part of the check (feox_vtab_check_table) */
} resolve_use;

/* The feox table named by argv[0] in this connection, pinned (unpin it when done), or NULL after
 * reporting an error. */
static feox_vtab *resolve_table(sqlite3_context *ctx, sqlite3_value *name_arg, resolve_use use)
{
    bool write = use == USE_WRITE;
    feox_conn *conn = sqlite3_user_data(ctx);
    sqlite3 *db = sqlite3_context_db_handle(ctx);
    const char *arg = (const char *)sqlite3_value_text(name_arg);
    table_name parsed;
    feox_vtab *vt = NULL;
    char *err = NULL;
    int rc = SQLITE_OK;

    if (arg == NULL) {
        fn_error(ctx, SQLITE_MISUSE, sqlite3_mprintf("feox: the table name may not be NULL"));
        return NULL;
    }
    if ((rc = parse_table_name(db, arg, &parsed)) != SQLITE_OK) {
        fn_error(ctx, rc,
                 rc == SQLITE_NOMEM ? NULL
                                    : sqlite3_mprintf("feox: malformed table name: %s", arg));
        return NULL;
    }
    const char *schema = parsed.schema, *table = parsed.table;
    const char *shown_s = shown_schema(&parsed), *shown_d = shown_dot(&parsed);
    for (int attempt = 1;; attempt++) {
        vt = find_pinned(conn, schema, table);
        if (vt == NULL) {
            rc = connect_table(db, schema, table, write, &err);
            vt = rc == SQLITE_OK ? find_pinned(conn, schema, table) : NULL;
        } else if (use == USE_CHECK && vt->dbs != NULL) {
            /* feox_check reports shadow tables that are gone: first make sure the table itself
             * is still there (another connection may have dropped or replaced it; the touch
             * reloads this connection's schema, and opens no cursor: nothing is read) */
            rc = touch_table(db, schema, table, false, &err);
            if (rc != SQLITE_OK) {
                unpin(vt);
                vt = NULL;
            }
        }
        if (vt != NULL && write && !may_write(ctx, db, vt)) {
            unpin(vt);
            vt = NULL;
            break;
        }
        if (vt != NULL && write && vt->dbs == NULL && !sqlite3_get_autocommit(db) && !vt->in_txn) {
            unpin(vt);
            rc = touch_table(db, schema, table, true, &err);
            vt = rc == SQLITE_OK ? find_pinned(conn, schema, table) : NULL;
        }
        if (rc != SQLITE_OK) {
            if (err != NULL && strncmp(err, "no such table", 13) == 0) {
                fn_error(ctx, SQLITE_ERROR,
                         sqlite3_mprintf("feox: no such table: %s%s%s", shown_s, shown_d, table));
            } else {
                bool named = err != NULL && strncmp(err, "feox: ", 6) == 0; /* said once */
                fn_error(ctx, rc,
                         named ? sqlite3_mprintf("%s", err)
                               : sqlite3_mprintf("feox: %s%s%s: %s", shown_s, shown_d, table,
                                                 err ? err : "error"));
            }
        } else if (vt == NULL) {
            fn_error(ctx, SQLITE_ERROR,
                     sqlite3_mprintf("feox: %s%s%s is not a feox table", shown_s, shown_d, table));
        } else if (use != USE_CHECK &&
                   (rc = write && vt->dbs != NULL ? feox_vtab_check_store_without_refresh(vt)
                                                  : feox_vtab_check_store(vt)) != SQLITE_OK) {
            /* no store (a missing file, a failed RENAME), one inherited through fork() that cannot
             * be opened again, a rollback that still cannot finish, or a table in the database
             * that another connection dropped. A copy of the message: report_table_error's
             * touch plans the table, and SQLite frees vt's message after xBestIndex. */
            char *msg = sqlite3_mprintf("%s", vt->base.zErrMsg ? vt->base.zErrMsg : "error");
            report_table_error(ctx, db, &parsed, msg != NULL ? rc : SQLITE_NOMEM, msg);
            sqlite3_free(msg);
            unpin(vt);
            vt = NULL;
        } else if (write && vt->dbs != NULL && (rc = feox_db_fn_begin(vt, &err)) != SQLITE_OK) {
            report_table_error(ctx, db, &parsed, rc, err);
            unpin(vt);
            vt = NULL; /* database mode: could not enlist (BUSY, LOCKED, READONLY...) */
        }
        /* Another connection changed the schema and SQL run above reloaded it: vt is no longer the
         * table (SQLite disconnects it at once or at its next prepare; in database mode the
         * enlisting statement enlisted its successor, not vt). Undo and start again. */
        if (vt == NULL || (!vt->disconnected && !(write && vt->dbs != NULL && !vt->in_txn))) {
            break;
        }
        if (write && vt->dbs != NULL) {
            char *end_err = NULL;
            (void)feox_db_fn_end(vt, &end_err);
            sqlite3_free(end_err);
        }
        unpin(vt);
        vt = NULL;
        sqlite3_free(err);
        err = NULL;
        if (attempt == RESOLVE_ATTEMPTS) {
            fn_error(ctx, SQLITE_SCHEMA,
                     feox_table_message(schema ? schema : "main", table,
                                        "the database schema kept changing during the call"));
            break;
        }
    }
    sqlite3_free(err);
    table_name_free(&parsed);
    return vt;
}

/* A function that only reads the table: resolve it, run body, let go of it. */
static void run_read(sqlite3_context *ctx, sqlite3_value **argv, resolve_use use,
                     void (*body)(sqlite3_context *ctx, feox_vtab *vt))
{
    feox_vtab *vt = resolve_table(ctx, argv[0], use);
    if (vt != NULL) {
        body(ctx, vt);
        unpin(vt);
    }
}

static void stats_body(sqlite3_context *ctx, feox_vtab *vt);
static void flush_body(sqlite3_context *ctx, feox_vtab *vt);
static void check_body(sqlite3_context *ctx, feox_vtab *vt);
typedef void (*write_body)(sqlite3_context *ctx, feox_vtab *vt, int argc, sqlite3_value **argv);

static void incr_body(sqlite3_context *ctx, feox_vtab *vt, int argc, sqlite3_value **argv);
static void cas_body(sqlite3_context *ctx, feox_vtab *vt, int argc, sqlite3_value **argv);
static void patch_body(sqlite3_context *ctx, feox_vtab *vt, int argc, sqlite3_value **argv);
static void compact_body(sqlite3_context *ctx, feox_vtab *vt, int argc, sqlite3_value **argv);

/* The SQL name of a writing function, for messages. */
static const char *fn_name(write_body body)
{
    return body == incr_body    ? "feox_incr"
           : body == cas_body   ? "feox_cas"
           : body == patch_body ? "feox_patch"
                                : "feox_sweep";
}

/* A function that changes the table: resolve it (which, in database mode, opens the savepoint the
 * call runs in), run body, and in database mode end the savepoint: RELEASE, which in autocommit
 * commits; if that fails the call fails with SQLite's error (its changes are rolled back). A
 * failing body leaves the store unchanged, so the savepoint is released either way. */
static void run_write(sqlite3_context *ctx, int argc, sqlite3_value **argv, write_body body)
{
    feox_vtab *vt = resolve_table(ctx, argv[0], USE_WRITE);
    if (vt == NULL) {
        return;
    }
    if (vt->lclock != NULL && body != compact_body) {
        /* clock='log' (logical_clock.c): a function in a SELECT is not replicated */
        fn_error(ctx, SQLITE_ERROR,
                 feox_table_message(vt->schema, vt->name,
                                    "%s is not available with clock='log' (a SELECT is not "
                                    "replicated): use the DML forms (README: rqlite)",
                                    fn_name(body)));
    } else {
        body(ctx, vt, argc, argv);
    }
    if (vt->dbs != NULL) {
        char *err = NULL;
        int rc = feox_db_fn_end(vt, &err);
        if (rc != SQLITE_OK) {
            fn_error(ctx, rc, err);
        } else {
            sqlite3_free(err);
        }
    }
    unpin(vt);
}

static bool fn_key(sqlite3_context *ctx, feox_vtab *vt, sqlite3_value *v, const void **key,
                   size_t *len)
{
    if (!feox_key_from_value(vt->options.keytype, v, key, len)) {
        fn_error(ctx, SQLITE_CONSTRAINT,
                 feox_table_message(vt->schema, vt->name, "key may not be NULL"));
        return false;
    }
    if (*len == 0 || *len > FEOX_MAX_KEY_SIZE) {
        fn_error(ctx, SQLITE_CONSTRAINT,
                 feox_table_message(vt->schema, vt->name, "key is empty or longer than %u bytes",
                                    (unsigned)FEOX_MAX_KEY_SIZE));
        return false;
    }
    return true;
}

/* Optional ttl argument -> opts flags. NULL or absent = keep the record's TTL. */
static bool fn_ttl(sqlite3_context *ctx, feox_vtab *vt, int argc, sqlite3_value **argv, int idx,
                   feox_write_opts *opts)
{
    sqlite3_int64 n;
    if (argc <= idx || sqlite3_value_type(argv[idx]) == SQLITE_NULL) {
        return true;
    }
    if (!feox_whole_number(argv[idx], &n) || n < 0) {
        fn_error(ctx, SQLITE_MISMATCH,
                 feox_table_message(vt->schema, vt->name,
                                    "ttl must be a non-negative whole number of seconds"));
        return false;
    }
    if (n == 0) {
        opts->flags |= FEOX_WRITE_EXPIRES_AT;
        opts->expires_at_ns = 0;
    } else {
        opts->flags |= FEOX_WRITE_TTL;
        opts->ttl_secs = (uint64_t)n;
    }
    return true;
}

static int64_t add_saturating(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b) {
        return INT64_MAX;
    }
    if (b < 0 && a < INT64_MIN - b) {
        return INT64_MIN;
    }
    return a + b;
}

/* After a write in a transaction: journal the version it replaced (old, from
 * feox_write_opts.replaced; released here). False, with the error reported, if the journal could
 * not take it (the write was undone). Outside a transaction there is nothing to do. */
static bool journal_write(sqlite3_context *ctx, feox_vtab *vt, const void *key, size_t len,
                          feox_value *old)
{
    if (!vt->in_txn) {
        return true;
    }
    if (feox_journal_replaced(&vt->journal, vt->entry->store, key, len, old) != SQLITE_OK) {
        sqlite3_result_error_nomem(ctx);
        return false;
    }
    return true;
}

/* feox_incr(tab, key, delta [, ttl]) */
static void incr_body(sqlite3_context *ctx, feox_vtab *vt, int argc, sqlite3_value **argv)
{
    const void *key;
    size_t len;
    sqlite3_int64 delta;
    feox_write_opts ttl_opts;
    memset(&ttl_opts, 0, sizeof ttl_opts);
    if (!fn_key(ctx, vt, argv[1], &key, &len)) {
        return;
    }
    if (!feox_whole_number(argv[2], &delta)) {
        fn_error(ctx, SQLITE_MISMATCH,
                 feox_table_message(vt->schema, vt->name, "delta must be an integer"));
        return;
    }
    if (!fn_ttl(ctx, vt, argc, argv, 3, &ttl_opts)) {
        return;
    }
    feox_store *store = vt->entry->store;
    for (;;) {
        feox_value *cur = NULL, *old = NULL;
        unsigned char next[8];
        feox_write_opts opts = ttl_opts;
        opts.flags |= FEOX_WRITE_TAG | FEOX_WRITE_TS_INT64;
        opts.tag = FEOX_TAG_INTEGER;
        opts.replaced = vt->in_txn ? &old : NULL; /* what the write replaced, for the journal */
        feox_err e = feox_get_ref(store, key, len, &cur);
        if (e == FEOX_ERR_KEY_NOT_FOUND) {
            feox_write_opts create = opts;
            create.flags |= FEOX_WRITE_IF_ABSENT;
            feox_put_i64(next, delta);
            e = feox_insert(store, key, len, next, 8, &create, NULL);
            if (e == FEOX_OK) {
                if (journal_write(ctx, vt, key, len, old)) {
                    sqlite3_result_int64(ctx, delta);
                }
                return;
            }
            if (e != FEOX_ERR_KEY_EXISTS) {
                fn_engine_error(ctx, vt, e);
                return;
            }
            continue; /* created by someone else meanwhile: increment theirs */
        }
        if (e != FEOX_OK) {
            fn_engine_error(ctx, vt, e);
            return;
        }
        feox_record_info info;
        int64_t old_value;
        feox_value_info(cur, &info);
        if (!feox_decode_counter(info.tag, feox_value_data(cur), feox_value_size(cur),
                                 &old_value)) {
            feox_value_release(cur);
            fn_error(ctx, SQLITE_MISMATCH,
                     feox_table_message(vt->schema, vt->name, "value is not a 64-bit integer"));
            return;
        }
        int64_t new_value = add_saturating(old_value, delta);
        if (info.tag == FEOX_TAG_INTEGER) {
            /* Already an INTEGER: the engine's own linearizable increment. */
            feox_value_release(cur);
            int64_t result = 0;
            e = feox_atomic_increment(store, key, len, delta, &opts, &result);
            if (e == FEOX_OK) {
                if (journal_write(ctx, vt, key, len, old)) {
                    sqlite3_result_int64(ctx, result);
                }
                return;
            }
            if (e == FEOX_ERR_KEY_NOT_FOUND) {
                continue;
            }
            fn_engine_error(ctx, vt, e);
            return;
        }
        /* An 8-byte BLOB or an integral REAL: swap in the INTEGER only if nothing changed
         * meanwhile. */
        bool swapped = false;
        feox_put_i64(next, new_value);
        opts.flags |= FEOX_WRITE_TAG | FEOX_WRITE_MATCH_TAG;
        opts.expected_tag = info.tag;
        e = feox_compare_and_swap(store, key, len, feox_value_data(cur), 8, next, 8, &opts,
                                  &swapped);
        feox_value_release(cur);
        if (e == FEOX_OK && swapped) {
            if (journal_write(ctx, vt, key, len, old)) {
                sqlite3_result_int64(ctx, new_value);
            }
            return;
        }
        if (e != FEOX_OK) {
            fn_engine_error(ctx, vt, e);
            return;
        }
    }
}

static void fn_incr(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    run_write(ctx, argc, argv, incr_body);
}

/* feox_cas(tab, key, expected, new [, ttl]) */
static void cas_body(sqlite3_context *ctx, feox_vtab *vt, int argc, sqlite3_value **argv)
{
    const void *key;
    size_t len;
    feox_encoded expected, replacement;
    feox_write_opts opts;
    memset(&opts, 0, sizeof opts);
    if (!fn_key(ctx, vt, argv[1], &key, &len)) {
        return;
    }
    if (!fn_ttl(ctx, vt, argc, argv, 4, &opts)) {
        return;
    }
    feox_encode_value(argv[2], &expected);
    feox_encode_value(argv[3], &replacement);
    if (replacement.len > FEOX_MAX_VALUE_SIZE) {
        fn_error(ctx, SQLITE_TOOBIG,
                 feox_table_message(vt->schema, vt->name, "value is longer than %u bytes",
                                    (unsigned)FEOX_MAX_VALUE_SIZE));
        return;
    }
    /* The engine compares type (the tag) and bytes under the key's lock, and counts the
     * outcome (cas_success / cas_failure in feox_stats): a missing or different value is 0. */
    feox_store *store = vt->entry->store;
    bool swapped = false;
    feox_value *old = NULL;
    opts.flags |= FEOX_WRITE_TAG | FEOX_WRITE_MATCH_TAG | FEOX_WRITE_TS_INT64;
    opts.tag = replacement.tag;
    opts.expected_tag = expected.tag;
    opts.replaced = vt->in_txn ? &old : NULL;
    feox_err e = feox_compare_and_swap(store, key, len, expected.data, expected.len,
                                       replacement.data, replacement.len, &opts, &swapped);
    if (e != FEOX_OK) {
        fn_engine_error(ctx, vt, e);
        return;
    }
    if (swapped && !journal_write(ctx, vt, key, len, old)) {
        return;
    }
    sqlite3_result_int(ctx, swapped ? 1 : 0);
}

static void fn_cas(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    run_write(ctx, argc, argv, cas_body);
}

/* The JSON text of a stored INTEGER or REAL: the number's text as this SQLite spells it (SQLite
 * converts it, so it is the text the DML form feox_json_patch(value, patch) reads); NULL for any
 * other value or on failure (out of memory). */
static char *number_json_text(sqlite3 *db, feox_value *v)
{
    sqlite3_stmt *stmt = NULL;
    char *text = NULL;
    if (sqlite3_prepare_v2(db, "SELECT ?1", -1, &stmt, NULL) != SQLITE_OK) {
        return NULL;
    }
    uint32_t tag = feox_value_tag(v);
    const void *data = feox_value_data(v);
    size_t len = feox_value_size(v);
    int64_t i;
    if (feox_shown_tag(tag, len) == FEOX_TAG_INTEGER && feox_decode_i64(tag, data, len, &i)) {
        sqlite3_bind_int64(stmt, 1, (sqlite3_int64)i);
    } else if (feox_shown_tag(tag, len) == FEOX_TAG_REAL) {
        sqlite3_bind_double(stmt, 1, feox_decode_real(data));
    }
    if (sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_type(stmt, 0) != SQLITE_NULL) {
        text = sqlite3_mprintf("%s", (const char *)sqlite3_column_text(stmt, 0));
    }
    sqlite3_finalize(stmt);
    return text;
}

/* One try at patching a number: its JSON text patched, swapped in as TEXT if the record is still
 * the number read (same tag and bytes). *done is false when another writer changed it first. */
static void patch_number_once(sqlite3_context *ctx, feox_vtab *vt, const void *key, size_t len,
                              const char *patch, size_t patch_len, const feox_write_opts *opts,
                              feox_value *cur, uint32_t tag, bool *done)
{
    char *text = number_json_text(vt->db, cur);
    char *doc = NULL;
    size_t doc_len = 0;
    *done = true;
    if (text == NULL) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    feox_err e = feox_json_patch_document(text, strlen(text), patch, patch_len, &doc, &doc_len);
    sqlite3_free(text);
    if (e == FEOX_OK && doc_len > FEOX_MAX_VALUE_SIZE) {
        feox_free(doc);
        fn_error(ctx, SQLITE_TOOBIG,
                 feox_table_message(vt->schema, vt->name, "value is longer than %u bytes",
                                    (unsigned)FEOX_MAX_VALUE_SIZE));
        return;
    }
    if (e != FEOX_OK) {
        fn_engine_error(ctx, vt, e);
        return;
    }
    bool swapped = false;
    feox_value *old = NULL;
    feox_write_opts swap = *opts; /* the caller's stay as they are for a TEXT/BLOB retry */
    swap.flags |= FEOX_WRITE_TAG | FEOX_WRITE_MATCH_TAG | FEOX_WRITE_TS_INT64;
    swap.tag = FEOX_TAG_TEXT;
    swap.expected_tag = tag;
    swap.replaced = vt->in_txn ? &old : NULL;
    e = feox_compare_and_swap(vt->entry->store, key, len, feox_value_data(cur),
                              feox_value_size(cur), doc, doc_len, &swap, &swapped);
    if (e != FEOX_OK) {
        fn_engine_error(ctx, vt, e);
    } else if (!swapped) {
        *done = false;
    } else if (journal_write(ctx, vt, key, len, old)) {
        sqlite3_result_text64(ctx, doc, doc_len, SQLITE_TRANSIENT, SQLITE_UTF8);
    }
    feox_free(doc);
}

/* One try at patching a TEXT or BLOB value in place (the engine's feox_json_patch), only if its tag
 * is still the one read: *done is false when another writer changed the tag first (a number's 8
 * bytes must never be patched as a document). */
static void patch_document_once(sqlite3_context *ctx, feox_vtab *vt, const void *key, size_t len,
                                const char *patch, size_t patch_len, const feox_write_opts *opts,
                                uint32_t tag, bool *done)
{
    feox_value *old = NULL;
    feox_write_opts match = *opts;
    match.flags |= FEOX_WRITE_MATCH_TAG;
    match.expected_tag = tag;
    match.replaced = vt->in_txn ? &old : NULL;
    char *doc = NULL;
    size_t doc_len = 0;
    feox_err e = feox_json_patch(vt->entry->store, key, len, patch, patch_len, &match, &doc,
                                 &doc_len);
    *done = e != FEOX_ERR_TAG_MISMATCH;
    if (e == FEOX_ERR_TAG_MISMATCH) {
        return;
    }
    if (e != FEOX_OK) {
        fn_engine_error(ctx, vt, e);
        return;
    }
    if (journal_write(ctx, vt, key, len, old)) {
        sqlite3_result_text64(ctx, doc, doc_len, SQLITE_TRANSIENT, SQLITE_UTF8);
    }
    feox_free(doc);
}

/* One try at feox_patch by the value's type: a TEXT or BLOB value is the JSON document, patched in
 * place; an INTEGER or REAL is the JSON number its text spells, as for the DML form (never its 8
 * stored bytes, which may happen to spell JSON), and the result is TEXT; NULL is an error. *done is
 * false when another writer changed the value between the look and the write. */
static void patch_once(sqlite3_context *ctx, feox_vtab *vt, const void *key, size_t len,
                       const char *patch, size_t patch_len, const feox_write_opts *opts,
                       bool *done)
{
    feox_value *cur = NULL;
    feox_err e = feox_get_ref(vt->entry->store, key, len, &cur);
    *done = true;
    if (e != FEOX_OK) {
        fn_engine_error(ctx, vt, e);
        return;
    }
    uint32_t tag = feox_value_tag(cur);
    uint32_t shown = feox_shown_tag(tag, feox_value_size(cur));
    if (shown == FEOX_TAG_NULL) {
        fn_error(ctx, SQLITE_ERROR,
                 feox_table_message(vt->schema, vt->name,
                                    "JSON patch failed: the value is NULL, not a JSON document"));
    } else if (shown == FEOX_TAG_INTEGER || shown == FEOX_TAG_REAL) {
        patch_number_once(ctx, vt, key, len, patch, patch_len, opts, cur, tag, done);
    } else {
        feox_value_release(cur);
        cur = NULL;
        patch_document_once(ctx, vt, key, len, patch, patch_len, opts, tag, done);
    }
    feox_value_release(cur);
}

/* feox_patch(tab, key, patch [, ttl]) */
static void patch_body(sqlite3_context *ctx, feox_vtab *vt, int argc, sqlite3_value **argv)
{
    const void *key;
    size_t len;
    feox_write_opts opts;
    memset(&opts, 0, sizeof opts);
    opts.flags = FEOX_WRITE_TS_INT64; /* and, as with NULL options, keep the TTL and tag */
    if (!fn_key(ctx, vt, argv[1], &key, &len)) {
        return;
    }
    if (!fn_ttl(ctx, vt, argc, argv, 3, &opts)) {
        return;
    }
    const char *patch = (const char *)sqlite3_value_text(argv[2]);
    size_t patch_len = (size_t)sqlite3_value_bytes(argv[2]);
    if (patch == NULL) {
        fn_error(ctx, SQLITE_MISMATCH,
                 feox_table_message(vt->schema, vt->name, "the patch may not be NULL"));
        return;
    }
    bool done = false;
    while (!done) {
        patch_once(ctx, vt, key, len, patch, patch_len, &opts, &done);
    }
}

static void fn_patch(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    run_write(ctx, argc, argv, patch_body);
}

/* feox_stats(tab) */
static void fn_stats(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    run_read(ctx, argv, USE_READ, stats_body);
}

static void stats_body(sqlite3_context *ctx, feox_vtab *vt)
{
    feox_stats st;
    feox_err e = feox_get_stats(vt->entry->store, &st);
    if (e != FEOX_OK) {
        fn_engine_error(ctx, vt, e);
        return;
    }
    /* One JSON key per field of feox_stats, in the order feox.h lists them. */
#define COUNTER_FIELD(name, ID) {#name, st.name},
#define VALUE_FIELD(name) {#name, st.name},
    const struct {
        const char *name;
        uint64_t value;
    } fields[] = {FEOX_STATS_FIELDS(COUNTER_FIELD, VALUE_FIELD)};
#undef COUNTER_FIELD
#undef VALUE_FIELD
    sqlite3_str *s = sqlite3_str_new(sqlite3_context_db_handle(ctx));
    sqlite3_str_appendchar(s, 1, '{');
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        sqlite3_str_appendf(s, "%s\"%s\":%llu", i ? "," : "", fields[i].name,
                            (unsigned long long)fields[i].value);
    }
    feox_db_stats(vt, s); /* database mode: how much of the table the cache holds */
    sqlite3_str_appendf(s, ",\"persistent\":%s}",
                        vt->entry->file_path != NULL || vt->dbs != NULL ? "true" : "false");
    int rc = sqlite3_str_errcode(s);
    char *json = sqlite3_str_finish(s);
    if (rc != SQLITE_OK || json == NULL) {
        sqlite3_free(json);
        sqlite3_result_error_nomem(ctx);
        return;
    }
    sqlite3_result_text(ctx, json, -1, sqlite3_free);
    sqlite3_result_subtype(ctx, 'J'); /* JSON, as SQLite's json functions mark it */
}

/* feox_flush(tab) */
static void fn_flush(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    run_read(ctx, argv, USE_READ, flush_body);
}

static void flush_body(sqlite3_context *ctx, feox_vtab *vt)
{
    feox_err e = feox_flush(vt->entry->store);
    if (e != FEOX_OK) {
        fn_engine_error(ctx, vt, e);
        return;
    }
    sqlite3_result_int(ctx, 1);
}

/* feox_compact(tab): rewrite the store file to hold only live records; 1 when done. It writes the
 * file, so a read-only connection may not call it. */
static void compact_body(sqlite3_context *ctx, feox_vtab *vt, int argc, sqlite3_value **argv)
{
    (void)argc;
    (void)argv;
    if (vt->dbs != NULL) {
        sqlite3_result_int(ctx, 1); /* database mode: SQLite reclaims the shadow tables' pages */
        return;
    }
    feox_err e = feox_compact(vt->entry->store);
    if (e != FEOX_OK) {
        fn_engine_error(ctx, vt, e);
        return;
    }
    sqlite3_result_int(ctx, 1);
}

static void fn_compact(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    run_write(ctx, argc, argv, compact_body);
}

/* feox_sweep(tab): remove the expired records now (database mode: inside the call's savepoint,
 * so in the user's transaction); returns how many. Other modes: the sweeper thread does it. */
static void sweep_body(sqlite3_context *ctx, feox_vtab *vt, int argc, sqlite3_value **argv)
{
    (void)argc;
    (void)argv;
    uint64_t removed = 0;
    int rc = feox_db_sweep(vt, 0, &removed);
    if (rc != SQLITE_OK) {
        fn_error(ctx, rc, sqlite3_mprintf("%s", vt->base.zErrMsg ? vt->base.zErrMsg : "error"));
        return;
    }
    if (vt->dbs == NULL) {
        uint64_t before = feox_len(vt->entry->store, FEOX_LEN_ESTIMATE);
        uint64_t after = feox_len(vt->entry->store, 0);
        removed = before > after ? before - after : 0;
    }
    sqlite3_result_int64(ctx, (sqlite3_int64)removed);
}

static void fn_sweep(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    run_write(ctx, argc, argv, sweep_body);
}

/* feox_check(tab) */
static void fn_check(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    run_read(ctx, argv, USE_CHECK, check_body);
}

static void check_body(sqlite3_context *ctx, feox_vtab *vt)
{
    char *report = NULL;
    int rc = feox_vtab_check_table(vt, &report);
    if (rc != SQLITE_OK) {
        fn_error(ctx, rc,
                 sqlite3_mprintf("%s", vt->base.zErrMsg ? vt->base.zErrMsg : sqlite3_errstr(rc)));
    } else if (report != NULL) {
        sqlite3_result_text(ctx, report, -1, sqlite3_free);
    } else {
        sqlite3_result_text(ctx, "ok", 2, SQLITE_STATIC);
    }
}

static void conn_destroy(void *p)
{
    feox_conn_release(p);
}

int feox_register_functions(sqlite3 *db, feox_conn *conn)
{
    static const struct {
        const char *name;
        int n_arg;
        void (*fn)(sqlite3_context *, int, sqlite3_value **);
    } fns[] = {
        {"feox_incr", 3, fn_incr},       {"feox_incr", 4, fn_incr},   {"feox_cas", 4, fn_cas},
        {"feox_cas", 5, fn_cas},         {"feox_patch", 3, fn_patch}, {"feox_patch", 4, fn_patch},
        {"feox_stats", 1, fn_stats},     {"feox_flush", 1, fn_flush}, {"feox_check", 1, fn_check},
        {"feox_compact", 1, fn_compact}, {"feox_sweep", 1, fn_sweep},
    };
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
        feox_conn_retain(conn); /* released by conn_destroy, also when registration fails */
        int rc = sqlite3_create_function_v2(db, fns[i].name, fns[i].n_arg,
                                            SQLITE_UTF8 | SQLITE_DIRECTONLY, conn, fns[i].fn, NULL,
                                            NULL, conn_destroy);
        if (rc != SQLITE_OK) {
            return rc;
        }
    }
    return SQLITE_OK;
}
