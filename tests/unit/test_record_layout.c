/*
 * test_record_layout.c — the compact layouts of the objects every key costs (issue 15, memory per
 * key): the epoch's one-word retire link (kind id in its low bits: each object destroyed once by
 * its own kind, pending and freed bytes exact), a version's 28-byte header with an expiry word
 * after the value only when it has an expiry and a location word only when asked for, an entry's
 * 24-byte header with its 32-bit hash, and the footprints max_memory counts for a 16-byte key
 * with a 100-byte value.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/alloc.h"
#include "base/epoch.h"
#include "feox.h"
#include "index/hash_index.h"
#include "index/record.h"

/* ---- retire link ---------------------------------------------------------------------------- */

typedef struct test_object {
    feox_retire_link link;
    int kind;       /* 1 or 2: which kind retired it */
    size_t bytes;   /* what its kind counts */
    int *destroyed; /* incremented by 10 * kind when destroyed */
} test_object;

static void destroy_object(feox_retire_link *link, int kind)
{
    test_object *o = (test_object *)link;
    *o->destroyed += 10 * kind + (o->kind == kind ? 0 : 1000); /* 1000: the wrong kind ran */
    free(o);
}

static void destroy_one(feox_retire_link *link)
{
    destroy_object(link, 1);
}

static void destroy_two(feox_retire_link *link)
{
    destroy_object(link, 2);
}

static size_t object_bytes(const feox_retire_link *link)
{
    return ((const test_object *)link)->bytes;
}

/* Two kinds under ids no other code in this process uses (no store is opened here). */
static const feox_retire_kind kind_one = {FEOX_RETIRE_NODE, destroy_one, object_bytes};
static const feox_retire_kind kind_two = {FEOX_RETIRE_SEPARATOR, destroy_two, object_bytes};

static void test_retire_link_is_one_word_and_dispatches_by_kind(void **state)
{
    (void)state;
    assert_int_equal(sizeof(feox_retire_link), sizeof(void *));
    feox_epoch_reclaim();
    uint64_t pending0 = feox_epoch_pending_bytes(), freed0 = feox_epoch_total_freed();
    enum { N = 1000 };
    int destroyed[N] = {0};
    size_t sum = 0;
    for (int i = 0; i < N; i++) {
        test_object *o = malloc(sizeof *o);
        assert_non_null(o);
        o->kind = i % 3 == 0 ? 2 : 1;
        o->bytes = 16 + (size_t)i;
        o->destroyed = &destroyed[i];
        sum += o->bytes;
        feox_epoch_retire(&o->link, o->kind == 1 ? &kind_one : &kind_two, o->bytes);
    }
    assert_int_equal(feox_epoch_pending_bytes() - pending0, sum);
    assert_int_equal(feox_epoch_reclaim(), sum);
    assert_int_equal(feox_epoch_pending_bytes(), pending0);
    assert_int_equal(feox_epoch_total_freed() - freed0, N);
    for (int i = 0; i < N; i++)
        assert_int_equal(destroyed[i], i % 3 == 0 ? 20 : 10);
}

/* ---- versions ------------------------------------------------------------------------------- */

static void test_version_sizes(void **state)
{
    (void)state;
    assert_int_equal(FEOX_RECORD_HEADER, 28);
    /* 28 + 100 bytes + malloc's 8: a 144-byte chunk (it was 176 with a 64-byte header). */
    assert_int_equal(feox_record_footprint(100, 0), 144);
    /* With a location word: 128 + 8, + malloc's 8 → 144 (160 while every version had an expiry
     * word). A loaded version shares a slab block with its entry: 136 bytes, no header. */
    assert_int_equal(feox_record_footprint(100, FEOX_RECORD_LOCATED), 144);
    assert_int_equal(feox_record_size(100, FEOX_RECORD_LOCATED), 136);
    /* A version with an expiry has its word: 128 + 8 + 8. */
    assert_int_equal(feox_record_size(100, FEOX_RECORD_LOCATED | FEOX_RECORD_EXPIRES), 144);
    assert_int_equal(feox_record_size(100, FEOX_RECORD_EXPIRES), 136);
    assert_int_equal(feox_record_footprint(100, FEOX_RECORD_COLD), 48);
    assert_int_equal(feox_record_footprint(100, FEOX_RECORD_COLD | FEOX_RECORD_LOCATED), 48);
    assert_true(FEOX_MAX_VALUE_SIZE <= FEOX_RECORD_MAX_VALUE);
}

/* The words after the value: the expiry only for a version that has one, then the location only
 * in a store with a backend; neither overlaps the value, and each reads back what was set. */
static void test_location_word_follows_the_value(void **state)
{
    (void)state;
    for (size_t len = 0; len < 40; len++) {
        uint8_t value[40];
        memset(value, 0xAB, sizeof value);
        for (uint64_t expires = 0; expires <= 13; expires += 13) {
            feox_record *r = feox_record_new(value, len, 7, 11, expires, FEOX_RECORD_LOCATED);
            assert_non_null(r);
            assert_int_equal(feox_record_location(r), 0);
            feox_record_set_location(r, UINT64_MAX);
            assert_true(feox_record_location(r) == UINT64_MAX);
            assert_int_equal(r->value_len, len);
            assert_int_equal(r->flags, FEOX_RECORD_LOCATED | (expires ? FEOX_RECORD_EXPIRES : 0));
            assert_int_equal(r->tag, 7);
            assert_true(r->ts_ns == 11 && feox_record_expires_at(r) == expires);
            assert_memory_equal(r->value, value, len); /* the words do not overlap the value */
            feox_record_free(r);
        }

        feox_record *m = feox_record_new(value, len, 0, 0, 0, 0);
        assert_non_null(m);
        assert_null(feox_record_location_word(m));
        assert_int_equal(m->flags, 0); /* no expiry: no word for it */
        assert_int_equal(feox_record_location(m), 0);
        /* no word: only whether it is stored (one flag, no byte more) */
        feox_record_set_location(m, 5);
        assert_int_equal(feox_record_location(m), FEOX_RECORD_LOCATION_STORED);
        assert_int_equal(m->flags, FEOX_RECORD_STORED);
        assert_int_equal(feox_record_size(len, m->flags), feox_record_size(len, 0));
        feox_record_set_location(m, 0);
        assert_int_equal(feox_record_location(m), 0);
        assert_int_equal(m->flags, 0);
        assert_int_equal(feox_record_expires_at(m), 0);
        assert_memory_equal(m->value, value, len);
        feox_record_free(m);

        feox_record *t = feox_record_new(value, len, 0, 0, UINT64_MAX, FEOX_RECORD_COLD);
        assert_non_null(t);
        assert_true(feox_record_expires_at(t) == UINT64_MAX);
        assert_null(feox_record_location_word(t));
        feox_record_free(t);
    }
    feox_record *big = feox_record_new(NULL, FEOX_MAX_VALUE_SIZE, 0, 0, 99, FEOX_RECORD_LOCATED);
    assert_non_null(big);
    assert_int_equal(big->value_len, FEOX_MAX_VALUE_SIZE);
    feox_record_set_location(big, 42);
    assert_int_equal(feox_record_location(big), 42);
    assert_int_equal(feox_record_expires_at(big), 99);
    feox_record_free(big);
    assert_null(feox_record_new(NULL, (size_t)FEOX_RECORD_MAX_VALUE + 1, 0, 0, 0, 0));
}

/* ---- entries -------------------------------------------------------------------------------- */

static void test_entry_sizes_and_hash(void **state)
{
    (void)state;
    assert_int_equal(offsetof(feox_entry, key), 24);
    /* 24 + 16 + malloc's 8: a 48-byte chunk (it was 80 with a 48-byte header). */
    assert_int_equal(feox_entry_footprint(16), 48);

    feox_hash_index idx;
    assert_int_equal(feox_hash_index_init(&idx, 0, 1234), FEOX_OK);
    char *key = malloc(FEOX_MAX_KEY_SIZE);
    assert_non_null(key);
    memset(key, 'k', FEOX_MAX_KEY_SIZE);
    size_t lens[] = {1, 16, 100, FEOX_MAX_KEY_SIZE};
    for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
        uint64_t hash = feox_hash_key(&idx, key, lens[i]);
        assert_true(hash >> 32 == (hash & 0xffffffffu)); /* the 32 bits, in both halves */
        feox_entry *e = feox_entry_new(key, lens[i], hash);
        assert_non_null(e);
        assert_int_equal(e->key_len, lens[i]);
        assert_true(feox_entry_hash(e) == hash);
        assert_int_equal(feox_hash_insert(&idx, e), FEOX_OK);
        assert_ptr_equal(feox_hash_lookup(&idx, hash, key, lens[i]), e);
        feox_hash_remove(&idx, e);
        assert_null(feox_hash_lookup(&idx, hash, key, lens[i]));
        feox_entry_free(e);
    }

    /* An entry sharing its allocation with its first version finds it back. */
    feox_record *v = NULL;
    feox_entry *e =
        feox_entry_new_with_record(NULL, key, 16, 99, NULL, 0, 3, 4, 0, FEOX_RECORD_LOCATED, &v);
    assert_non_null(e);
    assert_non_null(v);
    assert_int_equal(e->key_len, 16);
    assert_true((char *)e > (char *)v);
    assert_false(v->flags & FEOX_RECORD_SLAB); /* no filler: from the allocator */
    feox_record_unref(v); /* the index's reference */
    feox_entry_free(e);   /* the entry's, the last: frees the block */

    /* With an expiry: the word sits between the value and the location; the entry follows. */
    uint8_t value[100];
    memset(value, 0x5A, sizeof value);
    e = feox_entry_new_with_record(NULL, key, 16, 99, value, sizeof value, 3, 4, 77,
                                   FEOX_RECORD_LOCATED, &v);
    assert_non_null(e);
    assert_int_equal(v->flags, FEOX_RECORD_LOCATED | FEOX_RECORD_EXPIRES);
    assert_int_equal(feox_record_expires_at(v), 77);
    feox_record_set_location(v, 555);
    assert_int_equal(feox_record_location(v), 555);
    assert_ptr_equal(feox_entry_shared_version(e), v);
    assert_int_equal((char *)e - (char *)v, 144); /* 28 + 100, rounded to 8, + 2 words */
    assert_memory_equal(v->value, value, sizeof value);
    assert_memory_equal(e->key, key, 16);
    feox_record_unref(v);
    feox_entry_free(e);
    free(key);
    feox_hash_index_destroy(&idx);
    feox_epoch_reclaim();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retire_link_is_one_word_and_dispatches_by_kind),
        cmocka_unit_test(test_version_sizes),
        cmocka_unit_test(test_location_word_follows_the_value),
        cmocka_unit_test(test_entry_sizes_and_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
