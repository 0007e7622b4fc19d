/*
 * test_store_slab.c — loaded keys' blocks in slabs (engine/base/slab.h), seen from the store:
 *   close      opening a store file maps slabs for its keys; closing it gives every byte back
 *              (feox_slab_mapped_bytes as before the open), also with a custom allocator (the
 *              slab is then one allocation from it);
 *   handle     a value handle on a loaded version outlives the close: its slab stays mapped, the
 *              value reads back whole, and the release gives the slab back;
 *   overwrite  a file written with every key many times loads into the slab space of one copy
 *              of each key (one slab);
 *   sealed     overwriting and deleting every loaded key on the open store frees the slabs the
 *              load sealed (once the epoch reclaims the blocks): only the one kept for the next
 *              bulk load stays mapped until close.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/epoch.h"
#include "base/slab.h"
#include "failing_alloc.h"
#include "feox.h"
#include "feox_test_support.h"

#define VALUE_LEN 100

static char dir[] = "/tmp/feox_slab_XXXXXX";

static feox_store *open_at(const char *path)
{
    feox_config cfg;
    ftest_config(&cfg, NULL);
    cfg.path = path;
    cfg.disable_compaction = true;
    return ftest_open(&cfg);
}

static size_t key_of(char *out, int i)
{
    return (size_t)sprintf(out, "key%06d", i);
}

static void value_of(uint8_t *out, int i, int round)
{
    memset(out, (uint8_t)(i + round), VALUE_LEN);
    memcpy(out, &i, sizeof i);
}

/* A store file at path holding keys 0..keys-1, each written `rounds` times (the last wins). */
static void write_file(const char *path, int keys, int rounds)
{
    unlink(path);
    feox_store *s = open_at(path);
    char key[32];
    uint8_t value[VALUE_LEN];
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < keys; i++) {
            value_of(value, i, r);
            assert_int_equal(feox_insert(s, key, key_of(key, i), value, VALUE_LEN, NULL, NULL),
                             FEOX_OK);
        }
    }
    assert_int_equal(feox_close(s), FEOX_OK);
}

static void expect_values(feox_store *s, int keys, int round)
{
    char key[32];
    uint8_t want[VALUE_LEN];
    for (int i = 0; i < keys; i++) {
        void *got = NULL;
        size_t len = 0;
        value_of(want, i, round);
        assert_int_equal(feox_get(s, key, key_of(key, i), &got, &len, NULL), FEOX_OK);
        assert_int_equal(len, VALUE_LEN);
        assert_memory_equal(got, want, VALUE_LEN);
        feox_free(got);
    }
}

static void path_of(char *out, const char *name)
{
    sprintf(out, "%s/%s", dir, name);
}

static void test_close_gives_every_slab_back(void **state)
{
    (void)state;
    char path[64];
    path_of(path, "close.feox");
    write_file(path, 20000, 1); /* ~3.7 MB of blocks: two slabs */
    size_t before = feox_slab_mapped_bytes();
    feox_store *s = open_at(path);
    assert_true(feox_slab_mapped_bytes() >= before + 2 * feox_slab_bytes_each());
    expect_values(s, 20000, 0);
    assert_int_equal(feox_check(s), FEOX_OK);
    assert_int_equal(feox_close(s), FEOX_OK);
    assert_int_equal(feox_slab_mapped_bytes(), before);

    /* The same through an allocator from feox_set_allocator (which counts every call). */
    ftest_failing_alloc_install(false);
    ftest_fault.alloc_count = 0;
    s = open_at(path);
    assert_true(feox_slab_mapped_bytes() > before);
    expect_values(s, 20000, 0);
    assert_int_equal(feox_close(s), FEOX_OK);
    ftest_failing_alloc_remove();
    assert_int_equal(feox_slab_mapped_bytes(), before);
}

static void test_handle_outlives_close(void **state)
{
    (void)state;
    char path[64];
    path_of(path, "handle.feox");
    write_file(path, 1000, 1);
    size_t before = feox_slab_mapped_bytes();
    feox_store *s = open_at(path);
    char key[32];
    feox_value *v = NULL;
    assert_int_equal(feox_get_ref(s, key, key_of(key, 7), &v), FEOX_OK);
    assert_int_equal(feox_close(s), FEOX_OK);
    assert_true(feox_slab_mapped_bytes() > before); /* the handle's version keeps its slab */
    uint8_t want[VALUE_LEN];
    value_of(want, 7, 0);
    assert_int_equal(feox_value_size(v), VALUE_LEN);
    assert_memory_equal(feox_value_data(v), want, VALUE_LEN);
    feox_value_release(v);
    assert_int_equal(feox_slab_mapped_bytes(), before);
}

static void test_overwritten_versions_reuse_blocks(void **state)
{
    (void)state;
    char path[64];
    path_of(path, "overwrite.feox");
    write_file(path, 5000, 20); /* 100,000 records: ~18 MB of blocks without reuse */
    size_t before = feox_slab_mapped_bytes();
    feox_store *s = open_at(path);
    assert_int_equal(feox_slab_mapped_bytes(), before + feox_slab_bytes_each()); /* 5000 keys: one */
    expect_values(s, 5000, 19);
    assert_int_equal(feox_check(s), FEOX_OK);
    assert_int_equal(feox_close(s), FEOX_OK);
    assert_int_equal(feox_slab_mapped_bytes(), before);
}

static void test_sealed_slabs_go_when_their_keys_do(void **state)
{
    (void)state;
    char path[64];
    path_of(path, "sealed.feox");
    write_file(path, 30000, 1); /* three slabs: two sealed, the last kept for the next load */
    size_t before = feox_slab_mapped_bytes();
    feox_store *s = open_at(path);
    assert_int_equal(feox_slab_mapped_bytes(), before + 3 * feox_slab_bytes_each());
    char key[32];
    uint8_t value[VALUE_LEN];
    for (int i = 0; i < 30000; i++) {
        size_t len = key_of(key, i);
        if (i % 2) {
            assert_int_equal(feox_delete(s, key, len, NULL), FEOX_OK);
        } else {
            value_of(value, i, 1);
            assert_int_equal(feox_insert(s, key, len, value, VALUE_LEN, NULL, NULL), FEOX_OK);
        }
    }
    for (int i = 0; i < 100 && feox_slab_mapped_bytes() != before + feox_slab_bytes_each(); i++) {
        feox_epoch_reclaim();
        usleep(10000); /* the maintenance thread may be reclaiming too */
    }
    assert_int_equal(feox_slab_mapped_bytes(), before + feox_slab_bytes_each());
    assert_int_equal(feox_close(s), FEOX_OK);
    assert_int_equal(feox_slab_mapped_bytes(), before);
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    const char *names[] = {"close.feox", "handle.feox", "overwrite.feox", "sealed.feox"};
    char path[64], cmd[128];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        path_of(path, names[i]);
        unlink(path);
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir); /* the backend's side files, if any */
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_close_gives_every_slab_back),
        cmocka_unit_test(test_handle_outlives_close),
        cmocka_unit_test(test_overwritten_versions_reuse_blocks),
        cmocka_unit_test(test_sealed_slabs_go_when_their_keys_do),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
