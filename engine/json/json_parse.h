/*
 * json_parse.h — a strict RFC 8259 JSON parser that builds cJSON trees whose numbers keep their
 * exact source text.
 *
 * cJSON's own parser turns every number into a double (and prints 15 significant digits), so
 * 9007199254740993 would not survive a parse/print round trip. This parser stores every number as
 * a cJSON_Raw item holding the literal as written; cJSON_PrintUnformatted prints raw items
 * verbatim. Compare raw numbers by value with feox_json_number_equal (json_number.h).
 *
 * Nodes are allocated with the engine allocator, which cJSON's hooks also use (see alloc.h), so a
 * tree from here is freed with cJSON_Delete.
 */
#ifndef FEOX_JSON_PARSE_H
#define FEOX_JSON_PARSE_H

#include <cjson/cJSON.h>
#include <stddef.h>

/* Containers nested deeper than this are rejected (the same limit as cJSON's parser, so every
 * document feox prints parses again with plain cJSON). */
#define FEOX_JSON_MAX_DEPTH 1000

typedef enum feox_json_parse_status {
    FEOX_JSON_PARSED,
    FEOX_JSON_SYNTAX_ERROR,
    FEOX_JSON_NO_MEMORY
} feox_json_parse_status;

/* Why a parse failed: the byte offset in the text and a short reason (a static string). */
typedef struct feox_json_parse_error {
    size_t offset;
    const char *reason;
} feox_json_parse_error;

/* Parse exactly one JSON value (surrounded by optional whitespace) from text[0, len). On success
 * *out receives the tree. On FEOX_JSON_SYNTAX_ERROR, *error (if not NULL) says where and why.
 * Strings containing \u0000 are rejected: cJSON strings are NUL-terminated and would be cut. */
feox_json_parse_status feox_json_parse(const char *text, size_t len, cJSON **out,
                                       feox_json_parse_error *error);

#endif
