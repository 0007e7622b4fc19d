/*
 * json_pointer.h — RFC 6901 JSON Pointer syntax: splitting a pointer into reference tokens,
 * matching a token against an object member name, and reading array indices.
 *
 * Tokens are handled in their escaped form ("~0" for '~', "~1" for '/') so that walking a
 * pointer allocates nothing; only a token that becomes a new member name is decoded.
 */
#ifndef FEOX_JSON_POINTER_H
#define FEOX_JSON_POINTER_H

#include <stdbool.h>
#include <stddef.h>

/* One reference token, still escaped: text[0, len) lies inside the pointer string. */
typedef struct feox_json_pointer_token {
    const char *text;
    size_t len;
} feox_json_pointer_token;

/* True when pointer is "" or starts with '/' and every '~' is followed by '0' or '1'. */
bool feox_json_pointer_is_valid(const char *pointer);

/* Number of reference tokens in a valid pointer ("" has none, "/" has one empty token). */
size_t feox_json_pointer_token_count(const char *pointer);

/* Reads the token that *cursor (at a '/') starts and advances *cursor past it. Returns false at the
 * end of the pointer. */
bool feox_json_pointer_next_token(const char **cursor, feox_json_pointer_token *token);

/* True when the token, unescaped, equals the NUL-terminated member name. */
bool feox_json_pointer_token_equals(feox_json_pointer_token token, const char *name);

/* The unescaped token as a new NUL-terminated string (feox_mem_alloc), or NULL when out of
 * memory. */
char *feox_json_pointer_token_decode(feox_json_pointer_token token);

/* True for the token "-", which names the position after the last array element. */
bool feox_json_pointer_token_is_append(feox_json_pointer_token token);

/* Reads an array index: decimal digits without leading zeros ("0" itself is fine) that fit in a
 * size_t. Returns false for anything else. */
bool feox_json_pointer_token_index(feox_json_pointer_token token, size_t *index);

#endif
