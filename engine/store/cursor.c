/*
 * cursor.c — ordered access: the feox_cursor API and feox_range_query built on it.
 *
 * A cursor owns a batch of rows, filled by one ordered-index scan inside one short epoch section
 * (one descent: the index walks on from leaf to sibling leaf itself). A row's key and, when the
 * value is resident and at most CURSOR_COPY_MAX bytes, its value and metadata are copied into the
 * cursor's arena there, so a row costs one copy and no reference-count traffic; a larger or cold
 * value is referenced instead. A cold value (in the backend only) is read back, by the location
 * of the version the fill saw, only when the caller asks for it (feox_cursor_read_value), so a
 * scan of keys or metadata reads no value from the backend and cannot fail on one. Moving inside
 * the batch costs nothing; moving past it re-seeks strictly after (or before) the last key
 * returned. So a cursor never holds a lock or an epoch section between calls, concurrent writers
 * never block it, and it can never return a key twice or out of order. A cursor told it needs no
 * values (feox_cursor_no_values: count(*), key lists) copies none and references none, and does
 * not touch the value's memory; a value asked for anyway is the key's live one, looked up then.
 * The first batch is sized from the caller's feox_cursor_expect (else 8 rows, so a point-ish range
 * does not pay for rows it will not read); later batches grow fourfold up to CURSOR_MAX_BATCH.
 * Expiry is judged with the clock read at seek (only when a row carries an expiry). Freshness:
 * rows ahead of the cursor are the versions read when their batch was filled (each was live at an
 * instant of the fill: a row read through a loaded key's entry that a write swapped out meanwhile
 * shows the version live at the swap, record.h), except that a thread always sees its own writes:
 * if the calling thread wrote anything since the fill, the next step re-reads the index past the
 * current key.
 */
#include <string.h>

#include "base/alloc.h"
#include "store/store_internal.h"

#define CURSOR_FIRST_BATCH 8
#define CURSOR_MAX_BATCH 128
/* How many rows ahead fill prefetches an entry (and half as far its version); 8 and 32 measured
 * slower than 16 for 100-byte values. */
#define PREFETCH_AHEAD 16
/* Values up to this size are copied into the batch; larger ones are referenced (a copy would
 * cost more than the two atomic operations of a reference). */
#define CURSOR_COPY_MAX 512

typedef struct cursor_row {
    /* referenced and resident, or NULL: the value is in the arena (or, no_values, nowhere) */
    feox_record *version;
    size_t key_offset;    /* into the arena */
    size_t value_offset;  /* into the arena when version is NULL */
    uint32_t key_len;
    uint32_t value_len;
    uint32_t tag;
    uint64_t ts_ns;
    uint64_t expires_at_ns;
} cursor_row;

struct feox_cursor {
    feox_store *store;
    bool descending;   /* direction the batch was filled in */
    bool exhausted;    /* the index had nothing beyond the batch when it was filled */
    bool no_values;    /* feox_cursor_no_values: later fills carry keys and metadata only */
    bool valueless;    /* no_values when the batch was filled: its rows have no value */
    size_t count, pos; /* rows[pos] is current while pos < count */
    size_t referenced; /* rows holding a version (release_rows walks the rows only if any) */
    size_t batch_size;
    size_t expected; /* feox_cursor_expect: rows the caller means to read after a seek, 0 unknown */
    uint64_t now_ns;
    uint64_t writes_at_fill; /* feox_thread_write_count when the batch was read */
    cursor_row rows[CURSOR_MAX_BATCH];
    uint8_t *arena; /* keys and copied values of the batch */
    size_t arena_used, arena_cap;
    uint8_t *bound; /* copy of the key to re-seek from */
    size_t bound_cap;
};

static void release_rows(feox_cursor *c)
{
    for (size_t i = 0; c->referenced && i < c->count; i++)
        if (c->rows[i].version)
            feox_record_unref(c->rows[i].version);
    c->referenced = 0;
    c->count = c->pos = 0;
    c->arena_used = 0;
}

/* Grow the arena to hold `end` bytes; false on NOMEM (the arena stays as it was). */
static bool arena_grow(feox_cursor *c, size_t end)
{
    size_t cap = c->arena_cap ? c->arena_cap : 16384; /* 100 rows of 16 + 100 bytes */
    while (cap < end)
        cap *= 2;
    uint8_t *arena = feox_mem_realloc(c->arena, cap);
    if (!arena)
        return false;
    c->arena = arena;
    c->arena_cap = cap;
    return true;
}

/* Room for more bytes at an 8-byte aligned offset of the arena; returns the offset or SIZE_MAX.
 * Inline: called once or twice a row. */
static inline size_t arena_take(feox_cursor *c, size_t more)
{
    size_t at = (c->arena_used + 7) & ~(size_t)7;
    /* never NULL once taken, even for 0 bytes */
    if (__builtin_expect(at + more > c->arena_cap || !c->arena, 0) && !arena_grow(c, at + more))
        return SIZE_MAX;
    c->arena_used = at + more;
    return at;
}

feox_err feox_cursor_open(feox_store *s, feox_cursor **out)
{
    feox_clear_error_detail();
    if (!s || !out)
        return feox_fail(FEOX_ERR_INVALID_ARGUMENT, "store or output pointer is NULL");
    if (feox_store_inherited(s))
        return feox_store_forked_error(s);
    feox_err loaded = feox_store_loaded(s); /* a cursor exists only once the store has loaded */
    if (loaded)
        return loaded;
    feox_cursor *c = feox_mem_alloc(sizeof *c);
    if (!c)
        return feox_fail(FEOX_ERR_NOMEM, "allocation failed");
    /* The rows are written before they are read: clear the header only. */
    memset(c, 0, offsetof(feox_cursor, rows));
    c->arena = c->bound = NULL;
    c->arena_used = c->arena_cap = c->bound_cap = 0;
    c->store = s;
    *out = c;
    return FEOX_OK;
}

void feox_cursor_expect(feox_cursor *c, size_t rows)
{
    if (c)
        c->expected = rows;
}

void feox_cursor_no_values(feox_cursor *c, bool no_values)
{
    if (c)
        c->no_values = no_values;
}

void feox_cursor_close(feox_cursor *c)
{
    if (!c)
        return;
    release_rows(c);
    feox_mem_free(c->arena);
    feox_mem_free(c->bound);
    feox_mem_free(c);
}

static bool is_descending(feox_scan_from from)
{
    return from == FEOX_SCAN_LAST || from == FEOX_SCAN_LE || from == FEOX_SCAN_LT;
}

/* Add one live row (inside the epoch section): copy its key, and its value when small and
 * resident, else take a reference (neither with no_values). False on NOMEM (nothing added). */
static bool add_row(feox_cursor *c, const feox_entry *e, feox_record *r)
{
    uint32_t key_len = e->key_len; /* a bitfield: read once, the memcpys would reload it */
    size_t key_at = arena_take(c, key_len);
    if (key_at == SIZE_MAX)
        return false;
    cursor_row *row = &c->rows[c->count];
    row->key_offset = key_at;
    row->key_len = key_len;
    memcpy(c->arena + key_at, e->key, key_len);
    if (c->valueless) {
        row->value_offset = 0;
        row->version = NULL;
    } else if (!(r->flags & FEOX_RECORD_COLD) && r->value_len <= CURSOR_COPY_MAX) {
        size_t value_at = arena_take(c, r->value_len);
        if (value_at == SIZE_MAX)
            return false;
        memcpy(c->arena + value_at, r->value, r->value_len);
        row->value_offset = value_at;
        row->version = NULL;
    } else {
        feox_record_ref(r);
        row->value_offset = 0;
        row->version = r;
        c->referenced++;
    }
    row->value_len = r->value_len;
    row->tag = r->tag;
    row->ts_ns = r->ts_ns;
    row->expires_at_ns = feox_record_expires_at(r);
    c->count++;
    return true;
}

/* Ask for the version's header and, unless no values are wanted, the first lines of its value
 * (copied next). */
static inline void prefetch_version(const feox_entry *e, bool no_values)
{
    /* Relaxed: only prefetched here; feox_entry_live reads it with acquire. */
    const char *version = (const char *)atomic_load_explicit(&e->current, memory_order_relaxed);
    __builtin_prefetch(version);
    if (no_values)
        return;
    __builtin_prefetch(version + 64);
    __builtin_prefetch(version + 128);
}

/* Fill the batch from the index; on NOMEM the cursor is left empty. */
static feox_err fill(feox_cursor *c, feox_scan_from from, const void *bound, size_t bound_len)
{
    feox_store *s = c->store;
    release_rows(c);
    c->valueless = c->no_values;
    c->descending = is_descending(from);
    c->exhausted = false;
    c->writes_at_fill = feox_thread_write_count;
    feox_entry *entries[CURSOR_MAX_BATCH];
    feox_err err = FEOX_OK;
    feox_epoch_enter();
    for (;;) {
        size_t n =
            feox_ordered_index_scan(s->ordered, from, bound, bound_len, entries, c->batch_size);
        /* Each row costs two dependent misses (entry, then its version). A software pipeline
         * overlaps them across rows: the entry PREFETCH_AHEAD rows ahead is requested, and the
         * version of the entry half as far ahead (already arriving). Prefetching the whole batch
         * up front would overflow the L1 cache on a large batch before the rows are copied. */
        for (size_t i = 0; i < n && i < PREFETCH_AHEAD; i++)
            __builtin_prefetch(entries[i]);
        for (size_t i = 0; i < n && i < PREFETCH_AHEAD / 2; i++)
            prefetch_version(entries[i], c->valueless);
        for (size_t i = 0; i < n; i++) {
            if (i + PREFETCH_AHEAD < n)
                __builtin_prefetch(entries[i + PREFETCH_AHEAD]);
            if (i + PREFETCH_AHEAD / 2 < n)
                prefetch_version(entries[i + PREFETCH_AHEAD / 2], c->valueless);
            feox_record *r = feox_entry_live(s, entries[i], &c->now_ns);
            if (!r)
                continue;
            if (!add_row(c, entries[i], r)) {
                err = FEOX_ERR_NOMEM;
                break;
            }
        }
        if (err || c->count || n < c->batch_size) {
            c->exhausted = n < c->batch_size;
            break;
        }
        /* A whole batch of deleted or expired entries: continue past the last one (its key
         * stays valid while we are inside this section). */
        from = c->descending ? FEOX_SCAN_LT : FEOX_SCAN_GT;
        bound = entries[n - 1]->key;
        bound_len = entries[n - 1]->key_len;
    }
    feox_epoch_exit();
    c->batch_size = c->batch_size * 4 < CURSOR_MAX_BATCH ? c->batch_size * 4 : CURSOR_MAX_BATCH;
    if (err) {
        release_rows(c);
        return feox_fail(err, "allocation failed");
    }
    return FEOX_OK;
}

/* Copy the current key into c->bound (the arena is reused by the next fill). */
static feox_err save_current_key(feox_cursor *c, size_t *len)
{
    const cursor_row *row = &c->rows[c->pos];
    if (row->key_len > c->bound_cap || !c->bound) { /* keys are never empty: never 0 bytes */
        uint8_t *b = feox_mem_realloc(c->bound, row->key_len);
        if (!b)
            return feox_fail(FEOX_ERR_NOMEM, "allocation failed");
        c->bound = b;
        c->bound_cap = row->key_len;
    }
    memcpy(c->bound, c->arena + row->key_offset, row->key_len);
    *len = row->key_len;
    return FEOX_OK;
}

static feox_err seek_internal(feox_cursor *c, feox_seek_mode mode, const void *key, size_t key_len)
{
    static const feox_scan_from scan_of[] = {
        [FEOX_SEEK_FIRST] = FEOX_SCAN_FIRST, [FEOX_SEEK_LAST] = FEOX_SCAN_LAST,
        [FEOX_SEEK_GE] = FEOX_SCAN_GE,       [FEOX_SEEK_GT] = FEOX_SCAN_GT,
        [FEOX_SEEK_LE] = FEOX_SCAN_LE,       [FEOX_SEEK_LT] = FEOX_SCAN_LT};
    c->now_ns = 0; /* read on the first row that carries an expiry */
    size_t want = c->expected ? c->expected : CURSOR_FIRST_BATCH;
    c->batch_size = want < CURSOR_MAX_BATCH ? want : CURSOR_MAX_BATCH;
    return fill(c, scan_of[mode], key, key_len);
}

feox_err feox_cursor_seek(feox_cursor *c, feox_seek_mode mode, const void *key, size_t key_len)
{
    feox_clear_error_detail();
    if (!c || (unsigned)mode > FEOX_SEEK_LT)
        return feox_fail(FEOX_ERR_INVALID_ARGUMENT, "cursor is NULL or mode is invalid");
    if (feox_store_inherited(c->store))
        return feox_store_forked_error(c->store);
    if (mode != FEOX_SEEK_FIRST && mode != FEOX_SEEK_LAST) {
        if (!key && key_len)
            return feox_fail(FEOX_ERR_INVALID_ARGUMENT, "key is NULL");
        if (key_len > FEOX_MAX_KEY_SIZE)
            return feox_fail(FEOX_ERR_INVALID_KEY, "key of %zu bytes exceeds %u", key_len,
                             FEOX_MAX_KEY_SIZE);
        if (!key)
            key = "";
    }
    feox_stat_inc(c->store->stats, FEOX_STAT_RANGE_QUERIES);
    return seek_internal(c, mode, key, key_len);
}

bool feox_cursor_valid(const feox_cursor *c)
{
    return c && c->pos < c->count;
}

/* Step one row in the given direction, refilling past the current key when needed. */
static feox_err step(feox_cursor *c, bool towards_descending)
{
    if (!feox_cursor_valid(c))
        return FEOX_OK;
    if (feox_store_inherited(c->store))
        return feox_store_forked_error(c->store);
    bool batch_fresh = c->writes_at_fill == feox_thread_write_count;
    if (towards_descending == c->descending && c->pos + 1 < c->count && batch_fresh) {
        c->pos++; /* the common case: a step inside the batch cannot fail (no detail to clear) */
        return FEOX_OK;
    }
    feox_clear_error_detail();
    if (towards_descending == c->descending && c->exhausted && batch_fresh) {
        release_rows(c);
        return FEOX_OK;
    }
    size_t len = 0;
    feox_err err = save_current_key(c, &len);
    if (err)
        return err;
    if (towards_descending != c->descending)
        c->batch_size = CURSOR_FIRST_BATCH; /* direction change: start small again */
    return fill(c, towards_descending ? FEOX_SCAN_LT : FEOX_SCAN_GT, c->bound, len);
}

feox_err feox_cursor_next(feox_cursor *c)
{
    return step(c, false);
}

feox_err feox_cursor_prev(feox_cursor *c)
{
    return step(c, true);
}

const void *feox_cursor_key(const feox_cursor *c, size_t *key_len)
{
    if (!feox_cursor_valid(c)) {
        if (key_len)
            *key_len = 0;
        return NULL;
    }
    const cursor_row *row = &c->rows[c->pos];
    if (key_len)
        *key_len = row->key_len;
    return c->arena + row->key_offset;
}

/* The row's value if it is in memory (in the arena or a referenced version), else NULL: it must
 * be read back from the backend (or, no_values, looked up) first. */
static inline const void *resident_value(const feox_cursor *c, const cursor_row *row)
{
    if (!row->version)
        return c->valueless ? NULL : c->arena + row->value_offset;
    return (row->version->flags & FEOX_RECORD_COLD) ? NULL : row->version->value;
}

/* The row shows live (a reference the caller hands over) from now on: its value, resident, and
 * its info. */
static feox_err show_live_version(feox_cursor *c, cursor_row *row, feox_record *live)
{
    const void *key = c->arena + row->key_offset;
    feox_record *resident; /* live itself, holding the reference, or a copy */
    feox_err err = feox_record_materialize(c->store, key, row->key_len, live, &resident);
    if (err || resident != live)
        feox_record_unref(live);
    if (err)
        return err;
    if (row->version)
        feox_record_unref(row->version);
    else
        c->referenced++;
    row->version = resident;
    row->value_len = resident->value_len;
    row->tag = resident->tag;
    row->ts_ns = resident->ts_ns;
    row->expires_at_ns = feox_record_expires_at(resident);
    return FEOX_OK;
}

/* The row's version could not be read back (CORRUPT): if a write has replaced it since the fill,
 * a store file's compaction may have dropped its bytes (it moves live versions only), so the
 * row shows the key's live version instead, as a fill after that write would have (a store
 * file's isolation is none). Else err stands. */
static feox_err read_back_superseded(feox_cursor *c, cursor_row *row, feox_err err)
{
    feox_record *live = feox_store_live_version(c->store, c->arena + row->key_offset, row->key_len);
    if (!live || live == row->version) {
        if (live)
            feox_record_unref(live);
        return err;
    }
    return show_live_version(c, row, live);
}

/* A valueless row's value: the key's live version, which the row shows from now on. */
static feox_err look_up_value(feox_cursor *c, cursor_row *row)
{
    feox_record *live = feox_store_live_version(c->store, c->arena + row->key_offset, row->key_len);
    if (!live)
        return feox_fail(FEOX_ERR_KEY_NOT_FOUND, "key not found");
    return show_live_version(c, row, live);
}

/* Read the row's cold version back, by its location (the version the fill saw, not the key's
 * value now), and keep the resident copy in its place: the value is read once however often it
 * is asked for. */
static feox_err read_back(feox_cursor *c, cursor_row *row)
{
    if (feox_store_inherited(c->store))
        return feox_store_forked_error(c->store);
    if (!row->version)
        return look_up_value(c, row);
    const void *key = c->arena + row->key_offset;
    feox_record *resident;
    feox_err err = feox_record_materialize(c->store, key, row->key_len, row->version, &resident);
    if (err == FEOX_ERR_CORRUPT)
        return read_back_superseded(c, row, err);
    if (err)
        return err;
    feox_record_unref(row->version);
    row->version = resident;
    return FEOX_OK;
}

feox_err feox_cursor_read_value(feox_cursor *c, const void **value, size_t *value_len)
{
    feox_clear_error_detail();
    if (!value || !value_len)
        return feox_fail(FEOX_ERR_INVALID_ARGUMENT, "value or value_len is NULL");
    *value = NULL;
    *value_len = 0;
    if (!feox_cursor_valid(c))
        return feox_fail(FEOX_ERR_INVALID_ARGUMENT, "cursor is not on a record");
    cursor_row *row = &c->rows[c->pos];
    const void *v = resident_value(c, row);
    if (!v) {
        feox_err err = read_back(c, row);
        if (err)
            return err;
        v = row->version->value;
    }
    *value = v;
    *value_len = row->value_len;
    return FEOX_OK;
}

const void *feox_cursor_value(feox_cursor *c, size_t *value_len)
{
    const void *value = NULL;
    size_t len = 0;
    if (feox_cursor_valid(c)) {
        value = resident_value(c, &c->rows[c->pos]); /* the common case: no read, no call */
        len = c->rows[c->pos].value_len;
        if (!value && feox_cursor_read_value(c, &value, &len) != FEOX_OK)
            len = 0;
    }
    if (value_len)
        *value_len = len;
    return value;
}

void feox_cursor_info(const feox_cursor *c, feox_record_info *info)
{
    if (!info)
        return;
    memset(info, 0, sizeof *info);
    if (!feox_cursor_valid(c))
        return;
    const cursor_row *row = &c->rows[c->pos];
    info->value_len = row->value_len;
    info->tag = row->tag;
    info->timestamp_ns = row->ts_ns;
    info->expires_at_ns = row->expires_at_ns;
}

feox_err feox_range_query(feox_store *s, const void *start, size_t start_len, const void *end,
                          size_t end_len, size_t limit, feox_range_fn fn, void *ctx,
                          size_t *visited)
{
    feox_clear_error_detail();
    if (visited)
        *visited = 0;
    if (!s || !fn || (!start && start_len) || (!end && end_len))
        return feox_fail(FEOX_ERR_INVALID_ARGUMENT, "store, callback or bound is NULL");
    if (feox_store_inherited(s))
        return feox_store_forked_error(s);
    feox_err loaded = feox_store_loaded(s); /* a cursor exists only once the store has loaded */
    if (loaded)
        return loaded;
    if (start_len > FEOX_MAX_KEY_SIZE || end_len > FEOX_MAX_KEY_SIZE)
        return feox_fail(FEOX_ERR_INVALID_KEY, "range bound exceeds %u bytes", FEOX_MAX_KEY_SIZE);
    if (!start)
        start = "";
    if (!end)
        end = "";
    feox_stat_inc(s->stats, FEOX_STAT_RANGE_QUERIES);
    if (limit == 0 || feox_key_compare(start, start_len, end, end_len) > 0)
        return FEOX_OK;
    feox_cursor *c;
    feox_err err = feox_cursor_open(s, &c);
    if (err)
        return err;
    size_t n = 0;
    err = seek_internal(c, FEOX_SEEK_GE, start, start_len);
    while (!err && feox_cursor_valid(c) && n < limit) {
        size_t key_len, value_len;
        const void *key = feox_cursor_key(c, &key_len);
        if (feox_key_compare(key, key_len, end, end_len) > 0)
            break;
        const void *value;
        err = feox_cursor_read_value(c, &value, &value_len);
        if (err)
            break;
        feox_record_info info;
        feox_cursor_info(c, &info);
        n++;
        if (fn(ctx, key, key_len, value, value_len, &info))
            break;
        err = feox_cursor_next(c);
    }
    feox_cursor_close(c);
    if (visited)
        *visited = n;
    return err;
}
