/*
 * test_stats_fields.c — the statistics field list of engine/feox.h (FEOX_STATS_FIELDS) is the one
 * source of the feox_stats struct and of the striped counter ids: every entry is a uint64_t member
 * in list order, and every COUNTER entry's id fills exactly its own member; counting threads own
 * a stripe each (given back when they exit) and no count is lost when a stripe changes hands.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
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

#define COUNTS_PER_THREAD 1000
#define THREADS_PER_WAVE (FEOX_STAT_OWNED_STRIPES + 8)
#define WAVES 4

static feox_stat_counters shared_counters;

static void *count_gets(void *arg)
{
    (void)arg;
    for (unsigned i = 0; i < COUNTS_PER_THREAD; i++)
        feox_stat_inc(&shared_counters, FEOX_STAT_GETS);
    return NULL;
}

/* Waves of more threads than there are stripes to own, each wave exiting before the next: the
 * owners count without a locked add, the rest share a stripe, the stripes of exited threads are
 * taken by later ones, and every count is there at the end. */
static void test_counts_of_threads_that_come_and_go_add_up(void **state)
{
    (void)state;
    memset(&shared_counters, 0, sizeof shared_counters);
    for (unsigned wave = 0; wave < WAVES; wave++) {
        pthread_t t[THREADS_PER_WAVE];
        for (unsigned i = 0; i < THREADS_PER_WAVE; i++)
            assert_int_equal(pthread_create(&t[i], NULL, count_gets, NULL), 0);
        for (unsigned i = 0; i < THREADS_PER_WAVE; i++)
            assert_int_equal(pthread_join(t[i], NULL), 0);
    }
    assert_int_equal(feox_stat_sum(&shared_counters, FEOX_STAT_GETS),
                     (uint64_t)WAVES * THREADS_PER_WAVE * COUNTS_PER_THREAD);
}

/* A thread that exits gives its stripe back: one after the other, far more threads than there
 * are stripes all count on a stripe of their own, none on the shared one. */
static void test_exited_threads_give_their_stripe_back(void **state)
{
    (void)state;
    memset(&shared_counters, 0, sizeof shared_counters);
    for (unsigned i = 0; i < 4 * FEOX_STAT_OWNED_STRIPES; i++) {
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, count_gets, NULL), 0);
        assert_int_equal(pthread_join(t, NULL), 0);
    }
    for (unsigned i = FEOX_STAT_SHARED_STRIPE; i < FEOX_STAT_STRIPES; i++) {
        assert_int_equal(atomic_load(&shared_counters.stripes[i].value[FEOX_STAT_GETS]), 0);
    }
    assert_int_equal(feox_stat_sum(&shared_counters, FEOX_STAT_GETS),
                     4ull * FEOX_STAT_OWNED_STRIPES * COUNTS_PER_THREAD);
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
        cmocka_unit_test(test_counts_of_threads_that_come_and_go_add_up),
        cmocka_unit_test(test_exited_threads_give_their_stripe_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
