/*
 * cursor.c — reading a feox table: xOpen, xFilter (decodes the plan written in plan.c), xNext,
 * xEof, xColumn, xClose.
 *
 * Cursor state is plain fields: the plan, owned copies of the tightest lower/upper bound and of
 * every EQ/IN operand (canonicalised to the table's key type), LIMIT/OFFSET left, and the "now"
 * of the ttl column (read once per xFilter, at the first row that has an expiry).
 *
 * A point SELECT allocates nothing: the key buffers keep their capacity from one xFilter to the
 * next, a single EQ key is held in the cursor itself, and a closed cursor is kept by its table
 * for the next xOpen (one per table, freed with it). An IN list of candidates is read in one pass
 * into two buffers of the cursor's (the key_buf array, the keys' bytes) that keep their capacity
 * too: `key IN (...)` allocates nothing once they are large enough (SQLite's sqlite3_vtab_in_next
 * costs more than an allocation: the list is read once). Nor does it copy the value: SQLite gets
 * the version's own TEXT/BLOB bytes with a handle that it releases when done with them. A range
 * scan tells the engine cursor how many rows LIMIT + OFFSET will read, so it descends the index
 * once, and, when the statement uses no value (count(*), SELECT key), that its rows need none.
 *
 * Point plans (EQ, IN) look keys up in the hash index with feox_get_ref and hold the reference of
 * the current row only. Range and full scans use the engine's feox_cursor, which holds no lock or
 * epoch between calls and re-seeks strictly past its last key, so writes by this connection (two-
 * pass UPDATE/DELETE, functions called per row) or by other threads never crash a scan nor make
 * it return a key twice. Expired records are never returned (the engine hides them).
 *
 * Any NULL operand of =, IN, <, <=, >, >= matches nothing, as in SQL.
 */
#include <stdlib.h>
#include <string.h>

#include "feox_ext.h"

SQLITE_EXTENSION_INIT3

typedef struct key_buf {
    unsigned char *data;
    size_t len;
    size_t cap; /* bytes allocated at data (meaningful only when data is not NULL) */
} key_buf;

/* What read_in_list reads an IN list into: both buffers keep their capacity for the next list. */
typedef struct in_buffers {
    key_buf *keys; /* the keys, pointing into bytes */
    size_t keys_cap;
    unsigned char *bytes;
    size_t bytes_cap;
} in_buffers;

typedef struct feox_vt_cursor {
    sqlite3_vtab_cursor base;
    feox_plan_kind kind;
    bool desc;
    bool no_value; /* FEOX_PLAN_NO_VALUE: the statement asks for no value */
    bool eof;
    /* bounds (the tightest of all given) */
    bool has_lo, lo_inclusive, has_hi, hi_inclusive;
    key_buf lo, hi;
    /* EQ / IN: candidate keys in the order they are visited, and other required sets */
    key_buf *points; /* &eq_point, or in_points.keys (an IN list of candidates) */
    size_t n_points, next_point;
    in_buffers in_points; /* the IN list of candidates, kept across xFilter calls */
    key_buf eq_point;   /* the candidate of a single EQ: its buffer is kept across xFilter calls */
    bool points_set;    /* the first EQ/IN operand chose the candidates (possibly none) */
    key_buf *eq_checks; /* further EQ operands: the key must equal each */
    size_t n_eq_checks;
    key_buf **in_checks; /* further IN lists (sorted; each one read_in_list block) */
    size_t *in_check_lens;
    size_t n_in_checks;
    /* LIMIT */
    bool has_limit;
    sqlite3_int64 limit_left;
    sqlite3_int64 limit_hint; /* a LIMIT that SQLite enforces itself: rows likely read, 0 none */
    uint64_t now_ns;
    bool now_known; /* now_ns was read during this xFilter */
    /* current row */
    feox_cursor *scan;
    feox_store *scan_store; /* the store scan was opened on (kept across xFilter calls) */
    feox_value *point_value;
    size_t point_index;
    bool is_reset; /* cursor_reset has nothing to undo (set by it, cleared by xFilter) */
    bool one_key;  /* filter_one_key's plan: the candidate and its row are all there is to undo */
} feox_vt_cursor;

static feox_vtab *cursor_vtab(feox_vt_cursor *c)
{
    return (feox_vtab *)c->base.pVtab;
}

/* EQ and IN look keys up (point_advance); SCAN and RANGE use the engine cursor. */
static bool point_plan(const feox_vt_cursor *c)
{
    return c->kind == FEOX_PLAN_EQ || c->kind == FEOX_PLAN_IN;
}

static int key_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
    int r = memcmp(a, b, alen < blen ? alen : blen);
    if (r != 0) {
        return r;
    }
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

static int key_buf_cmp(const void *a, const void *b)
{
    const key_buf *x = a, *y = b;
    return key_cmp(x->data, x->len, y->data, y->len);
}

/* Copy a key into k, reusing its buffer when it is large enough. On NOMEM k is left empty. */
static int key_buf_set(key_buf *k, const void *data, size_t len)
{
    if (k->data == NULL || k->cap < len) {
        size_t cap = len < 64 ? 64 : len;
        sqlite3_free(k->data);
        k->data = sqlite3_malloc64(cap);
        if (k->data == NULL) {
            k->len = k->cap = 0;
            return SQLITE_NOMEM;
        }
        k->cap = cap;
    }
    memcpy(k->data, data, len);
    k->len = len;
    return SQLITE_OK;
}

static void key_list_free(key_buf *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        sqlite3_free(list[i].data);
    }
    sqlite3_free(list);
}

/* Forget the previous xFilter's plan and row; buffers (bounds, the EQ key, the engine cursor)
 * are kept for the next one. */
static void cursor_reset(feox_vt_cursor *c)
{
    if (c->is_reset) {
        return; /* xClose reset it, or an xFilter that failed before setting anything */
    }
    if (c->one_key) { /* a point SELECT: what filter_one_key and the row's columns set */
        feox_value_release(c->point_value);
        c->point_value = NULL;
        c->points = NULL;
        c->n_points = c->next_point = 0;
        c->points_set = c->now_known = c->one_key = false;
        c->eof = true;
        c->is_reset = true;
        return;
    }
    if (c->point_value != NULL) {
        feox_value_release(c->point_value);
        c->point_value = NULL;
    }
    c->lo.len = c->hi.len = 0;
    /* Lists only a plan with several EQ/IN operands has: a plain point SELECT skips the frees. */
    if (c->eq_checks != NULL) {
        key_list_free(c->eq_checks, c->n_eq_checks);
    }
    if (c->in_checks != NULL && c->in_check_lens != NULL) {
        for (size_t i = 0; i < c->n_in_checks; i++) {
            sqlite3_free(c->in_checks[i]);
        }
    }
    if (c->in_checks != NULL) {
        sqlite3_free(c->in_checks);
    }
    if (c->in_check_lens != NULL) {
        sqlite3_free(c->in_check_lens);
    }
    c->points = c->eq_checks = NULL;
    c->in_checks = NULL;
    c->in_check_lens = NULL;
    c->n_points = c->next_point = c->n_eq_checks = c->n_in_checks = 0;
    c->has_lo = c->has_hi = c->has_limit = c->points_set = c->now_known = false;
    c->limit_hint = 0;
    c->eof = true;
    c->is_reset = true;
}

/* Free everything a cursor owns, and the cursor. */
static void cursor_free(feox_vt_cursor *c)
{
    cursor_reset(c);
    feox_cursor_close(c->scan);
    sqlite3_free(c->lo.data);
    sqlite3_free(c->hi.data);
    sqlite3_free(c->eq_point.data);
    sqlite3_free(c->in_points.keys);
    sqlite3_free(c->in_points.bytes);
    sqlite3_free(c);
}

void feox_vt_free_spare_cursor(feox_vtab *vt)
{
    if (vt->spare_cursor != NULL) {
        cursor_free(vt->spare_cursor);
        vt->spare_cursor = NULL;
    }
}

/* A kept cursor keeps the buffers of an IN list up to this size; a larger list's are freed. */
#define IN_BUFFERS_KEPT (64 * 1024)

static void in_buffers_trim(in_buffers *b)
{
    if (b->keys_cap * sizeof *b->keys + b->bytes_cap > IN_BUFFERS_KEPT) {
        sqlite3_free(b->keys);
        sqlite3_free(b->bytes);
        *b = (in_buffers){NULL, 0, NULL, 0};
    }
}

/* xOpen: a new cursor over the table. */
int feox_vt_open(sqlite3_vtab *tab, sqlite3_vtab_cursor **out)
{
    feox_vtab *vt = (feox_vtab *)tab;
    feox_vt_cursor *c = vt->spare_cursor;
    if (c != NULL) {
        vt->spare_cursor = NULL; /* already reset by xClose */
    } else {
        c = sqlite3_malloc(sizeof *c);
        if (c == NULL) {
            return SQLITE_NOMEM;
        }
        memset(c, 0, sizeof *c);
    }
    c->eof = true;
    *out = &c->base;
    return SQLITE_OK;
}

/* xClose: release the engine cursor and value reference; keep the cursor's memory for the
 * table's next xOpen if it has none kept yet. */
int feox_vt_close(sqlite3_vtab_cursor *cur)
{
    feox_vt_cursor *c = (feox_vt_cursor *)cur;
    feox_vtab *vt = cursor_vtab(c);
    cursor_reset(c);
    /* The engine cursor is tied to a store that may be closed before the next xOpen. */
    feox_cursor_close(c->scan);
    c->scan = NULL;
    c->scan_store = NULL;
    in_buffers_trim(&c->in_points);
    if (vt->spare_cursor == NULL) {
        memset(&c->base, 0, sizeof c->base);
        vt->spare_cursor = c;
        return SQLITE_OK;
    }
    cursor_free(c);
    return SQLITE_OK;
}

/* Tighten the lower bound with (key, inclusive). A bound longer than any key can be is replaced
 * by its FEOX_MAX_KEY_SIZE prefix P: for every valid key k, k > bound <=> k > P, and
 * k < bound <=> k <= P. */
static int tighten_lo(feox_vt_cursor *c, const void *key, size_t len, bool inclusive)
{
    if (len > FEOX_MAX_KEY_SIZE) {
        len = FEOX_MAX_KEY_SIZE;
        inclusive = false;
    }
    if (c->has_lo) {
        int r = key_cmp(key, len, c->lo.data, c->lo.len);
        if (r < 0 || (r == 0 && (inclusive || !c->lo_inclusive))) {
            return SQLITE_OK;
        }
    }
    c->has_lo = true;
    c->lo_inclusive = inclusive;
    return key_buf_set(&c->lo, key, len);
}

static int tighten_hi(feox_vt_cursor *c, const void *key, size_t len, bool inclusive)
{
    if (len > FEOX_MAX_KEY_SIZE) {
        len = FEOX_MAX_KEY_SIZE;
        inclusive = true;
    }
    if (c->has_hi) {
        int r = key_cmp(key, len, c->hi.data, c->hi.len);
        if (r > 0 || (r == 0 && (inclusive || !c->hi_inclusive))) {
            return SQLITE_OK;
        }
    }
    c->has_hi = true;
    c->hi_inclusive = inclusive;
    return key_buf_set(&c->hi, key, len);
}

static bool below_hi(const feox_vt_cursor *c, const void *key, size_t len)
{
    if (!c->has_hi) {
        return true;
    }
    int r = key_cmp(key, len, c->hi.data, c->hi.len);
    return r < 0 || (r == 0 && c->hi_inclusive);
}

static bool above_lo(const feox_vt_cursor *c, const void *key, size_t len)
{
    if (!c->has_lo) {
        return true;
    }
    int r = key_cmp(key, len, c->lo.data, c->lo.len);
    return r > 0 || (r == 0 && c->lo_inclusive);
}

static bool in_sorted(const key_buf *list, size_t n, const void *key, size_t len)
{
    key_buf probe = {(unsigned char *)(uintptr_t)key, len, len};
    if (n == 0) {
        return false;
    }
    return bsearch(&probe, list, n, sizeof *list, key_buf_cmp) != NULL;
}

/* Does a looked-up key satisfy every other constraint of the plan? */
static bool point_matches(const feox_vt_cursor *c, const key_buf *k)
{
    if (!above_lo(c, k->data, k->len) || !below_hi(c, k->data, k->len)) {
        return false;
    }
    for (size_t i = 0; i < c->n_eq_checks; i++) {
        if (key_buf_cmp(k, &c->eq_checks[i]) != 0) {
            return false;
        }
    }
    for (size_t i = 0; i < c->n_in_checks; i++) {
        if (!in_sorted(c->in_checks[i], c->in_check_lens[i], k->data, k->len)) {
            return false;
        }
    }
    return true;
}

/* Room in b for one more key of len bytes (used bytes taken). */
static int in_buffers_reserve(in_buffers *b, size_t n, size_t used, size_t len)
{
    if (n == b->keys_cap) {
        size_t cap = n ? n * 2 : 16;
        key_buf *grown = sqlite3_realloc64(b->keys, cap * sizeof *grown);
        if (grown == NULL) {
            return SQLITE_NOMEM;
        }
        b->keys = grown;
        b->keys_cap = cap;
    }
    if (b->bytes == NULL || used + len > b->bytes_cap) { /* never NULL: memcpy of an empty key */
        size_t cap = b->bytes_cap ? b->bytes_cap * 2 : 256;
        if (cap < used + len) {
            cap = used + len;
        }
        unsigned char *grown = sqlite3_realloc64(b->bytes, cap);
        if (grown == NULL) {
            return SQLITE_NOMEM;
        }
        b->bytes = grown;
        b->bytes_cap = cap;
    }
    return SQLITE_OK;
}

/* Read a whole IN list into b, canonicalised, sorted, de-duplicated; NULLs dropped (they match
 * nothing). One pass: while it runs the bytes may move, so each key keeps its offset in cap;
 * the pointers are set at the end. */
static int read_in_list(feox_vtab *vt, sqlite3_value *list, in_buffers *b, size_t *n_out)
{
    size_t n = 0, used = 0;
    sqlite3_value *v = NULL;
    int rc;
    *n_out = 0;
    for (rc = sqlite3_vtab_in_first(list, &v); rc == SQLITE_OK && v != NULL;
         rc = sqlite3_vtab_in_next(list, &v)) {
        const void *k;
        size_t len;
        if (!feox_key_from_value(vt->options.keytype, v, &k, &len)) {
            continue;
        }
        int grown = in_buffers_reserve(b, n, used, len);
        if (grown != SQLITE_OK) {
            return grown;
        }
        memcpy(b->bytes + used, k, len);
        b->keys[n++] = (key_buf){NULL, len, used};
        used += len;
    }
    if (rc != SQLITE_OK && rc != SQLITE_DONE) {
        return rc;
    }
    key_buf *keys = b->keys;
    for (size_t i = 0; i < n; i++) {
        keys[i].data = b->bytes + keys[i].cap;
        keys[i].cap = keys[i].len;
    }
    if (n > 1) {
        qsort(keys, n, sizeof *keys, key_buf_cmp);
        size_t w = 1;
        for (size_t r = 1; r < n; r++) {
            if (key_buf_cmp(&keys[r], &keys[w - 1]) != 0) {
                keys[w++] = keys[r];
            }
        }
        n = w;
    }
    *n_out = n;
    return SQLITE_OK;
}

/* A further IN list (a check, not the candidates) as one allocation: the key_buf array, then
 * the keys' bytes (freed with sqlite3_free). */
static int read_in_check(feox_vtab *vt, sqlite3_value *list, key_buf **out, size_t *n_out)
{
    in_buffers b = {NULL, 0, NULL, 0};
    size_t n = 0;
    int rc = read_in_list(vt, list, &b, &n);
    size_t bytes = 0;
    for (size_t i = 0; rc == SQLITE_OK && i < n; i++) {
        bytes += b.keys[i].len;
    }
    key_buf *block = rc == SQLITE_OK ? sqlite3_malloc64(n * sizeof *block + bytes + 1) : NULL;
    if (rc == SQLITE_OK && block == NULL) {
        rc = SQLITE_NOMEM;
    }
    if (rc == SQLITE_OK) {
        unsigned char *at = (unsigned char *)(block + n);
        for (size_t i = 0; i < n; i++) {
            memcpy(at, b.keys[i].data, b.keys[i].len);
            block[i] = (key_buf){at, b.keys[i].len, b.keys[i].len};
            at += b.keys[i].len;
        }
        *out = block;
        *n_out = n;
    }
    sqlite3_free(b.keys);
    sqlite3_free(b.bytes);
    return rc;
}

/* Step a point plan to the next candidate that exists and matches; eof when none is left. */
static int point_advance(feox_vt_cursor *c)
{
    feox_vtab *vt = cursor_vtab(c);
    feox_value_release(c->point_value);
    c->point_value = NULL;
    while (c->next_point < c->n_points) {
        size_t i = c->desc ? c->n_points - 1 - c->next_point : c->next_point;
        c->next_point++;
        const key_buf *k = &c->points[i];
        if (!point_matches(c, k)) {
            continue;
        }
        feox_err e = feox_get_ref(vt->entry->store, k->data, k->len, &c->point_value);
        if (e == FEOX_ERR_KEY_NOT_FOUND || e == FEOX_ERR_INVALID_KEY) {
            c->point_value = NULL;
            continue;
        }
        if (e != FEOX_OK) {
            c->point_value = NULL;
            c->eof = true;
            return feox_db_engine_error(vt, e);
        }
        c->point_index = i;
        c->eof = false;
        return SQLITE_OK;
    }
    c->eof = true;
    return SQLITE_OK;
}

/* Check the scan's current record against the far bound; eof if past it or invalid. */
static void scan_check(feox_vt_cursor *c)
{
    if (!feox_cursor_valid(c->scan)) {
        c->eof = true;
        return;
    }
    if (c->desc ? !c->has_lo : !c->has_hi) {
        c->eof = false; /* no far bound: the key need not be read */
        return;
    }
    size_t len;
    const void *key = feox_cursor_key(c->scan, &len);
    c->eof = c->desc ? !above_lo(c, key, len) : !below_hi(c, key, len);
}

/* Advance one row, ignoring LIMIT. */
static int advance(feox_vt_cursor *c)
{
    if (point_plan(c)) {
        return point_advance(c);
    }
    feox_err e = c->desc ? feox_cursor_prev(c->scan) : feox_cursor_next(c->scan);
    if (e != FEOX_OK) {
        c->eof = true;
        return feox_db_engine_error(cursor_vtab(c), e);
    }
    scan_check(c);
    return SQLITE_OK;
}

static int scan_start(feox_vt_cursor *c, sqlite3_int64 offset)
{
    feox_vtab *vt = cursor_vtab(c);
    feox_err e = FEOX_OK;
    if (c->scan != NULL && c->scan_store != vt->entry->store) {
        feox_cursor_close(c->scan);
        c->scan = NULL;
    }
    if (c->scan == NULL) {
        e = feox_cursor_open(vt->entry->store, &c->scan);
        if (e != FEOX_OK) {
            c->scan = NULL;
            return feox_db_engine_error(vt, e);
        }
        c->scan_store = vt->entry->store;
    }
    /* Rows this xFilter will likely read, when a LIMIT says (0: unknown). */
    sqlite3_int64 rows = c->has_limit    ? c->limit_left + offset
                         : c->limit_hint ? c->limit_hint + offset
                                         : 0;
    feox_cursor_expect(c->scan, rows > 0 && rows < 1000000 ? (size_t)rows : 0);
    feox_cursor_no_values(c->scan, c->no_value);
    if (c->has_lo && c->has_hi) {
        int r = key_cmp(c->lo.data, c->lo.len, c->hi.data, c->hi.len);
        if (r > 0 || (r == 0 && !(c->lo_inclusive && c->hi_inclusive))) {
            c->eof = true; /* empty interval */
            return SQLITE_OK;
        }
    }
    /* Database mode: a cache still loading loads this range first (db_mode.c). */
    int rc = feox_db_need_range(vt, c->has_lo ? c->lo.data : NULL, c->lo.len,
                                c->has_hi ? c->hi.data : NULL, c->hi.len);
    if (rc != SQLITE_OK) {
        c->eof = true;
        return rc;
    }
    if (!c->desc) {
        e = c->has_lo ? feox_cursor_seek(c->scan, c->lo_inclusive ? FEOX_SEEK_GE : FEOX_SEEK_GT,
                                         c->lo.data, c->lo.len)
                      : feox_cursor_seek(c->scan, FEOX_SEEK_FIRST, NULL, 0);
    } else {
        e = c->has_hi ? feox_cursor_seek(c->scan, c->hi_inclusive ? FEOX_SEEK_LE : FEOX_SEEK_LT,
                                         c->hi.data, c->hi.len)
                      : feox_cursor_seek(c->scan, FEOX_SEEK_LAST, NULL, 0);
    }
    if (e != FEOX_OK) {
        c->eof = true;
        return feox_db_engine_error(vt, e);
    }
    scan_check(c);
    return SQLITE_OK;
}

/* Append a copy of key to a growing list. */
static int key_list_push(key_buf **list, size_t *n, const void *key, size_t len)
{
    key_buf *grown = sqlite3_realloc64(*list, (*n + 1) * sizeof *grown);
    if (grown == NULL) {
        return SQLITE_NOMEM;
    }
    *list = grown;
    grown[*n].data = NULL;
    if (key_buf_set(&grown[*n], key, len) != SQLITE_OK) {
        return SQLITE_NOMEM;
    }
    (*n)++;
    return SQLITE_OK;
}

/* The plan of a point SELECT, `key = ?` and nothing else (plan.c's encoding). */
#define PLAN_ONE_KEY (FEOX_PLAN_EQ | (FEOX_OP_EQ << FEOX_PLAN_OP_SHIFT))

/* Look the single candidate eq_point up (point_advance for one key and no other constraint). */
static int point_get_one(feox_vt_cursor *c, feox_vtab *vt)
{
    c->next_point = 1;
    feox_err e = feox_get_ref(vt->entry->store, c->eq_point.data, c->eq_point.len, &c->point_value);
    if (e == FEOX_OK) {
        c->point_index = 0;
        c->eof = false;
        return SQLITE_OK;
    }
    c->point_value = NULL;
    if (e == FEOX_ERR_KEY_NOT_FOUND || e == FEOX_ERR_INVALID_KEY) {
        return SQLITE_OK; /* no row (eof since the reset) */
    }
    return feox_db_engine_error(vt, e);
}

/* xFilter of PLAN_ONE_KEY: what the general decoding below does for it, without the loop; the
 * cursor is marked one_key, so that xNext and the next reset take their short paths too. */
static int filter_one_key(feox_vt_cursor *c, feox_vtab *vt, sqlite3_value *operand)
{
    const void *key;
    size_t len;
    c->kind = FEOX_PLAN_EQ;
    c->desc = false;
    c->one_key = true;
    if (!feox_key_from_value(vt->options.keytype, operand, &key, &len)) {
        return SQLITE_OK; /* NULL operand: no row (eof since the reset) */
    }
    int rc = key_buf_set(&c->eq_point, key, len);
    if (rc == SQLITE_OK) {
        c->points = &c->eq_point;
        c->n_points = 1;
        c->points_set = true;
        rc = point_get_one(c, vt);
    }
    if (rc != SQLITE_OK) {
        c->eof = true;
    }
    return rc;
}

/* xFilter: decode idxNum (plan.c) and argv in the same order, then position on the first row. */
int feox_vt_filter(sqlite3_vtab_cursor *cur, int idx_num, const char *idx_str, int argc,
                   sqlite3_value **argv)
{
    feox_vt_cursor *c = (feox_vt_cursor *)cur;
    feox_vtab *vt = cursor_vtab(c);
    sqlite3_int64 offset = 0;
    bool empty = false;
    int rc = SQLITE_OK;
    (void)idx_str;

    cursor_reset(c);
    rc = feox_vtab_check_store_to_read(vt);
    if (rc != SQLITE_OK) {
        return rc;
    }
    c->is_reset = false;
    if (idx_num == PLAN_ONE_KEY && argc == 1) {
        return filter_one_key(c, vt, argv[0]);
    }
    c->kind = (feox_plan_kind)(idx_num & FEOX_PLAN_KIND_MASK);
    c->desc = (idx_num & FEOX_PLAN_DESC) != 0;
    c->no_value = (idx_num & FEOX_PLAN_NO_VALUE) != 0;

    for (int a = 0; a < argc && a < FEOX_PLAN_MAX_ARGS; a++) {
        feox_plan_op op =
            (feox_plan_op)((idx_num >> (FEOX_PLAN_OP_SHIFT + FEOX_PLAN_OP_BITS * a)) & 0xf);
        const void *key;
        size_t len;
        if (op >= FEOX_OP_LIMIT) { /* LIMIT, OFFSET, or a LIMIT_HINT that SQLite enforces */
            if (sqlite3_value_type(argv[a]) == SQLITE_NULL) {
                continue;
            }
            sqlite3_int64 n = sqlite3_value_int64(argv[a]);
            if (op == FEOX_OP_LIMIT && n >= 0) {
                c->has_limit = true;
                c->limit_left = n;
            } else if (op == FEOX_OP_LIMIT_HINT && n > 0) {
                c->limit_hint = n;
            } else if (op == FEOX_OP_OFFSET && n > 0) {
                offset = n;
            }
            continue;
        }
        if (op == FEOX_OP_IN) {
            size_t n = 0;
            if (!c->points_set && c->kind == FEOX_PLAN_IN) {
                rc = read_in_list(vt, argv[a], &c->in_points, &n);
                if (rc != SQLITE_OK) {
                    goto cleanup;
                }
                c->points = c->in_points.keys;
                c->n_points = n;
                c->points_set = true;
            } else {
                key_buf *list = NULL;
                rc = read_in_check(vt, argv[a], &list, &n);
                if (rc != SQLITE_OK) {
                    goto cleanup;
                }
                key_buf **lists =
                    sqlite3_realloc64(c->in_checks, (c->n_in_checks + 1) * sizeof *lists);
                size_t *lens =
                    sqlite3_realloc64(c->in_check_lens, (c->n_in_checks + 1) * sizeof *lens);
                if (lists != NULL) {
                    c->in_checks = lists;
                }
                if (lens != NULL) {
                    c->in_check_lens = lens;
                }
                if (lists == NULL || lens == NULL) {
                    sqlite3_free(list);
                    rc = SQLITE_NOMEM;
                    goto cleanup;
                }
                c->in_checks[c->n_in_checks] = list;
                c->in_check_lens[c->n_in_checks] = n;
                c->n_in_checks++;
            }
            continue;
        }
        if (!feox_key_from_value(vt->options.keytype, argv[a], &key, &len)) {
            empty = true; /* NULL operand: no row can match */
            continue;
        }
        switch (op) {
        case FEOX_OP_EQ:
            if (!c->points_set) {
                rc = key_buf_set(&c->eq_point, key, len);
                c->points = &c->eq_point;
                c->n_points = rc == SQLITE_OK ? 1 : 0;
            } else {
                rc = key_list_push(&c->eq_checks, &c->n_eq_checks, key, len);
            }
            c->points_set = true;
            break;
        case FEOX_OP_GT:
        case FEOX_OP_GE: rc = tighten_lo(c, key, len, op == FEOX_OP_GE); break;
        case FEOX_OP_LT:
        case FEOX_OP_LE: rc = tighten_hi(c, key, len, op == FEOX_OP_LE); break;
        default: break;
        }
        if (rc != SQLITE_OK) {
            goto cleanup;
        }
    }
    if (empty || (c->has_limit && c->limit_left == 0)) {
        c->eof = true;
        goto cleanup;
    }
    if (point_plan(c)) {
        rc = point_advance(c);
    } else {
        rc = scan_start(c, offset);
    }
    while (rc == SQLITE_OK && offset > 0 && !c->eof) {
        rc = advance(c);
        offset--;
    }
cleanup:
    if (rc != SQLITE_OK) {
        c->eof = true;
    }
    return rc;
}

/* xNext: the next row, or eof (also once LIMIT rows were returned). */
int feox_vt_next(sqlite3_vtab_cursor *cur)
{
    feox_vt_cursor *c = (feox_vt_cursor *)cur;
    if (c->eof) {
        return SQLITE_OK;
    }
    if (c->one_key) { /* its one row was the last */
        feox_value_release(c->point_value);
        c->point_value = NULL;
        c->eof = true;
        return SQLITE_OK;
    }
    if (c->has_limit && --c->limit_left <= 0) {
        c->eof = true;
        return SQLITE_OK;
    }
    return advance(c);
}

/* xEof: no current row. */
int feox_vt_eof(sqlite3_vtab_cursor *cur)
{
    return ((feox_vt_cursor *)cur)->eof;
}

/* The current row's key. */
static const void *current_key(feox_vt_cursor *c, size_t *key_len)
{
    if (!point_plan(c)) {
        return feox_cursor_key(c->scan, key_len);
    }
    *key_len = c->points[c->point_index].len;
    return c->points[c->point_index].data;
}

/* The current row's metadata (a scan's value is read by scan_value, when asked for). */
static void current_info(feox_vt_cursor *c, feox_record_info *info)
{
    if (!point_plan(c)) {
        feox_cursor_info(c->scan, info);
    } else {
        feox_value_info(c->point_value, info);
    }
}

/* xColumn of a scan's value: a value that left memory (max_memory) is read back here, so a
 * statement that never asks for it (count(*), SELECT key) never reads it nor fails on it. */
static int scan_value(feox_vt_cursor *c, sqlite3_context *ctx)
{
    const void *value;
    size_t value_len;
    feox_err e = feox_cursor_read_value(c->scan, &value, &value_len);
    if (e != FEOX_OK) {
        return feox_db_engine_error(cursor_vtab(c), e);
    }
    feox_record_info info;
    feox_cursor_info(c->scan, &info);
    feox_result_value(ctx, info.tag, value, value_len);
    return SQLITE_OK;
}

/* xColumn: key, value (its original SQL type), ttl (remaining seconds or NULL), ts (ns). */
int feox_vt_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx, int col)
{
    feox_vt_cursor *c = (feox_vt_cursor *)cur;
    feox_vtab *vt = cursor_vtab(c);
    const void *key;
    size_t key_len;
    feox_record_info info;
    if (c->eof) {
        return SQLITE_OK;
    }
    /* UPDATE reads unassigned columns back; say "unchanged" for all but the key, which xUpdate
     * needs (a nochange key would arrive as NULL). */
    if (col != FEOX_COL_KEY && sqlite3_vtab_nochange(ctx)) {
        return SQLITE_OK;
    }
    if (col == FEOX_COL_VALUE && point_plan(c)) {
        feox_result_value_handle(ctx, c->point_value); /* no copy: see value_codec.c */
        return SQLITE_OK;
    }
    if (col == FEOX_COL_VALUE) {
        return scan_value(c, ctx);
    }
    if (col == FEOX_COL_KEY) {
        key = current_key(c, &key_len);
        if (vt->options.keytype == FEOX_KEYTYPE_BLOB) {
            sqlite3_result_blob64(ctx, key, key_len, SQLITE_TRANSIENT);
        } else {
            sqlite3_result_text64(ctx, key, key_len, SQLITE_TRANSIENT, SQLITE_UTF8);
        }
        return SQLITE_OK;
    }
    current_info(c, &info);
    switch (col) {
    case FEOX_COL_TTL:
        if (info.expires_at_ns == 0) {
            sqlite3_result_null(ctx);
        } else {
            if (!c->now_known) {
                c->now_ns = feox_now_ns(vt->entry->store);
                c->now_known = true;
            }
            uint64_t left = info.expires_at_ns > c->now_ns ? info.expires_at_ns - c->now_ns : 0;
            sqlite3_result_int64(ctx, (sqlite3_int64)(left / 1000000000u));
        }
        break;
    case FEOX_COL_TS: sqlite3_result_int64(ctx, feox_ts_for_sql(info.timestamp_ns)); break;
    default: break;
    }
    return SQLITE_OK;
}

/* xRowid: never called for a WITHOUT ROWID table. */
int feox_vt_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *rowid)
{
    (void)cur;
    *rowid = 0;
    return SQLITE_ERROR;
}
