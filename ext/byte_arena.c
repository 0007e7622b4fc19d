/*
 * byte_arena.c — the transaction byte arena (byte_arena.h): a list of blocks filled in order.
 * Blocks after the current one are empty spares that a rewind or reset left for reuse.
 */
#include "byte_arena.h"

#include <stdint.h>

#include <sqlite3ext.h>

SQLITE_EXTENSION_INIT3

struct feox_arena_block {
    feox_arena_block *next;
    size_t size; /* bytes of data */
    size_t used;
    _Alignas(8) unsigned char data[];
};

static size_t round8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

static bool block_has_room(const feox_arena_block *b, size_t len)
{
    return b != NULL && b->size - b->used >= len;
}

/* A block after a->current with room for len, made the current one: the next spare if large
 * enough, else a new block put right after the current one. */
static feox_arena_block *next_block(feox_arena *a, size_t len)
{
    feox_arena_block *spare = a->current != NULL ? a->current->next : a->first;
    if (spare != NULL && spare->size >= len) {
        spare->used = 0;
        a->current = spare;
        return spare;
    }
    size_t size = len > FEOX_ARENA_BLOCK_BYTES ? len : FEOX_ARENA_BLOCK_BYTES;
    if (size > SIZE_MAX - sizeof(feox_arena_block)) {
        return NULL;
    }
    feox_arena_block *b = sqlite3_malloc64(sizeof *b + size);
    if (b == NULL) {
        return NULL;
    }
    b->size = size;
    b->used = 0;
    b->next = spare;
    if (a->current != NULL) {
        a->current->next = b;
    } else {
        a->first = b;
    }
    a->current = b;
    return b;
}

void *feox_arena_alloc(feox_arena *a, size_t len)
{
    if (len > SIZE_MAX - 7) {
        return NULL;
    }
    len = round8(len ? len : 1);
    feox_arena_block *b = a->current;
    if (!block_has_room(b, len)) {
        b = next_block(a, len);
        if (b == NULL) {
            return NULL;
        }
    }
    void *p = b->data + b->used;
    b->used += len;
    return p;
}

void feox_arena_rewind(feox_arena *a, const void *p)
{
    const unsigned char *at = p;
    for (feox_arena_block *b = a->first; b != NULL; b = b->next) {
        /* compared as addresses: p lies in exactly one block */
        if ((uintptr_t)at >= (uintptr_t)b->data && (uintptr_t)at < (uintptr_t)(b->data + b->size)) {
            b->used = (size_t)(at - b->data);
            a->current = b;
            return;
        }
    }
}

void feox_arena_reset(feox_arena *a)
{
    size_t kept = 0;
    feox_arena_block **link = &a->first;
    while (*link != NULL) {
        feox_arena_block *b = *link;
        if (kept + b->size <= FEOX_ARENA_KEEP_BYTES) {
            kept += b->size;
            b->used = 0;
            link = &b->next;
        } else {
            *link = b->next;
            sqlite3_free(b);
        }
    }
    a->current = NULL;
}

void feox_arena_free(feox_arena *a)
{
    while (a->first != NULL) {
        feox_arena_block *b = a->first;
        a->first = b->next;
        sqlite3_free(b);
    }
    a->current = NULL;
}

size_t feox_arena_held(const feox_arena *a)
{
    size_t held = 0;
    for (const feox_arena_block *b = a->first; b != NULL; b = b->next) {
        held += b->size;
    }
    return held;
}
