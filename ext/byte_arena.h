/*
 * byte_arena.h — a per-connection arena for the bytes a transaction holds until it ends: the
 * undo journal's keys and old values (txn_journal.c) and the pending map's keys and values
 * (storage_sqlite_pending.c). Allocation moves a pointer; a rewind or reset gives back at once
 * everything allocated after a point; the blocks are kept (up to FEOX_ARENA_KEEP_BYTES) for the
 * next transaction.
 *
 * Why not sqlite3_malloc per change: those blocks, freed together at COMMIT, left a thousand
 * free chunks of the size of a key's version (a 16-byte key with a 100-byte value) for the next
 * transaction's versions to reuse, while their entries came from elsewhere: half the keys
 * written through SQL had their version far from their entry, and a point read of one took a
 * third cache miss (the lookup prefetches only the bytes just before an entry).
 * Not thread-safe: its owner (a vtab's journal, a backend's pending map) serializes the calls.
 */
#ifndef FEOX_BYTE_ARENA_H
#define FEOX_BYTE_ARENA_H

#include <stdbool.h>
#include <stddef.h>

/* Bytes of a block (a larger request gets a block of its own size) and at most the bytes of
 * blocks a reset keeps: a transaction of a thousand rows of ~100 bytes fits, and a connection
 * that wrote such a transaction holds no more than this per table and arena until it closes. */
#define FEOX_ARENA_BLOCK_BYTES 65536
#define FEOX_ARENA_KEEP_BYTES (2 * FEOX_ARENA_BLOCK_BYTES)

typedef struct feox_arena_block feox_arena_block;

typedef struct feox_arena {
    feox_arena_block *first; /* blocks in allocation order; those after current are empty */
    feox_arena_block *current;
} feox_arena;

/* len bytes (8-byte aligned), or NULL on out of memory (the arena is unchanged). */
void *feox_arena_alloc(feox_arena *a, size_t len);
/* Give back p, which feox_arena_alloc returned, and everything allocated after it. */
void feox_arena_rewind(feox_arena *a, const void *p);
/* Give back everything; keep blocks, first ones first, up to FEOX_ARENA_KEEP_BYTES, for reuse. */
void feox_arena_reset(feox_arena *a);
/* Free every block. */
void feox_arena_free(feox_arena *a);
/* Bytes of the blocks it holds (used or not). */
size_t feox_arena_held(const feox_arena *a);

#endif
