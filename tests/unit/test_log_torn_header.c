/*
 * test_log_torn_header.c — a crash while a store file is being created leaves at most a header
 * that is cut short or only partly written (the size may reach the disk before the bytes do).
 * Such a file holds no record, so opening it must write a new header and succeed, while a
 * foreign file or a damaged complete header is still refused. Regression test for the case the
 * power-loss simulation found: a 64-byte file holding a header prefix and zeros.
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

static void test_torn_creation_is_repaired(void **state)
{
    (void)state;
    uint8_t header[HEADER_BYTES];
    real_header(header);
    for (size_t cut = 0; cut < HEADER_BYTES; cut++) {
        uint8_t image[HEADER_BYTES] = {0};
        memcpy(image, header, cut);
        write_file(image, HEADER_BYTES); /* size reached the disk, bytes only up to cut */
        assert_int_equal(open_close(), FEOX_OK);
        write_file(image, cut); /* the size stopped at cut too */
        assert_int_equal(open_close(), FEOX_OK);
    }
}

static void test_foreign_and_damaged_files_are_refused(void **state)
{
    (void)state;
    uint8_t image[HEADER_BYTES] = {0};
    memcpy(image, "hello, this is not a feox file", 30);
    write_file(image, HEADER_BYTES);
    assert_int_equal(open_close(), FEOX_ERR_FORMAT);
    write_file(image, 30);
    assert_int_equal(open_close(), FEOX_ERR_FORMAT);

    uint8_t header[HEADER_BYTES];
    real_header(header);
    header[20] ^= 0x01; /* a complete header with a flipped bit: damage, not a torn creation */
    write_file(header, HEADER_BYTES);
    assert_int_equal(open_close(), FEOX_ERR_CORRUPT);
}

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof path, "%s/store.feox", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(path);
    rmdir(dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_torn_creation_is_repaired),
        cmocka_unit_test(test_foreign_and_damaged_files_are_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
