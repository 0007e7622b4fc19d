/*
 * bench.h — shared declarations of the feox benchmark harness (tests/bench/, one binary
 * feox_bench). The harness measures every store through the same small adapter interface
 * (bench_adapter), runs peers interleaved in one process, and reports medians and in-run ratios.
 *
 *   bench_main.c       arguments, the order of runs            bench_keys.c     keys, values, Zipf
 *   bench_workloads.c  the raw-API workloads over adapters      bench_report.c   output
 *   bench_feox.c / bench_lmdb.c / bench_sqlite.c / bench_rocksdb.c   the adapters
 *   bench_sql.c        SQL: feox vtab vs native table vs null vtab
 *   bench_sql_reopen.c SQL: a new connection's first answer, full load, change feed
 *   bench_floor.c      memory floor (pointer chase) and hash-probe floor (ck_hs + ck_epoch)
 *   bench_special.c    feox-only workloads: counters, JSON patch, TTL, persistence, recovery
 *   ratios.gp          gnuplot script: the ratios as an SVG chart (make bench)
 */
#ifndef FEOX_BENCH_H
#define FEOX_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BENCH_KEY_SIZE 16
#define BENCH_VALUE_SIZE 100
#define BENCH_MAX_REPS 64
#define BENCH_SCAN_LEN 100

/* ---- run configuration (bench_main.c) ------------------------------------------------------ */

typedef struct bench_config {
    uint64_t n;           /* records loaded */
    uint64_t read_ops;    /* ops per read phase */
    uint64_t write_ops;   /* ops per write phase */
    uint64_t scan_ops;    /* scans per scan phase */
    double phase_seconds; /* a phase stops early after this long */
    int reps;
    int max_threads; /* nproc */
    uint64_t seed;
    const char *tmp_root;    /* where persistent stores live */
    const char *ratios_path; /* the chart's data file, or NULL */
    uint64_t durable_keys;   /* keys preloaded for the fsync-per-commit write phases */
    bool quick;
} bench_config;

extern bench_config bench_cfg;

/* ---- keys, values, random numbers (bench_keys.c) ------------------------------------------- */

uint64_t bench_splitmix64(uint64_t x);
/* 16-byte key of index i: big-endian splitmix(i ^ seed) || big-endian i. */
void bench_key(uint64_t i, uint8_t out[BENCH_KEY_SIZE]);
/* A key guaranteed absent from every store (distinct index space). */
void bench_miss_key(uint64_t i, uint8_t out[BENCH_KEY_SIZE]);
/* 100 deterministic bytes for (index, version). */
void bench_value(uint64_t i, uint64_t version, uint8_t out[BENCH_VALUE_SIZE]);

typedef struct bench_rng {
    uint64_t state;
} bench_rng;
void bench_rng_seed(bench_rng *r, uint64_t seed);
uint64_t bench_rng_next(bench_rng *r);
uint64_t bench_rng_below(bench_rng *r, uint64_t bound);

/* YCSB's Zipfian generator (Gray et al.), theta 0.99, ranks scrambled by hashing. */
typedef struct bench_zipf {
    uint64_t items;
    double theta, zetan, alpha, eta, zeta2;
} bench_zipf;
void bench_zipf_init(bench_zipf *z, uint64_t items, double theta);
uint64_t bench_zipf_next(const bench_zipf *z, bench_rng *r); /* scrambled, in [0, items) */

double bench_now_sec(void);  /* CLOCK_MONOTONIC */
uint64_t bench_now_ns(void); /* CLOCK_MONOTONIC */

/* ---- adapters --------------------------------------------------------------------------------
 * A store is opened once per repetition. Operations take a per-thread context (ctx_open); stores
 * that cannot be shared by threads leave ctx_open_extra NULL and run single-threaded only.
 * get copies the value out into buf (cap >= BENCH_VALUE_SIZE) and returns 1 on hit, 0 on miss,
 * -1 on error. put is an upsert committed on its own (per-op commit). scan copies up to n values
 * starting at the first key >= start and returns how many it visited. rmw reads the key and
 * writes a new value derived from it in one atomic step (a CAS loop or a read-write txn). */
typedef struct bench_adapter {
    const char *name;               /* column name in the report, e.g. "lmdb" */
    const char *describe;           /* one line: configuration and durability */
    void *(*open)(const char *dir); /* dir: an empty private directory */
    void (*close)(void *store);
    bool persistent; /* open(dir) of a closed store's dir opens its data again */
    /* Durable adapters: the same store without per-commit fsync, which preloads the data (bulk
     * or write-behind) before this adapter opens it again; NULL for the others. */
    const struct bench_adapter *preload_with;
    int (*load)(void *store, uint64_t first, uint64_t count); /* bulk load indexes */
    void *(*ctx_open)(void *store);                           /* the main thread's context */
    void *(*ctx_open_extra)(void *store); /* another thread's context; NULL = no threads */
    void (*ctx_close)(void *ctx);
    int (*get)(void *ctx, const uint8_t *key, uint8_t *buf, size_t cap, size_t *len);
    int (*put)(void *ctx, const uint8_t *key, const uint8_t *value, size_t len);
    int (*del)(void *ctx, const uint8_t *key);
    size_t (*scan)(void *ctx, const uint8_t *start, size_t n, uint8_t *buf);
    int (*rmw)(void *ctx, const uint8_t *key, uint64_t version);
} bench_adapter;

extern const bench_adapter bench_feox_memory_adapter;
extern const bench_adapter bench_feox_persist_adapter;
extern const bench_adapter bench_lmdb_adapter;
extern const bench_adapter bench_sqlite_memory_adapter;
extern const bench_adapter bench_sqlite_wal_adapter;
extern const bench_adapter bench_rocksdb_adapter;
/* The same stores with an fsync before every commit returns (the durable write phases). */
extern const bench_adapter bench_feox_full_adapter;
extern const bench_adapter bench_lmdb_sync_adapter;
extern const bench_adapter bench_sqlite_wal_full_adapter;
extern const bench_adapter bench_rocksdb_sync_adapter;

/* ---- results (bench_report.c) -------------------------------------------------------------- */

/* Record one sample (ns per op) of store `column` in workload `workload`. Units other than ns/op
 * are named in the workload's note. The first column recorded for a workload is its subject
 * (usually "feox"): ratios are subject / peer. */
void bench_record(const char *workload, const char *column, double ns_per_op);
void bench_note(const char *workload, const char *note);
double bench_median(const char *workload, const char *column); /* NAN if absent */
/* Name a comparison of `workload`: subject/peer per repetition, with a label saying what the
 * pair is (e.g. "feox weaker"). A workload with named comparisons shows only those; without,
 * its subject is compared with every other column, unlabelled. */
void bench_compare(const char *workload, const char *subject, const char *peer, const char *label);

/* Latency histogram of individually timed operations: log buckets (below 16 ns exact, then 8 per
 * power of two, 12.5% wide), HdrHistogram-style; p50/p99 report a bucket's upper bound. */
#define BENCH_HIST_BUCKETS 496
typedef struct bench_hist {
    uint64_t counts[BENCH_HIST_BUCKETS];
    uint64_t total;
} bench_hist;
void bench_hist_add(bench_hist *h, uint64_t ns);
void bench_record_hist(const char *workload, const char *column, const bench_hist *h); /* merges */
/* One operation in BENCH_LATENCY_EVERY is timed on its own (two clock reads around it). */
#define BENCH_LATENCY_EVERY 8

void bench_print_environment(void);
void bench_print_table(void);
void bench_print_machine_lines(void);
void bench_print_targets(void);
void bench_write_ratios(const char *path); /* the chart's data (tests/bench/ratios.gp) */

/* ---- workload groups --------------------------------------------------------------------------
 */

/* One repetition of every raw-API workload over one adapter, threaded read scaling included when
 * the adapter allows threads (bench_workloads.c). */
void bench_run_raw_workloads(const bench_adapter *a, int rep);
/* Overwrite, insert and delete with an fsync per commit, on durable_keys preloaded keys. */
void bench_run_durable_workloads(const bench_adapter *a, int rep);
void bench_label_write_pairs(void);    /* the comparisons of write workloads (bench_workloads.c) */
void bench_run_sql_workloads(int rep); /* bench_sql.c */
/* A new connection to the headline SQL files (bench_sql_reopen.c): open to first answer, the
 * full cache load, the change feed after k commits by the writers. Rows sql_open_first_select,
 * sql_full_load, sql_feed_k1, sql_feed_k1000. feox_writer NULL: native only. */
struct sqlite3;
void bench_sql_reopen(const char *dir, struct sqlite3 *feox_writer, struct sqlite3 *native_writer,
                      uint64_t keys, int rep);
void bench_sql_reopen_notes(void);
void bench_run_floor_workloads(int rep);   /* bench_floor.c */
void bench_run_special_workloads(int rep); /* bench_special.c */
void bench_run_memory_workloads(int rep);  /* bench_memory.c */

/* Helpers shared by adapters. */
char *bench_make_dir(const char *name);  /* fresh directory under tmp_root; caller frees */
void bench_remove_dir(const char *path); /* rm -rf */
_Noreturn void bench_die(const char *what, const char *detail);

#endif /* FEOX_BENCH_H */
