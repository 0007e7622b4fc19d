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
/* Return err after recording a detail (convenience for `return feox_fail(ERR, "...")`). */
feox_err feox_fail(feox_err err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
