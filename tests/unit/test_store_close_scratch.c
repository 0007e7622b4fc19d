/*
 * test_store_close_scratch.c — the index snapshot step of a large store's close
 * (engine/store/store_close_threads.c, store_close_snapshot.c) keeps out of the malloc heap: its
 * scratch is its own mappings (base/alloc.h feox_mem_alloc_scratch). After many writes glibc's
 * heap holds many small freed blocks in its fast bins; the first request of 1 KiB or more (or a
 * free of 64 KiB or more) merges every one of them first, which the closing thread would pay
 * before any helper starts (the bench's close: ~20 ms for 1M keys).
 *   heap       small blocks freed on the closing thread's arena (fast bins, mallinfo2's smblks)
 *              are still there after the snapshot step, which wrote its snapshot: the next open
 *              answers every key from it (glibc's malloc only: mallinfo2; under
 *              AddressSanitizer the heap is ASan's: skipped);
 *   untouched  making the snapshot's writer touches no byte of its buffer, fresh memory the
 *              close's threads fault in side by side: a page written before they start would
 *              be faulted in (a huge page: 2 MiB zeroed) by the closing thread alone (mincore;
 *              under AddressSanitizer the buffer is malloc's: skipped);
 *   spare      the list of entries lies in the backend's spare write buffer (log_snapshot.h
 *              feox_log_close_take_spare: memory the writes touched already, no fresh scratch)
 *              when it holds the list, and the close still writes a snapshot that answers
 *              every key.
 * A machine on which the close runs on several threads (else skipped: the one-thread close is
 * another path).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <malloc.h>
#include <sched.h>
#include <stdio.h>
#include <sys/mman.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "feox.h"
#include "feox_test_support.h"
#include "storage/log/log_snapshot.h"
#include "store/store_internal.h"
#include "temp_store_dir.h"

#define KEYS 40000       /* past the threaded close's 2 x 16,384 entries */
#define FAST_BLOCKS 6000 /* small blocks freed to the fast bins */
#define FAST_SLACK 200   /* fast blocks the step's own small requests may take */

#define DIR_TEMPLATE "/tmp/feox_close_scratch_XXXXXX"
static char dir[] = DIR_TEMPLATE;
static char path[sizeof dir + 32];

static void key_of(uint32_t i, char key[16])
{
    snprintf(key, 16, "k%014u", i);
}

static feox_store *open_file(void)
{
    feox_config cfg;
    feox_config_init(&cfg);
    cfg.path = path;
    return ftest_open(&cfg);
}

/* The same with a flusher that never writes during the test (its 4 MiB early wake is past KEYS
 * records), so which write buffer holds what is up to the test alone. */
static feox_store *open_file_idle_flusher(void)
{
    feox_config cfg;
    feox_config_init(&cfg);
    cfg.path = path;
    cfg.flush_interval_ms = 3600u * 1000u;
    return ftest_open(&cfg);
}

static void insert_keys(feox_store *s)
{
    char key[16];
    for (uint32_t i = 0; i < KEYS; i++) {
        key_of(i, key);
        assert_int_equal(feox_insert(s, key, 15, key, 15, NULL, NULL), FEOX_OK);
    }
}

/* After the step: the list it left dropped (the close lists again, and writes its own snapshot,
 * the same, at the same place, over the step's), then the store closed and every key read back
 * from the file. */
static void close_and_check_every_key(feox_store *s)
{
    if (!s->closing_entries_borrowed) /* (else it lies in a buffer the store frees) */
        feox_mem_free_large(s->closing_entries);
    s->closing_entries = NULL;
    s->closing_entries_borrowed = false;
    assert_int_equal(feox_close(s), FEOX_OK);
    feox_close_wait();
    s = open_file();
    assert_int_equal(feox_len(s, 0), KEYS);
    char key[16];
    for (uint32_t i = 0; i < KEYS; i += 997) {
        key_of(i, key);
        char value[16];
        size_t len = 0;
        assert_int_equal(feox_get_into(s, key, 15, value, sizeof value, &len, NULL), FEOX_OK);
        assert_memory_equal(value, key, 15);
    }
    assert_int_equal(feox_close(s), FEOX_OK);
    feox_close_wait();
}

static int usable_cpus(void)
{
    cpu_set_t set;
    return sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
}

/* FAST_BLOCKS blocks of 40 bytes malloc'd and freed on this thread: past the thread's cache
 * (tcache, 7 of a size) they go to its arena's fast bins, unmerged. */
static void leave_fast_blocks(void)
{
    static void *blocks[FAST_BLOCKS];
    for (int i = 0; i < FAST_BLOCKS; i++) {
        blocks[i] = malloc(40);
        assert_non_null(blocks[i]);
    }
    for (int i = 0; i < FAST_BLOCKS; i++)
        free(blocks[i]);
}

static void test_snapshot_step_leaves_the_heap_alone(void **state)
{
    (void)state;
    if (usable_cpus() < 2)
        skip();
    feox_store *s = open_file();
    insert_keys(s);
    assert_int_equal(feox_flush(s), FEOX_OK);
    leave_fast_blocks();
    size_t before = mallinfo2().smblks;
    if (before < FAST_BLOCKS - FAST_SLACK) { /* not glibc's heap (AddressSanitizer) */
        feox_close(s);
        skip();
    }

    feox_log_snapshot_writer w;
    assert_true(feox_store_start_snapshot(s, &w));
    assert_true(feox_store_write_snapshot_threaded(s, &w));
    size_t after = mallinfo2().smblks;
    printf("fast blocks before the step %zu, after %zu\n", before, after);
    assert_true(after + FAST_SLACK >= before);
    close_and_check_every_key(s);
}

/* Keys a snapshot of which has a buffer of huge pages (FEOX_LARGE_MIN or more: its bytes from a
 * 2 MiB boundary; a smaller one shares its first page with the allocation's header). */
#define HUGE_SNAPSHOT_KEYS 500000

static void test_start_touches_no_byte_of_the_snapshot_buffer(void **state)
{
    (void)state;
    if (FTEST_UNDER_ASAN)
        skip();
    feox_store *s = open_file();
    insert_keys(s);
    assert_int_equal(feox_flush(s), FEOX_OK);

    /* (the writer only: sized for more keys than the store holds, it is not written) */
    feox_log_snapshot_writer w;
    assert_int_equal(feox_log_snapshot_writer_init(s->storage, &w, HUGE_SNAPSHOT_KEYS, 1), FEOX_OK);
    assert_true(w.buf_size >= FEOX_LARGE_MIN);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    assert_true((uintptr_t)w.buf % page == 0);
    size_t pages = (w.buf_size + page - 1) / page;
    unsigned char *resident = malloc(pages);
    assert_non_null(resident);
    assert_int_equal(mincore(w.buf, pages * page, resident), 0);
    size_t touched = 0;
    for (size_t i = 0; i < pages; i++)
        touched += resident[i] & 1;
    free(resident);
    feox_log_snapshot_writer_free(&w);
    assert_int_equal(touched, 0);
    assert_int_equal(feox_close(s), FEOX_OK);
    feox_close_wait();
}

static void test_the_list_lies_in_the_spare_write_buffer(void **state)
{
    (void)state;
    if (usable_cpus() < 2)
        skip();
    feox_store *s = open_file_idle_flusher();
    insert_keys(s); /* (all in one buffer: over 1 MiB, under the flusher's 4 MiB wake) */
    assert_int_equal(feox_flush(s), FEOX_OK); /* written from it: it is the spare one now */
    char key[16];
    key_of(7, key); /* (something for the close's own flush to write, from the other) */
    assert_int_equal(feox_insert(s, key, 15, key, 15, NULL, NULL), FEOX_OK);

    feox_log_snapshot_writer w;
    assert_true(feox_store_start_snapshot(s, &w));
    assert_true(feox_store_write_snapshot_threaded(s, &w));
    assert_true(s->closing_entries_borrowed);
    assert_ptr_equal(s->closing_entries, s->closing_buffers[2]);
    assert_int_equal(s->closing_count, KEYS);
    for (uint32_t i = 1; i < KEYS; i++) /* (sorted by address, to 256 bytes, as ever) */
        assert_true((uintptr_t)s->closing_entries[i - 1] >> 8 <=
                    (uintptr_t)s->closing_entries[i] >> 8);
    close_and_check_every_key(s);
}

static int setup(void **state)
{
    (void)state;
    memcpy(dir, DIR_TEMPLATE, sizeof dir);
    return ftest_temp_store_make(dir, path, sizeof path);
}

static int teardown(void **state)
{
    (void)state;
    ftest_temp_store_remove(dir, path);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_snapshot_step_leaves_the_heap_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_touches_no_byte_of_the_snapshot_buffer, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_the_list_lies_in_the_spare_write_buffer, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
