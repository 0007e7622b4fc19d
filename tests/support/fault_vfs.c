/*
 * fault_vfs.c — the wrapper VFS of fault_vfs.h: each file it opens holds the default VFS's file
 * right after its own header, and each method asks the test's function before it passes the call
 * on. Compiled into every test; it holds code only where SQLite is linked (SQLITE_CORE: the
 * `_ext_` tests).
 */
#include "fault_vfs.h"

#ifdef SQLITE_CORE
#include <sqlite3.h>
#include <stdlib.h>

typedef struct fault_file {
    sqlite3_file base;
    sqlite3_file *real; /* follows this struct */
} fault_file;

static sqlite3_vfs *real_vfs;
static sqlite3_vfs fault_vfs;
static feox_fault_fn fault_fn;
#define REAL(f) (((fault_file *)(f))->real)

/* What op returns instead of running (0: it runs). */
static int fault_for(feox_fault_op op)
{
    return fault_fn ? fault_fn(op) : 0;
}

static int ff_close(sqlite3_file *f)
{
    return REAL(f)->pMethods->xClose(REAL(f));
}
static int ff_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off)
{
    int rc = fault_for(FEOX_FAULT_READ);
    return rc ? rc : REAL(f)->pMethods->xRead(REAL(f), buf, n, off);
}
static int ff_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
    int rc = fault_for(FEOX_FAULT_WRITE);
    return rc ? rc : REAL(f)->pMethods->xWrite(REAL(f), buf, n, off);
}
static int ff_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    int rc = fault_for(FEOX_FAULT_TRUNCATE);
    return rc ? rc : REAL(f)->pMethods->xTruncate(REAL(f), size);
}
static int ff_sync(sqlite3_file *f, int flags)
{
    (void)f;
    (void)flags; /* no power loss here: the real fsync would only slow the sweeps */
    return fault_for(FEOX_FAULT_SYNC);
}
static int ff_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    int rc = fault_for(FEOX_FAULT_FILESIZE);
    return rc ? rc : REAL(f)->pMethods->xFileSize(REAL(f), size);
}
static int ff_lock(sqlite3_file *f, int level)
{
    return REAL(f)->pMethods->xLock(REAL(f), level);
}
static int ff_unlock(sqlite3_file *f, int level)
{
    return REAL(f)->pMethods->xUnlock(REAL(f), level);
}
static int ff_check_reserved_lock(sqlite3_file *f, int *out)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}
static int ff_file_control(sqlite3_file *f, int op, void *arg)
{
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}
static int ff_sector_size(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}
static int ff_device_characteristics(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int ff_shm_map(sqlite3_file *f, int region, int size, int extend, void volatile **out)
{
    int rc = fault_for(FEOX_FAULT_SHM_MAP);
    return rc ? rc : REAL(f)->pMethods->xShmMap(REAL(f), region, size, extend, out);
}
static int ff_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    int rc = (flags & SQLITE_SHM_LOCK) ? fault_for(FEOX_FAULT_SHM_LOCK) : 0;
    return rc ? rc : REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}
static void ff_shm_barrier(sqlite3_file *f)
{
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}
static int ff_shm_unmap(sqlite3_file *f, int delete_flag)
{
    return REAL(f)->pMethods->xShmUnmap(REAL(f), delete_flag);
}

static const sqlite3_io_methods fault_io = {
    .iVersion = 2,
    .xClose = ff_close,
    .xRead = ff_read,
    .xWrite = ff_write,
    .xTruncate = ff_truncate,
    .xSync = ff_sync,
    .xFileSize = ff_file_size,
    .xLock = ff_lock,
    .xUnlock = ff_unlock,
    .xCheckReservedLock = ff_check_reserved_lock,
    .xFileControl = ff_file_control,
    .xSectorSize = ff_sector_size,
    .xDeviceCharacteristics = ff_device_characteristics,
    .xShmMap = ff_shm_map,
    .xShmLock = ff_shm_lock,
    .xShmBarrier = ff_shm_barrier,
    .xShmUnmap = ff_shm_unmap,
};

static int fv_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *out)
{
    (void)vfs;
    fault_file *f = (fault_file *)file;
    f->base.pMethods = NULL;
    int rc = fault_for(FEOX_FAULT_OPEN);
    if (rc)
        return rc;
    f->real = (sqlite3_file *)(f + 1);
    rc = real_vfs->xOpen(real_vfs, name, f->real, flags, out);
    if (f->real->pMethods)
        f->base.pMethods = &fault_io;
    return rc;
}
static int fv_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    (void)vfs;
    int rc = fault_for(FEOX_FAULT_DELETE);
    return rc ? rc : real_vfs->xDelete(real_vfs, name, sync_dir);
}
static int fv_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    (void)vfs;
    return real_vfs->xAccess(real_vfs, name, flags, out);
}
static int fv_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    (void)vfs;
    return real_vfs->xFullPathname(real_vfs, name, n, out);
}
static int fv_randomness(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return real_vfs->xRandomness(real_vfs, n, out);
}
static int fv_sleep(sqlite3_vfs *vfs, int us)
{
    (void)vfs;
    return real_vfs->xSleep(real_vfs, us);
}
static int fv_current_time(sqlite3_vfs *vfs, double *out)
{
    (void)vfs;
    return real_vfs->xCurrentTime(real_vfs, out);
}
static int fv_get_last_error(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return real_vfs->xGetLastError(real_vfs, n, out);
}
static int fv_current_time_int64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
    (void)vfs;
    return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

void feox_fault_vfs_register(const char *name, feox_fault_fn fault)
{
    fault_fn = fault;
    if (!real_vfs)
        real_vfs = sqlite3_vfs_find(NULL);
    if (!real_vfs)
        abort(); /* a test without SQLite's default VFS cannot run */
    fault_vfs = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)sizeof(fault_file) + real_vfs->szOsFile,
        .mxPathname = real_vfs->mxPathname,
        .zName = name,
        .xOpen = fv_open,
        .xDelete = fv_delete,
        .xAccess = fv_access,
        .xFullPathname = fv_full_pathname,
        .xRandomness = fv_randomness,
        .xSleep = fv_sleep,
        .xCurrentTime = fv_current_time,
        .xGetLastError = fv_get_last_error,
        .xCurrentTimeInt64 = fv_current_time_int64,
    };
    if (sqlite3_vfs_register(&fault_vfs, 0) != SQLITE_OK)
        abort();
}
#endif
