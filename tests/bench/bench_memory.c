/*
 * bench_memory.c — memory per key: heap bytes held per record once N records (16-byte keys,
 * 100-byte values) are loaded (the report's "ns" columns hold bytes per key here):
 *   memory_per_key     feox: a memory-only feox_store (feox_insert, defaults: no presizing);
 *                      sqlite_mem: CREATE TABLE kv(key BLOB PRIMARY KEY, value BLOB) WITHOUT ROWID
 *                      in a :memory: database, loaded in one transaction (the page cache is the
 *                      table);
 *   memory_per_key.db  feox: the cache a connection builds of an in-database feox table (the same
 *                      rows in the shadow table of a WAL file), measured around the first
 *                      statement of a fresh connection, which loads it (SQLite's own page cache
 *                      for the file is part of this figure, as it is for any table read);
 *                      sqlite_mem: the same measurement as above.
 * Measured as glibc's bytes in use (mallinfo2: allocated chunks plus mmapped blocks, headers
 * included) plus the bytes of feox's slabs (mapped, not only filled) and of its other mappings
 * of its own (feox_mem_alloc_large: the hash index's maps when a load sizes them at once) before
 * and after, on both sides: the same allocator, the same accounting, no page granularity or
 * freed-but-resident memory as RSS would have. Targets (issues 15 and 13):
 * memory_per_key <= 1.0x, memory_per_key.db <= 1.2x sqlite_mem.
 */
#include "bench.h"

#include "base/alloc.h"
#include "base/slab.h"
#include "feox.h"

#include <malloc.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sqlite3_feox_init(sqlite3 *db, char **err, const sqlite3_api_routines *api)
    __attribute__((weak));

/* glibc's bytes in use, plus what feox maps itself, which mallinfo2 does not see: the slabs of
 * loaded keys (engine/base/slab.h: whole slabs as mapped, their unused tail included) and the
 * large arrays that are mappings of their own (base/alloc.h: a loaded store's hash index). */
static size_t heap_in_use(void)
{
    feox_close_wait(); /* a store closed before still being freed would count here */
    struct mallinfo2 m = mallinfo2();
    return m.uordblks + m.hblkhd + feox_slab_mapped_bytes() + feox_mem_large_mapped();
}

static double per_key(size_t before, size_t after)
{
    return after > before ? (double)(after - before) / (double)bench_cfg.n : 0.0;
}

static void exec_or_die(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
        bench_die(sql, err ? err : sqlite3_errmsg(db));
}

/* Insert keys 0..n-1 into table `kv` of db, in one transaction. */
static void load_table(sqlite3 *db)
{
    sqlite3_stmt *ins = NULL;
    exec_or_die(db, "BEGIN");
    if (sqlite3_prepare_v2(db, "INSERT INTO kv(key, value) VALUES(?, ?)", -1, &ins, NULL) !=
        SQLITE_OK)
        bench_die("prepare INSERT", sqlite3_errmsg(db));
    uint8_t key[BENCH_KEY_SIZE], value[BENCH_VALUE_SIZE];
    for (uint64_t i = 0; i < bench_cfg.n; i++) {
        bench_key(i, key);
        bench_value(i, 0, value);
        sqlite3_bind_blob(ins, 1, key, sizeof key, SQLITE_STATIC);
        sqlite3_bind_blob(ins, 2, value, sizeof value, SQLITE_STATIC);
        if (sqlite3_step(ins) != SQLITE_DONE)
            bench_die("INSERT", sqlite3_errmsg(db));
        sqlite3_reset(ins);
    }
    sqlite3_finalize(ins);
    exec_or_die(db, "COMMIT");
}

static double measure_feox(void)
{
    size_t before = heap_in_use();
    feox_config cfg;
    feox_config_init(&cfg);
    feox_store *s = NULL;
    feox_err err = feox_open(&cfg, &s);
    if (err != FEOX_OK)
        bench_die("feox_open", feox_strerror(err));
    uint8_t key[BENCH_KEY_SIZE], value[BENCH_VALUE_SIZE];
    for (uint64_t i = 0; i < bench_cfg.n; i++) {
        bench_key(i, key);
        bench_value(i, 0, value);
        if ((err = feox_insert(s, key, sizeof key, value, sizeof value, NULL, NULL)) != FEOX_OK)
            bench_die("feox_insert", feox_strerror(err));
    }
    double bytes = per_key(before, heap_in_use());
    feox_close(s);
    return bytes;
}

static double measure_sqlite_mem(void)
{
    size_t before = heap_in_use();
    sqlite3 *db = NULL;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK)
        bench_die("sqlite3_open", ":memory:");
    exec_or_die(db, "CREATE TABLE kv(key BLOB PRIMARY KEY, value BLOB) WITHOUT ROWID");
    load_table(db);
    double bytes = per_key(before, heap_in_use());
    sqlite3_close(db);
    return bytes;
}

/* The rows are written by one connection; a second, fresh one is measured around its first
 * statement on the table (which builds its cache). NAN when the extension is not linked. */
static double measure_db_cache(void)
{
    if (!sqlite3_feox_init)
        return NAN;
    char *dir = bench_make_dir("memory");
    char path[4200];
    snprintf(path, sizeof path, "%s/memory.db", dir);
    sqlite3 *writer = NULL, *reader = NULL;
    char *err = NULL;
    if (sqlite3_open(path, &writer) != SQLITE_OK ||
        sqlite3_feox_init(writer, &err, NULL) != SQLITE_OK)
        bench_die("open the database", err ? err : sqlite3_errmsg(writer));
    exec_or_die(writer, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                        "CREATE VIRTUAL TABLE kv USING feox(keytype=blob)");
    load_table(writer);
    sqlite3_close(writer);

    size_t before = heap_in_use();
    if (sqlite3_open(path, &reader) != SQLITE_OK ||
        sqlite3_feox_init(reader, &err, NULL) != SQLITE_OK)
        bench_die("open the database", err ? err : sqlite3_errmsg(reader));
    sqlite3_stmt *count = NULL;
    if (sqlite3_prepare_v2(reader, "SELECT count(*) FROM kv", -1, &count, NULL) != SQLITE_OK ||
        sqlite3_step(count) != SQLITE_ROW ||
        (uint64_t)sqlite3_column_int64(count, 0) != bench_cfg.n)
        bench_die("SELECT count(*)", sqlite3_errmsg(reader));
    sqlite3_finalize(count);
    double bytes = per_key(before, heap_in_use());
    sqlite3_close(reader);
    bench_remove_dir(dir);
    free(dir);
    return bytes;
}

void bench_run_memory_workloads(int rep)
{
    (void)rep;
    double native = measure_sqlite_mem();
    bench_record("memory_per_key", "feox", measure_feox());
    bench_record("memory_per_key", "sqlite_mem", native);
    double cache = measure_db_cache();
    if (!isnan(cache)) {
        bench_record("memory_per_key.db", "feox", cache);
        bench_record("memory_per_key.db", "sqlite_mem", native);
    }
}
