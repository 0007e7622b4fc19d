/*
 * test_stats_fields.c — the statistics field list of engine/feox.h (FEOX_STATS_FIELDS) is the one
 * source of the feox_stats struct and of the striped counter ids: every entry is a uint64_t member
 * in list order, and every COUNTER entry's id fills exactly its own member.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "feox.h"
#include "base/stats.h"

/* Each entry of the list sits at the next uint64_t slot of the struct, and nothing else does. */
static void test_struct_follows_list(void **state)
{
    (void)state;
    size_t slot = 0;
#define CHECK_COUNTER(name, ID) assert_int_equal(offsetof(feox_stats, name), 8 * slot++);
#define CHECK_VALUE(name) assert_int_equal(offsetof(feox_stats, name), 8 * slot++);
    FEOX_STATS_FIELDS(CHECK_COUNTER, CHECK_VALUE)
#undef CHECK_COUNTER
#undef CHECK_VALUE
    assert_int_equal(sizeof(feox_stats), 8 * slot);
}

static feox_stat_counters counters;

/* Counter id k, given k + 1 counts spread over the stripes, fills its own member with k + 1 and
 * leaves the VALUE members alone. */
static void test_counters_fill_their_fields(void **state)
{
    (void)state;
    memset(&counters, 0, sizeof counters);
    for (unsigned id = 0; id < FEOX_STAT_COUNT; id++)
        for (unsigned n = 0; n <= id; n++)
            feox_stat_inc(&counters, (feox_stat_id)id);
    feox_stats st;
    memset(&st, 0xff, sizeof st);
    feox_stat_fill(&counters, &st);
    unsigned counted = 0;
#define CHECK_COUNTER(name, ID)                                                                    \
    assert_int_equal(st.name, (uint64_t)FEOX_STAT_##ID + 1);                                       \
    counted++;
#define CHECK_VALUE(name) assert_int_equal(st.name, UINT64_MAX);
    FEOX_STATS_FIELDS(CHECK_COUNTER, CHECK_VALUE)
#undef CHECK_COUNTER
#undef CHECK_VALUE
    assert_int_equal(counted, FEOX_STAT_COUNT);
}

/* Through the public call: counters and read-time values both arrive. */
static void test_get_stats_reports_both_kinds(void **state)
{
    (void)state;
    feox_store *s = NULL;
    assert_int_equal(feox_open(NULL, &s), FEOX_OK);
    assert_int_equal(feox_insert(s, "k", 1, "v", 1, NULL, NULL), FEOX_OK);
    feox_stats st;
    assert_int_equal(feox_get_stats(s, &st), FEOX_OK);
    assert_int_equal(st.inserts, 1);
    assert_int_equal(st.len, 1);
    assert_true(st.memory_usage > 0);
    assert_int_equal(feox_close(s), FEOX_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_struct_follows_list),
        cmocka_unit_test(test_counters_fill_their_fields),
        cmocka_unit_test(test_get_stats_reports_both_kinds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
