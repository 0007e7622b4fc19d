/*
 * test_log_faults.c — I/O faults injected through engine/base/io.h give errors, never corruption:
 * ENOSPC and EIO on writes (reported by flush, retried once the fault clears), short writes,
 * fsync EIO (DEGRADED for good, never retried), sync=full's failed group commit cancelled in
 * place, failures during compaction (old file intact)
 * and read errors during recovery.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <sys/stat.h>

#include "base/error.h"
#include "base/io.h"
#include "storage/log/log_format.h"
#include "log_test_model.h"

static model m1, m2;

static void write_keys(feox_storage *b, model *m, const char *prefix, int n, uint64_t ts)
{
    for (int i = 0; i < n; i++) {
        char key[32], value[48];
        snprintf(key, sizeof key, "%s-%d", prefix, i);
        snprintf(value, sizeof value, "value-of-%s-%d", prefix, i);
        assert_int_equal(model_write(b, m, key, value, ts + (uint64_t)i), FEOX_OK);
    }
}

/* Reopen path and check it holds exactly the live keys of expected. */
static void assert_reopens_as(const char *path, model *expected)
{
    feox_io_inject_reset();
    feox_storage *b;
    assert_int_equal(model_open(path, FEOX_SYNC_OFF, &m2, &b), FEOX_OK);
    feox_stats st = {0};
    b->methods->get_stats(b, &st);
    assert_int_equal(st.recovery_dropped_records, 0);
    int live = 0;
    for (int i = 0; i < expected->count; i++) {
        model_key *want = &expected->keys[i];
        model_key *got = model_get(&m2, want->key);
        if (!want->live) {
            assert_null(got);
            continue;
        }
        live++;
        assert_non_null(got);
        assert_int_equal(got->value_len, want->value_len);
        assert_memory_equal(got->value, want->value, want->value_len);
    }
    int got_live = 0;
    for (int i = 0; i < m2.count; i++)
        got_live += m2.keys[i].live;
    assert_int_equal(got_live, live);
    char detail[256];
    assert_int_equal(b->methods->check(b, detail, sizeof detail), FEOX_OK);
    assert_int_equal(b->methods->close(b), FEOX_OK);
}

static void test_enospc_on_write_is_reported_then_retried(void **state)
{
    (void)state;
    char path[128];
    model_temp_path(path, sizeof path, "enospc");
    feox_storage *b;
    assert_int_equal(model_open(path, FEOX_SYNC_NORMAL, &m1, &b), FEOX_OK);
    write_keys(b, &m1, "a", 10, 1);
    assert_int_equal(b->methods->flush(b), FEOX_OK);
    write_keys(b, &m1, "b", 10, 100);
    feox_io_inject(FEOX_IO_PWRITE, 1, ENOSPC, false, false);
    assert_int_equal(b->methods->flush(b), FEOX_ERR_DISK_FULL);
    assert_non_null(strstr(feox_error_detail(), path));
    feox_stats st = {0};
    b->methods->get_stats(b, &st);
    assert_int_equal(st.io_errors, 1);
    /* The store keeps accepting writes (they are buffered), and the fault has cleared. */
    write_keys(b, &m1, "c", 10, 200);
    assert_int_equal(b->methods->flush(b), FEOX_OK);
    assert_int_equal(b->methods->close(b), FEOX_OK);
    assert_reopens_as(path, &m1);
    unlink(path);
}

/* Once a write to the file has failed, every append retries it first and is refused with its
 * error while it keeps failing: nothing more is acknowledged that only the buffer holds (issue 11
 * item 11: before, ~32 MiB were). Once the disk recovers, appends are accepted again and every
 * acknowledged record lands. */
static void test_failing_disk_refuses_appends_until_a_write_succeeds(void **state)
{
    (void)state;
    char path[128];
    model_temp_path(path, sizeof path, "fullbuffer");
    feox_storage *b;
    assert_int_equal(model_open(path, FEOX_SYNC_NORMAL, &m1, &b), FEOX_OK);
    feox_io_inject(FEOX_IO_PWRITE, 1, ENOSPC, false, true);
    assert_int_equal(model_write(b, &m1, "first", "x", 1), FEOX_OK);
    assert_int_equal(b->methods->flush(b), FEOX_ERR_DISK_FULL);
    uint64_t writes_before = feox_io_calls(FEOX_IO_PWRITE);
    for (int i = 0; i < 100; i++) {
        char key[32];
        snprintf(key, sizeof key, "refused-%d", i);
        assert_int_equal(model_write(b, &m1, key, "v", 10 + (uint64_t)i), FEOX_ERR_DISK_FULL);
        assert_non_null(strstr(feox_error_detail(), path));
    }
    assert_true(feox_io_calls(FEOX_IO_PWRITE) >= writes_before + 100); /* each one retried */
    feox_io_inject_reset();
    assert_int_equal(model_write(b, &m1, "second", "y", 500), FEOX_OK);
    assert_int_equal(b->methods->flush(b), FEOX_OK);
    assert_int_equal(b->methods->close(b), FEOX_OK);
    assert_int_equal(model_open(path, FEOX_SYNC_NORMAL, &m2, &b), FEOX_OK);
    assert_int_equal(m2.puts, 2);
    assert_int_equal(b->methods->close(b), FEOX_OK);
    unlink(path);
}

static void test_persistent_eio_then_crash_leaves_flushed_data(void **state)
{
    (void)state;
    char path[128];
    model_temp_path(path, sizeof path, "eio");
    feox_storage *b;
    assert_int_equal(model_open(path, FEOX_SYNC_NORMAL, &m1, &b), FEOX_OK);
    write_keys(b, &m1, "a", 20, 1);
    assert_int_equal(b->methods->flush(b), FEOX_OK);
    model flushed = m1; /* what must survive */
    write_keys(b, &m1, "b", 20, 100);
    feox_io_inject(FEOX_IO_PWRITE, 1, EIO, false, true);
    assert_int_equal(b->methods->flush(b), FEOX_ERR_IO);
    assert_int_equal(b->methods->flush(b), FEOX_ERR_IO);
    /* "Crash" now: the file holds exactly the flushed records. */
    uint64_t len;
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    len = (uint64_t)st.st_size;
    char copy[160];
    snprintf(copy, sizeof copy, "%s.copy", path);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "cp %s %s", path, copy);
    assert_int_equal(system(cmd), 0);
    assert_true(len > FEOX_LOG_HEADER_SIZE);
    feox_io_inject_reset();
    assert_int_equal(b->methods->flush(b), FEOX_OK);
    assert_int_equal(b->methods->close(b), FEOX_OK);
    assert_reopens_as(copy, &flushed);
    assert_reopens_as(path, &m1);
    unlink(copy);
    unlink(path);
}

static void test_short_writes_are_completed(void **state)
{
    (void)state;
    char path[128];
    model_temp_path(path, sizeof path, "short");
    feox_storage *b;
    assert_int_equal(model_open(path, FEOX_SYNC_OFF, &m1, &b), FEOX_OK);
    write_keys(b, &m1, "a", 50, 1);
    feox_io_inject(FEOX_IO_PWRITE, 1, 0, true, false);
    assert_int_equal(b->methods->flush(b), FEOX_OK);
    write_keys(b, &m1, "b", 50, 100);
    /* Every write transfers only half of what it was asked: the writer loops until done. */
    feox_io_inject(FEOX_IO_PWRITE, 1, 0, true, true);
    assert_int_equal(b->methods->flush(b), FEOX_OK);
    feox_io_inject_reset();
    feox_io_inject(FEOX_IO_PWRITE, 1, EIO, false, false);
    write_keys(b, &m1, "c", 50, 200);
    assert_int_equal(b->methods->flush(b), FEOX_ERR_IO);
    assert_int_equal(b->methods->flush(b), FEOX_OK);
    assert_int_equal(b->methods->close(b), FEOX_OK);
    assert_reopens_as(path, &m1);
    unlink(path);
}

static void test_fsync_eio_degrades_for_good(void **state)
{
    (void)state;
    char path[128];
    model_temp_path(path, sizeof path, "fsync");
    feox_storage *b;
    assert_int_equal(model_open(path, FEOX_SYNC_NORMAL, &m1, &b), FEOX_OK);
    write_keys(b, &m1, "a", 5, 1);
    assert_int_equal(b->methods->flush(b), FEOX_OK);
    write_keys(b, &m1, "b", 5, 100);
    feox_io_inject(FEOX_IO_FSYNC, 1, EIO, false, false);
    assert_int_equal(b->methods->flush(b), FEOX_ERR_DEGRADED);
    assert_non_null(strstr(feox_error_detail(), "fsync"));
    uint64_t fsyncs_after_failure = feox_io_calls(FEOX_IO_FSYNC);
    /* The fault is gone, but the fsync is never retried and assumed good. */
    assert_int_equal(b->methods->flush(b), FEOX_ERR_DEGRADED);
    assert_int_equal(feox_io_calls(FEOX_IO_FSYNC), fsyncs_after_failure);
    feox_record *r = feox_record_new("x", 1, 0, 500, 0, false);
    uint64_t loc, seq;
    assert_int_equal(model_append_put(b, "k", 1, r, &loc, &seq), FEOX_ERR_DEGRADED);
    feox_record_free(r);
    assert_int_equal(model_append_delete(b, "a-1", 3, 501, &seq), FEOX_ERR_DEGRADED);
    assert_int_equal(b->methods->wait_durable(b, 1), FEOX_ERR_DEGRADED);
    assert_int_equal(b->methods->compact(b), FEOX_ERR_DEGRADED);
    feox_stats st = {0};
    b->methods->get_stats(b, &st);
    assert_int_equal(st.io_errors, 1);
    assert_int_equal(b->methods->close(b), FEOX_ERR_DEGRADED);
    /* Reopening gives a consistent file (whatever reached it). */
    assert_int_equal(model_open(path, FEOX_SYNC_NORMAL, &m2, &b), FEOX_OK);
    assert_non_null(model_get(&m2, "a-4"));
    assert_null(model_get(&m2, "k"));
    assert_int_equal(b->methods->close(b), FEOX_OK);
    unlink(path);
}

static void test_sync_full_fsync_failure_fails_the_write(void **state)
{
    (void)state;
    char path[128];
    model_temp_path(path, sizeof path, "fullfail");
    feox_storage *b;
    assert_int_equal(model_open(path, FEOX_SYNC_FULL, &m1, &b), FEOX_OK);
    feox_record *r = feox_record_new("x", 1, 0, 5, 0, false);
    uint64_t loc, seq;
    assert_int_equal(model_append_put(b, "k", 1, r, &loc, &seq), FEOX_OK);
    feox_io_inject(FEOX_IO_FSYNC, 1, EIO, false, false);
    assert_int_equal(b->methods->wait_durable(b, seq), FEOX_ERR_DEGRADED);
    feox_record_free(r);
    b->methods->close(b);
    unlink(path);
}

/* sync=full: the records of a failed group commit are cancelled in place (op 5): their waits
 * answer DISK_FULL, a record appended behind them keeps its offset and is written, replay and
 * feox_check skip the cancelled ones as no data (not damage), a compaction waits until every
 * cancelled write has had its answer and then leaves them out. */
static void test_sync_full_failed_group_commit_is_cancelled(void **state)
{
    (void)state;
    char path[128];
    model_temp_path(path, sizeof path, "cancel");
    feox_storage *b;
    assert_int_equal(model_open(path, FEOX_SYNC_FULL, &m1, &b), FEOX_OK);
    model local;
    memset(&local, 0, sizeof local);
    write_keys(b, &local, "a", 10, 1);
    assert_int_equal(b->methods->flush(b), FEOX_OK);
    feox_record *r = feox_record_new("failed", 6, 0, 100, 0, false);
    uint64_t loc1, seq1, loc2, seq2, seq3;
    assert_int_equal(model_append_put(b, "a-1", 3, r, &loc1, &seq1), FEOX_OK);
    assert_int_equal(model_append_put(b, "x", 1, r, &loc2, &seq2), FEOX_OK);
    assert_int_equal(model_append_delete(b, "a-2", 3, 101, &seq3), FEOX_OK);
    feox_record_free(r);
    /* The group commit fails (ENOSPC), so does the overwrite of the cancelled bytes. */
    feox_io_inject(FEOX_IO_PWRITE, 1, ENOSPC, false, true);
    assert_int_equal(b->methods->flush(b), FEOX_ERR_DISK_FULL);
    feox_io_inject_reset(); /* the disk recovers */
    assert_int_equal(b->methods->compact(b), FEOX_ERR_IO); /* three writes still unanswered */
    assert_non_null(strstr(feox_error_detail(), "is being undone"));
    assert_int_equal(b->methods->wait_durable(b, seq1), FEOX_ERR_DISK_FULL);
    assert_non_null(strstr(feox_error_detail(), "No space left on device"));
    assert_int_equal(b->methods->wait_durable(b, seq3), FEOX_ERR_DISK_FULL);
    assert_int_equal(model_write(b, &local, "after", "the failure", 200), FEOX_OK);
    assert_int_equal(b->methods->flush(b), FEOX_OK);
    /* Answered even after the retry wrote the cancelled records. */
    assert_int_equal(b->methods->wait_durable(b, seq2), FEOX_ERR_DISK_FULL);
    char detail[256];
    assert_int_equal(b->methods->check(b, detail, sizeof detail), FEOX_OK);
    assert_int_equal(b->methods->close(b), FEOX_OK);
    assert_reopens_as(path, &local); /* no a-1 "failed", no x, a-2 kept; nothing dropped */

    /* Compaction of a file holding cancelled records drops them. */
    struct stat before, after;
    assert_int_equal(stat(path, &before), 0);
    assert_int_equal(model_open(path, FEOX_SYNC_FULL, &m1, &b), FEOX_OK);
    assert_int_equal(b->methods->compact(b), FEOX_OK);
    assert_int_equal(b->methods->close(b), FEOX_OK);
    assert_int_equal(stat(path, &after), 0);
    assert_true(after.st_size < before.st_size);
    assert_reopens_as(path, &local);
    unlink(path);
}

/* The store's for_each_live, with one write appended while the rewrite is under way: the
 * compaction must carry it over from the old file's tail. */
static feox_storage *append_during_rewrite;

static feox_err live_with_concurrent_append(void *ctx,
                                           int (*fn)(void *, const feox_storage_record *),
                                           void *fn_ctx)
{
    model *m = ctx;
    if (append_during_rewrite) {
        assert_int_equal(model_write(append_during_rewrite, m, "during", "the rewrite", 50000),
                         FEOX_OK);
        assert_int_equal(model_delete(append_during_rewrite, m, "k-7", 50001), FEOX_OK);
    }
    return model_for_each_live(ctx, fn, fn_ctx);
}

/* A fault at each I/O step of a compaction leaves a complete file and a usable store: before
 * the rename the old file (plus the writes made during the rewrite), after it the new one. */
static void test_compaction_faults_leave_a_complete_file(void **state)
{
    (void)state;
    const struct {
        feox_io_op op;
        uint64_t nth;
        int err;
        feox_err want;
    } faults[] = {
        {FEOX_IO_OPEN, 1, EIO, FEOX_ERR_IO},             /* creating <path>.compact */
        {FEOX_IO_PWRITE, 1, ENOSPC, FEOX_ERR_DISK_FULL}, /* flushing the old file first */
        {FEOX_IO_PWRITE, 2, EIO, FEOX_ERR_IO},           /* the rewrite's header */
        {FEOX_IO_FSYNC, 1, EIO, FEOX_ERR_IO},            /* syncing that header */
        {FEOX_IO_LINK_TMPFILE, 1, EIO, FEOX_ERR_IO},     /* naming the rewrite */
        {FEOX_IO_FSYNC, 2, EIO, FEOX_ERR_IO},            /* the directory, after naming it */
        {FEOX_IO_PWRITE, 3, EIO, FEOX_ERR_IO},           /* writing the rewrite */
        {FEOX_IO_PREAD, 1, EIO, FEOX_ERR_IO},            /* reading the tail written meanwhile */
        {FEOX_IO_FSYNC, 3, EIO, FEOX_ERR_IO},            /* syncing the bulk of the rewrite */
        {FEOX_IO_FSYNC, 4, EIO, FEOX_ERR_IO},            /* syncing the rest, appenders waiting */
        {FEOX_IO_RENAME, 1, EXDEV, FEOX_ERR_IO},         /* the switch itself */
        {FEOX_IO_FSYNC, 5, EIO, FEOX_ERR_DEGRADED},      /* the directory, after the rename */
        {FEOX_IO_OP_COUNT, 0, 0, FEOX_OK},               /* no fault */
    };
    for (size_t f = 0; f < sizeof faults / sizeof faults[0]; f++) {
        char path[128], leftover[160];
        model_temp_path(path, sizeof path, "compactfault");
        snprintf(leftover, sizeof leftover, "%s.compact", path);
        memset(&m1, 0, sizeof m1);
        feox_config cfg = model_config(path, FEOX_SYNC_OFF);
        feox_storage_host hooks = model_hooks(&m1);
        hooks.for_each_live = live_with_concurrent_append;
        feox_storage *b;
        assert_int_equal(model_backend_open(&cfg, &hooks, &b), FEOX_OK);
        feox_storage_sink sink = model_sink(&m1);
        assert_int_equal(b->methods->load(b, NULL, &sink), FEOX_OK);
        for (int round = 0; round < 5; round++)
            write_keys(b, &m1, "k", 100, 1 + (uint64_t)round * 1000);
        assert_int_equal(b->methods->flush(b), FEOX_OK);
        write_keys(b, &m1, "t", 3, 9000); /* buffered: flushed by the compaction first */
        append_during_rewrite = b;
        feox_io_inject(faults[f].op, faults[f].nth, faults[f].err, false, false);
        assert_int_equal(b->methods->compact(b), faults[f].want);
        feox_io_inject_reset();
        append_during_rewrite = NULL;
        assert_int_equal(access(leftover, F_OK), -1);
        if (faults[f].want == FEOX_ERR_DEGRADED) {
            /* The new file is in place but its name may not be durable: no more promises. */
            assert_int_equal(b->methods->flush(b), FEOX_ERR_DEGRADED);
            assert_int_equal(b->methods->close(b), FEOX_ERR_DEGRADED);
        } else {
            write_keys(b, &m1, "after", 3, 20000);
            assert_int_equal(b->methods->flush(b), FEOX_OK);
            assert_int_equal(b->methods->close(b), FEOX_OK);
        }
        assert_reopens_as(path, &m1);
        unlink(path);
    }
}

static void test_read_error_during_recovery_fails_open_cleanly(void **state)
{
    (void)state;
    char path[128];
    model_temp_path(path, sizeof path, "readfail");
    feox_storage *b;
    assert_int_equal(model_open(path, FEOX_SYNC_OFF, &m1, &b), FEOX_OK);
    write_keys(b, &m1, "a", 10, 1);
    assert_int_equal(b->methods->close(b), FEOX_OK);
    feox_io_inject(FEOX_IO_PREAD, 2, EIO, false, false); /* 1 = header, 2 = the records */
    assert_int_equal(model_open(path, FEOX_SYNC_OFF, &m2, &b), FEOX_ERR_IO);
    feox_io_inject_reset();
    assert_reopens_as(path, &m1);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_enospc_on_write_is_reported_then_retried),
        cmocka_unit_test(test_failing_disk_refuses_appends_until_a_write_succeeds),
        cmocka_unit_test(test_persistent_eio_then_crash_leaves_flushed_data),
        cmocka_unit_test(test_short_writes_are_completed),
        cmocka_unit_test(test_fsync_eio_degrades_for_good),
        cmocka_unit_test(test_sync_full_fsync_failure_fails_the_write),
        cmocka_unit_test(test_sync_full_failed_group_commit_is_cancelled),
        cmocka_unit_test(test_compaction_faults_leave_a_complete_file),
        cmocka_unit_test(test_read_error_during_recovery_fails_open_cleanly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
