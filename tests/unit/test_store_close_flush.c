/*
 * test_store_close_flush.c — the final flush of a large store's close
 * (engine/store/store_close_threads.c, log_snapshot.h feox_log_snapshot_writer_flush): the
 * closing thread makes it (write and fsync of what the flusher had not written yet) while the
 * helpers list the entries, and the snapshot is appended only once it succeeded.
 *   flushed   keys written without a flush, then closed: the file ends in a snapshot, and the
 *             next open finds every key.
 *   failed    the same with every fsync failing from the close on: the close reports the error
 *             and the file does not end in a snapshot (one would name records that may not be
 *             durable); the next open (fsyncs working again) loads every key from the log.
 *   footer    the check itself: a file that ends in a put record whose timestamp has the
 *             footer's op byte where a footer has it does not end in a snapshot.
 * flushed and failed: a machine on which the close runs on several threads (else skipped: the
 * one-thread close flushes as it writes the snapshot, the same rule).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/helpers.h"
#include "base/io.h"
#include "feox.h"
#include "feox_test_support.h"
#include "storage/log/log_format.h"
#include "temp_store_dir.h"

#define KEYS 40000 /* past the threaded close's 2 x 16,384 entries */

#define DIR_TEMPLATE "/tmp/feox_close_flush_XXXXXX"
static char dir[] = DIR_TEMPLATE;
static char path[sizeof dir + 32];

static void key_of(uint32_t i, char key[16])
{
    snprintf(key, 16, "k%014u", i);
}

static feox_store *open_file(void)
{
    feox_config cfg;
    feox_config_init(&cfg);
    cfg.path = path;
    cfg.sync = FEOX_SYNC_NORMAL;
    /* The flusher never writes during the test (its 4 MiB early wake is past KEYS records), so
     * the close's flush is the one that writes and fsyncs them; with the default interval the
     * flusher's own fsync could fail first, and the records appended after its swap would be
     * lost with the store degraded, as a crash would lose them. */
    cfg.flush_interval_ms = 3600u * 1000u;
    return ftest_open(&cfg);
}

static int usable_cpus(void)
{
    cpu_set_t set;
    return sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
}

/* Whether the file's last bytes are a snapshot footer record: its magic, op, key and value
 * lengths (FORMAT.md; the open checks the rest, test_store_snapshot.c). The op byte alone is not
 * enough: where a put record ends the file, that byte is one of its timestamp's, 4 in about one
 * run of 256. */
static bool ends_in_snapshot(void)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    uint8_t footer[FEOX_LOG_SNAPSHOT_FOOTER_SIZE];
    bool found =
        st.st_size >= (off_t)sizeof footer &&
        pread(fd, footer, sizeof footer, st.st_size - (off_t)sizeof footer) ==
            (ssize_t)sizeof footer &&
        feox_get_le32(footer) == FEOX_LOG_RECORD_MAGIC && footer[4] == FEOX_LOG_SNAPSHOT_FOOTER &&
        feox_get_le32(footer + 8) == FEOX_LOG_SNAPSHOT_KEY && feox_get_le32(footer + 12) == 0;
    close(fd);
    return found;
}

static feox_store *write_keys(void)
{
    feox_store *s = open_file();
    char key[16];
    for (uint32_t i = 0; i < KEYS; i++) {
        key_of(i, key);
        assert_int_equal(feox_insert(s, key, 15, key, 15, NULL, NULL), FEOX_OK);
    }
    struct stat st; /* (no flush: the close's final flush writes them all) */
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_size < (off_t)KEYS * 30);
    return s;
}

static void check_every_key(void)
{
    feox_store *s = open_file();
    assert_int_equal(feox_len(s, 0), KEYS);
    char key[16], value[16];
    for (uint32_t i = 0; i < KEYS; i += 331) {
        key_of(i, key);
        size_t len = 0;
        assert_int_equal(feox_get_into(s, key, 15, value, sizeof value, &len, NULL), FEOX_OK);
        assert_memory_equal(value, key, 15);
    }
    assert_int_equal(feox_close(s), FEOX_OK);
    feox_close_wait();
}

static void test_flushed_close_ends_in_a_snapshot(void **state)
{
    (void)state;
    if (usable_cpus() < 2)
        skip();
    feox_store *s = write_keys();
    assert_int_equal(feox_close(s), FEOX_OK);
    feox_close_wait();
    assert_true(ends_in_snapshot());
    check_every_key();
}

static void test_failed_flush_writes_no_snapshot(void **state)
{
    (void)state;
    if (usable_cpus() < 2)
        skip();
    feox_store *s = write_keys();
    feox_io_inject(FEOX_IO_FSYNC, 1, EIO, false, true);
    char key[16];
    key_of(0, key); /* (an overwrite after the fault is armed: something left to make durable) */
    assert_int_equal(feox_insert(s, key, 15, key, 15, NULL, NULL), FEOX_OK);
    assert_int_not_equal(feox_close(s), FEOX_OK);
    feox_close_wait();
    feox_io_inject_reset();
    assert_false(ends_in_snapshot());
    check_every_key();
}

static void test_a_put_ending_the_file_is_no_footer(void **state)
{
    (void)state;
    feox_store *s = open_file();
    char key[16];
    key_of(7, key);
    /* Its 78 bytes end the file: the last 56 start 22 bytes in, so a footer's op byte falls on
     * the third byte of its timestamp (FORMAT.md, "Record"). */
    feox_write_opts at = {.timestamp_ns = (FTEST_EPOCH_NS & ~(UINT64_C(0xff) << 16)) |
                                          (uint64_t)FEOX_LOG_SNAPSHOT_FOOTER << 16};
    assert_int_equal(feox_insert(s, key, 15, key, 15, &at, NULL), FEOX_OK);
    assert_int_equal(feox_flush(s), FEOX_OK);
    assert_false(ends_in_snapshot());
    assert_int_equal(feox_close(s), FEOX_OK);
    feox_close_wait();
    assert_true(ends_in_snapshot());
}

static int setup(void **state)
{
    (void)state;
    memcpy(dir, DIR_TEMPLATE, sizeof dir);
    return ftest_temp_store_make(dir, path, sizeof path);
}

static int teardown(void **state)
{
    (void)state;
    feox_io_inject_reset();
    ftest_temp_store_remove(dir, path);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_flushed_close_ends_in_a_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_flush_writes_no_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_put_ending_the_file_is_no_footer, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
