/*
 * test_log_snapshot_fill.c — the index snapshot's table filled by several threads at once
 * (feox_log_snapshot_writer_add_shared, engine/storage/log/log_snapshot.c, used by a large
 * store's close: engine/store/store_close_threads.c) against the same keys added by one thread
 * (feox_log_snapshot_writer_add):
 *   same       the same slots end up taken, by the same slot words, with the same key count;
 *   lookup     every key is found by the lookup rule (probe from its home slot, stop at an
 *              empty one), on a table where homes collide in long runs;
 *   refusals   a location of another file generation, or more keys than the table's limit,
 *              make the writer bad (nothing would be written), as with one thread.
 * The writer is built by hand (as feox_log_snapshot_writer_init lays it out: the backend only
 * gives it its generation and the file's offsets), so no file is involved.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/helpers.h"
#include "storage/log/log_backend.h"
#include "storage/log/log_snapshot.h"

#define KEYS 60000
#define THREADS 4
#define GENERATION 3

typedef struct key_set {
    uint32_t hash[KEYS];
    uint64_t location[KEYS];
} key_set;

/* Hashes from a fixed generator, every 4th one a copy of an earlier one's high bits (the same
 * home slot) so that probe runs are long and cross each other. */
static void make_keys(key_set *k)
{
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (uint32_t i = 0; i < KEYS; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint32_t h = (uint32_t)(x >> 32);
        if (i % 4 == 3)
            h = (k->hash[i / 2] & 0xffff0000u) | (h & 0xffffu);
        k->hash[i] = h;
        k->location[i] = feox_log_location(GENERATION, FEOX_LOG_HEADER_SIZE + 64ull * i);
    }
}

/* A writer with room for keys keys, as feox_log_snapshot_writer_init sizes it. */
static void writer_for(feox_log_snapshot_writer *w, uint64_t keys)
{
    memset(w, 0, sizeof *w);
    w->count = keys + keys / 3 + FEOX_LOG_SNAPSHOT_MIN_SLOTS;
    w->key_limit = w->count - w->count / 4;
    w->slots = calloc((size_t)w->count, sizeof *w->slots);
    assert_non_null(w->slots);
    w->generation = GENERATION;
}

typedef struct filler {
    feox_log_snapshot_writer *w;
    const key_set *keys;
    uint32_t from, to;
    feox_log_snapshot_share share;
    pthread_t thread;
} filler;

static void *fill(void *arg)
{
    filler *f = arg;
    for (uint32_t i = f->from; i < f->to; i++)
        feox_log_snapshot_writer_add_shared(f->w, &f->share, f->keys->hash[i],
                                            f->keys->location[i]);
    return NULL;
}

/* The keys [0, n) added by THREADS threads at once, each a quarter, interleaved in blocks so
 * that threads meet in the same probe runs. */
static void fill_shared(feox_log_snapshot_writer *w, const key_set *k, uint32_t n)
{
    filler f[THREADS];
    for (int t = 0; t < THREADS; t++) {
        f[t] = (filler){.w = w, .keys = k, .from = n / THREADS * t, .to = n / THREADS * (t + 1)};
        if (t == THREADS - 1)
            f[t].to = n;
        assert_int_equal(pthread_create(&f[t].thread, NULL, fill, &f[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) {
        assert_int_equal(pthread_join(f[t].thread, NULL), 0);
        feox_log_snapshot_writer_merge(w, &f[t].share);
    }
}

static int compare_words(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The table's taken slot words, sorted. */
static uint64_t *taken_words(const feox_log_snapshot_writer *w, size_t *n)
{
    uint64_t *words = malloc((size_t)w->count * sizeof *words);
    assert_non_null(words);
    *n = 0;
    for (uint64_t i = 0; i < w->count; i++)
        if (w->slots[i])
            words[(*n)++] = w->slots[i];
    qsort(words, *n, sizeof *words, compare_words);
    return words;
}

/* The lookup rule of feox_log_snapshot_find: the slot of this key's word, probing from home. */
static bool found_by_lookup(const feox_log_snapshot_writer *w, uint32_t hash, uint64_t location)
{
    uint64_t want = feox_log_snapshot_slot(location & FEOX_LOG_OFFSET_MASK, hash);
    uint64_t i = feox_log_snapshot_home(hash, w->count);
    for (uint64_t probes = 0; probes < w->count; probes++, i = i + 1 < w->count ? i + 1 : 0) {
        uint64_t slot = feox_get_le64((const uint8_t *)(w->slots + i));
        if (slot == 0)
            return false;
        if (slot == want)
            return true;
    }
    return false;
}

static void test_shared_fill_holds_what_one_thread_adds(void **state)
{
    (void)state;
    key_set *k = malloc(sizeof *k);
    assert_non_null(k);
    make_keys(k);
    feox_log_snapshot_writer one, many;
    writer_for(&one, KEYS);
    writer_for(&many, KEYS);
    for (uint32_t i = 0; i < KEYS; i++)
        feox_log_snapshot_writer_add(&one, k->hash[i], k->location[i]);
    fill_shared(&many, k, KEYS);
    assert_false(one.bad);
    assert_false(many.bad);
    assert_int_equal(one.keys, KEYS);
    assert_int_equal(many.keys, KEYS);
    size_t n_one, n_many;
    uint64_t *a = taken_words(&one, &n_one), *b = taken_words(&many, &n_many);
    assert_int_equal(n_one, KEYS);
    assert_int_equal(n_many, KEYS);
    assert_memory_equal(a, b, KEYS * sizeof *a);
    for (uint32_t i = 0; i < KEYS; i++)
        assert_true(found_by_lookup(&many, k->hash[i], k->location[i]));
    free(a);
    free(b);
    free(one.slots);
    free(many.slots);
    free(k);
}

static void test_shared_fill_refuses_what_one_thread_refuses(void **state)
{
    (void)state;
    key_set *k = malloc(sizeof *k);
    assert_non_null(k);
    make_keys(k);
    /* A location of another generation, among good ones. */
    feox_log_snapshot_writer w;
    writer_for(&w, KEYS);
    k->location[KEYS / 2] = feox_log_location(GENERATION + 1, FEOX_LOG_HEADER_SIZE);
    fill_shared(&w, k, KEYS);
    assert_true(w.bad);
    free(w.slots);
    /* More keys than the table's limit: room for a tenth of them. */
    make_keys(k);
    writer_for(&w, KEYS / 10);
    fill_shared(&w, k, (uint32_t)(w.count - 1));
    assert_true(w.bad);
    free(w.slots);
    free(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shared_fill_holds_what_one_thread_adds),
        cmocka_unit_test(test_shared_fill_refuses_what_one_thread_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
