/*
 * test_ext_write_allocations.c — what a one-row transaction (an autocommit write) allocates in
 * the extension's own structures: the undo journal (ext/txn_journal.c) and the backend's pending
 * map (ext/storage_sqlite_pending.c) hold one small change in place, without an allocation, and
 * keep every change they hold intact when a second one moves them to the heap. Allocations are
 * counted with SQLite's own status counter (outstanding sqlite3_malloc blocks).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "feox_ext.h"
#include "storage_sqlite_pending.h"

/* Outstanding sqlite3_malloc allocations now. */
static sqlite3_int64 outstanding(void)
{
    sqlite3_int64 cur = 0, high = 0;
    assert_int_equal(sqlite3_status64(SQLITE_STATUS_MALLOC_COUNT, &cur, &high, 0), SQLITE_OK);
    return cur;
}

static void fill(unsigned char *buf, size_t len, unsigned char seed)
{
    for (size_t i = 0; i < len; i++) {
        buf[i] = (unsigned char)(seed + i * 7);
    }
}

static const feox_journal_entry *journal_entry(const feox_journal *j, size_t i)
{
    return j->entries != NULL ? &j->entries[i] : &j->first;
}

static void assert_journal_entry(const feox_journal *j, size_t i, const unsigned char *key,
                                 size_t key_len, const unsigned char *value, size_t value_len,
                                 uint32_t tag)
{
    const feox_journal_entry *e = journal_entry(j, i);
    assert_true(e->existed);
    assert_int_equal(e->key_len, key_len);
    assert_memory_equal(e->key, key, key_len);
    assert_int_equal(e->value_len, value_len);
    assert_memory_equal(e->value, value, value_len);
    assert_int_equal(e->tag, tag);
}

/* One small entry: no allocation; a second one moves the first to an array, both intact. */
static void test_journal_one_small_write_allocates_nothing(void **state)
{
    (void)state;
    feox_journal j;
    memset(&j, 0, sizeof j);
    unsigned char key1[16], value1[100], key2[16], value2[100];
    fill(key1, sizeof key1, 1);
    fill(value1, sizeof value1, 2);
    fill(key2, sizeof key2, 3);
    fill(value2, sizeof value2, 4);
    feox_record_info info1 = {.tag = 4, .timestamp_ns = 11, .expires_at_ns = 0};
    feox_record_info info2 = {.tag = 3, .timestamp_ns = 12, .expires_at_ns = 99};

    sqlite3_int64 base = outstanding();
    assert_int_equal(feox_journal_add(&j, key1, sizeof key1, true, value1, sizeof value1, &info1),
                     SQLITE_OK);
    assert_int_equal(outstanding(), base);
    assert_int_equal(j.n, 1);
    assert_journal_entry(&j, 0, key1, sizeof key1, value1, sizeof value1, 4);

    assert_int_equal(feox_journal_add(&j, key2, sizeof key2, true, value2, sizeof value2, &info2),
                     SQLITE_OK);
    assert_int_equal(j.n, 2);
    assert_non_null(j.entries);
    assert_journal_entry(&j, 0, key1, sizeof key1, value1, sizeof value1, 4);
    assert_journal_entry(&j, 1, key2, sizeof key2, value2, sizeof value2, 3);
    assert_int_equal(journal_entry(&j, 1)->expires_at_ns, 99);

    /* The older entry keeps the in-place bytes: a third small entry needs its own block. */
    feox_journal_truncate(&j, 1);
    assert_int_equal(feox_journal_add(&j, key2, sizeof key2, false, NULL, 0, NULL), SQLITE_OK);
    assert_false(journal_entry(&j, 1)->existed);
    assert_memory_equal(journal_entry(&j, 1)->key, key2, sizeof key2);
    assert_journal_entry(&j, 0, key1, sizeof key1, value1, sizeof value1, 4);

    feox_journal_clear(&j);
    assert_int_equal(outstanding(), base);
    assert_int_equal(j.n, 0);

    /* Cleared: the next transaction's one write allocates nothing again. */
    assert_int_equal(feox_journal_add(&j, key2, sizeof key2, true, value2, sizeof value2, &info2),
                     SQLITE_OK);
    assert_int_equal(outstanding(), base);
    assert_journal_entry(&j, 0, key2, sizeof key2, value2, sizeof value2, 3);
    feox_journal_clear(&j);
    assert_int_equal(outstanding(), base);
}

/* An old value too large to keep in place is allocated, and freed with the journal. */
static void test_journal_large_value_is_allocated(void **state)
{
    (void)state;
    feox_journal j;
    memset(&j, 0, sizeof j);
    unsigned char key[16], value[FEOX_JOURNAL_INLINE_BYTES];
    fill(key, sizeof key, 5);
    fill(value, sizeof value, 6);
    feox_record_info info = {.tag = 4};
    sqlite3_int64 base = outstanding();
    assert_int_equal(feox_journal_add(&j, key, sizeof key, true, value, sizeof value, &info),
                     SQLITE_OK);
    assert_int_equal(outstanding(), base + 1);
    assert_journal_entry(&j, 0, key, sizeof key, value, sizeof value, 4);
    feox_journal_clear(&j);
    assert_int_equal(outstanding(), base);
}

static void assert_pending(const feox_pending *p, const unsigned char *key, size_t key_len,
                           const unsigned char *value, size_t value_len)
{
    const feox_pending_entry *e = feox_pending_get(p, key, (uint32_t)key_len);
    assert_non_null(e);
    assert_false(e->is_delete);
    assert_int_equal(e->value_len, value_len);
    assert_memory_equal(e->bytes + e->key_len, value, value_len);
}

/* The pending map of a one-change transaction allocates nothing once its arrays exist (they are
 * kept from one transaction to the next); a second key gets its own block. */
static void test_pending_one_small_change_allocates_nothing(void **state)
{
    (void)state;
    feox_pending p;
    memset(&p, 0, sizeof p);
    unsigned char key1[16], value1[100], key2[16], value2[100], value3[100];
    fill(key1, sizeof key1, 7);
    fill(value1, sizeof value1, 8);
    fill(key2, sizeof key2, 9);
    fill(value2, sizeof value2, 10);
    fill(value3, sizeof value3, 11);
    /* the first transaction makes the map's arrays */
    assert_true(feox_pending_put(&p, key1, 16, value1, 100, 4, 1, 0, false, false));
    feox_pending_clear(&p);

    sqlite3_int64 base = outstanding();
    assert_true(feox_pending_put(&p, key1, 16, value1, 100, 4, 2, 0, false, false));
    assert_int_equal(outstanding(), base);
    assert_pending(&p, key1, 16, value1, 100);
    /* the same key again replaces it in place */
    assert_true(feox_pending_put(&p, key1, 16, value3, 100, 4, 3, 0, false, false));
    assert_int_equal(outstanding(), base);
    assert_pending(&p, key1, 16, value3, 100);
    assert_int_equal(p.bytes, 116);
    /* another key: its own block; both readable, in key order when sorted */
    assert_true(feox_pending_put(&p, key2, 16, value2, 100, 4, 4, 0, false, false));
    assert_int_equal(outstanding(), base + 1);
    assert_pending(&p, key1, 16, value3, 100);
    assert_pending(&p, key2, 16, value2, 100);
    const feox_pending_entry **sorted = feox_pending_sorted(&p);
    assert_non_null(sorted);
    assert_true(memcmp(sorted[0]->bytes, sorted[1]->bytes, 16) < 0);
    sqlite3_free(sorted);
    feox_pending_clear(&p);
    assert_int_equal(outstanding(), base);
    assert_null(feox_pending_get(&p, key1, 16));
    feox_pending_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_journal_one_small_write_allocates_nothing),
        cmocka_unit_test(test_journal_large_value_is_allocated),
        cmocka_unit_test(test_pending_one_small_change_allocates_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
