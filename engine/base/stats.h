/*
 * stats.h — the store's operation counters, striped across cache lines so that threads counting
 * at the same time do not bounce one line between cores (reading sums the stripes).
 */
#ifndef FEOX_STATS_H
#define FEOX_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#include "feox.h"

/* Expand a FEOX_STATS_FIELDS entry (feox.h) to its counter id (VALUE entries have none). */
#define FEOX_STAT_ID_(name, ID) FEOX_STAT_##ID,
#define FEOX_STAT_NO_ID_(name)

/* One id per COUNTER entry of FEOX_STATS_FIELDS, in list order. */
typedef enum feox_stat_id {
    FEOX_STATS_FIELDS(FEOX_STAT_ID_, FEOX_STAT_NO_ID_) FEOX_STAT_COUNT
} feox_stat_id;

#define FEOX_STAT_STRIPES 16

typedef struct feox_stat_stripe {
    _Atomic uint64_t value[FEOX_STAT_COUNT];
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
/* Fill the COUNTER fields of *out from the counters. */
void feox_stat_fill(const feox_stat_counters *c, feox_stats *out);

#endif
