/*
 * test_store_model.c — model-based random test of the store.
 *
 * Random operations (insert with every option, insert_if_absent, get, get_ref, get_size,
 * contains, delete, atomic_increment, compare_and_swap, range_query, cursor walks, get_ttl,
 * update_ttl/persist, and a fake clock moving forward so TTLs expire) run against the store and
 * against a naive reference: a sorted array of records. Every result is compared after EVERY op
 * (return code, outputs, record metadata, and feox_len), and the whole content is dumped and
 * compared at the end. Keys are drawn from ~2000 short byte strings over an alphabet with 0x00,
 * 0x7f, 0x80 and 0xff, so collisions, shared prefixes and unsigned ordering are exercised.
 *
 * Ops per seed: FEOX_MODEL_OPS if set, else 1,000,000; builds with AddressSanitizer default to
 * 250,000 (they are ~5x slower, and `make test` runs them without any environment). A failure
 * prints the seed and the op number; FEOX_MODEL_SEED=<n> runs that seed alone.
 *
 * Contract points the model encodes (feox.h / SPEC §1): automatic timestamp = max(now, the live
 * record's + 1) (>= now on a key that was absent); an explicit one must be strictly newer than the
 * live record's; expired records are absent everywhere (and so carry no timestamp floor); plain
 * insert clears the TTL and sets tag opts->tag; incr/cas keep TTL and tag unless told otherwise; a
 * new counter has no TTL and tag 0; expiry = now + ttl, expired when now > expires_at.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "feox.h"
#include "feox_test_support.h"

#define N_KEYS 2000
/* feox_len is compared after every LEN_CHECK_MASK + 1 ops (and in every full dump); 0 = every
 * op. Raise it if feox_len ever gets expensive with the sweeper off. */
#define LEN_CHECK_MASK 0
#define MAX_K 6
#define MAX_V 24
#define SEC FTEST_SEC

typedef struct mkey {
    uint8_t b[MAX_K];
    uint8_t len;
} mkey;

typedef struct mrec {
    mkey key;
    uint8_t val[MAX_V];
    uint8_t vlen;
    uint32_t tag;
    uint64_t ts, expires;
} mrec;

typedef struct model {
    mrec recs[N_KEYS]; /* sorted by key, only live records */
    size_t n;
} model;

static mkey keyspace[N_KEYS];
static model M;
static ftest_clock mclock;
static ftest_rng rng;
static uint64_t cur_seed, cur_op;
static char cur_desc[160];

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            char msg_[256];                                                                        \
            snprintf(msg_, sizeof(msg_), __VA_ARGS__);                                             \
            fail_msg("seed %llu op %llu (%s): %s [%s:%d]", (unsigned long long)cur_seed,           \
                     (unsigned long long)cur_op, cur_desc, msg_, __FILE__, __LINE__);              \
        }                                                                                          \
    } while (0)

#define CHECK_ERR(got, want)                                                                       \
    CHECK((got) == (want), "returned %s (%d), model expects %s (%d)", feox_strerror(got),          \
          (int)(got), feox_strerror(want), (int)(want))

static int key_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    size_t n = al < bl ? al : bl;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c;
    return al < bl ? -1 : al > bl;
}

/* Index of the first record with key >= k (lower bound). */
static size_t model_lower(const uint8_t *k, size_t kl)
{
    size_t lo = 0, hi = M.n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (key_cmp(M.recs[mid].key.b, M.recs[mid].key.len, k, kl) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static mrec *model_find(const mkey *k)
{
    size_t i = model_lower(k->b, k->len);
    if (i < M.n && key_cmp(M.recs[i].key.b, M.recs[i].key.len, k->b, k->len) == 0)
        return &M.recs[i];
    return NULL;
}

static mrec *model_put(const mkey *k)
{
    size_t i = model_lower(k->b, k->len);
    if (i < M.n && key_cmp(M.recs[i].key.b, M.recs[i].key.len, k->b, k->len) == 0)
        return &M.recs[i];
    memmove(&M.recs[i + 1], &M.recs[i], (M.n - i) * sizeof(mrec));
    M.n++;
    memset(&M.recs[i], 0, sizeof(mrec));
    M.recs[i].key = *k;
    return &M.recs[i];
}

static void model_remove(const mkey *k)
{
    size_t i = model_lower(k->b, k->len);
    assert_true(i < M.n);
    memmove(&M.recs[i], &M.recs[i + 1], (M.n - i - 1) * sizeof(mrec));
    M.n--;
}

/* Drop every record expired at now (called whenever the clock moves). */
static void model_expire(uint64_t now)
{
    size_t w = 0;
    for (size_t r = 0; r < M.n; r++)
        if (!(M.recs[r].expires && now > M.recs[r].expires))
            M.recs[w++] = M.recs[r];
    M.n = w;
}

static void make_keyspace(void)
{
    static const uint8_t alphabet[8] = {0x00, 0x01, 'a', 'b', 0x7f, 0x80, 0xfe, 0xff};
    ftest_rng kr;
    ftest_rng_seed(&kr, 0x6b657973);
    size_t n = 0;
    while (n < N_KEYS) {
        mkey k;
        k.len = (uint8_t)(1 + ftest_rng_below(&kr, MAX_K));
        for (size_t i = 0; i < k.len; i++)
            k.b[i] = alphabet[ftest_rng_below(&kr, 8)];
        bool dup = false;
        for (size_t j = 0; j < n && !dup; j++)
            dup = keyspace[j].len == k.len && memcmp(keyspace[j].b, k.b, k.len) == 0;
        if (!dup)
            keyspace[n++] = k;
    }
}

static const mkey *random_key(void)
{
    return &keyspace[ftest_rng_below(&rng, N_KEYS)];
}

static size_t random_value(uint8_t *out)
{
    size_t len = ftest_rng_below(&rng, 5) == 0 ? 8 : (size_t)ftest_rng_below(&rng, MAX_V + 1);
    for (size_t i = 0; i < len; i++)
        out[i] = (uint8_t)ftest_rng_next(&rng);
    if (len == 8 && ftest_rng_below(&rng, 2) == 0) /* small counters, to see real sums */
        ftest_put_i64(out, (int64_t)ftest_rng_below(&rng, 2001) - 1000);
    return len;
}

static void describe_key(const char *op, const mkey *k)
{
    int n = snprintf(cur_desc, sizeof(cur_desc), "%s key=", op);
    for (size_t i = 0; i < k->len && n < (int)sizeof(cur_desc) - 3; i++)
        n += snprintf(cur_desc + n, sizeof(cur_desc) - (size_t)n, "%02x", k->b[i]);
}

static uint64_t now_ns(void)
{
    return ftest_clock_now(&mclock);
}

/* The automatic timestamp the store must draw for a write to a key whose live record is r. */
static uint64_t auto_ts(const mrec *r)
{
    uint64_t now = now_ns();
    return r && r->ts >= now ? r->ts + 1 : now;
}

/* A key absent from the model (never written, deleted or expired) that an automatic write just
 * created: its timestamp must be at least now. An expired-but-unswept version may still raise
 * the floor in the store (harmless), so the model adopts the store's timestamp here. */
static uint64_t created_auto_ts(feox_store *s, const mkey *k)
{
    feox_value *v = NULL;
    feox_err err = feox_get_ref(s, k->b, k->len, &v);
    CHECK(err == FEOX_OK, "key just created is not readable: %s", feox_strerror(err));
    feox_record_info info;
    feox_value_info(v, &info);
    feox_value_release(v);
    CHECK(info.timestamp_ns >= now_ns(), "automatic timestamp %llu < now %llu",
          (unsigned long long)info.timestamp_ns, (unsigned long long)now_ns());
    return info.timestamp_ns;
}

/* Compares a record seen through the API with the model's. */
static void check_record(const mrec *r, const void *value, size_t vlen,
                         const feox_record_info *info)
{
    CHECK(vlen == r->vlen, "value length %zu, model %u", vlen, r->vlen);
    CHECK(vlen == 0 || memcmp(value, r->val, vlen) == 0, "value bytes differ");
    if (info) {
        CHECK(info->value_len == r->vlen, "info.value_len %zu, model %u", info->value_len, r->vlen);
        CHECK(info->tag == r->tag, "tag %u, model %u", info->tag, r->tag);
        CHECK(info->timestamp_ns == r->ts, "timestamp %llu, model %llu",
              (unsigned long long)info->timestamp_ns, (unsigned long long)r->ts);
        CHECK(info->expires_at_ns == r->expires, "expires_at %llu, model %llu",
              (unsigned long long)info->expires_at_ns, (unsigned long long)r->expires);
    }
}

/* Random write options: tag, maybe TTL / EXPIRES_AT, maybe an explicit timestamp. */
typedef struct opt_choice {
    feox_write_opts o;
    bool use;
} opt_choice;

static uint64_t random_explicit_ts(const mrec *r)
{
    uint64_t now = now_ns();
    if (!r) /* absent: any timestamp is accepted */
        return now - ftest_rng_below(&rng, 10 * SEC) + 1;
    switch (ftest_rng_below(&rng, 4)) {
    case 0: return r->ts;                                    /* equal: rejected */
    case 1: return r->ts - 1 - ftest_rng_below(&rng, 1000);  /* older: rejected */
    default: return r->ts + 1 + ftest_rng_below(&rng, 1000); /* newer: accepted */
    }
}

static void random_expiry_flags(feox_write_opts *o)
{
    switch (ftest_rng_below(&rng, 6)) {
    case 0:
        o->flags |= FEOX_WRITE_TTL;
        o->ttl_secs = ftest_rng_below(&rng, 4); /* 0 = none */
        break;
    case 1:
        o->flags |= FEOX_WRITE_EXPIRES_AT;
        o->expires_at_ns =
            ftest_rng_below(&rng, 4) == 0 ? 0 : now_ns() + ftest_rng_below(&rng, 3 * SEC);
        break;
    default: break;
    }
}

/* The expiry a write with opts o leaves, given the live record's (keep = its expiry applies). */
static uint64_t expiry_after(const feox_write_opts *o, uint64_t keep)
{
    if (o->flags & FEOX_WRITE_TTL)
        return o->ttl_secs ? now_ns() + o->ttl_secs * SEC : 0;
    if (o->flags & FEOX_WRITE_EXPIRES_AT)
        return o->expires_at_ns;
    return keep;
}

/* ---- operations --------------------------------------------------------------------------- */

static void op_insert(feox_store *s)
{
    const mkey *k = random_key();
    describe_key("insert", k);
    mrec *r = model_find(k);
    uint8_t val[MAX_V];
    size_t vlen = random_value(val);
    feox_write_opts o = {0};
    bool use_opts = ftest_rng_below(&rng, 3) != 0;
    if (use_opts) {
        o.tag = ftest_rng_below(&rng, 2) ? (uint32_t)ftest_rng_below(&rng, 5) : 0;
        random_expiry_flags(&o);
        if (!(o.flags & (FEOX_WRITE_TTL | FEOX_WRITE_EXPIRES_AT)) && ftest_rng_below(&rng, 3) == 0)
            o.flags |= FEOX_WRITE_KEEP_TTL;
        if (ftest_rng_below(&rng, 4) == 0)
            o.timestamp_ns = random_explicit_ts(r);
        else if (ftest_rng_below(&rng, 6) == 0)
            o.flags |= FEOX_WRITE_IF_ABSENT; /* never with an explicit timestamp */
    }
    bool created = !r;
    feox_err want = FEOX_OK;
    if (r && (o.flags & FEOX_WRITE_IF_ABSENT))
        want = FEOX_ERR_KEY_EXISTS;
    else if (r && o.timestamp_ns && o.timestamp_ns <= r->ts)
        want = FEOX_ERR_OLDER_TIMESTAMP;
    bool got_created = !created;
    feox_err err = feox_insert(s, k->b, k->len, val, vlen, use_opts ? &o : NULL, &got_created);
    CHECK_ERR(err, want);
    if (err != FEOX_OK)
        return;
    CHECK(got_created == created, "created %d, model %d", got_created, created);
    uint64_t ts = o.timestamp_ns ? o.timestamp_ns : r ? auto_ts(r) : created_auto_ts(s, k);
    uint64_t expires = expiry_after(&o, (o.flags & FEOX_WRITE_KEEP_TTL) && r ? r->expires : 0);
    mrec *w = model_put(k);
    memcpy(w->val, val, vlen);
    w->vlen = (uint8_t)vlen;
    w->tag = o.tag;
    w->ts = ts;
    w->expires = expires;
}

static void op_insert_if_absent(feox_store *s)
{
    const mkey *k = random_key();
    describe_key("insert_if_absent", k);
    mrec *r = model_find(k);
    uint8_t val[MAX_V];
    size_t vlen = random_value(val);
    feox_write_opts o = {0};
    o.tag = (uint32_t)ftest_rng_below(&rng, 3);
    random_expiry_flags(&o);
    o.flags |= FEOX_WRITE_IF_ABSENT;
    bool inserted = r != NULL;
    CHECK_ERR(feox_insert(s, k->b, k->len, val, vlen, &o, &inserted),
              r ? FEOX_ERR_KEY_EXISTS : FEOX_OK);
    CHECK(r || inserted, "inserted %d, model %d", inserted, !r);
    if (r)
        return;
    mrec *w = model_put(k);
    memcpy(w->val, val, vlen);
    w->vlen = (uint8_t)vlen;
    w->tag = o.tag;
    w->ts = created_auto_ts(s, k);
    w->expires = expiry_after(&o, 0);
}

static void op_get(feox_store *s)
{
    const mkey *k = random_key();
    const mrec *r = model_find(k);
    switch (ftest_rng_below(&rng, 5)) {
    case 0: {
        describe_key("get_ref", k);
        feox_value *v = NULL;
        feox_err err = feox_get_ref(s, k->b, k->len, &v);
        CHECK_ERR(err, r ? FEOX_OK : FEOX_ERR_KEY_NOT_FOUND);
        if (r) {
            feox_record_info info;
            feox_value_info(v, &info);
            CHECK(feox_value_data(v) != NULL, "value data NULL");
            check_record(r, feox_value_data(v), feox_value_size(v), &info);
            feox_value_release(v);
        }
        break;
    }
    case 1: {
        describe_key("get_size", k);
        size_t n = 0;
        CHECK_ERR(feox_get_size(s, k->b, k->len, &n), r ? FEOX_OK : FEOX_ERR_KEY_NOT_FOUND);
        CHECK(!r || n == r->vlen, "size %zu, model %u", n, r ? r->vlen : 0);
        break;
    }
    case 2:
        describe_key("contains", k);
        CHECK(feox_contains(s, k->b, k->len) == (r != NULL), "contains != model");
        break;
    default: {
        describe_key("get", k);
        void *v = NULL;
        size_t n = 0;
        feox_record_info info;
        feox_err err = feox_get(s, k->b, k->len, &v, &n, &info);
        CHECK_ERR(err, r ? FEOX_OK : FEOX_ERR_KEY_NOT_FOUND);
        if (r) {
            CHECK(v != NULL, "value NULL");
            check_record(r, v, n, &info);
            feox_free(v);
        }
        break;
    }
    }
}

static void op_delete(feox_store *s)
{
    const mkey *k = random_key();
    describe_key("delete", k);
    const mrec *r = model_find(k);
    feox_write_opts o = {0};
    bool use_ts = ftest_rng_below(&rng, 3) == 0;
    if (use_ts)
        o.timestamp_ns = random_explicit_ts(r);
    feox_err want = !r ? FEOX_ERR_KEY_NOT_FOUND
                       : (use_ts && o.timestamp_ns <= r->ts ? FEOX_ERR_OLDER_TIMESTAMP : FEOX_OK);
    CHECK_ERR(feox_delete(s, k->b, k->len, use_ts ? &o : NULL), want);
    if (want == FEOX_OK)
        model_remove(k);
}

static int64_t sat_add(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b)
        return INT64_MAX;
    if (b < 0 && a < INT64_MIN - b)
        return INT64_MIN;
    return a + b;
}

static void op_incr(feox_store *s)
{
    const mkey *k = random_key();
    describe_key("incr", k);
    mrec *r = model_find(k);
    int64_t delta;
    switch (ftest_rng_below(&rng, 10)) {
    case 0: delta = INT64_MAX - (int64_t)ftest_rng_below(&rng, 3); break;
    case 1: delta = INT64_MIN + (int64_t)ftest_rng_below(&rng, 3); break;
    default: delta = (int64_t)ftest_rng_below(&rng, 201) - 100; break;
    }
    feox_write_opts o = {0};
    bool use_opts = ftest_rng_below(&rng, 2) == 0;
    if (use_opts) {
        if (ftest_rng_below(&rng, 3) == 0) {
            o.flags |= FEOX_WRITE_TAG;
            o.tag = (uint32_t)ftest_rng_below(&rng, 5);
        }
        random_expiry_flags(&o);
        /* Stale timestamps only on well-formed counters (no ambiguity on which error wins). */
        if (ftest_rng_below(&rng, 4) == 0 && (!r || r->vlen == 8))
            o.timestamp_ns = random_explicit_ts(r);
    }
    feox_err want = FEOX_OK;
    if (r && r->vlen != 8)
        want = FEOX_ERR_INVALID_OPERATION;
    else if (r && o.timestamp_ns && o.timestamp_ns <= r->ts)
        want = FEOX_ERR_OLDER_TIMESTAMP;
    int64_t result = 0;
    CHECK_ERR(feox_atomic_increment(s, k->b, k->len, delta, use_opts ? &o : NULL, &result), want);
    if (want != FEOX_OK)
        return;
    int64_t expect = r ? sat_add(ftest_get_i64(r->val), delta) : delta;
    CHECK(result == expect, "result %lld, model %lld", (long long)result, (long long)expect);
    uint64_t ts = o.timestamp_ns ? o.timestamp_ns : r ? auto_ts(r) : created_auto_ts(s, k);
    uint32_t tag = (o.flags & FEOX_WRITE_TAG) ? o.tag : (r ? r->tag : 0);
    uint64_t expires = expiry_after(&o, r ? r->expires : 0);
    mrec *w = model_put(k);
    ftest_put_i64(w->val, expect);
    w->vlen = 8;
    w->tag = tag;
    w->ts = ts;
    w->expires = expires;
}

static void op_cas(feox_store *s)
{
    const mkey *k = random_key();
    describe_key("cas", k);
    mrec *r = model_find(k);
    uint8_t expected[MAX_V + 1], nv[MAX_V];
    size_t elen;
    switch (ftest_rng_below(&rng, 5)) {
    case 0: elen = random_value(expected); break;
    case 1: /* current value plus one byte, or minus one */
        elen = r ? r->vlen : 0;
        if (r)
            memcpy(expected, r->val, elen);
        if (elen && ftest_rng_below(&rng, 2))
            elen--;
        else
            expected[elen++] = 0;
        break;
    default:
        elen = r ? r->vlen : 0;
        if (r)
            memcpy(expected, r->val, elen);
        break;
    }
    size_t nlen = random_value(nv);
    feox_write_opts o = {0};
    bool use_opts = ftest_rng_below(&rng, 2) == 0;
    bool match = r && elen == r->vlen && (elen == 0 || memcmp(expected, r->val, elen) == 0);
    if (use_opts) {
        if (ftest_rng_below(&rng, 3) == 0) {
            o.flags |= FEOX_WRITE_TAG;
            o.tag = (uint32_t)ftest_rng_below(&rng, 5);
        }
        if (ftest_rng_below(&rng, 3) == 0) {
            o.flags |= FEOX_WRITE_MATCH_TAG;
            o.expected_tag = (uint32_t)ftest_rng_below(&rng, 5);
            match = match && r->tag == o.expected_tag;
        }
        random_expiry_flags(&o);
        /* An explicit timestamp only where the outcome is unambiguous: a missing key (false)
         * or a matching value (swap, or OLDER_TIMESTAMP if stale). */
        if (ftest_rng_below(&rng, 4) == 0 && (!r || match))
            o.timestamp_ns = random_explicit_ts(r);
    }
    feox_err want = FEOX_OK;
    if (match && o.timestamp_ns && o.timestamp_ns <= r->ts)
        want = FEOX_ERR_OLDER_TIMESTAMP;
    bool swapped = !match;
    CHECK_ERR(feox_compare_and_swap(s, k->b, k->len, expected, elen, nv, nlen, use_opts ? &o : NULL,
                                    &swapped),
              want);
    if (want != FEOX_OK)
        return;
    CHECK(swapped == match, "swapped %d, model %d", swapped, match);
    if (!match)
        return;
    r->ts = o.timestamp_ns ? o.timestamp_ns : auto_ts(r);
    if (o.flags & FEOX_WRITE_TAG)
        r->tag = o.tag;
    r->expires = expiry_after(&o, r->expires);
    memcpy(r->val, nv, nlen);
    r->vlen = (uint8_t)nlen;
}

/* A random bound: a key of the key space, or a random short byte string. */
static size_t random_bound(uint8_t *out, bool allow_empty)
{
    if (ftest_rng_below(&rng, 2)) {
        const mkey *k = random_key();
        memcpy(out, k->b, k->len);
        return k->len;
    }
    static const uint8_t alphabet[6] = {0x00, 'a', 'b', 0x80, 0xff, 0x7f};
    size_t len = (allow_empty ? 0 : 1) + ftest_rng_below(&rng, allow_empty ? 5 : 4);
    for (size_t i = 0; i < len; i++)
        out[i] = alphabet[ftest_rng_below(&rng, 6)];
    return len;
}

typedef struct range_ctx {
    size_t pos; /* model index of the next expected record */
    size_t seen;
    size_t stop_after; /* 0 = never */
} range_ctx;

static int range_cb(void *ctx, const void *key, size_t key_len, const void *value, size_t value_len,
                    const feox_record_info *info)
{
    range_ctx *rc = ctx;
    CHECK(rc->pos < M.n, "range visited more records than the model has");
    const mrec *r = &M.recs[rc->pos];
    CHECK(key_cmp(key, key_len, r->key.b, r->key.len) == 0, "range record %zu: wrong key",
          rc->seen);
    check_record(r, value, value_len, info);
    rc->pos++;
    rc->seen++;
    return rc->stop_after && rc->seen >= rc->stop_after;
}

static void op_range(feox_store *s)
{
    uint8_t a[8], b[8];
    size_t al = random_bound(a, false), bl = random_bound(b, false);
    if (ftest_rng_below(&rng, 3) && key_cmp(a, al, b, bl) > 0) { /* mostly start <= end */
        uint8_t t[8];
        size_t tl = al;
        memcpy(t, a, al);
        memcpy(a, b, bl);
        al = bl;
        memcpy(b, t, tl);
        bl = tl;
    }
    size_t limit;
    switch (ftest_rng_below(&rng, 10)) {
    case 0: limit = 0; break;
    case 1:
    case 2: limit = SIZE_MAX; break;
    default: limit = 1 + ftest_rng_below(&rng, 20); break;
    }
    range_ctx rc = {model_lower(a, al), 0,
                    ftest_rng_below(&rng, 8) == 0 ? 1 + ftest_rng_below(&rng, 5) : 0};
    snprintf(cur_desc, sizeof(cur_desc), "range_query limit=%zu stop_after=%zu", limit,
             rc.stop_after);
    /* Model answer: records in [a, b], at most limit, at most stop_after. */
    size_t first = rc.pos, count = 0;
    if (key_cmp(a, al, b, bl) <= 0)
        for (size_t i = first; i < M.n && count < limit; i++, count++)
            if (key_cmp(M.recs[i].key.b, M.recs[i].key.len, b, bl) > 0)
                break;
    if (rc.stop_after && count > rc.stop_after)
        count = rc.stop_after;
    size_t visited = 99999;
    CHECK_ERR(feox_range_query(s, a, al, b, bl, limit, range_cb, &rc, &visited), FEOX_OK);
    CHECK(visited == count, "visited %zu, model %zu", visited, count);
    CHECK(rc.seen == count, "callback saw %zu, model %zu", rc.seen, count);
}

static void check_cursor(feox_cursor *c, ptrdiff_t pos)
{
    bool want_valid = pos >= 0 && (size_t)pos < M.n;
    CHECK(feox_cursor_valid(c) == want_valid, "cursor valid %d, model %d", feox_cursor_valid(c),
          want_valid);
    if (!want_valid)
        return;
    const mrec *r = &M.recs[pos];
    size_t kl = 0, vl = 0;
    const void *key = feox_cursor_key(c, &kl);
    CHECK(key_cmp(key, kl, r->key.b, r->key.len) == 0, "cursor at the wrong key (model index %td)",
          pos);
    const void *v = feox_cursor_value(c, &vl);
    feox_record_info info;
    feox_cursor_info(c, &info);
    check_record(r, v, vl, &info);
}

/* A plain write to the record ahead of the cursor (or the one it is on): delete it or give it
 * a new value, so the next step must see the store as it is now. */
static void write_near_cursor(feox_store *s, ptrdiff_t pos, bool forward)
{
    ptrdiff_t target = pos + (ftest_rng_below(&rng, 4) == 0 ? 0 : (forward ? 1 : -1));
    if (target < 0 || (size_t)target >= M.n) {
        op_insert(s);
        return;
    }
    mkey k = M.recs[target].key;
    describe_key("write during cursor walk", &k);
    if (ftest_rng_below(&rng, 2)) {
        CHECK_ERR(feox_delete(s, k.b, k.len, NULL), FEOX_OK);
        model_remove(&k);
    } else {
        mrec *r = &M.recs[target];
        uint8_t val[MAX_V];
        size_t vlen = random_value(val);
        bool created = true;
        CHECK_ERR(feox_insert(s, k.b, k.len, val, vlen, NULL, &created), FEOX_OK);
        CHECK(!created, "created on a live key");
        r->ts = auto_ts(r);
        memcpy(r->val, val, vlen);
        r->vlen = (uint8_t)vlen;
        r->tag = 0;
        r->expires = 0;
    }
}

static void op_cursor(feox_store *s, feox_cursor *c)
{
    uint8_t k[8];
    size_t kl = random_bound(k, true);
    feox_seek_mode mode = (feox_seek_mode)ftest_rng_below(&rng, 6);
    bool interleave = ftest_rng_below(&rng, 3) == 0;
    char what[64];
    snprintf(what, sizeof(what), "cursor seek mode %d bound len %zu%s", (int)mode, kl,
             interleave ? " with writes" : "");
    snprintf(cur_desc, sizeof(cur_desc), "%s", what);
    ptrdiff_t pos;
    size_t lb = model_lower(k, kl);
    bool exact = lb < M.n && key_cmp(M.recs[lb].key.b, M.recs[lb].key.len, k, kl) == 0;
    switch (mode) {
    case FEOX_SEEK_FIRST: pos = 0; break;
    case FEOX_SEEK_LAST: pos = (ptrdiff_t)M.n - 1; break;
    case FEOX_SEEK_GE: pos = (ptrdiff_t)lb; break;
    case FEOX_SEEK_GT: pos = (ptrdiff_t)lb + exact; break;
    case FEOX_SEEK_LE: pos = (ptrdiff_t)lb - 1 + exact; break;
    default: pos = (ptrdiff_t)lb - 1; break;
    }
    CHECK_ERR(feox_cursor_seek(c, mode, k, kl), FEOX_OK);
    check_cursor(c, pos);
    size_t steps = ftest_rng_below(&rng, 12);
    bool forward = ftest_rng_below(&rng, 2);
    for (size_t i = 0; i < steps; i++) {
        if (pos < 0 || (size_t)pos >= M.n)
            break;
        if (ftest_rng_below(&rng, 5) == 0)
            forward = !forward;
        mkey cur = M.recs[pos].key; /* the cursor re-seeks strictly past its current key */
        if (interleave && ftest_rng_below(&rng, 2))
            write_near_cursor(s, pos, forward);
        snprintf(cur_desc, sizeof(cur_desc), "%s, step %zu %s", what, i, forward ? "next" : "prev");
        CHECK_ERR(forward ? feox_cursor_next(c) : feox_cursor_prev(c), FEOX_OK);
        size_t at = model_lower(cur.b, cur.len);
        bool still = at < M.n && key_cmp(M.recs[at].key.b, M.recs[at].key.len, cur.b, cur.len) == 0;
        pos = forward ? (ptrdiff_t)at + still : (ptrdiff_t)at - 1;
        check_cursor(c, pos);
    }
}

static void op_ttl(feox_store *s)
{
    const mkey *k = random_key();
    mrec *r = model_find(k);
    switch (ftest_rng_below(&rng, 3)) {
    case 0: {
        describe_key("get_ttl", k);
        uint64_t secs = 777;
        bool has = false;
        CHECK_ERR(feox_get_ttl(s, k->b, k->len, &secs, &has), r ? FEOX_OK : FEOX_ERR_KEY_NOT_FOUND);
        if (!r)
            return;
        CHECK(has == (r->expires != 0), "has_ttl %d, model %d", has, r->expires != 0);
        if (has)
            CHECK(secs == (r->expires - now_ns()) / SEC, "ttl %llu, model %llu",
                  (unsigned long long)secs, (unsigned long long)((r->expires - now_ns()) / SEC));
        break;
    }
    case 1: {
        describe_key("update_ttl", k);
        uint64_t secs = ftest_rng_below(&rng, 4);
        CHECK_ERR(feox_update_ttl(s, k->b, k->len, secs, NULL), r ? FEOX_OK : FEOX_ERR_KEY_NOT_FOUND);
        if (r) {
            r->ts = auto_ts(r);
            r->expires = secs ? now_ns() + secs * SEC : 0;
        }
        break;
    }
    default:
        describe_key("persist", k);
        CHECK_ERR(feox_update_ttl(s, k->b, k->len, 0, NULL), r ? FEOX_OK : FEOX_ERR_KEY_NOT_FOUND);
        if (r) {
            r->ts = auto_ts(r);
            r->expires = 0;
        }
        break;
    }
}

static void advance_clock(void)
{
    uint64_t d;
    switch (ftest_rng_below(&rng, 5)) {
    case 0: d = 1; break;
    case 1: d = ftest_rng_below(&rng, 1000); break;
    case 2: { /* exactly onto a record's expiry: the boundary instant, where it is still live */
        d = 0;
        if (M.n) {
            const mrec *r = &M.recs[ftest_rng_below(&rng, M.n)];
            if (r->expires > now_ns())
                d = r->expires - now_ns();
        }
        break;
    }
    default: d = ftest_rng_below(&rng, 1500 * 1000 * 1000); break;
    }
    snprintf(cur_desc, sizeof(cur_desc), "clock += %llu ns", (unsigned long long)d);
    ftest_clock_advance(&mclock, d);
    model_expire(now_ns());
}

/* Everything the store holds, in order, must be exactly the model: by cursor, both ways, and by
 * one full range query. */
static void full_dump_compare(feox_store *s, feox_cursor *c)
{
    snprintf(cur_desc, sizeof(cur_desc), "full dump");
    CHECK(feox_len(s, 0) == M.n, "len %llu, model %zu", (unsigned long long)feox_len(s, 0), M.n);
    CHECK_ERR(feox_cursor_seek(c, FEOX_SEEK_FIRST, NULL, 0), FEOX_OK);
    for (size_t i = 0; i < M.n; i++) {
        check_cursor(c, (ptrdiff_t)i);
        CHECK_ERR(feox_cursor_next(c), FEOX_OK);
    }
    CHECK(!feox_cursor_valid(c), "cursor has records beyond the model");
    CHECK_ERR(feox_cursor_seek(c, FEOX_SEEK_LAST, NULL, 0), FEOX_OK);
    for (size_t i = M.n; i-- > 0;) {
        check_cursor(c, (ptrdiff_t)i);
        CHECK_ERR(feox_cursor_prev(c), FEOX_OK);
    }
    CHECK(!feox_cursor_valid(c), "cursor has records before the model's first");
    range_ctx rc = {0, 0, 0};
    size_t visited = 0;
    const uint8_t lo[1] = {0x00};
    uint8_t hi[MAX_K + 1];
    memset(hi, 0xff, sizeof(hi));
    CHECK_ERR(feox_range_query(s, lo, 1, hi, sizeof(hi), SIZE_MAX, range_cb, &rc, &visited),
              FEOX_OK);
    CHECK(visited == M.n, "full range visited %zu, model %zu", visited, M.n);
    for (size_t i = 0; i < N_KEYS; i++) {
        const mkey *k = &keyspace[i];
        CHECK(feox_contains(s, k->b, k->len) == (model_find(k) != NULL), "contains differs");
    }
    CHECK_ERR(feox_check(s), FEOX_OK);
}

static uint64_t ops_per_seed(void)
{
    const char *env = getenv("FEOX_MODEL_OPS");
    if (env && *env)
        return strtoull(env, NULL, 10);
    return FTEST_UNDER_ASAN ? 250000 : 1000000;
}

static void run_model(uint64_t seed)
{
    const char *only = getenv("FEOX_MODEL_SEED");
    if (only && *only && strtoull(only, NULL, 10) != seed)
        skip();
    cur_seed = seed;
    cur_op = 0;
    ftest_rng_seed(&rng, seed);
    make_keyspace();
    M.n = 0;
    ftest_clock_init(&mclock, FTEST_EPOCH_NS);
    feox_config cfg;
    ftest_config(&cfg, &mclock); /* sweeper off: expiry decided by the clock alone */
    feox_store *s = ftest_open(&cfg);
    feox_cursor *c = NULL;
    assert_int_equal(feox_cursor_open(s, &c), FEOX_OK);
    const uint64_t ops = ops_per_seed();
    for (cur_op = 0; cur_op < ops; cur_op++) {
        uint64_t r = ftest_rng_below(&rng, 1000);
        if (r < 200)
            op_insert(s);
        else if (r < 250)
            op_insert_if_absent(s);
        else if (r < 450)
            op_get(s);
        else if (r < 560)
            op_delete(s);
        else if (r < 660)
            op_incr(s);
        else if (r < 760)
            op_cas(s);
        else if (r < 830)
            op_range(s);
        else if (r < 880)
            op_cursor(s, c);
        else if (r < 995)
            op_ttl(s);
        else
            advance_clock();
        if ((cur_op & LEN_CHECK_MASK) == 0)
            CHECK(feox_len(s, 0) == M.n, "len %llu, model %zu", (unsigned long long)feox_len(s, 0),
                  M.n);
    }
    full_dump_compare(s, c);
    /* Let everything expire that can: the dump must still agree. */
    ftest_clock_advance(&mclock, 10 * SEC);
    model_expire(now_ns());
    full_dump_compare(s, c);
    feox_cursor_close(c);
    feox_close(s);
}

static void test_model_seed_1(void **state)
{
    (void)state;
    run_model(1);
}

static void test_model_seed_2(void **state)
{
    (void)state;
    run_model(0x5eed0002);
}

static void test_model_seed_3(void **state)
{
    (void)state;
    run_model(0xfeedfacecafebeefULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_seed_1),
        cmocka_unit_test(test_model_seed_2),
        cmocka_unit_test(test_model_seed_3),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
