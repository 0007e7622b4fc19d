/*
 * store_close_snapshot.c — the index snapshot a clean close of a store file writes
 * (engine/storage/log/log_snapshot.h, FORMAT.md "Index snapshot"), filled from the hash index
 * without freeing or changing anything: the store's memory is freed afterwards, by the closing
 * thread or, for a large store, on the reaper thread once the file is closed (store_reaper.c).
 *
 * The walk goes shard by shard through the hash index's maps. A shard holds the keys whose hash
 * starts with its bits (hash_index.h), and a key's home slot in the snapshot is taken from the
 * hash's high bits (FORMAT.md), so one shard's keys go to one 1/64 of the snapshot's table
 * (~170 KB at 1M keys): the writes stay in cache. The entries the maps point at are read in a
 * pipeline (entry, then its version, then the version's location word, a few keys apart), so the
 * cache misses of several keys overlap.
 */
#include <stdatomic.h>
#include <string.h>

#include "base/error.h"
#include "storage/log/log_snapshot.h"
#include "storage/log/log_storage.h"
#include "store/store_internal.h"

/* How far ahead of the key being added each read of the pipeline starts. */
#define AHEAD_ENTRY 12   /* the entry (its hash and current version) */
#define AHEAD_VERSION 8  /* the version's header (value length and flags) */
#define AHEAD_LOCATION 4 /* the version's location word, and the snapshot slot the key goes to */
/* Entries taken from a map at a time (on the stack). */
#define WALK_BATCH 1024

/* Whether the hash index's key hash is the snapshot's (FORMAT.md): the snapshot then takes each
 * entry's hash as it is, and names the hash index's seed. Checked on keys of several lengths, so
 * that a change to either function stops snapshots (and fails test_store_snapshot) instead of
 * writing one the next open would misread. */
static bool hash_is_snapshot_hash(const feox_store *s)
{
    static const char *const probes[] = {"k", "feox-16-byte-key",
                                         "a longer key of forty-one bytes, or so!!"};
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
        size_t len = strlen(probes[i]);
        if ((uint32_t)feox_hash_key(&s->hash, probes[i], len) !=
            feox_log_snapshot_hash(probes[i], len, s->hash.seed))
            return false;
    }
    return true;
}

/* A clean close of a loaded store file: the backend's threads stopped and every record durable
 * (feox_log_close_prepare), then a writer for the index snapshot (true). False: no snapshot
 * (another backend, a load that did not finish, a failed flush, a file mid-switch, the file
 * still ends in the snapshot it was opened with, no memory). */
static bool start_snapshot(feox_store *s, feox_log_snapshot_writer *w)
{
    if (s->storage->methods != &feox_log_storage_methods || !s->hash.shards ||
        atomic_load_explicit(&s->load_state, memory_order_acquire) != FEOX_LOAD_DONE ||
        !atomic_load_explicit(&s->indexes_complete, memory_order_acquire) ||
        !hash_is_snapshot_hash(s))
        return false;
    bool may = false;
    (void)feox_log_close_prepare(s->storage, &may); /* close() reports a failed flush again */
    if (may && feox_log_snapshot_writer_init(s->storage, w, feox_hash_count(&s->hash),
                                             s->hash.seed) == FEOX_OK)
        return true;
    feox_clear_error_detail();
    return false;
}

static feox_record *current_of(const feox_entry *e)
{
    /* Relaxed: the store is quiesced (every thread that wrote it stopped and joined). */
    return atomic_load_explicit(&e->current, memory_order_relaxed);
}

/* Add at[0, upto) to the snapshot, reading ahead up to at[n - 1] (the rest of the pipeline: the
 * caller adds those later, at the start of its next batch). */
static void add_entries(feox_log_snapshot_writer *w, feox_entry *const *at, size_t n, size_t upto)
{
    for (size_t i = 0; i < upto; i++) {
        if (i + AHEAD_ENTRY < n)
            __builtin_prefetch(at[i + AHEAD_ENTRY]);
        if (i + AHEAD_VERSION < n)
            __builtin_prefetch(current_of(at[i + AHEAD_VERSION]));
        if (i + AHEAD_LOCATION < n) {
            const feox_entry *ahead = at[i + AHEAD_LOCATION];
            feox_record *r = current_of(ahead);
            if (r)
                __builtin_prefetch(feox_record_location_word(r));
            feox_log_snapshot_writer_prefetch(w, ahead->hash);
        }
        const feox_record *r = current_of(at[i]);
        if (r) /* (an indexed entry always has one) */
            feox_log_snapshot_writer_add(w, at[i]->hash, feox_record_location(r));
    }
}

/* Every entry of the hash index, shard by shard, into the snapshot. The last AHEAD_ENTRY entries
 * of a full batch stay for the next one, whose first reads they already started. */
static void fill_snapshot(feox_store *s, feox_log_snapshot_writer *w)
{
    feox_entry *at[WALK_BATCH];
    size_t n = 0;
    for (unsigned i = 0; i < feox_hash_shard_count(&s->hash) && !w->bad; i++) {
        ck_hs_iterator_t it = CK_HS_ITERATOR_INITIALIZER;
        void *object;
        while (ck_hs_next(&s->hash.shards[i].set, &it, &object)) {
            at[n++] = feox_hash_object_entry(object);
            if (n == WALK_BATCH) {
                add_entries(w, at, n, n - AHEAD_ENTRY);
                memmove(at, at + n - AHEAD_ENTRY, AHEAD_ENTRY * sizeof *at);
                n = AHEAD_ENTRY;
            }
        }
    }
    add_entries(w, at, n, n);
}

void feox_store_write_snapshot(feox_store *s)
{
    feox_log_snapshot_writer w;
    if (!s->storage || !start_snapshot(s, &w))
        return;
    fill_snapshot(s, &w);
    feox_log_snapshot_write(s->storage, &w);
}
