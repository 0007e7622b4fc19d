/*
 * failing_alloc.h — an engine allocator for allocation-failure tests: while armed, it counts the
 * test thread's allocations and makes allocation number fail_at fail (or, in persistent mode,
 * that one and every later one until disarmed), setting errno = ENOMEM as malloc does. With
 * other_threads, it counts (and fails) instead the allocations of every thread but the test's: a
 * worker the engine starts (one at a time: the count is a plain one, read once it is joined).
 * Install it with ftest_failing_alloc_install (feox_set_allocator underneath).
 */
#ifndef FTEST_FAILING_ALLOC_H
#define FTEST_FAILING_ALLOC_H

#include <stdbool.h>

typedef struct ftest_alloc_fault {
    bool injecting;            /* count (and fail) allocations of the test thread */
    unsigned long alloc_count; /* allocations counted so far in this run */
    unsigned long fail_at;     /* the allocation number that fails; 0 = none */
    bool failure_injected;     /* the failing allocation happened during the current call */
    /* allocation fail_at and every later one in the same call fail (as SQLite's "persistent"
     * OOM tests do), so code that retries an allocation cannot mask the failure */
    bool persistent;
    bool other_threads; /* the threads other than the test's, not the test thread */
} ftest_alloc_fault;

extern ftest_alloc_fault ftest_fault;

/* Route engine allocations through the failing allocator, counting the calling thread's. */
void ftest_failing_alloc_install(bool persistent);
/* Count (and fail) the calling thread's allocations instead of the installing thread's (a test
 * hook on an engine thread: the background load's). */
void ftest_failing_alloc_count_this_thread(void);
/* Back to malloc/realloc/free. */
void ftest_failing_alloc_remove(void);

#endif
