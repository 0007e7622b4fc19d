/* feox_test_support.c — see feox_test_support.h. */
#include "feox_test_support.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

void ftest_clock_init(ftest_clock *c, uint64_t now_ns)
{
    atomic_init(&c->now_ns, now_ns);
}

uint64_t ftest_clock_read(void *ctx)
{
    return atomic_load(&((ftest_clock *)ctx)->now_ns);
}

uint64_t ftest_clock_now(ftest_clock *c)
{
    return atomic_load(&c->now_ns);
}

void ftest_clock_set(ftest_clock *c, uint64_t now_ns)
{
    atomic_store(&c->now_ns, now_ns);
}

void ftest_clock_advance(ftest_clock *c, uint64_t delta_ns)
{
    atomic_fetch_add(&c->now_ns, delta_ns);
}

void ftest_config(feox_config *cfg, ftest_clock *clock)
{
    feox_config_init(cfg);
    cfg->disable_ttl_sweeper = true;
    if (clock) {
        cfg->clock = ftest_clock_read;
        cfg->clock_ctx = clock;
    }
}

feox_store *ftest_open(const feox_config *cfg)
{
    feox_store *s = NULL;
    feox_err err = feox_open(cfg, &s);
    if (err != FEOX_OK || !s) {
        fprintf(stderr, "ftest_open: feox_open failed: %s (%s)\n", feox_strerror(err),
                feox_error_detail());
        abort();
    }
    return s;
}

void ftest_drop_index_snapshot(const char *path)
{
    /* The footer: a 56-byte record (magic "FXR1", op 4) whose 8-byte key at offset 40 is the
     * snapshot's offset; both end the file. */
    enum { FOOTER = 56 };
    uint8_t footer[FOOTER];
    struct stat st;
    int fd = open(path, O_RDWR);
    if (fd < 0)
        return;
    if (fstat(fd, &st) == 0 && st.st_size >= 64 + FOOTER &&
        pread(fd, footer, FOOTER, st.st_size - FOOTER) == FOOTER &&
        memcmp(footer, "FXR1", 4) == 0 && footer[4] == 4) {
        uint64_t at = 0;
        for (int i = 7; i >= 0; i--)
            at = at << 8 | footer[40 + i];
        if (at >= 64 && at < (uint64_t)st.st_size && ftruncate(fd, (off_t)at) != 0)
            abort();
    }
    close(fd);
}

void ftest_rng_seed(ftest_rng *r, uint64_t seed)
{
    r->state = seed;
}

uint64_t ftest_rng_next(ftest_rng *r)
{
    uint64_t z = (r->state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

uint64_t ftest_rng_below(ftest_rng *r, uint64_t bound)
{
    return ftest_rng_next(r) % bound;
}

void ftest_put_i64(void *out8, int64_t v)
{
    uint64_t u = (uint64_t)v;
    unsigned char *p = out8;
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(u >> (8 * i));
}

int64_t ftest_get_i64(const void *in8)
{
    const unsigned char *p = in8;
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u |= (uint64_t)p[i] << (8 * i);
    return (int64_t)u;
}

int64_t ftest_read_counter(feox_store *s, const char *key)
{
    void *v = NULL;
    size_t n = 0;
    feox_err err = feox_get(s, key, strlen(key), &v, &n, NULL);
    if (err != FEOX_OK || n != 8) {
        fprintf(stderr, "ftest_read_counter(%s): %s, %zu bytes\n", key, feox_strerror(err), n);
        abort();
    }
    int64_t r = ftest_get_i64(v);
    feox_free(v);
    return r;
}

int ftest_wait_child(int pid)
{
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    if (WIFSIGNALED(status)) {
        fprintf(stderr, "child %d was killed by signal %d\n", pid, WTERMSIG(status));
        return 1000 + WTERMSIG(status);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

feox_err ftest_storage_write_nothing(feox_storage *st, void *txn, const feox_storage_record *rec,
                                     const feox_storage_record *replaced, uint64_t *location,
                                     uint64_t *seq)
{
    (void)st;
    (void)txn;
    (void)rec;
    (void)replaced;
    *location = 0;
    *seq = 0;
    return FEOX_OK;
}

feox_err ftest_storage_erase_nothing(feox_storage *st, void *txn, const void *key, uint32_t key_len,
                                     uint64_t ts_ns, const feox_storage_record *replaced,
                                     uint64_t *seq)
{
    (void)st;
    (void)txn;
    (void)key;
    (void)key_len;
    (void)ts_ns;
    (void)replaced;
    *seq = 0;
    return FEOX_OK;
}

feox_err ftest_storage_read_value_corrupt(feox_storage *st, void *txn, const void *key,
                                          uint32_t key_len, uint64_t location, void *buf,
                                          uint32_t value_len)
{
    (void)st;
    (void)txn;
    (void)key;
    (void)key_len;
    (void)location;
    (void)buf;
    (void)value_len;
    return FEOX_ERR_CORRUPT;
}

feox_err ftest_storage_check_ok(feox_storage *st, char *detail, size_t detail_len)
{
    (void)st;
    (void)detail;
    (void)detail_len;
    return FEOX_OK;
}

void ftest_storage_no_stats(feox_storage *st, feox_stats *out)
{
    (void)st;
    (void)out;
}

feox_err ftest_storage_close_free(feox_storage *st)
{
    free(st);
    return FEOX_OK;
}
