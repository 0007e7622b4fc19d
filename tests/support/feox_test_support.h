/*
 * feox_test_support.h — small helpers shared by the store tests (tests/unit/test_store_*.c,
 * tests/stress/stress_store*.c): an injectable fake clock, a deterministic PRNG and little-endian
 * i64 encoding. Compiled into every test binary, so: no main, no cmocka, names prefixed ftest_.
 */
#ifndef FEOX_TEST_SUPPORT_H
#define FEOX_TEST_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "feox.h"
#include "feox_storage.h"

/* FTEST_UNDER_ASAN: 1 in a build with AddressSanitizer (gcc's __SANITIZE_ADDRESS__, clang's
 * __has_feature), else 0. Its allocator and quarantine make heap and RSS figures meaningless, and
 * gcc's ASan cannot fork a threaded process safely: the tests that depend on either skip. */
#if defined(__SANITIZE_ADDRESS__)
#define FTEST_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FTEST_UNDER_ASAN 1
#endif
#endif
#ifndef FTEST_UNDER_ASAN
#define FTEST_UNDER_ASAN 0
#endif

/* A settable clock for feox_config.clock / clock_ctx. Safe to read from the sweeper thread while
 * the test thread moves it (the reading is atomic). */
typedef struct ftest_clock {
    _Atomic uint64_t now_ns;
} ftest_clock;

/* A realistic starting instant (2024-01-01T00:00:00Z) so timestamps look like wall-clock ones. */
#define FTEST_EPOCH_NS UINT64_C(1704067200000000000)
#define FTEST_SEC UINT64_C(1000000000)

void ftest_clock_init(ftest_clock *c, uint64_t now_ns);
uint64_t ftest_clock_read(void *ctx); /* a feox_clock_fn */
uint64_t ftest_clock_now(ftest_clock *c);
void ftest_clock_set(ftest_clock *c, uint64_t now_ns);
void ftest_clock_advance(ftest_clock *c, uint64_t delta_ns);

/* Memory-mode config driven by clock (may be NULL = real clock); the TTL sweeper is disabled so
 * expiry is only judged lazily, deterministically. */
void ftest_config(feox_config *cfg, ftest_clock *clock);

/* In a forked child: on failure, say why (with feox's error detail) and exit with the line
 * number as the status (never returns to the test framework). */
#define FTEST_CHILD_CHECK(cond)                                                                    \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "child check failed at line %d: %s (detail: %s)\n", __LINE__, #cond,   \
                    feox_error_detail());                                                          \
            _exit(__LINE__ % 250 + 1);                                                             \
        }                                                                                          \
    } while (0)

/* Wait for the child pid: its exit status (0 = every check held), or 1000 + the signal that
 * killed it (said on stderr). */
int ftest_wait_child(int pid);

/* The methods of a storage backend that keeps nothing, for scripted fake backends whose only
 * work is in load/refresh (feox_storage.h): write and erase accept and locate nothing,
 * read_value says CORRUPT (every value such a backend sends is resident), check is ok, stats add
 * nothing, close frees the feox_storage (malloc'd by the fake's open). */
feox_err ftest_storage_write_nothing(feox_storage *st, void *txn, const feox_storage_record *rec,
                                     const feox_storage_record *replaced, uint64_t *location,
                                     uint64_t *seq);
feox_err ftest_storage_erase_nothing(feox_storage *st, void *txn, const void *key, uint32_t key_len,
                                     uint64_t ts_ns, const feox_storage_record *replaced,
                                     uint64_t *seq);
feox_err ftest_storage_read_value_corrupt(feox_storage *st, void *txn, const void *key,
                                          uint32_t key_len, uint64_t location, void *buf,
                                          uint32_t value_len);
feox_err ftest_storage_check_ok(feox_storage *st, char *detail, size_t detail_len);
void ftest_storage_no_stats(feox_storage *st, feox_stats *out);
feox_err ftest_storage_close_free(feox_storage *st);

/* Opens a store or aborts the test program with a message (a test cannot proceed without it). */
feox_store *ftest_open(const feox_config *cfg);

/* Cut the index snapshot a clean close appends (engine/storage/log/FORMAT.md) off the closed
 * store file at path, if it ends in one: the next open then loads the whole file before it
 * returns, as it does a file from before snapshots (tests of that load and of its failures). */
void ftest_drop_index_snapshot(const char *path);

/* splitmix64: tiny, fast, deterministic. */
typedef struct ftest_rng {
    uint64_t state;
} ftest_rng;
void ftest_rng_seed(ftest_rng *r, uint64_t seed);
uint64_t ftest_rng_next(ftest_rng *r);
uint64_t ftest_rng_below(ftest_rng *r, uint64_t bound); /* uniform-ish in [0, bound), bound > 0 */

/* Little-endian i64, the counter format of feox_atomic_increment. */
void ftest_put_i64(void *out8, int64_t v);
int64_t ftest_get_i64(const void *in8);

/* Reads the counter stored at a NUL-terminated key; aborts if absent or not 8 bytes. */
int64_t ftest_read_counter(feox_store *s, const char *key);

#endif
