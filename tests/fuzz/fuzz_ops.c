/*
 * fuzz_ops.c — model-based libFuzzer target for the engine API (engine/feox.h).
 *
 * The input bytes are decoded into a sequence of operations on a fresh memory-mode store (TTL
 * sweeper off, an injected fake clock): insert (plain, explicit timestamp, TTL, absolute expiry,
 * KEEP_TTL, IF_ABSENT, with and without the created out), get / get_ref, get_size, contains,
 * get_ttl, delete, atomic_increment, compare_and_swap, json_patch with canned patches, range_query,
 * cursor walks (ascending and descending from every seek mode), update_ttl (0 too), clock advances,
 * len. A naive reference model (a sorted array of key / value / tag / timestamp / expiry) predicts
 * every return code and every result; after each operation the touched key and feox_len are
 * compared with it, and every few operations the whole store is (range scan + feox_check).
 * Any divergence prints what differed and aborts, which is how libFuzzer reports a finding.
 *
 * Keys are 1..3 bytes over the alphabet {'a', 'b', 0x00, 0xff}, so prefixes and high bytes are
 * common. An input whose first byte is 0xf0 or more runs with long keys instead: one of eight
 * prefixes ("", 3, 4, 15, 16, 17 and 20 bytes of 'p', 16 of 'p' then four 0x00) before 0..3
 * such bytes, so the ordered index's nodes share prefixes up to and past the 16 bytes a node
 * keeps, their 4-byte heads are equal or zero-padded, and keys are prefixes of one another. Random
 * values use bytes 'g'..'j' (never JSON); JSON values come only from the canned documents and from
 * patch results, and the patch oracle (cJSON, applying the few canned patches by hand) is consulted
 * only for values the model knows to be JSON or knows not to be. Seeds:
 * tests/fuzz/corpus/fuzz_ops/.
 */
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "feox.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NS_PER_SEC UINT64_C(1000000000)
#define START_NS UINT64_C(1704067200000000000) /* 2024-01-01T00:00:00Z */
#define MAX_OPS 4000
#define MAX_MODEL 1024
#define MAX_KEY 24
#define FULL_CHECK_EVERY 16

/* ---- failure reporting ------------------------------------------------------------------- */

static int op_index;

static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz_ops: op %d: ", op_index);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (detail: %s)\n", feox_error_detail());
    va_end(ap);
    abort();
}

static void expect_err(feox_err got, feox_err want, const char *what)
{
    if (got != want)
        fail("%s returned %s, model expects %s", what, feox_strerror(got), feox_strerror(want));
}

/* ---- input decoding ------------------------------------------------------------------------ */

typedef struct input {
    const uint8_t *data;
    size_t size, pos;
} input;

static bool input_done(const input *in)
{
    return in->pos >= in->size;
}
static uint8_t next_byte(input *in)
{
    return in->pos < in->size ? in->data[in->pos++] : 0;
}
static uint64_t next_u16(input *in)
{
    return (uint64_t)next_byte(in) | (uint64_t)next_byte(in) << 8;
}

typedef struct key_buf {
    unsigned char bytes[MAX_KEY];
    size_t len;
} key_buf;

static bool long_keys; /* the input's first byte is 0xf0 or more (see the top of the file) */

static const char *const key_prefixes[8] = {
    "",
    "ppp",
    "pppp",
    "ppppppppppppppp",
    "pppppppppppppppp",
    "ppppppppppppppppp",
    "pppppppppppppppppppp",
    "pppppppppppppppp\0\0\0\0",
};
static const size_t key_prefix_len[8] = {0, 3, 4, 15, 16, 17, 20, 20};

static key_buf next_key(input *in)
{
    static const unsigned char alphabet[4] = {'a', 'b', 0x00, 0xff};
    uint8_t b = next_byte(in);
    key_buf k = {.len = 1 + (size_t)(b % 3)};
    if (!long_keys) {
        for (size_t i = 0; i < k.len; i++)
            k.bytes[i] = alphabet[(b >> (2 + 2 * i)) & 3];
        return k;
    }
    uint8_t p = next_byte(in);
    size_t plen = key_prefix_len[p % 8], tail = (size_t)(p >> 3) % 4;
    if (plen == 0 && tail == 0)
        tail = 1; /* the empty key is invalid (op_invalid_key tries it) */
    memcpy(k.bytes, key_prefixes[p % 8], plen);
    for (size_t i = 0; i < tail; i++)
        k.bytes[plen + i] = alphabet[(b >> (2 * i)) & 3];
    k.len = plen + tail;
    return k;
}

/* ---- the fake clock ------------------------------------------------------------------------ */

static uint64_t fake_now_ns;
static uint64_t fake_clock(void *ctx)
{
    (void)ctx;
    return fake_now_ns;
}

/* ---- values --------------------------------------------------------------------------------- */

typedef enum value_kind {
    KIND_OPAQUE, /* bytes 'g'..'j' or empty: certainly not JSON */
    KIND_JSON,   /* a canned document or a patch result: certainly JSON */
    KIND_OTHER   /* counters, CAS payloads: anything; json_patch is not checked on these */
} value_kind;

static const char *const canned_docs[] = {
    "{\"a\":1,\"b\":[1,2]}", "[1,2,3]", "\"str\"", "{\"0\":true,\"a\":2}", "{}",
};
#define N_DOCS (sizeof canned_docs / sizeof canned_docs[0])

typedef struct value_buf {
    unsigned char bytes[64];
    size_t len;
    value_kind kind;
} value_buf;

static value_buf next_value(input *in)
{
    value_buf v = {.kind = KIND_OPAQUE};
    uint8_t b = next_byte(in);
    if (b < 64) {
        const char *doc = canned_docs[b % N_DOCS];
        v.len = strlen(doc);
        memcpy(v.bytes, doc, v.len);
        v.kind = KIND_JSON;
    } else if (b < 96) {
        int64_t n = (int64_t)(int8_t)next_byte(in);
        int64_t magnitude = n < 0 ? -n : n;
        if (b & 1)
            n = b & 2 ? INT64_MAX - magnitude : INT64_MIN + magnitude;
        for (int i = 0; i < 8; i++)
            v.bytes[i] = (unsigned char)((uint64_t)n >> (8 * i));
        v.len = 8;
        v.kind = KIND_OTHER;
    } else {
        v.len = b % 24;
        for (size_t i = 0; i < v.len; i++)
            v.bytes[i] = (unsigned char)('g' + next_byte(in) % 4);
    }
    return v;
}

/* ---- the reference model --------------------------------------------------------------------- */

typedef struct model_rec {
    unsigned char key[MAX_KEY];
    size_t key_len;
    unsigned char *value;
    size_t value_len;
    value_kind kind;
    uint32_t tag;
    uint64_t ts_ns;
    uint64_t expires_at_ns; /* 0 = none */
} model_rec;

static model_rec model[MAX_MODEL];
static size_t model_n;

/* memcmp order, a shorter prefix first. */
static int key_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

static bool rec_live(const model_rec *r)
{
    return !r->expires_at_ns || fake_now_ns <= r->expires_at_ns;
}

/* Index of key, or -(insertion point) - 1. */
static long model_find(const void *key, size_t len)
{
    size_t lo = 0, hi = model_n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = key_cmp(model[mid].key, model[mid].key_len, key, len);
        if (c == 0)
            return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -(long)lo - 1;
}

/* The live record of key, or NULL. */
static model_rec *model_live(const key_buf *k)
{
    long i = model_find(k->bytes, k->len);
    return i >= 0 && rec_live(&model[i]) ? &model[i] : NULL;
}

static void model_remove(const key_buf *k)
{
    long i = model_find(k->bytes, k->len);
    if (i < 0)
        return;
    free(model[i].value);
    memmove(&model[i], &model[i + 1], (model_n - (size_t)i - 1) * sizeof model[0]);
    model_n--;
}

static void model_put(const key_buf *k, const void *value, size_t len, value_kind kind,
                      uint32_t tag, uint64_t ts_ns, uint64_t expires_at_ns)
{
    long i = model_find(k->bytes, k->len);
    model_rec *r;
    if (i >= 0) {
        r = &model[i];
        free(r->value);
    } else {
        size_t at = (size_t)(-i - 1);
        if (model_n == MAX_MODEL)
            fail("model full");
        memmove(&model[at + 1], &model[at], (model_n - at) * sizeof model[0]);
        model_n++;
        r = &model[at];
        memcpy(r->key, k->bytes, k->len);
        r->key_len = k->len;
    }
    r->value = malloc(len ? len : 1);
    if (!r->value)
        fail("malloc");
    if (len)
        memcpy(r->value, value, len);
    r->value_len = len;
    r->kind = kind;
    r->tag = tag;
    r->ts_ns = ts_ns;
    r->expires_at_ns = expires_at_ns;
}

static void model_reset(void)
{
    for (size_t i = 0; i < model_n; i++)
        free(model[i].value);
    model_n = 0;
}

static uint64_t model_len(void)
{
    uint64_t n = 0;
    for (size_t i = 0; i < model_n; i++)
        n += rec_live(&model[i]);
    return n;
}

/* ---- checks against the model ------------------------------------------------------------- */

static void check_record(const model_rec *r, const void *value, size_t len,
                         const feox_record_info *info, const char *what)
{
    if (len != r->value_len || (len && memcmp(value, r->value, len)))
        fail("%s: value differs (got %zu bytes, model %zu)", what, len, r->value_len);
    if (info->value_len != r->value_len || info->tag != r->tag || info->timestamp_ns != r->ts_ns ||
        info->expires_at_ns != r->expires_at_ns)
        fail("%s: info differs (len %zu/%zu tag %u/%u ts %llu/%llu exp %llu/%llu)", what,
             info->value_len, r->value_len, info->tag, r->tag,
             (unsigned long long)info->timestamp_ns, (unsigned long long)r->ts_ns,
             (unsigned long long)info->expires_at_ns, (unsigned long long)r->expires_at_ns);
}

/* Compare one key through get, get_size and contains. */
static void check_key(feox_store *s, const key_buf *k)
{
    const model_rec *r = model_live(k);
    void *v = NULL;
    size_t n = 0;
    feox_record_info info;
    feox_err err = feox_get(s, k->bytes, k->len, &v, &n, &info);
    if (!r) {
        expect_err(err, FEOX_ERR_KEY_NOT_FOUND, "get");
        if (feox_contains(s, k->bytes, k->len))
            fail("contains says live, model says absent");
        return;
    }
    expect_err(err, FEOX_OK, "get");
    if (!v)
        fail("get returned a NULL value");
    check_record(r, v, n, &info, "get");
    feox_free(v);
    size_t size = 0;
    expect_err(feox_get_size(s, k->bytes, k->len, &size), FEOX_OK, "get_size");
    if (size != r->value_len)
        fail("get_size %zu, model %zu", size, r->value_len);
    if (!feox_contains(s, k->bytes, k->len))
        fail("contains says absent, model says live");
}

static void check_len(feox_store *s)
{
    uint64_t got = feox_len(s, 0), want = model_len();
    if (got != want)
        fail("feox_len %llu, model %llu", (unsigned long long)got, (unsigned long long)want);
    if (feox_is_empty(s) != (want == 0))
        fail("feox_is_empty disagrees with len %llu", (unsigned long long)want);
}

/* Range-scan state: the records visited must be the model's live ones in order. */
typedef struct scan_state {
    size_t next; /* model index to compare with next */
    size_t seen;
    const unsigned char *end;
    size_t end_len;
} scan_state;

/* Advance st->next to the next live model record (or model_n). */
static void skip_dead(scan_state *st)
{
    while (st->next < model_n && !rec_live(&model[st->next]))
        st->next++;
}

static int scan_visit(void *ctx, const void *key, size_t key_len, const void *value,
                      size_t value_len, const feox_record_info *info)
{
    scan_state *st = ctx;
    skip_dead(st);
    if (st->next >= model_n || (st->end && key_cmp(model[st->next].key, model[st->next].key_len,
                                                   st->end, st->end_len) > 0))
        fail("range_query visited a key the model does not have (len %zu)", key_len);
    const model_rec *r = &model[st->next];
    if (key_cmp(key, key_len, r->key, r->key_len))
        fail("range_query visited keys out of step with the model (at %zu)", st->seen);
    check_record(r, value, value_len, info, "range_query");
    st->next++;
    st->seen++;
    return 0;
}

/* The number of live model records in [start, end], capped at limit. */
static size_t model_range_count(const key_buf *start, const key_buf *end, size_t limit)
{
    size_t n = 0;
    for (size_t i = 0; i < model_n && n < limit; i++)
        if (rec_live(&model[i]) &&
            key_cmp(model[i].key, model[i].key_len, start->bytes, start->len) >= 0 &&
            key_cmp(model[i].key, model[i].key_len, end->bytes, end->len) <= 0)
            n++;
    return n;
}

static void check_range(feox_store *s, const key_buf *start, const key_buf *end, size_t limit)
{
    long at = model_find(start->bytes, start->len);
    scan_state st = {
        .next = at >= 0 ? (size_t)at : (size_t)(-at - 1), .end = end->bytes, .end_len = end->len};
    size_t visited = 0;
    expect_err(feox_range_query(s, start->bytes, start->len, end->bytes, end->len, limit,
                                scan_visit, &st, &visited),
               FEOX_OK, "range_query");
    size_t want = model_range_count(start, end, limit);
    if (visited != want || st.seen != want)
        fail("range_query visited %zu (reported %zu), model %zu", st.seen, visited, want);
}

static void check_everything(feox_store *s)
{
    key_buf lo = {.bytes = {0}, .len = 1}, hi = {.len = MAX_KEY};
    memset(hi.bytes, 0xff, sizeof hi.bytes);
    check_range(s, &lo, &hi, SIZE_MAX);
    check_len(s);
    expect_err(feox_check(s), FEOX_OK, "feox_check");
}

/* A cursor walk: seek, then step in one direction, comparing each position with the model. */
static void check_cursor(feox_store *s, input *in)
{
    uint8_t b = next_byte(in);
    feox_seek_mode mode = (feox_seek_mode)(b % 6);
    bool forward = (b >> 3) & 1;
    size_t steps = (size_t)(b >> 4);
    key_buf k = next_key(in);
    feox_cursor *c = NULL;
    expect_err(feox_cursor_open(s, &c), FEOX_OK, "cursor_open");
    expect_err(feox_cursor_seek(c, mode, k.bytes, k.len), FEOX_OK, "cursor_seek");

    /* Model position: index of the record the seek should land on, or -1. */
    long pos = -1;
    for (size_t i = 0; i < model_n; i++) {
        if (!rec_live(&model[i]))
            continue;
        int cmp = key_cmp(model[i].key, model[i].key_len, k.bytes, k.len);
        bool ok = mode == FEOX_SEEK_FIRST || mode == FEOX_SEEK_LAST ||
                  (mode == FEOX_SEEK_GE && cmp >= 0) || (mode == FEOX_SEEK_GT && cmp > 0) ||
                  (mode == FEOX_SEEK_LE && cmp <= 0) || (mode == FEOX_SEEK_LT && cmp < 0);
        if (!ok)
            continue;
        bool ascending_mode =
            mode == FEOX_SEEK_FIRST || mode == FEOX_SEEK_GE || mode == FEOX_SEEK_GT;
        if (ascending_mode) {
            if (pos < 0)
                pos = (long)i;
        } else {
            pos = (long)i;
        }
    }
    for (size_t step = 0;; step++) {
        if (pos < 0 || pos >= (long)model_n) {
            if (feox_cursor_valid(c))
                fail("cursor valid after step %zu, model says past the end", step);
            break;
        }
        if (!feox_cursor_valid(c))
            fail("cursor invalid at step %zu, model has a record", step);
        size_t klen = 0, vlen = 0;
        const void *key = feox_cursor_key(c, &klen);
        const void *value = feox_cursor_value(c, &vlen);
        feox_record_info info;
        feox_cursor_info(c, &info);
        const model_rec *r = &model[pos];
        if (key_cmp(key, klen, r->key, r->key_len))
            fail("cursor at step %zu is on another key than the model", step);
        check_record(r, value, vlen, &info, "cursor");
        if (step == steps)
            break;
        expect_err(forward ? feox_cursor_next(c) : feox_cursor_prev(c), FEOX_OK, "cursor step");
        do
            pos += forward ? 1 : -1;
        while (pos >= 0 && pos < (long)model_n && !rec_live(&model[pos]));
    }
    feox_cursor_close(c);
}

/* ---- write options -----------------------------------------------------------------------------
 */

typedef struct write_plan {
    feox_write_opts opts;
    bool use_opts;
    bool explicit_ts;
} write_plan;

/* Decode options for an insert-like call: timestamp, expiry flags, tag. */
static write_plan next_write_plan(input *in, const model_rec *live, bool with_expiry)
{
    write_plan p = {0};
    uint8_t b = next_byte(in);
    if (!(b & 1))
        return p; /* NULL options */
    p.use_opts = true;
    p.opts.tag = b & 2 ? next_byte(in) : 0;
    if (b & 4) {
        uint64_t base = live ? live->ts_ns : fake_now_ns;
        int delta = (int)(next_byte(in) % 5) - 2; /* -2..2 */
        p.opts.timestamp_ns = base + (uint64_t)(int64_t)delta;
        if (!p.opts.timestamp_ns)
            p.opts.timestamp_ns = 1;
        p.explicit_ts = true;
    }
    if (!with_expiry)
        return p;
    switch ((b >> 3) & 3) {
    case 1:
        p.opts.flags |= FEOX_WRITE_TTL;
        p.opts.ttl_secs = next_byte(in) % 8;
        break;
    case 2:
        p.opts.flags |= FEOX_WRITE_EXPIRES_AT;
        p.opts.expires_at_ns = (b & 0x20) ? 0 : fake_now_ns - NS_PER_SEC + next_u16(in) * 100000;
        break;
    case 3: p.opts.flags |= FEOX_WRITE_KEEP_TTL; break;
    default: break;
    }
    return p;
}

static uint64_t planned_expiry(const write_plan *p, const model_rec *live, bool keep_by_default)
{
    uint32_t f = p->use_opts ? p->opts.flags : 0;
    if (f & FEOX_WRITE_EXPIRES_AT)
        return p->opts.expires_at_ns;
    if (f & FEOX_WRITE_TTL)
        return p->opts.ttl_secs ? fake_now_ns + p->opts.ttl_secs * NS_PER_SEC : 0;
    if ((f & FEOX_WRITE_KEEP_TTL) || keep_by_default)
        return live ? live->expires_at_ns : 0;
    return 0;
}

/* Would the planned timestamp be refused? */
static bool planned_too_old(const write_plan *p, const model_rec *live)
{
    return p->explicit_ts && live && p->opts.timestamp_ns <= live->ts_ns;
}

/* The timestamp the store gave the new version: explicit, or automatic (>= now, > the old one).
 * Read back from the store; old_ts is the model's live version's (0 if none). */
static uint64_t written_ts(feox_store *s, const key_buf *k, const write_plan *p, uint64_t old_ts)
{
    feox_record_info info;
    void *v = NULL;
    size_t n = 0;
    feox_err err = feox_get(s, k->bytes, k->len, &v, &n, &info);
    feox_free(v);
    if (err == FEOX_ERR_KEY_NOT_FOUND)
        return 0; /* written already expired: the timestamp is unobservable */
    expect_err(err, FEOX_OK, "get after write");
    if (p && p->explicit_ts) {
        if (info.timestamp_ns != p->opts.timestamp_ns)
            fail("explicit timestamp %llu stored as %llu", (unsigned long long)p->opts.timestamp_ns,
                 (unsigned long long)info.timestamp_ns);
    } else if (info.timestamp_ns < fake_now_ns || (old_ts && info.timestamp_ns <= old_ts)) {
        fail("automatic timestamp %llu: now %llu, previous %llu",
             (unsigned long long)info.timestamp_ns, (unsigned long long)fake_now_ns,
             (unsigned long long)old_ts);
    }
    return info.timestamp_ns;
}

/* ---- operations ------------------------------------------------------------------------------ */

/* feox_insert, with FEOX_WRITE_IF_ABSENT if if_absent; *created checked if want_created (else
 * NULL is passed). */
static void op_insert(feox_store *s, input *in, bool if_absent, bool want_created)
{
    key_buf k = next_key(in);
    value_buf v = next_value(in);
    model_rec *live = model_live(&k);
    write_plan p = next_write_plan(in, live, true);
    if (if_absent) {
        p.opts.flags |= FEOX_WRITE_IF_ABSENT;
        p.use_opts = true;
    }
    const feox_write_opts *opts = p.use_opts ? &p.opts : NULL;
    bool flag = false;
    feox_err err =
        feox_insert(s, k.bytes, k.len, v.bytes, v.len, opts, want_created ? &flag : NULL);
    if (live && if_absent) {
        expect_err(err, FEOX_ERR_KEY_EXISTS, "insert IF_ABSENT on a live key");
        return;
    }
    if (planned_too_old(&p, live)) {
        expect_err(err, FEOX_ERR_OLDER_TIMESTAMP, "insert with an old timestamp");
        return;
    }
    expect_err(err, FEOX_OK, "insert");
    if (want_created && flag != (live == NULL))
        fail("insert created=%d, model says %d", flag, live == NULL);
    uint64_t old_ts = live ? live->ts_ns : 0;
    uint64_t expiry = planned_expiry(&p, live, false);
    uint32_t tag = p.use_opts ? p.opts.tag : 0;
    uint64_t ts = written_ts(s, &k, &p, old_ts);
    model_put(&k, v.bytes, v.len, v.kind, tag, ts ? ts : p.opts.timestamp_ns, expiry);
}

static void op_delete(feox_store *s, input *in)
{
    key_buf k = next_key(in);
    model_rec *live = model_live(&k);
    write_plan p = next_write_plan(in, live, false);
    feox_err err = feox_delete(s, k.bytes, k.len, p.use_opts ? &p.opts : NULL);
    if (!live) {
        expect_err(err, FEOX_ERR_KEY_NOT_FOUND, "delete of an absent key");
        return;
    }
    if (planned_too_old(&p, live)) {
        expect_err(err, FEOX_ERR_OLDER_TIMESTAMP, "delete with an old timestamp");
        return;
    }
    expect_err(err, FEOX_OK, "delete");
    model_remove(&k);
}

static int64_t saturating_add_i64(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b)
        return INT64_MAX;
    if (b < 0 && a < INT64_MIN - b)
        return INT64_MIN;
    return a + b;
}

/* Options for incr / cas / patch: maybe a timestamp, maybe a new tag, maybe a TTL. */
static write_plan next_rmw_plan(input *in, const model_rec *live)
{
    write_plan p = next_write_plan(in, live, true);
    p.opts.flags &= ~(uint32_t)FEOX_WRITE_KEEP_TTL;
    if (p.use_opts && (p.opts.tag & 1))
        p.opts.flags |= FEOX_WRITE_TAG;
    return p;
}

static uint32_t rmw_tag(const write_plan *p, const model_rec *live)
{
    if (p->use_opts && (p->opts.flags & FEOX_WRITE_TAG))
        return p->opts.tag;
    return live ? live->tag : 0;
}

static void op_increment(feox_store *s, input *in)
{
    key_buf k = next_key(in);
    int64_t delta = (int64_t)(int8_t)next_byte(in);
    if (delta == 127)
        delta = INT64_MAX;
    else if (delta == -128)
        delta = INT64_MIN;
    model_rec *live = model_live(&k);
    write_plan p = next_rmw_plan(in, live);
    int64_t result = 0;
    feox_err err =
        feox_atomic_increment(s, k.bytes, k.len, delta, p.use_opts ? &p.opts : NULL, &result);
    if (live && live->value_len != 8) {
        /* Both the value and the timestamp are wrong: either error is a right answer. */
        if (err == FEOX_ERR_OLDER_TIMESTAMP && planned_too_old(&p, live))
            return;
        expect_err(err, FEOX_ERR_INVALID_OPERATION, "increment of a non-counter");
        return;
    }
    if (planned_too_old(&p, live)) {
        expect_err(err, FEOX_ERR_OLDER_TIMESTAMP, "increment with an old timestamp");
        return;
    }
    expect_err(err, FEOX_OK, "increment");
    int64_t old = 0;
    if (live)
        for (int i = 0; i < 8; i++)
            old = (int64_t)((uint64_t)old | (uint64_t)live->value[i] << (8 * i));
    int64_t want = live ? saturating_add_i64(old, delta) : delta;
    if (result != want)
        fail("increment result %lld, model %lld", (long long)result, (long long)want);
    unsigned char bytes[8];
    for (int i = 0; i < 8; i++)
        bytes[i] = (unsigned char)((uint64_t)want >> (8 * i));
    uint64_t expiry = planned_expiry(&p, live, true);
    uint32_t tag = rmw_tag(&p, live);
    uint64_t ts = written_ts(s, &k, &p, live ? live->ts_ns : 0);
    model_put(&k, bytes, 8, KIND_OTHER, tag, ts ? ts : p.opts.timestamp_ns, expiry);
}

static void op_cas(feox_store *s, input *in)
{
    key_buf k = next_key(in);
    model_rec *live = model_live(&k);
    /* Expected: usually the current value (so swaps happen), sometimes a random one. */
    value_buf expected = next_value(in);
    uint8_t b = next_byte(in);
    if ((b & 3) && live && live->value_len <= sizeof expected.bytes) {
        memcpy(expected.bytes, live->value, live->value_len);
        expected.len = live->value_len;
    }
    value_buf replacement = next_value(in);
    write_plan p = next_rmw_plan(in, live);
    if (b & 4) {
        p.use_opts = true;
        p.opts.flags |= FEOX_WRITE_MATCH_TAG;
        p.opts.expected_tag = (b & 8) && live ? live->tag : next_byte(in);
    }
    bool swapped = true;
    feox_err err =
        feox_compare_and_swap(s, k.bytes, k.len, expected.bytes, expected.len, replacement.bytes,
                              replacement.len, p.use_opts ? &p.opts : NULL, &swapped);
    bool matches = live && live->value_len == expected.len &&
                   !memcmp(live->value, expected.bytes, expected.len) &&
                   (!(p.opts.flags & FEOX_WRITE_MATCH_TAG) || live->tag == p.opts.expected_tag);
    if (matches && planned_too_old(&p, live)) {
        expect_err(err, FEOX_ERR_OLDER_TIMESTAMP, "cas with an old timestamp");
        return;
    }
    if (err == FEOX_ERR_OLDER_TIMESTAMP && !matches)
        return; /* the timestamp may be judged before the comparison; nothing changed */
    expect_err(err, FEOX_OK, "cas");
    if (swapped != matches)
        fail("cas swapped=%d, model says %d", swapped, matches);
    if (!matches)
        return;
    uint64_t expiry = planned_expiry(&p, live, true);
    uint32_t tag = rmw_tag(&p, live);
    uint64_t ts = written_ts(s, &k, &p, live->ts_ns);
    model_put(&k, replacement.bytes, replacement.len, replacement.kind, tag,
              ts ? ts : p.opts.timestamp_ns, expiry);
}

static void op_update_ttl(feox_store *s, input *in, bool persist)
{
    key_buf k = next_key(in);
    uint64_t ttl = persist ? 0 : next_byte(in) % 6;
    model_rec *live = model_live(&k);
    feox_err err = feox_update_ttl(s, k.bytes, k.len, ttl, NULL); /* ttl 0 = persist */
    if (!live) {
        expect_err(err, FEOX_ERR_KEY_NOT_FOUND, "update_ttl of an absent key");
        return;
    }
    expect_err(err, FEOX_OK, "update_ttl");
    uint64_t old_ts = live->ts_ns;
    live->expires_at_ns = ttl ? fake_now_ns + ttl * NS_PER_SEC : 0;
    live->ts_ns = written_ts(s, &k, NULL, old_ts);
}

static void op_get_ttl(feox_store *s, input *in)
{
    key_buf k = next_key(in);
    model_rec *live = model_live(&k);
    uint64_t secs = 99;
    bool has = true;
    feox_err err = feox_get_ttl(s, k.bytes, k.len, &secs, &has);
    if (!live) {
        expect_err(err, FEOX_ERR_KEY_NOT_FOUND, "get_ttl of an absent key");
        return;
    }
    expect_err(err, FEOX_OK, "get_ttl");
    if (has != (live->expires_at_ns != 0))
        fail("get_ttl has_ttl=%d, model expiry %llu", has, (unsigned long long)live->expires_at_ns);
    if (has && secs != (live->expires_at_ns - fake_now_ns) / NS_PER_SEC)
        fail("get_ttl %llu s, model %llu s", (unsigned long long)secs,
             (unsigned long long)((live->expires_at_ns - fake_now_ns) / NS_PER_SEC));
}

static void op_get_ref(feox_store *s, input *in)
{
    key_buf k = next_key(in);
    model_rec *live = model_live(&k);
    feox_value *ref = NULL;
    feox_err err = feox_get_ref(s, k.bytes, k.len, &ref);
    if (!live) {
        expect_err(err, FEOX_ERR_KEY_NOT_FOUND, "get_ref of an absent key");
        return;
    }
    expect_err(err, FEOX_OK, "get_ref");
    /* The handle keeps this version even if the key changes meanwhile. */
    unsigned char before[64];
    size_t before_len = live->value_len < sizeof before ? live->value_len : sizeof before;
    memcpy(before, live->value, before_len);
    bool mutate = next_byte(in) & 1;
    if (mutate) {
        bool created;
        expect_err(feox_insert(s, k.bytes, k.len, "zz", 2, NULL, &created), FEOX_OK,
                   "insert under a value handle");
        uint64_t old_ts = live->ts_ns;
        model_put(&k, "zz", 2, KIND_OPAQUE, 0, written_ts(s, &k, NULL, old_ts), 0);
    }
    const void *data = feox_value_data(ref);
    size_t size = feox_value_size(ref);
    if (!data)
        fail("feox_value_data returned NULL");
    if (size != before_len || (size && memcmp(data, before, size)))
        fail("value handle bytes changed (%zu vs %zu)", size, before_len);
    feox_value_release(ref);
}

static void op_invalid_key(feox_store *s)
{
    bool created;
    void *v = NULL;
    size_t n;
    expect_err(feox_insert(s, "", 0, "x", 1, NULL, &created), FEOX_ERR_INVALID_KEY, "empty key");
    expect_err(feox_get(s, "", 0, &v, &n, NULL), FEOX_ERR_INVALID_KEY, "get empty key");
    expect_err(feox_delete(s, "", 0, NULL), FEOX_ERR_INVALID_KEY, "delete empty key");
    if (feox_contains(s, "", 0))
        fail("contains of the empty key");
}

/* ---- JSON patch oracle (only the canned patches) ------------------------------------------------
 */

static const char *const canned_patches[] = {
    "[{\"op\":\"add\",\"path\":\"/c\",\"value\":3}]",
    "[{\"op\":\"replace\",\"path\":\"/a\",\"value\":{\"x\":null}}]",
    ("[{\"op\":\"add\",\"path\":\"/b/-\",\"value\":9},"
     "{\"op\":\"test\",\"path\":\"/a\",\"value\":1}]"),
    "[{\"op\":\"remove\",\"path\":\"/0\"}]",
    "[{\"op\":\"replace\",\"path\":\"\",\"value\":[1,2,3]}]",
    "[{\"op\":\"test\",\"path\":\"/a\",\"value\":2}]",
    "[{\"op\":\"move\",\"from\":\"/a\",\"path\":\"/z\"}]",
    "{\"op\":\"add\"}",
};
#define N_PATCHES (sizeof canned_patches / sizeof canned_patches[0])

/* Apply canned patch i to doc (consumed); returns the result or NULL if the patch must fail. */
static cJSON *oracle_patch(cJSON *doc, size_t i)
{
    cJSON *member;
    switch (i) {
    case 0: /* add /c 3 */
        if (!cJSON_IsObject(doc))
            break;
        cJSON_DeleteItemFromObjectCaseSensitive(doc, "c");
        cJSON_AddItemToObject(doc, "c", cJSON_CreateNumber(3));
        return doc;
    case 1: /* replace /a {"x":null} */
        if (!cJSON_IsObject(doc) || !cJSON_GetObjectItemCaseSensitive(doc, "a"))
            break;
        {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddNullToObject(x, "x");
            cJSON_ReplaceItemInObjectCaseSensitive(doc, "a", x);
        }
        return doc;
    case 2: /* add /b/- 9, test /a == 1 */
        if (!cJSON_IsObject(doc))
            break;
        member = cJSON_GetObjectItemCaseSensitive(doc, "b");
        if (!cJSON_IsArray(member))
            break;
        cJSON_AddItemToArray(member, cJSON_CreateNumber(9));
        member = cJSON_GetObjectItemCaseSensitive(doc, "a");
        if (!cJSON_IsNumber(member) || member->valuedouble != 1)
            break;
        return doc;
    case 3: /* remove /0 */
        if (cJSON_IsArray(doc) && cJSON_GetArraySize(doc) > 0) {
            cJSON_DeleteItemFromArray(doc, 0);
            return doc;
        }
        if (cJSON_IsObject(doc) && cJSON_GetObjectItemCaseSensitive(doc, "0")) {
            cJSON_DeleteItemFromObjectCaseSensitive(doc, "0");
            return doc;
        }
        break;
    case 4: /* replace the root */ cJSON_Delete(doc); return cJSON_Parse("[1,2,3]");
    case 5: /* test /a == 2 */
        if (!cJSON_IsObject(doc))
            break;
        member = cJSON_GetObjectItemCaseSensitive(doc, "a");
        if (!cJSON_IsNumber(member) || member->valuedouble != 2)
            break;
        return doc;
    case 6: /* move /a -> /z */
        if (!cJSON_IsObject(doc) || !cJSON_GetObjectItemCaseSensitive(doc, "a"))
            break;
        member = cJSON_DetachItemFromObjectCaseSensitive(doc, "a");
        cJSON_DeleteItemFromObjectCaseSensitive(doc, "z");
        cJSON_AddItemToObject(doc, "z", member);
        return doc;
    default: /* not an array */ break;
    }
    cJSON_Delete(doc);
    return NULL;
}

static void op_json_patch(feox_store *s, input *in)
{
    key_buf k = next_key(in);
    size_t which = next_byte(in) % N_PATCHES;
    model_rec *live = model_live(&k);
    write_plan p = next_rmw_plan(in, live);
    if (live && live->kind == KIND_OTHER)
        return; /* the model cannot tell whether arbitrary bytes parse as JSON */
    const char *patch = canned_patches[which];
    char *result = NULL;
    size_t result_len = 0;
    feox_err err = feox_json_patch(s, k.bytes, k.len, patch, strlen(patch),
                                   p.use_opts ? &p.opts : NULL, &result, &result_len);
    if (!live) {
        expect_err(err, FEOX_ERR_KEY_NOT_FOUND, "json_patch of an absent key");
        return;
    }
    cJSON *want = NULL;
    if (live->kind == KIND_JSON) {
        cJSON *doc = cJSON_ParseWithLength((const char *)live->value, live->value_len);
        if (!doc)
            fail("oracle cannot parse a value the model says is JSON");
        want = oracle_patch(doc, which);
    }
    if (!want) {
        if (err == FEOX_ERR_OLDER_TIMESTAMP && planned_too_old(&p, live))
            return; /* both wrong: either error is a right answer */
        expect_err(err, FEOX_ERR_JSON_PATCH, "json_patch that must fail");
        return;
    }
    if (planned_too_old(&p, live)) {
        cJSON_Delete(want);
        expect_err(err, FEOX_ERR_OLDER_TIMESTAMP, "json_patch with an old timestamp");
        return;
    }
    expect_err(err, FEOX_OK, "json_patch");
    cJSON *got = cJSON_ParseWithLength(result, result_len);
    if (!got || !cJSON_Compare(got, want, true))
        fail("json_patch %zu result %.*s differs from the oracle", which, (int)result_len, result);
    cJSON_Delete(got);
    cJSON_Delete(want);
    uint64_t expiry = planned_expiry(&p, live, true);
    uint32_t tag = rmw_tag(&p, live);
    uint64_t ts = written_ts(s, &k, &p, live->ts_ns);
    model_put(&k, result, result_len, KIND_JSON, tag, ts ? ts : p.opts.timestamp_ns, expiry);
    feox_free(result);
}

static void op_range(feox_store *s, input *in)
{
    key_buf a = next_key(in), b = next_key(in);
    uint8_t l = next_byte(in);
    size_t limit = l < 200 ? l % 8 : SIZE_MAX;
    check_range(s, &a, &b, limit);
}

static void op_advance_clock(input *in)
{
    uint8_t b = next_byte(in);
    switch (b & 3) {
    case 0: fake_now_ns += 1; break;
    case 1: fake_now_ns += (uint64_t)(b >> 2) * 100000000; break; /* up to 6.3 s */
    case 2: fake_now_ns += NS_PER_SEC; break;
    default: fake_now_ns += (uint64_t)(b >> 2) * NS_PER_SEC; break;
    }
}

/* FUZZ_OPS_TRACE=1 prints each operation and its key (to read a reproducer). */
static bool trace;

static void trace_op(int op, const input *in)
{
    static const char *const names[18] = {"insert",
                                          "insert",
                                          "insert IF_ABSENT",
                                          "insert IF_ABSENT (created NULL)",
                                          "delete",
                                          "increment",
                                          "cas",
                                          "json_patch",
                                          "update_ttl",
                                          "update_ttl 0",
                                          "get_ttl",
                                          "get_ref",
                                          "range",
                                          "cursor",
                                          "clock",
                                          "clock",
                                          "invalid key",
                                          "check everything"};
    input peek = *in;
    key_buf k = next_key(&peek);
    fprintf(stderr, "op %d: %s key", op_index, names[op]);
    for (size_t i = 0; i < k.len; i++)
        fprintf(stderr, " %02x", k.bytes[i]);
    fprintf(stderr, " (now +%llu ns, next bytes", (unsigned long long)(fake_now_ns - START_NS));
    for (size_t i = peek.pos; i < peek.pos + 4 && i < peek.size; i++)
        fprintf(stderr, " %02x", peek.data[i]);
    fprintf(stderr, ")\n");
}

/* ---- the target ---------------------------------------------------------------------------- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    input in = {.data = data, .size = size};
    trace = getenv("FUZZ_OPS_TRACE") != NULL;
    long_keys = size > 0 && data[0] >= 0xf0;
    if (long_keys)
        in.pos = 1;
    fake_now_ns = START_NS;
    feox_config cfg;
    feox_config_init(&cfg);
    cfg.disable_ttl_sweeper = true;
    cfg.clock = fake_clock;
    feox_store *s = NULL;
    op_index = -1;
    expect_err(feox_open(&cfg, &s), FEOX_OK, "feox_open");
    for (op_index = 0; op_index < MAX_OPS && !input_done(&in); op_index++) {
        uint8_t op = next_byte(&in);
        size_t key_pos = in.pos;
        if (trace)
            trace_op(op % 18, &in);
        switch (op % 18) {
        case 0:
        case 1: op_insert(s, &in, false, true); break;
        case 2: op_insert(s, &in, true, true); break;
        case 3: op_insert(s, &in, true, false); break;
        case 4: op_delete(s, &in); break;
        case 5: op_increment(s, &in); break;
        case 6: op_cas(s, &in); break;
        case 7: op_json_patch(s, &in); break;
        case 8: op_update_ttl(s, &in, false); break;
        case 9: op_update_ttl(s, &in, true); break;
        case 10: op_get_ttl(s, &in); break;
        case 11: op_get_ref(s, &in); break;
        case 12: op_range(s, &in); break;
        case 13: check_cursor(s, &in); break;
        case 14:
        case 15: op_advance_clock(&in); break;
        case 16: op_invalid_key(s); break;
        default: check_everything(s); break;
        }
        /* Re-check the key the operation named (the first byte after the opcode). */
        input again = {.data = data, .size = size, .pos = key_pos};
        key_buf k = next_key(&again);
        check_key(s, &k);
        check_len(s);
        if (op_index % FULL_CHECK_EVERY == 0)
            check_everything(s);
    }
    check_everything(s);
    expect_err(feox_close(s), FEOX_OK, "feox_close");
    model_reset();
    return 0;
}
