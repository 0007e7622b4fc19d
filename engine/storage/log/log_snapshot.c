/*
 * log_snapshot.c — the index snapshot (format in FORMAT.md, "Index snapshot"; the store's side
 * of it in log_snapshot.h): found and checked at open, read from by point reads while the store
 * loads, cut off when the load is over; built and appended at a clean close.
 *
 * Why a snapshot is never wrong. It is used only if the file's last 56 bytes are a footer record
 * valid at that offset (checksum bound to the file id and the offset) naming a snapshot record
 * that ends exactly where the footer starts, whose whole-record checksum (also bound to file id
 * and offset) matches and whose key (the offset it covers up to) is its own offset. A close
 * writes both after its final flush and nothing after them; anything appended later (by any
 * build) or cut off (an older build drops them as a torn tail) leaves no valid footer at the
 * end. So the snapshot describes every record before it, and nothing was written after it.
 * Reads served from it then see what the indexes would: each slot names the record of a key's
 * live version at close; a deleted key has no slot; expiry is checked by the store at read time.
 *
 * Durability: the snapshot is not fsynced. The records before it were (the close's final flush,
 * or earlier), and a torn or half-persisted snapshot or footer fails its checksum at the next
 * open, which then loads normally; the scanner skips a whole-by-header snapshot and drops a
 * torn one with the tail.
 */
#include "storage/log/log_snapshot.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/helpers.h"
#include "base/io.h"
#include "storage/log/log_backend.h"

/* Where the parts of a snapshot record are, from its start. */
#define SNAP_KEY_AT FEOX_LOG_RECORD_FIXED
#define SNAP_TABLE_AT (SNAP_KEY_AT + FEOX_LOG_SNAPSHOT_KEY)
#define SNAP_SLOTS_AT (SNAP_TABLE_AT + FEOX_LOG_SNAPSHOT_HEADER)
_Static_assert(SNAP_SLOTS_AT % 8 == 0, "slots are 8-byte aligned in a page-aligned buffer");

/* A point read's first pread: most records fit, a larger one is read again whole. */
#define FIRST_READ 4096u

/* Table header fields (offsets inside the 64-byte table header). */
#define T_MAGIC 0
#define T_VERSION 4
#define T_SLOTS 8
#define T_KEYS 16
#define T_SEED 24

static const uint64_t *slots_of(const uint8_t *snap)
{
    return (const uint64_t *)(snap + SNAP_SLOTS_AT);
}

/* ---- open ---- */

/* The footer at size - 56, if it is a valid one: the offset of the snapshot it names. */
static bool read_footer(feox_log_backend *b, uint64_t size, uint64_t *snap_off)
{
    uint8_t footer[FEOX_LOG_SNAPSHOT_FOOTER_SIZE];
    uint64_t at = size - sizeof footer, record_size;
    feox_log_record rec;
    size_t done;
    if (feox_io_pread_all(b->fd, footer, sizeof footer, at, &done) != 0 ||
        !feox_log_record_header_valid(footer, b->file_id, at, &record_size) ||
        footer[4] != FEOX_LOG_SNAPSHOT_FOOTER || record_size != sizeof footer ||
        !feox_log_record_decode(footer, record_size, b->file_id, at, &rec))
        return false;
    *snap_off = feox_get_le64(rec.key);
    return *snap_off >= FEOX_LOG_HEADER_SIZE && *snap_off < at;
}

/* The snapshot record at snap_off, ending at footer_at, read whole and checked; NULL if not. */
static uint8_t *read_snapshot(feox_log_backend *b, uint64_t snap_off, uint64_t footer_at)
{
    uint8_t head[FEOX_LOG_RECORD_FIXED];
    uint64_t record_size;
    size_t done;
    if (footer_at - snap_off < sizeof head ||
        feox_io_pread_all(b->fd, head, sizeof head, snap_off, &done) != 0 ||
        !feox_log_record_header_valid(head, b->file_id, snap_off, &record_size) ||
        head[4] != FEOX_LOG_SNAPSHOT || record_size != footer_at - snap_off)
        return NULL;
    uint8_t *snap = feox_mem_alloc_large((size_t)record_size);
    feox_log_record rec;
    if (!snap || feox_io_pread_all(b->fd, snap, (size_t)record_size, snap_off, &done) != 0 ||
        !feox_log_record_decode(snap, record_size, b->file_id, snap_off, &rec) ||
        feox_get_le64(rec.key) != snap_off) {
        feox_mem_free_large(snap);
        return NULL;
    }
    const uint8_t *t = snap + SNAP_TABLE_AT;
    uint64_t slots = feox_get_le64(t + T_SLOTS), keys = feox_get_le64(t + T_KEYS);
    if (feox_get_le32(t + T_MAGIC) != FEOX_LOG_SNAPSHOT_MAGIC ||
        feox_get_le32(t + T_VERSION) != FEOX_LOG_SNAPSHOT_VERSION ||
        slots * 8 != rec.value_len - FEOX_LOG_SNAPSHOT_HEADER || keys >= slots) {
        feox_mem_free_large(snap);
        return NULL;
    }
    return snap;
}

bool feox_log_snapshot_open(feox_storage *st)
{
    feox_log_backend *b = feox_log_of(st);
    struct stat sb;
    if (b->snapshot || fstat(b->fd, &sb) != 0 ||
        (uint64_t)sb.st_size < FEOX_LOG_HEADER_SIZE + FEOX_LOG_SNAPSHOT_FOOTER_SIZE)
        return false;
    uint64_t size = (uint64_t)sb.st_size, snap_off;
    if (!read_footer(b, size, &snap_off))
        return false;
    uint8_t *snap = read_snapshot(b, snap_off, size - FEOX_LOG_SNAPSHOT_FOOTER_SIZE);
    if (!snap)
        return false;
    b->snapshot = snap;
    b->snapshot_off = snap_off;
    return true;
}

uint64_t feox_log_snapshot_keys(feox_storage *st)
{
    const uint8_t *snap = feox_log_of(st)->snapshot;
    return snap ? feox_get_le64(snap + SNAP_TABLE_AT + T_KEYS) : 0;
}

/* ---- a point read ---- */

/* The record at offset, if it is a valid put or delete of key: 1 and the record in *rec (its
 * bytes in *buf or *big, which the caller frees), 0 if it is another key's, -1 if it does not
 * check out or cannot be read (STALE), -2 for no memory. */
static int read_named(feox_log_backend *b, uint64_t offset, const void *key, uint32_t key_len,
                      uint8_t buf[FIRST_READ], uint8_t **big, feox_log_record *rec)
{
    if (offset < FEOX_LOG_HEADER_SIZE || offset >= b->snapshot_off)
        return -1;
    uint64_t room = b->snapshot_off - offset, size;
    size_t want = room < FIRST_READ ? (size_t)room : FIRST_READ, done;
    if (want < FEOX_LOG_RECORD_OVERHEAD || feox_io_pread_all(b->fd, buf, want, offset, &done) != 0)
        return -1;
    if (!feox_log_record_header_valid(buf, b->file_id, offset, &size) || size > room ||
        (buf[4] != FEOX_LOG_PUT && buf[4] != FEOX_LOG_DELETE))
        return -1;
    const uint8_t *whole = buf;
    if (size > want) {
        *big = feox_mem_alloc((size_t)size);
        if (!*big)
            return -2;
        if (feox_io_pread_all(b->fd, *big, (size_t)size, offset, &done) != 0)
            return -1;
        whole = *big;
    }
    if (!feox_log_record_decode(whole, size, b->file_id, offset, rec))
        return -1;
    return rec->key_len == key_len && memcmp(rec->key, key, key_len) == 0 ? 1 : 0;
}

feox_err feox_log_snapshot_find(feox_storage *st, const void *key, uint32_t key_len,
                                const feox_storage_sink *sink)
{
    feox_log_backend *b = feox_log_of(st);
    const uint8_t *snap = b->snapshot;
    if (!snap)
        return feox_fail(FEOX_ERR_STALE, "%s has no index snapshot", b->path);
    const uint64_t *slots = slots_of(snap);
    const uint8_t *t = snap + SNAP_TABLE_AT;
    uint64_t count = feox_get_le64(t + T_SLOTS);
    uint32_t hash = feox_log_snapshot_hash(key, key_len, feox_get_le64(t + T_SEED));
    uint64_t tag = feox_log_snapshot_tag(hash), i = feox_log_snapshot_home(hash, count);
    for (uint64_t probes = 0; probes < count; probes++, i = i + 1 < count ? i + 1 : 0) {
        uint64_t slot = feox_get_le64((const uint8_t *)(slots + i));
        if (slot == 0)
            break;
        if (feox_log_snapshot_tag((uint32_t)slot) != tag)
            continue;
        uint8_t buf[FIRST_READ], *big = NULL;
        feox_log_record rec;
        int found =
            read_named(b, slot >> FEOX_LOG_SNAPSHOT_TAG_BITS, key, key_len, buf, &big, &rec);
        feox_err err = FEOX_OK;
        if (found == 1 && rec.op == FEOX_LOG_PUT) {
            feox_storage_record out = {.key = rec.key,
                                       .key_len = rec.key_len,
                                       .value = rec.value,
                                       .value_len = rec.value_len,
                                       .tag = rec.tag,
                                       .ts_ns = rec.ts_ns,
                                       .expires_at_ns = rec.expires_at_ns,
                                       .location = feox_log_location(b->generation, rec.offset)};
            err = sink->put(sink->ctx, &out);
        } else if (found == 1) {
            err = sink->del(sink->ctx, key, key_len, rec.ts_ns);
        } else if (found == -1) {
            err = feox_fail(FEOX_ERR_STALE,
                            "%s: the record at offset %llu named by the index snapshot does not "
                            "check out",
                            b->path, (unsigned long long)(slot >> FEOX_LOG_SNAPSHOT_TAG_BITS));
        } else if (found == -2) {
            err = feox_fail(FEOX_ERR_NOMEM, "cannot allocate a read buffer");
        }
        feox_mem_free(big);
        if (found != 0)
            return err;
    }
    return sink->del(sink->ctx, key, key_len, 0);
}

feox_err feox_log_snapshot_release(feox_storage *st, bool cut)
{
    feox_log_backend *b = feox_log_of(st);
    feox_mem_free_large(b->snapshot);
    b->snapshot = NULL;
    if (!b->snapshot_off)
        return FEOX_OK;
    pthread_mutex_lock(&b->mu);
    uint64_t end = b->append_off; /* the replay's valid end; nothing is appended yet */
    bool damaged_tail = end < b->snapshot_off;
    pthread_mutex_unlock(&b->mu);
    b->snapshot_off = 0;
    if (!cut || b->read_only) /* a read-only store leaves the file as it is */
        return FEOX_OK;
    if (!damaged_tail) {
        /* Kept, still the file's end and exact, while nothing is written: the first write cuts
         * it (log_sync.c), and a close with nothing written leaves the file as it is. */
        pthread_mutex_lock(&b->mu);
        b->snapshot_tail = true;
        pthread_mutex_unlock(&b->mu);
        return FEOX_OK;
    }
    /* Damage before it: cut with it now, as a torn tail is (fsynced). */
    if (feox_io_ftruncate(b->fd, (off_t)end) != 0 || feox_io_fsync(b->fd) != 0)
        return feox_log_io_error(b, "cannot cut the index snapshot off", errno);
    return FEOX_OK;
}

/* ---- close ---- */

/* What a snapshot needs besides the final flush's success [b->mu]. snapshot_tail: the file
 * still ends in the snapshot it was opened with (nothing written since), which is exact: it
 * stays, and no other is written. A read-only store writes none. */
static bool may_snapshot_locked(const feox_log_backend *b)
{
    return !b->read_only && b->loaded && !b->degraded && !b->write_error && !b->snapshot_off &&
           !b->snapshot_tail && b->old_fd < 0 && b->fd >= 0;
}

bool feox_log_close_begin(feox_storage *st)
{
    feox_log_backend *b = feox_log_of(st);
    feox_log_stop_threads(b);
    pthread_mutex_lock(&b->mu);
    /* (a snapshot still ending the file goes with the flush's first write, if it has bytes to
     * write: log_sync.c cuts it first) */
    bool unwritten = b->active.len || b->pending.len;
    bool may = !b->read_only && b->loaded && !b->degraded && !b->write_error && !b->snapshot_off &&
               (!b->snapshot_tail || unwritten) && b->old_fd < 0 && b->fd >= 0;
    pthread_mutex_unlock(&b->mu);
    return may;
}

bool feox_log_snapshot_writer_flush(feox_storage *st, feox_log_snapshot_writer *w)
{
    if (w->flushed)
        return !w->bad;
    feox_log_backend *b = feox_log_of(st);
    pthread_mutex_lock(&b->mu);
    uint64_t seq = b->append_seq;
    bool dirty = b->durable_seq < seq || b->durable_seq < b->written_seq || b->degraded;
    pthread_mutex_unlock(&b->mu);
    feox_err err = dirty ? feox_log_sync_upto(b, seq, true) : FEOX_OK;
    pthread_mutex_lock(&b->mu);
    bool may = !err && may_snapshot_locked(b) && b->durable_seq == b->append_seq &&
               b->write_off == b->append_off && b->active.len == 0 && b->pending.len == 0;
    pthread_mutex_unlock(&b->mu);
    if (err)
        feox_clear_error_detail(); /* close() reports the failed flush again */
    w->flushed = true;
    if (!may)
        w->bad = true;
    return may;
}

feox_err feox_log_snapshot_writer_init(feox_storage *st, feox_log_snapshot_writer *w, uint64_t keys,
                                       uint64_t seed)
{
    feox_log_backend *b = feox_log_of(st);
    memset(w, 0, sizeof *w);
    uint64_t slots = keys + keys / 3 + FEOX_LOG_SNAPSHOT_MIN_SLOTS; /* at most 3/4 full */
    if (slots > FEOX_LOG_SNAPSHOT_MAX_SLOTS)
        return feox_fail(FEOX_ERR_INVALID_ARGUMENT, "too many keys for an index snapshot");
    uint64_t record =
        feox_log_record_size(FEOX_LOG_SNAPSHOT_KEY, FEOX_LOG_SNAPSHOT_HEADER + slots * 8);
    w->buf_size = (size_t)(record + FEOX_LOG_SNAPSHOT_FOOTER_SIZE);
    w->buf = feox_mem_calloc_scratch(w->buf_size); /* (not from the malloc heap: see alloc.h) */
    if (!w->buf)
        return feox_fail(FEOX_ERR_NOMEM, "cannot allocate an index snapshot");
    w->slots = (uint64_t *)(w->buf + SNAP_SLOTS_AT);
    w->count = slots;
    w->key_limit = slots - slots / 4;
    /* The table's header is written with the record (feox_log_snapshot_write): not one byte of
     * the buffer is touched here. It is fresh memory (a huge-page mapping, zero): a byte written
     * now would fault in and zero its first 2 MiB on the closing thread (~2-4 ms on a VM, the
     * bench's 1M keys), before the close's threads fault in the whole buffer side by side
     * (store_close_threads.c prefault_part). */
    w->seed = seed;
    pthread_mutex_lock(&b->mu);
    w->generation = b->generation;
    pthread_mutex_unlock(&b->mu);
    return FEOX_OK;
}

/* Whether the snapshot can name location (a record of this file generation): its offset then. */
static bool offset_of(const feox_log_snapshot_writer *w, uint64_t location, uint64_t *offset)
{
    *offset = location & FEOX_LOG_OFFSET_MASK;
    return (uint32_t)(location >> FEOX_LOG_OFFSET_BITS) == w->generation &&
           *offset >= FEOX_LOG_HEADER_SIZE;
}

/* A slot's value as FORMAT.md lays it out (little-endian), as the native word whose bytes those
 * are: written with one store or compare-and-swap. (On a little-endian machine the value itself:
 * the byte-by-byte way took ~60 instructions and a stalled load per key, a fifth of a fill.) */
static uint64_t slot_word(uint64_t offset, uint32_t hash)
{
    uint64_t slot = feox_log_snapshot_slot(offset, hash);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return slot;
#else
    uint8_t bytes[8];
    uint64_t word;
    feox_put_le64(bytes, slot);
    memcpy(&word, bytes, sizeof word);
    return word;
#endif
}

void feox_log_snapshot_writer_add(feox_log_snapshot_writer *w, uint32_t hash, uint64_t location)
{
    uint64_t offset;
    if (w->bad || !offset_of(w, location, &offset) || w->keys >= w->key_limit) {
        w->bad = true;
        return;
    }
    uint64_t i = feox_log_snapshot_home(hash, w->count);
    while (w->slots[i]) /* a slot is 0 (empty) in either byte order */
        i = i + 1 < w->count ? i + 1 : 0;
    w->slots[i] = slot_word(offset, hash);
    w->keys++;
}

void feox_log_snapshot_writer_add_shared(const feox_log_snapshot_writer *w,
                                         feox_log_snapshot_share *share, uint32_t hash,
                                         uint64_t location)
{
    uint64_t offset;
    if (share->bad || !offset_of(w, location, &offset)) {
        share->bad = true;
        return;
    }
    uint64_t word = slot_word(offset, hash), i = feox_log_snapshot_home(hash, w->count);
    /* Relaxed: the threads only claim slots; the write reads the table after joining them. A
     * claimed slot is never freed, so a slot seen taken stays taken (the probe runs hold). */
    for (uint64_t probes = 0; probes < w->count; probes++, i = i + 1 < w->count ? i + 1 : 0) {
        uint64_t empty = 0;
        if (__atomic_load_n(w->slots + i, __ATOMIC_RELAXED) == 0 &&
            __atomic_compare_exchange_n(w->slots + i, &empty, word, false, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED)) {
            share->keys++;
            return;
        }
    }
    share->bad = true; /* the table is full: never, with the room init gives */
}

void feox_log_snapshot_writer_merge(feox_log_snapshot_writer *w,
                                    const feox_log_snapshot_share *share)
{
    w->keys += share->keys;
    if (share->bad || w->keys > w->key_limit)
        w->bad = true;
}

void feox_log_snapshot_writer_free(feox_log_snapshot_writer *w)
{
    feox_mem_free_large(w->buf);
    w->buf = NULL;
}

/* A buffer holding nothing, taken (its memory the caller's); NULL if it holds bytes or none. */
static void *take_if_empty(feox_log_buffer *buf)
{
    if (buf->len)
        return NULL;
    void *data = buf->data;
    *buf = (feox_log_buffer){0};
    return data;
}

void *feox_log_close_take_spare(feox_storage *st, size_t *cap)
{
    feox_log_backend *b = feox_log_of(st);
    pthread_mutex_lock(&b->mu);
    /* (a flush swaps the buffers only while pending is empty: taken, it swaps in nothing) */
    feox_log_buffer *spare = b->pending.len == 0 ? &b->pending : &b->active;
    *cap = spare->len == 0 && spare->data ? spare->cap : 0;
    void *data = take_if_empty(spare);
    pthread_mutex_unlock(&b->mu);
    return data;
}

void feox_log_close_take_buffers(feox_storage *st, void *out[2])
{
    feox_log_backend *b = feox_log_of(st);
    feox_log_stop_threads(b); /* (no flusher swaps them from now on) */
    pthread_mutex_lock(&b->mu);
    out[0] = take_if_empty(&b->active);
    out[1] = take_if_empty(&b->pending);
    pthread_mutex_unlock(&b->mu);
}

/* The snapshot's bytes written at offset in pieces of WRITE_PIECE, each piece's pages given back
 * once it is written (feox_mem_release_large): the page cache the next piece takes is then the
 * pages just given back, not memory new to the machine (on a virtual machine whose host backs
 * memory lazily: ~1.5 ms a MiB; the bench's close of 1M keys wrote 10.7 MB in 16-32 ms in one
 * pwrite, most of it the page cache's first touch). 2 MiB: a huge page of the buffer, which
 * starts on one (base/alloc.h). -1 if a write failed (the buffer is no use afterwards either
 * way). */
#define WRITE_PIECE ((size_t)2 << 20)
static int write_giving_back(int fd, uint8_t *buf, size_t size, uint64_t offset)
{
    for (size_t done = 0; done < size;) {
        size_t len = size - done < WRITE_PIECE ? size - done : WRITE_PIECE;
        if (feox_io_pwrite_all(fd, buf + done, len, offset + done) != 0)
            return -1;
        (void)feox_mem_release_large(buf, done, done + len);
        done += len;
    }
    return 0;
}

void feox_log_snapshot_write(feox_storage *st, feox_log_snapshot_writer *w)
{
    feox_log_backend *b = feox_log_of(st);
    (void)feox_log_snapshot_writer_flush(st, w); /* (bad if it failed) */
    if (w->bad) {
        feox_log_snapshot_writer_free(w);
        return;
    }
    pthread_mutex_lock(&b->mu);
    uint64_t at = b->append_off, file_id = b->file_id;
    int fd = b->fd;
    pthread_mutex_unlock(&b->mu);
    uint8_t *t = w->buf + SNAP_TABLE_AT;
    memset(t, 0, FEOX_LOG_SNAPSHOT_HEADER);
    feox_put_le32(t + T_MAGIC, FEOX_LOG_SNAPSHOT_MAGIC);
    feox_put_le32(t + T_VERSION, FEOX_LOG_SNAPSHOT_VERSION);
    feox_put_le64(t + T_SLOTS, w->count);
    feox_put_le64(t + T_KEYS, w->keys);
    feox_put_le64(t + T_SEED, w->seed);
    feox_put_le64(w->buf + SNAP_KEY_AT, at);
    uint32_t value_len = (uint32_t)(FEOX_LOG_SNAPSHOT_HEADER + w->count * 8);
    feox_log_record_seal(w->buf, file_id, at, FEOX_LOG_SNAPSHOT, FEOX_LOG_SNAPSHOT_KEY, value_len,
                         0, 0, 0);
    uint64_t footer_at = at + feox_log_record_size(FEOX_LOG_SNAPSHOT_KEY, value_len);
    uint8_t *footer = w->buf + (footer_at - at);
    feox_put_le64(footer + FEOX_LOG_RECORD_FIXED, at);
    feox_log_record_seal(footer, file_id, footer_at, FEOX_LOG_SNAPSHOT_FOOTER,
                         FEOX_LOG_SNAPSHOT_KEY, 0, 0, 0, 0);
    if (write_giving_back(fd, w->buf, w->buf_size, at) != 0) {
        /* Nothing is lost: remove what may have been written (else the next open drops it as
         * a torn tail). */
        (void)feox_io_ftruncate(fd, (off_t)at);
    }
    feox_clear_error_detail();
    feox_log_snapshot_writer_free(w);
}
