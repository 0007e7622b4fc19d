/*
 * store_internal.h — the feox_store object and the helpers shared by the files that implement
 * the public operations. Not public. The files call each other only downwards:
 *   store.c (open/close, flush, compact, check, stats, len)
 *     -> store_read.c, store_write.c, cursor.c (the public reads, writes and cursors)
 *     -> ttl_sweeper.c (active expiry; called by store.c)
 *     -> store_storage.c (the store's side of feox_storage.h: open + load, find on a miss,
 *        refresh, reading cold values, the host calls), storage_registry.c (backends by name)
 *     -> store_load.c (the first load on open, in bulk: no locks, ordered index built at the end;
 *        and a run of versions in key order into a live store, in batches)
 *     -> store_apply.c (publishing a version, removing an entry, TTL bookkeeping)
 *     -> value_eviction.c, store_registry.c (open stores, fork, exit)
 * and the inline helpers below (clock, key check, live version, memory accounting).
 *
 * Locking in one paragraph: a key's shard mutex (hash_index.h) serializes every write to that key
 * and to its shard's TTL heap; the ordered index synchronizes its own writers; readers take no
 * lock and read inside an epoch section. The hash index is the linearization point of point
 * operations: a version is visible once entry->current points at it.
 */
#ifndef FEOX_STORE_INTERNAL_H
#define FEOX_STORE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/error.h"
#include "base/helpers.h"
#include "base/slab.h"
#include "base/stats.h"
#include "feox.h"
#include "feox_storage.h"
#include "index/hash_index.h"
#include "index/ordered_index.h"
#include "index/record.h"

/* Bytes charged per key for its hash slots (8 B slots at ≤ 50% load) and ordered-index slot. */
#define FEOX_INDEX_BYTES_PER_KEY 40

_Static_assert(FEOX_MAX_VALUE_SIZE <= FEOX_RECORD_MAX_VALUE, "a record holds every value length");
_Static_assert(FEOX_MAX_KEY_SIZE <= FEOX_ENTRY_MAX_KEY, "an entry holds every key length");
_Static_assert(FEOX_RECORD_LOCATION_STORED == FEOX_STORAGE_LOCATION_BY_KEY,
               "a version without a location word reports the by-key location");

struct feox_store {
    feox_config cfg; /* copy; cfg.path points at path below */
    char *path;      /* canonical path (persistent mode) or NULL */
    /* feox_fork_generation when opened (store_registry.c); next to the hash index, which every
     * call reads anyway, so the fork check touches no extra cache line. */
    unsigned fork_generation;
    /* FEOX_LOAD_DONE, or while the first load runs on a background thread (a store file that
     * ended in an index snapshot: store_load.c) FEOX_LOAD_RUNNING, then DONE or FAILED; changes
     * once, read by every call (feox_store_loaded). */
    _Atomic int load_state;
    feox_hash_index hash;
    feox_ordered_index *ordered;
    feox_storage *storage; /* the backend (feox_storage.h); NULL in memory mode */
    unsigned storage_caps; /* its methods->caps */
    /* The flag a version made for the backend gets: FEOX_RECORD_LOCATED (a location word), or 0
     * (memory only; or a backend with FEOX_STORAGE_VALUES_BY_KEY and no max_memory: whether the
     * backend holds it is FEOX_RECORD_STORED, set through feox_record_set_location). */
    unsigned location_flag;
    /* Set (release) once the first load has built both indexes: until then the backend's
     * threads get no walk of them (for_each_live fails; an empty or half-built index would
     * otherwise pass for the store's content, and a compaction would rewrite the file empty). */
    _Atomic bool indexes_complete;
    /* The first load's live records and their key + value bytes (host.loaded_totals): set by
     * the load before indexes_complete, then only read. */
    uint64_t loaded_records, loaded_key_value_bytes;
    feox_stat_counters *stats;
    /* The fields above are set by open and then only read (by every operation). What writers
     * and the maintenance thread change comes below, memory_used last: 64+ bytes away from the
     * fields above, it never shares their cache line whatever the allocation's alignment. */

    pthread_t maintenance_thread;
    bool maintenance_running;
    pthread_mutex_t maintenance_lock;
    pthread_cond_t maintenance_wake;
    bool stopping;

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

    _Atomic uint64_t memory_used; /* bytes accounted against max_memory (written by inserts and
                                     deletes; key and TTL counts are kept per shard:
                                     hash_index.h) */
    /* The slab the last bulk load was filling (base/slab.h), for the next one to go on with;
     * taken and put back with an atomic exchange (store_load.c), sealed at close. */
    _Atomic(feox_slab *) parked_slab;
    _Atomic uint64_t bulk_blocks; /* blocks its finished bulk loads made (FEOX_SLAB_MIN_BLOCKS) */
    /* Every entry in address order, listed by a close that wrote an index snapshot from them
     * (store.c), then freed in that order by feox_store_destroy (NULL: it lists them itself). */
    feox_entry **closing_entries;
    size_t closing_count;
    bool closing_entries_borrowed; /* the list lies in closing_buffers[2]: not freed alone */
    /* The store file's write buffers, taken from the backend by the close (empty, their bytes
     * written: feox_log_close_take_buffers; [2] the spare one, feox_log_close_take_spare),
     * freed by feox_store_destroy. */
    void *closing_buffers[3];

    /* The background load (store_load.c). load_lock guards load_err/load_detail and the wait on
     * load_done; snapshot_lock is read-held by a point read served from the snapshot and
     * write-held once to end that (snapshot_active false), before the snapshot is freed. */
    pthread_mutex_t load_lock;
    pthread_cond_t load_done;
    pthread_rwlock_t snapshot_lock;
    bool snapshot_active; /* [snapshot_lock] */
    bool load_thread_started;
    pthread_t load_thread;
    _Atomic bool load_cancel;        /* close: stop the load at its next record */
    feox_err load_err;               /* [load_lock] FAILED: what the load returned */
    char load_detail[256];           /* [load_lock] and its detail */
    uint64_t snapshot_keys;          /* keys in the snapshot (feox_len's estimate while loading) */
    _Atomic uint64_t snapshot_reads; /* point reads the snapshot answered (tests) */
};

/* ---- the first load on a background thread (store_load.c) ---- */
enum { FEOX_LOAD_DONE = 0, FEOX_LOAD_RUNNING = 1, FEOX_LOAD_FAILED = 2 };
/* Wait until the background load is over: FEOX_OK, or its error (every call after a failed one
 * gets it again, naming the store). */
feox_err feox_store_wait_load(feox_store *s);
/* Every call but a point read starts with this (after the fork check): one load and a branch
 * once the store has loaded. */
static inline feox_err feox_store_loaded(feox_store *s)
{
    if (__builtin_expect(
            atomic_load_explicit(&s->load_state, memory_order_acquire) == FEOX_LOAD_DONE, 1))
        return FEOX_OK;
    return feox_store_wait_load(s);
}
/* A point read while the store loads (load_state not DONE): answer key from the index snapshot.
 * *served: the answer is in *out (inside an epoch section the caller ends, as the index's: the
 * live version, NULL if absent or expired); else the load was over or the snapshot could not
 * answer (then this waited for the load: read the indexes). Errors: the failed load's, NOMEM. */
feox_err feox_store_snapshot_find(feox_store *s, const void *key, size_t key_len, feox_record **out,
                                  bool *served);
/* Close: stop a background load still running (cancel, join). */
void feox_store_stop_load(feox_store *s);
/* Tests: called by the background load's thread before it starts (to hold it back), and by a
 * call about to wait for a load that is still running (to see which calls wait). */
extern void (*feox_background_load_hook)(feox_store *s);
extern void (*feox_load_wait_hook)(feox_store *s);

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
/* FEOX_ERR_READ_ONLY for a write to a store opened read_only (store_write.c), naming its file. */
#define feox_store_read_only_error(s)                                                              \
    feox_fail(FEOX_ERR_READ_ONLY, "the store file '%s' is read-only", (s)->path)
/* Register the fork and exit handlers (once per process; called by feox_open). */
void feox_registry_install_hooks(void);
/* The registry of open stores: open_shared, add and remove are called with the registry lock
 * held. open_shared: true if the open is decided without creating a store: the instance listed
 * under path (persistent) or share_key (memory, path NULL) and not inherited through fork() is
 * returned, counted, or cfg->open_existing fails (*err NOT_FOUND, or FORKED if only an inherited
 * one is listed), or the instance is in the other mode (read_only; *err READ_ONLY for a writer,
 * LOCKED for a reader; open_existing takes either). add: list s (open_count 1), under s->path
 * or s->share_key. remove: unlist. */
void feox_registry_lock(void);
void feox_registry_unlock(void);
bool feox_registry_open_shared(const feox_config *cfg, const char *path, const char *share_key,
                               feox_store **out, feox_err *err);
void feox_registry_add(feox_store *s);
void feox_registry_remove(feox_store *s);

/* Free everything of a closed store: both indexes, its entries and versions, its locks and
 * itself (store.c). Nothing else references it any more. */
void feox_store_destroy(feox_store *s);
/* The index snapshot of the last close of a store file whose threads are stopped
 * (store_close_snapshot.c). start: the backend's threads stopped and, if the file may get a
 * snapshot, a writer for it (true); false for another backend, a store that did not load, or no
 * memory (no snapshot: the close goes on). The final flush is the writer's
 * (feox_log_snapshot_writer_flush: by the closing thread while helpers list the entries, else
 * at the write). write: the snapshot filled from every entry of the store (the n of entries, in
 * address order: read as they lie in memory; nothing is freed or changed) and appended to the
 * file once every record is durable; never fails the close. */
struct feox_log_snapshot_writer;
bool feox_store_start_snapshot(feox_store *s, struct feox_log_snapshot_writer *w);
void feox_store_write_snapshot(feox_store *s, struct feox_log_snapshot_writer *w,
                               feox_entry *const *entries, size_t n);
/* The same for a large store on a machine of several cores, from start to end (entries listed
 * and sorted into closing_entries, the snapshot filled and written) by the closing thread and
 * helpers it starts and joins (store_close_threads.c); false if it did not (one core, few keys,
 * no memory, a shard miscounted): nothing is written, the writer is as it was. */
bool feox_store_write_snapshot_threaded(feox_store *s, struct feox_log_snapshot_writer *w);
/* The background release of large closed stores (store_reaper.c). take: true if s (closed,
 * unlisted, not inherited) was handed to the reaper thread, which will destroy_store it;
 * false if it holds fewer than FEOX_REAP_MIN_KEYS keys or no thread could be started (the
 * caller destroys it). The fork hooks run inside the registry's (store_registry.c). */
#define FEOX_REAP_MIN_KEYS 65536
bool feox_reaper_take(feox_store *s, void (*destroy_store)(feox_store *));
/* Opens first: feox_open counts itself in (begin) and out (end, when it returns); the reaper,
 * called by the destroy function between two batches of entries (step_aside: a no-op on any
 * other thread; never with a lock held or inside an epoch section), waits while an open is in
 * progress, unless a fork or exit waits for it. Tests: step_hook runs on the reaper thread at
 * each step_aside, pause_hook when it is about to wait for an open. */
#define FEOX_REAP_STEP 1024 /* entries freed between two step_aside calls */
#define FEOX_REAP_PAUSE_MAX_MS 100 /* a store's freeing waits for opens this long at most */
void feox_reaper_open_begin(void);
void feox_reaper_open_end(void);
void feox_reaper_step_aside(void);
extern void (*feox_reaper_step_hook)(void);
extern void (*feox_reaper_pause_hook)(void);
void feox_reaper_fork_prepare(void);
void feox_reaper_fork_parent(void);
void feox_reaper_fork_child(void);

/* Writes (publish or remove) made by the calling thread so far (store_write.c). */
extern _Thread_local uint64_t feox_thread_write_count;

/* Clock and expiry. */
static inline uint64_t feox_store_now(const feox_store *s)
{
    return s->cfg.clock ? s->cfg.clock(s->cfg.clock_ctx) : feox_realtime_ns();
}
static inline bool feox_record_expired(const feox_record *r, uint64_t now_ns)
{
    uint64_t expires_at = feox_record_expires_at(r);
    return expires_at != 0 && now_ns > expires_at;
}

/* Argument checks shared by every entry point. */
static inline feox_err feox_check_key(const void *key, size_t key_len)
{
    if (!key)
        return feox_fail(FEOX_ERR_INVALID_ARGUMENT, "key is NULL");
    if (key_len == 0)
        return feox_fail(FEOX_ERR_INVALID_KEY, "key is empty");
    if (key_len > FEOX_MAX_KEY_SIZE)
        return feox_fail(FEOX_ERR_INVALID_KEY, "key of %zu bytes exceeds %u", key_len,
                         FEOX_MAX_KEY_SIZE);
    return FEOX_OK;
}

/* The current live version of an entry read by a lock-free reader (inside an epoch section):
 * NULL if deleted or expired at now_ns (now_ns is read lazily through *now when needed). */
static inline feox_record *feox_entry_live(const feox_store *s, const feox_entry *e,
                                           uint64_t *now)
{
    /* Acquire: pairs with the writer's release store in feox_publish_version (and in value
     * eviction), so the version's fields are seen fully built. */
    feox_record *r = atomic_load_explicit(&e->current, memory_order_acquire);
    if (!r)
        return NULL;
    uint64_t expires_at = feox_record_expires_at(r);
    if (expires_at) {
        if (!*now)
            *now = feox_store_now(s);
        if (*now > expires_at)
            return NULL;
    }
    return r;
}

/* Account bytes against max_memory (enforce = false: loading, and releases). */
static inline bool feox_memory_reserve(feox_store *s, int64_t delta, bool enforce)
{
    if (delta == 0) /* a same-size overwrite: no shared cache line to touch */
        return true;
    /* The read-modify-writes are acq_rel, as the full-barrier Concurrency Kit add and CAS they
     * replaced (the same lock-prefixed instructions on x86); nothing is published through this
     * counter, its correctness needs only the atomicity of each change. */
    if (delta < 0 || !enforce || !s->cfg.max_memory) {
        /* two's complement: adds a negative */
        atomic_fetch_add_explicit(&s->memory_used, (uint64_t)delta, memory_order_acq_rel);
        return true;
    }
    /* CAS loop: concurrent writers cannot overshoot the budget together. */
    uint64_t used = atomic_load_explicit(&s->memory_used, memory_order_relaxed);
    for (;;) {
        if (used + (uint64_t)delta > s->cfg.max_memory)
            return false;
        if (atomic_compare_exchange_weak_explicit(&s->memory_used, &used, used + (uint64_t)delta,
                                                  memory_order_acq_rel, memory_order_relaxed))
            return true;
    }
}

/* Persistent mode over budget: make up to `wanted` bytes of resident values cold (the caller
 * holds `held`, its key's shard lock, and is writing the entry `writing`, NULL for a new key,
 * which is never evicted: the writer replaces and retires its version itself). Returns the bytes
 * freed (value_eviction.c). */
uint64_t feox_evict_values(feox_store *s, uint64_t wanted, feox_shard *held,
                           const feox_entry *writing);

/* ---- store_apply.c: changing the indexes (every call with the key's shard lock held) ---- */

/* Writes (publish or remove) made by the calling thread so far. */
extern _Thread_local uint64_t feox_thread_write_count;

/* How a change reaches the backend. */
typedef struct feox_apply {
    bool to_storage; /* call the backend's write()/erase() (false: the indexes only) */
    bool enforce;    /* enforce max_memory (false while loading) */
    /* Over max_memory, first make room by evicting values (as an enforced write does), but
     * never fail: what the backend sends (refresh, find) and what the host restored
     * (FEOX_WRITE_INDEX_ONLY) must reach the indexes. */
    bool make_room;
    void *txn;       /* the caller's transaction context, for the backend */
    /* The version being replaced as the backend knows it: the live one, NULL if none. */
    const feox_record *replaced;
} feox_apply;

/* Publish new_version for key (steps 2-5 of store_write.c). *entry is the key's entry or NULL
 * (then one is created and returned). On success the version belongs to the index; on failure
 * the caller still owns it. *seq: what to pass to wait_durable. */
feox_err feox_publish_version(feox_store *s, feox_shard *shard, feox_entry **entry,
                              const void *key, size_t key_len, uint64_t hash,
                              feox_record *new_version, const feox_apply *how, uint64_t *seq);
/* Remove an entry from both indexes and retire it with its version. how NULL: the indexes
 * only; otherwise with how->to_storage the backend erases the key at ts_ns first. */
feox_err feox_store_remove_entry(feox_store *s, feox_shard *shard, feox_entry *e,
                                 const feox_apply *how, uint64_t ts_ns, uint64_t *seq);
/* Apply a version or a delete from the backend to the indexes, unconditionally (load, refresh,
 * find). The version is owned by the store afterwards, also on error; an expired one is
 * dropped (and removes the key). */
feox_err feox_apply_put(feox_store *s, feox_shard *shard, uint64_t hash, const void *key,
                        size_t key_len, feox_record *r);
void feox_apply_delete(feox_store *s, feox_shard *shard, uint64_t hash, const void *key,
                       size_t key_len);
/* The entry whose current version a TTL heap item describes, or NULL. */
feox_entry *feox_ttl_item_owner(feox_store *s, const feox_ttl_item *item);

/* ---- store_undo.c: undoing a sync=full write whose record the backend cancelled ---- */

/* A sync=full write from its publish until wait_durable has answered: on the writer's stack,
 * listed in its key's shard (shard->durable_waits, under the shard lock). */
typedef struct feox_durable_wait {
    struct feox_durable_wait *next;
    const void *key; /* the caller's key bytes (valid while the write call runs) */
    size_t key_len;
    uint64_t hash;
    feox_record *before; /* the version to put back if the write is cancelled (referenced) */
    feox_record *after;  /* the version the write published (referenced); NULL for a delete */
    /* A later write of the key that also waits: it decides what the key holds if this one is
     * cancelled (NULL: this is the key's latest write). */
    struct feox_durable_wait *superseded_by;
    bool superseded_durably; /* a later write of the key has been answered with success */
} feox_durable_wait;

/* Whether the store's writes wait for durability (sync=full with a backend that waits). */
bool feox_store_waits_durable(const feox_store *s);
/* With the key's shard lock held, right after a write published: list w (before is the
 * referenced version the write replaced, or NULL; entry the key's entry, or NULL). */
void feox_durable_wait_begin(feox_shard *shard, feox_durable_wait *w, const void *key,
                             size_t key_len, uint64_t hash, feox_record *before,
                             feox_entry *entry);
/* After wait_durable answered err (takes the shard lock): unlist w; if err says the backend
 * cancelled the record (DISK_FULL, IO), undo the write: the key gets back the last version no
 * cancelled write made, unless something else has changed it since. */
void feox_durable_wait_end(feox_store *s, feox_shard *shard, feox_durable_wait *w, feox_err err);

/* ---- store_storage.c: the store's side of feox_storage.h ---- */

/* Open the backend cfg asks for (or "log" for a path) and load it into the indexes. */
feox_err feox_store_attach_storage(feox_store *s);
/* store_load.c: the store's first load from st, before the store is handed out (no other user:
 * no locks, the ordered index built in one pass at the end). */
feox_err feox_store_first_load(feox_store *s, feox_storage *st);
/* A new version of rec (location not set) and an entry for its key, made at once (rec's bytes
 * are valid during the backend's call only): one block, from slab (the bulk load's filler:
 * base/slab.h), for a value of up to 256 bytes
 * without max_memory, else two; the entry holds the version's index reference, current NULL.
 * NULL if there is no memory. */
feox_entry *feox_loaded_put_new(const feox_store *s, feox_slab_filler *slab, uint64_t hash,
                                const feox_storage_record *rec, feox_record **v);
/* store_load.c: a run of versions from the backend in strictly ascending key order, applied to a
 * live store in batches of FEOX_PUT_RUN_MAX (every shard lock held for a batch; readers go on).
 * Zero-initialize with .store set. add: hold rec (*taken), or (max_memory, an expired put, no
 * memory for the run) apply what is held and leave rec to the caller's locked sink (*taken
 * false); a key not above the last held one applies the run first. apply: apply what is held
 * (each version owned by the store afterwards, also on error). finish: apply and free. */
#define FEOX_PUT_RUN_MAX 1024
typedef struct feox_put_run {
    feox_store *store;
    feox_entry **entries; /* held, ascending keys; each with the version at the same index */
    feox_record **versions;
    size_t count;
    feox_slab_filler slab; /* the blocks' slab, the store's parked one while the run lasts */
    bool slab_taken;
    uint64_t made; /* blocks made by the run so far */
} feox_put_run;
feox_err feox_put_run_add(feox_put_run *run, const feox_storage_record *rec, bool *taken);
feox_err feox_put_run_apply(feox_put_run *run);
feox_err feox_put_run_finish(feox_put_run *run);
/* Size the hash index for about `more` keys beyond those it holds (sink->expect): each shard's
 * map grown once, under its lock, instead of doubling as the run's keys come. Best effort. */
void feox_put_run_expect(feox_put_run *run, uint64_t more);
/* store_load_pipe.c: a run applied on a worker thread while the backend's thread reads on.
 * start: the worker takes run over (NULL: no thread or no memory; apply on this thread). put:
 * queue a copy of rec (put_ordered's contract; a record the run does not take goes to
 * put(put_ctx, rec) on the worker); may return the worker's error. drain: return once every
 * record queued is applied and the run too (the worker idle: run and store are the caller's
 * until its next put); the worker's first error, every time after it (its detail set on this
 * thread). stop: drain, end the worker (run is the caller's again), free; NULL: nothing. */
typedef struct feox_load_pipe feox_load_pipe;
feox_load_pipe *feox_load_pipe_start(feox_put_run *run,
                                     feox_err (*put)(void *ctx, const feox_storage_record *rec),
                                     void *put_ctx);
feox_err feox_load_pipe_put(feox_load_pipe *p, const feox_storage_record *rec);
feox_err feox_load_pipe_drain(feox_load_pipe *p);
feox_err feox_load_pipe_stop(feox_load_pipe *p);
/* The live version of key with a reference (lock-free), or NULL (absent or expired). */
feox_record *feox_store_live_version(feox_store *s, const void *key, size_t key_len);
/* A resident copy of version r of key: r itself (referenced) if resident, else a fresh
 * unindexed record read back from the backend. Called with a reference on r held. */
feox_err feox_record_materialize(feox_store *s, const void *key, size_t key_len, feox_record *r,
                                 feox_record **out);
/* FEOX_STORAGE_INDEX_CACHE: ask the backend for a key the indexes do not hold (find()) and
 * insert what it has (the key's shard lock is held by the caller; nothing if the backend has
 * nothing or the store has no INDEX_CACHE backend). */
feox_err feox_store_find_locked(feox_store *s, void *txn, feox_shard *shard, uint64_t hash,
                                const void *key, size_t key_len);
/* The same from a lock-free reader: takes the key's shard lock around it. */
feox_err feox_store_find(feox_store *s, void *txn, const void *key, size_t key_len);

/* ---- ttl_sweeper.c ---- */
void feox_ttl_sweep(feox_store *s, size_t max_per_shard);
/* Remove every key expired at now_ns (counted as lazy expiry). */
void feox_ttl_remove_expired(feox_store *s, uint64_t now_ns);

#endif
