/*
 * test_store_overwrite_loaded.c — writes that replace a loaded key's first version, which shares
 * one allocation with the key's entry (engine/index/record.h, store_apply.c):
 *   accounting  an overwrite pass (insert, update_ttl, compare_and_swap, insert with a TTL) over
 *               loaded keys leaves feox_memory_usage equal to a never-loaded store's after the
 *               same writes, and deleting every key brings it back to the empty store's.
 *   swap        the key gets a standalone entry in both indexes; a reader still holding the
 *               loaded entry sees the first version (never NULL, which would mean deleted); a
 *               value handle on the first version outlives the entry; an expired loaded version
 *               is replaced the same way, its TTL count kept.
 *   nomem       the overwrite with allocation N failing, for every N: NOMEM and the store as it
 *               was, or success.
 *   scans       one thread overwrites every loaded key while this one scans (cursor ascending
 *               and descending, range query): every key exactly once, in order, with a whole
 *               value of that key, in every scan; repeated over several reopens.
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
#include <unistd.h>

#include "base/epoch.h"
#include "failing_alloc.h"
#include "feox.h"
#include "feox_test_support.h"
#include "store/store_internal.h" /* the swap test looks at the key's entries in the indexes */

#define KEYS 600
#define VALUE_LEN 100

static ftest_clock clock_;
static char dir[] = "/tmp/feox_overwrite_XXXXXX";
static char loaded_path[sizeof dir + 16], fresh_path[sizeof dir + 16];

/* The whole file loaded before the open returns (no index snapshot: these tests look at what
 * the load leaves, and at its failures, right after the open). */
static feox_store *open_at(const char *path)
{
    ftest_drop_index_snapshot(path);
    feox_config cfg;
    ftest_config(&cfg, &clock_);
    cfg.path = path;
    return ftest_open(&cfg);
}

static size_t key_of(char *out, int i)
{
    return (size_t)sprintf(out, "key%05d", i);
}

/* VALUE_LEN bytes: key id, then a byte per round. */
static void value_of(uint8_t *out, int i, uint8_t round)
{
    memset(out, round, VALUE_LEN);
    memcpy(out, &i, sizeof i);
}

static void insert_all(feox_store *s, uint8_t round)
{
    char key[16];
    uint8_t value[VALUE_LEN];
    for (int i = 0; i < KEYS; i++) {
        value_of(value, i, round);
        assert_int_equal(feox_insert(s, key, key_of(key, i), value, VALUE_LEN, NULL, NULL),
                         FEOX_OK);
    }
}

/* Every kind of write that replaces a version, on every key (key i with value round 'a'). */
static void overwrite_pass(feox_store *s)
{
    char key[16];
    uint8_t was[VALUE_LEN], value[VALUE_LEN];
    for (int i = 0; i < KEYS; i++) {
        size_t kl = key_of(key, i);
        value_of(was, i, 'a');
        value_of(value, i, 'b');
        bool swapped = false;
        feox_write_opts ttl = {.flags = FEOX_WRITE_TTL, .ttl_secs = 100};
        switch (i % 4) {
        case 0:
            assert_int_equal(feox_insert(s, key, kl, value, VALUE_LEN, NULL, NULL), FEOX_OK);
            break;
        case 1: assert_int_equal(feox_update_ttl(s, key, kl, 50, NULL), FEOX_OK); break;
        case 2:
            assert_int_equal(
                feox_compare_and_swap(s, key, kl, was, VALUE_LEN, value, VALUE_LEN, NULL, &swapped),
                FEOX_OK);
            assert_true(swapped);
            break;
        default:
            assert_int_equal(feox_insert(s, key, kl, value, VALUE_LEN, &ttl, NULL), FEOX_OK);
            break;
        }
    }
}

static int setup(void **state)
{
    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(loaded_path, sizeof loaded_path, "%s/loaded.feox", dir);
    snprintf(fresh_path, sizeof fresh_path, "%s/fresh.feox", dir);
    ftest_clock_init(&clock_, FTEST_EPOCH_NS);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(loaded_path);
    unlink(fresh_path);
    rmdir(dir);
    return 0;
}

static void test_overwritten_loaded_keys_count_as_never_loaded(void **state)
{
    (void)state;
    unlink(fresh_path);
    unlink(loaded_path);
    feox_store *never = open_at(fresh_path);
    uint64_t empty = feox_memory_usage(never);
    insert_all(never, 'a');
    overwrite_pass(never);
    uint64_t never_loaded = feox_memory_usage(never);
    assert_int_equal(feox_close(never), FEOX_OK);

    feox_store *s = open_at(loaded_path);
    insert_all(s, 'a');
    uint64_t written = feox_memory_usage(s);
    assert_int_equal(feox_close(s), FEOX_OK);
    s = open_at(loaded_path);
    assert_int_equal(feox_memory_usage(s), written);
    overwrite_pass(s);
    assert_int_equal(feox_memory_usage(s), never_loaded);
    if (feox_check(s) != FEOX_OK)
        fail_msg("feox_check: %s", feox_error_detail());
    char key[16];
    for (int i = 0; i < KEYS; i++)
        assert_int_equal(feox_delete(s, key, key_of(key, i), NULL), FEOX_OK);
    assert_int_equal(feox_memory_usage(s), empty);
    assert_int_equal(feox_close(s), FEOX_OK);
}

/* The key's entry in the hash index (with the store's shard lock free: no writer runs). */
static feox_entry *hashed_entry(feox_store *s, const char *key)
{
    size_t len = strlen(key);
    return feox_hash_lookup(&s->hash, feox_hash_key(&s->hash, key, len), key, len);
}

/* The key's entry in the ordered index. */
static feox_entry *ordered_entry(feox_store *s, const char *key)
{
    feox_entry *e = NULL;
    if (feox_ordered_index_scan(s->ordered, FEOX_SCAN_GE, key, strlen(key), &e, 1) != 1)
        return NULL;
    return e;
}

static const feox_record *current_of(const feox_entry *e)
{
    return atomic_load_explicit(&e->current, memory_order_acquire);
}

static void test_swap_keeps_what_a_reader_holds(void **state)
{
    (void)state;
    unlink(loaded_path);
    feox_store *s = open_at(loaded_path);
    assert_int_equal(feox_insert(s, "k", 1, "first", 5, NULL, NULL), FEOX_OK);
    assert_int_equal(feox_close(s), FEOX_OK);
    s = open_at(loaded_path);
    feox_value *handle = NULL;
    assert_int_equal(feox_get_ref(s, "k", 1, &handle), FEOX_OK);

    feox_epoch_enter(); /* as a lock-free reader that found the loaded entry */
    feox_entry *loaded = hashed_entry(s, "k");
    assert_non_null(loaded);
    const feox_record *first = current_of(loaded);
    assert_ptr_equal(feox_entry_shared_version(loaded), first);
    assert_ptr_equal(ordered_entry(s, "k"), loaded);

    assert_int_equal(feox_insert(s, "k", 1, "second", 6, NULL, NULL), FEOX_OK);
    /* The reader still sees the first version through the entry it holds. */
    assert_ptr_equal(current_of(loaded), first);
    assert_int_equal(first->value_len, 5);
    assert_memory_equal(first->value, "first", 5);
    /* Both indexes hold a standalone entry with the new version. */
    feox_entry *standalone = hashed_entry(s, "k");
    assert_non_null(standalone);
    assert_true(standalone != loaded);
    assert_null(feox_entry_shared_version(standalone));
    assert_ptr_equal(ordered_entry(s, "k"), standalone);
    assert_int_equal(current_of(standalone)->value_len, 6);
    assert_memory_equal(current_of(standalone)->value, "second", 6);
    feox_epoch_exit();

    /* Later writes keep the standalone entry. */
    assert_int_equal(feox_insert(s, "k", 1, "third", 5, NULL, NULL), FEOX_OK);
    feox_epoch_enter();
    assert_ptr_equal(hashed_entry(s, "k"), standalone);
    feox_epoch_exit();
    if (feox_check(s) != FEOX_OK)
        fail_msg("feox_check: %s", feox_error_detail());
    feox_epoch_reclaim(); /* the loaded entry goes; the handle keeps the first version */
    assert_int_equal(feox_value_size(handle), 5);
    assert_memory_equal(feox_value_data(handle), "first", 5);
    feox_value_release(handle);
    assert_int_equal(feox_close(s), FEOX_OK);
}

static void test_expired_loaded_version_replaced(void **state)
{
    (void)state;
    unlink(loaded_path);
    feox_store *s = open_at(loaded_path);
    feox_write_opts ttl = {.flags = FEOX_WRITE_TTL, .ttl_secs = 1};
    assert_int_equal(feox_insert(s, "t", 1, "short-lived", 11, &ttl, NULL), FEOX_OK);
    assert_int_equal(feox_insert(s, "u", 1, "kept", 4, &ttl, NULL), FEOX_OK);
    assert_int_equal(feox_close(s), FEOX_OK);
    s = open_at(loaded_path);
    feox_stats st;
    assert_int_equal(feox_get_stats(s, &st), FEOX_OK);
    assert_int_equal(st.keys_with_ttl, 2);
    ftest_clock_advance(&clock_, 2 * FTEST_SEC); /* both loaded versions expire */
    assert_int_equal(feox_insert(s, "t", 1, "again", 5, NULL, NULL), FEOX_OK);
    feox_epoch_enter();
    feox_entry *e = hashed_entry(s, "t");
    assert_non_null(e);
    assert_null(feox_entry_shared_version(e)); /* the loaded entry was swapped out */
    assert_ptr_equal(ordered_entry(s, "t"), e);
    feox_epoch_exit();
    void *value = NULL;
    size_t value_len = 0;
    assert_int_equal(feox_get(s, "t", 1, &value, &value_len, NULL), FEOX_OK);
    assert_int_equal(value_len, 5);
    assert_memory_equal(value, "again", 5);
    feox_free(value);
    assert_int_equal(feox_get(s, "u", 1, &value, &value_len, NULL), FEOX_ERR_KEY_NOT_FOUND);
    assert_int_equal(feox_len(s, 0), 1); /* removes the expired "u" */
    assert_int_equal(feox_get_stats(s, &st), FEOX_OK);
    assert_int_equal(st.keys_with_ttl, 0);
    if (feox_check(s) != FEOX_OK)
        fail_msg("feox_check: %s", feox_error_detail());
    assert_int_equal(feox_close(s), FEOX_OK);
}

/* Overwriting a loaded key with allocation N failing, for every N: the write succeeds, or fails
 * with NOMEM leaving the key's value, the indexes and the memory accounted as they were. */
static void test_overwrite_with_each_allocation_failing(void **state)
{
    (void)state;
    unlink(loaded_path);
    ftest_failing_alloc_install(false);
    feox_store *s = open_at(loaded_path);
    insert_all(s, 'a');
    assert_int_equal(feox_close(s), FEOX_OK);
    s = open_at(loaded_path);
    char key[16];
    uint8_t was[VALUE_LEN], value[VALUE_LEN];
    unsigned long n;
    for (n = 1; n < KEYS; n++) {
        int i = (int)n; /* a key not written since the load */
        size_t kl = key_of(key, i);
        value_of(value, i, 'b');
        uint64_t usage = feox_memory_usage(s);
        ftest_fault.alloc_count = 0;
        ftest_fault.fail_at = n;
        ftest_fault.failure_injected = false;
        ftest_fault.injecting = true;
        feox_err err = feox_insert(s, key, kl, value, VALUE_LEN, NULL, NULL);
        ftest_fault.injecting = false;
        if (!ftest_fault.failure_injected) {
            assert_int_equal(err, FEOX_OK);
            break;
        }
        if (err == FEOX_OK)
            continue;
        assert_int_equal(err, FEOX_ERR_NOMEM);
        assert_int_equal(feox_memory_usage(s), usage);
        void *got = NULL;
        size_t got_len = 0;
        assert_int_equal(feox_get(s, key, kl, &got, &got_len, NULL), FEOX_OK);
        value_of(was, i, 'a');
        assert_int_equal(got_len, VALUE_LEN);
        assert_memory_equal(got, was, VALUE_LEN);
        feox_free(got);
        if (feox_check(s) != FEOX_OK)
            fail_msg("feox_check: %s", feox_error_detail());
    }
    assert_true(n > 2); /* the new version and the standalone entry were each refused once */
    assert_int_equal(feox_close(s), FEOX_OK);
    ftest_failing_alloc_remove();
}

/* ---- scans while every loaded key is overwritten ---- */

#define SCAN_KEYS 3000
#define SCAN_ROUNDS 4

typedef struct overwriter {
    feox_store *store;
    uint8_t round;
    atomic_bool done;
    atomic_int errors;
} overwriter;

/* Overwrite every key once, from the middle outwards so that scans in both directions meet
 * keys already swapped and keys not yet swapped. */
static void *overwrite_all(void *arg)
{
    overwriter *w = arg;
    char key[16];
    uint8_t value[VALUE_LEN];
    for (int n = 0; n < SCAN_KEYS; n++) {
        int i = (SCAN_KEYS / 2 + (n % 2 ? n / 2 + 1 : -(n / 2)) + SCAN_KEYS) % SCAN_KEYS;
        value_of(value, i, w->round);
        if (feox_insert(w->store, key, key_of(key, i), value, VALUE_LEN, NULL, NULL) != FEOX_OK)
            atomic_fetch_add(&w->errors, 1);
    }
    atomic_store(&w->done, true);
    return NULL;
}

typedef struct scan_check {
    int next; /* the key id expected next */
    int step; /* +1 ascending, -1 descending */
    uint8_t round;
    int seen;
} scan_check;

/* Key `next`, whose value is a whole value of that key from this round or the one before. */
static void see_row(scan_check *c, const void *key, size_t key_len, const void *value,
                    size_t value_len)
{
    char want[16];
    size_t want_len = key_of(want, c->next);
    if (key_len != want_len || memcmp(key, want, key_len) != 0)
        fail_msg("scan: got %.*s where %s was due", (int)key_len, (const char *)key, want);
    assert_int_equal(value_len, VALUE_LEN);
    const uint8_t *v = value;
    int id;
    memcpy(&id, v, sizeof id);
    assert_int_equal(id, c->next);
    uint8_t r = v[VALUE_LEN - 1];
    assert_true(r == c->round || r == c->round - 1);
    for (size_t b = sizeof id; b < VALUE_LEN; b++)
        assert_int_equal(v[b], r);
    c->next += c->step;
    c->seen++;
}

static int range_row(void *ctx, const void *key, size_t key_len, const void *value,
                     size_t value_len, const feox_record_info *info)
{
    (void)info;
    see_row(ctx, key, key_len, value, value_len);
    return 0;
}

static void scan_once(feox_store *s, int kind, uint8_t round)
{
    bool desc = kind == 2;
    scan_check c = {.next = desc ? SCAN_KEYS - 1 : 0, .step = desc ? -1 : 1, .round = round};
    if (kind == 0) {
        assert_int_equal(feox_range_query(s, "key", 3, "key~", 4, SIZE_MAX, range_row, &c, NULL),
                         FEOX_OK);
    } else {
        feox_cursor *cur = NULL;
        assert_int_equal(feox_cursor_open(s, &cur), FEOX_OK);
        assert_int_equal(feox_cursor_seek(cur, desc ? FEOX_SEEK_LAST : FEOX_SEEK_FIRST, NULL, 0),
                         FEOX_OK);
        while (feox_cursor_valid(cur)) {
            size_t kl, vl;
            const void *k = feox_cursor_key(cur, &kl);
            const void *v = feox_cursor_value(cur, &vl);
            see_row(&c, k, kl, v, vl);
            assert_int_equal(desc ? feox_cursor_prev(cur) : feox_cursor_next(cur), FEOX_OK);
        }
        feox_cursor_close(cur);
    }
    assert_int_equal(c.seen, SCAN_KEYS);
}

static void test_scans_during_overwrites_of_loaded_keys(void **state)
{
    (void)state;
    unlink(loaded_path);
    feox_store *s = open_at(loaded_path);
    char key[16];
    uint8_t value[VALUE_LEN];
    for (int i = 0; i < SCAN_KEYS; i++) {
        value_of(value, i, 0);
        assert_int_equal(feox_insert(s, key, key_of(key, i), value, VALUE_LEN, NULL, NULL),
                         FEOX_OK);
    }
    assert_int_equal(feox_close(s), FEOX_OK);
    for (uint8_t round = 1; round <= SCAN_ROUNDS; round++) {
        s = open_at(loaded_path); /* every key loaded again: one allocation with its entry */
        overwriter w = {.store = s, .round = round};
        atomic_init(&w.done, false);
        atomic_init(&w.errors, 0);
        pthread_t writer;
        assert_int_equal(pthread_create(&writer, NULL, overwrite_all, &w), 0);
        int scans = 0;
        do
            scan_once(s, scans++ % 3, round);
        while (!atomic_load(&w.done));
        pthread_join(writer, NULL);
        assert_int_equal(atomic_load(&w.errors), 0);
        scan_once(s, 1, round);
        if (feox_check(s) != FEOX_OK)
            fail_msg("feox_check: %s", feox_error_detail());
        assert_int_equal(feox_close(s), FEOX_OK);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_overwritten_loaded_keys_count_as_never_loaded),
        cmocka_unit_test(test_swap_keeps_what_a_reader_holds),
        cmocka_unit_test(test_expired_loaded_version_replaced),
        cmocka_unit_test(test_overwrite_with_each_allocation_failing),
        cmocka_unit_test(test_scans_during_overwrites_of_loaded_keys),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
