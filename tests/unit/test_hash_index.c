/*
 * test_hash_index.c — the hash index (engine/index/hash_index.c) where keys are hardest to tell
 * apart: many keys whose slots carry the same 16 tag bits (a probe must then read their entries),
 * pairs of keys with the same whole 32-bit hash, in one shard, among other keys; every lookup
 * finds its own entry through inserts, removals and replacements (an entry swapped for a fresh
 * one of its key), and a removed key is gone; and the bytes a lookup prefetches before an entry
 * (FEOX_HASH_VERSION_PREFETCH) hold the whole version of a loaded key with a small value; maps
 * sized by feox_hash_index_reserve come from one region, no larger than they are (memory per key,
 * issue 15), and growth past them works; feox_hash_index_expect grows the maps of an index that
 * already holds keys into one region (a table's cache loading the rest of its rows).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/alloc.h"
#include "base/epoch.h"
#include "base/slab.h"
#include "feox.h"
#include "index/hash_index.h"
#include "index/record.h"

#define SEED 77
#define SAME_TAG 16  /* keys sharing one tag and one shard */
#define OTHERS 20000 /* keys around them */

typedef struct test_key {
    char bytes[16];
    uint64_t hash;
    feox_entry *e;
} test_key;

static void make_key(test_key *k, const feox_hash_index *idx, uint64_t i)
{
    snprintf(k->bytes, sizeof k->bytes, "k%014llu", (unsigned long long)i);
    k->hash = feox_hash_key(idx, k->bytes, 15);
    k->e = NULL;
}

/* The bits a slot keeps (hash_index.c: bits 10 to 25) and the shard's. */
static uint32_t tag_of(uint64_t hash)
{
    return (uint32_t)((hash >> 10) & 0xffff);
}

static void insert(feox_hash_index *idx, test_key *k)
{
    k->e = feox_entry_new(k->bytes, 15, k->hash);
    assert_non_null(k->e);
    assert_int_equal(feox_hash_insert(idx, k->e), FEOX_OK);
}

static void check_all(const feox_hash_index *idx, test_key *keys, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        feox_entry *found = feox_hash_lookup(idx, keys[i].hash, keys[i].bytes, 15);
        assert_ptr_equal(found, keys[i].e); /* NULL when removed */
    }
}

static void remove_key(feox_hash_index *idx, test_key *k)
{
    feox_hash_remove(idx, k->e);
    feox_entry_free(k->e);
    k->e = NULL;
}

/* Replace every present key's entry by a fresh one (the index then finds the fresh one, and
 * counts the same); an absent key replaces nothing. Run after removals too, so that some keys
 * move to a tombstone earlier in their probe sequence. */
static void replace_all(feox_hash_index *idx, test_key *keys, size_t n)
{
    uint64_t count = feox_hash_count(idx);
    for (size_t i = 0; i < n; i++) {
        feox_entry *fresh = feox_entry_new(keys[i].bytes, 15, keys[i].hash);
        assert_non_null(fresh);
        assert_true(feox_hash_slot_fits(fresh));
        feox_entry *old = feox_hash_replace(idx, fresh);
        assert_ptr_equal(old, keys[i].e); /* NULL when the key is absent */
        if (old) {
            feox_entry_free(old);
            keys[i].e = fresh;
        } else {
            feox_entry_free(fresh);
        }
    }
    assert_int_equal(feox_hash_count(idx), count);
    check_all(idx, keys, n);
}

static void test_keys_sharing_a_tag_and_a_hash(void **state)
{
    (void)state;
    feox_hash_index idx;
    assert_int_equal(feox_hash_index_init(&idx, 0, SEED), FEOX_OK);
    size_t cap = SAME_TAG + OTHERS + 2;
    test_key *keys = calloc(cap, sizeof *keys);
    assert_non_null(keys);
    size_t n = 0;

    /* SAME_TAG keys of one shard with one tag, and OTHERS keys of any kind. */
    test_key probe;
    make_key(&probe, &idx, 0);
    uint32_t tag = tag_of(probe.hash);
    feox_shard *shard = feox_hash_shard(&idx, probe.hash);
    size_t same = 0;
    for (uint64_t i = 0; same < SAME_TAG; i++) {
        test_key k;
        make_key(&k, &idx, i);
        if (tag_of(k.hash) == tag && feox_hash_shard(&idx, k.hash) == shard) {
            keys[n++] = k;
            same++;
        }
    }
    for (uint64_t i = 0; i < OTHERS; i++) {
        make_key(&keys[n++], &idx, 1000000000ull + i);
    }
    /* Two keys with the same 32-bit hash (a birthday search over 2^18 keys finds some). */
    size_t table_size = 1u << 18;
    uint64_t *seen = calloc(table_size * 2, sizeof *seen); /* (hash + 1, i) pairs */
    assert_non_null(seen);
    bool found_pair = false;
    for (uint64_t i = 0; i < table_size && !found_pair; i++) {
        test_key k;
        make_key(&k, &idx, 5000000000ull + i);
        size_t slot = (size_t)(k.hash & (table_size - 1));
        while (seen[slot * 2] != 0 && seen[slot * 2] != k.hash + 1) {
            slot = (slot + 1) & (table_size - 1);
        }
        if (seen[slot * 2] == k.hash + 1) {
            make_key(&keys[n++], &idx, 5000000000ull + seen[slot * 2 + 1]);
            keys[n++] = k;
            found_pair = true;
        } else {
            seen[slot * 2] = k.hash + 1;
            seen[slot * 2 + 1] = i;
        }
    }
    free(seen);
    assert_true(found_pair);
    assert_true(keys[n - 1].hash == keys[n - 2].hash);

    for (size_t i = 0; i < n; i++) {
        insert(&idx, &keys[i]);
    }
    assert_int_equal(feox_hash_count(&idx), n);
    check_all(&idx, keys, n);

    /* Remove every other key of the same tag, one of the pair and some others; then add back. */
    for (size_t i = 0; i < SAME_TAG; i += 2) {
        remove_key(&idx, &keys[i]);
    }
    remove_key(&idx, &keys[n - 2]);
    for (size_t i = SAME_TAG; i < SAME_TAG + OTHERS; i += 3) {
        remove_key(&idx, &keys[i]);
    }
    check_all(&idx, keys, n);
    replace_all(&idx, keys, n);
    for (size_t i = 0; i < n; i++) {
        if (keys[i].e == NULL) {
            insert(&idx, &keys[i]);
        }
    }
    check_all(&idx, keys, n);
    replace_all(&idx, keys, n);

    for (size_t i = 0; i < n; i++) {
        remove_key(&idx, &keys[i]);
    }
    assert_int_equal(feox_hash_count(&idx), 0);
    check_all(&idx, keys, n);
    free(keys);
    feox_hash_index_destroy(&idx);
    feox_epoch_reclaim();
}

/* A loaded key (16-byte key, 100-byte value, in a store with a backend: the benchmarks' shape)
 * keeps its first version in the FEOX_HASH_VERSION_PREFETCH bytes right before its entry, all of
 * which a lookup prefetches with the entry; and the lookup still finds that entry. */
static void test_prefetched_bytes_hold_a_loaded_version(void **state)
{
    (void)state;
    feox_hash_index idx;
    assert_int_equal(feox_hash_index_init(&idx, 16, SEED), FEOX_OK);
    char key[16], value[100];
    memset(key, 'k', sizeof key);
    memset(value, 'v', sizeof value);
    uint64_t hash = feox_hash_key(&idx, key, sizeof key);
    feox_record *v = NULL;
    feox_entry *e = feox_entry_new_with_record(NULL, key, sizeof key, hash, value, sizeof value, 3,
                                               4, 0, FEOX_RECORD_LOCATED, &v);
    assert_non_null(e);
    size_t version_bytes = feox_record_size(sizeof value, FEOX_RECORD_LOCATED);
    assert_ptr_equal(feox_entry_shared_version(e), v);
    assert_ptr_equal((char *)v + version_bytes, (char *)e); /* the version ends at the entry */
    assert_true(version_bytes <= FEOX_HASH_VERSION_PREFETCH);
    assert_int_equal(feox_hash_insert(&idx, e), FEOX_OK);
    assert_ptr_equal(feox_hash_lookup(&idx, hash, key, sizeof key), e);
    feox_hash_remove(&idx, e);
    feox_record_unref(v); /* the index's reference */
    feox_entry_free(e);   /* the entry's, the last: frees the block */
    feox_hash_index_destroy(&idx);
    feox_epoch_reclaim();
}

/* feox_hash_index_reserve carves the maps from one region; inserts past what it was sized for
 * grow the maps (the carved ones left in the region, the grown ones freed through the epoch), and
 * every key is found, through removals, until the index and its region are freed. */
static void test_reserved_maps_then_growth(void **state)
{
    (void)state;
    enum { RESERVED = 20000, TOTAL = 90000 };
    feox_hash_index idx;
    assert_int_equal(feox_hash_index_init(&idx, 16, SEED), FEOX_OK);
    assert_null(idx.regions);
    assert_int_equal(feox_hash_index_reserve(&idx, RESERVED), FEOX_OK);
    assert_non_null(idx.regions);
    test_key *keys = calloc(TOTAL, sizeof *keys);
    assert_non_null(keys);
    for (uint64_t i = 0; i < TOTAL; i++) {
        make_key(&keys[i], &idx, i);
        insert(&idx, &keys[i]);
        if (i == RESERVED - 1)
            check_all(&idx, keys, RESERVED);
    }
    check_all(&idx, keys, TOTAL);
    for (uint64_t i = 0; i < TOTAL; i += 2)
        remove_key(&idx, &keys[i]);
    check_all(&idx, keys, TOTAL);
    assert_int_equal(feox_hash_count(&idx), TOTAL / 2);
    for (uint64_t i = 1; i < TOTAL; i += 2)
        remove_key(&idx, &keys[i]);
    feox_hash_index_destroy(&idx);
    assert_null(idx.regions);
    feox_epoch_reclaim();
    free(keys);
}

/* The region feox_hash_index_reserve maps is as large as the maps carved from it: ck_hs's map of
 * n slots (n the power of two at or above twice a shard's keys: at most 50% load) takes a pointer
 * and a one-byte probe bound per slot, and a header; the region used to be sized at 12 bytes a
 * slot, and its untouched tail still counted as mapped memory. */
static void test_reserved_region_fits_its_maps(void **state)
{
    (void)state;
#ifndef FEOX_SLAB_POISON /* under ASan the region comes from malloc: nothing mapped to count */
    enum { KEYS = 300000 };
    feox_hash_index idx;
    assert_int_equal(feox_hash_index_init(&idx, 16, SEED), FEOX_OK);
    size_t before = feox_mem_large_mapped();
    assert_int_equal(feox_hash_index_reserve(&idx, KEYS), FEOX_OK);
    size_t mapped = feox_mem_large_mapped() - before;
    uint64_t per_shard_slots = 16;
    while (per_shard_slots < 2 * (KEYS / feox_hash_shard_count(&idx) + 1))
        per_shard_slots <<= 1;
    double per_slot = (double)mapped / (double)(per_shard_slots * feox_hash_shard_count(&idx));
    print_message("reserved region: %.2f bytes per slot\n", per_slot);
    assert_true(per_slot >= 8.0); /* a pointer a slot at least: the maps are in it */
    assert_true(per_slot < 9.5);
    feox_hash_index_destroy(&idx);
    assert_int_equal(feox_mem_large_mapped(), before);
#endif
}

/* feox_hash_index_expect on an index holding keys grows every shard's map once, into one region
 * of about the maps' size (no page fault per 4 KiB of each map, as single maps had); the keys
 * already there stay found, and the expected keys then go in without another region. */
static void test_expect_grows_maps_into_one_region(void **state)
{
    (void)state;
    enum { FIRST = 3000, TOTAL = 200000 };
    feox_hash_index idx;
    assert_int_equal(feox_hash_index_init(&idx, 16, SEED), FEOX_OK);
    test_key *keys = calloc(TOTAL, sizeof *keys);
    assert_non_null(keys);
    for (uint64_t i = 0; i < FIRST; i++) {
        make_key(&keys[i], &idx, i);
        insert(&idx, &keys[i]);
    }
    assert_null(idx.regions);
    size_t before = feox_mem_large_mapped();
    assert_int_equal(feox_hash_index_expect(&idx, TOTAL - FIRST), FEOX_OK);
    assert_non_null(idx.regions);
    check_all(&idx, keys, FIRST);
    size_t after_expect = feox_mem_large_mapped();
#ifndef FEOX_SLAB_POISON /* under ASan the region comes from malloc: nothing mapped to count */
    size_t mapped = feox_mem_large_mapped() - before;
    uint64_t per_shard_slots = 16;
    while (per_shard_slots < 2 * (TOTAL / feox_hash_shard_count(&idx) + 1))
        per_shard_slots <<= 1;
    double per_slot = (double)mapped / (double)(per_shard_slots * feox_hash_shard_count(&idx));
    print_message("expected region: %.2f bytes per slot\n", per_slot);
    assert_true(per_slot >= 8.0);
    assert_true(per_slot < 9.5);
#else
    (void)before;
#endif
    for (uint64_t i = FIRST; i < TOTAL; i++) {
        make_key(&keys[i], &idx, i);
        insert(&idx, &keys[i]);
    }
    assert_int_equal(feox_mem_large_mapped(), after_expect); /* no map grew past the expected */
    check_all(&idx, keys, TOTAL);
    for (uint64_t i = 0; i < TOTAL; i++)
        remove_key(&idx, &keys[i]);
    feox_hash_index_destroy(&idx);
    assert_null(idx.regions);
    feox_epoch_reclaim();
    free(keys);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_sharing_a_tag_and_a_hash),
        cmocka_unit_test(test_prefetched_bytes_hold_a_loaded_version),
        cmocka_unit_test(test_reserved_maps_then_growth),
        cmocka_unit_test(test_reserved_region_fits_its_maps),
        cmocka_unit_test(test_expect_grows_maps_into_one_region),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
