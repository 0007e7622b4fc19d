/*
 * record.c — allocation, reference counting and retirement of key entries and value versions
 * (the objects and their concurrency rules are described in record.h).
 */
#include "index/record.h"

#include <string.h>

#include "base/alloc.h"

size_t feox_entry_footprint(size_t key_len)
{
    return feox_allocation_footprint(sizeof(feox_entry) + key_len);
}

bool feox_record_unref_last(feox_record *r)
{
    /* Release our accesses; the thread that drops the last reference acquires them all. */
    return atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1;
}

feox_entry *feox_entry_new(const void *key, size_t key_len, uint64_t hash)
{
    feox_entry *e = feox_mem_alloc(sizeof *e + key_len);
    if (!e)
        return NULL;
    e->hash = (uint32_t)hash;
    atomic_init(&e->current, NULL);
    e->len_word = 0;
    e->key_len = (uint32_t)key_len & FEOX_ENTRY_MAX_KEY;
    memcpy(e->key, key, key_len);
    return e;
}

/* The flags a version is made with: the caller's cold and location bits, and an expiry word if it
 * has an expiry. */
static inline unsigned version_flags(unsigned flags, uint64_t expires_at_ns)
{
    return (flags & (FEOX_RECORD_COLD | FEOX_RECORD_LOCATED | FEOX_RECORD_STORED)) |
           (expires_at_ns ? FEOX_RECORD_EXPIRES : 0);
}

/* flags: as version_flags gave them. */
static inline void init_record(feox_record *r, const void *value, size_t value_len, uint32_t tag,
                               uint64_t ts_ns, uint64_t expires_at_ns, unsigned flags,
                               uint32_t refs)
{
    atomic_init(&r->refs, refs);
    r->tag = tag;
    r->ts_ns = ts_ns;
    r->value_len = (uint32_t)value_len & FEOX_RECORD_MAX_VALUE;
    r->flags = flags;
    /* From the arguments, not the fields: the memcpy would make the compiler read them back. */
    size_t trailer = feox_record_trailer_offset(value_len, flags);
    if (flags & FEOX_RECORD_EXPIRES) {
        memcpy((char *)r + trailer, &expires_at_ns, sizeof expires_at_ns);
        trailer += sizeof expires_at_ns;
    }
    if (flags & FEOX_RECORD_LOCATED)
        atomic_init((_Atomic uint64_t *)((char *)r + trailer), 0);
    if (!(flags & FEOX_RECORD_COLD) && value_len && value)
        memcpy(r->value, value, value_len);
}

/* Bytes from a version that shares its block with its entry to that entry. */
static size_t embed_offset(size_t value_len, unsigned flags)
{
    return (feox_record_size(value_len, flags) + 7) & ~(size_t)7;
}

feox_entry *feox_entry_new_with_record(feox_slab_filler *slab, const void *key, size_t key_len,
                                       uint64_t hash, const void *value, size_t value_len,
                                       uint32_t tag, uint64_t ts_ns, uint64_t expires_at_ns,
                                       unsigned flags, feox_record **version)
{
    if (value_len > FEOX_RECORD_MAX_VALUE)
        return NULL;
    flags = version_flags(flags, expires_at_ns);
    size_t offset = embed_offset(value_len, flags);
    if (offset / 8 > FEOX_ENTRY_MAX_EMBED_UNITS)
        return NULL;
    size_t bytes = offset + sizeof(feox_entry) + key_len;
    bool in_slab = slab && bytes <= FEOX_SLAB_MAX_BLOCK;
    char *block = in_slab ? feox_slab_alloc(slab, bytes) : feox_mem_alloc(bytes);
    if (!block)
        return NULL;
    feox_record *r = (feox_record *)block;
    init_record(r, value, value_len, tag, ts_ns, expires_at_ns, flags, 2);
    if (in_slab)
        r->flags |= FEOX_RECORD_SLAB;
    feox_entry *e = (feox_entry *)(block + offset);
    e->hash = (uint32_t)hash;
    atomic_init(&e->current, NULL);
    e->len_word = 0;
    e->key_len = (uint32_t)key_len & FEOX_ENTRY_MAX_KEY;
    e->embed_units = (uint32_t)(offset / 8);
    memcpy(e->key, key, key_len);
    *version = r;
    return e;
}

/* Bytes of the slab block r starts (a version that shares it with its entry). */
static size_t slab_block_size(const feox_record *r)
{
    size_t offset = embed_offset(r->value_len, r->flags);
    const feox_entry *e = (const feox_entry *)((const char *)r + offset);
    return offset + sizeof(feox_entry) + e->key_len;
}

void feox_record_free(feox_record *r)
{
    if (r && (r->flags & FEOX_RECORD_SLAB))
        feox_slab_free(r, slab_block_size(r));
    else
        feox_mem_free(r);
}

/* The entry goes: its own allocation, or its hold on the version it shares a block with. */
void feox_entry_free_to(feox_entry *e, feox_slab_filler *slab)
{
    if (!e->embed_units) {
        feox_mem_free(e);
        return;
    }
    feox_record *r = feox_entry_shared_version(e);
    if (!feox_record_unref_last(r))
        return;
    if (slab && (r->flags & FEOX_RECORD_SLAB))
        feox_slab_recycle(slab, r, slab_block_size(r));
    else
        feox_record_free(r);
}

void feox_entry_free(feox_entry *e)
{
    feox_entry_free_to(e, NULL);
}

bool feox_entry_close(feox_entry *e)
{
    feox_record *r = atomic_load_explicit(&e->current, memory_order_relaxed);
    feox_record *shared = feox_entry_shared_version(e);
#ifndef FEOX_SLAB_POISON
    if (r && r == shared && (r->flags & FEOX_RECORD_SLAB)) {
        /* the index's reference and the entry's hold, dropped together */
        return atomic_fetch_sub_explicit(&r->refs, 2, memory_order_acq_rel) == 2;
    }
#endif
    (void)shared;
    feox_entry_free(e); /* the entry first: a version loaded with it sits right before it */
    if (r)
        feox_record_unref(r);
    return false;
}

#define ENTRY_OF(link) ((feox_entry *)((char *)(link)-offsetof(feox_entry, retire)))
#define RECORD_OF(link) ((feox_record *)((char *)(link)-offsetof(feox_record, retire)))

static void destroy_entry(feox_retire_link *link)
{
    feox_entry_free(ENTRY_OF(link));
}

static size_t entry_bytes(const feox_retire_link *link)
{
    return feox_entry_footprint(ENTRY_OF(link)->key_len);
}

static const feox_retire_kind entry_kind = {FEOX_RETIRE_ENTRY, destroy_entry, entry_bytes};

void feox_entry_retire(feox_entry *e)
{
    feox_epoch_retire(&e->retire, &entry_kind, feox_entry_footprint(e->key_len));
}

feox_record *feox_record_new(const void *value, size_t value_len, uint32_t tag, uint64_t ts_ns,
                             uint64_t expires_at_ns, unsigned flags)
{
    if (value_len > FEOX_RECORD_MAX_VALUE)
        return NULL;
    flags = version_flags(flags, expires_at_ns);
    feox_record *r = feox_mem_alloc(feox_record_size(value_len, flags));
    if (!r)
        return NULL;
    init_record(r, value, value_len, tag, ts_ns, expires_at_ns, flags, 1);
    return r;
}

void feox_record_ref(feox_record *r)
{
    atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
}

void feox_record_unref(feox_record *r)
{
    /* Release our accesses; the thread that drops the last reference acquires them all. */
    if (atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1)
        feox_record_free(r);
}

static void destroy_record(feox_retire_link *link)
{
    feox_record_unref(RECORD_OF(link));
}

static size_t record_bytes(const feox_retire_link *link)
{
    const feox_record *r = RECORD_OF(link);
    return feox_record_footprint(r->value_len, r->flags);
}

static const feox_retire_kind record_kind = {FEOX_RETIRE_RECORD, destroy_record, record_bytes};

void feox_record_retire(feox_record *r)
{
    feox_epoch_retire(&r->retire, &record_kind, feox_record_footprint(r->value_len, r->flags));
}
