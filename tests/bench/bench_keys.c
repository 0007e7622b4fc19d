/*
 * bench_keys.c — the data every store sees: 16-byte keys computed from an index (no key array, so
 * no extra cache miss per op), 100-byte deterministic values, a fast RNG and YCSB's Zipfian
 * generator (theta 0.99, scrambled ranks so hot keys are spread over the key space).
 */
#include "bench.h"

#include <math.h>
#include <string.h>
#include <time.h>

uint64_t bench_splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static void store_be64(uint8_t *out, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        out[i] = (uint8_t)v;
        v >>= 8;
    }
}

void bench_key(uint64_t i, uint8_t out[BENCH_KEY_SIZE])
{
    store_be64(out, bench_splitmix64(i ^ bench_cfg.seed));
    store_be64(out + 8, i);
}

/* Indexes >= 2^62 are never loaded, so these keys miss in every store. */
void bench_miss_key(uint64_t i, uint8_t out[BENCH_KEY_SIZE])
{
    bench_key(i | (1ull << 62), out);
}

void bench_value(uint64_t i, uint64_t version, uint8_t out[BENCH_VALUE_SIZE])
{
    uint64_t x = bench_splitmix64(i * 31 + version);
    for (size_t off = 0; off < BENCH_VALUE_SIZE; off += 8) {
        x = bench_splitmix64(x);
        size_t n = BENCH_VALUE_SIZE - off < 8 ? BENCH_VALUE_SIZE - off : 8;
        memcpy(out + off, &x, n);
    }
}

void bench_rng_seed(bench_rng *r, uint64_t seed)
{
    r->state = bench_splitmix64(seed);
}

uint64_t bench_rng_next(bench_rng *r)
{
    r->state += 0x9e3779b97f4a7c15ull;
    uint64_t z = r->state;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Lemire's multiply-shift: unbiased enough for benchmarking, no division. */
uint64_t bench_rng_below(bench_rng *r, uint64_t bound)
{
    return (uint64_t)(((unsigned __int128)bench_rng_next(r) * bound) >> 64);
}

static double zeta(uint64_t n, double theta)
{
    double sum = 0;
    for (uint64_t i = 1; i <= n; i++)
        sum += 1.0 / pow((double)i, theta);
    return sum;
}

void bench_zipf_init(bench_zipf *z, uint64_t items, double theta)
{
    z->items = items;
    z->theta = theta;
    z->zeta2 = zeta(2, theta);
    z->zetan = zeta(items, theta);
    z->alpha = 1.0 / (1.0 - theta);
    z->eta = (1.0 - pow(2.0 / (double)items, 1.0 - theta)) / (1.0 - z->zeta2 / z->zetan);
}

uint64_t bench_zipf_next(const bench_zipf *z, bench_rng *r)
{
    double u = (double)(bench_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
    double uz = u * z->zetan;
    uint64_t rank;
    if (uz < 1.0)
        rank = 0;
    else if (uz < 1.0 + pow(0.5, z->theta))
        rank = 1;
    else
        rank = (uint64_t)((double)z->items * pow(z->eta * u - z->eta + 1.0, z->alpha));
    if (rank >= z->items)
        rank = z->items - 1;
    /* Scramble: the hottest ranks land on unrelated indexes (YCSB's ScrambledZipfian). */
    return bench_splitmix64(rank ^ 0x5ca1ab1eull) % z->items;
}

double bench_now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
