/*
 * fault_vfs.h — a wrapper VFS for tests of the extension: it passes every call to the default VFS
 * and asks a test's function first, before each file operation a fault can hit, whether that one
 * fails and with which SQLite code. Built only into the tests linked with SQLite (the `_ext_`
 * tests, compiled with SQLITE_CORE): fault_vfs.c is empty for the others.
 */
#ifndef FEOX_TEST_FAULT_VFS_H
#define FEOX_TEST_FAULT_VFS_H

/* The operations a fault can hit. FEOX_FAULT_SHM_LOCK is asked only when a lock is taken (an
 * unlock that failed would leave the lock held). */
typedef enum feox_fault_op {
    FEOX_FAULT_READ,
    FEOX_FAULT_WRITE,
    FEOX_FAULT_TRUNCATE,
    FEOX_FAULT_SYNC,
    FEOX_FAULT_FILESIZE,
    FEOX_FAULT_SHM_MAP,
    FEOX_FAULT_SHM_LOCK,
    FEOX_FAULT_DELETE,
    FEOX_FAULT_OPEN
} feox_fault_op;

/* Asked before each operation: 0 lets it through, any other value is what it returns instead. */
typedef int (*feox_fault_fn)(feox_fault_op op);

/* Register a VFS named name (not the default one) over the default VFS, asking fault before each
 * operation. One per process: a second call changes the name's function. xSync never calls the
 * real fsync (these tests simulate no power loss: skipping it keeps their sweeps fast). */
void feox_fault_vfs_register(const char *name, feox_fault_fn fault);

#endif
