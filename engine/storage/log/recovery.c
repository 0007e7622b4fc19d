/*
 * recovery.c — reading the log back: the scanner (large sequential reads, damage skipped by the
 * resynchronisation rule of FORMAT.md), replay into the store on open (with torn-tail truncation,
 * except for a read-only store) and check() (every checksum verified).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/helpers.h"
#include "base/io.h"
#include "storage/log/log_backend.h"

#define SCAN_CHUNK (8u << 20) /* one pread per 8 MiB: no per-record system calls */

/* A window over the file (or over an image in memory). */
typedef struct scan_reader {
    int fd;
    const uint8_t *image; /* non-NULL: scan memory instead of fd */
    uint64_t end;
    uint8_t *buf;
    size_t cap;
    uint64_t buf_start;
    size_t buf_len;
    feox_err err;
} scan_reader;

/* Bytes [pos, pos + n) (the caller guarantees pos + n <= end), or NULL on a read error. */
static const uint8_t *reader_get(scan_reader *r, uint64_t pos, size_t n)
{
    if (r->image)
        return r->image + pos;
    if (pos >= r->buf_start && pos + n <= r->buf_start + r->buf_len)
        return r->buf + (pos - r->buf_start);
    size_t want = n > SCAN_CHUNK ? n : SCAN_CHUNK;
    if (want > r->end - pos)
        want = (size_t)(r->end - pos);
    if (want > r->cap) {
        /* Every read refills the buffer whole: nothing in the old one needs to move. A buffer of
         * SCAN_CHUNK is a huge-page mapping (feox_mem_alloc_large): 4 first-touch faults for
         * the first pread into it instead of 2,048. */
        uint8_t *grown = feox_mem_alloc_large(want);
        if (!grown) {
            r->err = feox_fail(FEOX_ERR_NOMEM, "cannot allocate a %zu-byte read buffer", want);
            return NULL;
        }
        feox_mem_free_large(r->buf);
        r->buf = grown;
        r->cap = want;
    }
    size_t done;
    if (feox_io_pread_all(r->fd, r->buf, want, pos, &done) != 0) {
        r->err = feox_fail(FEOX_ERR_IO, "cannot read the store file at %llu: %s",
                           (unsigned long long)pos, errno ? strerror(errno) : "file shrank");
        r->buf_len = 0;
        return NULL;
    }
    r->buf_start = pos;
    r->buf_len = want;
    return r->buf;
}

typedef enum record_status {
    RECORD_VALID,
    RECORD_DAMAGED,
    RECORD_TORN,
    RECORD_UNPARSABLE,
    RECORD_NO_DATA
} record_status;

/* Classify the bytes at pos: a valid record (decoded into *rec), a damaged one whose header (and
 * so length, *size) is trustworthy, one running past end, an unparsable header, or no data: an
 * index snapshot or its footer, or a cancelled record (FORMAT.md): whole by its header, not read
 * (the open that uses a snapshot checks it; anyone else skips it). */
static record_status classify(scan_reader *r, uint64_t file_id, uint64_t pos, uint64_t *size,
                              feox_log_record *rec)
{
    if (r->end - pos < FEOX_LOG_RECORD_FIXED)
        return RECORD_TORN;
    const uint8_t *head = reader_get(r, pos, FEOX_LOG_RECORD_FIXED);
    if (!head)
        return RECORD_UNPARSABLE;
    if (!feox_log_record_header_valid(head, file_id, pos, size))
        return RECORD_UNPARSABLE;
    if (*size > r->end - pos)
        return RECORD_TORN;
    if (head[4] == FEOX_LOG_SNAPSHOT || head[4] == FEOX_LOG_SNAPSHOT_FOOTER ||
        head[4] == FEOX_LOG_CANCELLED)
        return RECORD_NO_DATA;
    const uint8_t *whole = reader_get(r, pos, (size_t)*size);
    if (!whole)
        return RECORD_UNPARSABLE;
    return feox_log_record_decode(whole, *size, file_id, pos, rec) ? RECORD_VALID : RECORD_DAMAGED;
}

/* The next offset after pos where a whole valid record starts, or end. */
static uint64_t resynchronise(scan_reader *r, uint64_t file_id, uint64_t pos)
{
    for (uint64_t q = pos + 1; q + FEOX_LOG_RECORD_OVERHEAD <= r->end; q++) {
        const uint8_t *p = reader_get(r, q, 4);
        if (!p)
            return r->end;
        if (feox_get_le32(p) != FEOX_LOG_RECORD_MAGIC)
            continue;
        uint64_t size;
        feox_log_record rec;
        if (classify(r, file_id, q, &size, &rec) == RECORD_VALID)
            return q;
        if (r->err)
            return r->end;
    }
    return r->end;
}

static feox_err scan(scan_reader *r, uint64_t file_id, uint64_t start, feox_log_visit_fn visit,
                     void *ctx, feox_log_scan_result *out)
{
    memset(out, 0, sizeof *out);
    out->data_end = start;
    uint64_t pos = start, valid_end = start;
    uint64_t unconfirmed_records = 0, unconfirmed_bytes = 0; /* damage not yet followed by data */
    while (pos < r->end) {
        uint64_t size = 0;
        feox_log_record rec;
        record_status status = classify(r, file_id, pos, &size, &rec);
        if (r->err)
            return r->err;
        if (status == RECORD_VALID) {
            if (visit) {
                feox_err err = visit(ctx, &rec);
                if (err)
                    return err;
            }
            out->records++;
            out->data_end = pos + size;
            out->dropped_records += unconfirmed_records;
            out->dropped_bytes += unconfirmed_bytes;
            unconfirmed_records = unconfirmed_bytes = 0;
            pos += size;
            valid_end = pos;
            continue;
        }
        if (status == RECORD_NO_DATA) {
            /* No data of the store: skipped, not damage, and it does not confirm damage before
             * it either (that stays part of a tail). */
            pos += size;
            if (!unconfirmed_records)
                valid_end = pos;
            continue;
        }
        if (!out->first_damage)
            out->first_damage = pos;
        if (status == RECORD_TORN)
            break;
        uint64_t next = status == RECORD_DAMAGED ? pos + size : resynchronise(r, file_id, pos);
        if (r->err)
            return r->err;
        unconfirmed_records++;
        unconfirmed_bytes += next - pos;
        pos = next;
    }
    /* Everything after the last valid record is the tail: torn writes, damaged records or
     * garbage. It is dropped as one unit. */
    if (valid_end < r->end) {
        out->dropped_records += unconfirmed_records + (pos < r->end ? 1 : 0);
        out->dropped_bytes += r->end - valid_end;
    }
    out->valid_end = valid_end;
    return FEOX_OK;
}

feox_err feox_log_scan(int fd, uint64_t file_id, uint64_t start, uint64_t end,
                       feox_log_visit_fn visit, void *ctx, feox_log_scan_result *out)
{
    scan_reader r = {.fd = fd, .end = end, .buf_start = 0, .buf_len = 0};
    feox_err err = scan(&r, file_id, start, visit, ctx, out);
    feox_mem_free_large(r.buf);
    return err;
}

feox_err feox_log_scan_memory(const uint8_t *image, uint64_t file_id, uint64_t start, uint64_t end,
                              feox_log_visit_fn visit, void *ctx, feox_log_scan_result *out)
{
    scan_reader r = {.fd = -1, .image = image, .end = end};
    return scan(&r, file_id, start, visit, ctx, out);
}

typedef struct replay_ctx {
    const feox_storage_sink *sink;
    uint32_t generation;
    uint64_t resident_budget; /* 0 = keep every value resident */
    uint64_t resident_bytes;
} replay_ctx;

static feox_err replay_visit(void *ctx, const feox_log_record *rec)
{
    replay_ctx *rc = ctx;
    if (rec->op == FEOX_LOG_DELETE)
        return rc->sink->del(rc->sink->ctx, rec->key, rec->key_len, rec->ts_ns);
    /* Larger than memory: once the values replayed so far pass half of max_memory, the rest
     * stay on disk (cold) and are read back on demand. */
    const void *value = rec->value;
    if (rc->resident_budget && rec->value_len) {
        if (rc->resident_bytes + rec->value_len > rc->resident_budget)
            value = NULL;
        else
            rc->resident_bytes += rec->value_len;
    }
    feox_storage_record out = {.key = rec->key,
                               .key_len = rec->key_len,
                               .value = value,
                               .value_len = rec->value_len,
                               .tag = rec->tag,
                               .ts_ns = rec->ts_ns,
                               .expires_at_ns = rec->expires_at_ns,
                               .location = feox_log_location(rc->generation, rec->offset)};
    return rc->sink->put(rc->sink->ctx, &out);
}

feox_err feox_log_replay(feox_log_backend *b, const feox_storage_sink *sink)
{
    if (!sink || !sink->put || !sink->del)
        return feox_fail(FEOX_ERR_INVALID_ARGUMENT, "replay needs a sink");
    pthread_mutex_lock(&b->mu);
    bool already = b->loaded;
    pthread_mutex_unlock(&b->mu);
    if (already)
        return feox_fail(FEOX_ERR_INVALID_ARGUMENT, "%s was already loaded", b->path);

    uint64_t started = feox_monotonic_ns();
    struct stat st;
    if (fstat(b->fd, &st) != 0)
        return feox_log_io_error(b, "cannot stat", errno);
    replay_ctx rc = {
        .sink = sink, .generation = b->generation, .resident_budget = b->resident_budget};
    /* With an index snapshot in use (log_snapshot.c) the replay ends where it starts; what
     * becomes of the snapshot is decided when the store's load is over (release). */
    uint64_t end = b->snapshot_off ? b->snapshot_off : (uint64_t)st.st_size;
    feox_log_scan_result result;
    feox_err err =
        feox_log_scan(b->fd, b->file_id, FEOX_LOG_HEADER_SIZE, end, replay_visit, &rc, &result);
    if (err)
        return err;
    /* Cut the torn tail now, so new records follow the last valid one and a later crash cannot
     * glue old garbage to them. A read-only store appends nothing: the tail stays in the file,
     * skipped (its writer cuts it when it next opens the file). */
    if (!b->snapshot_off && !b->read_only && result.data_end < (uint64_t)st.st_size) {
        /* A snapshot (and its footer) that ends the file but was not used goes too: appends
         * follow the last record, as they do when a used snapshot is cut. */
        if (feox_io_ftruncate(b->fd, (off_t)result.data_end) != 0 || feox_io_fsync(b->fd) != 0)
            return feox_log_io_error(b, "cannot cut the torn tail of", errno);
    }
    pthread_mutex_lock(&b->mu);
    b->append_off = b->write_off = result.data_end;
    b->stats.recovered_records += result.records;
    b->stats.recovery_dropped_records += result.dropped_records;
    b->stats.recovery_dropped_bytes += result.dropped_bytes;
    b->stats.recovery_ns += feox_monotonic_ns() - started;
    b->loaded = true;
    pthread_mutex_unlock(&b->mu);
    return FEOX_OK;
}

feox_err feox_log_check(feox_log_backend *b, char *detail, size_t detail_len)
{
    pthread_mutex_lock(&b->mu);
    uint64_t seq = b->append_seq;
    pthread_mutex_unlock(&b->mu);
    feox_err err = feox_log_sync_upto(b, seq, false); /* check what is in the file */
    if (err && err != FEOX_ERR_DEGRADED)
        return err;
    pthread_rwlock_rdlock(&b->fd_lock);
    pthread_mutex_lock(&b->mu);
    int fd = b->fd;
    uint64_t file_id = b->file_id, end = b->write_off;
    pthread_mutex_unlock(&b->mu);
    feox_log_scan_result result;
    err = feox_log_scan(fd, file_id, FEOX_LOG_HEADER_SIZE, end, NULL, NULL, &result);
    pthread_rwlock_unlock(&b->fd_lock);
    if (err)
        return err;
    if (result.dropped_records || result.valid_end != end) {
        if (detail && detail_len)
            snprintf(
                detail, detail_len, "%s: %llu damaged record(s), %llu bytes, first at offset %llu",
                b->path, (unsigned long long)result.dropped_records,
                (unsigned long long)result.dropped_bytes, (unsigned long long)result.first_damage);
        return FEOX_ERR_CORRUPT;
    }
    return FEOX_OK;
}
