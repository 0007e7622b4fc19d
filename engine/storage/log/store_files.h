/*
 * store_files.h — the engine's only ways to create, open, inspect and remove store files, so that
 * it never touches a file it did not create (the rules are in feox.h, "Store files", and in
 * FORMAT.md, "Files"), and the table of every store-file descriptor, which a fork() child
 * closes. Used by file_lock.c, log_backend.c, compaction.c and store_registry.c (fork handlers).
 */
#ifndef FEOX_STORE_FILES_H
#define FEOX_STORE_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/log/log_format.h"

/* Descriptors and fork(). Every descriptor of a store file or of a compaction rewrite (any that
 * carries, or may come to carry, a store's flock) is opened by the functions below and closed
 * with feox_store_file_close; between the two it is in a process-wide table. The child of a
 * fork() closes every descriptor in the table (feox_store_files_fork_child, called by
 * store_registry.c's atfork handler), so no child keeps a store locked, whatever a thread of the
 * parent was doing at the fork: opening a store, compacting one, or inside feox_store_file_info,
 * feox_remove_store_file or feox_rename_store_file. store_files.c says why open and close run
 * under the lock the prepare handler takes. */

/* Close fd, a descriptor from the functions below, and drop it from the table (errno kept). */
void feox_store_file_close(int fd);

/* How many store-file descriptors this process holds (tests: 0 once every store is closed). */
size_t feox_store_file_descriptors(void);

/* fork(): prepare (no open or close of a store file is half done; returns true if the table
 * holds a descriptor), parent, child (closes every descriptor in the table, never
 * flock(LOCK_UN); empties it). */
bool feox_store_files_fork_prepare(void);
void feox_store_files_fork_parent(void);
void feox_store_files_fork_child(void);

/* Open an existing store file without creating or truncating anything: a non-regular file is
 * refused after stat() and before any open (a FIFO open cannot block). access is O_RDONLY or
 * O_RDWR. Errors: NOT_FOUND, FORMAT (not a regular file, a dangling symbolic link), IO,
 * READ_ONLY (O_RDWR refused with EACCES, EPERM or EROFS: the process may not write the file). */
feox_err feox_store_file_open_existing(const char *path, int access, int *fd_out);

/* Read and verify the header of the open file fd (named path in messages).
 * Errors: FORMAT ("'<path>' exists and is not a feox store", unknown version), CORRUPT, IO. */
feox_err feox_store_file_read_header(int fd, const char *path, feox_log_header *out);

/* Create a store file at path holding exactly header, only if nothing is at path: the name
 * appears only once the header is durable (O_TMPFILE, write, fsync, link, directory fsync; where
 * O_TMPFILE is unsupported, O_CREAT|O_EXCL then write and fsync). *fd_out is open O_RDWR and holds
 * an exclusive flock taken before the name appeared. If something exists at path, fails with IO
 * and *existed = true (nothing was touched). */
feox_err feox_store_file_create(const char *path, const uint8_t header[FEOX_LOG_HEADER_SIZE],
                                int *fd_out, bool *existed);

/* Remove a compaction leftover at compact_path only if it is a feox store recording owner_hash
 * and nobody holds its lock. FEOX_OK if it was removed or nothing is there; otherwise the error
 * that kept it (FORMAT, CORRUPT, NOT_OWNER, LOCKED, IO) and the file is left as it is. */
feox_err feox_store_file_remove_leftover(const char *compact_path, uint64_t owner_hash);

/* The log backend's file_info, remove_files and rename_files: the contracts of
 * feox_store_file_info, feox_remove_store_file and feox_rename_store_file (feox.h). */
feox_err feox_log_file_info(const char *path, feox_file_info *out);
feox_err feox_log_remove_file(const char *path, const char *owner, unsigned flags);
feox_err feox_log_rename_file(const char *from, const char *to, const char *owner,
                              const char *new_owner, unsigned flags);

#endif
