/*
 * sql_exec.c — see sql_exec.h. Compiled into every test; it holds code only where SQLite is
 * linked (SQLITE_CORE: the `_ext_` tests).
 */
#include "sql_exec.h"

#ifdef SQLITE_CORE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

void ftest_exec_ok(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        fail_msg("%s\n  -> %s", sql, err ? err : "?");
    }
    sqlite3_free(err);
}
#endif
