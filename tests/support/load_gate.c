/*
 * load_gate.c — the background-load gate of load_gate.h: a mutex, a condition and two counts.
 */
#include "load_gate.h"

#include <pthread.h>
#include <stdbool.h>

#include "store/store_internal.h"

static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_open = true;
static int loads_held;
static int waits_seen;

void ftest_load_gate_open(void)
{
    pthread_mutex_lock(&gate_lock);
    gate_open = true;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
}

static void hold_load(feox_store *s)
{
    (void)s;
    pthread_mutex_lock(&gate_lock);
    loads_held++;
    while (!gate_open)
        pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
}

static void count_wait(feox_store *s)
{
    (void)s;
    pthread_mutex_lock(&gate_lock);
    waits_seen++;
    pthread_mutex_unlock(&gate_lock);
    ftest_load_gate_open();
}

void ftest_load_gate_arm(void)
{
    pthread_mutex_lock(&gate_lock);
    gate_open = false;
    loads_held = waits_seen = 0;
    pthread_mutex_unlock(&gate_lock);
    feox_background_load_hook = hold_load;
    feox_load_wait_hook = count_wait;
}

void ftest_load_gate_disarm(void)
{
    ftest_load_gate_open();
    feox_background_load_hook = NULL;
    feox_load_wait_hook = NULL;
}

static int counted(const int *n)
{
    pthread_mutex_lock(&gate_lock);
    int v = *n;
    pthread_mutex_unlock(&gate_lock);
    return v;
}

int ftest_load_gate_loads(void)
{
    return counted(&loads_held);
}

int ftest_load_gate_waits(void)
{
    return counted(&waits_seen);
}
