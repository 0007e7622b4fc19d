/*
 * stats.c — striped operation counters (see stats.h).
 */
#include "stats.h"

#include <ck_pr.h>

static unsigned next_stripe;
static _Thread_local unsigned thread_stripe = UINT32_MAX;

static unsigned my_stripe(void)
{
    if (thread_stripe == UINT32_MAX)
        thread_stripe = ck_pr_faa_uint(&next_stripe, 1) % FEOX_STAT_STRIPES;
    return thread_stripe;
}

void feox_stat_add(feox_stat_counters *c, feox_stat_id id, uint64_t n)
{
    /* Atomic because two threads may share a stripe; uncontended it stays in one core's cache. */
    __atomic_fetch_add(&c->stripes[my_stripe()].value[id], n, __ATOMIC_RELAXED);
}

uint64_t feox_stat_sum(const feox_stat_counters *c, feox_stat_id id)
{
    uint64_t sum = 0;
    for (unsigned i = 0; i < FEOX_STAT_STRIPES; i++)
        sum += __atomic_load_n(&c->stripes[i].value[id], __ATOMIC_RELAXED);
    return sum;
}

void feox_stat_fill(const feox_stat_counters *c, feox_stats *out)
{
    out->gets = feox_stat_sum(c, FEOX_STAT_GETS);
    out->get_misses = feox_stat_sum(c, FEOX_STAT_GET_MISSES);
    out->inserts = feox_stat_sum(c, FEOX_STAT_INSERTS);
    out->updates = feox_stat_sum(c, FEOX_STAT_UPDATES);
    out->deletes = feox_stat_sum(c, FEOX_STAT_DELETES);
    out->range_queries = feox_stat_sum(c, FEOX_STAT_RANGE_QUERIES);
    out->cas_success = feox_stat_sum(c, FEOX_STAT_CAS_SUCCESS);
    out->cas_failure = feox_stat_sum(c, FEOX_STAT_CAS_FAILURE);
    out->increments = feox_stat_sum(c, FEOX_STAT_INCREMENTS);
    out->json_patches = feox_stat_sum(c, FEOX_STAT_JSON_PATCHES);
    out->json_patch_failures = feox_stat_sum(c, FEOX_STAT_JSON_PATCH_FAILURES);
    out->older_timestamp_errors = feox_stat_sum(c, FEOX_STAT_OLDER_TIMESTAMP);
    out->out_of_memory_errors = feox_stat_sum(c, FEOX_STAT_OUT_OF_MEMORY);
    out->ttl_expired_lazy = feox_stat_sum(c, FEOX_STAT_TTL_EXPIRED_LAZY);
    out->ttl_expired_active = feox_stat_sum(c, FEOX_STAT_TTL_EXPIRED_ACTIVE);
    out->ttl_sweeper_runs = feox_stat_sum(c, FEOX_STAT_TTL_SWEEPER_RUNS);
}
