/*
 * json_parse.c — strict recursive-descent JSON parser producing cJSON trees with raw-text numbers
 * (see json_parse.h for why).
 *
 * Grammar is RFC 8259: no comments, no trailing commas, no leading zeros, only the four JSON
 * whitespace characters, and one value per text. Strings must not contain raw control characters;
 * \u escapes are decoded to UTF-8 (surrogate pairs combined, lone surrogates rejected). Bytes
 * >= 0x80 are copied as they are, like cJSON does.
 */
#include "json/json_parse.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "base/alloc.h"

typedef struct json_parser {
    const char *text;
    size_t len;
    size_t pos;
    int depth;
    bool out_of_memory;
    const char *reason; /* first syntax error seen; NULL while none */
} json_parser;

static cJSON *parse_value(json_parser *p);

static void *syntax_error(json_parser *p, const char *reason)
{
    if (!p->reason && !p->out_of_memory)
        p->reason = reason;
    return NULL;
}

static void *no_memory(json_parser *p)
{
    p->out_of_memory = true;
    return NULL;
}

static cJSON *new_item(json_parser *p, int type)
{
    cJSON *item = feox_mem_calloc(1, sizeof(*item));
    if (!item)
        return no_memory(p);
    item->type = type;
    return item;
}

static void skip_whitespace(json_parser *p)
{
    while (p->pos < p->len) {
        char c = p->text[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            return;
        p->pos++;
    }
}

static bool at_end(const json_parser *p)
{
    return p->pos >= p->len;
}

static char peek(const json_parser *p)
{
    return p->pos < p->len ? p->text[p->pos] : '\0';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Reads the four hex digits after "\u" at s; returns the code unit or -1. */
static long read_hex4(const char *s)
{
    long value = 0;
    for (int i = 0; i < 4; i++) {
        int digit = hex_value(s[i]);
        if (digit < 0)
            return -1;
        value = value * 16 + digit;
    }
    return value;
}

static size_t encode_utf8(unsigned long code_point, char *dst)
{
    if (code_point < 0x80) {
        dst[0] = (char)code_point;
        return 1;
    }
    if (code_point < 0x800) {
        dst[0] = (char)(0xC0 | (code_point >> 6));
        dst[1] = (char)(0x80 | (code_point & 0x3F));
        return 2;
    }
    if (code_point < 0x10000) {
        dst[0] = (char)(0xE0 | (code_point >> 12));
        dst[1] = (char)(0x80 | ((code_point >> 6) & 0x3F));
        dst[2] = (char)(0x80 | (code_point & 0x3F));
        return 3;
    }
    dst[0] = (char)(0xF0 | (code_point >> 18));
    dst[1] = (char)(0x80 | ((code_point >> 12) & 0x3F));
    dst[2] = (char)(0x80 | ((code_point >> 6) & 0x3F));
    dst[3] = (char)(0x80 | (code_point & 0x3F));
    return 4;
}

/* Decodes the escape sequence at src (pointing at the backslash; the caller has checked that the
 * string's closing quote lies beyond it) into dst. Returns the number of source bytes consumed, or
 * 0 when the escape is invalid; *written receives the number of bytes stored in dst. */
static size_t decode_escape(json_parser *p, const char *src, const char *end, char *dst,
                            size_t *written)
{
    static const char simple_from[] = "\"\\/bfnrt";
    static const char simple_to[] = "\"\\/\b\f\n\r\t";
    const char *simple = strchr(simple_from, src[1]);
    if (src[1] != '\0' && simple) {
        dst[0] = simple_to[simple - simple_from];
        *written = 1;
        return 2;
    }
    if (src[1] != 'u' || end - src < 6) {
        syntax_error(p, "invalid escape in string");
        return 0;
    }
    long unit = read_hex4(src + 2);
    if (unit < 0) {
        syntax_error(p, "invalid \\u escape in string");
        return 0;
    }
    if (unit == 0) {
        syntax_error(p, "\\u0000 in strings is not supported");
        return 0;
    }
    if (unit >= 0xDC00 && unit <= 0xDFFF) {
        syntax_error(p, "lone low surrogate in string");
        return 0;
    }
    if (unit < 0xD800 || unit > 0xDBFF) {
        *written = encode_utf8((unsigned long)unit, dst);
        return 6;
    }
    /* A high surrogate must be followed by "\u" and a low surrogate. */
    long low = (end - src >= 12 && src[6] == '\\' && src[7] == 'u') ? read_hex4(src + 8) : -1;
    if (low < 0xDC00 || low > 0xDFFF) {
        syntax_error(p, "lone high surrogate in string");
        return 0;
    }
    unsigned long code_point =
        0x10000 + (((unsigned long)unit - 0xD800) << 10) + ((unsigned long)low - 0xDC00);
    *written = encode_utf8(code_point, dst);
    return 12;
}

/* Parses the string starting at the opening quote; returns its decoded, NUL-terminated text. */
static char *parse_string_text(json_parser *p)
{
    size_t start = ++p->pos;
    bool has_escape = false;
    /* First pass: find the closing quote, so the decoded text can be allocated once (decoding
     * never makes a string longer). */
    while (p->pos < p->len && p->text[p->pos] != '"') {
        unsigned char c = (unsigned char)p->text[p->pos];
        if (c < 0x20)
            return syntax_error(p, "control character in string");
        if (c == '\\') {
            has_escape = true;
            p->pos++;
        }
        p->pos++;
    }
    if (p->pos >= p->len)
        return syntax_error(p, "unterminated string");
    const char *src = p->text + start;
    const char *end = p->text + p->pos;
    size_t raw_len = (size_t)(end - src);
    char *decoded = feox_mem_alloc(raw_len + 1);
    if (!decoded)
        return no_memory(p);
    if (!has_escape) {
        memcpy(decoded, src, raw_len);
        decoded[raw_len] = '\0';
        p->pos++;
        return decoded;
    }
    size_t out = 0;
    while (src < end) {
        if (*src != '\\') {
            decoded[out++] = *src++;
            continue;
        }
        size_t written = 0;
        size_t consumed = decode_escape(p, src, end, decoded + out, &written);
        if (consumed == 0) {
            p->pos = (size_t)(src - p->text);
            feox_mem_free(decoded);
            return NULL;
        }
        src += consumed;
        out += written;
    }
    decoded[out] = '\0';
    p->pos++;
    return decoded;
}

static cJSON *parse_string(json_parser *p)
{
    char *text = parse_string_text(p);
    if (!text)
        return NULL;
    cJSON *item = new_item(p, cJSON_String);
    if (!item) {
        feox_mem_free(text);
        return NULL;
    }
    item->valuestring = text;
    return item;
}

static size_t skip_digits(json_parser *p)
{
    size_t count = 0;
    while (p->pos < p->len && is_digit(p->text[p->pos])) {
        p->pos++;
        count++;
    }
    return count;
}

/* Validates a number literal and keeps its exact text as a cJSON_Raw item. */
static cJSON *parse_number(json_parser *p)
{
    size_t start = p->pos;
    if (peek(p) == '-')
        p->pos++;
    if (peek(p) == '0') {
        p->pos++;
        if (is_digit(peek(p)))
            return syntax_error(p, "leading zero in number");
    } else if (skip_digits(p) == 0) {
        return syntax_error(p, "invalid number");
    }
    if (peek(p) == '.') {
        p->pos++;
        if (skip_digits(p) == 0)
            return syntax_error(p, "digit expected after decimal point");
    }
    if (peek(p) == 'e' || peek(p) == 'E') {
        p->pos++;
        if (peek(p) == '+' || peek(p) == '-')
            p->pos++;
        if (skip_digits(p) == 0)
            return syntax_error(p, "digit expected in exponent");
    }
    char *literal = feox_mem_strndup(p->text + start, p->pos - start);
    if (!literal)
        return no_memory(p);
    cJSON *item = new_item(p, cJSON_Raw);
    if (!item) {
        feox_mem_free(literal);
        return NULL;
    }
    item->valuestring = literal;
    return item;
}

static cJSON *parse_literal(json_parser *p, const char *word, int type)
{
    size_t word_len = strlen(word);
    if (p->len - p->pos < word_len || memcmp(p->text + p->pos, word, word_len) != 0)
        return syntax_error(p, "invalid literal");
    p->pos += word_len;
    return new_item(p, type);
}

/* Appends child to container's list, keeping cJSON's invariant that child->prev of the first
 * element points at the last one. */
static void append_child(cJSON *container, cJSON *child)
{
    cJSON *first = container->child;
    if (!first) {
        container->child = child;
        child->prev = child;
        return;
    }
    cJSON *last = first->prev;
    last->next = child;
    child->prev = last;
    first->prev = child;
}

static bool enter_container(json_parser *p)
{
    if (p->depth >= FEOX_JSON_MAX_DEPTH) {
        syntax_error(p, "nesting too deep");
        return false;
    }
    p->depth++;
    p->pos++; /* the opening bracket */
    return true;
}

static cJSON *parse_array(json_parser *p)
{
    if (!enter_container(p))
        return NULL;
    cJSON *array = new_item(p, cJSON_Array);
    if (!array)
        return NULL;
    skip_whitespace(p);
    if (peek(p) == ']') {
        p->pos++;
        p->depth--;
        return array;
    }
    for (;;) {
        cJSON *element = parse_value(p);
        if (!element)
            goto fail;
        append_child(array, element);
        skip_whitespace(p);
        char c = peek(p);
        p->pos++;
        if (c == ']')
            break;
        if (c != ',') {
            p->pos--;
            syntax_error(p, "',' or ']' expected");
            goto fail;
        }
    }
    p->depth--;
    return array;
fail:
    cJSON_Delete(array);
    return NULL;
}

static cJSON *parse_object(json_parser *p)
{
    if (!enter_container(p))
        return NULL;
    cJSON *object = new_item(p, cJSON_Object);
    if (!object)
        return NULL;
    skip_whitespace(p);
    if (peek(p) == '}') {
        p->pos++;
        p->depth--;
        return object;
    }
    for (;;) {
        skip_whitespace(p);
        if (peek(p) != '"') {
            syntax_error(p, "member name expected");
            goto fail;
        }
        char *name = parse_string_text(p);
        if (!name)
            goto fail;
        skip_whitespace(p);
        if (peek(p) != ':') {
            feox_mem_free(name);
            syntax_error(p, "':' expected");
            goto fail;
        }
        p->pos++;
        cJSON *member = parse_value(p);
        if (!member) {
            feox_mem_free(name);
            goto fail;
        }
        member->string = name;
        append_child(object, member);
        skip_whitespace(p);
        char c = peek(p);
        p->pos++;
        if (c == '}')
            break;
        if (c != ',') {
            p->pos--;
            syntax_error(p, "',' or '}' expected");
            goto fail;
        }
    }
    p->depth--;
    return object;
fail:
    cJSON_Delete(object);
    return NULL;
}

static cJSON *parse_value(json_parser *p)
{
    skip_whitespace(p);
    if (at_end(p))
        return syntax_error(p, "unexpected end of text");
    char c = p->text[p->pos];
    switch (c) {
    case '{': return parse_object(p);
    case '[': return parse_array(p);
    case '"': return parse_string(p);
    case 't': return parse_literal(p, "true", cJSON_True);
    case 'f': return parse_literal(p, "false", cJSON_False);
    case 'n': return parse_literal(p, "null", cJSON_NULL);
    default:
        if (c == '-' || is_digit(c))
            return parse_number(p);
        return syntax_error(p, "unexpected character");
    }
}

feox_json_parse_status feox_json_parse(const char *text, size_t len, cJSON **out,
                                       feox_json_parse_error *error)
{
    json_parser p = {.text = text ? text : "", .len = text ? len : 0};
    cJSON *root = parse_value(&p);
    if (root) {
        skip_whitespace(&p);
        if (!at_end(&p)) {
            cJSON_Delete(root);
            root = syntax_error(&p, "unexpected text after the JSON value");
        }
    }
    if (root) {
        *out = root;
        return FEOX_JSON_PARSED;
    }
    if (p.out_of_memory)
        return FEOX_JSON_NO_MEMORY;
    if (error) {
        error->offset = p.pos < p.len ? p.pos : p.len;
        error->reason = p.reason ? p.reason : "invalid JSON";
    }
    return FEOX_JSON_SYNTAX_ERROR;
}
