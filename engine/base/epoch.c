/*
 * epoch.c — process-wide epoch-based reclamation on ck_epoch (contract in epoch.h).
 *
 * Retired objects go onto one global lock-free stack (a C11 Treiber push: one CAS; C11 atomics
 * rather than ck_stack so ThreadSanitizer sees the ordering). A reclaimer
 * (the stores' maintenance threads, a writer that finds too much pending, or close) pops the whole
 * stack, waits out a grace period with ck_epoch_synchronize — which starts with a full fence, so
 * this is correct on weakly ordered CPUs too (ck_epoch_poll in CK 0.7.1 is not: upstream commit
 * d1b348c says it held only thanks to x86 ordering) — and then destroys the batch: everything in
 * it was unlinked before the pop, so no reader that can still see it survives the grace period.
 * A retired object's link is one word: the next link with the object's kind id in its low bits;
 * the kind (destroy function, byte count) is looked up in a table of at most 8 kinds.
 */
#include "base/epoch.h"

#include <ck_epoch.h>
#include <ck_pr.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "base/alloc.h"

/* Above this many retired-but-not-freed bytes a retiring writer reclaims inline. */
#define FEOX_EPOCH_INLINE_RECLAIM_BYTES (64u << 20)
/* Per-thread records come from a static pool first (claimed by CAS, recycled when threads exit),
 * then from the heap. CK forbids freeing a registered record, and the loadable extension can be
 * unloaded (dlclose) while its records are registered: records in the library's own static
 * memory vanish with it instead of showing up as leaks. */
#define FEOX_EPOCH_STATIC_RECORDS 256

/* The global epoch is read by every read section (ck_epoch_begin) and written only by a grace
 * period; the retire stack and its counters are written by every retire. Each group has cache
 * lines of its own, whatever order the linker gives the statics: a storm of writes must not
 * invalidate the line every reader loads, nor share one with anything else. */
static struct {
    _Alignas(64) ck_epoch_t epoch;
} global;
static struct {
    _Alignas(64) _Atomic(feox_retire_link *) stack;
    _Atomic uint64_t pending_bytes, total_retired, total_freed;
} retired;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static pthread_key_t record_key;
static atomic_int key_created;
static pthread_mutex_t reclaim_lock = PTHREAD_MUTEX_INITIALIZER;
/* Each kind of retired object by id (set by the first retire of the kind). */
static _Atomic(const feox_retire_kind *) kinds[FEOX_RETIRE_KINDS];
static ck_epoch_record_t static_records[FEOX_EPOCH_STATIC_RECORDS];
static atomic_uint static_record_used[FEOX_EPOCH_STATIC_RECORDS];
#ifdef FEOX_TSAN
static int tsan_grace_token;
#endif

static _Thread_local ck_epoch_record_t *thread_record;
static _Thread_local unsigned section_depth;

/* Thread exit: the record cannot be freed (CK forbids it), only unregistered for recycling. */
static void release_thread_record(void *record)
{
    ck_epoch_unregister(record);
}

static void init_epoch(void)
{
    ck_epoch_init(&global.epoch);
    if (pthread_key_create(&record_key, release_thread_record) == 0)
        atomic_store_explicit(&key_created, 1, memory_order_release);
}

static ck_epoch_record_t *new_record(void)
{
    for (unsigned i = 0; i < FEOX_EPOCH_STATIC_RECORDS; i++) {
        unsigned unused = 0;
        if (atomic_load_explicit(&static_record_used[i], memory_order_relaxed) == 0 &&
            atomic_compare_exchange_strong_explicit(&static_record_used[i], &unused, 1,
                                                    memory_order_seq_cst, memory_order_relaxed))
            return &static_records[i];
    }
    void *mem = NULL;
    return posix_memalign(&mem, 64, sizeof(ck_epoch_record_t)) == 0 ? mem : NULL;
}

/* Library unload (the extension's dlclose): a thread exiting later must not call a destructor
 * in unmapped code. */
__attribute__((destructor)) static void forget_thread_key(void)
{
    if (atomic_load_explicit(&key_created, memory_order_acquire))
        pthread_key_delete(record_key);
}

static ck_epoch_record_t *this_thread_record(void)
{
    if (thread_record)
        return thread_record;
    pthread_once(&init_once, init_epoch);
    ck_epoch_record_t *r = ck_epoch_recycle(&global.epoch, NULL);
    if (!r) {
        r = new_record();
        while (!r) {
            /* No memory at all: wait for a record of an exiting thread to be recycled. */
            sched_yield();
            r = ck_epoch_recycle(&global.epoch, NULL);
            if (!r)
                r = new_record();
        }
        ck_epoch_register(&global.epoch, r, NULL);
    }
    thread_record = r;
    (void)pthread_setspecific(record_key, r);
    return r;
}

/* The outermost enter costs one locked instruction (ck_epoch_begin's exchange on x86, a full fence
 * elsewhere), and it cannot be a store-release: the store announcing the section must be visible
 * before this reader loads any index pointer (store-load order), or a reclaimer's grace period
 * could miss the section and free what the reader is about to use. Dropping it would take an
 * asymmetric fence (membarrier) in ck_epoch_synchronize instead. */
void feox_epoch_enter(void)
{
    ck_epoch_record_t *r = this_thread_record();
    if (section_depth++ == 0)
        ck_epoch_begin(r, NULL);
}

void feox_epoch_exit(void)
{
    if (--section_depth == 0) {
        /* Everything this reader did happens before a reclaimer's grace period ends. */
        FEOX_TSAN_RELEASE(&tsan_grace_token);
        ck_epoch_end(thread_record, NULL);
    }
}

int feox_epoch_in_section(void)
{
    return section_depth != 0;
}

_Static_assert(FEOX_RETIRE_KINDS <= 8, "a kind id must fit a link's low 3 bits");
#define KIND_MASK ((uintptr_t)7)

void feox_epoch_retire(feox_retire_link *link, const feox_retire_kind *kind, size_t bytes)
{
    /* The kind's table slot is written once per kind (later retires only read it); the release
     * CAS below publishes it to the reclaimer with the link. */
    if (atomic_load_explicit(&kinds[kind->id], memory_order_relaxed) != kind)
        atomic_store_explicit(&kinds[kind->id], kind, memory_order_relaxed);
    atomic_fetch_add_explicit(&retired.pending_bytes, bytes, memory_order_relaxed);
    atomic_fetch_add_explicit(&retired.total_retired, 1, memory_order_relaxed);
    /* Release CAS: the reclaimer that takes the stack (acquire) sees the link and the kind. */
    feox_retire_link *head = atomic_load_explicit(&retired.stack, memory_order_relaxed);
    do {
        link->next_kind = (uintptr_t)head | (uintptr_t)kind->id;
    } while (!atomic_compare_exchange_weak_explicit(&retired.stack, &head, link,
                                                    memory_order_release, memory_order_relaxed));
    if (atomic_load_explicit(&retired.pending_bytes, memory_order_relaxed) >
            FEOX_EPOCH_INLINE_RECLAIM_BYTES &&
        !section_depth)
        feox_epoch_reclaim();
}

typedef struct retired_ptr {
    feox_retire_link link;
    size_t bytes;
    void *ptr;
} retired_ptr;

static void destroy_retired_ptr(feox_retire_link *link)
{
    retired_ptr *rp = (retired_ptr *)link;
    feox_mem_free(rp->ptr);
    feox_mem_free(rp);
}

static size_t retired_ptr_bytes(const feox_retire_link *link)
{
    return ((const retired_ptr *)link)->bytes;
}

static const feox_retire_kind retired_ptr_kind = {FEOX_RETIRE_PTR, destroy_retired_ptr,
                                                  retired_ptr_bytes};

void feox_epoch_retire_ptr(void *ptr, size_t bytes)
{
    retired_ptr *rp = feox_mem_alloc(sizeof *rp);
    if (!rp) {
        /* No node to queue it with: wait out a grace period right here instead. This runs in a
         * writer (never inside a read section), so synchronizing cannot wait for itself. */
        ck_epoch_synchronize(this_thread_record());
        feox_mem_free(ptr);
        return;
    }
    rp->ptr = ptr;
    rp->bytes = bytes;
    feox_epoch_retire(&rp->link, &retired_ptr_kind, bytes);
}

size_t feox_epoch_reclaim(void)
{
    if (section_depth)
        return 0;
    ck_epoch_record_t *r = this_thread_record();
    pthread_mutex_lock(&reclaim_lock);
    feox_retire_link *batch = atomic_exchange_explicit(&retired.stack, NULL, memory_order_acquire);
    size_t freed = 0;
    if (batch) {
        ck_epoch_synchronize(r);
        FEOX_TSAN_ACQUIRE(&tsan_grace_token);
        while (batch) {
            feox_retire_link *link = batch;
            batch = (feox_retire_link *)(link->next_kind & ~KIND_MASK);
            const feox_retire_kind *kind =
                atomic_load_explicit(&kinds[link->next_kind & KIND_MASK], memory_order_relaxed);
            size_t bytes = kind->bytes(link);
            kind->destroy(link);
            freed += bytes;
            atomic_fetch_add_explicit(&retired.total_freed, 1, memory_order_relaxed);
        }
        atomic_fetch_sub_explicit(&retired.pending_bytes, freed, memory_order_relaxed);
    }
    pthread_mutex_unlock(&reclaim_lock);
    return freed;
}

/* ck_epoch.c's value of a record's state once ck_epoch_unregister has run (not in the header). */
#define CK_RECORD_STATE_FREE 1u

void feox_epoch_fork_prepare(void)
{
    pthread_mutex_lock(&reclaim_lock);
}

void feox_epoch_fork_parent(void)
{
    pthread_mutex_unlock(&reclaim_lock);
}

void feox_epoch_fork_child(void)
{
    /* Only the forking thread runs here: nothing else touches the records list. */
    ck_stack_entry_t *cursor;
    CK_STACK_FOREACH(&global.epoch.records, cursor)
    {
        /* record_next is the record's first member. */
        ck_epoch_record_t *r = (ck_epoch_record_t *)cursor;
        if (r != thread_record && !(ck_pr_load_uint(&r->state) & CK_RECORD_STATE_FREE))
            ck_epoch_unregister(r);
    }
    pthread_mutex_unlock(&reclaim_lock);
}

uint64_t feox_epoch_pending_bytes(void)
{
    return atomic_load_explicit(&retired.pending_bytes, memory_order_relaxed);
}
uint64_t feox_epoch_total_retired(void)
{
    return atomic_load_explicit(&retired.total_retired, memory_order_relaxed);
}
uint64_t feox_epoch_total_freed(void)
{
    return atomic_load_explicit(&retired.total_freed, memory_order_relaxed);
}
