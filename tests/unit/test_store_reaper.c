/*
 * test_store_reaper.c — a large store's memory given back on the reaper thread after its last
 * feox_close (engine/store/store_reaper.c):
 *   release    after feox_close_wait every allocation of the store is given back, and a value
 *              handle taken before the close still reads its bytes until it is released;
 *   reopen     the same store file opens again at once, with every key, while the old
 *              instance may still be being freed;
 *   snapshot   a store file closed after writes gets its index snapshot, and is then handed
 *              over as any other: the closing thread frees none of its keys;
 *   buffers    nor the store file's write buffers (64 KiB to 8 MiB each, grown by realloc:
 *              log_buffer.c): the reaper frees them with the rest (log_snapshot.h
 *              feox_log_close_take_buffers), all of them by feox_close_wait;
 *   fork       a child forked right after such a close (the reaper possibly busy) opens, fills,
 *              closes and waits for stores of its own; the parent's release completes;
 *   exit       a process that closes a large store and calls exit() at once exits cleanly
 *              (the exit handler waits for the reaper and stops it; under LeakSanitizer nothing
 *              is reported).
 * Children report through their exit status: 0, or the line of the first failed check.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/helpers.h"
#include "feox.h"
#include "feox_test_support.h"
#include "storage/log/log_format.h"
#include "store/store_internal.h"
#include "temp_store_dir.h"

/* More than FEOX_REAP_MIN_KEYS (store_internal.h), so the close hands the store over. */
#define LARGE 70000

static atomic_long outstanding; /* allocations not yet freed, through the counting allocator */
static _Thread_local long freed_here; /* frees through it made by this thread */

static void *counting_malloc(size_t n)
{
    void *p = malloc(n);
    if (p)
        atomic_fetch_add(&outstanding, 1);
    return p;
}

static void *counting_realloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (q && !p)
        atomic_fetch_add(&outstanding, 1);
    return q;
}

static void counting_free(void *p)
{
    if (p) {
        atomic_fetch_sub(&outstanding, 1);
        freed_here++;
    }
    free(p);
}

static void key_of(unsigned i, char *buf, size_t size)
{
    snprintf(buf, size, "key-%08u", i);
}

/* A store (memory when path is NULL) holding n keys "key-%08u" with the value "v<i>". */
static feox_store *filled_store(const char *path, unsigned n)
{
    feox_config cfg;
    feox_config_init(&cfg);
    cfg.path = path;
    feox_store *s = NULL;
    if (feox_open(&cfg, &s) != FEOX_OK)
        return NULL;
    for (unsigned i = 0; i < n; i++) {
        char key[32], value[32];
        key_of(i, key, sizeof key);
        int len = snprintf(value, sizeof value, "v%u", i);
        if (feox_insert(s, key, strlen(key), value, (size_t)len, NULL, NULL) != FEOX_OK) {
            feox_close(s);
            return NULL;
        }
    }
    return s;
}

static void test_release_and_a_handle_that_outlives_it(void **state)
{
    (void)state;
    feox_set_allocator(counting_malloc, counting_realloc, counting_free);
    long before = atomic_load(&outstanding);
    feox_store *s = filled_store(NULL, LARGE);
    assert_non_null(s);
    assert_true(atomic_load(&outstanding) > before + LARGE);
    feox_value *v = NULL;
    assert_int_equal(feox_get_ref(s, "key-00000042", 12, &v), FEOX_OK);
    assert_int_equal(feox_close(s), FEOX_OK);
    feox_close_wait();
    /* Everything of the store is back but the handle's version (and at most a few allocations
     * of the reaper thread's own epoch record). */
    assert_true(atomic_load(&outstanding) < before + 16);
    assert_int_equal(feox_value_size(v), 3);
    assert_memory_equal(feox_value_data(v), "v42", 3);
    feox_value_release(v);
    feox_close_wait();
    feox_set_allocator(NULL, NULL, NULL);
}

static void test_reopen_at_once(void **state)
{
    (void)state;
    char dir[] = "/tmp/feox-reaper-XXXXXX", path[128];
    assert_int_equal(ftest_temp_store_make(dir, path, sizeof path), 0);
    feox_store *s = filled_store(path, LARGE);
    assert_non_null(s);
    assert_int_equal(feox_close(s), FEOX_OK);
    feox_config cfg;
    feox_config_init(&cfg);
    cfg.path = path;
    assert_int_equal(feox_open(&cfg, &s), FEOX_OK);
    assert_int_equal(feox_len(s, 0), LARGE);
    char value[32];
    size_t len = 0;
    assert_int_equal(feox_get_into(s, "key-00069999", 12, value, sizeof value, &len, NULL),
                     FEOX_OK);
    assert_int_equal(len, 6);
    assert_memory_equal(value, "v69999", 6);
    assert_int_equal(feox_close(s), FEOX_OK);
    feox_close_wait();
    assert_int_equal(ftest_temp_store_remove(dir, path), 0);
}

/* Whether the file ends in an index snapshot's footer (FORMAT.md). */
static bool ends_in_snapshot(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true((uint64_t)st.st_size > FEOX_LOG_HEADER_SIZE + FEOX_LOG_SNAPSHOT_FOOTER_SIZE);
    uint8_t footer[FEOX_LOG_SNAPSHOT_FOOTER_SIZE];
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, footer, sizeof footer, st.st_size - (off_t)sizeof footer),
                     (ssize_t)sizeof footer);
    close(fd);
    return feox_get_le32(footer) == FEOX_LOG_RECORD_MAGIC && footer[4] == FEOX_LOG_SNAPSHOT_FOOTER;
}

static void test_close_after_writes_writes_the_snapshot_then_hands_over(void **state)
{
    (void)state;
    char dir[] = "/tmp/feox-reaper-XXXXXX", path[128];
    assert_int_equal(ftest_temp_store_make(dir, path, sizeof path), 0);
    feox_set_allocator(counting_malloc, counting_realloc, counting_free);
    long before = atomic_load(&outstanding);
    feox_store *s = filled_store(path, LARGE);
    assert_non_null(s);
    long freed_before_close = freed_here;
    assert_int_equal(feox_close(s), FEOX_OK);
    /* Both indexes, the entries and their versions (2 allocations a key or more) are the
     * reaper's: the closing thread freed only what closing the file took. */
    assert_true(freed_here - freed_before_close < LARGE / 10);
    assert_true(ends_in_snapshot(path));
    feox_close_wait();
    assert_true(atomic_load(&outstanding) < before + 16);
    feox_set_allocator(NULL, NULL, NULL);
    /* The snapshot names every key: each one reads back (the first ones from the snapshot). */
    feox_config cfg;
    feox_config_init(&cfg);
    cfg.path = path;
    assert_int_equal(feox_open(&cfg, &s), FEOX_OK);
    for (unsigned i = 0; i < LARGE; i += 7) {
        char key[32], value[32], expected[32];
        key_of(i, key, sizeof key);
        int expected_len = snprintf(expected, sizeof expected, "v%u", i);
        size_t len = 0;
        assert_int_equal(feox_get_into(s, key, strlen(key), value, sizeof value, &len, NULL),
                         FEOX_OK);
        assert_int_equal(len, (size_t)expected_len);
        assert_memory_equal(value, expected, len);
    }
    assert_int_equal(feox_len(s, 0), LARGE);
    assert_int_equal(feox_close(s), FEOX_OK);
    assert_true(ends_in_snapshot(path)); /* nothing written: the file as it was */
    feox_close_wait();
    assert_int_equal(ftest_temp_store_remove(dir, path), 0);
}

/* An allocator that notes the blocks of 64 KiB or more realloc made: the write buffers of the
 * log backend in these tests (log_buffer.c grows them by realloc, from 64 KiB). Plain malloc
 * underneath, so blocks pass freely between it and the default allocator. */
#define BUFFER_MIN ((size_t)64 << 10)
#define MAX_BUFFERS 64
static pthread_mutex_t buffers_lock = PTHREAD_MUTEX_INITIALIZER;
static void *buffers[MAX_BUFFERS]; /* [buffers_lock] live ones; NULL: a free place */
static bool buffers_overflowed;    /* [buffers_lock] more than MAX_BUFFERS at once */
static _Thread_local bool closing; /* this thread is in the feox_close tested */
static _Thread_local long buffers_freed_closing; /* buffers it freed meanwhile */

/* [buffers_lock] p's place among the buffers, or -1. */
static int place_of(const void *p)
{
    for (int i = 0; p && i < MAX_BUFFERS; i++)
        if (buffers[i] == p)
            return i;
    return -1;
}

static int live_buffers(void)
{
    pthread_mutex_lock(&buffers_lock);
    int n = 0;
    for (int i = 0; i < MAX_BUFFERS; i++)
        n += buffers[i] != NULL;
    pthread_mutex_unlock(&buffers_lock);
    return n;
}

/* (not malloc itself: with it, the engine would count as on the default allocator, and
 * settling, base/alloc.h, would move a block with realloc behind noting_realloc's back) */
static void *plain_malloc(size_t n)
{
    return malloc(n);
}

static void *noting_realloc(void *p, size_t n)
{
    pthread_mutex_lock(&buffers_lock); /* (held across: p's address is not reused meanwhile) */
    int was = place_of(p);
    void *q = realloc(p, n);
    if (q && was >= 0)
        buffers[was] = NULL;
    if (q && n >= BUFFER_MIN) {
        int i = 0;
        while (i < MAX_BUFFERS && buffers[i])
            i++;
        if (i == MAX_BUFFERS)
            buffers_overflowed = true;
        else
            buffers[i] = q;
    }
    pthread_mutex_unlock(&buffers_lock);
    return q;
}

static void noting_free(void *p)
{
    pthread_mutex_lock(&buffers_lock);
    int was = place_of(p);
    if (was >= 0) {
        buffers[was] = NULL;
        if (closing)
            buffers_freed_closing++;
    }
    free(p);
    pthread_mutex_unlock(&buffers_lock);
}

static void test_close_leaves_the_write_buffers_to_the_reaper(void **state)
{
    (void)state;
    char dir[] = "/tmp/feox-reaper-XXXXXX", path[128];
    assert_int_equal(ftest_temp_store_make(dir, path, sizeof path), 0);
    feox_set_allocator(plain_malloc, noting_realloc, noting_free);
    feox_store *s = filled_store(path, LARGE);
    assert_non_null(s);
    assert_true(live_buffers() >= 1); /* (the one the last writes went to) */
    closing = true;
    assert_int_equal(feox_close(s), FEOX_OK);
    closing = false;
    assert_int_equal(buffers_freed_closing, 0);
    assert_true(ends_in_snapshot(path));
    feox_close_wait();
    assert_int_equal(live_buffers(), 0);
    assert_false(buffers_overflowed);
    feox_set_allocator(NULL, NULL, NULL);
    assert_int_equal(ftest_temp_store_remove(dir, path), 0);
}

/* Fork; the child runs child() and exits with what it returns (0 = every check held) through
 * exit(), so that the exit handler waits for and stops the child's own reaper. The child's
 * status (ftest_wait_child), or -1 if the fork failed. */
static int run_in_child(int (*child)(void))
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0)
        exit(child());
    return ftest_wait_child(pid);
}

/* The child's part of the fork test: stores of its own, closed and waited for. */
static int child_fills_and_closes(void)
{
    alarm(60); /* a deadlock fails the test instead of hanging it */
    for (int round = 0; round < 2; round++) {
        feox_store *s = filled_store(NULL, LARGE);
        FTEST_CHILD_CHECK(s != NULL);
        FTEST_CHILD_CHECK(feox_len(s, 0) == LARGE);
        FTEST_CHILD_CHECK(feox_close(s) == FEOX_OK);
    }
    feox_close_wait();
    return 0; /* exit() through the exit handler: waits for and stops the child's own reaper */
}

static void test_fork_right_after_a_close(void **state)
{
    (void)state;
    feox_store *big = filled_store(NULL, 4 * LARGE);
    assert_non_null(big);
    assert_int_equal(feox_close(big), FEOX_OK); /* the reaper is likely still freeing it */
    assert_int_equal(run_in_child(child_fills_and_closes), 0);
    feox_close_wait();
}

static int child_closes_and_exits(void)
{
    alarm(60);
    feox_store *s = filled_store(NULL, 4 * LARGE);
    FTEST_CHILD_CHECK(s != NULL);
    FTEST_CHILD_CHECK(feox_close(s) == FEOX_OK);
    return 0; /* exit() at once: the reaper is still freeing */
}

static void test_exit_while_releasing(void **state)
{
    (void)state;
    assert_int_equal(run_in_child(child_closes_and_exits), 0);
}

/* The reaper's steps and pauses, seen through the test hooks of store_internal.h. */
static pthread_mutex_t step_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t step_cond = PTHREAD_COND_INITIALIZER;
static int steps, pauses;
static bool hold_first_step, first_step_released;

static void count_step(void)
{
    pthread_mutex_lock(&step_lock);
    steps++;
    pthread_cond_broadcast(&step_cond);
    while (hold_first_step && !first_step_released)
        pthread_cond_wait(&step_cond, &step_lock);
    pthread_mutex_unlock(&step_lock);
}

static void count_pause(void)
{
    pthread_mutex_lock(&step_lock);
    pauses++;
    pthread_cond_broadcast(&step_cond);
    pthread_mutex_unlock(&step_lock);
}

static void wait_until_at_least(const int *count, int n)
{
    pthread_mutex_lock(&step_lock);
    while (*count < n)
        pthread_cond_wait(&step_cond, &step_lock);
    pthread_mutex_unlock(&step_lock);
}

static int counted(const int *count)
{
    pthread_mutex_lock(&step_lock);
    int n = *count;
    pthread_mutex_unlock(&step_lock);
    return n;
}

/* The gate: the first allocation of the armed thread lets the held reaper go and waits until it
 * pauses (a feox_open that does not count itself in would wait here for ever: alarm). */
static _Thread_local bool gate_armed;
static long outstanding_at_pause;

static void *gated_malloc(size_t n)
{
    if (gate_armed) {
        gate_armed = false;
        pthread_mutex_lock(&step_lock);
        first_step_released = true;
        pthread_cond_broadcast(&step_cond);
        while (!pauses)
            pthread_cond_wait(&step_cond, &step_lock);
        outstanding_at_pause = atomic_load(&outstanding);
        pthread_mutex_unlock(&step_lock);
    }
    return counting_malloc(n);
}

static int child_opens_while_the_reaper_frees(void)
{
    alarm(60);
    feox_reaper_step_hook = count_step;
    feox_reaper_pause_hook = count_pause;
    hold_first_step = true;
    feox_set_allocator(gated_malloc, counting_realloc, counting_free);
    long before = atomic_load(&outstanding);
    feox_store *big = filled_store(NULL, LARGE);
    FTEST_CHILD_CHECK(big != NULL);
    FTEST_CHILD_CHECK(feox_close(big) == FEOX_OK);
    wait_until_at_least(&steps, 1); /* the reaper is held before it frees an entry */
    gate_armed = true;
    feox_store *s = NULL;
    FTEST_CHILD_CHECK(feox_open(NULL, &s) == FEOX_OK); /* the gate ran in it: the reaper paused */
    FTEST_CHILD_CHECK(counted(&pauses) == 1);
    /* Paused before freeing an entry: the big store's allocations were all there. */
    FTEST_CHILD_CHECK(outstanding_at_pause > before + LARGE);
    FTEST_CHILD_CHECK(feox_insert(s, "k", 1, "v", 1, NULL, NULL) == FEOX_OK);
    FTEST_CHILD_CHECK(feox_close(s) == FEOX_OK);
    feox_close_wait(); /* the reaper resumed once the open returned, and finished */
    FTEST_CHILD_CHECK(counted(&steps) > LARGE / FEOX_REAP_STEP);
    FTEST_CHILD_CHECK(counted(&pauses) == 1);
    FTEST_CHILD_CHECK(atomic_load(&outstanding) < before + 16);
    return 0;
}

static void test_an_open_goes_first(void **state)
{
    (void)state;
    assert_int_equal(run_in_child(child_opens_while_the_reaper_frees), 0);
}

static int child_forks_while_the_reaper_is_paused(void)
{
    alarm(60);
    feox_reaper_step_hook = count_step;
    feox_reaper_pause_hook = count_pause;
    feox_store *big = filled_store(NULL, LARGE);
    FTEST_CHILD_CHECK(big != NULL);
    feox_reaper_open_begin(); /* an open in progress (in another thread, say) */
    FTEST_CHILD_CHECK(feox_close(big) == FEOX_OK);
    wait_until_at_least(&pauses, 1);
    /* The reaper goes on: the fork waits for the store, not for the open. The grandchild's
     * reaper frees its stores: no open in progress there. */
    FTEST_CHILD_CHECK(run_in_child(child_fills_and_closes) == 0);
    feox_close_wait(); /* the store was freed before the fork, the open still in progress */
    feox_reaper_open_end();
    return 0;
}

static void test_fork_while_the_reaper_is_paused(void **state)
{
    (void)state;
    assert_int_equal(run_in_child(child_forks_while_the_reaper_is_paused), 0);
}

/* An open that never ends (opens following one another without a gap, in many threads) makes the
 * reaper step aside for a bounded time per store only: it still frees the store. */
static int child_closes_while_an_open_never_ends(void)
{
    alarm(60);
    feox_reaper_step_hook = count_step;
    feox_reaper_pause_hook = count_pause;
    feox_set_allocator(counting_malloc, counting_realloc, counting_free);
    long before = atomic_load(&outstanding);
    feox_store *big = filled_store(NULL, LARGE);
    FTEST_CHILD_CHECK(big != NULL);
    feox_reaper_open_begin(); /* never ended */
    FTEST_CHILD_CHECK(feox_close(big) == FEOX_OK);
    feox_close_wait(); /* waited for ever before the bound */
    FTEST_CHILD_CHECK(counted(&pauses) >= 1);
    FTEST_CHILD_CHECK(atomic_load(&outstanding) < before + 16);
    feox_reaper_open_end();
    return 0;
}

static void test_opens_without_a_gap_do_not_keep_the_memory(void **state)
{
    (void)state;
    assert_int_equal(run_in_child(child_closes_while_an_open_never_ends), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_release_and_a_handle_that_outlives_it),
        cmocka_unit_test(test_reopen_at_once),
        cmocka_unit_test(test_close_after_writes_writes_the_snapshot_then_hands_over),
        cmocka_unit_test(test_close_leaves_the_write_buffers_to_the_reaper),
        cmocka_unit_test(test_fork_right_after_a_close),
        cmocka_unit_test(test_exit_while_releasing),
        cmocka_unit_test(test_an_open_goes_first),
        cmocka_unit_test(test_fork_while_the_reaper_is_paused),
        cmocka_unit_test(test_opens_without_a_gap_do_not_keep_the_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
