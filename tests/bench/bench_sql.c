/*
 * bench_sql.c — the same SQL statements, prepared once, on three tables named kv, each in its
 * own connection:
 *   feox      the feox virtual table (extension linked statically, keytype=blob, defaults);
 *   native    CREATE TABLE kv(key BLOB PRIMARY KEY, value BLOB) WITHOUT ROWID;
 *   null_vtab an empty virtual table defined here: one constant row per key lookup, constant rows
 *             for scans, writes accepted and dropped; it prints the floor of SQLite's vtab path.
 * in five settings (the workload's name carries the setting):
 *   sql_*        headline: a database file in WAL mode, synchronous=NORMAL, page cache warm (cache
 *                larger than the data, just loaded); the feox table with its defaults, i.e. in
 *                the database (shadow tables, SQLite's transactions: the same guarantee);
 *   sql_*.file   the same database, the feox table in a store file beside it (path=, the opt-in
 *                fast mode for one process) with its default sync=normal (a crash loses up to
 *                100 ms: writes "feox weaker");
 *   sql_*.mem    a :memory: database; feox in memory mode (writes: memory vs memory);
 *   sql_*.full   writes only, on min(N, 10K) preloaded rows, synchronous=FULL: feox in the
 *                database (the same guarantee);
 *   sql_*.file.full  the same with the store file and sync='full' (both fsync every commit).
 * Statements: point SELECT, IN of 16 keys, scan `key >= ? ORDER BY key LIMIT 100`, INSERT of new
 * keys (autocommit, and in BEGIN with 1000 per txn), INSERT OR REPLACE, DELETE, count(*) (ns per
 * row) and a counter increment (feox_incr vs a native UPSERT ... RETURNING).
 */
#include "bench.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Provided by ext/ (linked with -DSQLITE_CORE). Weak so the harness still runs, without the
 * feox column, in a tree where the extension has not been built. */
int sqlite3_feox_init(sqlite3 *db, char **err, const sqlite3_api_routines *api)
    __attribute__((weak));

/* ---- the null virtual table -------------------------------------------------------------------
 * Schema: CREATE TABLE x(key PRIMARY KEY, value) WITHOUT ROWID.
 * Plan: idxNum 1 = key equality (one row), 2 = key lower bound (rows until LIMIT), 0 = full scan
 * (N rows). */

typedef struct null_cursor {
    sqlite3_vtab_cursor base;
    sqlite3_int64 row, rows;
} null_cursor;

static uint64_t sql_keys; /* rows loaded in the current setting: keys 0..sql_keys-1 */
static const uint8_t null_key[BENCH_KEY_SIZE];
static const uint8_t null_value[BENCH_VALUE_SIZE];

static int null_connect(sqlite3 *db, void *aux, int argc, const char *const *argv,
                        sqlite3_vtab **out, char **err)
{
    (void)aux;
    (void)argc;
    (void)argv;
    (void)err;
    int rc = sqlite3_declare_vtab(db, "CREATE TABLE x(key PRIMARY KEY, value) WITHOUT ROWID");
    if (rc != SQLITE_OK)
        return rc;
    *out = sqlite3_malloc(sizeof **out);
    if (!*out)
        return SQLITE_NOMEM;
    memset(*out, 0, sizeof **out);
    return SQLITE_OK;
}

static int null_disconnect(sqlite3_vtab *vtab)
{
    sqlite3_free(vtab);
    return SQLITE_OK;
}

static int null_best_index(sqlite3_vtab *vtab, sqlite3_index_info *info)
{
    (void)vtab;
    int lower = -1;
    for (int i = 0; i < info->nConstraint; i++) {
        const struct sqlite3_index_constraint *c = &info->aConstraint[i];
        if (!c->usable || c->iColumn != 0)
            continue;
        if (c->op == SQLITE_INDEX_CONSTRAINT_EQ) {
            info->aConstraintUsage[i].argvIndex = 1;
            info->aConstraintUsage[i].omit = 1;
            info->idxNum = 1;
            info->estimatedCost = 1;
            info->estimatedRows = 1;
            info->idxFlags = SQLITE_INDEX_SCAN_UNIQUE;
            return SQLITE_OK;
        }
        if (c->op == SQLITE_INDEX_CONSTRAINT_GE || c->op == SQLITE_INDEX_CONSTRAINT_GT)
            lower = i;
    }
    if (lower >= 0) {
        info->aConstraintUsage[lower].argvIndex = 1;
        info->aConstraintUsage[lower].omit = 1;
        info->idxNum = 2;
        info->estimatedCost = 100;
    } else {
        info->idxNum = 0;
        info->estimatedCost = 1e6;
    }
    if (info->nOrderBy == 1 && info->aOrderBy[0].iColumn == 0 && !info->aOrderBy[0].desc)
        info->orderByConsumed = 1;
    return SQLITE_OK;
}

static int null_open(sqlite3_vtab *vtab, sqlite3_vtab_cursor **out)
{
    (void)vtab;
    null_cursor *c = sqlite3_malloc(sizeof *c);
    if (!c)
        return SQLITE_NOMEM;
    memset(c, 0, sizeof *c);
    *out = &c->base;
    return SQLITE_OK;
}

static int null_close(sqlite3_vtab_cursor *cursor)
{
    sqlite3_free(cursor);
    return SQLITE_OK;
}

static int null_filter(sqlite3_vtab_cursor *cursor, int idx_num, const char *idx_str, int argc,
                       sqlite3_value **argv)
{
    (void)idx_str;
    (void)argc;
    (void)argv;
    null_cursor *c = (null_cursor *)cursor;
    c->row = 0;
    c->rows = idx_num == 1 ? 1 : (sqlite3_int64)sql_keys;
    return SQLITE_OK;
}

static int null_next(sqlite3_vtab_cursor *cursor)
{
    ((null_cursor *)cursor)->row++;
    return SQLITE_OK;
}

static int null_eof(sqlite3_vtab_cursor *cursor)
{
    null_cursor *c = (null_cursor *)cursor;
    return c->row >= c->rows;
}

static int null_column(sqlite3_vtab_cursor *cursor, sqlite3_context *ctx, int column)
{
    (void)cursor;
    if (column == 0)
        sqlite3_result_blob(ctx, null_key, sizeof null_key, SQLITE_STATIC);
    else
        sqlite3_result_blob(ctx, null_value, sizeof null_value, SQLITE_STATIC);
    return SQLITE_OK;
}

static int null_rowid(sqlite3_vtab_cursor *cursor, sqlite3_int64 *rowid)
{
    *rowid = ((null_cursor *)cursor)->row;
    return SQLITE_OK;
}

static int null_update(sqlite3_vtab *vtab, int argc, sqlite3_value **argv, sqlite3_int64 *rowid)
{
    (void)vtab;
    (void)argc;
    (void)argv;
    (void)rowid;
    return SQLITE_OK;
}

static const sqlite3_module null_module = {
    .iVersion = 1,
    .xCreate = null_connect,
    .xConnect = null_connect,
    .xBestIndex = null_best_index,
    .xDisconnect = null_disconnect,
    .xDestroy = null_disconnect,
    .xOpen = null_open,
    .xClose = null_close,
    .xFilter = null_filter,
    .xNext = null_next,
    .xEof = null_eof,
    .xColumn = null_column,
    .xRowid = null_rowid,
    .xUpdate = null_update,
};

/* ---- connections ------------------------------------------------------------------------------
 */

typedef struct sql_table {
    const char *name; /* report column */
    sqlite3 *db;
    sqlite3_stmt *point, *in16, *scan, *insert, *upsert, *del, *count, *incr, *incr_update, *begin,
        *commit;
    uint64_t errors;
} sql_table;

static void exec_or_die(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
        bench_die(sql, err ? err : "?");
}

static sqlite3_stmt *prepare(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, NULL) != SQLITE_OK)
        return NULL; /* a statement a table cannot run (e.g. RETURNING): that cell stays empty */
    return stmt;
}

static const char *in16_sql = "SELECT value FROM kv WHERE key IN (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
                              "?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)";

static void prepare_statements(sql_table *t, bool is_feox, bool is_native)
{
    t->point = prepare(t->db, "SELECT value FROM kv WHERE key = ?1");
    t->in16 = prepare(t->db, in16_sql);
    t->scan = prepare(t->db, "SELECT key, value FROM kv WHERE key >= ?1 ORDER BY key LIMIT 100");
    t->insert = prepare(t->db, "INSERT INTO kv(key, value) VALUES (?1, ?2)");
    t->upsert = prepare(t->db, "INSERT OR REPLACE INTO kv(key, value) VALUES (?1, ?2)");
    t->del = prepare(t->db, "DELETE FROM kv WHERE key = ?1");
    t->count = prepare(t->db, "SELECT count(*) FROM kv");
    if (is_feox)
        t->incr = prepare(t->db, "SELECT feox_incr('kv', ?1, 1)");
    else if (is_native)
        t->incr = prepare(t->db, "INSERT INTO kv(key, value) VALUES (?1, 1) ON CONFLICT(key) "
                                 "DO UPDATE SET value = value + 1 RETURNING value");
    if (is_native) /* issue 13's own peer for feox_incr: an UPDATE of an existing counter */
        t->incr_update = prepare(t->db, "UPDATE kv SET value = value + 1 WHERE key = ?1");
    t->begin = prepare(t->db, "BEGIN");
    t->commit = prepare(t->db, "COMMIT");
}

typedef struct sql_setting {
    const char *suffix;      /* of the workload names: "", ".mem", ".full" */
    bool file;               /* a WAL database file; else :memory: */
    bool store_file;         /* feox in a store file beside the database (path=) */
    bool full;               /* synchronous=FULL (and sync='full' for a store file); writes only */
    const char *write_label; /* how feox's writes compare with native's in this setting */
} sql_setting;

static const sql_setting settings[] = {
    {"", true, false, false, "same guarantee (in the database)"},
    {".file", true, true, false, "feox weaker (store file sync=normal vs WAL NORMAL)"},
    {".mem", false, false, false, "memory vs memory"},
    {".full", true, false, true, "same guarantee (in the database, synchronous=FULL)"},
    {".file.full", true, true, true, "same guarantee (fsync per commit)"},
};

/* A connection on a fresh database of the setting (dir: where files go). */
static sqlite3 *open_db(const sql_setting *s, const char *dir, const char *name)
{
    sqlite3 *db = NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.db", dir, name);
    if (sqlite3_open(s->file ? path : ":memory:", &db) != SQLITE_OK)
        bench_die("sqlite3_open", sqlite3_errmsg(db));
    exec_or_die(db, "PRAGMA cache_size=-2000000"); /* KiB: larger than the data */
    if (s->file) {
        exec_or_die(db, "PRAGMA journal_mode=WAL");
        exec_or_die(db, s->full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
    }
    return db;
}

static bool open_feox_table(sql_table *t, const sql_setting *s, const char *dir)
{
    if (!sqlite3_feox_init)
        return false;
    t->name = "feox";
    t->db = open_db(s, dir, "feox");
    char *err = NULL;
    if (sqlite3_feox_init(t->db, &err, NULL) != SQLITE_OK) {
        fprintf(stderr, "warning: sqlite3_feox_init: %s\n", err ? err : "?");
        sqlite3_free(err);
        sqlite3_close(t->db);
        return false;
    }
    const char *create =
        !s->store_file ? "CREATE VIRTUAL TABLE kv USING feox(keytype=blob)"
        : s->full ? "CREATE VIRTUAL TABLE kv USING feox(keytype=blob, path='kv.feox', sync='full')"
                  : "CREATE VIRTUAL TABLE kv USING feox(keytype=blob, path='kv.feox')";
    if (sqlite3_exec(t->db, create, NULL, NULL, NULL) != SQLITE_OK) {
        fprintf(stderr, "warning: feox vtab: %s\n", sqlite3_errmsg(t->db));
        sqlite3_close(t->db);
        return false;
    }
    prepare_statements(t, true, false);
    return true;
}

static void open_native_table(sql_table *t, const sql_setting *s, const char *dir)
{
    t->name = "native";
    t->db = open_db(s, dir, "native");
    exec_or_die(t->db, "CREATE TABLE kv(key BLOB PRIMARY KEY, value BLOB) WITHOUT ROWID");
    prepare_statements(t, false, true);
}

static void open_null_table(sql_table *t, const sql_setting *s, const char *dir)
{
    t->name = "null_vtab";
    t->db = open_db(s, dir, "null");
    sqlite3_create_module(t->db, "nullkv", &null_module, NULL);
    exec_or_die(t->db, "CREATE VIRTUAL TABLE kv USING nullkv");
    prepare_statements(t, false, false);
}

static void close_table(sql_table *t)
{
    sqlite3_stmt *stmts[] = {t->point,       t->in16,  t->scan,  t->insert, t->upsert, t->del,
                             t->count,       t->incr,  t->begin, t->commit, t->incr_update};
    for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++)
        sqlite3_finalize(stmts[i]);
    sqlite3_close(t->db);
}

/* ---- statements as operations ------------------------------------------------------------------
 */

typedef struct sql_op_state {
    sql_table *table;
    bench_rng rng;
    uint64_t first_index;
    uint64_t rows; /* rows seen, for per-row costs */
    uint8_t key[BENCH_KEY_SIZE], value[BENCH_VALUE_SIZE], out[BENCH_VALUE_SIZE];
    uint8_t keys16[16][BENCH_KEY_SIZE];
} sql_op_state;

typedef void (*sql_op_fn)(sql_op_state *st, uint64_t i);

/* Step to the end, copying the last column of each row out; counts rows. */
static void drain(sql_op_state *st, sqlite3_stmt *stmt)
{
    int rc;
    int last = sqlite3_column_count(stmt) - 1;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        const void *data = sqlite3_column_blob(stmt, last);
        size_t n = (size_t)sqlite3_column_bytes(stmt, last);
        if (data)
            memcpy(st->out, data, n < sizeof st->out ? n : sizeof st->out);
        st->rows++;
    }
    if (rc != SQLITE_DONE) {
        if (st->table->errors++ == 0)
            fprintf(stderr, "warning: sql %s: \"%s\": %s\n", st->table->name, sqlite3_sql(stmt),
                    sqlite3_errmsg(st->table->db));
    }
    sqlite3_reset(stmt);
}

static void op_point(sql_op_state *st, uint64_t i)
{
    (void)i;
    bench_key(bench_rng_below(&st->rng, sql_keys), st->key);
    sqlite3_bind_blob(st->table->point, 1, st->key, BENCH_KEY_SIZE, SQLITE_STATIC);
    drain(st, st->table->point);
}

/* The same point SELECT, 1000 per BEGIN..COMMIT: inside an open read transaction. */
static void op_point_in_txn(sql_op_state *st, uint64_t i)
{
    if (i % 1000 == 0)
        drain(st, st->table->begin);
    op_point(st, i);
    if (i % 1000 == 999)
        drain(st, st->table->commit);
}

static void op_in16(sql_op_state *st, uint64_t i)
{
    (void)i;
    for (int k = 0; k < 16; k++) {
        bench_key(bench_rng_below(&st->rng, sql_keys), st->keys16[k]);
        sqlite3_bind_blob(st->table->in16, k + 1, st->keys16[k], BENCH_KEY_SIZE, SQLITE_STATIC);
    }
    drain(st, st->table->in16);
}

static void op_scan(sql_op_state *st, uint64_t i)
{
    (void)i;
    bench_key(bench_rng_below(&st->rng, sql_keys), st->key);
    sqlite3_bind_blob(st->table->scan, 1, st->key, BENCH_KEY_SIZE, SQLITE_STATIC);
    drain(st, st->table->scan);
}

static void bind_key_value(sqlite3_stmt *stmt, sql_op_state *st, uint64_t index)
{
    bench_key(index, st->key);
    bench_value(index, 1, st->value);
    sqlite3_bind_blob(stmt, 1, st->key, BENCH_KEY_SIZE, SQLITE_STATIC);
    sqlite3_bind_blob(stmt, 2, st->value, BENCH_VALUE_SIZE, SQLITE_STATIC);
}

static void op_insert(sql_op_state *st, uint64_t i)
{
    bind_key_value(st->table->insert, st, st->first_index + i);
    drain(st, st->table->insert);
}

/* Inserts inside explicit transactions of 1000 statements. */
static void op_insert_batched(sql_op_state *st, uint64_t i)
{
    if (i % 1000 == 0)
        drain(st, st->table->begin);
    bind_key_value(st->table->insert, st, st->first_index + i);
    drain(st, st->table->insert);
    if (i % 1000 == 999)
        drain(st, st->table->commit);
}

static void op_upsert(sql_op_state *st, uint64_t i)
{
    (void)i;
    bind_key_value(st->table->upsert, st, bench_rng_below(&st->rng, sql_keys));
    drain(st, st->table->upsert);
}

static void op_delete(sql_op_state *st, uint64_t i)
{
    bench_key(st->first_index + i, st->key);
    sqlite3_bind_blob(st->table->del, 1, st->key, BENCH_KEY_SIZE, SQLITE_STATIC);
    drain(st, st->table->del);
}

static void op_count(sql_op_state *st, uint64_t i)
{
    (void)i;
    int rc = sqlite3_step(st->table->count);
    if (rc == SQLITE_ROW)
        st->rows += (uint64_t)sqlite3_column_int64(st->table->count, 0);
    else
        st->table->errors++;
    sqlite3_reset(st->table->count);
}

static void op_incr(sql_op_state *st, uint64_t i)
{
    bench_miss_key(0x1000 + i % 1024, st->key); /* 1024 counters, apart from the loaded keys */
    sqlite3_bind_blob(st->table->incr, 1, st->key, BENCH_KEY_SIZE, SQLITE_STATIC);
    drain(st, st->table->incr);
}

/* The same counters through native's UPDATE (they exist: op_incr's UPSERT made them). */
static void op_incr_update(sql_op_state *st, uint64_t i)
{
    bench_miss_key(0x1000 + i % 1024, st->key);
    sqlite3_bind_blob(st->table->incr_update, 1, st->key, BENCH_KEY_SIZE, SQLITE_STATIC);
    drain(st, st->table->incr_update);
}

/* Time `ops` ops (after a 1/20 warm-up) or until the phase budget ends and record ns per op (per
 * row when per_row) under `workload`, with a latency histogram of one op in BENCH_LATENCY_EVERY
 * for single statements. Nothing is recorded if the table lacks the statement. */
static void time_sql(sql_table *t, sqlite3_stmt *needed, sql_op_fn op, uint64_t ops,
                     uint64_t first_index, uint64_t seed, bool per_row, bool warm, uint64_t *done,
                     const char *workload)
{
    if (!needed)
        return;
    bool batched = op == op_insert_batched || op == op_point_in_txn; /* 1000 per transaction */
    bench_hist *hist = per_row || batched ? NULL : calloc(1, sizeof *hist);
    sql_op_state st;
    memset(&st, 0, sizeof st);
    st.table = t;
    st.first_index = first_index;
    bench_rng_seed(&st.rng, seed);
    if (warm) {
        for (uint64_t i = 0; i < ops / 20 + 1; i++)
            op(&st, i);
        if (batched && (ops / 20 + 1) % 1000 != 0)
            drain(&st, t->commit);
    }
    st.rows = 0;
    double t0 = bench_now_sec(), deadline = t0 + bench_cfg.phase_seconds;
    uint64_t i = 0;
    while (i < ops) {
        if (hist && i % BENCH_LATENCY_EVERY == 0) {
            uint64_t start = bench_now_ns();
            op(&st, i);
            bench_hist_add(hist, bench_now_ns() - start);
        } else {
            op(&st, i);
        }
        i++;
        if ((i & 63) == 0 && bench_now_sec() > deadline)
            break;
    }
    if (batched && i % 1000 != 0)
        drain(&st, t->commit);
    double elapsed = bench_now_sec() - t0;
    if (done)
        *done = i;
    double units = per_row ? (double)(st.rows ? st.rows : 1) : (double)i;
    bench_record(workload, t->name, elapsed * 1e9 / units);
    if (hist)
        bench_record_hist(workload, t->name, hist);
    free(hist);
}

static void load_table(sql_table *t)
{
    sql_op_state st;
    memset(&st, 0, sizeof st);
    st.table = t;
    for (uint64_t i = 0; i < sql_keys; i++)
        op_insert_batched(&st, i);
    if (sql_keys % 1000 != 0)
        drain(&st, t->commit);
    if (t->errors)
        fprintf(stderr, "warning: sql load %s: %llu errors\n", t->name,
                (unsigned long long)t->errors);
    t->errors = 0;
}

static const char *named(char *buf, size_t cap, const char *workload, const sql_setting *s)
{
    snprintf(buf, cap, "%s%s", workload, s->suffix);
    return buf;
}

/* Write statements compare feox with native under the setting's label, null_vtab as the floor. */
static void label_write(const char *workload, const sql_setting *s)
{
    char name[64];
    bench_compare(named(name, sizeof name, workload, s), "feox", "native", s->write_label);
    bench_compare(named(name, sizeof name, workload, s), "feox", "null_vtab", "SQL floor");
}

static void run_setting(const sql_setting *s, int rep)
{
    char *dir = bench_make_dir("sql");
    sql_table tables[3];
    int count = 0;
    memset(tables, 0, sizeof tables);
    if (open_feox_table(&tables[count], s, dir))
        count++;
    open_native_table(&tables[count++], s, dir);
    open_null_table(&tables[count++], s, dir);
    sql_keys = s->full ? (bench_cfg.n < 10000 ? bench_cfg.n : 10000) : bench_cfg.n;

    char name[64];
    for (int t = 0; t < count; t++) {
        if (strcmp(tables[t].name, "null_vtab") == 0)
            continue;
        double t0 = bench_now_sec();
        load_table(&tables[t]);
        if (!s->full)
            bench_record(named(name, sizeof name, "sql_load", s), tables[t].name,
                         (bench_now_sec() - t0) * 1e9 / (double)sql_keys);
    }

    const uint64_t reads = bench_cfg.read_ops, writes = bench_cfg.write_ops;
    uint64_t seed = bench_cfg.seed * 31 + (uint64_t)rep;
    const uint64_t fresh = bench_cfg.n + (1ull << 40); /* indexes of keys inserted by SQL */
    if (!s->full) {
        for (int t = 0; t < count; t++)
            time_sql(&tables[t], tables[t].point, op_point, reads, 0, seed, false, true, NULL,
                     named(name, sizeof name, "sql_point_select", s));
        for (int t = 0; t < count; t++)
            time_sql(&tables[t], tables[t].point, op_point_in_txn, reads, 0, seed, false, true,
                     NULL, named(name, sizeof name, "sql_point_select_txn", s));
        for (int t = 0; t < count; t++)
            time_sql(&tables[t], tables[t].in16, op_in16, reads / 16, 0, seed, false, true, NULL,
                     named(name, sizeof name, "sql_in16", s));
        for (int t = 0; t < count; t++)
            time_sql(&tables[t], tables[t].scan, op_scan, bench_cfg.scan_ops, 0, seed, false, true,
                     NULL, named(name, sizeof name, "sql_scan100", s));
    }
    if (s->file && !s->store_file && !s->full) {
        /* a new connection to these files, while the loading ones stay open (bench_sql_reopen.c) */
        sqlite3 *feox_db = strcmp(tables[0].name, "feox") == 0 ? tables[0].db : NULL;
        bench_sql_reopen(dir, feox_db, tables[count - 2].db, sql_keys, rep);
    }
    uint64_t inserted[3] = {0, 0, 0};
    for (int t = 0; t < count; t++)
        time_sql(&tables[t], tables[t].insert, op_insert, writes, fresh, seed, false, false,
                 &inserted[t], named(name, sizeof name, "sql_insert", s));
    if (!s->full)
        for (int t = 0; t < count; t++)
            time_sql(&tables[t], tables[t].insert, op_insert_batched, writes, fresh + (1ull << 30),
                     seed, false, false, NULL, named(name, sizeof name, "sql_insert_txn", s));
    for (int t = 0; t < count; t++)
        time_sql(&tables[t], tables[t].upsert, op_upsert, writes, 0, seed, false, true, NULL,
                 named(name, sizeof name, "sql_upsert", s));
    for (int t = 0; t < count; t++)
        time_sql(&tables[t], tables[t].del, op_delete, inserted[t], fresh, seed, false, false, NULL,
                 named(name, sizeof name, "sql_delete", s));
    if (!s->full) {
        for (int t = 0; t < count; t++)
            time_sql(&tables[t], tables[t].incr, op_incr, writes, 0, seed, false, true, NULL,
                     named(name, sizeof name, "sql_incr", s));
        for (int t = 0; t < count; t++)
            time_sql(&tables[t], tables[t].incr_update, op_incr_update, writes, 0, seed, false, true,
                     NULL, named(name, sizeof name, "sql_incr_update", s));
        for (int t = 0; t < count; t++)
            time_sql(&tables[t], tables[t].count, op_count, 3, 0, seed, true, false, NULL,
                     named(name, sizeof name, "sql_count_row", s));
    }
    for (int t = 0; t < count; t++) {
        if (tables[t].errors)
            fprintf(stderr, "warning: sql %s: %llu statement errors\n", tables[t].name,
                    (unsigned long long)tables[t].errors);
        close_table(&tables[t]);
    }
    bench_remove_dir(dir);
    free(dir);

    static const char *const writes_named[] = {"sql_insert", "sql_insert_txn", "sql_upsert",
                                               "sql_delete", "sql_incr",       "sql_load"};
    for (size_t w = 0; w < sizeof writes_named / sizeof writes_named[0]; w++)
        label_write(writes_named[w], s);
    bench_note(named(name, sizeof name, "sql_in16", s), "ns per statement of 16 keys");
    bench_note(named(name, sizeof name, "sql_count_row", s), "ns per row of SELECT count(*)");
    bench_note(named(name, sizeof name, "sql_insert", s),
               "autocommit per statement; null_vtab = SQL floor");
    bench_note(named(name, sizeof name, "sql_insert_txn", s), "1000 inserts per BEGIN..COMMIT");
    bench_note(named(name, sizeof name, "sql_incr", s),
               "feox_incr vs native INSERT..ON CONFLICT DO UPDATE..RETURNING");
    bench_note(named(name, sizeof name, "sql_incr_update", s),
               "native UPDATE kv SET value = value + 1 WHERE key = ? (existing counters)");
}

void bench_run_sql_workloads(int rep)
{
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++)
        run_setting(&settings[i], rep);
    bench_note(
        "sql_point_select",
        "WAL file database, synchronous=NORMAL, warm cache, feox in the database (headline)");
    bench_note("sql_point_select.file", "the same, feox in a store file (path=)");
    bench_note("sql_point_select_txn",
               "the same, 1000 per BEGIN..COMMIT (a read transaction open)");
    bench_note("sql_point_select.mem", ":memory: database, feox memory mode");
    bench_sql_reopen_notes();
    bench_note("sql_insert.full", "synchronous=FULL, feox in the database, 10K preloaded rows");
    bench_note("sql_insert.file.full", "synchronous=FULL vs feox sync='full', 10K preloaded rows");
}
