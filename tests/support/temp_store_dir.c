/* temp_store_dir.c — see temp_store_dir.h. */
#include "temp_store_dir.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int ftest_temp_store_make(char *dir, char *path, size_t path_size)
{
    if (!mkdtemp(dir))
        return -1;
    int n = snprintf(path, path_size, "%s/store.feox", dir);
    if (n > 0 && (size_t)n < path_size)
        return 0;
    rmdir(dir); /* made for nothing */
    return -1;
}

int ftest_temp_store_remove(const char *dir, const char *path)
{
    int file = unlink(path);
    int directory = rmdir(dir);
    return file == 0 && directory == 0 ? 0 : -1;
}
