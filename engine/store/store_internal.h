/*
 * store_internal.h — the feox_store object and the helpers shared by the files that implement
 * the public operations (store.c, store_read.c, store_write.c, cursor.c, ttl_sweeper.c,
 * store_persist.c). Not public.
 *
 * Locking in one paragraph: a key's shard mutex (hash_index.h) serializes every write to that key
 * and to its shard's TTL heap; the ordered index synchronizes its own writers; readers take no
 * lock and read inside an epoch section. The hash index is the linearization point of point
 * operations: a version is visible once entry->current points at it.
 */
#ifndef FEOX_STORE_INTERNAL_H
#define FEOX_STORE_INTERNAL_H

#include <ck_pr.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/error.h"
#include "base/stats.h"
#include "feox.h"
#include "index/hash_index.h"
#include "index/ordered_index.h"
#include "index/record.h"
#include "storage/persist.h"

/* Bytes charged per key for its hash slots (8 B slots at ≤ 50% load) and ordered-index slot. */
#define FEOX_INDEX_BYTES_PER_KEY 40

struct feox_store {
    feox_config cfg; /* copy; cfg.path points at path below */
    char *path;      /* canonical path (persistent mode) or NULL */
    /* feox_fork_generation when opened (store_registry.c); next to the hash index, which every
     * call reads anyway, so the fork check touches no extra cache line. */
    unsigned fork_generation;
    feox_hash_index hash;
    feox_ordered_index *ordered;
    feox_backend *backend; /* NULL in memory mode */
    feox_stat_counters *stats;

    uint64_t memory_used; /* atomic: bytes accounted against max_memory (key and TTL counts are
                             kept per shard: hash_index.h) */

    pthread_t maintenance_thread;
    bool maintenance_running;
    pthread_mutex_t maintenance_lock;
    pthread_cond_t maintenance_wake;
    bool stopping;
    bool replaying; /* open: applying the file; limits are not enforced */

    pthread_mutex_t evict_lock; /* value_eviction.c: one evictor at a time; guards the hand */
    uint8_t *evict_hand;        /* key where the eviction clock hand stopped */
    size_t evict_hand_len, evict_hand_cap;

    /* The registry (store_registry.c), all [registry lock]: a persistent store, and a memory
     * store opened with a share key, is listed under its name (path, or share_key: NULL once
     * unnamed) and counts its opens. */
    char *share_key;
    bool listed;
    unsigned open_count;
    struct feox_store *next_open;
    void *app_slot; /* feox_store_slot: the application's, never read here */

    pid_t opener_pid; /* for the FEOX_ERR_FORKED detail */
};

/* Process lifecycle (store_registry.c). feox_fork_generation is bumped by the atfork child
 * handler only, while the child has a single thread: a plain load is enough. */
extern unsigned feox_fork_generation __attribute__((visibility("hidden"))); /* no GOT load */
/* True if s was opened before a fork() of this process (it belongs to the parent). */
static inline bool feox_store_inherited(const feox_store *s)
{
    return __builtin_expect(s->fork_generation != feox_fork_generation, 0);
}
/* FEOX_ERR_FORKED with the detail naming the store and its process (a macro, as feox_fail, so
 * that static analysis sees the code returned). */
void feox_store_set_forked_detail(const feox_store *s);
#define feox_store_forked_error(s) (feox_store_set_forked_detail(s), FEOX_ERR_FORKED)
/* Register the fork and exit handlers (once per process; called by feox_open). */
void feox_registry_install_hooks(void);
/* The registry of open stores: open_shared, add and remove are called with the registry lock
 * held. open_shared: true if the open is decided without creating a store: the instance listed
 * under path (persistent) or share_key (memory, path NULL) and not inherited through fork() is
 * returned, counted, or cfg->open_existing fails (*err NOT_FOUND, or FORKED if only an inherited
 * one is listed). add: list s (open_count 1), under s->path or s->share_key. remove: unlist. */
void feox_registry_lock(void);
void feox_registry_unlock(void);
bool feox_registry_open_shared(const feox_config *cfg, const char *path, const char *share_key,
                               feox_store **out, feox_err *err);
void feox_registry_add(feox_store *s);
void feox_registry_remove(feox_store *s);

/* Writes (publish or remove) made by the calling thread so far (store_write.c). */
extern _Thread_local uint64_t feox_thread_write_count;

/* Clock and expiry. */
uint64_t feox_store_now(const feox_store *s);
static inline bool feox_record_expired(const feox_record *r, uint64_t now_ns)
{
    return r->expires_at_ns != 0 && now_ns > r->expires_at_ns;
}
/* Argument checks shared by every entry point. */
feox_err feox_check_key(const void *key, size_t key_len);

/* The current live version of an entry read by a lock-free reader (inside an epoch section):
 * NULL if deleted or expired at now_ns (now_ns is read lazily through *now when needed). */
feox_record *feox_entry_live(const feox_store *s, const feox_entry *e, uint64_t *now);

/* A resident copy of a version: r itself (referenced) if resident, else a fresh unindexed
 * record read back from the backend. Called with a reference on r held by the caller. */
feox_err feox_record_materialize(feox_store *s, feox_record *r, feox_record **out);

/* Remove an entry from both indexes and retire it with its version (shard lock held).
 * log_delete: also append a delete record to the backend (ts_ns = its timestamp; *seq receives
 * the sequence number to wait on in sync=full mode). */
feox_err feox_store_remove_entry(feox_store *s, feox_shard *shard, feox_entry *e, bool log_delete,
                                 uint64_t ts_ns, uint64_t *seq);

/* Account bytes against max_memory (enforce = false during replay). */
bool feox_memory_reserve(feox_store *s, int64_t delta, bool enforce);

/* Persistent mode over budget: make up to `wanted` bytes of resident values cold (the caller
 * holds `held`, its key's shard lock). Returns the bytes freed (value_eviction.c). */
uint64_t feox_evict_values(feox_store *s, uint64_t wanted, feox_shard *held);

/* TTL sweeper (ttl_sweeper.c). */
void feox_ttl_sweep(feox_store *s, size_t max_per_shard);
/* Remove every key expired at now_ns (counted as lazy expiry). */
void feox_ttl_remove_expired(feox_store *s, uint64_t now_ns);
/* Queue the expiry of a new version in its shard's heap (shard lock held). */
feox_err feox_ttl_track(feox_store *s, feox_shard *shard, const feox_entry *e,
                        const feox_record *old_version, const feox_record *new_version);

/* Replay (store_write.c): apply a version or a delete read from the file unconditionally, in
 * file order (the version is owned by the store afterwards, also on error). */
feox_err feox_store_replay_put(feox_store *s, const void *key, size_t key_len, feox_record *r);
feox_err feox_store_replay_delete(feox_store *s, const void *key, size_t key_len);

/* Persistence glue (store_persist.c). */
feox_err feox_store_attach_backend(feox_store *s);

#endif
