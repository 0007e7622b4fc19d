/*
 * log_backend.h — the single-file log backend's state, shared by its files. The backend's top,
 * log_backend.c (the "log" feox_storage_methods: open, load, append, flusher, flush, close),
 * uses the helpers below it and nothing uses it back:
 *   compaction.c (rewrite and switch, the compactor thread)
 *   recovery.c   (scan, replay, check)      log_owner.c (set_owner)
 *   log_read.c   (read a value back)        log_sync.c  (write/fsync the buffers: group commit)
 *   log_buffer.c (growable buffers)         file_lock.c, store_files.c, value_cache.c, log_format.c
 *   log_snapshot.c (the index snapshot a clean close appends and the next open serves reads from;
 *                its functions, log_snapshot.h, are the one door the store has besides the seam)
 * Nothing outside them (and their tests) includes it; the store reaches the backend only through
 * feox_storage.h (feox_log_storage_methods, in log_storage.h) and log_snapshot.h.
 *
 * Locking
 *   mu        protects every field below marked [mu]. Appenders hold it only to memcpy a record
 *             into the active buffer; I/O is never done while holding it.
 *   io_busy   [mu] ownership of the file for writing: the thread that sets it (the flusher, a
 *             flush()/wait_durable() caller acting as group-commit leader, or compaction) is the
 *             only one writing or fsyncing until it clears it. Waiters sleep on `changed`.
 *   fd_lock   read-held by read_value/check while they pread; write-held to swap files.
 *             Lock order: fd_lock before mu, never the other way.
 * Locations handed to the store are (generation << 48) | offset: a compaction bumps the
 * generation, so a location from the old file can never be mistaken for one in the new file
 * (the numbers cycle through 1..65535; compaction.c says why reuse is safe).
 */
#ifndef FEOX_LOG_BACKEND_H
#define FEOX_LOG_BACKEND_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "storage/log/log_format.h"
#include "feox_storage.h"
#include "storage/log/value_cache.h"

#define FEOX_LOG_OFFSET_BITS 48
#define FEOX_LOG_OFFSET_MASK ((UINT64_C(1) << FEOX_LOG_OFFSET_BITS) - 1)
/* Generations cycle through 1..FEOX_LOG_MAX_GENERATION (compaction.c: next_generation). */
#define FEOX_LOG_MAX_GENERATION ((UINT32_C(1) << (64 - FEOX_LOG_OFFSET_BITS)) - 1)

typedef struct feox_log_buffer {
    uint8_t *data;
    size_t len, cap;
} feox_log_buffer;

/* Grow buf so it holds at least need bytes (log_buffer.c). Errors: NOMEM (buf unchanged). */
feox_err feox_log_buffer_reserve(feox_log_buffer *buf, size_t need);

typedef struct feox_log_counters {
    uint64_t disk_writes, disk_bytes_written, disk_reads, disk_bytes_read;
    uint64_t flushes, fsyncs, io_errors, compactions;
    uint64_t recovered_records, recovery_dropped_records, recovery_dropped_bytes, recovery_ns;
} feox_log_counters;

/* sync=full: the records one failure (or a run of failures back to back) cancelled (FORMAT.md,
 * "Cancelled records"; log_sync.c). Their seqs are answered with the error by wait_durable, and
 * compaction keeps off their versions until the store has undone them. */
typedef struct feox_log_cancelled {
    uint64_t first_seq, last_seq; /* the cancelled records' sequence numbers */
    uint64_t start, end;          /* their bytes, in the file of `generation` */
    uint32_t generation;
    uint64_t unanswered; /* seqs whose wait_durable has not yet returned the error */
    int write_errno;     /* errno of the write that failed (ENOSPC: DISK_FULL, else IO) */
} feox_log_cancelled;

typedef struct feox_log_backend {
    feox_storage base; /* first, so a feox_storage * is a feox_log_backend * */
    feox_storage_host host;
    char *path;
    char *compact_path; /* <path>.compact, the rewrite in progress */
    feox_sync_mode sync;
    uint32_t flush_interval_ms;
    bool compaction_enabled;
    /* feox_config.read_only: fd is O_RDONLY with a shared flock; nothing is ever written (no
     * append, flush, compaction, owner rewrite, tail cut or snapshot), no thread is started. */
    bool read_only;
    /* Replay keeps values resident up to this many bytes (max_memory / 2; 0 = all), and leaves
     * the rest cold on disk, read back through `cache`. */
    uint64_t resident_budget;
    feox_value_cache *cache;

    pthread_mutex_t mu;
    pthread_cond_t changed;      /* [mu] io finished, buffer drained, switch ended, stopping */
    pthread_cond_t flusher_wake; /* [mu] buffer grew past the kick threshold, or stopping */
    pthread_rwlock_t fd_lock;

    int fd;              /* [mu+fd_lock] the store file */
    uint64_t file_id;    /* [mu] id in its header, part of every record's checksum seed */
    uint64_t owner_hash; /* owner recorded in the header; compaction's rewrite keeps it */
    uint32_t generation; /* [mu] top bits of the locations of records in fd */
    int old_fd;          /* [fd_lock] previous file, kept readable until relocation ends */
    uint32_t old_generation;
    uint64_t old_file_id;

    feox_log_buffer active;  /* [mu] records appended, not yet handed to a writer */
    feox_log_buffer pending; /* [mu+io_busy] records being written (kept if the write fails) */
    uint64_t append_off;     /* [mu] file offset of the next appended record */
    uint64_t write_off;      /* [mu] file offset where pending goes: end of written data */
    uint64_t append_seq;     /* [mu] sequence number of the last appended record */
    uint64_t pending_seq;    /* [mu] last sequence number in pending */
    uint64_t written_seq;    /* [mu] everything up to it is in the file (page cache) */
    uint64_t durable_seq;    /* [mu] everything up to it is fsynced */
    bool io_busy, degraded, switching, loaded, stopping;
    feox_err write_error; /* [mu] error of the last failed write (cleared by a good one) */
    /* [mu] sync=full: the cancelled records not yet gone with a compaction, in seq order;
     * cancelled_through is the last cancelled seq (records up to it after written_seq are all
     * cancelled, and still to be written so the offsets after them stay right); cancellations
     * counts failures that cancelled something (compaction gives up if one happens meanwhile). */
    feox_log_cancelled *cancelled;
    size_t cancelled_len, cancelled_cap;
    uint64_t cancelled_through, cancellations;

    pthread_t flusher;
    bool flusher_started;
    pthread_t compactor;
    bool compactor_started;
    pthread_cond_t compactor_wake; /* [mu] */
    pthread_mutex_t compact_mu;    /* one compaction at a time */
    /* Set once the backend stops its threads (a close): a walk of the live records or a rewrite
     * under way gives up at its next record instead of running to its end. */
    _Atomic bool compactor_quit;
    uint64_t live_bytes;           /* [mu] live bytes measured by the last compaction check */
    bool live_bytes_known;         /* [mu] live_bytes was measured, or taken from the load */
    uint64_t live_walks;           /* [mu] compaction checks that walked the index to measure */
    /* [mu] What the appends since live_bytes changed (feox_stats.file_live_bytes is the sum;
     * the compaction trigger uses live_bytes alone): a put adds its record, a put or delete
     * subtracts the version it replaced if that lies in the current file. Set to 0 with
     * live_bytes by a measurement or a compaction; kept when live_bytes is taken from the load
     * (the load's figure is as of its end, and no append comes before). */
    int64_t live_change;

    feox_log_counters stats; /* [mu] */

    /* The index snapshot found at open (log_snapshot.c): its record read into memory, used
     * (read only, by any thread) until the store's load is over; then freed and cut off. */
    uint8_t *snapshot;
    uint64_t snapshot_off; /* where it starts in the file (the replay's end); 0 = none */
    /* [mu+io_busy] The file still ends in the snapshot the open used, past write_off: kept
     * while nothing is written (a close then leaves the file as it was); the first write cuts
     * it off before it writes (log_sync.c), a compaction's new file has none. */
    bool snapshot_tail;
} feox_log_backend;

static inline feox_log_backend *feox_log_of(feox_storage *b)
{
    return (feox_log_backend *)b;
}

static inline uint64_t feox_log_location(uint32_t generation, uint64_t offset)
{
    return (uint64_t)generation << FEOX_LOG_OFFSET_BITS | offset;
}

/* log_sync.c: write (and with durable, fsync) everything appended up to seq. */
feox_err feox_log_sync_upto(feox_log_backend *b, uint64_t seq, bool durable);
/* log_sync.c: wait_durable (sync=full): FEOX_OK once the record of seq is fsynced; the error of
 * the failed write (DISK_FULL or IO) if it was cancelled; DEGRADED after a failed fsync. */
feox_err feox_log_wait_durable(feox_log_backend *b, uint64_t seq);
/* log_sync.c, with mu held: whether a cancelled seq's wait_durable has not yet returned (its
 * version is still published: compaction waits until none is). */
bool feox_log_cancellations_unanswered(const feox_log_backend *b);
/* log_sync.c: map an errno from a failed write to DISK_FULL or IO, with a detail. */
feox_err feox_log_io_error(feox_log_backend *b, const char *what, int err);

/* log_read.c: read value_len bytes of the version at location into buf (buffers, cache, file). */
feox_err feox_log_read_value(feox_log_backend *b, uint64_t location, void *buf,
                             uint32_t value_len);

/* file_lock.c: open the feox store at path (verified before any write), or, if nothing is there
 * and new_header is not NULL, create it holding new_header (*created = true); take an exclusive
 * flock and make sure the locked inode is still the one named path (a compaction in another
 * process may have renamed over it). With read_only: open it O_RDONLY, never create it, and take
 * a shared flock. Errors: NOT_FOUND, FORMAT, CORRUPT, LOCKED, IO, DISK_FULL, READ_ONLY (the
 * read-write descriptor refused: EACCES, EPERM, EROFS). */
feox_err feox_log_open_locked(const char *path, const uint8_t *new_header, bool read_only,
                              int *fd_out, bool *created);

/* recovery.c */
typedef struct feox_log_scan_result {
    uint64_t records;         /* valid records visited */
    uint64_t valid_end;       /* end of the last valid record or skipped snapshot */
    uint64_t data_end;        /* end of the last valid put or delete (where appends start) */
    uint64_t dropped_records; /* damaged records or garbage runs skipped */
    uint64_t dropped_bytes;
    uint64_t first_damage; /* offset of the first damage, 0 = none */
} feox_log_scan_result;
typedef feox_err (*feox_log_visit_fn)(void *ctx, const feox_log_record *rec);
/* Scan [start, end) of fd (records of file_id) in large chunks, calling visit (may be NULL) for
 * every valid record in file order; damage is skipped by the rule in FORMAT.md and counted. A
 * visit error or a read error stops the scan and is returned. */
feox_err feox_log_scan(int fd, uint64_t file_id, uint64_t start, uint64_t end,
                       feox_log_visit_fn visit, void *ctx, feox_log_scan_result *out);
/* The same over an image in memory (used by the fuzz target and by feox_log_scan's tests). */
feox_err feox_log_scan_memory(const uint8_t *image, uint64_t file_id, uint64_t start, uint64_t end,
                              feox_log_visit_fn visit, void *ctx, feox_log_scan_result *out);
/* Send every record of the file to sink (once, at open); cuts a torn tail. */
feox_err feox_log_replay(feox_log_backend *b, const feox_storage_sink *sink);
feox_err feox_log_check(feox_log_backend *b, char *detail, size_t detail_len);

/* compaction.c */
feox_err feox_log_compact(feox_log_backend *b);
feox_err feox_log_compactor_start(feox_log_backend *b);
void feox_log_compactor_stop(feox_log_backend *b);
/* The flusher tells the compactor the file grew (it decides whether to measure). */
void feox_log_compactor_poke(feox_log_backend *b);
/* The compactor's check (also for tests): rewrite the file if it is over twice the live bytes
 * and past the minimum; the live bytes are taken from the store's load the first time (no walk),
 * measured by a walk of the index only once the file has grown past twice the last figure. */
void feox_log_compact_if_worth(feox_log_backend *b);

/* compaction.c: if live_bytes is not known yet, take it from the store's load (host
 * loaded_totals; nothing if the store is still loading). Takes mu: call it with no lock held. */
void feox_log_take_live_bytes_from_load(feox_log_backend *b);

/* log_backend.c: stop the flusher and the compactor (idempotent). */
void feox_log_stop_threads(feox_log_backend *b);

/* log_owner.c: rewrite the file header with owner_hash (feox_set_owner). */
feox_err feox_log_set_owner(feox_log_backend *b, uint64_t owner_hash);

#endif
