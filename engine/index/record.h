/*
 * record.h — the two objects every index points at: the key entry and its immutable value versions.
 *
 *   feox_entry  one per live key, shared by the hash index and the ordered index (so an update
 *               swaps one pointer and never touches the ordered index). Holds the key bytes, its
 *               hash, and an atomic pointer to the current version. Created when a key is created,
 *               unlinked from both indexes and retired through the epoch when it is deleted; after
 *               that `current` is NULL, which is how a scan that still holds it sees the deletion.
 *               An entry made with its first version (feox_entry_new_with_record: one allocation
 *               per key when a store loads) holds a reference on that version, which sits at the
 *               start of their common allocation; the allocation is freed by whichever of the two
 *               goes last (the version's reference count covers both). A bulk load takes that
 *               block from a slab (base/slab.h; the version is then FEOX_RECORD_SLAB, and
 *               freeing the block drops its slab's live count instead of calling free()).
 *               Such an entry never shows
 *               another version: the write that replaces its first version puts a standalone
 *               entry (current = that same first version) in its place in both indexes, under
 *               the key's shard lock, retires it, and then publishes the new version in the
 *               standalone entry (store_apply.c). The retired entry keeps pointing at its first
 *               version, so a reader (or a scan) that took it from an index before the swap
 *               sees that version, as the key was at the swap, an instant before the new
 *               version was published: never NULL (which means deleted), never a torn state.
 *   feox_record one immutable version of a value: bytes, tag, timestamp, an expiry if it has one,
 *               and in a store with a backend its location there (words after the value: a
 *               version without a TTL has no expiry word, 8 bytes a key; nor has a version of a
 *               store whose backend finds values by key a location word: one flag says whether
 *               the backend holds it). Copy-on-write: a
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
#include <string.h>

#include "base/epoch.h"
#include "base/slab.h"

enum feox_record_flags {
    FEOX_RECORD_COLD = 1u << 0,    /* value bytes not resident: read them from the backend */
    FEOX_RECORD_LOCATED = 1u << 1, /* has a backend location word (a store with a backend) */
    /* the block of a version made with its entry lives in a slab (base/slab.h), not malloc */
    FEOX_RECORD_SLAB = 1u << 2,
    /* has an expiry word (a version with a TTL; set by feox_record_new from expires_at_ns) */
    FEOX_RECORD_EXPIRES = 1u << 3,
    /* no location word, but the backend holds this version: its location reads
     * FEOX_RECORD_LOCATION_STORED (a store whose backend finds values by key keeps one bit
     * instead of a word: 8 bytes a key; feox_storage.h, FEOX_STORAGE_VALUES_BY_KEY) */
    FEOX_RECORD_STORED = 1u << 4
};

/* The location of a version with FEOX_RECORD_STORED (FEOX_STORAGE_LOCATION_BY_KEY). */
#define FEOX_RECORD_LOCATION_STORED 1u

/* The largest value_len a record holds (FEOX_MAX_VALUE_SIZE is below it). */
#define FEOX_RECORD_MAX_VALUE ((1u << 24) - 1)

/* 28 bytes of header, then the value, then at the next multiple of 8 the words only some versions
 * have, in this order: the expiry (FEOX_RECORD_EXPIRES: most versions have no TTL and carry no
 * expiry at all) and the backend location (FEOX_RECORD_LOCATED: a memory-only store's versions
 * carry none). */
typedef struct feox_record {
    feox_retire_link retire;
    uint64_t ts_ns;
    _Atomic uint32_t refs;  /* index reference + one per feox_value handle */
    uint32_t tag;
    uint32_t value_len : 24; /* value_len bytes follow unless FEOX_RECORD_COLD */
    uint32_t flags : 8;      /* feox_record_flags */
    uint8_t value[];
} feox_record;

#define FEOX_RECORD_HEADER offsetof(feox_record, value)

/* Offset of the first word after the value (from the start of the record). */
static inline size_t feox_record_trailer_offset(size_t value_len, unsigned flags)
{
    return (FEOX_RECORD_HEADER + ((flags & FEOX_RECORD_COLD) ? 0 : value_len) + 7) & ~(size_t)7;
}

/* Offset of the location word in a located record (from the start of the record). */
static inline size_t feox_record_location_offset(size_t value_len, unsigned flags)
{
    return feox_record_trailer_offset(value_len, flags) + ((flags & FEOX_RECORD_EXPIRES) ? 8 : 0);
}

/* When the version expires (ns since the epoch), 0 = never. Immutable after publication. */
static inline uint64_t feox_record_expires_at(const feox_record *r)
{
    if (!(r->flags & FEOX_RECORD_EXPIRES))
        return 0;
    uint64_t at;
    memcpy(&at, (const char *)r + feox_record_trailer_offset(r->value_len, r->flags), sizeof at);
    return at;
}

/* The backend location word, or NULL for a record of a memory-only store. Moved (relocate)
 * under the key's shard lock; read relaxed: it publishes nothing. */
static inline _Atomic uint64_t *feox_record_location_word(feox_record *r)
{
    if (!(r->flags & FEOX_RECORD_LOCATED))
        return NULL;
    return (_Atomic uint64_t *)((char *)r + feox_record_location_offset(r->value_len, r->flags));
}

/* Backend location of this version, 0 = none. Without a location word: whether the backend
 * holds it (FEOX_RECORD_STORED: FEOX_RECORD_LOCATION_STORED), else 0. */
static inline uint64_t feox_record_location(const feox_record *r)
{
    _Atomic uint64_t *w = feox_record_location_word((feox_record *)r);
    if (w)
        return atomic_load_explicit(w, memory_order_relaxed);
    return (r->flags & FEOX_RECORD_STORED) ? FEOX_RECORD_LOCATION_STORED : 0;
}

/* Set the location of a located record. On a record without a location word (nothing at all in
 * a memory-only store's), whether it is nonzero (FEOX_RECORD_STORED): a change of flags, so only
 * on a record not published yet (relocation, which moves published versions, needs the word). */
static inline void feox_record_set_location(feox_record *r, uint64_t location)
{
    _Atomic uint64_t *w = feox_record_location_word(r);
    if (w)
        atomic_store_explicit(w, location, memory_order_relaxed);
    else if (location != 0)
        r->flags |= FEOX_RECORD_STORED;
    else
        r->flags &= ~FEOX_RECORD_STORED;
}

/* Longest key an entry holds (FEOX_MAX_KEY_SIZE is below it), and the largest distance, in
 * 8-byte units, from an entry back to a first version it shares its allocation with. */
#define FEOX_ENTRY_MAX_KEY ((1u << 17) - 1)
#define FEOX_ENTRY_MAX_EMBED_UNITS ((1u << 15) - 1)

/* 24 bytes of header, then the key. */
typedef struct feox_entry {
    feox_retire_link retire;
    /* NULL once the key is deleted. Written under the key's shard lock (a release store
     * publishes a version); lock-free readers load it with acquire. */
    _Atomic(feox_record *) current;
    /* The key's hash as the hash index uses it (feox_hash_key: 32 bits, repeated in both
     * halves of its 64-bit form); feox_entry_hash gives that form back. */
    uint32_t hash;
    union {
        struct {
            uint32_t key_len : 17;
            /* 0, or the entry shares one allocation with its key's first version, which starts
             * this many 8-byte units before it (feox_entry_new_with_record). */
            uint32_t embed_units : 15;
        };
        uint32_t len_word; /* both, as one word (hash_index.c's probe mark lines up with it) */
    };
    uint8_t key[];
} feox_entry;

/* The entry's 64-bit hash (what feox_hash_key returned for its key). */
static inline uint64_t feox_entry_hash(const feox_entry *e)
{
    return (uint64_t)e->hash << 32 | e->hash;
}

/* glibc malloc keeps 8 bytes of header and rounds to 16: count what the allocator really uses. */
static inline size_t feox_allocation_footprint(size_t bytes)
{
    return ((bytes + 8 + 15) & ~(size_t)15);
}

/* Bytes of a record's allocation (flags: feox_record_flags, FEOX_RECORD_EXPIRES included for a
 * version with an expiry). */
static inline size_t feox_record_size(size_t value_len, unsigned flags)
{
    size_t words =
        ((flags & FEOX_RECORD_EXPIRES) ? 1 : 0) + ((flags & FEOX_RECORD_LOCATED) ? 1 : 0);
    if (!words)
        return FEOX_RECORD_HEADER + ((flags & FEOX_RECORD_COLD) ? 0 : value_len);
    return feox_record_trailer_offset(value_len, flags) + words * sizeof(uint64_t);
}

/* Accounted bytes of an entry / record (what max_memory counts): the allocation plus allocator
 * overhead. */
size_t feox_entry_footprint(size_t key_len);
static inline size_t feox_record_footprint(size_t value_len, unsigned flags)
{
    return feox_allocation_footprint(feox_record_size(value_len, flags));
}

/* The version e shares its allocation with (its key's first version, when the key was loaded),
 * or NULL. While e is in the indexes this is its current version (see feox_entry above). */
static inline feox_record *feox_entry_shared_version(const feox_entry *e)
{
    return e->embed_units ? (feox_record *)((char *)e - (size_t)e->embed_units * 8) : NULL;
}

/* Allocate an entry holding a copy of the key (current = NULL). NULL on allocation failure. */
feox_entry *feox_entry_new(const void *key, size_t key_len, uint64_t hash);
/* One allocation holding the key's first version (as feox_record_new: refs = 1 for the index,
 * plus one held by the entry) followed by the entry (current = NULL; the caller publishes the
 * version). *version gets the version. The block comes from the filler's slab if slab is not
 * NULL and it is at most FEOX_SLAB_MAX_BLOCK bytes (the version is then FEOX_RECORD_SLAB),
 * else from the allocator. NULL on allocation failure, or if the version takes more than
 * FEOX_ENTRY_MAX_EMBED_UNITS * 8 bytes (for small values only). */
feox_entry *feox_entry_new_with_record(feox_slab_filler *slab, const void *key, size_t key_len,
                                       uint64_t hash, const void *value, size_t value_len,
                                       uint32_t tag, uint64_t ts_ns, uint64_t expires_at_ns,
                                       unsigned flags, feox_record **version);
/* Free an entry that was never published, or whose last user is gone (with an entry made with
 * its first version: drop its hold on that version; whichever of the two goes last frees their
 * block). */
void feox_entry_free(feox_entry *e);
/* The same, but a slab block freed here (nobody else has seen it) goes back to slab, the filler
 * that made it, for its next allocations. */
void feox_entry_free_to(feox_entry *e, feox_slab_filler *slab);
/* Close: e (in the indexes, nobody else using the store) goes with its version. An entry made
 * with its first version, showing it, drops both references at once; if that frees their slab
 * block, the block is left for the caller to count (true) and free in a batch with
 * feox_slab_free_many (sanitizer builds: freed here, false). */
bool feox_entry_close(feox_entry *e);
/* Retire a published, now unlinked entry (freed after a grace period). */
void feox_entry_retire(feox_entry *e);

/* Allocate a record with refs = 1 copying value (value_len at most FEOX_RECORD_MAX_VALUE).
 * flags: FEOX_RECORD_COLD for no room for the bytes, FEOX_RECORD_LOCATED for a location word
 * (initially 0), FEOX_RECORD_STORED (kept); an expiry word comes with a nonzero expires_at_ns
 * (FEOX_RECORD_EXPIRES, which flags need not say). value NULL and not cold: room for value_len
 * bytes, left for the caller to fill. */
feox_record *feox_record_new(const void *value, size_t value_len, uint32_t tag, uint64_t ts_ns,
                             uint64_t expires_at_ns, unsigned flags);
/* Free a record that was never published (or whose last reference was dropped). */
void feox_record_free(feox_record *r);
/* Drop the index reference of an unpublished-now record after a grace period. */
void feox_record_retire(feox_record *r);
/* Take / drop a reference (a reference may only be taken inside an epoch section on a record that
 * was reachable, or on one the caller already references). */
void feox_record_ref(feox_record *r);
void feox_record_unref(feox_record *r);
/* Drop a reference without freeing: true if it was the last one (the caller then frees r with
 * feox_record_free). */
bool feox_record_unref_last(feox_record *r);

/* Memcmp order of two keys, shorter prefix first. */
static inline int feox_key_compare(const void *a, size_t alen, const void *b, size_t blen);

static inline int feox_key_compare(const void *a, size_t alen, const void *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c;
    return (alen > blen) - (alen < blen);
}

#endif
