/*
 * log_sync.c — moving appended records from the write-behind buffer into the file: the one
 * function that writes and fsyncs the log (feox_log_sync_upto, used by the flusher, group commit,
 * flush, check, close and compaction), and the mapping of a failed write's errno to an error.
 * The write path and its modes are described at the top of log_backend.c.
 */
#include <errno.h>
#include <string.h>

#include "base/error.h"
#include "base/io.h"
#include "storage/log/log_backend.h"

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
        bool cut_snapshot = len && b->snapshot_tail;
        pthread_mutex_unlock(&b->mu);

        int write_errno = 0, sync_errno = 0;
        /* The first write after an open that used the file's index snapshot: cut it off first,
         * so the file ends with what is written (no fsync needed: FORMAT.md). */
        if (cut_snapshot && feox_io_ftruncate(fd, (off_t)offset) != 0)
            write_errno = errno ? errno : EIO;
        if (!write_errno && len && feox_io_pwrite_all(fd, data, len, offset) != 0)
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
        if (cut_snapshot)
            b->snapshot_tail = false;
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

