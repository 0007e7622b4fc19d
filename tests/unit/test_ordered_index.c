/*
 * test_ordered_index.c — the ordered index (engine/index/ordered_index.c) against a sorted-array
 * model: random inserts/removes with scans in all six modes, long shared prefixes, keys from 1 byte
 * to 100 KiB, replacing an entry by another with its key, the empty index, queue-like workloads
 * (memory must stay bounded), and allocation failure (the index must be unchanged and still
 * verify).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <malloc.h>

#include "base/epoch.h"
#include "base/slab.h"
#include "feox.h"
#include "index/ordered_index.h"
#include "index/record.h"

/* ---- a deterministic generator --------------------------------------------------------------- */

static uint64_t rng_state;
static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static uint64_t rng_below(uint64_t n)
{
    return rng_next() % n;
}

/* ---- the model: entries sorted by key -------------------------------------------------------- */

typedef struct model {
    feox_entry **items;
    size_t count, cap;
} model;

static int entry_cmp(const feox_entry *a, const void *key, size_t len)
{
    return feox_key_compare(a->key, a->key_len, key, len);
}

/* First index whose key is >= key (or > key when strict). */
static size_t model_bound(const model *m, const void *key, size_t len, int strict)
{
    size_t lo = 0, hi = m->count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = entry_cmp(m->items[mid], key, len);
        if (c < 0 || (strict && c == 0))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int model_contains(const model *m, const void *key, size_t len, size_t *at)
{
    *at = model_bound(m, key, len, 0);
    return *at < m->count && entry_cmp(m->items[*at], key, len) == 0;
}

static void model_insert_at(model *m, size_t at, feox_entry *e)
{
    if (m->count == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 1024;
        m->items = realloc(m->items, m->cap * sizeof *m->items);
        assert_non_null(m->items);
    }
    memmove(m->items + at + 1, m->items + at, (m->count - at) * sizeof *m->items);
    m->items[at] = e;
    m->count++;
}

static feox_entry *model_remove_at(model *m, size_t at)
{
    feox_entry *e = m->items[at];
    memmove(m->items + at, m->items + at + 1, (m->count - at - 1) * sizeof *m->items);
    m->count--;
    return e;
}

/* What a scan must return, computed from the model. */
static size_t model_scan(const model *m, feox_scan_from from, const void *bound, size_t len,
                         feox_entry **out, size_t max)
{
    size_t n = 0;
    switch (from) {
    case FEOX_SCAN_FIRST:
    case FEOX_SCAN_GE:
    case FEOX_SCAN_GT: {
        size_t i = from == FEOX_SCAN_FIRST ? 0 : model_bound(m, bound, len, from == FEOX_SCAN_GT);
        for (; i < m->count && n < max; i++)
            out[n++] = m->items[i];
        break;
    }
    default: {
        size_t end =
            from == FEOX_SCAN_LAST ? m->count : model_bound(m, bound, len, from == FEOX_SCAN_LE);
        for (; end > 0 && n < max; end--)
            out[n++] = m->items[end - 1];
        break;
    }
    }
    return n;
}

static void assert_verifies(feox_ordered_index *idx)
{
    char detail[256] = "";
    int bad = feox_ordered_index_verify(idx, detail, sizeof detail);
    if (bad)
        fail_msg("verify failed: %s", detail);
}

static void assert_scan_matches(feox_ordered_index *idx, const model *m, feox_scan_from from,
                                const void *bound, size_t len, size_t max)
{
    feox_entry **got = malloc((max + 1) * sizeof *got);
    feox_entry **want = malloc((max + 1) * sizeof *want);
    assert_non_null(got);
    assert_non_null(want);
    feox_epoch_enter();
    size_t n = feox_ordered_index_scan(idx, from, bound, len, got, max);
    feox_epoch_exit();
    size_t expect = model_scan(m, from, bound, len, want, max);
    if (n != expect)
        fail_msg("scan mode %d max %zu: got %zu entries, want %zu", (int)from, max, n, expect);
    for (size_t i = 0; i < n; i++)
        if (got[i] != want[i])
            fail_msg("scan mode %d: entry %zu differs", (int)from, i);
    free(got);
    free(want);
}

static void assert_full_match(feox_ordered_index *idx, const model *m)
{
    assert_int_equal(feox_ordered_index_count(idx), m->count);
    assert_scan_matches(idx, m, FEOX_SCAN_FIRST, NULL, 0, m->count + 1);
    assert_scan_matches(idx, m, FEOX_SCAN_LAST, NULL, 0, m->count + 1);
    assert_verifies(idx);
}

static void model_free_all(model *m)
{
    for (size_t i = 0; i < m->count; i++)
        feox_entry_free(m->items[i]);
    free(m->items);
    memset(m, 0, sizeof *m);
}

/* ---- key shapes ------------------------------------------------------------------------------ */

typedef enum key_shape {
    KEYS_RANDOM16,      /* 16 random bytes: the benchmark shape */
    KEYS_SHARED_PREFIX, /* 40-byte common prefix, then a short decimal number of varying width */
    KEYS_SMALL_SPACE,   /* few distinct keys of 1..3 bytes: constant remove/re-insert churn */
    KEYS_MIXED_LENGTH   /* prefix relations: runs of 'a' of many lengths, with a trailing byte */
} key_shape;

static size_t make_key(key_shape shape, uint8_t *buf)
{
    switch (shape) {
    case KEYS_RANDOM16: {
        uint64_t a = rng_next() % 50000, b = a * 0x2545f4914f6cdd1dull;
        memcpy(buf, &b, 8);
        memcpy(buf + 8, &a, 8);
        return 16;
    }
    case KEYS_SHARED_PREFIX: {
        memset(buf, 'p', 40);
        return 40 + (size_t)sprintf((char *)buf + 40, "%llu", (unsigned long long)rng_below(30000));
    }
    case KEYS_SMALL_SPACE: {
        size_t len = 1 + rng_below(2);
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)rng_below(40);
        return len;
    }
    case KEYS_MIXED_LENGTH:
    default: {
        size_t len = 1 + rng_below(300);
        memset(buf, 'a', len);
        if (rng_below(2))
            buf[len - 1] = (uint8_t)rng_below(256);
        return len;
    }
    }
}

static feox_scan_from random_mode(void)
{
    return (feox_scan_from)rng_below(6);
}

/* Random inserts/removes in one key shape, checked against the model after every batch. */
static void run_random_ops(key_shape shape, uint64_t seed, int ops)
{
    rng_state = seed;
    feox_ordered_index *idx = NULL;
    assert_int_equal(feox_ordered_index_create(&idx), FEOX_OK);
    model m = {0};
    uint8_t key[512], bound[512];
    for (int op = 1; op <= ops; op++) {
        size_t len = make_key(shape, key), at;
        /* Bias towards inserts early so the tree grows tall, then churn. */
        int want_insert = (int)rng_below(100) < (op < ops / 2 ? 65 : 45);
        if (model_contains(&m, key, len, &at)) {
            if (!want_insert) {
                feox_entry *e = model_remove_at(&m, at);
                feox_ordered_index_remove(idx, e);
                feox_entry_free(e);
            }
        } else if (want_insert) {
            feox_entry *e = feox_entry_new(key, len, 0);
            assert_non_null(e);
            assert_int_equal(feox_ordered_index_insert(idx, e), FEOX_OK);
            model_insert_at(&m, at, e);
        }
        if (op % 500 == 0) {
            for (int s = 0; s < 8; s++) {
                size_t blen = make_key(shape, bound);
                assert_scan_matches(idx, &m, random_mode(), bound, blen, 1 + rng_below(120));
            }
            /* A bound that is an existing key, so GE/GT/LE/LT differ. */
            if (m.count) {
                feox_entry *e = m.items[rng_below(m.count)];
                for (int mode = 0; mode < 6; mode++)
                    assert_scan_matches(idx, &m, (feox_scan_from)mode, e->key, e->key_len,
                                        1 + rng_below(70));
            }
            assert_int_equal(feox_ordered_index_count(idx), m.count);
        }
        if (op % 10000 == 0)
            assert_full_match(idx, &m);
    }
    assert_full_match(idx, &m);
    /* Drain everything: the tree must end empty and still verify. */
    while (m.count) {
        feox_entry *e = model_remove_at(&m, rng_below(m.count));
        feox_ordered_index_remove(idx, e);
        feox_entry_free(e);
        if (m.count % 997 == 0)
            assert_verifies(idx);
    }
    assert_full_match(idx, &m);
    feox_ordered_index_destroy(idx);
    model_free_all(&m);
    feox_epoch_reclaim();
}

static void test_random_ops_random_keys(void **state)
{
    (void)state;
    run_random_ops(KEYS_RANDOM16, 1, 80000);
    run_random_ops(KEYS_RANDOM16, 2, 40000);
}

static void test_random_ops_shared_prefix(void **state)
{
    (void)state;
    run_random_ops(KEYS_SHARED_PREFIX, 3, 50000);
}

static void test_random_ops_small_space(void **state)
{
    (void)state;
    run_random_ops(KEYS_SMALL_SPACE, 4, 20000);
}

static void test_random_ops_mixed_lengths(void **state)
{
    (void)state;
    run_random_ops(KEYS_MIXED_LENGTH, 5, 20000);
}

static void test_empty_index(void **state)
{
    (void)state;
    feox_ordered_index *idx = NULL;
    assert_int_equal(feox_ordered_index_create(&idx), FEOX_OK);
    model m = {0};
    assert_int_equal(feox_ordered_index_count(idx), 0);
    for (int mode = 0; mode < 6; mode++) {
        assert_scan_matches(idx, &m, (feox_scan_from)mode, "k", 1, 10);
        assert_scan_matches(idx, &m, (feox_scan_from)mode, "", 0, 10);
    }
    feox_entry *out[1];
    feox_epoch_enter();
    assert_int_equal(feox_ordered_index_scan(idx, FEOX_SCAN_FIRST, NULL, 0, out, 0), 0);
    feox_epoch_exit();
    assert_verifies(idx);
    feox_ordered_index_destroy(idx);
}

/* Keys from 1 byte to 100 KiB, many of them prefixes of one another. */
static void test_very_different_lengths(void **state)
{
    (void)state;
    rng_state = 77;
    static const size_t lengths[] = {1,     2,     7,     8,     9,      15,    16,
                                     17,    100,   255,   256,   1000,   4095,  4096,
                                     65535, 65536, 70000, 99999, 102399, 102400};
    size_t nlen = sizeof lengths / sizeof lengths[0];
    uint8_t *buf = malloc(102400);
    assert_non_null(buf);
    feox_ordered_index *idx = NULL;
    assert_int_equal(feox_ordered_index_create(&idx), FEOX_OK);
    model m = {0};
    /* Three families: all 'x' (each a prefix of the longer ones), 'x'... ending in 0x00 or 0xff. */
    for (int family = 0; family < 3; family++) {
        for (size_t i = 0; i < nlen; i++) {
            size_t len = lengths[i], at;
            memset(buf, 'x', len);
            if (family == 1)
                buf[len - 1] = 0x00;
            if (family == 2)
                buf[len - 1] = 0xff;
            if (model_contains(&m, buf, len, &at))
                continue;
            feox_entry *e = feox_entry_new(buf, len, 0);
            assert_non_null(e);
            assert_int_equal(feox_ordered_index_insert(idx, e), FEOX_OK);
            model_insert_at(&m, at, e);
        }
    }
    /* Enough short random keys around them to force splits with long keys as neighbours. */
    for (int i = 0; i < 400; i++) {
        size_t len = 1 + rng_below(24), at;
        for (size_t j = 0; j < len; j++)
            buf[j] = (uint8_t)("wxy"[rng_below(3)]);
        if (model_contains(&m, buf, len, &at))
            continue;
        feox_entry *e = feox_entry_new(buf, len, 0);
        assert_non_null(e);
        assert_int_equal(feox_ordered_index_insert(idx, e), FEOX_OK);
        model_insert_at(&m, at, e);
    }
    assert_full_match(idx, &m);
    for (size_t i = 0; i < nlen; i++) {
        memset(buf, 'x', lengths[i]);
        for (int mode = 0; mode < 6; mode++)
            assert_scan_matches(idx, &m, (feox_scan_from)mode, buf, lengths[i], 25);
    }
    /* Remove the long keys and check again. */
    for (size_t i = 0; i < m.count;) {
        if (m.items[i]->key_len > 1000) {
            feox_entry *e = model_remove_at(&m, i);
            feox_ordered_index_remove(idx, e);
            feox_entry_free(e);
        } else {
            i++;
        }
    }
    assert_full_match(idx, &m);
    feox_ordered_index_destroy(idx);
    model_free_all(&m);
    free(buf);
    feox_epoch_reclaim();
}

/* ---- memory: a counting allocator ------------------------------------------------------------ */

static long live_allocations;
static long fail_after = -1; /* allocations left before they start failing; -1 = never */

static void *counting_malloc(size_t size)
{
    if (fail_after == 0)
        return NULL;
    if (fail_after > 0)
        fail_after--;
    void *p = malloc(size);
    if (p)
        live_allocations++;
    return p;
}
static void *counting_realloc(void *p, size_t size)
{
    if (fail_after == 0)
        return NULL;
    void *q = realloc(p, size);
    if (q && !p)
        live_allocations++;
    return q;
}
static void counting_free(void *p)
{
    if (p)
        live_allocations--;
    free(p);
}

/* Insert increasing keys and delete the oldest: node count must stay bounded. */
static void test_queue_workload_bounded(void **state)
{
    (void)state;
    feox_epoch_reclaim();
    feox_set_allocator(counting_malloc, counting_realloc, counting_free);
    long base = live_allocations;
    feox_ordered_index *idx = NULL;
    assert_int_equal(feox_ordered_index_create(&idx), FEOX_OK);
    model m = {0};
    const int window = 2000;
    long structure_at_10k = 0;
    for (uint64_t i = 0; i < 200000; i++) {
        uint8_t key[8];
        for (int b = 0; b < 8; b++)
            key[b] = (uint8_t)(i >> (56 - 8 * b));
        feox_entry *e = feox_entry_new(key, 8, 0);
        assert_non_null(e);
        assert_int_equal(feox_ordered_index_insert(idx, e), FEOX_OK);
        model_insert_at(&m, m.count, e);
        if (m.count > (size_t)window) {
            feox_entry *old = model_remove_at(&m, 0);
            feox_ordered_index_remove(idx, old);
            feox_entry_free(old);
        }
        if (i % 10000 == 9999) {
            feox_epoch_reclaim();
            long structure = live_allocations - base - (long)m.count;
            if (i == 9999)
                structure_at_10k = structure;
            /* Same live set, same structure: nothing accumulates. */
            assert_true(structure <= structure_at_10k + 16);
            assert_verifies(idx);
        }
    }
    assert_full_match(idx, &m);
    /* Half-full leaves at worst: window / 16 leaves and their separators, plus inner nodes. */
    feox_epoch_reclaim();
    assert_true(live_allocations - base - (long)m.count < 2 * (window / 16) + 64);
    feox_ordered_index_destroy(idx);
    model_free_all(&m);
    feox_epoch_reclaim();
    assert_int_equal(live_allocations, base);
    feox_set_allocator(NULL, NULL, NULL);
}

/* Every allocation fails: inserts that need a split fail with NOMEM and change nothing. */
static void test_nomem_leaves_index_unchanged(void **state)
{
    (void)state;
    rng_state = 9;
    feox_ordered_index *idx = NULL;
    assert_int_equal(feox_ordered_index_create(&idx), FEOX_OK);
    model m = {0};
    uint8_t key[16];
    for (int i = 0; i < 3000; i++) {
        size_t len = make_key(KEYS_RANDOM16, key), at;
        if (model_contains(&m, key, len, &at))
            continue;
        feox_entry *e = feox_entry_new(key, len, 0);
        assert_int_equal(feox_ordered_index_insert(idx, e), FEOX_OK);
        model_insert_at(&m, at, e);
    }
    feox_set_allocator(counting_malloc, counting_realloc, counting_free);
    int failed = 0, succeeded = 0;
    for (int round = 0; round < 600; round++) {
        size_t len = make_key(KEYS_RANDOM16, key), at;
        if (model_contains(&m, key, len, &at))
            continue;
        feox_entry *e = malloc(sizeof *e + len); /* outside the failing allocator */
        assert_non_null(e);
        memset(e, 0, sizeof *e);
        e->key_len = (uint32_t)len;
        memcpy(e->key, key, len);
        /* Fail the Nth allocation for N = 0, 1, 2 in turn (a split needs up to three). */
        fail_after = round % 3;
        feox_err err = feox_ordered_index_insert(idx, e);
        fail_after = -1;
        if (err == FEOX_OK) {
            succeeded++;
            model_insert_at(&m, at, e);
        } else {
            assert_int_equal(err, FEOX_ERR_NOMEM);
            failed++;
            free(e);
            assert_full_match(idx, &m); /* same entries, same order, structure still valid */
        }
        if (round % 50 == 0)
            assert_full_match(idx, &m);
    }
    assert_true(failed > 0);
    assert_true(succeeded > 0);
    assert_full_match(idx, &m);
    feox_set_allocator(NULL, NULL, NULL);
    /* With memory back, every insert succeeds. */
    for (int i = 0; i < 2000; i++) {
        size_t len = make_key(KEYS_RANDOM16, key), at;
        if (model_contains(&m, key, len, &at))
            continue;
        feox_entry *e = feox_entry_new(key, len, 0);
        assert_int_equal(feox_ordered_index_insert(idx, e), FEOX_OK);
        model_insert_at(&m, at, e);
    }
    assert_full_match(idx, &m);
    /* Entries from plain malloc and from feox_entry_new are both freed with free() here: the
     * default engine allocator is malloc. */
    feox_ordered_index_destroy(idx);
    for (size_t i = 0; i < m.count; i++)
        free(m.items[i]);
    free(m.items);
    feox_epoch_reclaim();
}

/* Replace: an entry swapped for a fresh one with the same key takes its place in every scan
 * mode (the old one is gone), the count and the structure stay; an entry that is not in the
 * index (even one with a key that is) replaces nothing. Mixed with inserts and removes. */
static void run_replace_ops(key_shape shape, uint64_t seed, int ops)
{
    rng_state = seed;
    feox_ordered_index *idx = NULL;
    assert_int_equal(feox_ordered_index_create(&idx), FEOX_OK);
    model m = {0};
    uint8_t key[512];
    for (int op = 1; op <= ops; op++) {
        size_t len = make_key(shape, key), at;
        if (model_contains(&m, key, len, &at)) {
            feox_entry *old = m.items[at];
            feox_entry *fresh = feox_entry_new(key, len, 0);
            assert_non_null(fresh);
            if (rng_below(8) == 0) { /* a stranger with the same key: not in the index */
                feox_entry *other = feox_entry_new(key, len, 0);
                assert_non_null(other);
                assert_false(feox_ordered_index_replace(idx, other, fresh));
                feox_entry_free(other);
                feox_entry_free(fresh);
            } else if (rng_below(4) == 0) {
                feox_entry_free(fresh);
                feox_ordered_index_remove(idx, model_remove_at(&m, at));
                feox_entry_free(old);
            } else {
                assert_true(feox_ordered_index_replace(idx, old, fresh));
                m.items[at] = fresh;
                feox_entry_free(old); /* no reader here: no epoch needed */
            }
        } else {
            feox_entry *e = feox_entry_new(key, len, 0);
            assert_non_null(e);
            assert_int_equal(feox_ordered_index_insert(idx, e), FEOX_OK);
            model_insert_at(&m, at, e);
        }
        if (op % 400 == 0 && m.count) {
            feox_entry *e = m.items[rng_below(m.count)];
            for (int mode = 0; mode < 6; mode++)
                assert_scan_matches(idx, &m, (feox_scan_from)mode, e->key, e->key_len,
                                    1 + rng_below(70));
        }
        if (op % 5000 == 0)
            assert_full_match(idx, &m);
    }
    assert_full_match(idx, &m);
    feox_ordered_index_destroy(idx);
    model_free_all(&m);
    feox_epoch_reclaim();
}

static void test_replace(void **state)
{
    (void)state;
    run_replace_ops(KEYS_RANDOM16, 31, 40000);
    run_replace_ops(KEYS_SHARED_PREFIX, 32, 30000);
    run_replace_ops(KEYS_SMALL_SPACE, 33, 5000);
    run_replace_ops(KEYS_MIXED_LENGTH, 34, 8000);
}

/* A sorted array of n unique keys of one shape (entries from feox_entry_new) in m. */
static void make_sorted(model *m, key_shape shape, size_t n)
{
    uint8_t key[512];
    for (int tries = 0; m->count < n && tries < 1000000; tries++) {
        size_t len = make_key(shape, key), at;
        if (model_contains(m, key, len, &at))
            continue;
        feox_entry *e = feox_entry_new(key, len, 0);
        assert_non_null(e);
        model_insert_at(m, at, e);
    }
}

/* feox_ordered_index_build gives the index a million inserts would: same scans in every mode,
 * a valid structure at every size around the node fill, and writers work on it afterwards. */
static void test_build_from_sorted(void **state)
{
    (void)state;
    static const size_t sizes[] = {0,  1,  2,  27,  28,  29,  31,  32,   33,   56,
                                   57, 64, 65, 812, 813, 928, 929, 5000, 30000};
    static const key_shape shapes[] = {KEYS_RANDOM16, KEYS_SHARED_PREFIX, KEYS_MIXED_LENGTH};
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        for (size_t hi = 0; hi < 3; hi++) {
            rng_state = 100 + si * 7 + hi;
            model m = {0};
            make_sorted(&m, shapes[hi], sizes[si]);
            feox_ordered_index *idx = NULL;
            assert_int_equal(feox_ordered_index_create(&idx), FEOX_OK);
            assert_int_equal(feox_ordered_index_build(idx, m.items, m.count), FEOX_OK);
            assert_full_match(idx, &m);
            uint8_t bound[512];
            for (int k = 0; k < 40; k++) {
                size_t blen = make_key(shapes[hi], bound);
                assert_scan_matches(idx, &m, random_mode(), bound, blen, 1 + rng_below(100));
            }
            /* Writers on the built tree: inserts split its nearly full nodes, removes empty
             * its leaves. */
            uint8_t key[512];
            for (int op = 0; op < 3000; op++) {
                size_t len = make_key(shapes[hi], key), at;
                if (model_contains(&m, key, len, &at)) {
                    feox_entry *e = model_remove_at(&m, at);
                    feox_ordered_index_remove(idx, e);
                    feox_entry_free(e);
                } else {
                    feox_entry *e = feox_entry_new(key, len, 0);
                    assert_int_equal(feox_ordered_index_insert(idx, e), FEOX_OK);
                    model_insert_at(&m, at, e);
                }
            }
            assert_full_match(idx, &m);
            feox_ordered_index_destroy(idx);
            model_free_all(&m);
            feox_epoch_reclaim();
        }
    }
}

/* A build that runs out of memory at any allocation leaves the index empty and usable. */
/* insert_sorted: batches of absent keys in ascending order (some between the index's keys,
 * spread over many leaves, some past its largest key), then a long run past the largest key
 * (the right edge), each batch checked against the model. */
static int compare_entries(const void *a, const void *b)
{
    const feox_entry *x = *(feox_entry *const *)a, *y = *(feox_entry *const *)b;
    return feox_key_compare(x->key, x->key_len, y->key, y->key_len);
}

static void insert_sorted_batches(key_shape shape, uint64_t seed)
{
    rng_state = seed;
    feox_ordered_index *idx = NULL;
    assert_int_equal(feox_ordered_index_create(&idx), FEOX_OK);
    model m = {0};
    uint8_t key[512];
    feox_entry *batch[600];
    for (int round = 0; round < 12; round++) {
        size_t n = 0, want = 1 + rng_below(600);
        while (n < want) {
            size_t len = make_key(shape, key), at;
            bool dup = model_contains(&m, key, len, &at);
            for (size_t i = 0; i < n && !dup; i++)
                dup = entry_cmp(batch[i], key, len) == 0;
            if (dup)
                continue;
            batch[n] = feox_entry_new(key, len, 0);
            assert_non_null(batch[n]);
            n++;
        }
        qsort(batch, n, sizeof *batch, compare_entries);
        size_t inserted = 0;
        assert_int_equal(feox_ordered_index_insert_sorted(idx, batch, n, &inserted), FEOX_OK);
        assert_int_equal(inserted, n);
        for (size_t i = 0; i < n; i++) {
            size_t at;
            assert_false(model_contains(&m, batch[i]->key, batch[i]->key_len, &at));
            model_insert_at(&m, at, batch[i]);
        }
        assert_verifies(idx);
        assert_full_match(idx, &m);
    }
    /* past the largest key: 0xff-prefixed keys, ascending */
    size_t n = 0;
    for (uint32_t i = 0; i < 600; i++) {
        uint8_t k[6] = {0xff,      0xff, (uint8_t)(i >> 24), (uint8_t)(i >> 16), (uint8_t)(i >> 8),
                        (uint8_t)i};
        size_t at;
        if (model_contains(&m, k, sizeof k, &at))
            continue;
        batch[n] = feox_entry_new(k, sizeof k, 0);
        assert_non_null(batch[n]);
        n++;
    }
    size_t inserted = 0;
    assert_int_equal(feox_ordered_index_insert_sorted(idx, batch, n, &inserted), FEOX_OK);
    assert_int_equal(inserted, n);
    for (size_t i = 0; i < n; i++) {
        size_t at;
        model_contains(&m, batch[i]->key, batch[i]->key_len, &at);
        model_insert_at(&m, at, batch[i]);
    }
    assert_verifies(idx);
    assert_full_match(idx, &m);
    assert_int_equal(feox_ordered_index_count(idx), m.count);
    feox_ordered_index_destroy(idx);
    model_free_all(&m);
}

static void test_insert_sorted(void **state)
{
    (void)state;
    insert_sorted_batches(KEYS_RANDOM16, 11);
    insert_sorted_batches(KEYS_SHARED_PREFIX, 12);
    insert_sorted_batches(KEYS_MIXED_LENGTH, 13);
}

/* n entries with 16-byte big-endian counter keys from first on, ascending. */
static feox_entry **counter_entries(uint64_t first, size_t n)
{
    feox_entry **entries = calloc(n, sizeof *entries);
    assert_non_null(entries);
    for (size_t i = 0; i < n; i++) {
        uint8_t key[16] = {0};
        uint64_t v = first + i;
        for (int b = 0; b < 8; b++)
            key[15 - b] = (uint8_t)(v >> (8 * b));
        entries[i] = feox_entry_new(key, sizeof key, 0);
        assert_non_null(entries[i]);
    }
    return entries;
}

static void free_entries(feox_entry **entries, size_t n)
{
    for (size_t i = 0; i < n; i++)
        feox_entry_free(entries[i]);
    free(entries);
}

/* Every entry in order, once. */
static void assert_holds(feox_ordered_index *idx, feox_entry **entries, size_t n)
{
    assert_int_equal(feox_ordered_index_count(idx), n);
    feox_entry **got = calloc(n + 1, sizeof *got);
    assert_non_null(got);
    feox_epoch_enter();
    assert_int_equal(feox_ordered_index_scan(idx, FEOX_SCAN_FIRST, NULL, 0, got, n + 1), n);
    feox_epoch_exit();
    for (size_t i = 0; i < n; i++)
        assert_ptr_equal(got[i], entries[i]);
    free(got);
}

/* A big build takes its nodes from slabs; writers then retire some of them (removals empty
 * leaves) and split others (inserts); destroying the index gives every slab back. */
static void test_big_build_nodes_from_slabs(void **state)
{
    (void)state;
    enum { N = 100000 };
    size_t before = feox_slab_mapped_bytes();
    feox_entry **entries = counter_entries(0, N);
    feox_ordered_index *idx = NULL;
    assert_int_equal(feox_ordered_index_create(&idx), FEOX_OK);
    assert_int_equal(feox_ordered_index_build(idx, entries, N), FEOX_OK);
    assert_true(feox_slab_mapped_bytes() > before);
    assert_verifies(idx);
    assert_holds(idx, entries, N);
    for (size_t i = 0; i < N / 2; i++) /* the first half of the leaves empties */
        feox_ordered_index_remove(idx, entries[i]);
    feox_epoch_reclaim();
    assert_verifies(idx);
    assert_holds(idx, entries + N / 2, N - N / 2);
    feox_entry **more = counter_entries((uint64_t)1 << 40, 5000); /* past the largest key */
    for (size_t i = 0; i < 5000; i++)
        assert_int_equal(feox_ordered_index_insert(idx, more[i]), FEOX_OK);
    assert_verifies(idx);
    feox_ordered_index_destroy(idx);
    feox_epoch_reclaim();
    assert_int_equal(feox_slab_mapped_bytes(), before);
    free_entries(entries, N);
    free_entries(more, 5000);
}

/* A small build keeps malloc: no slab for a few nodes. */
static void test_small_build_takes_no_slab(void **state)
{
    (void)state;
    size_t before = feox_slab_mapped_bytes();
    feox_entry **entries = counter_entries(0, 5000);
    feox_ordered_index *idx = NULL;
    assert_int_equal(feox_ordered_index_create(&idx), FEOX_OK);
    assert_int_equal(feox_ordered_index_build(idx, entries, 5000), FEOX_OK);
    assert_int_equal(feox_slab_mapped_bytes(), before);
    assert_holds(idx, entries, 5000);
    feox_ordered_index_destroy(idx);
    feox_epoch_reclaim();
    free_entries(entries, 5000);
}

/* insert_sorted_from takes the nodes its splits make from the filler's slab; they go back to it
 * when the index is destroyed, after the filler is sealed, and the slab with them. */
static void test_insert_sorted_from_slab(void **state)
{
    (void)state;
    enum { RUN = 1000, RUNS = 40 };
    size_t before = feox_slab_mapped_bytes();
    feox_entry **entries = counter_entries(0, RUN * RUNS);
    feox_ordered_index *idx = NULL;
    assert_int_equal(feox_ordered_index_create(&idx), FEOX_OK);
    feox_slab_filler filler = {0};
    for (size_t r = 0; r < RUNS; r++) {
        size_t inserted = 0;
        assert_int_equal(
            feox_ordered_index_insert_sorted_from(idx, entries + r * RUN, RUN, &inserted, &filler),
            FEOX_OK);
        assert_int_equal(inserted, RUN);
    }
    assert_non_null(filler.slab);
    assert_true(feox_slab_mapped_bytes() > before);
    feox_slab_filler_seal(&filler);
    assert_verifies(idx);
    assert_holds(idx, entries, RUN * RUNS);
    feox_ordered_index_destroy(idx);
    feox_epoch_reclaim();
    assert_int_equal(feox_slab_mapped_bytes(), before);
    free_entries(entries, RUN * RUNS);
}

static void test_build_nomem(void **state)
{
    (void)state;
    rng_state = 77;
    model m = {0};
    make_sorted(&m, KEYS_SHARED_PREFIX, 3000);
    feox_ordered_index *idx = NULL;
    assert_int_equal(feox_ordered_index_create(&idx), FEOX_OK);
    model empty = {0};
    feox_set_allocator(counting_malloc, counting_realloc, counting_free);
    long n;
    for (n = 0;; n++) {
        long before = live_allocations;
        fail_after = n;
        feox_err err = feox_ordered_index_build(idx, m.items, m.count);
        fail_after = -1;
        if (err == FEOX_OK)
            break;
        assert_int_equal(err, FEOX_ERR_NOMEM);
        assert_int_equal(live_allocations, before); /* nothing leaked */
        assert_full_match(idx, &empty);
    }
    feox_set_allocator(NULL, NULL, NULL);
    assert_true(n > 100); /* the failures reached leaves, separators and inner nodes */
    assert_full_match(idx, &m);
    feox_ordered_index_destroy(idx);
    model_free_all(&m);
}

/* ---- memory per key (issue 15) ------------------------------------------------------------ */

/* Bytes of the blocks the engine holds from the allocator (malloc_usable_size: what glibc gives a
 * request, headers aside; plain malloc and free underneath, so any block may go either way). */
static size_t live_bytes;
static void *sized_malloc(size_t size)
{
    void *p = malloc(size);
    if (p)
        live_bytes += malloc_usable_size(p);
    return p;
}
static void *sized_realloc(void *p, size_t size)
{
    size_t old = p ? malloc_usable_size(p) : 0;
    void *q = realloc(p, size);
    if (q) {
        live_bytes -= old;
        live_bytes += malloc_usable_size(q);
    }
    return q;
}
static void sized_free(void *p)
{
    if (p)
        live_bytes -= malloc_usable_size(p);
    free(p);
}

/* n entries with the benchmark's 16-byte keys (a random 8-byte head, then the counter), in the
 * order made (random key order). */
static feox_entry **bench_shaped_entries(size_t n)
{
    feox_entry **entries = calloc(n, sizeof *entries);
    assert_non_null(entries);
    rng_state = 4242;
    for (size_t i = 0; i < n; i++) {
        uint8_t key[16];
        uint64_t head = rng_next();
        for (int b = 0; b < 8; b++) {
            key[7 - b] = (uint8_t)(head >> (8 * b));
            key[15 - b] = (uint8_t)(i >> (8 * b));
        }
        entries[i] = feox_entry_new(key, sizeof key, 0);
        assert_non_null(entries[i]);
    }
    return entries;
}

/* Bytes per key of the nodes and separators an index of n keys holds: after inserting them one
 * by one in the given order (sorted = false), or built from them sorted. */
static double index_bytes_per_key(feox_entry **entries, size_t n, bool sorted)
{
    feox_epoch_enter(); /* this thread's epoch record exists before the count starts */
    feox_epoch_exit();
    feox_set_allocator(sized_malloc, sized_realloc, sized_free);
    feox_ordered_index *idx = NULL;
    assert_int_equal(feox_ordered_index_create(&idx), FEOX_OK);
    size_t before = live_bytes;
    if (sorted) {
        assert_int_equal(feox_ordered_index_build(idx, entries, n), FEOX_OK);
    } else {
        for (size_t i = 0; i < n; i++)
            assert_int_equal(feox_ordered_index_insert(idx, entries[i]), FEOX_OK);
    }
    double per_key = (double)(live_bytes - before) / (double)n;
    assert_verifies(idx);
    assert_int_equal(feox_ordered_index_count(idx), n);
    feox_ordered_index_destroy(idx);
    feox_epoch_reclaim();
    feox_set_allocator(NULL, NULL, NULL);
    return per_key;
}

/* Random inserts leave leaves about 70% full: 22 keys of 16 bytes in a 432-byte leaf (4-byte
 * heads) come to about 21 bytes per key with the inner nodes and separators; 8-byte heads (a
 * 560-byte leaf) took about 27. */
static void test_memory_per_key_random_inserts(void **state)
{
    (void)state;
    enum { N = 50000 };
    feox_entry **entries = bench_shaped_entries(N);
    double per_key = index_bytes_per_key(entries, N, false);
    print_message("ordered index, random inserts: %.1f bytes per key\n", per_key);
    assert_true(per_key < 25.0);
    free_entries(entries, N);
}

/* create itself fails cleanly when memory does. */
static void test_create_nomem(void **state)
{
    (void)state;
    feox_set_allocator(counting_malloc, counting_realloc, counting_free);
    for (long n = 0; n < 2; n++) {
        fail_after = n;
        feox_ordered_index *idx = NULL;
        assert_int_equal(feox_ordered_index_create(&idx), FEOX_ERR_NOMEM);
    }
    fail_after = -1;
    feox_set_allocator(NULL, NULL, NULL);
}

/* A bulk build fills its leaves: 32 keys in a 432-byte leaf, 13.5 bytes per key, about 15 with the
 * inner nodes and separators (leaves of 28 keys took about 17.5). */
static void test_memory_per_key_built(void **state)
{
    (void)state;
    enum { N = 30000 }; /* below the size whose nodes come from slabs: every node is counted */
    feox_entry **entries = bench_shaped_entries(N);
    qsort(entries, N, sizeof *entries, compare_entries);
    double per_key = index_bytes_per_key(entries, N, true);
    print_message("ordered index, built: %.1f bytes per key\n", per_key);
    assert_true(per_key < 16.5);
    free_entries(entries, N);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_index),
        cmocka_unit_test(test_random_ops_random_keys),
        cmocka_unit_test(test_random_ops_shared_prefix),
        cmocka_unit_test(test_random_ops_small_space),
        cmocka_unit_test(test_random_ops_mixed_lengths),
        cmocka_unit_test(test_very_different_lengths),
        cmocka_unit_test(test_replace),
        cmocka_unit_test(test_insert_sorted),
        cmocka_unit_test(test_big_build_nodes_from_slabs),
        cmocka_unit_test(test_small_build_takes_no_slab),
        cmocka_unit_test(test_insert_sorted_from_slab),
        cmocka_unit_test(test_queue_workload_bounded),
        cmocka_unit_test(test_nomem_leaves_index_unchanged),
        cmocka_unit_test(test_create_nomem),
        cmocka_unit_test(test_build_from_sorted),
        cmocka_unit_test(test_build_nomem),
        cmocka_unit_test(test_memory_per_key_random_inserts),
        cmocka_unit_test(test_memory_per_key_built),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
