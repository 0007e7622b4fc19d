/*
 * test_log_set_owner.c — feox_set_owner (issue 11 items 5 and 6: a renamed table's file follows
 * its owner): the new owner is in the header at once, survives reopen and compaction, and
 * feox_remove_store_file / feox_rename_store_file then act for the new owner only; a header
 * rewrite racing with writers, the flusher and compactions never leaves a bad header or loses a
 * record; memory stores and NULL behave as documented.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "feox.h"

static char dir[] = "/tmp/feox-setowner-XXXXXX";

/* dir/name into out. */
static const char *at(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
    return out;
}

static feox_err open_store(const char *path, const char *owner, bool compaction, feox_store **s)
{
    feox_config cfg;
    feox_config_init(&cfg);
    cfg.path = path;
    cfg.owner = owner;
    cfg.disable_compaction = !compaction;
    cfg.flush_interval_ms = 1;
    return feox_open(&cfg, s);
}

static uint64_t owner_of(const char *path)
{
    feox_file_info info;
    assert_int_equal(feox_store_file_info(path, &info), FEOX_OK);
    return info.owner_hash;
}

static void test_owner_changes_and_is_kept(void **state)
{
    (void)state;
    char path[256], moved[256];
    at(path, sizeof path, "a.feox");
    at(moved, sizeof moved, "b.feox");
    feox_store *s;
    assert_int_equal(open_store(path,
                                "db\x1f"
                                "a",
                                false, &s),
                     FEOX_OK);
    assert_int_equal(feox_insert(s, "k", 1, "v1", 2, NULL, NULL), FEOX_OK);
    feox_file_info before;
    assert_int_equal(feox_store_file_info(path, &before), FEOX_OK);
    assert_int_equal(before.owner_hash, feox_owner_hash("db\x1f"
                                                        "a"));

    assert_int_equal(feox_set_owner(s, "db\x1f"
                                       "b"),
                     FEOX_OK);
    feox_file_info after;
    assert_int_equal(feox_store_file_info(path, &after), FEOX_OK); /* header verifies */
    assert_int_equal(after.owner_hash, feox_owner_hash("db\x1f"
                                                       "b"));
    assert_int_equal(after.file_id, before.file_id);
    assert_int_equal(feox_set_owner(s, "db\x1f"
                                       "b"),
                     FEOX_OK); /* same owner: nothing to do */
    /* writes go on after the rewrite; compaction carries the new owner into the new file */
    assert_int_equal(feox_insert(s, "k2", 2, "v2", 2, NULL, NULL), FEOX_OK);
    assert_int_equal(feox_compact(s), FEOX_OK);
    assert_int_not_equal(owner_of(path), 0);
    assert_int_equal(feox_store_file_info(path, &after), FEOX_OK);
    assert_int_not_equal(after.file_id, before.file_id);
    assert_int_equal(after.owner_hash, feox_owner_hash("db\x1f"
                                                       "b"));
    assert_int_equal(feox_close(s), FEOX_OK);

    /* reopen (with another owner in the config, which an existing file ignores) */
    assert_int_equal(open_store(path,
                                "db\x1f"
                                "zzz",
                                false, &s),
                     FEOX_OK);
    assert_int_equal(owner_of(path), feox_owner_hash("db\x1f"
                                                     "b"));
    void *v;
    size_t len;
    assert_int_equal(feox_get(s, "k", 1, &v, &len, NULL), FEOX_OK);
    feox_free(v);
    assert_int_equal(feox_get(s, "k2", 2, &v, &len, NULL), FEOX_OK);
    feox_free(v);
    assert_int_equal(feox_close(s), FEOX_OK);

    /* the old owner may no longer remove or rename it; the new one may */
    assert_int_equal(feox_remove_store_file(path,
                                            "db\x1f"
                                            "a",
                                            FEOX_FILE_ALLOW_UNOWNED),
                     FEOX_ERR_NOT_OWNER);
    assert_int_equal(feox_rename_store_file(path, moved,
                                            "db\x1f"
                                            "a",
                                            "db\x1f"
                                            "a",
                                            0),
                     FEOX_ERR_NOT_OWNER);
    assert_int_equal(feox_rename_store_file(path, moved,
                                            "db\x1f"
                                            "b",
                                            "db\x1f"
                                            "b",
                                            0),
                     FEOX_OK);
    assert_int_equal(feox_remove_store_file(moved,
                                            "db\x1f"
                                            "b",
                                            0),
                     FEOX_OK);
    struct stat st;
    assert_int_not_equal(stat(moved, &st), 0);
    assert_int_not_equal(stat(path, &st), 0);
}

static void test_owner_can_be_cleared(void **state)
{
    (void)state;
    char path[256];
    at(path, sizeof path, "c.feox");
    feox_store *s;
    assert_int_equal(open_store(path,
                                "db\x1f"
                                "c",
                                false, &s),
                     FEOX_OK);
    assert_int_equal(feox_set_owner(s, NULL), FEOX_OK);
    assert_int_equal(owner_of(path), 0);
    assert_int_equal(feox_close(s), FEOX_OK);
    assert_int_equal(feox_remove_store_file(path,
                                            "db\x1f"
                                            "c",
                                            0),
                     FEOX_ERR_NOT_OWNER);
    assert_int_equal(feox_remove_store_file(path,
                                            "db\x1f"
                                            "c",
                                            FEOX_FILE_ALLOW_UNOWNED),
                     FEOX_OK);
}

static void test_memory_store_and_null(void **state)
{
    (void)state;
    feox_store *s;
    assert_int_equal(feox_open(NULL, &s), FEOX_OK);
    assert_int_equal(feox_set_owner(s, "x"), FEOX_OK);
    assert_int_equal(feox_close(s), FEOX_OK);
    assert_int_equal(feox_set_owner(NULL, "x"), FEOX_ERR_INVALID_ARGUMENT);
}

typedef struct writer_arg {
    feox_store *s;
    int id;
    int n;
} writer_arg;

static void *writer(void *p)
{
    writer_arg *w = p;
    char key[32], value[64];
    for (int i = 0; i < w->n; i++) {
        snprintf(key, sizeof key, "w%d-%d", w->id, i % 500);
        snprintf(value, sizeof value, "value %d of writer %d, padded to make the file grow", i,
                 w->id);
        if (feox_insert(w->s, key, strlen(key), value, strlen(value), NULL, NULL) != FEOX_OK)
            return (void *)1;
    }
    return NULL;
}

static void *compactor(void *p)
{
    for (int i = 0; i < 20; i++)
        if (feox_compact(p) != FEOX_OK)
            return (void *)1;
    return NULL;
}

/* set_owner while two writers append, the flusher writes and a thread compacts: every header
 * stays valid, the last owner set is the one recorded, and every key is there after reopen. */
static void test_races_with_writes_and_compaction(void **state)
{
    (void)state;
    char path[256];
    at(path, sizeof path, "race.feox");
    feox_store *s;
    assert_int_equal(open_store(path, "owner 0", true, &s), FEOX_OK);
    writer_arg w[2] = {{s, 0, 20000}, {s, 1, 20000}};
    pthread_t t[3];
    assert_int_equal(pthread_create(&t[0], NULL, writer, &w[0]), 0);
    assert_int_equal(pthread_create(&t[1], NULL, writer, &w[1]), 0);
    assert_int_equal(pthread_create(&t[2], NULL, compactor, s), 0);
    char owner[32];
    for (int i = 1; i <= 200; i++) {
        snprintf(owner, sizeof owner, "owner %d", i);
        assert_int_equal(feox_set_owner(s, owner), FEOX_OK);
        feox_file_info info;
        assert_int_equal(feox_store_file_info(path, &info), FEOX_OK);
        assert_int_equal(info.owner_hash, feox_owner_hash(owner));
    }
    for (int i = 0; i < 3; i++) {
        void *rc;
        assert_int_equal(pthread_join(t[i], &rc), 0);
        assert_null(rc);
    }
    assert_int_equal(feox_compact(s), FEOX_OK);
    assert_int_equal(feox_close(s), FEOX_OK);
    assert_int_equal(owner_of(path), feox_owner_hash("owner 200"));
    assert_int_equal(open_store(path, NULL, false, &s), FEOX_OK);
    assert_int_equal(feox_check(s), FEOX_OK);
    assert_int_equal(feox_len(s, 0), 1000);
    assert_int_equal(feox_close(s), FEOX_OK);
    assert_int_equal(feox_remove_store_file(path, "owner 200", 0), FEOX_OK);
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_owner_changes_and_is_kept),
        cmocka_unit_test(test_owner_can_be_cleared),
        cmocka_unit_test(test_memory_store_and_null),
        cmocka_unit_test(test_races_with_writes_and_compaction),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
