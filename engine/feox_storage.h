/*
 * feox_storage.h — the storage seam: where a store keeps its records. Public, in the manner of
 * SQLite's sqlite3_vfs / sqlite3_io_methods: a versioned table of methods that code outside the
 * engine can implement and register.
 *
 * A feox_store is always its two in-memory indexes (hash and ordered). With a storage backend
 * attached, every write also goes to the backend, and the indexes are rebuilt from it when the
 * store opens. Two backends exist:
 *   "log"     the engine's own single-file append log with write-behind (engine/storage/log/);
 *             chosen when feox_config.path is set and feox_config.storage is NULL.
 *   "sqlite"  records kept in shadow tables of a SQLite database; registered by the SQLite
 *             extension (ext/), which owns the transactions (FEOX_STORAGE_HOST_TXN).
 * With path NULL (or ":memory:") and no storage the store is memory only.
 *
 * How the store drives a backend (every call for one key is made under that key's shard lock, so
 * calls for one key arrive in the order the store applies them):
 *   open        methods->open(methods, cfg, host, &st); then st->methods->load(st, sink) feeds
 *               every record back (a later call for a key replaces an earlier one; expired puts
 *               are dropped by the store). Background work (flusher, compactor, TTL sweeper)
 *               starts only after load has returned.
 *   write       after validation, before the new version is published: write() or erase(). The
 *               call gets the caller's feox_write_opts.txn (the host's transaction context) and
 *               the version it replaces. An error fails the write; nothing is published. The
 *               returned seq is passed to wait_durable() once the shard lock is released.
 *   read        a version the store holds without its bytes (cold) is read back with
 *               read_value(); with FEOX_STORAGE_INDEX_CACHE a key the index does not hold is
 *               looked up with find() before the store answers "not found".
 *   refresh     feox_refresh(store, txn) calls refresh(): the backend reports through the sink
 *               what others changed since the last load/refresh (a change feed), or asks for a
 *               full reload.
 *   flush, compact, check, stats, set_owner, close: the public calls of the same names.
 *
 * Record bytes passed to a backend are valid during the call only. A backend calls back into the
 * store only through feox_storage_host. All methods may be called from any thread; a backend
 * with FEOX_STORAGE_HOST_TXN is called only from threads of its host (the store starts no
 * thread that writes through it).
 */
#ifndef FEOX_STORAGE_H
#define FEOX_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "feox.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Version of feox_storage_methods this header describes. A backend sets methods->version to the
 * version it was written for; the engine accepts 1..FEOX_STORAGE_VERSION. Version 2 added
 * feox_storage_sink.expect and feox_storage_host.loaded_totals (a backend written for 1 never
 * reads them; one written for 2 is refused by an engine that does not have them). */
#define FEOX_STORAGE_VERSION 2

/* What a backend is, said once in methods->caps. */
enum feox_storage_caps {
    /* The host owns transactions: every write carries the host's context (feox_write_opts.txn);
     * what is durable, and when, is the host's business (wait_durable and flush may be NULL);
     * rolling back is the host's too: it restores its own records and then restores the indexes
     * with FEOX_WRITE_INDEX_ONLY writes. The store starts no background thread that writes. */
    FEOX_STORAGE_HOST_TXN = 1u << 0,
    /* The indexes are a cache over the backend: a key they do not hold may exist in it (find()
     * is asked before "not found"), and values may live only in the backend (read_value()).
     * read_value() finds a value by its key: a version the host restored in the backend and the
     * store put back with FEOX_WRITE_INDEX_ONLY has location FEOX_STORAGE_LOCATION_BY_KEY. */
    FEOX_STORAGE_INDEX_CACHE = 1u << 1,
    /* The backend reclaims its own space (or its host does): the store never asks compact(). */
    FEOX_STORAGE_SELF_COMPACT = 1u << 2,
    /* With FEOX_STORAGE_INDEX_CACHE: the backend needs no location back but to know whether it
     * was 0, as long as the store has no max_memory. Such a store keeps one bit per version, not
     * an 8-byte word: a location it reports (replaced, for_each_live) is
     * FEOX_STORAGE_LOCATION_BY_KEY if the backend gave a nonzero one, else 0, and relocate()
     * returns false. With max_memory (value eviction, which relocate() feeds) every version
     * keeps the location the backend gave it, as without this flag. */
    FEOX_STORAGE_VALUES_BY_KEY = 1u << 3
};

/* The location of a version the store did not get from the backend but knows it holds
 * (FEOX_WRITE_INDEX_ONLY with FEOX_STORAGE_INDEX_CACHE). A location of 0 means "only in memory":
 * value eviction (max_memory) drops the bytes only of versions with a location. */
#define FEOX_STORAGE_LOCATION_BY_KEY 1u

/* One version of a record as the store hands it to a backend, or a backend to the store. */
typedef struct feox_storage_record {
    const void *key;
    uint32_t key_len;
    /* The value's bytes, or NULL for a version whose bytes stay in the backend (cold: value_len is
     * still its length and location finds it). */
    const void *value;
    uint32_t value_len;
    uint32_t tag;
    uint64_t ts_ns;
    uint64_t expires_at_ns; /* 0 = no expiry */
    uint64_t location;      /* the backend's own locator for this version (0 = none) */
} feox_storage_record;

/* Where a backend sends records (implemented by the store): load, find and refresh. */
typedef struct feox_storage_sink {
    void *ctx;
    /* This version is the key's current one (replacing what the store held for it). */
    feox_err (*put)(void *ctx, const feox_storage_record *rec);
    /* The key has no current version (deleted at ts_ns, or never existed for find()). */
    feox_err (*del)(void *ctx, const void *key, uint32_t key_len, uint64_t ts_ns);
    /* May be NULL (then use put). put for versions sent in ascending key order (each key after
     * the previous put_ordered's; one out of order is still applied, only slower): the store
     * may hold them back and apply them together, before the backend's next put or del, at
     * apply_ordered, and before load or refresh returns; until then a for_each_live walk may
     * not see them. */
    feox_err (*put_ordered)(void *ctx, const feox_storage_record *rec);
    /* NULL when put_ordered is. Apply now what put_ordered holds back; an error is theirs (some
     * may be missing). A backend that records what it sent as held by the store (a frontier)
     * calls it first: the store applies the rest only once the backend has returned, too late
     * to fail the call that sent them. */
    feox_err (*apply_ordered)(void *ctx);
    /* May be NULL. A hint, before a large batch of puts: about `records` more keys are coming
     * (an estimate; too high costs index memory, too low only growth). The store may size its
     * indexes for them at once instead of growing them as they come, and apply the put_ordered
     * records that follow on a thread of its own while the backend reads on (it copies each
     * record; that thread never calls the backend). Errors are the store's own (it ignores a
     * failure to grow: the puts still work). */
    void (*expect)(void *ctx, uint64_t records);
} feox_storage_sink;

/* What a backend may ask of the store (implemented by the store, passed to open). */
typedef struct feox_storage_host {
    void *ctx;
    /* If the current version of key is at old_location, move it to new_location (atomically,
     * under the key's lock) and return true; false if the key is gone or has a newer version. */
    bool (*relocate)(void *ctx, const void *key, uint32_t key_len, uint64_t old_location,
                     uint64_t new_location);
    /* Visit every live record in key order, without reading cold values back (rec->value is NULL
     * for them). Return non-zero from fn to stop. rec is valid during the call only. Every write
     * that had called write()/erase() before this call has published its version before the first
     * visit, so each version visited is at least as new as every version of its key written
     * before the call (log compaction depends on this). Fails with FEOX_ERR_STALE until the
     * store's first load has finished (load() has returned and the store has built its indexes):
     * a thread the backend starts during load() must retry later. */
    feox_err (*for_each_live)(void *ctx, int (*fn)(void *fn_ctx, const feox_storage_record *rec),
                              void *fn_ctx);
    /* The store's clock (ns since the Unix epoch; feox_config.clock). */
    uint64_t (*now_ns)(void *ctx);
    /* What the store's first load kept: its live records and their key and value bytes (a cold
     * value's length too), as load() left them, so a backend need not walk the indexes to learn
     * them. Constant time. Fails with FEOX_ERR_STALE until the first load has finished, as
     * for_each_live. May be NULL (a backend then walks). */
    feox_err (*loaded_totals)(void *ctx, uint64_t *records, uint64_t *key_value_bytes);
} feox_storage_host;

typedef struct feox_storage feox_storage;
typedef struct feox_storage_methods feox_storage_methods;

/* An open backend. A backend allocates its own larger struct with this as its first member. */
struct feox_storage {
    const feox_storage_methods *methods;
};

struct feox_storage_methods {
    int version;      /* FEOX_STORAGE_VERSION the backend was written for */
    const char *name; /* unique among registered backends: "log", "sqlite" */
    unsigned caps;    /* feox_storage_caps */

    /* Open the backend for a store opening with cfg (cfg->path, cfg->owner, cfg->no_create,
     * cfg->sync, ... and cfg->storage_arg, the backend's own argument). Nothing is loaded yet. */
    feox_err (*open)(const feox_storage_methods *methods, const feox_config *cfg,
                     const feox_storage_host *host, feox_storage **out);
    /* Send every record to sink (open, and a full reload asked by refresh). */
    feox_err (*load)(feox_storage *st, void *txn, const feox_storage_sink *sink);
    /* Store rec (rec->value is never NULL here) as the key's current version, replacing
     * `replaced` (NULL: the key had no live version in the store). *location: where rec now is;
     * *seq: what to pass to wait_durable (0 = nothing to wait for). */
    feox_err (*write)(feox_storage *st, void *txn, const feox_storage_record *rec,
                      const feox_storage_record *replaced, uint64_t *location, uint64_t *seq);
    /* Remove key (its live version `replaced`, never NULL) at ts_ns. */
    feox_err (*erase)(feox_storage *st, void *txn, const void *key, uint32_t key_len,
                      uint64_t ts_ns, const feox_storage_record *replaced, uint64_t *seq);
    /* FEOX_STORAGE_INDEX_CACHE: look key up in the backend and send it to sink (put if it has a
     * current version, del otherwise). May be NULL for backends whose index holds every key.
     * The store asks only for a key its indexes do not hold: a backend that knows they hold
     * every record of the key's range (it loaded them) may answer del without looking. */
    feox_err (*find)(feox_storage *st, void *txn, const void *key, uint32_t key_len,
                     const feox_storage_sink *sink);
    /* Read the value_len bytes of key's version stored at location into buf. */
    feox_err (*read_value)(feox_storage *st, void *txn, const void *key, uint32_t key_len,
                           uint64_t location, void *buf, uint32_t value_len);
    /* Send what changed since the last load or refresh to sink (may be NULL: nothing can change
     * underneath the store). Return FEOX_ERR_STALE when the changes are no longer known (the
     * store then clears its indexes and calls load). */
    feox_err (*refresh)(feox_storage *st, void *txn, const feox_storage_sink *sink);
    /* sync=full: return once everything up to seq is durable (group commit). May be NULL.
     * FEOX_ERR_DISK_FULL or FEOX_ERR_IO mean the record of seq was cancelled: the backend will
     * never store it, nor let it come back after a reopen; the store then undoes the write in
     * memory (putting the key's previous version back) before it returns the error. Any other
     * error (FEOX_ERR_DEGRADED) means it may be stored. Called exactly once for each seq a
     * write()/erase() returned, by the writer, after it has published the version. */
    feox_err (*wait_durable)(feox_storage *st, uint64_t seq);
    /* Make everything written so far durable. May be NULL (HOST_TXN: the host's commit does). */
    feox_err (*flush)(feox_storage *st);
    /* Reclaim space now. May be NULL with FEOX_STORAGE_SELF_COMPACT. */
    feox_err (*compact)(feox_storage *st);
    /* Verify what is stored; on problems return FEOX_ERR_CORRUPT and describe them in detail. */
    feox_err (*check)(feox_storage *st, char *detail, size_t detail_len);
    /* Add the backend's counters (cache, disk, flushes, recovery, file size) to *out. */
    void (*get_stats)(feox_storage *st, feox_stats *out);
    /* Record owner as the owner of what the backend stores (feox_set_owner). May be NULL. */
    feox_err (*set_owner)(feox_storage *st, const char *owner);
    /* In the child of a fork(): close this process's copies of the backend's descriptors and
     * nothing else (no write, no unlock, no free, no lock taken). Never used again. May be NULL. */
    void (*forget_after_fork)(feox_storage *st);
    /* Final flush, release, free. Returns the final flush's error. */
    feox_err (*close)(feox_storage *st);

    /* Files the backend created, acted on without opening a store (feox_store_file_info,
     * feox_remove_store_file, feox_rename_store_file go to the backend that made the file). Each
     * may be NULL: the backend keeps no files of its own. Same contracts as those functions. */
    feox_err (*file_info)(const feox_storage_methods *methods, const char *path,
                          feox_file_info *out);
    feox_err (*remove_files)(const feox_storage_methods *methods, const char *path,
                             const char *owner, unsigned flags);
    feox_err (*rename_files)(const feox_storage_methods *methods, const char *from,
                             const char *to, const char *owner, const char *new_owner,
                             unsigned flags);
};

/* Register a backend under methods->name (methods must stay valid while the process runs).
 * Registering the same methods again is a no-op. At most 32 backends besides "log"; registering
 * allocates nothing. Errors: INVALID_ARGUMENT (NULL, no name, a version this engine does not
 * know, a required method missing: open, load, write, erase, read_value, check, get_stats,
 * close), KEY_EXISTS (another backend has that name), NOMEM (32 registered already). */
feox_err feox_storage_register(const feox_storage_methods *methods);
/* The registered backend named name, or NULL. "log" is always registered. */
const feox_storage_methods *feox_storage_find(const char *name);

#ifdef __cplusplus
}
#endif

#endif
