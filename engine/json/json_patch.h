/*
 * json_patch.h — RFC 6902 JSON Patch applied to a JSON document held as text.
 *
 * Pure function of its inputs (no store access): the store reads the current value, calls
 * feox_json_patch_apply, and publishes the result only if the value did not change meanwhile.
 */
#ifndef FEOX_JSON_PATCH_H
#define FEOX_JSON_PATCH_H

#include <stddef.h>

#include "feox.h"

/* Apply patch (a JSON array of operations) to doc. On success returns FEOX_OK and a new document
 * in *out / *out_len, allocated with feox_mem_alloc (NUL-terminated; out_len excludes the NUL).
 * Numbers the patch does not touch keep their exact original text; numbers the patch writes keep
 * the patch's text. On failure *out is untouched and the return is:
 *   FEOX_ERR_JSON_PATCH  doc or patch not valid JSON, patch not an array, or an operation failed;
 *                        errmsg receives e.g. "operation 2 (remove): path /a/b does not exist"
 *   FEOX_ERR_NOMEM       an allocation failed (nothing leaked)
 * errmsg may be NULL. */
feox_err feox_json_patch_apply(const char *doc, size_t doc_len, const char *patch,
                               size_t patch_len, char **out, size_t *out_len, char *errmsg,
                               size_t errmsg_size);

#endif
