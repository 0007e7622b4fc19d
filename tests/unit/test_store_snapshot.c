/*
 * test_store_snapshot.c — a store file's index snapshot (engine/storage/log/log_snapshot.c,
 * FORMAT.md "Index snapshot") and the background load it allows (engine/store/store_load.c):
 *   served      a clean close appends a snapshot; the next open returns with the load held
 *               back (a test hook, no sleeps) and every point read (get, get_into, get_ref,
 *               get_size, contains, get_ttl) agrees with the model: overwritten keys show their
 *               last value, deleted keys are absent, values larger than one read come whole;
 *               none of them waits; then every other call waits (a second hook sees which),
 *               and the file is as it was before the snapshot was appended.
 *   many        a store of 20,000 keys (the close's walk in many batches, through every
 *               shard): every key, deleted and never written ones too, answered from the
 *               snapshot while the load is held back.
 *   ttl         a key whose TTL passes between close and open is absent from the snapshot's
 *               answers (expiry is checked at read time).
 *   torn        the file cut at points inside the snapshot and its footer (a crash while they
 *               were appended): a normal load, the same answers, the rest cut off.
 *   stale       a valid record appended after the footer: a normal load, the record wins.
 *   damaged     a byte flipped in the table, the snapshot's key or header, or the footer: a
 *               normal load.
 *   foreign     the snapshot of another file (same offsets, another file id) glued on: not used.
 *   nomem       each allocation of the background load failing in turn: the next waiting call
 *               returns NOMEM naming the store, close frees everything (ASan), and the snapshot
 *               stays for the next open, which loads.
 *   eio         every read of the background load failing: FEOX_ERR_IO for every later call,
 *               naming the store; close frees everything; the snapshot stays.
 *   close       close while the load is held back: cancelled, joined, nothing leaked, the
 *               snapshot kept (the next open uses it).
 *   fork        fork() while the load is held back: the child gets FORKED from every call and
 *               closes without touching the parent's half-built state; the parent goes on.
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/helpers.h"
#include "base/io.h"
#include "failing_alloc.h"
#include "feox.h"
#include "feox_test_support.h"
#include "load_gate.h"
#include "storage/log/log_format.h"
#include "store/store_internal.h"
#include "temp_store_dir.h"

#define KEYS 400
#define BIG_VALUE 9000 /* more than the snapshot reader's first pread */

static ftest_clock clock_;
static char dir[] = "/tmp/feox_snapshot_XXXXXX";
static char path[sizeof dir + 32];
static char other[sizeof dir + 32];
static char copy_path[sizeof dir + 32];

/* ---- the model: what every key should read as ---- */

typedef struct model_key {
    char key[16];
    size_t key_len;
    char *value; /* NULL: absent */
    size_t value_len;
    bool ttl; /* expires 100 s after the writes */
} model_key;

static model_key model[KEYS];

static void model_set(int i, const char *text, size_t len)
{
    free(model[i].value);
    model[i].value = malloc(len + 1);
    assert_non_null(model[i].value);
    memset(model[i].value, 'a' + i % 26, len);
    memcpy(model[i].value, text, strlen(text) < len ? strlen(text) : len);
    model[i].value[len] = 0;
    model[i].value_len = len;
}

static void model_clear(void)
{
    for (int i = 0; i < KEYS; i++) {
        free(model[i].value);
        memset(&model[i], 0, sizeof model[i]);
    }
}

static feox_store *open_at(const char *at)
{
    feox_config cfg;
    ftest_config(&cfg, &clock_);
    cfg.path = at;
    return ftest_open(&cfg);
}

/* Inserts, overwrites (every 3rd key), deletes (every 5th), TTLs (every 7th), big values (every
 * 11th); variant changes one byte of every value (same lengths: the same offsets). */
static void write_model(feox_store *s, char variant)
{
    for (int i = 0; i < KEYS; i++) {
        model[i].key_len = (size_t)snprintf(model[i].key, sizeof model[i].key, "key:%05d", i);
        char text[32];
        snprintf(text, sizeof text, "%c-v1-%d", variant, i);
        model_set(i, text, i % 11 == 0 ? BIG_VALUE : 20 + (size_t)(i % 50));
        feox_write_opts o = {0};
        if (i % 7 == 0) {
            o.flags = FEOX_WRITE_TTL;
            o.ttl_secs = 100;
            model[i].ttl = true;
        }
        assert_int_equal(feox_insert(s, model[i].key, model[i].key_len, model[i].value,
                                     model[i].value_len, &o, NULL),
                         FEOX_OK);
    }
    for (int i = 0; i < KEYS; i += 3) {
        char text[32];
        snprintf(text, sizeof text, "%c-v2-%d", variant, i);
        model_set(i, text, 30);
        model[i].ttl = false;
        assert_int_equal(feox_insert(s, model[i].key, model[i].key_len, model[i].value,
                                     model[i].value_len, NULL, NULL),
                         FEOX_OK);
    }
    for (int i = 0; i < KEYS; i += 5) {
        assert_int_equal(feox_delete(s, model[i].key, model[i].key_len, NULL), FEOX_OK);
        free(model[i].value);
        model[i].value = NULL;
    }
}

static bool model_live(int i, bool ttl_passed)
{
    return model[i].value && !(ttl_passed && model[i].ttl);
}

/* Every point read of every key agrees with the model. */
static void check_point_reads(feox_store *s, bool ttl_passed)
{
    char *buf = malloc(BIG_VALUE + 1);
    assert_non_null(buf);
    for (int i = 0; i < KEYS; i++) {
        const model_key *m = &model[i];
        bool live = model_live(i, ttl_passed);
        void *v = NULL;
        size_t len = 0;
        feox_err err = feox_get(s, m->key, m->key_len, &v, &len, NULL);
        if (!live) {
            assert_int_equal(err, FEOX_ERR_KEY_NOT_FOUND);
            assert_false(feox_contains(s, m->key, m->key_len));
            continue;
        }
        assert_int_equal(err, FEOX_OK);
        assert_int_equal(len, m->value_len);
        assert_memory_equal(v, m->value, len);
        feox_free(v);
        assert_true(feox_contains(s, m->key, m->key_len));
        size_t size = 0;
        assert_int_equal(feox_get_size(s, m->key, m->key_len, &size), FEOX_OK);
        assert_int_equal(size, m->value_len);
        size_t got = 0;
        assert_int_equal(feox_get_into(s, m->key, m->key_len, buf, BIG_VALUE + 1, &got, NULL),
                         FEOX_OK);
        assert_int_equal(got, m->value_len);
        assert_memory_equal(buf, m->value, got);
        feox_value *ref = NULL;
        assert_int_equal(feox_get_ref(s, m->key, m->key_len, &ref), FEOX_OK);
        assert_int_equal(feox_value_size(ref), m->value_len);
        assert_memory_equal(feox_value_data(ref), m->value, m->value_len);
        feox_value_release(ref);
        uint64_t ttl = 0;
        bool has_ttl = false;
        assert_int_equal(feox_get_ttl(s, m->key, m->key_len, &ttl, &has_ttl), FEOX_OK);
        assert_int_equal(has_ttl, m->ttl);
    }
    void *v = NULL;
    size_t len = 0;
    assert_int_equal(feox_get(s, "never", 5, &v, &len, NULL), FEOX_ERR_KEY_NOT_FOUND);
    free(buf);
}

static uint64_t model_count(bool ttl_passed)
{
    uint64_t n = 0;
    for (int i = 0; i < KEYS; i++)
        n += model_live(i, ttl_passed);
    return n;
}

/* The scan in key order agrees with the model too (the full load's indexes). */
static void check_scan(feox_store *s, bool ttl_passed)
{
    feox_cursor *c = NULL;
    assert_int_equal(feox_cursor_open(s, &c), FEOX_OK);
    assert_int_equal(feox_cursor_seek(c, FEOX_SEEK_FIRST, NULL, 0), FEOX_OK);
    uint64_t rows = 0;
    for (int i = 0; i < KEYS; i++) {
        if (!model_live(i, ttl_passed))
            continue;
        assert_true(feox_cursor_valid(c));
        size_t klen;
        const void *key = feox_cursor_key(c, &klen);
        assert_int_equal(klen, model[i].key_len);
        assert_memory_equal(key, model[i].key, klen);
        rows++;
        assert_int_equal(feox_cursor_next(c), FEOX_OK);
    }
    assert_false(feox_cursor_valid(c));
    feox_cursor_close(c);
    assert_int_equal(rows, model_count(ttl_passed));
}


static bool loading(feox_store *s)
{
    return atomic_load_explicit(&s->load_state, memory_order_acquire) == FEOX_LOAD_RUNNING;
}

/* ---- the file ---- */

static uint64_t file_size(const char *at)
{
    struct stat st;
    assert_int_equal(stat(at, &st), 0);
    return (uint64_t)st.st_size;
}

/* The offset of the snapshot the file's footer names, 0 if the file does not end in a footer. */
static uint64_t snapshot_offset(const char *at)
{
    uint64_t size = file_size(at);
    if (size < FEOX_LOG_HEADER_SIZE + FEOX_LOG_SNAPSHOT_FOOTER_SIZE)
        return 0;
    uint8_t footer[FEOX_LOG_SNAPSHOT_FOOTER_SIZE];
    int fd = open(at, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, footer, sizeof footer, (off_t)(size - sizeof footer)),
                     (ssize_t)sizeof footer);
    close(fd);
    if (feox_get_le32(footer) != FEOX_LOG_RECORD_MAGIC || footer[4] != FEOX_LOG_SNAPSHOT_FOOTER)
        return 0;
    return feox_get_le64(footer + FEOX_LOG_RECORD_FIXED);
}

static uint8_t *read_file(const char *at, uint64_t *size)
{
    *size = file_size(at);
    uint8_t *bytes = malloc(*size);
    assert_non_null(bytes);
    int fd = open(at, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, bytes, *size, 0), (ssize_t)*size);
    close(fd);
    return bytes;
}

static void write_file(const char *at, const uint8_t *bytes, uint64_t size)
{
    unlink(at);
    int fd = open(at, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, bytes, size, 0), (ssize_t)size);
    close(fd);
}

/* A store file with the model written and closed cleanly: returns where its snapshot starts. */
static uint64_t make_closed_file(const char *at, char variant)
{
    unlink(at);
    ftest_load_gate_disarm();
    feox_store *s = open_at(at);
    write_model(s, variant);
    assert_int_equal(feox_close(s), FEOX_OK);
    uint64_t snap = snapshot_offset(at);
    assert_true(snap > FEOX_LOG_HEADER_SIZE);
    return snap;
}

/* Open a file that must load normally (no snapshot used) and check it against the model. */
static void expect_normal_load(const char *at, uint64_t data_end)
{
    ftest_load_gate_arm();
    feox_store *s = open_at(at);
    assert_false(loading(s));
    assert_int_equal(ftest_load_gate_loads(), 0);
    assert_int_equal(file_size(at), data_end); /* whatever followed the records was cut */
    check_point_reads(s, false);
    assert_int_equal(atomic_load(&s->snapshot_reads), 0);
    check_scan(s, false);
    assert_int_equal(feox_check(s), FEOX_OK);
    assert_int_equal(ftest_load_gate_waits(), 0);
    assert_int_equal(feox_close(s), FEOX_OK);
}

/* ---- tests ---- */

static void test_point_reads_are_served_while_the_load_waits(void **state)
{
    (void)state;
    uint64_t snap = make_closed_file(path, 'a');
    ftest_load_gate_arm();
    feox_store *s = open_at(path);
    assert_true(loading(s));
    check_point_reads(s, false);
    assert_true(loading(s)); /* not one of them waited */
    assert_int_equal(ftest_load_gate_waits(), 0);
    assert_true(atomic_load(&s->snapshot_reads) >= KEYS);
    assert_int_equal(feox_len(s, FEOX_LEN_ESTIMATE), model_count(false)); /* no wait either */
    assert_int_equal(ftest_load_gate_waits(), 0);
    /* Everything else waits for the load. */
    assert_int_equal(feox_len(s, 0), model_count(false));
    assert_int_equal(ftest_load_gate_waits(), 1);
    assert_false(loading(s));
    uint64_t size = file_size(path);
    assert_int_equal(snapshot_offset(path), snap); /* kept while nothing is written */
    check_point_reads(s, false);
    check_scan(s, false);
    assert_int_equal(feox_check(s), FEOX_OK);
    /* A close with nothing written leaves the file as it was. */
    assert_int_equal(feox_close(s), FEOX_OK);
    assert_int_equal(file_size(path), size);
    assert_int_equal(snapshot_offset(path), snap);
    /* A write cuts the snapshot off before it is written; the close appends one that has it. */
    s = open_at(path);
    assert_int_equal(feox_insert(s, "key:00001", 9, "after", 5, NULL, NULL), FEOX_OK);
    model_set(1, "after", 5);
    model[1].ttl = false;
    assert_int_equal(feox_flush(s), FEOX_OK);
    assert_int_equal(snapshot_offset(path), 0);
    assert_int_equal(file_size(path), snap + feox_log_record_size(9, 5));
    assert_int_equal(feox_close(s), FEOX_OK);
    assert_int_equal(snapshot_offset(path), snap + feox_log_record_size(9, 5));
    ftest_load_gate_arm();
    s = open_at(path);
    assert_true(loading(s));
    check_point_reads(s, false);
    ftest_load_gate_open();
    assert_int_equal(feox_close(s), FEOX_OK);
    model_clear();
}

/* Each call other than a point read waits for the load. */
static void test_every_other_call_waits(void **state)
{
    (void)state;
    make_closed_file(path, 'a');
    enum { CALLS = 11 };
    for (int call = 0; call < CALLS; call++) {
        ftest_load_gate_arm();
        feox_store *s = open_at(path);
        assert_true(loading(s));
        feox_cursor *c = NULL;
        feox_stats st;
        switch (call) {
        case 0: assert_int_equal(feox_insert(s, "new", 3, "v", 1, NULL, NULL), FEOX_OK); break;
        case 1:
            assert_int_equal(feox_delete(s, model[1].key, model[1].key_len, NULL), FEOX_OK);
            break;
        case 2:
            assert_int_equal(feox_cursor_open(s, &c), FEOX_OK);
            feox_cursor_close(c);
            break;
        case 3:
            assert_int_equal(feox_get_stats(s, &st), FEOX_OK);
            assert_int_equal(st.len, model_count(false));
            break;
        case 4: assert_int_equal(feox_check(s), FEOX_OK); break;
        case 5: assert_int_equal(feox_flush(s), FEOX_OK); break;
        case 6: assert_int_equal(feox_compact(s), FEOX_OK); break;
        case 7: assert_false(feox_is_empty(s)); break;
        case 8: assert_true(feox_memory_usage(s) > 0); break;
        case 9:
            assert_int_equal(feox_update_ttl(s, model[2].key, model[2].key_len, 50, NULL), FEOX_OK);
            break;
        default: assert_int_equal(feox_set_owner(s, NULL), FEOX_OK); break;
        }
        assert_int_equal(ftest_load_gate_waits(), 1);
        assert_false(loading(s));
        assert_int_equal(feox_close(s), FEOX_OK);
        make_closed_file(path, 'a'); /* the next call starts from the same file */
    }
    model_clear();
}

static void test_ttl_passed_between_close_and_open(void **state)
{
    (void)state;
    make_closed_file(path, 'a');
    ftest_clock_advance(&clock_, 200 * FTEST_SEC);
    ftest_load_gate_arm();
    feox_store *s = open_at(path);
    assert_true(loading(s));
    check_point_reads(s, true);
    assert_true(loading(s));
    assert_int_equal(feox_len(s, 0), model_count(true));
    check_point_reads(s, true);
    assert_int_equal(feox_close(s), FEOX_OK);
    model_clear();
}

static void test_torn_snapshot_loads_normally(void **state)
{
    (void)state;
    uint64_t snap = make_closed_file(path, 'a');
    uint64_t size;
    uint8_t *bytes = read_file(path, &size);
    uint64_t cuts[] = {snap,
                       snap + 1,
                       snap + 39,
                       snap + 40,
                       snap + 200,
                       snap + (size - snap) / 2,
                       size - FEOX_LOG_SNAPSHOT_FOOTER_SIZE - 8,
                       size - FEOX_LOG_SNAPSHOT_FOOTER_SIZE,
                       size - FEOX_LOG_SNAPSHOT_FOOTER_SIZE + 20,
                       size - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        write_file(copy_path, bytes, cuts[i]);
        expect_normal_load(copy_path, snap);
    }
    free(bytes);
    model_clear();
}

static void test_record_after_snapshot_makes_it_stale(void **state)
{
    (void)state;
    uint64_t snap = make_closed_file(path, 'a');
    (void)snap;
    uint64_t size;
    uint8_t *bytes = read_file(path, &size);
    uint64_t file_id = feox_get_le64(bytes + 16);
    const char *value = "appended after the snapshot";
    size_t vlen = strlen(value);
    uint64_t rec_size = feox_log_record_size(model[1].key_len, vlen);
    bytes = realloc(bytes, size + rec_size);
    assert_non_null(bytes);
    feox_log_record_encode(bytes + size, file_id, size, FEOX_LOG_PUT, model[1].key,
                           (uint32_t)model[1].key_len, value, (uint32_t)vlen, 0,
                           FTEST_EPOCH_NS + 999 * FTEST_SEC, 0);
    write_file(copy_path, bytes, size + rec_size);
    model_set(1, value, vlen);
    model[1].ttl = false;
    /* The stale snapshot stays where it is (skipped: no damage), the record after it counts. */
    expect_normal_load(copy_path, size + rec_size);
    free(bytes);
    model_clear();
}

static void test_damaged_snapshot_loads_normally(void **state)
{
    (void)state;
    uint64_t snap = make_closed_file(path, 'a');
    uint64_t size;
    uint8_t *bytes = read_file(path, &size);
    uint64_t footer = size - FEOX_LOG_SNAPSHOT_FOOTER_SIZE;
    uint64_t flips[] = {snap + 4,               /* op */
                        snap + 30,              /* timestamp: header check passes, checksum not */
                        snap + 42,              /* its key: the offset it covers */
                        snap + 48 + 2,          /* table magic */
                        snap + 48 + 64 + 8 * 3, /* a slot */
                        (snap + footer) / 2,    /* a slot further on */
                        footer - 3,             /* its checksum */
                        footer + 4,             /* the footer's op */
                        footer + 41,            /* the offset the footer names */
                        size - 1};              /* the footer's checksum */
    for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
        bytes[flips[i]] ^= 0x10;
        write_file(copy_path, bytes, size);
        bytes[flips[i]] ^= 0x10;
        expect_normal_load(copy_path, snap);
    }
    free(bytes);
    model_clear();
}

static void test_snapshot_of_another_file_is_not_used(void **state)
{
    (void)state;
    uint64_t snap_b = make_closed_file(other, 'b');
    uint64_t snap_a = make_closed_file(path, 'a'); /* the model is a's */
    assert_int_equal(snap_a, snap_b); /* same lengths, same offsets: only the file id differs */
    uint64_t size_a, size_b;
    uint8_t *a = read_file(path, &size_a);
    uint8_t *b = read_file(other, &size_b);
    assert_int_equal(size_a, size_b);
    memcpy(a + snap_a, b + snap_b, size_b - snap_b); /* a's records, b's snapshot */
    write_file(copy_path, a, size_a);
    expect_normal_load(copy_path, snap_a);
    free(a);
    free(b);
    model_clear();
}

/* The background load's thread counts (and fails) its own allocations from here on. */
static unsigned long fail_at;
static void fail_in_load(feox_store *s)
{
    (void)s;
    ftest_failing_alloc_count_this_thread();
    ftest_fault.alloc_count = 0;
    ftest_fault.failure_injected = false;
    ftest_fault.fail_at = fail_at;
    ftest_fault.injecting = true;
}

static void test_allocation_failure_in_the_background_load(void **state)
{
    (void)state;
    make_closed_file(path, 'a');
    feox_load_wait_hook = NULL;
    ftest_failing_alloc_install(false);
    bool failed_once = false;
    for (fail_at = 1; fail_at < 100000; fail_at++) {
        feox_background_load_hook = fail_in_load;
        feox_store *s = open_at(path);
        feox_stats st;
        feox_err err = feox_get_stats(s, &st); /* waits for the load */
        ftest_fault.injecting = false;
        if (err == FEOX_OK) { /* nothing failed, or the failed allocation was not needed */
            assert_int_equal(st.len, model_count(false));
            assert_int_equal(feox_close(s), FEOX_OK);
            if (!ftest_fault.failure_injected)
                break;
            continue;
        }
        failed_once = true;
        assert_int_equal(err, FEOX_ERR_NOMEM);
        assert_non_null(strstr(feox_error_detail(), path));
        /* Every later call that waits fails the same way; point reads too. */
        assert_int_equal(feox_insert(s, "k", 1, "v", 1, NULL, NULL), FEOX_ERR_NOMEM);
        void *v;
        size_t len;
        assert_int_equal(feox_get(s, model[1].key, model[1].key_len, &v, &len, NULL),
                         FEOX_ERR_NOMEM);
        assert_int_equal(feox_close(s), FEOX_OK);
        assert_true(snapshot_offset(path) > 0); /* kept for the next open */
    }
    ftest_failing_alloc_remove();
    assert_true(failed_once);
    ftest_load_gate_arm();
    feox_store *s = open_at(path);
    assert_true(loading(s));
    check_point_reads(s, false);
    ftest_load_gate_open();
    check_scan(s, false);
    assert_int_equal(feox_close(s), FEOX_OK);
    model_clear();
}

/* Every read of the background load fails (EIO): the next waiting call and every later one,
 * point reads too, get FEOX_ERR_IO naming the store; the snapshot stays for the next open. */
static void test_read_error_in_the_background_load(void **state)
{
    (void)state;
    uint64_t snap = make_closed_file(path, 'a');
    ftest_load_gate_arm();
    feox_store *s = open_at(path);
    assert_true(loading(s));
    check_point_reads(s, false); /* before the fault: served */
    feox_io_inject(FEOX_IO_PREAD, 1, EIO, false, true);
    feox_stats st;
    assert_int_equal(feox_get_stats(s, &st), FEOX_ERR_IO); /* waits: the load fails */
    assert_non_null(strstr(feox_error_detail(), path));
    feox_io_inject_reset();
    void *v;
    size_t len;
    assert_int_equal(feox_get(s, model[1].key, model[1].key_len, &v, &len, NULL), FEOX_ERR_IO);
    assert_int_equal(feox_insert(s, "k", 1, "v", 1, NULL, NULL), FEOX_ERR_IO);
    assert_int_equal(feox_close(s), FEOX_OK);
    assert_int_equal(snapshot_offset(path), snap);
    ftest_load_gate_arm();
    s = open_at(path);
    ftest_load_gate_open();
    check_point_reads(s, false);
    check_scan(s, false);
    assert_int_equal(feox_close(s), FEOX_OK);
    model_clear();
}

static void test_close_while_loading(void **state)
{
    (void)state;
    uint64_t snap = make_closed_file(path, 'a');
    ftest_load_gate_arm();
    feox_store *s = open_at(path);
    assert_true(loading(s));
    check_point_reads(s, false);
    assert_int_equal(feox_close(s), FEOX_OK); /* cancels the load, which then meets a record */
    assert_int_equal(ftest_load_gate_waits(), 1);
    assert_int_equal(snapshot_offset(path), snap); /* kept, no other written */
    ftest_load_gate_arm();
    s = open_at(path);
    assert_true(loading(s));
    ftest_load_gate_open();
    check_point_reads(s, false);
    check_scan(s, false);
    assert_int_equal(feox_close(s), FEOX_OK);
    model_clear();
}

static void test_fork_while_loading(void **state)
{
    (void)state;
    make_closed_file(path, 'a');
    ftest_load_gate_arm();
    feox_store *s = open_at(path);
    assert_true(loading(s));
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        /* The parent's store: every call fails, nothing waits, close forgets it. */
        void *v;
        size_t len;
        int bad = feox_get(s, model[1].key, model[1].key_len, &v, &len, NULL) != FEOX_ERR_FORKED;
        bad |= feox_insert(s, "k", 1, "v", 1, NULL, NULL) != FEOX_ERR_FORKED;
        feox_stats st;
        bad |= feox_get_stats(s, &st) != FEOX_ERR_FORKED;
        bad |= feox_close(s) != FEOX_OK;
        _exit(bad);
    }
    int status = 0;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_true(loading(s));
    check_point_reads(s, false);
    ftest_load_gate_open();
    check_scan(s, false);
    assert_int_equal(feox_check(s), FEOX_OK);
    assert_int_equal(feox_close(s), FEOX_OK);
    model_clear();
}

/* ---- hunt7: more shapes of what a snapshot answers ---- */

#define MANY 70000 /* 16-bit tags: thousands of keys share their slot's tag with another key */

static int many_key(char *buf, int i)
{
    return snprintf(buf, 24, "many:%07d", i);
}

/* The MANY keys, key i holding "value-<7i>". */
static void write_many(feox_store *s)
{
    char key[24], value[32];
    for (int i = 0; i < MANY; i++) {
        int klen = many_key(key, i);
        int vlen = snprintf(value, sizeof value, "value-%d", i * 7);
        assert_int_equal(feox_insert(s, key, (size_t)klen, value, (size_t)vlen, NULL, NULL),
                         FEOX_OK);
    }
}

/* 70,000 keys (every 9th deleted before the close): every present key answers its value, and
 * 70,000 keys never written answer not found, while the load is held back. Probes meet slots
 * whose 16-bit tag is another key's: the record they name is read and its key compared. The
 * close also writes the snapshot of a store the reaper would otherwise free. */
static void test_many_keys_with_colliding_tags(void **state)
{
    (void)state;
    unlink(path);
    ftest_load_gate_disarm();
    feox_store *s = open_at(path);
    write_many(s);
    char key[24], value[32];
    for (int i = 0; i < MANY; i += 9) {
        int klen = many_key(key, i);
        assert_int_equal(feox_delete(s, key, (size_t)klen, NULL), FEOX_OK);
    }
    assert_int_equal(feox_close(s), FEOX_OK);
    assert_true(snapshot_offset(path) > 0);
    ftest_load_gate_arm();
    s = open_at(path);
    assert_true(loading(s));
    for (int i = 0; i < MANY; i++) {
        int klen = many_key(key, i);
        char got[32];
        size_t len = 0;
        feox_err err = feox_get_into(s, key, (size_t)klen, got, sizeof got, &len, NULL);
        if (i % 9 == 0) {
            assert_int_equal(err, FEOX_ERR_KEY_NOT_FOUND);
            continue;
        }
        assert_int_equal(err, FEOX_OK);
        int vlen = snprintf(value, sizeof value, "value-%d", i * 7);
        assert_int_equal(len, (size_t)vlen);
        assert_memory_equal(got, value, len);
    }
    for (int i = 0; i < MANY; i++) {
        int klen = snprintf(key, sizeof key, "absent:%07d", i);
        assert_false(feox_contains(s, key, (size_t)klen));
    }
    assert_true(loading(s)); /* none of them waited */
    assert_int_equal(ftest_load_gate_waits(), 0);
    assert_int_equal(feox_len(s, 0), MANY - (MANY + 8) / 9);
    assert_int_equal(feox_close(s), FEOX_OK);
    feox_close_wait();
}

/* What a key of the loaded-store test holds after its second round: NULL if deleted. */
static const char *loaded_round_value(int i, char *value, size_t size)
{
    if (i < MANY && i % 11 == 0)
        return NULL;
    snprintf(value, size, i < MANY && i % 5 == 0 ? "again-%d" : "value-%d", i * 7);
    return value;
}

/* A store that loaded its 70,000 keys from the file (its entries made by a bulk load), then had
 * keys overwritten, deleted and added: its close writes a snapshot naming every key's last
 * version (a large store's close lists such a store from its ordered index: the other way than
 * the store written through the API above), which the next open answers from, load held back. */
static void test_loaded_store_closed_after_writes(void **state)
{
    (void)state;
    unlink(path);
    ftest_load_gate_disarm();
    feox_store *s = open_at(path);
    write_many(s);
    char key[24], value[32];
    assert_int_equal(feox_close(s), FEOX_OK);
    s = open_at(path);
    assert_int_equal(feox_check(s), FEOX_OK); /* (waits for the load) */
    assert_false(loading(s));
    for (int i = 0; i < MANY + MANY / 10; i++) {
        int klen = many_key(key, i);
        const char *v = loaded_round_value(i, value, sizeof value);
        if (!v)
            assert_int_equal(feox_delete(s, key, (size_t)klen, NULL), FEOX_OK);
        else if (i >= MANY || i % 5 == 0)
            assert_int_equal(feox_insert(s, key, (size_t)klen, v, strlen(v), NULL, NULL), FEOX_OK);
    }
    assert_int_equal(feox_close(s), FEOX_OK);
    assert_true(snapshot_offset(path) > 0);
    ftest_load_gate_arm();
    s = open_at(path);
    assert_true(loading(s));
    for (int i = 0; i < MANY + MANY / 10; i++) {
        int klen = many_key(key, i);
        char got[32];
        size_t len = 0;
        feox_err err = feox_get_into(s, key, (size_t)klen, got, sizeof got, &len, NULL);
        const char *v = loaded_round_value(i, value, sizeof value);
        if (!v) {
            assert_int_equal(err, FEOX_ERR_KEY_NOT_FOUND);
            continue;
        }
        assert_int_equal(err, FEOX_OK);
        assert_int_equal(len, strlen(v));
        assert_memory_equal(got, v, len);
    }
    assert_true(loading(s)); /* none of them waited */
    assert_int_equal(ftest_load_gate_waits(), 0);
    assert_int_equal(feox_close(s), FEOX_OK);
    feox_close_wait();
}

/* The expiry forms a version can have (TTL, TTL cleared by an overwrite, kept by incr, cas and
 * patch, set and cleared by update_ttl, an absolute expiry exactly now): what the snapshot
 * answers for each (get_ttl's seconds included) is what the loaded indexes answer. */
enum { FORMS = 8 };

static void form_key(char *buf, int form)
{
    snprintf(buf, 16, "form:%d", form);
}

static void write_forms(feox_store *s, uint64_t now)
{
    char key[16];
    feox_write_opts ttl = {.flags = FEOX_WRITE_TTL, .ttl_secs = 100};
    uint8_t counter[8] = {1};
    /* 0: a TTL */
    form_key(key, 0);
    assert_int_equal(feox_insert(s, key, 6, "ttl", 3, &ttl, NULL), FEOX_OK);
    /* 1: a TTL, then an overwrite without one (no expiry word any more) */
    form_key(key, 1);
    assert_int_equal(feox_insert(s, key, 6, "ttl", 3, &ttl, NULL), FEOX_OK);
    assert_int_equal(feox_insert(s, key, 6, "plain", 5, NULL, NULL), FEOX_OK);
    /* 2: a counter with a TTL, incremented (keeps it) */
    form_key(key, 2);
    assert_int_equal(feox_insert(s, key, 6, counter, 8, &ttl, NULL), FEOX_OK);
    int64_t result = 0;
    assert_int_equal(feox_atomic_increment(s, key, 6, 41, NULL, &result), FEOX_OK);
    assert_int_equal(result, 42);
    /* 3: a TTL kept by compare-and-swap */
    form_key(key, 3);
    assert_int_equal(feox_insert(s, key, 6, "old", 3, &ttl, NULL), FEOX_OK);
    bool swapped = false;
    assert_int_equal(feox_compare_and_swap(s, key, 6, "old", 3, "new", 3, NULL, &swapped), FEOX_OK);
    assert_true(swapped);
    /* 4: a TTL kept by a JSON patch */
    form_key(key, 4);
    assert_int_equal(feox_insert(s, key, 6, "{\"a\":1}", 7, &ttl, NULL), FEOX_OK);
    const char *patch = "[{\"op\":\"replace\",\"path\":\"/a\",\"value\":2}]";
    assert_int_equal(feox_json_patch(s, key, 6, patch, strlen(patch), NULL, NULL, NULL), FEOX_OK);
    /* 5: no TTL, then one set by update_ttl */
    form_key(key, 5);
    assert_int_equal(feox_insert(s, key, 6, "later", 5, NULL, NULL), FEOX_OK);
    assert_int_equal(feox_update_ttl(s, key, 6, 50, NULL), FEOX_OK);
    /* 6: a TTL, then cleared by update_ttl(0) */
    form_key(key, 6);
    assert_int_equal(feox_insert(s, key, 6, "cleared", 7, &ttl, NULL), FEOX_OK);
    assert_int_equal(feox_update_ttl(s, key, 6, 0, NULL), FEOX_OK);
    /* 7: an absolute expiry 10 s ahead (the test reads it exactly then: still live) */
    form_key(key, 7);
    feox_write_opts at = {.flags = FEOX_WRITE_EXPIRES_AT, .expires_at_ns = now + 10 * FTEST_SEC};
    assert_int_equal(feox_insert(s, key, 6, "edge", 4, &at, NULL), FEOX_OK);
}

typedef struct form_answer {
    feox_err get, ttl;
    char value[32];
    size_t len;
    uint64_t ttl_secs;
    bool has_ttl;
} form_answer;

static void read_forms(feox_store *s, form_answer out[FORMS])
{
    char key[16];
    for (int f = 0; f < FORMS; f++) {
        form_key(key, f);
        form_answer *a = &out[f];
        memset(a, 0, sizeof *a);
        a->get = feox_get_into(s, key, 6, a->value, sizeof a->value, &a->len, NULL);
        a->ttl = feox_get_ttl(s, key, 6, &a->ttl_secs, &a->has_ttl);
    }
}

static void test_ttl_forms_answer_as_the_indexes_do(void **state)
{
    (void)state;
    unlink(path);
    ftest_clock_init(&clock_, FTEST_EPOCH_NS);
    ftest_load_gate_disarm();
    feox_store *s = open_at(path);
    write_forms(s, FTEST_EPOCH_NS);
    assert_int_equal(feox_close(s), FEOX_OK);
    ftest_clock_advance(&clock_, 10 * FTEST_SEC); /* form 7 expires exactly now */
    ftest_load_gate_arm();
    s = open_at(path);
    assert_true(loading(s));
    form_answer served[FORMS], loaded[FORMS];
    read_forms(s, served);
    assert_true(loading(s));
    assert_int_equal(ftest_load_gate_waits(), 0);
    assert_int_equal(feox_check(s), FEOX_OK); /* waits for the load */
    read_forms(s, loaded);
    for (int f = 0; f < FORMS; f++) {
        assert_int_equal(served[f].get, FEOX_OK);
        assert_int_equal(served[f].get, loaded[f].get);
        assert_int_equal(served[f].len, loaded[f].len);
        assert_memory_equal(served[f].value, loaded[f].value, served[f].len);
        assert_int_equal(served[f].ttl, loaded[f].ttl);
        assert_int_equal(served[f].has_ttl, loaded[f].has_ttl);
        assert_int_equal(served[f].ttl_secs, loaded[f].ttl_secs);
    }
    bool has[FORMS] = {true, false, true, true, true, true, false, true};
    uint64_t secs[FORMS] = {90, 0, 90, 90, 90, 40, 0, 0};
    for (int f = 0; f < FORMS; f++) {
        assert_int_equal(served[f].has_ttl, has[f]);
        assert_int_equal(served[f].ttl_secs, secs[f]);
    }
    assert_int_equal(served[2].len, 8);
    assert_int_equal(served[2].value[0], 42);
    assert_int_equal(feox_close(s), FEOX_OK);
    /* One nanosecond later form 7 is gone, whichever answers. */
    ftest_clock_advance(&clock_, 1);
    ftest_load_gate_arm();
    s = open_at(path);
    assert_true(loading(s));
    read_forms(s, served);
    ftest_load_gate_open();
    assert_int_equal(feox_check(s), FEOX_OK);
    read_forms(s, loaded);
    assert_int_equal(served[7].get, FEOX_ERR_KEY_NOT_FOUND);
    assert_int_equal(loaded[7].get, FEOX_ERR_KEY_NOT_FOUND);
    assert_int_equal(feox_close(s), FEOX_OK);
}

static int count_row(void *ctx, const void *key, size_t key_len, const void *value,
                     size_t value_len, const feox_record_info *info)
{
    (void)key;
    (void)key_len;
    (void)value;
    (void)value_len;
    (void)info;
    (*(int *)ctx)++;
    return 0;
}

/* The calls test_every_other_call_waits does not make wait too: increment, compare-and-swap,
 * JSON patch, range query, and the exact feox_len. */
static void test_the_remaining_calls_wait(void **state)
{
    (void)state;
    make_closed_file(path, 'a');
    enum { CALLS = 5 };
    for (int call = 0; call < CALLS; call++) {
        ftest_load_gate_arm();
        feox_store *s = open_at(path);
        assert_true(loading(s));
        int rows = 0;
        bool swapped = false;
        const char *patch = "[]";
        switch (call) {
        case 0:
            assert_int_equal(feox_atomic_increment(s, "counter", 7, 1, NULL, NULL), FEOX_OK);
            break;
        case 1:
            assert_int_equal(feox_compare_and_swap(s, model[1].key, model[1].key_len,
                                                   model[1].value, model[1].value_len, "x", 1, NULL,
                                                   &swapped),
                             FEOX_OK);
            assert_true(swapped);
            break;
        case 2:
            assert_int_equal(feox_insert(s, "doc", 3, "{}", 2, NULL, NULL), FEOX_OK);
            assert_int_equal(feox_json_patch(s, "doc", 3, patch, 2, NULL, NULL, NULL), FEOX_OK);
            break;
        case 3:
            assert_int_equal(
                feox_range_query(s, "key:", 4, "key:\xff", 5, SIZE_MAX, count_row, &rows, NULL),
                FEOX_OK);
            assert_int_equal(rows, model_count(false));
            break;
        default: assert_int_equal(feox_len(s, 0), model_count(false)); break;
        }
        assert_int_equal(ftest_load_gate_waits(), 1);
        assert_false(loading(s));
        assert_int_equal(feox_close(s), FEOX_OK);
        make_closed_file(path, 'a');
    }
    model_clear();
}

/* A store reopened with max_memory under its values: the snapshot reads each value from the file
 * (it never was resident), and after the load the values beyond the budget are cold and read
 * back; both agree with the model. */
static void test_values_beyond_max_memory(void **state)
{
    (void)state;
    make_closed_file(path, 'a');
    ftest_load_gate_arm();
    feox_config cfg;
    ftest_config(&cfg, &clock_);
    cfg.path = path;
    cfg.max_memory = 64 << 10;
    feox_store *s = ftest_open(&cfg);
    assert_true(loading(s));
    check_point_reads(s, false);
    assert_true(loading(s));
    ftest_load_gate_open();
    assert_int_equal(feox_check(s), FEOX_OK);
    check_point_reads(s, false);
    check_scan(s, false);
    assert_int_equal(feox_close(s), FEOX_OK);
    ftest_load_gate_arm();
    s = ftest_open(&cfg);
    check_point_reads(s, false);
    ftest_load_gate_open();
    check_point_reads(s, false);
    assert_int_equal(feox_close(s), FEOX_OK);
    model_clear();
}

/* Random writes (inserts with and without a TTL, absolute expiries some already past, deletes,
 * increments, TTL updates, the clock moving) between clean closes, 25 rounds: after each reopen
 * every key's get, contains and get_ttl answered from the snapshot equal a model, and equal it
 * again once the indexes have loaded. */
enum { RANDOM_KEYS = 150, RANDOM_ROUNDS = 25, RANDOM_OPS = 200 };

typedef struct random_model {
    bool live;
    uint8_t value[24];
    size_t len;
    uint64_t expires_at; /* 0: none */
} random_model;

static bool random_live(const random_model *m, uint64_t now)
{
    return m->live && (!m->expires_at || now <= m->expires_at);
}

static void random_write(feox_store *s, random_model *models, ftest_rng *rng, uint64_t now)
{
    int i = (int)ftest_rng_below(rng, RANDOM_KEYS);
    random_model *m = &models[i];
    char key[16];
    size_t klen = (size_t)snprintf(key, sizeof key, "r%03d", i);
    switch (ftest_rng_below(rng, 6)) {
    case 0:
    case 1: {
        feox_write_opts o = {0};
        m->expires_at = 0;
        uint64_t kind = ftest_rng_below(rng, 4);
        if (kind == 1) {
            o.flags = FEOX_WRITE_TTL;
            o.ttl_secs = 1 + ftest_rng_below(rng, 30);
            m->expires_at = now + o.ttl_secs * FTEST_SEC;
        } else if (kind == 2) { /* absolute, within 20 s either side of now */
            o.flags = FEOX_WRITE_EXPIRES_AT;
            o.expires_at_ns = now - 20 * FTEST_SEC + ftest_rng_below(rng, 40 * FTEST_SEC);
            m->expires_at = o.expires_at_ns;
        }
        m->len = 1 + ftest_rng_below(rng, sizeof m->value - 1);
        for (size_t b = 0; b < m->len; b++)
            m->value[b] = (uint8_t)ftest_rng_next(rng);
        if (m->len == 8)
            m->len = 9; /* never a counter */
        assert_int_equal(feox_insert(s, key, klen, m->value, m->len, &o, NULL), FEOX_OK);
        m->live = true;
        break;
    }
    case 2: {
        feox_err err = feox_delete(s, key, klen, NULL);
        assert_int_equal(err, random_live(m, now) ? FEOX_OK : FEOX_ERR_KEY_NOT_FOUND);
        m->live = false;
        break;
    }
    case 3: { /* a counter: created, or incremented (the TTL kept) */
        if (random_live(m, now) && m->len != 8)
            break;
        int64_t result = 0;
        assert_int_equal(feox_atomic_increment(s, key, klen, 3, NULL, &result), FEOX_OK);
        if (!random_live(m, now)) {
            m->expires_at = 0;
            m->len = 8;
            memset(m->value, 0, 8);
        }
        uint64_t counter = feox_get_le64(m->value) + 3;
        feox_put_le64(m->value, counter);
        m->live = true;
        assert_int_equal(result, counter);
        break;
    }
    case 4: {
        uint64_t ttl = ftest_rng_below(rng, 3) == 0 ? 0 : 1 + ftest_rng_below(rng, 30);
        feox_err err = feox_update_ttl(s, key, klen, ttl, NULL);
        assert_int_equal(err, random_live(m, now) ? FEOX_OK : FEOX_ERR_KEY_NOT_FOUND);
        if (!err)
            m->expires_at = ttl ? now + ttl * FTEST_SEC : 0;
        break;
    }
    default: ftest_clock_advance(&clock_, ftest_rng_below(rng, 3 * FTEST_SEC)); break;
    }
}

static void random_check(feox_store *s, const random_model *models, uint64_t now)
{
    for (int i = 0; i < RANDOM_KEYS; i++) {
        const random_model *m = &models[i];
        char key[16];
        size_t klen = (size_t)snprintf(key, sizeof key, "r%03d", i);
        uint8_t got[32];
        size_t len = 0;
        uint64_t ttl = 0;
        bool has_ttl = false;
        bool live = random_live(m, now);
        feox_err err = feox_get_into(s, key, klen, got, sizeof got, &len, NULL);
        assert_int_equal(err, live ? FEOX_OK : FEOX_ERR_KEY_NOT_FOUND);
        assert_int_equal(feox_contains(s, key, klen), live);
        feox_err ttl_err = feox_get_ttl(s, key, klen, &ttl, &has_ttl);
        assert_int_equal(ttl_err, err);
        if (!live)
            continue;
        assert_int_equal(len, m->len);
        assert_memory_equal(got, m->value, len);
        assert_int_equal(has_ttl, m->expires_at != 0);
        if (has_ttl)
            assert_int_equal(ttl, (m->expires_at - now) / FTEST_SEC);
    }
}

static void test_random_rounds_agree_with_a_model(void **state)
{
    (void)state;
    unlink(path);
    ftest_clock_init(&clock_, FTEST_EPOCH_NS);
    ftest_load_gate_disarm();
    random_model models[RANDOM_KEYS];
    memset(models, 0, sizeof models);
    ftest_rng rng;
    ftest_rng_seed(&rng, 0x5a5a);
    feox_store *s = open_at(path);
    for (int round = 0; round < RANDOM_ROUNDS; round++) {
        for (int op = 0; op < RANDOM_OPS; op++)
            random_write(s, models, &rng, ftest_clock_read(&clock_));
        assert_int_equal(feox_close(s), FEOX_OK);
        ftest_clock_advance(&clock_, ftest_rng_below(&rng, 5 * FTEST_SEC));
        ftest_load_gate_arm();
        s = open_at(path);
        assert_true(loading(s));
        random_check(s, models, ftest_clock_read(&clock_));
        assert_true(loading(s));
        assert_int_equal(feox_check(s), FEOX_OK); /* waits for the load */
        random_check(s, models, ftest_clock_read(&clock_));
    }
    assert_int_equal(feox_close(s), FEOX_OK);
}

/* A store opened from its snapshot and, before any write, compacted or given a new owner: the
 * file still answers every key (the next open from a snapshot again, the one the close then
 * appends or the one kept), and the answers agree with the model. */
static void test_compaction_and_owner_before_any_write(void **state)
{
    (void)state;
    for (int what = 0; what < 2; what++) {
        make_closed_file(path, 'a');
        ftest_load_gate_arm();
        feox_store *s = open_at(path);
        assert_true(loading(s));
        if (what == 0)
            assert_int_equal(feox_compact(s), FEOX_OK); /* waits for the load */
        else
            assert_int_equal(feox_set_owner(s, "someone"), FEOX_OK);
        check_point_reads(s, false);
        assert_int_equal(feox_close(s), FEOX_OK);
        assert_true(snapshot_offset(path) > 0);
        ftest_load_gate_arm();
        s = open_at(path);
        assert_true(loading(s));
        check_point_reads(s, false);
        ftest_load_gate_open();
        check_scan(s, false);
        assert_int_equal(feox_check(s), FEOX_OK);
        assert_int_equal(feox_close(s), FEOX_OK);
        if (what == 1) { /* back to no owner for the next tests */
            s = open_at(path);
            assert_int_equal(feox_set_owner(s, NULL), FEOX_OK);
            assert_int_equal(feox_close(s), FEOX_OK);
        }
    }
    model_clear();
}

static int setup(void **state)
{
    (void)state;
    assert_int_equal(ftest_temp_store_make(dir, path, sizeof path), 0);
    snprintf(other, sizeof other, "%s/other.feox", dir);
    snprintf(copy_path, sizeof copy_path, "%s/copy.feox", dir);
    ftest_clock_init(&clock_, FTEST_EPOCH_NS);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ftest_load_gate_disarm();
    unlink(other);
    unlink(copy_path);
    ftest_temp_store_remove(dir, path);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_point_reads_are_served_while_the_load_waits),
        cmocka_unit_test(test_every_other_call_waits),
        cmocka_unit_test(test_ttl_passed_between_close_and_open),
        cmocka_unit_test(test_torn_snapshot_loads_normally),
        cmocka_unit_test(test_record_after_snapshot_makes_it_stale),
        cmocka_unit_test(test_damaged_snapshot_loads_normally),
        cmocka_unit_test(test_snapshot_of_another_file_is_not_used),
        cmocka_unit_test(test_allocation_failure_in_the_background_load),
        cmocka_unit_test(test_read_error_in_the_background_load),
        cmocka_unit_test(test_close_while_loading),
        cmocka_unit_test(test_fork_while_loading),
        cmocka_unit_test(test_many_keys_with_colliding_tags),
        cmocka_unit_test(test_loaded_store_closed_after_writes),
        cmocka_unit_test(test_ttl_forms_answer_as_the_indexes_do),
        cmocka_unit_test(test_the_remaining_calls_wait),
        cmocka_unit_test(test_values_beyond_max_memory),
        cmocka_unit_test(test_random_rounds_agree_with_a_model),
        cmocka_unit_test(test_compaction_and_owner_before_any_write),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
