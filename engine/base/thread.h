/*
 * thread.h — how the engine starts a thread of its own (maintenance, flusher, compactor, reaper,
 * background load and its ordered-index builder, load pipe worker): with the application's
 * signals blocked.
 *
 * Why: a new thread inherits its creator's signal mask, and a process-directed signal (kill,
 * alarm, a terminal's SIGINT, SIGCHLD) goes to any thread that does not block it. An engine
 * thread that took one would run the application's handler on a thread the application never
 * made, and the EINTR the application waits for (alarm() around a blocking call, sigwait() in a
 * thread of its own) would not come. So every engine thread blocks every signal but the
 * synchronous ones the kernel sends to the faulting thread itself (SIGSEGV, SIGBUS, SIGFPE,
 * SIGILL, SIGTRAP, SIGSYS): a crash in an engine thread still crashes, and sanitizers and
 * debuggers still see it; and SIGPROF, so a profiler's samples (ITIMER_PROF) land on the engine
 * thread that spent the CPU.
 */
#ifndef FEOX_THREAD_H
#define FEOX_THREAD_H

#include <pthread.h>

/* pthread_create(thread, NULL, start, arg), the new thread's signal mask as above from its first
 * instruction: the calling thread blocks those signals, creates the thread (which inherits the
 * mask) and restores its own mask, so there is no instant at which the new thread could take
 * one. The caller's mask is unchanged on return. Returns pthread_create's error (0: started). */
int feox_thread_start(pthread_t *thread, void *(*start)(void *), void *arg);

#endif
