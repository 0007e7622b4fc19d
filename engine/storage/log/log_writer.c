/*
 * log_writer.c — the single-file log backend: open, appends into the write-behind buffer, the
 * background flusher, group commit for sync=full, flush, read_value, stats and close.
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
 * only the buffer holds. A failed fsync is never retried:
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
#include "storage/log/log_backend.h"
#include "storage/log/store_files.h"

#define BUFFER_LIMIT (32u << 20) /* appenders wait for the flusher beyond this */
#define BUFFER_KICK (4u << 20)   /* wake the flusher early past this */
#define DEFAULT_FLUSH_INTERVAL_MS 100u
#define DEFAULT_VALUE_CACHE_BYTES (64u << 20)

feox_err feox_log_io_error(feox_log_backend *b, const char *what, int err)
{
    feox_err code =
        (err == ENOSPC || err == EFBIG || err == EDQUOT) ? FEOX_ERR_DISK_FULL : FEOX_ERR_IO;
    return feox_fail(code, "%s %s: %s", what, b->path, strerror(err));
}

static void swap_buffers(feox_log_buffer *a, feox_log_buffer *c)
{
    feox_log_buffer t = *a;
    *a = *c;
    *c = t;
}

feox_err feox_log_sync_upto(feox_log_backend *b, uint64_t seq, bool durable)
{
    pthread_mutex_lock(&b->mu);
    if (seq > b->append_seq)
        seq = b->append_seq;
    for (;;) {
        if (b->degraded) {
            pthread_mutex_unlock(&b->mu);
            return feox_fail(FEOX_ERR_DEGRADED,
                             "an earlier fsync of %s failed; nothing later is assumed durable",
                             b->path);
        }
        if ((durable ? b->durable_seq : b->written_seq) >= seq)
            break;
        if (b->io_busy) {
            pthread_cond_wait(&b->changed, &b->mu);
            continue;
        }
        b->io_busy = true;
        if (b->pending.len == 0) {
            swap_buffers(&b->active, &b->pending);
            b->pending_seq = b->append_seq;
            pthread_cond_broadcast(&b->changed); /* room for backpressured appenders */
        }
        int fd = b->fd;
        const uint8_t *data = b->pending.data;
        size_t len = b->pending.len;
        uint64_t offset = b->write_off;
        uint64_t batch_seq = b->pending_seq;
        pthread_mutex_unlock(&b->mu);

        int write_errno = 0, sync_errno = 0;
        if (len && feox_io_pwrite_all(fd, data, len, offset) != 0)
            write_errno = errno ? errno : EIO;
        if (!write_errno && durable && feox_io_fsync(fd) != 0)
            sync_errno = errno ? errno : EIO;

        pthread_mutex_lock(&b->mu);
        b->io_busy = false;
        pthread_cond_broadcast(&b->changed);
        if (write_errno) {
            b->stats.io_errors++;
            b->write_error = feox_log_io_error(b, "cannot write store file", write_errno);
            feox_err err = b->write_error;
            pthread_mutex_unlock(&b->mu);
            return err;
        }
        if (len) {
            b->stats.disk_writes++;
            b->stats.disk_bytes_written += len;
            b->write_off += len;
            b->pending.len = 0;
            b->written_seq = batch_seq;
        }
        b->write_error = FEOX_OK;
        if (durable) {
            b->stats.fsyncs++;
            if (sync_errno) {
                b->stats.io_errors++;
                b->degraded = true;
                pthread_mutex_unlock(&b->mu);
                return feox_fail(FEOX_ERR_DEGRADED,
                                 "fsync of %s failed (%s); the store accepts no more writes",
                                 b->path, strerror(sync_errno));
            }
            b->durable_seq = b->written_seq;
        }
    }
    pthread_mutex_unlock(&b->mu);
    return FEOX_OK;
}

feox_err feox_log_buffer_reserve(feox_log_buffer *buf, size_t need)
{
    if (buf->cap >= need)
        return FEOX_OK;
    size_t cap = buf->cap ? buf->cap : 64u << 10;
    while (cap < need)
        cap *= 2;
    uint8_t *data = feox_mem_realloc(buf->data, cap);
    if (!data)
        return feox_fail(FEOX_ERR_NOMEM, "cannot grow a log buffer to %zu bytes", cap);
    buf->data = data;
    buf->cap = cap;
    return FEOX_OK;
}

static feox_err append_record(feox_log_backend *b, uint8_t op, const void *key, uint32_t key_len,
                              const void *value, uint32_t value_len, uint32_t tag, uint64_t ts_ns,
                              uint64_t expires_at_ns, uint64_t *location, uint64_t *seq)
{
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
        else if (!b->replayed)
            err = feox_fail(FEOX_ERR_INVALID_ARGUMENT, "append before replay of %s", b->path);
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

static feox_err log_append_put(feox_backend *base, const void *key, uint32_t key_len,
                               const feox_record *rec, uint64_t *location, uint64_t *seq)
{
    if (!rec || (rec->flags & FEOX_RECORD_COLD))
        return feox_fail(FEOX_ERR_INVALID_ARGUMENT, "append of a record without its bytes");
    return append_record(feox_log_of(base), FEOX_LOG_PUT, key, key_len, rec->value, rec->value_len,
                         rec->tag, rec->ts_ns, rec->expires_at_ns, location, seq);
}

static feox_err log_append_delete(feox_backend *base, const void *key, uint32_t key_len,
                                  uint64_t ts_ns, uint64_t *seq)
{
    return append_record(feox_log_of(base), FEOX_LOG_DELETE, key, key_len, NULL, 0, 0, ts_ns, 0,
                         NULL, seq);
}

static feox_err log_wait_durable(feox_backend *base, uint64_t seq)
{
    return feox_log_sync_upto(feox_log_of(base), seq, true);
}

static feox_err log_flush(feox_backend *base)
{
    feox_log_backend *b = feox_log_of(base);
    pthread_mutex_lock(&b->mu);
    b->stats.flushes++;
    uint64_t seq = b->append_seq;
    pthread_mutex_unlock(&b->mu);
    return feox_log_sync_upto(b, seq, true);
}

/* Copy the value of the record at offset out of the unwritten buffers. Caller holds mu and has
 * checked offset >= write_off. */
static feox_err read_from_buffers(feox_log_backend *b, uint64_t offset, void *buf,
                                  uint32_t value_len)
{
    const feox_log_buffer *src = &b->pending;
    uint64_t start = b->write_off;
    if (offset >= start + b->pending.len) {
        src = &b->active;
        start += b->pending.len;
    }
    uint64_t size;
    size_t at = (size_t)(offset - start);
    if (at + FEOX_LOG_RECORD_FIXED > src->len ||
        !feox_log_record_header_valid(src->data + at, b->file_id, offset, &size))
        return feox_fail(FEOX_ERR_CORRUPT, "no record at location %llu of %s",
                         (unsigned long long)offset, b->path);
    feox_log_record rec;
    if (!feox_log_record_decode(src->data + at, size, b->file_id, offset, &rec) ||
        rec.value_len != value_len)
        return feox_fail(FEOX_ERR_CORRUPT, "record at %llu of %s does not match",
                         (unsigned long long)offset, b->path);
    memcpy(buf, rec.value, value_len);
    return FEOX_OK;
}

static feox_err read_from_file(feox_log_backend *b, int fd, uint64_t file_id, uint64_t offset,
                               void *buf, uint32_t value_len)
{
    uint8_t head[FEOX_LOG_RECORD_FIXED];
    size_t done;
    uint64_t size;
    if (feox_io_pread_all(fd, head, sizeof head, offset, &done) != 0)
        return errno ? feox_log_io_error(b, "cannot read", errno)
                     : feox_fail(FEOX_ERR_CORRUPT, "location %llu past the end of %s",
                                 (unsigned long long)offset, b->path);
    if (!feox_log_record_header_valid(head, file_id, offset, &size))
        return feox_fail(FEOX_ERR_CORRUPT, "no valid record at %llu of %s",
                         (unsigned long long)offset, b->path);
    uint8_t *whole = feox_mem_alloc((size_t)size);
    if (!whole)
        return feox_fail(FEOX_ERR_NOMEM, "cannot allocate %llu bytes", (unsigned long long)size);
    feox_err err = FEOX_OK;
    feox_log_record rec;
    if (feox_io_pread_all(fd, whole, (size_t)size, offset, &done) != 0)
        err = errno ? feox_log_io_error(b, "cannot read", errno)
                    : feox_fail(FEOX_ERR_CORRUPT, "record at %llu of %s is truncated",
                                (unsigned long long)offset, b->path);
    else if (!feox_log_record_decode(whole, size, file_id, offset, &rec) ||
             rec.value_len != value_len)
        err = feox_fail(FEOX_ERR_CORRUPT, "checksum mismatch in the record at %llu of %s",
                        (unsigned long long)offset, b->path);
    else
        memcpy(buf, rec.value, value_len);
    feox_mem_free(whole);
    if (err == FEOX_OK) {
        pthread_mutex_lock(&b->mu);
        b->stats.disk_reads++;
        b->stats.disk_bytes_read += size;
        pthread_mutex_unlock(&b->mu);
    }
    return err;
}

static feox_err log_read_value(feox_backend *base, uint64_t location, void *buf, uint32_t value_len)
{
    feox_log_backend *b = feox_log_of(base);
    uint32_t generation = (uint32_t)(location >> FEOX_LOG_OFFSET_BITS);
    uint64_t offset = location & FEOX_LOG_OFFSET_MASK;
    pthread_mutex_lock(&b->mu);
    if (generation == b->generation && offset >= b->write_off) {
        feox_err err = read_from_buffers(b, offset, buf, value_len);
        pthread_mutex_unlock(&b->mu);
        return err;
    }
    pthread_mutex_unlock(&b->mu);

    if (feox_value_cache_get(b->cache, location, buf, value_len))
        return FEOX_OK;
    pthread_rwlock_rdlock(&b->fd_lock);
    feox_err err;
    if (generation == b->generation)
        err = read_from_file(b, b->fd, b->file_id, offset, buf, value_len);
    else if (b->old_fd >= 0 && generation == b->old_generation)
        err = read_from_file(b, b->old_fd, b->old_file_id, offset, buf, value_len);
    else
        err = feox_fail(FEOX_ERR_CORRUPT, "stale location %llx in %s", (unsigned long long)location,
                        b->path);
    /* Cached before fd_lock is released: once a compaction has closed the old file (under
     * fd_lock) and dropped the old generation's entries, none can come back (compaction.c). */
    if (err == FEOX_OK)
        feox_value_cache_put(b->cache, location, buf, value_len);
    pthread_rwlock_unlock(&b->fd_lock);
    return err;
}

static void log_get_stats(feox_backend *base, feox_stats *out)
{
    feox_log_backend *b = feox_log_of(base);
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
    out->file_live_bytes += b->live_bytes;
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
        if (!work || b->degraded || !b->replayed || (failing && !tick))
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

static void stop_threads(feox_log_backend *b)
{
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
    feox_mem_free(b->active.data);
    feox_mem_free(b->pending.data);
    feox_mem_free(b->path);
    feox_mem_free(b->compact_path);
    feox_mem_free(b);
}

static feox_err log_close(feox_backend *base)
{
    feox_log_backend *b = feox_log_of(base);
    stop_threads(b);
    feox_err err = FEOX_OK;
    pthread_mutex_lock(&b->mu);
    uint64_t seq = b->append_seq;
    /* A degraded backend reports it again here: nothing since the failed fsync is durable. */
    bool dirty = b->durable_seq < seq || b->durable_seq < b->written_seq || b->degraded;
    pthread_mutex_unlock(&b->mu);
    if (dirty)
        err = feox_log_sync_upto(b, seq, true);
    free_backend(b);
    return err;
}

/* The fork() child's side (persist.h). Every descriptor of this backend (fd, old_fd and a
 * compaction's rewrite, which lives only in compaction.c's locals) is a store-file descriptor,
 * which store_files.c's fork handler closes in the child; here they are only forgotten. */
static void log_forget_after_fork(feox_backend *base)
{
    feox_log_backend *b = feox_log_of(base);
    b->fd = b->old_fd = -1;
}

static const feox_backend_ops log_ops = {
    .replay = feox_log_replay,
    .append_put = log_append_put,
    .append_delete = log_append_delete,
    .wait_durable = log_wait_durable,
    .flush = log_flush,
    .compact = feox_log_compact,
    .read_value = log_read_value,
    .check = feox_log_check,
    .get_stats = log_get_stats,
    .close = log_close,
    .forget_after_fork = log_forget_after_fork,
    .set_owner = feox_log_set_owner,
};

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

feox_err feox_backend_open_file(const feox_config *cfg, const feox_store_hooks *hooks,
                                feox_backend **out)
{
    if (!cfg || !cfg->path || !*cfg->path || !hooks || !out)
        return feox_fail(FEOX_ERR_INVALID_ARGUMENT, "store file backend needs a path and hooks");
    if (cfg->sync != FEOX_SYNC_NORMAL && cfg->sync != FEOX_SYNC_OFF && cfg->sync != FEOX_SYNC_FULL)
        return feox_fail(FEOX_ERR_INVALID_ARGUMENT, "bad sync mode %d", (int)cfg->sync);
    feox_log_backend *b = feox_mem_calloc(1, sizeof *b);
    if (!b)
        return feox_fail(FEOX_ERR_NOMEM, "cannot allocate the store file backend");
    b->fd = b->old_fd = -1;
    b->base.ops = &log_ops;
    b->hooks = *hooks;
    b->sync = cfg->sync;
    b->flush_interval_ms =
        cfg->flush_interval_ms ? cfg->flush_interval_ms : DEFAULT_FLUSH_INTERVAL_MS;
    b->compaction_enabled = !cfg->disable_compaction;
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
    feox_err err = feox_log_open_locked(b->path, cfg->no_create ? NULL : header, &b->fd, &created);
    if (err == FEOX_OK)
        err = read_header(b);
    if (err == FEOX_OK && feox_store_file_remove_leftover(b->compact_path, b->owner_hash)) {
        /* A leftover rewrite from a compaction that crashed before its rename is garbage (the
         * store file is complete) and removed if it is ours; anything else stays, and
         * compaction reports it. */
        feox_clear_error_detail();
    }
    if (err == FEOX_OK) {
        b->append_off = b->write_off = FEOX_LOG_HEADER_SIZE;
        if (pthread_create(&b->flusher, NULL, flusher_main, b) != 0)
            err = feox_fail(FEOX_ERR_NOMEM, "cannot start the flusher thread");
        else
            b->flusher_started = true;
    }
    if (err == FEOX_OK && b->compaction_enabled)
        err = feox_log_compactor_start(b);
    if (err != FEOX_OK) {
        stop_threads(b);
        free_backend(b);
        return err;
    }
    *out = &b->base;
    return FEOX_OK;
}
