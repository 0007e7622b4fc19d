/*
 * error.h — per-thread error detail behind feox_error_detail(), and the feox_strerror table.
 */
#ifndef FEOX_ERROR_H
#define FEOX_ERROR_H

#include "feox.h"

/* Record a printf-style detail for the calling thread's next feox_error_detail(). */
void feox_set_error_detail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Forget the calling thread's detail (done at the start of every public call that can fail). */
void feox_clear_error_detail(void);
/* Record a detail and evaluate to err: `return feox_fail(FEOX_ERR_X, "why %d", n);`. A macro so
 * that static analysis sees which code each path returns. */
#define feox_fail(err, ...) (feox_set_error_detail(__VA_ARGS__), (err))

#endif
