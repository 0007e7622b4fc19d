/*
 * bench_main.c — feox_bench: feox against LMDB, SQLite and RocksDB in one process, as ratios.
 *
 *   feox_bench             N = 1M, 3 repetitions           (make bench)
 *   feox_bench --quick     N = 100K, 1 repetition, < 60 s  (make bench QUICK=1; CI smoke)
 *   feox_bench --full      N = 10M, 3 repetitions          (manual; ~2-3 GiB per store)
 *   options: --n N  --reps R  --seed S  --phase-seconds X  --tmp DIR
 *            --stores feox,feox_persist,lmdb,sqlite_mem,sqlite_wal,rocksdb
 *            --no-sql  --no-special  --no-floor
 *
 * Each repetition runs every group in the same order (floors, each store's raw workloads, SQL,
 * feox-only workloads), so peers are interleaved A B C A B C and see the same machine state.
 * Output: environment, table, machine-readable lines, targets. Never fails on a slow result.
 */
#include "bench.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bench_config bench_cfg;

static const bench_adapter *const all_adapters[] = {
    &bench_feox_memory_adapter,   &bench_feox_persist_adapter, &bench_lmdb_adapter,
    &bench_sqlite_memory_adapter, &bench_sqlite_wal_adapter,   &bench_rocksdb_adapter,
};
#define ADAPTER_COUNT (sizeof all_adapters / sizeof all_adapters[0])

void bench_die(const char *what, const char *detail)
{
    fprintf(stderr, "feox_bench: %s: %s\n", what, detail ? detail : "failed");
    exit(1);
}

char *bench_make_dir(const char *name)
{
    static unsigned counter;
    size_t len = strlen(bench_cfg.tmp_root) + strlen(name) + 32;
    char *path = malloc(len);
    snprintf(path, len, "%s/%s.%u", bench_cfg.tmp_root, name, counter++);
    bench_remove_dir(path);
    if (mkdir(path, 0755) != 0)
        bench_die("mkdir", path);
    return path;
}

static int remove_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    remove(path);
    return 0;
}

void bench_remove_dir(const char *path)
{
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void usage(void)
{
    fprintf(stderr, "usage: feox_bench [--quick | --full] [--n N] [--reps R] [--seed S]\n"
                    "                  [--phase-seconds X] [--tmp DIR] [--stores a,b,...]\n"
                    "                  [--no-sql] [--no-special] [--no-floor]\n");
    exit(2);
}

static bool store_selected(const char *list, const char *name)
{
    if (!list)
        return true;
    size_t len = strlen(name);
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == len && strncmp(p, name, n) == 0)
            return true;
        if (!end)
            break;
        p = end + 1;
    }
    return false;
}

int main(int argc, char **argv)
{
    bench_cfg.n = 1000000;
    bench_cfg.reps = 3;
    bench_cfg.seed = 0x5eed0f0e;
    bench_cfg.phase_seconds = 2.0;
    long nproc = sysconf(_SC_NPROCESSORS_ONLN);
    bench_cfg.max_threads = nproc > 0 ? (int)nproc : 1;
    const char *stores = NULL, *tmp = getenv("TMPDIR");
    bool sql = true, special = true, floors = true, full = false;
    long long n_override = -1, reps_override = -1;
    double phase_override = -1;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(arg, "--quick") == 0)
            bench_cfg.quick = true;
        else if (strcmp(arg, "--full") == 0)
            full = true;
        else if (strcmp(arg, "--no-sql") == 0)
            sql = false;
        else if (strcmp(arg, "--no-special") == 0)
            special = false;
        else if (strcmp(arg, "--no-floor") == 0)
            floors = false;
        else if (next && strcmp(arg, "--n") == 0)
            n_override = atoll(argv[++i]);
        else if (next && strcmp(arg, "--reps") == 0)
            reps_override = atoll(argv[++i]);
        else if (next && strcmp(arg, "--seed") == 0)
            bench_cfg.seed = strtoull(argv[++i], NULL, 0);
        else if (next && strcmp(arg, "--phase-seconds") == 0)
            phase_override = atof(argv[++i]);
        else if (next && strcmp(arg, "--tmp") == 0)
            tmp = argv[++i];
        else if (next && strcmp(arg, "--stores") == 0)
            stores = argv[++i];
        else
            usage();
    }
    if (bench_cfg.quick) {
        bench_cfg.n = 100000;
        bench_cfg.reps = 1;
        bench_cfg.phase_seconds = 0.25;
    } else if (full) {
        bench_cfg.n = 10000000;
        bench_cfg.phase_seconds = 4.0;
    }
    if (n_override > 0)
        bench_cfg.n = (uint64_t)n_override;
    if (reps_override > 0)
        bench_cfg.reps = reps_override > BENCH_MAX_REPS ? BENCH_MAX_REPS : (int)reps_override;
    if (phase_override > 0)
        bench_cfg.phase_seconds = phase_override;
    uint64_t ops = bench_cfg.n < 1000000 ? bench_cfg.n : 1000000;
    bench_cfg.read_ops = ops;
    bench_cfg.write_ops = ops / 5;
    bench_cfg.scan_ops = ops / 10;

    char root[4096];
    snprintf(root, sizeof root, "%s/feox_bench.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(root))
        bench_die("mkdtemp", root);
    bench_cfg.tmp_root = root;

    bench_print_environment();
    for (size_t a = 0; a < ADAPTER_COUNT; a++)
        if (store_selected(stores, all_adapters[a]->name))
            printf("# store %-12s %s\n", all_adapters[a]->name, all_adapters[a]->describe);
    fflush(stdout);

    double started = bench_now_sec();
    for (int rep = 0; rep < bench_cfg.reps; rep++) {
        if (floors) {
            fprintf(stderr, "[rep %d] floors\n", rep + 1);
            bench_run_floor_workloads(rep);
        }
        for (size_t a = 0; a < ADAPTER_COUNT; a++) {
            if (!store_selected(stores, all_adapters[a]->name))
                continue;
            fprintf(stderr, "[rep %d] %s (%.0f s)\n", rep + 1, all_adapters[a]->name,
                    bench_now_sec() - started);
            bench_run_raw_workloads(all_adapters[a], rep);
        }
        if (sql) {
            fprintf(stderr, "[rep %d] sql\n", rep + 1);
            bench_run_sql_workloads(rep);
        }
        if (special) {
            fprintf(stderr, "[rep %d] feox-only workloads\n", rep + 1);
            bench_run_special_workloads(rep);
        }
    }
    bench_note("insert", "new keys, one commit per op (no fsync for any store)");
    bench_note("delete", "the keys just inserted, one commit per op");
    bench_note("scan100", "seek to a random key + 99 next, values copied out");
    bench_note("ycsb_e", "95% scans of 1..100 keys from a Zipf start, 5% inserts");
    bench_note("ycsb_f", "50% reads, 50% read-modify-write (feox: get + CAS loop; rocksdb: get + "
                         "put, not atomic)");
    bench_note("reopen", "close + open with the data: ns per loaded record (1e9/ns = records/s)");
    bench_note("load", "bulk: lmdb 100K/txn, sqlite 10K/txn, rocksdb 1000/batch; feox per op");
    bench_print_table();
    bench_print_machine_lines();
    bench_print_targets();
    printf("\n# total %.1f s\n", bench_now_sec() - started);
    bench_remove_dir(root);
    return 0;
}
