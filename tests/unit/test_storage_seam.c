/*
 * test_storage_seam.c — the public storage seam (feox_storage.h) driven from outside the engine:
 * a toy backend registered by the test keeps records in a small table and records every call
 * the store makes (method, txn, the replaced version, calling thread). Checks that writes carry
 * the caller's txn and the version they replace (and hand it back through opts->replaced),
 * that FEOX_WRITE_INDEX_ONLY makes no backend call (and, with max_memory and INDEX_CACHE, is
 * never refused for memory and may leave memory, read back by key), that an INDEX_CACHE store
 * asks find() on a miss, that feox_refresh applies a change feed and reloads on
 * FEOX_ERR_STALE, the register errors, that a cursor reads a value that left memory back only
 * when asked for it (a failing read-back fails only that request), that a HOST_TXN store never
 * calls its backend from a thread of its own, and that a VALUES_BY_KEY backend gets back only
 * whether a version has a location unless the store has max_memory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "feox.h"
#include "feox_storage.h"
#include "feox_test_support.h"

#define KS(str) (str), strlen(str)
#define TOY_KEYS 32
#define TOY_CALLS 256

typedef struct toy_record {
    char key[32];
    uint32_t key_len;
    uint8_t value[64];
    uint32_t value_len, tag;
    uint64_t ts_ns, expires_at_ns;
    bool live;
} toy_record;

typedef struct toy_call {
    char method[16];
    void *txn;
    bool has_replaced;
    char replaced[64]; /* the replaced version's value (NUL-terminated copy) */
    pthread_t thread;
} toy_call;

/* The backend's state (feox_config.storage_arg). */
typedef struct toy_state {
    pthread_mutex_t mu;
    toy_record records[TOY_KEYS];
    toy_call calls[TOY_CALLS];
    int ncalls;
    /* refresh: what the feed reports next (puts of these records), or STALE */
    toy_record feed[4];
    int nfeed;
    bool stale;
    /* load: after its puts, walk the store's live records through the host (the log backend's
     * compactor may do so as soon as its replay ends) and note the result */
    bool walk_in_load;
    feox_err walk_err;
    int walk_visits;
    /* read_value: fails with read_error for the key read_fails (NUL-terminated, "" none) */
    char read_fails[32];
    feox_err read_error;
    feox_storage_host host;
} toy_state;

typedef struct toy_storage {
    feox_storage base;
    toy_state *t;
} toy_storage;

static toy_state toy;

static void toy_reset(void)
{
    memset(&toy, 0, sizeof toy);
    pthread_mutex_init(&toy.mu, NULL);
}

static toy_state *state_of(feox_storage *st)
{
    return ((toy_storage *)st)->t;
}

static void record_call(toy_state *t, const char *method, void *txn,
                        const feox_storage_record *replaced)
{
    pthread_mutex_lock(&t->mu);
    if (t->ncalls < TOY_CALLS) {
        toy_call *c = &t->calls[t->ncalls++];
        memset(c, 0, sizeof *c);
        snprintf(c->method, sizeof c->method, "%s", method);
        c->txn = txn;
        c->thread = pthread_self();
        if (replaced) {
            c->has_replaced = true;
            if (replaced->value)
                snprintf(c->replaced, sizeof c->replaced, "%.*s", (int)replaced->value_len,
                         (const char *)replaced->value);
        }
    }
    pthread_mutex_unlock(&t->mu);
}

static int count_calls(const char *method)
{
    int n = 0;
    pthread_mutex_lock(&toy.mu);
    for (int i = 0; i < toy.ncalls; i++)
        n += strcmp(toy.calls[i].method, method) == 0;
    pthread_mutex_unlock(&toy.mu);
    return n;
}

static const toy_call *last_call(void)
{
    return toy.ncalls ? &toy.calls[toy.ncalls - 1] : NULL;
}

static toy_record *toy_find(toy_state *t, const void *key, uint32_t key_len, bool create)
{
    for (int i = 0; i < TOY_KEYS; i++)
        if (t->records[i].live && t->records[i].key_len == key_len &&
            memcmp(t->records[i].key, key, key_len) == 0)
            return &t->records[i];
    if (!create)
        return NULL;
    for (int i = 0; i < TOY_KEYS; i++)
        if (!t->records[i].live)
            return &t->records[i];
    return NULL;
}

static void toy_set(toy_record *r, const char *key, const char *value)
{
    memset(r, 0, sizeof *r);
    r->key_len = (uint32_t)strlen(key);
    memcpy(r->key, key, r->key_len);
    r->value_len = (uint32_t)strlen(value);
    memcpy(r->value, value, r->value_len);
    r->ts_ns = FTEST_EPOCH_NS;
    r->live = true;
}

static feox_storage_record rec_of(const toy_record *r, int slot)
{
    feox_storage_record rec = {.key = r->key,
                               .key_len = r->key_len,
                               .value = r->value,
                               .value_len = r->value_len,
                               .tag = r->tag,
                               .ts_ns = r->ts_ns,
                               .expires_at_ns = r->expires_at_ns,
                               .location = (uint64_t)slot + 1};
    return rec;
}

static feox_err toy_open(const feox_storage_methods *methods, const feox_config *cfg,
                         const feox_storage_host *host, feox_storage **out)
{
    toy_storage *st = calloc(1, sizeof *st);
    if (!st)
        return FEOX_ERR_NOMEM;
    st->base.methods = methods;
    st->t = cfg->storage_arg;
    st->t->host = *host;
    record_call(st->t, "open", NULL, NULL);
    *out = &st->base;
    return FEOX_OK;
}

static int count_visit(void *ctx, const feox_storage_record *rec)
{
    (void)rec;
    (*(int *)ctx)++;
    return 0;
}

/* A cache backend (INDEX_CACHE) loads nothing: the store asks find() for what it lacks. */
static feox_err toy_load(feox_storage *st, void *txn, const feox_storage_sink *sink)
{
    toy_state *t = state_of(st);
    record_call(t, "load", txn, NULL);
    if (st->methods->caps & FEOX_STORAGE_INDEX_CACHE)
        return FEOX_OK;
    for (int i = 0; i < TOY_KEYS; i++) {
        if (!t->records[i].live)
            continue;
        feox_storage_record rec = rec_of(&t->records[i], i);
        feox_err err = sink->put(sink->ctx, &rec);
        if (err)
            return err;
    }
    if (t->walk_in_load)
        t->walk_err = t->host.for_each_live(t->host.ctx, count_visit, &t->walk_visits);
    return FEOX_OK;
}

static feox_err toy_write(feox_storage *st, void *txn, const feox_storage_record *rec,
                          const feox_storage_record *replaced, uint64_t *location, uint64_t *seq)
{
    toy_state *t = state_of(st);
    record_call(t, "write", txn, replaced);
    toy_record *r = toy_find(t, rec->key, rec->key_len, true);
    if (!r || rec->key_len > sizeof r->key || rec->value_len > sizeof r->value)
        return FEOX_ERR_NOMEM;
    memset(r, 0, sizeof *r);
    memcpy(r->key, rec->key, rec->key_len);
    r->key_len = rec->key_len;
    memcpy(r->value, rec->value, rec->value_len);
    r->value_len = rec->value_len;
    r->tag = rec->tag;
    r->ts_ns = rec->ts_ns;
    r->expires_at_ns = rec->expires_at_ns;
    r->live = true;
    *location = (uint64_t)(r - t->records) + 1;
    *seq = 0;
    return FEOX_OK;
}

static feox_err toy_erase(feox_storage *st, void *txn, const void *key, uint32_t key_len,
                          uint64_t ts_ns, const feox_storage_record *replaced, uint64_t *seq)
{
    (void)ts_ns;
    toy_state *t = state_of(st);
    record_call(t, "erase", txn, replaced);
    toy_record *r = toy_find(t, key, key_len, false);
    if (r)
        r->live = false;
    *seq = 0;
    return FEOX_OK;
}

static feox_err toy_find_key(feox_storage *st, void *txn, const void *key, uint32_t key_len,
                             const feox_storage_sink *sink)
{
    toy_state *t = state_of(st);
    record_call(t, "find", txn, NULL);
    toy_record *r = toy_find(t, key, key_len, false);
    if (!r)
        return sink->del(sink->ctx, key, key_len, 0);
    feox_storage_record rec = rec_of(r, (int)(r - t->records));
    return sink->put(sink->ctx, &rec);
}

static feox_err toy_read_value(feox_storage *st, void *txn, const void *key, uint32_t key_len,
                               uint64_t location, void *buf, uint32_t value_len)
{
    (void)location;
    toy_state *t = state_of(st);
    record_call(t, "read_value", txn, NULL);
    if (key_len == strlen(t->read_fails) && memcmp(key, t->read_fails, key_len) == 0)
        return t->read_error;
    toy_record *r = toy_find(t, key, key_len, false);
    if (!r || r->value_len != value_len)
        return FEOX_ERR_CORRUPT;
    memcpy(buf, r->value, value_len);
    return FEOX_OK;
}

static feox_err toy_refresh(feox_storage *st, void *txn, const feox_storage_sink *sink)
{
    toy_state *t = state_of(st);
    record_call(t, "refresh", txn, NULL);
    if (t->stale)
        return FEOX_ERR_STALE;
    for (int i = 0; i < t->nfeed; i++) {
        feox_storage_record rec = rec_of(&t->feed[i], i);
        feox_err err = sink->put(sink->ctx, &rec);
        if (err)
            return err;
    }
    t->nfeed = 0;
    return FEOX_OK;
}

static feox_err toy_check(feox_storage *st, char *detail, size_t detail_len)
{
    (void)detail;
    (void)detail_len;
    record_call(state_of(st), "check", NULL, NULL);
    return FEOX_OK;
}

static void toy_get_stats(feox_storage *st, feox_stats *out)
{
    (void)out;
    record_call(state_of(st), "get_stats", NULL, NULL);
}

static feox_err toy_close(feox_storage *st)
{
    record_call(state_of(st), "close", NULL, NULL);
    free(st);
    return FEOX_OK;
}

#define TOY_METHODS(NAME, CAPS)                                                                   \
    {                                                                                             \
        .version = FEOX_STORAGE_VERSION, .name = NAME, .caps = CAPS, .open = toy_open,            \
        .load = toy_load, .write = toy_write, .erase = toy_erase, .find = toy_find_key,           \
        .read_value = toy_read_value, .refresh = toy_refresh, .check = toy_check,                 \
        .get_stats = toy_get_stats, .close = toy_close                                            \
    }

static const feox_storage_methods toy_plain = TOY_METHODS("toy", 0);
static const feox_storage_methods toy_cache =
    TOY_METHODS("toy-cache", FEOX_STORAGE_INDEX_CACHE | FEOX_STORAGE_HOST_TXN);
static const feox_storage_methods toy_host = TOY_METHODS("toy-host", FEOX_STORAGE_HOST_TXN);

static feox_store *open_toy(const feox_storage_methods *m, ftest_clock *clock)
{
    assert_int_equal(feox_storage_register(m), FEOX_OK);
    feox_config cfg;
    ftest_config(&cfg, clock);
    cfg.storage = feox_storage_find(m->name);
    assert_ptr_equal(cfg.storage, m);
    cfg.storage_arg = &toy;
    return ftest_open(&cfg);
}

static void assert_value(feox_value *v, const char *want)
{
    assert_non_null(v);
    assert_int_equal(feox_value_size(v), strlen(want));
    assert_memory_equal(feox_value_data(v), want, strlen(want));
    feox_value_release(v);
}

/* Every write reaches the backend with the caller's txn and the version it replaces, and hands
 * that version back through opts->replaced. */
static void test_write_carries_txn_and_replaced(void **state)
{
    (void)state;
    toy_reset();
    feox_store *s = open_toy(&toy_plain, NULL);
    int txn_token;
    feox_value *old = (feox_value *)&txn_token; /* must be overwritten */
    feox_write_opts o = {.txn = &txn_token, .replaced = &old};

    assert_int_equal(feox_insert(s, KS("k"), KS("v1"), &o, NULL), FEOX_OK);
    assert_null(old);
    assert_string_equal(last_call()->method, "write");
    assert_ptr_equal(last_call()->txn, &txn_token);
    assert_false(last_call()->has_replaced);

    assert_int_equal(feox_insert(s, KS("k"), KS("v2"), &o, NULL), FEOX_OK);
    assert_true(last_call()->has_replaced);
    assert_string_equal(last_call()->replaced, "v1");
    assert_value(old, "v1");

    assert_int_equal(feox_update_ttl(s, KS("k"), 100, &o), FEOX_OK);
    assert_ptr_equal(last_call()->txn, &txn_token);
    assert_string_equal(last_call()->replaced, "v2");
    assert_value(old, "v2");

    bool swapped = false;
    assert_int_equal(feox_compare_and_swap(s, KS("k"), KS("v2"), KS("{}"), &o, &swapped),
                     FEOX_OK);
    assert_true(swapped);
    assert_string_equal(last_call()->replaced, "v2");
    assert_value(old, "v2");

    const char *patch = "[{\"op\":\"add\",\"path\":\"/a\",\"value\":1}]";
    assert_int_equal(feox_json_patch(s, KS("k"), KS(patch), &o, NULL, NULL), FEOX_OK);
    assert_string_equal(last_call()->replaced, "{}");
    assert_value(old, "{}");

    assert_int_equal(feox_delete(s, KS("k"), &o), FEOX_OK);
    assert_string_equal(last_call()->method, "erase");
    assert_ptr_equal(last_call()->txn, &txn_token);
    assert_string_equal(last_call()->replaced, "{\"a\":1}");
    assert_value(old, "{\"a\":1}");

    int64_t n = 0;
    assert_int_equal(feox_atomic_increment(s, KS("c"), 5, &o, &n), FEOX_OK);
    assert_null(old);
    assert_int_equal(feox_atomic_increment(s, KS("c"), 2, &o, &n), FEOX_OK);
    assert_int_equal(n, 7);
    assert_non_null(old);
    assert_int_equal(ftest_get_i64(feox_value_data(old)), 5); /* the counter before this call */
    feox_value_release(old);

    /* A failed write replaces nothing. */
    o.flags = FEOX_WRITE_IF_ABSENT;
    assert_int_equal(feox_insert(s, KS("c"), KS("x"), &o, NULL), FEOX_ERR_KEY_EXISTS);
    assert_null(old);
    assert_int_equal(feox_close(s), FEOX_OK);
}

/* FEOX_WRITE_INDEX_ONLY changes the indexes and calls nothing. */
static void test_index_only_makes_no_call(void **state)
{
    (void)state;
    toy_reset();
    feox_store *s = open_toy(&toy_plain, NULL);
    int before = toy.ncalls;
    feox_write_opts o = {.flags = FEOX_WRITE_INDEX_ONLY};
    assert_int_equal(feox_insert(s, KS("k"), KS("v"), &o, NULL), FEOX_OK);
    assert_int_equal(feox_update_ttl(s, KS("k"), 10, &o), FEOX_OK);
    int64_t n;
    assert_int_equal(feox_atomic_increment(s, KS("n"), 1, &o, &n), FEOX_OK);
    assert_true(feox_contains(s, KS("k")));
    assert_int_equal(feox_delete(s, KS("k"), &o), FEOX_OK);
    assert_false(feox_contains(s, KS("k")));
    assert_int_equal(toy.ncalls, before);
    assert_null(toy_find(&toy, KS("n"), false));
    assert_int_equal(feox_close(s), FEOX_OK);
}

/* max_memory with an INDEX_CACHE backend: versions the host restored (INDEX_ONLY) are never
 * refused for memory, may leave memory like stored ones (location FEOX_STORAGE_LOCATION_BY_KEY)
 * and are read back by key. */
static uint64_t restore_keys(feox_store *s, int n)
{
    char key[16], value[80];
    feox_write_opts restore = {.flags = FEOX_WRITE_INDEX_ONLY};
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof key, "k%02d", i);
        snprintf(value, sizeof value, "%02d-%058d", i, i);
        toy_set(&toy.records[i], key, value); /* what the host restored in the backend */
        assert_int_equal(feox_insert(s, KS(key), KS(value), &restore, NULL), FEOX_OK);
    }
    return feox_memory_usage(s);
}

/* A store of 24 restored keys with half the memory they need: some values live only in the
 * backend (cold). *all_resident (may be NULL): the memory the keys took with every value
 * resident; *used: what they take now. */
static feox_store *open_half_cold(uint64_t *all_resident, uint64_t *used)
{
    toy_reset();
    assert_int_equal(feox_storage_register(&toy_cache), FEOX_OK);
    feox_config cfg;
    ftest_config(&cfg, NULL);
    cfg.storage = &toy_cache;
    cfg.storage_arg = &toy;
    feox_store *s = ftest_open(&cfg);
    uint64_t resident = restore_keys(s, 24);
    assert_int_equal(feox_close(s), FEOX_OK);
    toy_reset();
    cfg.max_memory = resident / 2; /* less than the keys need with their values */
    s = ftest_open(&cfg);
    uint64_t now = restore_keys(s, 24); /* never OUT_OF_MEMORY */
    if (all_resident)
        *all_resident = resident;
    if (used)
        *used = now;
    return s;
}

static void test_index_only_restores_within_max_memory(void **state)
{
    (void)state;
    uint64_t all_resident, used;
    feox_store *s = open_half_cold(&all_resident, &used);
    assert_int_equal(count_calls("write"), 0);
    assert_true(used < all_resident); /* values left memory to make room */
    assert_int_equal(count_calls("read_value"), 0);
    for (int i = 0; i < 24; i++) {
        char key[16], value[80];
        snprintf(key, sizeof key, "k%02d", i);
        snprintf(value, sizeof value, "%02d-%058d", i, i);
        feox_value *v = NULL;
        assert_int_equal(feox_get_ref(s, KS(key), &v), FEOX_OK);
        assert_value(v, value);
    }
    assert_true(count_calls("read_value") > 0); /* read back by key */
    assert_int_equal(feox_close(s), FEOX_OK);
}

/* A scan of keys and metadata, both ways, reads no value back from the backend. */
static void test_cursor_scan_reads_no_cold_value(void **state)
{
    (void)state;
    feox_store *s = open_half_cold(NULL, NULL);
    feox_cursor *c = NULL;
    assert_int_equal(feox_cursor_open(s, &c), FEOX_OK);
    for (int desc = 0; desc < 2; desc++) {
        int rows = 0;
        assert_int_equal(feox_cursor_seek(c, desc ? FEOX_SEEK_LAST : FEOX_SEEK_FIRST, NULL, 0),
                         FEOX_OK);
        while (feox_cursor_valid(c)) {
            size_t klen;
            feox_record_info info;
            assert_non_null(feox_cursor_key(c, &klen));
            feox_cursor_info(c, &info);
            assert_int_equal(info.value_len, 61); /* known without reading the value */
            rows++;
            assert_int_equal(desc ? feox_cursor_prev(c) : feox_cursor_next(c), FEOX_OK);
        }
        assert_int_equal(rows, 24);
    }
    assert_int_equal(count_calls("read_value"), 0);
    /* asked for, every value is read back (the cold ones once each, however often asked) */
    assert_int_equal(feox_cursor_seek(c, FEOX_SEEK_FIRST, NULL, 0), FEOX_OK);
    for (int i = 0; feox_cursor_valid(c); i++) {
        char value[80];
        snprintf(value, sizeof value, "%02d-%058d", i, i);
        for (int again = 0; again < 2; again++) {
            const void *v;
            size_t vlen;
            assert_int_equal(feox_cursor_read_value(c, &v, &vlen), FEOX_OK);
            assert_int_equal(vlen, strlen(value));
            assert_memory_equal(v, value, vlen);
        }
        assert_int_equal(feox_cursor_next(c), FEOX_OK);
    }
    int reads = count_calls("read_value");
    assert_true(reads > 0 && reads < 24);
    feox_cursor_close(c);
    assert_int_equal(feox_close(s), FEOX_OK);
}

/* The first cold key of the store (its value is in the backend only). */
static int first_cold_key(feox_store *s, char key[16])
{
    for (int i = 0; i < 24; i++) {
        snprintf(key, 16, "k%02d", i);
        int before = count_calls("read_value");
        feox_value *v = NULL;
        assert_int_equal(feox_get_ref(s, key, strlen(key), &v), FEOX_OK);
        feox_value_release(v);
        if (count_calls("read_value") > before)
            return i;
    }
    fail_msg("no value left memory");
    return -1;
}

/* A failing read-back fails only the request for that value, with the backend's error: the scan
 * passes the row, the other values read, and asking again reads again. */
static void test_cursor_failed_read_back_fails_only_that_value(void **state)
{
    (void)state;
    feox_store *s = open_half_cold(NULL, NULL);
    char bad[16];
    int bad_index = first_cold_key(s, bad);
    snprintf(toy.read_fails, sizeof toy.read_fails, "%s", bad);
    toy.read_error = FEOX_ERR_IO;
    feox_cursor *c = NULL;
    assert_int_equal(feox_cursor_open(s, &c), FEOX_OK);
    assert_int_equal(feox_cursor_seek(c, FEOX_SEEK_FIRST, NULL, 0), FEOX_OK);
    int rows = 0, failed = 0;
    for (; feox_cursor_valid(c); rows++) {
        const void *v = NULL;
        size_t vlen = 99;
        feox_err err = feox_cursor_read_value(c, &v, &vlen);
        if (rows == bad_index) {
            assert_int_equal(err, FEOX_ERR_IO);
            assert_null(v);
            assert_int_equal(vlen, 0);
            assert_null(feox_cursor_value(c, &vlen)); /* the pointer form says NULL */
            size_t klen;
            assert_memory_equal(feox_cursor_key(c, &klen), bad, strlen(bad)); /* stays */
            failed++;
        } else {
            assert_int_equal(err, FEOX_OK);
            assert_int_equal(vlen, 61);
        }
        assert_int_equal(feox_cursor_next(c), FEOX_OK);
    }
    assert_int_equal(rows, 24);
    assert_int_equal(failed, 1);
    /* the backend recovers: the same row reads now */
    toy.read_fails[0] = '\0';
    assert_int_equal(feox_cursor_seek(c, FEOX_SEEK_GE, bad, strlen(bad)), FEOX_OK);
    size_t vlen;
    assert_non_null(feox_cursor_value(c, &vlen));
    assert_int_equal(vlen, 61);
    feox_cursor_close(c);
    assert_int_equal(feox_close(s), FEOX_OK);
}

/* The cursor reads back the version it saw, not the key's value now: a newer version written
 * meanwhile (resident) is not what a row the cursor already holds returns. */
static void test_cursor_reads_back_the_version_it_saw(void **state)
{
    (void)state;
    feox_store *s = open_half_cold(NULL, NULL);
    char key[16], old[80];
    int i = first_cold_key(s, key);
    snprintf(old, sizeof old, "%02d-%058d", i, i);
    feox_cursor *c = NULL;
    assert_int_equal(feox_cursor_open(s, &c), FEOX_OK);
    assert_int_equal(feox_cursor_seek(c, FEOX_SEEK_GE, KS(key)), FEOX_OK);
    /* the host writes a new version (its backend still holds the old row for this reader) */
    feox_write_opts restore = {.flags = FEOX_WRITE_INDEX_ONLY};
    assert_int_equal(feox_insert(s, KS(key), KS("new"), &restore, NULL), FEOX_OK);
    feox_value *now = NULL;
    assert_int_equal(feox_get_ref(s, KS(key), &now), FEOX_OK);
    assert_value(now, "new");
    int before = count_calls("read_value");
    size_t vlen;
    const void *v = feox_cursor_value(c, &vlen);
    assert_non_null(v);
    assert_int_equal(vlen, strlen(old));
    assert_memory_equal(v, old, vlen);
    assert_int_equal(count_calls("read_value"), before + 1);
    feox_cursor_close(c);
    assert_int_equal(feox_close(s), FEOX_OK);
}

/* INDEX_CACHE: a key the index lacks is looked up with find() before "not found", once. */
static void test_find_on_miss(void **state)
{
    (void)state;
    toy_reset();
    toy_set(&toy.records[0], "cold", "from the backend");
    uint8_t eight[8];
    ftest_put_i64(eight, 40);
    toy_set(&toy.records[1], "counter", "");
    memcpy(toy.records[1].value, eight, 8);
    toy.records[1].value_len = 8;
    feox_store *s = open_toy(&toy_cache, NULL);
    assert_int_equal(feox_len(s, 0), 0); /* loaded nothing */

    void *value;
    size_t len;
    assert_int_equal(feox_get(s, KS("cold"), &value, &len, NULL), FEOX_OK);
    assert_int_equal(len, strlen("from the backend"));
    assert_memory_equal(value, "from the backend", len);
    feox_free(value);
    assert_int_equal(count_calls("find"), 1);
    assert_true(feox_contains(s, KS("cold"))); /* now in the index: no second find */
    assert_int_equal(count_calls("find"), 1);

    assert_int_equal(feox_get(s, KS("absent"), &value, &len, NULL), FEOX_ERR_KEY_NOT_FOUND);
    assert_int_equal(count_calls("find"), 2);
    assert_false(feox_contains(s, KS("absent")));
    size_t size;
    assert_int_equal(feox_get_size(s, KS("absent"), &size), FEOX_ERR_KEY_NOT_FOUND);
    uint64_t ttl;
    bool has_ttl;
    assert_int_equal(feox_get_ttl(s, KS("absent"), &ttl, &has_ttl), FEOX_ERR_KEY_NOT_FOUND);
    feox_value *v;
    assert_int_equal(feox_get_ref(s, KS("absent"), &v), FEOX_ERR_KEY_NOT_FOUND);
    assert_int_equal(count_calls("find"), 6);

    /* A write that needs the current version finds it in the backend too. */
    int64_t n = 0;
    assert_int_equal(feox_atomic_increment(s, KS("counter"), 2, NULL, &n), FEOX_OK);
    assert_int_equal(n, 42);
    assert_int_equal(count_calls("find"), 7);
    assert_int_equal(feox_close(s), FEOX_OK);
}

/* feox_refresh applies the change feed to the indexes only; STALE empties them and reloads. */
static void test_refresh_and_stale_reload(void **state)
{
    (void)state;
    toy_reset();
    toy_set(&toy.records[0], "a", "1");
    feox_store *s = open_toy(&toy_host, NULL);
    assert_true(feox_contains(s, KS("a")));
    int writes = count_calls("write");

    toy_set(&toy.feed[0], "b", "2");
    toy.nfeed = 1;
    assert_int_equal(feox_refresh(s, &toy), FEOX_OK);
    assert_ptr_equal(last_call()->txn, &toy);
    assert_true(feox_contains(s, KS("b")));
    assert_int_equal(count_calls("write"), writes); /* applied to the indexes only */

    /* Stale: the store reloads what the backend holds now ("a" and "c"; "b" and the keys only
     * the index held are gone). */
    feox_write_opts index_only = {.flags = FEOX_WRITE_INDEX_ONLY};
    char key[32];
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof key, "only-%03d", i);
        assert_int_equal(feox_insert(s, KS(key), KS("x"), &index_only, NULL), FEOX_OK);
    }
    toy_set(&toy.records[1], "c", "3");
    toy.stale = true;
    assert_int_equal(feox_refresh(s, NULL), FEOX_OK);
    assert_int_equal(count_calls("load"), 2);
    assert_true(feox_contains(s, KS("a")));
    assert_false(feox_contains(s, KS("b")));
    assert_true(feox_contains(s, KS("c")));
    assert_int_equal(feox_len(s, 0), 2);
    assert_int_equal(feox_check(s), FEOX_OK);
    assert_int_equal(feox_close(s), FEOX_OK);

    /* A store without a backend, or one whose backend has no refresh, has nothing to do. */
    feox_config cfg;
    ftest_config(&cfg, NULL);
    s = ftest_open(&cfg);
    assert_int_equal(feox_refresh(s, NULL), FEOX_OK);
    assert_int_equal(feox_close(s), FEOX_OK);
    assert_int_equal(feox_refresh(NULL, NULL), FEOX_ERR_INVALID_ARGUMENT);
}

static void test_register_errors(void **state)
{
    (void)state;
    assert_non_null(feox_storage_find("log"));
    assert_string_equal(feox_storage_find("log")->name, "log");
    assert_null(feox_storage_find("no-such-backend"));
    assert_null(feox_storage_find(NULL));
    assert_int_equal(feox_storage_register(NULL), FEOX_ERR_INVALID_ARGUMENT);

    feox_storage_methods m = toy_plain;
    m.name = NULL;
    assert_int_equal(feox_storage_register(&m), FEOX_ERR_INVALID_ARGUMENT);
    m.name = "";
    assert_int_equal(feox_storage_register(&m), FEOX_ERR_INVALID_ARGUMENT);
    m.name = "toy-bad";
    m.version = 0;
    assert_int_equal(feox_storage_register(&m), FEOX_ERR_INVALID_ARGUMENT);
    m.version = FEOX_STORAGE_VERSION + 1;
    assert_int_equal(feox_storage_register(&m), FEOX_ERR_INVALID_ARGUMENT);
    m.version = FEOX_STORAGE_VERSION;
    m.erase = NULL;
    assert_int_equal(feox_storage_register(&m), FEOX_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(feox_error_detail(), "erase"));
    assert_null(feox_storage_find("toy-bad"));

    /* The same methods again: a no-op; other methods under a taken name: KEY_EXISTS. */
    static const feox_storage_methods twice = TOY_METHODS("toy-twice", 0);
    assert_int_equal(feox_storage_register(&twice), FEOX_OK);
    assert_int_equal(feox_storage_register(&twice), FEOX_OK);
    static feox_storage_methods other;
    other = twice;
    assert_int_equal(feox_storage_register(&other), FEOX_ERR_KEY_EXISTS);
    other.name = "log";
    assert_int_equal(feox_storage_register(&other), FEOX_ERR_KEY_EXISTS);
    assert_ptr_equal(feox_storage_find("toy-twice"), &twice);
}

/* HOST_TXN: the store calls its backend only from the caller's threads, even while its TTL
 * sweeper removes expired keys. */
static void test_host_txn_store_has_no_background_writer(void **state)
{
    (void)state;
    toy_reset();
    ftest_clock clock;
    ftest_clock_init(&clock, FTEST_EPOCH_NS);
    assert_int_equal(feox_storage_register(&toy_host), FEOX_OK);
    feox_config cfg;
    ftest_config(&cfg, &clock);
    cfg.disable_ttl_sweeper = false;
    cfg.ttl_sweep_interval_ms = 1;
    cfg.storage = &toy_host;
    cfg.storage_arg = &toy;
    feox_store *s = ftest_open(&cfg);
    feox_write_opts ttl = {.flags = FEOX_WRITE_TTL, .ttl_secs = 1};
    char key[16];
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(feox_insert(s, KS(key), KS("v"), &ttl, NULL), FEOX_OK);
    }
    feox_stats st;
    assert_int_equal(feox_get_stats(s, &st), FEOX_OK);
    uint64_t runs = st.ttl_sweeper_runs;
    ftest_clock_advance(&clock, 5 * FTEST_SEC);
    /* Wait for two more sweeper passes (no deadline: they must happen); the second began after
     * the clock moved, so every key was expired for it. */
    while (st.ttl_sweeper_runs < runs + 2) {
        usleep(1000);
        assert_int_equal(feox_get_stats(s, &st), FEOX_OK);
    }
    assert_int_equal(feox_len(s, 0), 0);
    assert_int_equal(feox_close(s), FEOX_OK);
    pthread_t me = pthread_self();
    for (int i = 0; i < toy.ncalls; i++)
        assert_true(pthread_equal(toy.calls[i].thread, me));
    assert_int_equal(count_calls("erase"), 0); /* expiry is the store's business */
}
/* A walk of the live records while the store still loads (the log backend's compactor runs it
 * as soon as its replay ends, before the store has built its indexes) fails instead of passing
 * the half-built indexes off as the store's content; once open, the walk sees every key. */
static void test_walk_refused_until_loaded(void **state)
{
    (void)state;
    toy_reset();
    const char *keys[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++)
        toy_set(&toy.records[i], keys[i], "v");
    toy.walk_in_load = true;
    feox_store *s = open_toy(&toy_plain, NULL);
    assert_int_equal(toy.walk_err, FEOX_ERR_STALE);
    assert_int_equal(toy.walk_visits, 0);
    assert_int_equal(feox_len(s, 0), 3);
    int visits = 0;
    assert_int_equal(toy.host.for_each_live(toy.host.ctx, count_visit, &visits), FEOX_OK);
    assert_int_equal(visits, 3);
    assert_int_equal(feox_close(s), FEOX_OK);
}

/* ---- FEOX_STORAGE_VALUES_BY_KEY ---- */

static const feox_storage_methods toy_by_key = TOY_METHODS(
    "toy-by-key", FEOX_STORAGE_INDEX_CACHE | FEOX_STORAGE_HOST_TXN | FEOX_STORAGE_VALUES_BY_KEY);

typedef struct seen_locations {
    uint64_t at[TOY_KEYS];
    int n;
} seen_locations;

static int note_location(void *ctx, const feox_storage_record *rec)
{
    seen_locations *seen = ctx;
    seen->at[seen->n++] = rec->location;
    return 0;
}

static void assert_locations(const uint64_t *want, int n)
{
    seen_locations seen = {.n = 0};
    assert_int_equal(toy.host.for_each_live(toy.host.ctx, note_location, &seen), FEOX_OK);
    assert_int_equal(seen.n, n);
    for (int i = 0; i < n; i++)
        assert_true(seen.at[i] == want[i]);
}

/* A backend that finds values by key gets back, without max_memory, only whether a version has
 * a location (the store keeps a bit, not a word: 8 bytes a key): FEOX_STORAGE_LOCATION_BY_KEY for
 * written, found and restored versions alike, and relocate() moves nothing. With max_memory
 * every version keeps the location the backend gave it, and relocate() moves it. Every value
 * reads back either way. */
static void test_values_by_key_keep_no_location(void **state)
{
    (void)state;
    assert_int_equal(feox_storage_register(&toy_by_key), FEOX_OK);
    for (int budget = 0; budget < 2; budget++) {
        toy_reset();
        toy_set(&toy.records[5], "d", "vd"); /* only in the backend: find() brings it (at 6) */
        feox_config cfg;
        ftest_config(&cfg, NULL);
        cfg.storage = &toy_by_key;
        cfg.storage_arg = &toy;
        cfg.max_memory = budget ? 1u << 20 : 0;
        feox_store *s = ftest_open(&cfg);
        const char *keys[] = {"a", "b", "c"};
        for (int i = 0; i < 3; i++) /* the toy puts them at 1, 2, 3 */
            assert_int_equal(feox_insert(s, KS(keys[i]), "v", 1, NULL, NULL), FEOX_OK);
        feox_value *v = NULL;
        assert_int_equal(feox_get_ref(s, KS("d"), &v), FEOX_OK);
        assert_value(v, "vd");
        uint64_t own[] = {1, 2, 3, 6}, by_key[] = {1, 1, 1, 1};
        assert_locations(budget ? own : by_key, 4);
        assert_int_equal(toy.host.relocate(toy.host.ctx, KS("c"), 3, 9), budget != 0);
        uint64_t moved[] = {1, 2, 9, 6};
        assert_locations(budget ? moved : by_key, 4);
        /* restored by the host (INDEX_ONLY): found by key in both */
        feox_write_opts restore = {.flags = FEOX_WRITE_INDEX_ONLY};
        assert_int_equal(feox_insert(s, KS("e"), "ve", 2, &restore, NULL), FEOX_OK);
        uint64_t restored[] = {1, 2, 9, 6, FEOX_STORAGE_LOCATION_BY_KEY};
        uint64_t restored_by_key[] = {1, 1, 1, 1, 1};
        assert_locations(budget ? restored : restored_by_key, 5);
        for (int i = 0; i < 3; i++) {
            assert_int_equal(feox_get_ref(s, KS(keys[i]), &v), FEOX_OK);
            assert_value(v, "v");
        }
        assert_int_equal(feox_close(s), FEOX_OK);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_carries_txn_and_replaced),
        cmocka_unit_test(test_index_only_makes_no_call),
        cmocka_unit_test(test_index_only_restores_within_max_memory),
        cmocka_unit_test(test_cursor_scan_reads_no_cold_value),
        cmocka_unit_test(test_cursor_failed_read_back_fails_only_that_value),
        cmocka_unit_test(test_cursor_reads_back_the_version_it_saw),
        cmocka_unit_test(test_find_on_miss),
        cmocka_unit_test(test_refresh_and_stale_reload),
        cmocka_unit_test(test_register_errors),
        cmocka_unit_test(test_walk_refused_until_loaded),
        cmocka_unit_test(test_values_by_key_keep_no_location),
        cmocka_unit_test(test_host_txn_store_has_no_background_writer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
