/*
 * store_close_threads.c — the index snapshot of a large store's close (store_close_snapshot.c)
 * built by several threads at once: the closing thread and up to MAX_HELPERS helpers (one per
 * CPU the process may run on, one per MIN_ENTRIES_PER_THREAD entries), started by the close and
 * joined before it goes on (so no helper runs once the close hands the store to the reaper, or
 * returns). The store's own threads (flusher, compactor, maintenance, load) are stopped by then.
 *
 * The work of the one-thread close, split in steps a barrier apart:
 *   list   the closing thread lists the ordered index's leaves if it holds every entry (as the
 *          one-thread close: list_in_key_order says why), else the threads claim the hash
 *          index's shards one at a time and list each into its own place of the list (the
 *          shards' exact counts, ck_hs_count, give the places);
 *   sort   the list by address (the two LSD radix passes of store.c's sort_addresses, the
 *          second on the 2 MiB regions the list spans), each pass split over the threads: each
 *          counts its part's digits, then scatters its part to the places the counts of all
 *          give it (stable: the parts go in their order). The passes' other half is the
 *          snapshot's table (4/3 slot of 8 bytes a key: room for the list), which each thread
 *          zeroes again where it read the second pass from;
 *   fill   the threads claim chunks of the sorted list and add them to the snapshot's table,
 *          claiming slots with a compare-and-swap (feox_log_snapshot_writer_add_shared).
 * Before listing, each thread faults in its part of the list and of the snapshot's buffer with
 * one call (prefault_part); the closing thread first makes the final flush (an fsync: the
 * helpers list the shards meanwhile, and nothing is written before it succeeded, log_snapshot.h).
 * The claims (list, fill) let a thread the machine runs late leave its share to the others.
 * Memory new to the process is much of a close's cost on a virtual machine (~0.6-1.6 ms a MiB
 * the first time it is touched, where the host backs it lazily: the bench's close of 1M keys
 * spent a quarter of its CPU zeroing fresh huge pages, perf): the table doubling as the sort's
 * other half saves 8 bytes a key of it, the list lies in the backend's spare write buffer when
 * that holds it (feox_log_close_take_spare: 8 MiB after many writes, 1M entries; the store frees
 * it with the rest), and the write gives the table back as it goes, so the file's page cache
 * takes those pages again (log_snapshot.c).
 * The list is left sorted, as the one-thread close leaves it, for the free that follows.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/thread.h"
#include "storage/log/log_snapshot.h"
#include "store/store_internal.h"
#include "store/store_snapshot_pipeline.h"

/* At most 8 threads (the pass counters are 1 MiB a thread); a thread for each 16,384 entries
 * (fewer: the thread starts and barriers cost more than they save). */
#define MAX_HELPERS 7
#define MIN_ENTRIES_PER_THREAD 16384u

/* The address bits sorted on: as store.c's sort_addresses (its comment says why). */
#define SORT_LINE_BITS 8
#define SORT_REGION_BITS 21
#define SORT_HIGH_BIT 37
#define MAX_BUCKETS ((size_t)1 << (SORT_HIGH_BIT - SORT_REGION_BITS))

/* Entries a thread adds to the snapshot per claim (the list's 64 KiB). */
#define FILL_CHUNK 8192u

typedef struct close_job close_job;

typedef struct close_worker {
    close_job *job;
    unsigned index;
    size_t *count;       /* the digits of this thread's part in the pass under way (MAX_BUCKETS) */
    size_t *place;       /* where this thread's next entry of each digit goes (MAX_BUCKETS; in
                          * count's allocation, after it) */
    uintptr_t low, high; /* the lowest and highest address of its part (the first pass's count) */
    feox_log_snapshot_share share;
    pthread_t thread;
} close_worker;

struct close_job {
    feox_store *s;
    feox_log_snapshot_writer *w;
    feox_entry **at;  /* the list */
    bool at_borrowed; /* at is the backend's spare write buffer (the store's to free) */
    feox_entry **tmp; /* the radix passes' other half: the snapshot's table (w->slots) */
    size_t n;
    size_t *shard_start; /* where each shard's entries go in the list (shards + 1 of them) */
    unsigned threads;    /* taking part; set (with the barrier made) before the gate opens */
    pthread_mutex_t gate_lock;
    pthread_cond_t gate;
    bool gate_open; /* [gate_lock] */
    pthread_barrier_t step;
    bool listed_in_order;        /* listed from the ordered index before the helpers start */
    _Atomic unsigned next_shard; /* the next shard to list */
    _Atomic size_t next_fill;    /* the first entry of the next chunk to add to the snapshot */
    _Atomic bool miscounted;     /* a shard listed other than its count: the job is dropped */
    close_worker worker[MAX_HELPERS + 1];
};

/* The CPUs this process may run on (its affinity mask: taskset, a container's cpuset), else the
 * online ones. */
static long usable_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        return CPU_COUNT(&set);
    return sysconf(_SC_NPROCESSORS_ONLN);
}

static unsigned threads_for(size_t n)
{
    long cpus = usable_cpus();
    size_t want = n / MIN_ENTRIES_PER_THREAD;
    if (cpus > 0 && want > (size_t)cpus)
        want = (size_t)cpus;
    if (want > MAX_HELPERS + 1)
        want = MAX_HELPERS + 1;
    return want ? (unsigned)want : 1;
}

/* The first index of a thread's even part of n. */
static size_t part_start(size_t n, unsigned index, unsigned threads)
{
    return n / threads * index + n % threads * index / threads;
}

/* Entries [first, end) of the list faulted in with one call: the list is written whole, and
 * first touches would fault it in page by page (prefault_part). In the spare write buffer, its
 * pages past what the writes reached (about 4 MiB, as the flusher writes from there on) were
 * never touched. */
static void prefault_list(const close_job *job, size_t first, size_t end)
{
    size_t from = first * sizeof *job->at, to = end * sizeof *job->at;
    if (job->at_borrowed)
        (void)feox_mem_prefault((char *)job->at + from, to - from);
    else
        (void)feox_mem_prefault_large(job->at, from, to);
}

/* The list from the ordered index's leaves, by the closing thread alone, when the index holds
 * every entry and most entries were made by bulk loads (a store that loaded: its leaves lie one
 * after another, as its entries in slabs). Measured on 1M keys (2-vCPU development machine):
 * loaded, 29 ms of the closing thread's CPU and 52 in all, against 40 and 84 listing the hash
 * index's maps on two threads; written through the API, the maps on two threads are the faster
 * (38 and 77, against 56 and 98). */
static bool list_in_key_order(close_job *job)
{
    feox_store *s = job->s;
    if (!s->ordered || feox_ordered_index_count(s->ordered) != job->n ||
        atomic_load_explicit(&s->bulk_blocks, memory_order_relaxed) < job->n / 2)
        return false;
    prefault_list(job, 0, job->n);
    feox_epoch_enter();
    size_t n = feox_ordered_index_scan(s->ordered, FEOX_SCAN_FIRST, NULL, 0, job->at, job->n);
    feox_epoch_exit();
    return n == job->n; /* else the shards are listed (over what this wrote) */
}

/* Shards claimed one at a time, each listed to its place, until none is left; false if one held
 * other than its count. */
static bool list_shards(close_job *job)
{
    feox_hash_index *hash = &job->s->hash;
    unsigned shards = feox_hash_shard_count(hash), k;
    while ((k = atomic_fetch_add_explicit(&job->next_shard, 1, memory_order_relaxed)) < shards) {
        size_t at = job->shard_start[k], end = job->shard_start[k + 1];
        ck_hs_iterator_t it = CK_HS_ITERATOR_INITIALIZER;
        void *obj;
        while (ck_hs_next(&hash->shards[k].set, &it, &obj)) {
            if (at == end)
                return false;
            job->at[at++] = feox_hash_object_entry(obj);
        }
        if (at != end)
            return false;
    }
    return true;
}

/* What a radix pass sorts on: bits [shift, shift + bits) of an address's distance from base. */
typedef struct radix_digits {
    uintptr_t base;
    int shift;
    size_t mask; /* (1 << bits) - 1 */
} radix_digits;

static size_t digit_of(const feox_entry *e, const radix_digits *d)
{
    return (((uintptr_t)e - d->base) >> d->shift) & d->mask;
}

/* The digits of the second pass: the 2 MiB regions from the lowest address of all parts to the
 * highest (a store's memory spans a few hundred: as many buckets to clear, sum and fault in,
 * not MAX_BUCKETS; past MAX_BUCKETS regions, the order past them is off, as sort_addresses'). */
static radix_digits region_digits(const close_job *job)
{
    uintptr_t low = UINTPTR_MAX, high = 0;
    for (unsigned t = 0; t < job->threads; t++) {
        low = job->worker[t].low < low ? job->worker[t].low : low;
        high = job->worker[t].high > high ? job->worker[t].high : high;
    }
    radix_digits d = {.base = low & ~(((uintptr_t)1 << SORT_REGION_BITS) - 1),
                      .shift = SORT_REGION_BITS};
    uintptr_t regions = high > d.base ? (high - d.base) >> SORT_REGION_BITS : 0;
    int bits = 0;
    while (bits < SORT_HIGH_BIT - SORT_REGION_BITS && (regions >> bits) != 0)
        bits++;
    d.mask = ((size_t)1 << bits) - 1;
    return d;
}

/* One LSD radix pass of this thread's part of from into to, in step with the other threads;
 * note_range: the part's lowest and highest address noted (for region_digits). */
static void radix_pass(close_worker *me, feox_entry *const *from, feox_entry **to,
                       const radix_digits *d, bool note_range)
{
    close_job *job = me->job;
    size_t buckets = d->mask + 1;
    size_t first = part_start(job->n, me->index, job->threads);
    size_t end = part_start(job->n, me->index + 1, job->threads);
    memset(me->count, 0, buckets * sizeof *me->count);
    uintptr_t low = UINTPTR_MAX, high = 0;
    for (size_t i = first; i < end; i++) {
        me->count[digit_of(from[i], d)]++;
        low = (uintptr_t)from[i] < low ? (uintptr_t)from[i] : low;
        high = (uintptr_t)from[i] > high ? (uintptr_t)from[i] : high;
    }
    if (note_range) {
        me->low = low;
        me->high = high;
    }
    pthread_barrier_wait(&job->step); /* every part counted */
    size_t sum = 0;
    for (size_t v = 0; v < buckets; v++) {
        for (unsigned t = 0; t < job->threads; t++) {
            if (t == me->index)
                me->place[v] = sum;
            sum += job->worker[t].count[v];
        }
    }
    for (size_t i = first; i < end; i++)
        to[me->place[digit_of(from[i], d)]++] = from[i];
    pthread_barrier_wait(&job->step); /* every part scattered (and the counts read) */
}

/* The list sorted by address: on bits [8, 37) as store.c's sort_addresses, the second pass on the
 * regions the list spans; then the part of the other half (the snapshot's table) this thread
 * read zeroed again, and every part of it zero before any thread adds to it. */
static void sort_list(close_worker *me)
{
    close_job *job = me->job;
    const radix_digits lines = {
        .base = 0,
        .shift = SORT_LINE_BITS,
        .mask = ((size_t)1 << (SORT_REGION_BITS - SORT_LINE_BITS)) - 1,
    };
    radix_pass(me, job->at, job->tmp, &lines, true);
    const radix_digits regions = region_digits(job); /* (every part's range noted before) */
    radix_pass(me, job->tmp, job->at, &regions, false);
    size_t first = part_start(job->n, me->index, job->threads);
    size_t end = part_start(job->n, me->index + 1, job->threads);
    memset(job->tmp + first, 0, (end - first) * sizeof *job->tmp);
    pthread_barrier_wait(&job->step); /* the table zero again */
}

/* Entries [first, end) of the sorted list into the snapshot, read in a pipeline as
 * store_close_snapshot.c reads the whole list. */
static void fill_chunk(close_job *job, feox_log_snapshot_share *share, size_t first, size_t end)
{
    feox_log_snapshot_writer *w = job->w;
    feox_entry *const *entries = job->at + first;
    size_t n = end - first;
    for (size_t i = 0; i < n; i++) {
        const feox_record *r = feox_snapshot_pipeline(w, entries, i, n);
        if (r) /* (an indexed entry always has one) */
            feox_log_snapshot_writer_add_shared(w, share, entries[i]->hash,
                                                feox_record_location(r));
    }
}

/* Chunks of the sorted list claimed one at a time and added to the snapshot, until none is left
 * (a thread the machine runs late leaves the rest to the others). */
static void fill_chunks(close_worker *me)
{
    close_job *job = me->job;
    size_t first;
    while ((first = atomic_fetch_add_explicit(&job->next_fill, FILL_CHUNK, memory_order_relaxed)) <
           job->n)
        fill_chunk(job, &me->share, first,
                   first + FILL_CHUNK < job->n ? first + FILL_CHUNK : job->n);
}

/* This thread's part of the list (if it is still to be listed) and of the snapshot's buffer
 * (the radix passes' other half, then the table), faulted in by one call each: both are written
 * whole, and first touches would fault them in page by page (~10 us each on a VM; 1M keys: 8 and
 * 10.7 MiB, up to 4,800 faults where a 2 MiB range takes 4 KiB pages). */
static void prefault_part(close_worker *me)
{
    close_job *job = me->job;
    if (!job->listed_in_order)
        prefault_list(job, part_start(job->n, me->index, job->threads),
                      part_start(job->n, me->index + 1, job->threads));
    size_t bytes = job->w->buf_size;
    (void)feox_mem_prefault_large(job->w->buf, part_start(bytes, me->index, job->threads),
                                  part_start(bytes, me->index + 1, job->threads));
}

static void *work(void *arg)
{
    close_worker *me = arg;
    close_job *job = me->job;
    pthread_mutex_lock(&job->gate_lock);
    while (!job->gate_open)
        pthread_cond_wait(&job->gate, &job->gate_lock);
    pthread_mutex_unlock(&job->gate_lock);
    if (!job->threads)
        return NULL; /* no barrier: the close goes on without the helpers */
    prefault_part(me);
    if (!job->listed_in_order && !list_shards(job))
        atomic_store_explicit(&job->miscounted, true, memory_order_relaxed);
    pthread_barrier_wait(&job->step); /* every shard listed */
    if (atomic_load_explicit(&job->miscounted, memory_order_relaxed))
        return NULL; /* (every thread sees it: set before the barrier) */
    sort_list(me);
    fill_chunks(me);
    return NULL;
}

/* Where each shard's entries go: its count after those of the shards before it. */
static size_t place_shards(feox_hash_index *hash, size_t *shard_start)
{
    size_t sum = 0;
    unsigned shards = feox_hash_shard_count(hash);
    for (unsigned k = 0; k < shards; k++) {
        shard_start[k] = sum;
        sum += ck_hs_count(&hash->shards[k].set);
    }
    shard_start[shards] = sum;
    return sum;
}

/* The job's memory (job zeroed); false for none. All of it is scratch out of the malloc heap
 * (base/alloc.h feox_mem_alloc_scratch): after many writes, the first requests there would sort
 * the blocks the writes freed first (the bench's close of 1M keys: 16 ms of the closing thread's
 * CPU, median of 3, before any helper starts). A thread's count and place arrays (1 MiB) take
 * 4 KiB pages: a pass touches only their first 64 KiB or less (its digits). */
static bool alloc_job(close_job *job, feox_store *s, feox_log_snapshot_writer *w, unsigned threads)
{
    job->s = s;
    job->w = w;
    pthread_mutex_init(&job->gate_lock, NULL);
    pthread_cond_init(&job->gate, NULL);
    size_t n = feox_hash_count(&s->hash);
    job->shard_start =
        feox_mem_alloc_scratch((feox_hash_shard_count(&s->hash) + 1) * sizeof(size_t));
    if (!job->shard_start)
        return false;
    job->n = place_shards(&s->hash, job->shard_start);
    /* The list in the backend's spare write buffer if it holds it (the store frees the buffer,
     * at destroy: store_internal.h closing_buffers), else in fresh scratch. */
    size_t spare_cap = 0;
    if (!s->closing_buffers[2])
        s->closing_buffers[2] = feox_log_close_take_spare(s->storage, &spare_cap);
    job->at_borrowed = n && spare_cap / sizeof *job->at >= n;
    if (job->at_borrowed)
        job->at = s->closing_buffers[2];
    else
        job->at = n ? feox_mem_alloc_scratch(n * sizeof *job->at) : NULL;
    /* (the table has 4/3 slot a key: room for the list; a failed job never wrote it) */
    job->tmp = w->count >= n ? (feox_entry **)w->slots : NULL;
    _Static_assert(sizeof *w->slots == sizeof *job->tmp, "a slot holds an entry's address");
    if (job->n != n || !job->at || !job->tmp)
        return false;
    for (unsigned t = 0; t < threads; t++) {
        close_worker *me = &job->worker[t];
        me->job = job;
        me->index = t;
        me->count = feox_mem_alloc_scratch(2 * MAX_BUCKETS * sizeof *me->count);
        if (!me->count)
            return false;
        me->place = me->count + MAX_BUCKETS;
    }
    return true;
}

/* The job and its memory, the list too unless kept. */
static void free_job(close_job *job, bool keep_list)
{
    pthread_mutex_destroy(&job->gate_lock);
    pthread_cond_destroy(&job->gate);
    for (unsigned t = 0; t < MAX_HELPERS + 1; t++)
        feox_mem_free_large(job->worker[t].count); /* (place is in it) */
    if (!keep_list && !job->at_borrowed)
        feox_mem_free_large(job->at);
    feox_mem_free_large(job->shard_start);
    feox_mem_free_large(job);
}

/* Start up to wanted - 1 helpers, which wait at the gate until the number of threads taking part
 * (the closing thread and the helpers that started) is known and their barrier made: 0 if it
 * could not be (the helpers then return at once). The caller joins the helpers started. */
static unsigned start_helpers(close_job *job, unsigned wanted)
{
    unsigned started = 1;
    pthread_mutex_lock(&job->gate_lock);
    while (started < wanted &&
           feox_thread_start(&job->worker[started].thread, work, &job->worker[started]) == 0)
        started++;
    job->threads = pthread_barrier_init(&job->step, NULL, started) == 0 ? started : 0;
    job->gate_open = true;
    pthread_cond_broadcast(&job->gate);
    pthread_mutex_unlock(&job->gate_lock);
    return started;
}

bool feox_store_write_snapshot_threaded(feox_store *s, feox_log_snapshot_writer *w)
{
    unsigned wanted = threads_for(feox_hash_count(&s->hash));
    if (wanted < 2)
        return false;
    close_job *job = feox_mem_calloc_scratch(sizeof *job);
    if (!job)
        return false;
    bool done = false;
    if (alloc_job(job, s, w, wanted)) {
        job->listed_in_order = list_in_key_order(job);
        unsigned started = start_helpers(job, wanted);
        /* The final flush (its fsync) while the helpers list the entries: a thread that joins
         * late leaves the shards to the others. */
        (void)feox_log_snapshot_writer_flush(s->storage, w);
        if (job->threads)
            work(&job->worker[0]);
        for (unsigned t = 1; t < started; t++)
            pthread_join(job->worker[t].thread, NULL);
        if (job->threads) {
            pthread_barrier_destroy(&job->step);
            done = !atomic_load_explicit(&job->miscounted, memory_order_relaxed);
        }
    }
    if (done) {
        for (unsigned t = 0; t < job->threads; t++)
            feox_log_snapshot_writer_merge(w, &job->worker[t].share);
        feox_log_snapshot_write(s->storage, w);
        s->closing_entries = job->at;
        s->closing_count = job->n;
        s->closing_entries_borrowed = job->at_borrowed;
    }
    free_job(job, done);
    return done;
}
