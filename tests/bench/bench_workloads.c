/*
 * bench_workloads.c — the raw-API workloads, run over any bench_adapter. One call runs one
 * repetition for one store: open, load N (timed), then every phase in a fixed order (read-only
 * phases first, then phases that write but keep N constant), threaded read scaling, then close
 * and open again timed up to the first answered GET. The durable group runs only the write
 * phases, with an fsync per commit, on a smaller preloaded store (fsync dominates).
 *
 * Point reads and writes also fill a latency histogram: one op in BENCH_LATENCY_EVERY is timed
 * on its own (its two clock reads are in its latency and add ~1/8 of a clock pair to ns/op).
 *
 * A phase is: a warm-up pass (1/20 of its ops, untimed), then the timed loop, which stops after
 * its op count or after bench_cfg.phase_seconds, whichever comes first. Time is wall-clock
 * (CLOCK_MONOTONIC) around the loop; the result is ns per operation. Key generation is inside
 * the loop for every store alike (a few ns; keys are computed, never read from an array).
 */
#include "bench.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct phase_state {
    const bench_adapter *adapter;
    void *ctx;
    bench_rng rng;
    const bench_zipf *zipf;
    uint64_t next_new_index; /* indexes >= n not yet used by an insert */
    uint64_t version;        /* distinguishes written values */
    uint64_t errors, misses;
    uint64_t first_index; /* insert/delete phases: where this pass starts */
    uint64_t keys;        /* keys 0..keys-1 are loaded */
    uint8_t key[BENCH_KEY_SIZE];
    uint8_t value[BENCH_VALUE_SIZE];
    uint8_t out[BENCH_VALUE_SIZE];
} phase_state;

/* One operation of a workload; i counts from 0 within the pass. */
typedef void (*op_fn)(phase_state *st, uint64_t i);

static bench_zipf zipf_for_n;

static void do_get(phase_state *st, uint64_t index)
{
    size_t len = 0;
    bench_key(index, st->key);
    int rc = st->adapter->get(st->ctx, st->key, st->out, sizeof st->out, &len);
    if (rc < 0)
        st->errors++;
    else if (rc == 0)
        st->misses++;
}

static void do_put(phase_state *st, uint64_t index)
{
    bench_key(index, st->key);
    bench_value(index, ++st->version, st->value);
    if (st->adapter->put(st->ctx, st->key, st->value, sizeof st->value) != 0)
        st->errors++;
}

static void op_get_hit(phase_state *st, uint64_t i)
{
    (void)i;
    do_get(st, bench_rng_below(&st->rng, st->keys));
}

static void op_get_miss(phase_state *st, uint64_t i)
{
    (void)i;
    size_t len = 0;
    bench_miss_key(bench_rng_next(&st->rng) >> 8, st->key);
    if (st->adapter->get(st->ctx, st->key, st->out, sizeof st->out, &len) != 0)
        st->errors++;
}

static void op_overwrite(phase_state *st, uint64_t i)
{
    (void)i;
    do_put(st, bench_rng_below(&st->rng, st->keys));
}

static void op_insert_new(phase_state *st, uint64_t i)
{
    do_put(st, st->first_index + i);
}

static void op_delete(phase_state *st, uint64_t i)
{
    bench_key(st->first_index + i, st->key);
    if (st->adapter->del(st->ctx, st->key) != 0)
        st->errors++;
}

static void op_scan100(phase_state *st, uint64_t i)
{
    (void)i;
    bench_key(bench_rng_below(&st->rng, st->keys), st->key);
    if (st->adapter->scan(st->ctx, st->key, BENCH_SCAN_LEN, st->out) == 0)
        st->misses++;
}

static void op_ycsb_a(phase_state *st, uint64_t i)
{
    (void)i;
    uint64_t index = bench_zipf_next(st->zipf, &st->rng);
    if (bench_rng_next(&st->rng) & 1)
        do_get(st, index);
    else
        do_put(st, index);
}

static void op_ycsb_b(phase_state *st, uint64_t i)
{
    (void)i;
    uint64_t index = bench_zipf_next(st->zipf, &st->rng);
    if (bench_rng_below(&st->rng, 100) < 95)
        do_get(st, index);
    else
        do_put(st, index);
}

static void op_ycsb_c(phase_state *st, uint64_t i)
{
    (void)i;
    do_get(st, bench_zipf_next(st->zipf, &st->rng));
}

/* E: 95% short scans (1..100 keys from a Zipf-chosen start), 5% inserts of new keys. */
static void op_ycsb_e(phase_state *st, uint64_t i)
{
    (void)i;
    if (bench_rng_below(&st->rng, 100) < 95) {
        bench_key(bench_zipf_next(st->zipf, &st->rng), st->key);
        size_t len = 1 + bench_rng_below(&st->rng, BENCH_SCAN_LEN);
        st->adapter->scan(st->ctx, st->key, len, st->out);
    } else {
        do_put(st, st->next_new_index++);
    }
}

/* F: 50% reads, 50% read-modify-write (a CAS loop for feox, a read-write txn for peers). */
static void op_ycsb_f(phase_state *st, uint64_t i)
{
    (void)i;
    uint64_t index = bench_zipf_next(st->zipf, &st->rng);
    if (bench_rng_next(&st->rng) & 1) {
        do_get(st, index);
    } else {
        bench_key(index, st->key);
        if (st->adapter->rmw(st->ctx, st->key, ++st->version) != 1)
            st->errors++;
    }
}

/* Run `ops` operations or until the time budget ends; returns how many ran. With a histogram,
 * one op in BENCH_LATENCY_EVERY is timed on its own into it. */
static uint64_t run_loop(phase_state *st, op_fn op, uint64_t ops, double budget_sec,
                         bench_hist *hist)
{
    double deadline = bench_now_sec() + budget_sec;
    uint64_t i = 0;
    while (i < ops) {
        if (hist && i % BENCH_LATENCY_EVERY == 0) {
            uint64_t t0 = bench_now_ns();
            op(st, i);
            bench_hist_add(hist, bench_now_ns() - t0);
        } else {
            op(st, i);
        }
        i++;
        if ((i & 255) == 0 && bench_now_sec() > deadline)
            break;
    }
    return i;
}

/* Warm up, then time. Returns ns/op; *done (may be NULL) = timed ops that ran; hist (may be
 * NULL) gets the latencies of the timed loop's sampled ops. */
static double run_phase(phase_state *st, op_fn op, uint64_t ops, uint64_t *done, bench_hist *hist)
{
    uint64_t warm = ops / 20 ? ops / 20 : 1;
    uint64_t base = st->first_index;
    run_loop(st, op, warm, bench_cfg.phase_seconds / 10, NULL);
    st->first_index = base + warm;
    double t0 = bench_now_sec();
    uint64_t ran = run_loop(st, op, ops, bench_cfg.phase_seconds, hist);
    double elapsed = bench_now_sec() - t0;
    if (done)
        *done = ran;
    return elapsed * 1e9 / (double)ran;
}

static void report_phase(const char *workload, const bench_adapter *a, double ns, phase_state *st,
                         bool expect_hits)
{
    bench_record(workload, a->name, ns);
    if (st->errors)
        fprintf(stderr, "warning: %s %s: %llu errors\n", workload, a->name,
                (unsigned long long)st->errors);
    if (expect_hits && st->misses)
        fprintf(stderr, "warning: %s %s: %llu unexpected misses\n", workload, a->name,
                (unsigned long long)st->misses);
    st->errors = st->misses = 0;
}

/* ---- threads ----------------------------------------------------------------------------------
 */

typedef struct thread_job {
    phase_state state;
    op_fn op;
    uint64_t ops, ran;
    double started, finished; /* each thread times itself: the main thread may wake late */
    pthread_barrier_t *start;
} thread_job;

static void *thread_main(void *arg)
{
    thread_job *job = arg;
    run_loop(&job->state, job->op, job->ops / 20 + 1, bench_cfg.phase_seconds / 10, NULL);
    pthread_barrier_wait(job->start);
    job->started = bench_now_sec();
    job->ran = run_loop(&job->state, job->op, job->ops, bench_cfg.phase_seconds, NULL);
    job->finished = bench_now_sec();
    return NULL;
}

/* CPU seconds the machine spent on anything (all CPUs, the hypervisor's steal included), from
 * /proc/stat; -1 where there is none. */
static double machine_busy_sec(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return -1;
    unsigned long long user, nice, sys, idle, iowait, irq, softirq, steal;
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &user, &nice, &sys, &idle,
                   &iowait, &irq, &softirq, &steal);
    fclose(f);
    long hz = sysconf(_SC_CLK_TCK);
    if (n != 8 || hz <= 0)
        return -1;
    return (double)(user + nice + sys + irq + softirq + steal) / (double)hz;
}

static double process_cpu_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Thread t's own workload state: its own connection (ctx) and key stream over the loaded keys. */
static void thread_state_init(phase_state *st, const bench_adapter *a, void *store, uint64_t seed,
                              int t)
{
    st->adapter = a;
    st->ctx = a->ctx_open_extra(store);
    st->zipf = &zipf_for_n;
    st->keys = bench_cfg.n;
    bench_rng_seed(&st->rng, seed * 1000 + (uint64_t)t);
}

/* Aggregate ns/op with `threads` threads each running the op: wall time / total ops. Says on
 * stderr when other processes kept busy more CPUs than the threads left free: the threads did not
 * have the cores to themselves, and the speed-up 1T/2T means little. */
static double run_threaded(const char *name, const bench_adapter *a, void *store, op_fn op,
                           int threads, uint64_t ops, uint64_t seed)
{
    thread_job *jobs = calloc((size_t)threads, sizeof *jobs);
    pthread_t *tids = calloc((size_t)threads, sizeof *tids);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)threads + 1);
    for (int t = 0; t < threads; t++) {
        thread_state_init(&jobs[t].state, a, store, seed, t);
        jobs[t].op = op;
        jobs[t].ops = ops;
        jobs[t].start = &start;
        pthread_create(&tids[t], NULL, thread_main, &jobs[t]);
    }
    pthread_barrier_wait(&start);
    double busy0 = machine_busy_sec(), own0 = process_cpu_sec(), wall0 = bench_now_sec();
    uint64_t total = 0;
    double first_start = 0, last_finish = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(tids[t], NULL);
        total += jobs[t].ran;
        if (t == 0 || jobs[t].started < first_start)
            first_start = jobs[t].started;
        if (jobs[t].finished > last_finish)
            last_finish = jobs[t].finished;
        if (jobs[t].state.errors || jobs[t].state.misses)
            fprintf(stderr, "warning: %s threaded: %llu errors, %llu misses\n", a->name,
                    (unsigned long long)jobs[t].state.errors,
                    (unsigned long long)jobs[t].state.misses);
        a->ctx_close(jobs[t].state.ctx);
    }
    double elapsed = last_finish - first_start;
    double busy1 = machine_busy_sec(), own1 = process_cpu_sec(), wall1 = bench_now_sec();
    double others =
        busy0 < 0 || busy1 < 0 ? 0 : ((busy1 - busy0) - (own1 - own0)) / (wall1 - wall0);
    if (others > 0.1 + bench_cfg.max_threads - threads)
        fprintf(stderr,
                "note: %s %s: other processes kept %.1f of %d CPUs busy meanwhile: the threads "
                "did not have the cores to themselves\n",
                name, a->name, others, bench_cfg.max_threads);
    pthread_barrier_destroy(&start);
    free(jobs);
    free(tids);
    return elapsed * 1e9 / (double)total;
}

/* ---- speed-up with the cores free ------------------------------------------------------------
 * On a machine shared with other work the wall-clock rows measure the machine as much as the
 * store. This measures what the second thread adds when each thread has a core: two threads run
 * the op in batches of FREE_BATCH on a shared clock of FREE_SLOT slots; in every other slot the
 * second thread only spins (keeps its core, reads no memory), so the first runs alone a few ms
 * before or after the two run together. A batch counts if it ran undisturbed (thread CPU time >=
 * 97% of its wall time) within one slot and, in a two-thread slot, while the other thread ran
 * undisturbed batches from its start to its end. <workload>_1t.free is the median ns/op alone,
 * <workload>_2t.free the median ns/op of the two together divided by two (aggregate, as the
 * other threaded rows), so their ratio is the speed-up two free cores give. */

#define FREE_BATCH 256
#define FREE_SLOT 0.002

typedef struct free_batch {
    double t0, t1, cpu;
    bool together, valid;
} free_batch;

typedef struct free_job {
    phase_state state;
    op_fn op;
    int id;
    double seconds;
    free_batch *batches;
    size_t count, cap;
    pthread_barrier_t *start;
} free_job;

static double thread_cpu_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wait politely in a spin loop (x86 PAUSE; elsewhere a compiler barrier). */
static void spin_hint(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

static void *free_thread_main(void *arg)
{
    free_job *job = arg;
    run_loop(&job->state, job->op, 20000, bench_cfg.phase_seconds / 10, NULL);
    pthread_barrier_wait(job->start);
    double end = bench_now_sec() + job->seconds;
    for (uint64_t i = 0;;) {
        double t0 = bench_now_sec();
        if (t0 > end)
            break;
        long slot = (long)(t0 / FREE_SLOT);
        bool together = slot & 1;
        if (job->id == 1 && !together) {
            while ((long)(bench_now_sec() / FREE_SLOT) == slot)
                for (int k = 0; k < 64; k++)
                    spin_hint();
            continue;
        }
        double c0 = thread_cpu_sec();
        for (int k = 0; k < FREE_BATCH; k++)
            job->op(&job->state, i++);
        double cpu = thread_cpu_sec() - c0, t1 = bench_now_sec();
        if (job->count == job->cap) {
            job->cap = job->cap ? 2 * job->cap : 4096;
            job->batches = realloc(job->batches, job->cap * sizeof *job->batches);
            if (!job->batches)
                bench_die("threads", "out of memory");
        }
        job->batches[job->count++] =
            (free_batch){t0, t1, cpu, together, (long)(t1 / FREE_SLOT) == slot};
    }
    return NULL;
}

static bool undisturbed(const free_batch *b)
{
    return b->cpu >= 0.97 * (b->t1 - b->t0);
}

/* The first of other's batches that ends after t. */
static size_t first_ending_after(const free_job *other, double t)
{
    size_t lo = 0, hi = other->count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (other->batches[mid].t1 <= t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* True if other ran no batch between t0 and t1 (its last batch of a two-thread slot may end a
 * little into the next slot). */
static bool ran_none(const free_job *other, double t0, double t1)
{
    size_t k = first_ending_after(other, t0);
    return k >= other->count || other->batches[k].t0 >= t1;
}

/* True if other ran undisturbed batches, back to back, from before t0 to after t1. */
static bool ran_throughout(const free_job *other, double t0, double t1)
{
    size_t lo = first_ending_after(other, t0);
    if (lo >= other->count || other->batches[lo].t0 > t0)
        return false;
    for (size_t k = lo; k < other->count; k++) {
        const free_batch *b = &other->batches[k];
        if (!undisturbed(b) || (k > lo && b->t0 - other->batches[k - 1].t1 > 2e-6))
            return false;
        if (b->t1 >= t1)
            return true;
    }
    return false;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median_of(double *v, size_t n)
{
    qsort(v, n, sizeof *v, compare_doubles);
    return n ? v[n / 2] : 0;
}

static void run_free_scaling(const char *workload, const bench_adapter *a, void *store, op_fn op,
                             uint64_t seed)
{
    free_job jobs[2];
    pthread_t tids[2];
    pthread_barrier_t start;
    memset(jobs, 0, sizeof jobs);
    pthread_barrier_init(&start, NULL, 2);
    for (int t = 0; t < 2; t++) {
        thread_state_init(&jobs[t].state, a, store, seed, t);
        jobs[t].op = op;
        jobs[t].id = t;
        jobs[t].seconds = 2 * bench_cfg.phase_seconds;
        jobs[t].start = &start;
        pthread_create(&tids[t], NULL, free_thread_main, &jobs[t]);
    }
    for (int t = 0; t < 2; t++)
        pthread_join(tids[t], NULL);
    pthread_barrier_destroy(&start);
    size_t total = jobs[0].count + jobs[1].count, alone_n = 0, together_n = 0;
    double *alone = calloc(total + 1, sizeof *alone);
    double *together = calloc(total + 1, sizeof *together);
    if (!alone || !together)
        bench_die("threads", "out of memory");
    for (int t = 0; t < 2; t++) {
        for (size_t k = 0; k < jobs[t].count; k++) {
            const free_batch *b = &jobs[t].batches[k];
            if (!b->valid || !undisturbed(b))
                continue;
            double ns = (b->t1 - b->t0) * 1e9 / FREE_BATCH;
            if (b->together && ran_throughout(&jobs[1 - t], b->t0, b->t1))
                together[together_n++] = ns;
            else if (!b->together && ran_none(&jobs[1 - t], b->t0, b->t1))
                alone[alone_n++] = ns;
        }
    }
    for (int t = 0; t < 2; t++) {
        a->ctx_close(jobs[t].state.ctx);
        free(jobs[t].batches);
    }
    char name[64];
    if (alone_n >= 20 && together_n >= 20) {
        snprintf(name, sizeof name, "%s_1t.free", workload);
        bench_record(name, a->name, median_of(alone, alone_n));
        snprintf(name, sizeof name, "%s_2t.free", workload);
        bench_record(name, a->name, median_of(together, together_n) / 2);
    } else {
        fprintf(stderr, "note: %s %s: too few undisturbed batches (%zu alone, %zu together)\n",
                workload, a->name, alone_n, together_n);
    }
    free(alone);
    free(together);
}

/* ycsb_c_1t is the speed-up's baseline: the same loop on one thread started the same way (its
 * own context, warm-up, no latency sampling), so 1T/2T compares like with like; the ycsb_c row
 * samples latencies, whose clock reads would make one thread look slower than it is. */
static void run_thread_scaling(const bench_adapter *a, void *store, int rep)
{
    bench_record("ycsb_c_1t", a->name,
                 run_threaded("ycsb_c_1t", a, store, op_ycsb_c, 1, bench_cfg.read_ops, 77 + rep));
    int counts[2] = {2, bench_cfg.max_threads};
    for (int c = 0; c < 2; c++) {
        int threads = counts[c];
        if (threads < 2 || (c == 1 && threads <= 2))
            continue;
        char name[64];
        snprintf(name, sizeof name, "ycsb_c_%dt", threads);
        bench_record(
            name, a->name,
            run_threaded(name, a, store, op_ycsb_c, threads, bench_cfg.read_ops, 77 + rep));
        snprintf(name, sizeof name, "get_hit_%dt", threads);
        bench_record(
            name, a->name,
            run_threaded(name, a, store, op_get_hit, threads, bench_cfg.read_ops, 78 + rep));
    }
    if (bench_cfg.max_threads >= 2)
        run_free_scaling("ycsb_c", a, store, op_ycsb_c, 79 + rep);
}

/* ---- one repetition over one store ------------------------------------------------------------
 */

static bench_hist *new_hist(void)
{
    bench_hist *hist = calloc(1, sizeof *hist);
    if (!hist)
        bench_die("histogram", "out of memory");
    return hist;
}

/* A timed phase with a latency histogram, recorded under the adapter's column. */
static void latency_phase(const char *workload, phase_state *st, op_fn op, uint64_t ops,
                          uint64_t *done, bool expect_hits)
{
    bench_hist *hist = new_hist();
    double ns = run_phase(st, op, ops, done, hist);
    report_phase(workload, st->adapter, ns, st, expect_hits);
    bench_record_hist(workload, st->adapter->name, hist);
    free(hist);
}

/* Insert new keys (warm-up ones first), then delete exactly the timed ones (their cache lines
 * are as warm as the inserts left them). Returns where the timed inserts started and how many. */
static void insert_then_delete(phase_state *st, const char *insert_name, const char *delete_name,
                               uint64_t *base_out, uint64_t *warm_out, uint64_t *inserted_out)
{
    const uint64_t writes = bench_cfg.write_ops;
    uint64_t inserted = 0, insert_base = st->next_new_index;
    uint64_t warm = writes / 20 ? writes / 20 : 1;
    st->first_index = insert_base;
    latency_phase(insert_name, st, op_insert_new, writes, &inserted, false);
    st->first_index = insert_base + warm;
    bench_hist *hist = new_hist();
    double t_delete = bench_now_sec();
    uint64_t deleted = run_loop(st, op_delete, inserted, bench_cfg.phase_seconds, hist);
    t_delete = bench_now_sec() - t_delete;
    report_phase(delete_name, st->adapter, t_delete * 1e9 / (double)deleted, st, false);
    bench_record_hist(delete_name, st->adapter->name, hist);
    free(hist);
    *base_out = insert_base;
    *warm_out = warm;
    *inserted_out = inserted;
}

/* Close, then open again and answer one GET: the time a user waits for the first answer. */
static void close_and_reopen(const bench_adapter *a, void **store, const char *dir, int rep)
{
    double t0 = bench_now_sec();
    a->close(*store);
    double t1 = bench_now_sec();
    *store = a->open(dir);
    void *ctx = a->ctx_open(*store);
    uint8_t key[BENCH_KEY_SIZE], out[BENCH_VALUE_SIZE];
    size_t len = 0;
    bench_key(bench_splitmix64(bench_cfg.seed + 31 + (uint64_t)rep) % bench_cfg.n, key);
    if (a->get(ctx, key, out, sizeof out, &len) != 1)
        fprintf(stderr, "warning: %s: first GET after reopen did not find its key\n", a->name);
    double t2 = bench_now_sec();
    a->ctx_close(ctx);
    bench_record("close", a->name, (t1 - t0) * 1e9);
    bench_record("open_first_read", a->name, (t2 - t1) * 1e9);
}

void bench_run_raw_workloads(const bench_adapter *a, int rep)
{
    if (zipf_for_n.items != bench_cfg.n)
        bench_zipf_init(&zipf_for_n, bench_cfg.n, 0.99);

    char *dir = bench_make_dir(a->name);
    void *store = a->open(dir);
    double t0 = bench_now_sec();
    if (a->load(store, 0, bench_cfg.n) != 0)
        bench_die("load", a->name);
    bench_record("load", a->name, (bench_now_sec() - t0) * 1e9 / (double)bench_cfg.n);

    phase_state st;
    memset(&st, 0, sizeof st);
    st.adapter = a;
    st.ctx = a->ctx_open(store);
    st.zipf = &zipf_for_n;
    st.keys = bench_cfg.n;
    st.next_new_index = bench_cfg.n;
    bench_rng_seed(&st.rng, bench_cfg.seed + (uint64_t)rep);

    const uint64_t reads = bench_cfg.read_ops, writes = bench_cfg.write_ops;
    latency_phase("get_hit", &st, op_get_hit, reads, NULL, true);
    latency_phase("get_miss", &st, op_get_miss, reads, NULL, false);
    report_phase("scan100", a, run_phase(&st, op_scan100, bench_cfg.scan_ops, NULL, NULL), &st,
                 true);
    latency_phase("ycsb_c", &st, op_ycsb_c, reads, NULL, true);
    if (a->ctx_open_extra)
        run_thread_scaling(a, store, rep);

    latency_phase("overwrite", &st, op_overwrite, writes, NULL, false);

    /* N stays constant: the warm-up inserts are deleted untimed afterwards. */
    uint64_t insert_base, warm, inserted;
    insert_then_delete(&st, "insert", "delete", &insert_base, &warm, &inserted);
    st.first_index = insert_base;
    run_loop(&st, op_delete, warm, 1e9, NULL);
    st.next_new_index = insert_base + warm + inserted;
    st.errors = 0;

    report_phase("ycsb_a", a, run_phase(&st, op_ycsb_a, writes, NULL, NULL), &st, true);
    report_phase("ycsb_b", a, run_phase(&st, op_ycsb_b, reads, NULL, NULL), &st, true);
    report_phase("ycsb_f", a, run_phase(&st, op_ycsb_f, writes, NULL, NULL), &st, true);
    report_phase("ycsb_e", a, run_phase(&st, op_ycsb_e, bench_cfg.scan_ops, NULL, NULL), &st,
                 false);
    a->ctx_close(st.ctx);

    if (a->persistent)
        close_and_reopen(a, &store, dir, rep);
    a->close(store);
    bench_remove_dir(dir);
    free(dir);
}

void bench_run_durable_workloads(const bench_adapter *a, int rep)
{
    char *dir = bench_make_dir(a->name);
    const bench_adapter *loader = a->preload_with ? a->preload_with : a;
    void *store = loader->open(dir);
    if (loader->load(store, 0, bench_cfg.durable_keys) != 0)
        bench_die("load", loader->name);
    if (loader != a) {
        loader->close(store);
        store = a->open(dir);
    }

    phase_state st;
    memset(&st, 0, sizeof st);
    st.adapter = a;
    st.ctx = a->ctx_open(store);
    st.keys = bench_cfg.durable_keys;
    st.next_new_index = bench_cfg.durable_keys;
    bench_rng_seed(&st.rng, bench_cfg.seed + 1000 + (uint64_t)rep);
    latency_phase("overwrite.full", &st, op_overwrite, bench_cfg.write_ops, NULL, false);
    uint64_t base, warm, inserted;
    insert_then_delete(&st, "insert.full", "delete.full", &base, &warm, &inserted);
    a->ctx_close(st.ctx);
    a->close(store);
    bench_remove_dir(dir);
    free(dir);
}

/* The pairs each write workload is judged by (bench_compare). Reads compare feox (memory mode,
 * defaults) with every peer; writes never compare memory mode with a peer's durable commit. */
void bench_label_write_pairs(void)
{
    static const char *const writes[] = {"load",   "overwrite", "insert", "delete",
                                         "ycsb_a", "ycsb_b",    "ycsb_e", "ycsb_f"};
    static const char *const weaker = "feox weaker (sync=normal)";
    for (size_t w = 0; w < sizeof writes / sizeof writes[0]; w++) {
        bench_compare(writes[w], "feox_persist", "sqlite_wal", weaker);
        bench_compare(writes[w], "feox_persist", "lmdb", weaker);
        bench_compare(writes[w], "feox_persist", "rocksdb", weaker);
        bench_compare(writes[w], "feox", "sqlite_mem", "memory vs memory");
    }
    static const char *const durable[] = {"overwrite.full", "insert.full", "delete.full"};
    for (size_t w = 0; w < sizeof durable / sizeof durable[0]; w++) {
        bench_compare(durable[w], "feox_full", "sqlite_wal_full", "same guarantee");
        bench_compare(durable[w], "feox_full", "lmdb_sync", "same guarantee");
        bench_compare(durable[w], "feox_full", "rocksdb_sync", "same guarantee");
    }
    static const char *const reopen[] = {"close", "open_first_read"};
    for (size_t w = 0; w < 2; w++) {
        bench_compare(reopen[w], "feox_persist", "sqlite_wal", NULL);
        bench_compare(reopen[w], "feox_persist", "lmdb", NULL);
        bench_compare(reopen[w], "feox_persist", "rocksdb", NULL);
    }
}
