/*
 * log_sync.c — moving appended records from the write-behind buffer into the file: the one
 * function that writes and fsyncs the log (feox_log_sync_upto, used by the flusher, group commit,
 * flush, check, close and compaction), sync=full's wait for a record (feox_log_wait_durable) and
 * the cancelling of the records a failed write carried in sync=full, and the mapping of a failed
 * write's errno to an error. The write path and its modes are described at the top of
 * log_backend.c; cancelled records in FORMAT.md.
 */
#include <errno.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/helpers.h"
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

/* The cancellation that holds seq, or NULL (mu held; newest last, so a seq past every
 * cancellation, the common case, is answered by the first comparison). */
static feox_log_cancelled *cancellation_of(feox_log_backend *b, uint64_t seq)
{
    for (size_t i = b->cancelled_len; i-- > 0;) {
        feox_log_cancelled *c = &b->cancelled[i];
        if (seq > c->last_seq)
            return NULL;
        if (seq >= c->first_seq)
            return c;
    }
    return NULL;
}

bool feox_log_cancellations_unanswered(const feox_log_backend *b)
{
    for (size_t i = 0; i < b->cancelled_len; i++)
        if (b->cancelled[i].unanswered)
            return true;
    return false;
}

/* Re-seal as cancelled the records of buf (which starts at file offset off with the record of
 * seq first_seq) from seq from_seq on; returns the file offset of the first one re-sealed. */
static uint64_t cancel_records(feox_log_backend *b, feox_log_buffer *buf, uint64_t off,
                               uint64_t first_seq, uint64_t from_seq)
{
    uint64_t seq = first_seq, first = off + buf->len;
    for (size_t at = 0; at < buf->len; seq++) {
        uint8_t *rec = buf->data + at;
        uint64_t size;
        if (seq >= from_seq) {
            if (first > off + at)
                first = off + at;
            size = feox_log_record_cancel(rec, b->file_id, off + at);
        } else {
            size = feox_log_record_size(feox_get_le32(rec + 8), feox_get_le32(rec + 12));
        }
        at += (size_t)size;
    }
    return first;
}

/* Note seqs first..last, bytes [start, end), as cancelled: extends the last cancellation if this
 * one follows it (a retry that failed again), else adds one. false on NOMEM. */
static bool remember_cancelled(feox_log_backend *b, uint64_t first, uint64_t last, uint64_t start,
                               uint64_t end, int write_errno)
{
    feox_log_cancelled *prev = b->cancelled_len ? &b->cancelled[b->cancelled_len - 1] : NULL;
    if (prev && prev->last_seq + 1 == first && prev->end == start &&
        prev->generation == b->generation) {
        prev->last_seq = last;
        prev->end = end;
        prev->unanswered += last - first + 1;
        prev->write_errno = write_errno;
        return true;
    }
    if (!b->cancelled || b->cancelled_len == b->cancelled_cap) {
        size_t cap = b->cancelled ? b->cancelled_cap * 2 : 4;
        feox_log_cancelled *grown = feox_mem_realloc(b->cancelled, cap * sizeof *grown);
        if (!grown)
            return false;
        b->cancelled = grown;
        b->cancelled_cap = cap;
    }
    b->cancelled[b->cancelled_len++] = (feox_log_cancelled){.first_seq = first,
                                                            .last_seq = last,
                                                            .start = start,
                                                            .end = end,
                                                            .generation = b->generation,
                                                            .unanswered = last - first + 1,
                                                            .write_errno = write_errno};
    return true;
}

/* sync=full, after a write failed (mu and io_busy held): cancel the records it carried that are
 * not cancelled yet. If it carried none (it was the retry of cancelled records), the records
 * appended behind them go instead: their writers wait for this write too, and answering them
 * any later would only fail them later. The records stay where they are (the offsets of the
 * ones after them, handed out as locations, must not move) and are written as they are now.
 * Returns true if records of `pending` were cancelled (the caller overwrites their bytes). */
static bool cancel_failed_write(feox_log_backend *b, int write_errno)
{
    uint64_t done = b->written_seq > b->cancelled_through ? b->written_seq : b->cancelled_through;
    feox_log_buffer *buf = &b->pending;
    uint64_t off = b->write_off, first_seq = b->written_seq + 1, last_seq = b->pending_seq;
    bool in_pending = done < b->pending_seq;
    if (!in_pending) {
        buf = &b->active;
        off += b->pending.len;
        first_seq = b->pending_seq + 1;
        last_seq = b->append_seq;
    }
    if (done >= last_seq)
        return false;
    uint64_t start = cancel_records(b, buf, off, first_seq, done + 1);
    if (!remember_cancelled(b, done + 1, last_seq, start, off + buf->len, write_errno)) {
        /* Its writers cannot be told their write was cancelled: stop accepting writes. */
        b->degraded = true;
        b->stats.io_errors++;
    }
    b->cancelled_through = last_seq;
    b->cancellations++;
    return in_pending;
}

/* After the cancel: write pending's re-sealed bytes over what the failed write may have put in
 * the file (blocks it already has, so this usually succeeds on a full disk), so that no record
 * the failed write carried is left valid in the file if nothing else is ever written. Called
 * holding io_busy, not mu; a success counts as the write of pending. */
static void overwrite_cancelled(feox_log_backend *b)
{
    pthread_mutex_lock(&b->mu);
    int fd = b->fd;
    const uint8_t *data = b->pending.data;
    size_t len = b->pending.len;
    uint64_t offset = b->write_off;
    pthread_mutex_unlock(&b->mu);
    bool written = feox_io_pwrite_all(fd, data, len, offset) == 0;
    pthread_mutex_lock(&b->mu);
    if (written) {
        b->stats.disk_writes++;
        b->stats.disk_bytes_written += len;
        b->write_off += len;
        b->pending.len = 0;
        b->written_seq = b->pending_seq;
        b->write_error = FEOX_OK;
    }
    pthread_mutex_unlock(&b->mu);
}

/* Write (and with durable, fsync) everything appended up to seq; with waiter (sync=full's
 * wait_durable), answer a cancelled seq with its write's error instead. */
static feox_err sync_loop(feox_log_backend *b, uint64_t seq, bool durable, bool waiter)
{
    pthread_mutex_lock(&b->mu);
    if (seq > b->append_seq)
        seq = b->append_seq;
    for (;;) {
        feox_log_cancelled *cancelled = waiter ? cancellation_of(b, seq) : NULL;
        if (cancelled) {
            cancelled->unanswered--;
            int write_errno = cancelled->write_errno;
            pthread_mutex_unlock(&b->mu);
            return feox_log_io_error(b, "cannot write store file", write_errno);
        }
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
        bool cut = false;
        /* The first write after an open that used the file's index snapshot: cut it off first,
         * so the file ends with what is written (no fsync needed: FORMAT.md). */
        if (cut_snapshot) {
            cut = feox_io_ftruncate(fd, (off_t)offset) == 0;
            if (!cut)
                write_errno = errno ? errno : EIO;
        }
        if (!write_errno && len && feox_io_pwrite_all(fd, data, len, offset) != 0)
            write_errno = errno ? errno : EIO;
        if (!write_errno && durable && feox_io_fsync(fd) != 0)
            sync_errno = errno ? errno : EIO;

        pthread_mutex_lock(&b->mu);
        if (cut)
            b->snapshot_tail = false;
        if (write_errno) {
            b->stats.io_errors++;
            b->write_error = feox_log_io_error(b, "cannot write store file", write_errno);
            feox_err err = b->write_error;
            /* sync=full: the records the write carried are cancelled; their bytes go over
             * whatever part of them reached the file (not after a failed cut: nothing did). */
            bool overwrite = b->sync == FEOX_SYNC_FULL && cancel_failed_write(b, write_errno) &&
                             !b->snapshot_tail;
            pthread_mutex_unlock(&b->mu);
            if (overwrite)
                overwrite_cancelled(b);
            pthread_mutex_lock(&b->mu);
            b->io_busy = false;
            pthread_cond_broadcast(&b->changed);
            if (waiter && cancellation_of(b, seq))
                continue; /* answered at the top of the loop */
            pthread_mutex_unlock(&b->mu);
            return err;
        }
        b->io_busy = false;
        pthread_cond_broadcast(&b->changed);
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

feox_err feox_log_sync_upto(feox_log_backend *b, uint64_t seq, bool durable)
{
    return sync_loop(b, seq, durable, false);
}

feox_err feox_log_wait_durable(feox_log_backend *b, uint64_t seq)
{
    return sync_loop(b, seq, true, true);
}
