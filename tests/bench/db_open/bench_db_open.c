/*
 * bench_db_open.c — opening a database-mode feox table (records in shadow tables of the database,
 * ext/db_mode.c), issue 13's "time from sqlite3_open to the first answered point SELECT", "full
 * reload" and "after another process commits k changes" lines. The extension is linked in
 * (-DSQLITE_CORE). Prints numbers, asserts nothing. Not part of `make bench`:
 *
 *   make B=build build/bench/bench_db_open && build/bench/bench_db_open [N [reps [dir]]]
 *
 * Once: a WAL database (synchronous=NORMAL) <dir>/bench_db_open_<N>.db with a feox table kv and a
 * native WITHOUT ROWID table nat holding N records (16-byte keys in random order, 100-byte
 * values), written in one transaction each; kept and reused by later runs of the same N (delete
 * the file to rebuild it). Then, per repetition, on a fresh connection each time:
 *   open->first SELECT   sqlite3_open + the extension + prepare + one answered point SELECT of a
 *                        present key (the cache is partial then: it loads lazily, db_mode.c)
 *   native               the same on nat: SQLite's own floor
 *   complete load        from that SELECT until the cache holds every row (SELECT count(*)
 *                        finishes the load; rows/s over the whole open)
 *   feed overflow        another connection commits more changes (70000) than the feed keeps;
 *                        the next statement compares the cache with the table (rows/s over the
 *                        table: what a full reload used to cost), then count(*)
 *   k changes            another connection commits k = 1, 10, 100, 1000 updates; the next
 *                        prepared point SELECT's time (the feed applied), and the same on the
 *                        native table (SQLite's own cost of a changed database)
 * The machine is usually shared: read the numbers as +-30%.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

int sqlite3_feox_init(sqlite3 *db, char **err, const sqlite3_api_routines *api);

#define K_ROUNDS 10 /* commits of k changes measured per k */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void die(const char *what, sqlite3 *db)
{
    fprintf(stderr, "bench_db_open: %s: %s\n", what, db ? sqlite3_errmsg(db) : "");
    exit(1);
}

static void exec(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "bench_db_open: %s: %s\n", sql, err ? err : "?");
        exit(1);
    }
}

static void make_key(uint64_t i, unsigned char key[16])
{
    uint64_t z = i + 0x9e3779b97f4a7c15ull; /* splitmix64: random order, unique per i */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    for (int b = 0; b < 8; b++) {
        key[b] = (unsigned char)(z >> (56 - 8 * b));
        key[8 + b] = (unsigned char)(i >> (56 - 8 * b));
    }
}

static sqlite3 *open_db(const char *path)
{
    sqlite3 *db;
    char *err = NULL;
    if (sqlite3_open(path, &db) != SQLITE_OK) {
        die("open", db);
    }
    if (sqlite3_feox_init(db, &err, NULL) != SQLITE_OK) {
        fprintf(stderr, "bench_db_open: sqlite3_feox_init: %s\n", err ? err : "?");
        exit(1);
    }
    exec(db, "PRAGMA synchronous=NORMAL");
    return db;
}

static void fill(sqlite3 *db, const char *table, uint64_t n)
{
    char sql[128];
    snprintf(sql, sizeof sql, "INSERT INTO %s(key, value) VALUES(?1, ?2)", table);
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
        die("prepare insert", db);
    }
    unsigned char key[16], value[100];
    memset(value, 'v', sizeof value);
    exec(db, "BEGIN");
    for (uint64_t i = 0; i < n; i++) {
        make_key(i, key);
        sqlite3_bind_blob(s, 1, key, sizeof key, SQLITE_STATIC);
        sqlite3_bind_blob(s, 2, value, sizeof value, SQLITE_STATIC);
        if (sqlite3_step(s) != SQLITE_DONE) {
            die("insert", db);
        }
        sqlite3_reset(s);
    }
    exec(db, "COMMIT");
    sqlite3_finalize(s);
}

/* One point SELECT of key i on table; returns 1 if it answered a row. */
static int point_select(sqlite3 *db, const char *table, uint64_t i)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT value FROM %s WHERE key = ?1", table);
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
        die("prepare select", db);
    }
    unsigned char key[16];
    make_key(i, key);
    sqlite3_bind_blob(s, 1, key, sizeof key, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        die("select", db);
    }
    sqlite3_finalize(s);
    return rc == SQLITE_ROW;
}

/* Step a prepared point SELECT of key i (bound), then reset it. */
static void step_point(sqlite3 *db, sqlite3_stmt *s, uint64_t i)
{
    unsigned char key[16];
    make_key(i, key);
    sqlite3_bind_blob(s, 1, key, sizeof key, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        die("select", db);
    }
    sqlite3_reset(s);
}

static long long count_rows(sqlite3 *db, const char *table)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK || sqlite3_step(s) != SQLITE_ROW) {
        die("count", db);
    }
    long long n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return n;
}

/* Another connection updates k keys (k > the feed's 65536 keeps no feed: a reload follows). */
static void other_commits(const char *path, const char *table, uint64_t n, uint64_t k,
                          uint64_t round)
{
    sqlite3 *db = open_db(path);
    sqlite3_stmt *s;
    char sql[128];
    snprintf(sql, sizeof sql, "UPDATE %s SET value = ?2 WHERE key = ?1", table);
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
        die("prepare update", db);
    }
    exec(db, "BEGIN");
    unsigned char key[16];
    for (uint64_t j = 0; j < k; j++) {
        make_key((j * 7919 + round * 104729) % n, key);
        sqlite3_bind_blob(s, 1, key, sizeof key, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, (sqlite3_int64)(round * 1000000 + j));
        if (sqlite3_step(s) != SQLITE_DONE) {
            die("update", db);
        }
        sqlite3_reset(s);
    }
    exec(db, "COMMIT");
    sqlite3_finalize(s);
    sqlite3_close(db);
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    int reps = argc > 2 ? atoi(argv[2]) : 3;
    const char *dir = argc > 3 ? argv[3] : "/tmp";
    char path[4096];
    snprintf(path, sizeof path, "%s/bench_db_open_%llu.db", dir, (unsigned long long)n);
    if (access(path, F_OK) != 0) {
        sqlite3 *db = open_db(path);
        exec(db, "PRAGMA journal_mode=WAL");
        exec(db, "CREATE VIRTUAL TABLE kv USING feox");
        exec(db, "CREATE TABLE nat(key BLOB PRIMARY KEY, value) WITHOUT ROWID");
        double t0 = now_ms();
        fill(db, "kv", n);
        fill(db, "nat", n);
        exec(db, "PRAGMA wal_checkpoint(TRUNCATE)");
        sqlite3_close(db);
        printf("created %s (%llu rows, %.0f ms)\n", path, (unsigned long long)n, now_ms() - t0);
    }
    printf("bench_db_open: N=%llu, %d reps (WAL, synchronous=NORMAL; shared machine: +-30%%)\n",
           (unsigned long long)n, reps);
    for (int r = 0; r < reps; r++) {
        double t0 = now_ms();
        sqlite3 *db = open_db(path);
        int hit = point_select(db, "kv", (uint64_t)r * 7 % n);
        double t1 = now_ms();
        long long rows = count_rows(db, "kv");
        double t2 = now_ms();
        sqlite3 *nat = open_db(path);
        int nat_hit = point_select(nat, "nat", (uint64_t)r * 7 % n);
        double t3 = now_ms();
        sqlite3_close(nat);
        printf("rep %d: open->first SELECT %.2f ms (%s); native %.2f ms (%s); complete load "
               "%.0f ms after it (%lld rows, %.2fM rows/s over the open)\n",
               r, t1 - t0, hit ? "row" : "NO ROW", t3 - t2, nat_hit ? "row" : "NO ROW", t2 - t1,
               rows, (double)rows / (t2 - t0) / 1e3);

        other_commits(path, "kv", n, 70000, (uint64_t)r + 1); /* more than the feed keeps */
        double t4 = now_ms();
        hit = point_select(db, "kv", 3);
        double t5 = now_ms();
        rows = count_rows(db, "kv");
        double t6 = now_ms();
        printf("       feed overflow: next point SELECT %.2f ms (%.2fM rows/s compared), count(*) "
               "%.0f ms later\n",
               t5 - t4, (double)rows / (t5 - t4) / 1e3, t6 - t5);

        sqlite3_stmt *sel_kv, *sel_nat;
        if (sqlite3_prepare_v2(db, "SELECT value FROM kv WHERE key = ?1", -1, &sel_kv, NULL) !=
                SQLITE_OK ||
            sqlite3_prepare_v2(db, "SELECT value FROM nat WHERE key = ?1", -1, &sel_nat, NULL) !=
                SQLITE_OK) {
            die("prepare", db);
        }
        for (uint64_t k = 1; k <= 1000; k *= 10) {
            double feox_ms = 0, native_ms = 0;
            for (uint64_t round = 0; round < K_ROUNDS; round++) {
                step_point(db, sel_kv, 5);
                step_point(db, sel_nat, 5);
                other_commits(path, "kv", n, k, (uint64_t)r * 1000 + k * 10 + round);
                double t7 = now_ms();
                step_point(db, sel_kv, 5);
                feox_ms += now_ms() - t7;
                other_commits(path, "nat", n, k, (uint64_t)r * 1000 + k * 10 + round);
                double t9 = now_ms();
                step_point(db, sel_nat, 5);
                native_ms += now_ms() - t9;
            }
            printf("       after k=%llu changes by another connection: next point SELECT %.3f ms "
                   "(native table, the same: %.3f ms; mean of %d)\n",
                   (unsigned long long)k, feox_ms / K_ROUNDS, native_ms / K_ROUNDS, K_ROUNDS);
        }
        sqlite3_finalize(sel_kv);
        sqlite3_finalize(sel_nat);
        sqlite3_close(db);
    }
    return 0;
}
