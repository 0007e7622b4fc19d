/*
 * test_alloc_settle.c — settling (base/alloc.h): a thread that frees many small blocks another
 * thread allocated, as the reaper frees a closed store's entries and versions.
 *   fast bins   with glibc's malloc, a settling thread leaves few of them in the allocating
 *               thread's fast bins (mallinfo2's smblks), where that thread's next request of
 *               1 KiB or more would merge them all at once; the same frees without settling
 *               leave every one there (the case settling exists for: the test skips if this
 *               malloc does not behave so);
 *   allocator   with an allocator from feox_set_allocator, settling leaves its blocks alone
 *               (malloc's realloc would abort on them): each goes back through its free, once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
#include <malloc.h>
#define HAVE_MALLINFO2 1
#endif

#include "base/alloc.h"
#include "feox.h"
#include "feox_test_support.h"

/* Pairs as a store written through the API holds them: a small block (an entry: a fast-bin
 * size) next to a larger one (its version, past the fast bins). */
#define PAIRS 100000
#define SMALL_BYTES 80
#define LARGE_BYTES 136

typedef struct blocks {
    void *at[2 * PAIRS];
    bool settle; /* the freeing thread settles */
} blocks;

static void allocate_pairs(blocks *b)
{
    for (size_t i = 0; i < PAIRS; i++) {
        b->at[2 * i] = feox_mem_alloc(SMALL_BYTES);
        b->at[2 * i + 1] = feox_mem_alloc(LARGE_BYTES);
        assert_non_null(b->at[2 * i]);
        assert_non_null(b->at[2 * i + 1]);
        memset(b->at[2 * i], 'e', SMALL_BYTES);
        memset(b->at[2 * i + 1], 'v', LARGE_BYTES);
    }
}

static void *free_all(void *arg)
{
    blocks *b = arg;
    if (b->settle)
        feox_mem_settle_begin();
    for (size_t i = 0; i < 2 * PAIRS; i++)
        feox_mem_free(b->at[i]);
    if (b->settle)
        feox_mem_settle_end();
    return NULL;
}

/* Allocated here, freed on a thread of their own (settling or not). */
static void free_on_another_thread(blocks *b, bool settle)
{
    b->settle = settle;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, free_all, b), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
}

static void test_settling_leaves_few_fast_blocks(void **state)
{
    (void)state;
#if defined(HAVE_MALLINFO2) && !FTEST_UNDER_ASAN
    blocks *b = malloc(sizeof *b);
    assert_non_null(b);

    allocate_pairs(b);
    long before = (long)mallinfo2().smblks;
    free_on_another_thread(b, false);
    long unsettled = (long)mallinfo2().smblks - before;
    void *volatile merge = malloc(4096); /* merges them (a request past the small bins) */
    free(merge);
    if (unsettled < PAIRS / 2) {
        free(b);
        skip(); /* this malloc merges such blocks on its own: nothing to settle */
    }

    allocate_pairs(b);
    before = (long)mallinfo2().smblks;
    free_on_another_thread(b, true);
    long settled = (long)mallinfo2().smblks - before;
    /* Merged every FEOX_SETTLE_EVERY frees; what the last run left, at most. */
    assert_true(settled <= FEOX_SETTLE_EVERY);
    free(b);
#else
    skip(); /* mallinfo2 counts glibc's own malloc only */
#endif
}

static int mallocs, frees;

/* An allocator whose blocks malloc does not know (16 bytes into one of its blocks): a realloc
 * or free of one by anything but this allocator would abort. */
#define FOREIGN_OFFSET 16

static void *foreign_malloc(size_t size)
{
    mallocs++;
    char *p = malloc(size + FOREIGN_OFFSET);
    return p ? p + FOREIGN_OFFSET : NULL;
}

static void *foreign_realloc(void *ptr, size_t size)
{
    char *p = realloc(ptr ? (char *)ptr - FOREIGN_OFFSET : NULL, size + FOREIGN_OFFSET);
    return p ? p + FOREIGN_OFFSET : NULL;
}

static void foreign_free(void *ptr)
{
    if (ptr) {
        frees++;
        free((char *)ptr - FOREIGN_OFFSET);
    }
}

static void test_settling_leaves_an_allocator_alone(void **state)
{
    (void)state;
    blocks *b = malloc(sizeof *b);
    assert_non_null(b);
    feox_set_allocator(foreign_malloc, foreign_realloc, foreign_free);
    mallocs = frees = 0;
    allocate_pairs(b);
    free_on_another_thread(b, true); /* the counters: only that thread touches them meanwhile */
    assert_int_equal(mallocs, 2 * PAIRS);
    assert_int_equal(frees, 2 * PAIRS);
    feox_set_allocator(NULL, NULL, NULL);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_settling_leaves_few_fast_blocks),
        cmocka_unit_test(test_settling_leaves_an_allocator_alone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
