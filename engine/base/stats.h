/*
 * stats.h — the store's operation counters, one stripe (its own cache lines) per counting thread,
 * so that threads counting at the same time do not bounce one line between cores (reading sums
 * the stripes).
 *
 * A thread claims one of FEOX_STAT_OWNED_STRIPES stripes process-wide the first time it counts
 * and gives it back when it exits. It is then the only writer of that stripe in every store, so
 * it counts with a relaxed load and a relaxed store: no locked read-modify-write on the read
 * path. Threads beyond those stripes (and a thread counting after its exit handler ran) share
 * FEOX_STAT_SHARED_STRIPES more, spread round robin, where counting is an atomic add (64 cores
 * counting at once then share 4 lines among 48 threads, not one). A stripe's counters pass from an
 * exited owner to the next one through the release/acquire of the stripe's claim, so no count is
 * lost.
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

/* Stripes a single thread owns, then the shared ones (threads beyond those, round robin). */
#define FEOX_STAT_OWNED_STRIPES 16
#define FEOX_STAT_SHARED_STRIPES 4
#define FEOX_STAT_SHARED_STRIPE FEOX_STAT_OWNED_STRIPES /* the first shared one */
#define FEOX_STAT_STRIPES (FEOX_STAT_OWNED_STRIPES + FEOX_STAT_SHARED_STRIPES)

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
