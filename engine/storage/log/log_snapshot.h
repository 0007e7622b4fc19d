/*
 * log_snapshot.h — the store file's index snapshot (FORMAT.md, "Index snapshot"): a hash table of
 * (key hash, record offset) slots that a clean close appends after its final flush, and that the
 * next open reads back so the store can answer point reads while its indexes load on a
 * background thread. The store's one door into the log backend besides the seam (feox_storage.h):
 * the store calls these only for a backend whose methods are feox_log_storage_methods.
 *
 * Open:   feox_log_snapshot_open before load(): a snapshot that ends the file and checks out is
 *         read into memory, and load() then replays only the records before it.
 *         feox_log_snapshot_find answers a key from it (any thread, until released);
 *         feox_log_snapshot_release frees it once the store's load is over, and cuts it off the
 *         file if the load succeeded (so appends follow the last record, as without one).
 * Close:  feox_log_close_begin (threads stopped), then a writer filled with every live key's
 *         hash and location while feox_log_snapshot_writer_flush makes every record durable
 *         (the final flush: an fsync the fill need not wait for, on the closing thread while
 *         helpers list the entries), then feox_log_snapshot_write (which flushes first if that
 *         was not done: no snapshot is written before every record it names is durable); then
 *         close().
 *         feox_log_close_take_buffers just before close(): the write buffers, empty by then
 *         after a clean close, are the caller's to free after close() returns.
 */
#ifndef FEOX_LOG_SNAPSHOT_H
#define FEOX_LOG_SNAPSHOT_H

#include <stdbool.h>
#include <stdint.h>

#include "feox_storage.h"
#include "storage/log/log_format.h"

/* True if the file ends in a valid index snapshot, now read into memory: load() will replay only
 * the records before it. False (a normal load follows) when there is none, or it is torn,
 * stale (anything after it), damaged, of another file, or cannot be read (no error is raised:
 * the error detail is left as it was). */
bool feox_log_snapshot_open(feox_storage *st);
/* The keys the snapshot holds (live at the close that wrote it; some may have expired since). */
uint64_t feox_log_snapshot_keys(feox_storage *st);
/* Answer key from the snapshot: sink->put with its record at close (the bytes valid during the
 * call), or sink->del if the snapshot does not hold it. FEOX_ERR_STALE when it cannot answer (a
 * record it names does not check out, or cannot be read: the caller waits for the full load,
 * which has its own rules for damage); NOMEM, or sink's error. Any thread, until released. */
feox_err feox_log_snapshot_find(feox_storage *st, const void *key, uint32_t key_len,
                                const feox_storage_sink *sink);
/* The store's load is over (no find() runs, none will): free the snapshot, and with cut (the
 * load succeeded) cut it and whatever follows the last valid record off the file (ftruncate;
 * no fsync: FORMAT.md says why none is needed). Errors: IO (the file then keeps it: the next
 * open finds it stale or valid, never wrong). */
feox_err feox_log_snapshot_release(feox_storage *st, bool cut);

/* The first half of close: stop the backend's threads (flusher, compactor). True if the file may
 * get a snapshot once its final flush succeeds (healthy, loaded, one file generation, no snapshot
 * from the open still ending it: what the flush cannot change). */
bool feox_log_close_begin(feox_storage *st);

/* A snapshot being built at close. */
typedef struct feox_log_snapshot_writer {
    uint8_t *buf; /* snapshot record then footer, built in place */
    size_t buf_size;
    uint64_t *slots; /* inside buf, 8-byte aligned */
    uint64_t count;  /* slots */
    uint64_t keys, key_limit;
    uint64_t seed;       /* the key hash's (the table's header, written with the record) */
    uint32_t generation; /* the locations of the file's records carry it */
    bool bad;            /* a location the snapshot cannot name: nothing is written */
    bool flushed;        /* feox_log_snapshot_writer_flush done (bad if it failed) */
} feox_log_snapshot_writer;

/* Room for about keys keys, hashed with seed (feox_log_snapshot_hash: the store passes its hash
 * index's seed when its own key hash is that function, so it hashes nothing). NOMEM. */
feox_err feox_log_snapshot_writer_init(feox_storage *st, feox_log_snapshot_writer *w, uint64_t keys,
                                       uint64_t seed);
/* Start loading the slot a key of this hash goes to (the caller adds it a few keys later). */
static inline void feox_log_snapshot_writer_prefetch(const feox_log_snapshot_writer *w,
                                                     uint32_t hash)
{
    __builtin_prefetch(w->slots + feox_log_snapshot_home(hash, w->count), 1, 1);
}
/* The final flush (after feox_log_close_begin): every record appended made durable, and whether
 * the file may still get the snapshot (the flush succeeded, every record written and fsynced);
 * if not, the writer is bad (nothing is written). Once; then it returns what it found. The
 * flush's error is not reported here (close() returns it again; the error detail is cleared).
 * Only the closing thread; the threads filling the writer may run meanwhile. */
bool feox_log_snapshot_writer_flush(feox_storage *st, feox_log_snapshot_writer *w);
/* Add a live key's version (location as the backend handed it to the store). */
void feox_log_snapshot_writer_add(feox_log_snapshot_writer *w, uint32_t hash, uint64_t location);
/* What one of several threads filling a writer at once added (feox_log_snapshot_writer_add_shared);
 * starts zeroed, merged into the writer once every thread is done (and joined). */
typedef struct feox_log_snapshot_share {
    uint64_t keys;
    bool bad;
} feox_log_snapshot_share;
/* feox_log_snapshot_writer_add for several threads at once, each with its own share: a slot is
 * claimed with an atomic compare-and-swap, so the table holds the same keys under the same lookup
 * rule (each key at the first slot from its home that was free when it came), only their order
 * along a probe run may differ. No feox_log_snapshot_writer_add meanwhile. */
void feox_log_snapshot_writer_add_shared(const feox_log_snapshot_writer *w,
                                         feox_log_snapshot_share *share, uint32_t hash,
                                         uint64_t location);
/* The shares' keys and failures into the writer, once no thread adds any more. */
void feox_log_snapshot_writer_merge(feox_log_snapshot_writer *w,
                                    const feox_log_snapshot_share *share);
/* Append the snapshot and its footer after the last record (no fsync; after
 * feox_log_snapshot_writer_flush, which it calls first if it was not) and free the writer. A
 * failure writes nothing useful (a partial write is a torn tail to the next open) and is not an
 * error of the close: nothing the store holds is lost. */
void feox_log_snapshot_write(feox_storage *st, feox_log_snapshot_writer *w);
/* Free a writer without writing. */
void feox_log_snapshot_writer_free(feox_log_snapshot_writer *w);

/* After feox_log_close_begin: the write buffer the final flush does not need (the one holding
 * nothing; the flush writes from the other), handed to the caller with its size in *cap (NULL
 * and 0 if both hold records, or it was never allocated), who may use it as scratch and frees it
 * with feox_mem_free after close(): memory the writes touched already, where fresh memory costs
 * its first touch (a close's list of entries: 8 bytes a key). */
void *feox_log_close_take_spare(feox_storage *st, size_t *cap);

/* Just before close(): the threads stopped (as feox_log_close_begin), each of the backend's two
 * write buffers that holds nothing (both, once a final flush succeeded) handed to the caller in
 * out[0] and out[1] (NULL for none), who frees them with feox_mem_free after close(); a buffer
 * still holding records stays for close()'s flush. The store frees them with the rest of its
 * memory, on the reaper thread for a large store (store_reaper.c): after many writes they are
 * 8 MiB each, and freeing them took the closing thread 1-17 ms (unmapping, or glibc merging
 * the writers' freed small blocks first when they lie in its heap). */
void feox_log_close_take_buffers(feox_storage *st, void *out[2]);

#endif
