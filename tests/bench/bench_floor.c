/*
 * bench_floor.c — the two floors a GET is judged against, recorded as extra columns of the
 * get_hit / get_miss workloads:
 *   mem_chase   one dependent load per step over a random cyclic permutation (Sattolo) of 64-byte
 *               lines spanning the working set of the store (N x 192 B), plain 4 KiB pages: the
 *               price of one cache miss here, so feox_ns / mem_chase_ns = misses per GET.
 *   hash_probe  a bare ck_hs (SPMC, presized, XXH3 with a seed) over individually allocated
 *               records of 16 B key + 100 B value, probed inside a ck_epoch section with the
 *               value memcpy'd out: the least any hash-indexed store on CK can cost. The copy
 *               is kept by an empty asm that "reads" the buffer (without it the compiler drops
 *               it: the buffer is never read); `objdump -d build/bench/feox_bench` shows the
 *               100-byte copy in time_hash_probe.
 */
#include "bench.h"

#include <ck_epoch.h>
#include <ck_hs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

typedef struct floor_record {
    uint8_t key[BENCH_KEY_SIZE]; /* first: the compare callback reads 16 bytes at offset 0 */
    uint8_t value[BENCH_VALUE_SIZE];
} floor_record;

static uint64_t hash_seed;

static unsigned long hash_key(const void *key, unsigned long seed)
{
    (void)seed;
    return (unsigned long)XXH3_64bits_withSeed(key, BENCH_KEY_SIZE, hash_seed);
}

static bool keys_equal(const void *stored, const void *key)
{
    return memcmp(stored, key, BENCH_KEY_SIZE) == 0;
}

static void *hs_malloc(size_t size)
{
    return malloc(size);
}

static void *hs_realloc(void *ptr, size_t old_size, size_t new_size, bool defer)
{
    (void)old_size;
    (void)defer;
    return realloc(ptr, new_size);
}

static void hs_free(void *ptr, size_t size, bool defer)
{
    (void)size;
    (void)defer;
    free(ptr);
}

static struct ck_malloc hs_allocator = {hs_malloc, hs_realloc, hs_free};

static double time_hash_probe(ck_hs_t *hs, ck_epoch_record_t *reader, bool hits, uint64_t seed)
{
    bench_rng rng;
    bench_rng_seed(&rng, seed);
    uint8_t key[BENCH_KEY_SIZE], out[BENCH_VALUE_SIZE];
    uint64_t ops = bench_cfg.read_ops, found = 0;
    for (int pass = 0; pass < 2; pass++) { /* warm-up, then timed */
        uint64_t count = pass == 0 ? ops / 20 + 1 : ops;
        double t0 = bench_now_sec();
        for (uint64_t i = 0; i < count; i++) {
            if (hits)
                bench_key(bench_rng_below(&rng, bench_cfg.n), key);
            else
                bench_miss_key(bench_rng_next(&rng) >> 8, key);
            ck_epoch_section_t section;
            ck_epoch_begin(reader, &section);
            const floor_record *r = ck_hs_get(hs, hash_key(key, 0), key);
            if (r) {
                memcpy(out, r->value, sizeof out);
                __asm__ volatile("" : : "r"(out) : "memory"); /* the copy must happen */
                found++;
            }
            ck_epoch_end(reader, &section);
        }
        if (pass == 1) {
            if (hits ? found < count : found != 0)
                fprintf(stderr, "warning: hash_probe: unexpected hit/miss count\n");
            return (bench_now_sec() - t0) * 1e9 / (double)count;
        }
        found = 0;
    }
    return 0;
}

static void run_hash_probe(int rep)
{
    hash_seed = bench_splitmix64(bench_cfg.seed + 99);
    ck_hs_t hs;
    if (!ck_hs_init(&hs, CK_HS_MODE_SPMC | CK_HS_MODE_OBJECT, hash_key, keys_equal, &hs_allocator,
                    (unsigned long)bench_cfg.n, 0))
        bench_die("ck_hs_init", "failed");
    ck_epoch_t epoch;
    ck_epoch_record_t reader;
    ck_epoch_init(&epoch);
    ck_epoch_register(&epoch, &reader, NULL);

    floor_record **records = malloc(sizeof *records * bench_cfg.n);
    for (uint64_t i = 0; i < bench_cfg.n; i++) {
        records[i] = malloc(sizeof **records);
        bench_key(i, records[i]->key);
        bench_value(i, 0, records[i]->value);
        ck_hs_put(&hs, hash_key(records[i]->key, 0), records[i]);
    }
    bench_record("get_hit", "hash_probe", time_hash_probe(&hs, &reader, true, 500 + (uint64_t)rep));
    bench_record("get_miss", "hash_probe",
                 time_hash_probe(&hs, &reader, false, 600 + (uint64_t)rep));
    ck_epoch_unregister(&reader);
    ck_hs_destroy(&hs);
    for (uint64_t i = 0; i < bench_cfg.n; i++)
        free(records[i]);
    free(records);
}

typedef struct chase_line {
    struct chase_line *next;
    char pad[64 - sizeof(void *)];
} chase_line;

static void run_pointer_chase(int rep)
{
    size_t bytes = (size_t)bench_cfg.n * 192;
    size_t lines = bytes / sizeof(chase_line);
    chase_line *arena = aligned_alloc(64, lines * sizeof(chase_line));
    if (!arena)
        bench_die("pointer chase", "out of memory");
    /* Sattolo's algorithm: one random cycle through every line. */
    uint64_t *order = malloc(sizeof *order * lines);
    for (size_t i = 0; i < lines; i++)
        order[i] = i;
    bench_rng rng;
    bench_rng_seed(&rng, 700 + (uint64_t)rep);
    for (size_t i = lines - 1; i > 0; i--) {
        size_t j = bench_rng_below(&rng, i);
        uint64_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (size_t i = 0; i < lines; i++)
        arena[order[i]].next = &arena[order[(i + 1) % lines]];
    free(order);

    chase_line *p = &arena[0];
    uint64_t steps = bench_cfg.read_ops;
    for (uint64_t i = 0; i < steps / 20; i++)
        p = p->next;
    double t0 = bench_now_sec();
    for (uint64_t i = 0; i < steps; i++)
        p = p->next;
    double ns = (bench_now_sec() - t0) * 1e9 / (double)steps;
    if (p == NULL) /* keeps the chase from being optimized away */
        fprintf(stderr, "impossible\n");
    bench_record("get_hit", "mem_chase", ns);
    free(arena);
}

void bench_run_floor_workloads(int rep)
{
    run_hash_probe(rep);
    run_pointer_chase(rep);
    char note[160];
    snprintf(note, sizeof note,
             "hash_probe = bare ck_hs+ck_epoch; mem_chase = 1 dependent miss over %.0f MiB; "
             "ratio_mem_chase = misses per GET",
             (double)bench_cfg.n * 192 / (1 << 20));
    bench_note("get_hit", note);
}
