/*
 * bench_report.c — collects samples and prints the report: the environment header, a readable
 * table (median, min, max and the ratio subject/peer per store), one machine-readable line per
 * workload, and the targets of issue 6 with met/missed (informational: nothing fails).
 *
 * Machine-readable line (one per workload, after the table):
 *   bench <workload> feox_ns=<median> <peer>_ns=<median> ... ratio_<peer>=<feox/peer> ...
 * The subject of a workload is its "feox" column (the first column if there is none).
 */
#include "bench.h"

#include "feox.h"

#include <cJSON.h>
#include <lmdb.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#define MAX_WORKLOADS 96
#define MAX_COLUMNS 12

typedef struct column_samples {
    char name[32];
    double samples[BENCH_MAX_REPS];
    int count;
} column_samples;

typedef struct workload_result {
    char name[48];
    char note[160];
    column_samples columns[MAX_COLUMNS];
    int column_count;
} workload_result;

static workload_result results[MAX_WORKLOADS];
static int result_count;

static workload_result *find_workload(const char *name, bool create)
{
    for (int i = 0; i < result_count; i++)
        if (strcmp(results[i].name, name) == 0)
            return &results[i];
    if (!create || result_count == MAX_WORKLOADS)
        return NULL;
    workload_result *w = &results[result_count++];
    snprintf(w->name, sizeof w->name, "%s", name);
    return w;
}

static column_samples *find_column(workload_result *w, const char *name, bool create)
{
    for (int i = 0; i < w->column_count; i++)
        if (strcmp(w->columns[i].name, name) == 0)
            return &w->columns[i];
    if (!create || w->column_count == MAX_COLUMNS)
        return NULL;
    column_samples *c = &w->columns[w->column_count++];
    snprintf(c->name, sizeof c->name, "%s", name);
    return c;
}

void bench_record(const char *workload, const char *column, double ns_per_op)
{
    workload_result *w = find_workload(workload, true);
    column_samples *c = w ? find_column(w, column, true) : NULL;
    if (c && c->count < BENCH_MAX_REPS)
        c->samples[c->count++] = ns_per_op;
}

/* Annotates a workload that has results; a note on a workload that did not run is dropped. */
void bench_note(const char *workload, const char *note)
{
    workload_result *w = find_workload(workload, false);
    if (w)
        snprintf(w->note, sizeof w->note, "%s", note);
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double column_median(const column_samples *c)
{
    if (c->count == 0)
        return NAN;
    double sorted[BENCH_MAX_REPS];
    memcpy(sorted, c->samples, sizeof(double) * (size_t)c->count);
    qsort(sorted, (size_t)c->count, sizeof(double), compare_doubles);
    return c->count % 2 ? sorted[c->count / 2]
                        : (sorted[c->count / 2 - 1] + sorted[c->count / 2]) / 2;
}

static void column_range(const column_samples *c, double *min, double *max)
{
    *min = *max = c->samples[0];
    for (int i = 1; i < c->count; i++) {
        if (c->samples[i] < *min)
            *min = c->samples[i];
        if (c->samples[i] > *max)
            *max = c->samples[i];
    }
}

double bench_median(const char *workload, const char *column)
{
    workload_result *w = find_workload(workload, false);
    column_samples *c = w ? find_column(w, column, false) : NULL;
    return c ? column_median(c) : NAN;
}

static const column_samples *subject_of(const workload_result *w)
{
    for (int i = 0; i < w->column_count; i++)
        if (strcmp(w->columns[i].name, "feox") == 0)
            return &w->columns[i];
    return w->column_count ? &w->columns[0] : NULL;
}

/* ---- environment ------------------------------------------------------------------------------
 */

static void read_first_line(const char *path, const char *prefix, char *out, size_t cap)
{
    snprintf(out, cap, "?");
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (prefix && strncmp(line, prefix, strlen(prefix)) != 0)
            continue;
        char *start = prefix ? strchr(line, ':') : line;
        start = start && prefix ? start + 1 : line;
        while (*start == ' ' || *start == '\t')
            start++;
        size_t len = strcspn(start, "\n");
        if (len >= cap)
            len = cap - 1;
        memcpy(out, start, len);
        out[len] = 0;
        break;
    }
    fclose(f);
}

static void package_version(const char *package, char *out, size_t cap)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "dpkg-query -W -f='${Version}' %s 2>/dev/null", package);
    snprintf(out, cap, "?");
    FILE *p = popen(cmd, "r");
    if (!p)
        return;
    if (fgets(out, (int)cap, p))
        out[strcspn(out, "\n")] = 0;
    pclose(p);
}

void bench_print_environment(void)
{
    char cpu[256], thp[128], clocksource[64], rocks[64], ck[64];
    read_first_line("/proc/cpuinfo", "model name", cpu, sizeof cpu);
    read_first_line("/sys/kernel/mm/transparent_hugepage/enabled", NULL, thp, sizeof thp);
    read_first_line("/sys/devices/system/clocksource/clocksource0/current_clocksource", NULL,
                    clocksource, sizeof clocksource);
    package_version("librocksdb-dev", rocks, sizeof rocks);
    package_version("libck-dev", ck, sizeof ck);
    struct utsname uts;
    uname(&uts);
    int major = 0, minor = 0, patch = 0;
    mdb_version(&major, &minor, &patch);

    printf("# feox benchmark (tests/bench)\n");
    printf("# cpu: %s | nproc: %ld | kernel: %s %s | THP: %s | clocksource: %s\n", cpu,
           sysconf(_SC_NPROCESSORS_ONLN), uts.sysname, uts.release, thp, clocksource);
    printf("# libraries: feox %s | sqlite %s | lmdb %d.%d.%d | rocksdb %s (Debian package) | "
           "ck %s (Debian package) | cJSON %s\n",
           FEOX_VERSION, sqlite3_libversion(), major, minor, patch, rocks, ck, cJSON_Version());
    printf("# build: %s %s, -std=c11 -O2 -DSQLITE_CORE (Makefile bench rule)%s\n",
#ifdef __clang__
           "clang",
#else
           "gcc",
#endif
           __VERSION__,
#ifdef __OPTIMIZE__
           ""
#else
           " WARNING: not optimized"
#endif
    );
    printf("# sqlite build: THREADSAFE=%d lookaside=%s\n", sqlite3_threadsafe(),
           sqlite3_compileoption_used("OMIT_LOOKASIDE") ? "omitted" : "on");
    printf("# run: N=%llu reps=%d read_ops=%llu write_ops=%llu scan_ops=%llu phase<=%.2fs "
           "threads<=%d seed=%llu tmp=%s%s\n",
           (unsigned long long)bench_cfg.n, bench_cfg.reps, (unsigned long long)bench_cfg.read_ops,
           (unsigned long long)bench_cfg.write_ops, (unsigned long long)bench_cfg.scan_ops,
           bench_cfg.phase_seconds, bench_cfg.max_threads, (unsigned long long)bench_cfg.seed,
           bench_cfg.tmp_root, bench_cfg.quick ? " (quick)" : "");
    printf("# keys: 16 B (be64 splitmix(i) || be64 i); values: 100 B; Zipf theta 0.99 scrambled\n");
    fflush(stdout);
}

/* ---- table and machine lines ------------------------------------------------------------------
 */

void bench_print_table(void)
{
    printf("\n%-16s %-14s %12s %12s %12s %10s\n", "workload", "store", "median ns", "min", "max",
           "feox/this");
    for (int i = 0; i < result_count; i++) {
        const workload_result *w = &results[i];
        const column_samples *subject = subject_of(w);
        double subject_median = subject ? column_median(subject) : NAN;
        for (int c = 0; c < w->column_count; c++) {
            const column_samples *col = &w->columns[c];
            double median = column_median(col), min, max;
            column_range(col, &min, &max);
            char ratio[32] = "";
            if (col != subject && median > 0)
                snprintf(ratio, sizeof ratio, "%.2f", subject_median / median);
            printf("%-16s %-14s %12.1f %12.1f %12.1f %10s\n", c == 0 ? w->name : "", col->name,
                   median, min, max, ratio);
        }
        if (w->note[0])
            printf("%-16s   (%s)\n", "", w->note);
    }
}

void bench_print_machine_lines(void)
{
    printf("\n");
    for (int i = 0; i < result_count; i++) {
        const workload_result *w = &results[i];
        const column_samples *subject = subject_of(w);
        if (!subject)
            continue;
        double subject_median = column_median(subject);
        printf("bench %s", w->name);
        printf(" %s_ns=%.1f", subject->name, subject_median);
        for (int c = 0; c < w->column_count; c++)
            if (&w->columns[c] != subject)
                printf(" %s_ns=%.1f", w->columns[c].name, column_median(&w->columns[c]));
        for (int c = 0; c < w->column_count; c++)
            if (&w->columns[c] != subject)
                printf(" ratio_%s=%.3f", w->columns[c].name,
                       subject_median / column_median(&w->columns[c]));
        printf("\n");
    }
}

/* ---- targets of issue 6 ------------------------------------------------------------------------
 */

typedef struct target {
    const char *label;
    const char *workload, *column;           /* numerator: median ns */
    const char *peer_workload, *peer_column; /* denominator: median ns */
    bool at_least;                           /* ratio must be >= limit (else <=) */
    bool inverse;                            /* report peer/subject (throughput scaling) */
    double limit;
} target;

static const target targets[] = {
    {"GET <= 0.5x LMDB", "get_hit", "feox", "get_hit", "lmdb", false, false, 0.5},
    {"GET <= 0.25x SQLite native", "get_hit", "feox", "get_hit", "sqlite_mem", false, false, 0.25},
    {"GET <= 1.3x bare hash probe", "get_hit", "feox", "get_hit", "hash_probe", false, false, 1.3},
    {"insert <= 0.5x LMDB per-op commit", "insert", "feox", "insert", "lmdb", false, false, 0.5},
    {"scan100 <= 1.0x LMDB", "scan100", "feox", "scan100", "lmdb", false, false, 1.0},
    {"vtab point SELECT <= 0.5x native", "sql_point_select", "feox", "sql_point_select", "native",
     false, false, 0.5},
    {"YCSB-C 2 threads >= 1.8x one thread", "ycsb_c_2t", "feox", "ycsb_c", "feox", true, true, 1.8},
    {"JSON patch <= 1.5x cJSON parse+print (issue 3)", "json_patch", "feox", "json_patch",
     "cjson_parse_print", false, false, 1.5},
};

void bench_print_targets(void)
{
    printf("\n%-48s %10s %10s  %s\n", "target (issue 6)", "measured", "limit", "status");
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        const target *t = &targets[i];
        double a = bench_median(t->workload, t->column);
        double b = bench_median(t->peer_workload, t->peer_column);
        if (isnan(a) || isnan(b) || a <= 0 || b <= 0) {
            printf("%-48s %10s %10.2f  not measured\n", t->label, "-", t->limit);
            continue;
        }
        double ratio = t->inverse ? b / a : a / b;
        bool met = t->at_least ? ratio >= t->limit : ratio <= t->limit;
        printf("%-48s %9.2fx %9.2fx  %s\n", t->label, ratio, t->limit, met ? "met" : "MISSED");
    }
    printf("(informational: ratios of medians from this run; nothing fails on a miss)\n");
}
