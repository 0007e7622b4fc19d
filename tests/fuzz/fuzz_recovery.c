/*
 * fuzz_recovery.c — libFuzzer target: file images given to recovery must never crash, hang or
 * over-read; recovery returns OK (dropping damage) or a clean FORMAT/CORRUPT/IO error; whatever
 * it replays is well-formed; replaying the repaired file again gives the same records.
 *
 * Input: byte 0 selects the mode.
 *   'R'  the rest is a raw file image.
 *   else the rest is a recipe, so the fuzzer reaches deep into valid files it could never forge
 *        (checksums): a valid header, then records built from (op, key_len, value_len, bytes)
 *        triples, then damage ops (0xFF, offset16, xor byte) and an optional truncation.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/log/log_backend.h"
#include "storage/log/log_format.h"
#include "storage/log/log_storage.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct tally {
    uint64_t puts, dels, key_bytes, value_bytes;
} tally;

static feox_err count_put(void *ctx, const feox_storage_record *rec)
{
    const void *key = rec->key, *value = rec->value;
    uint32_t key_len = rec->key_len, value_len = rec->value_len;
    uint64_t location = rec->location;
    tally *t = ctx;
    if (!key || key_len == 0 || key_len > FEOX_MAX_KEY_SIZE || value_len > FEOX_MAX_VALUE_SIZE ||
        !value || (location & FEOX_LOG_OFFSET_MASK) < FEOX_LOG_HEADER_SIZE)
        abort();
    /* Touch every byte so ASan sees any over-read. */
    volatile uint8_t sink = 0;
    for (uint32_t i = 0; i < key_len; i++)
        sink ^= ((const uint8_t *)key)[i];
    for (uint32_t i = 0; i < value_len; i++)
        sink ^= ((const uint8_t *)value)[i];
    t->puts++;
    t->key_bytes += key_len;
    t->value_bytes += value_len;
    return FEOX_OK;
}

static feox_err count_del(void *ctx, const void *key, uint32_t key_len, uint64_t ts)
{
    (void)key, (void)ts;
    tally *t = ctx;
    if (key_len == 0 || key_len > FEOX_MAX_KEY_SIZE)
        abort();
    t->dels++;
    t->key_bytes += key_len;
    return FEOX_OK;
}

static bool no_relocate(void *ctx, const void *k, uint32_t kl, uint64_t o, uint64_t n)
{
    (void)ctx, (void)k, (void)kl, (void)o, (void)n;
    return false;
}

static feox_err no_live(void *ctx, int (*fn)(void *, const feox_storage_record *), void *fn_ctx)
{
    (void)ctx, (void)fn, (void)fn_ctx;
    return FEOX_OK;
}

static uint64_t zero_clock(void *ctx)
{
    (void)ctx;
    return 0;
}

/* Build a file image from a recipe (see the top of the file). */
static uint8_t *build_image(const uint8_t *in, size_t len, size_t *out_len)
{
    size_t cap = FEOX_LOG_HEADER_SIZE + len * 4 + 1024, at = FEOX_LOG_HEADER_SIZE;
    uint8_t *img = calloc(1, cap);
    const uint64_t file_id = 0x1234567890abcdefu;
    feox_log_header_encode(img, file_id, 0, 0);
    size_t i = 0;
    while (i + 3 <= len && in[i] != 0xFF) {
        uint8_t op = (in[i] & 1) ? FEOX_LOG_DELETE : FEOX_LOG_PUT;
        uint32_t key_len = 1u + in[i + 1] % 16, value_len = op == FEOX_LOG_PUT ? in[i + 2] : 0;
        i += 3;
        size_t need = (size_t)feox_log_record_size(key_len, value_len);
        if (at + need > cap)
            break;
        uint8_t bytes[16 + 256] = {0};
        size_t avail = len - i < key_len + value_len ? len - i : key_len + value_len;
        memcpy(bytes, in + i, avail);
        i += avail;
        feox_log_record_encode(img + at, file_id, at, op, bytes, key_len, bytes + key_len,
                               value_len, (uint32_t)at, at, 0);
        at += need;
    }
    while (i + 4 <= len && in[i] == 0xFF) { /* damage */
        size_t off = ((size_t)in[i + 1] | (size_t)in[i + 2] << 8) % at;
        img[off] ^= in[i + 3] ? in[i + 3] : 1;
        i += 4;
    }
    if (i < len && in[i] < at) /* truncate to a point in the last records */
        at -= in[i];
    *out_len = at;
    return img;
}

static feox_err replay_file(const char *path, tally *t, feox_stats *st)
{
    feox_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.path = path;
    cfg.sync = FEOX_SYNC_OFF;
    cfg.disable_compaction = true;
    cfg.flush_interval_ms = 3600000;
    feox_storage_host hooks = {NULL, no_relocate, no_live, zero_clock, NULL};
    feox_storage *b;
    const feox_storage_methods *log = &feox_log_storage_methods;
    feox_err err = log->open(log, &cfg, &hooks, &b);
    if (err)
        return err;
    feox_storage_sink sink = {.ctx = t, .put = count_put, .del = count_del};
    err = b->methods->load(b, NULL, &sink);
    if (!err) {
        char detail[256];
        memset(st, 0, sizeof *st);
        b->methods->get_stats(b, st);
        feox_err check = b->methods->check(b, detail, sizeof detail);
        if (check != FEOX_OK && check != FEOX_ERR_CORRUPT)
            abort();
    }
    feox_err close_err = b->methods->close(b);
    if (!err && close_err)
        abort();
    return err;
}

/* True if the file at path holds exactly len bytes equal to want. */
static bool file_equals(const char *path, const uint8_t *want, size_t len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    uint8_t *got = malloc(len + 1);
    size_t n = fread(got, 1, len + 1, f);
    fclose(f);
    bool same = n == len && (len == 0 || memcmp(got, want, len) == 0);
    free(got);
    return same;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t image_len;
    uint8_t *image;
    if (data[0] == 'R') {
        image_len = size - 1;
        image = malloc(image_len + 1);
        memcpy(image, data + 1, image_len);
    } else {
        image = build_image(data + 1, size - 1, &image_len);
    }
    /* The in-memory scanner must agree with itself on the image... */
    feox_log_header header;
    if (image_len >= FEOX_LOG_HEADER_SIZE &&
        feox_log_header_decode(image, image_len, "fuzz", &header) == FEOX_OK) {
        feox_log_scan_result r;
        if (feox_log_scan_memory(image, header.file_id, FEOX_LOG_HEADER_SIZE, image_len, NULL, NULL,
                                 &r))
            abort();
        if (r.valid_end > image_len || r.valid_end < FEOX_LOG_HEADER_SIZE)
            abort();
    }
    /* ...and the backend must open the file image cleanly, twice with the same result. */
    char path[64];
    snprintf(path, sizeof path, "/dev/shm/feox-fuzz-recovery-%d", (int)getpid());
    if (access("/dev/shm", W_OK) != 0)
        snprintf(path, sizeof path, "/tmp/feox-fuzz-recovery-%d", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(image, 1, image_len, f) != image_len)
        abort();
    fclose(f);
    tally first = {0}, second = {0};
    feox_stats st1, st2;
    feox_err err = replay_file(path, &first, &st1);
    if (err != FEOX_OK && err != FEOX_ERR_FORMAT && err != FEOX_ERR_CORRUPT)
        abort();
    if (err != FEOX_OK && !file_equals(path, image, image_len))
        abort(); /* a file that is refused is never written */
    if (err == FEOX_OK) {
        if (replay_file(path, &second, &st2) != FEOX_OK)
            abort();
        /* Recovery is idempotent: the repaired file replays the same records, and no tail is
         * left to drop. */
        if (first.puts != second.puts || first.dels != second.dels ||
            first.value_bytes != second.value_bytes ||
            st2.recovered_records != st1.recovered_records)
            abort();
    }
    unlink(path);
    free(image);
    return 0;
}
