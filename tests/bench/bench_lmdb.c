/*
 * bench_lmdb.c — LMDB behind the bench adapter: MDB_NOSYNC | MDB_NOMETASYNC | MDB_WRITEMAP (no
 * fsync, like feox's write-behind), MDB_NOTLS so each context owns its read transaction, map
 * size preset. A GET renews and resets one read txn per op; every put/del/rmw is its own write
 * txn (per-op commit); load commits every 100K records (bulk).
 * lmdb_sync (durable group): default durability, MDB_NOTLS only: every commit is fsynced.
 */
#include "bench.h"

#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct lmdb_store {
    MDB_env *env;
    MDB_dbi dbi;
} lmdb_store;

typedef struct lmdb_ctx {
    lmdb_store *store;
    MDB_txn *read_txn; /* kept reset between ops */
    MDB_cursor *cursor;
} lmdb_ctx;

static void check(int rc, const char *what)
{
    if (rc != MDB_SUCCESS)
        bench_die(what, mdb_strerror(rc));
}

static void *open_env(const char *dir, unsigned flags)
{
    lmdb_store *s = calloc(1, sizeof *s);
    check(mdb_env_create(&s->env), "mdb_env_create");
    size_t records = bench_cfg.n + bench_cfg.write_ops * 4 + 1000;
    size_t mapsize = records * 512;
    if (mapsize < (1ull << 30))
        mapsize = 1ull << 30;
    check(mdb_env_set_mapsize(s->env, mapsize), "mdb_env_set_mapsize");
    check(mdb_env_set_maxreaders(s->env, 256), "mdb_env_set_maxreaders");
    check(mdb_env_open(s->env, dir, flags, 0644), "mdb_env_open");
    MDB_txn *txn;
    check(mdb_txn_begin(s->env, NULL, 0, &txn), "mdb_txn_begin");
    check(mdb_dbi_open(txn, NULL, 0, &s->dbi), "mdb_dbi_open");
    check(mdb_txn_commit(txn), "mdb_txn_commit");
    return s;
}

static void *lmdb_open(const char *dir)
{
    return open_env(dir, MDB_NOSYNC | MDB_NOMETASYNC | MDB_WRITEMAP | MDB_NOTLS);
}

static void *lmdb_sync_open(const char *dir)
{
    return open_env(dir, MDB_NOTLS);
}

static void lmdb_close(void *store)
{
    lmdb_store *s = store;
    mdb_env_close(s->env);
    free(s);
}

static int lmdb_load(void *store, uint64_t first, uint64_t count)
{
    lmdb_store *s = store;
    uint8_t key[BENCH_KEY_SIZE], value[BENCH_VALUE_SIZE];
    MDB_txn *txn = NULL;
    for (uint64_t i = first; i < first + count; i++) {
        if (!txn)
            check(mdb_txn_begin(s->env, NULL, 0, &txn), "mdb_txn_begin");
        bench_key(i, key);
        bench_value(i, 0, value);
        MDB_val k = {sizeof key, key}, v = {sizeof value, value};
        check(mdb_put(txn, s->dbi, &k, &v, 0), "mdb_put");
        if ((i - first + 1) % 100000 == 0) {
            check(mdb_txn_commit(txn), "mdb_txn_commit");
            txn = NULL;
        }
    }
    if (txn)
        check(mdb_txn_commit(txn), "mdb_txn_commit");
    return 0;
}

static void *lmdb_ctx_open(void *store)
{
    lmdb_ctx *c = calloc(1, sizeof *c);
    c->store = store;
    check(mdb_txn_begin(c->store->env, NULL, MDB_RDONLY, &c->read_txn), "mdb_txn_begin(read)");
    check(mdb_cursor_open(c->read_txn, c->store->dbi, &c->cursor), "mdb_cursor_open");
    mdb_txn_reset(c->read_txn);
    return c;
}

static void lmdb_ctx_close(void *ctx)
{
    lmdb_ctx *c = ctx;
    mdb_cursor_close(c->cursor);
    mdb_txn_abort(c->read_txn);
    free(c);
}

static int lmdb_get(void *ctx, const uint8_t *key, uint8_t *buf, size_t cap, size_t *len)
{
    lmdb_ctx *c = ctx;
    if (mdb_txn_renew(c->read_txn) != MDB_SUCCESS)
        return -1;
    MDB_val k = {BENCH_KEY_SIZE, (void *)key}, v;
    int rc = mdb_get(c->read_txn, c->store->dbi, &k, &v);
    int result = rc == MDB_SUCCESS ? 1 : rc == MDB_NOTFOUND ? 0 : -1;
    if (result == 1) {
        memcpy(buf, v.mv_data, v.mv_size < cap ? v.mv_size : cap);
        *len = v.mv_size;
    }
    mdb_txn_reset(c->read_txn);
    return result;
}

static int lmdb_put(void *ctx, const uint8_t *key, const uint8_t *value, size_t len)
{
    lmdb_ctx *c = ctx;
    MDB_txn *txn;
    if (mdb_txn_begin(c->store->env, NULL, 0, &txn) != MDB_SUCCESS)
        return -1;
    MDB_val k = {BENCH_KEY_SIZE, (void *)key}, v = {len, (void *)value};
    if (mdb_put(txn, c->store->dbi, &k, &v, 0) != MDB_SUCCESS) {
        mdb_txn_abort(txn);
        return -1;
    }
    return mdb_txn_commit(txn) == MDB_SUCCESS ? 0 : -1;
}

static int lmdb_del(void *ctx, const uint8_t *key)
{
    lmdb_ctx *c = ctx;
    MDB_txn *txn;
    if (mdb_txn_begin(c->store->env, NULL, 0, &txn) != MDB_SUCCESS)
        return -1;
    MDB_val k = {BENCH_KEY_SIZE, (void *)key};
    int rc = mdb_del(txn, c->store->dbi, &k, NULL);
    if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) {
        mdb_txn_abort(txn);
        return -1;
    }
    return mdb_txn_commit(txn) == MDB_SUCCESS ? 0 : -1;
}

static size_t lmdb_scan(void *ctx, const uint8_t *start, size_t n, uint8_t *buf)
{
    lmdb_ctx *c = ctx;
    if (mdb_txn_renew(c->read_txn) != MDB_SUCCESS)
        return 0;
    mdb_cursor_renew(c->read_txn, c->cursor);
    MDB_val k = {BENCH_KEY_SIZE, (void *)start}, v;
    size_t visited = 0;
    int rc = mdb_cursor_get(c->cursor, &k, &v, MDB_SET_RANGE);
    while (rc == MDB_SUCCESS && visited < n) {
        memcpy(buf, v.mv_data, v.mv_size < BENCH_VALUE_SIZE ? v.mv_size : BENCH_VALUE_SIZE);
        visited++;
        if (visited < n)
            rc = mdb_cursor_get(c->cursor, &k, &v, MDB_NEXT);
    }
    mdb_txn_reset(c->read_txn);
    return visited;
}

/* One write txn: read, derive, write, commit. */
static int lmdb_rmw(void *ctx, const uint8_t *key, uint64_t version)
{
    lmdb_ctx *c = ctx;
    MDB_txn *txn;
    if (mdb_txn_begin(c->store->env, NULL, 0, &txn) != MDB_SUCCESS)
        return -1;
    MDB_val k = {BENCH_KEY_SIZE, (void *)key}, v;
    int rc = mdb_get(txn, c->store->dbi, &k, &v);
    if (rc != MDB_SUCCESS) {
        mdb_txn_abort(txn);
        return rc == MDB_NOTFOUND ? 0 : -1;
    }
    uint8_t value[BENCH_VALUE_SIZE];
    memcpy(value, v.mv_data, v.mv_size < sizeof value ? v.mv_size : sizeof value);
    memcpy(value, &version, sizeof version);
    MDB_val nv = {sizeof value, value};
    if (mdb_put(txn, c->store->dbi, &k, &nv, 0) != MDB_SUCCESS) {
        mdb_txn_abort(txn);
        return -1;
    }
    return mdb_txn_commit(txn) == MDB_SUCCESS ? 1 : -1;
}

const bench_adapter bench_lmdb_adapter = {
    .name = "lmdb",
    .describe = "LMDB NOSYNC|NOMETASYNC|WRITEMAP, read txn renewed per op, write txn per op",
    .open = lmdb_open,
    .close = lmdb_close,
    .persistent = true,
    .load = lmdb_load,
    .ctx_open = lmdb_ctx_open,
    .ctx_open_extra = lmdb_ctx_open,
    .ctx_close = lmdb_ctx_close,
    .get = lmdb_get,
    .put = lmdb_put,
    .del = lmdb_del,
    .scan = lmdb_scan,
    .rmw = lmdb_rmw,
};

const bench_adapter bench_lmdb_sync_adapter = {
    .name = "lmdb_sync",
    .describe = "LMDB default durability (fsync per commit), write txn per op",
    .open = lmdb_sync_open,
    .close = lmdb_close,
    .persistent = true,
    .preload_with = &bench_lmdb_adapter,
    .load = lmdb_load,
    .ctx_open = lmdb_ctx_open,
    .ctx_open_extra = lmdb_ctx_open,
    .ctx_close = lmdb_ctx_close,
    .get = lmdb_get,
    .put = lmdb_put,
    .del = lmdb_del,
    .scan = lmdb_scan,
    .rmw = lmdb_rmw,
};
