/*
 * test_store_ttl.c — TTL semantics of engine/feox.h driven by an injected clock
 * (feox_config.clock): the exact expiry boundary (expired when now > expires_at), expired keys
 * absent on every path, get_ttl rounding, update_ttl/persist, which writes keep or clear the
 * TTL, FEOX_WRITE_EXPIRES_AT, TTL statistics, and the background sweeper reclaiming expired
 * records (sweeper on, short interval).
 *
 * Lazy-expiry tests disable the sweeper so that only the clock decides what is visible.
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
#include <time.h>

#include "feox.h"
#include "feox_test_support.h"

#define KS(str) (str), strlen(str)
#define T0 FTEST_EPOCH_NS
#define SEC FTEST_SEC

static ftest_clock test_clock;

static feox_store *open_store(void)
{
    feox_config cfg;
    ftest_clock_init(&test_clock, T0);
    ftest_config(&cfg, &test_clock);
    return ftest_open(&cfg);
}

static feox_stats stats_of(feox_store *s)
{
    feox_stats st;
    assert_int_equal(feox_get_stats(s, &st), FEOX_OK);
    return st;
}

static feox_err put_ttl(feox_store *s, const char *key, const char *value, uint64_t ttl_secs,
                        bool *created)
{
    feox_write_opts o = {0};
    o.flags = FEOX_WRITE_TTL;
    o.ttl_secs = ttl_secs;
    return feox_insert(s, key, strlen(key), value, strlen(value), &o, created);
}

static feox_record_info info_of(feox_store *s, const char *key)
{
    void *v = NULL;
    size_t n = 0;
    feox_record_info info;
    feox_err err = feox_get(s, key, strlen(key), &v, &n, &info);
    if (err != FEOX_OK)
        fail_msg("get %s: %s", key, feox_strerror(err));
    feox_free(v);
    return info;
}

static void expect_str(feox_store *s, const char *key, const char *value)
{
    void *v = NULL;
    size_t n = 0;
    feox_err err = feox_get(s, key, strlen(key), &v, &n, NULL);
    if (err != FEOX_OK)
        fail_msg("get %s: %s", key, feox_strerror(err));
    assert_int_equal(n, strlen(value));
    assert_memory_equal(v, value, n);
    feox_free(v);
}

static uint64_t ttl_of(feox_store *s, const char *key, bool *has)
{
    uint64_t t = 12345;
    assert_int_equal(feox_get_ttl(s, key, strlen(key), &t, has), FEOX_OK);
    return t;
}

static int count_cb(void *ctx, const void *key, size_t key_len, const void *value, size_t value_len,
                    const feox_record_info *info)
{
    (void)key, (void)key_len, (void)value, (void)value_len, (void)info;
    ++*(size_t *)ctx;
    return 0;
}

static size_t count_range(feox_store *s, const char *a, const char *b)
{
    size_t calls = 0, visited = 999;
    assert_int_equal(feox_range_query(s, KS(a), KS(b), SIZE_MAX, count_cb, &calls, &visited),
                     FEOX_OK);
    assert_int_equal(calls, visited);
    return calls;
}

/* ------------------------------------------------------------------------------------------- */

/* expires_at = now + ttl; visible at now == expires_at, gone one nanosecond later. */
static void test_expiry_boundary(void **state)
{
    (void)state;
    feox_store *s = open_store();
    bool created = false;
    assert_int_equal(put_ttl(s, "k", "v", 10, &created), FEOX_OK);
    assert_true(created);
    feox_record_info info = info_of(s, "k");
    assert_int_equal(info.expires_at_ns, T0 + 10 * SEC);
    feox_stats st = stats_of(s);
    assert_int_equal(st.keys_with_ttl, 1);

    ftest_clock_set(&test_clock, T0 + 10 * SEC); /* now == expires_at: still live */
    expect_str(s, "k", "v");
    assert_true(feox_contains(s, KS("k")));
    assert_int_equal(feox_len(s, 0), 1);
    bool has = false;
    assert_int_equal(ttl_of(s, "k", &has), 0);
    assert_true(has);

    ftest_clock_set(&test_clock, T0 + 10 * SEC + 1); /* now > expires_at: gone */
    assert_false(feox_contains(s, KS("k")));
    assert_int_equal(feox_len(s, 0), 0);
    assert_true(feox_is_empty(s));
    feox_close(s);
}

static void test_get_ttl_rounding(void **state)
{
    (void)state;
    feox_store *s = open_store();
    bool has = true;
    assert_int_equal(feox_insert(s, KS("plain"), "v", 1, NULL, NULL), FEOX_OK);
    uint64_t t = ttl_of(s, "plain", &has);
    (void)t;
    assert_false(has);
    uint64_t secs = 0;
    assert_int_equal(feox_get_ttl(s, KS("missing"), &secs, &has), FEOX_ERR_KEY_NOT_FOUND);

    assert_int_equal(put_ttl(s, "k", "v", 100, NULL), FEOX_OK);
    assert_int_equal(ttl_of(s, "k", &has), 100);
    assert_true(has);
    ftest_clock_advance(&test_clock, 1);
    assert_int_equal(ttl_of(s, "k", &has), 99); /* 99.999999999 s rounds down */
    ftest_clock_advance(&test_clock, SEC - 1);
    assert_int_equal(ttl_of(s, "k", &has), 99);
    ftest_clock_advance(&test_clock, 1);
    assert_int_equal(ttl_of(s, "k", &has), 98);
    ftest_clock_set(&test_clock, T0 + 99 * SEC + 1);
    assert_int_equal(ttl_of(s, "k", &has), 0);
    assert_true(has);
    ftest_clock_set(&test_clock, T0 + 100 * SEC + 1);
    assert_int_equal(feox_get_ttl(s, KS("k"), &secs, &has), FEOX_ERR_KEY_NOT_FOUND);
    feox_close(s);
}

/* An expired key is absent on EVERY path. */
static void test_expired_absent_everywhere(void **state)
{
    (void)state;
    feox_store *s = open_store();
    unsigned char b8[8];
    ftest_put_i64(b8, 41);
    feox_write_opts o = {0};
    o.flags = FEOX_WRITE_TTL;
    o.ttl_secs = 5;
    o.tag = 3;
    assert_int_equal(feox_insert(s, KS("e:counter"), b8, 8, &o, NULL), FEOX_OK);
    assert_int_equal(feox_insert(s, KS("e:doc"), KS("{\"a\":1}"), &o, NULL), FEOX_OK);
    assert_int_equal(feox_insert(s, KS("e:val"), KS("old"), &o, NULL), FEOX_OK);
    assert_int_equal(feox_insert(s, KS("e:del"), KS("x"), &o, NULL), FEOX_OK);
    assert_int_equal(feox_insert(s, KS("e:ttl"), KS("x"), &o, NULL), FEOX_OK);
    assert_int_equal(feox_insert(s, KS("e:persist"), KS("x"), &o, NULL), FEOX_OK);
    assert_int_equal(feox_insert(s, KS("e:ins"), KS("x"), &o, NULL), FEOX_OK);
    assert_int_equal(feox_insert(s, KS("e:ifabs"), KS("x"), &o, NULL), FEOX_OK);
    assert_int_equal(feox_insert(s, KS("e:flag"), KS("x"), &o, NULL), FEOX_OK);
    assert_int_equal(feox_insert(s, KS("live"), KS("L"), NULL, NULL), FEOX_OK);
    assert_int_equal(feox_len(s, 0), 10);
    assert_int_equal(count_range(s, "a", "z"), 10);

    ftest_clock_advance(&test_clock, 5 * SEC + 1);

    /* Reads. */
    void *v = NULL;
    size_t n = 0;
    feox_value *ref = NULL;
    assert_int_equal(feox_get(s, KS("e:val"), &v, &n, NULL), FEOX_ERR_KEY_NOT_FOUND);
    assert_int_equal(feox_get_ref(s, KS("e:val"), &ref), FEOX_ERR_KEY_NOT_FOUND);
    assert_int_equal(feox_get_size(s, KS("e:val"), &n), FEOX_ERR_KEY_NOT_FOUND);
    assert_false(feox_contains(s, KS("e:val")));
    uint64_t secs = 0;
    bool has = false;
    assert_int_equal(feox_get_ttl(s, KS("e:val"), &secs, &has), FEOX_ERR_KEY_NOT_FOUND);
    /* FEOX_LEN_ESTIMATE removes nothing: the expired keys still count (reads remove nothing
     * either); an unknown flag counts nothing; the exact count removes them. */
    assert_int_equal(feox_len(s, FEOX_LEN_ESTIMATE), 10);
    assert_int_equal(feox_len(s, 1u << 7), 0);
    assert_int_equal(feox_len(s, 0), 1);
    assert_int_equal(feox_len(s, FEOX_LEN_ESTIMATE), 1);
    assert_false(feox_is_empty(s));
    assert_int_equal(count_range(s, "a", "z"), 1);
    assert_int_equal(count_range(s, "e:", "e:~"), 0);

    /* Cursor: every seek mode and walk sees only "live". */
    feox_cursor *c = NULL;
    assert_int_equal(feox_cursor_open(s, &c), FEOX_OK);
    const feox_seek_mode modes[] = {FEOX_SEEK_FIRST, FEOX_SEEK_GE, FEOX_SEEK_GT};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(feox_cursor_seek(c, modes[i], "a", 1), FEOX_OK);
        assert_true(feox_cursor_valid(c));
        size_t kl = 0;
        const void *k = feox_cursor_key(c, &kl);
        assert_int_equal(kl, 4);
        assert_memory_equal(k, "live", 4);
        assert_int_equal(feox_cursor_next(c), FEOX_OK);
        assert_false(feox_cursor_valid(c));
    }
    assert_int_equal(feox_cursor_seek(c, FEOX_SEEK_LAST, NULL, 0), FEOX_OK);
    assert_true(feox_cursor_valid(c));
    assert_int_equal(feox_cursor_prev(c), FEOX_OK);
    assert_false(feox_cursor_valid(c));
    assert_int_equal(feox_cursor_seek(c, FEOX_SEEK_LE, "e:~", 3), FEOX_OK);
    assert_false(feox_cursor_valid(c));
    assert_int_equal(feox_cursor_seek(c, FEOX_SEEK_LT, "zz", 2), FEOX_OK);
    assert_true(feox_cursor_valid(c));
    feox_cursor_close(c);

    /* CAS with the exact old value: false. */
    bool swapped = true;
    assert_int_equal(feox_compare_and_swap(s, KS("e:val"), "old", 3, "new", 3, NULL, &swapped),
                     FEOX_OK);
    assert_false(swapped);
    assert_false(feox_contains(s, KS("e:val")));

    /* Writers that need a live key: KEY_NOT_FOUND. */
    assert_int_equal(feox_json_patch(s, KS("e:doc"), KS("[{\"op\":\"remove\",\"path\":\"/a\"}]"),
                                     NULL, NULL, NULL),
                     FEOX_ERR_KEY_NOT_FOUND);
    assert_int_equal(feox_delete(s, KS("e:del"), NULL), FEOX_ERR_KEY_NOT_FOUND);
    assert_int_equal(feox_update_ttl(s, KS("e:ttl"), 100, NULL), FEOX_ERR_KEY_NOT_FOUND);
    assert_int_equal(feox_update_ttl(s, KS("e:persist"), 0, NULL), FEOX_ERR_KEY_NOT_FOUND);
    /* ... none of them resurrected anything. */
    assert_false(feox_contains(s, KS("e:doc")));
    assert_false(feox_contains(s, KS("e:ttl")));
    assert_false(feox_contains(s, KS("e:persist")));
    assert_int_equal(feox_len(s, 0), 1);

    /* Increment creates a fresh counter = delta, no TTL, tag 0. */
    int64_t r = 0;
    assert_int_equal(feox_atomic_increment(s, KS("e:counter"), 1, NULL, &r), FEOX_OK);
    assert_int_equal(r, 1);
    feox_record_info info = info_of(s, "e:counter");
    assert_int_equal(info.expires_at_ns, 0);
    assert_int_equal(info.tag, 0);
    assert_int_equal(ftest_read_counter(s, "e:counter"), 1);

    /* Insert reports created = true; IF_ABSENT inserts and does not fail. */
    bool created = false;
    assert_int_equal(feox_insert(s, KS("e:ins"), "new", 3, NULL, &created), FEOX_OK);
    assert_true(created);
    expect_str(s, "e:ins", "new");
    feox_write_opts ia = {0};
    ia.flags = FEOX_WRITE_IF_ABSENT;
    bool inserted = false;
    assert_int_equal(feox_insert(s, KS("e:ifabs"), "new", 3, &ia, &inserted), FEOX_OK);
    assert_true(inserted);
    expect_str(s, "e:ifabs", "new");
    created = false;
    assert_int_equal(feox_insert(s, KS("e:flag"), "new", 3, &ia, &created), FEOX_OK);
    assert_true(created);
    assert_int_equal(feox_len(s, 0), 5);
    assert_int_equal(count_range(s, "a", "z"), 5);

    /* An expired record sets no timestamp floor: an explicit old timestamp is accepted. */
    assert_int_equal(put_ttl(s, "e:lww", "x", 1, NULL), FEOX_OK);
    ftest_clock_advance(&test_clock, 2 * SEC);
    feox_write_opts old = {0};
    old.timestamp_ns = 1;
    assert_int_equal(feox_insert(s, KS("e:lww"), "y", 1, &old, &created), FEOX_OK);
    assert_true(created);

    feox_stats st = stats_of(s);
    assert_true(st.ttl_expired_lazy >= 1);
    assert_int_equal(st.len, 6);
    assert_int_equal(feox_check(s), FEOX_OK);
    feox_close(s);
}

static void test_update_ttl_and_persist(void **state)
{
    (void)state;
    feox_store *s = open_store();
    bool has = false;
    assert_int_equal(feox_update_ttl(s, KS("missing"), 5, NULL), FEOX_ERR_KEY_NOT_FOUND);
    assert_int_equal(feox_update_ttl(s, KS("missing"), 0, NULL), FEOX_ERR_KEY_NOT_FOUND);
    assert_false(feox_contains(s, KS("missing")));

    /* update_ttl on a key without TTL adds one: now + secs. */
    assert_int_equal(feox_insert(s, KS("k"), "v", 1, NULL, NULL), FEOX_OK);
    ftest_clock_advance(&test_clock, 3 * SEC);
    assert_int_equal(feox_update_ttl(s, KS("k"), 10, NULL), FEOX_OK);
    feox_record_info info = info_of(s, "k");
    assert_int_equal(info.expires_at_ns, T0 + 13 * SEC);
    assert_int_equal(ttl_of(s, "k", &has), 10);
    assert_true(has);
    expect_str(s, "k", "v"); /* value untouched */

    /* update_ttl(0) removes it: the key then outlives the old expiry. */
    assert_int_equal(feox_update_ttl(s, KS("k"), 0, NULL), FEOX_OK);
    ttl_of(s, "k", &has);
    assert_false(has);
    assert_int_equal(info_of(s, "k").expires_at_ns, 0);
    ftest_clock_advance(&test_clock, 100 * SEC);
    expect_str(s, "k", "v");

    /* update_ttl(0) removes a TTL set by an insert too (the seed's persist). */
    assert_int_equal(put_ttl(s, "p", "v", 5, NULL), FEOX_OK);
    assert_int_equal(feox_update_ttl(s, KS("p"), 0, NULL), FEOX_OK);
    ttl_of(s, "p", &has);
    assert_false(has);
    ftest_clock_advance(&test_clock, 100 * SEC);
    expect_str(s, "p", "v");
    /* update_ttl(0) on a key without TTL is fine. */
    assert_int_equal(feox_update_ttl(s, KS("p"), 0, NULL), FEOX_OK);

    /* Shortening and lengthening. */
    assert_int_equal(put_ttl(s, "x", "v", 100, NULL), FEOX_OK);
    uint64_t now = ftest_clock_now(&test_clock);
    assert_int_equal(feox_update_ttl(s, KS("x"), 1, NULL), FEOX_OK);
    assert_int_equal(info_of(s, "x").expires_at_ns, now + SEC);
    assert_int_equal(stats_of(s).keys_with_ttl, 1); /* only x: k and p lost theirs */
    ftest_clock_advance(&test_clock, SEC + 1);
    assert_false(feox_contains(s, KS("x")));
    /* k and p lost their TTL, x expired. */
    feox_stats st = stats_of(s);
    assert_true(st.keys_with_ttl <= 1); /* x may already be reclaimed by the read above */
    assert_int_equal(st.len, 2);
    feox_close(s);
}

/* Which writes keep the TTL and which clear or set it. */
static void test_writes_and_ttl(void **state)
{
    (void)state;
    feox_store *s = open_store();
    bool has = false;
    const uint64_t exp = T0 + 50 * SEC;

    /* Plain insert clears. */
    assert_int_equal(put_ttl(s, "plain", "a", 50, NULL), FEOX_OK);
    assert_int_equal(feox_insert(s, KS("plain"), "b", 1, NULL, NULL), FEOX_OK);
    ttl_of(s, "plain", &has);
    assert_false(has);
    /* Insert with opts but no TTL flag clears too. */
    feox_write_opts tagged = {0};
    tagged.tag = 4;
    assert_int_equal(put_ttl(s, "tagged", "a", 50, NULL), FEOX_OK);
    assert_int_equal(feox_insert(s, KS("tagged"), "b", 1, &tagged, NULL), FEOX_OK);
    assert_int_equal(info_of(s, "tagged").expires_at_ns, 0);

    /* KEEP_TTL keeps the existing expiry (and keeps "none" when there was none). */
    feox_write_opts keep = {0};
    keep.flags = FEOX_WRITE_KEEP_TTL;
    assert_int_equal(put_ttl(s, "keep", "a", 50, NULL), FEOX_OK);
    ftest_clock_advance(&test_clock, 7 * SEC);
    assert_int_equal(feox_insert(s, KS("keep"), "b", 1, &keep, NULL), FEOX_OK);
    expect_str(s, "keep", "b");
    assert_int_equal(info_of(s, "keep").expires_at_ns, exp);
    assert_int_equal(feox_insert(s, KS("keepnone"), "a", 1, NULL, NULL), FEOX_OK);
    assert_int_equal(feox_insert(s, KS("keepnone"), "b", 1, &keep, NULL), FEOX_OK);
    assert_int_equal(info_of(s, "keepnone").expires_at_ns, 0);
    /* KEEP_TTL on an absent key: no expiry. */
    assert_int_equal(feox_insert(s, KS("keepnew"), "b", 1, &keep, NULL), FEOX_OK);
    assert_int_equal(info_of(s, "keepnew").expires_at_ns, 0);

    /* incr / cas / patch keep it ... */
    unsigned char b8[8];
    ftest_put_i64(b8, 1);
    feox_write_opts o = {0};
    o.flags = FEOX_WRITE_EXPIRES_AT;
    o.expires_at_ns = exp;
    assert_int_equal(feox_insert(s, KS("n"), b8, 8, &o, NULL), FEOX_OK);
    assert_int_equal(info_of(s, "n").expires_at_ns, exp);
    assert_int_equal(feox_atomic_increment(s, KS("n"), 1, NULL, NULL), FEOX_OK);
    assert_int_equal(info_of(s, "n").expires_at_ns, exp);
    ftest_put_i64(b8, 2);
    bool swapped = false;
    assert_int_equal(feox_compare_and_swap(s, KS("n"), b8, 8, "{\"a\":1}", 7, NULL, &swapped),
                     FEOX_OK);
    assert_true(swapped);
    assert_int_equal(info_of(s, "n").expires_at_ns, exp);
    assert_int_equal(feox_json_patch(s, KS("n"),
                                     KS("[{\"op\":\"add\",\"path\":\"/b\",\"value\":2}]"), NULL,
                                     NULL, NULL),
                     FEOX_OK);
    assert_int_equal(info_of(s, "n").expires_at_ns, exp);

    /* ... unless given one (FEOX_WRITE_TTL relative to now; ttl 0 = none). */
    uint64_t now = ftest_clock_now(&test_clock);
    feox_write_opts t = {0};
    t.flags = FEOX_WRITE_TTL;
    t.ttl_secs = 20;
    assert_int_equal(
        feox_json_patch(s, KS("n"), KS("[{\"op\":\"remove\",\"path\":\"/b\"}]"), &t, NULL, NULL),
        FEOX_OK);
    assert_int_equal(info_of(s, "n").expires_at_ns, now + 20 * SEC);
    t.ttl_secs = 30;
    assert_int_equal(feox_compare_and_swap(s, KS("n"), "{\"a\":1}", 7, b8, 8, &t, &swapped),
                     FEOX_OK);
    assert_true(swapped);
    assert_int_equal(info_of(s, "n").expires_at_ns, now + 30 * SEC);
    t.ttl_secs = 40;
    assert_int_equal(feox_atomic_increment(s, KS("n"), 1, &t, NULL), FEOX_OK);
    assert_int_equal(info_of(s, "n").expires_at_ns, now + 40 * SEC);
    t.ttl_secs = 0;
    assert_int_equal(feox_atomic_increment(s, KS("n"), 1, &t, NULL), FEOX_OK);
    assert_int_equal(info_of(s, "n").expires_at_ns, 0);
    assert_int_equal(ftest_read_counter(s, "n"), 4);
    /* A new counter with FEOX_WRITE_TTL gets it. */
    t.ttl_secs = 9;
    assert_int_equal(feox_atomic_increment(s, KS("fresh"), 5, &t, NULL), FEOX_OK);
    assert_int_equal(info_of(s, "fresh").expires_at_ns, now + 9 * SEC);

    /* FEOX_WRITE_EXPIRES_AT is absolute; 0 = no expiry. */
    feox_write_opts a = {0};
    a.flags = FEOX_WRITE_EXPIRES_AT;
    a.expires_at_ns = now + 3 * SEC + 5;
    assert_int_equal(feox_insert(s, KS("abs"), "v", 1, &a, NULL), FEOX_OK);
    assert_int_equal(info_of(s, "abs").expires_at_ns, now + 3 * SEC + 5);
    assert_int_equal(ttl_of(s, "abs", &has), 3);
    a.expires_at_ns = 0;
    assert_int_equal(feox_insert(s, KS("abs0"), "v", 1, &a, NULL), FEOX_OK);
    ttl_of(s, "abs0", &has);
    assert_false(has);
    /* FEOX_WRITE_TTL with ttl_secs 0 = no expiry. */
    feox_write_opts z = {0};
    z.flags = FEOX_WRITE_TTL;
    assert_int_equal(feox_insert(s, KS("ttl0"), "v", 1, &z, NULL), FEOX_OK);
    ttl_of(s, "ttl0", &has);
    assert_false(has);
    /* The TTL rides along with an explicit timestamp: anchored on the clock, not the timestamp. */
    feox_write_opts et = {0};
    et.flags = FEOX_WRITE_TTL;
    et.ttl_secs = 10;
    et.timestamp_ns = 12345;
    assert_int_equal(feox_insert(s, KS("ts"), "v", 1, &et, NULL), FEOX_OK);
    feox_record_info info = info_of(s, "ts");
    assert_int_equal(info.timestamp_ns, 12345);
    assert_int_equal(info.expires_at_ns, now + 10 * SEC);

    ftest_clock_set(&test_clock, now + 3 * SEC + 5);
    assert_true(feox_contains(s, KS("abs")));
    ftest_clock_set(&test_clock, now + 3 * SEC + 6);
    assert_false(feox_contains(s, KS("abs")));
    ftest_clock_advance(&test_clock, 1000 * SEC);
    assert_true(feox_contains(s, KS("abs0")));
    assert_true(feox_contains(s, KS("ttl0")));
    assert_true(feox_contains(s, KS("plain")));
    assert_true(feox_contains(s, KS("keepnone")));
    assert_true(feox_contains(s, KS("n")));
    assert_false(feox_contains(s, KS("keep")));
    assert_false(feox_contains(s, KS("fresh")));
    assert_false(feox_contains(s, KS("ts")));
    feox_close(s);
}

static void test_ttl_stats(void **state)
{
    (void)state;
    feox_store *s = open_store();
    for (int i = 0; i < 10; i++) {
        char key[32];
        snprintf(key, sizeof(key), "t%d", i);
        assert_int_equal(put_ttl(s, key, "v", (uint64_t)(i < 5 ? 1 : 100), NULL), FEOX_OK);
    }
    assert_int_equal(feox_insert(s, KS("plain"), "v", 1, NULL, NULL), FEOX_OK);
    feox_stats st = stats_of(s);
    assert_int_equal(st.keys_with_ttl, 10);
    assert_int_equal(st.len, 11);
    /* Plain insert over a TTL key: one fewer key with TTL. */
    assert_int_equal(feox_insert(s, KS("t9"), "v", 1, NULL, NULL), FEOX_OK);
    st = stats_of(s);
    assert_int_equal(st.keys_with_ttl, 9);
    ftest_clock_advance(&test_clock, 2 * SEC);
    st = stats_of(s);
    assert_int_equal(st.len, 6);
    assert_int_equal(feox_len(s, 0), 6);
    void *v = NULL;
    size_t n = 0;
    assert_int_equal(feox_get(s, KS("t0"), &v, &n, NULL), FEOX_ERR_KEY_NOT_FOUND);
    assert_int_equal(feox_insert(s, KS("t1"), "w", 1, NULL, NULL), FEOX_OK);
    st = stats_of(s);
    assert_int_equal(st.ttl_expired_active, 0); /* sweeper disabled */
    /* The paths above met the 5 expired records: each is counted once, lazily. */
    assert_true(st.ttl_expired_lazy >= 1);
    assert_true(st.ttl_expired_lazy <= 5);
    /* t5..t8 carry a live TTL; t0, t2..t4 still count until they are reclaimed; t1 lost its. */
    assert_true(st.keys_with_ttl >= 4 && st.keys_with_ttl <= 8);
    feox_close(s);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* How long a wait for the sweeper may take, in steps of 10 ms: 60 s, only a guard against a
 * hang (a loaded machine may leave its thread unscheduled for a long while). */
#define WAIT_TENS_OF_MS 6000

/* Sweeper on with a short interval: expired records are removed in the background. */
static void test_sweeper_reclaims(void **state)
{
    (void)state;
    feox_config cfg;
    ftest_clock_init(&test_clock, T0);
    ftest_config(&cfg, &test_clock);
    cfg.disable_ttl_sweeper = false;
    cfg.ttl_sweep_interval_ms = 10;
    feox_store *s = ftest_open(&cfg);
    const uint64_t empty_mem = feox_memory_usage(s);
    char value[200];
    memset(value, 's', sizeof(value));
    for (int i = 0; i < 2000; i++) {
        char key[32];
        snprintf(key, sizeof(key), "s%05d", i);
        feox_write_opts o = {0};
        if (i % 4 != 0) { /* 1500 with TTL 1 s, 500 without */
            o.flags = FEOX_WRITE_TTL;
            o.ttl_secs = i % 4 == 3 ? 1000 : 1; /* 500 of them far in the future */
        }
        assert_int_equal(feox_insert(s, key, strlen(key), value, sizeof(value), &o, NULL), FEOX_OK);
    }
    const uint64_t full_mem = feox_memory_usage(s);
    assert_true(full_mem > empty_mem + 2000 * sizeof(value));
    /* Nothing is due: the sweeper must not remove anything. Wait for two passes after the
     * inserts (the second began after them), not for a time: on a loaded machine the sweeper
     * may not have run at all in 100 ms. (The statistics remove nothing here: nothing expired.) */
    feox_stats st = stats_of(s);
    const uint64_t runs = st.ttl_sweeper_runs;
    for (int i = 0; i < WAIT_TENS_OF_MS && st.ttl_sweeper_runs < runs + 2; i++) {
        sleep_ms(10);
        st = stats_of(s);
    }
    assert_true(st.ttl_sweeper_runs >= runs + 2);
    assert_int_equal(st.ttl_expired_active, 0);
    assert_int_equal(feox_len(s, 0), 2000);

    ftest_clock_advance(&test_clock, 2 * SEC);
    /* Wait for the sweeper to have removed all 1000 expired records. Polled with
     * FEOX_LEN_ESTIMATE, which removes nothing itself (feox_len, the statistics and reads
     * remove expired records lazily, and this test is about the sweeper); the count drops as
     * the sweep goes, so memory alone could be read half way through a pass. The statistics
     * read next take every shard lock, so they see the pass's counts. */
    for (int i = 0; i < WAIT_TENS_OF_MS && feox_len(s, FEOX_LEN_ESTIMATE) > 1000; i++)
        sleep_ms(10);
    assert_int_equal(feox_len(s, FEOX_LEN_ESTIMATE), 1000);
    const uint64_t freed_at_least = 1000 * (6 + sizeof(value));
    st = stats_of(s);
    assert_int_equal(st.ttl_expired_active, 1000);
    assert_int_equal(st.ttl_expired_lazy, 0);
    assert_int_equal(st.keys_with_ttl, 500);
    assert_int_equal(st.len, 1000);
    const uint64_t swept_mem = feox_memory_usage(s);
    assert_true(swept_mem < full_mem);
    /* At least the keys and values of the 1000 removed records were released. */
    assert_true(full_mem - swept_mem >= freed_at_least);
    /* Survivors are intact. */
    for (int i = 0; i < 2000; i++) {
        char key[32];
        snprintf(key, sizeof(key), "s%05d", i);
        bool live = i % 4 == 0 || i % 4 == 3;
        assert_int_equal(feox_contains(s, key, strlen(key)), live);
    }
    assert_int_equal(feox_check(s), FEOX_OK);
    feox_close(s);
}

/* A store opened with defaults runs a sweeper; close stops it (no hang, no leak under ASan). */
static void test_sweeper_default_close(void **state)
{
    (void)state;
    for (int i = 0; i < 5; i++) {
        feox_store *s = ftest_open(NULL);
        feox_write_opts o = {0};
        o.flags = FEOX_WRITE_TTL;
        o.ttl_secs = 1;
        assert_int_equal(feox_insert(s, KS("k"), "v", 1, &o, NULL), FEOX_OK);
        feox_close(s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expiry_boundary),
        cmocka_unit_test(test_get_ttl_rounding),
        cmocka_unit_test(test_expired_absent_everywhere),
        cmocka_unit_test(test_update_ttl_and_persist),
        cmocka_unit_test(test_writes_and_ttl),
        cmocka_unit_test(test_ttl_stats),
        cmocka_unit_test(test_sweeper_reclaims),
        cmocka_unit_test(test_sweeper_default_close),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
