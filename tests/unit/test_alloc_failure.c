/*
 * test_alloc_failure.c — allocation-failure loop over the engine API (issue 7, item 2).
 *
 * feox_set_allocator routes every engine (and cJSON) allocation through a hook that fails the
 * Nth allocation made by the test thread, for N = 1, 2, ... through a representative workload
 * (open, inserts with and without TTL, update, increment, CAS, JSON patch, range query, cursor
 * walk, get / get_ref, update_ttl, persist, delete, close), until a run completes without reaching
 * N. Each call that meets the failure must either succeed anyway (the engine may degrade
 * gracefully) or return FEOX_ERR_NOMEM; after a failed call the store must be exactly as before
 * (a dump of every record with its tag, timestamp and expiry) and pass feox_check, and the same
 * call retried without the failure must succeed. Leaks are caught by LSan (make asan-tests).
 * Background threads (flusher, compaction in persistent mode) are never failed on purpose: only
 * allocations made by the test thread count, so the Nth allocation is deterministic.
 * A second pass of each mode makes the failure persistent (allocation N and every later one in
 * that call fail), so an allocation retried inside the engine cannot hide a problem.
 * The persistent variant also closes, reopens and compares the reopened store with the dump.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <pthread.h>

#include "feox.h"
#include "feox_test_support.h"
#include "failing_alloc.h"

/* ---- dumping a store ------------------------------------------------------------------------ */

typedef struct dump {
    char *text;
    size_t len, cap;
} dump;

static void dump_append(dump *d, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof line);
    if (d->len + (size_t)n + 1 > d->cap) {
        d->cap = (d->len + (size_t)n + 1) * 2;
        d->text = realloc(d->text, d->cap);
        assert_non_null(d->text);
    }
    memcpy(d->text + d->len, line, (size_t)n + 1);
    d->len += (size_t)n;
}

static int dump_record(void *ctx, const void *key, size_t key_len, const void *value,
                       size_t value_len, const feox_record_info *info)
{
    dump_append(ctx, "%.*s=%.*s|tag %u|ts %llu|exp %llu\n", (int)key_len, (const char *)key,
                (int)value_len, (const char *)value, info->tag,
                (unsigned long long)info->timestamp_ns, (unsigned long long)info->expires_at_ns);
    return 0;
}

/* Every record (keys and values here are printable), then len. Never fails on purpose. */
static char *dump_store(feox_store *s)
{
    bool was_injecting = ftest_fault.injecting;
    ftest_fault.injecting = false;
    dump d = {0};
    dump_append(&d, "len %llu\n", (unsigned long long)feox_len(s, 0));
    assert_int_equal(feox_range_query(s, "\x01", 1, "\x7f", 1, SIZE_MAX, dump_record, &d, NULL),
                     FEOX_OK);
    ftest_fault.injecting = was_injecting;
    return d.text;
}

/* ---- the workload: one engine call per step ------------------------------------------------- */

static ftest_clock test_clock;

static feox_err step_insert_plain(feox_store *s, int i)
{
    char key[16], value[32];
    snprintf(key, sizeof key, "user:%d", i);
    snprintf(value, sizeof value, "value-%d", i);
    return feox_insert(s, key, strlen(key), value, strlen(value), NULL, NULL);
}

static feox_err step_insert_ttl(feox_store *s, int i)
{
    (void)i;
    feox_write_opts o = {.flags = FEOX_WRITE_TTL, .ttl_secs = 30, .tag = 7};
    return feox_insert(s, "session:1", 9, "token", 5, &o, NULL);
}

static feox_err step_insert_expires_at(feox_store *s, int i)
{
    (void)i;
    feox_write_opts o = {.flags = FEOX_WRITE_EXPIRES_AT,
                         .expires_at_ns = ftest_clock_now(&test_clock) + 5 * FTEST_SEC};
    return feox_insert(s, "session:2", 9, "short", 5, &o, NULL);
}

static feox_err step_update(feox_store *s, int i)
{
    (void)i;
    return feox_insert(s, "user:1", 6, "a longer replacement value", 26, NULL, NULL);
}

static feox_err step_update_keep_ttl(feox_store *s, int i)
{
    (void)i;
    feox_write_opts o = {.flags = FEOX_WRITE_KEEP_TTL, .tag = 3};
    return feox_insert(s, "session:1", 9, "token2", 6, &o, NULL);
}

static feox_err step_insert_if_absent(feox_store *s, int i)
{
    (void)i;
    const feox_write_opts ia = {.flags = FEOX_WRITE_IF_ABSENT};
    feox_err err = feox_insert(s, "once", 4, "1", 1, &ia, NULL);
    return err == FEOX_ERR_KEY_EXISTS ? FEOX_OK : err; /* a live key: nothing to insert */
}

static feox_err step_incr_new(feox_store *s, int i)
{
    (void)i;
    int64_t r;
    return feox_atomic_increment(s, "counter", 7, 5, NULL, &r);
}

static feox_err step_incr_existing(feox_store *s, int i)
{
    (void)i;
    int64_t r;
    feox_write_opts o = {.flags = FEOX_WRITE_TTL, .ttl_secs = 100};
    return feox_atomic_increment(s, "counter", 7, -2, &o, &r);
}

static feox_err step_cas(feox_store *s, int i)
{
    (void)i;
    bool swapped;
    return feox_compare_and_swap(s, "user:2", 6, "value-2", 7, "swapped", 7, NULL, &swapped);
}

static feox_err step_doc(feox_store *s, int i)
{
    (void)i;
    const char *doc = "{\"name\":\"Ada\",\"age\":36,\"tags\":[\"a\",\"b\"],\"n\":1.50}";
    return feox_insert(s, "doc", 3, doc, strlen(doc), NULL, NULL);
}

static feox_err step_patch(feox_store *s, int i)
{
    (void)i;
    const char *patch = "[{\"op\":\"replace\",\"path\":\"/age\",\"value\":37},"
                        "{\"op\":\"add\",\"path\":\"/tags/-\",\"value\":{\"k\":[1,2]}},"
                        "{\"op\":\"copy\",\"from\":\"/name\",\"path\":\"/alias\"},"
                        "{\"op\":\"move\",\"from\":\"/n\",\"path\":\"/m\"},"
                        "{\"op\":\"test\",\"path\":\"/age\",\"value\":37}]";
    char *result = NULL;
    size_t result_len = 0;
    feox_err err = feox_json_patch(s, "doc", 3, patch, strlen(patch), NULL, &result, &result_len);
    feox_free(result);
    return err;
}

static feox_err step_patch_failing(feox_store *s, int i)
{
    (void)i;
    /* A patch that fails on its own: JSON_PATCH is the right answer, NOMEM is acceptable. */
    const char *patch = "[{\"op\":\"remove\",\"path\":\"/missing\"}]";
    feox_err err = feox_json_patch(s, "doc", 3, patch, strlen(patch), NULL, NULL, NULL);
    return err == FEOX_ERR_JSON_PATCH ? FEOX_OK : err;
}

static int count_record(void *ctx, const void *key, size_t key_len, const void *value,
                        size_t value_len, const feox_record_info *info)
{
    (void)key, (void)key_len, (void)value, (void)value_len, (void)info;
    ++*(size_t *)ctx;
    return 0;
}

static feox_err step_range(feox_store *s, int i)
{
    (void)i;
    size_t n = 0, visited = 0;
    feox_err err = feox_range_query(s, "a", 1, "z", 1, SIZE_MAX, count_record, &n, &visited);
    if (!err)
        assert_int_equal(n, visited);
    return err;
}

static feox_err step_cursor(feox_store *s, int i)
{
    (void)i;
    feox_cursor *c = NULL;
    feox_err err = feox_cursor_open(s, &c);
    if (err)
        return err;
    err = feox_cursor_seek(c, FEOX_SEEK_GE, "user:", 5);
    for (int step = 0; step < 3 && !err; step++)
        err = feox_cursor_next(c);
    if (!err)
        err = feox_cursor_prev(c);
    if (!err)
        err = feox_cursor_seek(c, FEOX_SEEK_LAST, NULL, 0);
    if (!err)
        err = feox_cursor_prev(c);
    if (!err)
        assert_true(feox_cursor_valid(c));
    feox_cursor_close(c);
    return err;
}

static feox_err step_get(feox_store *s, int i)
{
    (void)i;
    void *v = NULL;
    size_t n;
    feox_err err = feox_get(s, "doc", 3, &v, &n, NULL);
    feox_free(v);
    if (err)
        return err;
    feox_value *ref = NULL;
    err = feox_get_ref(s, "user:3", 6, &ref);
    feox_value_release(ref);
    return err;
}

static feox_err step_update_ttl(feox_store *s, int i)
{
    (void)i;
    return feox_update_ttl(s, "user:4", 6, 60, NULL);
}

static feox_err step_persist(feox_store *s, int i)
{
    (void)i;
    return feox_update_ttl(s, "session:1", 9, 0, NULL);
}

static feox_err step_advance_clock(feox_store *s, int i)
{
    (void)i;
    (void)s;
    ftest_clock_advance(&test_clock, 10 * FTEST_SEC); /* session:2 expires */
    return FEOX_OK;
}

static feox_err step_delete(feox_store *s, int i)
{
    (void)i;
    return feox_delete(s, "user:0", 6, NULL);
}

static feox_err step_len(feox_store *s, int i)
{
    (void)i;
    assert_int_equal(feox_len(s, 0), 9);
    return FEOX_OK;
}

/* Enough keys to split index nodes and grow the hash index. */
#define BULK_KEYS 80

static feox_err step_bulk_insert(feox_store *s, int i)
{
    char key[32];
    snprintf(key, sizeof key, "bulk:%04d", i);
    return feox_insert(s, key, strlen(key), key, strlen(key), NULL, NULL);
}

static feox_err step_bulk_delete(feox_store *s, int i)
{
    char key[32];
    snprintf(key, sizeof key, "bulk:%04d", 2 * i);
    return feox_delete(s, key, strlen(key), NULL);
}

/* One engine call per run(s, i), i = 0 .. times-1; the store is compared around each call. */
typedef struct step {
    const char *name;
    feox_err (*run)(feox_store *s, int i);
    int times;
} step;

static const step workload[] = {
    {"insert plain", step_insert_plain, 6},
    {"insert ttl", step_insert_ttl, 1},
    {"insert expires_at", step_insert_expires_at, 1},
    {"update", step_update, 1},
    {"update keep ttl", step_update_keep_ttl, 1},
    {"insert_if_absent", step_insert_if_absent, 1},
    {"incr new", step_incr_new, 1},
    {"incr existing", step_incr_existing, 1},
    {"cas", step_cas, 1},
    {"doc", step_doc, 1},
    {"patch", step_patch, 1},
    {"patch failing", step_patch_failing, 1},
    {"range", step_range, 1},
    {"cursor", step_cursor, 1},
    {"get", step_get, 1},
    {"update_ttl", step_update_ttl, 1},
    {"persist", step_persist, 1},
    {"advance clock", step_advance_clock, 1},
    {"delete", step_delete, 1},
    {"len", step_len, 1},
    {"bulk insert", step_bulk_insert, BULK_KEYS},
    {"bulk delete", step_bulk_delete, BULK_KEYS / 2},
    {"range again", step_range, 1},
    {"cursor again", step_cursor, 1},
};
#define N_STEPS (sizeof workload / sizeof workload[0])

/* ---- the loop ----------------------------------------------------------------------------------
 */

static void fill_config(feox_config *cfg, const char *path)
{
    ftest_config(cfg, &test_clock);
    cfg->path = path;
    cfg->disable_compaction = true;
    cfg->sync = FEOX_SYNC_OFF; /* close still writes everything; fsyncs only slow the loop */
}

/* Problems found so far; a run that finds one stops there, the loop goes on to the next N, and
 * the test fails at the end with every distinct problem printed (the first few of each). */
static int problems;

static void problem(const char *fmt, ...)
{
    problems++;
    if (problems > 12)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* Run step st's call i with allocation n failing; false if a problem was found. */
static bool checked_call(feox_store *s, const step *st, int i, unsigned long n, bool *reached)
{
    char *before = dump_store(s);
    ftest_fault.failure_injected = false;
    ftest_fault.injecting = true;
    feox_err err = st->run(s, i);
    ftest_fault.injecting = false;
    *reached |= ftest_fault.failure_injected;
    if (ftest_fault.failure_injected)
        ftest_fault.fail_at = 0; /* one failing call per run */
    bool ok = true;
    if (err != FEOX_OK) {
        if (!ftest_fault.failure_injected || err != FEOX_ERR_NOMEM) {
            problem("alloc %lu, step '%s' #%d: returned %s (%s), failure injected: %d", n, st->name,
                    i, feox_strerror(err), feox_error_detail(), ftest_fault.failure_injected);
            ok = false;
        }
        char *after = dump_store(s);
        if (ok && strcmp(before, after)) {
            problem("alloc %lu, step '%s' #%d failed with NOMEM but changed the store:\n"
                    "--- before\n%s--- after\n%s",
                    n, st->name, i, before, after);
            ok = false;
        }
        free(after);
        if (ok && feox_check(s) != FEOX_OK) {
            problem("alloc %lu, step '%s' #%d: feox_check after NOMEM: %s", n, st->name, i,
                    feox_error_detail());
            ok = false;
        }
        if (ok && (err = st->run(s, i)) != FEOX_OK) { /* no failure now: it must work */
            problem("alloc %lu, step '%s' #%d retried: %s (%s)", n, st->name, i, feox_strerror(err),
                    feox_error_detail());
            ok = false;
        }
    }
    free(before);
    return ok;
}

/* One run with allocation number n failing (0 = none). Returns true if the failure was reached.
 * *final_dump is the end state, or NULL if the run stopped early. */
static bool run_with_failure_at(unsigned long n, const char *path, char **final_dump)
{
    *final_dump = NULL;
    ftest_clock_init(&test_clock, FTEST_EPOCH_NS);
    if (path)
        unlink(path);
    feox_config cfg;
    fill_config(&cfg, path);
    ftest_fault.alloc_count = 0;
    ftest_fault.fail_at = n;
    ftest_fault.failure_injected = false;
    ftest_fault.injecting = true;
    feox_store *s = NULL;
    feox_err err = feox_open(&cfg, &s);
    ftest_fault.injecting = false;
    if (ftest_fault.failure_injected)
        ftest_fault.fail_at = 0;
    if (err != FEOX_OK) {
        if (!ftest_fault.failure_injected || err != FEOX_ERR_NOMEM)
            problem("alloc %lu: feox_open returned %s (%s), failure injected: %d", n,
                    feox_strerror(err), feox_error_detail(), ftest_fault.failure_injected);
        if (s)
            problem("alloc %lu: feox_open failed but set *out", n);
        return true;
    }
    bool reached = ftest_fault.failure_injected, ok = true;
    for (size_t i = 0; i < N_STEPS && ok; i++)
        for (int j = 0; j < workload[i].times && ok; j++)
            ok = checked_call(s, &workload[i], j, n, &reached);
    if (ok && feox_check(s) != FEOX_OK) {
        problem("alloc %lu: feox_check at the end: %s", n, feox_error_detail());
        ok = false;
    }
    if (ok)
        *final_dump = dump_store(s);
    err = feox_close(s);
    if (err != FEOX_OK)
        problem("alloc %lu: feox_close returned %s", n, feox_strerror(err));
    return reached;
}

static void failure_loop(const char *path, bool persistent)
{
    problems = 0;
    ftest_failing_alloc_install(persistent);
    char *reference = NULL;
    assert_false(run_with_failure_at(0, path, &reference)); /* a clean run */
    assert_int_equal(problems, 0);
    assert_non_null(reference);
    unsigned long n;
    for (n = 1;; n++) {
        char *final_dump = NULL;
        bool reached = run_with_failure_at(n, path, &final_dump);
        /* Whatever failed was retried: the end state is the clean run's. */
        if (final_dump && strcmp(final_dump, reference))
            problem("alloc %lu: end state differs from the clean run:\n%s---\n%s", n, final_dump,
                    reference);
        if (final_dump && path) {
            /* What is on disk is that too. */
            feox_config cfg;
            fill_config(&cfg, path);
            feox_store *s = ftest_open(&cfg);
            char *reopened = dump_store(s);
            if (strcmp(reopened, reference))
                problem("alloc %lu: reopened store differs:\n%s---\n%s", n, reopened, reference);
            free(reopened);
            if (feox_check(s) != FEOX_OK)
                problem("alloc %lu: feox_check after reopening: %s", n, feox_error_detail());
            feox_close(s);
        }
        free(final_dump);
        if (!reached)
            break;
    }
    ftest_failing_alloc_remove();
    free(reference);
    print_message("allocation failure loop (%s, %s): %lu allocations; %d problems\n",
                  path ? "persistent mode" : "memory mode",
                  persistent ? "persistent failure" : "single failure", n - 1, problems);
    assert_true(n > 20); /* the workload really allocates */
    assert_int_equal(problems, 0);
}

static void test_memory_mode(void **state)
{
    (void)state;
    failure_loop(NULL, false);
}

static void test_memory_mode_persistent_failure(void **state)
{
    (void)state;
    failure_loop(NULL, true);
}

static void persistent_mode_loop(bool persistent_failure_mode)
{
    char dir[] = "/tmp/feox_alloc_failure_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[sizeof dir + 16];
    snprintf(path, sizeof path, "%s/store.feox", dir);
    failure_loop(path, persistent_failure_mode);
    char cmd[sizeof dir + 16];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_persistent_mode(void **state)
{
    (void)state;
    persistent_mode_loop(false);
}

static void test_persistent_mode_persistent_failure(void **state)
{
    (void)state;
    persistent_mode_loop(true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory_mode),
        cmocka_unit_test(test_memory_mode_persistent_failure),
        cmocka_unit_test(test_persistent_mode),
        cmocka_unit_test(test_persistent_mode_persistent_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
