/*
 * test_store_eviction.c — larger than memory: a persistent store whose max_memory is far smaller
 * than its data keeps accepting writes by moving values already in the file out of memory, reads
 * every value back exactly (from memory or disk), stays within its budget, and keeps everything
 * across a reopen. A memory-only store with the same budget refuses the writes instead. A key that
 * grows past the budget takes its room from other values, never from its own version being
 * replaced (that version was once evicted and retired by the evictor, then retired again by the
 * writer: a use-after-free).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "feox.h"
#include "temp_store_dir.h"

#define KEYS 20000
#define VALUE_BYTES 1000
#define BUDGET (4u << 20) /* 4 MB for ~20 MB of values */

static void make_value(int i, char *value)
{
    for (int j = 0; j < VALUE_BYTES; j++)
        value[j] = (char)('a' + (i * 31 + j) % 26);
}

static feox_store *open_at(const char *path)
{
    feox_config cfg;
    feox_config_init(&cfg);
    cfg.path = path;
    cfg.max_memory = BUDGET;
    cfg.value_cache_bytes = 1u << 20;
    feox_store *s = NULL;
    assert_int_equal(feox_open(&cfg, &s), FEOX_OK);
    return s;
}

/* Range callback: the value of key:NNNNNN must be make_value(NNNNNN). */
static int check_scanned_value(void *ctx, const void *key, size_t key_len, const void *value,
                               size_t value_len, const feox_record_info *info)
{
    (void)ctx;
    (void)info;
    char text[16] = "", want[VALUE_BYTES];
    memcpy(text, (const char *)key + 4, key_len - 4 < 15 ? key_len - 4 : 15);
    make_value(atoi(text), want);
    assert_int_equal(value_len, VALUE_BYTES);
    assert_memory_equal(value, want, VALUE_BYTES);
    return 0;
}

static void expect_all_values(feox_store *s)
{
    char key[32], want[VALUE_BYTES];
    for (int i = 0; i < KEYS; i++) {
        snprintf(key, sizeof key, "key:%06d", i);
        make_value(i, want);
        void *v = NULL;
        size_t n = 0;
        assert_int_equal(feox_get(s, key, strlen(key), &v, &n, NULL), FEOX_OK);
        assert_int_equal(n, VALUE_BYTES);
        assert_memory_equal(v, want, VALUE_BYTES);
        feox_free(v);
    }
}

static void test_values_leave_memory_and_come_back(void **state)
{
    (void)state;
    char dir[] = "/tmp/feox-evict-XXXXXX", path[64];
    assert_int_equal(ftest_temp_store_make(dir, path, sizeof path), 0);
    feox_store *s = open_at(path);
    char key[32], value[VALUE_BYTES];
    for (int i = 0; i < KEYS; i++) {
        snprintf(key, sizeof key, "key:%06d", i);
        make_value(i, value);
        assert_int_equal(feox_insert(s, key, strlen(key), value, VALUE_BYTES, NULL, NULL),
                         FEOX_OK);
        assert_true(feox_memory_usage(s) <= BUDGET);
    }
    assert_int_equal(feox_len(s, 0), KEYS);
    expect_all_values(s);
    /* A range scan reads cold values too. */
    size_t visited = 0;
    assert_int_equal(
        feox_range_query(s, "key:", 4, "key:~", 5, SIZE_MAX, check_scanned_value, NULL, &visited),
        FEOX_OK);
    assert_int_equal(visited, KEYS);
    feox_stats st;
    assert_int_equal(feox_get_stats(s, &st), FEOX_OK);
    assert_true(st.cache_misses > 0); /* values really came back from the file */
    assert_true(st.memory_usage <= BUDGET);
    /* Overwrites and counters keep working over budget. */
    make_value(7, value);
    assert_int_equal(feox_insert(s, "key:000001", 10, value, VALUE_BYTES, NULL, NULL), FEOX_OK);
    assert_int_equal(feox_check(s), FEOX_OK);
    assert_int_equal(feox_close(s), FEOX_OK);

    s = open_at(path);
    assert_int_equal(feox_len(s, 0), KEYS);
    void *v = NULL;
    size_t n = 0;
    assert_int_equal(feox_get(s, "key:000001", 10, &v, &n, NULL), FEOX_OK);
    assert_memory_equal(v, value, VALUE_BYTES);
    feox_free(v);
    assert_int_equal(feox_close(s), FEOX_OK);
    ftest_temp_store_remove(dir, path);
}

static void test_memory_mode_refuses_instead(void **state)
{
    (void)state;
    feox_config cfg;
    feox_config_init(&cfg);
    cfg.max_memory = BUDGET;
    feox_store *s = NULL;
    assert_int_equal(feox_open(&cfg, &s), FEOX_OK);
    char key[32], value[VALUE_BYTES];
    memset(value, 'v', sizeof value);
    feox_err err = FEOX_OK;
    int i;
    for (i = 0; i < KEYS && err == FEOX_OK; i++) {
        snprintf(key, sizeof key, "key:%06d", i);
        err = feox_insert(s, key, strlen(key), value, VALUE_BYTES, NULL, NULL);
    }
    assert_int_equal(err, FEOX_ERR_OUT_OF_MEMORY);
    assert_int_equal(feox_len(s, 0), (uint64_t)(i - 1));
    assert_true(feox_memory_usage(s) <= BUDGET);
    assert_int_equal(feox_close(s), FEOX_OK);
}

/* 'a' and 'b' fill most of a 100 KB budget; 'a' then grows past it, so the write must evict. */
static void test_a_growing_key_never_evicts_its_own_version(void **state)
{
    (void)state;
    char dir[] = "/tmp/feox-evict-XXXXXX", path[64];
    assert_int_equal(ftest_temp_store_make(dir, path, sizeof path), 0);
    feox_config cfg;
    feox_config_init(&cfg);
    cfg.path = path;
    cfg.max_memory = 100000;
    cfg.value_cache_bytes = 1u << 16;
    feox_store *s = NULL;
    assert_int_equal(feox_open(&cfg, &s), FEOX_OK);
    enum { SMALL = 45000, LARGE = 60000 };
    static char a[LARGE], b[SMALL];
    for (int round = 0; round < 300; round++) {
        memset(a, 'a' + round % 26, SMALL);
        memset(b, 'A' + round % 26, SMALL);
        assert_int_equal(feox_insert(s, "a", 1, a, SMALL, NULL, NULL), FEOX_OK);
        assert_int_equal(feox_insert(s, "b", 1, b, SMALL, NULL, NULL), FEOX_OK);
        memset(a, 'z' - round % 26, LARGE);
        assert_int_equal(feox_insert(s, "a", 1, a, LARGE, NULL, NULL), FEOX_OK);
        assert_true(feox_memory_usage(s) <= cfg.max_memory);
        void *v = NULL;
        size_t n = 0;
        assert_int_equal(feox_get(s, "a", 1, &v, &n, NULL), FEOX_OK);
        assert_int_equal(n, LARGE);
        assert_memory_equal(v, a, LARGE);
        feox_free(v);
        assert_int_equal(feox_get(s, "b", 1, &v, &n, NULL), FEOX_OK);
        assert_int_equal(n, SMALL);
        assert_memory_equal(v, b, SMALL);
        feox_free(v);
    }
    assert_int_equal(feox_check(s), FEOX_OK);
    assert_int_equal(feox_close(s), FEOX_OK);
    ftest_temp_store_remove(dir, path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values_leave_memory_and_come_back),
        cmocka_unit_test(test_memory_mode_refuses_instead),
        cmocka_unit_test(test_a_growing_key_never_evicts_its_own_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
