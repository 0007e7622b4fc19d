/*
 * test_helpers.c — the shared engine helpers of engine/base/helpers.h and the file-id generator of
 * engine/storage/log/log_format.c: the little-endian codec matches the byte order FORMAT.md fixes (the record
 * magic "FXR1"), saturating addition clamps at both ends, clock deadlines are normalised, and a
 * new file id is never 0 and never the id it replaces; feox_mem_concat (engine/base/alloc.c) joins two
 * strings, the store file's path and its ".compact" suffix.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "base/alloc.h"
#include "base/helpers.h"
#include "storage/log/log_format.h"

/* Byte order and round trips of the little-endian codec. */
static void test_little_endian(void **state)
{
    (void)state;
    uint8_t b[8];
    feox_put_le32(b, FEOX_LOG_RECORD_MAGIC);
    assert_memory_equal(b, "FXR1", 4);
    assert_int_equal(feox_get_le32((const uint8_t *)"FXR1"), FEOX_LOG_RECORD_MAGIC);
    feox_put_le64(b, 0x0807060504030201u);
    const uint8_t want[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    assert_memory_equal(b, want, 8);
    assert_true(feox_get_le64(b) == 0x0807060504030201u);
    feox_put_le64(b, UINT64_MAX);
    assert_true(feox_get_le64(b) == UINT64_MAX);
}

/* Saturating additions clamp instead of wrapping. */
static void test_saturating_add(void **state)
{
    (void)state;
    assert_true(feox_sat_add_u64(1, 2) == 3);
    assert_true(feox_sat_add_u64(UINT64_MAX - 1, 1) == UINT64_MAX);
    assert_true(feox_sat_add_u64(UINT64_MAX - 1, 5) == UINT64_MAX);
    assert_true(feox_sat_add_i64(-5, 3) == -2);
    assert_true(feox_sat_add_i64(INT64_MAX, 1) == INT64_MAX);
    assert_true(feox_sat_add_i64(INT64_MIN, -1) == INT64_MIN);
    assert_true(feox_sat_add_i64(INT64_MIN, INT64_MAX) == -1);
}

/* Timespecs are normalised and deadlines lie ahead on the monotonic clock. */
static void test_clock(void **state)
{
    (void)state;
    struct timespec ts = feox_timespec_of_ns(3 * FEOX_NS_PER_SEC + 7);
    assert_int_equal(ts.tv_sec, 3);
    assert_int_equal(ts.tv_nsec, 7);
    uint64_t before = feox_monotonic_ns();
    struct timespec d = feox_deadline_after_ms(1500);
    assert_true(d.tv_nsec >= 0 && d.tv_nsec < (long)FEOX_NS_PER_SEC);
    uint64_t at = (uint64_t)d.tv_sec * FEOX_NS_PER_SEC + (uint64_t)d.tv_nsec;
    assert_true(at >= before + 1500 * FEOX_NS_PER_MS);
    assert_true(feox_realtime_ns() > 1600000000ull * FEOX_NS_PER_SEC); /* after 2020 */
}

/* File ids: never 0, never the one replaced. */
static void test_new_file_id(void **state)
{
    (void)state;
    uint64_t id = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t next = feox_log_new_file_id(id);
        assert_true(next != 0);
        assert_true(next != id);
        id = next;
    }
}

/* Two strings joined into a new one. */
static void test_concat(void **state)
{
    (void)state;
    char *p = feox_mem_concat("/tmp/a.feox", ".compact");
    assert_non_null(p);
    assert_string_equal(p, "/tmp/a.feox.compact");
    feox_mem_free(p);
    p = feox_mem_concat("x", "");
    assert_non_null(p);
    assert_string_equal(p, "x");
    feox_mem_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_little_endian), cmocka_unit_test(test_saturating_add),
        cmocka_unit_test(test_clock),         cmocka_unit_test(test_new_file_id),
        cmocka_unit_test(test_concat),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
