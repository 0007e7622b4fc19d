/*
 * bench_workloads.c — the raw-API workloads, run over any bench_adapter. One call runs one
 * repetition for one store: open, load N (timed), then every phase in a fixed order (read-only
 * phases first, then phases that write but keep N constant), threaded read scaling, reopen.
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

typedef struct phase_state {
    const bench_adapter *adapter;
    void *ctx;
    bench_rng rng;
    const bench_zipf *zipf;
    uint64_t next_new_index; /* indexes >= n not yet used by an insert */
    uint64_t version;        /* distinguishes written values */
    uint64_t errors, misses;
    uint64_t first_index; /* insert/delete phases: where this pass starts */
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
    do_get(st, bench_rng_below(&st->rng, bench_cfg.n));
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
    do_put(st, bench_rng_below(&st->rng, bench_cfg.n));
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
    bench_key(bench_rng_below(&st->rng, bench_cfg.n), st->key);
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

/* Run `ops` operations or until the time budget ends; returns how many ran. */
static uint64_t run_loop(phase_state *st, op_fn op, uint64_t ops, double budget_sec)
{
    double deadline = bench_now_sec() + budget_sec;
    uint64_t i = 0;
    while (i < ops) {
        op(st, i);
        i++;
        if ((i & 255) == 0 && bench_now_sec() > deadline)
            break;
    }
    return i;
}

/* Warm up, then time. Returns ns/op; *done (may be NULL) = timed ops that ran. */
static double run_phase(phase_state *st, op_fn op, uint64_t ops, uint64_t *done)
{
    uint64_t warm = ops / 20 ? ops / 20 : 1;
    uint64_t base = st->first_index;
    run_loop(st, op, warm, bench_cfg.phase_seconds / 10);
    st->first_index = base + warm;
    double t0 = bench_now_sec();
    uint64_t ran = run_loop(st, op, ops, bench_cfg.phase_seconds);
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
    run_loop(&job->state, job->op, job->ops / 20 + 1, bench_cfg.phase_seconds / 10);
    pthread_barrier_wait(job->start);
    job->started = bench_now_sec();
    job->ran = run_loop(&job->state, job->op, job->ops, bench_cfg.phase_seconds);
    job->finished = bench_now_sec();
    return NULL;
}

/* Aggregate ns/op with `threads` threads each running the op: wall time / total ops. */
static double run_threaded(const bench_adapter *a, void *store, op_fn op, int threads, uint64_t ops,
                           uint64_t seed)
{
    thread_job *jobs = calloc((size_t)threads, sizeof *jobs);
    pthread_t *tids = calloc((size_t)threads, sizeof *tids);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)threads + 1);
    for (int t = 0; t < threads; t++) {
        jobs[t].state.adapter = a;
        jobs[t].state.ctx = a->ctx_open_extra(store);
        jobs[t].state.zipf = &zipf_for_n;
        bench_rng_seed(&jobs[t].state.rng, seed * 1000 + (uint64_t)t);
        jobs[t].op = op;
        jobs[t].ops = ops;
        jobs[t].start = &start;
        pthread_create(&tids[t], NULL, thread_main, &jobs[t]);
    }
    pthread_barrier_wait(&start);
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
    pthread_barrier_destroy(&start);
    free(jobs);
    free(tids);
    return elapsed * 1e9 / (double)total;
}

static void run_thread_scaling(const bench_adapter *a, void *store, int rep)
{
    int counts[2] = {2, bench_cfg.max_threads};
    for (int c = 0; c < 2; c++) {
        int threads = counts[c];
        if (threads < 2 || (c == 1 && threads <= 2))
            continue;
        char name[64];
        snprintf(name, sizeof name, "ycsb_c_%dt", threads);
        bench_record(name, a->name,
                     run_threaded(a, store, op_ycsb_c, threads, bench_cfg.read_ops, 77 + rep));
        snprintf(name, sizeof name, "get_hit_%dt", threads);
        bench_record(name, a->name,
                     run_threaded(a, store, op_get_hit, threads, bench_cfg.read_ops, 78 + rep));
    }
}

/* ---- one repetition over one store ------------------------------------------------------------
 */

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
    st.next_new_index = bench_cfg.n;
    bench_rng_seed(&st.rng, bench_cfg.seed + (uint64_t)rep);

    const uint64_t reads = bench_cfg.read_ops, writes = bench_cfg.write_ops;
    report_phase("get_hit", a, run_phase(&st, op_get_hit, reads, NULL), &st, true);
    report_phase("get_miss", a, run_phase(&st, op_get_miss, reads, NULL), &st, false);
    report_phase("scan100", a, run_phase(&st, op_scan100, bench_cfg.scan_ops, NULL), &st, true);
    report_phase("ycsb_c", a, run_phase(&st, op_ycsb_c, reads, NULL), &st, true);
    if (a->ctx_open_extra)
        run_thread_scaling(a, store, rep);

    report_phase("overwrite", a, run_phase(&st, op_overwrite, writes, NULL), &st, false);

    /* Insert new keys (warm-up ones first), then delete exactly the timed ones (their cache lines
     * are as warm as the inserts left them), then the warm-up ones untimed: N stays constant. */
    uint64_t inserted = 0, insert_base = st.next_new_index;
    uint64_t warm = writes / 20 ? writes / 20 : 1;
    st.first_index = insert_base;
    report_phase("insert", a, run_phase(&st, op_insert_new, writes, &inserted), &st, false);
    st.first_index = insert_base + warm;
    double t_delete = bench_now_sec();
    uint64_t deleted = run_loop(&st, op_delete, inserted, bench_cfg.phase_seconds);
    t_delete = bench_now_sec() - t_delete;
    report_phase("delete", a, t_delete * 1e9 / (double)deleted, &st, false);
    st.first_index = insert_base;
    run_loop(&st, op_delete, warm, 1e9);
    st.next_new_index = insert_base + warm + inserted;
    st.errors = 0;

    report_phase("ycsb_a", a, run_phase(&st, op_ycsb_a, writes, NULL), &st, true);
    report_phase("ycsb_b", a, run_phase(&st, op_ycsb_b, reads, NULL), &st, true);
    report_phase("ycsb_f", a, run_phase(&st, op_ycsb_f, writes, NULL), &st, true);
    report_phase("ycsb_e", a, run_phase(&st, op_ycsb_e, bench_cfg.scan_ops, NULL), &st, false);
    a->ctx_close(st.ctx);

    if (a->reopen) {
        /* Records held now: N plus the YCSB-E inserts. */
        t0 = bench_now_sec();
        a->reopen(&store, dir);
        double ns = (bench_now_sec() - t0) * 1e9 / (double)bench_cfg.n;
        bench_record("reopen", a->name, ns);
    }
    a->close(store);
    bench_remove_dir(dir);
    free(dir);
}
