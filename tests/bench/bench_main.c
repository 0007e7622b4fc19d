/*
 * bench_main.c — feox_bench: feox against LMDB, SQLite and RocksDB in one process, as ratios.
 *
 *   feox_bench             N = 1M, 5 repetitions           (make bench)
 *   feox_bench --quick     N = 100K, 1 repetition          (make bench QUICK=1; CI smoke)
 *   feox_bench --full      N = 10M, 3 repetitions          (make bench SIZE=10M is --n 10M)
 * Five repetitions by default, so a verdict (the median of per-repetition ratios) holds against
 * two disturbed repetitions, not only in a quiet run; above 1M records three (a repetition of
 * the 10M run takes about half an hour).
 *   options: --n N (suffix K or M)  --reps R  --seed S  --phase-seconds X  --tmp DIR
 *            --stores feox,feox_persist,lmdb,sqlite_mem,sqlite_wal,rocksdb
 *            --no-sql  --no-special  --no-floor  --no-durable  --ratios FILE
 *
 * Each repetition runs every group in the same order (floors, each store's raw workloads, the
 * durable write group, SQL, feox-only workloads), so peers are interleaved A B C A B C and see
 * the same machine state. Output: environment, table, machine-readable lines, targets, and with
 * --ratios the chart's data. Never fails on a slow result.
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

static const bench_adapter *const durable_adapters[] = {
    &bench_feox_full_adapter,
    &bench_lmdb_sync_adapter,
    &bench_sqlite_wal_full_adapter,
    &bench_rocksdb_sync_adapter,
};
#define DURABLE_COUNT (sizeof durable_adapters / sizeof durable_adapters[0])

/* "10K", "1M", "250000": a count, or -1. */
static long long parse_count(const char *text)
{
    char *end = NULL;
    double v = strtod(text, &end);
    if (end == text || v <= 0)
        return -1;
    if (*end == 'k' || *end == 'K')
        v *= 1e3, end++;
    else if (*end == 'm' || *end == 'M')
        v *= 1e6, end++;
    return *end ? -1 : (long long)v;
}

_Noreturn void bench_die(const char *what, const char *detail)
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
                    "                  [--no-sql] [--no-special] [--no-floor] [--no-durable]\n"
                    "                  [--ratios FILE]\n");
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
    bench_cfg.reps = 5;
    bench_cfg.seed = 0x5eed0f0e;
    bench_cfg.phase_seconds = 2.0;
    long nproc = sysconf(_SC_NPROCESSORS_ONLN);
    bench_cfg.max_threads = nproc > 0 ? (int)nproc : 1;
    const char *stores = NULL, *tmp = getenv("TMPDIR");
    bool sql = true, special = true, floors = true, durable = true, full = false;
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
        else if (strcmp(arg, "--no-durable") == 0)
            durable = false;
        else if (next && strcmp(arg, "--ratios") == 0)
            bench_cfg.ratios_path = argv[++i];
        else if (next && strcmp(arg, "--n") == 0 && (n_override = parse_count(next)) > 0)
            i++;
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
    if (!bench_cfg.quick && bench_cfg.n > 1000000)
        bench_cfg.reps = 3;
    if (reps_override > 0)
        bench_cfg.reps = reps_override > BENCH_MAX_REPS ? BENCH_MAX_REPS : (int)reps_override;
    if (phase_override > 0)
        bench_cfg.phase_seconds = phase_override;
    uint64_t ops = bench_cfg.n < 1000000 ? bench_cfg.n : 1000000;
    bench_cfg.read_ops = ops;
    bench_cfg.write_ops = ops / 5;
    bench_cfg.scan_ops = ops / 10;
    bench_cfg.durable_keys = bench_cfg.n < 100000 ? bench_cfg.n : 100000;

    char root[4096];
    snprintf(root, sizeof root, "%s/feox_bench.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(root))
        bench_die("mkdtemp", root);
    bench_cfg.tmp_root = root;

    bench_print_environment();
    for (size_t a = 0; a < ADAPTER_COUNT; a++)
        if (store_selected(stores, all_adapters[a]->name))
            printf("# store %-15s %s\n", all_adapters[a]->name, all_adapters[a]->describe);
    if (durable)
        for (size_t a = 0; a < DURABLE_COUNT; a++)
            printf("# store %-15s %s\n", durable_adapters[a]->name, durable_adapters[a]->describe);
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
        for (size_t a = 0; durable && a < DURABLE_COUNT; a++) {
            const char *base = durable_adapters[a]->preload_with->name;
            if (!store_selected(stores, base))
                continue;
            fprintf(stderr, "[rep %d] %s (%.0f s)\n", rep + 1, durable_adapters[a]->name,
                    bench_now_sec() - started);
            bench_run_durable_workloads(durable_adapters[a], rep);
        }
        if (sql) {
            fprintf(stderr, "[rep %d] sql (%.0f s)\n", rep + 1, bench_now_sec() - started);
            bench_run_sql_workloads(rep);
        }
        if (special) {
            fprintf(stderr, "[rep %d] feox-only workloads\n", rep + 1);
            bench_run_special_workloads(rep);
            fprintf(stderr, "[rep %d] memory per key\n", rep + 1);
            bench_run_memory_workloads(rep);
        }
    }
    bench_label_write_pairs();
    bench_note("insert", "new keys, one commit per op, no fsync; feox weaker = sync=normal may "
                         "lose the last 100 ms on a process crash, the peers lose nothing");
    bench_note("delete", "the keys just inserted, one commit per op");
    bench_note("scan100", "seek to a random key + 99 next, values copied out");
    bench_note("ycsb_e", "95% scans of 1..100 keys from a Zipf start, 5% inserts");
    bench_note("ycsb_f", "50% reads, 50% read-modify-write (feox: get + CAS loop; rocksdb: get + "
                         "put, not atomic)");
    char note[200];
    snprintf(note, sizeof note, "ns to close a store holding N = %llu records",
             (unsigned long long)bench_cfg.n);
    bench_note("close", note);
    snprintf(note, sizeof note,
             "ns from open to the first answered GET, N = %llu records (page cache warm)",
             (unsigned long long)bench_cfg.n);
    bench_note("open_first_read", note);
    snprintf(note, sizeof note,
             "fsync per commit, on %llu preloaded keys; headline write comparison",
             (unsigned long long)bench_cfg.durable_keys);
    bench_note("overwrite.full", note);
    bench_note("memory_per_key", "BYTES per key (not ns): heap in use after loading N records "
                                 "(glibc mallinfo2, both sides)");
    bench_note("memory_per_key.db", "BYTES per key: a connection's cache of an in-database table, "
                                    "built by its first statement");
    bench_note("load", "bulk: lmdb 100K/txn, sqlite 10K/txn, rocksdb 1000/batch; feox per op");
    bench_print_table();
    bench_print_machine_lines();
    bench_print_targets();
    if (bench_cfg.ratios_path)
        bench_write_ratios(bench_cfg.ratios_path);
    printf("\n# total %.1f s\n", bench_now_sec() - started);
    bench_remove_dir(root);
    return 0;
}
