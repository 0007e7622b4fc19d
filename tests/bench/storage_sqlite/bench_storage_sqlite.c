/*
 * bench_storage_sqlite.c — measurements of the "sqlite" storage backend (ext/storage_sqlite.c)
 * called directly, against native SQLite tables in the same WAL database (synchronous=NORMAL,
 * 256 MiB page cache), 16-byte keys in random order and 100-byte values as in feox_bench.
 * Prints numbers, asserts nothing. Not part of `make bench`:
 *
 *   make B=build build/bench/bench_storage_sqlite && build/bench/bench_storage_sqlite [N [reps
 * [dir]]]
 *
 * Rows, all in one transaction of N inserts (BEGIN .. COMMIT timed):
 *   native            CREATE TABLE (k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID: the target's base
 *   native6           the same with the backend's six columns (tag, ts, expires, seq)
 *   native6+seqidx    native6 + an index on seq (one seq per transaction): the index design
 *   native6+log       native6 + an append-only log(seq INTEGER PRIMARY KEY, key, ts): the log
 *   through/buffered  the backend, write-through or buffered (pending map sorted at sync), with
 *                     the feed written (feed_limit above N) and as a bulk transaction that
 *                     writes no feed rows (feed_limit below N)
 * Then: autocommit single writes, the refresh fast path, a refresh after another connection's
 * commit of k changes, and a full load.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "feox_ext.h"
#include "storage_sqlite.h"

static char db_path[512];

static double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, sqlite3 *db)
{
    fprintf(stderr, "bench_storage_sqlite: %s: %s\n", what, db ? sqlite3_errmsg(db) : "");
    exit(1);
}

static void exec(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "%s: %s\n", sql, err ? err : "?");
        exit(1);
    }
}

static sqlite3 *open_db(void)
{
    sqlite3 *db;
    if (sqlite3_open(db_path, &db) != SQLITE_OK) {
        die("open", db);
    }
    exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-262144");
    return db;
}

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15u;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

/* Key i: big-endian splitmix64(i ^ seed) then big-endian i (random order, unique). */
static void make_key(uint64_t i, unsigned char key[16])
{
    uint64_t h = splitmix64(i ^ 0x5eed0f0eu);
    for (int b = 0; b < 8; b++) {
        key[b] = (unsigned char)(h >> (56 - 8 * b));
        key[8 + b] = (unsigned char)(i >> (56 - 8 * b));
    }
}

static unsigned char value[100];

/* ---- native variants --------------------------------------------------------------------------
 */

typedef enum { NATIVE, NATIVE6, NATIVE6_SEQIDX, NATIVE6_LOG } native_kind;

static double run_native(sqlite3 *db, native_kind kind, uint64_t n)
{
    exec(db, "DROP TABLE IF EXISTS nat; DROP TABLE IF EXISTS nat_log");
    exec(db, kind == NATIVE ? "CREATE TABLE nat(k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID"
                            : "CREATE TABLE nat(k BLOB PRIMARY KEY, v, tag INTEGER NOT NULL,"
                              " ts INTEGER NOT NULL, expires INTEGER, seq INTEGER NOT NULL)"
                              " WITHOUT ROWID");
    if (kind == NATIVE6_SEQIDX) {
        exec(db, "CREATE INDEX nat_seq ON nat(seq)");
    }
    if (kind == NATIVE6_LOG) {
        exec(db, "CREATE TABLE nat_log(seq INTEGER PRIMARY KEY, key BLOB NOT NULL, ts INTEGER)");
    }
    exec(db, "PRAGMA wal_checkpoint(TRUNCATE)");
    sqlite3_stmt *ins, *log = NULL;
    const char *sql = kind == NATIVE ? "INSERT INTO nat VALUES(?1, ?2)"
                                     : "INSERT OR REPLACE INTO nat VALUES(?1, ?2, 4, ?3, NULL, ?4)";
    if (sqlite3_prepare_v2(db, sql, -1, &ins, NULL) != SQLITE_OK) {
        die("prepare", db);
    }
    if (kind == NATIVE6_LOG && sqlite3_prepare_v2(db, "INSERT INTO nat_log VALUES(?1, ?2, NULL)",
                                                  -1, &log, NULL) != SQLITE_OK) {
        die("prepare", db);
    }
    unsigned char key[16];
    double t0 = now_sec();
    exec(db, "BEGIN");
    for (uint64_t i = 0; i < n; i++) {
        make_key(i, key);
        sqlite3_bind_blob(ins, 1, key, 16, SQLITE_STATIC);
        sqlite3_bind_blob(ins, 2, value, 100, SQLITE_STATIC);
        if (kind != NATIVE) {
            sqlite3_bind_int64(ins, 3, (sqlite3_int64)(1000 + i));
            sqlite3_bind_int64(ins, 4, kind == NATIVE6_LOG ? (sqlite3_int64)(i + 1) : 1);
        }
        if (sqlite3_step(ins) != SQLITE_DONE) {
            die("insert", db);
        }
        sqlite3_reset(ins);
        if (log != NULL) {
            sqlite3_bind_int64(log, 1, (sqlite3_int64)(i + 1));
            sqlite3_bind_blob(log, 2, key, 16, SQLITE_STATIC);
            if (sqlite3_step(log) != SQLITE_DONE) {
                die("log", db);
            }
            sqlite3_reset(log);
        }
    }
    exec(db, "COMMIT");
    double t = now_sec() - t0;
    sqlite3_finalize(ins);
    sqlite3_finalize(log);
    exec(db, "DROP TABLE IF EXISTS nat; DROP TABLE IF EXISTS nat_log");
    return t;
}

/* ---- the backend ------------------------------------------------------------------------------
 */

static feox_err null_put(void *ctx, const feox_storage_record *rec)
{
    (*(uint64_t *)ctx)++;
    (void)rec;
    return FEOX_OK;
}

static feox_err null_del(void *ctx, const void *key, uint32_t key_len, uint64_t ts)
{
    (*(uint64_t *)ctx)++;
    (void)key;
    (void)key_len;
    (void)ts;
    return FEOX_OK;
}

typedef struct backend {
    feox_sqlite_table t;
    feox_storage *st;
} backend;

static void open_backend(backend *bk, sqlite3 *db, feox_sqlite_write_mode mode, uint64_t feed_limit)
{
    memset(bk, 0, sizeof *bk);
    bk->t.db = db;
    bk->t.schema = "main";
    bk->t.table = "kv";
    bk->t.write_mode = mode;
    bk->t.feed_limit = feed_limit;
    feox_config cfg;
    feox_config_init(&cfg);
    cfg.storage_arg = &bk->t;
    if (feox_sqlite_storage()->open(feox_sqlite_storage(), &cfg, NULL, &bk->st) != FEOX_OK) {
        die("backend open", NULL);
    }
    uint64_t count = 0;
    feox_storage_sink sink = {.ctx = &count, .put = null_put, .del = null_del};
    if (bk->st->methods->load(bk->st, NULL, &sink) != FEOX_OK) {
        die(bk->t.errmsg, NULL);
    }
}

static void check(backend *bk, feox_err err)
{
    if (err != FEOX_OK) {
        fprintf(stderr, "backend: %s (%s)\n", feox_strerror(err), bk->t.errmsg);
        exit(1);
    }
}

static void backend_write(backend *bk, uint64_t i, uint64_t ts)
{
    unsigned char key[16];
    make_key(i, key);
    feox_storage_record rec = {key, 16, value, 100, FEOX_TAG_BLOB, ts, 0, 0};
    uint64_t location, seq;
    check(bk, bk->st->methods->write(bk->st, NULL, &rec, NULL, &location, &seq));
}

static void fresh_tables(sqlite3 *db)
{
    char *err = NULL;
    if (feox_sqlite_storage_drop(db, "main", "kv", &err) != SQLITE_OK ||
        feox_sqlite_storage_create(db, "main", "kv", &err) != SQLITE_OK) {
        die(err, NULL);
    }
    exec(db, "PRAGMA wal_checkpoint(TRUNCATE)");
}

/* Write rows [from, from + n) in one transaction; returns seconds. */
static double backend_txn(backend *bk, uint64_t from, uint64_t n)
{
    double t0 = now_sec();
    exec(bk->t.db, "BEGIN IMMEDIATE");
    check(bk, feox_sqlite_storage_begin(&bk->t));
    for (uint64_t i = from; i < from + n; i++) {
        backend_write(bk, i, 1000 + i);
    }
    check(bk, feox_sqlite_storage_sync(&bk->t));
    exec(bk->t.db, "COMMIT");
    feox_sqlite_storage_commit(&bk->t);
    return now_sec() - t0;
}

static double run_backend(sqlite3 *db, feox_sqlite_write_mode mode, uint64_t feed_limit, uint64_t n)
{
    fresh_tables(db);
    backend bk;
    open_backend(&bk, db, mode, feed_limit);
    double t = backend_txn(&bk, 0, n);
    bk.st->methods->close(bk.st);
    return t;
}

static void report(const char *name, double sec, uint64_t n, double base, double base6)
{
    printf("  %-34s %9.0f ns/row  %5.2fx native  %5.2fx native6\n", name, sec * 1e9 / (double)n,
           sec / base, sec / base6);
    fflush(stdout);
}

/* ---- autocommit, refresh, load ----------------------------------------------------------------
 */

/* Autocommit single-row writes, in alternating blocks so that all three see the same machine:
 * native INSERT OR REPLACE; the backend buffered; the backend write-through (BEGIN IMMEDIATE,
 * begin, write, sync, COMMIT, commit: what one autocommit INSERT through the vtab will run). */
static void run_autocommit(sqlite3 *db, uint64_t preload)
{
    const uint64_t block = 200, blocks = 10;
    exec(db,
         "DROP TABLE IF EXISTS nat; CREATE TABLE nat(k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID");
    sqlite3_stmt *ins;
    sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO nat VALUES(?1, ?2)", -1, &ins, NULL);
    unsigned char key[16];
    exec(db, "BEGIN");
    for (uint64_t i = 0; i < preload; i++) {
        make_key(i, key);
        sqlite3_bind_blob(ins, 1, key, 16, SQLITE_STATIC);
        sqlite3_bind_blob(ins, 2, value, 100, SQLITE_STATIC);
        sqlite3_step(ins);
        sqlite3_reset(ins);
    }
    exec(db, "COMMIT");
    fresh_tables(db);
    backend buffered, through;
    open_backend(&buffered, db, FEOX_SQLITE_WRITE_BUFFERED, 0);
    backend_txn(&buffered, 0, preload);
    buffered.st->methods->close(buffered.st);
    open_backend(&buffered, db, FEOX_SQLITE_WRITE_BUFFERED, 0);
    open_backend(&through, db, FEOX_SQLITE_WRITE_THROUGH, 0); /* the same table, refreshed */
    uint64_t count = 0;
    feox_storage_sink sink = {.ctx = &count, .put = null_put, .del = null_del};
    double t_native = 0, t_buffered = 0, t_through = 0;
    uint64_t next = preload;
    /* Checkpoints are taken between blocks, untimed: otherwise whichever block crosses the
     * 1000-page mark pays for everyone's. */
    exec(db, "PRAGMA wal_autocheckpoint=0");
    for (uint64_t b = 0; b < blocks; b++) {
        exec(db, "PRAGMA wal_checkpoint(TRUNCATE)");
        double t0 = now_sec();
        for (uint64_t i = 0; i < block; i++) {
            make_key(next + i, key);
            sqlite3_bind_blob(ins, 1, key, 16, SQLITE_STATIC);
            sqlite3_bind_blob(ins, 2, value, 100, SQLITE_STATIC);
            if (sqlite3_step(ins) != SQLITE_DONE) {
                die("autocommit insert", db);
            }
            sqlite3_reset(ins);
        }
        t_native += now_sec() - t0;
        backend *both[2] = {&buffered, &through};
        double *sums[2] = {&t_buffered, &t_through};
        for (int m = 0; m < 2; m++) {
            check(both[m], both[m]->st->methods->refresh(both[m]->st, NULL, &sink));
            exec(db, "PRAGMA wal_checkpoint(TRUNCATE)");
            t0 = now_sec();
            for (uint64_t i = 0; i < block; i++) {
                backend_txn(both[m], next + i, 1);
            }
            *sums[m] += now_sec() - t0;
            if (m == 0) {
                /* the other backend's cache is behind now: not timed */
                exec(db, "BEGIN");
                check(&through, through.st->methods->refresh(through.st, NULL, &sink));
                exec(db, "COMMIT");
            }
        }
        next += block;
        exec(db, "BEGIN");
        check(&buffered, buffered.st->methods->refresh(buffered.st, NULL, &sink));
        exec(db, "COMMIT");
    }
    exec(db, "PRAGMA wal_autocheckpoint=1000");
    double ops = (double)(block * blocks);
    printf("autocommit single-row writes (%llu rows preloaded, %llu each, alternating blocks):\n"
           "  native INSERT OR REPLACE %.1f us; backend buffered %.1f us = %.2fx;"
           " write-through %.1f us = %.2fx\n",
           (unsigned long long)preload, (unsigned long long)(block * blocks), t_native * 1e6 / ops,
           t_buffered * 1e6 / ops, t_buffered / t_native, t_through * 1e6 / ops,
           t_through / t_native);
    sqlite3_finalize(ins);
    exec(db, "DROP TABLE nat");
    buffered.st->methods->close(buffered.st);
    through.st->methods->close(through.st);
}

static void run_refresh(sqlite3 *db, uint64_t n)
{
    fresh_tables(db);
    backend a, b;
    open_backend(&a, db, FEOX_SQLITE_WRITE_BUFFERED, 0);
    backend_txn(&a, 0, n);
    sqlite3 *db2 = open_db();
    uint64_t count = 0;
    feox_storage_sink sink = {.ctx = &count, .put = null_put, .del = null_del};
    double t0 = now_sec();
    open_backend(&b, db2, FEOX_SQLITE_WRITE_BUFFERED, 0); /* loads */
    double load = now_sec() - t0;
    printf("  full load of %llu rows into a null sink: %.3f s = %.2fM rows/s\n",
           (unsigned long long)n, load, (double)n / load / 1e6);

    exec(db2, "BEGIN; SELECT count(*) FROM sqlite_schema");
    check(&b, b.st->methods->refresh(b.st, NULL, &sink));
    const int calls = 1000000;
    t0 = now_sec();
    for (int i = 0; i < calls; i++) {
        check(&b, b.st->methods->refresh(b.st, NULL, &sink));
    }
    printf("  refresh, nothing changed (read txn open): %.1f ns\n", (now_sec() - t0) * 1e9 / calls);
    exec(db2, "COMMIT");

    uint64_t ks[] = {0, 1, 100, 10000};
    for (size_t k = 0; k < sizeof ks / sizeof ks[0]; k++) {
        /* overwrite ks[k] existing keys */
        exec(a.t.db, "BEGIN IMMEDIATE");
        check(&a, feox_sqlite_storage_begin(&a.t));
        for (uint64_t i = 0; i < ks[k]; i++) {
            backend_write(&a, (i * 7919) % n, 5000000 + i);
        }
        check(&a, feox_sqlite_storage_sync(&a.t));
        exec(a.t.db, "COMMIT");
        feox_sqlite_storage_commit(&a.t);
        count = 0;
        t0 = now_sec();
        exec(db2, "BEGIN; SELECT count(*) FROM sqlite_schema");
        check(&b, b.st->methods->refresh(b.st, NULL, &sink));
        exec(db2, "COMMIT");
        double t = now_sec() - t0;
        printf("  next statement after a foreign commit of %llu changes: %.3f ms (%llu sent)\n",
               (unsigned long long)ks[k], t * 1e3, (unsigned long long)count);
    }
    a.st->methods->close(a.st);
    b.st->methods->close(b.st);
    sqlite3_close(db2);
}

static double median(double *v, int n)
{
    for (int i = 1; i < n; i++) { /* insertion sort: n is tiny */
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    }
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 100000;
    int reps = argc > 2 ? atoi(argv[2]) : 3;
    reps = reps < 1 ? 1 : reps > 16 ? 16 : reps;
    const char *dir = argc > 3 ? argv[3] : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    snprintf(db_path, sizeof db_path, "%s/bench_storage_sqlite.%d.db", dir, (int)getpid());
    for (int i = 0; i < 100; i++) {
        value[i] = (unsigned char)(i * 37 + 11);
    }
    sqlite3 *db = open_db();
    printf("bench_storage_sqlite: SQLite %s, N=%llu, WAL, synchronous=NORMAL, cache 256 MiB, %s\n",
           sqlite3_libversion(), (unsigned long long)n, db_path);
    printf("one transaction of N inserts (keys 16 B random order, values 100 B), median of %d"
           " interleaved runs after one warm-up:\n",
           reps);
    uint64_t log_all = n + 1, bulk = n / 2 > 0 ? n / 2 : 1;
    enum {
        V_NATIVE,
        V_NATIVE6,
        V_SEQIDX,
        V_LOG,
        V_THROUGH,
        V_BUFFERED,
        V_THROUGH_BULK,
        V_BUFFERED_BULK,
        V_COUNT
    };
    static const char *const names[V_COUNT] = {"native (k, v) WITHOUT ROWID",
                                               "native6 (6 columns)",
                                               "native6 + index(seq)",
                                               "native6 + log table",
                                               "backend write-through, feed",
                                               "backend buffered, feed",
                                               "backend write-through, bulk (no feed)",
                                               "backend buffered, bulk (no feed)"};
    double runs[V_COUNT][16];
    run_native(db, NATIVE, n); /* warm-up: grows the file once */
    for (int r = 0; r < reps; r++) {
        runs[V_NATIVE][r] = run_native(db, NATIVE, n);
        runs[V_NATIVE6][r] = run_native(db, NATIVE6, n);
        runs[V_SEQIDX][r] = run_native(db, NATIVE6_SEQIDX, n);
        runs[V_LOG][r] = run_native(db, NATIVE6_LOG, n);
        runs[V_THROUGH][r] = run_backend(db, FEOX_SQLITE_WRITE_THROUGH, log_all, n);
        runs[V_BUFFERED][r] = run_backend(db, FEOX_SQLITE_WRITE_BUFFERED, log_all, n);
        runs[V_THROUGH_BULK][r] = run_backend(db, FEOX_SQLITE_WRITE_THROUGH, bulk, n);
        runs[V_BUFFERED_BULK][r] = run_backend(db, FEOX_SQLITE_WRITE_BUFFERED, bulk, n);
    }
    double base = median(runs[V_NATIVE], reps), base6 = median(runs[V_NATIVE6], reps);
    for (int v = 0; v < V_COUNT; v++) {
        report(names[v], median(runs[v], reps), n, base, base6);
    }
    run_autocommit(db, n < 100000 ? n : 100000);
    run_refresh(db, n);
    sqlite3_close(db);
    char path[600];
    const char *suffixes[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s%s", db_path, suffixes[i]);
        unlink(path);
    }
    return 0;
}
