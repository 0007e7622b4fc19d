/*
 * bench_reopen.c — open and close of a store file (issue 15's "Open and close of a store file"):
 * writes N records (16-byte keys in random order, 100-byte values) to a store file once, then
 * times, per repetition: feox_open, the first answered point read from the start of the open
 * (served from the file's index snapshot while the indexes load in the background, when the
 * last close left one: engine/storage/log/log_snapshot.c), the whole index (the first range
 * read, one cursor row, waits for the load: records/s over it), the log replay alone (the
 * backend's recovery_ns: the scan and the store's sink, without the sort, the ordered index
 * build and the hash fill that follow it), and feox_close: after a write (flushed before the
 * close is timed) on odd repetitions, where it appends the next snapshot, and with nothing
 * written on even ones.
 * Prints numbers, asserts nothing. Not part of `make bench`:
 *
 *   make B=build build/bench/bench_reopen && build/bench/bench_reopen [N [reps [dir]]]
 *
 * FEOX_BENCH_KEEP=1 keeps the file (<dir>/bench_reopen_<N>.feox) and reuses it on the next run;
 * CAP=n sets feox_config.initial_capacity (the headline runs with the default).
 * On a VM most of what is left of the open is first-touch page faults of the ~200 MB the index
 * takes at 1M records: GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (malloc asks for transparent huge
 * pages) cut the open from ~450 ms to ~200 ms here (2026-12-04, 2 vCPUs).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "feox.h"

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* CPU time of the process (all threads): a figure less sensitive than wall time to a busy
 * machine. */
static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void make_key(uint64_t i, uint8_t key[16])
{
    /* splitmix64 of i: keys in random order, unique per i */
    uint64_t z = i + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    memcpy(key, &z, 8);
    memcpy(key + 8, &i, 8);
}

static feox_store *open_at(const char *path)
{
    feox_config cfg;
    feox_config_init(&cfg);
    cfg.path = path;
    if (getenv("CAP"))
        cfg.initial_capacity = strtoull(getenv("CAP"), NULL, 10);
    feox_store *s = NULL;
    feox_err err = feox_open(&cfg, &s);
    if (err) {
        fprintf(stderr, "open %s: %s (%s)\n", path, feox_strerror(err), feox_error_detail());
        exit(1);
    }
    return s;
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    int reps = argc > 2 ? atoi(argv[2]) : 3;
    const char *dir = argc > 3 ? argv[3] : "/tmp";
    char path[4096];
    snprintf(path, sizeof path, "%s/bench_reopen_%d.feox", dir, (int)getpid());
    uint8_t key[16], value[100];
    memset(value, 'v', sizeof value);

    /* FEOX_BENCH_KEEP=1: reuse a file left by an earlier run of the same N and keep it. */
    bool keep = getenv("FEOX_BENCH_KEEP") != NULL;
    if (keep)
        snprintf(path, sizeof path, "%s/bench_reopen_%llu.feox", dir, (unsigned long long)n);
    feox_store *s = open_at(path);
    for (uint64_t i = feox_len(s, 0); i < n; i++) {
        make_key(i, key);
        if (feox_insert(s, key, sizeof key, value, sizeof value, NULL, NULL) != FEOX_OK) {
            fprintf(stderr, "put failed: %s\n", feox_error_detail());
            return 1;
        }
    }
    uint64_t t0 = now_ns();
    feox_close(s);
    printf("records %llu, first close %.1f ms\n", (unsigned long long)n, (now_ns() - t0) / 1e6);

    for (int rep = 0; rep < reps; rep++) {
        uint64_t start = now_ns();
        s = open_at(path);
        uint64_t opened = now_ns();
        make_key(n / 2, key);
        feox_value *v = NULL;
        if (feox_get_ref(s, key, sizeof key, &v) != FEOX_OK) {
            fprintf(stderr, "first get failed: %s\n", feox_error_detail());
            return 1;
        }
        feox_value_release(v);
        uint64_t first_get = now_ns();
        feox_cursor *c = NULL;
        if (feox_cursor_open(s, &c) != FEOX_OK) {
            fprintf(stderr, "cursor failed: %s\n", feox_error_detail());
            return 1;
        }
        feox_cursor_seek(c, FEOX_SEEK_FIRST, NULL, 0);
        int valid = feox_cursor_valid(c);
        feox_cursor_close(c);
        uint64_t first_range = now_ns();
        feox_stats st;
        feox_get_stats(s, &st);
        /* Odd repetitions write one record, flushed (written and fsynced) before the close is
         * timed, so that the close writes a new snapshot; even ones write nothing (the close
         * keeps the snapshot the open used, and writes nothing). */
        bool wrote = rep % 2 == 1;
        if (wrote) {
            make_key(n / 3, key);
            if (feox_insert(s, key, sizeof key, value, sizeof value, NULL, NULL) != FEOX_OK ||
                feox_flush(s) != FEOX_OK) {
                fprintf(stderr, "put failed: %s\n", feox_error_detail());
                return 1;
            }
        }
        uint64_t closing = now_ns(), closing_cpu = cpu_ns();
        feox_close(s);
        uint64_t closed = now_ns(), close_cpu = cpu_ns() - closing_cpu;
        double rec_s =
            st.recovery_ns ? (double)st.recovered_records * 1e9 / (double)st.recovery_ns : 0;
        printf("rep %d: open %.1f ms, open→first get %.2f ms, open→whole index (first range) "
               "%.1f ms%s (%.2fM records/s), log replay %.1f ms (%.2fM records/s), "
               "close %.1f ms, %.1f ms CPU (%s)\n",
               rep, (opened - start) / 1e6, (first_get - start) / 1e6, (first_range - start) / 1e6,
               valid ? "" : " (EMPTY)",
               (double)st.recovered_records * 1e3 / (double)(first_range - start),
               st.recovery_ns / 1e6, rec_s / 1e6, (closed - closing) / 1e6, close_cpu / 1e6,
               wrote ? "after a write" : "nothing written");
    }
    if (!keep)
        unlink(path);
    return 0;
}
