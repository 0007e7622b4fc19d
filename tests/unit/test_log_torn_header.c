/*
 * test_log_torn_header.c — store files are created atomically (the name appears only once the
 * header is durable), so a file that is a cut-short or partly written header cannot come from a
 * crashed creation: it is not a feox store, and opening it is refused with FEOX_ERR_FORMAT and
 * leaves it byte for byte as it was (it used to be "repaired": a header written over it). A
 * foreign file or a damaged complete header is refused too, also untouched.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "feox.h"
#include "temp_store_dir.h"

#define HEADER_BYTES 64

static char dir[] = "/tmp/feox-torn-XXXXXX";
static char path[128];

static feox_err open_close(void)
{
    feox_config cfg;
    feox_config_init(&cfg);
    cfg.path = path;
    feox_store *s = NULL;
    feox_err err = feox_open(&cfg, &s);
    if (err == FEOX_OK) {
        assert_int_equal(feox_insert(s, "k", 1, "v", 1, NULL, NULL), FEOX_OK);
        assert_int_equal(feox_close(s), FEOX_OK);
    }
    return err;
}

static void write_file(const uint8_t *bytes, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, bytes, len), (ssize_t)len);
    close(fd);
}

static void real_header(uint8_t *header)
{
    unlink(path);
    feox_config cfg;
    feox_config_init(&cfg);
    cfg.path = path;
    feox_store *s = NULL;
    assert_int_equal(feox_open(&cfg, &s), FEOX_OK); /* a new, empty store: just the header */
    assert_int_equal(feox_close(s), FEOX_OK);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, header, HEADER_BYTES), HEADER_BYTES);
    close(fd);
}

/* The file at path holds exactly len bytes equal to want. */
static void assert_file_is(const uint8_t *want, size_t len)
{
    uint8_t got[HEADER_BYTES + 1];
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    ssize_t n = read(fd, got, sizeof got);
    close(fd);
    assert_int_equal(n, (ssize_t)len);
    if (len)
        assert_memory_equal(got, want, len);
}

static void test_header_prefixes_are_refused_untouched(void **state)
{
    (void)state;
    uint8_t header[HEADER_BYTES];
    real_header(header);
    for (size_t cut = 0; cut < HEADER_BYTES; cut++) {
        uint8_t image[HEADER_BYTES] = {0};
        memcpy(image, header, cut);
        write_file(image, HEADER_BYTES); /* a header prefix then zeros */
        feox_err err = open_close();
        if (memcmp(image, header, HEADER_BYTES) == 0) {
            /* The bytes cut off were zeros anyway (e.g. a checksum ending in 0x00, 1 run in 256):
             * this image is the whole valid header, which opens. */
            assert_int_equal(err, FEOX_OK);
            write_file(image, HEADER_BYTES);
        } else if (cut < 7) { /* the magic is incomplete (its 8th byte is a zero) */
            assert_int_equal(err, FEOX_ERR_FORMAT);
            assert_non_null(strstr(feox_error_detail(), "exists and is not a feox store"));
        } else { /* the magic is there: a damaged header (version 0 or a bad checksum) */
            assert_true(err == FEOX_ERR_FORMAT || err == FEOX_ERR_CORRUPT);
        }
        assert_file_is(image, HEADER_BYTES);
        write_file(image, cut); /* a header prefix alone (cut 0: an empty file) */
        assert_int_equal(open_close(), FEOX_ERR_FORMAT);
        assert_file_is(image, cut);
    }
}

static void test_foreign_and_damaged_files_are_refused(void **state)
{
    (void)state;
    uint8_t image[HEADER_BYTES] = {0};
    memcpy(image, "hello, this is not a feox file", 30);
    write_file(image, HEADER_BYTES);
    assert_int_equal(open_close(), FEOX_ERR_FORMAT);
    assert_file_is(image, HEADER_BYTES);
    write_file(image, 30);
    assert_int_equal(open_close(), FEOX_ERR_FORMAT);
    assert_file_is(image, 30);

    uint8_t header[HEADER_BYTES];
    real_header(header);
    header[20] ^= 0x01; /* a complete header with a flipped bit: damage, not a torn creation */
    write_file(header, HEADER_BYTES);
    assert_int_equal(open_close(), FEOX_ERR_CORRUPT);
    assert_file_is(header, HEADER_BYTES);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_prefixes_are_refused_untouched),
        cmocka_unit_test(test_foreign_and_damaged_files_are_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
