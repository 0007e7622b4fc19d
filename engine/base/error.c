/*
 * error.c — error code descriptions (feox_strerror) and the per-thread detail message.
 */
#include "base/error.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char thread_detail[512];

const char *feox_strerror(feox_err err)
{
    switch (err) {
    case FEOX_OK: return "ok";
    case FEOX_ERR_INVALID_ARGUMENT: return "invalid argument";
    case FEOX_ERR_INVALID_KEY: return "invalid key size (1 to 102400 bytes)";
    case FEOX_ERR_INVALID_VALUE: return "invalid value size (at most 4194304 bytes)";
    case FEOX_ERR_KEY_NOT_FOUND: return "key not found";
    case FEOX_ERR_KEY_EXISTS: return "key already exists";
    case FEOX_ERR_OLDER_TIMESTAMP: return "timestamp is not newer than the record's";
    case FEOX_ERR_OUT_OF_MEMORY: return "memory limit exceeded";
    case FEOX_ERR_NOMEM: return "out of memory";
    case FEOX_ERR_INVALID_OPERATION: return "value is not a 64-bit integer";
    case FEOX_ERR_JSON_PATCH: return "JSON patch failed";
    case FEOX_ERR_IO: return "I/O error";
    case FEOX_ERR_DISK_FULL: return "disk full";
    case FEOX_ERR_CORRUPT: return "store file is corrupt";
    case FEOX_ERR_FORMAT: return "not a feox store file or unsupported format version";
    case FEOX_ERR_LOCKED: return "store file is locked by another process";
    case FEOX_ERR_DEGRADED: return "store file failed to sync earlier; writes refused";
    case FEOX_ERR_CLOSED: return "store is closed";
    case FEOX_ERR_NOT_FOUND: return "store file does not exist";
    case FEOX_ERR_NOT_OWNER: return "store file belongs to another table or database";
    case FEOX_ERR_FORKED: return "store was opened by the parent process before fork()";
    case FEOX_ERR_STALE: return "storage change feed no longer reaches the store";
    case FEOX_ERR_TAG_MISMATCH: return "value's tag is not the one expected";
    case FEOX_ERR_READ_ONLY: return "store is read-only";
    }
    return "unknown error";
}

const char *feox_error_detail(void)
{
    return thread_detail;
}

void feox_clear_error_detail(void)
{
    thread_detail[0] = '\0';
}

static void set_detail(const char *fmt, va_list ap)
{
    vsnprintf(thread_detail, sizeof thread_detail, fmt, ap);
}

void feox_set_error_detail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_detail(fmt, ap);
    va_end(ap);
}
