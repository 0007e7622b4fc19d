/*
 * store_snapshot_pipeline.h — the order in which a close's index snapshot reads the store: both
 * fills (store_close_snapshot.c on one thread, store_close_threads.c on several) walk a list of
 * entries sorted by address and, for each, start the reads of the keys some places ahead, so
 * that the cache misses of a key overlap those of the keys before it.
 */
#ifndef FEOX_STORE_SNAPSHOT_PIPELINE_H
#define FEOX_STORE_SNAPSHOT_PIPELINE_H

#include <stdatomic.h>
#include <stddef.h>

#include "index/record.h"
#include "storage/log/log_snapshot.h"

/* How far ahead of the key being added each read starts. */
#define FEOX_SNAPSHOT_AHEAD_ENTRY 16   /* the entry (its hash and current version) */
#define FEOX_SNAPSHOT_AHEAD_VERSION 8  /* the version's header, the snapshot's slot */
#define FEOX_SNAPSHOT_AHEAD_LOCATION 4 /* the version's location word */

static inline feox_record *feox_snapshot_current_of(const feox_entry *e)
{
    /* Relaxed: the store is quiesced (every thread that wrote it stopped and joined). */
    return atomic_load_explicit(&e->current, memory_order_relaxed);
}

/* Starts the reads for the entries ahead of entries[i] (of n) and returns entries[i]'s current
 * version (an indexed entry always has one). */
static inline const feox_record *feox_snapshot_pipeline(const feox_log_snapshot_writer *w,
                                                        feox_entry *const *entries, size_t i,
                                                        size_t n)
{
    if (i + FEOX_SNAPSHOT_AHEAD_ENTRY < n)
        __builtin_prefetch(entries[i + FEOX_SNAPSHOT_AHEAD_ENTRY]);
    if (i + FEOX_SNAPSHOT_AHEAD_VERSION < n) {
        const feox_entry *ahead = entries[i + FEOX_SNAPSHOT_AHEAD_VERSION];
        __builtin_prefetch(feox_snapshot_current_of(ahead));
        feox_log_snapshot_writer_prefetch(w, ahead->hash);
    }
    if (i + FEOX_SNAPSHOT_AHEAD_LOCATION < n) {
        feox_record *r = feox_snapshot_current_of(entries[i + FEOX_SNAPSHOT_AHEAD_LOCATION]);
        if (r)
            __builtin_prefetch(feox_record_location_word(r));
    }
    return feox_snapshot_current_of(entries[i]);
}

#endif
