/*
 * test_log_cold_values.c — larger than memory: the CLOCK value cache (second chance, budget,
 * counters) and a store reopened with a max_memory smaller than its data, whose values beyond
 * the resident budget stay on disk and are read back on demand (also through compaction, and
 * by a cursor whose row a write replaced and a compaction dropped).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "feox.h"
#include "storage/log/value_cache.h"

static void test_clock_cache_gives_a_second_chance(void **state)
{
    (void)state;
    uint8_t value[100], out[100];
    feox_value_cache *c = feox_value_cache_new(4 * (100 + 64)); /* room for exactly four */
    assert_non_null(c);
    for (uint64_t loc = 1; loc <= 4; loc++) {
        memset(value, (int)loc, sizeof value);
        feox_value_cache_put(c, loc, value, sizeof value);
    }
    assert_true(feox_value_cache_get(c, 1, out, sizeof out)); /* 1 is referenced */
    assert_int_equal(out[0], 1);
    assert_false(feox_value_cache_get(c, 1, out, 99)); /* length must match */
    memset(value, 5, sizeof value);
    feox_value_cache_put(c, 5, value, sizeof value); /* evicts 2, not the referenced 1 */
    assert_true(feox_value_cache_get(c, 1, out, sizeof out));
    assert_false(feox_value_cache_get(c, 2, out, sizeof out));
    assert_true(feox_value_cache_get(c, 5, out, sizeof out));
    assert_int_equal(out[99], 5);
    uint8_t big[200] = {0};
    feox_value_cache_put(c, 6, big, sizeof big); /* over a quarter of the budget: not cached */
    assert_false(feox_value_cache_get(c, 6, big, sizeof big));
    feox_stats st = {0};
    feox_value_cache_stats(c, &st);
    assert_int_equal(st.cache_evictions, 1);
    assert_int_equal(st.cache_bytes, 4 * (100 + 64));
    assert_int_equal(st.cache_hits, 3);
    assert_int_equal(st.cache_misses, 3);
    feox_value_cache_free(c);
}

/* Random puts and gets against values derived from the location: a hit always returns the right
 * bytes, the budget always holds, and a working set that fits is eventually all hits. */
static void test_cache_random_workload(void **state)
{
    (void)state;
    enum { BUDGET = 20000 };
    feox_value_cache *c = feox_value_cache_new(BUDGET);
    uint64_t rng = 12345;
    uint8_t value[600], out[600];
    for (int i = 0; i < 200000; i++) {
        rng = rng * 6364136223846793005u + 1442695040888963407u;
        uint64_t loc = 1 + (rng >> 33) % 300;
        uint32_t len = (uint32_t)(loc * 37 % 500);
        for (uint32_t j = 0; j < len; j++)
            value[j] = (uint8_t)(loc + j);
        if (feox_value_cache_get(c, loc, out, len))
            assert_memory_equal(out, value, len);
        else
            feox_value_cache_put(c, loc, value, len);
        feox_stats st = {0};
        feox_value_cache_stats(c, &st);
        assert_true(st.cache_bytes <= BUDGET);
    }
    feox_stats before = {0}, after = {0};
    feox_value_cache_stats(c, &before);
    for (int round = 0; round < 5; round++)
        for (uint64_t loc = 1; loc <= 10; loc++) { /* ~3 KB working set */
            uint32_t len = (uint32_t)(loc * 37 % 500);
            for (uint32_t j = 0; j < len; j++)
                value[j] = (uint8_t)(loc + j);
            if (!feox_value_cache_get(c, loc, out, len))
                feox_value_cache_put(c, loc, value, len);
        }
    feox_value_cache_stats(c, &after);
    assert_true(after.cache_misses - before.cache_misses <= 10); /* only the first round */
    feox_value_cache_free(c);
}

enum { KEYS = 2000, VALUE_LEN = 1000 };

static void make_value(int i, char *out)
{
    for (int j = 0; j < VALUE_LEN; j++)
        out[j] = (char)('A' + (i * 7 + j) % 26);
}

static void check_all(feox_store *s)
{
    char key[32], want[VALUE_LEN];
    for (int i = 0; i < KEYS; i++) {
        snprintf(key, sizeof key, "key-%05d", i);
        make_value(i, want);
        void *v;
        size_t len;
        assert_int_equal(feox_get(s, key, strlen(key), &v, &len, NULL), FEOX_OK);
        assert_int_equal(len, VALUE_LEN);
        assert_memory_equal(v, want, VALUE_LEN);
        feox_free(v);
        /* The same bytes copied into a buffer (a cold value is read back first). */
        char got[VALUE_LEN];
        assert_int_equal(feox_get_into(s, key, strlen(key), got, sizeof got, &len, NULL), FEOX_OK);
        assert_int_equal(len, VALUE_LEN);
        assert_memory_equal(got, want, VALUE_LEN);
    }
}

/* A store file of KEYS values written and closed, reopened with max_memory under the values'
 * 2 MB (so many stay on disk) and a value cache of cache_bytes; path and cfg are left for the
 * test's own reopen. */
static feox_store *open_cold(char *path, size_t path_cap, const char *name, feox_config *cfg,
                             size_t cache_bytes)
{
    char key[32], value[VALUE_LEN];
    snprintf(path, path_cap, "/tmp/feox-test-%s-%d.feox", name, (int)getpid());
    unlink(path);
    feox_config_init(cfg);
    cfg->path = path;
    cfg->disable_compaction = true;
    feox_store *s;
    assert_int_equal(feox_open(cfg, &s), FEOX_OK);
    for (int i = 0; i < KEYS; i++) {
        snprintf(key, sizeof key, "key-%05d", i);
        make_value(i, value);
        assert_int_equal(feox_insert(s, key, strlen(key), value, VALUE_LEN, NULL, NULL), FEOX_OK);
    }
    assert_int_equal(feox_close(s), FEOX_OK);
    cfg->max_memory = 1u << 20;
    cfg->value_cache_bytes = cache_bytes;
    assert_int_equal(feox_open(cfg, &s), FEOX_OK);
    return s;
}

static void test_reopen_with_less_memory_than_data(void **state)
{
    (void)state;
    char path[128], key[32];
    feox_config cfg;
    feox_store *s = open_cold(path, sizeof path, "cold", &cfg, 256u << 10);
    assert_true(feox_memory_usage(s) <= cfg.max_memory);
    check_all(s);
    feox_stats st;
    assert_int_equal(feox_get_stats(s, &st), FEOX_OK);
    assert_true(st.cache_misses > 0);
    assert_true(st.disk_reads > 0);
    assert_true(st.cache_bytes <= cfg.value_cache_bytes);
    assert_true(st.cache_evictions > 0); /* 1.5 MB of cold values through a 256 KiB cache */
    /* A small hot set is then served from the cache. */
    uint64_t hits_before = st.cache_hits;
    for (int round = 0; round < 3; round++)
        for (int i = KEYS - 10; i < KEYS; i++) {
            snprintf(key, sizeof key, "key-%05d", i);
            void *v;
            size_t len;
            assert_int_equal(feox_get(s, key, strlen(key), &v, &len, NULL), FEOX_OK);
            feox_free(v);
        }
    assert_int_equal(feox_get_stats(s, &st), FEOX_OK);
    assert_true(st.cache_hits >= hits_before + 20);
    /* Compaction copies cold values from disk into the new file. */
    assert_int_equal(feox_compact(s), FEOX_OK);
    check_all(s);
    assert_int_equal(feox_close(s), FEOX_OK);
    assert_int_equal(feox_open(&cfg, &s), FEOX_OK);
    check_all(s);
    assert_int_equal(feox_close(s), FEOX_OK);
    unlink(path);
}

/* A cursor's row whose value left memory, replaced by a write and then dropped by a compaction
 * (it moves live versions only) before the value is asked for: the row shows the key's live
 * version, not a "stale location" error. */
static void test_cursor_row_replaced_and_compacted(void **state)
{
    (void)state;
    char path[128], key[32], value[VALUE_LEN], want[VALUE_LEN];
    feox_config cfg;
    feox_store *s = open_cold(path, sizeof path, "cold-cursor", &cfg, 64u << 10);
    feox_cursor *c;
    assert_int_equal(feox_cursor_open(s, &c), FEOX_OK);
    /* The last keys written: the load keeps the values it meets first resident. */
    snprintf(key, sizeof key, "key-%05d", KEYS - 40);
    assert_int_equal(feox_cursor_seek(c, FEOX_SEEK_GE, key, strlen(key)), FEOX_OK);
    int shown_new = 0;
    for (int i = KEYS - 40; i < KEYS; i++) {
        assert_true(feox_cursor_valid(c));
        size_t key_len;
        const char *k = feox_cursor_key(c, &key_len);
        assert_int_equal(key_len, 9);
        assert_memory_equal(k, "key-", 4);
        make_value(i, want);
        make_value(i + 1, value); /* the replacement differs from every original */
        assert_int_equal(feox_insert(s, k, key_len, value, VALUE_LEN, NULL, NULL), FEOX_OK);
        assert_int_equal(feox_compact(s), FEOX_OK);
        const void *v;
        size_t len;
        assert_int_equal(feox_cursor_read_value(c, &v, &len), FEOX_OK);
        assert_int_equal(len, VALUE_LEN);
        if (memcmp(v, value, VALUE_LEN) == 0)
            shown_new++; /* a cold row: its old bytes are gone, the live version shows */
        else
            assert_memory_equal(v, want, VALUE_LEN); /* a resident row keeps what it saw */
        assert_int_equal(feox_cursor_next(c), FEOX_OK);
    }
    assert_true(shown_new > 0);
    feox_cursor_close(c);
    assert_int_equal(feox_close(s), FEOX_OK);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clock_cache_gives_a_second_chance),
        cmocka_unit_test(test_cache_random_workload),
        cmocka_unit_test(test_reopen_with_less_memory_than_data),
        cmocka_unit_test(test_cursor_row_replaced_and_compacted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
