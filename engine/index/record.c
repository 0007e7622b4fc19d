/*
 * record.c — allocation, reference counting and retirement of key entries and value versions
 * (the objects and their concurrency rules are described in record.h).
 */
#include "index/record.h"

#include <string.h>

#include "base/alloc.h"

/* glibc malloc keeps 8 bytes of header and rounds to 16: count what the allocator really uses. */
static size_t allocation_footprint(size_t bytes)
{
    return ((bytes + 8 + 15) & ~(size_t)15);
}

size_t feox_entry_footprint(size_t key_len)
{
    return allocation_footprint(sizeof(feox_entry) + key_len);
}

size_t feox_record_footprint(size_t value_len, bool cold)
{
    return allocation_footprint(sizeof(feox_record) + (cold ? 0 : value_len));
}

feox_entry *feox_entry_new(const void *key, size_t key_len, uint64_t hash)
{
    feox_entry *e = feox_mem_alloc(sizeof *e + key_len);
    if (!e)
        return NULL;
    e->hash = hash;
    atomic_init(&e->current, NULL);
    e->key_len = (uint32_t)key_len;
    memcpy(e->key, key, key_len);
    return e;
}

void feox_entry_free(feox_entry *e)
{
    feox_mem_free(e);
}

static void destroy_entry(feox_retire_link *link)
{
    feox_entry *e = (feox_entry *)((char *)link - offsetof(feox_entry, retire));
    feox_mem_free(e);
}

void feox_entry_retire(feox_entry *e)
{
    feox_epoch_retire(&e->retire, destroy_entry, feox_entry_footprint(e->key_len));
}

feox_record *feox_record_new(const void *value, size_t value_len, uint32_t tag, uint64_t ts_ns,
                             uint64_t expires_at_ns, bool cold)
{
    feox_record *r = feox_mem_alloc(sizeof *r + (cold ? 0 : value_len));
    if (!r)
        return NULL;
    atomic_init(&r->refs, 1);
    r->tag = tag;
    r->ts_ns = ts_ns;
    r->expires_at_ns = expires_at_ns;
    atomic_init(&r->location, 0);
    r->value_len = (uint32_t)value_len;
    r->flags = cold ? FEOX_RECORD_COLD : 0;
    if (!cold && value_len && value)
        memcpy(r->value, value, value_len);
    return r;
}

void feox_record_free(feox_record *r)
{
    feox_mem_free(r);
}

void feox_record_ref(feox_record *r)
{
    atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
}

void feox_record_unref(feox_record *r)
{
    /* Release our accesses; the thread that drops the last reference acquires them all. */
    if (atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1)
        feox_mem_free(r);
}

static void destroy_record(feox_retire_link *link)
{
    feox_record_unref((feox_record *)((char *)link - offsetof(feox_record, retire)));
}

void feox_record_retire(feox_record *r)
{
    feox_epoch_retire(&r->retire, destroy_record,
                      feox_record_footprint(r->value_len, r->flags & FEOX_RECORD_COLD));
}
