/*
 * store_close_snapshot.c — the index snapshot a clean close of a store file writes
 * (engine/storage/log/log_snapshot.h, FORMAT.md "Index snapshot"), filled from the store's
 * entries without freeing or changing anything: the store's memory is freed afterwards, by the
 * closing thread or, for a large store, on the reaper thread once the file is closed and
 * unlocked (store_reaper.c).
 *
 * The close hands the entries over in address order (store.c lists and sorts them once, and the
 * free that follows reuses the order): a key's entry and version are then read as they lie in
 * memory, a page after another, where a walk in the order of an index jumps to a new page for
 * nearly every key (a TLB miss each: the cost of the walk on a virtual machine). The reads run
 * in a pipeline (entry, then its version and the snapshot slot its hash picks, then the
 * version's location word, a few keys apart), so the cache misses of several keys overlap; the
 * snapshot's table (huge pages: feox_mem_alloc_large) takes the random writes.
 */
#include <stdatomic.h>
#include <string.h>

#include "base/error.h"
#include "storage/log/log_snapshot.h"
#include "storage/log/log_storage.h"
#include "store/store_internal.h"
#include "store/store_snapshot_pipeline.h"

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

bool feox_store_start_snapshot(feox_store *s, feox_log_snapshot_writer *w)
{
    if (!s->storage || s->storage->methods != &feox_log_storage_methods || !s->hash.shards ||
        atomic_load_explicit(&s->load_state, memory_order_acquire) != FEOX_LOAD_DONE ||
        !atomic_load_explicit(&s->indexes_complete, memory_order_acquire) ||
        !hash_is_snapshot_hash(s))
        return false;
    /* (the final flush comes later: feox_log_snapshot_writer_flush, as the entries are listed) */
    if (feox_log_close_begin(s->storage) &&
        feox_log_snapshot_writer_init(s->storage, w, feox_hash_count(&s->hash), s->hash.seed) ==
            FEOX_OK)
        return true;
    feox_clear_error_detail();
    return false;
}

void feox_store_write_snapshot(feox_store *s, feox_log_snapshot_writer *w,
                               feox_entry *const *entries, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const feox_record *r = feox_snapshot_pipeline(w, entries, i, n);
        if (r) /* (an indexed entry always has one) */
            feox_log_snapshot_writer_add(w, entries[i]->hash, feox_record_location(r));
    }
    feox_log_snapshot_write(s->storage, w);
}
