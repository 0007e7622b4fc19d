/*
 * failing_alloc.c — the allocation-failure allocator of failing_alloc.h.
 */
#include "failing_alloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "feox.h"

ftest_alloc_fault ftest_fault;
static pthread_t test_thread;

static bool should_fail(void)
{
    if (!ftest_fault.injecting ||
        (pthread_equal(pthread_self(), test_thread) != 0) == ftest_fault.other_threads)
        return false;
    unsigned long n = ++ftest_fault.alloc_count, at = ftest_fault.fail_at;
    if (!at || (ftest_fault.persistent ? n < at : n != at))
        return false;
    ftest_fault.failure_injected = true;
    return true;
}

static void *failing_malloc(size_t size)
{
    if (!should_fail())
        return malloc(size);
    errno = ENOMEM;
    return NULL;
}

static void *failing_realloc(void *p, size_t size)
{
    if (!should_fail())
        return realloc(p, size);
    errno = ENOMEM;
    return NULL;
}

void ftest_failing_alloc_install(bool persistent)
{
    ftest_fault = (ftest_alloc_fault){.persistent = persistent};
    test_thread = pthread_self();
    feox_set_allocator(failing_malloc, failing_realloc, free);
}

void ftest_failing_alloc_count_this_thread(void)
{
    test_thread = pthread_self();
}

void ftest_failing_alloc_remove(void)
{
    feox_set_allocator(NULL, NULL, NULL);
}
