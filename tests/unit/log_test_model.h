/*
 * log_test_model.h — a tiny in-memory "store" for testing the log backend (through its
 * feox_storage_methods, feox_log_storage_methods) without the store: a load sink that applies
 * puts and deletes in call order, and the host calls compaction makes (for_each_live, relocate).
 * Included by tests/unit/test_log_*.c only. Not thread-safe.
 */
#ifndef LOG_TEST_MODEL_H
#define LOG_TEST_MODEL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "feox_storage.h"
#include "index/record.h"
#include "storage/log/log_storage.h"

#define MODEL_MAX 4096

typedef struct model_key {
    char key[64];
    uint8_t value[256];
    uint32_t value_len, tag;
    uint64_t ts, expires, location;
    int live;
} model_key;

typedef struct model {
    model_key keys[MODEL_MAX];
    int count;
    uint64_t puts, dels;
} model;

static inline model_key *model_find(model *m, const void *key, uint32_t key_len)
{
    for (int i = 0; i < m->count; i++)
        if (strlen(m->keys[i].key) == key_len && memcmp(m->keys[i].key, key, key_len) == 0)
            return &m->keys[i];
    if (m->count == MODEL_MAX || key_len >= sizeof m->keys[0].key)
        return NULL;
    model_key *k = &m->keys[m->count++];
    memset(k, 0, sizeof *k);
    memcpy(k->key, key, key_len);
    return k;
}

static inline feox_err model_put_fields(void *ctx, const void *key, uint32_t key_len,
                                        const void *value, uint32_t value_len, uint32_t tag,
                                        uint64_t ts, uint64_t expires, uint64_t location)
{
    model *m = ctx;
    model_key *k = model_find(m, key, key_len);
    if (!k || value_len > sizeof k->value || !value)
        return FEOX_ERR_NOMEM;
    memcpy(k->value, value, value_len);
    k->value_len = value_len;
    k->tag = tag;
    k->ts = ts;
    k->expires = expires;
    k->location = location;
    k->live = 1;
    m->puts++;
    return FEOX_OK;
}

static inline feox_err model_put(void *ctx, const feox_storage_record *r)
{
    return model_put_fields(ctx, r->key, r->key_len, r->value, r->value_len, r->tag, r->ts_ns,
                            r->expires_at_ns, r->location);
}

static inline feox_err model_del(void *ctx, const void *key, uint32_t key_len, uint64_t ts)
{
    model *m = ctx;
    model_key *k = model_find(m, key, key_len);
    if (!k)
        return FEOX_ERR_NOMEM;
    k->live = 0;
    k->ts = ts;
    m->dels++;
    return FEOX_OK;
}

static inline bool model_relocate(void *ctx, const void *key, uint32_t key_len, uint64_t old_loc,
                                  uint64_t new_loc)
{
    model_key *k = model_find(ctx, key, key_len);
    if (!k || !k->live || k->location != old_loc)
        return false;
    k->location = new_loc;
    return true;
}

static inline feox_err model_for_each_live(void *ctx,
                                           int (*fn)(void *, const feox_storage_record *),
                                           void *fn_ctx)
{
    model *m = ctx;
    for (int i = 0; i < m->count; i++) {
        model_key *k = &m->keys[i];
        if (!k->live)
            continue;
        feox_storage_record r = {.key = k->key,
                                 .key_len = (uint32_t)strlen(k->key),
                                 .value = k->value,
                                 .value_len = k->value_len,
                                 .tag = k->tag,
                                 .ts_ns = k->ts,
                                 .expires_at_ns = k->expires,
                                 .location = k->location};
        if (fn(fn_ctx, &r))
            break;
    }
    return FEOX_OK;
}

static inline uint64_t model_now(void *ctx)
{
    (void)ctx;
    return 1;
}

static inline feox_storage_host model_hooks(model *m)
{
    feox_storage_host h = {m, model_relocate, model_for_each_live, model_now, NULL};
    return h;
}

static inline feox_storage_sink model_sink(model *m)
{
    feox_storage_sink s = {.ctx = m, .put = model_put, .del = model_del};
    return s;
}

/* Open the log backend at cfg->path (nothing loaded yet). */
static inline feox_err model_backend_open(const feox_config *cfg, const feox_storage_host *host,
                                          feox_storage **out)
{
    return feox_log_storage_methods.open(&feox_log_storage_methods, cfg, host, out);
}

/* The backend's write() of version r of key (as the store calls it). */
static inline feox_err model_append_put(feox_storage *b, const void *key, uint32_t key_len,
                                        const feox_record *r, uint64_t *location, uint64_t *seq)
{
    feox_storage_record rec = {.key = key,
                               .key_len = key_len,
                               .value = r->value,
                               .value_len = r->value_len,
                               .tag = r->tag,
                               .ts_ns = r->ts_ns,
                               .expires_at_ns = feox_record_expires_at(r)};
    return b->methods->write(b, NULL, &rec, NULL, location, seq);
}

static inline feox_err model_append_delete(feox_storage *b, const void *key, uint32_t key_len,
                                           uint64_t ts, uint64_t *seq)
{
    feox_storage_record old = {.key = key, .key_len = key_len};
    return b->methods->erase(b, NULL, key, key_len, ts, &old, seq);
}

static inline feox_err model_read_value(feox_storage *b, uint64_t location, void *buf,
                                        uint32_t value_len)
{
    return b->methods->read_value(b, NULL, NULL, 0, location, buf, value_len);
}

/* Apply a put to the model the way the store would after write() succeeded. */
static inline feox_err model_write(feox_storage *b, model *m, const char *key, const char *value,
                                   uint64_t ts)
{
    feox_record *r = feox_record_new(value, strlen(value), 7, ts, 0, false);
    uint64_t location = 0, seq = 0;
    feox_err err = model_append_put(b, key, (uint32_t)strlen(key), r, &location, &seq);
    if (err == FEOX_OK)
        model_put_fields(m, key, (uint32_t)strlen(key), value, (uint32_t)strlen(value), 7, ts, 0,
                         location);
    feox_record_free(r);
    return err;
}

static inline feox_err model_delete(feox_storage *b, model *m, const char *key, uint64_t ts)
{
    uint64_t seq;
    feox_err err = model_append_delete(b, key, (uint32_t)strlen(key), ts, &seq);
    if (err == FEOX_OK)
        model_del(m, key, (uint32_t)strlen(key), ts);
    return err;
}

static inline feox_config model_config(const char *path, feox_sync_mode sync)
{
    feox_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.path = path;
    cfg.sync = sync;
    cfg.disable_compaction = true;
    cfg.flush_interval_ms = 3600u * 1000u; /* tests flush explicitly: no background I/O */
    return cfg;
}

/* A fresh temporary path (the file does not exist). */
static inline void model_temp_path(char *out, size_t len, const char *tag)
{
    static int counter;
    snprintf(out, len, "/tmp/feox-test-%s-%d-%d.feox", tag, (int)getpid(), counter++);
    unlink(out);
}

/* Open path and load it into m (cleared first). */
static inline feox_err model_open(const char *path, feox_sync_mode sync, model *m,
                                  feox_storage **out)
{
    memset(m, 0, sizeof *m);
    feox_config cfg = model_config(path, sync);
    feox_storage_host hooks = model_hooks(m);
    feox_err err = model_backend_open(&cfg, &hooks, out);
    if (err)
        return err;
    feox_storage_sink sink = model_sink(m);
    err = (*out)->methods->load(*out, NULL, &sink);
    if (err) {
        (*out)->methods->close(*out);
        *out = NULL;
    }
    return err;
}

static inline model_key *model_get(model *m, const char *key)
{
    for (int i = 0; i < m->count; i++)
        if (strcmp(m->keys[i].key, key) == 0)
            return m->keys[i].live ? &m->keys[i] : NULL;
    return NULL;
}

#endif
