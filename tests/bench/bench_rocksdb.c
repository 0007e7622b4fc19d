/*
 * bench_rocksdb.c — RocksDB (C API) behind the bench adapter: WAL on without sync, LRU block
 * cache larger than the data, bloom filter 10 bits/key, compacted after load so reads meet a
 * settled tree. GET uses a pinnable slice (no extra copy) + memcpy; a scan is an iterator seek +
 * next; load writes batches of 1000; RMW is get + put (RocksDB's base DB has no read-write txn).
 * rocksdb_sync (durable group): the same with WriteOptions.sync: the WAL is fsynced per write.
 */
#include "bench.h"

#include <rocksdb/c.h>
#include <stdlib.h>
#include <string.h>

typedef struct rocks_store {
    rocksdb_t *db;
    rocksdb_options_t *options;
    rocksdb_block_based_table_options_t *table_options;
    rocksdb_cache_t *cache;
    rocksdb_filterpolicy_t *bloom; /* owned by table_options once set */
    rocksdb_readoptions_t *read_options;
    rocksdb_writeoptions_t *write_options;
} rocks_store;

static void check(char *err, const char *what)
{
    if (err)
        bench_die(what, err);
}

static void *open_db(const char *dir, bool sync)
{
    rocks_store *s = calloc(1, sizeof *s);
    s->options = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(s->options, 1);
    rocksdb_options_increase_parallelism(s->options, 2);
    size_t cache_bytes = (bench_cfg.n + bench_cfg.write_ops * 2) * 256 + (64u << 20);
    s->cache = rocksdb_cache_create_lru(cache_bytes);
    s->table_options = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_block_cache(s->table_options, s->cache);
    s->bloom = rocksdb_filterpolicy_create_bloom(10);
    rocksdb_block_based_options_set_filter_policy(s->table_options, s->bloom);
    rocksdb_options_set_block_based_table_factory(s->options, s->table_options);
    s->read_options = rocksdb_readoptions_create();
    s->write_options = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(s->write_options, sync);
    char *err = NULL;
    s->db = rocksdb_open(s->options, dir, &err);
    check(err, "rocksdb_open");
    return s;
}

static void *rocks_open(const char *dir)
{
    return open_db(dir, false);
}

static void *rocks_sync_open(const char *dir)
{
    return open_db(dir, true);
}

static void rocks_close(void *store)
{
    rocks_store *s = store;
    rocksdb_close(s->db);
    rocksdb_readoptions_destroy(s->read_options);
    rocksdb_writeoptions_destroy(s->write_options);
    rocksdb_block_based_options_destroy(s->table_options);
    rocksdb_cache_destroy(s->cache);
    rocksdb_options_destroy(s->options);
    free(s);
}

static int rocks_load(void *store, uint64_t first, uint64_t count)
{
    rocks_store *s = store;
    uint8_t key[BENCH_KEY_SIZE], value[BENCH_VALUE_SIZE];
    rocksdb_writebatch_t *batch = rocksdb_writebatch_create();
    char *err = NULL;
    for (uint64_t i = first; i < first + count; i++) {
        bench_key(i, key);
        bench_value(i, 0, value);
        rocksdb_writebatch_put(batch, (const char *)key, sizeof key, (const char *)value,
                               sizeof value);
        if ((i - first + 1) % 1000 == 0 || i + 1 == first + count) {
            rocksdb_write(s->db, s->write_options, batch, &err);
            check(err, "rocksdb_write");
            rocksdb_writebatch_clear(batch);
        }
    }
    rocksdb_writebatch_destroy(batch);
    /* Settle the tree before the read phases (the plan's compact_range step). */
    rocksdb_compact_range(s->db, NULL, 0, NULL, 0);
    return 0;
}

static void *rocks_ctx_open(void *store)
{
    return store;
}

static void rocks_ctx_close(void *ctx)
{
    (void)ctx;
}

static int rocks_get(void *ctx, const uint8_t *key, uint8_t *buf, size_t cap, size_t *len)
{
    rocks_store *s = ctx;
    char *err = NULL;
    rocksdb_pinnableslice_t *slice =
        rocksdb_get_pinned(s->db, s->read_options, (const char *)key, BENCH_KEY_SIZE, &err);
    if (err) {
        free(err);
        return -1;
    }
    if (!slice)
        return 0;
    size_t n = 0;
    const char *data = rocksdb_pinnableslice_value(slice, &n);
    memcpy(buf, data, n < cap ? n : cap);
    *len = n;
    rocksdb_pinnableslice_destroy(slice);
    return 1;
}

static int rocks_put(void *ctx, const uint8_t *key, const uint8_t *value, size_t len)
{
    rocks_store *s = ctx;
    char *err = NULL;
    rocksdb_put(s->db, s->write_options, (const char *)key, BENCH_KEY_SIZE, (const char *)value,
                len, &err);
    if (err) {
        free(err);
        return -1;
    }
    return 0;
}

static int rocks_del(void *ctx, const uint8_t *key)
{
    rocks_store *s = ctx;
    char *err = NULL;
    rocksdb_delete(s->db, s->write_options, (const char *)key, BENCH_KEY_SIZE, &err);
    if (err) {
        free(err);
        return -1;
    }
    return 0;
}

static size_t rocks_scan(void *ctx, const uint8_t *start, size_t n, uint8_t *buf)
{
    rocks_store *s = ctx;
    rocksdb_iterator_t *it = rocksdb_create_iterator(s->db, s->read_options);
    size_t visited = 0;
    for (rocksdb_iter_seek(it, (const char *)start, BENCH_KEY_SIZE);
         visited < n && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t len = 0;
        const char *value = rocksdb_iter_value(it, &len);
        memcpy(buf, value, len < BENCH_VALUE_SIZE ? len : BENCH_VALUE_SIZE);
        visited++;
    }
    rocksdb_iter_destroy(it);
    return visited;
}

static int rocks_rmw(void *ctx, const uint8_t *key, uint64_t version)
{
    uint8_t value[BENCH_VALUE_SIZE];
    size_t len = 0;
    int found = rocks_get(ctx, key, value, sizeof value, &len);
    if (found != 1)
        return found;
    memcpy(value, &version, sizeof version);
    return rocks_put(ctx, key, value, sizeof value) == 0 ? 1 : -1;
}

const bench_adapter bench_rocksdb_adapter = {
    .name = "rocksdb",
    .describe = "RocksDB C API, WAL without sync, LRU cache >= data, bloom 10, compacted",
    .open = rocks_open,
    .close = rocks_close,
    .persistent = true,
    .load = rocks_load,
    .ctx_open = rocks_ctx_open,
    .ctx_open_extra = rocks_ctx_open,
    .ctx_close = rocks_ctx_close,
    .get = rocks_get,
    .put = rocks_put,
    .del = rocks_del,
    .scan = rocks_scan,
    .rmw = rocks_rmw,
};

const bench_adapter bench_rocksdb_sync_adapter = {
    .name = "rocksdb_sync",
    .describe = "RocksDB C API, WAL fsynced per write (sync=true)",
    .open = rocks_sync_open,
    .close = rocks_close,
    .persistent = true,
    .preload_with = &bench_rocksdb_adapter,
    .load = rocks_load,
    .ctx_open = rocks_ctx_open,
    .ctx_open_extra = rocks_ctx_open,
    .ctx_close = rocks_ctx_close,
    .get = rocks_get,
    .put = rocks_put,
    .del = rocks_del,
    .scan = rocks_scan,
    .rmw = rocks_rmw,
};
