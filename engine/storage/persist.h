/*
 * persist.h — the seam between the store and a persistence backend: append, sync, replay, compact.
 *
 * The store (store.c) knows nothing of files. In persistent mode it owns one feox_backend and
 * calls it at these points:
 *   open     feox_backend_open_file(), then ops->replay() feeding every record back through the
 *            replay sink (the store applies them in call order: a later call for a key replaces
 *            an earlier one; expired puts are dropped by the store).
 *   write    under the key's shard lock, after validation and before publishing the new version:
 *            ops->append_put() / ops->append_delete(). Calls for one key therefore arrive in the
 *            order the store applied them. The returned location is stored in the record; the
 *            returned sequence number is passed to ops->wait_durable() after the shard lock is
 *            released (sync=full only). An append error fails the write; nothing is published.
 *   read     a record flagged FEOX_RECORD_COLD has no resident bytes: ops->read_value(location).
 *   flush    ops->flush(): everything appended before the call is durable when it returns.
 *   close    ops->close(): final flush, unlock, free.
 * The backend calls back into the store only through feox_store_hooks (compaction needs to know
 * which versions are current and to move their locations; eviction needs to drop resident bytes).
 *
 * A second backend (e.g. records kept in tables of the SQLite database itself) implements the same
 * ops; nothing above this seam changes.
 */
#ifndef FEOX_PERSIST_H
#define FEOX_PERSIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "feox.h"
#include "index/record.h"

typedef struct feox_backend feox_backend;

/* Where replayed records go (implemented by the store). */
typedef struct feox_replay_sink {
    void *ctx;
    /* A put found in the file. value is NULL if the backend leaves it cold (then value_len is the
     * length and location is where read_value finds it). */
    feox_err (*put)(void *ctx, const void *key, uint32_t key_len, const void *value,
                    uint32_t value_len, uint32_t tag, uint64_t ts_ns, uint64_t expires_at_ns,
                    uint64_t location);
    /* A delete found in the file. */
    feox_err (*del)(void *ctx, const void *key, uint32_t key_len, uint64_t ts_ns);
} feox_replay_sink;

/* What the backend may ask of the store (implemented by store.c). */
typedef struct feox_store_hooks {
    void *ctx;
    /* If the current version of key is at old_location, move it to new_location (atomically, under
     * the key's lock) and return true; return false if the key is gone or has a newer version. */
    bool (*relocate)(void *ctx, const void *key, uint32_t key_len, uint64_t old_location,
                     uint64_t new_location);
    /* Visit every live record in key order (no lock held across calls; a snapshot is not
     * guaranteed). Return non-zero from fn to stop. The record is referenced during the call.
     * Every write that had appended before the call has published its version before the first
     * visit, so each version visited is at least as new as every version of its key appended
     * before the call (compaction.c depends on this). */
    feox_err (*for_each_live)(void *ctx,
                              int (*fn)(void *fn_ctx, const feox_entry *e, const feox_record *r),
                              void *fn_ctx);
    /* The store's clock (ns since the Unix epoch). */
    uint64_t (*now_ns)(void *ctx);
} feox_store_hooks;

typedef struct feox_backend_ops {
    feox_err (*replay)(feox_backend *b, const feox_replay_sink *sink);
    /* Append one version. rec->value holds the bytes (never cold here). */
    feox_err (*append_put)(feox_backend *b, const void *key, uint32_t key_len,
                           const feox_record *rec, uint64_t *location, uint64_t *seq);
    feox_err (*append_delete)(feox_backend *b, const void *key, uint32_t key_len, uint64_t ts_ns,
                              uint64_t *seq);
    /* sync=full: return once everything up to seq is durable (group commit). */
    feox_err (*wait_durable)(feox_backend *b, uint64_t seq);
    feox_err (*flush)(feox_backend *b);
    feox_err (*compact)(feox_backend *b);
    /* Read value_len bytes of the version stored at location into buf. */
    feox_err (*read_value)(feox_backend *b, uint64_t location, void *buf, uint32_t value_len);
    /* Verify every checksum in the file; on problems return FEOX_ERR_CORRUPT and describe them. */
    feox_err (*check)(feox_backend *b, char *detail, size_t detail_len);
    /* Add the backend's counters (cache, disk, flushes, recovery, file size) to *out. */
    void (*get_stats)(feox_backend *b, feox_stats *out);
    /* Final flush, release the file lock, free. Returns the final flush's error. */
    feox_err (*close)(feox_backend *b);
    /* In the child of a fork(): close this process's copies of the backend's descriptors and
     * nothing else — no write, no unlock (the lock stays with the parent's descriptor), no free,
     * no lock taken (the backend's mutexes may be held by threads that do not exist here). The
     * backend is never used again in this process. Descriptors opened through store_files.h
     * (all of the log backend's) are closed by the child already (store_files.h, "Descriptors
     * and fork()"): a backend only forgets those. */
    void (*forget_after_fork)(feox_backend *b);
    /* Record owner_hash as the store file's owner (header rewritten and fsynced; compactions
     * after it keep the new owner). Never interleaves with a write, fsync or compaction. */
    feox_err (*set_owner)(feox_backend *b, uint64_t owner_hash);
} feox_backend_ops;

struct feox_backend {
    const feox_backend_ops *ops;
};

/* The single-file log backend (log_*.c). Locks the file against other processes (LOCKED).
 * cfg supplies path, sync mode, flush interval, cache size, compaction on/off. */
feox_err feox_backend_open_file(const feox_config *cfg, const feox_store_hooks *hooks,
                                feox_backend **out);

#endif
