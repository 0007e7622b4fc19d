/*
 * sql_exec.h — running SQL a test expects to succeed, for the tests of the extension (the `_ext_`
 * tests, compiled with SQLITE_CORE and linked with SQLite and cmocka): sql_exec.c is empty for
 * the others.
 */
#ifndef FEOX_TEST_SQL_EXEC_H
#define FEOX_TEST_SQL_EXEC_H

#include <sqlite3.h>

/* Run sql (one or more statements, rows ignored); on an error fail the current cmocka test with
 * the statement and SQLite's message. */
void ftest_exec_ok(sqlite3 *db, const char *sql);

#endif
