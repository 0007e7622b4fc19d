/*
 * stats.c — operation counters with a stripe per counting thread (see stats.h).
 */
#include "base/stats.h"

#include <pthread.h>
#include <stdatomic.h>

#define NO_STRIPE UINT32_MAX

/* 1 while a live thread owns the stripe. */
static atomic_uint stripe_owned[FEOX_STAT_OWNED_STRIPES];
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static pthread_key_t stripe_key;
static atomic_int key_created;
static _Thread_local unsigned thread_stripe = NO_STRIPE;
static atomic_uint next_shared;

/* A shared stripe for a thread that owns none (round robin). */
static unsigned shared_stripe(void)
{
    return FEOX_STAT_SHARED_STRIPE +
           atomic_fetch_add_explicit(&next_shared, 1, memory_order_relaxed) %
               FEOX_STAT_SHARED_STRIPES;
}

/* Thread exit: count on the shared stripe from now on (a later exit handler may still count),
 * then give the stripe back; the release hands its counts to the next owner's acquire. */
static void release_stripe(void *slot)
{
    unsigned i = (unsigned)((uintptr_t)slot - 1);
    thread_stripe = shared_stripe();
    atomic_store_explicit(&stripe_owned[i], 0, memory_order_release);
}

static void create_key(void)
{
    if (pthread_key_create(&stripe_key, release_stripe) == 0)
        atomic_store_explicit(&key_created, 1, memory_order_release);
}

/* Library unload (the extension's dlclose): a thread exiting later must not call a destructor
 * in unmapped code. */
__attribute__((destructor)) static void forget_stripe_key(void)
{
    if (atomic_load_explicit(&key_created, memory_order_acquire))
        pthread_key_delete(stripe_key);
}

/* A free stripe, now owned by this thread and given back at its exit; else the shared one. */
__attribute__((noinline)) static unsigned claim_stripe(void)
{
    pthread_once(&key_once, create_key);
    if (!atomic_load_explicit(&key_created, memory_order_acquire))
        return shared_stripe(); /* could never give it back */
    for (unsigned i = 0; i < FEOX_STAT_OWNED_STRIPES; i++) {
        unsigned free_slot = 0;
        if (atomic_load_explicit(&stripe_owned[i], memory_order_relaxed) == 0 &&
            atomic_compare_exchange_strong_explicit(&stripe_owned[i], &free_slot, 1,
                                                    memory_order_acquire, memory_order_relaxed)) {
            if (pthread_setspecific(stripe_key, (void *)(uintptr_t)(i + 1)) == 0)
                return i;
            atomic_store_explicit(&stripe_owned[i], 0, memory_order_release);
            break;
        }
    }
    return shared_stripe();
}

/* A thread's first count (it claims a stripe), or one on the shared stripe. */
__attribute__((noinline)) static void add_slow(feox_stat_counters *c, feox_stat_id id, uint64_t n)
{
    if (thread_stripe == NO_STRIPE)
        thread_stripe = claim_stripe();
    if (thread_stripe < FEOX_STAT_OWNED_STRIPES)
        feox_stat_add(c, id, n);
    else
        atomic_fetch_add_explicit(&c->stripes[thread_stripe].value[id], n, memory_order_relaxed);
}

void feox_stat_add(feox_stat_counters *c, feox_stat_id id, uint64_t n)
{
    unsigned i = thread_stripe;
    if (__builtin_expect(i >= FEOX_STAT_OWNED_STRIPES, 0)) {
        add_slow(c, id, n);
        return;
    }
    /* This thread is the stripe's only writer: no locked add; readers load it relaxed. */
    _Atomic uint64_t *counter = &c->stripes[i].value[id];
    atomic_store_explicit(counter, atomic_load_explicit(counter, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

uint64_t feox_stat_sum(const feox_stat_counters *c, feox_stat_id id)
{
    uint64_t sum = 0;
    for (unsigned i = 0; i < FEOX_STAT_STRIPES; i++)
        sum += atomic_load_explicit(&c->stripes[i].value[id], memory_order_relaxed);
    return sum;
}

void feox_stat_fill(const feox_stat_counters *c, feox_stats *out)
{
#define FILL_COUNTER(name, ID) out->name = feox_stat_sum(c, FEOX_STAT_##ID);
    FEOX_STATS_FIELDS(FILL_COUNTER, FEOX_STAT_NO_ID_)
#undef FILL_COUNTER
}
