/*
 * log_backend.c — the single-file log backend's top: the "log" feox_storage_methods (open, load,
 * write/erase as appends into the write-behind buffer, the background flusher, flush, stats,
 * close, and the file actions), built on the helpers of log_backend.h (log_sync.c writes and
 * fsyncs, log_read.c reads back, recovery.c loads, compaction.c rewrites). The flusher and the
 * compactor start once load has replayed the file. A read-only backend (feox_config.read_only:
 * O_RDONLY, shared flock) starts neither and writes nothing: appends, compact and set_owner fail
 * with FEOX_ERR_READ_ONLY, flush and close have nothing to do.
 *
 * Write path. An append takes `mu`, encodes the record straight into the active buffer (its file
 * offset is known: append_off) and returns; it never does I/O. Records for one key arrive under
 * that key's lock, and one buffer keeps them in arrival order, so file order = apply order.
 * Writing is done by whoever holds io_busy (see log_backend.h): it swaps the active buffer into
 * `pending`, writes it with one pwrite at write_off outside the lock, and fsyncs if asked.
 *   sync=off     the flusher writes every flush_interval_ms (or when the buffer passes 4 MiB);
 *                fsync only in flush()/close().
 *   sync=normal  the flusher writes and fsyncs every flush_interval_ms (default 100): a write
 *                acknowledged at t is durable by t + interval + one write+fsync of the buffer
 *                (the buffer is capped at 32 MiB by backpressure).
 *   sync=full    wait_durable(seq) makes the caller a group-commit leader if nobody is writing:
 *                it writes and fsyncs everything appended so far, so the writers that appended
 *                while the previous leader was busy share the next fsync.
 * A failed write keeps `pending` and is retried at the same offset by the next writer (a partial
 * write is overwritten, and a crash leaves it as a torn tail). Until a write succeeds again, every
 * append first retries it and fails with its error (DISK_FULL for ENOSPC/EFBIG/EDQUOT) if it
 * still fails: a disk that filled up under write-behind does not go on acknowledging writes that
 * only the buffer holds. With sync=full nothing it carried was acknowledged, so its records are
 * cancelled instead (log_sync.c, FORMAT.md "Cancelled records"): re-sealed in place as records
 * replay skips (the offsets of later records, handed out as locations, stay right), written over
 * whatever part of them reached the file, and each of their writers' wait_durable returns the
 * error (the store then undoes the write in memory); the records appended behind them are
 * written by the next group commit as usual. A failed fsync is never retried:
 * the kernel may have dropped the dirty pages, so the backend becomes DEGRADED for good and every
 * later append, flush and wait_durable fails.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/helpers.h"
#include "base/io.h"
#include "base/thread.h"
#include "storage/log/log_backend.h"
#include "storage/log/log_storage.h"
#include "storage/log/store_files.h"

#define BUFFER_LIMIT (32u << 20) /* appenders wait for the flusher beyond this */
#define BUFFER_KICK (4u << 20)   /* wake the flusher early past this */
#define DEFAULT_FLUSH_INTERVAL_MS 100u
#define DEFAULT_VALUE_CACHE_BYTES (64u << 20)

/* (mu held) The bytes of the current file the version `replaced` held (0: none, or a version
 * of an older file, which the last compaction's figure does not count as this file's). */
static uint64_t replaced_bytes(const feox_log_backend *b, const feox_storage_record *replaced)
{
    if (!replaced || (uint32_t)(replaced->location >> FEOX_LOG_OFFSET_BITS) != b->generation)
        return 0;
    return feox_log_record_size(replaced->key_len, replaced->value_len);
}

/* The error of anything that would write a read-only store's file. */
static feox_err read_only_error(const feox_log_backend *b)
{
    return feox_fail(FEOX_ERR_READ_ONLY, "the store file '%s' is read-only", b->path);
}

static feox_err append_record(feox_log_backend *b, uint8_t op, const void *key, uint32_t key_len,
                              const void *value, uint32_t value_len, uint32_t tag, uint64_t ts_ns,
                              uint64_t expires_at_ns, const feox_storage_record *replaced,
                              uint64_t *location, uint64_t *seq)
{
    if (b->read_only) /* (the store refuses writes first: this is the backend's own guard) */
        return read_only_error(b);
    if (!key || key_len == 0 || key_len > FEOX_MAX_KEY_SIZE || value_len > FEOX_MAX_VALUE_SIZE ||
        (value_len && !value))
        return feox_fail(FEOX_ERR_INVALID_ARGUMENT, "bad record for the store file");
    size_t size = (size_t)feox_log_record_size(key_len, value_len);
    pthread_mutex_lock(&b->mu);
    for (;;) {
        feox_err err = FEOX_OK;
        if (b->degraded)
            err = feox_fail(FEOX_ERR_DEGRADED, "an earlier fsync of %s failed", b->path);
        else if (b->stopping)
            err = feox_fail(FEOX_ERR_CLOSED, "store file %s is closing", b->path);
        else if (!b->loaded)
            err = feox_fail(FEOX_ERR_INVALID_ARGUMENT, "append before the load of %s", b->path);
        if (err) {
            pthread_mutex_unlock(&b->mu);
            return err;
        }
        if (b->write_error) {
            /* A write to the file failed (disk full, I/O error): retry it now, and acknowledge
             * nothing more until one succeeds, so what is acknowledged and not yet in the file
             * stays what a single flush interval holds. */
            pthread_mutex_unlock(&b->mu);
            err = feox_log_sync_upto(b, UINT64_MAX, false);
            if (err)
                return err;
            pthread_mutex_lock(&b->mu);
            continue;
        }
        if (b->switching || (b->active.len > 0 && b->active.len + size > BUFFER_LIMIT)) {
            pthread_cond_signal(&b->flusher_wake);
            pthread_cond_wait(&b->changed, &b->mu);
            continue;
        }
        break;
    }
    feox_err err = feox_log_buffer_reserve(&b->active, b->active.len + size);
    if (err) {
        pthread_mutex_unlock(&b->mu);
        return err;
    }
    uint64_t offset = b->append_off;
    feox_log_record_encode(b->active.data + b->active.len, b->file_id, offset, op, key, key_len,
                           value, value_len, tag, ts_ns, expires_at_ns);
    b->active.len += size;
    b->append_off += size;
    /* A delete record is no live data; the version it ends is dead from now on. */
    b->live_change +=
        (op == FEOX_LOG_PUT ? (int64_t)size : 0) - (int64_t)replaced_bytes(b, replaced);
    uint64_t my_seq = ++b->append_seq;
    if (b->active.len >= BUFFER_KICK)
        pthread_cond_signal(&b->flusher_wake);
    uint32_t generation = b->generation;
    pthread_mutex_unlock(&b->mu);
    if (location)
        *location = feox_log_location(generation, offset);
    if (seq)
        *seq = my_seq;
    return FEOX_OK;
}

static feox_err log_write(feox_storage *st, void *txn, const feox_storage_record *rec,
                          const feox_storage_record *replaced, uint64_t *location, uint64_t *seq)
{
    (void)txn;
    if (!rec || (!rec->value && rec->value_len))
        return feox_fail(FEOX_ERR_INVALID_ARGUMENT, "append of a record without its bytes");
    return append_record(feox_log_of(st), FEOX_LOG_PUT, rec->key, rec->key_len, rec->value,
                         rec->value_len, rec->tag, rec->ts_ns, rec->expires_at_ns, replaced,
                         location, seq);
}

static feox_err log_erase(feox_storage *st, void *txn, const void *key, uint32_t key_len,
                          uint64_t ts_ns, const feox_storage_record *replaced, uint64_t *seq)
{
    (void)txn;
    return append_record(feox_log_of(st), FEOX_LOG_DELETE, key, key_len, NULL, 0, 0, ts_ns, 0,
                         replaced, NULL, seq);
}

static feox_err log_wait_durable(feox_storage *st, uint64_t seq)
{
    return feox_log_wait_durable(feox_log_of(st), seq);
}

static feox_err log_flush(feox_storage *st)
{
    feox_log_backend *b = feox_log_of(st);
    if (b->read_only)
        return FEOX_OK; /* nothing was written: nothing to make durable */
    pthread_mutex_lock(&b->mu);
    b->stats.flushes++;
    uint64_t seq = b->append_seq;
    pthread_mutex_unlock(&b->mu);
    return feox_log_sync_upto(b, seq, true);
}

static feox_err log_read_value(feox_storage *st, void *txn, const void *key, uint32_t key_len,
                               uint64_t location, void *buf, uint32_t value_len)
{
    (void)txn;
    (void)key;
    (void)key_len;
    return feox_log_read_value(feox_log_of(st), location, buf, value_len);
}

static feox_err log_compact(feox_storage *st)
{
    feox_log_backend *b = feox_log_of(st);
    return b->read_only ? read_only_error(b) : feox_log_compact(b);
}

static feox_err log_check(feox_storage *st, char *detail, size_t detail_len)
{
    return feox_log_check(feox_log_of(st), detail, detail_len);
}

static feox_err log_set_owner(feox_storage *st, const char *owner)
{
    feox_log_backend *b = feox_log_of(st);
    return b->read_only ? read_only_error(b) : feox_log_set_owner(b, feox_owner_hash(owner));
}

/* (mu held) The live bytes of the file now: the last figure and what appends changed since,
 * kept within the file (a write the store undid, or records that expired, can move the sum
 * past what is there until the next measurement). */
static uint64_t live_bytes_now(const feox_log_backend *b)
{
    int64_t live = (int64_t)b->live_bytes + b->live_change;
    if (live < 0)
        return 0;
    return (uint64_t)live < b->append_off ? (uint64_t)live : b->append_off;
}

static void log_get_stats(feox_storage *st, feox_stats *out)
{
    feox_log_backend *b = feox_log_of(st);
    /* The store's stats wait for its load, so its figure is there (no lock held here). */
    feox_log_take_live_bytes_from_load(b);
    pthread_mutex_lock(&b->mu);
    const feox_log_counters *c = &b->stats;
    out->disk_writes += c->disk_writes;
    out->disk_bytes_written += c->disk_bytes_written;
    out->disk_reads += c->disk_reads;
    out->disk_bytes_read += c->disk_bytes_read;
    out->flushes += c->flushes;
    out->fsyncs += c->fsyncs;
    out->io_errors += c->io_errors;
    out->compactions += c->compactions;
    out->recovered_records += c->recovered_records;
    out->recovery_dropped_records += c->recovery_dropped_records;
    out->recovery_dropped_bytes += c->recovery_dropped_bytes;
    out->recovery_ns += c->recovery_ns;
    out->file_size += b->append_off;
    out->file_live_bytes += live_bytes_now(b);
    pthread_mutex_unlock(&b->mu);
    feox_value_cache_stats(b->cache, out);
}

/* The background flusher: every interval it writes what is buffered (sync=normal: and fsyncs);
 * between ticks, a buffer past 4 MiB wakes it to write (not fsync) early. */
static void *flusher_main(void *arg)
{
    feox_log_backend *b = arg;
    uint64_t interval_ns = (uint64_t)b->flush_interval_ms * 1000000u;
    uint64_t last_tick_ns = feox_monotonic_ns();
    bool failing = false; /* after a failed write, retry at the next tick, not in a loop */
    pthread_mutex_lock(&b->mu);
    while (!b->stopping) {
        uint64_t deadline_ns = last_tick_ns + interval_ns;
        struct timespec deadline = feox_timespec_of_ns(deadline_ns);
        if (failing || b->active.len < BUFFER_KICK)
            pthread_cond_timedwait(&b->flusher_wake, &b->mu, &deadline);
        if (b->stopping)
            break;
        uint64_t now = feox_monotonic_ns();
        bool tick = now >= deadline_ns;
        if (tick)
            last_tick_ns = now;
        /* The fsync happens once per tick, so a burst streams to the page cache instead of
         * waiting for the disk every 4 MiB; a write acknowledged just after a tick is durable
         * at the next one: window = interval + one write and fsync. */
        bool durable = b->sync == FEOX_SYNC_NORMAL && tick;
        bool work = b->active.len || b->pending.len || (durable && b->durable_seq < b->written_seq);
        if (!work || b->degraded || (failing && !tick))
            continue;
        uint64_t seq = b->append_seq;
        pthread_mutex_unlock(&b->mu);
        /* Errors are counted in stats and reported by flush() and (buffer full) by appends. */
        failing = feox_log_sync_upto(b, seq, durable) != FEOX_OK;
        feox_log_compactor_poke(b);
        pthread_mutex_lock(&b->mu);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

void feox_log_stop_threads(feox_log_backend *b)
{
    atomic_store_explicit(&b->compactor_quit, true, memory_order_relaxed);
    pthread_mutex_lock(&b->mu);
    b->stopping = true;
    pthread_cond_broadcast(&b->flusher_wake);
    pthread_cond_broadcast(&b->changed);
    pthread_mutex_unlock(&b->mu);
    if (b->flusher_started)
        pthread_join(b->flusher, NULL);
    b->flusher_started = false;
    feox_log_compactor_stop(b);
}

static void free_backend(feox_log_backend *b)
{
    feox_store_file_close(b->fd); /* also releases the flock */
    feox_store_file_close(b->old_fd);
    pthread_mutex_destroy(&b->mu);
    pthread_mutex_destroy(&b->compact_mu);
    pthread_cond_destroy(&b->changed);
    pthread_cond_destroy(&b->flusher_wake);
    pthread_cond_destroy(&b->compactor_wake);
    pthread_rwlock_destroy(&b->fd_lock);
    feox_value_cache_free(b->cache);
    feox_mem_free_large(b->snapshot); /* a load that failed or was cancelled left it */
    feox_mem_free(b->active.data);
    feox_mem_free(b->pending.data);
    feox_mem_free(b->cancelled);
    feox_mem_free(b->path);
    feox_mem_free(b->compact_path);
    feox_mem_free(b);
}

static feox_err log_close(feox_storage *st)
{
    feox_log_backend *b = feox_log_of(st);
    feox_log_stop_threads(b);
    feox_err err = FEOX_OK;
    pthread_mutex_lock(&b->mu);
    uint64_t seq = b->append_seq;
    /* A degraded backend reports it again here: nothing since the failed fsync is durable. A
     * read-only one has nothing to flush (nor may it fsync a file it may not write). */
    bool dirty =
        !b->read_only && (b->durable_seq < seq || b->durable_seq < b->written_seq || b->degraded);
    pthread_mutex_unlock(&b->mu);
    if (dirty)
        err = feox_log_sync_upto(b, seq, true);
    free_backend(b);
    return err;
}

/* The fork() child's side (feox_storage.h). Every descriptor of this backend (fd, old_fd and a
 * compaction's rewrite, which lives only in compaction.c's locals) is a store-file descriptor,
 * which store_files.c's fork handler closes in the child; here they are only forgotten. */
static void log_forget_after_fork(feox_storage *st)
{
    feox_log_backend *b = feox_log_of(st);
    b->fd = b->old_fd = -1;
}

/* The header a store file created by this open gets. */
static void new_header(uint8_t header[FEOX_LOG_HEADER_SIZE], uint64_t owner_hash)
{
    feox_log_header_encode(header, feox_log_new_file_id(0), feox_realtime_ns(), owner_hash);
}

/* Take file id and owner from the locked file's header (verified again under the lock). */
static feox_err read_header(feox_log_backend *b)
{
    feox_log_header h;
    feox_err err = feox_store_file_read_header(b->fd, b->path, &h);
    if (err == FEOX_OK) {
        b->file_id = h.file_id;
        b->owner_hash = h.owner_hash;
    }
    return err;
}

static bool init_sync_objects(feox_log_backend *b)
{
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0)
        return false;
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    bool ok = pthread_mutex_init(&b->mu, NULL) == 0 &&
              pthread_mutex_init(&b->compact_mu, NULL) == 0 &&
              pthread_cond_init(&b->changed, &attr) == 0 &&
              pthread_cond_init(&b->flusher_wake, &attr) == 0 &&
              pthread_cond_init(&b->compactor_wake, &attr) == 0 &&
              pthread_rwlock_init(&b->fd_lock, NULL) == 0;
    pthread_condattr_destroy(&attr);
    return ok;
}

static feox_err log_open(const feox_storage_methods *methods, const feox_config *cfg,
                         const feox_storage_host *host, feox_storage **out)
{
    if (!cfg || !cfg->path || !*cfg->path || !host || !out)
        return feox_fail(FEOX_ERR_INVALID_ARGUMENT, "store file backend needs a path and a host");
    if (cfg->sync != FEOX_SYNC_NORMAL && cfg->sync != FEOX_SYNC_OFF && cfg->sync != FEOX_SYNC_FULL)
        return feox_fail(FEOX_ERR_INVALID_ARGUMENT, "bad sync mode %d", (int)cfg->sync);
    feox_log_backend *b = feox_mem_calloc(1, sizeof *b);
    if (!b)
        return feox_fail(FEOX_ERR_NOMEM, "cannot allocate the store file backend");
    b->fd = b->old_fd = -1;
    b->base.methods = methods;
    b->host = *host;
    b->sync = cfg->sync;
    b->flush_interval_ms =
        cfg->flush_interval_ms ? cfg->flush_interval_ms : DEFAULT_FLUSH_INTERVAL_MS;
    b->read_only = cfg->read_only;
    b->compaction_enabled = !cfg->disable_compaction && !cfg->read_only;
    b->generation = 1;
    b->resident_budget = cfg->max_memory / 2;
    b->cache = feox_value_cache_new(cfg->value_cache_bytes ? cfg->value_cache_bytes
                                                           : DEFAULT_VALUE_CACHE_BYTES);
    b->path = feox_mem_concat(cfg->path, "");
    b->compact_path = feox_mem_concat(cfg->path, ".compact");
    if (!b->path || !b->compact_path || !b->cache || !init_sync_objects(b)) {
        feox_value_cache_free(b->cache);
        feox_mem_free(b->path);
        feox_mem_free(b->compact_path);
        feox_mem_free(b);
        return feox_fail(FEOX_ERR_NOMEM, "cannot set up the store file backend");
    }
    uint8_t header[FEOX_LOG_HEADER_SIZE];
    new_header(header, feox_owner_hash(cfg->owner));
    bool created;
    feox_err err = feox_log_open_locked(b->path, cfg->no_create ? NULL : header, b->read_only,
                                        &b->fd, &created);
    if (err == FEOX_OK)
        err = read_header(b);
    if (err == FEOX_OK && !b->read_only &&
        feox_store_file_remove_leftover(b->compact_path, b->owner_hash)) {
        /* A leftover rewrite from a compaction that crashed before its rename is garbage (the
         * store file is complete) and removed if it is ours; anything else stays, and
         * compaction reports it. */
        feox_clear_error_detail();
    }
    if (err != FEOX_OK) {
        free_backend(b);
        return err;
    }
    b->append_off = b->write_off = FEOX_LOG_HEADER_SIZE;
    *out = &b->base;
    return FEOX_OK;
}

/* Replay the file into sink, then start the background threads (before, they would have nothing
 * to do: no append is accepted until the file is loaded); a read-only store starts none. */
static feox_err log_load(feox_storage *st, void *txn, const feox_storage_sink *sink)
{
    (void)txn;
    feox_log_backend *b = feox_log_of(st);
    feox_err err = feox_log_replay(b, sink);
    if (err == FEOX_OK && !b->read_only) {
        if (feox_thread_start(&b->flusher, flusher_main, b) != 0)
            err = feox_fail(FEOX_ERR_NOMEM, "cannot start the flusher thread");
        else
            b->flusher_started = true;
    }
    if (err == FEOX_OK && b->compaction_enabled)
        err = feox_log_compactor_start(b);
    if (err != FEOX_OK)
        feox_log_stop_threads(b); /* the caller closes the backend next */
    return err;
}

static feox_err log_file_info(const feox_storage_methods *methods, const char *path,
                              feox_file_info *out)
{
    (void)methods;
    return feox_log_file_info(path, out);
}

static feox_err log_remove_files(const feox_storage_methods *methods, const char *path,
                                 const char *owner, unsigned flags)
{
    (void)methods;
    return feox_log_remove_file(path, owner, flags);
}

static feox_err log_rename_files(const feox_storage_methods *methods, const char *from,
                                 const char *to, const char *owner, const char *new_owner,
                                 unsigned flags)
{
    (void)methods;
    return feox_log_rename_file(from, to, owner, new_owner, flags);
}

const feox_storage_methods feox_log_storage_methods = {
    .version = FEOX_STORAGE_VERSION,
    .name = "log",
    .caps = 0,
    .open = log_open,
    .load = log_load,
    .write = log_write,
    .erase = log_erase,
    .read_value = log_read_value,
    .wait_durable = log_wait_durable,
    .flush = log_flush,
    .compact = log_compact,
    .check = log_check,
    .get_stats = log_get_stats,
    .set_owner = log_set_owner,
    .forget_after_fork = log_forget_after_fork,
    .close = log_close,
    .file_info = log_file_info,
    .remove_files = log_remove_files,
    .rename_files = log_rename_files,
};
