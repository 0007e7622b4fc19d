/*
 * test_store_fullsync.c — a store file with sync=full keeps no write that failed: the writes whose
 * group commit fails (pwrite ENOSPC, injected through engine/base/io.h) return DISK_FULL and have
 * no effect, in memory at once and in the file after the disk recovers, the store is flushed,
 * closed and reopened; the writes appended behind them are written as usual.
 *   single      one insert on a full disk; a delete, an increment, a compare-and-swap, a patch.
 *   group       two writers sharing the failed group commit both fail and are both undone, while
 *               a third, appended during that failed write, is kept (its offset stays right: read
 *               back from the file after the reopen).
 *   supersede   two failed writes of one key (the second replacing the first) leave the version
 *               before both; a failed write followed by a good one of the same key keeps the
 *               good one.
 *   ops         a delete, an increment, a compare-and-swap and a JSON patch in one failed group
 *               commit are undone.
 * The threads are staged with a pwrite that holds chosen calls until the test releases them and
 * fails chosen ones; the test waits for states (a version visible, a call held), never for time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/io.h"
#include "feox.h"
#include "temp_store_dir.h"

static char dir[] = "/tmp/feox_fullsync_XXXXXX";
static char path[sizeof dir + 16];

/* ---- the staged pwrite ------------------------------------------------------------------ */

typedef enum step { STEP_OK, STEP_FAIL, STEP_HOLD_OK, STEP_HOLD_FAIL } step;

#define PLAN_MAX 16
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    step plan[PLAN_MAX]; /* what pwrite call i (from arming) does; STEP_OK past plan_len */
    int plan_len;
    int calls;   /* pwrite calls since arming */
    int held;    /* number (1-based) of the call being held, 0 = none */
    int release; /* calls up to this number may go on */
} gate = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static ssize_t staged_pwrite(int fd, const void *buf, size_t len, off_t offset)
{
    pthread_mutex_lock(&gate.mu);
    int n = ++gate.calls;
    step s = n <= gate.plan_len ? gate.plan[n - 1] : STEP_OK;
    if (s == STEP_HOLD_OK || s == STEP_HOLD_FAIL) {
        gate.held = n;
        pthread_cond_broadcast(&gate.cv);
        while (gate.release < n)
            pthread_cond_wait(&gate.cv, &gate.mu);
        gate.held = 0;
    }
    pthread_mutex_unlock(&gate.mu);
    if (s == STEP_FAIL || s == STEP_HOLD_FAIL) {
        errno = ENOSPC;
        return -1;
    }
    return pwrite(fd, buf, len, offset);
}

static int real_open(const char *p, int flags, mode_t mode)
{
    return open(p, flags, mode);
}

static const feox_io_methods staged_io = {.open = real_open,
                                          .pread = pread,
                                          .pwrite = staged_pwrite,
                                          .fsync = fsync,
                                          .ftruncate = ftruncate,
                                          .rename = rename};

static void arm(const step *plan, int len)
{
    pthread_mutex_lock(&gate.mu);
    memcpy(gate.plan, plan, (size_t)len * sizeof *plan);
    gate.plan_len = len;
    gate.calls = gate.held = gate.release = 0;
    pthread_mutex_unlock(&gate.mu);
    feox_io_set_methods(&staged_io);
}

static void disarm(void)
{
    feox_io_set_methods(NULL);
    pthread_mutex_lock(&gate.mu);
    gate.plan_len = 0;
    gate.release = 1 << 30;
    pthread_cond_broadcast(&gate.cv);
    pthread_mutex_unlock(&gate.mu);
}

static void wait_held(int call)
{
    pthread_mutex_lock(&gate.mu);
    while (gate.held != call)
        pthread_cond_wait(&gate.cv, &gate.mu);
    pthread_mutex_unlock(&gate.mu);
}

static void release(int call)
{
    pthread_mutex_lock(&gate.mu);
    gate.release = call;
    pthread_cond_broadcast(&gate.cv);
    pthread_mutex_unlock(&gate.mu);
}

/* ---- the store -------------------------------------------------------------------------- */

static feox_store *open_store(void)
{
    feox_config cfg;
    feox_config_init(&cfg);
    cfg.path = path;
    cfg.sync = FEOX_SYNC_FULL;
    cfg.flush_interval_ms = 3600u * 1000u; /* the flusher never writes by itself here */
    cfg.disable_compaction = true;
    cfg.disable_ttl_sweeper = true;
    feox_store *s = NULL;
    assert_int_equal(feox_open(&cfg, &s), FEOX_OK);
    return s;
}

static void put(feox_store *s, const char *key, const char *value)
{
    assert_int_equal(feox_insert(s, key, strlen(key), value, strlen(value), NULL, NULL), FEOX_OK);
}

static void put_counter(feox_store *s, const char *key, int64_t n)
{
    uint8_t le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (uint8_t)((uint64_t)n >> (8 * i));
    assert_int_equal(feox_insert(s, key, strlen(key), le, 8, NULL, NULL), FEOX_OK);
}

/* Whether key holds value now (value NULL: whether key is absent). */
static bool holds(feox_store *s, const char *key, const char *value)
{
    void *got = NULL;
    size_t len = 0;
    feox_err err = feox_get(s, key, strlen(key), &got, &len, NULL);
    bool same = value ? err == FEOX_OK && len == strlen(value) && memcmp(got, value, len) == 0
                      : err == FEOX_ERR_KEY_NOT_FOUND;
    feox_free(got);
    return same;
}

static void assert_holds(feox_store *s, const char *key, const char *value)
{
    if (!holds(s, key, value)) {
        void *got = NULL;
        size_t len = 0;
        feox_err err = feox_get(s, key, strlen(key), &got, &len, NULL);
        fail_msg("%s: expected %s, got %s (%.*s)", key, value ? value : "(absent)",
                 feox_strerror(err), err ? 0 : (int)len, err ? "" : (char *)got);
    }
}

static int64_t counter(feox_store *s, const char *key)
{
    uint8_t le[8];
    size_t len = 0;
    assert_int_equal(feox_get_into(s, key, strlen(key), le, sizeof le, &len, NULL), FEOX_OK);
    assert_int_equal(len, 8);
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u |= (uint64_t)le[i] << (8 * i);
    return (int64_t)u;
}

/* Wait until key shows value (a writer's version is published: its record is appended). */
static void wait_shows(feox_store *s, const char *key, const char *value)
{
    while (!holds(s, key, value))
        sched_yield();
}

/* ---- writes run on their own threads ------------------------------------------------------ */

typedef enum op_kind { OP_PUT, OP_DELETE, OP_INCR, OP_CAS, OP_PATCH } op_kind;

typedef struct op {
    op_kind kind;
    const char *key;
    const char *value;    /* OP_PUT: the value; OP_CAS: the new value; OP_PATCH: the patch */
    const char *expected; /* OP_CAS */
    /* What shows once the op has appended and published (NULL for a delete: absent). */
    const char *shows;
    feox_store *s;
    pthread_t thread;
    feox_err err;
} op;

static void *run_op(void *arg)
{
    op *o = arg;
    size_t kl = strlen(o->key);
    switch (o->kind) {
    case OP_PUT:
        o->err = feox_insert(o->s, o->key, kl, o->value, strlen(o->value), NULL, NULL);
        break;
    case OP_DELETE: o->err = feox_delete(o->s, o->key, kl, NULL); break;
    case OP_INCR: o->err = feox_atomic_increment(o->s, o->key, kl, 5, NULL, NULL); break;
    case OP_CAS: {
        bool swapped = false;
        o->err = feox_compare_and_swap(o->s, o->key, kl, o->expected, strlen(o->expected), o->value,
                                       strlen(o->value), NULL, &swapped);
        if (o->err == FEOX_OK && !swapped)
            o->err = FEOX_ERR_INVALID_OPERATION; /* the test set it up to swap */
        break;
    }
    case OP_PATCH:
        o->err = feox_json_patch(o->s, o->key, kl, o->value, strlen(o->value), NULL, NULL, NULL);
        break;
    }
    return NULL;
}

static void start(feox_store *s, op *o)
{
    o->s = s;
    assert_int_equal(pthread_create(&o->thread, NULL, run_op, o), 0);
}

/* Start o and wait until it has published (appended) its change. */
static void start_and_wait(feox_store *s, op *o)
{
    start(s, o);
    wait_shows(s, o->key, o->shows);
}

/*
 * The staging every multi-writer test uses:
 *   pwrite 1: `lead` (a put of its own key) writes, held, then succeeds;
 *   while it is held, every op of `failing` appends (they wait for the next group commit);
 *   pwrite 2: their group commit, held; while it is held `next` (if any) appends behind it;
 *   then pwrite 2 fails (ENOSPC), and so does pwrite 3 (the overwrite of the cancelled bytes:
 *   the disk is still full); pwrite 4 on (the retry of the cancelled bytes, then `next`'s
 *   records) succeed.
 */
static void run_staged(feox_store *s, op *failing, int n, op *next)
{
    static const step plan[] = {STEP_HOLD_OK, STEP_HOLD_FAIL, STEP_FAIL};
    arm(plan, 3);
    op lead = {.kind = OP_PUT, .key = "lead", .value = "lead-1", .shows = "lead-1"};
    start(s, &lead);
    wait_held(1);
    for (int i = 0; i < n; i++)
        start_and_wait(s, &failing[i]);
    release(1);
    wait_held(2);
    if (next)
        start_and_wait(s, next);
    release(2);
    assert_int_equal(pthread_join(lead.thread, NULL), 0);
    assert_int_equal(lead.err, FEOX_OK);
    for (int i = 0; i < n; i++) {
        assert_int_equal(pthread_join(failing[i].thread, NULL), 0);
        assert_int_equal(failing[i].err, FEOX_ERR_DISK_FULL);
    }
    if (next) {
        assert_int_equal(pthread_join(next->thread, NULL), 0);
        assert_int_equal(next->err, FEOX_OK);
    }
    disarm();
}

/* Flush, close and reopen (the disk has recovered). */
static feox_store *reopen(feox_store *s)
{
    assert_int_equal(feox_flush(s), FEOX_OK);
    assert_int_equal(feox_close(s), FEOX_OK);
    feox_close_wait();
    s = open_store();
    assert_int_equal(feox_check(s), FEOX_OK);
    return s;
}

static int setup(void **state)
{
    (void)state;
    return ftest_temp_store_make(dir, path, sizeof path);
}

static int teardown(void **state)
{
    (void)state;
    ftest_temp_store_remove(dir, path);
    return 0;
}

static int fresh_file(void **state)
{
    (void)state;
    feox_io_inject_reset();
    unlink(path);
    return 0;
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_single_failed_writes_have_no_effect(void **state)
{
    (void)state;
    feox_store *s = open_store();
    put(s, "k", "old");
    put(s, "gone", "there");
    put_counter(s, "n", 7);
    put(s, "c", "c-old");
    put(s, "doc", "{\"a\":1}");
    feox_io_inject(FEOX_IO_PWRITE, 1, ENOSPC, false, true);
    assert_int_equal(feox_insert(s, "k", 1, "new", 3, NULL, NULL), FEOX_ERR_DISK_FULL);
    assert_int_equal(feox_insert(s, "fresh", 5, "v", 1, NULL, NULL), FEOX_ERR_DISK_FULL);
    assert_int_equal(feox_delete(s, "gone", 4, NULL), FEOX_ERR_DISK_FULL);
    assert_int_equal(feox_atomic_increment(s, "n", 1, 5, NULL, NULL), FEOX_ERR_DISK_FULL);
    bool swapped = true;
    assert_int_equal(feox_compare_and_swap(s, "c", 1, "c-old", 5, "c-new", 5, NULL, &swapped),
                     FEOX_ERR_DISK_FULL);
    const char *patch = "[{\"op\":\"replace\",\"path\":\"/a\",\"value\":2}]";
    assert_int_equal(feox_json_patch(s, "doc", 3, patch, strlen(patch), NULL, NULL, NULL),
                     FEOX_ERR_DISK_FULL);
    for (int round = 0; round < 2; round++) {
        assert_holds(s, "k", "old");
        assert_holds(s, "fresh", NULL);
        assert_holds(s, "gone", "there");
        assert_int_equal(counter(s, "n"), 7);
        assert_holds(s, "c", "c-old");
        assert_holds(s, "doc", "{\"a\":1}");
        if (round == 0) {
            feox_io_inject_reset(); /* the disk recovers */
            put(s, "after", "ok");
            s = reopen(s);
        }
    }
    assert_holds(s, "after", "ok");
    /* A later write of the same key wins as usual. */
    put(s, "k", "newer");
    s = reopen(s);
    assert_holds(s, "k", "newer");
    assert_int_equal(feox_close(s), FEOX_OK);
}

static void test_group_commit_fails_together_and_the_next_buffer_is_kept(void **state)
{
    (void)state;
    feox_store *s = open_store();
    put(s, "k1", "old1");
    put(s, "k2", "old2");
    op failing[2] = {
        {.kind = OP_PUT, .key = "k1", .value = "new1", .shows = "new1"},
        {.kind = OP_PUT, .key = "k2", .value = "new2", .shows = "new2"},
    };
    op next = {.kind = OP_PUT, .key = "k3", .value = "new3", .shows = "new3"};
    run_staged(s, failing, 2, &next);
    for (int round = 0; round < 2; round++) {
        assert_holds(s, "lead", "lead-1");
        assert_holds(s, "k1", "old1");
        assert_holds(s, "k2", "old2");
        assert_holds(s, "k3", "new3"); /* its record follows the cancelled ones in the file */
        if (round == 0)
            s = reopen(s);
    }
    put(s, "k4", "new4"); /* appends go on after the reopen */
    s = reopen(s);
    assert_holds(s, "k4", "new4");
    assert_holds(s, "k3", "new3");
    assert_int_equal(feox_close(s), FEOX_OK);
}

static void test_two_failed_writes_of_one_key_leave_the_version_before_both(void **state)
{
    (void)state;
    feox_store *s = open_store();
    put(s, "k", "old");
    op failing[2] = {
        {.kind = OP_PUT, .key = "k", .value = "first", .shows = "first"},
        {.kind = OP_PUT, .key = "k", .value = "second", .shows = "second"},
    };
    run_staged(s, failing, 2, NULL);
    assert_holds(s, "k", "old");
    s = reopen(s);
    assert_holds(s, "k", "old");
    assert_int_equal(feox_close(s), FEOX_OK);
}

static void test_a_good_write_after_a_failed_one_of_the_same_key_wins(void **state)
{
    (void)state;
    feox_store *s = open_store();
    put(s, "k", "old");
    op failing[1] = {{.kind = OP_PUT, .key = "k", .value = "failed", .shows = "failed"}};
    op next = {.kind = OP_PUT, .key = "k", .value = "good", .shows = "good"};
    run_staged(s, failing, 1, &next);
    assert_holds(s, "k", "good");
    s = reopen(s);
    assert_holds(s, "k", "good");
    assert_int_equal(feox_close(s), FEOX_OK);
}

static void test_failed_delete_incr_cas_and_patch_are_undone(void **state)
{
    (void)state;
    feox_store *s = open_store();
    put(s, "gone", "there");
    put_counter(s, "n", 7);
    put(s, "c", "c-old");
    put(s, "doc", "{\"a\":1}");
    op failing[4] = {
        {.kind = OP_DELETE, .key = "gone", .shows = NULL},
        {.kind = OP_INCR, .key = "n"}, /* waited for by its value below */
        {.kind = OP_CAS, .key = "c", .expected = "c-old", .value = "c-new", .shows = "c-new"},
        {.kind = OP_PATCH,
         .key = "doc",
         .value = "[{\"op\":\"replace\",\"path\":\"/a\",\"value\":2}]",
         .shows = "{\"a\":2}"},
    };
    static const step plan[] = {STEP_HOLD_OK, STEP_HOLD_FAIL, STEP_FAIL};
    arm(plan, 3);
    op lead = {.kind = OP_PUT, .key = "lead", .value = "lead-1", .shows = "lead-1"};
    start(s, &lead);
    wait_held(1);
    start_and_wait(s, &failing[0]);
    start(s, &failing[1]);
    while (counter(s, "n") != 12)
        sched_yield();
    start_and_wait(s, &failing[2]);
    start_and_wait(s, &failing[3]);
    release(1);
    wait_held(2);
    release(2);
    assert_int_equal(pthread_join(lead.thread, NULL), 0);
    assert_int_equal(lead.err, FEOX_OK);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(failing[i].thread, NULL), 0);
        assert_int_equal(failing[i].err, FEOX_ERR_DISK_FULL);
    }
    disarm();
    for (int round = 0; round < 2; round++) {
        assert_holds(s, "gone", "there");
        assert_int_equal(counter(s, "n"), 7);
        assert_holds(s, "c", "c-old");
        assert_holds(s, "doc", "{\"a\":1}");
        assert_holds(s, "lead", "lead-1");
        if (round == 0)
            s = reopen(s);
    }
    assert_int_equal(feox_close(s), FEOX_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_single_failed_writes_have_no_effect, fresh_file),
        cmocka_unit_test_setup(test_group_commit_fails_together_and_the_next_buffer_is_kept,
                               fresh_file),
        cmocka_unit_test_setup(test_two_failed_writes_of_one_key_leave_the_version_before_both,
                               fresh_file),
        cmocka_unit_test_setup(test_a_good_write_after_a_failed_one_of_the_same_key_wins,
                               fresh_file),
        cmocka_unit_test_setup(test_failed_delete_incr_cas_and_patch_are_undone, fresh_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
