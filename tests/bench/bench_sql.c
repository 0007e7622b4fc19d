/*
 * bench_sql.c — the same SQL statements, prepared once, on three tables named kv:
 *   feox      the feox virtual table (extension linked statically, memory mode, keytype=blob);
 *   native    CREATE TABLE kv(key BLOB PRIMARY KEY, value BLOB) WITHOUT ROWID in :memory:;
 *   null_vtab an empty virtual table defined here: one constant row per key lookup, constant rows
 *             for scans, writes accepted and dropped; it prints the floor of SQLite's vtab path.
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
    c->rows = idx_num == 1 ? 1 : (sqlite3_int64)bench_cfg.n;
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
    sqlite3_stmt *point, *in16, *scan, *insert, *upsert, *del, *count, *incr, *begin, *commit;
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
    t->begin = prepare(t->db, "BEGIN");
    t->commit = prepare(t->db, "COMMIT");
}

static bool open_feox_table(sql_table *t)
{
    if (!sqlite3_feox_init)
        return false;
    t->name = "feox";
    sqlite3_open(":memory:", &t->db);
    char *err = NULL;
    if (sqlite3_feox_init(t->db, &err, NULL) != SQLITE_OK) {
        fprintf(stderr, "warning: sqlite3_feox_init: %s\n", err ? err : "?");
        sqlite3_free(err);
        sqlite3_close(t->db);
        return false;
    }
    static const char *creates[] = {
        "CREATE VIRTUAL TABLE kv USING feox(keytype=blob)",
        "CREATE VIRTUAL TABLE kv USING feox(keytype='blob')",
        "CREATE VIRTUAL TABLE kv USING feox",
    };
    for (size_t i = 0; i < sizeof creates / sizeof creates[0]; i++) {
        if (sqlite3_exec(t->db, creates[i], NULL, NULL, NULL) == SQLITE_OK) {
            prepare_statements(t, true, false);
            return true;
        }
    }
    fprintf(stderr, "warning: feox vtab: %s\n", sqlite3_errmsg(t->db));
    sqlite3_close(t->db);
    return false;
}

static void open_native_table(sql_table *t)
{
    t->name = "native";
    sqlite3_open(":memory:", &t->db);
    exec_or_die(t->db, "PRAGMA cache_size=-2000000");
    exec_or_die(t->db, "CREATE TABLE kv(key BLOB PRIMARY KEY, value BLOB) WITHOUT ROWID");
    prepare_statements(t, false, true);
}

static void open_null_table(sql_table *t)
{
    t->name = "null_vtab";
    sqlite3_open(":memory:", &t->db);
    sqlite3_create_module(t->db, "nullkv", &null_module, NULL);
    exec_or_die(t->db, "CREATE VIRTUAL TABLE kv USING nullkv");
    prepare_statements(t, false, false);
}

static void close_table(sql_table *t)
{
    sqlite3_stmt *stmts[] = {t->point, t->in16,  t->scan, t->insert, t->upsert,
                             t->del,   t->count, t->incr, t->begin,  t->commit};
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
    bench_key(bench_rng_below(&st->rng, bench_cfg.n), st->key);
    sqlite3_bind_blob(st->table->point, 1, st->key, BENCH_KEY_SIZE, SQLITE_STATIC);
    drain(st, st->table->point);
}

static void op_in16(sql_op_state *st, uint64_t i)
{
    (void)i;
    for (int k = 0; k < 16; k++) {
        bench_key(bench_rng_below(&st->rng, bench_cfg.n), st->keys16[k]);
        sqlite3_bind_blob(st->table->in16, k + 1, st->keys16[k], BENCH_KEY_SIZE, SQLITE_STATIC);
    }
    drain(st, st->table->in16);
}

static void op_scan(sql_op_state *st, uint64_t i)
{
    (void)i;
    bench_key(bench_rng_below(&st->rng, bench_cfg.n), st->key);
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
    bind_key_value(st->table->upsert, st, bench_rng_below(&st->rng, bench_cfg.n));
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

/* Time `ops` ops (after a 1/20 warm-up) or until the phase budget ends; ns per op, or per row
 * when per_row. Returns -1 if the table lacks the statement. */
static double time_sql(sql_table *t, sqlite3_stmt *needed, sql_op_fn op, uint64_t ops,
                       uint64_t first_index, uint64_t seed, bool per_row, bool warm, uint64_t *done)
{
    if (!needed)
        return -1;
    sql_op_state st;
    memset(&st, 0, sizeof st);
    st.table = t;
    st.first_index = first_index;
    bench_rng_seed(&st.rng, seed);
    if (warm)
        for (uint64_t i = 0; i < ops / 20 + 1; i++)
            op(&st, i);
    st.rows = 0;
    double t0 = bench_now_sec(), deadline = t0 + bench_cfg.phase_seconds;
    uint64_t i = 0;
    while (i < ops) {
        op(&st, i);
        i++;
        if ((i & 63) == 0 && bench_now_sec() > deadline)
            break;
    }
    if (op == op_insert_batched && i % 1000 != 0)
        drain(&st, t->commit);
    double elapsed = bench_now_sec() - t0;
    if (done)
        *done = i;
    double units = per_row ? (double)(st.rows ? st.rows : 1) : (double)i;
    return elapsed * 1e9 / units;
}

static void record(const char *workload, sql_table *t, double ns)
{
    if (ns >= 0)
        bench_record(workload, t->name, ns);
}

static void load_table(sql_table *t)
{
    sql_op_state st;
    memset(&st, 0, sizeof st);
    st.table = t;
    for (uint64_t i = 0; i < bench_cfg.n; i++)
        op_insert_batched(&st, i);
    if (bench_cfg.n % 1000 != 0)
        drain(&st, t->commit);
    if (t->errors)
        fprintf(stderr, "warning: sql load %s: %llu errors\n", t->name,
                (unsigned long long)t->errors);
    t->errors = 0;
}

void bench_run_sql_workloads(int rep)
{
    sql_table tables[3];
    int count = 0;
    memset(tables, 0, sizeof tables);
    if (open_feox_table(&tables[count]))
        count++;
    open_native_table(&tables[count++]);
    open_null_table(&tables[count++]);

    for (int t = 0; t < count; t++) {
        if (strcmp(tables[t].name, "null_vtab") == 0)
            continue;
        double t0 = bench_now_sec();
        load_table(&tables[t]);
        bench_record("sql_load", tables[t].name,
                     (bench_now_sec() - t0) * 1e9 / (double)bench_cfg.n);
    }

    const uint64_t reads = bench_cfg.read_ops, writes = bench_cfg.write_ops;
    uint64_t seed = bench_cfg.seed * 31 + (uint64_t)rep;
    const uint64_t fresh = bench_cfg.n + (1ull << 40); /* indexes of keys inserted by SQL */
    for (int t = 0; t < count; t++)
        record("sql_point_select", &tables[t],
               time_sql(&tables[t], tables[t].point, op_point, reads, 0, seed, false, true, NULL));
    for (int t = 0; t < count; t++)
        record(
            "sql_in16", &tables[t],
            time_sql(&tables[t], tables[t].in16, op_in16, reads / 16, 0, seed, false, true, NULL));
    for (int t = 0; t < count; t++)
        record("sql_scan100", &tables[t],
               time_sql(&tables[t], tables[t].scan, op_scan, bench_cfg.scan_ops, 0, seed, false,
                        true, NULL));
    uint64_t inserted[3] = {0, 0, 0}, batched[3] = {0, 0, 0};
    for (int t = 0; t < count; t++)
        record("sql_insert", &tables[t],
               time_sql(&tables[t], tables[t].insert, op_insert, writes, fresh, seed, false, false,
                        &inserted[t]));
    for (int t = 0; t < count; t++)
        record("sql_insert_txn", &tables[t],
               time_sql(&tables[t], tables[t].insert, op_insert_batched, writes,
                        fresh + (1ull << 30), seed, false, false, &batched[t]));
    for (int t = 0; t < count; t++)
        record(
            "sql_upsert", &tables[t],
            time_sql(&tables[t], tables[t].upsert, op_upsert, writes, 0, seed, false, true, NULL));
    for (int t = 0; t < count; t++)
        record("sql_delete", &tables[t],
               time_sql(&tables[t], tables[t].del, op_delete, inserted[t], fresh, seed, false,
                        false, NULL));
    for (int t = 0; t < count; t++)
        record("sql_incr", &tables[t],
               time_sql(&tables[t], tables[t].incr, op_incr, writes, 0, seed, false, true, NULL));
    for (int t = 0; t < count; t++)
        record("sql_count_row", &tables[t],
               time_sql(&tables[t], tables[t].count, op_count, 3, 0, seed, true, false, NULL));
    for (int t = 0; t < count; t++) {
        if (tables[t].errors)
            fprintf(stderr, "warning: sql %s: %llu statement errors\n", tables[t].name,
                    (unsigned long long)tables[t].errors);
        close_table(&tables[t]);
    }
    bench_note("sql_in16", "ns per statement of 16 keys");
    bench_note("sql_count_row", "ns per row of SELECT count(*)");
    bench_note("sql_insert", "autocommit per statement; null_vtab = SQL floor");
    bench_note("sql_insert_txn", "1000 inserts per BEGIN..COMMIT");
    bench_note("sql_incr", "feox_incr vs native INSERT..ON CONFLICT DO UPDATE..RETURNING");
}
