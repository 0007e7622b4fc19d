/*
 * test_alloc_large.c — the engine's large scratch arrays (base/alloc.h feox_mem_alloc_large):
 * usable and aligned as malloc's at every size, their own mapping with the default allocator (it
 * never sees them), and through the allocator from feox_set_allocator when there is one (so
 * allocation-failure tests reach them), freed by the one that made them; a mapping starts on a
 * 2 MiB boundary (huge pages from its first byte); a range of one faulted in by one call is then
 * written without page faults. Scratch (feox_mem_alloc_scratch, feox_mem_calloc_scratch) is the
 * same at any size: with the default allocator a mapping of its own (the malloc heap never sees
 * it: its in-use bytes do not move), zero-filled by calloc, through the allocator from
 * feox_set_allocator when there is one. A huge-page array's allocation touches none of its
 * pages (its header has a page of its own); feox_mem_release_large gives back the whole pages of
 * a range, which then read as zero, and leaves the rest and the header as they were.
 * feox_mem_prefault does the same for any writable range (a buffer from malloc): written then
 * without page faults, its bytes and its neighbours' as they were.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "base/alloc.h"
#include "base/slab.h"
#include "feox.h"

static int mallocs, frees;

static void *counting_malloc(size_t size)
{
    mallocs++;
    return malloc(size);
}

static void *counting_realloc(void *ptr, size_t size)
{
    return realloc(ptr, size);
}

static void counting_free(void *ptr)
{
    if (ptr)
        frees++;
    free(ptr);
}

/* Every byte is writable, the array is aligned for any type, and it frees cleanly. */
static void fill_and_free(size_t size)
{
    uint8_t *p = feox_mem_alloc_large(size);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % _Alignof(max_align_t), 0);
    memset(p, 0xa5, size);
    assert_int_equal(p[0], 0xa5);
    assert_int_equal(p[size - 1], 0xa5);
    feox_mem_free_large(p);
}

static void test_default_allocator_sizes(void **state)
{
    (void)state;
    fill_and_free(1);
    fill_and_free(4096);
    fill_and_free(FEOX_LARGE_MIN - 1);
    fill_and_free(FEOX_LARGE_MIN);
    fill_and_free(3 * FEOX_LARGE_MIN + 17);
    feox_mem_free_large(NULL);
}

static void test_custom_allocator_sees_every_large_array(void **state)
{
    (void)state;
    feox_set_allocator(counting_malloc, counting_realloc, counting_free);
    mallocs = frees = 0;
    fill_and_free(FEOX_LARGE_MIN * 2);
    fill_and_free(100);
    feox_set_allocator(NULL, NULL, NULL);
    assert_int_equal(mallocs, 2);
    assert_int_equal(frees, 2);
}

static void test_default_allocator_maps_large_arrays(void **state)
{
    (void)state;
    /* Installed but not in use for the large one: a counting allocator is not the default, so
     * here the default is restored and the counters must not move while large arrays come and
     * go (they are mappings of their own). */
    mallocs = frees = 0;
    fill_and_free(FEOX_LARGE_MIN * 2);
    assert_int_equal(mallocs, 0);
    assert_int_equal(frees, 0);
}

/* A large array with the default allocator starts within the first 4 KiB of a 2 MiB huge page
 * (its mapping from the boundary, then the header), at several sizes, while other mappings come
 * and go in between. Under AddressSanitizer large arrays come from malloc: nothing to check. */
static void test_large_arrays_start_on_a_huge_page(void **state)
{
    (void)state;
#ifndef FEOX_SLAB_POISON
    const size_t sizes[] = {FEOX_LARGE_MIN, FEOX_LARGE_MIN + 12345, 3 * FEOX_LARGE_MIN + 17};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint8_t *p = feox_mem_alloc_large(sizes[i]);
        assert_non_null(p);
        assert_true(((uintptr_t)p & (((uintptr_t)2 << 20) - 1)) < 4096);
        memset(p, 1, sizes[i]);
        feox_mem_free_large(p);
    }
#endif
}

/* feox_mem_large_mapped counts a large array's mapping while it lives (memory measurements add
 * it: mallinfo2 does not see it), and nothing for one that came from the allocator. */
static void test_large_mapped_bytes_are_counted(void **state)
{
    (void)state;
    size_t before = feox_mem_large_mapped();
    uint8_t *small = feox_mem_alloc_large(4096);
    assert_non_null(small);
    assert_int_equal(feox_mem_large_mapped(), before);
    uint8_t *big = feox_mem_alloc_large(FEOX_LARGE_MIN + 100);
    assert_non_null(big);
#ifndef FEOX_SLAB_POISON
    assert_true(feox_mem_large_mapped() >= before + FEOX_LARGE_MIN + 100);
    assert_true(feox_mem_large_mapped() <= before + FEOX_LARGE_MIN + 100 + 2 * 4096);
#else
    assert_int_equal(feox_mem_large_mapped(), before); /* from malloc under ASan */
#endif
    feox_mem_free_large(big);
    feox_mem_free_large(small);
    assert_int_equal(feox_mem_large_mapped(), before);
}

#ifndef FEOX_SLAB_POISON
/* Whether the page holding p is in memory (mincore). */
static bool resident(const void *p)
{
    unsigned char vec = 0;
    uintptr_t page = (uintptr_t)p & ~(uintptr_t)4095;
    assert_int_equal(mincore((void *)page, 4096, &vec), 0);
    return vec & 1;
}
#endif

/* Allocating a huge-page array (scratch or not, zeroed or not) faults in none of its bytes: the
 * first huge page is zeroed by whichever thread first writes it (or faults its part in), not by
 * the allocating one. */
static void test_allocation_touches_no_huge_page(void **state)
{
    (void)state;
#ifndef FEOX_SLAB_POISON
    uint8_t *a = feox_mem_alloc_large(2 * FEOX_LARGE_MIN);
    uint8_t *b = feox_mem_calloc_scratch(FEOX_LARGE_MIN + 100);
    assert_non_null(a);
    assert_non_null(b);
    assert_false(resident(a));
    assert_false(resident(b));
    assert_int_equal(b[0], 0);
    a[0] = 1;
    assert_true(resident(a));
    feox_mem_free_large(a);
    feox_mem_free_large(b);
#endif
}

/* feox_mem_release_large gives back the whole pages of a range of a mapped array (they read as
 * zero), keeps the bytes around them and the header (the array still frees, and is counted
 * until then); refused for an empty range, one past the end, or an array from the allocator. */
static void test_released_range_is_given_back(void **state)
{
    (void)state;
    const size_t sizes[] = {3 * FEOX_LARGE_MIN + 17, 512 << 10};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t size = sizes[i], from = size / 3 + 5, to = 2 * (size / 3);
        size_t mapped = feox_mem_large_mapped();
        uint8_t *p = feox_mem_alloc_scratch(size);
        assert_non_null(p);
        memset(p, 0x77, size);
        assert_false(feox_mem_release_large(p, from, from));
        assert_false(feox_mem_release_large(p, 0, size + 8192));
#ifndef FEOX_SLAB_POISON
        assert_true(feox_mem_release_large(p, from, to));
        /* (bytes a page inside the range: in a page wholly inside it wherever pages start) */
        assert_false(resident(p + from + 4096));
        assert_int_equal(p[from + 4096], 0);
        assert_int_equal(p[to - 4097], 0);
        assert_int_equal(p[from], 0x77); /* (its page is only partly in the range) */
        assert_int_equal(p[to], 0x77);
        assert_int_equal(p[0], 0x77);
        assert_int_equal(p[size - 1], 0x77);
        /* the whole array: a small one keeps its header's page */
        assert_true(feox_mem_release_large(p, 0, size));
        assert_true(feox_mem_large_mapped() >= mapped + size);
#else
        assert_false(feox_mem_release_large(p, from, to));
#endif
        feox_mem_free_large(p);
        assert_int_equal(feox_mem_large_mapped(), mapped);
    }
    feox_set_allocator(counting_malloc, counting_realloc, counting_free);
    uint8_t *q = feox_mem_alloc_scratch(2 * FEOX_LARGE_MIN);
    assert_non_null(q);
    assert_false(feox_mem_release_large(q, 0, 2 * FEOX_LARGE_MIN));
    feox_mem_free_large(q);
    feox_set_allocator(NULL, NULL, NULL);
}

static long minor_faults(void)
{
    struct rusage r;
    getrusage(RUSAGE_THREAD, &r);
    return r.ru_minflt;
}

/* feox_mem_prefault_large: the range it faulted in is then written without a page fault (where
 * the kernel knows the call; where it does not, or for an array from malloc, it says it did
 * nothing, and there is nothing to check); an empty range or one past the end is refused. */
static void test_prefaulted_range_is_written_without_faults(void **state)
{
    (void)state;
    size_t size = 2 * FEOX_LARGE_MIN + 12345, half = size / 2 + 100;
    uint8_t *p = feox_mem_alloc_large(size);
    assert_non_null(p);
    assert_false(feox_mem_prefault_large(p, 0, size + 8192));
    assert_false(feox_mem_prefault_large(p, 100, 100));
    if (!feox_mem_prefault_large(p, half, size)) {
        feox_mem_free_large(p);
        skip();
    }
    long before = minor_faults();
    memset(p + half, 0x5a, size - half);
    assert_true(minor_faults() - before <= 1);
    assert_int_equal(p[size - 1], 0x5a);
    feox_mem_free_large(p);
}

/* feox_mem_prefault on a block of malloc (grown by realloc, as a log buffer, written only in
 * part): the rest is then written without page faults, and what was written stays. */
static void test_prefault_of_any_range(void **state)
{
    (void)state;
    size_t size = (size_t)8 << 20, written = size / 2 + 3;
    uint8_t *p = feox_mem_realloc(NULL, size);
    assert_non_null(p);
    memset(p, 0xa5, written);
    assert_false(feox_mem_prefault(NULL, size));
    assert_false(feox_mem_prefault(p, 0));
    if (!feox_mem_prefault(p + 1, size - 1)) {
        feox_mem_free(p);
        skip();
    }
    assert_int_equal(p[0], 0xa5);
    assert_int_equal(p[written - 1], 0xa5);
    long before = minor_faults();
    memset(p + written, 0x5a, size - written);
#ifndef FEOX_SLAB_POISON /* (under AddressSanitizer the write faults in its shadow memory) */
    assert_true(minor_faults() - before <= 1);
#else
    (void)before;
#endif
    assert_int_equal(p[written - 1], 0xa5);
    assert_int_equal(p[size - 1], 0x5a);
    feox_mem_free(p);
}

/* Scratch of any size with the default allocator: usable, aligned, zero from calloc, and a
 * mapping of its own (counted by feox_mem_large_mapped while it lives, not one byte more in use
 * in the malloc heap). Under AddressSanitizer it comes from malloc: only usable and zero. */
static void test_scratch_is_mapped_at_any_size(void **state)
{
    (void)state;
    const size_t sizes[] = {1, 100, 4096, 512 << 10, FEOX_LARGE_MIN - 1, FEOX_LARGE_MIN + 5};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t mapped = feox_mem_large_mapped(), in_use = mallinfo2().uordblks;
        uint8_t *p = feox_mem_calloc_scratch(sizes[i]);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % _Alignof(max_align_t), 0);
#ifndef FEOX_SLAB_POISON
        assert_int_equal(mallinfo2().uordblks, in_use);
        assert_true(feox_mem_large_mapped() >= mapped + sizes[i]);
#else
        (void)in_use;
#endif
        for (size_t b = 0; b < sizes[i]; b += 997)
            assert_int_equal(p[b], 0);
        assert_int_equal(p[sizes[i] - 1], 0);
        memset(p, 0xa5, sizes[i]);
        feox_mem_free_large(p);
        assert_int_equal(feox_mem_large_mapped(), mapped);
        uint8_t *q = feox_mem_alloc_scratch(sizes[i]);
        assert_non_null(q);
        q[sizes[i] - 1] = 1;
        feox_mem_free_large(q);
    }
}

/* With an allocator from feox_set_allocator, scratch comes from it (allocation-failure tests
 * reach it) and goes back to it. */
static void test_custom_allocator_sees_scratch(void **state)
{
    (void)state;
    feox_set_allocator(counting_malloc, counting_realloc, counting_free);
    mallocs = frees = 0;
    uint8_t *p = feox_mem_calloc_scratch(3000);
    assert_non_null(p);
    assert_int_equal(p[2999], 0);
    feox_mem_free_large(p);
    feox_mem_free_large(feox_mem_alloc_scratch(10));
    feox_set_allocator(NULL, NULL, NULL);
    assert_int_equal(mallocs, 2);
    assert_int_equal(frees, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_allocator_sizes),
        cmocka_unit_test(test_custom_allocator_sees_every_large_array),
        cmocka_unit_test(test_default_allocator_maps_large_arrays),
        cmocka_unit_test(test_large_arrays_start_on_a_huge_page),
        cmocka_unit_test(test_large_mapped_bytes_are_counted),
        cmocka_unit_test(test_prefaulted_range_is_written_without_faults),
        cmocka_unit_test(test_prefault_of_any_range),
        cmocka_unit_test(test_scratch_is_mapped_at_any_size),
        cmocka_unit_test(test_custom_allocator_sees_scratch),
        cmocka_unit_test(test_allocation_touches_no_huge_page),
        cmocka_unit_test(test_released_range_is_given_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
