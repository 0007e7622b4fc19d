/*
 * cursor.c — ordered access: the feox_cursor API and feox_range_query built on it.
 *
 * A cursor owns a small batch of rows (key copies in an arena + a reference on each version),
 * filled by one ordered-index scan inside one short epoch section. Moving inside the batch costs
 * nothing; moving past it re-seeks strictly after (or before) the last key returned. So a cursor
 * never holds a lock or an epoch section between calls, concurrent writers never block it, and it
 * can never return a key twice or out of order. The batch grows from 8 to 64 rows so a point-ish
 * range does not pay for rows it will not read. Expiry is judged with the clock read at seek.
 * Freshness: rows ahead of the cursor are the versions read when their batch was filled (each was
 * live at that instant), except that a thread always sees its own writes: if the calling thread
 * wrote anything since the fill, the next step re-reads the index past the current key.
 */
#include <string.h>

#include "base/alloc.h"
#include "store/store_internal.h"

#define CURSOR_FIRST_BATCH 8
#define CURSOR_MAX_BATCH 64

typedef struct cursor_row {
    feox_record *version; /* referenced, resident */
    size_t key_offset;    /* into the key arena */
    uint32_t key_len;
} cursor_row;

struct feox_cursor {
    feox_store *store;
    bool descending;   /* direction the batch was filled in */
    bool exhausted;    /* the index had nothing beyond the batch when it was filled */
    size_t count, pos; /* rows[pos] is current while pos < count */
    size_t batch_size;
    uint64_t now_ns;
    uint64_t writes_at_fill; /* feox_thread_write_count when the batch was read */
    cursor_row rows[CURSOR_MAX_BATCH];
    uint8_t *keys;
    size_t keys_used, keys_cap;
    uint8_t *bound; /* copy of the key to re-seek from */
    size_t bound_cap;
};

static void release_rows(feox_cursor *c)
{
    for (size_t i = 0; i < c->count; i++)
        feox_record_unref(c->rows[i].version);
    c->count = c->pos = 0;
    c->keys_used = 0;
}

static bool reserve_keys(feox_cursor *c, size_t more)
{
    if (c->keys_used + more <= c->keys_cap)
        return true;
    size_t cap = c->keys_cap ? c->keys_cap : 1024;
    while (cap < c->keys_used + more)
        cap *= 2;
    uint8_t *keys = feox_mem_realloc(c->keys, cap);
    if (!keys)
        return false;
    c->keys = keys;
    c->keys_cap = cap;
    return true;
}

feox_err feox_cursor_open(feox_store *s, feox_cursor **out)
{
    feox_clear_error_detail();
    if (!s || !out)
        return feox_fail(FEOX_ERR_INVALID_ARGUMENT, "store or output pointer is NULL");
    if (feox_store_inherited(s))
        return feox_store_forked_error(s);
    feox_cursor *c = feox_mem_calloc(1, sizeof *c);
    if (!c)
        return feox_fail(FEOX_ERR_NOMEM, "allocation failed");
    c->store = s;
    *out = c;
    return FEOX_OK;
}

void feox_cursor_close(feox_cursor *c)
{
    if (!c)
        return;
    release_rows(c);
    feox_mem_free(c->keys);
    feox_mem_free(c->bound);
    feox_mem_free(c);
}

static bool is_descending(feox_scan_from from)
{
    return from == FEOX_SCAN_LAST || from == FEOX_SCAN_LE || from == FEOX_SCAN_LT;
}

/* Fill the batch from the index; on NOMEM the cursor is left empty. */
static feox_err fill(feox_cursor *c, feox_scan_from from, const void *bound, size_t bound_len)
{
    feox_store *s = c->store;
    release_rows(c);
    c->descending = is_descending(from);
    c->exhausted = false;
    c->writes_at_fill = feox_thread_write_count;
    feox_entry *entries[CURSOR_MAX_BATCH];
    feox_err err = FEOX_OK;
    feox_epoch_enter();
    for (;;) {
        size_t n =
            feox_ordered_index_scan(s->ordered, from, bound, bound_len, entries, c->batch_size);
        /* Each row costs two dependent misses (entry, then its version) and the reference taken
         * below is a locked instruction that stops later loads from overlapping: prefetch both
         * levels for the whole batch first, so the misses of different rows overlap. */
        for (size_t i = 0; i < n; i++)
            __builtin_prefetch(entries[i]);
        for (size_t i = 0; i < n; i++) {
            /* The version's header and the first lines of its value (read by the caller next). */
            /* Relaxed: only prefetched here; feox_entry_live below reads it with acquire. */
            const char *version =
                (const char *)atomic_load_explicit(&entries[i]->current, memory_order_relaxed);
            __builtin_prefetch(version);
            __builtin_prefetch(version + 64);
            __builtin_prefetch(version + 128);
        }
        for (size_t i = 0; i < n; i++) {
            feox_record *r = feox_entry_live(s, entries[i], &c->now_ns);
            if (!r)
                continue;
            if (!reserve_keys(c, entries[i]->key_len)) {
                err = FEOX_ERR_NOMEM;
                break;
            }
            feox_record_ref(r);
            memcpy(c->keys + c->keys_used, entries[i]->key, entries[i]->key_len);
            c->rows[c->count++] = (cursor_row){
                .version = r, .key_offset = c->keys_used, .key_len = entries[i]->key_len};
            c->keys_used += entries[i]->key_len;
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
    /* Cold values are read back outside the epoch section (it may do I/O). */
    for (size_t i = 0; !err && i < c->count; i++) {
        feox_record *resident;
        err = feox_record_materialize(s, c->keys + c->rows[i].key_offset, c->rows[i].key_len,
                                      c->rows[i].version, &resident);
        if (!err && resident != c->rows[i].version) {
            feox_record_unref(c->rows[i].version);
            c->rows[i].version = resident;
        }
    }
    if (err) {
        release_rows(c);
        return err == FEOX_ERR_NOMEM ? feox_fail(err, "allocation failed") : err;
    }
    return FEOX_OK;
}

/* Copy the current key into c->bound (the arena is reused by the next fill). */
static feox_err save_current_key(feox_cursor *c, size_t *len)
{
    const cursor_row *row = &c->rows[c->pos];
    if (row->key_len > c->bound_cap) {
        uint8_t *b = feox_mem_realloc(c->bound, row->key_len);
        if (!b)
            return feox_fail(FEOX_ERR_NOMEM, "allocation failed");
        c->bound = b;
        c->bound_cap = row->key_len;
    }
    memcpy(c->bound, c->keys + row->key_offset, row->key_len);
    *len = row->key_len;
    return FEOX_OK;
}

static feox_err seek_internal(feox_cursor *c, feox_seek_mode mode, const void *key, size_t key_len)
{
    static const feox_scan_from scan_of[] = {
        [FEOX_SEEK_FIRST] = FEOX_SCAN_FIRST, [FEOX_SEEK_LAST] = FEOX_SCAN_LAST,
        [FEOX_SEEK_GE] = FEOX_SCAN_GE,       [FEOX_SEEK_GT] = FEOX_SCAN_GT,
        [FEOX_SEEK_LE] = FEOX_SCAN_LE,       [FEOX_SEEK_LT] = FEOX_SCAN_LT};
    c->now_ns = feox_store_now(c->store);
    c->batch_size = CURSOR_FIRST_BATCH;
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
    feox_clear_error_detail();
    if (!feox_cursor_valid(c))
        return FEOX_OK;
    if (feox_store_inherited(c->store))
        return feox_store_forked_error(c->store);
    bool batch_fresh = c->writes_at_fill == feox_thread_write_count;
    if (towards_descending == c->descending && c->pos + 1 < c->count && batch_fresh) {
        c->pos++;
        return FEOX_OK;
    }
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
    return c->keys + row->key_offset;
}

const void *feox_cursor_value(const feox_cursor *c, size_t *value_len)
{
    if (!feox_cursor_valid(c)) {
        if (value_len)
            *value_len = 0;
        return NULL;
    }
    const feox_record *r = c->rows[c->pos].version;
    if (value_len)
        *value_len = r->value_len;
    return r->value;
}

void feox_cursor_info(const feox_cursor *c, feox_record_info *info)
{
    if (!info)
        return;
    memset(info, 0, sizeof *info);
    if (!feox_cursor_valid(c))
        return;
    const feox_record *r = c->rows[c->pos].version;
    info->value_len = r->value_len;
    info->tag = r->tag;
    info->timestamp_ns = r->ts_ns;
    info->expires_at_ns = r->expires_at_ns;
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
        const void *value = feox_cursor_value(c, &value_len);
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
