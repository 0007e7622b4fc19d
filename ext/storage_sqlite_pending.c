/*
 * storage_sqlite_pending.c — the pending map of the "sqlite" backend (buffered mode): an array of
 * entries in first-change order, a hash of key -> entry for replacing and finding, and a sort by
 * key for writing them out. Allocations go through sqlite3_malloc, like the rest of ext/; a key's
 * first change is copied into the map's arena (byte_arena.h says why), a larger later change of
 * the same key into a block of its own.
 */
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include <sqlite3ext.h>

#include "storage_sqlite_pending.h"

SQLITE_EXTENSION_INIT3

static size_t slot_of(const feox_pending *p, const void *key, uint32_t key_len)
{
    return (size_t)XXH3_64bits(key, key_len) & (p->nslots - 1);
}

static bool key_equal(const feox_pending_entry *e, const void *key, uint32_t key_len)
{
    return e->key_len == key_len && memcmp(e->bytes, key, key_len) == 0;
}

/* The slot holding key, or the empty slot where it would go. */
static size_t find_slot(const feox_pending *p, const void *key, uint32_t key_len)
{
    size_t i = slot_of(p, key, key_len);
    while (p->slots[i] != 0 && !key_equal(&p->entries[p->slots[i] - 1], key, key_len)) {
        i = (i + 1) & (p->nslots - 1);
    }
    return i;
}

/* Keep the hash at most half full. */
static bool grow_slots(feox_pending *p)
{
    if (p->nslots != 0 && (p->n + 1) * 2 <= p->nslots) {
        return true;
    }
    size_t nslots = p->nslots ? p->nslots * 2 : 1024;
    uint32_t *slots = sqlite3_malloc64(nslots * sizeof *slots);
    if (slots == NULL) {
        return false;
    }
    memset(slots, 0, nslots * sizeof *slots);
    sqlite3_free(p->slots);
    p->slots = slots;
    p->nslots = nslots;
    for (size_t k = 0; k < p->n; k++) {
        size_t i = slot_of(p, p->entries[k].bytes, p->entries[k].key_len);
        while (p->slots[i] != 0) {
            i = (i + 1) & (p->nslots - 1);
        }
        p->slots[i] = (uint32_t)(k + 1);
    }
    return true;
}

/* Room for a key's first change: the map's inline bytes if free and large enough, else the
 * arena (given back all at once when the map is emptied). */
static unsigned char *first_change_bytes(feox_pending *p, uint64_t len)
{
    if (!p->inline_used && len <= sizeof p->inline_bytes) {
        p->inline_used = true;
        return p->inline_bytes;
    }
    return feox_arena_alloc(&p->arena, (size_t)len);
}

/* Bytes an entry's block can take: its key and value as first written (a shorter later change
 * keeps the block), or the whole inline buffer. */
static uint64_t entry_room(const feox_pending *p, const feox_pending_entry *e)
{
    return e->bytes == p->inline_bytes ? sizeof p->inline_bytes
                                       : (uint64_t)e->key_len + e->value_len + 1;
}

/* Give back an entry's block: the inline bytes or its own allocation (arena bytes go back when
 * the map is emptied). */
static void entry_bytes_free(feox_pending *p, const feox_pending_entry *e)
{
    if (e->bytes == p->inline_bytes) {
        p->inline_used = false;
    } else if (e->owns_bytes) {
        sqlite3_free(e->bytes);
    }
}

bool feox_pending_put(feox_pending *p, const void *key, uint32_t key_len, const void *value,
                      uint32_t value_len, uint32_t tag, uint64_t ts_ns, uint64_t expires_at_ns,
                      bool is_delete, bool had_row)
{
    if (is_delete) {
        value_len = 0;
    }
    if (!grow_slots(p)) {
        return false;
    }
    size_t i = find_slot(p, key, key_len);
    feox_pending_entry *old = p->slots[i] != 0 ? &p->entries[p->slots[i] - 1] : NULL;
    uint64_t len = (uint64_t)key_len + value_len + 1;
    unsigned char *bytes;
    bool owns_bytes = false;
    if (old != NULL && len <= entry_room(p, old)) {
        bytes = old->bytes; /* the key's change replaced in place */
        owns_bytes = old->owns_bytes;
    } else if (old != NULL) {
        /* A larger change of a key already changed: a block of its own, freed when replaced
         * again, so that a key growing change after change holds one block, not many. */
        bytes = sqlite3_malloc64(len);
        owns_bytes = true;
    } else {
        bytes = first_change_bytes(p, len);
    }
    if (bytes == NULL) {
        return false;
    }
    memmove(bytes, key, key_len); /* memmove: the same bytes if replaced in place */
    if (value_len != 0) {
        memmove(bytes + key_len, value, value_len);
    }
    feox_pending_entry fresh = {bytes,   key_len,    value_len, tag,          is_delete,
                                had_row, owns_bytes, ts_ns,     expires_at_ns};
    if (old != NULL) {
        fresh.had_row = old->had_row; /* the tables have not changed since the first change */
        p->bytes -= (uint64_t)old->key_len + old->value_len;
        if (old->bytes != bytes) {
            entry_bytes_free(p, old);
        }
        *old = fresh;
    } else {
        if (p->n == p->cap) {
            size_t cap = p->cap ? p->cap * 2 : 1024;
            feox_pending_entry *grown = sqlite3_realloc64(p->entries, cap * sizeof *grown);
            if (grown == NULL) {
                /* the arena's bytes stay until the map is emptied; the inline ones are free */
                entry_bytes_free(p, &fresh);
                return false;
            }
            p->entries = grown;
            p->cap = cap;
        }
        p->entries[p->n] = fresh;
        p->slots[i] = (uint32_t)(++p->n);
    }
    p->bytes += (uint64_t)key_len + value_len;
    return true;
}

const feox_pending_entry *feox_pending_get(const feox_pending *p, const void *key, uint32_t key_len)
{
    if (p->n == 0) {
        return NULL;
    }
    size_t i = find_slot(p, key, key_len);
    return p->slots[i] != 0 ? &p->entries[p->slots[i] - 1] : NULL;
}

/* Sorting compares an 8-byte big-endian prefix held in the array first, so that most
 * comparisons touch no entry (a million random-order keys would otherwise cost two cache misses
 * per comparison). */
typedef struct sort_item {
    uint64_t prefix;
    const feox_pending_entry *entry;
} sort_item;

static uint64_t key_prefix(const feox_pending_entry *e)
{
    uint64_t p = 0;
    for (uint32_t i = 0; i < 8; i++) {
        p = (p << 8) | (i < e->key_len ? e->bytes[i] : 0);
    }
    return p;
}

static int compare_keys(const void *a, const void *b)
{
    const sort_item *x = a, *y = b;
    if (x->prefix != y->prefix) {
        return x->prefix < y->prefix ? -1 : 1;
    }
    const feox_pending_entry *ex = x->entry, *ey = y->entry;
    uint32_t n = ex->key_len < ey->key_len ? ex->key_len : ey->key_len;
    int c = memcmp(ex->bytes, ey->bytes, n);
    if (c != 0) {
        return c;
    }
    return ex->key_len < ey->key_len ? -1 : ex->key_len > ey->key_len;
}

const feox_pending_entry **feox_pending_sorted(const feox_pending *p)
{
    if (p->n == 0) {
        return NULL;
    }
    sort_item *items = sqlite3_malloc64(p->n * sizeof *items);
    const feox_pending_entry **order = sqlite3_malloc64(p->n * sizeof *order);
    if (items == NULL || order == NULL) {
        sqlite3_free(items);
        sqlite3_free(order);
        return NULL;
    }
    for (size_t k = 0; k < p->n; k++) {
        items[k].prefix = key_prefix(&p->entries[k]);
        items[k].entry = &p->entries[k];
    }
    qsort(items, p->n, sizeof *items, compare_keys);
    for (size_t k = 0; k < p->n; k++) {
        order[k] = items[k].entry;
    }
    sqlite3_free(items);
    return order;
}

/* Empty the hash: all of it when the transaction filled a good part of it, else only the slots
 * its entries hold (a small transaction after a large one must not pay for the large map). */
static void clear_slots(feox_pending *p)
{
    if (p->n * 8 >= p->nslots) {
        memset(p->slots, 0, p->nslots * sizeof *p->slots);
        return;
    }
    for (size_t k = 0; k < p->n; k++) {
        /* Entry k sits on its probe chain from its home slot; slots cleared before it may leave
         * holes there, so look for its number rather than stopping at an empty slot. */
        size_t i = slot_of(p, p->entries[k].bytes, p->entries[k].key_len);
        while (p->slots[i] != (uint32_t)(k + 1)) {
            i = (i + 1) & (p->nslots - 1);
        }
        p->slots[i] = 0;
    }
}

void feox_pending_clear(feox_pending *p)
{
    if (p->n == 0) {
        return;
    }
    if (p->nslots > 65536) { /* a large transaction's map is not kept for the next one */
        for (size_t k = 0; k < p->n; k++) {
            entry_bytes_free(p, &p->entries[k]);
        }
        sqlite3_free(p->entries);
        sqlite3_free(p->slots);
        p->entries = NULL;
        p->slots = NULL;
        p->cap = 0;
        p->nslots = 0;
    } else {
        clear_slots(p);
        for (size_t k = 0; k < p->n; k++) {
            entry_bytes_free(p, &p->entries[k]);
        }
    }
    feox_arena_reset(&p->arena);
    p->n = 0;
    p->bytes = 0;
}

void feox_pending_free(feox_pending *p)
{
    feox_pending_clear(p);
    sqlite3_free(p->entries);
    sqlite3_free(p->slots);
    feox_arena_free(&p->arena);
    memset(p, 0, sizeof *p);
}
