/*
 * test_thread_signals.c — the threads the engine starts never take the application's signals
 * (engine/base/thread.c): each starts with every signal blocked but the synchronous ones the
 * kernel sends to the faulting thread (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS) and
 * SIGPROF (a profiler's sampling signal).
 *   memory      a memory store open (maintenance thread);
 *   file        a store file open (maintenance, flusher, compactor);
 *   load        a store file's background load held back (load thread);
 *   reaper      the reaper held inside the freeing of a large closed store.
 * In each: every thread of the process but the main one has the mask above (read from
 * /proc/self/task/<tid>/status, so a thread that would take a signal is seen without waiting for
 * one), except a thread that is exiting (a close's threads just joined, a finished load's): the
 * kernel picks none of those for a process-directed signal, and its mask is being taken down;
 * then the main thread blocks SIGUSR1 and sends it to the whole process (kill): no handler
 * runs and the signal is pending; unblocked, it runs once, on the main thread.
 *   start       feox_thread_start itself (every other engine thread, the ordered-index builder
 *               and the load pipe worker too, starts through it): the new thread's own mask is
 *               the one above whatever its creator's (none blocked, or SIGSEGV blocked too), and
 *               the creator's mask is unchanged.
 * The main thread leaves every signal unblocked while the engine starts its threads, as an
 * application that never thought about masks does.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/thread.h"
#include "feox.h"
#include "feox_test_support.h"
#include "load_gate.h"
#include "store/store_internal.h"
#include "temp_store_dir.h"

/* More than FEOX_REAP_MIN_KEYS, so the close hands the store to the reaper. */
#define LARGE 70000

static char dir[] = "/tmp/feox_thread_signals_XXXXXX";
static char path[sizeof dir + 32];
static pthread_t main_thread;

/* ---- the mask of every other thread, from /proc ---- */

static const int application_signals[] = {SIGINT,  SIGTERM, SIGALRM, SIGCHLD, SIGUSR1,
                                          SIGUSR2, SIGHUP,  SIGPIPE, SIGQUIT, SIGWINCH};
static const int deliverable_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL,
                                          SIGTRAP, SIGSYS, SIGPROF};

static bool in_mask(unsigned long long mask, int sig)
{
    return (mask >> (sig - 1)) & 1;
}

/* The SigBlk line of /proc/self/task/<tid>/status into *mask; false if the thread has exited. */
static bool read_blocked_mask(long tid, unsigned long long *mask)
{
    char file[64];
    snprintf(file, sizeof file, "/proc/self/task/%ld/status", tid);
    FILE *f = fopen(file, "r");
    if (!f)
        return false;
    char line[256];
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = sscanf(line, "SigBlk: %llx", mask) == 1;
    fclose(f);
    return found;
}

/* The thread's own mask, as read_blocked_mask; false if it has exited. glibc blocks every signal
 * in a thread from its clone until it sets the thread's mask, and again while the thread exits:
 * such a mask is read again until the thread has its own or is gone (a thread that keeps it for
 * a million reads is taken at its word, and fails the check of the synchronous signals). */
static bool blocked_mask_of(long tid, unsigned long long *mask)
{
    for (int reads = 0; reads < 1000000; reads++) {
        if (!read_blocked_mask(tid, mask))
            return false;
        bool every_signal = true;
        for (int sig = 1; sig < 32 && every_signal; sig++)
            every_signal = sig == SIGKILL || sig == SIGSTOP || in_mask(*mask, sig);
        if (!every_signal)
            return true;
        sched_yield();
    }
    return true;
}

/* PF_EXITING of the kernel's task flags (include/linux/sched.h; field 9 of /proc/<tid>/stat): the
 * thread is exiting, and the kernel no longer picks it for a process-directed signal. */
#define TASK_EXITING 0x4u

/* Whether the thread is exiting (or already gone). Read after its mask: the flag, once set, stays,
 * so a mask read while the thread was exiting is always recognised. */
static bool is_exiting(long tid)
{
    char file[64], line[1024];
    snprintf(file, sizeof file, "/proc/self/task/%ld/stat", tid);
    FILE *f = fopen(file, "r");
    if (!f)
        return true;
    bool read = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    const char *after_name = read ? strrchr(line, ')') : NULL; /* the name may hold spaces */
    unsigned flags = 0;
    if (!after_name || sscanf(after_name + 1, " %*c %*d %*d %*d %*d %*d %u", &flags) != 1)
        return true;
    return (flags & TASK_EXITING) != 0;
}

/* The threads of the process (their kernel ids, in the order listed), at most 64. A thread that
 * exits while /proc/self/task is read can end the listing early, so it is read until two readings
 * in a row agree. */
typedef struct thread_list {
    long tid[64];
    size_t count;
} thread_list;

static void read_thread_list(thread_list *out)
{
    DIR *tasks = opendir("/proc/self/task");
    assert_non_null(tasks);
    out->count = 0;
    struct dirent *d;
    while ((d = readdir(tasks)) != NULL) {
        if (d->d_name[0] == '.')
            continue;
        assert_true(out->count < sizeof out->tid / sizeof *out->tid);
        out->tid[out->count++] = atol(d->d_name);
    }
    closedir(tasks);
}

static bool same_threads(const thread_list *a, const thread_list *b)
{
    if (a->count != b->count)
        return false;
    return memcmp(a->tid, b->tid, a->count * sizeof *a->tid) == 0;
}

static void list_threads(thread_list *out)
{
    static thread_list again;
    read_thread_list(out);
    for (read_thread_list(&again); !same_threads(out, &again); read_thread_list(&again))
        *out = again;
}

/* Every thread but the main one and those exiting (a close's threads just joined, a load's thread
 * that has finished) blocks the application's signals and none of the synchronous ones; there are
 * at least at_least of them. */
static void expect_engine_threads_masked(int at_least)
{
    static thread_list threads;
    list_threads(&threads);
    int others = 0;
    for (size_t t = 0; t < threads.count; t++) {
        long tid = threads.tid[t];
        unsigned long long mask = 0;
        if (tid == (long)getpid() || !blocked_mask_of(tid, &mask) || is_exiting(tid))
            continue;
        others++;
        for (size_t i = 0; i < sizeof application_signals / sizeof *application_signals; i++) {
            if (!in_mask(mask, application_signals[i]))
                fail_msg("thread %ld takes signal %d (SigBlk %llx)", tid, application_signals[i],
                         mask);
        }
        for (size_t i = 0; i < sizeof deliverable_signals / sizeof *deliverable_signals; i++) {
            if (in_mask(mask, deliverable_signals[i]))
                fail_msg("thread %ld blocks deliverable signal %d (SigBlk %llx)", tid,
                         deliverable_signals[i], mask);
        }
    }
    assert_true(others >= at_least);
}

/* ---- a process-directed signal reaches the main thread only ---- */

static atomic_int handled;           /* SIGUSR1 handler runs */
static atomic_bool handled_off_main; /* one of them on a thread other than the main one */

static void record_signal(int sig)
{
    (void)sig;
    atomic_fetch_add(&handled, 1);
    if (!pthread_equal(pthread_self(), main_thread))
        atomic_store(&handled_off_main, true);
}

static void expect_signal_waits_for_the_main_thread(void)
{
    struct sigaction on_usr1, before_action;
    memset(&on_usr1, 0, sizeof on_usr1);
    on_usr1.sa_handler = record_signal;
    sigemptyset(&on_usr1.sa_mask);
    assert_int_equal(sigaction(SIGUSR1, &on_usr1, &before_action), 0);
    atomic_store(&handled, 0);
    atomic_store(&handled_off_main, false);

    sigset_t usr1, before_mask, pending;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    assert_int_equal(pthread_sigmask(SIG_BLOCK, &usr1, &before_mask), 0);
    assert_int_equal(kill(getpid(), SIGUSR1), 0);
    assert_int_equal(sigpending(&pending), 0);
    assert_int_equal(atomic_load(&handled), 0);
    assert_true(sigismember(&pending, SIGUSR1));
    /* Unblocked, a pending signal is delivered before pthread_sigmask returns. */
    assert_int_equal(pthread_sigmask(SIG_SETMASK, &before_mask, NULL), 0);
    assert_int_equal(atomic_load(&handled), 1);
    assert_false(atomic_load(&handled_off_main));
    assert_int_equal(sigaction(SIGUSR1, &before_action, NULL), 0);
}

static void expect_signals_kept_from_engine_threads(int at_least)
{
    expect_engine_threads_masked(at_least);
    expect_signal_waits_for_the_main_thread();
}

/* ---- the stores ---- */

/* The store a test has open: its teardown closes it if a failed check left it open, so the next
 * test finds no thread of it. */
static feox_store *store;

static void open_store(const char *at)
{
    feox_config cfg;
    feox_config_init(&cfg);
    cfg.path = at;
    store = ftest_open(&cfg);
}

static void close_store(void)
{
    feox_store *s = store;
    store = NULL;
    assert_int_equal(feox_close(s), FEOX_OK);
}

static void insert_keys(feox_store *s, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        char key[32], value[32];
        int key_len = snprintf(key, sizeof key, "key-%08u", i);
        int value_len = snprintf(value, sizeof value, "v%u", i);
        assert_int_equal(feox_insert(s, key, (size_t)key_len, value, (size_t)value_len, NULL, NULL),
                         FEOX_OK);
    }
}

static void test_memory_store(void **state)
{
    (void)state;
    open_store(NULL);
    insert_keys(store, 10);
    expect_signals_kept_from_engine_threads(1); /* maintenance */
    close_store();
}

static void test_store_file(void **state)
{
    (void)state;
    unlink(path);
    open_store(path);
    insert_keys(store, 10);
    expect_signals_kept_from_engine_threads(3); /* maintenance, flusher, compactor */
    close_store();
}

static void test_background_load(void **state)
{
    (void)state;
    unlink(path);
    open_store(path);
    insert_keys(store, 100);
    close_store(); /* appends the index snapshot */
    ftest_load_gate_arm();
    open_store(path);
    assert_int_equal(atomic_load(&store->load_state), FEOX_LOAD_RUNNING);
    expect_signals_kept_from_engine_threads(2); /* the load, maintenance */
    ftest_load_gate_open();
    assert_int_equal(feox_len(store, 0), 100);  /* waits for the load */
    expect_signals_kept_from_engine_threads(3); /* maintenance, flusher, compactor */
    close_store();
}

/* The reaper, held at its first free until released. The reaper is the one thread that did not
 * exist when the hold was armed (the store's maintenance thread did: its frees, before the close
 * joins it, go through). Threads are told apart by kernel id: a pthread_t may be reused. */
static pthread_mutex_t reaper_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t reaper_cond = PTHREAD_COND_INITIALIZER;
static bool hold_reaper, reaper_held;
static long threads_before[64];
static size_t threads_before_count;

static void list_threads_before(void)
{
    DIR *tasks = opendir("/proc/self/task");
    assert_non_null(tasks);
    threads_before_count = 0;
    struct dirent *d;
    while ((d = readdir(tasks)) != NULL) {
        if (d->d_name[0] == '.')
            continue;
        assert_true(threads_before_count < sizeof threads_before / sizeof *threads_before);
        threads_before[threads_before_count++] = atol(d->d_name);
    }
    closedir(tasks);
}

static bool is_reaper(void)
{
    long self = (long)syscall(SYS_gettid);
    for (size_t i = 0; i < threads_before_count; i++) {
        if (threads_before[i] == self)
            return false;
    }
    return true;
}

static void holding_free(void *p)
{
    if (p) {
        pthread_mutex_lock(&reaper_lock);
        if (hold_reaper && is_reaper()) {
            reaper_held = true;
            pthread_cond_broadcast(&reaper_cond);
            while (hold_reaper)
                pthread_cond_wait(&reaper_cond, &reaper_lock);
        }
        pthread_mutex_unlock(&reaper_lock);
    }
    free(p);
}

static void set_reaper_hold(bool hold)
{
    pthread_mutex_lock(&reaper_lock);
    hold_reaper = hold;
    reaper_held = false;
    pthread_cond_broadcast(&reaper_cond);
    pthread_mutex_unlock(&reaper_lock);
}

static void wait_until_reaper_held(void)
{
    pthread_mutex_lock(&reaper_lock);
    while (!reaper_held)
        pthread_cond_wait(&reaper_cond, &reaper_lock);
    pthread_mutex_unlock(&reaper_lock);
}

static void test_reaper_freeing_a_large_store(void **state)
{
    (void)state;
    feox_set_allocator(malloc, realloc, holding_free);
    open_store(NULL);
    insert_keys(store, LARGE);
    list_threads_before(); /* read by holding_free only once the hold is armed */
    set_reaper_hold(true);
    close_store();
    wait_until_reaper_held();
    expect_signals_kept_from_engine_threads(1); /* the reaper */
}

/* feox_thread_start: the started thread reads its own mask. */
static void *read_own_mask(void *arg)
{
    pthread_sigmask(SIG_BLOCK, NULL, (sigset_t *)arg);
    return NULL;
}

static void expect_engine_mask(const sigset_t *mask)
{
    for (size_t i = 0; i < sizeof application_signals / sizeof *application_signals; i++)
        assert_true(sigismember(mask, application_signals[i]));
    for (size_t i = 0; i < sizeof deliverable_signals / sizeof *deliverable_signals; i++)
        assert_false(sigismember(mask, deliverable_signals[i]));
}

static void expect_started_thread_masked(const sigset_t *creator_mask)
{
    sigset_t before, after, started;
    assert_int_equal(pthread_sigmask(SIG_SETMASK, creator_mask, &before), 0);
    pthread_t thread;
    sigemptyset(&started);
    int err = feox_thread_start(&thread, read_own_mask, &started);
    pthread_sigmask(SIG_SETMASK, NULL, &after);
    pthread_sigmask(SIG_SETMASK, &before, NULL);
    assert_int_equal(err, 0);
    assert_int_equal(pthread_join(thread, NULL), 0);
    expect_engine_mask(&started);
    for (int sig = 1; sig < 32; sig++)
        assert_int_equal(sigismember(&after, sig), sigismember(creator_mask, sig));
}

static void test_thread_start(void **state)
{
    (void)state;
    sigset_t none, segv;
    sigemptyset(&none);
    expect_started_thread_masked(&none);
    sigemptyset(&segv);
    sigaddset(&segv, SIGSEGV);
    sigaddset(&segv, SIGUSR2);
    expect_started_thread_masked(&segv);
}

static int setup(void **state)
{
    (void)state;
    main_thread = pthread_self();
    assert_int_equal(ftest_temp_store_make(dir, path, sizeof path), 0);
    return 0;
}

/* After each test, passed or not: nothing held, no store open, every store freed. */
static int release_everything(void **state)
{
    (void)state;
    ftest_load_gate_disarm();
    set_reaper_hold(false);
    if (store)
        feox_close(store);
    store = NULL;
    feox_close_wait();
    feox_set_allocator(NULL, NULL, NULL);
    unlink(path);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rmdir(dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_thread_start),
        cmocka_unit_test_teardown(test_memory_store, release_everything),
        cmocka_unit_test_teardown(test_store_file, release_everything),
        cmocka_unit_test_teardown(test_background_load, release_everything),
        cmocka_unit_test_teardown(test_reaper_freeing_a_large_store, release_everything),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
