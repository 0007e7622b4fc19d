/*
 * bench_special.c — workloads that exercise what only feox offers, each against the closest
 * baseline that can run in the same process:
 *   hot_incr_<T>t   one hot counter, T threads: feox_atomic_increment (column feox) vs a get + CAS
 *                   loop on the same store (cas_loop); the final count is checked.
 *   json_patch      a 4-op RFC 6902 patch on a ~1 KB document (feox_json_patch) vs cJSON parse +
 *                   print of that document alone (issue 3's target: <= 1.5x).
 *   ttl_mix         50% GET, 25% insert with a 50..500 ms expiry, 25% plain insert, sweeper on
 *                   (feox) vs the same mix with the sweeper off (feox_no_sweeper).
 *   persist_write   overwrites of 100K keys, sync=normal (feox) vs memory mode (feox_memory); the
 *                   note gives bytes written to the file per op.
 *   flush           feox_flush() latency after 10K unflushed upserts (ns per flush call).
 */
#include "bench.h"

#include "feox.h"

#include <cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static feox_store *open_feox(const char *path, bool sweeper)
{
    feox_config cfg;
    feox_config_init(&cfg);
    cfg.path = path;
    cfg.disable_ttl_sweeper = !sweeper; /* otherwise feox's defaults (no presizing) */
    feox_store *s = NULL;
    feox_err err = feox_open(&cfg, &s);
    if (err != FEOX_OK)
        bench_die("feox_open", feox_strerror(err));
    return s;
}

/* ---- hot counter ------------------------------------------------------------------------------
 */

static const char hot_key[] = "bench:hot-counter";

typedef struct counter_job {
    feox_store *store;
    bool use_cas;
    uint64_t ops, done, retries;
    pthread_barrier_t *start;
    double started, finished; /* each thread times itself: the main thread may wake late */
} counter_job;

static bool cas_increment(feox_store *s, uint64_t *retries)
{
    for (;;) {
        feox_value *v;
        feox_err err = feox_get_ref(s, hot_key, sizeof hot_key - 1, &v);
        if (err != FEOX_OK)
            return false;
        int64_t old_value = 0, new_value;
        memcpy(&old_value, feox_value_data(v), sizeof old_value);
        feox_value_release(v);
        new_value = old_value + 1;
        bool swapped = false;
        if (feox_compare_and_swap(s, hot_key, sizeof hot_key - 1, &old_value, sizeof old_value,
                                  &new_value, sizeof new_value, NULL, &swapped) != FEOX_OK)
            return false;
        if (swapped)
            return true;
        (*retries)++;
    }
}

static void *counter_thread(void *arg)
{
    counter_job *job = arg;
    pthread_barrier_wait(job->start);
    job->started = bench_now_sec();
    double deadline = job->started + bench_cfg.phase_seconds;
    for (job->done = 0; job->done < job->ops;) {
        if (job->use_cas)
            cas_increment(job->store, &job->retries);
        else
            feox_atomic_increment(job->store, hot_key, sizeof hot_key - 1, 1, NULL, NULL);
        job->done++;
        if ((job->done & 255) == 0 && bench_now_sec() > deadline)
            break;
    }
    job->finished = bench_now_sec();
    return NULL;
}

/* Aggregate ns per increment with `threads` threads; checks the counter equals the ops done. */
static double time_counter(feox_store *s, int threads, bool use_cas, double *retries_per_op)
{
    int64_t zero = 0;
    feox_insert(s, hot_key, sizeof hot_key - 1, &zero, sizeof zero, NULL, NULL);
    counter_job jobs[64];
    pthread_t tids[64];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)threads + 1);
    for (int t = 0; t < threads; t++) {
        jobs[t] = (counter_job){s, use_cas, bench_cfg.read_ops, 0, 0, &start, 0, 0};
        pthread_create(&tids[t], NULL, counter_thread, &jobs[t]);
    }
    pthread_barrier_wait(&start);
    uint64_t total = 0, retries = 0;
    double first_start = 0, last_finish = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(tids[t], NULL);
        total += jobs[t].done;
        retries += jobs[t].retries;
        if (t == 0 || jobs[t].started < first_start)
            first_start = jobs[t].started;
        if (jobs[t].finished > last_finish)
            last_finish = jobs[t].finished;
    }
    double elapsed = last_finish - first_start;
    pthread_barrier_destroy(&start);
    int64_t final_value = 0;
    void *v;
    size_t len;
    if (feox_get(s, hot_key, sizeof hot_key - 1, &v, &len, NULL) == FEOX_OK) {
        memcpy(&final_value, v, sizeof final_value);
        feox_free(v);
    }
    if ((uint64_t)final_value != total)
        fprintf(stderr, "warning: hot counter %s: %lld after %llu increments\n",
                use_cas ? "cas" : "incr", (long long)final_value, (unsigned long long)total);
    if (retries_per_op)
        *retries_per_op = (double)retries / (double)total;
    return elapsed * 1e9 / (double)total;
}

static void run_hot_counter(void)
{
    feox_store *s = open_feox(NULL, true);
    int counts[3] = {1, 2, bench_cfg.max_threads};
    for (int c = 0; c < 3; c++) {
        int threads = counts[c];
        if (threads > 64 || (c == 2 && threads <= 2))
            continue;
        char name[32], note[96];
        snprintf(name, sizeof name, "hot_incr_%dt", threads);
        double retries = 0;
        bench_record(name, "feox", time_counter(s, threads, false, NULL));
        bench_record(name, "cas_loop", time_counter(s, threads, true, &retries));
        snprintf(note, sizeof note, "one key; cas_loop = get + CAS, %.3f retries/op (last rep)",
                 retries);
        bench_note(name, note);
    }
    feox_close(s);
}

/* ---- JSON patch -------------------------------------------------------------------------------
 */

static char *make_document(size_t *len)
{
    size_t cap = 4096, used = 0;
    char *doc = malloc(cap);
    used += (size_t)snprintf(doc + used, cap - used,
                             "{\"id\":9007199254740993,\"name\":\"Ada Lovelace\",\"alias\":\"x\","
                             "\"version\":1,\"counter\":0,\"profile\":{\"city\":\"London\","
                             "\"lang\":\"en\",\"score\":12.5},\"items\":[");
    for (int i = 0; used < 900; i++)
        used += (size_t)snprintf(doc + used, cap - used,
                                 "%s{\"sku\":\"item-%04d\",\"qty\":%d,\"price\":%d.%02d}",
                                 i ? "," : "", i, i * 3 + 1, 10 + i, i * 7 % 100);
    used += (size_t)snprintf(doc + used, cap - used, "],\"tags\":[\"a\",\"b\",\"c\"]}");
    *len = used;
    return doc;
}

static const char json_patch_text[] =
    "[{\"op\":\"test\",\"path\":\"/version\",\"value\":1},"
    "{\"op\":\"replace\",\"path\":\"/counter\",\"value\":42},"
    "{\"op\":\"add\",\"path\":\"/profile/city\",\"value\":\"Paris\"},"
    "{\"op\":\"copy\",\"from\":\"/name\",\"path\":\"/alias\"}]";

static void run_json_patch(void)
{
    size_t doc_len = 0;
    char *doc = make_document(&doc_len);
    feox_store *s = open_feox(NULL, true);
    static const char key[] = "bench:doc";
    feox_insert(s, key, sizeof key - 1, doc, doc_len, NULL, NULL);
    uint64_t ops = bench_cfg.write_ops, errors = 0;

    for (int pass = 0; pass < 2; pass++) {
        uint64_t count = pass ? ops : ops / 20 + 1;
        double t0 = bench_now_sec(), deadline = t0 + bench_cfg.phase_seconds;
        uint64_t i = 0;
        while (i < count) {
            if (feox_json_patch(s, key, sizeof key - 1, json_patch_text, sizeof json_patch_text - 1,
                                NULL, NULL, NULL) != FEOX_OK)
                errors++;
            i++;
            if ((i & 63) == 0 && bench_now_sec() > deadline)
                break;
        }
        if (pass)
            bench_record("json_patch", "feox", (bench_now_sec() - t0) * 1e9 / (double)i);
    }
    if (errors)
        fprintf(stderr, "warning: json_patch: %llu errors (%s)\n", (unsigned long long)errors,
                feox_error_detail());

    for (int pass = 0; pass < 2; pass++) {
        uint64_t count = pass ? ops : ops / 20 + 1;
        double t0 = bench_now_sec(), deadline = t0 + bench_cfg.phase_seconds;
        uint64_t i = 0;
        while (i < count) {
            cJSON *tree = cJSON_ParseWithLength(doc, doc_len);
            char *printed = cJSON_PrintUnformatted(tree);
            cJSON_free(printed);
            cJSON_Delete(tree);
            i++;
            if ((i & 63) == 0 && bench_now_sec() > deadline)
                break;
        }
        if (pass)
            bench_record("json_patch", "cjson_parse_print",
                         (bench_now_sec() - t0) * 1e9 / (double)i);
    }
    char note[96];
    snprintf(note, sizeof note, "%zu-byte document, 4-op patch (test, replace, add, copy)",
             doc_len);
    bench_note("json_patch", note);
    feox_close(s);
    free(doc);
}

/* ---- TTL-heavy mix ----------------------------------------------------------------------------
 */

static double time_ttl_mix(feox_store *s, uint64_t seed)
{
    bench_rng rng;
    bench_rng_seed(&rng, seed);
    uint8_t key[BENCH_KEY_SIZE], value[BENCH_VALUE_SIZE];
    uint64_t keys = bench_cfg.n < 1000000 ? bench_cfg.n : 1000000;
    for (uint64_t i = 0; i < keys; i++) {
        bench_key(i, key);
        bench_value(i, 0, value);
        feox_write_opts opts = {0};
        if (i & 1) {
            opts.flags = FEOX_WRITE_EXPIRES_AT;
            opts.expires_at_ns = feox_now_ns(s) + (50 + bench_rng_below(&rng, 450)) * 1000000ull;
        }
        feox_insert(s, key, sizeof key, value, sizeof value, &opts, NULL);
    }
    uint64_t ops = bench_cfg.read_ops, i = 0;
    double t0 = bench_now_sec(), deadline = t0 + bench_cfg.phase_seconds;
    while (i < ops) {
        uint64_t index = bench_rng_below(&rng, keys), dice = bench_rng_below(&rng, 4);
        bench_key(index, key);
        if (dice < 2) {
            feox_value *v;
            if (feox_get_ref(s, key, sizeof key, &v) == FEOX_OK) {
                memcpy(value, feox_value_data(v), sizeof value);
                feox_value_release(v);
            }
        } else {
            feox_write_opts opts = {0};
            if (dice == 2) {
                opts.flags = FEOX_WRITE_EXPIRES_AT;
                opts.expires_at_ns =
                    feox_now_ns(s) + (50 + bench_rng_below(&rng, 450)) * 1000000ull;
            }
            bench_value(index, i, value);
            feox_insert(s, key, sizeof key, value, sizeof value, &opts, NULL);
        }
        i++;
        if ((i & 255) == 0 && bench_now_sec() > deadline)
            break;
    }
    return (bench_now_sec() - t0) * 1e9 / (double)i;
}

static void run_ttl_mix(int rep)
{
    feox_store *s = open_feox(NULL, true);
    bench_record("ttl_mix", "feox", time_ttl_mix(s, 900 + (uint64_t)rep));
    feox_stats stats;
    feox_get_stats(s, &stats);
    feox_close(s);
    s = open_feox(NULL, false);
    bench_record("ttl_mix", "feox_no_sweeper", time_ttl_mix(s, 900 + (uint64_t)rep));
    feox_close(s);
    char note[160];
    snprintf(note, sizeof note,
             "50%% get, 25%% insert with 50-500 ms expiry, 25%% plain insert; sweeper removed "
             "%llu, lazy %llu",
             (unsigned long long)stats.ttl_expired_active,
             (unsigned long long)stats.ttl_expired_lazy);
    bench_note("ttl_mix", note);
}

/* ---- persistence ------------------------------------------------------------------------------
 */

/* Upserts of random keys among the first `keys` indexes (all present: these are overwrites). */
static double time_upserts(feox_store *s, uint64_t keys, uint64_t ops, uint64_t version,
                           uint64_t *done)
{
    uint8_t key[BENCH_KEY_SIZE], value[BENCH_VALUE_SIZE];
    bench_rng rng;
    bench_rng_seed(&rng, version);
    double t0 = bench_now_sec(), deadline = t0 + bench_cfg.phase_seconds;
    uint64_t i = 0;
    while (i < ops) {
        uint64_t index = bench_rng_below(&rng, keys);
        bench_key(index, key);
        bench_value(index, version + i, value);
        feox_insert(s, key, sizeof key, value, sizeof value, NULL, NULL);
        i++;
        if ((i & 255) == 0 && bench_now_sec() > deadline)
            break;
    }
    if (done)
        *done = i;
    return (bench_now_sec() - t0) * 1e9 / (double)i;
}

static void run_persistence(int rep)
{
    char *dir = bench_make_dir("feox_special");
    char path[512];
    snprintf(path, sizeof path, "%s/special.feox", dir);
    feox_store *persistent = open_feox(path, true);
    feox_store *memory = open_feox(NULL, true);
    uint8_t key[BENCH_KEY_SIZE], value[BENCH_VALUE_SIZE];
    uint64_t preload = bench_cfg.n < 100000 ? bench_cfg.n : 100000;
    for (uint64_t i = 0; i < preload; i++) {
        bench_key(i, key);
        bench_value(i, 0, value);
        feox_insert(persistent, key, sizeof key, value, sizeof value, NULL, NULL);
        feox_insert(memory, key, sizeof key, value, sizeof value, NULL, NULL);
    }
    feox_flush(persistent);

    feox_stats before, after;
    feox_get_stats(persistent, &before);
    uint64_t done = 0;
    bench_record(
        "persist_write", "feox",
        time_upserts(persistent, preload, bench_cfg.write_ops, 1000 + (uint64_t)rep, &done));
    bench_record("persist_write", "feox_memory",
                 time_upserts(memory, preload, bench_cfg.write_ops, 1000 + (uint64_t)rep, NULL));
    feox_flush(persistent);
    feox_get_stats(persistent, &after);
    char note[160];
    snprintf(note, sizeof note,
             "overwrites of 100K keys, sync=normal vs memory mode; %.1f bytes written per op",
             (double)(after.disk_bytes_written - before.disk_bytes_written) / (double)done);
    bench_note("persist_write", note);

    /* flush() after 10K unflushed writes, a few times. */
    int flushes = bench_cfg.quick ? 3 : 10;
    for (int f = 0; f < flushes; f++) {
        time_upserts(persistent, preload, 10000, 5000 + (uint64_t)f, NULL);
        double t0 = bench_now_sec();
        feox_err err = feox_flush(persistent);
        double ns = (bench_now_sec() - t0) * 1e9;
        if (err != FEOX_OK)
            fprintf(stderr, "warning: feox_flush: %s\n", feox_strerror(err));
        bench_record("flush", "feox", ns);
    }
    bench_note("flush", "ns per feox_flush() after 10K unflushed upserts (write + fsync); "
                        "samples from every rep");
    feox_close(memory);
    feox_close(persistent);
    bench_remove_dir(dir);
    free(dir);
}

void bench_run_special_workloads(int rep)
{
    run_hot_counter();
    run_json_patch();
    run_ttl_mix(rep);
    run_persistence(rep);
}
