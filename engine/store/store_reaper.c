/*
 * store_reaper.c — the memory of a large closed store given back on a background thread, so
 * that feox_close returns once the store is closed (backend flushed and closed, file lock
 * released, unlisted) instead of after ~2M free() calls (a store of 1M keys written through the
 * API: ~0.3 s). Redis frees large keys the same way ("lazyfree").
 *
 *   who       a store holding at least FEOX_REAP_MIN_KEYS keys when its last close comes; a
 *             smaller one is freed by the closing thread, as before. Nothing but the reaper
 *             references a store once it is handed over: feox_value handles the application still
 *             holds keep their versions (reference counts, as after any close).
 *   thread    one per process, started by the first hand-over, waiting for work afterwards.
 *             It takes no registry lock: the store is no longer listed.
 *   fork()    the prepare handler (after the registry lock) waits until the reaper is between
 *             two stores and holds the queue lock until the fork is done, so no store is copied
 *             half freed. The child has no reaper thread: its copies of the stores still queued
 *             are kept, never freed, in a list of their own (as the stores it inherits: their
 *             memory is the parent's business; the list keeps them reachable for a leak
 *             checker), and its first hand-over starts a thread of its own. Lock order:
 *             registry, queue, epoch reclamation (the reaper takes the last alone, inside
 *             the destroy function, never with the queue lock held).
 *   exit      an atexit handler and a library destructor (dlclose of feox.so) wait until the
 *             queue is empty and stop the thread: no library code runs after its unload, and a
 *             leak checker at exit finds everything given back.
 *   wait      feox_close_wait() returns once every store handed over before it is freed.
 *   opens     the thread steps aside while a store is being opened in the process: feox_open
 *             counts itself in (opens_in_progress) for its whole call, and the reaper, between
 *             two batches of entries (feox_reaper_step_aside, called by the destroy function
 *             where it holds no lock and is in no epoch section), waits until no open is in
 *             progress. A reopen right after the close of a large store then has both cores and
 *             the allocator's arena lock to itself (bench open_first_read at 1M keys, 2 busy
 *             cores: ~9 ms, against 27-55 with the reaper beside it). It does not wait for a fork
 *             (an open may be blocked on the registry lock the fork holds), nor at exit.
 *             The open's background load does not make it wait: it may run for seconds. It
 *             steps aside for at most FEOX_REAP_PAUSE_MAX_MS in all per store, so opens that
 *             follow one another without a gap cannot keep a closed store's memory.
 *   settle    the thread settles its frees (base/alloc.h): glibc merges the store's small
 *             blocks as they go, not all at once in the next large malloc of the thread that
 *             allocated them (a reopen on it: ~60 ms of its CPU for 1M keys written through the
 *             API, against ~3 ms). The merging costs the reaper about as much, off that thread.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "base/alloc.h"
#include "base/helpers.h"
#include "base/thread.h"
#include "store/store_internal.h"

static pthread_mutex_t queue_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work = PTHREAD_COND_INITIALIZER; /* a store was queued, or stop */
static pthread_cond_t done = PTHREAD_COND_INITIALIZER; /* a store was freed */
static pthread_cond_t resume = PTHREAD_COND_INITIALIZER; /* no open in progress, fork or stop */
static feox_store *queue;                              /* [queue_lock] linked by next_open */
static feox_store *inherited;        /* a fork child's copies of its parent's queue: never freed */
static bool running, stopping, busy; /* [queue_lock] */
static bool forking;                 /* [queue_lock] a fork waits for the store being freed */
static atomic_uint opens_in_progress; /* feox_open calls under way in the process */
static _Thread_local bool on_reaper_thread;
/* [reaper thread] how long it may still step aside for the store it frees: opens that follow
 * one another without a gap (connections opened per request on many threads) must not keep a
 * closed store's memory for ever. */
static uint64_t pause_left_ns;
static pthread_t reaper;
static void (*destroy)(feox_store *); /* [queue_lock] what frees a store (store.c) */
static pthread_once_t exit_hook_once = PTHREAD_ONCE_INIT;

void (*feox_reaper_step_hook)(void);
void (*feox_reaper_pause_hook)(void);

void feox_reaper_open_begin(void)
{
    atomic_fetch_add_explicit(&opens_in_progress, 1, memory_order_relaxed);
}

void feox_reaper_open_end(void)
{
    if (atomic_fetch_sub_explicit(&opens_in_progress, 1, memory_order_relaxed) != 1)
        return;
    /* The count is read again under the lock before each wait: no wakeup is lost. */
    pthread_mutex_lock(&queue_lock);
    pthread_cond_broadcast(&resume);
    pthread_mutex_unlock(&queue_lock);
}

static bool must_wait(void)
{
    return atomic_load_explicit(&opens_in_progress, memory_order_relaxed) && !forking &&
           !stopping;
}

void feox_reaper_step_aside(void)
{
    if (!on_reaper_thread)
        return; /* a small store freed by its closing thread, or a failed open's */
    if (feox_reaper_step_hook)
        feox_reaper_step_hook();
    if (!atomic_load_explicit(&opens_in_progress, memory_order_relaxed) || !pause_left_ns)
        return;
    if (feox_reaper_pause_hook)
        feox_reaper_pause_hook();
    uint64_t started = feox_monotonic_ns();
    struct timespec deadline = feox_timespec_of_ns(started + pause_left_ns);
    pthread_mutex_lock(&queue_lock);
    while (must_wait() &&
           pthread_cond_clockwait(&resume, &queue_lock, CLOCK_MONOTONIC, &deadline) != ETIMEDOUT)
        ;
    pthread_mutex_unlock(&queue_lock);
    uint64_t paused = feox_monotonic_ns() - started;
    pause_left_ns = paused < pause_left_ns ? pause_left_ns - paused : 0;
}

static void *reaper_main(void *arg)
{
    (void)arg;
    on_reaper_thread = true;
    pthread_mutex_lock(&queue_lock);
    for (;;) {
        while (!queue && !stopping)
            pthread_cond_wait(&work, &queue_lock);
        if (!queue)
            break; /* stopping, nothing left */
        feox_store *s = queue;
        queue = s->next_open;
        busy = true;
        void (*free_store)(feox_store *) = destroy;
        pthread_mutex_unlock(&queue_lock);
        pause_left_ns = FEOX_REAP_PAUSE_MAX_MS * FEOX_NS_PER_MS;
        feox_mem_settle_begin(); /* the next allocation elsewhere does not merge 1M blocks */
        free_store(s);
        feox_mem_settle_end();
        pthread_mutex_lock(&queue_lock);
        busy = false;
        pthread_cond_broadcast(&done);
    }
    pthread_mutex_unlock(&queue_lock);
    return NULL;
}

void feox_close_wait(void)
{
    pthread_mutex_lock(&queue_lock);
    while (queue || busy)
        pthread_cond_wait(&done, &queue_lock);
    pthread_mutex_unlock(&queue_lock);
}

/* Exit and unload: wait for the queue, then stop and join the thread. */
static void stop_reaper(void)
{
    pthread_mutex_lock(&queue_lock);
    bool joinable = running;
    stopping = true;
    pthread_cond_signal(&work);
    pthread_cond_broadcast(&resume); /* a paused reaper goes on: exit does not wait for opens */
    pthread_mutex_unlock(&queue_lock);
    if (joinable)
        pthread_join(reaper, NULL);
    pthread_mutex_lock(&queue_lock);
    running = false;
    stopping = false;
    pthread_mutex_unlock(&queue_lock);
}

__attribute__((destructor)) static void stop_reaper_at_unload(void)
{
    stop_reaper();
}

static void install_exit_hook(void)
{
    (void)atexit(stop_reaper); /* fails only for lack of memory: the destructor still runs */
}

bool feox_reaper_take(feox_store *s, void (*destroy_store)(feox_store *))
{
    /* (no hash index: never built) */
    if (!s->hash.shards || feox_hash_count(&s->hash) < FEOX_REAP_MIN_KEYS)
        return false;
    pthread_once(&exit_hook_once, install_exit_hook);
    pthread_mutex_lock(&queue_lock);
    bool taken = running || feox_thread_start(&reaper, reaper_main, NULL) == 0;
    if (taken) {
        running = true;
        destroy = destroy_store;
        s->next_open = queue; /* the order does not matter */
        queue = s;
        pthread_cond_signal(&work);
    }
    pthread_mutex_unlock(&queue_lock);
    return taken;
}

void feox_reaper_fork_prepare(void)
{
    pthread_mutex_lock(&queue_lock);
    /* A paused reaper goes on: the open it steps aside for may wait for the registry lock this
     * fork holds. */
    forking = true;
    pthread_cond_broadcast(&resume);
    while (busy)
        pthread_cond_wait(&done, &queue_lock);
}

void feox_reaper_fork_parent(void)
{
    forking = false;
    pthread_mutex_unlock(&queue_lock);
}

void feox_reaper_fork_child(void)
{
    while (queue) { /* the parent's: kept, never freed (see the top of the file) */
        feox_store *s = queue;
        queue = s->next_open;
        s->next_open = inherited;
        inherited = s;
    }
    running = stopping = busy = forking = false;
    /* Opens under way in the parent's other threads: none in the child (the forking thread is
     * not in feox_open), and the child's own reaper must not wait for them. */
    atomic_store_explicit(&opens_in_progress, 0, memory_order_relaxed);
    /* The parent's reaper may have been waiting on `work`: a condition variable with a waiter
     * that does not exist in the child can block its next signal (glibc), so they start anew. */
    pthread_cond_init(&work, NULL);
    pthread_cond_init(&done, NULL);
    pthread_cond_init(&resume, NULL);
    pthread_mutex_unlock(&queue_lock);
}
