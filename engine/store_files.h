/*
 * store_files.h — the engine's only ways to create, open, inspect and remove store files, so that
 * it never touches a file it did not create (the rules are in feox.h, "Store files", and in
 * engine/FORMAT.md, "Files"). Used by file_lock.c, log_writer.c and compaction.c.
 */
#ifndef FEOX_STORE_FILES_H
#define FEOX_STORE_FILES_H

#include <stdbool.h>
#include <stdint.h>

#include "log_format.h"

/* Open an existing store file without creating or truncating anything: a non-regular file is
 * refused after stat() and before any open (a FIFO open cannot block). access is O_RDONLY or
 * O_RDWR. Errors: NOT_FOUND, FORMAT (not a regular file, a dangling symbolic link), IO. */
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

#endif
