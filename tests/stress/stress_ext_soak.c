/*
 * stress_ext_soak.c — the long soak through SQL (issue 7, item 4; `make soak`).
 *
 * 8 threads, each with its own SQLite connection to one file database in a temp dir (each loads
 * the extension with sqlite3_feox_init), work on one persistent feox table
 *   CREATE VIRTUAL TABLE kv USING feox(path='<tmp>/soak.feox', sync='normal')
 * with the TTL sweeper, the flusher and compaction running, for --seconds N (default 15, the
 * make test run; make soak runs 600 and CI 60;
 * --quick = 3 s). Each thread writes only keys under its own prefix "t<i>:" and reads everything;
 * it mixes point reads, range scans (own prefix checked exactly, others checked for order),
 * INSERT / REPLACE / UPDATE / DELETE (single and ranged), writes with a long ttl, short-lived
 * keys with ttl=1 that must vanish, feox_incr, feox_cas, feox_patch, and transactions (with
 * savepoints) that commit or roll back. A shadow model per thread predicts every own-key result.
 * Shared counters are incremented with feox_incr outside transactions by every thread and must
 * equal the sum of the increments exactly. At the end every model is verified, the connections
 * closed, a new connection opened (the store is reopened from its file) and everything verified
 * again, with feox_check. RSS (/proc/self/statm) is sampled: the final RSS must stay below
 * 3x the RSS after warm-up (+16 MiB for small baselines).
 *
 * Usage: stress_ext_soak [--seconds N] [--quick] [--threads 1..8 (default 8)]. Exit 0 on success;
 * failures are printed.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "feox_ext.h"
#include "feox_test_support.h"

#define N_THREADS 8

/* Under AddressSanitizer freed memory sits in a quarantine of up to 256 MiB, so RSS says nothing
 * about the store: the bound is checked only in plain builds. */
#define RSS_CHECKED (!FTEST_UNDER_ASAN)
#define KEYS_PER_THREAD 200
#define EPHEMERAL_PER_THREAD 32
#define N_COUNTERS 4

static char dir_path[256], db_path[320], store_path[320];
static _Atomic int failures;
static int n_threads = N_THREADS;
static _Atomic bool stop;
static _Atomic long long shared_increments[N_COUNTERS];

static void fail(const char *fmt, ...)
{
    if (atomic_fetch_add(&failures, 1) > 20)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static long rss_kib(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = 0;
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* ---- connections
 * ----------------------------------------------------------------------------------- */

static sqlite3 *open_connection(void)
{
    sqlite3 *db = NULL;
    char *err = NULL;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
            SQLITE_OK ||
        sqlite3_feox_init(db, &err, NULL) != SQLITE_OK) {
        fprintf(stderr, "cannot open %s: %s\n", db_path, err ? err : sqlite3_errmsg(db));
        exit(1);
    }
    sqlite3_busy_timeout(db, 10000);
    return db;
}

/* Run sql (with %-arguments) expecting success; returns false (and reports) otherwise. */
static bool exec_ok(sqlite3 *db, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *sql = sqlite3_vmprintf(fmt, ap);
    va_end(ap);
    char *err = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
    if (rc != SQLITE_OK)
        fail("%s: %s", sql, err ? err : sqlite3_errstr(rc));
    sqlite3_free(err);
    sqlite3_free(sql);
    return rc == SQLITE_OK;
}

/* The single text / integer result of a query, or NULL (absent row) / 0; reports errors. */
static char *query_text(sqlite3 *db, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *sql = sqlite3_vmprintf(fmt, ap);
    va_end(ap);
    sqlite3_stmt *st = NULL;
    char *out = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        out = sqlite3_mprintf("%s", t ? (const char *)t : "NULL");
        rc = sqlite3_step(st);
    }
    if (rc != SQLITE_DONE)
        fail("%s: %s", sql, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    sqlite3_free(sql);
    return out;
}

/* ---- the shadow model of one thread ---------------------------------------------------------- */

typedef struct own_key {
    bool present;
    char value[48];
} own_key;

typedef struct model {
    own_key keys[KEYS_PER_THREAD];
    int doc_n;             /* t<i>:doc holds {"n":doc_n,"tag":"x"} once created (doc_n >= 0) */
    long long own_counter; /* t<i>:counter, INTEGER */
} model;

typedef struct worker {
    int id;
    sqlite3 *db;
    model committed; /* what the table holds for this thread's keys */
    uint64_t rng;
    double ephemeral_written[EPHEMERAL_PER_THREAD]; /* monotonic seconds of the last write; 0 */
    long ops;
} worker;

static uint64_t next_random(worker *w)
{
    uint64_t z = (w->rng += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static int below(worker *w, int n)
{
    return (int)(next_random(w) % (uint64_t)n);
}

/* Compare every own key (and the doc and counter) with m through one range scan. */
static void verify_model(sqlite3 *db, int id, const model *m, const char *when)
{
    sqlite3_stmt *st = NULL;
    char *sql = sqlite3_mprintf("SELECT key, value FROM kv WHERE key >= 't%d:k' AND key < 't%d:l' "
                                "ORDER BY key",
                                id, id);
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        fail("%s: %s", sql, sqlite3_errmsg(db));
        sqlite3_free(sql);
        return;
    }
    int expected = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int n = -1;
        const char *key = (const char *)sqlite3_column_text(st, 0);
        const char *value = (const char *)sqlite3_column_text(st, 1);
        if (sscanf(key + strcspn(key, ":") + 2, "%d", &n) != 1 || n < 0 || n >= KEYS_PER_THREAD) {
            fail("%s: thread %d: unexpected key %s", when, id, key);
            continue;
        }
        while (expected < n) {
            if (m->keys[expected].present)
                fail("%s: thread %d: key %d missing (model %s)", when, id, expected,
                     m->keys[expected].value);
            expected++;
        }
        if (!m->keys[n].present)
            fail("%s: thread %d: key %d present (%s), model says deleted", when, id, n, value);
        else if (strcmp(value ? value : "NULL", m->keys[n].value))
            fail("%s: thread %d: key %d = %s, model %s", when, id, n, value, m->keys[n].value);
        expected = n + 1;
    }
    if (rc != SQLITE_DONE)
        fail("%s: %s", sql, sqlite3_errmsg(db));
    for (; expected < KEYS_PER_THREAD; expected++)
        if (m->keys[expected].present)
            fail("%s: thread %d: key %d missing at the end (model %s)", when, id, expected,
                 m->keys[expected].value);
    sqlite3_finalize(st);
    sqlite3_free(sql);

    char *counter = query_text(db, "SELECT value FROM kv WHERE key = 't%d:counter'", id);
    if (m->own_counter && (!counter || atoll(counter) != m->own_counter))
        fail("%s: thread %d: counter %s, model %lld", when, id, counter, m->own_counter);
    sqlite3_free(counter);
    if (m->doc_n >= 0) {
        char *n =
            query_text(db, "SELECT json_extract(value, '$.n') FROM kv WHERE key = 't%d:doc'", id);
        if (!n || atoi(n) != m->doc_n)
            fail("%s: thread %d: doc n = %s, model %d", when, id, n, m->doc_n);
        sqlite3_free(n);
    }
}

/* ---- operations
 * ----------------------------------------------------------------------------------- */

/* One write on an own key applied to the table and to m (the transaction's view). */
static bool own_write(worker *w, model *m)
{
    int k = below(w, KEYS_PER_THREAD);
    own_key *ok = &m->keys[k];
    char value[48];
    snprintf(value, sizeof value, "v%d-%ld", w->id, w->ops);
    switch (below(w, 7)) {
    case 0: /* plain insert: fails on a live key, exactly when the model has it */
    {
        char *sql = sqlite3_mprintf("INSERT INTO kv(key, value) VALUES ('t%d:k%04d', '%s')", w->id,
                                    k, value);
        int rc = sqlite3_exec(w->db, sql, NULL, NULL, NULL);
        sqlite3_free(sql);
        if (ok->present ? rc != SQLITE_CONSTRAINT : rc != SQLITE_OK) {
            fail("thread %d: INSERT of key %d (model present=%d): %s", w->id, k, ok->present,
                 sqlite3_errmsg(w->db));
            return false;
        }
        if (!ok->present) {
            ok->present = true;
            snprintf(ok->value, sizeof ok->value, "%s", value);
        }
        return true;
    }
    case 1:
        if (!exec_ok(w->db, "REPLACE INTO kv(key, value) VALUES ('t%d:k%04d', '%s')", w->id, k,
                     value))
            return false;
        break;
    case 2: /* a long ttl: it must not expire during the soak */
        if (!exec_ok(w->db, "REPLACE INTO kv(key, value, ttl) VALUES ('t%d:k%04d', '%s', 86400)",
                     w->id, k, value))
            return false;
        break;
    case 3:
        if (!exec_ok(w->db, "UPDATE kv SET value = '%s' WHERE key = 't%d:k%04d'", value, w->id, k))
            return false;
        if (!ok->present)
            return true;
        break;
    case 4:
        if (!exec_ok(w->db, "DELETE FROM kv WHERE key = 't%d:k%04d'", w->id, k))
            return false;
        ok->present = false;
        return true;
    case 5: { /* ranged delete of up to 4 keys */
        int hi = k + below(w, 4);
        if (hi >= KEYS_PER_THREAD)
            hi = KEYS_PER_THREAD - 1;
        if (!exec_ok(w->db, "DELETE FROM kv WHERE key BETWEEN 't%d:k%04d' AND 't%d:k%04d'", w->id,
                     k, w->id, hi))
            return false;
        for (int i = k; i <= hi; i++)
            m->keys[i].present = false;
        return true;
    }
    default: { /* CAS from the model's value */
        if (!ok->present)
            return true;
        char *r = query_text(w->db, "SELECT feox_cas('kv', 't%d:k%04d', '%s', '%s')", w->id, k,
                             ok->value, value);
        bool swapped = r && !strcmp(r, "1");
        sqlite3_free(r);
        if (!swapped) {
            fail("thread %d: feox_cas on key %d from the model's value did not swap", w->id, k);
            return false;
        }
        break;
    }
    }
    ok->present = true;
    snprintf(ok->value, sizeof ok->value, "%s", value);
    return true;
}

static void own_counter_and_doc(worker *w, model *m)
{
    if (below(w, 2)) {
        long long delta = below(w, 100) - 30;
        char *r = query_text(w->db, "SELECT feox_incr('kv', 't%d:counter', %lld)", w->id, delta);
        if (!r || atoll(r) != m->own_counter + delta)
            fail("thread %d: feox_incr own counter = %s, model %lld", w->id, r,
                 m->own_counter + delta);
        else
            m->own_counter += delta;
        sqlite3_free(r);
        return;
    }
    if (m->doc_n < 0) {
        if (exec_ok(w->db,
                    "REPLACE INTO kv(key, value) VALUES ('t%d:doc', '{\"n\":0,\"tag\":\"x\"}')",
                    w->id))
            m->doc_n = 0;
        return;
    }
    char *r = query_text(w->db,
                         "SELECT json_extract(feox_patch('kv', 't%d:doc', '[{\"op\":\"test\","
                         "\"path\":\"/n\",\"value\":%d},{\"op\":\"replace\",\"path\":\"/n\","
                         "\"value\":%d}]'), '$.n')",
                         w->id, m->doc_n, m->doc_n + 1);
    if (!r || atoi(r) != m->doc_n + 1) {
        char *now = query_text(w->db, "SELECT quote(value) FROM kv WHERE key = 't%d:doc'", w->id);
        fail("thread %d: feox_patch gave n = %s, model %d; the document is %s", w->id, r,
             m->doc_n + 1, now);
        sqlite3_free(now);
    } else
        m->doc_n++;
    sqlite3_free(r);
}

static void shared_counter(worker *w)
{
    int c = below(w, N_COUNTERS);
    char *r = query_text(w->db, "SELECT feox_incr('kv', 'shared:%d', 1)", c);
    if (r)
        atomic_fetch_add(&shared_increments[c], 1);
    else
        fail("thread %d: feox_incr shared:%d returned nothing", w->id, c);
    sqlite3_free(r);
}

static void ephemeral_write(worker *w)
{
    int e = below(w, EPHEMERAL_PER_THREAD);
    if (exec_ok(w->db, "REPLACE INTO kv(key, value, ttl) VALUES ('e%d:%02d', 'short', 1)", w->id,
                e))
        w->ephemeral_written[e] = now_seconds();
}

/* A read of anyone's key, or a scan: own keys exact, other prefixes ordered. */
static void read_something(worker *w)
{
    if (below(w, 2)) {
        int k = below(w, KEYS_PER_THREAD);
        char *v = query_text(w->db, "SELECT value FROM kv WHERE key = 't%d:k%04d'", w->id, k);
        const own_key *ok = &w->committed.keys[k];
        if (ok->present != (v != NULL) || (v && strcmp(v, ok->value)))
            fail("thread %d: key %d read %s, model %s", w->id, k, v ? v : "(absent)",
                 ok->present ? ok->value : "(absent)");
        sqlite3_free(v);
        return;
    }
    int other = below(w, N_THREADS);
    bool desc = below(w, 2);
    char *sql = sqlite3_mprintf("SELECT key FROM kv WHERE key >= 't%d:' AND key < 't%d;' "
                                "ORDER BY key %s LIMIT 50",
                                other, other, desc ? "DESC" : "ASC");
    sqlite3_stmt *st = NULL;
    char prev[64] = "";
    if (sqlite3_prepare_v2(w->db, sql, -1, &st, NULL) == SQLITE_OK) {
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            const char *key = (const char *)sqlite3_column_text(st, 0);
            if (prev[0] && (desc ? strcmp(key, prev) >= 0 : strcmp(key, prev) <= 0))
                fail("thread %d: scan out of order: %s after %s", w->id, key, prev);
            snprintf(prev, sizeof prev, "%s", key);
        }
        if (rc != SQLITE_DONE)
            fail("%s: %s", sql, sqlite3_errmsg(w->db));
    } else {
        fail("%s: %s", sql, sqlite3_errmsg(w->db));
    }
    sqlite3_finalize(st);
    sqlite3_free(sql);
}

/* BEGIN; a few own writes (maybe inside a savepoint that is rolled back); COMMIT or ROLLBACK. */
static void transaction(worker *w)
{
    model view = w->committed;
    if (!exec_ok(w->db, "BEGIN"))
        return;
    bool ok = true;
    for (int i = below(w, 4) + 1; i > 0 && ok; i--)
        ok = own_write(w, &view);
    if (ok && below(w, 2)) {
        model at_savepoint = view;
        ok = exec_ok(w->db, "SAVEPOINT sp");
        for (int i = below(w, 3) + 1; i > 0 && ok; i--)
            ok = own_write(w, &view);
        if (ok && below(w, 2)) {
            ok = exec_ok(w->db, "ROLLBACK TO sp");
            view = at_savepoint;
        }
        if (ok)
            ok = exec_ok(w->db, "RELEASE sp");
    }
    if (ok && below(w, 3)) {
        if (exec_ok(w->db, "COMMIT"))
            w->committed = view;
    } else {
        exec_ok(w->db, "ROLLBACK");
    }
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    w->db = open_connection();
    while (!atomic_load(&stop)) {
        w->ops++;
        int what = below(w, 20);
        if (what < 6)
            own_write(w, &w->committed);
        else if (what < 11)
            read_something(w);
        else if (what < 13)
            own_counter_and_doc(w, &w->committed);
        else if (what < 15)
            shared_counter(w);
        else if (what < 16)
            ephemeral_write(w);
        else if (what < 18)
            transaction(w);
        else if (what == 18 && below(w, 50) == 0)
            exec_ok(w->db, "SELECT feox_flush('kv')");
        else
            read_something(w);
    }
    verify_model(w->db, w->id, &w->committed, "end");
    return NULL;
}

/* ---- checks after the run
 * -------------------------------------------------------------------------- */

static void verify_shared(sqlite3 *db, const char *when)
{
    for (int c = 0; c < N_COUNTERS; c++) {
        long long want = atomic_load(&shared_increments[c]);
        char *v = query_text(db, "SELECT value FROM kv WHERE key = 'shared:%d'", c);
        if (want && (!v || atoll(v) != want))
            fail("%s: shared:%d = %s, expected exactly %lld", when, c, v, want);
        sqlite3_free(v);
    }
    char *check = query_text(db, "SELECT feox_check('kv')");
    if (!check || strcmp(check, "ok"))
        fail("%s: feox_check: %s", when, check);
    sqlite3_free(check);
}

static void verify_ephemeral(sqlite3 *db, const worker *workers, const char *when)
{
    double now = now_seconds();
    for (int t = 0; t < n_threads; t++)
        for (int e = 0; e < EPHEMERAL_PER_THREAD; e++) {
            /* ttl=1 s: written more than 2.5 s ago means expired now. */
            if (!workers[t].ephemeral_written[e] || now - workers[t].ephemeral_written[e] < 2.5)
                continue;
            char *v = query_text(db, "SELECT value FROM kv WHERE key = 'e%d:%02d'", t, e);
            if (v)
                fail("%s: e%d:%02d still present %.1f s after a ttl=1 write", when, t, e,
                     now - workers[t].ephemeral_written[e]);
            sqlite3_free(v);
        }
}

int main(int argc, char **argv)
{
    double seconds = 15;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            seconds = 3;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            n_threads =
                atoi(argv[++i]) < 1 || atoi(argv[i]) > N_THREADS ? N_THREADS : atoi(argv[i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--seconds N] [--quick] [--threads 1..8]\n", argv[0]);
            return 2;
        }
    }
    snprintf(dir_path, sizeof dir_path, "/tmp/feox_soak_XXXXXX");
    if (!mkdtemp(dir_path)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(db_path, sizeof db_path, "%s/soak.db", dir_path);
    snprintf(store_path, sizeof store_path, "%s/soak.feox", dir_path);

    sqlite3 *main_db = open_connection();
    if (!exec_ok(main_db, "CREATE VIRTUAL TABLE kv USING feox(path='%q', sync='normal')",
                 store_path))
        return 1;

    static worker workers[N_THREADS];
    pthread_t threads[N_THREADS];
    for (int t = 0; t < n_threads; t++) {
        workers[t].id = t;
        workers[t].rng = (uint64_t)t * 7919 + (uint64_t)time(NULL);
        workers[t].committed.doc_n = -1;
        pthread_create(&threads[t], NULL, worker_main, &workers[t]);
    }
    double start = now_seconds(), warm = seconds / 4 < 10 ? seconds / 4 : 10;
    long rss_warm = 0, rss_max = 0;
    while (now_seconds() - start < seconds) {
        usleep(100000);
        long rss = rss_kib();
        if (!rss_warm && now_seconds() - start >= warm)
            rss_warm = rss;
        if (rss > rss_max)
            rss_max = rss;
    }
    atomic_store(&stop, true);
    long total_ops = 0;
    for (int t = 0; t < n_threads; t++) {
        pthread_join(threads[t], NULL);
        total_ops += workers[t].ops;
    }
    long rss_final = rss_kib();
    verify_shared(main_db, "end");
    verify_ephemeral(main_db, workers, "end");
    for (int t = 0; t < n_threads; t++)
        sqlite3_close(workers[t].db);
    sqlite3_close(main_db);

    /* Every connection is closed: the store was flushed and closed; open it again. */
    sqlite3 *db = open_connection();
    for (int t = 0; t < n_threads; t++)
        verify_model(db, t, &workers[t].committed, "reopened");
    verify_shared(db, "reopened");
    sqlite3_close(db);

    printf("soak: %.0f s, %ld operations, RSS after warm-up %ld KiB, max %ld KiB, final %ld KiB\n",
           seconds, total_ops, rss_warm, rss_max, rss_final);
    if (RSS_CHECKED && rss_warm && rss_final > 3 * rss_warm + 16 * 1024)
        fail("RSS grew from %ld KiB after warm-up to %ld KiB", rss_warm, rss_final);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir_path);
    if (atomic_load(&failures) == 0 && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir_path);
    if (atomic_load(&failures)) {
        fprintf(stderr, "soak: %d failures (files kept in %s)\n", atomic_load(&failures), dir_path);
        return 1;
    }
    printf("soak: ok\n");
    return 0;
}
