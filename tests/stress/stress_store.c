/*
 * stress_store.c — concurrency stress of the store through engine/feox.h (perf-reliability.md
 * §D.6 R2, R4, R5), each scenario with 2 and then 8 threads (8 oversubscribes this 2-core VM):
 *
 *   mixed     random inserts/gets/deletes/incr/CAS/ranges/cursors on shared keys; values carry
 *             their key id so a torn or misdirected value is caught; at the end len == records
 *             found by a full scan == keys found by point gets, and feox_check passes.
 *   counters  get+CAS retry loops and feox_atomic_increment on a few shared counters: the final
 *             values equal exactly the number (sum) of successful operations.
 *   scans     writers insert/delete odd keys and overwrite even ones while readers scan (range
 *             query, cursor ascending and descending): keys strictly ordered, no duplicates, and
 *             every even key (never deleted) present in every scan.
 *   growth    the hash index starts at 16 slots; one thread inserts many keys while readers get
 *             keys already published as inserted: never a miss, never a wrong value.
 *   autots    all threads plain-insert / increment / CAS the same key with automatic
 *             timestamps: never FEOX_ERR_OLDER_TIMESTAMP, and the counter sums exactly.
 *   budget    writers against a small max_memory: usage never above it, OUT_OF_MEMORY the only
 *             refusal (and counted), accounting back to the empty store's after deleting all.
 *   sweeper   writers give keys expiries 0-2 ms ahead while the sweeper runs every 1 ms, then
 *             write permanent values: the sweeper never removes a newer, permanent version.
 *   hot       one writer overwrites, deletes and re-inserts 8 keys while readers copy them with
 *             feox_get_into (full and short buffers) and feox_get_ref: one whole version of the
 *             right key every time.
 *   loaded    a store file's keys (each loaded in one block with its entry, from 8192 keys on in
 *             a slab) overwritten once each by half the threads, some under a value handle,
 *             while the others scan in both directions: every key exactly once, in order, with
 *             a whole value, and the handles keep their bytes; over several reopens. Then
 *             one thread closes the store while the others release handles on every key.
 *   snapshot  a store file closed cleanly (an index snapshot) is opened again and again; every
 *             thread at once reads random keys (get, get_into, get_ref, contains, get_ttl, half
 *             of them never written) while the load runs on its thread and ends: each answer
 *             is the key's whole value or its absence, across the switch from the snapshot to
 *             the indexes; the first thread to finish writes (waits for the load) a new value.
 *   reaped    every thread fills a memory store of its own past the size whose memory a close
 *             gives back on the reaper thread (engine/store/store_reaper.c), keeps handles on
 *             some keys, closes it and reads and releases the handles while the reaper frees
 *             the rest (and the other threads' stores); then feox_close_wait.
 *
 * Usage: stress_store [--quick]. --quick (~2-5 s; used under ASan and TSan) runs fewer ops.
 * Exit status 0 = every check held; failures are printed (the first few) and counted.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "feox.h"
#include "feox_test_support.h"

static bool quick;
static atomic_int failures;

#define REQUIRE(cond, ...)                                                                         \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            if (atomic_fetch_add(&failures, 1) < 20) {                                             \
                fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                               \
                fprintf(stderr, __VA_ARGS__);                                                      \
                fputc('\n', stderr);                                                               \
            }                                                                                      \
        }                                                                                          \
    } while (0)

#define REQUIRE_OK(expr)                                                                           \
    do {                                                                                           \
        feox_err err_ = (expr);                                                                    \
        REQUIRE(err_ == FEOX_OK, "%s -> %s (%s)", #expr, feox_strerror(err_),                      \
                feox_error_detail());                                                              \
    } while (0)

static feox_store *open_store(uint64_t initial_capacity)
{
    feox_config cfg;
    feox_config_init(&cfg); /* real clock, sweeper on */
    cfg.initial_capacity = initial_capacity;
    return ftest_open(&cfg);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct worker {
    pthread_t thread;
    int id, nthreads;
    feox_store *store;
    ftest_rng rng;
    void *shared;
    void *(*fn)(void *);
    pthread_barrier_t *start;
} worker;

/* Every thread starts its work at the same moment, so they really overlap. */
static void *start_together(void *arg)
{
    worker *w = arg;
    pthread_barrier_wait(w->start);
    return w->fn(w);
}

/* Runs fn on n threads sharing `shared`, and waits for all of them. */
static void run_threads(int n, feox_store *s, void *shared, void *(*fn)(void *))
{
    worker *w = calloc((size_t)n, sizeof(*w));
    pthread_barrier_t start;
    if (!w || pthread_barrier_init(&start, NULL, (unsigned)n) != 0)
        abort();
    for (int i = 0; i < n; i++) {
        w[i].id = i;
        w[i].nthreads = n;
        w[i].store = s;
        w[i].shared = shared;
        w[i].fn = fn;
        w[i].start = &start;
        ftest_rng_seed(&w[i].rng, 0x57e55 + (uint64_t)i * 7919 + (uint64_t)n);
        if (pthread_create(&w[i].thread, NULL, start_together, &w[i]) != 0)
            abort();
    }
    for (int i = 0; i < n; i++)
        pthread_join(w[i].thread, NULL);
    pthread_barrier_destroy(&start);
    free(w);
}

/* ---- mixed ------------------------------------------------------------------------------- */

#define MIXED_KEYS 1000

/* Key "m<id>" as text. */
static size_t mixed_key(char *out, uint32_t id)
{
    return (size_t)sprintf(out, "m%04u", id);
}

/* A self-describing value: 4-byte key id, then bytes derived from (id, salt); 9..40 bytes long
 * (never 8, so it cannot be mistaken for a counter). */
static size_t mixed_value(uint8_t *out, uint32_t id, uint64_t salt)
{
    size_t len = 9 + salt % 32;
    memcpy(out, &id, 4);
    out[4] = (uint8_t)salt;
    for (size_t i = 5; i < len; i++)
        out[i] = (uint8_t)(out[4] * 31u + i * 7u + id);
    return len;
}

/* True if value is a valid value of key id: a self-describing one, or an 8-byte counter. */
static bool mixed_value_ok(const void *value, size_t len, uint32_t id)
{
    if (len == 8)
        return true;
    if (len < 9 || len > 40)
        return false;
    const uint8_t *v = value;
    uint32_t got;
    memcpy(&got, v, 4);
    if (got != id || len != 9 + (size_t)v[4] % 32)
        return false;
    for (size_t i = 5; i < len; i++)
        if (v[i] != (uint8_t)(v[4] * 31u + i * 7u + id))
            return false;
    return true;
}

static uint32_t mixed_id(const void *key, size_t len)
{
    char buf[32];
    if (len < 2 || len > 10)
        return UINT32_MAX;
    memcpy(buf, key, len);
    buf[len] = 0;
    return (uint32_t)strtoul(buf + 1, NULL, 10);
}

typedef struct scan_state {
    bool have_prev;
    uint8_t prev[64];
    size_t prev_len;
    size_t count;
    bool check_values;
    size_t evens; /* "scans": even keys seen */
} scan_state;

static int key_cmp(const void *a, size_t al, const void *b, size_t bl)
{
    size_t n = al < bl ? al : bl;
    int c = memcmp(a, b, n);
    if (c)
        return c;
    return al < bl ? -1 : al > bl;
}

/* Checks order (ascending, or descending if desc) and records the key. */
static void scan_see(scan_state *st, const void *key, size_t key_len, bool desc)
{
    if (st->have_prev) {
        int c = key_cmp(st->prev, st->prev_len, key, key_len);
        REQUIRE(desc ? c > 0 : c < 0, "scan not strictly %s: %.*s then %.*s",
                desc ? "descending" : "ascending", (int)st->prev_len, (const char *)st->prev,
                (int)key_len, (const char *)key);
    }
    if (key_len <= sizeof(st->prev)) {
        memcpy(st->prev, key, key_len);
        st->prev_len = key_len;
        st->have_prev = true;
    }
    st->count++;
}

static int mixed_scan_cb(void *ctx, const void *key, size_t key_len, const void *value,
                         size_t value_len, const feox_record_info *info)
{
    scan_state *st = ctx;
    scan_see(st, key, key_len, false);
    REQUIRE(info->value_len == value_len, "info.value_len mismatch");
    uint32_t id = mixed_id(key, key_len);
    REQUIRE(mixed_value_ok(value, value_len, id), "range: bad value for %.*s (%zu bytes)",
            (int)key_len, (const char *)key, value_len);
    return 0;
}

static void *mixed_worker(void *arg)
{
    worker *w = arg;
    feox_store *s = w->store;
    const int ops = quick ? 2500 : 150000;
    char key[32];
    uint8_t val[64];
    for (int i = 0; i < ops; i++) {
        uint32_t id = (uint32_t)ftest_rng_below(&w->rng, MIXED_KEYS);
        size_t kl = mixed_key(key, id);
        uint64_t r = ftest_rng_below(&w->rng, 100);
        if (r < 30) {
            size_t vl = mixed_value(val, id, ftest_rng_next(&w->rng));
            REQUIRE_OK(feox_insert(s, key, kl, val, vl, NULL, NULL));
        } else if (r < 55) {
            void *v = NULL;
            size_t n = 0;
            feox_err err = feox_get(s, key, kl, &v, &n, NULL);
            REQUIRE(err == FEOX_OK || err == FEOX_ERR_KEY_NOT_FOUND, "get: %s", feox_strerror(err));
            if (err == FEOX_OK) {
                REQUIRE(mixed_value_ok(v, n, id), "get %s: bad value (%zu bytes)", key, n);
                feox_free(v);
            }
        } else if (r < 62) {
            feox_value *ref = NULL;
            feox_err err = feox_get_ref(s, key, kl, &ref);
            REQUIRE(err == FEOX_OK || err == FEOX_ERR_KEY_NOT_FOUND, "get_ref: %s",
                    feox_strerror(err));
            if (err == FEOX_OK) {
                /* The handle's bytes stay valid while others overwrite and delete the key. */
                REQUIRE(mixed_value_ok(feox_value_data(ref), feox_value_size(ref), id),
                        "get_ref %s: bad value", key);
                feox_value_release(ref);
            }
        } else if (r < 75) {
            feox_err err = feox_delete(s, key, kl, NULL);
            REQUIRE(err == FEOX_OK || err == FEOX_ERR_KEY_NOT_FOUND, "delete: %s",
                    feox_strerror(err));
        } else if (r < 82) {
            feox_err err = feox_atomic_increment(s, key, kl, 1, NULL, NULL);
            REQUIRE(err == FEOX_OK || err == FEOX_ERR_INVALID_OPERATION, "incr: %s",
                    feox_strerror(err));
        } else if (r < 90) {
            void *v = NULL;
            size_t n = 0;
            if (feox_get(s, key, kl, &v, &n, NULL) == FEOX_OK) {
                size_t vl = mixed_value(val, id, ftest_rng_next(&w->rng));
                bool swapped = false;
                REQUIRE_OK(feox_compare_and_swap(s, key, kl, v, n, val, vl, NULL, &swapped));
                feox_free(v);
            }
        } else if (r < 96) {
            char end[32];
            uint32_t id2 = id + (uint32_t)ftest_rng_below(&w->rng, 50);
            size_t el = mixed_key(end, id2);
            scan_state st = {0};
            size_t visited = 0;
            REQUIRE_OK(
                feox_range_query(s, key, kl, end, el, SIZE_MAX, mixed_scan_cb, &st, &visited));
            REQUIRE(visited == st.count, "visited %zu != callbacks %zu", visited, st.count);
        } else {
            feox_cursor *c = NULL;
            REQUIRE_OK(feox_cursor_open(s, &c));
            if (!c)
                continue;
            bool desc = r % 2;
            REQUIRE_OK(feox_cursor_seek(c, desc ? FEOX_SEEK_LE : FEOX_SEEK_GE, key, kl));
            scan_state st = {0};
            for (int k = 0; k < 30 && feox_cursor_valid(c); k++) {
                size_t ckl = 0, cvl = 0;
                const void *ck = feox_cursor_key(c, &ckl);
                const void *cv = feox_cursor_value(c, &cvl);
                scan_see(&st, ck, ckl, desc);
                REQUIRE(mixed_value_ok(cv, cvl, mixed_id(ck, ckl)), "cursor: bad value");
                REQUIRE_OK(desc ? feox_cursor_prev(c) : feox_cursor_next(c));
            }
            feox_cursor_close(c);
        }
    }
    return NULL;
}

static int count_cb(void *ctx, const void *key, size_t key_len, const void *value, size_t value_len,
                    const feox_record_info *info)
{
    (void)value, (void)value_len, (void)info;
    scan_see(ctx, key, key_len, false);
    return 0;
}

static void scenario_mixed(int nthreads)
{
    feox_store *s = open_store(0);
    run_threads(nthreads, s, NULL, mixed_worker);
    /* Quiescent: three views of the content must agree. */
    scan_state st = {0};
    REQUIRE_OK(feox_range_query(s, "m", 1, "m~", 2, SIZE_MAX, count_cb, &st, NULL));
    size_t by_get = 0;
    char key[32];
    for (uint32_t id = 0; id < MIXED_KEYS; id++) {
        size_t kl = mixed_key(key, id);
        by_get += feox_contains(s, key, kl);
    }
    size_t by_cursor = 0;
    feox_cursor *c = NULL;
    REQUIRE_OK(feox_cursor_open(s, &c));
    REQUIRE_OK(feox_cursor_seek(c, FEOX_SEEK_FIRST, NULL, 0));
    for (; feox_cursor_valid(c); by_cursor++)
        REQUIRE_OK(feox_cursor_next(c));
    feox_cursor_close(c);
    uint64_t len = feox_len(s, 0);
    REQUIRE(len == st.count && len == by_get && len == by_cursor,
            "mixed/%d: len %llu, range %zu, gets %zu, cursor %zu", nthreads,
            (unsigned long long)len, st.count, by_get, by_cursor);
    REQUIRE_OK(feox_check(s));
    feox_close(s);
}

/* ---- counters ------------------------------------------------------------------------------ */

#define N_COUNTERS 4

typedef struct counters_shared {
    atomic_llong cas_successes[N_COUNTERS];
    atomic_llong incr_sum[N_COUNTERS];
} counters_shared;

static void *counters_worker(void *arg)
{
    worker *w = arg;
    counters_shared *sh = w->shared;
    feox_store *s = w->store;
    const int n = quick ? 2000 : 100000;
    char key[32];
    for (int i = 0; i < n; i++) {
        int j = (int)ftest_rng_below(&w->rng, N_COUNTERS);
        /* get + CAS retry loop. */
        size_t kl = (size_t)sprintf(key, "cas%d", j);
        for (int attempt = 0;; attempt++) {
            void *v = NULL;
            size_t len = 0;
            feox_err err = feox_get(s, key, kl, &v, &len, NULL);
            REQUIRE(err == FEOX_OK && len == 8, "counter get: %s", feox_strerror(err));
            if (err != FEOX_OK)
                break;
            uint8_t next[8];
            ftest_put_i64(next, ftest_get_i64(v) + 1);
            bool swapped = false;
            err = feox_compare_and_swap(s, key, kl, v, 8, next, 8, NULL, &swapped);
            feox_free(v);
            REQUIRE(err == FEOX_OK, "cas: %s", feox_strerror(err));
            if (err != FEOX_OK)
                break;
            if (swapped) {
                atomic_fetch_add(&sh->cas_successes[j], 1);
                break;
            }
        }
        /* feox_atomic_increment. */
        kl = (size_t)sprintf(key, "inc%d", j);
        int64_t delta = (int64_t)ftest_rng_below(&w->rng, 11) - 3;
        int64_t result = 0;
        feox_err err = feox_atomic_increment(s, key, kl, delta, NULL, &result);
        REQUIRE(err == FEOX_OK, "incr: %s", feox_strerror(err));
        if (err == FEOX_OK)
            atomic_fetch_add(&sh->incr_sum[j], delta);
    }
    return NULL;
}

static void scenario_counters(int nthreads)
{
    feox_store *s = open_store(0);
    counters_shared sh;
    char key[32];
    uint8_t zero[8];
    ftest_put_i64(zero, 0);
    for (int j = 0; j < N_COUNTERS; j++) {
        atomic_init(&sh.cas_successes[j], 0);
        atomic_init(&sh.incr_sum[j], 0);
        size_t kl = (size_t)sprintf(key, "cas%d", j);
        REQUIRE_OK(feox_insert(s, key, kl, zero, 8, NULL, NULL));
    }
    feox_stats before;
    REQUIRE_OK(feox_get_stats(s, &before));
    run_threads(nthreads, s, &sh, counters_worker);
    long long total_cas = 0;
    for (int j = 0; j < N_COUNTERS; j++) {
        sprintf(key, "cas%d", j);
        long long got = ftest_read_counter(s, key);
        REQUIRE(got == atomic_load(&sh.cas_successes[j]), "counters/%d: %s = %lld, successes %lld",
                nthreads, key, got, (long long)atomic_load(&sh.cas_successes[j]));
        total_cas += got;
        sprintf(key, "inc%d", j);
        got = ftest_read_counter(s, key);
        REQUIRE(got == atomic_load(&sh.incr_sum[j]), "counters/%d: %s = %lld, sum %lld", nthreads,
                key, got, (long long)atomic_load(&sh.incr_sum[j]));
    }
    feox_stats after;
    REQUIRE_OK(feox_get_stats(s, &after));
    REQUIRE((long long)(after.cas_success - before.cas_success) == total_cas,
            "stats.cas_success grew by %llu, successes %lld",
            (unsigned long long)(after.cas_success - before.cas_success), total_cas);
    REQUIRE_OK(feox_check(s));
    feox_close(s);
}

/* ---- scans --------------------------------------------------------------------------------- */

typedef struct scans_shared {
    atomic_bool stop;
    atomic_int readers_left;
    int fixed; /* even keys 0, 2, .. 2*(fixed-1) are never deleted */
} scans_shared;

static size_t scan_key(char *out, uint32_t i)
{
    return (size_t)sprintf(out, "s%06u", i);
}

static int scans_cb(void *ctx, const void *key, size_t key_len, const void *value, size_t value_len,
                    const feox_record_info *info)
{
    (void)info;
    scan_state *st = ctx;
    scan_see(st, key, key_len, false);
    uint32_t i = mixed_id(key, key_len);
    st->evens += i % 2 == 0;
    REQUIRE(mixed_value_ok(value, value_len, i), "scan: bad value for %.*s", (int)key_len,
            (const char *)key);
    return 0;
}

static void *scans_worker(void *arg)
{
    worker *w = arg;
    scans_shared *sh = w->shared;
    feox_store *s = w->store;
    char key[32];
    uint8_t val[64];
    bool writer = w->id % 2 == 0;
    if (writer) {
        while (!atomic_load(&sh->stop)) {
            uint32_t i = (uint32_t)ftest_rng_below(&w->rng, 2 * (uint64_t)sh->fixed);
            size_t kl = scan_key(key, i);
            size_t vl = mixed_value(val, i, ftest_rng_next(&w->rng));
            if (i % 2 == 0 || ftest_rng_below(&w->rng, 2)) {
                REQUIRE_OK(feox_insert(s, key, kl, val, vl, NULL, NULL));
            } else {
                feox_err err = feox_delete(s, key, kl, NULL);
                REQUIRE(err == FEOX_OK || err == FEOX_ERR_KEY_NOT_FOUND, "delete: %s",
                        feox_strerror(err));
            }
        }
        return NULL;
    }
    const int scans = quick ? 12 : 120;
    for (int n = 0; n < scans; n++) {
        scan_state st = {0};
        switch (n % 3) {
        case 0: {
            size_t visited = 0;
            REQUIRE_OK(feox_range_query(s, "s", 1, "s~", 2, SIZE_MAX, scans_cb, &st, &visited));
            REQUIRE(visited == st.count, "visited %zu != %zu", visited, st.count);
            break;
        }
        default: {
            bool desc = n % 3 == 2;
            feox_cursor *c = NULL;
            REQUIRE_OK(feox_cursor_open(s, &c));
            if (!c)
                break;
            if (desc)
                REQUIRE_OK(feox_cursor_seek(c, FEOX_SEEK_LE, "s~", 2));
            else
                REQUIRE_OK(feox_cursor_seek(c, FEOX_SEEK_GE, "s", 1));
            while (feox_cursor_valid(c)) {
                size_t kl = 0, vl = 0;
                const void *k = feox_cursor_key(c, &kl);
                const void *v = feox_cursor_value(c, &vl);
                scan_see(&st, k, kl, desc);
                uint32_t i = mixed_id(k, kl);
                st.evens += i % 2 == 0;
                REQUIRE(mixed_value_ok(v, vl, i), "cursor: bad value for %.*s", (int)kl,
                        (const char *)k);
                REQUIRE_OK(desc ? feox_cursor_prev(c) : feox_cursor_next(c));
            }
            feox_cursor_close(c);
            break;
        }
        }
        REQUIRE(st.evens == (size_t)sh->fixed, "scan %d (%s): %zu of the %d never-deleted keys", n,
                n % 3 == 0   ? "range"
                : n % 3 == 1 ? "cursor asc"
                             : "cursor desc",
                st.evens, sh->fixed);
    }
    if (atomic_fetch_sub(&sh->readers_left, 1) == 1)
        atomic_store(&sh->stop, true);
    return NULL;
}

static void scenario_scans(int nthreads)
{
    feox_store *s = open_store(0);
    scans_shared sh;
    sh.fixed = quick ? 300 : 2000;
    atomic_init(&sh.stop, false);
    atomic_init(&sh.readers_left, nthreads / 2);
    char key[32];
    uint8_t val[64];
    for (uint32_t i = 0; i < 2 * (uint32_t)sh.fixed; i++) {
        size_t kl = scan_key(key, i);
        size_t vl = mixed_value(val, i, i);
        REQUIRE_OK(feox_insert(s, key, kl, val, vl, NULL, NULL));
    }
    run_threads(nthreads, s, &sh, scans_worker);
    REQUIRE_OK(feox_check(s));
    feox_close(s);
}

/* ---- growth -------------------------------------------------------------------------------- */

typedef struct growth_shared {
    atomic_uint published; /* keys 0 .. published-1 are inserted */
    atomic_int readers_started;
    atomic_bool done;
    uint32_t total;
    atomic_llong reads, misses;
} growth_shared;

static size_t growth_key(char *out, uint32_t i)
{
    return (size_t)sprintf(out, "g%07u", i);
}

static void *growth_worker(void *arg)
{
    worker *w = arg;
    growth_shared *sh = w->shared;
    feox_store *s = w->store;
    char key[32];
    if (w->id == 0) {
        /* Start inserting once every reader runs, so the growth really happens under them. */
        while (atomic_load(&sh->readers_started) < w->nthreads - 1)
            sched_yield();
        for (uint32_t i = 0; i < sh->total; i++) {
            size_t kl = growth_key(key, i);
            REQUIRE_OK(feox_insert(s, key, kl, &i, sizeof(i), NULL, NULL));
            atomic_store_explicit(&sh->published, i + 1, memory_order_release);
        }
        atomic_store(&sh->done, true);
        return NULL;
    }
    long long reads = 0, misses = 0;
    atomic_fetch_add(&sh->readers_started, 1);
    for (bool last = false; !last;) {
        last = atomic_load(&sh->done); /* one more round after the writer finished */
        uint32_t n = atomic_load_explicit(&sh->published, memory_order_acquire);
        if (n == 0) {
            sched_yield();
            continue;
        }
        for (int k = 0; k < 64; k++) {
            uint32_t i = (uint32_t)ftest_rng_below(&w->rng, n);
            if (k % 8 == 0) /* the most recent keys too: they race the growth the most */
                i = n - 1 - (uint32_t)ftest_rng_below(&w->rng, n < 16 ? n : 16);
            size_t kl = growth_key(key, i);
            void *v = NULL;
            size_t len = 0;
            feox_err err = feox_get(s, key, kl, &v, &len, NULL);
            reads++;
            if (err != FEOX_OK) {
                misses++;
                REQUIRE(false, "growth: get %s (published %u) -> %s", key, n, feox_strerror(err));
                continue;
            }
            uint32_t got = 0;
            if (len == 4)
                memcpy(&got, v, 4);
            REQUIRE(len == 4 && got == i, "growth: %s holds a wrong value", key);
            feox_free(v);
            if (!feox_contains(s, key, kl)) {
                misses++;
                REQUIRE(false, "growth: contains %s false", key);
            }
        }
    }
    atomic_fetch_add(&sh->reads, reads);
    atomic_fetch_add(&sh->misses, misses);
    return NULL;
}

static void scenario_growth(int nthreads)
{
    feox_store *s = open_store(16);
    growth_shared sh;
    atomic_init(&sh.published, 0);
    atomic_init(&sh.readers_started, 0);
    atomic_init(&sh.done, false);
    atomic_init(&sh.reads, 0);
    atomic_init(&sh.misses, 0);
    sh.total = quick ? 8000 : 200000;
    run_threads(nthreads, s, &sh, growth_worker);
    REQUIRE(atomic_load(&sh.misses) == 0, "growth/%d: %lld misses", nthreads,
            (long long)atomic_load(&sh.misses));
    REQUIRE(atomic_load(&sh.reads) > 0, "growth/%d: readers never ran", nthreads);
    REQUIRE(feox_len(s, 0) == sh.total, "growth/%d: len %llu, inserted %u", nthreads,
            (unsigned long long)feox_len(s, 0), sh.total);
    char key[32];
    for (uint32_t i = 0; i < sh.total; i += 97) {
        size_t kl = growth_key(key, i);
        REQUIRE(feox_contains(s, key, kl), "growth: %s missing after the run", key);
    }
    REQUIRE_OK(feox_check(s));
    feox_close(s);
}

/* ---- hot keys ------------------------------------------------------------------------------ */

#define HOT_KEYS 8

typedef struct hot_shared {
    atomic_bool done;
    atomic_llong reads, found;
} hot_shared;

/* Thread 0 overwrites, deletes and re-inserts a few keys (so versions are retired and reclaimed
 * under the readers); the others read them with feox_get_into (which copies without taking a
 * reference) into a full and a short buffer, and with feox_get_ref: every copy is one whole
 * version of the right key, never torn. */
static void *hot_worker(void *arg)
{
    worker *w = arg;
    hot_shared *sh = w->shared;
    feox_store *s = w->store;
    char key[32];
    uint8_t value[64];
    if (w->id == 0) {
        int rounds = quick ? 20000 : 400000;
        for (int i = 0; i < rounds; i++) {
            uint32_t id = (uint32_t)ftest_rng_below(&w->rng, HOT_KEYS);
            size_t kl = mixed_key(key, id);
            if (i % 16 == 15) {
                feox_err err = feox_delete(s, key, kl, NULL);
                REQUIRE(err == FEOX_OK || err == FEOX_ERR_KEY_NOT_FOUND, "hot: delete -> %s",
                        feox_strerror(err));
            } else {
                size_t vl = mixed_value(value, id, ftest_rng_next(&w->rng));
                REQUIRE_OK(feox_insert(s, key, kl, value, vl, NULL, NULL));
            }
        }
        atomic_store(&sh->done, true);
        return NULL;
    }
    long long reads = 0, found = 0;
    /* (and a few reads after the writer is done: on a loaded machine a reader may first run then,
     * and "found nothing" would be a scheduling accident) */
    while (!atomic_load(&sh->done) || reads < 64) {
        uint32_t id = (uint32_t)ftest_rng_below(&w->rng, HOT_KEYS);
        size_t kl = mixed_key(key, id), len = 0;
        feox_err err;
        switch (reads++ % 3) {
        case 0:
            memset(value, 0xee, sizeof value);
            err = feox_get_into(s, key, kl, value, sizeof value, &len, NULL);
            if (err == FEOX_OK) {
                found++;
                REQUIRE(mixed_value_ok(value, len, id) && value[len] == 0xee,
                        "hot: get_into of %s gave a torn or wrong value (%zu bytes)", key, len);
            }
            break;
        case 1: /* a short buffer: the first 5 bytes of one whole version, and its length */
            memset(value, 0xee, sizeof value);
            err = feox_get_into(s, key, kl, value, 5, &len, NULL);
            if (err == FEOX_OK) {
                found++;
                uint32_t got;
                memcpy(&got, value, 4);
                REQUIRE(got == id && len == 9 + (size_t)value[4] % 32 && value[5] == 0xee,
                        "hot: short get_into of %s: id %u, %zu bytes", key, got, len);
            }
            break;
        default: {
            feox_value *v = NULL;
            err = feox_get_ref(s, key, kl, &v);
            if (err == FEOX_OK) {
                found++;
                REQUIRE(mixed_value_ok(feox_value_data(v), feox_value_size(v), id),
                        "hot: get_ref of %s gave a wrong value", key);
                feox_value_release(v);
            }
        }
        }
        REQUIRE(err == FEOX_OK || err == FEOX_ERR_KEY_NOT_FOUND, "hot: read %s -> %s", key,
                feox_strerror(err));
    }
    atomic_fetch_add(&sh->reads, reads);
    atomic_fetch_add(&sh->found, found);
    return NULL;
}

static void scenario_hot(int nthreads)
{
    feox_store *s = open_store(0);
    hot_shared sh;
    atomic_init(&sh.done, false);
    atomic_init(&sh.reads, 0);
    atomic_init(&sh.found, 0);
    run_threads(nthreads, s, &sh, hot_worker);
    REQUIRE(atomic_load(&sh.found) > 0, "hot/%d: readers found nothing in %lld reads", nthreads,
            (long long)atomic_load(&sh.reads));
    REQUIRE_OK(feox_check(s));
    feox_close(s);
}

/* ---- automatic timestamps ------------------------------------------------------------------ */

typedef struct autots_shared {
    atomic_llong increments;
} autots_shared;

static void *autots_worker(void *arg)
{
    worker *w = arg;
    autots_shared *sh = w->shared;
    feox_store *s = w->store;
    const int n = quick ? 2000 : 100000;
    uint8_t val[64];
    long long incs = 0;
    for (int i = 0; i < n; i++) {
        size_t vl = mixed_value(val, 7, ftest_rng_next(&w->rng));
        feox_err err = feox_insert(s, "same", 4, val, vl, NULL, NULL);
        REQUIRE(err == FEOX_OK, "autots: insert -> %s", feox_strerror(err));
        err = feox_atomic_increment(s, "same-counter", 12, 1, NULL, NULL);
        REQUIRE(err == FEOX_OK, "autots: incr -> %s", feox_strerror(err));
        if (err == FEOX_OK)
            incs++;
        if (i % 8 == 0) {
            void *v = NULL;
            size_t len = 0;
            if (feox_get(s, "same", 4, &v, &len, NULL) == FEOX_OK) {
                bool swapped = false;
                err = feox_compare_and_swap(s, "same", 4, v, len, val, vl, NULL, &swapped);
                REQUIRE(err == FEOX_OK, "autots: cas -> %s", feox_strerror(err));
                feox_free(v);
            }
            err = feox_update_ttl(s, "same", 4, 3600, NULL);
            REQUIRE(err == FEOX_OK, "autots: update_ttl -> %s", feox_strerror(err));
        }
    }
    atomic_fetch_add(&sh->increments, incs);
    return NULL;
}

static void scenario_autots(int nthreads)
{
    feox_store *s = open_store(0);
    autots_shared sh;
    atomic_init(&sh.increments, 0);
    run_threads(nthreads, s, &sh, autots_worker);
    feox_stats st;
    REQUIRE_OK(feox_get_stats(s, &st));
    REQUIRE(st.older_timestamp_errors == 0, "autots/%d: %llu OLDER_TIMESTAMP errors", nthreads,
            (unsigned long long)st.older_timestamp_errors);
    REQUIRE(ftest_read_counter(s, "same-counter") == atomic_load(&sh.increments),
            "autots/%d: counter %lld, increments %lld", nthreads,
            (long long)ftest_read_counter(s, "same-counter"),
            (long long)atomic_load(&sh.increments));
    REQUIRE_OK(feox_check(s));
    feox_close(s);
}

/* ---- memory budget ------------------------------------------------------------------------- */

typedef struct budget_shared {
    uint64_t budget;
    atomic_llong over_budget, oom_seen;
} budget_shared;

static void *budget_worker(void *arg)
{
    worker *w = arg;
    budget_shared *sh = w->shared;
    feox_store *s = w->store;
    const int n = quick ? 3000 : 40000;
    char key[32];
    uint8_t val[1024];
    memset(val, w->id, sizeof(val));
    for (int i = 0; i < n; i++) {
        size_t kl = (size_t)sprintf(key, "b%d-%d", w->id, (int)ftest_rng_below(&w->rng, 64));
        feox_err err;
        if (ftest_rng_below(&w->rng, 3) == 0) {
            err = feox_delete(s, key, kl, NULL);
            REQUIRE(err == FEOX_OK || err == FEOX_ERR_KEY_NOT_FOUND, "budget delete: %s",
                    feox_strerror(err));
        } else {
            size_t vl = 1 + ftest_rng_below(&w->rng, sizeof(val));
            err = feox_insert(s, key, kl, val, vl, NULL, NULL);
            REQUIRE(err == FEOX_OK || err == FEOX_ERR_OUT_OF_MEMORY, "budget insert: %s",
                    feox_strerror(err));
            if (err == FEOX_ERR_OUT_OF_MEMORY)
                atomic_fetch_add(&sh->oom_seen, 1);
        }
        if (feox_memory_usage(s) > sh->budget)
            atomic_fetch_add(&sh->over_budget, 1);
    }
    return NULL;
}

/* Concurrent writers against max_memory: usage never exceeds the budget, OUT_OF_MEMORY is the
 * only refusal, and once everything is deleted the accounting is back to the empty store's. */
static void scenario_budget(int nthreads)
{
    feox_store *probe = open_store(0);
    const uint64_t empty = feox_memory_usage(probe);
    feox_close(probe);
    feox_config cfg;
    feox_config_init(&cfg);
    budget_shared sh;
    sh.budget = cfg.max_memory = empty + 48 * 1024; /* far less than 8 threads x 64 keys x 1 KiB */
    atomic_init(&sh.over_budget, 0);
    atomic_init(&sh.oom_seen, 0);
    feox_store *s = ftest_open(&cfg);
    run_threads(nthreads, s, &sh, budget_worker);
    REQUIRE(atomic_load(&sh.over_budget) == 0, "budget/%d: usage above max_memory %lld times",
            nthreads, (long long)atomic_load(&sh.over_budget));
    REQUIRE(atomic_load(&sh.oom_seen) > 0, "budget/%d: the budget never refused a write", nthreads);
    feox_stats st;
    REQUIRE_OK(feox_get_stats(s, &st));
    REQUIRE((long long)st.out_of_memory_errors == atomic_load(&sh.oom_seen),
            "budget/%d: stats.out_of_memory_errors %llu, seen %lld", nthreads,
            (unsigned long long)st.out_of_memory_errors, (long long)atomic_load(&sh.oom_seen));
    char key[32];
    for (int t = 0; t < nthreads; t++)
        for (int k = 0; k < 64; k++) {
            size_t kl = (size_t)sprintf(key, "b%d-%d", t, k);
            feox_delete(s, key, kl, NULL);
        }
    REQUIRE(feox_len(s, 0) == 0, "budget/%d: %llu keys left", nthreads,
            (unsigned long long)feox_len(s, 0));
    REQUIRE(feox_memory_usage(s) == empty, "budget/%d: usage %llu after deleting all, empty %llu",
            nthreads, (unsigned long long)feox_memory_usage(s), (unsigned long long)empty);
    REQUIRE_OK(feox_check(s));
    feox_close(s);
}

/* ---- sweeper racing writers ---------------------------------------------------------------- */

#define SWEEP_KEYS 64 /* per thread, disjoint */

static void *sweep_worker(void *arg)
{
    worker *w = arg;
    feox_store *s = w->store;
    const int n = quick ? 3000 : 40000;
    char key[32];
    uint8_t val[64];
    for (int i = 0; i < n; i++) {
        uint32_t k = (uint32_t)ftest_rng_below(&w->rng, SWEEP_KEYS);
        size_t kl = (size_t)sprintf(key, "w%d-%u", w->id, k);
        size_t vl = mixed_value(val, k, ftest_rng_next(&w->rng));
        feox_write_opts o = {0};
        switch (ftest_rng_below(&w->rng, 4)) {
        case 0: /* about to expire: the sweeper (1 ms interval) races the next write */
            o.flags = FEOX_WRITE_EXPIRES_AT;
            o.expires_at_ns = feox_now_ns(s) + ftest_rng_below(&w->rng, 2000000);
            REQUIRE_OK(feox_insert(s, key, kl, val, vl, &o, NULL));
            break;
        case 1: REQUIRE_OK(feox_insert(s, key, kl, val, vl, NULL, NULL)); break;
        case 2: {
            feox_err err = feox_update_ttl(s, key, kl, 0, NULL);
            REQUIRE(err == FEOX_OK || err == FEOX_ERR_KEY_NOT_FOUND, "persist: %s",
                    feox_strerror(err));
            break;
        }
        default: {
            void *v = NULL;
            size_t len = 0;
            feox_err err = feox_get(s, key, kl, &v, &len, NULL);
            REQUIRE(err == FEOX_OK || err == FEOX_ERR_KEY_NOT_FOUND, "get: %s", feox_strerror(err));
            if (err == FEOX_OK) {
                REQUIRE(mixed_value_ok(v, len, k), "sweep: bad value for %s", key);
                feox_free(v);
            }
            break;
        }
        }
    }
    /* Final, permanent values: the sweeper must never remove these. */
    for (uint32_t k = 0; k < SWEEP_KEYS; k++) {
        size_t kl = (size_t)sprintf(key, "w%d-%u", w->id, k);
        size_t vl = mixed_value(val, k, 1000 + k);
        REQUIRE_OK(feox_insert(s, key, kl, val, vl, NULL, NULL));
    }
    return NULL;
}

static void scenario_sweeper(int nthreads)
{
    feox_config cfg;
    feox_config_init(&cfg);
    cfg.ttl_sweep_interval_ms = 1;
    feox_store *s = ftest_open(&cfg);
    const uint64_t empty = feox_memory_usage(s);
    run_threads(nthreads, s, NULL, sweep_worker);
    /* Let the sweeper run over whatever expired meanwhile (all expiries were < 2 ms ahead). */
    struct timespec pause = {0, 50 * 1000 * 1000};
    nanosleep(&pause, NULL);
    char key[32];
    uint8_t val[64];
    for (int t = 0; t < nthreads; t++)
        for (uint32_t k = 0; k < SWEEP_KEYS; k++) {
            size_t kl = (size_t)sprintf(key, "w%d-%u", t, k);
            void *v = NULL;
            size_t len = 0;
            feox_err err = feox_get(s, key, kl, &v, &len, NULL);
            REQUIRE(err == FEOX_OK, "sweeper/%d: permanent %s lost: %s", nthreads, key,
                    feox_strerror(err));
            if (err == FEOX_OK) {
                size_t vl = mixed_value(val, k, 1000 + k);
                REQUIRE(len == vl && memcmp(v, val, vl) == 0, "sweeper/%d: %s wrong value",
                        nthreads, key);
                feox_free(v);
            }
        }
    feox_stats st;
    REQUIRE_OK(feox_get_stats(s, &st));
    REQUIRE(st.len == (uint64_t)nthreads * SWEEP_KEYS, "sweeper/%d: len %llu", nthreads,
            (unsigned long long)st.len);
    REQUIRE(st.keys_with_ttl == 0, "sweeper/%d: keys_with_ttl %llu", nthreads,
            (unsigned long long)st.keys_with_ttl);
    for (int t = 0; t < nthreads; t++)
        for (uint32_t k = 0; k < SWEEP_KEYS; k++) {
            size_t kl = (size_t)sprintf(key, "w%d-%u", t, k);
            REQUIRE_OK(feox_delete(s, key, kl, NULL));
        }
    REQUIRE(feox_memory_usage(s) == empty, "sweeper/%d: usage %llu after deleting all, empty %llu",
            nthreads, (unsigned long long)feox_memory_usage(s), (unsigned long long)empty);
    REQUIRE_OK(feox_check(s));
    feox_close(s);
}

/* ---- loaded keys overwritten under scans ---------------------------------------------------- */

typedef struct loaded_shared {
    atomic_int writers_left;
    uint32_t keys;
    uint8_t round;
} loaded_shared;

static size_t loaded_key(char *out, uint32_t i)
{
    return (size_t)sprintf(out, "l%06u", i);
}

/* Even threads overwrite their share of the keys once each (every key of the reopened store was
 * loaded with its entry: each write swaps in a standalone entry), taking a handle on a loaded
 * version now and then, which must keep its bytes through the overwrite; odd threads scan until
 * the writers are done: every key exactly once, in order, with a whole value of that key. */
static void *loaded_worker(void *arg)
{
    worker *w = arg;
    loaded_shared *sh = w->shared;
    feox_store *s = w->store;
    char key[32];
    uint8_t val[64];
    int writers = (w->nthreads + 1) / 2;
    if (w->id % 2 == 0) {
        for (uint32_t i = (uint32_t)(w->id / 2); i < sh->keys; i += (uint32_t)writers) {
            size_t kl = loaded_key(key, i);
            feox_value *held = NULL;
            if (i % 7 == 0)
                REQUIRE_OK(feox_get_ref(s, key, kl, &held));
            size_t vl = mixed_value(val, i, ftest_rng_next(&w->rng));
            REQUIRE_OK(feox_insert(s, key, kl, val, vl, NULL, NULL));
            if (held) {
                REQUIRE(mixed_value_ok(feox_value_data(held), feox_value_size(held), i),
                        "loaded: handle on %s lost its bytes", key);
                feox_value_release(held);
            }
        }
        atomic_fetch_sub(&sh->writers_left, 1);
        return NULL;
    }
    int n = 0;
    do {
        scan_state st = {0};
        bool desc = n % 2 == 1;
        feox_cursor *c = NULL;
        REQUIRE_OK(feox_cursor_open(s, &c));
        if (!c)
            break;
        REQUIRE_OK(desc ? feox_cursor_seek(c, FEOX_SEEK_LAST, NULL, 0)
                        : feox_cursor_seek(c, FEOX_SEEK_FIRST, NULL, 0));
        while (feox_cursor_valid(c)) {
            size_t kl = 0, vl = 0;
            const void *k = feox_cursor_key(c, &kl);
            const void *v = feox_cursor_value(c, &vl);
            scan_see(&st, k, kl, desc);
            REQUIRE(mixed_value_ok(v, vl, mixed_id(k, kl)), "loaded: bad value for %.*s", (int)kl,
                    (const char *)k);
            REQUIRE_OK(desc ? feox_cursor_prev(c) : feox_cursor_next(c));
        }
        feox_cursor_close(c);
        REQUIRE(st.count == sh->keys, "loaded: scan %d (%s) saw %zu of %u keys", n,
                desc ? "desc" : "asc", st.count, sh->keys);
        n++;
    } while (atomic_load(&sh->writers_left) > 0);
    return NULL;
}

/* The store of the last round closed by thread 0 while the others release value handles on half
 * its loaded versions (most in slabs), the other half released after the close: each handle
 * still reads its whole value, and a slab's last block may be freed by a releasing thread or by
 * the close, whichever comes last. */
typedef struct close_shared {
    feox_value **held;
    uint32_t keys;
} close_shared;

static void release_checked(feox_value *v, uint32_t i)
{
    REQUIRE(mixed_value_ok(feox_value_data(v), feox_value_size(v), i),
            "loaded: handle on key %u lost its bytes at close", i);
    feox_value_release(v);
}

static void *close_worker(void *arg)
{
    worker *w = arg;
    close_shared *sh = w->shared;
    if (w->id == 0) {
        REQUIRE_OK(feox_close(w->store));
        return NULL;
    }
    for (uint32_t i = 2 * (uint32_t)(w->id - 1); i < sh->keys; i += 2 * (uint32_t)(w->nthreads - 1))
        release_checked(sh->held[i], i);
    return NULL;
}

static void close_under_handles(feox_store *s, uint32_t keys, int nthreads)
{
    close_shared sh = {.held = calloc(keys, sizeof(feox_value *)), .keys = keys};
    if (!sh.held)
        abort();
    char key[32];
    /* Handles on the loaded versions, not on the copies the file's index snapshot answers with
     * while the load runs: wait for it first (feox_len does). */
    REQUIRE(feox_len(s, 0) == keys, "loaded: %u keys expected", keys);
    for (uint32_t i = 0; i < keys; i++)
        REQUIRE_OK(feox_get_ref(s, key, loaded_key(key, i), &sh.held[i]));
    run_threads(nthreads, s, &sh, close_worker);
    for (uint32_t i = 1; i < keys; i += 2)
        release_checked(sh.held[i], i);
    free(sh.held);
}

static void scenario_loaded(int nthreads)
{
    char dir[] = "/tmp/feox_stress_loaded_XXXXXX";
    if (!mkdtemp(dir))
        abort();
    char path[sizeof dir + 16];
    snprintf(path, sizeof path, "%s/store.feox", dir);
    feox_config cfg;
    feox_config_init(&cfg);
    cfg.path = path;
    /* past FEOX_SLAB_MIN_BLOCKS (8192) in both: the later keys load into slabs (base/slab.h) */
    loaded_shared sh = {.keys = quick ? 9000 : 20000};
    feox_store *s = ftest_open(&cfg);
    char key[32];
    uint8_t val[64];
    for (uint32_t i = 0; i < sh.keys; i++) {
        size_t kl = loaded_key(key, i);
        size_t vl = mixed_value(val, i, i);
        REQUIRE_OK(feox_insert(s, key, kl, val, vl, NULL, NULL));
    }
    feox_close(s);
    for (int round = 0; round < (quick ? 2 : 4); round++) {
        s = ftest_open(&cfg); /* every key loaded again */
        atomic_init(&sh.writers_left, (nthreads + 1) / 2);
        run_threads(nthreads, s, &sh, loaded_worker);
        REQUIRE_OK(feox_check(s));
        feox_close(s);
    }
    close_under_handles(ftest_open(&cfg), sh.keys, nthreads);
    unlink(path);
    rmdir(dir);
}

/* ---- snapshot ------------------------------------------------------------------------------ */

typedef struct snapshot_shared {
    uint32_t keys;
    uint32_t round; /* the value of key 0 written in this round (key 0 changes every round) */
    atomic_int written;
} snapshot_shared;

/* Key i's value in a round: mixed_value of i salted with the round for key 0, else with 0. */
static size_t snapshot_value(uint8_t *out, uint32_t i, uint32_t round)
{
    return mixed_value(out, i, i == 0 ? round : 0);
}

static void *snapshot_worker(void *arg)
{
    worker *w = arg;
    snapshot_shared *sh = w->shared;
    feox_store *s = w->store;
    char key[32];
    uint8_t buf[64];
    int reads = quick ? 2000 : 20000;
    for (int n = 0; n < reads; n++) {
        uint32_t i = (uint32_t)(ftest_rng_next(&w->rng) % (2 * sh->keys)); /* half never written */
        size_t kl = loaded_key(key, i);
        bool present = i < sh->keys;
        size_t got = 0;
        feox_value *v = NULL;
        uint64_t ttl = 0;
        bool has_ttl = true;
        switch (n % 4) {
        case 0: {
            feox_err err = feox_get_into(s, key, kl, buf, sizeof buf, &got, NULL);
            REQUIRE(err == (present ? FEOX_OK : FEOX_ERR_KEY_NOT_FOUND),
                    "snapshot: get_into %s: %s", key, feox_strerror(err));
            if (!err)
                REQUIRE(mixed_value_ok(buf, got, i), "snapshot: get_into %s: wrong value", key);
            break;
        }
        case 1: {
            feox_err err = feox_get_ref(s, key, kl, &v);
            REQUIRE(err == (present ? FEOX_OK : FEOX_ERR_KEY_NOT_FOUND), "snapshot: get_ref %s: %s",
                    key, feox_strerror(err));
            if (!err) {
                REQUIRE(mixed_value_ok(feox_value_data(v), feox_value_size(v), i),
                        "snapshot: get_ref %s: wrong value", key);
                feox_value_release(v);
            }
            break;
        }
        case 2: REQUIRE(feox_contains(s, key, kl) == present, "snapshot: contains %s", key); break;
        default: {
            feox_err err = feox_get_ttl(s, key, kl, &ttl, &has_ttl);
            REQUIRE(err == (present ? FEOX_OK : FEOX_ERR_KEY_NOT_FOUND), "snapshot: get_ttl %s: %s",
                    key, feox_strerror(err));
            REQUIRE(err || !has_ttl, "snapshot: get_ttl %s: a TTL nobody set", key);
            break;
        }
        }
    }
    if (atomic_fetch_add(&sh->written, 1) ==
        0) { /* the first one done: a write waits for the load */
        size_t kl = loaded_key(key, 0);
        size_t vl = snapshot_value(buf, 0, sh->round + 1);
        REQUIRE_OK(feox_insert(s, key, kl, buf, vl, NULL, NULL));
    }
    return NULL;
}

static void scenario_snapshot(int nthreads)
{
    char dir[] = "/tmp/feox_stress_snapshot_XXXXXX";
    if (!mkdtemp(dir))
        abort();
    char path[sizeof dir + 16];
    snprintf(path, sizeof path, "%s/store.feox", dir);
    feox_config cfg;
    feox_config_init(&cfg);
    cfg.path = path;
    snapshot_shared sh = {.keys = quick ? 20000 : 100000};
    feox_store *s = ftest_open(&cfg);
    char key[32];
    uint8_t val[64];
    for (uint32_t i = 0; i < sh.keys; i++)
        REQUIRE_OK(
            feox_insert(s, key, loaded_key(key, i), val, snapshot_value(val, i, 0), NULL, NULL));
    REQUIRE_OK(feox_close(s));
    for (uint32_t round = 0; round < (quick ? 3u : 6u); round++) {
        s = ftest_open(&cfg); /* answers from the snapshot while its indexes load */
        sh.round = round;
        atomic_init(&sh.written, 0);
        run_threads(nthreads, s, &sh, snapshot_worker);
        REQUIRE(feox_len(s, 0) == sh.keys, "snapshot: %u keys expected", sh.keys);
        size_t got = 0;
        REQUIRE_OK(feox_get_into(s, key, loaded_key(key, 0), val, sizeof val, &got, NULL));
        uint8_t want[64];
        size_t wl = snapshot_value(want, 0, round + 1);
        REQUIRE(got == wl && memcmp(val, want, wl) == 0, "snapshot: key 0 lost its new value");
        REQUIRE_OK(feox_check(s));
        REQUIRE_OK(feox_close(s)); /* a write was made: a new snapshot */
    }
    feox_close_wait();
    unlink(path);
    rmdir(dir);
}

#define REAPED_KEYS 66000 /* above FEOX_REAP_MIN_KEYS (engine/store/store_internal.h) */
#define REAPED_HELD 64

static void *reaped_worker(void *arg)
{
    worker *w = arg;
    feox_config cfg;
    feox_config_init(&cfg);
    feox_store *s = ftest_open(&cfg);
    char key[32];
    uint8_t val[64];
    for (uint32_t i = 0; i < REAPED_KEYS; i++)
        REQUIRE_OK(feox_insert(s, key, loaded_key(key, i), val, mixed_value(val, i, i), NULL,
                               NULL));
    feox_value *held[REAPED_HELD];
    for (uint32_t i = 0; i < REAPED_HELD; i++)
        REQUIRE_OK(feox_get_ref(s, key, loaded_key(key, i * 1000), &held[i]));
    REQUIRE_OK(feox_close(s));
    for (uint32_t i = 0; i < REAPED_HELD; i++)
        release_checked(held[i], i * 1000);
    (void)w;
    return NULL;
}

static void scenario_reaped(int nthreads)
{
    run_threads(quick ? 2 : nthreads, NULL, NULL, reaped_worker);
    feox_close_wait();
}

/* ------------------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = true;
        } else {
            fprintf(stderr, "usage: %s [--quick]\n", argv[0]);
            return 2;
        }
    }
    static const struct {
        const char *name;
        void (*fn)(int);
    } scenarios[] = {
        {"mixed", scenario_mixed},     {"counters", scenario_counters},
        {"scans", scenario_scans},     {"growth", scenario_growth},
        {"autots", scenario_autots},   {"budget", scenario_budget},
        {"sweeper", scenario_sweeper}, {"hot", scenario_hot},
        {"loaded", scenario_loaded},   {"snapshot", scenario_snapshot},
        {"reaped", scenario_reaped},
    };
    const int thread_counts[] = {2, 8};
    double start = now_s();
    for (size_t k = 0; k < sizeof(scenarios) / sizeof(scenarios[0]); k++) {
        for (int t = 0; t < 2; t++) {
            double t0 = now_s();
            int before = atomic_load(&failures);
            scenarios[k].fn(thread_counts[t]);
            printf("%-9s %d threads: %s (%.2f s)\n", scenarios[k].name, thread_counts[t],
                   atomic_load(&failures) == before ? "ok" : "FAILED", now_s() - t0);
            fflush(stdout);
        }
    }
    int f = atomic_load(&failures);
    printf("stress_store%s: %d failure(s), %.1f s\n", quick ? " --quick" : "", f, now_s() - start);
    return f ? 1 : 0;
}
