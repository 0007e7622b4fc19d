/*
 * json_pointer.c — RFC 6901 JSON Pointer tokens (see json_pointer.h).
 */
#include "json/json_pointer.h"

#include <stdint.h>
#include <string.h>

#include "base/alloc.h"

bool feox_json_pointer_is_valid(const char *pointer)
{
    if (pointer[0] != '\0' && pointer[0] != '/')
        return false;
    for (const char *c = pointer; *c; c++) {
        if (*c == '~' && c[1] != '0' && c[1] != '1')
            return false;
    }
    return true;
}

size_t feox_json_pointer_token_count(const char *pointer)
{
    size_t count = 0;
    for (const char *c = pointer; *c; c++)
        count += *c == '/';
    return count;
}

bool feox_json_pointer_next_token(const char **cursor, feox_json_pointer_token *token)
{
    const char *start = *cursor;
    if (*start != '/')
        return false;
    start++;
    const char *end = strchr(start, '/');
    if (!end)
        end = start + strlen(start);
    token->text = start;
    token->len = (size_t)(end - start);
    *cursor = end;
    return true;
}

bool feox_json_pointer_token_equals(feox_json_pointer_token token, const char *name)
{
    size_t i = 0;
    for (; i < token.len; i++, name++) {
        char c = token.text[i];
        if (c == '~')
            c = token.text[++i] == '0' ? '~' : '/';
        if (*name != c)
            return false;
    }
    return *name == '\0';
}

char *feox_json_pointer_token_decode(feox_json_pointer_token token)
{
    char *name = feox_mem_alloc(token.len + 1);
    if (!name)
        return NULL;
    size_t out = 0;
    for (size_t i = 0; i < token.len; i++) {
        char c = token.text[i];
        if (c == '~')
            c = token.text[++i] == '0' ? '~' : '/';
        name[out++] = c;
    }
    name[out] = '\0';
    return name;
}

bool feox_json_pointer_token_is_append(feox_json_pointer_token token)
{
    return token.len == 1 && token.text[0] == '-';
}

bool feox_json_pointer_token_index(feox_json_pointer_token token, size_t *index)
{
    if (token.len == 0 || (token.len > 1 && token.text[0] == '0'))
        return false;
    size_t value = 0;
    for (size_t i = 0; i < token.len; i++) {
        char c = token.text[i];
        if (c < '0' || c > '9')
            return false;
        size_t digit = (size_t)(c - '0');
        if (value > (SIZE_MAX - digit) / 10)
            return false;
        value = value * 10 + digit;
    }
    *index = value;
    return true;
}
