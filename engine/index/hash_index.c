/*
 * hash_index.c — sharded ck_hs over feox_entry objects (contract in hash_index.h).
 *
 * ck_hs in Debian's build keeps no hash bits in its slots (pointer packing is disabled), so every
 * probed slot costs a dereference of the stored object; the compare callback therefore checks the
 * 64-bit hash stored first in the entry before the length and the key bytes.
 * Lookups pass a probe object instead of an entry: it starts like an entry (two pointer slots,
 * the 32-bit hash, the length word) but its length word holds PROBE_MARK, which no entry can
 * have (its key_len would be 2^17 - 1; keys are at most 100 KiB), and the real key follows.
 * An entry keeps 32 bits of hash: feox_hash_key keeps XXH3's low 32 bits and repeats them in
 * both halves, so the shard (top bits) and ck_hs's slot (low bits) come from the same 32 bits.
 * Each slot also holds bits 10 to 25 of them above the entry's address (hash_index.h, slot_tag):
 * a probe that passes another key's slot skips it on the slot's word alone, unless those bits
 * agree, instead of reading that entry (a cache miss per collision). The shard takes bits 26 to
 * 31 and a slot's position the low ones, so of two keys met in one probe sequence, the bits
 * above log2(slots per shard) are unrelated: 11 bits at 2^15 slots a shard (1M keys).
 */
#include "index/hash_index.h"

#include <ck_pr.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "base/alloc.h"

#define PROBE_MARK UINT32_MAX
#define FEOX_DEFAULT_SHARD_BITS 6 /* 64 shards: enough writers in parallel for 64 cores */

typedef struct hash_probe {
    void *unused[2]; /* line up with feox_entry.retire and .current */
    uint32_t hash;
    uint32_t mark; /* lines up with feox_entry.len_word; always PROBE_MARK */
    uint32_t key_len;
    const void *key;
} hash_probe;

_Static_assert(offsetof(hash_probe, hash) == offsetof(feox_entry, hash), "probe layout");
_Static_assert(offsetof(hash_probe, mark) == offsetof(feox_entry, len_word), "probe layout");

#if FEOX_HASH_TAGGED
/* The bits of a key's 32-bit hash a slot keeps, in place (the slot's top 16 bits). */
static inline uintptr_t slot_tag(uint32_t hash)
{
    return (uintptr_t)((hash >> 10) & 0xffff) << FEOX_HASH_TAG_SHIFT;
}
#define SLOT_TAG_MASK ((uintptr_t)0xffff << FEOX_HASH_TAG_SHIFT)
#endif

/* What a slot holds for e. */
static inline void *slot_object(feox_entry *e)
{
#if FEOX_HASH_TAGGED
    return (void *)((uintptr_t)e | slot_tag(e->hash));
#else
    return e;
#endif
}

/* The FEOX_TSAN_* annotations in this file stand for ck_hs's own publication of an entry (its
 * inline-asm store and loads, which TSan cannot see): the entry's fields, written before
 * feox_hash_insert, are read by lock-free probes. */
static unsigned long entry_hash(const void *object, unsigned long seed)
{
    (void)seed;
    const feox_entry *e = feox_hash_object_entry((void *)object);
    FEOX_TSAN_ACQUIRE(e);
    return (unsigned long)feox_entry_hash(e);
}

/* Equal key bytes. Keys of 8 to 16 bytes (integer keys, UUIDs) are compared inline as two
 * overlapping 8-byte words: no call into the C library's memcmp, whose code would be one more
 * set of instruction-cache lines on every lookup. */
static inline bool key_bytes_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
    if (n >= 8 && n <= 16) {
        uint64_t a0, a1, b0, b1;
        memcpy(&a0, a, 8);
        memcpy(&b0, b, 8);
        memcpy(&a1, a + n - 8, 8);
        memcpy(&b1, b + n - 8, 8);
        return ((a0 ^ b0) | (a1 ^ b1)) == 0;
    }
    return memcmp(a, b, n) == 0;
}

/* A lookup that is about to read an entry also prefetches the FEOX_HASH_VERSION_PREFETCH bytes
 * before it, where its key's current version usually starts (hash_index.h): the version's header
 * and first value bytes then load with the entry instead of after it. A line that holds
 * something else costs one load and nothing more (a prefetch never faults). */
static inline void prefetch_version_before(const feox_entry *e)
{
    uintptr_t at = (uintptr_t)e;
    for (int back = FEOX_HASH_VERSION_PREFETCH; back > 0; back -= 64)
        __builtin_prefetch((const void *)(at - (uintptr_t)back), 0, 3);
}

static bool entry_matches(const void *stored, const void *wanted)
{
    const void *wanted_slot = wanted;
    wanted = feox_hash_object_entry((void *)wanted);
    const feox_entry *e = feox_hash_object_entry((void *)stored);
    uint32_t mark;
    memcpy(&mark, (const char *)wanted + offsetof(feox_entry, len_word), sizeof mark);
    if (mark == PROBE_MARK) {
        const hash_probe *p = wanted;
#if FEOX_HASH_TAGGED
        if (((uintptr_t)stored & SLOT_TAG_MASK) != slot_tag(p->hash))
            return false; /* another key's slot: its entry stays unread */
#endif
        prefetch_version_before(e); /* before the entry's own miss: both load at once */
        FEOX_TSAN_ACQUIRE(e);
        return e->hash == p->hash && e->key_len == p->key_len &&
               key_bytes_equal(e->key, p->key, p->key_len);
    }
    /* An entry being added (feox_hash_insert's ck_hs_put_unique, which compares it with every
     * slot its probe passes although its key is absent): it comes as its slot word, tag and all. */
#if FEOX_HASH_TAGGED
    if ((((uintptr_t)stored ^ (uintptr_t)wanted_slot) & SLOT_TAG_MASK) != 0)
        return false; /* another key's slot: its entry stays unread */
#else
    (void)wanted_slot;
#endif
    FEOX_TSAN_ACQUIRE(e);
    const feox_entry *other = wanted;
    return e->hash == other->hash && e->key_len == other->key_len &&
           key_bytes_equal(e->key, other->key, e->key_len);
}

/* ---- the maps' memory ------------------------------------------------------------------------
 * Every map ck_hs allocates starts MAP_HEADER bytes into its block; the header names the region it
 * was carved from, or NULL for a block of its own from feox_mem_alloc. ck_malloc's callbacks take
 * no context: feox_hash_index_reserve and feox_hash_index_expect point `carving` (this thread's)
 * at their region while they replace or grow the shards' maps, and every other map (init's,
 * growth's) is a block of its own. */
#define MAP_HEADER 16

struct feox_hash_map_region {
    feox_hash_map_region *next;
    char *free, *end; /* the part not carved yet */
};

static _Thread_local feox_hash_map_region *carving;

/* Set while feox_hash_index_reserve asks ck_hs what a map of the size it wants takes: map_malloc
 * notes the size and fails, so ck_hs_reset_size leaves the set as it was. */
static _Thread_local size_t *measuring;

static void *map_with_header(char *block, feox_hash_map_region *region)
{
    memcpy(block, &region, sizeof region);
    return block + MAP_HEADER;
}

static feox_hash_map_region *region_of_map(void *map)
{
    feox_hash_map_region *region;
    memcpy(&region, (char *)map - MAP_HEADER, sizeof region);
    return region;
}

/* size bytes (and the header) from the region, cache-line aligned; NULL if they do not fit. */
static char *region_carve(feox_hash_map_region *region, size_t size)
{
    size_t bytes = (MAP_HEADER + size + 63) & ~(size_t)63;
    if (!region || (size_t)(region->end - region->free) < bytes)
        return NULL;
    char *block = region->free;
    region->free += bytes;
    return block;
}

static void *map_malloc(size_t size)
{
    if (measuring) {
        *measuring = size;
        return NULL;
    }
    if (size > SIZE_MAX - 64 - MAP_HEADER)
        return NULL;
    char *block = region_carve(carving, size);
    if (block)
        return map_with_header(block, carving);
    block = feox_mem_alloc(MAP_HEADER + size);
    return block ? map_with_header(block, NULL) : NULL;
}

static void map_free(void *ptr, size_t size, bool defer)
{
    if (!ptr || region_of_map(ptr))
        return; /* a carved map goes with its region, when the index is destroyed */
    char *block = (char *)ptr - MAP_HEADER;
    if (defer)
        feox_epoch_retire_ptr(block, MAP_HEADER + size); /* readers may still probe it */
    else
        feox_mem_free(block);
}

static void *map_realloc(void *ptr, size_t old_size, size_t new_size, bool defer)
{
    (void)defer; /* ck_hs only reallocates maps it has not published */
    if (!ptr)
        return map_malloc(new_size);
    if (!region_of_map(ptr)) {
        if (new_size > SIZE_MAX - MAP_HEADER)
            return NULL;
        char *block = feox_mem_realloc((char *)ptr - MAP_HEADER, MAP_HEADER + new_size);
        return block ? (char *)block + MAP_HEADER : NULL;
    }
    void *fresh = map_malloc(new_size);
    if (fresh)
        memcpy(fresh, ptr, old_size < new_size ? old_size : new_size);
    return fresh;
}

/* Bytes ck_hs asks for a map of `slots` slots (its header, a pointer and, in delete mode, a probe
 * bound per slot, rounded up to a power of two of slots), or 0 if it asked for none. */
static size_t map_bytes(ck_hs_t *set, uint64_t slots)
{
    size_t size = 0;
    measuring = &size;
    bool made = ck_hs_reset_size(set, (unsigned long)slots);
    measuring = NULL;
    return made ? 0 : size;
}

/* A region for the maps of `shards` shards of `each` bytes (what map_bytes said): as many bytes as
 * carving them takes, and no more (a mapping's untouched tail still counts as mapped memory). NULL
 * if it cannot be had (the maps then come one by one). */
static feox_hash_map_region *region_new(unsigned shards, size_t each)
{
    each = (MAP_HEADER + each + 63) & ~(size_t)63; /* as region_carve takes it */
    if (each > (SIZE_MAX - 64) / shards)
        return NULL;
    size_t bytes = 64 + each * shards;
    char *p = feox_mem_alloc_large(bytes);
    if (!p)
        return NULL;
    feox_hash_map_region *region = (feox_hash_map_region *)p;
    region->next = NULL;
    region->free = p + 64;
    region->end = p + bytes;
    return region;
}

static void regions_free(feox_hash_map_region *region)
{
    while (region) {
        feox_hash_map_region *next = region->next;
        feox_mem_free_large(region);
        region = next;
    }
}

static struct ck_malloc map_allocator = {
    .malloc = map_malloc, .realloc = map_realloc, .free = map_free};

feox_err feox_hash_index_init(feox_hash_index *idx, uint64_t capacity_hint, uint64_t seed)
{
    idx->shard_bits = FEOX_DEFAULT_SHARD_BITS;
    idx->seed = seed;
    idx->regions = NULL;
    unsigned count = feox_hash_shard_count(idx);
    idx->shards = NULL;
    if (posix_memalign((void **)&idx->shards, 64, sizeof(feox_shard) * count) != 0)
        return FEOX_ERR_NOMEM;
    memset(idx->shards, 0, sizeof(feox_shard) * count);
    uint64_t per_shard = capacity_hint / count + 1;
    if (per_shard < 16)
        per_shard = 16;
    for (unsigned i = 0; i < count; i++) {
        feox_shard *s = &idx->shards[i];
        /* ck_hs keeps the load at or below 50%: ask for twice the expected keys. */
        if (!ck_hs_init(&s->set, CK_HS_MODE_OBJECT | CK_HS_MODE_SPMC | CK_HS_MODE_DELETE,
                        entry_hash, entry_matches, &map_allocator, per_shard * 2, seed)) {
            for (unsigned j = 0; j < i; j++) {
                ck_hs_destroy(&idx->shards[j].set);
                pthread_mutex_destroy(&idx->shards[j].lock);
            }
            free(idx->shards);
            idx->shards = NULL;
            return FEOX_ERR_NOMEM;
        }
        pthread_mutex_init(&s->lock, NULL);
        feox_ttl_heap_init(&s->ttl);
    }
    return FEOX_OK;
}

feox_err feox_hash_index_reserve(feox_hash_index *idx, uint64_t count)
{
    unsigned shards = feox_hash_shard_count(idx);
    uint64_t per_shard = count / shards + 1;
    if (per_shard < 16)
        per_shard = 16;
    size_t each = map_bytes(&idx->shards[0].set, per_shard * 2);
    feox_hash_map_region *region = each ? region_new(shards, each) : NULL;
    if (region) {
        region->next = idx->regions;
        idx->regions = region;
    }
    carving = region;
    feox_err err = FEOX_OK;
    for (unsigned i = 0; i < shards && !err; i++) {
        /* At most 50% load, as in init; an empty map is replaced rather than grown. */
        if (!ck_hs_reset_size(&idx->shards[i].set, per_shard * 2))
            err = FEOX_ERR_NOMEM;
    }
    carving = NULL;
    return err;
}

/* Slots shard's map needs for its keys and its share of `more` new ones (0: too many). */
static uint64_t expected_slots(const feox_hash_index *idx, feox_shard *shard, uint64_t more)
{
    uint64_t per_shard = ck_hs_count(&shard->set) + more / feox_hash_shard_count(idx) + 1;
    /* At most 50% load, as in init. */
    return per_shard > (uint64_t)1 << 40 ? 0 : per_shard * 2;
}

feox_err feox_hash_index_expect(feox_hash_index *idx, uint64_t more)
{
    unsigned shards = feox_hash_shard_count(idx);
    size_t each = 0; /* the largest map a shard will want: the shards hold about as many keys */
    for (unsigned i = 0; i < shards; i++) {
        uint64_t slots = expected_slots(idx, &idx->shards[i], more);
        if (!slots)
            return FEOX_ERR_NOMEM;
        size_t bytes = map_bytes(&idx->shards[i].set, slots);
        each = bytes > each ? bytes : each;
    }
    feox_hash_map_region *region = each ? region_new(shards, each) : NULL;
    if (region) {
        region->next = idx->regions;
        idx->regions = region;
    }
    feox_err err = FEOX_OK;
    for (unsigned i = 0; i < shards; i++) {
        feox_shard *shard = &idx->shards[i];
        pthread_mutex_lock(&shard->lock);
        uint64_t slots = expected_slots(idx, shard, more);
        carving = region;
        /* ck_hs_grow keeps a map already that large, and publishes a new one as its own growth
         * does: readers go on. */
        if (!slots || !ck_hs_grow(&shard->set, (unsigned long)slots))
            err = FEOX_ERR_NOMEM;
        carving = NULL;
        pthread_mutex_unlock(&shard->lock);
    }
    return err;
}

void feox_hash_index_destroy(feox_hash_index *idx)
{
    if (!idx->shards)
        return;
    for (unsigned i = 0; i < feox_hash_shard_count(idx); i++) {
        ck_hs_destroy(&idx->shards[i].set);
        pthread_mutex_destroy(&idx->shards[i].lock);
        feox_ttl_heap_destroy(&idx->shards[i].ttl);
    }
    free(idx->shards);
    idx->shards = NULL;
    regions_free(idx->regions);
    idx->regions = NULL;
}

uint64_t feox_hash_key(const feox_hash_index *idx, const void *key, size_t key_len)
{
    uint64_t low = (uint32_t)XXH3_64bits_withSeed(key, key_len, idx->seed);
    return low << 32 | low;
}

feox_entry *feox_hash_lookup(const feox_hash_index *idx, uint64_t hash, const void *key,
                             size_t key_len)
{
    hash_probe probe = {.unused = {NULL, NULL},
                        .hash = (uint32_t)hash,
                        .mark = PROBE_MARK,
                        .key_len = (uint32_t)key_len,
                        .key = key};
    feox_shard *s = feox_hash_shard(idx, hash);
    feox_entry *e = feox_hash_object_entry(ck_hs_get(&s->set, (unsigned long)hash, &probe));
    if (e)
        FEOX_TSAN_ACQUIRE(e);
    return e;
}

feox_err feox_hash_insert(feox_hash_index *idx, feox_entry *e)
{
    uint64_t hash = feox_entry_hash(e);
    feox_shard *s = feox_hash_shard(idx, hash);
#if FEOX_HASH_TAGGED
    if ((uintptr_t)e & SLOT_TAG_MASK)
        return FEOX_ERR_NOMEM; /* an address a slot cannot hold with its tag (hash_index.h) */
#endif
    /* The entry is fully initialized before ck_hs publishes it (its store is a release). */
    FEOX_TSAN_RELEASE(e);
    return ck_hs_put_unique(&s->set, (unsigned long)hash, slot_object(e)) ? FEOX_OK
                                                                          : FEOX_ERR_NOMEM;
}

void feox_hash_remove(feox_hash_index *idx, feox_entry *e)
{
    uint64_t hash = feox_entry_hash(e);
    feox_shard *s = feox_hash_shard(idx, hash);
    hash_probe probe = {.unused = {NULL, NULL},
                        .hash = e->hash,
                        .mark = PROBE_MARK,
                        .key_len = e->key_len,
                        .key = e->key};
    (void)ck_hs_remove(&s->set, (unsigned long)hash, &probe);
}

feox_entry *feox_hash_replace(feox_hash_index *idx, feox_entry *fresh)
{
    uint64_t hash = feox_entry_hash(fresh);
    feox_shard *s = feox_hash_shard(idx, hash);
    /* fresh is fully initialized before the slot's store publishes it (ck_hs's store is a plain
     * one: the fence orders it, as a release store would). */
    atomic_thread_fence(memory_order_release);
    FEOX_TSAN_RELEASE(fresh);
    void *previous = NULL;
    if (!ck_hs_fas(&s->set, (unsigned long)hash, slot_object(fresh), &previous))
        return NULL;
    return feox_hash_object_entry(previous);
}

uint64_t feox_hash_count(const feox_hash_index *idx)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < feox_hash_shard_count(idx); i++)
        n += ck_hs_count(&idx->shards[i].set);
    return n;
}

uint64_t feox_hash_sum_keys(const feox_hash_index *idx)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < feox_hash_shard_count(idx); i++)
        n += atomic_load_explicit(&idx->shards[i].keys, memory_order_relaxed);
    return n;
}

uint64_t feox_hash_sum_ttl_keys(const feox_hash_index *idx)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < feox_hash_shard_count(idx); i++)
        n += atomic_load_explicit(&idx->shards[i].ttl_keys, memory_order_relaxed);
    return n;
}
