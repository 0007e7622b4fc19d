/*
 * temp_store_dir.h — the setup and teardown of a test that works on one store file: a fresh
 * directory under /tmp with the store's path in it, and their removal. Only the file the test
 * names is removed, then the directory (left in place if anything else is still in it).
 */
#ifndef FTEST_TEMP_STORE_DIR_H
#define FTEST_TEMP_STORE_DIR_H

#include <stddef.h>

/* Make the directory dir ("/tmp/<name>XXXXXX": mkdtemp fills in the X's in place) and write
 * "<dir>/store.feox" into path (path_size bytes; the file is not created). 0, or -1 if the
 * directory could not be made or the path does not fit. */
int ftest_temp_store_make(char *dir, char *path, size_t path_size);

/* Remove the file at path, then the directory dir. 0 if both were removed, -1 if either was not
 * (a test that may have removed the file itself ignores the result). */
int ftest_temp_store_remove(const char *dir, const char *path);

#endif
