/*
 * logical_clock.c — clock='log', the deterministic mode for statement replication (rqlite):
 *
 *   CREATE VIRTUAL TABLE kv USING feox(clock='log');
 *   INSERT INTO kv(kv, ts) VALUES('clock', 1767225600000000000);   -- advance the clock (max)
 *   INSERT INTO kv(key, value, ttl) VALUES('session:9', 'x', 60);   -- expires = clock + 60 s
 *   INSERT INTO kv(kv) VALUES('sweep');        -- remove what expired at the clock, replicated
 *
 * Why. A statement replicator applies the same SQL on every node, each at its own wall-clock
 * time, and again, much later, when a node replays its log after a restore. Whatever a write
 * derives from "now" (the automatic ts, ttl -> expiry, "is the row expired?" in an UPDATE's WHERE,
 * a background sweep) then differs between the nodes, and last-writer-wins on ts makes later
 * writes accept on one node what they reject on another: the copies diverge for good. In this
 * mode "now" is never the wall clock. It is a logical clock (ns since the Unix epoch) kept in the
 * table's own database, so it is replicated, backed up and restored with the records:
 *
 *   "<schema>"."<table>_meta" row ('clock', n)   absent = 0 (a new table)
 *
 * What reads and writes of the table see, on every node alike:
 *   - The command column: the table gets a HIDDEN column named like the table (as FTS5 does).
 *     An INSERT that sets it is a command, not a row (key, value and ttl must be NULL):
 *       'clock' with ts = n  the clock becomes max(clock, n): it never goes back, and a
 *                            replayed or reordered-older clock statement changes nothing.
 *                            n: a non-negative integer (ns). It is an INSERT, so rqlite
 *                            sends it through Raft (a SELECT feox_...() would not be).
 *       'sweep'              delete from the shadow table every record expired at the clock
 *                            (expires < clock). Nothing else ever deletes expired records in
 *                            this mode: no sweeper thread, no lazy delete (reads only hide).
 *   - Automatic ts (ts NULL, or an UPDATE that does not assign it) = max(clock, ts of the key's
 *     live record + 1) (1 if both are 0); an explicit ts is used as given (strictly newer wins).
 *     An expired record counts as absent (SPEC: expired = absent on every path), so the choice
 *     never depends on whether a node still holds, or already swept, an expired record.
 *   - ttl -> expiry = clock + ttl (absolute, in <table>_data.expires). A ttl before the clock
 *     was ever set is refused (it would count from 1970).
 *   - Expiry is judged against the logical clock everywhere, reads included: a row disappears
 *     once a clock statement passes its expiry, and the ttl column shows the seconds left by the
 *     logical clock. Reads do not use the local wall clock because the scan of an UPDATE or
 *     DELETE ... WHERE is a read too (xFilter cannot tell it from a SELECT's), and whether it
 *     sees a row decides whether the write happens. So every node shows the same rows for the
 *     same log position, whatever its own clock says.
 *   - The writing functions (feox_incr, feox_cas, feox_patch, feox_sweep) are refused: in a
 *     SELECT, a replicator does not replicate them. The DML forms replace them (README).
 * Only for a table whose records live in the database (database mode: no path, a file
 * database): a store file or a memory table is not part of the database a replicator copies, so
 * clock='log' is refused there with a message saying why.
 *
 * The cache. Each vtab keeps the clock in memory (the engine's clock function reads it: no SQL
 * under the engine's locks). It is read again from <table>_meta when SQLite's data version says
 * another connection committed (the same check db_mode.c makes for the records), after a
 * ROLLBACK or ROLLBACK TO (SQLite has restored the row; xRollback/xRollbackTo only forget the
 * cached value), and outside a transaction. A command of this connection updates both.
 *
 * Cost: a write with an automatic ts reads the key's live record first (one point read of the
 * cache); a statement pays the data-version check (~50 ns) unless another connection committed;
 * a 'sweep' reads all of <table>_data (there is no index on expires), like feox_sweep.
 */
#include <stdatomic.h>
#include <string.h>

#include "feox_ext.h"

SQLITE_EXTENSION_INIT3

struct feox_lclock {
    _Atomic uint64_t now_ns; /* the clock; relaxed: written and read under the connection's use */
    bool known;              /* now_ns is what <table>_meta says (as of data_version) */
    unsigned data_version;   /* SQLITE_FCNTL_DATA_VERSION when now_ns was read */
    bool swept;              /* a 'sweep' ran in the open transaction (xCommit lets go of them) */
};

static uint64_t logical_now(void *ctx)
{
    return atomic_load_explicit(&((feox_lclock *)ctx)->now_ns, memory_order_relaxed);
}

int feox_lclock_open(feox_vtab *vt, int location_kind, char **err)
{
    if (!vt->options.clock_log) {
        return SQLITE_OK;
    }
    if (location_kind != (int)FEOX_LOC_DATABASE) {
        *err = sqlite3_mprintf(
            "feox: %s: clock='log' keeps its clock with the records in the database, so it needs "
            "a table without path in a database file (%s)",
            vt->label,
            vt->options.path != NULL ? "a path= store file is not in the database"
            : location_kind == (int)FEOX_LOC_FILE
                ? "this table's records are in its store file: a table of the previous release, "
                  "or a build without database mode"
                : "this database is in memory");
        return SQLITE_ERROR;
    }
    static const char *const columns[] = {"key", "value", "ttl", "ts"};
    for (size_t i = 0; i < sizeof columns / sizeof columns[0]; i++) {
        if (sqlite3_stricmp(vt->name, columns[i]) == 0) {
            *err = sqlite3_mprintf("feox: %s: clock='log' needs a table name other than key, "
                                   "value, ttl or ts (its command column is named like the table)",
                                   vt->label);
            return SQLITE_ERROR;
        }
    }
    vt->lclock = sqlite3_malloc(sizeof *vt->lclock);
    if (vt->lclock == NULL) {
        return SQLITE_NOMEM;
    }
    memset(vt->lclock, 0, sizeof *vt->lclock);
    atomic_store_explicit(&vt->lclock->now_ns, 0, memory_order_relaxed);
    return SQLITE_OK;
}

void feox_lclock_close(feox_vtab *vt)
{
    sqlite3_free(vt->lclock);
    vt->lclock = NULL;
}

void feox_lclock_configure(feox_vtab *vt, feox_config *cfg)
{
    if (vt->lclock != NULL) {
        cfg->clock = logical_now;
        cfg->clock_ctx = vt->lclock;
    }
}

char *feox_lclock_schema(feox_vtab *vt)
{
    const char *key = vt->options.keytype == FEOX_KEYTYPE_BLOB ? "BLOB" : "TEXT";
    if (vt->lclock == NULL) {
        return sqlite3_mprintf("CREATE TABLE x(key %s PRIMARY KEY NOT NULL, value, ttl INTEGER, "
                               "ts INTEGER) WITHOUT ROWID",
                               key);
    }
    return sqlite3_mprintf("CREATE TABLE x(key %s PRIMARY KEY NOT NULL, value, ttl INTEGER, "
                           "ts INTEGER, \"%w\" HIDDEN) WITHOUT ROWID",
                           key, vt->name);
}

/* Run sql (mprintf'd, freed here) with ?1 = arg (if has_arg); *out = the first column of its
 * first row (0 when there is no row). On failure sets the vtab's error. */
static int run_sql(feox_vtab *vt, char *sql, bool has_arg, sqlite3_int64 arg, sqlite3_int64 *out,
                   const char *what)
{
    sqlite3_stmt *stmt = NULL;
    int rc = sql == NULL ? SQLITE_NOMEM : sqlite3_prepare_v2(vt->db, sql, -1, &stmt, NULL);
    sqlite3_free(sql);
    if (rc == SQLITE_OK) {
        if (has_arg) {
            sqlite3_bind_int64(stmt, 1, arg);
        }
        rc = sqlite3_step(stmt);
        if (rc == SQLITE_ROW && out != NULL) {
            *out = sqlite3_column_int64(stmt, 0);
        }
        rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    if (rc != SQLITE_OK) {
        rc = feox_sqlite_failure(vt->db, rc); /* SQLITE_READONLY_DBMOVED as a native write */
        feox_table_error(vt, "%s: %s", what, sqlite3_errmsg(vt->db));
    }
    sqlite3_finalize(stmt);
    return rc;
}

int feox_lclock_sync(feox_vtab *vt)
{
    feox_lclock *c = vt->lclock;
    if (c == NULL) {
        return SQLITE_OK;
    }
    unsigned dv = 0;
    sqlite3_file_control(vt->db, vt->schema, SQLITE_FCNTL_DATA_VERSION, &dv);
    /* The version is current only while a transaction is open on the schema. */
    if (c->known && dv == c->data_version &&
        sqlite3_txn_state(vt->db, vt->schema) > SQLITE_TXN_NONE) {
        return SQLITE_OK;
    }
    sqlite3_int64 n = 0;
    int rc = run_sql(vt,
                     sqlite3_mprintf("SELECT value FROM \"%w\".\"%w_meta\" WHERE name = 'clock'",
                                     vt->schema, vt->name),
                     false, 0, &n, "cannot read the logical clock");
    if (rc != SQLITE_OK) {
        return rc;
    }
    atomic_store_explicit(&c->now_ns, n > 0 ? (uint64_t)n : 0, memory_order_relaxed);
    c->data_version = dv;
    c->known = true;
    return SQLITE_OK;
}

void feox_lclock_forget(feox_vtab *vt)
{
    if (vt->lclock != NULL) {
        vt->lclock->known = false; /* SQLite restored <table>_meta: read it again */
        vt->lclock->swept = false;
    }
}

void feox_lclock_committed(feox_vtab *vt)
{
    feox_lclock *c = vt->lclock;
    if (c != NULL && c->swept && vt->entry != NULL && vt->entry->store != NULL) {
        /* The clock of this commit can no longer go back: the cache lets go of the records the
         * sweep removed (and any other record expired at the clock), index only. */
        (void)feox_len(vt->entry->store, 0);
    }
    if (c != NULL) {
        c->swept = false;
    }
}

/* 'clock': clock = max(clock, ts). */
static int advance(feox_vtab *vt, sqlite3_value *ts)
{
    feox_lclock *c = vt->lclock;
    sqlite3_int64 n;
    if (sqlite3_value_type(ts) == SQLITE_NULL || !feox_whole_number(ts, &n) || n < 0) {
        feox_table_error(vt, "the 'clock' command needs ts: a non-negative integer, ns since "
                             "the Unix epoch");
        return SQLITE_MISMATCH;
    }
    if ((uint64_t)n <= logical_now(c)) {
        return SQLITE_OK; /* applied as max: an older or replayed clock changes nothing */
    }
    int rc = run_sql(vt,
                     sqlite3_mprintf("INSERT OR REPLACE INTO \"%w\".\"%w_meta\"(name, value) "
                                     "VALUES('clock', ?1)",
                                     vt->schema, vt->name),
                     true, n, NULL, "cannot write the logical clock");
    if (rc == SQLITE_OK) {
        atomic_store_explicit(&c->now_ns, (uint64_t)n, memory_order_relaxed);
    }
    return rc;
}

/* 'sweep': delete the records expired at the clock from <table>_data. The cache keeps them
 * (hidden: expired) until the transaction commits, so a ROLLBACK that takes the clock back finds
 * them still there. */
static int sweep(feox_vtab *vt)
{
    int rc = run_sql(vt,
                     /* expires >= 0: one past INT64_MAX ns is stored negative, never expires */
                     sqlite3_mprintf("DELETE FROM \"%w\".\"%w_data\" WHERE expires >= 0 AND "
                                     "expires < ?1",
                                     vt->schema, vt->name),
                     true, (sqlite3_int64)logical_now(vt->lclock), NULL, "cannot sweep");
    if (rc == SQLITE_OK) {
        vt->lclock->swept = true;
    }
    return rc;
}

int feox_lclock_command(feox_vtab *vt, sqlite3_value **argv)
{
    sqlite3_value *command = argv[2 + FEOX_COL_TS + 1];
    const char *name = (const char *)sqlite3_value_text(command);
    if (name == NULL) {
        return SQLITE_NOMEM;
    }
    for (int col = FEOX_COL_KEY; col < FEOX_COL_TS; col++) {
        if (sqlite3_value_type(argv[2 + col]) != SQLITE_NULL) {
            feox_table_error(vt, "a command row ('%s') sets only %s and ts", name, vt->name);
            return SQLITE_ERROR;
        }
    }
    if (strcmp(name, "clock") == 0) {
        return advance(vt, argv[2 + FEOX_COL_TS]);
    }
    if (strcmp(name, "sweep") == 0) {
        if (sqlite3_value_type(argv[2 + FEOX_COL_TS]) != SQLITE_NULL) {
            feox_table_error(vt, "the 'sweep' command takes no ts");
            return SQLITE_ERROR;
        }
        return sweep(vt);
    }
    feox_table_error(vt, "unknown command '%s' (expected 'clock' or 'sweep')", name);
    return SQLITE_ERROR;
}

int feox_lclock_need_now(feox_vtab *vt)
{
    if (vt->lclock != NULL && logical_now(vt->lclock) == 0) {
        feox_table_error(vt,
                         "clock='log': a ttl needs the logical clock; set it first: "
                         "INSERT INTO %s(%s, ts) VALUES('clock', <ns since the Unix epoch>)",
                         vt->name, vt->name);
        return SQLITE_ERROR;
    }
    return SQLITE_OK;
}

int feox_lclock_auto_ts(feox_vtab *vt, uint64_t live_ts, uint64_t *ts)
{
    *ts = 0;
    if (vt->lclock == NULL) {
        return SQLITE_OK;
    }
    uint64_t next = logical_now(vt->lclock);
    if (next == 0) {
        next = 1; /* as the engine: ts 0 means "automatic" */
    }
    if (live_ts >= next) {
        if (live_ts >= (uint64_t)INT64_MAX) {
            feox_table_error(vt,
                             "ts %lld is the largest timestamp; an automatic timestamp cannot "
                             "be newer",
                             (long long)feox_ts_for_sql(live_ts));
            return SQLITE_ERROR;
        }
        next = live_ts + 1;
    }
    *ts = next;
    return SQLITE_OK;
}
