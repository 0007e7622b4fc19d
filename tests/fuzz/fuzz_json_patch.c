/*
 * fuzz_json_patch.c — libFuzzer target for feox_json_patch_apply (engine/json/json_patch.h).
 *
 * Input: document bytes, a 0x00 byte, patch bytes (no 0x00: the whole input is the document and
 * the patch is "[]"). Checks, beyond "never crashes" (ASan/UBSan):
 *   - the input text is never modified, and a failure leaves *out / *out_len untouched;
 *   - failures are FEOX_ERR_JSON_PATCH with a message (no allocator is failing here);
 *   - a success gives NUL-terminated text of out_len bytes that plain cJSON parses, and that
 *     patching with "[]" reproduces byte for byte (the output is a fixed point of the round trip).
 * Seeds: tests/fuzz/corpus/fuzz_json_patch/ (from the RFC 6902 conformance suite).
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "feox.h"
#include "json/json_patch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char untouched_marker;

static void check(int condition, const char *what)
{
    if (!condition) {
        fprintf(stderr, "fuzz_json_patch: %s\n", what);
        abort();
    }
}

/* An exact-size heap copy, so ASan catches any read past the given length. */
static char *exact_copy(const uint8_t *bytes, size_t len)
{
    char *copy = malloc(len ? len : 1);
    check(copy != NULL, "malloc failed");
    if (len)
        memcpy(copy, bytes, len);
    return copy;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *separator = memchr(data, 0, size);
    size_t doc_len = separator ? (size_t)(separator - data) : size;
    const uint8_t *patch_bytes = separator ? separator + 1 : (const uint8_t *)"[]";
    size_t patch_len = separator ? size - doc_len - 1 : 2;

    char *doc = exact_copy(data, doc_len);
    char *patch = exact_copy(patch_bytes, patch_len);
    char *out = &untouched_marker;
    size_t out_len = 424242;
    char errmsg[200] = "";
    feox_err err = feox_json_patch_apply(doc, doc_len, patch, patch_len, &out, &out_len, errmsg,
                                         sizeof(errmsg));
    check(memcmp(doc, data, doc_len) == 0, "document text modified");
    check(memcmp(patch, patch_bytes, patch_len) == 0, "patch text modified");

    if (err != FEOX_OK) {
        check(err == FEOX_ERR_JSON_PATCH, "unexpected error code");
        check(errmsg[0] != '\0', "failure without a message");
        check(out == &untouched_marker && out_len == 424242, "failure touched the output");
    } else {
        check(out != &untouched_marker && out != NULL, "success without output");
        check(strlen(out) == out_len, "out_len does not match the text");
        cJSON *reparsed = cJSON_ParseWithLength(out, out_len);
        check(reparsed != NULL, "output does not parse with cJSON");
        cJSON_Delete(reparsed);

        char *again = &untouched_marker;
        size_t again_len = 0;
        err = feox_json_patch_apply(out, out_len, "[]", 2, &again, &again_len, errmsg,
                                    sizeof(errmsg));
        check(err == FEOX_OK, "output rejected when patched again");
        check(again_len == out_len && memcmp(again, out, out_len) == 0,
              "output is not a fixed point of the round trip");
        feox_free(again);
        feox_free(out);
    }
    free(doc);
    free(patch);
    return 0;
}
