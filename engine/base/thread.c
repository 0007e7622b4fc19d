/*
 * thread.c — feox_thread_start: an engine thread started with the application's signals
 * blocked (thread.h says why).
 */
#include "base/thread.h"

#include <signal.h>
#include <stddef.h>

/* Left deliverable: the signals the kernel sends to the thread that caused them, so a fault in
 * an engine thread still ends the process (or reaches a sanitizer's or debugger's handler), and
 * SIGPROF, so a profiler sampling with ITIMER_PROF charges the engine threads' CPU to them. */
static const int deliverable_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL,
                                          SIGTRAP, SIGSYS, SIGPROF};

static void engine_thread_mask(sigset_t *mask)
{
    sigfillset(mask);
    for (size_t i = 0; i < sizeof deliverable_signals / sizeof *deliverable_signals; i++)
        sigdelset(mask, deliverable_signals[i]);
}

int feox_thread_start(pthread_t *thread, void *(*start)(void *), void *arg)
{
    sigset_t engine_mask, caller_mask;
    engine_thread_mask(&engine_mask);
    /* SIG_SETMASK, not SIG_BLOCK: the new thread's mask is the same whatever the caller's. */
    int err = pthread_sigmask(SIG_SETMASK, &engine_mask, &caller_mask);
    if (err != 0)
        return err;
    err = pthread_create(thread, NULL, start, arg);
    (void)pthread_sigmask(SIG_SETMASK, &caller_mask, NULL); /* fails only for a bad how */
    return err;
}
