/*
 * compaction.c — reclaiming space: rewrite the live records into <path>.compact, then rename it
 * over the store file; and the background thread that decides when.
 *
 * Steps (a crash at any point leaves either the old complete file or the new complete file):
 *   1. write everything appended so far to the old file; start = its end. Records before start
 *      are taken from the store (for_each_live: the current version of every key); records from
 *      start on (the tail) are copied from the old file in file order, after them.
 *   2. write header + live records with location < start into <path>.compact (new file id, so the
 *      checksums bind them to the new file).
 *   3. copy the tail written meanwhile without blocking writers (phase A), then block appenders
 *      (`switching`), write the last buffered records to the old file and copy the rest (phase B).
 *   4. fsync the new file, rename it over path, fsync the directory. Until the rename the old file
 *      is the store; after it, the new one, which holds everything: appends resume into it.
 *   5. tell the store the new locations (relocate), then close the old file and drop the value
 *      cache's entries of older generations (generation numbers are reused: next_generation).
 * Why this is correct: a version visited in step 2 was current at a moment after `start`, and is
 * at least as new as every version of its key appended before `start` (for_each_live first waits
 * for the writes that have appended to publish, see feox_storage.h), so every later version of that
 * key (or its delete) is in the tail, which is replayed after it. A key deleted before `start`
 * has no version in the new file at all, so no tombstone is needed.
 * Cancelled records (sync=full writes that failed, FORMAT.md) are no data: never copied. The
 * store undoes such a write in memory after its wait_durable returns, putting back a version that
 * was not current when step 2 visited the key, so a compaction does not begin while a cancelled
 * write is unanswered, gives up if step 2 meets a version in a cancelled record (answered, not yet
 * undone), and gives up before the switch if a write is cancelled while it runs.
 * If the directory fsync fails after the rename, the backend goes DEGRADED: which file a crash
 * would leave is unknown, so nothing written later can be promised durable.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/helpers.h"
#include "base/io.h"
#include "base/thread.h"
#include "storage/log/log_backend.h"
#include "storage/log/store_files.h"

#define MIN_COMPACT_BYTES (1u << 20) /* below this the file is never worth rewriting */
#define OUT_CHUNK (8u << 20)
#define CHECK_INTERVAL_MS 1000u

typedef struct relocation {
    uint64_t old_location, new_location;
    size_t key_at; /* offset of the key in the rewrite's key arena */
    uint32_t key_len;
} relocation;

typedef struct rewrite {
    feox_log_backend *b;
    int fd;
    uint64_t file_id;
    uint32_t generation;
    uint32_t old_generation;
    uint64_t start; /* old-file offset where the tail begins */
    feox_log_buffer out;
    uint64_t out_off; /* file offset of the next record in the new file */
    relocation *moves;
    size_t moves_len, moves_cap;
    feox_log_buffer keys;
    uint64_t live_bytes; /* header + the live records taken from the store */
    /* sync=full: the cancelled records of the old file when the compaction began (a copy), and
     * the backend's count of cancellations then (one more before the switch: give up). */
    feox_log_cancelled *cancelled;
    size_t cancelled_len;
    uint64_t cancellations;
    feox_err err;
} rewrite;

static feox_err flush_out(rewrite *rw)
{
    if (rw->out.len == 0)
        return FEOX_OK;
    if (feox_io_pwrite_all(rw->fd, rw->out.data, rw->out.len, rw->out_off - rw->out.len) != 0)
        return feox_log_io_error(rw->b, "compaction: cannot write the rewrite of", errno);
    pthread_mutex_lock(&rw->b->mu);
    rw->b->stats.disk_writes++;
    rw->b->stats.disk_bytes_written += rw->out.len;
    pthread_mutex_unlock(&rw->b->mu);
    rw->out.len = 0;
    return FEOX_OK;
}

static feox_err remember_move(rewrite *rw, const void *key, uint32_t key_len, uint64_t old_loc,
                              uint64_t new_loc)
{
    if (rw->moves_len == rw->moves_cap) {
        size_t cap = rw->moves_cap ? rw->moves_cap * 2 : 1024;
        relocation *m = feox_mem_realloc(rw->moves, cap * sizeof *m);
        if (!m)
            return feox_fail(FEOX_ERR_NOMEM, "compaction: cannot grow the relocation list");
        rw->moves = m;
        rw->moves_cap = cap;
    }
    feox_err err = feox_log_buffer_reserve(&rw->keys, rw->keys.len + key_len);
    if (err)
        return err;
    memcpy(rw->keys.data + rw->keys.len, key, key_len);
    rw->moves[rw->moves_len++] = (relocation){old_loc, new_loc, rw->keys.len, key_len};
    rw->keys.len += key_len;
    return FEOX_OK;
}

static feox_err emit(rewrite *rw, uint8_t op, const void *key, uint32_t key_len, const void *value,
                     uint32_t value_len, uint32_t tag, uint64_t ts_ns, uint64_t expires_at_ns,
                     uint64_t old_location)
{
    size_t size = (size_t)feox_log_record_size(key_len, value_len);
    feox_err err = feox_log_buffer_reserve(&rw->out, rw->out.len + size);
    if (err)
        return err;
    uint64_t offset = rw->out_off;
    feox_log_record_encode(rw->out.data + rw->out.len, rw->file_id, offset, op, key, key_len, value,
                           value_len, tag, ts_ns, expires_at_ns);
    rw->out.len += size;
    rw->out_off += size;
    if (op == FEOX_LOG_PUT && old_location) {
        err = remember_move(rw, key, key_len, old_location,
                            feox_log_location(rw->generation, offset));
        if (err)
            return err;
    }
    return rw->out.len >= OUT_CHUNK ? flush_out(rw) : FEOX_OK;
}

/* Why a compaction gives up when a sync=full write failed: the store undoes such a write in
 * memory after its wait_durable returned, restoring a version the rewrite would lack. */
static feox_err cancelled_meanwhile(feox_log_backend *b)
{
    return feox_fail(FEOX_ERR_IO,
                     "compaction of %s gave up: a write failed and is being undone (it is "
                     "retried later)",
                     b->path);
}

/* Whether offset (in the old file) lies in a cancelled record. */
static bool cancelled_offset(const rewrite *rw, uint64_t offset)
{
    for (size_t i = 0; i < rw->cancelled_len; i++)
        if (offset >= rw->cancelled[i].start && offset < rw->cancelled[i].end)
            return true;
    return false;
}

/* for_each_live callback: copy a live version that lies before the tail (a cold one's value is
 * read back from this backend). */
static int copy_live(void *ctx, const feox_storage_record *r)
{
    rewrite *rw = ctx;
    if (atomic_load_explicit(&rw->b->compactor_quit, memory_order_relaxed)) {
        rw->err = feox_fail(FEOX_ERR_STALE, "compaction of %s given up: the store is closing",
                            rw->b->path);
        return 1; /* the rewrite is removed; the old file stays the store */
    }
    uint64_t location = r->location;
    uint64_t offset = location & FEOX_LOG_OFFSET_MASK;
    if ((uint32_t)(location >> FEOX_LOG_OFFSET_BITS) != rw->old_generation || offset >= rw->start)
        return 0; /* in the tail (copied later) or not in this file */
    if (rw->cancelled_len && cancelled_offset(rw, offset)) {
        /* A failed write the store has not undone yet: its previous version is not current,
         * so the rewrite would lack it. */
        rw->err = cancelled_meanwhile(rw->b);
        return 1;
    }
    const void *value = r->value;
    uint8_t *cold = NULL;
    if (!value && r->value_len) {
        cold = feox_mem_alloc(r->value_len);
        if (!cold) {
            rw->err = feox_fail(FEOX_ERR_NOMEM, "compaction: cannot read a cold value");
            return 1;
        }
        rw->err = feox_log_read_value(rw->b, location, cold, r->value_len);
        value = cold;
    }
    if (!rw->err)
        rw->err = emit(rw, FEOX_LOG_PUT, r->key, r->key_len, value, r->value_len, r->tag, r->ts_ns,
                       r->expires_at_ns, location);
    rw->live_bytes += feox_log_record_size(r->key_len, r->value_len);
    feox_mem_free(cold);
    return rw->err != FEOX_OK;
}

/* feox_log_scan callback: copy a tail record (puts and deletes) in file order. */
static feox_err copy_tail(void *ctx, const feox_log_record *rec)
{
    rewrite *rw = ctx;
    return emit(rw, rec->op, rec->key, rec->key_len, rec->value, rec->value_len, rec->tag,
                rec->ts_ns, rec->expires_at_ns, feox_log_location(rw->old_generation, rec->offset));
}

static feox_err copy_tail_range(rewrite *rw, int old_fd, uint64_t old_file_id, uint64_t from,
                                uint64_t to)
{
    if (to <= from)
        return FEOX_OK;
    feox_log_scan_result result;
    feox_err err = feox_log_scan(old_fd, old_file_id, from, to, copy_tail, rw, &result);
    if (!err && result.valid_end != to)
        err = feox_fail(FEOX_ERR_CORRUPT, "compaction: damaged records in the tail of %s",
                        rw->b->path);
    return err ? err : flush_out(rw);
}

/* The generation after g. A location keeps only the low 16 bits of its file's generation
 * (log_backend.h), so the numbers cycle through 1..65535: counting on past 65535 made the 65536th
 * generation 0 in every location, so cold reads failed ("stale location") and the next
 * compaction skipped every live record as "not in this file". Reuse is safe: when a compaction
 * ends, every live version has been relocated into the new generation, the old file is closed
 * and the value cache keeps only the new generation's entries, so no location of a generation
 * survives until its number comes round again (and the file id in every record's checksum seed
 * rejects one that somehow did). */
static uint32_t next_generation(uint32_t g)
{
    return g >= FEOX_LOG_MAX_GENERATION ? 1 : g + 1;
}

static void end_switch(feox_log_backend *b, bool holding_io)
{
    pthread_mutex_lock(&b->mu);
    b->switching = false;
    if (holding_io)
        b->io_busy = false;
    pthread_cond_broadcast(&b->changed);
    pthread_mutex_unlock(&b->mu);
}

static feox_err write_new_file(rewrite *rw, int old_fd, uint64_t old_file_id, bool *switched)
{
    feox_log_backend *b = rw->b;
    feox_err err;
    rw->out.len = 0; /* the header is in the file already (create_rewrite) */
    rw->out_off = rw->live_bytes = FEOX_LOG_HEADER_SIZE;

    /* The race this order closes (issue 11 item 12): a writer appends version V of key K under
     * K's lock, is preempted before it publishes V, and the sync_upto in feox_log_compact writes
     * V to the old file, so V lies before `start`. If the scan passed K now, it would copy K's
     * previous version (or nothing, for a new key), and the tail starts after V: the rewrite
     * would lack V although V was acknowledged and a feox_flush() had fsynced it in the old
     * file. Once the rename made the rewrite the store, a crash lost V; and since no copy of V
     * existed, relocate could not move it: V kept a location in the closed old file, the next
     * compaction skipped it as "not in this file" (lost from every later file, even without a
     * crash) and a cold read of it failed. for_each_live therefore first waits until every
     * write that has appended has published (it takes each shard lock once), so the version it
     * visits is never older than one appended before `start`. */
    feox_err visit_err = b->host.for_each_live(b->host.ctx, copy_live, rw);
    if (rw->err || visit_err)
        return rw->err ? rw->err : visit_err;
    if ((err = flush_out(rw)))
        return err;

    /* Phase A: the tail written so far, while writers keep appending. */
    pthread_mutex_lock(&b->mu);
    uint64_t seq = b->append_seq;
    pthread_mutex_unlock(&b->mu);
    if ((err = feox_log_sync_upto(b, seq, false)))
        return err;
    pthread_mutex_lock(&b->mu);
    uint64_t mid = b->write_off;
    pthread_mutex_unlock(&b->mu);
    if ((err = copy_tail_range(rw, old_fd, old_file_id, rw->start, mid)))
        return err;
    /* Sync the bulk now, so the fsync done while appenders wait covers only the last tail. */
    if (feox_io_fsync(rw->fd) != 0)
        return feox_log_io_error(b, "compaction: cannot fsync the rewrite of", errno);

    /* Phase B: stop appenders, push the last buffered records to the old file, copy them. */
    pthread_mutex_lock(&b->mu);
    b->switching = true;
    seq = b->append_seq;
    pthread_mutex_unlock(&b->mu);
    if ((err = feox_log_sync_upto(b, seq, false))) {
        end_switch(b, false);
        return err;
    }
    pthread_mutex_lock(&b->mu);
    while (b->io_busy)
        pthread_cond_wait(&b->changed, &b->mu);
    b->io_busy = true; /* keep the flusher off the old file while it is replaced */
    uint64_t end = b->write_off;
    /* A cancellation needs io_busy: none can happen from here to the switch. */
    bool cancelled = b->cancellations != rw->cancellations;
    pthread_mutex_unlock(&b->mu);
    if (cancelled) {
        end_switch(b, true);
        return cancelled_meanwhile(b);
    }

    err = copy_tail_range(rw, old_fd, old_file_id, mid, end);
    if (!err && feox_io_fsync(rw->fd) != 0)
        err = feox_log_io_error(b, "compaction: cannot fsync the rewrite of", errno);
    if (!err && feox_io_rename(b->compact_path, b->path) != 0)
        err = feox_log_io_error(b, "compaction: cannot rename the rewrite over", errno);
    if (err) {
        end_switch(b, true);
        return err;
    }
    bool dir_synced = feox_io_fsync_parent_dir(b->path) == 0;
    int dir_errno = errno;

    pthread_rwlock_wrlock(&b->fd_lock); /* lock order: fd_lock before mu (see log_backend.h) */
    pthread_mutex_lock(&b->mu);
    b->old_fd = b->fd;
    b->old_generation = b->generation;
    b->old_file_id = b->file_id;
    b->fd = rw->fd;
    b->file_id = rw->file_id;
    b->generation = rw->generation;
    b->append_off = b->write_off = rw->out_off;
    b->snapshot_tail = false; /* the old file's index snapshot goes with it */
    b->written_seq = b->durable_seq = b->append_seq; /* the new file is fsynced and holds all */
    b->write_error = FEOX_OK;
    b->cancelled_len = 0; /* records of the old file, whose writers all have their answer */
    /* Not the new size: during a storm the copied tail is mostly superseded versions, and
     * counting it as live would hold off the next compaction. */
    b->live_bytes = rw->live_bytes;
    b->live_bytes_known = true;
    b->live_change = 0;
    b->stats.compactions++;
    b->stats.fsyncs += 3;
    if (!dir_synced) {
        b->degraded = true;
        b->stats.io_errors++;
    }
    b->switching = false;
    b->io_busy = false;
    pthread_cond_broadcast(&b->changed);
    pthread_mutex_unlock(&b->mu);
    pthread_rwlock_unlock(&b->fd_lock);
    *switched = true;
    rw->fd = -1; /* now owned by the backend */
    if (!dir_synced)
        return feox_fail(FEOX_ERR_DEGRADED, "compaction: cannot fsync the directory of %s: %s",
                         b->path, strerror(dir_errno));
    return FEOX_OK;
}

/* Create <path>.compact holding its header (owner kept), locked. A leftover from a crash is
 * removed only if it is a feox store of this owner; anything else there stops compaction. The
 * descriptor lives in rw->fd only, but it is in store_files.c's table from its open on, so the
 * child of a fork() during the compaction closes it (its lock becomes the store's at the rename,
 * and a child keeping it would keep the store locked while it lives). */
static feox_err create_rewrite(rewrite *rw)
{
    feox_log_backend *b = rw->b;
    uint8_t header[FEOX_LOG_HEADER_SIZE];
    feox_log_header_encode(header, rw->file_id, b->host.now_ns ? b->host.now_ns(b->host.ctx) : 0,
                           b->owner_hash);
    bool existed;
    feox_err err = feox_store_file_create(b->compact_path, header, &rw->fd, &existed);
    if (!err || !existed)
        return err;
    err = feox_store_file_remove_leftover(b->compact_path, b->owner_hash);
    if (err) {
        char why[256]; /* the detail buffer cannot be an argument of its own rewrite */
        snprintf(why, sizeof why, "%s", feox_error_detail());
        return feox_fail(err == FEOX_ERR_LOCKED ? err : FEOX_ERR_IO,
                         "compaction needs the name %s, which holds a file it did not create "
                         "(left as it is): %s",
                         b->compact_path, why);
    }
    return feox_store_file_create(b->compact_path, header, &rw->fd, &existed);
}

/* Unlink the failed rewrite, only if its name still names it. */
static void remove_rewrite(feox_log_backend *b, int fd)
{
    struct stat by_fd, by_path;
    if (fstat(fd, &by_fd) == 0 && stat(b->compact_path, &by_path) == 0 &&
        by_fd.st_dev == by_path.st_dev && by_fd.st_ino == by_path.st_ino)
        feox_io_unlink(b->compact_path);
}

/* sync=full (mu held): a compaction waits until every cancelled write has its answer, and copies
 * the cancelled records' places for copy_live. */
static feox_err take_cancelled(feox_log_backend *b, rewrite *rw)
{
    rw->cancellations = b->cancellations;
    if (!b->cancelled_len)
        return FEOX_OK;
    if (feox_log_cancellations_unanswered(b))
        return cancelled_meanwhile(b);
    rw->cancelled = feox_mem_alloc(b->cancelled_len * sizeof *rw->cancelled);
    if (!rw->cancelled)
        return feox_fail(FEOX_ERR_NOMEM, "compaction: cannot copy the cancelled records' list");
    memcpy(rw->cancelled, b->cancelled, b->cancelled_len * sizeof *rw->cancelled);
    rw->cancelled_len = b->cancelled_len;
    return FEOX_OK;
}

feox_err feox_log_compact(feox_log_backend *b)
{
    pthread_mutex_lock(&b->compact_mu);
    pthread_mutex_lock(&b->mu);
    feox_err err = FEOX_OK;
    if (b->degraded)
        err = feox_fail(FEOX_ERR_DEGRADED, "an earlier fsync of %s failed", b->path);
    else if (!b->loaded)
        err = feox_fail(FEOX_ERR_INVALID_ARGUMENT, "compaction before the load of %s", b->path);
    uint64_t seq = b->append_seq;
    pthread_mutex_unlock(&b->mu);
    if (!err)
        err = feox_log_sync_upto(b, seq, false);
    if (err) {
        pthread_mutex_unlock(&b->compact_mu);
        return err;
    }

    rewrite rw = {.b = b, .fd = -1};
    pthread_mutex_lock(&b->mu);
    err = take_cancelled(b, &rw);
    if (err) {
        pthread_mutex_unlock(&b->mu);
        pthread_mutex_unlock(&b->compact_mu);
        return err;
    }
    rw.start = b->write_off;
    rw.old_generation = b->generation;
    rw.generation = next_generation(b->generation);
    rw.file_id = feox_log_new_file_id(b->file_id);
    int old_fd = b->fd; /* only compaction replaces it, and compact_mu is held */
    uint64_t old_file_id = b->file_id;
    pthread_mutex_unlock(&b->mu);

    bool switched = false;
    err = create_rewrite(&rw); /* locked before it takes the name */
    if (!err)
        err = write_new_file(&rw, old_fd, old_file_id, &switched);

    if (!switched) {
        if (rw.fd >= 0) {
            remove_rewrite(b, rw.fd);
            feox_store_file_close(rw.fd);
        }
        pthread_mutex_lock(&b->mu);
        b->stats.io_errors += err == FEOX_ERR_IO || err == FEOX_ERR_DISK_FULL;
        pthread_mutex_unlock(&b->mu);
    } else {
        for (size_t i = 0; i < rw.moves_len; i++) {
            const relocation *m = &rw.moves[i];
            b->host.relocate(b->host.ctx, rw.keys.data + m->key_at, m->key_len, m->old_location,
                              m->new_location);
        }
        pthread_rwlock_wrlock(&b->fd_lock);
        feox_store_file_close(b->old_fd);
        b->old_fd = -1;
        pthread_rwlock_unlock(&b->fd_lock);
        /* Every live version is in the new generation now; readers cache a value only while
         * they hold fd_lock, so no entry of an older generation can arrive after this. */
        feox_value_cache_keep_only(b->cache, ~FEOX_LOG_OFFSET_MASK,
                                   feox_log_location(rw.generation, 0));
    }
    feox_mem_free(rw.out.data);
    feox_mem_free(rw.keys.data);
    feox_mem_free(rw.moves);
    feox_mem_free(rw.cancelled);
    pthread_mutex_unlock(&b->compact_mu);
    return err;
}

typedef struct live_sum {
    const feox_log_backend *b;
    uint64_t bytes;
} live_sum;

/* for_each_live callback: sum the live bytes; stop when the store closes. */
static int add_live(void *ctx, const feox_storage_record *r)
{
    live_sum *sum = ctx;
    sum->bytes += feox_log_record_size(r->key_len, r->value_len);
    return atomic_load_explicit(&sum->b->compactor_quit, memory_order_relaxed);
}

/* The live bytes right after the store's load, from its totals (no walk: at 1M keys a walk is
 * ~100 ms of CPU, and the file of a store just opened is rarely worth rewriting). A store still
 * loading (STALE) or a host without the call leaves them unknown: the check walks as before.
 * Taken by the first compaction check or the first feox_get_stats, whichever comes first; the
 * appends since the load stay counted in live_change. */
void feox_log_take_live_bytes_from_load(feox_log_backend *b)
{
    pthread_mutex_lock(&b->mu);
    bool known = b->live_bytes_known;
    pthread_mutex_unlock(&b->mu);
    uint64_t records, bytes;
    if (known || !b->host.loaded_totals ||
        b->host.loaded_totals(b->host.ctx, &records, &bytes) != FEOX_OK)
        return;
    pthread_mutex_lock(&b->mu);
    if (!b->live_bytes_known) {
        b->live_bytes = FEOX_LOG_HEADER_SIZE + records * FEOX_LOG_RECORD_OVERHEAD + bytes;
        b->live_bytes_known = true;
    }
    pthread_mutex_unlock(&b->mu);
}

/* Decide whether the file is worth rewriting: > 2x the live bytes and above the minimum. The
 * live bytes are measured (one pass over the index) only when the file has grown past twice the
 * last measurement (or the load's figure), so the cost is amortised over the growth. */
void feox_log_compact_if_worth(feox_log_backend *b)
{
    feox_log_take_live_bytes_from_load(b);
    pthread_mutex_lock(&b->mu);
    bool candidate = !b->degraded && !b->stopping &&
                     b->append_off >= MIN_COMPACT_BYTES && b->append_off > 2 * b->live_bytes;
    int64_t change_before_walk = b->live_change; /* in the walk's sum */
    pthread_mutex_unlock(&b->mu);
    if (!candidate)
        return;
    live_sum sum = {b, FEOX_LOG_HEADER_SIZE};
    if (b->host.for_each_live(b->host.ctx, add_live, &sum) != FEOX_OK ||
        atomic_load_explicit(&b->compactor_quit, memory_order_relaxed))
        return; /* a partial sum is no measurement */
    pthread_mutex_lock(&b->mu);
    b->live_bytes = sum.bytes;
    b->live_bytes_known = true;
    /* What writes changed during the walk stays (the walk may have seen part of it). */
    b->live_change -= change_before_walk;
    b->live_walks++;
    bool worth = b->append_off > 2 * sum.bytes;
    pthread_mutex_unlock(&b->mu);
    if (worth)
        feox_log_compact(b); /* errors are counted in stats; the next check retries */
}

static void *compactor_main(void *arg)
{
    feox_log_backend *b = arg;
    pthread_mutex_lock(&b->mu);
    while (!b->stopping) {
        struct timespec deadline = feox_deadline_after_ms(CHECK_INTERVAL_MS);
        pthread_cond_timedwait(&b->compactor_wake, &b->mu, &deadline);
        if (b->stopping)
            break;
        pthread_mutex_unlock(&b->mu);
        feox_log_compact_if_worth(b);
        pthread_mutex_lock(&b->mu);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

feox_err feox_log_compactor_start(feox_log_backend *b)
{
    if (feox_thread_start(&b->compactor, compactor_main, b) != 0)
        return feox_fail(FEOX_ERR_NOMEM, "cannot start the compaction thread");
    pthread_mutex_lock(&b->mu);
    b->compactor_started = true;
    pthread_mutex_unlock(&b->mu);
    return FEOX_OK;
}

void feox_log_compactor_stop(feox_log_backend *b)
{
    if (!b->compactor_started)
        return;
    pthread_mutex_lock(&b->mu);
    b->stopping = true;
    pthread_cond_broadcast(&b->compactor_wake);
    pthread_mutex_unlock(&b->mu);
    pthread_join(b->compactor, NULL);
    b->compactor_started = false;
}

void feox_log_compactor_poke(feox_log_backend *b)
{
    pthread_mutex_lock(&b->mu);
    bool candidate = b->compactor_started && b->append_off >= MIN_COMPACT_BYTES &&
                     b->append_off > 2 * b->live_bytes;
    if (candidate)
        pthread_cond_signal(&b->compactor_wake);
    pthread_mutex_unlock(&b->mu);
}
