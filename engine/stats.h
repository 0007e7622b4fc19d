/*
 * stats.h — the store's operation counters, striped across cache lines so that threads counting
 * at the same time do not bounce one line between cores (reading sums the stripes).
 */
#ifndef FEOX_STATS_H
#define FEOX_STATS_H

#include <stdint.h>

#include "feox.h"

typedef enum feox_stat_id {
    FEOX_STAT_GETS,
    FEOX_STAT_GET_MISSES,
    FEOX_STAT_INSERTS,
    FEOX_STAT_UPDATES,
    FEOX_STAT_DELETES,
    FEOX_STAT_RANGE_QUERIES,
    FEOX_STAT_CAS_SUCCESS,
    FEOX_STAT_CAS_FAILURE,
    FEOX_STAT_INCREMENTS,
    FEOX_STAT_JSON_PATCHES,
    FEOX_STAT_JSON_PATCH_FAILURES,
    FEOX_STAT_OLDER_TIMESTAMP,
    FEOX_STAT_OUT_OF_MEMORY,
    FEOX_STAT_TTL_EXPIRED_LAZY,
    FEOX_STAT_TTL_EXPIRED_ACTIVE,
    FEOX_STAT_TTL_SWEEPER_RUNS,
    FEOX_STAT_COUNT
} feox_stat_id;

#define FEOX_STAT_STRIPES 16

typedef struct feox_stat_stripe {
    uint64_t value[FEOX_STAT_COUNT];
} __attribute__((aligned(64))) feox_stat_stripe;

typedef struct feox_stat_counters {
    feox_stat_stripe stripes[FEOX_STAT_STRIPES];
} feox_stat_counters;

void feox_stat_add(feox_stat_counters *c, feox_stat_id id, uint64_t n);
static inline void feox_stat_inc(feox_stat_counters *c, feox_stat_id id)
{
    feox_stat_add(c, id, 1);
}
uint64_t feox_stat_sum(const feox_stat_counters *c, feox_stat_id id);
/* Fill the operation fields of *out from the counters. */
void feox_stat_fill(const feox_stat_counters *c, feox_stats *out);

#endif
