/*
 * stats.c — striped operation counters (see stats.h).
 */
#include "base/stats.h"

#include <stdatomic.h>

static atomic_uint next_stripe;
static _Thread_local unsigned thread_stripe = UINT32_MAX;

static unsigned my_stripe(void)
{
    if (thread_stripe == UINT32_MAX)
        thread_stripe = atomic_fetch_add_explicit(&next_stripe, 1, memory_order_relaxed) % FEOX_STAT_STRIPES;
    return thread_stripe;
}

void feox_stat_add(feox_stat_counters *c, feox_stat_id id, uint64_t n)
{
    /* Atomic because two threads may share a stripe; uncontended it stays in one core's cache. */
    atomic_fetch_add_explicit(&c->stripes[my_stripe()].value[id], n, memory_order_relaxed);
}

uint64_t feox_stat_sum(const feox_stat_counters *c, feox_stat_id id)
{
    uint64_t sum = 0;
    for (unsigned i = 0; i < FEOX_STAT_STRIPES; i++)
        sum += atomic_load_explicit(&c->stripes[i].value[id], memory_order_relaxed);
    return sum;
}

void feox_stat_fill(const feox_stat_counters *c, feox_stats *out)
{
#define FILL_COUNTER(name, ID) out->name = feox_stat_sum(c, FEOX_STAT_##ID);
    FEOX_STATS_FIELDS(FILL_COUNTER, FEOX_STAT_NO_ID_)
#undef FILL_COUNTER
}
