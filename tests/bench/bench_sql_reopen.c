/*
 * bench_sql_reopen.c — what a new connection to a database that holds a feox table waits for
 * (issue 13's "time from sqlite3_open to the first answered point SELECT", "full reload" and
 * "after another process commits k changes" lines), on the headline setting's files (bench_sql.c:
 * WAL, synchronous=NORMAL, N rows just loaded by the connections that stay open):
 *
 *   sql_open_first_select  ns from sqlite3_open (extension included) to the first answered point
 *                          SELECT of a present key; feox answers while its cache is partial (it
 *                          loads lazily), native is SQLite's own floor
 *   sql_full_load          feox: ns per 1M rows for the new connection's cache to hold every row
 *                          (open, first SELECT, then SELECT count(*) finishes the load)
 *   sql_feed_k1, _k1000    ns of the new connection's next point SELECT after the loading
 *                          connection committed k changed rows in one transaction (feox: the
 *                          change feed applied; native: SQLite's own cost of a changed database);
 *                          mean of FEED_ROUNDS commits
 */
#include "bench.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

int sqlite3_feox_init(sqlite3 *db, char **err, const sqlite3_api_routines *api)
    __attribute__((weak));

#define FEED_ROUNDS 5

typedef struct reopened {
    sqlite3 *db;
    sqlite3_stmt *point;
} reopened;

/* Bind key index to the point SELECT and step it; dies unless it answers a row. */
static void answer(reopened *r, uint64_t index)
{
    uint8_t key[BENCH_KEY_SIZE];
    bench_key(index, key);
    sqlite3_bind_blob(r->point, 1, key, BENCH_KEY_SIZE, SQLITE_TRANSIENT);
    if (sqlite3_step(r->point) != SQLITE_ROW)
        bench_die("first point SELECT after reopen", sqlite3_errmsg(r->db));
    sqlite3_reset(r->point);
}

/* Open dir/name.db (with the extension for feox), answer one point SELECT; ns from open on. */
static double open_and_answer(reopened *r, const char *dir, const char *name, bool feox,
                              uint64_t index)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.db", dir, name);
    double t0 = bench_now_sec();
    if (sqlite3_open(path, &r->db) != SQLITE_OK)
        bench_die("sqlite3_open", sqlite3_errmsg(r->db));
    char *err = NULL;
    if (feox && sqlite3_feox_init(r->db, &err, NULL) != SQLITE_OK)
        bench_die("sqlite3_feox_init", err ? err : "?");
    if (sqlite3_prepare_v2(r->db, "SELECT value FROM kv WHERE key = ?1", -1, &r->point, NULL) !=
        SQLITE_OK)
        bench_die("prepare after reopen", sqlite3_errmsg(r->db));
    answer(r, index);
    return (bench_now_sec() - t0) * 1e9;
}

static void close_reopened(reopened *r)
{
    sqlite3_finalize(r->point);
    sqlite3_close(r->db);
}

/* The writer commits k upserts of random loaded keys in one transaction (version v). */
static void commit_changes(sqlite3 *writer, uint64_t keys, uint64_t k, uint64_t v, bench_rng *rng)
{
    sqlite3_stmt *up = NULL;
    if (sqlite3_prepare_v2(writer, "INSERT OR REPLACE INTO kv(key, value) VALUES (?1, ?2)", -1, &up,
                           NULL) != SQLITE_OK)
        bench_die("prepare upsert", sqlite3_errmsg(writer));
    if (sqlite3_exec(writer, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        bench_die("BEGIN", sqlite3_errmsg(writer));
    uint8_t key[BENCH_KEY_SIZE], value[BENCH_VALUE_SIZE];
    for (uint64_t i = 0; i < k; i++) {
        uint64_t index = bench_rng_below(rng, keys);
        bench_key(index, key);
        bench_value(index, v, value);
        sqlite3_bind_blob(up, 1, key, BENCH_KEY_SIZE, SQLITE_STATIC);
        sqlite3_bind_blob(up, 2, value, BENCH_VALUE_SIZE, SQLITE_STATIC);
        if (sqlite3_step(up) != SQLITE_DONE)
            bench_die("upsert", sqlite3_errmsg(writer));
        sqlite3_reset(up);
    }
    if (sqlite3_exec(writer, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        bench_die("COMMIT", sqlite3_errmsg(writer));
    sqlite3_finalize(up);
}

/* Mean ns of r's next point SELECT after each of FEED_ROUNDS commits of k changes by writer. */
static double after_changes(reopened *r, sqlite3 *writer, uint64_t keys, uint64_t k, bench_rng *rng)
{
    double total = 0;
    for (int round = 0; round < FEED_ROUNDS; round++) {
        commit_changes(writer, keys, k, 1000 + (uint64_t)round, rng);
        uint64_t index = bench_rng_below(rng, keys);
        double t0 = bench_now_sec();
        answer(r, index);
        total += bench_now_sec() - t0;
    }
    return total * 1e9 / FEED_ROUNDS;
}

void bench_sql_reopen(const char *dir, sqlite3 *feox_writer, sqlite3 *native_writer, uint64_t keys,
                      int rep)
{
    bench_rng rng;
    bench_rng_seed(&rng, bench_cfg.seed * 97 + (uint64_t)rep);
    uint64_t first = bench_rng_below(&rng, keys);
    static const uint64_t ks[] = {1, 1000};
    static const char *const feed_names[] = {"sql_feed_k1", "sql_feed_k1000"};

    reopened native = {NULL, NULL};
    bench_record("sql_open_first_select", "native",
                 open_and_answer(&native, dir, "native", false, first));
    for (size_t i = 0; i < 2; i++)
        bench_record(feed_names[i], "native",
                     after_changes(&native, native_writer, keys, ks[i], &rng));
    close_reopened(&native);

    if (!sqlite3_feox_init || !feox_writer)
        return;
    reopened feox = {NULL, NULL};
    double t0 = bench_now_sec();
    bench_record("sql_open_first_select", "feox", open_and_answer(&feox, dir, "feox", true, first));
    sqlite3_stmt *count = NULL;
    if (sqlite3_prepare_v2(feox.db, "SELECT count(*) FROM kv", -1, &count, NULL) != SQLITE_OK ||
        sqlite3_step(count) != SQLITE_ROW)
        bench_die("count(*) after reopen", sqlite3_errmsg(feox.db));
    uint64_t rows = (uint64_t)sqlite3_column_int64(count, 0);
    sqlite3_finalize(count);
    double loaded = bench_now_sec() - t0;
    if (rows)
        bench_record("sql_full_load", "feox", loaded * 1e9 * 1e6 / (double)rows);
    for (size_t i = 0; i < 2; i++)
        bench_record(feed_names[i], "feox", after_changes(&feox, feox_writer, keys, ks[i], &rng));
    close_reopened(&feox);
}

void bench_sql_reopen_notes(void)
{
    char note[200];
    snprintf(note, sizeof note,
             "ns from sqlite3_open to the first answered point SELECT, N = %llu rows, WAL",
             (unsigned long long)bench_cfg.n);
    bench_note("sql_open_first_select", note);
    bench_note("sql_full_load", "ns per 1M rows: a new connection's cache holds every row "
                                "(open, first SELECT, count(*))");
    bench_note("sql_feed_k1", "ns of a connection's next point SELECT after another committed "
                              "1 change");
    bench_note("sql_feed_k1000", "the same after 1000 changes in one transaction");
}
