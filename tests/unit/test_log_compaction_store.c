/*
 * test_log_compaction_store.c — compaction through the public API while writers run: nothing
 * appended during a rewrite is lost, every key keeps its newest value across a reopen, the scan
 * of live records waits for writes caught between their append and their publish (issue 11 item
 * 12), after an overwrite storm the file is at most twice the live data once compaction has run,
 * and compactions keep working when the file generation runs past what a location can hold,
 * and a compaction or a walk under way gives up when the store closes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "feox.h"
#include "storage/log/log_backend.h"    /* test_generation_wraps starts the backend near the last generation */
#include "store/store_internal.h" /* ... reached through the store's backend pointer */
#include "storage/log/value_cache.h"

enum { WRITERS = 4, KEYS_PER_WRITER = 500, ROUNDS = 40 };

static atomic_int writers_done;

/* /tmp/feox-test-<name>-<pid>.feox in path, no file there. */
static void temp_store_path(char *path, size_t cap, const char *name)
{
    snprintf(path, cap, "/tmp/feox-test-%s-%d.feox", name, (int)getpid());
    unlink(path);
}

/* The store file at path, compacted only when the test calls feox_compact. */
static feox_config own_compactions_at(const char *path)
{
    feox_config cfg;
    feox_config_init(&cfg);
    cfg.path = path;
    cfg.disable_compaction = true;
    return cfg;
}

static feox_store *open_ok(const feox_config *cfg)
{
    feox_store *s = NULL;
    assert_int_equal(feox_open(cfg, &s), FEOX_OK);
    return s;
}

/* key holds exactly want (want_len bytes). */
static void expect_stored(feox_store *s, const char *key, const void *want, size_t want_len)
{
    void *v;
    size_t len;
    feox_err err = feox_get(s, key, strlen(key), &v, &len, NULL);
    if (err != FEOX_OK)
        fail_msg("%s: %s (%s)", key, feox_strerror(err), feox_error_detail());
    assert_int_equal(len, want_len);
    assert_memory_equal(v, want, len);
    feox_free(v);
}

typedef struct writer {
    feox_store *s;
    int id;
    int last_round[KEYS_PER_WRITER]; /* -1 = deleted */
} writer;

static void *write_loop(void *arg)
{
    writer *w = arg;
    char key[32], value[160];
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < KEYS_PER_WRITER; i++) {
            snprintf(key, sizeof key, "w%d-key-%04d", w->id, i);
            if (round % 7 == 6 && i % 5 == 0) {
                feox_err err = feox_delete(w->s, key, strlen(key), NULL);
                assert_true(err == FEOX_OK || err == FEOX_ERR_KEY_NOT_FOUND);
                w->last_round[i] = -1;
                continue;
            }
            int n = snprintf(value, sizeof value, "round %d of key %d by writer %d %0100d", round,
                             i, w->id, round);
            assert_int_equal(feox_insert(w->s, key, strlen(key), value, (size_t)n, NULL, NULL),
                             FEOX_OK);
            w->last_round[i] = round;
        }
    }
    atomic_fetch_add(&writers_done, 1);
    return NULL;
}

static void verify(feox_store *s, writer *w)
{
    char key[32], value[160];
    for (int t = 0; t < WRITERS; t++)
        for (int i = 0; i < KEYS_PER_WRITER; i++) {
            snprintf(key, sizeof key, "w%d-key-%04d", t, i);
            if (w[t].last_round[i] < 0) {
                void *v;
                size_t len;
                assert_int_equal(feox_get(s, key, strlen(key), &v, &len, NULL),
                                 FEOX_ERR_KEY_NOT_FOUND);
                continue;
            }
            int n = snprintf(value, sizeof value, "round %d of key %d by writer %d %0100d",
                             w[t].last_round[i], i, t, w[t].last_round[i]);
            expect_stored(s, key, value, (size_t)n);
        }
}

static void test_compaction_during_writes_loses_nothing(void **state)
{
    (void)state;
    char path[128];
    temp_store_path(path, sizeof path, "compact-store");
    feox_config cfg = own_compactions_at(path); /* back to back, below */
    feox_store *s = open_ok(&cfg);
    static writer w[WRITERS];
    pthread_t threads[WRITERS];
    atomic_store(&writers_done, 0);
    for (int t = 0; t < WRITERS; t++) {
        w[t].s = s;
        w[t].id = t;
        pthread_create(&threads[t], NULL, write_loop, &w[t]);
    }
    /* Compact back to back for as long as the writers run (at least 20 times): a write that
     * lands while a rewrite starts must be in the rewrite (issue 11 item 12). */
    int compactions = 0;
    while (compactions < 20 || atomic_load(&writers_done) < WRITERS) {
        feox_err err = feox_compact(s);
        assert_int_equal(err, FEOX_OK);
        compactions++;
        usleep(500);
    }
    for (int t = 0; t < WRITERS; t++)
        pthread_join(threads[t], NULL);
    verify(s, w); /* values still readable after the locations moved */
    assert_int_equal(feox_check(s), FEOX_OK);
    assert_int_equal(feox_compact(s), FEOX_OK);
    feox_stats st;
    assert_int_equal(feox_get_stats(s, &st), FEOX_OK);
    assert_int_equal(st.compactions, (uint64_t)compactions + 1);
    struct stat fs;
    assert_int_equal(stat(path, &fs), 0);
    /* After the storm and a compaction the file holds about the live data: count it ourselves
     * (48 bytes of record framing per key, see engine/storage/log/FORMAT.md). */
    uint64_t live = 0;
    char key[32], value[160];
    for (int t = 0; t < WRITERS; t++)
        for (int i = 0; i < KEYS_PER_WRITER; i++)
            if (w[t].last_round[i] >= 0)
                live += 48 + (uint64_t)snprintf(key, sizeof key, "w%d-key-%04d", t, i) +
                        (uint64_t)snprintf(value, sizeof value,
                                           "round %d of key %d by writer %d %0100d",
                                           w[t].last_round[i], i, t, w[t].last_round[i]);
    assert_true((uint64_t)fs.st_size <= 2 * live);
    assert_true((uint64_t)fs.st_size <= 64 + live); /* exactly the live records, nothing else */
    assert_int_equal((uint64_t)fs.st_size, st.file_size);
    assert_int_equal(feox_close(s), FEOX_OK);

    s = open_ok(&cfg);
    verify(s, w);
    assert_int_equal(feox_get_stats(s, &st), FEOX_OK);
    assert_int_equal(st.recovery_dropped_records, 0);
    assert_int_equal(feox_close(s), FEOX_OK);
    unlink(path);
}

enum { OVERWRITE_KEYS = 100, OVERWRITE_VALUE = 200 };

/* OVERWRITE_KEYS keys "key-000".. of OVERWRITE_VALUE bytes written rounds times; value ends as
 * the last round's (what every key holds). */
static void overwrite_rounds(feox_store *s, int rounds, char value[OVERWRITE_VALUE])
{
    char key[32];
    memset(value, 'x', OVERWRITE_VALUE);
    for (int round = 0; round < rounds; round++)
        for (int i = 0; i < OVERWRITE_KEYS; i++) {
            snprintf(key, sizeof key, "key-%03d", i);
            value[0] = (char)('a' + round % 26);
            assert_int_equal(feox_insert(s, key, strlen(key), value, OVERWRITE_VALUE, NULL, NULL),
                             FEOX_OK);
        }
}

static void test_background_compaction_bounds_the_file(void **state)
{
    (void)state;
    char path[128];
    temp_store_path(path, sizeof path, "compact-bg");
    feox_config cfg;
    feox_config_init(&cfg);
    cfg.path = path;
    cfg.flush_interval_ms = 10;
    feox_store *s = open_ok(&cfg);
    char value[OVERWRITE_VALUE];
    overwrite_rounds(s, 400, value); /* ~8 MiB written */
    feox_stats st;
    /* The compactor checks every second, or when poked; waited for up to 60 s: on a loaded
     * machine with a busy disk its thread and its fsyncs may take seconds. */
    for (int i = 0; i < 6000; i++) {
        assert_int_equal(feox_get_stats(s, &st), FEOX_OK);
        if (st.compactions > 0 && st.file_size <= 2u << 20)
            break;
        usleep(10000);
    }
    if (st.file_size >= 2u << 20)
        print_message("compactions %llu file %llu live %llu io_errors %llu\n",
                      (unsigned long long)st.compactions, (unsigned long long)st.file_size,
                      (unsigned long long)st.file_live_bytes, (unsigned long long)st.io_errors);
    assert_true(st.compactions > 0);
    assert_true(st.file_size < 2u << 20); /* vs ~8.7 MB written */
    assert_int_equal(feox_close(s), FEOX_OK);
    s = open_ok(&cfg);
    assert_int_equal(feox_len(s, 0), 100);
    expect_stored(s, "key-042", value, sizeof value); /* the last round's */
    assert_int_equal(feox_close(s), FEOX_OK);
    unlink(path);
}

enum { WRAP_KEYS = 300, WRAP_VALUE = 600 };

static size_t wrap_value(int round, int i, char *out)
{
    int n = snprintf(out, WRAP_VALUE, "round %d key %d ", round, i);
    memset(out + n, 'a' + (round + i) % 26, WRAP_VALUE - (size_t)n);
    return WRAP_VALUE;
}

/* Every key holds the value of the round it was last written in. */
static void verify_wrap(feox_store *s, const int *last_round)
{
    char key[32], value[WRAP_VALUE];
    for (int i = 0; i < WRAP_KEYS; i++) {
        snprintf(key, sizeof key, "wrap-%03d", i);
        expect_stored(s, key, value, wrap_value(last_round[i], i, value));
    }
}

/* A location keeps only the low 16 bits of its file's generation (engine/storage/log/log_backend.h) and each
 * compaction starts a new generation, so after 65535 compactions in one open the numbers must
 * wrap; on the old code the 65536th generation truncated to 0, cold reads failed with "stale
 * location" and the next compaction skipped every live record as "not in this file". Compacting
 * 65535 times takes minutes, so the test sets the generation of a fresh, empty store near the
 * limit and compacts across it; max_memory keeps most values cold, so reads go to the file and
 * the value cache. */
static void test_generation_wraps(void **state)
{
    (void)state;
    char path[128];
    temp_store_path(path, sizeof path, "compact-wrap");
    feox_config cfg = own_compactions_at(path);
    cfg.max_memory = 96u << 10;
    feox_store *s = open_ok(&cfg);
    feox_log_backend *b = feox_log_of(s->storage);
    pthread_mutex_lock(&b->mu);
    assert_int_equal(b->append_off, FEOX_LOG_HEADER_SIZE); /* no location uses the old number */
    b->generation = (1u << (64 - FEOX_LOG_OFFSET_BITS)) - 3;
    pthread_mutex_unlock(&b->mu);
    char key[32], value[WRAP_VALUE];
    int last_round[WRAP_KEYS];
    for (int round = 1; round <= 6; round++) {
        /* Round 1 writes every key, later rounds every other one (the rest stay cold). */
        for (int i = round == 1 ? 0 : round % 2; i < WRAP_KEYS; i += round == 1 ? 1 : 2) {
            snprintf(key, sizeof key, "wrap-%03d", i);
            assert_int_equal(
                feox_insert(s, key, strlen(key), value, wrap_value(round, i, value), NULL, NULL),
                FEOX_OK);
            last_round[i] = round;
        }
        verify_wrap(s, last_round);
        assert_int_equal(feox_compact(s), FEOX_OK);
        verify_wrap(s, last_round);
    }
    feox_stats st;
    assert_int_equal(feox_get_stats(s, &st), FEOX_OK);
    assert_true(st.disk_reads > 0); /* values really were read back cold */
    pthread_mutex_lock(&b->mu);
    assert_int_equal(b->generation, 4); /* 65534, 65535, then 1, 2, 3, 4 */
    pthread_mutex_unlock(&b->mu);
    assert_int_equal(feox_check(s), FEOX_OK);
    assert_int_equal(feox_close(s), FEOX_OK);
    s = open_ok(&cfg);
    verify_wrap(s, last_round);
    assert_int_equal(feox_close(s), FEOX_OK);
    unlink(path);
}

/* The compactor's check right after a store opens takes the live bytes from the store's load
 * (host.loaded_totals) instead of walking the whole index: a file that is all live (each key
 * written once) is neither walked nor rewritten, and the load's figure is the file's exact live
 * bytes; a file of three versions a key is still walked once and compacted. */
enum { OPEN_KEYS = 3000, OPEN_VALUE = 400 };

static void write_versions(const char *path, int versions)
{
    feox_config cfg = own_compactions_at(path);
    feox_store *s = open_ok(&cfg);
    char key[32], value[OPEN_VALUE];
    for (int v = 0; v < versions; v++)
        for (int i = 0; i < OPEN_KEYS; i++) {
            snprintf(key, sizeof key, "open-%05d", i);
            memset(value, 'a' + v, sizeof value);
            assert_int_equal(feox_insert(s, key, strlen(key), value, sizeof value, NULL, NULL),
                             FEOX_OK);
        }
    assert_int_equal(feox_close(s), FEOX_OK);
}

/* Open path (no background compactor), run one check, report walks and compactions; the keys hold
 * the last of the versions written. */
static void check_after_open(const char *path, int versions, uint64_t *walks,
                             uint64_t *compactions, uint64_t *live, uint64_t *file)
{
    feox_config cfg = own_compactions_at(path);
    feox_store *s = open_ok(&cfg);
    /* A file closed cleanly loads in the background (its index snapshot answers point reads
     * meanwhile): the check below is about the state the load leaves, so wait for it. */
    assert_true(feox_len(s, 0) > 0);
    feox_log_backend *b = feox_log_of(s->storage);
    feox_log_compact_if_worth(b);
    pthread_mutex_lock(&b->mu);
    *walks = b->live_walks;
    *compactions = b->stats.compactions;
    *live = b->live_bytes;
    *file = b->append_off;
    pthread_mutex_unlock(&b->mu);
    char value[OPEN_VALUE];
    memset(value, 'a' + versions - 1, sizeof value);
    for (int i = 0; i < OPEN_KEYS; i += 97) {
        char key[32];
        snprintf(key, sizeof key, "open-%05d", i);
        expect_stored(s, key, value, sizeof value);
    }
    assert_int_equal(feox_close(s), FEOX_OK);
}

static void test_check_after_open_takes_live_bytes_from_the_load(void **state)
{
    (void)state;
    char path[128];
    uint64_t walks, compactions, live, file;

    temp_store_path(path, sizeof path, "open-check");
    write_versions(path, 1); /* ~1.3 MiB, all live: past the minimum, not worth a rewrite */
    check_after_open(path, 1, &walks, &compactions, &live, &file);
    assert_true(file >= (1u << 20));
    assert_int_equal(walks, 0);
    assert_int_equal(compactions, 0);
    assert_int_equal(live, file); /* the load's figure is exact: every record is live */

    unlink(path);
    write_versions(path, 3); /* three versions a key: worth a rewrite */
    check_after_open(path, 3, &walks, &compactions, &live, &file);
    assert_int_equal(walks, 1);
    assert_int_equal(compactions, 1);
    assert_true(file * 2 < live * 3); /* the file is about its live bytes now */
    unlink(path);
}

/* A compaction keeps only its new generation's entries in the value cache (a generation number
 * comes round again after 65535 compactions, and a stale entry would then answer for a record of
 * the new file): feox_value_cache_keep_only drops the rest, and the cache stays usable. */
static void test_value_cache_keeps_one_generation(void **state)
{
    (void)state;
    feox_value_cache *c = feox_value_cache_new(1u << 20);
    assert_non_null(c);
    char value[100], out[100];
    memset(value, 'v', sizeof value);
    for (uint64_t gen = 1; gen <= 3; gen++)
        for (uint64_t off = 64; off < 64 + 10 * 148; off += 148)
            feox_value_cache_put(c, feox_log_location((uint32_t)gen, off), value, sizeof value);
    feox_stats before = {0}, after = {0};
    feox_value_cache_stats(c, &before);
    feox_value_cache_keep_only(c, ~FEOX_LOG_OFFSET_MASK, feox_log_location(2, 0));
    feox_value_cache_stats(c, &after);
    assert_int_equal(after.cache_bytes, before.cache_bytes / 3);
    assert_int_equal(after.cache_evictions, before.cache_evictions);
    for (uint64_t gen = 1; gen <= 3; gen++)
        for (uint64_t off = 64; off < 64 + 10 * 148; off += 148)
            assert_int_equal(
                feox_value_cache_get(c, feox_log_location((uint32_t)gen, off), out, sizeof out),
                gen == 2);
    /* The freed slots are reused. */
    feox_value_cache_put(c, feox_log_location(1, 64), value, sizeof value);
    assert_true(feox_value_cache_get(c, feox_log_location(1, 64), out, sizeof out));
    assert_memory_equal(out, value, sizeof out);
    feox_value_cache_free(c);
}

typedef struct in_flight_writer {
    feox_store *s;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool locked;
    atomic_bool published;
} in_flight_writer;

/* Hold a shard lock as a writer between its append and its publish does, for a while. */
static void *hold_shard_lock(void *arg)
{
    in_flight_writer *w = arg;
    pthread_mutex_t *shard_lock = &w->s->hash.shards[0].lock;
    pthread_mutex_lock(shard_lock);
    pthread_mutex_lock(&w->mu);
    w->locked = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mu);
    usleep(100 * 1000);
    atomic_store(&w->published, true);
    pthread_mutex_unlock(shard_lock);
    return NULL;
}

static int visit_checks_published(void *ctx, const feox_storage_record *r)
{
    (void)r;
    in_flight_writer *w = ctx;
    assert_true(atomic_load(&w->published));
    return 1; /* the first visit is enough */
}

/* The race of issue 11 item 12, made deterministic: compaction takes `start`, then scans the
 * index (for_each_live). A write between its append (before `start`) and its publish, holding
 * its key's shard lock, must have published before the scan visits anything; otherwise the scan
 * copies the key's previous version and the rewrite lacks the new one. Here a thread holds a
 * shard lock for 100 ms as such a writer would; the first visit must come after it let go. */
static void test_scan_waits_for_writes_in_flight(void **state)
{
    (void)state;
    char path[128];
    temp_store_path(path, sizeof path, "compact-inflight");
    feox_config cfg = own_compactions_at(path);
    feox_store *s = open_ok(&cfg);
    assert_int_equal(feox_insert(s, "k", 1, "v", 1, NULL, NULL), FEOX_OK);
    static in_flight_writer w;
    w.s = s;
    w.locked = false;
    atomic_store(&w.published, false);
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cond, NULL);
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, hold_shard_lock, &w), 0);
    pthread_mutex_lock(&w.mu);
    while (!w.locked)
        pthread_cond_wait(&w.cond, &w.mu);
    pthread_mutex_unlock(&w.mu);
    feox_log_backend *b = feox_log_of(s->storage);
    assert_int_equal(b->host.for_each_live(b->host.ctx, visit_checks_published, &w), FEOX_OK);
    pthread_join(thread, NULL);
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cond);
    assert_int_equal(feox_close(s), FEOX_OK);
    unlink(path);
}

static int count_live(void *ctx, const feox_storage_record *r)
{
    size_t *n = ctx;
    n[0]++;
    if (!r->value)
        n[1]++; /* cold: handed over without its bytes */
    return 0;
}

/* The live walk the compactor measures the file with hands cold versions over without reading
 * them back (it walks the index, not the public cursor). */
static void test_live_walk_reads_no_cold_value(void **state)
{
    (void)state;
    char path[128];
    temp_store_path(path, sizeof path, "compact-walk");
    feox_config cfg = own_compactions_at(path);
    cfg.max_memory = 96u << 10;
    feox_store *s = open_ok(&cfg);
    char key[32], value[1024];
    memset(value, 'v', sizeof value);
    for (int i = 0; i < 300; i++) {
        snprintf(key, sizeof key, "walk-%04d", i);
        assert_int_equal(feox_insert(s, key, strlen(key), value, sizeof value, NULL, NULL),
                         FEOX_OK);
    }
    assert_int_equal(feox_flush(s), FEOX_OK);
    feox_stats before, after;
    assert_int_equal(feox_get_stats(s, &before), FEOX_OK);
    feox_log_backend *b = feox_log_of(s->storage);
    size_t n[2] = {0, 0};
    assert_int_equal(b->host.for_each_live(b->host.ctx, count_live, n), FEOX_OK);
    assert_int_equal(n[0], 300);
    assert_true(n[1] > 0);
    assert_int_equal(feox_get_stats(s, &after), FEOX_OK);
    assert_int_equal(after.cache_hits + after.cache_misses,
                     before.cache_hits + before.cache_misses);
    assert_int_equal(after.disk_reads, before.disk_reads);
    assert_int_equal(feox_close(s), FEOX_OK);
    unlink(path);
}

/* A close tells the compactor to quit: a rewrite under way gives up at its next live record
 * (the old file stays the store, nothing lost), and so does a walk measuring the live bytes,
 * which leaves no partial measurement; a close does not wait for a whole pass over the keys. */
static void test_compaction_gives_up_when_the_store_closes(void **state)
{
    (void)state;
    char path[128];
    temp_store_path(path, sizeof path, "compact-quit");
    feox_config cfg = own_compactions_at(path);
    feox_store *s = open_ok(&cfg);
    char value[OVERWRITE_VALUE];
    overwrite_rounds(s, 50, value);
    assert_int_equal(feox_flush(s), FEOX_OK);
    feox_log_backend *b = feox_log_of(s->storage);
    feox_stats before, after;
    assert_int_equal(feox_get_stats(s, &before), FEOX_OK);

    atomic_store(&b->compactor_quit, true); /* as feox_log_stop_threads sets it */
    assert_int_equal(feox_compact(s), FEOX_ERR_STALE);
    feox_log_compact_if_worth(b);
    pthread_mutex_lock(&b->mu);
    uint64_t walks = b->live_walks;
    pthread_mutex_unlock(&b->mu);
    assert_int_equal(walks, 0);
    assert_int_equal(feox_get_stats(s, &after), FEOX_OK);
    assert_int_equal(after.compactions, before.compactions);
    assert_int_equal(after.file_size, before.file_size);
    assert_int_equal(after.io_errors, before.io_errors);
    expect_stored(s, "key-042", value, sizeof value);

    atomic_store(&b->compactor_quit, false);
    assert_int_equal(feox_compact(s), FEOX_OK);
    assert_int_equal(feox_get_stats(s, &after), FEOX_OK);
    assert_true(after.file_size < before.file_size / 10);
    assert_int_equal(feox_close(s), FEOX_OK);
    s = open_ok(&cfg);
    assert_int_equal(feox_len(s, 0), 100);
    expect_stored(s, "key-042", value, sizeof value);
    assert_int_equal(feox_close(s), FEOX_OK);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compaction_during_writes_loses_nothing),
        cmocka_unit_test(test_scan_waits_for_writes_in_flight),
        cmocka_unit_test(test_background_compaction_bounds_the_file),
        cmocka_unit_test(test_compaction_gives_up_when_the_store_closes),
        cmocka_unit_test(test_generation_wraps),
        cmocka_unit_test(test_value_cache_keeps_one_generation),
        cmocka_unit_test(test_live_walk_reads_no_cold_value),
        cmocka_unit_test(test_check_after_open_takes_live_bytes_from_the_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
