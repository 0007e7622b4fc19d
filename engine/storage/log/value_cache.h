/*
 * value_cache.h — a small CLOCK cache of cold values read back from the store file, keyed by
 * location. A location names one immutable record (compaction moves records to new locations in
 * a new generation, never rewrites one in place), so entries never go stale and need no
 * invalidation: they only age out. The exception: generation numbers are reused after 65535
 * compactions (compaction.c), so each compaction, once done, drops every entry of another
 * generation (feox_value_cache_keep_only). Thread-safe (one mutex; reads of cold values are the
 * slow path anyway).
 */
#ifndef FEOX_VALUE_CACHE_H
#define FEOX_VALUE_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "feox.h"

typedef struct feox_value_cache feox_value_cache;

/* A cache holding at most budget_bytes of values (plus per-entry overhead). NULL on NOMEM. */
feox_value_cache *feox_value_cache_new(uint64_t budget_bytes);
void feox_value_cache_free(feox_value_cache *c);

/* Copy the value cached for location into buf if present with this length; true on a hit. */
bool feox_value_cache_get(feox_value_cache *c, uint64_t location, void *buf, uint32_t value_len);
/* Remember a value just read (values above a quarter of the budget are not cached). */
void feox_value_cache_put(feox_value_cache *c, uint64_t location, const void *value,
                          uint32_t value_len);
/* Drop every entry whose location, masked with mask, is not keep (not counted as evictions). */
void feox_value_cache_keep_only(feox_value_cache *c, uint64_t mask, uint64_t keep);
/* Add cache_hits, cache_misses, cache_evictions and cache_bytes to *out. */
void feox_value_cache_stats(feox_value_cache *c, feox_stats *out);

#endif
