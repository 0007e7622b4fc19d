/*
 * test_store_put_run.c — a backend's chunk of records in key order (the sink's put_ordered,
 * which feox_refresh offers) applied to a live store in batches (store_load.c's run): keys past
 * the largest one the store holds (no hash lookup, the ordered index filled at its right edge),
 * keys between a few the store holds (found above a lazy load's frontier),
 * keys the store already holds or that fall between its keys (per key, as the locked sink),
 * keys out of order, a del or plain put between ordered puts (applied in order), expired puts,
 * expiries (also a put of the largest key that expires before the run is applied), max_memory
 * (the locked sink), the full reload after a stale refresh, the memory
 * accounted (the same as the locked sink's), the slab blocks of re-sent keys used again, and
 * lock-free readers while a run is applied, and two threads refreshing at once (each run with its
 * own slab filler, one parked slab between them) under readers holding value handles. The
 * backend is scripted: each refresh calls the test's script with the sink.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/epoch.h"
#include "base/slab.h"
#include "failing_alloc.h"
#include "feox.h"
#include "feox_storage.h"
#include "feox_test_support.h"

/* What a refresh sends: the test's script, given the sink. */
typedef feox_err (*script_fn)(const feox_storage_sink *sink, void *arg);

typedef struct script_state {
    script_fn script;
    void *arg;
    bool use_plain_put; /* send put_ordered's records through put (the locked sink) */
    bool stale;         /* refresh answers FEOX_ERR_STALE: the script runs in the full reload */
    bool keep;          /* every refresh runs the script (set before threads refresh at once) */
} script_state;

static script_state script;

typedef struct script_storage {
    feox_storage base;
} script_storage;

static feox_err sc_open(const feox_storage_methods *methods, const feox_config *cfg,
                        const feox_storage_host *host, feox_storage **out)
{
    (void)cfg;
    (void)host;
    script_storage *st = calloc(1, sizeof *st);
    if (!st)
        return FEOX_ERR_NOMEM;
    st->base.methods = methods;
    *out = &st->base;
    return FEOX_OK;
}

/* At open the store starts empty (refresh sends everything); the full reload after a stale
 * refresh runs the script. */
static feox_err sc_load(feox_storage *st, void *txn, const feox_storage_sink *sink)
{
    (void)st;
    (void)txn;
    if (!script.script)
        return FEOX_OK;
    script_fn fn = script.script;
    if (!script.keep)
        script.script = NULL;
    return fn(sink, script.arg);
}

static const feox_storage_sink *real_sink;

static feox_err plain_put(void *ctx, const feox_storage_record *rec)
{
    return real_sink->put(ctx, rec);
}

static feox_err sc_refresh(feox_storage *st, void *txn, const feox_storage_sink *sink)
{
    (void)st;
    (void)txn;
    if (script.stale) {
        script.stale = false;
        return FEOX_ERR_STALE;
    }
    if (!script.script)
        return FEOX_OK;
    script_fn fn = script.script;
    if (!script.keep)
        script.script = NULL;
    if (script.use_plain_put) {
        real_sink = sink;
        feox_storage_sink plain = {
            .ctx = sink->ctx, .put = sink->put, .del = sink->del, .put_ordered = plain_put};
        return fn(&plain, script.arg);
    }
    return fn(sink, script.arg);
}

static const feox_storage_methods scripted = {.version = FEOX_STORAGE_VERSION,
                                              .name = "put-run-script",
                                              .caps = 0,
                                              .open = sc_open,
                                              .load = sc_load,
                                              .write = ftest_storage_write_nothing,
                                              .erase = ftest_storage_erase_nothing,
                                              .read_value = ftest_storage_read_value_corrupt,
                                              .refresh = sc_refresh,
                                              .check = ftest_storage_check_ok,
                                              .get_stats = ftest_storage_no_stats,
                                              .close = ftest_storage_close_free};

static feox_store *open_scripted(ftest_clock *clock, uint64_t max_memory)
{
    assert_int_equal(feox_storage_register(&scripted), FEOX_OK);
    feox_config cfg;
    ftest_config(&cfg, clock);
    cfg.storage = &scripted;
    cfg.max_memory = max_memory;
    memset(&script, 0, sizeof script);
    return ftest_open(&cfg);
}

/* ---- keys and values ---- */

#define KEY_LEN 8

static void key_of(uint32_t i, char out[KEY_LEN + 1])
{
    snprintf(out, KEY_LEN + 1, "k%07u", (unsigned)i);
}

/* value of key i at version v: "v<v>-<i>" padded to len bytes (up to 300: past the 256 bytes an
 * entry shares its allocation with) */
static size_t value_of(uint32_t i, uint32_t v, size_t len, char *out)
{
    int n = snprintf(out, len + 1, "v%u-%u", (unsigned)v, (unsigned)i);
    for (size_t j = (size_t)n; j < len; j++)
        out[j] = (char)('a' + (i + j) % 26);
    return len;
}

typedef struct send_range {
    uint32_t from, to, step; /* keys from, from + step, ... below to (step may be negative) */
    int32_t dir;
    uint32_t version;
    size_t value_len;
    uint64_t expires_at_ns;
    uint64_t ts_ns;
} send_range;

static feox_err send_keys(const feox_storage_sink *sink, const send_range *r)
{
    char key[KEY_LEN + 1], value[512];
    uint32_t n = (r->to - r->from + r->step - 1) / r->step;
    for (uint32_t k = 0; k < n; k++) {
        uint32_t i = r->dir < 0 ? r->to - 1 - k * r->step : r->from + k * r->step;
        key_of(i, key);
        size_t len = value_of(i, r->version, r->value_len, value);
        feox_storage_record rec = {.key = key,
                                   .key_len = KEY_LEN,
                                   .value = value,
                                   .value_len = (uint32_t)len,
                                   .tag = i,
                                   .ts_ns = r->ts_ns ? r->ts_ns : FTEST_EPOCH_NS,
                                   .expires_at_ns = r->expires_at_ns,
                                   .location = i + 1};
        feox_err err = sink->put_ordered(sink->ctx, &rec);
        if (err)
            return err;
    }
    return FEOX_OK;
}

static feox_err send_range_script(const feox_storage_sink *sink, void *arg)
{
    return send_keys(sink, arg);
}

static void refresh_with(feox_store *s, script_fn fn, void *arg)
{
    script.script = fn;
    script.arg = arg;
    assert_int_equal(feox_refresh(s, NULL), FEOX_OK);
}

static void assert_key(feox_store *s, uint32_t i, uint32_t version, size_t value_len)
{
    char key[KEY_LEN + 1], want[512];
    key_of(i, key);
    size_t len = value_of(i, version, value_len, want);
    feox_value *v = NULL;
    assert_int_equal(feox_get_ref(s, key, KEY_LEN, &v), FEOX_OK);
    assert_int_equal(feox_value_size(v), len);
    assert_memory_equal(feox_value_data(v), want, len);
    feox_value_release(v);
}

static void assert_absent(feox_store *s, uint32_t i)
{
    char key[KEY_LEN + 1];
    key_of(i, key);
    feox_value *v = NULL;
    assert_int_equal(feox_get_ref(s, key, KEY_LEN, &v), FEOX_ERR_KEY_NOT_FOUND);
}

/* Every key of the store in order, as a cursor sees them: exactly `want` (ascending). */
static void assert_keys_in_order(feox_store *s, const uint32_t *want, size_t n)
{
    feox_cursor *c = NULL;
    assert_int_equal(feox_cursor_open(s, &c), FEOX_OK);
    assert_int_equal(feox_cursor_seek(c, FEOX_SEEK_FIRST, NULL, 0), FEOX_OK);
    size_t at = 0;
    while (feox_cursor_valid(c)) {
        size_t len = 0;
        const void *key = feox_cursor_key(c, &len);
        char expect[KEY_LEN + 1];
        assert_true(at < n);
        key_of(want[at], expect);
        assert_int_equal(len, KEY_LEN);
        assert_memory_equal(key, expect, KEY_LEN);
        at++;
        assert_int_equal(feox_cursor_next(c), FEOX_OK);
    }
    feox_cursor_close(c);
    assert_int_equal(at, n);
}

/* ---- tests ---- */

/* Keys past the largest one (the store empty, then a second chunk after the first), values
 * shared with their entry (<= 256 bytes) and not (300 bytes), across several batches: every
 * key reads back, in order, the indexes agree (feox_check), and the memory accounted is what the
 * locked sink accounts for the same records. */
static void test_run_past_the_largest_key(void **state)
{
    (void)state;
    uint64_t memory[2];
    for (int plain = 0; plain < 2; plain++) {
        feox_store *s = open_scripted(NULL, 0);
        script.use_plain_put = plain;
        send_range first = {.from = 0, .to = 2500, .step = 1, .version = 1, .value_len = 100};
        refresh_with(s, send_range_script, &first);
        script.use_plain_put = plain;
        send_range second = {.from = 2500, .to = 5000, .step = 1, .version = 1, .value_len = 300};
        refresh_with(s, send_range_script, &second);
        assert_int_equal(feox_len(s, 0), 5000);
        assert_int_equal(feox_check(s), FEOX_OK);
        for (uint32_t i = 0; i < 5000; i += 7)
            assert_key(s, i, 1, i < 2500 ? 100 : 300);
        uint32_t *all = malloc(5000 * sizeof *all);
        assert_non_null(all);
        for (uint32_t i = 0; i < 5000; i++)
            all[i] = i;
        assert_keys_in_order(s, all, 5000);
        free(all);
        memory[plain] = feox_memory_usage(s);
        assert_int_equal(feox_close(s), FEOX_OK);
    }
    assert_int_equal(memory[0], memory[1]);
}

/* Keys the store already holds, and new keys between them (at or below its largest key): each
 * gets the run's version; keys the run does not send keep theirs. */
static void test_run_over_existing_keys(void **state)
{
    (void)state;
    feox_store *s = open_scripted(NULL, 0);
    send_range odd = {.from = 1, .to = 3001, .step = 2, .version = 1, .value_len = 50};
    refresh_with(s, send_range_script, &odd); /* 1, 3, ..., 2999 */
    send_range tail = {.from = 5000, .to = 5001, .step = 1, .version = 1, .value_len = 50};
    refresh_with(s, send_range_script, &tail); /* and 5000, above what comes next */
    send_range all = {.from = 0, .to = 4000, .step = 1, .version = 2, .value_len = 120};
    refresh_with(s, send_range_script, &all);
    assert_int_equal(feox_len(s, 0), 4001);
    assert_int_equal(feox_check(s), FEOX_OK);
    for (uint32_t i = 0; i < 4000; i++)
        assert_key(s, i, 2, 120);
    assert_key(s, 5000, 1, 50);
    assert_int_equal(feox_close(s), FEOX_OK);
}

/* A lazy load's case: the store holds the keys below a frontier (0..99) and a few keys found
 * far above it (700, 1500, 1501, 3999: point reads); the rest comes in runs: the keys between
 * the found ones are new, the found ones get the run's version (two found keys in a row, and one
 * that is a run's last key), the keys below the frontier keep theirs. */
static void test_run_between_keys_found_above(void **state)
{
    (void)state;
    feox_store *s = open_scripted(NULL, 0);
    send_range low = {.from = 0, .to = 100, .step = 1, .version = 1, .value_len = 50};
    refresh_with(s, send_range_script, &low);
    static const uint32_t found[] = {700, 1500, 1501, 3999};
    for (size_t i = 0; i < sizeof found / sizeof found[0]; i++) {
        send_range one = {.from = found[i], .to = found[i] + 1, .step = 1, .version = 1,
                          .value_len = 50};
        refresh_with(s, send_range_script, &one);
    }
    send_range rest = {.from = 100, .to = 4000, .step = 1, .version = 2, .value_len = 120};
    refresh_with(s, send_range_script, &rest);
    assert_int_equal(feox_len(s, 0), 4000);
    assert_int_equal(feox_check(s), FEOX_OK);
    for (uint32_t i = 0; i < 100; i++)
        assert_key(s, i, 1, 50);
    for (uint32_t i = 100; i < 4000; i++)
        assert_key(s, i, 2, 120);
    uint32_t *all = malloc(4000 * sizeof *all);
    assert_non_null(all);
    for (uint32_t i = 0; i < 4000; i++)
        all[i] = i;
    assert_keys_in_order(s, all, 4000);
    free(all);
    assert_int_equal(feox_close(s), FEOX_OK);
}

/* Runs that send every key the store has again, then a few new ones: each existing key's
 * block (made when its record came) is freed as the run applies it, and the run's slab takes it
 * back for its next record (base/slab.h), so the new keys' blocks do not end up spread over
 * slabs of dead blocks (20 runs of 5100 blocks: ~19 MB of blocks made, 2000 of them kept). */
static feox_err resend_and_add_script(const feox_storage_sink *sink, void *arg)
{
    const uint32_t *round = arg;
    send_range existing = {.from = 0, .to = 5000, .step = 1, .version = *round, .value_len = 100};
    send_range added = {.from = 100000 + *round * 100,
                        .to = 100000 + (*round + 1) * 100,
                        .step = 1,
                        .version = *round,
                        .value_len = 100};
    feox_err err = send_keys(sink, &existing);
    return err ? err : send_keys(sink, &added);
}

static void test_run_over_existing_keys_reuses_their_blocks(void **state)
{
    (void)state;
    size_t before = feox_slab_mapped_bytes();
    feox_store *s = open_scripted(NULL, 0);
    send_range first = {.from = 0, .to = 5000, .step = 1, .version = 0, .value_len = 100};
    refresh_with(s, send_range_script, &first);
    for (uint32_t round = 1; round <= 20; round++)
        refresh_with(s, resend_and_add_script, &round);
    for (int i = 0; i < 100; i++) /* the loaded keys' first blocks, retired by the overwrites */
        feox_epoch_reclaim();
    /* 3 here (a run starts reusing once it has freed a block); 9 without the reuse */
    assert_true(feox_slab_mapped_bytes() <= before + 4 * feox_slab_bytes_each());
    assert_int_equal(feox_len(s, 0), 5000 + 20 * 100);
    assert_int_equal(feox_check(s), FEOX_OK);
    for (uint32_t i = 0; i < 5000; i++)
        assert_key(s, i, 20, 100);
    assert_key(s, 100000 + 20 * 100 + 99, 20, 100);
    assert_int_equal(feox_close(s), FEOX_OK);
    assert_int_equal(feox_slab_mapped_bytes(), before);
}

/* A run that starts at the store's largest key, loaded with its entry: that key's write swaps
 * its entry out (retired, not to be read again by the run) and the keys after it are linked as
 * absent ones; under memory accounting the same as fresh keys. */
static void test_run_from_the_largest_key(void **state)
{
    (void)state;
    feox_store *s = open_scripted(NULL, 0);
    send_range low = {.from = 0, .to = 100, .step = 1, .version = 1, .value_len = 50};
    refresh_with(s, send_range_script, &low);
    uint64_t hundred = feox_memory_usage(s);
    for (int pass = 0; pass < 3; pass++) { /* the largest key is a loaded one each time */
        uint32_t from = 99 + (uint32_t)pass * 999, to = from + 1000;
        send_range run = {.from = from, .to = to, .step = 1, .version = 2, .value_len = 50};
        refresh_with(s, send_range_script, &run);
        assert_int_equal(feox_len(s, 0), to);
        assert_int_equal(feox_check(s), FEOX_OK);
        assert_key(s, from, 2, 50);
        assert_key(s, to - 1, 2, 50);
    }
    for (uint32_t i = 0; i < 99; i++)
        assert_key(s, i, 1, 50);
    /* 3097 keys of one size, whichever way each came in: 3097 / 100 of the first hundred. */
    assert_int_equal(feox_memory_usage(s) * 100, hundred * 3097);
    assert_int_equal(feox_close(s), FEOX_OK);
}

/* put_ordered with keys in descending order (each one out of order): still every key, right. */
static void test_run_out_of_order(void **state)
{
    (void)state;
    feox_store *s = open_scripted(NULL, 0);
    send_range down = {.from = 0, .to = 1500, .step = 1, .dir = -1, .version = 3, .value_len = 40};
    refresh_with(s, send_range_script, &down);
    assert_int_equal(feox_len(s, 0), 1500);
    assert_int_equal(feox_check(s), FEOX_OK);
    for (uint32_t i = 0; i < 1500; i++)
        assert_key(s, i, 3, 40);
    assert_int_equal(feox_close(s), FEOX_OK);
}

/* A del and a plain put between ordered puts apply after the ordered puts sent before them. */
static feox_err interleaved_script(const feox_storage_sink *sink, void *arg)
{
    (void)arg;
    send_range a = {.from = 0, .to = 100, .step = 1, .version = 1, .value_len = 30};
    feox_err err = send_keys(sink, &a);
    char key[KEY_LEN + 1], value[64];
    key_of(50, key);
    if (!err)
        err = sink->del(sink->ctx, key, KEY_LEN, FTEST_EPOCH_NS); /* 50 goes */
    key_of(60, key);
    size_t len = value_of(60, 9, 30, value);
    feox_storage_record rec = {.key = key,
                               .key_len = KEY_LEN,
                               .value = value,
                               .value_len = (uint32_t)len,
                               .ts_ns = FTEST_EPOCH_NS,
                               .location = 61};
    if (!err)
        err = sink->put(sink->ctx, &rec); /* 60 gets version 9 */
    send_range b = {.from = 100, .to = 200, .step = 1, .version = 1, .value_len = 30};
    if (!err)
        err = send_keys(sink, &b);
    return err;
}

static void test_run_with_del_and_put_between(void **state)
{
    (void)state;
    feox_store *s = open_scripted(NULL, 0);
    refresh_with(s, interleaved_script, NULL);
    assert_int_equal(feox_len(s, 0), 199);
    assert_int_equal(feox_check(s), FEOX_OK);
    assert_absent(s, 50);
    assert_key(s, 60, 9, 30);
    assert_key(s, 49, 1, 30);
    assert_key(s, 199, 1, 30);
    assert_int_equal(feox_close(s), FEOX_OK);
}

/* An expired put removes its key (in order with the run); a put with a later expiry is live
 * and expires with the clock (its TTL heap item is queued: the sweep removes it). */
static void test_run_expiry(void **state)
{
    (void)state;
    ftest_clock clock;
    ftest_clock_init(&clock, FTEST_EPOCH_NS + 100 * FTEST_SEC);
    feox_store *s = open_scripted(&clock, 0);
    send_range live = {.from = 0, .to = 300, .step = 1, .version = 1, .value_len = 20};
    refresh_with(s, send_range_script, &live);
    send_range expired = {.from = 100,
                          .to = 200,
                          .step = 1,
                          .version = 2,
                          .value_len = 20,
                          .expires_at_ns = FTEST_EPOCH_NS + 50 * FTEST_SEC};
    refresh_with(s, send_range_script, &expired);
    send_range later = {.from = 300,
                        .to = 400,
                        .step = 1,
                        .version = 1,
                        .value_len = 20,
                        .expires_at_ns = FTEST_EPOCH_NS + 200 * FTEST_SEC};
    refresh_with(s, send_range_script, &later);
    assert_int_equal(feox_len(s, 0), 300);
    assert_absent(s, 150);
    assert_key(s, 99, 1, 20);
    assert_key(s, 350, 1, 20);
    uint64_t ttl = 0;
    char key[KEY_LEN + 1];
    key_of(350, key);
    bool has_ttl = false;
    assert_int_equal(feox_get_ttl(s, key, KEY_LEN, &ttl, &has_ttl), FEOX_OK);
    assert_true(has_ttl);
    assert_int_equal(ttl, 100);
    assert_int_equal(feox_check(s), FEOX_OK);
    ftest_clock_advance(&clock, 150 * FTEST_SEC);
    assert_absent(s, 350);
    assert_int_equal(feox_len(s, 0), 200); /* the expired keys removed through their TTL items */
    assert_int_equal(feox_check(s), FEOX_OK);
    assert_int_equal(feox_close(s), FEOX_OK);
}

/* The store's largest key sent again with an expiry that passes before the run is applied (the
 * put expired meanwhile: applying it removes the key), then a key past it. Applying the first
 * retires the largest key's entry; the run compared the next key with that entry, read after
 * the entry could be freed. Here the retired bytes are brought to just under the epoch's inline
 * reclaim threshold, so retiring the entry frees it at once (the version it shares an
 * allocation with was retired just before): AddressSanitizer saw the read
 * (heap-use-after-free). The result is right either way: key 9 gone, key 10 there. */
#define INLINE_RECLAIM_BYTES (64u << 20) /* epoch.c's FEOX_EPOCH_INLINE_RECLAIM_BYTES */

typedef struct expire_largest_arg {
    ftest_clock *clock;
    uint64_t version_bytes; /* what retiring key 9's version adds to the retired bytes */
} expire_largest_arg;

static feox_err put_one(const feox_storage_sink *sink, uint32_t i, uint64_t expires_at_ns)
{
    send_range one = {.from = i,
                      .to = i + 1,
                      .step = 1,
                      .version = 2,
                      .value_len = 100,
                      .expires_at_ns = expires_at_ns};
    return send_keys(sink, &one);
}

static feox_err expire_largest_script(const feox_storage_sink *sink, void *p)
{
    expire_largest_arg *a = p;
    uint64_t now = ftest_clock_now(a->clock);
    feox_err err = put_one(sink, 9, now + 10 * FTEST_SEC); /* live when sent */
    ftest_clock_advance(a->clock, 20 * FTEST_SEC);         /* expired when applied */
    if (!err)
        err = put_one(sink, 10, 0);
    /* retired bytes: INLINE_RECLAIM_BYTES - the version's - 8, so that retiring the version stays
     * at or below the threshold and retiring the entry (more than 8 bytes) goes past it */
    feox_epoch_reclaim();
    uint64_t pending = feox_epoch_pending_bytes();
    uint64_t pad = INLINE_RECLAIM_BYTES - a->version_bytes - 8 - pending;
    void *filler = feox_mem_alloc(1);
    assert_non_null(filler);
    feox_epoch_retire_ptr(filler, pad);
    assert_int_equal(feox_epoch_pending_bytes(), INLINE_RECLAIM_BYTES - a->version_bytes - 8);
    return err;
}

static void test_run_expires_the_largest_key(void **state)
{
    (void)state;
    ftest_clock clock;
    ftest_clock_init(&clock, FTEST_EPOCH_NS + 100 * FTEST_SEC);
    feox_store *s = open_scripted(&clock, 0);
    send_range first = {.from = 0, .to = 10, .step = 1, .version = 1, .value_len = 100};
    refresh_with(s, send_range_script, &first); /* 0..9: 9 is the largest */
    /* the bytes a version of this shape adds when retired: key 8's, replaced */
    char key[KEY_LEN + 1], value[128];
    key_of(8, key);
    size_t len = value_of(8, 1, 100, value);
    feox_epoch_reclaim();
    uint64_t before = feox_epoch_pending_bytes();
    assert_int_equal(feox_insert(s, key, KEY_LEN, value, len, NULL, NULL), FEOX_OK);
    expire_largest_arg arg = {.clock = &clock,
                              .version_bytes = feox_epoch_pending_bytes() - before};
    assert_true(arg.version_bytes > 0);
    refresh_with(s, expire_largest_script, &arg);
    assert_absent(s, 9);
    assert_key(s, 10, 2, 100);
    assert_int_equal(feox_len(s, 0), 10);
    assert_int_equal(feox_check(s), FEOX_OK);
    feox_epoch_reclaim();
    assert_int_equal(feox_close(s), FEOX_OK);
}

/* With max_memory the records go through the locked sink (values may leave memory): the same
 * result. */
static void test_run_with_max_memory(void **state)
{
    (void)state;
    feox_store *s = open_scripted(NULL, 64u << 20);
    send_range all = {.from = 0, .to = 2000, .step = 1, .version = 1, .value_len = 100};
    refresh_with(s, send_range_script, &all);
    assert_int_equal(feox_len(s, 0), 2000);
    assert_int_equal(feox_check(s), FEOX_OK);
    for (uint32_t i = 0; i < 2000; i += 13)
        assert_key(s, i, 1, 100);
    assert_int_equal(feox_close(s), FEOX_OK);
}

/* A full reload (the refresh was stale): the store empties its indexes, and the reload's records,
 * sent with put_ordered, are all it holds afterwards. */
static void test_run_in_full_reload(void **state)
{
    (void)state;
    feox_store *s = open_scripted(NULL, 0);
    send_range before = {.from = 0, .to = 3000, .step = 1, .version = 1, .value_len = 80};
    refresh_with(s, send_range_script, &before);
    script.stale = true;
    send_range reload = {.from = 1000, .to = 4000, .step = 1, .version = 2, .value_len = 80};
    refresh_with(s, send_range_script, &reload);
    assert_int_equal(feox_len(s, 0), 3000);
    assert_int_equal(feox_check(s), FEOX_OK);
    assert_absent(s, 999);
    for (uint32_t i = 1000; i < 4000; i += 3)
        assert_key(s, i, 2, 80);
    assert_int_equal(feox_close(s), FEOX_OK);
}

/* Lock-free readers while runs are applied: every key a reader finds has a version the backend
 * sent (never a torn or foreign one), a scan sees keys in strictly ascending order, and after
 * the refresh every key is there. */
#define READERS 2
#define CONCURRENT_KEYS 20000

typedef struct reader_arg {
    feox_store *s;
    _Atomic bool *stop;
    int bad;
    unsigned long found;
} reader_arg;

static void *reader(void *p)
{
    reader_arg *a = p;
    ftest_rng rng;
    ftest_rng_seed(&rng, (uint64_t)(uintptr_t)a);
    while (!atomic_load_explicit(a->stop, memory_order_acquire)) {
        uint32_t i = (uint32_t)ftest_rng_below(&rng, CONCURRENT_KEYS);
        char key[KEY_LEN + 1], want[512];
        key_of(i, key);
        feox_value *v = NULL;
        feox_err err = feox_get_ref(a->s, key, KEY_LEN, &v);
        if (err == FEOX_OK) {
            size_t len = value_of(i, i % 2 ? 1 : 2, 60, want);
            if (feox_value_size(v) != len || memcmp(feox_value_data(v), want, len) != 0)
                a->bad++;
            a->found++;
            feox_value_release(v);
        } else if (err != FEOX_ERR_KEY_NOT_FOUND) {
            a->bad++;
        }
        feox_cursor *c = NULL;
        if (feox_cursor_open(a->s, &c) != FEOX_OK) {
            a->bad++;
            continue;
        }
        char prev[KEY_LEN] = {0};
        bool have_prev = false;
        if (feox_cursor_seek(c, FEOX_SEEK_GE, key, KEY_LEN) == FEOX_OK) {
            for (int n = 0; n < 64 && feox_cursor_valid(c); n++) {
                size_t len = 0;
                const void *k = feox_cursor_key(c, &len);
                if (len != KEY_LEN || (have_prev && memcmp(prev, k, KEY_LEN) >= 0))
                    a->bad++;
                memcpy(prev, k, KEY_LEN);
                have_prev = true;
                if (feox_cursor_next(c) != FEOX_OK)
                    break;
            }
        }
        feox_cursor_close(c);
    }
    return NULL;
}

static void test_run_with_concurrent_readers(void **state)
{
    (void)state;
    feox_store *s = open_scripted(NULL, 0);
    /* odd keys first (version 1), then everything in one refresh: even keys new (version 2),
     * odd keys sent again with version 1's bytes (the fallback path, under the readers) */
    send_range odd = {.from = 1, .to = CONCURRENT_KEYS, .step = 2, .version = 1, .value_len = 60};
    refresh_with(s, send_range_script, &odd);
    _Atomic bool stop = false;
    reader_arg args[READERS];
    pthread_t threads[READERS];
    for (int i = 0; i < READERS; i++) {
        args[i] = (reader_arg){.s = s, .stop = &stop};
        assert_int_equal(pthread_create(&threads[i], NULL, reader, &args[i]), 0);
    }
    for (int round = 0; round < 2; round++) {
        send_range even = {.from = (uint32_t)round,
                           .to = CONCURRENT_KEYS,
                           .step = 2,
                           .version = 2 - (uint32_t)round,
                           .value_len = 60};
        refresh_with(s, send_range_script, &even);
    }
    atomic_store_explicit(&stop, true, memory_order_release);
    for (int i = 0; i < READERS; i++) {
        assert_int_equal(pthread_join(threads[i], NULL), 0);
        assert_int_equal(args[i].bad, 0);
    }
    assert_int_equal(feox_len(s, 0), CONCURRENT_KEYS);
    assert_int_equal(feox_check(s), FEOX_OK);
    for (uint32_t i = 0; i < CONCURRENT_KEYS; i += 11)
        assert_key(s, i, i % 2 ? 1 : 2, 60);
    assert_int_equal(feox_close(s), FEOX_OK);
}

/* Two threads refresh the same store at once, each run sending every key again (past
 * FEOX_SLAB_MIN_BLOCKS: from slabs, the store's parked one taken by whichever run comes first),
 * while a reader holds value handles across the runs: every handle keeps its bytes, the store
 * is whole after, and its close gives every slab back. */
#define TWIN_KEYS 9000
#define TWIN_ROUNDS 6

static feox_err send_all_script(const feox_storage_sink *sink, void *arg)
{
    (void)arg;
    send_range all = {.from = 0, .to = TWIN_KEYS, .step = 1, .version = 1, .value_len = 60};
    return send_keys(sink, &all);
}

static void *refresher(void *p)
{
    feox_store *s = p;
    for (int round = 0; round < TWIN_ROUNDS; round++)
        if (feox_refresh(s, NULL) != FEOX_OK)
            return p; /* non-NULL: failed */
    return NULL;
}

static void *handle_reader(void *p)
{
    reader_arg *a = p;
    ftest_rng rng;
    ftest_rng_seed(&rng, 7);
    feox_value *held[16] = {0};
    uint32_t held_key[16] = {0};
    for (unsigned n = 0; !atomic_load_explicit(a->stop, memory_order_acquire); n++) {
        unsigned slot = n % 16;
        if (held[slot]) {
            char want[512];
            size_t len = value_of(held_key[slot], 1, 60, want);
            if (feox_value_size(held[slot]) != len ||
                memcmp(feox_value_data(held[slot]), want, len) != 0)
                a->bad++;
            feox_value_release(held[slot]);
            held[slot] = NULL;
        }
        char key[KEY_LEN + 1];
        held_key[slot] = (uint32_t)ftest_rng_below(&rng, TWIN_KEYS);
        key_of(held_key[slot], key);
        if (feox_get_ref(a->s, key, KEY_LEN, &held[slot]) != FEOX_OK)
            a->bad++;
    }
    for (unsigned slot = 0; slot < 16; slot++)
        if (held[slot])
            feox_value_release(held[slot]);
    return NULL;
}

static void test_two_threads_refresh_at_once(void **state)
{
    (void)state;
    size_t before = feox_slab_mapped_bytes();
    feox_store *s = open_scripted(NULL, 0);
    refresh_with(s, send_all_script, NULL); /* the keys, and a slab parked */
    script.script = send_all_script;
    script.keep = true;
    _Atomic bool stop = false;
    reader_arg arg = {.s = s, .stop = &stop};
    pthread_t reader_thread, refreshers[2];
    assert_int_equal(pthread_create(&reader_thread, NULL, handle_reader, &arg), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&refreshers[i], NULL, refresher, s), 0);
    for (int i = 0; i < 2; i++) {
        void *failed = NULL;
        assert_int_equal(pthread_join(refreshers[i], &failed), 0);
        assert_null(failed);
    }
    atomic_store_explicit(&stop, true, memory_order_release);
    assert_int_equal(pthread_join(reader_thread, NULL), 0);
    assert_int_equal(arg.bad, 0);
    script.keep = false;
    assert_int_equal(feox_len(s, 0), TWIN_KEYS);
    assert_int_equal(feox_check(s), FEOX_OK);
    for (uint32_t i = 0; i < TWIN_KEYS; i += 97)
        assert_key(s, i, 1, 60);
    assert_int_equal(feox_close(s), FEOX_OK);
    assert_int_equal(feox_slab_mapped_bytes(), before);
}

/* Allocation failures while a run is held and applied: the version and entry of a put, the run's
 * arrays, a TTL heap item, a hash map that grows, an ordered-index node, a standalone copy for a
 * key the store holds. For each allocation failing in turn (once, then from there on; past the
 * 256th, every 4th): the refresh fails with NOMEM or succeeds, the indexes agree, every key has
 * the version it had or the one sent (none half applied), the count is right, and once every key
 * is deleted the memory accounted is the empty store's (nothing counted twice or never). The
 * refresh then succeeds. */
#define FAULT_KEYS 1100 /* two runs: past FEOX_PUT_RUN_MAX (1024) */

static bool check_after_fault(feox_store *s, unsigned long n, bool applied_all)
{
    char key[KEY_LEN + 1];
    uint64_t present = 0;
    bool ok = true;
    for (uint32_t i = 0; i < FAULT_KEYS; i++) {
        key_of(i, key);
        char want1[512], want2[512];
        size_t len1 = value_of(i, 1, 100, want1), len2 = value_of(i, 2, 100, want2);
        feox_value *v = NULL;
        feox_err err = feox_get_ref(s, key, KEY_LEN, &v);
        if (err == FEOX_ERR_KEY_NOT_FOUND) {
            if (i % 2 || applied_all) {
                print_message("alloc %lu: key %u lost\n", n, (unsigned)i);
                ok = false;
            }
            continue;
        }
        assert_int_equal(err, FEOX_OK);
        present++;
        bool old =
            i % 2 && feox_value_size(v) == len1 && memcmp(feox_value_data(v), want1, len1) == 0;
        bool sent = feox_value_size(v) == len2 && memcmp(feox_value_data(v), want2, len2) == 0;
        if (!(sent || (old && !applied_all))) {
            print_message("alloc %lu: key %u has a foreign version\n", n, (unsigned)i);
            ok = false;
        }
        feox_value_release(v);
    }
    if (feox_len(s, 0) != present) {
        print_message("alloc %lu: feox_len %llu, %llu keys found\n", n,
                      (unsigned long long)feox_len(s, 0), (unsigned long long)present);
        ok = false;
    }
    if (feox_check(s) != FEOX_OK) {
        print_message("alloc %lu: feox_check: %s\n", n, feox_error_detail());
        ok = false;
    }
    return ok;
}

/* Delete every key: what is accounted then is what an empty store accounts. */
static uint64_t memory_when_emptied(feox_store *s)
{
    char key[KEY_LEN + 1];
    for (uint32_t i = 0; i < FAULT_KEYS; i++) {
        key_of(i, key);
        feox_err err = feox_delete(s, key, KEY_LEN, NULL);
        assert_true(err == FEOX_OK || err == FEOX_ERR_KEY_NOT_FOUND);
    }
    assert_int_equal(feox_len(s, 0), 0);
    return feox_memory_usage(s);
}

/* One round with allocation n failing (0: none). Returns whether the failure was reached. */
static bool run_with_failure_at(unsigned long n, uint64_t empty_memory, bool *ok)
{
    ftest_clock clock;
    ftest_clock_init(&clock, FTEST_EPOCH_NS + 100 * FTEST_SEC);
    feox_store *s = open_scripted(&clock, 0);
    send_range odd = {.from = 1, .to = FAULT_KEYS, .step = 2, .version = 1, .value_len = 100};
    refresh_with(s, send_range_script, &odd);
    send_range all = {.from = 0,
                      .to = FAULT_KEYS,
                      .step = 1,
                      .version = 2,
                      .value_len = 100,
                      .expires_at_ns = FTEST_EPOCH_NS + 1000 * FTEST_SEC};
    script.script = send_range_script;
    script.arg = &all;
    ftest_fault.alloc_count = 0;
    ftest_fault.fail_at = n;
    ftest_fault.failure_injected = false;
    ftest_fault.injecting = true;
    feox_err err = feox_refresh(s, NULL);
    ftest_fault.injecting = false;
    bool reached = ftest_fault.failure_injected;
    if (err != FEOX_OK && (!reached || err != FEOX_ERR_NOMEM)) {
        print_message("alloc %lu: refresh returned %s (%s)\n", n, feox_strerror(err),
                      feox_error_detail());
        *ok = false;
    }
    *ok = check_after_fault(s, n, err == FEOX_OK) && *ok;
    refresh_with(s, send_range_script, &all); /* no failure now: it must work */
    *ok = check_after_fault(s, n, true) && *ok;
    uint64_t memory = memory_when_emptied(s);
    if (memory != empty_memory) {
        print_message("alloc %lu: %llu bytes accounted once empty, not %llu\n", n,
                      (unsigned long long)memory, (unsigned long long)empty_memory);
        *ok = false;
    }
    assert_int_equal(feox_close(s), FEOX_OK);
    return reached;
}

static void fault_loop(bool persistent)
{
    feox_store *empty = open_scripted(NULL, 0);
    uint64_t empty_memory = feox_memory_usage(empty);
    assert_int_equal(feox_close(empty), FEOX_OK);
    ftest_failing_alloc_install(persistent);
    bool ok = true;
    unsigned long n = 1;
    /* every allocation of the first runs' start, then every 4th (the cost of the loop is the
     * number of rounds times the keys: a key's version, copy, heap item and node come round
     * again and again) */
    while (run_with_failure_at(n, empty_memory, &ok))
        n += n < 256 ? 1 : 4;
    ftest_failing_alloc_remove();
    assert_true(n > 1000); /* the refresh really allocates (about two per key) */
    assert_true(ok);
}

static void test_run_allocation_failures(void **state)
{
    (void)state;
    fault_loop(false);
    fault_loop(true);
}

/* sink->expect before a large run sizes the hash index at once: the run's keys then grow no
 * shard's map (counted as the engine's allocations while the keys are sent: without the hint each
 * of the 64 shards doubles its map several times on the way to 20,000 keys). */
enum { EXPECT_KEYS = 20000 };

static feox_err expect_then_send_script(const feox_storage_sink *sink, void *arg)
{
    const bool *hint = arg;
    if (*hint)
        sink->expect(sink->ctx, EXPECT_KEYS);
    ftest_fault.alloc_count = 0;
    ftest_fault.injecting = true;
    send_range all = {.from = 0, .to = EXPECT_KEYS, .step = 1, .version = 1, .value_len = 100};
    feox_err err = send_keys(sink, &all);
    if (!err)
        err = sink->apply_ordered(sink->ctx);
    ftest_fault.injecting = false;
    return err;
}

static void test_run_after_expect_grows_no_map(void **state)
{
    (void)state;
    unsigned long allocations[2];
    ftest_failing_alloc_install(false);
    ftest_fault.fail_at = 0; /* count only */
    for (int hint = 0; hint < 2; hint++) {
        feox_store *s = open_scripted(NULL, 0);
        bool with_hint = hint;
        refresh_with(s, expect_then_send_script, &with_hint);
        allocations[hint] = ftest_fault.alloc_count;
        assert_int_equal(feox_len(s, 0), EXPECT_KEYS);
        assert_int_equal(feox_check(s), FEOX_OK);
        for (uint32_t i = 0; i < EXPECT_KEYS; i += 97)
            assert_key(s, i, 1, 100);
        assert_int_equal(feox_close(s), FEOX_OK);
    }
    ftest_failing_alloc_remove();
    assert_true(allocations[1] + 64 * 3 <= allocations[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_past_the_largest_key),
        cmocka_unit_test(test_run_over_existing_keys),
        cmocka_unit_test(test_run_from_the_largest_key),
        cmocka_unit_test(test_run_out_of_order),
        cmocka_unit_test(test_run_with_del_and_put_between),
        cmocka_unit_test(test_run_expiry),
        cmocka_unit_test(test_run_expires_the_largest_key),
        cmocka_unit_test(test_run_with_max_memory),
        cmocka_unit_test(test_run_in_full_reload),
        cmocka_unit_test(test_run_over_existing_keys_reuses_their_blocks),
        cmocka_unit_test(test_run_with_concurrent_readers),
        cmocka_unit_test(test_two_threads_refresh_at_once),
        cmocka_unit_test(test_run_allocation_failures),
        cmocka_unit_test(test_run_after_expect_grows_no_map),
        cmocka_unit_test(test_run_between_keys_found_above),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
