/*
 * log_owner.c — the log backend's set_owner: record a new owner in the open store file's header.
 *
 * The header (64 bytes at offset 0, FORMAT.md) is rewritten in place with the same file id
 * and creation time and the new owner hash (its checksum recomputed), then fsynced. A 64-byte
 * write at offset 0 lies within one sector, so a crash leaves either the old or the new header.
 * Serialisation: compact_mu keeps compaction out (it replaces fd and writes owner_hash into its
 * rewrite's header, so a compaction after this call carries the new owner), and io_busy keeps the
 * flusher and group-commit leaders from writing or fsyncing at the same time.
 */
#include <errno.h>
#include <string.h>

#include "base/error.h"
#include "base/io.h"
#include "storage/log/log_backend.h"
#include "storage/log/store_files.h"

/* Rewrite fd's header with owner_hash and fsync. On a failed write the old header is written
 * back. *fsync_failed: the fsync failed (the backend must count as degraded). */
static feox_err write_owner(feox_log_backend *b, int fd, uint64_t owner_hash, bool *fsync_failed)
{
    feox_log_header h;
    feox_err err = feox_store_file_read_header(fd, b->path, &h);
    if (err != FEOX_OK || h.owner_hash == owner_hash)
        return err;
    uint8_t old_header[FEOX_LOG_HEADER_SIZE], header[FEOX_LOG_HEADER_SIZE];
    feox_log_header_encode(old_header, h.file_id, h.created_ns, h.owner_hash);
    feox_log_header_encode(header, h.file_id, h.created_ns, owner_hash);
    if (feox_io_pwrite_all(fd, header, sizeof header, 0) != 0) {
        int write_errno = errno ? errno : EIO;
        (void)feox_io_pwrite_all(fd, old_header, sizeof old_header, 0);
        return feox_log_io_error(b, "cannot write the header of the store file", write_errno);
    }
    if (feox_io_fsync(fd) != 0) {
        *fsync_failed = true;
        return feox_fail(FEOX_ERR_DEGRADED,
                         "fsync of %s failed (%s); the store accepts no more "
                         "writes",
                         b->path, strerror(errno ? errno : EIO));
    }
    return FEOX_OK;
}

feox_err feox_log_set_owner(feox_log_backend *b, uint64_t owner_hash)
{
    pthread_mutex_lock(&b->compact_mu);
    pthread_mutex_lock(&b->mu);
    while (b->io_busy)
        pthread_cond_wait(&b->changed, &b->mu);
    feox_err err = FEOX_OK;
    if (b->degraded)
        err = feox_fail(FEOX_ERR_DEGRADED, "an earlier fsync of %s failed", b->path);
    else
        b->io_busy = true;
    int fd = b->fd; /* only compaction replaces it, and compact_mu is held */
    pthread_mutex_unlock(&b->mu);
    if (err != FEOX_OK) {
        pthread_mutex_unlock(&b->compact_mu);
        return err;
    }

    bool fsync_failed = false;
    err = write_owner(b, fd, owner_hash, &fsync_failed);

    pthread_mutex_lock(&b->mu);
    b->io_busy = false;
    pthread_cond_broadcast(&b->changed);
    if (fsync_failed) {
        b->stats.io_errors++;
        b->degraded = true;
    } else if (err == FEOX_ERR_IO || err == FEOX_ERR_DISK_FULL) {
        b->stats.io_errors++;
    }
    if (err == FEOX_OK)
        b->owner_hash = owner_hash; /* read by compaction under compact_mu */
    pthread_mutex_unlock(&b->mu);
    pthread_mutex_unlock(&b->compact_mu);
    return err;
}
