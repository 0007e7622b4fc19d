/*
 * test_store_slab.c — loaded keys' blocks in slabs (engine/base/slab.h), seen from the store:
 *   small      a store file of fewer than FEOX_SLAB_MIN_BLOCKS keys loads without a slab;
 *   close      opening a larger one maps slabs for its keys; closing it gives every byte back
 *              (feox_slab_mapped_bytes as before the open), also with a custom allocator (the
 *              slab is then one allocation from it);
 *   nomem      that allocator failing the slab: the open fails with NOMEM, nothing leaks, and
 *              the file opens whole afterwards;
 *   handle     a value handle on a loaded version outlives the close: its slab stays mapped, the
 *              value reads back whole, and the release gives the slab back;
 *   overwrite  a file written with every key five times loads into the slab space of one copy
 *              of each key;
 *   sealed     overwriting and deleting every loaded key on the open store frees the slabs the
 *              load sealed (once the epoch reclaims the blocks): only the one kept for the next
 *              bulk load stays mapped until close.
 *   fork       a child of a process with a slab-loaded store open (and a handle on a loaded
 *              version) reads the handle, gets FEOX_ERR_FORKED from the store, closes its copy
 *              and releases the handle: no slab is given back in the child; the parent's store
 *              and handle are untouched, and its close and release give every slab back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/epoch.h"
#include "base/slab.h"
#include "failing_alloc.h"
#include "feox.h"
#include "feox_test_support.h"

#define VALUE_LEN 100
#define MIN FEOX_SLAB_MIN_BLOCKS /* keys loaded before slabs are used */

static char dir[] = "/tmp/feox_slab_XXXXXX";

/* The whole file loaded before the open returns (no index snapshot: these tests look at what
 * the load leaves, and at its failures, right after the open). */
static feox_store *open_at(const char *path)
{
    ftest_drop_index_snapshot(path);
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
    write_file(path, MIN + 20000, 1); /* 20000 keys in slabs: ~3.7 MB, two slabs */
    size_t before = feox_slab_mapped_bytes();
    feox_store *s = open_at(path);
    assert_int_equal(feox_slab_mapped_bytes(), before + 2 * feox_slab_bytes_each());
    expect_values(s, MIN + 20000, 0);
    assert_int_equal(feox_check(s), FEOX_OK);
    assert_int_equal(feox_close(s), FEOX_OK);
    assert_int_equal(feox_slab_mapped_bytes(), before);

    /* The same through an allocator from feox_set_allocator (which counts every call). */
    ftest_failing_alloc_install(false);
    ftest_fault.alloc_count = 0;
    s = open_at(path);
    assert_true(feox_slab_mapped_bytes() > before);
    expect_values(s, MIN + 20000, 0);
    assert_int_equal(feox_close(s), FEOX_OK);
    ftest_failing_alloc_remove();
    assert_int_equal(feox_slab_mapped_bytes(), before);
}

static void test_small_store_takes_no_slab(void **state)
{
    (void)state;
    char path[64];
    path_of(path, "small.feox");
    write_file(path, MIN, 1);
    size_t before = feox_slab_mapped_bytes();
    feox_store *s = open_at(path);
    assert_int_equal(feox_slab_mapped_bytes(), before);
    expect_values(s, MIN, 0);
    assert_int_equal(feox_close(s), FEOX_OK);
}

/* An allocator that refuses what a slab asks for (and counts the refusals). */
static int slab_refusals;
static void *refuse_slabs(size_t size)
{
    if (size == 2 * FEOX_SLAB_BYTES) {
        slab_refusals++;
        return NULL;
    }
    return malloc(size);
}

static void test_slab_allocation_failure_fails_the_open(void **state)
{
    (void)state;
    char path[64];
    path_of(path, "nomem.feox");
    write_file(path, MIN + 100, 1);
    size_t before = feox_slab_mapped_bytes();
    feox_set_allocator(refuse_slabs, realloc, free);
    feox_config cfg;
    ftest_config(&cfg, NULL);
    cfg.path = path;
    cfg.disable_compaction = true;
    feox_store *s = NULL;
    ftest_drop_index_snapshot(path);
    feox_err err = feox_open(&cfg, &s);
    feox_set_allocator(NULL, NULL, NULL);
    assert_int_equal(err, FEOX_ERR_NOMEM);
    assert_null(s);
    assert_int_equal(slab_refusals, 1);
    assert_int_equal(feox_slab_mapped_bytes(), before);
    s = open_at(path); /* the file is whole */
    expect_values(s, MIN + 100, 0);
    assert_int_equal(feox_close(s), FEOX_OK);
}

static void test_handle_outlives_close(void **state)
{
    (void)state;
    char path[64];
    path_of(path, "handle.feox");
    write_file(path, MIN + 1000, 1);
    size_t before = feox_slab_mapped_bytes();
    feox_store *s = open_at(path);
    char key[32];
    feox_value *v = NULL;
    assert_int_equal(feox_get_ref(s, key, key_of(key, MIN + 7), &v), FEOX_OK); /* in a slab */
    assert_int_equal(feox_close(s), FEOX_OK);
    assert_true(feox_slab_mapped_bytes() > before); /* the handle's version keeps its slab */
    uint8_t want[VALUE_LEN];
    value_of(want, MIN + 7, 0);
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
    write_file(path, MIN + 5000, 5);
    size_t before = feox_slab_mapped_bytes();
    feox_store *s = open_at(path);
    /* From the second round on every key's version comes from a slab: 13192 blocks, two slabs
     * (the replaced ones are reused, or their slabs emptied and given back) */
    assert_int_equal(feox_slab_mapped_bytes(), before + 2 * feox_slab_bytes_each());
    expect_values(s, MIN + 5000, 4);
    assert_int_equal(feox_check(s), FEOX_OK);
    assert_int_equal(feox_close(s), FEOX_OK);
    assert_int_equal(feox_slab_mapped_bytes(), before);
}

static void test_sealed_slabs_go_when_their_keys_do(void **state)
{
    (void)state;
    char path[64];
    path_of(path, "sealed.feox");
    write_file(path, MIN + 30000, 1); /* three slabs: two sealed, the last kept for the next load */
    size_t before = feox_slab_mapped_bytes();
    feox_store *s = open_at(path);
    assert_int_equal(feox_slab_mapped_bytes(), before + 3 * feox_slab_bytes_each());
    char key[32];
    uint8_t value[VALUE_LEN];
    for (int i = 0; i < MIN + 30000; i++) {
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

/* The child's part of test_fork_child_with_a_slab_loaded_store: 0 if all went as it should. */
static int child_of_fork(feox_store *inherited, feox_value *held)
{
    uint8_t want[VALUE_LEN];
    value_of(want, MIN + 9, 0);
    if (feox_value_size(held) != VALUE_LEN || memcmp(feox_value_data(held), want, VALUE_LEN))
        return 1;
    size_t before = feox_slab_mapped_bytes();
    char key[32];
    feox_value *v = NULL;
    if (feox_get_ref(inherited, key, key_of(key, MIN + 9), &v) != FEOX_ERR_FORKED)
        return 2;
    (void)feox_close(inherited);
    feox_value_release(held);
    /* the inherited store's slabs are not the child's to give back (nor any block of them) */
    return feox_slab_mapped_bytes() == before ? 0 : 3;
}

static void test_fork_child_with_a_slab_loaded_store(void **state)
{
    (void)state;
    char path[64];
    path_of(path, "fork.feox");
    write_file(path, MIN + 3000, 1);
    size_t before = feox_slab_mapped_bytes();
    feox_store *s = open_at(path);
    char key[32];
    feox_value *held = NULL;
    assert_int_equal(feox_get_ref(s, key, key_of(key, MIN + 9), &held), FEOX_OK); /* a slab's */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(child_of_fork(s, held));
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    expect_values(s, MIN + 3000, 0);
    uint8_t want[VALUE_LEN];
    value_of(want, MIN + 9, 0);
    assert_memory_equal(feox_value_data(held), want, VALUE_LEN);
    assert_int_equal(feox_close(s), FEOX_OK);
    feox_value_release(held);
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
    const char *names[] = {"small.feox",     "close.feox",  "nomem.feox", "handle.feox",
                           "overwrite.feox", "sealed.feox", "fork.feox"};
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
        cmocka_unit_test(test_small_store_takes_no_slab),
        cmocka_unit_test(test_close_gives_every_slab_back),
        cmocka_unit_test(test_slab_allocation_failure_fails_the_open),
        cmocka_unit_test(test_handle_outlives_close),
        cmocka_unit_test(test_overwritten_versions_reuse_blocks),
        cmocka_unit_test(test_sealed_slabs_go_when_their_keys_do),
        cmocka_unit_test(test_fork_child_with_a_slab_loaded_store),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
