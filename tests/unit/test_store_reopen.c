/*
 * test_store_reopen.c — a store file's first load (engine/store/store_load.c) against a model:
 *   reopen     random inserts, overwrites, deletes, re-inserts after a delete, puts with an expiry
 *              (some expire before the reopen), empty / small / large values (large ones are not
 *              allocated with their entry) and key shapes whose first 8 bytes are shared (the
 *              sort's runs of equal heads); after the reopen every point read, a full cursor scan
 *              in key order, feox_len and feox_check agree with the model; then writes on the
 *              loaded keys (overwrite, delete, TTL) and a second reopen agree again.
 *   handles    a value handle on a loaded version (which shares its allocation with the key's
 *              entry) keeps its bytes while the key is overwritten and deleted.
 *   large      20000 keys: the ordered index built on the load's helper thread; then with each
 *              of the open's last allocations failing (the end of the load fails while or
 *              after the helper builds the ordered index).
 *   nomem      the reopen with allocation N failing, for every N: FEOX_ERR_NOMEM, no store, nothing
 *              leaked (ASan), and the next open loads everything.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "failing_alloc.h"
#include "feox.h"
#include "feox_test_support.h"
#include "temp_store_dir.h"

#define POOL 1500
#define KEY_MAX 48

typedef struct model_key {
    uint8_t key[KEY_MAX];
    size_t key_len;
    bool live;
    uint8_t *value;
    size_t value_len;
    uint64_t expires_at; /* 0 = none */
} model_key;

static model_key pool[POOL];
static ftest_clock clock_;
static char dir[] = "/tmp/feox_reopen_XXXXXX";
static char path[sizeof dir + 16];

/* Key i of the pool: three shapes, two of which share their first 8 bytes widely. */
static void make_pool(void)
{
    for (int i = 0; i < POOL; i++) {
        model_key *k = &pool[i];
        memset(k, 0, sizeof *k);
        if (i % 3 == 0) {
            k->key_len = (size_t)snprintf((char *)k->key, KEY_MAX, "user:%06d", i);
        } else if (i % 3 == 1) {
            uint64_t z = (uint64_t)i * 0x9e3779b97f4a7c15ull;
            memcpy(k->key, &z, 8);
            k->key_len = 8 + (size_t)(i % 5); /* some keys are a prefix of nothing, some longer */
        } else {
            k->key_len = 1 + (size_t)(i % 3);
            for (size_t j = 0; j < k->key_len; j++)
                k->key[j] = (uint8_t)(i >> (8 * j));
            k->key[k->key_len - 1] ^= 0x80; /* distinct from the other shapes */
        }
    }
    /* The short keys may collide: keep the first of each. */
    for (int i = 0; i < POOL; i++)
        for (int j = 0; j < i; j++)
            if (pool[j].key_len == pool[i].key_len &&
                memcmp(pool[j].key, pool[i].key, pool[i].key_len) == 0) {
                pool[i].key_len = (size_t)snprintf((char *)pool[i].key, KEY_MAX, "dup%06d", i);
                break;
            }
}

static bool model_live(const model_key *k, uint64_t now)
{
    return k->live && (!k->expires_at || now <= k->expires_at);
}

static feox_store *open_store(void)
{
    feox_config cfg;
    ftest_config(&cfg, &clock_);
    cfg.path = path;
    return ftest_open(&cfg);
}

/* Open the store file with the test thread's allocation number fail_at failing (0: none; either
 * way ftest_fault.alloc_count counts the open's allocations); *s is the store, or NULL. The index
 * snapshot is dropped first, so the whole load runs in the open, on this thread
 * (test_store_snapshot sweeps the failures of the background load a snapshot allows). */
static feox_err open_failing_at(unsigned long fail_at, feox_store **s)
{
    feox_config cfg;
    ftest_config(&cfg, &clock_);
    cfg.path = path;
    ftest_drop_index_snapshot(path);
    ftest_fault.alloc_count = 0;
    ftest_fault.fail_at = fail_at;
    ftest_fault.failure_injected = false;
    ftest_fault.injecting = true;
    *s = NULL;
    feox_err err = feox_open(&cfg, s);
    ftest_fault.injecting = false;
    return err;
}

static void put(feox_store *s, model_key *k, ftest_rng *r, uint64_t expires_at)
{
    static const size_t sizes[] = {0, 7, 100, 256, 257, 3000};
    size_t len = sizes[ftest_rng_below(r, 6)];
    uint8_t *value = malloc(len + 1);
    assert_non_null(value);
    for (size_t i = 0; i < len; i++)
        value[i] = (uint8_t)ftest_rng_next(r);
    feox_write_opts opts = {.flags = expires_at ? FEOX_WRITE_EXPIRES_AT : 0,
                            .expires_at_ns = expires_at};
    assert_int_equal(feox_insert(s, k->key, k->key_len, value, len, &opts, NULL), FEOX_OK);
    free(k->value);
    k->value = value;
    k->value_len = len;
    k->live = true;
    k->expires_at = expires_at;
}

static void random_ops(feox_store *s, ftest_rng *r, int ops)
{
    uint64_t now = ftest_clock_now(&clock_);
    for (int op = 0; op < ops; op++) {
        model_key *k = &pool[ftest_rng_below(r, POOL)];
        uint64_t dice = ftest_rng_below(r, 100);
        if (dice < 20) {
            feox_err err = feox_delete(s, k->key, k->key_len, NULL);
            assert_int_equal(err, model_live(k, now) ? FEOX_OK : FEOX_ERR_KEY_NOT_FOUND);
            k->live = false;
        } else if (dice < 30) {
            /* Expires one second from now: the reopen below happens after it. */
            put(s, k, r, now + FTEST_SEC);
        } else if (dice < 35) {
            put(s, k, r, now + 1000 * FTEST_SEC); /* still live after the reopen */
        } else {
            put(s, k, r, 0);
        }
    }
}

static int compare_keys(const void *a, const void *b)
{
    const model_key *x = *(model_key *const *)a, *y = *(model_key *const *)b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, n);
    return c ? c : (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

/* Every point read, the full scan, len and check agree with the model. */
static void assert_matches_model(feox_store *s)
{
    uint64_t now = ftest_clock_now(&clock_);
    model_key *live[POOL];
    size_t count = 0;
    for (int i = 0; i < POOL; i++) {
        model_key *k = &pool[i];
        void *value = NULL;
        size_t value_len = 0;
        feox_record_info info;
        feox_err err = feox_get(s, k->key, k->key_len, &value, &value_len, &info);
        if (!model_live(k, now)) {
            assert_int_equal(err, FEOX_ERR_KEY_NOT_FOUND);
            continue;
        }
        assert_int_equal(err, FEOX_OK);
        assert_int_equal(value_len, k->value_len);
        assert_memory_equal(value, k->value ? k->value : (uint8_t *)"", value_len);
        assert_int_equal(info.expires_at_ns, k->expires_at);
        feox_free(value);
        live[count++] = k;
    }
    qsort(live, count, sizeof *live, compare_keys);
    feox_cursor *c = NULL;
    assert_int_equal(feox_cursor_open(s, &c), FEOX_OK);
    assert_int_equal(feox_cursor_seek(c, FEOX_SEEK_FIRST, NULL, 0), FEOX_OK);
    size_t seen = 0;
    for (; feox_cursor_valid(c); assert_int_equal(feox_cursor_next(c), FEOX_OK)) {
        assert_true(seen < count);
        size_t key_len;
        const void *key = feox_cursor_key(c, &key_len);
        assert_int_equal(key_len, live[seen]->key_len);
        assert_memory_equal(key, live[seen]->key, key_len);
        seen++;
    }
    feox_cursor_close(c);
    assert_int_equal(seen, count);
    assert_int_equal(feox_len(s, 0), count);
    if (feox_check(s) != FEOX_OK)
        fail_msg("feox_check: %s", feox_error_detail());
}

static int setup(void **state)
{
    (void)state;
    assert_int_equal(ftest_temp_store_make(dir, path, sizeof path), 0);
    make_pool();
    ftest_clock_init(&clock_, FTEST_EPOCH_NS);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < POOL; i++)
        free(pool[i].value);
    ftest_temp_store_remove(dir, path);
    return 0;
}

static void test_reopen_matches_model(void **state)
{
    (void)state;
    unlink(path);
    ftest_rng r;
    ftest_rng_seed(&r, 15);
    feox_store *s = open_store();
    random_ops(s, &r, 6000);
    assert_matches_model(s);
    assert_int_equal(feox_close(s), FEOX_OK);

    ftest_clock_advance(&clock_, 2 * FTEST_SEC); /* the one-second expiries are now past */
    s = open_store();
    assert_matches_model(s);
    random_ops(s, &r, 3000); /* overwrite, delete and re-insert loaded keys */
    assert_matches_model(s);
    assert_int_equal(feox_close(s), FEOX_OK);

    ftest_clock_advance(&clock_, 2 * FTEST_SEC);
    s = open_store();
    assert_matches_model(s);
    assert_int_equal(feox_close(s), FEOX_OK);
}

static void test_handle_on_loaded_version_outlives_the_key(void **state)
{
    (void)state;
    unlink(path);
    feox_store *s = open_store();
    for (int i = 0; i < 200; i++)
        assert_int_equal(feox_insert(s, pool[i].key, pool[i].key_len, "loaded", 6, NULL, NULL),
                         FEOX_OK);
    assert_int_equal(feox_close(s), FEOX_OK);
    s = open_store();
    feox_value *handles[200];
    for (int i = 0; i < 200; i++)
        assert_int_equal(feox_get_ref(s, pool[i].key, pool[i].key_len, &handles[i]), FEOX_OK);
    for (int i = 0; i < 200; i++) {
        assert_int_equal(feox_insert(s, pool[i].key, pool[i].key_len, "new", 3, NULL, NULL),
                         FEOX_OK);
        if (i % 2)
            assert_int_equal(feox_delete(s, pool[i].key, pool[i].key_len, NULL), FEOX_OK);
    }
    /* Let the maintenance thread reclaim the retired entries and versions meanwhile. */
    for (int i = 0; i < 5; i++)
        usleep(20000);
    for (int i = 0; i < 200; i++) {
        assert_int_equal(feox_value_size(handles[i]), 6);
        assert_memory_equal(feox_value_data(handles[i]), "loaded", 6);
        feox_value_release(handles[i]);
    }
    assert_int_equal(feox_len(s, 0), 100);
    assert_int_equal(feox_check(s), FEOX_OK);
    assert_int_equal(feox_close(s), FEOX_OK);
    for (int i = 0; i < POOL; i++) {
        free(pool[i].value);
        pool[i].value = NULL;
        pool[i].live = false;
    }
}

static void test_reopen_with_each_allocation_failing(void **state)
{
    (void)state;
    unlink(path);
    ftest_rng r;
    ftest_rng_seed(&r, 16);
    feox_store *s = open_store();
    for (int i = 0; i < POOL; i++)
        pool[i].live = false;
    random_ops(s, &r, 400);
    assert_int_equal(feox_close(s), FEOX_OK);
    for (int persistent = 0; persistent < 2; persistent++) {
        ftest_failing_alloc_install(persistent);
        unsigned long n;
        for (n = 1;; n++) {
            feox_err err = open_failing_at(n, &s);
            if (!ftest_fault.failure_injected) {
                assert_int_equal(err, FEOX_OK);
                break;
            }
            if (err == FEOX_OK) { /* the failed allocation was retried or not needed */
                assert_matches_model(s);
                assert_int_equal(feox_close(s), FEOX_OK);
                continue;
            }
            assert_int_equal(err, FEOX_ERR_NOMEM);
            assert_null(s);
            s = open_store(); /* the file is intact: everything loads */
            assert_matches_model(s);
            assert_int_equal(feox_close(s), FEOX_OK);
        }
        ftest_failing_alloc_remove();
        assert_matches_model(s);
        assert_int_equal(feox_close(s), FEOX_OK);
        assert_true(n > 10);
    }
}

/* A load large enough for the helper thread that builds the ordered index (PARALLEL_MIN_KEYS
 * in store_load.c): the same checks on 20000 keys, a seventh of them deleted before the close. */
static void test_large_reopen_builds_both_indexes(void **state)
{
    (void)state;
    unlink(path);
    enum { N = 20000 };
    feox_store *s = open_store();
    for (uint64_t i = 0; i < N; i++) {
        uint64_t z = (i * 0x9e3779b97f4a7c15ull) % 1000003;
        char key[24], value[24];
        int klen =
            snprintf(key, sizeof key, "k%08llu-%llu", (unsigned long long)z, (unsigned long long)i);
        int vlen = snprintf(value, sizeof value, "v%llu", (unsigned long long)i);
        assert_int_equal(feox_insert(s, key, (size_t)klen, value, (size_t)vlen, NULL, NULL),
                         FEOX_OK);
        if (i % 7 == 3)
            assert_int_equal(feox_delete(s, key, (size_t)klen, NULL), FEOX_OK);
    }
    uint64_t want = feox_len(s, 0);
    assert_int_equal(feox_close(s), FEOX_OK);
    s = open_store();
    assert_int_equal(feox_len(s, 0), want);
    if (feox_check(s) != FEOX_OK)
        fail_msg("feox_check: %s", feox_error_detail());
    feox_cursor *c = NULL;
    assert_int_equal(feox_cursor_open(s, &c), FEOX_OK);
    assert_int_equal(feox_cursor_seek(c, FEOX_SEEK_FIRST, NULL, 0), FEOX_OK);
    uint64_t seen = 0;
    char last[32] = "";
    size_t last_len = 0;
    for (; feox_cursor_valid(c); assert_int_equal(feox_cursor_next(c), FEOX_OK)) {
        size_t key_len;
        const char *key = feox_cursor_key(c, &key_len);
        if (seen) {
            size_t n = key_len < last_len ? key_len : last_len;
            int cmp = memcmp(last, key, n);
            assert_true(cmp < 0 || (cmp == 0 && last_len < key_len));
        }
        memcpy(last, key, key_len);
        last_len = key_len;
        /* The value still belongs to the key. */
        void *value = NULL;
        size_t value_len = 0;
        assert_int_equal(feox_get(s, key, key_len, &value, &value_len, NULL), FEOX_OK);
        const char *dash = memchr(key, '-', key_len);
        assert_non_null(dash);
        assert_int_equal(value_len, key_len - (size_t)(dash + 1 - key) + 1);
        assert_memory_equal((char *)value + 1, dash + 1, value_len - 1);
        feox_free(value);
        seen++;
    }
    feox_cursor_close(c);
    assert_int_equal(seen, want);
    assert_int_equal(feox_close(s), FEOX_OK);
}

/* The large load again, with each of the test thread's last allocations of the open failing
 * (from then on: persistent): the end of the load (the sort array, the hash index's region,
 * the grouping by shard) fails while the helper thread builds the ordered index, or after it
 * built it; the store is then destroyed with an ordered index whose entries the hash index may
 * not hold (store.c must not walk them). FEOX_ERR_NOMEM, no store, nothing leaked or read after
 * free (ASan), and the next open loads every key. */
static void test_large_reopen_failing_at_the_end(void **state)
{
    (void)state;
    unlink(path);
    enum { N = 20000, LAST = 24 };
    feox_store *s = open_store();
    for (uint64_t i = 0; i < N; i++) {
        char key[24];
        int klen = snprintf(key, sizeof key, "k%llu", (unsigned long long)(i * 7919 % N));
        assert_int_equal(feox_insert(s, key, (size_t)klen, "v", 1, NULL, NULL), FEOX_OK);
    }
    assert_int_equal(feox_close(s), FEOX_OK);
    ftest_failing_alloc_install(true);
    assert_int_equal(open_failing_at(0, &s), FEOX_OK); /* counts the open's allocations */
    unsigned long total = ftest_fault.alloc_count;
    assert_int_equal(feox_close(s), FEOX_OK);
    assert_true(total > LAST);
    int failed = 0;
    for (unsigned long n = total - LAST; n <= total; n++) {
        feox_err err = open_failing_at(n, &s);
        if (err == FEOX_OK) { /* not reached, or not needed */
            assert_int_equal(feox_len(s, 0), N);
            assert_int_equal(feox_close(s), FEOX_OK);
            continue;
        }
        assert_true(ftest_fault.failure_injected);
        assert_int_equal(err, FEOX_ERR_NOMEM);
        assert_null(s);
        failed++;
    }
    ftest_failing_alloc_remove();
    assert_true(failed > 0);
    s = open_store();
    assert_int_equal(feox_len(s, 0), N);
    if (feox_check(s) != FEOX_OK)
        fail_msg("feox_check: %s", feox_error_detail());
    assert_int_equal(feox_close(s), FEOX_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reopen_matches_model),
        cmocka_unit_test(test_handle_on_loaded_version_outlives_the_key),
        cmocka_unit_test(test_reopen_with_each_allocation_failing),
        cmocka_unit_test(test_large_reopen_builds_both_indexes),
        cmocka_unit_test(test_large_reopen_failing_at_the_end),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
