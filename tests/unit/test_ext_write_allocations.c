/*
 * test_ext_write_allocations.c — what a one-row transaction (an autocommit write) allocates in
 * the extension's own structures: the undo journal (ext/txn_journal.c) and the backend's pending
 * map (ext/storage_sqlite_pending.c) hold one small change in place, without an allocation, and
 * keep every change they hold intact when a second one moves them to the heap. A transaction of
 * many rows allocates nothing per row there (keys and values go in an arena, ext/byte_arena.c,
 * kept with the entry array for the next transaction): per-row blocks freed at COMMIT left holes
 * of a version's size that the next transaction's versions filled apart from their entries.
 * Allocations are counted with SQLite's own status counter (outstanding sqlite3_malloc blocks).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "byte_arena.h"
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
    assert_int_equal(j.n, 0);
    sqlite3_int64 kept = outstanding(); /* the entry array and an arena block */

    /* Cleared: the next transaction's one write allocates nothing again. */
    assert_int_equal(feox_journal_add(&j, key2, sizeof key2, true, value2, sizeof value2, &info2),
                     SQLITE_OK);
    assert_int_equal(outstanding(), kept);
    assert_journal_entry(&j, 0, key2, sizeof key2, value2, sizeof value2, 3);
    feox_journal_clear(&j);
    assert_int_equal(outstanding(), kept);
    feox_journal_free(&j);
    assert_int_equal(outstanding(), base);
}

/* An old value too large to keep in place goes in the arena, which the journal keeps for the next
 * transaction and frees with itself. */
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
    assert_int_equal(outstanding(), base + 1);
    feox_journal_free(&j);
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
 * kept from one transaction to the next); a second key goes in the arena. */
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
    /* another key: the arena's first block; both readable, in key order when sorted */
    assert_true(feox_pending_put(&p, key2, 16, value2, 100, 4, 4, 0, false, false));
    assert_int_equal(outstanding(), base + 1);
    assert_pending(&p, key1, 16, value3, 100);
    assert_pending(&p, key2, 16, value2, 100);
    const feox_pending_entry **sorted = feox_pending_sorted(&p);
    assert_non_null(sorted);
    assert_true(memcmp(sorted[0]->bytes, sorted[1]->bytes, 16) < 0);
    sqlite3_free(sorted);
    feox_pending_clear(&p);
    assert_int_equal(outstanding(), base + 1); /* the arena block, kept */
    assert_null(feox_pending_get(&p, key1, 16));
    feox_pending_free(&p);
    assert_int_equal(outstanding(), base - 2); /* and the arrays of the first transaction */
}

#define BATCH_ROWS 1000

static void batch_key(unsigned char key[16], size_t i, unsigned char seed)
{
    fill(key, 16, seed);
    memcpy(key, &i, sizeof i);
}

/* A transaction of many rows: the journal allocates nothing per row (the entry array grows by
 * doubling, the keys go in the arena); the next one of as many rows allocates nothing at all. */
static void test_journal_batch_allocates_nothing_per_row(void **state)
{
    (void)state;
    feox_journal j;
    memset(&j, 0, sizeof j);
    unsigned char key[16];
    sqlite3_int64 base = outstanding();
    for (size_t i = 0; i < BATCH_ROWS; i++) {
        batch_key(key, i, 1);
        assert_int_equal(feox_journal_add(&j, key, sizeof key, false, NULL, 0, NULL), SQLITE_OK);
    }
    assert_true(outstanding() <= base + 2); /* the entry array, one arena block */
    feox_journal_clear(&j);
    sqlite3_int64 kept = outstanding();
    for (size_t i = 0; i < BATCH_ROWS; i++) {
        batch_key(key, i, 2);
        assert_int_equal(feox_journal_add(&j, key, sizeof key, false, NULL, 0, NULL), SQLITE_OK);
        assert_int_equal(outstanding(), kept);
    }
    for (size_t i = 0; i < BATCH_ROWS; i++) {
        batch_key(key, i, 2);
        assert_memory_equal(journal_entry(&j, i)->key, key, sizeof key);
    }
    feox_journal_free(&j);
    assert_int_equal(outstanding(), base);
}

/* Entries forgotten by a truncate (a statement or savepoint undone) give their arena bytes back:
 * a loop of add-and-truncate does not grow the journal, and older entries stay intact. */
static void test_journal_truncate_gives_arena_bytes_back(void **state)
{
    (void)state;
    feox_journal j;
    memset(&j, 0, sizeof j);
    unsigned char key[16], value[200];
    feox_record_info info = {.tag = 4};
    fill(value, sizeof value, 3);
    for (size_t i = 0; i < 10; i++) {
        batch_key(key, i, 4);
        assert_int_equal(feox_journal_add(&j, key, sizeof key, true, value, sizeof value, &info),
                         SQLITE_OK);
    }
    size_t held = feox_arena_held(&j.arena);
    for (size_t round = 0; round < 5 * FEOX_ARENA_BLOCK_BYTES / sizeof value; round++) {
        for (size_t i = 10; i < 20; i++) {
            batch_key(key, i, 5);
            assert_int_equal(
                feox_journal_add(&j, key, sizeof key, true, value, sizeof value, &info), SQLITE_OK);
        }
        feox_journal_truncate(&j, 10);
    }
    assert_int_equal(feox_arena_held(&j.arena), held);
    for (size_t i = 0; i < 10; i++) {
        batch_key(key, i, 4);
        assert_journal_entry(&j, i, key, sizeof key, value, sizeof value, 4);
    }
    feox_journal_free(&j);
}

/* The pending map likewise: nothing per row, nothing at all for the next batch of as many rows;
 * a key changed again with a larger value holds one block of its own, not one per change. */
static void test_pending_batch_allocates_nothing_per_row(void **state)
{
    (void)state;
    feox_pending p;
    memset(&p, 0, sizeof p);
    unsigned char key[16], value[100];
    fill(value, sizeof value, 6);
    for (size_t i = 0; i < BATCH_ROWS; i++) {
        batch_key(key, i, 7);
        assert_true(feox_pending_put(&p, key, 16, value, 100, 4, i + 1, 0, false, false));
    }
    feox_pending_clear(&p);
    sqlite3_int64 kept = outstanding();
    for (size_t i = 0; i < BATCH_ROWS; i++) {
        batch_key(key, i, 8);
        value[0] = (unsigned char)i;
        assert_true(feox_pending_put(&p, key, 16, value, 100, 4, i + 1, 0, false, false));
        assert_int_equal(outstanding(), kept);
    }
    for (size_t i = 0; i < BATCH_ROWS; i++) {
        batch_key(key, i, 8);
        value[0] = (unsigned char)i;
        assert_pending(&p, key, 16, value, 100);
    }
    /* one key growing change after change */
    unsigned char grown[1000];
    fill(grown, sizeof grown, 9);
    batch_key(key, 3, 8);
    for (size_t len = 101; len <= sizeof grown; len++) {
        assert_true(
            feox_pending_put(&p, key, 16, grown, (uint32_t)len, 4, 5000 + len, 0, false, false));
        assert_true(outstanding() <= kept + 1);
    }
    assert_pending(&p, key, 16, grown, sizeof grown);
    assert_int_equal(p.bytes, (uint64_t)(BATCH_ROWS - 1) * 116 + 16 + sizeof grown);
    /* and shorter again: in place */
    assert_true(feox_pending_put(&p, key, 16, value, 100, 4, 9000, 0, false, false));
    assert_pending(&p, key, 16, value, 100);
    feox_pending_clear(&p);
    assert_int_equal(outstanding(), kept);
    feox_pending_free(&p);
}

/* The arena itself: a request larger than a block gets a block of its own, a rewind reaches back
 * across blocks, and a reset keeps at most FEOX_ARENA_KEEP_BYTES of blocks. */
static void test_arena_blocks_rewind_and_reset(void **state)
{
    (void)state;
    feox_arena a;
    memset(&a, 0, sizeof a);
    unsigned char *small = feox_arena_alloc(&a, 5);
    assert_non_null(small);
    assert_int_equal((uintptr_t)small % 8, 0);
    unsigned char *next = feox_arena_alloc(&a, 8);
    assert_ptr_equal(next, small + 8);
    unsigned char *large = feox_arena_alloc(&a, 3 * FEOX_ARENA_BLOCK_BYTES);
    assert_non_null(large);
    memset(large, 1, 3 * FEOX_ARENA_BLOCK_BYTES);
    assert_int_equal(feox_arena_held(&a), 4 * FEOX_ARENA_BLOCK_BYTES);
    unsigned char *after = feox_arena_alloc(&a, 16);
    assert_int_equal(feox_arena_held(&a), 5 * FEOX_ARENA_BLOCK_BYTES);
    feox_arena_rewind(&a, next);
    assert_ptr_equal(feox_arena_alloc(&a, 8), next);
    /* the blocks after it are spares: the large one serves a large request again */
    assert_ptr_equal(feox_arena_alloc(&a, 2 * FEOX_ARENA_BLOCK_BYTES), large);
    assert_ptr_equal(feox_arena_alloc(&a, 16), large + 2 * FEOX_ARENA_BLOCK_BYTES);
    assert_ptr_equal(feox_arena_alloc(&a, FEOX_ARENA_BLOCK_BYTES), after);
    assert_int_equal(feox_arena_held(&a), 5 * FEOX_ARENA_BLOCK_BYTES);
    /* a reset keeps blocks, first ones first, within FEOX_ARENA_KEEP_BYTES (2 blocks): the
     * first and the last here, not the large one */
    feox_arena_reset(&a);
    assert_int_equal(feox_arena_held(&a), 2 * FEOX_ARENA_BLOCK_BYTES);
    assert_ptr_equal(feox_arena_alloc(&a, 1), small);
    feox_arena_free(&a);
    assert_int_equal(feox_arena_held(&a), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_journal_one_small_write_allocates_nothing),
        cmocka_unit_test(test_journal_large_value_is_allocated),
        cmocka_unit_test(test_pending_one_small_change_allocates_nothing),
        cmocka_unit_test(test_journal_batch_allocates_nothing_per_row),
        cmocka_unit_test(test_journal_truncate_gives_arena_bytes_back),
        cmocka_unit_test(test_pending_batch_allocates_nothing_per_row),
        cmocka_unit_test(test_arena_blocks_rewind_and_reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
