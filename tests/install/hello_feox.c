/*
 * hello_feox.c — a tiny program built by tests/install/run.sh against an installed feox, found
 * only through pkg-config (shared and static). It inserts, gets and increments in a memory store
 * and checks every result. Exits 0 and prints "hello_feox ok" on success.
 */
#include <feox.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int fail(const char *what, feox_err err)
{
    fprintf(stderr, "hello_feox: %s: %s %s\n", what, feox_strerror(err), feox_error_detail());
    return 1;
}

int main(void)
{
    feox_config cfg;
    feox_config_init(&cfg); /* path NULL: memory only */
    feox_store *s = NULL;
    feox_err err = feox_open(&cfg, &s);
    if (err != FEOX_OK)
        return fail("feox_open", err);

    bool created = false;
    err = feox_insert(s, "greeting", 8, "hello", 5, NULL, &created);
    if (err != FEOX_OK || !created)
        return fail("feox_insert", err);

    void *v = NULL;
    size_t n = 0;
    err = feox_get(s, "greeting", 8, &v, &n, NULL);
    if (err != FEOX_OK)
        return fail("feox_get", err);
    int same = n == 5 && memcmp(v, "hello", 5) == 0;
    feox_free(v);
    if (!same) {
        fprintf(stderr, "hello_feox: feox_get returned the wrong value\n");
        return 1;
    }

    int64_t result = 0;
    err = feox_atomic_increment(s, "counter", 7, 5, NULL, &result);
    if (err != FEOX_OK || result != 5)
        return fail("feox_atomic_increment(+5)", err);
    err = feox_atomic_increment(s, "counter", 7, -2, NULL, &result);
    if (err != FEOX_OK || result != 3)
        return fail("feox_atomic_increment(-2)", err);

    if (feox_len(s, 0) != 2 || feox_get(s, "missing", 7, &v, &n, NULL) != FEOX_ERR_KEY_NOT_FOUND) {
        fprintf(stderr, "hello_feox: wrong len or a missing key was found\n");
        return 1;
    }

    err = feox_close(s);
    if (err != FEOX_OK)
        return fail("feox_close", err);
    printf("hello_feox ok (feox %s)\n", FEOX_VERSION);
    return 0;
}
