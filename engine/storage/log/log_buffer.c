/*
 * log_buffer.c — the growable byte buffers the log backend encodes records into (the active and
 * pending write-behind buffers, compaction's output and its key arena).
 */
#include "base/alloc.h"
#include "base/error.h"
#include "storage/log/log_backend.h"

feox_err feox_log_buffer_reserve(feox_log_buffer *buf, size_t need)
{
    if (buf->cap >= need)
        return FEOX_OK;
    size_t cap = buf->cap ? buf->cap : 64u << 10;
    while (cap < need)
        cap *= 2;
    uint8_t *data = feox_mem_realloc(buf->data, cap);
    if (!data)
        return feox_fail(FEOX_ERR_NOMEM, "cannot grow a log buffer to %zu bytes", cap);
    buf->data = data;
    buf->cap = cap;
    return FEOX_OK;
}
