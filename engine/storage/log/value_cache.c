/*
 * value_cache.c — the CLOCK cache of cold values (contract in value_cache.h).
 *
 * Entries live in a hash table (chained, power-of-two buckets) and in a ring array the clock hand
 * sweeps: a hit sets the entry's reference bit; to make room the hand clears set bits and evicts
 * the first entry found clear (second chance), like FeoxDB's cache but without per-bucket locks.
 * An eviction leaves a hole that the next insertion fills, just behind the hand, so a new entry
 * is the last one the hand reaches (moving the ring's last entry into the hole instead would put
 * the newest entry right under the hand, to be evicted next).
 */
#include "storage/log/value_cache.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "base/alloc.h"

#define ENTRY_OVERHEAD 64u /* accounted per entry besides the value bytes */

typedef struct cache_entry {
    uint64_t location;
    struct cache_entry *next; /* hash chain */
    size_t ring_at;           /* index in the ring */
    uint32_t value_len;
    bool referenced;
    uint8_t value[];
} cache_entry;

struct feox_value_cache {
    pthread_mutex_t mu;
    uint64_t budget, bytes;
    cache_entry **buckets;
    size_t bucket_count; /* power of two */
    cache_entry **ring;  /* slots the hand sweeps; NULL = a hole left by an eviction */
    size_t ring_len, ring_cap, hand;
    size_t *holes; /* stack of free ring slots, reused before the ring grows */
    size_t holes_len, entries;
    uint64_t hits, misses, evictions;
};

static size_t bucket_of(const feox_value_cache *c, uint64_t location)
{
    uint64_t h = location * 0x9E3779B97F4A7C15u;
    return (size_t)(h >> 32) & (c->bucket_count - 1);
}

feox_value_cache *feox_value_cache_new(uint64_t budget_bytes)
{
    feox_value_cache *c = feox_mem_calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->budget = budget_bytes;
    c->bucket_count = 1024;
    c->buckets = feox_mem_calloc(c->bucket_count, sizeof *c->buckets);
    if (!c->buckets || pthread_mutex_init(&c->mu, NULL) != 0) {
        feox_mem_free(c->buckets);
        feox_mem_free(c);
        return NULL;
    }
    return c;
}

void feox_value_cache_free(feox_value_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->ring_len; i++)
        feox_mem_free(c->ring[i]);
    feox_mem_free(c->ring);
    feox_mem_free(c->holes);
    feox_mem_free(c->buckets);
    pthread_mutex_destroy(&c->mu);
    feox_mem_free(c);
}

static cache_entry *find(feox_value_cache *c, uint64_t location)
{
    for (cache_entry *e = c->buckets[bucket_of(c, location)]; e; e = e->next)
        if (e->location == location)
            return e;
    return NULL;
}

bool feox_value_cache_get(feox_value_cache *c, uint64_t location, void *buf, uint32_t value_len)
{
    pthread_mutex_lock(&c->mu);
    cache_entry *e = find(c, location);
    bool hit = e && e->value_len == value_len;
    if (hit) {
        memcpy(buf, e->value, value_len);
        e->referenced = true;
        c->hits++;
    } else {
        c->misses++;
    }
    pthread_mutex_unlock(&c->mu);
    return hit;
}

/* Take victim out of its hash chain and the ring, and free it. */
static void unlink_entry(feox_value_cache *c, cache_entry *victim)
{
    cache_entry **link = &c->buckets[bucket_of(c, victim->location)];
    while (*link != victim)
        link = &(*link)->next;
    *link = victim->next;
    c->ring[victim->ring_at] = NULL;
    c->holes[c->holes_len++] = victim->ring_at; /* holes has ring_cap slots */
    c->bytes -= victim->value_len + ENTRY_OVERHEAD;
    c->entries--;
    feox_mem_free(victim);
}

/* Drop victim to make room (counted). */
static void evict(feox_value_cache *c, cache_entry *victim)
{
    unlink_entry(c, victim);
    c->evictions++;
}

void feox_value_cache_keep_only(feox_value_cache *c, uint64_t mask, uint64_t keep)
{
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->ring_len; i++)
        if (c->ring[i] && (c->ring[i]->location & mask) != keep)
            unlink_entry(c, c->ring[i]);
    pthread_mutex_unlock(&c->mu);
}

/* Second-chance sweep until need more bytes fit. */
static void make_room(feox_value_cache *c, uint64_t need)
{
    while (c->entries > 0 && c->bytes + need > c->budget) {
        if (c->hand >= c->ring_len)
            c->hand = 0;
        cache_entry *e = c->ring[c->hand++];
        if (!e)
            continue;
        if (e->referenced)
            e->referenced = false;
        else
            evict(c, e);
    }
}

/* A free ring slot for a new entry, or SIZE_MAX if the ring cannot grow. */
static size_t take_slot(feox_value_cache *c)
{
    if (c->holes_len > 0)
        return c->holes[--c->holes_len];
    if (c->ring_len == c->ring_cap) {
        size_t cap = c->ring_cap ? c->ring_cap * 2 : 256;
        cache_entry **ring = feox_mem_realloc(c->ring, cap * sizeof *ring);
        if (!ring)
            return SIZE_MAX;
        c->ring = ring;
        size_t *holes = feox_mem_realloc(c->holes, cap * sizeof *holes);
        if (!holes)
            return SIZE_MAX; /* ring kept its larger size: fine, ring_cap unchanged */
        c->holes = holes;
        c->ring_cap = cap;
    }
    return c->ring_len++;
}

static void grow_buckets(feox_value_cache *c)
{
    size_t count = c->bucket_count * 2;
    cache_entry **buckets = feox_mem_calloc(count, sizeof *buckets);
    if (!buckets)
        return; /* longer chains, still correct */
    size_t old_count = c->bucket_count;
    cache_entry **old = c->buckets;
    c->buckets = buckets;
    c->bucket_count = count;
    for (size_t i = 0; i < old_count; i++)
        for (cache_entry *e = old[i], *next; e; e = next) {
            next = e->next;
            size_t b = bucket_of(c, e->location);
            e->next = buckets[b];
            buckets[b] = e;
        }
    feox_mem_free(old);
}

void feox_value_cache_put(feox_value_cache *c, uint64_t location, const void *value,
                          uint32_t value_len)
{
    uint64_t need = (uint64_t)value_len + ENTRY_OVERHEAD;
    if (need > c->budget / 4)
        return;
    cache_entry *e = feox_mem_alloc(sizeof *e + value_len);
    if (!e)
        return; /* a cache may always decline */
    e->location = location;
    e->value_len = value_len;
    e->referenced = false;
    memcpy(e->value, value, value_len);
    pthread_mutex_lock(&c->mu);
    if (find(c, location)) { /* another reader cached it first */
        pthread_mutex_unlock(&c->mu);
        feox_mem_free(e);
        return;
    }
    make_room(c, need);
    size_t slot = take_slot(c);
    if (slot == SIZE_MAX) {
        pthread_mutex_unlock(&c->mu);
        feox_mem_free(e);
        return;
    }
    e->ring_at = slot;
    c->ring[slot] = e;
    c->entries++;
    size_t b = bucket_of(c, location);
    e->next = c->buckets[b];
    c->buckets[b] = e;
    c->bytes += need;
    if (c->entries > c->bucket_count)
        grow_buckets(c);
    pthread_mutex_unlock(&c->mu);
}

void feox_value_cache_stats(feox_value_cache *c, feox_stats *out)
{
    pthread_mutex_lock(&c->mu);
    out->cache_hits += c->hits;
    out->cache_misses += c->misses;
    out->cache_evictions += c->evictions;
    out->cache_bytes += c->bytes;
    pthread_mutex_unlock(&c->mu);
}
