/*
 * hash_index.h — the hash index: live feox_entry objects in S shards, each a Concurrency Kit
 * ck_hs (SPMC) guarded by its own writer mutex.
 *
 * Contract
 *   - Readers (feox_hash_lookup) take no lock: they run inside an epoch section, and the entry
 *     they get stays valid until the section ends.
 *   - Writers hold the shard's mutex (feox_shard_lock) for every change to that shard; writers to
 *     keys in different shards never contend. The same mutex serializes every change to the
 *     entries of that shard (entry->current), so it is "the key's lock" of the whole engine.
 *   - Maps replaced by growth are retired through the epoch (the ck_malloc free callback with
 *     defer=true), so a reader probing an old map during growth stays safe and still finds keys:
 *     ck_hs publishes the new map only after every object was moved into it.
 */
#ifndef FEOX_HASH_INDEX_H
#define FEOX_HASH_INDEX_H

#include <ck_hs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "feox.h"
#include "index/record.h"
#include "index/ttl_index.h"

/* The set, all a lookup reads of the shard, fills the first cache line alone: one line to load,
 * and no writer's lock or counter in it (a lookup never waits for a line a writer just took). */
typedef struct feox_shard {
    ck_hs_t set;
    _Alignas(64) pthread_mutex_t lock;
    feox_ttl_heap ttl; /* expiry queue of this shard's keys (see ttl_index.h) */
    /* Counts kept per shard so writers never share a counter's cache line: changed under the
     * lock, read by anyone with a relaxed load (feox_shard_count_*). */
    _Atomic uint64_t keys;     /* entries in the index, expired-unswept included */
    _Atomic uint64_t ttl_keys; /* current versions carrying an expiry */
    /* The store's (engine/store/store_undo.c), under lock: its sync=full writes of this shard's
     * keys that wait for their fsync (NULL: none). */
    void *durable_waits;
} __attribute__((aligned(64))) feox_shard;

_Static_assert(sizeof(ck_hs_t) <= 64, "a shard's set fits one cache line");

typedef struct feox_hash_map_region feox_hash_map_region;

typedef struct feox_hash_index {
    feox_shard *shards;
    unsigned shard_bits;
    uint64_t seed;
    /* Where feox_hash_index_reserve and _expect carved the shards' maps from (hash_index.c);
     * freed with the index. */
    feox_hash_map_region *regions;
} feox_hash_index;

feox_err feox_hash_index_init(feox_hash_index *idx, uint64_t capacity_hint, uint64_t seed);
/* Size every shard's map for `count` keys in all (an empty index with no concurrent user: a
 * store's first load, which knows its key count before it fills the index). The maps are carved
 * from one region (feox_mem_alloc_large: huge pages for a big load) that lives as long as the
 * index: a map that growth replaces later stays in it unused until the index is destroyed.
 * Errors: NOMEM (the index keeps its maps). */
feox_err feox_hash_index_reserve(feox_hash_index *idx, uint64_t count);
/* Grow every shard's map, if smaller, to hold its keys and its share (1/shards) of `more` new keys
 * at the load init and growth keep, in one rehash instead of doubling as the keys come (a bulk
 * load that knows about how many keys are coming). The grown maps are carved from one region, as
 * feox_hash_index_reserve's are (huge pages for a big load instead of a page fault per 4 KiB of
 * each map), that lives as long as the index. Takes each shard's lock in turn; readers go on
 * (ck_hs publishes the new map as its own growth does); one caller at a time per index (the
 * store's refresh). Errors: NOMEM (the maps not grown stay as they were). */
feox_err feox_hash_index_expect(feox_hash_index *idx, uint64_t more);
/* Free the maps (no concurrent users; entries are not freed). */
void feox_hash_index_destroy(feox_hash_index *idx);

/* A slot of a shard's ck_hs holds an entry's address with, where ck_hs itself keeps no hash bits
 * (its pointer packing disabled, as in Debian's build), 16 bits of the key's hash above bit 48
 * (FEOX_HASH_TAG_SHIFT): a probe skips a slot whose bits differ without reading the entry
 * (hash_index.c). User-space addresses on Linux stay below 2^48 unless a mapping asks for more;
 * an entry above it is refused (feox_hash_insert). The entry of a slot's object: */
#if defined(CK_MD_POINTER_PACK_DISABLE) && UINTPTR_MAX > UINT32_MAX
#define FEOX_HASH_TAGGED 1
#define FEOX_HASH_TAG_SHIFT 48
static inline feox_entry *feox_hash_object_entry(void *object)
{
    return (feox_entry *)((uintptr_t)object & (((uintptr_t)1 << FEOX_HASH_TAG_SHIFT) - 1));
}
#else
#define FEOX_HASH_TAGGED 0
static inline feox_entry *feox_hash_object_entry(void *object)
{
    return object;
}
#endif

/* Bytes before an entry that a lookup prefetches as it reads the entry (hash_index.c): where the
 * key's current version usually starts, so that the version arrives with the entry rather than
 * one cache miss after it. A loaded key's first version and its entry are one allocation, the
 * version first (record.h: 136 bytes for a 100-byte value with its location word and no
 * expiry, 128 without the word, as in a table's cache); a written key's version is allocated just
 * before its entry (store_write.c, then store_apply.c), which glibc mostly places right below it
 * (160 bytes apart in that example). Larger versions start further back: their first lines are then
 * not prefetched, their last ones are. */
#define FEOX_HASH_VERSION_PREFETCH 160

/* The key's hash: the low 32 bits of XXH3 with the index's seed, repeated in both halves (an
 * entry stores the 32 bits; feox_entry_hash gives this value back). */
uint64_t feox_hash_key(const feox_hash_index *idx, const void *key, size_t key_len);

static inline feox_shard *feox_hash_shard(const feox_hash_index *idx, uint64_t hash)
{
    /* The top bits pick the shard; ck_hs probes with the low bits, so the two stay independent. */
    return &idx->shards[idx->shard_bits ? hash >> (64 - idx->shard_bits) : 0];
}
static inline unsigned feox_hash_shard_count(const feox_hash_index *idx)
{
    return 1u << idx->shard_bits;
}

/* Change a shard counter (shard lock held; the store is relaxed so lock-free readers may sum). */
static inline void feox_shard_count_add(_Atomic uint64_t *counter, int64_t delta)
{
    atomic_store_explicit(counter,
                          atomic_load_explicit(counter, memory_order_relaxed) + (uint64_t)delta,
                          memory_order_relaxed);
}
/* Sum one counter over every shard (no lock; exact when no writer runs). */
uint64_t feox_hash_sum_keys(const feox_hash_index *idx);
uint64_t feox_hash_sum_ttl_keys(const feox_hash_index *idx);

/* Find the entry for key (inside an epoch section, or holding the shard lock). */
feox_entry *feox_hash_lookup(const feox_hash_index *idx, uint64_t hash, const void *key,
                             size_t key_len);
/* Add an entry whose key is absent (shard lock held). Errors: NOMEM (index unchanged). */
feox_err feox_hash_insert(feox_hash_index *idx, feox_entry *e);
/* Remove an entry that is present (shard lock held). */
void feox_hash_remove(feox_hash_index *idx, feox_entry *e);
/* True if a slot can hold e (its address leaves room for the slot's tag bits); an entry that
 * will replace another is checked before anything changes, as the replace cannot fail. */
static inline bool feox_hash_slot_fits(const feox_entry *e)
{
#if FEOX_HASH_TAGGED
    return ((uintptr_t)e >> FEOX_HASH_TAG_SHIFT) == 0;
#else
    (void)e;
    return true;
#endif
}
/* Put fresh, whose slot fits, in the place of the entry of its key, which is present (shard lock
 * held); returns that entry (NULL, index unchanged, if the key is absent). One pointer store
 * (ck_hs_fas, no allocation): a concurrent lookup finds one of the two, both valid until the
 * caller retires the replaced one through the epoch. */
feox_entry *feox_hash_replace(feox_hash_index *idx, feox_entry *fresh);
/* Number of entries in all shards (exact when no writer runs). */
uint64_t feox_hash_count(const feox_hash_index *idx);

#endif
