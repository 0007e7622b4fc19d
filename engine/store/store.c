/*
 * store.c — opening and closing a store: configuration defaults, sharing one instance between two
 * opens of a path or share key (through the registry, store_registry.c), the storage backend
 * (attached by store_storage.c), the maintenance thread (epoch reclamation and the TTL sweeper,
 * started once the backend is loaded), and flush / compact / check / stats / len.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/helpers.h"
#include "base/thread.h"
#include "storage/log/log_snapshot.h"
#include "storage/log/log_storage.h"
#include "store/store_internal.h"

#define DEFAULT_FLUSH_INTERVAL_MS 100
#define DEFAULT_SWEEP_INTERVAL_MS 250
#define DEFAULT_CAPACITY 1024
#define RECLAIM_INTERVAL_MS 10
#define SWEEP_BUDGET_PER_SHARD 4096

void feox_config_init(feox_config *cfg)
{
    if (cfg)
        memset(cfg, 0, sizeof *cfg);
}

uint64_t feox_now_ns(feox_store *s)
{
    return s ? feox_store_now(s) : 0;
}

bool feox_store_read_only(const feox_store *s)
{
    return s && s->cfg.read_only;
}

static bool is_memory_path(const char *path)
{
    return path == NULL || path[0] == '\0' || strcmp(path, ":memory:") == 0;
}

/* An absolute path for the registry: realpath of the directory plus the file name (the file
 * itself may not exist yet). NULL with errno set if the directory cannot be resolved, NULL with
 * errno 0 if allocation failed. */
static char *canonical_path(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[PATH_MAX];
    const char *name = slash ? slash + 1 : path;
    if (slash == path)
        strcpy(dir, "/");
    else if (slash)
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    else
        strcpy(dir, ".");
    char resolved[PATH_MAX];
    if (!*name) {
        errno = EISDIR;
        return NULL;
    }
    if (!realpath(dir, resolved))
        return NULL;
    size_t len = strlen(resolved) + 1 + strlen(name) + 1;
    char *full = feox_mem_alloc(len);
    if (full)
        snprintf(full, len, "%s%s%s", resolved, strcmp(resolved, "/") ? "/" : "", name);
    else
        errno = 0; /* tells the caller: allocation, not resolution, failed */
    return full;
}

/* The maintenance thread settles its frees (base/alloc.h) for its whole life: the epoch
 * reclamation frees there the entries and versions of deleted and replaced keys, blocks the
 * writers allocated, and glibc would otherwise keep every one of them in fast bins until a request
 * of 1 KiB or more merges them all at once, under the arena's lock. The bench's store of 1M keys
 * held 205,000 of them (9.6 MB) when it closed; whoever allocated next paid for merging and
 * sorting them: a close that frees a write buffer from that heap (10-18 ms), else the reopen that
 * follows (its first allocations: 20-45 ms of its CPU, while the reaper waited for the same
 * lock). Settled, a store closes with none (mallinfo2 smblks 0), and the merging is done as the
 * frees come, a thousand blocks at a time, while they are in cache. */
static void *maintenance_main(void *arg)
{
    feox_store *s = arg;
    uint32_t sweep_ms = s->cfg.ttl_sweep_interval_ms;
    uint64_t since_sweep_ms = 0;
    feox_mem_settle_begin();
    pthread_mutex_lock(&s->maintenance_lock);
    while (!s->stopping) {
        struct timespec until = feox_deadline_after_ms(RECLAIM_INTERVAL_MS);
        pthread_cond_timedwait(&s->maintenance_wake, &s->maintenance_lock, &until);
        if (s->stopping)
            break;
        pthread_mutex_unlock(&s->maintenance_lock);
        since_sweep_ms += RECLAIM_INTERVAL_MS;
        /* Not while the first load fills the indexes (without locks) in the background. */
        if (!s->cfg.disable_ttl_sweeper && since_sweep_ms >= sweep_ms &&
            atomic_load_explicit(&s->load_state, memory_order_acquire) == FEOX_LOAD_DONE) {
            since_sweep_ms = 0;
            feox_ttl_sweep(s, SWEEP_BUDGET_PER_SHARD);
        }
        feox_epoch_reclaim();
        pthread_mutex_lock(&s->maintenance_lock);
    }
    pthread_mutex_unlock(&s->maintenance_lock);
    feox_mem_settle_end();
    return NULL;
}

/* One LSD radix pass over `bits` bits of the addresses from `shift` on, from `from` into `to`. */
static void radix_pass(void *const *from, void **to, size_t n, int shift, int bits, size_t *count)
{
    size_t buckets = (size_t)1 << bits, mask = buckets - 1;
    memset(count, 0, buckets * sizeof *count);
    for (size_t i = 0; i < n; i++)
        count[((uintptr_t)from[i] >> shift) & mask]++;
    size_t sum = 0;
    for (size_t v = 0; v < buckets; v++) {
        size_t c = count[v];
        count[v] = sum;
        sum += c;
    }
    for (size_t i = 0; i < n; i++)
        to[count[((uintptr_t)from[i] >> shift) & mask]++] = from[i];
}

/* Addresses sorted on bits [8, 37): 256-byte lines in order within any 128 GiB of address space
 * (what a store's memory spans; an order that is off past it only costs time), in two LSD radix
 * passes. The first, inside 2 MiB regions, has 8,192 buckets, whose write positions stay in
 * cache (65,536 made each write a miss); the second orders the 2 MiB regions (a slab each for a
 * loaded store: its 16 bits have few distinct values, so few write streams). */
#define SORT_LINE_BITS 8
#define SORT_REGION_BITS 21
#define SORT_HIGH_BIT 37
static void sort_addresses(void **ptrs, size_t n)
{
    if (n < 1024)
        return; /* a small store: not worth the passes */
    /* (scratch, not from the malloc heap: a close sorts here, see list_closing_entries) */
    void **tmp = feox_mem_alloc_scratch(n * sizeof *tmp);
    size_t *count =
        feox_mem_alloc_scratch(((size_t)1 << (SORT_HIGH_BIT - SORT_REGION_BITS)) * sizeof *count);
    if (tmp && count) { /* else unsorted: it still frees everything, only slower */
        radix_pass(ptrs, tmp, n, SORT_LINE_BITS, SORT_REGION_BITS - SORT_LINE_BITS, count);
        radix_pass(tmp, ptrs, n, SORT_REGION_BITS, SORT_HIGH_BIT - SORT_REGION_BITS, count);
    }
    feox_mem_free_large(tmp);
    feox_mem_free_large(count);
}

#define PREFETCH_ENTRY 16  /* entries are prefetched this far ahead of the one freed */
#define PREFETCH_VERSION 8 /* and their versions this far ahead (reading the entry) */

/* Slab blocks freed at close, counted per slab and freed a slab at a time (one atomic per slab,
 * not per key, in whatever order the entries come): a slab's count sits in the slot its address
 * picks, which gives its count back when another slab takes the slot. */
#define TALLY_SLOTS 64

typedef struct slab_tally {
    void *block[TALLY_SLOTS]; /* a block of the slab counted in the slot */
    size_t n[TALLY_SLOTS];
} slab_tally;

static void flush_tally_slot(slab_tally *t, size_t i)
{
    feox_slab_free_many(t->block[i], t->n[i]);
    t->n[i] = 0;
}

static void flush_tally(slab_tally *t)
{
    for (size_t i = 0; i < TALLY_SLOTS; i++)
        flush_tally_slot(t, i);
}

/* An entry and the version it holds go (a version still referenced by a feox_value handle only
 * loses the index's reference). No other user is left. */
static void release_entry(feox_entry *e, slab_tally *t)
{
    if (!feox_entry_close(e))
        return;
    size_t i = ((uintptr_t)e / FEOX_SLAB_BYTES) % TALLY_SLOTS;
    if (t->n[i] && ((uintptr_t)t->block[i] ^ (uintptr_t)e) >= FEOX_SLAB_BYTES)
        flush_tally_slot(t, i);
    t->block[i] = e;
    t->n[i]++;
}

/* The entries listed at close (8 bytes a key: fresh memory costs a page fault per 4 KiB). */
typedef struct entry_list {
    feox_entry **at;
    size_t n, cap;
    size_t visited;   /* entries seen while an index is freed (for feox_reaper_step_aside) */
    slab_tally tally; /* for an entry there is no room to list: released at once */
} entry_list;

/* Called for each entry of a leaf as the ordered index is freed: on the reaper, an open in
 * progress goes first every FEOX_REAP_STEP entries (the index's nodes take ~50 ms to free for
 * 1M keys written through the API: a reopen right after the close falls in that time). */
static void step_per_entry(void *ctx, feox_entry *e)
{
    (void)e;
    entry_list *l = ctx;
    if (l->visited++ % FEOX_REAP_STEP == 0)
        feox_reaper_step_aside();
}

static void list_entry(void *ctx, feox_entry *e)
{
    entry_list *l = ctx;
    step_per_entry(l, e);
    if (l->n < l->cap)
        l->at[l->n++] = e;
    else
        release_entry(e, &l->tally);
}

/* Every entry, listed from the ordered index's leaves as they go when it holds every entry of
 * the hash index (a store that loaded or ran to the end: the leaves of a bulk build lie one
 * after another, ~8 bytes a key, where the hash index's table is twice as large and sparse), else
 * (a load failed half way) from the hash index's table. Both indexes are gone after it. */
static void list_entries(feox_store *s, entry_list *l)
{
    if (s->ordered && s->hash.shards &&
        feox_ordered_index_count(s->ordered) == feox_hash_count(&s->hash)) {
        feox_ordered_index_destroy_visiting(s->ordered, list_entry, l);
        s->ordered = NULL;
        return;
    }
    if (s->ordered)
        feox_ordered_index_destroy(s->ordered);
    s->ordered = NULL;
    for (unsigned i = 0; i < feox_hash_shard_count(&s->hash); i++) {
        ck_hs_iterator_t it = CK_HS_ITERATOR_INITIALIZER;
        void *obj;
        while (ck_hs_next(&s->hash.shards[i].set, &it, &obj))
            list_entry(l, feox_hash_object_entry(obj));
    }
}

/* Both indexes, every entry and the version it holds, the entries released in address order:
 * a slab's blocks one after another (each slab's count given back at once, the last one
 * unmapping it), a version loaded with its entry in the same block, and glibc merging each
 * chunk with the one freed just before it (still in cache) instead of with a cold neighbour.
 * The release is a pipeline: entry i + 16 is prefetched, then the version of entry
 * i + 8, so the cache misses of many entries overlap. A close that wrote an index snapshot
 * listed and sorted the entries already (list_closing_entries): that order is taken as it is. */
static void free_indexes_and_entries(feox_store *s)
{
    entry_list l = {0};
    bool borrowed = false; /* the list is in a buffer freed afterwards (closing_buffers) */
    if (s->closing_entries) { /* listed and sorted by the close (list_closing_entries) */
        borrowed = s->closing_entries_borrowed;
        l.at = s->closing_entries;
        l.n = s->closing_count;
        s->closing_entries = NULL;
        feox_ordered_index_destroy_visiting(s->ordered, step_per_entry, &l);
        s->ordered = NULL;
    } else {
        uint64_t count = feox_hash_count(&s->hash);
        l.at = count ? feox_mem_alloc_large(count * sizeof *l.at) : NULL;
        l.cap = l.at ? count : 0;
        list_entries(s, &l);
        sort_addresses((void **)l.at, l.n);
    }
    for (size_t i = 0; i < l.n; i++) {
        if (i % FEOX_REAP_STEP == 0)
            feox_reaper_step_aside(); /* on the reaper: an open in progress goes first */
        if (i + PREFETCH_ENTRY < l.n)
            __builtin_prefetch(l.at[i + PREFETCH_ENTRY]);
        if (i + PREFETCH_VERSION < l.n) {
            const feox_entry *ahead = l.at[i + PREFETCH_VERSION];
            __builtin_prefetch(atomic_load_explicit(&ahead->current, memory_order_relaxed));
        }
        release_entry(l.at[i], &l.tally);
    }
    flush_tally(&l.tally);
    if (!borrowed)
        feox_mem_free_large(l.at);
    feox_hash_index_destroy(&s->hash);
}

/* Every entry of a store being closed, listed (nothing freed) and sorted by address
 * (closing_entries): the index snapshot reads them in that order, and free_indexes_and_entries
 * frees them in it. Listed from the ordered index's leaves when it holds every entry (as
 * list_entries: a loaded store's leaves lie one after another; 1M loaded keys: ~7 ms against ~15
 * from the hash index's maps, about the same for keys written through the API), else from the
 * hash index's maps. The list and the sort's arrays are scratch out of the malloc heap
 * (base/alloc.h feox_mem_alloc_scratch: after many writes, the heap's first requests sort the
 * blocks the writes freed first). False: no memory for the list. */
static bool list_closing_entries(feox_store *s)
{
    uint64_t count = feox_hash_count(&s->hash); /* exact: every writer is stopped */
    feox_entry **at = count ? feox_mem_alloc_scratch(count * sizeof *at) : NULL;
    if (count && !at)
        return false;
    size_t n = 0;
    if (s->ordered && feox_ordered_index_count(s->ordered) == count) {
        feox_epoch_enter();
        n = feox_ordered_index_scan(s->ordered, FEOX_SCAN_FIRST, NULL, 0, at, count);
        feox_epoch_exit();
    }
    if (n != count) { /* (the snapshot must name every key: never short of one) */
        n = 0;
        for (unsigned i = 0; i < feox_hash_shard_count(&s->hash); i++) {
            ck_hs_iterator_t it = CK_HS_ITERATOR_INITIALIZER;
            void *obj;
            while (n < count && ck_hs_next(&s->hash.shards[i].set, &it, &obj))
                at[n++] = feox_hash_object_entry(obj);
        }
    }
    sort_addresses((void **)at, n);
    s->closing_entries = at;
    s->closing_count = n;
    return true;
}

/* Everything of a store but its backend (closed before). */
void feox_store_destroy(feox_store *s)
{
    if (s->hash.shards)
        free_indexes_and_entries(s);
    else if (s->ordered)
        feox_ordered_index_destroy(s->ordered);
    /* Everything this store retired is self-contained; free it now rather than at the next
     * reclamation of some other store. */
    feox_epoch_reclaim();
    feox_slab_seal_parked(atomic_exchange_explicit(&s->parked_slab, NULL, memory_order_acquire));
    pthread_mutex_destroy(&s->maintenance_lock);
    pthread_cond_destroy(&s->maintenance_wake);
    pthread_mutex_destroy(&s->evict_lock);
    pthread_mutex_destroy(&s->load_lock);
    pthread_cond_destroy(&s->load_done);
    pthread_rwlock_destroy(&s->snapshot_lock);
    feox_mem_free(s->evict_hand);
    for (size_t i = 0; i < sizeof s->closing_buffers / sizeof s->closing_buffers[0]; i++)
        feox_mem_free(s->closing_buffers[i]);
    free(s->stats);
    feox_mem_free(s->share_key);
    feox_mem_free(s->path);
    feox_mem_free(s);
}

static feox_err validate_config(const feox_config *cfg)
{
    if (cfg->sync != FEOX_SYNC_NORMAL && cfg->sync != FEOX_SYNC_OFF && cfg->sync != FEOX_SYNC_FULL)
        return feox_fail(FEOX_ERR_INVALID_ARGUMENT, "sync mode %d is not off, normal or full",
                         (int)cfg->sync);
    if (cfg->read_only && (is_memory_path(cfg->path) || cfg->storage))
        return feox_fail(FEOX_ERR_INVALID_ARGUMENT,
                         "read_only needs a store file (a path, and no other storage backend)");
    return FEOX_OK;
}

static feox_err create_store(const feox_config *cfg, char *path, feox_store **out)
{
    feox_store *s = feox_mem_calloc(1, sizeof *s);
    if (!s) {
        feox_mem_free(path);
        return feox_fail(FEOX_ERR_NOMEM, "allocation failed");
    }
    s->cfg = *cfg;
    s->path = path;
    s->cfg.path = path;
    if (!s->cfg.flush_interval_ms)
        s->cfg.flush_interval_ms = DEFAULT_FLUSH_INTERVAL_MS;
    if (!s->cfg.ttl_sweep_interval_ms)
        s->cfg.ttl_sweep_interval_ms = DEFAULT_SWEEP_INTERVAL_MS;
    if (!s->cfg.initial_capacity)
        s->cfg.initial_capacity = DEFAULT_CAPACITY;
    if (s->cfg.read_only) /* reads hide expired records; removing them is a write's business */
        s->cfg.disable_ttl_sweeper = true;
    pthread_mutex_init(&s->maintenance_lock, NULL);
    /* The maintenance thread sleeps until a CLOCK_MONOTONIC deadline: the condition variable must
     * use that clock too (the default, CLOCK_REALTIME, would make every wait return at once). */
    pthread_condattr_t wake_attr;
    pthread_condattr_init(&wake_attr);
    pthread_condattr_setclock(&wake_attr, CLOCK_MONOTONIC);
    pthread_cond_init(&s->maintenance_wake, &wake_attr);
    pthread_condattr_destroy(&wake_attr);
    pthread_mutex_init(&s->evict_lock, NULL);
    pthread_mutex_init(&s->load_lock, NULL);
    pthread_cond_init(&s->load_done, NULL);
    /* Writer first: the load's end takes it once, and must not starve behind a stream of point
     * reads (glibc's default prefers readers). */
    pthread_rwlockattr_t snapshot_attr;
    pthread_rwlockattr_init(&snapshot_attr);
    pthread_rwlockattr_setkind_np(&snapshot_attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&s->snapshot_lock, &snapshot_attr);
    pthread_rwlockattr_destroy(&snapshot_attr);
    s->open_count = 1;
    s->fork_generation = feox_fork_generation;
    s->opener_pid = getpid();

    uint64_t seed;
    if (!feox_random_u64(&seed))
        seed = (uint64_t)(uintptr_t)s ^ feox_store_now(s); /* no entropy yet: still per store */
    feox_err err = FEOX_ERR_NOMEM;
    if (posix_memalign((void **)&s->stats, 64, sizeof *s->stats) != 0) {
        s->stats = NULL;
        goto fail;
    }
    memset(s->stats, 0, sizeof *s->stats);
    err = feox_hash_index_init(&s->hash, s->cfg.initial_capacity, seed);
    if (!err)
        err = feox_ordered_index_create(&s->ordered);
    if (err) {
        feox_set_error_detail("allocation failed");
        goto fail;
    }
    if (path || cfg->storage) {
        err = feox_store_attach_storage(s);
        if (err)
            goto fail;
    }
    if (feox_thread_start(&s->maintenance_thread, maintenance_main, s) != 0) {
        err = feox_fail(FEOX_ERR_NOMEM, "cannot start the maintenance thread");
        goto fail;
    }
    s->maintenance_running = true;
    *out = s;
    return FEOX_OK;
fail:
    feox_store_stop_load(s); /* the maintenance thread did not start: no store handed out */
    if (s->storage)
        s->storage->methods->close(s->storage);
    feox_store_destroy(s);
    return err;
}

/* Memory mode: private, or shared under cfg->share_key (registry). */
static feox_err open_memory(const feox_config *cfg, feox_store **out)
{
    if (!cfg->share_key && !cfg->open_existing)
        return create_store(cfg, NULL, out);
    feox_err err;
    char *key = NULL;
    feox_registry_lock();
    if (!feox_registry_open_shared(cfg, NULL, cfg->share_key, out, &err)) {
        key = feox_mem_strndup(cfg->share_key, strlen(cfg->share_key));
        err = key ? create_store(cfg, NULL, out) : feox_fail(FEOX_ERR_NOMEM, "allocation failed");
        if (!err) {
            (*out)->share_key = key;
            key = NULL;
            feox_registry_add(*out);
        }
    }
    feox_registry_unlock();
    feox_mem_free(key);
    return err;
}

static feox_err open_store(const feox_config *cfg, feox_store **out)
{
    if (!out)
        return feox_fail(FEOX_ERR_INVALID_ARGUMENT, "output pointer is NULL");
    *out = NULL;
    feox_config defaults;
    feox_config_init(&defaults);
    if (!cfg)
        cfg = &defaults;
    feox_err err = validate_config(cfg);
    if (err)
        return err;
    feox_registry_install_hooks();
    if (is_memory_path(cfg->path))
        return open_memory(cfg, out); /* memory only, or cfg->storage without a path */

    char *path = canonical_path(cfg->path);
    if (!path && errno == 0)
        return feox_fail(FEOX_ERR_NOMEM, "allocation failed");
    if (!path && errno == EISDIR) {
        struct stat st;
        if (stat(cfg->path, &st) == 0)
            return feox_fail(FEOX_ERR_FORMAT,
                             "'%s' exists and is not a feox store: it names a directory",
                             cfg->path);
        return feox_fail(FEOX_ERR_INVALID_ARGUMENT,
                         "store path '%s' ends in '/': it needs a file name", cfg->path);
    }
    if (!path)
        return feox_fail(FEOX_ERR_IO, "cannot resolve the directory of %s: %s", cfg->path,
                         strerror(errno));
    feox_registry_lock();
    if (!feox_registry_open_shared(cfg, path, NULL, out, &err)) {
        err = create_store(cfg, path, out);
        path = NULL; /* the store's now, or freed */
        if (!err)
            feox_registry_add(*out);
    }
    feox_registry_unlock();
    feox_mem_free(path);
    return err;
}

feox_err feox_open(const feox_config *cfg, feox_store **out)
{
    feox_clear_error_detail();
    feox_reaper_open_begin(); /* the reaper freeing a closed store waits (store_reaper.c) */
    feox_err err = open_store(cfg, out);
    feox_reaper_open_end();
    return err;
}

/* Stop the maintenance thread, write the index snapshot of a store file, close the backend
 * (final flush; the file unlocked) and free everything (a large store on the reaper thread,
 * after this returns; the backend's write buffers with it). */
static feox_err shut_down(feox_store *s)
{
    if (s->maintenance_running) {
        pthread_mutex_lock(&s->maintenance_lock);
        s->stopping = true;
        pthread_cond_signal(&s->maintenance_wake);
        pthread_mutex_unlock(&s->maintenance_lock);
        pthread_join(s->maintenance_thread, NULL);
    }
    feox_store_stop_load(s);
    feox_err err = FEOX_OK;
    feox_log_snapshot_writer snapshot;
    /* (threaded: listed, sorted, filled and written by several threads, else by this one) */
    if (feox_store_start_snapshot(s, &snapshot) &&
        !feox_store_write_snapshot_threaded(s, &snapshot)) {
        if (list_closing_entries(s)) /* reads the entries, frees nothing */
            feox_store_write_snapshot(s, &snapshot, s->closing_entries, s->closing_count);
        else
            feox_log_snapshot_writer_free(&snapshot);
    }
    /* The backend's empty write buffers are freed with the store's memory, not by close(). */
    if (s->storage && s->storage->methods == &feox_log_storage_methods)
        feox_log_close_take_buffers(s->storage, s->closing_buffers);
    if (s->storage)
        err = s->storage->methods->close(s->storage);
    /* A large store's memory goes back on the reaper thread (store_reaper.c). */
    if (!feox_reaper_take(s, feox_store_destroy))
        feox_store_destroy(s);
    return err;
}

feox_err feox_close(feox_store *s)
{
    if (!s)
        return FEOX_OK;
    bool inherited = feox_store_inherited(s);
    if (!s->listed && !inherited) /* [owner] listed changes only in a call on its one open */
        return shut_down(s);
    /* The registry lock is held until the store is closed: a fork() or an exit flush in between
     * would otherwise meet a backend half freed. */
    feox_registry_lock();
    bool last = s->listed && --s->open_count == 0;
    if (last)
        feox_registry_remove(s);
    /* Inherited from the parent of a fork(): forget it, touch nothing (store_registry.c). */
    feox_err err = last && !inherited ? shut_down(s) : FEOX_OK;
    feox_registry_unlock();
    return err;
}

feox_err feox_flush(feox_store *s)
{
    feox_clear_error_detail();
    if (!s)
        return feox_fail(FEOX_ERR_INVALID_ARGUMENT, "store is NULL");
    if (feox_store_inherited(s))
        return feox_store_forked_error(s);
    feox_err loaded = feox_store_loaded(s);
    if (loaded)
        return loaded;
    return s->storage && s->storage->methods->flush ? s->storage->methods->flush(s->storage)
                                                    : FEOX_OK;
}

feox_err feox_compact(feox_store *s)
{
    feox_clear_error_detail();
    if (!s)
        return feox_fail(FEOX_ERR_INVALID_ARGUMENT, "store is NULL");
    if (feox_store_inherited(s))
        return feox_store_forked_error(s);
    feox_err loaded = feox_store_loaded(s);
    if (loaded)
        return loaded;
    if (!s->storage || !s->storage->methods->compact ||
        (s->storage_caps & FEOX_STORAGE_SELF_COMPACT))
        return FEOX_OK;
    return s->storage->methods->compact(s->storage);
}

feox_err feox_set_owner(feox_store *s, const char *owner)
{
    feox_clear_error_detail();
    if (!s)
        return feox_fail(FEOX_ERR_INVALID_ARGUMENT, "store is NULL");
    if (feox_store_inherited(s))
        return feox_store_forked_error(s);
    feox_err loaded = feox_store_loaded(s);
    if (loaded)
        return loaded;
    if (!s->storage || !s->storage->methods->set_owner)
        return FEOX_OK;
    return s->storage->methods->set_owner(s->storage, owner);
}

typedef struct consistency_check {
    feox_store *store;
    uint64_t seen;
    char *problem;
    size_t problem_len;
} consistency_check;

feox_err feox_check(feox_store *s)
{
    feox_clear_error_detail();
    if (!s)
        return feox_fail(FEOX_ERR_INVALID_ARGUMENT, "store is NULL");
    if (feox_store_inherited(s))
        return feox_store_forked_error(s);
    feox_err loaded = feox_store_loaded(s);
    if (loaded)
        return loaded;
    char detail[400] = "";
    /* Lock every shard: writers stop, so the two indexes must agree exactly. */
    unsigned shards = feox_hash_shard_count(&s->hash);
    for (unsigned i = 0; i < shards; i++)
        pthread_mutex_lock(&s->hash.shards[i].lock);
    uint64_t in_hash = feox_hash_count(&s->hash);
    uint64_t in_tree = feox_ordered_index_count(s->ordered);
    uint64_t counted = feox_hash_sum_keys(&s->hash);
    int bad = feox_ordered_index_verify(s->ordered, detail, sizeof detail);
    if (!bad && (in_hash != in_tree || in_hash != counted)) {
        snprintf(
            detail, sizeof detail, "index counts disagree: hash %llu, ordered %llu, key count %llu",
            (unsigned long long)in_hash, (unsigned long long)in_tree, (unsigned long long)counted);
        bad = 1;
    }
    uint64_t footprints = 0; /* what the keys take, as max_memory counts it */
    if (!bad) {
        /* Every ordered entry must be the hash index's entry for its key, with a version. */
        feox_entry *batch[64];
        feox_scan_from from = FEOX_SCAN_FIRST;
        const void *bound = NULL;
        size_t bound_len = 0;
        feox_epoch_enter();
        for (;;) {
            size_t n = feox_ordered_index_scan(s->ordered, from, bound, bound_len, batch, 64);
            for (size_t i = 0; i < n && !bad; i++) {
                feox_entry *e = batch[i];
                /* Relaxed: every writer of current is stopped by the shard locks held. */
                const feox_record *r = atomic_load_explicit(&e->current, memory_order_relaxed);
                if (feox_hash_lookup(&s->hash, feox_entry_hash(e), e->key, e->key_len) != e || !r) {
                    snprintf(detail, sizeof detail,
                             "ordered index entry of %u-byte key missing from the hash index",
                             e->key_len);
                    bad = 1;
                    break;
                }
                footprints += feox_entry_footprint(e->key_len) + FEOX_INDEX_BYTES_PER_KEY +
                              feox_record_footprint(r->value_len, r->flags);
            }
            if (bad || n < 64)
                break;
            from = FEOX_SCAN_GT;
            bound = batch[n - 1]->key;
            bound_len = batch[n - 1]->key_len;
        }
        feox_epoch_exit();
    }
    uint64_t used = atomic_load_explicit(&s->memory_used, memory_order_relaxed);
    if (!bad && used != footprints) {
        snprintf(detail, sizeof detail,
                 "memory accounted (%llu bytes) differs from what the keys take (%llu bytes)",
                 (unsigned long long)used, (unsigned long long)footprints);
        bad = 1;
    }
    for (unsigned i = shards; i-- > 0;)
        pthread_mutex_unlock(&s->hash.shards[i].lock);
    if (bad)
        return feox_fail(FEOX_ERR_CORRUPT, "%s", detail);
    if (s->storage) {
        feox_err err = s->storage->methods->check(s->storage, detail, sizeof detail);
        if (err)
            return feox_fail(err, "%s", detail);
    }
    return FEOX_OK;
}

feox_err feox_get_stats(feox_store *s, feox_stats *out)
{
    feox_clear_error_detail();
    if (!s || !out)
        return feox_fail(FEOX_ERR_INVALID_ARGUMENT, "store or output pointer is NULL");
    if (feox_store_inherited(s))
        return feox_store_forked_error(s);
    feox_err loaded = feox_store_loaded(s);
    if (loaded)
        return loaded;
    memset(out, 0, sizeof *out);
    /* feox_len first: while keys have a TTL it takes every shard lock, so the expiries counted
     * under those locks (ttl_sweeper.c) before it are all in the counters read next. */
    out->len = feox_len(s, 0);
    feox_stat_fill(s->stats, out);
    out->memory_usage = feox_memory_usage(s);
    out->max_memory = s->cfg.max_memory;
    out->keys_with_ttl = feox_hash_sum_ttl_keys(&s->hash);
    out->epoch_retired = feox_epoch_total_retired();
    out->epoch_freed = feox_epoch_total_freed();
    if (s->storage)
        s->storage->methods->get_stats(s->storage, out);
    return FEOX_OK;
}

uint64_t feox_len(feox_store *s, unsigned flags)
{
    if (!s || feox_store_inherited(s) || (flags & ~(unsigned)FEOX_LEN_ESTIMATE))
        return 0;
    if ((flags & FEOX_LEN_ESTIMATE) &&
        atomic_load_explicit(&s->load_state, memory_order_acquire) != FEOX_LOAD_DONE)
        return s->snapshot_keys; /* a query plan's estimate does not wait for the load */
    if (feox_store_loaded(s) != FEOX_OK)
        return 0;
    if (flags & FEOX_LEN_ESTIMATE)
        return feox_hash_sum_keys(&s->hash);
    /* Exact: expired keys the sweeper has not reached yet are removed first. */
    if (feox_hash_sum_ttl_keys(&s->hash))
        feox_ttl_remove_expired(s, feox_store_now(s));
    return feox_hash_sum_keys(&s->hash);
}

bool feox_is_empty(feox_store *s)
{
    if (s && (feox_store_inherited(s) || feox_store_loaded(s) != FEOX_OK))
        return false; /* unknown here: the store belongs to the parent of a fork(), or its
                         load failed */
    return feox_len(s, 0) == 0;
}

uint64_t feox_memory_usage(feox_store *s)
{
    return s && !feox_store_inherited(s) && feox_store_loaded(s) == FEOX_OK
               ? atomic_load_explicit(&s->memory_used, memory_order_relaxed)
               : 0;
}
