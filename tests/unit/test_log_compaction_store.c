/*
 * test_log_compaction_store.c — compaction through the public API while writers run: nothing
 * appended during a rewrite is lost, every key keeps its newest value across a reopen, and
 * after an overwrite storm the file is at most twice the live data once compaction has run.
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

enum { WRITERS = 4, KEYS_PER_WRITER = 500, ROUNDS = 40 };

static atomic_int writers_done;

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
            void *v;
            size_t len;
            feox_err err = feox_get(s, key, strlen(key), &v, &len, NULL);
            if (w[t].last_round[i] < 0) {
                assert_int_equal(err, FEOX_ERR_KEY_NOT_FOUND);
                continue;
            }
            assert_int_equal(err, FEOX_OK);
            int n = snprintf(value, sizeof value, "round %d of key %d by writer %d %0100d",
                             w[t].last_round[i], i, t, w[t].last_round[i]);
            assert_int_equal(len, (size_t)n);
            assert_memory_equal(v, value, len);
            feox_free(v);
        }
}

static void test_compaction_during_writes_loses_nothing(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "/tmp/feox-test-compact-store-%d.feox", (int)getpid());
    unlink(path);
    feox_config cfg;
    feox_config_init(&cfg);
    cfg.path = path;
    cfg.disable_compaction = true; /* compactions below are the test's own, back to back */
    feox_store *s;
    assert_int_equal(feox_open(&cfg, &s), FEOX_OK);
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
     * (48 bytes of record framing per key, see engine/FORMAT.md). */
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

    assert_int_equal(feox_open(&cfg, &s), FEOX_OK);
    verify(s, w);
    assert_int_equal(feox_get_stats(s, &st), FEOX_OK);
    assert_int_equal(st.recovery_dropped_records, 0);
    assert_int_equal(feox_close(s), FEOX_OK);
    unlink(path);
}

static void test_background_compaction_bounds_the_file(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "/tmp/feox-test-compact-bg-%d.feox", (int)getpid());
    unlink(path);
    feox_config cfg;
    feox_config_init(&cfg);
    cfg.path = path;
    cfg.flush_interval_ms = 10;
    feox_store *s;
    assert_int_equal(feox_open(&cfg, &s), FEOX_OK);
    char key[32], value[200];
    memset(value, 'x', sizeof value);
    /* 100 keys x 200 bytes overwritten until ~8 MiB have been written. */
    for (int round = 0; round < 400; round++)
        for (int i = 0; i < 100; i++) {
            snprintf(key, sizeof key, "key-%03d", i);
            value[0] = (char)('a' + round % 26);
            assert_int_equal(feox_insert(s, key, strlen(key), value, sizeof value, NULL, NULL),
                             FEOX_OK);
        }
    feox_stats st;
    for (int i = 0; i < 500; i++) { /* the compactor checks every second, or when poked */
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
    assert_int_equal(feox_open(&cfg, &s), FEOX_OK);
    assert_int_equal(feox_len(s), 100);
    void *v;
    size_t len;
    assert_int_equal(feox_get(s, "key-042", 7, &v, &len, NULL), FEOX_OK);
    assert_int_equal(len, sizeof value);
    assert_int_equal(((char *)v)[0], 'a' + 399 % 26);
    feox_free(v);
    assert_int_equal(feox_close(s), FEOX_OK);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compaction_during_writes_loses_nothing),
        cmocka_unit_test(test_background_compaction_bounds_the_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
