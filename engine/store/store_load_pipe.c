/*
 * store_load_pipe.c — a large run of put_ordered versions applied on a second thread: while the
 * backend's thread reads its next rows (for the "sqlite" backend, SQLite stepping <t>_data), a
 * worker makes the versions and entries and links them into both indexes (feox_put_run). The
 * backend's thread only copies each record's bytes into a batch.
 *
 * Why a copy: a record's bytes are valid during the sink's call only (feox_storage.h), and the
 * backend's thread must not wait for the worker row by row. Batches of up to PIPE_BATCH_ROWS
 * records and PIPE_BATCH_BYTES bytes go round a ring of PIPE_BATCHES: the backend's thread fills
 * the batch at `submitted`, the worker applies the one at `applied`; a slot is the filler's
 * while submitted - applied < PIPE_BATCHES. A record larger than a batch is applied on the
 * backend's thread once the worker is idle (drain), in order.
 *
 * Ordering and coherence. The worker applies records in the order they came, through the same
 * run (and, for those the run does not take, the same locked put) as the backend's thread would,
 * so what the indexes hold once drained is what a single thread would have left. Nothing but the
 * worker touches the run or the store's indexes through it while records are queued: the store's
 * sink drains the pipe before any other put or del, at apply_ordered, and before refresh
 * returns; drain returns once the worker has applied every record and the run (the mutex orders
 * the worker's writes before the caller's next reads). Readers of the store go on meanwhile as
 * they do during any run (lock-free, seeing each key when it is published).
 *
 * What the worker may call: the engine only (the run, the store's locked put, its clock for an
 * expiry, the allocator): never the backend, whose connection belongs to its own thread.
 *
 * Errors. The worker stops applying at its first error and keeps its code and detail; the
 * backend's next put_ordered or the drain returns it (the detail set again on the caller's
 * thread). The records after it are dropped, as the contract of put_ordered allows ("some may
 * be missing": a backend that sees the error loads again).
 *
 * Writes made on the worker count for the caller's thread too (feox_thread_write_count, added at
 * drain): a cursor of that thread sees the index changed under it, as after its own writes.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/thread.h"
#include "store/store_internal.h"

#define PIPE_BATCHES 4
#define PIPE_BATCH_ROWS 512u
#define PIPE_BATCH_BYTES ((size_t)128 << 10)

typedef struct pipe_batch {
    size_t count; /* records in recs */
    size_t used;  /* bytes of bytes[] their keys and values take */
    bool apply;   /* apply the run after this batch (a drain) */
    feox_storage_record recs[PIPE_BATCH_ROWS];
    unsigned char bytes[PIPE_BATCH_BYTES];
} pipe_batch;

struct feox_load_pipe {
    feox_put_run *run;
    feox_err (*put)(void *ctx, const feox_storage_record *rec); /* for what the run does not take */
    void *put_ctx;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t work; /* a batch submitted, or stop */
    pthread_cond_t room; /* a batch applied */
    /* Under lock: */
    uint64_t submitted, applied; /* batches */
    bool stop;
    feox_err err;       /* the worker's first error (FEOX_OK: none) */
    char detail[256];   /* its detail */
    uint64_t rows_done; /* records the worker has handled, for the caller's write count */
    /* The filler's own: */
    uint64_t rows_counted; /* of rows_done, added to the caller's write count so far */
    pipe_batch *batches[PIPE_BATCHES];
};

/* ---- the worker ---- */

static feox_err apply_record(feox_load_pipe *p, const feox_storage_record *rec)
{
    bool taken;
    feox_err err = feox_put_run_add(p->run, rec, &taken);
    return err || taken ? err : p->put(p->put_ctx, rec);
}

static feox_err apply_batch(feox_load_pipe *p, const pipe_batch *b)
{
    feox_err err = FEOX_OK;
    for (size_t i = 0; i < b->count && !err; i++)
        err = apply_record(p, &b->recs[i]);
    if (b->apply) {
        feox_err applied = feox_put_run_apply(p->run);
        err = err ? err : applied;
    }
    return err;
}

static void *worker(void *arg)
{
    feox_load_pipe *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (p->applied == p->submitted && !p->stop)
            pthread_cond_wait(&p->work, &p->lock);
        if (p->applied == p->submitted)
            break; /* stop, and nothing left */
        const pipe_batch *b = p->batches[p->applied % PIPE_BATCHES];
        bool failed = p->err != FEOX_OK;
        pthread_mutex_unlock(&p->lock);
        feox_err err = failed ? FEOX_OK : apply_batch(p, b);
        pthread_mutex_lock(&p->lock);
        if (err) { /* the first: every later batch is dropped */
            p->err = err;
            snprintf(p->detail, sizeof p->detail, "%s", feox_error_detail());
        }
        p->rows_done += b->count;
        p->applied++;
        pthread_cond_signal(&p->room);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* ---- the backend's thread ---- */

static pipe_batch *filling(feox_load_pipe *p)
{
    return p->batches[p->submitted % PIPE_BATCHES];
}

/* Hand the filled batch to the worker and wait for the next slot to be free (the caller owns
 * it then, emptied). Locked. */
static void submit_locked(feox_load_pipe *p)
{
    p->submitted++;
    pthread_cond_signal(&p->work);
    while (p->submitted - p->applied >= PIPE_BATCHES)
        pthread_cond_wait(&p->room, &p->lock);
    pipe_batch *next = filling(p);
    next->count = 0;
    next->used = 0;
    next->apply = false;
}

/* The worker's error (its detail set on this thread: it stays, every later call returns it), or
 * FEOX_OK. Locked. */
static feox_err take_error_locked(feox_load_pipe *p)
{
    if (p->err)
        feox_set_error_detail("%s", p->detail);
    return p->err;
}

feox_err feox_load_pipe_drain(feox_load_pipe *p)
{
    pthread_mutex_lock(&p->lock);
    filling(p)->apply = true;
    submit_locked(p);
    while (p->applied != p->submitted)
        pthread_cond_wait(&p->room, &p->lock);
    feox_err err = take_error_locked(p);
    /* The caller's cursors see the worker's writes as their own (store_internal.h). */
    feox_thread_write_count += p->rows_done - p->rows_counted;
    p->rows_counted = p->rows_done;
    pthread_mutex_unlock(&p->lock);
    return err;
}

feox_err feox_load_pipe_put(feox_load_pipe *p, const feox_storage_record *rec)
{
    size_t bytes = (size_t)rec->key_len + (rec->value ? rec->value_len : 0);
    if (bytes > PIPE_BATCH_BYTES) { /* too large to queue: the worker idle, apply it here */
        feox_err err = feox_load_pipe_drain(p);
        return err ? err : apply_record(p, rec);
    }
    pipe_batch *b = filling(p);
    if (b->count == PIPE_BATCH_ROWS || b->used + bytes > PIPE_BATCH_BYTES) {
        pthread_mutex_lock(&p->lock);
        submit_locked(p);
        feox_err err = take_error_locked(p);
        pthread_mutex_unlock(&p->lock);
        if (err)
            return err;
        b = filling(p);
    }
    feox_storage_record *queued = &b->recs[b->count++];
    *queued = *rec;
    queued->key = b->bytes + b->used;
    memcpy(b->bytes + b->used, rec->key, rec->key_len);
    b->used += rec->key_len;
    if (rec->value) {
        queued->value = b->bytes + b->used;
        memcpy(b->bytes + b->used, rec->value, rec->value_len);
        b->used += rec->value_len;
    }
    return FEOX_OK;
}

static void free_pipe(feox_load_pipe *p)
{
    for (int i = 0; i < PIPE_BATCHES; i++)
        feox_mem_free(p->batches[i]);
    feox_mem_free(p);
}

feox_load_pipe *feox_load_pipe_start(feox_put_run *run,
                                     feox_err (*put)(void *ctx, const feox_storage_record *rec),
                                     void *put_ctx)
{
    feox_load_pipe *p = feox_mem_alloc(sizeof *p);
    if (!p)
        return NULL;
    memset(p, 0, sizeof *p);
    p->run = run;
    p->put = put;
    p->put_ctx = put_ctx;
    for (int i = 0; i < PIPE_BATCHES; i++) {
        p->batches[i] = feox_mem_alloc(sizeof *p->batches[i]);
        if (!p->batches[i]) {
            free_pipe(p);
            return NULL;
        }
        p->batches[i]->count = p->batches[i]->used = 0;
        p->batches[i]->apply = false;
    }
    if (pthread_mutex_init(&p->lock, NULL) != 0) {
        free_pipe(p);
        return NULL;
    }
    if (pthread_cond_init(&p->work, NULL) != 0) {
        pthread_mutex_destroy(&p->lock);
        free_pipe(p);
        return NULL;
    }
    if (pthread_cond_init(&p->room, NULL) != 0) {
        pthread_cond_destroy(&p->work);
        pthread_mutex_destroy(&p->lock);
        free_pipe(p);
        return NULL;
    }
    /* The run passes to the worker here (thread creation orders the caller's writes to it). The
     * worker blocks the application's signals (base/thread.h). */
    if (feox_thread_start(&p->thread, worker, p) != 0) {
        pthread_cond_destroy(&p->room);
        pthread_cond_destroy(&p->work);
        pthread_mutex_destroy(&p->lock);
        free_pipe(p);
        return NULL;
    }
    return p;
}

feox_err feox_load_pipe_stop(feox_load_pipe *p)
{
    if (!p)
        return FEOX_OK;
    feox_err err = feox_load_pipe_drain(p);
    pthread_mutex_lock(&p->lock);
    p->stop = true;
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->thread, NULL); /* the run is the caller's again */
    pthread_cond_destroy(&p->room);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->lock);
    free_pipe(p);
    return err;
}
