/*
 * storage_sqlite_pending.h — the "sqlite" backend's pending map: the changes of the current
 * transaction not yet written to the shadow tables (buffered mode). One entry per key: a later
 * change of a key replaces its entry. Written out in key order (memcmp, shorter prefix first).
 * Not thread-safe: the backend holds its connection's mutex around every call.
 */
#ifndef FEOX_STORAGE_SQLITE_PENDING_H
#define FEOX_STORAGE_SQLITE_PENDING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "byte_arena.h"

typedef struct feox_pending_entry {
    unsigned char *bytes; /* key_len key bytes, then value_len value bytes (one block) */
    uint32_t key_len;
    uint32_t value_len;
    uint32_t tag;
    bool is_delete;
    /* When the key's first change since the map was last written out was made, the key had a
     * live version without an expiry (so <t>_data most likely has its row, expires NULL): a hint
     * for writing a write out (storage_sqlite.c write_row), kept when a later change of the key
     * replaces the entry. */
    bool had_row;
    /* bytes is a block of its own (a change that outgrew the key's earlier one), not the
     * map's arena or inline bytes */
    bool owns_bytes;
    uint64_t ts_ns;
    uint64_t expires_at_ns;
} feox_pending_entry;

typedef struct feox_pending {
    feox_pending_entry *entries; /* in first-change order */
    size_t n, cap;
    uint32_t *slots; /* open addressing: entry index + 1, 0 = empty; power of two */
    size_t nslots;
    uint64_t bytes;   /* key and value bytes held */
    feox_arena arena; /* the bytes of keys' first changes; emptied with the map */
    /* One entry's bytes may sit here instead of in an allocation of their own: a transaction
     * of one small change (an autocommit statement) allocates nothing. */
    bool inline_used;
    unsigned char inline_bytes[256];
} feox_pending;

/* Record a change of key (value NULL and is_delete for a delete); had_row: the entry's hint (kept
 * from the first change if the key has an entry). Returns false on out of memory (the map is
 * unchanged). */
bool feox_pending_put(feox_pending *p, const void *key, uint32_t key_len, const void *value,
                      uint32_t value_len, uint32_t tag, uint64_t ts_ns, uint64_t expires_at_ns,
                      bool is_delete, bool had_row);
/* The entry for key, or NULL. */
const feox_pending_entry *feox_pending_get(const feox_pending *p, const void *key,
                                           uint32_t key_len);
/* The entries sorted by key in a new array (sqlite3_free it), NULL on out of memory or none. */
const feox_pending_entry **feox_pending_sorted(const feox_pending *p);
/* Forget every entry (a small map keeps its arrays for the next transaction). */
void feox_pending_clear(feox_pending *p);
/* Free everything. */
void feox_pending_free(feox_pending *p);

#endif
