/*
 * log_read.c — reading one version's value back by its location: from the write-behind buffers
 * if it is not written yet, else through the value cache from the current file (or from the
 * previous one while a compaction is relocating). Used by the backend's read_value and by
 * compaction (cold values it rewrites).
 */
#include <errno.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/io.h"
#include "storage/log/log_backend.h"

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

feox_err feox_log_read_value(feox_log_backend *b, uint64_t location, void *buf, uint32_t value_len)
{
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
