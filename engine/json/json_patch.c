/*
 * json_patch.c — RFC 6902 JSON Patch applied to a document held as text (see json_patch.h).
 *
 * How it works: the document and the patch are parsed into fresh cJSON trees, the operations edit
 * the document tree in place, and the tree is printed compactly. The input text is never touched,
 * so all-or-nothing costs nothing: on any failure the tree is thrown away and *out is left alone.
 * Values the patch brings (add/replace "value") are moved out of the patch tree, not copied.
 *
 * Number preservation: cJSON would turn every number into a double and print 15 significant
 * digits (9007199254740993 -> 9.00719925474099e+15). Our own parser (json_parse.c) instead keeps
 * each number as a cJSON_Raw item holding its literal text, which cJSON_PrintUnformatted prints
 * verbatim. So numbers the patch does not touch keep their exact text, numbers it writes keep the
 * patch's text, and `test` compares numbers by exact decimal value (json_number.c).
 *
 * Pointer paths are RFC 6901 (json_pointer.c); array edits relink cJSON's child list ourselves
 * (json_tree.c) because Debian's cJSON_InsertItemInArray is broken for indices above 0.
 */
#include "json/json_patch.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "json/json_parse.h"
#include "json/json_pointer.h"
#include "json/json_tree.h"

/* The state of one patch application. root may be replaced by operations on the path "". */
typedef struct patch_run {
    cJSON *root;
    size_t op_index;
    const char *op_name;
    char *errmsg;
    size_t errmsg_size;
} patch_run;

/* Where a pointer leads. parent is NULL for "" (the whole document). For an object, target is the
 * member (or NULL if absent); for an array, target is the element at the index, or NULL for "-"
 * or an index equal to the length (the add position after the last element). */
typedef struct location {
    cJSON *parent;
    feox_json_pointer_token last;
    cJSON *target;
    size_t depth; /* number of reference tokens */
} location;

typedef enum resolve_mode { MUST_EXIST, FOR_ADD } resolve_mode;

static pthread_once_t cjson_hooks_once = PTHREAD_ONCE_INIT;

static feox_err fail(patch_run *run, feox_err err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static feox_err fail(patch_run *run, feox_err err, const char *fmt, ...)
{
    if (!run->errmsg || run->errmsg_size == 0)
        return err;
    int prefix = run->op_name
                     ? snprintf(run->errmsg, run->errmsg_size,
                                "operation %zu (%s): ", run->op_index, run->op_name)
                     : snprintf(run->errmsg, run->errmsg_size, "operation %zu: ", run->op_index);
    if (prefix < 0 || (size_t)prefix >= run->errmsg_size)
        return err;
    va_list args;
    va_start(args, fmt);
    vsnprintf(run->errmsg + prefix, run->errmsg_size - (size_t)prefix, fmt, args);
    va_end(args);
    return err;
}

static feox_err set_message(char *errmsg, size_t errmsg_size, feox_err err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static feox_err set_message(char *errmsg, size_t errmsg_size, feox_err err, const char *fmt, ...)
{
    if (errmsg && errmsg_size) {
        va_list args;
        va_start(args, fmt);
        vsnprintf(errmsg, errmsg_size, fmt, args);
        va_end(args);
    }
    return err;
}

static cJSON *object_member(const cJSON *object, feox_json_pointer_token token)
{
    for (cJSON *c = object->child; c; c = c->next) {
        if (c->string && feox_json_pointer_token_equals(token, c->string))
            return c;
    }
    return NULL;
}

static cJSON *array_element(const cJSON *array, size_t index)
{
    cJSON *c = array->child;
    while (c && index--)
        c = c->next;
    return c;
}

/* Follows pointer through run->root. For FOR_ADD the last token may name a member or position
 * that does not exist yet; everything before it must exist. */
static feox_err resolve(patch_run *run, const char *what, const char *pointer, resolve_mode mode,
                        location *loc)
{
    if (!feox_json_pointer_is_valid(pointer))
        return fail(run, FEOX_ERR_JSON_PATCH, "%s \"%s\" is not a valid JSON pointer", what,
                    pointer);
    memset(loc, 0, sizeof(*loc));
    loc->target = run->root;
    const char *cursor = pointer;
    feox_json_pointer_token token;
    while (feox_json_pointer_next_token(&cursor, &token)) {
        cJSON *current = loc->target;
        loc->parent = current;
        loc->last = token;
        loc->depth++;
        bool is_last = *cursor == '\0';
        if (cJSON_IsObject(current)) {
            loc->target = object_member(current, token);
        } else if (cJSON_IsArray(current)) {
            size_t index = 0;
            if (is_last && mode == FOR_ADD && feox_json_pointer_token_is_append(token)) {
                loc->target = NULL;
                return FEOX_OK;
            }
            if (!feox_json_pointer_token_index(token, &index))
                return fail(run, FEOX_ERR_JSON_PATCH, "%s %s: \"%.*s\" is not an array index", what,
                            pointer, (int)token.len, token.text);
            loc->target = array_element(current, index);
            /* Past the end, only add may name the position right after the last element. */
            size_t length = loc->target ? 0 : feox_json_tree_child_count(current);
            if (!loc->target && !(is_last && mode == FOR_ADD && index == length))
                return fail(run, FEOX_ERR_JSON_PATCH,
                            "%s %s: array index %zu is out of bounds (length %zu)", what, pointer,
                            index, length);
        } else {
            return fail(run, FEOX_ERR_JSON_PATCH,
                        "%s %s does not exist (parent is not an object or array)", what, pointer);
        }
        if (!loc->target && !(is_last && mode == FOR_ADD))
            return fail(run, FEOX_ERR_JSON_PATCH, "%s %s does not exist", what, pointer);
    }
    return FEOX_OK;
}

/* Refuses results nested deeper than the parser accepts, so every output parses again. */
static feox_err check_nesting(patch_run *run, const location *loc, const cJSON *value)
{
    if (loc->depth > FEOX_JSON_MAX_DEPTH ||
        feox_json_tree_nesting(value, FEOX_JSON_MAX_DEPTH - loc->depth) >
            FEOX_JSON_MAX_DEPTH - loc->depth)
        return fail(run, FEOX_ERR_JSON_PATCH, "result would nest deeper than %d levels",
                    FEOX_JSON_MAX_DEPTH);
    return FEOX_OK;
}

/* Puts value (detached; ownership passes to the document, also on failure) at loc. */
static feox_err place_value(patch_run *run, const location *loc, cJSON *value)
{
    feox_err err = check_nesting(run, loc, value);
    if (err != FEOX_OK) {
        cJSON_Delete(value);
        return err;
    }
    cJSON *parent = loc->parent;
    char *name = NULL;
    if (cJSON_IsObject(parent)) {
        /* Replacing a member keeps its name (and position); a new member gets the token. */
        if (loc->target) {
            name = loc->target->string;
            loc->target->string = NULL;
        } else {
            name = feox_json_pointer_token_decode(loc->last);
            if (!name) {
                cJSON_Delete(value);
                return fail(run, FEOX_ERR_NOMEM, "out of memory");
            }
        }
    }
    if (value->string && !(value->type & cJSON_StringIsConst))
        feox_mem_free(value->string);
    value->string = name;
    value->type &= ~cJSON_StringIsConst;
    if (!parent) {
        cJSON_Delete(run->root);
        run->root = value;
    } else if (cJSON_IsObject(parent) && loc->target) {
        cJSON_Delete(feox_json_tree_replace(parent, loc->target, value));
    } else {
        feox_json_tree_insert_before(parent, value, loc->target);
    }
    return FEOX_OK;
}

/* The op's "path" or "from" member, which must be a string. */
static feox_err pointer_member(patch_run *run, const cJSON *op, const char *member,
                               const char **pointer)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(op, member);
    if (!cJSON_IsString(item))
        return fail(run, FEOX_ERR_JSON_PATCH, "'%s' is %s", member,
                    item ? "not a string" : "missing");
    *pointer = item->valuestring;
    return FEOX_OK;
}

/* The op's "value" member, detached from the patch so it can move into the document. */
static feox_err take_value(patch_run *run, cJSON *op, cJSON **value)
{
    cJSON *item = cJSON_GetObjectItemCaseSensitive(op, "value");
    if (!item)
        return fail(run, FEOX_ERR_JSON_PATCH, "'value' is missing");
    *value = feox_json_tree_unlink(op, item);
    return FEOX_OK;
}

static feox_err op_add(patch_run *run, cJSON *op, const char *path)
{
    cJSON *value = NULL;
    location loc = {0};
    feox_err err = take_value(run, op, &value);
    if (err == FEOX_OK)
        err = resolve(run, "path", path, FOR_ADD, &loc);
    if (err != FEOX_OK) {
        cJSON_Delete(value);
        return err;
    }
    return place_value(run, &loc, value);
}

static feox_err op_remove(patch_run *run, const char *path)
{
    location loc = {0};
    feox_err err = resolve(run, "path", path, MUST_EXIST, &loc);
    if (err != FEOX_OK)
        return err;
    if (!loc.parent)
        return fail(run, FEOX_ERR_JSON_PATCH, "cannot remove the whole document");
    cJSON_Delete(feox_json_tree_unlink(loc.parent, loc.target));
    return FEOX_OK;
}

static feox_err op_replace(patch_run *run, cJSON *op, const char *path)
{
    cJSON *value = NULL;
    location loc = {0};
    feox_err err = take_value(run, op, &value);
    if (err == FEOX_OK)
        err = resolve(run, "path", path, MUST_EXIST, &loc);
    if (err != FEOX_OK) {
        cJSON_Delete(value);
        return err;
    }
    /* An array element is replaced in place: place_value would insert before it. */
    if (cJSON_IsArray(loc.parent) && loc.target) { /* MUST_EXIST: target is never NULL */
        cJSON *old = loc.target;
        loc.target = old->next;
        cJSON_Delete(feox_json_tree_unlink(loc.parent, old));
    }
    return place_value(run, &loc, value);
}

static bool is_proper_prefix(const char *prefix, const char *path)
{
    size_t len = strlen(prefix);
    return strncmp(prefix, path, len) == 0 && path[len] == '/';
}

static feox_err op_move(patch_run *run, cJSON *op, const char *path)
{
    const char *from = NULL;
    location source = {0};
    location target = {0};
    feox_err err = pointer_member(run, op, "from", &from);
    if (err == FEOX_OK)
        err = resolve(run, "from", from, MUST_EXIST, &source);
    if (err != FEOX_OK)
        return err;
    if (!from || !path) /* pointer_member succeeded, so neither is NULL */
        return fail(run, FEOX_ERR_JSON_PATCH, "'from' or 'path' is missing");
    /* Checked before anything moves: "" (the whole document) is a proper prefix of every valid
     * path but the empty one, and only a valid path makes that argument hold. */
    if (!feox_json_pointer_is_valid(path))
        return fail(run, FEOX_ERR_JSON_PATCH, "path \"%s\" is not a valid JSON pointer", path);
    if (strcmp(from, path) == 0)
        return resolve(run, "path", path, FOR_ADD, &target);
    if (is_proper_prefix(from, path))
        return fail(run, FEOX_ERR_JSON_PATCH, "cannot move %s into its own child %s", from, path);
    /* from is not "" here: "" is a proper prefix of every other path. */
    cJSON *value = feox_json_tree_unlink(source.parent, source.target);
    err = resolve(run, "path", path, FOR_ADD, &target);
    if (err != FEOX_OK) {
        cJSON_Delete(value);
        return err;
    }
    return place_value(run, &target, value);
}

static feox_err op_copy(patch_run *run, cJSON *op, const char *path)
{
    const char *from = NULL;
    location source = {0};
    location target = {0};
    feox_err err = pointer_member(run, op, "from", &from);
    if (err == FEOX_OK)
        err = resolve(run, "from", from, MUST_EXIST, &source);
    if (err == FEOX_OK)
        err = resolve(run, "path", path, FOR_ADD, &target);
    if (err == FEOX_OK)
        err = check_nesting(run, &target, source.target);
    if (err != FEOX_OK)
        return err;
    cJSON *value = cJSON_Duplicate(source.target, 1);
    if (!value)
        return fail(run, FEOX_ERR_NOMEM, "out of memory");
    return place_value(run, &target, value);
}

static feox_err op_test(patch_run *run, const cJSON *op, const char *path)
{
    const cJSON *expected = cJSON_GetObjectItemCaseSensitive(op, "value");
    location loc = {0};
    if (!expected)
        return fail(run, FEOX_ERR_JSON_PATCH, "'value' is missing");
    feox_err err = resolve(run, "path", path, MUST_EXIST, &loc);
    if (err != FEOX_OK)
        return err;
    if (!feox_json_tree_equal(loc.target, expected))
        return fail(run, FEOX_ERR_JSON_PATCH, "value at %s differs", path);
    return FEOX_OK;
}

static feox_err apply_operation(patch_run *run, cJSON *op)
{
    if (!cJSON_IsObject(op))
        return fail(run, FEOX_ERR_JSON_PATCH, "not a JSON object");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(op, "op");
    if (!cJSON_IsString(name))
        return fail(run, FEOX_ERR_JSON_PATCH, "'op' is %s", name ? "not a string" : "missing");
    run->op_name = name->valuestring;
    const char *path = NULL;
    feox_err err = pointer_member(run, op, "path", &path);
    if (err != FEOX_OK)
        return err;
    if (strcmp(run->op_name, "add") == 0)
        return op_add(run, op, path);
    if (strcmp(run->op_name, "remove") == 0)
        return op_remove(run, path);
    if (strcmp(run->op_name, "replace") == 0)
        return op_replace(run, op, path);
    if (strcmp(run->op_name, "move") == 0)
        return op_move(run, op, path);
    if (strcmp(run->op_name, "copy") == 0)
        return op_copy(run, op, path);
    if (strcmp(run->op_name, "test") == 0)
        return op_test(run, op, path);
    return fail(run, FEOX_ERR_JSON_PATCH, "unknown operation");
}

/* Parses one input; what names it in messages ("document" or "patch"). */
static feox_err parse_input(const char *what, const char *text, size_t len, cJSON **tree,
                            char *errmsg, size_t errmsg_size)
{
    feox_json_parse_error parse_error = {0, NULL};
    switch (feox_json_parse(text, len, tree, &parse_error)) {
    case FEOX_JSON_PARSED: return FEOX_OK;
    case FEOX_JSON_NO_MEMORY:
        return set_message(errmsg, errmsg_size, FEOX_ERR_NOMEM, "out of memory parsing the %s",
                           what);
    default:
        return set_message(errmsg, errmsg_size, FEOX_ERR_JSON_PATCH,
                           "%s is not valid JSON: %s at offset %zu", what, parse_error.reason,
                           parse_error.offset);
    }
}

feox_err feox_json_patch_apply(const char *doc, size_t doc_len, const char *patch, size_t patch_len,
                               char **out, size_t *out_len, char *errmsg, size_t errmsg_size)
{
    if (!out || !out_len)
        return set_message(errmsg, errmsg_size, FEOX_ERR_INVALID_ARGUMENT, "no output pointer");
    pthread_once(&cjson_hooks_once, feox_alloc_init_cjson);

    cJSON *patch_tree = NULL;
    patch_run run = {.errmsg = errmsg, .errmsg_size = errmsg_size};
    feox_err err = parse_input("patch", patch, patch_len, &patch_tree, errmsg, errmsg_size);
    if (err != FEOX_OK)
        return err;
    if (!cJSON_IsArray(patch_tree)) {
        cJSON_Delete(patch_tree);
        return set_message(errmsg, errmsg_size, FEOX_ERR_JSON_PATCH, "patch is not a JSON array");
    }
    err = parse_input("document", doc, doc_len, &run.root, errmsg, errmsg_size);
    for (cJSON *op = patch_tree->child; err == FEOX_OK && op; op = op->next, run.op_index++) {
        run.op_name = NULL;
        err = apply_operation(&run, op);
    }
    char *printed = NULL;
    if (err == FEOX_OK) {
        printed = cJSON_PrintUnformatted(run.root);
        if (!printed)
            err = set_message(errmsg, errmsg_size, FEOX_ERR_NOMEM, "out of memory printing");
    }
    cJSON_Delete(run.root);
    cJSON_Delete(patch_tree);
    if (err != FEOX_OK)
        return err;
    if (!printed)
        return set_message(errmsg, errmsg_size, FEOX_ERR_NOMEM, "out of memory printing");
    *out = printed;
    *out_len = strlen(printed);
    return FEOX_OK;
}

/* The public, store-less form (feox.h): the same function, its message through
 * feox_error_detail(). */
feox_err feox_json_patch_document(const char *doc, size_t doc_len, const char *patch,
                                  size_t patch_len, char **result, size_t *result_len)
{
    feox_clear_error_detail();
    if ((!doc && doc_len) || (!patch && patch_len) || !result || !result_len)
        return feox_fail(FEOX_ERR_INVALID_ARGUMENT, "a NULL pointer where one is required");
    char message[256] = "";
    feox_err err = feox_json_patch_apply(doc ? doc : "", doc_len, patch ? patch : "", patch_len,
                                         result, result_len, message, sizeof message);
    if (err != FEOX_OK)
        feox_set_error_detail("%s", message[0] ? message : feox_strerror(err));
    return err;
}
