/*
 * stress_ext_concurrency.c — the extension under threads, one SQLite connection per thread
 * (extension linked statically, -DSQLITE_CORE).
 *
 *   1. counters: 4 threads x 500 feox_incr on one key = exactly 2000, for a file store and for a
 *      memory store shared by the connections of a file database;
 *   2. scans under writers: writer threads insert, update and delete keys while scanner threads
 *      run ascending, descending and ranged scans on other connections; every scan must return
 *      strictly ordered keys (never one twice) inside its range, and nothing may fail;
 *   3. transactions: threads insert their own keys inside BEGIN and roll back every other
 *      transaction; exactly the committed keys remain.
 *
 * Usage: stress_ext_concurrency [--quick]   (--quick: short runs, for ASan/TSan)
 * Exit status 0 on success; failures are printed.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "feox_ext.h"

#define N_COUNTER_THREADS 4
#define N_INCREMENTS 500

static char db_path[512];
static bool quick;
static _Atomic int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static sqlite3 *open_conn(void)
{
    sqlite3 *db = NULL;
    char *err = NULL;
    if (sqlite3_open(db_path, &db) != SQLITE_OK || sqlite3_feox_init(db, &err, NULL) != 0) {
        fprintf(stderr, "cannot open %s: %s\n", db_path, err ? err : sqlite3_errmsg(db));
        exit(2);
    }
    sqlite3_busy_timeout(db, 20000);
    return db;
}

static int exec(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
    CHECK(rc == SQLITE_OK, "%s: %s", sql, err ? err : "?");
    sqlite3_free(err);
    return rc;
}

static sqlite3_int64 query_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    sqlite3_int64 v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
        v = sqlite3_column_int64(st, 0);
    } else {
        CHECK(0, "%s: %s", sql, sqlite3_errmsg(db));
    }
    sqlite3_finalize(st);
    return v;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- 1. counters ------------------------------------------------------------------------------
 */

static void *counter_thread(void *arg)
{
    const char *table = arg;
    sqlite3 *db = open_conn();
    sqlite3_stmt *st = NULL;
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT feox_incr('%s', 'counter', 1)", table);
    CHECK(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK, "%s", sqlite3_errmsg(db));
    sqlite3_int64 last = 0;
    for (int i = 0; i < N_INCREMENTS && st != NULL; i++) {
        int rc = sqlite3_step(st);
        CHECK(rc == SQLITE_ROW, "feox_incr: %s", sqlite3_errmsg(db));
        if (rc == SQLITE_ROW) {
            sqlite3_int64 v = sqlite3_column_int64(st, 0);
            CHECK(v > last, "counter went from %lld to %lld in one thread", (long long)last,
                  (long long)v);
            last = v;
        }
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return NULL;
}

static void run_counters(const char *table)
{
    pthread_t t[N_COUNTER_THREADS];
    sqlite3 *db = open_conn();
    char sql[256];
    for (int i = 0; i < N_COUNTER_THREADS; i++) {
        pthread_create(&t[i], NULL, counter_thread, (void *)table);
    }
    for (int i = 0; i < N_COUNTER_THREADS; i++) {
        pthread_join(t[i], NULL);
    }
    snprintf(sql, sizeof sql, "SELECT value FROM %s WHERE key = 'counter'", table);
    sqlite3_int64 v = query_int(db, sql);
    CHECK(v == N_COUNTER_THREADS * N_INCREMENTS, "%s: counter = %lld, expected %d", table,
          (long long)v, N_COUNTER_THREADS * N_INCREMENTS);
    printf("counters on %s: %lld\n", table, (long long)v);
    sqlite3_close(db);
}

/* ---- 2. scans under writers -------------------------------------------------------------------
 */

static _Atomic bool stop_writers;
static _Atomic long scans_done, writes_done;

static void *writer_thread(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    sqlite3 *db = open_conn();
    sqlite3_stmt *ins = NULL, *del = NULL, *upd = NULL;
    sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO scan(key, value) VALUES (?, ?)", -1, &ins, NULL);
    sqlite3_prepare_v2(db, "DELETE FROM scan WHERE key = ?", -1, &del, NULL);
    sqlite3_prepare_v2(db, "UPDATE scan SET value = value + 1 WHERE key = ?", -1, &upd, NULL);
    CHECK(ins && del && upd, "prepare: %s", sqlite3_errmsg(db));
    while (!stop_writers && ins && del && upd) {
        char key[16];
        snprintf(key, sizeof key, "k%04d", rand_r(&seed) % 1000);
        int op = rand_r(&seed) % 3;
        sqlite3_stmt *st = op == 0 ? ins : op == 1 ? del : upd;
        sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
        if (st == ins) {
            sqlite3_bind_int(st, 2, rand_r(&seed) % 100);
        }
        int rc = sqlite3_step(st);
        CHECK(rc == SQLITE_DONE, "write: %s", sqlite3_errmsg(db));
        sqlite3_reset(st);
        writes_done++;
    }
    sqlite3_finalize(ins);
    sqlite3_finalize(del);
    sqlite3_finalize(upd);
    sqlite3_close(db);
    return NULL;
}

static void *scanner_thread(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    sqlite3 *db = open_conn();
    static const char *const scans[] = {
        "SELECT key FROM scan ORDER BY key",
        "SELECT key FROM scan ORDER BY key DESC",
        "SELECT key FROM scan WHERE key >= 'k0200' AND key < 'k0700' ORDER BY key",
        "SELECT key FROM scan WHERE key > 'k0100' AND key <= 'k0900' ORDER BY key DESC",
        "SELECT key FROM scan WHERE key GLOB 'k05*'",
        "SELECT key FROM scan WHERE key IN ('k0001', 'k0500', 'k0999', 'k0500')",
    };
    while (!stop_writers) {
        int which = rand_r(&seed) % 6;
        bool desc = which == 1 || which == 3;
        sqlite3_stmt *st = NULL;
        char prev[32] = "";
        bool first = true;
        if (sqlite3_prepare_v2(db, scans[which], -1, &st, NULL) != SQLITE_OK) {
            CHECK(0, "prepare: %s", sqlite3_errmsg(db));
            break;
        }
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            const char *k = (const char *)sqlite3_column_text(st, 0);
            if (!first) {
                int c = strcmp(k, prev);
                CHECK(desc ? c < 0 : c > 0, "scan %d: '%s' after '%s'", which, k, prev);
            }
            if (which == 2) {
                CHECK(strcmp(k, "k0200") >= 0 && strcmp(k, "k0700") < 0, "out of range %s", k);
            }
            if (which == 4) {
                CHECK(strncmp(k, "k05", 3) == 0, "GLOB returned %s", k);
            }
            snprintf(prev, sizeof prev, "%s", k);
            first = false;
        }
        CHECK(rc == SQLITE_DONE, "scan: %s", sqlite3_errmsg(db));
        sqlite3_finalize(st);
        scans_done++;
    }
    sqlite3_close(db);
    return NULL;
}

static void run_scans(void)
{
    enum { N_WRITERS = 2, N_SCANNERS = 2 };
    pthread_t w[N_WRITERS], s[N_SCANNERS];
    sqlite3 *db = open_conn();
    exec(db, "CREATE VIRTUAL TABLE scan USING feox(path=':memory:')");
    exec(db, "WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < 999) "
             "INSERT INTO scan(key, value) SELECT printf('k%04d', i), i FROM c");
    for (int i = 0; i < N_WRITERS; i++) {
        pthread_create(&w[i], NULL, writer_thread, (void *)(uintptr_t)(i + 1));
    }
    for (int i = 0; i < N_SCANNERS; i++) {
        pthread_create(&s[i], NULL, scanner_thread, (void *)(uintptr_t)(i + 100));
    }
    /* Run for the time given, and on until both kinds of thread have made progress: on a loaded
     * machine a thread may not have been scheduled yet when the time is up (120 s: a hang). */
    double start = now_s(), end = start + (quick ? 1.0 : 5.0);
    while ((now_s() < end || scans_done == 0 || writes_done == 0) && now_s() < start + 120 &&
           failures == 0) {
        usleep(20000);
    }
    stop_writers = true;
    for (int i = 0; i < N_WRITERS; i++) {
        pthread_join(w[i], NULL);
    }
    for (int i = 0; i < N_SCANNERS; i++) {
        pthread_join(s[i], NULL);
    }
    printf("scans under writers: %ld scans, %ld writes\n", (long)scans_done, (long)writes_done);
    CHECK(scans_done > 0 && writes_done > 0, "no progress");
    sqlite3_close(db);
}

/* ---- 3. transactions --------------------------------------------------------------------------
 */

static void *txn_thread(void *arg)
{
    int id = (int)(uintptr_t)arg;
    sqlite3 *db = open_conn();
    int rounds = quick ? 20 : 100;
    for (int r = 0; r < rounds; r++) {
        char sql[256];
        if (exec(db, "BEGIN") != SQLITE_OK) {
            break;
        }
        snprintf(sql, sizeof sql,
                 "INSERT INTO txn(key, value) VALUES ('t%d-%d-a', 1), ('t%d-%d-b', 2)", id, r, id,
                 r);
        exec(db, sql);
        snprintf(sql, sizeof sql, "SELECT feox_incr('txn', 'sum%d', 1)", id);
        exec(db, sql);
        exec(db, r % 2 ? "ROLLBACK" : "COMMIT");
    }
    sqlite3_close(db);
    return NULL;
}

static void run_transactions(void)
{
    enum { N_THREADS = 4 };
    pthread_t t[N_THREADS];
    sqlite3 *db = open_conn();
    int rounds = quick ? 20 : 100;
    exec(db, "CREATE VIRTUAL TABLE txn USING feox(path=':memory:')");
    for (int i = 0; i < N_THREADS; i++) {
        pthread_create(&t[i], NULL, txn_thread, (void *)(uintptr_t)i);
    }
    for (int i = 0; i < N_THREADS; i++) {
        pthread_join(t[i], NULL);
    }
    sqlite3_int64 keys = query_int(db, "SELECT count(*) FROM txn WHERE key LIKE 't%'");
    sqlite3_int64 sums = query_int(db, "SELECT sum(value) FROM txn WHERE key LIKE 'sum%'");
    CHECK(keys == N_THREADS * rounds, "%lld keys after transactions, expected %d", (long long)keys,
          N_THREADS * rounds);
    CHECK(sums == N_THREADS * rounds / 2, "counters sum %lld, expected %d", (long long)sums,
          N_THREADS * rounds / 2);
    printf("transactions: %lld keys, counters %lld\n", (long long)keys, (long long)sums);
    sqlite3_close(db);
}

int main(int argc, char **argv)
{
    char dir[] = "/tmp/feox_stress_ext_XXXXXX";
    for (int i = 1; i < argc; i++) {
        quick = quick || strcmp(argv[i], "--quick") == 0;
    }
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    snprintf(db_path, sizeof db_path, "%s/stress.db", dir);
    sqlite3 *db = open_conn();
    /* WAL lets readers of the database file run beside the (short) write transactions that
     * SQLite opens for every vtab write. */
    exec(db, "PRAGMA journal_mode = WAL");
    exec(db, "CREATE VIRTUAL TABLE kv USING feox");
    exec(db, "CREATE VIRTUAL TABLE mem USING feox(path=':memory:')");
    run_counters("kv");
    run_counters("mem");
    run_scans();
    run_transactions();
    sqlite3_close(db);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot remove %s\n", dir);
    }
    if (failures) {
        fprintf(stderr, "%d failure(s)\n", (int)failures);
        return 1;
    }
    printf("ok\n");
    return 0;
}
