/*
 * bench_feox.c — the feox engine behind the bench adapter, with its defaults (no presizing of the
 * hash index: initial_capacity stays 0), in three modes:
 *   feox          memory mode (no file), TTL sweeper on (the default);
 *   feox_persist  a store file in a temp dir, sync=normal (background flusher, fsync every 100 ms);
 *   feox_full     the same file, sync=full: a write returns once it is fsynced (durable group).
 * GET takes a zero-copy handle and memcpy's the value out (what a caller of LMDB does too); a scan
 * is cursor seek + next; RMW is a get + compare-and-swap loop.
 */
#include "bench.h"

#include "feox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *store_file_path(const char *dir)
{
    size_t len = strlen(dir) + 32;
    char *path = malloc(len);
    snprintf(path, len, "%s/bench.feox", dir);
    return path;
}

static feox_store *open_store(const char *path, feox_sync_mode sync)
{
    feox_config cfg;
    feox_config_init(&cfg);
    cfg.path = path;
    cfg.sync = sync;
    feox_store *store = NULL;
    feox_err err = feox_open(&cfg, &store);
    if (err != FEOX_OK)
        bench_die("feox_open", feox_strerror(err));
    return store;
}

static void *feox_memory_open(const char *dir)
{
    (void)dir;
    return open_store(NULL, FEOX_SYNC_NORMAL);
}

static void *feox_persist_open(const char *dir)
{
    char *path = store_file_path(dir);
    feox_store *store = open_store(path, FEOX_SYNC_NORMAL);
    free(path);
    return store;
}

static void *feox_full_open(const char *dir)
{
    char *path = store_file_path(dir);
    feox_store *store = open_store(path, FEOX_SYNC_FULL);
    free(path);
    return store;
}

static void feox_bench_close(void *store)
{
    feox_close(store);
}

static int feox_bench_load(void *store, uint64_t first, uint64_t count)
{
    uint8_t key[BENCH_KEY_SIZE], value[BENCH_VALUE_SIZE];
    for (uint64_t i = first; i < first + count; i++) {
        bench_key(i, key);
        bench_value(i, 0, value);
        if (feox_insert(store, key, sizeof key, value, sizeof value, NULL, NULL) != FEOX_OK)
            return -1;
    }
    return 0;
}

/* A thread's context: the store and a cursor kept open for scans (one cursor per thread), opened
 * by the first scan: a cursor waits for a store's background load (an index snapshot lets point
 * reads go first), so opening it with the context would put the whole load before the first GET
 * that open_first_read times. */
typedef struct feox_ctx {
    feox_store *store;
    feox_cursor *cursor;
} feox_ctx;

static void *feox_ctx_open(void *store)
{
    feox_ctx *c = calloc(1, sizeof *c);
    c->store = store;
    return c;
}

static void feox_ctx_close(void *ctx)
{
    feox_ctx *c = ctx;
    if (c->cursor)
        feox_cursor_close(c->cursor);
    free(c);
}

static int feox_bench_get(void *ctx, const uint8_t *key, uint8_t *buf, size_t cap, size_t *len)
{
    feox_err err =
        feox_get_into(((feox_ctx *)ctx)->store, key, BENCH_KEY_SIZE, buf, cap, len, NULL);
    if (err == FEOX_ERR_KEY_NOT_FOUND)
        return 0;
    return err == FEOX_OK ? 1 : -1;
}

static int feox_bench_put(void *ctx, const uint8_t *key, const uint8_t *value, size_t len)
{
    feox_store *store = ((feox_ctx *)ctx)->store;
    return feox_insert(store, key, BENCH_KEY_SIZE, value, len, NULL, NULL) == FEOX_OK ? 0 : -1;
}

static int feox_bench_del(void *ctx, const uint8_t *key)
{
    feox_err err = feox_delete(((feox_ctx *)ctx)->store, key, BENCH_KEY_SIZE, NULL);
    return err == FEOX_OK || err == FEOX_ERR_KEY_NOT_FOUND ? 0 : -1;
}

/* Seek + next through the cursor API, which is what the SQL layer uses (feox_range_query with a
 * callback measured slower here). */
static size_t feox_bench_scan(void *ctx, const uint8_t *start, size_t n, uint8_t *buf)
{
    feox_ctx *c = ctx;
    if (!c->cursor && feox_cursor_open(c->store, &c->cursor) != FEOX_OK)
        bench_die("feox_cursor_open", "failed");
    feox_cursor *cursor = c->cursor;
    size_t visited = 0;
    feox_cursor_expect(cursor, n); /* the caller knows its length, as with a LIMIT */
    if (feox_cursor_seek(cursor, FEOX_SEEK_GE, start, BENCH_KEY_SIZE) != FEOX_OK)
        return 0;
    while (visited < n && feox_cursor_valid(cursor)) {
        size_t len = 0;
        const void *value = feox_cursor_value(cursor, &len);
        memcpy(buf, value, len < BENCH_VALUE_SIZE ? len : BENCH_VALUE_SIZE);
        visited++;
        if (visited < n && feox_cursor_next(cursor) != FEOX_OK)
            break;
    }
    return visited;
}

/* Read, derive a new value, compare-and-swap; retry if another writer got there first. */
static int feox_bench_rmw(void *ctx, const uint8_t *key, uint64_t version)
{
    feox_store *store = ((feox_ctx *)ctx)->store;
    uint8_t old_value[BENCH_VALUE_SIZE], new_value[BENCH_VALUE_SIZE];
    for (;;) {
        size_t len = 0;
        int found = feox_bench_get(ctx, key, old_value, sizeof old_value, &len);
        if (found <= 0)
            return found;
        memcpy(new_value, old_value, sizeof new_value);
        memcpy(new_value, &version, sizeof version);
        bool swapped = false;
        if (feox_compare_and_swap(store, key, BENCH_KEY_SIZE, old_value, len, new_value,
                                  sizeof new_value, NULL, &swapped) != FEOX_OK)
            return -1;
        if (swapped)
            return 1;
    }
}

const bench_adapter bench_feox_memory_adapter = {
    .name = "feox",
    .describe = "feox memory mode, defaults (TTL sweeper on, no presizing), get = copy into "
                "the caller's buffer (feox_get_into)",
    .open = feox_memory_open,
    .close = feox_bench_close,
    .persistent = false,
    .load = feox_bench_load,
    .ctx_open = feox_ctx_open,
    .ctx_open_extra = feox_ctx_open,
    .ctx_close = feox_ctx_close,
    .get = feox_bench_get,
    .put = feox_bench_put,
    .del = feox_bench_del,
    .scan = feox_bench_scan,
    .rmw = feox_bench_rmw,
};

const bench_adapter bench_feox_persist_adapter = {
    .name = "feox_persist",
    .describe = "feox store file, defaults: sync=normal (write-behind, fsync every 100 ms; a "
                "crash loses up to that)",
    .open = feox_persist_open,
    .close = feox_bench_close,
    .persistent = true,
    .load = feox_bench_load,
    .ctx_open = feox_ctx_open,
    .ctx_open_extra = feox_ctx_open,
    .ctx_close = feox_ctx_close,
    .get = feox_bench_get,
    .put = feox_bench_put,
    .del = feox_bench_del,
    .scan = feox_bench_scan,
    .rmw = feox_bench_rmw,
};

const bench_adapter bench_feox_full_adapter = {
    .name = "feox_full",
    .describe = "feox store file, sync=full: every write fsynced before it returns",
    .open = feox_full_open,
    .close = feox_bench_close,
    .persistent = true,
    .preload_with = &bench_feox_persist_adapter,
    .load = feox_bench_load,
    .ctx_open = feox_ctx_open,
    .ctx_open_extra = feox_ctx_open,
    .ctx_close = feox_ctx_close,
    .get = feox_bench_get,
    .put = feox_bench_put,
    .del = feox_bench_del,
    .scan = feox_bench_scan,
    .rmw = feox_bench_rmw,
};
