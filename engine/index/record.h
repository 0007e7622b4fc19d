/*
 * record.h — the two objects every index points at: the key entry and its immutable value versions.
 *
 *   feox_entry  one per live key, shared by the hash index and the ordered index (so an update
 *               swaps one pointer and never touches the ordered index). Holds the key bytes, its
 *               hash, and an atomic pointer to the current version. Created when a key is created,
 *               unlinked from both indexes and retired through the epoch when it is deleted; after
 *               that `current` is NULL, which is how a scan that still holds it sees the deletion.
 *   feox_record one immutable version of a value: bytes, tag, timestamp, expiry. Copy-on-write: a
 *               write builds a new record and publishes it with a release store into
 *               entry->current; the old one is retired. Reference counted so a zero-copy value
 *               handle (feox_value) can outlive its retirement: the index holds one reference,
 *               dropped by the epoch reclaimer; each handle holds one.
 *
 * Concurrency: entry->current is written only under the key's hash-shard lock and read by lock-free
 * readers inside an epoch section (load-acquire pairs with the writer's store-release, so a reader
 * that sees the pointer sees the initialized record). Every other field is immutable after
 * publication, except record->location, which the persistence layer may move (atomic).
 */
#ifndef FEOX_RECORD_H
#define FEOX_RECORD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/epoch.h"

enum feox_record_flags {
    FEOX_RECORD_COLD = 1u << 0 /* value bytes not resident: read them from the backend */
};

typedef struct feox_record {
    _Atomic uint32_t refs;  /* index reference + one per feox_value handle */
    uint32_t tag;
    uint64_t ts_ns;
    uint64_t expires_at_ns; /* 0 = no expiry */
    /* Backend location of this version, 0 = none. Moved (relocate) under the key's shard
     * lock; read relaxed: it publishes nothing. */
    _Atomic uint64_t location;
    uint32_t value_len;
    uint32_t flags;         /* feox_record_flags */
    feox_retire_link retire;
    uint8_t value[];        /* value_len bytes unless FEOX_RECORD_COLD */
} feox_record;

typedef struct feox_entry {
    uint64_t hash;               /* XXH3 of the key with the store's seed */
    /* NULL once the key is deleted. Written under the key's shard lock (a release store
     * publishes a version); lock-free readers load it with acquire. */
    _Atomic(feox_record *) current;
    uint32_t key_len;
    feox_retire_link retire;
    uint8_t key[];
} feox_entry;

/* Accounted bytes of an entry / record (what max_memory counts): the allocation plus allocator
 * overhead. */
size_t feox_entry_footprint(size_t key_len);
size_t feox_record_footprint(size_t value_len, bool cold);

/* Allocate an entry holding a copy of the key (current = NULL). NULL on allocation failure. */
feox_entry *feox_entry_new(const void *key, size_t key_len, uint64_t hash);
/* Free an entry that was never published. */
void feox_entry_free(feox_entry *e);
/* Retire a published, now unlinked entry (freed after a grace period). */
void feox_entry_retire(feox_entry *e);

/* Allocate a record with refs = 1 copying value. cold: no room for the bytes. value NULL and not
 * cold: room for value_len bytes, left for the caller to fill. */
feox_record *feox_record_new(const void *value, size_t value_len, uint32_t tag, uint64_t ts_ns,
                             uint64_t expires_at_ns, bool cold);
/* Free a record that was never published. */
void feox_record_free(feox_record *r);
/* Drop the index reference of an unpublished-now record after a grace period. */
void feox_record_retire(feox_record *r);
/* Take / drop a reference (a reference may only be taken inside an epoch section on a record that
 * was reachable, or on one the caller already references). */
void feox_record_ref(feox_record *r);
void feox_record_unref(feox_record *r);

/* Memcmp order of two keys, shorter prefix first. */
static inline int feox_key_compare(const void *a, size_t alen, const void *b, size_t blen);

#include <string.h>
static inline int feox_key_compare(const void *a, size_t alen, const void *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c;
    return (alen > blen) - (alen < blen);
}

#endif
