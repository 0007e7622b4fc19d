/*
 * test_store_settle.c — a store's maintenance thread settles its frees (store.c
 * maintenance_main, base/alloc.h): the entries and versions of keys a writer deleted, which the
 * epoch reclamation frees on that thread, do not stay in glibc's fast bins of the writer's arena
 * (mallinfo2's smblks), where the next request of 1 KiB or more there (the reopen after a close)
 * would merge them all at once. Without settling every one of them stays there (the test skips
 * if this malloc does not keep such blocks in fast bins at all).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
#include <malloc.h>
#define HAVE_MALLINFO2 1
#endif

#include "base/epoch.h"
#include "feox.h"
#include "feox_test_support.h"

#define KEYS 100000
#define PROBES 100000
#define PROBE_BYTES 64 /* a fast-bin size */

#if defined(HAVE_MALLINFO2) && !FTEST_UNDER_ASAN
static void *free_probes(void *arg)
{
    void **at = arg;
    for (size_t i = 0; i < PROBES; i++)
        free(at[i]);
    return NULL;
}

/* Whether blocks this thread allocated and another thread freed stay in fast bins (glibc's
 * malloc as this test knows it); merged again before it returns. */
static bool frees_stay_in_fast_bins(void)
{
    void **at = malloc(PROBES * sizeof *at);
    assert_non_null(at);
    for (size_t i = 0; i < PROBES; i++) {
        at[i] = malloc(PROBE_BYTES);
        assert_non_null(at[i]);
    }
    long before = (long)mallinfo2().smblks;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, free_probes, at), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    long left = (long)mallinfo2().smblks - before;
    void *volatile merge = malloc(4096); /* merges them (a request past the small bins) */
    free(merge);
    free(at);
    return left >= PROBES / 2;
}
#endif

static void test_reclaimed_keys_leave_few_fast_blocks(void **state)
{
    (void)state;
#if defined(HAVE_MALLINFO2) && !FTEST_UNDER_ASAN
    if (!frees_stay_in_fast_bins())
        skip(); /* this malloc merges such blocks on its own: nothing to settle */
    feox_store *s = NULL;
    assert_int_equal(feox_open(NULL, &s), FEOX_OK); /* memory only: blocks from malloc */
    char key[32], value[40];
    memset(value, 'v', sizeof value);
    for (unsigned i = 0; i < KEYS; i++) {
        int len = snprintf(key, sizeof key, "settle-%08u", i);
        assert_int_equal(feox_insert(s, key, (size_t)len, value, sizeof value, NULL, NULL),
                         FEOX_OK);
    }
    void *volatile merge = malloc(4096); /* fast bins empty before the deletes */
    free(merge);
    long before = (long)mallinfo2().smblks;
    for (unsigned i = 0; i < KEYS; i++) {
        int len = snprintf(key, sizeof key, "settle-%08u", i);
        assert_int_equal(feox_delete(s, key, (size_t)len, NULL), FEOX_OK);
    }
    /* The maintenance thread reclaims every 10 ms: wait until it freed them (no time limit
     * but a generous one for a loaded machine). */
    for (int waited_ms = 0; feox_epoch_pending_bytes() && waited_ms < 60000; waited_ms++)
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    assert_int_equal(feox_epoch_pending_bytes(), 0);
    long left = (long)mallinfo2().smblks - before;
    /* Merged every FEOX_SETTLE_EVERY frees; what the last run left, at most (twice: a key's
     * entry and its version may be two blocks). Unsettled: KEYS or more. */
    assert_true(left <= 2 * 1024);
    assert_int_equal(feox_close(s), FEOX_OK);
#else
    skip(); /* mallinfo2 counts glibc's own malloc only */
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reclaimed_keys_leave_few_fast_blocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
