/*
 * wall_clock_shim.c — a test-only LD_PRELOAD library that moves the process's wall clock:
 * clock_gettime(CLOCK_REALTIME[_COARSE]) returns the real time plus FEOX_TEST_WALL_OFFSET_S
 * seconds (a signed integer; unset = 0). Other clocks (CLOCK_MONOTONIC, ...) are untouched.
 *
 * Used by test_replay.py to run "nodes" under different wall clocks, as the machines of a
 * replicated cluster are. It lives with the tests and is compiled by them; nothing of feox reads
 * the variable, so no build of the extension a user runs can be moved by it (the extension is
 * tested exactly as shipped, and the engine reads the wall clock only through clock_gettime).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>

int clock_gettime(clockid_t id, struct timespec *ts)
{
    static int (*real)(clockid_t, struct timespec *);
    if (real == NULL) {
        real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
        if (real == NULL) {
            return -1;
        }
    }
    int rc = real(id, ts);
    if (rc == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) {
        const char *offset = getenv("FEOX_TEST_WALL_OFFSET_S");
        if (offset != NULL) {
            ts->tv_sec += (time_t)strtoll(offset, NULL, 10);
        }
    }
    return rc;
}
