/*
 * stress_ordered_index.c — concurrent writers and readers on one ordered index.
 *
 * Two rounds: keys are the 8-byte big-endian id, then the same behind a 24-byte shared prefix
 * (so searches break head ties by reading entries that are being retired). Writers own disjoint
 * key sets. In the lower half of the id space the owner is id % WRITERS, so writers share leaves
 * and split nodes under each other; ids there divisible by STABLE_EVERY are inserted first and
 * never removed, the rest are inserted and removed at random. The upper half is cut into blocks
 * owned round-robin; a writer fills one of its blocks and then empties it, so leaves empty out
 * and get unlinked while others work next to them. Some lower-half inserts come as sorted runs of
 * up to MAX_SORTED_RUN of the writer's ids (feox_ordered_index_insert_sorted), into leaves the
 * other writers split and empty meanwhile. Writers also replace their stable entries by fresh
 * ones with the same key (feox_ordered_index_replace). Removed and replaced entries are retired
 * through the epoch. Readers scan in all six modes inside epoch
 * sections and check: keys strictly ascending/descending, every key within the bound, and no
 * stable key in the covered range missing. One thread reclaims the epoch all along.
 *
 * Usage: stress_ordered_index [--quick]   (--quick ≈ 2 s, default ≈ 10 s). Exit 0 = pass.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/epoch.h"
#include "index/ordered_index.h"
#include "index/record.h"

#define WRITERS 3
#define READERS 2
#define IDS_PER_WRITER 20000
#define TOTAL_IDS ((uint64_t)WRITERS * IDS_PER_WRITER)
#define HALF_IDS (TOTAL_IDS / 2)
#define STABLE_EVERY 8
#define BLOCK_IDS 512
#define HOT_IDS 600
#define MAX_BATCH 300
#define MAX_SORTED_RUN 48

static feox_ordered_index *idx;
static atomic_bool stop;
static atomic_bool failed;
static atomic_ullong total_scans, total_writes;

/* present[id]: the entry in the index for id, or NULL; only id's owner touches it. */
static feox_entry **present;

typedef struct writer_state {
    int id;
    uint64_t rng;
    uint64_t block_start; /* the upper-half block being filled or emptied */
    uint64_t block_pos;
    bool emptying;
} writer_state;

static uint64_t rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Keys are key_prefix_len bytes of 'k' then the id big-endian. With a prefix longer than the
 * node prefix, every head ties and each search step dereferences entries that writers are
 * removing and retiring meanwhile. */
#define LONG_KEY_PREFIX 24
static size_t key_prefix_len;

static size_t encode_id(uint64_t id, uint8_t out[LONG_KEY_PREFIX + 9])
{
    memset(out, 'k', key_prefix_len);
    for (int b = 0; b < 8; b++)
        out[key_prefix_len + (size_t)b] = (uint8_t)(id >> (56 - 8 * b));
    return key_prefix_len + 8;
}

static uint64_t decode_id(const feox_entry *e)
{
    uint64_t id = 0;
    for (size_t b = 0; b < 8; b++)
        id = (id << 8) | e->key[key_prefix_len + b];
    return id;
}

static void fail(const char *what, uint64_t a, uint64_t b)
{
    if (!atomic_exchange(&failed, true))
        fprintf(stderr, "stress_ordered_index: FAIL: %s (%llu, %llu)\n", what,
                (unsigned long long)a, (unsigned long long)b);
    atomic_store(&stop, true);
}

static feox_entry *new_entry(uint64_t id)
{
    uint8_t key[LONG_KEY_PREFIX + 9];
    feox_entry *e = feox_entry_new(key, encode_id(id, key), id);
    if (!e)
        fail("out of memory", id, 0);
    return e;
}

static bool is_stable(uint64_t id)
{
    return id < HALF_IDS && id % STABLE_EVERY == 0;
}

/* Toggle id: remove it if present, insert it if not. */
static bool toggle(uint64_t id)
{
    feox_entry *e = present[id];
    if (e) {
        feox_ordered_index_remove(idx, e);
        present[id] = NULL;
        feox_entry_retire(e);
    } else {
        e = new_entry(id);
        if (!e)
            return false;
        if (feox_ordered_index_insert(idx, e) != FEOX_OK) {
            fail("insert failed", id, 0);
            return false;
        }
        present[id] = e;
    }
    atomic_fetch_add_explicit(&total_writes, 1, memory_order_relaxed);
    return true;
}

/* Insert a run of this writer's absent lower-half ids in ascending order with one
 * feox_ordered_index_insert_sorted (one descent per leaf, bounded by the fence seen on the way
 * down) while the other writers split and empty the same leaves; a third of the runs start in
 * the hot ids. */
static bool insert_run(writer_state *w)
{
    feox_entry *batch[MAX_SORTED_RUN];
    uint64_t ids[MAX_SORTED_RUN];
    size_t n = 0, want = 1 + rng_next(&w->rng) % MAX_SORTED_RUN;
    uint64_t span = rng_next(&w->rng) % 3 == 0 ? HOT_IDS : HALF_IDS;
    uint64_t id = rng_next(&w->rng) % (span / WRITERS) * WRITERS + (uint64_t)w->id;
    for (; id < HALF_IDS && n < want; id += WRITERS) {
        if (is_stable(id) || present[id])
            continue;
        batch[n] = new_entry(id);
        if (!batch[n])
            return false;
        ids[n++] = id;
    }
    size_t inserted = 0;
    if (n &&
        (feox_ordered_index_insert_sorted(idx, batch, n, &inserted) != FEOX_OK || inserted != n)) {
        fail("insert_sorted failed", n, inserted);
        return false;
    }
    for (size_t i = 0; i < n; i++)
        present[ids[i]] = batch[i];
    atomic_fetch_add_explicit(&total_writes, n, memory_order_relaxed);
    return true;
}

/* The next step of the fill-then-empty sweep over this writer's upper-half blocks. */
static uint64_t next_block_id(writer_state *w)
{
    if (w->block_pos == BLOCK_IDS) {
        w->block_pos = 0;
        w->emptying = !w->emptying;
        if (!w->emptying) {
            uint64_t blocks_per_writer = HALF_IDS / BLOCK_IDS / WRITERS;
            uint64_t b = rng_next(&w->rng) % blocks_per_writer * WRITERS + (uint64_t)w->id;
            w->block_start = HALF_IDS + b * BLOCK_IDS;
        }
    }
    return w->block_start + w->block_pos++;
}

/* Replace one of this writer's stable entries by a fresh one with the same key (half the time
 * in the hot leaves): a scan must still find the key, through one entry or the other. */
static bool replace_stable(writer_state *w)
{
    uint64_t span = rng_next(&w->rng) % 2 ? HOT_IDS : HALF_IDS;
    uint64_t period = (uint64_t)STABLE_EVERY * WRITERS; /* one stable id of each owner in it */
    uint64_t id = rng_next(&w->rng) % (span / period) * period +
                  STABLE_EVERY * (uint64_t)(2 * w->id % WRITERS); /* id % WRITERS == w->id */
    feox_entry *old = present[id], *fresh = new_entry(id);
    if (!fresh)
        return false;
    if (!feox_ordered_index_replace(idx, old, fresh)) {
        fail("replace did not find the entry", id, 0);
        return false;
    }
    present[id] = fresh;
    feox_entry_retire(old);
    atomic_fetch_add_explicit(&total_writes, 1, memory_order_relaxed);
    return true;
}

static void *writer_main(void *arg)
{
    writer_state *w = arg;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        uint64_t id;
        if (rng_next(&w->rng) % 6 == 0) {
            if (!replace_stable(w))
                break;
            continue;
        }
        uint64_t dice = rng_next(&w->rng) % 9;
        if (dice == 8) {
            if (!insert_run(w))
                break;
            continue;
        }
        if (dice < 4) {
            /* A quarter of the toggles hit a few hot leaves, so writers collide on locks. */
            uint64_t span = dice == 0 ? HOT_IDS : HALF_IDS;
            id = rng_next(&w->rng) % (span / WRITERS) * WRITERS + (uint64_t)w->id;
            if (is_stable(id))
                continue;
        } else {
            id = next_block_id(w);
            if ((present[id] != NULL) != w->emptying)
                continue; /* filling: already there; emptying: already gone */
        }
        if (!toggle(id))
            break;
    }
    return NULL;
}

/* First id at or after `from` that is stable, in the given direction (TOTAL_IDS / UINT64_MAX =
 * none). */
static uint64_t next_stable_up(uint64_t from)
{
    uint64_t s = (from + STABLE_EVERY - 1) / STABLE_EVERY * STABLE_EVERY;
    return s < HALF_IDS ? s : UINT64_MAX;
}
static uint64_t next_stable_down(uint64_t from)
{
    if (from >= HALF_IDS)
        from = HALF_IDS - 1;
    return from / STABLE_EVERY * STABLE_EVERY;
}

static void check_scan(feox_scan_from mode, uint64_t bound_id, bool bound_plus, feox_entry **out,
                       size_t n, size_t max)
{
    bool ascending = mode == FEOX_SCAN_FIRST || mode == FEOX_SCAN_GE || mode == FEOX_SCAN_GT;
    /* The bound in id space: the first qualifying id going up (or down). A 9-byte bound id‖0 sits
     * strictly between id and id + 1. */
    uint64_t expect; /* next stable id the scan must return, UINT64_MAX = none */
    if (mode == FEOX_SCAN_FIRST)
        expect = next_stable_up(0);
    else if (mode == FEOX_SCAN_LAST)
        expect = next_stable_down(TOTAL_IDS - 1);
    else if (mode == FEOX_SCAN_GE)
        expect = next_stable_up(bound_plus ? bound_id + 1 : bound_id);
    else if (mode == FEOX_SCAN_GT)
        expect = next_stable_up(bound_id + 1);
    else if (mode == FEOX_SCAN_LE)
        expect = next_stable_down(bound_id);
    else /* LT */
        expect = bound_plus      ? next_stable_down(bound_id)
                 : bound_id == 0 ? UINT64_MAX
                                 : next_stable_down(bound_id - 1);
    uint64_t prev = 0;
    for (size_t i = 0; i < n; i++) {
        if (out[i]->key_len != key_prefix_len + 8)
            fail("returned key of the wrong length", out[i]->key_len, i);
        uint64_t id = decode_id(out[i]);
        if (id >= TOTAL_IDS)
            fail("returned an id never inserted", id, i);
        if (i > 0 && (ascending ? id <= prev : id >= prev))
            fail("scan out of order or duplicate", prev, id);
        if (mode == FEOX_SCAN_GE && (bound_plus ? id <= bound_id : id < bound_id))
            fail("GE returned a key below the bound", id, bound_id);
        if (mode == FEOX_SCAN_GT && id <= bound_id)
            fail("GT returned a key at or below the bound", id, bound_id);
        if (mode == FEOX_SCAN_LE && id > bound_id)
            fail("LE returned a key above the bound", id, bound_id);
        if (mode == FEOX_SCAN_LT && (bound_plus ? id > bound_id : id >= bound_id))
            fail("LT returned a key at or above the bound", id, bound_id);
        if (expect != UINT64_MAX && (ascending ? id > expect : id < expect))
            fail("a stable key was skipped", expect, id);
        if (id == expect)
            expect = ascending ? next_stable_up(id + 1)
                               : (id >= STABLE_EVERY ? id - STABLE_EVERY : UINT64_MAX);
        prev = id;
    }
    if (n < max && expect != UINT64_MAX)
        fail("scan ended before a stable key", expect, n);
}

static void *reader_main(void *arg)
{
    uint64_t rng = (uint64_t)(uintptr_t)arg * 7919 + 1;
    feox_entry *out[MAX_BATCH];
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        feox_scan_from mode = (feox_scan_from)(rng_next(&rng) % 6);
        uint64_t bound_id = rng_next(&rng) % TOTAL_IDS;
        bool bound_plus = rng_next(&rng) % 4 == 0;
        uint8_t bound[LONG_KEY_PREFIX + 9];
        size_t bound_len = encode_id(bound_id, bound);
        bound[bound_len] = 0;
        size_t max = 1 + rng_next(&rng) % MAX_BATCH;
        feox_epoch_enter();
        size_t n = feox_ordered_index_scan(idx, mode, bound, bound_len + bound_plus, out, max);
        check_scan(mode, bound_id, bound_plus, out, n, max);
        feox_epoch_exit();
        atomic_fetch_add_explicit(&total_scans, 1, memory_order_relaxed);
    }
    return NULL;
}

static void *reclaimer_main(void *arg)
{
    (void)arg;
    struct timespec pause = {0, 1000000};
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        feox_epoch_reclaim();
        nanosleep(&pause, NULL);
    }
    return NULL;
}

/* One round on a fresh index: setup, threads for `seconds`, then the quiescent checks. */
static int run_round(double seconds)
{
    atomic_store(&stop, false);
    if (feox_ordered_index_create(&idx) != FEOX_OK)
        return 1;
    present = calloc(TOTAL_IDS, sizeof *present);
    if (!present)
        return 1;
    writer_state writers[WRITERS];
    for (int w = 0; w < WRITERS; w++) /* block_pos = BLOCK_IDS: pick a block on the first step */
        writers[w] = (writer_state){w, (uint64_t)w * 104729 + 17, 0, BLOCK_IDS, true};
    /* Stable keys first, in a scrambled order, before any reader starts. */
    for (uint64_t i = 0; i < TOTAL_IDS; i++) {
        uint64_t id = (i * 7919) % TOTAL_IDS;
        if (!is_stable(id))
            continue;
        feox_entry *e = new_entry(id);
        if (!e || feox_ordered_index_insert(idx, e) != FEOX_OK)
            return 1;
        present[id] = e;
    }

    pthread_t wt[WRITERS], rt[READERS], reclaimer;
    for (int w = 0; w < WRITERS; w++)
        pthread_create(&wt[w], NULL, writer_main, &writers[w]);
    for (int r = 0; r < READERS; r++)
        pthread_create(&rt[r], NULL, reader_main, (void *)(uintptr_t)(r + 1));
    pthread_create(&reclaimer, NULL, reclaimer_main, NULL);

    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    do {
        struct timespec tick = {0, 50000000};
        nanosleep(&tick, NULL);
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while (!atomic_load(&stop) &&
             (double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) / 1e9 <
                 seconds);
    atomic_store(&stop, true);
    for (int w = 0; w < WRITERS; w++)
        pthread_join(wt[w], NULL);
    for (int r = 0; r < READERS; r++)
        pthread_join(rt[r], NULL);
    pthread_join(reclaimer, NULL);

    /* Quiescent: the structure verifies and holds exactly what the writers think it holds. */
    char detail[256] = "";
    if (feox_ordered_index_verify(idx, detail, sizeof detail))
        fail(detail, 0, 0);
    uint64_t live = 0;
    for (uint64_t id = 0; id < TOTAL_IDS; id++)
        live += present[id] != NULL;
    if (feox_ordered_index_count(idx) != live)
        fail("count differs from the writers' view", feox_ordered_index_count(idx), live);
    feox_entry **all = malloc((live + 1) * sizeof *all);
    feox_epoch_enter();
    size_t n = feox_ordered_index_scan(idx, FEOX_SCAN_FIRST, NULL, 0, all, live + 1);
    feox_epoch_exit();
    if (n != live)
        fail("full scan length differs", n, live);
    for (size_t i = 0; i < n && i < live; i++) {
        uint64_t id = decode_id(all[i]);
        if (id >= TOTAL_IDS || present[id] != all[i])
            fail("full scan returned an entry the writer does not hold", id, i);
    }
    free(all);

    for (uint64_t id = 0; id < TOTAL_IDS; id++) {
        if (present[id]) {
            feox_ordered_index_remove(idx, present[id]);
            feox_entry_retire(present[id]);
        }
    }
    free(present);
    if (feox_ordered_index_count(idx) != 0 || feox_ordered_index_verify(idx, detail, sizeof detail))
        fail("index not empty after removing everything", feox_ordered_index_count(idx), 0);
    feox_ordered_index_destroy(idx);
    feox_epoch_reclaim();
    return 0;
}

int main(int argc, char **argv)
{
    double seconds = 10;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            seconds = 2;
    }
    /* Half the time with 8-byte keys (heads decide), half with long shared prefixes (ties). */
    key_prefix_len = 0;
    if (run_round(seconds / 2))
        return 1;
    key_prefix_len = LONG_KEY_PREFIX;
    if (!atomic_load(&failed) && run_round(seconds / 2))
        return 1;
    printf("stress_ordered_index: %s: %llu scans, %llu writes in %.0f s\n",
           atomic_load(&failed) ? "FAILED" : "ok", (unsigned long long)atomic_load(&total_scans),
           (unsigned long long)atomic_load(&total_writes), seconds);
    return atomic_load(&failed) ? 1 : 0;
}
