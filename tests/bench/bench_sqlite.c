/*
 * bench_sqlite.c — SQLite's native table behind the bench adapter:
 *   CREATE TABLE kv(k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID
 * with prepared statements (SQLITE_PREPARE_PERSISTENT), in two configurations:
 *   sqlite_mem  ":memory:" database;
 *   sqlite_wal       a file in WAL mode, synchronous=NORMAL, page cache larger than the data
 *                    (a process crash loses nothing; a power cut may lose the last commits);
 *   sqlite_wal_full  the same with synchronous=FULL: the WAL is fsynced at every commit.
 * Each put/del is an autocommit statement (per-op commit); load commits every 10K rows; RMW is
 * BEGIN IMMEDIATE; SELECT; REPLACE; COMMIT. One connection, so single-threaded only.
 */
#include "bench.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct sqlite_store {
    sqlite3 *db;
    sqlite3_stmt *get, *put, *del, *scan, *begin, *commit;
} sqlite_store;

static void check(sqlite3 *db, int rc, const char *what)
{
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
        bench_die(what, sqlite3_errmsg(db));
}

static void exec(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
        bench_die(sql, err ? err : "?");
}

static sqlite3_stmt *prepare(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *stmt = NULL;
    check(db, sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, NULL), sql);
    return stmt;
}

static sqlite_store *open_db(const char *filename, bool wal, bool full)
{
    sqlite_store *s = calloc(1, sizeof *s);
    check(NULL, sqlite3_open(filename, &s->db), "sqlite3_open");
    /* Page cache sized to hold every row (KiB, negative = size rather than pages). */
    char pragma[128];
    long long cache_kib = (long long)((bench_cfg.n + bench_cfg.write_ops * 2) * 400 / 1024) + 65536;
    snprintf(pragma, sizeof pragma, "PRAGMA cache_size=-%lld", cache_kib);
    exec(s->db, pragma);
    if (wal) {
        exec(s->db, "PRAGMA journal_mode=WAL");
        exec(s->db, full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
    }
    exec(s->db, "CREATE TABLE IF NOT EXISTS kv(k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID");
    s->get = prepare(s->db, "SELECT v FROM kv WHERE k = ?1");
    s->put = prepare(s->db, "INSERT OR REPLACE INTO kv(k, v) VALUES (?1, ?2)");
    s->del = prepare(s->db, "DELETE FROM kv WHERE k = ?1");
    s->scan = prepare(s->db, "SELECT v FROM kv WHERE k >= ?1 ORDER BY k LIMIT ?2");
    s->begin = prepare(s->db, "BEGIN IMMEDIATE");
    s->commit = prepare(s->db, "COMMIT");
    return s;
}

static char *db_file(const char *dir)
{
    size_t len = strlen(dir) + 32;
    char *path = malloc(len);
    snprintf(path, len, "%s/bench.sqlite", dir);
    return path;
}

static void *sqlite_memory_open(const char *dir)
{
    (void)dir;
    return open_db(":memory:", false, false);
}

static void *sqlite_wal_open(const char *dir)
{
    char *path = db_file(dir);
    sqlite_store *s = open_db(path, true, false);
    free(path);
    return s;
}

static void *sqlite_wal_full_open(const char *dir)
{
    char *path = db_file(dir);
    sqlite_store *s = open_db(path, true, true);
    free(path);
    return s;
}

static void sqlite_close(void *store)
{
    sqlite_store *s = store;
    sqlite3_stmt *stmts[] = {s->get, s->put, s->del, s->scan, s->begin, s->commit};
    for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++)
        sqlite3_finalize(stmts[i]);
    sqlite3_close(s->db);
    free(s);
}

static int step_once(sqlite_store *s, sqlite3_stmt *stmt)
{
    int rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : (check(s->db, rc, "step"), -1);
}

static int sqlite_load(void *store, uint64_t first, uint64_t count)
{
    sqlite_store *s = store;
    uint8_t key[BENCH_KEY_SIZE], value[BENCH_VALUE_SIZE];
    exec(s->db, "BEGIN");
    for (uint64_t i = first; i < first + count; i++) {
        bench_key(i, key);
        bench_value(i, 0, value);
        sqlite3_bind_blob(s->put, 1, key, sizeof key, SQLITE_STATIC);
        sqlite3_bind_blob(s->put, 2, value, sizeof value, SQLITE_STATIC);
        if (step_once(s, s->put) != 0)
            return -1;
        if ((i - first + 1) % 10000 == 0) {
            exec(s->db, "COMMIT");
            exec(s->db, "BEGIN");
        }
    }
    exec(s->db, "COMMIT");
    return 0;
}

static void *sqlite_ctx_open(void *store)
{
    return store;
}

static void sqlite_ctx_close(void *ctx)
{
    (void)ctx;
}

static int sqlite_get(void *ctx, const uint8_t *key, uint8_t *buf, size_t cap, size_t *len)
{
    sqlite_store *s = ctx;
    sqlite3_bind_blob(s->get, 1, key, BENCH_KEY_SIZE, SQLITE_STATIC);
    int rc = sqlite3_step(s->get);
    int result = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
    if (result == 1) {
        size_t n = (size_t)sqlite3_column_bytes(s->get, 0);
        memcpy(buf, sqlite3_column_blob(s->get, 0), n < cap ? n : cap);
        *len = n;
    }
    sqlite3_reset(s->get);
    return result;
}

static int sqlite_put(void *ctx, const uint8_t *key, const uint8_t *value, size_t len)
{
    sqlite_store *s = ctx;
    sqlite3_bind_blob(s->put, 1, key, BENCH_KEY_SIZE, SQLITE_STATIC);
    sqlite3_bind_blob(s->put, 2, value, (int)len, SQLITE_STATIC);
    return step_once(s, s->put);
}

static int sqlite_del(void *ctx, const uint8_t *key)
{
    sqlite_store *s = ctx;
    sqlite3_bind_blob(s->del, 1, key, BENCH_KEY_SIZE, SQLITE_STATIC);
    return step_once(s, s->del);
}

static size_t sqlite_scan(void *ctx, const uint8_t *start, size_t n, uint8_t *buf)
{
    sqlite_store *s = ctx;
    sqlite3_bind_blob(s->scan, 1, start, BENCH_KEY_SIZE, SQLITE_STATIC);
    sqlite3_bind_int64(s->scan, 2, (sqlite3_int64)n);
    size_t visited = 0;
    while (sqlite3_step(s->scan) == SQLITE_ROW) {
        size_t len = (size_t)sqlite3_column_bytes(s->scan, 0);
        memcpy(buf, sqlite3_column_blob(s->scan, 0),
               len < BENCH_VALUE_SIZE ? len : BENCH_VALUE_SIZE);
        visited++;
    }
    sqlite3_reset(s->scan);
    return visited;
}

static int sqlite_rmw(void *ctx, const uint8_t *key, uint64_t version)
{
    sqlite_store *s = ctx;
    uint8_t value[BENCH_VALUE_SIZE];
    size_t len = 0;
    if (step_once(s, s->begin) != 0)
        return -1;
    int found = sqlite_get(s, key, value, sizeof value, &len);
    if (found == 1) {
        memcpy(value, &version, sizeof version);
        if (sqlite_put(s, key, value, sizeof value) != 0)
            found = -1;
    }
    if (step_once(s, s->commit) != 0)
        return -1;
    return found;
}

const bench_adapter bench_sqlite_memory_adapter = {
    .name = "sqlite_mem",
    .describe = "SQLite :memory: WITHOUT ROWID, prepared statements, autocommit per write",
    .open = sqlite_memory_open,
    .close = sqlite_close,
    .persistent = false,
    .load = sqlite_load,
    .ctx_open = sqlite_ctx_open,
    .ctx_open_extra = NULL,
    .ctx_close = sqlite_ctx_close,
    .get = sqlite_get,
    .put = sqlite_put,
    .del = sqlite_del,
    .scan = sqlite_scan,
    .rmw = sqlite_rmw,
};

const bench_adapter bench_sqlite_wal_adapter = {
    .name = "sqlite_wal",
    .describe = "SQLite WAL file, synchronous=NORMAL, cache >= data, autocommit per write",
    .open = sqlite_wal_open,
    .close = sqlite_close,
    .persistent = true,
    .load = sqlite_load,
    .ctx_open = sqlite_ctx_open,
    .ctx_open_extra = NULL,
    .ctx_close = sqlite_ctx_close,
    .get = sqlite_get,
    .put = sqlite_put,
    .del = sqlite_del,
    .scan = sqlite_scan,
    .rmw = sqlite_rmw,
};

const bench_adapter bench_sqlite_wal_full_adapter = {
    .name = "sqlite_wal_full",
    .describe = "SQLite WAL file, synchronous=FULL (WAL fsynced per commit), autocommit per write",
    .open = sqlite_wal_full_open,
    .close = sqlite_close,
    .persistent = true,
    .preload_with = &bench_sqlite_wal_adapter,
    .load = sqlite_load,
    .ctx_open = sqlite_ctx_open,
    .ctx_open_extra = NULL,
    .ctx_close = sqlite_ctx_close,
    .get = sqlite_get,
    .put = sqlite_put,
    .del = sqlite_del,
    .scan = sqlite_scan,
    .rmw = sqlite_rmw,
};
