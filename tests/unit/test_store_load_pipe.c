/*
 * test_store_load_pipe.c — a backend that announces a large run (sink->expect of at least 16,384
 * records) has its put_ordered records applied on a worker thread while it sends the next ones
 * (store_load_pipe.c): the store ends up as the same records sent without the announcement
 * leave it (keys, values, tags, expiries, the order, the memory accounted), with a del, a plain
 * put, an out-of-order key, an expired put and values too large for a batch among them; the
 * records really are built on another thread; a cursor of the refreshing thread sees the keys
 * the worker added (as after its own writes); and allocation failures on the worker come back to
 * the refresh as NOMEM with the detail, leaving the indexes whole. The backend is scripted, as in
 * test_store_put_run.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "feox.h"
#include "feox_storage.h"
#include "feox_test_support.h"

/* ---- a scripted backend: each refresh calls the test's script with the sink ---- */

typedef feox_err (*script_fn)(const feox_storage_sink *sink, void *arg);

static script_fn script;
static void *script_arg;

static feox_err sc_open(const feox_storage_methods *methods, const feox_config *cfg,
                        const feox_storage_host *host, feox_storage **out)
{
    (void)cfg;
    (void)host;
    feox_storage *st = calloc(1, sizeof *st);
    if (!st)
        return FEOX_ERR_NOMEM;
    st->methods = methods;
    *out = st;
    return FEOX_OK;
}

static feox_err sc_load(feox_storage *st, void *txn, const feox_storage_sink *sink)
{
    (void)st;
    (void)txn;
    (void)sink;
    return FEOX_OK; /* the store starts empty */
}

static feox_err sc_refresh(feox_storage *st, void *txn, const feox_storage_sink *sink)
{
    (void)st;
    (void)txn;
    script_fn fn = script;
    script = NULL;
    return fn ? fn(sink, script_arg) : FEOX_OK;
}

static const feox_storage_methods scripted = {.version = FEOX_STORAGE_VERSION,
                                              .name = "load-pipe-script",
                                              .open = sc_open,
                                              .load = sc_load,
                                              .write = ftest_storage_write_nothing,
                                              .erase = ftest_storage_erase_nothing,
                                              .read_value = ftest_storage_read_value_corrupt,
                                              .refresh = sc_refresh,
                                              .check = ftest_storage_check_ok,
                                              .get_stats = ftest_storage_no_stats,
                                              .close = ftest_storage_close_free};

static feox_store *open_scripted(ftest_clock *clock)
{
    assert_int_equal(feox_storage_register(&scripted), FEOX_OK);
    feox_config cfg;
    ftest_config(&cfg, clock);
    cfg.storage = &scripted;
    return ftest_open(&cfg);
}

static feox_err refresh_with(feox_store *s, script_fn fn, void *arg)
{
    script = fn;
    script_arg = arg;
    return feox_refresh(s, NULL);
}

/* ---- an allocator that counts (and may fail) the allocations of threads other than the test's:
 * the worker's ---- */

static pthread_t test_thread;
static atomic_ulong worker_allocs;
static atomic_ulong worker_fail_at;     /* 0: none */
static atomic_bool worker_fail_persist; /* that one and every later one */

static bool worker_allocation_fails(void)
{
    if (pthread_equal(pthread_self(), test_thread))
        return false;
    unsigned long n = atomic_fetch_add(&worker_allocs, 1) + 1;
    unsigned long at = atomic_load(&worker_fail_at);
    return at && (atomic_load(&worker_fail_persist) ? n >= at : n == at);
}

static void *counting_malloc(size_t size)
{
    return worker_allocation_fails() ? NULL : malloc(size);
}

static void *counting_realloc(void *p, size_t size)
{
    return worker_allocation_fails() ? NULL : realloc(p, size);
}

static void count_worker_allocations(unsigned long fail_at, bool persistent)
{
    test_thread = pthread_self();
    atomic_store(&worker_allocs, 0);
    atomic_store(&worker_fail_at, fail_at);
    atomic_store(&worker_fail_persist, persistent);
    feox_set_allocator(counting_malloc, counting_realloc, free);
}

/* ---- keys and values ---- */

#define KEY_LEN 8
#define RUN_KEYS 70000u  /* past the 16,384 that start the worker */
#define BIG_VALUE 200000 /* past a batch's 128 KiB */

static void key_of(uint32_t i, char out[KEY_LEN + 1])
{
    snprintf(out, KEY_LEN + 1, "k%07u", (unsigned)i);
}

/* The value of key i at version v: mostly 100 bytes, some shared-size boundaries, a few empty,
 * and every 20,000th BIG_VALUE bytes. */
static size_t value_len_of(uint32_t i)
{
    return i % 20000 == 7 ? BIG_VALUE : i % 97 == 0 ? 0 : i % 13 == 0 ? 300 : 100;
}

static size_t value_of(uint32_t i, uint32_t v, char *out)
{
    size_t len = value_len_of(i);
    for (size_t j = 0; j < len; j++)
        out[j] = (char)('a' + (i * 7 + j + v) % 26);
    return len;
}

static char value_buf[BIG_VALUE];
static char want_buf[BIG_VALUE];

static feox_err put_key(const feox_storage_sink *sink, uint32_t i, uint32_t v, uint64_t expires,
                        bool ordered)
{
    char key[KEY_LEN + 1];
    key_of(i, key);
    size_t len = value_of(i, v, value_buf);
    feox_storage_record rec = {.key = key,
                               .key_len = KEY_LEN,
                               .value = value_buf,
                               .value_len = (uint32_t)len,
                               .tag = i + v,
                               .ts_ns = FTEST_EPOCH_NS,
                               .expires_at_ns = expires,
                               .location = i + 1};
    return ordered ? sink->put_ordered(sink->ctx, &rec) : sink->put(sink->ctx, &rec);
}

/* What a large run sends: keys 0..RUN_KEYS-1 at version 1 in order, but key 500 after 600 (out
 * of order), a del of 1000 after 1000's put and a plain put of 2000 at version 9 (each drains
 * the worker), key 3000 already expired, keys 4000-4099 with an expiry to come; expect() first
 * when asked. */
typedef struct run_arg {
    bool announce;
    ftest_clock *clock;
} run_arg;

static feox_err large_run_script(const feox_storage_sink *sink, void *p)
{
    const run_arg *a = p;
    uint64_t now = ftest_clock_now(a->clock);
    if (a->announce)
        sink->expect(sink->ctx, RUN_KEYS);
    feox_err err = FEOX_OK;
    for (uint32_t i = 0; i < RUN_KEYS && !err; i++) {
        if (i == 500)
            continue;
        uint64_t expires = i == 3000               ? now - FTEST_SEC
                           : i >= 4000 && i < 4100 ? now + 100 * FTEST_SEC
                                                   : 0;
        err = put_key(sink, i, 1, expires, true);
        if (!err && i == 600)
            err = put_key(sink, 500, 1, 0, true);
        if (!err && i == 1000) {
            char key[KEY_LEN + 1];
            key_of(1000, key);
            err = sink->del(sink->ctx, key, KEY_LEN, FTEST_EPOCH_NS);
        }
        if (!err && i == 2000)
            err = put_key(sink, 2000, 9, 0, false);
    }
    return err;
}

static void assert_key(feox_store *s, uint32_t i, uint32_t v)
{
    char key[KEY_LEN + 1];
    key_of(i, key);
    size_t len = value_of(i, v, want_buf);
    feox_value *val = NULL;
    assert_int_equal(feox_get_ref(s, key, KEY_LEN, &val), FEOX_OK);
    assert_int_equal(feox_value_size(val), len);
    assert_memory_equal(feox_value_data(val), want_buf, len);
    assert_int_equal(feox_value_tag(val), i + v);
    feox_value_release(val);
}

static void assert_absent(feox_store *s, uint32_t i)
{
    char key[KEY_LEN + 1];
    key_of(i, key);
    feox_value *val = NULL;
    assert_int_equal(feox_get_ref(s, key, KEY_LEN, &val), FEOX_ERR_KEY_NOT_FOUND);
}

/* Every key in order, as a cursor sees them: RUN_KEYS minus the deleted and the expired one. */
static void assert_run_in_order(feox_store *s)
{
    feox_cursor *c = NULL;
    assert_int_equal(feox_cursor_open(s, &c), FEOX_OK);
    assert_int_equal(feox_cursor_seek(c, FEOX_SEEK_FIRST, NULL, 0), FEOX_OK);
    uint32_t i = 0, seen = 0;
    while (feox_cursor_valid(c)) {
        while (i == 1000 || i == 3000)
            i++;
        size_t len = 0;
        const void *key = feox_cursor_key(c, &len);
        char want[KEY_LEN + 1];
        key_of(i, want);
        assert_int_equal(len, KEY_LEN);
        assert_memory_equal(key, want, KEY_LEN);
        i++;
        seen++;
        assert_int_equal(feox_cursor_next(c), FEOX_OK);
    }
    feox_cursor_close(c);
    assert_int_equal(seen, RUN_KEYS - 2);
}

/* ---- tests ---- */

/* The same run with and without expect(): the same store, and only the announced one builds its
 * records on another thread (allocations seen there). */
static void test_announced_run_matches_the_plain_one(void **state)
{
    (void)state;
    uint64_t memory[2];
    unsigned long allocs[2];
    for (int announce = 0; announce < 2; announce++) {
        ftest_clock clock;
        ftest_clock_init(&clock, FTEST_EPOCH_NS + 1000 * FTEST_SEC);
        count_worker_allocations(0, false);
        feox_store *s = open_scripted(&clock);
        run_arg arg = {.announce = announce, .clock = &clock};
        assert_int_equal(refresh_with(s, large_run_script, &arg), FEOX_OK);
        allocs[announce] = atomic_load(&worker_allocs);
        assert_int_equal(feox_len(s, 0), RUN_KEYS - 2);
        assert_int_equal(feox_check(s), FEOX_OK);
        assert_run_in_order(s);
        for (uint32_t i = 0; i < RUN_KEYS; i += (i < 5000 ? 1 : 7))
            if (i == 1000 || i == 3000)
                assert_absent(s, i);
            else
                assert_key(s, i, i == 2000 ? 9 : 1);
        for (uint32_t i = 7; i < RUN_KEYS; i += 20000)
            assert_key(s, i, 1); /* the values larger than a batch */
        char key[KEY_LEN + 1];
        key_of(4050, key);
        uint64_t ttl = 0;
        bool has_ttl = false;
        assert_int_equal(feox_get_ttl(s, key, KEY_LEN, &ttl, &has_ttl), FEOX_OK);
        assert_true(has_ttl);
        assert_int_equal(ttl, 100);
        memory[announce] = feox_memory_usage(s);
        ftest_clock_advance(&clock, 200 * FTEST_SEC);
        assert_absent(s, 4050);
        assert_int_equal(feox_len(s, 0), RUN_KEYS - 2 - 100);
        assert_int_equal(feox_close(s), FEOX_OK);
        feox_set_allocator(NULL, NULL, NULL);
    }
    assert_int_equal(memory[0], memory[1]);
    assert_int_equal(allocs[0], 0);
    assert_true(allocs[1] > 0);
}

/* A cursor of the refreshing thread, between two keys the store held, steps onto the key the
 * worker put between them (the refresh counts as that thread's writes: its batch is read
 * again), as it does when the run is applied on the thread itself. */
static feox_err even_keys_script(const feox_storage_sink *sink, void *arg)
{
    (void)arg;
    feox_err err = FEOX_OK;
    for (uint32_t i = 0; i < 200 && !err; i += 2)
        err = put_key(sink, i, 1, 0, true);
    return err;
}

/* Only put_ordered, values that fit a batch: nothing is applied on the refreshing thread. */
static feox_err ordered_only_script(const feox_storage_sink *sink, void *arg)
{
    if (*(const bool *)arg)
        sink->expect(sink->ctx, RUN_KEYS);
    char key[KEY_LEN + 1];
    feox_err err = FEOX_OK;
    for (uint32_t i = 0; i < RUN_KEYS && !err; i++) {
        key_of(i, key);
        feox_storage_record rec = {
            .key = key, .key_len = KEY_LEN, .value = "v", .value_len = 1, .location = i + 1};
        err = sink->put_ordered(sink->ctx, &rec);
    }
    return err;
}

static void test_cursor_of_the_thread_sees_the_run(void **state)
{
    (void)state;
    for (int announce = 0; announce < 2; announce++) {
        ftest_clock clock;
        ftest_clock_init(&clock, FTEST_EPOCH_NS + 1000 * FTEST_SEC);
        feox_store *s = open_scripted(&clock);
        assert_int_equal(refresh_with(s, even_keys_script, NULL), FEOX_OK);
        feox_cursor *c = NULL;
        assert_int_equal(feox_cursor_open(s, &c), FEOX_OK);
        assert_int_equal(feox_cursor_seek(c, FEOX_SEEK_FIRST, NULL, 0), FEOX_OK);
        size_t len = 0;
        char want[KEY_LEN + 1];
        key_of(0, want);
        assert_memory_equal(feox_cursor_key(c, &len), want, KEY_LEN);
        bool announced = announce;
        assert_int_equal(refresh_with(s, ordered_only_script, &announced), FEOX_OK);
        assert_int_equal(feox_cursor_next(c), FEOX_OK);
        assert_true(feox_cursor_valid(c));
        key_of(1, want);
        assert_memory_equal(feox_cursor_key(c, &len), want, KEY_LEN);
        feox_cursor_close(c);
        assert_int_equal(feox_close(s), FEOX_OK);
    }
}

/* Allocation n of the worker fails (once; or it and every later one): the refresh works (a
 * failure the run absorbs) or fails with NOMEM and the worker's detail; the indexes agree, every
 * key present has the version sent, and a refresh after it loads everything; emptied, the store
 * accounts what an empty one does. */
static bool run_with_worker_failure(unsigned long n, bool persistent, uint64_t empty_memory)
{
    ftest_clock clock;
    ftest_clock_init(&clock, FTEST_EPOCH_NS + 1000 * FTEST_SEC);
    count_worker_allocations(n, persistent); /* before the store opens (feox.h) */
    feox_store *s = open_scripted(&clock);
    run_arg arg = {.announce = true, .clock = &clock};
    feox_err err = refresh_with(s, large_run_script, &arg);
    atomic_store(&worker_fail_at, 0);
    assert_true(atomic_load(&worker_allocs) > 0);
    if (err != FEOX_OK) { /* some failures are absorbed (the run's arrays: applied one by one) */
        assert_true(atomic_load(&worker_allocs) >= n);
        assert_int_equal(err, FEOX_ERR_NOMEM);
        assert_string_equal(feox_error_detail(), "allocation failed");
    }
    assert_int_equal(feox_check(s), FEOX_OK);
    uint64_t present = 0;
    for (uint32_t i = 0; i < RUN_KEYS; i++) {
        char key[KEY_LEN + 1];
        key_of(i, key);
        feox_value *val = NULL;
        feox_err got = feox_get_ref(s, key, KEY_LEN, &val);
        if (got == FEOX_ERR_KEY_NOT_FOUND)
            continue;
        assert_int_equal(got, FEOX_OK);
        size_t len = value_of(i, i == 2000 ? 9 : 1, want_buf);
        assert_int_equal(feox_value_size(val), len);
        assert_memory_equal(feox_value_data(val), want_buf, len);
        feox_value_release(val);
        present++;
    }
    assert_int_equal(feox_len(s, 0), present);
    assert_int_equal(refresh_with(s, large_run_script, &arg), FEOX_OK);
    assert_int_equal(feox_len(s, 0), RUN_KEYS - 2);
    assert_int_equal(feox_check(s), FEOX_OK);
    for (uint32_t i = 0; i < RUN_KEYS; i++) {
        char key[KEY_LEN + 1];
        key_of(i, key);
        feox_err del = feox_delete(s, key, KEY_LEN, NULL);
        assert_true(del == FEOX_OK || del == FEOX_ERR_KEY_NOT_FOUND);
    }
    assert_int_equal(feox_memory_usage(s), empty_memory);
    assert_int_equal(feox_close(s), FEOX_OK);
    feox_set_allocator(NULL, NULL, NULL);
    return err != FEOX_OK;
}

static void test_worker_allocation_failures(void **state)
{
    (void)state;
    feox_store *empty = open_scripted(NULL);
    uint64_t empty_memory = feox_memory_usage(empty);
    assert_int_equal(feox_close(empty), FEOX_OK);
    static const unsigned long at[] = {1, 2, 3, 5, 40, 1000, 5000, 8000};
    int failed = 0;
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        failed += run_with_worker_failure(at[i], false, empty_memory);
        failed += run_with_worker_failure(at[i], true, empty_memory);
    }
    assert_true(failed > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_announced_run_matches_the_plain_one),
        cmocka_unit_test(test_cursor_of_the_thread_sees_the_run),
        cmocka_unit_test(test_worker_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
