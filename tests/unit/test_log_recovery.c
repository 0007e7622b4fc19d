/*
 * test_log_recovery.c — the log backend through its seam (feox_storage.h) with an in-test model
 * store: round trips, foreign and future files, torn tails cut at every byte of the last records,
 * single-bit flips (only the damaged record lost), the file lock, durable deletes, compaction,
 * read_value, group commit and check().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "base/error.h"
#include "storage/log/log_format.h"
#include "log_test_model.h"

static model m1, m2;

static uint64_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (uint64_t)st.st_size;
}

static uint8_t *read_file(const char *path, uint64_t *len)
{
    *len = file_size(path);
    uint8_t *data = malloc(*len + 1);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fread(data, 1, *len, f), *len);
    fclose(f);
    return data;
}

static void write_file(const char *path, const uint8_t *data, uint64_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

/* Write n keys "key-%03d" = "value-%03d-<padding>" and close; returns record end offsets. */
static void write_sequence(const char *path, int n, uint64_t *ends)
{
    feox_storage *b;
    assert_int_equal(model_open(path, FEOX_SYNC_OFF, &m1, &b), FEOX_OK);
    uint64_t off = FEOX_LOG_HEADER_SIZE;
    for (int i = 0; i < n; i++) {
        char key[32], value[64];
        snprintf(key, sizeof key, "key-%03d", i);
        snprintf(value, sizeof value, "value-%03d-%.*s", i, i % 20, "abcdefghijklmnopqrstuvwxyz");
        assert_int_equal(model_write(b, &m1, key, value, 100 + (uint64_t)i), FEOX_OK);
        off += feox_log_record_size(strlen(key), strlen(value));
        if (ends)
            ends[i] = off;
    }
    assert_int_equal(b->methods->close(b), FEOX_OK);
}

static void assert_key(model *m, int i, bool present)
{
    char key[32], value[64];
    snprintf(key, sizeof key, "key-%03d", i);
    snprintf(value, sizeof value, "value-%03d-%.*s", i, i % 20, "abcdefghijklmnopqrstuvwxyz");
    model_key *k = model_get(m, key);
    if (!present) {
        assert_null(k);
        return;
    }
    assert_non_null(k);
    assert_int_equal(k->value_len, strlen(value));
    assert_memory_equal(k->value, value, k->value_len);
    assert_int_equal(k->ts, 100 + (uint64_t)i);
    assert_int_equal(k->tag, 7);
}

static void test_round_trip_with_overwrites_and_deletes(void **state)
{
    (void)state;
    char path[128];
    model_temp_path(path, sizeof path, "roundtrip");
    feox_storage *b;
    assert_int_equal(model_open(path, FEOX_SYNC_NORMAL, &m1, &b), FEOX_OK);
    assert_int_equal(model_write(b, &m1, "a", "1", 10), FEOX_OK);
    assert_int_equal(model_write(b, &m1, "b", "2", 11), FEOX_OK);
    assert_int_equal(model_write(b, &m1, "a", "3", 12), FEOX_OK);
    assert_int_equal(model_delete(b, &m1, "b", 13), FEOX_OK);
    assert_int_equal(model_write(b, &m1, "c", "", 14), FEOX_OK); /* empty value */
    assert_int_equal(b->methods->flush(b), FEOX_OK);
    assert_int_equal(b->methods->close(b), FEOX_OK);

    assert_int_equal(model_open(path, FEOX_SYNC_NORMAL, &m2, &b), FEOX_OK);
    assert_int_equal(m2.puts, 4);
    assert_int_equal(m2.dels, 1);
    model_key *a = model_get(&m2, "a");
    assert_non_null(a);
    assert_memory_equal(a->value, "3", 1);
    assert_int_equal(a->ts, 12);
    assert_null(model_get(&m2, "b"));
    assert_non_null(model_get(&m2, "c"));
    assert_int_equal(model_get(&m2, "c")->value_len, 0);
    feox_stats st = {0};
    b->methods->get_stats(b, &st);
    assert_int_equal(st.recovered_records, 5);
    assert_int_equal(st.recovery_dropped_records, 0);
    assert_int_equal(st.file_size, file_size(path));
    assert_int_equal(b->methods->close(b), FEOX_OK);
    unlink(path);
}

static void test_foreign_and_future_files_are_refused(void **state)
{
    (void)state;
    char path[128];
    model_temp_path(path, sizeof path, "foreign");
    const char *text =
        "this is a text file that is long enough to look like a header, really it is";
    write_file(path, (const uint8_t *)text, strlen(text));
    feox_storage *b;
    assert_int_equal(model_open(path, FEOX_SYNC_OFF, &m1, &b), FEOX_ERR_FORMAT);
    assert_non_null(strstr(feox_error_detail(), "exists and is not a feox store"));
    /* The foreign file is left untouched. */
    assert_int_equal(file_size(path), strlen(text));

    uint8_t header[FEOX_LOG_HEADER_SIZE];
    feox_log_header_encode(header, 42, 0, 0);
    header[8] = 2; /* format version 2 */
    write_file(path, header, sizeof header);
    assert_int_equal(model_open(path, FEOX_SYNC_OFF, &m1, &b), FEOX_ERR_FORMAT);
    assert_non_null(strstr(feox_error_detail(), "version 2"));

    feox_log_header_encode(header, 42, 0, 0);
    header[20] ^= 1; /* file id damaged: checksum catches it */
    write_file(path, header, sizeof header);
    assert_int_equal(model_open(path, FEOX_SYNC_OFF, &m1, &b), FEOX_ERR_CORRUPT);

    /* Zeros where a header would be, or a prefix of one, are not a feox store either (creation
     * is atomic, so a crash cannot leave them): refused and left byte for byte as they were. */
    uint8_t zeros[FEOX_LOG_HEADER_SIZE] = {0};
    write_file(path, zeros, sizeof zeros);
    assert_int_equal(model_open(path, FEOX_SYNC_OFF, &m1, &b), FEOX_ERR_FORMAT);
    uint64_t len;
    uint8_t *back = read_file(path, &len);
    assert_int_equal(len, sizeof zeros);
    assert_memory_equal(back, zeros, sizeof zeros);
    free(back);
    write_file(path, (const uint8_t *)"FEOXL", 5);
    assert_int_equal(model_open(path, FEOX_SYNC_OFF, &m1, &b), FEOX_ERR_FORMAT);
    assert_int_equal(file_size(path), 5);
    unlink(path);
}

static void test_torn_tail_at_every_byte_of_last_records(void **state)
{
    (void)state;
    enum { N = 12 };
    char path[128], cut_path[160];
    uint64_t ends[N];
    model_temp_path(path, sizeof path, "torn");
    snprintf(cut_path, sizeof cut_path, "%s.cut", path);
    write_sequence(path, N, ends);
    uint64_t len;
    uint8_t *image = read_file(path, &len);
    assert_int_equal(len, ends[N - 1]);
    for (uint64_t cut = ends[N - 3]; cut <= len; cut++) {
        write_file(cut_path, image, cut);
        feox_storage *b;
        assert_int_equal(model_open(cut_path, FEOX_SYNC_OFF, &m2, &b), FEOX_OK);
        for (int i = 0; i < N; i++)
            assert_key(&m2, i, ends[i] <= cut);
        int whole = 0;
        while (whole < N && ends[whole] <= cut)
            whole++;
        uint64_t valid_end = whole ? ends[whole - 1] : FEOX_LOG_HEADER_SIZE;
        feox_stats st = {0};
        b->methods->get_stats(b, &st);
        assert_int_equal(st.recovered_records, whole);
        assert_int_equal(st.recovery_dropped_bytes, cut - valid_end);
        assert_int_equal(st.recovery_dropped_records, cut == valid_end ? 0 : 1);
        /* The torn tail was cut off, and new records follow the last valid one. */
        assert_int_equal(file_size(cut_path), valid_end);
        assert_int_equal(model_write(b, &m2, "after", "crash", 1000), FEOX_OK);
        assert_int_equal(b->methods->close(b), FEOX_OK);
        assert_int_equal(model_open(cut_path, FEOX_SYNC_OFF, &m2, &b), FEOX_OK);
        assert_non_null(model_get(&m2, "after"));
        for (int i = 0; i < N; i++)
            assert_key(&m2, i, ends[i] <= cut);
        assert_int_equal(b->methods->close(b), FEOX_OK);
    }
    free(image);
    unlink(cut_path);
    unlink(path);
}

/* Flip every bit of one record (in the middle, then the last): only that record is lost. */
static void flip_every_bit_of(int victim)
{
    enum { N = 8 };
    char path[128], flip_path[160];
    uint64_t ends[N];
    model_temp_path(path, sizeof path, "flip");
    snprintf(flip_path, sizeof flip_path, "%s.flip", path);
    write_sequence(path, N, ends);
    uint64_t len;
    uint8_t *image = read_file(path, &len);
    uint64_t start = victim ? ends[victim - 1] : FEOX_LOG_HEADER_SIZE;
    for (uint64_t byte = start; byte < ends[victim]; byte++) {
        for (int bit = 0; bit < 8; bit++) {
            image[byte] ^= (uint8_t)(1u << bit);
            write_file(flip_path, image, len);
            image[byte] ^= (uint8_t)(1u << bit);
            feox_storage *b;
            assert_int_equal(model_open(flip_path, FEOX_SYNC_OFF, &m2, &b), FEOX_OK);
            for (int i = 0; i < N; i++)
                assert_key(&m2, i, i != victim);
            feox_stats st = {0};
            b->methods->get_stats(b, &st);
            assert_int_equal(st.recovery_dropped_records, 1);
            assert_int_equal(st.recovered_records, N - 1);
            char detail[256] = "";
            if (victim != N - 1) { /* a damaged record in the middle stays until compaction */
                assert_int_equal(b->methods->check(b, detail, sizeof detail), FEOX_ERR_CORRUPT);
                assert_non_null(strstr(detail, "damaged record"));
            } else {
                assert_int_equal(b->methods->check(b, detail, sizeof detail), FEOX_OK);
            }
            assert_int_equal(b->methods->close(b), FEOX_OK);
        }
    }
    free(image);
    unlink(flip_path);
    unlink(path);
}

static void test_single_bit_flips_lose_only_the_damaged_record(void **state)
{
    (void)state;
    flip_every_bit_of(3);
    flip_every_bit_of(0);
    flip_every_bit_of(7);
}

static void test_second_open_is_locked(void **state)
{
    (void)state;
    char path[128];
    model_temp_path(path, sizeof path, "lock");
    feox_storage *b, *b2;
    assert_int_equal(model_open(path, FEOX_SYNC_OFF, &m1, &b), FEOX_OK);
    assert_int_equal(model_open(path, FEOX_SYNC_OFF, &m2, &b2), FEOX_ERR_LOCKED);
    assert_non_null(strstr(feox_error_detail(), "locked"));
    /* Another process gets LOCKED too (exit code = the error it saw). */
    pid_t pid = fork();
    if (pid == 0) {
        feox_storage *other;
        feox_err err = model_open(path, FEOX_SYNC_OFF, &m2, &other);
        _exit(err == FEOX_ERR_LOCKED && strstr(feox_error_detail(), "another process") ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(b->methods->close(b), FEOX_OK);
    assert_int_equal(model_open(path, FEOX_SYNC_OFF, &m2, &b2), FEOX_OK);
    assert_int_equal(b2->methods->close(b2), FEOX_OK);
    unlink(path);
}

static void test_flushed_delete_stays_deleted(void **state)
{
    (void)state;
    char path[128];
    model_temp_path(path, sizeof path, "delete");
    feox_storage *b;
    assert_int_equal(model_open(path, FEOX_SYNC_NORMAL, &m1, &b), FEOX_OK);
    assert_int_equal(model_write(b, &m1, "k", "v", 1), FEOX_OK);
    assert_int_equal(b->methods->flush(b), FEOX_OK);
    assert_int_equal(model_delete(b, &m1, "k", 2), FEOX_OK);
    assert_int_equal(b->methods->flush(b), FEOX_OK);
    /* Simulate kill -9 after the flush: copy the file as it is now, before close. */
    uint64_t len;
    uint8_t *image = read_file(path, &len);
    assert_int_equal(b->methods->close(b), FEOX_OK);
    char copy[160];
    snprintf(copy, sizeof copy, "%s.copy", path);
    write_file(copy, image, len);
    free(image);
    assert_int_equal(model_open(copy, FEOX_SYNC_NORMAL, &m2, &b), FEOX_OK);
    assert_null(model_get(&m2, "k"));
    assert_int_equal(b->methods->close(b), FEOX_OK);
    unlink(copy);
    unlink(path);
}

static void test_read_value_from_buffer_and_file(void **state)
{
    (void)state;
    char path[128];
    model_temp_path(path, sizeof path, "read");
    feox_storage *b;
    assert_int_equal(model_open(path, FEOX_SYNC_OFF, &m1, &b), FEOX_OK);
    assert_int_equal(model_write(b, &m1, "x", "hello", 1), FEOX_OK);
    char buf[16] = "";
    uint64_t loc = model_get(&m1, "x")->location;
    assert_true(loc != 0);
    assert_int_equal(model_read_value(b, loc, buf, 5), FEOX_OK); /* still buffered */
    assert_memory_equal(buf, "hello", 5);
    assert_int_equal(b->methods->flush(b), FEOX_OK);
    memset(buf, 0, sizeof buf);
    assert_int_equal(model_read_value(b, loc, buf, 5), FEOX_OK); /* from the file */
    assert_memory_equal(buf, "hello", 5);
    assert_int_equal(model_read_value(b, loc + 1, buf, 5), FEOX_ERR_CORRUPT);
    assert_int_equal(model_read_value(b, loc, buf, 4), FEOX_ERR_CORRUPT); /* wrong length */
    feox_stats st = {0};
    b->methods->get_stats(b, &st);
    assert_true(st.disk_reads >= 1);
    assert_int_equal(b->methods->close(b), FEOX_OK);
    unlink(path);
}

static void test_compaction_after_overwrite_storm(void **state)
{
    (void)state;
    char path[128];
    model_temp_path(path, sizeof path, "compact");
    feox_storage *b;
    assert_int_equal(model_open(path, FEOX_SYNC_OFF, &m1, &b), FEOX_OK);
    char key[32], value[128];
    uint64_t ts = 1;
    for (int round = 0; round < 30; round++)
        for (int i = 0; i < 300; i++) {
            snprintf(key, sizeof key, "key-%04d", i);
            snprintf(value, sizeof value, "round-%02d-value-%04d-%080d", round, i, 0);
            assert_int_equal(model_write(b, &m1, key, value, ts++), FEOX_OK);
        }
    for (int i = 0; i < 300; i += 3) {
        snprintf(key, sizeof key, "key-%04d", i);
        assert_int_equal(model_delete(b, &m1, key, ts++), FEOX_OK);
    }
    assert_int_equal(b->methods->flush(b), FEOX_OK);
    uint64_t before = file_size(path);
    assert_int_equal(b->methods->compact(b), FEOX_OK);
    uint64_t after = file_size(path);
    uint64_t live = FEOX_LOG_HEADER_SIZE;
    for (int i = 0; i < m1.count; i++)
        if (m1.keys[i].live)
            live += feox_log_record_size(strlen(m1.keys[i].key), m1.keys[i].value_len);
    assert_true(after <= 2 * live);
    assert_true(after < before / 10);
    feox_stats st = {0};
    b->methods->get_stats(b, &st);
    assert_int_equal(st.compactions, 1);
    assert_int_equal(st.file_size, after);
    /* Locations were moved to the new file: read_value finds every live value. */
    for (int i = 0; i < m1.count; i++) {
        if (!m1.keys[i].live)
            continue;
        char buf[256];
        assert_int_equal(model_read_value(b, m1.keys[i].location, buf, m1.keys[i].value_len),
                         FEOX_OK);
        assert_memory_equal(buf, m1.keys[i].value, m1.keys[i].value_len);
    }
    /* Writes after compaction land in the new file. */
    assert_int_equal(model_write(b, &m1, "late", "write", ts++), FEOX_OK);
    assert_int_equal(model_delete(b, &m1, "key-0001", ts++), FEOX_OK);
    char detail[256];
    assert_int_equal(b->methods->check(b, detail, sizeof detail), FEOX_OK);
    assert_int_equal(b->methods->close(b), FEOX_OK);
    char leftover[160];
    snprintf(leftover, sizeof leftover, "%s.compact", path);
    assert_int_equal(access(leftover, F_OK), -1);

    assert_int_equal(model_open(path, FEOX_SYNC_OFF, &m2, &b), FEOX_OK);
    for (int i = 0; i < m1.count; i++) {
        model_key *k = model_get(&m2, m1.keys[i].key);
        if (!m1.keys[i].live) {
            assert_null(k);
            continue;
        }
        assert_non_null(k);
        assert_int_equal(k->value_len, m1.keys[i].value_len);
        assert_memory_equal(k->value, m1.keys[i].value, k->value_len);
        assert_int_equal(k->ts, m1.keys[i].ts);
    }
    assert_int_equal(b->methods->close(b), FEOX_OK);
    unlink(path);
}

typedef struct committer {
    feox_storage *b;
    int id;
} committer;

static void *commit_loop(void *arg)
{
    committer *c = arg;
    for (int i = 0; i < 200; i++) {
        char key[32];
        snprintf(key, sizeof key, "t%d-%d", c->id, i);
        feox_record *r = feox_record_new("v", 1, 0, 1, 0, false);
        uint64_t loc, seq;
        assert_int_equal(model_append_put(c->b, key, (uint32_t)strlen(key), r, &loc, &seq),
                         FEOX_OK);
        feox_record_free(r);
        assert_int_equal(c->b->methods->wait_durable(c->b, seq), FEOX_OK);
    }
    return NULL;
}

static void test_sync_full_group_commit(void **state)
{
    (void)state;
    enum { THREADS = 8 };
    char path[128];
    model_temp_path(path, sizeof path, "group");
    feox_storage *b;
    assert_int_equal(model_open(path, FEOX_SYNC_FULL, &m1, &b), FEOX_OK);
    pthread_t threads[THREADS];
    committer c[THREADS];
    for (int i = 0; i < THREADS; i++) {
        c[i] = (committer){b, i};
        pthread_create(&threads[i], NULL, commit_loop, &c[i]);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(threads[i], NULL);
    feox_stats st = {0};
    b->methods->get_stats(b, &st);
    /* Every commit was durable when it returned; concurrent ones shared fsyncs. */
    assert_true(st.fsyncs >= 1);
    assert_true(st.fsyncs <= THREADS * 200);
    print_message("group commit: %d commits, %llu fsyncs\n", THREADS * 200,
                  (unsigned long long)st.fsyncs);
    assert_int_equal(b->methods->close(b), FEOX_OK);
    assert_int_equal(model_open(path, FEOX_SYNC_FULL, &m2, &b), FEOX_OK);
    assert_int_equal(m2.puts, THREADS * 200);
    assert_int_equal(b->methods->close(b), FEOX_OK);
    unlink(path);
}

static void test_normal_mode_flusher_makes_writes_durable(void **state)
{
    (void)state;
    char path[128];
    model_temp_path(path, sizeof path, "flusher");
    memset(&m1, 0, sizeof m1);
    feox_config cfg = model_config(path, FEOX_SYNC_NORMAL);
    cfg.flush_interval_ms = 10;
    feox_storage_host hooks = model_hooks(&m1);
    feox_storage *b;
    assert_int_equal(model_backend_open(&cfg, &hooks, &b), FEOX_OK);
    feox_storage_sink sink = model_sink(&m1);
    assert_int_equal(b->methods->load(b, NULL, &sink), FEOX_OK);
    assert_int_equal(model_write(b, &m1, "k", "v", 1), FEOX_OK);
    /* No flush() call: the background flusher writes and fsyncs on its own. Waited for up to
     * 60 s: its fsync on a busy disk, or its thread on a loaded machine, may take seconds. */
    feox_stats st = {0};
    for (int i = 0; i < 6000 && st.fsyncs == 0; i++) {
        usleep(10000);
        memset(&st, 0, sizeof st);
        b->methods->get_stats(b, &st);
    }
    assert_true(st.fsyncs >= 1);
    assert_int_equal(st.disk_writes, 1);
    assert_int_equal(file_size(path), FEOX_LOG_HEADER_SIZE + feox_log_record_size(1, 1));
    assert_int_equal(b->methods->close(b), FEOX_OK);
    unlink(path);
}

/* The ids of this process's threads (entries of /proc/self/task). */
typedef struct thread_ids {
    long id[64];
    int n;
} thread_ids;

static thread_ids threads_now(void)
{
    thread_ids t = {.n = 0};
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.')
            continue;
        assert_true(t.n < (int)(sizeof t.id / sizeof t.id[0]));
        t.id[t.n++] = atol(e->d_name);
    }
    closedir(d);
    return t;
}

/* Threads of now that are not in before. */
static int threads_new(const thread_ids *before, const thread_ids *now)
{
    int n = 0;
    for (int i = 0; i < now->n; i++) {
        bool old = false;
        for (int j = 0; j < before->n && !old; j++)
            old = now->id[i] == before->id[j];
        n += !old;
    }
    return n;
}

/* Threads of now that are not in before, once those of them that are ending have gone (up to
 * 10 s): the kernel lists a thread for a moment after pthread_join has returned, until its exit
 * is done; a thread of an earlier test may be ending too, so the count is of new ids. */
static int threads_new_settled(const thread_ids *before)
{
    thread_ids now = threads_now();
    for (int i = 0; i < 1000 && threads_new(before, &now) > 0; i++) {
        usleep(10000);
        now = threads_now();
    }
    return threads_new(before, &now);
}

/* The flusher and the compactor start once load has replayed the file, not at open. */
static void test_threads_start_after_load(void **state)
{
    (void)state;
    char path[128];
    model_temp_path(path, sizeof path, "threads");
    static model m;
    memset(&m, 0, sizeof m);
    feox_config cfg = model_config(path, FEOX_SYNC_NORMAL);
    cfg.disable_compaction = false;
    feox_storage_host host = model_hooks(&m);
    thread_ids before = threads_now();
    feox_storage *b;
    assert_int_equal(model_backend_open(&cfg, &host, &b), FEOX_OK);
    thread_ids now = threads_now();
    assert_int_equal(threads_new(&before, &now), 0);
    uint64_t loc, seq;
    feox_record *r = feox_record_new("v", 1, 0, 1, 0, false);
    assert_int_equal(model_append_put(b, "k", 1, r, &loc, &seq), FEOX_ERR_INVALID_ARGUMENT);
    feox_storage_sink sink = model_sink(&m);
    assert_int_equal(b->methods->load(b, NULL, &sink), FEOX_OK);
    now = threads_now();
    assert_int_equal(threads_new(&before, &now), 2);
    assert_int_equal(model_append_put(b, "k", 1, r, &loc, &seq), FEOX_OK);
    feox_record_free(r);
    assert_int_equal(b->methods->close(b), FEOX_OK);
    assert_int_equal(threads_new_settled(&before), 0);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_with_overwrites_and_deletes),
        cmocka_unit_test(test_foreign_and_future_files_are_refused),
        cmocka_unit_test(test_torn_tail_at_every_byte_of_last_records),
        cmocka_unit_test(test_single_bit_flips_lose_only_the_damaged_record),
        cmocka_unit_test(test_second_open_is_locked),
        cmocka_unit_test(test_flushed_delete_stays_deleted),
        cmocka_unit_test(test_read_value_from_buffer_and_file),
        cmocka_unit_test(test_threads_start_after_load),
        cmocka_unit_test(test_compaction_after_overwrite_storm),
        cmocka_unit_test(test_sync_full_group_commit),
        cmocka_unit_test(test_normal_mode_flusher_makes_writes_durable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
